//! [`Assembler`]: encodes instructions straight into a [`CodeHolder`] section.
//!
//! Two APIs over one encoder: the typed methods of [`super::Instructions`]
//! (`a.add(rax, rbx)?`, checked by rustc) and the dynamic
//! [`Assembler::emit`] (`a.emit(Mnemonic::Add, &[rax.into(), rbx.into()])?`)
//! for instructions built at run time. Both give identical bytes.

use super::db::Mnemonic;
use super::emitter::Emitter;
use super::encoder::{
    Encoded, FormPlans, Out, Site, Target, dynamic_candidates, emit_fast, emit_planned_to,
    encode_forms,
};
use super::operand::Operand;
use super::options::{InstOptions, Rounding};
use crate::code::{CodeHolder, FixupKind, Label, SectionId, SectionKind};
use crate::error::{Error, Result};
use std::ptr::NonNull;

/// Receives every instruction and data item an emitter writes, for listings.
pub trait Logger {
    /// One emitted item: its section offset, its bytes and its text.
    fn log(&mut self, offset: usize, bytes: &[u8], text: &str);
}

/// The x86 assembler: writes machine code into a [`CodeHolder`].
///
/// ```
/// use jitforge::code::{Arch, CodeHolder};
/// use jitforge::x86::*;
///
/// let mut code = CodeHolder::new(Arch::X64);
/// let mut a = Assembler::new(&mut code);
/// a.mov(eax, 1)?;
/// a.ret()?;
/// assert_eq!(code.finalize()?, [0xb8, 1, 0, 0, 0, 0xc3]);
/// # Ok::<(), jitforge::Error>(())
/// ```
pub struct Assembler<'a> {
    code: &'a mut CodeHolder,
    section: SectionId,
    options: InstOptions,
    logger: Option<&'a mut dyn Logger>,
    /// Whether the encoder's fast path may be used at all: 64-bit code
    /// (a code holder's architecture never changes) and no logger. Kept
    /// here so that each instruction tests one flag.
    fast: bool,
    /// The current section's buffer, valid unless `stale`: the fast path
    /// writes there without looking the section up in the code holder
    /// each time. Only a change of the section table (through
    /// [`Assembler::code_mut`]) or of the section
    /// ([`Assembler::switch_section`]) makes it invalid, and both set
    /// `stale`.
    buffer: NonNull<Vec<u8>>,
    /// The length of `buffer` (unless `stale`), kept here as well: the next
    /// instruction reads it where the last one wrote it, through the
    /// assembler's own unchanged address, which the processor forwards at
    /// once, where a read from the buffer, through the pointer fetched
    /// again each time, waits for the write before it.
    at: usize,
    /// Whether `buffer` and `at` must be looked up again before the fast
    /// path writes: at first, after [`Assembler::code_mut`], a section
    /// switch, or bytes written other than by an instruction.
    stale: bool,
    /// The typed API's one test per instruction: `fast`, no options
    /// pending and `buffer` valid (not `stale`). Setting options clears it; the next
    /// instruction then takes them and sets it again ([`Assembler::prepare`]).
    ready: bool,
}

