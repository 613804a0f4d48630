//! The byte-driven generator of valid functions, shared by proptest and the
//! cargo-fuzz target `regalloc`.
//!
//! [`generate`] turns any byte string into a valid [`TestFunction`] (running
//! out of bytes reads zeros): straight code, if/else diamonds, counted loops
//! (back edges from a conditional latch, which are critical edges, or from a
//! jump), irreducible two-entry cycles, multi-way branches with an operand,
//! calls with up to ten arguments (six in fixed registers, the rest register
//! or memory), fixed registers (`div` in RDX:RAX, shifts by CL), partial
//! writes, AH-class and VEX register subsets, memory-foldable operands,
//! early clobbers, late uses, dead defs, rematerializable constants, vector
//! values, and 1 to 64 GP values live at once over 1 to 100 blocks. Every
//! value is defined at entry, so every use is valid on every path.
//!
//! [`check_bytes`] generates, allocates with the checker on, and reports.
//! Long fuzz runs (needs nightly and cargo-fuzz):
//! `cd fuzz && cargo +nightly fuzz run regalloc -- -max_total_time=1800`.

use crate::function::Constraint::{Any, Reg};
use crate::function::{
    Block, Constraint, MachineEnv, Operand, OperandKind, OperandPos, PReg, RegClass, RegMask, VReg,
};
use crate::output::{Output, Stats};
use crate::testfn::{Builder, InstKind, Lcg, TestFunction};
use crate::{Allocator, Options};

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let x = if n > 256 {
            (self.byte() as u32) << 8 | self.byte() as u32
        } else {
            self.byte() as u32
        };
        x % n
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 != 0
    }
}

struct Gen<'a> {
    b: Builder,
    r: Bytes<'a>,
    gp: Vec<VReg>,
    vecs: Vec<VReg>,
    masks: Vec<VReg>,
    consts: Vec<VReg>,
    dead: VReg,
    max_blocks: usize,
    env: MachineEnv,
    nblocks: usize,
    /// Only instructions the local allocator takes (see [`generate_local`]).
    local_only: bool,
}

