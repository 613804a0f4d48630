//! The Intel-syntax parser: one line or a whole program, in the dialect that
//! llvm-mc (`-x86-asm-syntax=intel`) and GNU as (`.intel_syntax noprefix`)
//! read.
//!
//! A line is `[label:]... [statement] [comment]`; a label is a name
//! (`loop:`, `.Lloop:`) or a GNU numeric local label (`1:`, referred to as
//! `1b` backward and `1f` forward). Comments start with `;`, `#` or `//`.
//! A statement is a directive (`.byte`, `.word`, `.long`, `.quad`,
//! `db`..`dq`, `.ascii`, `.asciz`, `.zero`, `.align`, `.section`, `.equ`...)
//! or an instruction: prefixes (`lock`, `rep`, `{evex}`...), a mnemonic
//! (including the aliases and compare pseudo-ops the assemblers accept, such
//! as `jz`, `sal`, `cmpltps`, `vpcmpnltud`), and operands: registers with
//! `{k1}{z}`, memory (`qword ptr fs:[rax + rcx*8 - 0x10]{1to8}`), immediates,
//! label references, and a rounding operand (`{rn-sae}`, `{sae}`).
//!
//! Conventions where the assemblers differ or the text is ambiguous:
//! - `iret` is the SDM's 16-bit form (`iretw`, as llvm-mc reads it); `pushf`,
//!   `popf`, `pusha`, `popa` are the mode's default size (`pushfq`/`pushfd`).
//! - unsized `ljmp`/`lcall [m]` is m16:64 in 64-bit mode (llvm-mc, AsmJit),
//!   m16:32 in 32-bit mode; `call fword ptr [m]` / `tbyte ptr` select it too.
//! - `movabs r64, imm` is always the 10-byte form; `pushw imm` the 16-bit one.
//! - an absolute address beyond 32 bits (`mov al, [0x123456789]`) takes the
//!   accumulator's 64-bit `moffs` form, as with `movabs` (GNU as does the same).
//! - `{disp8}`/`{disp32}` are accepted and ignored (shortest displacement).
//! - `shl r/m` alone shifts by one; `fxch`, `fcom`, `faddp`... alone use `st(1)`;
//!   `lodsb` and `lodsb al, byte ptr [rsi]` are the same instruction.
//!
//! The parser knows the instruction database: it reports, at the exact column,
//! an operand that no form of the mnemonic can take (an immediate that is too
//! large, a size keyword no form accepts, a write mask on an instruction that
//! takes none). Errors carry a 1-based line and column. No input panics.

use super::super::db::{Form, Mnemonic, OperandKind as K, flags, modes};
use super::super::{InstOptions, KReg, Mem, MemBase, Operand, Reg, RegKind, Rounding};
use crate::code::{Arch, Label};
use std::collections::HashMap;
use std::fmt;

/// A parse (or assembly) error at a line and column (both 1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line number (1-based).
    pub line: usize,
    /// Column (1-based, in bytes).
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ParseError {
    fn new(column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: 1,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A memory operand whose address is a label: `[label + disp]` or `[rip + label]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMem {
    /// The label name.
    pub name: String,
    /// Displacement added to the label's address.
    pub disp: i64,
    /// Size in bytes (0: none given).
    pub size: u16,
    /// Segment override.
    pub segment: Option<Reg>,
    /// `{1toN}` broadcast: N, or 0 for none.
    pub broadcast: u8,
    /// Write mask (`{k1}`), 0 for none.
    pub mask: u8,
}

impl LabelMem {
    /// The memory operand with the label resolved.
    pub fn to_mem(&self, label: Label) -> Mem {
        let mut m = Mem::new(MemBase::Label(label), self.disp).with_size(self.size);
        if let Some(s) = self.segment {
            m = m.with_segment(s);
        }
        if self.broadcast != 0 {
            m = m.bcst_n(self.broadcast);
        }
        if let Some(k) = KReg::from_id(self.mask).filter(|_| self.mask != 0) {
            m = m.k(k);
        }
        m
    }
}

/// An operand as parsed: concrete, or naming a label not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParsedOperand {
    /// A register, memory operand or immediate.
    Op(Operand),
    /// A label used as a branch target.
    Label(String),
    /// A memory operand addressed through a label.
    LabelMem(LabelMem),
}

/// One parsed instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedInstruction {
    /// The mnemonic (pseudo-ops and aliases already translated).
    pub mnemonic: Mnemonic,
    /// The explicit operands in Intel order (a compare pseudo-op's predicate appended).
    pub operands: Vec<ParsedOperand>,
    /// Column of each operand (1-based).
    pub columns: Vec<usize>,
    /// Prefixes, hints, rounding.
    pub options: InstOptions,
    /// Column of the mnemonic.
    pub column: usize,
    /// The prefixes as written (lower case, `{vex}` with its braces) and their columns.
    pub prefixes: Vec<(String, usize)>,
}

impl ParsedInstruction {
    /// The operands with labels resolved by `resolve` (which may create them).
    pub fn resolve<E>(
        &self,
        mut resolve: impl FnMut(&str) -> Result<Label, E>,
    ) -> Result<Vec<Operand>, E> {
        self.operands
            .iter()
            .map(|op| {
                Ok(match op {
                    ParsedOperand::Op(o) => *o,
                    ParsedOperand::Label(name) => Operand::Label(resolve(name)?),
                    ParsedOperand::LabelMem(m) => Operand::Mem(m.to_mem(resolve(&m.name)?)),
                })
            })
            .collect()
    }

    /// The label names this instruction refers to.
    pub fn label_refs(&self) -> impl Iterator<Item = &str> {
        self.operands.iter().filter_map(|op| match op {
            ParsedOperand::Label(n) => Some(n.as_str()),
            ParsedOperand::LabelMem(m) => Some(m.name.as_str()),
            ParsedOperand::Op(_) => None,
        })
    }
}

/// A value of a data directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataValue {
    /// An integer.
    Int(i64),
    /// The address of a label (pointer-sized directives only).
    Label(String),
    /// Bytes of a string literal (`db "abc"`).
    Bytes(Vec<u8>),
}

/// What a statement does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// `name:` binds a label here.
    Label(String),
    /// An instruction.
    Instruction(ParsedInstruction),
    /// `.byte`/`.word`/`.long`/`.quad`/`db`..`dq`: `size` bytes per value.
    Data {
        /// Bytes per value: 1, 2, 4 or 8.
        size: u8,
        /// The values.
        values: Vec<DataValue>,
    },
    /// `.align N` (bytes, a power of two).
    Align(u32),
    /// `.section NAME` (also `.text`, `.data`, `.rodata`).
    Section(String),
    /// `.equ NAME, VALUE` / `.set NAME, VALUE`: a named constant for the lines that follow.
    Constant {
        /// The name.
        name: String,
        /// The value.
        value: i64,
    },
}

/// A statement with its position and source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Line (1-based).
    pub line: usize,
    /// Column of the statement's first character (1-based).
    pub column: usize,
    /// The source text of the statement (no comment, trimmed).
    pub text: String,
    /// What it does.
    pub kind: StatementKind,
}

// ---------------------------------------------------------------- lexer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    Num(u64),
    Punct(u8),
    Brace(&'a str),
    Str(&'a str),
    End,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    col: usize,
    end: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'$' | b'@')
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'@')
}

fn parse_number(text: &str, col: usize) -> Result<u64, ParseError> {
    let lower = text.to_ascii_lowercase();
    let bad = || ParseError::new(col, format!("bad number `{text}`"));
    let too_large = || {
        ParseError::new(
            col,
            format!("number `{text}` is too large (more than 64 bits)"),
        )
    };
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h.to_string(), 16)
    } else if lower.len() > 1
        && lower.ends_with('h')
        && lower[..lower.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    {
        (lower[..lower.len() - 1].to_string(), 16)
    } else if let Some(b) = lower
        .strip_prefix("0b")
        .filter(|b| !b.is_empty() && b.bytes().all(|c| c == b'0' || c == b'1'))
    {
        (b.to_string(), 2)
    } else {
        (lower.clone(), 10)
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return Err(bad());
    }
    u64::from_str_radix(&digits, radix).map_err(|_| too_large())
}

fn lex(line: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let bytes = line.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let col = i + 1;
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b';' || b == b'#' || (b == b'/' && bytes.get(i + 1) == Some(&b'/')) {
            break;
        } else if b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &line[start..i];
            // `1b` / `1f`: a reference to the previous / next numeric local label `1:`.
            let (digits, last) = word.split_at(word.len() - 1);
            if matches!(last, "b" | "f" | "B" | "F")
                && !digits.is_empty()
                && digits.bytes().all(|c| c.is_ascii_digit())
            {
                out.push(Token {
                    tok: Tok::Ident(word),
                    col,
                    end: i,
                });
                continue;
            }
            let v = parse_number(word, col)?;
            out.push(Token {
                tok: Tok::Num(v),
                col,
                end: i,
            });
        } else if is_ident_start(b) {
            let start = i;
            while i < bytes.len() && is_ident_char(bytes[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(&line[start..i]),
                col,
                end: i,
            });
        } else if b == b'{' {
            let start = i + 1;
            let Some(close) = bytes[start..].iter().position(|&c| c == b'}') else {
                return Err(ParseError::new(col, "missing `}` after `{`"));
            };
            i = start + close + 1;
            out.push(Token {
                tok: Tok::Brace(line[start..start + close].trim()),
                col,
                end: i,
            });
        } else if b == b'\'' {
            // A character constant: 'a', '\n', '\''.
            let (value, len) = match (bytes.get(i + 1), bytes.get(i + 2), bytes.get(i + 3)) {
                (Some(b'\\'), Some(&c), Some(b'\'')) => {
                    (unescape(&format!("\\{}", c as char))[0], 4)
                }
                (Some(&c), Some(b'\''), _) if c.is_ascii() && c != b'\\' => (c, 3),
                _ => return Err(ParseError::new(col, "bad character constant: expected 'c'")),
            };
            i += len;
            out.push(Token {
                tok: Tok::Num(value as u64),
                col,
                end: i,
            });
        } else if b == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j] != b'"' {
                if bytes[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            if j >= bytes.len() {
                return Err(ParseError::new(col, "missing closing `\"`"));
            }
            i = j + 1;
            out.push(Token {
                tok: Tok::Str(&line[start..j]),
                col,
                end: i,
            });
        } else if b"[]+-*,:()~".contains(&b) {
            i += 1;
            out.push(Token {
                tok: Tok::Punct(b),
                col,
                end: i,
            });
        } else {
            let ch = line[i..].chars().next().unwrap_or('?');
            return Err(ParseError::new(col, format!("unexpected character `{ch}`")));
        }
    }
    out.push(Token {
        tok: Tok::End,
        col: bytes.len() + 1,
        end: bytes.len(),
    });
    Ok(out)
}

