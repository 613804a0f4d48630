//! Random programs compiled by the Compiler, run, and compared with an
//! interpreter (`jitforge::compiler::fuzzing::check_program`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = jitforge::compiler::fuzzing::check_program(data) {
        panic!("{e}");
    }
});
