//! Reads the instruction database text (`src/x86/db/instructions.txt`) into
//! [`Row`]s, checking every token, so that a typo in the data is an error with
//! its line number rather than a wrong table.

use std::fmt;

/// One parsed line of the database: one encoding form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The file the row comes from (set by the caller; empty by default).
    pub file: String,
    /// 1-based line number in the text.
    pub line: usize,
    /// Lower-case mnemonic.
    pub mnemonic: String,
    /// Operand tokens, in Intel order, implicit ones included.
    pub operands: Vec<String>,
    /// Access of each operand (`r`, `w`, `rw`, `cr`, `cw`, `rcw`, `n`, or empty).
    pub access: Vec<String>,
    /// Implicit registers with their access (`rdx:rw`).
    pub implicit: Vec<(String, String)>,
    /// Flags read (`cf`, `zf`, ...).
    pub flags_read: Vec<String>,
    /// Flags written.
    pub flags_written: Vec<String>,
    /// The parsed encoding column.
    pub encoding: Encoding,
    /// CPU features, all required.
    pub features: Vec<String>,
    /// Valid in 64-bit mode.
    pub mode64: bool,
    /// Valid in 32-bit mode.
    pub mode32: bool,
    /// Memory operand size in bytes (0: any / none).
    pub mem_size: u16,
    /// Broadcast element size in bytes (0: no broadcast).
    pub bcst_size: u8,
    /// EVEX disp8 scale without broadcast.
    pub disp8_n: u8,
    /// EVEX disp8 scale with broadcast.
    pub disp8_nb: u8,
    /// Flag words from the attribute column (`k`, `k!`, `z`, `er`, `sae`, `lock`, `nf`, ...).
    pub flags: Vec<String>,
    /// APX conditional forms (`ccmp`, `ctest`): the condition code in EVEX.SCC.
    pub scc: Option<u8>,
    /// `merge=N`: the destination's low N bytes are written and the rest
    /// kept, its old low part not read (bit 7: only with a register source,
    /// `merge=N.reg`).
    pub merge: u8,
    /// `rep.implicit=rcx:rw`: registers a `rep`/`repne` prefix adds (the count).
    pub rep_implicit: Vec<(String, String)>,
}

/// The encoding column.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Encoding {
    /// `legacy`, `vex`, `evex`, `xop` or `3dnow`.
    pub kind: String,
    /// Operand-size attribute: 0, 16, 32 or 64.
    pub operand_size: u8,
    /// Address-size attribute: 0, 16, 32 or 64.
    pub address_size: u8,
    /// Mandatory prefix: ``, `np`, `66`, `f3`, `f2`.
    pub prefix: String,
    /// Legacy REX.W.
    pub rex_w: bool,
    /// Opcode map: ``, `0f`, `0f38`, `0f3a`, `map5`, `map6`, `m8`, `m9`, `m10`.
    pub map: String,
    /// The opcode byte (for 3DNow!, the suffix byte).
    pub opcode: u8,
    /// A second fixed byte (a fixed ModRM such as `0f 01 d0`), if any.
    pub second: Option<u8>,
    /// ModRM usage: ``, `r`, `0`..`7`, `+r` (register in the opcode), `+i` (x87 register in the second byte).
    pub modrm: String,
    /// VEX/EVEX/XOP length: `128`, `256`, `512`, `lig`.
    pub l: String,
    /// VEX/EVEX/XOP W: `w0`, `w1`, `wig`, `w1.wig32`, `w0.wig32`.
    pub w: String,
    /// FWAIT (9B) first.
    pub fwait: bool,
    /// `rm=N`: a register form whose ModRM.rm is fixed to N (mod is 11).
    pub fixed_rm: Option<u8>,
    /// APX: EVEX.ND fixed to 1 (`.nd`).
    pub nd: bool,
    /// APX: EVEX.NF fixed to 1 (`.nf`).
    pub nf: bool,
    /// APX: a legacy form that always takes REX2 (`rex2`).
    pub rex2: bool,
}

