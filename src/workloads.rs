//! The standard workloads of `../shared/bench/WORKLOAD.md`, as library
//! functions: the benchmarks (`benches/`) and `jitforge bench` run them, and
//! every run checks its result the way the workload spec says.
//!
//! - A: the 40-instruction assembler mix, through the Builder (branches
//!   relaxed: 167 bytes per block, 88 for the general-purpose subset).
//! - B: 64 values and 10,000 operations through the Compiler (register
//!   pressure); the result must be `0xa7bc95170bc9e1a6`.
//! - C: 10,000 small functions, each compiled and made executable on its own;
//!   the xor of 100 of them must be `0x005c6fbf5d9859a3`.
//!
//! B and C need the `compiler` feature.

use crate::builder::Builder;
use crate::code::{Arch, CodeHolder, Label};
#[cfg(feature = "compiler")]
use crate::compiler::{Compiler, Signature, ValType, X86Target};
use crate::error::{Error, Result};
#[cfg(feature = "compiler")]
use crate::jit::{JitCode, JitRuntime};
use crate::x86::*;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

/// The workloads' random number generator.
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value (the high 31 bits of the state).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Workload B's expected result.
pub const WORKLOAD_B_RESULT: u64 = 0xa7bc95170bc9e1a6;
/// The xor of workload C's functions k = 0, 100, ..., 9900 on (x, y).
pub const WORKLOAD_C_RESULT: u64 = 0x005c6fbf5d9859a3;
/// Workload C's arguments.
pub const WORKLOAD_C_ARGS: (u64, u64) = (0x0123_4567_89AB_CDEF, 42);

/// Instructions 1 to 40 of a workload A block (1 to 25 for A.gp) on any
/// emitter; binding `back` before and `fwd` after is the caller's, and
/// `jmp_forward` emits instruction 25 (`jmp fwd`): plain for the Builder,
/// which relaxes it, `short()` for an Assembler that should match the
/// spec's byte count.
pub fn workload_a_body<E: Emitter>(
    e: &mut E,
    back: Label,
    fwd: Label,
    l_fn: Label,
    gp_only: bool,
    jmp_forward: fn(&mut E, Label) -> Result<()>,
) -> Result<()> {
    e.mov(rax, rbx)?;
    e.mov(ecx, 0x12345678)?;
    e.mov(rdx, qword_ptr(rsi + rdi * 8 + 0x40))?;
    e.mov(dword_ptr(rsp + 0x10), r9d)?;
    e.add(r10, r11)?;
    e.add(rax, 0x7f)?;
    e.sub(r12, 0x1000)?;
    e.and_(r13d, r14d)?;
    e.or_(qword_ptr(rbp - 8), rax)?;
    e.xor_(eax, eax)?;
    e.lea(r8, ptr(rax + rcx * 4 + 0x100))?;
    e.imul_3(r15, r14, 17)?;
    e.shl(rdx, 3)?;
    e.sar(r9, cl)?;
    e.cmp(rsi, rdi)?;
    e.test(al, 1)?;
    e.cmovl(rax, rcx)?;
    e.movzx(eax, byte_ptr(rdx + 1))?;
    e.movsxd(r10, dword_ptr(r11))?;
    e.push(rbx)?;
    e.pop(rbx)?;
    e.inc(qword_ptr(rax))?;
    e.neg(r8)?;
    e.jne(back)?;
    jmp_forward(e, fwd)?;
    if !gp_only {
        e.movaps(xmm0, xmm1)?;
        e.addsd(xmm2, qword_ptr(rax + 8))?;
        e.pshufd(xmm3, xmm4, 0x1b)?;
        e.vaddps(ymm0, ymm1, ymm2)?;
        e.vmulpd(ymm3, ymm4, ymmword_ptr(rdi + rcx * 8))?;
        e.vfmadd231ps(ymm5, ymm6, ymm7)?;
        e.vpxor(xmm8, xmm9, xmm10)?;
        e.vmovdqu(ymmword_ptr(rsp + 0x20), ymm11)?;
        e.vpermilps(ymm12, ymm13, 0x4e)?;
        e.vaddps(zmm0.k(k1).z(), zmm1, zmm2)?;
        e.vmovups(zmm16, zmmword_ptr(rax + 0x40))?;
        e.vfmadd213pd(zmm3.k(k2), zmm4, qword_ptr(rbx).bcst())?;
        e.vpternlogd(zmm5, zmm6, zmm31, 0x96)?;
        e.kmovw(k1, eax)?;
        e.call(l_fn)?;
    }
    Ok(())
}

/// One block of workload A through the Builder.
fn block_a(b: &mut Builder<'_>, l_fn: Label, gp_only: bool) -> Result<()> {
    let back = b.new_label();
    let fwd = b.new_label();
    b.bind(back)?;
    workload_a_body(b, back, fwd, l_fn, gp_only, |b, l| b.jmp(l))?;
    b.bind(fwd)
}

/// Workload A (`gp_only`: A.gp) with `blocks` blocks through the Builder:
/// the finished, relocated bytes.
pub fn workload_a(gp_only: bool, blocks: usize) -> Result<Vec<u8>> {
    let mut code = CodeHolder::new(Arch::X64);
    {
        let mut b = Builder::new(&mut code);
        // Each block is its instructions and two label nodes.
        b.reserve(blocks * if gp_only { 27 } else { 42 } + 1);
        let l_fn = b.new_label();
        b.bind(l_fn)?;
        for _ in 0..blocks {
            block_a(&mut b, l_fn, gp_only)?;
        }
        b.finalize()?;
    }
    // The bytes without a copy of megabytes into fresh memory.
    code.take_code()
}

