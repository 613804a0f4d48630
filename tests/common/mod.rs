//! Shared helpers for the encoder tests: decoding with iced-x86 (the
//! independent reference decoder) and comparing what it decoded with the
//! operands jitforge was given.
#![allow(dead_code)]

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};
use jitforge::x86::{Mem, MemBase, Mnemonic, Operand, Reg, RegKind};

/// Decodes exactly one instruction that must use all of `bytes`.
pub fn decode_one(bytes: &[u8], bitness: u32) -> Result<Instruction, String> {
    decode_with(bytes, bitness, DecoderOptions::NONE)
}

/// Decodes with MPX and Cyrix/Geode opcodes enabled (for `bnd*`, `pfrcpv`, `pfrsqrtv`).
pub fn decode_for(mnemonic: Mnemonic, bytes: &[u8], bitness: u32) -> Result<Instruction, String> {
    let name = mnemonic.name();
    let options = if name.starts_with("bnd") {
        DecoderOptions::MPX
    } else if name == "pfrcpv" || name == "pfrsqrtv" {
        DecoderOptions::CYRIX
    } else {
        DecoderOptions::NONE
    };
    decode_with(bytes, bitness, options)
}

fn decode_with(bytes: &[u8], bitness: u32, options: u32) -> Result<Instruction, String> {
    // An FWAIT-prefixed x87 instruction decodes as `wait` followed by the no-wait form.
    let bytes = match bytes {
        [0x9b, rest @ ..] if !rest.is_empty() => rest,
        _ => bytes,
    };
    let mut decoder = Decoder::with_ip(bitness, bytes, 0, options);
    let instr = decoder.decode();
    if instr.is_invalid() {
        return Err(format!("iced-x86 cannot decode {}", hex(bytes)));
    }
    if instr.len() != bytes.len() {
        return Err(format!(
            "iced-x86 decoded {} of {} bytes from {}",
            instr.len(),
            bytes.len(),
            hex(bytes)
        ));
    }
    Ok(instr)
}

/// Lower-case hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn reg_name(r: Register) -> String {
    let name = format!("{r:?}").to_lowercase();
    // iced-x86 calls r8b..r15b r8l..r15l.
    match name.strip_suffix('l') {
        Some(n) if n.starts_with('r') && n[1..].parse::<u8>().is_ok() => format!("{n}b"),
        _ => name,
    }
}

fn our_reg_name(r: Reg) -> String {
    match r.kind() {
        RegKind::St => format!("st{}", r.id()),
        _ => r.name().to_string(),
    }
}

fn is_implicit_memory(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::MemorySegSI
            | OpKind::MemorySegESI
            | OpKind::MemorySegRSI
            | OpKind::MemorySegDI
            | OpKind::MemorySegEDI
            | OpKind::MemorySegRDI
            | OpKind::MemoryESDI
            | OpKind::MemoryESEDI
            | OpKind::MemoryESRDI
    )
}

fn mnemonic_matches(ours: Mnemonic, theirs: iced_x86::Mnemonic) -> bool {
    let theirs = format!("{theirs:?}").to_lowercase();
    let ours = ours.name();
    // `pushfw` etc. are iced-x86's `pushf`; `fclex` (with FWAIT) decodes as `wait` + `fnclex`.
    ours == theirs
        || ours.strip_suffix('w').is_some_and(|s| s == theirs)
        || theirs
            .strip_prefix("fn")
            .is_some_and(|s| ours.strip_prefix('f') == Some(s))
}

fn compare_mem(m: &Mem, instr: &Instruction, bitness: u32) -> Result<(), String> {
    let base = match m.base() {
        MemBase::Reg(r) => our_reg_name(r),
        MemBase::Rip => {
            if bitness == 64 {
                "rip".into()
            } else {
                "none".into()
            }
        }
        MemBase::None | MemBase::Label(_) => "none".into(),
    };
    let their_base = reg_name(instr.memory_base());
    if base != their_base {
        return Err(format!("base {base} decoded as {their_base}"));
    }
    let index = m.index().map_or("none".to_string(), our_reg_name);
    let their_index = reg_name(instr.memory_index());
    if index != their_index {
        return Err(format!("index {index} decoded as {their_index}"));
    }
    if m.index().is_some() && m.scale() as u32 != instr.memory_index_scale() {
        return Err(format!(
            "scale {} decoded as {}",
            m.scale(),
            instr.memory_index_scale()
        ));
    }
    let disp = instr.memory_displacement64() as i64;
    let ours = m.disp();
    let addr32 = bitness == 32 || matches!(m.base(), MemBase::Reg(r) if r.kind() == RegKind::Gp32);
    let same = if m.base() == MemBase::Rip {
        true
    } else if addr32 {
        ours as u32 == disp as u32
    } else {
        ours == disp
    };
    if !same {
        return Err(format!("displacement {ours:#x} decoded as {disp:#x}"));
    }
    if let Some(seg) = m.segment() {
        let theirs = reg_name(instr.segment_prefix());
        if seg.name() != theirs {
            return Err(format!("segment {} decoded as {theirs}", seg.name()));
        }
    }
    if m.is_broadcast() != instr.is_broadcast() {
        return Err(format!(
            "broadcast {} decoded as {}",
            m.is_broadcast(),
            instr.is_broadcast()
        ));
    }
    Ok(())
}

