//! Argument-by-argument checks of each calling convention against the
//! published ABI rules, and of the lowering pass.

use ValType::*;
use jitforge_ir::abi::*;
use jitforge_ir::lower::{LowerError, lower};
use jitforge_ir::mock::MockX86;
use jitforge_ir::text::{parse_function, print_function};
use jitforge_ir::verify::verify;
use jitforge_ir::*;

fn r(p: PReg) -> Place {
    Place::Reg(p)
}
const RAX: PReg = PReg::gp(0);
const RCX: PReg = PReg::gp(1);
const RDX: PReg = PReg::gp(2);
const RSI: PReg = PReg::gp(6);
const RDI: PReg = PReg::gp(7);
const R8: PReg = PReg::gp(8);
const R9: PReg = PReg::gp(9);
fn x(i: u8) -> PReg {
    PReg::vec(i)
}
fn places(a: &ArgAssignment) -> Vec<Place> {
    a.args.iter().map(|l| l.place).collect()
}

#[test]
fn sysv_mixed_int_float_vector() {
    let c = CallConv::sysv64();
    let a = assign_args(
        &c,
        &[I64, F64, I32, V128, I64, I64, I64, I64, I64, F32],
        false,
    )
    .unwrap();
    assert_eq!(
        places(&a),
        vec![
            r(RDI),
            r(x(0)),
            r(RSI),
            r(x(1)),
            r(RDX),
            r(RCX),
            r(R8),
            r(R9),
            Place::Stack(0),
            r(x(2))
        ]
    );
    assert_eq!(a.stack_size, 8);
    assert!(a.args.iter().all(|l| !l.by_ref));
}

#[test]
fn sysv_more_args_than_registers() {
    let c = CallConv::sysv64();
    // Nine doubles: xmm0..7, then the stack; integers keep their registers.
    let mut t = vec![F64; 9];
    t.push(I64);
    let a = assign_args(&c, &t, false).unwrap();
    for i in 0..8 {
        assert_eq!(a.args[i].place, r(x(i as u8)));
    }
    assert_eq!(a.args[8].place, Place::Stack(0));
    assert_eq!(a.args[9].place, r(RDI));
    // Stack vectors are aligned to their size: i64 at 0, v128 at 16, v256 at 32, i64 at 64.
    let mut t = vec![F64; 8];
    t.extend([I64; 6]);
    t.extend([I64, V128, V256, I64]);
    let a = assign_args(&c, &t, false).unwrap();
    let st: Vec<Place> = a.args[14..].iter().map(|l| l.place).collect();
    assert_eq!(
        st,
        vec![
            Place::Stack(0),
            Place::Stack(16),
            Place::Stack(32),
            Place::Stack(64)
        ]
    );
    assert_eq!(a.stack_size, 72);
    assert_eq!(a.stack_align, 32);
}

#[test]
fn sysv_wide_vectors_in_registers_and_returns() {
    let c = CallConv::sysv64();
    let a = assign_args(&c, &[V256, V512, F32], false).unwrap();
    assert_eq!(places(&a), vec![r(x(0)), r(x(1)), r(x(2))]);
    assert_eq!(
        assign_rets(&c, &[I64, I64]).unwrap().to_vec(),
        vec![RAX, RDX]
    );
    assert_eq!(
        assign_rets(&c, &[F64, I64]).unwrap().to_vec(),
        vec![x(0), RAX]
    );
    assert_eq!(assign_rets(&c, &[V512]).unwrap().to_vec(), vec![x(0)]);
    assert_eq!(c.red_zone, 128);
    assert!(c.clobbered.contains(x(31)) && c.clobbered.contains(PReg::mask(1)));
    assert!(c.callee_saved.contains(PReg::gp(3)) && !c.callee_saved.contains(RDI));
}

#[test]
fn sysv_varargs_counts_vector_registers() {
    let c = CallConv::sysv64();
    let a = assign_args(&c, &[I64, F64, I32, F64], true).unwrap();
    assert_eq!(places(&a), vec![r(RDI), r(x(0)), r(RSI), r(x(1))]);
    assert_eq!(a.vec_regs_used, 2);
    assert_eq!(c.varargs_vec_count, Some(RAX));
}

#[test]
fn win64_positional_slots() {
    let c = CallConv::win64();
    let a = assign_args(&c, &[I64, F64, I32, F32, I64, F64], false).unwrap();
    assert_eq!(
        places(&a),
        vec![
            r(RCX),
            r(x(1)),
            r(R8),
            r(x(3)),
            Place::Stack(32),
            Place::Stack(40)
        ]
    );
    assert_eq!(a.stack_size, 48);
    // Only 4 register arguments even if all are doubles.
    let a = assign_args(&c, &[F64; 5], false).unwrap();
    assert_eq!(a.args[3].place, r(x(3)));
    assert_eq!(a.args[4].place, Place::Stack(32));
    // No arguments: the shadow space is still reserved.
    assert_eq!(assign_args(&c, &[], false).unwrap().stack_size, 32);
    assert_eq!(c.red_zone, 0);
    assert!(c.callee_saved.contains(x(6)) && c.callee_saved.contains(x(15)));
    assert!(c.callee_saved.contains(RSI) && c.callee_saved.contains(RDI));
    assert_eq!(c.vec_saved_bytes, 16);
    assert!(c.preserves(x(6), 16) && !c.preserves(x(6), 32) && !c.preserves(x(5), 8));
    assert!(CallConv::sysv64().preserves(PReg::gp(3), 8));
}

