//! Writes `src/x86/db/generated_direct.rs`: the opcodes of the few forms the
//! Compiler's rewrite encodes without the general encoder
//! (`src/compiler/rewrite/direct.rs`: moves, spill stores and reloads,
//! `movups`, and the integer operations of two general-purpose operands).
//!
//! That encoder writes `[REX] [0F] opcode ModRM [SIB disp]` and nothing
//! else, so each form is looked up here by mnemonic and operands and
//! checked to be of that shape: a legacy `/r` form of the one-byte or 0F
//! map with no mandatory prefix, whose 32- and 64-bit forms differ only in
//! REX.W. A form that is missing or of another shape fails generation
//! (naming the form), rather than encoding wrong bytes.

use crate::parse::Row;
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

/// The source of `generated_direct.rs` for `rows` (every database file's
/// rows, in database order), or what is wrong with the form of a constant.
pub fn generate_direct(rows: &[Row]) -> Result<String, String> {
    let mut out = String::from(crate::generate::HEADER);
    out.push_str(
        "//! The opcodes of the forms the Compiler's rewrite encodes itself\n\
         //! (`src/compiler/rewrite/direct.rs`), looked up in the database by mnemonic\n\
         //! and operands. Each is `[REX] [0F] opcode /r` with no mandatory prefix; a\n\
         //! general-purpose one's 32- and 64-bit forms differ only in REX.W.\n\
         //! `_RM_R`: the destination in ModRM.rm, the source in ModRM.reg; `_R_RM`:\n\
         //! the other way round.\n\n\
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
