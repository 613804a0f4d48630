//! APX (64-bit mode): every APX form of the database, and every legacy,
//! VEX and EVEX form that can address memory or take general-purpose
//! registers, encoded with r16-r31 in every register position and as base
//! and index, in NDD, `{nf}`, `{evex}` and `{dfv=}` variants, and compared byte
//! for byte with llvm-mc-22 (one process for all of them). The bytes are then
//! decoded back with llvm-objdump-22, which must print what llvm-mc read.
//! iced-x86 does not know APX, so this is the only oracle for these forms.
//!
//! llvm-mc-22 and llvm-objdump-22 come from Debian's `llvm-22` package
//! (`.ci/run` installs it).

use jitforge::code::{Arch, CodeHolder};
use jitforge::x86::db::{Encoding, OpcodeMap, apx, flags, modes};
use jitforge::x86::text::format_instruction;
use jitforge::x86::*;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

fn reg(kind: RegKind, id: u8) -> Operand {
    Operand::Reg(Reg::new(kind, id).expect("register"))
}

/// General-purpose register ids per variant: r16-r31 everywhere, mixed with
/// low and REX registers so that each of R3/R4, X3/X4, B3/B4 and V4 takes both values.
const GP_IDS: [[u8; 4]; 3] = [[16, 17, 18, 19], [31, 1, 24, 9], [20, 29, 13, 26]];

/// Memory for variant `v`: [r16 + r17*4 + 8], [r29 + r20*8 - 0x80] (r29 needs
/// a displacement, r20 is not rsp as an index), [r21 + 0x12345].
fn sample_mem(form: &Form, kind: OperandKind, v: usize, low: bool) -> Mem {
    let addr = if form.address_size() == 32 {
        RegKind::Gp32
    } else {
        RegKind::Gp64
    };
    let (base, index, scale, disp) = [(16, 17, 4, 8), (29, 20, 8, -0x80), (21, 0, 0, 0x12345)][v];
    let (base, index) = (id_for(base, low), id_for(index, low));
    let mut m = Mem::new(
        MemBase::Reg(Reg::new(addr, base).expect("base")),
        disp as i64,
    );
    use OperandKind as K;
    let vsib = match kind {
        K::Vm32x | K::Vm64x => Some(RegKind::Xmm),
        K::Vm32y | K::Vm64y => Some(RegKind::Ymm),
        K::Vm32z | K::Vm64z => Some(RegKind::Zmm),
        _ => None,
    };
    if let Some(vk) = vsib {
        m = m.with_index(Reg::new(vk, [2u8, 18, 7][v]).expect("vsib"), 4);
    } else if matches!(kind, K::MemSib | K::MemMib) {
        m = m.with_index(
            Reg::new(addr, id_for([17u8, 20, 22][v], low)).expect("index"),
            1,
        );
    } else if scale != 0 {
        m = m.with_index(Reg::new(addr, index).expect("index"), scale);
    }
    m.with_size(form.mem_size())
}

