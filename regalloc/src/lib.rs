//! Register allocation for jitforge: liveness, a linear-scan allocator with
//! lazy splitting, spill-slot sharing, edge resolution with parallel moves,
//! and a symbolic checker.
//!
//! The allocator sees a function only through the [`Function`] trait
//! (blocks, instructions, operands with constraints) and a [`MachineEnv`].
//! [`Allocator::run`] returns, in an [`Output`], a location for every
//! operand, the moves, stores, reloads and rematerializations to insert
//! ([`Edit`]), critical edges to split ([`EdgeSplit`]), the spill slots
//! (hottest first), statistics and a decision log.
//!
//! Pipeline (one module each): [`cfg`](mod@cfg) (validation, loop depth) →
//! [`liveness`] (live sets, next-use distances) → [`interval`] (hulls, call
//! crossing) → [`linear_scan`] (the allocation) → [`resolve`] (edges, with
//! [`moves`] for parallel moves) → [`spill`] (slots) → [`checker`].
//! A function of one block without calls takes [`local`] instead of the
//! first five (the same decisions from flat arrays, in two passes, or one
//! when every value can keep a register), then [`spill`] and [`checker`].
//!
//! ```
//! use jitforge_regalloc::{Allocator, MachineEnv, Options, Output};
//! use jitforge_regalloc::testfn::Builder;
//!
//! let mut b = Builder::new();
//! let x = b.vreg_gp();
//! let y = b.vreg_gp();
//! b.block();
//! b.args(&[(x, 7), (y, 6)]);       // x in rdi, y in rsi
//! b.modify_any(x, y);                // add x, y
//! b.ret(x);                          // result in rax
//! let f = b.finish();
//! let mut out = Output::default();
//! Allocator::new()
//!     .run(&f, &MachineEnv::x86_64_sysv(false), &Options::checked(), &mut out)
//!     .unwrap();
//! assert_eq!(out.stats.stores, 0);
//! ```
//!
//! Applying the result: for each instruction, emit the `Before` edits at
//! that point, the instruction with its operands replaced by
//! [`Output::inst_allocs`] (a [`Allocation::Stack`] operand is the memory
//! operand `[spill area + slot offset]`), then the `After` edits; for each
//! [`EdgeSplit`], a new block with its edits between the two blocks. A
//! `Swap` is `xchg` (GP only); `Remat` re-executes the value's constant
//! definition. The frame saves [`Output::used_callee_saved`] and reserves
//! [`Output::spill_area_size`] bytes.
//!
//! Testing: `cargo test -p jitforge-regalloc` (generated functions through
//! proptest and a fixed sweep, unit properties, golden counts);
//! `REGALLOC_SWEEP=N` and `REGALLOC_RAW_SWEEP=N` lengthen the sweeps.
//! Fuzzing (nightly): `cd fuzz && cargo +nightly fuzz run regalloc --
//! -max_total_time=1800 -len_control=0 -max_len=4096`. Bench:
//! `cargo bench -p jitforge-regalloc --bench workload_b`. Quality:
//! `cargo run --release -p jitforge-regalloc --example quality` (counts on
//! workload B and the generated sweep) and `--example lower_bound` (the
//! fewest stack-touching instructions any allocation of workload B can
//! have: at least 12,110 at 10,000 operations, against 12,440 here).

// Loops over the three register classes index several parallel arrays.
#![allow(clippy::needless_range_loop)]

pub mod cfg;
pub mod checker;
pub mod error;
pub mod function;
pub mod fuzzing;
pub mod interval;
pub mod linear_scan;
pub mod liveness;
pub mod local;
pub mod log;
pub mod moves;
pub mod output;
pub mod resolve;
pub mod spill;
pub mod testfn;

pub use checker::CheckError;
pub use error::Error;
pub use function::{
    Block, Constraint, FrameLayout, Function, Inst, InstRange, MachineEnv, Mentions, Operand,
    OperandKind, OperandPos, PReg, PRegSet, RegClass, RegMask, VReg, VRegMentions, Vouched,
};
pub use log::{Decision, DecisionLog, Reason};
pub use output::{
    Allocation, EdgeSplit, Edit, OptVReg, Output, ProgPoint, SlotInfo, SpillSlot, Stats, listing,
};

/// Switches for one allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Run the checker on the result (a failure is [`Error::Check`]).
    pub check: bool,
    /// Record the decision log.
    pub log: bool,
}

