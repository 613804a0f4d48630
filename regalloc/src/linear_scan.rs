//! The linear scan: one forward pass over the blocks in layout order that gives
//! every operand a location, splitting values lazily.
//!
//! This is linear scan in the second-chance binpacking form (Traub, Holloway
//! and Smith 1998; Wimmer and Mössenböck 2005 take the same view of split
//! intervals), which suits non-SSA input: instead of assigning a whole
//! interval up front and splitting it later, the scan keeps, at each
//! position, where every live value currently is (any number of registers
//! holding copies, plus a "slot is up to date" flag), and a value's interval
//! is split exactly where a decision moves it. Decisions:
//!
//! - **free registers** first, with hints: the fixed register of the value's
//!   next use, the source of a copy (so the copy coalesces), the register of
//!   an input that dies here (three-address forms);
//!   caller-saved registers for values that cross no call, callee-saved for
//!   those that do; among the rest, the register free longest (whose next
//!   fixed use or clobber in the block comes last: Wimmer's free-until
//!   position);
//! - a **residency plan** per block, computed backwards with the next-use
//!   distances: the Lagrangian relaxation of the register limit (holding
//!   a register costs a price per position, every instruction touching the
//!   stack one unit), which makes values independent; each value's best
//!   residency is then a shortest path over its accesses through "in
//!   memory", "clean in a register", "dirty in a register" (linear time).
//!   It gives, per access, what keeping or dropping the value costs;
//! - **eviction** when none is free: the value whose eviction the plan
//!   says costs least (a value kept far from its next use, cheaper still
//!   when its slot is up to date so no store is needed: Belady's rule
//!   weighted by cost), the farthest next use among equals; next-use
//!   distances come from [`crate::liveness`] and include the way around
//!   loops and a penalty for leaving them;
//! - a **fixed-register operand** gets a copy of the value in that
//!   register; the value keeps its own register (a move, not a spill);
//! - **spill stores** happen once per definition, when a dirty value is
//!   first evicted (the slot stays valid until the next definition, so an
//!   unchanged value is never stored twice); **rematerializable** values are
//!   never stored, only recomputed;
//! - operands that accept memory use the **slot directly** when the value is
//!   not in a register, no register is free and loading it gains less by
//!   the plan than evicting the victim loses (a read-modify-write operand
//!   then stays clean in its slot); at most one memory operand per
//!   instruction;
//! - at a **loop header** the entry state is chosen for the loop: values not
//!   used in the loop leave their registers before it (the store, if any,
//!   lands outside the loop), values only read in it are stored before it
//!   (so evicting them inside needs no store), values used in it are loaded
//!   before it when registers are free.
//!
//! Every block starts from the exit state of an already processed
//! predecessor (so a fall-through edge needs no moves), or with all values in
//! their slots; [`crate::resolve`] then connects the other edges with
//! parallel moves. Work per instruction is bounded by the number of
//! registers and operands, so the whole pass is linear in the function size.

use crate::cfg::CfgInfo;
use crate::error::Error;
use crate::function::{
    Block, Constraint, Function, Inst, InstRange, MachineEnv, Operand, OperandKind, OperandPos,
    PReg, RegClass, VReg,
};
use crate::interval::{Intervals, depth_weight};
use crate::liveness::{INF, LOOP_EXIT_PENALTY, Liveness};
use crate::log::{DecisionLog, Reason};
use crate::output::{Allocation, Edit, OptVReg, SpillSlot, Stats};
use smallvec::SmallVec;

/// No vreg / no position.
pub(crate) const NONE: u32 = u32::MAX;
/// Plan cost of one instruction that touches the stack (a reload, a
/// store or a memory operand).
pub(crate) const MISS_COST: u32 = 1024;
/// Plan price of holding a register for one position (two per
/// instruction), in [`MISS_COST`] units: holding one for about 25
/// instructions costs as much as one stack access. Tuned on workload B;
/// it only matters under pressure, where the plan picks victims and memory
/// operands.
pub(crate) const HOLD_COST: u32 = 20;
/// "Never used again" as an absolute position.
pub(crate) const INF_POS: u32 = u32::MAX;

/// A value's residency plan from just before an access, as what dropping
/// the value from its register there costs beyond keeping it until that
/// access (not counting the price of holding the register meanwhile):
/// `[slot up to date, dirty]`.
///
/// The plan's costs to go from just before an access are three numbers,
/// `g = [arriving in memory, clean in a register, dirty in a register]`,
/// but every choice depends only on their differences, and the two kept
/// here, `[g[0] - g[1], g[0] + MISS_COST - g[2]]`, determine them: every
/// plan [`plan_step`] makes (and the two it starts from) has
/// `g[0] - MISS_COST <= g[1] <= g[0]` and `g[1] <= g[2] <= g[0] +
/// MISS_COST`, so the first is at most `MISS_COST`, the second at most
/// `2 * MISS_COST`, and neither is negative. (Kept this way, a step
/// needs no saturating arithmetic, and a long function's costs cannot
/// overflow.)
pub(crate) type Plan = [u16; 2];

/// The plan of a value with no read ahead (costs 0 in every state).
pub(crate) const PLAN_NONE: Plan = [0, MISS_COST as u16];

/// The plan of a value live out of a block with a read ahead (costs one
/// stack access arriving in memory, nothing in a register).
pub(crate) const PLAN_LIVE_OUT: Plan = [MISS_COST as u16, 2 * MISS_COST as u16];

/// One step of the residency plan, backwards. Given the position of the
/// value's next access and the plan from just before it (`next`), returns
/// the plan from just before this access at `pos` and the gain of loading
/// the value here on a miss rather than using its slot as a memory operand
/// (at most `MISS_COST`, or `u16::MAX` when the operand needs a register;
/// see [`unpack_gain`]).
///
/// The plan is the Lagrangian relaxation of the register limit: holding a
/// register costs [`HOLD_COST`] per position, each instruction touching
/// the stack [`MISS_COST`]; then every value is independent and its best
/// residency is a shortest path over its accesses through three states,
/// solved here in one backward pass (linear time).
#[inline(always)]
pub(crate) fn plan_step(next: (u32, Plan), pos: u32, writes: bool, foldable: bool) -> (Plan, u16) {
    let (npos, [clean, dirty]) = next;
    // Holding the register until the next access costs `hold` (in 64
    // bits: `npos` may be `NONE`); what keeping it gains over dropping it
    // now, clean or dirty, is then:
    let hold = u64::from(npos.wrapping_sub(pos)) * u64::from(HOLD_COST);
    let keep_clean = u64::from(clean).saturating_sub(hold) as u32;
    let keep_dirty = u64::from(dirty).saturating_sub(hold) as u32;
    let (plan, gain) = if !writes {
        // Loaded clean: a miss costs one access less what keeping gains.
        let plan = [MISS_COST, MISS_COST + keep_dirty - keep_clean];
        (plan, keep_clean)
    } else {
        // Loaded dirty: kept only if that beats storing it at once.
        let kept = keep_dirty.min(MISS_COST);
        if foldable {
            let gain = keep_dirty - kept;
            ([kept, MISS_COST + kept], gain)
        } else {
            ([MISS_COST, 2 * MISS_COST], 0)
        }
    };
    debug_assert!(plan[0] <= MISS_COST && plan[1] <= 2 * MISS_COST, "{plan:?}");
    let gain = if foldable { gain as u16 } else { u16::MAX };
    (plan.map(|c| c as u16), gain)
}

/// The gain [`plan_step`] packed into 16 bits.
#[inline(always)]
pub(crate) fn unpack_gain(gain: u16) -> u32 {
    if gain == u16::MAX {
        u32::MAX
    } else {
        gain as u32
    }
}

/// Where a value is at a block boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocRec {
    /// The vreg.
    pub vreg: u32,
    /// Hardware-number mask of the registers holding it (in its class).
    pub regs: u32,
    /// Whether its spill slot holds it.
    pub in_slot: bool,
}

/// A vreg's state during the backward scan of a block.
#[derive(Clone, Copy, Debug)]
struct BackState {
    /// Position of its next use (`INF_POS`: none, or redefined first).
    next_use: u32,
    /// The fixed register of that use, or `0xff`.
    hint: u8,
    /// Position of its next access and the plan from just before it
    /// (`NONE`: no read ahead).
    plan_pos: u32,
    plan: Plan,
}

const BACK_NONE: BackState = BackState {
    next_use: INF_POS,
    hint: 0xff,
    plan_pos: NONE,
    plan: PLAN_NONE,
};

/// What the backward scan found for one operand of the block (12 bytes:
/// one per operand of the largest block is the scan's biggest buffer),
/// here and in the local allocator ([`crate::local`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpFact {
    /// Position of the vreg's next use after this instruction.
    pub(crate) next: u32,
    /// The plan's gain of loading the value on a miss rather than using
    /// its slot (see [`plan_step`]), in 16 bits (see [`unpack_gain`]).
    pub(crate) gain: u16,
    /// The plan of the vreg's next access (what dropping it costs).
    pub(crate) drop_base: [u16; 2],
    /// The fixed register of the next use, or `0xff`.
    pub(crate) hint: u8,
    /// The local allocator's [`REDEFINED`] and [`DUP`], and its mark of an
    /// instruction with a fixed operand (0 in the scan; the byte fills what
    /// would be padding).
    pub(crate) flags: u8,
}

/// [`OpFact::flags`]: the instruction defines the operand's vreg (its
/// current value dies here whatever `next` says).
pub(crate) const REDEFINED: u8 = 1;
/// [`OpFact::flags`]: the instruction names some vreg twice.
pub(crate) const DUP: u8 = 2;

