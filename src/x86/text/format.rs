//! The Intel-syntax formatter: prints an instruction (mnemonic, operands,
//! options) in the dialect llvm-mc and GNU as read and the parser (`text`
//! feature) reads back: `zmm1{k1}{z}`, `dword ptr [rax]{1to16}`, rounding as its own
//! operand after the last vector register, `movabs` for 64-bit absolute
//! addresses, `lcall SEL, OFF` for far pointers, `st`/`st(i)` on x87.

use crate::code::{Arch, Label};
use crate::x86::db::{Encoding, Form, Mnemonic, OperandKind as K, modes};
use crate::x86::{InstOptions, Mem, MemBase, Operand, Reg, RegKind, Rounding};
use std::fmt::Write;

fn size_keyword(size: u16) -> Option<&'static str> {
    Some(match size {
        1 => "byte",
        2 => "word",
        4 => "dword",
        6 => "fword",
        8 => "qword",
        10 => "tbyte",
        16 => "xmmword",
        32 => "ymmword",
        64 => "zmmword",
        _ => return None,
    })
}

fn hex_signed(v: i64) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

fn reg_text(r: Reg) -> String {
    let mut s = match (r.kind(), r.id()) {
        (RegKind::St, 0) => "st".to_string(),
        _ => r.name().to_string(),
    };
    let d = r.decorators();
    if d.mask() != 0 {
        let _ = write!(s, "{{k{}}}", d.mask());
    }
    if d.zeroing() {
        s.push_str("{z}");
    }
    s
}

fn mem_text(m: &Mem, bcst_count: Option<u32>, label_name: &dyn Fn(Label) -> String) -> String {
    let mut s = String::new();
    if let Some(k) = size_keyword(m.size()) {
        let _ = write!(s, "{k} ptr ");
    }
    if let Some(seg) = m.segment() {
        let _ = write!(s, "{}:", seg.name());
    }
    s.push('[');
    let mut first = true;
    match m.base() {
        MemBase::None => {}
        MemBase::Reg(r) => {
            s.push_str(r.name());
            first = false;
        }
        MemBase::Rip => {
            s.push_str("rip");
            first = false;
        }
        MemBase::Label(l) => {
            s.push_str(&label_name(l));
            first = false;
        }
    }
    if let Some(index) = m.index() {
        if !first {
            s.push_str(" + ");
        }
        let _ = write!(s, "{}*{}", index.name(), m.scale());
        first = false;
    }
    let disp = m.disp();
    if first {
        s.push_str(&hex_signed(disp));
    } else if disp > 0 {
        let _ = write!(s, " + {disp:#x}");
    } else if disp < 0 {
        let _ = write!(s, " - {:#x}", disp.unsigned_abs());
    }
    s.push(']');
    if m.is_broadcast() {
        match m.broadcast_count().map(u32::from).or(bcst_count) {
            Some(n) => {
                let _ = write!(s, "{{1to{n}}}");
            }
            None => s.push_str("{1toN}"),
        }
    }
    if m.decorators().mask() != 0 {
        let _ = write!(s, "{{k{}}}", m.decorators().mask());
    }
    s
}

/// One operand as Intel text. `bcst_count` is the element count written in a
/// broadcast (`{1to16}`); without it a broadcast prints as `{1toN}`.
pub fn format_operand(op: &Operand, bcst_count: Option<u32>) -> String {
    operand_text(op, bcst_count, &default_label_name)
}

/// Labels without a name resolver print as `L<id>`.
fn default_label_name(l: Label) -> String {
    format!("L{}", l.id())
}

fn operand_text(
    op: &Operand,
    bcst_count: Option<u32>,
    label_name: &dyn Fn(Label) -> String,
) -> String {
    match op {
        Operand::None => String::new(),
        Operand::Reg(r) => reg_text(*r),
        Operand::Mem(m) => mem_text(m, bcst_count, label_name),
        Operand::Imm(v) => hex_signed(*v),
        Operand::Label(l) => label_name(*l),
    }
}

