//! The table-driven encoder: picks the first form of a mnemonic that accepts
//! the operands (forms are stored in preference order, so that is the
//! shortest encoding an assembler would pick) and encodes it: legacy
//! prefixes, REX, opcode maps, ModRM/SIB/displacement in every addressing
//! form, VEX2/VEX3, XOP, EVEX (disp8*N, masking, zeroing, broadcast, embedded
//! rounding and SAE) and 3DNow!.
//!
//! Encoding never touches the code buffer: it returns the bytes and at most
//! one label or absolute-address use, which the emitter records. So a failed
//! instruction leaves the buffer as it was.

use super::db::generated_opcodes::{NOP, POP_R, PUSH_R, WAIT, XSAVE_0F_M, XSAVES_0F_M};
use super::db::{
    self, Encoding, Form, MandatoryPrefix, Mnemonic, ModRmSpec, OpcodeMap, OperandKind as K, VexL,
    VexW, apx, flags, modes, signature_of,
};
use super::mem::{Mem, MemBase};
use super::operand::Operand;
use super::options::InstOptions;
use super::reg::{Reg, RegKind};
use crate::code::{Arch, CodeHolder, FixupKind, Label, SectionId};
use crate::error::Error;
use std::cell::Cell;

mod fast;
pub use fast::FormPlans;
pub(crate) use fast::{Out, emit_fast, emit_planned, emit_planned_to};

/// What a relative or absolute field refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A label of the code holder.
    Label(Label),
    /// An absolute address.
    Absolute(u64),
}

/// A field of the instruction whose value depends on a label or on the final address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldUse {
    /// Offset of the field in the instruction.
    pub at: u8,
    /// How it is written.
    pub kind: FixupKind,
    /// What it refers to.
    pub target: Target,
    /// Added to the target.
    pub addend: i64,
}

/// An encoded instruction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoded {
    /// The bytes (first `len` valid).
    pub bytes: [u8; 16],
    /// Length in bytes.
    pub len: usize,
    /// A label or absolute-address field to record.
    pub field_use: Option<FieldUse>,
    /// The form that was encoded.
    pub form: &'static Form,
}

/// Where the instruction goes: needed to resolve backward branches and to
/// choose between rel8 and rel32.
pub(crate) struct Site<'a> {
    /// The code holder (labels, base address).
    pub code: &'a CodeHolder,
    /// The section being written.
    pub section: SectionId,
    /// The offset the instruction starts at.
    pub offset: usize,
}

/// Encodes one instruction, or says why no form applies. `forms` are the
/// candidates the typed API knows at compile time; without them the
/// signature index of the mnemonic gives them.
pub(crate) fn encode(
    site: &Site<'_>,
    mnemonic: Mnemonic,
    forms: Option<&'static [u16]>,
    operands: &[Operand],
    options: InstOptions,
) -> Result<Encoded, Error> {
    let candidates = forms.unwrap_or_else(|| dynamic_candidates(mnemonic, operands));
    encode_forms(site, mnemonic, candidates, operands, options)
}

/// The candidate forms of `mnemonic` for operands of these classes, from the
/// signature index (the dynamic API's lookup; the typed API knows its
/// candidates at compile time and does not link the index).
pub(crate) fn dynamic_candidates(mnemonic: Mnemonic, operands: &[Operand]) -> &'static [u16] {
    let signature = signature_of(operands);
    let key = (mnemonic as u16).wrapping_add(1);
    let slot = (usize::from(key) ^ signature as usize ^ (signature as usize >> 10))
        % REMEMBERED_CANDIDATES;
    CANDIDATES.with(|remembered| {
        let entry = &remembered[slot];
        if let (k, s, Some(forms)) = entry.get()
            && k == key
            && s == signature
        {
            return forms;
        }
        let forms = mnemonic.candidates(signature);
        entry.set((key, signature, Some(forms)));
        forms
    })
}

/// How many candidate lists each thread remembers for the dynamic API.
const REMEMBERED_CANDIDATES: usize = 64;

/// One remembered candidate list: mnemonic + 1 (0: empty), operand
/// signature, the list.
type RememberedCandidates = (u16, u32, Option<&'static [u16]>);

thread_local! {
    /// The candidate lists the dynamic API looked up last on this thread,
    /// keyed by mnemonic (+ 1; 0 is an empty entry) and operand signature:
    /// the lookup is a binary search among the mnemonic's signatures, and
    /// a program that emits at run time asks for the same few over and
    /// over. All zero to start with, so that it takes no room in the
    /// program file.
    static CANDIDATES: [Cell<RememberedCandidates>; REMEMBERED_CANDIDATES] =
        const { [const { Cell::new((0, 0, None)) }; REMEMBERED_CANDIDATES] };
}

/// [`encode`] with the candidate forms given (indices into the form table, in
/// preference order).
pub(crate) fn encode_forms(
    site: &Site<'_>,
    mnemonic: Mnemonic,
    candidates: &'static [u16],
    operands: &[Operand],
    options: InstOptions,
) -> Result<Encoded, Error> {
    let explicit = operands
        .iter()
        .rposition(|o| !o.is_none())
        .map_or(0, |i| i + 1);
    let operands = &operands[..explicit];
    let swapped;
    let operands = match accumulator_first_xchg(mnemonic, operands) {
        Some(pair) => {
            swapped = pair;
            &swapped[..]
        }
        None => operands,
    };
    if let Some(reg) = operands.iter().find_map(virtual_register) {
        return Err(virtual_register_error(mnemonic, operands, options, reg));
    }
    let arch = site.code.arch();
    let mode_bit = if arch == Arch::X64 {
        modes::M64
    } else {
        modes::M32
    };
    // Forms that fit but are not what an assembler picks first (a 16-bit form
    // for unsized memory, a short immediate under LONG) wait here.
    let mut deferred = [0u16; 4];
    let mut deferred_count = 0;
    'forms: for &index in candidates {
        let form = db::form(index);
        if form.modes() & mode_bit == 0
            || form.explicit() as usize != operands.len()
            || (options.intersects(InstOptions::HINTS) && !hint_allows(form, options, arch))
        {
            continue;
        }
        for (op, &kind) in operands.iter().zip(form.explicit_kinds()) {
            // One mask test rejects a wrong operand class and, for the
            // register kinds where the class decides, accepts the register.
            if kind_classes(kind) & operand_class(op) == 0 {
                continue 'forms;
            }
            match op {
                Operand::Reg(_) if class_decides_register(kind) => continue,
                // A sized memory operand of another size (`inc qword [rax]`
                // meets the byte, word and dword forms first).
                Operand::Mem(m)
                    if m.size() != 0
                        && form.mem_size() != 0
                        && m.size() != form.mem_size()
                        && !m.is_broadcast() =>
                {
                    continue 'forms;
                }
                _ => {}
            }
            if accepts(kind, op, form, arch).is_err() {
                continue 'forms;
            }
        }
        if dispreferred(form, operands, options) {
            if deferred_count < deferred.len() {
                deferred[deferred_count] = index;
                deferred_count += 1;
            }
            continue;
        }
        if let Ok(Some(encoded)) = encode_form(site, form, operands, options) {
            return Ok(encoded);
        }
    }
    for &index in &deferred[..deferred_count] {
        if let Ok(Some(encoded)) = encode_form(site, db::form(index), operands, options) {
            return Ok(encoded);
        }
    }
    Err(diagnose(site, mnemonic, operands, options))
}

/// `xchg ax, cx` exchanges the same registers as `xchg cx, ax`, whose
/// `90+r` form is one byte shorter than `87 /r`; the assemblers pick it for
/// either order, and so does this encoder (the database has the `r, ax` order
/// only, as the SDM writes it).
fn accumulator_first_xchg(mnemonic: Mnemonic, operands: &[Operand]) -> Option<[Operand; 2]> {
    if mnemonic != Mnemonic::Xchg {
        return None;
    }
    match operands {
        [Operand::Reg(a), Operand::Reg(b)]
            if a.kind() == b.kind()
                && matches!(a.kind(), RegKind::Gp16 | RegKind::Gp32 | RegKind::Gp64)
                && a.id() == 0
                && b.id() != 0 =>
        {
            Some([operands[1], operands[0]])
        }
        _ => None,
    }
}

#[cold]
fn virtual_register_error(
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
    reg: Reg,
) -> Error {
    Error::InvalidInstruction {
        instruction: instruction_text(mnemonic, operands, options),
        reason: format!(
            "{reg} is a virtual register: only the Compiler can take it (the Assembler needs physical registers)"
        ),
    }
}

/// Whether the encoding hints in `options` allow `form`: `{vex}`/`{evex}`,
/// `data16`/`addr32` (which select the 16-bit / 32-bit-address form where
/// there is one), and far branches.
fn hint_allows(form: &Form, options: InstOptions, arch: Arch) -> bool {
    if options.contains(InstOptions::VEX) && form.encoding() != Encoding::Vex
        || options.contains(InstOptions::EVEX) && form.encoding() != Encoding::Evex
    {
        return false;
    }
    if options.contains(InstOptions::DATA16) && !matches!(form.operand_size(), 0 | 16) {
        return false;
    }
    if options.contains(InstOptions::NF) && !form.has_apx(apx::NF)
        || options.contains(InstOptions::DFV) && !form.has_apx(apx::SCC)
        || options.contains(InstOptions::REX2) && form.encoding() != Encoding::Legacy
    {
        return false;
    }
    if options.contains(InstOptions::ADDR32) && arch == Arch::X64 && form.address_size() == 64 {
        return false;
    }
    // FAR asks for a far form; without it, a far memory form still matches a
    // sized m16:16/m16:32/m16:64 operand.
    let far = form
        .operands()
        .iter()
        .any(|k| matches!(k, K::MemFar | K::FarPtr16 | K::FarPtr32));
    far || !options.contains(InstOptions::FAR)
}

