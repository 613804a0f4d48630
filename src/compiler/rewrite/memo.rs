//! The rewrite's memo of encoded instructions: the bytes of an allocated
//! instruction by what decides them, packed into two words, so that an
//! instruction the rewrite wrote before (the same shape on the same
//! registers, spill slot displacement and immediate) is copied instead of
//! being turned into x86 operands and encoded again.
//!
//! What decides the bytes of a target instruction is its facts-table tag
//! (the instruction id and every operand's kind, class, size and view, see
//! `X86Target::facts_index`) and where its virtual registers went; of an
//! edit, its kind, register class, width and locations. Both fit in two
//! words with a 32-bit displacement and immediate (what does not is not
//! remembered), so that an entry is 32 bytes. Keys by tag are
//! only valid within one epoch of the facts table (its indexes are reused
//! after it is cleared): the memo is emptied when the epoch changes.
//!
//! It serves the direct writer only (code with nothing to relax, written
//! straight into the code holder): there an instruction is plain bytes
//! with no label or address to fix up.

use crate::builder::append_cut;
use jitforge_ir::{InstData, InstKind};
use jitforge_regalloc::{Allocation, Edit, Output, ProgPoint, SpillSlot};

/// Entries of the memo at most (a power of two, 32 bytes each, 64 KB in
/// all): workload B remembers some 1,200 keys (its register pairs, and its
/// spill slots through templates); 4,096 entries would put B's peak heap
/// over 200 bytes per IR instruction.
const MAX_SLOTS: usize = 2048;

/// Entries of the memo at least: what small functions (workload C) use
/// again from one to the next.
const MIN_SLOTS: usize = 512;

/// The key of one instruction; [`FILLED`] in the first word, so that an
/// empty entry (all zero) matches no key.
pub(crate) type Key = [u64; 2];

/// Set in the first word of every key.
pub(crate) const FILLED: u64 = 1 << 63;

/// An instruction of the memo and its bytes.
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Entry {
    key: Key,
    len: u8,
    bytes: [u8; 15],
}

/// Encoded instructions by key (see the module docs); kept between
/// functions in the Compiler's workspace.
#[derive(Default)]
pub(crate) struct EncodingMemo {
    /// Four-way by [`EncodingMemo::slot`] (a key in its slot or another
    /// of its aligned group of four, see [`find`]); empty until first used.
    entries: Vec<Entry>,
    /// The facts-table epoch the tags in the keys belong to.
    epoch: u64,
    /// The number of entries (a power of two; `entries` has that many
    /// once anything is remembered).
    slots: usize,
    /// By tag: its [`TagKind`] as a number, 0 while not seen yet.
    operands: Vec<u8>,
    /// Entries put in place of another key since the memo last grew: when
    /// they are many, the instructions used again (by many small functions
    /// as much as by a large one) do not fit, and it grows.
    evictions: usize,
}

/// What the instructions of one tag are to the memo.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagKind {
    /// Register operands only: their allocations decide the bytes.
    Registers = 1,
    /// Also immediates or memory: those are read too.
    Other = 2,
    /// Not remembered: an immediate that may be a branch target (`call
    /// imm`, `jmp imm`), encoded relative to where the instruction lands.
    Never = 3,
}

impl EncodingMemo {
    /// Makes the memo one of facts-table epoch `epoch` (emptied when it
    /// held the instructions of another), for a function of `insts` IR
    /// instructions: two entries per instruction, so that a small function
    /// does not pay for the memory a large one needs, between
    /// [`MIN_SLOTS`] and [`MAX_SLOTS`] (it grows, emptied, and stays).
    pub(crate) fn begin(&mut self, epoch: u64, insts: usize) {
        if self.epoch != epoch {
            self.entries.fill(Entry::default());
            self.operands.clear();
            self.epoch = epoch;
        }
        // Evicting one in eight of its entries: it is too small for what
        // the functions compiled use again (workload C's 10,000 small
        // functions missed 0.55 times each at 512 entries, 0.007 at 4,096).
        let crowded = if self.evictions > self.entries.len() / 8 {
            self.evictions = 0;
            (2 * self.entries.len()).min(MAX_SLOTS)
        } else {
            0
        };
        self.slots = (2 * insts)
            .next_power_of_two()
            .clamp(MIN_SLOTS, MAX_SLOTS)
            .max(self.entries.len())
            .max(crowded);
        if !self.entries.is_empty() && self.entries.len() < self.slots {
            // The slots of the keys change with the size: start again.
            self.entries.clear();
            self.entries.resize(self.slots, Entry::default());
        }
    }

