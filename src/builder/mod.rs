//! The node-list [`Builder`]: records x86 instructions, labels, alignment,
//! embedded data, comments and section switches as a list of nodes that can
//! be inspected and edited anywhere (through a cursor), transformed by
//! [`Pass`]es, and finally serialized into the [`CodeHolder`] through an
//! [`Assembler`](crate::x86::Assembler) — AsmJit's `x86::Builder`.
//!
//! # Storage
//!
//! Nodes live in one arena, kept in fixed chunks (see the `pool` module)
//! and linked by 32-bit indices, so that adding a node costs no heap
//! allocation of its own and growing the arena never copies it. Operands go
//! to one shared pool, packed in 12 bytes each (an [`Operand`] takes 40):
//! serialization unpacks the few it needs, and the node views
//! ([`Builder::node`], [`Builder::iter`]) borrow from an unpacked copy made
//! on the first view and kept in step afterwards, so that code that never
//! looks at its nodes never pays for it. Embedded bytes and cached
//! instruction bytes go to one byte pool, comments to one string pool. On
//! workload A a node, its operands and its bytes take about 77 bytes of
//! heap per instruction. A removed node stays in the arena (its [`NodeId`]
//! never names another node); [`Builder::clear`] empties everything and
//! keeps the allocations for the next function.
//!
//! # Validation
//!
//! Every instruction is encoded once, when it is added, into a private
//! scratch code holder: an invalid instruction fails at the call, as with the
//! Assembler, and the Builder learns its size. Instructions that refer to no
//! label and no absolute branch target keep their bytes, which serialization
//! copies without encoding them again (unless a logger wants to see them).
//! The typed API's instructions of that kind are encoded by the encoder's
//! fast path with the plans the typed method computed at compile time, as
//! the Assembler encodes them, straight into the byte pool; the others (and
//! the dynamic API) go through the general encoder with the candidate forms.
//!
//! # Branch relaxation
//!
//! At serialization, every `jmp`/`jcc` to a label that was not given an
//! explicit size ([`Builder::short`], [`Builder::long`]) starts short and
//! becomes near only when its target is out of rel8 reach (see the `relax`
//! module docs for the algorithm and its cost). Forward jumps thus take 2
//! bytes where they reach, where the Assembler, which does not know yet
//! where a forward label lands, takes 5 or 6.

mod pool;
mod relax;
mod scratch;
#[cfg(feature = "compiler")]
pub(crate) use scratch::release_spare_scratch;

use crate::code::{CodeHolder, Label, SectionId};
use crate::error::{Error, Result};
use crate::x86::encoder::emit_planned;
use crate::x86::{Emitter, FormPlans, InstOptions, Logger, Mnemonic, Operand, Rounding};
use pool::{Chunked, Operands};
pub use relax::{MAX_PASSES, RelaxStats};
/// The fixed-size append of a memo entry, for the Compiler rewrite's own memo.
#[cfg(feature = "compiler")]
pub(crate) use scratch::append_cut;
use scratch::{Refs, Scratch};

/// Index of no node.
const NIL: u32 = u32::MAX;

/// Nodes a new Builder has room for before its arena first grows.
const INITIAL_NODES: usize = 64;

/// Per-node flags.
mod flag {
    /// A jmp/jcc to a label whose size the relaxation chooses.
    pub const RELAX: u8 = 1;
    /// Relaxation chose the near form.
    pub const LONG: u8 = 2;
    /// The cached bytes are final (no label, no absolute target).
    pub const PLAIN: u8 = 4;
    /// A rel8-only branch to a label (its reach is checked before emitting).
    pub const SHORT_FIXED: u8 = 8;
    /// Refers to a label (checked to be bound before emitting).
    pub const LABEL_USE: u8 = 16;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Inst,
    Label,
    Align,
    Embed,
    EmbedLabel,
    Comment,
    Section,
    Removed,
}

/// One node of the arena.
#[derive(Clone, Copy, Debug)]
struct Rec {
    prev: u32,
    next: u32,
    /// Section offset computed by the last layout pass.
    offset: u32,
    /// First operand / label id / alignment / data or text start / section.
    arg: u32,
    /// Operand count / data or text length.
    len: u32,
    /// Start of the cached bytes in the byte pool (`PLAIN` instructions).
    data: u32,
    options: InstOptions,
    mnemonic: Mnemonic,
    kind: Kind,
    flags: u8,
    /// Size in bytes (the short size of a relaxable branch).
    size: u8,
    /// Size of the near form of a relaxable branch.
    long_size: u8,
}

impl Rec {
    fn new(kind: Kind, arg: u32, len: u32) -> Rec {
        Rec {
            prev: NIL,
            next: NIL,
            offset: 0,
            arg,
            len,
            data: 0,
            options: InstOptions::NONE,
            mnemonic: Mnemonic::Nop,
            kind,
            flags: 0,
            size: 0,
            long_size: 0,
        }
    }
}

/// Identifies a node of a [`Builder`]. It stays valid (and never names
/// another node) until the node is removed or the Builder is cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The node's index in the Builder's arena (creation order).
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// An instruction node: mnemonic, explicit operands (Intel order) and options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inst<'b> {
    /// The mnemonic.
    pub mnemonic: Mnemonic,
    /// The explicit operands, in Intel order.
    pub operands: &'b [Operand],
    /// Prefixes, branch size and encoding hints given with the instruction.
    /// (The size relaxation picks for a branch is not recorded here.)
    pub options: InstOptions,
}

