//! Every form of the instruction database, in both modes, encoded with
//! generated operands (registers from the low, REX-extended and EVEX-only
//! ranges, every addressing shape, edge immediates, masks, zeroing, broadcast
//! and rounding where the form allows them) and decoded with iced-x86: the
//! decoded instruction must be the one requested, operand for operand.

mod common;

use jitforge::code::{Arch, CodeHolder};
use jitforge::x86::*;

fn gp(kind: RegKind, id: u8) -> Operand {
    Operand::Reg(Reg::new(kind, id).expect("valid register"))
}

/// Register ids for variant `v` (0: low, 1: REX-extended, 2: EVEX-only).
fn vec_id(v: usize, x64: bool, evex: bool, salt: u8) -> u8 {
    match (v, x64) {
        (_, false) => (1 + salt + v as u8 * 2) % 8,
        (0, true) => 1 + salt,
        (1, true) => 9 + salt,
        (_, true) => {
            if evex {
                16 + salt * 4
            } else {
                12 + salt
            }
        }
    }
}

fn sample_mem(form: &Form, kind: OperandKind, v: usize, x64: bool, evex: bool) -> Mem {
    // A form with its own address size (enqcmd, movdir64b) takes registers of that size.
    let x64 = if form.address_size() == 32 {
        false
    } else {
        x64
    };
    // Variants: [base + index*4 + disp8], [r9/ebp base + index*8 - 0x80], [rsp/esp + disp32] without index.
    let (addr_kind, base_id, index_id) = if x64 {
        (RegKind::Gp64, [1u8, 9, 4][v], [2u8, 10, 13][v])
    } else {
        (RegKind::Gp32, [1u8, 5, 4][v], [2u8, 6, 3][v])
    };
    let disp = [0x10i64, -0x80, 0x12345][v];
    let base = Reg::new(addr_kind, base_id).expect("base");
    let mut m = Mem::new(MemBase::Reg(base), disp);
    let vsib = match kind {
        OperandKind::Vm32x | OperandKind::Vm64x => Some(RegKind::Xmm),
        OperandKind::Vm32y | OperandKind::Vm64y => Some(RegKind::Ymm),
        OperandKind::Vm32z | OperandKind::Vm64z => Some(RegKind::Zmm),
        _ => None,
    };
    if let Some(vk) = vsib {
        m = m.with_index(
            Reg::new(vk, vec_id(v, x64, evex, 0)).expect("vsib index"),
            4,
        );
    } else if matches!(kind, OperandKind::MemSib | OperandKind::MemMib) {
        m = m.with_index(Reg::new(addr_kind, index_id).expect("index"), 1);
    } else if v != 2 {
        m = m.with_index(
            Reg::new(addr_kind, index_id).expect("index"),
            [4u8, 8, 1][v],
        );
    }
    m.with_size(form.mem_size())
}

