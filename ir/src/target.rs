//! The target trait: what the IR needs to know about a machine, and nothing
//! about its encodings.
//!
//! A target supplies, per target instruction id, its name and its operand
//! facts (matched against the operands actually used, as AsmJit computes its
//! read/write info per operand list), its registers' names, and its calling
//! conventions as data. The x86 target of the main crate implements it from
//! the instruction database; [`crate::mock::MockX86`] is a small stand-in used
//! by this crate's tests and docs.
//!
//! # Contract of [`Target::inst_facts`]
//!
//! Given an instruction id and the *shapes* of its operands (class and size of
//! registers, memory, immediates, labels), the target fills an [`InstFacts`]:
//! one [`OperandFact`] per explicit operand, in order, plus implicit
//! registers, clobbers and the control-flow kind. It returns an error if no
//! form of the instruction accepts those operands. It must not panic on any
//! input.

use crate::abi::CallConv;
use crate::entities::*;
use crate::function::Reg;
use core::fmt;
use smallvec::SmallVec;

/// How an operand is accessed.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    /// Read only.
    Read,
    /// Written only (the old value is dead).
    Write,
    /// Read and written (two-address destination).
    ReadWrite,
    /// Writes part of the register and keeps the rest (`setcc r8`, `mov r16`):
    /// the allocator must keep the old value in the same register.
    PartialWrite,
    /// Neither (e.g. the memory operand of `lea`: only its address registers are read).
    None,
}

impl Access {
    /// Whether the old value is read (partial writes keep the rest, so they count).
    pub fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }
    /// Whether the operand is written.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Access::Write | Access::ReadWrite | Access::PartialWrite
        )
    }
}

/// A set of operand kinds: register classes plus memory, immediate, label.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct KindSet(pub u16);

impl KindSet {
    /// Memory.
    pub const MEM: KindSet = KindSet(1 << 8);
    /// Immediate.
    pub const IMM: KindSet = KindSet(1 << 9);
    /// Label.
    pub const LABEL: KindSet = KindSet(1 << 10);
    /// General-purpose register.
    pub const GP: KindSet = KindSet(1);
    /// Vector register.
    pub const VEC: KindSet = KindSet(2);
    /// Mask register.
    pub const MASK: KindSet = KindSet(4);
    /// x87 register.
    pub const X87: KindSet = KindSet(8);

    /// A register of `class`.
    pub const fn reg(class: RegClass) -> KindSet {
        KindSet(1 << (class.0 & 7))
    }
    /// Union.
    pub const fn or(self, o: KindSet) -> KindSet {
        KindSet(self.0 | o.0)
    }
    /// Whether all kinds of `o` are in `self`.
    pub const fn contains(self, o: KindSet) -> bool {
        self.0 & o.0 == o.0 && o.0 != 0
    }
    /// Whether a register of `class` is accepted.
    pub const fn accepts_reg(self, class: RegClass) -> bool {
        self.contains(KindSet::reg(class))
    }
    /// The register classes accepted (bits 0..7).
    pub const fn reg_classes(self) -> u8 {
        self.0 as u8
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut put = |f: &mut fmt::Formatter<'_>, s: &str| {
            let r = if first {
                f.write_str(s)
            } else {
                write!(f, "|{s}")
            };
            first = false;
            r
        };
        for c in 0..8u8 {
            if self.accepts_reg(RegClass(c)) {
                put(f, RegClass(c).name())?;
            }
        }
        if self.contains(KindSet::MEM) {
            put(f, "mem")?;
        }
        if self.contains(KindSet::IMM) {
            put(f, "imm")?;
        }
        if self.contains(KindSet::LABEL) {
            put(f, "label")?;
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

/// The facts of one explicit operand of an instruction form.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct OperandFact {
    /// Kinds accepted. A register operand whose fact also contains
    /// [`KindSet::MEM`] may be replaced by memory (a spill slot).
    pub kinds: KindSet,
    /// How it is accessed.
    pub access: Access,
    /// Size in bytes (0 = any).
    pub size: u16,
    /// Tied to the operand with this index (same register, two-address).
    pub tied: Option<u8>,
    /// The register it must be in, if fixed.
    pub fixed: Option<PReg>,
    /// Allowed hardware indexes (bit i = index i allowed); `u32::MAX` = all.
    /// E.g. VEX-only encodings `0xFFFF`, byte registers with an `ah`-class
    /// operand `0b1111`.
    pub allowed: u32,
}

impl OperandFact {
    /// A fact with the given kinds, access and size, nothing else.
    pub const fn new(kinds: KindSet, access: Access, size: u16) -> OperandFact {
        OperandFact {
            kinds,
            access,
            size,
            tied: None,
            fixed: None,
            allowed: u32::MAX,
        }
    }
    /// Whether memory is accepted instead of a register.
    pub fn mem_ok(&self) -> bool {
        self.kinds.contains(KindSet::MEM)
    }
}

/// A register an instruction reads or writes without naming it.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ImplicitReg {
    /// The register.
    pub reg: PReg,
    /// How it is accessed.
    pub access: Access,
}

