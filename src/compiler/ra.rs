//! The register allocator's view of a lowered IR function: implements
//! `jitforge_regalloc::Function` from the IR's CFG and the operand facts the
//! x86 target supplies, and remembers which IR operand each allocator
//! operand stands for, so the rewrite can put the allocations back.

use super::target::FactsTable;
use jitforge_ir::cfg::Cfg;
use jitforge_ir::target::{Access, InstFacts, Target};
use jitforge_ir::{
    Function as IrFunction, Inst as IrInst, InstKind, Operand, Reg, RegClass as IrClass,
};
use jitforge_regalloc::{
    Block, Constraint, Function as RaFunction, Inst, InstRange, Operand as RaOperand, OperandKind,
    OperandPos, PReg, PRegSet, RegClass, RegMask, VReg, VRegMentions,
};

/// Where an allocator operand comes from in the IR instruction (its
/// virtual register is the allocator operand's: 4 bytes here, not 8, for
/// every operand of a function through its allocation and rewrite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(4))]
pub(crate) struct OperandOrigin {
    /// The IR operand index.
    pub operand: u16,
    /// Whether it is a base or index register inside a memory operand.
    pub in_address: bool,
    /// Always 0: with it the origin has no padding, so a copy is one
    /// 4-byte move (`build` copies one per operand).
    _padding: u8,
}

/// The allocator's view of one function; rebuilt per function, buffers reused.
#[derive(Default)]
pub(crate) struct RaView {
    block_ranges: Vec<InstRange>,
    succs: Vec<Block>,
    succ_offsets: Vec<u32>,
    preds: Vec<Block>,
    pred_offsets: Vec<u32>,
    loop_depth: Vec<u32>,
    /// The allocator operands, instruction after instruction (from
    /// `op_offsets`). This buffer and the next three only grow: past
    /// this function's part they hold an earlier one's (see `build`).
    operands: Vec<RaOperand>,
    origins: Vec<OperandOrigin>,
    /// Per instruction and one more: where its operands start.
    op_offsets: Vec<u32>,
    /// The number of instructions (of `flags`, `op_offsets`).
    num_insts: usize,
    /// Per instruction: `RET`, `BRANCH`, and whether it has clobbers or is
    /// a move (then in `clobbers` or `moves`, by instruction: most
    /// instructions have neither, so they cost one byte here).
    flags: Vec<u8>,
    clobbers: Vec<(u32, PRegSet)>,
    moves: Vec<(u32, VReg, VReg)>,
    classes: Vec<RegClass>,
    remat: Vec<bool>,
    facts: InstFacts,
    /// Entry and return shapes by key (see [`untagged_key`]): derived
    /// once, their templates in `own_templates`, their clobbers in
    /// `own_clobbers`.
    own_shapes: Vec<(u64, ShapeRecord)>,
    /// Templates of `own_shapes`, then while an other untagged
    /// instruction is looked at, its own (derived each time).
    own_templates: Vec<OperandTemplate>,
    /// By tag: the record derived from the facts table's entry, once.
    shapes: Vec<Option<ShapeRecord>>,
    /// The operand templates of `shapes`.
    templates: Vec<OperandTemplate>,
    /// The clobber sets of `shapes`.
    shape_clobbers: Vec<PRegSet>,
    /// The clobber sets of `own_shapes`, then of the untagged
    /// instruction looked at.
    own_clobbers: Vec<PRegSet>,
    /// The facts table epoch `shapes` was derived from.
    shapes_epoch: u64,
    /// Per vreg while building: its mentions, whether it was written yet
    /// and the constant every definition gives it (see [`RaView::build`]).
    vreg_states: Vec<VregState>,
    /// What [`RaFunction::vouched`] reports, found by `build`.
    vouched: jitforge_regalloc::Vouched,
    /// What [`RaFunction::mentions`] reports, noted by `build`: per vreg,
    /// its last instruction and first fixed use...
    mentions: Vec<VRegMentions>,
    /// ... and per class, the registers fixed operands name.
    fixed_regs: [u32; 3],
}

/// What `build` notes about one vreg as it walks the instructions: what
/// [`RaFunction::mentions`] reports of it, and whether it was written yet
/// and the constant every definition gives it, side by side (one bounds
/// check and one address per operand).
#[derive(Clone, Copy)]
struct VregState {
    /// See [`VRegMentions::last`].
    last: u32,
    /// See [`VRegMentions::first_fixed_use`].
    first_fixed_use: u8,
    /// [`UNWRITTEN`], or the bits [`WRITTEN`] and [`CONSTANT`]: a
    /// constant (`value`) if exactly `CONSTANT` (a plain definition
    /// only sets `WRITTEN`, see [`OperandTemplate::written`]).
    written: u8,
    /// The constant every write so far gave it, if `written` is `CONSTANT`.
    value: i64,
}

/// Not written yet (in layout order).
const UNWRITTEN: u8 = 0;
/// Written by something else than one constant.
const WRITTEN: u8 = 1;
/// Written by `copy v, value`, each time with one `value` while `WRITTEN`
/// is not set.
const CONSTANT: u8 = 2;

impl VregState {
    const UNNAMED: VregState = VregState {
        last: 0,
        first_fixed_use: VRegMentions::NO_REG,
        written: UNWRITTEN,
        value: 0,
    };
}

/// Operands of a function small enough that the view reserves room for
/// the most allocator operands it could have without counting them.
const SMALL_FUNCTION_OPERANDS: usize = 1024;

/// What the grown operand buffer holds past the operands written (never read).
fn placeholder_operand() -> RaOperand {
    RaOperand::new(
        VReg::new(0),
        OperandKind::Use,
        OperandPos::Early,
        Constraint::Reg,
    )
}

/// Lengthens `buffer` to `len` with `fill` if it is shorter (exactly:
/// no doubling slack for a large function), never shortens it.
fn grow_to<T: Copy>(buffer: &mut Vec<T>, len: usize, fill: T) {
    if buffer.len() < len {
        buffer.reserve_exact(len - buffer.len());
        buffer.resize(len, fill);
    }
}

const RET: u8 = 1;
const BRANCH: u8 = 2;
const CLOBBERS: u8 = 4;
const MOVE: u8 = 8;
/// Some operand has a `Subset` constraint (the allocator checks those).
const SUBSET: u8 = 16;
/// Some operand has a `Fixed` constraint (noted in the mentions).
const FIXED: u8 = 32;

/// What the view takes from one instruction's facts, the same for every
/// instruction of its shape (so derived once per tag): flow flags,
/// clobbers and one template per explicit operand.
#[derive(Clone, Copy)]
struct ShapeRecord {
    /// `RET` or `BRANCH` from its flow, `CLOBBERS` if it has clobbers,
    /// `SUBSET` if an operand has a register subset, `FIXED` if one has
    /// a fixed register.
    flags: u8,
    /// The number of templates (one per operand fact).
    len: u16,
    /// Its templates' start in the template buffer.
    start: u32,
    /// Where its clobbers (registers clobbered and written implicitly)
    /// are in the clobber buffer, if `flags` has `CLOBBERS` (a shape
    /// record stays small: it is read for every instruction).
    clobbers: u32,
    /// Whether every operand is read, written or both as a whole (no
    /// partial write, none unseen): [`push_operands`] needs no access
    /// decision.
    plain: bool,
    /// Whether [`push_plain_run`] takes the shape: [`PLAIN_RUN`] if it is
    /// plain, [`SKIPPING_RUN`] if every operand is read, written or both
    /// as a whole, or neither (`xor x, x`), and one is neither; either
    /// without fixed operands and clobbers; else [`NOT_IN_RUNS`].
    run: u8,
    /// A [`PLAIN_RUN`] shape of two operands (most of a function): its
    /// templates, kept here too, so that [`push_plain_run`] reads them
    /// with the record (without finding them in the template buffer).
    pair: Option<[OperandTemplate; 2]>,
}

