//! Layout, branch relaxation and serialization of a Builder's node list.
//!
//! # Algorithm
//!
//! Every relaxable branch (`jmp`/`jcc` to a label, no size given) starts
//! short. A layout pass walks the list once, in order, computing each node's
//! section offset from the sizes known since the node was added (branches: 2
//! bytes short, 5 or 6 near; alignment: the padding at the offset reached in
//! this pass) and the position of each label bound on the way:
//!
//! - a branch to a label already placed in this pass (a backward branch, or
//!   a label the code holder had bound before) is decided on the spot: every
//!   byte between it and its target is final for this pass, so it becomes
//!   near exactly when rel8 does not reach;
//! - a branch to a label not placed yet (a forward branch) stays short for
//!   now and is checked once the walk has placed every label.
//!
//! The forward branches are then checked last first, each with the growth
//! of the later ones that became near inside its span, so that a chain of
//! forward branches that cascade (each out of reach only because the next
//! one grew) settles in the same pass; alignment padding may absorb growth,
//! so in code with alignment nodes this propagation is left to the next pass.
//!
//! When a pass turned some branch near, the layout is run again. Sizes only
//! grow (a near branch never becomes short again), so the passes terminate,
//! and a pass that changes nothing proves that every short branch reaches in
//! the layout that will be written. Cascades that mix directions or cross
//! alignment may need more passes; they are bounded by [`MAX_PASSES`]: past
//! it, every forward branch still short becomes near, after which backward
//! decisions settle in at most two more passes. Each pass is linear in the
//! number of nodes plus labels, so the whole relaxation is linear. On
//! workload A one pass suffices; code without alignment needs at most a few.
//!
//! # Serialization
//!
//! Checks that need the final layout (labels used but bound nowhere, labels
//! bound twice, explicitly short branches that do not reach) are made before
//! anything is written. Then each node goes through the [`Assembler`], the
//! relaxable branches with the size relaxation chose (`InstOptions::SHORT` or
//! `LONG`). When no logger is attached, two kinds of instructions skip the
//! encoder: those whose bytes were cached when they were added (no label, no
//! absolute target) are copied (a run of them added in order lies in one
//! piece of the byte pool and is copied at once; while the list has only
//! been appended to, each layout pass also places such a run whole, from
//! the sizes of its first and last node's bytes), and prefix-free `jmp`/`jcc`/`call rel32` to a
//! label of the same section are written from the layout's label positions.
//! Each node's offset and size are compared with the layout's (a run of
//! cached bytes at the next node of another kind, and the end of the code
//! with the layout's), so a disagreement is an error, never wrong code.
//!
//! Without alignment nodes the relaxation finds the least set of near
//! branches (a branch becomes near only when it cannot reach even with every
//! other branch still short, and distances only grow), so no near branch of
//! the result could be short. Alignment padding can shrink when code before
//! it grows, so with alignment a branch may stay near that would now reach.

use super::pool::{Chunked, MAX_OPERANDS, Operands};
use super::{Kind, NIL, Rec, flag};
use crate::code::{Arch, CodeHolder, Label, SectionId};
use crate::error::{Error, Result};
use crate::x86::db::generated_opcodes as opcodes;
use crate::x86::{Assembler, Emitter, InstOptions, Logger, MemBase, Mnemonic, Operand};
use std::cell::RefCell;

/// Layout passes before the remaining short forward branches are made near.
pub const MAX_PASSES: u32 = 32;

const UNSET: u64 = u64::MAX;

/// What the last branch relaxation of a Builder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelaxStats {
    /// Layout passes run (1 when every branch reached at once).
    pub passes: u32,
    /// Relaxable branches written short (2 bytes).
    pub short_branches: usize,
    /// Relaxable branches written near (5 or 6 bytes).
    pub near_branches: usize,
    /// Whether [`MAX_PASSES`] was reached (the remaining short forward
    /// branches were then made near).
    pub bounded: bool,
}

/// A short branch whose target was not placed yet when the walk met it.
#[derive(Clone, Copy, Debug)]
struct Forward {
    node: u32,
    label: u32,
    section: u32,
    end: u64,
    /// Bytes it grows by when made near in this pass (0 while short).
    growth: u8,
}

