//! Bootstraps the instruction database text from the opcode metadata that the
//! iced-x86 crate publishes through its public API (`Code::op_code()`).
//!
//! This runs once to seed `src/x86/db/instructions.txt`; from then on that file
//! is the project's reviewed data. The tool stays in the repository so the
//! seeding can be repeated and audited. It selects the universe the
//! instruction-set issue defines (dropping Xeon Phi, VIA PadLock, Cyrix,
//! undocumented opcodes and alias encodings no assembly text selects) and
//! writes each form in the line format that `crate::parse` reads.

use iced_x86::{
    Code, CpuidFeature, EncodingKind, Instruction, InstructionInfoFactory, MandatoryPrefix,
    MemorySize, Mnemonic, OpAccess, OpCodeOperandKind, OpCodeTableKind, OpKind, Register,
    RflagsBits, TupleType,
};
use std::fmt::Write as _;

/// One database row before it is written out.
struct Row {
    mnemonic: String,
    priority: (u8, u8, u8, u8),
    order: usize,
    text: String,
}

/// Features whose instructions are outside the universe.
const EXCLUDED_FEATURES: &[CpuidFeature] = &[
    CpuidFeature::KNC,
    CpuidFeature::AVX512ER,
    CpuidFeature::AVX512PF,
    CpuidFeature::AVX512_4FMAPS,
    CpuidFeature::AVX512_4VNNIW,
    CpuidFeature::PADLOCK_ACE,
    CpuidFeature::PADLOCK_GMI,
    CpuidFeature::PADLOCK_PHE,
    CpuidFeature::PADLOCK_PMM,
    CpuidFeature::PADLOCK_RNG,
    CpuidFeature::PADLOCK_UNDOC,
    CpuidFeature::CYRIX_D3NOW,
    CpuidFeature::CYRIX_DMI,
    CpuidFeature::CYRIX_FPU,
    CpuidFeature::CYRIX_SMINT,
    CpuidFeature::CYRIX_SMINT_0F7E,
    CpuidFeature::CYRIX_SHR,
    CpuidFeature::CYRIX_DDI,
    CpuidFeature::CYRIX_EMMI,
    CpuidFeature::CYRIX_SMM,
    CpuidFeature::CENTAUR_AIS,
    CpuidFeature::UMOV,
];

/// Whether `code` belongs to the universe (see module docs).
fn in_universe(code: Code) -> bool {
    let op = code.op_code();
    if !op.is_instruction() || op.encoding() == EncodingKind::MVEX {
        return false;
    }
    if !op.mode64() && !op.mode32() {
        return false;
    }
    if op.is_reserved_nop() {
        return false;
    }
    // Forms a decoder only accepts with a special option are single-CPU or
    // undocumented (486 A-step cmpxchg, loadall, umov, Cyrix...), except MPX
    // and AsmJit's two Geode 3DNow! forms.
    let name = format!("{code:?}");
    let geode_kept = name.contains("Pfrcpv") || name.contains("Pfrsqrtv");
    if op.decoder_option() != 0
        && op.decoder_option() != iced_x86::DecoderOptions::MPX
        && !geode_kept
    {
        return false;
    }
    if code
        .cpuid_features()
        .iter()
        .any(|f| EXCLUDED_FEATURES.contains(f))
    {
        return false;
    }
    // Geode-only 3DNow! forms: AsmJit keeps pfrcpv/pfrsqrtv, and so do we.
    if code.cpuid_features().contains(&CpuidFeature::D3NOW)
        && name.contains("Geode")
        && !(name.contains("Pfrcpv") || name.contains("Pfrsqrtv"))
    {
        return false;
    }
    // AMD's operand-less `ud0` (0F FF) is what Intel decodes as `ud0 r, r/m`.
    if name == "Ud0" {
        return false;
    }
    let excluded_prefixes = [
        "Popw_CS",
        "Loadall",
        "Umov",
        "Jmpe",
        "Sal_",
        "Nopq",
        "Salc_",
        "Zero_bytes",
    ];
    if excluded_prefixes.iter().any(|p| name.starts_with(p)) {
        return false;
    }
    // Alias encodings that no assembly text selects.
    let alias_suffixes = ["_82", "_F6r1", "_F7r1", "_0F11"];
    if alias_suffixes.iter().any(|s| name.ends_with(s))
        && !name.starts_with("Movss")
        && !name.starts_with("Movsd")
    {
        // `movss xmm, xmm` store form (0F 11) is also an alias; the 0F 10 form is selected.
        return false;
    }
    if name.starts_with("Movss_xmm_xmm_0F11") || name.starts_with("Movsd_xmm_xmm_0F11") {
        return false;
    }
    // x87 aliases with an explicit opcode suffix (e.g. Fcom_st0_sti_DCD0).
    if name.starts_with('F')
        && name
            .rsplit('_')
            .next()
            .is_some_and(|s| s.len() == 4 && s.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return false;
    }
    if op.op_kinds().contains(&OpCodeOperandKind::tr_reg) {
        return false;
    }
    true
}

