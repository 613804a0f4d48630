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
//!
//! Instructions whose bytes depend on nothing but their operands (no label,
//! no address) are remembered in a small direct-mapped memo: a Compiler
//! emits the same instruction on the same registers again and again, and a
//! memo hit copies at most 15 bytes instead of encoding again. The scratch
//! holder and its memo outlive their Builder: a dropped one waits for the
//! next Builder of the thread, so that many small functions, each with its
//! own Builder, share it.

use crate::code::{CodeHolder, Label};
use crate::error::{Error, Result};
use crate::x86::{Assembler, Emitter, InstOptions, MemBase, Mnemonic, Operand};

/// Uses accumulated before the scratch holder may be reset.
const RESET_AFTER: usize = 4096;

/// Slots of the memo of encoded instructions (a power of two).
const MEMO_SLOTS: usize = 1024;

/// Operands an instruction may have to be remembered in the memo.
const MEMO_OPERANDS: usize = 4;

/// A scratch code holder for encoding instructions once, out of place.
pub(super) struct Scratch {
    /// Made on first use (and again when the architecture changes).
    code: Option<CodeHolder>,
    uses: usize,
    /// Recently encoded instructions that refer to no label or address,
    /// by hash of what they are (empty until the first one).
    memo: Vec<Option<Encoded>>,
}

/// An instruction of the memo and its bytes.
struct Encoded {
    mnemonic: Mnemonic,
    /// The candidate forms asked for (address and length of the list).
    forms: (usize, usize),
    options: InstOptions,
    count: u8,
    operands: [Operand; MEMO_OPERANDS],
    len: u8,
    bytes: [u8; 15],
}

impl Encoded {
    fn is(
        &self,
        mnemonic: Mnemonic,
        forms: (usize, usize),
        operands: &[Operand],
        options: InstOptions,
    ) -> bool {
        self.mnemonic == mnemonic
            && self.forms == forms
            && self.options == options
            && &self.operands[..self.count as usize] == operands
    }
}

