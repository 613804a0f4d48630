//! Puts an allocated IR function into machine code: the frame (prolog saving
//! the callee-saved registers the allocation used, stack for spill slots and
//! user stack memory, epilog at every return), the allocator's edits
//! (moves, spill stores, reloads, rematerializations, swaps, split edges),
//! and each instruction with its virtual registers replaced by the
//! registers or stack slots they were given.
//!
//! Both modes: in 64-bit mode the frame is rsp/rbp based with 8-byte pushes
//! and a System V red zone; in 32-bit mode (`Arch::X86`) it is esp/ebp based
//! with 4-byte pushes and slots, no red zone, entry esp = 16n + 12 and 16-byte
//! alignment at calls (the i386 System V psABI as gcc and clang use it).

mod direct;
mod memo;

pub(crate) use memo::EncodingMemo;
use memo::{Key, TagKind};

use super::ra::{OperandOrigin, RaView};
use super::target::{X86Inst, X86Target};
use crate::code::Label;
use crate::error::{Error, Result};
use crate::x86::{Assembler, Emitter, Mem, MemBase, Mnemonic, Operand, Reg, RegKind};
use jitforge_ir::{
    Function as IrFunction, Inst as IrInst, InstKind, MemBase as IrMemBase, Operand as IrOperand,
    Reg as IrReg, RegClass as IrClass,
};
use jitforge_regalloc::{Allocation, Edit, Output, PReg, ProgPoint, RegClass};

/// How the frame is laid out, from the stack pointer up:
/// `[outgoing args][spill slots][saved vector regs][user stack slots][padding][saved regs]([rbp])[return address]`.
///
/// With a frame pointer the prolog is `push rbp; mov rbp, rsp`, incoming
/// stack arguments are addressed from rbp, and stack memory aligned to more
/// than 16 bytes is reached by aligning rsp down (`and rsp, -align`); the
/// epilog restores rsp from rbp. A System V leaf function whose frame fits
/// the 128-byte red zone does not move rsp at all: its frame lies below it.
pub(crate) struct Frame {
    /// Callee-saved general-purpose registers pushed at entry, in push order.
    pub saved: Vec<u8>,
    /// Callee-saved vector registers (Windows x64 xmm6..15) and the offset
    /// of the 16 bytes each is saved in.
    pub saved_vec: Vec<(u8, u32)>,
    /// Bytes subtracted from the stack pointer after the pushes (0 in the red zone).
    pub size: u32,
    /// Offset of the spill area from the stack pointer.
    pub spill_base: u32,
    /// Offset of each user stack slot from the stack pointer.
    pub slot_offsets: Vec<u32>,
    /// Where the incoming stack arguments start: base register and offset.
    pub in_args: (Reg, u32),
    /// Whether rbp is the frame pointer.
    pub frame_pointer: bool,
    /// The alignment rsp is brought to by `and` (0: none; more than 16).
    pub realign: u32,
    /// Added to every rsp-relative frame offset: minus the frame size when
    /// the frame lies in the red zone, else 0.
    pub bias: i64,
    /// Bytes of a pointer, a push and a general-purpose register move: 8 in
    /// 64-bit mode, 4 in 32-bit mode.
    pub ptr: u16,
    /// The stack pointer (rsp or esp).
    pub sp: Reg,
    /// The frame pointer (rbp or ebp).
    pub fp: Reg,
}

/// The mnemonics that store below rsp (or leave the function's frame to
/// code that may): a function using one is no leaf.
const STORES_BELOW_RSP: [Mnemonic; 7] = [
    Mnemonic::Call,
    Mnemonic::Push,
    Mnemonic::Pushfw,
    Mnemonic::Pushfd,
    Mnemonic::Pushfq,
    Mnemonic::Enter,
    Mnemonic::Syscall,
];

/// [`STORES_BELOW_RSP`] as a [`jitforge_ir::KindSummary::target_mask`] (an
/// id's low 16 bits are its mnemonic's index).
const STORES_BELOW_RSP_IDS: u64 = {
    let mut ids = [0u32; STORES_BELOW_RSP.len()];
    let mut k = 0;
    while k < ids.len() {
        ids[k] = STORES_BELOW_RSP[k] as u32;
        k += 1;
    }
    jitforge_ir::KindSummary::target_mask(&ids)
};

/// [`STORES_BELOW_RSP`] as a set of mnemonic indexes, a bit each, over
/// every 16-bit index (8 KB, of which a scan reads the first few words):
/// the word of an id's low 16 bits needs no bounds check.
static STORES_BELOW_RSP_SET: [u64; 1 << 10] = {
    let mut set = [0u64; 1 << 10];
    let mut k = 0;
    while k < STORES_BELOW_RSP.len() {
        let index = STORES_BELOW_RSP[k] as usize;
        set[index / 64] |= 1 << (index % 64);
        k += 1;
    }
    set
};

/// Whether `f` leaves rsp untouched apart from its frame: no call, tail
/// jump, push or other instruction that stores below rsp (so a leaf may
/// keep its frame in the red zone).
fn is_leaf(f: &IrFunction) -> bool {
    // The summary kept as the function was built rules out most functions
    // without a walk over their instructions.
    let kinds = f.kind_summary();
    if !kinds.may_call() && !kinds.may_have_target(STORES_BELOW_RSP_IDS) {
        return true;
    }
    f.all_insts().iter().all(|d| match d.kind {
        InstKind::Call(_) | InstKind::TailJump(_) => false,
        // The mnemonic's index (the id's low 16 bits) rules out most
        // instructions before the id is decoded (which costs more than the scan).
        InstKind::Target(id) => {
            let index = (id.0 & 0xFFFF) as usize;
            STORES_BELOW_RSP_SET[index >> 6] >> (index & 63) & 1 == 0
                || X86Inst::from_id(id).is_none_or(|x| !STORES_BELOW_RSP.contains(&x.mnemonic))
        }
        _ => true,
    })
}

impl Frame {
    /// Lays out the frame of `f` allocated as `out`: with rbp as frame
    /// pointer if `frame_pointer`, in the red zone if `red_zone` bytes
    /// below rsp are the function's (System V leaf functions); for 64-bit
    /// mode if `mode64`, else for 32-bit mode.
    pub fn layout(
        f: &IrFunction,
        out: &Output,
        frame_pointer: bool,
        red_zone: u32,
        mode64: bool,
    ) -> Frame {
        let ptr: u32 = if mode64 { 8 } else { 4 };
        // Every register a convention may preserve, in a fixed order; the
        // allocation only reports those its environment says are callee-saved.
        let mut used = out.used_callee_saved.class_mask(RegClass::Gp);
        if frame_pointer {
            used &= !(1 << 5);
        }
        // Most small functions save none: no walk over the order then.
        let saved: Vec<u8> = if used == 0 {
            Vec::new()
        } else {
            [3u8, 5, 6, 7, 12, 13, 14, 15, 0, 1, 2, 8, 9, 10, 11]
                .into_iter()
                .filter(|&hw| used >> hw & 1 != 0)
                .collect()
        };
        let out_args = f.frame.map_or(0, |fr| fr.out_args);
        let spill_base = out_args.next_multiple_of(16);
        let mut at = spill_base + out.spill_area_size;
        let mut saved_vec = Vec::new();
        let mut vec_saved = out.used_callee_saved.class_mask(RegClass::Vec);
        while vec_saved != 0 {
            let hw = vec_saved.trailing_zeros() as u8;
            vec_saved &= vec_saved - 1;
            at = at.next_multiple_of(16);
            saved_vec.push((hw, at));
            at += 16;
        }
        let mut slot_offsets = Vec::new();
        let mut max_align = 1;
        for (_, slot) in f.stack_slots() {
            let align = slot.align.max(1);
            max_align = max_align.max(align);
            at = at.next_multiple_of(align);
            slot_offsets.push(at);
            at += slot.size;
        }
        // At entry rsp = 16n + 8 (esp = 16n + 12: the return address is a
        // pointer); after the pushes and `size` it must be 16-aligned where
        // the function calls out or keeps aligned stack memory. A leaf
        // without stack needs no adjustment at all.
        let pushed = ptr + ptr * (saved.len() as u32 + frame_pointer as u32);
        let leaf = is_leaf(f);
        let size = if at == 0 && leaf {
            0
        } else {
            (at + pushed).next_multiple_of(16) - pushed
        };
        let realign = if max_align > 16 { max_align } else { 0 };
        let in_red_zone =
            leaf && realign == 0 && size != 0 && size <= red_zone && saved_vec.is_empty();
        let (rsp, rbp) = if mode64 {
            (crate::x86::rsp.reg(), crate::x86::rbp.reg())
        } else {
            (crate::x86::esp.reg(), crate::x86::ebp.reg())
        };
        Frame {
            in_args: if frame_pointer {
                (rbp, 2 * ptr)
            } else if in_red_zone {
                (rsp, pushed)
            } else {
                (rsp, size + pushed)
            },
            saved,
            saved_vec,
            size: if in_red_zone { 0 } else { size },
            spill_base,
            slot_offsets,
            frame_pointer,
            realign,
            bias: if in_red_zone { -(size as i64) } else { 0 },
            ptr: ptr as u16,
            sp: rsp,
            fp: rbp,
        }
    }
}

/// The allocator's machine for 32-bit mode: the eight registers of each
/// class (esp never), 4-byte general-purpose spill slots.
pub(crate) fn restrict_to_32bit(env: &mut jitforge_regalloc::MachineEnv) {
    use jitforge_regalloc::PRegSet;
    let mask = PRegSet::from_class_mask(RegClass::Mask, env.allocatable.class_mask(RegClass::Mask));
    env.allocatable = PRegSet::from_class_mask(RegClass::Gp, 0xFF & !(1 << 4))
        .union(PRegSet::from_class_mask(RegClass::Vec, 0xFF))
        .union(mask);
    env.callee_saved = PRegSet(env.callee_saved.0 & env.allocatable.0);
    env.slot_size[0] = 4;
}

/// Checks that `f` and every call in it use a convention of the Compiler's
/// mode (`ptr_size` 8 or 4): a 32-bit convention (cdecl, stdcall, fastcall,
/// vectorcall32) has no meaning in 64-bit code, nor a 64-bit one in 32-bit
/// code. The error names the function, the place and the convention.
pub(crate) fn check_conventions(
    f: &IrFunction,
    target: &dyn jitforge_ir::target::Target,
    ptr_size: u8,
) -> Result<()> {
    let bits = u32::from(ptr_size) * 8;
    let sigs = std::iter::once(("its signature", &f.sig))
        .chain(f.sig_refs().map(|(_, sig)| ("a call", sig)));
    for (place, sig) in sigs {
        let what = match target.call_conv(sig.conv) {
            None => format!("{place} has an unknown calling convention"),
            Some(conv) if conv.ptr_size != ptr_size => {
                let (other, valid) = if ptr_size == 4 {
                    (64, "cdecl, stdcall, fastcall or vectorcall")
                } else {
                    (32, "sysv64, win64, vectorcall64 or a light convention")
                };
                format!(
                    "{place} uses the {other}-bit calling convention {}; {bits}-bit functions take {valid}",
                    conv.name
                )
            }
            Some(_) => continue,
        };
        return Err(Error::InvalidArgument {
            message: format!("function {} ({bits}-bit): {what}", f.name()),
        });
    }
    Ok(())
}

