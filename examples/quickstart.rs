//! The smallest jitforge program: assemble `mov eax, 1; ret`, put it in
//! executable memory, call it and print what it returns.

use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, JitRuntime};
use std::process::ExitCode;

fn run() -> jitforge::Result<i32> {
    let runtime = JitRuntime::new()?;
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    a.mov(eax, 1)?;
    a.ret()?;
    let function = runtime.add(&code)?;
    // SAFETY: the code is a complete function with the C ABI that takes nothing and returns an int in eax.
    let entry: extern "C" fn() -> i32 = unsafe { function.function() };
    Ok(entry())
}

fn main() -> ExitCode {
    match run() {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
