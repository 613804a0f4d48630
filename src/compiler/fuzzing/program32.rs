//! The differential check of the 32-bit Compiler (`CodeHolder::new(Arch::X86)`):
//! a byte string becomes a random program on 32-bit values (straight code,
//! diamonds, counted loops, 1 to 24 values for seven registers, shifts by
//! an immediate and by cl, multiplies, widening `mul` and `div` on
//! edx:eax and their byte forms on ax, loads and stores of dwords in a
//! buffer, `rep stosd`, calls of JIT functions in cdecl, stdcall and
//! fastcall, some returning an `i64` in edx:eax, some taking two `i64`
//! arguments as two values each (on the stack, around an `i32` that
//! fastcall passes in ecx); 0 to 11 vectors for eight xmm registers, with
//! dword-lane operations and `movd` to and from the values), in a cdecl,
//! stdcall or fastcall function that returns an `i64` itself and may take
//! an `i64` seed between its two pointer arguments. It is compiled, run natively in compatibility mode
//! ([`super::compat32`]) and interpreted in Rust: the result, the buffer
//! and the trace of calls the callees record in memory must agree. The
//! cargo-fuzz target `compile_run32` and the test suite both call
//! [`check_program32`].

use super::Choices;
use super::compat32::{Compat32, Conv};
use crate::code::{Arch, CodeHolder};
use crate::compiler::{Compiler, Signature, ValType, X86Target};
use crate::x86::{Gp32, Instructions, Xmm, dword_ptr, ptr, xmmword_ptr};
use jitforge_ir::CallConvId;

/// The conventions of the callees and of the program.
const CONVS: [CallConvId; 3] = [X86Target::CDECL, X86Target::STDCALL, X86Target::FASTCALL];

/// Where things are in the harness's data area (byte offsets).
const INPUTS: u32 = 0;
const BUFFER: u32 = 512;
const TRACE: u32 = 768;
/// The trace is a ring of this many entries (after its count).
const TRACE_RING: u32 = 256;

/// One statement of a generated program.
#[derive(Clone, Debug)]
enum Stmt {
    /// `v[d] = v[d] op v[s]`: add, sub, xor, imul, and, or.
    Op(u8, usize, usize),
    /// `v[d] <<= n` or `v[d] >>= n`.
    Shift(bool, usize, u8),
    /// `v[d] = host k(v[a], v[b])`, host k in convention `CONVS[k]`.
    Call(u8, usize, usize, usize),
    /// `v[lo], v[hi] = wide k(v[a], v[b])`, an `i64` in edx:eax from
    /// convention `CONVS[k]` (the high half wins when `lo == hi`).
    WideCall(u8, usize, usize, usize, usize),
    /// `v[lo], v[hi] = long k(v[xh]:v[xl], v[a], v[xl]:v[y])`: two `i64`
    /// arguments (each two values, low then high) around an `i32`, an
    /// `i64` result, convention `CONVS[k]`.
    LongCall(u8, usize, usize, usize, usize, usize, usize),
    /// `v[d] = buffer[v[i] % 16]`.
    Load(usize, usize),
    /// `buffer[v[i] % 16] = v[s]`.
    Store(usize, usize),
    /// `v[hi]:v[lo] = v[a] * v[b]` (unsigned, 64-bit; `mul` on edx:eax).
    WideMul(usize, usize, usize, usize),
    /// `v[q], v[r] = v[a] / (v[b] | 1), v[a] % (v[b] | 1)` (`div` on edx:eax).
    DivMod(usize, usize, usize, usize),
    /// `v[d] <<= v[c] % 32` (`shl` by cl).
    ShiftCl(usize, usize),
    /// `buffer[v[i] % 8 ..][.. v[n] % 8] = v[s]` (`rep stosd`: ecx, edi, eax).
    RepStore(usize, usize, usize),
    /// `v[d]` = `v[a]` with ax replaced by a byte `mul`, `imul`, `div`
    /// or `idiv` (kind 0..3) of its low byte (al, extended to ax for the
    /// divisions) and `v[b]`'s (`| 1`, and `& 0x7f` for `idiv`: no
    /// divide error); `div`/`idiv` leave the quotient in al and the
    /// remainder in ah.
    ByteOp(u8, usize, usize, usize),
    /// `x[d] = x[d] op x[s]` on four dword lanes: paddd, psubd, pxor,
    /// pand, por, punpckldq.
    VecOp(u8, usize, usize),
    /// `x[d] = [v[g], 0, 0, 0]` (`movd`).
    ToVec(usize, usize),
    /// `v[g] = x[d]`'s lane 0 (`movd`).
    FromVec(usize, usize),
    If(usize, Vec<Stmt>, Vec<Stmt>),
    Loop(u8, Vec<Stmt>),
}

