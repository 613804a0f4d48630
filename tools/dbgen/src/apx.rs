//! Writes `src/x86/db/apx.txt`: the APX forms (Intel APX, 64-bit mode only)
//! derived from the legacy and VEX rows they promote, plus the instructions
//! APX adds (`push2`/`pop2`, `pushp`/`popp`, `ccmp`/`ctest`, `cfcmov`,
//! `setzu`, `jmpabs`).
//!
//! The promotions are regular (same operands, the opcode moved to EVEX map 4
//! or the VEX prefix replaced by EVEX, a new-data-destination variant in
//! EVEX.vvvv, `{nf}` where the instruction writes flags), so they are made
//! here from the tables below rather than written 600 times by hand. Run
//! `cargo run -p jitforge-dbgen -- apx`; the text is then reviewed data like
//! the other database files (a test checks it is what this step makes).
//!
//! Registers r16-r31 in legacy map-0/map-1 forms need no rows: the encoder
//! adds a REX2 prefix to those forms.

use crate::parse::Row;
use std::fmt::Write as _;

/// Map-0/map-1 instructions promoted to EVEX map 4: (mnemonic, accepts
/// `{nf}`, has a new-data-destination form, has the plain `{evex}` form).
const ARITHMETIC: &[(&str, bool, bool, bool)] = &[
    ("add", true, true, true),
    ("or", true, true, true),
    ("adc", false, true, true),
    ("sbb", false, true, true),
    ("and", true, true, true),
    ("sub", true, true, true),
    ("xor", true, true, true),
    ("inc", true, true, true),
    ("dec", true, true, true),
    ("neg", true, true, true),
    ("not", false, true, true),
    ("mul", true, false, true),
    ("div", true, false, true),
    ("idiv", true, false, true),
    ("imul", true, true, true),
    ("rol", true, true, true),
    ("ror", true, true, true),
    ("rcl", false, true, true),
    ("rcr", false, true, true),
    ("shl", true, true, true),
    ("shr", true, true, true),
    ("sar", true, true, true),
    ("shld", true, true, true),
    ("shrd", true, true, true),
    ("popcnt", true, false, true),
    ("lzcnt", true, false, true),
    ("tzcnt", true, false, true),
    ("adcx", false, true, true),
    ("adox", false, true, true),
];

/// Map-1 (0F) and map-2 (0F 38) opcodes whose map-4 opcode differs.
const MAP4_OPCODE: &[(&str, u8, u8)] = &[
    ("0f", 0xa4, 0x24),
    ("0f", 0xac, 0x2c),
    ("0f", 0xb8, 0x88),
    ("0f", 0xbd, 0xf5),
    ("0f", 0xbc, 0xf4),
    ("0f38", 0xf6, 0x66),
    ("0f38", 0xf0, 0x60),
    ("0f38", 0xf1, 0x61),
    ("0f38", 0xf5, 0x65),
    ("0f38", 0x80, 0xf0),
    ("0f38", 0x81, 0xf1),
    ("0f38", 0x82, 0xf2),
];

/// Map-2 legacy instructions promoted to EVEX map 4 without a new
/// destination, with the map-4 mandatory prefix where it changes
/// (`None`: keep the legacy one).
const MAP2_PROMOTED: &[(&str, Option<&str>)] = &[
    ("movbe", None),
    ("crc32", Some("")),
    ("invept", Some("f3")),
    ("invvpid", Some("f3")),
    ("invpcid", Some("f3")),
    ("enqcmd", None),
    ("enqcmds", None),
    ("movdir64b", None),
    ("movdiri", None),
    ("wrssd", Some("")),
    ("wrssq", Some("")),
    ("wrussd", None),
    ("wrussq", None),
    ("aadd", None),
    ("aand", None),
    ("aor", None),
    ("axor", None),
];

