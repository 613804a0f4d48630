//! Describing the instruction database as text: one line per form for
//! people (`jitforge isa MNEMONIC`) and the whole database as JSON for tools
//! (`jitforge isa --json`, what AsmDB is for AsmJit). The JSON is written by
//! hand; the field names follow [`Form`].

use crate::x86::CpuFeature;
use crate::x86::db::{
    Access, Encoding, Form, MandatoryPrefix, Mnemonic, ModRmSpec, OpcodeMap, OperandKind as K,
    VexL, VexW, flags,
};
use std::fmt::Write;

/// An operand kind in the database's text notation (`r64/m`, `xmm.v`, `ib.sx64`).
pub fn kind_text(kind: K) -> String {
    let s = match kind {
        K::None => "",
        K::FarPtr16 => "ptr16:16",
        K::FarPtr32 => "ptr16:32",
        K::Moffs => "moffs",
        K::Mem => "m",
        K::MemFar => "m.far",
        K::MemMpx => "m.mpx",
        K::MemMib => "m.mib",
        K::MemSib => "m.sib",
        K::Vm32x => "vm32x",
        K::Vm64x => "vm64x",
        K::Vm32y => "vm32y",
        K::Vm64y => "vm64y",
        K::Vm32z => "vm32z",
        K::Vm64z => "vm64z",
        K::R8M => "r8/m",
        K::R16M => "r16/m",
        K::R32M => "r32/m",
        K::R32MMpx => "r32/m.mpx",
        K::R64M => "r64/m",
        K::R64MMpx => "r64/m.mpx",
        K::MmM => "mm/m",
        K::XmmM => "xmm/m",
        K::YmmM => "ymm/m",
        K::ZmmM => "zmm/m",
        K::BndM => "bnd/m",
        K::KM => "k/m",
        K::R8 => "r8",
        K::R8Op => "r8.o",
        K::R8V => "r8.v",
        K::R16V => "r16.v",
        K::R16 => "r16",
        K::R16Addr => "r16.a",
        K::R16Rm => "r16.rm",
        K::R16Op => "r16.o",
        K::R32 => "r32",
        K::R32Addr => "r32.a",
        K::R32Rm => "r32.rm",
        K::R32Op => "r32.o",
        K::R32V => "r32.v",
        K::R64 => "r64",
        K::R64Addr => "r64.a",
        K::R64Rm => "r64.rm",
        K::R64Op => "r64.o",
        K::R64V => "r64.v",
        K::SReg => "sreg",
        K::K => "k",
        K::KPair => "k.pair",
        K::KRm => "k.rm",
        K::KV => "k.v",
        K::Mm => "mm",
        K::MmRm => "mm.rm",
        K::Xmm => "xmm",
        K::XmmRm => "xmm.rm",
        K::XmmV => "xmm.v",
        K::XmmV4 => "xmm.v4",
        K::XmmIs4 => "xmm.is4",
        K::XmmIs5 => "xmm.is5",
        K::Ymm => "ymm",
        K::YmmRm => "ymm.rm",
        K::YmmV => "ymm.v",
        K::YmmIs4 => "ymm.is4",
        K::YmmIs5 => "ymm.is5",
        K::Zmm => "zmm",
        K::ZmmRm => "zmm.rm",
        K::ZmmV => "zmm.v",
        K::ZmmV4 => "zmm.v4",
        K::Cr => "cr",
        K::Dr => "dr",
        K::Tr => "tr",
        K::Bnd => "bnd",
        K::Es => "es",
        K::Cs => "cs",
        K::Ss => "ss",
        K::Ds => "ds",
        K::Fs => "fs",
        K::Gs => "gs",
        K::Al => "al",
        K::Cl => "cl",
        K::Ax => "ax",
        K::Dx => "dx",
        K::Eax => "eax",
        K::Rax => "rax",
        K::St0 => "st0",
        K::StOp => "st.o",
        K::Imm4 => "i4",
        K::Imm8 => "ib",
        K::One => "1",
        K::Imm8Sx16 => "ib.sx16",
        K::Imm8Sx32 => "ib.sx32",
        K::Imm8Sx64 => "ib.sx64",
        K::Imm16 => "iw",
        K::Imm32 => "id",
        K::Imm32Sx64 => "id.sx64",
        K::Imm64 => "iq",
        K::ImplicitRsi => "[rsi]",
        K::ImplicitEsRdi => "es:[rdi]",
        K::ImplicitRdi => "[rdi]",
        K::ImplicitXlat => "[rbx+al]",
        K::Rel8 => "rel8",
        K::Rel16 => "rel16",
        K::Rel32 => "rel32",
        K::XRel16 => "xrel16",
        K::XRel32 => "xrel32",
        K::Disp16 => "disp16",
        K::Disp32 => "disp32",
        K::Tmm => "tmm",
        K::TmmRm => "tmm.rm",
        K::TmmV => "tmm.v",
        #[allow(unreachable_patterns)]
        other => return format!("{other:?}").to_ascii_lowercase(),
    };
    s.to_string()
}