impl OpFact {
    /// The next use of the operand's current value after the instruction
    /// ([`INF_POS`] when the instruction redefines it).
    pub(crate) fn after(&self) -> u32 {
        if self.flags & REDEFINED != 0 {
            INF_POS
        } else {
            self.next
        }
    }
}

const _: () = assert!(core::mem::size_of::<OpFact>() == 12);

#[derive(Clone, Copy, Debug, Default)]
struct VState {
    regs: u32,
    next_use: u32,
    in_slot: bool,
    remat: bool,
    /// The plan of the next access (what dropping it costs).
    drop_base: [u16; 2],
}

/// The scan's state and buffers (kept between functions).
#[derive(Default)]
pub struct Scan {
    owner: Vec<u32>,
    occupied: [u32; 3],
    v: Vec<VState>,
    class: Vec<u8>,
    remat: Vec<bool>,
    slot_list: Vec<u32>,
    // Block-boundary states.
    pub(crate) entry_recs: Vec<LocRec>,
    pub(crate) entry_start: Vec<u32>,
    pub(crate) exit_recs: Vec<LocRec>,
    pub(crate) exit_start: Vec<u32>,
    // Backward-scan scratch.
    /// Per vreg during the backward scan (reset through `nu_touched`).
    back: Vec<BackState>,
    nu_touched: Vec<u32>,
    /// Per operand of the block, what the backward scan found.
    op: Vec<OpFact>,
    /// Per vreg, the index of its first live range not yet passed.
    range_cursor: Vec<u32>,
    /// Whether any instruction has clobbers (else no live ranges exist).
    has_calls: bool,
    // Output being built.
    pub(crate) allocs: Vec<Allocation>,
    pub(crate) alloc_off: Vec<u32>,
    /// Edits keyed by `(inst * 2 + phase) * 3 + priority`.
    pub(crate) raw_edits: Vec<(u32, Edit)>,
    pub(crate) stats: Stats,
    pub(crate) written: u128,
    allocatable: [u32; 3],
    callee_saved: [u32; 3],
    /// Whether the class has a register swap ([`MachineEnv::has_swap`]).
    has_swap: [bool; 3],
    tmp_recs: Vec<(u32, u32)>,
    bufs: InstBufs,
    /// Registers the current instruction overwrites at its late point: a
    /// copy there does not count as a surviving copy.
    doomed: [u32; 3],
    /// Loop weight of the block being allocated (for the log).
    cur_weight: u32,
    /// Per register, the positions in the current block where a fixed
    /// operand or a clobber needs it, latest first (the next one is last).
    fixed_pos: Vec<Vec<u32>>,
    /// Registers (by [`PReg::index`]) whose `fixed_pos` list is not empty.
    fixed_touched: u128,
    /// Whether the current block has any fixed operand or clobber.
    block_has_fixed: bool,
    /// Index in `allocs` of the current block's first operand.
    blk_base: usize,
    /// The current block's instructions.
    cur_range: InstRange,
    /// Whether the current block's residency plan is computed (see
    /// `Scan::ensure_plan`).
    plan_ready: bool,
    /// The current block's live-out values with a next use, and its
    /// position (where the plan starts).
    plan_init: Vec<(u32, u32)>,
    /// Whether the plan is computed with the next uses for every block:
    /// when a class has more values than registers less two, pressure is
    /// likely and a separate pass would cost more.
    plan_eager: bool,
}

/// Per-instruction scratch buffers.
#[derive(Default)]
struct InstBufs {
    info: Vec<OpInfo>,
    alloc: Vec<Allocation>,
    rest: Vec<(u32, usize)>,
}

/// An eviction candidate chosen by `Scan::victim`.
#[derive(Clone, Copy)]
struct Victim {
    /// Its register.
    hw: u8,
    /// The farthest next-use distance among all candidates.
    far: u32,
    /// What evicting it costs by the plan.
    loss: u32,
}

/// Per-operand facts during one instruction.
#[derive(Clone, Copy)]
struct OpInfo {
    vreg: u32,
    drop_base: [u16; 2],
    next_after: u32,
    defined_here: bool,
}

fn bit(r: PReg) -> u128 {
    1u128 << r.index()
}

fn lowest(mask: u32) -> u8 {
    mask.trailing_zeros() as u8
}

impl Scan {
    fn vclass(&self, v: u32) -> usize {
        self.class[v as usize] as usize
    }

    fn preg(&self, class: usize, hw: u8) -> PReg {
        // Class indices are below 3; the padded table needs no bounds check.
        const CLASS_OF: [RegClass; 4] =
            [RegClass::Gp, RegClass::Vec, RegClass::Mask, RegClass::Mask];
        PReg::new(CLASS_OF[class & 3], hw)
    }

    fn set_owner(&mut self, class: usize, hw: u8, v: u32) {
        let idx = class * 32 + hw as usize;
        let old = self.owner[idx];
        if old != NONE && old != v {
            self.v[old as usize].regs &= !(1 << hw);
        }
        self.owner[idx] = v;
        if v == NONE {
            self.occupied[class] &= !(1 << hw);
        } else {
            self.occupied[class] |= 1 << hw;
            self.v[v as usize].regs |= 1 << hw;
        }
    }

    fn clear_vreg_regs(&mut self, v: u32) {
        let c = self.vclass(v);
        let mut m = self.v[v as usize].regs;
        while m != 0 {
            let hw = lowest(m);
            m &= m - 1;
            self.owner[c * 32 + hw as usize] = NONE;
            self.occupied[c] &= !(1 << hw);
        }
        self.v[v as usize].regs = 0;
    }

    fn mark_in_slot(&mut self, v: u32) {
        if !self.v[v as usize].in_slot {
            self.v[v as usize].in_slot = true;
            self.slot_list.push(v);
        }
    }

    /// Stores `v` from `from` into its spill slot at `key`; from then on the
    /// slot holds its value.
    fn store_to_slot(&mut self, key: u32, from: Allocation, class: RegClass, v: u32) {
        self.edit(
            key,
            Edit::Move {
                from,
                to: Allocation::Stack(SpillSlot::new(v)),
                class,
                vreg: OptVReg::some(VReg(v)),
            },
        );
        self.mark_in_slot(v);
    }

    /// Adds an edit at a key (see `raw_edits`), counting it.
    pub(crate) fn push_edit(&mut self, key: u32, e: Edit) {
        self.edit(key, e);
    }

    /// Counts an edit placed elsewhere (on a split edge).
    pub(crate) fn count_edit(&mut self, e: &Edit) {
        let n = self.raw_edits.len();
        self.edit(0, *e);
        self.raw_edits.truncate(n);
    }

    fn edit(&mut self, key: u32, e: Edit) {
        self.written |= self.stats.count(&e);
        self.raw_edits.push((key, e));
    }