/// Whether an assembler would pick `form` only when nothing else fits: a
/// 16-bit form for an unsized memory operand (the mode's default size wins:
/// `call [eax]`), or a sign-extended short immediate when LONG asks for the
/// widest one (`movabs rcx, 1`).
fn dispreferred(form: &Form, operands: &[Operand], options: InstOptions) -> bool {
    if form.operand_size() == 16 && !options.contains(InstOptions::DATA16) {
        let unsized_memory = operands
            .iter()
            .any(|o| matches!(o, Operand::Mem(m) if m.size() == 0));
        let gp16 = operands
            .iter()
            .any(|o| matches!(o, Operand::Reg(r) if r.kind() == RegKind::Gp16));
        if unsized_memory && !gp16 {
            return true;
        }
    }
    options.contains(InstOptions::LONG)
        && form
            .operands()
            .iter()
            .any(|k| matches!(k, K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 | K::Imm32Sx64))
}

/// Explains why no form of `mnemonic` encodes `operands` (the slow path,
/// taken only for invalid instructions).
fn diagnose(
    site: &Site<'_>,
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
) -> Error {
    let arch = site.code.arch();
    let mode_bit = if arch == Arch::X64 {
        modes::M64
    } else {
        modes::M32
    };
    if arch == Arch::X86
        && options.intersects(InstOptions::NF | InstOptions::DFV | InstOptions::REX2)
    {
        return Error::InvalidInstruction {
            instruction: instruction_text(mnemonic, operands, options),
            reason: "{nf}, {dfv=} and {rex2} are APX, which needs 64-bit mode".into(),
        };
    }
    if arch == Arch::X86
        && let Some(reason) = unavailable_in_32_bit_mode(operands)
    {
        return Error::InvalidInstruction {
            instruction: instruction_text(mnemonic, operands, options),
            reason,
        };
    }
    // The most specific reason any form gave, kept cheap until it is needed.
    let mut best: Option<(usize, Reason)> = None;
    let mut note = |score: usize, reason: Reason| {
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, reason));
        }
    };
    let forms = mnemonic.forms();
    let mut classes = [0u32; 5];
    for (class, op) in classes.iter_mut().zip(operands) {
        *class = operand_class(op);
    }
    let mut arity_seen = false;
    for form in forms {
        let count = form.explicit_count();
        if count != operands.len() {
            continue;
        }
        arity_seen = true;
        if form.modes() & mode_bit == 0 {
            note(1, Reason::Mode);
            continue;
        }
        if options.contains(InstOptions::VEX) && form.encoding() != Encoding::Vex {
            note(1, Reason::NotVex);
            continue;
        }
        if options.contains(InstOptions::EVEX) && form.encoding() != Encoding::Evex {
            note(1, Reason::NotEvex);
            continue;
        }
        if options.contains(InstOptions::NF) && !form.has_apx(apx::NF) {
            note(
                1,
                Reason::Text(format!(
                    "{} has no {{nf}} form (APX's no-flags forms are the promoted arithmetic, shift, multiply and count instructions)",
                    mnemonic.name()
                )),
            );
            continue;
        }
        if !hint_allows(form, options, arch) {
            note(1, Reason::Hint);
            continue;
        }
        let mut failed = None;
        for (index, &kind) in form.explicit_kinds().iter().enumerate() {
            // A bit test rejects most forms before the detailed check.
            if kind_classes(kind) & classes[index] == 0 {
                failed = Some((index, kind, Mismatch::Expected));
                break;
            }
            if let Err(why) = accepts(kind, &operands[index], form, arch) {
                failed = Some((index, kind, why));
                break;
            }
        }
        if let Some((at, kind, why)) = failed {
            note(2 + at * 2, Reason::Operand(at, kind, why));
            continue;
        }
        match encode_form(site, form, operands, options) {
            Ok(Some(_)) => note(
                0,
                Reason::Text("no candidate form for these operand classes".into()),
            ),
            Ok(None) => note(2 + operands.len() * 2, Reason::Rel8),
            Err(reason) => note(3 + operands.len() * 2, Reason::Text(reason)),
        }
    }
    let reason = match best {
        Some((_, reason)) => reason.render(operands, arch),
        None if !arity_seen => {
            let mut counts: Vec<usize> = forms.iter().map(Form::explicit_count).collect();
            counts.sort_unstable();
            counts.dedup();
            let list: Vec<String> = counts.iter().map(usize::to_string).collect();
            format!(
                "{} takes {} operand(s), not {}",
                mnemonic.name(),
                list.join(" or "),
                operands.len()
            )
        }
        None => "no form accepts these operands".into(),
    };
    Error::InvalidInstruction {
        instruction: instruction_text(mnemonic, operands, options),
        reason,
    }
}

/// The first virtual register an operand uses.
fn virtual_register(op: &Operand) -> Option<Reg> {
    match op {
        Operand::Reg(r) if r.is_virtual() => Some(*r),
        Operand::Mem(m) => {
            let base = match m.base() {
                MemBase::Reg(r) if r.is_virtual() => Some(r),
                _ => None,
            };
            base.or_else(|| m.index().filter(|r| r.is_virtual()))
        }
        _ => None,
    }
}

/// The first register an operand uses that 32-bit mode does not have.
fn unavailable_in_32_bit_mode(operands: &[Operand]) -> Option<String> {
    let missing = |r: Reg| {
        let extended = match r.kind() {
            RegKind::Gp64 | RegKind::Rip => true,
            RegKind::Gp8 => r.id() >= 4,
            // cr8 is reachable through the LOCK prefix (AMD's alternative encoding).
            RegKind::Cr => r.id() > 8,
            _ => r.id() >= 8,
        };
        extended.then(|| format!("{} is not available in 32-bit mode", r.name()))
    };
    operands.iter().find_map(|op| match op {
        Operand::Reg(r) => missing(*r),
        Operand::Mem(m) => {
            let base = match m.base() {
                MemBase::Reg(r) => missing(r),
                MemBase::Rip => Some("rip-relative addressing needs 64-bit mode".into()),
                _ => None,
            };
            base.or_else(|| m.index().and_then(missing))
        }
        _ => None,
    })
}

/// Intel text of an instruction, for error messages and listings.
pub(crate) fn instruction_text(
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
) -> String {
    let mut s = options.prefix_text();
    s.push_str(mnemonic.name());
    let dfv = options.dfv_text();
    if !dfv.is_empty() {
        s.push(' ');
        s.push_str(&dfv);
    }
    for (i, op) in operands.iter().filter(|o| !o.is_none()).enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        s.push_str(&op.to_string());
    }
    if let Some(r) = options.rounding_mode() {
        s.push_str(match r {
            super::options::Rounding::RnSae => ", {rn-sae}",
            super::options::Rounding::RdSae => ", {rd-sae}",
            super::options::Rounding::RuSae => ", {ru-sae}",
            super::options::Rounding::RzSae => ", {rz-sae}",
        });
    } else if options.contains(InstOptions::SAE) {
        s.push_str(", {sae}");
    }
    s
}

fn kind_name(kind: K) -> &'static str {
    match kind {
        K::R8M => "r/m8",
        K::R16M => "r/m16",
        K::R32M | K::R32MMpx => "r/m32",
        K::R64M | K::R64MMpx => "r/m64",
        K::MmM => "mm/m64",
        K::XmmM => "xmm/m",
        K::YmmM => "ymm/m",
        K::ZmmM => "zmm/m",
        K::KM => "k/m",
        K::BndM => "bnd/m",
        K::R8 | K::R8Op | K::R8V => "r8",
        K::R16 | K::R16Rm | K::R16Op | K::R16Addr | K::R16V => "r16",
        K::R32 | K::R32Rm | K::R32Op | K::R32V | K::R32Addr => "r32",
        K::R64 | K::R64Rm | K::R64Op | K::R64V | K::R64Addr => "r64",
        K::Xmm | K::XmmRm | K::XmmV | K::XmmV4 | K::XmmIs4 | K::XmmIs5 => "xmm",
        K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => "ymm",
        K::Zmm | K::ZmmRm | K::ZmmV | K::ZmmV4 => "zmm",
        K::K | K::KRm | K::KV | K::KPair => "k",
        K::Mm | K::MmRm => "mm",
        K::Tmm | K::TmmRm | K::TmmV => "tmm",
        K::Imm4 | K::Imm8 | K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 => "imm8",
        K::One => "1",
        K::Imm16 => "imm16",
        K::Imm32 | K::Imm32Sx64 => "imm32",
        K::Imm64 => "imm64",
        K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => {
            "label or address"
        }
        K::Vm32x | K::Vm32y | K::Vm32z | K::Vm64x | K::Vm64y | K::Vm64z => "vector-indexed memory",
        K::Al => "al",
        K::Cl => "cl",
        K::Ax => "ax",
        K::Dx => "dx",
        K::Eax => "eax",
        K::Rax => "rax",
        K::St0 => "st(0)",
        K::StOp => "st(i)",
        K::SReg | K::Es | K::Cs | K::Ss | K::Ds | K::Fs | K::Gs => "segment register",
        K::Cr => "control register",
        K::Dr => "debug register",
        K::Bnd => "bnd",
        K::FarPtr16 | K::FarPtr32 => "far pointer",
        _ => "memory",
    }
}

fn describe(op: &Operand) -> String {
    match op {
        Operand::Reg(r) => r.name().to_string(),
        Operand::Mem(_) => "memory".into(),
        Operand::Imm(v) => format!("immediate {v:#x}"),
        Operand::Label(_) => "label".into(),
        Operand::None => "nothing".into(),
    }
}

/// The operand's class as one bit: its register kind, or memory, immediate, label.
#[inline]
fn operand_class(op: &Operand) -> u32 {
    match op {
        Operand::Reg(r) => 1 << (r.kind() as u32),
        Operand::Mem(_) => 1 << 24,
        Operand::Imm(_) => 1 << 25,
        Operand::Label(_) => 1 << 26,
        Operand::None => 0,
    }
}