fn map_text(map: OpcodeMap) -> &'static str {
    match map {
        OpcodeMap::Primary => "",
        OpcodeMap::M0F => "0f",
        OpcodeMap::M0F38 => "0f38",
        OpcodeMap::M0F3A => "0f3a",
        OpcodeMap::Map4 => "map4",
        OpcodeMap::Map5 => "map5",
        OpcodeMap::Map6 => "map6",
        OpcodeMap::Xop8 => "m8",
        OpcodeMap::Xop9 => "m9",
        OpcodeMap::Xop10 => "m10",
        OpcodeMap::M0F0F => "0f0f",
    }
}

fn prefix_text(p: MandatoryPrefix) -> &'static str {
    match p {
        MandatoryPrefix::None => "",
        MandatoryPrefix::Np => "np",
        MandatoryPrefix::P66 => "66",
        MandatoryPrefix::PF3 => "f3",
        MandatoryPrefix::PF2 => "f2",
    }
}

fn modrm_text(m: ModRmSpec) -> String {
    match m {
        ModRmSpec::None => String::new(),
        ModRmSpec::Reg => "/r".into(),
        ModRmSpec::Digit(d) => format!("/{d}"),
        ModRmSpec::OpcodeReg => "+r".into(),
        ModRmSpec::Fixed(b) => format!("{b:02x}"),
        ModRmSpec::StPlus(b) => format!("{b:02x}+i"),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// The form's encoding in the database's notation (`o64 rex.w 83 /0`,
/// `evex.512.0f.w0 58 /r`).
pub fn encoding_text(f: &Form) -> String {
    let mut parts: Vec<String> = Vec::new();
    match f.encoding() {
        Encoding::Legacy | Encoding::Amd3dNow => {
            if f.fwait() {
                parts.push("fwait".into());
            }
            if f.operand_size() != 0 {
                parts.push(format!("o{}", f.operand_size()));
            }
            if f.address_size() != 0 {
                parts.push(format!("a{}", f.address_size()));
            }
            if f.prefix() != MandatoryPrefix::None {
                parts.push(prefix_text(f.prefix()).into());
            }
            if f.has_apx(super::super::db::apx::REX2) {
                parts.push("rex2".into());
            }
            if f.rex_w() {
                parts.push("rex.w".into());
            }
            if f.encoding() == Encoding::Amd3dNow {
                parts.push("3dnow".into());
                parts.push(modrm_text(f.modrm()));
                parts.push(format!("{:02x}", f.opcode()));
                return parts.join(" ");
            }
            let map = map_text(f.map());
            if !map.is_empty() {
                parts.push(map.into());
            }
        }
        Encoding::Vex | Encoding::Evex | Encoding::Xop => {
            let mut v = String::from(match f.encoding() {
                Encoding::Vex => "vex",
                Encoding::Evex => "evex",
                _ => "xop",
            });
            v.push_str(match f.l() {
                VexL::L128 => ".128",
                VexL::L256 => ".256",
                VexL::L512 => ".512",
                VexL::Lig => ".lig",
            });
            if !matches!(f.prefix(), MandatoryPrefix::None | MandatoryPrefix::Np) {
                v.push('.');
                v.push_str(prefix_text(f.prefix()));
            }
            v.push('.');
            v.push_str(map_text(f.map()));
            v.push_str(match f.w() {
                VexW::W0 => ".w0",
                VexW::W1 => ".w1",
                VexW::Wig => ".wig",
                VexW::W1Wig32 => ".w1.wig32",
                VexW::W0Wig32 => ".w0.wig32",
            });
            if f.has_apx(super::super::db::apx::ND) {
                v.push_str(".nd");
            }
            if f.has_apx(super::super::db::apx::NF_FIXED) {
                v.push_str(".nf");
            }
            parts.push(v);
        }
    }
    let modrm = modrm_text(f.modrm());
    if f.modrm() == ModRmSpec::OpcodeReg {
        parts.push(format!("{:02x}+r", f.opcode()));
    } else {
        parts.push(format!("{:02x}", f.opcode()));
        if !modrm.is_empty() {
            parts.push(modrm);
        }
    }
    parts.join(" ")
}

const FLAG_NAMES: &[(u16, &str)] = &[
    (flags::K, "k"),
    (flags::K_REQUIRED, "k!"),
    (flags::Z, "z"),
    (flags::ER, "er"),
    (flags::SAE, "sae"),
    (flags::LOCK, "lock"),
    (flags::XACQUIRE, "xacquire"),
    (flags::XRELEASE, "xrelease"),
    (flags::REP, "rep"),
    (flags::REPNE, "repne"),
    (flags::BND, "bnd"),
    (flags::NOTRACK, "notrack"),
];

fn flag_names(f: &Form) -> Vec<&'static str> {
    FLAG_NAMES
        .iter()
        .filter(|(bit, _)| f.has(*bit))
        .map(|(_, n)| *n)
        .collect()
}

fn mode_list(f: &Form) -> Vec<u32> {
    let mut v = Vec::new();
    if f.modes() & crate::x86::db::modes::M64 != 0 {
        v.push(64);
    }
    if f.modes() & crate::x86::db::modes::M32 != 0 {
        v.push(32);
    }
    v
}

/// How an operand is accessed, briefly: `r`, `w`, `rw`, `w?` (conditional
/// write), `addr` (memory operand whose memory is not accessed).
pub fn access_text(a: Access) -> &'static str {
    match a {
        Access::Read => "r",
        Access::Write => "w",
        Access::ReadWrite => "rw",
        Access::CondRead => "r?",
        Access::CondWrite => "w?",
        Access::ReadCondWrite => "rw?",
        Access::NoMemAccess => "addr",
        #[allow(unreachable_patterns)]
        _ => "",
    }
}

