//! The [`Emitter`] trait: what the typed API (`Instructions`) needs from
//! anything that takes x86 instructions (the Assembler; later the Builder and
//! the Compiler).

use super::db::Mnemonic;
use super::encoder::FormPlans;
use super::operand::Operand;
use crate::error::Error;

/// Something that takes x86 instructions. Implementing `emit` gives every
/// typed method of [`super::Instructions`] for free.
pub trait Emitter {
    /// Emits one instruction with its explicit operands in Intel order; the
    /// options set since the last instruction (prefixes, rounding, ...) apply to it.
    fn emit(&mut self, mnemonic: Mnemonic, operands: &[Operand]) -> Result<(), Error>;

    /// Like [`emit`](Self::emit), with the forms the typed API already knows
    /// can match (indices into the database, in preference order). Emitters
    /// that record instructions rather than encode them can ignore the hint.
    #[inline]
    fn emit_forms(
        &mut self,
        mnemonic: Mnemonic,
        forms: &'static [u16],
        operands: &[Operand],
    ) -> Result<(), Error> {
        let _ = forms;
        self.emit(mnemonic, operands)
    }

    /// Like [`emit_forms`](Self::emit_forms), with what the typed API
    /// worked out about the candidate forms when the program was compiled
    /// (how to encode the first ones). Emitters that do not encode pass
    /// the candidates on.
    #[inline]
    fn emit_planned(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static FormPlans,
        operands: &[Operand],
    ) -> Result<(), Error> {
        self.emit_forms(mnemonic, plans.forms(), operands)
    }

    /// What the typed API calls: [`emit_planned`](Self::emit_planned) with
    /// the operands by value, so that an emitter that encodes them at once
    /// can keep them in registers (as constants, at a typed call site) and
    /// write them to memory only on the way to its general path.
    #[inline(always)]
    fn emit_typed<const N: usize>(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static FormPlans,
        operands: [Operand; N],
    ) -> Result<(), Error> {
        self.emit_planned(mnemonic, plans, &operands)
    }
}
