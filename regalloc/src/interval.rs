//! Per-value lifetime facts: the live ranges with their lifetime holes, the
//! live hull (first to last live position), whether a value lives across a
//! call, and its loop-weighted use count.
//!
//! Positions are two per instruction: `2*i` (early) and `2*i + 1` (late).
//! A value's live ranges ([`Intervals::ranges`]) are the maximal position
//! intervals, in layout order, where it is live; between them are its
//! holes (blocks where it is not live, the stretch between a last use and
//! the next definition), where its register is free for others. Each range
//! knows whether it crosses a call, so that a value goes to a callee-saved
//! register only in the ranges that need one (a value that crosses a call
//! early and is redefined later for call-free work takes a caller-saved
//! register there, leaving the callee-saved ones to values that cross the
//! next call). The hull is what spill-slot sharing needs (two values whose
//! hulls do not overlap can share a slot). The scan does not keep whole
//! intervals: it splits values lazily (see [`crate::linear_scan`]), and
//! follows the holes through liveness and next-use positions.

use crate::cfg::CfgInfo;
use crate::function::{Block, Function, VReg};
use crate::liveness::Liveness;
use fixedbitset::FixedBitSet;

/// One live range of a value: positions `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveRange {
    /// First live position.
    pub start: u32,
    /// Last live position.
    pub end: u32,
    /// Whether an instruction with clobbers lies inside (the value must
    /// survive it).
    pub crosses_call: bool,
}

/// Lifetime facts per vreg.
#[derive(Clone, Debug, Default)]
pub struct Intervals {
    /// Live ranges of all vregs, by vreg, each vreg's in position order
    /// (see [`Intervals::ranges`]).
    pub range_list: Vec<LiveRange>,
    /// `range_list[range_start[v]..range_start[v + 1]]` are `v`'s ranges.
    pub range_start: Vec<u32>,
    /// First position where the value is live or mentioned.
    pub start: Vec<u32>,
    /// Last position where the value is live or mentioned.
    pub end: Vec<u32>,
    /// Whether the value is live across an instruction with clobbers.
    pub crosses_call: FixedBitSet,
    /// Uses and defs weighted by `8^loop_depth` (saturating).
    pub weight: Vec<u32>,
    live: FixedBitSet,
    since: Vec<u32>,
    // Range construction scratch: the open range's end and crossing per
    // vreg, the pieces found (block by block), one block's pieces.
    open_end: Vec<u32>,
    open_cross: FixedBitSet,
    pieces: Vec<(u32, LiveRange)>,
    block_pieces: Vec<(u32, LiveRange)>,
}

/// Weight of one access at a loop depth.
#[inline]
pub fn depth_weight(depth: u32) -> u32 {
    1u32 << (3 * depth.min(9))
}

impl Intervals {
    /// The live ranges of `v`, in position order, disjoint and not adjacent.
    pub fn ranges(&self, v: VReg) -> &[LiveRange] {
        let i = v.index();
        &self.range_list[self.range_start[i] as usize..self.range_start[i + 1] as usize]
    }

    /// Whether `v` is live at position `pos`.
    pub fn live_at(&self, v: VReg, pos: u32) -> bool {
        let r = self.ranges(v);
        let k = r.partition_point(|x| x.end < pos);
        k < r.len() && r[k].start <= pos
    }

    /// Opens a range of `v` ending at `end` (the backward walk met its
    /// last live position).
    fn open(&mut self, v: usize, end: u32, ncalls: u32) {
        self.open_end[v] = end;
        self.open_cross.set(v, false);
        self.since[v] = ncalls;
    }

    /// Closes `v`'s open range at `start`.
    fn close(&mut self, v: usize, start: u32, ncalls: u32) {
        let crosses_call = self.open_cross.contains(v) || ncalls > self.since[v];
        if crosses_call {
            self.crosses_call.insert(v);
        }
        self.block_pieces.push((
            v as u32,
            LiveRange {
                start,
                end: self.open_end[v],
                crosses_call,
            },
        ));
    }

    /// Empty hulls, weights and call crossings for `nv` vregs.
    fn reset_hulls(&mut self, nv: usize) {
        self.start.clear();
        self.start.resize(nv, u32::MAX);
        self.end.clear();
        self.end.resize(nv, 0);
        self.weight.clear();
        self.weight.resize(nv, 0);
        self.crosses_call.clear();
        self.crosses_call.grow(nv);
    }

