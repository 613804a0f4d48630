//! Parallel moves: turning a set of simultaneous copies into a sequence.
//!
//! A parallel move reads all sources, then writes all destinations. Every
//! destination is written once; a source may feed several destinations.
//! Moves whose destination is no longer needed as a source are emitted
//! first; what is left are cycles, broken by a swap (for classes that have
//! one, between registers) or by parking one value in the scratch register
//! (or the scratch slot when the register is busy). Slot-to-slot copies go
//! through the scratch register.

use crate::error::Error;
use crate::function::{PReg, RegClass, VReg};
use crate::output::{Allocation, Edit, SpillSlot};
use smallvec::SmallVec;

/// One copy of a parallel move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParallelMove {
    /// Source location.
    pub src: Allocation,
    /// Destination location.
    pub dst: Allocation,
    /// The value moved (for listings).
    pub vreg: Option<VReg>,
}

/// Scratch locations a sequence may clobber.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scratch {
    /// A register free before and after the moves.
    pub reg: Option<PReg>,
    /// A slot free before and after the moves.
    pub slot: Option<SpillSlot>,
}

/// Sequences `moves` (all of `class`) into `out`. `has_swap` allows
/// register swaps. Fails if destinations repeat, or if a slot-to-slot copy
/// or a cycle needs a scratch location that was not given.
pub fn sequentialize(
    moves: &[ParallelMove],
    class: RegClass,
    has_swap: bool,
    scratch: Scratch,
    out: &mut Vec<Edit>,
) -> Result<(), Error> {
    let mut pending: SmallVec<[ParallelMove; 16]> =
        moves.iter().copied().filter(|m| m.src != m.dst).collect();
    for (k, m) in pending.iter().enumerate() {
        if pending[..k].iter().any(|o| o.dst == m.dst) {
            return Err(Error::Internal(
                "parallel move writes a location twice".into(),
            ));
        }
        if m.dst == Allocation::None || m.src == Allocation::None {
            return Err(Error::Internal("parallel move with no location".into()));
        }
    }
    // `parked` holds where the scratch register's value must go if the
    // register is needed for a slot-to-slot copy.
    let mut reg_busy = false;
    let mv = |from: Allocation, to: Allocation, vreg: Option<VReg>| Edit::Move {
        from,
        to,
        class,
        vreg: vreg.into(),
    };
    while !pending.is_empty() {
        // A move whose destination no other pending move reads.
        let ready = (0..pending.len()).find(|&k| {
            let d = pending[k].dst;
            !pending
                .iter()
                .enumerate()
                .any(|(j, o)| j != k && o.src == d)
        });
        if let Some(k) = ready {
            let m = pending.remove(k);
            if matches!((m.src, m.dst), (Allocation::Stack(_), Allocation::Stack(_))) {
                let Some(r) = scratch.reg else {
                    return Err(Error::Internal(
                        "slot-to-slot move without scratch register".into(),
                    ));
                };
                let r = Allocation::Reg(r);
                if reg_busy {
                    // Park the scratch register's value in the scratch slot.
                    let Some(s) = scratch.slot else {
                        return Err(Error::Internal(
                            "scratch register busy and no scratch slot".into(),
                        ));
                    };
                    let s = Allocation::Stack(s);
                    out.push(mv(r, s, None));
                    for o in pending.iter_mut() {
                        if o.src == r {
                            o.src = s;
                        }
                    }
                    reg_busy = false;
                }
                out.push(mv(m.src, r, m.vreg));
                out.push(mv(r, m.dst, m.vreg));
            } else {
                out.push(mv(m.src, m.dst, m.vreg));
            }
            if Some(m.src) == scratch.reg.map(Allocation::Reg)
                && !pending
                    .iter()
                    .any(|o| Some(o.src) == scratch.reg.map(Allocation::Reg))
            {
                reg_busy = false;
            }
            continue;
        }
        // Only cycles remain. Break one at its first move `s -> d`.
        let m = pending[0];
        if let (true, Allocation::Reg(a), Allocation::Reg(b)) = (has_swap, m.src, m.dst) {
            out.push(Edit::Swap { a, b });
            pending.remove(0);
            for o in pending.iter_mut() {
                if o.src == m.dst {
                    o.src = m.src;
                } else if o.src == m.src {
                    o.src = m.dst;
                }
            }
            continue;
        }
        // Park the value of `d` (needed by another move) in a scratch place.
        let park = match (m.dst, scratch.reg, scratch.slot) {
            (_, Some(r), _) if !reg_busy => {
                reg_busy = true;
                Allocation::Reg(r)
            }
            (Allocation::Reg(_), _, Some(s)) => Allocation::Stack(s),
            _ => {
                return Err(Error::Internal(
                    "move cycle without scratch location".into(),
                ));
            }
        };
        if matches!((m.dst, park), (Allocation::Stack(_), Allocation::Stack(_))) {
            return Err(Error::Internal(
                "move cycle needs two scratch registers".into(),
            ));
        }
        out.push(mv(m.dst, park, None));
        for o in pending.iter_mut() {
            if o.src == m.dst {
                o.src = park;
            }
        }
    }
    Ok(())
}
