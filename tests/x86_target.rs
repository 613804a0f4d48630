//! The x86 target of the IR: operand facts checked operand by operand for a
//! representative set of instructions, the IR's documented functions parsed,
//! verified and lowered with the real target (and lowered exactly as with
//! the IR's `MockX86`), registers and conventions, and a bounded property
//! test that no input panics.

use jitforge::compiler::{Prefix, X86Inst, X86Target};
use jitforge::x86::Mnemonic;
use jitforge_ir::cfg::Cfg;
use jitforge_ir::lower::lower;
use jitforge_ir::mock::MockX86;
use jitforge_ir::text::{parse_function, parse_module, print_function};
use jitforge_ir::verify::verify;
use jitforge_ir::*;
use proptest::prelude::*;

fn t() -> &'static X86Target {
    X86Target::x64()
}

/// The facts of the single target instruction `inst` in a function with
/// declarations `decls` (labels `.l` bound at the end).
fn facts(decls: &str, inst: &str) -> InstFacts {
    try_facts(decls, inst).unwrap_or_else(|e| panic!("{inst}: {e}"))
}

fn try_facts(decls: &str, inst: &str) -> Result<InstFacts, FactsError> {
    let src = format!(
        "func f() -> () sysv64 {{\n  {decls}\n  labels .l\n  entry\n  {inst}\n.l:\n  ret\n}}"
    );
    let f = parse_function(&src, t()).unwrap_or_else(|e| panic!("{src}\n{e}"));
    let i = f
        .insts()
        .find(|&i| matches!(f.kind(i), InstKind::Target(_)))
        .expect("one target instruction");
    let mut out = InstFacts::default();
    f.inst_facts(t(), i, &mut out)?;
    Ok(out)
}

const GP: KindSet = KindSet::GP;
const GM: KindSet = KindSet::GP.or(KindSet::MEM);
const VEC: KindSet = KindSet::VEC;
const VM: KindSet = KindSet::VEC.or(KindSet::MEM);
const MEM: KindSet = KindSet::MEM;
const IMM: KindSet = KindSet::IMM;
const R: Access = Access::Read;
const W: Access = Access::Write;
const RW: Access = Access::ReadWrite;
const PW: Access = Access::PartialWrite;
const NONE: Access = Access::None;
const RAX: PReg = PReg::gp(0);
const RCX: PReg = PReg::gp(1);
const RDX: PReg = PReg::gp(2);
const RSI: PReg = PReg::gp(6);
const RDI: PReg = PReg::gp(7);

fn op(kinds: KindSet, access: Access, size: u16) -> OperandFact {
    OperandFact::new(kinds, access, size)
}
fn with_allowed(mut f: OperandFact, allowed: u32) -> OperandFact {
    f.allowed = allowed;
    f
}
fn with_fixed(mut f: OperandFact, p: PReg) -> OperandFact {
    f.fixed = Some(p);
    f
}
fn imm() -> OperandFact {
    op(IMM, R, 0)
}
fn imp(reg: PReg, access: Access) -> ImplicitReg {
    ImplicitReg { reg, access }
}

const DECLS: &str = "gp64 %a, %b, %p, %i\n  gp32 %d, %e\n  gp16 %w\n  gp8 %c, %c2\n  vec64 %x, %y\n  vec32 %s\n  vec128 %v, %u\n  vec256 %yv, %yu\n  vec512 %z, %z2\n  mask64 %k, %k2";

fn ops(inst: &str) -> Vec<OperandFact> {
    facts(DECLS, inst).ops.to_vec()
}

#[test]
fn mov_forms() {
    assert_eq!(ops("mov %a, %b"), vec![op(GM, W, 8), op(GM, R, 8)]);
    assert_eq!(ops("mov %a, 5"), vec![op(GM, W, 8), imm()]);
    assert_eq!(ops("mov %a, 0x123456789"), vec![op(GP, W, 8), imm()]);
    assert_eq!(
        ops("mov %a, qword [%p + 8]"),
        vec![op(GP, W, 8), op(MEM, R, 8)]
    );
    assert_eq!(ops("mov dword [%p], %d"), vec![op(MEM, W, 4), op(GP, R, 4)]);
    // Sub-registers: 8/16-bit writes keep the rest, 32-bit writes zero-extend.
    assert_eq!(ops("mov %a.b, 0xFF"), vec![op(GM, PW, 1), imm()]);
    assert_eq!(ops("mov %a.w, %w"), vec![op(GM, PW, 2), op(GM, R, 2)]);
    assert_eq!(ops("mov %a.d, 1"), vec![op(GM, W, 4), imm()]);
    // A whole 8-bit register is written entirely.
    assert_eq!(ops("mov %c, %c2"), vec![op(GM, W, 1), op(GM, R, 1)]);
    // A high byte: 0..3, and the other byte register too.
    assert_eq!(
        ops("mov %a.h, %c"),
        vec![
            with_allowed(op(GP, PW, 1), 0xF),
            with_allowed(op(GM, R, 1), 0xF)
        ]
    );
    // Physical registers: the accumulator form only when the user wrote rax.
    let f = facts(DECLS, "add rax, 1000");
    assert_eq!(f.ops[0].fixed, Some(RAX));
    let f = facts(DECLS, "add %a, 1000");
    assert_eq!(f.ops.to_vec(), vec![op(GM, RW, 8), imm()]);
}

#[test]
fn arithmetic_and_idioms() {
    assert_eq!(ops("add %a, %b"), vec![op(GM, RW, 8), op(GM, R, 8)]);
    assert_eq!(
        ops("add %d, dword [%p]"),
        vec![op(GP, RW, 4), op(MEM, R, 4)]
    );
    assert_eq!(ops("sub %a, %b"), vec![op(GM, RW, 8), op(GM, R, 8)]);
    assert_eq!(ops("sub %a, %a"), vec![op(GM, W, 8), op(GM, NONE, 8)]);
    assert_eq!(ops("xor %d, %d"), vec![op(GM, W, 4), op(GM, NONE, 4)]);
    assert_eq!(ops("xor %a.b, %a.b"), vec![op(GM, PW, 1), op(GM, NONE, 1)]);
    assert_eq!(ops("xor %a, %b"), vec![op(GM, RW, 8), op(GM, R, 8)]);
    assert_eq!(ops("imul %a, %b"), vec![op(GP, RW, 8), op(GM, R, 8)]);
    assert_eq!(
        ops("imul %a, %b, 10"),
        vec![op(GP, W, 8), op(GM, R, 8), imm()]
    );
    assert_eq!(
        ops("imul %a, %b, 100000"),
        vec![op(GP, W, 8), op(GM, R, 8), imm()]
    );
    let f = facts(DECLS, "imul %a");
    assert_eq!(f.ops.to_vec(), vec![op(GM, R, 8)]);
    assert_eq!(f.implicit.to_vec(), vec![imp(RDX, W), imp(RAX, RW)]);
    assert_eq!(ops("cmp %a, %b"), vec![op(GM, R, 8), op(GM, R, 8)]);
    assert_eq!(ops("cmp %a, 0"), vec![op(GM, R, 8), imm()]);
    assert_eq!(ops("test %a, %a"), vec![op(GM, R, 8), op(GP, R, 8)]);
    assert_eq!(ops("neg %d"), vec![op(GM, RW, 4)]);
    // cmovcc keeps the old value when the condition is false.
    assert_eq!(ops("cmove %a, %b"), vec![op(GP, RW, 8), op(GM, R, 8)]);
    assert_eq!(ops("cmovne %d, %e"), vec![op(GP, RW, 4), op(GM, R, 4)]);
}

