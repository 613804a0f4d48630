//! The coverage report (`jitforge isa --coverage`): per extension group and
//! mode, how many forms the database holds, how many the encoder encodes
//! (each form forced with operands made for it), which oracle the test
//! suite checks them against, and the forms that do not encode, by name.
//!
//! The oracle column says which test decodes every encoded form of the
//! group: iced-x86 in `tests/encoder_forms.rs` (both modes), llvm-mc-22 and
//! llvm-objdump-22 in `tests/apx.rs` for APX, which iced-x86 does not know.
//!
//! ```
//! use jitforge::Arch;
//! use jitforge::x86::text::coverage::coverage;
//!
//! let rows = coverage(Arch::X64);
//! let apx = rows.iter().find(|r| r.group == "apx").unwrap();
//! assert_eq!(apx.encoded, apx.forms);
//! ```

use super::super::db::{self, Form, OperandKind as K, flags, modes};
use super::super::encoder::{Site, encode};
use super::super::mem::{Mem, MemBase};
use super::super::operand::Operand;
use super::super::options::InstOptions;
use super::super::reg::{Decorators, KReg, Reg, RegKind};
use crate::code::{Arch, CodeHolder};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The oracle that checks the non-APX forms.
pub const ICED: &str = "iced-x86 (tests/encoder_forms.rs)";
/// The oracle that checks the APX forms.
pub const LLVM22: &str = "llvm-mc-22 + llvm-objdump-22 (tests/apx.rs)";

/// One extension group in one mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageRow {
    /// The group: `apx` for APX forms, otherwise the form's first CPU feature (`avx512f`, `sse2`).
    pub group: String,
    /// 64 or 32.
    pub bits: u32,
    /// Forms of the group valid in the mode (the universe).
    pub forms: usize,
    /// Forms the encoder encodes.
    pub encoded: usize,
    /// Forms encoded and checked by [`CoverageRow::oracle`].
    pub verified: usize,
    /// The test and oracle that decodes the group's forms.
    pub oracle: &'static str,
    /// The forms that do not encode (`mnemonic operands`).
    pub missing: Vec<String>,
}

/// The group a form counts in.
pub fn group_of(form: &Form) -> String {
    if form.is_apx() {
        return "apx".into();
    }
    form.cpu_features()
        .first()
        .map_or_else(|| "base".into(), |f| f.name().to_string())
}

/// Operands made for `form`: a register of each slot's kind, a memory
/// operand of the form's size, an immediate that fits; `None` where a slot
/// takes nothing this makes.
fn operands_for(form: &Form, arch: Arch) -> Option<(Vec<Operand>, InstOptions)> {
    let x64 = arch == Arch::X64;
    let gp64 = if x64 { RegKind::Gp64 } else { RegKind::Gp32 };
    let addr = match form.address_size() {
        16 => RegKind::Gp16,
        32 => RegKind::Gp32,
        64 => RegKind::Gp64,
        _ => gp64,
    };
    let reg = |kind: RegKind, id: u8| Reg::new(kind, id).map(Operand::Reg);
    let mem = |kind: K| -> Option<Operand> {
        let m = if addr == RegKind::Gp16 {
            Mem::new(MemBase::Reg(Reg::new(addr, 3)?), 0x10).with_index(Reg::new(addr, 6)?, 1)
        } else {
            let base = Mem::new(MemBase::Reg(Reg::new(addr, 3)?), 0x10);
            let index = match kind {
                K::Vm32x | K::Vm64x => Reg::new(RegKind::Xmm, 2)?,
                K::Vm32y | K::Vm64y => Reg::new(RegKind::Ymm, 2)?,
                K::Vm32z | K::Vm64z => Reg::new(RegKind::Zmm, 2)?,
                _ => Reg::new(addr, 6)?,
            };
            base.with_index(index, if kind == K::MemMib { 1 } else { 2 })
        };
        let m = if form.mem_size() != 0 {
            m.with_size(form.mem_size())
        } else {
            m
        };
        Some(Operand::Mem(m))
    };
    let mut ops = Vec::new();
    for (slot, &kind) in form.explicit_kinds().iter().enumerate() {
        let id = 1 + slot as u8;
        let op = match kind {
            K::R8M | K::R8 | K::R8Op | K::R8V => reg(RegKind::Gp8, id)?,
            K::R16M | K::R16 | K::R16Rm | K::R16Op | K::R16V | K::R16Addr => {
                reg(RegKind::Gp16, id)?
            }
            K::R32M | K::R32MMpx | K::R32 | K::R32Rm | K::R32Op | K::R32V | K::R32Addr => {
                reg(RegKind::Gp32, id)?
            }
            K::R64M | K::R64MMpx | K::R64 | K::R64Rm | K::R64Op | K::R64V | K::R64Addr => {
                reg(RegKind::Gp64, id)?
            }
            K::MmM | K::Mm | K::MmRm => reg(RegKind::Mm, id)?,
            K::XmmM | K::Xmm | K::XmmRm | K::XmmV | K::XmmIs4 | K::XmmIs5 => reg(RegKind::Xmm, id)?,
            K::XmmV4 => reg(RegKind::Xmm, 4)?,
            K::YmmM | K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => reg(RegKind::Ymm, id)?,
            K::ZmmM | K::Zmm | K::ZmmRm | K::ZmmV => reg(RegKind::Zmm, id)?,
            K::ZmmV4 => reg(RegKind::Zmm, 4)?,
            K::KM | K::K | K::KRm | K::KV => reg(RegKind::K, id)?,
            K::KPair => reg(RegKind::K, 2)?,
            K::BndM | K::Bnd => reg(RegKind::Bnd, id)?,
            K::Tmm | K::TmmRm | K::TmmV => reg(RegKind::Tmm, id)?,
            K::SReg => reg(RegKind::Seg, 3)?,
            K::Cr => reg(RegKind::Cr, 0)?,
            K::Dr => reg(RegKind::Dr, 1)?,
            K::Es => reg(RegKind::Seg, 0)?,
            K::Cs => reg(RegKind::Seg, 1)?,
            K::Ss => reg(RegKind::Seg, 2)?,
            K::Ds => reg(RegKind::Seg, 3)?,
            K::Fs => reg(RegKind::Seg, 4)?,
            K::Gs => reg(RegKind::Seg, 5)?,
            K::Al => reg(RegKind::Gp8, 0)?,
            K::Cl => reg(RegKind::Gp8, 1)?,
            K::Ax => reg(RegKind::Gp16, 0)?,
            K::Dx => reg(RegKind::Gp16, 2)?,
            K::Eax => reg(RegKind::Gp32, 0)?,
            K::Rax => reg(RegKind::Gp64, 0)?,
            K::St0 => reg(RegKind::St, 0)?,
            K::StOp => reg(RegKind::St, 3)?,
            K::FarPtr16 | K::FarPtr32 => Operand::Imm((8 << 32) | 0x1000),
            K::Moffs => {
                let m = Mem::absolute(0x1000).with_size(form.mem_size());
                Operand::Mem(if x64 { m.abs64() } else { m })
            }
            // The operand-kind classes the database defines (registers,
            // matched above, take the memory kinds' register variant).
            k if k.takes_label() => Operand::Imm(0x40),
            k if k.takes_immediate() => Operand::Imm(1),
            k if k.takes_memory() => mem(kind)?,
            _ => return None,
        };
        ops.push(op);
    }
    if form.has(flags::K_REQUIRED) {
        let mask = Decorators::NONE.with_mask(KReg::from_id(1)?);
        match ops.first_mut() {
            Some(Operand::Reg(r)) => *r = r.with_decorators(mask),
            Some(Operand::Mem(m)) => *m = m.k(KReg::from_id(1)?),
            _ => {}
        }
    }
    Some((ops, InstOptions::NONE))
}