/// Operands and options for `form`, variant `v`; `None` when the form has
/// an operand this test does not generate (branches, far pointers, moffs).
fn sample(form: &Form, v: usize, low: bool) -> Option<(Vec<Operand>, InstOptions)> {
    use OperandKind as K;
    let evex = form.encoding() == Encoding::Evex;
    // APX forms: registers, then two memory variants; the others: memory, then registers.
    let use_mem = if form.is_apx() { v != 0 } else { v == 0 };
    let mut ops = Vec::new();
    let mut gp_slot = 0;
    for (slot, &kind) in form.explicit_kinds().iter().enumerate() {
        let mut gp = |k: RegKind| {
            let id = id_for(GP_IDS[v][gp_slot % 4], low);
            gp_slot += 1;
            reg(k, id)
        };
        let vec_id = if evex {
            [5u8, 21, 30][v] + slot as u8 % 2
        } else {
            [5u8, 9, 14][v] + slot as u8 % 2
        };
        let op = match kind {
            K::R8M | K::R16M | K::R32M | K::R64M | K::XmmM | K::YmmM | K::ZmmM | K::KM | K::MmM
                if use_mem =>
            {
                Operand::Mem(sample_mem(form, kind, v, low))
            }
            K::R8M | K::R8 | K::R8Op | K::R8V => gp(RegKind::Gp8),
            K::R16M | K::R16 | K::R16Op | K::R16Rm | K::R16V | K::R16Addr => gp(RegKind::Gp16),
            K::R32M | K::R32 | K::R32Op | K::R32Rm | K::R32V | K::R32Addr => gp(RegKind::Gp32),
            K::R64M | K::R64 | K::R64Op | K::R64Rm | K::R64V | K::R64Addr => gp(RegKind::Gp64),
            K::Xmm | K::XmmRm | K::XmmV | K::XmmIs4 | K::XmmM => reg(RegKind::Xmm, vec_id),
            K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmM => reg(RegKind::Ymm, vec_id),
            K::Zmm | K::ZmmRm | K::ZmmV | K::ZmmM => reg(RegKind::Zmm, vec_id),
            K::Mm | K::MmRm | K::MmM => reg(RegKind::Mm, 2 + slot as u8),
            K::K | K::KRm | K::KV | K::KM => reg(RegKind::K, 1 + slot as u8),
            K::Tmm | K::TmmRm | K::TmmV => reg(RegKind::Tmm, 1 + slot as u8),
            K::Al => reg(RegKind::Gp8, 0),
            K::Cl => reg(RegKind::Gp8, 1),
            K::Ax => reg(RegKind::Gp16, 0),
            K::Dx => reg(RegKind::Gp16, 2),
            K::Eax => reg(RegKind::Gp32, 0),
            K::Rax => reg(RegKind::Gp64, 0),
            K::Imm4 => Operand::Imm([3, 0, 15][v]),
            K::Imm8 => Operand::Imm([0x12, 0x7f, 0xfe][v]),
            K::One => Operand::Imm(1),
            K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 => Operand::Imm([-2, 0x7f, -128][v]),
            K::Imm16 => Operand::Imm([0x1234, 0x7fff, 0xfffe][v]),
            K::Imm32 => Operand::Imm([0x1234_5678, 0x7fff_ffff, 0x8000_0000][v]),
            K::Imm32Sx64 => Operand::Imm([-0x1000_0000, 0x7fff_ffff, -2][v]),
            K::Imm64 => Operand::Imm([0x1234_5678_9abc_def0, -0x1_0000_0000, 0x8000_0000][v]),
            K::Mem
            | K::MemSib
            | K::MemMib
            | K::Vm32x
            | K::Vm32y
            | K::Vm32z
            | K::Vm64x
            | K::Vm64y
            | K::Vm64z => Operand::Mem(sample_mem(form, kind, v, low)),
            _ => return None,
        };
        ops.push(op);
    }
    let mut options = InstOptions::NONE;
    if form.has_apx(apx::NF) && v == 1 {
        options |= InstOptions::NF;
    }
    if form.has_apx(apx::SCC) {
        options |= InstOptions::dfv([0b1000, 0b1111, 0][v]);
    }
    // A promoted form that a legacy form also encodes: ask for it.
    let promoted_twin = form.is_apx()
        && evex
        && !form.has_apx(apx::ND)
        && !form.has_apx(apx::SCC)
        && !form.has_apx(apx::NF_FIXED);
    if promoted_twin && !options.contains(InstOptions::NF) && v != 1 {
        options |= InstOptions::EVEX;
    }
    if evex && form.has(flags::K_REQUIRED) {
        if let Some(Operand::Reg(r)) = ops.first_mut() {
            *r = r.with_decorators(Decorators::NONE.with_mask(KReg::from_id(2).expect("k2")));
        } else if let Some(Operand::Mem(m)) = ops.first_mut() {
            *m = m.k(KReg::from_id(2).expect("k2"));
        }
    }
    Some((ops, options))
}