// ---------------------------------------------------------------- mnemonics

/// How the operands of a mnemonic are rewritten after parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    None,
    /// `lods`, `movs`... with explicit memory operands: size from the operands.
    StringOp(&'static str),
    /// `movabs`: 64-bit absolute addresses.
    Movabs,
    /// `ljmp`/`lcall`: far branches.
    Far,
    /// `xlat [rbx]`: the memory operand is implicit.
    Xlat,
    /// `pushw`/`popw`: the 16-bit form (`data16`).
    Data16,
}

const CC_CLASSES: &[&[&str]] = &[
    &["o"],
    &["no"],
    &["b", "c", "nae"],
    &["ae", "nb", "nc"],
    &["e", "z"],
    &["ne", "nz"],
    &["be", "na"],
    &["a", "nbe"],
    &["s"],
    &["ns"],
    &["p", "pe"],
    &["np", "po"],
    &["l", "nge"],
    &["ge", "nl"],
    &["le", "ng"],
    &["g", "nle"],
];

const SSE_PREDICATES: &[&str] = &["eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord"];

const AVX_PREDICATES: &[(&str, i64)] = &[
    ("eq", 0),
    ("lt", 1),
    ("le", 2),
    ("unord", 3),
    ("neq", 4),
    ("nlt", 5),
    ("nle", 6),
    ("ord", 7),
    ("eq_uq", 8),
    ("nge", 9),
    ("ngt", 10),
    ("false", 11),
    ("neq_oq", 12),
    ("ge", 13),
    ("gt", 14),
    ("true", 15),
    ("eq_os", 16),
    ("lt_oq", 17),
    ("le_oq", 18),
    ("unord_s", 19),
    ("neq_us", 20),
    ("nlt_uq", 21),
    ("nle_uq", 22),
    ("ord_s", 23),
    ("eq_us", 24),
    ("nge_uq", 25),
    ("ngt_uq", 26),
    ("false_os", 27),
    ("neq_os", 28),
    ("ge_oq", 29),
    ("gt_oq", 30),
    ("true_us", 31),
    ("eq_oq", 0),
    ("lt_os", 1),
    ("le_os", 2),
    ("unord_q", 3),
    ("neq_uq", 4),
    ("nlt_us", 5),
    ("nle_us", 6),
    ("ord_q", 7),
    ("nge_us", 9),
    ("ngt_us", 10),
    ("false_oq", 11),
    ("ge_os", 13),
    ("gt_os", 14),
    ("true_uq", 15),
];

const VPCMP_PREDICATES: &[(&str, i64)] = &[
    ("eq", 0),
    ("lt", 1),
    ("le", 2),
    ("false", 3),
    ("neq", 4),
    ("nlt", 5),
    ("nle", 6),
    ("true", 7),
];

const VPCOM_PREDICATES: &[(&str, i64)] = &[
    ("lt", 0),
    ("le", 1),
    ("gt", 2),
    ("ge", 3),
    ("eq", 4),
    ("neq", 5),
    ("false", 6),
    ("true", 7),
];

const PCLMUL_PREDICATES: &[(&str, i64)] = &[
    ("lqlq", 0x00),
    ("hqlq", 0x01),
    ("lqhq", 0x10),
    ("hqhq", 0x11),
];

/// The mnemonic a name means, with the predicate immediate of a compare
/// pseudo-op and how operands are rewritten.
fn resolve_mnemonic(name: &str, arch: Arch) -> Option<(Mnemonic, Option<i64>, Special)> {
    let x64 = arch == Arch::X64;
    let plain = |n: &str| Mnemonic::from_name(n).map(|m| (m, None, Special::None));
    let renamed = match name {
        "sal" => Some("shl"),
        "fcompi" => Some("fcomip"),
        // llvm-mc's spellings with the operand size spelled out.
        "pushal" => Some("pushad"),
        "popal" => Some("popad"),
        "lgdtd" | "lgdtq" => Some("lgdt"),
        "lidtd" | "lidtq" => Some("lidt"),
        "sgdtd" | "sgdtq" => Some("sgdt"),
        "sidtd" | "sidtq" => Some("sidt"),
        "fucompi" => Some("fucomip"),
        "fwait" => Some("wait"),
        "loopz" => Some("loope"),
        "loopnz" => Some("loopne"),
        "retn" => Some("ret"),
        "lret" => Some("retf"),
        "pushf" => Some(if x64 { "pushfq" } else { "pushfd" }),
        "popf" => Some(if x64 { "popfq" } else { "popfd" }),
        // The SDM's `iret` is the 16-bit form; llvm-mc agrees (AsmJit's vectors too).
        "iret" => Some("iretw"),
        "pusha" => Some("pushad"),
        "popa" => Some("popad"),
        "pushd" | "pushq" => Some("push"),
        "popd" | "popq" => Some("pop"),
        _ => None,
    };
    if let Some(n) = renamed {
        return plain(n);
    }
    match name {
        "pushw" => return Mnemonic::from_name("push").map(|m| (m, None, Special::Data16)),
        // objdump's names for the 16-bit x87 environment forms.
        "fldenvw" | "fnstenvw" | "fstenvw" | "frstorw" | "fnsavew" | "fsavew" => {
            return Mnemonic::from_name(&name[..name.len() - 1])
                .map(|m| (m, None, Special::Data16));
        }
        "popw" => return Mnemonic::from_name("pop").map(|m| (m, None, Special::Data16)),
        "movabs" => return Mnemonic::from_name("mov").map(|m| (m, None, Special::Movabs)),
        "ljmp" => return Mnemonic::from_name("jmp").map(|m| (m, None, Special::Far)),
        "lcall" => return Mnemonic::from_name("call").map(|m| (m, None, Special::Far)),
        "xlat" => return Mnemonic::from_name("xlatb").map(|m| (m, None, Special::Xlat)),
        "lods" | "stos" | "scas" | "movs" | "cmps" | "ins" | "outs" => {
            let base: &'static str = match name {
                "lods" => "lods",
                "stos" => "stos",
                "scas" => "scas",
                "movs" => "movs",
                "cmps" => "cmps",
                "ins" => "ins",
                _ => "outs",
            };
            // The real mnemonic depends on the operand size; `lodsb` stands in.
            return Mnemonic::from_name(&format!("{base}b"))
                .map(|m| (m, None, Special::StringOp(base)));
        }
        _ => {}
    }
    if let Some(found) = plain(name) {
        return Some(found);
    }
    // Condition-code aliases: jz, setnae, cmovpe, cmpnbexadd, and APX's
    // setzuz, cfcmovz, ccmpz, ctestc...
    for (prefix, suffix) in [
        ("j", ""),
        ("setzu", ""),
        ("set", ""),
        ("cfcmov", ""),
        ("cmov", ""),
        ("ccmp", ""),
        ("ctest", ""),
        ("cmp", "xadd"),
    ] {
        if let Some(cc) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            && let Some(class) = CC_CLASSES.iter().find(|c| c.contains(&cc))
        {
            for alt in class.iter() {
                if let Some(found) = plain(&format!("{prefix}{alt}{suffix}")) {
                    return Some(found);
                }
            }
        }
    }
    // Compare pseudo-ops.
    let with_pred =
        |base: String, imm: i64| Mnemonic::from_name(&base).map(|m| (m, Some(imm), Special::None));
    if let Some(rest) = name.strip_prefix("vpcom") {
        for suffix in ["ub", "uw", "ud", "uq", "b", "w", "d", "q"] {
            if let Some(pred) = rest.strip_suffix(suffix)
                && let Some((_, imm)) = VPCOM_PREDICATES.iter().find(|(p, _)| *p == pred)
            {
                return with_pred(format!("vpcom{suffix}"), *imm);
            }
        }
    }
    if let Some(rest) = name.strip_prefix("vpcmp") {
        for suffix in ["ub", "uw", "ud", "uq", "b", "w", "d", "q"] {
            if let Some(pred) = rest.strip_suffix(suffix)
                && let Some((_, imm)) = VPCMP_PREDICATES.iter().find(|(p, _)| *p == pred)
            {
                return with_pred(format!("vpcmp{suffix}"), *imm);
            }
        }
    }
    if let Some(rest) = name.strip_prefix("vcmp") {
        for suffix in ["ps", "pd", "ss", "sd", "ph", "sh"] {
            if let Some(pred) = rest.strip_suffix(suffix)
                && let Some((_, imm)) = AVX_PREDICATES.iter().find(|(p, _)| *p == pred)
            {
                return with_pred(format!("vcmp{suffix}"), *imm);
            }
        }
    }
    if let Some(rest) = name.strip_prefix("cmp") {
        for suffix in ["ps", "pd", "ss", "sd"] {
            if let Some(pred) = rest.strip_suffix(suffix)
                && let Some(imm) = SSE_PREDICATES.iter().position(|p| *p == pred)
            {
                return with_pred(format!("cmp{suffix}"), imm as i64);
            }
        }
    }
    for prefix in ["pclmul", "vpclmul"] {
        if let Some(pred) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix("dq"))
            && let Some((_, imm)) = PCLMUL_PREDICATES.iter().find(|(p, _)| *p == pred)
        {
            return with_pred(format!("{prefix}qdq"), *imm);
        }
    }
    None
}

/// What a mnemonic as written means: the database mnemonic and, for a
/// compare pseudo-op (`cmpltps`, `vpcmpnleud`), the predicate immediate.
/// Aliases (`jz`, `sal`, `pushf`...) are resolved for the mode.
pub fn lookup_mnemonic(name: &str, arch: Arch) -> Option<(Mnemonic, Option<i64>)> {
    resolve_mnemonic(&name.to_ascii_lowercase(), arch).map(|(m, imm, _)| (m, imm))
}

// ---------------------------------------------------------------- registers

fn register(name: &str) -> Option<Reg> {
    if name.len() > 6 || !name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    Reg::from_name(name).filter(|r| r.kind() != RegKind::Rip || name.eq_ignore_ascii_case("rip"))
}

