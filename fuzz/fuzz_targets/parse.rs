//! cargo-fuzz target `parse`: arbitrary bytes through the Intel-syntax parser
//! and the program and line assemblers, in 64- and 32-bit mode (a thin
//! wrapper over `jitforge::x86::text::fuzz_parse`, which `tests/text.rs` also
//! drives for a bounded time). Any panic is a bug.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run parse -- -max_total_time=1800`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jitforge::x86::text::fuzz_parse(data);
});