/// See [`ShapeRecord::run`].
const NOT_IN_RUNS: u8 = 0;
/// See [`ShapeRecord::run`].
const PLAIN_RUN: u8 = 1;
/// See [`ShapeRecord::run`].
const SKIPPING_RUN: u8 = 2;

/// The allocator operand an explicit operand gives, its virtual register
/// left to fill in. Two cases depend on more than the shape: a partial
/// write is a plain definition of a vreg not written before, and an
/// operand fixed by the IR (`Operand::Fixed`) takes that register.
#[derive(Clone, Copy)]
struct OperandTemplate {
    /// Kind, position and constraint (a partial write's as if the vreg
    /// was written before).
    operand: RaOperand,
    /// The operand's access: for `PartialWrite` and `None`, which the
    /// instruction decides.
    access: Access,
    /// The operand's index (the origin of its allocator operands).
    index: u16,
    /// The origin of its direct allocator operand (from `index`).
    origin: OperandOrigin,
    /// [`WRITTEN`] if its operand is no use (so it writes its vreg),
    /// else 0: what a plain instruction sets in its vreg's state (no
    /// branch per operand).
    written: u8,
}

impl ShapeRecord {
    /// Derives the record of `facts`, appending its templates to `templates`.
    fn derive(
        facts: &InstFacts,
        templates: &mut Vec<OperandTemplate>,
        clobber_sets: &mut Vec<PRegSet>,
    ) -> ShapeRecord {
        let mut clobbers = PRegSet::empty();
        if facts.clobbers != jitforge_ir::RegSet::EMPTY {
            for class in 0..3u8 {
                let mask = facts.clobbers.0[class as usize];
                clobbers = clobbers.union(PRegSet::from_class_mask(class_of(IrClass(class)), mask));
            }
        }
        for imp in &facts.implicit {
            if imp.access.writes() {
                clobbers.insert(preg_of(imp.reg));
            }
        }
        let start = templates.len() as u32;
        templates.extend(facts.ops.iter().enumerate().map(|(index, fact)| {
            let (kind, pos) = match fact.access {
                Access::Read | Access::None => (OperandKind::Use, OperandPos::Early),
                Access::Write => (OperandKind::Def, OperandPos::Late),
                Access::ReadWrite | Access::PartialWrite => {
                    (OperandKind::Modify, OperandPos::Early)
                }
            };
            let constraint = if let Some(p) = fact.fixed {
                Constraint::Fixed(preg_of(p))
            } else if fact.allowed != u32::MAX {
                Constraint::Subset(RegMask::new(fact.allowed))
            } else if fact.mem_ok() {
                Constraint::Any
            } else {
                Constraint::Reg
            };
            OperandTemplate {
                operand: RaOperand::new(VReg::new(0), kind, pos, constraint),
                access: fact.access,
                index: index as u16,
                origin: OperandOrigin {
                    operand: index as u16,
                    in_address: false,
                    _padding: 0,
                },
                written: if kind == OperandKind::Use { 0 } else { WRITTEN },
            }
        }));
        let mut flags = match facts.flow {
            jitforge_ir::Flow::Jump
            | jitforge_ir::Flow::CondBranch
            | jitforge_ir::Flow::IndirectJump => BRANCH,
            jitforge_ir::Flow::Return => RET,
            _ => 0,
        };
        let at = clobber_sets.len() as u32;
        if !clobbers.is_empty() {
            flags |= CLOBBERS;
            clobber_sets.push(clobbers);
        }
        for t in &templates[start as usize..] {
            match t.operand.constraint {
                Constraint::Subset(_) => flags |= SUBSET,
                Constraint::Fixed(_) => flags |= FIXED,
                _ => {}
            }
        }
        let plain = facts.ops.iter().all(|fact| {
            matches!(
                fact.access,
                Access::Read | Access::Write | Access::ReadWrite
            )
        });
        let skipping = facts.ops.iter().all(|fact| {
            matches!(
                fact.access,
                Access::Read | Access::Write | Access::ReadWrite | Access::None
            )
        });
        let run = if flags & (FIXED | CLOBBERS) != 0 {
            NOT_IN_RUNS
        } else if plain {
            PLAIN_RUN
        } else if skipping {
            SKIPPING_RUN
        } else {
            NOT_IN_RUNS
        };
        let pair = match templates[start as usize..] {
            [first, second] if run == PLAIN_RUN => Some([first, second]),
            _ => None,
        };
        ShapeRecord {
            flags,
            len: facts.ops.len() as u16,
            start,
            clobbers: at,
            plain,
            run,
            pair,
        }
    }

    fn templates(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

fn class_of(class: IrClass) -> RegClass {
    match class.0 {
        1 => RegClass::Vec,
        2 => RegClass::Mask,
        _ => RegClass::Gp,
    }
}

fn preg_of(p: jitforge_ir::PReg) -> PReg {
    PReg::new(class_of(p.class), p.hw)
}

/// Where `build` writes one instruction's allocator operands: the view's
/// buffers, long enough for every operand of the function (see
/// [`RaView::build`]), and the number written so far. Writing by index
/// into them leaves out a `Vec`'s capacity check per operand.
struct OperandSink<'a> {
    operands: &'a mut [RaOperand],
    origins: &'a mut [OperandOrigin],
    len: usize,
}

impl OperandSink<'_> {
    #[inline(always)]
    fn push(&mut self, operand: RaOperand, origin: OperandOrigin) {
        // Both buffers are cut to one length (`build` makes them long
        // enough): one bounds check.
        if self.len < self.operands.len() && self.len < self.origins.len() {
            self.operands[self.len] = operand;
            self.origins[self.len] = origin;
        }
        self.len += 1;
    }
}

/// Pushes the virtual address registers of memory operand `m` (IR operand
/// `index`) as register uses.
#[inline(always)]
fn push_address(
    sink: &mut OperandSink<'_>,
    vregs: &mut [VregState],
    at: u32,
    m: &jitforge_ir::Mem,
    index: u16,
) {
    // `Mem::regs` (base, then index), matched here: the loop around
    // stays free of calls.
    let base = match m.base {
        jitforge_ir::MemBase::Reg(r) => Some(r),
        _ => None,
    };
    for r in [base, m.index].into_iter().flatten() {
        if let Reg::Virt(v, _) = r {
            if let Some(state) = vregs.get_mut(v.as_u32() as usize) {
                state.last = at;
            }
            sink.push(
                RaOperand::new(
                    VReg::new(v.as_u32() as usize),
                    OperandKind::Use,
                    OperandPos::Early,
                    Constraint::Reg,
                ),
                OperandOrigin {
                    operand: index,
                    in_address: true,
                    _padding: 0,
                },
            );
        }
    }
}