/// VEX instructions with general-purpose or memory operands that APX gives
/// an EVEX form in the same map (so r16-r31 reach them): (mnemonic prefix, `{nf}`).
const VEX_PROMOTED: &[(&str, bool)] = &[
    ("andn", true),
    ("bextr", true),
    ("blsi", true),
    ("blsmsk", true),
    ("blsr", true),
    ("bzhi", true),
    ("mulx", false),
    ("pdep", false),
    ("pext", false),
    ("rorx", false),
    ("sarx", false),
    ("shlx", false),
    ("shrx", false),
    ("kmovb", false),
    ("kmovw", false),
    ("kmovd", false),
    ("kmovq", false),
    ("ldtilecfg", false),
    ("sttilecfg", false),
    ("tileloadd", false),
    ("tileloaddt1", false),
    ("tilestored", false),
];

/// Condition codes as the database names them, in encoding order (`p`/`np`
/// become `t`/`f` in `ccmp`/`ctest`).
const CONDITIONS: [&str; 16] = [
    "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
];

fn token(row: &Row, i: usize) -> String {
    match row.access[i].as_str() {
        "" => row.operands[i].clone(),
        a => format!("{}:{a}", row.operands[i]),
    }
}

/// One database line.
fn line(
    out: &mut String,
    mnemonic: &str,
    operands: &str,
    encoding: &str,
    features: &str,
    attrs: &str,
) {
    let text = format!(
        "{mnemonic:<15} | {operands:<33} | {encoding:<33} | {features:<23} | 64    | {attrs}"
    );
    out.push_str(text.trim_end());
    out.push('\n');
}

/// The attribute column of a promoted row: memory size, implicit operands
/// and flags; `nf` when it takes `{nf}`.
fn attributes(row: &Row, nf: bool) -> String {
    let mut parts = Vec::new();
    if row.mem_size != 0 {
        parts.push(format!("m={}", row.mem_size));
    }
    if !row.implicit.is_empty() {
        let items: Vec<String> = row
            .implicit
            .iter()
            .map(|(r, a)| format!("{r}:{a}"))
            .collect();
        parts.push(format!("implicit={}", items.join(",")));
    }
    if !row.flags_read.is_empty() {
        parts.push(format!("fr={}", row.flags_read.join(",")));
    }
    if !row.flags_written.is_empty() {
        parts.push(format!("fw={}", row.flags_written.join(",")));
    }
    if nf {
        parts.push("nf".into());
    }
    parts.join(" ")
}

fn features(row: &Row) -> String {
    let mut f: Vec<String> = row
        .features
        .iter()
        .filter(|f| !matches!(f.as_str(), "intel8086" | "intel186" | "intel386" | "x64"))
        .cloned()
        .collect();
    f.push("apx_f".into());
    f.join("+")
}

/// The EVEX map-4 encoding of a legacy row (`evex.128.66.map4.w1 01 /r`),
/// with `extra` parts (`.nd`, `.nf`) and the mandatory prefix `pp`.
fn map4_encoding(row: &Row, pp: &str, extra: &str) -> String {
    let e = &row.encoding;
    // crc32 keeps its opcodes (F0/F1 are movbe's in map 2, crc32's in map 4).
    let opcode = MAP4_OPCODE
        .iter()
        .find(|(m, from, _)| *m == e.map && *from == e.opcode && row.mnemonic != "crc32")
        .map_or(e.opcode, |(_, _, to)| *to);
    let mut s = String::new();
    if e.operand_size == 16 {
        s.push_str("o16 ");
    }
    match e.address_size {
        32 => s.push_str("a32 "),
        64 => s.push_str("a64 "),
        _ => {}
    }
    s.push_str("evex.128");
    let pp = if pp.is_empty() && e.operand_size == 16 {
        "66"
    } else {
        pp
    };
    if !pp.is_empty() {
        s.push('.');
        s.push_str(pp);
    }
    s.push_str(".map4");
    s.push_str(if e.rex_w { ".w1" } else { ".w0" });
    s.push_str(extra);
    let _ = write!(s, " {opcode:02x}");
    match e.modrm.as_str() {
        "r" => s.push_str(" /r"),
        "" => {}
        d => {
            let _ = write!(s, " /{d}");
        }
    }
    s
}

