//! Workloads B and C of ../shared/bench/WORKLOAD.md through jitforge's
//! Compiler (`jitforge::workloads`, also behind `jitforge bench`) and through
//! Cranelift in the same process: optimization `none` and `speed`, each with
//! its backtracking and its single-pass register allocator. Compile time is
//! IR construction to bytes in executable memory; every implementation's
//! result is checked as the workload says. Prints medians, each peer's ratio
//! to jitforge (above 1: jitforge is faster) and code byte counts.
//!
//! Memory: the peak heap growth while compiling workload B once (one
//! extra, untimed run), divided by its IR instructions, and the same for
//! workload C's first function.
//!
//! `cargo bench --bench compiler` (`RUNS=N` repetitions, median; `PEERS=0`
//! for jitforge alone).

#[path = "common/peak_heap.rs"]
mod peak_heap;

use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Value, types::I64};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Module, default_libcall_names};
use jitforge::JitRuntime;
use jitforge::workloads::{
    Lcg, WORKLOAD_B_RESULT, WORKLOAD_C_ARGS, WORKLOAD_C_RESULT, workload_b, workload_b_input,
    workload_c,
};
use peak_heap::PeakHeap;
use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static HEAP: PeakHeap = PeakHeap;

const B_OPS: usize = 10_000;
/// Workload B's IR instructions: 64 loads, the operations, the sum (its
/// initial zero and 64 additions) and the return.
const B_IR_INSTS: usize = 64 + B_OPS + 1 + 64 + 1;
const C_FUNCS: u64 = 10_000;
/// Workload C's IR instructions per function: 4 definitions, 20
/// operations, 3 xors and the return.
const C_IR_INSTS: usize = 4 + 20 + 3 + 1;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One row of the table: compile time per unit (ns per operation for B,
/// µs per function for C), run time per call (B only), code bytes, peak heap
/// bytes per IR instruction, checked.
struct Row {
    name: String,
    compile: f64,
    heap_per_inst: f64,
    run_ns: Option<f64>,
    bytes: usize,
    ok: bool,
}

/// Calls workload B's function 100 times: ns per call.
fn time_b(f: extern "C" fn(*const u64) -> u64, input: &[u64; 64]) -> f64 {
    let t = Instant::now();
    for _ in 0..100 {
        black_box(f(black_box(input.as_ptr())));
    }
    t.elapsed().as_secs_f64() * 1e9 / 100.0
}

fn jitforge_b(runs: usize) -> Row {
    let runtime = JitRuntime::new().expect("JIT runtime");
    let input = workload_b_input();
    let (mut compile, mut run) = (Vec::new(), Vec::new());
    // The peak heap of a compile from nothing (no workspace kept from
    // an earlier Compiler of this thread).
    jitforge::compiler::release_thread_workspace();
    let (heap, first) = PeakHeap::measure(|| workload_b(&runtime, B_OPS, false));
    let first = first.expect("workload B compiles");
    // SAFETY: workload B's function takes a pointer to 64 u64.
    let f: extern "C" fn(*const u64) -> u64 = unsafe { first.code.function() };
    let mut ok = f(input.as_ptr()) == WORKLOAD_B_RESULT;
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let b = workload_b(&runtime, B_OPS, false).expect("workload B compiles");
        compile.push(t.elapsed().as_secs_f64() * 1e9 / B_OPS as f64);
        // SAFETY: workload B's function takes a pointer to 64 u64.
        let f: extern "C" fn(*const u64) -> u64 = unsafe { b.code.function() };
        ok &= f(input.as_ptr()) == WORKLOAD_B_RESULT;
        run.push(time_b(f, &input));
        bytes = b.code_bytes;
    }
    Row {
        name: "jitforge Compiler".into(),
        compile: median(compile),
        heap_per_inst: heap as f64 / B_IR_INSTS as f64,
        run_ns: Some(median(run)),
        bytes,
        ok,
    }
}