#[test]
fn win64_vectors_by_reference_and_returns() {
    let c = CallConv::win64();
    let a = assign_args(&c, &[V128, I64, V256, I64, V512], false).unwrap();
    assert!(a.args[0].by_ref && a.args[0].place == r(RCX) && a.args[0].size == 8);
    assert_eq!(a.args[1].place, r(RDX));
    assert!(a.args[2].by_ref && a.args[2].place == r(R8));
    assert!(a.args[4].by_ref && a.args[4].place == Place::Stack(32));
    assert_eq!(assign_rets(&c, &[V128]).unwrap().to_vec(), vec![x(0)]);
    assert!(assign_rets(&c, &[V256]).is_err());
    assert!(assign_rets(&c, &[I64, I64]).is_err());
}

#[test]
fn win64_varargs_duplicate_floats() {
    let c = CallConv::win64();
    let a = assign_args(&c, &[I64, F64, I32], true).unwrap();
    assert_eq!(a.args[1].place, r(x(1)));
    assert_eq!(a.args[1].dup_gp, Some(RDX));
    assert_eq!(a.args[0].dup_gp, None);
}

#[test]
fn vectorcall64_vectors_by_value() {
    let c = CallConv::vectorcall64();
    let a = assign_args(&c, &[V256, I64, F64, I64, F32, V128, F64], false).unwrap();
    assert_eq!(
        places(&a),
        vec![
            r(x(0)),
            r(RDX),
            r(x(2)),
            r(R9),
            r(x(4)),
            r(x(5)),
            Place::Stack(48)
        ]
    );
    assert!(a.args.iter().all(|l| !l.by_ref));
    assert_eq!(assign_rets(&c, &[V256]).unwrap().to_vec(), vec![x(0)]);
}

#[test]
fn cdecl32_all_on_stack() {
    let c = CallConv::cdecl();
    let a = assign_args(&c, &[I32, F64, I8, F32], false).unwrap();
    assert_eq!(
        places(&a),
        vec![
            Place::Stack(0),
            Place::Stack(4),
            Place::Stack(12),
            Place::Stack(16)
        ]
    );
    assert_eq!(a.stack_size, 20);
    assert!(!c.callee_pops);
    // The first three vectors in xmm0..2, the fourth on the stack, 16-aligned.
    let a = assign_args(&c, &[V128, F64, V128, V128, V128, I32], false).unwrap();
    assert_eq!(
        places(&a),
        vec![
            r(x(0)),
            Place::Stack(0),
            r(x(1)),
            r(x(2)),
            Place::Stack(16),
            Place::Stack(32)
        ]
    );
    assert_eq!(a.stack_align, 16);
    assert_eq!(
        assign_rets(&c, &[F64]).unwrap().to_vec(),
        vec![PReg::new(RegClass::X87, 0)]
    );
    assert_eq!(assign_rets(&c, &[I32]).unwrap().to_vec(), vec![RAX]);
    // An i64 result is two i32 halves, in eax then edx (edx:eax).
    assert_eq!(assign_rets(&c, &[I64]).unwrap().to_vec(), vec![RAX, RDX]);
    assert_eq!(ret_operand_types(&c, &[I64]).to_vec(), vec![I32, I32]);
    assert_eq!(
        ret_operand_types(&CallConv::sysv64(), &[I64]).to_vec(),
        vec![I64]
    );
    assert!(assign_rets(&c, &[I32, I32]).is_err());
    assert!(c.callee_saved.contains(PReg::gp(3)) && c.callee_saved.contains(RSI));
}

#[test]
fn stdcall32_callee_pops() {
    let c = CallConv::stdcall();
    let a = assign_args(&c, &[I32, I32, F64], false).unwrap();
    assert_eq!(
        places(&a),
        vec![Place::Stack(0), Place::Stack(4), Place::Stack(8)]
    );
    assert_eq!(a.stack_size, 16);
    assert!(c.callee_pops);
}

#[test]
fn fastcall32_two_registers() {
    let c = CallConv::fastcall();
    // 64-bit integers and floats never go in registers.
    let a = assign_args(&c, &[I64, I32, F64, I16, I32], false).unwrap();
    assert_eq!(
        places(&a),
        vec![
            Place::Stack(0),
            r(RCX),
            Place::Stack(8),
            r(RDX),
            Place::Stack(16)
        ]
    );
    assert_eq!(a.stack_size, 20);
    assert!(c.callee_pops);
}

#[test]
fn vectorcall32_vectors_in_xmm() {
    let c = CallConv::vectorcall32();
    let a = assign_args(&c, &[I32, F64, V128, I32, I32, F32], false).unwrap();
    assert_eq!(
        places(&a),
        vec![r(RCX), r(x(0)), r(x(1)), r(RDX), Place::Stack(0), r(x(2))]
    );
    assert_eq!(assign_rets(&c, &[F64]).unwrap().to_vec(), vec![x(0)]);
}