/// The form of `mnemonic` these operands most plausibly use (for the
/// broadcast element count and far-pointer spelling).
pub fn plausible_form(
    mnemonic: Mnemonic,
    operands: &[Operand],
    arch: Arch,
) -> Option<&'static Form> {
    let bit = modes::of(arch);
    let candidates = mnemonic
        .forms()
        .iter()
        .filter(|f| f.modes() & bit != 0 && f.explicit_count() == operands.len())
        .filter(|f| {
            f.explicit_kinds()
                .iter()
                .zip(operands)
                .all(|(k, o)| k.may_take(o))
        });
    // What only EVEX can express: masks, xmm16+, broadcast.
    let evex_only = operands.iter().any(|o| match o {
        Operand::Reg(r) => !r.decorators().is_empty() || (r.kind().is_vec() && r.id() >= 16),
        Operand::Mem(m) => {
            m.is_broadcast()
                || !m.decorators().is_empty()
                || m.index().is_some_and(|i| i.id() >= 16)
        }
        _ => false,
    });
    let candidates = candidates
        .filter(|f| !(evex_only && matches!(f.encoding(), Encoding::Vex | Encoding::Xop)));
    let mut fallback = None;
    for f in candidates {
        let mem_ok = operands.iter().all(|o| match o {
            Operand::Mem(m) if m.is_broadcast() => {
                f.bcst_size() != 0 && (m.size() == 0 || m.size() == f.bcst_size() as u16)
            }
            Operand::Mem(m) => m.size() == 0 || f.mem_size() == 0 || f.mem_size() == m.size(),
            _ => true,
        });
        if mem_ok {
            return Some(f);
        }
        fallback.get_or_insert(f);
    }
    fallback
}

/// An instruction as Intel text: prefixes and hints, mnemonic, operands, and
/// the rounding or `{sae}` operand after the last vector register.
///
/// ```
/// use jitforge::Arch;
/// use jitforge::x86::text::format_instruction;
/// use jitforge::x86::*;
///
/// let m = Mnemonic::from_name("vaddps").unwrap();
/// let ops = [zmm0.k(k1).z().into(), zmm1.into(), dword_ptr(rax).bcst().into()];
/// assert_eq!(format_instruction(m, &ops, InstOptions::NONE, Arch::X64), "vaddps zmm0{k1}{z}, zmm1, dword ptr [rax]{1to16}");
/// ```
pub fn format_instruction(
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
    arch: Arch,
) -> String {
    format_instruction_with(mnemonic, operands, options, arch, &default_label_name)
}