/// Whether the test covers `form`: the APX forms, and the forms of the
/// other encodings that an extended register can reach (general-purpose
/// operands or memory).
fn covered(form: &Form) -> bool {
    use OperandKind as K;
    if form.modes() & modes::M64 == 0 || form.encoding() == Encoding::Amd3dNow {
        return false;
    }
    if form.is_apx() {
        return true;
    }
    form.explicit_kinds().iter().any(|k| {
        matches!(
            k,
            K::R8M
                | K::R16M
                | K::R32M
                | K::R64M
                | K::R8
                | K::R16
                | K::R32
                | K::R64
                | K::R8Op
                | K::R16Op
                | K::R32Op
                | K::R64Op
                | K::R16Rm
                | K::R32Rm
                | K::R64Rm
                | K::R32V
                | K::R64V
                | K::Mem
                | K::MemSib
                | K::XmmM
                | K::YmmM
                | K::ZmmM
                | K::KM
                | K::MmM
        )
    })
}

/// Runs `program args` with `input` on stdin.
fn run_tool(program: &str, args: &[&str], input: &str) -> (String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is needed (apt-get install llvm-22, as .ci/run does): {e}")
        });
    let mut stdin = child.stdin.take().expect("stdin");
    let text = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("run the oracle");
    let _ = writer.join();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// llvm-mc-22's answer per numbered line: its printed text and bytes.
fn llvm_encodings(lines: &[String]) -> BTreeMap<usize, (String, Vec<u8>)> {
    let mut input = String::new();
    for (i, l) in lines.iter().enumerate() {
        input.push_str(&format!("i{i}:\n{l}\n"));
    }
    let (out, _) = run_tool(
        "llvm-mc-22",
        &[
            "-triple=x86_64",
            "-x86-asm-syntax=intel",
            "-output-asm-variant=1",
            "-show-encoding",
        ],
        &input,
    );
    let mut result = BTreeMap::new();
    let mut current = None;
    for l in out.lines() {
        if let Some(n) = l.strip_prefix('i').and_then(|r| r.strip_suffix(':')) {
            current = n.parse::<usize>().ok();
            continue;
        }
        let (Some(i), Some((text, enc))) = (current, l.split_once("# encoding: [")) else {
            continue;
        };
        let bytes: Vec<u8> = enc
            .trim_end_matches(']')
            .split(',')
            .filter_map(|b| u8::from_str_radix(b.trim().trim_start_matches("0x"), 16).ok())
            .collect();
        // `fsave` is printed as `wait` and `fnsave`: one instruction of ours.
        let entry = result
            .entry(i)
            .or_insert_with(|| (String::new(), Vec::new()));
        if !entry.0.is_empty() {
            entry.0.push_str("; ");
        }
        entry.0.push_str(&normalize(text));
        entry.1.extend(bytes);
    }
    result
}

/// Whitespace collapsed and numbers in decimal (llvm-mc prints `8`, llvm-objdump `0x8`).
fn normalize(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts_number {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = text[i..].starts_with("0x");
        let start = if hex { i + 2 } else { i };
        let mut end = start;
        while end < bytes.len()
            && (if hex {
                bytes[end].is_ascii_hexdigit()
            } else {
                bytes[end].is_ascii_digit()
            })
        {
            end += 1;
        }
        let value = u128::from_str_radix(&text[start..end], if hex { 16 } else { 10 });
        match value {
            Ok(v) => out.push_str(&v.to_string()),
            Err(_) => out.push_str(&text[i..end]),
        }
        i = end.max(i + 1);
    }
    out
}