fn mnemonic_name(code: Code) -> String {
    let op = code.op_code();
    let name = format!("{:?}", code.mnemonic()).to_lowercase();
    // iced names the 16-bit forms of these without a suffix; assemblers read the
    // unsuffixed name as the mode's default size, so the 16-bit ones get a `w`.
    match (code.mnemonic(), op.operand_size()) {
        (
            Mnemonic::Pushf | Mnemonic::Popf | Mnemonic::Pusha | Mnemonic::Popa | Mnemonic::Iret,
            16,
        ) => {
            format!("{name}w")
        }
        _ => name,
    }
}

fn operand_token(kind: OpCodeOperandKind) -> Option<&'static str> {
    use OpCodeOperandKind as K;
    Some(match kind {
        K::None => return None,
        K::farbr2_2 => "ptr16:16",
        K::farbr4_2 => "ptr16:32",
        K::mem_offs => "moffs",
        K::mem => "m",
        K::mem_mpx => "m.mpx",
        K::mem_mib => "m.mib",
        K::mem_vsib32x => "vm32x",
        K::mem_vsib64x => "vm64x",
        K::mem_vsib32y => "vm32y",
        K::mem_vsib64y => "vm64y",
        K::mem_vsib32z => "vm32z",
        K::mem_vsib64z => "vm64z",
        K::sibmem => "m.sib",
        K::r8_or_mem => "r8/m",
        K::r16_or_mem => "r16/m",
        K::r32_or_mem => "r32/m",
        K::r32_or_mem_mpx => "r32/m.mpx",
        K::r64_or_mem => "r64/m",
        K::r64_or_mem_mpx => "r64/m.mpx",
        K::mm_or_mem => "mm/m",
        K::xmm_or_mem => "xmm/m",
        K::ymm_or_mem => "ymm/m",
        K::zmm_or_mem => "zmm/m",
        K::bnd_or_mem_mpx => "bnd/m.mpx",
        K::k_or_mem => "k/m",
        K::r8_reg => "r8",
        K::r8_opcode => "r8.o",
        K::r16_reg => "r16",
        K::r16_reg_mem => "r16.a",
        K::r16_rm => "r16.rm",
        K::r16_opcode => "r16.o",
        K::r32_reg => "r32",
        K::r32_reg_mem => "r32.a",
        K::r32_rm => "r32.rm",
        K::r32_opcode => "r32.o",
        K::r32_vvvv => "r32.v",
        K::r64_reg => "r64",
        K::r64_reg_mem => "r64.a",
        K::r64_rm => "r64.rm",
        K::r64_opcode => "r64.o",
        K::r64_vvvv => "r64.v",
        K::seg_reg => "sreg",
        K::k_reg => "k",
        K::kp1_reg => "k.pair",
        K::k_rm => "k.rm",
        K::k_vvvv => "k.v",
        K::mm_reg => "mm",
        K::mm_rm => "mm.rm",
        K::xmm_reg => "xmm",
        K::xmm_rm => "xmm.rm",
        K::xmm_vvvv => "xmm.v",
        K::xmmp3_vvvv => "xmm.v4",
        K::xmm_is4 => "xmm.is4",
        K::xmm_is5 => "xmm.is5",
        K::ymm_reg => "ymm",
        K::ymm_rm => "ymm.rm",
        K::ymm_vvvv => "ymm.v",
        K::ymm_is4 => "ymm.is4",
        K::ymm_is5 => "ymm.is5",
        K::zmm_reg => "zmm",
        K::zmm_rm => "zmm.rm",
        K::zmm_vvvv => "zmm.v",
        K::zmmp3_vvvv => "zmm.v4",
        K::cr_reg => "cr",
        K::dr_reg => "dr",
        K::tr_reg => "tr",
        K::bnd_reg => "bnd",
        K::es => "es",
        K::cs => "cs",
        K::ss => "ss",
        K::ds => "ds",
        K::fs => "fs",
        K::gs => "gs",
        K::al => "al",
        K::cl => "cl",
        K::ax => "ax",
        K::dx => "dx",
        K::eax => "eax",
        K::rax => "rax",
        K::st0 => "st0",
        K::sti_opcode => "st.o",
        K::imm4_m2z => "i4",
        K::imm8 => "ib",
        K::imm8_const_1 => "1",
        K::imm8sex16 => "ib.sx16",
        K::imm8sex32 => "ib.sx32",
        K::imm8sex64 => "ib.sx64",
        K::imm16 => "iw",
        K::imm32 => "id",
        K::imm32sex64 => "id.sx64",
        K::imm64 => "iq",
        K::seg_rSI => "[rsi]",
        K::es_rDI => "es:[rdi]",
        K::seg_rDI => "[rdi]",
        K::seg_rBX_al => "[rbx+al]",
        K::br16_1 | K::br32_1 | K::br64_1 => "rel8",
        K::br16_2 => "rel16",
        K::br32_4 | K::br64_4 => "rel32",
        K::xbegin_2 => "xrel16",
        K::xbegin_4 => "xrel32",
        K::brdisp_2 => "disp16",
        K::brdisp_4 => "disp32",
        K::tmm_reg => "tmm",
        K::tmm_rm => "tmm.rm",
        K::tmm_vvvv => "tmm.v",
        _ => return None,
    })
}

