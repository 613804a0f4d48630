//! 32-bit code built by the Assembler, run natively: this 64-bit test
//! process switches the CPU to compatibility mode (Linux's flat 32-bit code
//! segment, selector 0x23) with a far call, runs the function there, and
//! comes back with a far return. The decoders already check every 32-bit
//! encoding byte by byte; running the code checks what they cannot: that a
//! function built for `Arch::X86` (its calling conventions, relocations,
//! jump tables, x87 and SSE results, the opcodes that exist only in 32-bit
//! mode, `inc`/`dec` in their one-byte forms) does what it says on a real CPU.
//!
//! A differential test runs random instruction sequences on 32-bit registers
//! assembled for both modes: the same instructions mean the same thing in
//! both, so the registers and flags they leave must be equal.

#![cfg(all(target_arch = "x86_64", target_os = "linux", feature = "compiler"))]

use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error};

/// The harness: see its file.
#[path = "support/compat32.rs"]
mod compat32;

use compat32::{Compat32, Conv};

/// Assembles `body` for 32-bit mode and loads it; returns the entry address.
fn load32(
    m: &mut Compat32,
    body: impl FnOnce(&mut Assembler<'_>) -> Result<(), Error>,
) -> Result<u32, Error> {
    let mut code = CodeHolder::new(Arch::X86);
    let mut a = Assembler::new(&mut code);
    body(&mut a)?;
    m.load(&code)?;
    Ok(m.code_address())
}

#[test]
fn cdecl_stdcall_and_fastcall_arguments() -> Result<(), Error> {
    let mut m = Compat32::new();
    let f = load32(&mut m, |a| {
        a.mov(eax, dword_ptr(esp + 4))?;
        a.sub(eax, dword_ptr(esp + 8))?;
        a.imul_2(eax, dword_ptr(esp + 12))?;
        a.ret()
    })?;
    assert_eq!(m.call(f, Conv::Stack, &[50, 8, 3]) as u32, 126);
    // stdcall: the callee pops its arguments; the caller's esp still holds.
    let f = load32(&mut m, |a| {
        a.mov(eax, dword_ptr(esp + 4))?;
        a.xor_(eax, dword_ptr(esp + 8))?;
        a.ret_1(8)
    })?;
    assert_eq!(m.call(f, Conv::Stack, &[0xF0F0, 0x0FF0]) as u32, 0xFF00);
    let f = load32(&mut m, |a| {
        a.lea(eax, dword_ptr(ecx + edx * 2))?;
        a.add(eax, dword_ptr(esp + 4))?;
        a.ret_1(4)
    })?;
    assert_eq!(m.call(f, Conv::Fastcall, &[1000, 20, 3]) as u32, 1043);
    Ok(())
}

#[test]
fn sixty_four_bit_results_in_edx_eax() -> Result<(), Error> {
    let mut m = Compat32::new();
    let f = load32(&mut m, |a| {
        a.mov(eax, dword_ptr(esp + 4))?;
        a.mul(dword_ptr(esp + 8))?;
        a.ret()
    })?;
    let (x, y) = (0xDEAD_BEEFu32, 0x1234_5678u32);
    assert_eq!(m.call(f, Conv::Stack, &[x, y]), x as u64 * y as u64);
    // A 64-bit add with carry, the way 32-bit code does 64-bit arithmetic.
    let f = load32(&mut m, |a| {
        a.mov(eax, dword_ptr(esp + 4))?;
        a.mov(edx, dword_ptr(esp + 8))?;
        a.add(eax, dword_ptr(esp + 12))?;
        a.adc(edx, dword_ptr(esp + 16))?;
        a.ret()
    })?;
    let (p, q) = (0x0000_0001_FFFF_FFFFu64, 0x0000_0002_0000_0001u64);
    let args = [p as u32, (p >> 32) as u32, q as u32, (q >> 32) as u32];
    assert_eq!(m.call(f, Conv::Stack, &args), p + q);
    Ok(())
}

/// Callee-saved registers, a loop over memory with short and near jumps,
/// and `pushad`/`popad`, which exist only in 32-bit mode.
#[test]
fn loop_over_memory_with_callee_saved_registers() -> Result<(), Error> {
    let mut m = Compat32::new();
    let data = m.data_address();
    for (i, w) in m.data().chunks_mut(4).take(100).enumerate() {
        w.copy_from_slice(&((i as u32) * 3 + 1).to_le_bytes());
    }
    for near in [false, true] {
        let f = load32(&mut m, |a| {
            a.pushad()?;
            a.mov(esi, dword_ptr(esp + 36))?; // pointer (8 saved registers above it)
            a.mov(ecx, dword_ptr(esp + 40))?; // count
            a.xor_(ebx, ebx)?;
            a.xor_(edi, edi)?;
            let (top, done) = (a.new_label(), a.new_label());
            a.test(ecx, ecx)?;
            if near {
                a.long().je(done)?;
            } else {
                a.je(done)?;
            }
            a.bind(top)?;
            a.add(ebx, dword_ptr(esi + edi * 4))?;
            a.inc(edi)?;
            a.cmp(edi, ecx)?;
            if near {
                a.long().jb(top)?;
            } else {
                a.jb(top)?;
            }
            a.bind(done)?;
            // popad restores eax too: pass the sum through the saved eax slot.
            a.mov(dword_ptr(esp + 28), ebx)?;
            a.popad()?;
            a.ret()
        })?;
        let expected: u32 = (0..100u32).map(|i| i * 3 + 1).sum();
        assert_eq!(m.call(f, Conv::Stack, &[data, 100]) as u32, expected);
        assert_eq!(m.call(f, Conv::Stack, &[data, 0]) as u32, 0);
    }
    Ok(())
}

/// A jump table of absolute 32-bit label addresses (relocations applied for
/// the load address), a call to a label, and recursion.
#[test]
fn jump_table_calls_and_recursion() -> Result<(), Error> {
    let mut m = Compat32::new();
    let f = load32(&mut m, |a| {
        let (table, fib, cases) = (a.new_label(), a.new_label(), [0; 4].map(|_| a.new_label()));
        let end = a.new_label();
        // entry(k, n): case k of { fib(n), n*2, n+100, -n }
        a.mov(eax, dword_ptr(esp + 4))?;
        a.and_(eax, 3)?;
        a.mov(ecx, dword_ptr(esp + 8))?;
        a.jmp(dword_ptr((table + 0) + eax * 4))?;
        a.bind(cases[0])?;
        a.push(ecx)?;
        a.call(fib)?;
        a.add(esp, 4)?;
        a.jmp(end)?;
        a.bind(cases[1])?;
        a.lea(eax, dword_ptr(ecx + ecx))?;
        a.jmp(end)?;
        a.bind(cases[2])?;
        a.lea(eax, dword_ptr(ecx + 100))?;
        a.jmp(end)?;
        a.bind(cases[3])?;
        a.mov(eax, ecx)?;
        a.neg(eax)?;
        a.bind(end)?;
        a.ret()?;
        // fib(n) = n < 2 ? n : fib(n-1) + fib(n-2), cdecl, recursive.
        a.bind(fib)?;
        a.push(ebx)?;
        a.push(esi)?;
        a.mov(ebx, dword_ptr(esp + 12))?;
        a.mov(eax, ebx)?;
        a.cmp(ebx, 2)?;
        let base = a.new_label();
        a.jb(base)?;
        a.lea(eax, dword_ptr(ebx - 1))?;
        a.push(eax)?;
        a.call(fib)?;
        a.add(esp, 4)?;
        a.mov(esi, eax)?;
        a.lea(eax, dword_ptr(ebx - 2))?;
        a.push(eax)?;
        a.call(fib)?;
        a.add(esp, 4)?;
        a.add(eax, esi)?;
        a.bind(base)?;
        a.pop(esi)?;
        a.pop(ebx)?;
        a.ret()?;
        a.align(4)?;
        a.bind(table)?;
        for c in cases {
            a.embed_label(c)?;
        }
        Ok(())
    })?;
    let fib = |n: u32| (0..n).fold((0u32, 1u32), |(x, y), _| (y, x + y)).0;
    for n in [0u32, 1, 2, 10, 20] {
        assert_eq!(m.call(f, Conv::Stack, &[0, n]) as u32, fib(n), "fib({n})");
    }
    assert_eq!(m.call(f, Conv::Stack, &[1, 21]) as u32, 42);
    assert_eq!(m.call(f, Conv::Stack, &[2, 21]) as u32, 121);
    assert_eq!(
        m.call(f, Conv::Stack, &[3, 21]) as u32,
        21u32.wrapping_neg()
    );
    Ok(())
}

/// x87 results in st0 (the 32-bit conventions' float return), SSE2 on
/// 32-bit mode's eight xmm registers, and BCD adjustment (32-bit only).
#[test]
fn x87_sse_and_bcd() -> Result<(), Error> {
    let mut m = Compat32::new();
    let f = load32(&mut m, |a| {
        a.fld(qword_ptr(esp + 4))?;
        a.fld(qword_ptr(esp + 12))?;
        a.fmulp(st1, st0)?;
        a.ret()
    })?;
    let (x, y) = (1.5f64, -2.25f64);
    let (xb, yb) = (x.to_bits(), y.to_bits());
    let args = [xb as u32, (xb >> 32) as u32, yb as u32, (yb >> 32) as u32];
    assert_eq!(m.call_f64(f, &args), x * y);
    let f = load32(&mut m, |a| {
        a.movd(xmm0, dword_ptr(esp + 4))?;
        a.movd(xmm7, dword_ptr(esp + 8))?;
        a.pshufd(xmm0, xmm0, 0)?;
        a.pshufd(xmm7, xmm7, 0)?;
        a.pmulld(xmm0, xmm7)?;
        a.paddd(xmm0, xmm0)?;
        a.movd(eax, xmm0)?;
        a.ret()
    })?;
    assert_eq!(m.call(f, Conv::Stack, &[7, 6]) as u32, 84);
    let f = load32(&mut m, |a| {
        a.mov(eax, dword_ptr(esp + 4))?;
        a.add(al, byte_ptr(esp + 8))?;
        a.daa()?;
        a.movzx(eax, al)?;
        a.ret()
    })?;
    assert_eq!(m.call(f, Conv::Stack, &[0x19, 0x28]) as u32, 0x47);
    assert_eq!(m.call(f, Conv::Stack, &[0x55, 0x27]) as u32, 0x82);
    Ok(())
}

// ---- differential: the same instructions in 32-bit and 64-bit mode ----

/// The registers a random program uses (not esp).
const REGS: [Gp32; 7] = [eax, ecx, edx, ebx, esi, edi, ebp];
/// The eight 8-bit registers both modes share (ah..bh need no REX).
fn reg8(r: &mut Rng) -> Operand {
    let low = [al, cl, dl, bl];
    let high = [ah, ch, dh, bh];
    let i = r.below(8);
    if i < 4 {
        low[i].into()
    } else {
        high[i - 4].into()
    }
}

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

/// A random register of [`REGS`].
fn random_reg(r: &mut Rng) -> Gp32 {
    REGS[r.below(REGS.len())]
}

/// One random instruction whose meaning is the same in both modes:
/// 8/16/32-bit ALU, shifts, multiplies, moves with extension, conditional
/// moves and sets, bit tests, `inc`/`dec` (one byte in 32-bit mode, FF /0
/// in 64-bit mode), and loads and stores to the scratch area.
fn random_instruction(r: &mut Rng, scratch: u32) -> (Mnemonic, Vec<Operand>) {
    use Mnemonic::*;
    let (x, y) = (random_reg(r), random_reg(r));
    let imm = (r.next() as u32 as i32) >> r.below(32);
    let slot = dword_ptr((scratch + 4 * r.below(16) as u32) as i32);
    let alu = [Add, Sub, And, Or, Xor, Adc, Sbb, Cmp, Test];
    let o = |v: Gp32| Operand::from(v);
    match r.below(16) {
        0 => (alu[r.below(alu.len())], vec![o(x), o(y)]),
        1 => (
            alu[r.below(alu.len())],
            vec![o(x), Operand::Imm(imm as i64)],
        ),
        2 => ([Inc, Dec, Neg, Not, Bswap][r.below(5)], vec![o(x)]),
        3 => (
            [Shl, Shr, Sar, Rol, Ror, Rcl, Rcr][r.below(7)],
            vec![o(x), Operand::Imm(r.below(32) as i64)],
        ),
        4 => (
            [Shl, Shr, Sar, Rol, Ror][r.below(5)],
            vec![o(x), Operand::from(cl)],
        ),
        5 => (Imul, vec![o(x), o(y), Operand::Imm(imm as i64)]),
        6 => (Imul, vec![o(x), o(y)]),
        7 => ([Movzx, Movsx][r.below(2)], vec![o(x), reg8(r)]),
        8 => (
            [Cmove, Cmovb, Cmovl, Cmovs, Cmovo, Cmovp][r.below(6)],
            vec![o(x), o(y)],
        ),
        9 => ([Sete, Setb, Setle, Seto][r.below(4)], vec![reg8(r)]),
        10 => ([Add, Sub, Xor, Adc][r.below(4)], vec![reg8(r), reg8(r)]),
        11 => (
            [Add, Xor, Rol][r.below(3)],
            vec![Operand::from(x.r16()), Operand::Imm(r.below(16) as i64)],
        ),
        12 => ([Bt, Bts, Btr, Btc][r.below(4)], vec![o(x), o(y)]),
        13 => (Mov, vec![o(x), Operand::Mem(slot)]),
        14 => ([Mov, Add, Xor][r.below(3)], vec![Operand::Mem(slot), o(x)]),
        _ => (
            Lea,
            vec![
                o(x),
                Operand::Mem(dword_ptr(y + REGS[r.below(7)] * (1 << r.below(4)) + imm)),
            ],
        ),
    }
}

/// The arithmetic flags: CF, PF, AF, ZF, SF, OF.
const FLAGS: u32 = 0x8D5;

/// Loads the registers from `input` and the arithmetic flags from `flags`,
/// runs `program`, stores the registers and the arithmetic flags to
/// `output`, in either mode.
fn differential_function(
    arch: Arch,
    program: &[(Mnemonic, Vec<Operand>)],
    input: u32,
    flags: u32,
    output: u32,
) -> Result<CodeHolder, Error> {
    let mut code = CodeHolder::new(arch);
    let mut a = Assembler::new(&mut code);
    let saved: &[Gp32] = match arch {
        Arch::X86 => &[ebx, esi, edi, ebp],
        Arch::X64 => &[],
    };
    match arch {
        Arch::X86 => saved.iter().try_for_each(|&g| a.push(g))?,
        Arch::X64 => {
            a.push(rbx)?;
            a.push(rbp)?;
        }
    }
    for (i, &g) in REGS.iter().enumerate() {
        a.mov(g, dword_ptr((input + 4 * i as u32) as i32))?;
    }
    // The flags a program starts with are the test's, not whatever the
    // caller left (a `cmove` first reads them): bit 1 is always set, IF
    // stays as it is (popf at CPL 3 keeps it), DF and TF clear.
    a.emit(
        Mnemonic::Push,
        &[Operand::Imm(i64::from(0x202 | (flags & FLAGS)))],
    )?;
    match arch {
        Arch::X86 => a.popfd()?,
        Arch::X64 => a.popfq()?,
    }
    for (m, ops) in program {
        a.emit(*m, ops).map_err(|e| Error::InvalidArgument {
            message: format!("{m:?} {ops:?}: {e}"),
        })?;
    }
    for (i, &g) in REGS.iter().enumerate() {
        a.mov(dword_ptr((output + 4 * i as u32) as i32), g)?;
    }
    match arch {
        Arch::X86 => {
            a.pushfd()?;
            a.pop(eax)?;
        }
        Arch::X64 => {
            a.pushfq()?;
            a.pop(rax)?;
        }
    }
    a.mov(dword_ptr((output + 28) as i32), eax)?;
    match arch {
        Arch::X86 => saved.iter().rev().try_for_each(|&g| a.pop(g))?,
        Arch::X64 => {
            a.pop(rbp)?;
            a.pop(rbx)?;
        }
    }
    a.ret()?;
    Ok(code)
}

#[test]
fn random_programs_mean_the_same_in_both_modes() -> Result<(), Error> {
    let mut m = Compat32::new();
    let data = m.data_address();
    let (input, scratch, output) = (data, data + 0x100, data + 0x200);
    let mut rng = Rng(0x5EED_0032);
    let cases = rng::cases("COMPAT32_CASES", 3000);
    for case in 0..cases {
        let len = 1 + rng.below(40);
        let program: Vec<_> = (0..len)
            .map(|_| random_instruction(&mut rng, scratch))
            .collect();
        let start: Vec<u32> = (0..7 + 16)
            .map(|_| rng.next() as u32 ^ (rng.next() << 31) as u32)
            .collect();
        let mut results = Vec::new();
        for arch in [Arch::X86, Arch::X64] {
            let d = m.data();
            for (i, v) in start.iter().enumerate() {
                // Registers at `input`, the scratch slots at `scratch`.
                let at = if i < 7 { 4 * i } else { 0x100 + 4 * (i - 7) };
                d[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            let code = differential_function(arch, &program, input, start[0], output)?;
            m.load(&code)?;
            let entry = m.code_address();
            match arch {
                Arch::X86 => {
                    m.call(entry, Conv::Stack, &[]);
                }
                Arch::X64 => m.call64(entry),
            }
            let d = m.data();
            let words = |at: usize, n: usize| -> Vec<u32> {
                (0..n)
                    .map(|i| u32::from_le_bytes(d[at + 4 * i..at + 4 * i + 4].try_into().unwrap()))
                    .collect()
            };
            let mut regs = words(0x200, 8);
            regs[7] &= FLAGS;
            results.push((regs, words(0x100, 16)));
        }
        assert_eq!(
            results[0], results[1],
            "case {case}: 32-bit vs 64-bit mode differ for\n{program:?}"
        );
    }
    Ok(())
}
