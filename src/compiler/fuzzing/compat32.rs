//! Runs 32-bit code natively from a 64-bit Linux process (compatibility
//! mode): one mapping below 2 GB holds the code, a 32-bit stack and data
//! (every address fits a 32-bit register), a 64-bit thunk that far-calls
//! Linux's flat 32-bit code segment (selector 0x23), and 32-bit trampolines
//! that call the function in its convention and far-return. The
//! differential check of 32-bit programs ([`super::check_program32`]) and
//! the tests that run 32-bit code use it.

use crate::code::CodeHolder;
use crate::error::{Error, Result};
use crate::jit::JitError;

const PAGE: usize = 0x1000;
/// Thunks (read-execute after set-up).
const THUNKS: usize = 0;
const THUNK64: usize = THUNKS;
const TRAMPOLINE_INT: usize = THUNKS + 0x80;
const TRAMPOLINE_F64: usize = THUNKS + 0xC0;
/// The control block the thunks read and write (read-write).
const CONTROL: usize = PAGE;
const CTL_FAR_POINTER: usize = 0; // offset32, selector16
const CTL_SAVED_RSP: usize = 8;
const CTL_TARGET: usize = 16;
const CTL_ECX: usize = 20;
const CTL_EDX: usize = 24;
const CTL_STACK: usize = 28;
const CTL_F64: usize = 32;
/// The 32-bit stack: 32 KiB below `STACK_TOP`.
const STACK_TOP: usize = 10 * PAGE;
/// Data for the tests: 16 KiB.
const DATA: usize = 10 * PAGE;
const DATA_SIZE: usize = 4 * PAGE;
/// Code: the rest.
const CODE: usize = 14 * PAGE;
const SIZE: usize = 64 * PAGE;
/// Linux's flat 32-bit user code and data segments (`__USER32_CS`, `__USER_DS`).
const USER32_CS: u16 = 0x23;
const USER_DS: u8 = 0x2B;
/// The stack arguments a call may have (the 32 KiB stack holds far more;
/// a bound keeps the arguments and the callee's frame inside it).
const MAX_STACK_ARGS: usize = 64;

/// How the 32-bit function takes its arguments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Conv {
    /// All on the stack (cdecl and stdcall look the same to the caller
    /// here: the trampoline restores esp itself).
    Stack,
    /// The first two in ecx and edx, the rest on the stack (fastcall).
    Fastcall,
}

/// One low mapping with its own stack: not shared between threads
/// (calls take `&mut self`).
pub struct Compat32 {
    base: *mut u8,
}

/// The error of a failed system call, with its `errno`.
fn syscall_error(call: &'static str) -> Error {
    Error::Jit(JitError::Syscall {
        call,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    })
}