fn map_token(table: OpCodeTableKind) -> &'static str {
    match table {
        OpCodeTableKind::Normal => "",
        OpCodeTableKind::T0F => "0f",
        OpCodeTableKind::T0F38 => "0f38",
        OpCodeTableKind::T0F3A => "0f3a",
        OpCodeTableKind::MAP5 => "map5",
        OpCodeTableKind::MAP6 => "map6",
        OpCodeTableKind::MAP8 => "m8",
        OpCodeTableKind::MAP9 => "m9",
        OpCodeTableKind::MAP10 => "m10",
        _ => "?",
    }
}

fn prefix_token(prefix: MandatoryPrefix) -> &'static str {
    match prefix {
        MandatoryPrefix::None => "",
        MandatoryPrefix::PNP => "np",
        MandatoryPrefix::P66 => "66",
        MandatoryPrefix::PF3 => "f3",
        MandatoryPrefix::PF2 => "f2",
    }
}

/// The encoding column: Intel-manual style, e.g. `o64 rex.w 83 /0` or `evex.512.0f.w0 58 /r`.
fn encoding_text(code: Code) -> String {
    let op = code.op_code();
    let kinds = op.op_kinds();
    let has = |k: OpCodeOperandKind| kinds.contains(&k);
    let mut parts: Vec<String> = Vec::new();
    let opcode_reg = kinds.iter().any(|k| {
        matches!(
            k,
            OpCodeOperandKind::r8_opcode
                | OpCodeOperandKind::r16_opcode
                | OpCodeOperandKind::r32_opcode
                | OpCodeOperandKind::r64_opcode
        )
    });
    let modrm_group = if op.is_group() {
        Some(op.group_index())
    } else {
        None
    };
    let uses_modrm = kinds.iter().any(|k| {
        let t = operand_token(*k).unwrap_or("");
        t.contains("/m")
            || matches!(t, "m" | "m.mpx" | "m.mib" | "m.sib")
            || t.starts_with("vm")
            || t.ends_with(".rm")
            || t.ends_with(".a")
            || matches!(
                t,
                "r8" | "r16"
                    | "r32"
                    | "r64"
                    | "sreg"
                    | "k"
                    | "k.pair"
                    | "mm"
                    | "xmm"
                    | "ymm"
                    | "zmm"
                    | "cr"
                    | "dr"
                    | "bnd"
                    | "tmm"
            )
    });
    let (opcode, second) = if op.op_code_len() == 2 {
        ((op.op_code() >> 8) as u8, Some(op.op_code() as u8))
    } else {
        (op.op_code() as u8, None)
    };
    match op.encoding() {
        EncodingKind::Legacy | EncodingKind::D3NOW => {
            if op.fwait() {
                parts.push("fwait".into());
            }
            match op.operand_size() {
                16 => parts.push("o16".into()),
                32 => parts.push("o32".into()),
                64 => parts.push("o64".into()),
                _ => {}
            }
            match op.address_size() {
                16 => parts.push("a16".into()),
                32 => parts.push("a32".into()),
                64 => parts.push("a64".into()),
                _ => {}
            }
            let p = prefix_token(op.mandatory_prefix());
            if !p.is_empty() {
                parts.push(p.into());
            }
            if op.operand_size() == 64 && !op.default_op_size64() && !op.force_op_size64() {
                parts.push("rex.w".into());
            }
            if op.encoding() == EncodingKind::D3NOW {
                parts.push("3dnow".into());
            } else {
                let m = map_token(op.table());
                if !m.is_empty() {
                    parts.push(m.into());
                }
            }
        }
        EncodingKind::VEX | EncodingKind::EVEX | EncodingKind::XOP => {
            let enc = match op.encoding() {
                EncodingKind::VEX => "vex",
                EncodingKind::EVEX => "evex",
                _ => "xop",
            };
            let l = if op.is_lig() {
                "lig"
            } else {
                match op.l() {
                    0 => "128",
                    1 => "256",
                    _ => "512",
                }
            };
            let w = if op.is_wig() {
                "wig".to_string()
            } else if op.is_wig32() {
                format!("w{}.wig32", op.w())
            } else {
                format!("w{}", op.w())
            };
            let mut head = format!("{enc}.{l}");
            let p = prefix_token(op.mandatory_prefix());
            if !p.is_empty() && p != "np" {
                head.push('.');
                head.push_str(p);
            }
            let m = map_token(op.table());
            if !m.is_empty() {
                head.push('.');
                head.push_str(m);
            }
            head.push('.');
            head.push_str(&w);
            parts.push(head);
        }
        _ => return "?".into(),
    }
    if op.encoding() == EncodingKind::D3NOW {
        parts.push("/r".into());
        parts.push(format!("{opcode:02x}"));
        return parts.join(" ");
    }
    if opcode_reg {
        parts.push(format!("{opcode:02x}+r"));
    } else if has(OpCodeOperandKind::sti_opcode) {
        let base = second.unwrap_or(0);
        parts.push(format!("{opcode:02x}"));
        parts.push(format!("{base:02x}+i"));
    } else if let Some(second) = second {
        parts.push(format!("{opcode:02x}"));
        parts.push(format!("{second:02x}"));
    } else {
        parts.push(format!("{opcode:02x}"));
    }
    if let Some(g) = modrm_group {
        parts.push(format!("/{g}"));
    } else if op.is_rm_group() {
        // `11:rrr:nnn`: register in ModRM.reg, a fixed register number in ModRM.rm.
        parts.push("/r".into());
        parts.push(format!("rm={}", op.rm_group_index()));
    } else if uses_modrm && second.is_none() {
        parts.push("/r".into());
    }
    parts.join(" ")
}

