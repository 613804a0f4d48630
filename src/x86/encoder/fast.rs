//! The fast path of the encoder: the common instructions of 64-bit code,
//! chosen and encoded in one pass and written straight into the section
//! buffer (no `Encoded` record, no second copy).
//!
//! It covers legacy, VEX and EVEX forms with general-purpose (r0-r15), MMX,
//! XMM/YMM/ZMM (all 32 where the encoding reaches them) and mask registers,
//! `{k}{z}` on the destination, `[base + index*scale + disp]` memory with
//! 64-bit registers (disp8*N and `{1toN}` broadcast for EVEX), immediates
//! and rel8/rel32 branches to labels. Its one rule for everything else is to
//! step aside: [`emit_fast`] returns `false` having written nothing, and the
//! general encoder (which also explains invalid instructions) takes over.
//!
//! It picks the form the general encoder picks: it walks the same candidate
//! list in the same order and skips a form only where the general encoder
//! would skip it too (a register or memory class, an immediate range, a
//! memory size, a broadcast it cannot take, a rel8 that does not reach, a
//! vector register the encoding cannot name, a form not valid in 64-bit
//! mode). Where it is unsure, it steps aside for the whole instruction.

use super::{Bytes, Slot, class_decides_register, imm_fits, imm_size, kind_classes, slot_of};
use crate::code::{CodeHolder, FixupKind, Label, SectionId};
use crate::x86::db::{
    self, Encoding, Form, MandatoryPrefix, ModRmSpec, OpcodeMap, OperandKind as K, VexL, VexW,
    flags, modes,
};
use crate::x86::mem::{Mem, MemBase};
use crate::x86::operand::Operand;
use crate::x86::reg::{Decorators, RegKind};

// The form fields this module reads, one accessor each, so that a change of
// the form record's layout touches these lines only.
#[inline(always)]
fn encoding(f: &Form) -> Encoding {
    f.encoding
}
#[inline(always)]
fn kinds(f: &Form) -> &[K] {
    f.explicit_kinds()
}
#[inline(always)]
fn valid_in_64(f: &Form) -> bool {
    f.modes & modes::M64 != 0
}
#[inline(always)]
fn modrm(f: &Form) -> ModRmSpec {
    f.modrm
}
#[inline(always)]
fn opcode(f: &Form) -> u8 {
    f.opcode
}
#[inline(always)]
fn map(f: &Form) -> OpcodeMap {
    f.map
}
#[inline(always)]
fn prefix(f: &Form) -> MandatoryPrefix {
    f.prefix
}
#[inline(always)]
fn operand_size(f: &Form) -> u8 {
    f.operand_size
}
#[inline(always)]
fn rex_w(f: &Form) -> bool {
    f.rex_w
}
#[inline(always)]
fn vex_w(f: &Form) -> VexW {
    f.w
}
#[inline(always)]
fn vex_l(f: &Form) -> VexL {
    f.l
}
#[inline(always)]
fn mem_size(f: &Form) -> u16 {
    f.mem_size
}
#[inline(always)]
fn bcst_size(f: &Form) -> u8 {
    f.bcst_size
}
#[inline(always)]
fn disp8_scale(f: &Form, broadcast: bool) -> u8 {
    if broadcast { f.disp8_nb } else { f.disp8_n }
}
/// Whether the form is one of those this path encodes: no APX bits, no
/// FWAIT, no address size of its own, a plain ModRM/opcode shape.
#[inline(always)]
fn plain(f: &Form) -> bool {
    f.apx == 0 && !f.fwait && f.address_size == 0
}

/// What a form makes of the operands.
enum Verdict {
    /// The form takes them: encode it.
    Takes,
    /// The general encoder would pass over this form too: try the next.
    Skip,
    /// Not for this path: let the general encoder do the whole instruction.
    Aside,
}

/// Whether `kind` is a ModRM.rm slot taking registers or plain memory.
#[inline(always)]
fn plain_rm(kind: K) -> bool {
    matches!(
        kind,
        K::R8M
            | K::R16M
            | K::R32M
            | K::R64M
            | K::MmM
            | K::XmmM
            | K::YmmM
            | K::ZmmM
            | K::KM
            | K::Mem
    )
}

