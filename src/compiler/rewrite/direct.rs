//! The rewrite's own encoder for the edits that make up most of them: a
//! general-purpose move, spill store or reload (`mov r, r`, `mov [sp+d], r`,
//! `mov r, [sp+d]`) and a 16-byte vector one (`movups`) with registers
//! the legacy encoding names. Their bytes are a handful of fields, written
//! here straight into the code buffer: the general encoder (operands,
//! candidate forms, plans) costs some 400 machine instructions for each,
//! and the memo cannot hold the thousands of register and slot pairs of a
//! large function. The bytes are the general encoder's, to the byte (a
//! test compares every register and displacement class in both modes).

/// Where an edit's value is: a register by hardware number, or the spill
/// slot at a displacement from the stack pointer.
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
#[inline]
pub(super) fn encode_move(
    kind: MoveKind,
    mode64: bool,
    from: Place,
    to: Place,
    text: &mut Vec<u8>,
) -> bool {
    let limit = if mode64 { 16 } else { 8 };
    // The register in ModRM.reg, the other place in ModRM.rm, and the
    // opcode for that direction: `mov r/m, r` (89) and `mov r, r/m` (8B),
    // `movups xmm, xmm/m` (0F 10) and `movups xmm/m, xmm` (0F 11). A
    // register-to-register move takes the general encoder's first form:
    // 89 (source in reg) for `mov`, 0F 10 (destination in reg) for `movups`.
    let (reg, rm, store) = match (kind, from, to) {
        (_, Place::Stack(_), Place::Stack(_)) => return false,
        (_, Place::Reg(r), rm @ Place::Stack(_)) => (r, rm, true),
        (_, Place::Stack(_), Place::Reg(r)) => (r, from, false),
        (MoveKind::Gp, Place::Reg(r), rm @ Place::Reg(_)) => (r, rm, true),
        (MoveKind::Xmm, rm @ Place::Reg(_), Place::Reg(r)) => (r, rm, false),
    };
    if reg >= limit || matches!(rm, Place::Reg(r) if r >= limit) {
        return false;
    }
    let rm_high = match rm {
        Place::Reg(r) => r >> 3,
        Place::Stack(_) => 0,
    };
    let rex = match kind {
        MoveKind::Gp if mode64 => 0x48,
        _ => 0x40,
    } | (reg >> 3) << 2
        | rm_high;
    // Room for the longest (9 bytes) in the memo's size (see
    // `append_cut`). Each byte goes to a place at most a few bytes past a
    // count known to be small (no bounds check, no closure over an index).
    let mut bytes = [0u8; 15];
    bytes[0] = rex;
    let mut n = usize::from(rex != 0x40);
    match kind {
        MoveKind::Gp => {
            bytes[n] = if store { 0x89 } else { 0x8B };
            n += 1;
        }
        MoveKind::Xmm => {
            bytes[n] = 0x0F;
            bytes[n + 1] = if store { 0x11 } else { 0x10 };
            n += 2;
        }
    }
    let reg_bits = (reg & 7) << 3;
    match rm {
        Place::Reg(r) => {
            bytes[n] = 0xC0 | reg_bits | (r & 7);
            n += 1;
        }
        // [sp + disp]: rm 100 with a SIB byte of base sp and no index;
        // no displacement when it is 0, else 8 bits where they reach.
        Place::Stack(d) => {
            bytes[n + 1] = 0x24;
            if d == 0 {
                bytes[n] = reg_bits | 4;
                n += 2;
            } else if let Ok(d8) = i8::try_from(d) {
                bytes[n] = 0x40 | reg_bits | 4;
                bytes[n + 2] = d8 as u8;
                n += 3;
            } else {
                bytes[n] = 0x80 | reg_bits | 4;
                bytes[n + 2..n + 6].copy_from_slice(&d.to_le_bytes());
                n += 6;
            }
        }
    }
    // A fixed-size copy and the tail cut off: `bytes[..n]` would call
    // `memcpy` for a handful of bytes.
    crate::builder::append_cut(text, &bytes, n as u8);
    true
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
}
