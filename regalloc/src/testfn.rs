//! A plain in-memory function representation implementing [`Function`], with a
//! builder: used by the tests, the fuzzing generator and the benches.

use crate::function::{
    Block, Constraint, FrameLayout, Function, Inst, InstRange, MachineEnv, Operand, OperandKind,
    OperandPos, PReg, PRegSet, RegClass, VReg,
};
use core::fmt;

/// What an instruction is, beyond its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstKind {
    /// An ordinary instruction.
    Plain,
    /// A branch (ends its block).
    Branch,
    /// A return (ends its block).
    Ret,
}

/// One instruction of a [`TestFunction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestInst {
    /// Operands.
    pub ops: Vec<Operand>,
    /// Clobbered registers.
    pub clobbers: PRegSet,
    /// Kind.
    pub kind: InstKind,
    /// `(dst, src)` if this is a copy.
    pub mov: Option<(VReg, VReg)>,
}

/// One block of a [`TestFunction`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestBlock {
    /// First instruction.
    pub start: u32,
    /// One past the last instruction.
    pub end: u32,
    /// Successors.
    pub succs: Vec<Block>,
    /// Predecessors.
    pub preds: Vec<Block>,
}

/// A function held in vectors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestFunction {
    /// Blocks in layout order.
    pub blocks: Vec<TestBlock>,
    /// Instructions in layout order.
    pub insts: Vec<TestInst>,
    /// Class per vreg.
    pub vclass: Vec<RegClass>,
    /// Rematerializable flag per vreg.
    pub remat: Vec<bool>,
    /// The declared frame, if the allocator is to align the stack at calls.
    pub frame: Option<FrameLayout>,
}

impl Function for TestFunction {
    fn num_insts(&self) -> usize {
        self.insts.len()
    }
    fn num_blocks(&self) -> usize {
        self.blocks.len()
    }
    fn num_vregs(&self) -> usize {
        self.vclass.len()
    }
    fn entry_block(&self) -> Block {
        Block(0)
    }
    fn block_insts(&self, b: Block) -> InstRange {
        let bb = &self.blocks[b.index()];
        InstRange::new(bb.start as usize, bb.end as usize)
    }
    fn block_succs(&self, b: Block) -> &[Block] {
        &self.blocks[b.index()].succs
    }
    fn block_preds(&self, b: Block) -> &[Block] {
        &self.blocks[b.index()].preds
    }
    fn is_ret(&self, i: Inst) -> bool {
        self.insts[i.index()].kind == InstKind::Ret
    }
    fn is_branch(&self, i: Inst) -> bool {
        self.insts[i.index()].kind == InstKind::Branch
    }
    fn inst_operands(&self, i: Inst) -> &[Operand] {
        &self.insts[i.index()].ops
    }
    fn inst_clobbers(&self, i: Inst) -> PRegSet {
        self.insts[i.index()].clobbers
    }
    fn is_move(&self, i: Inst) -> Option<(VReg, VReg)> {
        self.insts[i.index()].mov
    }
    fn vreg_class(&self, v: VReg) -> RegClass {
        self.vclass[v.index()]
    }
    fn is_remat(&self, v: VReg) -> bool {
        self.remat[v.index()]
    }
    fn frame_layout(&self) -> Option<FrameLayout> {
        self.frame
    }
}

