//! [`CodeHolder`]: sections of bytes, labels, pending fixups and relocations.

use super::{Label, NameTable};
use crate::error::{Error, Result};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cell::Cell;
use std::ptr::NonNull;

/// The target architecture of a code holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64 (64-bit mode).
    X64,
    /// x86 (32-bit protected mode).
    X86,
}

impl Arch {
    /// 64 or 32.
    pub const fn bits(self) -> u32 {
        match self {
            Arch::X64 => 64,
            Arch::X86 => 32,
        }
    }

    /// The architecture of the machine running this program, if it is x86.
    pub const fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X64)
        } else if cfg!(target_arch = "x86") {
            Some(Arch::X86)
        } else {
            None
        }
    }
}

/// What a section holds; decides padding (NOPs in code, zeros elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Executable code.
    Text,
    /// Writable data.
    Data,
    /// Read-only data (constants).
    ReadOnlyData,
}

/// Identifies a section of a [`CodeHolder`]; `.text` is [`CodeHolder::TEXT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionId(pub(crate) u32);

/// A named run of bytes with an alignment.
#[derive(Clone, Debug)]
pub struct Section {
    /// Borrowed for `.text` (no allocation per code holder).
    name: Cow<'static, str>,
    kind: SectionKind,
    alignment: u32,
    pub(crate) data: Vec<u8>,
}

impl Section {
    /// What fills the gap before this section: `int3` before code, zeros
    /// before data.
    fn padding_byte(&self) -> u8 {
        if self.kind == SectionKind::Text {
            crate::x86::db::generated_opcodes::INT3
        } else {
            0
        }
    }

    /// The name (`.text`, `.data`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The kind.
    pub fn kind(&self) -> SectionKind {
        self.kind
    }
    /// The alignment of the section's start in the laid-out code.
    pub fn alignment(&self) -> u32 {
        self.alignment
    }
    /// The bytes written so far (fixups to unbound labels still hold zeros).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// How a fixup or relocation writes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FixupKind {
    /// Signed 8-bit, relative to the end of the instruction.
    Rel8,
    /// Signed 32-bit, relative to the end of the instruction (branches, RIP-relative).
    Rel32,
    /// Absolute 32-bit address.
    Abs32,
    /// Absolute 64-bit address.
    Abs64,
}

const UNBOUND: u32 = u32::MAX;
const NO_FIXUP: u32 = u32::MAX;

/// A label's place: 8 bytes, so that the table of a program with many
/// labels (workload A makes 80,000) stays small and cheap to grow (names
/// live in `names`).
#[derive(Clone, Copy, Debug)]
struct LabelEntry {
    /// Offset in its section, or `UNBOUND`.
    offset: u32,
    /// Bound: the section. Unbound: the first waiting use in `fixups`, or
    /// `NO_FIXUP` (so a label nobody jumped to yet binds in two stores).
    link: u32,
}

impl LabelEntry {
    /// The first waiting use, for an unbound label.
    fn first_fixup(&self) -> u32 {
        if self.offset == UNBOUND {
            self.link
        } else {
            NO_FIXUP
        }
    }
}

/// A use of a label that is not bound yet; chained per label.
#[derive(Clone, Copy, Debug)]
struct Fixup {
    section: u32,
    offset: u32,
    kind: FixupKind,
    /// Bytes from the field to the end of the instruction (relative kinds).
    pc_delta: u8,
    addend: i64,
    next: u32,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Label(u32),
    Absolute(u64),
}

/// A value that can only be written once the final address is known.
#[derive(Clone, Copy, Debug)]
struct Relocation {
    section: u32,
    offset: u32,
    kind: FixupKind,
    pc_delta: u8,
    addend: i64,
    target: Target,
}