impl<'a> Assembler<'a> {
    /// An assembler writing at the end of the `.text` section of `code`.
    pub fn new(code: &'a mut CodeHolder) -> Assembler<'a> {
        let fast = code.arch() == crate::code::Arch::X64;
        Assembler {
            code,
            section: CodeHolder::TEXT,
            options: InstOptions::NONE,
            logger: None,
            fast,
            buffer: NonNull::dangling(),
            at: 0,
            stale: true,
            ready: false,
        }
    }

    /// Attaches a logger that sees every emitted instruction; it never changes the bytes.
    pub fn set_logger(&mut self, logger: Option<&'a mut dyn Logger>) {
        self.logger = logger;
        self.fast = self.logger.is_none() && self.code.arch() == crate::code::Arch::X64;
        self.ready = false;
    }

    /// The code holder.
    pub fn code(&self) -> &CodeHolder {
        self.code
    }

    /// The code holder, mutably (to add sections or labels). If the
    /// caller resets it, and the assembler's section went with the reset
    /// (a reset keeps only `.text`), the assembler's next instruction,
    /// data or alignment goes to the end of `.text`, as a new assembler's
    /// would. Binding a label before that fails with an error that names
    /// the missing section (binding stays a few instructions, which the
    /// fast path inlines).
    pub fn code_mut(&mut self) -> &mut CodeHolder {
        // The caller may change the section table: `buffer` is looked up
        // again before the next instruction.
        self.stale = true;
        self.ready = false;
        self.code
    }

    /// Switches to another section.
    pub fn switch_section(&mut self, section: SectionId) -> Result<()> {
        if !self.code.has_section(section) {
            return Err(Error::InvalidArgument {
                message: format!("no section {}", section.0),
            });
        }
        self.section = section;
        self.stale = true;
        self.ready = false;
        Ok(())
    }

    /// The current section.
    pub fn current_section(&self) -> SectionId {
        if self.code.has_section(self.section) {
            self.section
        } else {
            CodeHolder::TEXT
        }
    }

    /// The current offset in the current section.
    pub fn offset(&self) -> usize {
        self.code.sections()[self.current_section().0 as usize]
            .data
            .len()
    }

    /// Goes back to `.text` if the current section is gone: only a reset
    /// of the code holder through [`Assembler::code_mut`] removes sections,
    /// and that marks the buffer `stale`, so the common case tests one flag.
    #[inline]
    fn follow_reset(&mut self) {
        if self.stale && !self.code.has_section(self.section) {
            self.section = CodeHolder::TEXT;
        }
    }

    /// A new anonymous label.
    #[inline]
    pub fn new_label(&mut self) -> Label {
        self.code.new_label()
    }

    /// A new named label.
    pub fn new_named_label(&mut self, name: &str) -> Result<Label> {
        self.code.new_named_label(name)
    }

    /// Binds `label` here.
    #[inline]
    pub fn bind(&mut self, label: Label) -> Result<()> {
        self.code.bind(label, self.section)?;
        if self.logger.is_some() {
            self.log_bind(label);
        }
        Ok(())
    }

    /// Logs the binding of `label` (out of line: binding is frequent,
    /// logging rare).
    #[cold]
    fn log_bind(&mut self, label: Label) {
        if let Some(logger) = self.logger.as_deref_mut() {
            let text = format!("{}:", self.code.label_name(label));
            logger.log(
                self.code.sections()[self.section.0 as usize].data.len(),
                &[],
                &text,
            );
        }
    }

    /// Sets options (prefixes, branch size, encoding hints) for the next instruction only.
    pub fn options(&mut self, options: InstOptions) -> &mut Self {
        self.options |= options;
        self.ready = false;
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

    /// The next branch must use the short (rel8) form.
    pub fn short(&mut self) -> &mut Self {
        self.options(InstOptions::SHORT)
    }

    /// The next branch uses the near (rel32) form.
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

    /// `{nf}` (APX): the next instruction writes no flags (its EVEX map-4 form).
    pub fn nf(&mut self) -> &mut Self {
        self.options(InstOptions::NF)
    }

    /// `{dfv=...}` (APX `ccmp`/`ctest`): the flags the next instruction sets
    /// when its condition is false, bit 3 OF, 2 SF, 1 ZF, 0 CF.
    pub fn dfv(&mut self, flags: u8) -> &mut Self {
        self.options(InstOptions::dfv(flags))
    }

    /// `{sae}` on the next instruction.
    pub fn sae(&mut self) -> &mut Self {
        self.options(InstOptions::SAE)
    }

    /// Embedded rounding on the next instruction.
    pub fn rounding(&mut self, mode: Rounding) -> &mut Self {
        self.options(InstOptions::rounding(mode))
    }

    /// Emits one instruction with explicit options (the dynamic API).
    pub fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: InstOptions,
    ) -> Result<()> {
        let fast = self.fast && (!self.stale || self.refresh_buffer()) && fast_path_takes(options);
        self.emit_candidates(
            mnemonic,
            dynamic_candidates(mnemonic, operands),
            operands,
            options,
            fast,
        )
    }

    /// Emits one instruction from its candidate forms (the typed API's, or
    /// the signature index's for the dynamic API); `fast`: the fast path
    /// may try it (`buffer` is valid).
    fn emit_candidates(
        &mut self,
        mnemonic: Mnemonic,
        forms: &'static [u16],
        operands: &[Operand],
        options: InstOptions,
        fast: bool,
    ) -> Result<()> {
        if fast {
            let short = !options.is_empty();
            let mut out = Out {
                // SAFETY: `fast` says `buffer` is valid (see its field).
                buf: unsafe { self.buffer.as_mut() },
                len: &mut self.at,
            };
            if emit_fast(self.code, self.section, &mut out, forms, operands, short) {
                return Ok(());
            }
        }
        self.emit_general(mnemonic, forms, operands, options)
    }

    /// Looks the current section's buffer and length up again; whether
    /// the section exists (then `buffer` and `at` are no longer `stale`).
    fn refresh_buffer(&mut self) -> bool {
        self.follow_reset();
        let Some(buffer) = self.code.buffer_ptr(self.section) else {
            return false;
        };
        self.buffer = buffer;
        // SAFETY: just taken from the code holder.
        self.at = unsafe { buffer.as_ref() }.len();
        self.stale = false;
        true
    }

    /// The way to the fast path when `ready` is not set (options pending,
    /// or the first instruction after `code_mut` or a section switch):
    /// takes the options and makes `buffer` valid; whether the fast path
    /// may encode the instruction. Out of line: the typed API inlines its
    /// caller at every call site.
    #[cold]
    #[inline(never)]
    fn prepare(&mut self) -> (bool, InstOptions) {
        let options = std::mem::take(&mut self.options);
        // No options are pending now: `ready` again, unless the buffer
        // cannot be known (no such section) or the fast path is off.
        self.ready = self.fast && (!self.stale || self.refresh_buffer());
        (self.ready && fast_path_takes(options), options)
    }

    /// Takes the options waiting for this instruction and says whether the
    /// fast path may encode it. Options are rare: with none set (and the
    /// buffer known), one test of `ready`, and nothing is stored.
    #[inline(always)]
    fn take_options_for_fast_path(&mut self) -> (bool, InstOptions) {
        // `ready` caches three facts; debug builds check the cache.
        debug_assert!(!self.ready || (self.fast && !self.stale && self.options.is_empty()));
        if self.ready {
            return (true, InstOptions::NONE);
        }
        self.prepare()
    }

    /// [`emit_general`](Self::emit_general) for the typed API, whose call
    /// sites the fast path mostly takes: cold, so that each site's way
    /// there (the operands copied to memory, the call) is laid out of the
    /// fast path's way.
    #[cold]
    #[inline(never)]
    fn emit_typed_general<const N: usize>(
        &mut self,
        mnemonic: Mnemonic,
        forms: &'static [u16],
        operands: [Operand; N],
        options: InstOptions,
    ) -> Result<()> {
        self.emit_general(mnemonic, forms, &operands, options)
    }

    /// Emits one instruction through the general encoder.
    fn emit_general(
        &mut self,
        mnemonic: Mnemonic,
        forms: &'static [u16],
        operands: &[Operand],
        options: InstOptions,
    ) -> Result<()> {
        self.follow_reset();
        let offset = self.offset();
        let encoded = {
            let site = Site {
                code: self.code,
                section: self.section,
                offset,
            };
            encode_forms(&site, mnemonic, forms, operands, options)?
        };
        if let Some(u) = encoded.field_use {
            let pc_delta = (encoded.len - u.at as usize) as u8;
            let at = offset + u.at as usize;
            match u.target {
                Target::Label(label) => {
                    // Reserve the bytes first so a bound label can be patched in place.
                    push_encoded(self.code.buffer_mut(self.section), &encoded);
                    if let Err(e) =
                        self.code
                            .add_label_use(self.section, at, u.kind, label, pc_delta, u.addend)
                    {
                        self.code.buffer_mut(self.section).truncate(offset);
                        return Err(e);
                    }
                }
                Target::Absolute(address) => {
                    push_encoded(self.code.buffer_mut(self.section), &encoded);
                    self.code
                        .add_absolute_use(self.section, at, u.kind, pc_delta, address);
                }
            }
        } else {
            push_encoded(self.code.buffer_mut(self.section), &encoded);
        }
        // The fast path's copy of the length (see `at`).
        self.at = offset + encoded.len;
        if let Some(logger) = self.logger.as_deref_mut() {
            let text =
                super::text::format_instruction(mnemonic, operands, options, self.code.arch());
            let bytes =
                &self.code.sections()[self.section.0 as usize].data[offset..offset + encoded.len];
            logger.log(offset, bytes, &text);
        }
        Ok(())
    }

    /// Sends a comment line to the logger, if any (no bytes are emitted).
    pub fn comment(&mut self, text: &str) {
        let offset = self.offset();
        if let Some(logger) = self.logger.as_deref_mut() {
            logger.log(offset, &[], text);
        }
    }

    /// Whether a logger is attached (so callers can skip building comment text).
    pub fn is_logging(&self) -> bool {
        self.logger.is_some()
    }

    /// Aligns the current position to `alignment` bytes: multi-byte NOPs in
    /// code, zeros in data.
    pub fn align(&mut self, alignment: usize) -> Result<()> {
        if !alignment.is_power_of_two() || alignment > 4096 {
            return Err(Error::InvalidArgument {
                message: format!("alignment {alignment} is not a power of two up to 4096"),
            });
        }
        self.follow_reset();
        let offset = self.offset();
        let padding = offset.next_multiple_of(alignment) - offset;
        let is_code = self.code.sections()[self.section.0 as usize].kind() == SectionKind::Text;
        let buf = self.code.buffer_mut(self.section);
        if is_code {
            write_nops(buf, padding);
        } else {
            buf.resize(buf.len() + padding, 0);
        }
        // The buffer grew behind the fast path's back (see `at`).
        self.stale = true;
        self.ready = false;
        Ok(())
    }

    /// Embeds raw bytes.
    pub fn embed(&mut self, bytes: &[u8]) {
        self.follow_reset();
        let offset = self.offset();
        self.code.buffer_mut(self.section).extend_from_slice(bytes);
        // The buffer grew behind the fast path's back (see `at`).
        self.stale = true;
        self.ready = false;
        if let Some(logger) = self.logger.as_deref_mut() {
            logger.log(offset, bytes, &format!(".byte {} bytes", bytes.len()));
        }
    }

    /// Embeds a little-endian integer of `size` bytes (1, 2, 4, 8).
    pub fn embed_int(&mut self, value: u64, size: usize) -> Result<()> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(Error::InvalidArgument {
                message: format!("integer size {size} is not 1, 2, 4 or 8"),
            });
        }
        let bytes = value.to_le_bytes();
        self.embed(&bytes[..size]);
        Ok(())
    }

    /// Embeds the absolute address of `label` (8 bytes on x86-64, 4 on x86),
    /// filled in when the code is placed.
    pub fn embed_label(&mut self, label: Label) -> Result<()> {
        let (kind, size) = match self.code.arch() {
            crate::code::Arch::X64 => (FixupKind::Abs64, 8),
            crate::code::Arch::X86 => (FixupKind::Abs32, 4),
        };
        self.follow_reset();
        let offset = self.offset();
        self.code.buffer_mut(self.section).resize(offset + size, 0);
        // The buffer grew behind the fast path's back (see `at`).
        self.stale = true;
        self.ready = false;
        if let Err(e) = self
            .code
            .add_label_use(self.section, offset, kind, label, 0, 0)
        {
            self.code.buffer_mut(self.section).truncate(offset);
            return Err(e);
        }
        Ok(())
    }
}

