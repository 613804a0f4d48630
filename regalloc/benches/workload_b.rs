//! Workload B of ../shared/bench/WORKLOAD.md (64 values, 10,000 operations,
//! 15 allocatable GP registers) in the test representation: allocation time
//! per instruction, inserted stores/reloads/moves, folded memory operands,
//! slots; and the same at 1,000 / 10,000 / 40,000 operations for linearity.
//!
//! Prints regalloc2's figures on the same input (in SSA form) beside ours.
//!
//! Run: `cargo bench -p jitforge-regalloc --bench workload_b`.

use jitforge_regalloc::testfn::{TestFunction, workload_b, workload_c_shape};
use jitforge_regalloc::{Allocator, MachineEnv, Options, Output};
use std::time::Instant;

fn measure(ops: usize, env: &MachineEnv) -> (f64, Output) {
    let f = workload_b(ops);
    let mut a = Allocator::new();
    let mut out = Output::default();
    let opts = Options::default();
    a.run(&f, env, &Options::checked(), &mut out)
        .expect("allocation");
    let n = f.insts.len();
    // REGALLOC_BENCH_QUICK=1: one timed run (for instruction counting under valgrind).
    let quick = std::env::var_os("REGALLOC_BENCH_QUICK").is_some();
    let reps = if quick { 1 } else { (200_000 / n).max(3) };
    let mut best = f64::MAX;
    for _ in 0..if quick { 1 } else { 5 } {
        let t = Instant::now();
        for _ in 0..reps {
            a.run(&f, env, &opts, &mut out).expect("allocation");
        }
        let ns = t.elapsed().as_nanos() as f64 / (reps * n) as f64;
        best = best.min(ns);
    }
    (best, out)
}

fn main() {
    let env = MachineEnv::x86_64_sysv(false);
    println!("workload B (64 values, 15 allocatable GP registers), jitforge-regalloc linear scan");
    if std::env::var_os("REGALLOC_BENCH_ONLY_C").is_some() {
        workload_c();
        return;
    }
    let mut base = 0.0;
    for ops in [1_000, 10_000, 40_000, 250_000] {
        let (ns, out) = measure(ops, &env);
        if ops == 1_000 {
            base = ns;
        }
        let s = out.stats;
        println!(
            "ops={ops:>6} ns_per_inst={ns:>7.1} ratio_vs_1k={:.2} stores={} reloads={} folded={} moves={} swaps={} stack_touching={} slots={}",
            ns / base,
            s.stores,
            s.reloads,
            s.folded,
            s.moves,
            s.swaps,
            s.stack_touching(),
            s.slots
        );
    }
    workload_c();
    if std::env::var_os("REGALLOC_BENCH_NO_R2").is_some() {
        return;
    }
    println!("same inputs (SSA form), regalloc2 0.15:");
    for (name, alg) in [
        ("ion (backtracking)", regalloc2::Algorithm::Ion),
        ("fastalloc", regalloc2::Algorithm::Fastalloc),
    ] {
        for ops in [1_000, 10_000] {
            let reps = if ops > 5_000 { 2 } else { 5 };
            let (ns, [st, ld, folded, mv, slots]) = r2::measure(ops, alg, reps);
            println!(
                "regalloc2 {name:<18} ops={ops:>6} ns_per_inst={ns:>7.1} stores={st} reloads={ld} folded={folded} moves={mv} stack_touching={} slots={slots}",
                st + ld + folded
            );
        }
    }
}

/// Workload B in SSA form for regalloc2 (each operation defines a new
/// value that reuses its first input's register; the second input may be a
/// register or a stack slot).
mod r2 {
    use jitforge_regalloc::testfn::Lcg;
    use regalloc2 as ra;

    pub struct Func {
        ops: Vec<Vec<ra::Operand>>,
        nv: usize,
        blocks: Vec<ra::Block>,
    }

    pub fn workload_b(n: usize) -> Func {
        let gp = |i: usize| ra::VReg::new(i, ra::RegClass::Int);
        let mut nv = 0;
        let mut fresh = || {
            nv += 1;
            gp(nv - 1)
        };
        let mut ops = Vec::new();
        let p = fresh();
        ops.push(vec![ra::Operand::reg_fixed_def(
            p,
            ra::PReg::new(7, ra::RegClass::Int),
        )]);
        let mut cur: Vec<ra::VReg> = Vec::new();
        for _ in 0..64 {
            let v = fresh();
            ops.push(vec![ra::Operand::reg_def(v), ra::Operand::reg_use(p)]);
            cur.push(v);
        }
        let mut g = Lcg(12345);
        for _ in 0..n {
            let r = g.next();
            let d = ((r >> 2) % 64) as usize;
            let s = ((r >> 8) % 64) as usize;
            let v = fresh();
            ops.push(vec![
                ra::Operand::reg_reuse_def(v, 1),
                ra::Operand::reg_use(cur[d]),
                ra::Operand::any_use(cur[s]),
            ]);
            cur[d] = v;
        }
        let mut acc = cur[0];
        for &x in &cur[1..] {
            let v = fresh();
            ops.push(vec![
                ra::Operand::reg_reuse_def(v, 1),
                ra::Operand::reg_use(acc),
                ra::Operand::any_use(x),
            ]);
            acc = v;
        }
        ops.push(vec![ra::Operand::reg_fixed_use(
            acc,
            ra::PReg::new(0, ra::RegClass::Int),
        )]);
        Func {
            ops,
            nv,
            blocks: Vec::new(),
        }
    }

