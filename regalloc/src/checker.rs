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
//! entry and return instructions (checked as such), and nothing survives in
//! a clobbered register.
//!
//! Callee-saved registers: at entry each holds a symbolic value of its own,
//! "the entry value of p", which flows through moves, swaps and joins like
//! any value. At every return, each callee-saved register must still hold
//! its entry value unless [`Output::used_callee_saved`] reports it (then the
//! frame saves and restores it). So a write the report misses is caught, and
//! so is any path that loses the value.
//!
//! Stack alignment at calls: the allocator never moves the stack pointer;
//! what it controls of the frame is the spill area's size. When the
//! function declares its [`Function::frame_layout`], the checker proves
//! that the stack is aligned at every call given the saved registers and
//! [`Output::spill_area_size`], and that every slot lies inside the area.

use crate::function::{
    Block, Constraint, Function, Inst, MachineEnv, OperandKind, OperandPos, PReg,
};
use crate::output::{Allocation, Edit, Output, ProgPoint};
use core::fmt;

const UNKNOWN: u32 = u32::MAX;
/// Abstract values from here up are "the entry value of register p"
/// (`ENTRY + p.index()`); virtual registers are numbered below.
const ENTRY: u32 = 0x8000_0000;

/// How a checker state names the value `x` in messages.
fn value_name(x: u32) -> String {
    if x == UNKNOWN {
        "unknown".to_string()
    } else if x >= ENTRY {
        format!(
            "the entry value of {}",
            PReg::from_index((x - ENTRY) as usize)
        )
    } else {
        format!("v{x}")
    }
}

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
    if f.num_vregs() >= ENTRY as usize {
        return Err(err(None, "too many virtual registers to check"));
    }
    let ctx = Ctx {
        nslots: out.slots.len(),
    };
    let nloc = 96 + out.slots.len();
    check_frame(f, out)?;
    // Static checks per instruction.
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
                            m.bits() & (1 << r.hw) != 0 && env.allocatable.contains(r)
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
    for (k, (p, _)) in out.edits.iter().enumerate().rev() {
        let i = p.inst();
        if i.index() >= ni {
            return Err(err(None, "edit at an instruction out of range"));
        }
        if p.is_after() && (f.is_branch(i) || f.is_ret(i)) {
            return Err(err(Some(i), "edit after a branch or return"));
        }
        first_edit[i.index()] = k as u32;
    }
    // Callee-saved registers the frame does not save must come back intact.
    let kept_callee_saved: Vec<PReg> = env
        .callee_saved
        .iter()
        .filter(|&p| !out.used_callee_saved.contains(p))
        .collect();
    // Edge splits sorted by source block, for lookup.
    let mut split_order: Vec<u32> = (0..out.edge_splits.len() as u32).collect();
    split_order.sort_by_key(|&k| out.edge_splits[k as usize].from);
    // Dataflow.
    let mut state_in: Vec<Option<Vec<u32>>> = vec![None; nb];
    let entry = f.entry_block();
    let mut entry_state = vec![UNKNOWN; nloc];
    for p in env.callee_saved.iter() {
        entry_state[p.index()] = ENTRY + p.index() as u32;
    }
    state_in[entry.index()] = Some(entry_state);
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
            while k < out.edits.len() && out.edits[k].0 == ProgPoint::before(i) {
                ctx.apply_edit(f, &mut st, &out.edits[k].1, Some(i))?;
                k += 1;
            }
            let ops = f.inst_operands(i);
            let al = out.inst_allocs(i);
            for (op, &a) in ops.iter().zip(al) {
                if op.is_use() {
                    let l = ctx.loc(a, Some(i))?;
                    if st[l] != op.vreg.0 {
                        return Err(err(
                            Some(i),
                            format!(
                                "use of {} in {a} which holds {} (in {b})",
                                op.vreg,
                                value_name(st[l])
                            ),
                        ));
                    }
                }
            }
            if f.is_ret(i) {
                for &p in &kept_callee_saved {
                    let x = st[p.index()];
                    if x != ENTRY + p.index() as u32 {
                        return Err(err(
                            Some(i),
                            format!(
                                "callee-saved {p} holds {} at the return, not its entry \
                                 value, and is not reported as used (in {b})",
                                value_name(x)
                            ),
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
            while k < out.edits.len() && out.edits[k].0 == ProgPoint::after(i) {
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

/// The frame facts the allocator controls: every slot inside the spill
/// area and, when the function declares its frame, the stack aligned at
/// every call.
fn check_frame<F: Function>(f: &F, out: &Output) -> Result<(), CheckError> {
    for (k, sl) in out.slots.iter().enumerate() {
        if sl
            .offset
            .checked_add(sl.size)
            .is_none_or(|end| end > out.spill_area_size)
        {
            return Err(err(
                None,
                format!(
                    "slot {k} lies outside the {}-byte spill area",
                    out.spill_area_size
                ),
            ));
        }
    }
    let Some(frame) = f.frame_layout() else {
        return Ok(());
    };
    if !frame.call_align.is_power_of_two() {
        return Err(err(
            None,
            "frame layout: call alignment is not a power of two",
        ));
    }
    let depth = frame
        .depth_at_calls(out.used_callee_saved, out.spill_area_size)
        .ok_or_else(|| err(None, "frame size overflows"))?;
    let off = depth & (frame.call_align - 1);
    if off != 0
        && let Some(i) = (0..f.num_insts()).map(Inst::new).find(|&i| f.is_call(i))
    {
        return Err(err(
            Some(i),
            format!(
                "stack misaligned by {off} bytes at a call ({depth} bytes below the \
                     {}-byte boundary: spill area {}, saved {:?})",
                frame.call_align, out.spill_area_size, out.used_callee_saved
            ),
        ));
    }
    Ok(())
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
