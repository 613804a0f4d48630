//! Input validation and control-flow facts: block order, back edges, loop depth.
//!
//! Everything the allocator later relies on without checking is checked
//! here once, so that any input reaching the allocator through the
//! [`Function`] trait yields either a result or a typed [`Error`].

use crate::error::Error;
use crate::function::{
    Block, Constraint, Function, Inst, MachineEnv, Operand, OperandKind, OperandPos, PRegSet,
    RegClass,
};

/// Control-flow facts derived from a validated function.
#[derive(Clone, Debug, Default)]
pub struct CfgInfo {
    /// Loop depth per block.
    pub loop_depth: Vec<u32>,
    /// Whether a block is the target of a back edge (a predecessor that does
    /// not come earlier in layout order).
    pub is_loop_header: Vec<bool>,
    /// Block of each instruction.
    pub inst_block: Vec<u32>,
    /// Start of each instruction's operands when they are numbered across
    /// the function (one more entry than instructions), so that later
    /// passes need not ask the client again. The allocator moves the
    /// buffer to the scan (and then to the output) after the analysis.
    pub op_offsets: Vec<u32>,
    /// The union of all instructions' clobbers (empty: no value can
    /// cross a call).
    pub clobbers: PRegSet,
    // Loop-depth scratch: per header, its last back-edge source; per
    // block, the change of depth where it starts.
    loop_end: Vec<u32>,
    depth_change: Vec<i64>,
}

/// Checks the requirements of [`Function`] and fills `info`.
pub fn analyze<F: Function>(f: &F, env: &MachineEnv, info: &mut CfgInfo) -> Result<(), Error> {
    let nb = f.num_blocks();
    let ni = f.num_insts();
    let nv = f.num_vregs();
    if nb == 0 {
        return Err(Error::invalid("no blocks"));
    }
    if nb >= u32::MAX as usize / 4 || ni >= u32::MAX as usize / 8 || nv >= u32::MAX as usize / 4 {
        return Err(Error::invalid("function too large"));
    }
    if f.entry_block().index() >= nb {
        return Err(Error::invalid("entry block out of range"));
    }
    info.loop_depth.clear();
    info.is_loop_header.clear();
    info.is_loop_header.resize(nb, false);
    info.inst_block.clear();
    info.inst_block.resize(ni, u32::MAX);
    let mut explicit_depth = true;
    let mut next = 0usize;
    for bi in 0..nb {
        let b = Block::new(bi);
        let r = f.block_insts(b);
        if r.start.index() != next || r.end.index() <= r.start.index() || r.end.index() > ni {
            return Err(Error::block_msg(
                b,
                "instruction ranges must be non-empty, contiguous and in layout order",
            ));
        }
        next = r.end.index();
        for i in r.iter() {
            info.inst_block[i.index()] = bi as u32;
        }
        let succs = f.block_succs(b);
        for &s in succs {
            if s.index() >= nb {
                return Err(Error::block_msg(b, "successor out of range"));
            }
            if !f.block_preds(s).contains(&b) {
                return Err(Error::block_msg(
                    b,
                    "successor does not list the block as predecessor",
                ));
            }
        }
        for (k, &s) in succs.iter().enumerate() {
            if succs[..k].contains(&s) {
                return Err(Error::block_msg(b, "duplicate successor"));
            }
        }
        let preds = f.block_preds(b);
        for (k, &p) in preds.iter().enumerate() {
            if p.index() >= nb || !f.block_succs(p).contains(&b) {
                return Err(Error::block_msg(
                    b,
                    "predecessor does not list the block as successor",
                ));
            }
            if preds[..k].contains(&p) {
                return Err(Error::block_msg(b, "duplicate predecessor"));
            }
            if p.index() >= bi {
                info.is_loop_header[bi] = true;
            }
        }
        let last = Inst::new(r.end.index() - 1);
        for i in r.start.index()..last.index() {
            let i = Inst::new(i);
            if f.is_branch(i) || f.is_ret(i) {
                return Err(Error::block_msg(
                    b,
                    "branch or return before the end of a block",
                ));
            }
        }
        if succs.is_empty() && !f.is_ret(last) {
            return Err(Error::block_msg(
                b,
                "block without successors must end in a return",
            ));
        }
        if !succs.is_empty() && f.is_ret(last) {
            return Err(Error::block_msg(b, "return block with successors"));
        }
        if succs.len() > 1 && !f.is_branch(last) {
            return Err(Error::block_msg(
                b,
                "block with several successors must end in a branch",
            ));
        }
        match f.block_loop_depth(b) {
            Some(d) => info.loop_depth.push(d.min(64)),
            None => {
                explicit_depth = false;
                info.loop_depth.push(0);
            }
        }
    }
    if next != ni {
        return Err(Error::invalid("instructions outside of any block"));
    }
    // The allocatable registers per class, unpacked once.
    let class_regs = RegClass::ALL.map(|c| env.allocatable.class_mask(c));
    info.op_offsets.clear();
    info.op_offsets.resize(ni + 1, 0);
    let mut nops = 0u32;
    let mut clobbers = PRegSet::empty();
    for (ii, offset) in info.op_offsets[1..].iter_mut().enumerate() {
        let i = Inst::new(ii);
        let ops = f.inst_operands(i);
        validate_inst(f, &class_regs, i, ops)?;
        // At most 64 operands each, fewer than 2^29 instructions.
        nops += ops.len() as u32;
        *offset = nops;
        clobbers = clobbers.union(f.inst_clobbers(i));
    }
    info.clobbers = clobbers;
    if !explicit_depth {
        compute_loop_depth(f, info);
    }
    Ok(())
}

