//! The allocator for a function of one block without calls: two passes over
//! flat arrays instead of the general scan's machinery.
//!
//! Most functions a JIT compiles (expression evaluators, small helpers) are
//! one block. For them there are no edges to resolve, no loop headers and
//! no live sets, and the general scan's per-instruction bookkeeping (copies
//! in several registers, per-block boundary states, lazily computed plans)
//! is most of the allocation's cost. This module does the same job with
//! less:
//!
//! - one **backward pass** validates each instruction, records each
//!   operand's next use (and the fixed register of that use, as a hint)
//!   into a flat array in reverse order, and, when a class has more values
//!   than registers, the residency plan of [`crate::linear_scan`] (the
//!   same [`plan_step`], so eviction and memory-operand choices weigh the
//!   same costs);
//! - one **forward pass** over a register file (register → value) and a
//!   location per value (one register or none, and whether its slot is up
//!   to date): fixed operands first, then values already in a register,
//!   then the others farthest next use first, then defs. Under pressure it
//!   evicts the value whose eviction the plan says costs least (a value
//!   whose slot is current needs no store: Belady's rule weighted by cost),
//!   serves a spilled operand from its slot where the operand accepts
//!   memory and loading gains less than the eviction loses, stores a value
//!   once per definition, and recomputes constants instead of storing them.
//!
//! When every value of a class can have its own register besides the
//! fixed ones (a typical small function), even that is more than needed:
//! the **roomy** path skips next uses and the plan, keeps each value in the
//! register it is defined into (its first fixed use's, if free) until its
//! last mention, and allocates in one forward pass after a validating one
//! (which a client that gives the last mentions, see
//! [`Function::mentions`], spares).
//!
//! Anything it does not handle (several blocks, clobbers, late uses, early
//! defs, reuse constraints, fixed non-allocatable registers, a value named
//! twice with a fixed register, invalid input) makes [`Local::run`] return
//! false before any output is written, and [`crate::Allocator::run`] takes
//! the general path, which also reports the errors.

use crate::cfg;
use crate::function::{
    Constraint, Function, Inst, MachineEnv, Operand, OperandKind, OperandPos, PReg, RegClass, VReg,
};
use crate::interval::depth_weight;
use crate::linear_scan::{
    DUP, HOLD_COST, INF_POS, MISS_COST, NONE, OpFact, PLAN_NONE, Plan, REDEFINED, fixed_read_of,
    plan_step, unpack_gain,
};
use crate::log::{DecisionLog, Reason};
use crate::output::{Allocation, Edit, OptVReg, ProgPoint, SpillSlot, Stats};

/// Operands per instruction the local allocator handles (more: general path).
/// At most 8: [`Local::alloc_inst`] keeps an operand's index in 3 bits.
const MAX_OPS: usize = 8;
const _: () = assert!(MAX_OPS <= 8);
/// No register.
const NO_REG: u8 = 0xff;
/// [`OpFact::flags`] of an instruction's first operand: some operand of
/// the instruction has a fixed register (so that the forward pass looks
/// for them only there).
const FIXED_HERE: u8 = 4;

/// A value during the backward pass.
#[derive(Clone, Copy, Debug)]
struct Back {
    /// Position of its next use ([`INF_POS`]: none, or redefined first),
    /// which is also the next access of its plan.
    next_use: u32,
    /// The plan from just before that use (when the function needs one).
    plan: Plan,
    /// The fixed register of that use, or [`NO_REG`].
    hint: u8,
    /// The first position naming it, and one past the last (its hull, as
    /// `Intervals::compute_hulls` finds it).
    hull_start: u32,
    hull_end: u32,
}

const BACK_NONE: Back = Back {
    next_use: INF_POS,
    plan: PLAN_NONE,
    hint: NO_REG,
    hull_start: u32::MAX,
    hull_end: 0,
};

/// What the backward pass's table of facts is filled with before it
/// writes each operand's (all of them are written; zero bytes fill
/// cheapest).
const FACT_NONE: OpFact = OpFact {
    next: 0,
    gain: 0,
    drop_base: [0; 2],
    hint: 0,
    flags: 0,
};

/// A value during the forward pass.
#[derive(Clone, Copy, Debug)]
struct Value {
    /// Its register (hardware number in its class), or [`NO_REG`].
    reg: u8,
    class: RegClass,
    /// Whether its spill slot holds its current value.
    in_slot: bool,
    remat: bool,
    /// Position of its next use.
    next_use: u32,
    /// The plan's drop costs of its next access.
    drop_base: [u16; 2],
    /// Roomy functions: the register of its first fixed use, or [`NO_REG`].
    pref: u8,
    /// Roomy functions: the last instruction naming it.
    last: u32,
}

/// The local allocator's buffers (kept between functions).
#[derive(Default)]
pub struct Local {
    back: Vec<Back>,
    values: Vec<Value>,
    /// Per operand, in reverse instruction order (see [`Local::run`]).
    facts: Vec<OpFact>,
    /// Whether the backward pass of this function noted each vreg's hull
    /// (see [`Local::take_hulls`]).
    pub(crate) hulls: bool,
    /// Register (class * 32 + hw) → value, or [`NONE`].
    owner: Vec<u32>,
    /// Register (class, hw) → what choosing a victim needs of its value
    /// (valid while occupied; see [`Local::sync_key`]).
    reg_keys: RegKeys,
    occupied: [u32; 3],
    allocatable: [u32; 3],
    callee_saved: [u32; 3],
    /// Whether the class has a register swap ([`MachineEnv::has_swap`]).
    has_swap: [bool; 3],
    /// Registers some operand of the function is fixed to, per class.
    fixed_anywhere: [u32; 3],
    /// Loop weight of the block (for the log).
    weight: u32,
    /// Loop depth of the block (for the slot weights).
    pub(crate) depth: u32,
    pub(crate) allocs: Vec<Allocation>,
    pub(crate) alloc_off: Vec<u32>,
    /// The indices in `allocs` of the operands given a stack slot (one per
    /// folded operand), so that slots are touched and renumbered without a
    /// pass over every allocation.
    pub(crate) stack_allocs: Vec<u32>,
    /// Edits with slots numbered by vreg.
    pub(crate) edits: Vec<(ProgPoint, Edit)>,
    pub(crate) stats: Stats,
    pub(crate) written: u128,
}

/// One instruction's state in the forward pass.
struct InstState {
    i: Inst,
    pos: u32,
    /// First fact of the instruction.
    fb: usize,
    /// Registers read at the early point, per class.
    pinned: [u32; 3],
    /// Registers written at the late point, per class.
    late: [u32; 3],
    /// Registers fixed by an operand, per class.
    fixed: [u32; 3],
    stack_used: bool,
    /// Whether some vreg is named by two operands.
    dup: bool,
}

/// What [`Local::victim`] needs of the value in an occupied register,
/// kept per register (so that choosing a victim reads small arrays rather
/// than each candidate's value). Evicted at position `p`, the value loses
/// `max(0, base - (next_use - p) * HOLD_COST)` = `max(0, loss_at_0 + p *
/// HOLD_COST)`, where `base` is the drop cost base that applies to it
/// (dirty or not) and `loss_at_0 = base - next_use * HOLD_COST`. Its key as
/// a candidate is `(LOSS_CAP - loss) << 31 | use_reg`, largest wins. The
/// fields are that key's parts that do not depend on `p`.
#[derive(Clone, Copy, Default)]
struct RegKey {
    /// Its [`Value::next_use`] with the register: `next_use << 5 | hw`
    /// (below `1 << 31`: positions are below `1 << 26`, see
    /// [`MAX_LOCAL_INSTS`]).
    use_reg: u64,
    /// `(LOSS_CAP - loss_at_0) << 31 | use_reg`: at `p`, `p * HOLD_COST <<
    /// 31` less is the key unclamped. The high part is below `(1 << 27) +
    /// (1 << 26) * HOLD_COST`, under `1 << 31`. The order of these is the
    /// order of the keys of the values that lose something, at any `p`; a
    /// value loses nothing at `p` when this is at least `(LOSS_CAP + p *
    /// HOLD_COST) << 31`.
    unclamped: u64,
}

/// The [`RegKey`]s of a register file, by class and hardware number (an
/// array: indexed by a class and a number below 32, it needs no bounds
/// check).
#[derive(Default)]
struct RegKeys([[RegKey; 32]; 3]);

impl RegKeys {
    /// Sets the key of register `hw` of class `c`.
    #[inline(always)]
    fn set(&mut self, c: RegClass, hw: u8, key: RegKey) {
        self.0[c.index()][hw as usize & 31] = key;
    }
}

/// The largest `use_reg` of the registers of `regs` whose values lose
/// nothing when evicted (`unclamped` at least `clamp_at`, see [`RegKey`]):
/// [`Local::victim`]'s second look, when some do but not the farthest
/// (rare: not inlined).
#[inline(never)]
fn farthest_free(keys: &[RegKey; 32], regs: u32, clamp_at: u64) -> u64 {
    let mut far = 0u64;
    let mut m = regs;
    while m != 0 {
        let hw = m.trailing_zeros() as usize & 31;
        m &= m - 1;
        if keys[hw].unclamped >= clamp_at {
            far = far.max(keys[hw].use_reg);
        }
    }
    far
}

/// Logs [`Local::evict`]'s eviction of `w` (next used at `n`) at the
/// instruction of `st` (not inlined: logging is for tests and tools).
#[cold]
#[inline(never)]
fn log_evict(log: &mut DecisionLog, st: &InstState, w: u32, n: u32, weight: u32, stored: bool) {
    let next_use = if n == INF_POS {
        u32::MAX
    } else {
        n.saturating_sub(st.pos) / 2
    };
    log.push(
        st.i,
        Some(VReg(w)),
        Reason::Evict {
            next_use,
            weight,
            stored,
        },
    );
}

/// The largest eviction loss a candidate key represents (27 bits).
const LOSS_CAP: u64 = (1 << 27) - 1;
/// The low bits of a 31-bit form key: [`RegKey::use_reg`].
const USE_REG_MASK: u64 = (1 << 31) - 1;

/// The [`RegKey`] of value `s`, in its register.
#[inline(always)]
fn reg_key(s: &Value) -> RegKey {
    let base = s.drop_base[!(s.in_slot | s.remat) as usize];
    let use_reg = (s.next_use as u64) << 5 | s.reg as u64;
    let loss_at_0 = base as i64 - s.next_use as i64 * HOLD_COST as i64;
    RegKey {
        use_reg,
        unclamped: ((LOSS_CAP as i64 - loss_at_0) as u64) << 31 | use_reg,
    }
}

