//! The Compiler in 32-bit mode (`CodeHolder::new(Arch::X86)`): functions in
//! the cdecl, stdcall and fastcall conventions, compiled with and without a
//! logger (equal bytes) and RUN natively through the compatibility-mode
//! harness, their results compared with the same computation in Rust. The
//! harness's trampoline keeps its state in ebx, esi and edi and the 32-bit
//! stack pointer, so a frame that does not restore them crashes the test.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use jitforge::compiler::{Compiler, Signature, ValType, X86Target};
use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error};

/// The harness: see its file.
#[path = "support/compat32.rs"]
mod compat32;

use compat32::{Compat32, Conv};

/// Compiles `body` for 32-bit mode twice, with and without a logger, checks
/// the bytes are equal and returns the code holder (and the listing).
fn compile32(
    body: impl Fn(&mut Compiler<'_>) -> Result<(), Error>,
) -> Result<(CodeHolder, String), Error> {
    let compile = |log: bool| -> Result<(CodeHolder, String), Error> {
        let mut code = CodeHolder::new(Arch::X86);
        let mut listing = jitforge::x86::text::listing::Listing::new();
        {
            let mut cc = Compiler::new(&mut code);
            cc.set_checked(true);
            if log {
                cc.set_logger(Some(&mut listing));
            }
            body(&mut cc)?;
            cc.finalize()?;
        }
        Ok((code, listing.to_string()))
    };
    let (code, _) = compile(false)?;
    let (logged, text) = compile(true)?;
    assert_eq!(
        code.finalize()?,
        logged.finalize()?,
        "the logger changed the bytes:\n{text}"
    );
    Ok((code, text))
}

/// Loads `code` into the harness; returns the address of the function `name`.
fn load(m: &mut Compat32, code: &CodeHolder, name: &str) -> Result<u32, Error> {
    m.load(code)?;
    Ok(address(m, code, name))
}

/// The address of the function `name` of `code` as loaded into the harness.
fn address(m: &Compat32, code: &CodeHolder, name: &str) -> u32 {
    let label = code.label_by_name(name).expect("function label");
    let (_, offset) = code.label_offset(label).expect("bound function");
    m.code_address() + offset
}

/// Calls the 32-bit function and returns eax.
fn call(m: &mut Compat32, entry: u32, conv: Conv, args: &[u32]) -> u32 {
    m.call(entry, conv, args) as u32
}

fn sig32(conv: jitforge_ir::CallConvId, params: &[ValType]) -> Signature {
    Signature::new(conv, params, &[ValType::I32])
}

/// The harness's way of passing arguments for a convention.
fn harness_conv(conv: jitforge_ir::CallConvId) -> Conv {
    if conv == X86Target::FASTCALL {
        Conv::Fastcall
    } else {
        Conv::Stack
    }
}

const CONVS: [jitforge_ir::CallConvId; 3] =
    [X86Target::CDECL, X86Target::STDCALL, X86Target::FASTCALL];

fn mix(a: u32, b: u32, c: u32, d: u32) -> u32 {
    a.wrapping_mul(3).wrapping_sub(b) ^ c.wrapping_add(0x55).rotate_left(3) ^ d
}

/// `mix` in the Compiler: four i32 arguments (two in registers for fastcall).
fn build_mix(cc: &mut Compiler<'_>, conv: jitforge_ir::CallConvId) -> Result<(), Error> {
    cc.add_func("mix", sig32(conv, &[ValType::I32; 4]))?;
    let (a, b, c, d) = (
        cc.new_gp32("a"),
        cc.new_gp32("b"),
        cc.new_gp32("c"),
        cc.new_gp32("d"),
    );
    for (i, r) in [a, b, c, d].into_iter().enumerate() {
        cc.set_arg(i, r)?;
    }
    cc.imul_3(a, a, 3)?;
    cc.sub(a, b)?;
    cc.add(c, 0x55)?;
    cc.rol(c, 3)?;
    cc.xor_(a, c)?;
    cc.xor_(a, d)?;
    cc.ret(&[a.into()])?;
    cc.end_func()
}

#[test]
fn cdecl_stdcall_and_fastcall_arguments() -> Result<(), Error> {
    let mut m = Compat32::new();
    let args = [7u32, 0xFFFF_FFF0, 0x1234_5678, 0x8000_0001];
    for conv in CONVS {
        let (code, listing) = compile32(|cc| build_mix(cc, conv))?;
        // The callee pops its 16 (stdcall) or 8 (fastcall) bytes of stack arguments.
        let bytes = code.finalize()?;
        let ret_tail: &[u8] = match conv {
            X86Target::STDCALL => &[0xC2, 16, 0],
            X86Target::FASTCALL => &[0xC2, 8, 0],
            _ => &[0xC3],
        };
        assert!(bytes.ends_with(ret_tail), "{listing}");
        let entry = load(&mut m, &code, "mix")?;
        let got = call(&mut m, entry, harness_conv(conv), &args);
        assert_eq!(got, mix(args[0], args[1], args[2], args[3]), "{listing}");
    }
    Ok(())
}

#[test]
fn loop_sums_an_array_through_a_pointer_argument() -> Result<(), Error> {
    let mut m = Compat32::new();
    let values: Vec<u32> = (0..100u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
    for (i, v) in values.iter().enumerate() {
        m.data()[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    let (code, listing) = compile32(|cc| {
        cc.add_func("sum", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (p, n, i, s) = (
            cc.new_gp32("p"),
            cc.new_gp32("n"),
            cc.new_gp32("i"),
            cc.new_gp32("s"),
        );
        cc.set_arg(0, p)?;
        cc.set_arg(1, n)?;
        cc.xor_(i, i)?;
        cc.xor_(s, s)?;
        let top = cc.new_label();
        let done = cc.new_label();
        cc.test(n, n)?;
        cc.je(done)?;
        cc.bind(top)?;
        cc.add(s, dword_ptr(p + i * 4))?;
        cc.inc(i)?;
        cc.cmp(i, n)?;
        cc.jb(top)?;
        cc.bind(done)?;
        cc.ret(&[s.into()])?;
        cc.end_func()
    })?;
    let entry = load(&mut m, &code, "sum")?;
    let data = m.data_address();
    for n in [0usize, 1, 37, 100] {
        let want = values[..n].iter().fold(0u32, |a, &v| a.wrapping_add(v));
        let got = call(&mut m, entry, Conv::Stack, &[data, n as u32]);
        assert_eq!(got, want, "n = {n}\n{listing}");
    }
    Ok(())
}

/// Twelve values live around a loop: more than the seven allocatable
/// registers, so some are spilled and reloaded across the back edge.
#[test]
fn more_live_values_than_registers_spill_over_a_loop() -> Result<(), Error> {
    const K: usize = 12;
    let mut m = Compat32::new();
    for conv in CONVS {
        let (code, listing) = compile32(|cc| {
            cc.add_func("many", sig32(conv, &[ValType::I32; 2]))?;
            let (x, n) = (cc.new_gp32("x"), cc.new_gp32("n"));
            cc.set_arg(0, x)?;
            cc.set_arg(1, n)?;
            let vals: Vec<Gp32> = (0..K).map(|k| cc.new_gp32(&format!("v{k}"))).collect();
            for (k, &v) in vals.iter().enumerate() {
                cc.lea(v, dword_ptr(x + (k as i32 * 7 + 1)))?;
            }
            let top = cc.new_label();
            cc.bind(top)?;
            for k in 0..K {
                let next = vals[(k + 1) % K];
                cc.add(vals[k], next)?;
                cc.xor_(vals[k], k as i64 * 0x101)?;
            }
            cc.dec(n)?;
            cc.jne(top)?;
            let s = cc.new_gp32("s");
            cc.mov(s, vals[0])?;
            for (k, &v) in vals.iter().enumerate().skip(1) {
                cc.imul_3(v, v, k as i64 + 1)?;
                cc.add(s, v)?;
            }
            cc.ret(&[s.into()])?;
            cc.end_func()
        })?;
        assert!(
            listing.contains("store [slot") && listing.contains("reload"),
            "no spill:\n{listing}"
        );
        // The edits name the registers as the 32-bit code uses them.
        for name in ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] {
            let named =
                listing.contains(&format!(" {name} <-")) || listing.contains(&format!("<- {name}"));
            assert!(!named, "{name}:\n{listing}");
        }
        let entry = load(&mut m, &code, "many")?;
        for (x, n) in [(5u32, 1u32), (0xDEAD_BEEF, 17), (123, 300)] {
            let mut vals: Vec<u32> = (0..K as u32).map(|k| x.wrapping_add(k * 7 + 1)).collect();
            for _ in 0..n {
                for k in 0..K {
                    vals[k] = vals[k].wrapping_add(vals[(k + 1) % K]) ^ (k as u32 * 0x101);
                }
            }
            let want = vals.iter().enumerate().fold(0u32, |s, (k, &v)| {
                s.wrapping_add(v.wrapping_mul(k as u32 + 1))
            });
            let got = call(&mut m, entry, harness_conv(conv), &[x, n]);
            assert_eq!(got, want, "x = {x}, n = {n}\n{listing}");
        }
    }
    Ok(())
}

/// 8- and 16-bit arguments: a caller widens them by their type (movsx,
/// movzx) from registers with garbage above; a callee reads those on the
/// stack at their size and extends them (those in registers, fastcall's
/// first two, it takes as the caller widened them).
#[test]
fn narrow_arguments_are_widened_by_their_type() -> Result<(), Error> {
    let mut m = Compat32::new();
    let params = [ValType::I8, ValType::U8, ValType::I16, ValType::U16];
    for conv in CONVS {
        let (code, listing) = compile32(|cc| {
            let narrow = cc.add_func("narrow", sig32(conv, &params))?;
            let regs: Vec<Gp32> = (0..4).map(|k| cc.new_gp32(&format!("a{k}"))).collect();
            for (i, &r) in regs.iter().enumerate() {
                cc.set_arg(i, r)?;
            }
            let s = cc.new_gp32("s");
            cc.mov(s, regs[0])?;
            for (k, &r) in regs.iter().enumerate().skip(1) {
                cc.imul_3(r, r, [1i64, 3, 5, 7][k])?;
                cc.add(s, r)?;
            }
            cc.ret(&[s.into()])?;
            cc.end_func()?;
            // The caller passes 32-bit registers holding garbage above the type.
            cc.add_func("caller", sig32(X86Target::CDECL, &[ValType::I32; 4]))?;
            let wide: Vec<Gp32> = (0..4).map(|k| cc.new_gp32(&format!("w{k}"))).collect();
            for (i, &r) in wide.iter().enumerate() {
                cc.set_arg(i, r)?;
            }
            let r = cc.new_gp32("r");
            let args: Vec<Operand> = wide.iter().map(|&w| w.into()).collect();
            cc.invoke(narrow.into(), sig32(conv, &params), &args, &[r.into()])?;
            cc.ret(&[r.into()])?;
            cc.end_func()
        })?;
        for ext in ["movsx", "movzx"] {
            assert!(listing.contains(ext), "{listing}");
        }
        let narrow = load(&mut m, &code, "narrow")?;
        let caller = address(&m, &code, "caller");
        for (a, b, c, d) in [
            (-128i8, 255u8, -32768i16, 65535u16),
            (5, 6, 7, 8),
            (-1, 0, -2, 1),
        ] {
            let want = (a as i32)
                .wrapping_add(b as i32 * 3)
                .wrapping_add(c as i32 * 5)
                .wrapping_add(d as i32 * 7) as u32;
            let widened = [a as i32 as u32, b as u32, c as i32 as u32, d as u32];
            let garbage = 0xA5C3_0000u32;
            let dirty = [
                garbage | (a as u8 as u32),
                garbage | b as u32,
                garbage | (c as u16 as u32),
                garbage | d as u32,
            ];
            let got = call(&mut m, caller, Conv::Stack, &dirty);
            assert_eq!(got, want, "caller: {a} {b} {c} {d}\n{listing}");
            // Called directly: stack arguments with garbage above them,
            // register arguments widened (as a caller passes them).
            let mut direct = dirty;
            if conv == X86Target::FASTCALL {
                direct[..2].copy_from_slice(&widened[..2]);
            }
            let got = call(&mut m, narrow, harness_conv(conv), &direct);
            assert_eq!(got, want, "direct: {a} {b} {c} {d}\n{listing}");
        }
    }
    Ok(())
}

/// A cdecl caller calls `mix` (in each convention) in a loop, with values
/// live across the calls: the callee-saved registers and the stack pointer
/// (a stdcall or fastcall callee pops its arguments) must survive.
#[test]
fn calls_between_functions_in_each_convention() -> Result<(), Error> {
    let mut m = Compat32::new();
    for conv in CONVS {
        let (code, listing) = compile32(|cc| {
            build_mix(cc, conv)?;
            let mix_entry = cc.function_label("mix");
            cc.add_func("caller", sig32(X86Target::CDECL, &[ValType::I32; 3]))?;
            let (x, y, n) = (cc.new_gp32("x"), cc.new_gp32("y"), cc.new_gp32("n"));
            cc.set_arg(0, x)?;
            cc.set_arg(1, y)?;
            cc.set_arg(2, n)?;
            let (acc, k, r) = (cc.new_gp32("acc"), cc.new_gp32("k"), cc.new_gp32("r"));
            cc.xor_(acc, acc)?;
            cc.xor_(k, k)?;
            let top = cc.new_label();
            cc.bind(top)?;
            cc.invoke(
                mix_entry.into(),
                sig32(conv, &[ValType::I32; 4]),
                &[x.into(), y.into(), k.into(), acc.into()],
                &[r.into()],
            )?;
            cc.add(acc, r)?;
            cc.add(x, y)?;
            cc.inc(k)?;
            cc.cmp(k, n)?;
            cc.jb(top)?;
            cc.xor_(acc, x)?;
            cc.ret(&[acc.into()])?;
            cc.end_func()
        })?;
        let entry = load(&mut m, &code, "caller")?;
        for (x, y, n) in [(1u32, 2u32, 1u32), (0x1234_5678, 0x9ABC_DEF1, 25)] {
            let (mut acc, mut xx) = (0u32, x);
            for k in 0..n {
                acc = acc.wrapping_add(mix(xx, y, k, acc));
                xx = xx.wrapping_add(y);
            }
            let got = call(&mut m, entry, Conv::Stack, &[x, y, n]);
            assert_eq!(got, acc ^ xx, "{conv:?} x = {x}\n{listing}");
        }
    }
    Ok(())
}

/// Stack memory filled and read back in loops; the stack slot's address is
/// 16-byte aligned (entry esp = 16n + 12), also with a frame pointer and
/// with memory aligned to 32 (esp aligned down, arguments through ebp).
#[test]
fn stack_memory_indexed_in_a_loop() -> Result<(), Error> {
    const N: u32 = 40;
    let mut m = Compat32::new();
    for (align, frame_pointer) in [(16u32, false), (16, true), (32, false)] {
        let (code, listing) = compile32(|cc| {
            cc.add_func("table", sig32(X86Target::STDCALL, &[ValType::I32; 2]))?;
            cc.set_frame_pointer(frame_pointer)?;
            let (x, y) = (cc.new_gp32("x"), cc.new_gp32("y"));
            cc.set_arg(0, x)?;
            cc.set_arg(1, y)?;
            let stack = cc.new_stack(4 * N, align)?;
            let (i, t, s, p) = (
                cc.new_gp32("i"),
                cc.new_gp32("t"),
                cc.new_gp32("s"),
                cc.new_gp32("p"),
            );
            cc.xor_(i, i)?;
            let fill = cc.new_label();
            cc.bind(fill)?;
            cc.mov(t, i)?;
            cc.imul_2(t, t)?;
            cc.add(t, x)?;
            cc.mov(stack.with_index(i, 4).with_size(4), t)?;
            cc.inc(i)?;
            cc.cmp(i, N as i64)?;
            cc.jb(fill)?;
            cc.xor_(s, s)?;
            let sum = cc.new_label();
            cc.bind(sum)?;
            cc.dec(i)?;
            cc.mov(t, stack.with_index(i, 4).with_size(4))?;
            cc.lea(p, dword_ptr(i + 1))?;
            cc.imul_2(t, p)?;
            cc.add(s, t)?;
            cc.test(i, i)?;
            cc.jne(sum)?;
            // The slot's misalignment (0 expected) times y, added in.
            cc.lea(p, stack)?;
            cc.and_(p, (align - 1) as i64)?;
            cc.imul_2(p, y)?;
            cc.add(s, p)?;
            cc.ret(&[s.into()])?;
            cc.end_func()
        })?;
        let entry = load(&mut m, &code, "table")?;
        for x in [0u32, 77, 0xFFFF_0000] {
            let want = (0..N).fold(0u32, |s, i| {
                s.wrapping_add((i * i).wrapping_add(x).wrapping_mul(i + 1))
            });
            let got = call(&mut m, entry, Conv::Stack, &[x, 1000]);
            assert_eq!(got, want, "align {align}, fp {frame_pointer}\n{listing}");
        }
    }
    Ok(())
}

/// Seven values live at once take every allocatable register: the
/// callee-saved ebx, esi, edi and ebp are pushed and popped as 32-bit
/// registers (the harness's trampoline relies on ebx, esi and edi).
#[test]
fn callee_saved_registers_are_pushed_as_32_bit_registers() -> Result<(), Error> {
    const K: u32 = 7;
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        cc.add_func("pressure", sig32(X86Target::CDECL, &[ValType::I32]))?;
        let x = cc.new_gp32("x");
        cc.set_arg(0, x)?;
        let vals: Vec<Gp32> = (0..K).map(|k| cc.new_gp32(&format!("v{k}"))).collect();
        for (k, &v) in vals.iter().enumerate() {
            cc.lea(v, dword_ptr(x + k as i32))?;
        }
        for w in vals.windows(2) {
            cc.imul_2(w[0], w[1])?;
        }
        for &v in &vals[1..] {
            cc.add(vals[0], v)?;
        }
        cc.ret(&[vals[0].into()])?;
        cc.end_func()
    })?;
    for reg in ["ebx", "esi", "edi", "ebp"] {
        assert!(listing.contains(&format!("push {reg}")), "{listing}");
        assert!(listing.contains(&format!("pop {reg}")), "{listing}");
    }
    let entry = load(&mut m, &code, "pressure")?;
    for x in [0u32, 3, 0x7FFF_FFFF] {
        let v: Vec<u32> = (0..K).map(|k| x.wrapping_add(k)).collect();
        let want = (0..K as usize - 1)
            .map(|k| v[k].wrapping_mul(v[k + 1]))
            .fold(v[K as usize - 1], u32::wrapping_add);
        assert_eq!(call(&mut m, entry, Conv::Stack, &[x]), want, "{listing}");
    }
    Ok(())
}

/// What 32-bit mode cannot do is an error that names it, not wrong bytes.
#[test]
fn sixty_four_bit_things_are_errors_in_32_bit_mode() {
    let message = |body: &dyn Fn(&mut Compiler<'_>) -> Result<(), Error>| -> String {
        let mut code = CodeHolder::new(Arch::X86);
        let mut cc = Compiler::new(&mut code);
        match body(&mut cc).and_then(|_| cc.finalize()) {
            Ok(()) => panic!("compiled"),
            Err(e) => e.to_string(),
        }
    };
    let gp64 = message(&|cc| {
        cc.add_func("f", sig32(X86Target::CDECL, &[ValType::I32]))?;
        let (x, wide) = (cc.new_gp32("x"), cc.new_gp64("wide"));
        cc.set_arg(0, x)?;
        cc.mov(wide, 5)?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    });
    assert!(gp64.contains("%wide") && gp64.contains("64-bit"), "{gp64}");
    let high = message(&|cc| {
        cc.add_func("f", sig32(X86Target::CDECL, &[ValType::I32]))?;
        let x = cc.new_gp32("x");
        cc.set_arg(0, x)?;
        cc.mov(r8d, x)?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    });
    assert!(
        high.contains("r8") && high.contains("32-bit mode"),
        "{high}"
    );
    // A function of `signature` that returns its one argument `x`, calling
    // `call` (a signature, its arguments and results as `x` n times) first.
    let returns_x = |signature: Signature, call: Option<(Signature, usize, usize)>| {
        message(&|cc| {
            let target = cc.function_label("target");
            cc.add_func("f", signature.clone())?;
            let x = cc.new_gp32("x");
            cc.set_arg(0, x)?;
            if let Some((sig, args, rets)) = &call {
                let (args, rets) = (vec![x.into(); *args], vec![x.into(); *rets]);
                cc.invoke(target.into(), sig.clone(), &args, &rets)?;
            }
            cc.ret(&[x.into()])?;
            cc.end_func()
        })
    };
    let sysv = returns_x(sig32(X86Target::SYSV64, &[ValType::I32]), None);
    assert!(sysv.contains("64-bit calling convention"), "{sysv}");
    let cdecl_i64 = Signature::new(X86Target::CDECL, &[ValType::I32], &[ValType::I64]);
    let i64_ret = returns_x(cdecl_i64.clone(), None);
    assert!(
        i64_ret.contains("i64 result in 32-bit mode is two 32-bit values"),
        "{i64_ret}"
    );
    let i64_invoke = returns_x(
        sig32(X86Target::CDECL, &[ValType::I32]),
        Some((cdecl_i64, 1, 1)),
    );
    assert!(
        i64_invoke.contains("2 result(s)") && i64_invoke.contains("low then high"),
        "{i64_invoke}"
    );
    // An I64 argument in 32-bit mode is two values: set_arg (one) and an
    // invoke passing one are errors that say so.
    let fastcall_i64_param = Signature::new(X86Target::FASTCALL, &[ValType::I64], &[ValType::I32]);
    let i64_param = returns_x(fastcall_i64_param.clone(), None);
    assert!(
        i64_param.contains("argument 0 is an I64")
            && i64_param.contains("two 32-bit values")
            && i64_param.contains("set_arg_pair"),
        "{i64_param}"
    );
    let i64_arg = returns_x(
        sig32(X86Target::CDECL, &[ValType::I32]),
        Some((fastcall_i64_param.clone(), 1, 1)),
    );
    assert!(
        i64_arg.contains("takes 2 argument(s)")
            && i64_arg.contains("I64 argument in 32-bit mode is two 32-bit values"),
        "{i64_arg}"
    );
    let three_halves = returns_x(
        sig32(X86Target::CDECL, &[ValType::I32]),
        Some((fastcall_i64_param.clone(), 3, 1)),
    );
    assert!(
        three_halves.contains("passes 3") && three_halves.contains("two 32-bit values"),
        "{three_halves}"
    );
    // set_arg_pair binds an I64 of 32-bit mode only.
    let pair_of_i32 = message(&|cc| {
        cc.add_func("f", sig32(X86Target::CDECL, &[ValType::I32]))?;
        let (lo, hi) = (cc.new_gp32("lo"), cc.new_gp32("hi"));
        cc.set_arg_pair(0, lo, hi)?;
        cc.ret(&[lo.into()])?;
        cc.end_func()
    });
    assert!(
        pair_of_i32.contains("argument 0 is i32") && pair_of_i32.contains("bind it with set_arg"),
        "{pair_of_i32}"
    );
    let pair_out_of_range = message(&|cc| {
        cc.add_func("f", fastcall_i64_param.clone())?;
        let (lo, hi) = (cc.new_gp32("lo"), cc.new_gp32("hi"));
        cc.set_arg_pair(1, lo, hi)?;
        cc.ret(&[lo.into()])?;
        cc.end_func()
    });
    assert!(
        pair_out_of_range.contains("index 1 is out of range"),
        "{pair_out_of_range}"
    );
    // An I64 travels on the stack in every 32-bit convention: a tail call
    // passing one is refused like any stack argument.
    let i64_tail = message(&|cc| {
        let target = cc.function_label("target");
        cc.add_func("f", sig32(X86Target::FASTCALL, &[ValType::I32]))?;
        let x = cc.new_gp32("x");
        cc.set_arg(0, x)?;
        cc.tail_call(
            target.into(),
            Signature::new(X86Target::FASTCALL, &[ValType::I64], &[ValType::I32]),
            &[x.into(), x.into()],
        )?;
        cc.end_func()
    });
    assert!(i64_tail.contains("tail"), "{i64_tail}");
    let stdcall_tail = message(&|cc| {
        let target = cc.function_label("target");
        cc.add_func("f", sig32(X86Target::STDCALL, &[ValType::I32]))?;
        let x = cc.new_gp32("x");
        cc.set_arg(0, x)?;
        cc.tail_call(target.into(), sig32(X86Target::CDECL, &[]), &[])?;
        cc.end_func()
    });
    assert!(stdcall_tail.contains("tail call"), "{stdcall_tail}");
    // set_avx512 keeps the 32-bit target: xmm8 still does not exist.
    let upper_vec = message(&|cc| {
        cc.set_avx512(true);
        cc.add_func("f", sig32(X86Target::CDECL, &[ValType::I32]))?;
        let x = cc.new_gp32("x");
        cc.set_arg(0, x)?;
        cc.movd(xmm8, x)?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    });
    assert!(
        upper_vec.contains("xmm8") && upper_vec.contains("32-bit mode"),
        "{upper_vec}"
    );
}

/// Constants (`copy %c, imm` in the IR) live under register pressure come
/// back as `mov r32, imm32` (rematerialized) rather than from a spill slot.
#[test]
fn constants_are_rematerialized_as_32_bit_moves() -> Result<(), Error> {
    const K: usize = 9;
    let consts: Vec<u32> = (1..=K as u32)
        .map(|k| k.wrapping_mul(0x9E37_79B9))
        .collect();
    let names: Vec<String> = (0..K).map(|k| format!("%c{k}")).collect();
    let mut text = format!(
        "func consts(i32, i32) -> (i32) cdecl {{\n  gp32 %x, %n, {}\n  entry %x, %n\n",
        names.join(", ")
    );
    for (name, &c) in names.iter().zip(&consts) {
        text += &format!("  copy {name}, {}\n", c as i32);
    }
    for name in &names {
        text += &format!("  xor %x, {name}\n  rol %x, 5\n  add %x, %n\n");
    }
    text += "  ret %x\n}\n";
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        let f = jitforge_ir::text::parse_function(&text, X86Target::x86()).map_err(|e| {
            Error::InvalidArgument {
                message: format!("{e}"),
            }
        })?;
        cc.add_ir_function(f)?;
        Ok(())
    })?;
    assert!(listing.contains("remat"), "{listing}");
    let entry = load(&mut m, &code, "consts")?;
    for (x, n) in [(1u32, 1u32), (0xCAFE_F00D, 50)] {
        let mut want = x;
        for &c in &consts {
            want = (want ^ c).rotate_left(5).wrapping_add(n);
        }
        assert_eq!(call(&mut m, entry, Conv::Stack, &[x, n]), want, "{listing}");
    }
    Ok(())
}