impl Compat32 {
    /// Maps the harness's memory below 2 GB and writes its thunks; fails
    /// with the system call's error (a kernel without 32-bit code segments
    /// only shows when code runs: the far call faults).
    pub fn new() -> Result<Compat32> {
        // SAFETY: an anonymous private mapping; MAP_32BIT puts it in the
        // low 2 GB, so every address in it fits a 32-bit register.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(syscall_error("mmap"));
        }
        // Dropped (unmapped) on the errors below.
        let mut m = Compat32 {
            base: base as *mut u8,
        };
        if (base as usize + SIZE) >= 0x8000_0000 {
            return Err(Error::InvalidArgument {
                message: "mmap MAP_32BIT returned memory above 2 GB".into(),
            });
        }
        m.write_thunks()?;
        Ok(m)
    }

    fn addr(&self, offset: usize) -> u32 {
        self.base as u32 + offset as u32
    }

    fn bytes_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        assert!(offset + len <= SIZE);
        // SAFETY: inside the mapping; callers only write the pages
        // that are read-write at that moment.
        unsafe { core::slice::from_raw_parts_mut(self.base.add(offset), len) }
    }

    fn protect(&self, offset: usize, len: usize, prot: libc::c_int) -> Result<()> {
        // SAFETY: page-aligned range inside the mapping.
        let rc = unsafe { libc::mprotect(self.base.add(offset) as *mut _, len, prot) };
        if rc == 0 {
            Ok(())
        } else {
            Err(syscall_error("mprotect"))
        }
    }

    fn write_thunks(&mut self) -> Result<()> {
        let ctl = self.addr(CONTROL);
        let d = |off: usize| (ctl + off as u32).to_le_bytes();
        let mut t64 = vec![
            0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41,
            0x57, // push rbx, rbp, r12-r15
        ];
        // The upper halves of registers are undefined after a round
        // trip through compatibility mode: rsp is kept in memory.
        t64.extend([0x48, 0x89, 0x24, 0x25]); // mov [ctl.saved_rsp], rsp
        t64.extend(d(CTL_SAVED_RSP));
        t64.extend([0x8B, 0x24, 0x25]); // mov esp, [ctl.stack]
        t64.extend(d(CTL_STACK));
        t64.extend([0xFF, 0x1C, 0x25]); // call far [ctl.far_pointer] (m16:32)
        t64.extend(d(CTL_FAR_POINTER));
        t64.extend([0x48, 0x8B, 0x24, 0x25]); // mov rsp, [ctl.saved_rsp]
        t64.extend(d(CTL_SAVED_RSP));
        t64.extend([
            0x89, 0xC0, // mov eax, eax
            0x89, 0xD2, // mov edx, edx
            0x48, 0xC1, 0xE2, 0x20, // shl rdx, 32
            0x48, 0x09, 0xD0, // or rax, rdx
            0x41, 0x5F, 0x41, 0x5E, 0x41, 0x5D, 0x41, 0x5C, 0x5D, 0x5B, // pop r15..rbx
            0xC3, // ret
        ]);
        let trampoline = |store_st0: bool| {
            let mut t = vec![
                0x6A, USER_DS, 0x1F, // push ds selector; pop ds
                0x6A, USER_DS, 0x07, // pop es
                0x5E, // pop esi: the far return's eip
                0x5F, // pop edi: the far return's cs
                0x89, 0xE3, // mov ebx, esp: the arguments (esi, edi, ebx are callee-saved)
                0x8B, 0x0D,
            ];
            t.extend(d(CTL_ECX)); // mov ecx, [ctl.ecx]
            t.extend([0x8B, 0x15]);
            t.extend(d(CTL_EDX)); // mov edx, [ctl.edx]
            t.extend([0xFF, 0x15]);
            t.extend(d(CTL_TARGET)); // call [ctl.target]
            if store_st0 {
                t.extend([0xDD, 0x1D]);
                t.extend(d(CTL_F64)); // fstp qword [ctl.f64]
            }
            t.extend([
                0x89, 0xDC, // mov esp, ebx (cdecl or stdcall: the same afterwards)
                0x57, 0x56, // push edi; push esi
                0xCB, // retf
            ]);
            t
        };
        let (ti, tf) = (trampoline(false), trampoline(true));
        assert!(t64.len() <= TRAMPOLINE_INT && ti.len() <= 0x40 && tf.len() <= 0x40);
        self.bytes_mut(THUNK64, t64.len()).copy_from_slice(&t64);
        self.bytes_mut(TRAMPOLINE_INT, ti.len())
            .copy_from_slice(&ti);
        self.bytes_mut(TRAMPOLINE_F64, tf.len())
            .copy_from_slice(&tf);
        self.protect(THUNKS, PAGE, libc::PROT_READ | libc::PROT_EXEC)
    }

    /// The data area's address (16 KiB, read-write, below 2 GB).
    pub fn data_address(&self) -> u32 {
        self.addr(DATA)
    }

    /// The data area.
    pub fn data(&mut self) -> &mut [u8] {
        self.bytes_mut(DATA, DATA_SIZE)
    }

    /// The address the next [`load`](Self::load) places code at.
    pub fn code_address(&self) -> u32 {
        self.addr(CODE)
    }

    /// Lays `code` out at [`code_address`](Self::code_address),
    /// relocated, and makes it executable (never writable at once). Fails
    /// if the code is larger than the harness's 200 KiB of code space.
    pub fn load(&mut self, code: &CodeHolder) -> Result<()> {
        let len = code.code_size();
        if CODE + len > SIZE {
            return Err(Error::InvalidArgument {
                message: format!(
                    "the code is {len} bytes, the 32-bit harness holds {}",
                    SIZE - CODE
                ),
            });
        }
        self.protect(CODE, SIZE - CODE, libc::PROT_READ | libc::PROT_WRITE)?;
        let base = self.code_address() as u64;
        let relocated = code.relocate_to(base, self.bytes_mut(CODE, len));
        self.protect(CODE, SIZE - CODE, libc::PROT_READ | libc::PROT_EXEC)?;
        relocated
    }

    /// Sets up a call of `target` through `trampoline`. Fails if the
    /// stack arguments do not fit the control block's view of the stack.
    fn prepare(&mut self, target: u32, conv: Conv, args: &[u32], trampoline: usize) -> Result<()> {
        let (regs, stack): (&[u32], &[u32]) = match conv {
            Conv::Stack => (&[], args),
            Conv::Fastcall => args.split_at(args.len().min(2)),
        };
        if stack.len() > MAX_STACK_ARGS {
            return Err(Error::InvalidArgument {
                message: format!(
                    "{} stack arguments, the 32-bit harness passes up to {MAX_STACK_ARGS}",
                    stack.len()
                ),
            });
        }
        // The i386 psABI: the arguments start 16-byte aligned at the call.
        let sp = (STACK_TOP - 4 * stack.len()) & !15;
        for (i, a) in stack.iter().enumerate() {
            self.bytes_mut(sp + 4 * i, 4)
                .copy_from_slice(&a.to_le_bytes());
        }
        let tramp = self.addr(trampoline);
        let sp_addr = self.addr(sp);
        let ctl = self.bytes_mut(CONTROL, 64);
        ctl[CTL_FAR_POINTER..CTL_FAR_POINTER + 4].copy_from_slice(&tramp.to_le_bytes());
        ctl[CTL_FAR_POINTER + 4..CTL_FAR_POINTER + 6].copy_from_slice(&USER32_CS.to_le_bytes());
        ctl[CTL_TARGET..CTL_TARGET + 4].copy_from_slice(&target.to_le_bytes());
        let reg = |i: usize| regs.get(i).copied().unwrap_or(0).to_le_bytes();
        ctl[CTL_ECX..CTL_ECX + 4].copy_from_slice(&reg(0));
        ctl[CTL_EDX..CTL_EDX + 4].copy_from_slice(&reg(1));
        ctl[CTL_STACK..CTL_STACK + 4].copy_from_slice(&sp_addr.to_le_bytes());
        Ok(())
    }

    /// Runs the call [`prepare`](Self::prepare) set up.
    ///
    /// # Safety
    ///
    /// The function called must be as [`call`](Self::call) requires.
    unsafe fn enter(&mut self) -> u64 {
        // SAFETY: the thunk is the System V function written above; it
        // saves the callee-saved registers and rsp, and returns edx:eax.
        // The 32-bit code it runs is the caller's, sound by its promise.
        let thunk: extern "sysv64" fn() -> u64 =
            unsafe { core::mem::transmute(self.base.add(THUNK64)) };
        thunk()
    }

    /// Calls the 32-bit function at `target` with `args` (up to 64 on the
    /// stack); returns edx:eax.
    ///
    /// # Safety
    ///
    /// `target` must be a complete 32-bit function loaded by
    /// [`load`](Self::load) that takes `args` in `conv`, preserves ebx,
    /// esi, edi and the stack pointer as its convention says, and touches
    /// no memory but its stack and the harness's data.
    pub unsafe fn call(&mut self, target: u32, conv: Conv, args: &[u32]) -> Result<u64> {
        self.prepare(target, conv, args, TRAMPOLINE_INT)?;
        // SAFETY: the caller's promise.
        Ok(unsafe { self.enter() })
    }

    /// Calls a 32-bit function with `args` on the stack that returns a
    /// double in st0.
    ///
    /// # Safety
    ///
    /// As [`call`](Self::call), and the function leaves its result (only)
    /// on the x87 stack.
    pub unsafe fn call_f64(&mut self, target: u32, args: &[u32]) -> Result<f64> {
        self.prepare(target, Conv::Stack, args, TRAMPOLINE_F64)?;
        // SAFETY: the caller's promise.
        unsafe { self.enter() };
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.bytes_mut(CONTROL + CTL_F64, 8));
        Ok(f64::from_le_bytes(bytes))
    }

    /// Calls 64-bit code at `target` (in the same low mapping) directly.
    ///
    /// # Safety
    ///
    /// `target` must be a complete System V function without arguments
    /// loaded by [`load`](Self::load).
    pub unsafe fn call64(&mut self, target: u32) {
        // SAFETY: the caller promises a System V function without arguments.
        let f: extern "sysv64" fn() = unsafe { core::mem::transmute(target as usize) };
        f()
    }
}

impl Drop for Compat32 {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.base as *mut _, SIZE) };
    }
}