/// Checks the operands `ops` of `i`; `class_regs` holds the allocatable
/// registers of each class.
pub(crate) fn validate_inst<F: Function>(
    f: &F,
    class_regs: &[u32; 3],
    i: Inst,
    ops: &[Operand],
) -> Result<(), Error> {
    let nv = f.num_vregs();
    if ops.len() > 64 {
        return Err(Error::invalid(format!("{i}: more than 64 operands")));
    }
    let bad = |m: &str| Err(Error::invalid(format!("{i}: {m}")));
    // Whether any operand names a fixed register (directly or by reuse).
    let mut fixed = false;
    for (k, op) in ops.iter().enumerate() {
        // Checked before the client is asked anything about the vreg.
        if op.vreg.index() >= nv {
            return bad("vreg out of range");
        }
        let class = f.vreg_class(op.vreg);
        let regs = class_regs[class.index()];
        match op.constraint {
            Constraint::Fixed(p) => {
                fixed = true;
                if p.class != class || p.hw >= 32 {
                    return bad("fixed register of another class or out of range");
                }
            }
            Constraint::Subset(m) => {
                if m.bits() & regs == 0 {
                    return Err(Error::OutOfRegisters { inst: i, class });
                }
            }
            Constraint::Reuse(u) => {
                fixed = true;
                let u = u as usize;
                if op.kind != OperandKind::Def || op.pos != OperandPos::Late || u >= ops.len() {
                    return bad("reuse must be a late def naming an operand");
                }
                let t = ops[u];
                if t.vreg.index() >= nv {
                    return bad("vreg out of range");
                }
                if t.kind != OperandKind::Use || t.pos != OperandPos::Early {
                    return bad("reuse must name an early use");
                }
                if f.vreg_class(t.vreg) != class {
                    return bad("reuse across classes");
                }
                if matches!(t.constraint, Constraint::Reuse(_)) {
                    return bad("reuse of a reuse");
                }
                if ops
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != k && o.constraint == Constraint::Reuse(u as u8))
                {
                    return bad("two defs reuse one input");
                }
            }
            Constraint::Reg | Constraint::Any => {}
        }
        if regs == 0 && !matches!(op.constraint, Constraint::Fixed(_)) {
            return Err(Error::OutOfRegisters { inst: i, class });
        }
        if op.kind == OperandKind::Modify && op.pos == OperandPos::Late {
            return bad("modify operands are early");
        }
        if op.is_def() {
            for o in &ops[..k] {
                if o.is_def() && o.vreg == op.vreg {
                    return bad("vreg defined twice by one instruction");
                }
            }
        }
    }
    if !fixed {
        return Ok(());
    }
    // Fixed-register conflicts: an operand occupies its register at the
    // early point (uses, modifies, early defs) and/or the late point (late
    // uses, defs, modifies); two occupants of one point conflict unless both
    // read the same vreg.
    fn occupancy(o: &Operand) -> [(bool, bool); 2] {
        // (occupies, reads) at early and late.
        match (o.kind, o.pos) {
            (OperandKind::Use, OperandPos::Early) => [(true, true), (false, false)],
            (OperandKind::Use, OperandPos::Late) => [(true, true), (true, true)],
            (OperandKind::Modify, _) => [(true, true), (true, false)],
            (OperandKind::Def, OperandPos::Early) => [(true, false), (true, false)],
            (OperandKind::Def, OperandPos::Late) => [(false, false), (true, false)],
        }
    }
    // A def reusing a fixed input is fixed to the same register.
    let fixed_of = |o: &Operand| match o.constraint {
        Constraint::Fixed(p) => Some(p),
        Constraint::Reuse(u) => match ops[u as usize].constraint {
            Constraint::Fixed(p) => Some(p),
            _ => None,
        },
        _ => None,
    };
    for (k, a) in ops.iter().enumerate() {
        let Some(p) = fixed_of(a) else { continue };
        for (j, b) in ops[..k].iter().enumerate() {
            if fixed_of(b) != Some(p) {
                continue;
            }
            if matches!(a.constraint, Constraint::Reuse(u) if u as usize == j)
                || matches!(b.constraint, Constraint::Reuse(u) if u as usize == k)
            {
                continue;
            }
            let (oa, ob) = (occupancy(a), occupancy(b));
            for t in 0..2 {
                if oa[t].0 && ob[t].0 && !(oa[t].1 && ob[t].1 && a.vreg == b.vreg) {
                    return Err(Error::ConflictingFixed { inst: i, preg: p });
                }
            }
        }
    }
    Ok(())
}

/// Loop depth from back edges in layout order: a back edge `p -> h`
/// (`p >= h`) makes blocks `h..=p` one level deeper.
fn compute_loop_depth<F: Function>(f: &F, info: &mut CfgInfo) {
    let nb = f.num_blocks();
    let end = &mut info.loop_end;
    end.clear();
    end.resize(nb, u32::MAX);
    for (h, e) in end.iter_mut().enumerate() {
        for &p in f.block_preds(Block::new(h)) {
            if p.index() >= h && (*e == u32::MAX || p.0 > *e) {
                *e = p.0;
            }
        }
    }
    let diff = &mut info.depth_change;
    diff.clear();
    diff.resize(nb + 1, 0);
    for (h, &e) in end.iter().enumerate() {
        if e != u32::MAX {
            diff[h] += 1;
            diff[e as usize + 1] -= 1;
        }
    }
    let mut d = 0i64;
    for b in 0..nb {
        d += diff[b];
        info.loop_depth[b] = d.clamp(0, 64) as u32;
    }
}
