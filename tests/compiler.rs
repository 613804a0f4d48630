//! The Compiler end to end: functions written on virtual registers are
//! lowered, allocated, emitted, put in executable memory and run; every
//! result is compared with the same computation in Rust. These are AsmJit's
//! compiler scenarios written anew; each compiles twice, with and without a
//! logger, and the bytes must be the same (`compile_twice`).

use jitforge::compiler::{Compiler, Signature, ValType, X86Target};
use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error, JitCode, JitRuntime};

fn sig(params: usize) -> Signature {
    Signature::new(
        X86Target::SYSV64,
        &vec![ValType::I64; params],
        &[ValType::I64],
    )
}

fn build(f: impl Fn(&mut Compiler<'_>) -> Result<(), Error>) -> Result<JitCode, Error> {
    Ok(build_with_stats(f)?.0)
}

/// Compiles with `f` twice, with and without a logger, asserts that the
/// bytes are the same, and puts the code in executable memory.
fn build_with_stats(
    f: impl Fn(&mut Compiler<'_>) -> Result<(), Error>,
) -> Result<(JitCode, jitforge_regalloc::Stats), Error> {
    let (code, stats, _) = compile_twice(f)?;
    Ok((JitRuntime::new()?.add(&code)?, stats))
}

/// The code holder and statistics of `f` compiled without a logger, and the
/// listing of the same compiled with one (the bytes must be the same).
fn compile_twice(
    f: impl Fn(&mut Compiler<'_>) -> Result<(), Error>,
) -> Result<(CodeHolder, jitforge_regalloc::Stats, String), Error> {
    let compile = |log: bool| -> Result<(CodeHolder, jitforge_regalloc::Stats, String), Error> {
        let mut code = CodeHolder::new(Arch::X64);
        let mut listing = jitforge::x86::text::listing::Listing::new();
        let stats;
        {
            let mut cc = Compiler::new(&mut code);
            cc.set_checked(true);
            if log {
                cc.set_logger(Some(&mut listing));
            }
            f(&mut cc)?;
            cc.finalize()?;
            stats = cc.last_stats();
        }
        Ok((code, stats, listing.to_string()))
    };
    let (code, stats, _) = compile(false)?;
    let (logged, _, text) = compile(true)?;
    assert_eq!(
        code.finalize()?,
        logged.finalize()?,
        "the logger changed the bytes:\n{text}"
    );
    Ok((code, stats, text))
}

#[test]
fn empty_function_returns_its_argument() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("id", sig(1))?;
        let a = cc.new_gp64("a");
        cc.set_arg(0, a)?;
        cc.ret(&[a.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of one integer.
    let f: extern "C" fn(u64) -> u64 = unsafe { code.function() };
    assert_eq!(f(77), 77);
    Ok(())
}

#[test]
fn counted_loop_sums_an_array() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("sum", sig(2))?;
        let (p, n) = (cc.new_gp64("p"), cc.new_gp64("n"));
        let (sum, i) = (cc.new_gp64("sum"), cc.new_gp64("i"));
        cc.set_arg(0, p)?;
        cc.set_arg(1, n)?;
        cc.xor_(sum, sum)?;
        cc.xor_(i, i)?;
        let top = cc.new_label();
        let done = cc.new_label();
        cc.test(n, n)?;
        cc.je(done)?;
        cc.bind(top)?;
        cc.add(sum, qword_ptr(p + i * 8))?;
        cc.inc(i)?;
        cc.cmp(i, n)?;
        cc.jne(top)?;
        cc.bind(done)?;
        cc.ret(&[sum.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (pointer, length) -> u64.
    let f: extern "C" fn(*const u64, u64) -> u64 = unsafe { code.function() };
    let data: Vec<u64> = (1..=100).collect();
    assert_eq!(f(data.as_ptr(), data.len() as u64), 5050);
    assert_eq!(f(data.as_ptr(), 0), 0);
    Ok(())
}

#[test]
fn if_else_diamond() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("max", sig(2))?;
        let (a, b, r) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("r"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        let else_ = cc.new_label();
        let end = cc.new_label();
        cc.cmp(a, b)?;
        cc.jl(else_)?;
        cc.mov(r, a)?;
        cc.jmp(end)?;
        cc.bind(else_)?;
        cc.mov(r, b)?;
        cc.bind(end)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of two integers.
    let f: extern "C" fn(i64, i64) -> i64 = unsafe { code.function() };
    assert_eq!(f(3, 9), 9);
    assert_eq!(f(-3, -9), -3);
    Ok(())
}

#[test]
fn eight_pointer_arguments_and_sub_registers() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("sum8", sig(8))?;
        let regs: Vec<Gp64> = (0..8).map(|i| cc.new_gp64(&format!("a{i}"))).collect();
        for (i, r) in regs.iter().enumerate() {
            cc.set_arg(i, *r)?;
        }
        let acc = cc.new_gp64("acc");
        cc.mov(acc, regs[0])?;
        for r in &regs[1..] {
            cc.add(acc, *r)?;
        }
        cc.ret(&[acc.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of eight integers (two on the stack).
    let f: extern "C" fn(u64, u64, u64, u64, u64, u64, u64, u64) -> u64 =
        unsafe { code.function() };
    assert_eq!(f(1, 2, 3, 4, 5, 6, 7, 8), 36);
    Ok(())
}

/// Workload B: 64 live values and 10,000 operations force spills
/// (compiled with the allocation checker on).
#[test]
fn workload_b_register_pressure() -> Result<(), Error> {
    use jitforge::workloads::{WORKLOAD_B_RESULT, workload_b, workload_b_input};
    let runtime = JitRuntime::new()?;
    let b = workload_b(&runtime, 10_000, true)?;
    // SAFETY: workload B's function takes a pointer to 64 u64.
    let f: extern "C" fn(*const u64) -> u64 = unsafe { b.code.function() };
    assert_eq!(f(workload_b_input().as_ptr()), WORKLOAD_B_RESULT);
    Ok(())
}

/// Workload C: small functions, each compiled and made executable on its
/// own, checked one by one against the host computation.
#[test]
fn workload_c_small_functions() -> Result<(), Error> {
    use jitforge::workloads::{Lcg, WORKLOAD_C_ARGS, WORKLOAD_C_RESULT, workload_c};
    let runtime = JitRuntime::new()?;
    let (x, y) = WORKLOAD_C_ARGS;
    let mut xor = 0u64;
    for k in (0..10_000u64).step_by(100) {
        let function = workload_c(&runtime, k, true)?;
        // SAFETY: workload C's functions take two integers.
        let f: extern "C" fn(u64, u64) -> u64 = unsafe { function.function() };
        let mut v = [x, y, x ^ y, x.wrapping_add(1)];
        let mut rng = Lcg(k + 1);
        for _ in 0..20 {
            let r = rng.next();
            let (op, d, s) = (r % 4, ((r >> 2) % 4) as usize, ((r >> 8) % 4) as usize);
            v[d] = match op {
                0 => v[d].wrapping_add(v[s]),
                1 => v[d].wrapping_sub(v[s]),
                2 => v[d] ^ v[s],
                _ => v[d].wrapping_mul(v[s]),
            };
        }
        let got = f(x, y);
        assert_eq!(got, v[0] ^ v[1] ^ v[2] ^ v[3], "k = {k}");
        xor ^= got;
    }
    assert_eq!(xor, WORKLOAD_C_RESULT);
    Ok(())
}

/// Workload A through the Builder gives the byte counts of the spec.
#[test]
fn workload_a_through_the_builder() -> Result<(), Error> {
    assert_eq!(
        jitforge::workloads::workload_a(false, 100)?.len(),
        100 * 167
    );
    assert_eq!(jitforge::workloads::workload_a(true, 100)?.len(), 100 * 88);
    Ok(())
}

#[test]
fn errors_are_specific() {
    let mut code = CodeHolder::new(Arch::X64);
    let mut cc = Compiler::new(&mut code);
    assert!(cc.new_label().id() < 10);
    cc.add_func("f", sig(1)).expect("add_func");
    let a = cc.new_gp64("a");
    let err = cc.set_arg(3, a).unwrap_err();
    assert!(
        err.to_string().contains("argument index 3 is out of range"),
        "{err}"
    );
    let err = cc
        .emit(Mnemonic::Add, &[a.into(), xmm0.into()])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInstruction { .. }), "{err}");
    let foreign = Gp64::new_virtual(999);
    let err = cc.add(a, foreign).unwrap_err();
    assert!(
        err.to_string().contains("does not belong to function f"),
        "{err}"
    );
    assert!(cc.add_func("g", sig(0)).is_err());
    let err = cc.end_func().unwrap_err();
    assert!(err.to_string().contains("falls off its end"), "{err}");
    // A register of an earlier function, with an index the next one also has.
    cc.add_func("h", sig(1)).expect("add_func");
    let b = cc.new_gp64("b");
    let err = cc.set_arg(0, a).unwrap_err();
    assert!(err.to_string().contains("earlier function"), "{err}");
    cc.set_arg(0, b).expect("set_arg");
    let err = cc.add(b, a).unwrap_err();
    assert!(
        err.to_string().contains("belongs to an earlier function"),
        "{err}"
    );
    // A register made outside any function.
    cc.ret(&[b.into()]).expect("ret");
    cc.end_func().expect("end_func");
    let outside = cc.new_gp64("outside");
    cc.add_func("k", sig(1)).expect("add_func");
    let err = cc.set_arg(0, outside).unwrap_err();
    assert!(err.to_string().contains("outside a function"), "{err}");
    // A jump to a label never bound, and a call with a signature mismatch.
    let nowhere = cc.new_label();
    let c = cc.new_gp64("c");
    cc.set_arg(0, c).expect("set_arg");
    let err = cc
        .invoke(Operand::Imm(0x1000), sig(2), &[c.into()], &[c.into()])
        .unwrap_err();
    assert!(err.to_string().contains("signature takes 2"), "{err}");
    cc.jmp(nowhere).expect("jmp");
    let err = cc.end_func().unwrap_err();
    assert!(err.to_string().contains("never bound"), "{err}");
    // A call of a function of this Compiler with another signature, and a
    // plain jump to another function.
    let h = cc.function_label("h");
    cc.add_func("m", sig(1)).expect("add_func");
    let d = cc.new_gp64("d");
    cc.set_arg(0, d).expect("set_arg");
    let err = cc
        .invoke(h.into(), sig(2), &[d.into(), d.into()], &[d.into()])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("function h has the signature (i64) -> (i64) sysv64"),
        "{err}"
    );
    cc.jmp(h).expect("jmp");
    let err = cc.end_func().unwrap_err();
    assert!(err.to_string().contains("use Compiler::tail_call"), "{err}");
    // A 32-bit convention in 64-bit code, for the function and for a call.
    let sig32 = Signature::new(X86Target::CDECL, &[ValType::I32], &[ValType::I32]);
    cc.add_func("n", sig32).expect("add_func");
    let e = cc.new_gp32("e");
    cc.set_arg(0, e).expect("set_arg");
    cc.ret(&[e.into()]).expect("ret");
    let err = cc.end_func().unwrap_err();
    assert!(
        err.to_string().contains(
            "function n (64-bit): its signature uses the 32-bit calling convention cdecl"
        ),
        "{err}"
    );
    cc.add_func("p", sig(1)).expect("add_func");
    let q = cc.new_gp64("q");
    cc.set_arg(0, q).expect("set_arg");
    let stdcall = Signature::new(X86Target::STDCALL, &[ValType::I32], &[ValType::I32]);
    cc.invoke(
        Operand::Imm(0x1000),
        stdcall,
        &[q.r32().into()],
        &[q.r32().into()],
    )
    .expect("invoke");
    cc.ret(&[q.into()]).expect("ret");
    let err = cc.end_func().unwrap_err();
    assert!(
        err.to_string()
            .contains("a call uses the 32-bit calling convention stdcall"),
        "{err}"
    );
}

extern "C" fn host_mix(a: u64, b: u64, c: u64) -> u64 {
    a.wrapping_mul(100)
        .wrapping_add(b.wrapping_mul(10))
        .wrapping_add(c)
}

#[test]
fn calls_with_permuted_arguments_and_values_live_across() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("caller", sig(3))?;
        let (a, b, c) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("c"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, c)?;
        let keep = cc.new_gp64("keep");
        cc.lea(keep, ptr(a + b))?;
        let r1 = cc.new_gp64("r1");
        let r2 = cc.new_gp64("r2");
        let address = host_mix as extern "C" fn(u64, u64, u64) -> u64 as usize as i64;
        // Permuted arguments, then the same value passed twice.
        cc.invoke(
            Operand::Imm(address),
            sig(3),
            &[c.into(), a.into(), b.into()],
            &[r1.into()],
        )?;
        cc.invoke(
            Operand::Imm(address),
            sig(3),
            &[r1.into(), r1.into(), Operand::Imm(7)],
            &[r2.into()],
        )?;
        cc.add(r2, keep)?;
        cc.ret(&[r2.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of three integers.
    let f: extern "C" fn(u64, u64, u64) -> u64 = unsafe { code.function() };
    let r1 = host_mix(3, 1, 2);
    assert_eq!(f(1, 2, 3), host_mix(r1, r1, 7) + 3);
    Ok(())
}

#[test]
fn two_functions_calling_each_other_and_self_recursion() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let (code, _, _) = compile_twice(|cc| {
        let fib_entry = cc.add_func("fib", sig(1))?;
        let n = cc.new_gp64("n");
        cc.set_arg(0, n)?;
        let small = cc.new_label();
        cc.cmp(n, 2)?;
        cc.jb(small)?;
        let (n1, n2, r1, r2) = (
            cc.new_gp64("n1"),
            cc.new_gp64("n2"),
            cc.new_gp64("r1"),
            cc.new_gp64("r2"),
        );
        cc.lea(n1, ptr(n - 1))?;
        cc.lea(n2, ptr(n - 2))?;
        cc.invoke(fib_entry.into(), sig(1), &[n1.into()], &[r1.into()])?;
        cc.invoke(fib_entry.into(), sig(1), &[n2.into()], &[r2.into()])?;
        cc.add(r1, r2)?;
        cc.ret(&[r1.into()])?;
        cc.bind(small)?;
        cc.ret(&[n.into()])?;
        cc.end_func()?;
        // A second function calling the first.
        cc.add_func("fib_plus_one", sig(1))?;
        let x = cc.new_gp64("x");
        cc.set_arg(0, x)?;
        let y = cc.new_gp64("y");
        cc.invoke(fib_entry.into(), sig(1), &[x.into()], &[y.into()])?;
        cc.inc(y)?;
        cc.ret(&[y.into()])?;
        cc.end_func()
    })?;
    let function = runtime.add(&code)?;
    // SAFETY: System V function of one integer at the start of the code.
    let fib: extern "C" fn(u64) -> u64 = unsafe { function.function() };
    assert_eq!(fib(20), 6765);
    let plus_one = entry_of::<extern "C" fn(u64) -> u64>(&code, &function, "fib_plus_one");
    assert_eq!(plus_one(10), 56);
    Ok(())
}

/// 32 live values across a loop: spills over the back edge, edge moves.
#[test]
fn thirty_two_values_live_across_a_loop() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("spin", sig(2))?;
        let (p, n) = (cc.new_gp64("p"), cc.new_gp64("n"));
        cc.set_arg(0, p)?;
        cc.set_arg(1, n)?;
        let v: Vec<Gp64> = (0..32).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.mov(*r, qword_ptr(p + 8 * i as i32))?;
        }
        let top = cc.new_label();
        let done = cc.new_label();
        cc.test(n, n)?;
        cc.je(done)?;
        cc.bind(top)?;
        for i in 0..32 {
            cc.add(v[i], v[(i + 1) % 32])?;
            if i % 5 == 0 {
                cc.imul_3(v[i], v[i], 3)?;
            }
        }
        cc.dec(n)?;
        cc.jne(top)?;
        cc.bind(done)?;
        let sum = cc.new_gp64("sum");
        cc.mov(sum, v[0])?;
        for r in &v[1..] {
            cc.xor_(sum, *r)?;
        }
        cc.ret(&[sum.into()])?;
        cc.end_func()
    })?;
    let input: Vec<u64> = (0..32u64).map(|i| i * 7 + 1).collect();
    let expected = |n: u64| {
        let mut v = input.clone();
        for _ in 0..n {
            for i in 0..32 {
                v[i] = v[i].wrapping_add(v[(i + 1) % 32]);
                if i % 5 == 0 {
                    v[i] = v[i].wrapping_mul(3);
                }
            }
        }
        v.iter().fold(0, |a, b| a ^ b)
    };
    // SAFETY: System V function (pointer to 32 u64, count).
    let f: extern "C" fn(*const u64, u64) -> u64 = unsafe { code.function() };
    for n in [0, 1, 2, 17] {
        assert_eq!(f(input.as_ptr(), n), expected(n), "n = {n}");
    }
    Ok(())
}

