//! The narrow interface through which the allocator sees a function.
//!
//! The allocator never looks at real instructions. A client (the Compiler's
//! adapter from `jitforge-ir`, or the test representation in
//! [`crate::testfn`]) implements [`Function`] and describes, per instruction,
//! its operands ([`Operand`]: virtual register, use/def/modify, early/late
//! position, constraint), its clobbers and whether it is a branch, a return,
//! a call or a copy. The machine is described by a [`MachineEnv`].
//!
//! The input is **not SSA**: a virtual register may be defined any number of
//! times, and liveness is computed by dataflow, so no block parameters or phis
//! are needed. A partial write that keeps the rest of the register
//! (`setcc r8`, `mov r16`) is an [`OperandKind::Modify`]: the old value is
//! read.

use core::fmt;

/// A register class. Values of different classes never share registers or
/// spill slots of the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegClass {
    /// General-purpose integer registers (x86: rax..r15, hardware numbers 0..15).
    Gp = 0,
    /// Vector registers (x86: xmm/ymm/zmm 0..31).
    Vec = 1,
    /// Mask registers (x86: k0..k7).
    Mask = 2,
}

impl RegClass {
    /// All classes, in index order.
    pub const ALL: [RegClass; 3] = [RegClass::Gp, RegClass::Vec, RegClass::Mask];

    /// The class's index (0, 1, 2).
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class with the given index, if any.
    pub fn from_index(i: usize) -> Option<RegClass> {
        RegClass::ALL.get(i).copied()
    }
}

/// A physical register: a class and its hardware number (for x86 GP the
/// encoding number: 0=rax 1=rcx 2=rdx 3=rbx 4=rsp 5=rbp 6=rsi 7=rdi 8..15=r8..r15;
/// vectors 0..31; masks 0..7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PReg {
    /// The register class.
    pub class: RegClass,
    /// The hardware number, below 32.
    pub hw: u8,
}

impl PReg {
    /// A physical register. `hw` must be below 32 (checked where it matters:
    /// input validation rejects operands naming larger numbers).
    pub const fn new(class: RegClass, hw: u8) -> PReg {
        PReg { class, hw }
    }

    /// A general-purpose register.
    pub const fn gp(hw: u8) -> PReg {
        PReg::new(RegClass::Gp, hw)
    }

    /// A vector register.
    pub const fn vec(hw: u8) -> PReg {
        PReg::new(RegClass::Vec, hw)
    }

    /// A mask register.
    pub const fn mask(hw: u8) -> PReg {
        PReg::new(RegClass::Mask, hw)
    }

    /// Dense index `class * 32 + hw` (below 96).
    #[inline]
    pub fn index(self) -> usize {
        self.class.index() * 32 + self.hw as usize
    }

    /// The register with dense index `i` (see [`PReg::index`]).
    #[inline]
    pub fn from_index(i: usize) -> PReg {
        PReg::new(RegClass::ALL[i / 32], (i % 32) as u8)
    }
}

impl fmt::Debug for PReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const GP: [&str; 16] = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15",
        ];
        match self.class {
            RegClass::Gp if (self.hw as usize) < 16 => f.write_str(GP[self.hw as usize]),
            RegClass::Gp => write!(f, "r{}", self.hw),
            RegClass::Vec => write!(f, "xmm{}", self.hw),
            RegClass::Mask => write!(f, "k{}", self.hw),
        }
    }
}

/// A set of physical registers of all classes (96 bits: `class * 32 + hw`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PRegSet(pub u128);

impl PRegSet {
    /// The empty set.
    pub const fn empty() -> PRegSet {
        PRegSet(0)
    }

    /// A set from a list of registers.
    pub fn from_regs(regs: &[PReg]) -> PRegSet {
        let mut s = PRegSet::empty();
        for &r in regs {
            s.insert(r);
        }
        s
    }

    /// A set holding the registers of `class` whose hardware numbers are set in `mask`.
    pub fn from_class_mask(class: RegClass, mask: u32) -> PRegSet {
        PRegSet((mask as u128) << (class.index() * 32))
    }

    /// Adds a register.
    #[inline]
    pub fn insert(&mut self, r: PReg) {
        self.0 |= 1u128 << r.index();
    }