#[test]
fn shifts_by_cl_and_immediate() {
    assert_eq!(
        ops("shl %a, %c"),
        vec![op(GM, RW, 8), with_fixed(op(GP, R, 1), RCX)]
    );
    assert_eq!(
        ops("sar %d, %a.b"),
        vec![op(GM, RW, 4), with_fixed(op(GP, R, 1), RCX)]
    );
    assert_eq!(ops("shl %a, 3"), vec![op(GM, RW, 8), imm()]);
    assert_eq!(ops("shr %a, 1"), vec![op(GM, RW, 8), imm()]);
    assert_eq!(
        ops("rol %w, cl"),
        vec![op(GM, RW, 2), with_fixed(op(GP, R, 1), RCX)]
    );
    assert!(facts(DECLS, "shl %a, %c").implicit.is_empty());
}

#[test]
fn division_on_rdx_rax() {
    let f = facts(DECLS, "div %a");
    assert_eq!(f.ops.to_vec(), vec![op(GM, R, 8)]);
    assert_eq!(f.implicit.to_vec(), vec![imp(RAX, RW), imp(RDX, RW)]);
    let f = facts(DECLS, "idiv %d");
    assert_eq!(f.ops.to_vec(), vec![op(GM, R, 4)]);
    assert_eq!(f.implicit.to_vec(), vec![imp(RAX, RW), imp(RDX, RW)]);
    let f = facts(DECLS, "idiv qword [%p]");
    assert_eq!(f.ops.to_vec(), vec![op(MEM, R, 8)]);
    let f = facts(DECLS, "cqo");
    assert_eq!(f.implicit.to_vec(), vec![imp(RAX, R), imp(RDX, W)]);
    let f = facts(DECLS, "mul %c");
    assert_eq!(f.implicit.to_vec(), vec![imp(RAX, RW)]);
}

/// Implicit registers as operands (`_regs` ids): each is fixed to its
/// register with the database's merged access and leaves the implicit list;
/// the form, and so how many are bound, comes from the explicit operands.
#[test]
fn implicit_registers_bound_to_operands() {
    let f = facts(DECLS, "idiv_regs %a, %b, %i");
    assert_eq!(
        f.ops.to_vec(),
        vec![
            with_fixed(op(GP, RW, 8), RDX),
            with_fixed(op(GP, RW, 8), RAX),
            op(GM, R, 8)
        ]
    );
    assert!(f.implicit.is_empty());
    // 32-bit: edx and eax read, written whole (zero-extended).
    let f = facts(DECLS, "div_regs %d, %e, dword [%p]");
    assert_eq!(f.ops[0], with_fixed(op(GP, RW, 4), RDX));
    assert_eq!(f.ops[2], op(MEM, R, 4));
    // cqo: rax read, rdx written.
    let f = facts(DECLS, "cqo_regs %a, %b");
    assert_eq!(
        f.ops.to_vec(),
        vec![with_fixed(op(GP, W, 8), RDX), with_fixed(op(GP, R, 8), RAX)]
    );
    // cwd writes only dx: a partial write of a view of a wider register,
    // a full write of a 16-bit register.
    let f = facts(DECLS, "cwd_regs %a.w, %b.w");
    assert_eq!(f.ops[0], with_fixed(op(GP, PW, 2), RDX));
    let f = facts(DECLS, "cwd_regs %w, %b.w");
    assert_eq!(f.ops[0], with_fixed(op(GP, W, 2), RDX));
    // 8-bit mul binds ax alone; a byte register cannot hold what it reads.
    let f = facts(DECLS, "mul_regs %w, %c");
    assert_eq!(f.ops[0], with_fixed(op(GP, RW, 2), RAX));
    assert!(try_facts(DECLS, "mul_regs %c2, %c").is_err());
    // rep: the count first, then rdi and rsi.
    let f = facts(DECLS, "rep_movsb_regs %a, %b, %i");
    let fixed: Vec<Option<PReg>> = f.ops.iter().map(|o| o.fixed).collect();
    assert_eq!(fixed, vec![Some(RCX), Some(RDI), Some(RSI)]);
    assert!(f.implicit.is_empty());
    // cmpxchg: the implicit rax last; cpuid in AsmJit's order.
    let f = facts(DECLS, "cmpxchg_regs qword [%p], %a, %b");
    assert_eq!(f.ops[2], with_fixed(op(GP, RW, 8), RAX));
    let f = facts(DECLS, "cpuid_regs %d, %e, %d, %e");
    let fixed: Vec<Option<PReg>> = f.ops.iter().map(|o| o.fixed).collect();
    assert_eq!(
        fixed,
        vec![Some(RAX), Some(PReg::gp(3)), Some(RCX), Some(RDX)]
    );
    // Names, and ids the target refuses.
    assert!(t().inst_by_name("rep_movsb_regs").is_some());
    assert_eq!(t().inst_by_name("add_regs"), None);
    let masked = X86Inst::new(Mnemonic::Vpaddd)
        .with_mask(false)
        .with_bound_implicit();
    assert_eq!(t().decode(masked.id()), None);
    // The wrong operand count is an error, not a panic.
    assert!(try_facts(DECLS, "idiv_regs %a, %b").is_err());
    assert!(try_facts(DECLS, "idiv_regs %a, %b, %i, %p").is_err());
}

#[test]
fn setcc_and_extensions() {
    assert_eq!(ops("sete %c"), vec![op(GM, W, 1)]);
    assert_eq!(ops("setne %a.b"), vec![op(GM, PW, 1)]);
    assert_eq!(ops("sete byte [%p]"), vec![op(MEM, W, 1)]);
    assert_eq!(ops("movzx %a, %c"), vec![op(GP, W, 8), op(GM, R, 1)]);
    assert_eq!(ops("movzx %d, %w"), vec![op(GP, W, 4), op(GM, R, 2)]);
    assert_eq!(ops("movsx %a, %w"), vec![op(GP, W, 8), op(GM, R, 2)]);
    assert_eq!(
        ops("movsx %d, byte [%p]"),
        vec![op(GP, W, 4), op(MEM, R, 1)]
    );
    assert_eq!(ops("movsxd %a, %d"), vec![op(GP, W, 8), op(GM, R, 4)]);
    // A high byte: no REX, so the destination is one of the first eight.
    assert_eq!(
        ops("movzx %d, %a.h"),
        vec![
            with_allowed(op(GP, W, 4), 0xFF),
            with_allowed(op(GP, R, 1), 0xF)
        ]
    );
    // ... and movzx r64 (REX.W) cannot take one.
    assert!(try_facts(DECLS, "movzx %a, %b.h").is_err());
}

#[test]
fn lea_and_memory() {
    assert_eq!(
        ops("lea %a, [%p + %i*8 + 16]"),
        vec![op(GP, W, 8), op(MEM, NONE, 0)]
    );
    assert_eq!(ops("lea %d, [%p]"), vec![op(GP, W, 4), op(MEM, NONE, 0)]);
}

