//! The node-list Builder: branch relaxation (boundaries, cascades, alignment,
//! crossing jumps, labels back to back, errors), cursor editing, passes,
//! logging, and workload A (../shared/bench/WORKLOAD.md) through the Builder:
//! exactly the byte counts the spec gives, and the same instructions as the
//! Assembler's output except for branch sizes (decoded with iced-x86).

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use jitforge::builder::{Builder, MAX_PASSES, Node, Pass};
use jitforge::x86::*;
use jitforge::{Arch, CodeHolder, Error, Label};

// ----- helpers -----

fn decode_all(bytes: &[u8]) -> Vec<Instruction> {
    let mut decoder = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let instr = decoder.decode();
        assert!(!instr.is_invalid(), "invalid bytes at {:#x}", instr.ip());
        out.push(instr);
    }
    out
}

fn is_branch(i: &Instruction) -> bool {
    matches!(
        i.op0_kind(),
        iced_x86::OpKind::NearBranch16
            | iced_x86::OpKind::NearBranch32
            | iced_x86::OpKind::NearBranch64
    )
}

fn text(i: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    let mut s = String::new();
    f.format(i, &mut s);
    s
}

/// `nop` filler of exactly `n` bytes, as embedded data (one node).
fn filler(b: &mut Builder<'_>, n: usize) -> Result<(), Error> {
    b.embed(&vec![0x90; n])
}

/// The offset of a bound label in `.text`.
fn offset_of(code: &CodeHolder, label: Label) -> u64 {
    let (section, offset) = code.label_offset(label).expect("bound");
    assert_eq!(section, CodeHolder::TEXT);
    offset as u64
}

/// Decodes `bytes` and returns (offset, length, target) of every branch.
fn branches(bytes: &[u8]) -> Vec<(u64, usize, u64)> {
    decode_all(bytes)
        .iter()
        .filter(|i| is_branch(i))
        .map(|i| (i.ip(), i.len(), i.near_branch_target()))
        .collect()
}

// ----- workload A -----

/// Instructions 1..40 of a workload A block (binding is the caller's): the
/// library's, with a plain forward jump.
fn block_body<E: Emitter>(
    a: &mut E,
    back: Label,
    fwd: Label,
    l_fn: Label,
    gp_only: bool,
) -> Result<(), Error> {
    jitforge::workloads::workload_a_body(a, back, fwd, l_fn, gp_only, |e, l| e.jmp(l))
}

fn workload_builder(gp_only: bool, blocks: usize) -> Result<Vec<u8>, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l_fn = b.new_label();
    b.bind(l_fn)?;
    for _ in 0..blocks {
        let back = b.new_label();
        let fwd = b.new_label();
        b.bind(back)?;
        block_body(&mut b, back, fwd, l_fn, gp_only)?;
        b.bind(fwd)?;
    }
    b.finalize()?;
    let stats = b.relax_stats();
    assert_eq!(stats.passes, 1);
    assert_eq!(stats.short_branches, 2 * blocks);
    assert_eq!(stats.near_branches, 0);
    drop(b);
    code.finalize()
}

fn workload_assembler(gp_only: bool, blocks: usize) -> Result<Vec<u8>, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l_fn = a.new_label();
    a.bind(l_fn)?;
    for _ in 0..blocks {
        let back = a.new_label();
        let fwd = a.new_label();
        a.bind(back)?;
        block_body(&mut a, back, fwd, l_fn, gp_only)?;
        a.bind(fwd)?;
    }
    code.finalize()
}

/// Workload A through the Builder and through the Assembler: the spec's byte
/// counts, and the same instruction stream except for branch sizes: every
/// non-branch decodes to the same instruction (iced-x86's `==`: opcode,
/// operands, displacement, immediate), every branch to the same mnemonic with
/// a target at the same instruction index.
fn workload_a(gp_only: bool, blocks: usize, bytes: usize) -> Result<(), Error> {
    let ours = workload_builder(gp_only, blocks)?;
    assert_eq!(ours.len(), bytes);
    let theirs = workload_assembler(gp_only, blocks)?;
    assert_eq!(
        theirs.len(),
        bytes + 3 * blocks,
        "the Assembler's forward jumps are near"
    );
    let ours = decode_all(&ours);
    let theirs = decode_all(&theirs);
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours.len(), blocks * if gp_only { 25 } else { 40 });
    let index = |list: &[Instruction], ip: u64| match list.binary_search_by_key(&ip, |i| i.ip()) {
        Ok(k) => k,
        // The end of the code (the last block's forward label).
        Err(k) if k == list.len() && list.last().is_some_and(|l| l.next_ip() == ip) => k,
        Err(_) => panic!("a branch target {ip:#x} inside an instruction"),
    };
    let mut shorter = 0;
    for (k, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        if is_branch(t) {
            assert!(is_branch(o), "instruction {k}: {} vs {}", text(o), text(t));
            assert_eq!(o.mnemonic(), t.mnemonic(), "instruction {k}");
            assert_eq!(
                index(&ours, o.near_branch_target()),
                index(&theirs, t.near_branch_target()),
                "instruction {k}: target"
            );
            assert!(o.len() <= t.len());
            if o.len() < t.len() {
                shorter += 1;
            }
        } else if o != t || o.len() != t.len() {
            panic!("instruction {k}: {} vs {}", text(o), text(t));
        }
    }
    // Every forward `jmp L_fwd` is 3 bytes shorter; everything else equal.
    assert_eq!(shorter, blocks);
    Ok(())
}