fn memory_size_bytes(size: MemorySize) -> usize {
    if size == MemorySize::Unknown {
        0
    } else {
        size.size()
    }
}

/// The attribute column: memory sizes, EVEX details and allowed prefixes.
fn attributes(code: Code) -> String {
    let op = code.op_code();
    let mut out = String::new();
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
    };
    let has_mem = op.op_kinds().iter().any(|k| {
        let t = operand_token(*k).unwrap_or("");
        t.contains("/m") || t.starts_with('m') || t.starts_with("vm")
    });
    if has_mem {
        push(&format!("m={}", memory_size_bytes(op.memory_size())));
    }
    if op.can_broadcast() {
        push(&format!(
            "bcst={}",
            memory_size_bytes(op.broadcast_memory_size())
        ));
    }
    if op.encoding() == EncodingKind::EVEX {
        let tt = format!("{:?}", op.tuple_type());
        // TupleType names are N<disp8 scale>[b<broadcast scale>].
        let rest = tt.trim_start_matches('N');
        let (n, b) = match rest.split_once('b') {
            Some((n, b)) => (n.to_string(), Some(b.to_string())),
            None => (rest.to_string(), None),
        };
        if has_mem {
            push(&format!("n={n}"));
            if let Some(b) = b {
                push(&format!("nb={b}"));
            }
        }
        let _ = TupleType::N1;
    }
    if op.require_op_mask_register() {
        push("k!");
    } else if op.can_use_op_mask_register() {
        push("k");
    }
    if op.can_use_zeroing_masking() {
        push("z");
    }
    if op.can_use_rounding_control() {
        push("er");
    }
    if op.can_suppress_all_exceptions() {
        push("sae");
    }
    for (cond, name) in [
        (op.can_use_lock_prefix(), "lock"),
        (op.can_use_xacquire_prefix(), "xacquire"),
        (op.can_use_xrelease_prefix(), "xrelease"),
        (op.can_use_rep_prefix(), "rep"),
        (op.can_use_repne_prefix(), "repne"),
        (op.can_use_bnd_prefix(), "bnd"),
        (op.can_use_notrack_prefix(), "notrack"),
    ] {
        if cond {
            push(name);
        }
    }
    out
}