/// [`format_instruction`] with label names from `label_name` (for example
/// `|l| code.label_name(l)` with a [`CodeHolder`](crate::CodeHolder)).
pub fn format_instruction_with(
    mnemonic: Mnemonic,
    operands: &[Operand],
    options: InstOptions,
    arch: Arch,
    label_name: &dyn Fn(Label) -> String,
) -> String {
    let explicit = operands
        .iter()
        .rposition(|o| !o.is_none())
        .map_or(0, |i| i + 1);
    let operands = &operands[..explicit];
    let form = plausible_form(mnemonic, operands, arch);
    let mut text = options.prefix_text();
    // AVX-VNNI, AVX-IFMA and AVX-NE-CONVERT reuse the text of their AVX-512
    // forms, which llvm-mc and GNU as prefer: say `{vex}` so they read it back.
    let vex_twin = form.is_some_and(|f| {
        f.encoding() == Encoding::Vex
            && f.cpu_features()
                .iter()
                .any(|c| matches!(c.name(), "avx_vnni" | "avx_ifma" | "avx_ne_convert"))
    });
    if vex_twin && !options.contains(InstOptions::VEX) {
        text.insert_str(0, "{vex} ");
    }
    let mut name = mnemonic.name().to_string();
    let kinds: &[K] = form.map_or(&[], |f| f.explicit_kinds());
    let far_ptr = kinds.iter().any(|k| matches!(k, K::FarPtr16 | K::FarPtr32));
    let far_mem = kinds.contains(&K::MemFar);
    let abs64 = operands
        .iter()
        .any(|o| matches!(o, Operand::Mem(m) if m.is_abs64()));
    let long_imm = options.contains(InstOptions::LONG)
        && matches!(operands, [Operand::Reg(r), Operand::Imm(_)] if r.kind() == RegKind::Gp64);
    if (abs64 || long_imm) && name == "mov" {
        name = "movabs".into();
    }
    // A 16-bit form told apart only by a memory size no keyword spells
    // (`fnstenv` m14 vs m28): `data16`.
    let odd_size = operands
        .iter()
        .any(|o| matches!(o, Operand::Mem(m) if m.size() != 0 && size_keyword(m.size()).is_none()));
    if odd_size
        && form.is_some_and(|f| f.operand_size() == 16)
        && !options.contains(InstOptions::DATA16)
    {
        text.push_str("data16 ");
    }
    let mut ops: Vec<String> = Vec::with_capacity(operands.len() + 1);
    if far_ptr && let [Operand::Imm(v)] = operands {
        name = format!("l{name}");
        ops.push(format!("{:#x}", (*v as u64) >> 32));
        ops.push(format!("{:#x}", (*v as u64) & 0xffff_ffff));
    } else {
        if (far_mem || options.contains(InstOptions::FAR))
            && operands
                .iter()
                .any(|o| matches!(o, Operand::Mem(m) if m.size() == 4 || m.size() == 0))
        {
            name = format!("l{name}");
        }
        let bcst_count = form.and_then(|f| {
            if f.bcst_size() == 0 || f.mem_size() == 0 {
                None
            } else {
                Some(f.mem_size() as u32 / f.bcst_size() as u32)
            }
        });
        // Operands Intel syntax leaves out: the fixed accumulator/port of a
        // string instruction (`lodsb`, not `lodsb al`), and `st` before the
        // register of an x87 compare or exchange (`fcom st(3)`).
        let string_op = form.is_some_and(|f| f.operands().iter().any(|k| k.is_implicit()));
        let x87_implicit_st0 = matches!(
            mnemonic.name(),
            "fcom" | "fcomp" | "fucom" | "fucomp" | "fxch"
        ) && kinds.first() == Some(&K::St0)
            && operands.len() == 2;
        for (i, op) in operands.iter().enumerate() {
            let kind = kinds.get(i).copied();
            if string_op && matches!(kind, Some(K::Al | K::Ax | K::Eax | K::Rax | K::Dx)) {
                continue;
            }
            if x87_implicit_st0 && i == 0 {
                continue;
            }
            ops.push(operand_text(op, bcst_count, label_name));
        }
        let rounding = match options.rounding_mode() {
            Some(Rounding::RnSae) => Some("{rn-sae}"),
            Some(Rounding::RdSae) => Some("{rd-sae}"),
            Some(Rounding::RuSae) => Some("{ru-sae}"),
            Some(Rounding::RzSae) => Some("{rz-sae}"),
            None if options.contains(InstOptions::SAE) => Some("{sae}"),
            None => None,
        };
        if let Some(r) = rounding {
            let at = operands
                .iter()
                .rposition(|o| matches!(o, Operand::Reg(r) if r.kind().is_vec()))
                .map_or(ops.len(), |i| i + 1);
            ops.insert(at, r.to_string());
        }
    }
    text.push_str(&name);
    // APX `ccmp`/`ctest`: `{dfv=of,cf}` stands between the mnemonic and the operands.
    let dfv = options.dfv_text();
    if !dfv.is_empty() {
        text.push(' ');
        text.push_str(&dfv);
    }
    for (i, o) in ops.iter().enumerate() {
        text.push_str(if i == 0 { " " } else { ", " });
        text.push_str(o);
    }
    text
}
