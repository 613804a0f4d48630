//! Validation without emitting: which form an instruction would use in a
//! mode, and whether a CPU has the features that form needs. The returned
//! [`Form`] also answers introspection questions (operands read and
//! written, implicit registers, flags, CPU features).
//!
//! ```
//! use jitforge::Arch;
//! use jitforge::x86::*;
//!
//! let form = validate(Arch::X64, Mnemonic::Div, &[rcx.into()], InstOptions::NONE)?;
//! let implicit: Vec<&str> = form.implicit().iter().map(|i| i.reg.name()).collect();
//! assert_eq!(implicit, ["rax", "rdx"]);
//! // 64-bit registers do not exist in 32-bit mode:
//! assert!(validate(Arch::X86, Mnemonic::Div, &[rcx.into()], InstOptions::NONE).is_err());
//! # Ok::<(), jitforge::Error>(())
//! ```

use super::cpu::CpuFeatures;
use super::db::{CpuFeature, Form, Mnemonic};
use super::encoder::{Site, encode};
use super::mem::MemBase;
use super::operand::Operand;
use super::options::InstOptions;
use super::reg::Reg;
use crate::code::{Arch, CodeHolder};
use crate::error::Error;

/// The form `mnemonic` with `operands` and `options` encodes to in `arch`,
/// or why it is invalid (no form takes these operand kinds, a size
/// mismatch, a register not available in the mode or not encodable with
/// VEX, ...). Labels are taken as unbound.
pub fn validate(
    arch: Arch,
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
) -> Result<&'static Form, Error> {
    let mut code = CodeHolder::new(arch);
    // The labels the operands name exist (unbound) in this scratch holder.
    let labels = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Label(l) => Some(l.id() + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    for _ in 0..labels {
        code.new_label();
    }
    let site = Site {
        code: &code,
        section: CodeHolder::TEXT,
        offset: 0,
    };
    Ok(encode(&site, mnemonic, None, operands, options)?.form)
}

/// Like [`validate`], and also checks that `cpu` has every feature the form needs.
pub fn validate_for_cpu(
    arch: Arch,
    cpu: &CpuFeatures,
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
) -> Result<&'static Form, Error> {
    let form = validate(arch, mnemonic, operands, options)?;
    // r16-r31 in a form that predates APX (through REX2 or EVEX) need APX too.
    let extended = |r: Reg| r.kind().is_gp() && r.id() >= 16;
    let uses_egpr = operands.iter().any(|o| match o {
        Operand::Reg(r) => extended(*r),
        Operand::Mem(m) => {
            matches!(m.base(), MemBase::Reg(b) if extended(b)) || m.index().is_some_and(extended)
        }
        _ => false,
    });
    if uses_egpr && !cpu.contains(CpuFeature::ApxF) {
        return Err(Error::InvalidInstruction {
            instruction: super::encoder::instruction_text(mnemonic, operands, options),
            reason: "r16-r31 need CPU feature apx_f".into(),
        });
    }
    if let Some(missing) = form.cpu_features().iter().find(|f| !cpu.contains(**f)) {
        return Err(Error::InvalidInstruction {
            instruction: super::encoder::instruction_text(mnemonic, operands, options),
            reason: format!("needs CPU feature {}", missing.name()),
        });
    }
    Ok(form)
}