/// Whether an identifier looks like a register name (`xmm32`, `r16d`, `k9`)
/// so that it is reported as a bad register rather than taken for a label.
fn looks_like_register(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let digits_after = |p: &str| {
        n.strip_prefix(p).is_some_and(|rest| {
            let rest = rest.trim_end_matches(['b', 'w', 'd']);
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
        })
    };
    [
        "xmm", "ymm", "zmm", "tmm", "mm", "k", "r", "cr", "dr", "st", "bnd",
    ]
    .iter()
    .any(|p| digits_after(p))
}

fn size_keyword(name: &str) -> Option<u16> {
    Some(match name {
        "byte" => 1,
        "word" => 2,
        "dword" => 4,
        "fword" => 6,
        "qword" | "mmword" => 8,
        "tbyte" | "tword" => 10,
        "oword" | "xmmword" => 16,
        "ymmword" => 32,
        "zmmword" => 64,
        _ => return None,
    })
}

fn size_name(size: u16) -> &'static str {
    match size {
        1 => "byte",
        2 => "word",
        4 => "dword",
        6 => "fword",
        8 => "qword",
        10 => "tbyte",
        16 => "xmmword",
        32 => "ymmword",
        64 => "zmmword",
        _ => "unsized",
    }
}

// ---------------------------------------------------------------- parser

/// A written `{1toN}`: its column and N.
type Broadcast = Option<(usize, u8)>;

/// Where decorations were written, for error columns.
#[derive(Clone, Copy, Debug, Default)]
struct DecorCols {
    mask: usize,
    zeroing: usize,
    size: usize,
    /// A rounding or `{sae}` written on the operand (`xmm16{sae}`, as objdump
    /// prints it): its column and option.
    rounding: Option<(usize, InstOptions)>,
}

/// The option a rounding brace (`rn-sae`..`rz-sae`, `sae`) stands for.
fn rounding_option(content: &str) -> Option<InstOptions> {
    Some(match content {
        // `rne-sae` is iced-x86's spelling.
        "rn-sae" | "rne-sae" => InstOptions::rounding(Rounding::RnSae),
        "rd-sae" => InstOptions::rounding(Rounding::RdSae),
        "ru-sae" => InstOptions::rounding(Rounding::RuSae),
        "rz-sae" => InstOptions::rounding(Rounding::RzSae),
        "sae" => InstOptions::SAE,
        _ => return None,
    })
}

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    pos: usize,
    arch: Arch,
    /// Nesting depth of the expression being parsed (bounded, so that no
    /// input can exhaust the stack).
    depth: usize,
}

/// Deepest expression nesting accepted (`((((1))))`, `- - - 1`).
const MAX_DEPTH: usize = 64;