    /// What the instructions of tag `tag` are to the memo (a tag fixes
    /// the instruction and each operand's kind): `of_this` (of an
    /// instruction of the tag) decides the first time.
    #[inline(always)]
    pub(crate) fn tag_kind(&mut self, tag: u16, of_this: impl FnOnce() -> TagKind) -> TagKind {
        match self.operands.get(usize::from(tag)) {
            Some(1) => TagKind::Registers,
            Some(2) => TagKind::Other,
            Some(3) => TagKind::Never,
            _ => {
                let kind = of_this();
                if self.operands.len() <= usize::from(tag) {
                    self.operands.resize(usize::from(tag) + 1, 0);
                }
                self.operands[usize::from(tag)] = kind as u8;
                kind
            }
        }
    }

    /// The entry of `key`: a multiply-rotate hash of its words.
    #[inline(always)]
    pub(crate) fn slot(&self, key: &Key) -> usize {
        Self::hash(key) & (self.slots.max(1) - 1)
    }

    /// A multiplicative hash of `key`'s words (the product's high bits,
    /// which every bit of the key reaches; the low ones mix little).
    #[inline(always)]
    fn hash(key: &Key) -> usize {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        ((key[0] ^ key[1].rotate_left(23)).wrapping_mul(K) >> 40) as usize
    }

    /// The slot of `key`'s second group (see [`find_second`]): another
    /// multiplicative hash, its words folded first so that the high bits
    /// of the key reach the product's bits the slot takes too.
    #[inline(always)]
    fn second_hash(key: &Key) -> usize {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let x = key[0] ^ key[1].rotate_left(23);
        ((x ^ x >> 29).wrapping_mul(K) >> 40) as usize
    }

    /// Appends the bytes remembered for `key` (at `slot`) to `text`; false
    /// when there are none.
    #[inline(always)]
    pub(crate) fn append(&self, slot: usize, key: &Key, text: &mut Vec<u8>) -> bool {
        match find(&self.entries, slot, key) {
            Some(e) => {
                append_cut(text, &e.bytes, e.len);
                true
            }
            None => false,
        }
    }

    /// Remembers the bytes of `key` (at most 15; an instruction is never
    /// longer, an edit that wrote nothing has none).
    pub(crate) fn put(&mut self, slot: usize, key: &Key, bytes: &[u8]) {
        if bytes.len() > 15 {
            return;
        }
        if self.entries.is_empty() {
            self.entries
                .resize(self.slots.max(MIN_SLOTS), Entry::default());
        }
        let slot = place(&self.entries, slot, key);
        if let Some(e) = self.entries.get_mut(slot) {
            self.evictions += usize::from(e.key[0] != 0);
            e.key = *key;
            e.len = bytes.len() as u8;
            e.bytes = [0; 15];
            e.bytes[..bytes.len()].copy_from_slice(bytes);
        }
    }
}

/// The entry of `key` whose slot is `slot`: there or in another entry of
/// its aligned group of four (`slot ^ 1`, `^ 2`, `^ 3`), else in its
/// second group (see [`find_second`]). With two ways (a slot and its
/// pair) B's 1,200 keys in 2,048 entries evicted one another some 400
/// times a compile, each a miss encoded again; with four, the keys of a
/// crowded slot spill into the group. Most keys are in their own slot:
/// the first probe hits.
#[inline(always)]
fn find<'e>(entries: &'e [Entry], slot: usize, key: &Key) -> Option<&'e Entry> {
    find_in_group(entries, slot, key).or_else(|| find_second(entries, key[0], key[1]))
}

/// The entry of `key` in the aligned group of four of `slot`, if any.
#[inline(always)]
fn find_in_group<'e>(entries: &'e [Entry], slot: usize, key: &Key) -> Option<&'e Entry> {
    let hit = |s: usize| entries.get(s).filter(|e| e.key == *key);
    hit(slot)
        .or_else(|| hit(slot ^ 1))
        .or_else(|| hit(slot ^ 2))
        .or_else(|| hit(slot ^ 3))
}

/// The entry of `key` in its second group (of [`EncodingMemo::second_hash`]),
/// where a key goes when its first group is full: with one group of four
/// B's keys still evicted one another some 340 times a compile (the
/// crowded groups of a random spread), with two choices hardly ever.
/// Out of line: in steady state few keys are there.
/// (The key's words by value: a reference would make the copy loop keep
/// every key it builds in memory.)
#[cold]
#[inline(never)]
fn find_second(entries: &[Entry], first: u64, second: u64) -> Option<&Entry> {
    let key = [first, second];
    let slot = EncodingMemo::second_hash(&key) & entries.len().wrapping_sub(1);
    find_in_group(entries, slot, &key)
}