/// Ranks forms of one mnemonic so that the first form that accepts an
/// instruction's operands is the one an assembler picks (the shortest).
fn priority(code: Code) -> (u8, u8, u8, u8) {
    let op = code.op_code();
    let kinds = op.op_kinds();
    let encoding_rank = match op.encoding() {
        EncodingKind::EVEX => 1,
        _ => 0,
    };
    let short_branch = kinds.iter().any(|k| {
        matches!(
            k,
            OpCodeOperandKind::br16_1 | OpCodeOperandKind::br32_1 | OpCodeOperandKind::br64_1
        )
    });
    let imm_rank = if kinds.contains(&OpCodeOperandKind::imm8_const_1) || short_branch {
        0
    } else if kinds.iter().any(|k| {
        matches!(
            k,
            OpCodeOperandKind::imm8sex16
                | OpCodeOperandKind::imm8sex32
                | OpCodeOperandKind::imm8sex64
        )
    }) {
        1
    } else if kinds.contains(&OpCodeOperandKind::imm32sex64) {
        2
    } else if kinds.contains(&OpCodeOperandKind::imm64) {
        4
    } else {
        3
    };
    let fixed = kinds.iter().any(|k| {
        matches!(
            k,
            OpCodeOperandKind::al
                | OpCodeOperandKind::ax
                | OpCodeOperandKind::eax
                | OpCodeOperandKind::rax
        )
    });
    let opcode_reg = kinds.iter().any(|k| {
        matches!(
            k,
            OpCodeOperandKind::r8_opcode
                | OpCodeOperandKind::r16_opcode
                | OpCodeOperandKind::r32_opcode
                | OpCodeOperandKind::r64_opcode
        )
    });
    let shape_rank = if fixed {
        0
    } else if opcode_reg {
        1
    } else {
        2
    };
    // Forms whose size only the mnemonic suffix or mode can tell go after the
    // default-size ones (`push es` is the 32-bit form in 32-bit mode).
    let explicit_size = kinds.iter().any(|k| {
        let t = operand_token(*k).unwrap_or("");
        (t.starts_with('r') && !t.starts_with("rel")) || t.contains("/m") || t == "ax" || t == "dx"
    });
    let size_rank = if !explicit_size && op.operand_size() == 16 {
        4
    } else {
        0
    };
    // Of forms that differ in address size only (`loop`), the 64-bit one comes
    // first: in each mode the first valid one is then the mode's default.
    let size_rank = size_rank
        + match op.address_size() {
            16 => 2,
            32 => 1,
            _ => 0,
        };
    (size_rank, encoding_rank, imm_rank, shape_rank)
}