/// Functions at least this long take the general path: in shorter ones
/// every finite next-use distance fits the general scan's 27-bit field of
/// the victim key, so [`Local::victim`] can order by next use unclamped.
const MAX_LOCAL_INSTS: usize = 1 << 25;

/// An eviction candidate.
#[derive(Clone, Copy)]
struct Victim {
    hw: u8,
    /// The farthest next-use distance among the candidates.
    far: u32,
    /// What evicting it costs by the plan.
    loss: u32,
}

/// Why the local allocator declines a function (the general path takes it).
struct Decline;

/// The instruction-level checks: few enough operands, a return or branch
/// only last, no clobbers (only the first when the client `vouched` for
/// the others, see [`Function::vouched`]). Returns whether some vreg is
/// named twice.
#[inline(always)]
fn check_inst<F: Function>(
    f: &F,
    ii: usize,
    ops: &[Operand],
    vouched: bool,
) -> Result<bool, Decline> {
    check_flow(f, ii, ops, vouched)?;
    Ok(has_dup(ops))
}

/// [`check_inst`] but for the vregs named twice.
#[inline(always)]
fn check_flow<F: Function>(
    f: &F,
    ii: usize,
    ops: &[Operand],
    vouched: bool,
) -> Result<(), Decline> {
    let i = Inst::new(ii);
    if ops.len() > MAX_OPS {
        return Err(Decline);
    }
    let flow_or_clobbers = || {
        (ii + 1 < f.num_insts() && (f.is_ret(i) || f.is_branch(i)))
            || !f.inst_clobbers(i).is_empty()
    };
    if vouched {
        // Debug builds hold the client to its word.
        debug_assert!(
            !flow_or_clobbers(),
            "instruction {ii}: flow or clobbers not as vouched"
        );
    } else if flow_or_clobbers() {
        return Err(Decline);
    }
    Ok(())
}

/// Declines an instruction that defines a vreg twice (`cfg` rejects it).
fn check_dup_defs(ops: &[Operand]) -> Result<(), Decline> {
    for (k, op) in ops.iter().enumerate() {
        if op.is_def() && ops[..k].iter().any(|o| o.vreg == op.vreg && o.is_def()) {
            return Err(Decline);
        }
    }
    Ok(())
}

/// Whether some vreg is named by two of `ops`.
#[inline(always)]
fn has_dup(ops: &[Operand]) -> bool {
    match ops {
        [] | [_] => false,
        [a, b] => a.vreg == b.vreg,
        [a, b, c] => a.vreg == b.vreg || a.vreg == c.vreg || b.vreg == c.vreg,
        _ => (1..ops.len()).any(|k| ops[..k].iter().any(|o| o.vreg == ops[k].vreg)),
    }
}

fn lowest(mask: u32) -> u8 {
    mask.trailing_zeros() as u8
}

fn preg(class: u8, hw: u8) -> PReg {
    // Class indices are below 3; the padded table needs no bounds check.
    const CLASS_OF: [RegClass; 4] = [RegClass::Gp, RegClass::Vec, RegClass::Mask, RegClass::Mask];
    PReg::new(CLASS_OF[class as usize & 3], hw)
}

/// The state the fast case of a roomy function reads and changes, as
/// locals of [`Local::roomy_run`] (borrowed from [`Local`] once per run
/// of fast instructions, so that the loop keeps lengths, pointers and the
/// register masks in registers rather than reloading them through `self`).
struct RoomyFast<'a> {
    values: &'a mut [Value],
    owner: &'a mut [u32],
    occupied: [u32; 3],
    written: u128,
    allocatable: [u32; 3],
    callee_saved: [u32; 3],
    fixed_anywhere: [u32; 3],
}

impl RoomyFast<'_> {
    /// [`Local::roomy_inst`] for the common cases: no fixed register, every
    /// use in an allowed register, at most one def; or every operand fixed
    /// (an entry's arguments, a return's values) with nothing to move (see
    /// [`RoomyFast::all_fixed`]). The allocations go to `out` (one per
    /// operand). Returns false, having changed nothing but `out`,
    /// otherwise. `dup`: some vreg may be named twice (a fixed operand's
    /// value is then left to the slow case, which checks it).
    #[inline(always)]
    fn inst(
        &mut self,
        i: u32,
        ops: &[Operand],
        out: &mut [Allocation],
        dup: bool,
        log: &mut DecisionLog,
    ) -> bool {
        let n = ops.len().min(out.len());
        let mut def = usize::MAX;
        // Operands whose value is mentioned here for the last time.
        let mut leaving = 0u32;
        // Operands with a fixed register.
        let mut fixed = 0u32;
        for k in 0..n {
            let op = &ops[k];
            let Some(s) = self.values.get(op.vreg.index()) else {
                return false;
            };
            leaving |= u32::from(s.last == i) << k;
            // A value's register is always allocatable: only a subset can
            // exclude it. (The common constraints first, by one test of the
            // tag rather than a jump through a table.)
            let allowed = if matches!(op.constraint, Constraint::Reg | Constraint::Any) {
                u32::MAX
            } else {
                match op.constraint {
                    Constraint::Subset(m) => m.bits(),
                    Constraint::Fixed(_) => {
                        fixed |= 1 << k;
                        continue;
                    }
                    _ => return false,
                }
            };
            if op.kind == OperandKind::Def {
                if def != usize::MAX {
                    return false;
                }
                def = k;
                continue;
            }
            if s.reg == NO_REG || allowed & (1 << s.reg) == 0 {
                return false;
            }
            // (A modify writes the value's register, which its def or the
            // move that put it there wrote already: `written` has it.)
            out[k] = Allocation::Reg(PReg::new(s.class, s.reg));
        }
        if fixed != 0 {
            if dup || fixed != (1u32 << n) - 1 || !self.all_fixed(&ops[..n], &mut out[..n]) {
                return false;
            }
        } else if def != usize::MAX {
            match self.def(i, ops, def, log) {
                Some(r) => {
                    out[def] = Allocation::Reg(r);
                }
                None => return false,
            }
        }
        while leaving != 0 {
            let k = leaving.trailing_zeros() as usize;
            leaving &= leaving - 1;
            vacate(self.values, self.owner, &mut self.occupied, ops[k].vreg.0);
        }
        true
    }

    /// An instruction whose operands (in bounds, each named once) all have
    /// a fixed register, when [`Local::roomy_inst`] would move nothing:
    /// each use's value is in its register, each def's register is free
    /// (or its value's) and named by no other def, and every register is an
    /// allocatable one of the value's class (what [`Local::check_fixed`]
    /// checks of such an instruction, given plain operands). No modify.
    /// Returns false, having changed nothing but `out`, otherwise.
    #[inline(never)]
    fn all_fixed(&mut self, ops: &[Operand], out: &mut [Allocation]) -> bool {
        let mut late = [0u32; 3];
        for (op, a) in ops.iter().zip(out.iter_mut()) {
            let (Constraint::Fixed(p), Some(s)) = (op.constraint, self.values.get(op.vreg.index()))
            else {
                return false;
            };
            let c = s.class.index();
            if p.class.index() != c || p.hw >= 32 || self.allocatable[c] & (1 << p.hw) == 0 {
                return false;
            }
            match op.kind {
                OperandKind::Use if s.reg == p.hw => {}
                OperandKind::Def => {
                    let w = self.owner[p.index()];
                    if w != NONE && w != op.vreg.0 || late[c] & (1 << p.hw) != 0 {
                        return false;
                    }
                    late[c] |= 1 << p.hw;
                }
                _ => return false,
            }
            *a = Allocation::Reg(p);
        }
        for op in ops {
            if let (OperandKind::Def, Constraint::Fixed(p)) = (op.kind, op.constraint) {
                let v = op.vreg.0;
                vacate(self.values, self.owner, &mut self.occupied, v);
                self.owner[p.index()] = v;
                self.occupied[p.class.index()] |= 1 << p.hw;
                self.values[v as usize].reg = p.hw;
                self.written |= 1u128 << p.index();
            }
        }
        true
    }

    /// The register of the def `ops[def]` in the fast case: its value's
    /// own (if allowed), its first fixed use's (if free), or a free one
    /// outside the instruction's modified registers; `None` when none is
    /// free.
    #[inline(always)]
    fn def(&mut self, i: u32, ops: &[Operand], def: usize, log: &mut DecisionLog) -> Option<PReg> {
        let op = ops[def];
        let v = op.vreg.0;
        let s = self.values[v as usize];
        let c = s.class.index();
        let mut allowed = match op.constraint {
            Constraint::Subset(m) => m.bits() & self.allocatable[c],
            _ => self.allocatable[c],
        };
        for o in ops {
            if o.kind == OperandKind::Modify {
                let w = self.values[o.vreg.index()];
                if w.class == s.class {
                    allowed &= !(1 << w.reg);
                }
            }
        }
        let hw = if s.reg != NO_REG && allowed & (1 << s.reg) != 0 {
            s.reg
        } else {
            let free = allowed & !self.occupied[c];
            if free == 0 {
                return None;
            }
            if s.pref < 32 && free & (1 << s.pref) != 0 {
                log.push(
                    Inst(i),
                    Some(op.vreg),
                    Reason::Hint(PReg::new(s.class, s.pref)),
                );
                s.pref
            } else {
                pick_free(free, self.callee_saved[c], self.fixed_anywhere[c])
            }
        };
        let r = PReg::new(s.class, hw);
        // The register was free (or the value's own), so a value leaving
        // its register here never frees one an operand takes.
        if s.reg != hw {
            self.written |= 1u128 << r.index();
            vacate(self.values, self.owner, &mut self.occupied, v);
            self.owner[c * 32 + hw as usize] = v;
            self.occupied[c] |= 1 << hw;
            self.values[v as usize].reg = hw;
        }
        Some(r)
    }
}

/// Takes value `v` out of its register, if it has one (`owner`: register
/// `class * 32 + hw` to value; `occupied`: per class, the registers with
/// a value).
#[inline(always)]
fn vacate(values: &mut [Value], owner: &mut [u32], occupied: &mut [u32; 3], v: u32) {
    let s = &mut values[v as usize];
    if s.reg != NO_REG {
        let (c, hw) = (s.class.index(), s.reg);
        s.reg = NO_REG;
        owner[c * 32 + hw as usize] = NONE;
        occupied[c] &= !(1 << hw);
    }
}