/// What an instruction does to control flow.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub enum Flow {
    /// Falls through.
    #[default]
    Normal,
    /// Unconditional jump to its label operand (terminator).
    Jump,
    /// Conditional branch to its label operand, else falls through (terminator).
    CondBranch,
    /// Indirect jump through a register or memory (terminator).
    IndirectJump,
    /// Leaves the function (terminator, no successors).
    Return,
    /// A call: returns here.
    Call,
}

impl Flow {
    /// Whether it ends a block.
    pub fn is_terminator(self) -> bool {
        !matches!(self, Flow::Normal | Flow::Call)
    }
}

/// All facts of one instruction with its actual operands. Reuse one value
/// through [`InstFacts::clear`] to avoid allocation.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct InstFacts {
    /// One fact per explicit operand.
    pub ops: SmallVec<[OperandFact; 4]>,
    /// Implicit fixed-register operands (`div`: RDX:RAX; shifts: CL).
    pub implicit: SmallVec<[ImplicitReg; 2]>,
    /// Registers clobbered (calls: the caller-saved set).
    pub clobbers: RegSet,
    /// Control flow.
    pub flow: Flow,
}

impl InstFacts {
    /// Empties for reuse.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.implicit.clear();
        self.clobbers = RegSet::EMPTY;
        self.flow = Flow::Normal;
    }
}

/// The shape of an actual operand, as the target sees it when matching forms.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum OpShape {
    /// A register (virtual or physical) of `class`, `size` bytes as used.
    Reg {
        /// Class.
        class: RegClass,
        /// Size as used (the view's size, else the register's).
        size: u16,
        /// Whether this is the high-byte view (`ah`).
        high: bool,
        /// Identity, to recognize `xor a, a` and similar idioms.
        id: Reg,
    },
    /// Memory of `size` bytes (0 = unspecified).
    Mem {
        /// Size.
        size: u16,
    },
    /// An immediate.
    Imm(i64),
    /// A label.
    Label,
}

impl OpShape {
    /// The kind bit of this shape.
    pub fn kind(&self) -> KindSet {
        match self {
            OpShape::Reg { class, .. } => KindSet::reg(*class),
            OpShape::Mem { .. } => KindSet::MEM,
            OpShape::Imm(_) => KindSet::IMM,
            OpShape::Label => KindSet::LABEL,
        }
    }
}

/// Why the target rejects an instruction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FactsError {
    /// The instruction id is unknown.
    UnknownInst(TargetInst),
    /// No form of the instruction takes this many operands.
    OperandCount {
        /// Counts the instruction accepts (smallest).
        expected: usize,
        /// Count given.
        found: usize,
    },
    /// No form accepts the operand at this index.
    OperandKind {
        /// Operand index.
        index: usize,
        /// Kinds the closest form accepts there.
        expected: KindSet,
    },
    /// A pseudo-instruction is malformed (message says how).
    Pseudo(&'static str),
}

