//! The code buffer end to end, running the results: sections with
//! RIP-relative references across them, embedded label addresses (a jump
//! table) relocated at placement, absolute call targets, alignment padding,
//! and named labels.

use jitforge::code::SectionKind;
use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error, JitRuntime};

#[test]
fn rip_relative_load_from_a_data_section() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let mut code = CodeHolder::new(Arch::X64);
    let data = code.add_section(".rodata", SectionKind::ReadOnlyData, 16)?;
    let mut a = Assembler::new(&mut code);
    let constant = a.new_named_label("answer")?;
    a.mov(rax, qword_ptr(constant))?;
    a.add(rax, qword_ptr(constant + 8))?;
    a.ret()?;
    a.switch_section(data)?;
    a.bind(constant)?;
    a.embed_int(40, 8)?;
    a.embed_int(2, 8)?;
    let function = runtime.add(&code)?;
    // SAFETY: a complete C-ABI function without arguments returning a u64.
    let f: extern "C" fn() -> u64 = unsafe { function.function() };
    assert_eq!(f(), 42);
    Ok(())
}

#[test]
fn jump_table_of_embedded_label_addresses() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let table = a.new_label();
    let cases: Vec<_> = (0..4).map(|_| a.new_label()).collect();
    // rdi = case index: jmp [table + rdi*8]
    a.lea(rax, ptr(table))?;
    a.jmp(qword_ptr(rax + rdi * 8))?;
    for (i, &case) in cases.iter().enumerate() {
        a.bind(case)?;
        a.mov(eax, 100 + i as i32)?;
        a.ret()?;
    }
    a.align(8)?;
    a.bind(table)?;
    for &case in &cases {
        a.embed_label(case)?;
    }
    let function = runtime.add(&code)?;
    // SAFETY: a complete C-ABI function taking an index in 0..4.
    let f: extern "C" fn(u64) -> u32 = unsafe { function.function() };
    for i in 0..4 {
        assert_eq!(f(i), 100 + i as u32);
    }
    Ok(())
}

extern "C" fn host_add(a: u64, b: u64) -> u64 {
    a.wrapping_mul(1000).wrapping_add(b)
}

#[test]
fn call_to_an_absolute_host_function() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    // The host function may be far from the JIT memory: call through a register.
    a.push(rbx)?;
    a.mov(
        rax,
        host_add as extern "C" fn(u64, u64) -> u64 as usize as i64,
    )?;
    a.call(rax)?;
    a.pop(rbx)?;
    a.ret()?;
    let function = runtime.add(&code)?;
    // SAFETY: a complete C-ABI function forwarding two integers.
    let f: extern "C" fn(u64, u64) -> u64 = unsafe { function.function() };
    assert_eq!(f(4, 2), 4002);
    Ok(())
}

#[test]
fn alignment_pads_code_with_nops_and_data_with_zeros() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let data = code.add_section(".data", SectionKind::Data, 8)?;
    let mut a = Assembler::new(&mut code);
    a.ret()?;
    a.align(16)?;
    a.nop()?;
    a.switch_section(data)?;
    a.embed(&[1]);
    a.align(8)?;
    a.embed(&[2]);
    let text = a.code().text().to_vec();
    assert_eq!(text.len(), 17);
    // The padding decodes as NOPs.
    let mut decoder = iced_x86::Decoder::new(64, &text[1..16], iced_x86::DecoderOptions::NONE);
    for instr in &mut decoder {
        assert_eq!(instr.mnemonic(), iced_x86::Mnemonic::Nop, "{instr}");
    }
    assert_eq!(
        a.code().section(data).expect("data").data(),
        &[1, 0, 0, 0, 0, 0, 0, 0, 2]
    );
    // Layout: .text, then .data at an 8-byte boundary.
    assert_eq!(code.section_offsets(), vec![0, 24]);
    assert_eq!(code.code_size(), 24 + 9);
    Ok(())
}