/// Checks that `f` is a function 32-bit mode can run, before it is lowered:
/// a 32-bit convention for it and every call, no 64-bit general-purpose
/// virtual register, no r8..r15 or xmm8..15. The error names what is wrong.
pub(crate) fn check_32bit(f: &IrFunction, target: &dyn jitforge_ir::target::Target) -> Result<()> {
    check_conventions(f, target, 4)?;
    let fail = |what: String| {
        Err(Error::InvalidArgument {
            message: format!("function {} (32-bit): {what}", f.name()),
        })
    };
    for (v, data) in f.vregs() {
        if data.class == IrClass::GP && data.size > 4 {
            let name = f
                .vreg_name(v)
                .map_or_else(|| v.to_string(), |n| format!("%{n}"));
            return fail(format!(
                "virtual register {name} is {}-bit; 32-bit mode has no 64-bit general-purpose registers",
                data.size * 8
            ));
        }
    }
    let check = |r: &IrReg| match *r {
        IrReg::Phys(p, view)
            if (p.class == IrClass::GP || p.class == IrClass::VEC) && p.hw >= 8 =>
        {
            // Named as the 64-bit target names it (the 32-bit one has no name for it).
            let name = jitforge_ir::target::Target::reg_name(X86Target::x64(), p, view)
                .map_or_else(|| format!("{p:?}"), str::to_string);
            fail(format!(
                "physical register {name} does not exist in 32-bit mode (only the first eight of each class)"
            ))
        }
        _ => Ok(()),
    };
    for op in f.all_operands() {
        match op {
            IrOperand::Reg(r) => check(r)?,
            IrOperand::Mem(m) => {
                if let IrMemBase::Reg(r) = &m.base {
                    check(r)?;
                }
                if let Some(r) = &m.index {
                    check(r)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn gp_kind(bytes: u16) -> RegKind {
    match bytes {
        1 => RegKind::Gp8,
        2 => RegKind::Gp16,
        4 => RegKind::Gp32,
        _ => RegKind::Gp64,
    }
}

fn vec_kind(bytes: u16) -> RegKind {
    match bytes {
        64 => RegKind::Zmm,
        32 => RegKind::Ymm,
        _ => RegKind::Xmm,
    }
}

/// The x86 register for physical register `p` seen through `bytes` (and the high-byte view).
#[inline]
fn x86_reg(p: PReg, bytes: u16, high: bool) -> Result<Reg> {
    let reg = match p.class {
        RegClass::Gp if high => Reg::new(RegKind::Gp8Hi, p.hw),
        RegClass::Gp => Reg::new(gp_kind(bytes), p.hw),
        RegClass::Vec => Reg::new(vec_kind(bytes), p.hw),
        RegClass::Mask => Reg::new(RegKind::K, p.hw),
    };
    reg.ok_or_else(|| Error::InvalidArgument {
        message: format!("register {p} has no {bytes}-byte view"),
    })
}

/// The listing's text of an edit: the allocator's own, but in 32-bit mode
/// (`ptr` 4) with general-purpose registers named as the code uses them (`eax`).
fn edit_text(edit: &Edit, ptr: u16) -> String {
    if ptr == 8 {
        return edit.to_string();
    }
    let reg = |p: PReg| match x86_reg(p, ptr, false) {
        Ok(r) if p.class == RegClass::Gp => r.to_string(),
        _ => p.to_string(),
    };
    let at = |a: Allocation| match a {
        Allocation::Reg(p) => reg(p),
        other => other.to_string(),
    };
    match *edit {
        Edit::Move { from, to, vreg, .. } => {
            let what = match (from, to) {
                (Allocation::Reg(_), Allocation::Stack(_)) => "store",
                (Allocation::Stack(_), Allocation::Reg(_)) => "reload",
                _ => "move",
            };
            let vreg = vreg.get().map_or_else(String::new, |v| format!(" ({v})"));
            format!("{what} {} <- {}{vreg}", at(to), at(from))
        }
        Edit::Swap { a, b } => format!("xchg {}, {}", reg(a), reg(b)),
        Edit::Remat { vreg, to } => format!("remat {} <- {vreg}", reg(to)),
    }
}

/// The allocator's reason for the listing: the general-purpose register
/// it names (a hint, a fixed copy, a clobber) named as the mode names it,
/// `eax` in 32-bit code (the allocator's own text says `rax`).
fn reason_text(reason: jitforge_regalloc::Reason, ptr: u16) -> String {
    use jitforge_regalloc::Reason;
    let text = reason.to_string();
    let (Reason::Hint(p) | Reason::FixedCopy(p) | Reason::SaveAcrossClobber(p)) = reason else {
        return text;
    };
    match (ptr, p.class, x86_reg(p, ptr, false)) {
        (4, RegClass::Gp, Ok(r)) => match text.strip_suffix(&p.to_string()) {
            Some(head) => format!("{head}{r}"),
            None => text,
        },
        _ => text,
    }
}

/// The allocator's operands of one instruction: `allocs[k]` is where the
/// register of `operands[k]` (from IR operand `origins[k]`) went.
struct InstAllocations<'a> {
    allocs: &'a [Allocation],
    operands: &'a [jitforge_regalloc::Operand],
    origins: &'a [OperandOrigin],
}

impl InstAllocations<'_> {
    /// The allocation of `v` in IR operand `index` (in its address or
    /// not); an operand the allocator did not see (`xor x, x`) shares the
    /// register of the same vreg elsewhere in the instruction.
    #[inline]
    fn find(&self, index: usize, v: jitforge_ir::VReg, in_address: bool) -> Option<Allocation> {
        let mut same_vreg = None;
        for ((op, o), a) in self.operands.iter().zip(self.origins).zip(self.allocs) {
            if op.vreg.index() == v.as_u32() as usize {
                if o.operand as usize == index && o.in_address == in_address {
                    return Some(*a);
                }
                same_vreg = same_vreg.or(Some(*a));
            }
        }
        same_vreg
    }
}

/// What the rewrite writes into: the Builder (which relaxes branches) or
/// the Assembler. Both take every instruction through [`Emitter`].
pub(crate) trait Sink: Emitter {
    /// A new label.
    fn new_label(&mut self) -> Label;
    /// Binds a label here.
    fn bind(&mut self, label: Label) -> Result<()>;
    /// Pads to an alignment.
    fn align(&mut self, alignment: usize) -> Result<()>;
    /// Embeds a label's absolute address.
    fn embed_label(&mut self, label: Label) -> Result<()>;
    /// A comment line for the listing.
    fn comment(&mut self, text: &str) -> Result<()>;
    /// One instruction with options.
    fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: crate::x86::InstOptions,
    ) -> Result<()>;
    /// [`emit_with`](Sink::emit_with) for an instruction the rewrite's own
    /// [`EncodingMemo`] looks after (the direct writer skips the encoding
    /// memo of its Builder then: looking there too would only cost).
    fn emit_plain(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: crate::x86::InstOptions,
    ) -> Result<()> {
        self.emit_with(mnemonic, operands, options)
    }
    /// The code buffer instructions go to as plain bytes, where they may
    /// be copied in from the [`EncodingMemo`]; `None` where instructions
    /// are more than bytes (the Builder's nodes, an Assembler that may log).
    fn text_mut(&mut self) -> Option<&mut Vec<u8>> {
        None
    }
}

/// The [`Sink`] methods of an Assembler reached as `$asm` from `self`.
macro_rules! assembler_sink {
    ($self:ident => $asm:expr) => {
        fn new_label(&mut $self) -> Label {
            Assembler::new_label($asm)
        }
        fn bind(&mut $self, label: Label) -> Result<()> {
            Assembler::bind($asm, label)
        }
        fn align(&mut $self, alignment: usize) -> Result<()> {
            Assembler::align($asm, alignment)
        }
        fn embed_label(&mut $self, label: Label) -> Result<()> {
            Assembler::embed_label($asm, label)
        }
        fn comment(&mut $self, text: &str) -> Result<()> {
            Assembler::comment($asm, text);
            Ok(())
        }
    };
}

impl Sink for Assembler<'_> {
    assembler_sink!(self => self);
    fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: crate::x86::InstOptions,
    ) -> Result<()> {
        Assembler::emit_with(self, mnemonic, operands, options)
    }
}

impl Emitter for crate::builder::Direct<'_> {
    fn emit(&mut self, mnemonic: Mnemonic, operands: &[Operand]) -> Result<()> {
        self.emit_with(mnemonic, operands, crate::x86::InstOptions::NONE)
    }
}

/// Straight into the code holder: labels, alignment and comments through
/// its Assembler, instructions through the encoding memo.
impl Sink for crate::builder::Direct<'_> {
    assembler_sink!(self => &mut self.asm);
    fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: crate::x86::InstOptions,
    ) -> Result<()> {
        crate::builder::Direct::emit_with(self, mnemonic, operands, options)
    }
    fn emit_plain(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: crate::x86::InstOptions,
    ) -> Result<()> {
        self.asm.emit_with(mnemonic, operands, options)
    }
    #[inline]
    fn text_mut(&mut self) -> Option<&mut Vec<u8>> {
        Some(
            self.asm
                .code_mut()
                .buffer_mut(crate::code::CodeHolder::TEXT),
        )
    }
}

impl Sink for crate::builder::Builder<'_> {
    fn new_label(&mut self) -> Label {
        crate::builder::Builder::new_label(self)
    }
    fn bind(&mut self, label: Label) -> Result<()> {
        crate::builder::Builder::bind(self, label)
    }
    fn align(&mut self, alignment: usize) -> Result<()> {
        crate::builder::Builder::align(self, alignment)
    }
    fn embed_label(&mut self, label: Label) -> Result<()> {
        crate::builder::Builder::embed_label(self, label)
    }
    fn comment(&mut self, text: &str) -> Result<()> {
        crate::builder::Builder::comment(self, text)
    }
    fn emit_with(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        options: crate::x86::InstOptions,
    ) -> Result<()> {
        crate::builder::Builder::emit_with(self, mnemonic, operands, options)
    }
}

/// Emits the allocated function.
pub(crate) struct Rewriter<'r, S: Sink> {
    pub f: &'r IrFunction,
    /// The target (which operands of a bound instruction are explicit).
    pub target: &'r X86Target,
    pub ra: &'r RaView,
    pub out: &'r Output,
    pub frame: &'r Frame,
    pub asm: &'r mut S,
    /// Whether edits are announced as comments (a logger is attached).
    pub logging: bool,
    /// Code label of each IR label.
    pub labels: &'r [Label],
    /// The CFG the allocation was made on (blocks of split edges).
    pub cfg: &'r jitforge_ir::cfg::Cfg,
    /// Label of each split edge's block, by (from, to) block index.
    pub split_labels: Vec<((u32, u32), Label)>,
    /// Label of each jump table's data.
    pub table_labels: Vec<Label>,
    /// Whether the function uses 256- or 512-bit vector registers.
    pub wide_vectors: bool,
    /// Width of the function's vector spill slots (its widest vector value).
    pub vector_bytes: u16,
    /// With a logger: the allocator's decisions sorted by instruction.
    pub decisions: Vec<jitforge_regalloc::Decision>,
    /// Instructions encoded before, by what decides their bytes (used
    /// where the sink takes plain bytes; begun for the view's facts epoch).
    pub memo: &'r mut EncodingMemo,
}

