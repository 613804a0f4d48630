//! cargo-fuzz target `regalloc`: generated functions through the allocator
//! and the checker (a thin wrapper over `jitforge_regalloc::fuzzing`, which
//! the crate's tests also drive).
//!
//! Run: `cd fuzz && cargo +nightly fuzz run regalloc -- -max_total_time=1800`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Even first byte: a valid generated function, which must allocate and
    // pass the checker. Odd: an arbitrary (usually invalid) function, which
    // must give a typed error or a checked allocation, never a panic.
    match data.first() {
        Some(b) if b & 1 == 1 => {
            if let Err(e) = jitforge_regalloc::fuzzing::check_raw_bytes(&data[1..]) {
                panic!("{e}");
            }
        }
        _ => {
            if let Err(e) = jitforge_regalloc::fuzzing::check_bytes(data.get(1..).unwrap_or(&[])) {
                panic!("{e}");
            }
        }
    }
});
