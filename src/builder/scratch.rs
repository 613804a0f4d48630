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
use crate::x86::{Assembler, Emitter, InstOptions, MemBase, Mnemonic, Operand, Reg};

/// Uses accumulated before the scratch holder may be reset.
const RESET_AFTER: usize = 4096;

/// Slots of the memo of encoded instructions (a power of two).
const MEMO_SLOTS: usize = 1024;

/// Operands an instruction may have to be remembered in the memo.
const MEMO_OPERANDS: usize = 4;
// `MemoKey::eq` compares the eight words of four operands one by one.
const _: () = assert!(2 * MEMO_OPERANDS == 8);

/// A scratch code holder for encoding instructions once, out of place.
pub(super) struct Scratch {
    /// Made on first use (and again when the architecture changes).
    /// Boxed: it goes to the next Builder of the thread and back (see
    /// [`Scratch::new`]) as a pointer, not a copy of the holder.
    code: Option<Box<CodeHolder>>,
    uses: usize,
    /// Recently encoded instructions that refer to no label or address,
    /// by hash of what they are (empty until the first one).
    memo: Vec<Encoded>,
}

/// An instruction of the memo and its bytes.
#[derive(Clone, Copy, Default)]
struct Encoded {
    key: MemoKey,
    len: u8,
    bytes: [u8; 15],
}

/// An instruction of the memo packed into words: equal keys encode to the
/// same bytes (every field the encoding reads is in them), and comparing
/// or hashing a key is a few word operations, where comparing operand
/// slices matches on each operand's variant and fields.
#[derive(Clone, Copy, Eq, Default)]
pub(super) struct MemoKey {
    /// Mnemonic (bits 0..16), options (16..48), operand count (48..56),
    /// and [`MemoKey::FILLED`] (so that an empty slot matches no key).
    head: u64,
    /// The candidate forms asked for (address and length of the list; 0
    /// for the Assembler's own choice).
    forms: (usize, usize),
    /// Two words per operand (see [`MemoKey::operand_words`]), unused ones 0.
    words: [u64; 2 * MEMO_OPERANDS],
}

impl PartialEq for MemoKey {
    /// Word by word, without branches in the words (the derived compare
    /// calls `bcmp` for the array, which costs more than the dozen words).
    #[inline]
    fn eq(&self, other: &MemoKey) -> bool {
        let (a, b) = (&self.words, &other.words);
        let differ = (a[0] ^ b[0])
            | (a[1] ^ b[1])
            | (a[2] ^ b[2])
            | (a[3] ^ b[3])
            | (a[4] ^ b[4])
            | (a[5] ^ b[5])
            | (a[6] ^ b[6])
            | (a[7] ^ b[7]);
        self.head == other.head && self.forms == other.forms && differ == 0
    }
}

impl MemoKey {
    const FILLED: u64 = 1 << 63;

    /// Makes this the key of an instruction that goes into the memo and
    /// says whether it does: its bytes depend only on its operands (no
    /// label, no branch to an address), and it is the kind that repeats:
    /// physical registers, immediates and memory without a label (a
    /// Compiler's spill slots repeat as often as its registers), few
    /// enough to remember. (Filled in place: the key is a dozen words.)
    #[inline(always)]
    fn set(
        &mut self,
        mnemonic: Mnemonic,
        forms: (usize, usize),
        operands: &[Operand],
        options: InstOptions,
    ) -> bool {
        if operands.len() > MEMO_OPERANDS {
            return false;
        }
        self.head = Self::FILLED
            | mnemonic as u64
            | u64::from(options.0) << 16
            | (operands.len() as u64) << 48;
        self.forms = forms;
        self.words = [0; 2 * MEMO_OPERANDS];
        let mut imm = false;
        for (i, op) in operands.iter().enumerate() {
            imm |= matches!(op, Operand::Imm(_));
            let Some([first, second]) = Self::operand_words(op) else {
                return false;
            };
            self.words[2 * i] = first;
            self.words[2 * i + 1] = second;
        }
        !(imm && super::may_branch_to_address(mnemonic))
    }