/// A register allocation in 7 bits for a memo key: class << 5 | hw for a
/// register (classes 0..2, hw below 32), [`STACK_CODE`] for a spill slot
/// (whose displacement the key holds apart), `None` for no allocation.
#[inline(always)]
fn alloc_code(a: Allocation) -> Option<u64> {
    match a {
        Allocation::Reg(p) if p.hw < 32 => Some((p.class as u64) << 5 | u64::from(p.hw)),
        Allocation::Stack(_) => Some(STACK_CODE),
        _ => None,
    }
}

/// [`alloc_code`] of a spill slot (above every register's).
const STACK_CODE: u64 = 0x7F;

/// Set in the first word of an edit's memo key (a target instruction's
/// holds its tag there instead).
const EDIT_KEY: u64 = 1 << 62;

/// Set in the first word of a rematerialization's memo key.
const REMAT_KEY: u64 = 1 << 61;

/// Set in the first word of a target instruction's memo key when its
/// displacement is from the stack pointer with no index register (a spill
/// slot, stack memory): then its bytes end in `ModRM, SIB 0x24, disp`
/// unless the instruction has more after them (see [`template_key`]).
const SP_DISP_KEY: u64 = 1 << 52;

/// Set in the first word of a target instruction's memo key when it has
/// an immediate (which the second word holds, 0 too).
const IMM_KEY: u64 = 1 << 53;

/// Set in the first word of a template's memo key: the bytes of an
/// instruction whose stack-pointer displacement is patched in, the second
/// word holding only the displacement's width (1 or 4 bytes).
const TEMPLATE_KEY: u64 = 1 << 60;

/// Of a target instruction's memo key: the key of its template (its bytes
/// for any nonzero stack-pointer displacement of the same width), the
/// displacement and its width in bytes. `None` without one, or with an
/// immediate (which would follow the displacement).
#[inline(always)]
fn template_key(key: &Key) -> Option<(Key, i32, usize)> {
    if key[0] & (SP_DISP_KEY | IMM_KEY) != SP_DISP_KEY || key[1] == 0 {
        return None;
    }
    let disp = key[1] as u32 as i32;
    let width = if i8::try_from(disp).is_ok() { 1 } else { 4 };
    Some(([key[0] | TEMPLATE_KEY, width as u64], disp, width))
}

/// Whether `bytes`, an instruction written with stack-pointer displacement
/// `disp` of `width` bytes, end in it as a template needs: `ModRM` of
/// that displacement size with rm 100, SIB 0x24 (base sp, no index), the
/// displacement; and are no EVEX instruction (whose 8-bit displacement is
/// scaled: another displacement of the same width may take another size).
/// Patching the last `width` bytes then gives the bytes of any other
/// displacement of that width.
fn is_template(bytes: &[u8], disp: i32, width: usize) -> bool {
    const PREFIXES: [u8; 11] = [
        0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65,
    ];
    let lead = bytes.iter().find(|b| !PREFIXES.contains(b));
    let n = bytes.len();
    let modrm = if width == 1 { 0x44 } else { 0x84 };
    lead.is_some_and(|&b| b != 0x62)
        && n >= width + 3
        && bytes[n - width..] == disp.to_le_bytes()[..width]
        && bytes[n - width - 1] == 0x24
        && bytes[n - width - 2] & 0xC7 == modrm
}

/// The displacement of spill slot `slot` of allocation `out` from the
/// stack pointer in `frame`, if it fits in 32 bits (what a memo key holds;
/// [`Rewriter::spill_disp`] without the whole rewriter).
#[inline(always)]
fn spill_disp(frame: &Frame, out: &Output, slot: jitforge_regalloc::SpillSlot) -> Option<i32> {
    let offset = frame.spill_base + out.slots.get(slot.index())?.offset;
    i32::try_from(offset as i64 + frame.bias).ok()
}

/// Appends edit `edit` of allocation `out` (with spill slots in `frame`)
/// to `text` when it is a general-purpose move, store or reload the direct
/// encoder writes (nothing for a value that stays where it is), and
/// returns true; false having written nothing for any other (the general
/// edit path's). Inline: the edit loops write thousands.
#[inline(always)]
fn gp_edit_directly(frame: &Frame, out: &Output, edit: &Edit, text: &mut Vec<u8>) -> bool {
    let Edit::Move {
        from,
        to,
        class: RegClass::Gp,
        ..
    } = *edit
    else {
        return false;
    };
    // By the pair of locations (a store, a reload or a move; never slot to
    // slot): one match, and a slot's displacement only where there is one.
    // Each arm writes its own: the places' kinds are then known to the
    // (inlined) encoder, which needs no second look at them.
    let slot = |s| spill_disp(frame, out, s).map(direct::Place::Stack);
    let mode64 = frame.ptr == 8;
    let gp = direct::MoveKind::Gp;
    match (from, to) {
        (Allocation::Reg(r), Allocation::Stack(s)) => match slot(s) {
            Some(to) => direct::encode_move(gp, mode64, direct::Place::Reg(r.hw), to, text),
            None => false,
        },
        (Allocation::Stack(s), Allocation::Reg(r)) => match slot(s) {
            Some(from) => direct::encode_move(gp, mode64, from, direct::Place::Reg(r.hw), text),
            None => false,
        },
        // A value that stays where it is: nothing to write.
        (Allocation::Reg(a), Allocation::Reg(b)) if a == b => true,
        (Allocation::Reg(a), Allocation::Reg(b)) => direct::encode_move(
            gp,
            mode64,
            direct::Place::Reg(a.hw),
            direct::Place::Reg(b.hw),
            text,
        ),
        _ => false,
    }
}

/// A value as the 32 bits a memo key holds of it, if it fits in them
/// (sign-extended back it is the same).
#[inline(always)]
fn key_i32(v: i64) -> Option<u64> {
    i32::try_from(v).ok().map(|v| u64::from(v as u32))
}

impl<'r, S: Sink> Rewriter<'r, S> {
    /// The displacement of a spill slot from the stack pointer.
    #[inline]
    fn spill_disp(&self, slot: jitforge_regalloc::SpillSlot) -> i64 {
        let offset = self.frame.spill_base + self.out.slots[slot.index()].offset;
        offset as i64 + self.frame.bias
    }

    fn spill_mem(&self, slot: jitforge_regalloc::SpillSlot, bytes: u16) -> Mem {
        Mem::new(MemBase::Reg(self.frame.sp), self.spill_disp(slot)).with_size(bytes)
    }

    /// The memo key of target instruction `i` with facts-table tag `tag`
    /// and IR operands `ir_ops`: the tag fixes the instruction and each
    /// operand's kind, class, size and view, so its bytes are decided by
    /// where its virtual registers went (in the allocator's operand order,
    /// which the tag fixes too), the address of a memory operand (its base
    /// kind, scale and final displacement) or a spill slot's displacement,
    /// and the immediate. `None` when they depend on more (labels, constants,
    /// physical address registers), or do not fit: two immediates or
    /// displacements, more than four allocations, values beyond 32 bits.
    #[inline(always)]
    fn target_key(
        &mut self,
        i: usize,
        id: jitforge_ir::TargetInst,
        tag: u16,
        ir_ops: &[IrOperand],
    ) -> Option<Key> {
        // Most tags have register operands only (the tag says so: it is
        // looked at once): nothing but the allocations to read then.
        // `mem` also holds the flags of SP_DISP_KEY and IMM_KEY (shifted
        // into place with it).
        let (mut imm, mut disp, mut mem) = (None, None, 0u64);
        let kind = self.memo.tag_kind(tag, || {
            let imm = ir_ops.iter().any(|op| matches!(op, IrOperand::Imm(_)));
            if imm
                && X86Inst::from_id(id)
                    .is_none_or(|x| crate::builder::may_branch_to_address(x.mnemonic))
            {
                TagKind::Never
            } else if ir_ops
                .iter()
                .all(|op| matches!(op, IrOperand::Reg(_) | IrOperand::Fixed(..)))
            {
                TagKind::Registers
            } else {
                TagKind::Other
            }
        });
        if kind == TagKind::Never {
            return None;
        }
        if kind == TagKind::Other {
            for op in ir_ops {
                match *op {
                    IrOperand::Reg(_) | IrOperand::Fixed(..) => {}
                    IrOperand::Imm(v) if imm.is_none() => {
                        imm = Some(key_i32(v)?);
                        mem |= IMM_KEY >> 47;
                    }
                    IrOperand::Mem(ref m) if disp.is_none() => {
                        let (base, at) = self.address_key(m)?;
                        disp = Some(key_i32(at + i64::from(m.disp))?);
                        mem |= base | u64::from(m.scale.trailing_zeros() & 3) << 3;
                        if base == 2 {
                            mem |= SP_DISP_KEY >> 47;
                        }
                    }
                    _ => return None,
                }
            }
        }
        let offsets = &self.out.inst_alloc_offsets;
        let allocs = &self.out.allocs[offsets[i] as usize..offsets[i + 1] as usize];
        if allocs.len() > 4 {
            return None;
        }
        let mut codes = 0u64;
        for (k, &a) in allocs.iter().enumerate() {
            if let Allocation::Stack(slot) = a {
                if disp.is_some() {
                    return None;
                }
                disp = Some(key_i32(self.spill_disp(slot))?);
                mem |= SP_DISP_KEY >> 47;
            }
            codes |= alloc_code(a)? << (7 * k);
        }
        // Tag (16 bits), allocations (3), allocation codes (4 x 7), memory
        // base and scale (5), whether the displacement is from the stack
        // pointer and whether there is an immediate, below the template,
        // edit and filled bits.
        Some([
            memo::FILLED | u64::from(tag) | (allocs.len() as u64) << 16 | codes << 19 | mem << 47,
            disp.unwrap_or(0) | imm.unwrap_or(0) << 32,
        ])
    }

    /// Of a memory operand for a memo key: a code for its base (1 a
    /// virtual register, then in the allocations, 2 the stack pointer,
    /// 3 where the incoming arguments are; 4 added with an index register,
    /// also in the allocations) and what its base adds to its displacement.
    /// `None` for other bases and physical address registers.
    #[inline(always)]
    fn address_key(&self, m: &jitforge_ir::Mem) -> Option<(u64, i64)> {
        let (base, at) = match m.base {
            IrMemBase::Reg(IrReg::Virt(..)) => (1, 0),
            IrMemBase::Slot(s) => (
                2,
                i64::from(*self.frame.slot_offsets.get(s.as_u32() as usize)?) + self.frame.bias,
            ),
            IrMemBase::OutArgs => (2, 0),
            IrMemBase::InArgs if self.frame.in_args.0 == self.frame.sp => {
                (2, i64::from(self.frame.in_args.1))
            }
            IrMemBase::InArgs => (3, i64::from(self.frame.in_args.1)),
            _ => return None,
        };
        let index = match m.index {
            None => 0,
            Some(IrReg::Virt(..)) => 4,
            Some(IrReg::Phys(..)) => return None,
        };
        Some((base | index, at))
    }