#[test]
fn workload_a_full_through_the_builder() -> Result<(), Error> {
    workload_a(false, 25_000, 4_175_000)
}

#[test]
fn workload_a_gp_through_the_builder() -> Result<(), Error> {
    workload_a(true, 40_000, 3_520_000)
}

// ----- relaxation edge cases -----

/// `jmp L; <n bytes>; L:` through the Builder.
fn forward_jump(m: Mnemonic, n: usize) -> Result<Vec<u8>, Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.emit(m, &[l.into()])?;
    filler(&mut b, n)?;
    b.bind(l)?;
    b.finalize()?;
    drop(b);
    code.finalize()
}

/// `L: <n bytes>; jmp L` through the Builder and through the Assembler.
fn backward_jump(m: Mnemonic, n: usize) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.bind(l)?;
    filler(&mut b, n)?;
    b.emit(m, &[l.into()])?;
    b.finalize()?;
    drop(b);
    let ours = code.finalize()?;
    let mut code = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut code);
    let l = a.new_label();
    a.bind(l)?;
    a.embed(&vec![0x90; n]);
    a.emit(m, &[l.into()])?;
    Ok((ours, code.finalize()?))
}

#[test]
fn forward_jump_at_the_rel8_boundary() -> Result<(), Error> {
    let short = forward_jump(Mnemonic::Jmp, 127)?;
    assert_eq!(&short[..2], &[0xeb, 0x7f]);
    assert_eq!(short.len(), 129);
    let near = forward_jump(Mnemonic::Jmp, 128)?;
    assert_eq!(&near[..5], &[0xe9, 0x80, 0, 0, 0]);
    let short = forward_jump(Mnemonic::Jne, 127)?;
    assert_eq!(&short[..2], &[0x75, 0x7f]);
    let near = forward_jump(Mnemonic::Jne, 128)?;
    assert_eq!(&near[..6], &[0x0f, 0x85, 0x80, 0, 0, 0]);
    Ok(())
}

#[test]
fn backward_jump_at_the_rel8_boundary() -> Result<(), Error> {
    // 126 filler bytes + 2: the displacement is exactly -128.
    let (ours, theirs) = backward_jump(Mnemonic::Jmp, 126)?;
    assert_eq!(&ours[126..], &[0xeb, 0x80]);
    assert_eq!(ours, theirs);
    // 127 filler bytes: -129 does not fit, near with -132.
    let (ours, theirs) = backward_jump(Mnemonic::Jmp, 127)?;
    assert_eq!(&ours[127..], &[0xe9, 0x7c, 0xff, 0xff, 0xff]);
    assert_eq!(ours, theirs);
    let (ours, theirs) = backward_jump(Mnemonic::Je, 126)?;
    assert_eq!(&ours[126..], &[0x74, 0x80]);
    assert_eq!(ours, theirs);
    let (ours, theirs) = backward_jump(Mnemonic::Je, 127)?;
    assert_eq!(&ours[127..], &[0x0f, 0x84, 0x7b, 0xff, 0xff, 0xff]);
    assert_eq!(ours, theirs);
    Ok(())
}

#[test]
fn thousand_trivial_jump_label_pairs() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    for _ in 0..1000 {
        let l = b.new_label();
        b.jmp(l)?;
        b.bind(l)?;
    }
    b.finalize()?;
    assert_eq!(b.relax_stats().short_branches, 1000);
    drop(b);
    let bytes = code.finalize()?;
    assert_eq!(bytes, [0xeb, 0x00].repeat(1000));
    Ok(())
}

#[test]
fn labels_bound_back_to_back() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let labels: Vec<Label> = (0..4).map(|_| b.new_label()).collect();
    for &l in &labels {
        b.jmp(l)?; // forward
    }
    b.nop()?;
    for &l in &labels {
        b.bind(l)?;
    }
    b.nop()?;
    for &l in labels.iter().rev() {
        b.jne(l)?; // backward
    }
    b.finalize()?;
    drop(b);
    let bytes = code.finalize()?;
    let target = offset_of(&code, labels[0]);
    assert_eq!(target, 9);
    for &l in &labels {
        assert_eq!(offset_of(&code, l), target);
    }
    let found = branches(&bytes);
    assert_eq!(found.len(), 8);
    for (_, len, to) in found {
        assert_eq!(len, 2);
        assert_eq!(to, target);
    }
    Ok(())
}