#[test]
fn named_labels_are_found_by_name() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let l = code.new_named_label("entry")?;
    assert_eq!(code.label_by_name("entry"), Some(l));
    assert_eq!(code.label_by_name("missing"), None);
    assert_eq!(code.label_name(l), "entry");
    // Names among anonymous labels; a refused duplicate takes no label.
    let anonymous = code.new_label();
    let exit = code.new_named_label("exit")?;
    assert!(code.new_named_label("entry").is_err());
    let later = code.new_label();
    let last = code.new_named_label("last")?;
    assert_eq!(code.label_count(), 5);
    assert_eq!(code.label_name(l), "entry");
    assert_eq!(code.label_name(anonymous), format!("L{}", anonymous.id()));
    assert_eq!(code.label_name(exit), "exit");
    assert_eq!(code.label_name(later), format!("L{}", later.id()));
    assert_eq!(code.label_name(last), "last");
    assert_eq!(code.label_by_name("last"), Some(last));
    Ok(())
}

#[test]
fn x86_code_uses_absolute_label_addresses() -> Result<(), Error> {
    // In 32-bit mode a label operand in memory is an absolute address, relocated at placement.
    let mut code = CodeHolder::new(Arch::X86);
    let mut a = Assembler::new(&mut code);
    let value = a.new_label();
    a.mov(eax, dword_ptr(value))?;
    a.ret()?;
    a.bind(value)?;
    a.embed_int(7, 4)?;
    let mut out = vec![0; code.code_size()];
    code.relocate_to(0x40_0000, &mut out)?;
    // mov eax, [disp32] then ret: the value sits at base + 7.
    assert_eq!(&out[..7], &[0x8b, 0x05, 0x07, 0x00, 0x40, 0x00, 0xc3]);
    assert_eq!(&out[7..], &[7, 0, 0, 0]);
    Ok(())
}

#[test]
fn forward_uses_of_labels_bound_earlier_free_their_slots_for_later_labels() -> Result<(), Error> {
    // Three forward jumps to `first`, one to `second` in between; after
    // `first` is bound its three slots are reused by the uses of `third`,
    // whose chain must not pick up `second`'s (still open) use.
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let first = a.new_label();
    let second = a.new_label();
    let third = a.new_label();
    a.jmp(first)?; // 0: e9 rel32, ends at 5
    a.jmp(second)?; // 5, ends at 10
    a.jmp(first)?; // 10, ends at 15
    a.jne(first)?; // 15: 0f 85 rel32, ends at 21
    a.bind(first)?; // 21
    a.jmp(third)?; // 21, ends at 26
    a.jmp(third)?; // 26, ends at 31
    a.bind(second)?; // 31
    a.nop()?; // 31
    a.bind(third)?; // 32
    let bytes = code.finalize()?;
    let rel32 = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(bytes.len(), 32);
    assert_eq!(rel32(1), 21 - 5);
    assert_eq!(rel32(6), 31 - 10);
    assert_eq!(rel32(11), 21 - 15);
    assert_eq!(rel32(17), 21 - 21);
    assert_eq!(rel32(22), 32 - 26);
    assert_eq!(rel32(27), 32 - 31);
    assert_eq!(code.unresolved_count(), 0);
    Ok(())
}

#[test]
fn take_code_hands_over_the_same_bytes_as_finalize() -> Result<(), Error> {
    // Two sections, a relocated jump table (absolute label addresses) and a
    // RIP-relative reference across sections, at a set base address.
    let mut code = CodeHolder::new(Arch::X64);
    code.set_base_address(Some(0x7000_0000));
    let data = code.add_section(".data", SectionKind::Data, 64)?;
    let mut a = Assembler::new(&mut code);
    let table = a.new_label();
    let case = a.new_label();
    a.lea(rax, ptr(table))?;
    a.bind(case)?;
    a.ret()?;
    a.switch_section(data)?;
    a.bind(table)?;
    a.embed_label(case)?;
    a.embed_int(9, 4)?;
    let copied = code.finalize()?;
    let taken = code.take_code()?;
    assert_eq!(taken, copied);
    assert_eq!(taken.len(), 64 + 12);
    assert_eq!(&taken[64..72], &0x7000_0007u64.to_le_bytes());
    // The code holder is left empty and usable.
    assert_eq!(code.code_size(), 0);
    assert_eq!(code.label_count(), 0);
    let mut a = Assembler::new(&mut code);
    a.ret()?;
    assert_eq!(code.take_code()?, [0xc3]);
    Ok(())
}