impl Gen<'_> {
    fn gp(&mut self) -> VReg {
        let n = self.gp.len() as u32;
        self.gp[self.r.below(n) as usize]
    }

    fn open(&mut self) -> Block {
        if self.b.current_is_empty() {
            self.b.inst(&[]);
        }
        self.nblocks += 1;
        self.b.block()
    }

    fn add_edge(&mut self, from: Block, to: Block) {
        // The builder adds edges from the current block only; patch directly.
        self.b.edge_from(from, to);
    }

    fn inst(&mut self) {
        let mut k = self.r.below(18);
        if self.local_only && k == 16 {
            // One value read-modify-written and read through a subset
            // (a copy where the subset excludes its register).
            let d = self.gp();
            self.b.inst(&[
                Operand::modify(d, Any),
                Operand::use_(d, Constraint::Subset(RegMask::new(0x27))),
            ]);
            return;
        }
        if self.local_only && matches!(k, 3 | 6 | 8 | 9 | 13 | 16) {
            // Reuse, implicit-pair, early-def, late-use, call and
            // two-fixed-copies forms: the general path's.
            k = 0;
        }
        let d = self.gp();
        let s = self.gp();
        use Constraint::{Fixed, Reuse, Subset};
        match k {
            0 | 1 => {
                self.b.modify_any(d, s);
            }
            2 => {
                self.b
                    .inst(&[Operand::modify(d, Any), Operand::use_(s, Reg)]);
            }
            3 => {
                let a = self.gp();
                self.b.inst(&[
                    Operand::def(d, Reuse(1)),
                    Operand::use_(a, Reg),
                    Operand::use_(s, Any),
                ]);
            }
            4 => {
                self.b.copy(d, s);
            }
            5 => {
                self.b.inst(&[
                    Operand::modify(d, Reg),
                    Operand::use_(s, Fixed(PReg::gp(1))),
                ]);
            }
            6 => {
                let mut q = self.gp();
                if q == d {
                    q = self.dead;
                }
                let lo = self.gp();
                self.b.inst(&[
                    Operand::use_(lo, Fixed(PReg::gp(0))),
                    Operand::use_(s, Fixed(PReg::gp(2))),
                    Operand::use_(d, Any),
                    Operand::def(q, Fixed(PReg::gp(0))),
                    Operand::def(d, Fixed(PReg::gp(2))),
                ]);
            }
            7 => {
                self.b
                    .inst(&[Operand::modify(d, Subset(RegMask::new(0b1111)))]);
            }
            8 => {
                self.b.inst(&[
                    Operand::new(d, OperandKind::Def, OperandPos::Early, Reg),
                    Operand::use_(s, Reg),
                ]);
            }
            9 => {
                self.b.inst(&[
                    Operand::new(s, OperandKind::Use, OperandPos::Late, Reg),
                    Operand::def(d, Reg),
                ]);
            }
            10 => {
                self.b
                    .inst(&[Operand::def(self.dead, Reg), Operand::use_(s, Any)]);
            }
            11 if !self.consts.is_empty() => {
                let c = self.consts[self.r.below(self.consts.len() as u32) as usize];
                if self.r.flag() {
                    self.b.constant(c);
                } else {
                    self.b
                        .inst(&[Operand::modify(d, Reg), Operand::use_(c, Any)]);
                }
            }
            12 if !self.masks.is_empty() && self.r.flag() => {
                // Mask registers: kandw-like op, kmovw from GP, masked vector op.
                let n = self.masks.len() as u32;
                let k1 = self.masks[self.r.below(n) as usize];
                let k2 = self.masks[self.r.below(n) as usize];
                match self.r.below(3) {
                    0 => {
                        self.b
                            .inst(&[Operand::modify(k1, Reg), Operand::use_(k2, Any)]);
                    }
                    1 => {
                        self.b.inst(&[Operand::def(k1, Reg), Operand::use_(d, Reg)]);
                    }
                    _ if !self.vecs.is_empty() => {
                        let x = self.vecs[self.r.below(self.vecs.len() as u32) as usize];
                        self.b.inst(&[
                            Operand::modify(x, Reg),
                            Operand::use_(k1, Subset(RegMask::new(0xfe))),
                        ]);
                    }
                    _ => {
                        self.b.inst(&[Operand::use_(k1, Reg)]);
                    }
                }
            }
            12 if !self.vecs.is_empty() => {
                let n = self.vecs.len() as u32;
                let x = self.vecs[self.r.below(n) as usize];
                let y = self.vecs[self.r.below(n) as usize];
                if self.r.flag() {
                    self.b.inst(&[
                        Operand::modify(x, Subset(RegMask::new(0xffff))),
                        Operand::use_(y, Any),
                    ]);
                } else {
                    // vmovq-like crossing: gp <- vec.
                    self.b
                        .inst(&[Operand::def(self.dead, Reg), Operand::use_(y, Reg)]);
                    self.b
                        .inst(&[Operand::modify(x, Reg), Operand::use_(d, Reg)]);
                }
            }
            13 => {
                let n = 1 + self.r.below(10) as usize;
                let args: Vec<VReg> = (0..n).map(|_| self.gp()).collect();
                let env = self.env.clone();
                self.b.call(&args, Some(d), &env);
            }
            14 => {
                self.b.inst(&[Operand::def(d, Any), Operand::use_(s, Reg)]);
            }
            15 => {
                self.b.inst(&[
                    Operand::use_(d, Subset(RegMask::new(0b1111))),
                    Operand::use_(s, Any),
                ]);
            }
            16 => {
                // Same value in two fixed registers.
                self.b.inst(&[
                    Operand::use_(d, Fixed(PReg::gp(7))),
                    Operand::use_(d, Fixed(PReg::gp(6))),
                    Operand::use_(s, Reg),
                ]);
            }
            _ => {
                self.b.modify_any(d, s);
            }
        }
    }

    fn straight(&mut self) {
        let n = self.r.below(8);
        for _ in 0..n {
            self.inst();
        }
    }

    /// Emits a region starting in the open block; leaves an open block.
    fn region(&mut self, depth: u32) {
        let n = 1 + self.r.below(4);
        for _ in 0..n {
            self.straight();
            if self.nblocks + 6 >= self.max_blocks || depth > 4 {
                continue;
            }
            match self.r.below(7) {
                0 | 1 => self.diamond(depth),
                2 => self.loop_cond_latch(depth),
                3 => self.loop_top_test(depth),
                4 => self.irreducible(),
                5 => self.switch(),
                _ => {}
            }
        }
    }

    fn cond(&mut self) -> Vec<Operand> {
        let a = self.gp();
        if self.r.flag() {
            self.b
                .inst(&[Operand::use_(a, Reg), Operand::use_(self.gp[0], Any)]);
            vec![]
        } else {
            vec![Operand::use_(a, Reg)]
        }
    }

    fn diamond(&mut self, depth: u32) {
        let ops = self.cond();
        let head = self.b.current();
        self.b.branch(&[], &ops);
        let then = self.open();
        self.add_edge(head, then);
        self.region(depth + 1);
        let then_end = self.b.current();
        self.b.jump_later();
        let els = self.open();
        self.add_edge(head, els);
        self.region(depth + 1);
        let els_end = self.b.current();
        let fall = self.r.flag();
        if !fall {
            self.b.jump_later();
        }
        let join = self.open();
        self.add_edge(then_end, join);
        self.add_edge(els_end, join);
    }

    fn loop_cond_latch(&mut self, depth: u32) {
        let pre = self.b.current();
        self.b.jump_later();
        let header = self.open();
        self.add_edge(pre, header);
        let ctr = self.gp();
        self.region(depth + 1);
        self.b.inst(&[Operand::modify(ctr, Any)]);
        let latch = self.b.current();
        self.b.branch(&[], &[Operand::use_(ctr, Reg)]);
        let exit = self.open();
        self.add_edge(latch, header);
        self.add_edge(latch, exit);
    }

    fn loop_top_test(&mut self, depth: u32) {
        let pre = self.b.current();
        let header = self.open();
        self.add_edge(pre, header);
        let ops = self.cond();
        self.b.branch(&[], &ops);
        let body = self.open();
        self.add_edge(header, body);
        self.region(depth + 1);
        let latch = self.b.current();
        self.b.jump_later();
        self.add_edge(latch, header);
        let exit = self.open();
        self.add_edge(header, exit);
    }

    fn irreducible(&mut self) {
        let ops = self.cond();
        let head = self.b.current();
        self.b.branch(&[], &ops);
        let a = self.open();
        self.straight();
        let ops = self.cond();
        self.b.branch(&[], &ops);
        let bb = self.open();
        self.straight();
        let ops = self.cond();
        self.b.branch(&[], &ops);
        let exit = self.open();
        self.add_edge(head, a);
        self.add_edge(head, bb);
        self.add_edge(a, bb);
        self.add_edge(a, exit);
        self.add_edge(bb, a);
        self.add_edge(bb, exit);
    }

    fn switch(&mut self) {
        let idx = self.gp();
        let head = self.b.current();
        self.b.branch(&[], &[Operand::use_(idx, Reg)]);
        let k = 2 + self.r.below(3);
        let mut ends = Vec::new();
        for _ in 0..k {
            let t = self.open();
            self.add_edge(head, t);
            self.straight();
            ends.push(self.b.current());
            self.b.jump_later();
        }
        let join = self.open();
        for e in ends {
            self.add_edge(e, join);
        }
    }
}