    /// One operand as two words that tell apart any two operands that
    /// encode differently; `None` for what the memo does not take (labels,
    /// virtual registers, memory on a label or with a segment, broadcast,
    /// decorations or a 64-bit absolute address).
    #[inline]
    fn operand_words(op: &Operand) -> Option<[u64; 2]> {
        // Kind, id and decorations of a physical register in 24 bits.
        fn reg_bits(r: Reg) -> Option<u64> {
            if r.is_virtual() {
                return None;
            }
            let d = r.decorators();
            let decorators = u64::from(d.mask())
                | u64::from(d.zeroing()) << 3
                | u64::from(d.virtual_mask()) << 4;
            Some(r.kind() as u64 | u64::from(r.id()) << 8 | decorators << 16)
        }
        // An address register in 16 bits (it has no decorations).
        fn address_reg_bits(r: Reg) -> Option<u64> {
            reg_bits(r).filter(|&bits| bits <= 0xFFFF)
        }
        Some(match *op {
            Operand::Reg(r) => [1 | reg_bits(r)? << 8, 0],
            Operand::Imm(v) => [2, v as u64],
            Operand::Mem(m) => {
                if m.segment().is_some()
                    || m.is_broadcast()
                    || m.is_abs64()
                    || !m.decorators().is_empty()
                {
                    return None;
                }
                // Base: 0 none, 1 register, 2 rip (bits 2..4), the register's
                // kind and id (4..20; no decorations on address registers);
                // index present (20), its kind and id (21..37); scale
                // (37..45); size (45..61).
                let base = match m.base() {
                    MemBase::None => 0,
                    MemBase::Reg(r) => 1 | address_reg_bits(r)? << 2,
                    MemBase::Rip => 2,
                    MemBase::Label(_) => return None,
                };
                let index = match m.index() {
                    Some(r) => 1 | address_reg_bits(r)? << 1,
                    None => 0,
                };
                [
                    3 | base << 2
                        | index << 20
                        | u64::from(m.scale()) << 37
                        | u64::from(m.size()) << 45,
                    m.disp() as u64,
                ]
            }
            Operand::None | Operand::Label(_) => return None,
        })
    }

    /// The memo slot of the key: a multiply-rotate hash of its words (all
    /// of them: unused ones are 0, and a fixed count unrolls).
    #[inline]
    fn slot(&self) -> usize {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = (self.head ^ (self.forms.0 as u64) ^ (self.forms.1 as u64).rotate_left(32))
            .wrapping_mul(K);
        for pair in self.words.chunks_exact(2) {
            h = (h.rotate_left(5) ^ pair[0] ^ pair[1].rotate_left(29)).wrapping_mul(K);
        }
        (h >> 40) as usize & (MEMO_SLOTS - 1)
    }
}

thread_local! {
    /// The scratch holder of the last Builder dropped on this thread.
    static SPARE_SCRATCH: std::cell::Cell<Option<(Box<CodeHolder>, Vec<Encoded>)>> =
        const { std::cell::Cell::new(None) };
}