/// Diamonds inside a loop under pressure: values take different places on
/// different paths, so the allocator splits critical edges.
#[test]
fn branches_inside_a_loop_under_pressure() -> Result<(), Error> {
    let (code, stats) = build_with_stats(|cc| {
        cc.add_func("mix", sig(2))?;
        let (p, n) = (cc.new_gp64("p"), cc.new_gp64("n"));
        cc.set_arg(0, p)?;
        cc.set_arg(1, n)?;
        let v: Vec<Gp64> = (0..20).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.mov(*r, qword_ptr(p + 8 * i as i32))?;
        }
        let top = cc.new_label();
        let odd = cc.new_label();
        let next = cc.new_label();
        let done = cc.new_label();
        cc.test(n, n)?;
        cc.je(done)?;
        cc.bind(top)?;
        cc.test(n, 1)?;
        cc.jne(odd)?;
        for i in 0..20 {
            cc.add(v[i], v[(i + 3) % 20])?;
        }
        cc.jmp(next)?;
        cc.bind(odd)?;
        for i in (0..20).rev() {
            cc.xor_(v[i], v[(i + 7) % 20])?;
        }
        cc.bind(next)?;
        cc.dec(n)?;
        cc.jne(top)?;
        cc.bind(done)?;
        let sum = cc.new_gp64("sum");
        cc.xor_(sum, sum)?;
        for r in &v {
            cc.add(sum, *r)?;
        }
        cc.ret(&[sum.into()])?;
        cc.end_func()
    })?;
    let input: Vec<u64> = (0..20u64)
        .map(|i| i.wrapping_mul(0x1234_5678_9abc) ^ 77)
        .collect();
    let expected = |mut n: u64| {
        let mut v = input.clone();
        while n != 0 {
            if n & 1 == 0 {
                for i in 0..20 {
                    v[i] = v[i].wrapping_add(v[(i + 3) % 20]);
                }
            } else {
                for i in (0..20).rev() {
                    v[i] ^= v[(i + 7) % 20];
                }
            }
            n -= 1;
        }
        v.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    };
    // SAFETY: System V function (pointer to 20 u64, count).
    let f: extern "C" fn(*const u64, u64) -> u64 = unsafe { code.function() };
    for n in [0, 1, 2, 3, 10] {
        assert_eq!(f(input.as_ptr(), n), expected(n), "n = {n}");
    }
    println!("{stats:?}");
    Ok(())
}