/// Operand access, implicit registers and flags of a form, from iced-x86's
/// instruction-info tables: an instruction of this code is built with
/// distinct sample operands and asked what it reads and writes.
struct Facts {
    access: Vec<&'static str>,
    implicit: Vec<String>,
    flags_read: u32,
    flags_written: u32,
}

fn access_token(access: OpAccess) -> &'static str {
    match access {
        OpAccess::Read => "r",
        OpAccess::CondRead => "cr",
        OpAccess::Write => "w",
        OpAccess::CondWrite => "cw",
        OpAccess::ReadWrite => "rw",
        OpAccess::ReadCondWrite => "rcw",
        OpAccess::NoMemAccess => "n",
        _ => "",
    }
}

fn sample_register(kind: OpCodeOperandKind, i: u32) -> Option<Register> {
    use OpCodeOperandKind as K;
    let pick = |base: Register, n: u32| -> Register {
        Register::values()
            .nth(base as usize + n as usize)
            .unwrap_or(base)
    };
    Some(match kind {
        K::r8_reg | K::r8_or_mem | K::r8_opcode => pick(Register::R8L, 2 + i),
        K::r16_reg | K::r16_or_mem | K::r16_rm | K::r16_opcode | K::r16_reg_mem => {
            pick(Register::R8W, 2 + i)
        }
        K::r32_reg
        | K::r32_or_mem
        | K::r32_rm
        | K::r32_opcode
        | K::r32_vvvv
        | K::r32_reg_mem
        | K::r32_or_mem_mpx => pick(Register::R8D, 2 + i),
        K::r64_reg
        | K::r64_or_mem
        | K::r64_rm
        | K::r64_opcode
        | K::r64_vvvv
        | K::r64_reg_mem
        | K::r64_or_mem_mpx => pick(Register::R8, 2 + i),
        K::seg_reg => Register::FS,
        K::k_reg | K::k_rm | K::k_vvvv | K::k_or_mem => pick(Register::K1, i),
        K::kp1_reg => Register::K2,
        K::mm_reg | K::mm_rm | K::mm_or_mem => pick(Register::MM1, i),
        K::xmm_reg | K::xmm_rm | K::xmm_vvvv | K::xmm_or_mem | K::xmm_is4 | K::xmm_is5 => {
            pick(Register::XMM8, i)
        }
        K::xmmp3_vvvv => Register::XMM12,
        K::ymm_reg | K::ymm_rm | K::ymm_vvvv | K::ymm_or_mem | K::ymm_is4 | K::ymm_is5 => {
            pick(Register::YMM8, i)
        }
        K::zmm_reg | K::zmm_rm | K::zmm_vvvv | K::zmm_or_mem => pick(Register::ZMM8, i),
        K::zmmp3_vvvv => Register::ZMM12,
        K::cr_reg => Register::CR3,
        K::dr_reg => Register::DR3,
        K::bnd_reg | K::bnd_or_mem_mpx => pick(Register::BND1, i),
        K::tmm_reg | K::tmm_rm | K::tmm_vvvv => pick(Register::TMM1, i),
        K::sti_opcode => Register::ST3,
        K::es => Register::ES,
        K::cs => Register::CS,
        K::ss => Register::SS,
        K::ds => Register::DS,
        K::fs => Register::FS,
        K::gs => Register::GS,
        K::al => Register::AL,
        K::cl => Register::CL,
        K::ax => Register::AX,
        K::dx => Register::DX,
        K::eax => Register::EAX,
        K::rax => Register::RAX,
        K::st0 => Register::ST0,
        _ => return None,
    })
}