#[test]
fn take_code_that_fails_changes_nothing() -> Result<(), Error> {
    // An unbound label.
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let missing = a.new_label();
    a.jmp(missing)?;
    assert!(matches!(code.take_code(), Err(Error::UnboundLabel { .. })));
    assert_eq!(code.text(), [0xe9, 0, 0, 0, 0]);
    Assembler::new(&mut code).bind(missing)?;
    assert_eq!(code.take_code()?, [0xe9, 0, 0, 0, 0]);

    // A 32-bit absolute address that does not fit: checked before the
    // buffer is touched.
    let mut code = CodeHolder::new(Arch::X86);
    code.set_base_address(Some(0x1_0000_0000));
    let mut a = Assembler::new(&mut code);
    let value = a.new_label();
    a.mov(eax, dword_ptr(value))?;
    a.bind(value)?;
    let before = code.text().to_vec();
    assert!(matches!(
        code.take_code(),
        Err(Error::DisplacementOutOfRange { .. })
    ));
    assert_eq!(code.text(), before);
    assert_eq!(code.code_size(), before.len());
    Ok(())
}

/// A code holder made after another was dropped on the same thread reuses
/// its buffers (see `CodeHolder::new`): it must start empty all the same,
/// whatever the dropped one held (sections, named labels, a pending fixup,
/// relocations).
#[test]
fn a_code_holder_made_after_a_drop_starts_empty() -> Result<(), Error> {
    let runtime = JitRuntime::new()?;
    {
        let mut code = CodeHolder::new(Arch::X64);
        code.add_section(".data", SectionKind::Data, 64)?;
        let mut a = Assembler::new(&mut code);
        let named = a.new_named_label("entry")?;
        let never_bound = a.new_label();
        a.bind(named)?;
        a.jmp(never_bound)?;
        a.mov(rax, 0x1234_5678_9abc_i64)?;
        a.embed_label(named)?;
    }
    let mut code = CodeHolder::new(Arch::X64);
    assert_eq!(code.sections().len(), 1);
    assert_eq!(code.code_size(), 0);
    assert_eq!(code.label_count(), 0);
    assert_eq!(code.label_by_name("entry"), None);
    let mut a = Assembler::new(&mut code);
    // The name is free again.
    let entry = a.new_named_label("entry")?;
    a.bind(entry)?;
    a.mov(eax, 42)?;
    a.ret()?;
    assert_eq!(code.text(), [0xb8, 42, 0, 0, 0, 0xc3]);
    let function = runtime.add(&code)?;
    // SAFETY: a complete C-ABI function without arguments returning a u32.
    let f: extern "C" fn() -> u32 = unsafe { function.function() };
    assert_eq!(f(), 42);
    Ok(())
}

#[test]
fn an_assembler_whose_section_was_reset_away_goes_on_in_text() -> Result<(), Error> {
    for arch in [Arch::X64, Arch::X86] {
        let mut code = CodeHolder::new(arch);
        let data = code.add_section(".data", SectionKind::Data, 8)?;
        let mut a = Assembler::new(&mut code);
        a.switch_section(data)?;
        a.embed_int(7, 4)?;
        // The reset removes `.data`: every later step lands in `.text`.
        a.code_mut().reset();
        assert_eq!(a.current_section(), CodeHolder::TEXT);
        assert_eq!(a.offset(), 0);
        let label = a.new_label();
        // Binding first names the missing section; the next instruction
        // moves the assembler to `.text`, where binding works.
        let error = a.bind(label).unwrap_err();
        assert!(error.to_string().contains("no section 1"), "{error}");
        a.nop()?;
        a.bind(label)?;
        a.align(4)?;
        a.embed(&[0xcc]);
        a.jmp(label)?;
        a.ret()?;
        assert_eq!(a.code().sections().len(), 1);
        let text = code.finalize()?;
        // nop, 3 bytes of padding, int3, jmp back to 1 (short), ret.
        assert_eq!(text[0], 0x90);
        assert_eq!(text.len(), 4 + 1 + 2 + 1);
        assert_eq!(&text[5..], &[0xeb, 0xfa, 0xc3]);
    }
    Ok(())
}

#[test]
fn binding_in_a_section_the_holder_lacks_is_an_error() -> Result<(), Error> {
    let mut other = CodeHolder::new(Arch::X64);
    let foreign = other.add_section(".data", SectionKind::Data, 8)?;
    let mut code = CodeHolder::new(Arch::X64);
    let label = code.new_label();
    let error = code.bind(label, foreign).unwrap_err();
    assert!(error.to_string().contains("no section 1"), "{error}");
    // Nothing was bound: the label still binds in `.text`.
    code.bind(label, CodeHolder::TEXT)?;
    Ok(())
}
