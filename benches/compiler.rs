//! Workloads B and C of ../shared/bench/WORKLOAD.md through jitforge's
//! Compiler: compile time (IR in memory to bytes in executable memory), the
//! compiled code's run time, allocation counts. Prints one line per
//! workload, checking every result against the host computation.
//!
//! `cargo bench --bench compiler` (`RUNS=N` repetitions; medians).

use jitforge::compiler::{Compiler, Signature, ValType, X86Target};
use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error, JitCode, JitRuntime};
use std::hint::black_box;
use std::time::Instant;

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

fn sig(params: usize) -> Signature {
    Signature::new(
        X86Target::SYSV64,
        &vec![ValType::I64; params],
        &[ValType::I64],
    )
}

fn workload_b(
    runtime: &JitRuntime,
    ops: usize,
) -> Result<(JitCode, jitforge_regalloc::Stats, usize), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let stats;
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(false);
        cc.add_func("pressure", sig(1))?;
        let p = cc.new_gp64("p");
        cc.set_arg(0, p)?;
        let v: Vec<Gp64> = (0..64).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            cc.mov(*r, qword_ptr(p + 8 * i as i32))?;
        }
        let mut rng = Lcg(12345);
        for _ in 0..ops {
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
        cc.end_func()?;
        cc.finalize()?;
        stats = cc.last_stats();
    }
    let size = code.code_size();
    Ok((runtime.add(&code)?, stats, size))
}

fn workload_c_one(runtime: &JitRuntime, k: u64) -> Result<JitCode, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(false);
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
        cc.finalize()?;
    }
    runtime.add(&code)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Error> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = JitRuntime::new()?;
    let input: Vec<u64> = (0..64u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1))
        .collect();

    let mut compile = Vec::new();
    let mut run = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let (code, stats, size) = workload_b(&runtime, 10_000)?;
        compile.push(t.elapsed().as_secs_f64());
        // SAFETY: the compiled function takes a pointer to 64 u64 and returns a u64.
        let f: extern "C" fn(*const u64) -> u64 = unsafe { code.function() };
        let check = f(input.as_ptr()) == 0xa7bc95170bc9e1a6;
        let t = Instant::now();
        for _ in 0..1000 {
            black_box(f(black_box(input.as_ptr())));
        }
        run.push(t.elapsed().as_secs_f64() / 1000.0);
        last = Some((stats, size, check));
    }
    if let Some((stats, size, check)) = last {
        println!(
            "workload=B ns_per_op={:.0} code_bytes={size} stores={} reloads={} folded={} moves={} slots={} run_ns={:.0} check={}",
            median(compile) * 1e9 / 10_000.0,
            stats.stores,
            stats.reloads,
            stats.folded,
            stats.moves,
            stats.slots,
            median(run) * 1e9,
            if check { "ok" } else { "FAILED" }
        );
    }

    let mut per_func = Vec::new();
    let mut xor = 0u64;
    for _ in 0..runs.min(3) {
        let t = Instant::now();
        let mut keep = Vec::with_capacity(10_000);
        for k in 0..10_000u64 {
            keep.push(workload_c_one(&runtime, k)?);
        }
        per_func.push(t.elapsed().as_secs_f64() / 10_000.0);
        xor = 0;
        for k in (0..10_000).step_by(100) {
            // SAFETY: System V function of two integers.
            let f: extern "C" fn(u64, u64) -> u64 = unsafe { keep[k].function() };
            xor ^= f(0x0123_4567_89AB_CDEF, 42);
        }
    }
    println!(
        "workload=C us_per_func={:.2} check={}",
        median(per_func) * 1e6,
        if xor == 0x005c6fbf5d9859a3 {
            "ok"
        } else {
            "FAILED"
        }
    );
    Ok(())
}
