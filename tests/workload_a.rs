//! Every instruction of workload A (../shared/bench/WORKLOAD.md), through the
//! typed and the dynamic API: identical bytes, and iced-x86 decodes each to
//! the same instruction, operands and decorators. Also the whole workload's
//! byte count, which the spec gives for assemblers that pick the shortest forms.

mod common;

use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error};

/// Emits one block of workload A through the typed API (the library's
/// block, with a near forward jump as the Assembler emits it by default).
fn block_typed(a: &mut Assembler<'_>, l_fn: jitforge::Label, gp_only: bool) -> Result<(), Error> {
    let back = a.new_label();
    let fwd = a.new_label();
    a.bind(back)?;
    jitforge::workloads::workload_a_body(a, back, fwd, l_fn, gp_only, |a, l| a.jmp(l))?;
    a.bind(fwd)
}

/// The same block as (mnemonic, operands), for the dynamic API.
fn block_dynamic(
    back: jitforge::Label,
    fwd: jitforge::Label,
    l_fn: jitforge::Label,
) -> Vec<(Mnemonic, Vec<Operand>)> {
    use Mnemonic as M;
    let r = |x: Gp64| Operand::from(x);
    vec![
        (M::Mov, vec![r(rax), r(rbx)]),
        (M::Mov, vec![ecx.into(), 0x12345678.into()]),
        (M::Mov, vec![r(rdx), qword_ptr(rsi + rdi * 8 + 0x40).into()]),
        (M::Mov, vec![dword_ptr(rsp + 0x10).into(), r9d.into()]),
        (M::Add, vec![r(r10), r(r11)]),
        (M::Add, vec![r(rax), 0x7f.into()]),
        (M::Sub, vec![r(r12), 0x1000.into()]),
        (M::And, vec![r13d.into(), r14d.into()]),
        (M::Or, vec![qword_ptr(rbp - 8).into(), r(rax)]),
        (M::Xor, vec![eax.into(), eax.into()]),
        (M::Lea, vec![r(r8), ptr(rax + rcx * 4 + 0x100).into()]),
        (M::Imul, vec![r(r15), r(r14), 17.into()]),
        (M::Shl, vec![r(rdx), 3.into()]),
        (M::Sar, vec![r(r9), cl.into()]),
        (M::Cmp, vec![r(rsi), r(rdi)]),
        (M::Test, vec![al.into(), 1.into()]),
        (M::Cmovl, vec![r(rax), r(rcx)]),
        (M::Movzx, vec![eax.into(), byte_ptr(rdx + 1).into()]),
        (M::Movsxd, vec![r(r10), dword_ptr(r11).into()]),
        (M::Push, vec![r(rbx)]),
        (M::Pop, vec![r(rbx)]),
        (M::Inc, vec![qword_ptr(rax).into()]),
        (M::Neg, vec![r(r8)]),
        (M::Jne, vec![back.into()]),
        (M::Jmp, vec![fwd.into()]),
        (M::Movaps, vec![xmm0.into(), xmm1.into()]),
        (M::Addsd, vec![xmm2.into(), qword_ptr(rax + 8).into()]),
        (M::Pshufd, vec![xmm3.into(), xmm4.into(), 0x1b.into()]),
        (M::Vaddps, vec![ymm0.into(), ymm1.into(), ymm2.into()]),
        (
            M::Vmulpd,
            vec![ymm3.into(), ymm4.into(), ymmword_ptr(rdi + rcx * 8).into()],
        ),
        (M::Vfmadd231ps, vec![ymm5.into(), ymm6.into(), ymm7.into()]),
        (M::Vpxor, vec![xmm8.into(), xmm9.into(), xmm10.into()]),
        (
            M::Vmovdqu,
            vec![ymmword_ptr(rsp + 0x20).into(), ymm11.into()],
        ),
        (M::Vpermilps, vec![ymm12.into(), ymm13.into(), 0x4e.into()]),
        (
            M::Vaddps,
            vec![zmm0.k(k1).z().into(), zmm1.into(), zmm2.into()],
        ),
        (
            M::Vmovups,
            vec![zmm16.into(), zmmword_ptr(rax + 0x40).into()],
        ),
        (
            M::Vfmadd213pd,
            vec![zmm3.k(k2).into(), zmm4.into(), qword_ptr(rbx).bcst().into()],
        ),
        (
            M::Vpternlogd,
            vec![zmm5.into(), zmm6.into(), zmm31.into(), 0x96.into()],
        ),
        (M::Kmovw, vec![k1.into(), eax.into()]),
        (M::Call, vec![l_fn.into()]),
    ]
}