/// The common case of [`push_operands`]: a plain shape (see
/// [`ShapeRecord::plain`]) of an instruction that is no `copy v, imm`,
/// whose operands are virtual registers, immediates and memory. Pushes
/// their allocator operands (each register its template with its vreg,
/// each address register a use) and notes them in `vregs`, and returns
/// true; returns false at any other operand, having pushed nothing
/// (`sink.len` is left; what it noted `push_operands` notes again alike),
/// for [`push_operands`] to take the instruction.
///
/// `SKIPPING`: the shape is in [`SKIPPING_RUN`]s instead (see
/// [`ShapeRecord::run`]): a register operand neither read nor
/// written is left out, as `push_operands` does.
#[inline(always)]
fn push_plain_registers<const SKIPPING: bool>(
    sink: &mut OperandSink<'_>,
    vregs: &mut [VregState],
    at: u32,
    ops: &[Operand],
    templates: &[OperandTemplate],
) -> bool {
    let start = sink.len;
    let mut k = start;
    let mut shared = false;
    // The buffers taken out of `sink` for the loop (kept in registers:
    // `push_other` gets them by value).
    let (operands, origins) = (&mut *sink.operands, &mut *sink.origins);
    // Both buffers are cut to one length (`build` makes them long enough).
    let room = operands.len().min(origins.len());
    for (op, t) in ops.iter().zip(templates) {
        if let Operand::Reg(Reg::Virt(v, _)) = *op {
            if SKIPPING && t.access == Access::None {
                shared = true;
                continue;
            }
            let at_vreg = v.as_u32() as usize;
            if k >= room || at_vreg >= vregs.len() {
                return false;
            }
            // The template copied whole, its vreg stored over it (no
            // field-by-field rebuild).
            operands[k] = t.operand;
            operands[k].vreg = VReg(v.as_u32());
            origins[k] = t.origin;
            let state = &mut vregs[at_vreg];
            state.last = at;
            state.written |= t.written;
            k += 1;
        } else {
            match push_other(operands, origins, k, vregs, at, op, t.index) {
                Some(next) => k = next,
                None => return false,
            }
        }
    }
    if SKIPPING && shared {
        // `xor x, x`: as `push_operands` (the unseen operand shares the
        // other's location, and x86 takes at most one memory operand).
        for op in operands.get_mut(start..k).unwrap_or_default() {
            if op.constraint == Constraint::Any {
                op.constraint = Constraint::Reg;
            }
        }
    }
    sink.len = k;
    true
}

/// [`push_plain_registers::<false>`](push_plain_registers) of an
/// instruction whose two operands are the virtual registers `vregs_of`,
/// with templates `templates`: without a loop (the common case of a run).
#[inline(always)]
fn push_two_registers(
    sink: &mut OperandSink<'_>,
    vregs: &mut [VregState],
    at: u32,
    vregs_of: [jitforge_ir::VReg; 2],
    templates: &[OperandTemplate; 2],
) -> bool {
    let k = sink.len;
    let (a, b) = (vregs_of[0].as_u32(), vregs_of[1].as_u32());
    let (Some([first, second]), Some([first_origin, second_origin]), true, true) = (
        sink.operands.get_mut(k..k + 2),
        sink.origins.get_mut(k..k + 2),
        (a as usize) < vregs.len(),
        (b as usize) < vregs.len(),
    ) else {
        return false;
    };
    // Each template copied whole, its vreg stored over it.
    *first = templates[0].operand;
    first.vreg = VReg(a);
    *second = templates[1].operand;
    second.vreg = VReg(b);
    *first_origin = templates[0].origin;
    *second_origin = templates[1].origin;
    for (v, t) in [(a, &templates[0]), (b, &templates[1])] {
        let state = &mut vregs[v as usize];
        state.last = at;
        state.written |= t.written;
    }
    sink.len = k + 2;
    true
}

/// An operand of [`push_plain_registers`] other than a virtual register:
/// an immediate (nothing to push) or memory (its address registers, see
/// [`push_address`]; IR operand `index`), pushed into `operands` and
/// `origins` from `k` on; returns where the next goes, or `None` for any
/// other operand. Out of line, so that the loop there tests its common
/// case (a virtual register) alone, without decoding the operand's variant
/// first.
#[allow(clippy::too_many_arguments)]
#[cold]
#[inline(never)]
fn push_other(
    operands: &mut [RaOperand],
    origins: &mut [OperandOrigin],
    k: usize,
    vregs: &mut [VregState],
    at: u32,
    op: &Operand,
    index: u16,
) -> Option<usize> {
    match op {
        Operand::Imm(_) => Some(k),
        Operand::Mem(m) => {
            let mut sink = OperandSink {
                operands,
                origins,
                len: k,
            };
            push_address(&mut sink, vregs, at, m, index);
            Some(sink.len)
        }
        _ => None,
    }
}

/// Pushes the run of instructions from `i` on that are target
/// instructions of a known plain shape (see [`ShapeRecord::plain`])
/// without fixed operands or clobbers, whose operands are virtual
/// registers and immediates (most of a function), as
/// [`push_plain_registers`] does, and notes their operand offsets and
/// flags. Returns the index of the first instruction past the run, which
/// `build` takes one by one, and the operands pushed in all (for `sink`). Out of line, its loop keeps what it needs in
/// registers (in `build`'s body most of it lives on the stack).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn push_plain_run(
    mut i: usize,
    insts: &[jitforge_ir::InstData],
    all_ops: &[Operand],
    shapes: &[Option<ShapeRecord>],
    templates: &[OperandTemplate],
    sink: &mut OperandSink<'_>,
    vregs: &mut [VregState],
    op_offsets: &mut [u32],
    flags_of: &mut [u8],
) -> (usize, usize) {
    // One bound for the three per-instruction buffers.
    let n = insts.len().min(op_offsets.len()).min(flags_of.len());
    // A local sink for the run (its length kept in a register, given back
    // at the end), both buffers cut to one length: one bound for an
    // operand's two writes.
    let room = sink.operands.len().min(sink.origins.len());
    let mut local = OperandSink {
        operands: &mut sink.operands[..room],
        origins: &mut sink.origins[..room],
        len: sink.len,
    };
    let sink = &mut local;
    while i < n {
        let d = &insts[i];
        let (InstKind::Target(_), Some(tag)) = (d.kind, d.tag()) else {
            break;
        };
        let Some(Some(shape)) = shapes.get(tag as usize) else {
            break;
        };
        if shape.run == NOT_IN_RUNS {
            break;
        }
        let Some(ops) = all_ops.get(d.ops_range()) else {
            break;
        };
        op_offsets[i] = sink.len as u32;
        let pushed = match (ops, &shape.pair) {
            // Most of a function: two virtual registers (`add a, b`).
            ([Operand::Reg(Reg::Virt(a, _)), Operand::Reg(Reg::Virt(b, _))], Some(templates)) => {
                push_two_registers(sink, vregs, i as u32, [*a, *b], templates)
            }
            _ => {
                let Some(own) = templates.get(shape.templates()) else {
                    break;
                };
                if shape.run == PLAIN_RUN {
                    push_plain_registers::<false>(sink, vregs, i as u32, ops, own)
                } else {
                    push_plain_registers::<true>(sink, vregs, i as u32, ops, own)
                }
            }
        };
        if !pushed {
            break;
        }
        flags_of[i] = shape.flags;
        i += 1;
    }
    let len = local.len;
    (i, len)
}