enum OperandOrRounding {
    Operand(ParsedOperand, DecorCols),
    Rounding(InstOptions),
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Tok<'a> {
        self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> Tok<'a> {
        self.toks.get(self.pos + n).map_or(Tok::End, |t| t.tok)
    }

    fn col(&self) -> usize {
        self.toks[self.pos].col
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.toks[self.pos];
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn describe(&self) -> String {
        match self.peek() {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Num(_) => "a number".into(),
            Tok::Punct(c) => format!("`{}`", c as char),
            Tok::Brace(s) => format!("`{{{s}}}`"),
            Tok::Str(_) => "a string".into(),
            Tok::End => "end of line".into(),
        }
    }

    fn expected(&self, what: &str) -> ParseError {
        ParseError::new(
            self.col(),
            format!("expected {what}, found {}", self.describe()),
        )
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Tok::Punct(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// A constant expression: numbers with `+ - * ~ ( )`.
    fn expr(&mut self) -> Result<i64, ParseError> {
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v = v.wrapping_add(self.term()?);
            } else if self.eat(b'-') {
                v = v.wrapping_sub(self.term()?);
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<i64, ParseError> {
        let mut v = self.unary()?;
        while self.eat(b'*') {
            v = v.wrapping_mul(self.unary()?);
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<i64, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::new(self.col(), "expression nested too deeply"));
        }
        self.depth += 1;
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Result<i64, ParseError> {
        match self.peek() {
            Tok::Punct(b'-') => {
                self.bump();
                Ok(self.unary()?.wrapping_neg())
            }
            Tok::Punct(b'+') => {
                self.bump();
                self.unary()
            }
            Tok::Punct(b'~') => {
                self.bump();
                Ok(!self.unary()?)
            }
            Tok::Punct(b'(') => {
                self.bump();
                let v = self.expr()?;
                if !self.eat(b')') {
                    return Err(self.expected("`)`"));
                }
                Ok(v)
            }
            Tok::Num(v) => {
                self.bump();
                Ok(v as i64)
            }
            _ => Err(self.expected("a number")),
        }
    }

    fn mask_decorators(
        &mut self,
        cols: &mut DecorCols,
    ) -> Result<(u8, bool, Broadcast), ParseError> {
        let mut mask = 0u8;
        let mut zeroing = false;
        let mut bcst = None;
        while let Tok::Brace(content) = self.peek() {
            let col = self.col();
            let lower = content.to_ascii_lowercase();
            if lower == "z" {
                zeroing = true;
                cols.zeroing = col;
            } else if let Some(r) = register(&lower).filter(|r| r.kind() == RegKind::K) {
                if r.id() == 0 {
                    return Err(ParseError::new(
                        col,
                        "k0 cannot be a write mask: expected {k1}..{k7}",
                    ));
                }
                mask = r.id();
                cols.mask = col;
            } else if let Some(n) = lower
                .strip_prefix("1to")
                .and_then(|n| n.parse::<u32>().ok())
            {
                if !matches!(n, 2 | 4 | 8 | 16 | 32) {
                    return Err(ParseError::new(
                        col,
                        format!("bad broadcast {{1to{n}}}: expected 1to2..1to32"),
                    ));
                }
                bcst = Some((col, n as u8));
            } else if let Some(o) = rounding_option(&lower) {
                cols.rounding = Some((col, o));
            } else {
                return Err(ParseError::new(
                    col,
                    format!("expected {{k1}}..{{k7}}, {{z}} or {{1toN}}, found {{{content}}}"),
                ));
            }
            self.bump();
        }
        Ok((mask, zeroing, bcst))
    }

    /// `[ ... ]` after the optional size and segment.
    fn memory(
        &mut self,
        size: u16,
        segment: Option<Reg>,
        cols: &mut DecorCols,
    ) -> Result<ParsedOperand, ParseError> {
        let open = self.col();
        if !self.eat(b'[') {
            return Err(self.expected("`[`"));
        }
        let mut base: Option<(Reg, usize)> = None;
        let mut index: Option<(Reg, u8, usize)> = None;
        let mut label: Option<String> = None;
        let mut disp: i64 = 0;
        let mut rip = false;
        let mut segment = segment;
        let mut first = true;
        loop {
            if self.peek() == Tok::Punct(b']') {
                if first {
                    return Err(ParseError::new(
                        self.col(),
                        "empty address: expected a register, a number or a label",
                    ));
                }
                self.bump();
                break;
            }
            let negative = if first {
                if self.eat(b'-') {
                    true
                } else {
                    self.eat(b'+');
                    false
                }
            } else if self.eat(b'+') {
                false
            } else if self.eat(b'-') {
                true
            } else if self.peek() == Tok::End {
                return Err(ParseError::new(self.col(), "missing `]`"));
            } else {
                return Err(self.expected("`+`, `-` or `]`"));
            };
            first = false;
            let col = self.col();
            match self.peek() {
                Tok::Ident(name) => {
                    let lower = name.to_ascii_lowercase();
                    if let Some(r) = register(&lower) {
                        self.bump();
                        if r.kind() == RegKind::Seg && self.peek() == Tok::Punct(b':') {
                            self.bump();
                            segment = Some(r);
                            first = true;
                            continue;
                        }
                        if negative {
                            return Err(ParseError::new(col, "a register cannot be subtracted"));
                        }
                        if r.kind() == RegKind::Rip {
                            if rip || base.is_some() {
                                return Err(ParseError::new(
                                    col,
                                    "rip cannot be combined with other registers",
                                ));
                            }
                            rip = true;
                            continue;
                        }
                        let mut scale = None;
                        if self.eat(b'*') {
                            let scol = self.col();
                            let s = self.unary()?;
                            if !matches!(s, 1 | 2 | 4 | 8) {
                                return Err(ParseError::new(
                                    scol,
                                    format!("scale {s} is not 1, 2, 4 or 8"),
                                ));
                            }
                            scale = Some(s as u8);
                        }
                        self.add_address_reg(r, scale, col, &mut base, &mut index)?;
                    } else if looks_like_register(&lower) {
                        return Err(ParseError::new(col, format!("bad register `{name}`")));
                    } else {
                        if label.is_some() || negative {
                            return Err(ParseError::new(
                                col,
                                format!("unexpected label `{name}` in address"),
                            ));
                        }
                        self.bump();
                        label = Some(name.to_string());
                    }
                }
                Tok::Num(_) | Tok::Punct(b'(' | b'~' | b'-' | b'+') => {
                    let v = self.term_or_scaled(&mut base, &mut index)?;
                    disp = if negative {
                        disp.wrapping_sub(v)
                    } else {
                        disp.wrapping_add(v)
                    };
                }
                Tok::End => return Err(ParseError::new(col, "missing `]`")),
                _ => return Err(self.expected("a register, a number or a label")),
            }
        }
        if segment.is_some_and(|s| s.kind() != RegKind::Seg) {
            return Err(ParseError::new(
                open,
                "expected a segment register before `:`",
            ));
        }
        let (mask, zeroing, bcst) = self.mask_decorators(cols)?;
        if zeroing {
            return Err(ParseError::new(
                cols.zeroing,
                "{z} cannot apply to a memory operand",
            ));
        }
        if let Some(l) = label {
            if base.is_some() || index.is_some() {
                return Err(ParseError::new(
                    open,
                    "a label address cannot have base or index registers",
                ));
            }
            return Ok(ParsedOperand::LabelMem(LabelMem {
                name: l,
                disp,
                size,
                segment,
                broadcast: bcst.map_or(0, |(_, n)| n),
                mask,
            }));
        }
        let mem_base = if rip {
            if index.is_some() {
                return Err(ParseError::new(
                    open,
                    "rip-relative addresses cannot have an index",
                ));
            }
            MemBase::Rip
        } else {
            match base {
                Some((r, _)) => MemBase::Reg(r),
                None => MemBase::None,
            }
        };
        let mut m = Mem::new(mem_base, disp).with_size(size);
        if let Some((r, s, _)) = index {
            m = m.with_index(r, s);
        }
        if let Some(s) = segment {
            m = m.with_segment(s);
        }
        if let Some((_, n)) = bcst {
            m = m.bcst_n(n);
        }
        if mask != 0
            && let Some(k) = KReg::from_id(mask)
        {
            m = m.k(k);
        }
        Ok(ParsedOperand::Op(Operand::Mem(m)))
    }

    /// A number term inside an address, possibly `4*rcx`.
    fn term_or_scaled(
        &mut self,
        base: &mut Option<(Reg, usize)>,
        index: &mut Option<(Reg, u8, usize)>,
    ) -> Result<i64, ParseError> {
        let col = self.col();
        let v = self.unary()?;
        if self.peek() == Tok::Punct(b'*') {
            if let Tok::Ident(name) = self.peek_at(1)
                && let Some(r) = register(&name.to_ascii_lowercase())
            {
                self.bump();
                let rcol = self.col();
                self.bump();
                if !matches!(v, 1 | 2 | 4 | 8) {
                    return Err(ParseError::new(
                        col,
                        format!("scale {v} is not 1, 2, 4 or 8"),
                    ));
                }
                self.add_address_reg(r, Some(v as u8), rcol, base, index)?;
                return Ok(0);
            }
            let mut v = v;
            while self.eat(b'*') {
                v = v.wrapping_mul(self.unary()?);
            }
            return Ok(v);
        }
        Ok(v)
    }

    fn add_address_reg(
        &self,
        r: Reg,
        scale: Option<u8>,
        col: usize,
        base: &mut Option<(Reg, usize)>,
        index: &mut Option<(Reg, u8, usize)>,
    ) -> Result<(), ParseError> {
        let kind = r.kind();
        let addressable =
            matches!(kind, RegKind::Gp16 | RegKind::Gp32 | RegKind::Gp64) || kind.is_vec();
        if !addressable {
            return Err(ParseError::new(
                col,
                format!("{} cannot be used in an address", r.name()),
            ));
        }
        if kind.is_vec() || scale.is_some() {
            if index.is_some() {
                return Err(ParseError::new(
                    col,
                    "an address has at most one index register",
                ));
            }
            *index = Some((r, scale.unwrap_or(1), col));
        } else if base.is_none() {
            *base = Some((r, col));
        } else if index.is_none() {
            *index = Some((r, 1, col));
        } else {
            return Err(ParseError::new(
                col,
                "an address has at most a base and an index register",
            ));
        }
        Ok(())
    }

    fn operand(&mut self, options: &mut InstOptions) -> Result<OperandOrRounding, ParseError> {
        // `jmp short target`: the branch-size keyword (a loop, not recursion).
        while let Tok::Ident(w) = self.peek() {
            let is_short = w.eq_ignore_ascii_case("short");
            let is_far = w.eq_ignore_ascii_case("far");
            if !(is_short || is_far || w.eq_ignore_ascii_case("near"))
                || matches!(self.peek_at(1), Tok::End | Tok::Punct(b','))
            {
                break;
            }
            if is_short {
                *options |= InstOptions::SHORT;
            }
            // `call far dword ptr [m]` (iced-x86's spelling of `lcall`).
            if is_far {
                *options |= InstOptions::FAR;
            }
            self.bump();
        }
        let mut cols = DecorCols::default();
        let col = self.col();
        match self.peek() {
            Tok::Brace(content) => {
                let opt = match rounding_option(&content.to_ascii_lowercase()) {
                    Some(o) => o,
                    None => {
                        return Err(ParseError::new(
                            col,
                            format!(
                                "expected an operand or {{rn-sae}}, {{rd-sae}}, {{ru-sae}}, {{rz-sae}}, {{sae}}; found {{{content}}}"
                            ),
                        ));
                    }
                };
                self.bump();
                Ok(OperandOrRounding::Rounding(opt))
            }
            Tok::Ident(name) => {
                let lower = name.to_ascii_lowercase();
                if let Some(size) = size_keyword(&lower) {
                    cols.size = col;
                    self.bump();
                    // `dword ptr [m]`, or objdump's `DWORD BCST [m]` for a broadcast.
                    let mut bcst_keyword = false;
                    if let Tok::Ident(p) = self.peek() {
                        if p.eq_ignore_ascii_case("ptr") {
                            self.bump();
                        } else if p.eq_ignore_ascii_case("bcst") {
                            bcst_keyword = true;
                            self.bump();
                        }
                    }
                    let mut segment = None;
                    if let Tok::Ident(s) = self.peek()
                        && let Some(r) = register(&s.to_ascii_lowercase())
                    {
                        if r.kind() != RegKind::Seg || self.peek_at(1) != Tok::Punct(b':') {
                            return Err(self.expected("`[` after the size keyword"));
                        }
                        self.bump();
                        self.bump();
                        segment = Some(r);
                    }
                    let op = match (self.peek(), segment) {
                        (Tok::Ident(l), None) if !looks_like_register(l) => {
                            self.bump();
                            let (mask, _, bcst) = self.mask_decorators(&mut cols)?;
                            ParsedOperand::LabelMem(LabelMem {
                                name: l.to_string(),
                                disp: 0,
                                size,
                                segment: None,
                                broadcast: bcst.map_or(0, |(_, n)| n),
                                mask,
                            })
                        }
                        (Tok::Punct(b'['), _) => self.memory(size, segment, &mut cols)?,
                        (Tok::Num(_), Some(_)) => {
                            let v = self.expr()?;
                            let mut m = Mem::absolute(v as u64).with_size(size);
                            if let Some(s) = segment {
                                m = m.with_segment(s);
                            }
                            ParsedOperand::Op(Operand::Mem(m))
                        }
                        _ => return Err(self.expected("`[` after the size keyword")),
                    };
                    let op = match op {
                        ParsedOperand::Op(Operand::Mem(m)) if bcst_keyword && !m.is_broadcast() => {
                            ParsedOperand::Op(Operand::Mem(m.bcst()))
                        }
                        ParsedOperand::LabelMem(mut l) if bcst_keyword && l.broadcast == 0 => {
                            l.broadcast = 1;
                            ParsedOperand::LabelMem(l)
                        }
                        other => other,
                    };
                    return Ok(OperandOrRounding::Operand(op, cols));
                }
                if let Some(r) = register(&lower) {
                    self.bump();
                    if r.kind() == RegKind::Seg && self.peek() == Tok::Punct(b':') {
                        self.bump();
                        if self.peek() == Tok::Punct(b'[') {
                            let op = self.memory(0, Some(r), &mut cols)?;
                            return Ok(OperandOrRounding::Operand(op, cols));
                        }
                        let v = self.expr()?;
                        let m = Mem::absolute(v as u64).with_segment(r);
                        return Ok(OperandOrRounding::Operand(
                            ParsedOperand::Op(Operand::Mem(m)),
                            cols,
                        ));
                    }
                    let mut r = r;
                    if r.kind() == RegKind::St && lower == "st" && self.peek() == Tok::Punct(b'(') {
                        self.bump();
                        let ncol = self.col();
                        let n = self.expr()?;
                        if !(0..8).contains(&n) {
                            return Err(ParseError::new(
                                ncol,
                                format!("bad register st({n}): expected st(0)..st(7)"),
                            ));
                        }
                        if !self.eat(b')') {
                            return Err(self.expected("`)`"));
                        }
                        r = Reg::new(RegKind::St, n as u8).unwrap_or(r);
                    }
                    if r.kind() == RegKind::Rip {
                        return Err(ParseError::new(
                            col,
                            "rip is only valid inside an address: `[rip + x]`",
                        ));
                    }
                    let (mask, zeroing, bcst) = self.mask_decorators(&mut cols)?;
                    if let Some((bc, _)) = bcst {
                        return Err(ParseError::new(
                            bc,
                            "{1toN} applies to memory operands only",
                        ));
                    }
                    if zeroing && mask == 0 {
                        return Err(ParseError::new(
                            cols.zeroing,
                            "{z} needs a write mask: write {k1}..{k7} before it",
                        ));
                    }
                    let mut d = super::super::Decorators::NONE;
                    if let Some(k) = KReg::from_id(mask).filter(|_| mask != 0) {
                        if !(r.kind().is_vec() || r.kind() == RegKind::K) {
                            return Err(ParseError::new(
                                cols.mask,
                                format!("{} cannot take a write mask", r.name()),
                            ));
                        }
                        d = d.with_mask(k);
                    }
                    if zeroing {
                        d = d.with_zeroing();
                    }
                    return Ok(OperandOrRounding::Operand(
                        ParsedOperand::Op(Operand::Reg(r.with_decorators(d))),
                        cols,
                    ));
                }
                if looks_like_register(&lower) {
                    return Err(ParseError::new(col, format!("bad register `{name}`")));
                }
                if lower == "ptr" || lower == "offset" {
                    return Err(ParseError::new(col, format!("unexpected `{name}`")));
                }
                self.bump();
                Ok(OperandOrRounding::Operand(
                    ParsedOperand::Label(name.to_string()),
                    cols,
                ))
            }
            Tok::Punct(b'[') => {
                let op = self.memory(0, None, &mut cols)?;
                Ok(OperandOrRounding::Operand(op, cols))
            }
            Tok::Num(_)
            | Tok::Punct(b'-')
            | Tok::Punct(b'+')
            | Tok::Punct(b'~')
            | Tok::Punct(b'(') => {
                let v = self.expr()?;
                Ok(OperandOrRounding::Operand(
                    ParsedOperand::Op(Operand::Imm(v)),
                    cols,
                ))
            }
            _ => Err(self.expected("an operand")),
        }
    }
}

/// Options a prefix word sets, or `None` if it is not a prefix.
fn prefix_option(word: &str) -> Option<Result<InstOptions, &'static str>> {
    Some(Ok(match word {
        "lock" => InstOptions::LOCK,
        "rep" | "repe" | "repz" => InstOptions::REP,
        "repne" | "repnz" => InstOptions::REPNE,
        "xacquire" => InstOptions::XACQUIRE,
        "xrelease" => InstOptions::XRELEASE,
        "bnd" => InstOptions::BND,
        "notrack" => InstOptions::NOTRACK,
        "data16" => InstOptions::DATA16,
        "addr32" => InstOptions::ADDR32,
        "rex" => InstOptions::REX,
        "data32" | "addr16" | "rex.w" | "rex64" => {
            return Some(Err("this prefix is not supported by the encoder yet"));
        }
        _ => return None,
    }))
}

/// The byte of a legacy prefix written alone on a line.
fn prefix_byte(word: &str, arch: Arch) -> Option<u8> {
    Some(match word {
        "lock" => 0xf0,
        "rep" | "repe" | "repz" | "xrelease" => 0xf3,
        "repne" | "repnz" | "xacquire" | "bnd" => 0xf2,
        "notrack" => 0x3e,
        "data16" => 0x66,
        "addr32" if arch == Arch::X64 => 0x67,
        "rex" if arch == Arch::X64 => 0x40,
        _ => return None,
    })
}

fn brace_prefix(content: &str) -> Option<Result<InstOptions, &'static str>> {
    Some(Ok(match content {
        "vex" | "vex2" | "vex3" => InstOptions::VEX,
        "evex" => InstOptions::EVEX,
        "load" => InstOptions::MODRM_LOAD,
        "store" => InstOptions::MODRM_STORE,
        // Displacement-size hints: accepted; the encoder always picks the
        // shortest displacement (same instruction, maybe other bytes).
        "disp8" | "disp32" => InstOptions::NONE,
        "nf" => InstOptions::NF,
        "rex2" => InstOptions::REX2,
        "rex" => {
            return Some(Err("this pseudo-prefix is not supported yet"));
        }
        _ => return None,
    }))
}

fn is_directive(word: &str) -> bool {
    word.starts_with('.') || matches!(word, "db" | "dw" | "dd" | "dq" | "align")
}

/// Parses one line of a program into its statements. `line` is the line
/// number reported in errors.
pub fn parse_line(text: &str, line: usize, arch: Arch) -> Result<Vec<Statement>, ParseError> {
    parse_line_with(text, line, arch, &HashMap::new())
}

/// [`parse_line`] with the named constants defined so far (`.equ`): a name
/// in `constants` reads as its value wherever a number may stand.
pub fn parse_line_with(
    text: &str,
    line: usize,
    arch: Arch,
    constants: &HashMap<String, i64>,
) -> Result<Vec<Statement>, ParseError> {
    parse_line_inner(text, arch, constants)
        .map_err(|mut e| {
            e.line = line;
            e
        })
        .map(|mut v| {
            for s in &mut v {
                s.line = line;
            }
            v
        })
}

fn parse_line_inner(
    text: &str,
    arch: Arch,
    constants: &HashMap<String, i64>,
) -> Result<Vec<Statement>, ParseError> {
    let mut toks = lex(text)?;
    if !constants.is_empty() {
        // Constants read as numbers, except where a name is defined (`N:`, `.equ N`).
        for i in 0..toks.len() {
            if let Tok::Ident(name) = toks[i].tok
                && let Some(v) = constants.get(name)
                && toks.get(i + 1).is_none_or(|t| t.tok != Tok::Punct(b':'))
                && !(i > 0
                    && matches!(toks[i - 1].tok, Tok::Ident(d) if matches!(d.to_ascii_lowercase().as_str(), ".equ" | ".set")))
            {
                toks[i].tok = Tok::Num(*v as u64);
            }
        }
    }
    let mut p = Parser {
        toks,
        pos: 0,
        arch,
        depth: 0,
    };
    let mut out = Vec::new();
    // Labels.
    loop {
        let name = match (p.peek(), p.peek_at(1)) {
            (Tok::Ident(name), Tok::Punct(b':')) => name.to_string(),
            // `1:` a numeric local label (GNU as), referred to as `1b` / `1f`.
            (Tok::Num(n), Tok::Punct(b':')) => n.to_string(),
            _ => break,
        };
        let name = name.as_str();
        if register(&name.to_ascii_lowercase()).is_some() {
            return Err(ParseError::new(
                p.col(),
                format!("`{name}` is a register, not a label name"),
            ));
        }
        let col = p.col();
        p.bump();
        let end = p.bump().end;
        out.push(Statement {
            line: 1,
            column: col,
            text: text[col - 1..end].to_string(),
            kind: StatementKind::Label(name.to_string()),
        });
    }
    if p.peek() == Tok::End {
        return Ok(out);
    }
    let start = p.col();
    // Prefixes alone on a line (`rep`, `data16`, as llvm-mc prints some
    // instructions): their bytes, as GNU as emits them.
    let rest = &p.toks[p.pos..p.toks.len() - 1];
    let prefix_bytes: Option<Vec<u8>> = rest
        .iter()
        .map(|t| match t.tok {
            Tok::Ident(w) => prefix_byte(&w.to_ascii_lowercase(), p.arch),
            _ => None,
        })
        .collect();
    if let Some(bytes) = prefix_bytes.filter(|b| !b.is_empty()) {
        let end = rest.last().map_or(start, |t| t.end);
        out.push(Statement {
            line: 1,
            column: start,
            text: text[start - 1..end].to_string(),
            kind: StatementKind::Data {
                size: 1,
                values: vec![DataValue::Bytes(bytes)],
            },
        });
        return Ok(out);
    }
    let kind = match p.peek() {
        Tok::Ident(w) if is_directive(&w.to_ascii_lowercase()) => directive(&mut p)?,
        Tok::Ident(_) | Tok::Brace(_) => StatementKind::Instruction(instruction(&mut p)?),
        _ => return Err(p.expected("a label, an instruction or a directive")),
    };
    if p.peek() != Tok::End {
        return Err(p.expected("end of line"));
    }
    let end = p.toks[p.toks.len() - 1].col.saturating_sub(1);
    let stmt_end = p
        .toks
        .iter()
        .rev()
        .find(|t| t.tok != Tok::End)
        .map_or(end, |t| t.end);
    out.push(Statement {
        line: 1,
        column: start,
        text: text[start - 1..stmt_end].trim().to_string(),
        kind,
    });
    Ok(out)
}

fn directive(p: &mut Parser<'_>) -> Result<StatementKind, ParseError> {
    let Tok::Ident(word) = p.peek() else {
        return Err(p.expected("a directive"));
    };
    let col = p.col();
    let lower = word.to_ascii_lowercase();
    p.bump();
    let data_size = match lower.as_str() {
        ".byte" | "db" | ".ascii" | ".asciz" | ".string" => Some(1),
        ".word" | ".short" | ".value" | ".2byte" | "dw" => Some(2),
        ".long" | ".int" | ".4byte" | "dd" => Some(4),
        ".quad" | ".8byte" | "dq" => Some(8),
        _ => None,
    };
    if let Some(size) = data_size {
        let mut values = Vec::new();
        loop {
            let vcol = p.col();
            match p.peek() {
                Tok::Str(s) if size == 1 => {
                    p.bump();
                    let mut bytes = unescape(s);
                    if matches!(lower.as_str(), ".asciz" | ".string") {
                        bytes.push(0);
                    }
                    values.push(DataValue::Bytes(bytes));
                }
                Tok::Ident(name) if !looks_like_register(name) => {
                    let ptr = if p.arch == Arch::X64 { 8 } else { 4 };
                    if size != ptr {
                        return Err(ParseError::new(
                            vcol,
                            format!(
                                "a label address needs a {ptr}-byte directive (`{}`)",
                                if ptr == 8 { ".quad" } else { ".long" }
                            ),
                        ));
                    }
                    p.bump();
                    values.push(DataValue::Label(name.to_string()));
                }
                _ => {
                    let v = p.expr()?;
                    let bits = size as u32 * 8;
                    let fits = bits == 64 || (v >= -(1i64 << (bits - 1)) && v < (1i64 << bits));
                    if !fits {
                        return Err(ParseError::new(
                            vcol,
                            format!("value {v:#x} does not fit {size} byte(s)"),
                        ));
                    }
                    values.push(DataValue::Int(v));
                }
            }
            if !p.eat(b',') {
                break;
            }
        }
        return Ok(StatementKind::Data { size, values });
    }
    match lower.as_str() {
        ".zero" | ".skip" | ".space" => {
            // `.zero N`, `.skip N[, fill]`: N bytes.
            let vcol = p.col();
            let n = p.expr()?;
            let fill = if p.eat(b',') { p.expr()? } else { 0 };
            if !(0..=1 << 20).contains(&n) {
                return Err(ParseError::new(vcol, format!("size {n} is not 0..1048576")));
            }
            if !(-128..=255).contains(&fill) {
                return Err(ParseError::new(
                    vcol,
                    format!("fill value {fill:#x} does not fit a byte"),
                ));
            }
            Ok(StatementKind::Data {
                size: 1,
                values: vec![DataValue::Bytes(vec![fill as u8; n as usize])],
            })
        }
        ".align" | "align" | ".balign" | ".p2align" => {
            let vcol = p.col();
            let v = p.expr()?;
            let n = if lower == ".p2align" {
                if (0..=12).contains(&v) { 1i64 << v } else { -1 }
            } else {
                v
            };
            if n <= 0 || n > 4096 || n & (n - 1) != 0 {
                return Err(ParseError::new(
                    vcol,
                    format!("alignment {v} is not a power of two up to 4096"),
                ));
            }
            // `.align N, fill` and `.p2align N,,max` extras are ignored.
            while p.peek() != Tok::End {
                p.bump();
            }
            Ok(StatementKind::Align(n as u32))
        }
        ".section" => {
            let Tok::Ident(name) = p.peek() else {
                return Err(p.expected("a section name"));
            };
            p.bump();
            while p.peek() != Tok::End {
                p.bump();
            }
            Ok(StatementKind::Section(name.to_string()))
        }
        ".text" | ".data" | ".rodata" | ".bss" => Ok(StatementKind::Section(lower)),
        ".equ" | ".set" => {
            let Tok::Ident(name) = p.peek() else {
                return Err(p.expected("a constant name"));
            };
            if looks_like_register(name) || register(&name.to_ascii_lowercase()).is_some() {
                return Err(ParseError::new(
                    p.col(),
                    format!("`{name}` is a register, not a constant name"),
                ));
            }
            p.bump();
            if !p.eat(b',') {
                return Err(p.expected("`,` and a value"));
            }
            let value = p.expr()?;
            Ok(StatementKind::Constant {
                name: name.to_string(),
                value,
            })
        }
        ".intel_syntax" | ".globl" | ".global" | ".type" | ".size" | ".file" | ".local"
        | ".code64" | ".code32" => {
            let want = match lower.as_str() {
                ".code64" => Some(Arch::X64),
                ".code32" => Some(Arch::X86),
                _ => None,
            };
            if want.is_some_and(|a| a != p.arch) {
                return Err(ParseError::new(
                    col,
                    format!("{lower} does not match the assembler's mode"),
                ));
            }
            if lower == ".intel_syntax"
                && let Tok::Ident(w) = p.peek()
                && !w.eq_ignore_ascii_case("noprefix")
            {
                return Err(ParseError::new(
                    p.col(),
                    "only `.intel_syntax noprefix` is supported",
                ));
            }
            while p.peek() != Tok::End {
                p.bump();
            }
            // A no-op: an empty data statement.
            Ok(StatementKind::Data {
                size: 1,
                values: Vec::new(),
            })
        }
        _ => Err(ParseError::new(col, format!("unknown directive `{word}`"))),
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            out.push(match b[i] {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'0' => 0,
                c => c,
            });
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

fn instruction(p: &mut Parser<'_>) -> Result<ParsedInstruction, ParseError> {
    let mut options = InstOptions::NONE;
    let mut prefixes: Vec<(String, usize)> = Vec::new();
    let (mnemonic, pred, special, mcol, mname) = loop {
        let col = p.col();
        match p.peek() {
            Tok::Brace(content) => {
                let lower = content.to_ascii_lowercase();
                match brace_prefix(&lower) {
                    Some(Ok(o)) => {
                        options |= o;
                        prefixes.push((format!("{{{lower}}}"), col));
                    }
                    Some(Err(msg)) => {
                        return Err(ParseError::new(col, format!("{{{content}}}: {msg}")));
                    }
                    None => {
                        return Err(ParseError::new(
                            col,
                            format!("expected a prefix or a mnemonic, found {{{content}}}"),
                        ));
                    }
                }
                p.bump();
            }
            Tok::Ident(word) => {
                let lower = word.to_ascii_lowercase();
                match prefix_option(&lower) {
                    Some(Ok(o)) => {
                        options |= o;
                        prefixes.push((lower.clone(), col));
                        p.bump();
                        // `rep` alone on a line, or `lock` before end: nothing follows.
                        if p.peek() == Tok::End {
                            return Err(p.expected("a mnemonic after the prefix"));
                        }
                        continue;
                    }
                    Some(Err(msg)) => return Err(ParseError::new(col, format!("`{word}`: {msg}"))),
                    None => {}
                }
                let Some((m, pred, special)) = resolve_mnemonic(&lower, p.arch) else {
                    return Err(ParseError::new(col, format!("unknown mnemonic `{word}`")));
                };
                p.bump();
                break (m, pred, special, col, lower);
            }
            _ => return Err(p.expected("a mnemonic")),
        }
    };
    // APX `ccmp`/`ctest`: `{dfv=of,sf,zf,cf}` (any subset, maybe empty) after the mnemonic.
    if let Tok::Brace(content) = p.peek() {
        let lower = content.to_ascii_lowercase();
        if let Some(list) = lower.strip_prefix("dfv") {
            let col = p.col();
            let list = list
                .trim_start()
                .strip_prefix('=')
                .ok_or_else(|| ParseError::new(col, "expected `{dfv=of,sf,zf,cf}`".to_string()))?;
            let mut bits = 0u8;
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                bits |= match name {
                    "of" => 8,
                    "sf" => 4,
                    "zf" => 2,
                    "cf" => 1,
                    other => {
                        return Err(ParseError::new(
                            col,
                            format!("{{dfv=}} takes of, sf, zf, cf, not `{other}`"),
                        ));
                    }
                };
            }
            options |= InstOptions::dfv(bits);
            p.bump();
        }
    }
    let mut operands = Vec::new();
    let mut columns = Vec::new();
    let mut decor = Vec::new();
    let mut rounding_col = 0;
    // `ret far` alone.
    if let (Tok::Ident(w), Tok::End) = (p.peek(), p.peek_at(1))
        && w.eq_ignore_ascii_case("far")
        && mname == "ret"
    {
        p.bump();
        options |= InstOptions::FAR;
    }
    if p.peek() != Tok::End {
        loop {
            let col = p.col();
            match p.operand(&mut options)? {
                OperandOrRounding::Operand(op, cols) => {
                    if let Some((rcol, o)) = cols.rounding {
                        if rounding_col != 0 {
                            return Err(ParseError::new(
                                rcol,
                                "only one rounding or {sae} operand is allowed",
                            ));
                        }
                        rounding_col = rcol;
                        options |= o;
                    }
                    operands.push(op);
                    columns.push(col);
                    decor.push(cols);
                }
                OperandOrRounding::Rounding(o) => {
                    if rounding_col != 0 {
                        return Err(ParseError::new(
                            col,
                            "only one rounding or {sae} operand is allowed",
                        ));
                    }
                    rounding_col = col;
                    options |= o;
                }
            }
            if !p.eat(b',') {
                break;
            }
        }
    }
    let mut inst = ParsedInstruction {
        mnemonic,
        operands,
        columns,
        options,
        column: mcol,
        prefixes,
    };
    rewrite_special(&mut inst, special, &mname, p.arch)?;
    drop_string_memory(&mut inst, &mut decor, p.arch)?;
    drop_implicit_xmm0(&mut inst, &mut decor, p.arch);
    prefer_short_forms(&mut inst, &mut decor);
    // `ret far 8` is `retf 8`.
    if inst.mnemonic.name() == "ret"
        && inst.options.contains(InstOptions::FAR)
        && let Some(retf) = Mnemonic::from_name("retf")
    {
        inst.mnemonic = retf;
        inst.options = InstOptions(inst.options.0 & !InstOptions::FAR.0);
    }
    if let Some(imm) = pred {
        inst.operands.push(ParsedOperand::Op(Operand::Imm(imm)));
        inst.columns.push(mcol);
        decor.push(DecorCols::default());
    }
    validate(&inst, &decor, rounding_col, p.arch)?;
    Ok(inst)
}

fn rewrite_special(
    inst: &mut ParsedInstruction,
    special: Special,
    name: &str,
    arch: Arch,
) -> Result<(), ParseError> {
    match special {
        Special::None => {}
        Special::Data16 => inst.options |= InstOptions::DATA16,
        Special::Movabs => {
            // `movabs r64, imm`: the 64-bit immediate form even for a small value.
            if matches!(
                inst.operands.as_slice(),
                [
                    ParsedOperand::Op(Operand::Reg(_)),
                    ParsedOperand::Op(Operand::Imm(_))
                ]
            ) {
                inst.options |= InstOptions::LONG;
            }
            for op in &mut inst.operands {
                if let ParsedOperand::Op(Operand::Mem(m)) = op {
                    if m.base() != MemBase::None || m.index().is_some() {
                        return Err(ParseError::new(
                            inst.column,
                            "movabs takes an absolute address `[0x...]`",
                        ));
                    }
                    if arch == Arch::X64 {
                        *m = m.abs64();
                    }
                }
            }
        }
        Special::Far => {
            inst.options |= InstOptions::FAR;
            if inst.operands.len() == 2 {
                if arch == Arch::X64 {
                    return Err(ParseError::new(
                        inst.column,
                        format!("{name} SELECTOR, OFFSET is not valid in 64-bit mode"),
                    ));
                }
                let (ParsedOperand::Op(Operand::Imm(sel)), ParsedOperand::Op(Operand::Imm(off))) =
                    (&inst.operands[0], &inst.operands[1])
                else {
                    return Err(ParseError::new(
                        inst.column,
                        format!("{name} takes `SELECTOR, OFFSET` or a memory operand"),
                    ));
                };
                if !(0..=0xffff).contains(sel) {
                    return Err(ParseError::new(
                        inst.columns[0],
                        format!("selector {sel:#x} does not fit 16 bits"),
                    ));
                }
                if !(0..=0xffff_ffff).contains(off) {
                    return Err(ParseError::new(
                        inst.columns[1],
                        format!("offset {off:#x} does not fit 32 bits"),
                    ));
                }
                let v = (sel << 32) | off;
                inst.operands = vec![ParsedOperand::Op(Operand::Imm(v))];
                inst.columns.truncate(1);
            } else if let [ParsedOperand::Op(Operand::Mem(m))] = inst.operands.as_mut_slice() {
                // Unsized: the mode's widest far pointer, m16:64 (`tbyte`) in
                // 64-bit mode as llvm-mc reads `ljmp [m]` (and AsmJit writes
                // both), m16:32 (`fword`) in 32-bit mode.
                if m.size() == 0 {
                    *m = m.with_size(if arch == Arch::X64 { 10 } else { 6 });
                }
            } else if let [ParsedOperand::LabelMem(l)] = inst.operands.as_mut_slice() {
                if l.size == 0 {
                    l.size = if arch == Arch::X64 { 10 } else { 6 };
                }
            } else {
                return Err(ParseError::new(
                    inst.column,
                    format!("{name} takes `SELECTOR, OFFSET` or a memory operand"),
                ));
            }
        }
        Special::Xlat => {
            if inst.operands.len() == 1
                && matches!(inst.operands[0], ParsedOperand::Op(Operand::Mem(_)))
            {
                inst.operands.clear();
                inst.columns.clear();
            }
        }
        Special::StringOp(base) => {
            let mut size = 0u16;
            let mut keep = Vec::new();
            let mut cols = Vec::new();
            for (i, op) in inst.operands.iter().enumerate() {
                match op {
                    ParsedOperand::Op(Operand::Mem(m)) => {
                        string_memory(&mut inst.options, m, inst.columns[i], arch)?;
                        if m.size() != 0 {
                            size = m.size();
                        }
                    }
                    ParsedOperand::Op(Operand::Reg(r)) => {
                        if r.kind().is_gp()
                            && !(r.kind() == RegKind::Gp16
                                && r.id() == 2
                                && matches!(base, "ins" | "outs"))
                        {
                            size = r.size() as u16;
                        }
                        keep.push(op.clone());
                        cols.push(inst.columns[i]);
                    }
                    _ => {
                        return Err(ParseError::new(
                            inst.columns[i],
                            format!("{name} takes registers and memory operands"),
                        ));
                    }
                }
            }
            let suffix = match size {
                1 => "b",
                2 => "w",
                4 => "d",
                8 => "q",
                0 => {
                    return Err(ParseError::new(
                        inst.column,
                        format!("{name}: operand size unknown; write a size (`byte ptr`...)"),
                    ));
                }
                _ => {
                    return Err(ParseError::new(
                        inst.column,
                        format!("{name}: bad operand size {size}"),
                    ));
                }
            };
            let full = format!("{base}{suffix}");
            inst.mnemonic = Mnemonic::from_name(&full).ok_or_else(|| {
                ParseError::new(inst.column, format!("unknown mnemonic `{full}`"))
            })?;
            inst.operands = keep;
            inst.columns = cols;
        }
    }
    Ok(())
}

/// Checks a memory operand of a string instruction (`byte ptr [rsi]`,
/// `dword ptr es:[edi]`): it names the implicit source or destination, so it
/// must be exactly that register; a 32-bit one in 64-bit mode means `addr32`.
fn string_memory(
    options: &mut InstOptions,
    m: &Mem,
    col: usize,
    arch: Arch,
) -> Result<(), ParseError> {
    let bad = || {
        ParseError::new(
            col,
            "a string instruction's memory operand is [rsi] or es:[rdi] (or [esi], es:[edi])",
        )
    };
    let MemBase::Reg(r) = m.base() else {
        return Err(bad());
    };
    if m.index().is_some() || m.disp() != 0 || !matches!(r.id(), 6 | 7) {
        return Err(bad());
    }
    match (r.kind(), arch) {
        (RegKind::Gp64, Arch::X64) | (RegKind::Gp32, Arch::X86) => {}
        (RegKind::Gp32, Arch::X64) => *options |= InstOptions::ADDR32,
        _ => {
            return Err(ParseError::new(
                col,
                format!(
                    "{} cannot address a string operand in {}-bit mode",
                    r.name(),
                    arch.bits()
                ),
            ));
        }
    }
    match (m.segment().map(|s| s.id()), r.id()) {
        (None, _) | (Some(0), 7) | (Some(3), 6) => Ok(()),
        (Some(_), 7) => Err(ParseError::new(
            col,
            "the destination of a string instruction is always es:[rdi]",
        )),
        _ => Err(ParseError::new(
            col,
            "segment overrides on a string source are not supported yet",
        )),
    }
}

/// `lodsb al, byte ptr [rsi]`, `movsd dword ptr es:[rdi], dword ptr [rsi]`:
/// the sized string mnemonics with their (implicit) memory operands written
/// out, as llvm-mc prints them. Drops the memory operands; leaves alone
/// anything with other registers (`movsd xmm0, qword ptr [rsi]` is SSE2).
fn drop_string_memory(
    inst: &mut ParsedInstruction,
    decor: &mut Vec<DecorCols>,
    arch: Arch,
) -> Result<(), ParseError> {
    let string_forms = inst
        .mnemonic
        .forms()
        .iter()
        .any(|f| f.operands().iter().any(|k| k.is_implicit()));
    let is_mem = |op: &ParsedOperand| matches!(op, ParsedOperand::Op(Operand::Mem(_)));
    let fixed_gp = |op: &ParsedOperand| matches!(op, ParsedOperand::Op(Operand::Reg(r)) if r.kind().is_gp() && (r.id() == 0 || (r.kind() == RegKind::Gp16 && r.id() == 2)));
    if !string_forms
        || !inst.operands.iter().any(is_mem)
        || !inst.operands.iter().all(|o| is_mem(o) || fixed_gp(o))
    {
        return Ok(());
    }
    let mut keep = Vec::new();
    let mut cols = Vec::new();
    let mut kept_decor = Vec::new();
    for (i, op) in inst.operands.iter().enumerate() {
        if let ParsedOperand::Op(Operand::Mem(m)) = op {
            string_memory(&mut inst.options, m, inst.columns[i], arch)?;
        } else {
            keep.push(op.clone());
            cols.push(inst.columns[i]);
            kept_decor.push(decor.get(i).copied().unwrap_or_default());
        }
    }
    inst.operands = keep;
    inst.columns = cols;
    *decor = kept_decor;
    Ok(())
}

/// What the assemblers normalize to reach the database's form (the encoder
/// itself picks `xchg`'s short accumulator form for either order): a memory
/// operand written on a VSIB gather/scatter keeps no size (the register kinds choose
/// the form; llvm-mc writes the vector's size, the database the element's).
fn prefer_short_forms(inst: &mut ParsedInstruction, decor: &mut [DecorCols]) {
    for op in &mut inst.operands {
        match op {
            ParsedOperand::Op(Operand::Mem(m)) if m.is_vsib() && !m.is_broadcast() => {
                *m = m.with_size(0)
            }
            _ => {}
        }
    }
    // `fadd st, dword ptr [m]` (iced-x86's spelling): the x87 forms with a
    // memory operand name only the memory.
    if inst.mnemonic.name().starts_with('f')
        && let [
            ParsedOperand::Op(Operand::Reg(r)),
            ParsedOperand::Op(Operand::Mem(_)),
        ] = inst.operands.as_slice()
        && r.kind() == RegKind::St
        && r.id() == 0
    {
        inst.operands.remove(0);
        inst.columns.remove(0);
        if !decor.is_empty() {
            decor[0] = decor[decor.len() - 1];
        }
    }
}

/// `blendvps xmm1, xmm2, xmm0`: the SSE4.1 forms whose third operand is the
/// implicit `xmm0` are stored with two operands; drop a written `xmm0`.
fn drop_implicit_xmm0(inst: &mut ParsedInstruction, decor: &mut Vec<DecorCols>, arch: Arch) {
    let n = inst.operands.len();
    let is_xmm0 = matches!(inst.operands.last(), Some(ParsedOperand::Op(Operand::Reg(r))) if r.kind() == RegKind::Xmm && r.id() == 0);
    if n < 2 || !is_xmm0 {
        return;
    }
    let bit = modes::of(arch);
    let counts = |c: usize| {
        inst.mnemonic
            .forms()
            .iter()
            .any(|f| f.modes() & bit != 0 && f.explicit_count() == c)
    };
    if !counts(n) && counts(n - 1) {
        inst.operands.pop();
        inst.columns.pop();
        decor.truncate(n - 1);
    }
}

// ---------------------------------------------------------------- validation against the database

/// Whether an immediate kind can take `v` (the encoder's ranges); `None`
/// when the kind takes no immediate.
fn imm_accepts(kind: K, v: i64) -> Option<bool> {
    if !kind.takes_immediate() {
        return None;
    }
    let sx8 = |x: i64| (-128..=127).contains(&x);
    Some(match kind {
        K::Imm4 => (0..=15).contains(&v),
        K::Imm8 => (-128..=255).contains(&v),
        K::Imm8Sx16 => (-32768..=65535).contains(&v) && sx8(v as u16 as i16 as i64),
        K::Imm8Sx32 => {
            (i32::MIN as i64..=u32::MAX as i64).contains(&v) && sx8(v as u32 as i32 as i64)
        }
        K::Imm8Sx64 => sx8(v),
        K::One => v == 1,
        K::Imm16 => (-32768..=65535).contains(&v),
        K::Imm32 => (i32::MIN as i64..=u32::MAX as i64).contains(&v),
        K::Imm32Sx64 => (i32::MIN as i64..=i32::MAX as i64).contains(&v),
        // 64-bit immediates, far pointers, branch targets and displacements.
        _ => true,
    })
}

/// Whether `op` could go in a slot of kind `kind` (a superset of the encoder).
fn coarse_fits(kind: K, op: &ParsedOperand) -> bool {
    match op {
        ParsedOperand::Op(o) => kind.may_take(o),
        ParsedOperand::LabelMem(_) => kind.takes_memory(),
        ParsedOperand::Label(_) => kind.takes_label(),
    }
}

fn imm_bits(kind: K) -> u32 {
    match kind {
        K::Imm4 => 4,
        K::Imm8 | K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 | K::One => 8,
        K::Imm16 => 16,
        K::Imm32 | K::Imm32Sx64 => 32,
        _ => 64,
    }
}

/// Reports, at the right column, operands that no form of the mnemonic can
/// take; anything subtler is left to the encoder.
fn validate(
    inst: &ParsedInstruction,
    decor: &[DecorCols],
    rounding_col: usize,
    arch: Arch,
) -> Result<(), ParseError> {
    let m = inst.mnemonic;
    let bit = modes::of(arch);
    let forms: Vec<&Form> = m.forms().iter().filter(|f| f.modes() & bit != 0).collect();
    if forms.is_empty() {
        return Err(ParseError::new(
            inst.column,
            format!("{} is not valid in {}-bit mode", m.name(), arch.bits()),
        ));
    }
    if rounding_col != 0 {
        let want = if inst.options.rounding_mode().is_some() {
            flags::ER
        } else {
            flags::SAE
        };
        if !forms
            .iter()
            .any(|f| f.has(want) || (want == flags::SAE && f.has(flags::ER)))
        {
            let what = if want == flags::ER {
                "embedded rounding"
            } else {
                "{sae}"
            };
            return Err(ParseError::new(
                rounding_col,
                format!("{} takes no {what}", m.name()),
            ));
        }
    }
    for (word, col) in &inst.prefixes {
        let flag = match word.as_str() {
            "lock" => flags::LOCK,
            // `rep ret`: AMD's two-byte return, which compilers still write.
            "rep" | "repe" | "repz" if m.name() == "ret" && inst.operands.is_empty() => continue,
            "rep" | "repe" | "repz" | "repne" | "repnz" => flags::REP | flags::REPNE,
            "xacquire" => flags::XACQUIRE,
            "xrelease" => flags::XRELEASE,
            "bnd" => flags::BND,
            "notrack" => flags::NOTRACK,
            _ => continue,
        };
        if !forms.iter().any(|f| f.flags() & flag != 0) {
            return Err(ParseError::new(
                *col,
                format!("{} cannot take a `{word}` prefix", m.name()),
            ));
        }
    }
    let n = inst.operands.len();
    let same: Vec<&Form> = forms
        .iter()
        .copied()
        .filter(|f| f.explicit_count() == n)
        .collect();
    // Forms with more operands the assembler may fill in (`shl rax` for
    // `shl rax, 1`); APX's new-destination forms are not such.
    let with_fill = forms.iter().any(|f| f.explicit_count() > n && !f.is_apx());
    if same.is_empty() {
        if with_fill {
            return Ok(());
        }
        let mut counts: Vec<usize> = forms.iter().map(|f| f.explicit_count()).collect();
        counts.sort_unstable();
        counts.dedup();
        let list: Vec<String> = counts.iter().map(usize::to_string).collect();
        return Err(ParseError::new(
            inst.column,
            format!(
                "{} takes {} operand(s), not {n}",
                m.name(),
                list.join(" or ")
            ),
        ));
    }
    let others_fit = |f: &Form, i: usize| {
        f.explicit_kinds()
            .iter()
            .copied()
            .zip(inst.operands.iter())
            .enumerate()
            .all(|(j, (k, o))| j == i || coarse_fits(k, o))
    };
    for (i, op) in inst.operands.iter().enumerate() {
        let col = inst.columns[i];
        let same: Vec<&Form> = same.iter().copied().filter(|f| others_fit(f, i)).collect();
        // An operand of a kind no form takes in this position (given the
        // others): say which kinds would do. Skipped where the assembler
        // rewrites operands (fixed registers left out, `xchg` order).
        let rewritten = with_fill || m.name() == "xchg";
        if !rewritten && !same.is_empty() {
            let kinds: Vec<K> = same
                .iter()
                .filter_map(|f| f.explicit_kinds().get(i).copied())
                .collect();
            if !kinds.iter().any(|k| coarse_fits(*k, op)) {
                let mut names: Vec<String> = same
                    .iter()
                    .filter_map(|f| {
                        f.explicit_kinds()
                            .get(i)
                            .map(|&k| super::isa::kind_human(k, f))
                    })
                    .collect();
                names.sort();
                names.dedup();
                let what = match op {
                    ParsedOperand::Op(Operand::Reg(r)) => format!("register {}", r.name()),
                    ParsedOperand::Op(Operand::Mem(_)) | ParsedOperand::LabelMem(_) => {
                        "a memory operand".into()
                    }
                    ParsedOperand::Op(Operand::Imm(_)) => "an immediate".into(),
                    _ => "a label".into(),
                };
                return Err(ParseError::new(
                    col,
                    format!(
                        "{} cannot take {what} as operand {}: expected {}",
                        m.name(),
                        i + 1,
                        names.join(", ")
                    ),
                ));
            }
        }
        match op {
            ParsedOperand::Op(Operand::Imm(v)) => {
                let kinds: Vec<K> = same
                    .iter()
                    .filter_map(|f| f.explicit_kinds().get(i).copied())
                    .collect();
                let imm_kinds: Vec<K> = kinds
                    .iter()
                    .copied()
                    .filter(|k| imm_accepts(*k, 0).is_some())
                    .collect();
                if imm_kinds.is_empty() {
                    continue; // the encoder explains the kind mismatch
                }
                if !imm_kinds.iter().any(|k| imm_accepts(*k, *v) == Some(true)) {
                    let bits = imm_kinds.iter().map(|k| imm_bits(*k)).max().unwrap_or(8);
                    let neg = if *v < 0 {
                        format!("-{:#x}", v.unsigned_abs())
                    } else {
                        format!("{v:#x}")
                    };
                    return Err(ParseError::new(
                        col,
                        format!(
                            "immediate {neg} is too large: {} takes at most a {bits}-bit immediate here",
                            m.name()
                        ),
                    ));
                }
            }
            ParsedOperand::Op(Operand::Mem(_)) | ParsedOperand::LabelMem(_) => {
                let (size, bcst) = match op {
                    ParsedOperand::Op(Operand::Mem(mm)) => (mm.size(), mm.is_broadcast()),
                    ParsedOperand::LabelMem(l) => (l.size, l.broadcast != 0),
                    _ => (0, false),
                };
                let mem_forms: Vec<&Form> = same
                    .iter()
                    .copied()
                    .filter(|f| {
                        f.explicit_kinds()
                            .get(i)
                            .copied()
                            .is_some_and(K::takes_memory)
                    })
                    .collect();
                if mem_forms.is_empty() {
                    continue;
                }
                if bcst && !mem_forms.iter().any(|f| f.bcst_size() != 0) {
                    return Err(ParseError::new(
                        col,
                        format!("{} cannot broadcast ({{1toN}})", m.name()),
                    ));
                }
                if size == 0 {
                    continue;
                }
                let ok = mem_forms.iter().any(|f| {
                    if bcst {
                        f.bcst_size() != 0 && f.bcst_size() as u16 == size
                    } else {
                        f.mem_size() == 0 || f.mem_size() == size
                    }
                });
                if !ok {
                    let mut sizes: Vec<u16> = mem_forms
                        .iter()
                        .map(|f| {
                            if bcst {
                                f.bcst_size() as u16
                            } else {
                                f.mem_size()
                            }
                        })
                        .filter(|s| *s != 0)
                        .collect();
                    sizes.sort_unstable();
                    sizes.dedup();
                    let names: Vec<String> = sizes
                        .iter()
                        .map(|s| format!("{} ptr", size_name(*s)))
                        .collect();
                    let what = if bcst {
                        "broadcast element"
                    } else {
                        "memory operand"
                    };
                    let at = decor
                        .get(i)
                        .map(|d| d.size)
                        .filter(|c| *c != 0)
                        .unwrap_or(col);
                    return Err(ParseError::new(
                        at,
                        format!(
                            "`{} ptr` does not fit any form of {} ({what} {}): expected {}",
                            size_name(size),
                            m.name(),
                            i + 1,
                            if names.is_empty() {
                                "no size keyword".to_string()
                            } else {
                                names.join(" or ")
                            }
                        ),
                    ));
                }
            }
            _ => {}
        }
        if decor.get(i).is_some_and(|d| d.mask != 0) && !forms.iter().any(|f| f.has(flags::K)) {
            return Err(ParseError::new(
                decor[i].mask,
                format!("{} takes no write mask", m.name()),
            ));
        }
        if decor.get(i).is_some_and(|d| d.zeroing != 0) && !forms.iter().any(|f| f.has(flags::Z)) {
            return Err(ParseError::new(
                decor[i].zeroing,
                format!("{} takes no {{z}}", m.name()),
            ));
        }
    }
    Ok(())
}

/// Parses a single instruction (prefixes, mnemonic, operands; no label or
/// directive) on line 1.
pub fn parse_instruction(text: &str, arch: Arch) -> Result<ParsedInstruction, ParseError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        arch,
        depth: 0,
    };
    let inst = instruction(&mut p)?;
    if p.peek() != Tok::End {
        return Err(p.expected("`,` or end of line"));
    }
    Ok(inst)
}