impl fmt::Display for FactsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactsError::UnknownInst(i) => write!(f, "unknown target instruction {}", i.0),
            FactsError::OperandCount { expected, found } => {
                write!(f, "expected {expected} operands, found {found}")
            }
            FactsError::OperandKind { index, expected } => {
                write!(f, "operand {index}: expected {expected}")
            }
            FactsError::Pseudo(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FactsError {}

/// A machine target as the IR sees it. Object safe: passes take `&dyn Target`.
pub trait Target {
    /// The target's name (`x86-64`).
    fn name(&self) -> &str;
    /// Pointer size in bytes (8 on x86-64, 4 on x86-32).
    fn pointer_size(&self) -> u8;
    /// Number of registers of a class (0 if the class does not exist).
    fn reg_count(&self, class: RegClass) -> u8;
    /// The name of a physical register used with a width (`rax`, `eax`, `ah`, `xmm3`).
    fn reg_name(&self, reg: PReg, view: View) -> Option<&str>;
    /// Parses a register name into a register and width.
    fn reg_by_name(&self, name: &str) -> Option<(PReg, View)>;
    /// The mnemonic of a target instruction (`add`, `jne`).
    fn inst_name(&self, inst: TargetInst) -> Option<&str>;
    /// The id of a mnemonic.
    fn inst_by_name(&self, name: &str) -> Option<TargetInst>;
    /// Operand facts of `inst` used with operands of these shapes (see module docs).
    fn inst_facts(
        &self,
        inst: TargetInst,
        ops: &[OpShape],
        out: &mut InstFacts,
    ) -> Result<(), FactsError>;
    /// Only the control-flow kind of `inst` (what [`Target::inst_facts`]
    /// would put in [`InstFacts::flow`]), from the shape of its *first*
    /// operand alone (`None` without operands): the CFG calls this for
    /// every instruction and builds no other shape, so a target's control
    /// flow may depend on nothing else (x86: `jmp label`, `jmp r/m`, `jmp imm`).
    /// The CFG asks with `None` first and only asks again with the shape
    /// when that answer transfers control (not [`Flow::Normal`] or
    /// [`Flow::Call`]): the operand may only refine how an instruction
    /// transfers control, never decide whether it does.
    fn inst_flow(&self, inst: TargetInst, first: Option<&OpShape>) -> Flow;
    /// A key naming this target's answers of [`Target::inst_flow`] without
    /// an operand: two targets that give the same `Some` key answer every
    /// id alike, so a caller may remember the answers from one function to
    /// the next (the CFG does). `None` (the default) promises nothing: the
    /// answers are asked afresh for each function.
    fn flow_key(&self) -> Option<u64> {
        None
    }
    /// A calling convention's data.
    fn call_conv(&self, id: CallConvId) -> Option<&CallConv>;
    /// How many calling conventions there are: their ids are `0..count`.
    /// The default asks [`Target::call_conv`] id by id; a target that
    /// knows the number says it (a Compiler wraps its target per function
    /// built, see [`ExtendedTarget::new`]).
    fn call_conv_count(&self) -> u16 {
        (0..=u16::MAX)
            .take_while(|&i| self.call_conv(CallConvId(i)).is_some())
            .count() as u16
    }
    /// The id of a calling convention by name (`sysv64`, `win64`, `stdcall`...).
    fn call_conv_by_name(&self, name: &str) -> Option<CallConvId> {
        (0..=u16::MAX)
            .map(CallConvId)
            .take_while(|&id| self.call_conv(id).is_some())
            .find(|&id| self.call_conv(id).is_some_and(|c| c.name == name))
    }
    /// The stack pointer.
    fn stack_pointer(&self) -> PReg {
        PReg::gp(4)
    }
    /// The instruction `[dst, src]` that writes a 32-bit general-purpose
    /// register with an 8- or 16-bit source (register, view or memory)
    /// widened by `ext` (x86: `movsx` / `movzx`). Lowering emits it to pass
    /// 8- and 16-bit integer arguments widened to 32 bits (see
    /// [`crate::lower`]). The default, `None`, says the target has no such
    /// instruction: lowering then rejects calls that pass such an argument
    /// in a register or memory (immediates are widened without it).
    fn extend_inst(&self, ext: Extension) -> Option<TargetInst> {
        let _ = ext;
        None
    }
}

/// A target with extra, user-defined calling conventions (light conventions
/// between JIT functions) appended after the base target's own.
pub struct ExtendedTarget<'a, T: Target + ?Sized> {
    base: &'a T,
    first: u16,
    extra: Vec<CallConv>,
}

