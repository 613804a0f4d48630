//! Writes `src/x86/db/generated_opcodes.rs`: the opcodes of the forms that
//! code outside the general encoder writes itself.
//!
//! - The Compiler's rewrite (`src/compiler/rewrite/direct.rs`: moves, spill
//!   stores and reloads, `movups`, and the integer operations of two
//!   general-purpose operands) writes `[REX] [0F] opcode ModRM [SIB disp]`
//!   and nothing else, so each form is looked up here by mnemonic and
//!   operands and checked to be of that shape: a legacy `/r` form of the
//!   one-byte or 0F map with no mandatory prefix, whose 32- and 64-bit forms
//!   differ only in REX.W.
//! - Single opcode bytes ([`byte_constants`]): the branch relaxation's
//!   `jmp`/`jcc`/`call` (`src/builder/relax.rs`), the alignment NOPs
//!   (`src/x86/assembler.rs`), the encoders' `nop`/`xchg eax, eax` and
//!   REX2 `push`/`pop`/`xsave` rules and `fwait` prefix, and the `int3` that fills
//!   fresh JIT memory (`src/jit/allocator.rs`).
//!   Each lists the forms whose byte it is, with the encoding its user
//!   writes around the byte; every form must be in the database with
//!   exactly that encoding, and all with the same byte.
//!
//! A form that is missing or of another shape fails generation (naming the
//! form), rather than encoding wrong bytes.

use crate::parse::{Encoding, Row, parse_encoding};
use std::fmt::Write as _;

/// How the forms of one constant differ in width.
#[derive(Clone, Copy)]
enum Width {
    /// General-purpose: a 32-bit form valid in both modes, and a 64-bit one
    /// (64-bit mode only) that is the same opcode with REX.W.
    Gp,
    /// One form of vector registers, valid in both modes, without REX.W.
    Vector,
}

