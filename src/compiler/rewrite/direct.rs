//! The rewrite's own encoder for the instructions that make up most of
//! its output: a general-purpose move, spill store or reload (`mov r, r`,
//! `mov [sp+d], r`, `mov r, [sp+d]`), a 16-byte vector one (`movups`) with
//! registers the legacy encoding names, and the integer operations of two
//! general-purpose operands (`add`, `or`, `adc`, `sbb`, `and`, `sub`,
//! `xor`, `cmp`, `imul`) on registers and spill slots. Their bytes are a
//! handful of fields, written here straight into the code buffer: the
//! general encoder (operands, candidate forms, plans) costs some 400
//! machine instructions for each, and the memo cannot hold the thousands
//! of register and slot pairs of a large function (nor does it help the
//! first time a pair is seen). The bytes are the general encoder's, to the
//! byte (tests compare every register and displacement class in both modes).
//! The opcodes are the database's: `jitforge-dbgen` looks their forms up and
//! writes them into `src/x86/db/generated_opcodes.rs` (failing if one is
//! missing or not of the `[REX] [0F] opcode /r` shape written here); they
//! are constants, folded in as literals would be.

use crate::x86::Mnemonic;
use crate::x86::db::generated_opcodes::{self as opcodes, LegacyOpcode};

/// Where an operand is: a register by hardware number, or the spill slot
/// at a displacement from the stack pointer.
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    Reg(u8),
    Stack(i32),
}

/// The register class and width of a move this encoder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MoveKind {
    /// `mov` of a general-purpose register: 64-bit (with REX.W) if the
    /// mode is 64-bit, else 32-bit.
    Gp,
    /// `movups` of an xmm register (no VEX: xmm0..15).
    Xmm,
}

/// Appends the bytes of the move `to <- from` of `kind` to `text` (in
/// 64-bit mode if `mode64`) and returns true; false having written nothing
/// when it is not one this encoder writes (two slots, a register the mode
/// or the legacy encoding does not name). A move of a register to itself
/// is no business of this encoder (the caller writes nothing for it).
/// Inline: the rewrite's edit loop writes thousands, most of its fields
/// known there (the kind) and folded in.
#[inline(always)]
pub(super) fn encode_move(
    kind: MoveKind,
    mode64: bool,
    from: Place,
    to: Place,
    text: &mut Vec<u8>,
) -> bool {
    // The mode is the function's, known only at run time: a copy of the
    // encoder for each, so that each has its REX (always there for a
    // 64-bit `mov`, never in 32-bit mode) and register count folded in.
    if mode64 {
        move_in::<true>(kind, from, to, text)
    } else {
        move_in::<false>(kind, from, to, text)
    }
}

/// [`encode_move`] in 64-bit mode if `MODE64`.
#[inline(always)]
fn move_in<const MODE64: bool>(kind: MoveKind, from: Place, to: Place, text: &mut Vec<u8>) -> bool {
    let mode64 = MODE64;
    // The register in ModRM.reg, the other place in ModRM.rm, and the
    // opcode for that direction: `mov r/m, r` and `mov r, r/m`, `movups
    // xmm/m, xmm` and `movups xmm, xmm/m`. A register-to-register move takes
    // the general encoder's first form: `mov r/m, r` (source in reg) for
    // `mov`, `movups xmm, xmm/m` (destination in reg) for `movups`.
    let (reg, rm, store) = match (kind, from, to) {
        (_, Place::Stack(_), Place::Stack(_)) => return false,
        (_, Place::Reg(r), rm @ Place::Stack(_)) => (r, rm, true),
        (_, Place::Stack(_), Place::Reg(r)) => (r, from, false),
        (MoveKind::Gp, Place::Reg(r), rm @ Place::Reg(_)) => (r, rm, true),
        (MoveKind::Xmm, rm @ Place::Reg(_), Place::Reg(r)) => (r, rm, false),
    };
    match kind {
        MoveKind::Gp => {
            let opcode = if store {
                opcodes::MOV_RM_R
            } else {
                opcodes::MOV_R_RM
            };
            encode_reg_rm(mode64, opcode, reg, rm, mode64, text)
        }
        MoveKind::Xmm => {
            let opcode = if store {
                opcodes::MOVUPS_RM_R
            } else {
                opcodes::MOVUPS_R_RM
            };
            encode_reg_rm(false, opcode, reg, rm, mode64, text)
        }
    }
}