impl Emitter for Assembler<'_> {
    fn emit(&mut self, mnemonic: Mnemonic, operands: &[Operand]) -> Result<()> {
        let (fast, options) = self.take_options_for_fast_path();
        self.emit_candidates(
            mnemonic,
            dynamic_candidates(mnemonic, operands),
            operands,
            options,
            fast,
        )
    }

    #[inline]
    fn emit_forms(
        &mut self,
        mnemonic: Mnemonic,
        forms: &'static [u16],
        operands: &[Operand],
    ) -> Result<()> {
        let (fast, options) = self.take_options_for_fast_path();
        self.emit_candidates(mnemonic, forms, operands, options, fast)
    }

    // Always inline: at each typed call site the plans are a constant, and
    // the fast path folds down to the few steps its operands need.
    #[inline(always)]
    fn emit_planned(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static FormPlans,
        operands: &[Operand],
    ) -> Result<()> {
        let (fast, options) = self.take_options_for_fast_path();
        if fast {
            let short = !options.is_empty();
            let mut out = Out {
                // SAFETY: `fast` says `buffer` is valid (see its field).
                buf: unsafe { self.buffer.as_mut() },
                len: &mut self.at,
            };
            if emit_planned_to(self.code, self.section, &mut out, plans, operands, short) {
                return Ok(());
            }
        }
        self.emit_general(mnemonic, plans.forms(), operands, options)
    }

    // The typed API's entry: the operands stay values (constants at the
    // call site) on the fast path; only the way to the general encoder
    // copies them to memory, so a call site that the fast path takes
    // stores nothing.
    #[inline(always)]
    fn emit_typed<const N: usize>(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static FormPlans,
        operands: [Operand; N],
    ) -> Result<()> {
        let (fast, options) = self.take_options_for_fast_path();
        if fast {
            let short = !options.is_empty();
            let mut out = Out {
                // SAFETY: `fast` says `buffer` is valid (see its field).
                buf: unsafe { self.buffer.as_mut() },
                len: &mut self.at,
            };
            if emit_planned_to(self.code, self.section, &mut out, plans, &operands, short) {
                return Ok(());
            }
        }
        self.emit_typed_general(mnemonic, plans.forms(), operands, options)
    }
}