    /// Removes a register.
    #[inline]
    pub fn remove(&mut self, r: PReg) {
        self.0 &= !(1u128 << r.index());
    }

    /// Whether the set holds `r`.
    #[inline]
    pub fn contains(&self, r: PReg) -> bool {
        (self.0 >> r.index()) & 1 != 0
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The hardware-number mask of one class.
    #[inline]
    pub fn class_mask(&self, class: RegClass) -> u32 {
        (self.0 >> (class.index() * 32)) as u32
    }

    /// Union.
    pub fn union(self, other: PRegSet) -> PRegSet {
        PRegSet(self.0 | other.0)
    }

    /// The registers in the set, in index order.
    pub fn iter(&self) -> impl Iterator<Item = PReg> + '_ {
        let mut bits = self.0 & ((1u128 << 96) - 1);
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(PReg::from_index(i))
        })
    }
}

impl fmt::Debug for PRegSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

macro_rules! index_type {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as `usize`.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }

            /// From a `usize` index.
            #[inline]
            pub fn new(i: usize) -> Self {
                $name(i as u32)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

index_type!(
    /// A virtual register, numbered `0..num_vregs`.
    VReg,
    "v"
);
index_type!(
    /// A basic block, numbered `0..num_blocks` in layout order.
    Block,
    "b"
);
index_type!(
    /// An instruction, numbered `0..num_insts` in layout order.
    Inst,
    "i"
);

/// A half-open range of instructions `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstRange {
    /// First instruction.
    pub start: Inst,
    /// One past the last instruction.
    pub end: Inst,
}

impl InstRange {
    /// A range.
    pub fn new(start: usize, end: usize) -> InstRange {
        InstRange {
            start: Inst::new(start),
            end: Inst::new(end),
        }
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.end.index().saturating_sub(self.start.index())
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The instructions in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Inst> {
        (self.start.0..self.end.0).map(Inst)
    }
}

/// How an operand accesses its virtual register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandKind {
    /// Reads the value.
    Use,
    /// Writes a new value (the old one is not read).
    Def,
    /// Reads and writes the value in the same location (two-address forms
    /// written by the user, such as `add v, w`; partial writes such as
    /// `setcc v.r8` that keep the rest of the register).
    Modify,
}

/// When, within its instruction, an operand is accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandPos {
    /// Before the instruction executes: uses are normally early. An early
    /// def is an *early clobber*: its register differs from every use's.
    Early,
    /// After the instruction executes: defs are normally late. A late use
    /// stays live across the instruction, so no def shares its register.
    Late,
}

/// Where an operand's value may be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Constraint {
    /// Any allocatable register of the class.
    Reg,
    /// A register of the class or the value's spill slot, used directly as
    /// a memory operand. At most one operand per instruction is given a
    /// stack slot (x86 has one memory operand per instruction).
    Any,
    /// An allocatable register whose hardware number is set in the mask
    /// (`0xffff` for VEX-encodable xmm0..15, `0b1111` for registers that
    /// can be used together with AH..BH).
    Subset(RegMask),
    /// Exactly this register (implicit operands, calling conventions).
    Fixed(PReg),
    /// For a def: the same register as the use operand at this index (two
    /// address form written as three: the input is copied first when it
    /// stays live). The use operand must be a `Use` of the same class.
    Reuse(u8),
}

/// A set of hardware register numbers (bit `n` for number `n`), for
/// [`Constraint::Subset`].
///
/// Stored with alignment 1 so that a [`Constraint`] is 5 bytes and an
/// [`Operand`] 12 rather than 16: an allocation keeps one operand per IR
/// operand, and their size is part of a compile's peak heap.
#[repr(C, packed)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegMask(u32);

impl RegMask {
    /// The set whose bits are `bits`.
    pub const fn new(bits: u32) -> RegMask {
        RegMask(bits)
    }

    /// The bits of the set.
    #[inline]
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for RegMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.bits())
    }
}

// The sizes the peak-heap budget counts on (issue 8).
const _: () = assert!(core::mem::size_of::<Constraint>() == 5);
const _: () = assert!(core::mem::size_of::<Operand>() == 12);