    /// Runs the scan over the whole function. `cfg` and `live` must have
    /// been computed for `f` (the operand numbering comes from `cfg`); a
    /// value read in the entry block before any write is
    /// [`Error::LiveInAtEntry`].
    #[allow(clippy::too_many_arguments)]
    pub fn run<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        cfg: &CfgInfo,
        live: &Liveness,
        ivs: &Intervals,
        log: &mut DecisionLog,
    ) -> Result<(), Error> {
        let nv = f.num_vregs();
        self.owner.clear();
        self.owner.resize(96, NONE);
        self.occupied = [0; 3];
        self.v.clear();
        self.v.resize(
            nv,
            VState {
                regs: 0,
                next_use: INF_POS,
                in_slot: false,
                remat: false,
                drop_base: [0; 2],
            },
        );
        self.class.clear();
        self.remat.clear();
        let mut per_class = [0usize; 3];
        for v in 0..nv {
            let c = f.vreg_class(VReg::new(v)).index();
            per_class[c] += 1;
            self.class.push(c as u8);
            let r = f.is_remat(VReg::new(v));
            self.remat.push(r);
            self.v[v].remat = r;
        }
        self.slot_list.clear();
        self.entry_recs.clear();
        self.entry_start.clear();
        self.exit_recs.clear();
        self.exit_start.clear();
        self.back.clear();
        self.back.resize(nv, BACK_NONE);
        // Without clobbers the live ranges are not computed (see
        // `crosses_call_at`).
        self.has_calls = !cfg.clobbers.is_empty();
        self.range_cursor.clear();
        if self.has_calls {
            self.range_cursor.resize(nv, 0);
        }
        self.allocs.clear();
        self.raw_edits.clear();
        self.stats = Stats::default();
        self.written = 0;
        for c in 0..3 {
            let class = RegClass::ALL[c];
            self.allocatable[c] = env.allocatable.class_mask(class);
            self.callee_saved[c] = env.callee_saved.class_mask(class) & self.allocatable[c];
            self.has_swap[c] = env.has_swap[c];
        }
        self.plan_eager = (0..3).any(|c| {
            per_class[c] > 0 && per_class[c] + 2 > self.allocatable[c].count_ones() as usize
        });
        // Operand allocation offsets: those `cfg` numbered the operands by,
        // which the caller moved into `alloc_off` (see `Allocator::run`).
        let n = self.alloc_off.last().copied().unwrap_or(0);
        self.allocs.resize(n as usize, Allocation::None);

        for bi in 0..f.num_blocks() {
            let b = Block::new(bi);
            self.entry_start.push(self.entry_recs.len() as u32);
            self.exit_start.push(self.exit_recs.len() as u32);
            self.cur_weight = depth_weight(cfg.loop_depth[bi]);
            self.setup_entry(f, cfg, live, ivs, b, log);
            self.backward_scan(f, live, b)?;
            let r = f.block_insts(b);
            self.blk_base = self.alloc_off[r.start.index()] as usize;
            for i in r.iter() {
                self.alloc_inst(f, ivs, i, log)?;
            }
            // Exit state.
            for &v in live.live_out(b) {
                let s = self.v[v as usize];
                if s.regs == 0 && !s.in_slot && !self.remat[v as usize] {
                    return Err(Error::Internal(format!(
                        "{} has no location at end of {b}",
                        VReg(v)
                    )));
                }
                self.exit_recs.push(LocRec {
                    vreg: v,
                    regs: s.regs,
                    in_slot: s.in_slot,
                });
            }
            // Clear state.
            for c in 0..3 {
                let mut m = self.occupied[c];
                while m != 0 {
                    let idx = c * 32 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    let o = self.owner[idx];
                    if o != NONE {
                        self.v[o as usize].regs = 0;
                        self.owner[idx] = NONE;
                    }
                }
            }
            self.occupied = [0; 3];
            for k in 0..self.slot_list.len() {
                let v = self.slot_list[k];
                self.v[v as usize].in_slot = false;
            }
            self.slot_list.clear();
        }
        self.entry_start.push(self.entry_recs.len() as u32);
        self.exit_start.push(self.exit_recs.len() as u32);
        // The operand facts are not needed after the scan.
        crate::shed_if_large(&mut self.op);
        Ok(())
    }

    /// Frees the per-operand and per-edit scratch of a large function
    /// (see [`crate::shed_if_large`]).
    pub(crate) fn shed_large_scratch(&mut self) {
        crate::shed_if_large(&mut self.raw_edits);
        crate::shed_if_large(&mut self.allocs);
        crate::shed_if_large(&mut self.alloc_off);
    }

    /// The exit state of a processed block.
    pub(crate) fn exit_state(&self, b: Block) -> &[LocRec] {
        &self.exit_recs
            [self.exit_start[b.index()] as usize..self.exit_start[b.index() + 1] as usize]
    }

    /// The entry state of a processed block.
    pub(crate) fn entry_state(&self, b: Block) -> &[LocRec] {
        &self.entry_recs
            [self.entry_start[b.index()] as usize..self.entry_start[b.index() + 1] as usize]
    }

    fn setup_entry<F: Function>(
        &mut self,
        f: &F,
        cfg: &CfgInfo,
        live: &Liveness,
        ivs: &Intervals,
        b: Block,
        log: &mut DecisionLog,
    ) {
        let bi = b.index();
        // Source predecessor: processed, deepest loop, latest in layout.
        let mut src: Option<Block> = None;
        for &p in f.block_preds(b) {
            if p.index() < bi {
                let better = match src {
                    None => true,
                    Some(s) => {
                        let (dp, ds) = (cfg.loop_depth[p.index()], cfg.loop_depth[s.index()]);
                        dp > ds || (dp == ds && p.index() > s.index())
                    }
                };
                if better {
                    src = Some(p);
                }
            }
        }
        let lin = live.live_in(b);
        let start = self.entry_recs.len();
        match src {
            Some(p) => {
                let (es, ee) = (
                    self.exit_start[p.index()] as usize,
                    self.exit_start[p.index() + 1] as usize,
                );
                let ex = &self.exit_recs[es..ee];
                // Both sorted by vreg; live_in(b) ⊆ live_out(p).
                let mut j = 0;
                self.tmp_recs.clear();
                for &v in lin {
                    while j < ex.len() && ex[j].vreg < v {
                        j += 1;
                    }
                    let rec = if j < ex.len() && ex[j].vreg == v {
                        ex[j]
                    } else {
                        LocRec {
                            vreg: v,
                            regs: 0,
                            in_slot: !self.remat[v as usize],
                        }
                    };
                    self.tmp_recs.push((rec.regs, rec.in_slot as u32));
                }
                for (k, &v) in lin.iter().enumerate() {
                    let (regs, s) = self.tmp_recs[k];
                    // A rematerializable value is never expected in its slot
                    // at a block entry (other edges could not store it).
                    self.entry_recs.push(LocRec {
                        vreg: v,
                        regs,
                        in_slot: s != 0 && !self.remat[v as usize],
                    });
                }
            }
            None => {
                for &v in lin {
                    self.entry_recs.push(LocRec {
                        vreg: v,
                        regs: 0,
                        in_slot: !self.remat[v as usize],
                    });
                }
            }
        }
        if cfg.is_loop_header[bi] && src.is_some() {
            self.loop_header_policy(f, live, ivs, b, start, log);
        }
        // Install.
        for k in start..self.entry_recs.len() {
            let rec = self.entry_recs[k];
            let c = self.vclass(rec.vreg);
            let mut m = rec.regs;
            while m != 0 {
                let hw = lowest(m);
                m &= m - 1;
                self.set_owner(c, hw, rec.vreg);
            }
            if rec.in_slot {
                self.mark_in_slot(rec.vreg);
            }
            self.v[rec.vreg as usize].drop_base = [0; 2];
        }
    }

    /// Chooses the entry state of a loop header: values unused in the loop
    /// leave registers when the loop is under pressure; values used in it
    /// are loaded before it while registers are free.
    fn loop_header_policy<F: Function>(
        &mut self,
        f: &F,
        live: &Liveness,
        ivs: &Intervals,
        b: Block,
        start: usize,
        log: &mut DecisionLog,
    ) {
        let dist = live.dist_in(b);
        let first = f.block_insts(b).start;
        // The loop spans the header to its last back-edge source (layout order).
        let loop_end = f
            .block_preds(b)
            .iter()
            .copied()
            .filter(|p| p.index() >= b.index())
            .max()
            .unwrap_or(b);
        let end = self.entry_recs.len();
        for c in 0..3 {
            let k_regs = self.allocatable[c].count_ones() as usize;
            if k_regs == 0 {
                continue;
            }
            let count = (start..end)
                .filter(|&k| self.vclass(self.entry_recs[k].vreg) == c)
                .count();
            let mut occupied = 0u32;
            for k in start..end {
                if self.vclass(self.entry_recs[k].vreg) == c {
                    occupied |= self.entry_recs[k].regs;
                }
            }
            if count + 2 > k_regs {
                for k in start..end {
                    let rec = self.entry_recs[k];
                    if self.vclass(rec.vreg) != c || rec.regs == 0 {
                        continue;
                    }
                    if dist[k - start] < LOOP_EXIT_PENALTY
                        && !rec.in_slot
                        && !self.remat[rec.vreg as usize]
                        && !live.defined_in(VReg(rec.vreg), b, loop_end)
                    {
                        // Used but not changed in the loop under pressure: store
                        // it once before the loop, so an eviction inside the
                        // loop needs no store.
                        self.entry_recs[k].in_slot = true;
                        log.push(first, Some(VReg(rec.vreg)), Reason::StoreHoisted);
                        continue;
                    }
                    if dist[k - start] >= LOOP_EXIT_PENALTY {
                        let v = rec.vreg as usize;
                        occupied &= !rec.regs;
                        self.entry_recs[k].regs = 0;
                        if !self.remat[v] {
                            if !rec.in_slot {
                                log.push(first, Some(VReg(rec.vreg)), Reason::StoreHoisted);
                            }
                            self.entry_recs[k].in_slot = true;
                        }
                        log.push(first, Some(VReg(rec.vreg)), Reason::SplitAtLoopEntry);
                    }
                }
            }
            // Promote values used in the loop, nearest use first, keeping two
            // registers free for temporaries.
            let mut cands: SmallVec<[(u32, usize); 32]> = SmallVec::new();
            for k in start..end {
                let rec = self.entry_recs[k];
                if self.vclass(rec.vreg) == c
                    && rec.regs == 0
                    && dist[k - start] < LOOP_EXIT_PENALTY
                {
                    cands.push((dist[k - start], k));
                }
            }
            cands.sort_unstable();
            for &(_, k) in &cands {
                let free = self.allocatable[c] & !occupied;
                if free.count_ones() <= 2 {
                    break;
                }
                let v = self.entry_recs[k].vreg;
                let pref = if self.crosses_call_at(ivs, v, 2 * first.0) {
                    free & self.callee_saved[c]
                } else {
                    free & !self.callee_saved[c]
                };
                let hw = lowest(if pref != 0 { pref } else { free });
                occupied |= 1 << hw;
                self.entry_recs[k].regs = 1 << hw;
                log.push(first, Some(VReg(v)), Reason::ReloadHoisted);
            }
        }
    }

    /// Computes, for every operand of the block, the next use of its vreg
    /// after the instruction, and the next use of each live-in value.
    /// In the entry block, a value read before any write is live into the
    /// function: [`Error::LiveInAtEntry`] (the smallest such vreg, as
    /// [`Liveness::compute`] reports it; a function of one block skips
    /// that computation and relies on this check).
    fn backward_scan<F: Function>(
        &mut self,
        f: &F,
        live: &Liveness,
        b: Block,
    ) -> Result<(), Error> {
        let r = f.block_insts(b);
        let end_pos = 2 * r.end.0;
        self.cur_range = r;
        self.plan_ready = self.plan_eager;
        // Where each register is needed by a fixed operand or clobber.
        if self.fixed_pos.len() != 96 {
            self.fixed_pos = vec![Vec::new(); 96];
        }
        let mut m = self.fixed_touched;
        while m != 0 {
            self.fixed_pos[m.trailing_zeros() as usize].clear();
            m &= m - 1;
        }
        self.fixed_touched = 0;
        self.plan_init.clear();
        for (k, &v) in live.live_out(b).iter().enumerate() {
            let d = live.dist_out(b)[k];
            if d < INF {
                let pos = end_pos.saturating_add(d.saturating_mul(2)).min(INF_POS - 1);
                self.back[v as usize].next_use = pos;
                self.plan_init.push((v, pos));
                self.nu_touched.push(v);
            }
        }
        if self.plan_eager {
            self.init_plan(false);
        }
        let base = self.alloc_off[r.start.index()] as usize;
        let total = self.alloc_off[r.end.index()] as usize - base;
        self.op.clear();
        self.op.resize(
            total,
            OpFact {
                next: INF_POS,
                gain: 0,
                drop_base: [0; 2],
                hint: 0xff,
                flags: 0,
            },
        );
        for i in r.iter().rev() {
            let ops = f.inst_operands(i);
            let pos = 2 * i.0;
            let ob = self.alloc_off[i.index()] as usize - base;
            let facts = &mut self.op[ob..ob + ops.len()];
            for (k, op) in ops.iter().enumerate() {
                if let Constraint::Fixed(p) = op.constraint {
                    self.fixed_pos[p.index()].push(pos);
                    self.fixed_touched |= 1 << p.index();
                }
                let back = self.back[op.vreg.index()];
                facts[k].next = back.next_use;
                facts[k].hint = back.hint;
            }
            if self.plan_eager {
                self.plan_inst(ops, pos, ob, false);
            }
            if self.has_calls {
                for p in f.inst_clobbers(i).iter() {
                    self.fixed_pos[p.index()].push(pos);
                    self.fixed_touched |= 1 << p.index();
                }
            }
            for op in ops {
                if op.kind == OperandKind::Def {
                    let back = &mut self.back[op.vreg.index()];
                    back.next_use = INF_POS;
                    back.hint = 0xff;
                }
            }
            for op in ops {
                if op.is_use() {
                    let v = op.vreg.index();
                    let back = &mut self.back[v];
                    // Recorded for the reset when it becomes live (a vreg
                    // not live has only its plan left, set by reads).
                    if back.next_use == INF_POS {
                        self.nu_touched.push(v as u32);
                    }
                    back.next_use = pos;
                    back.hint = match op.constraint {
                        Constraint::Fixed(p) => p.hw,
                        _ => 0xff,
                    };
                }
            }
        }
        self.block_has_fixed = self.fixed_touched != 0;
        for &v in live.live_in(b) {
            self.v[v as usize].next_use = self.back[v as usize].next_use;
        }
        let mut live_at_entry = NONE;
        let entry = b == f.entry_block();
        for &v in &self.nu_touched {
            if entry && self.back[v as usize].next_use != INF_POS {
                live_at_entry = live_at_entry.min(v);
            }
            self.back[v as usize] = BACK_NONE;
        }
        self.nu_touched.clear();
        if live_at_entry != NONE {
            return Err(Error::LiveInAtEntry(VReg(live_at_entry)));
        }
        Ok(())
    }

    /// Whether instruction `i` may need the residency plan: it may have
    /// to evict or serve an operand from memory. Each operand takes at most
    /// two registers (its own and a saved copy), so a class with more free
    /// registers than twice the operand count never runs out during the
    /// instruction, unless a register subset or clobbers narrow the choice.
    fn may_need_plan(&self, ops: &[Operand], clobbers: bool) -> bool {
        if clobbers {
            return true;
        }
        let mut classes = 0u32;
        for op in ops {
            if matches!(op.constraint, Constraint::Subset(_)) {
                return true;
            }
            classes |= 1 << self.class[op.vreg.index()];
        }
        let limit = 2 * ops.len() as u32;
        (0..3).any(|c| {
            classes >> c & 1 != 0 && (self.allocatable[c] & !self.occupied[c]).count_ones() <= limit
        })
    }

    /// Starts the plan of the current block from its live-out values
    /// (`track`: record them for the reset; the next-use pass already
    /// does when the two are fused).
    fn init_plan(&mut self, track: bool) {
        for k in 0..self.plan_init.len() {
            let (v, pos) = self.plan_init[k];
            let back = &mut self.back[v as usize];
            back.plan_pos = pos;
            back.plan = PLAN_LIVE_OUT;
            if track {
                self.nu_touched.push(v);
            }
        }
    }

    /// One backward step of the residency plan: the instruction with
    /// operands `ops` at position `pos`, whose first operand is `ob` in
    /// the block (`track` as for [`Scan::init_plan`]).
    #[inline(always)]
    fn plan_inst(&mut self, ops: &[Operand], pos: u32, ob: usize, track: bool) {
        let facts = &mut self.op[ob..ob + ops.len()];
        for (k, op) in ops.iter().enumerate() {
            let v = op.vreg;
            // One step per vreg accessed here (an operand naming an
            // earlier operand's vreg shares its step).
            let (mut first, mut writes, mut reads, mut foldable) = (k, false, false, true);
            for (j, o) in ops.iter().enumerate() {
                if o.vreg == v {
                    // A vreg named twice is never served from its slot:
                    // an instruction has one memory operand, so the
                    // other would load it anyway.
                    foldable &= j == k;
                    first = first.min(j);
                    writes |= o.is_def();
                    reads |= o.is_use();
                    foldable &= o.constraint == Constraint::Any;
                }
            }
            if first < k {
                let shared = facts[first];
                facts[k].drop_base = shared.drop_base;
                facts[k].gain = shared.gain;
                continue;
            }
            let back = &mut self.back[v.index()];
            let (g, gain) = plan_step((back.plan_pos, back.plan), pos, writes, foldable);
            facts[k].gain = gain;
            facts[k].drop_base = back.plan;
            if reads {
                back.plan_pos = pos;
                back.plan = g;
                if track {
                    self.nu_touched.push(v.0);
                }
            } else {
                back.plan_pos = NONE;
                back.plan = PLAN_NONE;
            }
        }
    }

    /// Computes the residency plan of the current block (the operands'
    /// `gain` and `drop_base`), once per block and only when an
    /// instruction may need it (most blocks of small functions never do),
    /// then brings the drop costs of the values accessed before `i` up to
    /// date.
    fn ensure_plan<F: Function>(&mut self, f: &F, i: Inst) {
        if self.plan_ready {
            return;
        }
        self.plan_ready = true;
        let r = self.cur_range;
        let base = self.blk_base;
        self.init_plan(true);
        for j in r.iter().rev() {
            let ob = self.alloc_off[j.index()] as usize - base;
            self.plan_inst(f.inst_operands(j), 2 * j.0, ob, true);
        }
        for &v in &self.nu_touched {
            self.back[v as usize] = BACK_NONE;
        }
        self.nu_touched.clear();
        // The drop costs after the accesses already allocated.
        for j in r.start.index()..i.index() {
            let ops = f.inst_operands(Inst::new(j));
            let ob = self.alloc_off[j] as usize - base;
            for (k, op) in ops.iter().enumerate() {
                self.v[op.vreg.index()].drop_base = self.op[ob + k].drop_base;
            }
        }
    }

    /// Whether the live range of `v` at or after position `pos` crosses a
    /// call (the range, not the whole value: in a range without calls a
    /// caller-saved register does). Positions only grow during the scan, so
    /// a cursor per vreg walks its ranges once.
    fn crosses_call_at(&mut self, ivs: &Intervals, v: u32, pos: u32) -> bool {
        if !self.has_calls {
            return false;
        }
        let ranges = ivs.ranges(VReg(v));
        let cur = &mut self.range_cursor[v as usize];
        while (*cur as usize) < ranges.len() && ranges[*cur as usize].end < pos {
            *cur += 1;
        }
        ranges.get(*cur as usize).is_some_and(|r| r.crosses_call)
    }

    /// Whether `w`'s current value is still needed after instruction `i`.
    fn survives(&self, w: u32, ops: &[OpInfo]) -> bool {
        for o in ops {
            if o.vreg == w {
                return o.next_after != INF_POS && !o.defined_here;
            }
        }
        self.v[w as usize].next_use != INF_POS
    }

    fn next_after(&self, w: u32, ops: &[OpInfo]) -> u32 {
        for o in ops {
            if o.vreg == w {
                return if o.defined_here {
                    INF_POS
                } else {
                    o.next_after
                };
            }
        }
        self.v[w as usize].next_use
    }

    /// Makes register `hw` of `class` free before `i`, preserving its
    /// owner if still needed (into a free register outside `avoid`, else its
    /// slot).
    #[allow(clippy::too_many_arguments)]
    fn make_free(
        &mut self,
        i: Inst,
        class: usize,
        hw: u8,
        avoid: u32,
        ops: &[OpInfo],
        prefer_callee: bool,
        log: &mut DecisionLog,
        evict_reason: bool,
    ) {
        let w = self.owner[class * 32 + hw as usize];
        if w == NONE {
            return;
        }
        let ws = self.v[w as usize];
        let needed = self.survives(w, ops) || ops.iter().any(|o| o.vreg == w);
        let other_copy = ws.regs & !(1 << hw) & !self.doomed[class] != 0;
        if needed && !other_copy && !ws.in_slot && !self.remat[w as usize] {
            let free = self.allocatable[class] & !self.occupied[class] & !avoid & !(1 << hw);
            let pref = if prefer_callee {
                free & self.callee_saved[class]
            } else {
                free & !self.callee_saved[class]
            };
            let key = 6 * i.0 + 1;
            let from = Allocation::Reg(self.preg(class, hw));
            if free != 0 && !evict_reason {
                let to = lowest(if pref != 0 { pref } else { free });
                let to_r = self.preg(class, to);
                self.edit(
                    key,
                    Edit::Move {
                        from,
                        to: Allocation::Reg(to_r),
                        class: RegClass::ALL[class],
                        vreg: OptVReg::some(VReg(w)),
                    },
                );
                self.set_owner(class, to, w);
                log.push(
                    i,
                    Some(VReg(w)),
                    Reason::SaveAcrossClobber(self.preg(class, hw)),
                );
            } else {
                self.store_to_slot(key, from, RegClass::ALL[class], w);
                if evict_reason {
                    self.log_evict(i, w, ops, true, log);
                } else {
                    log.push(
                        i,
                        Some(VReg(w)),
                        Reason::SaveAcrossClobber(self.preg(class, hw)),
                    );
                }
            }
        } else if evict_reason && log.enabled {
            self.log_evict(i, w, ops, false, log);
        }
        self.owner[class * 32 + hw as usize] = NONE;
        self.occupied[class] &= !(1 << hw);
        self.v[w as usize].regs &= !(1 << hw);
    }

    fn log_evict(&self, i: Inst, w: u32, ops: &[OpInfo], stored: bool, log: &mut DecisionLog) {
        if !log.enabled {
            return;
        }
        let n = self.next_after(w, ops);
        let d = if n == INF_POS {
            u32::MAX
        } else {
            n.saturating_sub(2 * i.0) / 2
        };
        log.push(
            i,
            Some(VReg(w)),
            Reason::Evict {
                next_use: d,
                weight: self.cur_weight,
                stored,
            },
        );
    }

    /// Exchanges register `hw` of class `c` with a register `r` holding
    /// `v` when `v` is read here in `hw` and the value in `hw` is read here
    /// in `r`: a two-register cycle of fixed uses takes one swap instead of
    /// three moves through a free register. Returns whether it did.
    fn swap_fixed(
        &mut self,
        i: Inst,
        ops: &[Operand],
        c: usize,
        v: u32,
        hw: u8,
        log: &mut DecisionLog,
    ) -> bool {
        let w = self.owner[c * 32 + hw as usize];
        if !self.has_swap[c] || w == NONE {
            return false;
        }
        let Some(r) = fixed_read_of(ops, w, c, |q| self.owner[c * 32 + q as usize] == v) else {
            return false;
        };
        let (a, b) = (self.preg(c, r), self.preg(c, hw));
        self.edit(6 * i.0 + 1, Edit::Swap { a, b });
        self.owner[c * 32 + hw as usize] = v;
        self.owner[c * 32 + r as usize] = w;
        let both = 1 << r | 1 << hw;
        self.v[v as usize].regs ^= both;
        self.v[w as usize].regs ^= both;
        log.push(i, Some(VReg(v)), Reason::FixedCopy(b));
        log.push(i, Some(VReg(w)), Reason::FixedCopy(a));
        true
    }

    /// Puts a copy of `v` into free register `hw` before `i`.
    fn load_into(
        &mut self,
        i: Inst,
        v: u32,
        class: usize,
        hw: u8,
        log: &mut DecisionLog,
    ) -> Result<(), Error> {
        let s = self.v[v as usize];
        let to = self.preg(class, hw);
        let key = 6 * i.0 + 1;
        if s.regs & (1 << hw) != 0 {
            return Ok(());
        }
        if s.regs != 0 {
            let from = self.preg(class, lowest(s.regs));
            self.edit(
                key,
                Edit::Move {
                    from: Allocation::Reg(from),
                    to: Allocation::Reg(to),
                    class: RegClass::ALL[class],
                    vreg: OptVReg::some(VReg(v)),
                },
            );
        } else if s.in_slot {
            self.edit(
                key,
                Edit::Move {
                    from: Allocation::Stack(SpillSlot::new(v)),
                    to: Allocation::Reg(to),
                    class: RegClass::ALL[class],
                    vreg: OptVReg::some(VReg(v)),
                },
            );
            log.push(i, Some(VReg(v)), Reason::Reload);
        } else if self.remat[v as usize] {
            self.edit(key, Edit::Remat { vreg: VReg(v), to });
            log.push(i, Some(VReg(v)), Reason::Remat);
        } else {
            return Err(Error::Internal(format!("{i}: {} has no location", VReg(v))));
        }
        self.set_owner(class, hw, v);
        Ok(())
    }

    /// Chooses a register for `v` among `allowed & !avoid`: a free one
    /// (`extra_free` counts as free), by hint and call preference, else
    /// evicts the best candidate. Returns the (now free or `extra_free`)
    /// register.
    #[allow(clippy::too_many_arguments)]
    fn choose_reg(
        &mut self,
        i: Inst,
        v: u32,
        class: usize,
        allowed: u32,
        avoid: u32,
        extra_free: u32,
        hint: u8,
        ivs: &Intervals,
        ops: &[OpInfo],
        log: &mut DecisionLog,
        pre: Option<u8>,
    ) -> Result<u8, Error> {
        let cand = allowed & !avoid;
        if cand == 0 {
            return Err(Error::OutOfRegisters {
                inst: i,
                class: RegClass::ALL[class],
            });
        }
        let free = cand & (!self.occupied[class] | extra_free);
        if free != 0 {
            if hint < 32 && free & (1 << hint) != 0 {
                log.push(i, Some(VReg(v)), Reason::Hint(self.preg(class, hint)));
                return Ok(hint);
            }
            let d = free & extra_free;
            if d != 0 {
                return Ok(lowest(d));
            }
            let pref = if self.crosses_call_at(ivs, v, 2 * i.0) {
                free & self.callee_saved[class]
            } else {
                free & !self.callee_saved[class]
            };
            let pref = if pref != 0 { pref } else { free };
            return Ok(self.free_longest(i, class, pref));
        }
        // Evict: farthest next use, with a bonus for values needing no store.
        let best = match pre {
            Some(hw) => hw,
            None => self.victim(i, class, cand, ops).hw,
        };
        self.make_free(i, class, best, avoid, ops, false, log, true);
        Ok(best)
    }

    /// Among the free registers `free`, the one free longest: whose next
    /// fixed use or clobber in this block comes last (Wimmer's free-until
    /// position; none counts as the end of the block).
    fn free_longest(&mut self, i: Inst, class: usize, free: u32) -> u8 {
        if !self.block_has_fixed {
            return lowest(free);
        }
        let here = 2 * i.0;
        let mut best = lowest(free);
        let mut best_until = 0u32;
        let mut m = free;
        while m != 0 {
            let hw = lowest(m);
            m &= m - 1;
            let l = &mut self.fixed_pos[class * 32 + hw as usize];
            while l.last().is_some_and(|&p| p < here) {
                l.pop();
            }
            let until = l.last().copied().unwrap_or(INF_POS);
            if until > best_until {
                best_until = until;
                best = hw;
                if until == INF_POS {
                    break;
                }
            }
        }
        best
    }

    /// The eviction victim among `cand` (all occupied): a value with
    /// another surviving copy if any, else the one whose eviction the plan
    /// says costs least (its [`Plan`], plus one stack access for a value
    /// read here), the farthest next use among
    /// equals. Also returns the farthest next-use distance among them and
    /// the victim's loss.
    fn victim(&self, i: Inst, class: usize, cand: u32, ops: &[OpInfo]) -> Victim {
        // Each candidate gets one 64-bit key, largest wins, so the loop
        // has no data-dependent branch: bit 63 "has another copy", then the
        // complement of the loss (31 bits), the next-use distance (27
        // bits, saturated), the register (5 bits).
        const DIST_BITS: u32 = 27;
        const LOSS_MAX: u64 = (1 << 31) - 1;
        debug_assert!(self.plan_ready, "{i}: eviction without the residency plan");
        let mut best_key = 0u64;
        let mut far = 0u32;
        let here = 2 * i.0;
        let doomed = self.doomed[class];
        let owners: &[u32; 32] = self.owner[class * 32..class * 32 + 32]
            .try_into()
            .expect("32 registers per class");
        let mut m = cand & self.occupied[class];
        while m != 0 {
            let hw = lowest(m);
            m &= m - 1;
            let w = owners[hw as usize & 31];
            let ws = &self.v[w as usize];
            // Values read here have next_use == here: look at what follows.
            let (n, base) = if ws.next_use == here {
                let base = ops
                    .iter()
                    .find(|o| o.vreg == w)
                    .map_or(ws.drop_base, |o| o.drop_base);
                (self.next_after(w, ops), base)
            } else {
                (ws.next_use, ws.drop_base)
            };
            let dist = n.saturating_sub(here);
            far = far.max(dist);
            let other_copy = ws.regs & !(1 << hw) & !doomed != 0;
            let base = if ws.in_slot | ws.remat {
                base[0]
            } else {
                base[1]
            };
            let loss = (base as u64)
                .saturating_sub(dist as u64 * HOLD_COST as u64)
                .min(LOSS_MAX);
            // A value this instruction reads counts one stack access more:
            // evicted here it tends to come straight back (a base pointer
            // read by a run of loads), and spilling it can cost a slot no
            // other value shares (workload B: 65 slots without this).
            let read_here = ws.next_use == here;
            let loss = (loss + if read_here { MISS_COST as u64 } else { 0 }).min(LOSS_MAX);
            let key = (other_copy as u64) << 63
                | (LOSS_MAX - loss) << 32
                | (dist.min((1 << DIST_BITS) - 1) as u64) << 5
                | hw as u64;
            best_key = best_key.max(key);
        }
        let other_copy = best_key >> 63 != 0;
        Victim {
            hw: (best_key & 31) as u8,
            far,
            loss: if other_copy {
                0
            } else {
                (LOSS_MAX - (best_key >> 32 & LOSS_MAX)) as u32
            },
        }
    }

    fn allowed_mask(&self, class: usize, c: Constraint) -> u32 {
        match c {
            Constraint::Subset(m) => m.bits() & self.allocatable[class],
            Constraint::Fixed(p) => 1 << p.hw,
            _ => self.allocatable[class],
        }
    }

    /// The common cases in one pass: every operand is an early use or
    /// modify with a register (or register-or-memory) constraint whose value
    /// already sits in an allowed register, or, without modifies, one late
    /// def that gets a free register (a copy, a three-address form); no
    /// fixed registers, clobbers or reuses. The choices are those the
    /// general path makes. Returns false to take the general path.
    fn fast_inst<F: Function>(
        &mut self,
        f: &F,
        ivs: &Intervals,
        i: Inst,
        log: &mut DecisionLog,
    ) -> bool {
        let ops = f.inst_operands(i);
        if ops.len() > 4 || self.has_calls && !f.inst_clobbers(i).is_empty() {
            return false;
        }
        // Per operand: its vreg's class and the register chosen.
        let mut chosen = [(0usize, 0u8); 4];
        let mut def = None;
        let mut modifies = false;
        // Registers read here, per class.
        let mut read = [0u32; 3];
        for (k, op) in ops.iter().enumerate() {
            let c = self.class[op.vreg.index()] as usize;
            let allowed = match op.constraint {
                Constraint::Reg | Constraint::Any => self.allocatable[c],
                Constraint::Subset(m) => m.bits() & self.allocatable[c],
                _ => return false,
            };
            if op.kind == OperandKind::Def {
                if op.pos != OperandPos::Late || def.is_some() {
                    return false;
                }
                def = Some((k, allowed));
                continue;
            }
            if op.pos != OperandPos::Early {
                return false;
            }
            modifies |= op.kind == OperandKind::Modify;
            let have = self.v[op.vreg.index()].regs & allowed;
            if have == 0 {
                return false;
            }
            chosen[k] = (c, lowest(have));
            read[c] |= have & have.wrapping_neg();
        }
        let base = self.alloc_off[i.index()] as usize;
        let nb = base - self.blk_base;
        if let Some((d, allowed)) = def {
            if modifies {
                return false;
            }
            let v = ops[d].vreg;
            let c = self.class[v.index()] as usize;
            // Registers whose value is read here for the last time.
            let mut dying = 0u32;
            let mut m = self.occupied[c] & read[c];
            while m != 0 {
                let hw = lowest(m);
                m &= m - 1;
                let w = self.owner[c * 32 + hw as usize];
                if w != NONE && !self.survives_at(w, ops, nb) {
                    dying |= 1 << hw;
                }
            }
            let free = allowed & (!self.occupied[c] | dying);
            if free == 0 {
                return false;
            }
            let mut hint = self.op[nb + d].hint;
            if let Some((_, src)) = f.is_move(i).filter(|m| m.0 == v) {
                let sr = self.v[src.index()].regs & dying;
                if sr != 0 {
                    hint = lowest(sr);
                }
            }
            let hw = if hint < 32 && free & (1 << hint) != 0 {
                log.push(i, Some(v), Reason::Hint(self.preg(c, hint)));
                hint
            } else if free & dying != 0 {
                lowest(free & dying)
            } else {
                let pref = if self.crosses_call_at(ivs, v.0, 2 * i.0) {
                    free & self.callee_saved[c]
                } else {
                    free & !self.callee_saved[c]
                };
                self.free_longest(i, c, if pref != 0 { pref } else { free })
            };
            chosen[d] = (c, hw);
            // Values read for the last time (and the def's old value)
            // leave their registers, then the def takes its own.
            for (k, op) in ops.iter().enumerate() {
                let w = op.vreg;
                if ops[..k].iter().all(|o| o.vreg != w) && !self.survives_at(w.0, ops, nb) {
                    self.clear_vreg_regs(w.0);
                }
            }
            self.clear_vreg_regs(v.0);
            self.v[v.index()].in_slot = false;
            let r = self.preg(c, hw);
            self.written |= bit(r);
            self.set_owner(c, hw, v.0);
            if self.op[nb + d].next == INF_POS {
                self.clear_vreg_regs(v.0);
            }
        }
        for (k, op) in ops.iter().enumerate() {
            let (c, hw) = chosen[k];
            let r = self.preg(c, hw);
            self.allocs[base + k] = Allocation::Reg(r);
            let v = op.vreg.0;
            let fact = self.op[nb + k];
            if def.is_some() {
                // Committed above.
            } else if op.kind == OperandKind::Modify {
                // The new value lives only in the modified register.
                if self.v[v as usize].regs != 1 << hw || fact.next == INF_POS {
                    self.clear_vreg_regs(v);
                    if fact.next != INF_POS {
                        self.set_owner(c, hw, v);
                    }
                }
                self.v[v as usize].in_slot = false;
                self.written |= bit(r);
            } else if fact.next == INF_POS
                && !ops
                    .iter()
                    .any(|o| o.vreg == op.vreg && o.kind == OperandKind::Modify)
            {
                // Last use.
                self.clear_vreg_regs(v);
            }
            let s = &mut self.v[v as usize];
            s.next_use = fact.next;
            s.drop_base = fact.drop_base;
        }
        true
    }

    /// `Scan::survives` for the instruction with operands `ops` (the first
    /// at `nb` in the block), from the backward scan's facts.
    fn survives_at(&self, w: u32, ops: &[Operand], nb: usize) -> bool {
        match ops.iter().position(|o| o.vreg.0 == w) {
            Some(k) => {
                self.op[nb + k].next != INF_POS && !ops.iter().any(|o| o.vreg.0 == w && o.is_def())
            }
            None => self.v[w as usize].next_use != INF_POS,
        }
    }

    /// Records the plan's drop costs after an access of `v` by operand `k`
    /// (numbered within the block).
    fn note_access(&mut self, v: u32, k: usize) {
        self.v[v as usize].drop_base = self.op[k].drop_base;
    }

    fn alloc_inst<F: Function>(
        &mut self,
        f: &F,
        ivs: &Intervals,
        i: Inst,
        log: &mut DecisionLog,
    ) -> Result<(), Error> {
        if self.fast_inst(f, ivs, i, log) {
            return Ok(());
        }
        let mut bufs = core::mem::take(&mut self.bufs);
        // Copies in non-allocatable registers are dropped after each
        // instruction, so they never count as surviving copies.
        self.doomed = [
            !self.allocatable[0],
            !self.allocatable[1],
            !self.allocatable[2],
        ];
        let r = self.alloc_inst_inner(f, ivs, i, log, &mut bufs);
        self.bufs = bufs;
        self.doomed = [0; 3];
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc_inst_inner<F: Function>(
        &mut self,
        f: &F,
        ivs: &Intervals,
        i: Inst,
        log: &mut DecisionLog,
        bufs: &mut InstBufs,
    ) -> Result<(), Error> {
        let ops = f.inst_operands(i);
        let n = ops.len();
        let base = self.alloc_off[i.index()] as usize;
        let nb = base - self.blk_base;
        let key = 6 * i.0 + 1;
        if !self.plan_ready && self.may_need_plan(ops, !f.inst_clobbers(i).is_empty()) {
            self.ensure_plan(f, i);
        }
        // Operand facts.
        let info = &mut bufs.info;
        info.clear();
        for (k, op) in ops.iter().enumerate() {
            let v = op.vreg.0;
            let defined_here = ops.iter().any(|o| o.vreg == op.vreg && o.is_def());
            if !info.iter().any(|o| o.vreg == v) {
                info.push(OpInfo {
                    vreg: v,
                    drop_base: self.op[nb + k].drop_base,
                    next_after: self.op[nb + k].next,
                    defined_here,
                });
            }
        }
        let info = &info[..];
        let alloc = &mut bufs.alloc;
        alloc.clear();
        alloc.resize(n, Allocation::None);
        // Registers fixed by any operand, per class.
        let mut fixed_any = [0u32; 3];
        let mut late_written = [0u32; 3];
        for op in ops {
            if let Constraint::Fixed(p) = op.constraint {
                fixed_any[p.class.index()] |= 1 << p.hw;
                if op.is_def() {
                    late_written[p.class.index()] |= 1 << p.hw;
                }
            }
        }
        let clobbers = f.inst_clobbers(i);
        for c in 0..3 {
            late_written[c] |= clobbers.class_mask(RegClass::ALL[c]);
        }
        let mut res_early = [0u32; 3];
        let mut res_late = [0u32; 3];
        let mut stack_used = false;
        // Bit k set: operand k is the input of a reuse def.
        let mut reuse_targets = 0u64;
        for op in ops {
            if let Constraint::Reuse(u) = op.constraint {
                reuse_targets |= 1 << (u as u64 & 63);
            }
        }
        let is_reuse_target = |k: usize| reuse_targets >> k & 1 != 0;
        // Instructions without fixed registers, clobbers, reuses, early defs
        // or late uses skip the steps that only those need.
        let simple = fixed_any == [0; 3]
            && clobbers.is_empty()
            && reuse_targets == 0
            && ops.iter().all(|o| match o.kind {
                OperandKind::Def => o.pos == OperandPos::Late,
                _ => o.pos == OperandPos::Early,
            });

        // B: fixed uses.
        if !simple {
            for (k, op) in ops.iter().enumerate() {
                let Constraint::Fixed(p) = op.constraint else {
                    continue;
                };
                if !op.is_use() {
                    continue;
                }
                let (c, hw, v) = (p.class.index(), p.hw, op.vreg.0);
                // A swap needs `v` in a register another fixed use reads.
                let in_fixed = self.v[v as usize].regs & fixed_any[c] & !(1 << hw) != 0;
                if self.owner[c * 32 + hw as usize] != v
                    && !(in_fixed && self.swap_fixed(i, ops, c, v, hw, log))
                {
                    let avoid = fixed_any[c] | res_early[c] | late_written[c];
                    self.make_free(i, c, hw, avoid, info, !clobbers.is_empty(), log, false);
                    self.load_into(i, v, c, hw, log)?;
                    log.push(i, Some(op.vreg), Reason::FixedCopy(p));
                }
                alloc[k] = Allocation::Reg(p);
                res_early[c] |= 1 << hw;
                if op.pos == OperandPos::Late || op.kind == OperandKind::Modify {
                    res_late[c] |= 1 << hw;
                }
            }
        }
        // C: non-fixed uses already in a suitable register.
        for (k, op) in ops.iter().enumerate() {
            if !op.is_use() || matches!(op.constraint, Constraint::Fixed(_)) || is_reuse_target(k) {
                continue;
            }
            let (c, v) = (self.vclass(op.vreg.0), op.vreg.0);
            let mut ok = self.allowed_mask(c, op.constraint) & self.v[v as usize].regs;
            if op.kind == OperandKind::Modify || op.pos == OperandPos::Late {
                ok &= !fixed_any[c] & !res_late[c];
            } else {
                // A plain use may share a fixed-use copy of the same value.
                let own_fixed = res_early[c] & self.v[v as usize].regs;
                ok &= !fixed_any[c] | own_fixed;
            }
            if ok != 0 {
                // Prefer a register already read by this instruction.
                let shared = ok & res_early[c];
                let hw = lowest(if shared != 0 { shared } else { ok });
                alloc[k] = Allocation::Reg(self.preg(c, hw));
                res_early[c] |= 1 << hw;
                if op.kind == OperandKind::Modify || op.pos == OperandPos::Late {
                    res_late[c] |= 1 << hw;
                }
            }
        }
        // D: remaining uses, farthest next use first (it is the fold candidate).
        let rest = &mut bufs.rest;
        rest.clear();
        for (k, op) in ops.iter().enumerate() {
            if op.is_use() && alloc[k] == Allocation::None && !is_reuse_target(k) {
                // Key: distance to the next use, scaled up for read-modify-write
                // operands (folding those keeps the loaded value clean).
                let d = self.op[nb + k].next.saturating_sub(2 * i.0);
                let key = if op.kind == OperandKind::Modify {
                    d.saturating_mul(16)
                } else {
                    d
                };
                rest.push((key, k));
            }
        }
        rest.sort_unstable_by(|a, b| b.cmp(a));
        for &(_, k) in rest.iter() {
            let op = ops[k];
            let (c, v) = (self.vclass(op.vreg.0), op.vreg.0);
            let write = op.kind == OperandKind::Modify || op.pos == OperandPos::Late;
            let allowed = self.allowed_mask(c, op.constraint);
            let avoid = fixed_any[c] | res_early[c] | if write { res_late[c] } else { 0 };
            // Another operand may have loaded the value meanwhile.
            let have = self.v[v as usize].regs
                & allowed
                & !fixed_any[c]
                & if write { !res_late[c] } else { u32::MAX };
            if have != 0 {
                let hw = lowest(have);
                alloc[k] = Allocation::Reg(self.preg(c, hw));
                res_early[c] |= 1 << hw;
                if write {
                    res_late[c] |= 1 << hw;
                }
                continue;
            }
            let s = self.v[v as usize];
            let mut pre = None;
            if op.constraint == Constraint::Any && !stack_used && s.in_slot {
                let cand = allowed & !avoid;
                let free = cand & !self.occupied[c];
                // Under pressure the plan decides: load the value only if that
                // gains more than evicting the victim loses; else serve it
                // from memory (a read-modify-write then stays clean in its
                // slot). No gain needs no victim.
                let gain = unpack_gain(self.op[nb + k].gain);
                debug_assert!(
                    self.plan_ready || free != 0 || cand == 0,
                    "{i}: fold without the plan"
                );
                let fold = free == 0
                    && cand != 0
                    && (gain == 0 || {
                        let vic = self.victim(i, c, cand, info);
                        pre = Some(vic.hw);
                        gain <= vic.loss
                    });
                if fold {
                    alloc[k] = Allocation::Stack(SpillSlot::new(v));
                    stack_used = true;
                    self.stats.folded += 1;
                    log.push(i, Some(op.vreg), Reason::Folded);
                    continue;
                }
            }
            let hw = self.choose_reg(i, v, c, allowed, avoid, 0, 0xff, ivs, info, log, pre)?;
            self.load_into(i, v, c, hw, log)?;
            alloc[k] = Allocation::Reg(self.preg(c, hw));
            res_early[c] |= 1 << hw;
            if write {
                res_late[c] |= 1 << hw;
            }
        }
        // E: reuse defs and their inputs.
        if reuse_targets != 0 {
            for (k, op) in ops.iter().enumerate() {
                let Constraint::Reuse(u) = op.constraint else {
                    continue;
                };
                let u = u as usize;
                let uop = ops[u];
                let (c, x) = (self.vclass(uop.vreg.0), uop.vreg.0);
                let hw = if let Constraint::Fixed(p) = uop.constraint {
                    // Placed in step B.
                    p.hw
                } else {
                    let allowed = self.allowed_mask(c, uop.constraint);
                    let xs = self.v[x as usize];
                    let dies = !self.survives(x, info);
                    let mine = xs.regs & allowed & !fixed_any[c] & !res_late[c];
                    if dies && mine != 0 {
                        lowest(mine)
                    } else {
                        let avoid = fixed_any[c] | res_early[c] | res_late[c];
                        let hw = self
                            .choose_reg(i, x, c, allowed, avoid, 0, 0xff, ivs, info, log, None)?;
                        self.load_into(i, x, c, hw, log)?;
                        hw
                    }
                };
                let r = self.preg(c, hw);
                alloc[u] = Allocation::Reg(r);
                alloc[k] = Allocation::Reg(r);
                res_early[c] |= 1 << hw;
                res_late[c] |= 1 << hw;
                late_written[c] |= 1 << hw;
            }
        }
        // Modify operands write their register at the late point.
        for (k, op) in ops.iter().enumerate() {
            if let (OperandKind::Modify, Allocation::Reg(r)) = (op.kind, alloc[k]) {
                late_written[r.class.index()] |= 1 << r.hw;
            }
        }
        for c in 0..3 {
            self.doomed[c] = late_written[c] | !self.allocatable[c];
        }
        // F: preserve values living in registers written at the late point.
        if !simple {
            for c in 0..3 {
                let mut m = late_written[c] & self.occupied[c];
                while m != 0 {
                    let hw = lowest(m);
                    m &= m - 1;
                    let w = self.owner[c * 32 + hw as usize];
                    if w == NONE {
                        continue;
                    }
                    let ws = self.v[w as usize];
                    if !self.survives(w, info) {
                        continue;
                    }
                    if ws.regs & !self.doomed[c] != 0 || ws.in_slot || self.remat[w as usize] {
                        continue;
                    }
                    let avoid = fixed_any[c] | res_early[c] | res_late[c] | late_written[c];
                    // Keep the copy in `hw` for this instruction's reads: save a
                    // second copy elsewhere first.
                    let free = self.allocatable[c] & !self.occupied[c] & !avoid;
                    let pref = free & self.callee_saved[c];
                    let from = Allocation::Reg(self.preg(c, hw));
                    if free != 0 {
                        let to = lowest(if pref != 0 && !clobbers.is_empty() {
                            pref
                        } else {
                            free
                        });
                        self.edit(
                            key,
                            Edit::Move {
                                from,
                                to: Allocation::Reg(self.preg(c, to)),
                                class: RegClass::ALL[c],
                                vreg: OptVReg::some(VReg(w)),
                            },
                        );
                        self.set_owner(c, to, w);
                        res_late[c] |= 1 << to;
                    } else {
                        self.store_to_slot(key, from, RegClass::ALL[c], w);
                    }
                    log.push(
                        i,
                        Some(VReg(w)),
                        Reason::SaveAcrossClobber(self.preg(c, hw)),
                    );
                }
            }
        }
        // G: defs.
        let mv = f.is_move(i);
        for (k, op) in ops.iter().enumerate() {
            if op.kind != OperandKind::Def || matches!(op.constraint, Constraint::Reuse(_)) {
                continue;
            }
            let (c, v) = (self.vclass(op.vreg.0), op.vreg.0);
            if let Constraint::Fixed(p) = op.constraint {
                // An early def's register must not hold anything needed.
                if op.pos == OperandPos::Early {
                    let w = self.owner[c * 32 + p.hw as usize];
                    if w != NONE && w != v {
                        let avoid = fixed_any[c] | res_early[c] | res_late[c];
                        self.make_free(i, c, p.hw, avoid, info, false, log, false);
                    }
                    res_early[c] |= 1 << p.hw;
                }
                alloc[k] = Allocation::Reg(p);
                res_late[c] |= 1 << p.hw;
                continue;
            }
            let allowed = self.allowed_mask(c, op.constraint);
            let early = op.pos == OperandPos::Early;
            // Registers whose value dies here and is not read late.
            let mut dying = 0u32;
            if !early {
                let mut m = self.occupied[c] & res_early[c] & !res_late[c];
                while m != 0 {
                    let hw = lowest(m);
                    m &= m - 1;
                    let w = self.owner[c * 32 + hw as usize];
                    if w != NONE && !self.survives(w, info) {
                        dying |= 1 << hw;
                    }
                }
            }
            let avoid = fixed_any[c] | res_late[c] | if early { res_early[c] } else { 0 };
            let mut hint = if self.op[nb + k].hint != 0xff {
                self.op[nb + k].hint
            } else {
                0xff
            };
            if let Some((_, src)) = mv.filter(|m| m.0.0 == v) {
                let sr = self.v[src.index()].regs & dying;
                if sr != 0 {
                    hint = lowest(sr);
                }
            }
            let cand = allowed & !avoid;
            let free = cand & (!self.occupied[c] | dying);
            let mut pre = None;
            if free == 0
                && cand != 0
                && op.constraint == Constraint::Any
                && !stack_used
                && !self.remat[v as usize]
            {
                let nxt = self.op[nb + k].next;
                let Victim { hw: vic, far, .. } = self.victim(i, c, cand, info);
                pre = Some(vic);
                if nxt == INF_POS || nxt.saturating_sub(2 * i.0) >= far {
                    alloc[k] = Allocation::Stack(SpillSlot::new(v));
                    stack_used = true;
                    self.stats.folded += 1;
                    log.push(i, Some(op.vreg), Reason::DefToSlot);
                    continue;
                }
            }
            let hw = self.choose_reg(i, v, c, allowed, avoid, dying, hint, ivs, info, log, pre)?;
            alloc[k] = Allocation::Reg(self.preg(c, hw));
            res_late[c] |= 1 << hw;
            if early {
                res_early[c] |= 1 << hw;
            }
        }
        // H: commit.
        for o in info {
            if !self.survives(o.vreg, info) {
                self.clear_vreg_regs(o.vreg);
            }
        }
        for r in clobbers.iter() {
            let c = r.class.index();
            let w = self.owner[r.index()];
            if w != NONE {
                self.v[w as usize].regs &= !(1 << r.hw);
                self.owner[r.index()] = NONE;
                self.occupied[c] &= !(1 << r.hw);
            }
        }
        for (k, op) in ops.iter().enumerate() {
            if !op.is_def() {
                continue;
            }
            let v = op.vreg.0;
            let c = self.vclass(v);
            self.clear_vreg_regs(v);
            self.v[v as usize].in_slot = false;
            match alloc[k] {
                Allocation::Reg(r) => {
                    self.written |= bit(r);
                    let w = self.owner[r.index()];
                    if w != NONE && w != v && self.survives(w, info) {
                        let ws = self.v[w as usize];
                        if ws.regs & !(1 << r.hw) == 0 && !ws.in_slot && !self.remat[w as usize] {
                            return Err(Error::Internal(format!(
                                "{i}: def of {} overwrites live {} in {r}",
                                VReg(v),
                                VReg(w)
                            )));
                        }
                    }
                    self.set_owner(c, r.hw, v);
                }
                Allocation::Stack(_) => self.mark_in_slot(v),
                Allocation::None => {
                    return Err(Error::Internal(format!("{i}: def without allocation")));
                }
            }
        }
        // Dead defs free their location at once.
        for (k, op) in ops.iter().enumerate() {
            if op.is_def() && self.op[nb + k].next == INF_POS {
                self.clear_vreg_regs(op.vreg.0);
            }
        }
        // A live value defined into a non-allocatable register moves to an
        if !simple {
            // allocatable place right after the instruction.
            for (k, op) in ops.iter().enumerate() {
                let Allocation::Reg(r) = alloc[k] else {
                    continue;
                };
                let c = r.class.index();
                if !op.is_def()
                    || self.allocatable[c] & (1 << r.hw) != 0
                    || self.op[nb + k].next == INF_POS
                {
                    continue;
                }
                if f.is_branch(i) || f.is_ret(i) {
                    return Err(Error::invalid(format!(
                        "{i}: a branch defines a live value in non-allocatable {r}"
                    )));
                }
                let v = op.vreg.0;
                let free = self.allocatable[c] & !self.occupied[c];
                let after = 6 * i.0 + 3;
                if free == 0 && self.remat[v as usize] {
                    // Recomputed where needed.
                    continue;
                }
                if free != 0 {
                    let to = lowest(free);
                    self.edit(
                        after,
                        Edit::Move {
                            from: Allocation::Reg(r),
                            to: Allocation::Reg(self.preg(c, to)),
                            class: r.class,
                            vreg: OptVReg::some(VReg(v)),
                        },
                    );
                    self.set_owner(c, to, v);
                } else {
                    self.store_to_slot(after, Allocation::Reg(r), r.class, v);
                }
            }
            // Non-allocatable fixed registers hold nothing between instructions.
            for c in 0..3 {
                let mut m = fixed_any[c] & !self.allocatable[c];
                while m != 0 {
                    let hw = lowest(m);
                    m &= m - 1;
                    let w = self.owner[c * 32 + hw as usize];
                    if w != NONE {
                        self.v[w as usize].regs &= !(1 << hw);
                        self.owner[c * 32 + hw as usize] = NONE;
                        self.occupied[c] &= !(1 << hw);
                    }
                }
            }
        }
        // Next uses.
        for (k, op) in ops.iter().enumerate() {
            self.v[op.vreg.index()].next_use = self.op[nb + k].next;
            self.note_access(op.vreg.0, nb + k);
        }
        for k in 0..n {
            if alloc[k] == Allocation::None {
                return Err(Error::Internal(format!("{i}: operand {k} not allocated")));
            }
            self.allocs[base + k] = alloc[k];
        }
        // Any value that stays live must still have a location.
        for o in info {
            if self.survives(o.vreg, info) || o.defined_here && o.next_after != INF_POS {
                let s = self.v[o.vreg as usize];
                if s.regs == 0 && !s.in_slot && !self.remat[o.vreg as usize] {
                    return Err(Error::Internal(format!("{i}: {} lost", VReg(o.vreg))));
                }
            }
        }
        Ok(())
    }
}