/// The operand classes an operand kind may accept (a superset; [`accepts`] decides).
#[inline]
const fn kind_classes(kind: K) -> u32 {
    const fn reg(k: RegKind) -> u32 {
        1 << (k as u32)
    }
    const MEM: u32 = 1 << 24;
    const IMM: u32 = 1 << 25;
    const LABEL: u32 = 1 << 26;
    const GP8: u32 = reg(RegKind::Gp8) | reg(RegKind::Gp8Hi);
    match kind {
        K::R8M => GP8 | MEM,
        K::R16M => reg(RegKind::Gp16) | MEM,
        K::R32M | K::R32MMpx => reg(RegKind::Gp32) | MEM,
        K::R64M | K::R64MMpx => reg(RegKind::Gp64) | MEM,
        K::MmM => reg(RegKind::Mm) | MEM,
        K::XmmM => reg(RegKind::Xmm) | MEM,
        K::YmmM => reg(RegKind::Ymm) | MEM,
        K::ZmmM => reg(RegKind::Zmm) | MEM,
        K::BndM => reg(RegKind::Bnd) | MEM,
        K::KM => reg(RegKind::K) | MEM,
        K::R8 | K::R8Op | K::R8V | K::Al | K::Cl => GP8,
        K::R16 | K::R16Addr | K::R16Rm | K::R16Op | K::R16V | K::Ax | K::Dx => reg(RegKind::Gp16),
        K::R32 | K::R32Addr | K::R32Rm | K::R32Op | K::R32V | K::Eax => reg(RegKind::Gp32),
        K::R64 | K::R64Addr | K::R64Rm | K::R64Op | K::R64V | K::Rax => reg(RegKind::Gp64),
        K::SReg | K::Es | K::Cs | K::Ss | K::Ds | K::Fs | K::Gs => reg(RegKind::Seg),
        K::K | K::KRm | K::KV | K::KPair => reg(RegKind::K),
        K::Mm | K::MmRm => reg(RegKind::Mm),
        K::Xmm | K::XmmRm | K::XmmV | K::XmmV4 | K::XmmIs4 | K::XmmIs5 => reg(RegKind::Xmm),
        K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => reg(RegKind::Ymm),
        K::Zmm | K::ZmmRm | K::ZmmV | K::ZmmV4 => reg(RegKind::Zmm),
        K::Cr => reg(RegKind::Cr),
        K::Dr => reg(RegKind::Dr),
        K::Bnd => reg(RegKind::Bnd),
        K::Tmm | K::TmmRm | K::TmmV => reg(RegKind::Tmm),
        K::St0 | K::StOp => reg(RegKind::St),
        K::Imm4
        | K::Imm8
        | K::One
        | K::Imm8Sx16
        | K::Imm8Sx32
        | K::Imm8Sx64
        | K::Imm16
        | K::Imm32
        | K::Imm32Sx64
        | K::Imm64
        | K::FarPtr16
        | K::FarPtr32 => IMM,
        K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => {
            IMM | LABEL
        }
        K::Mem
        | K::MemFar
        | K::MemMpx
        | K::MemMib
        | K::MemSib
        | K::Moffs
        | K::Vm32x
        | K::Vm32y
        | K::Vm32z
        | K::Vm64x
        | K::Vm64y
        | K::Vm64z => MEM,
        K::None | K::Tr | K::ImplicitRsi | K::ImplicitEsRdi | K::ImplicitRdi | K::ImplicitXlat => 0,
    }
}

/// Whether [`accepts`] takes every register of the classes in
/// [`kind_classes`] for this kind (no fixed register, no even or
/// group-of-four rule), so the class test alone decides for a register.
const fn class_decides_register(kind: K) -> bool {
    matches!(
        kind,
        K::R8M
            | K::R16M
            | K::R32M
            | K::R32MMpx
            | K::R64M
            | K::R64MMpx
            | K::MmM
            | K::XmmM
            | K::YmmM
            | K::ZmmM
            | K::BndM
            | K::KM
            | K::R8
            | K::R8Op
            | K::R8V
            | K::R16
            | K::R16Addr
            | K::R16Rm
            | K::R16Op
            | K::R16V
            | K::R32
            | K::R32Addr
            | K::R32Rm
            | K::R32Op
            | K::R32V
            | K::R64
            | K::R64Addr
            | K::R64Rm
            | K::R64Op
            | K::R64V
            | K::SReg
            | K::K
            | K::KRm
            | K::KV
            | K::Mm
            | K::MmRm
            | K::Xmm
            | K::XmmRm
            | K::XmmV
            | K::XmmIs4
            | K::XmmIs5
            | K::Ymm
            | K::YmmRm
            | K::YmmV
            | K::YmmIs4
            | K::YmmIs5
            | K::Zmm
            | K::ZmmRm
            | K::ZmmV
            | K::Cr
            | K::Dr
            | K::Bnd
            | K::Tmm
            | K::TmmRm
            | K::TmmV
            | K::StOp
    )
}

fn reg_kind_ok(op: &Operand, kind: RegKind) -> Option<Reg> {
    match op {
        Operand::Reg(r) if r.kind() == kind => Some(*r),
        _ => None,
    }
}

fn is_gp8(op: &Operand) -> bool {
    matches!(op, Operand::Reg(r) if matches!(r.kind(), RegKind::Gp8 | RegKind::Gp8Hi))
}

/// Whether immediate `v` fits operand kind `kind` (sign-extended kinds
/// included); shared with the Compiler's x86 target.
// Always inline: on the fast path `kind` is a compile-time constant and the
// match folds to one range check.
#[inline(always)]
pub(crate) fn imm_fits(kind: K, v: i64) -> bool {
    match kind {
        K::Imm8 => (-128..=255).contains(&v),
        K::One => v == 1,
        K::Imm4 => (0..=15).contains(&v),
        K::Imm8Sx16 => {
            (-32768..=65535).contains(&v)
                && (v as u16 as i16 as i64) >= -128
                && (v as u16 as i16 as i64) <= 127
        }
        K::Imm8Sx32 => {
            (i32::MIN as i64..=u32::MAX as i64).contains(&v)
                && (-128..=127).contains(&(v as u32 as i32 as i64))
        }
        K::Imm8Sx64 => (-128..=127).contains(&v),
        K::Imm16 => (-32768..=65535).contains(&v),
        K::Imm32 => (i32::MIN as i64..=u32::MAX as i64).contains(&v),
        K::Imm32Sx64 => (i32::MIN as i64..=i32::MAX as i64).contains(&v),
        K::Imm64 | K::FarPtr16 | K::FarPtr32 => true,
        _ => false,
    }
}

/// Why a form does not apply.
#[derive(Clone, Debug)]
enum Reason {
    Mode,
    NotVex,
    NotEvex,
    Hint,
    Operand(usize, K, Mismatch),
    Rel8,
    Text(String),
}

impl Reason {
    fn render(self, operands: &[Operand], arch: Arch) -> String {
        match self {
            Reason::Mode => format!("not valid in {}-bit mode", arch.bits()),
            Reason::NotVex => "{vex} requested but this form is not VEX".into(),
            Reason::NotEvex => "{evex} requested but this form is not EVEX".into(),
            Reason::Hint => {
                "no form matches the requested prefixes (data16, addr32, far, {nf}, {dfv=}, {rex2})"
                    .into()
            }
            Reason::Operand(at, kind, why) => {
                format!("operand {}: {}", at + 1, why.render(kind, &operands[at]))
            }
            Reason::Rel8 => "branch target out of rel8 range".into(),
            Reason::Text(text) => text,
        }
    }
}

/// Why an operand does not fit a form's operand slot; rendered to text only
/// when no form accepts the instruction, so matching allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mismatch {
    Expected,
    ImmediateRange,
    AddressSpace,
    EvenMask,
    GroupOfFour,
    VsibIndex(RegKind),
    VectorIndex,
    NotAbsolute,
    NeedsMovabs,
    MovabsOnly,
    NoBroadcast,
    BroadcastSize(u8),
    BroadcastCount(u8),
    FarNeedsSize,
    MemorySize(u16),
    MaskOnMemory,
}

impl Mismatch {
    fn render(self, kind: K, op: &Operand) -> String {
        match self {
            Mismatch::Expected => format!("expected {}, got {}", kind_name(kind), describe(op)),
            Mismatch::ImmediateRange => {
                format!("{} does not fit {}", describe(op), kind_name(kind))
            }
            Mismatch::AddressSpace => {
                format!("{} is outside the 32-bit address space", describe(op))
            }
            Mismatch::EvenMask => "expected an even mask register (k0, k2, k4, k6)".into(),
            Mismatch::GroupOfFour => format!(
                "expected {}0, {}4, ... (a group of four)",
                kind_name(kind),
                kind_name(kind)
            ),
            Mismatch::VsibIndex(v) => format!("expected memory indexed by {}", RegKind::name_of(v)),
            Mismatch::VectorIndex => "a vector index needs a gather/scatter instruction".into(),
            Mismatch::NotAbsolute => "expected an absolute address".into(),
            Mismatch::NeedsMovabs => "a 64-bit absolute address needs movabs".into(),
            Mismatch::MovabsOnly => "movabs addresses only fit the accumulator forms".into(),
            Mismatch::NoBroadcast => "this form cannot broadcast".into(),
            Mismatch::BroadcastSize(n) => format!("broadcast element must be {n} bytes"),
            Mismatch::BroadcastCount(n) => format!("this form does not broadcast to {n} elements"),
            Mismatch::FarNeedsSize => "a far pointer in memory needs a size (fword/tbyte)".into(),
            Mismatch::MemorySize(n) => match op {
                Operand::Mem(m) => {
                    format!("expected a {n}-byte memory operand, got {} bytes", m.size())
                }
                _ => format!("expected a {n}-byte memory operand"),
            },
            Mismatch::MaskOnMemory => "a write mask on memory needs a masked store".into(),
        }
    }
}