/// Pushes the allocator operands of an instruction with operands `ops`
/// and templates `templates`, with their origins, in the order of
/// `Function::vreg_accesses` (direct operands, then the address registers
/// of a memory operand as reads), and notes definitions in `vregs`
/// (see [`RaView::build`]; `imm_def` is the instruction's if it is
/// `copy v, imm`), and notes instruction `at` as each vreg's last there.
/// Returns whether an operand is fixed by the IR (`Operand::Fixed`).
///
/// `PLAIN`: the shape is plain (see [`ShapeRecord::plain`]): no
/// per-operand access decision (each register operand is its template
/// with its vreg).
#[inline(always)]
fn push_operands<const PLAIN: bool>(
    sink: &mut OperandSink<'_>,
    vregs: &mut [VregState],
    at: u32,
    ops: &[Operand],
    templates: &[OperandTemplate],
    imm_def: Option<(jitforge_ir::VReg, i64)>,
) -> bool {
    let first = sink.len;
    let mut shared = false;
    let mut fixed_by_ir = false;
    for (op, t) in ops.iter().zip(templates) {
        let mut operand = t.operand;
        let v = match *op {
            Operand::Reg(Reg::Virt(v, _)) => v,
            Operand::Fixed(v, p) => {
                operand.constraint = Constraint::Fixed(preg_of(p));
                fixed_by_ir = true;
                v
            }
            Operand::Mem(ref m) => {
                push_address(sink, vregs, at, m, t.index);
                continue;
            }
            _ => continue,
        };
        operand.vreg = VReg::new(v.as_u32() as usize);
        match t.access {
            _ if PLAIN => {}
            Access::PartialWrite
                if vregs
                    .get(v.as_u32() as usize)
                    .is_some_and(|s| s.written == UNWRITTEN) =>
            {
                operand.kind = OperandKind::Def;
                operand.pos = OperandPos::Late;
            }
            // Not read and not written (the second `x` of `xor x, x`):
            // it takes the register of the same vreg's other operand.
            Access::None => {
                shared = true;
                continue;
            }
            _ => {}
        }
        sink.push(operand, t.origin);
        let Some(state) = vregs.get_mut(v.as_u32() as usize) else {
            continue;
        };
        state.last = at;
        if operand.kind != OperandKind::Use {
            match imm_def {
                Some((d, value))
                    if d == v
                        && (state.written == UNWRITTEN
                            || state.written == CONSTANT && state.value == value) =>
                {
                    state.written = CONSTANT;
                    state.value = value;
                }
                _ => state.written = WRITTEN,
            }
        }
    }
    if !PLAIN && shared {
        // `xor x, x`: the unseen operand shares the other's location,
        // and x86 takes at most one memory operand.
        for op in &mut sink.operands[first..sink.len] {
            if op.constraint == Constraint::Any {
                op.constraint = Constraint::Reg;
            }
        }
    }
    fixed_by_ir
}

/// Pushes the allocator operands of an entry (`entry`) or a return whose
/// operands `ops` are all fixed by the IR (`Operand::Fixed`), as
/// [`push_operands`] and [`note_fixed`] would from their facts
/// (`Function::inst_facts`: each entry operand written, each return
/// operand read, fixed to its register; no clobbers, no subset), without
/// a shape record. Returns false, having pushed nothing, if an operand is
/// not fixed.
fn push_all_fixed(
    sink: &mut OperandSink<'_>,
    vregs: &mut [VregState],
    fixed_regs: &mut [u32; 3],
    at: u32,
    ops: &[Operand],
    entry: bool,
) -> bool {
    if !ops.iter().all(|op| matches!(op, Operand::Fixed(..))) {
        return false;
    }
    let (kind, pos) = if entry {
        (OperandKind::Def, OperandPos::Late)
    } else {
        (OperandKind::Use, OperandPos::Early)
    };
    for (index, op) in ops.iter().enumerate() {
        let Operand::Fixed(v, p) = *op else {
            continue;
        };
        let p = preg_of(p);
        sink.push(
            RaOperand::new(VReg(v.as_u32()), kind, pos, Constraint::Fixed(p)),
            OperandOrigin {
                operand: index as u16,
                in_address: false,
                _padding: 0,
            },
        );
        fixed_regs[p.class.index()] |= 1 << (p.hw & 31);
        if let Some(state) = vregs.get_mut(v.as_u32() as usize) {
            state.last = at;
            if entry {
                state.written = WRITTEN;
            } else if state.first_fixed_use == VRegMentions::NO_REG {
                state.first_fixed_use = p.hw;
            }
        }
    }
    true
}

/// Notes the fixed operands among `operands` (one instruction's) in
/// `vregs` and `fixed_regs` (see [`RaFunction::mentions`]).
fn note_fixed(operands: &[RaOperand], vregs: &mut [VregState], fixed_regs: &mut [u32; 3]) {
    for op in operands {
        if let Constraint::Fixed(p) = op.constraint {
            fixed_regs[p.class.index()] |= 1 << (p.hw & 31);
            let state = &mut vregs[op.vreg.index()];
            if op.is_use() && state.first_fixed_use == VRegMentions::NO_REG {
                state.first_fixed_use = p.hw;
            }
        }
    }
}

/// The most operands of an untagged instruction whose shape record is
/// kept (see [`untagged_key`]).
const KEYED_OPERANDS: usize = 19;

/// Untagged shape records kept at most; past that the cache starts over.
const KEYED_SHAPES: usize = 64;

/// The key of an entry or return instruction with operands `ops`, whose
/// facts (so its shape record) depend on nothing else than its kind and
/// the variant of each operand: entry operands are written registers,
/// return operands read values, each fixed if the IR fixes it and
/// memory-capable if memory (`Function::inst_facts`; a fixed operand's
/// register is taken from the operand by [`push_operands`], and whether
/// the facts are an error depends on the variants too). `None` for
/// other instructions and more than [`KEYED_OPERANDS`] operands.
fn untagged_key(kind: InstKind, ops: &[Operand]) -> Option<u64> {
    let base = match kind {
        InstKind::Entry => 1u64,
        InstKind::Ret => 2,
        _ => return None,
    };
    if ops.len() > KEYED_OPERANDS {
        return None;
    }
    // Bits 0..2 the kind, 2..7 the count, then 3 bits per operand.
    let mut key = base | (ops.len() as u64) << 2;
    for (j, op) in ops.iter().enumerate() {
        let variant = match op {
            Operand::Reg(_) => 0u64,
            Operand::Fixed(..) => 1,
            Operand::Mem(_) => 2,
            Operand::Imm(_) => 3,
            Operand::Label(_) => 4,
        };
        key |= variant << (7 + 3 * j);
    }
    Some(key)
}

