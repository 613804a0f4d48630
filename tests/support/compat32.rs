//! The harness that runs 32-bit code natively from a 64-bit test process:
//! memory below 4 GB (code, stack and data must be reachable with 32-bit
//! addresses), the 64-bit thunk and the 32-bit trampolines. Shared by the
//! test files that run 32-bit code (`#[path = "support/compat32.rs"] mod compat32;`).

// Each test file uses part of the harness.
#![allow(dead_code)]
use jitforge::CodeHolder;

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

impl Compat32 {
    pub fn new() -> Compat32 {
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
        assert_ne!(base, libc::MAP_FAILED, "mmap MAP_32BIT");
        assert!((base as usize + SIZE) < 0x8000_0000, "mapping below 2 GB");
        let mut m = Compat32 {
            base: base as *mut u8,
        };
        m.write_thunks();
        m
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

    fn protect(&self, offset: usize, len: usize, prot: libc::c_int) {
        // SAFETY: page-aligned range inside the mapping.
        let rc = unsafe { libc::mprotect(self.base.add(offset) as *mut _, len, prot) };
        assert_eq!(rc, 0, "mprotect");
    }

    fn write_thunks(&mut self) {
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
        self.protect(THUNKS, PAGE, libc::PROT_READ | libc::PROT_EXEC);
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
    /// relocated, and makes it executable (never writable at once).
    pub fn load(&mut self, code: &CodeHolder) -> Result<(), jitforge::Error> {
        let len = code.code_size();
        let pages = len.div_ceil(PAGE).max(1) * PAGE;
        assert!(CODE + pages <= SIZE, "code too large for the test mapping");
        self.protect(CODE, SIZE - CODE, libc::PROT_READ | libc::PROT_WRITE);
        let base = self.code_address() as u64;
        code.relocate_to(base, self.bytes_mut(CODE, len))?;
        self.protect(CODE, SIZE - CODE, libc::PROT_READ | libc::PROT_EXEC);
        Ok(())
    }

    fn prepare(&mut self, target: u32, conv: Conv, args: &[u32], trampoline: usize) {
        let (regs, stack): (&[u32], &[u32]) = match conv {
            Conv::Stack => (&[], args),
            Conv::Fastcall => args.split_at(args.len().min(2)),
        };
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
    }

    fn enter(&mut self) -> u64 {
        // SAFETY: the thunk is the System V function written above; it
        // saves the callee-saved registers and rsp, and returns edx:eax.
        // The 32-bit code it runs is the test's; a wrong one faults.
        let thunk: extern "sysv64" fn() -> u64 =
            unsafe { core::mem::transmute(self.base.add(THUNK64)) };
        thunk()
    }

    /// Calls the 32-bit function at `target`; returns edx:eax.
    pub fn call(&mut self, target: u32, conv: Conv, args: &[u32]) -> u64 {
        self.prepare(target, conv, args, TRAMPOLINE_INT);
        self.enter()
    }

    /// Calls a 32-bit function returning a double in st0.
    pub fn call_f64(&mut self, target: u32, args: &[u32]) -> f64 {
        self.prepare(target, Conv::Stack, args, TRAMPOLINE_F64);
        self.enter();
        let b = self.bytes_mut(CONTROL + CTL_F64, 8);
        f64::from_le_bytes(b.try_into().unwrap())
    }

    /// Calls 64-bit code at `target` (in the same low mapping) directly.
    pub fn call64(&mut self, target: u32) {
        // SAFETY: the caller's code is a complete System V function
        // without arguments.
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