/// One operand of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operand {
    /// The virtual register.
    pub vreg: VReg,
    /// Use, def or modify.
    pub kind: OperandKind,
    /// Early or late.
    pub pos: OperandPos,
    /// Placement constraint.
    pub constraint: Constraint,
}

impl Operand {
    /// An operand.
    pub const fn new(
        vreg: VReg,
        kind: OperandKind,
        pos: OperandPos,
        constraint: Constraint,
    ) -> Operand {
        Operand {
            vreg,
            kind,
            pos,
            constraint,
        }
    }

    /// An early use with the given constraint.
    pub const fn use_(vreg: VReg, constraint: Constraint) -> Operand {
        Operand::new(vreg, OperandKind::Use, OperandPos::Early, constraint)
    }

    /// A late def with the given constraint.
    pub const fn def(vreg: VReg, constraint: Constraint) -> Operand {
        Operand::new(vreg, OperandKind::Def, OperandPos::Late, constraint)
    }

    /// A read-modify-write operand (early use, late def, same location).
    pub const fn modify(vreg: VReg, constraint: Constraint) -> Operand {
        Operand::new(vreg, OperandKind::Modify, OperandPos::Early, constraint)
    }

    /// Whether the operand reads its vreg.
    #[inline]
    pub fn is_use(&self) -> bool {
        matches!(self.kind, OperandKind::Use | OperandKind::Modify)
    }

    /// Whether the operand writes its vreg.
    #[inline]
    pub fn is_def(&self) -> bool {
        matches!(self.kind, OperandKind::Def | OperandKind::Modify)
    }
}

/// The machine: which registers may be allocated, which survive calls, how
/// large a spill slot is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineEnv {
    /// Registers the allocator may choose freely (fixed constraints may name
    /// others, such as `rsp`).
    pub allocatable: PRegSet,
    /// Registers a callee preserves. Allocatable registers outside this set
    /// are caller-saved.
    pub callee_saved: PRegSet,
    /// Spill slot size in bytes per class (also its alignment).
    pub slot_size: [u32; 3],
    /// Whether the class has a register swap instruction (x86: `xchg` for
    /// GP only). Move cycles on edges, and two values an instruction reads
    /// in each other's registers (fixed uses), then take swaps; other
    /// classes break them with a free register or a scratch slot.
    pub has_swap: [bool; 3],
}

impl MachineEnv {
    /// x86-64 System V: 15 GP registers (all but rsp), 16 xmm (32 with
    /// `avx512`), k1..k7; callee-saved rbx, rbp, r12..r15.
    pub fn x86_64_sysv(avx512: bool) -> MachineEnv {
        let mut allocatable = PRegSet::from_class_mask(RegClass::Gp, 0xffff & !(1 << 4));
        let vecs = if avx512 { u32::MAX } else { 0xffff };
        allocatable = allocatable.union(PRegSet::from_class_mask(RegClass::Vec, vecs));
        if avx512 {
            allocatable = allocatable.union(PRegSet::from_class_mask(RegClass::Mask, 0xfe));
        }
        let callee_saved = PRegSet::from_regs(&[
            PReg::gp(3),
            PReg::gp(5),
            PReg::gp(12),
            PReg::gp(13),
            PReg::gp(14),
            PReg::gp(15),
        ]);
        MachineEnv {
            allocatable,
            callee_saved,
            slot_size: [8, if avx512 { 64 } else { 16 }, 8],
            has_swap: [true, false, false],
        }
    }

    /// x86-64 Windows: as System V, but rsi, rdi and xmm6..15 are callee-saved.
    pub fn x86_64_win64(avx512: bool) -> MachineEnv {
        let mut env = MachineEnv::x86_64_sysv(avx512);
        for hw in [6, 7] {
            env.callee_saved.insert(PReg::gp(hw));
        }
        for hw in 6..16 {
            env.callee_saved.insert(PReg::vec(hw));
        }
        env
    }

    /// The caller-saved registers (allocatable and not callee-saved).
    pub fn caller_saved(&self) -> PRegSet {
        PRegSet(self.allocatable.0 & !self.callee_saved.0)
    }
}