#[test]
fn light_convention() {
    let c = CallConv::light(
        "fast",
        &[PReg::gp(3), PReg::gp(12)],
        &[x(8)],
        &[PReg::gp(13)],
        &[x(9)],
        RegSet::of(&[PReg::gp(14), PReg::gp(15)]),
    );
    let a = assign_args(&c, &[I64, F64, I64, I64], false).unwrap();
    assert_eq!(
        places(&a),
        vec![r(PReg::gp(3)), r(x(8)), r(PReg::gp(12)), Place::Stack(0)]
    );
    assert!(!c.clobbered.contains(PReg::gp(14)) && c.clobbered.contains(RAX));
    assert!(!c.clobbered.contains(PReg::gp(4)));
    assert_eq!(
        assign_rets(&c, &[I64]).unwrap().to_vec(),
        vec![PReg::gp(13)]
    );
    let t = MockX86::new();
    let mut ext = ExtendedTarget::new(&t);
    let id = ext.add_call_conv(c);
    assert_eq!(ext.call_conv_by_name("fast"), Some(id));
    assert_eq!(ext.call_conv_by_name("sysv64"), Some(CallConvId(0)));
}

fn lowered(src: &str) -> String {
    let t = MockX86::new();
    let mut f = parse_function(src, &t).unwrap();
    verify(&f, &t).unwrap();
    lower(&mut f, &t).unwrap();
    verify(&f, &t).unwrap();
    let s = print_function(&f, &t);
    assert_eq!(parse_function(&s, &t).unwrap(), f);
    s
}

/// A System V call with mixed classes, an immediate and one register
/// passed several times (lowering adds copies: the list is rebuilt).
const SYSV_CALL_MIXED: &str = "func f(i64, f64) -> (f64) sysv64 {
  gp64 %a
  vec64 %d, %r
  sig sig0 = (i64, i64, f64, i32, i64, i64, i64, i64) -> (f64) sysv64
  entry %a, %d
  invoke sig0, 0x401000, (%a, %a, %d, 7, %a, %a, %a, %a) -> (%r)
  ret %r
}";

#[test]
fn lower_sysv_call_mixed_and_duplicates() {
    let s = lowered(SYSV_CALL_MIXED);
    let want = "  lowered out_args 8 call_align 16 ret_pop 0
  entry %a@rdi, %d@xmm0
  copy %3, %a
  copy %4, 7
  copy %5, %a
  copy %6, %a
  copy %7, %a
  copy qword [outargs], %a
  invoke sig0, 0x401000, (%a@rdi, %3@rsi, %d@xmm0, %4@rdx, %5@rcx, %6@r8, %7@r9) -> (%r@xmm0)
  ret %r@xmm0
";
    assert!(s.contains(want), "{s}");
}

#[test]
fn lower_sysv_varargs_sets_al() {
    let s = lowered(
        "func f(i64) -> () sysv64 {
  gp64 %p
  vec64 %d
  sig sig0 = (i64, ...) -> (i32) sysv64
  gp32 %n
  entry %p
  copy %d, %p
  invoke sig0, 0x1000, (%p, %d, 5) -> (%n)
  ret
}",
    );
    assert!(s.contains("copy %3, 5\n  copy %4, 1\n"), "{s}");
    assert!(
        s.contains("(%p@rdi, %d@xmm0, %3@rsi, %4@rax) -> (%n@rax)"),
        "{s}"
    );
}

#[test]
fn lower_win64_by_reference_and_varargs() {
    let s = lowered(
        "func f(v128) -> () win64 {
  vec128 %v
  vec64 %d
  sig sig0 = (v128, f64) -> () win64
  sig sig1 = (i64, ...) -> () win64
  entry %v
  copy %d, %v
  invoke sig0, 0x1000, (%v, %d) -> ()
  invoke sig1, 0x2000, (0, %d) -> ()
  ret
}",
    );
    // Incoming vector by reference: pointer in rcx, value loaded through it.
    assert!(s.contains("entry %2@rcx\n  copy %v, xmmword [%2]\n"), "{s}");
    // Outgoing: copied to a new 16-byte slot, its address passed in rcx.
    assert!(s.contains("slot $0 size 16 align 16"), "{s}");
    assert!(
        s.contains("copy xmmword [$0], %v\n  addr %3, [$0]\n"),
        "{s}"
    );
    assert!(s.contains("(%3@rcx, %d@xmm1) -> ()"), "{s}");
    // Variadic double in position 1: xmm1 and rdx.
    assert!(s.contains("copy %4, 0\n  copy %5, %d\n"), "{s}");
    assert!(s.contains("(%4@rcx, %d@xmm1, %5@rdx) -> ()"), "{s}");
    assert!(s.contains("lowered out_args 32 call_align 16"), "{s}");
}