/// The implicit registers and the status flags of a form:
/// `implicit rax:rw rdx:w; flags read cf, written of sf zf af pf cf`.
pub fn effects_text(f: &Form) -> String {
    let mut parts = Vec::new();
    let implicit: Vec<String> = f
        .implicit()
        .iter()
        .map(|o| format!("{}:{}", o.reg.name(), access_text(o.access)))
        .collect();
    if !implicit.is_empty() {
        parts.push(format!("implicit {}", implicit.join(" ")));
    }
    let with_rep: Vec<String> = f
        .implicit_with_rep()
        .iter()
        .map(|o| format!("{}:{}", o.reg.name(), access_text(o.access)))
        .collect();
    if !with_rep.is_empty() {
        parts.push(format!("with rep {}", with_rep.join(" ")));
    }
    if let Some(n) = f.merge(false) {
        let only = if f.merge(true).is_none() {
            " (from a register)"
        } else {
            ""
        };
        parts.push(format!(
            "writes the low {n} bytes of the destination, keeps the rest{only}"
        ));
    }
    let read: Vec<&str> = f.reads_flags().names().collect();
    let written: Vec<&str> = f.writes_flags().names().collect();
    if !read.is_empty() || !written.is_empty() {
        let mut flags = String::from("flags");
        if !read.is_empty() {
            let _ = write!(flags, " read {}", read.join(" "));
        }
        if !written.is_empty() {
            let _ = write!(
                flags,
                "{} written {}",
                if read.is_empty() { "" } else { "," },
                written.join(" ")
            );
        }
        parts.push(flags);
    }
    parts.join("; ")
}

/// The operands of a form as a person reads them, with their access:
/// `w:zmm {k}?{z}?, r:zmm.v, r:zmm/m512/b32`.
pub fn operands_text(f: &Form) -> String {
    let mut ops = Vec::new();
    for (i, k) in f
        .operands()
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, k)| *k != K::None)
    {
        let mut s = kind_text(k);
        let access = access_text(f.access(i));
        if !access.is_empty() {
            s.insert_str(0, &format!("{access}:"));
        }
        if k.is_implicit() {
            s = format!("<{s}>");
        }
        let vsib = matches!(
            k,
            K::Vm32x | K::Vm64x | K::Vm32y | K::Vm64y | K::Vm32z | K::Vm64z
        );
        if k.takes_memory() && f.mem_size() != 0 && !vsib {
            let _ = write!(s, "{}", f.mem_size() * 8);
            if f.bcst_size() != 0 {
                let _ = write!(s, "/b{}", f.bcst_size() as u32 * 8);
            }
        }
        if i == 0 && f.has(flags::K) {
            s.push_str(if f.has(flags::K_REQUIRED) {
                " {k}"
            } else {
                " {k}?"
            });
            if f.has(flags::Z) {
                s.push_str("{z}?");
            }
        }
        ops.push(s);
    }
    let mut text = ops.join(", ");
    if f.has(flags::ER) {
        text.push_str(", {er}");
    } else if f.has(flags::SAE) {
        text.push_str(", {sae}");
    }
    text
}