/// Operands for `form`, variant `v`; `None` when the variant does not apply.
fn sample(form: &Form, v: usize, x64: bool) -> Option<(Vec<Operand>, InstOptions)> {
    use OperandKind as K;
    let evex = form.encoding() == jitforge::x86::db::Encoding::Evex;
    let mut ops = Vec::new();
    let mut salt = 0u8;
    let mut used_mem = false;
    for &kind in form
        .operands()
        .iter()
        .filter(|k| **k != K::None && !k.is_implicit())
    {
        salt += 1;
        let id = vec_id(v, x64, evex, salt % 4);
        let gid = if x64 {
            [1u8, 9, 6][v] + salt % 3
        } else {
            [1u8, 3, 6][v] + salt % 2
        };
        let gid = if gid == 4 { 5 } else { gid };
        let op = match kind {
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
                if v == 1 || v == 2 =>
            {
                used_mem = true;
                let mut m = sample_mem(form, kind, v, x64, evex);
                if v == 2 && form.bcst_size() != 0 {
                    m = m.with_size(form.bcst_size() as u16).bcst();
                }
                Operand::Mem(m)
            }
            K::R8M | K::R8 | K::R8Op => {
                if x64 {
                    gp(RegKind::Gp8, [1u8, 9, 6][v] + salt % 2)
                } else if v == 1 {
                    gp(RegKind::Gp8Hi, salt % 4)
                } else {
                    gp(RegKind::Gp8, salt % 4)
                }
            }
            K::R16M | K::R16 | K::R16Op | K::R16Rm | K::R16Addr => gp(RegKind::Gp16, gid),
            K::R32M | K::R32MMpx | K::R32 | K::R32Op | K::R32Rm | K::R32V | K::R32Addr => {
                gp(RegKind::Gp32, gid)
            }
            K::R64M | K::R64MMpx | K::R64 | K::R64Op | K::R64Rm | K::R64V | K::R64Addr => {
                if !x64 {
                    return None;
                }
                gp(RegKind::Gp64, gid)
            }
            K::MmM | K::Mm | K::MmRm => gp(RegKind::Mm, (salt + v as u8) % 8),
            K::XmmM | K::Xmm | K::XmmRm | K::XmmV | K::XmmIs4 | K::XmmIs5 => gp(RegKind::Xmm, id),
            K::YmmM | K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => gp(RegKind::Ymm, id),
            K::ZmmM | K::Zmm | K::ZmmRm | K::ZmmV => gp(RegKind::Zmm, id),
            K::XmmV4 => gp(RegKind::Xmm, id & !3),
            K::ZmmV4 => gp(RegKind::Zmm, id & !3),
            K::KM | K::K | K::KRm | K::KV => gp(RegKind::K, (salt + v as u8) % 7 + 1),
            K::KPair => gp(RegKind::K, 2 * (v as u8 % 4)),
            K::BndM | K::Bnd => gp(RegKind::Bnd, (salt + v as u8) % 4),
            K::Tmm | K::TmmRm | K::TmmV => gp(RegKind::Tmm, salt + v as u8),
            K::SReg => gp(RegKind::Seg, [0u8, 3, 4][v]),
            K::Cr => gp(RegKind::Cr, [0u8, 3, if x64 { 8 } else { 4 }][v]),
            K::Dr => gp(RegKind::Dr, [0u8, 3, 7][v]),
            K::Es => gp(RegKind::Seg, 0),
            K::Cs => gp(RegKind::Seg, 1),
            K::Ss => gp(RegKind::Seg, 2),
            K::Ds => gp(RegKind::Seg, 3),
            K::Fs => gp(RegKind::Seg, 4),
            K::Gs => gp(RegKind::Seg, 5),
            K::Al => gp(RegKind::Gp8, 0),
            K::Cl => gp(RegKind::Gp8, 1),
            K::Ax => gp(RegKind::Gp16, 0),
            K::Dx => gp(RegKind::Gp16, 2),
            K::Eax => gp(RegKind::Gp32, 0),
            K::Rax => gp(RegKind::Gp64, 0),
            K::St0 => gp(RegKind::St, 0),
            K::StOp => gp(RegKind::St, [1u8, 3, 7][v]),
            K::Imm4 => Operand::Imm([3i64, 0, 15][v]),
            K::Imm8 => Operand::Imm([0x12i64, 0x7f, 0xfe][v]),
            K::One => Operand::Imm(1),
            K::Imm8Sx16 | K::Imm8Sx32 | K::Imm8Sx64 => Operand::Imm([-2i64, 0x7f, -128][v]),
            K::Imm16 => Operand::Imm([0x1234i64, 0x7fff, 0xfffe][v]),
            K::Imm32 => Operand::Imm([0x1234_5678i64, 0x7fff_ffff, 0x8000_0000][v]),
            K::Imm32Sx64 => Operand::Imm([-0x1000_0000i64, 0x7fff_ffff, -2][v]),
            K::Imm64 => Operand::Imm([0x1234_5678_9abc_def0i64, -0x1_0000_0000, 0x8000_0000][v]),
            K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 => {
                let far_ok = !matches!(kind, K::Rel8);
                Operand::Imm(if far_ok {
                    [0x40i64, 0x1234, 0x2_0000][v]
                } else {
                    [0x40i64, 0x10, 0x70][v]
                })
            }
            K::FarPtr16 | K::FarPtr32 => {
                Operand::Imm((0x10i64 << 32) | [0x1234i64, 0x7ffe, 0x100][v])
            }
            K::Moffs => {
                let m = Mem::absolute([0x1000u64, 0x8000_0000_1000, 0x10][v])
                    .with_size(form.mem_size());
                Operand::Mem(if x64 {
                    m.abs64()
                } else {
                    Mem::absolute([0x1000u64, 0x7fff_0000, 0x10][v]).with_size(form.mem_size())
                })
            }
            K::Mem
            | K::MemFar
            | K::MemMpx
            | K::MemMib
            | K::MemSib
            | K::Vm32x
            | K::Vm32y
            | K::Vm32z
            | K::Vm64x
            | K::Vm64y
            | K::Vm64z => {
                used_mem = true;
                Operand::Mem(sample_mem(form, kind, v, x64, evex))
            }
            _ => return None,
        };
        ops.push(op);
    }
    let mut options = InstOptions::NONE;
    if evex && v == 1 && form.has(jitforge::x86::db::flags::K) {
        // Mask (and zeroing) on the destination.
        let mut deco = Decorators::NONE.with_mask(KReg::from_id(3).expect("k3"));
        if form.has(jitforge::x86::db::flags::Z) && !matches!(ops.first(), Some(Operand::Mem(_))) {
            deco = deco.with_zeroing();
        }
        match ops.first_mut() {
            Some(Operand::Reg(r)) => *r = r.with_decorators(deco),
            Some(Operand::Mem(m)) => *m = m.k(KReg::from_id(3).expect("k3")),
            _ => {}
        }
    } else if evex && form.has(jitforge::x86::db::flags::K_REQUIRED) {
        match ops.first_mut() {
            Some(Operand::Reg(r)) => {
                *r = r.with_decorators(Decorators::NONE.with_mask(KReg::from_id(2).expect("k2")))
            }
            Some(Operand::Mem(m)) => *m = m.k(KReg::from_id(2).expect("k2")),
            _ => {}
        }
    }
    if evex && v == 0 && !used_mem {
        if form.has(jitforge::x86::db::flags::ER) {
            options = InstOptions::rounding(Rounding::RzSae);
        } else if form.has(jitforge::x86::db::flags::SAE) {
            options = InstOptions::SAE;
        }
    }
    Some((ops, options))
}