/// Whether [`encode_integer_op`] writes instructions of `mnemonic`.
#[inline]
pub(super) fn is_integer_op(mnemonic: Mnemonic) -> bool {
    matches!(
        mnemonic,
        Mnemonic::Add
            | Mnemonic::Or
            | Mnemonic::Adc
            | Mnemonic::Sbb
            | Mnemonic::And
            | Mnemonic::Sub
            | Mnemonic::Xor
            | Mnemonic::Cmp
            | Mnemonic::Imul
    )
}

/// Appends the bytes of the integer operation `mnemonic dst, src` on
/// general-purpose registers or spill slots, 64-bit if `wide` (64-bit
/// mode only) else 32-bit, and returns true; false having written nothing
/// for any other mnemonic or shape (two slots, `imul` into a slot, a
/// register the mode does not name, `wide` in 32-bit mode).
///
/// The forms are the general encoder's first that fit: `op r/m, r` (the
/// source in ModRM.reg) for two registers and a slot destination, `op r,
/// r/m` for a slot source, and `imul r, r/m` with the destination in
/// ModRM.reg.
#[inline]
pub(super) fn encode_integer_op(
    mnemonic: Mnemonic,
    wide: bool,
    mode64: bool,
    dst: Place,
    src: Place,
    text: &mut Vec<u8>,
) -> bool {
    // A copy for each width and mode, each with its REX folded in (as in
    // `encode_move`).
    match (wide, mode64) {
        (true, true) => integer_op_in::<true, true>(mnemonic, dst, src, text),
        (false, true) => integer_op_in::<false, true>(mnemonic, dst, src, text),
        (false, false) => integer_op_in::<false, false>(mnemonic, dst, src, text),
        (true, false) => false,
    }
}

/// [`encode_integer_op`] of width `WIDE` in mode `MODE64` (64-bit mode
/// only for a `WIDE` one).
#[inline(always)]
fn integer_op_in<const WIDE: bool, const MODE64: bool>(
    mnemonic: Mnemonic,
    dst: Place,
    src: Place,
    text: &mut Vec<u8>,
) -> bool {
    let (wide, mode64) = (WIDE, MODE64);
    // The opcodes of `op r/m, r` and of `op r, r/m`.
    let (rm_r, r_rm) = match mnemonic {
        Mnemonic::Add => (opcodes::ADD_RM_R, opcodes::ADD_R_RM),
        Mnemonic::Or => (opcodes::OR_RM_R, opcodes::OR_R_RM),
        Mnemonic::Adc => (opcodes::ADC_RM_R, opcodes::ADC_R_RM),
        Mnemonic::Sbb => (opcodes::SBB_RM_R, opcodes::SBB_R_RM),
        Mnemonic::And => (opcodes::AND_RM_R, opcodes::AND_R_RM),
        Mnemonic::Sub => (opcodes::SUB_RM_R, opcodes::SUB_R_RM),
        Mnemonic::Xor => (opcodes::XOR_RM_R, opcodes::XOR_R_RM),
        Mnemonic::Cmp => (opcodes::CMP_RM_R, opcodes::CMP_R_RM),
        Mnemonic::Imul => {
            return match dst {
                Place::Reg(d) => encode_reg_rm(wide, opcodes::IMUL_R_RM, d, src, mode64, text),
                Place::Stack(_) => false,
            };
        }
        _ => return false,
    };
    match (dst, src) {
        (rm, Place::Reg(s)) => encode_reg_rm(wide, rm_r, s, rm, mode64, text),
        (Place::Reg(d), rm @ Place::Stack(_)) => encode_reg_rm(wide, r_rm, d, rm, mode64, text),
        (Place::Stack(_), Place::Stack(_)) => false,
    }
}