#[test]
fn jumps_crossing_each_other() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let [a, c, d, e] = [(); 4].map(|_| b.new_label());
    b.bind(d)?;
    b.jmp(a)?; // forward over the next jump's target
    b.jmp(c)?; // forward, crosses the first
    filler(&mut b, 100)?;
    b.bind(a)?;
    filler(&mut b, 40)?; // c is out of reach of the second jump
    b.bind(c)?;
    b.je(d)?; // backward, crosses both targets: out of reach
    b.jne(e)?; // forward, crossing nothing
    b.bind(e)?;
    b.jmp(a)?; // backward, crosses c: in reach
    b.finalize()?;
    drop(b);
    let bytes = code.finalize()?;
    let found = branches(&bytes);
    let expect = [
        (2, offset_of(&code, a)),
        (5, offset_of(&code, c)),
        (6, offset_of(&code, d)),
        (2, offset_of(&code, e)),
        (2, offset_of(&code, a)),
    ];
    assert_eq!(found.len(), expect.len());
    for ((_, len, to), (elen, eto)) in found.into_iter().zip(expect) {
        assert_eq!((len, to), (elen, eto));
    }
    Ok(())
}

/// A chain of `n` forward jumps where each is in reach until the next one
/// grows: jump k's span holds jump k+1 only. Every jump ends up near. With
/// `align`, an `align 1` (no padding) at the start keeps the relaxation from
/// propagating growth within a pass: one pass per level, then the bound.
fn cascade(
    n: usize,
    align: bool,
) -> Result<(Vec<u8>, jitforge::builder::RelaxStats, Vec<u64>), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let targets: Vec<Label> = (0..n).map(|_| b.new_label()).collect();
    if align {
        b.align(1)?;
    }
    // J1, 73, J2, 50, T1, 23, J3, 50, T2, 23, J4, ... , Jn, 50, T(n-1), 78, Tn
    b.jmp(targets[0])?;
    filler(&mut b, 73)?;
    for k in 1..n {
        b.jmp(targets[k])?;
        filler(&mut b, 50)?;
        b.bind(targets[k - 1])?;
        if k + 1 < n {
            filler(&mut b, 23)?;
        }
    }
    filler(&mut b, 78)?;
    b.bind(targets[n - 1])?;
    b.finalize()?;
    let stats = b.relax_stats();
    drop(b);
    let offsets = targets.iter().map(|&l| offset_of(&code, l)).collect();
    Ok((code.finalize()?, stats, offsets))
}

#[test]
fn relaxation_cascades_through_a_chain_of_jumps() -> Result<(), Error> {
    for align in [false, true] {
        for n in [2, 10, (MAX_PASSES + 20) as usize] {
            let (bytes, stats, offsets) = cascade(n, align)?;
            assert_eq!(stats.near_branches, n, "n = {n}");
            assert_eq!(stats.short_branches, 0);
            if !align {
                assert_eq!(stats.passes, 2, "settles in one pass, checked by a second");
            } else if n < MAX_PASSES as usize {
                assert_eq!(stats.passes, n as u32 + 1, "one pass per level");
                assert!(!stats.bounded);
            } else {
                assert!(stats.bounded);
                assert!(stats.passes <= MAX_PASSES + 3);
            }
            let found = branches(&bytes);
            assert_eq!(found.len(), n);
            for ((_, len, to), target) in found.into_iter().zip(offsets) {
                assert_eq!((len, to), (5, target));
            }
        }
    }
    Ok(())
}

#[test]
fn alignment_inside_a_relaxed_region() -> Result<(), Error> {
    // Short, the jump would end at 62 and the padding would be 2: the label
    // lands at 134, out of reach. Near, the jump ends at 65, the padding is 63.
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    let back = b.new_label();
    b.jmp(l)?;
    filler(&mut b, 60)?;
    b.align(64)?;
    b.bind(back)?;
    filler(&mut b, 70)?;
    b.bind(l)?;
    b.jmp(back)?; // backward across the aligned label: in reach (-72)
    b.align(16)?;
    b.finalize()?;
    assert_eq!(b.relax_stats().passes, 2);
    drop(b);
    let bytes = code.finalize()?;
    assert_eq!(offset_of(&code, back), 128);
    assert_eq!(offset_of(&code, l), 198);
    assert_eq!(bytes.len(), 208);
    let found = branches(&bytes);
    assert_eq!(found[0], (0, 5, 198));
    assert_eq!(found[1], (198, 2, 128));
    // The padding is made of NOPs that decode.
    assert!(decode_all(&bytes).iter().all(|i| !i.is_invalid()));
    Ok(())
}