fn run(arch: Arch) -> (usize, usize, usize, Vec<String>, Vec<String>) {
    let x64 = arch == Arch::X64;
    let bitness = arch.bits();
    let mode = if x64 {
        jitforge::x86::db::modes::M64
    } else {
        jitforge::x86::db::modes::M32
    };
    let mut checked = 0;
    let mut forms_seen = 0;
    let mut failures = Vec::new();
    let mut rejected = Vec::new();
    let mut apx_skipped = 0;
    for mnemonic in Mnemonic::ALL {
        for form in mnemonic.forms() {
            // iced-x86 does not know APX: tests/apx.rs checks those forms
            // against llvm-mc-22 and llvm-objdump-22 instead.
            if form.is_apx() {
                apx_skipped += 1;
                continue;
            }
            // 16-bit addressing is not supported by the encoder.
            if form.modes() & mode == 0
                || form.address_size() == 16 && form.operands().contains(&OperandKind::Mem)
            {
                continue;
            }
            forms_seen += 1;
            for v in 0..3 {
                let Some((ops, options)) = sample(form, v, x64) else {
                    continue;
                };
                let mut code = CodeHolder::new(arch);
                code.set_base_address(Some(0));
                let mut a = Assembler::new(&mut code);
                if let Err(e) = a.emit_with(mnemonic, &ops, options) {
                    rejected.push(format!("{e}"));
                    continue;
                }
                let bytes = code.text().to_vec();
                checked += 1;
                let result = common::decode_for(mnemonic, &bytes, bitness).and_then(|instr| {
                    common::compare(mnemonic, &ops, &instr, bitness)?;
                    if let Some(r) = options.rounding_mode() {
                        let theirs = instr.rounding_control() as u32;
                        if theirs != r as u32 + 1 {
                            return Err(format!(
                                "rounding {r:?} decoded as {:?}",
                                instr.rounding_control()
                            ));
                        }
                    }
                    if options.contains(InstOptions::SAE) && !instr.suppress_all_exceptions() {
                        return Err("{sae} lost".into());
                    }
                    Ok(())
                });
                // `lsl r64, r32` (AsmJit's spelling, from extra.txt) has the same
                // bytes as iced-x86's `lsl r64, r64`.
                let alias = mnemonic == Mnemonic::Lsl && form.operands()[1] == OperandKind::R32M;
                if let Err(e) = result.or_else(|e| {
                    if alias && e.contains("decoded as r") {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }) {
                    let text = jitforge_text(mnemonic, &ops, options);
                    failures.push(format!("{text}: {} -> {e}", common::hex(&bytes)));
                }
            }
        }
    }
    (forms_seen, checked, apx_skipped, failures, rejected)
}

fn jitforge_text(mnemonic: Mnemonic, ops: &[Operand], options: InstOptions) -> String {
    let mut s = options.prefix_text();
    s.push_str(mnemonic.name());
    for (i, o) in ops.iter().enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        s.push_str(&o.to_string());
    }
    s
}