fn gen_block(
    c: &mut Choices<'_>,
    values: usize,
    vectors: usize,
    depth: u32,
    len: usize,
) -> Vec<Stmt> {
    let mut out = Vec::new();
    for _ in 0..len {
        if c.done() {
            break;
        }
        let stmt = match c.below(17) {
            0 if depth < 3 => {
                let cond = c.below(values);
                let n1 = 1 + c.below(6);
                let a = gen_block(c, values, vectors, depth + 1, n1);
                let n2 = c.below(6);
                let b = gen_block(c, values, vectors, depth + 1, n2);
                Stmt::If(cond, a, b)
            }
            1 if depth < 2 => {
                let count = 1 + c.below(4) as u8;
                let n = 1 + c.below(8);
                Stmt::Loop(count, gen_block(c, values, vectors, depth + 1, n))
            }
            2 => Stmt::Shift(c.byte() & 1 == 0, c.below(values), c.byte() % 32),
            3 => Stmt::Call(
                c.below(3) as u8,
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            4 => Stmt::WideCall(
                c.below(3) as u8,
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            14 => Stmt::LongCall(
                c.below(3) as u8,
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            5 => Stmt::Load(c.below(values), c.below(values)),
            6 => Stmt::Store(c.below(values), c.below(values)),
            7 => Stmt::WideMul(
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            8 => Stmt::DivMod(
                c.below(values),
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            9 => Stmt::ShiftCl(c.below(values), c.below(values)),
            10 => Stmt::RepStore(c.below(values), c.below(values), c.below(values)),
            11 => Stmt::ByteOp(
                c.byte() % 4,
                c.below(values),
                c.below(values),
                c.below(values),
            ),
            12 if vectors > 0 => Stmt::VecOp(c.byte() % 6, c.below(vectors), c.below(vectors)),
            13 if vectors > 0 => match c.byte() & 1 {
                0 => Stmt::ToVec(c.below(vectors), c.below(values)),
                _ => Stmt::FromVec(c.below(values), c.below(vectors)),
            },
            _ => Stmt::Op(c.byte() % 6, c.below(values), c.below(values)),
        };
        out.push(stmt);
    }
    out
}

/// What host `k` returns.
fn host_result(k: u8, a: u32, b: u32) -> u32 {
    match k {
        0 => a.wrapping_mul(0x9E37_79B9) ^ b,
        1 => a.rotate_left(b % 32).wrapping_add(7),
        _ => (a ^ 0x5555).wrapping_sub(b),
    }
}

/// What the wide callees return (the same in every convention).
fn wide_result(a: u32, b: u32) -> u64 {
    (u64::from(a) * u64::from(b | 1)).wrapping_add(u64::from(b))
}

/// What the long callees return (the same in every convention):
/// `(x + y) ^ (rol(a, 16):a)`.
fn long_result(x: u64, a: u32, y: u64) -> u64 {
    x.wrapping_add(y) ^ (u64::from(a.rotate_left(16)) << 32 | u64::from(a))
}

/// What [`Stmt::ByteOp`] of `kind` makes of `a` and `b`.
fn byte_op(kind: u8, a: u32, b: u32) -> u32 {
    let ax = |upper: u32, ax: u16| upper & 0xFFFF_0000 | u32::from(ax);
    match kind {
        0 => ax(a, u16::from(a as u8) * u16::from(b as u8)),
        1 => ax(
            a,
            (i16::from(a as u8 as i8) * i16::from(b as u8 as i8)) as u16,
        ),
        2 => {
            let (n, d) = (u16::from(a as u8), u16::from((b | 1) as u8));
            ax(0, ((n % d) << 8) | (n / d))
        }
        _ => {
            let (n, d) = (a as u8 as i8, ((b | 1) & 0x7F) as i8);
            let (q, r) = (n / d, n % d);
            // movsx: bits 16..31 are the sign of the byte.
            ax(
                i32::from(n) as u32,
                u16::from(r as u8) << 8 | u16::from(q as u8),
            )
        }
    }
}

/// What a program touches besides its values: the buffer and the calls.
struct World {
    buffer: [u32; 16],
    /// (callee, a, b): host k is k, wide k is 3 + k; long k is 6 + k
    /// with (a, low half of x ^ high half of y).
    trace: Vec<[u32; 3]>,
}

fn interpret(stmts: &[Stmt], v: &mut [u32], x: &mut [[u32; 4]], w: &mut World) {
    for s in stmts {
        match *s {
            Stmt::Op(op, d, src) => {
                let x = v[src];
                v[d] = match op {
                    0 => v[d].wrapping_add(x),
                    1 => v[d].wrapping_sub(x),
                    2 => v[d] ^ x,
                    3 => v[d].wrapping_mul(x),
                    4 => v[d] & x,
                    _ => v[d] | x,
                };
            }
            Stmt::Shift(left, d, n) => v[d] = if left { v[d] << n } else { v[d] >> n },
            Stmt::Call(k, d, a, b) => {
                w.trace.push([u32::from(k), v[a], v[b]]);
                v[d] = host_result(k, v[a], v[b]);
            }
            Stmt::WideCall(k, lo, hi, a, b) => {
                w.trace.push([3 + u32::from(k), v[a], v[b]]);
                let r = wide_result(v[a], v[b]);
                v[lo] = r as u32;
                v[hi] = (r >> 32) as u32;
            }
            Stmt::LongCall(k, lo, hi, xl, xh, a, y) => {
                let x = u64::from(v[xh]) << 32 | u64::from(v[xl]);
                let y = u64::from(v[xl]) << 32 | u64::from(v[y]);
                w.trace
                    .push([6 + u32::from(k), v[a], x as u32 ^ (y >> 32) as u32]);
                let r = long_result(x, v[a], y);
                v[lo] = r as u32;
                v[hi] = (r >> 32) as u32;
            }
            Stmt::Load(d, i) => v[d] = w.buffer[(v[i] % 16) as usize],
            Stmt::Store(i, s) => w.buffer[(v[i] % 16) as usize] = v[s],
            Stmt::WideMul(hi, lo, a, b) => {
                let p = u64::from(v[a]) * u64::from(v[b]);
                v[lo] = p as u32;
                v[hi] = (p >> 32) as u32;
            }
            Stmt::DivMod(q, r, a, b) => {
                let (n, d) = (v[a], v[b] | 1);
                v[q] = n / d;
                v[r] = n % d;
            }
            Stmt::ShiftCl(d, c) => v[d] <<= v[c] % 32,
            Stmt::RepStore(i, s, n) => {
                let start = (v[i] % 8) as usize;
                let count = (v[n] % 8) as usize;
                w.buffer[start..start + count].fill(v[s]);
            }
            Stmt::ByteOp(kind, d, a, b) => v[d] = byte_op(kind, v[a], v[b]),
            Stmt::VecOp(op, d, src) => {
                let (a, b) = (x[d], x[src]);
                x[d] = match op {
                    0 => core::array::from_fn(|i| a[i].wrapping_add(b[i])),
                    1 => core::array::from_fn(|i| a[i].wrapping_sub(b[i])),
                    2 => core::array::from_fn(|i| a[i] ^ b[i]),
                    3 => core::array::from_fn(|i| a[i] & b[i]),
                    4 => core::array::from_fn(|i| a[i] | b[i]),
                    _ => [a[0], b[0], a[1], b[1]],
                };
            }
            Stmt::ToVec(d, g) => x[d] = [v[g], 0, 0, 0],
            Stmt::FromVec(g, d) => v[g] = x[d][0],
            Stmt::If(cond, ref a, ref b) => {
                if v[cond] & 1 != 0 {
                    interpret(a, v, x, w)
                } else {
                    interpret(b, v, x, w)
                }
            }
            Stmt::Loop(count, ref body) => {
                for _ in 0..count {
                    interpret(body, v, x, w);
                }
            }
        }
    }
}

/// The callees' signatures: `(i32, i32) -> i32` for host k, `-> i64` for wide k.
fn callee_signature(k: u8, wide: bool) -> Signature {
    let ret = if wide { ValType::I64 } else { ValType::I32 };
    Signature::new(CONVS[k as usize], &[ValType::I32; 2], &[ret])
}

fn callee_name(k: u8, wide: bool) -> String {
    format!("{}{k}", if wide { "wide" } else { "host" })
}

/// Records the call `(id, a, b)` in the trace ring at `trace` (a count,
/// then the entries of three dwords).
fn record_call(cc: &mut Compiler<'_>, trace: u32, id: u8, a: Gp32, b: Gp32) -> crate::Result<()> {
    let (base, n, next) = (cc.new_gp32("trace"), cc.new_gp32("n"), cc.new_gp32("next"));
    cc.mov(base, i64::from(trace))?;
    cc.mov(n, dword_ptr(base))?;
    cc.lea(next, ptr(n + 1))?;
    cc.mov(dword_ptr(base), next)?;
    cc.and_(n, (TRACE_RING - 1) as i32)?;
    cc.lea(n, ptr(n + n * 2))?;
    cc.mov(dword_ptr(base + n * 4 + 4), i32::from(id))?;
    cc.mov(dword_ptr(base + n * 4 + 8), a)?;
    cc.mov(dword_ptr(base + n * 4 + 12), b)?;
    Ok(())
}

/// Host k (or wide k) in the Compiler: records `(id, a, b)` in the trace
/// ring at `trace` (a count, then the entries), then returns its result.
fn build_callee(cc: &mut Compiler<'_>, k: u8, wide: bool, trace: u32) -> crate::Result<()> {
    cc.add_func(&callee_name(k, wide), callee_signature(k, wide))?;
    let (a, b) = (cc.new_gp32("a"), cc.new_gp32("b"));
    cc.set_arg(0, a)?;
    cc.set_arg(1, b)?;
    record_call(cc, trace, if wide { 3 + k } else { k }, a, b)?;
    let r = cc.new_gp32("r");
    if wide {
        let (hi, odd) = (cc.new_gp32("hi"), cc.new_gp32("odd"));
        cc.mov(odd, b)?;
        cc.or_(odd, 1)?;
        cc.mov(r, a)?;
        cc.mul(hi, r, odd)?;
        cc.add(r, b)?;
        cc.adc(hi, 0)?;
        cc.ret(&[r.into(), hi.into()])?;
        return cc.end_func();
    }
    match k {
        0 => {
            cc.imul_3(r, a, 0x9E37_79B9u32 as i32)?;
            cc.xor_(r, b)?;
        }
        1 => {
            cc.mov(r, a)?;
            cc.rol(r, b.r8())?;
            cc.add(r, 7)?;
        }
        _ => {
            cc.mov(r, a)?;
            cc.xor_(r, 0x5555)?;
            cc.sub(r, b)?;
        }
    }
    cc.ret(&[r.into()])?;
    cc.end_func()
}

/// The long callees' signature: `(i64 x, i32 a, i64 y) -> i64`.
fn long_signature(k: u8) -> Signature {
    Signature::new(
        CONVS[k as usize],
        &[ValType::I64, ValType::I32, ValType::I64],
        &[ValType::I64],
    )
}

/// Long k in the Compiler: records `(6 + k, a, x_lo ^ y_hi)` in the trace
/// ring, then returns [`long_result`]; its `i64` arguments are bound to
/// their halves with `set_arg_pair`.
fn build_long_callee(cc: &mut Compiler<'_>, k: u8, trace: u32) -> crate::Result<()> {
    cc.add_func(&format!("long{k}"), long_signature(k))?;
    let (x_lo, x_hi, a) = (cc.new_gp32("x_lo"), cc.new_gp32("x_hi"), cc.new_gp32("a"));
    let (y_lo, y_hi) = (cc.new_gp32("y_lo"), cc.new_gp32("y_hi"));
    cc.set_arg_pair(0, x_lo, x_hi)?;
    cc.set_arg(1, a)?;
    cc.set_arg_pair(2, y_lo, y_hi)?;
    let mix = cc.new_gp32("mix");
    cc.mov(mix, x_lo)?;
    cc.xor_(mix, y_hi)?;
    record_call(cc, trace, 6 + k, a, mix)?;
    cc.add(x_lo, y_lo)?;
    cc.adc(x_hi, y_hi)?;
    cc.xor_(x_lo, a)?;
    cc.rol(a, 16)?;
    cc.xor_(x_hi, a)?;
    cc.ret(&[x_lo.into(), x_hi.into()])?;
    cc.end_func()
}

fn compile(
    cc: &mut Compiler<'_>,
    stmts: &[Stmt],
    v: &[Gp32],
    x: &[Xmm],
    buffer: Gp32,
) -> crate::Result<()> {
    for s in stmts {
        match *s {
            Stmt::Op(op, d, src) => {
                let (d, s) = (v[d], v[src]);
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
                if left {
                    cc.shl(v[d], i32::from(n))?
                } else {
                    cc.shr(v[d], i32::from(n))?
                }
            }
            Stmt::Call(k, d, a, b) => {
                let callee = cc.function_label(&callee_name(k, false));
                cc.invoke(
                    callee.into(),
                    callee_signature(k, false),
                    &[v[a].into(), v[b].into()],
                    &[v[d].into()],
                )?;
            }
            Stmt::WideCall(k, lo, hi, a, b) => {
                let callee = cc.function_label(&callee_name(k, true));
                cc.invoke(
                    callee.into(),
                    callee_signature(k, true),
                    &[v[a].into(), v[b].into()],
                    &[v[lo].into(), v[hi].into()],
                )?;
            }
            Stmt::LongCall(k, lo, hi, xl, xh, a, y) => {
                let callee = cc.function_label(&format!("long{k}"));
                cc.invoke(
                    callee.into(),
                    long_signature(k),
                    &[
                        v[xl].into(),
                        v[xh].into(),
                        v[a].into(),
                        v[y].into(),
                        v[xl].into(),
                    ],
                    &[v[lo].into(), v[hi].into()],
                )?;
            }
            Stmt::Load(d, i) => {
                let t = cc.new_gp32("index");
                cc.mov(t, v[i])?;
                cc.and_(t, 15)?;
                cc.mov(v[d], dword_ptr(buffer + t * 4))?;
            }
            Stmt::Store(i, s) => {
                let t = cc.new_gp32("index");
                cc.mov(t, v[i])?;
                cc.and_(t, 15)?;
                cc.mov(dword_ptr(buffer + t * 4), v[s])?;
            }
            Stmt::WideMul(hi, lo, a, b) => {
                let (h, l) = (cc.new_gp32("hi"), cc.new_gp32("lo"));
                cc.mov(l, v[a])?;
                cc.mul(h, l, v[b])?;
                cc.mov(v[lo], l)?;
                cc.mov(v[hi], h)?;
            }
            Stmt::DivMod(q, r, a, b) => {
                let (h, l, d) = (cc.new_gp32("hi"), cc.new_gp32("lo"), cc.new_gp32("divisor"));
                cc.mov(d, v[b])?;
                cc.or_(d, 1)?;
                cc.mov(l, v[a])?;
                cc.xor_(h, h)?;
                cc.div(h, l, d)?;
                cc.mov(v[q], l)?;
                cc.mov(v[r], h)?;
            }
            Stmt::ShiftCl(d, c) => cc.shl(v[d], v[c].r8())?,
            Stmt::RepStore(i, s, n) => {
                let (dst, count, value) = (
                    cc.new_gp32("dst"),
                    cc.new_gp32("count"),
                    cc.new_gp32("value"),
                );
                cc.mov(dst, v[i])?;
                cc.and_(dst, 7)?;
                cc.lea(dst, ptr(buffer + dst * 4))?;
                cc.mov(count, v[n])?;
                cc.and_(count, 7)?;
                cc.mov(value, v[s])?;
                cc.rep(count).stosd(dst, value)?;
            }
            Stmt::ByteOp(kind, d, a, b) => {
                let (t, src) = (cc.new_gp32("ax"), cc.new_gp32("byte"));
                cc.mov(src, v[b])?;
                match kind {
                    0 | 1 => cc.mov(t, v[a])?,
                    2 => cc.movzx(t, v[a].r8())?,
                    _ => cc.movsx(t, v[a].r8())?,
                }
                if kind >= 2 {
                    cc.or_(src, 1)?;
                }
                if kind == 3 {
                    cc.and_(src, 0x7F)?;
                }
                match kind {
                    0 => cc.mul8(t.r16(), src.r8())?,
                    1 => cc.imul8(t.r16(), src.r8())?,
                    2 => cc.div8(t.r16(), src.r8())?,
                    _ => cc.idiv8(t.r16(), src.r8())?,
                }
                cc.mov(v[d], t)?;
            }
            Stmt::VecOp(op, d, src) => {
                let (d, s) = (x[d], x[src]);
                match op {
                    0 => cc.paddd(d, s)?,
                    1 => cc.psubd(d, s)?,
                    2 => cc.pxor(d, s)?,
                    3 => cc.pand(d, s)?,
                    4 => cc.por(d, s)?,
                    _ => cc.punpckldq(d, s)?,
                }
            }
            Stmt::ToVec(d, g) => cc.movd(x[d], v[g])?,
            Stmt::FromVec(g, d) => cc.movd(v[g], x[d])?,
            Stmt::If(cond, ref a, ref b) => {
                let else_ = cc.new_label();
                let end = cc.new_label();
                cc.test(v[cond], 1)?;
                cc.je(else_)?;
                compile(cc, a, v, x, buffer)?;
                cc.jmp(end)?;
                cc.bind(else_)?;
                compile(cc, b, v, x, buffer)?;
                cc.bind(end)?;
            }
            Stmt::Loop(count, ref body) => {
                let counter = cc.new_gp32("counter");
                cc.mov(counter, i32::from(count))?;
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

/// The program's `i64` result from its values: the low half adds and
/// xors them in turn, the high half rotates and xors; then every lane of
/// every vector is added to the low half and rotated into the high half.
fn fold_result(v: &[u32], x: &[[u32; 4]]) -> u64 {
    let mut lo = v.iter().enumerate().skip(1).fold(v[0], |a, (i, x)| {
        if i % 2 == 0 {
            a.wrapping_add(*x)
        } else {
            a ^ x
        }
    });
    let mut hi = v.iter().fold(0x1234_5678u32, |h, x| h.rotate_left(5) ^ x);
    for lane in x.iter().flatten() {
        lo = lo.wrapping_add(*lane);
        hi = hi.rotate_left(3) ^ lane;
    }
    u64::from(hi) << 32 | u64::from(lo)
}

/// Generates a 32-bit program from `data`, compiles it with the callees
/// it calls, runs it in compatibility mode and interprets it; returns the
/// allocation statistics of the program, or an error describing any
/// disagreement (or compile failure).
pub fn check_program32(data: &[u8]) -> Result<jitforge_regalloc::Stats, String> {
    let mut c = Choices { data, at: 0 };
    // The program's convention, and whether it keeps a frame pointer.
    let options = c.byte();
    let values = 1 + c.below(24);
    let vectors = c.below(12);
    let len = 1 + c.below(64);
    let program = gen_block(&mut c, values, vectors, 0, len);
    let conv = CONVS[(options % 3) as usize];
    let frame_pointer = options & 4 != 0;
    // An i64 seed argument between the two pointers (on the stack in
    // every convention; fastcall's pointers in ecx and edx).
    let seeded = options & 8 != 0;
    let seed: u64 = 0xC0FF_EE00_8BAD_F00D ^ u64::from(options);
    // The general-purpose values, then four lanes per vector.
    let inputs: Vec<u32> = (0..(values + 4 * vectors) as u32)
        .map(|i| i.wrapping_mul(0x9E37_79B9) ^ 0x5555)
        .collect();

    let mut m = Compat32::new().map_err(|e| e.to_string())?;
    let data_address = m.data_address();
    let mut code = CodeHolder::new(Arch::X86);
    let stats;
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_checked(true);
        let build = |cc: &mut Compiler<'_>| -> crate::Result<()> {
            let params: &[ValType] = if seeded {
                &[ValType::I32, ValType::I64, ValType::I32]
            } else {
                &[ValType::I32; 2]
            };
            cc.add_func("program", Signature::new(conv, params, &[ValType::I64]))?;
            let (p, buffer) = (cc.new_gp32("p"), cc.new_gp32("buffer"));
            let (seed_lo, seed_hi) = (cc.new_gp32("seed_lo"), cc.new_gp32("seed_hi"));
            cc.set_arg(0, p)?;
            if seeded {
                cc.set_arg_pair(1, seed_lo, seed_hi)?;
                cc.set_arg(2, buffer)?;
            } else {
                cc.set_arg(1, buffer)?;
            }
            cc.set_frame_pointer(frame_pointer)?;
            let v: Vec<Gp32> = (0..values).map(|i| cc.new_gp32(&format!("v{i}"))).collect();
            for (i, r) in v.iter().enumerate() {
                cc.mov(*r, dword_ptr(p + 4 * i as i32))?;
            }
            if seeded {
                cc.xor_(v[0], seed_lo)?;
                cc.add(v[values - 1], seed_hi)?;
            }
            let x: Vec<Xmm> = (0..vectors).map(|i| cc.new_xmm(&format!("x{i}"))).collect();
            for (i, r) in x.iter().enumerate() {
                cc.movdqu(*r, xmmword_ptr(p + (4 * values + 16 * i) as i32))?;
            }
            compile(cc, &program, &v, &x, buffer)?;
            let (lo, hi) = (cc.new_gp32("lo"), cc.new_gp32("hi"));
            cc.mov(lo, v[0])?;
            for (i, r) in v.iter().enumerate().skip(1) {
                if i % 2 == 0 {
                    cc.add(lo, *r)?;
                } else {
                    cc.xor_(lo, *r)?;
                }
            }
            cc.mov(hi, 0x1234_5678)?;
            for r in &v {
                cc.rol(hi, 5)?;
                cc.xor_(hi, *r)?;
            }
            let lane = cc.new_gp32("lane");
            for r in &x {
                for _ in 0..4 {
                    cc.movd(lane, *r)?;
                    cc.add(lo, lane)?;
                    cc.rol(hi, 3)?;
                    cc.xor_(hi, lane)?;
                    // The next lane down to lane 0.
                    cc.pshufd(*r, *r, 0x39)?;
                }
            }
            cc.ret(&[lo.into(), hi.into()])?;
            cc.end_func()
        };
        build(&mut cc).map_err(|e| format!("compile error: {e}\nprogram: {program:?}"))?;
        stats = cc.last_stats();
        let callees = |cc: &mut Compiler<'_>| -> crate::Result<()> {
            for k in 0..3 {
                for wide in [false, true] {
                    build_callee(cc, k, wide, data_address + TRACE)?;
                }
                build_long_callee(cc, k, data_address + TRACE)?;
            }
            cc.finalize()
        };
        callees(&mut cc).map_err(|e| format!("compile error in a callee: {e}"))?;
    }
    m.load(&code).map_err(|e| e.to_string())?;
    let entry = {
        let label = code.label_by_name("program").ok_or("no program label")?;
        let (_, offset) = code.label_offset(label).ok_or("program not bound")?;
        m.code_address() + offset
    };
    let initial: [u32; 16] = core::array::from_fn(|i| (i as u32).wrapping_mul(0x0123_4567));
    let memory = m.data();
    for (i, x) in inputs.iter().enumerate() {
        let at = INPUTS as usize + 4 * i;
        memory[at..at + 4].copy_from_slice(&x.to_le_bytes());
    }
    for (i, x) in initial.iter().enumerate() {
        let at = BUFFER as usize + 4 * i;
        memory[at..at + 4].copy_from_slice(&x.to_le_bytes());
    }
    memory[TRACE as usize..TRACE as usize + 4].fill(0);
    let harness_conv = if conv == X86Target::FASTCALL {
        Conv::Fastcall
    } else {
        Conv::Stack
    };
    let (p, buffer) = (data_address + INPUTS, data_address + BUFFER);
    let (seed_lo, seed_hi) = (seed as u32, (seed >> 32) as u32);
    let args: &[u32] = match (seeded, harness_conv) {
        (false, _) => &[p, buffer],
        (true, Conv::Stack) => &[p, seed_lo, seed_hi, buffer],
        (true, Conv::Fastcall) => &[p, buffer, seed_lo, seed_hi],
    };
    // SAFETY: `program` is a complete 32-bit function in `conv` taking two
    // pointers into the harness's data (its inputs and its buffer; and the seed
    // between them when `seeded`), laid out as `args`; it and
    // its callees touch only their stack, the buffer and the trace there
    // (indexes are masked), as the compiled code says if the Compiler is
    // right: finding out whether it is, is this check's purpose.
    let got = unsafe { m.call(entry, harness_conv, args) }.map_err(|e| e.to_string())?;
    let word = |memory: &[u8], at: u32| {
        let at = at as usize;
        u32::from_le_bytes([memory[at], memory[at + 1], memory[at + 2], memory[at + 3]])
    };
    let memory = m.data();
    let buffer: Vec<u32> = (0..16).map(|i| word(memory, BUFFER + 4 * i)).collect();
    let count = word(memory, TRACE);
    let ring: Vec<[u32; 3]> = (0..count.min(TRACE_RING))
        .map(|i| core::array::from_fn(|j| word(memory, TRACE + 4 + 12 * i + 4 * j as u32)))
        .collect();

    let mut v = inputs[..values].to_vec();
    if seeded {
        v[0] ^= seed_lo;
        v[values - 1] = v[values - 1].wrapping_add(seed_hi);
    }
    let mut x: Vec<[u32; 4]> = inputs[values..]
        .chunks(4)
        .map(|l| [l[0], l[1], l[2], l[3]])
        .collect();
    let mut world = World {
        buffer: initial,
        trace: Vec::new(),
    };
    interpret(&program, &mut v, &mut x, &mut world);
    let want = fold_result(&v, &x);
    if got != want {
        return Err(format!(
            "compiled {got:#x}, interpreted {want:#x} ({conv:?}, frame pointer {frame_pointer}, seeded {seeded})\nprogram: {program:?}"
        ));
    }
    if buffer != world.buffer {
        return Err(format!(
            "buffer {buffer:x?}, interpreted {:x?}\nprogram: {program:?}",
            world.buffer
        ));
    }
    // The ring holds the last TRACE_RING calls, entry i at i % TRACE_RING.
    let mut want_ring = vec![[0u32; 3]; world.trace.len().min(TRACE_RING as usize)];
    for (i, e) in world.trace.iter().enumerate() {
        want_ring[i % TRACE_RING as usize] = *e;
    }
    if count as usize != world.trace.len() || ring != want_ring {
        return Err(format!(
            "{count} calls {ring:x?}, interpreted {} {want_ring:x?}\nprogram: {program:?}",
            world.trace.len()
        ));
    }
    Ok(stats)
}
