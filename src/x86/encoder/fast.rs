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
//! Each candidate form is first turned into a [`Plan`]: everything about it
//! that does not depend on the operands (prefix bytes, REX.W, the VEX/EVEX
//! fixed fields, opcode, ModRM extension, where each operand goes, what
//! each slot takes). [`Plan::of`] is the one place that reads the form
//! record. The typed API computes the plans of each class tuple's first
//! candidates when the program is compiled ([`FormPlans`], in a `const`
//! block of the generated method) and [`emit_planned`] encodes them inline,
//! so that at a call site a plan folds to the few steps its operands need;
//! the dynamic API plans each candidate as it tries it ([`emit_fast`]).
//!
//! It picks the form the general encoder picks: it walks the same candidate
//! list in the same order and skips a form only where the general encoder
//! would skip it too (a register or memory class, an immediate range, a
//! memory size, a broadcast it cannot take, a rel8 that does not reach, a
//! vector register the encoding cannot name, a form not valid in 64-bit
//! mode). Where it is unsure, it steps aside for the whole instruction.

use super::{Bytes, Slot, class_decides_register, imm_fits, imm_size, kind_classes, slot_of};
use crate::code::{CodeHolder, FixupKind, Label, SectionId};
use crate::x86::db::generated_opcodes::NOP;
use crate::x86::db::{
    self, Encoding, MandatoryPrefix, ModRmSpec, OpcodeMap, OperandKind as K, VexL, VexW, flags,
    modes,
};
use crate::x86::mem::{Mem, MemBase};
use crate::x86::operand::Operand;
use crate::x86::reg::{Decorators, RegKind};
use std::cell::Cell;

/// What a form makes of the operands.
enum Verdict {
    /// The form takes them: it is encoded.
    Takes,
    /// The general encoder would pass over this form too: try the next.
    Skip,
    /// Not for this path: let the general encoder do the whole instruction.
    Aside,
}

/// How the fast path treats one operand slot of a form.
#[derive(Clone, Copy, Debug)]
struct SlotPlan {
    /// The slot's operand kind.
    kind: K,
    /// Where the operand goes.
    slot: Slot,
    /// The register kind (as `RegKind as u8 + 1`) the slot takes, 0 for none.
    reg: u8,
    /// For a fixed register (`al`, `cl`, ...): its id + 1; 0 otherwise.
    fixed: u8,
    /// Memory: 0 none (a memory operand skips the form), 1 register or
    /// plain memory (`r/m`, `m`), 2 a kind no general-register address fits
    /// (`moffs`, VSIB: skips the form).
    mem: u8,
    /// Whether an immediate may fit (its range decides).
    imm: bool,
    /// Label: 0 none, 1 rel8, 2 rel32.
    label: u8,
}

/// A form as the fast path needs it, computed from its database record
/// (at compile time for the typed API's candidates): which operands fit
/// where, and the bytes that do not depend on them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// [`LEGACY`], [`VEX`], [`EVEX`], or [`NOT_64`] (skipped in 64-bit mode)
    /// or [`ASIDE`] (not for this path).
    encoding: u8,
    /// Number of explicit operands.
    arity: u8,
    slots: [SlotPlan; 4],
    /// Legacy: the operand-size and mandatory prefixes, in order.
    prefixes: [u8; 2],
    prefix_count: u8,
    /// Legacy: REX.W (8) or 0.
    rex_w: u8,
    /// Legacy: the opcode map escape bytes.
    escape: [u8; 2],
    escape_count: u8,
    /// VEX/EVEX: the map field.
    map_bits: u8,
    /// VEX/EVEX: W.
    w_bit: u8,
    /// VEX/EVEX: pp.
    pp: u8,
    /// VEX: L; EVEX: L'L.
    vector_length: u8,
    opcode: u8,
    /// How the ModRM byte is formed: one of the `MODRM_*` values.
    modrm: u8,
    /// `/digit`: the digit; a fixed second byte: the byte.
    modrm_value: u8,
    /// Memory operand size in bytes (0: any).
    mem_size: u16,
    /// Broadcast element size (0: none).
    bcst_size: u8,
    /// Elements of a `{1toN}` broadcast (0: none fits).
    bcst_count: u8,
    /// EVEX disp8 scale without and with broadcast.
    disp8: [u8; 2],
    /// [`flags`] bits K, K_REQUIRED and Z.
    masking: u16,
    /// A 16-bit operand-size form.
    operand_size_16: bool,
}