/// Where a new entry of `key` (whose slot is `slot`) goes (see [`find`]):
/// the first free entry of its group, its own slot first, else of its
/// second group; the slot itself when all eight are taken (moving
/// entries would cost every miss).
fn place(entries: &[Entry], slot: usize, key: &Key) -> usize {
    let free = |s: usize| entries.get(s).is_some_and(|e| e.key[0] == 0);
    let second = EncodingMemo::second_hash(key) & entries.len().wrapping_sub(1);
    [slot, slot ^ 1, slot ^ 2, slot ^ 3]
        .into_iter()
        .chain([second, second ^ 1, second ^ 2, second ^ 3])
        .find(|&s| free(s))
        .unwrap_or(slot)
}

impl EncodingMemo {
    /// Copies the bytes of instructions `from..until` of `insts` (whose
    /// allocations are `allocs[offsets[i]..offsets[i + 1]]`) to `text`
    /// while each is a target instruction of a tag with register operands
    /// only ([`TagKind::Registers`]), at most four allocations, all in
    /// registers but for at most one spill slot (at the displacement
    /// `spill_disp` gives it), and remembered: by its own key in
    /// registers, by the template of its displacement's width with a slot
    /// (see `template_key` in the rewrite; the displacement patched in;
    /// by its own key at displacement 0).
    /// The common instruction of a function, whose values fit or whose
    /// spilled operand is folded, which then costs a key, a hash and a copy.
    /// The edits before and after each (`edits` from `*next`, in program
    /// order) are written in the same loop where `gp_edit_directly` of the
    /// rewrite writes them (with spill slots of `edit_in`'s frame and
    /// allocation), `*next` moved past
    /// them: most are general-purpose moves, stores and reloads (one call
    /// per run of instructions, not one per edit point and per run).
    /// Returns the first instruction not copied (`until` when all were),
    /// which the caller writes the general way (the memo key it builds for
    /// it there is the one built here, see `Rewriter::target_key`), from
    /// the first edit not written: before it, or after the
    /// instruction before it.
    #[allow(clippy::too_many_arguments)] // the loop's inputs, all read in it
    #[inline(always)]
    pub(crate) fn copy_registers_only(
        &self,
        insts: &[InstData],
        offsets: &[u32],
        allocs: &[Allocation],
        range: (usize, usize),
        spill_disp: impl Fn(SpillSlot) -> Option<i32>,
        edits: (&[(ProgPoint, Edit)], &mut usize),
        edit_in: (&super::Frame, &Output),
        text: &mut Vec<u8>,
    ) -> usize {
        // Past the last edit (small functions often have none) a loop
        // without the edit checks, which keeps fewer values in registers.
        if edits.0.get(*edits.1).is_none() {
            self.copy_run::<false>(
                insts, offsets, allocs, range, spill_disp, edits, edit_in, text,
            )
        } else {
            self.copy_run::<true>(
                insts, offsets, allocs, range, spill_disp, edits, edit_in, text,
            )
        }
    }