#[test]
fn alignment_padding_absorbs_growth() -> Result<(), Error> {
    // A far forward jump grows by 3 bytes before an align(16): the aligned
    // code does not move, so a short jump over it stays short.
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let far = b.new_label();
    let near = b.new_label();
    b.jmp(far)?;
    b.jmp(near)?; // 2 + 2, then padding to 16
    b.align(16)?;
    filler(&mut b, 100)?;
    b.bind(near)?;
    filler(&mut b, 100)?;
    b.bind(far)?;
    b.finalize()?;
    drop(b);
    let bytes = code.finalize()?;
    let found = branches(&bytes);
    assert_eq!(found[0], (0, 5, 216));
    assert_eq!(found[1], (5, 2, 116));
    Ok(())
}

/// Random programs of jumps, labels, fillers and alignment: every branch
/// lands on its label, and without alignment no near branch could be short.
#[test]
fn random_programs_branch_to_their_labels() -> Result<(), Error> {
    let mut state: u64 = 12345;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    for round in 0..200 {
        let with_align = round % 2 == 1;
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        let labels: Vec<Label> = (0..12).map(|_| b.new_label()).collect();
        let mut bound = vec![false; labels.len()];
        let mut uses = Vec::new();
        for _ in 0..60 {
            match next() % 8 {
                0..=2 => {
                    let l = (next() % labels.len() as u64) as usize;
                    let m = [Mnemonic::Jmp, Mnemonic::Je, Mnemonic::Jl][(next() % 3) as usize];
                    b.emit(m, &[labels[l].into()])?;
                    uses.push(l);
                }
                3 => {
                    let l = (next() % labels.len() as u64) as usize;
                    if !bound[l] {
                        b.bind(labels[l])?;
                        bound[l] = true;
                    }
                }
                4 if with_align => b.align(1 << (next() % 6))?,
                _ => filler(&mut b, (next() % 40) as usize)?,
            }
        }
        for (l, is_bound) in bound.iter_mut().enumerate() {
            if !*is_bound {
                b.bind(labels[l])?;
                *is_bound = true;
            }
        }
        b.finalize()?;
        drop(b);
        let bytes = code.finalize()?;
        let found = branches(&bytes);
        assert_eq!(found.len(), uses.len());
        for ((at, len, to), l) in found.into_iter().zip(uses) {
            let target = offset_of(&code, labels[l]);
            assert_eq!(to, target, "round {round}");
            if !with_align && len > 2 {
                // Without alignment the relaxation finds the least set of
                // near branches: none of them would reach as a short one.
                let shrink = if target > at { (len - 2) as i64 } else { 0 };
                let d = target as i64 - shrink - (at as i64 + 2);
                assert!(
                    !(-128..=127).contains(&d),
                    "round {round}: near jump at {at:#x} would have reached"
                );
            }
        }
    }
    Ok(())
}

// ----- errors -----

#[test]
fn label_bound_twice_is_an_error() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.bind(l)?;
    b.nop()?;
    assert!(matches!(b.bind(l), Err(Error::LabelAlreadyBound { .. })));
    // Bound in the code holder directly: binding it in the Builder fails too.
    let m = b.new_label();
    b.code_mut().bind(m, CodeHolder::TEXT)?;
    assert!(matches!(b.bind(m), Err(Error::LabelAlreadyBound { .. })));
    // Removing the bind node frees the label for another bind.
    let first = b.first().expect("nodes");
    assert_eq!(b.node(first), Some(Node::Label(l)));
    b.remove(first)?;
    b.bind(l)?;
    b.finalize()?;
    // A second serialization finds its labels bound and writes nothing.
    let size = b.code().text().len();
    assert!(matches!(b.finalize(), Err(Error::LabelAlreadyBound { .. })));
    assert_eq!(b.code().text().len(), size);
    Ok(())
}

#[test]
fn jump_to_a_label_never_bound_is_an_error() -> Result<(), Error> {
    for m in [Mnemonic::Jmp, Mnemonic::Call, Mnemonic::Loop] {
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        let l = b.new_label();
        b.nop()?;
        b.emit(m, &[l.into()])?;
        let err = b.finalize().expect_err("unbound label");
        assert_eq!(err, Error::UnboundLabel { label: "L0".into() });
        drop(b);
        assert!(code.text().is_empty(), "nothing written");
    }
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_named_label("table")?;
    b.embed_label(l)?;
    assert_eq!(
        b.finalize(),
        Err(Error::UnboundLabel {
            label: "table".into()
        })
    );
    Ok(())
}

