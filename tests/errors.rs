//! Every failure of the Assembler and the CodeHolder is a specific error and
//! never wrong bytes: a label bound twice, a jump to a label never bound, a
//! short jump that does not reach, a displacement that does not fit, invalid
//! operands (and a failed emit leaves the buffer as it was).

use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error};

#[test]
fn label_bound_twice() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l = a.new_named_label("twice")?;
    a.bind(l)?;
    a.nop()?;
    assert_eq!(
        a.bind(l),
        Err(Error::LabelAlreadyBound {
            label: "twice".into()
        })
    );
    Ok(())
}

#[test]
fn duplicate_label_name() {
    let mut code = CodeHolder::new(Arch::X64);
    code.new_named_label("x").expect("first");
    assert_eq!(
        code.new_named_label("x"),
        Err(Error::DuplicateLabelName { name: "x".into() })
    );
}

#[test]
fn jump_to_unbound_label() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l = a.new_named_label("nowhere")?;
    a.jmp(l)?;
    assert_eq!(code.unresolved_count(), 1);
    assert_eq!(
        code.finalize(),
        Err(Error::UnboundLabel {
            label: "nowhere".into()
        })
    );
    let runtime = jitforge::JitRuntime::new()?;
    assert!(matches!(
        runtime.add(&code),
        Err(Error::UnboundLabel { .. })
    ));
    Ok(())
}

#[test]
fn short_jump_that_does_not_reach() -> Result<(), Error> {
    // Forward: detected when the label is bound, and the bind changes nothing.
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l = a.new_label();
    a.short().jmp(l)?;
    for _ in 0..200 {
        a.nop()?;
    }
    let before = a.code().text().to_vec();
    assert!(matches!(
        a.bind(l),
        Err(Error::ShortJumpOutOfRange { distance: 200, .. })
    ));
    assert_eq!(a.code().text(), &before[..]);
    assert!(!a.code().is_bound(l));

    // Backward: detected at the jump, which emits nothing.
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l = a.new_label();
    a.bind(l)?;
    for _ in 0..200 {
        a.nop()?;
    }
    let err = a.short().jmp(l).unwrap_err();
    assert!(matches!(err, Error::InvalidInstruction { .. }), "{err}");
    assert!(err.to_string().contains("does not fit rel8"), "{err}");
    assert_eq!(a.offset(), 200);
    // Without `short` the backward jump picks rel32 by itself.
    a.jmp(l)?;
    assert_eq!(&a.code().text()[200..], &[0xe9, 0x33, 0xff, 0xff, 0xff]);
    Ok(())
}

#[test]
fn backward_jumps_are_short_when_in_range() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l = a.new_label();
    a.bind(l)?;
    a.nop()?;
    a.jne(l)?;
    a.jmp(l)?;
    assert_eq!(code.finalize()?, [0x90, 0x75, 0xfd, 0xeb, 0xfb]);
    Ok(())
}

#[test]
fn displacement_that_does_not_fit() {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let err = a
        .mov(rax, qword_ptr(rcx).with_disp(0x1_0000_0000))
        .unwrap_err();
    assert!(err.to_string().contains("does not fit 32 bits"), "{err}");
    // A relocated call to an address more than 2 GiB away.
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    a.call(0x7fff_0000_0000u64)
        .expect("recorded as a relocation");
    let mut out = vec![0; code.code_size()];
    assert!(matches!(
        code.relocate_to(0x1000, &mut out),
        Err(Error::DisplacementOutOfRange { .. })
    ));
    code.relocate_to(0x7fff_0000_0000 - 0x1000, &mut out)
        .expect("in range");
}