#[test]
fn lower_entry_stack_args_and_stdcall_pop() {
    let s = lowered(
        "func f(i32, i32, f64) -> (i32) stdcall {
  gp32 %a, %b
  vec64 %c
  entry %a, %b, %c
  add %a, %b
  ret %a
}",
    );
    assert!(
        s.contains("lowered out_args 0 call_align 4 ret_pop 16"),
        "{s}"
    );
    assert!(s.contains(
        "  entry\n  copy %a, dword [inargs]\n  copy %b, dword [inargs + 4]\n  copy %c, qword [inargs + 8]\n"
    ), "{s}");
    assert!(s.contains("ret %a@rax"), "{s}");
}

#[test]
fn lower_cdecl_float_return_on_x87() {
    let s = lowered(
        "func f(f64) -> (f64) cdecl {
  vec64 %x
  entry %x
  ret %x
}",
    );
    // Through memory: the target loads the slot onto the x87 stack at `ret`.
    assert!(
        s.contains("  copy qword [$0], %x\n  ret qword [$0]\n"),
        "{s}"
    );
}

#[test]
fn lower_call_with_x87_result_passes_a_slot_for_it() {
    let s = lowered(
        "func f(i32) -> (i32) cdecl {
  gp32 %a
  vec64 %r
  sig sig0 = (i32) -> (f64) cdecl
  entry %a
  invoke sig0, 0x401000, (%a) -> (%r)
  ret %a
}",
    );
    // The slot is the call's last argument; the result is copied from it after.
    assert!(
        s.contains("invoke sig0, 0x401000, (qword [$0]) -> ()\n  copy %r, qword [$0]\n"),
        "{s}"
    );
}

#[test]
fn lower_x87_return_of_memory_reads_it_in_place() {
    let s = lowered(
        "func f(i32) -> (f32) stdcall {
  gp32 %p
  entry %p
  ret dword [%p + 4]
}",
    );
    assert!(s.contains("  ret dword [%p + 4]\n"), "{s}");
    assert!(s.contains("ret_pop 4"), "{s}");
}

#[test]
fn lower_errors() {
    let t = MockX86::new();
    let mut f = parse_function(
        "func f() -> () sysv64 {
  gp64 %a
  sig sig0 = (i64, i64, i64, i64, i64, i64, i64) -> () sysv64
  entry
  copy %a, 1
  tailjump sig0, 0x1000, (%a, %a, %a, %a, %a, %a, %a)
}",
        &t,
    )
    .unwrap();
    let before = f.clone();
    let e = lower(&mut f, &t).unwrap_err();
    assert!(
        matches!(
            e,
            LowerError::Abi {
                error: AbiError::Unsupported(_),
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(f.num_insts(), before.num_insts());
    assert!(f.frame.is_none());
    let mut g = parse_function(
        "func g() -> (i64, i64) win64 {\n  gp64 %a\n  entry\n  copy %a, 1\n  ret %a, %a\n}",
        &t,
    )
    .unwrap();
    assert!(lower(&mut g, &t).is_err());
    let mut h = parse_function("func h() -> () sysv64 {\n  entry\n  ret\n}", &t).unwrap();
    lower(&mut h, &t).unwrap();
    assert_eq!(lower(&mut h, &t), Err(LowerError::AlreadyLowered));
}

#[test]
fn lowering_in_place_is_undone_on_error() {
    // The entry and the first return lower in place (their registers
    // become fixed ones); the tail jump after them fails: every operand is
    // as it was.
    let t = MockX86::new();
    let mut f = parse_function(
        "func f(i64, i64) -> (i64) sysv64 {
  gp64 %a
  gp64 %b
  sig sig0 = (i64, i64, i64, i64, i64, i64, i64) -> () sysv64
  entry %a, %b
  ret %a
  tailjump sig0, 0x1000, (%a, %a, %a, %a, %a, %a, %a)
}",
        &t,
    )
    .unwrap();
    let before = f.clone();
    assert!(lower(&mut f, &t).is_err());
    assert!(f.frame.is_none());
    assert_eq!(print_function(&f, &t), print_function(&before, &t));
    // Without the tail jump the same function lowers in place.
    let mut g = parse_function(
        "func g(i64, i64) -> (i64) sysv64 {
  gp64 %a
  gp64 %b
  entry %a, %b
  ret %a
}",
        &t,
    )
    .unwrap();
    lower(&mut g, &t).unwrap();
    let s = print_function(&g, &t);
    assert!(s.contains("  entry %a@rdi, %b@rsi\n  ret %a@rax\n"), "{s}");
}

