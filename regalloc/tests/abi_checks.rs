//! The checker's ABI checks, mutation style: a correct allocation passes,
//! and a deliberately broken one is caught by the check it breaks
//! (callee-saved registers intact at every return, stack aligned at calls).

use jitforge_regalloc::testfn::{Builder, TestFunction};
use jitforge_regalloc::{
    Allocation, Constraint, Edit, FrameLayout, Function, Inst, MachineEnv, Operand, OptVReg,
    Options, PReg, PRegSet, ProgPoint, RegClass, VReg, allocate, checker,
};

fn env() -> MachineEnv {
    MachineEnv::x86_64_sysv(false)
}

/// `n` values live across a call (more than the six callee-saved
/// registers when `n > 6`, so some are spilled), summed after it.
fn across_call(n: usize, frame: Option<FrameLayout>) -> TestFunction {
    let mut b = Builder::new();
    if let Some(fr) = frame {
        b.frame(fr);
    }
    let p = b.vreg_gp();
    let vals: Vec<VReg> = (0..n).map(|_| b.vreg_gp()).collect();
    let r = b.vreg_gp();
    b.block();
    b.args(&[(p, 7)]);
    for &v in &vals {
        b.inst(&[
            Operand::def(v, Constraint::Reg),
            Operand::use_(p, Constraint::Reg),
        ]);
    }
    b.call(&[p], Some(r), &env());
    for &v in &vals {
        b.modify_any(r, v);
    }
    b.ret(r);
    b.finish()
}

fn ret_inst(f: &TestFunction) -> Inst {
    Inst::new(f.num_insts() - 1)
}

#[test]
fn value_across_a_call_uses_a_reported_callee_saved_register() {
    let f = across_call(3, None);
    let out = allocate(&f, &env(), &Options::checked()).unwrap();
    assert!(!out.used_callee_saved.is_empty());
    assert!(checker::check(&f, &env(), &out).is_ok());
}

/// Dropping the report: the register no longer holds its entry value at
/// the return, and nothing says the frame restores it.
#[test]
fn unreported_callee_saved_write_is_caught() {
    let f = across_call(3, None);
    let out = allocate(&f, &env(), &Options::checked()).unwrap();
    let mut bad = out.clone();
    bad.used_callee_saved = PRegSet::empty();
    let e = checker::check(&f, &env(), &bad).unwrap_err();
    assert!(e.msg.contains("not its entry value"), "{e}");
    assert_eq!(e.inst, Some(ret_inst(&f)), "{e}");
}

/// A leaf using no callee-saved register, with one overwritten just before
/// the return: caught although no operand mentions it.
#[test]
fn callee_saved_overwritten_before_return_is_caught() {
    let mut b = Builder::new();
    let x = b.vreg_gp();
    let y = b.vreg_gp();
    b.block();
    b.args(&[(x, 7), (y, 6)]);
    b.modify_any(x, y);
    b.ret(x);
    let f = b.finish();
    let out = allocate(&f, &env(), &Options::checked()).unwrap();
    assert!(out.used_callee_saved.is_empty());
    let mut bad = out.clone();
    bad.edits.push((
        ProgPoint::before(ret_inst(&f)),
        Edit::Move {
            from: Allocation::Reg(PReg::gp(7)),
            to: Allocation::Reg(PReg::gp(3)),
            class: RegClass::Gp,
            vreg: OptVReg::NONE,
        },
    ));
    let e = checker::check(&f, &env(), &bad).unwrap_err();
    assert!(e.msg.contains("callee-saved rbx"), "{e}");
    // Swapping it away and back keeps the entry value: the check follows
    // values, not writes.
    let mut swapped = out.clone();
    for _ in 0..2 {
        swapped.edits.push((
            ProgPoint::before(ret_inst(&f)),
            Edit::Swap {
                a: PReg::gp(3),
                b: PReg::gp(11),
            },
        ));
    }
    assert!(checker::check(&f, &env(), &swapped).is_ok());
}

/// With a declared frame the allocator pads the spill area so that the
/// stack is aligned at the call, whatever the saved registers add.
#[test]
fn spill_area_is_padded_for_call_alignment() {
    let mut padded = 0;
    for n in 1..12 {
        for fixed in [0, 8, 24] {
            let frame = FrameLayout::x86_64(fixed);
            let f = across_call(n, Some(frame));
            let out = allocate(&f, &env(), &Options::checked()).unwrap();
            let depth = frame
                .depth_at_calls(out.used_callee_saved, out.spill_area_size)
                .unwrap();
            assert_eq!(depth % 16, 0, "n {n} fixed {fixed}: {depth}");
            let unpadded = allocate(&across_call(n, None), &env(), &Options::checked()).unwrap();
            let pad = out.spill_area_size - unpadded.spill_area_size;
            assert!(pad < 16, "n {n} fixed {fixed}: pad {pad}");
            padded += (pad > 0) as u32;
        }
    }
    assert!(padded > 0, "no case needed padding");
}

/// One word more of spill area misaligns the stack at the call.
#[test]
fn misaligned_stack_at_call_is_caught() {
    let f = across_call(9, Some(FrameLayout::x86_64(0)));
    let out = allocate(&f, &env(), &Options::checked()).unwrap();
    assert!(out.stats.slots > 0);
    let mut bad = out.clone();
    bad.spill_area_size += 8;
    let e = checker::check(&f, &env(), &bad).unwrap_err();
    assert!(e.msg.contains("misaligned by 8 bytes"), "{e}");
    // Without a call there is nothing to align.
    let mut b = Builder::new();
    b.frame(FrameLayout::x86_64(0));
    let x = b.vreg_gp();
    b.block();
    b.args(&[(x, 7)]);
    b.ret(x);
    let leaf = b.finish();
    let mut out = allocate(&leaf, &env(), &Options::checked()).unwrap();
    out.spill_area_size += 8;
    assert!(checker::check(&leaf, &env(), &out).is_ok());
}

/// A spill area smaller than its slots is caught.
#[test]
fn slot_outside_spill_area_is_caught() {
    let f = across_call(9, None);
    let out = allocate(&f, &env(), &Options::checked()).unwrap();
    let mut bad = out.clone();
    bad.spill_area_size = 0;
    let e = checker::check(&f, &env(), &bad).unwrap_err();
    assert!(e.msg.contains("outside"), "{e}");
}

/// A call alignment that is not a power of two is a typed error.
#[test]
fn bad_call_alignment_is_an_input_error() {
    let mut frame = FrameLayout::x86_64(0);
    frame.call_align = 24;
    let f = across_call(2, Some(frame));
    let e = allocate(&f, &env(), &Options::checked()).unwrap_err();
    assert!(e.to_string().contains("power of two"), "{e}");
}