fn facts(code: Code) -> Facts {
    use OpCodeOperandKind as K;
    let op = code.op_code();
    let mut instr = Instruction::default();
    instr.set_code(code);
    let mut explicit_regs = Vec::new();
    let mut uses_memory = false;
    for (i, &kind) in op.op_kinds().iter().enumerate() {
        let i = i as u32;
        let is_mem_kind = matches!(
            kind,
            K::mem
                | K::mem_mpx
                | K::mem_mib
                | K::sibmem
                | K::mem_offs
                | K::mem_vsib32x
                | K::mem_vsib64x
                | K::mem_vsib32y
                | K::mem_vsib64y
                | K::mem_vsib32z
                | K::mem_vsib64z
        );
        // Register-or-memory slots get a register: the access is the same.
        if is_mem_kind {
            instr.set_op_kind(i, OpKind::Memory);
            uses_memory = true;
            continue;
        }
        match kind {
            K::imm8 | K::imm8_const_1 | K::imm4_m2z => {
                instr.set_op_kind(i, OpKind::Immediate8);
                instr.set_immediate8(1);
            }
            K::imm8sex16 => instr.set_op_kind(i, OpKind::Immediate8to16),
            K::imm8sex32 => instr.set_op_kind(i, OpKind::Immediate8to32),
            K::imm8sex64 => instr.set_op_kind(i, OpKind::Immediate8to64),
            K::imm16 => instr.set_op_kind(i, OpKind::Immediate16),
            K::imm32 => instr.set_op_kind(i, OpKind::Immediate32),
            K::imm32sex64 => instr.set_op_kind(i, OpKind::Immediate32to64),
            K::imm64 => instr.set_op_kind(i, OpKind::Immediate64),
            K::br16_1 | K::br16_2 | K::xbegin_2 | K::brdisp_2 => {
                instr.set_op_kind(i, OpKind::NearBranch16)
            }
            K::br32_1 | K::br32_4 | K::xbegin_4 | K::brdisp_4 => {
                instr.set_op_kind(i, OpKind::NearBranch32)
            }
            K::br64_1 | K::br64_4 => instr.set_op_kind(i, OpKind::NearBranch64),
            K::farbr2_2 => instr.set_op_kind(i, OpKind::FarBranch16),
            K::farbr4_2 => instr.set_op_kind(i, OpKind::FarBranch32),
            K::seg_rSI => instr.set_op_kind(i, OpKind::MemorySegRSI),
            K::es_rDI => instr.set_op_kind(i, OpKind::MemoryESRDI),
            K::seg_rDI => instr.set_op_kind(i, OpKind::MemorySegRDI),
            K::seg_rBX_al => {
                instr.set_op_kind(i, OpKind::Memory);
                uses_memory = true;
            }
            _ => match sample_register(kind, i) {
                Some(reg) => {
                    instr.set_op_kind(i, OpKind::Register);
                    instr.set_op_register(i, reg);
                    explicit_regs.push(reg);
                }
                None => {
                    instr.set_op_kind(i, OpKind::Memory);
                    uses_memory = true;
                }
            },
        }
    }
    if uses_memory {
        instr.set_memory_base(Register::R9);
        instr.set_memory_displ_size(1);
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&instr);
    let access = (0..op.op_count())
        .map(|i| access_token(info.op_access(i)))
        .collect();
    let mut implicit = Vec::new();
    for used in info.used_registers() {
        let reg = used.register();
        let same_as_explicit = explicit_regs
            .iter()
            .any(|r| r.full_register() == reg.full_register());
        if same_as_explicit || reg == Register::R9 || reg.full_register() == Register::R9 {
            continue;
        }
        let token = access_token(used.access());
        if token.is_empty() {
            continue;
        }
        let name = format!("{reg:?}").to_lowercase();
        let entry = format!("{name}:{token}");
        if !implicit.contains(&entry) {
            implicit.push(entry);
        }
    }
    Facts {
        access,
        implicit,
        flags_read: instr.rflags_read(),
        flags_written: instr.rflags_modified(),
    }
}