fn mem_ok(kind: K, m: &Mem, form: &Form, arch: Arch) -> Result<(), Mismatch> {
    let vsib_kind = match kind {
        K::Vm32x | K::Vm64x => Some(RegKind::Xmm),
        K::Vm32y | K::Vm64y => Some(RegKind::Ymm),
        K::Vm32z | K::Vm64z => Some(RegKind::Zmm),
        _ => None,
    };
    match (vsib_kind, m.index()) {
        (Some(v), Some(i)) if i.kind() == v => {}
        (Some(v), _) => {
            return Err(Mismatch::VsibIndex(v));
        }
        (None, Some(i)) if i.kind().is_vec() => {
            return Err(Mismatch::VectorIndex);
        }
        _ => {}
    }
    if kind == K::Moffs {
        let absolute = m.base() == MemBase::None && m.index().is_none();
        if !absolute {
            return Err(Mismatch::NotAbsolute);
        }
        if arch == Arch::X64 && !m.is_abs64() {
            return Err(Mismatch::NeedsMovabs);
        }
    } else if m.is_abs64() {
        return Err(Mismatch::MovabsOnly);
    }
    if m.is_broadcast() {
        if form.bcst_size() == 0 {
            return Err(Mismatch::NoBroadcast);
        }
        if m.size() != 0 && m.size() != form.bcst_size() as u16 {
            return Err(Mismatch::BroadcastSize(form.bcst_size()));
        }
        if let Some(count) = m.broadcast_count() {
            // N is the memory operand's size over the element size (for a
            // widening conversion the memory is narrower than the vector).
            let memory_bytes = if form.mem_size() != 0 {
                u32::from(form.mem_size())
            } else {
                match form.l() {
                    VexL::L128 => 16,
                    VexL::L256 => 32,
                    VexL::L512 => 64,
                    VexL::Lig => 0,
                }
            };
            if memory_bytes / form.bcst_size() as u32 != count as u32 {
                return Err(Mismatch::BroadcastCount(count));
            }
        }
        return Ok(());
    }
    if kind == K::MemFar && m.size() == 0 {
        return Err(Mismatch::FarNeedsSize);
    }
    if m.size() != 0 && form.mem_size() != 0 && m.size() != form.mem_size() {
        return Err(Mismatch::MemorySize(form.mem_size()));
    }
    if m.decorators().mask() != 0 && !form.has(flags::K) {
        return Err(Mismatch::MaskOnMemory);
    }
    Ok(())
}

impl RegKind {
    fn name_of(kind: RegKind) -> &'static str {
        match kind {
            RegKind::Xmm => "xmm",
            RegKind::Ymm => "ymm",
            _ => "zmm",
        }
    }
}

/// Checks that `op` fits operand slot `kind` of `form` (ranges and
/// decorations included; encodability of register numbers is checked later).
fn accepts(kind: K, op: &Operand, form: &Form, arch: Arch) -> Result<(), Mismatch> {
    let reg = |rk: RegKind| reg_kind_ok(op, rk).map(|_| ()).ok_or(Mismatch::Expected);
    let fixed = |rk: RegKind, id: u8| match reg_kind_ok(op, rk) {
        Some(r) if r.id() == id => Ok(()),
        _ => Err(Mismatch::Expected),
    };
    let reg_or_mem = |rk: RegKind| match op {
        Operand::Mem(m) => mem_ok(kind, m, form, arch),
        _ => reg(rk),
    };
    match kind {
        K::R8M => match op {
            Operand::Mem(m) => mem_ok(kind, m, form, arch),
            _ if is_gp8(op) => Ok(()),
            _ => Err(Mismatch::Expected),
        },
        K::R16M => reg_or_mem(RegKind::Gp16),
        K::R32M | K::R32MMpx => reg_or_mem(RegKind::Gp32),
        K::R64M | K::R64MMpx => reg_or_mem(RegKind::Gp64),
        K::MmM => reg_or_mem(RegKind::Mm),
        K::XmmM => reg_or_mem(RegKind::Xmm),
        K::YmmM => reg_or_mem(RegKind::Ymm),
        K::ZmmM => reg_or_mem(RegKind::Zmm),
        K::BndM => reg_or_mem(RegKind::Bnd),
        K::KM => reg_or_mem(RegKind::K),
        K::R8 | K::R8Op | K::R8V => {
            if is_gp8(op) {
                Ok(())
            } else {
                Err(Mismatch::Expected)
            }
        }
        K::R16 | K::R16Addr | K::R16Rm | K::R16Op | K::R16V => reg(RegKind::Gp16),
        K::R32 | K::R32Addr | K::R32Rm | K::R32Op | K::R32V => reg(RegKind::Gp32),
        K::R64 | K::R64Addr | K::R64Rm | K::R64Op | K::R64V => reg(RegKind::Gp64),
        K::SReg => reg(RegKind::Seg),
        K::K | K::KRm | K::KV => reg(RegKind::K),
        K::KPair => match reg_kind_ok(op, RegKind::K) {
            Some(r) if r.id() % 2 == 0 => Ok(()),
            _ => Err(Mismatch::EvenMask),
        },
        K::Mm | K::MmRm => reg(RegKind::Mm),
        K::Xmm | K::XmmRm | K::XmmV | K::XmmIs4 | K::XmmIs5 => reg(RegKind::Xmm),
        K::XmmV4 => match reg_kind_ok(op, RegKind::Xmm) {
            Some(r) if r.id() % 4 == 0 => Ok(()),
            _ => Err(Mismatch::GroupOfFour),
        },
        K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => reg(RegKind::Ymm),
        K::Zmm | K::ZmmRm | K::ZmmV => reg(RegKind::Zmm),
        K::ZmmV4 => match reg_kind_ok(op, RegKind::Zmm) {
            Some(r) if r.id() % 4 == 0 => Ok(()),
            _ => Err(Mismatch::GroupOfFour),
        },
        K::Cr => reg(RegKind::Cr),
        K::Dr => reg(RegKind::Dr),
        K::Bnd => reg(RegKind::Bnd),
        K::Tmm | K::TmmRm | K::TmmV => reg(RegKind::Tmm),
        K::Es => fixed(RegKind::Seg, 0),
        K::Cs => fixed(RegKind::Seg, 1),
        K::Ss => fixed(RegKind::Seg, 2),
        K::Ds => fixed(RegKind::Seg, 3),
        K::Fs => fixed(RegKind::Seg, 4),
        K::Gs => fixed(RegKind::Seg, 5),
        K::Al => fixed(RegKind::Gp8, 0),
        K::Cl => fixed(RegKind::Gp8, 1),
        K::Ax => fixed(RegKind::Gp16, 0),
        K::Dx => fixed(RegKind::Gp16, 2),
        K::Eax => fixed(RegKind::Gp32, 0),
        K::Rax => fixed(RegKind::Gp64, 0),
        K::St0 => fixed(RegKind::St, 0),
        K::StOp => reg(RegKind::St),
        K::Imm4
        | K::Imm8
        | K::One
        | K::Imm8Sx16
        | K::Imm8Sx32
        | K::Imm8Sx64
        | K::Imm16
        | K::Imm32
        | K::Imm32Sx64
        | K::Imm64
        | K::FarPtr16
        | K::FarPtr32 => match op {
            Operand::Imm(v) if imm_fits(kind, *v) => Ok(()),
            Operand::Imm(_) => Err(Mismatch::ImmediateRange),
            _ => Err(Mismatch::Expected),
        },
        K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => match op {
            Operand::Label(_) => Ok(()),
            Operand::Imm(v) if arch == Arch::X64 || u32::try_from(*v).is_ok() => Ok(()),
            Operand::Imm(_) => Err(Mismatch::AddressSpace),
            _ => Err(Mismatch::Expected),
        },
        K::Mem
        | K::MemFar
        | K::MemMpx
        | K::MemMib
        | K::MemSib
        | K::Moffs
        | K::Vm32x
        | K::Vm32y
        | K::Vm32z
        | K::Vm64x
        | K::Vm64y
        | K::Vm64z => match op {
            Operand::Mem(m) => mem_ok(kind, m, form, arch),
            _ => Err(Mismatch::Expected),
        },
        K::None | K::Tr | K::ImplicitRsi | K::ImplicitEsRdi | K::ImplicitRdi | K::ImplicitXlat => {
            Err(Mismatch::Expected)
        }
    }
}

/// Where an operand goes in the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    ModRmReg,
    ModRmRm,
    Vvvv,
    OpcodeReg,
    Is4,
    Imm,
    Rel,
    Moffs,
    Far,
    Nothing,
}

const fn slot_of(kind: K) -> Slot {
    match kind {
        K::R8
        | K::R16
        | K::R32
        | K::R64
        | K::R16Addr
        | K::R32Addr
        | K::R64Addr
        | K::SReg
        | K::K
        | K::KPair
        | K::Mm
        | K::Xmm
        | K::Ymm
        | K::Zmm
        | K::Cr
        | K::Dr
        | K::Tr
        | K::Bnd
        | K::Tmm => Slot::ModRmReg,
        K::R8M
        | K::R16M
        | K::R32M
        | K::R32MMpx
        | K::R64M
        | K::R64MMpx
        | K::MmM
        | K::XmmM
        | K::YmmM
        | K::ZmmM
        | K::BndM
        | K::KM
        | K::R16Rm
        | K::R32Rm
        | K::R64Rm
        | K::KRm
        | K::MmRm
        | K::XmmRm
        | K::YmmRm
        | K::ZmmRm
        | K::TmmRm
        | K::Mem
        | K::MemFar
        | K::MemMpx
        | K::MemMib
        | K::MemSib
        | K::Vm32x
        | K::Vm32y
        | K::Vm32z
        | K::Vm64x
        | K::Vm64y
        | K::Vm64z => Slot::ModRmRm,
        K::R8V
        | K::R16V
        | K::R32V
        | K::R64V
        | K::KV
        | K::XmmV
        | K::XmmV4
        | K::YmmV
        | K::ZmmV
        | K::ZmmV4
        | K::TmmV => Slot::Vvvv,
        K::R8Op | K::R16Op | K::R32Op | K::R64Op | K::StOp => Slot::OpcodeReg,
        K::XmmIs4 | K::XmmIs5 | K::YmmIs4 | K::YmmIs5 => Slot::Is4,
        K::Imm4
        | K::Imm8
        | K::Imm8Sx16
        | K::Imm8Sx32
        | K::Imm8Sx64
        | K::Imm16
        | K::Imm32
        | K::Imm32Sx64
        | K::Imm64 => Slot::Imm,
        K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => Slot::Rel,
        K::Moffs => Slot::Moffs,
        K::FarPtr16 | K::FarPtr32 => Slot::Far,
        _ => Slot::Nothing,
    }
}