/// Buffers of the layout passes, kept between serializations.
#[derive(Debug, Default)]
pub(super) struct Layout {
    holder_pos: Vec<u64>,
    label_pos: Vec<u64>,
    section_start: Vec<u64>,
    section_off: Vec<u64>,
    forward: Vec<Forward>,
    /// Non-relaxable nodes that refer to labels: (node, section).
    checks: Vec<(u32, u32)>,
    /// Whether a label bound neither here nor in the code holder is left
    /// to the code holder (a fixup patched when a later emitter binds it)
    /// instead of being an error; branches to it are near.
    pub defer_unbound: bool,
}

/// The Builder's lists, borrowed for serialization.
pub(super) struct Lists<'b> {
    pub nodes: &'b mut Chunked<Rec>,
    pub first: u32,
    /// Whether the runs of plain instructions are intact (see the
    /// Builder's `runs`): each run's first node names its last in `offset`.
    pub runs: bool,
    pub operands: &'b Operands,
    pub data: &'b [u8],
    pub text: &'b str,
}

fn pack(section: u32, offset: u64) -> u64 {
    ((section as u64) << 32) | offset
}

/// The rel8 displacement from `end` in `section` to `pos`, when in the same section.
fn displacement(pos: u64, section: u32, end: u64) -> Option<i64> {
    ((pos >> 32) as u32 == section).then(|| (pos & 0xffff_ffff) as i64 - end as i64)
}

fn reaches(pos: u64, section: u32, end: u64) -> bool {
    displacement(pos, section, end).is_some_and(|d| (-128..=127).contains(&d))
}

/// The operands of instruction node `r`, unpacked into `buf`.
fn operands_of<'o>(
    operands: &Operands,
    r: &Rec,
    buf: &'o mut [Operand; MAX_OPERANDS],
) -> &'o [Operand] {
    operands.unpack(r.arg, r.len, buf)
}

fn internal(message: String) -> Error {
    Error::InvalidArgument {
        message: format!("builder: {message} (internal error)"),
    }
}

fn branch_label(operands: &Operands, r: &Rec) -> Result<u32> {
    match (r.len, operands.get(r.arg as usize)) {
        (1, Operand::Label(l)) => Ok(l.0),
        _ => Err(internal("relaxable branch without a label".into())),
    }
}

impl Layout {
    fn init(&mut self, code: &CodeHolder) {
        let n = code.label_count() as u32;
        self.holder_pos.clear();
        self.holder_pos.extend((0..n).map(|i| {
            code.label_offset(Label(i))
                .map_or(UNSET, |(s, o)| pack(s.0, o as u64))
        }));
        self.section_start.clear();
        self.section_start
            .extend(code.sections().iter().map(|s| s.data().len() as u64));
    }

    fn label_slot(&mut self, label: u32) -> Result<&mut u64> {
        self.label_pos
            .get_mut(label as usize)
            .ok_or(Error::InvalidLabel { id: label })
    }