#[cfg(feature = "compiler")]
fn sig(params: usize) -> Signature {
    Signature::new(
        X86Target::SYSV64,
        &vec![ValType::I64; params],
        &[ValType::I64],
    )
}

/// Workload B's input array.
pub fn workload_b_input() -> [u64; 64] {
    std::array::from_fn(|i| {
        (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(1)
    })
}

#[cfg(feature = "compiler")]
/// A compiled workload B function.
pub struct WorkloadB {
    /// The code (`extern "C" fn(*const u64) -> u64`).
    pub code: JitCode,
    /// What the allocator inserted.
    pub stats: jitforge_regalloc::Stats,
    /// Code size in bytes.
    pub code_bytes: usize,
}

#[cfg(feature = "compiler")]
/// Compiles workload B with `ops` operations into `runtime` (`checked`:
/// run the allocation checker too).
pub fn workload_b(runtime: &JitRuntime, ops: usize, checked: bool) -> Result<WorkloadB> {
    let mut code = CodeHolder::new(Arch::X64);
    let stats;
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(checked);
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
    let code_bytes = code.code_size();
    Ok(WorkloadB {
        code: runtime.add(&code)?,
        stats,
        code_bytes,
    })
}

#[cfg(feature = "compiler")]
/// Compiles workload C's function `k` into `runtime`
/// (`extern "C" fn(u64, u64) -> u64`; `checked`: run the allocation checker too).
pub fn workload_c(runtime: &JitRuntime, k: u64, checked: bool) -> Result<JitCode> {
    let mut code = CodeHolder::new(Arch::X64);
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(checked);
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
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the named workloads (`A.full`, `A.gp`, `B`, `C`) `runs` times each
/// and returns one `key=value` line per workload (medians; results checked).
pub fn run(names: &[&str], runs: usize) -> Result<Vec<String>> {
    let runs = runs.max(1);
    #[cfg(feature = "compiler")]
    let runtime = JitRuntime::new()?;
    let mut lines = Vec::new();
    for &name in names {
        let mut line = String::new();
        match name {
            "A.full" | "A.gp" => {
                let gp = name == "A.gp";
                let (blocks, per_block) = if gp { (40_000, 25) } else { (25_000, 40) };
                let mut times = Vec::new();
                let mut bytes = 0;
                for _ in 0..runs {
                    let t = Instant::now();
                    bytes = black_box(workload_a(gp, blocks)?).len();
                    times.push(t.elapsed().as_secs_f64());
                }
                let expected = if gp { 3_520_000 } else { 4_175_000 };
                let t = median(times);
                let _ = write!(
                    line,
                    "workload={name} ns_per_inst={:.1} mb_per_s={:.1} bytes={bytes} check={}",
                    t * 1e9 / (blocks * per_block) as f64,
                    bytes as f64 / t / 1e6,
                    if bytes == expected { "ok" } else { "FAILED" }
                );
            }
            #[cfg(feature = "compiler")]
            "B" => {
                let input = workload_b_input();
                let (mut compile, mut run) = (Vec::new(), Vec::new());
                let mut last = None;
                for _ in 0..runs {
                    let t = Instant::now();
                    let b = workload_b(&runtime, 10_000, false)?;
                    compile.push(t.elapsed().as_secs_f64());
                    // SAFETY: workload B's function takes a pointer to 64 u64.
                    let f: extern "C" fn(*const u64) -> u64 = unsafe { b.code.function() };
                    let ok = f(input.as_ptr()) == WORKLOAD_B_RESULT;
                    let t = Instant::now();
                    for _ in 0..100 {
                        black_box(f(black_box(input.as_ptr())));
                    }
                    run.push(t.elapsed().as_secs_f64() / 100.0);
                    last = Some((b.stats, b.code_bytes, ok));
                }
                if let Some((s, bytes, ok)) = last {
                    let _ = write!(
                        line,
                        "workload=B ns_per_op={:.0} code_bytes={bytes} stores={} reloads={} folded={} moves={} run_ns={:.0} check={}",
                        median(compile) * 1e9 / 10_000.0,
                        s.stores,
                        s.reloads,
                        s.folded,
                        s.moves,
                        median(run) * 1e9,
                        if ok { "ok" } else { "FAILED" }
                    );
                }
            }
            #[cfg(feature = "compiler")]
            "C" => {
                let mut per = Vec::new();
                let mut xor = 0;
                for _ in 0..runs {
                    let t = Instant::now();
                    let mut keep = Vec::with_capacity(10_000);
                    for k in 0..10_000u64 {
                        keep.push(workload_c(&runtime, k, false)?);
                    }
                    per.push(t.elapsed().as_secs_f64() / 10_000.0);
                    xor = 0;
                    for k in (0..10_000).step_by(100) {
                        // SAFETY: workload C's functions take two integers.
                        let f: extern "C" fn(u64, u64) -> u64 = unsafe { keep[k].function() };
                        xor ^= f(WORKLOAD_C_ARGS.0, WORKLOAD_C_ARGS.1);
                    }
                }
                let _ = write!(
                    line,
                    "workload=C us_per_func={:.2} check={}",
                    median(per) * 1e6,
                    if xor == WORKLOAD_C_RESULT {
                        "ok"
                    } else {
                        "FAILED"
                    }
                );
            }
            other => {
                return Err(Error::InvalidArgument {
                    message: format!(
                        "unknown workload {other:?} (A.full, A.gp, B, C; B and C need the compiler feature)"
                    ),
                });
            }
        }
        lines.push(line);
    }
    Ok(lines)
}