#[test]
fn control_flow() {
    let f = facts(DECLS, "jne .l");
    assert_eq!(f.flow, Flow::CondBranch);
    assert_eq!(f.ops.to_vec(), vec![op(KindSet::LABEL, R, 0)]);
    assert_eq!(facts(DECLS, "jmp .l").flow, Flow::Jump);
    let f = facts(DECLS, "jmp %a");
    assert_eq!(f.flow, Flow::IndirectJump);
    assert_eq!(f.ops.to_vec(), vec![op(GM, R, 8)]);
    assert_eq!(facts(DECLS, "jmp qword [%p]").flow, Flow::IndirectJump);
    assert_eq!(facts(DECLS, "jmp 0x401000").flow, Flow::Return);
    let f = facts(DECLS, "call %a");
    assert_eq!(f.flow, Flow::Call);
    assert!(f.implicit.is_empty(), "rsp is not reported");
    assert_eq!(facts(DECLS, "call .l").flow, Flow::Call);
    assert_eq!(facts(DECLS, "@ret").flow, Flow::Return);
    assert_eq!(facts(DECLS, "@ret 16").flow, Flow::Return);
    assert_eq!(facts(DECLS, "ud2").flow, Flow::Return);
    assert_eq!(facts(DECLS, "jrcxz .l").flow, Flow::CondBranch);
    let f = facts(DECLS, "loop .l");
    assert_eq!(f.flow, Flow::CondBranch);
    assert_eq!(f.implicit.to_vec(), vec![imp(RCX, RW)]);
    assert_eq!(
        t().inst_flow(t().inst(Mnemonic::Jmp), Some(&OpShape::Label)),
        Flow::Jump
    );
    assert_eq!(t().inst_flow(t().inst(Mnemonic::Add), None), Flow::Normal);
}

#[test]
fn push_and_pop() {
    let f = facts(DECLS, "push %a");
    assert_eq!(f.ops.to_vec(), vec![op(GM, R, 8)]);
    assert!(f.implicit.is_empty());
    assert_eq!(ops("push 1"), vec![imm()]);
    let f = facts(DECLS, "pop %a");
    assert_eq!(f.ops.to_vec(), vec![op(GM, W, 8)]);
    assert!(f.implicit.is_empty());
}

#[test]
fn sse_scalars_and_vectors() {
    let x16 = 0xFFFF;
    // f64 values: movsd between registers writes the whole value.
    assert_eq!(
        ops("movsd %x, %y"),
        vec![
            with_allowed(op(VM, W, 8), x16),
            with_allowed(op(VM, R, 8), x16)
        ]
    );
    assert_eq!(
        ops("movsd %x, qword [%p]"),
        vec![with_allowed(op(VEC, W, 8), x16), op(MEM, R, 8)]
    );
    // A 128-bit value keeps its upper half: partial write.
    assert_eq!(
        ops("movsd %v, %x"),
        vec![
            with_allowed(op(VM, PW, 16), x16),
            with_allowed(op(VM, R, 8), x16)
        ]
    );
    assert_eq!(
        ops("movsd qword [%p], %x"),
        vec![op(MEM, W, 8), with_allowed(op(VEC, R, 8), x16)]
    );
    assert_eq!(
        ops("addsd %x, %y"),
        vec![
            with_allowed(op(VEC, RW, 8), x16),
            with_allowed(op(VM, R, 8), x16)
        ]
    );
    assert_eq!(
        ops("sqrtsd %v, %x"),
        vec![
            with_allowed(op(VEC, PW, 16), x16),
            with_allowed(op(VM, R, 8), x16)
        ]
    );
    assert_eq!(
        ops("cvtsi2sd %x, %a"),
        vec![with_allowed(op(VEC, W, 8), x16), op(GM, R, 8)]
    );
    assert_eq!(
        ops("addss %s, dword [%p]"),
        vec![with_allowed(op(VEC, RW, 4), x16), op(MEM, R, 4)]
    );
    assert_eq!(
        ops("movaps %v, %u"),
        vec![
            with_allowed(op(VM, W, 16), x16),
            with_allowed(op(VM, R, 16), x16)
        ]
    );
    // A legacy-SSE write to the low 128 bits of a 256-bit value keeps the rest.
    assert_eq!(
        ops("movaps %yv.x, %u"),
        vec![
            with_allowed(op(VM, PW, 16), x16),
            with_allowed(op(VM, R, 16), x16)
        ]
    );
    assert_eq!(
        ops("pxor %v, %v"),
        vec![
            with_allowed(op(VEC, W, 16), x16),
            with_allowed(op(VM, NONE, 16), x16)
        ]
    );
    assert_eq!(
        ops("pxor %v, %u"),
        vec![
            with_allowed(op(VEC, RW, 16), x16),
            with_allowed(op(VM, R, 16), x16)
        ]
    );
    assert_eq!(
        ops("movq %x, %a"),
        vec![with_allowed(op(VEC, W, 8), x16), op(GM, R, 8)]
    );
    assert_eq!(
        ops("movq %a, %x"),
        vec![op(GM, W, 8), with_allowed(op(VEC, R, 8), x16)]
    );
}

#[test]
fn avx_and_avx512() {
    let x16 = 0xFFFF;
    // VEX forms first: registers 0..15.
    assert_eq!(
        ops("vaddps %v, %u, %v"),
        vec![
            with_allowed(op(VEC, W, 16), x16),
            with_allowed(op(VEC, R, 16), x16),
            with_allowed(op(VM, R, 16), x16)
        ]
    );
    assert_eq!(
        ops("vaddps %yv, %yu, ymmword [%p]"),
        vec![
            with_allowed(op(VEC, W, 32), x16),
            with_allowed(op(VEC, R, 32), x16),
            op(MEM, R, 32)
        ]
    );
    // zmm: EVEX only, all 32 registers.
    assert_eq!(
        ops("vaddps %z, %z2, %z"),
        vec![op(VEC, W, 64), op(VEC, R, 64), op(VM, R, 64)]
    );
    // A VEX write to the low part zeroes the upper bits: a full write.
    assert_eq!(
        ops("vaddps %yv.x, %u, %v")[0],
        with_allowed(op(VEC, W, 16), x16)
    );
    // VEX-only (vpxor has no EVEX form), and its zeroing idiom.
    assert_eq!(
        ops("vpxor %yv, %yu, %yv"),
        vec![
            with_allowed(op(VEC, W, 32), x16),
            with_allowed(op(VEC, R, 32), x16),
            with_allowed(op(VM, R, 32), x16)
        ]
    );
    assert_eq!(
        ops("vpxor %yv, %yu, %yu"),
        vec![
            with_allowed(op(VEC, W, 32), x16),
            with_allowed(op(VEC, NONE, 32), x16),
            with_allowed(op(VM, NONE, 32), x16)
        ]
    );
    assert_eq!(
        ops("vfmadd231ps %v, %u, %v"),
        vec![
            with_allowed(op(VEC, RW, 16), x16),
            with_allowed(op(VEC, R, 16), x16),
            with_allowed(op(VM, R, 16), x16)
        ]
    );
    // Write masks: merging is a partial write, zeroing a full one; k1..k7.
    let mask = with_allowed(op(KindSet::MASK, R, 8), 0xFE);
    assert_eq!(
        ops("vaddps_k %z, %z2, %z, %k"),
        vec![op(VEC, PW, 64), op(VEC, R, 64), op(VM, R, 64), mask]
    );
    assert_eq!(
        ops("vaddps_kz %z, %z2, %z, %k"),
        vec![op(VEC, W, 64), op(VEC, R, 64), op(VM, R, 64), mask]
    );
    // Masked xmm operations use EVEX: all 32 registers.
    assert_eq!(ops("vaddps_k %v, %u, %v, %k")[0], op(VEC, PW, 16));
    assert!(try_facts(DECLS, "vaddps_k %z, %z2, %z").is_err());
    // vpternlogd: 0xFF ignores every input.
    assert_eq!(
        ops("vpternlogd %z, %z, %z, 0xFF"),
        vec![op(VEC, W, 64), op(VEC, NONE, 64), op(VM, NONE, 64), imm()]
    );
    assert_eq!(
        ops("vpternlogd %z, %z2, %z, 0x96"),
        vec![op(VEC, RW, 64), op(VEC, R, 64), op(VM, R, 64), imm()]
    );
    // kmovw.
    assert_eq!(
        ops("kmovw %k, %d"),
        vec![op(KindSet::MASK, W, 8), op(GP, R, 4)]
    );
    assert_eq!(
        ops("kmovw %k, %k2"),
        vec![
            op(KindSet::MASK.or(KindSet::MEM), W, 8),
            op(KindSet::MASK.or(KindSet::MEM), R, 8)
        ]
    );
    assert_eq!(
        ops("kmovw %d, %k"),
        vec![op(GP, W, 4), op(KindSet::MASK, R, 8)]
    );
    // blendvps reads xmm0 implicitly.
    let f = facts(DECLS, "blendvps %v, %u");
    assert_eq!(f.implicit.to_vec(), vec![imp(PReg::vec(0), R)]);
    // vzeroall clobbers; vzeroupper reports nothing.
    assert_eq!(
        facts(DECLS, "vzeroall").clobbers.class_mask(RegClass::VEC),
        0xFFFF
    );
    let f = facts(DECLS, "vzeroupper");
    assert!(f.implicit.is_empty() && f.clobbers.is_empty());
}