/// Whether operand `op` fits slot `kind` of `form`, as [`super::accepts`]
/// decides for the operands this path lets through.
#[inline(always)]
fn verdict(kind: K, op: &Operand, form: &Form) -> Verdict {
    match op {
        Operand::Reg(r) => {
            if kind_classes(kind) & (1 << r.kind() as u32) == 0 {
                return Verdict::Skip;
            }
            if class_decides_register(kind) {
                return Verdict::Takes;
            }
            let fixed = match kind {
                K::Al | K::Cl | K::Ax | K::Dx | K::Eax | K::Rax => match kind {
                    K::Cl => 1,
                    K::Dx => 2,
                    _ => 0,
                },
                _ => return Verdict::Aside,
            };
            if r.id() == fixed {
                Verdict::Takes
            } else {
                Verdict::Skip
            }
        }
        Operand::Mem(m) => {
            if kind_classes(kind) & (1 << 24) == 0 {
                return Verdict::Skip;
            }
            match kind {
                // A base register is no absolute address; no vector index here.
                K::Moffs | K::Vm32x | K::Vm32y | K::Vm32z | K::Vm64x | K::Vm64y | K::Vm64z => {
                    return Verdict::Skip;
                }
                _ if !plain_rm(kind) => return Verdict::Aside,
                _ => {}
            }
            let bcst = bcst_size(form);
            if m.is_broadcast() {
                if bcst == 0 || m.size() != 0 && m.size() != u16::from(bcst) {
                    return Verdict::Skip;
                }
                if let Some(count) = m.broadcast_count() {
                    let memory_bytes = match (mem_size(form), vex_l(form)) {
                        (0, VexL::L128) => 16,
                        (0, VexL::L256) => 32,
                        (0, VexL::L512) => 64,
                        (0, VexL::Lig) => 0,
                        (n, _) => u32::from(n),
                    };
                    if memory_bytes / u32::from(bcst) != u32::from(count) {
                        return Verdict::Skip;
                    }
                }
                return Verdict::Takes;
            }
            let size = mem_size(form);
            if m.size() != 0 && size != 0 && m.size() != size {
                Verdict::Skip
            } else {
                Verdict::Takes
            }
        }
        Operand::Imm(v) => match kind {
            K::Imm8
            | K::One
            | K::Imm8Sx16
            | K::Imm8Sx32
            | K::Imm8Sx64
            | K::Imm16
            | K::Imm32
            | K::Imm32Sx64
            | K::Imm64 => {
                if imm_fits(kind, *v) {
                    Verdict::Takes
                } else {
                    Verdict::Skip
                }
            }
            _ if kind_classes(kind) & (1 << 25) == 0 => Verdict::Skip,
            _ => Verdict::Aside,
        },
        Operand::Label(_) => match kind {
            K::Rel8 | K::Rel32 => Verdict::Takes,
            _ if kind_classes(kind) & (1 << 26) == 0 => Verdict::Skip,
            _ => Verdict::Aside,
        },
        Operand::None => Verdict::Aside,
    }
}

/// Whether the operands are all of the kinds this path handles, whatever the
/// form: physical registers r0-r15 (any of the 32 vector registers; no
/// `ah`..`bh`), decorations on the first operand only, memory through 64-bit
/// base (and index) registers, immediates, labels of this code holder.
#[inline(always)]
fn operands_fit(code: &CodeHolder, operands: &[Operand]) -> bool {
    for (i, op) in operands.iter().enumerate() {
        match op {
            Operand::Reg(r) => {
                let ok = match r.kind() {
                    RegKind::Gp8 | RegKind::Gp16 | RegKind::Gp32 | RegKind::Gp64 => r.id() < 16,
                    RegKind::Mm | RegKind::K => true,
                    RegKind::Xmm | RegKind::Ymm | RegKind::Zmm => true,
                    _ => false,
                };
                if !ok || r.is_virtual() || i != 0 && !r.decorators().is_empty() {
                    return false;
                }
            }
            Operand::Mem(m) => {
                if !address_fits(m) {
                    return false;
                }
            }
            Operand::Imm(_) => {}
            Operand::Label(l) => {
                if l.id() as usize >= code.label_count() {
                    return false;
                }
            }
            Operand::None => return false,
        }
    }
    true
}

/// `[base + index*scale + disp32]` with physical 64-bit registers r0-r15,
/// no decorations and no `movabs` address.
#[inline(always)]
fn address_fits(m: &Mem) -> bool {
    let base_ok = match m.base() {
        MemBase::Reg(b) => b.kind() == RegKind::Gp64 && b.id() < 16 && !b.is_virtual(),
        _ => false,
    };
    let index_ok = match m.index() {
        None => true,
        Some(i) => i.kind() == RegKind::Gp64 && i.id() < 16 && i.id() != 4 && !i.is_virtual(),
    };
    base_ok
        && index_ok
        && matches!(m.scale(), 1 | 2 | 4 | 8)
        && !m.is_abs64()
        && m.decorators().is_empty()
        && i32::try_from(m.disp()).is_ok()
}