/// One line describing a form: operands, encoding, CPU features, modes and prefixes.
pub fn describe_form(f: &Form) -> String {
    let features: Vec<&str> = f.cpu_features().iter().map(|c| c.name()).collect();
    let modes: Vec<String> = mode_list(f).iter().map(u32::to_string).collect();
    let mut line = format!(
        "{:<12} {:<40} | {:<36} | {:<24} | {}",
        f.mnemonic().name(),
        operands_text(f),
        encoding_text(f),
        features.join("+"),
        modes.join(",")
    );
    let prefixes: Vec<&str> = flag_names(f)
        .into_iter()
        .filter(|n| !matches!(*n, "k" | "k!" | "z" | "er" | "sae"))
        .collect();
    if !prefixes.is_empty() {
        let _ = write!(line, " | {}", prefixes.join(" "));
    }
    let effects = effects_text(f);
    if !effects.is_empty() {
        let _ = write!(line, "\n{:<12} {effects}", "");
    }
    line
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_str_list<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, s);
    }
    out.push(']');
}

/// One form as a JSON object.
pub fn form_json(out: &mut String, f: &Form) {
    out.push_str("{\"operands\":");
    let kinds: Vec<String> = f
        .operands()
        .iter()
        .copied()
        .filter(|k| *k != K::None)
        .map(kind_text)
        .collect();
    json_str_list(out, kinds.iter().map(String::as_str));
    out.push_str(",\"implicit\":");
    let implicit: Vec<bool> = f
        .operands()
        .iter()
        .filter(|k| **k != K::None)
        .map(|k| k.is_implicit())
        .collect();
    out.push('[');
    for (i, b) in implicit.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(if *b { "true" } else { "false" });
    }
    out.push(']');
    out.push_str(",\"access\":");
    let access: Vec<&str> = f
        .operands()
        .iter()
        .enumerate()
        .filter(|(_, k)| **k != K::None)
        .map(|(i, _)| access_text(f.access(i)))
        .collect();
    json_str_list(out, access);
    for (key, regs) in [
        ("implicit_registers", f.implicit()),
        ("implicit_with_rep", f.implicit_with_rep()),
    ] {
        let _ = write!(out, ",\"{key}\":[");
        for (i, o) in regs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"reg\":");
            json_str(out, o.reg.name());
            out.push_str(",\"access\":");
            json_str(out, access_text(o.access));
            out.push('}');
        }
        out.push(']');
    }
    // Scalar merge (`merge=N`): bytes written; the rest of the destination is kept.
    let merge = |from_memory| f.merge(from_memory).map_or(0, u32::from);
    let _ = write!(
        out,
        ",\"merge\":{{\"from_register\":{},\"from_memory\":{}}}",
        merge(false),
        merge(true)
    );
    let apx_bit = |bit| f.has_apx(bit);
    use super::super::db::apx;
    let _ = write!(
        out,
        ",\"apx\":{{\"nd\":{},\"nf_fixed\":{},\"nf\":{},\"rex2\":{},\"scc\":{}}}",
        apx_bit(apx::ND),
        apx_bit(apx::NF_FIXED),
        apx_bit(apx::NF),
        apx_bit(apx::REX2),
        if apx_bit(apx::SCC) {
            ((f.apx() >> apx::SCC_SHIFT) & 15).to_string()
        } else {
            "null".into()
        }
    );
    out.push_str(",\"flags_read\":");
    json_str_list(out, f.reads_flags().names());
    out.push_str(",\"flags_written\":");
    json_str_list(out, f.writes_flags().names());
    out.push_str(",\"encoding\":");
    json_str(out, &encoding_text(f));
    let family = match f.encoding() {
        Encoding::Legacy => "legacy",
        Encoding::Vex => "vex",
        Encoding::Evex => "evex",
        Encoding::Xop => "xop",
        Encoding::Amd3dNow => "3dnow",
    };
    let _ = write!(
        out,
        ",\"family\":\"{family}\",\"opcode\":{},\"operand_size\":{},\"address_size\":{},\"rex_w\":{},\"fwait\":{},\"mem_size\":{},\"bcst_size\":{},\"disp8_n\":{},\"disp8_nb\":{}",
        f.opcode(),
        f.operand_size(),
        f.address_size(),
        f.rex_w(),
        f.fwait(),
        f.mem_size(),
        f.bcst_size(),
        f.disp8_n(),
        f.disp8_nb()
    );
    out.push_str(",\"flags\":");
    json_str_list(out, flag_names(f));
    out.push_str(",\"modes\":[");
    for (i, m) in mode_list(f).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{m}");
    }
    out.push_str("],\"cpu_features\":");
    json_str_list(out, f.cpu_features().iter().map(|c| c.name()));
    out.push('}');
}