/// A read-only view of one node of a [`Builder`]. (Later layers may add
/// kinds of nodes, hence `non_exhaustive`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Node<'b> {
    /// An instruction.
    Inst(Inst<'b>),
    /// A label bound here.
    Label(Label),
    /// Alignment to this many bytes (NOPs in code, zeros in data).
    Align(usize),
    /// Embedded bytes.
    Embed(&'b [u8]),
    /// The embedded absolute address of a label (8 bytes on x86-64, 4 on x86).
    EmbedLabel(Label),
    /// A comment (shown to the logger at serialization; no bytes).
    Comment(&'b str),
    /// A switch to another section of the code holder.
    Section(SectionId),
}

impl std::fmt::Display for Inst<'_> {
    /// Intel syntax, as the Assembler's logger shows it (`lock add qword ptr [rax], 1`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = self.options;
        f.write_str(&o.prefix_text())?;
        if o.contains(InstOptions::SHORT) {
            f.write_str("short ")?;
        } else if o.contains(InstOptions::LONG) {
            f.write_str("long ")?;
        }
        f.write_str(self.mnemonic.name())?;
        for (i, op) in self.operands.iter().enumerate() {
            write!(f, "{}{op}", if i == 0 { " " } else { ", " })?;
        }
        match o.rounding_mode() {
            Some(Rounding::RnSae) => f.write_str(", {rn-sae}"),
            Some(Rounding::RdSae) => f.write_str(", {rd-sae}"),
            Some(Rounding::RuSae) => f.write_str(", {ru-sae}"),
            Some(Rounding::RzSae) => f.write_str(", {rz-sae}"),
            None if o.contains(InstOptions::SAE) => f.write_str(", {sae}"),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for Node<'_> {
    /// One line of a listing: instructions indented, `L<id>:` for labels,
    /// directives for the rest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Inst(inst) => write!(f, "    {inst}"),
            Node::Label(l) => write!(f, "L{}:", l.id()),
            Node::Align(n) => write!(f, "    .align {n}"),
            Node::Embed(bytes) => {
                f.write_str("    .byte ")?;
                for (i, b) in bytes.iter().enumerate() {
                    write!(f, "{}{b:#04x}", if i == 0 { "" } else { ", " })?;
                }
                Ok(())
            }
            Node::EmbedLabel(l) => write!(f, "    .address L{}", l.id()),
            Node::Comment(text) => write!(f, "    ; {text}"),
            Node::Section(s) => write!(f, ".section {}", s.0),
        }
    }
}

/// A transformation of a Builder's node list, run by [`Builder::run_pass`]
/// or, when registered with [`Builder::add_pass`], by [`Builder::finalize`].
///
/// Closures `FnMut(&mut Builder<'_>) -> Result<()>` are passes too.
pub trait Pass {
    /// Runs the pass over `builder`, which it may edit freely.
    fn run(&mut self, builder: &mut Builder<'_>) -> Result<()>;
}

impl<F: FnMut(&mut Builder<'_>) -> Result<()>> Pass for F {
    fn run(&mut self, builder: &mut Builder<'_>) -> Result<()> {
        self(builder)
    }
}

/// The node-list Builder: records x86 code as an editable list of nodes and
/// serializes it into its [`CodeHolder`] with the shortest branches.
///
/// It implements [`Emitter`], so the whole typed API ([`crate::x86::Instructions`])
/// and the dynamic [`Emitter::emit`] work on it as on the Assembler.
/// Instructions are validated when added; labels live in the code holder.
///
/// ```
/// use jitforge::builder::{Builder, Node};
/// use jitforge::x86::*;
/// use jitforge::{Arch, CodeHolder};
///
/// let mut code = CodeHolder::new(Arch::X64);
/// let mut b = Builder::new(&mut code);
/// let done = b.new_label();
/// b.test(edi, edi)?;
/// b.je(done)?;               // a forward jump: relaxed to 2 bytes
/// b.mov(eax, 1)?;
/// let mov = b.cursor().expect("the mov node");
/// b.bind(done)?;
/// b.ret()?;
///
/// // Edit: insert an instruction after the `mov`, then continue at the end.
/// let end = b.cursor();
/// b.set_cursor(Some(mov))?;
/// b.add(eax, edi)?;
/// b.set_cursor(end)?;
/// assert_eq!(b.iter().filter(|(_, n)| matches!(n, Node::Inst(_))).count(), 5);
///
/// b.finalize()?;
/// assert_eq!(b.relax_stats().short_branches, 1);
/// drop(b);
/// assert_eq!(
///     code.finalize()?,
///     [0x85, 0xff, 0x74, 0x07, 0xb8, 1, 0, 0, 0, 0x01, 0xf8, 0xc3]
/// );
/// # Ok::<(), jitforge::Error>(())
/// ```
pub struct Builder<'a> {
    code: &'a mut CodeHolder,
    logger: Option<&'a mut dyn Logger>,
    nodes: Chunked<Rec>,
    operands: Operands,
    data: Vec<u8>,
    text: String,
    first: u32,
    last: u32,
    /// New nodes go after this one (`NIL`: at the front).
    cursor: u32,
    count: usize,
    options: InstOptions,
    /// Label id -> its bind node (`NIL` when not bound in this Builder).
    bound: Vec<u32>,
    /// Whether the runs of plain instructions are intact: nodes have only
    /// been appended since the last [`Builder::clear`]. A run is a stretch
    /// of appended `PLAIN` instruction nodes whose cached bytes lie one
    /// after the other in the byte pool; its first node's `offset` names
    /// its last node (the layout does not place plain nodes one by one:
    /// it skips a run whole, and serialization copies its bytes at once).
    runs: bool,
    /// The first node of the open run, which the last node ends (`NIL`:
    /// the last node is not plain). Its `offset` is set when the run is
    /// closed: by a node that does not join it, or for serialization.
    run_head: u32,
    /// Where the open run's bytes end in the byte pool.
    run_end: u32,
    scratch: Scratch,
    passes: Vec<Box<dyn Pass + 'a>>,
    layout: relax::Layout,
    stats: RelaxStats,
}

/// Writes instructions straight into a Builder's code holder ([`Builder::direct`]).
/// Only the Compiler writes this way.
#[cfg(feature = "compiler")]
pub(crate) struct Direct<'b> {
    /// The Assembler on the Builder's code holder.
    pub(crate) asm: crate::x86::Assembler<'b>,
    scratch: &'b mut Scratch,
    arch: crate::code::Arch,
}

