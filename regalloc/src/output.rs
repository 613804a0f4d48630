//! The allocator's result: operand allocations, inserted edits, spill slots, statistics.

use crate::function::{Block, Inst, PReg, PRegSet, RegClass, VReg};
use crate::log::DecisionLog;
use core::fmt;

/// A spill slot, numbered `0..Output::slots.len()`; slot 0 is the hottest and
/// lies nearest the stack pointer.
///
/// The number is kept in 24 bits (three little-endian bytes, alignment 1) so
/// that an [`Allocation`] is 4 bytes: the allocator keeps one per operand and
/// two per inserted move, and their size is a good part of a compile's peak
/// heap. During allocation a slot is numbered by its virtual register, so the
/// allocator rejects functions with [`SpillSlot::LIMIT`] or more vregs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpillSlot([u8; 3]);

impl SpillSlot {
    /// Slot numbers are below this (2^24).
    pub const LIMIT: u32 = 1 << 24;

    /// The slot numbered `index`, which must be below [`SpillSlot::LIMIT`]
    /// (higher bits are dropped; the allocator checks its inputs so that its
    /// own slots never reach the limit).
    pub const fn new(index: u32) -> SpillSlot {
        let b = index.to_le_bytes();
        SpillSlot([b[0], b[1], b[2]])
    }

    /// The slot number.
    #[inline]
    pub const fn number(self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], 0])
    }

    /// The slot index as `usize`.
    #[inline]
    pub fn index(self) -> usize {
        self.number() as usize
    }
}

impl PartialOrd for SpillSlot {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpillSlot {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.number().cmp(&other.number())
    }
}

impl fmt::Debug for SpillSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot{}", self.number())
    }
}

impl fmt::Display for SpillSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot{}", self.number())
    }
}

// The sizes the peak-heap budget counts on (issue 8).
const _: () = assert!(core::mem::size_of::<SpillSlot>() == 3);
const _: () = assert!(core::mem::size_of::<Allocation>() == 4);

/// Where a value lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allocation {
    /// Nowhere (not yet allocated).
    None,
    /// A physical register.
    Reg(PReg),
    /// A spill slot.
    Stack(SpillSlot),
}

impl Allocation {
    /// The register, if this is one.
    pub fn as_reg(self) -> Option<PReg> {
        match self {
            Allocation::Reg(r) => Some(r),
            _ => None,
        }
    }

    /// The slot, if this is one.
    pub fn as_stack(self) -> Option<SpillSlot> {
        match self {
            Allocation::Stack(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allocation::None => f.write_str("none"),
            Allocation::Reg(r) => write!(f, "{r}"),
            Allocation::Stack(s) => write!(f, "[{s}]"),
        }
    }
}

/// Where an edit is inserted: before or after an instruction. Ordered by
/// program order: `before(i)` < `after(i)` < `before(i + 1)`.
///
/// One `u32` (`2 * inst + after`), the same size as the key the allocator
/// sorts its edits by, so the sorted edits become [`Output::edits`] in place
/// instead of being copied at the moment of a compile's peak heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct ProgPoint(u32);

impl ProgPoint {
    /// Before the instruction (after the edits of the previous one).
    pub const fn before(i: Inst) -> ProgPoint {
        ProgPoint(2 * i.0)
    }

    /// After the instruction (never after a branch or return).
    pub const fn after(i: Inst) -> ProgPoint {
        ProgPoint(2 * i.0 + 1)
    }

    /// The point of an allocator sort key (`6 * inst + phase`, phases 0..3
    /// before the instruction, 3..6 after it).
    #[inline]
    pub(crate) const fn from_sort_key(key: u32) -> ProgPoint {
        ProgPoint(2 * (key / 6) + (key % 6 >= 3) as u32)
    }

    /// The instruction the point refers to.
    pub const fn inst(self) -> Inst {
        Inst(self.0 / 2)
    }

    /// Whether the point is after its instruction.
    pub const fn is_after(self) -> bool {
        self.0 & 1 != 0
    }
}

impl fmt::Debug for ProgPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = if self.is_after() { "after" } else { "before" };
        write!(f, "{side} {}", self.inst())
    }
}

// The size the in-place conversion of the sorted edits relies on.
const _: () = assert!(
    core::mem::size_of::<(ProgPoint, Edit)>() == core::mem::size_of::<(u32, Edit)>()
        && core::mem::align_of::<(ProgPoint, Edit)>() == core::mem::align_of::<(u32, Edit)>()
);