/// The size of the first operand's register (`r64/m` -> `r64`).
fn first_register(row: &Row) -> Option<&'static str> {
    let first = row.operands.first()?;
    ["r8", "r16", "r32", "r64"]
        .into_iter()
        .find(|r| first == r || first.strip_prefix(r).is_some_and(|s| s.starts_with('/')))
}

fn is_legacy_64(row: &Row) -> bool {
    row.mode64 && row.encoding.kind == "legacy" && !row.encoding.rex2
}

/// The 64-bit-mode legacy rows of `mnemonic`.
fn legacy_rows<'a>(rows: &'a [Row], mnemonic: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.mnemonic == mnemonic && is_legacy_64(r))
        .collect()
}

/// Whether a row names the accumulator (the short forms have no map-4 twin).
fn accumulator(row: &Row) -> bool {
    row.operands
        .iter()
        .any(|o| matches!(o.as_str(), "al" | "ax" | "eax" | "rax"))
}

/// The whole `apx.txt` text from the legacy and VEX rows.
pub fn apx_text(rows: &[Row]) -> String {
    let mut out = String::from(
        "# jitforge x86 instruction database: the APX forms (64-bit mode only).\n\
         #\n\
         # Generated by `cargo run -p jitforge-dbgen -- apx` from the rows it promotes\n\
         # (tools/dbgen/src/apx.rs); same format as instructions.txt (see src/x86/db/mod.rs).\n\
         # r16-r31 in legacy map-0/map-1 forms need no rows: the encoder adds REX2.\n",
    );

    // Arithmetic, shifts, multiplies, counts: the plain EVEX form ({evex}, {nf})
    // and the new-data-destination form.
    for &(m, nf, ndd, plain) in ARITHMETIC {
        for row in legacy_rows(rows, m) {
            // The one-byte inc/dec (40+r) and accumulator forms have no twin.
            if accumulator(row)
                || row.encoding.modrm == "+r"
                || row.encoding.map == "0f38" && m != "adcx" && m != "adox"
            {
                continue;
            }
            let pp = if matches!(m, "adcx" | "adox") {
                row.encoding.prefix.as_str()
            } else {
                ""
            };
            let nf = nf && !row.flags_written.is_empty();
            let operands: Vec<String> = (0..row.operands.len()).map(|i| token(row, i)).collect();
            if plain {
                line(
                    &mut out,
                    m,
                    &operands.join(" "),
                    &map4_encoding(row, pp, ""),
                    &features(row),
                    &attributes(row, nf),
                );
            }
            // A new destination only where the first operand is read and written
            // (not `imul r, r/m, imm`, not `mul r/m`).
            let rw_first = row.access.first().is_some_and(|a| a == "rw");
            if ndd
                && rw_first
                && let Some(reg) = first_register(row)
            {
                let mut ops = vec![format!("{reg}.v:w"), format!("{}:r", row.operands[0])];
                ops.extend(operands[1..].iter().cloned());
                line(
                    &mut out,
                    m,
                    &ops.join(" "),
                    &map4_encoding(row, pp, ".nd"),
                    &features(row),
                    &attributes(row, nf),
                );
            }
        }
    }
    // cmovcc: only the new-data-destination form (ND=0 is cfcmov's load form).
    for cc in CONDITIONS {
        for row in legacy_rows(rows, &format!("cmov{cc}")) {
            let Some(reg) = first_register(row) else {
                continue;
            };
            let ops = format!("{reg}.v:w {reg}:r {}", token(row, 1));
            line(
                &mut out,
                &row.mnemonic,
                &ops,
                &map4_encoding(row, "", ".nd"),
                &features(row),
                &attributes(row, false),
            );
        }
    }
    // Map-2 instructions moved to map 4.
    for &(m, pp) in MAP2_PROMOTED {
        for row in legacy_rows(rows, m) {
            if row.encoding.address_size == 16 {
                continue;
            }
            let pp = pp.unwrap_or(match row.encoding.prefix.as_str() {
                "np" => "",
                p => p,
            });
            let mut ops: Vec<String> = (0..row.operands.len()).map(|i| token(row, i)).collect();
            // movbe's store form also takes a register destination in map 4.
            if m == "movbe" && row.operands[0] == "m" {
                let reg = row.operands[1].clone();
                ops[0] = format!("{reg}/m:w");
            }
            line(
                &mut out,
                m,
                &ops.join(" "),
                &map4_encoding(row, pp, ""),
                &features(row),
                &attributes(row, false),
            );
        }
    }
    // VEX forms with general-purpose registers or memory: the same form in EVEX.
    for &(m, nf) in VEX_PROMOTED {
        for row in rows
            .iter()
            .filter(|r| r.mnemonic == m && r.mode64 && r.encoding.kind == "vex")
        {
            let gp_or_mem = row
                .operands
                .iter()
                .any(|o| o.starts_with('r') || o.starts_with('m') || o.contains("/m"));
            if !gp_or_mem {
                continue;
            }
            let ops: Vec<String> = (0..row.operands.len()).map(|i| token(row, i)).collect();
            line(
                &mut out,
                m,
                &ops.join(" "),
                &evex_encoding_text(row),
                &features(row),
                &attributes(row, nf && !row.flags_written.is_empty()),
            );
        }
    }
    for row in rows.iter().filter(|r| {
        r.mnemonic.starts_with("cmp") && r.mnemonic.ends_with("xadd") && r.encoding.kind == "vex"
    }) {
        let ops: Vec<String> = (0..row.operands.len()).map(|i| token(row, i)).collect();
        line(
            &mut out,
            &row.mnemonic,
            &ops.join(" "),
            &evex_encoding_text(row),
            &features(row),
            &attributes(row, false),
        );
    }
    new_instructions(&mut out, rows);
    out
}