#[cfg(feature = "compiler")]
impl Direct<'_> {
    /// One instruction: its bytes from the memo when it was encoded before
    /// (instructions that refer to no label or address), else encoded.
    pub(crate) fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Result<()> {
        let mut key = scratch::MemoKey::default();
        let memo = self
            .scratch
            .memo_key_of(self.arch, &mut key, mnemonic, operands, options);
        let Some(slot) = memo else {
            return self.asm.emit_with(mnemonic, operands, options);
        };
        let text = self.asm.code_mut().buffer_mut(CodeHolder::TEXT);
        if self.scratch.memo_append(slot, &key, text) {
            return Ok(());
        }
        let start = self.asm.code().text().len();
        self.asm.emit_with(mnemonic, operands, options)?;
        let bytes = self.asm.code().text().get(start..).unwrap_or(&[]);
        self.scratch.memo_put(slot, &key, bytes);
        Ok(())
    }
}

/// Whether `m` is `jmp` or a conditional jump with both rel8 and rel32 forms.
fn is_relaxable(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Jmp
            | M::Ja
            | M::Jae
            | M::Jb
            | M::Jbe
            | M::Je
            | M::Jg
            | M::Jge
            | M::Jl
            | M::Jle
            | M::Jne
            | M::Jno
            | M::Jnp
            | M::Jns
            | M::Jo
            | M::Jp
            | M::Js
    )
}

/// Whether an immediate operand of `m` may be a branch target (encoded
/// relative to the instruction's address).
/// (A table made at compile time: a constant mnemonic folds to a constant,
/// where comparing its name cost a few dozen instructions per instruction
/// with an immediate.)
#[inline]
pub(crate) fn may_branch_to_address(m: Mnemonic) -> bool {
    BRANCH_TO_ADDRESS.get(m as usize).copied().unwrap_or(false)
}

