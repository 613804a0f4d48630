//! Operand facts of every instruction of a function: target instructions
//! through [`Target::inst_facts`], pseudo-instructions (entry, return, call,
//! copy, jumps) from their definition here, and the per-virtual-register view
//! of them ([`VRegAccess`]) that the verifier and the register allocator use.
//!
//! # How a register allocator reads a lowered function
//!
//! - Blocks, successors, predecessors, reverse post-order and loop depth
//!   (use weights) come from [`crate::cfg::Cfg`].
//! - For each instruction, [`Function::inst_facts`] gives the facts and
//!   [`Function::vreg_accesses`] the virtual-register operands: access (a
//!   read is an early use, a write a late def, read-write and partial write
//!   both, tied operands share a register), fixed register (ABI locations
//!   after lowering, `cl` for shifts), allowed hardware indexes, and whether
//!   memory may replace the register (fold a spill slot).
//! - [`InstFacts::implicit`] lists fixed physical registers read or written
//!   (RDX:RAX of `div`), [`InstFacts::clobbers`] the registers a call destroys
//!   ([`crate::abi::CallConv::preserves`] says whether a wide vector value
//!   survives in a callee-saved register).
//! - [`Function::copy_vregs`] finds copies (hints), [`Function::copy_imm`]
//!   constant definitions (rematerialization).
//! - [`Function::pins`] lists registers reserved for the whole function.

use crate::entities::*;
use crate::function::*;
use crate::target::*;
use smallvec::SmallVec;

/// One access of a virtual register by an instruction.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct VRegAccess {
    /// The virtual register.
    pub vreg: VReg,
    /// How it is accessed (address registers of memory operands are [`Access::Read`]).
    pub access: Access,
    /// The operand index.
    pub operand: u16,
    /// Whether it is the base or index of a memory operand.
    pub in_address: bool,
    /// The register it must be in here (fixed constraint), if any.
    pub fixed: Option<PReg>,
    /// The hardware indexes allowed (`u32::MAX` = all).
    pub allowed: u32,
    /// Whether the operand may be replaced by memory.
    pub mem_ok: bool,
}

impl Function {
    /// If `inst` is `copy %dst, %src` between whole virtual registers: `(dst, src)`.
    pub fn copy_vregs(&self, inst: Inst) -> Option<(VReg, VReg)> {
        // The kind first: most instructions are no copies (no operand slice made).
        if self.kind(inst) != InstKind::Copy {
            return None;
        }
        match *self.operands(inst) {
            [
                Operand::Reg(Reg::Virt(d, View::FULL)),
                Operand::Reg(Reg::Virt(s, View::FULL)),
            ] => Some((d, s)),
            _ => None,
        }
    }

    /// If `inst` is `copy %dst, imm` into a whole virtual register: `(dst, imm)`
    /// (a definition the allocator can recompute instead of spilling).
    pub fn copy_imm(&self, inst: Inst) -> Option<(VReg, i64)> {
        if self.kind(inst) != InstKind::Copy {
            return None;
        }
        match *self.operands(inst) {
            [Operand::Reg(Reg::Virt(d, View::FULL)), Operand::Imm(v)] => Some((d, v)),
            _ => None,
        }
    }

    /// The shape of an operand, as the target sees it.
    pub fn operand_shape(&self, op: &Operand) -> OpShape {
        match *op {
            Operand::Reg(r) => self.reg_shape(r),
            Operand::Fixed(v, _) => self.reg_shape(Reg::v(v)),
            Operand::Mem(m) => OpShape::Mem { size: m.size },
            Operand::Imm(i) => OpShape::Imm(i),
            Operand::Label(_) => OpShape::Label,
        }
    }

    fn reg_shape(&self, r: Reg) -> OpShape {
        match r {
            Reg::Virt(v, view) => {
                let (class, size) = self
                    .get_vreg(v)
                    .map(|d| (d.class, d.size))
                    .unwrap_or((RegClass::GP, 0));
                OpShape::Reg {
                    class,
                    size: view.size().unwrap_or(size),
                    high: view.is_high(),
                    id: r,
                }
            }
            Reg::Phys(p, view) => OpShape::Reg {
                class: p.class,
                size: view.size().unwrap_or(0),
                high: view.is_high(),
                id: r,
            },
        }
    }

