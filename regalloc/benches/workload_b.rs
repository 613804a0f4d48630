//! Workload B of ../shared/bench/WORKLOAD.md (64 values, 10,000 operations,
//! 15 allocatable GP registers) in the test representation: allocation time
//! per instruction, inserted stores/reloads/moves, folded memory operands,
//! slots; and the same at 1,000 / 10,000 / 40,000 operations for linearity.
//!
//! Run: `cargo bench -p jitforge-regalloc --bench workload_b`.

use jitforge_regalloc::testfn::{Builder, TestFunction};
use jitforge_regalloc::{Allocator, Constraint, MachineEnv, Operand, Options, Output};
use std::time::Instant;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn workload_b(ops: usize) -> TestFunction {
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
    let mut g = Lcg(12345);
    for _ in 0..ops {
        let r = g.next();
        let op = r % 4;
        let d = v[((r >> 2) % 64) as usize];
        let s = v[((r >> 8) % 64) as usize];
        if op == 3 {
            // imul r, r/m
            b.inst(&[
                Operand::modify(d, Constraint::Reg),
                Operand::use_(s, Constraint::Any),
            ]);
        } else {
            // add/sub/xor r/m, r  or  r, r/m
            b.inst(&[
                Operand::modify(d, Constraint::Any),
                Operand::use_(s, Constraint::Any),
            ]);
        }
    }
    for &x in &v[1..] {
        b.inst(&[
            Operand::modify(v[0], Constraint::Reg),
            Operand::use_(x, Constraint::Any),
        ]);
    }
    b.ret(v[0]);
    b.finish()
}

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
    let mut base = 0.0;
    for ops in [1_000, 10_000, 40_000] {
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
}