/// One generated constant: its name, the mnemonic, and its operands in the
/// database's tokens, written with `{}` for the register width (`r{}/m`
/// is `r32/m` and `r64/m`; `xmm` has none).
struct Wanted {
    name: &'static str,
    mnemonic: &'static str,
    operands: [&'static str; 2],
    width: Width,
}

const fn gp(name: &'static str, mnemonic: &'static str, operands: [&'static str; 2]) -> Wanted {
    Wanted {
        name,
        mnemonic,
        operands,
        width: Width::Gp,
    }
}

/// `_RM_R`: the destination in ModRM.rm and the source in ModRM.reg;
/// `_R_RM`: the other way round.
const WANTED: &[Wanted] = &[
    gp("MOV_RM_R", "mov", ["r{}/m", "r{}"]),
    gp("MOV_R_RM", "mov", ["r{}", "r{}/m"]),
    Wanted {
        name: "MOVUPS_RM_R",
        mnemonic: "movups",
        operands: ["xmm/m", "xmm"],
        width: Width::Vector,
    },
    Wanted {
        name: "MOVUPS_R_RM",
        mnemonic: "movups",
        operands: ["xmm", "xmm/m"],
        width: Width::Vector,
    },
    gp("ADD_RM_R", "add", ["r{}/m", "r{}"]),
    gp("ADD_R_RM", "add", ["r{}", "r{}/m"]),
    gp("OR_RM_R", "or", ["r{}/m", "r{}"]),
    gp("OR_R_RM", "or", ["r{}", "r{}/m"]),
    gp("ADC_RM_R", "adc", ["r{}/m", "r{}"]),
    gp("ADC_R_RM", "adc", ["r{}", "r{}/m"]),
    gp("SBB_RM_R", "sbb", ["r{}/m", "r{}"]),
    gp("SBB_R_RM", "sbb", ["r{}", "r{}/m"]),
    gp("AND_RM_R", "and", ["r{}/m", "r{}"]),
    gp("AND_R_RM", "and", ["r{}", "r{}/m"]),
    gp("SUB_RM_R", "sub", ["r{}/m", "r{}"]),
    gp("SUB_R_RM", "sub", ["r{}", "r{}/m"]),
    gp("XOR_RM_R", "xor", ["r{}/m", "r{}"]),
    gp("XOR_R_RM", "xor", ["r{}", "r{}/m"]),
    gp("CMP_RM_R", "cmp", ["r{}/m", "r{}"]),
    gp("CMP_R_RM", "cmp", ["r{}", "r{}/m"]),
    gp("IMUL_R_RM", "imul", ["r{}", "r{}/m"]),
];

/// The source of `generated_opcodes.rs` for `rows` (every database file's
/// rows, in database order), or what is wrong with the form of a constant.
pub fn generate_opcodes(rows: &[Row]) -> Result<String, String> {
    let mut out = String::from(crate::generate::HEADER);
    out.push_str(
        "//! The opcodes of the forms that code outside the general encoder writes\n\
         //! itself, looked up in the database by mnemonic and operands (see\n\
         //! `tools/dbgen/src/opcodes.rs`).\n\
         //!\n\
         //! First those the Compiler's rewrite encodes (`src/compiler/rewrite/direct.rs`).\n\
         //! Each is `[REX] [0F] opcode /r` with no mandatory prefix; a\n\
         //! general-purpose one's 32- and 64-bit forms differ only in REX.W.\n\
         //! `_RM_R`: the destination in ModRM.rm, the source in ModRM.reg; `_R_RM`:\n\
         //! the other way round.\n\
         //!\n\
         //! Then single opcode bytes, each of the forms its comment lists, in the\n\
         //! encoding given there (a `_0F_` constant is the byte after the 0F escape).\n\n\
         /// A legacy opcode of the one-byte or the 0F map.\n\
         #[derive(Clone, Copy, Debug, PartialEq, Eq)]\n\
         pub(crate) struct LegacyOpcode {\n\
         \x20   /// Whether the 0F escape byte comes first (the 0F map).\n\
         \x20   pub(crate) escape_0f: bool,\n\
         \x20   /// The opcode byte.\n\
         \x20   pub(crate) byte: u8,\n\
         }\n",
    );
    for wanted in WANTED {
        let forms: Vec<(Vec<String>, bool)> = match wanted.width {
            Width::Gp => [("32", false), ("64", true)]
                .iter()
                .map(|&(bits, wide)| {
                    let operands = wanted.operands.map(|o| o.replace("{}", bits));
                    (operands.to_vec(), wide)
                })
                .collect(),
            Width::Vector => vec![(wanted.operands.map(String::from).to_vec(), false)],
        };
        let mut opcode = None;
        let mut described = Vec::new();
        for (operands, wide) in &forms {
            let row = first_form(rows, wanted.mnemonic, operands)?;
            let this = checked_opcode(row, *wide)?;
            if opcode.is_some_and(|first| first != this) {
                return Err(format!(
                    "{}:{}: the 32- and 64-bit forms of {} differ in more than REX.W",
                    row.file, row.line, wanted.name
                ));
            }
            opcode = Some(this);
            described.push(format!(
                "`{} {}` (`{}`)",
                wanted.mnemonic,
                operands.join(", "),
                encoding_text(row)
            ));
        }
        let (escape_0f, byte) = opcode.expect("every constant has a form");
        let _ = write!(
            out,
            "\n/// {}.\npub(crate) const {}: LegacyOpcode = LegacyOpcode {{ escape_0f: {escape_0f}, byte: {byte:#04X} }};\n",
            described.join(", "),
            wanted.name
        );
    }
    for constant in byte_constants() {
        write_byte_constant(&mut out, rows, &constant)?;
    }
    Ok(out)
}

/// The first form of `mnemonic` with exactly `operands` (access aside): the
/// one the general encoder prefers.
fn first_form<'a>(rows: &'a [Row], mnemonic: &str, operands: &[String]) -> Result<&'a Row, String> {
    rows.iter()
        .find(|row| row.mnemonic == mnemonic && row.operands == operands)
        .ok_or_else(|| {
            format!(
                "no form `{mnemonic} {}` in the database (src/compiler/rewrite/direct.rs encodes it)",
                operands.join(", ")
            )
        })
}

/// `row`'s (0F escape, opcode byte), if it is of the shape the direct
/// encoder writes (REX.W exactly if `wide`); else what is not.
fn checked_opcode(row: &Row, wide: bool) -> Result<(bool, u8), String> {
    let e = &row.encoding;
    let problem = if e.kind != "legacy" {
        Some(format!("a {} encoding, not legacy", e.kind))
    } else if !(e.prefix.is_empty() || e.prefix == "np") {
        Some(format!("mandatory prefix {}", e.prefix))
    } else if e.modrm != "r" {
        Some(format!("ModRM `{}`, not /r", e.modrm))
    } else if e.second.is_some() || e.fixed_rm.is_some() || e.fwait || e.rex2 {
        Some("bytes beyond `[0F] opcode /r`".to_string())
    } else if e.address_size != 0 {
        Some(format!("address size {}", e.address_size))
    } else if wide && !(e.rex_w && e.operand_size == 64 && row.mode64) {
        Some("a 64-bit form without REX.W or not for 64-bit mode".to_string())
    } else if !wide && (e.rex_w || matches!(e.operand_size, 16 | 64) || !(row.mode64 && row.mode32))
    {
        Some("a 32-bit form with REX.W or another operand size, or not for both modes".to_string())
    } else if !(e.map.is_empty() || e.map == "0f") {
        Some(format!("opcode map {}", e.map))
    } else {
        None
    };
    match problem {
        None => Ok((e.map == "0f", e.opcode)),
        Some(problem) => Err(format!(
            "{}:{}: `{} {}` has {problem}: src/compiler/rewrite/direct.rs cannot encode it",
            row.file,
            row.line,
            row.mnemonic,
            row.operands.join(", ")
        )),
    }
}

