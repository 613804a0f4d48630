//! The verifier: structural checks of a function, returning every error found
//! with its position (the instruction, and the operand where it applies).
//!
//! Checked: entity references exist (a virtual register of another function
//! is caught here); labels bound twice, or used as branch targets or
//! jump-table entries and never bound; operand count and kinds of each
//! instruction against the target's facts and the pseudo-instructions'
//! rules; entry placement and argument/result counts and classes against
//! signatures; fixed operands whose class differs from their register's; a
//! use of a virtual register that no definition reaches on some path (a
//! forward must-be-defined dataflow over the CFG; partial writes count as
//! definitions, entry arguments and pinned registers are defined at entry);
//! a block that falls off the end of the function; pins that conflict, and
//! calls whose convention clobbers a pinned register.

use crate::cfg::Cfg;
use crate::entities::*;
use crate::function::*;
use crate::target::*;
use core::fmt;
use cranelift_entity::EntityRef;
use fixedbitset::FixedBitSet;

/// What is wrong.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum VerifyErrorKind {
    /// A label is bound a second time (`first` is the first bind).
    LabelBoundTwice {
        /// The label.
        label: Label,
        /// Where it was bound first.
        first: Inst,
    },
    /// A label used as a branch target or jump-table entry is never bound.
    LabelNeverBound {
        /// The label.
        label: Label,
    },
    /// A use that no definition reaches on some path.
    UndefinedUse {
        /// The virtual register.
        vreg: VReg,
        /// The operand index.
        operand: u16,
    },
    /// The target (or the pseudo-instruction's rules) rejects the operands.
    Operands(FactsError),
    /// An operand names an entity the function does not have.
    UnknownEntity {
        /// The operand index.
        operand: u16,
        /// What kind of entity.
        what: &'static str,
    },
    /// `entry` is not the first instruction (label binds aside), or appears twice.
    EntryMisplaced,
    /// The number of arguments or results does not match the signature.
    SignatureCount {
        /// What the signature says.
        expected: usize,
        /// What the instruction has.
        found: usize,
    },
    /// An argument or result's register class does not match its type.
    SignatureClass {
        /// The operand index.
        operand: u16,
        /// The signature's type.
        expected: ValType,
    },
    /// A fixed operand's register class differs from its virtual register's.
    FixedClass {
        /// The operand index.
        operand: u16,
    },
    /// The block ending here falls off the end of the function.
    FallsOffEnd,
    /// A register is pinned twice, or a virtual register is pinned to two registers.
    PinConflict {
        /// The register.
        preg: PReg,
    },
    /// A call clobbers a pinned register (its convention does not preserve it).
    PinClobbered {
        /// The register.
        preg: PReg,
    },
}

/// One verifier error.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifyError {
    /// The instruction (its index), if the error has a position.
    pub inst: Option<Inst>,
    /// What is wrong.
    pub kind: VerifyErrorKind,
}