#[test]
fn string_instructions_and_prefixes() {
    let f = facts(DECLS, "rep_movsb");
    assert!(f.ops.is_empty());
    assert_eq!(
        f.implicit.to_vec(),
        vec![imp(RDI, RW), imp(RSI, RW), imp(RCX, RW)]
    );
    let f = facts(DECLS, "movsb");
    assert_eq!(f.implicit.to_vec(), vec![imp(RDI, RW), imp(RSI, RW)]);
    let f = facts(DECLS, "rep_stosb %c");
    assert_eq!(f.ops.to_vec(), vec![with_fixed(op(GP, R, 1), RAX)]);
    assert_eq!(f.implicit.to_vec(), vec![imp(RDI, RW), imp(RCX, RW)]);
    let f = facts(DECLS, "repne_scasb al");
    assert!(f.implicit.contains(&imp(RCX, RW)));
    assert_eq!(
        ops("lock_add qword [%p], %a"),
        vec![op(MEM, RW, 8), op(GP, R, 8)]
    );
    // No `rep add`, no `lock mov`.
    assert_eq!(t().inst_by_name("rep_add"), None);
    assert_eq!(t().inst_by_name("lock_mov"), None);
    let x = X86Inst::new(Mnemonic::Movsb).with_prefix(Prefix::Rep);
    assert_eq!(t().decode(x.id()), Some(x));
}

#[test]
fn errors_not_panics() {
    assert_eq!(
        try_facts(DECLS, "mov %a"),
        Err(FactsError::OperandCount {
            expected: 2,
            found: 1
        })
    );
    assert!(matches!(
        try_facts(DECLS, "mov %a, %v"),
        Err(FactsError::OperandKind { index: 1, .. })
    ));
    assert!(matches!(
        try_facts(DECLS, "add %a, %d"),
        Err(FactsError::OperandKind { index: 1, .. })
    ));
    assert!(matches!(
        try_facts(DECLS, "shl %a, 300"),
        Err(FactsError::OperandKind { index: 1, .. })
    ));
    // Two memory operands.
    assert!(try_facts(DECLS, "mov qword [%p], qword [%i]").is_err());
    // Memory of the wrong size.
    assert!(try_facts(DECLS, "add %a, dword [%p]").is_err());
    let mut out = InstFacts::default();
    assert_eq!(
        t().inst_facts(TargetInst(u32::MAX), &[], &mut out),
        Err(FactsError::UnknownInst(TargetInst(u32::MAX)))
    );
    // 64-bit-only forms are rejected by the 32-bit target.
    let t32 = X86Target::x86();
    let q = OpShape::Reg {
        class: RegClass::GP,
        size: 8,
        high: false,
        id: Reg::Phys(PReg::gp(0), View::Q64),
    };
    assert!(
        t32.inst_facts(t32.inst(Mnemonic::Add), &[q, q], &mut out)
            .is_err()
    );
    assert_eq!(t32.inst_by_name("movsxd"), None);
    assert!(t32.inst_by_name("aaa").is_some());
    assert_eq!(t().inst_by_name("aaa"), None);
}

#[test]
fn x86_32_registers_are_eight() {
    let t32 = X86Target::x86();
    let src = "func f(i32, i32) -> (i32) cdecl {
  gp32 %a, %b
  vec128 %v
  gp8 %c
  entry %a, %b
  add %a, %b
  mov %c, %a.b
  pxor %v, %v
  ret %a
}";
    let f = parse_function(src, t32).unwrap();
    verify(&f, t32).unwrap();
    let mut out = InstFacts::default();
    let i = f.insts().nth(2).unwrap();
    f.inst_facts(t32, i, &mut out).unwrap();
    assert_eq!(
        out.ops.to_vec(),
        vec![
            with_allowed(op(GM, W, 1), 0xF),
            with_allowed(op(GM, R, 1), 0xF)
        ]
    );
    f.inst_facts(t32, f.insts().nth(1).unwrap(), &mut out)
        .unwrap();
    assert_eq!(out.ops[0].allowed, 0xFF);
    f.inst_facts(t32, f.insts().nth(3).unwrap(), &mut out)
        .unwrap();
    assert_eq!(out.ops[0].allowed, 0xFF);
    assert_eq!(t32.reg_count(RegClass::GP), 8);
    assert_eq!(t32.reg_name(PReg::gp(0), View::Q64), None);
    assert_eq!(t32.reg_by_name("r8d"), None);
    assert_eq!(t32.pointer_size(), 4);
}

#[test]
fn register_names_agree() {
    let t = t();
    let mut n = 0;
    for (class, count) in [
        (RegClass::GP, 16),
        (RegClass::VEC, 32),
        (RegClass::MASK, 8),
        (RegClass::X87, 8),
    ] {
        assert_eq!(t.reg_count(class), count);
        for hw in 0..count {
            for v in [
                View::FULL,
                View::B8,
                View::H8,
                View::W16,
                View::D32,
                View::Q64,
                View::X128,
                View::Y256,
                View::Z512,
            ] {
                let p = PReg::new(class, hw);
                if let Some(name) = t.reg_name(p, v) {
                    assert_eq!(t.reg_by_name(name), Some((p, v)), "{name}");
                    n += 1;
                }
            }
        }
    }
    // 16 * 4 + 4 high bytes, 32 * 3 vectors, 8 masks, 8 x87.
    assert_eq!(n, 68 + 96 + 16);
    assert_eq!(t.reg_by_name("rax"), Some((RAX, View::Q64)));
    assert_eq!(t.reg_by_name("ah"), Some((RAX, View::H8)));
    assert_eq!(t.reg_by_name("r9d"), Some((PReg::gp(9), View::D32)));
    assert_eq!(t.reg_by_name("sil"), Some((RSI, View::B8)));
    assert_eq!(t.reg_by_name("zmm31"), Some((PReg::vec(31), View::Z512)));
    assert_eq!(t.reg_by_name("k7"), Some((PReg::mask(7), View::FULL)));
    assert_eq!(
        t.reg_by_name("st0"),
        Some((PReg::new(RegClass::X87, 0), View::FULL))
    );
    assert_eq!(t.reg_by_name("RAX"), None);
    assert_eq!(t.reg_by_name("cr0"), None);
    // The same names as the IR's mock.
    let m = MockX86::new();
    for class in [RegClass::GP, RegClass::VEC, RegClass::MASK, RegClass::X87] {
        for hw in 0..t.reg_count(class) {
            for v in [
                View::B8,
                View::H8,
                View::W16,
                View::D32,
                View::Q64,
                View::X128,
                View::Y256,
                View::Z512,
                View::FULL,
            ] {
                let p = PReg::new(class, hw);
                assert_eq!(t.reg_name(p, v), m.reg_name(p, v), "{p:?} {v:?}");
            }
        }
    }
}

