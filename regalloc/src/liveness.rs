//! Liveness: live-in and live-out sets per block, and next-use distances.
//!
//! Per block, a forward scan finds the upward-exposed uses (read before any
//! write in the block) and the blocks that define each vreg. Then, one vreg
//! at a time, a backward worklist over predecessors marks the blocks where
//! it is live (the classic per-variable form of the backward dataflow
//! `live_in(b) = use(b) ∪ (live_out(b) − def(b))`,
//! `live_out(b) = ∪ live_in(succ)`). Dense bit sets (`fixedbitset`) are only
//! kept over blocks for the vreg being processed, so the cost is linear in
//! the size of the result (the sum of the live sets), not `blocks × vregs`.
//! The result is stored sparsely: per block, a sorted list of vregs.
//!
//! On top of the sets, next-use distances (Braun and Hack, 2009): for every
//! value live into a block, how many instructions until its next use along
//! the nearest path, with a large penalty for leaving a loop. The allocator
//! uses them to decide what to evict and what to keep in registers over a
//! loop.

use crate::cfg::CfgInfo;
use crate::error::Error;
use crate::function::{Block, Function, VReg};
use fixedbitset::FixedBitSet;

/// Distance marking "not used again".
pub const INF: u32 = u32::MAX / 4;
/// Distance added when a path leaves a loop.
pub const LOOP_EXIT_PENALTY: u32 = 1 << 20;

/// Sparse live sets and next-use distances per block.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    /// `live_in[live_in_start[b]..live_in_start[b+1]]`: vregs live into `b`, sorted.
    pub live_in: Vec<u32>,
    /// Offsets into `live_in`.
    pub live_in_start: Vec<u32>,
    /// Next-use distance (instructions from block start) per live-in entry.
    pub dist_in: Vec<u32>,
    /// First use offset in the block per live-in entry (`INF` if live through).
    pub first_use: Vec<u32>,
    /// `live_out[live_out_start[b]..live_out_start[b+1]]`: vregs live out of `b`, sorted.
    pub live_out: Vec<u32>,
    /// Offsets into `live_out`.
    pub live_out_start: Vec<u32>,
    /// Next-use distance from the block end per live-out entry.
    pub dist_out: Vec<u32>,
    // Scratch.
    ue: Vec<(u32, u32, u32)>,
    defs: Vec<(u32, u32)>,
    pairs: Vec<(u32, u32, u32)>,
    stamp_use: Vec<u32>,
    stamp_def: Vec<u32>,
    starts: Vec<u32>,
    dstarts: Vec<u32>,
    sorted_ue: Vec<(u32, u32, u32)>,
    sorted_defs: Vec<(u32, u32)>,
    in_set: FixedBitSet,
    out_set: FixedBitSet,
    def_set: FixedBitSet,
    work: Vec<u32>,
    touched: Vec<u32>,
    out_pairs: Vec<(u32, u32)>,
    /// Whether the function is one block without edges (then the def
    /// lists are not bucketed: `stamp_def` says what the block defines).
    single_block: bool,
}

impl Liveness {
    /// Vregs live into a block.
    pub fn live_in(&self, b: Block) -> &[u32] {
        &self.live_in
            [self.live_in_start[b.index()] as usize..self.live_in_start[b.index() + 1] as usize]
    }

    /// Vregs live out of a block.
    pub fn live_out(&self, b: Block) -> &[u32] {
        &self.live_out
            [self.live_out_start[b.index()] as usize..self.live_out_start[b.index() + 1] as usize]
    }

    /// Next-use distances of the live-in vregs of a block (parallel to [`Liveness::live_in`]).
    pub fn dist_in(&self, b: Block) -> &[u32] {
        &self.dist_in
            [self.live_in_start[b.index()] as usize..self.live_in_start[b.index() + 1] as usize]
    }

    /// Next-use distances from the end of the block (parallel to [`Liveness::live_out`]).
    pub fn dist_out(&self, b: Block) -> &[u32] {
        &self.dist_out
            [self.live_out_start[b.index()] as usize..self.live_out_start[b.index() + 1] as usize]
    }

    /// Whether `v` is defined in any block of `first..=last` (layout order).
    pub fn defined_in(&self, v: VReg, first: Block, last: Block) -> bool {
        let v = v.index();
        if self.single_block {
            // Block 0 stamped the vregs it defines.
            return first.0 == 0 && self.stamp_def.get(v) == Some(&0);
        }
        if v + 1 >= self.dstarts.len() {
            return false;
        }
        let ds = &self.sorted_defs[self.dstarts[v] as usize..self.dstarts[v + 1] as usize];
        // Sorted by block (blocks were scanned in order).
        let k = ds.partition_point(|&(_, b)| b < first.0);
        k < ds.len() && ds[k].1 <= last.0
    }

