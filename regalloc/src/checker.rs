//! The checker: a symbolic proof that an allocation is right.
//!
//! After the edits are inserted, the checker runs a forward dataflow over
//! abstract machine states: for every location (register or spill slot),
//! which virtual register it holds, or "unknown". Moves copy the abstract
//! value, swaps exchange, rematerialization writes its value, clobbers make
//! registers unknown, and a definition of `v` writes `v` to its location and
//! makes every other location that held the old `v` unknown (the input is not
//! SSA). At control-flow joins the states meet (disagreement becomes
//! unknown), iterated to a fixed point. Each use must find its virtual
//! register in its location on every path.
//!
//! Alongside, per instruction: every operand has a location that satisfies
//! its constraint (fixed register, subset, reuse, memory only where allowed,
//! at most one memory operand), early defs share no register with uses,
//! late defs none with each other or with late uses; and the ABI facts the
//! allocator controls: arguments and results are fixed constraints of the
//! entry and return instructions (checked as such), nothing survives in a
//! clobbered register, and every callee-saved register the code writes is
//! reported in [`Output::used_callee_saved`] so the frame saves it. Stack
//! alignment at calls is the frame builder's business (the allocator never
//! moves the stack pointer) and is checked there.

use crate::function::{Block, Constraint, Function, Inst, MachineEnv, OperandKind, OperandPos};
use crate::output::{Allocation, Edit, Output, ProgPoint};
use core::fmt;

const UNKNOWN: u32 = u32::MAX;

