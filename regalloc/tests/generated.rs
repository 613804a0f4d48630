//! Generated functions through the allocator and the checker: proptest over
//! byte strings, plus a fixed sweep of pseudo-random inputs.

use jitforge_regalloc::fuzzing::{check_bytes, check_bytes_local, seeded_bytes, sweep_input};
use proptest::prelude::*;

#[test]
fn sweep_generated_functions() {
    let n: u64 = std::env::var("REGALLOC_SWEEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut insts = 0;
    for seed in 0..n {
        match check_bytes(&sweep_input(seed)) {
            Ok(s) => insts += s.insts,
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(insts > 0);
}

/// Functions of one block, through the local allocator (checked) and the
/// general path (checked); most must take the local one.
#[test]
fn sweep_one_block_functions() {
    let n: u64 = std::env::var("REGALLOC_SWEEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let (mut local, mut stats) = (0, jitforge_regalloc::Stats::default());
    for seed in 0..n {
        match check_bytes_local(&sweep_input(seed)) {
            Ok((s, took)) => {
                local += took as u64;
                stats.stores += s.stats.stores;
                stats.folded += s.stats.folded;
                stats.remats += s.stats.remats;
                stats.moves += s.stats.moves;
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    println!("{local} of {n} local: {stats}");
    assert!(
        local * 2 > n,
        "only {local} of {n} took the local allocator"
    );
    assert!(stats.stores > 0 && stats.folded > 0 && stats.remats > 0 && stats.moves > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn proptest_one_block_functions(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        if let Err(e) = check_bytes_local(&data) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn proptest_generated_functions(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        if let Err(e) = check_bytes(&data) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// The generator must reach the interesting paths: spills, folds, remats,
/// edge splits, moves, swaps.
#[test]
fn generator_covers_features() {
    let mut total = jitforge_regalloc::Stats::default();
    let mut max_blocks = 0;
    for seed in 0..300u64 {
        let s = check_bytes(&seeded_bytes(seed, 1, 3000)).unwrap();
        total.stores += s.stats.stores;
        total.reloads += s.stats.reloads;
        total.folded += s.stats.folded;
        total.remats += s.stats.remats;
        total.moves += s.stats.moves;
        total.swaps += s.stats.swaps;
        total.edge_splits += s.stats.edge_splits;
        max_blocks = max_blocks.max(s.blocks);
    }
    println!("{total} max_blocks={max_blocks}");
    assert!(total.stores > 0 && total.reloads > 0 && total.folded > 0);
    assert!(total.remats > 0 && total.moves > 0 && total.edge_splits > 0);
    assert!(max_blocks > 40);
}

#[test]
fn sweep_raw_functions_never_panic() {
    let mut ok = 0;
    let n: u64 = std::env::var("REGALLOC_RAW_SWEEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    for seed in 0..n {
        let data = seeded_bytes(seed, 1, 200);
        if let Err(e) = jitforge_regalloc::fuzzing::check_raw_bytes(&data) {
            panic!("seed {seed}: {e}");
        }
        ok += 1;
    }
    assert_eq!(ok, n);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn proptest_raw_functions(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Err(e) = jitforge_regalloc::fuzzing::check_raw_bytes(&data) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Inputs that once failed under cargo-fuzz (the fuzz target's first byte
/// selects raw mode when odd).
#[test]
fn fuzz_regressions() {
    let cases: [&[u8]; 1] = [include_bytes!("data/fuzz-raw-remat-in-slot.bin")];
    for data in cases {
        let r = if data[0] & 1 == 1 {
            jitforge_regalloc::fuzzing::check_raw_bytes(&data[1..])
        } else {
            check_bytes(&data[1..]).map(|_| ())
        };
        if let Err(e) = r {
            panic!("{e}");
        }
    }
}