    /// One layout pass (`first`: the first of this serialization, which
    /// forgets the sizes an earlier one chose); returns whether some branch
    /// became near.
    fn pass(
        &mut self,
        code: &CodeHolder,
        lists: &mut Lists<'_>,
        ptr: u64,
        force: bool,
        first: bool,
    ) -> Result<bool> {
        self.label_pos.clone_from(&self.holder_pos);
        self.section_off.clone_from(&self.section_start);
        self.forward.clear();
        self.checks.clear();
        let mut changed = false;
        let mut aligned = false;
        let mut section = 0u32;
        let mut off = self.section_off.first().copied().unwrap_or(0);
        let mut at = lists.first;
        let runs = lists.runs;
        while at != NIL {
            let r = &mut lists.nodes[at as usize];
            if runs && r.flags & flag::PLAIN != 0 {
                // A run of plain instructions: its bytes lie in one piece of
                // the byte pool, so its size is where its last node's end.
                let (start, last) = (r.data, r.offset);
                let l = &lists.nodes[last as usize];
                off += u64::from(l.data.wrapping_add(u32::from(l.size)).wrapping_sub(start));
                at = l.next;
                continue;
            }
            r.offset =
                u32::try_from(off).map_err(|_| internal("a section exceeds 4 GiB".into()))?;
            match r.kind {
                Kind::Inst if r.flags & flag::RELAX != 0 => {
                    if first {
                        // Relaxation starts over from short (a serialized
                        // list may be serialized again).
                        r.flags &= !flag::LONG;
                    }
                    if r.flags & flag::LONG != 0 {
                        off += r.long_size as u64;
                    } else {
                        let label = branch_label(lists.operands, r)?;
                        let end = off + r.size as u64;
                        let pos = *self
                            .label_pos
                            .get(label as usize)
                            .ok_or(Error::InvalidLabel { id: label })?;
                        if pos == UNSET {
                            self.forward.push(Forward {
                                node: at,
                                label,
                                section,
                                end,
                                growth: 0,
                            });
                            off = end;
                        } else if reaches(pos, section, end) {
                            off = end;
                        } else {
                            r.flags |= flag::LONG;
                            off += r.long_size as u64;
                            changed = true;
                        }
                    }
                }
                Kind::Inst => {
                    if r.flags & flag::LABEL_USE != 0 {
                        self.checks.push((at, section));
                    }
                    off += r.size as u64;
                }
                Kind::Label => {
                    let slot = self.label_slot(r.arg)?;
                    if *slot != UNSET {
                        return Err(Error::LabelAlreadyBound {
                            label: code.label_name(Label(r.arg)),
                        });
                    }
                    *slot = pack(section, off);
                }
                Kind::Align => {
                    aligned = true;
                    off = off.next_multiple_of(r.arg as u64);
                }
                Kind::Embed => off += r.len as u64,
                Kind::EmbedLabel => {
                    self.checks.push((at, section));
                    off += ptr;
                }
                Kind::Comment | Kind::Removed => {}
                Kind::Section => {
                    self.section_off[section as usize] = off;
                    section = r.arg;
                    off = *self
                        .section_off
                        .get(section as usize)
                        .ok_or_else(|| internal(format!("no section {section}")))?;
                }
            }
            at = r.next;
        }
        u32::try_from(off).map_err(|_| internal("a section exceeds 4 GiB".into()))?;
        if let Some(s) = self.section_off.get_mut(section as usize) {
            *s = off;
        }
        // The forward branches, last first: a branch that becomes near moves
        // every label after it, so the earlier branches whose span holds it
        // see their displacement grow by as much in this same pass (exactly
        // so without alignment, whose padding could absorb the growth: then
        // the next pass sees it). A chain of forward branches that cascade
        // thus settles in one pass. Only short spans are scanned (at most 64
        // branches of 2 bytes fit in 127), so this stays linear.
        for i in (0..self.forward.len()).rev() {
            let f = self.forward[i];
            let pos = self.label_pos[f.label as usize];
            if pos == UNSET {
                if !self.defer_unbound {
                    return Err(Error::UnboundLabel {
                        label: code.label_name(Label(f.label)),
                    });
                }
                // Bound later, somewhere else: it may be far.
                lists.nodes[f.node as usize].flags |= flag::LONG;
                changed = true;
                continue;
            }
            let near = force
                || match displacement(pos, f.section, f.end) {
                    None => true,
                    Some(d) if !(-128..=127).contains(&d) => true,
                    Some(d) => {
                        let mut grown = 0i64;
                        if !aligned {
                            let target = pos & 0xffff_ffff;
                            for g in &self.forward[i + 1..] {
                                if g.section != f.section || g.end > target {
                                    break;
                                }
                                grown += g.growth as i64;
                            }
                        }
                        d + grown > 127
                    }
                };
            if near {
                let r = &mut lists.nodes[f.node as usize];
                r.flags |= flag::LONG;
                self.forward[i].growth = r.long_size.saturating_sub(r.size);
                changed = true;
            }
        }
        Ok(changed)
    }