#[test]
fn lowered_call_clobbers_come_from_the_convention() {
    let t = MockX86::new();
    let mut f = parse_function(
        "func f() -> () win64 {\n  sig sig0 = () -> () win64\n  entry\n  invoke sig0, 0x10, () -> ()\n  ret\n}",
        &t,
    )
    .unwrap();
    lower(&mut f, &t).unwrap();
    let call = f
        .insts()
        .find(|&i| matches!(f.kind(i), InstKind::Call(_)))
        .unwrap();
    let mut facts = InstFacts::default();
    f.inst_facts(&t, call, &mut facts).unwrap();
    assert_eq!(facts.flow, Flow::Call);
    assert!(facts.clobbers.contains(RAX) && !facts.clobbers.contains(RSI));
    assert!(!facts.clobbers.contains(x(6)) && facts.clobbers.contains(x(16)));
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    const CONV64: [&str; 3] = ["sysv64", "win64", "vectorcall64"];
    const CONV32: [&str; 4] = ["cdecl", "stdcall", "fastcall", "vectorcall"];

    fn vreg_for(f: &mut Function, t: ValType) -> VReg {
        let size = if t.is_int() {
            t.size().max(4)
        } else {
            t.size()
        };
        f.new_vreg(t.class(), size, None)
    }

    /// A valid function with calls of random signatures and conventions.
    fn gen_fn(seed: u64) -> (Function, MockX86) {
        let tg = MockX86::new();
        let mut s = seed;
        let mut next = move |n: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) % n.max(1)
        };
        let wide = next(2) == 0;
        let convs: &[&str] = if wide { &CONV64 } else { &CONV32 };
        let types = |n: u64, next: &mut dyn FnMut(u64) -> u64| -> Vec<ValType> {
            (0..next(n + 1))
                .map(|_| {
                    // No 256- or 512-bit vectors on the 32-bit conventions.
                    let all: Vec<ValType> = ValType::ALL
                        .into_iter()
                        .filter(|t| wide || t.size() <= 16)
                        .collect();
                    let t = all[next(all.len() as u64) as usize];
                    if !wide && t == ValType::I64 {
                        ValType::I32
                    } else {
                        t
                    }
                })
                .collect()
        };
        let params = types(10, &mut next);
        let rets: Vec<ValType> = types(1, &mut next);
        let conv = tg.conv(convs[next(convs.len() as u64) as usize]);
        let mut f = Function::new("g", Signature::new(conv, &params, &rets));
        let args: Vec<VReg> = params.iter().map(|&t| vreg_for(&mut f, t)).collect();
        let ops: Vec<Operand> = args.iter().map(|&v| Operand::v(v)).collect();
        f.entry(&ops).unwrap();
        let mut live: Vec<(VReg, ValType)> =
            args.iter().copied().zip(params.iter().copied()).collect();
        for _ in 0..next(4) {
            let cp = types(12, &mut next);
            let cr = types(1, &mut next);
            let mut sig =
                Signature::new(tg.conv(convs[next(convs.len() as u64) as usize]), &cp, &cr);
            let nvar = if next(4) == 0 && wide {
                sig.varargs = true;
                next(4)
            } else {
                0
            };
            let sr = f.import_sig(sig);
            let mut a = Vec::new();
            for &t in cp.iter().chain(
                [ValType::F64, ValType::I64, ValType::F64, ValType::I64][..nvar as usize].iter(),
            ) {
                let same: Vec<VReg> = live.iter().filter(|x| x.1 == t).map(|x| x.0).collect();
                if t.is_int() && next(3) == 0 {
                    a.push(Operand::Imm(next(1000) as i64 - 500));
                } else if !same.is_empty() && next(3) != 0 {
                    a.push(Operand::v(same[next(same.len() as u64) as usize]));
                } else {
                    let v = vreg_for(&mut f, t);
                    if t.is_int() {
                        f.inst(tg.id("mov"), &[Operand::v(v), Operand::Imm(1)])
                            .unwrap();
                    } else {
                        f.copy(Operand::v(v), Operand::Imm(0)).unwrap();
                    }
                    live.push((v, t));
                    a.push(Operand::v(v));
                }
            }
            let r: Vec<VReg> = cr.iter().map(|&t| vreg_for(&mut f, t)).collect();
            let ro: Vec<Operand> = r.iter().map(|&v| Operand::v(v)).collect();
            let callee = match next(3) {
                0 => Operand::Imm(0x1000),
                1 => Operand::Label(f.new_label(Some("other"))),
                _ => {
                    let c = f.new_vreg(RegClass::GP, 8, None);
                    f.inst(tg.id("mov"), &[Operand::v(c), Operand::Imm(0x2000)])
                        .unwrap();
                    Operand::v(c)
                }
            };
            f.call(sr, callee, &a, &ro).unwrap();
            live.extend(r.iter().copied().zip(cr.iter().copied()));
        }
        let mut rv = Vec::new();
        for &t in &rets {
            let v = vreg_for(&mut f, t);
            f.copy(Operand::v(v), Operand::Imm(7)).unwrap();
            rv.push(Operand::v(v));
        }
        f.ret(&rv).unwrap();
        (f, tg)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn lowering_keeps_functions_valid(seed in any::<u64>()) {
            let (mut f, t) = gen_fn(seed);
            prop_assert!(verify(&f, &t).is_ok(), "{:?}\n{}", verify(&f, &t), print_function(&f, &t));
            match lower(&mut f, &t) {
                Err(LowerError::Abi { error: AbiError::Unsupported(_), .. }) => return Ok(()),
                Err(e) => prop_assert!(false, "{e}"),
                Ok(()) => {}
            }
            let text = print_function(&f, &t);
            prop_assert!(verify(&f, &t).is_ok(), "{:?}\n{}", verify(&f, &t), text);
            prop_assert!(parse_function(&text, &t).unwrap() == f);
            // Every fixed register appears once among a call's arguments and once among its results;
            // the only other operand is the slot of an x87 float result (the last argument).
            for i in f.insts() {
                if let Some((_, _, args, rets)) = f.call_parts(i) {
                    let x87_slot = matches!(args.last(), Some(Operand::Mem(_)));
                    let args = if x87_slot { &args[..args.len() - 1] } else { args };
                    for list in [args, rets] {
                        let mut regs: Vec<PReg> = list.iter().filter_map(|o| match o { Operand::Fixed(_, p) => Some(*p), _ => None }).collect();
                        prop_assert_eq!(regs.len(), list.len(), "{}", text);
                        regs.sort();
                        regs.dedup();
                        prop_assert_eq!(regs.len(), list.len(), "{}", text);
                    }
                    let mut vs: Vec<VReg> = args.iter().filter_map(|o| o.direct_vreg()).collect();
                    vs.sort();
                    vs.dedup();
                    prop_assert_eq!(vs.len(), args.len(), "{}", text);
                }
            }
        }
    }
}