    /// Computes the facts from liveness.
    pub fn compute<F: Function>(&mut self, f: &F, cfg: &CfgInfo, live: &Liveness) {
        let nv = f.num_vregs();
        self.reset_hulls(nv);
        self.live.clear();
        self.live.grow(nv);
        self.since.clear();
        self.since.resize(nv, 0);
        self.open_end.clear();
        self.open_end.resize(nv, 0);
        self.open_cross.clear();
        self.open_cross.grow(nv);
        self.pieces.clear();
        let mut ncalls = 0u32;
        for bi in 0..f.num_blocks() {
            let b = Block::new(bi);
            let r = f.block_insts(b);
            let bstart = 2 * r.start.0;
            let bend = 2 * r.end.0 - 1;
            let w = depth_weight(cfg.loop_depth[bi]);
            self.block_pieces.clear();
            for &v in live.live_in(b) {
                let v = v as usize;
                self.start[v] = self.start[v].min(bstart);
            }
            for &v in live.live_out(b) {
                let v = v as usize;
                self.end[v] = self.end[v].max(bend);
                self.live.insert(v);
                self.open(v, bend, ncalls);
            }
            for i in r.iter().rev() {
                let ops = f.inst_operands(i);
                let p = 2 * i.0;
                for op in ops {
                    let v = op.vreg.index();
                    self.start[v] = self.start[v].min(p);
                    self.end[v] = self.end[v].max(p + 1);
                    self.weight[v] = self.weight[v].saturating_add(w);
                    if op.kind == crate::function::OperandKind::Def && self.live.contains(v) {
                        self.close(v, p + 1, ncalls);
                        self.live.set(v, false);
                    }
                }
                if !f.inst_clobbers(i).is_empty() {
                    ncalls += 1;
                }
                for op in ops {
                    let v = op.vreg.index();
                    if op.is_use() && !self.live.contains(v) {
                        self.live.insert(v);
                        self.open(v, p + 1, ncalls);
                    } else if op.kind == crate::function::OperandKind::Modify
                        && ncalls > self.since[v]
                    {
                        // A modify keeps the value in place across the call.
                        self.open_cross.insert(v);
                        self.since[v] = ncalls;
                    }
                }
            }
            // What is still live here is exactly the block's live-in set.
            for &v in live.live_in(b) {
                let v = v as usize;
                if self.live.contains(v) {
                    self.close(v, bstart, ncalls);
                }
                self.live.set(v, false);
            }
            // The block's pieces were found backwards: per vreg, reversed
            // they are in position order.
            self.pieces.extend(self.block_pieces.drain(..).rev());
        }
        self.build_ranges(nv);
    }

    /// The hulls, weights and call crossings (none) of a function without
    /// clobbers, for spill-slot sharing; no live ranges (the allocator asks
    /// them only whether a value crosses a call).
    pub(crate) fn compute_hulls<F: Function>(&mut self, f: &F, cfg: &CfgInfo, live: &Liveness) {
        let nv = f.num_vregs();
        self.reset_hulls(nv);
        self.range_list.clear();
        self.range_start.clear();
        self.range_start.resize(nv + 1, 0);
        for bi in 0..f.num_blocks() {
            let b = Block::new(bi);
            let r = f.block_insts(b);
            let w = depth_weight(cfg.loop_depth[bi]);
            for &v in live.live_in(b) {
                let v = v as usize;
                self.start[v] = self.start[v].min(2 * r.start.0);
            }
            for &v in live.live_out(b) {
                let v = v as usize;
                self.end[v] = self.end[v].max(2 * r.end.0 - 1);
            }
            for i in r.iter() {
                let p = 2 * i.0;
                for op in f.inst_operands(i) {
                    let v = op.vreg.index();
                    self.start[v] = self.start[v].min(p);
                    self.end[v] = self.end[v].max(p + 1);
                    self.weight[v] = self.weight[v].saturating_add(w);
                }
            }
        }
    }

    /// Sorts the pieces by vreg (counting sort, stable, so each vreg's stay
    /// in position order) and joins pieces that touch (a value live out of
    /// one block and into the next).
    fn build_ranges(&mut self, nv: usize) {
        self.range_start.clear();
        self.range_start.resize(nv + 1, 0);
        for &(v, _) in &self.pieces {
            self.range_start[v as usize + 1] += 1;
        }
        for v in 0..nv {
            self.range_start[v + 1] += self.range_start[v];
        }
        let empty = LiveRange {
            start: 0,
            end: 0,
            crosses_call: false,
        };
        self.range_list.clear();
        self.range_list.resize(self.pieces.len(), empty);
        // `open_end` serves as the fill cursor per vreg.
        for v in 0..nv {
            self.open_end[v] = self.range_start[v];
        }
        for &(v, piece) in &self.pieces {
            let at = &mut self.open_end[v as usize];
            self.range_list[*at as usize] = piece;
            *at += 1;
        }
        // Join touching pieces in place, vreg by vreg.
        let mut out = 0usize;
        let mut next_start = 0u32;
        for v in 0..nv {
            let (a, b) = (
                self.range_start[v] as usize,
                self.range_start[v + 1] as usize,
            );
            self.range_start[v] = next_start;
            let first = out;
            for k in a..b {
                let piece = self.range_list[k];
                if out > first && self.range_list[out - 1].end + 1 >= piece.start {
                    let last = &mut self.range_list[out - 1];
                    last.end = last.end.max(piece.end);
                    last.crosses_call |= piece.crosses_call;
                } else {
                    self.range_list[out] = piece;
                    out += 1;
                }
            }
            next_start = out as u32;
        }
        self.range_start[nv] = next_start;
        self.range_list.truncate(out);
    }
}
