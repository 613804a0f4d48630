//! A time-bounded fuzz run on stable Rust, for when cargo-fuzz (nightly) is
//! not at hand: generated functions from pseudo-random bytes through
//! `fuzzing::check_bytes` (valid functions, checker on),
//! `fuzzing::check_bytes_local` (valid functions of one block, local
//! allocator and general path, checker on) and
//! `fuzzing::check_raw_bytes` (arbitrary input, errors never panics), for
//! `REGALLOC_FUZZ_SECS` seconds. Ignored by default:
//!
//! `REGALLOC_FUZZ_SECS=1800 cargo test --release -p jitforge-regalloc --test long_run -- --ignored --nocapture`

use jitforge_regalloc::fuzzing::{check_bytes, check_bytes_local, check_raw_bytes};
use std::time::{Duration, Instant};

#[test]
#[ignore]
fn fuzz_for_a_while() {
    let secs: u64 = std::env::var("REGALLOC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut state = std::env::var("REGALLOC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let (mut checked, mut raw, mut insts) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let len = 16 + (next() % 4000) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match check_bytes(&data) {
            Ok(s) => insts += s.insts as u64,
            Err(e) => panic!("after {checked} functions: {e}\ninput: {data:?}"),
        }
        checked += 1;
        if let Err(e) = check_bytes_local(&data) {
            panic!("one block, after {checked} functions: {e}\ninput: {data:?}");
        }
        if let Err(e) = check_raw_bytes(&data) {
            panic!("raw input after {raw} runs: {e}\ninput: {data:?}");
        }
        raw += 1;
    }
    println!(
        "{checked} generated functions ({insts} instructions) allocated and checked, {raw} raw inputs"
    );
}