/// A parse error with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Every operand token the database may use.
pub const OPERAND_TOKENS: &[&str] = &[
    "ptr16:16",
    "ptr16:32",
    "moffs",
    "m",
    "m.far",
    "m.mpx",
    "m.mib",
    "m.sib",
    "vm32x",
    "vm64x",
    "vm32y",
    "vm64y",
    "vm32z",
    "vm64z",
    "r8/m",
    "r16/m",
    "r32/m",
    "r32/m.mpx",
    "r64/m",
    "r64/m.mpx",
    "mm/m",
    "xmm/m",
    "ymm/m",
    "zmm/m",
    "bnd/m.mpx",
    "k/m",
    "r8",
    "r8.o",
    "r8.v",
    "r16",
    "r16.a",
    "r16.rm",
    "r16.o",
    "r16.v",
    "r32",
    "r32.a",
    "r32.rm",
    "r32.o",
    "r32.v",
    "r64",
    "r64.a",
    "r64.rm",
    "r64.o",
    "r64.v",
    "sreg",
    "k",
    "k.pair",
    "k.rm",
    "k.v",
    "mm",
    "mm.rm",
    "xmm",
    "xmm.rm",
    "xmm.v",
    "xmm.v4",
    "xmm.is4",
    "xmm.is5",
    "ymm",
    "ymm.rm",
    "ymm.v",
    "ymm.is4",
    "ymm.is5",
    "zmm",
    "zmm.rm",
    "zmm.v",
    "zmm.v4",
    "cr",
    "dr",
    "tr",
    "bnd",
    "es",
    "cs",
    "ss",
    "ds",
    "fs",
    "gs",
    "al",
    "cl",
    "ax",
    "dx",
    "eax",
    "rax",
    "st0",
    "st.o",
    "i4",
    "ib",
    "1",
    "ib.sx16",
    "ib.sx32",
    "ib.sx64",
    "iw",
    "id",
    "id.sx64",
    "iq",
    "[rsi]",
    "es:[rdi]",
    "[rdi]",
    "[rbx+al]",
    "rel8",
    "rel16",
    "rel32",
    "xrel16",
    "xrel32",
    "disp16",
    "disp32",
    "tmm",
    "tmm.rm",
    "tmm.v",
];

const FLAG_WORDS: &[&str] = &[
    "k", "k!", "z", "er", "sae", "lock", "xacquire", "xrelease", "rep", "repne", "bnd", "notrack",
    "nf",
];

/// Operand access words.
pub const ACCESS_WORDS: &[&str] = &["r", "w", "rw", "cr", "cw", "rcw", "n"];

/// Flag names, in bit order of the runtime `Flags` type.
pub const FLAG_NAMES: &[&str] = &[
    "of", "sf", "zf", "af", "pf", "cf", "df", "if", "ac", "uif", "c0", "c1", "c2", "c3",
];