impl fmt::Display for TestFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bi, b) in self.blocks.iter().enumerate() {
            writeln!(f, "b{bi}: preds {:?} succs {:?}", b.preds, b.succs)?;
            for i in b.start..b.end {
                let inst = &self.insts[i as usize];
                write!(f, "  i{i}: {:?}", inst.kind)?;
                for op in &inst.ops {
                    let k = match (op.kind, op.pos) {
                        (OperandKind::Use, OperandPos::Early) => "use",
                        (OperandKind::Use, OperandPos::Late) => "use.late",
                        (OperandKind::Def, OperandPos::Late) => "def",
                        (OperandKind::Def, OperandPos::Early) => "def.early",
                        (OperandKind::Modify, _) => "mod",
                    };
                    write!(f, " {k}:{}:{:?}", op.vreg, op.constraint)?;
                }
                if !inst.clobbers.is_empty() {
                    write!(f, " clobbers {:?}", inst.clobbers)?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// SysV integer argument registers (rdi, rsi, rdx, rcx, r8, r9).
pub const SYSV_ARGS: [u8; 6] = [7, 6, 2, 1, 8, 9];

/// Builds a [`TestFunction`] block by block. Blocks are numbered in the
/// order [`Builder::block`] opens them; branch targets may name blocks not
/// opened yet.
#[derive(Default)]
pub struct Builder {
    f: TestFunction,
    open: bool,
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// A new vreg of a class.
    pub fn vreg(&mut self, class: RegClass) -> VReg {
        self.f.vclass.push(class);
        self.f.remat.push(false);
        VReg::new(self.f.vclass.len() - 1)
    }

    /// A new general-purpose vreg.
    pub fn vreg_gp(&mut self) -> VReg {
        self.vreg(RegClass::Gp)
    }

    /// A new rematerializable general-purpose vreg (define it only with
    /// [`Builder::constant`]).
    pub fn vreg_const(&mut self) -> VReg {
        let v = self.vreg(RegClass::Gp);
        self.f.remat[v.index()] = true;
        v
    }

    /// Declares the frame (see [`Function::frame_layout`]).
    pub fn frame(&mut self, frame: FrameLayout) {
        self.f.frame = Some(frame);
    }

    /// Opens the next block and returns it.
    pub fn block(&mut self) -> Block {
        self.close();
        let n = self.f.insts.len() as u32;
        self.f.blocks.push(TestBlock {
            start: n,
            end: n,
            ..TestBlock::default()
        });
        self.open = true;
        Block::new(self.f.blocks.len() - 1)
    }

    fn close(&mut self) {
        if self.open {
            let n = self.f.insts.len() as u32;
            if let Some(b) = self.f.blocks.last_mut() {
                b.end = n;
            }
        }
    }

    /// Whether the block being filled has no instructions yet.
    pub fn current_is_empty(&self) -> bool {
        self.f
            .blocks
            .last()
            .is_none_or(|b| b.start as usize == self.f.insts.len())
    }

    /// The block being filled.
    pub fn current(&self) -> Block {
        Block::new(self.f.blocks.len().saturating_sub(1))
    }

    /// Appends an instruction.
    pub fn inst_full(
        &mut self,
        ops: &[Operand],
        clobbers: PRegSet,
        kind: InstKind,
        mov: Option<(VReg, VReg)>,
    ) -> Inst {
        self.f.insts.push(TestInst {
            ops: ops.to_vec(),
            clobbers,
            kind,
            mov,
        });
        Inst::new(self.f.insts.len() - 1)
    }

    /// Appends a plain instruction.
    pub fn inst(&mut self, ops: &[Operand]) -> Inst {
        self.inst_full(ops, PRegSet::empty(), InstKind::Plain, None)
    }

    /// Adds a successor edge from the current block.
    pub fn edge_to(&mut self, to: Block) {
        let b = self.f.blocks.len() - 1;
        self.f.blocks[b].succs.push(to);
    }

    /// Entry instruction defining arguments in GP registers `(vreg, hw)`.
    pub fn args(&mut self, args: &[(VReg, u8)]) -> Inst {
        let ops: Vec<Operand> = args
            .iter()
            .map(|&(v, hw)| Operand::def(v, Constraint::Fixed(PReg::gp(hw))))
            .collect();
        self.inst(&ops)
    }

    /// `d = const` for a rematerializable vreg.
    pub fn constant(&mut self, d: VReg) -> Inst {
        self.inst(&[Operand::def(d, Constraint::Reg)])
    }

    /// `op d, s` with `s` allowed in memory (`add r, r/m`).
    pub fn modify_any(&mut self, d: VReg, s: VReg) -> Inst {
        self.inst(&[
            Operand::modify(d, Constraint::Reg),
            Operand::use_(s, Constraint::Any),
        ])
    }

    /// `d = s` (a copy).
    pub fn copy(&mut self, d: VReg, s: VReg) -> Inst {
        self.inst_full(
            &[
                Operand::def(d, Constraint::Reg),
                Operand::use_(s, Constraint::Any),
            ],
            PRegSet::empty(),
            InstKind::Plain,
            Some((d, s)),
        )
    }

    /// Unconditional jump (no operands).
    pub fn jump(&mut self, to: Block) -> Inst {
        self.edge_to(to);
        self.inst_full(&[], PRegSet::empty(), InstKind::Branch, None)
    }

    /// Conditional or multi-way branch with operands.
    pub fn branch(&mut self, targets: &[Block], ops: &[Operand]) -> Inst {
        for &t in targets {
            self.edge_to(t);
        }
        self.inst_full(ops, PRegSet::empty(), InstKind::Branch, None)
    }

    /// Return of `v` in rax.
    pub fn ret(&mut self, v: VReg) -> Inst {
        self.inst_full(
            &[Operand::use_(v, Constraint::Fixed(PReg::gp(0)))],
            PRegSet::empty(),
            InstKind::Ret,
            None,
        )
    }

    /// A SysV call: arguments in rdi, rsi, rdx, rcx, r8, r9 then on the stack
    /// (register-or-memory uses), result in rax, caller-saved registers
    /// (and all vector registers) clobbered.
    pub fn call(&mut self, args: &[VReg], result: Option<VReg>, env: &MachineEnv) -> Inst {
        let mut ops = Vec::new();
        for (k, &a) in args.iter().enumerate() {
            if k < 6 {
                ops.push(Operand::use_(a, Constraint::Fixed(PReg::gp(SYSV_ARGS[k]))));
            } else {
                ops.push(Operand::use_(a, Constraint::Any));
            }
        }
        if let Some(r) = result {
            ops.push(Operand::def(r, Constraint::Fixed(PReg::gp(0))));
        }
        let mut clobbers =
            PRegSet(env.caller_saved().0 & PRegSet::from_class_mask(RegClass::Gp, u32::MAX).0);
        clobbers = clobbers.union(PRegSet::from_class_mask(RegClass::Vec, u32::MAX));
        self.inst_full(&ops, clobbers, InstKind::Plain, None)
    }

    /// Adds a successor edge between two blocks.
    pub fn edge_between(&mut self, from: Block, to: Block) {
        self.f.blocks[from.index()].succs.push(to);
    }

    /// Finishes: closes the last block and derives predecessors.
    pub fn finish(mut self) -> TestFunction {
        self.close();
        let nb = self.f.blocks.len();
        for b in 0..nb {
            let succs = self.f.blocks[b].succs.clone();
            for s in succs {
                if s.index() < nb && !self.f.blocks[s.index()].preds.contains(&Block::new(b)) {
                    self.f.blocks[s.index()].preds.push(Block::new(b));
                }
            }
        }
        self.f
    }
}

/// The generator every standard workload draws from
/// (../shared/bench/WORKLOAD.md), so that a bench and a test given the same
/// seed build the same function.
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value: a wrapping linear congruential step, top 31 bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The operations of workloads B and C: `count` updates `d op= s` of
/// values drawn by the generator from `seed` (`imul`, one in four, needs
/// its destination in a register; the rest may use memory).
fn random_updates(b: &mut Builder, v: &[VReg], seed: u64, count: usize) {
    let mut g = Lcg(seed);
    let n = v.len() as u64;
    for _ in 0..count {
        let r = g.next();
        let d = v[((r >> 2) % n) as usize];
        let s = v[((r >> 8) % n) as usize];
        let dc = if r % 4 == 3 {
            Constraint::Reg
        } else {
            Constraint::Any
        };
        b.inst(&[Operand::modify(d, dc), Operand::use_(s, Constraint::Any)]);
    }
}

/// Workload B of ../shared/bench/WORKLOAD.md with `ops` operations, as the
/// allocator sees it: 64 values defined from the argument in register 7, `ops`
/// two-operand updates (`imul` needs its destination in a register, the rest
/// may use memory), then a sum of all 64 that is returned.
pub fn workload_b(ops: usize) -> TestFunction {
    let mut b = Builder::new();
    let p = b.vreg_gp();
    let v: Vec<_> = (0..64).map(|_| b.vreg_gp()).collect();
    b.block();
    b.args(&[(p, 7)]);
    for &x in &v {
        b.inst(&[
            Operand::def(x, Constraint::Reg),
            Operand::use_(p, Constraint::Reg),
        ]);
    }
    random_updates(&mut b, &v, 12345, ops);
    for &x in &v[1..] {
        b.inst(&[
            Operand::modify(v[0], Constraint::Reg),
            Operand::use_(x, Constraint::Any),
        ]);
    }
    b.ret(v[0]);
    b.finish()
}

/// One function of workload C (../shared/bench/WORKLOAD.md) as the
/// allocator sees it, with generator seed `seed`: arguments in registers 7
/// and 6, four values, 20 two-operand updates drawn as in workload B, the
/// values combined into the first and returned. Small functions like this
/// one measure the allocator's fixed cost per function.
pub fn workload_c_shape(seed: u64) -> TestFunction {
    let mut b = Builder::new();
    let v: Vec<_> = (0..4).map(|_| b.vreg_gp()).collect();
    b.block();
    b.args(&[(v[0], 7), (v[1], 6)]);
    b.inst(&[
        Operand::def(v[2], Constraint::Reg),
        Operand::use_(v[0], Constraint::Reg),
    ]);
    b.modify_any(v[2], v[1]);
    b.inst(&[
        Operand::def(v[3], Constraint::Reg),
        Operand::use_(v[0], Constraint::Reg),
    ]);
    random_updates(&mut b, &v, seed, 20);
    for &x in &v[1..] {
        b.modify_any(v[0], x);
    }
    b.ret(v[0]);
    b.finish()
}

/// Writes, inside an `impl Function for Wrapper`, the trait's required
/// methods and `inst_clobbers` as calls on the wrapper's field `$field`
/// (a [`TestFunction`] or a reference to one), so that a test wrapper
/// that changes one answer of a function spells out only that answer.
/// The trait must be in scope where it is used.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_function_methods {
    ($field:ident) => {
        fn num_insts(&self) -> usize {
            self.$field.num_insts()
        }
        fn num_blocks(&self) -> usize {
            self.$field.num_blocks()
        }
        fn num_vregs(&self) -> usize {
            self.$field.num_vregs()
        }
        fn entry_block(&self) -> $crate::Block {
            self.$field.entry_block()
        }
        fn block_insts(&self, b: $crate::Block) -> $crate::InstRange {
            self.$field.block_insts(b)
        }
        fn block_succs(&self, b: $crate::Block) -> &[$crate::Block] {
            self.$field.block_succs(b)
        }
        fn block_preds(&self, b: $crate::Block) -> &[$crate::Block] {
            self.$field.block_preds(b)
        }
        fn is_ret(&self, i: $crate::Inst) -> bool {
            self.$field.is_ret(i)
        }
        fn is_branch(&self, i: $crate::Inst) -> bool {
            self.$field.is_branch(i)
        }
        fn inst_operands(&self, i: $crate::Inst) -> &[$crate::Operand] {
            self.$field.inst_operands(i)
        }
        fn inst_clobbers(&self, i: $crate::Inst) -> $crate::PRegSet {
            self.$field.inst_clobbers(i)
        }
        fn vreg_class(&self, v: $crate::VReg) -> $crate::RegClass {
            self.$field.vreg_class(v)
        }
    };
}