/// A virtual register or none, in 4 bytes rather than `Option<VReg>`'s 8
/// (`u32::MAX` stands for none: the allocator takes fewer than
/// [`SpillSlot::LIMIT`] vregs), so that an [`Edit`] is 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptVReg(u32);

impl OptVReg {
    /// No virtual register.
    pub const NONE: OptVReg = OptVReg(u32::MAX);

    /// The virtual register `v`.
    pub const fn some(v: VReg) -> OptVReg {
        OptVReg(v.0)
    }

    /// The virtual register, if any.
    #[inline]
    pub const fn get(self) -> Option<VReg> {
        if self.0 == u32::MAX {
            None
        } else {
            Some(VReg(self.0))
        }
    }
}

impl From<Option<VReg>> for OptVReg {
    fn from(v: Option<VReg>) -> OptVReg {
        v.map_or(OptVReg::NONE, OptVReg::some)
    }
}

impl fmt::Debug for OptVReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

// The size the peak-heap budget counts on (issue 8).
const _: () = assert!(core::mem::size_of::<Edit>() == 16);

/// An inserted instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edit {
    /// A copy: register to register (move), register to slot (spill store),
    /// slot to register (reload). Never slot to slot: those go through a
    /// free register as two moves. `vreg` is the value moved (for listings;
    /// the checker does not trust it).
    Move {
        /// Source.
        from: Allocation,
        /// Destination.
        to: Allocation,
        /// Class of the value.
        class: RegClass,
        /// The value moved, if known.
        vreg: OptVReg,
    },
    /// Exchange two registers of a class with a swap instruction (`xchg`).
    Swap {
        /// First register.
        a: PReg,
        /// Second register.
        b: PReg,
    },
    /// Recompute a rematerializable value ([`crate::Function::is_remat`])
    /// into a register.
    Remat {
        /// The value.
        vreg: VReg,
        /// Destination register.
        to: PReg,
    },
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edit::Move { from, to, vreg, .. } => {
                let what = match (from, to) {
                    (Allocation::Reg(_), Allocation::Stack(_)) => "store",
                    (Allocation::Stack(_), Allocation::Reg(_)) => "reload",
                    _ => "move",
                };
                write!(f, "{what} {to} <- {from}")?;
                if let Some(v) = vreg.get() {
                    write!(f, " ({v})")?;
                }
                Ok(())
            }
            Edit::Swap { a, b } => write!(f, "xchg {a}, {b}"),
            Edit::Remat { vreg, to } => write!(f, "remat {to} <- {vreg}"),
        }
    }
}

/// A critical edge that needs a new block holding `edits`: the client
/// inserts a block between `from` and `to` and retargets the branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeSplit {
    /// Source block.
    pub from: Block,
    /// Destination block.
    pub to: Block,
    /// The edits, in order, that the new block executes before jumping to `to`.
    pub edits: Vec<Edit>,
}

/// A spill slot's place in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Size (and alignment) in bytes.
    pub size: u32,
    /// Offset from the start of the spill area (the stack pointer side).
    pub offset: u32,
    /// Estimated accesses weighted by loop depth (slots are ordered by it).
    pub weight: u64,
}

/// Counts of what the allocator inserted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Register-to-slot stores.
    pub stores: u32,
    /// Slot-to-register reloads.
    pub reloads: u32,
    /// Register-to-register moves.
    pub moves: u32,
    /// Register swaps.
    pub swaps: u32,
    /// Operands given a spill slot directly (memory operands).
    pub folded: u32,
    /// Rematerializations.
    pub remats: u32,
    /// Spill slots.
    pub slots: u32,
    /// Critical edges split.
    pub edge_splits: u32,
}

impl Stats {
    /// Instructions that touch the stack: stores, reloads and folded operands.
    pub fn stack_touching(&self) -> u32 {
        self.stores + self.reloads + self.folded
    }

    /// Counts edit `e` (a move by what it moves between) and returns the
    /// registers it writes, as a mask by [`PReg::index`]: one place for
    /// the linear scan and the local allocator.
    #[inline(always)]
    pub(crate) fn count(&mut self, e: &Edit) -> u128 {
        let bit = |r: PReg| 1u128 << r.index();
        match *e {
            Edit::Move { from, to, .. } => {
                match (from, to) {
                    (Allocation::Reg(_), Allocation::Stack(_)) => self.stores += 1,
                    (Allocation::Stack(_), Allocation::Reg(_)) => self.reloads += 1,
                    _ => self.moves += 1,
                }
                match to {
                    Allocation::Reg(r) => bit(r),
                    _ => 0,
                }
            }
            Edit::Swap { a, b } => {
                self.swaps += 1;
                bit(a) | bit(b)
            }
            Edit::Remat { to, .. } => {
                self.remats += 1;
                bit(to)
            }
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stores={} reloads={} folded={} moves={} swaps={} remats={} slots={} edge_splits={}",
            self.stores,
            self.reloads,
            self.folded,
            self.moves,
            self.swaps,
            self.remats,
            self.slots,
            self.edge_splits
        )
    }
}