/// Appends `[REX] [0F] opcode ModRM [SIB disp]` for register `reg` in
/// ModRM.reg and `rm` in ModRM.rm, with REX.W if `wide` (in 64-bit mode
/// if `mode64`), and returns true; false having written nothing for a
/// register the mode does not name.
///
/// The bytes are put together in two words, little-endian (the first
/// byte lowest): the head (REX, 0F, opcode) and the tail (ModRM, SIB,
/// displacement), each stored whole (see [`append_words`]), in registers
/// rather than byte by byte in an array that is then copied.
#[inline(always)]
fn encode_reg_rm(
    wide: bool,
    opcode: LegacyOpcode,
    reg: u8,
    rm: Place,
    mode64: bool,
    text: &mut Vec<u8>,
) -> bool {
    // ModRM.rm's register; a slot is [sp + disp], and sp's number (4, rm
    // 100) selects a SIB byte (base sp, no index), with no REX.B.
    let rm_reg = match rm {
        Place::Reg(r) => r,
        Place::Stack(_) => 4,
    };
    // Both below the mode's 8 or 16 registers (a power of two).
    let limit = if mode64 { 16 } else { 8 };
    if reg | rm_reg >= limit {
        return false;
    }
    let rex = 0x40 | u8::from(wide) << 3 | (reg >> 3) << 2 | rm_reg >> 3;
    let (op, op_len) = if opcode.escape_0f {
        (0x0F | u64::from(opcode.byte) << 8, 2)
    } else {
        (u64::from(opcode.byte), 1)
    };
    // REX only where it says something (never in 32-bit mode).
    let (head, head_len) = if rex != 0x40 {
        (u64::from(rex) | op << 8, op_len + 1)
    } else {
        (op, op_len)
    };
    let modrm = u64::from((reg & 7) << 3 | (rm_reg & 7));
    const SIB_SP: u64 = 0x24 << 8;
    // ModRM.mod: 11 for a register; for a slot none, 8 or 32 bits of
    // displacement (the shortest that holds it).
    let (tail, tail_len) = match rm {
        Place::Reg(_) => (0xC0 | modrm, 1),
        Place::Stack(0) => (modrm | SIB_SP, 2),
        Place::Stack(d) => match i8::try_from(d) {
            Ok(d8) => (0x40 | modrm | SIB_SP | u64::from(d8 as u8) << 16, 3),
            Err(_) => (0x80 | modrm | SIB_SP | u64::from(d as u32) << 16, 6),
        },
    };
    append_words(text, head, head_len, tail, tail_len);
    true
}

