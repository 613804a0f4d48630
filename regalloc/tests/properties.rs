//! Unit properties: parallel moves against parallel semantics, liveness
//! against a naive per-instruction dataflow, slot sharing never overlapping,
//! and the checker rejecting broken allocations.

use jitforge_regalloc::cfg::{CfgInfo, analyze};
use jitforge_regalloc::fuzzing::{generate, seeded_bytes};
use jitforge_regalloc::interval::Intervals;
use jitforge_regalloc::liveness::Liveness;
use jitforge_regalloc::moves::{ParallelMove, Scratch, sequentialize};
use jitforge_regalloc::spill::SlotAssigner;
use jitforge_regalloc::testfn::Builder;
use jitforge_regalloc::{
    Allocation, Allocator, Block, Edit, Function, Inst, Options, Output, PReg, RegClass, SpillSlot,
    checker,
};
use proptest::prelude::*;
use std::collections::HashMap;

fn loc(k: u8) -> Allocation {
    if k < 8 {
        Allocation::Reg(PReg::gp(k))
    } else {
        Allocation::Stack(SpillSlot::new((k - 8) as u32))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Sequenced moves give the same result as parallel moves; only the
    /// destinations and the scratch locations change.
    #[test]
    fn parallel_moves_match_parallel_semantics(
        pairs in proptest::collection::vec((0u8..14, 0u8..14), 0..14),
        has_swap in any::<bool>(),
    ) {
        let mut seen = std::collections::HashSet::new();
        let moves: Vec<ParallelMove> = pairs
            .iter()
            .filter(|(_, d)| seen.insert(*d))
            .map(|&(s, d)| ParallelMove { src: loc(s), dst: loc(d), vreg: None })
            .collect();
        let scratch = Scratch { reg: Some(PReg::gp(15)), slot: Some(SpillSlot::new(100)) };
        let mut out = Vec::new();
        sequentialize(&moves, RegClass::Gp, has_swap, scratch, &mut out).unwrap();
        let mut st: HashMap<Allocation, u32> = HashMap::new();
        let get = |st: &HashMap<Allocation, u32>, a: Allocation| -> u32 {
            *st.get(&a).unwrap_or(&match a {
                Allocation::Reg(r) => r.hw as u32,
                Allocation::Stack(s) => 1000 + s.number(),
                Allocation::None => u32::MAX,
            })
        };
        for e in &out {
            match *e {
                Edit::Move { from, to, .. } => {
                    prop_assert!(!matches!((from, to), (Allocation::Stack(_), Allocation::Stack(_))));
                    let v = get(&st, from);
                    st.insert(to, v);
                }
                Edit::Swap { a, b } => {
                    prop_assert!(has_swap);
                    let (va, vb) = (get(&st, Allocation::Reg(a)), get(&st, Allocation::Reg(b)));
                    st.insert(Allocation::Reg(a), vb);
                    st.insert(Allocation::Reg(b), va);
                }
                Edit::Remat { .. } => prop_assert!(false),
            }
        }
        let init = HashMap::new();
        for k in 0..14u8 {
            let l = loc(k);
            let want = match moves.iter().find(|m| m.dst == l) {
                Some(m) => get(&init, m.src),
                None => get(&init, l),
            };
            prop_assert_eq!(get(&st, l), want, "location {}", l);
        }
    }

    /// Slots are shared only by values whose live hulls are disjoint, and
    /// only within a class.
    #[test]
    fn slot_sharing_never_overlaps(
        hulls in proptest::collection::vec((0u32..200, 0u32..60, 0usize..2, any::<bool>()), 1..40),
    ) {
        let mut b = Builder::new();
        for &(_, _, c, _) in &hulls {
            b.vreg(RegClass::ALL[c]);
        }
        b.block();
        let v0 = jitforge_regalloc::VReg(0);
        b.inst(&[jitforge_regalloc::Operand::def(v0, jitforge_regalloc::Constraint::Reg)]);
        b.ret(v0);
        let f = b.finish();
        let mut ivs = Intervals::default();
        for &(s, len, _, _) in &hulls {
            ivs.start.push(s);
            ivs.end.push(s + len);
        }
        let mut sa = SlotAssigner::default();
        sa.reset(hulls.len() + 3);
        for (id, h) in hulls.iter().enumerate() {
            if h.3 {
                sa.touch(id as u32, 0);
            }
        }
        let mut slots = Vec::new();
        sa.assign(&f, &ivs, [8, 16, 8], &mut slots);
        for a in 0..hulls.len() {
            for b2 in 0..a {
                let (ma, mb) = (sa.map[a], sa.map[b2]);
                if ma == u32::MAX || ma != mb {
                    continue;
                }
                prop_assert_eq!(hulls[a].2, hulls[b2].2);
                let disjoint = ivs.end[a] < ivs.start[b2] || ivs.end[b2] < ivs.start[a];
                prop_assert!(disjoint, "v{} and v{} share slot {}", a, b2, ma);
            }
        }
        // Offsets are aligned and increasing with decreasing weight.
        for w in slots.windows(2) {
            prop_assert!(w[0].offset < w[1].offset && w[0].weight >= w[1].weight);
        }
    }
}

/// A generated function with its control-flow facts and liveness.
fn analyzed(seed: u64) -> (jitforge_regalloc::testfn::TestFunction, CfgInfo, Liveness) {
    let (f, env) = generate(&seeded_bytes(seed, 7, 1500));
    let mut cfg = CfgInfo::default();
    analyze(&f, &env, &mut cfg).unwrap();
    let mut live = Liveness::default();
    live.compute(&f, &cfg).unwrap();
    (f, cfg, live)
}

/// Live sets per block equal a naive per-instruction backward dataflow
/// iterated to a fixed point.
#[test]
fn liveness_matches_naive_dataflow() {
    for seed in 0..150 {
        let (f, _, live) = analyzed(seed);
        let nv = f.num_vregs();
        let nb = f.num_blocks();
        let mut live_in = vec![vec![false; nv]; nb];
        let mut live_out = vec![vec![false; nv]; nb];
        loop {
            let mut changed = false;
            for b in (0..nb).rev() {
                let blk = Block::new(b);
                let mut cur = vec![false; nv];
                for &s in f.block_succs(blk) {
                    for v in 0..nv {
                        cur[v] |= live_in[s.index()][v];
                    }
                }
                if cur != live_out[b] {
                    live_out[b] = cur.clone();
                    changed = true;
                }
                for i in f.block_insts(blk).iter().rev() {
                    for op in f.inst_operands(i) {
                        if op.is_def() && !op.is_use() {
                            cur[op.vreg.index()] = false;
                        }
                    }
                    for op in f.inst_operands(i) {
                        if op.is_use() {
                            cur[op.vreg.index()] = true;
                        }
                    }
                }
                if cur != live_in[b] {
                    live_in[b] = cur;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for b in 0..nb {
            let want_in: Vec<u32> = (0..nv as u32).filter(|&v| live_in[b][v as usize]).collect();
            let want_out: Vec<u32> = (0..nv as u32)
                .filter(|&v| live_out[b][v as usize])
                .collect();
            assert_eq!(
                live.live_in(Block::new(b)),
                &want_in[..],
                "seed {seed} live-in b{b}"
            );
            assert_eq!(
                live.live_out(Block::new(b)),
                &want_out[..],
                "seed {seed} live-out b{b}"
            );
        }
    }
}

/// Live ranges (with their holes) against per-instruction liveness: a
/// value's ranges contain instruction `i`'s early position exactly when the
/// value is live into `i`; ranges are sorted, disjoint and not adjacent; a
/// range crosses a call exactly when the value survives an instruction with
/// clobbers inside it.
#[test]
fn live_ranges_match_per_instruction_liveness() {
    let mut holes = 0;
    for seed in 0..150 {
        let (f, cfg, live) = analyzed(seed);
        let mut ivs = Intervals::default();
        ivs.compute(&f, &cfg, &live);
        let nv = f.num_vregs();
        // Per vreg, the late positions of the calls it survives.
        let mut survives: Vec<Vec<u32>> = vec![Vec::new(); nv];
        for b in 0..f.num_blocks() {
            let blk = Block::new(b);
            let mut cur = vec![false; nv];
            for &v in live.live_out(blk) {
                cur[v as usize] = true;
            }
            for i in f.block_insts(blk).iter().rev() {
                let ops = f.inst_operands(i);
                let killed = |v: usize| {
                    ops.iter()
                        .any(|o| o.vreg.index() == v && o.is_def() && !o.is_use())
                };
                if !f.inst_clobbers(i).is_empty() {
                    for v in 0..nv {
                        if cur[v] && !killed(v) {
                            survives[v].push(2 * i.0 + 1);
                        }
                    }
                }
                for op in ops {
                    if op.is_def() && !op.is_use() {
                        cur[op.vreg.index()] = false;
                    }
                }
                for op in ops {
                    if op.is_use() {
                        cur[op.vreg.index()] = true;
                    }
                }
                for (v, &is_live) in cur.iter().enumerate() {
                    assert_eq!(
                        ivs.live_at(jitforge_regalloc::VReg::new(v), 2 * i.0),
                        is_live,
                        "seed {seed} v{v} at {i}"
                    );
                }
            }
        }
        for (v, calls) in survives.iter().enumerate() {
            let r = ivs.ranges(jitforge_regalloc::VReg::new(v));
            for w in r.windows(2) {
                assert!(w[0].end + 1 < w[1].start, "seed {seed} v{v}: {r:?}");
            }
            holes += r.len().saturating_sub(1);
            for x in r {
                assert!(x.start <= x.end);
                let crosses = calls.iter().any(|&c| x.start <= c && c <= x.end);
                assert_eq!(x.crosses_call, crosses, "seed {seed} v{v}: {x:?}");
            }
            for &c in calls {
                assert!(r.iter().any(|x| x.start <= c && c <= x.end));
            }
        }
    }
    assert!(holes > 100, "only {holes} holes");
}

fn allocate_seed(
    seed: u64,
) -> (
    jitforge_regalloc::testfn::TestFunction,
    jitforge_regalloc::MachineEnv,
    Output,
) {
    let (f, env) = generate(&seeded_bytes(seed, 7, 2500));
    let mut out = Output::default();
    Allocator::new()
        .run(&f, &env, &Options::checked(), &mut out)
        .unwrap();
    (f, env, out)
}

/// Deleting a reload makes the checker fail.
#[test]
fn checker_rejects_missing_reloads() {
    let (mut tried, mut caught) = (0, 0);
    for seed in 0..200 {
        let (f, env, out) = allocate_seed(seed);
        let Some(k) = out.edits.iter().position(|(_, e)| {
            matches!(
                e,
                Edit::Move {
                    from: Allocation::Stack(_),
                    to: Allocation::Reg(_),
                    ..
                }
            )
        }) else {
            continue;
        };
        let mut bad = out.clone();
        bad.edits.remove(k);
        tried += 1;
        if checker::check(&f, &env, &bad).is_err() {
            caught += 1;
        }
    }
    assert!(tried > 50, "{tried}");
    assert!(caught * 100 >= tried * 95, "caught {caught} of {tried}");
}

/// Moving a use to another register makes the checker fail (unless that
/// register holds a copy of the same value).
#[test]
fn checker_rejects_wrong_registers() {
    let (mut tried, mut caught) = (0, 0);
    for seed in 0..200 {
        let (f, env, out) = allocate_seed(seed);
        let mut bad = out.clone();
        let mut done = false;
        for ii in (0..f.num_insts()).rev() {
            let i = Inst::new(ii);
            let ops = f.inst_operands(i);
            let base = out.inst_alloc_offsets[ii] as usize;
            for (k, op) in ops.iter().enumerate() {
                if let (true, Allocation::Reg(r)) = (op.is_use(), out.allocs[base + k])
                    && r.class == RegClass::Gp
                    && op.constraint == jitforge_regalloc::Constraint::Reg
                {
                    let other = if r.hw == 3 { 12 } else { 3 };
                    bad.allocs[base + k] = Allocation::Reg(PReg::gp(other));
                    done = true;
                    break;
                }
            }
            if done {
                break;
            }
        }
        if !done {
            continue;
        }
        tried += 1;
        if checker::check(&f, &env, &bad).is_err() {
            caught += 1;
        }
    }
    assert!(tried > 100);
    assert!(caught * 100 >= tried * 80, "caught {caught} of {tried}");
}

/// Forgetting to report a written callee-saved register fails the check.
#[test]
fn checker_rejects_unreported_callee_saved() {
    let mut tried = 0;
    for seed in 0..50 {
        let (f, env, out) = allocate_seed(seed);
        if out.used_callee_saved.is_empty() {
            continue;
        }
        let mut bad = out.clone();
        bad.used_callee_saved = jitforge_regalloc::PRegSet::empty();
        tried += 1;
        assert!(checker::check(&f, &env, &bad).is_err());
    }
    assert!(tried > 10);
}

/// The checker answers any corrupted output with a verdict, never a panic.
#[test]
fn checker_never_panics_on_corrupted_output() {
    for seed in 0..150u64 {
        let (f, env, out) = allocate_seed(seed);
        let bytes = seeded_bytes(seed + 1000, 7, 64);
        for (n, &b) in bytes.iter().enumerate() {
            let mut bad = out.clone();
            let pick = |len: usize| (b as usize * 7919 + n * 104729) % len.max(1);
            match b % 6 {
                0 if !bad.allocs.is_empty() => {
                    let k = pick(bad.allocs.len());
                    bad.allocs[k] = Allocation::Stack(SpillSlot::new(b as u32));
                }
                1 if !bad.inst_alloc_offsets.is_empty() => {
                    let k = pick(bad.inst_alloc_offsets.len());
                    bad.inst_alloc_offsets[k] = b as u32 * 3;
                }
                2 if !bad.edits.is_empty() => {
                    let k = pick(bad.edits.len());
                    bad.edits[k].1 = Edit::Move {
                        from: Allocation::Reg(PReg::new(RegClass::ALL[b as usize % 3], b % 40)),
                        to: Allocation::Stack(SpillSlot::new(b as u32 % 70)),
                        class: RegClass::Gp,
                        vreg: jitforge_regalloc::OptVReg::NONE,
                    };
                }
                3 => {
                    bad.edits.push((
                        jitforge_regalloc::ProgPoint::after(Inst::new(b as usize * 13)),
                        Edit::Remat {
                            vreg: jitforge_regalloc::VReg(b as u32),
                            to: PReg::gp(b % 33),
                        },
                    ));
                }
                4 => {
                    bad.edge_splits.push(jitforge_regalloc::EdgeSplit {
                        from: Block::new(b as usize % 7),
                        to: Block::new(b as usize % 5),
                        edits: vec![Edit::Swap {
                            a: PReg::gp(b % 34),
                            b: PReg::vec(3),
                        }],
                    });
                }
                _ => {
                    bad.slots.truncate(pick(bad.slots.len() + 1));
                }
            }
            let _ = checker::check(&f, &env, &bad);
        }
    }
}

/// A function that misstates its operand count ([`Function::num_operands`]).
struct MiscountedOperands {
    f: jitforge_regalloc::testfn::TestFunction,
    /// Added to the true count.
    off: isize,
}

impl Function for MiscountedOperands {
    jitforge_regalloc::forward_function_methods!(f);
    fn num_operands(&self) -> usize {
        self.f.num_operands().saturating_add_signed(self.off)
    }
}

/// A wrong operand count sends a one-block function the local allocator
/// would take to the general path, whose allocation the checker accepts;
/// the true count keeps it local.
#[test]
fn miscounted_operands_take_the_general_path() {
    let env = jitforge_regalloc::MachineEnv::x86_64_sysv(false);
    let mut ra = Allocator::new();
    for off in [0, -1, 1, -5, 5] {
        let f = MiscountedOperands {
            f: jitforge_regalloc::testfn::workload_b(300),
            off,
        };
        let mut out = Output::default();
        ra.run(&f, &env, &Options::checked(), &mut out).unwrap();
        assert_eq!(ra.took_local_path(), off == 0, "off {off}");
        checker::check(&f, &env, &out).unwrap();
    }
}