/// Holds the code and data being generated: sections, labels, fixups and
/// relocations. Emitters (the `x86::Assembler`, later the Builder and the
/// Compiler) write into it; [`crate::jit::JitRuntime`] copies it into
/// executable memory.
///
/// ```
/// use jitforge::code::{Arch, CodeHolder};
/// let mut code = CodeHolder::new(Arch::X64);
/// let label = code.new_label();
/// assert!(!code.is_bound(label));
/// assert_eq!(code.code_size(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct CodeHolder {
    arch: Arch,
    base_address: Option<u64>,
    sections: Vec<Section>,
    labels: Vec<LabelEntry>,
    /// Named labels: name -> label id, in creation order (so sorted by id,
    /// for [`CodeHolder::label_name`]).
    names: NameTable,
    fixups: Vec<Fixup>,
    /// The first of the `fixups` entries free for reuse (chained through
    /// `next`; resolved uses are freed when their label is bound, so that a
    /// long program with a few forward jumps open at a time keeps a short
    /// table), or `NO_FIXUP`.
    free_fixup: u32,
    pending: usize,
    relocations: Vec<Relocation>,
}

/// The emptied buffers of a dropped [`CodeHolder`], kept on its thread for
/// the next one: `.text` (the only section kept), the label table, the
/// names, fixups and relocations. Five allocations and frees per code
/// holder otherwise, a measurable part of compiling one small function
/// with its own code holder (workload C).
struct SpareBuffers {
    sections: Vec<Section>,
    labels: Vec<LabelEntry>,
    names: NameTable,
    fixups: Vec<Fixup>,
    relocations: Vec<Relocation>,
}

impl SpareBuffers {
    /// Code holders with more code than this give their buffers back to
    /// the allocator: a thread that built one large program should not
    /// hold its memory for good.
    const MAX_TEXT: usize = 64 * 1024;
    /// As [`SpareBuffers::MAX_TEXT`], for the label and fixup tables (entries).
    const MAX_ENTRIES: usize = 4096;
}

thread_local! {
    /// The buffers of the last code holder dropped on this thread.
    static SPARE_BUFFERS: Cell<Option<SpareBuffers>> = const { Cell::new(None) };
}

/// Frees the buffers this thread keeps for its next [`CodeHolder`].
#[cfg_attr(not(feature = "compiler"), allow(dead_code))]
pub(crate) fn release_spare_buffers() {
    let _ = SPARE_BUFFERS.try_with(Cell::take);
}

impl Drop for CodeHolder {
    fn drop(&mut self) {
        let Some(text) = self.sections.first() else {
            return;
        };
        if text.data.capacity() > SpareBuffers::MAX_TEXT
            || self.labels.capacity() > SpareBuffers::MAX_ENTRIES
            || self.fixups.capacity() > SpareBuffers::MAX_ENTRIES
            || self.relocations.capacity() > SpareBuffers::MAX_ENTRIES
        {
            return;
        }
        let mut sections = std::mem::take(&mut self.sections);
        // `.text` stays (the first section of every code holder), emptied.
        sections.truncate(1);
        sections[0].data.clear();
        let mut names = std::mem::take(&mut self.names);
        names.clear();
        let mut spare = SpareBuffers {
            sections,
            labels: std::mem::take(&mut self.labels),
            names,
            fixups: std::mem::take(&mut self.fixups),
            relocations: std::mem::take(&mut self.relocations),
        };
        spare.labels.clear();
        spare.fixups.clear();
        spare.relocations.clear();
        // During thread teardown the slot may be gone: the buffers are freed.
        let _ = SPARE_BUFFERS.try_with(|s| s.set(Some(spare)));
    }
}

impl CodeHolder {
    /// The `.text` section every code holder starts with.
    pub const TEXT: SectionId = SectionId(0);

    /// The room `.text` starts with: a small function's code, so that it
    /// is one allocation rather than the five or six a buffer growing from
    /// nothing takes to get there (the Compiler makes a code holder per
    /// function).
    const TEXT_CAPACITY: usize = 512;