fn jitforge_c(runs: usize) -> Row {
    let runtime = JitRuntime::new().expect("JIT runtime");
    jitforge::compiler::release_thread_workspace();
    let (heap, first) = PeakHeap::measure(|| workload_c(&runtime, 0, false));
    let first = first.expect("workload C compiles");
    let mut ok = call_c(first.as_ptr()) == workload_c_host(0);
    let (mut per, mut bytes) = (Vec::new(), 0);
    for _ in 0..runs {
        let t = Instant::now();
        let mut keep = Vec::with_capacity(C_FUNCS as usize);
        for k in 0..C_FUNCS {
            keep.push(workload_c(&runtime, k, false).expect("workload C compiles"));
        }
        per.push(t.elapsed().as_secs_f64() * 1e6 / C_FUNCS as f64);
        let mut xor = 0;
        for k in (0..C_FUNCS as usize).step_by(100) {
            // SAFETY: workload C's functions take two integers.
            let f: extern "C" fn(u64, u64) -> u64 = unsafe { keep[k].function() };
            xor ^= f(WORKLOAD_C_ARGS.0, WORKLOAD_C_ARGS.1);
        }
        ok &= xor == WORKLOAD_C_RESULT;
        bytes = keep.iter().map(|c| c.size()).sum();
    }
    Row {
        name: "jitforge Compiler".into(),
        compile: median(per),
        heap_per_inst: heap as f64 / C_IR_INSTS as f64,
        run_ns: None,
        bytes,
        ok,
    }
}

/// A Cranelift configuration: `opt_level` and `regalloc_algorithm`.
#[derive(Clone, Copy)]
struct Config {
    opt: &'static str,
    regalloc: &'static str,
}

impl Config {
    fn name(self) -> String {
        format!("Cranelift {} {}", self.opt, self.regalloc)
    }

    /// A fresh JIT module for the host with this configuration.
    fn module(self) -> JITModule {
        let mut flags = settings::builder();
        flags.set("opt_level", self.opt).expect("opt_level");
        flags
            .set("regalloc_algorithm", self.regalloc)
            .expect("regalloc_algorithm");
        let isa = cranelift_native::builder()
            .expect("host ISA")
            .finish(settings::Flags::new(flags))
            .expect("ISA");
        JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()))
    }
}

/// `v[d] = v[d] OP v[s]` for one generator value, as workloads B and C pick
/// it (`values`: 64 for B, 4 for C).
fn cranelift_op(b: &mut FunctionBuilder<'_>, v: &[Variable], r: u64) {
    let n = v.len() as u64;
    let (d, s) = (v[((r >> 2) % n) as usize], v[((r >> 8) % n) as usize]);
    let (x, y) = (b.use_var(d), b.use_var(s));
    let z = match r % 4 {
        0 => b.ins().iadd(x, y),
        1 => b.ins().isub(x, y),
        2 => b.ins().bxor(x, y),
        _ => b.ins().imul(x, y),
    };
    b.def_var(d, z);
}

/// Builds, compiles and finalizes one function into `module`: `params`
/// I64 parameters, one I64 result, the body from `body`. Returns its
/// address and code size. The frontend's variables play the role of the
/// Compiler's virtual registers (redefined by every operation).
fn cranelift_function(
    module: &mut JITModule,
    ctx: &mut cranelift_codegen::Context,
    fctx: &mut FunctionBuilderContext,
    params: usize,
    body: impl FnOnce(&mut FunctionBuilder<'_>, &[Value]) -> Value,
) -> (*const u8, usize) {
    module.clear_context(ctx);
    let frontend = module.isa().frontend_config();
    for _ in 0..params {
        ctx.func.signature.params.push(AbiParam::new(I64));
    }
    ctx.func.signature.returns.push(AbiParam::new(I64));
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let args = b.block_params(entry).to_vec();
        let result = body(&mut b, &args);
        b.ins().return_(&[result]);
        b.finalize(frontend);
    }
    let id = module
        .declare_anonymous_function(&ctx.func.signature)
        .expect("declare");
    module.define_function(id, ctx).expect("Cranelift compiles");
    let size = ctx.compiled_code().expect("compiled").code_buffer().len();
    module.finalize_definitions().expect("finalize");
    (module.get_finalized_function(id), size)
}