#[test]
fn invalid_instruction_fails_at_the_call() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    b.nop()?;
    let err = b
        .emit(Mnemonic::Add, &[eax.into(), xmm0.into()])
        .expect_err("no such form");
    assert!(matches!(err, Error::InvalidInstruction { .. }), "{err}");
    assert!(matches!(
        b.emit(Mnemonic::Mov, &[eax.into(), Operand::Imm(1 << 40)]),
        Err(Error::InvalidInstruction { .. })
    ));
    // A label of another code holder.
    let mut other = CodeHolder::new(Arch::X64);
    for _ in 0..5 {
        other.new_label();
    }
    let foreign = other.new_label();
    assert_eq!(b.jmp(foreign), Err(Error::InvalidLabel { id: 5 }));
    assert_eq!(b.bind(foreign), Err(Error::InvalidLabel { id: 5 }));
    assert!(b.align(3).is_err());
    assert!(b.embed_int(1, 3).is_err());
    assert_eq!(b.len(), 1, "failed calls add no node");
    Ok(())
}

#[test]
fn explicit_short_jump_out_of_reach_is_an_error() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.short().jmp(l)?;
    filler(&mut b, 200)?;
    b.bind(l)?;
    assert!(matches!(
        b.finalize(),
        Err(Error::ShortJumpOutOfRange { distance: 200, .. })
    ));
    drop(b);
    assert!(code.text().is_empty());
    // `loop` has only a rel8 form: fine in reach, an error out of it.
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.loop_(l)?;
    filler(&mut b, 10)?;
    b.bind(l)?;
    b.loop_(l)?;
    b.finalize()?;
    drop(b);
    assert_eq!(&code.finalize()?[..2], &[0xe2, 0x0a]);
    Ok(())
}

#[test]
fn explicit_sizes_are_kept() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.long().jmp(l)?;
    b.short().je(l)?;
    b.bind(l)?;
    b.finalize()?;
    assert_eq!(b.relax_stats().short_branches, 0);
    drop(b);
    assert_eq!(code.finalize()?, [0xe9, 2, 0, 0, 0, 0x74, 0]);
    Ok(())
}

// ----- cursor editing and passes -----

#[test]
fn cursor_insert_in_the_middle_and_remove() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    b.mov(eax, 1)?;
    let first = b.cursor().expect("node");
    b.ret()?;
    let ret = b.cursor().expect("node");
    // Insert after the mov.
    b.set_cursor(Some(first))?;
    b.add(eax, ecx)?;
    b.comment("inserted")?;
    // Insert at the front, then before the ret.
    b.set_cursor(None)?;
    b.push(rbx)?;
    b.set_cursor_before(ret)?;
    b.pop(rbx)?;
    assert_eq!(b.len(), 6);
    // Remove the mov: the cursor is elsewhere and stays.
    let cursor = b.cursor();
    b.remove(first)?;
    assert_eq!(b.cursor(), cursor);
    assert!(b.node(first).is_none());
    assert!(b.remove(first).is_err(), "already removed");
    let kinds: Vec<String> = b
        .iter()
        .map(|(_, n)| match n {
            Node::Inst(i) => i.mnemonic.name().to_string(),
            Node::Comment(c) => format!("; {c}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["push", "add", "; inserted", "pop", "ret"]);
    // Walking backwards gives the same nodes.
    let mut back = Vec::new();
    let mut at = b.last();
    while let Some(id) = at {
        back.push(id);
        at = b.prev(id);
    }
    back.reverse();
    assert_eq!(back, b.iter().map(|(id, _)| id).collect::<Vec<_>>());
    // Removing the cursor node moves the cursor back.
    b.set_cursor(Some(ret))?;
    b.remove(ret)?;
    assert_eq!(b.cursor(), b.last());
    b.ret()?;
    b.finalize()?;
    drop(b);
    assert_eq!(code.finalize()?, [0x53, 0x01, 0xc8, 0x5b, 0xc3]);
    Ok(())
}

/// A peephole pass: `mov r64, 0` becomes `xor r32, r32`, comments go.
struct ZeroIdiom {
    rewritten: usize,
}

impl Pass for ZeroIdiom {
    fn run(&mut self, b: &mut Builder<'_>) -> Result<(), Error> {
        let mut at = b.first();
        while let Some(id) = at {
            at = b.next(id);
            match b.node(id) {
                Some(Node::Inst(inst)) => {
                    if let (Mnemonic::Mov, [Operand::Reg(r), Operand::Imm(0)]) =
                        (inst.mnemonic, inst.operands)
                        && r.kind() == RegKind::Gp64
                    {
                        let Some(r32) = Reg::new(RegKind::Gp32, r.id()) else {
                            continue;
                        };
                        b.replace_inst(
                            id,
                            Mnemonic::Xor,
                            &[r32.into(), r32.into()],
                            InstOptions::NONE,
                        )?;
                        self.rewritten += 1;
                    }
                }
                Some(Node::Comment(_)) => b.remove(id)?,
                _ => {}
            }
        }
        Ok(())
    }
}

#[test]
fn a_pass_rewrites_nodes() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    let top = b.new_label();
    b.bind(top)?;
    b.comment("zero two registers")?;
    b.mov(rax, 0)?;
    b.mov(r9, 0)?;
    b.mov(rcx, 5)?;
    b.jmp(top)?;
    let mut pass = ZeroIdiom { rewritten: 0 };
    b.run_pass(&mut pass)?;
    assert_eq!(pass.rewritten, 2);
    assert!(!b.iter().any(|(_, n)| matches!(n, Node::Comment(_))));
    // A closure registered as a pass runs at finalize.
    b.add_pass(Box::new(|b: &mut Builder<'_>| -> Result<(), Error> {
        let last = b.last().expect("nodes");
        b.set_cursor_before(last)?;
        b.dec(ecx)?;
        Ok(())
    }));
    b.finalize()?;
    drop(b);
    let mut expect = CodeHolder::new(Arch::X64);
    let mut a = Assembler::new(&mut expect);
    let top = a.new_label();
    a.bind(top)?;
    a.xor_(eax, eax)?;
    a.xor_(r9d, r9d)?;
    a.mov(rcx, 5)?;
    a.dec(ecx)?;
    a.jmp(top)?;
    assert_eq!(code.finalize()?, expect.finalize()?);
    Ok(())
}