#[test]
fn instruction_names() {
    let t = t();
    assert_eq!(
        t.inst_by_name("add"),
        Some(TargetInst(Mnemonic::Add as u32))
    );
    assert_eq!(t.inst_name(TargetInst(Mnemonic::Add as u32)), Some("add"));
    assert_eq!(t.inst_by_name("nosuch"), None);
    // Every valid name prints and parses back.
    for &m in Mnemonic::ALL.iter() {
        for x in [
            X86Inst::new(m),
            X86Inst::new(m).with_prefix(Prefix::Rep),
            X86Inst::new(m).with_prefix(Prefix::Repne),
            X86Inst::new(m).with_prefix(Prefix::Lock),
            X86Inst::new(m).with_mask(false),
            X86Inst::new(m).with_mask(true),
        ] {
            match t.inst_name(x.id()) {
                Some(name) => assert_eq!(t.inst_by_name(name), Some(x.id()), "{name}"),
                None => assert!(!t.is_valid(x.id())),
            }
        }
    }
}

#[test]
fn calling_conventions() {
    let t = t();
    for (i, name) in [
        "sysv64",
        "win64",
        "vectorcall64",
        "cdecl",
        "stdcall",
        "fastcall",
        "vectorcall",
    ]
    .iter()
    .enumerate()
    {
        let id = CallConvId(i as u16);
        assert_eq!(t.call_conv_by_name(name), Some(id));
        assert_eq!(t.call_conv(id).map(|c| c.name.as_str()), Some(*name));
    }
    assert_eq!(
        t.call_conv(X86Target::SYSV64),
        Some(&abi::CallConv::sysv64())
    );
    assert_eq!(t.call_conv(X86Target::WIN64), Some(&abi::CallConv::win64()));
    assert_eq!(
        t.call_conv(X86Target::STDCALL),
        Some(&abi::CallConv::stdcall())
    );
    assert_eq!(t.call_conv(CallConvId(7)), None);
    assert_eq!(t.stack_pointer(), PReg::gp(4));
}

/// Functions of the IR's docs and tests, written against `MockX86`.
const IR_FUNCTIONS: &[&str] = &[
    "func sum_array(i64, i64) -> (i64) sysv64 {
  gp64 %p, %n, %sum, %i
  labels .loop, .done
  entry %p, %n
  xor %sum, %sum
  xor %i, %i
  test %n, %n
  je .done
.loop:
  add %sum, qword [%p + %i*8]
  add %i, 1
  cmp %i, %n
  jne .loop
.done:
  ret %sum
}
",
    "func caller(i64, f64) -> (f64) sysv64 {
  gp64 %n
  vec64 %x, %y, %r
  labels .scale
  sig sig0 = (i64, f64, i32, f64) -> (f64) sysv64
  entry %n, %x
  movsd %y, %x
  addsd %y, %x
  invoke sig0, .scale, (%n, %x, 3, %y) -> (%r)
  ret %r
}
",
    "func scale(i64, f64, i32, f64) -> (f64) sysv64 {
  gp64 %a
  gp32 %k
  vec64 %b, %c, %t
  entry %a, %b, %k, %c
  cvtsi2sd %t, %a
  mulsd %t, %b
  addsd %t, %c
  ret %t
}
",
    "func pick(i64) -> (i64) sysv64 {
  gp64 %i, %t, %r
  labels .zero, .one, .two, .other
  jumptable jt0 = [.zero, .one, .two]
  entry %i
  cmp %i, 2
  jg .other
  lea %t, [jt0]
  jumpind qword [%t + %i*8], jt0
.zero:
  mov %r, 10
  jump .other
.one:
  mov %r, 20
  ret %r
.two:
  mov %r, 30
  ret %r
.other:
  mov %r, -1
  ret %r
}
",
    "func f(i64) -> (i64) sysv64 {
  gp64 %n, %s, %i
  gp8 %c
  entry %n
  xor %s, %s
  xor %i, %i
  sete %c
.l:
  add %s, %i
  add %i, 1
  cmp %i, %n
  jne .l
  ret %s
}
",
    "func f(i64) -> () sysv64 {
  gp64 %a
  entry %a
  cmp %a, 0
  je .else
  add %a, 1
  jump .join
.else:
  sub %a, 1
.join:
.join2:
  ret
}
",
    "func f(i64) -> () sysv64 {
  gp64 %n, %i, %j
  entry %n
  mov %i, 0
.outer:
  mov %j, 0
.inner:
  add %j, 1
  cmp %j, %n
  jne .inner
  add %i, 1
  cmp %i, %n
  jne .outer
  ret
}
",
    "func f(i64, f64) -> (f64) sysv64 {
  gp64 %a
  vec64 %d, %r
  sig sig0 = (i64, i64, f64, i32, i64, i64, i64, i64) -> (f64) sysv64
  entry %a, %d
  invoke sig0, 0x401000, (%a, %a, %d, 7, %a, %a, %a, %a) -> (%r)
  ret %r
}
",
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
}
",
    "func f(i32, i32, f64) -> (i32) stdcall {
  gp32 %a, %b
  vec64 %c
  entry %a, %b, %c
  add %a, %b
  ret %a
}
",
    "func f() -> (i64) sysv64 {
  gp64 %ctx, %r
  pin %ctx, r15
  entry
  mov %r, qword [%ctx + 8]
  ret %r
}
",
    "func f(i64, i64) -> (i64) sysv64 {
  gp64 %a, %b, %q
  gp8 %c
  entry %a, %b
  mov %c, %b.b
  shl %a, %c
  mov %q, %a
  cqo
  idiv %b
  sete %c
  movzx %q, %c
  ret %q
}
",
];

#[test]
fn ir_functions_parse_verify_and_lower_as_with_the_mock() {
    let t = t();
    let mock = MockX86::new();
    for src in IR_FUNCTIONS {
        let mut f = parse_function(src, t).unwrap_or_else(|e| panic!("{src}\n{e}"));
        verify(&f, t).unwrap_or_else(|e| panic!("{src}\n{e:?}"));
        let mut g = parse_function(src, &mock).unwrap();
        verify(&g, &mock).unwrap();
        // Prints as with the mock, and parses back equal.
        let printed = print_function(&f, t);
        assert_eq!(printed, print_function(&g, &mock));
        assert_eq!(parse_function(&printed, t).unwrap(), f);
        // Same CFG as with the mock.
        let (cf, cg) = (Cfg::of(&f, t), Cfg::of(&g, &mock));
        assert_eq!(cf.num_blocks(), cg.num_blocks(), "{src}");
        for b in cf.blocks() {
            assert_eq!(cf.succs(b), cg.succs(b), "{src}");
            assert_eq!(cf.loop_depth(b), cg.loop_depth(b), "{src}");
        }
        // Same lowering.
        lower(&mut f, t).unwrap();
        lower(&mut g, &mock).unwrap();
        verify(&f, t).unwrap_or_else(|e| panic!("{src}\n{e:?}"));
        let printed = print_function(&f, t);
        assert_eq!(printed, print_function(&g, &mock));
        assert_eq!(parse_function(&printed, t).unwrap(), f);
    }
    // The module of the IR docs, with a call between the functions.
    let m = parse_module(&format!("{}\n{}", IR_FUNCTIONS[1], IR_FUNCTIONS[2]), t).unwrap();
    assert_eq!(m.len(), 2);
}