/// Parses a whole program. Every line is parsed; all errors are returned.
pub fn parse_program(text: &str, arch: Arch) -> Result<Vec<Statement>, Vec<ParseError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line, i + 1, arch) {
            Ok(v) => out.extend(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Other operand lists that mean the same when some fixed-register operands
/// were left out (`lodsb` for `lodsb al`, `fadd st(1)` for `fadd st, st(1)`).
pub(crate) fn implicit_fills(
    mnemonic: Mnemonic,
    operands: &[Operand],
    arch: Arch,
) -> Vec<Vec<Operand>> {
    let bit = modes::of(arch);
    let mut out: Vec<Vec<Operand>> = Vec::new();
    match (mnemonic.name(), operands) {
        // `imul ecx, 5` is `imul ecx, ecx, 5`.
        ("imul", [Operand::Reg(r), Operand::Imm(v)]) => {
            out.push(vec![Operand::Reg(*r), Operand::Reg(*r), Operand::Imm(*v)])
        }
        // Exchange is symmetric: `xchg ecx, [m]` is `xchg [m], ecx`; `xchg ecx, eax` is `xchg eax, ecx`.
        ("xchg", [a, b]) => out.push(vec![*b, *a]),
        // `fxch`, `fcom`, `fucomi`... alone mean `st, st(1)`; `faddp`... `st(1), st`.
        (
            "fxch" | "fcom" | "fcomp" | "fucom" | "fucomp" | "fcomi" | "fcomip" | "fucomi"
            | "fucomip",
            [],
        ) => {
            if let (Some(st0), Some(st1)) = (Reg::new(RegKind::St, 0), Reg::new(RegKind::St, 1)) {
                out.push(vec![Operand::Reg(st0), Operand::Reg(st1)]);
            }
        }
        ("faddp" | "fmulp" | "fsubp" | "fsubrp" | "fdivp" | "fdivrp", []) => {
            if let (Some(st0), Some(st1)) = (Reg::new(RegKind::St, 0), Reg::new(RegKind::St, 1)) {
                out.push(vec![Operand::Reg(st1), Operand::Reg(st0)]);
            }
        }
        _ => {}
    }
    for form in mnemonic.forms().iter().filter(|f| f.modes() & bit != 0) {
        let kinds: Vec<K> = form.explicit_kinds().to_vec();
        if kinds.len() <= operands.len() {
            continue;
        }
        let mut filled = Vec::with_capacity(kinds.len());
        let mut j = 0;
        let mut ok = true;
        for k in &kinds {
            // A fixed register, or the 1 of `shl r/m, 1` (`shl eax` shifts by one).
            let fixed = match k {
                K::One => Some(Operand::Imm(1)),
                _ => fixed_reg(*k).map(Operand::Reg),
            };
            let same = |a: &Operand, b: &Operand| match (a, b) {
                (Operand::Reg(x), Operand::Reg(y)) => x.kind() == y.kind() && x.id() == y.id(),
                _ => a == b,
            };
            match (fixed, operands.get(j)) {
                (Some(f), Some(w)) if same(&f, w) => {
                    filled.push(operands[j]);
                    j += 1;
                }
                (Some(f), _) => filled.push(f),
                (None, Some(op)) => {
                    filled.push(*op);
                    j += 1;
                }
                (None, None) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && j == operands.len() && !out.contains(&filled) {
            out.push(filled);
        }
    }
    out
}

fn fixed_reg(kind: K) -> Option<Reg> {
    let (rk, id) = match kind {
        K::Al => (RegKind::Gp8, 0),
        K::Cl => (RegKind::Gp8, 1),
        K::Ax => (RegKind::Gp16, 0),
        K::Dx => (RegKind::Gp16, 2),
        K::Eax => (RegKind::Gp32, 0),
        K::Rax => (RegKind::Gp64, 0),
        K::St0 => (RegKind::St, 0),
        _ => return None,
    };
    Reg::new(rk, id)
}
