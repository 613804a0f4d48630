//! x86 and x86-64: registers and operands, the instruction database, the
//! encoder and the [`Assembler`] with its typed ([`Instructions`]) and dynamic
//! ([`Assembler::emit`]) APIs.
//!
//! `use jitforge::x86::*;` brings the register constants, the operand
//! builders (`qword_ptr(rax + rcx * 8 + 16)`), the `Assembler` and the
//! `Instructions` trait into scope.
//!
//! The typed API checks operand kinds at compile time:
//!
//! ```
//! use jitforge::x86::*;
//! use jitforge::{Arch, CodeHolder};
//! let mut code = CodeHolder::new(Arch::X64);
//! let mut a = Assembler::new(&mut code);
//! a.add(eax, ecx)?;
//! a.vaddps(zmm0.k(k1).z(), zmm1, zmmword_ptr(rax + 64))?;
//! // The same instruction through the dynamic API, for code built at run time:
//! a.emit(Mnemonic::Add, &[eax.into(), ecx.into()])?;
//! # Ok::<(), jitforge::Error>(())
//! ```
//!
//! ```compile_fail
//! use jitforge::x86::*;
//! use jitforge::{Arch, CodeHolder};
//! let mut code = CodeHolder::new(Arch::X64);
//! let mut a = Assembler::new(&mut code);
//! a.add(eax, xmm0)?; // no form of `add` takes (r32, xmm): a compile error
//! # Ok::<(), jitforge::Error>(())
//! ```

mod assembler;
pub mod cpu;
pub mod db;
mod emitter;
pub(crate) mod encoder;
mod mem;
mod operand;
mod options;
mod reg;
pub mod text;
mod validate;

pub use assembler::{Assembler, Logger};
pub use db::{CpuFeature, Form, Instructions, Mnemonic, OperandKind};
pub use emitter::Emitter;
pub use encoder::FormPlans;
pub use mem::{
    IndexReg, IntoAddress, Mem, MemBase, ScaledIndex, byte_ptr, dword_ptr, fword_ptr, ptr,
    qword_ptr, tbyte_ptr, word_ptr, xmmword_ptr, ymmword_ptr, zmmword_ptr,
};
pub use operand::{Arg, Operand, class};
pub use options::{InstOptions, Rounding};
pub use reg::regs::*;
pub use reg::{
    BndReg, CrReg, Decorators, DrReg, Gp8, Gp8High, Gp8Low, Gp16, Gp32, Gp64, KReg, Mm, Reg,
    RegKind, Rip, SegReg, St, Tmm, Xmm, Ymm, Zmm,
};
pub use validate::{validate, validate_for_cpu};