impl Options {
    /// Checker on, log off (what tests and fuzzing use).
    pub fn checked() -> Options {
        Options {
            check: true,
            log: false,
        }
    }
}

/// The allocation context. Keeps its buffers between functions, so that
/// allocating many small functions causes little heap traffic.
#[derive(Default)]
pub struct Allocator {
    cfg: cfg::CfgInfo,
    live: liveness::Liveness,
    ivs: interval::Intervals,
    scan: linear_scan::Scan,
    resolver: resolve::Resolver,
    slots: spill::SlotAssigner,
    counts: Vec<u32>,
    sorted: Vec<(u32, Edit)>,
    local: local::Local,
    /// Whether every function takes the general path (see
    /// [`Allocator::set_general_only`]).
    general_only: bool,
    /// Whether the last run took the local allocator.
    took_local: bool,
}

impl Allocator {
    /// A new context.
    pub fn new() -> Allocator {
        Allocator::default()
    }

    /// Makes every function take the general path (liveness, linear
    /// scan, resolution), even one the local allocator of
    /// [`local`](mod@local) would take: for comparing the two.
    pub fn set_general_only(&mut self, on: bool) {
        self.general_only = on;
    }

    /// Whether the last [`Allocator::run`] took the local allocator (for
    /// tests that must reach it).
    pub fn took_local_path(&self) -> bool {
        self.took_local
    }