/// [`may_branch_to_address`] of each mnemonic, by its number: `j*`,
/// `loop*`, `call` and `xbegin`.
const BRANCH_TO_ADDRESS: [bool; Mnemonic::COUNT] = {
    const fn equal(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    // The names as `Mnemonic::name` finds them (it is not a `const fn`).
    use crate::x86::db::{MNEMONIC_NAME_ENDS as ENDS, MNEMONIC_TEXT as TEXT};
    let mut table = [false; Mnemonic::COUNT];
    let mut i = 0;
    while i < Mnemonic::COUNT {
        let start = if i == 0 { 0 } else { ENDS[i - 1] as usize };
        let (_, rest) = TEXT.as_bytes().split_at(start);
        let (name, _) = rest.split_at(ENDS[i] as usize - start);
        let (head, _) = name.split_at(if name.len() < 4 { name.len() } else { 4 });
        table[i] = (!name.is_empty() && name[0] == b'j')
            || equal(head, b"loop")
            || equal(name, b"call")
            || equal(name, b"xbegin");
        i += 1;
    }
    table
};

impl<'a> Builder<'a> {
    /// An empty Builder for `code`; labels are created in `code`, and
    /// [`finalize`](Self::finalize) writes the code there.
    pub fn new(code: &'a mut CodeHolder) -> Builder<'a> {
        let scratch = Scratch::new();
        // The pools get room for a small function with the first node (see
        // `insert`): a Builder that records nothing (a Compiler writing
        // straight into the code holder) allocates nothing.
        Builder {
            code,
            logger: None,
            nodes: Chunked::new(),
            operands: Operands::new(),
            data: Vec::new(),
            text: String::new(),
            first: NIL,
            last: NIL,
            cursor: NIL,
            count: 0,
            options: InstOptions::NONE,
            bound: Vec::new(),
            runs: true,
            run_head: NIL,
            run_end: 0,
            scratch,
            passes: Vec::new(),
            layout: relax::Layout::default(),
            stats: RelaxStats::default(),
        }
    }

    /// The code holder.
    pub fn code(&self) -> &CodeHolder {
        self.code
    }

    /// The code holder, mutably (to add sections or set the base address).
    pub fn code_mut(&mut self) -> &mut CodeHolder {
        self.code
    }

    /// Attaches a logger that sees every item serialization writes (and the
    /// comments); it never changes the bytes.
    pub fn set_logger(&mut self, logger: Option<&'a mut dyn Logger>) {
        self.logger = logger;
    }

    /// Empties the node list for reuse (labels stay in the code holder),
    /// keeping the allocations and the registered passes.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.operands.clear();
        self.data.clear();
        self.text.clear();
        self.first = NIL;
        self.last = NIL;
        self.cursor = NIL;
        self.count = 0;
        self.options = InstOptions::NONE;
        self.bound.clear();
        self.runs = true;
        self.run_head = NIL;
    }

    /// Reserves room for at least `instructions` more instruction nodes (and
    /// their operands and bytes), so that recording a function of known
    /// size does not regrow the arena.
    pub fn reserve(&mut self, instructions: usize) {
        self.nodes.reserve(instructions);
        self.operands.reserve(instructions.saturating_mul(2));
        self.data.reserve(instructions.saturating_mul(5));
    }

    // ----- labels -----

    /// A new anonymous label of the code holder.
    pub fn new_label(&mut self) -> Label {
        self.code.new_label()
    }

    /// A new named label of the code holder.
    pub fn new_named_label(&mut self, name: &str) -> Result<Label> {
        self.code.new_named_label(name)
    }

    fn check_label(&self, label: Label) -> Result<()> {
        if (label.0 as usize) < self.code.label_count() {
            Ok(())
        } else {
            Err(Error::InvalidLabel { id: label.0 })
        }
    }

    /// Binds `label` at the cursor. A label bound twice (in this Builder or
    /// already in the code holder) is an error.
    pub fn bind(&mut self, label: Label) -> Result<()> {
        self.check_label(label)?;
        let i = label.0 as usize;
        if self.code.is_bound(label) || self.bound.get(i).is_some_and(|&n| n != NIL) {
            return Err(Error::LabelAlreadyBound {
                label: self.code.label_name(label),
            });
        }
        let id = self.insert(Rec::new(Kind::Label, label.0, 0));
        if self.bound.len() <= i {
            self.bound.resize(i + 1, NIL);
        }
        self.bound[i] = id.0;
        Ok(())
    }

    // ----- data, alignment, comments, sections -----

    /// Aligns to `alignment` bytes (a power of two up to 4096): multi-byte
    /// NOPs in code, zeros in data. Relaxation accounts for the padding.
    pub fn align(&mut self, alignment: usize) -> Result<()> {
        if !alignment.is_power_of_two() || alignment > 4096 {
            return Err(Error::InvalidArgument {
                message: format!("alignment {alignment} is not a power of two up to 4096"),
            });
        }
        self.insert(Rec::new(Kind::Align, alignment as u32, 0));
        Ok(())
    }

    /// Embeds raw bytes.
    pub fn embed(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| Error::InvalidArgument {
            message: format!("{} bytes are too many to embed at once", bytes.len()),
        })?;
        let start = self.data_start()?;
        self.data.extend_from_slice(bytes);
        self.insert(Rec::new(Kind::Embed, start, len));
        Ok(())
    }

    /// Embeds a little-endian integer of `size` bytes (1, 2, 4, 8).
    pub fn embed_int(&mut self, value: u64, size: usize) -> Result<()> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(Error::InvalidArgument {
                message: format!("integer size {size} is not 1, 2, 4 or 8"),
            });
        }
        self.embed(&value.to_le_bytes()[..size])
    }

    /// Embeds the absolute address of `label` (8 bytes on x86-64, 4 on x86),
    /// filled in when the code is placed.
    pub fn embed_label(&mut self, label: Label) -> Result<()> {
        self.check_label(label)?;
        let mut rec = Rec::new(Kind::EmbedLabel, label.0, 0);
        rec.flags = flag::LABEL_USE;
        self.insert(rec);
        Ok(())
    }

    /// Adds a comment: no bytes; the logger sees it at serialization.
    pub fn comment(&mut self, text: &str) -> Result<()> {
        let start = u32::try_from(self.text.len()).ok();
        let len = u32::try_from(text.len()).ok();
        let (Some(start), Some(len)) = (start, len) else {
            return Err(Error::InvalidArgument {
                message: "comment text exceeds 4 GiB".into(),
            });
        };
        self.text.push_str(text);
        self.insert(Rec::new(Kind::Comment, start, len));
        Ok(())
    }

    /// Continues in another section of the code holder.
    pub fn switch_section(&mut self, section: SectionId) -> Result<()> {
        if !self.code.has_section(section) {
            return Err(Error::InvalidArgument {
                message: format!("no section {}", section.0),
            });
        }
        self.insert(Rec::new(Kind::Section, section.0, 0));
        Ok(())
    }

    fn data_start(&self) -> Result<u32> {
        u32::try_from(self.data.len()).map_err(|_| Error::InvalidArgument {
            message: "the Builder's byte pool exceeds 4 GiB".into(),
        })
    }

    // ----- instruction options -----

    /// Sets options (prefixes, branch size, encoding hints) for the next instruction only.
    pub fn options(&mut self, options: InstOptions) -> &mut Self {
        self.options |= options;
        self
    }

    /// `lock` prefix on the next instruction.
    pub fn lock(&mut self) -> &mut Self {
        self.options(InstOptions::LOCK)
    }

    /// `rep` prefix on the next instruction.
    pub fn rep(&mut self) -> &mut Self {
        self.options(InstOptions::REP)
    }

    /// `repne` prefix on the next instruction.
    pub fn repne(&mut self) -> &mut Self {
        self.options(InstOptions::REPNE)
    }

    /// The next branch keeps the short (rel8) form: relaxation leaves it
    /// alone, and serialization fails if it does not reach.
    pub fn short(&mut self) -> &mut Self {
        self.options(InstOptions::SHORT)
    }

    /// The next branch keeps the near (rel32) form: relaxation leaves it alone.
    pub fn long(&mut self) -> &mut Self {
        self.options(InstOptions::LONG)
    }

    /// `{vex}`: the next instruction must use a VEX form.
    pub fn vex(&mut self) -> &mut Self {
        self.options(InstOptions::VEX)
    }

    /// `{evex}`: the next instruction must use an EVEX form.
    pub fn evex(&mut self) -> &mut Self {
        self.options(InstOptions::EVEX)
    }

    /// `{sae}` on the next instruction.
    pub fn sae(&mut self) -> &mut Self {
        self.options(InstOptions::SAE)
    }

    /// Embedded rounding on the next instruction.
    pub fn rounding(&mut self, mode: Rounding) -> &mut Self {
        self.options(InstOptions::rounding(mode))
    }

    /// Adds one instruction with explicit options (the dynamic API),
    /// validated now. The pending options set by [`options`](Self::options)
    /// are not used (nor cleared).
    pub fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Result<()> {
        let rec = self.make_inst(mnemonic, None, operands, options)?;
        self.insert(rec);
        Ok(())
    }

    /// A writer straight into this Builder's code holder, after what it
    /// holds (no nodes, so no relaxation or editing), for code that has
    /// nothing to relax: it encodes through an Assembler and copies the
    /// bytes of repeated instructions from the Builder's encoding memo.
    /// The node list must be empty (else what was recorded before would
    /// land after this code). Room for `expected_bytes` more is reserved at
    /// once (a new code holder's buffer would otherwise grow several times
    /// for one small function).
    #[cfg(feature = "compiler")]
    pub(crate) fn direct(&mut self, expected_bytes: usize) -> Result<Direct<'_>> {
        if self.count != 0 {
            return Err(Error::InvalidArgument {
                message: "the Builder holds nodes: serialize them first".into(),
            });
        }
        let arch = self.code.arch();
        self.code
            .buffer_mut(CodeHolder::TEXT)
            .reserve(expected_bytes);
        Ok(Direct {
            asm: crate::x86::Assembler::new(&mut *self.code),
            scratch: &mut self.scratch,
            arch,
        })
    }

    /// Validates an instruction by encoding it once and builds its node
    /// (operands already stored in the pool).
    fn make_inst(
        &mut self,
        mnemonic: Mnemonic,
        forms: Option<&'static [u16]>,
        operands: &[Operand],
        mut options: InstOptions,
    ) -> Result<Rec> {
        let explicit = operands
            .iter()
            .rposition(|o| !o.is_none())
            .map_or(0, |i| i + 1);
        let operands = &operands[..explicit];
        let mut rec = Self::inst_rec(mnemonic, operands);
        let refs = Refs::of(operands);
        let target = match operands {
            [Operand::Label(l)] => Some(*l),
            _ => None,
        };
        let mut sized = options.intersects(InstOptions::SHORT | InstOptions::LONG);
        let mut relax = false;
        if let (true, Some(label), false) = (is_relaxable(mnemonic), target, sized) {
            if options.is_empty() {
                // jmp rel8 / jcc rel8 are 2 bytes; jmp rel32 5, jcc rel32 6.
                self.check_label(label)?;
                rec.size = 2;
                rec.long_size = if mnemonic == Mnemonic::Jmp { 5 } else { 6 };
                relax = true;
            } else {
                // With prefixes, measure both forms; a prefix that only one
                // form accepts (`bnd jmp`) fixes the size.
                let short = options | InstOptions::SHORT;
                let long = options | InstOptions::LONG;
                let scratch = &mut self.scratch;
                let short_size = scratch.encode(self.code, refs, mnemonic, forms, operands, short);
                let long_size = scratch.encode(self.code, refs, mnemonic, forms, operands, long);
                match (short_size, long_size) {
                    (Ok(s), Ok(l)) => {
                        rec.size = s as u8;
                        rec.long_size = l as u8;
                        relax = true;
                    }
                    (Ok(_), Err(_)) => options = short,
                    (Err(_), Ok(_)) => options = long,
                    (Err(e), Err(_)) => return Err(e),
                }
                sized = true;
            }
        }
        if relax {
            rec.flags = flag::RELAX | flag::LABEL_USE;
        } else {
            let address_target = refs.imm && may_branch_to_address(mnemonic);
            if address_target && is_relaxable(mnemonic) && !options.contains(InstOptions::SHORT) {
                // A branch to an absolute address: near, so that its size
                // does not depend on where it lands.
                options |= InstOptions::LONG;
            }
            let size = match self
                .scratch
                .encode(self.code, refs, mnemonic, forms, operands, options)
            {
                Ok(size) => size,
                Err(e) => {
                    // Branches with only a rel8 form (loop, jrcxz) to a
                    // label encode only as explicitly short.
                    if target.is_none() || sized {
                        return Err(e);
                    }
                    let short = options | InstOptions::SHORT;
                    match self
                        .scratch
                        .encode(self.code, refs, mnemonic, forms, operands, short)
                    {
                        Ok(size) => {
                            options = short;
                            size
                        }
                        Err(_) => return Err(e),
                    }
                }
            };
            rec.size = size as u8;
            if refs.label.is_some() {
                rec.flags |= flag::LABEL_USE;
                if target.is_some() && options.contains(InstOptions::SHORT) {
                    rec.flags |= flag::SHORT_FIXED;
                }
            } else if !address_target {
                rec.data = self.data_start()?;
                self.data.extend_from_slice(self.scratch.bytes());
                rec.flags |= flag::PLAIN;
            }
        }
        rec.options = options;
        rec.arg = self.operands.push_all(operands)?;
        Ok(rec)
    }

    // ----- the node list -----

    /// Links `rec` after the cursor and moves the cursor to it.
    fn insert(&mut self, mut rec: Rec) -> NodeId {
        if self.nodes.is_unallocated() {
            // Room for a small function at once, so that the typical JIT
            // function (tens of instructions) never regrows the pools.
            self.reserve(INITIAL_NODES);
        }
        let id = self.nodes.len() as u32;
        let prev = self.cursor;
        if prev == self.last {
            // Appending, the common case: no node after it to relink.
            rec.prev = prev;
            rec.next = NIL;
            if rec.flags & flag::PLAIN != 0 {
                // Joins the open run when its bytes follow the run's in the
                // byte pool, else starts one.
                if self.run_head == NIL || rec.data != self.run_end {
                    self.close_run();
                    self.run_head = id;
                }
                self.run_end = rec.data.wrapping_add(u32::from(rec.size));
            } else if self.run_head != NIL {
                self.close_run();
                self.run_head = NIL;
            }
            self.nodes.push(rec);
            match self.nodes.get_mut(prev as usize) {
                Some(p) => p.next = id,
                None => self.first = id,
            }
            self.last = id;
            self.cursor = id;
            self.count += 1;
            return NodeId(id);
        }
        // Inserted between two nodes: it may split a run.
        self.runs = false;
        self.run_head = NIL;
        let next = if prev == NIL {
            self.first
        } else {
            self.nodes[prev as usize].next
        };
        rec.prev = prev;
        rec.next = next;
        self.nodes.push(rec);
        if prev == NIL {
            self.first = id;
        } else {
            self.nodes[prev as usize].next = id;
        }
        if next == NIL {
            self.last = id;
        } else {
            self.nodes[next as usize].prev = id;
        }
        self.cursor = id;
        self.count += 1;
        NodeId(id)
    }

    /// Ends the open run of plain instructions at the last node: its first
    /// node names the last (see `runs`).
    fn close_run(&mut self) {
        if let Some(head) = self.nodes.get_mut(self.run_head as usize) {
            head.offset = self.last;
        }
    }

    fn live(&self, id: NodeId) -> Result<&Rec> {
        match self.nodes.get(id.0 as usize) {
            Some(r) if r.kind != Kind::Removed => Ok(r),
            _ => Err(Error::InvalidArgument {
                message: format!("node {} is not in this Builder", id.0),
            }),
        }
    }

    /// Number of nodes in the list.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn id(index: u32) -> Option<NodeId> {
        (index != NIL).then_some(NodeId(index))
    }

    /// The first node.
    pub fn first(&self) -> Option<NodeId> {
        Self::id(self.first)
    }

    /// The last node.
    pub fn last(&self) -> Option<NodeId> {
        Self::id(self.last)
    }

    /// The node after `id` (`None` at the end or for a removed node).
    pub fn next(&self, id: NodeId) -> Option<NodeId> {
        self.live(id).ok().and_then(|r| Self::id(r.next))
    }

    /// The node before `id` (`None` at the front or for a removed node).
    pub fn prev(&self, id: NodeId) -> Option<NodeId> {
        self.live(id).ok().and_then(|r| Self::id(r.prev))
    }

    /// The node new nodes are inserted after (`None`: at the front). After
    /// each insertion it is the inserted node.
    pub fn cursor(&self) -> Option<NodeId> {
        Self::id(self.cursor)
    }

    /// Moves the cursor: new nodes go after `cursor`, or at the front for
    /// `None`. Returns the previous cursor.
    pub fn set_cursor(&mut self, cursor: Option<NodeId>) -> Result<Option<NodeId>> {
        let index = match cursor {
            Some(id) => {
                self.live(id)?;
                id.0
            }
            None => NIL,
        };
        Ok(Self::id(std::mem::replace(&mut self.cursor, index)))
    }

    /// Moves the cursor so that new nodes go before `id`. Returns the previous cursor.
    pub fn set_cursor_before(&mut self, id: NodeId) -> Result<Option<NodeId>> {
        let prev = self.live(id)?.prev;
        Ok(Self::id(std::mem::replace(&mut self.cursor, prev)))
    }

    /// Removes a node. A cursor on it moves to the node before.
    pub fn remove(&mut self, id: NodeId) -> Result<()> {
        let r = *self.live(id)?;
        self.runs = false;
        self.run_head = NIL;
        if r.prev == NIL {
            self.first = r.next;
        } else {
            self.nodes[r.prev as usize].next = r.next;
        }
        if r.next == NIL {
            self.last = r.prev;
        } else {
            self.nodes[r.next as usize].prev = r.prev;
        }
        if self.cursor == id.0 {
            self.cursor = r.prev;
        }
        self.unbind_node(&r);
        let n = &mut self.nodes[id.0 as usize];
        n.kind = Kind::Removed;
        n.prev = NIL;
        n.next = NIL;
        self.count -= 1;
        Ok(())
    }

    fn unbind_node(&mut self, r: &Rec) {
        if r.kind == Kind::Label
            && let Some(b) = self.bound.get_mut(r.arg as usize)
        {
            *b = NIL;
        }
    }

    /// Replaces node `id` (of any kind) by an instruction, validated as when
    /// added. On error the node is unchanged.
    pub fn replace_inst(
        &mut self,
        id: NodeId,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Result<()> {
        let old = *self.live(id)?;
        let mut rec = self.make_inst(mnemonic, None, operands, options)?;
        self.runs = false;
        self.run_head = NIL;
        rec.prev = old.prev;
        rec.next = old.next;
        self.unbind_node(&old);
        self.nodes[id.0 as usize] = rec;
        Ok(())
    }

    /// A view of node `id` (`None` for a removed or foreign id).
    pub fn node(&self, id: NodeId) -> Option<Node<'_>> {
        let r = self.live(id).ok()?;
        let (a, n) = (r.arg as usize, r.len as usize);
        Some(match r.kind {
            Kind::Inst => Node::Inst(Inst {
                mnemonic: r.mnemonic,
                operands: self.operands.view().get(a..a + n)?,
                options: r.options,
            }),
            Kind::Label => Node::Label(Label(r.arg)),
            Kind::Align => Node::Align(a),
            Kind::Embed => Node::Embed(self.data.get(a..a + n)?),
            Kind::EmbedLabel => Node::EmbedLabel(Label(r.arg)),
            Kind::Comment => Node::Comment(self.text.get(a..a + n)?),
            Kind::Section => Node::Section(SectionId(r.arg)),
            Kind::Removed => return None,
        })
    }

    /// The nodes in list order, with their ids.
    pub fn iter(&self) -> Nodes<'_, 'a> {
        Nodes {
            builder: self,
            at: self.first,
        }
    }

    /// The node list as text, one node per line (see [`Node`]'s `Display`):
    /// what the code will be before relaxation picks branch sizes.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (_, node) in self.iter() {
            out.push_str(&node.to_string());
            out.push('\n');
        }
        out
    }

    // ----- passes and serialization -----

    /// Registers a pass that [`finalize`](Self::finalize) runs, in order, before serializing.
    pub fn add_pass(&mut self, pass: Box<dyn Pass + 'a>) {
        self.passes.push(pass);
    }

    /// Runs one pass now.
    pub fn run_pass(&mut self, pass: &mut dyn Pass) -> Result<()> {
        pass.run(self)
    }

    /// Runs the registered passes, then serializes the node list into the
    /// code holder (see [`serialize`](Self::serialize)).
    pub fn finalize(&mut self) -> Result<()> {
        let mut passes = std::mem::take(&mut self.passes);
        let result = passes.iter_mut().try_for_each(|p| p.run(self));
        passes.append(&mut self.passes);
        self.passes = passes;
        result?;
        self.serialize()
    }

    /// Whether [`serialize`](Self::serialize) leaves labels bound neither
    /// in this Builder nor yet in the code holder to the code holder (as
    /// fixups patched when a later emitter binds them: calls to functions
    /// compiled afterwards, data placed after the last function) instead of
    /// reporting them; branches to them are near. Off by default.
    pub fn set_deferred_labels(&mut self, on: bool) {
        self.layout.defer_unbound = on;
    }

    /// Relaxes the branches and writes every node into the code holder
    /// through an [`crate::x86::Assembler`], starting in `.text` at the end of
    /// what each section already holds; the attached logger sees every item.
    ///
    /// Errors found by the layout (a label bound twice, a label used but
    /// bound nowhere, a short branch that does not reach) are reported
    /// before anything is written. The node list is kept: serializing it
    /// again appends its code again, or fails before writing anything when
    /// it binds labels (they are bound by then); [`clear`](Self::clear) it
    /// to build the next piece of code.
    pub fn serialize(&mut self) -> Result<()> {
        self.close_run();
        let logger = self.logger.as_deref_mut();
        let lists = relax::Lists {
            nodes: &mut self.nodes,
            first: self.first,
            runs: self.runs,
            operands: &self.operands,
            data: &self.data,
            text: &self.text,
        };
        self.stats = relax::serialize(self.code, logger, lists, &mut self.layout)?;
        Ok(())
    }

    /// [`serialize`](Self::serialize) with this logger instead of the attached one.
    pub fn serialize_with_logger(&mut self, logger: &mut dyn Logger) -> Result<()> {
        self.close_run();
        let lists = relax::Lists {
            nodes: &mut self.nodes,
            first: self.first,
            runs: self.runs,
            operands: &self.operands,
            data: &self.data,
            text: &self.text,
        };
        self.stats = relax::serialize(self.code, Some(logger), lists, &mut self.layout)?;
        Ok(())
    }

    /// What the last serialization's branch relaxation did.
    pub fn relax_stats(&self) -> RelaxStats {
        self.stats
    }

    #[cfg(test)]
    fn scratch_uses(&self) -> usize {
        self.scratch.uses()
    }

    /// A new instruction node for `operands` (stored in the pool, which
    /// gives the node its `arg`, by `push_all`).
    fn inst_rec(mnemonic: Mnemonic, operands: &[Operand]) -> Rec {
        let mut rec = Rec::new(Kind::Inst, 0, operands.len() as u32);
        rec.mnemonic = mnemonic;
        rec
    }

    /// Adds an instruction the fast encoder has just appended to the byte
    /// pool at `start` (see `emit_planned`): its bytes are final.
    fn add_plain(&mut self, mnemonic: Mnemonic, operands: &[Operand], start: usize) -> Result<()> {
        let mut rec = Self::inst_rec(mnemonic, operands);
        rec.data = u32::try_from(start).map_err(|_| Error::InvalidArgument {
            message: "the Builder's byte pool exceeds 4 GiB".into(),
        })?;
        rec.size = (self.data.len() - start) as u8;
        rec.flags = flag::PLAIN;
        rec.arg = self.operands.push_all(operands)?;
        self.insert(rec);
        Ok(())
    }

    fn add_typed(
        &mut self,
        mnemonic: Mnemonic,
        forms: Option<&'static [u16]>,
        operands: &[Operand],
    ) -> Result<()> {
        let options = std::mem::take(&mut self.options);
        let rec = self.make_inst(mnemonic, forms, operands, options)?;
        self.insert(rec);
        Ok(())
    }
}