/// What the client's frame puts on the stack besides the spill area, as far
/// as the stack alignment at calls depends on it. The allocator controls
/// the spill area's size, so given this it pads the area until the stack
/// pointer is aligned at every call, and the checker proves it
/// ([`Function::frame_layout`]).
///
/// The model: between the entry and every call the stack pointer is
/// constant and lies `entry_offset + fixed_bytes + saves + spill area`
/// bytes below the last `call_align` boundary before the entry, where
/// `saves` adds `save_bytes[class]` for every register the frame saves
/// ([`crate::Output::used_callee_saved`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameLayout {
    /// Alignment the stack pointer must have at every call, in bytes: a
    /// power of two (16 on x86-64).
    pub call_align: u32,
    /// Bytes on the stack at entry below the last aligned boundary (8 on
    /// x86-64: the return address).
    pub entry_offset: u32,
    /// Bytes the frame reserves besides saved registers and the spill area
    /// (a pushed frame pointer, locals, outgoing arguments).
    pub fixed_bytes: u32,
    /// Bytes the frame spends to save one callee-saved register, per
    /// class (x86-64: 8 for a pushed GP register, 16 for a vector save).
    pub save_bytes: [u32; 3],
}

impl FrameLayout {
    /// x86-64 (System V and Windows): 16-byte alignment at calls, the
    /// return address on the stack at entry, GP registers saved by `push`,
    /// vector registers in 16-byte slots; `fixed_bytes` as given.
    pub fn x86_64(fixed_bytes: u32) -> FrameLayout {
        FrameLayout {
            call_align: 16,
            entry_offset: 8,
            fixed_bytes,
            save_bytes: [8, 16, 8],
        }
    }

    /// How far the stack pointer is below the last aligned boundary at a
    /// call, given the saved registers and the spill area size (`None` if
    /// the sum overflows).
    pub fn depth_at_calls(&self, saved: PRegSet, spill_area_size: u32) -> Option<u32> {
        let mut depth = self.entry_offset.checked_add(self.fixed_bytes)?;
        for r in saved.iter() {
            depth = depth.checked_add(self.save_bytes[r.class.index()])?;
        }
        depth.checked_add(spill_area_size)
    }
}

