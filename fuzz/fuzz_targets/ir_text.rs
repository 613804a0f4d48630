//! The IR text parser never panics (`jitforge_ir::text::fuzz_text`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jitforge_ir::text::fuzz_text(data);
});