/// The memo slot of an instruction, if it goes into the memo: its bytes
/// depend only on its operands (no label, no branch to an address), and it
/// is the kind that repeats: registers, immediates and memory without a
/// label (a Compiler's spill slots repeat as often as its registers), few
/// enough to remember. The slot is a multiply-rotate hash of a few words
/// that tell instructions apart (a slot's entry is compared in full).
fn memo_slot(mnemonic: Mnemonic, operands: &[Operand], options: InstOptions) -> Option<usize> {
    if operands.len() > MEMO_OPERANDS {
        return None;
    }
    let mut h = (mnemonic as u64) ^ u64::from(options.0) << 20;
    let mut imm = false;
    for op in operands {
        let word = match *op {
            Operand::Reg(r) => 1 | u64::from(r.id()) << 8 | (r.kind() as u64) << 16,
            Operand::Imm(v) => {
                imm = true;
                2 ^ (v as u64) << 8
            }
            Operand::Mem(m) => {
                let base = match m.base() {
                    MemBase::Reg(r) => u64::from(r.id()) + 1,
                    MemBase::Label(_) => return None,
                    _ => 0,
                };
                let index = m.index().map_or(0, |r| u64::from(r.id()) + 1);
                3 ^ (m.disp() as u64) << 8 ^ base << 40 ^ index << 48 ^ u64::from(m.size()) << 56
            }
            _ => return None,
        };
        h = (h.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    if imm && super::may_branch_to_address(mnemonic) {
        return None;
    }
    Some((h >> 40) as usize & (MEMO_SLOTS - 1))
}

thread_local! {
    /// The scratch holder of the last Builder dropped on this thread.
    static SPARE_SCRATCH: std::cell::Cell<Option<(CodeHolder, Vec<Option<Encoded>>)>> =
        const { std::cell::Cell::new(None) };
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(code) = self.code.take() {
            let memo = std::mem::take(&mut self.memo);
            // During thread teardown the slot may be gone: the holder is freed.
            let _ = SPARE_SCRATCH.try_with(|s| s.set(Some((code, memo))));
        }
    }
}

/// Stores an instruction's bytes (at most 15) in the memo at `slot`.
fn remember(
    memo: &mut Vec<Option<Encoded>>,
    slot: usize,
    mnemonic: Mnemonic,
    forms: (usize, usize),
    operands: &[Operand],
    options: InstOptions,
    bytes: &[u8],
) {
    if bytes.len() > 15 || operands.len() > MEMO_OPERANDS {
        return;
    }
    if memo.is_empty() {
        memo.resize_with(MEMO_SLOTS, || None);
    }
    let Some(entry) = memo.get_mut(slot) else {
        return;
    };
    let e = entry.get_or_insert_with(|| Encoded {
        mnemonic,
        forms,
        options,
        count: 0,
        operands: [Operand::default(); MEMO_OPERANDS],
        len: 0,
        bytes: [0; 15],
    });
    e.mnemonic = mnemonic;
    e.forms = forms;
    e.options = options;
    e.count = operands.len() as u8;
    e.operands[..operands.len()].copy_from_slice(operands);
    e.len = bytes.len() as u8;
    e.bytes[..bytes.len()].copy_from_slice(bytes);
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
    pub(super) fn new() -> Scratch {
        let spare = SPARE_SCRATCH.try_with(|s| s.take()).ok().flatten();
        let (code, memo) = spare.map_or((None, Vec::new()), |(c, m)| (Some(c), m));
        Scratch {
            code,
            uses: 0,
            memo,
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
        self.prepare(real.arch());
        let forms_key = forms.map_or((0, 0), |f| (f.as_ptr() as usize, f.len()));
        let memo_slot = memo_slot(mnemonic, operands, options);
        let Some(code) = self.code.as_mut() else {
            return Err(Error::InvalidArgument {
                message: "scratch code holder missing".into(),
            });
        };
        if let Some(slot) = memo_slot
            && let Some(Some(e)) = self.memo.get(slot)
            && e.is(mnemonic, forms_key, operands, options)
        {
            let text = code.buffer_mut(CodeHolder::TEXT);
            text.clear();
            text.extend_from_slice(&e.bytes[..e.len as usize]);
            return Ok(e.len as usize);
        }
        if code.base_address() != real.base_address() {
            code.set_base_address(real.base_address());
        }
        if label.is_some() || refs.imm {
            if self.uses > RESET_AFTER.max(code.label_count()) {
                code.reset();
                self.uses = 0;
            }
            self.uses += 1;
        }
        if let Some(label) = label {
            while code.label_count() <= label.0 as usize {
                code.new_label();
            }
        }
        code.buffer_mut(CodeHolder::TEXT).clear();
        let mut a = Assembler::new(code);
        a.options(options);
        match forms {
            Some(forms) => a.emit_forms(mnemonic, forms, operands)?,
            None => a.emit(mnemonic, operands)?,
        }
        let text = code.text();
        if let Some(slot) = memo_slot {
            remember(
                &mut self.memo,
                slot,
                mnemonic,
                forms_key,
                operands,
                options,
                text,
            );
        }
        Ok(text.len())
    }

    /// The scratch holder, emptied, for the fast encoder to write one
    /// instruction of `real`'s 64-bit code into; `None` for 32-bit code
    /// (which the fast encoder does not cover).
    #[inline]
    pub(super) fn fast_holder(&mut self, real: &CodeHolder) -> Option<&mut CodeHolder> {
        if real.arch() != crate::code::Arch::X64 {
            return None;
        }
        self.prepare(real.arch());
        let code = self.code.as_mut()?;
        code.buffer_mut(CodeHolder::TEXT).clear();
        Some(code)
    }

    /// Makes the scratch holder (and so the memo) one of `arch`: the memo
    /// is emptied when the architecture changes.
    fn prepare(&mut self, arch: crate::code::Arch) {
        if self.code.as_ref().is_none_or(|c| c.arch() != arch) {
            self.uses = 0;
            self.memo.clear();
            self.code = Some(CodeHolder::new(arch));
        }
    }

    /// The memo slot of an instruction that goes into the memo (see
    /// [`memo_slot`]), for code of `arch`; `None` for the others.
    #[cfg(feature = "compiler")] // used by the Compiler's direct writer only
    pub(super) fn memo_slot_of(
        &mut self,
        arch: crate::code::Arch,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Option<usize> {
        self.prepare(arch);
        memo_slot(mnemonic, operands, options)
    }

    /// The bytes the memo holds at `slot` for this instruction, if any.
    #[cfg(feature = "compiler")] // used by the Compiler's direct writer only
    pub(super) fn memo_get(
        &self,
        slot: usize,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Option<&[u8]> {
        match self.memo.get(slot) {
            Some(Some(e)) if e.is(mnemonic, (0, 0), operands, options) => {
                Some(&e.bytes[..e.len as usize])
            }
            _ => None,
        }
    }

    /// Remembers the bytes of an instruction at `slot` (from [`Scratch::memo_slot_of`]).
    #[cfg(feature = "compiler")] // used by the Compiler's direct writer only
    pub(super) fn memo_put(
        &mut self,
        slot: usize,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
        bytes: &[u8],
    ) {
        remember(
            &mut self.memo,
            slot,
            mnemonic,
            (0, 0),
            operands,
            options,
            bytes,
        );
    }

    /// Label and address uses recorded since the last reset.
    #[cfg(test)]
    pub(super) fn uses(&self) -> usize {
        self.uses
    }

    /// The bytes of the last instruction encoded.
    pub(super) fn bytes(&self) -> &[u8] {
        self.code.as_ref().map_or(&[], |c| c.text())
    }
}