    /// Whether `v` is live into `b`.
    pub fn is_live_in(&self, b: Block, v: VReg) -> bool {
        self.live_in(b).binary_search(&v.0).is_ok()
    }

    /// The liveness of a function of one block without edges, without
    /// looking at it: nothing is live at the block's boundaries. Unlike
    /// [`Liveness::compute`] this does not reject a value read before it
    /// is written (the scan does) and records no defs
    /// ([`Liveness::defined_in`] then answers false).
    pub(crate) fn set_lone_block(&mut self) {
        self.single_block = true;
        self.stamp_def.clear();
        self.empty_boundaries();
    }

    /// Empty live sets for one block.
    fn empty_boundaries(&mut self) {
        for l in [
            &mut self.live_in,
            &mut self.first_use,
            &mut self.dist_in,
            &mut self.live_out,
            &mut self.dist_out,
        ] {
            l.clear();
        }
        for s in [&mut self.live_in_start, &mut self.live_out_start] {
            s.clear();
            s.extend([0, 0]);
        }
    }

    /// Computes liveness and distances.
    pub fn compute<F: Function>(&mut self, f: &F, cfg: &CfgInfo) -> Result<(), Error> {
        let nb = f.num_blocks();
        let nv = f.num_vregs();
        self.ue.clear();
        self.defs.clear();
        self.stamp_use.clear();
        self.stamp_use.resize(nv, u32::MAX);
        self.stamp_def.clear();
        self.stamp_def.resize(nv, u32::MAX);
        // 1. Upward-exposed uses and def blocks.
        for bi in 0..nb {
            let b = Block::new(bi);
            let r = f.block_insts(b);
            let tag = bi as u32;
            for i in r.iter() {
                let off = (i.index() - r.start.index()) as u32;
                let ops = f.inst_operands(i);
                for op in ops {
                    if op.is_use() {
                        let v = op.vreg.index();
                        if self.stamp_def[v] != tag && self.stamp_use[v] != tag {
                            self.stamp_use[v] = tag;
                            self.ue.push((op.vreg.0, tag, off));
                        }
                    }
                }
                for op in ops {
                    if op.is_def() {
                        let v = op.vreg.index();
                        if self.stamp_def[v] != tag {
                            self.stamp_def[v] = tag;
                            self.defs.push((op.vreg.0, tag));
                        }
                    }
                }
            }
        }
        self.single_block = nb == 1 && f.block_succs(Block::new(0)).is_empty();
        if self.single_block {
            // One block without edges: nothing is live at its boundaries,
            // and an upward-exposed use reads a value nothing defined.
            if let Some(&(v, _, _)) = self.ue.iter().min() {
                return Err(Error::LiveInAtEntry(VReg(v)));
            }
            self.empty_boundaries();
            return Ok(());
        }
        // 2. Bucket by vreg (counting sort keeps block order).
        bucket(
            &self.defs,
            |e| e.0,
            nv,
            &mut self.dstarts,
            &mut self.sorted_defs,
        );
        bucket(&self.ue, |e| e.0, nv, &mut self.starts, &mut self.sorted_ue);
        // 3. Per-vreg backward propagation.
        self.in_set.clear();
        self.in_set.grow(nb);
        self.out_set.clear();
        self.out_set.grow(nb);
        self.def_set.clear();
        self.def_set.grow(nb);
        self.pairs.clear();
        self.out_pairs.clear();
        let entry = f.entry_block().index();
        for v in 0..nv {
            let ues = &self.sorted_ue[self.starts[v] as usize..self.starts[v + 1] as usize];
            if ues.is_empty() {
                continue;
            }
            let ds = &self.sorted_defs[self.dstarts[v] as usize..self.dstarts[v + 1] as usize];
            for &(_, b) in ds {
                self.def_set.insert(b as usize);
            }
            self.work.clear();
            self.touched.clear();
            for &(_, b, off) in ues {
                self.in_set.insert(b as usize);
                self.touched.push(b);
                self.pairs.push((b, v as u32, off));
                self.work.push(b);
            }
            while let Some(b) = self.work.pop() {
                for &p in f.block_preds(Block(b)) {
                    let pi = p.index();
                    if !self.out_set.contains(pi) {
                        self.out_set.insert(pi);
                        self.out_pairs.push((p.0, v as u32));
                        if !self.in_set.contains(pi) {
                            self.touched.push(p.0);
                        }
                    }
                    if !self.def_set.contains(pi) && !self.in_set.contains(pi) {
                        self.in_set.insert(pi);
                        self.touched.push(p.0);
                        self.pairs.push((p.0, v as u32, INF));
                        self.work.push(p.0);
                    }
                }
            }
            if self.in_set.contains(entry) {
                return Err(Error::LiveInAtEntry(VReg::new(v)));
            }
            for &b in &self.touched {
                self.in_set.set(b as usize, false);
                self.out_set.set(b as usize, false);
            }
            for &(_, b) in ds {
                self.def_set.set(b as usize, false);
            }
        }
        // 4. Per-block sorted lists (vregs were processed in order, so a
        //    stable bucket by block leaves each block's list sorted...
        //    except that pairs of one vreg are appended in discovery order,
        //    which is fine: one entry per (block, vreg)).
        let mut sorted = std::mem::take(&mut self.ue);
        bucket(
            &self.pairs,
            |e| e.0,
            nb,
            &mut self.live_in_start,
            &mut sorted,
        );
        self.live_in.clear();
        self.first_use.clear();
        for &(_, v, off) in &sorted {
            self.live_in.push(v);
            self.first_use.push(off);
        }
        self.ue = sorted;
        let mut sorted_out = std::mem::take(&mut self.defs);
        bucket(
            &self.out_pairs,
            |e| e.0,
            nb,
            &mut self.live_out_start,
            &mut sorted_out,
        );
        self.live_out.clear();
        self.live_out.extend(sorted_out.iter().map(|e| e.1));
        self.defs = sorted_out;
        // 5. Next-use distances, iterated backward to a fixed point (bounded).
        self.dist_in.clear();
        self.dist_in.resize(self.live_in.len(), INF);
        self.dist_out.clear();
        self.dist_out.resize(self.live_out.len(), INF);
        for _round in 0..8 {
            let mut changed = false;
            for bi in (0..nb).rev() {
                let b = Block::new(bi);
                let (os, oe) = (
                    self.live_out_start[bi] as usize,
                    self.live_out_start[bi + 1] as usize,
                );
                for k in os..oe {
                    let v = self.live_out[k];
                    let mut best = INF;
                    for &s in f.block_succs(b) {
                        let (is, ie) = (
                            self.live_in_start[s.index()] as usize,
                            self.live_in_start[s.index() + 1] as usize,
                        );
                        if let Ok(j) = self.live_in[is..ie].binary_search(&v) {
                            let mut d = self.dist_in[is + j];
                            if cfg.loop_depth[s.index()] < cfg.loop_depth[bi] {
                                d = d.saturating_add(LOOP_EXIT_PENALTY);
                            }
                            best = best.min(d);
                        }
                    }
                    let best = best.min(INF);
                    if best != self.dist_out[k] {
                        self.dist_out[k] = best;
                        changed = true;
                    }
                }
                let len = f.block_insts(b).len() as u32;
                let (is, ie) = (
                    self.live_in_start[bi] as usize,
                    self.live_in_start[bi + 1] as usize,
                );
                for k in is..ie {
                    let d = if self.first_use[k] != INF {
                        self.first_use[k]
                    } else {
                        let v = self.live_in[k];
                        match self.live_out[os..oe].binary_search(&v) {
                            Ok(j) => len.saturating_add(self.dist_out[os + j]).min(INF),
                            Err(_) => INF,
                        }
                    };
                    if d != self.dist_in[k] {
                        self.dist_in[k] = d;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        // Live-in lists must be sorted for binary search: the bucket sort by
        // block keeps vreg order because vregs were processed in order.
        debug_assert!((0..nb).all(|b| self.live_in(Block::new(b)).windows(2).all(|w| w[0] < w[1])));
        Ok(())
    }
}

/// Stable counting sort of `items` by `key` into `out`, with bucket starts in `starts`.
fn bucket<T: Copy>(
    items: &[T],
    key: impl Fn(&T) -> u32,
    n: usize,
    starts: &mut Vec<u32>,
    out: &mut Vec<T>,
) {
    starts.clear();
    starts.resize(n + 1, 0);
    for it in items {
        starts[key(it) as usize + 1] += 1;
    }
    for k in 0..n {
        starts[k + 1] += starts[k];
    }
    out.clear();
    if items.is_empty() {
        return;
    }
    out.resize(items.len(), items[0]);
    // Use `starts[k + 1]` as the fill cursor of bucket k, then shift back.
    for k in (0..n).rev() {
        starts[k + 1] = starts[k];
    }
    for it in items {
        let k = key(it) as usize;
        out[starts[k + 1] as usize] = *it;
        starts[k + 1] += 1;
    }
    starts[0] = 0;
}
