//! Differential testing of the whole Compiler pipeline: a byte string is
//! turned into a random program (straight code, diamonds, counted loops,
//! 1 to 48 simultaneously live values, shifts, multiplies, vector
//! operations, calls into host functions (some with `u8`, `i8`, `u16`,
//! `i16` arguments written as views or whole 64-bit values: the callee
//! must get the 32 bits of each widened by its type), loads and stores in a memory
//! buffer, instructions with implicit registers bound to values: widening
//! `mul` and `div` on rdx:rax, shifts by cl, `rep stosq`), which is compiled, put in executable memory and run, and also
//! interpreted in Rust: the results, the buffer's contents and the trace of
//! host calls (function and arguments, in order) must agree. The
//! cargo-fuzz target `compile_run` and the test suite both call
//! [`check_program`]. On Linux x86-64, `check_program32` does the same
//! for 32-bit code (cargo-fuzz target `compile_run32`), which it runs in
//! compatibility mode through `compat32`, the harness the 32-bit tests use too.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod compat32;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod program32;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use program32::check_program32;

use super::{Compiler, Signature, ValType, X86Target};
use crate::code::{Arch, CodeHolder};
use crate::jit::JitRuntime;
use crate::x86::{Gp64, Instructions, Xmm, ptr, qword_ptr, xmmword_ptr};

/// Reads bytes as a stream of small choices (zeros once exhausted).
struct Choices<'a> {
    data: &'a [u8],
    at: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.byte() as usize % n }
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// One statement of a generated program.
#[derive(Clone, Debug)]
enum Stmt {
    Op(u8, usize, usize),
    /// paddq/psubq/pxor/pand/por/punpcklqdq on two vector values.
    VecOp(u8, usize, usize),
    /// movq vector <- general-purpose value (upper lane zeroed).
    ToVec(usize, usize),
    /// movq general-purpose value <- vector's low lane.
    FromVec(usize, usize),
    Shift(bool, usize, u8),
    /// `v[d] = host[k](v[a], v[b])`, a System V call recorded in the trace.
    Call(u8, usize, usize, usize),
    /// `v[d] = host_narrow(v[a], v[b])` with the arguments typed as the
    /// 8- or 16-bit pair [`NARROW_TYPES`]`[k]` (and the result as its third
    /// type, extended into `v[d]` when narrow) and written as the whole
    /// value (bit 0 of the mask for `a`, bit 1 for `b`) or its low
    /// byte/word view.
    NarrowCall(u8, u8, usize, usize, usize),
    /// `v[d] = buffer[v[i] % 16]`.
    Load(usize, usize),
    /// `buffer[v[i] % 16] = v[s]`.
    Store(usize, usize),
    /// `v[hi]:v[lo] = v[a] * v[b]` (unsigned, 128-bit; `mul` on rdx:rax).
    WideMul(usize, usize, usize, usize),
    /// `v[q], v[r] = v[a] / (v[b] | 1), v[a] % (v[b] | 1)` (`div` on rdx:rax).
    DivMod(usize, usize, usize, usize),
    /// `v[d] <<= v[c] % 64` (`shl` by cl).
    ShiftCl(usize, usize),
    /// `buffer[v[i] % 8 ..][.. v[n] % 8] = v[s]` (`rep stosq`: rcx, rdi, rax).
    RepStore(usize, usize, usize),
    If(usize, Vec<Stmt>, Vec<Stmt>),
    Loop(u8, Vec<Stmt>),
}