const LEGACY: u8 = 0;
const VEX: u8 = 1;
const EVEX: u8 = 2;
const NOT_64: u8 = 3;
const ASIDE: u8 = 4;

const MODRM_REG: u8 = 0;
const MODRM_DIGIT: u8 = 1;
const MODRM_OPCODE_REG: u8 = 2;
const MODRM_NONE: u8 = 3;
const MODRM_FIXED: u8 = 4;

impl SlotPlan {
    const NONE: SlotPlan = SlotPlan {
        kind: K::None,
        slot: Slot::Nothing,
        reg: 0,
        fixed: 0,
        mem: 0,
        imm: false,
        label: 0,
    };

    /// The plan of a slot of kind `kind`; `None` when this path does not
    /// handle the kind.
    const fn of(kind: K) -> Option<SlotPlan> {
        let classes = kind_classes(kind);
        let mut plan = SlotPlan {
            kind,
            slot: slot_of(kind),
            ..SlotPlan::NONE
        };
        // The register kind: the lowest class bit below memory (an 8-bit
        // slot also takes ah..bh, which this path leaves aside).
        let regs = classes & ((1 << 24) - 1);
        if regs != 0 {
            plan.reg = regs.trailing_zeros() as u8 + 1;
            let fixed = match kind {
                K::Al | K::Ax | K::Eax | K::Rax => 1,
                K::Cl => 2,
                K::Dx => 3,
                _ => 0,
            };
            if fixed == 0 && !class_decides_register(kind) {
                return None;
            }
            plan.fixed = fixed;
        }
        if classes & (1 << 24) != 0 {
            plan.mem = match kind {
                K::R8M
                | K::R16M
                | K::R32M
                | K::R64M
                | K::MmM
                | K::XmmM
                | K::YmmM
                | K::ZmmM
                | K::KM
                | K::Mem => 1,
                K::Moffs | K::Vm32x | K::Vm32y | K::Vm32z | K::Vm64x | K::Vm64y | K::Vm64z => 2,
                _ => return None,
            };
        }
        match kind {
            K::Imm8
            | K::One
            | K::Imm8Sx16
            | K::Imm8Sx32
            | K::Imm8Sx64
            | K::Imm16
            | K::Imm32
            | K::Imm32Sx64
            | K::Imm64 => plan.imm = true,
            K::Rel8 => plan.label = 1,
            K::Rel32 => plan.label = 2,
            _ if classes & (3 << 25) != 0 => return None,
            _ => {}
        }
        match plan.slot {
            Slot::Is4 | Slot::Far => None,
            _ => Some(plan),
        }
    }
}

impl Plan {
    /// A plan that sends the instruction to the general encoder.
    const ASIDE: Plan = Plan {
        encoding: ASIDE,
        arity: 0,
        slots: [SlotPlan::NONE; 4],
        prefixes: [0; 2],
        prefix_count: 0,
        rex_w: 0,
        escape: [0; 2],
        escape_count: 0,
        map_bits: 0,
        w_bit: 0,
        pp: 0,
        vector_length: 0,
        opcode: 0,
        modrm: 0,
        modrm_value: 0,
        mem_size: 0,
        bcst_size: 0,
        bcst_count: 0,
        disp8: [1; 2],
        masking: 0,
        operand_size_16: false,
    };