impl<'a, T: Target + ?Sized> ExtendedTarget<'a, T> {
    /// Wraps `base`.
    pub fn new(base: &'a T) -> Self {
        ExtendedTarget {
            base,
            first: base.call_conv_count(),
            extra: Vec::new(),
        }
    }
    /// Adds a convention; returns its id.
    pub fn add_call_conv(&mut self, conv: CallConv) -> CallConvId {
        self.extra.push(conv);
        CallConvId(self.first + self.extra.len() as u16 - 1)
    }
}

/// Writes, inside an `impl Target for Wrapper`, the trait's methods that
/// name the target, its registers and its instructions and give an
/// instruction's facts (`name` .. `inst_facts`) as calls on the wrapper's
/// field `$field`, so that a wrapper that changes some of a target's
/// answers (more calling conventions, another flow) spells out only those.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_target_basics {
    ($field:ident) => {
        fn name(&self) -> &str {
            self.$field.name()
        }
        fn pointer_size(&self) -> u8 {
            self.$field.pointer_size()
        }
        fn reg_count(&self, class: $crate::RegClass) -> u8 {
            self.$field.reg_count(class)
        }
        fn reg_name(&self, reg: $crate::PReg, view: $crate::View) -> Option<&str> {
            self.$field.reg_name(reg, view)
        }
        fn reg_by_name(&self, name: &str) -> Option<($crate::PReg, $crate::View)> {
            self.$field.reg_by_name(name)
        }
        fn inst_name(&self, inst: $crate::TargetInst) -> Option<&str> {
            self.$field.inst_name(inst)
        }
        fn inst_by_name(&self, name: &str) -> Option<$crate::TargetInst> {
            self.$field.inst_by_name(name)
        }
        fn inst_facts(
            &self,
            inst: $crate::TargetInst,
            ops: &[$crate::OpShape],
            out: &mut $crate::InstFacts,
        ) -> Result<(), $crate::FactsError> {
            self.$field.inst_facts(inst, ops, out)
        }
    };
}

impl<T: Target + ?Sized> Target for ExtendedTarget<'_, T> {
    crate::forward_target_basics!(base);
    fn inst_flow(&self, inst: TargetInst, first: Option<&OpShape>) -> Flow {
        self.base.inst_flow(inst, first)
    }
    fn flow_key(&self) -> Option<u64> {
        self.base.flow_key()
    }
    fn call_conv_count(&self) -> u16 {
        self.first + self.extra.len() as u16
    }
    fn call_conv(&self, id: CallConvId) -> Option<&CallConv> {
        if id.0 < self.first {
            self.base.call_conv(id)
        } else {
            self.extra.get((id.0 - self.first) as usize)
        }
    }
    fn stack_pointer(&self) -> PReg {
        self.base.stack_pointer()
    }
    fn extend_inst(&self, ext: Extension) -> Option<TargetInst> {
        self.base.extend_inst(ext)
    }
}