impl fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyErrorKind::LabelBoundTwice { label, first } => write!(
                f,
                "label {} bound twice (first at instruction {})",
                label.index(),
                first.index()
            ),
            VerifyErrorKind::LabelNeverBound { label } => {
                write!(f, "label {} is never bound", label.index())
            }
            VerifyErrorKind::UndefinedUse { vreg, operand } => write!(
                f,
                "operand {operand}: virtual register {} may be used before any definition",
                vreg.index()
            ),
            VerifyErrorKind::Operands(e) => write!(f, "{e}"),
            VerifyErrorKind::UnknownEntity { operand, what } => {
                write!(f, "operand {operand}: unknown {what}")
            }
            VerifyErrorKind::EntryMisplaced => {
                f.write_str("entry must be the first instruction (after label binds), once")
            }
            VerifyErrorKind::SignatureCount { expected, found } => {
                write!(f, "signature expects {expected} values, found {found}")
            }
            VerifyErrorKind::SignatureClass { operand, expected } => {
                write!(
                    f,
                    "operand {operand}: register class does not fit type {expected}"
                )
            }
            VerifyErrorKind::FixedClass { operand } => {
                write!(f, "operand {operand}: fixed register of another class")
            }
            VerifyErrorKind::FallsOffEnd => {
                f.write_str("control falls off the end of the function")
            }
            VerifyErrorKind::PinConflict { preg } => {
                write!(f, "conflicting pins of {}{}", preg.class, preg.hw)
            }
            VerifyErrorKind::PinClobbered { preg } => {
                write!(f, "call clobbers pinned register {}{}", preg.class, preg.hw)
            }
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inst {
            Some(i) => write!(f, "instruction {}: {}", i.index(), self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies `func`; returns all errors found, in instruction order per check.
pub fn verify(func: &Function, target: &dyn Target) -> Result<(), Vec<VerifyError>> {
    let cfg = Cfg::of(func, target);
    verify_with_cfg(func, target, &cfg)
}

/// Verifies `func` with its already computed CFG.
pub fn verify_with_cfg(
    func: &Function,
    target: &dyn Target,
    cfg: &Cfg,
) -> Result<(), Vec<VerifyError>> {
    let mut errs = Vec::new();
    let mut facts = InstFacts::default();
    let mut bound: Vec<Option<Inst>> = vec![None; func.num_labels()];
    let mut needs_bind: Vec<Option<Inst>> = vec![None; func.num_labels()];
    let mut acc: Vec<crate::facts::VRegAccess> = Vec::with_capacity(func.num_insts() * 2);
    let mut acc_off: Vec<u32> = Vec::with_capacity(func.num_insts() + 1);
    let err = |errs: &mut Vec<VerifyError>, i: Inst, kind| {
        errs.push(VerifyError {
            inst: Some(i),
            kind,
        })
    };
    let pins = func.pins();
    for (k, &(v, p)) in pins.iter().enumerate() {
        if func.get_vreg(v).is_none() {
            errs.push(VerifyError {
                inst: None,
                kind: VerifyErrorKind::UnknownEntity {
                    operand: 0,
                    what: "pinned virtual register",
                },
            });
        } else if pins[..k].iter().any(|&(w, q)| w == v || q == p) {
            errs.push(VerifyError {
                inst: None,
                kind: VerifyErrorKind::PinConflict { preg: p },
            });
        }
    }
    for i in func.insts() {
        acc_off.push(acc.len() as u32);
        let kind = func.kind(i);
        let ops = func.operands(i);
        // Entities.
        let mut entities_ok = true;
        for (k, op) in ops.iter().enumerate() {
            if let Some(what) = bad_entity(func, op) {
                err(
                    &mut errs,
                    i,
                    VerifyErrorKind::UnknownEntity {
                        operand: k as u16,
                        what,
                    },
                );
                entities_ok = false;
            }
        }
        match kind {
            InstKind::Bind(l) => match bound.get_mut(l.index()) {
                None => {
                    err(
                        &mut errs,
                        i,
                        VerifyErrorKind::UnknownEntity {
                            operand: 0,
                            what: "label",
                        },
                    );
                    entities_ok = false;
                }
                Some(Some(first)) => err(
                    &mut errs,
                    i,
                    VerifyErrorKind::LabelBoundTwice {
                        label: l,
                        first: *first,
                    },
                ),
                Some(b) => *b = Some(i),
            },
            InstKind::Entry if !only_binds_before(func, i) => {
                err(&mut errs, i, VerifyErrorKind::EntryMisplaced)
            }
            InstKind::Call(c) | InstKind::TailJump(c)
                if c.index() >= func.num_calls()
                    || func.get_sig_ref(func.call_data(c).sig).is_none() =>
            {
                err(
                    &mut errs,
                    i,
                    VerifyErrorKind::UnknownEntity {
                        operand: 0,
                        what: "call signature",
                    },
                );
                entities_ok = false;
            }
            InstKind::JumpIndirect(t) => {
                if let Some(t) = t.expand() {
                    if t.index() >= func.num_jump_tables() {
                        err(
                            &mut errs,
                            i,
                            VerifyErrorKind::UnknownEntity {
                                operand: 0,
                                what: "jump table",
                            },
                        );
                        entities_ok = false;
                    } else {
                        for &l in func.jump_table(t) {
                            mark_use(&mut needs_bind, l, i);
                        }
                    }
                }
            }
            _ => {}
        }
        if !entities_ok {
            continue;
        }
        // Operand facts.
        match func.inst_facts(target, i, &mut facts) {
            Err(e) => err(&mut errs, i, VerifyErrorKind::Operands(e)),
            Ok(()) if facts.ops.len() != ops.len() => err(
                &mut errs,
                i,
                VerifyErrorKind::Operands(FactsError::OperandCount {
                    expected: facts.ops.len(),
                    found: ops.len(),
                }),
            ),
            Ok(()) => {
                func.vreg_accesses(i, &facts, |a| acc.push(a));
                if facts.flow == Flow::Call {
                    for &(_, p) in pins {
                        if facts.clobbers.contains(p) {
                            err(&mut errs, i, VerifyErrorKind::PinClobbered { preg: p });
                        }
                    }
                }
                if matches!(facts.flow, Flow::Jump | Flow::CondBranch) {
                    for op in ops {
                        if let Operand::Label(l) = *op {
                            mark_use(&mut needs_bind, l, i);
                        }
                    }
                }
            }
        }
        for (k, op) in ops.iter().enumerate() {
            if let Operand::Fixed(v, p) = *op
                && func.get_vreg(v).is_some_and(|d| d.class != p.class)
            {
                err(
                    &mut errs,
                    i,
                    VerifyErrorKind::FixedClass { operand: k as u16 },
                );
            }
        }
        check_signature(func, target, i, &mut errs);
    }
    for (l, use_at) in needs_bind.iter().enumerate() {
        if let (Some(at), None) = (use_at, bound[l]) {
            errs.push(VerifyError {
                inst: Some(*at),
                kind: VerifyErrorKind::LabelNeverBound {
                    label: Label::new(l),
                },
            });
        }
    }
    if let Some(b) = cfg.falls_off_end() {
        let end = cfg.insts(b, func).end;
        errs.push(VerifyError {
            inst: Some(Inst::new(end.saturating_sub(1))),
            kind: VerifyErrorKind::FallsOffEnd,
        });
    }
    acc_off.push(acc.len() as u32);
    check_defs(func, cfg, &acc, &acc_off, &mut errs);
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Whether only label binds precede `i` (the function's own label may be
/// bound before its entry).
fn only_binds_before(func: &Function, i: Inst) -> bool {
    (0..i.index()).all(|k| matches!(func.kind(Inst::new(k)), InstKind::Bind(_)))
}

fn mark_use(needs: &mut [Option<Inst>], l: Label, i: Inst) {
    if let Some(slot) = needs.get_mut(l.index())
        && slot.is_none()
    {
        *slot = Some(i);
    }
}

fn bad_entity(func: &Function, op: &Operand) -> Option<&'static str> {
    let reg_ok = |r: Reg| match r {
        Reg::Virt(v, _) => func.get_vreg(v).is_some(),
        Reg::Phys(..) => true,
    };
    match *op {
        Operand::Reg(r) => (!reg_ok(r)).then_some("virtual register"),
        Operand::Fixed(v, _) => func.get_vreg(v).is_none().then_some("virtual register"),
        Operand::Label(l) => (l.index() >= func.num_labels()).then_some("label"),
        Operand::Imm(_) => None,
        Operand::Mem(m) => {
            if !m.regs().all(reg_ok) {
                return Some("virtual register");
            }
            match m.base {
                MemBase::Slot(s) if s.index() >= func.stack_slots().len() => Some("stack slot"),
                MemBase::Const(c) if c.index() >= func.num_constants() => Some("constant"),
                MemBase::Label(l) if l.index() >= func.num_labels() => Some("label"),
                MemBase::JumpTable(j) if j.index() >= func.num_jump_tables() => Some("jump table"),
                _ => None,
            }
        }
    }
}

fn class_fits(func: &Function, op: &Operand, t: ValType) -> bool {
    let class = match *op {
        Operand::Reg(Reg::Virt(v, _)) | Operand::Fixed(v, _) => func.vreg(v).class,
        Operand::Reg(Reg::Phys(p, _)) => p.class,
        _ => return true,
    };
    class == t.class()
}

fn check_signature(func: &Function, target: &dyn Target, i: Inst, errs: &mut Vec<VerifyError>) {
    if func.frame.is_some() {
        return; // lowered: operands are ABI locations, not signature values
    }
    // The values results and arguments carry: an i64 in 32-bit mode is
    // two i32 halves.
    let results = |sig: &Signature| match target.call_conv(sig.conv) {
        Some(conv) => crate::abi::ret_operand_types(conv, &sig.rets),
        None => sig.rets.clone(),
    };
    let params = |sig: &Signature| match target.call_conv(sig.conv) {
        Some(conv) => crate::abi::arg_operand_types(conv, &sig.params),
        None => sig.params.iter().copied().collect(),
    };
    let mut check = |vals: &[Operand], types: &[ValType], varargs: bool, first: usize| {
        let count_ok = if varargs {
            vals.len() >= types.len()
        } else {
            vals.len() == types.len()
        };
        if !count_ok {
            errs.push(VerifyError {
                inst: Some(i),
                kind: VerifyErrorKind::SignatureCount {
                    expected: types.len(),
                    found: vals.len(),
                },
            });
            return;
        }
        for (k, (v, &t)) in vals.iter().zip(types).enumerate() {
            if !class_fits(func, v, t) {
                errs.push(VerifyError {
                    inst: Some(i),
                    kind: VerifyErrorKind::SignatureClass {
                        operand: (first + k) as u16,
                        expected: t,
                    },
                });
            }
        }
    };
    match func.kind(i) {
        InstKind::Entry => check(func.operands(i), &params(&func.sig), false, 0),
        InstKind::Ret => check(func.operands(i), &results(&func.sig), false, 0),
        InstKind::Call(_) | InstKind::TailJump(_) => {
            if let Some((c, _, args, rets)) = func.call_parts(i) {
                let sig = func.sig_ref(func.call_data(c).sig);
                check(args, &params(sig), sig.varargs, 1);
                if matches!(func.kind(i), InstKind::Call(_)) {
                    check(rets, &results(sig), false, 1 + args.len());
                }
            }
        }
        _ => {}
    }
}

fn check_defs(
    func: &Function,
    cfg: &Cfg,
    acc: &[crate::facts::VRegAccess],
    acc_off: &[u32],
    errs: &mut Vec<VerifyError>,
) {
    let nv = func.num_vregs();
    let nb = cfg.num_blocks();
    if nb == 0 {
        return;
    }
    let accesses = |k: usize| &acc[acc_off[k] as usize..acc_off[k + 1] as usize];
    let mut pinned = FixedBitSet::with_capacity(nv);
    for &(v, _) in func.pins() {
        if v.index() < nv {
            pinned.insert(v.index());
        }
    }
    let full = {
        let mut f = FixedBitSet::with_capacity(nv);
        f.insert_range(..);
        f
    };
    // Per block: vregs defined by the block itself.
    let mut gen_sets: Vec<FixedBitSet> = Vec::with_capacity(nb);
    for b in cfg.blocks() {
        let mut g = FixedBitSet::with_capacity(nv);
        for k in cfg.insts(b, func) {
            for a in accesses(k) {
                if a.access.writes() {
                    g.insert(a.vreg.index());
                }
            }
        }
        gen_sets.push(g);
    }
    let entry = cfg.rpo().first().copied();
    let is_root = |b: Block| Some(b) == entry || cfg.preds(b).iter().all(|p| !cfg.is_reachable(*p));
    let mut ins: Vec<FixedBitSet> = vec![full.clone(); nb];
    let mut outs: Vec<FixedBitSet> = vec![full.clone(); nb];
    let mut changed = true;
    let mut tmp = FixedBitSet::with_capacity(nv);
    while changed {
        changed = false;
        for &b in cfg.rpo() {
            let bi = b.index();
            if Some(b) == entry {
                tmp.clone_from(&pinned);
            } else if is_root(b) {
                tmp.clone_from(&full);
            } else {
                tmp.clone_from(&full);
                for p in cfg.preds(b) {
                    if cfg.is_reachable(*p) {
                        tmp.intersect_with(&outs[p.index()]);
                    }
                }
            }
            ins[bi].clone_from(&tmp);
            tmp.union_with(&gen_sets[bi]);
            if tmp != outs[bi] {
                outs[bi].clone_from(&tmp);
                changed = true;
            }
        }
    }
    for &b in cfg.rpo() {
        let cur = &mut ins[b.index()];
        for k in cfg.insts(b, func) {
            let i = Inst::new(k);
            for a in accesses(k) {
                if (a.access.reads() || a.in_address) && !cur.contains(a.vreg.index()) {
                    errs.push(VerifyError {
                        inst: Some(i),
                        kind: VerifyErrorKind::UndefinedUse {
                            vreg: a.vreg,
                            operand: a.operand,
                        },
                    });
                    // Report each vreg once per path.
                    cur.insert(a.vreg.index());
                }
            }
            for a in accesses(k) {
                if a.access.writes() {
                    cur.insert(a.vreg.index());
                }
            }
        }
    }
}