impl Builder {
    /// Adds an edge between two existing blocks (for generators).
    pub fn edge_from(&mut self, from: Block, to: Block) {
        self.edge_between(from, to);
    }

    /// Appends a branch without operands whose targets are added later.
    pub fn jump_later(&mut self) {
        self.inst_full(&[], crate::PRegSet::empty(), InstKind::Branch, None);
    }
}

/// Builds a valid function (and its machine) from bytes.
pub fn generate(data: &[u8]) -> (TestFunction, MachineEnv) {
    generate_with(data, false)
}

/// Builds a valid function of one block from bytes, as [`generate`] does
/// without control flow: the input of the local allocator
/// ([`crate::local`]). Seven in eight use only the instruction forms it
/// takes (no calls, reuses, early defs, late uses, or value in two fixed
/// registers); the others may use any and then take the general path.
pub fn generate_local(data: &[u8]) -> (TestFunction, MachineEnv) {
    generate_with(data, true)
}

fn generate_with(data: &[u8], one_block: bool) -> (TestFunction, MachineEnv) {
    let mut r = Bytes { data, pos: 0 };
    let ngp = 1 + r.below(64) as usize;
    let nvec = r.below(6) as usize;
    let nconst = r.below(4) as usize;
    let max_blocks = if one_block {
        1
    } else {
        1 + r.below(100) as usize
    };
    let local_only = one_block && r.below(8) != 0;
    let avx512 = r.flag();
    let env = MachineEnv::x86_64_sysv(avx512);
    let mut b = Builder::new();
    // A declared frame (without reading more bytes, so that stored inputs
    // keep their meaning): the checker then proves the alignment at calls.
    b.frame(crate::FrameLayout::x86_64(8 * (ngp % 3) as u32));
    let gp: Vec<VReg> = (0..ngp).map(|_| b.vreg_gp()).collect();
    let vecs: Vec<VReg> = (0..nvec).map(|_| b.vreg(RegClass::Vec)).collect();
    let nmask = if avx512 { r.below(4) as usize } else { 0 };
    let masks: Vec<VReg> = (0..nmask).map(|_| b.vreg(RegClass::Mask)).collect();
    let consts: Vec<VReg> = (0..nconst).map(|_| b.vreg_const()).collect();
    let dead = b.vreg_gp();
    b.block();
    let nargs = ngp.min(6);
    let args: Vec<(VReg, u8)> = (0..nargs)
        .map(|k| (gp[k], crate::testfn::SYSV_ARGS[k]))
        .collect();
    b.args(&args);
    for &v in &gp[nargs..] {
        b.inst(&[Operand::def(v, Constraint::Reg), Operand::use_(gp[0], Reg)]);
    }
    for &v in vecs.iter().chain(masks.iter()) {
        b.inst(&[Operand::def(v, Constraint::Reg), Operand::use_(gp[0], Reg)]);
    }
    for &c in &consts {
        b.constant(c);
    }
    let mut g = Gen {
        b,
        r,
        gp,
        vecs,
        masks,
        consts,
        dead,
        max_blocks,
        env: env.clone(),
        nblocks: 1,
        local_only,
    };
    g.region(0);
    // Keep values live to the end: sink them (register or memory uses).
    let all: Vec<VReg> =
        g.gp.iter()
            .chain(g.vecs.iter())
            .chain(g.masks.iter())
            .copied()
            .collect();
    for v in all {
        g.b.inst(&[Operand::use_(v, Constraint::Any)]);
    }
    let r0 = g.gp[0];
    g.b.ret(r0);
    (g.b.finish(), env)
}