    /// After the last pass: every label used is bound, and every explicitly
    /// short branch reaches.
    fn check(&self, code: &CodeHolder, lists: &Lists<'_>) -> Result<()> {
        let unbound = |label: u32| Error::UnboundLabel {
            label: code.label_name(Label(label)),
        };
        for &(node, section) in &self.checks {
            let r = &lists.nodes[node as usize];
            if r.kind == Kind::EmbedLabel {
                if self
                    .label_pos
                    .get(r.arg as usize)
                    .is_none_or(|&p| p == UNSET)
                    && !self.defer_unbound
                {
                    return Err(unbound(r.arg));
                }
                continue;
            }
            let mut buf = [Operand::None; MAX_OPERANDS];
            for op in operands_of(lists.operands, r, &mut buf) {
                let (label, target) = match op {
                    Operand::Label(l) => (l.0, true),
                    Operand::Mem(m) => match m.base() {
                        MemBase::Label(l) => (l.0, false),
                        _ => continue,
                    },
                    _ => continue,
                };
                let pos = self.label_pos.get(label as usize).copied().unwrap_or(UNSET);
                if pos == UNSET {
                    if self.defer_unbound {
                        continue;
                    }
                    return Err(unbound(label));
                }
                if target && r.flags & flag::SHORT_FIXED != 0 {
                    let end = r.offset as u64 + r.size as u64;
                    if let Some(d) = displacement(pos, section, end)
                        && !(-128..=127).contains(&d)
                    {
                        return Err(Error::ShortJumpOutOfRange {
                            label: code.label_name(Label(label)),
                            distance: d,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Forwards the Assembler's log lines to a logger the serializer also
/// writes comments to.
struct SharedLogger<'c, 'r, 'l>(&'c RefCell<&'r mut (dyn Logger + 'l)>);

impl Logger for SharedLogger<'_, '_, '_> {
    fn log(&mut self, offset: usize, bytes: &[u8], text: &str) {
        if let Ok(mut logger) = self.0.try_borrow_mut() {
            logger.log(offset, bytes, text);
        }
    }
}

/// A conditional jump's opcodes from the instruction database: the
/// `rel8` one and the byte after 0F of the `rel32` one (`None` for `jmp`).
fn conditional_jump(m: Mnemonic) -> Option<(u8, u8)> {
    use Mnemonic as M;
    Some(match m {
        M::Jo => (opcodes::JO_REL8, opcodes::JO_0F_REL32),
        M::Jno => (opcodes::JNO_REL8, opcodes::JNO_0F_REL32),
        M::Jb => (opcodes::JB_REL8, opcodes::JB_0F_REL32),
        M::Jae => (opcodes::JAE_REL8, opcodes::JAE_0F_REL32),
        M::Je => (opcodes::JE_REL8, opcodes::JE_0F_REL32),
        M::Jne => (opcodes::JNE_REL8, opcodes::JNE_0F_REL32),
        M::Jbe => (opcodes::JBE_REL8, opcodes::JBE_0F_REL32),
        M::Ja => (opcodes::JA_REL8, opcodes::JA_0F_REL32),
        M::Js => (opcodes::JS_REL8, opcodes::JS_0F_REL32),
        M::Jns => (opcodes::JNS_REL8, opcodes::JNS_0F_REL32),
        M::Jp => (opcodes::JP_REL8, opcodes::JP_0F_REL32),
        M::Jnp => (opcodes::JNP_REL8, opcodes::JNP_0F_REL32),
        M::Jl => (opcodes::JL_REL8, opcodes::JL_0F_REL32),
        M::Jge => (opcodes::JGE_REL8, opcodes::JGE_0F_REL32),
        M::Jle => (opcodes::JLE_REL8, opcodes::JLE_0F_REL32),
        M::Jg => (opcodes::JG_REL8, opcodes::JG_0F_REL32),
        _ => return None,
    })
}

/// The bytes of a prefix-free relaxable branch (or `call rel32`) whose
/// target is at `target` in the same section: `EB`/`7x` rel8, or
/// `E9`/`0F 8x`/`E8` rel32.
fn branch_bytes<'o>(r: &Rec, offset: u64, target: u64, out: &'o mut [u8; 6]) -> &'o [u8] {
    let long = r.flags & flag::LONG != 0;
    let size = if long { r.long_size } else { r.size } as usize;
    let disp = target as i64 - (offset as i64 + size as i64);
    if r.mnemonic == Mnemonic::Call {
        let d = (disp as i32).to_le_bytes();
        *out = [opcodes::CALL_REL32, d[0], d[1], d[2], d[3], 0];
        return &out[..5];
    }
    match (conditional_jump(r.mnemonic), long) {
        (None, false) => *out = [opcodes::JMP_REL8, disp as u8, 0, 0, 0, 0],
        (Some((rel8, _)), false) => *out = [rel8, disp as u8, 0, 0, 0, 0],
        (None, true) => {
            let d = (disp as i32).to_le_bytes();
            *out = [opcodes::JMP_REL32, d[0], d[1], d[2], d[3], 0];
        }
        // The 0F escape, then the opcode of the 0F map.
        (Some((_, rel32)), true) => {
            let d = (disp as i32).to_le_bytes();
            *out = [0x0f, rel32, d[0], d[1], d[2], d[3]];
        }
    }
    &out[..size]
}

/// The options an instruction node is emitted with: its own, and for a
/// relaxable branch the size the layout chose.
fn branch_options(r: &Rec) -> InstOptions {
    let mut options = r.options;
    if r.flags & flag::RELAX != 0 {
        options |= if r.flags & flag::LONG != 0 {
            InstOptions::LONG
        } else {
            InstOptions::SHORT
        };
    }
    options
}

/// The size a node takes at `offset` in the final layout.
fn node_size(r: &Rec, offset: u64, ptr: u64) -> u64 {
    match r.kind {
        Kind::Inst if r.flags & flag::LONG != 0 => r.long_size as u64,
        Kind::Inst => r.size as u64,
        Kind::Align => offset.next_multiple_of(r.arg as u64) - offset,
        Kind::Embed => r.len as u64,
        Kind::EmbedLabel => ptr,
        Kind::Label | Kind::Comment | Kind::Section | Kind::Removed => 0,
    }
}

/// Relaxes the branches of `lists` and writes it into `code`.
pub(super) fn serialize(
    code: &mut CodeHolder,
    logger: Option<&mut (dyn Logger + '_)>,
    mut lists: Lists<'_>,
    layout: &mut Layout,
) -> Result<RelaxStats> {
    let ptr = match code.arch() {
        Arch::X64 => 8,
        Arch::X86 => 4,
    };
    layout.init(code);
    let mut stats = RelaxStats::default();
    let mut force = false;
    loop {
        stats.passes += 1;
        if !layout.pass(code, &mut lists, ptr, force, stats.passes == 1)? {
            break;
        }
        if stats.passes >= MAX_PASSES {
            force = true;
            stats.bounded = true;
        }
        if stats.passes > MAX_PASSES + 4 {
            return Err(internal("branch relaxation does not settle".into()));
        }
    }
    layout.check(code, &lists)?;
    emit(code, logger, &lists, layout, ptr, &mut stats)?;
    Ok(stats)
}

fn emit(
    code: &mut CodeHolder,
    logger: Option<&mut (dyn Logger + '_)>,
    lists: &Lists<'_>,
    layout: &Layout,
    ptr: u64,
    stats: &mut RelaxStats,
) -> Result<()> {
    // The layout knows where each section ends: reserving that once keeps
    // the copies below from regrowing (and recopying) the code buffers.
    for (index, &end) in layout.section_off.iter().enumerate() {
        let id = SectionId(index as u32);
        if code.has_section(id) {
            let buffer = code.buffer_mut(id);
            buffer.reserve((end as usize).saturating_sub(buffer.len()));
        }
    }
    let mut branch = [0u8; 6];
    let mut operands = [Operand::None; MAX_OPERANDS];
    let cell = logger.map(RefCell::new);
    let mut shared = cell.as_ref().map(SharedLogger);
    let logging = cell.is_some();
    let mut a = Assembler::new(code);
    if let Some(shared) = shared.as_mut() {
        a.set_logger(Some(shared));
    }
    let mut section = CodeHolder::TEXT;
    // Cached bytes of consecutive plain instructions lie one after the
    // other in the byte pool (when they were added in order): such a run is
    // copied at once, when a node of another kind (or the end) is reached.
    let mut run = 0..0usize;
    let flush = |a: &mut Assembler<'_>, run: &mut std::ops::Range<usize>, section| {
        if run.start < run.end {
            let bytes = lists
                .data
                .get(run.clone())
                .ok_or_else(|| internal("cached bytes missing".into()))?;
            a.code_mut().buffer_mut(section).extend_from_slice(bytes);
            *run = 0..0;
        }
        Ok::<(), Error>(())
    };
    let mut at = lists.first;
    while at != NIL {
        let r = &lists.nodes[at as usize];
        let plain = r.kind == Kind::Inst && r.flags & flag::PLAIN != 0;
        if plain && !logging {
            // Its offset is checked with the next node of another kind.
            let (d, end, next) = if lists.runs {
                // The whole run at once (see `Lists::runs`).
                let l = &lists.nodes[r.offset as usize];
                (r.data, l.data.wrapping_add(u32::from(l.size)), l.next)
            } else {
                (r.data, r.data.wrapping_add(u32::from(r.size)), r.next)
            };
            let (d, end) = (d as usize, end as usize);
            if run.end == d && run.start < run.end {
                run.end = end;
            } else {
                flush(&mut a, &mut run, section)?;
                run = d..end;
            }
            at = next;
            continue;
        }
        flush(&mut a, &mut run, section)?;
        let start = a.offset();
        // (The layout places a run of plain nodes whole, not each node.)
        if !(plain && lists.runs) && start as u64 != r.offset as u64 {
            return Err(internal(format!(
                "node {at} is at offset {start}, the layout said {}",
                r.offset
            )));
        }
        match r.kind {
            Kind::Inst => {
                if r.flags & flag::RELAX != 0 {
                    if r.flags & flag::LONG != 0 {
                        stats.near_branches += 1;
                    } else {
                        stats.short_branches += 1;
                    }
                }
                // A prefix-free relaxable branch (or `call rel32`) to a label
                // of this section: its displacement is known from the layout.
                let call = r.mnemonic == Mnemonic::Call && r.size == 5;
                let direct = ((r.flags & flag::RELAX != 0 || call) && r.options.is_empty())
                    .then(|| {
                        let label = branch_label(lists.operands, r).ok()?;
                        let pos = *layout.label_pos.get(label as usize)?;
                        let d = displacement(pos, section.0, 0)?;
                        Some(d as u64)
                    })
                    .flatten();
                if let Some(target) = direct {
                    let bytes = branch_bytes(r, start as u64, target, &mut branch);
                    a.code_mut().buffer_mut(section).extend_from_slice(bytes);
                    // Logged with its final bytes (an Assembler logs a forward
                    // branch before its label is bound, with a zero displacement).
                    if let Some(cell) = &cell
                        && let Ok(mut logger) = cell.try_borrow_mut()
                    {
                        let text = crate::x86::text::format_instruction(
                            r.mnemonic,
                            operands_of(lists.operands, r, &mut operands),
                            branch_options(r),
                            a.code_mut().arch(),
                        );
                        logger.log(start, bytes, &text);
                    }
                } else {
                    a.options(branch_options(r));
                    a.emit(r.mnemonic, operands_of(lists.operands, r, &mut operands))?;
                }
            }
            Kind::Label => a.bind(Label(r.arg))?,
            Kind::Align => a.align(r.arg as usize)?,
            Kind::Embed => {
                let d = r.arg as usize;
                let bytes = lists
                    .data
                    .get(d..d + r.len as usize)
                    .ok_or_else(|| internal("embedded bytes missing".into()))?;
                a.embed(bytes);
            }
            Kind::EmbedLabel => a.embed_label(Label(r.arg))?,
            Kind::Comment => {
                if let Some(cell) = &cell
                    && let Ok(mut logger) = cell.try_borrow_mut()
                {
                    let d = r.arg as usize;
                    let text = lists.text.get(d..d + r.len as usize).unwrap_or("");
                    logger.log(start, &[], &format!("; {text}"));
                }
            }
            Kind::Section => {
                section = SectionId(r.arg);
                a.switch_section(section)?;
            }
            Kind::Removed => {}
        }
        if r.kind != Kind::Section {
            let size = node_size(r, start as u64, ptr);
            if (a.offset() - start) as u64 != size {
                return Err(internal(format!(
                    "node {at} took {} bytes, the layout said {size}",
                    a.offset() - start
                )));
            }
        }
        at = r.next;
    }
    flush(&mut a, &mut run, section)?;
    let end = layout.section_off.get(section.0 as usize).copied();
    if end != Some(a.offset() as u64) {
        return Err(internal(format!(
            "the code ends at {}, the layout said {end:?}",
            a.offset()
        )));
    }
    Ok(())
}
