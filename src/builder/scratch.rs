//! Validation of instructions as they are added to a [`super::Builder`]: each
//! one is encoded once into a private scratch [`CodeHolder`], so that an
//! invalid instruction fails at the call (as with the Assembler) and the
//! Builder learns its size (and, for instructions that refer to no label or
//! address, its final bytes) before any layout is done.
//!
//! Labels of the real code holder are mirrored lazily in the scratch holder
//! (anonymous, never bound), so every label use is encoded as a pending
//! fixup. The scratch holder is reset once the uses it has accumulated
//! outnumber its labels, which keeps both its memory and the cost of
//! re-creating the mirrored labels linear in the number of instructions.

use crate::code::{CodeHolder, Label};
use crate::error::{Error, Result};
use crate::x86::{Assembler, Emitter, InstOptions, MemBase, Mnemonic, Operand};

/// Uses accumulated before the scratch holder may be reset.
const RESET_AFTER: usize = 4096;

/// A scratch code holder for encoding instructions once, out of place.
pub(super) struct Scratch {
    code: CodeHolder,
    uses: usize,
}

/// What an instruction's operands refer to: the highest label (as a branch
/// target or a memory base), and whether there is an immediate.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Refs {
    pub label: Option<Label>,
    pub imm: bool,
}

impl Refs {
    pub(super) fn of(operands: &[Operand]) -> Refs {
        let mut refs = Refs::default();
        for op in operands {
            let label = match op {
                Operand::Imm(_) => {
                    refs.imm = true;
                    continue;
                }
                Operand::Label(l) => *l,
                Operand::Mem(m) => match m.base() {
                    MemBase::Label(l) => l,
                    _ => continue,
                },
                _ => continue,
            };
            if refs.label.is_none_or(|m| label.0 > m.0) {
                refs.label = Some(label);
            }
        }
        refs
    }
}

impl Scratch {
    pub(super) fn new(code: &CodeHolder) -> Scratch {
        Scratch {
            code: CodeHolder::new(code.arch()),
            uses: 0,
        }
    }

    /// Encodes one instruction as the Assembler would at some offset of the
    /// real holder `real` (label positions aside) and returns its size; its
    /// bytes are then [`bytes`](Self::bytes).
    pub(super) fn encode(
        &mut self,
        real: &CodeHolder,
        refs: Refs,
        mnemonic: Mnemonic,
        forms: Option<&'static [u16]>,
        operands: &[Operand],
        options: InstOptions,
    ) -> Result<usize> {
        let label = refs.label;
        if let Some(label) = label
            && label.0 as usize >= real.label_count()
        {
            return Err(Error::InvalidLabel { id: label.0 });
        }
        if self.code.arch() != real.arch() {
            self.code = CodeHolder::new(real.arch());
            self.uses = 0;
        }
        if self.code.base_address() != real.base_address() {
            self.code.set_base_address(real.base_address());
        }
        if label.is_some() || refs.imm {
            if self.uses > RESET_AFTER.max(self.code.label_count()) {
                self.code.reset();
                self.uses = 0;
            }
            self.uses += 1;
        }
        if let Some(label) = label {
            while self.code.label_count() <= label.0 as usize {
                self.code.new_label();
            }
        }
        self.code.buffer_mut(CodeHolder::TEXT).clear();
        let mut a = Assembler::new(&mut self.code);
        a.options(options);
        match forms {
            Some(forms) => a.emit_forms(mnemonic, forms, operands)?,
            None => a.emit(mnemonic, operands)?,
        }
        Ok(self.code.text().len())
    }

    /// Label and address uses recorded since the last reset.
    #[cfg(test)]
    pub(super) fn uses(&self) -> usize {
        self.uses
    }

    /// The bytes of the last instruction encoded.
    pub(super) fn bytes(&self) -> &[u8] {
        self.code.text()
    }
}
