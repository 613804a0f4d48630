//! A lower bound on the stack-touching instructions (stores + reloads +
//! memory operands) that any allocator needs for workload B under the
//! [`Function`] trait's constraints, to judge how far the linear scan is from
//! the best possible.
//!
//! The bound is the Lagrangian dual of the register limit, the same
//! relaxation as the scan's residency plan but with one price per position
//! instead of one overall: with registers priced, every value is
//! independent and its cheapest residency is a shortest path over its
//! accesses through "in memory", "clean in a register" and "dirty in a
//! register" (a load or a memory operand costs 1, dropping a dirty value 1,
//! holding a register over a position its price). The sum of those costs
//! minus the registers' price is at most the cost of any allocation
//! (weak duality: an allocation is one such path per value that holds at
//! most 15 registers at each position), whatever the prices; subgradient
//! steps raise the prices where the paths want more than 15 registers.
//! Relaxed further: an instruction may use two memory operands.
//!
//! With `--input-memory`, an allocator may also fold or reload a value from
//! the input array for free while it is unchanged since its load (and need
//! not keep `p` in a register to do so): a weaker bound that holds for
//! allocators that rematerialize loads too.
//!
//! Run: `cargo run --release -p jitforge-regalloc --example lower_bound [ops] [iterations] [--input-memory]`.

use jitforge_regalloc::testfn::workload_b;
use jitforge_regalloc::{Constraint, Function, Inst, MachineEnv, RegClass};

/// One access of a value: position, whether it reads and writes the value,
/// and whether its slot can serve it (every operand naming it accepts
/// memory and it is named once).
#[derive(Clone, Copy)]
struct Access {
    pos: usize,
    reads: bool,
    writes: bool,
    foldable: bool,
    /// With `--input-memory`: the value is still the one loaded from the
    /// input array, so reading it from there touches no stack slot.
    from_input: bool,
    /// With `--input-memory`: the load from the input array that defines
    /// the value; the register it leaves is clean.
    input_load: bool,
}

/// The cheapest residency of one value with register prices `prefix`
/// (prefix sums per position); adds the positions where that path holds a
/// register to `occupancy` (a difference array).
fn cheapest(acc: &[Access], prefix: &[f64], occupancy: &mut [f64]) -> f64 {
    let m = acc.len();
    // Per access: costs from just before it arriving in memory / clean /
    // dirty, and from just after it leaving in those states.
    let mut before = vec![[0.0f64; 3]; m];
    let mut after = vec![[0.0f64; 3]; m];
    for j in (0..m).rev() {
        let a = if j + 1 == m {
            [0.0; 3]
        } else {
            let hold = prefix[acc[j + 1].pos] - prefix[acc[j].pos];
            let g = before[j + 1];
            [g[0], g[0].min(hold + g[1]), (g[0] + 1.0).min(hold + g[2])]
        };
        after[j] = a;
        let x = acc[j];
        let loaded = if x.writes { a[2] } else { a[1] };
        before[j] = if x.input_load {
            [a[1]; 3]
        } else if x.from_input {
            // The input array still holds the value: folding or loading it
            // costs no stack access (writing it back there is not allowed).
            let miss = if x.writes { a[2] } else { a[1].min(a[0]) };
            [miss, loaded, a[2]]
        } else if !x.reads {
            let c = if x.foldable {
                a[2].min(1.0 + a[0])
            } else {
                a[2]
            };
            [c; 3]
        } else {
            let miss = 1.0 + if x.foldable { loaded.min(a[0]) } else { loaded };
            [miss, loaded, a[2]]
        };
    }
    // Follow the path forwards to count the registers it holds.
    let mut state = 0;
    for j in 0..m.saturating_sub(1) {
        let (x, a) = (acc[j], after[j]);
        let leaves = if x.input_load {
            1
        } else if x.from_input && state == 0 {
            if x.writes {
                2
            } else if a[0] <= a[1] {
                0
            } else {
                1
            }
        } else if !x.reads {
            if x.foldable && 1.0 + a[0] < a[2] {
                0
            } else {
                2
            }
        } else if state == 0 {
            let loaded = if x.writes { a[2] } else { a[1] };
            if x.foldable && a[0] < loaded {
                0
            } else if x.writes {
                2
            } else {
                1
            }
        } else if x.writes || state == 2 {
            2
        } else {
            1
        };
        let g = before[j + 1];
        let hold = prefix[acc[j + 1].pos] - prefix[x.pos];
        let keep = match leaves {
            1 => hold + g[1] < g[0],
            2 => hold + g[2] < g[0] + 1.0,
            _ => false,
        };
        state = if keep { leaves } else { 0 };
        if keep {
            occupancy[x.pos] += 1.0;
            occupancy[acc[j + 1].pos] -= 1.0;
        }
    }
    before[0][0]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args.next().map_or(10_000, |s| s.parse().expect("ops"));
    let iterations: usize = args.next().map_or(300, |s| s.parse().expect("iterations"));
    let input_memory = args.next().as_deref() == Some("--input-memory");
    let f = workload_b(ops);
    let k = MachineEnv::x86_64_sysv(false)
        .allocatable
        .class_mask(RegClass::Gp)
        .count_ones() as f64;
    // Accesses per value (workload B is one block of GP values).
    let mut acc: Vec<Vec<Access>> = vec![Vec::new(); f.num_vregs()];
    for i in 0..f.num_insts() {
        let ops = f.inst_operands(Inst::new(i));
        for (k, op) in ops.iter().enumerate() {
            if ops[..k].iter().any(|o| o.vreg == op.vreg) {
                continue;
            }
            let same = ops.iter().filter(|o| o.vreg == op.vreg);
            acc[op.vreg.index()].push(Access {
                pos: 2 * i,
                reads: same.clone().any(|o| o.is_use()),
                writes: same.clone().any(|o| o.is_def()),
                foldable: same.clone().count() == 1 && op.constraint == Constraint::Any,
                from_input: false,
                input_load: false,
            });
        }
    }
    if input_memory {
        // The first definition of each of the 64 values is its load from
        // the input array (it reads `p`); until the value is written again,
        // the array holds it.
        let is_load = |x: &Access| {
            let ops = f.inst_operands(Inst::new(x.pos / 2));
            x.writes && !x.reads && ops.iter().any(|o| o.is_use())
        };
        for a in acc.iter_mut().filter(|a| a.first().is_some_and(is_load)) {
            a[0].input_load = true;
            for x in a[1..].iter_mut() {
                x.from_input = true;
                if x.writes {
                    break;
                }
            }
        }
    }
    let positions = 2 * f.num_insts() + 1;
    let mut price = vec![20.0 / 1024.0; positions];
    let mut best = f64::MIN;
    for it in 0..iterations {
        let mut prefix = Vec::with_capacity(positions + 1);
        prefix.push(0.0);
        for p in &price {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + p);
        }
        let mut occ = vec![0.0; positions + 1];
        let total: f64 = acc.iter().map(|a| cheapest(a, &prefix, &mut occ)).sum();
        let bound = total - k * prefix[positions];
        best = best.max(bound);
        let step = 0.001 / (1.0 + it as f64 / 50.0);
        let mut held = 0.0;
        for (p, d) in price.iter_mut().zip(&occ) {
            held += d;
            *p = (*p + step * (held - k)).max(0.0);
        }
    }
    println!(
        "workload B ops={ops}: any allocation{} touches the stack at least {} times (Lagrangian bound after {iterations} price updates)",
        if input_memory {
            " that may also reload unchanged values from the input array"
        } else {
            ""
        },
        best.ceil()
    );
}
