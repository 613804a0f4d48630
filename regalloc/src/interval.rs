//! Per-value lifetime facts: the live hull (first to last live position),
//! whether a value lives across a call, and its loop-weighted use count.
//!
//! Positions are two per instruction: `2*i` (early) and `2*i + 1` (late).
//! The hull is what spill-slot sharing needs (two values whose hulls do not
//! overlap can share a slot); call crossing decides between caller- and
//! callee-saved registers. The allocator itself does not keep whole
//! intervals: it splits values lazily while scanning (see
//! [`crate::linear_scan`]), which is where the lifetime holes are honoured.

use crate::cfg::CfgInfo;
use crate::function::{Block, Function};
use crate::liveness::Liveness;
use fixedbitset::FixedBitSet;

/// Lifetime facts per vreg.
#[derive(Clone, Debug, Default)]
pub struct Intervals {
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
}

/// Weight of one access at a loop depth.
pub fn depth_weight(depth: u32) -> u32 {
    1u32 << (3 * depth.min(9))
}

impl Intervals {
    /// Computes the facts from liveness.
    pub fn compute<F: Function>(&mut self, f: &F, cfg: &CfgInfo, live: &Liveness) {
        let nv = f.num_vregs();
        self.start.clear();
        self.start.resize(nv, u32::MAX);
        self.end.clear();
        self.end.resize(nv, 0);
        self.weight.clear();
        self.weight.resize(nv, 0);
        self.crosses_call.clear();
        self.crosses_call.grow(nv);
        self.live.clear();
        self.live.grow(nv);
        self.since.clear();
        self.since.resize(nv, 0);
        let mut ncalls = 0u32;
        for bi in 0..f.num_blocks() {
            let b = Block::new(bi);
            let r = f.block_insts(b);
            let bstart = 2 * r.start.0;
            let bend = 2 * r.end.0 - 1;
            let w = depth_weight(cfg.loop_depth[bi]);
            for &v in live.live_in(b) {
                let v = v as usize;
                self.start[v] = self.start[v].min(bstart);
            }
            for &v in live.live_out(b) {
                let v = v as usize;
                self.end[v] = self.end[v].max(bend);
                self.live.insert(v);
                self.since[v] = ncalls;
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
                        if ncalls > self.since[v] {
                            self.crosses_call.insert(v);
                        }
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
                        self.since[v] = ncalls;
                    } else if op.kind == crate::function::OperandKind::Modify
                        && ncalls > self.since[v]
                    {
                        // A modify keeps the value in place across the call.
                        self.crosses_call.insert(v);
                        self.since[v] = ncalls;
                    }
                }
            }
            for &v in live.live_in(b) {
                let v = v as usize;
                if self.live.contains(v) && ncalls > self.since[v] {
                    self.crosses_call.insert(v);
                }
            }
            // What is still live here is exactly the block's live-in set.
            for &v in live.live_in(b) {
                self.live.set(v as usize, false);
            }
        }
    }
}