impl Emitter for Builder<'_> {
    fn emit(&mut self, mnemonic: Mnemonic, operands: &[Operand]) -> Result<()> {
        self.add_typed(mnemonic, None, operands)
    }

    #[inline]
    fn emit_forms(
        &mut self,
        mnemonic: Mnemonic,
        forms: &'static [u16],
        operands: &[Operand],
    ) -> Result<()> {
        self.add_typed(mnemonic, Some(forms), operands)
    }

    // Always inline, as the Assembler's: at each typed call site the plans
    // are a constant, and the fast encoder folds down to the few steps its
    // operands need. An instruction whose bytes do not depend on where it
    // lands is encoded that way into the scratch holder; the rest (labels,
    // branches to addresses, options, what the fast path steps aside for)
    // is validated through the general path with the candidate forms.
    #[inline(always)]
    fn emit_planned(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static FormPlans,
        operands: &[Operand],
    ) -> Result<()> {
        if self.options.is_empty()
            && position_free(mnemonic, operands)
            && let Some(scratch) = self.scratch.fast_holder(self.code)
        {
            // The byte pool is lent to the scratch holder as its `.text`, so
            // that the encoder appends the bytes where they are kept (no
            // copy; the bytes of a position-free instruction do not depend
            // on the offset it is written at).
            let text = scratch.buffer_mut(CodeHolder::TEXT);
            std::mem::swap(text, &mut self.data);
            let start = text.len();
            let done = emit_planned(scratch, CodeHolder::TEXT, plans, operands, false);
            std::mem::swap(scratch.buffer_mut(CodeHolder::TEXT), &mut self.data);
            if done {
                return self.add_plain(mnemonic, operands, start);
            }
            self.data.truncate(start);
        }
        self.add_typed(mnemonic, Some(plans.forms()), operands)
    }
}