/// Checks that iced-x86 decoded the instruction jitforge was asked for.
pub fn compare(
    mnemonic: Mnemonic,
    operands: &[Operand],
    instr: &Instruction,
    bitness: u32,
) -> Result<(), String> {
    if !mnemonic_matches(mnemonic, instr.mnemonic()) {
        return Err(format!(
            "mnemonic {} decoded as {:?}",
            mnemonic.name(),
            instr.mnemonic()
        ));
    }
    // `xlatb`'s [rbx + al] is implicit in Intel syntax too.
    let implicit_xlat = instr.mnemonic() == iced_x86::Mnemonic::Xlatb;
    let theirs: Vec<u32> = (0..instr.op_count())
        .filter(|&i| !is_implicit_memory(instr.op_kind(i)) && !implicit_xlat)
        .collect();
    if theirs.len() != operands.len() {
        return Err(format!(
            "{} operands decoded as {}",
            operands.len(),
            theirs.len()
        ));
    }
    let mut mask = 0u8;
    let mut zeroing = false;
    for (op, &i) in operands.iter().zip(&theirs) {
        let kind = instr.op_kind(i);
        match op {
            Operand::Reg(r) => {
                if kind != OpKind::Register {
                    return Err(format!("{} decoded as {kind:?}", r.name()));
                }
                let theirs = reg_name(instr.op_register(i));
                if our_reg_name(*r) != theirs {
                    return Err(format!("register {} decoded as {theirs}", r.name()));
                }
                mask |= r.decorators().mask();
                zeroing |= r.decorators().zeroing();
            }
            Operand::Mem(m) => {
                if kind != OpKind::Memory {
                    return Err(format!("memory decoded as {kind:?}"));
                }
                compare_mem(m, instr, bitness)?;
                mask |= m.decorators().mask();
            }
            Operand::Imm(v) => match kind {
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                    let target = instr.near_branch_target();
                    if target != *v as u64 {
                        return Err(format!("branch target {v:#x} decoded as {target:#x}"));
                    }
                }
                OpKind::FarBranch16 | OpKind::FarBranch32 => {
                    let (sel, off) = (
                        instr.far_branch_selector() as i64,
                        instr.far_branch32() as i64,
                    );
                    if (sel << 32) | off != *v {
                        return Err(format!("far target {v:#x} decoded as {sel:#x}:{off:#x}"));
                    }
                }
                _ => {
                    let theirs = instr
                        .try_immediate(i)
                        .map_err(|e| format!("immediate decoded as {kind:?}: {e}"))?;
                    let width = match kind {
                        OpKind::Immediate8 | OpKind::Immediate8_2nd => 8,
                        OpKind::Immediate16 | OpKind::Immediate8to16 => 16,
                        OpKind::Immediate32 | OpKind::Immediate8to32 => 32,
                        _ => 64,
                    };
                    let m = if width == 64 {
                        u64::MAX
                    } else {
                        (1u64 << width) - 1
                    };
                    if (*v as u64) & m != theirs & m {
                        return Err(format!("immediate {v:#x} decoded as {theirs:#x}"));
                    }
                }
            },
            Operand::Label(_) => {}
            Operand::None => {}
        }
    }
    let their_mask = match instr.op_mask() {
        Register::None => 0,
        r => (r as u32 - Register::K0 as u32) as u8,
    };
    if mask != their_mask {
        return Err(format!("mask k{mask} decoded as k{their_mask}"));
    }
    if zeroing != instr.zeroing_masking() {
        return Err(format!(
            "zeroing {zeroing} decoded as {}",
            instr.zeroing_masking()
        ));
    }
    Ok(())
}