    /// Fills `out` with the facts of instruction `inst` (target or pseudo).
    /// Calls' clobbers come from their convention.
    pub fn inst_facts(
        &self,
        target: &dyn Target,
        inst: Inst,
        out: &mut InstFacts,
    ) -> Result<(), FactsError> {
        out.clear();
        let ops = self.operands(inst);
        let kind = self.kind(inst);
        if let InstKind::Target(id) = kind {
            // Pushed one by one: cheaper than `extend` for a few operands.
            let mut shapes: SmallVec<[OpShape; 4]> = SmallVec::new();
            for o in ops {
                shapes.push(self.operand_shape(o));
            }
            return target.inst_facts(id, &shapes, out);
        }
        let push = |out: &mut InstFacts, o: &Operand, access: Access| {
            let sh = self.operand_shape(o);
            let size = match sh {
                OpShape::Reg { size, .. } | OpShape::Mem { size } => size,
                _ => 0,
            };
            let fixed = match *o {
                Operand::Fixed(_, p) => Some(p),
                _ => None,
            };
            out.ops.push(OperandFact {
                kinds: sh.kind(),
                access,
                size,
                tied: None,
                fixed,
                allowed: u32::MAX,
            });
        };
        let is_reg = |o: &Operand| matches!(o, Operand::Reg(_) | Operand::Fixed(..));
        match kind {
            InstKind::Target(_) => unreachable!("handled above"),
            InstKind::Bind(_) => {
                if !ops.is_empty() {
                    return Err(FactsError::Pseudo("bind takes no operands"));
                }
            }
            InstKind::Entry => {
                for o in ops {
                    if !is_reg(o) {
                        return Err(FactsError::Pseudo("entry operands must be registers"));
                    }
                    push(out, o, Access::Write);
                }
            }
            InstKind::Ret => {
                for o in ops {
                    if matches!(o, Operand::Label(_)) {
                        return Err(FactsError::Pseudo("cannot return a label"));
                    }
                    push(out, o, Access::Read);
                }
                out.flow = Flow::Return;
            }
            InstKind::Call(c) | InstKind::TailJump(c) => {
                let Some((_, callee, args, rets)) = self.call_parts(inst) else {
                    return Err(FactsError::Pseudo("malformed call"));
                };
                if matches!(callee, Operand::Fixed(..)) {
                    return Err(FactsError::Pseudo("callee cannot be fixed"));
                }
                push(out, &callee, Access::Read);
                for a in args {
                    if matches!(a, Operand::Label(_)) {
                        return Err(FactsError::Pseudo("label as call argument"));
                    }
                    push(out, a, Access::Read);
                }
                for r in rets {
                    if !is_reg(r) {
                        return Err(FactsError::Pseudo("call results must be registers"));
                    }
                    push(out, r, Access::Write);
                }
                let sig = self.call_data(c).sig;
                if let Some(s) = self.get_sig_ref(sig)
                    && let Some(conv) = target.call_conv(s.conv)
                {
                    out.clobbers = conv.clobbered;
                }
                out.flow = if matches!(kind, InstKind::Call(_)) {
                    Flow::Call
                } else {
                    Flow::Return
                };
            }
            InstKind::Copy => {
                let [d, s] = ops else {
                    return Err(FactsError::Pseudo("copy takes two operands"));
                };
                if !is_reg(d) && !matches!(d, Operand::Mem(_)) {
                    return Err(FactsError::Pseudo(
                        "copy destination must be a register or memory",
                    ));
                }
                if matches!(s, Operand::Label(_)) {
                    return Err(FactsError::Pseudo("copy source cannot be a label"));
                }
                if matches!((d, s), (Operand::Mem(_), Operand::Mem(_))) {
                    return Err(FactsError::Pseudo("copy from memory to memory"));
                }
                let access = match *d {
                    Operand::Reg(Reg::Virt(v, view)) => {
                        let d = self.get_vreg(v);
                        match (view.size(), d) {
                            (Some(n), Some(d))
                                if n < d.size && !(d.class == RegClass::GP && n >= 4) =>
                            {
                                Access::PartialWrite
                            }
                            _ => Access::Write,
                        }
                    }
                    _ => Access::Write,
                };
                push(out, d, access);
                push(out, s, Access::Read);
            }
            InstKind::Addr => {
                let [d, m @ Operand::Mem(_)] = ops else {
                    return Err(FactsError::Pseudo("addr takes a register and memory"));
                };
                if !is_reg(d) {
                    return Err(FactsError::Pseudo("addr destination must be a register"));
                }
                push(out, d, Access::Write);
                push(out, m, Access::None);
            }
            InstKind::Jump => {
                let [l @ Operand::Label(_)] = ops else {
                    return Err(FactsError::Pseudo("jump takes one label"));
                };
                push(out, l, Access::Read);
                out.flow = Flow::Jump;
            }
            InstKind::JumpIndirect(_) => {
                let [t] = ops else {
                    return Err(FactsError::Pseudo("indirect jump takes one operand"));
                };
                if !is_reg(t) && !matches!(t, Operand::Mem(_)) {
                    return Err(FactsError::Pseudo(
                        "indirect jump through register or memory",
                    ));
                }
                push(out, t, Access::Read);
                out.flow = Flow::IndirectJump;
            }
        }
        Ok(())
    }

    /// Calls `f` for every access of a virtual register by `inst` whose facts
    /// are `facts` (from [`Function::inst_facts`]): direct operands with
    /// their access, fixed register and allowed set, then base and index
    /// registers of memory operands as reads.
    #[inline]
    pub fn vreg_accesses(&self, inst: Inst, facts: &InstFacts, mut f: impl FnMut(VRegAccess)) {
        for (i, (op, fact)) in self.operands(inst).iter().zip(facts.ops.iter()).enumerate() {
            let i = i as u16;
            match *op {
                Operand::Reg(Reg::Virt(v, _)) | Operand::Fixed(v, _) => f(VRegAccess {
                    vreg: v,
                    access: fact.access,
                    operand: i,
                    in_address: false,
                    fixed: match *op {
                        Operand::Fixed(_, p) => Some(p),
                        _ => fact.fixed,
                    },
                    allowed: fact.allowed,
                    mem_ok: fact.mem_ok(),
                }),
                Operand::Mem(m) => {
                    for r in m.regs() {
                        if let Reg::Virt(v, _) = r {
                            f(VRegAccess {
                                vreg: v,
                                access: Access::Read,
                                operand: i,
                                in_address: true,
                                fixed: None,
                                allowed: u32::MAX,
                                mem_ok: false,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