    /// [`copy_registers_only`](Self::copy_registers_only), with the edit
    /// checks if `EDITS`. Each a function of its own (the dispatch above
    /// inlined into the caller): in one function the registers of the
    /// two loops were allocated together, and a change to the edit loop
    /// cost workload C's loop without edits a reload per instruction.
    #[allow(clippy::too_many_arguments)] // the loop's inputs, all read in it
    #[inline(never)]
    fn copy_run<const EDITS: bool>(
        &self,
        insts: &[InstData],
        offsets: &[u32],
        allocs: &[Allocation],
        (from, until): (usize, usize),
        spill_disp: impl Fn(SpillSlot) -> Option<i32>,
        (edits, next_out): (&[(ProgPoint, Edit)], &mut usize),
        edit_in: (&super::Frame, &Output),
        text: &mut Vec<u8>,
    ) -> usize {
        // The next edit in a local, written back at the end (not through
        // the reference at every edit).
        let mut next = *next_out;
        let (Some(insts), Some(bounds)) = (insts.get(from..until), offsets.get(from..)) else {
            return from;
        };
        // Once anything is remembered there are `slots` entries, a power
        // of two: the mask of a slot is the length's.
        let entries = &self.entries[..];
        let Some(mask) = entries.len().checked_sub(1) else {
            return from;
        };
        let kinds = &self.operands[..];
        // The code in a local (not written back through `text` for every
        // instruction).
        let mut code = core::mem::take(text);
        let mut lo = bounds.first().map_or(0, |&o| o as usize);
        let mut copied = insts.len();
        // The edits at `point` from `edits[*next..]` as far as
        // `gp_edit_directly` writes them:
        // false at the first it does not write (the caller's edit loop
        // goes on from there). Only called at the instruction of the next
        // edit (`edit_inst`, usize::MAX past the last): most have none.
        let edit_inst = |next: usize| {
            edits
                .get(next)
                .map_or(usize::MAX, |(p, _)| p.inst().index())
        };
        let mut next_inst = edit_inst(next);
        let edits_at = |point: ProgPoint, next: &mut usize, code: &mut Vec<u8>| {
            while let Some((at, e)) = edits.get(*next)
                && *at == point
            {
                if !super::gp_edit_directly(edit_in.0, edit_in.1, e, code) {
                    return false;
                }
                *next += 1;
            }
            true
        };
        for ((k, d), &hi) in insts.iter().enumerate().zip(&bounds[1..]) {
            let hi = hi as usize;
            let inst = jitforge_regalloc::Inst::new(from + k);
            if EDITS
                && next_inst == from + k
                && !edits_at(ProgPoint::before(inst), &mut next, &mut code)
            {
                copied = k;
                break;
            }
            let (tag, allocs) = match (d.kind, d.tag()) {
                (InstKind::Target(_), Some(tag))
                    if kinds.get(usize::from(tag)) == Some(&(TagKind::Registers as u8)) =>
                {
                    // (More than four: no key has them, `registers_key`
                    // and `copy_template` say so by their count.)
                    (tag, allocs.get(lo..hi))
                }
                _ => (0, None),
            };
            let Some(allocs) = allocs else {
                copied = k;
                break;
            };
            let copied_here = match Self::registers_key(tag, allocs) {
                Some(key) => match find(entries, Self::hash(&key) & mask, &key) {
                    Some(e) => {
                        append_cut(&mut code, &e.bytes, e.len);
                        true
                    }
                    None => false,
                },
                // One not in a register: a folded spill slot, perhaps.
                None => self.copy_template(tag, allocs, &spill_disp, &mut code),
            };
            if !copied_here {
                copied = k;
                break;
            }
            lo = hi;
            // (Those it does not write: the caller's, see above.)
            if EDITS && next_inst == from + k {
                if !edits_at(ProgPoint::after(inst), &mut next, &mut code) {
                    copied = k + 1;
                    break;
                }
                next_inst = edit_inst(next);
            }
        }
        *text = code;
        *next_out = next;
        from + copied
    }

    /// The memo key of an instruction of tag `tag` with register operands
    /// only ([`TagKind::Registers`]) allocated `allocs` (at most four):
    /// `None` with one not in a register (the general key has more).
    #[inline(always)]
    fn registers_key(tag: u16, allocs: &[Allocation]) -> Option<Key> {
        // Spelled out by count (at most four; most instructions have two):
        // no loop, no shift by a variable amount.
        let code = |a: &Allocation| match *a {
            Allocation::Reg(p) if p.hw < 32 => Some((p.class as u64) << 5 | u64::from(p.hw)),
            _ => None,
        };
        let codes = match allocs {
            [] => 0,
            [a] => code(a)?,
            [a, b] => code(a)? | code(b)? << 7,
            [a, b, c] => code(a)? | code(b)? << 7 | code(c)? << 14,
            [a, b, c, d] => code(a)? | code(b)? << 7 | code(c)? << 14 | code(d)? << 21,
            _ => return None,
        };
        Some([
            FILLED | u64::from(tag) | (allocs.len() as u64) << 16 | codes << 19,
            0,
        ])
    }