/// The encoding column as the database spells it (the parts that matter here).
fn encoding_text(row: &Row) -> String {
    let e = &row.encoding;
    let mut parts: Vec<String> = Vec::new();
    if e.operand_size != 0 {
        parts.push(format!("o{}", e.operand_size));
    }
    if !e.prefix.is_empty() {
        parts.push(e.prefix.clone());
    }
    if e.rex_w {
        parts.push("rex.w".into());
    }
    if !e.map.is_empty() {
        parts.push(e.map.clone());
    }
    parts.push(format!("{:02x}", e.opcode));
    parts.push(format!("/{}", e.modrm));
    parts.join(" ")
}

/// One single-byte constant: its name, who writes it, and the forms whose
/// opcode byte it is: (mnemonic, operands, encoding), the encoding as the
/// database writes it with `xx` for the opcode byte.
pub struct ByteConstant {
    /// The constant's name.
    pub name: String,
    /// The files that write the byte (named in errors).
    pub user: &'static str,
    /// The forms that must all be in the database with this byte.
    pub forms: Vec<(&'static str, &'static [&'static str], &'static str)>,
}

const RELAX: &str = "src/builder/relax.rs";

/// The conditional jumps the branch relaxation writes.
const CONDITIONAL_JUMPS: [&str; 16] = [
    "jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js", "jns", "jp", "jnp", "jl", "jge",
    "jle", "jg",
];

/// The single opcode bytes written outside the general encoder, each
/// with the forms (in the encodings their writers put around the byte)
/// that must have it.
pub fn byte_constants() -> Vec<ByteConstant> {
    // `rel8`/`rel32` of the 32- and 64-bit modes, without prefixes: what
    // the branch relaxation writes (`map` is "0f " for the 0F map).
    let branch = |name: String, mnemonic: &'static str, operand: &'static str, map: &str| {
        let operands: &'static [&'static str] = if operand == "rel8" {
            &["rel8"]
        } else {
            &["rel32"]
        };
        let (o32, o64) = match map {
            "" => ("o32 xx", "o64 xx"),
            _ => ("o32 0f xx", "o64 0f xx"),
        };
        ByteConstant {
            name,
            user: RELAX,
            forms: vec![(mnemonic, operands, o32), (mnemonic, operands, o64)],
        }
    };
    let mut constants = vec![
        branch("JMP_REL8".into(), "jmp", "rel8", ""),
        branch("JMP_REL32".into(), "jmp", "rel32", ""),
        branch("CALL_REL32".into(), "call", "rel32", ""),
    ];
    for jcc in CONDITIONAL_JUMPS {
        let upper = jcc.to_uppercase();
        constants.push(branch(format!("{upper}_REL8"), jcc, "rel8", ""));
        constants.push(branch(format!("{upper}_0F_REL32"), jcc, "rel32", "0f"));
    }
    // The encoders read `xchg` with r = 0 of `90+r` as `nop`; the assembler
    // pads with `nop`, alone and behind an operand-size prefix.
    constants.push(ByteConstant {
        name: "NOP".into(),
        user: "src/x86/assembler.rs and src/x86/encoder.rs",
        forms: vec![
            ("nop", &[], "o32 xx"),
            ("nop", &[], "o16 xx"),
            ("xchg", &["r16.o", "ax"], "o16 xx+r"),
            ("xchg", &["r32.o", "eax"], "o32 xx+r"),
            ("xchg", &["r64.o", "rax"], "o64 rex.w xx+r"),
        ],
    });
    // The assembler's longer NOPs: ModRM.reg 0 (the /0) with memory operands
    // of the lengths it needs, some behind an operand-size prefix.
    constants.push(ByteConstant {
        name: "NOP_0F_RM".into(),
        user: "src/x86/assembler.rs",
        forms: vec![
            ("nop", &["r32/m"], "o32 0f xx /0"),
            ("nop", &["r16/m"], "o16 0f xx /0"),
        ],
    });
    // REX2 with `50+r`/`58+r` behind an operand-size prefix reads as a
    // 64-bit push/pop to some decoders, so the encoder's rule gives r16-r31
    // of the 16-bit forms the ModRM forms (FF /6, 8F /0) instead.
    for (name, mnemonic) in [("PUSH_R", "push"), ("POP_R", "pop")] {
        constants.push(ByteConstant {
            name: name.into(),
            user: "src/x86/encoder.rs",
            forms: vec![
                (mnemonic, &["r16.o"], "o16 xx+r"),
                (mnemonic, &["r32.o"], "o32 xx+r"),
                (mnemonic, &["r64.o"], "o64 xx+r"),
            ],
        });
    }
    // REX2 may not extend the address of XSAVE*/XRSTOR*: the encoder tells
    // them by these bytes and the ModRM digits listed here.
    for (name, group) in [
        (
            "XSAVE_0F_M",
            [
                ("xsave", "np 0f xx /4"),
                ("xrstor", "np 0f xx /5"),
                ("xsaveopt", "np 0f xx /6"),
            ],
        ),
        (
            "XSAVES_0F_M",
            [
                ("xrstors", "np 0f xx /3"),
                ("xsavec", "np 0f xx /4"),
                ("xsaves", "np 0f xx /5"),
            ],
        ),
    ] {
        constants.push(ByteConstant {
            name: name.into(),
            user: "src/x86/encoder.rs",
            forms: group
                .map(|(mnemonic, shape)| (mnemonic, &["m"][..], shape))
                .to_vec(),
        });
    }
    // The prefix byte of the forms the database marks `fwait` (`fstsw` is
    // `wait` then `fnstsw`).
    constants.push(ByteConstant {
        name: "WAIT".into(),
        user: "src/x86/encoder.rs",
        forms: vec![("wait", &[], "xx")],
    });
    // What fresh JIT memory is filled with, so running into bytes nobody
    // wrote traps.
    constants.push(ByteConstant {
        name: "INT3".into(),
        user: "src/jit/allocator.rs",
        forms: vec![("int3", &[], "xx")],
    });
    constants
}