impl RaView {
    /// Builds the view of `f` (lowered, with unreachable blocks removed) from `cfg`.
    /// Target instructions tagged with an index of `table` take their facts
    /// from there, and what the view derives from them (a `ShapeRecord`)
    /// is kept per tag for later functions while the table's epoch stays;
    /// entries and returns keep theirs by operand variants (see
    /// [`untagged_key`]); the others (pseudo-instructions, IR from text)
    /// are asked of `target`, each time.
    pub fn build(
        &mut self,
        f: &IrFunction,
        cfg: &Cfg,
        target: &dyn Target,
        table: &FactsTable,
    ) -> Result<(), String> {
        // At most two allocator operands per IR operand (a memory operand's
        // base and index). A small function takes that bound; a large one
        // first the room the buffers have (at least one per IR operand and
        // an eighth more: most operands are registers, immediates or memory
        // of one register) and, in the rare function that needs more, is
        // built again with exact room, counted (no counting pass each time,
        // no doubled buffers). The operand and origin buffers only grow (to
        // the most a function needed).
        let all_ops = f.all_operands();
        let bound = 2 * all_ops.len();
        if all_ops.len() <= SMALL_FUNCTION_OPERANDS {
            let fits = self.build_within(f, cfg, target, table, bound, false)?;
            debug_assert!(fits);
            return Ok(());
        }
        let first = (all_ops.len() + all_ops.len() / 8)
            .max(self.operands.len().min(self.origins.len()))
            .min(bound);
        if self.build_within(f, cfg, target, table, first, first < bound)? {
            return Ok(());
        }
        let exact = all_ops
            .iter()
            .map(|op| match op {
                Operand::Reg(_) | Operand::Fixed(..) => 1,
                Operand::Mem(m) => m.regs().count(),
                _ => 0,
            })
            .sum();
        let fits = self.build_within(f, cfg, target, table, exact, false)?;
        debug_assert!(fits);
        Ok(())
    }

    /// [`build`](Self::build) with room for `most` allocator operands:
    /// `false` if `checked` and an instruction's operands might not fit
    /// (then the view is incomplete: `build` builds it again with more).
    /// Without `checked`, `most` must be enough for every operand.
    fn build_within(
        &mut self,
        f: &IrFunction,
        cfg: &Cfg,
        target: &dyn Target,
        table: &FactsTable,
        most: usize,
        checked: bool,
    ) -> Result<bool, String> {
        self.block_ranges.clear();
        self.succs.clear();
        self.succ_offsets.clear();
        self.preds.clear();
        self.pred_offsets.clear();
        self.loop_depth.clear();
        self.clobbers.clear();
        self.moves.clear();
        self.classes.clear();
        self.remat.clear();

        let insts = f.all_insts();
        let n = insts.len();
        // The operand, origin, offset and flag buffers only grow (to the
        // most a function needed): this writes them by index, and
        // `num_insts` and `op_offsets` say how much of them is this
        // function's.
        let all_ops = f.all_operands();
        grow_to(&mut self.operands, most, placeholder_operand());
        grow_to(
            &mut self.origins,
            most,
            OperandOrigin {
                operand: 0,
                in_address: false,
                _padding: 0,
            },
        );
        grow_to(&mut self.op_offsets, n + 1, 0);
        grow_to(&mut self.flags, n, 0);
        self.num_insts = n;

        let mut expected = 0usize;
        for b in cfg.blocks() {
            let range = cfg.insts(b, f);
            if range.start != expected {
                return Err(format!(
                    "block {b:?} does not follow the previous one in layout order"
                ));
            }
            expected = range.end;
            self.block_ranges
                .push(InstRange::new(range.start, range.end));
            self.succ_offsets.push(self.succs.len() as u32);
            self.succs
                .extend(cfg.succs(b).iter().map(|s| Block::new(s.as_u32() as usize)));
            self.pred_offsets.push(self.preds.len() as u32);
            self.preds
                .extend(cfg.preds(b).iter().map(|p| Block::new(p.as_u32() as usize)));
            self.loop_depth.push(cfg.loop_depth(b));
        }
        if expected != n {
            return Err("instructions outside every block".into());
        }
        self.succ_offsets.push(self.succs.len() as u32);
        self.pred_offsets.push(self.preds.len() as u32);

        // Constants: a vreg every definition of which is `copy v, imm` with
        // one value. Per vreg: `None` while nothing wrote it yet (in layout
        // order: a partial write (`cvtsi2sd`, `mov v.r8, ..`) of such a vreg
        // is a plain definition), `CONSTANT` while every write was
        // `copy v, value`, `WRITTEN` once another write was seen.
        let num_vregs = f.num_vregs();
        self.vreg_states.clear();
        self.vreg_states.resize(num_vregs, VregState::UNNAMED);
        let mut fixed_regs = [0u32; 3];
        // Sized first, then written in place (an `extend` from the vreg
        // table checks the capacity per vreg).
        self.classes.resize(num_vregs, RegClass::Gp);
        for (class, (_, data)) in self.classes.iter_mut().zip(f.vregs()) {
            *class = class_of(data.class);
        }
        // Each tagged shape's record is derived once per table epoch (its
        // entries are only appended, see `FactsTable::epoch`).
        if self.shapes_epoch != table.epoch() {
            self.shapes_epoch = table.epoch();
            self.shapes.clear();
            self.templates.clear();
            self.shape_clobbers.clear();
        }
        // Entries are only appended within an epoch: `shapes` grows with them.
        self.shapes.resize(table.len(), None);
        let mut sink = OperandSink {
            operands: &mut self.operands[..most],
            origins: &mut self.origins[..most],
            len: 0,
        };
        let vregs = &mut self.vreg_states[..num_vregs];
        let op_offsets = &mut self.op_offsets[..n + 1];
        let flags_of = &mut self.flags[..n];
        // Runs of plain target instructions in their own loop (see
        // `push_plain_run`); the others one by one here.
        let mut i = 0;
        while i < n {
            (i, sink.len) = push_plain_run(
                i,
                insts,
                all_ops,
                &self.shapes,
                &self.templates,
                &mut sink,
                vregs,
                op_offsets,
                flags_of,
            );
            if i >= n {
                break;
            }
            'one: {
                let d = &insts[i];
                let first = sink.len;
                op_offsets[i] = first as u32;
                let tag = match d.kind {
                    InstKind::Target(_) => d.tag(),
                    _ => None,
                };
                let ops = &all_ops[d.ops_range()];
                // (`push_plain_run` stops at an instruction that does not fit.)
                if checked && first + 2 * ops.len() > most {
                    return Ok(false);
                }
                // `shapes` has one entry per table entry: a tag past it is not
                // the table's.
                if let Some(t) = tag
                    && let Some(&known) = self.shapes.get(t as usize)
                {
                    // Most instructions: a target instruction of a known shape,
                    // no copy and no return (their own loop, without those checks).
                    let shape = match known {
                        Some(shape) => shape,
                        None => {
                            let facts = table.get(t).ok_or("tag outside the facts table")?;
                            let shape = ShapeRecord::derive(
                                facts,
                                &mut self.templates,
                                &mut self.shape_clobbers,
                            );
                            self.shapes[t as usize] = Some(shape);
                            shape
                        }
                    };
                    let templates = &self.templates[shape.templates()];
                    let fixed_by_ir = if shape.plain {
                        !push_plain_registers::<false>(&mut sink, vregs, i as u32, ops, templates)
                            && push_operands::<true>(
                                &mut sink, vregs, i as u32, ops, templates, None,
                            )
                    } else {
                        push_operands::<false>(&mut sink, vregs, i as u32, ops, templates, None)
                    };
                    // Fixed operands and clobbers are rare: one test for both.
                    if fixed_by_ir || shape.flags & (FIXED | CLOBBERS) != 0 {
                        if fixed_by_ir || shape.flags & FIXED != 0 {
                            note_fixed(&sink.operands[first..sink.len], vregs, &mut fixed_regs);
                        }
                        if shape.flags & CLOBBERS != 0 {
                            self.clobbers
                                .push((i as u32, self.shape_clobbers[shape.clobbers as usize]));
                        }
                    }
                    flags_of[i] = shape.flags & !FIXED;
                    break 'one;
                }
                // Entries and returns as lowering leaves most: every operand
                // fixed by the IR.
                if matches!(d.kind, InstKind::Entry | InstKind::Ret)
                    && push_all_fixed(
                        &mut sink,
                        vregs,
                        &mut fixed_regs,
                        i as u32,
                        ops,
                        d.kind == InstKind::Entry,
                    )
                {
                    flags_of[i] = if d.kind == InstKind::Ret { RET } else { 0 };
                    break 'one;
                }
                let inst = IrInst::from_u32(i as u32);
                // Entries and returns: their record kept by key. Others: derived
                // past the kept records' templates, dropped after.
                let key = untagged_key(d.kind, ops);
                let kept = self.own_templates.len();
                let kept_clobbers = self.own_clobbers.len();
                let found = key.and_then(|key| {
                    self.own_shapes
                        .iter()
                        .find(|&&(k, _)| k == key)
                        .map(|&(_, shape)| shape)
                });
                let shape = match found {
                    Some(shape) => shape,
                    None => {
                        self.facts.clear();
                        f.inst_facts(target, inst, &mut self.facts)
                            .map_err(|e| format!("instruction {i}: {e}"))?;
                        if key.is_some() && self.own_shapes.len() == KEYED_SHAPES {
                            self.own_shapes.clear();
                            self.own_templates.clear();
                            self.own_clobbers.clear();
                        }
                        ShapeRecord::derive(
                            &self.facts,
                            &mut self.own_templates,
                            &mut self.own_clobbers,
                        )
                    }
                };
                // Copies are rare: only they are looked at for a constant or a move.
                let (imm_def, copy) = if d.kind == InstKind::Copy {
                    (f.copy_imm(inst), f.copy_vregs(inst))
                } else {
                    (None, None)
                };
                let own = &self.own_templates[shape.templates()];
                let fixed_by_ir = if shape.plain {
                    push_operands::<true>(&mut sink, vregs, i as u32, ops, own, imm_def)
                } else {
                    push_operands::<false>(&mut sink, vregs, i as u32, ops, own, imm_def)
                };
                if fixed_by_ir || shape.flags & FIXED != 0 {
                    note_fixed(&sink.operands[first..sink.len], vregs, &mut fixed_regs);
                }
                let mut flags = shape.flags & !FIXED;
                if matches!(d.kind, InstKind::Ret | InstKind::TailJump(_)) {
                    flags = flags & (CLOBBERS | SUBSET) | RET;
                }
                if flags & CLOBBERS != 0 {
                    self.clobbers
                        .push((i as u32, self.own_clobbers[shape.clobbers as usize]));
                }
                if let Some((d, s)) = copy
                    && f.vreg(d).class == f.vreg(s).class
                {
                    flags |= MOVE;
                    self.moves.push((
                        i as u32,
                        VReg::new(d.as_u32() as usize),
                        VReg::new(s.as_u32() as usize),
                    ));
                }
                flags_of[i] = flags;
                match key {
                    Some(key) if found.is_none() => self.own_shapes.push((key, shape)),
                    Some(_) => {}
                    None => {
                        self.own_templates.truncate(kept);
                        self.own_clobbers.truncate(kept_clobbers);
                    }
                }
            }
            i += 1;
        }
        // A run's memory operand past the room counts its address registers
        // without writing them (`OperandSink::push`): the run may end the
        // function that way.
        if sink.len > most {
            return Ok(false);
        }
        op_offsets[n] = sink.len as u32;
        // Every operand's kind and point come from `ShapeRecord::derive`
        // and `push_address` (uses and modifies early, defs late) and no
        // constraint is `Reuse`: only subsets, clobbers and flow vary.
        let (last, inner) = flags_of.split_last().map_or((0, &[][..]), |(l, r)| (*l, r));
        let inner = inner.iter().fold(0, |a, &b| a | b);
        self.vouched = jitforge_regalloc::Vouched {
            flow_only_last: inner & (RET | BRANCH) == 0,
            no_clobbers: (inner | last) & CLOBBERS == 0,
            plain_operands: (inner | last) & SUBSET == 0,
        };
        self.mentions.clear();
        self.mentions
            .extend(self.vreg_states.iter().map(|s| VRegMentions {
                last: s.last,
                first_fixed_use: s.first_fixed_use,
            }));
        self.remat
            .extend(self.vreg_states.iter().map(|s| s.written == CONSTANT));
        self.fixed_regs = fixed_regs;
        Ok(true)
    }

    /// The facts-table epoch the view's tags belong to (see
    /// [`FactsTable::epoch`]).
    pub fn facts_epoch(&self) -> u64 {
        self.shapes_epoch
    }

    /// Instruction `i`'s allocator operands and the IR origin of each.
    #[inline]
    pub fn operands_and_origins(&self, i: usize) -> (&[RaOperand], &[OperandOrigin]) {
        // As `inst_operands`: both offsets with one bound.
        let Some(&[start, end]) = self.op_offsets.get(i..i + 2) else {
            return (&[], &[]);
        };
        let range = start as usize..end as usize;
        (
            self.operands.get(range.clone()).unwrap_or_default(),
            self.origins.get(range).unwrap_or_default(),
        )
    }
}