#[test]
fn vectorcall_vectors_beyond_six_registers_go_by_reference() {
    let c = CallConv::vectorcall64();
    let a = assign_args(&c, &[V128; 8], false).unwrap();
    for i in 0..6 {
        assert_eq!(a.args[i].place, r(x(i as u8)));
        assert!(!a.args[i].by_ref);
    }
    assert!(a.args[6].by_ref && a.args[6].place == Place::Stack(48) && a.args[6].size == 8);
    assert!(a.args[7].by_ref && a.args[7].place == Place::Stack(56));
    let c = CallConv::vectorcall32();
    let mut t = vec![V128; 7];
    t.push(I32);
    let a = assign_args(&c, &t, false).unwrap();
    assert!(a.args[6].by_ref && a.args[6].place == Place::Stack(0) && a.args[6].size == 4);
    assert_eq!(a.args[7].place, r(RCX));
    // Floats beyond the registers stay by value.
    let a = assign_args(&c, &[F64; 7], false).unwrap();
    assert!(!a.args[6].by_ref && a.args[6].place == Place::Stack(0));
}

#[test]
fn callee_pop_bytes_per_convention() {
    let sig = |c| Signature::new(c, &[I32, F64, I32], &[]);
    let t = MockX86::new();
    let pops = |name: &str| {
        let c = t.call_conv(t.conv(name)).unwrap();
        callee_pop_bytes(c, &sig(t.conv(name))).unwrap()
    };
    assert_eq!(pops("cdecl"), 0);
    assert_eq!(pops("stdcall"), 16);
    assert_eq!(pops("fastcall"), 8); // ecx, double on the stack, edx
    assert_eq!(pops("vectorcall"), 0); // ecx, xmm0, edx
    assert_eq!(pops("sysv64"), 0);
}

#[test]
fn lower_memory_arguments_go_through_registers() {
    let s = lowered(
        "func f(i32) -> () cdecl {
  gp32 %p
  sig sig0 = (i32, i32) -> () cdecl
  entry %p
  invoke sig0, 0x10, (dword [%p], 5) -> ()
  ret
}",
    );
    assert!(
        s.contains(
            "  copy %1, dword [%p]\n  copy dword [outargs], %1\n  copy dword [outargs + 4], 5\n"
        ),
        "{s}"
    );
}

#[test]
fn copies_and_constants_for_the_allocator() {
    let t = MockX86::new();
    let f = parse_function(
        "func f() -> () sysv64 {\n  gp64 %a, %b\n  entry\n  copy %a, 42\n  copy %b, %a\n  copy %b.b, %a.b\n  ret\n}",
        &t,
    )
    .unwrap();
    let i = |k| Inst::from_u32(k);
    assert_eq!(f.copy_imm(i(1)), Some((VReg::from_u32(0), 42)));
    assert_eq!(
        f.copy_vregs(i(2)),
        Some((VReg::from_u32(1), VReg::from_u32(0)))
    );
    assert_eq!(f.copy_vregs(i(3)), None);
    let mut facts = InstFacts::default();
    f.inst_facts(&t, i(3), &mut facts).unwrap();
    assert_eq!(facts.ops[0].access, Access::PartialWrite);
}

#[test]
fn lower_narrow_immediate_arguments_extend_to_32_bits() {
    let s = lowered(
        "func f() -> () sysv64 {
  sig sig0 = (i8, u8, i16, u16, i8, u8, u8) -> () sysv64
  entry
  invoke sig0, 0x1000, (-5, 251, 65535, 70000, 251, -1, -2) -> ()
  ret
}",
    );
    // 32-bit temporaries and a 32-bit stack store: the callee may read the
    // whole 32 bits. Each value is truncated to its type and extended by
    // the type's signedness (251 as i8 is -5; -1 as u8 is 255).
    let want = "  gp32 %0, %1, %2, %3, %4, %5
  sig sig0 = (i8, u8, i16, u16, i8, u8, u8) -> () sysv64
  lowered out_args 8 call_align 16 ret_pop 0
  entry
  copy %0, -5
  copy %1, 251
  copy %2, -1
  copy %3, 0x1170
  copy %4, -5
  copy %5, 255
  copy dword [outargs], 254
";
    assert!(s.contains(want), "{s}");
}