/// Whether the fast path may encode an instruction with these options: it
/// knows no option but `short`.
#[inline(always)]
fn fast_path_takes(options: InstOptions) -> bool {
    options.is_empty() || options == InstOptions::SHORT
}

/// Appends an encoded instruction: all 16 bytes of its array (a fixed-size
/// copy the compiler inlines, where a variable-length one calls `memcpy`),
/// then cuts the buffer back to the instruction's length.
#[inline]
fn push_encoded(buf: &mut Vec<u8>, encoded: &Encoded) {
    let end = buf.len() + encoded.len;
    buf.extend_from_slice(&encoded.bytes);
    buf.truncate(end);
}

/// The recommended multi-byte NOP sequences (1 to 9 bytes): `nop` and
/// `nop r/m` (0F 1F /0, opcodes from the instruction database), some behind
/// the operand-size prefix, on memory operands of the length wanted.
#[rustfmt::skip]
const NOPS: [&[u8]; 9] = {
    use super::db::generated_opcodes::{NOP, NOP_0F_RM};
    // Encoding-format bytes, not opcodes: the operand-size prefix, the 0F
    // escape, and ModRM (reg 0: the /0 the generator requires of `nop r/m`)
    // / SIB for [eax], [eax + disp8], [eax + eax*1 + disp8], [eax + disp32]
    // and [eax + eax*1 + disp32].
    const O16: u8 = 0x66;
    const ESCAPE_0F: u8 = 0x0f;
    const MODRM_EAX: u8 = 0x00;
    const MODRM_EAX_DISP8: u8 = 0x40;
    const MODRM_SIB_DISP8: u8 = 0x44;
    const MODRM_EAX_DISP32: u8 = 0x80;
    const MODRM_SIB_DISP32: u8 = 0x84;
    const SIB_EAX_EAX: u8 = 0x00;
    [
        &[NOP],
        &[O16, NOP],
        &[ESCAPE_0F, NOP_0F_RM, MODRM_EAX],
        &[ESCAPE_0F, NOP_0F_RM, MODRM_EAX_DISP8, 0],
        &[ESCAPE_0F, NOP_0F_RM, MODRM_SIB_DISP8, SIB_EAX_EAX, 0],
        &[O16, ESCAPE_0F, NOP_0F_RM, MODRM_SIB_DISP8, SIB_EAX_EAX, 0],
        &[ESCAPE_0F, NOP_0F_RM, MODRM_EAX_DISP32, 0, 0, 0, 0],
        &[ESCAPE_0F, NOP_0F_RM, MODRM_SIB_DISP32, SIB_EAX_EAX, 0, 0, 0, 0],
        &[O16, ESCAPE_0F, NOP_0F_RM, MODRM_SIB_DISP32, SIB_EAX_EAX, 0, 0, 0, 0],
    ]
};