    /// The memo key of an edit: a move, store or reload of one class and
    /// width, or a rematerialization; `None` for the others (a swap, a
    /// move between two slots) and where the sink takes no bytes.
    #[inline]
    fn edit_key(&self, edit: &Edit) -> Option<Key> {
        let ptr = u64::from(self.frame.ptr);
        match *edit {
            Edit::Move {
                from,
                to,
                class,
                vreg,
            } => {
                let disp = match (from, to) {
                    (Allocation::Stack(_), Allocation::Stack(_)) => return None,
                    (Allocation::Stack(s), _) | (_, Allocation::Stack(s)) => {
                        key_i32(self.spill_disp(s))?
                    }
                    _ => 0,
                };
                let bytes = u64::from(self.move_bytes(class, vreg.get()));
                Some([
                    memo::FILLED
                        | EDIT_KEY
                        | (class as u64)
                        | ptr << 8
                        | bytes << 16
                        | alloc_code(from)? << 32
                        | alloc_code(to)? << 40,
                    disp,
                ])
            }
            Edit::Remat { vreg, to } => {
                let value = self.constant_of(jitforge_ir::VReg::from_u32(vreg.0))?;
                Some([
                    memo::FILLED
                        | EDIT_KEY
                        | REMAT_KEY
                        | ptr << 8
                        | alloc_code(Allocation::Reg(to))? << 40,
                    key_i32(value)? << 32,
                ])
            }
            Edit::Swap { .. } => None,
        }
    }

    /// Appends the memo's bytes for `key` (at `slot`) to the sink's code;
    /// false when the memo has none or the sink takes no bytes.
    #[inline(always)]
    fn memo_append(&mut self, slot: usize, key: &Key) -> bool {
        match self.asm.text_mut() {
            Some(text) => self.memo.append(slot, key, text),
            None => false,
        }
    }

    /// The length of the sink's code (0 where it takes no bytes).
    #[inline(always)]
    fn text_len(&mut self) -> usize {
        self.asm.text_mut().map_or(0, |t| t.len())
    }

    /// Remembers the bytes written since `start` under `key` (at `slot`).
    fn memo_put(&mut self, slot: usize, key: &Key, start: usize) {
        if let Some(text) = self.asm.text_mut() {
            let bytes = text.get(start..).unwrap_or(&[]);
            self.memo.put(slot, key, bytes);
        }
    }

    fn vreg_bytes(&self, v: jitforge_ir::VReg) -> u16 {
        self.f.vreg(v).size
    }

    fn location(&self, a: Allocation, bytes: u16, high: bool) -> Result<Operand> {
        match a {
            Allocation::Reg(p) => Ok(Operand::Reg(x86_reg(p, bytes, high)?)),
            Allocation::Stack(s) => Ok(Operand::Mem(self.spill_mem(s, bytes))),
            Allocation::None => Err(Error::InvalidArgument {
                message: "operand left unallocated".into(),
            }),
        }
    }

    /// A move between two locations of one class, `bytes` wide.
    fn emit_move(&mut self, from: Operand, to: Operand, class: RegClass, bytes: u16) -> Result<()> {
        if from == to {
            return Ok(());
        }
        let mnemonic = match class {
            RegClass::Gp => Mnemonic::Mov,
            // xmm16..31 only have EVEX encodings.
            RegClass::Vec if bytes >= 32 || is_upper_vec(&from) || is_upper_vec(&to) => {
                Mnemonic::Vmovups
            }
            RegClass::Vec => Mnemonic::Movups,
            RegClass::Mask => Mnemonic::Kmovq,
        };
        self.asm
            .emit_plain(mnemonic, &[to, from], crate::x86::InstOptions::NONE)
    }

    fn class_bytes(&self, class: RegClass, vreg: Option<jitforge_regalloc::VReg>) -> u16 {
        match (class, vreg) {
            (_, Some(v)) => self
                .f
                .vreg(jitforge_ir::VReg::from_u32(v.0))
                .size
                .max(match class {
                    RegClass::Gp => self.frame.ptr,
                    _ => 1,
                }),
            (RegClass::Gp, None) => self.frame.ptr,
            // A value the allocator does not name: as wide as the function's
            // vector slots (the widest vector it uses), never wider.
            (RegClass::Vec, None) => self.vector_bytes,
            (RegClass::Mask, None) => 8,
        }
    }

    /// The listing's name of an allocator vreg: `v4 %sum`.
    fn vreg_label(&self, v: jitforge_regalloc::VReg) -> String {
        match self.f.vreg_name(jitforge_ir::VReg::from_u32(v.0)) {
            Some(name) => format!("{v} %{name}"),
            None => v.to_string(),
        }
    }