/// llvm-objdump-22's text of each instruction of `code` (all of them back to back), by offset.
fn objdump(code: &[u8]) -> BTreeMap<usize, String> {
    let dir = std::env::temp_dir().join(format!("jitforge-apx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let object = dir.join("apx.o");
    let mut source = String::new();
    for chunk in code.chunks(32) {
        let bytes: Vec<String> = chunk.iter().map(|b| format!("{b:#04x}")).collect();
        source.push_str(&format!(".byte {}\n", bytes.join(",")));
    }
    let object_arg = format!("-o={}", object.display());
    let (_, err) = run_tool(
        "llvm-mc-22",
        &["-triple=x86_64", "-filetype=obj", &object_arg],
        &source,
    );
    assert!(err.is_empty(), "llvm-mc-22 -filetype=obj: {err}");
    let out = Command::new("llvm-objdump-22")
        .args(["-d", "-M", "intel", "--no-show-raw-insn"])
        .arg(&object)
        .output()
        .expect("run llvm-objdump-22");
    let _ = std::fs::remove_dir_all(&dir);
    let mut result = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((offset, text)) = l.split_once(':') else {
            continue;
        };
        if let Ok(offset) = usize::from_str_radix(offset.trim(), 16) {
            result.insert(offset, normalize(text));
        }
    }
    result
}

struct Case {
    text: String,
    ours: Result<Vec<u8>, String>,
    form: &'static Form,
    /// The same instruction with r8-r15 in place of r16-r31 (`None` for APX
    /// forms): where jitforge and llvm-mc-22 already differ there (an
    /// equivalent encoding, an alias llvm-mc does not read), the r16-r31
    /// version is not APX's to judge.
    shadow: Option<(String, Result<Vec<u8>, String>)>,
}

/// r16-r31 as r8-r15 (for the shadow of an instruction), or as is.
fn id_for(id: u8, low: bool) -> u8 {
    if low && id >= 16 { (id & 7) | 8 } else { id }
}

fn encode(mnemonic: Mnemonic, ops: &[Operand], options: InstOptions) -> Result<Vec<u8>, String> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    a.emit_with(mnemonic, ops, options)
        .map_err(|e| e.to_string())?;
    Ok(code.text().to_vec())
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for mnemonic in Mnemonic::ALL {
        for form in mnemonic.forms() {
            if !covered(form) {
                continue;
            }
            // Forms outside APX get two variants (memory, registers).
            let variants = if form.is_apx() { 3 } else { 2 };
            for v in 0..variants {
                let Some((ops, options)) = sample(form, v, false) else {
                    continue;
                };
                let ours = encode(mnemonic, &ops, options);
                let text = format_instruction(mnemonic, &ops, options, Arch::X64);
                let shadow =
                    sample(form, v, true)
                        .filter(|_| !form.is_apx())
                        .map(|(low, options)| {
                            (
                                format_instruction(mnemonic, &low, options, Arch::X64),
                                encode(mnemonic, &low, options),
                            )
                        });
                cases.push(Case {
                    text,
                    ours,
                    form,
                    shadow,
                });
            }
        }
    }
    cases
}

/// What llvm-mc-22 accepts but the APX spec forbids (ORACLES.md).
fn llvm_accepts_wrongly(text: &str) -> bool {
    let pair = ["push2", "pop2"].iter().any(|m| text.starts_with(m));
    pair && (text.contains("rsp") || text.contains("pop2"))
}