const fn imm_size(kind: K) -> usize {
    match kind {
        K::Imm4 | K::Imm8 | K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 => 1,
        K::Imm16 => 2,
        K::Imm32 | K::Imm32Sx64 => 4,
        K::Imm64 => 8,
        _ => 0,
    }
}

/// A byte buffer for one instruction; roomier than the 15-byte limit, which
/// is checked once at the end. `N` less 8 (room for the 8-byte store of
/// [`push_le`](Self::push_le) at the last index) is a power of two: the
/// general encoder's 40 takes the up to 31 bytes it may push; the fast
/// path's 24 (16 bytes and one less store to clear) wraps after 16, which
/// its length check then refuses.
struct Bytes<const N: usize = 40> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Bytes<N> {
    /// The mask that keeps every index in bounds.
    const MASK: usize = {
        assert!((N - 8).is_power_of_two());
        N - 8 - 1
    };

    /// An empty buffer.
    #[inline]
    const fn new() -> Bytes<N> {
        Bytes {
            buf: [0; N],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        self.buf[self.len & Self::MASK] = b;
        self.len += 1;
    }

    /// Appends the low `n` bytes (at most 8) of `v`, little-endian: one
    /// 8-byte store (the buffer has room past the masked index) and a length.
    #[inline]
    fn push_le(&mut self, v: i64, n: usize) {
        let at = self.len & Self::MASK;
        self.buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
        self.len += n.min(8);
    }
}

/// The memory part of ModRM: mod, rm, optional SIB, displacement.
struct MemEncoding {
    modrm_mod: u8,
    rm: u8,
    sib: Option<u8>,
    disp: i64,
    disp_size: usize,
    /// Base register id (for REX.B / VEX.B), index id (for X / V').
    base_id: u8,
    index_id: u8,
    address_size_override: bool,
    rip_label: Option<Label>,
    abs32_label: Option<Label>,
    segment: Option<u8>,
}

fn encode_mem(m: &Mem, arch: Arch, disp8_scale: i64) -> Result<MemEncoding, String> {
    let mut e = MemEncoding {
        modrm_mod: 0,
        rm: 0,
        sib: None,
        disp: m.disp(),
        disp_size: 0,
        base_id: 0,
        index_id: 0,
        address_size_override: false,
        rip_label: None,
        abs32_label: None,
        segment: m.segment().map(|s| s.id()),
    };
    if !matches!(m.scale(), 1 | 2 | 4 | 8) {
        return Err(format!("scale {} is not 1, 2, 4 or 8", m.scale()));
    }
    let scale_bits = match m.scale() {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    };
    // Address size from the registers (a vector index says nothing).
    let base = match m.base() {
        MemBase::Reg(b) => Some(b),
        _ => None,
    };
    let index = m.index().filter(|r| !r.kind().is_vec());
    let addr_kind = match (base, index) {
        (Some(r), None) | (None, Some(r)) => Some(address_register_kind(r, arch)?),
        (Some(b), Some(i)) => {
            let kind = address_register_kind(b, arch)?;
            if address_register_kind(i, arch)? != kind {
                return Err("base and index must have the same size".into());
            }
            Some(kind)
        }
        (None, None) => None,
    };
    if addr_kind == Some(RegKind::Gp16) {
        return encode_mem16(m, e);
    }
    match (arch, addr_kind) {
        (Arch::X86, Some(RegKind::Gp64)) => {
            return Err("64-bit address registers are not valid in 32-bit mode".into());
        }
        (Arch::X64, Some(RegKind::Gp32)) => e.address_size_override = true,
        _ => {}
    }
    if let Some(index) = m.index() {
        if !index.kind().is_vec() && index.id() == 4 {
            return Err(format!("{} cannot be an index register", index.name()));
        }
        e.index_id = index.id();
    }
    let fits_disp32 =
        |d: i64| i32::try_from(d).is_ok() || (arch == Arch::X86 && u32::try_from(d).is_ok());
    match m.base() {
        MemBase::Rip | MemBase::Label(_) => {
            if arch == Arch::X86 {
                // 32-bit mode has no RIP-relative form: a label's address is
                // an absolute disp32 (relocated when the code is placed),
                // which may be indexed (`jmp [table + eax*4]`).
                if let MemBase::Label(l) = m.base() {
                    e.abs32_label = Some(l);
                    e.modrm_mod = 0;
                    e.disp_size = 4;
                    if let Some(index) = m.index() {
                        e.rm = 4;
                        e.sib = Some((scale_bits << 6) | ((index.id() & 7) << 3) | 5);
                    } else {
                        e.rm = 5;
                    }
                    return Ok(e);
                }
                return Err("rip-relative addressing needs 64-bit mode".into());
            }
            if m.index().is_some() {
                return Err("rip-relative addresses cannot have an index".into());
            }
            if !fits_disp32(e.disp) {
                return Err(format!("displacement {:#x} does not fit 32 bits", e.disp));
            }
            if let MemBase::Label(l) = m.base() {
                e.rip_label = Some(l);
            }
            e.modrm_mod = 0;
            e.rm = 5;
            e.disp_size = 4;
        }
        MemBase::None => {
            if !fits_disp32(e.disp) {
                return Err(format!(
                    "absolute address {:#x} does not fit 32 bits (use movabs)",
                    e.disp
                ));
            }
            e.disp_size = 4;
            e.modrm_mod = 0;
            if let Some(index) = m.index() {
                e.rm = 4;
                e.sib = Some((scale_bits << 6) | ((index.id() & 7) << 3) | 5);
            } else if arch == Arch::X64 {
                e.rm = 4;
                e.sib = Some(0x25);
            } else {
                e.rm = 5;
            }
        }
        MemBase::Reg(base) => {
            if !fits_disp32(e.disp) {
                return Err(format!("displacement {:#x} does not fit 32 bits", e.disp));
            }
            e.base_id = base.id();
            let low = base.id() & 7;
            let (modrm_mod, disp_size, disp) = if e.disp == 0 && low != 5 {
                (0, 0, 0)
            } else if disp8_scale == 1 && i8::try_from(e.disp).is_ok()
                || e.disp % disp8_scale == 0 && i8::try_from(e.disp / disp8_scale).is_ok()
            {
                (1, 1, e.disp / disp8_scale)
            } else {
                (2, 4, e.disp)
            };
            e.modrm_mod = modrm_mod;
            e.disp_size = disp_size;
            e.disp = disp;
            if let Some(index) = m.index() {
                e.rm = 4;
                e.sib = Some((scale_bits << 6) | ((index.id() & 7) << 3) | low);
            } else if low == 4 {
                e.rm = 4;
                e.sib = Some(0x24);
            } else {
                e.rm = low;
            }
        }
    }
    Ok(e)
}

/// The kind of a general-purpose register that may address memory in `arch`.
#[inline]
fn address_register_kind(r: Reg, arch: Arch) -> Result<RegKind, String> {
    match r.kind() {
        RegKind::Gp32 | RegKind::Gp64 => Ok(r.kind()),
        RegKind::Gp16 if arch == Arch::X86 => Ok(RegKind::Gp16),
        _ => Err(address_register_error(r)),
    }
}

#[cold]
fn address_register_error(r: Reg) -> String {
    format!("{} cannot address memory", r.name())
}

/// Writes a known branch displacement of `size` bytes at `at`. `Ok(false)`:
/// a rel8 that does not reach (the caller tries the near form, unless a
/// short branch was requested, which is then an error).
fn write_branch(
    b: &mut Bytes,
    at: usize,
    distance: i64,
    size: usize,
    options: InstOptions,
) -> Result<bool, String> {
    let fits = match size {
        1 => i8::try_from(distance).is_ok(),
        2 => i16::try_from(distance).is_ok(),
        _ => i32::try_from(distance).is_ok(),
    };
    if !fits {
        if size == 1 && !options.contains(InstOptions::SHORT) {
            return Ok(false);
        }
        return Err(format!(
            "branch distance {distance} does not fit rel{}",
            size * 8
        ));
    }
    b.len = at;
    b.push_le(distance, size);
    Ok(true)
}

/// Checks the prefixes requested in `options` against what `form` accepts.
fn check_prefixes(form: &Form, options: InstOptions, has_memory: bool) -> Result<(), String> {
    for (opt, flag, name) in [
        (InstOptions::LOCK, flags::LOCK, "lock"),
        (InstOptions::XACQUIRE, flags::XACQUIRE, "xacquire"),
        (InstOptions::XRELEASE, flags::XRELEASE, "xrelease"),
        (InstOptions::REP, flags::REP | flags::REPNE, "rep"),
        (InstOptions::REPNE, flags::REPNE | flags::REP, "repne"),
        (InstOptions::BND, flags::BND, "bnd"),
        (InstOptions::NOTRACK, flags::NOTRACK, "notrack"),
    ] {
        if options.contains(opt) && form.flags() & flag == 0 {
            return Err(format!("{name} is not allowed here"));
        }
    }
    if options.contains(InstOptions::LOCK) && !has_memory {
        return Err("lock needs a memory destination".into());
    }
    Ok(())
}

/// The REX2 prefix and opcode (D5, M0 R4 X4 B4 W R3 X3 B3, the opcode without
/// its 0F escape) for register numbers `ids` (ModRM.reg, index, base/rm)
/// of which one is r16-r31; `rex` holds the W R3 X3 B3 bits, `low` the
/// register added to the opcode. Kept out of line: the common path has no REX2.
#[cold]
fn rex2_prefix(
    form: &Form,
    uses_high8: bool,
    ids: [u8; 3],
    rex: u8,
    low: u8,
) -> Result<[u8; 3], String> {
    // llvm-objdump-22 reads D5 90+r as `nop` and 66 D5 50+r as a 64-bit
    // push: the 87 /r, FF /6 and 8F /0 forms say the same unambiguously.
    let ambiguous = form.modrm() == ModRmSpec::OpcodeReg
        && (form.opcode() == NOP
            || matches!(form.opcode(), PUSH_R | POP_R) && form.operand_size() == 16);
    if ambiguous {
        return Err("r16-r31 take the ModRM form of this instruction".into());
    }
    if !rex2_allowed(form) || form.encoding() == Encoding::Amd3dNow {
        return Err(
            "this opcode takes no REX2 prefix, so neither r16-r31 nor {rex2} (an EVEX form may take r16-r31)"
                .into(),
        );
    }
    if uses_high8 {
        return Err("ah, bh, ch and dh cannot be used with a REX2 prefix".into());
    }
    let [r, x, b] = ids;
    let m0 = u8::from(form.map() == OpcodeMap::M0F) << 7;
    let high = ((r >> 4) & 1) << 6 | ((x >> 4) & 1) << 5 | ((b >> 4) & 1) << 4;
    Ok([0xd5, m0 | high | rex, form.opcode() | low])
}

/// The rules the operand kinds do not express: `ah`..`bh` only in legacy
/// forms, `{nf}` has no `lock`, `push2`/`pop2` do not take rsp, `pop2` does
/// not pop into one register twice.
#[cold]
fn check_apx(
    form: &Form,
    operands: &[Operand],
    options: InstOptions,
    uses_high8: bool,
) -> Result<(), String> {
    // In VEX and EVEX, register number 4 of an 8-bit operand is spl, never ah.
    if uses_high8 && form.encoding() != Encoding::Legacy {
        return Err(format!(
            "ah, bh, ch and dh cannot be used with {:?}",
            form.encoding()
        ));
    }
    if options.contains(InstOptions::NF) && options.contains(InstOptions::LOCK) {
        return Err("lock cannot be combined with {nf}".into());
    }
    let stack_pair = matches!(
        form.mnemonic(),
        Mnemonic::Push2 | Mnemonic::Push2p | Mnemonic::Pop2 | Mnemonic::Pop2p
    );
    if stack_pair {
        let regs: Vec<Reg> = operands
            .iter()
            .filter_map(|o| match o {
                Operand::Reg(r) => Some(*r),
                _ => None,
            })
            .collect();
        if regs.iter().any(|r| r.id() == 4) {
            return Err(format!("{} cannot take rsp", form.mnemonic().name()));
        }
        if matches!(form.mnemonic(), Mnemonic::Pop2 | Mnemonic::Pop2p)
            && regs.len() == 2
            && regs[0].id() == regs[1].id()
        {
            return Err(format!(
                "{} cannot pop into {} twice",
                form.mnemonic().name(),
                regs[0].name()
            ));
        }
    }
    Ok(())
}

/// Whether a legacy opcode may take a REX2 prefix: not in map 0 rows 4, 7,
/// A and E (REX, Jcc rel8, moffs/string/`test` accumulator forms, loops,
/// I/O and near branches) nor map 1 rows 3 and 8 (`wrmsr`..`getsec` and the
/// 0F 38/0F 3A escapes, Jcc rel32), nor maps 2 and 3 (those have EVEX map-4
/// forms instead). Forms marked REX2 in the database (`jmpabs`) always take it.
fn rex2_allowed(form: &Form) -> bool {
    if form.has_apx(apx::REX2) {
        return true;
    }
    let row = form.opcode() >> 4;
    // XSAVE*/XRSTOR* (0F AE /4../6, 0F C7 /3../5, no mandatory prefix) take no
    // extended register in their address.
    let xsave = form.map() == OpcodeMap::M0F
        && matches!(form.prefix(), MandatoryPrefix::None | MandatoryPrefix::Np)
        && matches!(
            (form.opcode(), form.modrm()),
            (XSAVE_0F_M, ModRmSpec::Digit(4..=6)) | (XSAVES_0F_M, ModRmSpec::Digit(3..=5))
        );
    match form.map() {
        OpcodeMap::Primary => !matches!(row, 0x4 | 0x7 | 0xa | 0xe),
        OpcodeMap::M0F => !matches!(row, 0x3 | 0x8) && !xsave,
        _ => false,
    }
}

/// 16-bit addressing (32-bit mode only, behind a 67 prefix): the eight
/// base/index combinations of the 8086, with disp8 or disp16.
fn encode_mem16(m: &Mem, mut e: MemEncoding) -> Result<MemEncoding, String> {
    // Register ids: bx=3, bp=5, si=6, di=7.
    let base = match m.base() {
        MemBase::Reg(r) => Some(r.id()),
        MemBase::None => None,
        _ => return Err("16-bit addressing takes bx, bp, si, di only".into()),
    };
    let index = m.index().map(|r| r.id());
    if m.index().is_some() && m.scale() != 1 {
        return Err("16-bit addressing has no scale".into());
    }
    let rm = match (base, index) {
        (Some(3), Some(6)) | (Some(6), Some(3)) => 0,
        (Some(3), Some(7)) | (Some(7), Some(3)) => 1,
        (Some(5), Some(6)) | (Some(6), Some(5)) => 2,
        (Some(5), Some(7)) | (Some(7), Some(5)) => 3,
        (Some(6), None) | (None, Some(6)) => 4,
        (Some(7), None) | (None, Some(7)) => 5,
        (Some(5), None) | (None, Some(5)) => 6,
        (Some(3), None) | (None, Some(3)) => 7,
        _ => return Err("16-bit addressing takes [bx|bp + si|di + disp] combinations only".into()),
    };
    let disp = m.disp();
    if !(-32768..=65535).contains(&disp) {
        return Err(format!("displacement {disp:#x} does not fit 16 bits"));
    }
    e.address_size_override = true;
    e.rm = rm;
    (e.modrm_mod, e.disp_size) = if disp == 0 && rm != 6 {
        (0, 0)
    } else if i8::try_from(disp).is_ok() {
        (1, 1)
    } else {
        (2, 2)
    };
    Ok(e)
}

/// Encodes `operands` with `form`. `Ok(None)` means this form cannot reach
/// the branch target (the caller tries the next, longer form).
fn encode_form(
    site: &Site<'_>,
    form: &'static Form,
    operands: &[Operand],
    options: InstOptions,
) -> Result<Option<Encoded>, String> {
    let arch = site.code.arch();
    let x64 = arch == Arch::X64;
    let mut reg_field: Option<Reg> = None;
    let mut rm_reg: Option<Reg> = None;
    let mut rm_mem: Option<&Mem> = None;
    let mut vvvv: Option<Reg> = None;
    let mut opcode_reg: Option<Reg> = None;
    let mut is4: Option<Reg> = None;
    let mut imms: [(i64, usize); 2] = [(0, 0); 2];
    let mut imm_count = 0;
    let mut rel: Option<(K, &Operand)> = None;
    let mut moffs: Option<&Mem> = None;
    let mut far: Option<(i64, K)> = None;
    let mut decorators = super::reg::Decorators::NONE;

    for (position, (op, &kind)) in operands.iter().zip(form.explicit_kinds()).enumerate() {
        let index = position + 1;
        if let Operand::Reg(r) = op
            && !r.decorators().is_empty()
        {
            if index != 1 {
                return Err(format!(
                    "{{k}}/{{z}} only decorate the destination, not {}",
                    r.name()
                ));
            }
            decorators = r.decorators();
        }
        match (slot_of(kind), op) {
            (Slot::ModRmReg, Operand::Reg(r)) => reg_field = Some(*r),
            (Slot::ModRmRm, Operand::Reg(r)) => rm_reg = Some(*r),
            (Slot::ModRmRm, Operand::Mem(m)) => {
                if !m.decorators().is_empty() {
                    decorators = m.decorators();
                }
                rm_mem = Some(m);
            }
            (Slot::Vvvv, Operand::Reg(r)) => vvvv = Some(*r),
            (Slot::OpcodeReg, Operand::Reg(r)) => opcode_reg = Some(*r),
            (Slot::Is4, Operand::Reg(r)) => is4 = Some(*r),
            (Slot::Imm, Operand::Imm(v)) => {
                if imm_count == 2 {
                    return Err("too many immediates".into());
                }
                imms[imm_count] = (*v, imm_size(kind));
                imm_count += 1;
            }
            (Slot::Rel, op) => rel = Some((kind, op)),
            (Slot::Moffs, Operand::Mem(m)) => moffs = Some(m),
            (Slot::Far, Operand::Imm(v)) => far = Some((*v, kind)),
            _ => {}
        }
    }

    // In 32-bit mode, cr8 is cr0 behind a LOCK prefix (AMD's alternative encoding).
    let lock_cr8 = !x64 && reg_field.is_some_and(|r| r.kind() == RegKind::Cr && r.id() == 8);
    if lock_cr8 {
        reg_field = Reg::new(RegKind::Cr, 0);
    }
    // In 64-bit mode 90 is `nop`, not `xchg eax, eax` (which zero-extends).
    if x64
        && form.modrm() == ModRmSpec::OpcodeReg
        && form.opcode() == NOP
        && form.operand_size() == 32
        && opcode_reg.is_some_and(|r| r.id() == 0)
    {
        return Err("xchg eax, eax needs the 87 form in 64-bit mode".into());
    }
    // Register numbers that the encoding can reach (ids below 8 always can).
    let all_regs = [reg_field, rm_reg, vvvv, opcode_reg, is4];
    let mut uses_high8 = false;
    let mut needs_rex_byte = false;
    let limit = match (x64, form.encoding()) {
        (false, _) => 8,
        (true, Encoding::Evex) => 32,
        (true, _) => 16,
    };
    for r in all_regs.iter().flatten() {
        match r.kind() {
            RegKind::Gp8Hi => uses_high8 = true,
            RegKind::Gp8 if r.id() >= 4 => needs_rex_byte = true,
            _ => {}
        }
        if r.id() < 8 && (x64 || r.kind() != RegKind::Gp64) {
            continue;
        }
        let id_limit = if matches!(
            r.kind(),
            RegKind::Seg | RegKind::St | RegKind::Mm | RegKind::K | RegKind::Tmm | RegKind::Bnd
        ) {
            8
        } else {
            limit
        };
        // r16-r31 reach legacy forms through REX2 (APX); whether the opcode
        // takes REX2 is checked with the prefix.
        let rex2_gp = x64 && r.kind().is_gp() && form.encoding() == Encoding::Legacy;
        if r.id() >= id_limit && !rex2_gp {
            return Err(if x64 {
                format!(
                    "{} is not encodable with {:?} (r16-r31 need a legacy or EVEX form)",
                    r.name(),
                    form.encoding()
                )
            } else {
                format!("{} is not available in 32-bit mode", r.name())
            });
        }
        if !x64 && r.kind() == RegKind::Gp64 {
            return Err(format!("{} is not available in 32-bit mode", r.name()));
        }
    }
    if let Some(m) = rm_mem {
        if let Some(index) = m.index() {
            if index.kind().is_vec() && index.id() >= limit {
                return Err(format!(
                    "{} is not encodable with {:?}",
                    index.name(),
                    form.encoding()
                ));
            }
            if !x64 && index.id() >= 8 {
                return Err(format!("{} is not available in 32-bit mode", index.name()));
            }
        }
        if let MemBase::Reg(b) = m.base()
            && !x64
            && b.id() >= 8
        {
            return Err(format!("{} is not available in 32-bit mode", b.name()));
        }
    }
    // One test on the common path for the rare rules (APX forms, {nf}, ah..bh).
    if (form.apx() != 0) | uses_high8 | options.intersects(InstOptions::NF) {
        check_apx(form, operands, options, uses_high8)?;
    }
    // Decorations and EVEX-only features.
    let er = options.rounding_mode();
    let sae = options.contains(InstOptions::SAE);
    let broadcast = rm_mem.is_some_and(|m| m.is_broadcast());
    if form.encoding() != Encoding::Evex {
        if !decorators.is_empty() || broadcast || er.is_some() || sae {
            return Err("masking, broadcast, rounding and {sae} need an EVEX form".into());
        }
    } else {
        if decorators.mask() != 0 && !form.has(flags::K) {
            return Err("this instruction takes no write mask".into());
        }
        if decorators.mask() == 0 && form.has(flags::K_REQUIRED) {
            return Err("this instruction needs a write mask k1..k7".into());
        }
        if decorators.zeroing() && (decorators.mask() == 0 || !form.has(flags::Z)) {
            return Err(if decorators.mask() == 0 {
                "{z} needs a write mask".into()
            } else {
                "this instruction takes no {z}".into()
            });
        }
        if rm_mem.is_some_and(|m| m.decorators().zeroing()) {
            return Err("{z} cannot apply to a memory destination".into());
        }
        if er.is_some() && (!form.has(flags::ER) || rm_mem.is_some()) {
            return Err("embedded rounding needs a register-only form that supports it".into());
        }
        if sae && (!(form.has(flags::SAE) || form.has(flags::ER)) || rm_mem.is_some()) {
            return Err("{sae} needs a register-only form that supports it".into());
        }
    }
    if options.intersects(InstOptions::PREFIXES) {
        check_prefixes(form, options, rm_mem.is_some())?;
    }

    let mut b = Bytes::new();
    let disp8_scale = if form.encoding() == Encoding::Evex {
        (if broadcast {
            form.disp8_nb()
        } else {
            form.disp8_n()
        })
        .max(1) as i64
    } else {
        1
    };
    let mem = match rm_mem {
        Some(m) => Some(encode_mem(m, arch, disp8_scale)?),
        None => None,
    };
    if mem
        .as_ref()
        .is_some_and(|e| e.address_size_override && !x64)
        && form.encoding() == Encoding::Evex
    {
        return Err("16-bit addressing is not supported with EVEX".into());
    }
    if let (Some(m), Some(e)) = (rm_mem, &mem) {
        // Forms with their own address size (enqcmd, movdir64b) need matching address registers.
        let uses = if e.address_size_override {
            if x64 { 32 } else { 16 }
        } else if x64 {
            64
        } else {
            32
        };
        let has_regs = m.index().is_some() || matches!(m.base(), MemBase::Reg(_));
        if form.address_size() != 0 && has_regs && form.address_size() != uses {
            return Err(format!(
                "this form needs {}-bit address registers",
                form.address_size()
            ));
        }
    }
    let segment = mem
        .as_ref()
        .and_then(|m| m.segment)
        .or_else(|| moffs.and_then(|m| m.segment().map(|s| s.id())));

    // Bits of the register numbers.
    let r_id = match form.modrm() {
        ModRmSpec::Reg | ModRmSpec::RegFixedRm(_) => reg_field.map_or(0, |r| r.hw_id()),
        ModRmSpec::Digit(d) => d,
        _ => 0,
    };
    let (b_id, x_id) = match (&mem, rm_reg, opcode_reg) {
        (Some(m), _, _) => (m.base_id, m.index_id),
        (None, Some(r), _) => (r.hw_id(), 0),
        (None, None, Some(r)) => (r.hw_id(), 0),
        _ => (0, 0),
    };

    // Legacy prefixes.
    if form.fwait() {
        b.push(WAIT);
    }
    if options.contains(InstOptions::LOCK) || lock_cr8 {
        b.push(0xf0);
    }
    if options.intersects(InstOptions::REPNE | InstOptions::XACQUIRE | InstOptions::BND) {
        b.push(0xf2);
    }
    if options.intersects(InstOptions::REP | InstOptions::XRELEASE) {
        b.push(0xf3);
    }
    if let Some(s) = segment {
        b.push([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][s as usize & 7]);
    }
    if options.contains(InstOptions::NOTRACK) {
        b.push(0x3e);
    }
    if matches!(form.encoding(), Encoding::Legacy | Encoding::Amd3dNow) && form.operand_size() == 16
        || options.contains(InstOptions::DATA16) && form.operand_size() != 16
    {
        b.push(0x66);
    }
    let default_asz = if x64 { 64 } else { 32 };
    let asz_override = match (form.address_size(), &mem) {
        (0, Some(m)) => m.address_size_override,
        (0, None) => false,
        (size, _) => size != default_asz,
    };
    if asz_override || options.contains(InstOptions::ADDR32) && x64 && form.address_size() != 32 {
        b.push(0x67);
    }
    let pp = match form.prefix() {
        MandatoryPrefix::P66 => 1,
        MandatoryPrefix::PF3 => 2,
        MandatoryPrefix::PF2 => 3,
        _ => 0,
    };
    let w_bit = match form.w() {
        VexW::W1 => 1,
        VexW::W1Wig32 if x64 => 1,
        _ => 0,
    };
    let rm_is_reg = rm_reg.is_some();
    let rm_high_bit = rm_reg.map_or(0, |r| r.hw_id() >> 4);
    let vsib = rm_mem.is_some_and(|m| m.is_vsib());
    let vvvv_id = vvvv.map_or(0, |r| r.hw_id());
    match form.encoding() {
        Encoding::Legacy | Encoding::Amd3dNow => {
            match form.prefix() {
                MandatoryPrefix::P66 => b.push(0x66),
                MandatoryPrefix::PF3 => b.push(0xf3),
                MandatoryPrefix::PF2 => b.push(0xf2),
                _ => {}
            }
            // `xchg rax, rax` is the one-byte nop, as AsmJit writes it.
            let swaps_rax_with_itself = form.modrm() == ModRmSpec::OpcodeReg
                && form.opcode() == NOP
                && opcode_reg.is_some_and(|r| r.id() == 0);
            let rex_w = form.rex_w() && !swaps_rax_with_itself;
            let rex = (u8::from(rex_w) << 3)
                | (((r_id >> 3) & 1) << 2)
                | (((x_id >> 3) & 1) << 1)
                | ((b_id >> 3) & 1);
            // r16-r31 (APX) need REX2: D5, then M0 R4 X4 B4 W R3 X3 B3, then the
            // opcode without its 0F escape.
            let mut rex2 = (r_id | x_id | b_id) & 16 != 0 || form.has_apx(apx::REX2);
            let opcode_low = |opcode_reg: Option<Reg>| {
                if form.modrm() == ModRmSpec::OpcodeReg {
                    opcode_reg.map_or(0, |r| r.hw_id() & 7)
                } else {
                    0
                }
            };
            if rex2 {
                let ids = [r_id, x_id, b_id];
                for byte in rex2_prefix(form, uses_high8, ids, rex, opcode_low(opcode_reg))? {
                    b.push(byte);
                }
            } else if rex != 0
                || needs_rex_byte
                || options.intersects(InstOptions::REX | InstOptions::REX2)
            {
                if !x64 {
                    return Err("this form needs REX, which 32-bit mode lacks".into());
                }
                if options.contains(InstOptions::REX2) {
                    // `{rex2}`: the same bits in a REX2 prefix.
                    let ids = [r_id, x_id, b_id];
                    for byte in rex2_prefix(form, uses_high8, ids, rex, opcode_low(opcode_reg))? {
                        b.push(byte);
                    }
                    rex2 = true;
                } else {
                    if uses_high8 {
                        return Err("ah, bh, ch and dh cannot be used with a REX prefix".into());
                    }
                    b.push(0x40 | rex);
                }
            }
            // With REX2 the opcode is written (its map is in REX2.M0).
            if !rex2 {
                match form.map() {
                    OpcodeMap::M0F | OpcodeMap::M0F0F => b.push(0x0f),
                    OpcodeMap::M0F38 => {
                        b.push(0x0f);
                        b.push(0x38);
                    }
                    OpcodeMap::M0F3A => {
                        b.push(0x0f);
                        b.push(0x3a);
                    }
                    _ => {}
                }
                if form.encoding() == Encoding::Amd3dNow {
                    b.push(0x0f);
                } else {
                    let low = if form.modrm() == ModRmSpec::OpcodeReg {
                        opcode_reg.map_or(0, |r| r.hw_id() & 7)
                    } else {
                        0
                    };
                    b.push(form.opcode() | low);
                }
            }
        }
        Encoding::Vex | Encoding::Xop => {
            let map_bits = match form.map() {
                OpcodeMap::M0F => 1,
                OpcodeMap::M0F38 => 2,
                OpcodeMap::M0F3A => 3,
                OpcodeMap::Xop8 => 8,
                OpcodeMap::Xop9 => 9,
                OpcodeMap::Xop10 => 10,
                _ => return Err("bad VEX map".into()),
            };
            // VEX and XOP have no bit for r16-r31 (a register operand of 16 or
            // more was refused above, so this is an address).
            if (x_id | b_id) & 16 != 0 {
                return Err(format!(
                    "r16-r31 in an address are not encodable with {:?} (they need a legacy or EVEX form)",
                    form.encoding()
                ));
            }
            let l_bit = u8::from(form.l() == VexL::L256);
            let r_bit = (r_id >> 3) & 1;
            let x_bit = (x_id >> 3) & 1;
            let b_bit = (b_id >> 3) & 1;
            let byte_last = (w_bit << 7) | ((!vvvv_id & 15) << 3) | (l_bit << 2) | pp;
            if form.encoding() == Encoding::Vex
                && map_bits == 1
                && x_bit == 0
                && b_bit == 0
                && w_bit == 0
            {
                b.push(0xc5);
                b.push(((r_bit ^ 1) << 7) | (byte_last & 0x7f));
            } else {
                b.push(if form.encoding() == Encoding::Xop {
                    0x8f
                } else {
                    0xc4
                });
                b.push(((r_bit ^ 1) << 7) | ((x_bit ^ 1) << 6) | ((b_bit ^ 1) << 5) | map_bits);
                b.push(byte_last);
            }
            b.push(form.opcode());
        }
        Encoding::Evex => {
            let map_bits = match form.map() {
                OpcodeMap::M0F => 1,
                OpcodeMap::M0F38 => 2,
                OpcodeMap::M0F3A => 3,
                OpcodeMap::Map4 => 4,
                OpcodeMap::Map5 => 5,
                OpcodeMap::Map6 => 6,
                _ => return Err("bad EVEX map".into()),
            };
            let r_bit = (r_id >> 3) & 1;
            let r2_bit = (r_id >> 4) & 1;
            // APX: bit 4 of a general-purpose rm register or base is B4
            // (P0 bit 3), of a general-purpose index X4 (P1 bit 2, inverted);
            // a vector rm register keeps bit 4 in EVEX.X.
            let gp_rm = rm_reg.is_some_and(|r| r.kind().is_gp());
            let x_bit = if gp_rm {
                0
            } else if rm_is_reg {
                rm_high_bit & 1
            } else {
                (x_id >> 3) & 1
            };
            let b4_bit = if rm_is_reg && !gp_rm {
                0
            } else {
                (b_id >> 4) & 1
            };
            let x4_bit = if rm_is_reg || vsib {
                0
            } else {
                (x_id >> 4) & 1
            };
            let b_bit = (b_id >> 3) & 1;
            let v2_bit = if vsib {
                (x_id >> 4) & 1
            } else {
                (vvvv_id >> 4) & 1
            };
            let p0 = ((r_bit ^ 1) << 7)
                | ((x_bit ^ 1) << 6)
                | ((b_bit ^ 1) << 5)
                | ((r2_bit ^ 1) << 4)
                | (b4_bit << 3)
                | map_bits;
            // ccmp/ctest: EVEX.vvvv holds the default flags {dfv=}, not inverted.
            let vvvv_field = if form.has_apx(apx::SCC) {
                options.dfv_flags().unwrap_or(0) & 15
            } else {
                !vvvv_id & 15
            };
            let p1 = (w_bit << 7) | (vvvv_field << 3) | ((x4_bit ^ 1) << 2) | pp;
            let (ll, bcst_bit) = if let Some(mode) = er {
                (mode as u8, 1)
            } else if sae {
                // With EVEX.b on a register form, L'L is the (ignored) rounding
                // field; assemblers write 00.
                (0, 1)
            } else {
                (
                    match form.l() {
                        VexL::L256 => 1,
                        VexL::L512 => 2,
                        _ => 0,
                    },
                    u8::from(broadcast),
                )
            };
            // APX: EVEX.b is ND, aaa bit 2 is NF; ccmp/ctest put the condition in the low four bits.
            let nd_bit = u8::from(form.has_apx(apx::ND));
            let nf_bit = u8::from(
                form.has_apx(apx::NF_FIXED)
                    || options.contains(InstOptions::NF) && form.has_apx(apx::NF),
            );
            let p2 = if form.has_apx(apx::SCC) {
                (nd_bit << 4) | ((form.apx() >> apx::SCC_SHIFT) as u8 & 15)
            } else {
                (u8::from(decorators.zeroing()) << 7)
                    | (ll << 5)
                    | ((bcst_bit | nd_bit) << 4)
                    | ((v2_bit ^ 1) << 3)
                    | (nf_bit << 2)
                    | decorators.mask()
            };
            b.push(0x62);
            b.push(p0);
            b.push(p1);
            b.push(p2);
            b.push(form.opcode());
        }
    }

    // ModRM, SIB, displacement.
    let mut field_use: Option<FieldUse> = None;
    let reg_bits = (r_id & 7) << 3;
    match form.modrm() {
        ModRmSpec::Fixed(byte) => b.push(byte),
        ModRmSpec::RegFixedRm(rm) => b.push(0xc0 | reg_bits | rm),
        ModRmSpec::StPlus(base) => b.push(base + opcode_reg.map_or(0, |r| r.id())),
        ModRmSpec::Reg | ModRmSpec::Digit(_) => {
            if let Some(m) = &mem {
                b.push((m.modrm_mod << 6) | reg_bits | m.rm);
                if let Some(sib) = m.sib {
                    b.push(sib);
                }
                let disp_at = b.len;
                b.push_le(m.disp, m.disp_size);
                if let Some(label) = m.rip_label {
                    field_use = Some(FieldUse {
                        at: disp_at as u8,
                        kind: FixupKind::Rel32,
                        target: Target::Label(label),
                        addend: m.disp,
                    });
                } else if let Some(label) = m.abs32_label {
                    field_use = Some(FieldUse {
                        at: disp_at as u8,
                        kind: FixupKind::Abs32,
                        target: Target::Label(label),
                        addend: m.disp,
                    });
                }
            } else {
                let rm = rm_reg.map_or(0, |r| r.hw_id() & 7);
                b.push(0xc0 | reg_bits | rm);
            }
        }
        ModRmSpec::None | ModRmSpec::OpcodeReg => {}
    }
    if form.encoding() == Encoding::Amd3dNow {
        b.push(form.opcode());
    }
    // Moffs address.
    if let Some(m) = moffs {
        let size = if x64 { 8 } else { 4 };
        b.push_le(m.disp(), size);
    }
    // Far pointer: offset then selector.
    if let Some((v, kind)) = far {
        let off_size = if kind == K::FarPtr16 { 2 } else { 4 };
        b.push_le(v & 0xffff_ffff, off_size);
        b.push_le((v >> 32) & 0xffff, 2);
    }
    // Immediates (with is4 register in the high bits).
    if let Some(r) = is4 {
        let low = if imm_count > 0 { imms[0].0 & 15 } else { 0 };
        b.push(((r.hw_id() & 15) << 4) | low as u8);
        imm_count = 0;
    }
    for &(v, n) in &imms[..imm_count] {
        b.push_le(v, n);
    }
    // Relative branch target.
    if let Some((kind, target)) = rel {
        let size = match kind {
            K::Rel8 => 1,
            K::Rel16 | K::XRel16 | K::Disp16 => 2,
            _ => 4,
        };
        if kind == K::Rel8 && options.contains(InstOptions::LONG) {
            return Ok(None);
        }
        if size != 1 && options.contains(InstOptions::SHORT) {
            return Err("short branch requested but this form is near".into());
        }
        let at = b.len;
        b.push_le(0, size);
        let end = (site.offset + b.len) as i64;
        match target {
            Operand::Label(label) => match site.code.label_offset(*label) {
                Some((section, offset)) if section == site.section => {
                    if !write_branch(&mut b, at, offset as i64 - end, size, options)? {
                        return Ok(None);
                    }
                }
                _ => {
                    if site.code.label_offset(*label).is_none()
                        && label.id() as usize >= site.code.label_count()
                    {
                        return Err(format!(
                            "label L{} does not belong to this code holder",
                            label.id()
                        ));
                    }
                    if size == 1 && !options.contains(InstOptions::SHORT) {
                        return Ok(None);
                    }
                    if size == 2 {
                        return Err("rel16 branches to labels are not supported".into());
                    }
                    let kind = if size == 1 {
                        FixupKind::Rel8
                    } else {
                        FixupKind::Rel32
                    };
                    field_use = Some(FieldUse {
                        at: at as u8,
                        kind,
                        target: Target::Label(*label),
                        addend: 0,
                    });
                }
            },
            Operand::Imm(address) => {
                let address = *address as u64;
                match site.code.base_address() {
                    Some(base) => {
                        let distance = address.wrapping_sub(base.wrapping_add(end as u64)) as i64;
                        let distance = if x64 {
                            distance
                        } else {
                            distance as i32 as i64
                        };
                        if !write_branch(&mut b, at, distance, size, options)? {
                            return Ok(None);
                        }
                    }
                    None => {
                        if size != 4 {
                            if options.contains(InstOptions::SHORT) {
                                return Err("a short branch to an absolute address needs a known base address".into());
                            }
                            return Ok(None);
                        }
                        field_use = Some(FieldUse {
                            at: at as u8,
                            kind: FixupKind::Rel32,
                            target: Target::Absolute(address),
                            addend: 0,
                        });
                    }
                }
            }
            _ => return Err("expected a label or an address".into()),
        }
    }
    if b.len > 15 {
        return Err(format!("{} bytes: longer than the 15-byte limit", b.len));
    }
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&b.buf[..16]);
    Ok(Some(Encoded {
        bytes,
        len: b.len,
        field_use,
        form,
    }))
}