    /// The reasons the decision log gives at instruction `i` for `vreg`.
    fn reasons(&self, i: Option<usize>, vreg: Option<jitforge_regalloc::VReg>) -> String {
        let Some(i) = i else { return String::new() };
        let reasons: Vec<String> = self
            .decisions_at(i)
            .iter()
            .filter(|d| vreg.is_some() && d.vreg == vreg)
            .map(|d| reason_text(d.reason, self.frame.ptr))
            .collect();
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" [{}]", reasons.join("; "))
        }
    }

    /// The decisions made at instruction `i` (sorted, so a binary search).
    fn decisions_at(&self, i: usize) -> &[jitforge_regalloc::Decision] {
        let start = self.decisions.partition_point(|d| d.inst.index() < i);
        let end = self.decisions.partition_point(|d| d.inst.index() <= i);
        &self.decisions[start..end]
    }

    /// With a logger, a comment for each decision at instruction `i` that
    /// no inserted move explains (a folded spill slot, a def written to its
    /// slot, a register taken from a hint).
    fn log_decisions(&mut self, i: usize, edit_vregs: &[jitforge_regalloc::VReg]) -> Result<()> {
        if !self.logging {
            return Ok(());
        }
        let lines: Vec<String> = self
            .decisions_at(i)
            .iter()
            .filter(|d| d.vreg.is_none_or(|v| !edit_vregs.contains(&v)))
            .map(|d| {
                let reason = reason_text(d.reason, self.frame.ptr);
                match d.vreg {
                    Some(v) => format!("ra: {}: {reason}", self.vreg_label(v)),
                    None => format!("ra: {reason}"),
                }
            })
            .collect();
        for line in lines {
            self.asm.comment(&line)?;
        }
        Ok(())
    }

    /// Writes edit `edit` (made at instruction `at`, if any): a
    /// general-purpose or xmm move straight into the sink's code where it
    /// takes bytes (inline: most edits are these), anything else and
    /// whatever is logged the general way.
    #[inline(always)]
    fn emit_edit(&mut self, edit: &Edit, at: Option<usize>) -> Result<()> {
        if !self.logging && self.emit_move_directly(edit) {
            return Ok(());
        }
        self.emit_edit_general(edit, at)
    }

    /// [`emit_edit`](Self::emit_edit) for the edits it does not write
    /// inline: announced as a comment with a logger, copied from the memo
    /// or encoded.
    #[inline(never)]
    fn emit_edit_general(&mut self, edit: &Edit, at: Option<usize>) -> Result<()> {
        if self.logging {
            let vreg = match *edit {
                Edit::Move { vreg, .. } => vreg.get(),
                Edit::Remat { vreg, .. } => Some(vreg),
                Edit::Swap { .. } => None,
            };
            let mut text = edit_text(edit, self.frame.ptr);
            if let Some(v) = vreg
                && let Some(name) = self.f.vreg_name(jitforge_ir::VReg::from_u32(v.0))
            {
                text.push_str(&format!(" %{name}"));
            }
            text.push_str(&self.reasons(at, vreg));
            self.asm.comment(&text)?;
        }
        // Where the sink takes bytes, another edit seen before is copied.
        let key = if self.logging || self.asm.text_mut().is_none() {
            None
        } else {
            self.edit_key(edit)
        };
        let Some(key) = key else {
            return self.encode_edit(edit);
        };
        let slot = self.memo.slot(&key);
        if self.memo_append(slot, &key) {
            return Ok(());
        }
        let start = self.text_len();
        self.encode_edit(edit)?;
        self.memo_put(slot, &key, start);
        Ok(())
    }

    /// Writes a general-purpose or xmm move, store or reload straight
    /// into the sink's code (see [`direct`]); false having written nothing
    /// for any other edit, or where the sink takes no bytes.
    #[inline(always)]
    fn emit_move_directly(&mut self, edit: &Edit) -> bool {
        let Edit::Move {
            from,
            to,
            class,
            vreg,
        } = *edit
        else {
            return false;
        };
        let kind = match class {
            RegClass::Gp => direct::MoveKind::Gp,
            RegClass::Vec if self.move_bytes(class, vreg.get()) == 16 => direct::MoveKind::Xmm,
            _ => return false,
        };
        let place = |a: Allocation| match a {
            Allocation::Reg(p) => Some(direct::Place::Reg(p.hw)),
            Allocation::Stack(s) => i32::try_from(self.spill_disp(s))
                .ok()
                .map(direct::Place::Stack),
            Allocation::None => None,
        };
        let (Some(from_place), Some(to_place)) = (place(from), place(to)) else {
            return false;
        };
        let mode64 = self.frame.ptr == 8;
        match self.asm.text_mut() {
            // A value that stays where it is needs nothing.
            Some(_) if from == to => true,
            Some(text) => direct::encode_move(kind, mode64, from_place, to_place, text),
            None => false,
        }
    }

    /// The width an edit moves a value of `class` (and `vreg`) at.
    #[inline]
    fn move_bytes(&self, class: RegClass, vreg: Option<jitforge_regalloc::VReg>) -> u16 {
        match class {
            // Whole registers: a GP value moves as 64 bits (32 in 32-bit mode).
            RegClass::Gp => self.frame.ptr,
            RegClass::Vec => self.class_bytes(class, vreg).clamp(16, 64),
            RegClass::Mask => 8,
        }
    }

    /// Encodes an edit's instruction.
    fn encode_edit(&mut self, edit: &Edit) -> Result<()> {
        match *edit {
            Edit::Move {
                from,
                to,
                class,
                vreg,
            } => {
                let bytes = self.move_bytes(class, vreg.get());
                let from = self.location(from, bytes, false)?;
                let to = self.location(to, bytes, false)?;
                self.emit_move(from, to, class, bytes)
            }
            Edit::Swap { a, b } => {
                let a = x86_reg(a, self.frame.ptr, false)?;
                let b = x86_reg(b, self.frame.ptr, false)?;
                self.asm.emit_plain(
                    Mnemonic::Xchg,
                    &[a.into(), b.into()],
                    crate::x86::InstOptions::NONE,
                )
            }
            Edit::Remat { vreg, to } => {
                let value = self
                    .constant_of(jitforge_ir::VReg::from_u32(vreg.0))
                    .ok_or_else(|| Error::InvalidArgument {
                        message: format!("rematerialized {vreg} has no constant definition"),
                    })?;
                let reg = x86_reg(to, self.frame.ptr, false)?;
                self.asm.emit_plain(
                    Mnemonic::Mov,
                    &[reg.into(), Operand::Imm(value)],
                    crate::x86::InstOptions::NONE,
                )
            }
        }
    }

    fn constant_of(&self, v: jitforge_ir::VReg) -> Option<i64> {
        self.f.insts().find_map(|i| {
            self.f
                .copy_imm(i)
                .filter(|(d, _)| *d == v)
                .map(|(_, value)| value)
        })
    }

    fn prolog(&mut self) -> Result<()> {
        let rsp = self.frame.sp;
        let ptr = self.frame.ptr;
        if self.frame.frame_pointer {
            let rbp = self.frame.fp;
            self.asm.emit(Mnemonic::Push, &[rbp.into()])?;
            self.asm.emit(Mnemonic::Mov, &[rbp.into(), rsp.into()])?;
        }
        for &hw in &self.frame.saved {
            self.asm
                .emit(Mnemonic::Push, &[x86_reg(PReg::gp(hw), ptr, false)?.into()])?;
        }
        if self.frame.size != 0 {
            self.asm.emit(
                Mnemonic::Sub,
                &[rsp.into(), Operand::Imm(self.frame.size as i64)],
            )?;
        }
        if self.frame.realign != 0 {
            self.asm.emit(
                Mnemonic::And,
                &[rsp.into(), Operand::Imm(-(self.frame.realign as i64))],
            )?;
        }
        for &(hw, offset) in &self.frame.saved_vec {
            let slot = Mem::new(MemBase::Reg(rsp), offset as i64).with_size(16);
            self.asm.emit(
                Mnemonic::Movups,
                &[slot.into(), x86_reg(PReg::vec(hw), 16, false)?.into()],
            )?;
        }
        Ok(())
    }

    /// `vzeroupper` before leaving AVX code (a call or a return), so SSE code
    /// on the other side pays no transition penalty. Only in functions that
    /// use 256- or 512-bit registers.
    fn zero_upper(&mut self) -> Result<()> {
        if self.wide_vectors {
            self.asm.emit(Mnemonic::Vzeroupper, &[])?;
        }
        Ok(())
    }

    fn epilog(&mut self) -> Result<()> {
        self.tear_down()?;
        let pop = self.f.frame.map_or(0, |fr| fr.ret_pop);
        if pop != 0 {
            self.asm.emit(Mnemonic::Ret, &[Operand::Imm(pop as i64)])
        } else {
            self.asm.emit(Mnemonic::Ret, &[])
        }
    }

    /// The epilog without its `ret`: restores the saved registers and the
    /// stack pointer (before a return or a tail jump).
    fn tear_down(&mut self) -> Result<()> {
        let rsp = self.frame.sp;
        let ptr = self.frame.ptr;
        for &(hw, offset) in &self.frame.saved_vec {
            let slot = Mem::new(MemBase::Reg(rsp), offset as i64).with_size(16);
            self.asm.emit(
                Mnemonic::Movups,
                &[x86_reg(PReg::vec(hw), 16, false)?.into(), slot.into()],
            )?;
        }
        let rbp = self.frame.fp;
        if self.frame.realign != 0 {
            // rsp moved by an unknown amount: back to just below the pushes.
            let below = -i64::from(ptr) * self.frame.saved.len() as i64;
            self.asm.emit(
                Mnemonic::Lea,
                &[rsp.into(), Mem::new(MemBase::Reg(rbp), below).into()],
            )?;
        } else if self.frame.size != 0 {
            self.asm.emit(
                Mnemonic::Add,
                &[rsp.into(), Operand::Imm(self.frame.size as i64)],
            )?;
        }
        for &hw in self.frame.saved.iter().rev() {
            self.asm
                .emit(Mnemonic::Pop, &[x86_reg(PReg::gp(hw), ptr, false)?.into()])?;
        }
        if self.frame.frame_pointer {
            self.asm.emit(Mnemonic::Pop, &[rbp.into()])?;
        }
        Ok(())
    }

    /// The x86 operand for IR operand `index` of instruction `i`.
    fn operand(&self, i: usize, index: usize, op: &IrOperand) -> Result<Operand> {
        self.operand_of(i, index, op, &self.inst_allocations(i))
    }

    /// The allocator's operands of instruction `i`: where each went and
    /// which IR operand it came from (looked up once per instruction).
    #[inline(always)]
    fn inst_allocations(&self, i: usize) -> InstAllocations<'_> {
        // The output's offsets read here rather than through
        // `Output::inst_allocs`: a call per instruction otherwise.
        let offsets = &self.out.inst_alloc_offsets;
        let (operands, origins) = self.ra.operands_and_origins(i);
        InstAllocations {
            allocs: &self.out.allocs[offsets[i] as usize..offsets[i + 1] as usize],
            operands,
            origins,
        }
    }

    /// [`operand`](Self::operand) with the instruction's allocations at
    /// hand. The common cases (a virtual register in a register, an
    /// immediate) inline; the others out of line.
    #[inline(always)]
    fn operand_of(
        &self,
        i: usize,
        index: usize,
        op: &IrOperand,
        at: &InstAllocations<'_>,
    ) -> Result<Operand> {
        match *op {
            IrOperand::Reg(IrReg::Virt(v, view)) => {
                if let Some(Allocation::Reg(p)) = at.find(index, v, false) {
                    let bytes = view.size().unwrap_or_else(|| self.vreg_bytes(v));
                    return Ok(Operand::Reg(x86_reg(p, bytes, view.is_high())?));
                }
            }
            IrOperand::Imm(v) => return Ok(Operand::Imm(v)),
            _ => {}
        }
        self.operand_slow(i, index, op, at)
    }

    /// [`operand_of`](Self::operand_of) for every operand shape.
    #[inline(never)]
    fn operand_slow(
        &self,
        i: usize,
        index: usize,
        op: &IrOperand,
        at: &InstAllocations<'_>,
    ) -> Result<Operand> {
        let alloc_of = |v: jitforge_ir::VReg, in_address: bool| -> Result<Allocation> {
            at.find(index, v, in_address)
                .ok_or_else(|| Error::InvalidArgument {
                    message: format!("no allocation for {v} in instruction {i}"),
                })
        };
        let reg = |r: &IrReg, in_address: bool| -> Result<Operand> {
            match *r {
                IrReg::Virt(v, view) => {
                    let bytes = view.size().unwrap_or_else(|| self.vreg_bytes(v));
                    self.location(alloc_of(v, in_address)?, bytes, view.is_high())
                }
                IrReg::Phys(p, view) => {
                    let class = match p.class {
                        IrClass::VEC => RegClass::Vec,
                        IrClass::MASK => RegClass::Mask,
                        _ => RegClass::Gp,
                    };
                    let bytes = view.size().unwrap_or(match class {
                        RegClass::Gp => self.frame.ptr,
                        RegClass::Mask => 8,
                        RegClass::Vec => 16,
                    });
                    Ok(Operand::Reg(x86_reg(
                        PReg::new(class, p.hw),
                        bytes,
                        view.is_high(),
                    )?))
                }
            }
        };
        match op {
            IrOperand::Reg(r) => reg(r, false),
            IrOperand::Fixed(v, _) => {
                let bytes = self.vreg_bytes(*v);
                self.location(alloc_of(*v, false)?, bytes, false)
            }
            IrOperand::Imm(v) => Ok(Operand::Imm(*v)),
            IrOperand::Label(l) => Ok(Operand::Label(self.branch_label(i, *l))),
            IrOperand::Mem(m) => {
                let address_reg = |r: &IrReg| -> Result<Reg> {
                    match reg(r, true)? {
                        Operand::Reg(x) => x.with_kind(gp_kind(self.frame.ptr)).ok_or_else(|| {
                            Error::InvalidArgument {
                                message: "address register is not a general-purpose register"
                                    .into(),
                            }
                        }),
                        _ => Err(Error::InvalidArgument {
                            message: "an address register was spilled (needs a register)".into(),
                        }),
                    }
                };
                let rsp = self.frame.sp;
                let (base, disp) = match m.base {
                    IrMemBase::None => (MemBase::None, 0i64),
                    IrMemBase::Reg(r) => (MemBase::Reg(address_reg(&r)?), 0),
                    IrMemBase::Slot(s) => (
                        MemBase::Reg(rsp),
                        self.frame.slot_offsets[s.as_u32() as usize] as i64 + self.frame.bias,
                    ),
                    IrMemBase::Label(l) => (MemBase::Label(self.labels[l.as_u32() as usize]), 0),
                    IrMemBase::InArgs => (
                        MemBase::Reg(self.frame.in_args.0),
                        self.frame.in_args.1 as i64,
                    ),
                    IrMemBase::OutArgs => (MemBase::Reg(rsp), 0),
                    IrMemBase::JumpTable(jt) => {
                        (MemBase::Label(self.table_labels[jt.as_u32() as usize]), 0)
                    }
                    IrMemBase::Const(_) => {
                        return Err(Error::InvalidArgument {
                            message: "IR constants are not supported by this Compiler (use Compiler::new_const)"
                                .into(),
                        });
                    }
                };
                let mut mem = Mem::new(base, disp + m.disp as i64).with_size(m.size);
                if let Some(index) = m.index {
                    mem = mem.with_index(address_reg(&index)?, m.scale);
                }
                Ok(Operand::Mem(mem))
            }
        }
    }

    /// The code label a branch in instruction `i` to IR label `l` goes to:
    /// the block of a split edge when the allocator split that edge.
    fn branch_label(&self, i: usize, l: jitforge_ir::Label) -> Label {
        let direct = self.labels[l.as_u32() as usize];
        let from = self.cfg.block_of(IrInst::from_u32(i as u32));
        let to = self.cfg.label_block(l);
        match (from, to) {
            (Some(from), Some(to)) => self
                .split_labels
                .iter()
                .find(|(edge, _)| *edge == (from.as_u32(), to.as_u32()))
                .map_or(direct, |(_, label)| *label),
            _ => direct,
        }
    }

    /// Emits the whole function: prolog, every instruction with its edits, split edges.
    pub fn run(&mut self) -> Result<()> {
        for split in &self.out.edge_splits {
            let label = self.asm.new_label();
            self.split_labels.push(((split.from.0, split.to.0), label));
        }
        for _ in 0..self.f.num_jump_tables() {
            let label = self.asm.new_label();
            self.table_labels.push(label);
        }
        // Room for the function's code at once, close to its size: growing
        // by doubling would leave up to half the buffer unused at the peak
        // (about 8 bytes per instruction and edit; beyond, it still grows).
        let estimate = 8 * (self.f.num_insts() + self.out.edits.len()) + 64;
        if let Some(text) = self.asm.text_mut() {
            let room = text.capacity() - text.len();
            if room < estimate {
                text.reserve_exact(estimate);
            }
        }
        self.prolog()?;
        // Locals, not reached through `self` for every instruction (the
        // emitting methods borrow `self` mutably).
        let f: &'r IrFunction = self.f;
        let out: &'r Output = self.out;
        let all_ops = f.all_operands();
        let edits = &out.edits;
        let mut next_edit = 0;
        // The instruction of edit `k` (before or after it; none past the
        // last): most instructions have no edit and skip both edit loops.
        let edit_inst = |k: usize| edits.get(k).map_or(usize::MAX, |(p, _)| p.inst().index());
        let mut edit_at = edit_inst(0);
        let has_splits = !out.edge_splits.is_empty();
        // One buffer for every instruction's operands (a Vec: cheaper to
        // push to than a SmallVec, allocated once per function).
        let mut ops: Vec<Operand> = Vec::new();
        let insts = f.all_insts();
        // Runs of remembered register-only instructions up to the next
        // edit are copied by the memo in a small loop of their own; the
        // loop below writes the instruction each run stops at (split edges
        // and logging take it for every instruction).
        let copy_runs = !self.logging && !has_splits;
        let mut i = 0;
        while i < insts.len() {
            if copy_runs && let Some(text) = self.asm.text_mut() {
                let frame = self.frame;
                i = self.memo.copy_registers_only(
                    insts,
                    &out.inst_alloc_offsets,
                    &out.allocs,
                    (i, insts.len()),
                    |s| spill_disp(frame, out, s),
                    (edits, &mut next_edit),
                    (frame, out),
                    text,
                );
                edit_at = edit_inst(next_edit);
                // It stopped at an edit after the instruction it copied last.
                if edit_at < i {
                    let after = ProgPoint::after(jitforge_regalloc::Inst::new(i - 1));
                    self.emit_edits_at(edits, &mut next_edit, after)?;
                    edit_at = edit_inst(next_edit);
                    continue;
                }
                if i == insts.len() {
                    break;
                }
            }
            let Some(d) = insts.get(i) else { break };
            if self.logging {
                let here = jitforge_regalloc::Inst::new(i);
                let mut edit_vregs: Vec<jitforge_regalloc::VReg> = Vec::new();
                for (point, edit) in &edits[next_edit..] {
                    if *point != ProgPoint::before(here) && *point != ProgPoint::after(here) {
                        break;
                    }
                    match *edit {
                        Edit::Move { vreg, .. } => edit_vregs.extend(vreg.get()),
                        Edit::Remat { vreg, .. } => edit_vregs.push(vreg),
                        Edit::Swap { .. } => {}
                    }
                }
                self.log_decisions(i, &edit_vregs)?;
            }
            if edit_at == i {
                let before = ProgPoint::before(jitforge_regalloc::Inst::new(i));
                self.emit_edits_at(edits, &mut next_edit, before)?;
                edit_at = edit_inst(next_edit);
            }
            let ir_ops = &all_ops[d.ops_range()];
            match d.kind {
                InstKind::Bind(l) => self.asm.bind(self.labels[l.as_u32() as usize])?,
                InstKind::Entry => {}
                InstKind::Ret => {
                    // A float returned in x87 st0 is in memory (see the
                    // lowering): loaded while the frame still holds it.
                    for (index, op) in ir_ops.iter().enumerate() {
                        if let IrOperand::Mem(_) = op {
                            let value = self.operand(i, index, op)?;
                            self.asm.emit(Mnemonic::Fld, &[value])?;
                        }
                    }
                    self.zero_upper()?;
                    self.epilog()?
                }
                InstKind::JumpIndirect(_) => {
                    let target = self.operand(i, 0, &ir_ops[0])?;
                    self.asm.emit(Mnemonic::Jmp, &[target])?;
                }
                InstKind::Jump => {
                    let target = self.operand(i, 0, &ir_ops[0])?;
                    self.asm.emit(Mnemonic::Jmp, &[target])?;
                }
                InstKind::Copy | InstKind::Addr => {
                    let dst = self.operand(i, 0, &ir_ops[0])?;
                    let src = self.operand(i, 1, &ir_ops[1])?;
                    if d.kind == InstKind::Addr {
                        self.asm.emit(Mnemonic::Lea, &[dst, src])?;
                    } else {
                        self.emit_copy(dst, src)?;
                    }
                }
                InstKind::Target(id) => {
                    // Where the sink takes bytes, an instruction seen
                    // before (same shape, same registers) is copied.
                    let key = match d.tag() {
                        Some(tag) if !self.logging => self.target_key(i, id, tag, ir_ops),
                        _ => None,
                    };
                    match key {
                        // Most instructions have no stack-pointer
                        // displacement: their bytes by their own key.
                        Some(key) if key[0] & SP_DISP_KEY == 0 => {
                            let slot = self.memo.slot(&key);
                            if !self.memo_append(slot, &key) {
                                let start = self.text_len();
                                self.emit_target(i, id, ir_ops, &mut ops)?;
                                self.memo_put(slot, &key, start);
                            }
                        }
                        Some(key) => self.emit_target_memo(i, id, ir_ops, &mut ops, &key)?,
                        None => self.emit_target(i, id, ir_ops, &mut ops)?,
                    }
                }
                InstKind::Call(c) => {
                    // After lowering the arguments and results sit in their
                    // fixed registers (or the outgoing area); only the callee matters.
                    let callee = self.operand(i, 0, &ir_ops[0])?;
                    self.zero_upper()?;
                    match callee {
                        Operand::Imm(address) => {
                            // The target may be more than 2 GiB away: call through
                            // the scratch register, which no convention passes arguments in.
                            let scratch = self.scratch();
                            self.asm
                                .emit(Mnemonic::Mov, &[scratch.into(), Operand::Imm(address)])?;
                            self.asm.emit(Mnemonic::Call, &[scratch.into()])?;
                        }
                        other => self.asm.emit(Mnemonic::Call, &[other])?,
                    }
                    // A callee that popped its stack arguments (stdcall,
                    // fastcall) took the outgoing area with it: back to the frame.
                    let popped = self.callee_popped(c)?;
                    if popped != 0 {
                        self.asm.emit(
                            Mnemonic::Sub,
                            &[self.frame.sp.into(), Operand::Imm(popped as i64)],
                        )?;
                    }
                    // A float result in x87 st0 goes to the slot the
                    // lowering gave as the call's memory operand.
                    for (index, op) in ir_ops.iter().enumerate().skip(1) {
                        if let IrOperand::Mem(_) = op {
                            let slot = self.operand(i, index, op)?;
                            self.asm.emit(Mnemonic::Fstp, &[slot])?;
                        }
                    }
                }
                InstKind::TailJump(_) => {
                    // The arguments sit in their registers; the callee goes to
                    // the scratch register (no convention passes arguments
                    // there) before the epilog restores the registers it might be in.
                    if self.f.frame.is_some_and(|fr| fr.ret_pop != 0) {
                        return Err(Error::InvalidArgument {
                            message: format!(
                                "function {}: a tail call from a function that pops its stack arguments (stdcall, fastcall) is not supported",
                                self.f.name()
                            ),
                        });
                    }
                    let callee = self.operand(i, 0, &ir_ops[0])?;
                    self.zero_upper()?;
                    let r11 = self.scratch();
                    let target = match callee {
                        Operand::Label(_) => callee,
                        other => {
                            self.emit_copy(Operand::Reg(r11), other)?;
                            Operand::Reg(r11)
                        }
                    };
                    self.tear_down()?;
                    self.asm.emit(Mnemonic::Jmp, &[target])?;
                }
            }
            if edit_at == i {
                let after = ProgPoint::after(jitforge_regalloc::Inst::new(i));
                self.emit_edits_at(edits, &mut next_edit, after)?;
                edit_at = edit_inst(next_edit);
            }
            if has_splits {
                self.fallthrough_edits(i)?;
            }
            i += 1;
        }
        // Jump tables: one absolute address per target, relocated at placement.
        for t in 0..self.f.num_jump_tables() {
            self.asm.align(8)?;
            self.asm.bind(self.table_labels[t])?;
            let targets: Vec<Label> = self
                .f
                .jump_table(jitforge_ir::JumpTable::from_u32(t as u32))
                .iter()
                .map(|l| self.labels[l.as_u32() as usize])
                .collect();
            for label in targets {
                self.asm.embed_label(label)?;
            }
        }
        // Split edges reached by a branch: their own blocks after the function.
        for (index, split) in self.out.edge_splits.iter().enumerate() {
            let Some(&(_, label)) = self.split_labels.get(index) else {
                continue;
            };
            if self.fallthrough_split(split.from.0, split.to.0) {
                continue;
            }
            self.asm.bind(label)?;
            if self.logging {
                self.asm.comment(&format!(
                    "ra: critical edge b{} -> b{} split",
                    split.from.0, split.to.0
                ))?;
            }
            for edit in &split.edits {
                self.emit_edit(edit, None)?;
            }
            let target = self.block_label(jitforge_ir::Block::from_u32(split.to.0))?;
            self.asm.emit(Mnemonic::Jmp, &[Operand::Label(target)])?;
        }
        Ok(())
    }

    /// Emits the edits at `point` from `edits[*next..]` (in program
    /// order), moving `*next` past them.
    fn emit_edits_at(
        &mut self,
        edits: &[(ProgPoint, Edit)],
        next: &mut usize,
        point: ProgPoint,
    ) -> Result<()> {
        // General-purpose moves, stores and reloads (most edits) straight
        // into the sink's code, in a loop that looks up the code buffer
        // and the mode once for all of them.
        if !self.logging {
            let (frame, out) = (self.frame, self.out);
            if let Some(text) = self.asm.text_mut() {
                while let Some((at, edit)) = edits.get(*next)
                    && *at == point
                    && gp_edit_directly(frame, out, edit, text)
                {
                    *next += 1;
                }
            }
        }
        if edits.get(*next).is_none_or(|(at, _)| *at != point) {
            return Ok(());
        }
        // The others (and the rest from the first of them) one by one.
        while let Some((at, edit)) = edits.get(*next)
            && *at == point
        {
            self.emit_edit(edit, Some(point.inst().index()))?;
            *next += 1;
        }
        Ok(())
    }

    /// [`emit_target`](Self::emit_target) through the memo by `key`, for
    /// an instruction with a stack-pointer displacement: from the template
    /// of its width (the one for every spill slot, patched), else from the
    /// bytes of this very key; encoded and remembered (as a template where
    /// it is one) when neither is there. Out of line: the loop over the
    /// instructions stays small for the others.
    #[inline(never)]
    fn emit_target_memo(
        &mut self,
        i: usize,
        id: jitforge_ir::TargetInst,
        ir_ops: &[IrOperand],
        ops: &mut Vec<Operand>,
        key: &Key,
    ) -> Result<()> {
        let template = template_key(key);
        if let Some((template, disp, width)) = template {
            let slot = self.memo.slot(&template);
            if let Some(text) = self.asm.text_mut()
                && self.memo.append(slot, &template, text)
            {
                // The displacement in place (fixed sizes: a copy of
                // `width` bytes would call `memcpy`).
                let end = text.len();
                if width == 1 {
                    text[end - 1] = disp as u8;
                } else {
                    text[end - 4..].copy_from_slice(&disp.to_le_bytes());
                }
                return Ok(());
            }
        }
        let slot = self.memo.slot(key);
        if self.memo_append(slot, key) {
            return Ok(());
        }
        let start = self.text_len();
        self.emit_target(i, id, ir_ops, ops)?;
        if let Some((template, disp, width)) = template
            && let Some(text) = self.asm.text_mut()
            && is_template(text.get(start..).unwrap_or(&[]), disp, width)
        {
            let slot = self.memo.slot(&template);
            self.memo_put(slot, &template, start);
        } else {
            self.memo_put(slot, key, start);
        }
        Ok(())
    }

    /// Target instruction `i` (id `id`, IR operands `ir_ops`) with its
    /// virtual registers replaced by their allocations (`ops`: a buffer).
    fn emit_target(
        &mut self,
        i: usize,
        id: jitforge_ir::TargetInst,
        ir_ops: &[IrOperand],
        ops: &mut Vec<Operand>,
    ) -> Result<()> {
        let x86 = X86Inst::from_id(id).ok_or_else(|| Error::InvalidArgument {
            message: format!("unknown target instruction {}", id.0),
        })?;
        if !x86.bound
            && !x86.masked
            && x86.options().is_empty()
            && self.emit_integer_op_from_ir(i, x86.mnemonic, ir_ops)
        {
            return Ok(());
        }
        // Operands bound to implicit registers are in those
        // registers now (fixed constraints): only the explicit ones are written.
        let explicit = if x86.bound {
            let shapes: Vec<jitforge_ir::target::OpShape> =
                ir_ops.iter().map(|o| self.f.operand_shape(o)).collect();
            self.target
                .implicit_layout(id, &shapes)
                .map_err(|e| Error::InvalidArgument {
                    message: format!("bound instruction: {e}"),
                })?
                .explicit
        } else {
            0..ir_ops.len()
        };
        ops.clear();
        let at = self.inst_allocations(i);
        for (index, op) in ir_ops.iter().enumerate() {
            if explicit.contains(&index) {
                ops.push(self.operand_of(i, index, op, &at)?);
            }
        }
        if x86.masked {
            // The mask is the last operand: it decorates the destination.
            let mask = match ops.pop() {
                Some(Operand::Reg(k)) => crate::x86::KReg::from_id(k.id()),
                _ => None,
            }
            .ok_or_else(|| Error::InvalidArgument {
                message: "masked instruction without a mask".into(),
            })?;
            let mut decorators = crate::x86::Decorators::NONE.with_mask(mask);
            if x86.zeroing {
                decorators = decorators.with_zeroing();
            }
            match ops.first_mut() {
                Some(Operand::Reg(r)) => *r = r.with_decorators(decorators),
                Some(Operand::Mem(m)) => *m = m.k(mask),
                _ => {}
            }
        }
        let mnemonic = shorter_form(x86.mnemonic, ops);
        if is_identity_move(mnemonic, ops, self.target.is_64bit()) {
            // The allocator gave both sides one register: nothing to do.
            return Ok(());
        }
        if x86.options().is_empty() && self.emit_integer_op_directly(mnemonic, ops) {
            return Ok(());
        }
        self.asm.emit_plain(mnemonic, ops, x86.options())
    }

    /// [`emit_integer_op_directly`](Self::emit_integer_op_directly) from
    /// instruction `i`'s IR operands `ir_ops`, without the x86 operands:
    /// two virtual registers (no high-byte view) of one width, 4 or 8
    /// bytes, each in a general-purpose register or a spill slot, and not
    /// both in one register (whose `xor` and `sub` [`shorter_form`] writes
    /// at 32 bits). False having written nothing for any other.
    #[inline(always)]
    fn emit_integer_op_from_ir(
        &mut self,
        i: usize,
        mnemonic: Mnemonic,
        ir_ops: &[IrOperand],
    ) -> bool {
        if !direct::is_integer_op(mnemonic) {
            return false;
        }
        let [
            IrOperand::Reg(IrReg::Virt(a, a_view)),
            IrOperand::Reg(IrReg::Virt(b, b_view)),
        ] = *ir_ops
        else {
            return false;
        };
        if a_view.is_high() || b_view.is_high() {
            return false;
        }
        let width = a_view.size().unwrap_or_else(|| self.vreg_bytes(a));
        if width != b_view.size().unwrap_or_else(|| self.vreg_bytes(b))
            || !(width == 4 || width == 8)
        {
            return false;
        }
        let at = self.inst_allocations(i);
        let (frame, out) = (self.frame, self.out);
        let place = |index: usize, v: jitforge_ir::VReg| match at.find(index, v, false)? {
            Allocation::Reg(p) if p.class == RegClass::Gp => Some(direct::Place::Reg(p.hw)),
            Allocation::Stack(s) => spill_disp(frame, out, s).map(direct::Place::Stack),
            _ => None,
        };
        let (Some(dst), Some(src)) = (place(0, a), place(1, b)) else {
            return false;
        };
        if let (direct::Place::Reg(x), direct::Place::Reg(y)) = (dst, src)
            && x == y
        {
            return false;
        }
        let mode64 = frame.ptr == 8;
        match self.asm.text_mut() {
            Some(text) => direct::encode_integer_op(mnemonic, width == 8, mode64, dst, src, text),
            None => false,
        }
    }

    /// Writes `mnemonic ops`, an integer operation on two general-purpose
    /// registers or spill slots (see [`direct::encode_integer_op`]),
    /// straight into the sink's code; false having written nothing for any
    /// other instruction, or where the sink takes no bytes.
    fn emit_integer_op_directly(&mut self, mnemonic: Mnemonic, ops: &[Operand]) -> bool {
        let sp = self.frame.sp;
        // Where an operand is, and its width in bytes.
        let place = |op: &Operand| match *op {
            Operand::Reg(r) if r.decorators().is_empty() => match r.kind() {
                RegKind::Gp64 => Some((direct::Place::Reg(r.id()), 8)),
                RegKind::Gp32 => Some((direct::Place::Reg(r.id()), 4)),
                _ => None,
            },
            Operand::Mem(m)
                if m.base() == MemBase::Reg(sp)
                    && m.index().is_none()
                    && m.segment().is_none()
                    && !m.is_broadcast()
                    && !m.is_abs64()
                    && m.decorators().is_empty() =>
            {
                let disp = i32::try_from(m.disp()).ok()?;
                Some((direct::Place::Stack(disp), m.size()))
            }
            _ => None,
        };
        let [dst, src] = ops else { return false };
        let (Some((dst, width)), Some((src, src_width))) = (place(dst), place(src)) else {
            return false;
        };
        if width != src_width || !(width == 4 || width == 8) {
            return false;
        }
        let mode64 = self.frame.ptr == 8;
        match self.asm.text_mut() {
            Some(text) => direct::encode_integer_op(mnemonic, width == 8, mode64, dst, src, text),
            None => false,
        }
    }

    /// After the last instruction of a block that falls through into a split
    /// edge's successor: the split's edits run inline (only that path gets here).
    fn fallthrough_edits(&mut self, i: usize) -> Result<()> {
        // Without split edges (most functions) nothing runs here.
        if self.out.edge_splits.is_empty() {
            return Ok(());
        }
        let inst = IrInst::from_u32(i as u32);
        let Some(block) = self.cfg.block_of(inst) else {
            return Ok(());
        };
        if self.cfg.insts(block, self.f).end != i + 1 || i + 1 >= self.f.num_insts() {
            return Ok(());
        }
        let Some(next) = self.cfg.block_of(IrInst::from_u32(i as u32 + 1)) else {
            return Ok(());
        };
        let out = self.out;
        for split in &out.edge_splits {
            if split.from.0 == block.as_u32()
                && split.to.0 == next.as_u32()
                && self.fallthrough_split(split.from.0, split.to.0)
            {
                for edit in &split.edits {
                    self.emit_edit(edit, None)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the edge from -> to is the fall-through of `from`: `to` comes
    /// next and `from` does not end in a jump to it, a jump or a return.
    fn fallthrough_split(&self, from: u32, to: u32) -> bool {
        let range = self.cfg.insts(jitforge_ir::Block::from_u32(from), self.f);
        if range.end >= self.f.num_insts() || range.is_empty() {
            return false;
        }
        let next = self.cfg.block_of(IrInst::from_u32(range.end as u32));
        if next.map(|b| b.as_u32()) != Some(to) {
            return false;
        }
        let last = IrInst::from_u32(range.end as u32 - 1);
        let branches_to_next = self.f.operands(last).iter().any(|op| match op {
            IrOperand::Label(l) => self.cfg.label_block(*l).map(|b| b.as_u32()) == Some(to),
            _ => false,
        });
        !branches_to_next
            && !matches!(
                self.f.kind(last),
                InstKind::Jump | InstKind::Ret | InstKind::TailJump(_)
            )
    }

    /// The code label at the start of block `b` (its first bound label).
    fn block_label(&mut self, b: jitforge_ir::Block) -> Result<Label> {
        let first = self.cfg.insts(b, self.f).start;
        match self.f.kind(IrInst::from_u32(first as u32)) {
            InstKind::Bind(l) => Ok(self.labels[l.as_u32() as usize]),
            _ => Err(Error::InvalidArgument {
                message: "a split edge leads to a block without a label".into(),
            }),
        }
    }

    /// The register a call or tail jump through an address goes through:
    /// r11 in 64-bit mode, eax in 32-bit mode (no convention passes
    /// arguments in either, and both are clobbered by every call).
    fn scratch(&self) -> Reg {
        if self.frame.ptr == 8 {
            crate::x86::r11.reg()
        } else {
            crate::x86::eax.reg()
        }
    }

    /// The bytes of stack arguments the callee of call `c` pops itself
    /// (stdcall and fastcall callees; 0 for every other convention).
    fn callee_popped(&self, c: jitforge_ir::CallRef) -> Result<u32> {
        let sig = self.f.sig_ref(self.f.call_data(c).sig);
        let conv = jitforge_ir::target::Target::call_conv(self.target, sig.conv);
        let Some(conv) = conv.filter(|conv| conv.callee_pops && !sig.varargs) else {
            return Ok(0);
        };
        let assignment = jitforge_ir::abi::assign_args(conv, &sig.params, false).map_err(|e| {
            Error::InvalidArgument {
                message: format!("call arguments: {e}"),
            }
        })?;
        Ok(assignment.stack_size - conv.shadow_space.min(assignment.stack_size))
    }

    /// `copy dst, src`: a move chosen by the locations' kinds.
    fn emit_copy(&mut self, dst: Operand, src: Operand) -> Result<()> {
        match (dst, src) {
            (Operand::Reg(d), Operand::Reg(s)) if d == s => Ok(()),
            (Operand::Reg(d), Operand::Imm(0)) if d.kind().is_gp() => {
                let d32 = d.with_kind(RegKind::Gp32).unwrap_or(d);
                self.asm.emit(Mnemonic::Xor, &[d32.into(), d32.into()])
            }
            (Operand::Reg(d), Operand::Imm(v)) if d.kind() == RegKind::Gp64 => {
                let mut ops = [Operand::Reg(d), Operand::Imm(v)];
                let mnemonic = shorter_form(Mnemonic::Mov, &mut ops);
                self.asm.emit(mnemonic, &ops)
            }
            (Operand::Mem(_), Operand::Mem(_)) => Err(Error::InvalidArgument {
                message: "copy between two memory locations".into(),
            }),
            (d, s) => {
                let vec = |o: &Operand| matches!(o, Operand::Reg(r) if r.kind().is_vec());
                let mnemonic = if vec(&d) || vec(&s) {
                    let both_vec = vec(&d) && vec(&s);
                    let wide = [&d, &s].iter().any(|o| matches!(o, Operand::Reg(r) if matches!(r.kind(), RegKind::Ymm | RegKind::Zmm)));
                    // The size of the other side: a general-purpose register or memory.
                    let other = [&d, &s]
                        .iter()
                        .find_map(|o| match o {
                            Operand::Reg(r) if !r.kind().is_vec() => Some(r.size()),
                            Operand::Mem(m) => Some(u32::from(m.size())),
                            _ => None,
                        })
                        .unwrap_or(8);
                    // xmm16..31 only have EVEX encodings: the VEX names.
                    let evex = is_upper_vec(&d) || is_upper_vec(&s);
                    match (both_vec || wide, evex, other) {
                        (true, _, _) if wide || evex => Mnemonic::Vmovups,
                        (true, _, _) => Mnemonic::Movaps,
                        (false, true, 4) => Mnemonic::Vmovd,
                        (false, true, 16) => Mnemonic::Vmovups,
                        (false, true, _) => Mnemonic::Vmovq,
                        (false, false, 4) => Mnemonic::Movd,
                        (false, false, 16) => Mnemonic::Movups,
                        (false, false, _) => Mnemonic::Movq,
                    }
                } else {
                    Mnemonic::Mov
                };
                self.asm.emit(mnemonic, &[d, s])
            }
        }
    }
}

/// Whether an operand is one of the vector registers 16..31.
fn is_upper_vec(o: &Operand) -> bool {
    matches!(o, Operand::Reg(r) if r.kind().is_vec() && r.id() >= 16)
}

/// Whether `mnemonic ops` copies a register into itself and has no other
/// effect: `mov` of a general-purpose register (but not of a 32-bit one in
/// 64-bit mode, which clears the upper half) or a legacy SSE full-register
/// move (the VEX forms clear the bits above 128 and are kept).
fn is_identity_move(mnemonic: Mnemonic, ops: &[Operand], mode64: bool) -> bool {
    use Mnemonic as M;
    let [Operand::Reg(a), Operand::Reg(b)] = ops else {
        return false;
    };
    if a != b || !a.decorators().is_empty() {
        return false;
    }
    match mnemonic {
        M::Mov => match a.kind() {
            RegKind::Gp64 | RegKind::Gp16 | RegKind::Gp8 | RegKind::Gp8Hi => true,
            RegKind::Gp32 => !mode64,
            _ => false,
        },
        M::Movaps | M::Movapd | M::Movups | M::Movupd | M::Movdqa | M::Movdqu => {
            a.kind() == RegKind::Xmm
        }
        _ => false,
    }
}

/// Same-effect shorter encodings an assembler user would write by hand:
/// `xor r64, r64` (same register) as `xor r32, r32`, and `mov r64, imm` with
/// an immediate that zero-extends from 32 bits as `mov r32, imm`.
#[inline]
fn shorter_form(mnemonic: Mnemonic, ops: &mut [Operand]) -> Mnemonic {
    if !matches!(mnemonic, Mnemonic::Xor | Mnemonic::Sub | Mnemonic::Mov) {
        return mnemonic;
    }
    let to_32 = |r: &Reg| r.with_kind(RegKind::Gp32).unwrap_or(*r);
    match (mnemonic, &mut *ops) {
        (Mnemonic::Xor | Mnemonic::Sub, [Operand::Reg(a), Operand::Reg(b)])
            if a == b && a.kind() == RegKind::Gp64 && a.decorators().is_empty() =>
        {
            let r = to_32(a);
            *a = r;
            *b = r;
            // Same flags at both sizes (zero result): keep the mnemonic.
            mnemonic
        }
        (Mnemonic::Mov, [Operand::Reg(a), Operand::Imm(v)])
            if a.kind() == RegKind::Gp64 && (0..=u32::MAX as i64).contains(v) =>
        {
            *a = to_32(a);
            Mnemonic::Mov
        }
        _ => mnemonic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::{Arch, CodeHolder};
    use crate::compiler::{Compiler, Signature, ValType};

    /// A logger that keeps nothing (with one the rewrite goes through the
    /// Builder, which does not use the encoding memo).
    struct Quiet;
    impl crate::x86::Logger for Quiet {
        fn log(&mut self, _: usize, _: &[u8], _: &str) {}
    }

    /// A straight-line function under pressure (`values` live at once, so
    /// that some are spilled): loads, register and immediate operands, a
    /// spilled operand folded into memory, `lea`, stores and reloads; for
    /// 64-bit code if `wide`, else 32-bit code.
    fn pressure(cc: &mut Compiler<'_>, wide: bool, seed: u64, values: usize) -> Result<()> {
        let (conv, ty, bytes) = if wide {
            (X86Target::SYSV64, ValType::I64, 8)
        } else {
            (X86Target::CDECL, ValType::I32, 4)
        };
        cc.add_func("f", Signature::new(conv, &[ty], &[ty]))?;
        let new = |cc: &mut Compiler<'_>, name: &str| -> Reg {
            if wide {
                cc.new_gp64(name).reg()
            } else {
                cc.new_gp32(name).reg()
            }
        };
        let p = new(cc, "p");
        cc.set_arg(0, p)?;
        let v: Vec<Reg> = (0..values).map(|i| new(cc, &format!("v{i}"))).collect();
        for (i, r) in v.iter().enumerate() {
            let at = Mem::new(MemBase::Reg(p), (bytes * i) as i64).with_size(bytes as u16);
            cc.emit(Mnemonic::Mov, &[(*r).into(), at.into()])?;
        }
        let mut state = seed;
        for _ in 0..200 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = state >> 33;
            let (d, s) = (
                v[(r >> 4) as usize % values],
                v[(r >> 12) as usize % values],
            );
            let (m, src) = match r % 7 {
                0 => (Mnemonic::Add, s.into()),
                1 => (Mnemonic::Sub, s.into()),
                2 => (Mnemonic::Xor, s.into()),
                3 => (Mnemonic::Imul, s.into()),
                4 => (Mnemonic::Add, Operand::Imm((r >> 20) as i64 & 0xFFF)),
                5 => (
                    Mnemonic::Lea,
                    Mem::new(MemBase::Reg(s), 16).with_index(d, 2).into(),
                ),
                _ => (Mnemonic::Mov, Operand::Imm((r >> 20) as i64)),
            };
            cc.emit(m, &[d.into(), src])?;
        }
        for r in &v[1..] {
            cc.emit(Mnemonic::Add, &[v[0].into(), (*r).into()])?;
        }
        cc.ret(&[v[0].into()])?;
        cc.end_func()
    }

    /// The bytes of [`pressure`] compiled for `arch`, with a logger or not.
    fn pressure_bytes(arch: Arch, seed: u64, values: usize, logged: bool) -> Vec<u8> {
        let mut code = CodeHolder::new(arch);
        let mut quiet = Quiet;
        {
            let mut cc = Compiler::new(&mut code);
            if logged {
                cc.set_logger(Some(&mut quiet));
            }
            pressure(&mut cc, arch == Arch::X64, seed, values).expect("compiles");
            cc.finalize().expect("finalizes");
        }
        code.finalize().expect("resolved")
    }

    /// The encoding memo gives the bytes encoding gives: functions compiled
    /// from a cold memo, again from a warm one (their instructions copied),
    /// and through the Builder (no memo), in both modes, in a thread of
    /// their own (so the memo starts empty).
    #[test]
    fn memo_gives_the_encoded_bytes() {
        std::thread::spawn(|| {
            for (arch, values) in [(Arch::X64, 24), (Arch::X86, 9), (Arch::X64, 5)] {
                for seed in 0..6 {
                    let cold = pressure_bytes(arch, seed, values, false);
                    let warm = pressure_bytes(arch, seed, values, false);
                    let logged = pressure_bytes(arch, seed, values, true);
                    assert_eq!(cold, logged, "{arch:?} seed {seed}: memo (cold) vs encoder");
                    assert_eq!(warm, logged, "{arch:?} seed {seed}: memo (warm) vs encoder");
                }
            }
        })
        .join()
        .expect("no failure");
    }

    /// An immediate branch target is encoded relative to where the
    /// instruction lands: two `call imm` of one shape and address have
    /// other bytes at other offsets, so the memo must not copy the first.
    #[test]
    fn branches_to_an_address_are_not_copied() {
        let compile = |logged: bool| -> Vec<u8> {
            let mut code = CodeHolder::new(Arch::X64);
            code.set_base_address(Some(0x1000_0000));
            let mut quiet = Quiet;
            {
                let mut cc = Compiler::new(&mut code);
                if logged {
                    cc.set_logger(Some(&mut quiet));
                }
                cc.add_func("f", Signature::new(X86Target::SYSV64, &[], &[]))
                    .expect("function");
                for _ in 0..3 {
                    cc.emit(Mnemonic::Call, &[Operand::Imm(0x1000_4000)])
                        .expect("call");
                }
                cc.ret(&[]).expect("ret");
                cc.end_func().expect("compiles");
                cc.finalize().expect("finalizes");
            }
            code.finalize().expect("resolved")
        };
        std::thread::spawn(move || {
            let direct = compile(false);
            assert_eq!(direct, compile(true));
            assert_eq!(direct, compile(false));
        })
        .join()
        .expect("no failure");
    }

    /// Only instructions that end in `ModRM, SIB 0x24, disp` are templates
    /// (checked on what the general encoder writes): not an EVEX one (its
    /// 8-bit displacement is scaled), not one with a byte after the
    /// displacement (a 3DNow! opcode suffix), not one of another address.
    #[test]
    fn templates_end_in_their_displacement() {
        use crate::x86::RegKind;
        let bytes = super::direct::tests::general;
        let reg = |kind: RegKind, hw: u8| Operand::Reg(Reg::new(kind, hw).expect("register"));
        let at = |arch: Arch, base: u8, disp: i32, size: u16| {
            let kind = if arch == Arch::X64 {
                RegKind::Gp64
            } else {
                RegKind::Gp32
            };
            let base = Reg::new(kind, base).expect("register");
            Operand::Mem(Mem::new(MemBase::Reg(base), i64::from(disp)).with_size(size))
        };
        for disp in [8, -8, 0x40, 0x7F, 0x80, -0x81, 0x1234, -0x10_0000] {
            let width = if i8::try_from(disp).is_ok() { 1 } else { 4 };
            for arch in [Arch::X64, Arch::X86] {
                let gp = if arch == Arch::X64 {
                    RegKind::Gp64
                } else {
                    RegKind::Gp32
                };
                let size = if arch == Arch::X64 { 8 } else { 4 };
                let sp = at(arch, 4, disp, size);
                let add = bytes(arch, Mnemonic::Add, &[reg(gp, 1), sp]);
                assert!(is_template(&add, disp, width), "add {disp}");
                let load = at(arch, 4, disp, 16);
                let vaddps = bytes(
                    arch,
                    Mnemonic::Vaddps,
                    &[reg(RegKind::Xmm, 1), reg(RegKind::Xmm, 2), load],
                );
                assert!(is_template(&vaddps, disp, width), "vaddps {disp}");
                let evex = bytes(
                    arch,
                    Mnemonic::Vaddps,
                    &[
                        reg(RegKind::Zmm, 1),
                        reg(RegKind::Zmm, 2),
                        at(arch, 4, disp, 64),
                    ],
                );
                assert!(!is_template(&evex, disp, width), "EVEX {disp}");
                let pfadd = bytes(
                    arch,
                    Mnemonic::Pfadd,
                    &[reg(RegKind::Mm, 1), at(arch, 4, disp, 8)],
                );
                assert!(!is_template(&pfadd, disp, width), "pfadd {disp}");
                let other_base = bytes(arch, Mnemonic::Add, &[reg(gp, 1), at(arch, 5, disp, size)]);
                assert!(!is_template(&other_base, disp, width), "[bp] {disp}");
            }
        }
    }

    #[test]
    fn leaf_check_reads_mnemonics_by_index() {
        // `is_leaf` compares an id's mnemonic index with these before decoding it.
        for m in STORES_BELOW_RSP {
            assert_eq!(Mnemonic::from_index(m as usize), Some(m));
            let id = X86Inst::new(m).id();
            assert_eq!(id.0 & 0xFFFF, m as u32);
        }
    }
}