    /// The plan of the form with this index in the form table.
    pub(crate) const fn of(index: u16) -> Plan {
        let form = &db::FORMS[index as usize];
        let mut plan = Plan::ASIDE;
        if form.modes() & modes::M64 == 0 {
            plan.encoding = NOT_64;
            return plan;
        }
        // `xchg` with the accumulator first takes the general path's `90+r`
        // swap, which no single form's plan can see.
        if matches!(form.mnemonic(), db::Mnemonic::Xchg) {
            return plan;
        }
        // No APX bits, no FWAIT, no address size of its own.
        if form.apx() != 0 || form.fwait() || form.address_size() != 0 || form.explicit() > 4 {
            return plan;
        }
        plan.arity = form.explicit();
        let mut i = 0;
        let mut registers_slotted = false;
        while i < form.explicit() as usize {
            match SlotPlan::of(form.operands()[i]) {
                Some(slot) => {
                    registers_slotted |= matches!(
                        slot.slot,
                        Slot::ModRmReg | Slot::ModRmRm | Slot::Vvvv | Slot::OpcodeReg
                    );
                    plan.slots[i] = slot;
                }
                None => return plan,
            }
            i += 1;
        }
        (plan.modrm, plan.modrm_value) = match form.modrm() {
            ModRmSpec::Reg => (MODRM_REG, 0),
            ModRmSpec::Digit(d) => (MODRM_DIGIT, d),
            // `90+r` has the nop and `xchg eax, eax` rules of the general path.
            ModRmSpec::OpcodeReg if form.opcode() == NOP => return plan,
            ModRmSpec::OpcodeReg => (MODRM_OPCODE_REG, 0),
            // Without a ModRM byte only fixed registers and immediates fit.
            ModRmSpec::None if !registers_slotted => (MODRM_NONE, 0),
            ModRmSpec::Fixed(byte) if !registers_slotted => (MODRM_FIXED, byte),
            _ => return plan,
        };
        plan.opcode = form.opcode();
        plan.pp = match form.prefix() {
            MandatoryPrefix::P66 => 1,
            MandatoryPrefix::PF3 => 2,
            MandatoryPrefix::PF2 => 3,
            _ => 0,
        };
        plan.map_bits = match form.map() {
            OpcodeMap::M0F => 1,
            OpcodeMap::M0F38 => 2,
            OpcodeMap::M0F3A => 3,
            OpcodeMap::Map5 => 5,
            OpcodeMap::Map6 => 6,
            _ => 0,
        };
        plan.w_bit = matches!(form.w(), VexW::W1 | VexW::W1Wig32) as u8;
        plan.operand_size_16 = form.operand_size() == 16;
        plan.mem_size = form.mem_size();
        plan.bcst_size = form.bcst_size();
        if form.bcst_size() != 0 {
            let memory_bytes = match (form.mem_size(), form.l()) {
                (0, VexL::L128) => 16,
                (0, VexL::L256) => 32,
                (0, VexL::L512) => 64,
                (0, VexL::Lig) => 0,
                (n, _) => n as u32,
            };
            plan.bcst_count = (memory_bytes / form.bcst_size() as u32) as u8;
        }
        plan.disp8 = [
            if form.disp8_n() == 0 {
                1
            } else {
                form.disp8_n()
            },
            if form.disp8_nb() == 0 {
                1
            } else {
                form.disp8_nb()
            },
        ];
        plan.masking = form.flags() & (flags::K | flags::K_REQUIRED | flags::Z);
        match form.encoding() {
            Encoding::Legacy => {
                if form.operand_size() == 16 {
                    plan.prefixes[plan.prefix_count as usize] = 0x66;
                    plan.prefix_count += 1;
                }
                if plan.pp != 0 {
                    plan.prefixes[plan.prefix_count as usize] =
                        [0, 0x66, 0xf3, 0xf2][plan.pp as usize];
                    plan.prefix_count += 1;
                }
                plan.rex_w = if form.rex_w() { 8 } else { 0 };
                (plan.escape, plan.escape_count) = match form.map() {
                    OpcodeMap::Primary => ([0, 0], 0),
                    OpcodeMap::M0F => ([0x0f, 0], 1),
                    OpcodeMap::M0F38 => ([0x0f, 0x38], 2),
                    OpcodeMap::M0F3A => ([0x0f, 0x3a], 2),
                    _ => return plan,
                };
                plan.encoding = LEGACY;
            }
            Encoding::Vex if plan.modrm != MODRM_OPCODE_REG => {
                if !matches!(plan.map_bits, 1..=3) {
                    return plan;
                }
                plan.vector_length = (matches!(form.l(), VexL::L256)) as u8;
                plan.encoding = VEX;
            }
            Encoding::Evex if plan.modrm != MODRM_OPCODE_REG => {
                if plan.map_bits == 0 {
                    return plan;
                }
                plan.vector_length = match form.l() {
                    VexL::L256 => 1,
                    VexL::L512 => 2,
                    _ => 0,
                };
                plan.encoding = EVEX;
            }
            _ => {}
        }
        plan
    }
}