#[test]
fn lower_narrow_register_and_memory_arguments_extend_by_their_type() {
    let s = lowered(
        "func f(i64) -> () sysv64 {
  gp64 %a
  gp8 %b
  gp32 %c
  sig sig0 = (u8, i8, u16, i16, i8, u8, u16, i16) -> () sysv64
  entry %a
  mov %b, -1
  mov %c, -1
  invoke sig0, 0x1000, (%a.b, %a.b, %a.w, %c, %b, byte [%a], word [%a + 2], %a.h) -> ()
  ret
}",
    );
    // Each operand is read at its type's size (the low byte or word of a
    // wider register, `%a.h` as it is, memory narrowed) and widened into a
    // fresh 32-bit register by the type's signedness; the stack slots get
    // dwords.
    let want = "  gp32 %c, %3, %4, %5, %6, %7, %8, %9, %10
  sig sig0 = (u8, i8, u16, i16, i8, u8, u16, i16) -> () sysv64
  lowered out_args 16 call_align 16 ret_pop 0
  entry %a@rdi
  mov %b, -1
  mov %c, -1
  movzx %3, %a.b
  movsx %4, %a.b
  movzx %5, %a.w
  movsx %6, %c.w
  movsx %7, %b
  movzx %8, byte [%a]
  movzx %9, word [%a + 2]
  copy dword [outargs], %9
  movsx %10, %a.h
  copy dword [outargs + 8], %10
  invoke sig0, 0x1000, (%3@rdi, %4@rsi, %5@rdx, %6@rcx, %7@r8, %8@r9) -> ()
";
    assert!(s.contains(want), "{s}");
}

#[test]
fn lower_narrow_arguments_widen_on_every_convention() {
    // Windows x64 callees do not need it, but the rule is one for all
    // conventions; on the 32-bit stack the slot gets a dword.
    let s = lowered(
        "func f(i64) -> () win64 {
  gp64 %a
  sig sig0 = (u16, i64, i64, i8) -> () win64
  entry %a
  tailjump sig0, 0x1000, (%a.w, %a, %a, 253)
}",
    );
    assert!(
        s.contains(
            "  movzx %1, %a.w\n  copy %2, %a\n  copy %3, -3\n  tailjump sig0, 0x1000, (%1@rcx, %a@rdx, %2@r8, %3@r9)\n"
        ),
        "{s}"
    );
    let s = lowered(
        "func f(i32) -> () cdecl {
  gp32 %a
  sig sig0 = (i16, u8) -> () cdecl
  entry %a
  invoke sig0, 0x1000, (%a.w, %a.b) -> ()
  ret
}",
    );
    assert!(
        s.contains(
            "  movsx %1, %a.w\n  copy dword [outargs], %1\n  movzx %2, %a.b\n  copy dword [outargs + 4], %2\n"
        ),
        "{s}"
    );
}

#[test]
fn lower_variadic_and_wide_arguments_are_not_widened() {
    // Variadic arguments are typed from their registers (i64 here), and
    // i32/i64 arguments fill their register as they are.
    let s = lowered(
        "func f(i64) -> () sysv64 {
  gp64 %a
  sig sig0 = (i32, ...) -> () sysv64
  entry %a
  invoke sig0, 0x1000, (%a.d, %a) -> ()
  ret
}",
    );
    assert!(!s.contains("movzx") && !s.contains("movsx"), "{s}");
}

#[test]
fn lower_narrow_register_argument_needs_the_targets_extension() {
    let t = MockX86::new().without_extend_inst();
    let src = |arg: &str| {
        format!(
            "func f(i64) -> () sysv64 {{\n  gp64 %a\n  sig sig0 = (u8) -> () sysv64\n  entry %a\n  invoke sig0, 0x10, ({arg}) -> ()\n  ret\n}}"
        )
    };
    let mut f = parse_function(&src("%a.b"), &t).unwrap();
    let before = print_function(&f, &t);
    let e = lower(&mut f, &t).unwrap_err();
    assert!(e.to_string().contains("no extension instruction"), "{e}");
    assert_eq!(print_function(&f, &t), before);
    // An immediate needs no instruction.
    let mut f = parse_function(&src("300"), &t).unwrap();
    lower(&mut f, &t).unwrap();
    assert!(print_function(&f, &t).contains("copy %1, 44\n"));
}

/// An `i64` result in 32-bit mode is two 32-bit values, low then high, in
/// the return and in a call's results, fixed to eax and edx (the mock
/// names registers as in 64-bit mode); one value instead of two is an error
/// that says so, in the verifier and in lowering.
#[test]
fn lower_i64_result_in_32_bit_mode_as_two_halves() {
    let s = lowered(
        "func f(i32) -> (i64) cdecl {
  gp32 %a, %l, %h
  sig sig0 = (i32) -> (i64) stdcall
  entry %a
  invoke sig0, 0x401000, (%a) -> (%l, %h)
  ret %h, %l
}",
    );
    assert!(s.contains("-> (%l@rax, %h@rdx)"), "{s}");
    assert!(s.contains("ret %h@rax, %l@rdx"), "{s}");
    one_value_for_two_is_an_error(
        "func f(i32) -> (i64) cdecl {\n  gp32 %a\n  entry %a\n  ret %a\n}",
        "i64 result in 32-bit mode is two 32-bit values",
    );
}