#[test]
fn apx_forms_match_llvm_mc_22_and_decode_back() {
    let cases = cases();
    let mut lines: Vec<String> = cases.iter().map(|c| c.text.clone()).collect();
    let mut shadow_line = vec![usize::MAX; cases.len()];
    for (i, case) in cases.iter().enumerate() {
        if let Some((text, _)) = &case.shadow {
            shadow_line[i] = lines.len();
            lines.push(text.clone());
        }
    }
    let llvm = llvm_encodings(&lines);
    let mut inherited = 0;
    let mut verified = vec![false; cases.len()];
    let mut other_bytes = Vec::new();
    let mut same = 0;
    let mut both_reject = 0;
    let mut avx10_only = 0;
    let mut failures = Vec::new();
    let mut per_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let group = if case.form.is_apx() {
            "apx forms"
        } else {
            match case.form.encoding() {
                Encoding::Legacy => "legacy (REX2)",
                Encoding::Evex => "evex (B4/X4/R4/V4)",
                _ => "vex/xop (rejected)",
            }
        };
        let entry = per_group.entry(group).or_default();
        entry.0 += 1;
        if let Some((_, low)) = &case.shadow {
            let theirs = llvm.get(&shadow_line[i]).map(|t| &t.1);
            let agree = match (low, theirs) {
                (Ok(a), Some(b)) => a == b,
                (Err(_), None) => true,
                _ => false,
            };
            if !agree {
                inherited += 1;
                continue;
            }
        }
        match (&case.ours, llvm.get(&i)) {
            (Ok(ours), Some((_, theirs))) if ours == theirs => {
                same += 1;
                entry.1 += 1;
                verified[i] = true;
            }
            // Other bytes: right only if llvm-objdump-22 reads ours as the
            // instruction llvm-mc-22 read (checked with the decoding below).
            (Ok(_), Some(_)) => {
                other_bytes.push(i);
                entry.1 += 1;
            }
            (Ok(ours), None) => failures.push(format!(
                "{}: jitforge {} but llvm-mc-22 rejects it",
                case.text,
                hex(ours)
            )),
            (Err(_), None) => {
                both_reject += 1;
                entry.1 += 1;
            }
            (Err(e), Some((_, theirs))) => {
                // llvm-mc-22 takes some VEX-only instructions with r16-r31 in
                // AVX10.2's EVEX forms, which the database does not have.
                let vex_form = matches!(case.form.encoding(), Encoding::Vex | Encoding::Xop);
                if vex_form && theirs.first() == Some(&0x62) {
                    avx10_only += 1;
                    entry.1 += 1;
                } else if llvm_accepts_wrongly(&case.text) {
                    entry.1 += 1;
                } else {
                    failures.push(format!(
                        "{}: jitforge rejects ({e}), llvm-mc-22 gives {}",
                        case.text,
                        hex(theirs)
                    ));
                }
            }
        }
    }
    for (group, (n, ok)) in &per_group {
        println!("{group}: {n} instructions, {ok} agree with llvm-mc-22");
    }
    println!(
        "{} instructions: {same} same bytes, {} other bytes (decoded back to the same instruction below), {both_reject} rejected by both, {avx10_only} VEX-only forms llvm-mc-22 takes as AVX10.2 EVEX, {inherited} not judged (jitforge and llvm-mc-22 already differ with r8-r15)",
        cases.len(),
        other_bytes.len()
    );
    for f in failures.iter().take(400) {
        println!("  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} instructions differ from llvm-mc-22",
        failures.len()
    );
    assert!(same > 3000, "only {same} instructions compared");
    // Every APX form is checked by at least one of its instructions.
    let unverified: Vec<String> = Mnemonic::ALL
        .iter()
        .flat_map(|m| m.forms())
        .filter(|f| f.is_apx())
        .filter(|f| {
            !cases
                .iter()
                .enumerate()
                .any(|(i, c)| std::ptr::eq(c.form, *f) && (verified[i] || other_bytes.contains(&i)))
        })
        .map(|f| format!("{} {:?}", f.mnemonic().name(), f.explicit_kinds()))
        .collect();
    assert!(
        unverified.is_empty(),
        "APX forms not verified: {unverified:?}"
    );

    // Decode everything we encoded, back to back, with llvm-objdump-22: each
    // instruction starts where ours does and reads as what llvm-mc read.
    let mut code = Vec::new();
    let mut starts = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if let (Ok(bytes), true) = (&case.ours, verified[i] || other_bytes.contains(&i)) {
            starts.push((code.len(), i));
            code.extend_from_slice(bytes);
        }
    }
    let decoded = objdump(&code);
    let mut mismatches = Vec::new();
    for (n, &(offset, i)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(code.len(), |s| s.0);
        // `fsave` is `wait` + `fnsave` to both tools: compare the last instruction.
        let expected = llvm[&i].0.rsplit("; ").next().unwrap_or_default();
        let inside: Vec<(&usize, &String)> = decoded.range(offset..end).collect();
        match (inside.first(), inside.last()) {
            (Some(&(&first, _)), Some(&(_, text))) if first == offset => {
                let text = text.split(" # ").next().unwrap_or_default();
                // llvm-objdump-22 prints `movq xmm, r16` as the MMX form (ORACLES.md).
                let movq = text.starts_with("movq") && expected.starts_with("movq");
                if !same_text(text, expected) && !movq {
                    mismatches.push(format!(
                        "{}: llvm-objdump-22 reads {text:?}, llvm-mc-22 printed {expected:?}",
                        cases[i].text
                    ));
                }
            }
            _ => mismatches.push(format!(
                "{}: no instruction starts at offset {offset:#x}",
                cases[i].text
            )),
        }
    }
    // `jitforge asm --each` (the command line) says the same as the library.
    let mut input = String::new();
    for case in &cases {
        input.push_str(&case.text);
        input.push('\n');
    }
    let (each, _) = run_tool(
        env!("CARGO_BIN_EXE_jitforge"),
        &["asm", "--each", "-"],
        &input,
    );
    let answers: Vec<&str> = each.lines().collect();
    assert_eq!(answers.len(), cases.len(), "one answer per line");
    for (case, answer) in cases.iter().zip(&answers) {
        match &case.ours {
            Ok(bytes) => assert_eq!(*answer, hex(bytes), "jitforge asm --each: {}", case.text),
            Err(_) => assert!(
                answer.starts_with("error"),
                "jitforge asm --each accepts {}: {answer}",
                case.text
            ),
        }
    }

    for m in mismatches.iter().take(40) {
        println!("  {m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} instructions decode differently",
        mismatches.len()
    );
}