/// Encodes the instruction with the first of `candidates` that takes
/// `operands` (64-bit mode, no options but `short`) and appends it to
/// `section`. `false`: nothing written, the general encoder's turn.
pub(crate) fn emit_fast(
    code: &mut CodeHolder,
    section: SectionId,
    candidates: &[u16],
    operands: &[Operand],
    short: bool,
) -> bool {
    if !operands_fit(code, operands) {
        return false;
    }
    let offset = code.sections()[section.0 as usize].data.len();
    'forms: for &index in candidates {
        let form = db::form(index);
        let slots = kinds(form);
        if !valid_in_64(form) || slots.len() != operands.len() {
            continue;
        }
        let mut has_gp16 = false;
        let mut unsized_memory = false;
        for (op, &kind) in operands.iter().zip(slots) {
            match verdict(kind, op, form) {
                Verdict::Takes => {}
                Verdict::Skip => continue 'forms,
                Verdict::Aside => return false,
            }
            match op {
                Operand::Reg(r) => has_gp16 |= r.kind() == RegKind::Gp16,
                Operand::Mem(m) => unsized_memory |= m.size() == 0,
                _ => {}
            }
        }
        // A 16-bit form for unsized memory waits behind the others there.
        if operand_size(form) == 16 && unsized_memory && !has_gp16 {
            return false;
        }
        match encode(code, section, offset, form, operands, short) {
            Verdict::Takes => return true,
            Verdict::Skip => continue,
            Verdict::Aside => return false,
        }
    }
    false
}

