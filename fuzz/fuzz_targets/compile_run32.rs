//! Random 32-bit programs compiled by the Compiler (`Arch::X86`), run in
//! compatibility mode, and compared with an interpreter
//! (`jitforge::compiler::fuzzing::check_program32`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = jitforge::compiler::fuzzing::check_program32(data) {
        panic!("{e}");
    }
});