#[test]
fn replace_with_an_invalid_instruction_keeps_the_node() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    b.nop()?;
    let id = b.cursor().expect("node");
    assert!(
        b.replace_inst(id, Mnemonic::Add, &[eax.into()], InstOptions::NONE)
            .is_err()
    );
    assert!(matches!(b.node(id), Some(Node::Inst(i)) if i.mnemonic == Mnemonic::Nop));
    Ok(())
}

// ----- the typed and dynamic APIs, data, sections, logging -----

/// Workload A blocks without the forward jump: nothing to relax.
fn no_relaxation<E: Emitter>(e: &mut E, labels: &[Label], dynamic: bool) -> Result<(), Error> {
    let l_fn = labels[0];
    if dynamic {
        e.emit(Mnemonic::Mov, &[rax.into(), rbx.into()])?;
        e.emit(
            Mnemonic::Vaddps,
            &[zmm0.k(k1).z().into(), zmm1.into(), zmm2.into()],
        )?;
        e.emit(
            Mnemonic::Lea,
            &[r8.into(), ptr(rax + rcx * 4 + 0x100).into()],
        )?;
        e.emit(Mnemonic::Jne, &[labels[1].into()])?;
        e.emit(Mnemonic::Call, &[l_fn.into()])?;
        e.emit(Mnemonic::Lea, &[rax.into(), ptr(labels[1] + 8).into()])?;
        e.emit(Mnemonic::Call, &[Operand::Imm(0x1000)])?;
    } else {
        e.mov(rax, rbx)?;
        e.vaddps(zmm0.k(k1).z(), zmm1, zmm2)?;
        e.lea(r8, ptr(rax + rcx * 4 + 0x100))?;
        e.jne(labels[1])?;
        e.call(l_fn)?;
        e.lea(rax, ptr(labels[1] + 8))?;
        e.call(0x1000)?;
    }
    Ok(())
}

#[test]
fn typed_and_dynamic_apis_match_the_assembler() -> Result<(), Error> {
    let mut outputs = Vec::new();
    for dynamic in [false, true] {
        // Through the Builder.
        let mut code = CodeHolder::new(Arch::X64);
        code.set_base_address(Some(0x1000));
        let mut b = Builder::new(&mut code);
        let labels = [b.new_label(), b.new_label()];
        b.bind(labels[0])?;
        b.ret()?;
        b.bind(labels[1])?;
        no_relaxation(&mut b, &labels, dynamic)?;
        b.finalize()?;
        drop(b);
        outputs.push(code.finalize()?);
        // Through the Assembler.
        let mut code = CodeHolder::new(Arch::X64);
        code.set_base_address(Some(0x1000));
        let mut a = Assembler::new(&mut code);
        let labels = [a.new_label(), a.new_label()];
        a.bind(labels[0])?;
        a.ret()?;
        a.bind(labels[1])?;
        no_relaxation(&mut a, &labels, dynamic)?;
        outputs.push(code.finalize()?);
    }
    assert!(!outputs[0].is_empty());
    for o in &outputs[1..] {
        assert_eq!(o, &outputs[0]);
    }
    Ok(())
}

#[test]
fn data_sections_and_label_addresses() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let data = code.add_section(".data", jitforge::code::SectionKind::Data, 8)?;
    let mut b = Builder::new(&mut code);
    let table = b.new_label();
    let target = b.new_label();
    b.lea(rax, ptr(table))?;
    b.jmp(qword_ptr(rax))?;
    b.bind(target)?;
    b.ret()?;
    b.switch_section(data)?;
    b.align(8)?;
    b.bind(table)?;
    b.embed_label(target)?;
    b.embed_int(0x1122, 2)?;
    b.switch_section(CodeHolder::TEXT)?;
    b.int3()?;
    b.finalize()?;
    drop(b);
    let bytes = code.finalize()?;
    // lea (7) + jmp [rax] (2) + ret + int3 = 11 bytes of text, data at 16.
    assert_eq!(bytes.len(), 16 + 10);
    assert_eq!(&bytes[16..24], &9u64.to_le_bytes());
    assert_eq!(&bytes[24..], &[0x22, 0x11]);
    assert_eq!(&bytes[..3], &[0x48, 0x8d, 0x05]);
    assert_eq!(i32::from_le_bytes(bytes[3..7].try_into().unwrap()), 16 - 7);
    Ok(())
}