/// Workload B's body in Cranelift IR (`args[0]`: the array).
fn cranelift_b_body(b: &mut FunctionBuilder<'_>, args: &[Value]) -> Value {
    let v: Vec<Variable> = (0..64).map(|_| b.declare_var(I64)).collect();
    for (i, var) in v.iter().enumerate() {
        let x = b
            .ins()
            .load(I64, MemFlagsData::trusted(), args[0], 8 * i as i32);
        b.def_var(*var, x);
    }
    let mut rng = Lcg(12345);
    for _ in 0..B_OPS {
        cranelift_op(b, &v, rng.next());
    }
    let mut sum = b.ins().iconst(I64, 0);
    for var in &v {
        let x = b.use_var(*var);
        sum = b.ins().iadd(sum, x);
    }
    sum
}

/// Workload C's function `k` in Cranelift IR (`args`: x and y).
fn cranelift_c_body(k: u64, b: &mut FunctionBuilder<'_>, args: &[Value]) -> Value {
    let v: Vec<Variable> = (0..4).map(|_| b.declare_var(I64)).collect();
    let (x, y) = (args[0], args[1]);
    let xy = b.ins().bxor(x, y);
    let x1 = b.ins().iadd_imm_s(x, 1);
    for (var, init) in v.iter().zip([x, y, xy, x1]) {
        b.def_var(*var, init);
    }
    let mut rng = Lcg(k + 1);
    for _ in 0..20 {
        cranelift_op(b, &v, rng.next());
    }
    let vals: Vec<Value> = v.iter().map(|var| b.use_var(*var)).collect();
    let a = b.ins().bxor(vals[0], vals[1]);
    let a = b.ins().bxor(a, vals[2]);
    b.ins().bxor(a, vals[3])
}