#[test]
fn each_instruction_decodes_to_itself() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l_fn = a.new_label();
    a.bind(l_fn)?;
    let back = a.new_label();
    let fwd = a.new_label();
    a.bind(back)?;
    let mut failures = Vec::new();
    for (mnemonic, ops) in block_dynamic(back, fwd, l_fn) {
        let start = a.offset();
        a.emit(mnemonic, &ops)?;
        let end = a.offset();
        let bytes = a.code().text()[start..end].to_vec();
        if mnemonic == Mnemonic::Jmp {
            continue; // forward: its displacement is filled in at bind
        }
        // Label operands are compared by mnemonic and operand count only.
        let result = common::decode_one(&bytes, 64)
            .and_then(|instr| common::compare(mnemonic, &ops, &instr, 64));
        if let Err(e) = result {
            failures.push(format!(
                "{}: {} ({e})",
                mnemonic.name(),
                common::hex(&bytes)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn typed_and_dynamic_apis_give_identical_bytes() -> Result<(), Error> {
    let mut typed = CodeHolder::new(Arch::X64);
    {
        let mut a = Assembler::new(&mut typed);
        let l_fn = a.new_label();
        a.bind(l_fn)?;
        for _ in 0..3 {
            block_typed(&mut a, l_fn, false)?;
        }
    }
    let mut dynamic = CodeHolder::new(Arch::X64);
    {
        let mut a = Assembler::new(&mut dynamic);
        let l_fn = a.new_label();
        a.bind(l_fn)?;
        for _ in 0..3 {
            let back = a.new_label();
            let fwd = a.new_label();
            a.bind(back)?;
            for (m, ops) in block_dynamic(back, fwd, l_fn) {
                a.emit(m, &ops)?;
            }
            a.bind(fwd)?;
        }
    }
    assert_eq!(typed.finalize()?, dynamic.finalize()?);
    Ok(())
}

/// The byte counts WORKLOAD.md gives for assemblers that relax forward jumps
/// are 167 per block (A.full) and 88 (A.gp); the Assembler emits forward jumps
/// as rel32 (relaxation is the Builder's job), so each block is 3 bytes longer.
#[test]
fn workload_byte_counts() -> Result<(), Error> {
    for (gp_only, per_block) in [(false, 167 + 3), (true, 88 + 3)] {
        let mut code = CodeHolder::new(Arch::X64);
        let mut a = Assembler::new(&mut code);
        let l_fn = a.new_label();
        a.bind(l_fn)?;
        for _ in 0..100 {
            block_typed(&mut a, l_fn, gp_only)?;
        }
        assert_eq!(code.finalize()?.len(), 100 * per_block, "gp_only={gp_only}");
    }
    Ok(())
}

/// With `short()` on the forward jump (a rel8 that reaches), A.full blocks are
/// exactly the 167 bytes the workload spec gives.
#[test]
fn short_forward_jumps_reach_the_spec_size() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l_fn = a.new_label();
    a.bind(l_fn)?;
    let back = a.new_label();
    let fwd = a.new_label();
    a.bind(back)?;
    for (m, ops) in block_dynamic(back, fwd, l_fn) {
        if m == Mnemonic::Jmp {
            a.short();
        }
        a.emit(m, &ops)?;
    }
    a.bind(fwd)?;
    assert_eq!(code.finalize()?.len(), 167);
    Ok(())
}

/// A megabyte of code through many buffer growths: every block's bytes in
/// place, and handing them over gives what the copying `finalize` gives.
#[test]
fn a_large_buffer_keeps_its_bytes_and_hands_them_over() -> Result<(), Error> {
    let (blocks, per_block) = (8_000, 167 + 3); // 1,360,000 bytes
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l_fn = a.new_label();
    a.bind(l_fn)?;
    for _ in 0..blocks {
        block_typed(&mut a, l_fn, false)?;
    }
    let copied = code.finalize()?;
    assert_eq!(copied.len(), blocks * per_block);
    // Every block is the same bytes but for the call back to `l_fn`.
    let first = &copied[..per_block - 4];
    let last = &copied[(blocks - 1) * per_block..blocks * per_block - 4];
    assert_eq!(first, last);
    let call = i32::from_le_bytes(copied[blocks * per_block - 4..].try_into().unwrap());
    assert_eq!(call, -((blocks * per_block) as i32));
    assert_eq!(code.take_code()?, copied);
    Ok(())
}