/// Random programs compiled and run versus interpreted (bounded here; the
/// cargo-fuzz target `compile_run` runs the same check for as long as asked).
#[test]
fn random_programs_agree_with_the_interpreter() {
    let mut state = 0x1234_5678u64;
    let cases: usize = std::env::var("COMPILER_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let (mut spills, mut splits) = (0u64, 0u64);
    for case in 0..cases {
        let len = 16 + (case % 7) * 40;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        match jitforge::compiler::fuzzing::check_program(&data) {
            Ok(stats) => {
                spills += stats.stores as u64;
                splits += stats.edge_splits as u64;
            }
            Err(e) => panic!("case {case} ({data:?}): {e}"),
        }
    }
    println!("{cases} programs: {spills} spill stores, {splits} split edges");
}

#[test]
fn sub_registers_and_partial_writes() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("bytes", sig(2))?;
        let (a, b) = (cc.new_gp64("a"), cc.new_gp64("b"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        // mov a.r8, 0xFF keeps the upper 56 bits of a.
        cc.mov(a.r8(), 0xffu8 as i32)?;
        // movzx / movsx from a byte view.
        let z = cc.new_gp64("z");
        let s = cc.new_gp64("s");
        cc.movzx(z.r32(), b.r8())?;
        cc.movsx(s, b.r8())?;
        // setz writes only the low byte.
        let flag = cc.new_gp64("flag");
        cc.mov(flag, 0x100)?;
        cc.cmp(b, 0x80)?;
        cc.sete(flag.r8())?;
        cc.add(a, z)?;
        cc.add(a, s)?;
        cc.add(a, flag)?;
        cc.ret(&[a.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of two integers.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { code.function() };
    let expect = |a: u64, b: u64| {
        let a = (a & !0xff) | 0xff;
        let z = b & 0xff;
        let s = (b as u8 as i8) as i64 as u64;
        let flag = 0x100 | u64::from(b == 0x80);
        a.wrapping_add(z).wrapping_add(s).wrapping_add(flag)
    };
    for (a, b) in [(0x1234_5678_9abc_def0, 0x80), (1, 0x17f), (u64::MAX, 5)] {
        assert_eq!(f(a, b), expect(a, b), "{a:#x} {b:#x}");
    }
    Ok(())
}

#[test]
fn doubles_in_and_out() -> Result<(), Error> {
    let code = build(|cc| {
        let s = Signature::new(
            X86Target::SYSV64,
            &[ValType::F64, ValType::F64, ValType::I64],
            &[ValType::F64],
        );
        cc.add_func("fma", s)?;
        let (x, y) = (cc.new_xmm("x"), cc.new_xmm("y"));
        let n = cc.new_gp64("n");
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        cc.set_arg(2, n)?;
        let t = cc.new_xmm("t");
        cc.cvtsi2sd(t, n)?;
        cc.mulsd(x, y)?;
        cc.addsd(x, t)?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (double, double, i64) -> double.
    let f: extern "C" fn(f64, f64, i64) -> f64 = unsafe { code.function() };
    assert_eq!(f(1.5, 4.0, 10), 16.0);
    Ok(())
}

#[test]
fn jump_table_with_annotated_targets() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("switch", sig(1))?;
        let i = cc.new_gp64("i");
        cc.set_arg(0, i)?;
        let r = cc.new_gp64("r");
        let cases: Vec<_> = (0..4).map(|_| cc.new_label()).collect();
        let end = cc.new_label();
        cc.jump_table(i, &cases)?;
        for (k, case) in cases.iter().enumerate() {
            cc.bind(*case)?;
            cc.mov(r, 10 * (k as i32 + 1))?;
            cc.jmp(end)?;
        }
        cc.bind(end)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of one integer in 0..4.
    let f: extern "C" fn(u64) -> u64 = unsafe { code.function() };
    for k in 0..4 {
        assert_eq!(f(k), 10 * (k + 1));
    }
    Ok(())
}

/// The same switch without annotation: a table of label addresses and a
/// plain `jmp [base + i*8]`; the allocator assumes the jump may reach every
/// label whose address is taken. Values live across the jump survive.
#[test]
fn jump_table_without_annotation() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("switch", sig(2))?;
        let (i, k) = (cc.new_gp64("i"), cc.new_gp64("k"));
        cc.set_arg(0, i)?;
        cc.set_arg(1, k)?;
        let r = cc.new_gp64("r");
        let cases: Vec<_> = (0..4).map(|_| cc.new_label()).collect();
        let end = cc.new_label();
        let table = cc.new_label_table(&cases)?;
        let base = cc.new_gp64("base");
        cc.lea(base, table)?;
        cc.jmp(qword_ptr(base + i * 8))?;
        for (n, case) in cases.iter().enumerate() {
            cc.bind(*case)?;
            cc.imul_3(r, k, n as i32 + 2)?;
            cc.jmp(end)?;
        }
        cc.bind(end)?;
        cc.add(r, k)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of an index in 0..4 and an integer.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { code.function() };
    for n in 0..4 {
        assert_eq!(f(n, 10), 10 * (n + 2) + 10);
    }
    Ok(())
}

#[test]
fn local_constant_pool() -> Result<(), Error> {
    let code = build(|cc| {
        let s = Signature::new(X86Target::SYSV64, &[ValType::F64], &[ValType::F64]);
        cc.add_func("scale", s)?;
        let x = cc.new_xmm("x");
        cc.set_arg(0, x)?;
        let factor = cc.new_const(&2.5f64.to_le_bytes(), 8)?;
        let offset = cc.new_const(&0.25f64.to_le_bytes(), 8)?;
        cc.mulsd(x, factor.with_size(8))?;
        cc.addsd(x, offset.with_size(8))?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (double) -> double.
    let f: extern "C" fn(f64) -> f64 = unsafe { code.function() };
    assert_eq!(f(4.0), 10.25);
    Ok(())
}

/// The sum of 0..n in IR text (shared with tests/cli.rs).
const SUM_ARRAY: &str = include_str!("data/sum.ir");

#[test]
fn ir_text_runs_and_lists() -> Result<(), Error> {
    let out = jitforge::compiler::run::run(SUM_ARRAY, Some("sum"), &["0".into(), "10".into()])?;
    assert_eq!(out, "45");
    let listing = jitforge::compiler::run::compile_listing(SUM_ARRAY)?;
    assert!(listing.contains("; before allocation"), "{listing}");
    assert!(listing.contains("ret"), "{listing}");
    Ok(())
}

#[test]
fn logging_never_changes_the_bytes() -> Result<(), Error> {
    let build = |log: bool| -> Result<Vec<u8>, Error> {
        let mut code = CodeHolder::new(Arch::X64);
        let mut listing = jitforge::x86::text::listing::Listing::new();
        {
            let mut cc = Compiler::new(&mut code);
            if log {
                cc.set_logger(Some(&mut listing));
            }
            cc.add_ir_function(
                jitforge_ir::text::parse_function(SUM_ARRAY, X86Target::x64()).expect("parses"),
            )?;
            cc.finalize()?;
        }
        let bytes = code.finalize()?;
        if log {
            assert!(!listing.entries.is_empty());
            // Every logged instruction shows its final bytes (forward
            // branches too, whose labels were bound after them).
            for e in &listing.entries {
                assert_eq!(
                    &bytes[e.offset..e.offset + e.bytes.len()],
                    &e.bytes[..],
                    "{}",
                    e.text
                );
            }
        }
        Ok(bytes)
    };
    assert_eq!(build(true)?, build(false)?);
    Ok(())
}

extern "win64" fn host_win64(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64 {
    a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f
}

/// Windows x64: arguments in rcx, rdx, r8, r9, then the stack above the
/// 32-byte shadow space; both as the compiled function and as a callee.
#[test]
fn windows_x64_convention_both_ways() -> Result<(), Error> {
    let win = |n: usize| Signature::new(X86Target::WIN64, &vec![ValType::I64; n], &[ValType::I64]);
    let code = build(|cc| {
        cc.add_func("win", win(6))?;
        let a: Vec<Gp64> = (0..6).map(|i| cc.new_gp64(&format!("a{i}"))).collect();
        for (i, r) in a.iter().enumerate() {
            cc.set_arg(i, *r)?;
        }
        let r = cc.new_gp64("r");
        let address =
            host_win64 as extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64 as usize as i64;
        // Call back into a Windows x64 host function with the arguments reversed.
        let args: Vec<Operand> = a.iter().rev().map(|r| (*r).into()).collect();
        cc.invoke(Operand::Imm(address), win(6), &args, &[r.into()])?;
        cc.add(r, a[0])?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: a Windows x64 function of six integers.
    let f: extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64 = unsafe { code.function() };
    assert_eq!(f(1, 2, 3, 4, 5, 6), host_win64(6, 5, 4, 3, 2, 1) + 1);
    Ok(())
}

thread_local! {
    /// The arguments the last narrow-argument host saw.
    static NARROW_SEEN: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A callee built by rustc taking narrow integers: in a release build it
/// reads the whole 32-bit register (or stack dword) of each, trusting the
/// caller to have extended it.
#[allow(clippy::too_many_arguments)]
extern "C" fn host_narrow(a: u8, b: i8, c: u16, d: i16, e: u8, f: i8, g: u16, h: i16) -> i64 {
    let seen = [
        i64::from(a),
        i64::from(b),
        i64::from(c),
        i64::from(d),
        i64::from(e),
        i64::from(f),
        i64::from(g),
        i64::from(h),
    ];
    NARROW_SEEN.with(|s| *s.borrow_mut() = seen.to_vec());
    seen.iter().sum()
}

/// The same arguments read as the raw 32 bits passed, in any build.
#[allow(clippy::too_many_arguments)]
extern "C" fn host_raw(a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32) -> i64 {
    let seen = [a, b, c, d, e, f, g, h].map(i64::from);
    NARROW_SEEN.with(|s| *s.borrow_mut() = seen.to_vec());
    seen.iter().sum()
}

/// 8- and 16-bit arguments held in registers whose upper bits are garbage
/// (views of a 64-bit value, a whole 8-bit register, memory; the last two
/// on the stack) reach the callee widened to 32 bits by their types'
/// signedness.
#[test]
fn narrow_arguments_are_widened_by_their_signedness() -> Result<(), Error> {
    use ValType::{I8, I16, U8, U16};
    let narrow = Signature::new(
        X86Target::SYSV64,
        &[U8, I8, U16, I16, U8, I8, U16, I16],
        &[ValType::I64],
    );
    let code = build(|cc| {
        cc.add_func("caller", sig(3))?;
        let (x, p, callee) = (cc.new_gp64("x"), cc.new_gp64("p"), cc.new_gp64("callee"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, p)?;
        cc.set_arg(2, callee)?;
        // An 8-bit register written over a register full of ones.
        let ones = cc.new_gp64("ones");
        cc.mov(ones, -1)?;
        let byte = cc.new_gp8("byte");
        cc.mov(byte, ones.r8())?;
        cc.mov(byte, 0x9c)?;
        let r = cc.new_gp64("r");
        let args: [Operand; 8] = [
            x.r8().into(),
            x.r8().into(),
            x.r16().into(),
            x.r16().into(),
            byte.into(),
            byte_ptr(p).into(),
            word_ptr(p).into(),
            x.into(),
        ];
        cc.invoke(callee.into(), narrow.clone(), &args, &[r.into()])?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of three integers (value, pointer to two
    // readable bytes, address of a callee taking eight 32-bit-or-narrower
    // integers).
    let f: extern "C" fn(u64, *const u8, usize) -> i64 = unsafe { code.function() };
    let x = 0x7777_6666_5555_f0e1u64;
    let memory = [0x80u8, 0xff];
    type Narrow = extern "C" fn(u8, i8, u16, i16, u8, i8, u16, i16) -> i64;
    type Raw = extern "C" fn(u32, u32, u32, u32, u32, u32, u32, u32) -> i64;
    let want: [i64; 8] = [0xe1, -0x1f, 0xf0e1, -0x0f1f, 0x9c, -0x80, 0xff80, -0x0f1f];
    let r = f(x, memory.as_ptr(), host_narrow as Narrow as usize);
    assert_eq!(NARROW_SEEN.with(|s| s.borrow().clone()), want);
    assert_eq!(r, want.iter().sum::<i64>());
    // Each 32-bit register or stack dword holds the value extended.
    f(x, memory.as_ptr(), host_raw as Raw as usize);
    let raw: Vec<i64> = want.iter().map(|&v| i64::from(v as u32)).collect();
    assert_eq!(NARROW_SEEN.with(|s| s.borrow().clone()), raw);
    Ok(())
}

extern "C" fn host_touch(x: u64) -> u64 {
    x.rotate_left(7)
}

/// A function whose only vector operand is a physical ymm register (no
/// vector vreg, no label): `vzeroupper` still precedes its return (the
/// front end notes the register as it converts it; nothing searches for it).
#[test]
fn physical_ymm_alone_gets_vzeroupper() -> Result<(), Error> {
    // With ymm1 one `vzeroupper`; with xmm1 instead, none.
    for (wide, expected) in [(true, 1), (false, 0)] {
        let (_, _, text) = compile_twice(|cc| {
            cc.add_func("phys_vector", sig(1))?;
            let x = cc.new_gp64("x");
            cc.set_arg(0, x)?;
            if wide {
                cc.vpxor(ymm1, ymm1, ymm1)?;
            } else {
                cc.vpxor(xmm1, xmm1, xmm1)?;
            }
            cc.add(x, x)?;
            cc.ret(&[x.into()])?;
            cc.end_func()
        })?;
        assert_eq!(text.matches("vzeroupper").count(), expected, "{text}");
    }
    Ok(())
}

/// Eight ymm values live across a call: caller-saved vector registers are
/// spilled around it, and `vzeroupper` precedes the call and the return.
#[test]
fn ymm_values_live_across_a_call() -> Result<(), Error> {
    if !std::arch::is_x86_feature_detected!("avx2") {
        eprintln!("skipped: the host has no AVX2");
        return Ok(());
    }
    let runtime = JitRuntime::new()?;
    let (code, _, text) = compile_twice(|cc| {
        cc.add_func("ymm", sig(2))?;
        let (p, x) = (cc.new_gp64("p"), cc.new_gp64("x"));
        cc.set_arg(0, p)?;
        cc.set_arg(1, x)?;
        let v: Vec<Ymm> = (0..8).map(|i| cc.new_ymm(&format!("y{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.vmovdqu(*r, ymmword_ptr(p + 32 * i as i32))?;
        }
        let r = cc.new_gp64("r");
        let address = host_touch as extern "C" fn(u64) -> u64 as usize as i64;
        cc.invoke(Operand::Imm(address), sig(1), &[x.into()], &[r.into()])?;
        for i in 1..8 {
            cc.vpaddq(v[0], v[0], v[i])?;
        }
        cc.vmovdqu(ymmword_ptr(p), v[0])?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    assert_eq!(text.matches("vzeroupper").count(), 2, "{text}");
    // The function as written comes first, virtual registers by name.
    assert!(text.contains("; |   vpaddq %y0, %y0, %y1"), "{text}");
    let function = runtime.add(&code)?;
    // SAFETY: System V function (pointer to 8 x 32 bytes, integer) -> integer.
    let f: extern "C" fn(*mut u64, u64) -> u64 = unsafe { function.function() };
    let mut data: Vec<u64> = (0..32).collect();
    let want: Vec<u64> = (0..4)
        .map(|lane| (0..8).map(|i| data[i * 4 + lane]).sum())
        .collect();
    assert_eq!(f(data.as_mut_ptr(), 3), host_touch(3));
    assert_eq!(&data[..4], &want[..]);
    Ok(())
}

/// Stack memory indexed in a loop, with values live across the loop and a
/// call that needs the stack aligned.
#[test]
fn stack_memory_indexed_in_a_loop() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("squares", sig(1))?;
        let n = cc.new_gp64("n");
        cc.set_arg(0, n)?;
        let buffer = cc.new_stack(8 * 32, 16)?;
        let (i, sum, t) = (cc.new_gp64("i"), cc.new_gp64("sum"), cc.new_gp64("t"));
        cc.xor_(i, i)?;
        let fill = cc.new_label();
        cc.bind(fill)?;
        cc.mov(t, i)?;
        cc.imul_2(t, i)?;
        cc.mov(buffer.with_index(i, 8).with_size(8), t)?;
        cc.inc(i)?;
        cc.cmp(i, 32)?;
        cc.jne(fill)?;
        cc.xor_(sum, sum)?;
        cc.xor_(i, i)?;
        let add = cc.new_label();
        cc.bind(add)?;
        cc.add(sum, buffer.with_index(i, 8).with_size(8))?;
        cc.inc(i)?;
        cc.cmp(i, n)?;
        cc.jb(add)?;
        cc.ret(&[sum.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of one integer (at most 32).
    let f: extern "C" fn(u64) -> u64 = unsafe { code.function() };
    assert_eq!(f(32), (0..32u64).map(|i| i * i).sum::<u64>());
    assert_eq!(f(5), 30);
    Ok(())
}

#[test]
fn empty_function_and_label_shapes() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let (code, _, _) = compile_twice(|cc| {
        cc.add_func("empty", Signature::new(X86Target::SYSV64, &[], &[]))?;
        cc.ret(&[])?;
        cc.end_func()?;

        cc.add_func("shapes", sig(1))?;
        let x = cc.new_gp64("x");
        cc.set_arg(0, x)?;
        // 1,000 trivial `jmp L; L:` pairs.
        for _ in 0..1000 {
            let l = cc.new_label();
            cc.jmp(l)?;
            cc.bind(l)?;
        }
        // Several labels bound back to back, and jumps crossing each other.
        let (a, b, c, d) = (
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
        );
        cc.jmp(c)?;
        cc.bind(a)?;
        cc.bind(b)?;
        cc.add(x, 1)?;
        cc.jmp(d)?;
        // Unreachable code between jumps.
        cc.add(x, 1000)?;
        cc.bind(c)?;
        cc.add(x, 10)?;
        cc.jmp(b)?;
        cc.bind(d)?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    })?;
    let empty = code.label_by_name("empty").expect("named");
    assert_eq!(code.label_offset(empty).map(|(_, o)| o), Some(0));
    let function = runtime.add(&code)?;
    // SAFETY: the first function takes and returns nothing.
    let e: extern "C" fn() = unsafe { function.function() };
    e();
    let f = entry_of::<extern "C" fn(u64) -> u64>(&code, &function, "shapes");
    assert_eq!(f(5), 16);
    Ok(())
}

#[test]
fn invalid_ir_text_is_an_error() {
    let bad = "
func f(i64) -> (i64) sysv64 {
  gp64 %a, %b
  entry %a
  add %a, %b
  ret %a
}
";
    let err = jitforge::compiler::run::run(bad, None, &["1".into()]).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    let err = jitforge::compiler::run::run("func g(", None, &[]).unwrap_err();
    assert!(!err.to_string().is_empty());
}

/// A System V variadic call into libc: the double travels in xmm0 and `al`
/// must say so, or glibc's `snprintf` never saves xmm0 and prints garbage.
#[test]
fn variadic_call_into_snprintf() -> Result<(), Error> {
    let fixed = [ValType::I64, ValType::I64, ValType::I64];
    let snprintf_sig = Signature::new(X86Target::SYSV64, &fixed, &[ValType::I32]).variadic();
    let code = build(|cc| {
        let s = Signature::new(
            X86Target::SYSV64,
            &[
                ValType::I64,
                ValType::I64,
                ValType::I64,
                ValType::F64,
                ValType::F64,
            ],
            &[ValType::I32],
        );
        cc.add_func("format", s)?;
        let (buf, fmt, n) = (cc.new_gp64("buf"), cc.new_gp64("fmt"), cc.new_gp64("n"));
        let (x, y) = (cc.new_xmm("x"), cc.new_xmm("y"));
        for (i, arg) in [buf, fmt, n].into_iter().enumerate() {
            cc.set_arg(i, arg)?;
        }
        cc.set_arg(3, x)?;
        cc.set_arg(4, y)?;
        // The arguments go in a different order than they came, so the
        // allocator has to move every one of them.
        cc.mulsd(x, y)?;
        let len = cc.new_gp64("len");
        cc.mov(len, 64)?;
        let written = cc.new_gp32("written");
        let address = libc::snprintf
            as unsafe extern "C" fn(*mut libc::c_char, usize, *const libc::c_char, ...) -> i32
            as usize as i64;
        let args: Vec<Operand> = vec![
            buf.into(),
            len.into(),
            fmt.into(),
            y.into(),
            n.into(),
            x.into(),
        ];
        cc.invoke(
            Operand::Imm(address),
            snprintf_sig.clone(),
            &args,
            &[written.into()],
        )?;
        cc.ret(&[written.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (pointer, pointer, i64, double, double) -> i32.
    let f: extern "C" fn(*mut u8, *const u8, i64, f64, f64) -> i32 = unsafe { code.function() };
    let mut buf = [0u8; 64];
    let written = f(
        buf.as_mut_ptr(),
        c"%.2f %ld %.3f".as_ptr().cast(),
        -42,
        1.5,
        0.25,
    );
    let text = std::ffi::CStr::from_bytes_until_nul(&buf)
        .expect("terminated")
        .to_str()
        .expect("ascii");
    assert_eq!(text, "0.25 -42 0.375");
    assert_eq!(written as usize, text.len());

    // Too few arguments for the fixed part is still an error.
    let mut holder = CodeHolder::new(Arch::X64);
    let mut cc = Compiler::new(&mut holder);
    cc.add_func("bad", sig(0))?;
    let r = cc.new_gp32("r");
    let err = cc
        .invoke(Operand::Imm(0x1000), snprintf_sig, &[], &[r.into()])
        .expect_err("too few arguments");
    assert!(err.to_string().contains("at least 3"), "{err}");
    Ok(())
}

/// Widening `imul` and `mul`, and `idiv`/`div` of RDX:RAX, with the
/// implicit registers written as virtual registers (AsmJit's convention:
/// `hi, lo, src`); `cqo` sign-extends into `hi`. Values live across them in
/// rax and rdx are moved away.
#[test]
fn widening_multiply_and_divide_with_rdx_rax() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("wide", sig(3))?;
        let (a, b, out) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("out"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, out)?;
        let (hi, lo) = (cc.new_gp64("hi"), cc.new_gp64("lo"));
        // Signed 128-bit product of a and b.
        cc.mov(lo, a)?;
        cc.imul(hi, lo, b)?;
        cc.mov(qword_ptr(out), lo)?;
        cc.mov(qword_ptr(out + 8), hi)?;
        // Unsigned product, the multiplier taken from memory.
        let (uh, ul) = (cc.new_gp64("uh"), cc.new_gp64("ul"));
        cc.mov(ul, a)?;
        cc.mul(uh, ul, qword_ptr(out + 8))?;
        cc.mov(qword_ptr(out + 16), ul)?;
        cc.mov(qword_ptr(out + 24), uh)?;
        // Signed division of a by b: quotient and remainder.
        let (q, r) = (cc.new_gp64("q"), cc.new_gp64("r"));
        cc.mov(q, a)?;
        cc.cqo(r, q)?;
        cc.idiv(r, q, b)?;
        cc.mov(qword_ptr(out + 32), q)?;
        cc.mov(qword_ptr(out + 40), r)?;
        // 32-bit unsigned division; `lo` squared through `mul lo` (the same
        // register as an explicit operand is copied first).
        let (h32, l32) = (cc.new_gp32("h32"), cc.new_gp32("l32"));
        cc.mov(l32, a.r32())?;
        cc.xor_(h32, h32)?;
        cc.div(h32, l32, b.r32())?;
        cc.mov(dword_ptr(out + 48), l32)?;
        cc.mov(dword_ptr(out + 52), h32)?;
        let (sh, sl) = (cc.new_gp64("sh"), cc.new_gp64("sl"));
        cc.mov(sl, b)?;
        cc.mul(sh, sl, sl)?;
        cc.add(sl, sh)?;
        // a and b stay live across all of it.
        cc.add(sl, a)?;
        cc.add(sl, b)?;
        cc.ret(&[sl.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (i64, i64, pointer to 7 u64) -> u64.
    let f: extern "C" fn(i64, i64, *mut u64) -> u64 = unsafe { code.function() };
    for (a, b) in [
        (123_456_789_012i64, -98_765i64),
        (-7, 3),
        (i64::MAX, 2),
        (1 << 40, 1 << 30),
    ] {
        let mut out = [0u64; 7];
        let got = f(a, b, out.as_mut_ptr());
        let product = i128::from(a) * i128::from(b);
        assert_eq!(out[0], product as u64, "{a} * {b}");
        assert_eq!(out[1], (product >> 64) as u64, "{a} * {b}");
        let unsigned = u128::from(a as u64) * u128::from(out[1]);
        assert_eq!(out[2], unsigned as u64);
        assert_eq!(out[3], (unsigned >> 64) as u64);
        assert_eq!(out[4], (a / b) as u64, "{a} / {b}");
        assert_eq!(out[5], (a % b) as u64, "{a} % {b}");
        let (a32, b32) = (a as u32, b as u32);
        assert_eq!(out[6], u64::from(a32 / b32) | u64::from(a32 % b32) << 32);
        let square = u128::from(b as u64) * u128::from(b as u64);
        let want = (square as u64)
            .wrapping_add((square >> 64) as u64)
            .wrapping_add(a as u64)
            .wrapping_add(b as u64);
        assert_eq!(got, want);
    }
    Ok(())
}

/// Shifts and rotates by CL: the count is a virtual register, fixed to rcx
/// at the instruction, while another value that would sit in rcx lives on.
#[test]
fn shifts_and_rotates_by_cl() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("shifts", sig(4))?;
        let (a, b, c, d) = (
            cc.new_gp64("a"),
            cc.new_gp64("b"),
            cc.new_gp64("c"),
            cc.new_gp64("d"),
        );
        for (i, r) in [a, b, c, d].into_iter().enumerate() {
            cc.set_arg(i, r)?;
        }
        let n = cc.new_gp64("n");
        cc.mov(n, d)?;
        cc.and_(n, 63)?;
        cc.shl(a, n.r8())?;
        cc.shr(b, n.r8())?;
        cc.sar(c, n.r8())?;
        let (r1, r2) = (cc.new_gp64("r1"), cc.new_gp64("r2"));
        cc.mov(r1, d)?;
        cc.rol(r1, n.r8())?;
        cc.mov(r2, d)?;
        cc.ror(r2.r32(), n.r8())?;
        cc.xor_(a, b)?;
        cc.xor_(a, c)?;
        cc.xor_(a, r1)?;
        cc.add(a, r2)?;
        cc.add(a, d)?;
        cc.ret(&[a.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of four integers.
    let f: extern "C" fn(u64, u64, i64, u64) -> u64 = unsafe { code.function() };
    for (a, b, c, d) in [
        (1u64, u64::MAX, -5i64, 3u64),
        (0xdead_beef, 77, i64::MIN, 67),
        (5, 6, 7, 0),
    ] {
        let n = (d & 63) as u32;
        let want = ((a << n) ^ (b >> n) ^ ((c >> n) as u64) ^ d.rotate_left(n))
            .wrapping_add(u64::from((d as u32).rotate_right(n & 31)))
            .wrapping_add(d);
        assert_eq!(f(a, b, c, d), want, "{a} {b} {c} {d}");
    }
    Ok(())
}

/// `rep movsb` and `rep stosb` with the count, source, destination and
/// value in virtual registers (`cc.rep(count).movsb(dst, src)`), and
/// `repne scasb` as a memchr.
#[test]
fn rep_string_instructions() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("strings", sig(3))?;
        let (dst, src, n) = (cc.new_gp64("dst"), cc.new_gp64("src"), cc.new_gp64("n"));
        cc.set_arg(0, dst)?;
        cc.set_arg(1, src)?;
        cc.set_arg(2, n)?;
        let (d, s, count) = (cc.new_gp64("d"), cc.new_gp64("s"), cc.new_gp64("count"));
        cc.mov(d, dst)?;
        cc.mov(s, src)?;
        cc.mov(count, n)?;
        cc.rep(count).movsb(d, s)?;
        // Fill 4 more bytes with 0x5A after the copy (d points past it).
        let (fill, value) = (cc.new_gp64("fill"), cc.new_gp8("value"));
        cc.mov(fill, 4)?;
        cc.mov(value, 0x5A)?;
        cc.rep(fill).stosb(d, value)?;
        // Find the first zero byte of the copy: repne scasb.
        let (scan, left, zero) = (cc.new_gp64("scan"), cc.new_gp64("left"), cc.new_gp8("zero"));
        cc.mov(scan, dst)?;
        cc.mov(left, n)?;
        cc.xor_(zero, zero)?;
        cc.repne(left).scasb(scan, zero)?;
        // scan points one past the match; n, dst stay live.
        cc.sub(scan, dst)?;
        cc.shl(scan, 32)?;
        cc.add(scan, n)?;
        cc.ret(&[scan.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (dst, src, n) -> u64; dst has room for n + 4 bytes.
    let f: extern "C" fn(*mut u8, *const u8, u64) -> u64 = unsafe { code.function() };
    let src: Vec<u8> = (1..=40u8).map(|i| if i == 23 { 0 } else { i }).collect();
    let mut dst = vec![0xEEu8; 48];
    let got = f(dst.as_mut_ptr(), src.as_ptr(), 40);
    assert_eq!(&dst[..40], &src[..]);
    assert_eq!(&dst[40..44], &[0x5A; 4]);
    assert_eq!(dst[44], 0xEE);
    assert_eq!(got, (23u64 << 32) | 40);
    Ok(())
}

/// `cpuid`, `rdtsc`, `lock cmpxchg` with their implicit registers bound:
/// cpuid leaf 0 gives the vendor string the host reports.
#[test]
fn cpuid_rdtsc_and_cmpxchg_with_bound_registers() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("probe", sig(2))?;
        let (out, cell) = (cc.new_gp64("out"), cc.new_gp64("cell"));
        cc.set_arg(0, out)?;
        cc.set_arg(1, cell)?;
        let (a, b, c, d) = (
            cc.new_gp32("a"),
            cc.new_gp32("b"),
            cc.new_gp32("c"),
            cc.new_gp32("d"),
        );
        cc.xor_(a, a)?;
        cc.xor_(c, c)?;
        cc.cpuid(a, b, c, d)?;
        cc.mov(dword_ptr(out), b)?;
        cc.mov(dword_ptr(out + 4), d)?;
        cc.mov(dword_ptr(out + 8), c)?;
        let (hi, lo) = (cc.new_gp32("hi"), cc.new_gp32("lo"));
        cc.rdtsc(hi, lo)?;
        cc.or_(hi, lo)?;
        // Compare-and-swap: *cell == 5 ? *cell = 9 : expected = *cell.
        let (expected, new) = (cc.new_gp64("expected"), cc.new_gp64("new"));
        cc.mov(expected, 5)?;
        cc.mov(new, 9)?;
        cc.lock().cmpxchg(qword_ptr(cell), new, expected)?;
        cc.mov(qword_ptr(out + 16), expected)?;
        let r = cc.new_gp64("r");
        cc.mov(r.r32(), hi)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (pointer to 24 bytes, pointer to u64) -> u64.
    let f: extern "C" fn(*mut u8, *mut u64) -> u64 = unsafe { code.function() };
    let mut out = [0u8; 24];
    let mut cell = 5u64;
    let _ = f(out.as_mut_ptr(), &mut cell);
    let host = std::arch::x86_64::__cpuid(0);
    let mut vendor = Vec::new();
    for r in [host.ebx, host.edx, host.ecx] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    assert_eq!(&out[..12], &vendor[..]);
    assert_eq!(cell, 9);
    assert_eq!(
        u64::from_le_bytes(out[16..24].try_into().expect("8 bytes")),
        5
    );
    // A failed exchange loads the current value into `expected`.
    cell = 7;
    let _ = f(out.as_mut_ptr(), &mut cell);
    assert_eq!(cell, 7);
    assert_eq!(
        u64::from_le_bytes(out[16..24].try_into().expect("8 bytes")),
        7
    );
    Ok(())
}

/// The dynamic path takes the same operands, and a missing or wrong
/// implicit operand is a specific error.
#[test]
fn implicit_operand_errors() {
    let mut code = CodeHolder::new(Arch::X64);
    let mut cc = Compiler::new(&mut code);
    cc.add_func("f", sig(1)).expect("add_func");
    let (a, b) = (cc.new_gp64("a"), cc.new_gp64("b"));
    let x = cc.new_xmm("x");
    // The dynamic path: the implicit registers first.
    let twice = cc
        .emit(Mnemonic::Idiv, &[a.into(), a.into(), b.into()])
        .unwrap_err();
    assert!(
        twice
            .to_string()
            .contains("stands for two implicit registers"),
        "{twice}"
    );
    cc.emit(Mnemonic::Idiv, &[a.into(), b.into(), a.into()])
        .expect("an explicit operand may name a bound register");
    cc.emit(Mnemonic::Cqo, &[a.into(), b.into()])
        .expect("cqo hi, lo");
    let missing = cc.emit(Mnemonic::Idiv, &[b.into()]).unwrap_err();
    assert!(
        missing.to_string().contains("reads rax, rdx implicitly")
            || missing.to_string().contains("reads rdx, rax implicitly"),
        "{missing}"
    );
    assert!(
        missing.to_string().contains("rdx, rax, then 1 explicit"),
        "{missing}"
    );
    let wrong_class = cc
        .emit(Mnemonic::Mul, &[a.into(), x.into(), b.into()])
        .unwrap_err();
    assert!(
        wrong_class.to_string().contains("operand 1 stands for rax"),
        "{wrong_class}"
    );
    let narrow = cc.new_gp8("narrow");
    let too_narrow = cc
        .emit(Mnemonic::Cqo, &[a.into(), narrow.into()])
        .unwrap_err();
    assert!(
        too_narrow.to_string().contains("at least 8 bytes"),
        "{too_narrow}"
    );
    let physical = cc.emit(Mnemonic::Cqo, &[rdx.into(), b.into()]).unwrap_err();
    assert!(
        physical.to_string().contains("physical register"),
        "{physical}"
    );
    // `rep movsb` without operands reads rcx, rsi, rdi.
    let bare = cc
        .options(InstOptions::REP)
        .emit(Mnemonic::Movsb, &[])
        .unwrap_err();
    assert!(bare.to_string().contains("implicitly"), "{bare}");
    // A write mask on an instruction that binds implicit registers.
    let (m, y, z) = (cc.new_k("m"), cc.new_xmm("y"), cc.new_xmm("z"));
    let err = cc
        .k(m)
        .emit(Mnemonic::Blendvps, &[x.into(), y.into(), z.into()])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInstruction { .. }), "{err}");
    cc.emit(Mnemonic::Blendvps, &[x.into(), y.into(), z.into()])
        .expect("blendvps x, y, mask (xmm0)");
    // A rep count on an instruction without implicit registers.
    let err = cc
        .rep(a)
        .emit(Mnemonic::Add, &[a.into(), b.into()])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInstruction { .. }), "{err}");
}

fn sig_of(params: &[ValType], rets: &[ValType]) -> Signature {
    Signature::new(X86Target::SYSV64, params, rets)
}

/// Five values live at once, and only the third argument used.
#[test]
fn five_live_values_and_only_the_third_argument() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("third", sig(3))?;
        let c = cc.new_gp64("c");
        cc.set_arg(2, c)?;
        let v: Vec<Gp64> = (0..5).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.lea(*r, ptr(c + (i as i32 + 1)))?;
        }
        for i in 0..5 {
            cc.imul_2(v[i], v[(i + 1) % 5])?;
        }
        for r in &v[1..] {
            cc.add(v[0], *r)?;
        }
        cc.ret(&[v[0].into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of three integers.
    let f: extern "C" fn(u64, u64, u64) -> u64 = unsafe { code.function() };
    let expect = |c: u64| {
        let mut v: Vec<u64> = (1..=5).map(|i| c.wrapping_add(i)).collect();
        for i in 0..5 {
            v[i] = v[i].wrapping_mul(v[(i + 1) % 5]);
        }
        v.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    };
    assert_eq!(f(999, 888, 7), expect(7));
    Ok(())
}

/// 8- and 16-bit arguments extended with `movsx`/`movzx`, and a 32-bit one.
#[test]
fn narrow_arguments_with_movsx_movzx() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func(
            "narrow",
            sig_of(
                &[ValType::I8, ValType::U16, ValType::U8, ValType::I32],
                &[ValType::I64],
            ),
        )?;
        let (a, b, c, d) = (
            cc.new_gp8("a"),
            cc.new_gp16("b"),
            cc.new_gp8("c"),
            cc.new_gp32("d"),
        );
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, c)?;
        cc.set_arg(3, d)?;
        let (x, y, z, w) = (
            cc.new_gp64("x"),
            cc.new_gp64("y"),
            cc.new_gp64("z"),
            cc.new_gp64("w"),
        );
        cc.movsx(x, a)?;
        cc.movzx(y.r32(), b)?;
        cc.movzx(z.r32(), c)?;
        cc.movsxd(w, d)?;
        cc.add(x, y)?;
        cc.add(x, z)?;
        cc.add(x, w)?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (i8, u16, u8, i32) -> i64.
    let f: extern "C" fn(i8, u16, u8, i32) -> i64 = unsafe { code.function() };
    assert_eq!(f(-3, 0xFFFF, 200, -100_000), -3 + 0xFFFF + 200 - 100_000);
    assert_eq!(f(127, 1, 255, 7), 127 + 1 + 255 + 7);
    Ok(())
}

/// Ten arguments (four on the stack), and the same value passed ten times.
#[test]
fn ten_arguments_and_the_same_value_ten_times() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let (code, _, _) = compile_twice(|cc| {
        let callee = cc.add_func("weigh", sig(10))?;
        let a: Vec<Gp64> = (0..10).map(|i| cc.new_gp64(&format!("a{i}"))).collect();
        for (i, r) in a.iter().enumerate() {
            cc.set_arg(i, *r)?;
        }
        let acc = cc.new_gp64("acc");
        cc.xor_(acc, acc)?;
        for (i, r) in a.iter().enumerate() {
            cc.imul_3(*r, *r, i as i32 + 1)?;
            cc.add(acc, *r)?;
        }
        cc.ret(&[acc.into()])?;
        cc.end_func()?;
        cc.add_func("caller", sig(1))?;
        let x = cc.new_gp64("x");
        cc.set_arg(0, x)?;
        let r = cc.new_gp64("r");
        let args: Vec<Operand> = (0..10).map(|_| x.into()).collect();
        cc.invoke(callee.into(), sig(10), &args, &[r.into()])?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    let function = runtime.add(&code)?;
    // SAFETY: the first function takes ten integers.
    let weigh: extern "C" fn(u64, u64, u64, u64, u64, u64, u64, u64, u64, u64) -> u64 =
        unsafe { function.function() };
    assert_eq!(
        weigh(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        (1..=10).map(|i| i * i).sum()
    );
    let caller = entry_of::<extern "C" fn(u64) -> u64>(&code, &function, "caller");
    assert_eq!(caller(3), 3 * 55);
    Ok(())
}

/// The function named `name` in `code`, placed as `function`.
fn entry_of<F: Copy>(code: &CodeHolder, function: &JitCode, name: &str) -> F {
    let offset = code
        .label_by_name(name)
        .and_then(|l| code.label_offset(l))
        .map(|(_, o)| o)
        .expect("the function is in the code");
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    let address = function.address() as usize + offset as usize;
    // SAFETY: F is a function pointer type (checked by size) and the address
    // is the entry of a function compiled with that signature.
    unsafe { std::mem::transmute_copy::<usize, F>(&address) }
}

/// Seven floats and doubles plus a pointer in registers, then more floats
/// than vector registers (the rest on the stack); a float return.
#[test]
fn floats_and_doubles_in_registers_and_on_the_stack() -> Result<(), Error> {
    use ValType::{F32, F64, I64};
    let code = build(|cc| {
        let params = [F32, F64, F32, F64, F32, F64, F32, I64, F64, F64, F32];
        cc.add_func("floats", sig_of(&params, &[F64]))?;
        let mut xs = Vec::new();
        for (i, t) in params.iter().enumerate() {
            if *t == I64 {
                let p = cc.new_gp64("p");
                cc.set_arg(i, p)?;
                xs.push(None);
                continue;
            }
            let x = cc.new_xmm(&format!("x{i}"));
            cc.set_arg(i, x)?;
            xs.push(Some((x, *t)));
        }
        let acc = cc.new_xmm("acc");
        cc.xorpd(acc, acc)?;
        let t = cc.new_xmm("t");
        for (k, entry) in xs.iter().enumerate() {
            let Some((x, ty)) = entry else { continue };
            if *ty == F32 {
                cc.cvtss2sd(t, *x)?;
            } else {
                cc.movsd_2(t, *x)?;
            }
            let scale = cc.new_gp64("scale");
            cc.mov(scale, k as i32 + 1)?;
            let s = cc.new_xmm("s");
            cc.cvtsi2sd(s, scale)?;
            cc.mulsd(t, s)?;
            cc.addsd(acc, t)?;
        }
        cc.ret(&[acc.into()])?;
        cc.end_func()
    })?;
    type Floats = extern "C" fn(f32, f64, f32, f64, f32, f64, f32, u64, f64, f64, f32) -> f64;
    // SAFETY: a System V function with this signature.
    let f: Floats = unsafe { code.function() };
    let args = [
        1.5f64, 2.25, -3.0, 4.5, 0.5, 6.0, 7.25, 0.0, 9.5, -10.0, 11.0,
    ];
    let want: f64 = args
        .iter()
        .enumerate()
        .map(|(k, a)| a * (k as f64 + 1.0))
        .sum();
    let got = f(1.5, 2.25, -3.0, 4.5, 0.5, 6.0, 7.25, 77, 9.5, -10.0, 11.0);
    assert_eq!(got, want);

    let code = build(|cc| {
        cc.add_func("half", sig_of(&[F32], &[F32]))?;
        let x = cc.new_xmm("x");
        cc.set_arg(0, x)?;
        let h = cc.new_const(&0.5f32.to_le_bytes(), 4)?;
        cc.mulss(x, h.with_size(4))?;
        cc.ret(&[x.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (float) -> float.
    let half: extern "C" fn(f32) -> f32 = unsafe { code.function() };
    assert_eq!(half(3.0), 1.5);
    Ok(())
}

/// 128-bit vector arguments and results (System V: in xmm registers),
/// also as a callee called from another JIT function.
#[test]
fn vector_arguments_and_returns() -> Result<(), Error> {
    use ValType::V128;
    use std::arch::x86_64::*;
    let runtime = JitRuntime::new()?;
    let (code, _, _) = compile_twice(|cc| {
        let add = cc.add_func("vadd", sig_of(&[V128, V128, V128], &[V128]))?;
        let (a, b, c) = (cc.new_xmm("a"), cc.new_xmm("b"), cc.new_xmm("c"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, c)?;
        cc.paddd(a, b)?;
        cc.psubd(a, c)?;
        cc.ret(&[a.into()])?;
        cc.end_func()?;
        cc.add_func("vcall", sig_of(&[V128], &[V128]))?;
        let x = cc.new_xmm("x");
        cc.set_arg(0, x)?;
        let (y, r) = (cc.new_xmm("y"), cc.new_xmm("r"));
        cc.pcmpeqd(y, y)?;
        cc.invoke(
            add.into(),
            sig_of(&[V128, V128, V128], &[V128]),
            &[x.into(), x.into(), y.into()],
            &[r.into()],
        )?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    let function = runtime.add(&code)?;
    // SAFETY: System V functions of __m128i values (SSE2 is baseline on x86-64).
    let vadd: extern "C" fn(__m128i, __m128i, __m128i) -> __m128i = unsafe { function.function() };
    let vcall = entry_of::<extern "C" fn(__m128i) -> __m128i>(&code, &function, "vcall");
    let lanes = |v: __m128i| -> [i32; 4] {
        // SAFETY: __m128i and [i32; 4] have the same size.
        unsafe { std::mem::transmute(v) }
    };
    // SAFETY: SSE2 is baseline on x86-64.
    let (a, b, c) = unsafe {
        (
            _mm_setr_epi32(1, 2, 3, 4),
            _mm_setr_epi32(10, 20, 30, 40),
            _mm_setr_epi32(100, 100, 100, 100),
        )
    };
    assert_eq!(lanes(vadd(a, b, c)), [-89, -78, -67, -56]);
    assert_eq!(lanes(vcall(b)), [21, 41, 61, 81]);
    Ok(())
}

/// `setz` straight to memory, and to a byte view.
#[test]
fn setz_to_memory() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("eq", sig(3))?;
        let (a, b, out) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("out"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, out)?;
        cc.cmp(a, b)?;
        cc.sete(byte_ptr(out))?;
        cc.setne(byte_ptr(out + 1))?;
        let r = cc.new_gp64("r");
        cc.xor_(r, r)?;
        cc.cmp(a, 0)?;
        cc.sete(r.r8())?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (u64, u64, pointer to 2 bytes) -> u64.
    let f: extern "C" fn(u64, u64, *mut u8) -> u64 = unsafe { code.function() };
    let mut out = [7u8; 2];
    assert_eq!(f(5, 5, out.as_mut_ptr()), 0);
    assert_eq!(out, [1, 0]);
    assert_eq!(f(0, 5, out.as_mut_ptr()), 1);
    assert_eq!(out, [0, 1]);
    Ok(())
}

/// Loops inside both branches of a diamond, and two loops sharing a counter.
#[test]
fn loops_inside_branches_and_a_shared_counter() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("loops", sig(2))?;
        let (a, n) = (cc.new_gp64("a"), cc.new_gp64("n"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, n)?;
        let (acc, i) = (cc.new_gp64("acc"), cc.new_gp64("i"));
        cc.xor_(acc, acc)?;
        let (odd, join) = (cc.new_label(), cc.new_label());
        cc.test(a, 1)?;
        cc.jne(odd)?;
        // Even: acc += a, n times.
        cc.mov(i, n)?;
        let l1 = cc.new_label();
        let skip1 = cc.new_label();
        cc.test(i, i)?;
        cc.je(skip1)?;
        cc.bind(l1)?;
        cc.add(acc, a)?;
        cc.dec(i)?;
        cc.jne(l1)?;
        cc.bind(skip1)?;
        cc.jmp(join)?;
        // Odd: acc ^= i * 3 for i in 0..n.
        cc.bind(odd)?;
        cc.xor_(i, i)?;
        let l2 = cc.new_label();
        let skip2 = cc.new_label();
        cc.cmp(i, n)?;
        cc.jae(skip2)?;
        cc.bind(l2)?;
        let t = cc.new_gp64("t");
        cc.imul_3(t, i, 3)?;
        cc.xor_(acc, t)?;
        cc.inc(i)?;
        cc.cmp(i, n)?;
        cc.jb(l2)?;
        cc.bind(skip2)?;
        cc.bind(join)?;
        // Two loops sharing one counter: up to n, then down to 0.
        let k = cc.new_gp64("k");
        cc.xor_(k, k)?;
        let (up, down, done_up, done) = (
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
        );
        cc.bind(up)?;
        cc.cmp(k, n)?;
        cc.jae(done_up)?;
        cc.add(acc, k)?;
        cc.inc(k)?;
        cc.jmp(up)?;
        cc.bind(done_up)?;
        cc.bind(down)?;
        cc.test(k, k)?;
        cc.je(done)?;
        cc.imul_3(acc, acc, 5)?;
        cc.sub(acc, k)?;
        cc.dec(k)?;
        cc.jmp(down)?;
        cc.bind(done)?;
        cc.ret(&[acc.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of two integers.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { code.function() };
    let expect = |a: u64, n: u64| {
        let mut acc = 0u64;
        if a & 1 == 0 {
            for _ in 0..n {
                acc = acc.wrapping_add(a);
            }
        } else {
            for i in 0..n {
                acc ^= i * 3;
            }
        }
        for k in 0..n {
            acc = acc.wrapping_add(k);
        }
        for k in (1..=n).rev() {
            acc = acc.wrapping_mul(5).wrapping_sub(k);
        }
        acc
    };
    for (a, n) in [(4, 0), (4, 7), (9, 0), (9, 13), (1_000_000, 30)] {
        assert_eq!(f(a, n), expect(a, n), "{a} {n}");
    }
    Ok(())
}

/// A memcpy loop that stops early at a zero byte, with the exit path
/// appended after the function's return (code at the end jumping back).
#[test]
fn memcpy_loop_with_early_exit_and_code_appended_at_the_end() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("copy_until_zero", sig(3))?;
        let (dst, src, n) = (cc.new_gp64("dst"), cc.new_gp64("src"), cc.new_gp64("n"));
        cc.set_arg(0, dst)?;
        cc.set_arg(1, src)?;
        cc.set_arg(2, n)?;
        let (i, byte) = (cc.new_gp64("i"), cc.new_gp32("byte"));
        let (top, exit, found, back) = (
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
            cc.new_label(),
        );
        cc.xor_(i, i)?;
        cc.bind(top)?;
        cc.cmp(i, n)?;
        cc.jae(exit)?;
        cc.movzx(byte, byte_ptr(src + i))?;
        cc.test(byte, byte)?;
        cc.je(found)?;
        cc.mov(byte_ptr(dst + i), byte.r8())?;
        cc.inc(i)?;
        cc.jmp(top)?;
        cc.bind(exit)?;
        cc.bind(back)?;
        cc.ret(&[i.into()])?;
        // Appended after the return: marks the stop and jumps back.
        cc.bind(found)?;
        cc.mov(byte_ptr(dst + i), 0xFF)?;
        cc.add(i, 1000)?;
        cc.jmp(back)?;
        cc.end_func()
    })?;
    // SAFETY: System V function (dst, src, n) -> u64.
    let f: extern "C" fn(*mut u8, *const u8, u64) -> u64 = unsafe { code.function() };
    let src = b"jitforge\0tail";
    let mut dst = [0u8; 16];
    assert_eq!(f(dst.as_mut_ptr(), src.as_ptr(), src.len() as u64), 1008);
    assert_eq!(&dst[..9], b"jitforge\xFF");
    let mut dst = [0u8; 16];
    assert_eq!(f(dst.as_mut_ptr(), src.as_ptr(), 5), 5);
    assert_eq!(&dst[..6], b"jitfo\0");
    Ok(())
}

/// An SSE2 alpha-blend kernel (AsmJit's classic): each 32-bit pixel
/// `dst = (src * a + dst * (256 - a)) >> 8` per channel, `a` the source
/// alpha; two pixels per iteration with unpack, multiply and pack.
#[test]
fn sse2_alpha_blend_kernel() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("blend", sig(3))?;
        let (dst, src, n) = (cc.new_gp64("dst"), cc.new_gp64("src"), cc.new_gp64("n"));
        cc.set_arg(0, dst)?;
        cc.set_arg(1, src)?;
        cc.set_arg(2, n)?;
        let (zero, c256) = (cc.new_xmm("zero"), cc.new_xmm("c256"));
        cc.pxor(zero, zero)?;
        let bytes: Vec<u8> = [256u16; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
        let k = cc.new_const(&bytes, 16)?;
        cc.movdqa(c256, k.with_size(16))?;
        let (top, done) = (cc.new_label(), cc.new_label());
        let i = cc.new_gp64("i");
        cc.xor_(i, i)?;
        cc.bind(top)?;
        cc.cmp(i, n)?;
        cc.jae(done)?;
        let (s, d, a, ia) = (
            cc.new_xmm("s"),
            cc.new_xmm("d"),
            cc.new_xmm("a"),
            cc.new_xmm("ia"),
        );
        cc.movq(s, qword_ptr(src + i * 4))?;
        cc.movq(d, qword_ptr(dst + i * 4))?;
        cc.punpcklbw(s, zero)?;
        cc.punpcklbw(d, zero)?;
        // Alpha of each pixel in all four 16-bit lanes.
        cc.pshuflw(a, s, 0xFF)?;
        cc.pshufhw(a, a, 0xFF)?;
        cc.movdqa(ia, c256)?;
        cc.psubw(ia, a)?;
        cc.pmullw(s, a)?;
        cc.pmullw(d, ia)?;
        cc.paddw(s, d)?;
        cc.psrlw(s, 8)?;
        cc.packuswb(s, zero)?;
        cc.movq(qword_ptr(dst + i * 4), s)?;
        cc.add(i, 2)?;
        cc.jmp(top)?;
        cc.bind(done)?;
        cc.ret(&[i.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (dst pixels, src pixels, even count) -> u64.
    let f: extern "C" fn(*mut u32, *const u32, u64) -> u64 = unsafe { code.function() };
    let src: Vec<u32> = (0..16u32)
        .map(|i| (i * 16) << 24 | 0x00C0_8040 ^ (i * 0x0001_0101))
        .collect();
    let mut dst: Vec<u32> = (0..16u32)
        .map(|i| 0x1020_3040u32.wrapping_mul(i + 1))
        .collect();
    let want: Vec<u32> = src
        .iter()
        .zip(&dst)
        .map(|(&s, &d)| {
            let a = s >> 24;
            (0..4).fold(0u32, |acc, c| {
                let (sc, dc) = ((s >> (8 * c)) & 0xFF, (d >> (8 * c)) & 0xFF);
                acc | (((sc * a + dc * (256 - a)) >> 8) & 0xFF) << (8 * c)
            })
        })
        .collect();
    assert_eq!(f(dst.as_mut_ptr(), src.as_ptr(), 16), 16);
    assert_eq!(dst, want);
    Ok(())
}

/// AVX-512: mask registers as virtual registers (`vpcmpd` into a mask,
/// masked `vpaddd` with `{k}` and `{k}{z}`, `kandw`), and `vpternlogd`
/// whose immediate ignores every input (0xFF: all ones, a write-only idiom).
#[test]
fn avx512_masks_and_ternlog_write_only_idiom() -> Result<(), Error> {
    if !std::arch::is_x86_feature_detected!("avx512f")
        || !std::arch::is_x86_feature_detected!("avx512bw")
    {
        eprintln!("skipped: the host has no AVX-512");
        return Ok(());
    }
    let code = build(|cc| {
        cc.add_func("masked", sig(3))?;
        let (a, b, out) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("out"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, out)?;
        let (x, y, ones, r) = (
            cc.new_zmm("x"),
            cc.new_zmm("y"),
            cc.new_zmm("ones"),
            cc.new_zmm("r"),
        );
        cc.vmovdqu32(x, zmmword_ptr(a))?;
        cc.vmovdqu32(y, zmmword_ptr(b))?;
        let (gt, even, both) = (cc.new_k("gt"), cc.new_k("even"), cc.new_k("both"));
        // gt: lanes where x > y (signed).
        cc.vpcmpd(gt, x, y, 6)?;
        let m = cc.new_gp32("m");
        cc.mov(m, 0x5555)?;
        cc.kmovw(even, m)?;
        cc.kandw(both, gt, even)?;
        // All ones without reading `ones` (it was never written).
        cc.vpternlogd(ones, ones, ones, 0xFF)?;
        cc.vmovdqa32(r, x)?;
        cc.k(both).vpaddd(r, r, ones)?;
        cc.vmovdqu32(zmmword_ptr(out), r)?;
        cc.k(gt).z().vpaddd(r, x, y)?;
        // A virtual mask cannot be a decoration: a specific error.
        assert!(cc.vpaddd(r.k(gt), x, y).is_err());
        cc.vmovdqu32(zmmword_ptr(out + 64), r)?;
        let bits = cc.new_gp32("bits");
        cc.kmovw(bits, both)?;
        let ret = cc.new_gp64("ret");
        cc.mov(ret.r32(), bits)?;
        cc.ret(&[ret.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (16 i32, 16 i32, 32 i32 out) -> u64.
    let f: extern "C" fn(*const i32, *const i32, *mut i32) -> u64 = unsafe { code.function() };
    let a: Vec<i32> = (0..16).map(|i| i * 3 - 20).collect();
    let b: Vec<i32> = (0..16).map(|i| 10 - i).collect();
    let mut out = [0i32; 32];
    let bits = f(a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    let mut want_bits = 0u64;
    for i in 0..16 {
        let gt = a[i] > b[i];
        let both = gt && i % 2 == 0;
        want_bits |= u64::from(both) << i;
        assert_eq!(out[i], if both { a[i] - 1 } else { a[i] }, "lane {i}");
        assert_eq!(out[16 + i], if gt { a[i] + b[i] } else { 0 }, "lane {i}");
    }
    assert_eq!(bits, want_bits);
    Ok(())
}

extern "C" fn host_widths(a: i8, b: i16, c: i32, d: i64, p: *const u8) -> i64 {
    i64::from(a) + i64::from(b) + i64::from(c) + d + p as i64
}

/// Immediate arguments of every width, 8-bit to pointer.
#[test]
fn immediate_arguments_from_8_bit_to_pointer() -> Result<(), Error> {
    use ValType::{I8, I16, I32, I64};
    let code = build(|cc| {
        cc.add_func("imms", sig(0))?;
        let r = cc.new_gp64("r");
        let address = host_widths as extern "C" fn(i8, i16, i32, i64, *const u8) -> i64;
        cc.invoke(
            Operand::Imm(address as usize as i64),
            sig_of(&[I8, I16, I32, I64, I64], &[I64]),
            &[
                Operand::Imm(-5),
                Operand::Imm(-30_000),
                Operand::Imm(2_000_000_000),
                Operand::Imm(0x1234_5678_9abc),
                Operand::Imm(0x7fff_0000_1000),
            ],
            &[r.into()],
        )?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function () -> i64.
    let f: extern "C" fn() -> i64 = unsafe { code.function() };
    assert_eq!(
        f(),
        -5 - 30_000 + 2_000_000_000 + 0x1234_5678_9abc + 0x7fff_0000_1000
    );
    Ok(())
}

/// Call results of 8- and 16-bit types are extended into a wider result
/// register: the callee (here code that leaves garbage above the type, as
/// the ABI allows) defines only the type's bits.
#[test]
fn narrow_call_results_are_extended_into_wider_registers() -> Result<(), Error> {
    use ValType::{I8, I16, U8, U16};
    // The callee: `mov rax, imm64; ret`, returning 0xDEAD_BEEF_CAFE_8485.
    let runtime = JitRuntime::new()?;
    let mut callee = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut callee);
    a.mov(rax, 0xDEAD_BEEF_CAFE_8485u64 as i64)?;
    a.ret()?;
    let callee = runtime.add(&callee)?;
    let address = callee.address() as i64;
    for (ty, expect) in [
        (U8, 0x85u64),
        (I8, 0x85u8 as i8 as i64 as u64),
        (U16, 0x8485),
        (I16, 0x8485u16 as i16 as i64 as u64),
    ] {
        let code = build(|cc| {
            cc.add_func("narrow", sig(0))?;
            let r = cc.new_gp64("r");
            cc.invoke(Operand::Imm(address), sig_of(&[], &[ty]), &[], &[r.into()])?;
            cc.ret(&[r.into()])?;
            cc.end_func()
        })?;
        // SAFETY: System V function () -> u64.
        let f: extern "C" fn() -> u64 = unsafe { code.function() };
        assert_eq!(f(), expect, "{ty:?} into a 64-bit register");
        // Into a 32-bit register: extended to 32 bits, zero above.
        let code = build(|cc| {
            cc.add_func("narrow32", sig(0))?;
            let r = cc.new_gp32("r");
            cc.invoke(Operand::Imm(address), sig_of(&[], &[ty]), &[], &[r.into()])?;
            cc.ret(&[r.r64().into()])?;
            cc.end_func()
        })?;
        // SAFETY: System V function () -> u64.
        let f: extern "C" fn() -> u64 = unsafe { code.function() };
        assert_eq!(f(), expect & 0xFFFF_FFFF, "{ty:?} into a 32-bit register");
    }
    Ok(())
}

extern "C" fn host_twice(x: u64) -> u64 {
    x * 2
}

extern "C" fn host_square(x: u64) -> u64 {
    x * x
}

/// Calls in both branches of a diamond, and several return sites.
#[test]
fn calls_in_both_branches_and_several_return_sites() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("branches", sig(2))?;
        let (a, b) = (cc.new_gp64("a"), cc.new_gp64("b"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        let r = cc.new_gp64("r");
        let (else_, join, early) = (cc.new_label(), cc.new_label(), cc.new_label());
        cc.cmp(a, 100)?;
        cc.ja(early)?;
        cc.test(a, 1)?;
        cc.je(else_)?;
        let twice = host_twice as extern "C" fn(u64) -> u64 as usize as i64;
        let square = host_square as extern "C" fn(u64) -> u64 as usize as i64;
        cc.invoke(Operand::Imm(twice), sig(1), &[a.into()], &[r.into()])?;
        cc.jmp(join)?;
        cc.bind(else_)?;
        cc.invoke(Operand::Imm(square), sig(1), &[a.into()], &[r.into()])?;
        cc.bind(join)?;
        cc.add(r, b)?;
        let small = cc.new_label();
        cc.cmp(r, 50)?;
        cc.jb(small)?;
        cc.ret(&[r.into()])?;
        cc.bind(small)?;
        cc.ret(&[Operand::Imm(50)])?;
        cc.bind(early)?;
        cc.ret(&[b.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of two integers.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { code.function() };
    let expect = |a: u64, b: u64| {
        if a > 100 {
            return b;
        }
        let r = if a & 1 != 0 { a * 2 } else { a * a } + b;
        r.max(50)
    };
    for (a, b) in [(3, 7), (3, 100), (8, 1), (8, 0), (101, 9), (20, 20)] {
        assert_eq!(f(a, b), expect(a, b), "{a} {b}");
    }
    Ok(())
}

/// Every allocatable general-purpose register holds a live value across an
/// indirect call (through a register), and many moves between xmm and gp.
#[test]
fn every_register_live_across_an_indirect_call() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("all_live", sig(2))?;
        let (target, x) = (cc.new_gp64("target"), cc.new_gp64("x"));
        cc.set_arg(0, target)?;
        cc.set_arg(1, x)?;
        let v: Vec<Gp64> = (0..15).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.lea(*r, ptr(x + (i as i32 * 7 + 1)))?;
        }
        let xs: Vec<Xmm> = (0..16).map(|i| cc.new_xmm(&format!("x{i}"))).collect();
        for (i, r) in xs.iter().enumerate() {
            cc.movq(*r, v[i % 15])?;
        }
        let r = cc.new_gp64("r");
        cc.invoke(target.into(), sig(1), &[x.into()], &[r.into()])?;
        let t = cc.new_gp64("t");
        for (i, xr) in xs.iter().enumerate() {
            cc.movq(t, *xr)?;
            cc.imul_3(t, t, i as i32 + 1)?;
            cc.add(r, t)?;
        }
        for (i, g) in v.iter().enumerate() {
            cc.imul_3(*g, *g, i as i32 + 3)?;
            cc.xor_(r, *g)?;
        }
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (function pointer, integer) -> integer.
    let f: extern "C" fn(extern "C" fn(u64) -> u64, u64) -> u64 = unsafe { code.function() };
    let expect = |x: u64| {
        let v: Vec<u64> = (0..15).map(|i| x + i * 7 + 1).collect();
        let mut r = host_square(x);
        for i in 0..16 {
            r = r.wrapping_add(v[i as usize % 15].wrapping_mul(i + 1));
        }
        for (i, g) in v.iter().enumerate() {
            r ^= g.wrapping_mul(i as u64 + 3);
        }
        r
    };
    assert_eq!(f(host_square, 12345), expect(12345));
    Ok(())
}

/// A 128-bit vector passed to a Windows x64 function (by reference to a
/// copy) from a System V function that received it in a register.
#[test]
fn vector_arguments_across_conventions() -> Result<(), Error> {
    use ValType::{I64, V128};
    let runtime = JitRuntime::new()?;
    let (code, _, _) = compile_twice(|cc| {
        let win = cc.add_func(
            "win_sum",
            Signature::new(X86Target::WIN64, &[I64, V128], &[I64]),
        )?;
        let (k, v) = (cc.new_gp64("k"), cc.new_xmm("v"));
        cc.set_arg(0, k)?;
        cc.set_arg(1, v)?;
        let (lo, hi) = (cc.new_gp64("lo"), cc.new_gp64("hi"));
        cc.movq(lo, v)?;
        cc.pextrq(hi, v, 1)?;
        cc.imul_2(lo, k)?;
        cc.add(lo, hi)?;
        cc.ret(&[lo.into()])?;
        cc.end_func()?;
        cc.add_func("sysv", sig_of(&[V128, I64], &[I64]))?;
        let (v, k) = (cc.new_xmm("v"), cc.new_gp64("k"));
        cc.set_arg(0, v)?;
        cc.set_arg(1, k)?;
        let r = cc.new_gp64("r");
        cc.invoke(
            win.into(),
            Signature::new(X86Target::WIN64, &[I64, V128], &[I64]),
            &[k.into(), v.into()],
            &[r.into()],
        )?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    let function = runtime.add(&code)?;
    let sysv =
        entry_of::<extern "C" fn(std::arch::x86_64::__m128i, i64) -> i64>(&code, &function, "sysv");
    // SAFETY: SSE2 is baseline on x86-64.
    let v = unsafe { std::arch::x86_64::_mm_set_epi64x(1000, 7) };
    assert_eq!(sysv(v, 3), 7 * 3 + 1000);
    Ok(())
}

/// `mov rax, rsp; and eax, 15; ret`: called with an aligned stack, 8.
fn rsp_probe(runtime: &JitRuntime) -> Result<JitCode, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    a.mov(rax, rsp)?;
    a.and_(eax, 15)?;
    a.ret()?;
    runtime.add(&code)
}

/// Stack memory aligned to 16, 32 and 64 bytes in functions of 0 to 16
/// arguments (System V: 7 and more on the stack; Windows x64: 5 and more,
/// above the shadow space), with and without a frame pointer, leaf (System
/// V: the frame in the red zone) or calling out (the call sees rsp aligned).
#[test]
fn stack_alignment_with_0_to_16_arguments() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let probe = rsp_probe(&runtime)?;
    for (n, conv) in (0..=16usize).flat_map(|n| [(n, X86Target::SYSV64), (n, X86Target::WIN64)]) {
        let sig = |k: usize| Signature::new(conv, &vec![ValType::I64; k], &[ValType::I64]);
        for frame_pointer in [false, true] {
            for align in [16u32, 32, 64] {
                for calls in [false, true] {
                    let (code, _, listing) = compile_twice(|cc| {
                        let f = cc.add_func("f", sig(n))?;
                        cc.set_frame_pointer(frame_pointer)?;
                        let args: Vec<Gp64> =
                            (0..n).map(|i| cc.new_gp64(&format!("a{i}"))).collect();
                        for (i, a) in args.iter().enumerate() {
                            cc.set_arg(i, *a)?;
                        }
                        let buffer = cc.new_stack(64, align)?;
                        let (p, r) = (cc.new_gp64("p"), cc.new_gp64("r"));
                        cc.lea(p, buffer)?;
                        cc.and_(p, align as i32 - 1)?;
                        cc.imul_3(p, p, 1000)?;
                        // Arguments go through the aligned buffer and back.
                        cc.xor_(r, r)?;
                        for (i, a) in args.iter().enumerate() {
                            cc.imul_3(*a, *a, i as i32 + 1)?;
                            cc.mov(buffer.with_disp(8 * (i as i64 % 8)).with_size(8), *a)?;
                            cc.add(r, buffer.with_disp(8 * (i as i64 % 8)).with_size(8))?;
                        }
                        cc.add(r, p)?;
                        if calls {
                            let q = cc.new_gp64("q");
                            cc.invoke(
                                Operand::Imm(probe.address() as i64),
                                sig(0),
                                &[],
                                &[q.into()],
                            )?;
                            cc.add(r, q)?;
                        }
                        cc.ret(&[r.into()])?;
                        cc.end_func()?;
                        cc.add_func(
                            "caller",
                            Signature::new(X86Target::SYSV64, &[], &[ValType::I64]),
                        )?;
                        let out = cc.new_gp64("out");
                        let imms: Vec<Operand> =
                            (0..n).map(|i| Operand::Imm(i as i64 + 1)).collect();
                        cc.invoke(f.into(), sig(n), &imms, &[out.into()])?;
                        cc.ret(&[out.into()])?;
                        cc.end_func()
                    })?;
                    let function = runtime.add(&code)?;
                    let caller = entry_of::<extern "C" fn() -> u64>(&code, &function, "caller");
                    let want =
                        (1..=n as u64).map(|i| i * i).sum::<u64>() + if calls { 8 } else { 0 };
                    assert_eq!(
                        caller(),
                        want,
                        "{n} arguments ({conv:?}), frame pointer {frame_pointer}, align {align}, calls {calls}\n{listing}"
                    );
                    let uses_rbp_frame = listing.contains("mov rbp, rsp");
                    // A leaf keeps its frame in the red zone: rsp never moves.
                    let f_listing = listing.split("caller:").next().unwrap_or_default();
                    let red_zone = !calls && align == 16 && conv == X86Target::SYSV64;
                    assert_eq!(!f_listing.contains("rsp, 0x"), red_zone, "{f_listing}");
                    assert_eq!(uses_rbp_frame, frame_pointer || align > 16, "{listing}");
                }
            }
        }
    }
    Ok(())
}

/// Calls to libc's `memcpy` and `memcmp` with two stack buffers aligned to
/// 32 bytes (the function gets a frame pointer and aligns rsp).
#[test]
fn memcpy_and_memcmp_with_32_byte_aligned_stack_buffers() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("copy_compare", sig(1))?;
        let seed = cc.new_gp64("seed");
        cc.set_arg(0, seed)?;
        let (a, b) = (cc.new_stack(96, 32)?, cc.new_stack(96, 32)?);
        let (pa, pb, i) = (cc.new_gp64("pa"), cc.new_gp64("pb"), cc.new_gp64("i"));
        cc.lea(pa, a)?;
        cc.lea(pb, b)?;
        cc.xor_(i, i)?;
        let fill = cc.new_label();
        cc.bind(fill)?;
        cc.mov(qword_ptr(pa + i * 8), seed)?;
        cc.imul_3(seed, seed, 31)?;
        cc.inc(i)?;
        cc.cmp(i, 12)?;
        cc.jne(fill)?;
        let memcpy = libc::memcpy
            as unsafe extern "C" fn(
                *mut libc::c_void,
                *const libc::c_void,
                usize,
            ) -> *mut libc::c_void;
        let memcmp = libc::memcmp
            as unsafe extern "C" fn(*const libc::c_void, *const libc::c_void, usize) -> i32;
        let ignored = cc.new_gp64("ignored");
        cc.invoke(
            Operand::Imm(memcpy as usize as i64),
            sig(3),
            &[pb.into(), pa.into(), Operand::Imm(96)],
            &[ignored.into()],
        )?;
        let (same, differ) = (cc.new_gp32("same"), cc.new_gp32("differ"));
        let cmp_sig = Signature::new(X86Target::SYSV64, &[ValType::I64; 3], &[ValType::I32]);
        cc.invoke(
            Operand::Imm(memcmp as usize as i64),
            cmp_sig.clone(),
            &[pa.into(), pb.into(), Operand::Imm(96)],
            &[same.into()],
        )?;
        cc.inc(byte_ptr(pb + 50))?;
        cc.invoke(
            Operand::Imm(memcmp as usize as i64),
            cmp_sig,
            &[pa.into(), pb.into(), Operand::Imm(96)],
            &[differ.into()],
        )?;
        // r = (pa | pb) & 31, then same == 0, then differ < 0.
        let r = cc.new_gp64("r");
        cc.mov(r, pa)?;
        cc.or_(r, pb)?;
        cc.and_(r, 31)?;
        cc.shl(r, 8)?;
        let t = cc.new_gp64("t");
        cc.xor_(t, t)?;
        cc.test(same, same)?;
        cc.sete(t.r8())?;
        cc.or_(r, t)?;
        cc.shl(r, 1)?;
        cc.xor_(t, t)?;
        cc.test(differ, differ)?;
        cc.sets(t.r8())?;
        cc.or_(r, t)?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of one integer.
    let f: extern "C" fn(u64) -> u64 = unsafe { code.function() };
    assert_eq!(f(0x0123_4567_89ab_cdef), 0b11);
    Ok(())
}

/// A light calling convention between two JIT functions: arguments in r10
/// and r12, the result in r13, and every other register preserved, so the
/// caller keeps its values in registers across the call.
#[test]
fn custom_light_convention_between_two_jit_functions() -> Result<(), Error> {
    use jitforge_ir::abi::CallConv;
    use jitforge_ir::{PReg, RegClass, RegSet};
    let runtime = JitRuntime::new()?;
    let (code, caller_stats, _) = compile_twice(|cc| {
        let mut preserved = RegSet::EMPTY;
        preserved.set_class_mask(
            RegClass::GP,
            [0u8, 1, 2, 3, 5, 6, 7, 8, 9, 14, 15]
                .iter()
                .fold(0, |m, hw| m | 1 << hw),
        );
        let light = cc.add_call_conv(CallConv::light(
            "light",
            &[PReg::gp(10), PReg::gp(12)],
            &[],
            &[PReg::gp(13)],
            &[],
            preserved,
        ));
        let light_sig = Signature::new(light, &[ValType::I64, ValType::I64], &[ValType::I64]);
        let callee = cc.add_func("mix", light_sig.clone())?;
        let (a, b) = (cc.new_gp64("a"), cc.new_gp64("b"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        // Enough values to use registers the convention preserves.
        let t: Vec<Gp64> = (0..8).map(|i| cc.new_gp64(&format!("t{i}"))).collect();
        for (i, r) in t.iter().enumerate() {
            cc.lea(*r, ptr(a + b * 2 + i as i32))?;
        }
        for r in &t[1..] {
            cc.imul_2(t[0], *r)?;
        }
        cc.ret(&[t[0].into()])?;
        cc.end_func()?;
        cc.add_func("caller", sig(2))?;
        let (x, y) = (cc.new_gp64("x"), cc.new_gp64("y"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        let live: Vec<Gp64> = (0..6).map(|i| cc.new_gp64(&format!("l{i}"))).collect();
        for (i, r) in live.iter().enumerate() {
            cc.lea(*r, ptr(x + y + i as i32))?;
        }
        let r = cc.new_gp64("r");
        cc.invoke(
            callee.into(),
            light_sig.clone(),
            &[x.into(), y.into()],
            &[r.into()],
        )?;
        for l in &live {
            cc.xor_(r, *l)?;
        }
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    // Six values live across the call stay in registers the callee preserves.
    assert_eq!(caller_stats.stores, 0, "{caller_stats:?}");
    let function = runtime.add(&code)?;
    let caller = entry_of::<extern "C" fn(u64, u64) -> u64>(&code, &function, "caller");
    let mix = |a: u64, b: u64| {
        let t: Vec<u64> = (0..8)
            .map(|i| a.wrapping_add(b * 2).wrapping_add(i))
            .collect();
        t[1..].iter().fold(t[0], |acc, v| acc.wrapping_mul(*v))
    };
    let expect = |x: u64, y: u64| (0..6).fold(mix(x, y), |r, i| r ^ (x + y + i));
    assert_eq!(caller(3, 4), expect(3, 4));
    assert_eq!(caller(1 << 40, 17), expect(1 << 40, 17));
    Ok(())
}

extern "C" fn host_add_100(x: u64, y: u64) -> u64 {
    x + y + 100
}

/// Tail calls: to another JIT function by label, to a host function by
/// address and through a register; the frame (with a callee-saved register
/// in use) is torn down before the jump.
#[test]
fn tail_jumps() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let (code, _, listing) = compile_twice(|cc| {
        let target = cc.add_func("target", sig(2))?;
        let (a, b) = (cc.new_gp64("a"), cc.new_gp64("b"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.imul_2(a, b)?;
        cc.ret(&[a.into()])?;
        cc.end_func()?;
        cc.add_func("by_label", sig(2))?;
        let (x, y) = (cc.new_gp64("x"), cc.new_gp64("y"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        // A value live across a call, so a callee-saved register is pushed.
        let keep = cc.new_gp64("keep");
        cc.lea(keep, ptr(x + 1))?;
        let z = cc.new_gp64("z");
        cc.invoke(target.into(), sig(2), &[x.into(), y.into()], &[z.into()])?;
        cc.tail_call(target.into(), sig(2), &[z.into(), keep.into()])?;
        cc.end_func()?;
        cc.add_func("by_address", sig(2))?;
        let (x, y) = (cc.new_gp64("x"), cc.new_gp64("y"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        cc.add(x, 1)?;
        let address = host_add_100 as extern "C" fn(u64, u64) -> u64 as usize as i64;
        let (done, other) = (cc.new_label(), cc.new_label());
        cc.cmp(y, 0)?;
        cc.je(other)?;
        cc.tail_call(Operand::Imm(address), sig(2), &[y.into(), x.into()])?;
        cc.bind(other)?;
        let p = cc.new_gp64("p");
        cc.mov(p, address)?;
        cc.tail_call(p.into(), sig(2), &[x.into(), x.into()])?;
        cc.bind(done)?;
        cc.end_func()
    })?;
    assert!(listing.contains("jmp"), "{listing}");
    let function = runtime.add(&code)?;
    let by_label = entry_of::<extern "C" fn(u64, u64) -> u64>(&code, &function, "by_label");
    let by_address = entry_of::<extern "C" fn(u64, u64) -> u64>(&code, &function, "by_address");
    assert_eq!(by_label(6, 7), 42 * 7);
    assert_eq!(by_address(5, 9), 9 + 6 + 100);
    assert_eq!(by_address(5, 0), 6 + 6 + 100);
    Ok(())
}

/// Local and global constant pools: each global constant is stored once
/// for all functions, a repeated local one once per function.
#[test]
fn local_and_global_constant_pools() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let global = 1.25f64.to_le_bytes();
    let local = 3.5f64.to_le_bytes();
    let (code, _, _) = compile_twice(|cc| {
        for name in ["first", "second"] {
            let s = Signature::new(X86Target::SYSV64, &[ValType::F64], &[ValType::F64]);
            cc.add_func(name, s)?;
            let x = cc.new_xmm("x");
            cc.set_arg(0, x)?;
            let g = cc.new_global_const(&global, 8)?;
            let l = cc.new_const(&local, 8)?;
            let l_again = cc.new_const(&local, 8)?;
            cc.mulsd(x, g.with_size(8))?;
            cc.addsd(x, l.with_size(8))?;
            cc.addsd(x, l_again.with_size(8))?;
            cc.ret(&[x.into()])?;
            cc.end_func()?;
        }
        Ok(())
    })?;
    let bytes = code.finalize()?;
    let count = |pattern: &[u8]| bytes.windows(8).filter(|w| *w == pattern).count();
    assert_eq!(count(&global), 1);
    assert_eq!(count(&local), 2);
    let function = runtime.add(&code)?;
    for name in ["first", "second"] {
        let f = entry_of::<extern "C" fn(f64) -> f64>(&code, &function, name);
        assert_eq!(f(2.0), 2.0 * 1.25 + 3.5 + 3.5);
    }
    Ok(())
}

/// Two functions calling each other, the first calling the second before
/// it is compiled (is_even / is_odd by mutual recursion).
#[test]
fn mutual_recursion_with_a_forward_call() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let (code, _, _) = compile_twice(|cc| {
        let odd = cc.function_label("is_odd");
        let even = cc.add_func("is_even", sig(1))?;
        for (name, other, base) in [("is_even", odd, 1i32), ("is_odd", even, 0)] {
            if name == "is_odd" {
                cc.add_func(name, sig(1))?;
            }
            let n = cc.new_gp64("n");
            cc.set_arg(0, n)?;
            let zero = cc.new_label();
            cc.test(n, n)?;
            cc.je(zero)?;
            cc.dec(n)?;
            let r = cc.new_gp64("r");
            cc.invoke(other.into(), sig(1), &[n.into()], &[r.into()])?;
            cc.ret(&[r.into()])?;
            cc.bind(zero)?;
            cc.ret(&[Operand::Imm(i64::from(base))])?;
            cc.end_func()?;
        }
        Ok(())
    })?;
    let function = runtime.add(&code)?;
    let is_even = entry_of::<extern "C" fn(u64) -> u64>(&code, &function, "is_even");
    let is_odd = entry_of::<extern "C" fn(u64) -> u64>(&code, &function, "is_odd");
    assert_eq!(
        (is_even(10), is_even(7), is_odd(7), is_odd(0)),
        (1, 0, 1, 0)
    );
    Ok(())
}

const PRESSURE: &str = "
func f(i64, i64) -> (i64) sysv64 {
  gp64 %p, %n, %a, %b, %c, %d, %e, %g, %h, %i, %j, %k, %l, %m, %o, %q, %r
  labels .loop
  entry %p, %n
  mov %a, qword [%p]
  mov %b, qword [%p + 8]
  mov %c, qword [%p + 16]
  mov %d, qword [%p + 24]
  mov %e, qword [%p + 32]
  mov %g, qword [%p + 40]
  mov %h, qword [%p + 48]
  mov %i, qword [%p + 56]
  mov %j, qword [%p + 64]
  mov %k, qword [%p + 72]
  mov %l, qword [%p + 80]
  mov %m, qword [%p + 88]
  mov %o, qword [%p + 96]
  mov %q, qword [%p + 104]
  mov %r, qword [%p + 112]
.loop:
  add %a, %b
  add %b, %c
  add %c, %d
  add %d, %e
  add %e, %g
  add %g, %h
  add %h, %i
  add %i, %j
  add %j, %k
  add %k, %l
  add %l, %m
  add %m, %o
  add %o, %q
  add %q, %r
  add %r, %a
  dec %n
  jne .loop
  add %a, %b
  add %a, %c
  add %a, %d
  add %a, %e
  add %a, %g
  add %a, %h
  add %a, %i
  add %a, %j
  add %a, %k
  add %a, %l
  add %a, %m
  add %a, %o
  add %a, %q
  add %a, %r
  ret %a
}
";

/// The listing of `jitforge compile` shows each inserted store, reload and
/// move with the allocator's reason, and decisions without a move (a spill
/// slot used as a memory operand) as their own comment lines.
#[test]
fn annotated_listing_gives_the_allocator_reasons() -> Result<(), Error> {
    let listing = jitforge::compiler::run::compile_listing(PRESSURE)?;
    let after = listing
        .split("; after allocation")
        .nth(1)
        .unwrap_or_default();
    assert!(
        after
            .lines()
            .any(|l| l.contains("; store [slot") && l.contains("%n [next use")),
        "{after}"
    );
    assert!(after.contains("; ra: v1 %n: memory operand"), "{after}");
    Ok(())
}

/// A shift whose count is the shifted value itself (`shl rcx, cl`), and an
/// impossible constraint (two values fixed to rax at once) as an error.
#[test]
fn shift_by_itself_and_an_impossible_constraint() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("s", sig(1))?;
        let a = cc.new_gp64("a");
        cc.set_arg(0, a)?;
        cc.shl(a, a.r8())?;
        cc.ret(&[a.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function of one integer.
    let f: extern "C" fn(u64) -> u64 = unsafe { code.function() };
    assert_eq!(f(3), 3 << 3);
    let impossible = "
func f(i64, i64) -> (i64) sysv64 {
  gp64 %a, %b
  entry %a, %b
  add %a@rax, %b@rax
  ret %a
}
";
    let err = jitforge::compiler::run::compile_listing(impossible).unwrap_err();
    assert!(err.to_string().contains("rax"), "{err}");
    Ok(())
}

/// A call to a function that is never compiled is an error when the code
/// is placed (the label stays unbound), not a jump into nowhere.
#[test]
fn a_call_to_a_function_never_compiled_is_an_error() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    {
        let mut cc = Compiler::new(&mut code);
        cc.add_func("caller", sig(1))?;
        let (x, r) = (cc.new_gp64("x"), cc.new_gp64("r"));
        cc.set_arg(0, x)?;
        let missing = cc.function_label("missing");
        cc.invoke(missing.into(), sig(1), &[x.into()], &[r.into()])?;
        cc.ret(&[r.into()])?;
        cc.end_func()?;
        cc.finalize()?;
    }
    let err = code.finalize().unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(JitRuntime::new()?.add(&code).is_err());
    Ok(())
}

/// Sign extensions, `mulx` and `blendvps` with their implicit registers
/// bound, and an 8-bit `mul` writing ax into a 16-bit view of a 64-bit
/// value, which keeps its upper bits.
#[test]
fn more_implicit_register_instructions() -> Result<(), Error> {
    let bmi2 = std::arch::is_x86_feature_detected!("bmi2");
    let sse41 = std::arch::is_x86_feature_detected!("sse4.1");
    let code = build(|cc| {
        cc.add_func("more", sig(3))?;
        let (a, b, out) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("out"));
        cc.set_arg(0, a)?;
        cc.set_arg(1, b)?;
        cc.set_arg(2, out)?;
        let r = cc.new_gp64("r");
        cc.mov(r, a)?;
        cc.cdqe(r)?;
        cc.mov(qword_ptr(out), r)?;
        let w = cc.new_gp32("w");
        cc.mov(w, a.r32())?;
        cc.cwde(w)?;
        cc.mov(dword_ptr(out + 8), w)?;
        // ax = al * b.r8(), into the low 16 bits of a value whose upper
        // bits are kept (once through the dynamic path, once through the
        // typed byte form `mul8`); then cwd writes only dx, into a 16-bit
        // view of another value whose upper bits are kept too.
        let (keep, sign) = (cc.new_gp64("keep"), cc.new_gp64("sign"));
        cc.mov(keep, b)?;
        cc.shl(keep, 16)?;
        cc.mov(keep.r8(), a.r8())?;
        cc.emit(Mnemonic::Mul, &[keep.r16().into(), b.r8().into()])?;
        cc.mov(keep.r8(), a.r8())?;
        cc.mul8(keep.r16(), b.r8())?;
        cc.mov(sign, b)?;
        cc.cwd(sign.r16(), a.r16())?;
        cc.xor_(keep, sign)?;
        cc.mov(qword_ptr(out + 16), keep)?;
        if bmi2 {
            let (hi, lo, m) = (cc.new_gp64("hi"), cc.new_gp64("lo"), cc.new_gp64("m"));
            cc.mov(m, a)?;
            cc.mulx(hi, lo, b, m)?;
            cc.mov(qword_ptr(out + 24), lo)?;
            cc.mov(qword_ptr(out + 32), hi)?;
        }
        if sse41 {
            let (x, y, mask) = (cc.new_xmm("x"), cc.new_xmm("y"), cc.new_xmm("mask"));
            cc.movq(x, a)?;
            cc.movq(y, b)?;
            cc.movq(mask, out)?;
            cc.pcmpeqd(mask, mask)?;
            cc.blendvps(x, y, mask)?;
            cc.movq(qword_ptr(out + 40), x)?;
        }
        cc.ret(&[a.into()])?;
        cc.end_func()
    })?;
    // SAFETY: System V function (i64, i64, pointer to 6 u64) -> i64.
    let f: extern "C" fn(i64, i64, *mut u64) -> i64 = unsafe { code.function() };
    let (a, b) = (
        0x1234_5678_9ABC_DEF0u64 as i64 | i64::MIN,
        0x0F0F_0F0F_0F0F_0F37i64,
    );
    let mut out = [0u64; 6];
    assert_eq!(f(a, b, out.as_mut_ptr()), a);
    assert_eq!(out[0], a as i32 as i64 as u64);
    assert_eq!(out[1] as u32, a as i16 as i32 as u32);
    let product = u64::from(a as u8) * u64::from(b as u8);
    let sign = (b as u64 & !0xFFFF) | if (a as i16) < 0 { 0xFFFF } else { 0 };
    assert_eq!(out[2], (((b as u64) << 16 & !0xFFFF) | product) ^ sign);
    if bmi2 {
        let p = u128::from(a as u64) * u128::from(b as u64);
        assert_eq!((out[3], out[4]), (p as u64, (p >> 64) as u64));
    }
    if sse41 {
        assert_eq!(out[5], b as u64);
    }
    Ok(())
}

/// With AVX-512 the allocator has 32 vector registers: 30 values live
/// across a loop stay in registers (xmm16..31 among them), moved and
/// copied with EVEX encodings where legacy SSE has none.
#[test]
fn thirty_vector_values_in_32_registers_with_avx512() -> Result<(), Error> {
    if !std::arch::is_x86_feature_detected!("avx512f")
        || !std::arch::is_x86_feature_detected!("avx512vl")
    {
        eprintln!("skipped: the host has no AVX-512");
        return Ok(());
    }
    let runtime = JitRuntime::new()?;
    let (code, stats, listing) = compile_twice(|cc| {
        cc.set_avx512(true);
        // First a function whose values in xmm16..31 are saved around a call
        // (System V preserves no vector register): EVEX moves to the stack.
        cc.add_func("across_a_call", sig(2))?;
        let (p, x) = (cc.new_gp64("p"), cc.new_gp64("x"));
        cc.set_arg(0, p)?;
        cc.set_arg(1, x)?;
        let v: Vec<Xmm> = (0..24).map(|i| cc.new_xmm(&format!("x{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.vmovdqu64(*r, xmmword_ptr(p + 16 * i as i32))?;
        }
        let r = cc.new_gp64("r");
        let address = host_touch as extern "C" fn(u64) -> u64 as usize as i64;
        cc.invoke(Operand::Imm(address), sig(1), &[x.into()], &[r.into()])?;
        for r in &v[1..] {
            cc.vpaddq(v[0], v[0], *r)?;
        }
        let lane = cc.new_gp64("lane");
        cc.vmovq(lane, v[0])?;
        cc.add(r, lane)?;
        cc.ret(&[r.into()])?;
        cc.end_func()?;
        cc.add_func("vectors", sig(2))?;
        let (p, n) = (cc.new_gp64("p"), cc.new_gp64("n"));
        cc.set_arg(0, p)?;
        cc.set_arg(1, n)?;
        let v: Vec<Xmm> = (0..30).map(|i| cc.new_xmm(&format!("x{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.vmovdqu64(*r, xmmword_ptr(p + 16 * i as i32))?;
        }
        let top = cc.new_label();
        cc.bind(top)?;
        for i in 0..30 {
            cc.vpaddq(v[i], v[i], v[(i + 1) % 30])?;
        }
        cc.dec(n)?;
        cc.jne(top)?;
        for r in &v[1..] {
            cc.vpxorq(v[0], v[0], *r)?;
        }
        let r = cc.new_gp64("r");
        cc.vmovq(r, v[0])?;
        cc.ret(&[r.into()])?;
        cc.end_func()
    })?;
    assert_eq!(stats.stores, 0, "{stats:?}\n{listing}");
    assert!(listing.contains("xmm29"), "{listing}");
    // Values in xmm16..31 saved around the call with EVEX moves.
    assert!(
        listing
            .lines()
            .any(|l| l.contains("vmovups xmmword ptr [rsp") && l.contains("xmm2")),
        "{listing}"
    );
    let function = runtime.add(&code)?;
    let f = entry_of::<extern "C" fn(*const u64, u64) -> u64>(&code, &function, "vectors");
    let input: Vec<u64> = (0..60u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let expect = |n: u64| {
        let mut v: Vec<[u64; 2]> = (0..30).map(|i| [input[2 * i], input[2 * i + 1]]).collect();
        for _ in 0..n {
            for i in 0..30 {
                let next = v[(i + 1) % 30];
                v[i] = [v[i][0].wrapping_add(next[0]), v[i][1].wrapping_add(next[1])];
            }
        }
        v.iter().fold(0u64, |a, x| a ^ x[0])
    };
    for n in [1, 2, 7] {
        assert_eq!(f(input.as_ptr(), n), expect(n), "n = {n}");
    }
    let g = entry_of::<extern "C" fn(*const u64, u64) -> u64>(&code, &function, "across_a_call");
    let sum = (0..24).fold(0u64, |a, i| a.wrapping_add(input[2 * i]));
    assert_eq!(g(input.as_ptr(), 5), host_touch(5).wrapping_add(sum));
    Ok(())
}

/// The IR text takes the same convention: `_regs` instructions with their
/// implicit registers as operands, compiled and run.
#[test]
fn ir_text_with_bound_implicit_registers() -> Result<(), Error> {
    let text = "
func divmod(i64, i64) -> (i64) sysv64 {
  gp64 %a, %b, %hi, %lo
  entry %a, %b
  mov %lo, %a
  cqo_regs %hi, %lo
  idiv_regs %hi, %lo, %b
  imul %lo, %lo, 1000
  add %lo, %hi
  ret %lo
}
";
    let out = jitforge::compiler::run::run(text, None, &["-47".into(), "5".into()])?;
    assert_eq!(out, ((-47i64 / 5) * 1000 + (-47i64 % 5)).to_string());
    let listing = jitforge::compiler::run::compile_listing(text)?;
    assert!(
        listing.contains("; |   idiv_regs %hi, %lo, %b"),
        "{listing}"
    );
    assert!(listing.lines().any(|l| l.ends_with("cqo")), "{listing}");
    Ok(())
}

#[test]
fn copies_into_the_same_register_are_left_out() -> Result<(), Error> {
    // `a = x; b = y` before a loop (several blocks: the general allocator)
    // gives a and b the argument registers: the copies then do nothing
    // and must not be emitted. A 32-bit copy in 64-bit mode is kept (it
    // clears the upper half).
    let body = |cc: &mut Compiler<'_>| -> Result<(), Error> {
        cc.add_func("f", sig(2))?;
        let (x, y) = (cc.new_gp64("x"), cc.new_gp64("y"));
        cc.set_arg(0, x)?;
        cc.set_arg(1, y)?;
        let (a, b, n) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp32("n"));
        cc.mov(a, x)?;
        cc.mov(b, y)?;
        cc.mov(n, b.r32())?;
        cc.mov(n, n)?;
        let top = cc.new_label();
        cc.bind(top)?;
        cc.xor_(a, b)?;
        cc.dec(b)?;
        cc.jne(top)?;
        cc.add(a, n.r64())?;
        cc.ret(&[a.into()])?;
        cc.end_func()
    };
    let (code, _, listing) = compile_twice(body)?;
    let bytes = code.finalize()?;
    let mut decoder = iced_x86::Decoder::new(64, &bytes, iced_x86::DecoderOptions::NONE);
    let mut zero_extensions = 0;
    for inst in &mut decoder {
        if inst.mnemonic() == iced_x86::Mnemonic::Mov
            && inst.op_count() == 2
            && inst.op0_kind() == iced_x86::OpKind::Register
            && inst.op1_kind() == iced_x86::OpKind::Register
            && inst.op0_register() == inst.op1_register()
        {
            assert!(
                inst.op0_register().is_gpr32(),
                "identity copy {inst} emitted:\n{listing}"
            );
            zero_extensions += 1;
        }
    }
    assert_eq!(
        zero_extensions, 1,
        "the 32-bit self-copy is kept:\n{listing}"
    );
    let f = JitRuntime::new()?.add(&code)?;
    // SAFETY: the function takes two integers.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { f.function() };
    let mut expect = 5u64;
    for b in (1..=3u64).rev() {
        expect ^= b;
    }
    assert_eq!(f(5, 3), expect + 3);
    Ok(())
}

/// A mask or option given before a typed instruction of a shape added
/// before is applied (the typed fast path is only for an instruction with
/// nothing pending), also before a function's first instruction and in the
/// next function; once used, the next instruction has none.
#[test]
fn pending_mask_and_options_reach_repeated_typed_instructions() -> Result<(), Error> {
    let (_, _, listing) = compile_twice(|cc| {
        cc.set_avx512(true);
        for name in ["first", "second"] {
            cc.add_func(name, sig(1))?;
            let a = cc.new_gp64("a");
            cc.set_arg(0, a)?;
            let r = cc.new_gp64("r");
            cc.mov(r, a)?;
            cc.add(r, a)?;
            let (g, m, x) = (cc.new_gp32("g"), cc.new_k("m"), cc.new_zmm("x"));
            cc.mov(g, a.r32())?;
            cc.kmovw(m, g)?;
            cc.vmovdqu32(x, zmmword_ptr(a))?;
            cc.vpaddd(x, x, x)?;
            cc.k(m).vpaddd(x, x, x)?;
            cc.k(m).z().vpaddd(x, x, x)?;
            cc.vpaddd(x, x, x)?;
            cc.vmovdqu32(zmmword_ptr(a), x)?;
            cc.ret(&[r.into()])?;
            cc.end_func()?;
        }
        Ok(())
    })?;
    let lines = |what: &str| {
        listing
            .lines()
            // Encoded lines, not the IR listed before allocation.
            .filter(|l| !l.contains(';') && l.contains("vpaddd") && l.contains(what))
            .count()
    };
    assert_eq!(lines(""), 8, "{listing}");
    assert_eq!(lines("{k"), 4, "{listing}");
    assert_eq!(lines("{z}"), 2, "{listing}");
    // `lock` on a register destination is refused when the function is
    // compiled: it must reach the instruction, the function's first or a
    // repeated one.
    for repeat in [false, true] {
        let mut code = CodeHolder::new(Arch::X64);
        let mut cc = Compiler::new(&mut code);
        cc.add_func("locked", sig(1))?;
        let a = cc.new_gp64("a");
        cc.set_arg(0, a)?;
        if repeat {
            cc.add(a, a)?;
        }
        cc.lock().add(a, a)?;
        cc.add(a, a)?;
        cc.ret(&[a.into()])?;
        let e = cc.end_func().unwrap_err();
        assert!(
            e.to_string().contains("lock needs a memory destination"),
            "{e}"
        );
    }
    Ok(())
}