#[derive(Default)]
struct Lines(Vec<(usize, Vec<u8>, String)>);

impl Logger for Lines {
    fn log(&mut self, offset: usize, bytes: &[u8], text: &str) {
        self.0.push((offset, bytes.to_vec(), text.to_string()));
    }
}

#[test]
fn logging_does_not_change_the_bytes() -> Result<(), Error> {
    let run = |logger: Option<&mut Lines>| -> Result<Vec<u8>, Error> {
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        if let Some(logger) = logger {
            b.set_logger(Some(logger));
        }
        let l_fn = b.new_label();
        b.bind(l_fn)?;
        for _ in 0..20 {
            let back = b.new_label();
            let fwd = b.new_label();
            b.bind(back)?;
            b.comment("block")?;
            block_body(&mut b, back, fwd, l_fn, false)?;
            b.bind(fwd)?;
            b.align(16)?;
        }
        b.finalize()?;
        drop(b);
        code.finalize()
    };
    let mut lines = Lines::default();
    let with = run(Some(&mut lines))?;
    let without = run(None)?;
    assert_eq!(with, without);
    let instructions = lines
        .0
        .iter()
        .filter(|(_, bytes, t)| !bytes.is_empty() && !t.starts_with('.'))
        .count();
    assert_eq!(instructions, 20 * 40);
    assert_eq!(
        lines.0.iter().filter(|(_, _, t)| t == "; block").count(),
        20
    );
    // Each logged instruction's bytes are those at its offset (the
    // displacements of forward jumps are patched after they are logged).
    for (offset, bytes, text) in &lines.0 {
        let at = &with[*offset..offset + bytes.len()];
        if text.starts_with('j') {
            assert_eq!(at.len(), bytes.len());
        } else {
            assert_eq!(at, &bytes[..], "{text}");
        }
    }
    // The other way to pass a logger.
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    b.comment("only a comment")?;
    b.nop()?;
    let mut lines = Lines::default();
    b.serialize_with_logger(&mut lines)?;
    assert_eq!(lines.0.len(), 2);
    assert_eq!(lines.0[0].2, "; only a comment");
    Ok(())
}

#[test]
fn clear_reuses_the_builder() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let mut b = Builder::new(&mut code);
    for round in 0..3 {
        let l = b.new_label();
        b.bind(l)?;
        b.nop()?;
        b.jmp(l)?;
        b.finalize()?;
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.code().text().len(), 3 * (round + 1));
    }
    drop(b);
    assert_eq!(code.finalize()?, [0x90, 0xeb, 0xfd].repeat(3));
    Ok(())
}

#[test]
fn builder_on_32_bit_code() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X86);
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.jmp(l)?;
    b.mov(eax, dword_ptr(ebx + 4))?;
    b.bind(l)?;
    b.embed_label(l)?;
    b.finalize()?;
    drop(b);
    let bytes = code.finalize()?;
    assert_eq!(bytes, [0xeb, 0x03, 0x8b, 0x43, 0x04, 5, 0, 0, 0]);
    Ok(())
}

#[test]
fn listing_of_the_node_list() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let data = code.add_section(".data", jitforge::code::SectionKind::Data, 8)?;
    let mut b = Builder::new(&mut code);
    let l = b.new_label();
    b.bind(l)?;
    b.comment("loop")?;
    b.lock().add(qword_ptr(rax), 1)?;
    b.vaddps(zmm0.k(k1).z(), zmm1, zmm2)?;
    b.short().jne(l)?;
    b.align(16)?;
    b.switch_section(data)?;
    b.embed(&[1, 0xff])?;
    b.embed_label(l)?;
    assert_eq!(
        b.listing(),
        "L0:\n    ; loop\n    lock add qword ptr [rax], 0x1\n    vaddps zmm0 {k1}{z}, zmm1, zmm2\n    \
         short jne L0\n    .align 16\n.section 1\n    .byte 0x01, 0xff\n    .address L0\n"
    );
    Ok(())
}