/// `len` pseudo-random bytes from `seed` (the generator of
/// ../shared/bench/WORKLOAD.md, started from the seed spread by a
/// multiplication plus `salt`): reproducible inputs for [`generate`].
pub fn seeded_bytes(seed: u64, salt: u64, len: usize) -> Vec<u8> {
    let mut g = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt));
    (0..len).map(|_| g.next() as u8).collect()
}

/// The input of the fixed sweep of generated functions (the tests check
/// seeds 0 to 399; the quality example totals their counts): lengths vary
/// from 16 to 2,015 bytes.
pub fn sweep_input(seed: u64) -> Vec<u8> {
    seeded_bytes(seed, 1, 16 + (seed as usize).wrapping_mul(37) % 2000)
}

/// What one checked allocation produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Instructions in the generated function.
    pub insts: usize,
    /// Blocks.
    pub blocks: usize,
    /// Allocation statistics.
    pub stats: Stats,
}

/// Generates a function from `data`, allocates it with the checker and the
/// decision log on, and returns a summary or the failure (with the
/// function's listing).
pub fn check_bytes(data: &[u8]) -> Result<Summary, String> {
    let (f, env) = generate(data);
    let mut out = Output::default();
    let opts = Options {
        check: true,
        log: true,
    };
    match Allocator::new().run(&f, &env, &opts, &mut out) {
        Ok(()) => Ok(Summary {
            insts: f.insts.len(),
            blocks: f.blocks.len(),
            stats: out.stats,
        }),
        Err(e @ crate::Error::Check(_)) => {
            // Show the allocation that failed.
            let mut raw = Output::default();
            let unchecked = Options {
                check: false,
                log: true,
            };
            let _ = Allocator::new().run(&f, &env, &unchecked, &mut raw);
            Err(format!("{e}\n{}", crate::listing(&f, &raw)))
        }
        Err(e) => Err(format!("{e}\n{f}")),
    }
}