/// The encoding column of a VEX row with EVEX in place of VEX.
fn evex_encoding_text(row: &Row) -> String {
    let e = &row.encoding;
    let mut prefix = format!("evex.{}", e.l);
    if !e.prefix.is_empty() && e.prefix != "np" {
        prefix.push('.');
        prefix.push_str(&e.prefix);
    }
    prefix.push('.');
    prefix.push_str(&e.map);
    prefix.push('.');
    prefix.push_str(&e.w);
    let mut parts: Vec<String> = vec![prefix, format!("{:02x}", e.opcode)];
    match e.modrm.as_str() {
        "r" => parts.push("/r".into()),
        "" => {}
        d => parts.push(format!("/{d}")),
    }
    parts.join(" ")
}

/// The instructions APX adds.
fn new_instructions(out: &mut String, rows: &[Row]) {
    let stack = "implicit=rsp:rw";
    for (m, w) in [("push2", "w0"), ("push2p", "w1")] {
        line(
            out,
            m,
            "r64.v:r r64.rm:r",
            &format!("evex.128.map4.{w}.nd ff /6"),
            "apx_f",
            stack,
        );
    }
    for (m, w) in [("pop2", "w0"), ("pop2p", "w1")] {
        line(
            out,
            m,
            "r64.v:w r64.rm:w",
            &format!("evex.128.map4.{w}.nd 8f /0"),
            "apx_f",
            stack,
        );
    }
    line(out, "pushp", "r64.o:r", "rex2 rex.w 50+r", "apx_f", stack);
    line(out, "popp", "r64.o:w", "rex2 rex.w 58+r", "apx_f", stack);
    line(out, "jmpabs", "iq:r", "rex2 a1", "apx_f", "");
    // ccmp/ctest: the cmp/test forms without the accumulator ones, the
    // condition in EVEX.SCC; they write the status flags (from the compare,
    // or from {dfv=} when the condition is false).
    for (base, from) in [("ccmp", "cmp"), ("ctest", "test")] {
        for (cc_index, cc) in CONDITIONS.iter().enumerate() {
            let cc = match *cc {
                "p" => "t",
                "np" => "f",
                c => c,
            };
            let read = rows
                .iter()
                .find(|r| r.mnemonic == format!("cmov{}", CONDITIONS[cc_index]))
                .map(|r| r.flags_read.clone())
                .unwrap_or_default();
            for row in rows
                .iter()
                .filter(|r| r.mnemonic == from && is_legacy_64(r) && !accumulator(r))
            {
                let ops: Vec<String> = (0..row.operands.len()).map(|i| token(row, i)).collect();
                let mut attrs = Vec::new();
                if row.mem_size != 0 {
                    attrs.push(format!("m={}", row.mem_size));
                }
                if !read.is_empty() && !matches!(cc, "t" | "f") {
                    attrs.push(format!("fr={}", read.join(",")));
                }
                attrs.push("fw=of,sf,zf,af,pf,cf".into());
                attrs.push(format!("scc={cc_index}"));
                line(
                    out,
                    &format!("{base}{cc}"),
                    &ops.join(" "),
                    &map4_encoding(row, "", ""),
                    "apx_f",
                    &attrs.join(" "),
                );
            }
        }
    }
    // cfcmovcc: the store form (r/m <- r, EVEX.NF=1) takes register pairs
    // too; the load form (ND=0, NF=0) memory only; the NDD form (ND=1, NF=1).
    for cc in CONDITIONS {
        for row in rows
            .iter()
            .filter(|r| r.mnemonic == format!("cmov{cc}") && is_legacy_64(r))
        {
            let Some(reg) = first_register(row) else {
                continue;
            };
            let read = if row.flags_read.is_empty() {
                String::new()
            } else {
                format!(" fr={}", row.flags_read.join(","))
            };
            let m = format!("cfcmov{cc}");
            let size = row.mem_size;
            line(
                out,
                &m,
                &format!("{reg}/m:cw {reg}:r"),
                &map4_encoding(row, "", ".nf"),
                "apx_f",
                &format!("m={size}{read}"),
            );
            line(
                out,
                &m,
                &format!("{reg}:cw m:r"),
                &map4_encoding(row, "", ""),
                "apx_f",
                &format!("m={size}{read}"),
            );
            line(
                out,
                &m,
                &format!("{reg}.v:w {reg}:r {reg}/m:r"),
                &map4_encoding(row, "", ".nd.nf"),
                "apx_f",
                &format!("m={size}{read}"),
            );
        }
    }
    // imulzu: the three-operand imul with EVEX.ND=1 (the upper bits of the
    // 16-bit destination are zeroed).
    for row in legacy_rows(rows, "imul") {
        if row.operands.len() == 3 && row.operands[2].starts_with('i') {
            let ops: Vec<String> = (0..row.operands.len()).map(|i| token(row, i)).collect();
            line(
                out,
                "imulzu",
                &ops.join(" "),
                &map4_encoding(row, "", ".nd"),
                "apx_f",
                &attributes(row, false),
            );
        }
    }
    // setcc in map 4 without ND (`{evex} setb al`), and setzucc with ND=1.
    for cc in CONDITIONS {
        for row in legacy_rows(rows, &format!("set{cc}")) {
            line(
                out,
                &row.mnemonic,
                "r8/m:w",
                &format!(
                    "evex.128.f2.map4.w0 {:02x} /r",
                    0x40 | (row.encoding.opcode & 15)
                ),
                "apx_f",
                &attributes(row, false),
            );
        }
    }
    // setzucc: setcc in map 4 (40+cc) with EVEX.ND=1 (zero upper).
    for cc in CONDITIONS {
        for row in rows
            .iter()
            .filter(|r| r.mnemonic == format!("set{cc}") && is_legacy_64(r))
        {
            let read = if row.flags_read.is_empty() {
                String::new()
            } else {
                format!(" fr={}", row.flags_read.join(","))
            };
            line(
                out,
                &format!("setzu{cc}"),
                "r8/m:w",
                &format!(
                    "evex.128.f2.map4.w0.nd {:02x} /r",
                    0x40 | (row.encoding.opcode & 15)
                ),
                "apx_f",
                &format!("m=1{read}"),
            );
        }
    }
}