/// Numbers (a leading `-` included) and the text between them.
fn tokens(text: &str) -> Vec<Result<i128, String>> {
    let text = text.replace("{evex} ", "");
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let negative = bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        let at = if negative { i + 1 } else { i };
        let starts_number = bytes[at].is_ascii_digit()
            && (at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_')
                || negative);
        if starts_number {
            let end = (at..bytes.len())
                .find(|&j| !bytes[j].is_ascii_digit())
                .unwrap_or(bytes.len());
            let v: i128 = text[at..end].parse().unwrap_or(0);
            out.push(Ok(if negative { -v } else { v }));
            i = end;
        } else {
            out.push(Err((bytes[i] as char).to_string()));
            i += 1;
        }
    }
    out
}

/// Whether two normalized texts say the same: `{evex}` (printed only when
/// written) aside, and an immediate printed signed by one tool and unsigned
/// by the other (`-2` and `254` for an imm8) counting as the same.
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (tokens(a), tokens(b));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| match (x, y) {
            (Ok(x), Ok(y)) => {
                x == y
                    || [8u32, 16, 32, 64].iter().any(|w| {
                        (x - y).rem_euclid(1i128 << w) == 0 && x.abs().max(y.abs()) < 1i128 << w
                    })
            }
            _ => x == y,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn apx_rules_are_enforced_with_clear_errors() {
    let check = |arch: Arch, text: &str, needle: &str| {
        let mut a = jitforge::x86::text::LineAssembler::new(arch);
        match a.assemble(text) {
            Ok(bytes) => panic!("{text}: accepted as {}", hex(&bytes)),
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{text}: error {e:?} does not say {needle:?}"
            ),
        }
    };
    check(Arch::X64, "push2 rsp, rax", "cannot take rsp");
    check(Arch::X64, "pop2 rax, rsp", "cannot take rsp");
    check(Arch::X64, "pop2 rbx, rbx", "twice");
    check(Arch::X64, "lock {nf} add qword ptr [rax], rbx", "lock");
    check(Arch::X64, "add ah, r16b", "REX2");
    check(Arch::X64, "pshufb xmm1, xmmword ptr [r16]", "REX2");
    check(Arch::X64, "{rex2} jne 0x10", "REX2");
    check(Arch::X64, "{rex2} vaddps xmm1, xmm2, xmm3", "{rex2}");
    check(Arch::X86, "{rex2} add eax, ebx", "64-bit mode");
    check(Arch::X64, "jne r16", "expected label or address");
    check(Arch::X86, "add r16d, eax", "32-bit mode");
    check(Arch::X86, "push2 ebx, eax", "not valid in 32-bit mode");
    check(Arch::X86, "{nf} add eax, ebx", "64-bit mode");
    // {nf} only where the form writes flags and APX defines it.
    check(Arch::X64, "{nf} mov rax, rbx", "no {nf} form");
}