/// Generates a function of one block from `data` ([`generate_local`]),
/// allocates it with the checker and the decision log on, then again on
/// the general path only (checked too); returns the first's summary and
/// whether the local allocator took it, or the failure.
pub fn check_bytes_local(data: &[u8]) -> Result<(Summary, bool), String> {
    let (f, env) = generate_local(data);
    let opts = Options {
        check: true,
        log: true,
    };
    let mut out = Output::default();
    let mut a = Allocator::new();
    let run = |a: &mut Allocator, out: &mut Output, what: &str| match a.run(&f, &env, &opts, out) {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut raw = Output::default();
            let unchecked = Options {
                check: false,
                log: true,
            };
            let _ = a.run(&f, &env, &unchecked, &mut raw);
            Err(format!("{what}: {e}\n{}", crate::listing(&f, &raw)))
        }
    };
    run(&mut a, &mut out, "local")?;
    let local = a.took_local_path();
    let summary = Summary {
        insts: f.insts.len(),
        blocks: f.blocks.len(),
        stats: out.stats,
    };
    // What a client that vouches and gives the mentions gets must be the
    // same allocation.
    let mentioned = Mentioned::new(&f);
    let mut given = Output::default();
    a.run(&mentioned, &env, &opts, &mut given)
        .map_err(|e| format!("with the mentions: {e}\n{f}"))?;
    if format!("{given:?}") != format!("{out:?}") {
        return Err(format!(
            "with the mentions, another allocation:\n{}\nwithout:\n{}",
            crate::listing(&f, &given),
            crate::listing(&f, &out)
        ));
    }
    a.set_general_only(true);
    run(&mut a, &mut out, "general")?;
    Ok((summary, local))
}

/// A function with what a client such as the Compiler adds to it: its
/// word ([`Function::vouched`]) for what holds, and the mentions
/// ([`Function::mentions`]) when it vouches for everything, both found
/// honestly from the function.
struct Mentioned<'a> {
    f: &'a TestFunction,
    vouched: crate::Vouched,
    mentions: Vec<crate::VRegMentions>,
    fixed: [u32; 3],
}