/// Sorts `keys` largest first (three or more: rare, not inlined).
#[inline(never)]
fn sort_descending(keys: &mut [u64]) {
    keys.sort_unstable_by(|a, b| b.cmp(a));
}

/// A free register of `free`: caller-saved (outside `callee_saved`) first
/// (nothing in a function of one block without calls crosses one), and
/// one no operand is fixed to (outside `fixed`) if possible.
fn pick_free(free: u32, callee_saved: u32, fixed: u32) -> u8 {
    let pref = free & !callee_saved;
    let pref = if pref != 0 { pref } else { free };
    let unfixed = pref & !fixed;
    lowest(if unfixed != 0 { unfixed } else { pref })
}

impl Local {
    /// Allocates `f`, a function of one block that ends in a return and
    /// has no clobbers, into the local buffers (`allocs`, `alloc_off`,
    /// `edits` with slots numbered by vreg, `stats`, `written`). Returns
    /// false, with no result, for anything it does not handle (see the
    /// module documentation), including invalid input.
    pub(crate) fn run<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        log: &mut DecisionLog,
    ) -> bool {
        let logged = log.entries.len();
        let done = self.try_run(f, env, log).is_ok();
        if !done {
            log.entries.truncate(logged);
        }
        done
    }

    /// Each vreg's hull from the backward pass (valid when
    /// [`Local::hulls`]), into `start` and `end` as
    /// `Intervals::compute_hulls` would compute them for this function.
    pub(crate) fn take_hulls(&self, start: &mut Vec<u32>, end: &mut Vec<u32>) {
        start.clear();
        start.extend(self.back.iter().map(|b| b.hull_start));
        end.clear();
        end.extend(self.back.iter().map(|b| b.hull_end));
    }

    /// Frees the buffers a large function grew (see
    /// [`crate::shed_if_large`]).
    pub(crate) fn shed_large_scratch(&mut self) {
        crate::shed_if_large(&mut self.facts);
        crate::shed_if_large(&mut self.back);
        crate::shed_if_large(&mut self.values);
        crate::shed_if_large(&mut self.allocs);
        crate::shed_if_large(&mut self.alloc_off);
        crate::shed_if_large(&mut self.stack_allocs);
        crate::shed_if_large(&mut self.edits);
    }

    fn try_run<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let ni = f.num_insts();
        let nv = f.num_vregs();
        self.hulls = false;
        if f.num_blocks() != 1 || f.entry_block().index() != 0 || ni == 0 {
            return Err(Decline);
        }
        let b = f.entry_block();
        let r = f.block_insts(b);
        if r.start.index() != 0
            || r.end.index() != ni
            || ni >= MAX_LOCAL_INSTS
            || !f.block_succs(b).is_empty()
            || !f.block_preds(b).is_empty()
            || !f.is_ret(Inst::new(ni - 1))
        {
            return Err(Decline);
        }
        self.depth = f.block_loop_depth(b).unwrap_or(0).min(64);
        self.weight = depth_weight(self.depth);
        let mut per_class = [0usize; 3];
        self.values.clear();
        for v in 0..nv {
            let class = f.vreg_class(VReg::new(v));
            per_class[class.index()] += 1;
            self.values.push(Value {
                reg: NO_REG,
                class,
                in_slot: false,
                remat: f.is_remat(VReg::new(v)),
                next_use: INF_POS,
                drop_base: [0; 2],
                pref: NO_REG,
                last: 0,
            });
        }
        for c in 0..3 {
            let class = RegClass::ALL[c];
            self.allocatable[c] = env.allocatable.class_mask(class);
            self.has_swap[c] = env.has_swap[c];
            self.callee_saved[c] = env.callee_saved.class_mask(class) & self.allocatable[c];
        }
        // With a register for every value, no next uses are needed.
        let fits = (0..3)
            .all(|c| per_class[c] == 0 || per_class[c] < self.allocatable[c].count_ones() as usize);
        if fits && self.roomy(f, &per_class, log)? {
            return Ok(());
        }
        // The plan only matters when a class may run out of registers.
        let plan = (0..3).any(|c| {
            per_class[c] > 0 && per_class[c] + 2 > self.allocatable[c].count_ones() as usize
        });
        self.backward(f, plan, self.vouched(f, &per_class))?;
        self.forward(f, log)
    }

    /// Roomy functions: when every value of a class can have its own
    /// register besides the fixed ones, each value keeps the register it is
    /// defined into (its first fixed use's if free) until its last mention,
    /// and nothing is ever spilled, so neither next uses nor the plan are
    /// needed: one forward pass validates (only fixed operands and bounds
    /// when the client vouches for the rest, see [`Function::vouched`])
    /// and notes each value's first fixed use and last mention, one
    /// allocates. A client that vouches and gives the mentions
    /// ([`Function::mentions`]) spares the first: the second checks each
    /// instruction as it reaches it. Fixed operands move values (and the
    /// value they displace) as in the general case.
    /// Returns false when the registers do not suffice after all (the
    /// caller takes the full local path).
    fn roomy<F: Function>(
        &mut self,
        f: &F,
        per_class: &[usize; 3],
        log: &mut DecisionLog,
    ) -> Result<bool, Decline> {
        let nv = f.num_vregs();
        let vouched = self.vouched(f, per_class);
        // The client's mentions (with its word for the rest) spare the
        // mention pass: each instruction is then checked as the forward
        // pass reaches it. Debug builds make the pass anyway and hold the
        // client to its mentions.
        let given = f.mentions().filter(|m| vouched && m.vregs.len() == nv);
        match given {
            Some(m) if !cfg!(debug_assertions) => {
                self.fixed_anywhere = m.fixed;
                for (s, g) in self.values.iter_mut().zip(m.vregs) {
                    s.last = g.last;
                    s.pref = g.first_fixed_use;
                }
            }
            _ => {
                self.mention_pass(f, vouched)?;
                if let Some(m) = given {
                    debug_assert_eq!(m.fixed, self.fixed_anywhere, "fixed registers");
                    for (v, (s, g)) in self.values.iter().zip(m.vregs).enumerate() {
                        debug_assert!(
                            s.last == g.last && s.pref == g.first_fixed_use,
                            "v{v}: mentions {g:?}, last {} first fixed use {}",
                            s.last,
                            s.pref
                        );
                    }
                }
            }
        }
        // One register more than values and fixed registers: a displaced
        // value always finds a free one.
        for c in 0..3 {
            let need = per_class[c] + self.fixed_anywhere[c].count_ones() as usize;
            if per_class[c] > 0 && need >= self.allocatable[c].count_ones() as usize {
                return Ok(false);
            }
        }
        if given.is_some() {
            self.roomy_forward::<F, true>(f, vouched, log)
        } else {
            self.roomy_forward::<F, false>(f, vouched, log)
        }
    }

    /// The allocating pass of [`Local::roomy`] (its own function, kept out
    /// of line: inlined into the mention pass, its loop lost its registers
    /// to the stack): runs of instructions the fast case takes
    /// ([`Local::roomy_run`]), and [`Local::roomy_slow`] for each other
    /// one. The allocations are written by index into `allocs`, sized for
    /// `MAX_OPS` per instruction and cut to what was written. `CHECK`: each
    /// instruction is checked here (the client's mentions spared the
    /// mention pass).
    #[inline(never)]
    fn roomy_forward<F: Function, const CHECK: bool>(
        &mut self,
        f: &F,
        vouched: bool,
        log: &mut DecisionLog,
    ) -> Result<bool, Decline> {
        let ni = f.num_insts();
        self.start_forward();
        self.alloc_off.resize(ni + 1, 0);
        // Room for every instruction's allocations, written by index and
        // cut to what was written at the end (no push and its capacity
        // check per operand).
        self.allocs.resize(ni * MAX_OPS, Allocation::None);
        let mut n = 0;
        let mut ii = self.roomy_run::<F, CHECK>(f, 0, &mut n, log)?;
        while ii < ni {
            let ops = f.inst_operands(Inst::new(ii));
            self.roomy_slow(f, ii, ops, CHECK, vouched, &mut n, log)?;
            ii = self.roomy_run::<F, CHECK>(f, ii + 1, &mut n, log)?;
        }
        self.allocs.truncate(n);
        Ok(true)
    }

    /// From instruction `from`, the instructions the fast case takes
    /// ([`RoomyFast::inst`]), their allocations from index `*n` of the
    /// room of `allocs` on (`*n` advanced past them). Returns
    /// the first instruction it does not take, or the count.
    #[inline(always)]
    fn roomy_run<F: Function, const CHECK: bool>(
        &mut self,
        f: &F,
        from: usize,
        n: &mut usize,
        log: &mut DecisionLog,
    ) -> Result<usize, Decline> {
        let ni = f.num_insts();
        let out = &mut self.allocs[..];
        let off = &mut self.alloc_off[..ni + 1];
        let mut fast = RoomyFast {
            values: &mut self.values,
            owner: &mut self.owner,
            occupied: self.occupied,
            written: self.written,
            allocatable: self.allocatable,
            callee_saved: self.callee_saved,
            fixed_anywhere: self.fixed_anywhere,
        };
        let mut at = *n;
        let mut ii = from;
        while ii < ni {
            let ops = f.inst_operands(Inst::new(ii));
            // With the client's mentions, what the fast case relies on is
            // checked here (it checks the bounds itself).
            if CHECK && ops.len() > MAX_OPS {
                return Err(Decline);
            }
            let dup = CHECK && has_dup(ops);
            if dup && check_dup_defs(ops).is_err() {
                return Err(Decline);
            }
            let Some(dst) = out.get_mut(at..at + ops.len()) else {
                return Err(Decline);
            };
            if !fast.inst(ii as u32, ops, dst, dup, log) {
                break;
            }
            at += ops.len();
            ii += 1;
            off[ii] = at as u32;
        }
        self.occupied = fast.occupied;
        self.written = fast.written;
        *n = at;
        Ok(ii)
    }

    /// An instruction of a roomy function the fast case does not take:
    /// checked first unless the mention pass did (`check`); its
    /// allocations go to index `*n` of the room of `allocs`.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn roomy_slow<F: Function>(
        &mut self,
        f: &F,
        ii: usize,
        ops: &[Operand],
        check: bool,
        vouched: bool,
        n: &mut usize,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        if check {
            self.check_roomy_inst(f, ii, ops, vouched)?;
        }
        let mut alloc = [Allocation::None; MAX_OPS];
        let alloc = alloc.get_mut(..ops.len()).ok_or(Decline)?;
        self.roomy_inst(Inst::new(ii), ops, alloc, log)?;
        let dst = self.allocs.get_mut(*n..*n + ops.len()).ok_or(Decline)?;
        dst.copy_from_slice(alloc);
        *n += ops.len();
        self.alloc_off[ii + 1] = *n as u32;
        Ok(())
    }

    /// The checks of a roomy function (see [`Local::check_roomy_inst`])
    /// and, per value, its last mention and first fixed use, and the
    /// registers fixed operands name (what [`Function::mentions`] gives).
    fn mention_pass<F: Function>(&mut self, f: &F, vouched: bool) -> Result<(), Decline> {
        self.fixed_anywhere = [0; 3];
        for ii in 0..f.num_insts() {
            let ops = f.inst_operands(Inst::new(ii));
            self.check_roomy_inst(f, ii, ops, vouched)?;
            for op in ops {
                // In bounds: checked.
                let s = &mut self.values[op.vreg.index()];
                if let Constraint::Fixed(p) = op.constraint
                    && op.is_use()
                    && s.pref == NO_REG
                {
                    s.pref = p.hw;
                }
                s.last = ii as u32;
            }
        }
        Ok(())
    }

    /// The checks of instruction `ii` of a roomy function: those of
    /// [`check_inst`], [`Local::check_operand`] (noting fixed registers in
    /// `fixed_anywhere`) and [`Local::check_fixed`], and no vreg defined
    /// twice.
    fn check_roomy_inst<F: Function>(
        &mut self,
        f: &F,
        ii: usize,
        ops: &[Operand],
        vouched: bool,
    ) -> Result<(), Decline> {
        let nv = f.num_vregs();
        let dup = check_inst(f, ii, ops, vouched)?;
        let mut fixed = false;
        for op in ops {
            let (_, hw) = self.check_operand(op, nv, vouched)?;
            fixed |= hw != NO_REG;
        }
        if dup {
            check_dup_defs(ops)?;
        }
        if fixed {
            self.check_fixed(f, Inst::new(ii), ops, dup)?;
        }
        Ok(())
    }

    /// One instruction of a roomy function: fixed uses, other uses, defs,
    /// then values mentioned for the last time leave their registers.
    fn roomy_inst(
        &mut self,
        i: Inst,
        ops: &[Operand],
        alloc: &mut [Allocation],
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let mut fixed = [0u32; 3];
        for op in ops {
            if let Constraint::Fixed(p) = op.constraint {
                fixed[p.class.index()] |= 1 << p.hw;
            }
        }
        // Registers read here, and written at the late point, per class.
        let mut pinned = [0u32; 3];
        let mut late = [0u32; 3];
        if fixed != [0; 3] {
            for (k, op) in ops.iter().enumerate() {
                let Constraint::Fixed(p) = op.constraint else {
                    continue;
                };
                if !op.is_use() {
                    continue;
                }
                let (c, v) = (p.class.index(), op.vreg.0);
                let r = self.values[v as usize].reg;
                if r == NO_REG {
                    return Err(Decline);
                }
                if r != p.hw
                    && !(fixed[c] & (1 << r) != 0 && self.swap_fixed(i, ops, c, v, r, p.hw, log))
                {
                    self.relocate(i, c, p.hw, fixed[c] | pinned[c], Some(ops), log)?;
                    self.move_edit(i, v, Allocation::Reg(preg(c as u8, r)), Allocation::Reg(p));
                    self.clear_reg(v);
                    self.set_reg(v, p.hw);
                    log.push(i, Some(op.vreg), Reason::FixedCopy(p));
                }
                alloc[k] = Allocation::Reg(p);
                pinned[c] |= 1 << p.hw;
            }
        }
        for (k, op) in ops.iter().enumerate() {
            if !op.is_use() || alloc[k] != Allocation::None {
                continue;
            }
            let v = op.vreg.0;
            let s = self.values[v as usize];
            let c = s.class.index();
            if s.reg == NO_REG {
                return Err(Decline);
            }
            let allowed = self.allowed(c, op.constraint) & !fixed[c];
            let mut r = s.reg;
            if allowed & (1 << r) == 0 {
                // A register subset: the value moves into it, or, when
                // another operand reads it where it is and this one does
                // not write it, a copy does.
                let free = allowed & !self.occupied[c] & !pinned[c];
                if free == 0 {
                    return Err(Decline);
                }
                r = self.pick_free(c, free);
                self.move_edit(
                    i,
                    v,
                    Allocation::Reg(PReg::new(s.class, s.reg)),
                    Allocation::Reg(PReg::new(s.class, r)),
                );
                if pinned[c] & (1 << s.reg) == 0 || op.kind == OperandKind::Modify {
                    self.clear_reg(v);
                    self.set_reg(v, r);
                }
            }
            alloc[k] = Allocation::Reg(PReg::new(s.class, r));
            pinned[c] |= 1 << r;
            if op.kind == OperandKind::Modify {
                late[c] |= 1 << r;
                self.written |= 1u128 << PReg::new(s.class, r).index();
            }
        }
        for (k, op) in ops.iter().enumerate() {
            if op.kind != OperandKind::Def {
                continue;
            }
            let v = op.vreg.0;
            let s = self.values[v as usize];
            let c = s.class.index();
            let r = if let Constraint::Fixed(p) = op.constraint {
                let w = self.owner[p.index()];
                if w != NONE && w != v {
                    self.relocate(i, c, p.hw, fixed[c] | pinned[c] | late[c], None, log)?;
                }
                p.hw
            } else {
                let allowed = self.allowed(c, op.constraint) & !fixed[c] & !late[c];
                if s.reg != NO_REG && allowed & (1 << s.reg) != 0 {
                    s.reg
                } else {
                    let free = allowed & !self.occupied[c];
                    if free == 0 {
                        return Err(Decline);
                    }
                    if s.pref < 32 && free & (1 << s.pref) != 0 {
                        log.push(i, Some(op.vreg), Reason::Hint(PReg::new(s.class, s.pref)));
                        s.pref
                    } else {
                        self.pick_free(c, free)
                    }
                }
            };
            alloc[k] = Allocation::Reg(PReg::new(s.class, r));
            late[c] |= 1 << r;
        }
        for (k, op) in ops.iter().enumerate() {
            if op.kind != OperandKind::Def {
                continue;
            }
            let Allocation::Reg(r) = alloc[k] else {
                return Err(Decline);
            };
            let v = op.vreg.0;
            let w = self.owner[r.index()];
            if w != NONE && w != v {
                return Err(Decline);
            }
            self.clear_reg(v);
            self.set_reg(v, r.hw);
            self.written |= 1u128 << r.index();
        }
        for op in ops {
            if self.values[op.vreg.index()].last == i.0 {
                self.clear_reg(op.vreg.0);
            }
        }
        Ok(())
    }

    /// Exchanges registers `r` (holding `v`) and `hw` of class `c` when `v`
    /// is read here in `hw` and the value in `hw` is read here in `r`: a
    /// two-register cycle of fixed uses (the halves of an i64 result
    /// returned swapped) takes one swap instead of three moves through a
    /// free register. Returns whether it did.
    #[allow(clippy::too_many_arguments)]
    fn swap_fixed(
        &mut self,
        i: Inst,
        ops: &[Operand],
        c: usize,
        v: u32,
        r: u8,
        hw: u8,
        log: &mut DecisionLog,
    ) -> bool {
        let w = self.owner[c * 32 + hw as usize];
        let (a, b) = (preg(c as u8, r), preg(c as u8, hw));
        if !self.has_swap[c] || w == NONE || fixed_read_of(ops, w, c, |q| q == r).is_none() {
            return false;
        }
        self.edit(i, Edit::Swap { a, b });
        self.set_reg(v, hw);
        self.set_reg(w, r);
        log.push(i, Some(VReg(v)), Reason::FixedCopy(b));
        log.push(i, Some(VReg(w)), Reason::FixedCopy(a));
        true
    }

    /// Moves the value in register `hw` of class `c`, if any and still
    /// mentioned later (or, with `early_ops`, read by one of them), to a
    /// free register outside `avoid`.
    fn relocate(
        &mut self,
        i: Inst,
        c: usize,
        hw: u8,
        avoid: u32,
        early_ops: Option<&[Operand]>,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let w = self.owner[c * 32 + hw as usize];
        if w == NONE {
            return Ok(());
        }
        let read_here =
            early_ops.is_some_and(|ops| ops.iter().any(|o| o.vreg.0 == w && o.is_use()));
        if self.values[w as usize].last <= i.0 && !read_here {
            self.clear_reg(w);
            return Ok(());
        }
        let free = self.allocatable[c] & !self.occupied[c] & !avoid & !(1 << hw);
        if free == 0 {
            return Err(Decline);
        }
        let to = self.pick_free(c, free);
        let p = preg(c as u8, hw);
        self.move_edit(i, w, Allocation::Reg(p), Allocation::Reg(preg(c as u8, to)));
        self.clear_reg(w);
        self.set_reg(w, to);
        log.push(i, Some(VReg(w)), Reason::SaveAcrossClobber(p));
        Ok(())
    }

    /// Whether the client vouched for flow, clobbers and operand shapes
    /// (then only fixed operands and the bounds are checked) and every
    /// class with values has registers.
    fn vouched<F: Function>(&self, f: &F, per_class: &[usize; 3]) -> bool {
        f.vouched().is_some_and(|v| v.all())
            && (0..3).all(|c| per_class[c] == 0 || self.allocatable[c] != 0)
    }

    /// The backward pass: validation, next uses, hints and the plan, into
    /// `facts` (instruction `ni - 1` first, each one's operands in order),
    /// and each vreg's hull.
    fn backward<F: Function>(&mut self, f: &F, plan: bool, vouched: bool) -> Result<(), Decline> {
        self.back.clear();
        self.back.resize(f.num_vregs(), BACK_NONE);
        self.facts.clear();
        // One fact per operand, written in place (no push and its capacity
        // check per operand): room for exactly that many when the kept
        // buffer is short (growing by doubling would leave up to half of
        // it unused at the Compiler's peak of memory).
        let operands = f.num_operands();
        if self.facts.capacity() < operands {
            self.facts.reserve_exact(operands);
        }
        self.facts.resize(operands, FACT_NONE);
        // Out of `self` while the steps below borrow it (and back whatever
        // they find, so that the buffers are kept).
        let mut facts = std::mem::take(&mut self.facts);
        let mut back = std::mem::take(&mut self.back);
        // The two switches are constants of the loop: it then keeps its
        // state in registers and tests neither per operand.
        let found = match (plan, vouched) {
            (true, true) => self.backward_steps::<F, true, true>(f, &mut back, &mut facts),
            (true, false) => self.backward_steps::<F, true, false>(f, &mut back, &mut facts),
            (false, true) => self.backward_steps::<F, false, true>(f, &mut back, &mut facts),
            (false, false) => self.backward_steps::<F, false, false>(f, &mut back, &mut facts),
        };
        self.facts = facts;
        self.back = back;
        found
    }

    /// [`Local::backward`]'s steps, each instruction's facts into its part
    /// of `facts` (one per operand, instruction `ni - 1` first), each
    /// vreg's state in `back`. `PLAN`: make the plan; `VOUCHED`: the
    /// client vouched for its operands (see [`Local::check_operand`]).
    #[inline(never)]
    fn backward_steps<F: Function, const PLAN: bool, const VOUCHED: bool>(
        &mut self,
        f: &F,
        back: &mut [Back],
        facts: &mut [OpFact],
    ) -> Result<(), Decline> {
        let ni = f.num_insts();
        self.fixed_anywhere = [0; 3];
        // The facts not yet written.
        let mut rest = facts;
        for ii in (0..ni).rev() {
            let i = Inst::new(ii);
            let ops = f.inst_operands(i);
            check_flow(f, ii, ops, VOUCHED)?;
            let pos = 2 * i.0;
            // A client's operand count short of its operands: the general
            // path takes the function.
            let (here, after) = rest.split_at_mut_checked(ops.len()).ok_or(Decline)?;
            rest = after;
            // One operand per vreg: its steps of the next uses and the
            // plan now (two operands, the common case, without a loop: its
            // setup would cost as much as an operand).
            let fixed = if let ([x, y], [fx, fy]) = (ops, &mut *here)
                && x.vreg != y.vreg
            {
                let fixed = self.back_step::<PLAN, VOUCHED>(x, pos, back, fx)?;
                fixed | self.back_step::<PLAN, VOUCHED>(y, pos, back, fy)?
            } else if has_dup(ops) {
                self.dup_inst::<F, PLAN>(f, i, ops, VOUCHED, back, here)?;
                continue;
            } else {
                let mut fixed = false;
                for (op, out) in ops.iter().zip(here.iter_mut()) {
                    fixed |= self.back_step::<PLAN, VOUCHED>(op, pos, back, out)?;
                }
                fixed
            };
            if fixed {
                self.check_fixed(f, i, ops, false)?;
                here[0].flags |= FIXED_HERE;
            }
        }
        // A count past the operands: likewise.
        if !rest.is_empty() {
            return Err(Decline);
        }
        // A value read before it is written: the general path reports it.
        if back.iter().any(|b| b.next_use != INF_POS) {
            return Err(Decline);
        }
        self.hulls = true;
        Ok(())
    }

    /// One operand's step of [`Local::backward_steps`] (an instruction
    /// naming each vreg once): its checks, its fact into `out`, the steps
    /// of its vreg's next use and plan at `pos`. Returns whether it has a
    /// fixed register.
    #[inline(always)]
    fn back_step<const PLAN: bool, const VOUCHED: bool>(
        &mut self,
        op: &Operand,
        pos: u32,
        back: &mut [Back],
        out: &mut OpFact,
    ) -> Result<bool, Decline> {
        // (`back` has one state per vreg.)
        let nv = back.len();
        let b = back.get_mut(op.vreg.index()).ok_or(Decline)?;
        // The client's word spares the checks of all but a fixed operand
        // (those out of line: they need much of `self`).
        let hint = if VOUCHED && !matches!(op.constraint, Constraint::Fixed(_)) {
            debug_assert!(
                self.check_any_operand(op, nv).is_ok(),
                "operand {op:?} not as vouched"
            );
            NO_REG
        } else {
            self.check_operand_out_of_line(op, nv)?.1
        };
        // Backward: the last write is the first position.
        b.hull_start = pos;
        b.hull_end = b.hull_end.max(pos + 1);
        let (plan, gain) = if PLAN {
            let foldable = op.constraint == Constraint::Any;
            plan_step((b.next_use, b.plan), pos, op.is_def(), foldable)
        } else {
            (PLAN_NONE, 0)
        };
        *out = OpFact {
            next: b.next_use,
            gain,
            drop_base: if PLAN { b.plan } else { [0; 2] },
            hint: b.hint,
            flags: if op.is_def() { REDEFINED } else { 0 },
        };
        if op.is_use() {
            b.next_use = pos;
            b.hint = hint;
            b.plan = plan;
        } else {
            *b = Back {
                next_use: INF_POS,
                plan: PLAN_NONE,
                hint: NO_REG,
                ..*b
            };
        }
        Ok(hint != NO_REG)
    }

    /// [`Local::backward_steps`] for an instruction that names some vreg
    /// twice (kept out of the loop: few instructions do): the checks, the
    /// facts into `here`, the steps of the plan (`PLAN`) and of the next
    /// uses.
    #[inline(never)]
    fn dup_inst<F: Function, const PLAN: bool>(
        &mut self,
        f: &F,
        i: Inst,
        ops: &[Operand],
        vouched: bool,
        back: &mut [Back],
        here: &mut [OpFact],
    ) -> Result<(), Decline> {
        let nv = f.num_vregs();
        let pos = 2 * i.0;
        let mut fixed = false;
        for (op, out) in ops.iter().zip(here.iter_mut()) {
            let (v, hint) = self.check_operand(op, nv, vouched)?;
            fixed |= hint != NO_REG;
            let b = back.get_mut(v).ok_or(Decline)?;
            b.hull_start = pos;
            b.hull_end = b.hull_end.max(pos + 1);
            *out = OpFact {
                next: b.next_use,
                hint: b.hint,
                ..FACT_NONE
            };
        }
        // The plan's step first: it starts from the next uses the next-use
        // step replaces.
        if PLAN {
            Self::plan_inst(ops, pos, back, here);
        }
        Self::dup_step(ops, pos, back, here)?;
        if fixed {
            self.check_fixed(f, i, ops, true)?;
            here[0].flags |= FIXED_HERE;
        }
        Ok(())
    }

    /// The checks of `cfg::validate_inst` that every operand needs (those
    /// of fixed registers are left to it, see [`Local::check_fixed`]) and
    /// the shapes this allocator takes. Returns the vreg's index and the
    /// fixed register, or [`NO_REG`]; notes the fixed register. When the
    /// client `vouched` for its operands, only a fixed one is checked past
    /// the bounds.
    #[inline(always)]
    fn check_operand(
        &mut self,
        op: &Operand,
        nv: usize,
        vouched: bool,
    ) -> Result<(usize, u8), Decline> {
        let v = op.vreg.index();
        if vouched && v < nv && !matches!(op.constraint, Constraint::Fixed(_)) {
            // Debug builds hold the client to its word.
            debug_assert!(
                self.check_any_operand(op, nv).is_ok(),
                "operand {op:?} not as vouched"
            );
            return Ok((v, NO_REG));
        }
        self.check_any_operand(op, nv)
    }

    /// [`Local::check_any_operand`], not inlined (for the backward pass).
    #[inline(never)]
    fn check_operand_out_of_line(
        &mut self,
        op: &Operand,
        nv: usize,
    ) -> Result<(usize, u8), Decline> {
        self.check_any_operand(op, nv)
    }

    /// [`Local::check_operand`] without the client's word.
    #[inline(always)]
    fn check_any_operand(&mut self, op: &Operand, nv: usize) -> Result<(usize, u8), Decline> {
        let v = op.vreg.index();
        if v >= nv {
            return Err(Decline);
        }
        let c = self.values[v].class.index();
        let regs = self.allocatable[c];
        let supported = match op.kind {
            OperandKind::Def => op.pos == OperandPos::Late,
            _ => op.pos == OperandPos::Early,
        };
        let (regs_ok, fixed) = match op.constraint {
            Constraint::Reg | Constraint::Any => (regs != 0, NO_REG),
            Constraint::Subset(m) => (m.bits() & regs != 0, NO_REG),
            Constraint::Fixed(p) => {
                // An allocatable register of the value's class (a wrong
                // class or number fails `check_fixed`).
                let hw = p.hw & 31;
                self.fixed_anywhere[c] |= 1 << hw;
                (p.class.index() == c && regs & (1 << hw) != 0, hw)
            }
            Constraint::Reuse(_) => (false, NO_REG),
        };
        if !supported || !regs_ok {
            return Err(Decline);
        }
        Ok((v, fixed))
    }

    /// The checks of an instruction with fixed registers: all of
    /// `cfg::validate_inst`, and one location per value (a fixed operand's
    /// value is named once).
    fn check_fixed<F: Function>(
        &self,
        f: &F,
        i: Inst,
        ops: &[Operand],
        dup: bool,
    ) -> Result<(), Decline> {
        cfg::validate_inst(f, &self.allocatable, i, ops).map_err(|_| Decline)?;
        if dup
            && ops.iter().enumerate().any(|(k, op)| {
                matches!(op.constraint, Constraint::Fixed(_))
                    && ops
                        .iter()
                        .enumerate()
                        .any(|(j, o)| j != k && o.vreg == op.vreg)
            })
        {
            return Err(Decline);
        }
        Ok(())
    }

    /// The next-use step of an instruction that names a vreg twice: its
    /// facts get [`DUP`] and, for a redefined vreg, [`REDEFINED`] on every
    /// operand; a vreg defined twice declines (`cfg` rejects it).
    fn dup_step(
        ops: &[Operand],
        pos: u32,
        back: &mut [Back],
        here: &mut [OpFact],
    ) -> Result<(), Decline> {
        for (k, op) in ops.iter().enumerate() {
            let mut flags = DUP;
            for (j, o) in ops.iter().enumerate() {
                if o.vreg == op.vreg && o.is_def() {
                    if op.is_def() && j != k {
                        return Err(Decline);
                    }
                    flags |= REDEFINED;
                }
            }
            here[k].flags = flags;
        }
        // (In bounds: the operands were checked.)
        for op in ops {
            if op.kind == OperandKind::Def {
                let b = &mut back[op.vreg.index()];
                b.next_use = INF_POS;
                b.hint = NO_REG;
            }
        }
        for op in ops {
            if op.is_use() {
                let b = &mut back[op.vreg.index()];
                b.next_use = pos;
                b.hint = match op.constraint {
                    Constraint::Fixed(p) => p.hw,
                    _ => NO_REG,
                };
            }
        }
        Ok(())
    }

    /// One backward step of the residency plan (as the general scan's) for
    /// an instruction that names some vreg twice, before
    /// [`Local::dup_step`] (the step starts from each vreg's next use):
    /// each vreg takes one step, from all its operands. (The backward pass
    /// makes the steps of the other instructions itself.)
    fn plan_inst(ops: &[Operand], pos: u32, back: &mut [Back], here: &mut [OpFact]) {
        for (k, op) in ops.iter().enumerate() {
            let v = op.vreg;
            let (mut first, mut writes, mut reads, mut foldable) = (
                k,
                op.is_def(),
                op.is_use(),
                op.constraint == Constraint::Any,
            );
            for (j, o) in ops.iter().enumerate() {
                if o.vreg == v && j != k {
                    // A vreg named twice is never served from its slot: an
                    // instruction has one memory operand, so the other would
                    // load it anyway.
                    foldable = false;
                    first = first.min(j);
                    writes |= o.is_def();
                    reads |= o.is_use();
                }
            }
            if first < k {
                let shared = here[first];
                here[k].drop_base = shared.drop_base;
                here[k].gain = shared.gain;
                continue;
            }
            // (In bounds: the operands were checked.)
            let b = &mut back[v.index()];
            let (plan, gain) = plan_step((b.next_use, b.plan), pos, writes, foldable);
            here[k].gain = gain;
            here[k].drop_base = b.plan;
            b.plan = if reads { plan } else { PLAN_NONE };
        }
    }

    /// The forward pass: a location for every operand, and the edits.
    fn forward<F: Function>(&mut self, f: &F, log: &mut DecisionLog) -> Result<(), Decline> {
        let ni = f.num_insts();
        self.start_forward();
        let mut top = self.facts.len();
        // Room for every operand's allocation and one instruction's more,
        // written by index (a fixed-size copy of the whole array each) and
        // cut to what was written at the end: no push and its capacity
        // check per instruction.
        self.allocs.resize(top + MAX_OPS, Allocation::None);
        self.alloc_off.resize(ni + 1, 0);
        let mut n = 0;
        for ii in 0..ni {
            let i = Inst::new(ii);
            let ops = f.inst_operands(i);
            top -= ops.len();
            let flags = ops.first().map_or(0, |_| self.facts[top].flags);
            let mut st = InstState {
                i,
                pos: 2 * i.0,
                fb: top,
                pinned: [0; 3],
                late: [0; 3],
                fixed: [0; 3],
                stack_used: false,
                dup: flags & DUP != 0,
            };
            if flags & FIXED_HERE != 0 {
                for op in ops {
                    if let Constraint::Fixed(p) = op.constraint {
                        st.fixed[p.class.index()] |= 1 << p.hw;
                    }
                }
            }
            let mut alloc = [Allocation::None; MAX_OPS];
            self.alloc_inst(f, ops, &mut st, &mut alloc[..ops.len()], log)?;
            if st.stack_used {
                let k = alloc.iter().position(|a| matches!(a, Allocation::Stack(_)));
                self.stack_allocs.push((n + k.unwrap_or(0)) as u32);
            }
            // The whole array (`alloc[..ops.len()]` would call `memcpy`);
            // the next instruction's allocations overwrite the tail.
            let dst: &mut [Allocation; MAX_OPS] = (&mut self.allocs[n..n + MAX_OPS])
                .try_into()
                .expect("room for MAX_OPS allocations");
            *dst = alloc;
            n += ops.len();
            self.alloc_off[ii + 1] = n as u32;
        }
        self.allocs.truncate(n);
        Ok(())
    }

    /// Empties the register file and the output buffers.
    fn start_forward(&mut self) {
        self.owner.resize(96, NONE);
        self.owner.fill(NONE);
        self.occupied = [0; 3];
        self.allocs.clear();
        self.alloc_off.clear();
        self.alloc_off.push(0);
        self.stack_allocs.clear();
        self.edits.clear();
        self.stats = Stats::default();
        self.written = 0;
    }

    #[inline(always)]
    fn alloc_inst<F: Function>(
        &mut self,
        f: &F,
        ops: &[Operand],
        st: &mut InstState,
        alloc: &mut [Allocation],
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        if st.fixed != [0; 3] {
            self.alloc_fixed_uses(ops, st, alloc, log)?;
        }
        // Uses already in a suitable register are taken here; the others
        // wait in `rest`, each as its sort key above the operand's index (3
        // bits, see `MAX_OPS`): one integer orders them as the pair would.
        let mut rest = [0u64; MAX_OPS];
        let mut nrest = 0;
        // The def operands.
        let mut defs = 0u32;
        for (k, op) in ops.iter().enumerate() {
            if !op.is_use() {
                defs |= 1 << k;
                continue;
            }
            if alloc[k] != Allocation::None {
                continue;
            }
            let s = self.values[op.vreg.index()];
            let c = s.class.index();
            let allowed = self.allowed(c, op.constraint) & !st.fixed[c];
            if s.reg != NO_REG && allowed & (1 << s.reg) != 0 {
                alloc[k] = Allocation::Reg(PReg::new(s.class, s.reg));
                st.pinned[c] |= 1 << s.reg;
                if op.kind == OperandKind::Modify {
                    st.late[c] |= 1 << s.reg;
                }
            } else {
                // Farthest next use first (it is the memory-operand
                // candidate), read-modify-write operands more so.
                let d = self.facts[st.fb + k].next.saturating_sub(st.pos);
                let key = if op.kind == OperandKind::Modify {
                    d.saturating_mul(16)
                } else {
                    d
                };
                rest[nrest] = u64::from(key) << 3 | k as u64;
                nrest += 1;
            }
        }
        match nrest {
            0 | 1 => {}
            2 => {
                if rest[0] < rest[1] {
                    rest.swap(0, 1);
                }
            }
            _ => sort_descending(&mut rest[..nrest]),
        }
        for &key in &rest[..nrest] {
            self.alloc_use(ops, st, alloc, (key & 7) as usize, log)?;
        }
        // Defs: fixed ones first, so that the others avoid their registers.
        if defs != 0 {
            for pass in 0..2 {
                let mut m = defs;
                while m != 0 {
                    let k = m.trailing_zeros() as usize;
                    m &= m - 1;
                    if matches!(ops[k].constraint, Constraint::Fixed(_)) == (pass == 0) {
                        self.alloc_def(f, ops, st, alloc, k, log)?;
                    }
                }
            }
        }
        self.commit(ops, st, alloc)
    }

    /// Fixed uses: the value moves into its register. (Rare under
    /// pressure: not inlined into the forward pass's loop.)
    #[inline(never)]
    fn alloc_fixed_uses(
        &mut self,
        ops: &[Operand],
        st: &mut InstState,
        alloc: &mut [Allocation],
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        for (k, op) in ops.iter().enumerate() {
            let Constraint::Fixed(p) = op.constraint else {
                continue;
            };
            if !op.is_use() {
                continue;
            }
            let (c, v) = (p.class.index(), op.vreg.0);
            let r = self.values[v as usize].reg;
            if self.owner[p.index()] != v
                && !(r != NO_REG
                    && st.fixed[c] & (1 << r) != 0
                    && self.swap_fixed(st.i, ops, c, v, r, p.hw, log))
            {
                let avoid = st.fixed[c] | st.pinned[c];
                self.displace(ops, st, c, p.hw, avoid, log)?;
                self.load(st, v, p.hw, log)?;
                log.push(st.i, Some(op.vreg), Reason::FixedCopy(p));
            }
            alloc[k] = Allocation::Reg(p);
            st.pinned[c] |= 1 << p.hw;
            if op.kind == OperandKind::Modify {
                st.late[c] |= 1 << p.hw;
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn allowed(&self, c: usize, con: Constraint) -> u32 {
        // The common constraints by one test of the tag.
        if matches!(con, Constraint::Reg | Constraint::Any) {
            return self.allocatable[c];
        }
        match con {
            Constraint::Subset(m) => m.bits() & self.allocatable[c],
            Constraint::Fixed(p) => 1 << p.hw,
            _ => self.allocatable[c],
        }
    }

    /// Whether `w`'s current value is still needed after the instruction.
    #[inline(always)]
    fn survives(&self, w: u32, ops: &[Operand], st: &InstState) -> bool {
        self.next_after(w, ops, st) != INF_POS
    }

    /// The next use of `w`'s current value after the instruction
    /// ([`INF_POS`]: none, or the instruction redefines it).
    #[inline(always)]
    fn next_after(&self, w: u32, ops: &[Operand], st: &InstState) -> u32 {
        for (k, o) in ops.iter().enumerate() {
            if o.vreg.0 == w {
                return self.facts[st.fb + k].after();
            }
        }
        self.values[w as usize].next_use
    }

    #[inline(always)]
    fn set_reg(&mut self, v: u32, hw: u8) {
        self.place(v, hw);
        self.sync_key(v);
    }

    /// [`Local::set_reg`] without the register's key, for a caller that
    /// refreshes it before any victim is chosen.
    #[inline(always)]
    fn place(&mut self, v: u32, hw: u8) {
        let c = self.values[v as usize].class.index();
        self.owner[c * 32 + hw as usize] = v;
        self.occupied[c] |= 1 << hw;
        self.values[v as usize].reg = hw;
    }

    /// Refreshes the [`RegKey`] of `v`'s register, if it has one (after
    /// its register, next use, drop costs or slot state changed).
    #[inline(always)]
    fn sync_key(&mut self, v: u32) {
        let s = &self.values[v as usize];
        if s.reg != NO_REG {
            self.reg_keys.set(s.class, s.reg, reg_key(s));
        }
    }

    #[inline(always)]
    fn clear_reg(&mut self, v: u32) {
        vacate(&mut self.values, &mut self.owner, &mut self.occupied, v);
    }

    #[inline(always)]
    fn edit(&mut self, i: Inst, e: Edit) {
        self.written |= self.stats.count(&e);
        self.edits.push((ProgPoint::before(i), e));
    }

    #[inline(always)]
    fn move_edit(&mut self, i: Inst, v: u32, from: Allocation, to: Allocation) {
        let class = self.values[v as usize].class;
        self.edit(
            i,
            Edit::Move {
                from,
                to,
                class,
                vreg: OptVReg::some(VReg(v)),
            },
        );
    }

    /// Stores `v` (in register `hw`) into its slot before the instruction.
    #[inline(always)]
    fn store(&mut self, i: Inst, v: u32, hw: u8) {
        let c = self.values[v as usize].class;
        self.move_edit(
            i,
            v,
            Allocation::Reg(PReg::new(c, hw)),
            Allocation::Stack(SpillSlot::new(v)),
        );
        self.values[v as usize].in_slot = true;
        self.sync_key(v);
    }

    /// Puts `v` into free register `hw` before the instruction (moving it
    /// from its register, reloading or recomputing it).
    #[inline(always)]
    fn load(
        &mut self,
        st: &InstState,
        v: u32,
        hw: u8,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let s = self.values[v as usize];
        let to = PReg::new(s.class, hw);
        if s.reg == NO_REG && s.in_slot {
            self.move_edit(
                st.i,
                v,
                Allocation::Stack(SpillSlot::new(v)),
                Allocation::Reg(to),
            );
            log.push(st.i, Some(VReg(v)), Reason::Reload);
            self.set_reg(v, hw);
            return Ok(());
        }
        self.load_other(st, v, hw, log)
    }

    /// [`Local::load`] of a value in a register or recomputed (rare under
    /// pressure, where values come back from their slots: not inlined).
    #[inline(never)]
    fn load_other(
        &mut self,
        st: &InstState,
        v: u32,
        hw: u8,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let s = self.values[v as usize];
        let to = PReg::new(s.class, hw);
        if s.reg == hw {
            return Ok(());
        }
        if s.reg != NO_REG {
            self.move_edit(
                st.i,
                v,
                Allocation::Reg(PReg::new(s.class, s.reg)),
                Allocation::Reg(to),
            );
            self.clear_reg(v);
        } else if s.in_slot {
            self.move_edit(
                st.i,
                v,
                Allocation::Stack(SpillSlot::new(v)),
                Allocation::Reg(to),
            );
            log.push(st.i, Some(VReg(v)), Reason::Reload);
        } else if s.remat {
            self.edit(st.i, Edit::Remat { vreg: VReg(v), to });
            log.push(st.i, Some(VReg(v)), Reason::Remat);
        } else {
            return Err(Decline);
        }
        self.set_reg(v, hw);
        Ok(())
    }

    /// Empties register `hw` of class `c` before a fixed operand takes it:
    /// its value, if still needed, moves to a free register outside
    /// `avoid` or (when its slot is not current) is stored.
    #[inline(never)]
    fn displace(
        &mut self,
        ops: &[Operand],
        st: &InstState,
        c: usize,
        hw: u8,
        avoid: u32,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let w = self.owner[c * 32 + hw as usize];
        if w == NONE {
            return Ok(());
        }
        let ws = self.values[w as usize];
        let needed = self.survives(w, ops, st) || ops.iter().any(|o| o.vreg.0 == w);
        if needed {
            let free = self.allocatable[c] & !self.occupied[c] & !avoid & !(1 << hw);
            let pref = free & !self.callee_saved[c];
            let p = preg(c as u8, hw);
            if free != 0 {
                let to = lowest(if pref != 0 { pref } else { free });
                self.move_edit(
                    st.i,
                    w,
                    Allocation::Reg(p),
                    Allocation::Reg(preg(c as u8, to)),
                );
                self.clear_reg(w);
                self.set_reg(w, to);
                log.push(st.i, Some(VReg(w)), Reason::SaveAcrossClobber(p));
                return Ok(());
            }
            if !ws.in_slot && !ws.remat {
                self.store(st.i, w, hw);
                log.push(st.i, Some(VReg(w)), Reason::SaveAcrossClobber(p));
            }
        }
        self.clear_reg(w);
        Ok(())
    }

    /// The eviction victim among the occupied registers of `cand`: the
    /// value whose eviction the plan says costs least (one stack access
    /// more for a value read here), the farthest next use among equals.
    #[inline(always)]
    fn victim(&self, ops: &[Operand], st: &InstState, c: usize, cand: u32) -> Option<Victim> {
        // Each candidate gets one key, largest wins: the complement of the
        // loss, the next use (ordered as the general scan's clamped
        // distance: see [`MAX_LOCAL_INSTS`]), the register.
        let occupied = cand & self.occupied[c];
        if occupied == 0 {
            return None;
        }
        let keys = &self.reg_keys.0[c];
        let here = st.pos;
        // The registers of the values read here (whose next use is here):
        // found from the operands, so that the other candidates are
        // weighed without a test each.
        let mut read_here = 0u32;
        for o in ops {
            let s = &self.values[o.vreg.index()];
            if o.is_use() && s.reg != NO_REG && s.class.index() == c {
                read_here |= 1 << s.reg;
            }
        }
        // The others, by their [`RegKey`]s: the largest `use_reg` (the
        // farthest next use) and the largest `unclamped`. The values that
        // lose nothing here (`unclamped` at least `clamp_at`) beat the
        // others, and among them the farthest next use wins; if none, the
        // largest `unclamped` (the least loss) does. The farthest of all
        // loses least of all when it loses nothing, which spares a second
        // look in most scans.
        let held = here as u64 * HOLD_COST as u64;
        let clamp_at = (LOSS_CAP + held) << 31;
        let mut farthest = 0u64;
        let mut least = 0u64;
        let others = occupied & !read_here;
        let mut m = others;
        while m != 0 {
            let hw = m.trailing_zeros() as usize & 31;
            m &= m - 1;
            #[cfg(debug_assertions)]
            self.debug_check_key(c, hw as u8, here, false);
            farthest = farthest.max(keys[hw].use_reg);
            least = least.max(keys[hw].unclamped);
        }
        // The winner's key with the loss from bit 37, as the values read
        // here need (their next use after the instruction may be none,
        // which does not fit in 31 bits).
        let mut best = if others == 0 {
            0
        } else if least < clamp_at {
            let key = least - (held << 31);
            (key >> 31) << 37 | key & USE_REG_MASK
        } else if keys[farthest as usize & 31].unclamped >= clamp_at {
            LOSS_CAP << 37 | farthest
        } else {
            LOSS_CAP << 37 | farthest_free(keys, others, clamp_at)
        };
        if occupied & read_here != 0 {
            (best, farthest) =
                self.weigh_read_here(ops, st, c, occupied & read_here, best, farthest);
        }
        Some(Victim {
            hw: (best & 31) as u8,
            far: ((farthest >> 5) as u32).saturating_sub(here),
            loss: (LOSS_CAP - (best >> 37)) as u32,
        })
    }

    /// [`Local::victim`]'s candidates in registers `read` of class `c`,
    /// whose values the instruction reads (rare: not inlined into the
    /// forward pass's loop): `best` and `farthest` updated with their keys
    /// (loss from bit 37) and `use_reg`s.
    #[inline(never)]
    fn weigh_read_here(
        &self,
        ops: &[Operand],
        st: &InstState,
        c: usize,
        read: u32,
        mut best: u64,
        mut farthest: u64,
    ) -> (u64, u64) {
        let here = st.pos;
        let mut m = read;
        while m != 0 {
            let hw = m.trailing_zeros();
            m &= m - 1;
            #[cfg(debug_assertions)]
            self.debug_check_key(c, hw as u8, here, true);
            // A value read here: what follows counts, and one stack access
            // more (evicted here it tends to come straight back).
            let w = self.owner[c * 32 + hw as usize];
            let ws = &self.values[w as usize];
            let base = ops
                .iter()
                .position(|o| o.vreg.0 == w)
                .map_or(ws.drop_base, |k| self.facts[st.fb + k].drop_base);
            let base = base[!(ws.in_slot | ws.remat) as usize] as u64;
            let n = self.next_after(w, ops, st);
            let dist = n.saturating_sub(here) as u64;
            let loss = base.saturating_sub(dist * HOLD_COST as u64) + MISS_COST as u64;
            let use_reg = (n as u64) << 5 | hw as u64;
            farthest = farthest.max(use_reg);
            best = best.max((LOSS_CAP - loss) << 37 | use_reg);
        }
        (best, farthest)
    }

    /// Debug builds: the key of occupied register `hw` of class `c` is
    /// current, and its value is read at position `here` exactly when
    /// [`Local::victim`] found it among the operands read here (`read`).
    #[cfg(debug_assertions)]
    fn debug_check_key(&self, c: usize, hw: u8, here: u32, read: bool) {
        let ws = &self.values[self.owner[c * 32 + hw as usize] as usize];
        let (key, want) = (self.reg_keys.0[c][hw as usize], reg_key(ws));
        debug_assert!(
            key.use_reg == want.use_reg
                && key.unclamped == want.unclamped
                && ws.reg == hw
                && ws.next_use < 1 << 26
                && ws.next_use >= here
                && (ws.next_use == here) == read,
            "stale register key"
        );
    }

    /// Evicts the value in register `hw` before the instruction, storing it
    /// if it is needed later and its slot is not current.
    #[inline(always)]
    fn evict(&mut self, ops: &[Operand], st: &InstState, c: usize, hw: u8, log: &mut DecisionLog) {
        let w = self.owner[c * 32 + hw as usize];
        if w == NONE {
            return;
        }
        let ws = self.values[w as usize];
        let n = self.next_after(w, ops, st);
        let needed = n != INF_POS || ops.iter().any(|o| o.vreg.0 == w && o.is_use());
        let stored = needed && !ws.in_slot && !ws.remat;
        if stored {
            self.store(st.i, w, hw);
        }
        if log.enabled {
            log_evict(log, st, w, n, self.weight, stored);
        }
        self.clear_reg(w);
    }

    /// A free register of `free` for `v`: caller-saved first (nothing here
    /// crosses a call), and one no operand is fixed to if possible.
    fn pick_free(&self, c: usize, free: u32) -> u8 {
        pick_free(free, self.callee_saved[c], self.fixed_anywhere[c])
    }

    /// A use not yet in a suitable register: its slot as a memory operand,
    /// or a register (free, or evicted), loaded.
    #[inline(always)]
    fn alloc_use(
        &mut self,
        ops: &[Operand],
        st: &mut InstState,
        alloc: &mut [Allocation],
        k: usize,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let op = ops[k];
        let v = op.vreg.0;
        let s = self.values[v as usize];
        let c = s.class.index();
        let write = op.kind == OperandKind::Modify;
        let allowed = self.allowed(c, op.constraint);
        let avoid = st.fixed[c] | st.pinned[c] | if write { st.late[c] } else { 0 };
        // Another operand of the same value may have loaded it meanwhile.
        if s.reg != NO_REG && allowed & !st.fixed[c] & (1 << s.reg) != 0 {
            alloc[k] = Allocation::Reg(PReg::new(s.class, s.reg));
            st.pinned[c] |= 1 << s.reg;
            return Ok(());
        }
        let cand = allowed & !avoid;
        if cand == 0 {
            return Err(Decline);
        }
        let free = cand & !self.occupied[c];
        let mut pre = None;
        let named_once = !st.dup || ops.iter().filter(|o| o.vreg == op.vreg).count() == 1;
        if op.constraint == Constraint::Any
            && !st.stack_used
            && s.in_slot
            && s.reg == NO_REG
            && named_once
            && free == 0
        {
            // Under pressure the plan decides: load only if that gains more
            // than evicting the victim loses.
            let gain = unpack_gain(self.facts[st.fb + k].gain);
            let fold = gain == 0 || {
                let vic = self.victim(ops, st, c, cand);
                pre = vic.map(|x| x.hw);
                vic.is_some_and(|x| gain <= x.loss)
            };
            if fold {
                alloc[k] = Allocation::Stack(SpillSlot::new(v));
                st.stack_used = true;
                self.stats.folded += 1;
                log.push(st.i, Some(op.vreg), Reason::Folded);
                return Ok(());
            }
        }
        let hw = if free != 0 {
            self.pick_free(c, free)
        } else {
            let hw = match pre {
                Some(hw) => hw,
                None => self.victim(ops, st, c, cand).ok_or(Decline)?.hw,
            };
            self.evict(ops, st, c, hw, log);
            hw
        };
        if s.reg != NO_REG && st.pinned[c] & (1 << s.reg) != 0 && !write {
            // Another operand reads the value where it is, which stays its
            // place: this one reads a copy.
            self.move_edit(
                st.i,
                v,
                Allocation::Reg(PReg::new(s.class, s.reg)),
                Allocation::Reg(PReg::new(s.class, hw)),
            );
        } else {
            self.load(st, v, hw, log)?;
        }
        alloc[k] = Allocation::Reg(PReg::new(s.class, hw));
        st.pinned[c] |= 1 << hw;
        if write {
            st.late[c] |= 1 << hw;
        }
        Ok(())
    }

    /// A late def: its fixed register (the value there moves away if still
    /// needed), a free register or one whose value dies here (with hints),
    /// its slot when its next use is farther than any other value's, or an
    /// evicted register. (Not inlined: most instructions under pressure
    /// read-modify-write, and the forward pass's loop is tighter without
    /// this.)
    #[inline(never)]
    fn alloc_def<F: Function>(
        &mut self,
        f: &F,
        ops: &[Operand],
        st: &mut InstState,
        alloc: &mut [Allocation],
        k: usize,
        log: &mut DecisionLog,
    ) -> Result<(), Decline> {
        let op = ops[k];
        let v = op.vreg.0;
        let s = self.values[v as usize];
        let c = s.class.index();
        let fact = self.facts[st.fb + k];
        if let Constraint::Fixed(p) = op.constraint {
            let w = self.owner[p.index()];
            if w != NONE && w != v && self.survives(w, ops, st) {
                let avoid = st.fixed[c] | st.pinned[c] | st.late[c];
                self.displace(ops, st, c, p.hw, avoid, log)?;
            }
            alloc[k] = Allocation::Reg(p);
            st.late[c] |= 1 << p.hw;
            return Ok(());
        }
        let allowed = self.allowed(c, op.constraint);
        // Registers whose value is read here for the last time.
        let mut dying = 0u32;
        let mut m = self.occupied[c] & st.pinned[c] & !st.late[c];
        while m != 0 {
            let hw = lowest(m);
            m &= m - 1;
            let w = self.owner[c * 32 + hw as usize];
            if w != NONE && !self.survives(w, ops, st) {
                dying |= 1 << hw;
            }
        }
        let avoid = st.fixed[c] | st.late[c];
        let cand = allowed & !avoid;
        if cand == 0 {
            return Err(Decline);
        }
        let free = cand & (!self.occupied[c] | dying);
        let mut hint = fact.hint;
        if let Some((_, src)) = f.is_move(st.i).filter(|m| m.0.0 == v) {
            let sr = self.values.get(src.index()).map_or(NO_REG, |x| x.reg);
            if sr != NO_REG && dying & (1 << sr) != 0 {
                hint = sr;
            }
        }
        let hw = if free != 0 {
            if hint < 32 && free & (1 << hint) != 0 {
                log.push(st.i, Some(op.vreg), Reason::Hint(PReg::new(s.class, hint)));
                hint
            } else if free & dying != 0 {
                lowest(free & dying)
            } else {
                self.pick_free(c, free)
            }
        } else {
            let vic = self.victim(ops, st, c, cand).ok_or(Decline)?;
            if op.constraint == Constraint::Any && !st.stack_used && !s.remat {
                let nxt = fact.next;
                if nxt == INF_POS || nxt.saturating_sub(st.pos) >= vic.far {
                    alloc[k] = Allocation::Stack(SpillSlot::new(v));
                    st.stack_used = true;
                    self.stats.folded += 1;
                    log.push(st.i, Some(op.vreg), Reason::DefToSlot);
                    return Ok(());
                }
            }
            self.evict(ops, st, c, vic.hw, log);
            vic.hw
        };
        alloc[k] = Allocation::Reg(PReg::new(s.class, hw));
        st.late[c] |= 1 << hw;
        Ok(())
    }

    /// After the instruction: values read for the last time leave their
    /// registers, defs take theirs (or their slot), next uses advance.
    #[inline(always)]
    fn commit(
        &mut self,
        ops: &[Operand],
        st: &InstState,
        alloc: &[Allocation],
    ) -> Result<(), Decline> {
        if !st.dup {
            return self.commit_distinct(ops, st, alloc);
        }
        self.commit_dup(ops, st, alloc)
    }

    /// [`Local::commit`] of an instruction that names some vreg twice (rare:
    /// not inlined into the forward pass's loop).
    #[inline(never)]
    fn commit_dup(
        &mut self,
        ops: &[Operand],
        st: &InstState,
        alloc: &[Allocation],
    ) -> Result<(), Decline> {
        // Read-only operands: their value leaves its register if read
        // here for the last time, and its next use advances. (The defs'
        // steps below look at operands' facts, not at these.)
        for (k, op) in ops.iter().enumerate() {
            if op.kind == OperandKind::Use {
                let fact = self.facts[st.fb + k];
                let v = op.vreg.0;
                if fact.after() == INF_POS {
                    self.clear_reg(v);
                }
                let s = &mut self.values[v as usize];
                s.next_use = fact.next;
                s.drop_base = fact.drop_base;
                self.sync_key(v);
            }
        }
        for (k, op) in ops.iter().enumerate() {
            if op.is_def() {
                self.commit_def(ops, st, op, alloc[k])?;
            }
        }
        for (k, op) in ops.iter().enumerate() {
            if !op.is_def() {
                continue;
            }
            let fact = self.facts[st.fb + k];
            if fact.next == INF_POS {
                self.clear_reg(op.vreg.0);
            }
            let s = &mut self.values[op.vreg.index()];
            s.next_use = fact.next;
            s.drop_base = fact.drop_base;
            self.sync_key(op.vreg.0);
        }
        // Every operand has its place: each step above gives one or
        // declines.
        debug_assert!(!alloc.contains(&Allocation::None), "operand not allocated");
        Ok(())
    }

    /// The step of [`Local::commit`] for def operand `op` allocated to `a`:
    /// its value takes the register (which a value still needed must not
    /// hold) or its slot. The register's key is left to the caller, which
    /// refreshes it with the value's next use.
    #[inline(always)]
    fn commit_def(
        &mut self,
        ops: &[Operand],
        st: &InstState,
        op: &Operand,
        a: Allocation,
    ) -> Result<(), Decline> {
        let v = op.vreg.0;
        match a {
            Allocation::Reg(r) => {
                self.written |= 1u128 << r.index();
                if op.kind == OperandKind::Def || self.values[v as usize].reg != r.hw {
                    self.take_reg(ops, st, v, r)?;
                }
                self.values[v as usize].in_slot = false;
            }
            Allocation::Stack(_) => {
                self.clear_reg(v);
                self.values[v as usize].in_slot = true;
            }
            Allocation::None => return Err(Decline),
        }
        Ok(())
    }

    /// [`Local::commit_def`]'s move of `v` into register `r`, whose value
    /// must not be needed any more (rare under pressure, where most defs
    /// modify a value in place: not inlined).
    #[inline(never)]
    fn take_reg(
        &mut self,
        ops: &[Operand],
        st: &InstState,
        v: u32,
        r: PReg,
    ) -> Result<(), Decline> {
        let w = self.owner[r.index()];
        if w != NONE && w != v {
            if self.survives(w, ops, st) {
                return Err(Decline);
            }
            self.clear_reg(w);
        }
        self.clear_reg(v);
        self.place(v, r.hw);
        Ok(())
    }

    /// [`Local::commit`] of an instruction that names each vreg once, in
    /// one pass: each operand's steps touch only its own value, and what a
    /// def looks at of another operand (whether a value in its register
    /// survives) comes from the facts, so the order of the operands does
    /// not matter (a use read for the last time that a def's register
    /// displaced is out of its register either way).
    #[inline(always)]
    fn commit_distinct(
        &mut self,
        ops: &[Operand],
        st: &InstState,
        alloc: &[Allocation],
    ) -> Result<(), Decline> {
        for (k, op) in ops.iter().enumerate() {
            let fact = self.facts[st.fb + k];
            let dies = if op.kind == OperandKind::Use {
                fact.after() == INF_POS
            } else {
                self.commit_def(ops, st, op, alloc[k])?;
                fact.next == INF_POS
            };
            // The value leaves its register if not needed any more, or its
            // register's key follows its next use: `clear_reg`, then
            // `sync_key`, through one look-up of the value.
            let s = &mut self.values[op.vreg.index()];
            s.next_use = fact.next;
            s.drop_base = fact.drop_base;
            if s.reg != NO_REG {
                let (c, hw) = (s.class.index(), s.reg);
                if dies {
                    s.reg = NO_REG;
                    self.owner[c * 32 + hw as usize] = NONE;
                    self.occupied[c] &= !(1 << hw);
                } else {
                    self.reg_keys.set(s.class, hw, reg_key(s));
                }
            }
        }
        debug_assert!(!alloc.contains(&Allocation::None), "operand not allocated");
        Ok(())
    }
}