fn parse_flags(line: usize, text: &str) -> Result<Vec<String>, ParseError> {
    text.split(',')
        .map(|f| {
            if FLAG_NAMES.contains(&f) {
                Ok(f.to_string())
            } else {
                Err(err(line, format!("unknown flag {f:?}")))
            }
        })
        .collect()
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Parses an encoding column (`o64 rex.w 0f 1f /0`); `line` names the row in errors.
pub(crate) fn parse_encoding(line: usize, text: &str) -> Result<Encoding, ParseError> {
    let mut e = Encoding {
        kind: "legacy".into(),
        ..Encoding::default()
    };
    let mut opcode_seen = false;
    for token in text.split_whitespace() {
        let hex = |t: &str| u8::from_str_radix(t, 16).ok().filter(|_| t.len() == 2);
        match token {
            "fwait" => e.fwait = true,
            "o16" => e.operand_size = 16,
            "o32" => e.operand_size = 32,
            "o64" => e.operand_size = 64,
            "a16" => e.address_size = 16,
            "a32" => e.address_size = 32,
            "a64" => e.address_size = 64,
            "np" | "66" | "f2" | "f3" if !opcode_seen && e.map.is_empty() => {
                e.prefix = token.into()
            }
            "rex.w" => e.rex_w = true,
            "rex2" => e.rex2 = true,
            "0f" | "0f38" | "0f3a" if !opcode_seen && e.map.is_empty() => e.map = token.into(),
            "3dnow" => {
                e.kind = "3dnow".into();
                e.map = "0f0f".into();
            }
            "/r" => e.modrm = "r".into(),
            t if t.starts_with("rm=")
                && t.len() == 4
                && (b'0'..=b'7').contains(&t.as_bytes()[3]) =>
            {
                e.fixed_rm = Some(t.as_bytes()[3] - b'0');
            }
            t if t.len() == 2 && t.starts_with('/') && (b'0'..=b'7').contains(&t.as_bytes()[1]) => {
                e.modrm = t[1..].into();
            }
            t if t.starts_with("vex.") || t.starts_with("evex.") || t.starts_with("xop.") => {
                let mut parts = t.split('.');
                e.kind = parts.next().unwrap_or_default().into();
                e.l = parts.next().unwrap_or_default().into();
                if !matches!(e.l.as_str(), "128" | "256" | "512" | "lig") {
                    return Err(err(line, format!("bad vector length in {t:?}")));
                }
                let rest: Vec<&str> = parts.collect();
                let mut w = String::new();
                for part in rest {
                    match part {
                        "66" | "f3" | "f2" => e.prefix = part.into(),
                        "0f" | "0f38" | "0f3a" | "map4" | "map5" | "map6" | "m8" | "m9" | "m10" => {
                            e.map = part.into()
                        }
                        "nd" => e.nd = true,
                        "nf" => e.nf = true,
                        "w0" | "w1" | "wig" => w = part.into(),
                        "wig32" => w.push_str(".wig32"),
                        _ => return Err(err(line, format!("unknown part {part:?} in {t:?}"))),
                    }
                }
                if w.is_empty() {
                    return Err(err(line, format!("no W in {t:?}")));
                }
                e.w = w;
            }
            t if t.len() == 4 && t.ends_with("+r") => {
                e.opcode = hex(&t[..2]).ok_or_else(|| err(line, format!("bad opcode {t:?}")))?;
                e.modrm = "+r".into();
                opcode_seen = true;
            }
            t if t.len() == 4 && t.ends_with("+i") => {
                e.second = Some(hex(&t[..2]).ok_or_else(|| err(line, format!("bad byte {t:?}")))?);
                e.modrm = "+i".into();
            }
            t if hex(t).is_some() => {
                let b = hex(t).unwrap_or_default();
                if e.kind == "3dnow" || !opcode_seen {
                    e.opcode = b;
                    opcode_seen = true;
                } else if e.second.is_none() {
                    e.second = Some(b);
                } else {
                    return Err(err(line, format!("too many opcode bytes at {t:?}")));
                }
            }
            t => return Err(err(line, format!("unknown encoding token {t:?}"))),
        }
    }
    if !opcode_seen {
        return Err(err(line, "no opcode byte"));
    }
    Ok(e)
}

/// Parses the whole database text.
pub fn parse_database(text: &str) -> Result<Vec<Row>, ParseError> {
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = content.split('|').map(str::trim).collect();
        if columns.len() != 6 {
            return Err(err(
                line,
                format!(
                    "expected 6 columns separated by '|', found {}",
                    columns.len()
                ),
            ));
        }
        let mnemonic = columns[0].to_string();
        if mnemonic.is_empty()
            || !mnemonic
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(err(line, format!("bad mnemonic {mnemonic:?}")));
        }
        let mut operands: Vec<String> = Vec::new();
        let mut access: Vec<String> = Vec::new();
        for token in columns[1].split_whitespace() {
            let (kind, acc) = token
                .rsplit_once(':')
                .filter(|(_, a)| ACCESS_WORDS.contains(a))
                .unwrap_or((token, ""));
            operands.push(kind.to_string());
            access.push(acc.to_string());
        }
        for op in &operands {
            if !OPERAND_TOKENS.contains(&op.as_str()) {
                return Err(err(line, format!("unknown operand kind {op:?}")));
            }
        }
        if operands.len() > 5 {
            return Err(err(line, "more than 5 operands"));
        }
        let encoding = parse_encoding(line, columns[2])?;
        let features: Vec<String> = columns[3]
            .split('+')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut mode64 = false;
        let mut mode32 = false;
        for m in columns[4].split(',').map(str::trim) {
            match m {
                "64" => mode64 = true,
                "32" => mode32 = true,
                _ => return Err(err(line, format!("bad mode {m:?}"))),
            }
        }
        let mut row = Row {
            file: String::new(),
            line,
            mnemonic,
            operands,
            access,
            implicit: Vec::new(),
            flags_read: Vec::new(),
            flags_written: Vec::new(),
            encoding,
            features,
            mode64,
            mode32,
            mem_size: 0,
            bcst_size: 0,
            disp8_n: 1,
            disp8_nb: 1,
            flags: Vec::new(),
            scc: None,
            merge: 0,
            rep_implicit: Vec::new(),
        };
        for attr in columns[5].split_whitespace() {
            let number = |v: &str| {
                v.parse::<u16>()
                    .map_err(|_| err(line, format!("bad number in {attr:?}")))
            };
            if let Some(v) = attr.strip_prefix("m=") {
                row.mem_size = number(v)?;
            } else if let Some(v) = attr.strip_prefix("bcst=") {
                row.bcst_size = number(v)? as u8;
            } else if let Some(v) = attr.strip_prefix("nb=") {
                row.disp8_nb = number(v)? as u8;
            } else if let Some(v) = attr.strip_prefix("n=") {
                row.disp8_n = number(v)? as u8;
            } else if let Some(v) = attr.strip_prefix("rep.implicit=") {
                for item in v.split(',') {
                    let (reg, acc) = item
                        .split_once(':')
                        .filter(|(_, a)| ACCESS_WORDS.contains(a))
                        .ok_or_else(|| err(line, format!("bad implicit operand {item:?}")))?;
                    row.rep_implicit.push((reg.to_string(), acc.to_string()));
                }
            } else if let Some(v) = attr.strip_prefix("implicit=") {
                for item in v.split(',') {
                    let (reg, acc) = item
                        .split_once(':')
                        .filter(|(_, a)| ACCESS_WORDS.contains(a))
                        .ok_or_else(|| err(line, format!("bad implicit operand {item:?}")))?;
                    row.implicit.push((reg.to_string(), acc.to_string()));
                }
            } else if let Some(v) = attr.strip_prefix("fr=") {
                row.flags_read = parse_flags(line, v)?;
            } else if let Some(v) = attr.strip_prefix("fw=") {
                row.flags_written = parse_flags(line, v)?;
            } else if let Some(v) = attr.strip_prefix("merge=") {
                let (n, reg_only) = match v.strip_suffix(".reg") {
                    Some(n) => (n, true),
                    None => (v, false),
                };
                let n = number(n)?;
                if !matches!(n, 1..=64) {
                    return Err(err(line, format!("bad merge size in {attr:?}")));
                }
                row.merge = n as u8 | if reg_only { 0x80 } else { 0 };
            } else if let Some(v) = attr.strip_prefix("scc=") {
                row.scc = Some(number(v)?.min(15) as u8);
            } else if FLAG_WORDS.contains(&attr) {
                row.flags.push(attr.to_string());
            } else {
                return Err(err(line, format!("unknown attribute {attr:?}")));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}