impl<'a> Mentioned<'a> {
    fn new(f: &'a TestFunction) -> Mentioned<'a> {
        use crate::function::{OperandKind as K, OperandPos as P};
        let n = f.insts.len();
        let inner = &f.insts[..n.saturating_sub(1)];
        let plain = |op: &Operand| {
            let pos = if op.kind == K::Def { P::Late } else { P::Early };
            op.pos == pos
                && matches!(op.constraint, Reg | Any | Constraint::Fixed(_))
                && op.vreg.index() < f.vclass.len()
        };
        let vouched = crate::Vouched {
            flow_only_last: inner.iter().all(|i| i.kind == InstKind::Plain),
            no_clobbers: f.insts.iter().all(|i| i.clobbers.is_empty()),
            plain_operands: f.insts.iter().all(|i| i.ops.iter().all(plain)),
        };
        let mut mentions = vec![crate::VRegMentions::UNNAMED; f.vclass.len()];
        let mut fixed = [0u32; 3];
        if vouched.all() {
            for (ii, inst) in f.insts.iter().enumerate() {
                for op in &inst.ops {
                    let m = &mut mentions[op.vreg.index()];
                    m.last = ii as u32;
                    if let Constraint::Fixed(p) = op.constraint {
                        fixed[p.class.index()] |= 1 << (p.hw & 31);
                        if op.is_use() && m.first_fixed_use == crate::VRegMentions::NO_REG {
                            m.first_fixed_use = p.hw;
                        }
                    }
                }
            }
        }
        Mentioned {
            f,
            vouched,
            mentions,
            fixed,
        }
    }
}

impl crate::Function for Mentioned<'_> {
    crate::forward_function_methods!(f);
    fn is_move(&self, i: crate::Inst) -> Option<(VReg, VReg)> {
        self.f.is_move(i)
    }
    fn is_remat(&self, v: VReg) -> bool {
        self.f.is_remat(v)
    }
    fn frame_layout(&self) -> Option<crate::FrameLayout> {
        self.f.frame_layout()
    }
    fn vouched(&self) -> Option<crate::Vouched> {
        Some(self.vouched)
    }
    fn mentions(&self) -> Option<crate::Mentions<'_>> {
        self.vouched.all().then_some(crate::Mentions {
            vregs: &self.mentions,
            fixed: self.fixed,
        })
    }
}

/// Builds an arbitrary, usually invalid, function from bytes: random block
/// ranges and edges, operands naming any vreg or register with any
/// constraint. Used to show that the allocator answers every input with a
/// result or a typed error, never a panic.
pub fn generate_raw(data: &[u8]) -> (TestFunction, MachineEnv) {
    use crate::function::{OperandKind as K, OperandPos as P};
    use crate::testfn::{TestBlock, TestInst};
    if data.first().is_some_and(|b| b % 4 != 0) {
        return mutate_valid(data);
    }
    let mut r = Bytes { data, pos: 0 };
    let nv = r.below(12) as usize;
    let ni = r.below(24) as usize;
    let nb = 1 + r.below(6) as usize;
    let mut f = TestFunction::default();
    for v in 0..nv {
        f.vclass.push(RegClass::ALL[r.below(3) as usize]);
        f.remat.push(v % 5 == 4 && r.flag());
    }
    for _ in 0..ni {
        let nops = r.below(5) as usize;
        let mut ops = Vec::new();
        for _ in 0..nops {
            let v = VReg(r.below(nv as u32 + 1));
            let kind = [K::Use, K::Def, K::Modify][r.below(3) as usize];
            let pos = if r.flag() { P::Early } else { P::Late };
            let c = match r.below(6) {
                0 => Constraint::Reg,
                1 => Constraint::Any,
                2 => Constraint::Subset(RegMask::new(r.byte() as u32 * 0x0101_0101)),
                3 => Constraint::Fixed(PReg::new(
                    RegClass::ALL[r.below(3) as usize],
                    r.below(34) as u8,
                )),
                4 => Constraint::Reuse(r.below(5) as u8),
                _ => Constraint::Reg,
            };
            ops.push(Operand::new(v, kind, pos, c));
        }
        let kind = [
            InstKind::Plain,
            InstKind::Plain,
            InstKind::Branch,
            InstKind::Ret,
        ][r.below(4) as usize];
        let clobbers = if r.below(4) == 0 {
            crate::PRegSet(((r.byte() as u128) << 1) | ((r.byte() as u128) << 40))
        } else {
            crate::PRegSet::empty()
        };
        f.insts.push(TestInst {
            ops,
            clobbers,
            kind,
            mov: None,
        });
    }
    let mut start = 0u32;
    for b in 0..nb {
        let len = if b + 1 == nb {
            (ni as u32).saturating_sub(start)
        } else {
            r.below(6)
        };
        let end = (start + len).min(ni as u32 + r.below(2));
        let mut succs = Vec::new();
        for _ in 0..r.below(3) {
            succs.push(Block(r.below(nb as u32 + 1)));
        }
        f.blocks.push(TestBlock {
            start,
            end,
            succs,
            preds: Vec::new(),
        });
        start = end;
    }
    for b in 0..nb {
        let succs = f.blocks[b].succs.clone();
        for s in succs {
            if s.index() < nb && (r.below(8) != 0) {
                f.blocks[s.index()].preds.push(Block::new(b));
            }
        }
    }
    let env = MachineEnv::x86_64_sysv(r.flag());
    (f, env)
}

