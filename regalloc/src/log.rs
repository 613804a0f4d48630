//! The decision log: a short reason for every allocation choice, for annotated listings.

use crate::function::{Inst, PReg, VReg};
use core::fmt;

/// Why the allocator did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The register came from a hint (a fixed use ahead, a copy's other side).
    Hint(PReg),
    /// A value was evicted from its register to make room.
    Evict {
        /// Distance in instructions to its next use.
        next_use: u32,
        /// Loop weight of the evicting point (8 per loop level).
        weight: u32,
        /// Whether a store was needed (the slot did not hold the value yet).
        stored: bool,
    },
    /// A fixed-register operand was served by a copy, not by moving the value.
    FixedCopy(PReg),
    /// A value was moved out of a register that an instruction clobbers.
    SaveAcrossClobber(PReg),
    /// A value was reloaded for a use.
    Reload,
    /// A spilled value was used directly as a memory operand.
    Folded,
    /// A def was written directly to its spill slot.
    DefToSlot,
    /// A value was recomputed instead of reloaded.
    Remat,
    /// A value not used in a loop was moved out of its register before the loop.
    SplitAtLoopEntry,
    /// A value used in a loop was reloaded before the loop (not inside it).
    ReloadHoisted,
    /// A store happens once before the loop, not in it.
    StoreHoisted,
    /// A critical edge was split for edge moves.
    EdgeSplit,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Hint(r) => write!(f, "hint {r}"),
            Reason::Evict {
                next_use,
                weight,
                stored,
            } => {
                write!(f, "next use +{next_use}, weight {weight}")?;
                if !*stored {
                    f.write_str(", already in slot")?;
                }
                Ok(())
            }
            Reason::FixedCopy(r) => write!(f, "copy to fixed {r}"),
            Reason::SaveAcrossClobber(r) => write!(f, "saved from clobbered {r}"),
            Reason::Reload => f.write_str("reload"),
            Reason::Folded => f.write_str("memory operand"),
            Reason::DefToSlot => f.write_str("def to slot"),
            Reason::Remat => f.write_str("remat"),
            Reason::SplitAtLoopEntry => f.write_str("split at loop entry (unused in loop)"),
            Reason::ReloadHoisted => f.write_str("reload hoisted out of loop"),
            Reason::StoreHoisted => f.write_str("store hoisted out of loop"),
            Reason::EdgeSplit => f.write_str("critical edge split"),
        }
    }
}

/// One logged decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The instruction the decision was made at.
    pub inst: Inst,
    /// The value concerned.
    pub vreg: Option<VReg>,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.vreg, self.reason) {
            (Some(v), Reason::Evict { .. }) => {
                write!(f, "{}: evict {v}: {}", self.inst, self.reason)
            }
            (Some(v), r) => write!(f, "{}: {v}: {r}", self.inst),
            (None, r) => write!(f, "{}: {r}", self.inst),
        }
    }
}

/// The decisions of one allocation, in the order they were made.
#[derive(Clone, Debug, Default)]
pub struct DecisionLog {
    /// Whether decisions are recorded.
    pub enabled: bool,
    /// The decisions.
    pub entries: Vec<Decision>,
}

impl DecisionLog {
    /// Records a decision if logging is enabled.
    #[inline]
    pub fn push(&mut self, inst: Inst, vreg: Option<VReg>, reason: Reason) {
        if self.enabled {
            self.entries.push(Decision { inst, vreg, reason });
        }
    }

    /// The decisions made at one instruction.
    pub fn at(&self, inst: Inst) -> impl Iterator<Item = &Decision> {
        self.entries.iter().filter(move |d| d.inst == inst)
    }

    /// Forgets all entries (keeps `enabled`).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