    /// Allocates `f` on `env` into `out` (cleared first, buffers kept).
    /// A function of one block without calls goes to the local allocator
    /// ([`local`](mod@local)), any other (or one it declines) to the
    /// general path.
    pub fn run<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        opts: &Options,
        out: &mut Output,
    ) -> Result<(), Error> {
        out.clear();
        out.log.enabled = opts.log;
        // Spill slots are numbered by vreg (plus one scratch slot per class)
        // until they are packed, and a slot number has 24 bits.
        if f.num_vregs() as u64 + 3 >= SpillSlot::LIMIT as u64 {
            return Err(Error::invalid(format!(
                "{} virtual registers: the allocator takes fewer than {}",
                f.num_vregs(),
                SpillSlot::LIMIT - 3
            )));
        }
        self.took_local = !self.general_only && self.local.run(f, env, &mut out.log);
        if self.took_local {
            return self.finish_local(f, env, opts, out);
        }
        cfg::analyze(f, env, &mut self.cfg)?;
        // The live ranges only tell the scan which values cross a call.
        let calls = !self.cfg.clobbers.is_empty();
        if !calls && f.num_blocks() == 1 && f.block_succs(f.entry_block()).is_empty() {
            // Nothing is live at the boundaries of a lone block; a value
            // read before it is written is found by the scan.
            self.live.set_lone_block();
        } else {
            self.live.compute(f, &self.cfg)?;
        }
        if calls {
            self.ivs.compute(f, &self.cfg, &self.live);
        }
        // The scan numbers its allocations by the operand offsets `cfg`
        // computed: it takes that buffer (the output's, in the end) rather
        // than a copy, one buffer fewer at the compile's peak; `cfg` gets
        // the scan's emptied one back.
        core::mem::swap(&mut self.scan.alloc_off, &mut self.cfg.op_offsets);
        self.scan
            .run(f, env, &self.cfg, &self.live, &self.ivs, &mut out.log)?;
        let nv = f.num_vregs();
        {
            let scan = &mut self.scan;
            self.resolver.run(
                f,
                env,
                scan,
                |v| f.is_remat(VReg(v)),
                |c| SpillSlot::new((nv + c) as u32),
                &mut out.edge_splits,
                &mut out.log,
            )?;
        }
        // Spill slots: touch every virtual slot with its loop depth.
        self.slots.reset(nv + 3);
        let cfgi = &self.cfg;
        // Every operand in memory counts as folded.
        let operands_in_memory = self.scan.stats.folded != 0;
        if operands_in_memory {
            for ii in 0..f.num_insts() {
                let s = self.scan.alloc_off[ii] as usize;
                let e = self.scan.alloc_off[ii + 1] as usize;
                for a in &self.scan.allocs[s..e] {
                    if let Allocation::Stack(sl) = a {
                        self.slots
                            .touch(sl.number(), spill::inst_depth(cfgi, ii as u32));
                    }
                }
            }
        }
        for &(key, e) in &self.scan.raw_edits {
            let d = spill::inst_depth(cfgi, key / 6);
            touch_edit(&mut self.slots, &e, interval::depth_weight(d));
        }
        for sp in &out.edge_splits {
            let d = cfgi.loop_depth[sp.from.index()].min(cfgi.loop_depth[sp.to.index()]);
            for e in &sp.edits {
                touch_edit(&mut self.slots, e, interval::depth_weight(d));
            }
        }
        if !calls && self.slots.any_vreg_touched(nv) {
            // Slot sharing needs the hulls.
            self.ivs.compute_hulls(f, &self.cfg, &self.live);
        }
        out.spill_area_size = self
            .slots
            .assign(f, &self.ivs, env.slot_size, &mut out.slots);
        // Allocations: the scan's buffers become the output's (and the
        // output's emptied ones the scan's), so they are never copied.
        if operands_in_memory {
            for a in self.scan.allocs.iter_mut() {
                self.slots.rewrite_in_place(a);
            }
        }
        core::mem::swap(&mut out.allocs, &mut self.scan.allocs);
        core::mem::swap(&mut out.inst_alloc_offsets, &mut self.scan.alloc_off);
        // Edits in program order: counting sort by key.
        let nkeys = 6 * f.num_insts() + 6;
        let already_sorted = self.scan.raw_edits.windows(2).all(|w| w[0].0 <= w[1].0);
        if !already_sorted {
            self.counting_sort(nkeys);
        }
        let sorted = if already_sorted {
            &mut self.scan.raw_edits
        } else {
            &mut self.sorted
        };
        // The sorted buffer becomes the output's, converted in place (the
        // element sizes match, so `collect` reuses the allocation): a copy
        // here would be the peak of the whole compile. The output's emptied
        // buffer goes back the same way, so no buffer is lost.
        let slots = &self.slots;
        let edits = core::mem::take(sorted)
            .into_iter()
            .map(|(k, e)| (ProgPoint::from_sort_key(k), slots.rewrite_edit(e)))
            .collect();
        let emptied = core::mem::replace(&mut out.edits, edits);
        // (`emptied` was cleared with the output: the map never runs.)
        *sorted = emptied.into_iter().map(|(_, e)| (0, e)).collect();
        self.shed_large_scratch();
        let (stats, written) = (self.scan.stats, self.scan.written | self.cfg.clobbers.0);
        self.finish(f, env, opts, stats, written, out)
    }

    /// The rest of [`Allocator::run`] after the local allocator: spill
    /// slots (shared by hull, hottest first), then the common finish.
    fn finish_local<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        opts: &Options,
        out: &mut Output,
    ) -> Result<(), Error> {
        let nv = f.num_vregs();
        let loc = &mut self.local;
        let s = loc.stats;
        // Without stack accesses there are no slots (`out` was cleared).
        if s.stack_touching() != 0 {
            self.slots.reset(nv + 3);
            let d = loc.depth;
            // One block: every access weighs the same.
            let w = interval::depth_weight(d);
            // The operands in memory are listed (one per folded operand):
            // no pass over every allocation.
            for &k in &loc.stack_allocs {
                if let Allocation::Stack(sl) = loc.allocs[k as usize] {
                    self.slots.touch_weighted(sl.number(), w);
                }
            }
            for (_, e) in &loc.edits {
                touch_edit(&mut self.slots, e, w);
            }
            // Slot sharing needs the hulls: the backward pass's, or those of
            // one block at depth `d` with nothing live at its boundaries.
            if loc.hulls {
                loc.take_hulls(&mut self.ivs.start, &mut self.ivs.end);
            } else {
                self.cfg.loop_depth.clear();
                self.cfg.loop_depth.push(d);
                self.live.set_lone_block();
                self.ivs.compute_hulls(f, &self.cfg, &self.live);
            }
            out.spill_area_size = self
                .slots
                .assign(f, &self.ivs, env.slot_size, &mut out.slots);
        }
        for &k in &loc.stack_allocs {
            self.slots.rewrite_in_place(&mut loc.allocs[k as usize]);
        }
        if s.stores + s.reloads != 0 {
            for (_, e) in loc.edits.iter_mut() {
                self.slots.rewrite_edit_in_place(e);
            }
        }
        core::mem::swap(&mut out.allocs, &mut loc.allocs);
        core::mem::swap(&mut out.inst_alloc_offsets, &mut loc.alloc_off);
        core::mem::swap(&mut out.edits, &mut loc.edits);
        loc.shed_large_scratch();
        let (stats, written) = (loc.stats, loc.written);
        self.finish(f, env, opts, stats, written, out)
    }

    /// Frees the scratch buffers a large function grew (see
    /// [`shed_if_large`]); the output and small buffers stay.
    fn shed_large_scratch(&mut self) {
        shed_if_large(&mut self.sorted);
        shed_if_large(&mut self.counts);
        shed_if_large(&mut self.cfg.inst_block);
        shed_if_large(&mut self.cfg.op_offsets);
        self.scan.shed_large_scratch();
    }

    fn counting_sort(&mut self, nkeys: usize) {
        self.counts.clear();
        self.counts.resize(nkeys + 1, 0);
        for &(k, _) in &self.scan.raw_edits {
            self.counts[k as usize + 1] += 1;
        }
        for k in 0..nkeys {
            self.counts[k + 1] += self.counts[k];
        }
        self.sorted.clear();
        if let Some(&first) = self.scan.raw_edits.first() {
            self.sorted.resize(self.scan.raw_edits.len(), first);
        }
        for &(k, e) in &self.scan.raw_edits {
            let pos = &mut self.counts[k as usize];
            self.sorted[*pos as usize] = (k, e);
            *pos += 1;
        }
    }

    /// Edge splits' slots, statistics, callee-saved registers (`written`:
    /// every register the allocation or the clients' clobbers change),
    /// frame padding and the checker.
    fn finish<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        opts: &Options,
        stats: Stats,
        written: u128,
        out: &mut Output,
    ) -> Result<(), Error> {
        for sp in out.edge_splits.iter_mut() {
            for e in sp.edits.iter_mut() {
                self.slots.rewrite_edit_in_place(e);
            }
        }
        out.stats = stats;
        out.stats.slots = out.slots.len() as u32;
        out.stats.edge_splits = out.edge_splits.len() as u32;
        // The frame saves every callee-saved register the code changes: the
        // allocation's writes and the clients' own clobbers.
        out.used_callee_saved = PRegSet(written & env.callee_saved.0);
        if let Some(frame) = f.frame_layout() {
            out.spill_area_size = aligned_spill_area(f, &frame, out)?;
        }
        if opts.check {
            checker::check(f, env, out).map_err(Error::Check)?;
        }
        Ok(())
    }
}