/// Appends `constant` to `out`: the byte its forms share, or an error
/// naming the form that is missing, of another shape, or of another byte.
fn write_byte_constant(
    out: &mut String,
    rows: &[Row],
    constant: &ByteConstant,
) -> Result<(), String> {
    let mut byte: Option<(u8, &Row)> = None;
    let (mut mode32, mut mode64) = (false, false);
    let mut described = Vec::new();
    for &(mnemonic, operands, shape) in &constant.forms {
        let written = format!("{mnemonic} {}", operands.join(", "));
        let written = written.trim_end();
        let form = format!("`{written}` encoded `{shape}`");
        let wanted = parse_encoding(0, &shape.replace("xx", "00")).map_err(|e| {
            format!(
                "{}: bad encoding {form} in the generator: {e}",
                constant.name
            )
        })?;
        let row = rows
            .iter()
            .find(|row| {
                row.mnemonic == mnemonic
                    && row.operands == operands
                    && Encoding {
                        opcode: 0,
                        ..row.encoding.clone()
                    } == wanted
            })
            .ok_or_else(|| {
                format!(
                    "no form {form} in the database ({} writes its opcode as {})",
                    constant.user, constant.name
                )
            })?;
        if let Some((first, first_row)) = byte
            && first != row.encoding.opcode
        {
            return Err(format!(
                "{}:{}: {form} has opcode {:02x}, but {}:{} has {first:02x}: {} is one byte for both",
                row.file,
                row.line,
                row.encoding.opcode,
                first_row.file,
                first_row.line,
                constant.name
            ));
        }
        byte = Some((row.encoding.opcode, row));
        mode32 |= row.mode32;
        mode64 |= row.mode64;
        described.push(format!(
            "`{written}` (`{}`)",
            shape.replace("xx", &format!("{:02x}", row.encoding.opcode))
        ));
    }
    let Some((byte, _)) = byte else {
        return Err(format!("{} lists no form", constant.name));
    };
    if !(mode32 && mode64) {
        return Err(format!(
            "the forms of {} are not valid in both the 32- and the 64-bit mode ({} writes it in both)",
            constant.name, constant.user
        ));
    }
    let _ = write!(
        out,
        "\n/// {} ({}).\npub(crate) const {}: u8 = {byte:#04X};\n",
        described.join(", "),
        constant.user,
        constant.name
    );
    Ok(())
}