#[test]
fn verifier_errors_as_with_the_mock() {
    let t = t();
    let src = "func f() -> () sysv64 {
  gp64 %a
  vec128 %x
  entry
  mov %a
  mov %a, %x
  copy .l, %a
.l:
  ret
}";
    let f = parse_function(src, t).unwrap();
    let e = verify(&f, t).unwrap_err();
    assert_eq!(e.len(), 3, "{e:?}");
    let src = "func f(i64) -> (i64) sysv64 {
  gp64 %a, %b
  entry %a
  cmp %a, 0
  je .skip
  mov %b, 1
.skip:
  add %a, %b
  ret %a
}";
    let f = parse_function(src, t).unwrap();
    let e = verify(&f, t).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
}

/// Facts whose access the allocator sees the same way as the mock's
/// (reads and writes), operand by operand, for the IR functions.
#[test]
fn accesses_agree_with_the_mock_on_ir_functions() {
    let t = t();
    let mock = MockX86::new();
    for src in IR_FUNCTIONS {
        let f = parse_function(src, t).unwrap();
        let g = parse_function(src, &mock).unwrap();
        let (mut a, mut b) = (InstFacts::default(), InstFacts::default());
        for i in f.insts() {
            f.inst_facts(t, i, &mut a).unwrap();
            g.inst_facts(&mock, i, &mut b).unwrap();
            assert_eq!(a.ops.len(), b.ops.len());
            assert_eq!(a.flow, b.flow);
            assert_eq!(a.implicit, b.implicit, "{src} {i}");
            for (x, y) in a.ops.iter().zip(&b.ops) {
                // The mock treats writes of whole 8-bit registers and of
                // f64 values by movsd/cvtsi2sd as partial; the database
                // knows they are whole.
                let relaxed = |acc: Access| if acc == PW { W } else { acc };
                assert_eq!(relaxed(x.access), relaxed(y.access), "{src} {i}");
                assert_eq!(x.fixed, y.fixed);
                assert_eq!(x.size, y.size);
            }
        }
    }
}

fn shape_strategy() -> impl Strategy<Value = OpShape> {
    let reg = (
        0u8..5,
        prop::sample::select(vec![0u16, 1, 2, 3, 4, 8, 16, 32, 64, 128]),
        any::<bool>(),
        0u8..40,
        any::<bool>(),
    )
        .prop_map(|(class, size, high, hw, phys)| {
            let view = if high {
                View::H8
            } else {
                View::low(size).unwrap_or(View::FULL)
            };
            let id = if phys {
                Reg::Phys(PReg::new(RegClass(class), hw), view)
            } else {
                Reg::Virt(VReg::from_u32(hw as u32 % 3), view)
            };
            OpShape::Reg {
                class: RegClass(class),
                size,
                high,
                id,
            }
        });
    prop_oneof![
        reg,
        prop::sample::select(vec![0u16, 1, 2, 4, 6, 8, 10, 16, 32, 64])
            .prop_map(|size| OpShape::Mem { size }),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(255),
            Just(0x1_0000_0000),
            any::<i64>()
        ]
        .prop_map(OpShape::Imm),
        Just(OpShape::Label),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn no_input_panics(
        m in 0u32..(Mnemonic::COUNT as u32 + 4),
        deco in 0u32..16,
        shapes in prop::collection::vec(shape_strategy(), 0..7),
    ) {
        let id = TargetInst(m | (deco << 16));
        for t in [X86Target::x64(), X86Target::x86()] {
            let mut out = InstFacts::default();
            if t.inst_facts(id, &shapes, &mut out).is_ok() {
                prop_assert_eq!(out.ops.len(), shapes.len());
                prop_assert_eq!(t.inst_flow(id, shapes.first()), out.flow);
                for (f, s) in out.ops.iter().zip(&shapes) {
                    prop_assert!(f.kinds.contains(s.kind()));
                    if let Some(p) = f.fixed {
                        let same_class = matches!(s, OpShape::Reg { class, .. } if *class == p.class);
                        prop_assert!(same_class);
                    }
                }
                prop_assert!(t.inst_name(id).is_some());
            }
            let _ = t.inst_name(id);
        }
    }

    #[test]
    fn valid_shapes_of_add_and_vaddps(
        size in prop::sample::select(vec![1u16, 2, 4, 8]),
        v in any::<i32>(),
    ) {
        let t = X86Target::x64();
        let r = OpShape::Reg { class: RegClass::GP, size, high: false, id: Reg::v(VReg::from_u32(0)) };
        let mut out = InstFacts::default();
        t.inst_facts(t.inst(Mnemonic::Add), &[r, OpShape::Imm(v as i64 & 0x7f)], &mut out).unwrap();
        prop_assert_eq!(out.ops[0].access, Access::ReadWrite);
        prop_assert!(out.ops[0].mem_ok());
    }
}