#[test]
fn apx_forms_are_64_bit_only_and_need_apx_f() {
    let mut apx_forms = 0;
    for m in Mnemonic::ALL {
        for f in m.forms() {
            if f.apx() != 0 || f.map() == OpcodeMap::Map4 {
                assert!(
                    f.is_apx(),
                    "{} {:?} has APX bits but not apx_f",
                    m.name(),
                    f
                );
            }
            if f.is_apx() {
                apx_forms += 1;
                assert_eq!(
                    f.modes(),
                    modes::M64,
                    "{} is APX but valid in 32-bit mode",
                    m.name()
                );
            }
        }
    }
    assert!(apx_forms > 1000, "{apx_forms} APX forms");
}

#[test]
fn typed_api_takes_apx_registers_and_options() {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    a.add(r16, r17).expect("add r16, r17");
    a.nf().add(r16, r17).expect("{nf} add");
    a.add_3(rax, rbx, rcx).expect("add rax, rbx, rcx");
    a.dfv(0b1000).ccmpe(rax, rbx).expect("ccmpe {dfv=of}");
    a.push2(rbx, rax).expect("push2");
    assert!(a.push2(rsp, rax).is_err(), "push2 rsp");
    a.mov(r31d, dword_ptr(r16 + r17 * 4 + 8))
        .expect("mov r31d, [r16 + r17*4 + 8]");
    // The same bytes as llvm-mc-22 gives for this text.
    assert_eq!(
        hex(code.text()),
        "d55801c862ecfc0c01c862f4fc1801cb62f4c40439d862f46418fff0d5748b7c8808"
    );
}

/// `{rex2}` where no register needs it: the bytes llvm-mc-22 gives.
#[test]
fn rex2_pseudo_prefix() {
    let mut a = jitforge::x86::text::LineAssembler::new(Arch::X64);
    for (text, bytes) in [
        ("{rex2} add eax, ebx", "d50001d8"),
        ("{rex2} mov rax, qword ptr [rbx]", "d5088b03"),
        ("{rex2} imul eax, ecx", "d580afc1"),
        ("{rex2} movaps xmm1, xmm2", "d58028ca"),
        ("{rex2} add r8, r9", "d50d01c8"),
    ] {
        assert_eq!(hex(&a.assemble(text).expect(text)), bytes, "{text}");
    }
}

#[test]
fn condition_code_aliases_reach_the_apx_mnemonics() {
    let mut a = jitforge::x86::text::LineAssembler::new(Arch::X64);
    for (alias, name) in [
        ("ccmpz {dfv=of} rax, rbx", "ccmpe {dfv=of} rax, rbx"),
        ("ctestc {dfv=} rax, rbx", "ctestb {dfv=} rax, rbx"),
        ("cfcmovz rax, rbx", "cfcmove rax, rbx"),
        ("setzunae al", "setzub al"),
    ] {
        assert_eq!(
            a.assemble(alias).expect(alias),
            a.assemble(name).expect(name),
            "{alias}"
        );
    }
}

#[test]
fn extended_registers_need_apx_f() {
    use jitforge::x86::cpu::CpuFeatures;
    let ops: [Operand; 2] = [r16.into(), rax.into()];
    let mut cpu = CpuFeatures::new();
    cpu.insert(CpuFeature::Intel8086);
    cpu.insert(CpuFeature::X64);
    let err = validate_for_cpu(Arch::X64, &cpu, Mnemonic::Add, &ops, InstOptions::NONE)
        .expect_err("r16 without apx_f");
    assert!(err.to_string().contains("apx_f"), "{err}");
    cpu.insert(CpuFeature::ApxF);
    validate_for_cpu(Arch::X64, &cpu, Mnemonic::Add, &ops, InstOptions::NONE).expect("with apx_f");
    // An APX form names apx_f itself.
    let ndd: [Operand; 3] = [rax.into(), rbx.into(), rcx.into()];
    let form =
        validate(Arch::X64, Mnemonic::Add, &ndd, InstOptions::NONE).expect("add rax, rbx, rcx");
    assert!(form.cpu_features().contains(&CpuFeature::ApxF));
}