// Inlined where the allocator asks (it is generic over its function): most
// of these are an index or two, less than a call.
impl RaFunction for RaView {
    #[inline]
    fn num_insts(&self) -> usize {
        self.num_insts
    }
    #[inline]
    fn num_blocks(&self) -> usize {
        self.block_ranges.len()
    }
    #[inline]
    fn num_vregs(&self) -> usize {
        self.classes.len()
    }
    #[inline]
    fn entry_block(&self) -> Block {
        Block::new(0)
    }
    #[inline]
    fn block_insts(&self, block: Block) -> InstRange {
        self.block_ranges[block.index()]
    }
    #[inline]
    fn block_succs(&self, block: Block) -> &[Block] {
        let b = block.index();
        &self.succs[self.succ_offsets[b] as usize..self.succ_offsets[b + 1] as usize]
    }
    #[inline]
    fn block_preds(&self, block: Block) -> &[Block] {
        let b = block.index();
        &self.preds[self.pred_offsets[b] as usize..self.pred_offsets[b + 1] as usize]
    }
    #[inline]
    fn block_loop_depth(&self, block: Block) -> Option<u32> {
        Some(self.loop_depth[block.index()])
    }
    #[inline]
    fn is_ret(&self, inst: Inst) -> bool {
        self.flags[inst.index()] & RET != 0
    }
    #[inline]
    fn is_branch(&self, inst: Inst) -> bool {
        self.flags[inst.index()] & BRANCH != 0
    }
    #[inline]
    fn inst_operands(&self, inst: Inst) -> &[RaOperand] {
        // Both offsets with one bound (the allocator asks per instruction,
        // more than once): none for an instruction past the function's.
        let i = inst.index();
        match self.op_offsets.get(i..i + 2) {
            Some(&[start, end]) => self
                .operands
                .get(start as usize..end as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }
    #[inline]
    fn inst_clobbers(&self, inst: Inst) -> PRegSet {
        if self.flags[inst.index()] & CLOBBERS == 0 {
            return PRegSet::empty();
        }
        let i = inst.index() as u32;
        let at = self.clobbers.partition_point(|&(j, _)| j < i);
        self.clobbers.get(at).map_or(PRegSet::empty(), |&(_, c)| c)
    }
    #[inline]
    fn is_move(&self, inst: Inst) -> Option<(VReg, VReg)> {
        if self.flags[inst.index()] & MOVE == 0 {
            return None;
        }
        let i = inst.index() as u32;
        let at = self.moves.partition_point(|&(j, _, _)| j < i);
        self.moves.get(at).map(|&(_, d, s)| (d, s))
    }
    #[inline]
    fn vreg_class(&self, vreg: VReg) -> RegClass {
        self.classes[vreg.index()]
    }
    #[inline]
    fn is_remat(&self, vreg: VReg) -> bool {
        self.remat[vreg.index()]
    }
    #[inline]
    fn vouched(&self) -> Option<jitforge_regalloc::Vouched> {
        Some(self.vouched)
    }
    #[inline]
    fn mentions(&self) -> Option<jitforge_regalloc::Mentions<'_>> {
        Some(jitforge_regalloc::Mentions {
            vregs: &self.mentions,
            fixed: self.fixed_regs,
        })
    }
    #[inline]
    fn num_operands(&self) -> usize {
        self.op_offsets[self.num_insts] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler::target::{X86Inst, X86Target};
    use crate::x86::Mnemonic;
    use jitforge_ir::{CallConvId, Signature, TargetInst};

    /// `mov v0, 7; add v0, v1; ret v0`, its two target instructions tagged
    /// with their entries in `table` (added to it in `order`).
    fn tagged_function(t: &X86Target, table: &mut FactsTable, order: [usize; 2]) -> IrFunction {
        let mut f = IrFunction::new("f", Signature::new(CallConvId(0), &[], &[]));
        let v0 = f.new_vreg(IrClass::GP, 8, None);
        let v1 = f.new_vreg(IrClass::GP, 8, None);
        let insts: [(TargetInst, [Operand; 2]); 2] = [
            (
                X86Inst::new(Mnemonic::Mov).id(),
                [Operand::Reg(Reg::v(v0)), Operand::Imm(7)],
            ),
            (
                X86Inst::new(Mnemonic::Add).id(),
                [Operand::Reg(Reg::v(v0)), Operand::Reg(Reg::v(v1))],
            ),
        ];
        let mut tags = [0u16; 2];
        let mut scratch = InstFacts::default();
        for k in order {
            let (id, ops) = insts[k];
            let shapes: Vec<_> = ops.iter().map(|o| f.operand_shape(o)).collect();
            tags[k] = t
                .facts_index(table, id, &shapes, &mut scratch)
                .expect("valid instruction")
                .expect("room in the table");
        }
        for (k, (id, ops)) in insts.iter().enumerate() {
            f.push_tagged(InstKind::Target(*id), ops, tags[k])
                .expect("small function");
        }
        f.ret(&[Operand::Reg(Reg::v(v0))]).expect("small function");
        f
    }

    fn view_operands(view: &RaView) -> Vec<Vec<RaOperand>> {
        (0..view.num_insts())
            .map(|i| view.inst_operands(Inst::new(i)).to_vec())
            .collect()
    }

    /// Every instruction's operands, origins and flags as the view's fast
    /// paths give them (plain runs, all-fixed entries and returns) must be
    /// what the general path gives from the instruction's facts
    /// (`ShapeRecord::derive` and `push_operands`), and the mentions and
    /// constants what that path notes.
    #[test]
    fn fast_paths_agree_with_the_facts() {
        let t = X86Target::x64();
        let mut table = FactsTable::default();
        let mut f = IrFunction::new("f", Signature::new(CallConvId(0), &[], &[]));
        let v: Vec<_> = (0..4).map(|_| f.new_vreg(IrClass::GP, 8, None)).collect();
        let r = |k: usize| Operand::Reg(Reg::v(v[k]));
        let fixed = |k: usize, hw: u8| Operand::Fixed(v[k], jitforge_ir::PReg::gp(hw));
        let address =
            |k: usize| Operand::Mem(jitforge_ir::Mem::vreg(v[k], 1, 0).with_index(Reg::v(v[1]), 2));
        f.push(InstKind::Entry, &[fixed(0, 7), fixed(1, 6)])
            .expect("small function");
        let body: [(Mnemonic, Vec<Operand>); 7] = [
            (Mnemonic::Mov, vec![r(2), r(0)]),
            (Mnemonic::Xor, vec![r(2), r(1)]),
            (Mnemonic::Lea, vec![r(3), address(0)]),
            (Mnemonic::Add, vec![r(3), Operand::Imm(5)]),
            // A zeroing idiom: its second operand is neither read nor written.
            (Mnemonic::Xor, vec![r(1), r(1)]),
            (Mnemonic::Imul, vec![r(0), r(3)]),
            (Mnemonic::Sub, vec![r(0), r(2)]),
        ];
        let mut scratch = InstFacts::default();
        for (mnemonic, ops) in &body {
            let id = X86Inst::new(*mnemonic).id();
            let shapes: Vec<_> = ops.iter().map(|o| f.operand_shape(o)).collect();
            let tag = t
                .facts_index(&mut table, id, &shapes, &mut scratch)
                .expect("valid instruction")
                .expect("room in the table");
            f.push_tagged(InstKind::Target(id), ops, tag)
                .expect("small function");
        }
        f.push(InstKind::Ret, &[fixed(0, 0)])
            .expect("small function");
        let mut cfg = Cfg::default();
        cfg.compute(&f, t);
        let mut view = RaView::default();
        view.build(&f, &cfg, t, &table).expect("view");

        // The general path, instruction by instruction.
        let n = f.num_insts();
        let mut operands = vec![placeholder_operand(); 64];
        let mut origins = vec![
            OperandOrigin {
                operand: 0,
                in_address: false,
                _padding: 0,
            };
            64
        ];
        let mut vregs = vec![VregState::UNNAMED; v.len()];
        let mut fixed_regs = [0u32; 3];
        let (mut templates, mut clobbers) = (Vec::new(), Vec::new());
        for i in 0..n {
            let inst = IrInst::from_u32(i as u32);
            let mut facts = InstFacts::default();
            f.inst_facts(t, inst, &mut facts).expect("facts");
            templates.clear();
            let shape = ShapeRecord::derive(&facts, &mut templates, &mut clobbers);
            let mut sink = OperandSink {
                operands: &mut operands,
                origins: &mut origins,
                len: 0,
            };
            let ops = f.operands(inst);
            if shape.plain {
                push_operands::<true>(&mut sink, &mut vregs, i as u32, ops, &templates, None);
            } else {
                push_operands::<false>(&mut sink, &mut vregs, i as u32, ops, &templates, None);
            }
            let len = sink.len;
            note_fixed(&operands[..len], &mut vregs, &mut fixed_regs);
            let (got, got_origins) = view.operands_and_origins(i);
            assert_eq!(got, &operands[..len], "operands of instruction {i}");
            assert_eq!(got_origins, &origins[..len], "origins of instruction {i}");
            let mut flags = shape.flags & !FIXED;
            if f.kind(inst) == InstKind::Ret {
                flags = flags & (CLOBBERS | SUBSET) | RET;
            }
            assert_eq!(view.flags[i], flags, "flags of instruction {i}");
        }
        let mentions = view.mentions().expect("the view notes mentions");
        assert_eq!(mentions.fixed, fixed_regs);
        for (k, state) in vregs.iter().enumerate() {
            assert_eq!(mentions.vregs[k].last, state.last, "last mention of v{k}");
            assert_eq!(
                mentions.vregs[k].first_fixed_use, state.first_fixed_use,
                "first fixed use of v{k}"
            );
            assert!(!view.is_remat(VReg::new(k)), "v{k} is no constant");
        }
        // The entry's operands are late defs of rdi and rsi, the return's an
        // early use of rax; the idiom leaves its second operand out.
        let entry = view.inst_operands(Inst::new(0));
        assert_eq!(entry.len(), 2);
        assert_eq!(entry[0].kind, OperandKind::Def);
        assert_eq!(entry[0].constraint, Constraint::Fixed(PReg::gp(7)));
        assert_eq!(view.inst_operands(Inst::new(5)).len(), 1);
        assert_eq!(mentions.vregs[0].first_fixed_use, 0);
    }

    #[test]
    fn shape_records_follow_the_table_through_clear() {
        let t = X86Target::x64();
        let mut table = FactsTable::default();
        assert_eq!(table.epoch(), 0);
        let f = tagged_function(t, &mut table, [0, 1]);
        let first_epoch = table.epoch();
        assert_ne!(first_epoch, 0);
        let mut cfg = Cfg::default();
        cfg.compute(&f, t);
        let mut view = RaView::default();
        view.build(&f, &cfg, t, &table).expect("view");
        let before = view_operands(&view);
        // One return, last; no call; no register subset.
        let vouched = view.vouched().expect("the view vouches");
        assert!(vouched.all(), "{vouched:?}");
        // `mov v0, 7` defines v0 (a late def), `add v0, v1` modifies v0 and reads v1.
        assert_eq!(before[0].len(), 1);
        assert_eq!(before[0][0].kind, OperandKind::Def);
        assert_eq!(before[1].len(), 2);
        assert_eq!(before[1][0].kind, OperandKind::Modify);
        assert_eq!(before[1][1].kind, OperandKind::Use);

        // The same instructions, their entries added the other way round
        // after a clear: tag 0 is now `add`'s. The view reused must not
        // apply the records it derived for the old tags.
        table.clear();
        assert_eq!(table.epoch(), 0);
        let g = tagged_function(t, &mut table, [1, 0]);
        assert_ne!(table.epoch(), first_epoch);
        assert_ne!(table.epoch(), 0);
        cfg.compute(&g, t);
        view.build(&g, &cfg, t, &table).expect("view");
        assert_eq!(view_operands(&view), before);
        let mut fresh = RaView::default();
        fresh.build(&g, &cfg, t, &table).expect("view");
        assert_eq!(view_operands(&fresh), before);
    }

    /// A large function whose operands are mostly memory of two registers
    /// needs more room than `build` first gives one (an allocator operand
    /// per IR operand and an eighth more): it is built again with exact
    /// room, each instruction's operands as in a small function.
    #[test]
    fn large_function_of_two_register_addresses_is_built_again_with_room() {
        let t = X86Target::x64();
        let mut table = FactsTable::default();
        let mut f = IrFunction::new("f", Signature::new(CallConvId(0), &[], &[]));
        let v: Vec<_> = (0..3).map(|_| f.new_vreg(IrClass::GP, 8, None)).collect();
        let ops = [
            Operand::Reg(Reg::v(v[2])),
            Operand::Mem(jitforge_ir::Mem::vreg(v[0], 1, 0).with_index(Reg::v(v[1]), 2)),
        ];
        let id = X86Inst::new(Mnemonic::Lea).id();
        let shapes: Vec<_> = ops.iter().map(|o| f.operand_shape(o)).collect();
        let tag = t
            .facts_index(&mut table, id, &shapes, &mut InstFacts::default())
            .expect("valid instruction")
            .expect("room in the table");
        let count = SMALL_FUNCTION_OPERANDS;
        for _ in 0..count {
            f.push_tagged(InstKind::Target(id), &ops, tag)
                .expect("small enough");
        }
        f.ret(&[Operand::Reg(Reg::v(v[2]))]).expect("small enough");
        let mut cfg = Cfg::default();
        cfg.compute(&f, t);
        let mut view = RaView::default();
        view.build(&f, &cfg, t, &table).expect("view");
        assert_eq!(view.num_insts(), count + 1);
        let expected = [
            (v[2], OperandKind::Def, false),
            (v[0], OperandKind::Use, true),
            (v[1], OperandKind::Use, true),
        ];
        for i in 0..count {
            let (got, origins) = view.operands_and_origins(i);
            assert_eq!(got.len(), 3, "operands of instruction {i}");
            for (k, &(vreg, kind, in_address)) in expected.iter().enumerate() {
                assert_eq!(got[k].vreg, VReg(vreg.as_u32()), "instruction {i}");
                assert_eq!(got[k].kind, kind, "instruction {i}");
                assert_eq!(origins[k].in_address, in_address, "instruction {i}");
            }
        }
        assert_eq!(view.op_offsets[count], 3 * count as u32);
        let mentions = view.mentions().expect("the view notes mentions");
        assert_eq!(mentions.vregs[0].last, count as u32 - 1);
        assert_eq!(mentions.vregs[2].last, count as u32);

        // A view whose buffers hold 3 * 1,023 + 1 operands (left by a
        // function of one lea less and the return) gives that room to the
        // leas without the return: the last one's address registers are
        // past it, and the function ends in that run.
        let leas = |n: usize, ret: bool| {
            let mut g = IrFunction::new("g", Signature::new(CallConvId(0), &[], &[]));
            let w: Vec<_> = (0..3).map(|_| g.new_vreg(IrClass::GP, 8, None)).collect();
            assert_eq!(w, v);
            for _ in 0..n {
                g.push_tagged(InstKind::Target(id), &ops, tag)
                    .expect("small enough");
            }
            if ret {
                g.ret(&[Operand::Reg(Reg::v(v[2]))]).expect("small enough");
            }
            g
        };
        let mut reused = RaView::default();
        let shorter = leas(count - 1, true);
        cfg.compute(&shorter, t);
        reused.build(&shorter, &cfg, t, &table).expect("view");
        assert_eq!(reused.operands.len(), 3 * (count - 1) + 1);
        let g = leas(count, false);
        cfg.compute(&g, t);
        reused.build(&g, &cfg, t, &table).expect("view");
        assert_eq!(reused.num_insts(), count);
        assert_eq!(reused.op_offsets[count], 3 * count as u32);
        let (last, _) = reused.operands_and_origins(count - 1);
        assert_eq!(last, view.operands_and_origins(count - 1).0);
    }
}