    impl ra::Function for Func {
        fn num_insts(&self) -> usize {
            self.ops.len()
        }
        fn num_blocks(&self) -> usize {
            1
        }
        fn entry_block(&self) -> ra::Block {
            ra::Block::new(0)
        }
        fn block_insns(&self, _: ra::Block) -> ra::InstRange {
            ra::InstRange::new(ra::Inst::new(0), ra::Inst::new(self.ops.len()))
        }
        fn block_succs(&self, _: ra::Block) -> &[ra::Block] {
            &self.blocks
        }
        fn block_preds(&self, _: ra::Block) -> &[ra::Block] {
            &self.blocks
        }
        fn block_params(&self, _: ra::Block) -> &[ra::VReg] {
            &[]
        }
        fn is_ret(&self, i: ra::Inst) -> bool {
            i.index() + 1 == self.ops.len()
        }
        fn is_branch(&self, _: ra::Inst) -> bool {
            false
        }
        fn branch_blockparams(&self, _: ra::Block, _: ra::Inst, _: usize) -> &[ra::VReg] {
            &[]
        }
        fn inst_operands(&self, i: ra::Inst) -> &[ra::Operand] {
            &self.ops[i.index()]
        }
        fn inst_clobbers(&self, _: ra::Inst) -> ra::PRegSet {
            ra::PRegSet::empty()
        }
        fn num_vregs(&self) -> usize {
            self.nv
        }
        fn spillslot_size(&self, _: ra::RegClass) -> usize {
            1
        }
    }

    pub fn env() -> ra::MachineEnv {
        let mut pref = ra::PRegSet::empty();
        let mut non = ra::PRegSet::empty();
        for hw in [0, 1, 2, 6, 7, 8, 9, 10, 11] {
            pref.add(ra::PReg::new(hw, ra::RegClass::Int));
        }
        for hw in [3, 5, 12, 13, 14, 15] {
            non.add(ra::PReg::new(hw, ra::RegClass::Int));
        }
        ra::MachineEnv {
            preferred_regs_by_class: [pref, ra::PRegSet::empty(), ra::PRegSet::empty()],
            non_preferred_regs_by_class: [non, ra::PRegSet::empty(), ra::PRegSet::empty()],
            scratch_by_class: [None; 3],
            fixed_stack_slots: Vec::new(),
        }
    }

    /// (ns per instruction, stores, reloads, folded, moves, slots)
    pub fn measure(n: usize, algorithm: ra::Algorithm, reps: usize) -> (f64, [usize; 5]) {
        let f = workload_b(n);
        let env = env();
        let opts = ra::RegallocOptions {
            verbose_log: false,
            validate_ssa: false,
            algorithm,
        };
        let mut best = f64::MAX;
        let mut out = None;
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let o = ra::run(&f, &env, &opts).expect("regalloc2");
            best = best.min(t.elapsed().as_nanos() as f64 / f.ops.len() as f64);
            out = Some(o);
        }
        let o = out.expect("one run");
        let (mut st, mut ld, mut mv) = (0, 0, 0);
        for (_, e) in &o.edits {
            let ra::Edit::Move { from, to } = e;
            match (from.is_reg(), to.is_reg()) {
                (true, false) => st += 1,
                (false, true) => ld += 1,
                (true, true) if from != to => mv += 1,
                _ => {}
            }
        }
        let folded = o.allocs.iter().filter(|a| a.is_stack()).count();
        (best, [st, ld, folded, mv, o.num_spillslots])
    }
}

/// Workload C's shape (10,000 functions of 4 values and 20 operations, two
/// arguments, one result) through one reusable allocation context.
fn workload_c() {
    let env = MachineEnv::x86_64_sysv(false);
    let funcs: Vec<TestFunction> = (1..=10_000u64).map(workload_c_shape).collect();
    let mut a = Allocator::new();
    let mut out = Output::default();
    let opts = Options::default();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for f in &funcs {
            a.run(f, &env, &opts, &mut out).expect("allocation");
        }
        best = best.min(t.elapsed().as_nanos() as f64 / funcs.len() as f64);
    }
    println!(
        "workload C shape: 10,000 small functions, one context: ns_per_func={best:.0} (last: {})",
        out.stats
    );
}