    /// [`copy_registers_only`](Self::copy_registers_only) for an
    /// instruction of tag `tag` allocated `allocs` (at most four) all in
    /// registers but one spill slot (at the displacement `spill_disp`
    /// gives it): its template (see `template_key` in the rewrite)
    /// appended to `code` and the displacement patched in; at displacement
    /// 0 (no template: the instruction has no displacement byte) the bytes
    /// of its own key, which are those of that one slot. False having
    /// written nothing for any other, or without the bytes. Out of line:
    /// the copy loop keeps less in registers for the others.
    #[inline(never)]
    fn copy_template(
        &self,
        tag: u16,
        allocs: &[Allocation],
        spill_disp: &impl Fn(SpillSlot) -> Option<i32>,
        code: &mut Vec<u8>,
    ) -> bool {
        // Spelled out by count as in `registers_key` (no loop, no shift by
        // a variable amount); the one spill slot's code is STACK_CODE, its
        // displacement looked up once the key is whole.
        let mut stack = None;
        let mut code_of = |a: &Allocation| match *a {
            Allocation::Reg(p) if p.hw < 32 => Some((p.class as u64) << 5 | u64::from(p.hw)),
            Allocation::Stack(s) if stack.is_none() => {
                stack = Some(s);
                Some(super::STACK_CODE)
            }
            _ => None,
        };
        let codes = match allocs {
            [a] => code_of(a),
            [a, b] => code_of(a).zip(code_of(b)).map(|(a, b)| a | b << 7),
            [a, b, c] => (|| Some(code_of(a)? | code_of(b)? << 7 | code_of(c)? << 14))(),
            [a, b, c, d] => {
                (|| Some(code_of(a)? | code_of(b)? << 7 | code_of(c)? << 14 | code_of(d)? << 21))()
            }
            _ => None,
        };
        let (Some(codes), Some(slot)) = (codes, stack) else {
            return false;
        };
        let Some(disp) = spill_disp(slot) else {
            return false;
        };
        // The instruction's own key as `target_key` in the rewrite builds
        // it (the displacement in the second word), and of its template.
        let head = FILLED
            | u64::from(tag)
            | (allocs.len() as u64) << 16
            | codes << 19
            | super::SP_DISP_KEY;
        let (key, width) = if disp == 0 {
            ([head, 0], 0)
        } else if i8::try_from(disp).is_ok() {
            ([head | super::TEMPLATE_KEY, 1], 1)
        } else {
            ([head | super::TEMPLATE_KEY, 4], 4)
        };
        let Some(e) = find(
            &self.entries,
            Self::hash(&key) & self.entries.len().wrapping_sub(1),
            &key,
        ) else {
            return false;
        };
        append_cut(code, &e.bytes, e.len);
        // The displacement (fixed sizes: a copy of a variable one would
        // call `memcpy`).
        let end = code.len();
        if width == 1 {
            code[end - 1] = disp as u8;
        } else if width == 4 {
            code[end - 4..].copy_from_slice(&disp.to_le_bytes());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memo that evicts many entries grows at the next function (up to
    /// [`MAX_SLOTS`]), emptied, and then gives the bytes put in it.
    #[test]
    fn crowded_memo_grows() {
        let mut memo = EncodingMemo::default();
        memo.begin(1, 10);
        let key = |n: u64| -> Key { [FILLED | n, 0] };
        for n in 0..4 * MIN_SLOTS as u64 {
            memo.put(memo.slot(&key(n)), &key(n), &[n as u8, 0x90]);
        }
        assert_eq!(memo.entries.len(), MIN_SLOTS);
        memo.begin(1, 10);
        assert_eq!(memo.entries.len(), 2 * MIN_SLOTS);
        let mut text = Vec::new();
        assert!(!memo.append(memo.slot(&key(7)), &key(7), &mut text));
        memo.put(memo.slot(&key(7)), &key(7), &[7, 0x90]);
        assert!(memo.append(memo.slot(&key(7)), &key(7), &mut text));
        assert_eq!(text, [7, 0x90]);
        for _ in 0..8 {
            for n in 0..4 * MAX_SLOTS as u64 {
                memo.put(memo.slot(&key(n)), &key(n), &[0x90]);
            }
            memo.begin(1, 10);
        }
        assert_eq!(memo.entries.len(), MAX_SLOTS);
    }

    /// Five keys of one slot all stay: the fifth, its group of four full,
    /// goes to its second group and is found there (with one group it
    /// would evict one of the others).
    #[test]
    fn full_group_spills_to_second_group() {
        let mut memo = EncodingMemo::default();
        memo.begin(1, 10);
        let key = |n: u64| -> Key { [FILLED | n, 0] };
        let target = memo.slot(&key(0));
        let same: Vec<u64> = (0..)
            .filter(|&n| memo.slot(&key(n)) == target)
            .take(5)
            .collect();
        for &n in &same {
            memo.put(memo.slot(&key(n)), &key(n), &[n as u8, 0x90]);
        }
        assert_eq!(memo.evictions, 0);
        for &n in &same {
            let mut text = Vec::new();
            assert!(memo.append(target, &key(n), &mut text), "key {n}");
            assert_eq!(text, [n as u8, 0x90]);
        }
    }
}