/// Generates `len` statements. A `straight` block has no branches, loops
/// or calls (those choices become operations), so the whole program is one
/// block without calls: the register allocator's local path.
fn gen_block(
    c: &mut Choices<'_>,
    values: usize,
    vectors: usize,
    depth: u32,
    len: usize,
    straight: bool,
) -> Vec<Stmt> {
    let mut out = Vec::new();
    for _ in 0..len {
        if c.done() {
            break;
        }
        let kind = c.below(17);
        let stmt = match kind {
            0 if depth < 3 && !straight => {
                let cond = c.below(values);
                let n1 = 1 + c.below(6);
                let a = gen_block(c, values, vectors, depth + 1, n1, false);
                let n2 = c.below(6);
                let b = gen_block(c, values, vectors, depth + 1, n2, false);
                Stmt::If(cond, a, b)
            }
            1 if depth < 2 && !straight => {
                let count = 1 + c.below(4) as u8;
                let n = 1 + c.below(8);
                Stmt::Loop(count, gen_block(c, values, vectors, depth + 1, n, false))
            }
            2 => Stmt::Shift(c.byte() & 1 == 0, c.below(values), c.byte() % 64),
            3 if vectors > 0 => Stmt::VecOp(c.byte() % 6, c.below(vectors), c.below(vectors)),
            4 if vectors > 0 => match c.byte() & 1 {
                0 => Stmt::ToVec(c.below(vectors), c.below(values)),
                _ => Stmt::FromVec(c.below(values), c.below(vectors)),
            },
            10 if !straight => {
                let k = c.byte() % (HOSTS.len() + NARROW_TYPES.len()) as u8;
                let (d, a, b) = (c.below(values), c.below(values), c.below(values));
                match k.checked_sub(HOSTS.len() as u8) {
                    Some(n) => Stmt::NarrowCall(n, c.byte() & 3, d, a, b),
                    None => Stmt::Call(k, d, a, b),
                }
            }
            11 => Stmt::Load(c.below(values), c.below(values)),
            12 => Stmt::Store(c.below(values), c.below(values)),
            13 => Stmt::WideMul(
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            14 => Stmt::DivMod(
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            15 => Stmt::ShiftCl(c.below(values), c.below(values)),
            16 => Stmt::RepStore(c.below(values), c.below(values), c.below(values)),
            _ => Stmt::Op(c.byte() % 6, c.below(values), c.below(values)),
        };
        out.push(stmt);
    }
    out
}

/// Host functions the programs call; each records its call in [`TRACE`].
const HOSTS: [extern "C" fn(u64, u64) -> u64; 2] = [host_mix, host_rotate];

thread_local! {
    /// The host calls made (function, arguments), in order.
    static TRACE: core::cell::RefCell<Vec<(u8, u64, u64)>> = const { core::cell::RefCell::new(Vec::new()) };
}

fn host_result(k: u8, a: u64, b: u64) -> u64 {
    match k {
        0 => a.wrapping_mul(0x9E37_79B9) ^ b,
        _ => a.rotate_left((b & 63) as u32).wrapping_add(7),
    }
}

extern "C" fn host_mix(a: u64, b: u64) -> u64 {
    TRACE.with(|t| t.borrow_mut().push((0, a, b)));
    host_result(0, a, b)
}

extern "C" fn host_rotate(a: u64, b: u64) -> u64 {
    TRACE.with(|t| t.borrow_mut().push((1, a, b)));
    host_result(1, a, b)
}

/// The argument types and the result type of the narrow calls (all to
/// [`host_narrow`], which returns 64 bits: a narrow result type leaves the
/// bits above it undefined, so the caller must extend them away).
const NARROW_TYPES: [[ValType; 3]; 4] = [
    [ValType::U8, ValType::I16, ValType::I8],
    [ValType::I8, ValType::U16, ValType::U16],
    [ValType::U16, ValType::U8, ValType::I64],
    [ValType::I16, ValType::I8, ValType::U8],
];

/// The host the narrow calls go to. It takes the 32 bits of each
/// argument's register as they are (the convention gives an 8- or 16-bit
/// argument widened to 32 bits by its type's signedness), so any bit of
/// garbage above the value shows in the trace, whatever the build (a
/// callee taking `u8` reads the whole register only when optimized, and
/// not always). Recorded as host `HOSTS.len()`.
extern "C" fn host_narrow(a: u32, b: u32) -> u64 {
    let (a, b) = (u64::from(a), u64::from(b));
    TRACE.with(|t| t.borrow_mut().push((HOSTS.len() as u8, a, b)));
    host_result(0, a, b)
}

/// The 32 bits an argument `v` of the 8- or 16-bit type `t` is passed as.
fn passed_narrow(v: u64, t: ValType) -> u64 {
    u64::from(match t {
        ValType::I8 => v as i8 as u32,
        ValType::U8 => u32::from(v as u8),
        ValType::I16 => v as i16 as u32,
        _ => u32::from(v as u16),
    })
}

/// What a program touches besides its values: the buffer and the call trace.
struct World {
    buffer: [u64; 16],
    trace: Vec<(u8, u64, u64)>,
}

fn interpret(stmts: &[Stmt], v: &mut [u64], x: &mut [[u64; 2]], w: &mut World) {
    for s in stmts {
        match s {
            Stmt::Call(k, d, a, b) => {
                w.trace.push((*k, v[*a], v[*b]));
                v[*d] = host_result(*k, v[*a], v[*b]);
            }
            Stmt::NarrowCall(k, _, d, a, b) => {
                let [ta, tb, tr] = NARROW_TYPES[*k as usize];
                let (a, b) = (passed_narrow(v[*a], ta), passed_narrow(v[*b], tb));
                w.trace.push((HOSTS.len() as u8, a, b));
                // The caller sees the result's type's bits, extended by its signedness.
                v[*d] = super::run::as_type(host_result(0, a, b), tr);
            }
            Stmt::Load(d, i) => v[*d] = w.buffer[(v[*i] % 16) as usize],
            Stmt::Store(i, s) => w.buffer[(v[*i] % 16) as usize] = v[*s],
            Stmt::WideMul(hi, lo, a, b) => {
                let p = u128::from(v[*a]) * u128::from(v[*b]);
                v[*lo] = p as u64;
                v[*hi] = (p >> 64) as u64;
            }
            Stmt::DivMod(q, r, a, b) => {
                let (n, d) = (v[*a], v[*b] | 1);
                v[*q] = n / d;
                v[*r] = n % d;
            }
            Stmt::ShiftCl(d, c) => v[*d] <<= v[*c] % 64,
            Stmt::RepStore(i, s, n) => {
                let start = (v[*i] % 8) as usize;
                let count = (v[*n] % 8) as usize;
                let value = v[*s];
                w.buffer[start..start + count].fill(value);
            }
            Stmt::VecOp(op, d, src) => {
                let (a, b) = (x[*d], x[*src]);
                x[*d] = match op {
                    0 => [a[0].wrapping_add(b[0]), a[1].wrapping_add(b[1])],
                    1 => [a[0].wrapping_sub(b[0]), a[1].wrapping_sub(b[1])],
                    2 => [a[0] ^ b[0], a[1] ^ b[1]],
                    3 => [a[0] & b[0], a[1] & b[1]],
                    4 => [a[0] | b[0], a[1] | b[1]],
                    _ => [a[0], b[0]],
                };
            }
            Stmt::ToVec(d, g) => x[*d] = [v[*g], 0],
            Stmt::FromVec(g, d) => v[*g] = x[*d][0],
            Stmt::Op(op, d, src) => {
                let x = v[*src];
                v[*d] = match op {
                    0 => v[*d].wrapping_add(x),
                    1 => v[*d].wrapping_sub(x),
                    2 => v[*d] ^ x,
                    3 => v[*d].wrapping_mul(x),
                    4 => v[*d] & x,
                    _ => v[*d] | x,
                };
            }
            Stmt::Shift(left, d, n) => v[*d] = if *left { v[*d] << n } else { v[*d] >> n },
            Stmt::If(cond, a, b) => {
                if v[*cond] & 1 != 0 {
                    interpret(a, v, x, w)
                } else {
                    interpret(b, v, x, w)
                }
            }
            Stmt::Loop(count, body) => {
                for _ in 0..*count {
                    interpret(body, v, x, w);
                }
            }
        }
    }
}

fn compile(
    cc: &mut Compiler<'_>,
    stmts: &[Stmt],
    v: &[Gp64],
    x: &[Xmm],
    buffer: Gp64,
) -> crate::Result<()> {
    for s in stmts {
        match s {
            Stmt::Call(k, d, a, b) => {
                let sig = Signature::new(X86Target::SYSV64, &[ValType::I64; 2], &[ValType::I64]);
                let address = HOSTS[*k as usize] as usize as i64;
                cc.invoke(
                    crate::x86::Operand::Imm(address),
                    sig,
                    &[v[*a].into(), v[*b].into()],
                    &[v[*d].into()],
                )?;
            }
            Stmt::NarrowCall(k, whole, d, a, b) => {
                let types = NARROW_TYPES[*k as usize];
                let sig = Signature::new(X86Target::SYSV64, &types[..2], &types[2..]);
                // The whole register (lowering reads its low part) or a view.
                let arg = |r: Gp64, t: ValType, whole: bool| -> crate::x86::Operand {
                    match (whole, t.size()) {
                        (true, _) => r.into(),
                        (false, 1) => r.r8().into(),
                        (false, _) => r.r16().into(),
                    }
                };
                cc.invoke(
                    crate::x86::Operand::Imm(
                        host_narrow as extern "C" fn(u32, u32) -> u64 as usize as i64,
                    ),
                    sig,
                    &[
                        arg(v[*a], types[0], whole & 1 != 0),
                        arg(v[*b], types[1], whole & 2 != 0),
                    ],
                    &[v[*d].into()],
                )?;
            }
            Stmt::Load(d, i) => {
                let t = cc.new_gp64("index");
                cc.mov(t, v[*i])?;
                cc.and_(t, 15)?;
                cc.mov(v[*d], qword_ptr(buffer + t * 8))?;
            }
            Stmt::Store(i, s) => {
                let t = cc.new_gp64("index");
                cc.mov(t, v[*i])?;
                cc.and_(t, 15)?;
                cc.mov(qword_ptr(buffer + t * 8), v[*s])?;
            }
            Stmt::WideMul(hi, lo, a, b) => {
                let (h, l) = (cc.new_gp64("hi"), cc.new_gp64("lo"));
                cc.mov(l, v[*a])?;
                cc.mul(h, l, v[*b])?;
                cc.mov(v[*lo], l)?;
                cc.mov(v[*hi], h)?;
            }
            Stmt::DivMod(q, r, a, b) => {
                let (h, l, d) = (cc.new_gp64("hi"), cc.new_gp64("lo"), cc.new_gp64("divisor"));
                cc.mov(d, v[*b])?;
                cc.or_(d, 1)?;
                cc.mov(l, v[*a])?;
                cc.xor_(h, h)?;
                cc.div(h, l, d)?;
                cc.mov(v[*q], l)?;
                cc.mov(v[*r], h)?;
            }
            Stmt::ShiftCl(d, c) => cc.shl(v[*d], v[*c].r8())?,
            Stmt::RepStore(i, s, n) => {
                let (dst, count, value) = (
                    cc.new_gp64("dst"),
                    cc.new_gp64("count"),
                    cc.new_gp64("value"),
                );
                cc.mov(dst, v[*i])?;
                cc.and_(dst, 7)?;
                cc.lea(dst, ptr(buffer + dst * 8))?;
                cc.mov(count, v[*n])?;
                cc.and_(count, 7)?;
                cc.mov(value, v[*s])?;
                cc.rep(count).stosq(dst, value)?;
            }
            Stmt::VecOp(op, d, src) => {
                let (d, s) = (x[*d], x[*src]);
                match op {
                    0 => cc.paddq(d, s)?,
                    1 => cc.psubq(d, s)?,
                    2 => cc.pxor(d, s)?,
                    3 => cc.pand(d, s)?,
                    4 => cc.por(d, s)?,
                    _ => cc.punpcklqdq(d, s)?,
                }
            }
            Stmt::ToVec(d, g) => cc.movq(x[*d], v[*g])?,
            Stmt::FromVec(g, d) => cc.movq(v[*g], x[*d])?,
            Stmt::Op(op, d, src) => {
                let (d, s) = (v[*d], v[*src]);
                match op {
                    0 => cc.add(d, s)?,
                    1 => cc.sub(d, s)?,
                    2 => cc.xor_(d, s)?,
                    3 => cc.imul_2(d, s)?,
                    4 => cc.and_(d, s)?,
                    _ => cc.or_(d, s)?,
                }
            }
            Stmt::Shift(left, d, n) => {
                if *left {
                    cc.shl(v[*d], *n as i32)?
                } else {
                    cc.shr(v[*d], *n as i32)?
                }
            }
            Stmt::If(cond, a, b) => {
                let else_ = cc.new_label();
                let end = cc.new_label();
                cc.test(v[*cond], 1)?;
                cc.je(else_)?;
                compile(cc, a, v, x, buffer)?;
                cc.jmp(end)?;
                cc.bind(else_)?;
                compile(cc, b, v, x, buffer)?;
                cc.bind(end)?;
            }
            Stmt::Loop(count, body) => {
                let counter = cc.new_gp64("counter");
                cc.mov(counter, *count as i32)?;
                let top = cc.new_label();
                cc.bind(top)?;
                compile(cc, body, v, x, buffer)?;
                cc.dec(counter)?;
                cc.jne(top)?;
            }
        }
    }
    Ok(())
}

/// A System V function `probe(args, buffer, target, out) -> u64` that loads
/// known values into every callee-saved register (rbx, rbp, r12..r15),
/// calls `target(args, buffer)`, stores its result in `*out`, and returns 1
/// if all of those registers still hold their values (0 otherwise).
fn callee_saved_probe(runtime: &JitRuntime) -> crate::Result<crate::jit::JitCode> {
    use crate::x86::*;
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let saved = [rbx, rbp, r12, r13, r14, r15];
    for r in saved {
        a.push(r)?;
    }
    a.push(rcx)?; // out pointer; keeps the stack 16-byte aligned at the call
    for (i, r) in saved.iter().enumerate() {
        a.mov(*r, 0x5a5a_0000_0000_1111i64.wrapping_mul(i as i64 + 1))?;
    }
    a.call(rdx)?;
    a.pop(rcx)?;
    a.mov(qword_ptr(rcx), rax)?;
    a.mov(eax, 1)?;
    a.xor_(ecx, ecx)?;
    for (i, r) in saved.iter().enumerate() {
        a.mov(rdx, 0x5a5a_0000_0000_1111i64.wrapping_mul(i as i64 + 1))?;
        a.cmp(*r, rdx)?;
        a.cmovne(eax, ecx)?;
    }
    for r in saved.iter().rev() {
        a.pop(*r)?;
    }
    a.ret()?;
    runtime.add(&code)
}

/// Generates a program from `data`, compiles and runs it, interprets it,
/// and returns the allocation statistics, or an error describing any
/// disagreement (or compile failure).
pub fn check_program(data: &[u8]) -> Result<jitforge_regalloc::Stats, String> {
    let mut c = Choices { data, at: 0 };
    // Frame options: a frame pointer, and xmm16..31 where the host has AVX-512;
    // the shape: a quarter of the programs are straight code with few values
    // (a register for each: the allocator's roomy local path), a quarter
    // straight code with many (its local path under pressure), the others
    // any code with 1 to 48 values.
    let options = c.byte();
    let (values, vectors, len) = match (options >> 2) & 3 {
        0 => (1 + c.below(4), c.below(6), 1 + c.below(6)),
        1 => (16 + c.below(33), c.below(24), 16 + c.below(49)),
        _ => (1 + c.below(48), c.below(24), 1 + c.below(64)),
    };
    let program = gen_block(&mut c, values, vectors, 0, len, (options >> 2) & 3 < 2);
    let frame_pointer = options & 1 != 0;
    let avx512 = options & 2 != 0
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl");
    // General-purpose inputs, then two lanes per vector.
    let inputs: Vec<u64> = (0..(values + 2 * vectors) as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555)
        .collect();

    let runtime = JitRuntime::new().map_err(|e| e.to_string())?;
    let mut code = CodeHolder::new(Arch::X64);
    let stats;
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(true);
        cc.set_avx512(avx512);
        let build = |cc: &mut Compiler<'_>| -> crate::Result<()> {
            cc.add_func(
                "program",
                Signature::new(X86Target::SYSV64, &[ValType::I64; 2], &[ValType::I64]),
            )?;
            let p = cc.new_gp64("p");
            cc.set_arg(0, p)?;
            let buffer = cc.new_gp64("buffer");
            cc.set_arg(1, buffer)?;
            cc.set_frame_pointer(frame_pointer)?;
            let v: Vec<Gp64> = (0..values).map(|i| cc.new_gp64(&format!("v{i}"))).collect();
            for (i, r) in v.iter().enumerate() {
                cc.mov(*r, qword_ptr(p + 8 * i as i32))?;
            }
            let x: Vec<Xmm> = (0..vectors).map(|i| cc.new_xmm(&format!("x{i}"))).collect();
            for (i, r) in x.iter().enumerate() {
                cc.movdqu(*r, xmmword_ptr(p + (8 * values + 16 * i) as i32))?;
            }
            compile(cc, &program, &v, &x, buffer)?;
            let sum = cc.new_gp64("sum");
            cc.mov(sum, v[0])?;
            for (i, r) in v.iter().enumerate().skip(1) {
                if i % 2 == 0 {
                    cc.add(sum, *r)?;
                } else {
                    cc.xor_(sum, *r)?;
                }
            }
            // Both lanes of every vector join the result.
            let lane = cc.new_gp64("lane");
            for r in &x {
                cc.movq(lane, *r)?;
                cc.add(sum, lane)?;
                cc.punpckhqdq(*r, *r)?;
                cc.movq(lane, *r)?;
                cc.xor_(sum, lane)?;
            }
            cc.ret(&[sum.into()])?;
            cc.end_func()?;
            cc.finalize()
        };
        build(&mut cc).map_err(|e| format!("compile error: {e}\nprogram: {program:?}"))?;
        stats = cc.last_stats();
    }
    let function = runtime.add(&code).map_err(|e| e.to_string())?;
    let trampoline = callee_saved_probe(&runtime).map_err(|e| e.to_string())?;
    // SAFETY: the probe is a System V function (args, buffer, target, out)
    // -> flag that calls `target(args, buffer)`; the compiled function is a
    // System V function taking a pointer to `values + 2 * vectors` u64,
    // which `inputs` provides, and a pointer to 16 u64, the buffer.
    let probe: extern "C" fn(*const u64, *mut u64, u64, *mut u64) -> u64 =
        unsafe { trampoline.function() };
    let initial: [u64; 16] =
        core::array::from_fn(|i| (i as u64).wrapping_mul(0x0123_4567_89AB_CDEF));
    let mut buffer = initial;
    let mut got = 0u64;
    TRACE.with(|t| t.borrow_mut().clear());
    let preserved = probe(
        inputs.as_ptr(),
        buffer.as_mut_ptr(),
        function.address(),
        &mut got,
    );
    let trace = TRACE.with(|t| std::mem::take(&mut *t.borrow_mut()));
    if preserved != 1 {
        return Err(format!(
            "the compiled function did not preserve the callee-saved registers\nprogram: {program:?}"
        ));
    }
    let mut v = inputs[..values].to_vec();
    let mut x: Vec<[u64; 2]> = (0..vectors)
        .map(|i| [inputs[values + 2 * i], inputs[values + 2 * i + 1]])
        .collect();
    let mut world = World {
        buffer: initial,
        trace: Vec::new(),
    };
    interpret(&program, &mut v, &mut x, &mut world);
    let mut want = v.iter().enumerate().skip(1).fold(v[0], |a, (i, x)| {
        if i % 2 == 0 {
            a.wrapping_add(*x)
        } else {
            a ^ x
        }
    });
    for lanes in &x {
        want = want.wrapping_add(lanes[0]) ^ lanes[1];
    }
    if got != want {
        return Err(format!(
            "compiled {got:#x}, interpreted {want:#x} (frame pointer {frame_pointer}, avx512 {avx512})\nprogram: {program:?}"
        ));
    }
    if buffer != world.buffer {
        return Err(format!(
            "buffer {buffer:x?}, interpreted {:x?}\nprogram: {program:?}",
            world.buffer
        ));
    }
    if trace != world.trace {
        return Err(format!(
            "host calls {trace:x?}, interpreted {:x?}\nprogram: {program:?}",
            world.trace
        ));
    }
    Ok(stats)
}