/// Prints the cost of `inst_facts` on the instructions of the IR functions
/// (no assertion): `cargo test -p jitforge --release --test x86_target facts_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn facts_cost() {
    let t = t();
    let fs: Vec<Function> = IR_FUNCTIONS
        .iter()
        .map(|s| parse_function(s, t).unwrap())
        .collect();
    let mut out = InstFacts::default();
    let mut n = 0u64;
    let mut start = std::time::Instant::now();
    for round in 0..4000 {
        if round == 2000 {
            // The first half warms the caches up.
            start = std::time::Instant::now();
            n = 0;
        }
        for f in &fs {
            for i in f.insts() {
                if matches!(f.kind(i), InstKind::Target(_)) {
                    f.inst_facts(t, i, &mut out).unwrap();
                    n += 1;
                }
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("inst_facts: {ns:.0} ns per target instruction ({n} calls)");
    // The same through the IR's mock, for scale.
    let mock = MockX86::new();
    let fs: Vec<Function> = IR_FUNCTIONS
        .iter()
        .map(|s| parse_function(s, &mock).unwrap())
        .collect();
    let start = std::time::Instant::now();
    for _ in 0..2000 {
        for f in &fs {
            for i in f.insts() {
                if matches!(f.kind(i), InstKind::Target(_)) {
                    f.inst_facts(&mock, i, &mut out).unwrap();
                }
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("mock inst_facts: {ns:.0} ns per target instruction");
}

/// A loop of `inst_facts` calls for profiling (`FACTS_LOOP_MOCK=1` for the
/// mock): `perf stat` on
/// `cargo test -p jitforge --release --test x86_target facts_loop -- --ignored`.
#[test]
#[ignore]
fn facts_loop() {
    let mock = MockX86::new();
    let target: &dyn Target = if std::env::var_os("FACTS_LOOP_MOCK").is_some() {
        &mock
    } else {
        t()
    };
    let fs: Vec<Function> = IR_FUNCTIONS
        .iter()
        .map(|s| parse_function(s, target).unwrap())
        .collect();
    let mut out = InstFacts::default();
    for _ in 0..50_000 {
        for f in &fs {
            for i in f.insts() {
                if matches!(f.kind(i), InstKind::Target(_)) {
                    f.inst_facts(target, i, &mut out).unwrap();
                }
            }
        }
    }
}

#[test]
fn x86_32_functions_lower() {
    let t32 = X86Target::x86();
    for src in [
        "func f(i32, i32, f64) -> (i32) stdcall {
  gp32 %a, %b
  vec64 %c
  entry %a, %b, %c
  add %a, %b
  ret %a
}
",
        "func g(i32, i32) -> (i32) fastcall {
  gp32 %a, %b, %q
  entry %a, %b
  mov %q, %a
  cdq
  idiv %b
  shl %q, %b.b
  ret %q
}
",
        "func h(f64) -> (f64) cdecl {
  vec64 %x
  entry %x
  addsd %x, %x
  ret %x
}
",
    ] {
        let mut f = parse_function(src, t32).unwrap_or_else(|e| panic!("{src}\n{e}"));
        verify(&f, t32).unwrap_or_else(|e| panic!("{src}\n{e:?}"));
        lower(&mut f, t32).unwrap();
        verify(&f, t32).unwrap_or_else(|e| panic!("{src}\n{e:?}"));
        let printed = print_function(&f, t32);
        assert_eq!(parse_function(&printed, t32).unwrap(), f, "{printed}");
        assert!(
            !printed.contains("rax") && !printed.contains('!'),
            "{printed}"
        );
    }
    let mut f = parse_function(
        "func f(i32, i32) -> (i32) fastcall {\n  gp32 %a, %b\n  entry %a, %b\n  add %a, %b\n  ret %a\n}",
        t32,
    )
    .unwrap();
    lower(&mut f, t32).unwrap();
    let printed = print_function(&f, t32);
    assert!(printed.contains("entry %a@ecx, %b@edx"), "{printed}");
    assert!(printed.contains("ret %a@eax"), "{printed}");
}

/// The shape of a concrete x86 operand, if the IR can express it.
fn shape_of(op: &jitforge::x86::Operand) -> Option<OpShape> {
    use jitforge::x86::{Operand as XOp, RegKind};
    Some(match *op {
        XOp::Reg(r) => {
            let (class, view) = match r.kind() {
                RegKind::Gp8 => (RegClass::GP, View::B8),
                RegKind::Gp8Hi => (RegClass::GP, View::H8),
                RegKind::Gp16 => (RegClass::GP, View::W16),
                RegKind::Gp32 => (RegClass::GP, View::D32),
                RegKind::Gp64 => (RegClass::GP, View::Q64),
                RegKind::Xmm => (RegClass::VEC, View::X128),
                RegKind::Ymm => (RegClass::VEC, View::Y256),
                RegKind::Zmm => (RegClass::VEC, View::Z512),
                RegKind::K => (RegClass::MASK, View::FULL),
                _ => return None,
            };
            OpShape::Reg {
                class,
                size: view.size().unwrap_or(0),
                high: view.is_high(),
                id: Reg::Phys(PReg::new(class, r.id()), view),
            }
        }
        XOp::Mem(m) => OpShape::Mem { size: m.size() },
        XOp::Imm(v) => OpShape::Imm(v),
        _ => return None,
    })
}

/// The encoder is the oracle: on physical operands, the target accepts
/// exactly what the Assembler encodes.
#[test]
fn accepts_what_the_encoder_encodes() {
    encoder_oracle(X86Target::x64(), jitforge::Arch::X64);
}

/// The same in 32-bit mode.
#[test]
fn accepts_what_the_encoder_encodes_32() {
    encoder_oracle(X86Target::x86(), jitforge::Arch::X86);
}

fn encoder_oracle(t: &X86Target, arch: jitforge::Arch) {
    use jitforge::CodeHolder;
    use jitforge::x86::{Operand as XOp, *};
    let regs: Vec<XOp> = vec![
        al.into(),
        ah.into(),
        cl.into(),
        sil.into(),
        r9b.into(),
        ax.into(),
        dx.into(),
        r10w.into(),
        eax.into(),
        ecx.into(),
        r11d.into(),
        rax.into(),
        rcx.into(),
        r12.into(),
        xmm0.into(),
        xmm9.into(),
        xmm17.into(),
        ymm1.into(),
        ymm20.into(),
        zmm2.into(),
        k1.into(),
        k2.into(),
    ];
    let m = |mem: Mem| -> XOp {
        if arch == jitforge::Arch::X64 {
            mem.into()
        } else {
            // The same size, based on eax.
            let base = ptr(eax);
            base.with_size(mem.size()).into()
        }
    };
    let mems: Vec<XOp> = vec![
        m(byte_ptr(rax)),
        m(word_ptr(rax)),
        m(dword_ptr(rax)),
        m(qword_ptr(rax)),
        m(xmmword_ptr(rax)),
        m(ymmword_ptr(rax)),
        m(zmmword_ptr(rax)),
        m(ptr(rax)),
    ];
    let imms: Vec<XOp> = [0i64, 1, 127, 200, 1000, 0x1234_5678, 1 << 40, -1]
        .iter()
        .map(|&v| XOp::Imm(v))
        .collect();
    let pool: Vec<XOp> = regs.iter().chain(&mems).chain(&imms).copied().collect();
    let two = [
        "add",
        "sub",
        "mov",
        "imul",
        "shl",
        "sar",
        "rol",
        "test",
        "cmp",
        "xor",
        "and",
        "adc",
        "sbb",
        "lea",
        "movzx",
        "movsx",
        "movsxd",
        "cmove",
        "xchg",
        "bt",
        "movsd",
        "movss",
        "addsd",
        "mulss",
        "sqrtsd",
        "movaps",
        "movups",
        "movq",
        "movd",
        "pxor",
        "paddd",
        "cvtsi2sd",
        "cvttsd2si",
        "kmovw",
        "kmovq",
        "knotw",
        "popcnt",
        "lzcnt",
        "crc32",
        "blendvps",
        "in",
        "out",
    ];
    let one = [
        "div", "idiv", "mul", "neg", "not", "inc", "sete", "push", "pop", "bswap", "jmp", "call",
    ];
    let three = [
        "imul",
        "vaddps",
        "vpxor",
        "vpaddd",
        "vfmadd231ps",
        "andn",
        "shlx",
        "bzhi",
        "vpermd",
        "vextracti128",
        "pshufd",
        "shufps",
        "kandw",
        "shld",
        "vcvtsi2sd",
    ];
    let mut code = CodeHolder::new(arch);
    let mut a = Assembler::new(&mut code);
    let mut out = InstFacts::default();
    let mut checked = 0;
    let mut check = |a: &mut Assembler<'_>, name: &str, ops: &[XOp]| {
        let Some(m) = Mnemonic::from_name(name) else {
            panic!("{name}")
        };
        if t.inst_by_name(name).is_none() {
            return;
        }
        let Some(shapes) = ops.iter().map(shape_of).collect::<Option<Vec<_>>>() else {
            return;
        };
        // The Compiler leaves APX forms out (no r16-r31 allocation yet).
        let enc = a.emit(m, ops).is_ok()
            && validate(arch, m, ops, InstOptions::NONE).is_ok_and(|f| !f.is_apx());
        let mine = t.inst_facts(t.inst(m), &shapes, &mut out).is_ok();
        assert_eq!(mine, enc, "{name} {ops:?}");
        checked += 1;
    };
    for name in one {
        for x in &pool {
            check(&mut a, name, &[*x]);
        }
    }
    for name in two {
        for x in &pool {
            for y in &pool {
                check(&mut a, name, &[*x, *y]);
            }
        }
    }
    // Three operands: a smaller pool (every class and size, both halves of
    // the vector file, the memory sizes of vector forms).
    let vpool: Vec<XOp> = vec![
        ah.into(),
        eax.into(),
        r11d.into(),
        rax.into(),
        r12.into(),
        xmm0.into(),
        xmm17.into(),
        ymm1.into(),
        ymm20.into(),
        zmm2.into(),
        k1.into(),
        mems[2],
        mems[3],
        mems[4],
        mems[5],
        mems[6],
        mems[7],
        XOp::Imm(1),
        XOp::Imm(200),
    ];
    for name in three {
        for x in &vpool {
            for y in &vpool {
                for z in &vpool {
                    check(&mut a, name, &[*x, *y, *z]);
                }
            }
        }
    }
    assert!(checked > 50_000, "{checked}");
}

/// Random functions over a menu of x86 instructions on virtual registers:
/// whatever verifies also lowers, verifies again and prints back equal.
fn gen_x86_function(seed: u64, len: usize) -> String {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    const MENU: &[&str] = &[
        "add {g}, {g}",
        "add {g}, {i}",
        "sub {g}, {g}",
        "mov {g}, {g}",
        "mov {g}, {i}",
        "mov {g}, qword [{g} + 8]",
        "mov qword [{g} + {g}*8], {g}",
        "shl {g}, {g}.b",
        "sar {g}, 3",
        "imul {g}, {g}, {i}",
        "imul {g}, {g}",
        "div {g}",
        "cqo",
        "sete {g}.b",
        "setne {c}",
        "movzx {g}, {g}.b",
        "movzx {g}, {c}",
        "mov {g}.h, {c}",
        "lea {g}, [{g} + {g}*8 + 16]",
        "cmp {g}, {g}",
        "test {g}, {i}",
        "xor {g}, {g}",
        "cmove {g}, {g}",
        "addsd {x}, {x}",
        "movsd {x}, {x}",
        "movsd {x}, qword [{g}]",
        "cvtsi2sd {x}, {g}",
        "pxor {v}, {v}",
        "movaps {v}, {v}",
        "vaddps {v}, {v}, {v}",
        "vaddps {z}, {z}, {z}",
        "vaddps_k {z}, {z}, {z}, {k}",
        "vpternlogd {z}, {z}, {z}, {i}",
        "kmovw {k}, {g}.d",
        "push {g}",
        "pop {g}",
        "rep_movsb",
        "jne {l}",
        "jmp {l}",
        "copy {g}, {g}",
        "copy {x}, {x}",
    ];
    let mut body = String::new();
    let mut bound = [false; 4];
    for _ in 0..len {
        if next() % 6 == 0 {
            let l = (next() % 4) as usize;
            if !bound[l] {
                bound[l] = true;
                body.push_str(&format!(".l{l}:\n"));
            }
            continue;
        }
        let mut line = MENU[(next() % MENU.len() as u64) as usize].to_string();
        for (pat, names) in [
            ("{g}", &["%a", "%b", "%p", "%q"][..]),
            ("{c}", &["%c"][..]),
            ("{x}", &["%x", "%y"][..]),
            ("{v}", &["%v", "%u"][..]),
            ("{z}", &["%z", "%z2"][..]),
            ("{k}", &["%k"][..]),
            ("{l}", &[".l0", ".l1", ".l2", ".l3"][..]),
            ("{i}", &["0", "1", "-1", "100", "0x7fffffff", "255"][..]),
        ] {
            while let Some(at) = line.find(pat) {
                let n = names[(next() % names.len() as u64) as usize];
                line.replace_range(at..at + pat.len(), n);
            }
        }
        body.push_str("  ");
        body.push_str(&line);
        body.push('\n');
    }
    format!(
        "func f(i64, i64, f64) -> (i64) sysv64 {{
  gp64 %a, %b, %p, %q
  gp8 %c
  vec64 %x, %y
  vec128 %v, %u
  vec512 %z, %z2
  mask16 %k
  labels .l0, .l1, .l2, .l3
  entry %a, %b, %x
  mov %p, %a
  mov %q, %b
  xor %c, %c
  movsd %y, %x
  pxor %v, %v
  pxor %u, %u
  vpxord %z, %z, %z
  vpxord %z2, %z2, %z2
  kxorw %k, %k, %k
{body}{tail}  ret %a
}}
",
        tail = (0..4)
            .filter(|&l| !bound[l])
            .map(|l| format!(".l{l}:\n"))
            .collect::<String>()
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_functions_verify_lower_and_round_trip(seed in any::<u64>(), len in 0usize..40) {
        let t = t();
        let src = gen_x86_function(seed, len);
        let mut f = parse_function(&src, t).map_err(|e| TestCaseError::fail(format!("{src}\n{e}")))?;
        if verify(&f, t).is_ok() {
            lower(&mut f, t).map_err(|e| TestCaseError::fail(format!("{src}\n{e}")))?;
            let v = verify(&f, t);
            prop_assert!(v.is_ok(), "{}\n{:?}", src, v);
        }
        let printed = print_function(&f, t);
        let cfg = Cfg::of(&f, t);
        prop_assert!(cfg.num_blocks() >= 1);
        prop_assert_eq!(parse_function(&printed, t).unwrap(), f);
    }
}