/// The typed API's compile-time knowledge of one instruction: its candidate
/// forms (indices into the database, in preference order) and the plans of
/// the first few valid in 64-bit mode, computed when the program is compiled.
#[derive(Debug)]
pub struct FormPlans {
    forms: &'static [u16],
    plans: [Plan; FormPlans::PLANNED],
    /// How many of `plans` are in use.
    planned: u8,
    /// Where the candidates without a plan start in `forms`.
    rest: u8,
}

impl FormPlans {
    /// How many candidates get a plan at compile time (the rest, rarely
    /// reached, are planned when needed).
    const PLANNED: usize = 4;

    /// The plans of `forms` (the candidates of a class tuple, from the
    /// generated signature traits).
    pub const fn of(forms: &'static [u16]) -> FormPlans {
        let mut plans = [Plan::ASIDE; FormPlans::PLANNED];
        let mut planned = 0;
        let mut i = 0;
        while i < forms.len() && planned < FormPlans::PLANNED {
            let plan = Plan::of(forms[i]);
            // The fast path runs in 64-bit mode only: the other forms
            // would be passed over there.
            if plan.encoding != NOT_64 {
                plans[planned] = plan;
                planned += 1;
            }
            i += 1;
        }
        FormPlans {
            forms,
            plans,
            planned: planned as u8,
            rest: i as u8,
        }
    }

    /// The candidate forms, in preference order.
    pub fn forms(&self) -> &'static [u16] {
        self.forms
    }

    /// The plans of the first candidates valid in 64-bit mode, and the
    /// candidates after them.
    #[inline(always)]
    pub(crate) fn split(&self) -> (&[Plan], &'static [u16]) {
        let plans = &self.plans[..usize::from(self.planned).min(FormPlans::PLANNED)];
        let rest = self.forms.get(usize::from(self.rest)..).unwrap_or_default();
        (plans, rest)
    }
}

