//! The Compiler end to end: functions written on virtual registers are
//! lowered, allocated, emitted, put in executable memory and run; every
//! result is compared with the same computation in Rust.

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

fn build(f: impl FnOnce(&mut Compiler<'_>) -> Result<(), Error>) -> Result<JitCode, Error> {
    let runtime = JitRuntime::new()?;
    let mut code = CodeHolder::new(Arch::X64);
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(true);
        f(&mut cc)?;
        cc.finalize()?;
    }
    runtime.add(&code)
}

/// The workload generator of ../shared/bench/WORKLOAD.md.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
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

/// Workload B: 64 live values and 10,000 operations force spills.
#[test]
fn workload_b_register_pressure() -> Result<(), Error> {
    let code = build(|cc| {
        cc.add_func("pressure", sig(1))?;
        let p = cc.new_gp64("p");
        cc.set_arg(0, p)?;
        let v: Vec<Gp64> = (0..64).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.mov(*r, qword_ptr(p + 8 * i as i32))?;
        }
        let mut rng = Lcg(12345);
        for _ in 0..10_000 {
            let r = rng.next();
            let (op, d, s) = (r % 4, ((r >> 2) % 64) as usize, ((r >> 8) % 64) as usize);
            match op {
                0 => cc.add(v[d], v[s])?,
                1 => cc.sub(v[d], v[s])?,
                2 => cc.xor_(v[d], v[s])?,
                _ => cc.imul_2(v[d], v[s])?,
            }
        }
        let sum = cc.new_gp64("sum");
        cc.xor_(sum, sum)?;
        for r in &v {
            cc.add(sum, *r)?;
        }
        cc.ret(&[sum.into()])?;
        cc.end_func()
    })?;
    let input: Vec<u64> = (0..64u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1))
        .collect();
    // SAFETY: System V function taking a pointer to 64 u64.
    let f: extern "C" fn(*const u64) -> u64 = unsafe { code.function() };
    assert_eq!(f(input.as_ptr()), 0xa7bc95170bc9e1a6);
    Ok(())
}

/// Workload C: many small functions, each compiled and made executable on its own.
#[test]
fn workload_c_small_functions() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let mut xor = 0u64;
    for k in (0..10_000u64).step_by(100) {
        let mut code = CodeHolder::new(Arch::X64);
        let mut expected_ops = Vec::new();
        {
            let mut cc = Compiler::new(&mut code);
            cc.set_checked(true);
            cc.add_func("f", sig(2))?;
            let (x, y) = (cc.new_gp64("x"), cc.new_gp64("y"));
            cc.set_arg(0, x)?;
            cc.set_arg(1, y)?;
            let v = [
                cc.new_gp64("v0"),
                cc.new_gp64("v1"),
                cc.new_gp64("v2"),
                cc.new_gp64("v3"),
            ];
            cc.mov(v[0], x)?;
            cc.mov(v[1], y)?;
            cc.mov(v[2], x)?;
            cc.xor_(v[2], y)?;
            cc.lea(v[3], ptr(x + 1))?;
            let mut rng = Lcg(k + 1);
            for _ in 0..20 {
                let r = rng.next();
                let (op, d, s) = (r % 4, ((r >> 2) % 4) as usize, ((r >> 8) % 4) as usize);
                expected_ops.push((op, d, s));
                match op {
                    0 => cc.add(v[d], v[s])?,
                    1 => cc.sub(v[d], v[s])?,
                    2 => cc.xor_(v[d], v[s])?,
                    _ => cc.imul_2(v[d], v[s])?,
                }
            }
            cc.xor_(v[0], v[1])?;
            cc.xor_(v[0], v[2])?;
            cc.xor_(v[0], v[3])?;
            cc.ret(&[v[0].into()])?;
            cc.end_func()?;
        }
        let function = runtime.add(&code)?;
        // SAFETY: System V function of two integers.
        let f: extern "C" fn(u64, u64) -> u64 = unsafe { function.function() };
        let (x, y) = (0x0123_4567_89AB_CDEFu64, 42u64);
        let mut v = [x, y, x ^ y, x.wrapping_add(1)];
        for (op, d, s) in expected_ops {
            v[d] = match op {
                0 => v[d].wrapping_add(v[s]),
                1 => v[d].wrapping_sub(v[s]),
                2 => v[d] ^ v[s],
                _ => v[d].wrapping_mul(v[s]),
            };
        }
        let want = v[0] ^ v[1] ^ v[2] ^ v[3];
        let got = f(x, y);
        assert_eq!(got, want, "k = {k}");
        xor ^= got;
    }
    assert_eq!(xor, 0x005c6fbf5d9859a3);
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
}