fn flags_text(bits: u32) -> String {
    let names = [
        (RflagsBits::OF, "of"),
        (RflagsBits::SF, "sf"),
        (RflagsBits::ZF, "zf"),
        (RflagsBits::AF, "af"),
        (RflagsBits::PF, "pf"),
        (RflagsBits::CF, "cf"),
        (RflagsBits::DF, "df"),
        (RflagsBits::IF, "if"),
        (RflagsBits::AC, "ac"),
        (RflagsBits::UIF, "uif"),
        (RflagsBits::C0, "c0"),
        (RflagsBits::C1, "c1"),
        (RflagsBits::C2, "c2"),
        (RflagsBits::C3, "c3"),
    ];
    names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// Builds the whole database text.
pub fn database_text() -> String {
    let mut rows: Vec<Row> = Vec::new();
    for (order, code) in Code::values().enumerate() {
        if !in_universe(code) {
            continue;
        }
        let op = code.op_code();
        let mut operands: Vec<String> = Vec::new();
        let mut ok = true;
        let form_facts = facts(code);
        let far_memory = matches!(code.mnemonic(), Mnemonic::Call | Mnemonic::Jmp)
            && op.op_kinds() == [OpCodeOperandKind::mem];
        for (i, k) in op.op_kinds().iter().enumerate() {
            let token = match operand_token(*k) {
                // m16:16 / m16:32 / m16:64: only a sized memory operand selects it.
                Some("m") if far_memory => "m.far",
                Some(t) => t,
                None => {
                    ok = false;
                    continue;
                }
            };
            match form_facts.access.get(i).copied().filter(|a| !a.is_empty()) {
                Some(access) => operands.push(format!("{token}:{access}")),
                None => operands.push(token.to_string()),
            }
        }
        if !ok {
            continue;
        }
        let mut modes = Vec::new();
        // 16-bit near branches are not in the 64-bit universe.
        // (In 64-bit mode the CPU ignores 66 on near branches.)
        let is_branch16 = op.op_kinds().iter().any(|k| {
            matches!(
                k,
                OpCodeOperandKind::br16_1 | OpCodeOperandKind::br16_2 | OpCodeOperandKind::xbegin_2
            )
        }) || (op.operand_size() == 16
            && matches!(
                code.mnemonic(),
                Mnemonic::Call | Mnemonic::Jmp | Mnemonic::Ret
            )
            && !op.op_kinds().contains(&OpCodeOperandKind::mem));
        if op.mode64() && !is_branch16 {
            modes.push("64");
        }
        if op.mode32() {
            modes.push("32");
        }
        if modes.is_empty() {
            continue;
        }
        let features: Vec<String> = code
            .cpuid_features()
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        let mnemonic = mnemonic_name(code);
        let mut text = String::new();
        let _ = write!(
            text,
            "{:<16}| {:<34}| {:<34}| {:<24}| {:<6}| {}",
            mnemonic,
            operands.join(" "),
            encoding_text(code),
            features.join("+"),
            modes.join(","),
            {
                let mut attrs = attributes(code);
                let mut add = |a: String| {
                    if !attrs.is_empty() {
                        attrs.push(' ');
                    }
                    attrs.push_str(&a);
                };
                if !form_facts.implicit.is_empty() {
                    add(format!("implicit={}", form_facts.implicit.join(",")));
                }
                if form_facts.flags_read != 0 {
                    add(format!("fr={}", flags_text(form_facts.flags_read)));
                }
                if form_facts.flags_written != 0 {
                    add(format!("fw={}", flags_text(form_facts.flags_written)));
                }
                attrs
            }
        );
        rows.push(Row {
            mnemonic,
            priority: priority(code),
            order,
            text: text.trim_end().to_string(),
        });
    }
    rows.sort_by(|a, b| {
        (&a.mnemonic, a.priority, a.order).cmp(&(&b.mnemonic, b.priority, b.order))
    });
    let mut out = String::from(HEADER);
    for row in rows {
        out.push_str(&row.text);
        out.push('\n');
    }
    out
}

const HEADER: &str = "\
# jitforge x86 instruction database: one line per encoding form.
#
# Columns, separated by `|`:
#   mnemonic | operands | encoding | CPU features (all required, `+`-joined) | modes | attributes
#
# The forms of one mnemonic stand together; their order is the preference
# order: the encoder takes the first form that accepts the operands, so the
# shorter encodings (sign-extended imm8, accumulator forms, VEX before EVEX)
# come first. The grammar of each column is documented in src/x86/db/mod.rs.
# After editing, run `cargo run -p jitforge-dbgen` to regenerate the tables.
";