fn check(arch: Arch) {
    let (forms, checked, apx_skipped, failures, rejected) = run(arch);
    println!(
        "{}-bit: {forms} forms, {checked} encodings checked against iced-x86, {apx_skipped} APX forms left to tests/apx.rs, {} mismatches, {} rejected",
        arch.bits(),
        failures.len(),
        rejected.len()
    );
    for f in failures.iter().take(40) {
        println!("  MISMATCH {f}");
    }
    for r in rejected.iter().take(40) {
        println!("  REJECTED {r}");
    }
    assert!(
        failures.is_empty(),
        "{} encodings decode to something else",
        failures.len()
    );
}

#[test]
fn every_form_64() {
    check(Arch::X64);
}

#[test]
fn every_form_32() {
    check(Arch::X86);
}

/// Introspection: operand access, implicit registers and flags come from the database.
#[test]
fn forms_describe_access_implicit_registers_and_flags() {
    use jitforge::x86::db::Access;
    let div = Mnemonic::Div
        .forms()
        .iter()
        .find(|f| f.operands()[0] == OperandKind::R64M)
        .expect("div r/m64");
    let implicit: Vec<String> = div
        .implicit()
        .iter()
        .map(|i| format!("{}:{:?}", i.reg.name(), i.access))
        .collect();
    assert_eq!(implicit, ["rax:ReadWrite", "rdx:ReadWrite"]);
    assert_eq!(div.access(0), Access::Read);
    let add = &Mnemonic::Add.forms()[0];
    assert_eq!(
        (add.access(0), add.access(1)),
        (Access::ReadWrite, Access::Read)
    );
    assert_eq!(
        add.writes_flags().names().collect::<Vec<_>>(),
        ["of", "sf", "zf", "af", "pf", "cf"]
    );
    assert!(add.reads_flags().is_empty());
    let adc = &Mnemonic::Adc.forms()[0];
    assert_eq!(adc.reads_flags().names().collect::<Vec<_>>(), ["cf"]);
    let lea = &Mnemonic::Lea.forms()[0];
    assert_eq!(
        (lea.access(0), lea.access(1)),
        (Access::Write, Access::NoMemAccess)
    );
    let push = Mnemonic::Push
        .forms()
        .iter()
        .find(|f| f.operands()[0] == OperandKind::R64Op)
        .expect("push r64");
    assert!(
        push.implicit()
            .iter()
            .any(|i| i.reg.name() == "rsp" && i.access == Access::ReadWrite)
    );
    // Scalar SSE destinations that keep their upper part without reading the element.
    let merge = |m: Mnemonic, from_memory: bool| m.forms()[0].merge(from_memory);
    assert_eq!(merge(Mnemonic::Sqrtsd, true), Some(8));
    assert_eq!(merge(Mnemonic::Cvtsi2ss, false), Some(4));
    assert_eq!(
        merge(Mnemonic::Addss, false),
        None,
        "addss reads its destination"
    );
    let movss = Mnemonic::Movss.forms()[0];
    assert_eq!((movss.merge(false), movss.merge(true)), (Some(4), None));
    // String instructions: rdi/rsi always, rcx with rep.
    let stosq = &Mnemonic::Stosq.forms()[0];
    let names = |ops: &[jitforge::x86::db::ImplicitOperand]| -> Vec<&str> {
        ops.iter().map(|i| i.reg.name()).collect()
    };
    assert_eq!(names(stosq.implicit()), ["rdi"]);
    assert_eq!(names(stosq.implicit_with_rep()), ["rcx"]);
    assert_eq!(stosq.explicit_kinds(), [OperandKind::Rax]);
    assert_eq!(names(Mnemonic::Cmpsb.forms()[0].implicit()), ["rsi", "rdi"]);
    assert!(add.implicit_with_rep().is_empty());
}