/// What the checker found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// The instruction concerned, if any.
    pub inst: Option<Inst>,
    /// Description.
    pub msg: String,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inst {
            Some(i) => write!(f, "{i}: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for CheckError {}

fn err(inst: Option<Inst>, msg: impl Into<String>) -> CheckError {
    CheckError {
        inst,
        msg: msg.into(),
    }
}

struct Ctx {
    nslots: usize,
}

impl Ctx {
    fn loc(&self, a: Allocation, inst: Option<Inst>) -> Result<usize, CheckError> {
        match a {
            Allocation::Reg(r) if r.hw < 32 => Ok(r.index()),
            Allocation::Stack(s) if s.index() < self.nslots => Ok(96 + s.index()),
            _ => Err(err(inst, format!("bad location {a}"))),
        }
    }

    fn apply_edit<F: Function>(
        &self,
        f: &F,
        st: &mut [u32],
        e: &Edit,
        inst: Option<Inst>,
    ) -> Result<(), CheckError> {
        match *e {
            Edit::Move { from, to, .. } => {
                if matches!((from, to), (Allocation::Stack(_), Allocation::Stack(_))) {
                    return Err(err(inst, "slot-to-slot move"));
                }
                let (a, b) = (self.loc(from, inst)?, self.loc(to, inst)?);
                st[b] = st[a];
            }
            Edit::Swap { a, b } => {
                let (a, b) = (
                    self.loc(Allocation::Reg(a), inst)?,
                    self.loc(Allocation::Reg(b), inst)?,
                );
                st.swap(a, b);
            }
            Edit::Remat { vreg, to } => {
                if vreg.index() >= f.num_vregs() || !f.is_remat(vreg) {
                    return Err(err(inst, format!("remat of non-rematerializable {vreg}")));
                }
                let b = self.loc(Allocation::Reg(to), inst)?;
                st[b] = vreg.0;
            }
        }
        Ok(())
    }
}

/// Checks `out` as an allocation of `f` on `env`.
pub fn check<F: Function>(f: &F, env: &MachineEnv, out: &Output) -> Result<(), CheckError> {
    let ni = f.num_insts();
    let nb = f.num_blocks();
    if out.inst_alloc_offsets.len() != ni + 1
        || out.inst_alloc_offsets.windows(2).any(|w| w[0] > w[1])
        || out.inst_alloc_offsets.last().map(|&n| n as usize) != Some(out.allocs.len())
    {
        return Err(err(None, "allocation table has the wrong shape"));
    }
    let ctx = Ctx {
        nslots: out.slots.len(),
    };
    let nloc = 96 + out.slots.len();
    // Static checks per instruction.
    let mut written: u128 = 0;
    for ii in 0..ni {
        let i = Inst::new(ii);
        let ops = f.inst_operands(i);
        let al = out.inst_allocs(i);
        if al.len() != ops.len() {
            return Err(err(Some(i), "operand count mismatch"));
        }
        let mut stack_ops = 0;
        for (k, (op, &a)) in ops.iter().zip(al).enumerate() {
            let class = f.vreg_class(op.vreg);
            match a {
                Allocation::None => return Err(err(Some(i), format!("operand {k} unallocated"))),
                Allocation::Stack(s) => {
                    stack_ops += 1;
                    if op.constraint != Constraint::Any {
                        return Err(err(
                            Some(i),
                            format!("operand {k} in memory but must be a register"),
                        ));
                    }
                    if s.index() >= out.slots.len() {
                        return Err(err(Some(i), "slot out of range"));
                    }
                }
                Allocation::Reg(r) => {
                    if r.class != class {
                        return Err(err(Some(i), format!("operand {k} in {r} of another class")));
                    }
                    let ok = match op.constraint {
                        Constraint::Fixed(p) => r == p,
                        Constraint::Subset(m) => {
                            m & (1 << r.hw) != 0 && env.allocatable.contains(r)
                        }
                        Constraint::Reuse(u) => al.get(u as usize) == Some(&a),
                        Constraint::Reg | Constraint::Any => env.allocatable.contains(r),
                    };
                    if !ok {
                        return Err(err(
                            Some(i),
                            format!("operand {k} in {r} breaks {:?}", op.constraint),
                        ));
                    }
                    if op.is_def() {
                        written |= 1u128 << r.index();
                    }
                }
            }
        }
        if stack_ops > 1 {
            return Err(err(Some(i), "more than one memory operand"));
        }
        // Register sharing rules.
        for (k, (a, &la)) in ops.iter().zip(al).enumerate() {
            let Some(ra) = la.as_reg() else { continue };
            for (j, (b, &lb)) in ops.iter().zip(al).enumerate() {
                if j == k || lb.as_reg() != Some(ra) {
                    continue;
                }
                let early_def = a.kind == OperandKind::Def && a.pos == OperandPos::Early;
                let reuse_pair = matches!(a.constraint, Constraint::Reuse(u) if u as usize == j)
                    || matches!(b.constraint, Constraint::Reuse(u) if u as usize == k);
                if early_def && (b.is_use() || b.is_def()) && !reuse_pair {
                    return Err(err(Some(i), format!("early def shares {ra}")));
                }
                if a.is_def() && b.is_def() {
                    return Err(err(Some(i), format!("two defs in {ra}")));
                }
                if a.is_def()
                    && b.kind == OperandKind::Use
                    && b.pos == OperandPos::Late
                    && !reuse_pair
                {
                    return Err(err(Some(i), format!("def overwrites late use in {ra}")));
                }
                if a.kind == OperandKind::Modify && b.is_use() && b.vreg != a.vreg {
                    return Err(err(
                        Some(i),
                        format!("modify shares {ra} with another value"),
                    ));
                }
            }
        }
    }
    // Edit order and placement.
    for w in out.edits.windows(2) {
        if w[0].0 > w[1].0 {
            return Err(err(Some(w[1].0.inst()), "edits out of order"));
        }
    }
    let mut first_edit = vec![u32::MAX; ni + 1];
    for (k, (p, e)) in out.edits.iter().enumerate().rev() {
        let i = p.inst();
        if i.index() >= ni {
            return Err(err(None, "edit at an instruction out of range"));
        }
        if matches!(p, ProgPoint::After(_)) && (f.is_branch(i) || f.is_ret(i)) {
            return Err(err(Some(i), "edit after a branch or return"));
        }
        first_edit[i.index()] = k as u32;
        written |= edit_written(e);
    }
    for s in &out.edge_splits {
        for e in &s.edits {
            written |= edit_written(e);
        }
    }
    let cs_written = written & env.callee_saved.0;
    if cs_written & !out.used_callee_saved.0 != 0 {
        return Err(err(None, "callee-saved register written but not reported"));
    }
    // Edge splits sorted by source block, for lookup.
    let mut split_order: Vec<u32> = (0..out.edge_splits.len() as u32).collect();
    split_order.sort_by_key(|&k| out.edge_splits[k as usize].from);
    // Dataflow.
    let mut state_in: Vec<Option<Vec<u32>>> = vec![None; nb];
    let entry = f.entry_block();
    state_in[entry.index()] = Some(vec![UNKNOWN; nloc]);
    let mut work = vec![entry];
    let mut queued = vec![false; nb];
    queued[entry.index()] = true;
    let mut st = vec![UNKNOWN; nloc];
    let mut st2 = vec![UNKNOWN; nloc];
    while let Some(b) = work.pop() {
        queued[b.index()] = false;
        st.copy_from_slice(
            state_in[b.index()]
                .as_ref()
                .expect("queued blocks have a state"),
        );
        let r = f.block_insts(b);
        for i in r.iter() {
            // Edits are sorted, so those of `i` are contiguous from first_edit[i].
            let mut k = first_edit[i.index()] as usize;
            while k < out.edits.len() && out.edits[k].0 == ProgPoint::Before(i) {
                ctx.apply_edit(f, &mut st, &out.edits[k].1, Some(i))?;
                k += 1;
            }
            let ops = f.inst_operands(i);
            let al = out.inst_allocs(i);
            for (op, &a) in ops.iter().zip(al) {
                if op.is_use() {
                    let l = ctx.loc(a, Some(i))?;
                    if st[l] != op.vreg.0 {
                        let held = if st[l] == UNKNOWN {
                            "unknown".to_string()
                        } else {
                            format!("v{}", st[l])
                        };
                        return Err(err(
                            Some(i),
                            format!("use of {} in {a} which holds {held} (in {b})", op.vreg),
                        ));
                    }
                }
            }
            for r in f.inst_clobbers(i).iter() {
                st[r.index()] = UNKNOWN;
            }
            for op in ops {
                if op.is_def() {
                    for x in st.iter_mut() {
                        if *x == op.vreg.0 {
                            *x = UNKNOWN;
                        }
                    }
                }
            }
            for (op, &a) in ops.iter().zip(al) {
                if op.is_def() {
                    let l = ctx.loc(a, Some(i))?;
                    st[l] = op.vreg.0;
                }
            }
            while k < out.edits.len() && out.edits[k].0 == ProgPoint::After(i) {
                ctx.apply_edit(f, &mut st, &out.edits[k].1, Some(i))?;
                k += 1;
            }
        }
        for &s in f.block_succs(b) {
            st2.copy_from_slice(&st);
            for sp in splits_from(&out.edge_splits, &split_order, b).filter(|e| e.to == s) {
                for e in &sp.edits {
                    ctx.apply_edit(f, &mut st2, e, None)?;
                }
            }
            let changed = match &mut state_in[s.index()] {
                None => {
                    state_in[s.index()] = Some(st2.clone());
                    true
                }
                Some(old) => {
                    let mut ch = false;
                    for (o, &n) in old.iter_mut().zip(st2.iter()) {
                        if *o != n && *o != UNKNOWN {
                            *o = UNKNOWN;
                            ch = true;
                        }
                    }
                    ch
                }
            };
            if changed && !queued[s.index()] {
                queued[s.index()] = true;
                work.push(s);
            }
        }
    }
    Ok(())
}

fn edit_written(e: &Edit) -> u128 {
    match *e {
        Edit::Move {
            to: Allocation::Reg(r),
            ..
        } => 1u128 << r.index(),
        Edit::Swap { a, b } => (1u128 << a.index()) | (1u128 << b.index()),
        Edit::Remat { to, .. } => 1u128 << to.index(),
        _ => 0,
    }
}

fn splits_from<'a>(
    splits: &'a [crate::output::EdgeSplit],
    order: &'a [u32],
    b: Block,
) -> impl Iterator<Item = &'a crate::output::EdgeSplit> + 'a {
    let start = order.partition_point(|&k| splits[k as usize].from < b);
    order[start..]
        .iter()
        .map(move |&k| &splits[k as usize])
        .take_while(move |s| s.from == b)
}