/// A function as the allocator sees it.
///
/// Requirements, checked by the allocator (violations are
/// [`crate::Error::InvalidInput`], never panics):
/// - blocks are numbered in layout order and own contiguous, disjoint,
///   non-empty instruction ranges; the entry block has no live-in values
///   (function arguments are defs of an entry instruction with fixed
///   constraints);
/// - `block_preds` and `block_succs` agree;
/// - a block with more than one successor ends in a branch (`is_branch`);
///   a block with successors either ends in a branch or falls through;
///   a block without successors ends in a return;
/// - operand vregs are below `num_vregs`, fixed registers have the vreg's
///   class, a `Reuse` names an earlier `Use` operand of the same class, a vreg
///   is defined at most once per instruction.
pub trait Function {
    /// Number of instructions.
    fn num_insts(&self) -> usize;
    /// Number of blocks.
    fn num_blocks(&self) -> usize;
    /// Number of virtual registers.
    fn num_vregs(&self) -> usize;
    /// The entry block.
    fn entry_block(&self) -> Block;
    /// The instructions of a block.
    fn block_insts(&self, block: Block) -> InstRange;
    /// Successors of a block, in branch-target order.
    fn block_succs(&self, block: Block) -> &[Block];
    /// Predecessors of a block.
    fn block_preds(&self, block: Block) -> &[Block];
    /// Loop nesting depth of a block, if the client knows it. When `None`
    /// (the default), the allocator derives it from back edges in layout
    /// order.
    fn block_loop_depth(&self, _block: Block) -> Option<u32> {
        None
    }
    /// Whether the instruction returns from the function.
    fn is_ret(&self, inst: Inst) -> bool;
    /// Whether the instruction is a branch (the last of its block; edge
    /// moves can never be placed after it).
    fn is_branch(&self, inst: Inst) -> bool;
    /// The operands of an instruction.
    fn inst_operands(&self, inst: Inst) -> &[Operand];
    /// Registers whose contents the instruction destroys (a call's
    /// caller-saved registers). Defs may still be placed in them.
    fn inst_clobbers(&self, _inst: Inst) -> PRegSet {
        PRegSet::empty()
    }
    /// For a plain copy `dst = src`, the pair `(dst, src)`: used as a hint so
    /// that both get the same register and the copy disappears.
    fn is_move(&self, _inst: Inst) -> Option<(VReg, VReg)> {
        None
    }
    /// Whether the instruction calls another function (where the stack must
    /// be aligned, see [`Function::frame_layout`]). The default takes an
    /// instruction with clobbers for a call.
    fn is_call(&self, inst: Inst) -> bool {
        !self.inst_clobbers(inst).is_empty()
    }
    /// The frame around the spill area, if the client wants the allocator
    /// to keep the stack aligned at calls (it then pads
    /// [`crate::Output::spill_area_size`]) and the checker to prove it.
    /// `None` (the default): the client aligns its frame itself.
    fn frame_layout(&self) -> Option<FrameLayout> {
        None
    }
    /// The class of a virtual register.
    fn vreg_class(&self, vreg: VReg) -> RegClass;
    /// Whether every definition of `vreg` produces the same cheaply
    /// recomputable value (a constant). The allocator then recomputes it
    /// ([`crate::Edit::Remat`]) instead of storing and reloading it.
    fn is_remat(&self, _vreg: VReg) -> bool {
        false
    }
    /// What the client established about the whole function while
    /// building it, so that the allocator can leave out the same checks
    /// per instruction and operand. `None` (the default): it checks
    /// everything itself. A client that claims more than holds may get a
    /// wrong allocation (the checks it claims are not repeated).
    fn vouched(&self) -> Option<Vouched> {
        None
    }
    /// Where each vreg is named, as the client noted it while building
    /// the function (see [`Mentions`]): with [`Function::vouched`] all
    /// true, the allocator of a one-block function with room for every
    /// value then needs no pass of its own to find them. `None` (the
    /// default): it finds them itself. Like `vouched`, a client that
    /// reports wrong mentions may get a wrong allocation.
    fn mentions(&self) -> Option<Mentions<'_>> {
        None
    }
    /// The number of operands of all instructions (the sum of
    /// [`Function::inst_operands`]' lengths), so that the allocator can
    /// size its per-operand tables once and write them by index. The
    /// default counts them; a client that keeps its operands in one
    /// buffer knows it at once. A wrong count makes the allocator take
    /// its general path (never a wrong allocation).
    fn num_operands(&self) -> usize {
        (0..self.num_insts())
            .map(|i| self.inst_operands(Inst::new(i)).len())
            .sum()
    }
}

/// Where a function's vregs are named (see [`Function::mentions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mentions<'a> {
    /// Per vreg (all [`Function::num_vregs`] of them), what its operands
    /// show.
    pub vregs: &'a [VRegMentions],
    /// Per class (by [`RegClass::index`]), the hardware numbers of every
    /// register a `Fixed` operand names (bit `hw`).
    pub fixed: [u32; 3],
}

/// Where one vreg is named (see [`Mentions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VRegMentions {
    /// The index of the last instruction with an operand of it (0 when
    /// none has).
    pub last: u32,
    /// The hardware number of the register of its first `Fixed` operand
    /// that reads it (a use or modify), or [`VRegMentions::NO_REG`].
    pub first_fixed_use: u8,
}

impl VRegMentions {
    /// No register (in [`VRegMentions::first_fixed_use`]).
    pub const NO_REG: u8 = 0xff;

    /// A vreg not named yet.
    pub const UNNAMED: VRegMentions = VRegMentions {
        last: 0,
        first_fixed_use: VRegMentions::NO_REG,
    };
}

/// Facts about a whole function its client vouches for (see
/// [`Function::vouched`]); each `false` field leaves that check to the
/// allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vouched {
    /// No instruction but the last returns or branches.
    pub flow_only_last: bool,
    /// No instruction has clobbers.
    pub no_clobbers: bool,
    /// Every operand is a use or modify at the early point or a def at
    /// the late point, and its constraint is `Reg`, `Any` or `Fixed` (no
    /// `Subset`, no `Reuse`).
    pub plain_operands: bool,
}

impl Vouched {
    /// Whether every fact holds.
    pub fn all(&self) -> bool {
        self.flow_only_last && self.no_clobbers && self.plain_operands
    }
}