#[test]
fn jumps_across_sections_are_near() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let cold = code.add_section(".cold", jitforge::code::SectionKind::Text, 16)?;
    let mut b = Builder::new(&mut code);
    let slow = b.new_label();
    let back = b.new_label();
    b.test(eax, eax)?;
    b.jne(slow)?; // to another section: near, even though it is close
    b.bind(back)?;
    b.ret()?;
    b.switch_section(cold)?;
    b.bind(slow)?;
    b.xor_(eax, eax)?;
    b.jmp(back)?; // back to .text: near
    b.finalize()?;
    assert_eq!(b.relax_stats().near_branches, 2);
    drop(b);
    let bytes = code.finalize()?;
    let found = branches(&bytes);
    assert_eq!(found, [(2, 6, 16), (18, 5, 8)]);
    Ok(())
}

/// Random programs built with random cursor moves and removals, then
/// replayed node by node through the Assembler: with explicit branch sizes
/// (nothing to relax), the bytes are identical.
#[test]
fn random_edited_programs_replay_through_the_assembler() -> Result<(), Error> {
    let mut state: u64 = 99;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    for round in 0..100 {
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        let labels: Vec<Label> = (0..8).map(|_| b.new_label()).collect();
        let mut bound = [false; 8];
        for _ in 0..80 {
            // Move the cursor somewhere, sometimes.
            if next() % 4 == 0 {
                let ids: Vec<_> = b.iter().map(|(id, _)| id).collect();
                if !ids.is_empty() {
                    let id = ids[(next() % ids.len() as u64) as usize];
                    if next() % 2 == 0 {
                        b.set_cursor(Some(id))?;
                    } else {
                        b.set_cursor_before(id)?;
                    }
                }
            }
            let l = (next() % 8) as usize;
            match next() % 10 {
                0 => {
                    if !bound[l] {
                        b.bind(labels[l])?;
                        bound[l] = true;
                    }
                }
                1 => b.long().jne(labels[l])?,
                2 => b.long().jmp(labels[l])?,
                3 => b.align(1 << (next() % 5))?,
                4 => b.embed(&[0xcc; 3][..(next() % 3) as usize + 1])?,
                5 => b.lea(rax, ptr(labels[l]))?,
                6 => b.call(labels[l])?,
                7 => {
                    if let Some(id) = b.cursor()
                        && !matches!(b.node(id), Some(Node::Label(_)))
                    {
                        b.remove(id)?;
                    }
                }
                _ => {
                    let k = (next() % 4) as usize;
                    match k {
                        0 => b.add(rax, (next() % 300) as i32)?,
                        1 => b.mov(rdx, qword_ptr(rsi + rdi * 8 + 0x40))?,
                        2 => b.vpternlogd(zmm5, zmm6, zmm31, 0x96)?,
                        _ => b.comment("c")?,
                    }
                }
            }
        }
        for (l, is_bound) in bound.iter().enumerate() {
            if !is_bound {
                b.set_cursor(b.last())?;
                b.bind(labels[l])?;
            }
        }
        // Replay the final list through an Assembler on a fresh holder.
        let mut replay = CodeHolder::new(Arch::X64);
        {
            let mut a = Assembler::new(&mut replay);
            for _ in 0..8 {
                a.new_label();
            }
            for (_, node) in b.iter() {
                match node {
                    Node::Inst(i) => a.emit_with(i.mnemonic, i.operands, i.options)?,
                    Node::Label(l) => a.bind(l)?,
                    Node::Align(n) => a.align(n)?,
                    Node::Embed(bytes) => a.embed(bytes),
                    Node::EmbedLabel(l) => a.embed_label(l)?,
                    Node::Comment(_) => {}
                    Node::Section(s) => a.switch_section(s)?,
                    other => panic!("unknown node {other:?}"),
                }
            }
        }
        b.finalize()?;
        drop(b);
        assert_eq!(code.finalize()?, replay.finalize()?, "round {round}");
    }
    Ok(())
}

/// The Builder appends to code already in the holder: its layout starts at
/// the end of each section, and labels the holder bound before are targets
/// like any other (short when in reach).
#[test]
fn builder_appends_to_existing_code() -> Result<(), Error> {
    let mut code = CodeHolder::new(Arch::X64);
    let (top, far) = {
        let mut a = Assembler::new(&mut code);
        let far = a.new_label();
        a.bind(far)?;
        a.embed(&[0x90; 200]);
        let top = a.new_label();
        a.bind(top)?;
        a.nop()?;
        (top, far)
    };
    let mut b = Builder::new(&mut code);
    let end = b.new_label();
    b.align(16)?; // 201 -> 208
    b.jne(top)?; // backward into the Assembler's code: -10, short
    b.jmp(far)?; // -212: near
    b.jmp(end)?;
    b.bind(end)?;
    b.finalize()?;
    assert_eq!(b.relax_stats().short_branches, 2);
    drop(b);
    let bytes = code.finalize()?;
    assert_eq!(bytes.len(), 208 + 2 + 5 + 2);
    let found = branches(&bytes);
    assert_eq!(found, [(208, 2, 200), (210, 5, 0), (215, 2, 217)]);
    Ok(())
}