/// A call through an absolute address goes through eax (`mov eax, imm32;
/// call eax`); a tail call from a cdecl function to a fastcall one with
/// register arguments only jumps after the epilog.
#[test]
fn calls_through_an_address_and_tail_calls() -> Result<(), Error> {
    let mut m = Compat32::new();
    let base = m.code_address();
    let fast = sig32(X86Target::FASTCALL, &[ValType::I32; 2]);
    let (code, listing) = compile32(|cc| {
        cc.add_func("sub2", fast.clone())?;
        let (a, b) = (cc.new_gp32("a"), cc.new_gp32("b"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.sub(a, b)?;
        cc.imul_3(a, a, 3)?;
        cc.ret(&[a.into()])?;
        cc.end_func()?;
        // The address the harness loads `sub2` at (the code's start).
        cc.add_func("by_address", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (x, y, r) = (cc.new_gp32("x"), cc.new_gp32("y"), cc.new_gp32("r"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        cc.invoke(
            Operand::Imm(base as i64),
            fast.clone(),
            &[x.into(), y.into()],
            &[r.into()],
        )?;
        cc.add(r, x)?;
        cc.ret(&[r.into()])?;
        cc.end_func()?;
        let sub2 = cc.function_label("sub2");
        cc.add_func("tail", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (x, y) = (cc.new_gp32("x"), cc.new_gp32("y"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        cc.add(x, 10)?;
        cc.tail_call(sub2.into(), fast.clone(), &[x.into(), y.into()])?;
        cc.end_func()
    })?;
    assert!(listing.contains("call eax"), "{listing}");
    let sub2 = load(&mut m, &code, "sub2")?;
    assert_eq!(sub2, base, "sub2 is first");
    let by_address = load(&mut m, &code, "by_address")?;
    let tail = load(&mut m, &code, "tail")?;
    for (x, y) in [(10u32, 3u32), (0, 0xFFFF_FFFF)] {
        let sub2 = |a: u32, b: u32| a.wrapping_sub(b).wrapping_mul(3);
        let got = call(&mut m, by_address, Conv::Stack, &[x, y]);
        assert_eq!(got, sub2(x, y).wrapping_add(x), "{listing}");
        let got = call(&mut m, tail, Conv::Stack, &[x, y]);
        assert_eq!(got, sub2(x.wrapping_add(10), y), "{listing}");
    }
    Ok(())
}

/// Doubles in xmm registers: a vectorcall function takes two in xmm0 and
/// xmm1 and returns one in xmm0; a cdecl caller converts the integers it
/// gets, keeps nine doubles live over the call (spilled to 16-byte slots:
/// every xmm register is clobbered by calls) and returns the truncation.
#[test]
fn doubles_through_vectorcall_and_vector_spills() -> Result<(), Error> {
    let mut m = Compat32::new();
    let vsig = Signature::new(
        X86Target::VECTORCALL32,
        &[ValType::F64, ValType::F64],
        &[ValType::F64],
    );
    let (code, listing) = compile32(|cc| {
        cc.add_func("hyp", vsig.clone())?;
        let (a, b) = (cc.new_xmm("a"), cc.new_xmm("b"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.mulsd(a, a)?;
        cc.mulsd(b, b)?;
        cc.addsd(a, b)?;
        cc.sqrtsd(a, a)?;
        cc.ret(&[a.into()])?;
        cc.end_func()?;
        let hyp = cc.function_label("hyp");
        cc.add_func("caller", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (x, y, r) = (cc.new_gp32("x"), cc.new_gp32("y"), cc.new_gp32("r"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        let (fx, fy, h) = (cc.new_xmm("fx"), cc.new_xmm("fy"), cc.new_xmm("h"));
        cc.cvtsi2sd(fx, x)?;
        cc.cvtsi2sd(fy, y)?;
        let keep: Vec<Xmm> = (0..9).map(|k| cc.new_xmm(&format!("k{k}"))).collect();
        for (k, &v) in keep.iter().enumerate() {
            cc.movapd(v, fx)?;
            cc.addsd(v, if k % 2 == 0 { fy } else { fx })?;
        }
        cc.invoke(
            hyp.into(),
            vsig.clone(),
            &[fx.into(), fy.into()],
            &[h.into()],
        )?;
        for &v in &keep {
            cc.addsd(h, v)?;
        }
        cc.cvttsd2si(r, h)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    let caller = load(&mut m, &code, "caller")?;
    for (x, y) in [(3i32, 4i32), (-120, 50), (1000, -1)] {
        let (fx, fy) = (x as f64, y as f64);
        let mut h = (fx * fx + fy * fy).sqrt();
        for k in 0..9 {
            h += fx + if k % 2 == 0 { fy } else { fx };
        }
        let got = call(&mut m, caller, Conv::Stack, &[x as u32, y as u32]) as i32;
        assert_eq!(got, h as i32, "{listing}");
    }
    Ok(())
}

/// A random statement of [`random_programs_agree_with_rust`]: `op v[d], v[s]`,
/// or a call of `mix` (values live across it), or a call of `wide` whose
/// `I64` result's halves go to `v[d]` (low) and `v[s]` (high; the one
/// value gets the high half when `d == s`), or a counted loop.
#[derive(Clone, Debug)]
enum Stmt {
    Op(u8, usize, usize),
    Call(usize, usize),
    Wide(usize, usize),
    Loop(u32, Vec<Stmt>),
}

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

fn random_block(r: &mut Rng, values: usize, depth: u32, len: usize) -> Vec<Stmt> {
    (0..len)
        .map(|_| match r.below(10) {
            0 if depth < 2 => {
                Stmt::Loop(1 + r.below(4) as u32, random_block(r, values, depth + 1, 4))
            }
            1 => Stmt::Call(r.below(values), r.below(values)),
            2 => Stmt::Wide(r.below(values), r.below(values)),
            _ => Stmt::Op(r.below(8) as u8, r.below(values), r.below(values)),
        })
        .collect()
}

fn interpret(block: &[Stmt], v: &mut [u32]) {
    for s in block {
        match *s {
            Stmt::Op(op, d, s) => {
                let b = v[s];
                v[d] = match op {
                    0 => v[d].wrapping_add(b),
                    1 => v[d].wrapping_sub(b),
                    2 => v[d] ^ b,
                    3 => v[d] & (b | 0x0F0F_0F0F),
                    4 => v[d] | (b & 0x1111_1111),
                    5 => v[d].wrapping_mul(b | 1),
                    6 => v[d].rotate_right(d as u32 + 1),
                    _ => v[d] << (s as u32 % 31 + 1) | 1,
                };
            }
            Stmt::Call(d, s) => v[d] = mix(v[d], v[s], d as u32, s as u32),
            Stmt::Wide(d, s) => {
                let w = wide(v[d], v[s], d as u32);
                v[d] = w as u32;
                v[s] = (w >> 32) as u32;
            }
            Stmt::Loop(n, ref body) => {
                for _ in 0..n {
                    interpret(body, v);
                }
            }
        }
    }
}

fn emit_block(
    cc: &mut Compiler<'_>,
    block: &[Stmt],
    v: &[Gp32],
    conv: jitforge_ir::CallConvId,
) -> Result<(), Error> {
    for s in block {
        match *s {
            Stmt::Op(op, d, s) => {
                let t = cc.new_gp32("t");
                match op {
                    0 => cc.add(v[d], v[s])?,
                    1 => cc.sub(v[d], v[s])?,
                    2 => cc.xor_(v[d], v[s])?,
                    3 => {
                        cc.mov(t, v[s])?;
                        cc.or_(t, 0x0F0F_0F0F)?;
                        cc.and_(v[d], t)?;
                    }
                    4 => {
                        cc.mov(t, v[s])?;
                        cc.and_(t, 0x1111_1111)?;
                        cc.or_(v[d], t)?;
                    }
                    5 => {
                        cc.mov(t, v[s])?;
                        cc.or_(t, 1)?;
                        cc.imul_2(v[d], t)?;
                    }
                    6 => cc.ror(v[d], d as i64 + 1)?,
                    _ => {
                        cc.shl(v[d], s as i64 % 31 + 1)?;
                        cc.or_(v[d], 1)?;
                    }
                }
            }
            Stmt::Call(d, s) => {
                let mix_entry = cc.function_label("mix");
                let (k, l) = (cc.new_gp32("k"), cc.new_gp32("l"));
                cc.mov(k, d as i64)?;
                cc.mov(l, s as i64)?;
                cc.invoke(
                    mix_entry.into(),
                    sig32(conv, &[ValType::I32; 4]),
                    &[v[d].into(), v[s].into(), k.into(), l.into()],
                    &[v[d].into()],
                )?;
            }
            Stmt::Wide(d, s) => {
                let wide_entry = cc.function_label("wide");
                let k = cc.new_gp32("k");
                cc.mov(k, d as i64)?;
                cc.invoke(
                    wide_entry.into(),
                    Signature::new(conv, &[ValType::I32; 3], &[ValType::I64]),
                    &[v[d].into(), v[s].into(), k.into()],
                    &[v[d].into(), v[s].into()],
                )?;
            }
            Stmt::Loop(n, ref body) => {
                let i = cc.new_gp32("i");
                cc.mov(i, n as i64)?;
                let top = cc.new_label();
                cc.bind(top)?;
                emit_block(cc, body, v, conv)?;
                cc.dec(i)?;
                cc.jne(top)?;
            }
        }
    }
    Ok(())
}

/// Random programs on 2 to 14 values (more than the seven registers from
/// 8 on), with loops and calls in each convention (of `mix`, and of `wide`,
/// which returns an `I64`), with and without a frame pointer and esp
/// aligned to 64, returning an `I32` or (every other round) an `I64`,
/// compiled for 32-bit mode, run, and compared with the same program
/// interpreted in Rust.
#[test]
fn random_programs_agree_with_rust() -> Result<(), Error> {
    let mut m = Compat32::new();
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    // More for a longer run: COMPILER32_CASES=N.
    let cases = rng::cases("COMPILER32_CASES", 150);
    for round in 0..cases {
        let values = 2 + r.below(13);
        let conv = CONVS[r.below(3)];
        let len = 3 + r.below(12);
        let block = random_block(&mut r, values, 0, len);
        let mut code = CodeHolder::new(Arch::X86);
        {
            let mut cc = Compiler::new(&mut code);
            cc.set_checked(true);
            build_mix(&mut cc, conv)?;
            build_wide(&mut cc, conv)?;
            let result = if round % 2 == 1 {
                ValType::I64
            } else {
                ValType::I32
            };
            cc.add_func(
                "program",
                Signature::new(X86Target::CDECL, &[ValType::I32; 2], &[result]),
            )?;
            let (x, y) = (cc.new_gp32("x"), cc.new_gp32("y"));
            cc.set_arg(0, x)?;
            cc.set_arg(1, y)?;
            let v: Vec<Gp32> = (0..values).map(|k| cc.new_gp32(&format!("v{k}"))).collect();
            for (k, &vk) in v.iter().enumerate() {
                cc.imul_3(vk, x, k as i64 * 2 + 1)?;
                cc.xor_(vk, y)?;
            }
            // Some programs keep ebp as frame pointer, some align esp for
            // stack memory (which then holds v[0] over the program).
            cc.set_frame_pointer(round % 3 == 0)?;
            let stack = cc.new_stack(8, [4, 16, 64][round % 3])?;
            cc.mov(stack.with_size(4), v[0])?;
            emit_block(&mut cc, &block, &v, conv)?;
            cc.add(v[0], stack.with_size(4))?;
            cc.mov(stack.with_disp(4).with_size(4), v[0])?;
            for &vk in &v[1..] {
                cc.add(v[0], vk)?;
            }
            if result == ValType::I64 {
                cc.ret(&[v[0].into(), v[1].into()])?;
            } else {
                cc.ret(&[v[0].into()])?;
            }
            cc.end_func()?;
            cc.finalize()?;
        }
        let entry = load(&mut m, &code, "program")?;
        for (x, y) in [(1u32, 2u32), (0x8765_4321, 0xFFFF_FFFF)] {
            let mut v: Vec<u32> = (0..values as u32)
                .map(|k| x.wrapping_mul(2 * k + 1) ^ y)
                .collect();
            let first = v[0];
            interpret(&block, &mut v);
            v[0] = v[0].wrapping_add(first);
            let sum = v[1..].iter().fold(v[0], |a, &b| a.wrapping_add(b));
            // edx is undefined after a function returning an I32.
            let (want, mask) = if round % 2 == 1 {
                (u64::from(v[1]) << 32 | u64::from(sum), u64::MAX)
            } else {
                (u64::from(sum), u64::from(u32::MAX))
            };
            let got = m.call(entry, Conv::Stack, &[x, y]) & mask;
            assert_eq!(
                got, want,
                "round {round}: {values} values, {conv:?}, {block:?}"
            );
        }
    }
    Ok(())
}

/// An indirect jump through a table of 4-byte label addresses
/// (`new_label_table`), relocated to where the harness loads the code.
#[test]
fn label_table_of_32_bit_addresses() -> Result<(), Error> {
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        cc.add_func("select", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (i, k, r, base) = (
            cc.new_gp32("i"),
            cc.new_gp32("k"),
            cc.new_gp32("r"),
            cc.new_gp32("base"),
        );
        cc.set_arg(0, i)?;
        cc.set_arg(1, k)?;
        let cases: Vec<jitforge::Label> = (0..4).map(|_| cc.new_label()).collect();
        let end = cc.new_label();
        let table = cc.new_label_table(&cases)?;
        cc.and_(i, 3)?;
        cc.lea(base, table)?;
        cc.jmp(dword_ptr(base + i * 4))?;
        for (n, case) in cases.iter().enumerate() {
            cc.bind(*case)?;
            cc.imul_3(r, k, n as i64 + 2)?;
            cc.jmp(end)?;
        }
        cc.bind(end)?;
        cc.add(r, k)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    let entry = load(&mut m, &code, "select")?;
    for i in 0..8u32 {
        let k = 1000 + i;
        let want = k * ((i & 3) + 2) + k;
        assert_eq!(call(&mut m, entry, Conv::Stack, &[i, k]), want, "{listing}");
    }
    Ok(())
}

/// The annotated jump table (`jump_table`) with a 32-bit index: 4-byte
/// entries relocated to where the code is loaded, values live across the
/// indirect jump; a 64-bit index is an error in 32-bit mode.
#[test]
fn jump_table_with_a_32_bit_index() -> Result<(), Error> {
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        cc.add_func("switch", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (i, k, r) = (cc.new_gp32("i"), cc.new_gp32("k"), cc.new_gp32("r"));
        cc.set_arg(0, i)?;
        cc.set_arg(1, k)?;
        let cases: Vec<jitforge::Label> = (0..4).map(|_| cc.new_label()).collect();
        let end = cc.new_label();
        cc.and_(i, 3)?;
        cc.jump_table(i, &cases)?;
        for (n, case) in cases.iter().enumerate() {
            cc.bind(*case)?;
            cc.imul_3(r, k, n as i64 + 3)?;
            cc.jmp(end)?;
        }
        cc.bind(end)?;
        cc.sub(r, k)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    let entry = load(&mut m, &code, "switch")?;
    for i in 0..8u32 {
        let k = 77 + i;
        assert_eq!(
            call(&mut m, entry, Conv::Stack, &[i, k]),
            k * ((i & 3) + 3) - k,
            "{listing}"
        );
    }
    let mut code = CodeHolder::new(Arch::X86);
    let mut cc = Compiler::new(&mut code);
    cc.add_func("wide", sig32(X86Target::CDECL, &[]))?;
    let (wide, case) = (cc.new_gp64("wide"), cc.new_label());
    let err = cc.jump_table(wide, &[case]).expect_err("a 64-bit index");
    assert!(err.to_string().contains("32-bit general-purpose"), "{err}");
    Ok(())
}

/// Constants in the function's pool and the global pool are reached by
/// absolute 32-bit addresses (no rip-relative addressing in 32-bit mode),
/// relocated to where the code is loaded.
#[test]
fn constant_pools_by_absolute_address() -> Result<(), Error> {
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        for name in ["first", "second"] {
            cc.add_func(name, sig32(X86Target::CDECL, &[ValType::I32]))?;
            let (x, r) = (cc.new_gp32("x"), cc.new_gp32("r"));
            let (d, c) = (cc.new_xmm("d"), cc.new_xmm("c"));
            cc.set_arg(0, x)?;
            cc.cvtsi2sd(d, x)?;
            let local = cc.new_const(&2.5f64.to_le_bytes(), 8)?;
            cc.movsd_2(c, local.with_size(8))?;
            cc.mulsd(d, c)?;
            let global = cc.new_global_const(&0.25f64.to_le_bytes(), 8)?;
            cc.addsd(d, global.with_size(8))?;
            cc.cvttsd2si(r, d)?;
            cc.ret(&[r.into()])?;
            cc.end_func()?;
        }
        Ok(())
    })?;
    for name in ["first", "second"] {
        let entry = load(&mut m, &code, name)?;
        for x in [4i32, -10, 1001] {
            let want = (x as f64 * 2.5 + 0.25) as i32;
            let got = call(&mut m, entry, Conv::Stack, &[x as u32]) as i32;
            assert_eq!(got, want, "{name}\n{listing}");
        }
    }
    Ok(())
}

/// ymm values live across a call are spilled to 32-byte slots, stack memory
/// aligned to 32 aligns esp through ebp, and `vzeroupper` precedes the call
/// and the return (only where the CPU has AVX2).
#[test]
fn ymm_values_across_a_call() -> Result<(), Error> {
    if !std::arch::is_x86_feature_detected!("avx2") {
        return Ok(());
    }
    const K: u32 = 9;
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        build_mix(cc, X86Target::CDECL)?;
        let mix_entry = cc.function_label("mix");
        cc.add_func("wide", sig32(X86Target::CDECL, &[ValType::I32; 2]))?;
        let (x, y, r, s) = (
            cc.new_gp32("x"),
            cc.new_gp32("y"),
            cc.new_gp32("r"),
            cc.new_gp32("s"),
        );
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        let stack = cc.new_stack(32, 32)?;
        let t = cc.new_xmm("t");
        let v: Vec<Ymm> = (0..K).map(|k| cc.new_ymm(&format!("y{k}"))).collect();
        for (k, &vk) in v.iter().enumerate() {
            cc.imul_3(s, y, k as i64)?;
            cc.add(s, x)?;
            cc.vmovd(t, s)?;
            cc.vpbroadcastd(vk, t)?;
        }
        let zero = cc.new_gp32("zero");
        cc.xor_(zero, zero)?;
        cc.invoke(
            mix_entry.into(),
            sig32(X86Target::CDECL, &[ValType::I32; 4]),
            &[x.into(), y.into(), zero.into(), zero.into()],
            &[r.into()],
        )?;
        for &vk in &v[1..] {
            cc.vpaddd(v[0], v[0], vk)?;
        }
        cc.vmovdqu(stack.with_size(32), v[0])?;
        for lane in 0..8 {
            cc.add(r, stack.with_disp(lane * 4).with_size(4))?;
        }
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    assert!(listing.contains("vzeroupper"), "{listing}");
    assert!(listing.contains("store [slot"), "no ymm spill:\n{listing}");
    let entry = load(&mut m, &code, "wide")?;
    for (x, y) in [(1u32, 2u32), (0x1000_0001, 0xFFFF_FFF0)] {
        let lane = (0..K).fold(0u32, |a, k| {
            a.wrapping_add(x.wrapping_add(y.wrapping_mul(k)))
        });
        let want = mix(x, y, 0, 0).wrapping_add(lane.wrapping_mul(8));
        assert_eq!(call(&mut m, entry, Conv::Stack, &[x, y]), want, "{listing}");
    }
    Ok(())
}

/// A float result in x87 st0 (cdecl, stdcall): stored from its xmm
/// register and loaded with `fld` as the function returns; the harness
/// takes it off the x87 stack (`fstp`), and so does a JIT caller (into a
/// slot, then an xmm register). A memory operand is loaded directly.
#[test]
fn float_results_in_st0() -> Result<(), Error> {
    let mut m = Compat32::new();
    for conv in [X86Target::CDECL, X86Target::STDCALL] {
        for ret in [ValType::F64, ValType::F32] {
            let (code, listing) = compile32(|cc| {
                cc.add_func(
                    "scale",
                    Signature::new(conv, &[ValType::I32, ValType::F64], &[ret]),
                )?;
                let (k, d, t) = (cc.new_xmm("k"), cc.new_xmm("d"), cc.new_gp32("t"));
                cc.set_arg(1, d)?;
                let stack = cc.new_stack(8, 8)?;
                let arg = cc.new_gp32("arg");
                cc.set_arg(0, arg)?;
                cc.mov(t, arg)?;
                cc.cvtsi2sd(k, t)?;
                cc.mulsd(k, d)?;
                if ret == ValType::F32 {
                    // From memory: the float stored to stack memory.
                    cc.cvtsd2ss(k, k)?;
                    cc.movss(stack.with_size(4), k)?;
                    cc.ret(&[stack.with_size(4).into()])?;
                } else {
                    cc.ret(&[k.into()])?;
                }
                cc.end_func()?;
                // A caller receives it: `fstp` to a slot, then into xmm.
                let scale = cc.function_label("scale");
                cc.add_func(
                    "caller",
                    Signature::new(
                        X86Target::CDECL,
                        &[ValType::I32, ValType::F64],
                        &[ValType::I32],
                    ),
                )?;
                let (k, d, r, i) = (
                    cc.new_gp32("k"),
                    cc.new_xmm("d"),
                    cc.new_xmm("r"),
                    cc.new_gp32("i"),
                );
                cc.set_arg(0, k)?;
                cc.set_arg(1, d)?;
                cc.invoke(
                    scale.into(),
                    Signature::new(conv, &[ValType::I32, ValType::F64], &[ret]),
                    &[k.into(), d.into()],
                    &[r.into()],
                )?;
                if ret == ValType::F32 {
                    cc.cvtss2sd(r, r)?;
                }
                cc.addsd(r, r)?;
                cc.cvttsd2si(i, r)?;
                cc.ret(&[i.into()])?;
                cc.end_func()
            })?;
            assert!(
                listing.contains("fld") && listing.contains("fstp"),
                "{listing}"
            );
            let entry = load(&mut m, &code, "scale")?;
            for (k, d) in [(3i32, 2.5f64), (-7, 1e3), (100, -0.125)] {
                let bits = d.to_bits();
                let got = m.call_f64(entry, &[k as u32, bits as u32, (bits >> 32) as u32]);
                let want = if ret == ValType::F32 {
                    (k as f64 * d) as f32 as f64
                } else {
                    k as f64 * d
                };
                assert_eq!(got, want, "{conv:?} {ret:?}\n{listing}");
                let caller = address(&m, &code, "caller");
                let args = [k as u32, bits as u32, (bits >> 32) as u32];
                let got = call(&mut m, caller, Conv::Stack, &args) as i32;
                assert_eq!(
                    got,
                    (want * 2.0) as i32,
                    "caller {conv:?} {ret:?}\n{listing}"
                );
            }
        }
    }
    Ok(())
}

/// `wide(a, b, c) = a * b + c` as a u64, computed from 32-bit halves
/// (`mul` on edx:eax, then `add`/`adc`) and returned in edx:eax.
fn wide(a: u32, b: u32, c: u32) -> u64 {
    u64::from(a) * u64::from(b) + u64::from(c)
}

/// `wide` in the Compiler, with the signature `(i32, i32, i32) -> i64` in `conv`.
fn build_wide(cc: &mut Compiler<'_>, conv: jitforge_ir::CallConvId) -> Result<(), Error> {
    cc.add_func(
        "wide",
        Signature::new(conv, &[ValType::I32; 3], &[ValType::I64]),
    )?;
    let (a, b, c) = (cc.new_gp32("a"), cc.new_gp32("b"), cc.new_gp32("c"));
    cc.set_arg(0, a)?;
    cc.set_arg(1, b)?;
    cc.set_arg(2, c)?;
    let (hi, lo) = (cc.new_gp32("hi"), cc.new_gp32("lo"));
    cc.mov(lo, a)?;
    cc.mul(hi, lo, b)?;
    cc.add(lo, c)?;
    cc.adc(hi, 0)?;
    cc.ret(&[lo.into(), hi.into()])?;
    cc.end_func()
}

/// `I64` results in edx:eax (AsmJit's `ret(lo, hi)` and two invoke
/// results): `wide` in each convention is called from the test and from a
/// JIT caller in each convention, which receives the two halves, keeps
/// values live across the call and returns an `I64` of its own.
#[test]
fn i64_results_in_edx_eax_across_conventions() -> Result<(), Error> {
    let mut m = Compat32::new();
    for callee_conv in CONVS {
        for caller_conv in CONVS {
            let (code, listing) = compile32(|cc| {
                build_wide(cc, callee_conv)?;
                let wide_entry = cc.function_label("wide");
                cc.add_func(
                    "caller",
                    Signature::new(caller_conv, &[ValType::I32; 3], &[ValType::I64]),
                )?;
                let (a, b, c) = (cc.new_gp32("a"), cc.new_gp32("b"), cc.new_gp32("c"));
                cc.set_arg(0, a)?;
                cc.set_arg(1, b)?;
                cc.set_arg(2, c)?;
                let (lo, hi) = (cc.new_gp32("lo"), cc.new_gp32("hi"));
                cc.invoke(
                    wide_entry.into(),
                    Signature::new(callee_conv, &[ValType::I32; 3], &[ValType::I64]),
                    &[a.into(), b.into(), c.into()],
                    &[lo.into(), hi.into()],
                )?;
                // The halves swapped, each mixed with an argument live across the call.
                cc.xor_(lo, a)?;
                cc.add(hi, c)?;
                cc.ret(&[hi.into(), lo.into()])?;
                cc.end_func()
            })?;
            // The allocator's reasons name the registers of the mode.
            assert!(
                listing.contains("[copy to fixed eax]")
                    && !listing.contains("rax")
                    && !listing.contains("rdx"),
                "{listing}"
            );
            let callee = load(&mut m, &code, "wide")?;
            let caller = address(&m, &code, "caller");
            for (a, b, c) in [
                (3u32, 5u32, 7u32),
                (0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF),
                (0x1234_5678, 0x9ABC_DEF0, 0x8000_0001),
            ] {
                let want = wide(a, b, c);
                let got = m.call(callee, harness_conv(callee_conv), &[a, b, c]);
                assert_eq!(got, want, "{callee_conv:?} wide({a}, {b}, {c})\n{listing}");
                let (lo, hi) = (want as u32 ^ a, ((want >> 32) as u32).wrapping_add(c));
                let want = u64::from(lo) << 32 | u64::from(hi);
                let got = m.call(caller, harness_conv(caller_conv), &[a, b, c]);
                assert_eq!(
                    got, want,
                    "{caller_conv:?} caller of {callee_conv:?} ({a}, {b}, {c})\n{listing}"
                );
            }
        }
    }
    Ok(())
}

/// The differential check of random 32-bit programs
/// (`jitforge::compiler::fuzzing::check_program32`, also the cargo-fuzz
/// target `compile_run32`) on pseudo-random byte strings: each program is
/// compiled with its callees, run natively and interpreted; results, the
/// buffer and the trace of calls must agree. COMPILER32_FUZZ_CASES=N for more.
#[test]
fn random_byte_strings_agree_with_the_interpreter() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let cases = rng::cases("COMPILER32_FUZZ_CASES", 150);
    let mut spills = 0u64;
    for case in 0..cases {
        let len = 16 + (case % 7) * 40;
        let data: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
        match jitforge::compiler::fuzzing::check_program32(&data) {
            Ok(stats) => spills += stats.stores as u64,
            Err(e) => panic!("case {case} ({data:?}): {e}"),
        }
    }
    // Seven registers for up to 24 values: the programs spill.
    assert!(spills > 0, "no program spilled");
}

/// The byte forms of `mul`, `imul`, `div` and `idiv` (one implicit
/// register, ax) through their typed methods (`mul8`...): ax is a 16-bit
/// view of a 32-bit value whose upper half is kept, the source a byte view.
#[test]
fn byte_multiplies_and_divisions_on_ax() -> Result<(), Error> {
    let mut m = Compat32::new();
    let (code, listing) = compile32(|cc| {
        cc.add_func("bytes", sig32(X86Target::CDECL, &[ValType::I32; 3]))?;
        let (a, b, kind) = (cc.new_gp32("a"), cc.new_gp32("b"), cc.new_gp32("kind"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, kind)?;
        let (mul, imul, div, done) = (
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
        );
        cc.cmp(kind, 0)?;
        cc.je(mul)?;
        cc.cmp(kind, 1)?;
        cc.je(imul)?;
        cc.cmp(kind, 2)?;
        cc.je(div)?;
        cc.idiv8(a.r16(), b.r8())?;
        cc.jmp(done)?;
        cc.bind(mul)?;
        cc.mul8(a.r16(), b.r8())?;
        cc.jmp(done)?;
        cc.bind(imul)?;
        cc.imul8(a.r16(), b.r8())?;
        cc.jmp(done)?;
        cc.bind(div)?;
        cc.div8(a.r16(), b.r8())?;
        cc.bind(done)?;
        cc.ret(&[a.into()])?;
        cc.end_func()
    })?;
    let entry = load(&mut m, &code, "bytes")?;
    let cases = [
        // 0xF0 * 0x11 = 0x0FF0 (unsigned); -16 * 17 = -272 = 0xFEF0 (signed).
        (0xABCD_12F0u32, 0x11u32, 0, 0xABCD_0FF0u32),
        (0xABCD_12F0, 0x11, 1, 0xABCD_FEF0),
        // 0x0123 / 0x10: quotient 0x12 in al, remainder 3 in ah.
        (0xABCD_0123, 0x10, 2, 0xABCD_0312),
        // -100 (ax 0xFF9C) / 7: quotient -14 (0xF2), remainder -2 (0xFE).
        (0x5555_FF9C, 7, 3, 0x5555_FEF2),
    ];
    for (a, b, kind, want) in cases {
        let got = call(&mut m, entry, Conv::Stack, &[a, b, kind]);
        assert_eq!(got, want, "kind {kind}: {a:#x}, {b:#x}\n{listing}");
    }
    Ok(())
}

/// Compiles a function on 32-bit values (`inc` and `dec` have a one-byte
/// form in 32-bit mode only) for `arch`; returns its bytes.
fn compile_narrow_ops(arch: Arch) -> Result<Vec<u8>, Error> {
    let conv = if arch == Arch::X86 {
        X86Target::CDECL
    } else {
        X86Target::SYSV64
    };
    let mut code = CodeHolder::new(arch);
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(true);
        cc.add_func(
            "f",
            Signature::new(conv, &[ValType::I32; 2], &[ValType::I32]),
        )?;
        let (a, b, v) = (cc.new_gp32("a"), cc.new_gp32("b"), cc.new_gp32("v"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.mov(v, 7)?;
        cc.inc(v)?;
        cc.dec(a)?;
        cc.add(v, a)?;
        cc.add(v, b)?;
        cc.ret(&[v.into()])?;
        cc.end_func()?;
        cc.finalize()?;
    }
    code.finalize()
}

#[test]
fn a_thread_that_compiled_64_bit_code_compiles_32_bit_code_alike() -> Result<(), Error> {
    // The Compiler keeps tables per thread between functions; what it
    // learned in 64-bit mode must not leak into 32-bit mode.
    let fresh = std::thread::spawn(|| compile_narrow_ops(Arch::X86))
        .join()
        .expect("thread")?;
    let after = std::thread::spawn(|| {
        let wide = compile_narrow_ops(Arch::X64)?;
        Ok::<_, Error>((wide, compile_narrow_ops(Arch::X86)?))
    })
    .join()
    .expect("thread")?;
    assert_ne!(after.0, fresh, "the two modes encode inc/dec differently");
    assert_eq!(after.1, fresh);
    Ok(())
}

const CONVS4: [jitforge_ir::CallConvId; 4] = [
    X86Target::CDECL,
    X86Target::STDCALL,
    X86Target::FASTCALL,
    X86Target::VECTORCALL32,
];

/// `pairs(a, x, b, y) = (x + y) ^ (b:a)`: two i64 and two i32 arguments.
fn pairs(a: u32, x: u64, b: u32, y: u64) -> u64 {
    x.wrapping_add(y) ^ (u64::from(b) << 32 | u64::from(a))
}

/// `pairs` in the Compiler: `(i32 a, i64 x, i32 b, i64 y) -> i64` in `conv`,
/// the i64 arguments bound to their halves with `set_arg_pair`.
fn build_pairs(cc: &mut Compiler<'_>, conv: jitforge_ir::CallConvId) -> Result<(), Error> {
    let params = [ValType::I32, ValType::I64, ValType::I32, ValType::I64];
    cc.add_func("pairs", Signature::new(conv, &params, &[ValType::I64]))?;
    let (a, b) = (cc.new_gp32("a"), cc.new_gp32("b"));
    let (x_lo, x_hi) = (cc.new_gp32("x_lo"), cc.new_gp32("x_hi"));
    let (y_lo, y_hi) = (cc.new_gp32("y_lo"), cc.new_gp32("y_hi"));
    cc.set_arg(0, a)?;
    cc.set_arg_pair(1, x_lo, x_hi)?;
    cc.set_arg(2, b)?;
    cc.set_arg_pair(3, y_lo, y_hi)?;
    cc.add(x_lo, y_lo)?;
    cc.adc(x_hi, y_hi)?;
    cc.xor_(x_lo, a)?;
    cc.xor_(x_hi, b)?;
    cc.ret(&[x_lo.into(), x_hi.into()])?;
    cc.end_func()
}

/// `first(x, a) = x * 3 - a` for `(i64 x, i32 a) -> i64`: in fastcall and
/// vectorcall the i64 goes on the stack and `a`, the first integer of up
/// to 32 bits, still takes ecx (Microsoft's rule; GCC's fastcall would put
/// `a` on the stack too).
fn build_first(cc: &mut Compiler<'_>, conv: jitforge_ir::CallConvId) -> Result<(), Error> {
    cc.add_func(
        "first",
        Signature::new(conv, &[ValType::I64, ValType::I32], &[ValType::I64]),
    )?;
    let (lo, hi, a) = (cc.new_gp32("lo"), cc.new_gp32("hi"), cc.new_gp32("a"));
    let (lo3, hi3) = (cc.new_gp32("lo3"), cc.new_gp32("hi3"));
    cc.set_arg_pair(0, lo, hi)?;
    cc.set_arg(1, a)?;
    cc.mov(lo3, lo)?;
    cc.mov(hi3, hi)?;
    for _ in 0..2 {
        cc.add(lo3, lo)?;
        cc.adc(hi3, hi)?;
    }
    cc.sub(lo3, a)?;
    cc.sbb(hi3, 0)?;
    cc.ret(&[lo3.into(), hi3.into()])?;
    cc.end_func()
}

fn first(x: u64, a: u32) -> u64 {
    x.wrapping_mul(3).wrapping_sub(u64::from(a))
}

const WIDE_VALUES: [u64; 4] = [
    0,
    0x0000_0001_FFFF_FFFF,
    0x8000_0000_0000_0001,
    0xFEDC_BA98_7654_3210,
];

/// `I64` arguments in 32-bit mode (two dwords on the stack, low at the
/// lower address) called from the test in each convention: the stack
/// layout the harness builds is the C compilers' (`pairs`: cdecl/stdcall
/// a, x, b, y on the stack; fastcall/vectorcall a in ecx, b in edx, x and y
/// on the stack), and stdcall, fastcall and vectorcall callees pop the 8
/// bytes of each i64.
#[test]
fn i64_arguments_on_the_stack_in_each_convention() -> Result<(), Error> {
    let mut m = Compat32::new();
    let halves = |v: u64| [v as u32, (v >> 32) as u32];
    for conv in CONVS4 {
        let stack_only = conv == X86Target::CDECL || conv == X86Target::STDCALL;
        let (code, listing) = compile32(|cc| build_pairs(cc, conv))?;
        let bytes = code.finalize()?;
        let ret_tail: &[u8] = match conv {
            X86Target::CDECL => &[0xC3],
            X86Target::STDCALL => &[0xC2, 24, 0],
            _ => &[0xC2, 16, 0],
        };
        assert!(bytes.ends_with(ret_tail), "{conv:?} {bytes:x?}\n{listing}");
        let entry = load(&mut m, &code, "pairs")?;
        for (k, &x) in WIDE_VALUES.iter().enumerate() {
            let y = WIDE_VALUES[(k + 1) % 4] ^ 0x1111_2222_3333_4444;
            let (a, b) = (0x0BAD_F00D ^ k as u32, 0x7000_0000 + k as u32);
            let [xl, xh] = halves(x);
            let [yl, yh] = halves(y);
            let args = if stack_only {
                [a, xl, xh, b, yl, yh]
            } else {
                [a, b, xl, xh, yl, yh]
            };
            let got = m.call(entry, int_conv(conv), &args);
            assert_eq!(got, pairs(a, x, b, y), "{conv:?} {args:x?}\n{listing}");
        }
        let (code, listing) = compile32(|cc| build_first(cc, conv))?;
        let bytes = code.finalize()?;
        let ret_tail: &[u8] = match conv {
            X86Target::CDECL => &[0xC3],
            X86Target::STDCALL => &[0xC2, 12, 0],
            _ => &[0xC2, 8, 0],
        };
        assert!(bytes.ends_with(ret_tail), "{conv:?} {bytes:x?}\n{listing}");
        let entry = load(&mut m, &code, "first")?;
        for &x in &WIDE_VALUES {
            let a = (x as u32).rotate_left(7) ^ 0x55;
            let [xl, xh] = halves(x);
            let args: Vec<u32> = if stack_only {
                vec![xl, xh, a]
            } else {
                // ecx = a; edx is not an argument (0xDEAD is ignored).
                vec![a, 0xDEAD, xl, xh]
            };
            let got = m.call(entry, int_conv(conv), &args);
            assert_eq!(got, first(x, a), "{conv:?} {args:x?}\n{listing}");
        }
    }
    Ok(())
}

/// The harness's way of passing integer arguments, vectorcall's too
/// (fastcall's: the first two in ecx and edx).
fn int_conv(conv: jitforge_ir::CallConvId) -> Conv {
    if conv == X86Target::VECTORCALL32 {
        Conv::Fastcall
    } else {
        harness_conv(conv)
    }
}

/// `I64` arguments from JIT callers (`invoke` with two operands, low then
/// high, for each): a caller in each convention takes an i64 itself
/// (`set_arg_pair`) and calls `pairs` and `scaled` (which mixes in an f64:
/// on the stack for cdecl, stdcall and fastcall, in xmm0 for vectorcall) in
/// each convention, with one i64 as registers and one as immediates, values
/// live across the calls; the callees pop their arguments (stdcall,
/// fastcall, vectorcall), so a wrong count moves the caller's stack.
#[test]
fn i64_arguments_from_jit_callers() -> Result<(), Error> {
    let mut m = Compat32::new();
    const Y: u64 = 0x89AB_CDEF_0123_4567;
    for callee_conv in CONVS4 {
        for caller_conv in CONVS {
            let scaled_sig = Signature::new(
                callee_conv,
                &[ValType::F64, ValType::I64, ValType::I32],
                &[ValType::I64],
            );
            let (code, listing) = compile32(|cc| {
                build_pairs(cc, callee_conv)?;
                // scaled(d, x, a) = x + (d as i32) - a, the sum's high half
                // carrying the sign of d.
                cc.add_func("scaled", scaled_sig.clone())?;
                let d = cc.new_xmm("d");
                let (lo, hi, a, t) = (
                    cc.new_gp32("lo"),
                    cc.new_gp32("hi"),
                    cc.new_gp32("a"),
                    cc.new_gp32("t"),
                );
                cc.set_arg(0, d)?;
                cc.set_arg_pair(1, lo, hi)?;
                cc.set_arg(2, a)?;
                cc.cvttsd2si(t, d)?;
                cc.sub(lo, a)?;
                cc.sbb(hi, 0)?;
                let sign = cc.new_gp32("sign");
                cc.mov(sign, t)?;
                cc.sar(sign, 31)?;
                cc.add(lo, t)?;
                cc.adc(hi, sign)?;
                cc.ret(&[lo.into(), hi.into()])?;
                cc.end_func()?;
                let pairs_entry = cc.function_label("pairs");
                let scaled_entry = cc.function_label("scaled");
                cc.add_func(
                    "caller",
                    Signature::new(
                        caller_conv,
                        &[ValType::I64, ValType::I32, ValType::I32],
                        &[ValType::I64],
                    ),
                )?;
                let (x_lo, x_hi, a, b) = (
                    cc.new_gp32("x_lo"),
                    cc.new_gp32("x_hi"),
                    cc.new_gp32("a"),
                    cc.new_gp32("b"),
                );
                cc.set_arg_pair(0, x_lo, x_hi)?;
                cc.set_arg(1, a)?;
                cc.set_arg(2, b)?;
                let (lo, hi) = (cc.new_gp32("lo"), cc.new_gp32("hi"));
                cc.invoke(
                    pairs_entry.into(),
                    Signature::new(
                        callee_conv,
                        &[ValType::I32, ValType::I64, ValType::I32, ValType::I64],
                        &[ValType::I64],
                    ),
                    &[
                        a.into(),
                        x_lo.into(),
                        x_hi.into(),
                        b.into(),
                        Operand::Imm(i64::from(Y as u32 as i32)),
                        Operand::Imm(i64::from((Y >> 32) as u32 as i32)),
                    ],
                    &[lo.into(), hi.into()],
                )?;
                let (d, lo2, hi2) = (cc.new_xmm("d"), cc.new_gp32("lo2"), cc.new_gp32("hi2"));
                cc.cvtsi2sd(d, b)?;
                cc.invoke(
                    scaled_entry.into(),
                    scaled_sig.clone(),
                    &[d.into(), lo.into(), hi.into(), a.into()],
                    &[lo2.into(), hi2.into()],
                )?;
                // x, a and b live across both calls.
                cc.xor_(lo2, x_hi)?;
                cc.add(hi2, x_lo)?;
                cc.xor_(lo2, a)?;
                cc.sub(hi2, b)?;
                cc.ret(&[lo2.into(), hi2.into()])?;
                cc.end_func()
            })?;
            let caller = load(&mut m, &code, "caller")?;
            for (k, &x) in WIDE_VALUES.iter().enumerate() {
                let (a, b) = (0x1357_9BDF ^ k as u32, (k as u32).wrapping_mul(0x9E37_79B9));
                let (xl, xh) = (x as u32, (x >> 32) as u32);
                let r = pairs(a, x, b, Y);
                let r = r
                    .wrapping_add(i64::from(b as i32) as u64)
                    .wrapping_sub(u64::from(a));
                let want_lo = (r as u32) ^ xh ^ a;
                let want_hi = ((r >> 32) as u32).wrapping_add(xl).wrapping_sub(b);
                let want = u64::from(want_hi) << 32 | u64::from(want_lo);
                let args = if caller_conv == X86Target::FASTCALL {
                    [a, b, xl, xh]
                } else {
                    [xl, xh, a, b]
                };
                let got = m.call(caller, harness_conv(caller_conv), &args);
                assert_eq!(
                    got, want,
                    "{caller_conv:?} caller of {callee_conv:?} {args:x?}\n{listing}"
                );
            }
        }
    }
    Ok(())
}

/// `(a, b) -> i64` returning the product's halves exchanged: `mul` leaves
/// the high half in edx and the low in eax, `ret(hi, lo)` wants them the
/// other way round, a two-register cycle of fixed uses that the allocator
/// breaks with one `xchg eax, edx` (`92`), not three moves through a
/// scratch register: in one block (the local allocator) and after a
/// branch (the general scan).
#[test]
fn swapped_i64_halves_are_exchanged_with_one_xchg() -> Result<(), Error> {
    for branch in [false, true] {
        let (code, listing) = compile32(|cc| {
            cc.add_func(
                "swapped",
                Signature::new(X86Target::CDECL, &[ValType::I32; 2], &[ValType::I64]),
            )?;
            let (a, b) = (cc.new_gp32("a"), cc.new_gp32("b"));
            cc.set_arg(0, a)?;
            cc.set_arg(1, b)?;
            let (hi, lo) = (cc.new_gp32("hi"), cc.new_gp32("lo"));
            cc.mov(lo, a)?;
            cc.mul(hi, lo, b)?;
            if branch {
                let done = cc.new_label();
                cc.test(b, b)?;
                cc.je(done)?;
                cc.bind(done)?;
            }
            cc.ret(&[hi.into(), lo.into()])?;
            cc.end_func()
        })?;
        check_swapped(&code, &listing)?;
    }
    Ok(())
}

/// Checks the code of `swapped`: one `xchg eax, edx` and no move between
/// the `mul` and the `ret` (decoded independently), and the results, run
/// natively.
fn check_swapped(code: &CodeHolder, listing: &str) -> Result<(), Error> {
    let bytes = code.finalize()?;
    let mut decoder = iced_x86::Decoder::new(32, &bytes, iced_x86::DecoderOptions::NONE);
    let decoded: Vec<iced_x86::Instruction> = decoder.iter().collect();
    let ret = decoded
        .iter()
        .position(|d| d.mnemonic() == iced_x86::Mnemonic::Ret)
        .expect("a ret");
    let xchgs: Vec<usize> = decoded
        .iter()
        .filter(|d| d.mnemonic() == iced_x86::Mnemonic::Xchg)
        .map(|d| d.len())
        .collect();
    assert_eq!(xchgs, [1], "one xchg eax, edx (0x92)\n{listing}");
    let movs = decoded[..ret]
        .iter()
        .rev()
        .take_while(|d| d.mnemonic() != iced_x86::Mnemonic::Mul)
        .filter(|d| d.mnemonic() == iced_x86::Mnemonic::Mov)
        .count();
    assert_eq!(movs, 0, "moves after the mul\n{listing}");
    let mut m = Compat32::new();
    let entry = load(&mut m, code, "swapped")?;
    for (a, b) in [
        (3u32, 5u32),
        (0xFFFF_FFFF, 0xFFFF_FFFF),
        (0x1234_5678, 0x9ABC_DEF0),
    ] {
        let product = u64::from(a) * u64::from(b);
        let want = product.rotate_left(32);
        assert_eq!(
            m.call(entry, Conv::Stack, &[a, b]),
            want,
            "({a}, {b})\n{listing}"
        );
    }
    Ok(())
}