    /// An empty code holder with a `.text` section (16-byte aligned).
    pub fn new(arch: Arch) -> CodeHolder {
        // The buffers of the last code holder dropped on this thread, when
        // there is one: a program that makes a code holder per small
        // function then allocates none (see [`SpareBuffers`]).
        if let Some(mut spare) = SPARE_BUFFERS.try_with(Cell::take).ok().flatten() {
            // (`take_code` may have taken `.text`'s buffer.)
            spare.sections[0].data.reserve(CodeHolder::TEXT_CAPACITY);
            return CodeHolder {
                arch,
                base_address: None,
                sections: spare.sections,
                labels: spare.labels,
                names: spare.names,
                fixups: spare.fixups,
                free_fixup: NO_FIXUP,
                pending: 0,
                relocations: spare.relocations,
            };
        }
        CodeHolder {
            arch,
            base_address: None,
            sections: vec![Section {
                name: Cow::Borrowed(".text"),
                kind: SectionKind::Text,
                alignment: 16,
                data: Vec::with_capacity(CodeHolder::TEXT_CAPACITY),
            }],
            labels: Vec::new(),
            names: NameTable::default(),
            fixups: Vec::new(),
            free_fixup: NO_FIXUP,
            pending: 0,
            relocations: Vec::new(),
        }
    }

