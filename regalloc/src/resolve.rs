//! Edge resolution: connecting each predecessor's exit state to its
//! successor's entry state with parallel moves.
//!
//! For an edge `p -> s` the moves go at the end of `p` when `p` has a single
//! successor (before its branch, which then has no operands), else at the
//! start of `s` when `s` has a single predecessor, else on a new block that
//! splits the critical edge ([`crate::EdgeSplit`]). Register destinations
//! come first as a parallel move (stores of values whose slot the successor
//! expects are part of it); rematerializations run last, since they read
//! nothing.

use crate::error::Error;
use crate::function::{Block, Function, MachineEnv, PReg, RegClass, VReg};
use crate::linear_scan::{LocRec, Scan};
use crate::log::{DecisionLog, Reason};
use crate::moves::{ParallelMove, Scratch, sequentialize};
use crate::output::{Allocation, EdgeSplit, Edit, SpillSlot};

/// Buffers for edge resolution.
#[derive(Default)]
pub struct Resolver {
    pm: [Vec<ParallelMove>; 3],
    remats: Vec<(VReg, PReg)>,
    seq: Vec<Edit>,
}

impl Resolver {
    /// Inserts the moves on every edge. `scratch_slot(class)` names the
    /// class's scratch slot (a virtual slot id resolved later).
    #[allow(clippy::too_many_arguments)]
    pub fn run<F: Function>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        scan: &mut Scan,
        remat: impl Fn(u32) -> bool,
        scratch_slot: impl Fn(usize) -> SpillSlot,
        splits: &mut Vec<EdgeSplit>,
        log: &mut DecisionLog,
    ) -> Result<(), Error> {
        for bi in 0..f.num_blocks() {
            let b = Block::new(bi);
            for &p in f.block_preds(b) {
                for c in 0..3 {
                    self.pm[c].clear();
                }
                self.remats.clear();
                let entry = scan.entry_state(b);
                let exit = scan.exit_state(p);
                let mut j = 0;
                let mut used = [0u32; 3];
                for e in entry {
                    while j < exit.len() && exit[j].vreg < e.vreg {
                        j += 1;
                    }
                    let x: LocRec = if j < exit.len() && exit[j].vreg == e.vreg {
                        exit[j]
                    } else {
                        return Err(Error::Internal(format!(
                            "{} live into {b} but not out of {p}",
                            VReg(e.vreg)
                        )));
                    };
                    let c = f.vreg_class(VReg(e.vreg)).index();
                    let class = RegClass::ALL[c];
                    used[c] |= e.regs | x.regs;
                    let src = if x.regs != 0 {
                        Allocation::Reg(PReg::new(class, x.regs.trailing_zeros() as u8))
                    } else if x.in_slot {
                        Allocation::Stack(SpillSlot::new(e.vreg))
                    } else if remat(e.vreg) {
                        Allocation::None
                    } else {
                        return Err(Error::Internal(format!(
                            "{} has no location on edge",
                            VReg(e.vreg)
                        )));
                    };
                    let mut m = e.regs & !x.regs;
                    while m != 0 {
                        let hw = m.trailing_zeros() as u8;
                        m &= m - 1;
                        let to = PReg::new(class, hw);
                        if src == Allocation::None {
                            self.remats.push((VReg(e.vreg), to));
                        } else {
                            self.pm[c].push(ParallelMove {
                                src,
                                dst: Allocation::Reg(to),
                                vreg: Some(VReg(e.vreg)),
                            });
                        }
                    }
                    if e.in_slot && !x.in_slot {
                        if x.regs == 0 {
                            return Err(Error::Internal(format!(
                                "{} cannot be stored on edge",
                                VReg(e.vreg)
                            )));
                        }
                        self.pm[c].push(ParallelMove {
                            src,
                            dst: Allocation::Stack(SpillSlot::new(e.vreg)),
                            vreg: Some(VReg(e.vreg)),
                        });
                    }
                }
                if self.pm.iter().all(|v| v.is_empty()) && self.remats.is_empty() {
                    continue;
                }
                self.seq.clear();
                for c in 0..3 {
                    if self.pm[c].is_empty() {
                        continue;
                    }
                    let class = RegClass::ALL[c];
                    let free = env.allocatable.class_mask(class) & !used[c];
                    let scratch = Scratch {
                        reg: (free != 0).then(|| PReg::new(class, free.trailing_zeros() as u8)),
                        slot: Some(scratch_slot(c)),
                    };
                    sequentialize(&self.pm[c], class, env.has_swap[c], scratch, &mut self.seq)?;
                }
                for &(v, to) in &self.remats {
                    self.seq.push(Edit::Remat { vreg: v, to });
                }
                // Placement.
                let pr = f.block_insts(p);
                let last = crate::function::Inst::new(pr.end.index() - 1);
                let key = if f.block_succs(p).len() == 1
                    && (!f.is_branch(last)
                        || (f.inst_operands(last).is_empty() && f.inst_clobbers(last).is_empty()))
                {
                    Some(if f.is_branch(last) {
                        6 * last.0 + 2
                    } else {
                        6 * last.0 + 3 + 1
                    })
                } else if f.block_preds(b).len() == 1 {
                    Some(6 * f.block_insts(b).start.0)
                } else {
                    None
                };
                match key {
                    Some(k) => {
                        for e in self.seq.drain(..) {
                            scan.push_edit(k, e);
                        }
                    }
                    None => {
                        let mut edits = Vec::with_capacity(self.seq.len());
                        for e in self.seq.drain(..) {
                            scan.count_edit(&e);
                            edits.push(e);
                        }
                        log.push(f.block_insts(b).start, None, Reason::EdgeSplit);
                        splits.push(EdgeSplit {
                            from: p,
                            to: b,
                            edits,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