#[test]
fn generated_functions_mostly_verify() {
    let t = t();
    let mut ok = 0;
    for seed in 1..200u64 {
        let src = gen_x86_function(seed * 7919, 30);
        let f = parse_function(&src, t).unwrap();
        match verify(&f, t) {
            Ok(()) => ok += 1,
            Err(e) if seed < 4 => eprintln!("{src}\n{e:?}"),
            Err(_) => {}
        }
    }
    eprintln!("{ok} of 199 verify");
    assert!(ok > 100, "{ok}");
}

#[test]
fn avx512_target_opens_xmm16_to_31_where_evex_exists() {
    let t5 = X86Target::x64_avx512();
    let v = |size| OpShape::Reg {
        class: RegClass::VEC,
        size,
        high: false,
        id: Reg::v(VReg::from_u32(0)),
    };
    let mut out = InstFacts::default();
    let vaddps = t5.inst(Mnemonic::Vaddps);
    t5.inst_facts(vaddps, &[v(16), v(16), v(16)], &mut out)
        .unwrap();
    assert!(out.ops.iter().all(|f| f.allowed == u32::MAX), "{out:?}");
    // vpxor has no EVEX form; movaps is legacy SSE.
    t5.inst_facts(t5.inst(Mnemonic::Vpxor), &[v(32), v(32), v(32)], &mut out)
        .unwrap();
    assert!(out.ops.iter().all(|f| f.allowed == 0xFFFF), "{out:?}");
    t5.inst_facts(t5.inst(Mnemonic::Movaps), &[v(16), v(16)], &mut out)
        .unwrap();
    assert!(out.ops.iter().all(|f| f.allowed == 0xFFFF), "{out:?}");
    // The default target keeps AVX code in 0..15.
    t().inst_facts(vaddps, &[v(16), v(16), v(16)], &mut out)
        .unwrap();
    assert!(out.ops.iter().all(|f| f.allowed == 0xFFFF), "{out:?}");
    // A physical xmm17 takes the EVEX form in both.
    let x17 = OpShape::Reg {
        class: RegClass::VEC,
        size: 16,
        high: false,
        id: Reg::Phys(PReg::vec(17), View::X128),
    };
    let f = t().form_for(vaddps, &[x17, v(16), v(16)]).unwrap();
    assert_eq!(f.encoding(), jitforge::x86::db::Encoding::Evex);
    let f = t().form_for(vaddps, &[v(16), v(16), v(16)]).unwrap();
    assert_eq!(f.encoding(), jitforge::x86::db::Encoding::Vex);
}

#[test]
fn masked_instructions_need_a_real_mask() {
    assert!(try_facts(DECLS, "vaddps_k %z, %z2, %z, k0").is_err());
    assert!(try_facts(DECLS, "vaddps_k %z, %z2, %z, k1").is_ok());
    assert!(try_facts(DECLS, "vaddps_k %z, %z2, %z, %a").is_err());
    // Gathers require a mask in EVEX.
    let f = facts(DECLS, "vpgatherdd_k %z, [%p + %z2*4], %k");
    assert_eq!(f.ops[0].access, PW);
    assert_eq!(f.ops[2].access, RW);
}