#[test]
fn invalid_operands_name_the_instruction_and_leave_the_buffer_unchanged() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    a.nop()?;
    let cases: Vec<(Mnemonic, Vec<Operand>, &str)> = vec![
        (
            Mnemonic::Add,
            vec![eax.into(), xmm0.into()],
            "add eax, xmm0",
        ),
        (
            Mnemonic::Add,
            vec![al.into(), 0x1234.into()],
            "add al, 0x1234",
        ),
        (Mnemonic::Mov, vec![ah.into(), r8b.into()], "mov ah, r8b"),
        (
            Mnemonic::Vaddps,
            vec![xmm0.k(k1).into(), xmm1.into()],
            "vaddps xmm0 {k1}, xmm1",
        ),
        (
            // (`add rax, rbx, rcx` is APX's new-destination form.)
            Mnemonic::Mov,
            vec![rax.into(), rbx.into(), rcx.into()],
            "mov rax, rbx, rcx",
        ),
        (
            Mnemonic::Movaps,
            vec![xmm16.into(), xmm1.into()],
            "movaps xmm16, xmm1",
        ),
        (
            Mnemonic::Vaddps,
            vec![xmm0.z().into(), xmm1.into(), xmm2.into()],
            "vaddps xmm0{z}, xmm1, xmm2",
        ),
    ];
    for (m, ops, text) in cases {
        let err = a.emit(m, &ops).unwrap_err();
        match &err {
            Error::InvalidInstruction { instruction, .. } => assert_eq!(instruction, text),
            other => panic!("{other}"),
        }
        assert_eq!(a.code().text(), &[0x90], "{err}");
    }
    Ok(())
}

#[test]
fn labels_from_another_code_holder_are_rejected() {
    let mut other = CodeHolder::new(Arch::X64);
    for _ in 0..5 {
        other.new_label();
    }
    let foreign = other.new_label();
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    assert!(a.jmp(foreign).is_err());
    assert_eq!(
        a.bind(foreign),
        Err(Error::InvalidLabel { id: foreign.id() })
    );
    assert!(a.code().text().is_empty());
}

#[test]
fn bad_alignment_and_sizes() {
    let mut code = CodeHolder::new(Arch::X64);
    assert!(
        code.add_section(".data", jitforge::code::SectionKind::Data, 3)
            .is_err()
    );
    let mut a = Assembler::new(&mut code);
    assert!(a.align(6).is_err());
    assert!(a.embed_int(1, 3).is_err());
}

#[test]
fn validation_names_the_missing_cpu_feature_and_the_mode() {
    use jitforge::x86::cpu::CpuFeatures;
    let ops = [zmm0.into(), zmm1.into(), zmm2.into()];
    let mut cpu = CpuFeatures::all();
    let form = validate_for_cpu(Arch::X64, &cpu, Mnemonic::Vaddps, &ops, InstOptions::NONE)
        .expect("valid");
    assert!(form.cpu_features().contains(&CpuFeature::Avx512f));
    cpu.remove(CpuFeature::Avx512f);
    let err =
        validate_for_cpu(Arch::X64, &cpu, Mnemonic::Vaddps, &ops, InstOptions::NONE).unwrap_err();
    assert!(
        err.to_string().contains("needs CPU feature avx512f"),
        "{err}"
    );
    let err = validate(Arch::X86, Mnemonic::Cdqe, &[], InstOptions::NONE).unwrap_err();
    assert!(
        err.to_string().contains("not valid in 32-bit mode"),
        "{err}"
    );
    let err = validate(
        Arch::X64,
        Mnemonic::Vaddps,
        &[xmm16.into(), xmm1.into(), xmm2.into()],
        InstOptions::VEX,
    )
    .unwrap_err();
    assert!(err.to_string().contains("xmm16"), "{err}");
}

#[test]
fn the_assembler_rejects_virtual_registers() {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let v = Gp64::new_virtual(3);
    let err = a.add(v, rax).unwrap_err();
    assert!(
        err.to_string().contains("%3 is a virtual register"),
        "{err}"
    );
    let err = a.mov(rax, qword_ptr(rbx + v * 8)).unwrap_err();
    assert!(err.to_string().contains("virtual register"), "{err}");
    assert!(a.code().text().is_empty());
}