/// The result of allocation.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Allocation of every operand, instruction after instruction
    /// (see [`Output::inst_allocs`]).
    pub allocs: Vec<Allocation>,
    /// Start of each instruction's allocations in `allocs` (one more entry
    /// than instructions).
    pub inst_alloc_offsets: Vec<u32>,
    /// Edits in program order (edits at the same point run in vector order).
    pub edits: Vec<(ProgPoint, Edit)>,
    /// Critical edges split, with their edits.
    pub edge_splits: Vec<EdgeSplit>,
    /// Spill slots, hottest first.
    pub slots: Vec<SlotInfo>,
    /// Size of the spill area in bytes (padded so that the stack is
    /// aligned at calls when the function declares its
    /// [`crate::Function::frame_layout`]).
    pub spill_area_size: u32,
    /// Callee-saved registers the allocated code changes: written by the
    /// allocation or clobbered by an instruction (the frame must save and
    /// restore them).
    pub used_callee_saved: PRegSet,
    /// Counts.
    pub stats: Stats,
    /// Reasons for decisions (empty unless logging was asked for).
    pub log: DecisionLog,
}

impl Output {
    /// The allocations of one instruction's operands, in operand order.
    pub fn inst_allocs(&self, inst: Inst) -> &[Allocation] {
        let s = self.inst_alloc_offsets[inst.index()] as usize;
        let e = self.inst_alloc_offsets[inst.index() + 1] as usize;
        &self.allocs[s..e]
    }

    /// Empties the output, keeping its buffers.
    pub fn clear(&mut self) {
        self.allocs.clear();
        self.inst_alloc_offsets.clear();
        self.edits.clear();
        self.edge_splits.clear();
        self.slots.clear();
        self.spill_area_size = 0;
        self.used_callee_saved = PRegSet::empty();
        self.stats = Stats::default();
        self.log.clear();
    }
}

/// A plain-text listing of `f` with its allocation: every instruction's
/// operands with their locations, the inserted edits, the logged reasons,
/// and the edge splits (for debugging and failure reports; the Compiler
/// prints its own listing with real instructions).
pub fn listing<F: crate::Function>(f: &F, out: &Output) -> String {
    use core::fmt::Write;
    let mut s = String::new();
    let mut k = 0;
    for bi in 0..f.num_blocks() {
        let b = Block::new(bi);
        let _ = writeln!(
            s,
            "{b}: preds {:?} succs {:?}",
            f.block_preds(b),
            f.block_succs(b)
        );
        for i in f.block_insts(b).iter() {
            while k < out.edits.len() && out.edits[k].0 == ProgPoint::before(i) {
                let _ = writeln!(s, "      {}", out.edits[k].1);
                k += 1;
            }
            let _ = write!(s, "  {i}:");
            if f.is_branch(i) {
                s.push_str(" branch");
            }
            if f.is_ret(i) {
                s.push_str(" ret");
            }
            let allocs = if out.inst_alloc_offsets.len() > i.index() + 1 {
                out.inst_allocs(i)
            } else {
                &[]
            };
            for (n, op) in f.inst_operands(i).iter().enumerate() {
                let kind = match op.kind {
                    crate::OperandKind::Use => "use",
                    crate::OperandKind::Def => "def",
                    crate::OperandKind::Modify => "mod",
                };
                let at = allocs.get(n).copied().unwrap_or(Allocation::None);
                let _ = write!(s, " {kind} {}={at}", op.vreg);
            }
            if !f.inst_clobbers(i).is_empty() {
                s.push_str(" clobbers");
            }
            s.push('\n');
            for d in out.log.at(i) {
                let _ = writeln!(s, "        ; {d}");
            }
            while k < out.edits.len() && out.edits[k].0 == ProgPoint::after(i) {
                let _ = writeln!(s, "      after: {}", out.edits[k].1);
                k += 1;
            }
        }
    }
    for sp in &out.edge_splits {
        let _ = write!(s, "edge {} -> {}:", sp.from, sp.to);
        for e in &sp.edits {
            let _ = write!(s, " [{e}]");
        }
        s.push('\n');
    }
    s
}
