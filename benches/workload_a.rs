//! Workload A of ../shared/bench/WORKLOAD.md (assembler mix): 1,000,000
//! instructions into one code buffer, labels resolved at the end, through
//! jitforge's typed Assembler API, through jitforge's Builder (which records
//! the nodes, relaxes the forward jumps and serializes them into an
//! Assembler) and through the iced-x86 Encoder in the same process. Prints
//! medians, ratios and byte counts.
//!
//! Memory: the peak heap growth of one extra, untimed run per implementation
//! (its finished bytes included), per instruction.
//!
//! `cargo bench --bench workload_a` (`RUNS=N` repetitions, median; `PEERS=0` for jitforge alone;
//! `BUILDER=0` without the Builder rows, to profile or count page faults of the Assembler alone;
//! `WORKLOAD=A.gp` or `WORKLOAD=A.full` runs that one alone, to count it alone)

#[path = "common/peak_heap.rs"]
mod peak_heap;

use jitforge::x86::*;
use jitforge::{Arch, Builder, CodeHolder, Error, Label};
use peak_heap::PeakHeap;
use std::hint::black_box;
use std::time::Instant;

/// What a block needs beyond the typed API: labels, and the forward jump
/// (short on request for the Assembler; relaxed by the Builder).
trait Target: Emitter {
    fn label(&mut self) -> Label;
    fn bind_here(&mut self, label: Label) -> Result<(), Error>;
    fn jmp_fwd(&mut self, label: Label) -> Result<(), Error>;
}

impl Target for Assembler<'_> {
    fn label(&mut self) -> Label {
        self.new_label()
    }
    fn bind_here(&mut self, label: Label) -> Result<(), Error> {
        self.bind(label)
    }
    fn jmp_fwd(&mut self, label: Label) -> Result<(), Error> {
        self.short().jmp(label)
    }
}

impl Target for Builder<'_> {
    fn label(&mut self) -> Label {
        self.new_label()
    }
    fn bind_here(&mut self, label: Label) -> Result<(), Error> {
        self.bind(label)
    }
    fn jmp_fwd(&mut self, label: Label) -> Result<(), Error> {
        self.jmp(label)
    }
}

fn block<T: Target>(a: &mut T, l_fn: Label, gp_only: bool) -> Result<(), Error> {
    let back = a.label();
    let fwd = a.label();
    a.bind_here(back)?;
    jitforge::workloads::workload_a_body(a, back, fwd, l_fn, gp_only, |a, l| a.jmp_fwd(l))?;
    a.bind_here(fwd)
}

// Out of line, so that `valgrind --tool=callgrind --toggle-collect=<name>`
// can count one implementation alone.
#[inline(never)]
fn jitforge_run(gp_only: bool, blocks: usize) -> Result<Vec<u8>, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l_fn = a.new_label();
    a.bind(l_fn)?;
    for _ in 0..blocks {
        block(&mut a, l_fn, gp_only)?;
    }
    // The bytes are handed over, not copied into fresh memory.
    code.take_code()
}

// Out of line, so that `valgrind --tool=callgrind --toggle-collect=<name>`
// can count one implementation alone.
#[inline(never)]
fn builder_run(gp_only: bool, blocks: usize) -> Result<Vec<u8>, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    builder_fill(&mut b, gp_only, blocks)?;
    drop(b);
    code.take_code()
}

fn builder_fill(b: &mut Builder<'_>, gp_only: bool, blocks: usize) -> Result<(), Error> {
    let l_fn = b.new_label();
    b.bind(l_fn)?;
    for _ in 0..blocks {
        block(b, l_fn, gp_only)?;
    }
    b.finalize()
}

/// The same through a Builder (and code holder) reused from the previous run,
/// as a JIT that compiles one function after another does: the node arena
/// and the code buffer keep their memory.
// Out of line, so that `valgrind --tool=callgrind --toggle-collect=<name>`
// can count one implementation alone.
#[inline(never)]
fn builder_rerun(b: &mut Builder<'_>, gp_only: bool, blocks: usize) -> Result<Vec<u8>, Error> {
    b.clear();
    b.code_mut().reset();
    builder_fill(b, gp_only, blocks)?;
    // A copy: the code holder keeps its buffer for the next run.
    b.code().finalize()
}