/// Whether the bytes of an instruction depend on its operands alone (no
/// label, no immediate branch target), so that the Builder can keep them.
#[inline(always)]
fn position_free(mnemonic: Mnemonic, operands: &[Operand]) -> bool {
    let refs = Refs::of(operands);
    refs.label.is_none() && !(refs.imm && may_branch_to_address(mnemonic))
}

/// Iterator over a Builder's nodes in list order (from [`Builder::iter`]).
pub struct Nodes<'b, 'a> {
    builder: &'b Builder<'a>,
    at: u32,
}

impl<'b> Iterator for Nodes<'b, '_> {
    type Item = (NodeId, Node<'b>);

    fn next(&mut self) -> Option<Self::Item> {
        let id = Builder::id(self.at)?;
        let builder: &'b Builder<'_> = self.builder;
        self.at = builder.nodes.get(self.at as usize).map_or(NIL, |r| r.next);
        Some((id, builder.node(id)?))
    }
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("nodes", &self.count)
            .field("cursor", &self.cursor())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::Arch;
    use crate::x86::Instructions;
    use crate::x86::rax;

    #[test]
    fn nodes_are_compact() {
        assert!(std::mem::size_of::<Rec>() <= 40);
    }

    /// Random insertions (at random cursors) and removals against a `Vec` model.
    #[test]
    fn list_matches_a_model() -> Result<()> {
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        let mut model: Vec<(NodeId, u32)> = Vec::new();
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for step in 0..2000u32 {
            let r = next();
            if r % 4 == 0 && !model.is_empty() {
                let k = (next() % model.len() as u64) as usize;
                b.remove(model[k].0)?;
                model.remove(k);
            } else {
                // Insert after a random node (or at the front).
                let k = (next() % (model.len() as u64 + 1)) as usize;
                let cursor = if k == 0 { None } else { Some(model[k - 1].0) };
                b.set_cursor(cursor)?;
                b.embed_int(step as u64, 4)?;
                let id = b.cursor().expect("inserted");
                model.insert(k, (id, step));
            }
            assert_eq!(b.len(), model.len());
        }
        let listed: Vec<(NodeId, u32)> = b
            .iter()
            .map(|(id, n)| match n {
                Node::Embed(bytes) => (id, u32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
                other => panic!("unexpected node {other:?}"),
            })
            .collect();
        assert_eq!(listed, model);
        assert_eq!(b.first(), model.first().map(|m| m.0));
        assert_eq!(b.last(), model.last().map(|m| m.0));
        Ok(())
    }

    /// The scratch holder is reset as label uses pile up, and labels are
    /// mirrored again on demand: many uses of many labels stay valid.
    /// The table of mnemonics that may branch to an address is what their
    /// names say.
    #[test]
    fn branch_to_address_table_matches_the_names() {
        for m in Mnemonic::ALL {
            let name = m.name();
            let by_name = name.starts_with('j')
                || name.starts_with("loop")
                || name == "call"
                || name == "xbegin";
            assert_eq!(may_branch_to_address(m), by_name, "{name}");
        }
        assert!(may_branch_to_address(Mnemonic::Loopne));
        assert!(!may_branch_to_address(Mnemonic::Mov));
    }

    /// Runs of plain instructions (laid out and copied whole) give the
    /// Assembler's bytes, also after edits inside a run (which turn runs
    /// off) and after `clear` (which turns them on again).
    #[test]
    fn runs_of_plain_instructions_survive_edits() -> Result<()> {
        use crate::x86::{Assembler, rbx, rcx};
        let plain = |e: &mut dyn FnMut(u8) -> Result<()>| -> Result<()> { (0..6).try_for_each(e) };
        let mut expected = CodeHolder::new(Arch::X64);
        let mut a = Assembler::new(&mut expected);
        let done = a.new_label();
        plain(&mut |k| a.add(rax, i32::from(k)))?;
        a.mov(rbx, rcx)?;
        a.short().jmp(done)?;
        plain(&mut |k| a.sub(rcx, i32::from(k)))?;
        a.bind(done)?;
        let expected = expected.finalize()?;

        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        for round in 0..2 {
            b.clear();
            b.code_mut().reset();
            let done = b.new_label();
            let mut middle = None;
            plain(&mut |k| {
                b.add(rax, i32::from(k))?;
                if k == 2 {
                    middle = b.cursor();
                }
                Ok(())
            })?;
            if round == 0 {
                b.mov(rbx, rcx)?;
            }
            b.jmp(done)?;
            let end = b.cursor();
            plain(&mut |k| b.sub(rcx, i32::from(k)))?;
            b.bind(done)?;
            assert!(b.runs);
            if round == 1 {
                // An edit inside the first run (an extra node, then the
                // `mov` moved after the last `add`) turns runs off.
                b.set_cursor(middle)?;
                b.push(rbx)?;
                let pushed = b.cursor().expect("the push");
                b.remove(pushed)?;
                b.set_cursor_before(end.expect("the jmp"))?;
                b.mov(rbx, rcx)?;
                assert!(!b.runs);
            }
            b.finalize()?;
            assert_eq!(b.code().finalize()?, expected, "round {round}");
        }
        Ok(())
    }

    #[test]
    fn scratch_resets_keep_labels_valid() -> Result<()> {
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        let labels: Vec<Label> = (0..3000).map(|_| b.new_label()).collect();
        for round in 0..4 {
            for (k, &l) in labels.iter().enumerate() {
                if round == 0 {
                    b.bind(l)?;
                }
                b.call(l)?;
                b.lea(rax, crate::x86::ptr(l))?;
                let _ = k;
            }
        }
        assert!(b.scratch_uses() <= 2 * 4096 + 3000);
        b.finalize()?;
        Ok(())
    }

    /// Instructions repeated through the scratch memo (more of them than
    /// it has slots, so entries collide and are replaced), by a Builder and
    /// then by a second one that inherits the memo, give the Assembler's
    /// bytes.
    #[test]
    fn memoized_encodings_match_the_assembler() -> Result<()> {
        use crate::x86::{Assembler, Gp64};
        let regs: Vec<Gp64> = (0..16u8)
            .map(|i| Gp64::from_id(i).expect("gp register"))
            .collect();
        fn body<E: Emitter>(e: &mut E, regs: &[Gp64]) -> Result<()> {
            for round in 0..3i32 {
                for (i, &d) in regs.iter().enumerate() {
                    for &s in regs {
                        e.add(d, s)?;
                        e.imul_2(d, s)?;
                        e.mov(d, i as i32 * 1000 + round)?;
                    }
                }
            }
            Ok(())
        }
        let mut reference = CodeHolder::new(Arch::X64);
        body(&mut Assembler::new(&mut reference), &regs)?;
        let reference = reference.finalize()?;
        for _ in 0..2 {
            let mut code = CodeHolder::new(Arch::X64);
            let mut b = Builder::new(&mut code);
            body(&mut b, &regs)?;
            b.finalize()?;
            drop(b);
            assert_eq!(code.finalize()?, reference);
        }
        Ok(())
    }

    #[test]
    fn relaxable_branch_sizes_with_prefixes() -> Result<()> {
        let mut code = CodeHolder::new(Arch::X64);
        let mut b = Builder::new(&mut code);
        let l = b.new_label();
        b.options(InstOptions::BND).jmp(l)?;
        let jmp = b.nodes[b.cursor().expect("node").0 as usize];
        assert_eq!(jmp.flags & flag::RELAX, 0, "bnd jmp has only a near form");
        b.options(InstOptions::BND).je(l)?;
        let je = b.nodes[b.cursor().expect("node").0 as usize];
        assert_eq!((je.size, je.long_size), (3, 7));
        b.bind(l)?;
        b.finalize()?;
        drop(b);
        assert_eq!(code.finalize()?, [0xf2, 0xe9, 3, 0, 0, 0, 0xf2, 0x74, 0x00]);
        Ok(())
    }
}
