//! The tests' handle on the library's compatibility-mode harness
//! (`jitforge::compiler::fuzzing::compat32`): the same calls, safe and
//! panicking on failure as tests do. Shared by the test files that run
//! 32-bit code (`#[path = "support/compat32.rs"] mod compat32;`).

// Each test file uses part of the harness.
#![allow(dead_code)]
use jitforge::CodeHolder;
use jitforge::compiler::fuzzing::compat32::Compat32 as Harness;
pub use jitforge::compiler::fuzzing::compat32::Conv;

/// The harness, its calls safe for the tests.
pub struct Compat32(Harness);

impl Compat32 {
    pub fn new() -> Compat32 {
        Compat32(Harness::new().expect("the 32-bit harness's memory"))
    }

    pub fn data_address(&self) -> u32 {
        self.0.data_address()
    }

    pub fn data(&mut self) -> &mut [u8] {
        self.0.data()
    }

    pub fn code_address(&self) -> u32 {
        self.0.code_address()
    }

    pub fn load(&mut self, code: &CodeHolder) -> Result<(), jitforge::Error> {
        self.0.load(code)
    }

    /// Calls the 32-bit function at `target`; returns edx:eax.
    pub fn call(&mut self, target: u32, conv: Conv, args: &[u32]) -> u64 {
        // SAFETY: the tests call the functions they loaded, complete
        // 32-bit functions of the convention they name; one that breaks
        // its convention faults (the test fails).
        unsafe { self.0.call(target, conv, args) }.expect("a call of up to 64 arguments")
    }

    /// Calls a 32-bit function returning a double in st0.
    pub fn call_f64(&mut self, target: u32, args: &[u32]) -> f64 {
        // SAFETY: as for `call`; the function returns a double in st0.
        unsafe { self.0.call_f64(target, args) }.expect("a call of up to 64 arguments")
    }

    /// Calls 64-bit code at `target` (in the same low mapping) directly.
    pub fn call64(&mut self, target: u32) {
        // SAFETY: the test loaded a complete System V function without
        // arguments at `target`.
        unsafe { self.0.call64(target) }
    }
}