/// Encodes `form` (which takes `operands`) at `offset` and appends it.
#[inline(always)]
fn encode(
    code: &mut CodeHolder,
    section: SectionId,
    offset: usize,
    form: &Form,
    operands: &[Operand],
    short: bool,
) -> Verdict {
    let enc = encoding(form);
    if !plain(form) {
        return Verdict::Aside;
    }
    let spec = modrm(form);
    let evex = enc == Encoding::Evex;
    let vex = enc == Encoding::Vex;
    if !(vex || evex || enc == Encoding::Legacy)
        || !matches!(
            spec,
            ModRmSpec::Reg
                | ModRmSpec::Digit(_)
                | ModRmSpec::OpcodeReg
                | ModRmSpec::None
                | ModRmSpec::Fixed(_)
        )
        || (vex || evex) && spec == ModRmSpec::OpcodeReg
        // `90+r` has the nop and `xchg eax, eax` rules of the general path.
        || spec == ModRmSpec::OpcodeReg && opcode(form) == 0x90
    {
        return Verdict::Aside;
    }
    let mut reg_id = 0u8;
    let mut rm_id = 0u8;
    let mut rm_gp = false;
    let mut vvvv_id = 0u8;
    let mut opcode_id = 0u8;
    let mut mem: Option<&Mem> = None;
    let mut needs_rex_byte = false;
    let mut slotted = false;
    let mut imms = [(0i64, 0u8); 2];
    let mut imm_count = 0;
    let mut rel: Option<(Label, bool)> = None;
    let mut decorators = Decorators::NONE;
    for (op, &kind) in operands.iter().zip(kinds(form)) {
        let slot = slot_of(kind);
        match *op {
            Operand::Reg(r) => {
                if !r.decorators().is_empty() {
                    decorators = r.decorators();
                }
                if slot == Slot::Nothing {
                    continue;
                }
                // VEX and legacy forms name registers 0-15 only: the
                // general encoder passes over them for 16-31.
                if r.id() >= 16 && !evex {
                    return Verdict::Skip;
                }
                needs_rex_byte |= r.kind() == RegKind::Gp8 && r.id() >= 4;
                slotted = true;
                match slot {
                    Slot::ModRmReg => reg_id = r.id(),
                    Slot::ModRmRm => {
                        rm_id = r.id();
                        rm_gp = r.kind().is_gp();
                    }
                    Slot::Vvvv => vvvv_id = r.id(),
                    Slot::OpcodeReg => opcode_id = r.id(),
                    _ => return Verdict::Aside,
                }
            }
            Operand::Imm(v) => match slot {
                Slot::Imm if imm_count < 2 => {
                    imms[imm_count] = (v, imm_size(kind) as u8);
                    imm_count += 1;
                }
                Slot::Nothing => {}
                _ => return Verdict::Aside,
            },
            Operand::Label(label) => rel = Some((label, kind == K::Rel8)),
            Operand::Mem(ref m) if slot == Slot::ModRmRm => {
                mem = Some(m);
                slotted = true;
            }
            _ => return Verdict::Aside,
        }
    }
    // Without a ModRM byte only fixed registers and immediates fit (`test al, ib`).
    if slotted && matches!(spec, ModRmSpec::None | ModRmSpec::Fixed(_)) {
        return Verdict::Aside;
    }
    // Masking and zeroing: EVEX forms that allow them.
    if !decorators.is_empty() {
        let mask = decorators.mask();
        if !evex
            || mask == 0
            || !form.has(flags::K)
            || decorators.zeroing() && !form.has(flags::Z)
            || decorators.virtual_mask()
        {
            return Verdict::Aside;
        }
    } else if evex && form.has(flags::K_REQUIRED) {
        return Verdict::Aside;
    }
    let broadcast = mem.is_some_and(|m| m.is_broadcast());
    if broadcast && !evex {
        return Verdict::Aside;
    }
    let r_id = match spec {
        ModRmSpec::Digit(d) => d,
        ModRmSpec::Reg => reg_id,
        _ => 0,
    };
    // Base and index of the address, or the rm / opcode register.
    let (b_id, x_id) = match mem {
        Some(m) => (
            match m.base() {
                MemBase::Reg(b) => b.id(),
                _ => 0,
            },
            m.index().map_or(0, |i| i.id()),
        ),
        None if spec == ModRmSpec::OpcodeReg => (opcode_id, 0),
        None => (rm_id, 0),
    };
    let mut b = Bytes {
        buf: [0; 32],
        len: 0,
    };
    if let Some(s) = mem.and_then(|m| m.segment()) {
        b.push([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][s.id() as usize & 7]);
    }
    let pp = match prefix(form) {
        MandatoryPrefix::P66 => 1,
        MandatoryPrefix::PF3 => 2,
        MandatoryPrefix::PF2 => 3,
        _ => 0,
    };
    let r_bit = (r_id >> 3) & 1;
    let b_bit = (b_id >> 3) & 1;
    if vex || evex {
        let map_bits = match map(form) {
            OpcodeMap::M0F => 1,
            OpcodeMap::M0F38 => 2,
            OpcodeMap::M0F3A => 3,
            OpcodeMap::Map5 if evex => 5,
            OpcodeMap::Map6 if evex => 6,
            _ => return Verdict::Aside,
        };
        let w_bit = u8::from(matches!(vex_w(form), VexW::W1 | VexW::W1Wig32));
        if vex {
            let x_bit = (x_id >> 3) & 1;
            let l_bit = u8::from(vex_l(form) == VexL::L256);
            let byte_last = (w_bit << 7) | ((!vvvv_id & 15) << 3) | (l_bit << 2) | pp;
            if map_bits == 1 && x_bit == 0 && b_bit == 0 && w_bit == 0 {
                b.push(0xc5);
                b.push(((r_bit ^ 1) << 7) | (byte_last & 0x7f));
            } else {
                b.push(0xc4);
                b.push(((r_bit ^ 1) << 7) | ((x_bit ^ 1) << 6) | ((b_bit ^ 1) << 5) | map_bits);
                b.push(byte_last);
            }
        } else {
            // A vector rm register keeps its bit 4 in EVEX.X; a
            // general-purpose one (r0-r15 here) and an address have none.
            let x_bit = match mem {
                Some(_) => (x_id >> 3) & 1,
                None if rm_gp => 0,
                None => (rm_id >> 4) & 1,
            };
            let r2_bit = (r_id >> 4) & 1;
            let p0 = ((r_bit ^ 1) << 7)
                | ((x_bit ^ 1) << 6)
                | ((b_bit ^ 1) << 5)
                | ((r2_bit ^ 1) << 4)
                | map_bits;
            // EVEX.X4 (P1 bit 2, inverted) is 0: no index r16-r31 here.
            let p1 = (w_bit << 7) | ((!vvvv_id & 15) << 3) | (1 << 2) | pp;
            let ll = match vex_l(form) {
                VexL::L256 => 1,
                VexL::L512 => 2,
                _ => 0,
            };
            let v2_bit = (vvvv_id >> 4) & 1;
            let p2 = (u8::from(decorators.zeroing()) << 7)
                | (ll << 5)
                | (u8::from(broadcast) << 4)
                | ((v2_bit ^ 1) << 3)
                | decorators.mask();
            b.push(0x62);
            b.push(p0);
            b.push(p1);
            b.push(p2);
        }
    } else {
        if operand_size(form) == 16 {
            b.push(0x66);
        }
        match pp {
            1 => b.push(0x66),
            2 => b.push(0xf3),
            3 => b.push(0xf2),
            _ => {}
        }
        let x_bit = (x_id >> 3) & 1;
        let rex = (u8::from(rex_w(form)) << 3) | (r_bit << 2) | (x_bit << 1) | b_bit;
        if rex != 0 || needs_rex_byte {
            b.push(0x40 | rex);
        }
        match map(form) {
            OpcodeMap::Primary => {}
            OpcodeMap::M0F => b.push(0x0f),
            OpcodeMap::M0F38 => {
                b.push(0x0f);
                b.push(0x38);
            }
            OpcodeMap::M0F3A => {
                b.push(0x0f);
                b.push(0x3a);
            }
            _ => return Verdict::Aside,
        }
    }
    match spec {
        ModRmSpec::OpcodeReg => b.push(opcode(form) | (opcode_id & 7)),
        ModRmSpec::None => b.push(opcode(form)),
        ModRmSpec::Fixed(byte) => {
            b.push(opcode(form));
            b.push(byte);
        }
        _ => {
            b.push(opcode(form));
            let reg_bits = (r_id & 7) << 3;
            match mem {
                Some(m) => {
                    let scale = if evex {
                        i64::from(disp8_scale(form, broadcast).max(1))
                    } else {
                        1
                    };
                    push_address(&mut b, m, reg_bits, b_id, scale);
                }
                None => b.push(0xc0 | reg_bits | (rm_id & 7)),
            }
        }
    }
    for &(v, n) in &imms[..imm_count] {
        b.push_le(v, n as usize);
    }
    let mut fixup = None;
    if let Some((label, rel8)) = rel {
        // `short` on a near form: the general encoder says why not.
        if short && !rel8 {
            return Verdict::Aside;
        }
        let at = b.len;
        let size = if rel8 { 1 } else { 4 };
        let end = (offset + at + size) as i64;
        match code.label_offset(label) {
            Some((s, target)) if s == section => {
                let distance = i64::from(target) - end;
                let fits = if rel8 {
                    i8::try_from(distance).is_ok()
                } else {
                    i32::try_from(distance).is_ok()
                };
                if !fits {
                    // Too far for rel8: the near form is next (with `short`,
                    // the general encoder says why not).
                    return if short { Verdict::Aside } else { Verdict::Skip };
                }
                b.push_le(distance, size);
            }
            Some(_) => return Verdict::Aside,
            None => {
                // Not bound yet: a rel8 field only on request.
                if rel8 && !short {
                    return Verdict::Skip;
                }
                b.push_le(0, size);
                let kind = if rel8 {
                    FixupKind::Rel8
                } else {
                    FixupKind::Rel32
                };
                fixup = Some((at, kind, label));
            }
        }
    }
    if b.len > 15 {
        return Verdict::Aside;
    }
    let len = b.len;
    let buf = code.buffer_mut(section);
    buf.extend_from_slice(&b.buf[..16]);
    buf.truncate(offset + len);
    if let Some((at, kind, label)) = fixup {
        // The label belongs to this code holder (checked above), so this
        // only records the use.
        let recorded = code.add_label_use(section, offset + at, kind, label, (len - at) as u8, 0);
        debug_assert!(recorded.is_ok());
    }
    Verdict::Takes
}

/// ModRM (mod and rm; `reg_bits` already shifted), SIB and displacement of
/// an address through 64-bit registers (checked by [`address_fits`]), with
/// the EVEX disp8 scale `scale` (1 otherwise).
#[inline(always)]
fn push_address(b: &mut Bytes, m: &Mem, reg_bits: u8, base_id: u8, scale: i64) {
    let low = base_id & 7;
    let disp = m.disp();
    let (modrm_mod, disp, disp_size) = if disp == 0 && low != 5 {
        (0, 0, 0)
    } else if disp % scale == 0 && i8::try_from(disp / scale).is_ok() {
        (1, disp / scale, 1)
    } else {
        (2, disp, 4)
    };
    match m.index() {
        Some(index) => {
            let scale_bits = match m.scale() {
                1 => 0,
                2 => 1,
                4 => 2,
                _ => 3,
            };
            b.push((modrm_mod << 6) | reg_bits | 4);
            b.push((scale_bits << 6) | ((index.id() & 7) << 3) | low);
        }
        None if low == 4 => {
            b.push((modrm_mod << 6) | reg_bits | 4);
            b.push(0x24);
        }
        None => b.push((modrm_mod << 6) | reg_bits | low),
    }
    b.push_le(disp, disp_size);
}