/// Whether the operands are all of the kinds this path handles, whatever the
/// form: physical registers r0-r15 (any of the 32 vector registers; no
/// `ah`..`bh`), decorations on the first operand only, memory through 64-bit
/// base (and index) registers, immediates, labels of this code holder.
#[inline(always)]
fn operands_fit(code: &CodeHolder, operands: &[Operand]) -> bool {
    // No form of this path has more than four operands. Each operand's
    // check is written out (not looped) so that it folds at a typed call
    // site, as in `encode`.
    if operands.len() > 4 {
        return false;
    }
    macro_rules! check_operand {
        ($i:literal) => {
            if let Some(op) = operands.get($i) {
                match op {
                    Operand::Reg(r) => {
                        let ok = match r.kind() {
                            RegKind::Gp8 | RegKind::Gp16 | RegKind::Gp32 | RegKind::Gp64 => {
                                r.id() < 16
                            }
                            RegKind::Mm | RegKind::K => true,
                            RegKind::Xmm | RegKind::Ymm | RegKind::Zmm => true,
                            _ => false,
                        };
                        if !ok || r.is_virtual() || $i != 0 && !r.decorators().is_empty() {
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
        };
    }
    check_operand!(0);
    check_operand!(1);
    check_operand!(2);
    check_operand!(3);
    true
}

/// `[base + index*scale + disp32]` with physical 64-bit registers r0-r15,
/// no decorations and no `movabs` address (computed when the address was
/// built: see [`Mem::is_plain64`]).
#[inline(always)]
fn address_fits(m: &Mem) -> bool {
    m.is_plain64()
}

/// Where the fast path writes: a section's buffer and its length as the
/// caller keeps it. The Assembler keeps the length in a field of its own,
/// so that from one instruction to the next it is read where it was just
/// written (through the same, unchanged pointer: a forwarding the processor
/// does at once), not out of the buffer, which it still updates. A length
/// that is not the buffer's sends the instruction to the general encoder.
pub(crate) struct Out<'b> {
    /// The section's bytes.
    pub(crate) buf: &'b mut Vec<u8>,
    /// `buf.len()`, as the caller keeps it.
    pub(crate) len: &'b mut usize,
}

/// Encodes the instruction with the first of `candidates` that takes
/// `operands` (64-bit mode, no options but `short`) and appends it to
/// `section`, planning each candidate as it goes. `false`: nothing
/// written, the general encoder's turn.
pub(crate) fn emit_fast(
    code: &mut CodeHolder,
    section: SectionId,
    out: &mut Out<'_>,
    candidates: &[u16],
    operands: &[Operand],
    short: bool,
) -> bool {
    *out.len == out.buf.len()
        && operands_fit(code, operands)
        && emit_from(code, section, out, candidates, operands, short)
}

/// [`emit_fast`] for operands already checked by [`operands_fit`].
fn emit_from(
    code: &mut CodeHolder,
    section: SectionId,
    out: &mut Out<'_>,
    candidates: &[u16],
    operands: &[Operand],
    short: bool,
) -> bool {
    for &index in candidates {
        match encode(code, section, out, &remembered_plan(index), operands, short) {
            Verdict::Takes => return true,
            Verdict::Skip => continue,
            Verdict::Aside => return false,
        }
    }
    false
}

/// How many plans each thread remembers for the dynamic API (a power of
/// two: a form's index picks its entry).
const REMEMBERED_PLANS: usize = 128;

thread_local! {
    /// The plans of the forms the dynamic API tried last on this thread,
    /// each in the entry its form index picks (with the index + 1; 0 is an
    /// empty entry). Planning a form reads a dozen fields of its record,
    /// several hundred instructions, where the typed API's plans are
    /// constants; a program that emits at run time tries the same few
    /// forms over and over. Per thread, so that no lock is needed; the
    /// entries are plain values, so the thread-local needs no destructor.
    static PLANS: [Cell<(u16, Plan)>; REMEMBERED_PLANS] =
        const { [const { Cell::new((0, UNUSED_PLAN)) }; REMEMBERED_PLANS] };
}

/// What an empty entry of [`PLANS`] holds: never read (its key is 0), and
/// all zero bytes, so that the thread-local's initial value takes no room
/// in the program file (a nonzero one is stored there, 7 kB).
const UNUSED_PLAN: Plan = Plan {
    encoding: 0,
    slots: [SlotPlan {
        slot: Slot::ModRmReg,
        ..SlotPlan::NONE
    }; 4],
    disp8: [0; 2],
    ..Plan::ASIDE
};

/// [`Plan::of`] for the dynamic API, from this thread's remembered plans
/// when the form was planned before.
#[inline]
fn remembered_plan(index: u16) -> Plan {
    PLANS.with(|plans| {
        let entry = &plans[usize::from(index) % REMEMBERED_PLANS];
        let (key, plan) = entry.get();
        if key == index.wrapping_add(1) {
            return plan;
        }
        let plan = Plan::of(index);
        entry.set((index.wrapping_add(1), plan));
        plan
    })
}

/// [`emit_fast`] for the typed API: the planned candidates inline, where
/// their plans are compile-time constants and the operands' kinds are
/// known, so that most of the work folds away (and the plans of forms that
/// cannot be reached fold away with it); any others out of line.
#[inline(always)]
pub(crate) fn emit_planned(
    code: &mut CodeHolder,
    section: SectionId,
    plans: &FormPlans,
    operands: &[Operand],
    short: bool,
) -> bool {
    let Some(mut buffer) = code.buffer_ptr(section) else {
        return false;
    };
    // SAFETY: the pointer is the buffer of an existing section, just taken;
    // the encoder reaches only the labels through `code`, never this buffer.
    let buf = unsafe { buffer.as_mut() };
    let mut len = buf.len();
    let mut out = Out { buf, len: &mut len };
    emit_planned_to(code, section, &mut out, plans, operands, short)
}

/// [`emit_planned`] writing into `out`, the buffer of `section` of `code`,
/// which the caller keeps at hand (the Assembler: no look-up of the
/// section per instruction).
#[inline(always)]
pub(crate) fn emit_planned_to(
    code: &mut CodeHolder,
    section: SectionId,
    out: &mut Out<'_>,
    plans: &FormPlans,
    operands: &[Operand],
    short: bool,
) -> bool {
    if *out.len != out.buf.len() || !operands_fit(code, operands) {
        return false;
    }
    let (planned, rest) = plans.split();
    // Each plan written out rather than looped, so that it is a constant
    // where it is used (a loop keeps the plans from folding).
    macro_rules! try_plan {
        ($i:literal) => {
            if let Some(plan) = planned.get($i) {
                match encode(code, section, out, plan, operands, short) {
                    Verdict::Takes => return true,
                    Verdict::Skip => {}
                    Verdict::Aside => return false,
                }
            }
        };
    }
    const _: () = assert!(FormPlans::PLANNED == 4);
    try_plan!(0);
    try_plan!(1);
    try_plan!(2);
    try_plan!(3);
    !rest.is_empty() && emit_from(code, section, out, rest, operands, short)
}

/// Whether `op` fits slot `s` of a form, as [`super::accepts`] decides for
/// the operands this path lets through.
#[inline(always)]
fn verdict(s: &SlotPlan, op: &Operand, plan: &Plan) -> Verdict {
    match op {
        Operand::Reg(r) => {
            let kind_fits = r.kind() as u8 + 1 == s.reg;
            if kind_fits && (s.fixed == 0 || r.id() + 1 == s.fixed) {
                Verdict::Takes
            } else {
                Verdict::Skip
            }
        }
        Operand::Mem(m) => {
            if s.mem != 1 {
                return Verdict::Skip;
            }
            if m.is_broadcast() {
                let size = m.size();
                if plan.bcst_size == 0
                    || size != 0 && size != u16::from(plan.bcst_size)
                    || m.broadcast_count().is_some_and(|n| n != plan.bcst_count)
                {
                    return Verdict::Skip;
                }
                return Verdict::Takes;
            }
            if m.size() != 0 && plan.mem_size != 0 && m.size() != plan.mem_size {
                Verdict::Skip
            } else {
                Verdict::Takes
            }
        }
        Operand::Imm(v) => {
            if !s.imm {
                // An absolute branch target: the general encoder's.
                if s.label != 0 {
                    Verdict::Aside
                } else {
                    Verdict::Skip
                }
            } else if imm_fits(s.kind, *v) {
                Verdict::Takes
            } else {
                Verdict::Skip
            }
        }
        Operand::Label(_) => {
            if s.label != 0 {
                Verdict::Takes
            } else {
                Verdict::Skip
            }
        }
        Operand::None => Verdict::Aside,
    }
}

/// Encodes the form of `plan` at the end of `out`, the buffer of `section`
/// of `code`, if it takes `operands`. `code` serves for the labels only
/// (the caller keeps `out` at hand, so that writing needs no look-up).
#[inline(always)]
fn encode(
    code: &mut CodeHolder,
    section: SectionId,
    out: &mut Out<'_>,
    plan: &Plan,
    operands: &[Operand],
    short: bool,
) -> Verdict {
    match plan.encoding {
        NOT_64 => return Verdict::Skip,
        ASIDE => return Verdict::Aside,
        _ => {}
    }
    if plan.arity as usize != operands.len() {
        return Verdict::Skip;
    }
    let evex = plan.encoding == EVEX;
    let mut reg_id = 0u8;
    let mut rm_id = 0u8;
    let mut rm_gp = false;
    let mut vvvv_id = 0u8;
    let mut opcode_id = 0u8;
    let mut mem: Option<Mem> = None;
    let mut needs_rex_byte = false;
    let mut has_gp16 = false;
    let mut imms = [(0i64, 0u8); 2];
    let mut imm_count = 0;
    let mut rel: Option<(Label, bool)> = None;
    let mut decorators = Decorators::NONE;
    // Each operand's step written out for slots 0 to 3 (the arity is at
    // most 4) rather than looped: at a typed call site the operands are
    // constants, and straight-line steps fold without waiting for the
    // optimizer to unroll a loop (which it does not, for a body this big).
    macro_rules! take_operand {
        ($i:literal) => {
            if let Some(op) = operands.get($i) {
                let s = &plan.slots[$i];
                match verdict(s, op, plan) {
                    Verdict::Takes => {}
                    other => return other,
                }
                match *op {
                    Operand::Reg(r) => {
                        if !r.decorators().is_empty() {
                            decorators = r.decorators();
                        }
                        has_gp16 |= r.kind() == RegKind::Gp16;
                        // VEX and legacy forms name registers 0-15 only: the
                        // general encoder passes over them for 16-31.
                        if r.id() >= 16 && !evex {
                            return Verdict::Skip;
                        }
                        needs_rex_byte |= r.kind() == RegKind::Gp8 && r.id() >= 4;
                        match s.slot {
                            Slot::ModRmReg => reg_id = r.id(),
                            Slot::ModRmRm => {
                                rm_id = r.id();
                                rm_gp = r.kind().is_gp();
                            }
                            Slot::Vvvv => vvvv_id = r.id(),
                            Slot::OpcodeReg => opcode_id = r.id(),
                            _ => {}
                        }
                    }
                    Operand::Imm(v) => {
                        if s.slot == Slot::Imm && imm_count < 2 {
                            imms[imm_count] = (v, imm_size(s.kind) as u8);
                            imm_count += 1;
                        }
                    }
                    Operand::Label(label) => rel = Some((label, s.label == 1)),
                    // A copy, not a reference: the operands can then stay
                    // values rather than memory.
                    Operand::Mem(m) => mem = Some(m),
                    Operand::None => return Verdict::Aside,
                }
            }
        };
    }
    take_operand!(0);
    take_operand!(1);
    take_operand!(2);
    take_operand!(3);
    // A 16-bit form for unsized memory waits behind the others there.
    if plan.operand_size_16 && !has_gp16 && mem.is_some_and(|m| m.size() == 0) {
        return Verdict::Aside;
    }
    // Masking and zeroing: EVEX forms that allow them.
    if !decorators.is_empty() {
        if !evex
            || decorators.mask() == 0
            || plan.masking & flags::K == 0
            || decorators.zeroing() && plan.masking & flags::Z == 0
            || decorators.virtual_mask()
        {
            return Verdict::Aside;
        }
    } else if evex && plan.masking & flags::K_REQUIRED != 0 {
        return Verdict::Aside;
    }
    let broadcast = mem.is_some_and(|m| m.is_broadcast());
    if broadcast && !evex {
        return Verdict::Aside;
    }
    let r_id = match plan.modrm {
        MODRM_DIGIT => plan.modrm_value,
        MODRM_REG => reg_id,
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
        None if plan.modrm == MODRM_OPCODE_REG => (opcode_id, 0),
        None => (rm_id, 0),
    };
    let mut b = Bytes::<24>::new();
    if let Some(s) = mem.and_then(|m| m.segment()) {
        b.push([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][s.id() as usize & 7]);
    }
    let r_bit = (r_id >> 3) & 1;
    let b_bit = (b_id >> 3) & 1;
    let x_bit = (x_id >> 3) & 1;
    match plan.encoding {
        LEGACY => {
            for &p in &plan.prefixes[..plan.prefix_count as usize] {
                b.push(p);
            }
            let rex = plan.rex_w | (r_bit << 2) | (x_bit << 1) | b_bit;
            if rex != 0 || needs_rex_byte {
                b.push(0x40 | rex);
            }
            for &e in &plan.escape[..plan.escape_count as usize] {
                b.push(e);
            }
        }
        VEX => {
            let byte_last =
                (plan.w_bit << 7) | ((!vvvv_id & 15) << 3) | (plan.vector_length << 2) | plan.pp;
            if plan.map_bits == 1 && x_bit == 0 && b_bit == 0 && plan.w_bit == 0 {
                b.push(0xc5);
                b.push(((r_bit ^ 1) << 7) | (byte_last & 0x7f));
            } else {
                b.push(0xc4);
                b.push(
                    ((r_bit ^ 1) << 7) | ((x_bit ^ 1) << 6) | ((b_bit ^ 1) << 5) | plan.map_bits,
                );
                b.push(byte_last);
            }
        }
        _ => {
            // A vector rm register keeps its bit 4 in EVEX.X; a
            // general-purpose one (r0-r15 here) and an address have none.
            let x_bit = match mem {
                Some(_) => x_bit,
                None if rm_gp => 0,
                None => (rm_id >> 4) & 1,
            };
            let r2_bit = (r_id >> 4) & 1;
            let p0 = ((r_bit ^ 1) << 7)
                | ((x_bit ^ 1) << 6)
                | ((b_bit ^ 1) << 5)
                | ((r2_bit ^ 1) << 4)
                | plan.map_bits;
            // EVEX.X4 (P1 bit 2, inverted) is 0: no index r16-r31 here.
            let p1 = (plan.w_bit << 7) | ((!vvvv_id & 15) << 3) | (1 << 2) | plan.pp;
            let v2_bit = (vvvv_id >> 4) & 1;
            let p2 = (u8::from(decorators.zeroing()) << 7)
                | (plan.vector_length << 5)
                | (u8::from(broadcast) << 4)
                | ((v2_bit ^ 1) << 3)
                | decorators.mask();
            b.push(0x62);
            b.push(p0);
            b.push(p1);
            b.push(p2);
        }
    }
    match plan.modrm {
        MODRM_OPCODE_REG => b.push(plan.opcode | (opcode_id & 7)),
        MODRM_NONE => b.push(plan.opcode),
        MODRM_FIXED => {
            b.push(plan.opcode);
            b.push(plan.modrm_value);
        }
        _ => {
            b.push(plan.opcode);
            let reg_bits = (r_id & 7) << 3;
            match mem {
                Some(m) => {
                    let scale = if evex {
                        i64::from(plan.disp8[usize::from(broadcast)])
                    } else {
                        1
                    };
                    push_address(&mut b, &m, reg_bits, b_id, scale);
                }
                None => b.push(0xc0 | reg_bits | (rm_id & 7)),
            }
        }
    }
    for &(v, n) in &imms[..imm_count] {
        b.push_le(v, n as usize);
    }
    let offset = *out.len;
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
    let buf = &mut *out.buf;
    // Room for 16 bytes, one fixed-size 16-byte copy per instruction (the
    // compiler turns it into a few stores), then the length, in the buffer
    // and where the caller keeps it.
    if buf.capacity() - offset < 16 {
        buf.reserve(16);
    }
    // SAFETY: `offset` is the buffer's length (the callers check `out`),
    // and the buffer has room for 16 bytes after it (just ensured);
    // `b.buf` holds at least 16, and the first `len <= 15` of them, now
    // written, become the buffer's new bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(b.buf.as_ptr(), buf.as_mut_ptr().add(offset), 16);
        buf.set_len(offset + len);
    }
    *out.len = offset + len;
    if let Some((at, kind, label)) = fixup {
        // The label belongs to this code holder (checked above) and is not
        // bound, so this only records the use: it touches the label and
        // fixup tables, never the section buffer `out` is.
        let recorded = code.add_label_use(section, offset + at, kind, label, (len - at) as u8, 0);
        debug_assert!(recorded.is_ok());
    }
    Verdict::Takes
}

/// ModRM (mod and rm; `reg_bits` already shifted), SIB and displacement of
/// an address through 64-bit registers (checked by [`address_fits`]), with
/// the EVEX disp8 scale `scale` (1 otherwise).
#[inline(always)]
fn push_address(b: &mut Bytes<24>, m: &Mem, reg_bits: u8, base_id: u8, scale: i64) {
    let low = base_id & 7;
    let disp = m.disp();
    // Unscaled (all but EVEX) without a division: a run-time plan does not
    // fold the scale away.
    let disp8 = if scale == 1 {
        Some(disp)
    } else if disp % scale == 0 {
        Some(disp / scale)
    } else {
        None
    };
    let (modrm_mod, disp, disp_size) = if disp == 0 && low != 5 {
        (0, 0, 0)
    } else if let Some(disp8) = disp8.filter(|&d| i8::try_from(d).is_ok()) {
        (1, disp8, 1)
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