fn iced_run(gp_only: bool, blocks: usize) -> Vec<u8> {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).expect("64-bit");
    let mut l_fn = a.create_label();
    a.set_label(&mut l_fn).expect("label");
    a.nop().expect("nop"); // iced-x86 needs an instruction after a label
    for _ in 0..blocks {
        let mut back = a.create_label();
        let mut fwd = a.create_label();
        a.set_label(&mut back).expect("label");
        a.mov(rax, rbx).expect("i");
        a.mov(ecx, 0x12345678).expect("i");
        a.mov(rdx, qword_ptr(rsi + rdi * 8 + 0x40)).expect("i");
        a.mov(dword_ptr(rsp + 0x10), r9d).expect("i");
        a.add(r10, r11).expect("i");
        a.add(rax, 0x7f).expect("i");
        a.sub(r12, 0x1000).expect("i");
        a.and(r13d, r14d).expect("i");
        a.or(qword_ptr(rbp - 8), rax).expect("i");
        a.xor(eax, eax).expect("i");
        a.lea(r8, qword_ptr(rax + rcx * 4 + 0x100)).expect("i");
        a.imul_3(r15, r14, 17).expect("i");
        a.shl(rdx, 3).expect("i");
        a.sar(r9, cl).expect("i");
        a.cmp(rsi, rdi).expect("i");
        a.test(al, 1).expect("i");
        a.cmovl(rax, rcx).expect("i");
        a.movzx(eax, byte_ptr(rdx + 1)).expect("i");
        a.movsxd(r10, dword_ptr(r11)).expect("i");
        a.push(rbx).expect("i");
        a.pop(rbx).expect("i");
        a.inc(qword_ptr(rax)).expect("i");
        a.neg(r8).expect("i");
        a.jne(back).expect("i");
        a.jmp(fwd).expect("i");
        if !gp_only {
            a.movaps(xmm0, xmm1).expect("i");
            a.addsd(xmm2, qword_ptr(rax + 8)).expect("i");
            a.pshufd(xmm3, xmm4, 0x1b).expect("i");
            a.vaddps(ymm0, ymm1, ymm2).expect("i");
            a.vmulpd(ymm3, ymm4, ymmword_ptr(rdi + rcx * 8)).expect("i");
            a.vfmadd231ps(ymm5, ymm6, ymm7).expect("i");
            a.vpxor(xmm8, xmm9, xmm10).expect("i");
            a.vmovdqu(ymmword_ptr(rsp + 0x20), ymm11).expect("i");
            a.vpermilps(ymm12, ymm13, 0x4e).expect("i");
            a.vaddps(zmm0.k1().z(), zmm1, zmm2).expect("i");
            a.vmovups(zmm16, zmmword_ptr(rax + 0x40)).expect("i");
            a.vfmadd213pd(zmm3.k2(), zmm4, qword_bcst(rbx)).expect("i");
            a.vpternlogd(zmm5, zmm6, zmm31, 0x96).expect("i");
            a.kmovw(k1, eax).expect("i");
            a.call(l_fn).expect("i");
        }
        a.set_label(&mut fwd).expect("label");
        a.nop().expect("nop");
    }
    a.assemble(0).expect("assemble")
}

/// A.gp through dynasm-rs: its macro encodes each instruction at compile
/// time, so what is left at run time is copying bytes and patching the
/// label displacements. Both jumps are asked for in their short form
/// (`BYTE`), which is what the other assemblers pick for these distances.
fn dynasm_run(blocks: usize) -> Vec<u8> {
    use dynasmrt::{DynasmApi, DynasmLabelApi, dynasm, x64::X64Relocation};
    let mut ops = dynasmrt::VecAssembler::<X64Relocation>::new(0);
    dynasm!(ops ; .arch x64 ; ->l_fn:);
    for _ in 0..blocks {
        let back = ops.new_dynamic_label();
        let fwd = ops.new_dynamic_label();
        dynasm!(ops
            ; .arch x64
            ; =>back
            ; mov rax, rbx
            ; mov ecx, 0x12345678
            ; mov rdx, QWORD [rsi + rdi * 8 + 0x40]
            ; mov DWORD [rsp + 0x10], r9d
            ; add r10, r11
            ; add rax, 0x7f
            ; sub r12, 0x1000
            ; and r13d, r14d
            ; or QWORD [rbp - 8], rax
            ; xor eax, eax
            ; lea r8, [rax + rcx * 4 + 0x100]
            ; imul r15, r14, 17
            ; shl rdx, 3
            ; sar r9, cl
            ; cmp rsi, rdi
            ; test al, 1
            ; cmovl rax, rcx
            ; movzx eax, BYTE [rdx + 1]
            ; movsxd r10, DWORD [r11]
            ; push rbx
            ; pop rbx
            ; inc QWORD [rax]
            ; neg r8
            ; jne BYTE =>back
            ; jmp BYTE =>fwd
            ; =>fwd
        );
    }
    ops.finalize().expect("dynasm-rs resolves its labels")
}