/// Every sampled form of the database (both modes), shuffled into random
/// streams with labels and explicitly near branches and label addresses
/// between them, through the Builder and through the Assembler: the bytes
/// are identical, and iced-x86 decodes each instruction of the Builder's
/// stream at its place. (The Builder packs operands and caches bytes;
/// this checks that what it unpacks and copies is what was given.)
#[test]
fn builder_matches_the_assembler_on_random_streams() {
    use jitforge::Builder;
    use jitforge::code::Label;
    for arch in [Arch::X64, Arch::X86] {
        let x64 = arch == Arch::X64;
        let mode = if x64 {
            jitforge::x86::db::modes::M64
        } else {
            jitforge::x86::db::modes::M32
        };
        // The samples the Assembler accepts, minus branches to an address
        // (the Builder makes those near wherever they land; the Assembler
        // picks by distance).
        let mut samples = Vec::new();
        for mnemonic in Mnemonic::ALL {
            for form in mnemonic.forms() {
                let relative = form.operands().iter().any(|k| {
                    matches!(
                        k,
                        OperandKind::Rel8
                            | OperandKind::Rel16
                            | OperandKind::Rel32
                            | OperandKind::XRel16
                            | OperandKind::XRel32
                            | OperandKind::FarPtr16
                            | OperandKind::FarPtr32
                    )
                });
                if form.is_apx() || form.modes() & mode == 0 || relative {
                    continue;
                }
                for v in 0..3 {
                    let Some((ops, options)) = sample(form, v, x64) else {
                        continue;
                    };
                    let mut code = CodeHolder::new(arch);
                    if Assembler::new(&mut code)
                        .emit_with(mnemonic, &ops, options)
                        .is_ok()
                    {
                        samples.push((mnemonic, ops, options));
                    }
                }
            }
        }
        assert!(samples.len() > 5000, "{} samples", samples.len());
        let mut state = 0x5eed_u64 + arch.bits() as u64;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % n as u64) as usize
        };
        for i in (1..samples.len()).rev() {
            samples.swap(i, next(i + 1));
        }
        let mut checked = 0;
        for stream in samples.chunks(400) {
            let mut built = CodeHolder::new(arch);
            let mut assembled = CodeHolder::new(arch);
            let mut b = Builder::new(&mut built);
            let mut a = Assembler::new(&mut assembled);
            let labels: Vec<Label> = (0..4).map(|_| (b.new_label(), a.new_label()).0).collect();
            let base = if x64 { RegKind::Gp64 } else { RegKind::Gp32 };
            let reg = Operand::Reg(Reg::new(base, 1).expect("rcx"));
            let mut spans = Vec::new();
            let mut bound = 0;
            let mut given = Vec::new();
            for (k, (mnemonic, ops, options)) in stream.iter().enumerate() {
                if k % 100 == 50 {
                    b.bind(labels[bound]).expect("bind");
                    a.bind(labels[bound]).expect("bind");
                    bound += 1;
                }
                if next(16) == 0 {
                    let l = labels[next(4)];
                    let (m, extra, opts): (Mnemonic, Vec<Operand>, InstOptions) = match next(3) {
                        0 => (Mnemonic::Jmp, vec![Operand::Label(l)], InstOptions::LONG),
                        1 => (Mnemonic::Jne, vec![Operand::Label(l)], InstOptions::LONG),
                        _ => (
                            Mnemonic::Lea,
                            vec![reg, Operand::Mem(ptr(l))],
                            InstOptions::NONE,
                        ),
                    };
                    b.emit_with(m, &extra, opts).expect("builder");
                    a.emit_with(m, &extra, opts).expect("assembler");
                    given.push((m, extra, opts));
                }
                given.push((*mnemonic, ops.clone(), *options));
                let start = a.offset();
                b.emit_with(*mnemonic, ops, *options)
                    .expect("builder accepts");
                a.emit_with(*mnemonic, ops, *options)
                    .expect("assembler accepts");
                spans.push((*mnemonic, start, a.offset()));
            }
            for &l in &labels[bound..] {
                b.bind(l).expect("bind");
                a.bind(l).expect("bind");
            }
            // The node views give back every operand as it was given.
            let recorded: Vec<(Mnemonic, Vec<Operand>, InstOptions)> = b
                .iter()
                .filter_map(|(_, node)| match node {
                    jitforge::builder::Node::Inst(i) => {
                        Some((i.mnemonic, i.operands.to_vec(), i.options))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(recorded.len(), given.len());
            for (r, g) in recorded.iter().zip(&given) {
                assert_eq!(r, g, "{arch:?}");
            }
            b.finalize().expect("serialize");
            drop(b);
            let expected = assembled.finalize().expect("assembler code");
            let bytes = built.finalize().expect("builder code");
            assert_eq!(bytes, expected, "{arch:?}");
            for (mnemonic, start, end) in spans {
                let one = &bytes[start..end];
                common::decode_for(mnemonic, one, arch.bits())
                    .unwrap_or_else(|e| panic!("{mnemonic:?} {}: {e}", common::hex(one)));
                checked += 1;
            }
        }
        println!("{arch:?}: {checked} instructions through the Builder");
    }
}