/// The peak heap growth of compiling one function with `body` in a fresh
/// module (the module's own setup excluded), and the function's result on
/// `call`'s arguments.
fn cranelift_heap(
    config: Config,
    params: usize,
    body: impl FnOnce(&mut FunctionBuilder<'_>, &[Value]) -> Value,
    call: impl FnOnce(*const u8) -> u64,
) -> (usize, u64) {
    let mut module = config.module();
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let (heap, (code, _)) =
        PeakHeap::measure(|| cranelift_function(&mut module, &mut ctx, &mut fctx, params, body));
    let result = call(code);
    // SAFETY: nothing calls into this module's code any more.
    unsafe { module.free_memory() };
    (heap, result)
}

fn cranelift_b(config: Config, runs: usize) -> Row {
    let input = workload_b_input();
    let call_b = |code: *const u8| {
        // SAFETY: workload B's function takes a pointer to 64 u64 and returns one.
        let f: extern "C" fn(*const u64) -> u64 = unsafe { std::mem::transmute(code) };
        f(input.as_ptr())
    };
    let (heap, first) = cranelift_heap(config, 1, cranelift_b_body, call_b);
    let (mut compile, mut run) = (Vec::new(), Vec::new());
    let (mut ok, mut bytes) = (first == WORKLOAD_B_RESULT, 0);
    for _ in 0..runs {
        let mut module = config.module();
        let mut ctx = module.make_context();
        let mut fctx = FunctionBuilderContext::new();
        let t = Instant::now();
        let (code, size) =
            cranelift_function(&mut module, &mut ctx, &mut fctx, 1, cranelift_b_body);
        compile.push(t.elapsed().as_secs_f64() * 1e9 / B_OPS as f64);
        ok &= call_b(code) == WORKLOAD_B_RESULT;
        // SAFETY: as in `call_b`.
        let f: extern "C" fn(*const u64) -> u64 = unsafe { std::mem::transmute(code) };
        run.push(time_b(f, &input));
        bytes = size;
        // SAFETY: nothing calls into this module's code any more.
        unsafe { module.free_memory() };
    }
    Row {
        name: config.name(),
        compile: median(compile),
        heap_per_inst: heap as f64 / B_IR_INSTS as f64,
        run_ns: Some(median(run)),
        bytes,
        ok,
    }
}

/// Calls one of workload C's functions on the workload's arguments.
fn call_c(code: *const u8) -> u64 {
    // SAFETY: workload C's functions take two integers and return one.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { std::mem::transmute(code) };
    f(WORKLOAD_C_ARGS.0, WORKLOAD_C_ARGS.1)
}

fn cranelift_c(config: Config, runs: usize) -> Row {
    let (heap, first) = cranelift_heap(config, 2, |b, a| cranelift_c_body(0, b, a), call_c);
    let mut ok = first == workload_c_host(0);
    let (mut per, mut bytes) = (Vec::new(), 0);
    for _ in 0..runs {
        let mut module = config.module();
        let mut ctx = module.make_context();
        let mut fctx = FunctionBuilderContext::new();
        let mut functions = Vec::with_capacity(C_FUNCS as usize);
        let t = Instant::now();
        for k in 0..C_FUNCS {
            functions.push(cranelift_function(
                &mut module,
                &mut ctx,
                &mut fctx,
                2,
                |b, args| cranelift_c_body(k, b, args),
            ));
        }
        per.push(t.elapsed().as_secs_f64() * 1e6 / C_FUNCS as f64);
        let xor = functions
            .iter()
            .step_by(100)
            .fold(0, |xor, &(code, _)| xor ^ call_c(code));
        ok &= xor == WORKLOAD_C_RESULT;
        bytes = functions.iter().map(|&(_, size)| size).sum();
        // SAFETY: nothing calls into this module's code any more.
        unsafe { module.free_memory() };
    }
    Row {
        name: config.name(),
        compile: median(per),
        heap_per_inst: heap as f64 / C_IR_INSTS as f64,
        run_ns: None,
        bytes,
        ok,
    }
}

/// Workload C's function `k` computed on the host, on the workload's arguments.
fn workload_c_host(k: u64) -> u64 {
    let (x, y) = WORKLOAD_C_ARGS;
    let mut v = [x, y, x ^ y, x.wrapping_add(1)];
    let mut rng = Lcg(k + 1);
    for _ in 0..20 {
        let r = rng.next();
        let (d, s) = (((r >> 2) % 4) as usize, ((r >> 8) % 4) as usize);
        v[d] = match r % 4 {
            0 => v[d].wrapping_add(v[s]),
            1 => v[d].wrapping_sub(v[s]),
            2 => v[d] ^ v[s],
            _ => v[d].wrapping_mul(v[s]),
        };
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn print(workload: &str, unit: &str, rows: &[Row]) {
    let ours = &rows[0];
    println!(
        "{workload:<3} {:<34} {unit:>14} {:>7} {:>8} {:>9} {:>10} {:>11} {:>6}",
        "implementation", "ratio", "run ns", "run ratio", "code bytes", "heap B/inst", "check"
    );
    for row in rows {
        let run = row.run_ns.map_or("-".into(), |ns| format!("{ns:.0}"));
        let run_ratio = match (row.run_ns, ours.run_ns) {
            (Some(theirs), Some(mine)) => format!("{:.2}", theirs / mine),
            _ => "-".into(),
        };
        println!(
            "{workload:<3} {:<34} {:>14.2} {:>7.2} {run:>8} {run_ratio:>9} {:>10} {:>11.0} {:>6}",
            row.name,
            row.compile,
            row.compile / ours.compile,
            row.bytes,
            row.heap_per_inst,
            if row.ok { "ok" } else { "FAILED" }
        );
    }
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let peers = std::env::var("PEERS").as_deref() != Ok("0");
    let configs = [
        Config {
            opt: "none",
            regalloc: "backtracking",
        },
        Config {
            opt: "none",
            regalloc: "single_pass",
        },
        Config {
            opt: "speed",
            regalloc: "backtracking",
        },
        Config {
            opt: "speed",
            regalloc: "single_pass",
        },
    ];
    let peer_runs = runs.min(3);
    let mut b = vec![jitforge_b(runs)];
    let mut c = vec![jitforge_c(runs)];
    if peers {
        for config in configs {
            b.push(cranelift_b(config, peer_runs));
            c.push(cranelift_c(config, peer_runs));
        }
    }
    print("B", "compile ns/op", &b);
    println!();
    print("C", "µs/function", &c);
    if b.iter().chain(&c).any(|row| !row.ok) {
        eprintln!("a result did not match the workload's expected value");
        std::process::exit(1);
    }
}