/// The spill area size padded so that the stack is aligned at every call
/// of `f` under `frame` (unchanged in a function without calls).
fn aligned_spill_area<F: Function>(f: &F, frame: &FrameLayout, out: &Output) -> Result<u32, Error> {
    let align = frame.call_align;
    if !align.is_power_of_two() {
        return Err(Error::invalid(format!(
            "frame layout: call alignment {align} is not a power of two"
        )));
    }
    if !(0..f.num_insts()).any(|i| f.is_call(Inst::new(i))) {
        return Ok(out.spill_area_size);
    }
    let overflow = || Error::invalid("frame layout: frame size overflows");
    let depth = frame
        .depth_at_calls(out.used_callee_saved, out.spill_area_size)
        .ok_or_else(overflow)?;
    let pad = depth.wrapping_neg() & (align - 1);
    out.spill_area_size.checked_add(pad).ok_or_else(overflow)
}

/// Scratch buffers larger than this are freed at the end of a run instead
/// of being kept for the next function: a client that keeps its
/// [`Allocator`] while it rewrites the code (the Compiler does) then does
/// not hold the scratch of a large function at its peak, while the many
/// small functions the buffers are kept for never reach the limit (one
/// allocation more per large function is nothing next to its work).
const KEEP_SCRATCH_BYTES: usize = 16 * 1024;

/// Frees `v` if its capacity exceeds [`KEEP_SCRATCH_BYTES`].
pub(crate) fn shed_if_large<T>(v: &mut Vec<T>) {
    if v.capacity() * core::mem::size_of::<T>() > KEEP_SCRATCH_BYTES {
        *v = Vec::new();
    }
}

/// Touches the slots an edit moves from or to, with `weight` (see
/// [`spill::SlotAssigner::touch_weighted`]).
#[inline(always)]
fn touch_edit(slots: &mut spill::SlotAssigner, e: &Edit, weight: u32) {
    if let Edit::Move { from, to, .. } = e {
        for a in [from, to] {
            if let Allocation::Stack(s) = a {
                slots.touch_weighted(s.number(), weight);
            }
        }
    }
}

/// Allocates `f` with a fresh context.
pub fn allocate<F: Function>(f: &F, env: &MachineEnv, opts: &Options) -> Result<Output, Error> {
    let mut out = Output::default();
    Allocator::new().run(f, env, opts, &mut out)?;
    Ok(out)
}
