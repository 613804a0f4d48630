//! Allocation quality on fixed inputs, for tuning: workload B at 1,000 and
//! 10,000 operations and the totals over the generated functions the test
//! sweep uses (seeds 0..400), every result checked.
//!
//! Run: `cargo run --release -p jitforge-regalloc --example quality`.
//! With `alloc N` it only allocates workload B with N operations twice in
//! one context, unchecked (for counting machine instructions with
//! `valgrind --tool=callgrind --toggle-collect='*Allocator*run*'`).
//! With `small N` it allocates N workload C shaped functions (seeds 1..=N)
//! in one context, unchecked, after one warm-up function (for counting
//! machine instructions per small function; it prints the heap
//! allocations, counted by a wrapper around the system allocator).

use jitforge_regalloc::fuzzing::{check_bytes, sweep_input};
use jitforge_regalloc::testfn::{workload_b, workload_c_shape};
use jitforge_regalloc::{Allocator, MachineEnv, Options, Output, allocate};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations (for `small N`).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed unchanged to the system allocator; the
// counter is the only addition.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout` are System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let env = MachineEnv::x86_64_sysv(false);
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "alloc" {
        let f = workload_b(args[2].parse().expect("alloc N: a number of operations"));
        let (mut a, mut out) = (Allocator::new(), Output::default());
        for _ in 0..2 {
            a.run(&f, &env, &Options::default(), &mut out)
                .expect("workload B allocates");
        }
        println!("{} instructions allocated twice", f.insts.len());
        return;
    }
    if args.len() == 3 && args[1] == "small" {
        let n: u64 = args[2].parse().expect("small N: a number of functions");
        let funcs: Vec<_> = (0..=n).map(|k| workload_c_shape(k.max(1))).collect();
        let (mut a, mut out) = (Allocator::new(), Output::default());
        let mut heap = 0;
        for (k, f) in funcs.iter().enumerate() {
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            a.run(f, &env, &Options::default(), &mut out)
                .expect("small function allocates");
            if k > 0 {
                heap += ALLOCATIONS.load(Ordering::Relaxed) - before;
            }
        }
        println!(
            "{} small functions allocated (one warm-up), {heap} heap allocations after the warm-up",
            funcs.len() - 1
        );
        return;
    }
    for ops in [1_000, 10_000] {
        let s = allocate(&workload_b(ops), &env, &Options::checked())
            .expect("workload B allocates")
            .stats;
        println!(
            "workload B ops={ops}: stores={} reloads={} folded={} moves={} stack_touching={} slots={}",
            s.stores,
            s.reloads,
            s.folded,
            s.moves,
            s.stack_touching(),
            s.slots
        );
    }
    let mut t = [0u64; 6];
    for seed in 0..400u64 {
        let s = check_bytes(&sweep_input(seed))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
            .stats;
        for (k, x) in [s.stores, s.reloads, s.folded, s.moves, s.swaps, s.remats]
            .into_iter()
            .enumerate()
        {
            t[k] += x as u64;
        }
    }
    println!(
        "generated seeds 0..400: stores={} reloads={} folded={} moves={} swaps={} remats={} stack_touching={}",
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
        t[5],
        t[0] + t[1] + t[2]
    );
}
