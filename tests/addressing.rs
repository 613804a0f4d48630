//! Addressing edge cases, each checked against iced-x86: rsp/r12 bases need
//! a SIB byte, rbp/r13 bases need a displacement, RIP-relative, no base,
//! index only, the disp8/disp32 boundaries, 32-bit addressing in 64-bit mode,
//! segment overrides and EVEX disp8*N compression.

mod common;

use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error};

fn encode(arch: Arch, mnemonic: Mnemonic, ops: &[Operand]) -> Result<Vec<u8>, Error> {
    let mut code = CodeHolder::new(arch);
    code.set_base_address(Some(0));
    let mut a = Assembler::new(&mut code);
    a.emit(mnemonic, ops)?;
    Ok(code.text().to_vec())
}

fn check(arch: Arch, mnemonic: Mnemonic, ops: &[Operand], expected: &str) {
    let bytes = encode(arch, mnemonic, ops).unwrap_or_else(|e| panic!("{e}"));
    let instr = common::decode_one(&bytes, arch.bits()).unwrap_or_else(|e| panic!("{e}"));
    common::compare(mnemonic, ops, &instr, arch.bits())
        .unwrap_or_else(|e| panic!("{}: {e}", common::hex(&bytes)));
    assert_eq!(common::hex(&bytes), expected, "{:?}", ops);
}

#[test]
fn special_bases_and_displacements() {
    use Mnemonic::Mov;
    let m = |mem: Mem| -> [Operand; 2] { [rax.into(), mem.into()] };
    check(Arch::X64, Mov, &m(qword_ptr(rsp)), "488b0424");
    check(Arch::X64, Mov, &m(qword_ptr(r12)), "498b0424");
    check(Arch::X64, Mov, &m(qword_ptr(rbp)), "488b4500");
    check(Arch::X64, Mov, &m(qword_ptr(r13)), "498b4500");
    check(Arch::X64, Mov, &m(qword_ptr(rsp + 8)), "488b442408");
    check(Arch::X64, Mov, &m(qword_ptr(rbp + 127)), "488b457f");
    check(Arch::X64, Mov, &m(qword_ptr(rbp + 128)), "488b8580000000");
    check(Arch::X64, Mov, &m(qword_ptr(rbp - 128)), "488b4580");
    check(Arch::X64, Mov, &m(qword_ptr(rbp - 129)), "488b857fffffff");
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(rcx + 0x7fffffff)),
        "488b81ffffff7f",
    );
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(rcx + i32::MIN)),
        "488b8100000080",
    );
    check(Arch::X64, Mov, &m(qword_ptr(rip + 0x10)), "488b0510000000");
    check(Arch::X64, Mov, &m(qword_ptr(0x1000i32)), "488b042500100000");
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(rcx * 8 + 0x10)),
        "488b04cd10000000",
    );
    check(Arch::X64, Mov, &m(qword_ptr(rbp + r13 * 2)), "4a8b446d00");
    check(Arch::X64, Mov, &m(qword_ptr(r13 + rbp * 4)), "498b44ad00");
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(rsp + r12 * 1 + 1)),
        "4a8b442401",
    );
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(eax + ecx * 4 + 8)),
        "67488b448808",
    );
    check(Arch::X64, Mov, &m(qword_ptr(esp)), "67488b0424");
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(rax).with_segment(fs)),
        "64488b00",
    );
    check(
        Arch::X64,
        Mov,
        &m(qword_ptr(rax).with_segment(gs)),
        "65488b00",
    );
}

#[test]
fn addressing_in_32_bit_mode() {
    use Mnemonic::Mov;
    let m = |mem: Mem| -> [Operand; 2] { [eax.into(), mem.into()] };
    check(Arch::X86, Mov, &m(dword_ptr(esp)), "8b0424");
    check(Arch::X86, Mov, &m(dword_ptr(ebp)), "8b4500");
    check(Arch::X86, Mov, &m(dword_ptr(0x1000i32)), "a100100000");
    check(Arch::X86, Mov, &m(dword_ptr(ecx + 0x1000)), "8b8100100000");
    check(
        Arch::X86,
        Mov,
        &[ecx.into(), dword_ptr(0x1000i32).into()],
        "8b0d00100000",
    );
    check(Arch::X86, Mov, &m(dword_ptr(esi * 4)), "8b04b500000000");
}

#[test]
fn evex_disp8_is_scaled_by_n() {
    // zmm load: N = 64, so 0x40 compresses to disp8 1 and 0x20 does not.
    check(
        Arch::X64,
        Mnemonic::Vmovups,
        &[zmm1.into(), zmmword_ptr(rax + 0x40).into()],
        "62f17c48104801",
    );
    check(
        Arch::X64,
        Mnemonic::Vmovups,
        &[zmm1.into(), zmmword_ptr(rax + 0x20).into()],
        "62f17c48108820000000",
    );
    // Broadcast of a dword: N = 4.
    check(
        Arch::X64,
        Mnemonic::Vaddps,
        &[zmm1.into(), zmm2.into(), dword_ptr(rax + 8).bcst().into()],
        "62f16c58584802",
    );
}

#[test]
fn invalid_addresses_are_errors() {
    let bad = [
        qword_ptr(rax).with_index(rsp, 1),
        qword_ptr(rax).with_index(rcx, 3),
        qword_ptr(eax).with_index(rcx, 1),
        qword_ptr(rax + 0x10).with_disp(0x1_0000_0000),
    ];
    for mem in bad {
        let err = encode(Arch::X64, Mnemonic::Mov, &[rax.into(), mem.into()]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInstruction { .. }),
            "{mem}: {err}"
        );
    }
    let err = encode(
        Arch::X86,
        Mnemonic::Mov,
        &[eax.into(), dword_ptr(rax).into()],
    )
    .unwrap_err();
    assert!(err.to_string().contains("32-bit mode"), "{err}");
    let err = encode(Arch::X86, Mnemonic::Mov, &[rax.into(), rcx.into()]).unwrap_err();
    assert!(err.to_string().contains("32-bit mode"), "{err}");
}