/// Appends the low `head_len` bytes of `head` and then the low `tail_len`
/// bytes of `tail` (each at most 8), little-endian, to `text`: two whole
/// stores and the length moved on past what counts, where copying a
/// slice of a length known only at run time would call `memcpy`.
#[inline(always)]
fn append_words(text: &mut Vec<u8>, head: u64, head_len: usize, tail: u64, tail_len: usize) {
    debug_assert!(head_len <= 8 && tail_len <= 8);
    let head_len = head_len.min(8);
    let tail_len = tail_len.min(8);
    text.reserve(16);
    let len = text.len();
    if head_len <= 2 && tail_len <= 6 {
        // Both in one word (a 64-bit `mov`, a head of a constant length
        // where inlined): one store.
        let word = head | tail << (8 * head_len);
        // SAFETY: `reserve(16)` leaves room for 16 bytes past `len`; the
        // 8-byte store (unaligned, of plain bytes) is within it, and the
        // length grows only over bytes just written.
        unsafe {
            text.as_mut_ptr()
                .add(len)
                .cast::<[u8; 8]>()
                .write_unaligned(word.to_le_bytes());
            text.set_len(len + head_len + tail_len);
        }
        return;
    }
    // SAFETY: `reserve(16)` leaves room for 16 bytes past `len`; the two
    // 8-byte stores (unaligned, of plain bytes) end at `len + head_len + 8`
    // (`head_len` at most 8), within it, and the length grows only over
    // bytes just written.
    unsafe {
        let at = text.as_mut_ptr().add(len);
        at.cast::<[u8; 8]>().write_unaligned(head.to_le_bytes());
        at.add(head_len)
            .cast::<[u8; 8]>()
            .write_unaligned(tail.to_le_bytes());
        text.set_len(len + head_len + tail_len);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::Arch;
    use crate::code::CodeHolder;
    use crate::x86::{Assembler, Emitter, Mem, MemBase, Mnemonic, Operand, Reg, RegKind};

    /// The general encoder's bytes of `mnemonic operands` in `arch`.
    pub(in crate::compiler::rewrite) fn general(
        arch: Arch,
        mnemonic: Mnemonic,
        operands: &[Operand],
    ) -> Vec<u8> {
        let mut code = CodeHolder::new(arch);
        Assembler::new(&mut code)
            .emit(mnemonic, operands)
            .expect("encodes");
        code.buffer_mut(CodeHolder::TEXT).clone()
    }

    #[test]
    fn moves_match_the_general_encoder() {
        let disps = [
            0,
            1,
            -1,
            8,
            0x24,
            127,
            128,
            -128,
            -129,
            0x1000,
            i32::MAX,
            i32::MIN,
        ];
        let mut checked = 0;
        for (arch, mode64) in [(Arch::X64, true), (Arch::X86, false)] {
            let regs = if mode64 { 16 } else { 8 };
            let (sp, gp) = if mode64 {
                (Reg::new(RegKind::Gp64, 4).unwrap(), RegKind::Gp64)
            } else {
                (Reg::new(RegKind::Gp32, 4).unwrap(), RegKind::Gp32)
            };
            for (kind, reg_kind, mnemonic, size) in [
                (MoveKind::Gp, gp, Mnemonic::Mov, if mode64 { 8 } else { 4 }),
                (MoveKind::Xmm, RegKind::Xmm, Mnemonic::Movups, 16),
            ] {
                let reg = |hw: u8| Operand::Reg(Reg::new(reg_kind, hw).unwrap());
                let slot =
                    |d: i32| Operand::Mem(Mem::new(MemBase::Reg(sp), i64::from(d)).with_size(size));
                // `to <- from` here and by the general encoder: the same bytes.
                let check = |from: Place, to: Place, from_op: Operand, to_op: Operand| {
                    let mut text = Vec::new();
                    assert!(encode_move(kind, mode64, from, to, &mut text));
                    let expected = general(arch, mnemonic, &[to_op, from_op]);
                    assert_eq!(text, expected, "{kind:?} {to:?} <- {from:?} {arch:?}");
                };
                for a in 0..regs {
                    for b in 0..regs {
                        check(Place::Reg(a), Place::Reg(b), reg(a), reg(b));
                        checked += 1;
                    }
                    for d in disps {
                        check(Place::Reg(a), Place::Stack(d), reg(a), slot(d));
                        check(Place::Stack(d), Place::Reg(a), slot(d), reg(a));
                        checked += 2;
                    }
                }
                // What it does not write, it leaves alone.
                let mut text = Vec::new();
                assert!(!encode_move(
                    kind,
                    mode64,
                    Place::Stack(8),
                    Place::Stack(16),
                    &mut text
                ));
                assert!(!encode_move(
                    kind,
                    mode64,
                    Place::Reg(regs),
                    Place::Reg(0),
                    &mut text
                ));
                assert!(!encode_move(
                    kind,
                    mode64,
                    Place::Stack(0),
                    Place::Reg(regs),
                    &mut text
                ));
                assert!(text.is_empty());
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn integer_ops_match_the_general_encoder() {
        let disps = [0, 1, -1, 0x24, 127, 128, -128, -129, 0x1000, i32::MIN];
        let mnemonics = [
            Mnemonic::Add,
            Mnemonic::Or,
            Mnemonic::Adc,
            Mnemonic::Sbb,
            Mnemonic::And,
            Mnemonic::Sub,
            Mnemonic::Xor,
            Mnemonic::Cmp,
            Mnemonic::Imul,
        ];
        let mut checked = 0;
        for (arch, mode64) in [(Arch::X64, true), (Arch::X86, false)] {
            let regs = if mode64 { 16 } else { 8 };
            let sp = if mode64 {
                Reg::new(RegKind::Gp64, 4).unwrap()
            } else {
                Reg::new(RegKind::Gp32, 4).unwrap()
            };
            let widths: &[bool] = if mode64 { &[true, false] } else { &[false] };
            for &wide in widths {
                let (kind, size) = if wide {
                    (RegKind::Gp64, 8)
                } else {
                    (RegKind::Gp32, 4)
                };
                let reg = |hw: u8| Operand::Reg(Reg::new(kind, hw).unwrap());
                let slot =
                    |d: i32| Operand::Mem(Mem::new(MemBase::Reg(sp), i64::from(d)).with_size(size));
                for mnemonic in mnemonics {
                    // `mnemonic dst, src` here and by the general encoder.
                    let mut check = |dst: Place, src: Place, dst_op: Operand, src_op: Operand| {
                        let mut text = Vec::new();
                        let written =
                            encode_integer_op(mnemonic, wide, mode64, dst, src, &mut text);
                        if mnemonic == Mnemonic::Imul && matches!(dst, Place::Stack(_)) {
                            // No `imul` into memory: left alone.
                            assert!(!written && text.is_empty());
                            return;
                        }
                        assert!(written, "{mnemonic:?} {dst:?}, {src:?} {arch:?}");
                        let expected = general(arch, mnemonic, &[dst_op, src_op]);
                        assert_eq!(text, expected, "{mnemonic:?} {dst:?}, {src:?} {arch:?}");
                        checked += 1;
                    };
                    for a in 0..regs {
                        for b in 0..regs {
                            check(Place::Reg(a), Place::Reg(b), reg(a), reg(b));
                        }
                        for d in disps {
                            check(Place::Reg(a), Place::Stack(d), reg(a), slot(d));
                            check(Place::Stack(d), Place::Reg(a), slot(d), reg(a));
                        }
                    }
                    // What it does not write, it leaves alone.
                    let mut text = Vec::new();
                    for (dst, src) in [
                        (Place::Stack(8), Place::Stack(16)),
                        (Place::Reg(regs), Place::Reg(0)),
                        (Place::Reg(0), Place::Reg(regs)),
                    ] {
                        assert!(!encode_integer_op(
                            mnemonic, wide, mode64, dst, src, &mut text
                        ));
                    }
                    assert!(text.is_empty());
                }
            }
            let mut text = Vec::new();
            let (a, b) = (Place::Reg(0), Place::Reg(1));
            assert!(!encode_integer_op(
                Mnemonic::Test,
                false,
                mode64,
                a,
                b,
                &mut text
            ));
            assert_eq!(
                encode_integer_op(Mnemonic::Add, true, mode64, a, b, &mut text),
                mode64
            );
        }
        assert!(checked > 10_000);
    }

    /// An independent decoder reads the direct encoder's bytes as the
    /// instructions meant (the general encoder is checked the same way
    /// elsewhere; this guards the comparison above against a shared slip).
    #[test]
    fn integer_ops_decode_with_iced() {
        use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
        let cases = [
            (Mnemonic::Add, Place::Reg(0), Place::Reg(11), "add rax,r11"),
            (
                Mnemonic::Sub,
                Place::Reg(12),
                Place::Stack(0x40),
                "sub r12,[rsp+40h]",
            ),
            (
                Mnemonic::Xor,
                Place::Stack(-8),
                Place::Reg(13),
                "xor [rsp-8],r13",
            ),
            (
                Mnemonic::Imul,
                Place::Reg(5),
                Place::Stack(0x1000),
                "imul rbp,[rsp+1000h]",
            ),
            (Mnemonic::Imul, Place::Reg(9), Place::Reg(4), "imul r9,rsp"),
        ];
        let mut formatter = IntelFormatter::new();
        formatter
            .options_mut()
            .set_space_after_operand_separator(false);
        formatter
            .options_mut()
            .set_memory_size_options(iced_x86::MemorySizeOptions::Never);
        for (mnemonic, dst, src, expected) in cases {
            let mut text = Vec::new();
            assert!(encode_integer_op(mnemonic, true, true, dst, src, &mut text));
            let mut decoder = Decoder::new(64, &text, DecoderOptions::NONE);
            let inst = decoder.decode();
            assert_eq!(inst.len(), text.len(), "{expected}");
            let mut out = String::new();
            formatter.format(&inst, &mut out);
            assert_eq!(out, expected);
        }
    }
}