/// Allocates an arbitrary function from [`generate_raw`]: the allocator
/// must return a typed error or an allocation the checker accepts.
pub fn check_raw_bytes(data: &[u8]) -> Result<(), String> {
    let (f, env) = generate_raw(data);
    let mut out = Output::default();
    match Allocator::new().run(&f, &env, &Options::checked(), &mut out) {
        Ok(()) => Ok(()),
        Err(crate::Error::Check(e)) => Err(format!("checker rejected: {e}\n{f}")),
        Err(crate::Error::Internal(e)) => Err(format!("internal error: {e}\n{f}")),
        Err(_) => Ok(()),
    }
}

/// A valid generated function with a few random operand mutations.
fn mutate_valid(data: &[u8]) -> (TestFunction, MachineEnv) {
    use crate::function::{OperandKind as K, OperandPos as P};
    let split = data.len() / 2;
    let (mut f, env) = generate(&data[split..]);
    let mut r = Bytes {
        data: &data[..split],
        pos: 1,
    };
    let nv = f.vclass.len() as u32;
    let n = 1 + r.below(8);
    for _ in 0..n {
        let i = r.below(f.insts.len() as u32) as usize;
        let inst = &mut f.insts[i];
        match r.below(6) {
            0 | 1 if !inst.ops.is_empty() => {
                let k = r.below(inst.ops.len() as u32) as usize;
                inst.ops[k].constraint = match r.below(5) {
                    0 => Constraint::Reg,
                    1 => Constraint::Any,
                    2 => Constraint::Subset(RegMask::new(r.byte() as u32)),
                    3 => Constraint::Fixed(PReg::new(
                        RegClass::ALL[r.below(3) as usize],
                        r.below(34) as u8,
                    )),
                    _ => Constraint::Reuse(r.below(4) as u8),
                };
            }
            2 if !inst.ops.is_empty() => {
                let k = r.below(inst.ops.len() as u32) as usize;
                inst.ops[k].kind = [K::Use, K::Def, K::Modify][r.below(3) as usize];
                inst.ops[k].pos = if r.flag() { P::Early } else { P::Late };
            }
            3 if !inst.ops.is_empty() => {
                let k = r.below(inst.ops.len() as u32) as usize;
                inst.ops[k].vreg = VReg(r.below(nv + 1));
            }
            4 => {
                let v = VReg(r.below(nv));
                let c = if r.flag() {
                    Constraint::Fixed(PReg::gp(r.below(16) as u8))
                } else {
                    Constraint::Reg
                };
                inst.ops.push(Operand::new(v, K::Use, P::Early, c));
            }
            _ => {
                inst.clobbers = crate::PRegSet(inst.clobbers.0 | (r.byte() as u128) << 8);
            }
        }
    }
    (f, env)
}