/// `text` lists one value where an i64 of 32-bit mode needs two: the
/// verifier counts the values, lowering's error contains `lowering`.
fn one_value_for_two_is_an_error(text: &str, lowering: &str) {
    let t = MockX86::new();
    let mut f = parse_function(text, &t).unwrap();
    let errors = verify(&f, &t).unwrap_err();
    assert!(
        errors[0].to_string().contains("expects 2 values, found 1"),
        "{errors:?}"
    );
    let e = lower(&mut f, &t).unwrap_err().to_string();
    assert!(e.contains(lowering), "{e}");
}

/// An `i64` argument in 32-bit mode is two 32-bit values, low then high,
/// in `entry` and in a call's arguments: the two dwords of its 8-byte stack
/// slot (low at the lower address) in every i386 convention; fastcall's
/// later `i32` still takes ecx. One value instead of two is an error that
/// says so, in the verifier and in lowering.
#[test]
fn lower_i64_argument_in_32_bit_mode_as_two_halves() {
    let s = lowered(
        "func f(i64, i32) -> (i64) stdcall {
  gp32 %l, %h, %a
  sig sig0 = (i64, i32, i64) -> () fastcall
  entry %l, %h, %a
  invoke sig0, 0x401000, (%l, %h, %a, 7, %a) -> ()
  ret %l, %h
}",
    );
    assert!(s.contains("ret_pop 12"), "{s}");
    assert!(
        s.contains(
            "  entry\n  copy %l, dword [inargs]\n  copy %h, dword [inargs + 4]\n  copy %a, dword [inargs + 8]\n"
        ),
        "{s}"
    );
    assert!(
        s.contains("copy dword [outargs], %l\n  copy dword [outargs + 4], %h\n")
            && s.contains("copy dword [outargs + 8], 7\n  copy dword [outargs + 12], %a\n")
            && s.contains("@rcx"),
        "{s}"
    );
    let c = CallConv::fastcall();
    let a = assign_args(&c, &[I64, I32, I64], false).unwrap();
    let locs = arg_operand_locs(&c, &[I64, I32, I64], &a).unwrap();
    let places: Vec<Place> = locs.map(|(l, _)| l.place).collect();
    assert_eq!(
        places,
        [
            Place::Stack(0),
            Place::Stack(4),
            Place::Reg(PReg::gp(1)),
            Place::Stack(8),
            Place::Stack(12)
        ]
    );
    assert_eq!(a.stack_size, 16);
    assert_eq!(arg_operand_count(&c, &[I64, I32, I64]), 5);
    // A 32-bit convention that would put an i64 in a register: unsupported.
    let wide_regs = CallConv {
        gp_arg_max_size: 8,
        ..CallConv::fastcall()
    };
    let a = assign_args(&wide_regs, &[I64], false).unwrap();
    assert!(arg_operand_locs(&wide_regs, &[I64], &a).is_err());
    assert_eq!(
        arg_operand_types(&c, &[I64, I32]).to_vec(),
        vec![I32, I32, I32]
    );
    assert_eq!(
        arg_operand_types(&CallConv::sysv64(), &[I64]).to_vec(),
        vec![I64]
    );
    one_value_for_two_is_an_error(
        "func f(i64) -> () cdecl {\n  gp32 %a\n  entry %a\n  ret\n}",
        "i64 argument in 32-bit mode is two 32-bit values",
    );
}

/// Whether `f`'s kind summary covers every instruction it has.
fn summary_covers(f: &Function) -> bool {
    let kinds = f.kind_summary();
    let abi = f
        .all_insts()
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                InstKind::Entry | InstKind::Ret | InstKind::Call(_) | InstKind::TailJump(_)
            )
        })
        .count();
    abi <= kinds.abi_bound() as usize
        && f.all_insts().iter().all(|d| match d.kind {
            InstKind::Target(id) => kinds.may_have_target(KindSummary::target_mask(&[id.0])),
            InstKind::Call(_) | InstKind::TailJump(_) => kinds.may_call(),
            _ => true,
        })
}

#[test]
fn kind_summary_follows_pushes_lowering_and_clear() {
    let t = MockX86::new();
    let mut f = parse_function(SYSV_CALL_MIXED, &t).unwrap();
    assert!(f.kind_summary().may_call() && summary_covers(&f));
    let before = f.num_insts();
    lower(&mut f, &t).unwrap();
    assert!(f.num_insts() > before, "the list was rebuilt");
    assert!(f.kind_summary().may_call() && summary_covers(&f));

    // A function without calls says so; target ids land on their bits only.
    let sig = f.sig.clone();
    f.clear("g", sig);
    assert_eq!(f.kind_summary(), KindSummary::default());
    f.inst(TargetInst(0x1_0003), &[]).unwrap();
    f.inst(TargetInst(64 + 9), &[]).unwrap();
    let kinds = f.kind_summary();
    assert!(!kinds.may_call() && summary_covers(&f));
    assert!(kinds.may_have_target(KindSummary::target_mask(&[3])));
    assert!(!kinds.may_have_target(KindSummary::target_mask(&[4, 10, 63])));
}