    /// Empties the code holder for reuse, keeping its allocations.
    pub fn reset(&mut self) {
        self.sections.truncate(1);
        self.sections[0].data.clear();
        self.labels.clear();
        self.names.clear();
        self.fixups.clear();
        self.free_fixup = NO_FIXUP;
        self.pending = 0;
        self.relocations.clear();
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The address the code will run at, when known in advance (absolute
    /// branch targets are then encoded directly instead of relocated).
    pub fn base_address(&self) -> Option<u64> {
        self.base_address
    }

    /// Sets the address the code will run at.
    pub fn set_base_address(&mut self, base: Option<u64>) {
        self.base_address = base;
    }

    /// Adds a section. `alignment` must be a power of two up to 4096.
    pub fn add_section(
        &mut self,
        name: &str,
        kind: SectionKind,
        alignment: u32,
    ) -> Result<SectionId> {
        if !alignment.is_power_of_two() || alignment > 4096 {
            return Err(Error::InvalidArgument {
                message: format!("section alignment {alignment} is not a power of two up to 4096"),
            });
        }
        self.sections.push(Section {
            name: Cow::Owned(name.into()),
            kind,
            alignment,
            data: Vec::new(),
        });
        Ok(SectionId(self.sections.len() as u32 - 1))
    }

    /// The section with this id.
    pub fn section(&self, id: SectionId) -> Option<&Section> {
        self.sections.get(id.0 as usize)
    }

    /// All sections, in layout order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The bytes of `.text` (unresolved fixups still hold zeros).
    pub fn text(&self) -> &[u8] {
        &self.sections[0].data
    }

    pub(crate) fn buffer_mut(&mut self, id: SectionId) -> &mut Vec<u8> {
        &mut self.sections[id.0 as usize].data
    }

    /// A pointer to the buffer of section `id` (`None`: no such section),
    /// for an emitter that writes instruction after instruction into it
    /// (the Assembler's fast path) without looking the section up each
    /// time. Taken from [`Vec::as_mut_ptr`] with no reference in between,
    /// it survives the other accesses to the sections and stays valid until
    /// the section table itself changes (`add_section`, `reset`,
    /// `take_code`, drop), which needs `&mut CodeHolder`.
    pub(crate) fn buffer_ptr(&mut self, id: SectionId) -> Option<NonNull<Vec<u8>>> {
        let index = id.0 as usize;
        if index >= self.sections.len() {
            return None;
        }
        let section = self.sections.as_mut_ptr().wrapping_add(index);
        // SAFETY: `section` points at a live element (index checked above).
        // `&raw mut` makes no reference, so the pointer keeps the
        // provenance of `as_mut_ptr`.
        NonNull::new(unsafe { &raw mut (*section).data })
    }

    pub(crate) fn has_section(&self, id: SectionId) -> bool {
        (id.0 as usize) < self.sections.len()
    }

    /// A new anonymous label.
    #[inline]
    pub fn new_label(&mut self) -> Label {
        self.labels.push(LabelEntry {
            offset: UNBOUND,
            link: NO_FIXUP,
        });
        Label(self.labels.len() as u32 - 1)
    }

    /// A new label with a name (for listings, errors and lookup).
    pub fn new_named_label(&mut self, name: &str) -> Result<Label> {
        let id = self.labels.len() as u32;
        if !self.names.insert(name, id) {
            return Err(Error::DuplicateLabelName { name: name.into() });
        }
        let label = self.new_label();
        debug_assert_eq!(label.0, id);
        Ok(label)
    }

    /// The label with this name.
    pub fn label_by_name(&self, name: &str) -> Option<Label> {
        self.names.get(name).map(Label)
    }

    /// Number of labels created.
    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    /// The label's name, or `L<id>`.
    pub fn label_name(&self, label: Label) -> String {
        match self.names.name_of_sorted(label.0) {
            Some(name) => name.to_string(),
            None => format!("L{}", label.0),
        }
    }

    fn entry(&self, label: Label) -> Result<&LabelEntry> {
        self.labels
            .get(label.0 as usize)
            .ok_or(Error::InvalidLabel { id: label.0 })
    }

    /// Whether the label is bound.
    pub fn is_bound(&self, label: Label) -> bool {
        self.labels
            .get(label.0 as usize)
            .is_some_and(|e| e.offset != UNBOUND)
    }

    /// Where the label is bound: its section and offset in it.
    pub fn label_offset(&self, label: Label) -> Option<(SectionId, u32)> {
        let e = self.labels.get(label.0 as usize)?;
        (e.offset != UNBOUND).then_some((SectionId(e.link), e.offset))
    }

    /// Binds `label` to the current end of `section` and patches every
    /// waiting use in that section. A short jump that does not reach is an
    /// error, and then nothing is changed.
    #[inline]
    pub fn bind(&mut self, label: Label, section: SectionId) -> Result<()> {
        // A section id from another holder, or from before a `reset`, is an
        // error, not an index out of bounds.
        let Some(bound_section) = self.sections.get(section.0 as usize) else {
            return no_such_section(section);
        };
        let target = bound_section.data.len() as u32;
        if let Some(entry) = self.labels.get_mut(label.0 as usize)
            && entry.offset == UNBOUND
            && entry.link == NO_FIXUP
        {
            // Nothing jumped here yet (every backward target): two stores.
            *entry = LabelEntry {
                offset: target,
                link: section.0,
            };
            return Ok(());
        }
        self.bind_with_uses(label, section, target)
    }

    /// [`bind`](Self::bind) for a label with waiting uses (or an error),
    /// out of line so that the common case stays a few instructions. The
    /// usual one, a single forward branch from this section that reaches,
    /// is patched here; the rest (chains, other sections, errors) in
    /// [`bind_chain`](Self::bind_chain), so that this one stays small.
    #[inline(never)]
    fn bind_with_uses(&mut self, label: Label, section: SectionId, target: u32) -> Result<()> {
        if let Some(entry) = self.labels.get(label.0 as usize)
            && entry.offset == UNBOUND
            && let Some(&f) = self.fixups.get(entry.link as usize)
            && f.next == NO_FIXUP
            && f.section == section.0
            && matches!(f.kind, FixupKind::Rel8 | FixupKind::Rel32)
        {
            let first = entry.link;
            let value = relative(target, f.offset, f.pc_delta, f.addend);
            if check_fits(f.kind, value).is_ok() {
                write_value(
                    &mut self.sections[section.0 as usize].data,
                    f.offset as usize,
                    f.kind,
                    value,
                );
                self.fixups[first as usize].next = self.free_fixup;
                self.free_fixup = first;
                self.pending -= 1;
                self.labels[label.0 as usize] = LabelEntry {
                    offset: target,
                    link: section.0,
                };
                return Ok(());
            }
        }
        self.bind_chain(label, section, target)
    }

    /// The rest of [`bind_with_uses`](Self::bind_with_uses): a label with
    /// several waiting uses or uses from other sections, or an error.
    #[cold]
    #[inline(never)]
    fn bind_chain(&mut self, label: Label, section: SectionId, target: u32) -> Result<()> {
        let entry = self.entry(label)?;
        if entry.offset != UNBOUND {
            return Err(Error::LabelAlreadyBound {
                label: self.label_name(label),
            });
        }
        self.resolve_uses(label, entry.link, section, target)?;
        self.labels[label.0 as usize] = LabelEntry {
            offset: target,
            link: section.0,
        };
        Ok(())
    }

    /// Patches (same section) or turns into relocations (other sections,
    /// absolute kinds) the chain of uses from `first` of `label`, now bound
    /// at `target` of `section`, and frees their slots. Every same-section
    /// use is checked before anything is written, so a failure changes
    /// nothing.
    fn resolve_uses(
        &mut self,
        label: Label,
        first: u32,
        section: SectionId,
        target: u32,
    ) -> Result<()> {
        let mut at = first;
        while at != NO_FIXUP {
            let f = self.fixups[at as usize];
            if f.section == section.0 {
                let value = relative(target, f.offset, f.pc_delta, f.addend);
                check_fits(f.kind, value).map_err(|_| self.range_error(label, f.kind, value))?;
            }
            at = f.next;
        }
        let mut at = first;
        while at != NO_FIXUP {
            let f = self.fixups[at as usize];
            if f.next == NO_FIXUP {
                // The last use: the whole chain joins the free list.
                self.fixups[at as usize].next = self.free_fixup;
                self.free_fixup = first;
            }
            self.pending -= 1;
            if f.section == section.0 && matches!(f.kind, FixupKind::Rel8 | FixupKind::Rel32) {
                let value = relative(target, f.offset, f.pc_delta, f.addend);
                write_value(
                    &mut self.sections[f.section as usize].data,
                    f.offset as usize,
                    f.kind,
                    value,
                );
            } else {
                self.relocations.push(Relocation {
                    section: f.section,
                    offset: f.offset,
                    kind: f.kind,
                    pc_delta: f.pc_delta,
                    addend: f.addend,
                    target: Target::Label(label.0),
                });
            }
            at = f.next;
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn range_error(&self, label: Label, kind: FixupKind, value: i64) -> Error {
        match kind {
            FixupKind::Rel8 => Error::ShortJumpOutOfRange {
                label: self.label_name(label),
                distance: value,
            },
            _ => Error::DisplacementOutOfRange {
                what: format!("reference to {}", self.label_name(label)),
                value,
            },
        }
    }

    /// Records a use of `label` by the `kind` field at `offset` of `section`,
    /// `pc_delta` bytes before the end of its instruction. A use of a bound
    /// label in the same section is written at once.
    pub(crate) fn add_label_use(
        &mut self,
        section: SectionId,
        offset: usize,
        kind: FixupKind,
        label: Label,
        pc_delta: u8,
        addend: i64,
    ) -> Result<()> {
        let entry = self.entry(label)?;
        let offset = offset as u32;
        if entry.offset != UNBOUND {
            if entry.link == section.0 && matches!(kind, FixupKind::Rel8 | FixupKind::Rel32) {
                let value = relative(entry.offset, offset, pc_delta, addend);
                check_fits(kind, value).map_err(|_| self.range_error(label, kind, value))?;
                write_value(
                    &mut self.sections[section.0 as usize].data,
                    offset as usize,
                    kind,
                    value,
                );
            } else {
                self.relocations.push(Relocation {
                    section: section.0,
                    offset,
                    kind,
                    pc_delta,
                    addend,
                    target: Target::Label(label.0),
                });
            }
            return Ok(());
        }
        let fixup = Fixup {
            section: section.0,
            offset,
            kind,
            pc_delta,
            addend,
            next: entry.link,
        };
        let at = if self.free_fixup != NO_FIXUP {
            let at = self.free_fixup;
            self.free_fixup = self.fixups[at as usize].next;
            self.fixups[at as usize] = fixup;
            at
        } else {
            self.fixups.push(fixup);
            self.fixups.len() as u32 - 1
        };
        self.labels[label.0 as usize].link = at;
        self.pending += 1;
        Ok(())
    }

    /// Records a use of an absolute address, resolved when the code is placed.
    pub(crate) fn add_absolute_use(
        &mut self,
        section: SectionId,
        offset: usize,
        kind: FixupKind,
        pc_delta: u8,
        address: u64,
    ) {
        self.relocations.push(Relocation {
            section: section.0,
            offset: offset as u32,
            kind,
            pc_delta,
            addend: 0,
            target: Target::Absolute(address),
        });
    }

    /// Number of label uses still waiting for their label.
    pub fn unresolved_count(&self) -> usize {
        self.pending
    }

    /// Start offset of each section in the laid-out code.
    pub fn section_offsets(&self) -> Vec<u64> {
        self.offsets().into_vec()
    }

    /// [`section_offsets`](Self::section_offsets) inline for the few
    /// sections code holders have (laying out a function's code allocates
    /// nothing but the code).
    fn offsets(&self) -> SmallVec<[u64; 4]> {
        let mut at = 0u64;
        self.sections
            .iter()
            .map(|s| {
                at = at.next_multiple_of(s.alignment as u64);
                let start = at;
                at += s.data.len() as u64;
                start
            })
            .collect()
    }

    /// Size of the laid-out code: every section, aligned, one after another.
    pub fn code_size(&self) -> usize {
        let mut at = 0usize;
        for s in &self.sections {
            at = at.next_multiple_of(s.alignment as usize) + s.data.len();
        }
        at
    }

    /// Lays the sections out into `dst` (which must be [`code_size`](Self::code_size)
    /// bytes long) for code that will run at `base`, and applies every
    /// relocation. Fails if a label is used but unbound, or a relocated value
    /// does not fit its field.
    pub fn relocate_to(&self, base: u64, dst: &mut [u8]) -> Result<()> {
        if dst.len() != self.code_size() {
            return Err(Error::InvalidArgument {
                message: format!(
                    "destination is {} bytes, the code is {}",
                    dst.len(),
                    self.code_size()
                ),
            });
        }
        self.check_all_bound()?;
        if let ([text], true) = (&self.sections[..], self.relocations.is_empty()) {
            // The common case (a function's code alone): one copy.
            dst.copy_from_slice(&text.data);
            return Ok(());
        }
        let offsets = self.offsets();
        let mut end = 0usize;
        for (s, &o) in self.sections.iter().zip(&offsets) {
            let o = o as usize;
            dst[end..o].fill(s.padding_byte());
            dst[o..o + s.data.len()].copy_from_slice(&s.data);
            end = o + s.data.len();
        }
        self.apply_relocations(base, &offsets, dst)
    }

    /// An error naming the first label still used but unbound, if any.
    fn check_all_bound(&self) -> Result<()> {
        if self.pending > 0 {
            let label = self
                .labels
                .iter()
                .position(|l| l.first_fixup() != NO_FIXUP)
                .unwrap_or(0);
            return Err(Error::UnboundLabel {
                label: self.label_name(Label(label as u32)),
            });
        }
        Ok(())
    }

    /// Writes every relocation into `dst`, the code laid out at `offsets`
    /// for `base`.
    fn apply_relocations(&self, base: u64, offsets: &[u64], dst: &mut [u8]) -> Result<()> {
        for r in &self.relocations {
            let (field, value) = self.relocated(r, base, offsets)?;
            write_value(dst, field, r.kind, value);
        }
        Ok(())
    }

    /// Where relocation `r` writes in the code laid out at `offsets` for
    /// `base`, and what; an error if the value does not fit its field.
    fn relocated(&self, r: &Relocation, base: u64, offsets: &[u64]) -> Result<(usize, i64)> {
        let field = offsets[r.section as usize] + r.offset as u64;
        let target = match r.target {
            Target::Absolute(a) => a,
            Target::Label(l) => {
                let e = &self.labels[l as usize];
                base.wrapping_add(offsets[e.link as usize])
                    .wrapping_add(e.offset as u64)
            }
        };
        let target = target.wrapping_add(r.addend as u64);
        let value = match r.kind {
            FixupKind::Rel8 | FixupKind::Rel32 => {
                let pc = base.wrapping_add(field).wrapping_add(r.pc_delta as u64);
                target.wrapping_sub(pc) as i64
            }
            FixupKind::Abs32 | FixupKind::Abs64 => target as i64,
        };
        let ok = match r.kind {
            // A 32-bit address, or a sign-extended one (the top 2 GB of a
            // 64-bit space).
            FixupKind::Abs32 => {
                u32::try_from(target).is_ok() || i32::try_from(target as i64).is_ok()
            }
            kind => check_fits(kind, value).is_ok(),
        };
        if !ok {
            return Err(Error::DisplacementOutOfRange {
                what: format!(
                    "{:?} relocation at offset {field:#x} to {target:#x}",
                    r.kind
                ),
                value,
            });
        }
        Ok((field as usize, value))
    }

    /// The laid-out, relocated code for its base address (0 when unset).
    /// Copies the code; [`take_code`](Self::take_code) hands it over instead.
    pub fn finalize(&self) -> Result<Vec<u8>> {
        self.check_all_bound()?;
        // Appended rather than zero-filled and then overwritten: one pass
        // over the (possibly megabytes of) code instead of two.
        let offsets = self.offsets();
        let mut out = Vec::with_capacity(self.code_size());
        for (s, &o) in self.sections.iter().zip(&offsets) {
            out.resize(o as usize, s.padding_byte());
            out.extend_from_slice(&s.data);
        }
        self.apply_relocations(self.base_address.unwrap_or(0), &offsets, &mut out)?;
        Ok(out)
    }

    /// The same bytes as [`finalize`](Self::finalize), without copying the
    /// code: `.text`'s buffer becomes the result (the other sections, if
    /// any, are appended to it, and relocations are written in place), and
    /// the code holder is left as after [`reset`](Self::reset), but without
    /// `.text`'s allocation. For a caller that wants the bytes in a `Vec`
    /// and is done with the code holder (megabytes of code are not copied
    /// into fresh memory). On error nothing is changed.
    pub fn take_code(&mut self) -> Result<Vec<u8>> {
        self.check_all_bound()?;
        let offsets = self.offsets();
        let base = self.base_address.unwrap_or(0);
        // Every relocation is checked before the buffer is touched.
        for r in &self.relocations {
            self.relocated(r, base, &offsets)?;
        }
        let size = self.code_size();
        let mut out = std::mem::take(&mut self.sections[0].data);
        if out.capacity() < size {
            out.reserve_exact(size - out.len());
        }
        for (s, &o) in self.sections.iter().zip(&offsets).skip(1) {
            out.resize(o as usize, s.padding_byte());
            out.extend_from_slice(&s.data);
        }
        self.apply_relocations(base, &offsets, &mut out)?;
        self.reset();
        Ok(out)
    }
}

fn relative(target: u32, field: u32, pc_delta: u8, addend: i64) -> i64 {
    target as i64 + addend - (field as i64 + pc_delta as i64)
}

fn check_fits(kind: FixupKind, value: i64) -> std::result::Result<(), ()> {
    let ok = match kind {
        FixupKind::Rel8 => i8::try_from(value).is_ok(),
        FixupKind::Rel32 | FixupKind::Abs32 => i32::try_from(value).is_ok(),
        FixupKind::Abs64 => true,
    };
    if ok { Ok(()) } else { Err(()) }
}

/// Writes the low bytes of `value` for `kind` at `at`: one fixed-size store
/// per kind (a copy of a run-time length would call `memcpy`).
fn write_value(buf: &mut [u8], at: usize, kind: FixupKind, value: i64) {
    match kind {
        FixupKind::Rel8 => buf[at] = value as u8,
        FixupKind::Rel32 | FixupKind::Abs32 => {
            buf[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes())
        }
        FixupKind::Abs64 => buf[at..at + 8].copy_from_slice(&value.to_le_bytes()),
    }
}

/// The error for a section id this code holder does not have. Out of line
/// and returning the whole result, so that the test on every bind costs a
/// compare and a tail call, and binding stays small enough to inline.
#[cold]
#[inline(never)]
fn no_such_section(section: SectionId) -> Result<()> {
    Err(Error::InvalidArgument {
        message: format!("no section {} in this code holder", section.0),
    })
}