/// The register of class `c` in which an operand of `ops` reads vreg `w`
/// as a fixed use, among those `wanted` accepts: the other half of a
/// two-register cycle of fixed uses, which `swap_fixed` (here and in the
/// local allocator) exchanges with one swap.
pub(crate) fn fixed_read_of(
    ops: &[Operand],
    w: u32,
    c: usize,
    mut wanted: impl FnMut(u8) -> bool,
) -> Option<u8> {
    ops.iter().find_map(|o| match o.constraint {
        Constraint::Fixed(q)
            if o.vreg.0 == w && o.is_use() && q.class.index() == c && wanted(q.hw) =>
        {
            Some(q.hw)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan as it was first written: the three costs to go, in
    /// saturating arithmetic (the reference [`plan_step`] must match).
    fn step_by_costs(npos: u32, g: [u32; 3], pos: u32, writes: bool, foldable: bool) -> [u32; 4] {
        let hold = npos.saturating_sub(pos).saturating_mul(HOLD_COST);
        let after_mem = g[0];
        let after_clean = after_mem.min(hold.saturating_add(g[1]));
        let after_dirty = after_mem
            .saturating_add(MISS_COST)
            .min(hold.saturating_add(g[2]));
        let after_load = if writes { after_dirty } else { after_clean };
        let gain = if foldable {
            after_mem.saturating_sub(after_load)
        } else {
            u32::MAX
        };
        let miss = MISS_COST.saturating_add(if foldable {
            after_load.min(after_mem)
        } else {
            after_load
        });
        [miss, after_load, after_dirty, gain]
    }

    /// What the costs `g` say dropping the value costs (the [`Plan`]).
    fn drop_costs(g: [u32; 3]) -> Plan {
        [g[0] - g[1], g[0] + MISS_COST - g[2]].map(|c| c as u16)
    }

    /// Random chains of accesses of one value, from the end backwards
    /// (with no read ahead, or live out), give the same gains and drop
    /// costs by either form of the plan.
    #[test]
    fn plan_matches_the_costs_it_stands_for() {
        let mut rng = crate::testfn::Lcg(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: u64| rng.next() % n;
        for _ in 0..20_000 {
            let live_out = next(2) == 0;
            let mut pos = 2 * next(1 << 25) as u32 + 1000;
            let (mut npos, mut g, mut plan) = if live_out {
                (pos, [MISS_COST, 0, 0], PLAN_LIVE_OUT)
            } else {
                (NONE, [0; 3], PLAN_NONE)
            };
            for _ in 0..next(30) + 1 {
                const GAPS: [u32; 10] = [0, 1, 1, 2, 3, 5, 10, 30, 60, 1000];
                pos = pos.saturating_sub(2 * GAPS[next(10) as usize]);
                let (writes, foldable, reads) = (next(5) < 2, next(2) == 0, next(5) < 4);
                assert_eq!(drop_costs(g), plan, "{g:?}");
                let [miss, load, dirty, gain] = step_by_costs(npos, g, pos, writes, foldable);
                let (p, packed) = plan_step((npos, plan), pos, writes, foldable);
                if foldable {
                    assert_eq!(u32::from(packed), gain, "{npos} {g:?} {pos} {writes}");
                } else {
                    assert_eq!(packed, u16::MAX);
                }
                (npos, g, plan) = if reads {
                    (pos, [miss, load, dirty], p)
                } else {
                    (NONE, [0; 3], PLAN_NONE)
                };
            }
        }
    }
}