#[global_allocator]
static HEAP: PeakHeap = PeakHeap;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median time of `runs` calls of `f`, the byte count it returns and
/// the peak heap growth of one more, untimed call before them.
fn measure(runs: usize, mut f: impl FnMut() -> usize) -> (f64, usize, usize) {
    let (heap, _) = PeakHeap::measure(&mut f);
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        bytes = black_box(f());
        times.push(start.elapsed().as_secs_f64());
    }
    (median(times), bytes, heap)
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!(
        "workload   implementation            ns/inst     MB/s      bytes   ratio  heap B/inst  check"
    );
    for (name, gp_only, blocks, per_block) in [
        ("A.full", false, 25_000usize, 40usize),
        ("A.gp", true, 40_000, 25),
    ] {
        if std::env::var("WORKLOAD").is_ok_and(|only| only != name) {
            continue;
        }
        let instructions = (blocks * per_block) as f64;
        let (ours, our_bytes, our_heap) = measure(runs, || {
            jitforge_run(gp_only, blocks)
                .expect("workload A encodes")
                .len()
        });
        let mut rows = vec![("jitforge Assembler", ours, our_bytes, our_heap)];
        if std::env::var("BUILDER").as_deref() != Ok("0") {
            let (built, built_bytes, built_heap) = measure(runs, || {
                builder_run(gp_only, blocks)
                    .expect("workload A through the Builder")
                    .len()
            });
            rows.push(("jitforge Builder", built, built_bytes, built_heap));
            let mut code = CodeHolder::new(Arch::X64);
            let mut reused = Builder::new(&mut code);
            let (again, again_bytes, again_heap) = measure(runs, || {
                builder_rerun(&mut reused, gp_only, blocks)
                    .expect("workload A through a reused Builder")
                    .len()
            });
            rows.push(("jitforge Builder reused", again, again_bytes, again_heap));
        }
        // PEERS=0 measures jitforge alone (for callgrind runs).
        if std::env::var("PEERS").as_deref() != Ok("0") {
            let (iced, iced_bytes, iced_heap) =
                measure(runs.min(3), || iced_run(gp_only, blocks).len());
            rows.push(("iced-x86 CodeAssembler", iced, iced_bytes, iced_heap));
            if gp_only {
                let (dynasm, dynasm_bytes, dynasm_heap) =
                    measure(runs, || dynasm_run(blocks).len());
                rows.push(("dynasm-rs", dynasm, dynasm_bytes, dynasm_heap));
            }
        }
        // The workload's byte counts: shortest encodings, and with every
        // forward jump as rel32 (4 more bytes per block, plus iced-x86's
        // one-byte nop after the first label).
        let (shortest, rel32) = if gp_only {
            (3_520_000, 3_640_000)
        } else {
            (4_175_000, 4_250_000)
        };
        let mut failed = false;
        for (label, t, bytes, heap) in rows {
            let expected = if label.starts_with("iced") {
                rel32 + 1
            } else {
                shortest
            };
            failed |= bytes != expected;
            println!(
                "{name:<10} {label:<25} {:>7.2} {:>8.1} {:>10} {:>7.2} {:>12.1}  {}",
                t * 1e9 / instructions,
                bytes as f64 / t / 1e6,
                bytes,
                t / ours,
                heap as f64 / instructions,
                if bytes == expected { "ok" } else { "FAILED" }
            );
        }
        if failed {
            eprintln!("{name}: a byte count differs from the workload's");
            std::process::exit(1);
        }
    }
}