/// Whether the encoder encodes `form` (index `index` in the form table).
fn encodes(index: u16, form: &Form, arch: Arch) -> bool {
    let Some((ops, options)) = operands_for(form, arch) else {
        return false;
    };
    let mut code = CodeHolder::new(arch);
    code.set_base_address(Some(0));
    let site = Site {
        code: &code,
        section: CodeHolder::TEXT,
        offset: 0,
    };
    // Only this form is a candidate, so a preferred sibling cannot take the operands.
    encode(
        &site,
        form.mnemonic(),
        Some(static_candidate(index)),
        &ops,
        options,
    )
    .is_ok_and(|e| std::ptr::eq(e.form, form))
}

/// A `'static` one-element candidate list for form `index`.
fn static_candidate(index: u16) -> &'static [u16] {
    use std::sync::OnceLock;
    static ALL: OnceLock<Vec<u16>> = OnceLock::new();
    let all = ALL.get_or_init(|| (0..db::FORMS.len() as u16).collect());
    &all[index as usize..index as usize + 1]
}

/// The coverage of every group in one mode, groups in name order.
pub fn coverage(arch: Arch) -> Vec<CoverageRow> {
    let (bit, bits) = if arch == Arch::X64 {
        (modes::M64, 64)
    } else {
        (modes::M32, 32)
    };
    let mut groups: BTreeMap<String, CoverageRow> = BTreeMap::new();
    for (index, form) in db::FORMS.iter().enumerate() {
        if form.modes() & bit == 0 {
            continue;
        }
        let group = group_of(form);
        let row = groups.entry(group.clone()).or_insert_with(|| CoverageRow {
            group,
            bits,
            forms: 0,
            encoded: 0,
            verified: 0,
            oracle: if form.is_apx() { LLVM22 } else { ICED },
            missing: Vec::new(),
        });
        row.forms += 1;
        if encodes(index as u16, form, arch) {
            row.encoded += 1;
            row.verified += 1;
        } else {
            row.missing.push(format!(
                "{} {}",
                form.mnemonic().name(),
                super::isa::operands_text(form)
            ));
        }
    }
    groups.into_values().collect()
}

/// The report as text: one line per group and mode, the totals, then the
/// forms that do not encode.
pub fn coverage_text() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>4} {:>6} {:>8} {:>8}  oracle",
        "group", "mode", "forms", "encoded", "verified"
    );
    let mut missing = Vec::new();
    for arch in [Arch::X64, Arch::X86] {
        let rows = coverage(arch);
        let (mut forms, mut encoded, mut verified) = (0, 0, 0);
        for r in &rows {
            let _ = writeln!(
                out,
                "{:<24} {:>4} {:>6} {:>8} {:>8}  {}",
                r.group, r.bits, r.forms, r.encoded, r.verified, r.oracle
            );
            forms += r.forms;
            encoded += r.encoded;
            verified += r.verified;
            missing.extend(
                r.missing
                    .iter()
                    .map(|m| format!("{}-bit {}: {m}", r.bits, r.group)),
            );
        }
        let _ = writeln!(
            out,
            "{:<24} {:>4} {:>6} {:>8} {:>8}",
            "total",
            arch.bits(),
            forms,
            encoded,
            verified
        );
    }
    let _ = writeln!(out, "missing: {}", missing.len());
    for m in missing {
        let _ = writeln!(out, "  {m}");
    }
    out
}