fn write_nops(buf: &mut Vec<u8>, mut n: usize) {
    while n > 0 {
        let k = n.min(9);
        buf.extend_from_slice(NOPS[k - 1]);
        n -= k;
    }
}

#[cfg(test)]
mod nop_tests {
    use super::NOPS;

    /// The padding NOPs, now assembled from database opcodes, are still the
    /// recommended sequences, and each decodes (iced-x86, in both modes) as
    /// one `nop` of its full length.
    #[test]
    fn nops_are_the_recommended_sequences() {
        let recommended: [&[u8]; 9] = [
            &[0x90],
            &[0x66, 0x90],
            &[0x0f, 0x1f, 0x00],
            &[0x0f, 0x1f, 0x40, 0x00],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
            &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
            &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        ];
        assert_eq!(NOPS, recommended);
        for (i, nop) in NOPS.iter().enumerate() {
            assert_eq!(nop.len(), i + 1);
            for bitness in [32, 64] {
                let mut decoder =
                    iced_x86::Decoder::new(bitness, nop, iced_x86::DecoderOptions::NONE);
                let instruction = decoder.decode();
                assert_eq!(
                    (instruction.mnemonic(), instruction.len()),
                    (iced_x86::Mnemonic::Nop, nop.len()),
                    "{nop:02x?} in {bitness}-bit mode"
                );
            }
        }
    }
}