/// Frees the scratch holder and memo kept on this thread for the next
/// Builder (see [`crate::compiler::release_thread_workspace`]).
#[cfg(feature = "compiler")]
pub(crate) fn release_spare_scratch() {
    let _ = SPARE_SCRATCH.try_with(|s| s.take());
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

/// Of a two-way memo (a key lives in its slot or the other of the pair):
/// the entry at `slot` or the other of its pair for which `hit` holds.
#[inline(always)]
pub(crate) fn two_way_find<E>(entries: &[E], slot: usize, hit: impl Fn(&E) -> bool) -> Option<&E> {
    match entries.get(slot) {
        Some(e) if hit(e) => Some(e),
        _ => entries.get(slot ^ 1).filter(|e| hit(e)),
    }
}

/// Of a two-way memo: where a new entry of `slot` goes, so that two
/// frequent keys of one slot do not take turns: that slot unless it is
/// `taken` and the other of the pair is free (moving entries would cost
/// every miss).
pub(crate) fn two_way_place<E>(entries: &[E], slot: usize, taken: impl Fn(&E) -> bool) -> usize {
    let taken = |s: usize| entries.get(s).is_some_and(&taken);
    if taken(slot) && !taken(slot ^ 1) {
        slot ^ 1
    } else {
        slot
    }
}

/// Appends the first `len` of an instruction's 15 `bytes` to `text`: all
/// 15 are copied and the excess cut off (a copy of a fixed size is a few
/// moves, one of a variable size a call of `memcpy`).
#[cfg(feature = "compiler")] // the Compiler's direct writer and rewrite only
#[inline(always)]
pub(crate) fn append_cut(text: &mut Vec<u8>, bytes: &[u8; 15], len: u8) {
    let end = text.len() + usize::from(len);
    text.extend_from_slice(bytes);
    text.truncate(end);
}

/// Stores an instruction's bytes (at most 15) in the memo under `key`,
/// at `slot` (its key's [`MemoKey::slot`]). The memo is two-way: a key
/// lives in its slot or the other of the pair, so that two frequent
/// instructions of one slot do not take turns: the first slot unless it is
/// taken and the second is free (moving entries would cost every miss).
fn remember(memo: &mut Vec<Encoded>, slot: usize, key: &MemoKey, bytes: &[u8]) {
    if bytes.len() > 15 {
        return;
    }
    if memo.is_empty() {
        memo.resize(MEMO_SLOTS, Encoded::default());
    }
    let slot = two_way_place(memo, slot, |e| e.key.head != 0);
    if let Some(e) = memo.get_mut(slot) {
        e.key = *key;
        e.len = bytes.len() as u8;
        e.bytes[..bytes.len()].copy_from_slice(bytes);
    }
}

/// The bytes the memo holds for `key` (at `slot`, its key's
/// [`MemoKey::slot`], or the other of the pair), if any.
#[inline]
fn recall<'m>(memo: &'m [Encoded], slot: usize, key: &MemoKey) -> Option<&'m [u8]> {
    let e = two_way_find(memo, slot, |e| e.key == *key)?;
    e.bytes.get(..e.len as usize)
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
        let mut key = MemoKey::default();
        let memo = key
            .set(mnemonic, forms_key, operands, options)
            .then(|| (key.slot(), key));
        let Some(code) = self.code.as_deref_mut() else {
            return Err(Error::InvalidArgument {
                message: "scratch code holder missing".into(),
            });
        };
        if let Some((slot, key)) = &memo
            && let Some(bytes) = recall(&self.memo, *slot, key)
        {
            let text = code.buffer_mut(CodeHolder::TEXT);
            text.clear();
            text.extend_from_slice(bytes);
            return Ok(bytes.len());
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
        if let Some((slot, key)) = &memo {
            remember(&mut self.memo, *slot, key, text);
        }
        Ok(text.len())
    }

    /// The scratch holder, for the fast encoder to write instructions of
    /// `real`'s 64-bit code with (into a buffer the caller lends it as its
    /// `.text`); `None` for 32-bit code (which the fast encoder does not cover).
    #[inline]
    pub(super) fn fast_holder(&mut self, real: &CodeHolder) -> Option<&mut CodeHolder> {
        if real.arch() != crate::code::Arch::X64 {
            return None;
        }
        self.prepare(real.arch());
        self.code.as_deref_mut()
    }

    /// Makes the scratch holder (and so the memo) one of `arch`: the memo
    /// is emptied when the architecture changes.
    #[inline]
    fn prepare(&mut self, arch: crate::code::Arch) {
        if self.code.as_ref().is_none_or(|c| c.arch() != arch) {
            self.remake(arch);
        }
    }

    /// A new scratch holder (and an empty memo) for `arch`.
    #[cold]
    fn remake(&mut self, arch: crate::code::Arch) {
        self.uses = 0;
        self.memo.clear();
        self.code = Some(Box::new(CodeHolder::new(arch)));
    }

    /// Makes `key` the memo key of an instruction (see [`MemoKey::set`])
    /// of code of `arch` and returns its slot; `None` when the instruction
    /// does not go into the memo.
    #[cfg(feature = "compiler")] // used by the Compiler's direct writer only
    #[inline]
    pub(super) fn memo_key_of(
        &mut self,
        arch: crate::code::Arch,
        key: &mut MemoKey,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Option<usize> {
        self.prepare(arch);
        key.set(mnemonic, (0, 0), operands, options)
            .then(|| key.slot())
    }

    /// Appends the bytes the memo holds at `slot` for `key` to `text`;
    /// false when it holds none.
    #[cfg(feature = "compiler")] // used by the Compiler's direct writer only
    #[inline]
    pub(super) fn memo_append(&self, slot: usize, key: &MemoKey, text: &mut Vec<u8>) -> bool {
        match two_way_find(&self.memo, slot, |e| e.key == *key) {
            Some(e) => {
                append_cut(text, &e.bytes, e.len);
                true
            }
            None => false,
        }
    }

    /// Remembers the bytes of an instruction at `slot` under `key` (from
    /// [`Scratch::memo_key_of`]).
    #[cfg(feature = "compiler")] // used by the Compiler's direct writer only
    pub(super) fn memo_put(&mut self, slot: usize, key: &MemoKey, bytes: &[u8]) {
        remember(&mut self.memo, slot, key, bytes);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::{
        Mem, Operand, byte_ptr, dword_ptr, eax, k1, ptr, qword_ptr, r8, rax, rbx, zmm0,
    };

    fn key(mnemonic: Mnemonic, operands: &[Operand]) -> Option<MemoKey> {
        let mut key = MemoKey::default();
        key.set(mnemonic, (0, 0), operands, InstOptions::NONE)
            .then_some(key)
    }

    /// Operands that encode differently have different keys (each field
    /// the encoding reads is in the key).
    #[test]
    fn keys_tell_operands_apart() {
        let mems: [Mem; 9] = [
            qword_ptr(rax + 8),
            dword_ptr(rax + 8),
            byte_ptr(rax + 8),
            qword_ptr(rax + 9),
            qword_ptr(Mem::new(MemBase::Reg(rax.into()), 8 + (1i64 << 32))),
            qword_ptr(rbx + 8),
            qword_ptr(rax + rbx * 2 + 8),
            qword_ptr(rax + rbx * 4 + 8),
            qword_ptr(rax + r8 * 4 + 8),
        ];
        let mut operands: Vec<Operand> = mems.iter().map(|&m| Operand::Mem(m)).collect();
        operands.extend([
            Operand::Reg(rax.into()),
            Operand::Reg(eax.into()),
            Operand::Reg(rbx.into()),
            Operand::Reg(zmm0.into()),
            Operand::Reg(zmm0.k(k1).into()),
            Operand::Reg(zmm0.k(k1).z().into()),
            Operand::Imm(8),
            Operand::Imm(9),
            Operand::Imm(-8),
        ]);
        let keys: Vec<MemoKey> = operands
            .iter()
            .map(|&op| key(Mnemonic::Mov, &[op]).expect("memoized"))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(a == b, i == j, "{:?} vs {:?}", operands[i], operands[j]);
            }
        }
        // The mnemonic, the operand order and count count too.
        let (a, b) = (Operand::Reg(rax.into()), Operand::Reg(rbx.into()));
        assert!(key(Mnemonic::Mov, &[a, b]) != key(Mnemonic::Add, &[a, b]));
        assert!(key(Mnemonic::Mov, &[a, b]) != key(Mnemonic::Mov, &[b, a]));
        assert!(key(Mnemonic::Push, &[a]) != key(Mnemonic::Push, &[a, Operand::Imm(0)]));
    }

    /// Labels, virtual registers, segment overrides and branches to an
    /// address stay out of the memo.
    #[test]
    fn what_the_memo_leaves_out() {
        let label = crate::code::Label(0);
        let virt = Operand::Reg(crate::x86::Reg::new_virtual(crate::x86::RegKind::Gp64, 0));
        assert!(key(Mnemonic::Jmp, &[Operand::Label(label)]).is_none());
        assert!(
            key(
                Mnemonic::Lea,
                &[Operand::Reg(rax.into()), Operand::Mem(ptr(label))]
            )
            .is_none()
        );
        assert!(key(Mnemonic::Mov, &[virt, Operand::Imm(1)]).is_none());
        assert!(key(Mnemonic::Call, &[Operand::Imm(0x1000)]).is_none());
        let fs = qword_ptr(rax).with_segment(crate::x86::fs);
        assert!(key(Mnemonic::Mov, &[Operand::Reg(rax.into()), Operand::Mem(fs)]).is_none());
        assert!(
            key(
                Mnemonic::Mov,
                &[Operand::Reg(rax.into()), Operand::Mem(qword_ptr(rax))]
            )
            .is_some()
        );
    }
}
