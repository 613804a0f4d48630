//! Spill slots: which values need one, sharing slots between values whose
//! lifetimes do not overlap, and ordering them hottest first.
//!
//! During the scan a value's slot is named by the value itself. Here the
//! values that were ever placed in memory get real slots: per class, a
//! linear scan over their live hulls (sorted by start) reuses the slot of a
//! value whose hull has ended. Each slot's weight is the loop-weighted count
//! of its accesses; slots are then numbered by decreasing weight, so the
//! hottest slot sits nearest the stack pointer (smallest offset, shortest
//! displacement).

use crate::cfg::CfgInfo;
use crate::function::{Function, RegClass, VReg};
use crate::interval::{Intervals, depth_weight};
use crate::output::{Allocation, Edit, SlotInfo, SpillSlot};

/// Slot assignment buffers.
#[derive(Default)]
pub struct SlotAssigner {
    /// Final slot per virtual slot id (`u32::MAX` when unused).
    pub map: Vec<u32>,
    weight: Vec<u64>,
    order: Vec<u32>,
    active: Vec<(u32, u32)>,
    free: [Vec<u32>; 3],
    slot_class: Vec<u8>,
    slot_weight: Vec<u64>,
    rank: Vec<u32>,
}

impl SlotAssigner {
    /// Records an access to virtual slot `id` at loop depth `depth`.
    #[inline(always)]
    pub fn touch(&mut self, id: u32, depth: u32) {
        self.touch_weighted(id, depth_weight(depth));
    }

    /// [`SlotAssigner::touch`] with the depth's weight already computed
    /// (`depth_weight(depth)`): for callers that touch many slots at one
    /// depth.
    #[inline(always)]
    pub fn touch_weighted(&mut self, id: u32, weight: u32) {
        match self.weight.get_mut(id as usize) {
            Some(w) => *w = w.saturating_add(weight as u64) | 1 << 63,
            None => self.touch_new(id as usize, weight),
        }
    }

    /// [`SlotAssigner::touch_weighted`] of an id past those prepared (out
    /// of line: [`SlotAssigner::reset`] prepares every id a function has).
    #[cold]
    #[inline(never)]
    fn touch_new(&mut self, id: usize, weight: u32) {
        self.weight.resize(id + 1, 0);
        self.weight[id] = weight as u64 | 1 << 63;
    }

    /// Whether any of the ids below `nv` (the vregs' own slots) was touched.
    pub fn any_vreg_touched(&self, nv: usize) -> bool {
        self.weight[..nv.min(self.weight.len())]
            .iter()
            .any(|&w| w != 0)
    }

    /// Prepares for a function with `n` virtual slot ids.
    pub fn reset(&mut self, n: usize) {
        self.weight.clear();
        self.weight.resize(n, 0);
        self.map.clear();
    }

    /// Assigns slots to every touched id. Ids below `nv` are vregs (sharing
    /// by hull); ids from `nv` are per-class scratch slots (never shared).
    pub fn assign<F: Function>(
        &mut self,
        f: &F,
        ivs: &Intervals,
        slot_size: [u32; 3],
        slots: &mut Vec<SlotInfo>,
    ) -> u32 {
        let nv = f.num_vregs();
        let n = self.weight.len();
        self.map.clear();
        self.map.resize(n, u32::MAX);
        self.order.clear();
        for id in 0..n.min(nv) {
            if self.weight[id] != 0 {
                self.order.push(id as u32);
            }
        }
        let cls = |id: u32| -> usize {
            if (id as usize) < nv {
                f.vreg_class(VReg(id)).index()
            } else {
                (id as usize - nv).min(2)
            }
        };
        self.order
            .sort_unstable_by_key(|&id| (cls(id), ivs.start[id as usize], id));
        self.slot_class.clear();
        self.slot_weight.clear();
        self.active.clear();
        for c in 0..3 {
            self.free[c].clear();
        }
        let mut cur_class = usize::MAX;
        for k in 0..self.order.len() {
            let id = self.order[k];
            let c = cls(id);
            if c != cur_class {
                cur_class = c;
                self.active.clear();
            }
            let start = ivs.start[id as usize];
            // Expire hulls that ended before this one starts.
            let mut j = 0;
            while j < self.active.len() {
                if self.active[j].0 < start {
                    let (_, s) = self.active.swap_remove(j);
                    self.free[c].push(s);
                } else {
                    j += 1;
                }
            }
            let s = match self.free[c].pop() {
                Some(s) => s,
                None => {
                    self.slot_class.push(c as u8);
                    self.slot_weight.push(0);
                    (self.slot_class.len() - 1) as u32
                }
            };
            self.map[id as usize] = s;
            self.slot_weight[s as usize] += self.weight[id as usize] & !(1 << 63);
            self.active.push((ivs.end[id as usize], s));
        }
        for id in nv..n {
            if self.weight[id] != 0 {
                self.slot_class.push((id - nv).min(2) as u8);
                self.slot_weight.push(self.weight[id] & !(1 << 63));
                self.map[id] = (self.slot_class.len() - 1) as u32;
            }
        }
        // Hottest first.
        let ns = self.slot_class.len();
        self.order.clear();
        self.order.extend(0..ns as u32);
        let w = &self.slot_weight;
        self.order
            .sort_by_key(|&s| (core::cmp::Reverse(w[s as usize]), s));
        self.rank.clear();
        self.rank.resize(ns, 0);
        slots.clear();
        let mut off = 0u32;
        for (r, &s) in self.order.iter().enumerate() {
            self.rank[s as usize] = r as u32;
            let size = slot_size[self.slot_class[s as usize] as usize].max(1);
            off = off.div_ceil(size) * size;
            slots.push(SlotInfo {
                size,
                offset: off,
                weight: self.slot_weight[s as usize],
            });
            off += size;
        }
        for m in self.map.iter_mut() {
            if *m != u32::MAX {
                *m = self.rank[*m as usize];
            }
        }
        off
    }

    /// The final slot of a virtual slot.
    pub fn rewrite(&self, a: Allocation) -> Allocation {
        match a {
            Allocation::Stack(s) => Allocation::Stack(SpillSlot::new(self.map[s.index()])),
            other => other,
        }
    }

    /// [`SlotAssigner::rewrite`] in place: only a stack location is
    /// written.
    #[inline(always)]
    pub fn rewrite_in_place(&self, a: &mut Allocation) {
        if let Allocation::Stack(s) = a {
            *s = SpillSlot::new(self.map[s.index()]);
        }
    }

    /// [`SlotAssigner::rewrite_edit`] in place: only the stack locations
    /// of a move are written (most edits touch one).
    #[inline(always)]
    pub fn rewrite_edit_in_place(&self, e: &mut Edit) {
        if let Edit::Move { from, to, .. } = e {
            self.rewrite_in_place(from);
            self.rewrite_in_place(to);
        }
    }

    /// Rewrites an edit's slots.
    #[inline(always)]
    pub fn rewrite_edit(&self, e: Edit) -> Edit {
        match e {
            Edit::Move {
                from,
                to,
                class,
                vreg,
            } => Edit::Move {
                from: self.rewrite(from),
                to: self.rewrite(to),
                class,
                vreg,
            },
            other => other,
        }
    }
}

/// Loop depth of an instruction's block.
pub fn inst_depth(cfg: &CfgInfo, inst: u32) -> u32 {
    cfg.loop_depth[cfg.inst_block[inst as usize] as usize]
}

/// Class of a scratch slot id.
pub fn scratch_class(nv: usize, id: usize) -> RegClass {
    RegClass::ALL[(id - nv).min(2)]
}