/// The whole database as JSON: `{"cpu_features": [...], "mnemonics": [{"name", "forms": [...]}]}`.
pub fn database_json() -> String {
    let mut out = String::with_capacity(4 << 20);
    out.push_str("{\"architecture\":\"x86\",\"cpu_features\":");
    json_str_list(&mut out, CpuFeature::ALL.iter().map(|c| c.name()));
    out.push_str(",\"mnemonics\":[\n");
    for (i, m) in Mnemonic::ALL.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str("{\"name\":");
        json_str(&mut out, m.name());
        out.push_str(",\"forms\":[");
        for (j, f) in m.forms().iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            form_json(&mut out, f);
        }
        out.push_str("]}");
    }
    out.push_str("\n]}\n");
    out
}

/// An operand kind as the Intel manual writes it (`r/m32`, `imm8`,
/// `xmm/m128`, `m16:32`), for messages; memory sizes come from `form`.
pub fn kind_human(kind: K, form: &Form) -> String {
    let bits = form.mem_size() as u32 * 8;
    let sized = |base: &str| {
        if bits != 0 {
            format!("{base}{bits}")
        } else {
            base.to_string()
        }
    };
    match kind {
        K::R8M => "r/m8".into(),
        K::R16M => "r/m16".into(),
        K::R32M | K::R32MMpx => "r/m32".into(),
        K::R64M | K::R64MMpx => "r/m64".into(),
        K::MmM => "mm/m64".into(),
        K::XmmM => sized("xmm/m"),
        K::YmmM => sized("ymm/m"),
        K::ZmmM => sized("zmm/m"),
        K::KM => sized("k/m"),
        K::BndM => "bnd/m".into(),
        K::R8 | K::R8Op | K::R8V => "r8".into(),
        K::R16 | K::R16Rm | K::R16Op | K::R16Addr | K::R16V => "r16".into(),
        K::R32 | K::R32Rm | K::R32Op | K::R32V | K::R32Addr => "r32".into(),
        K::R64 | K::R64Rm | K::R64Op | K::R64V | K::R64Addr => "r64".into(),
        K::Xmm | K::XmmRm | K::XmmV | K::XmmIs4 | K::XmmIs5 => "xmm".into(),
        K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => "ymm".into(),
        K::Zmm | K::ZmmRm | K::ZmmV => "zmm".into(),
        K::XmmV4 => "xmm0/4/8/...".into(),
        K::ZmmV4 => "zmm0/4/8/...".into(),
        K::K | K::KRm | K::KV => "k".into(),
        K::KPair => "k0/k2/k4/k6".into(),
        K::Mm | K::MmRm => "mm".into(),
        K::Tmm | K::TmmRm | K::TmmV => "tmm".into(),
        K::SReg => "sreg".into(),
        K::St0 => "st".into(),
        K::StOp => "st(i)".into(),
        K::Imm4 => "imm4".into(),
        K::Imm8 | K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 => "imm8".into(),
        K::One => "1".into(),
        K::Imm16 => "imm16".into(),
        K::Imm32 | K::Imm32Sx64 => "imm32".into(),
        K::Imm64 => "imm64".into(),
        K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => {
            "label or address".into()
        }
        K::Mem | K::MemMpx | K::MemMib | K::MemSib => sized("m"),
        K::MemFar => match form.mem_size() {
            4 => "m16:16".into(),
            6 => "m16:32".into(),
            10 => "m16:64".into(),
            _ => "m16:xx".into(),
        },
        other => kind_text(other),
    }
}
