//! The x86 target of the IR: [`X86Target`] implements
//! [`jitforge_ir::target::Target`] from jitforge's instruction database, so
//! that the IR's verifier, CFG and calling-convention lowering, the register
//! allocator and the Compiler see real x86 instructions.
//!
//! # Target instruction ids
//!
//! A [`TargetInst`] packs an [`X86Inst`]: bits 0..16 are the
//! [`Mnemonic`] (`Mnemonic as u32`), bits 16..18 a [`Prefix`] (`rep`,
//! `repne`, `lock`), bit 18 an AVX-512 write mask (`{k}`: the mask register
//! is then the *last* operand) and bit 19 zeroing (`{z}`, only with a mask).
//! A plain mnemonic is therefore just `TargetInst(Mnemonic::Add as u32)`. The
//! text names of decorated ids are identifiers: `rep_movsb`, `repne_scasb`,
//! `lock_add`, `vaddps_k`, `vaddps_kz`.
//!
//! # How the operand facts are derived
//!
//! [`Target::inst_facts`] picks, as the encoder does, the *first* form of the
//! mnemonic (in database preference order, valid in the target's mode) whose
//! explicit operand kinds accept the operand shapes. Shapes are matched by a
//! copy of the encoder's `accepts` rules, on classes and sizes instead of
//! concrete registers: a general-purpose register of 1/2/4/8 bytes matches
//! `r8`/`r16`/`r32`/`r64` kinds (and their `/m`, `.rm`, `.v`, `.o` variants),
//! a vector register of up to 16 bytes (`f32`, `f64` and `v128` values)
//! matches `xmm`, of 32 `ymm`, of 64 `zmm`; mask registers match `k`;
//! memory matches the memory kinds when its size is unspecified or equals the
//! form's memory size (`moffs` is never chosen: IR memory is not a 64-bit
//! absolute address); immediates must fit the immediate kind; labels match
//! branch targets. Fixed-register kinds (`al`, `cl`, `ax`, `dx`, `eax`, `rax`,
//! `st0`) accept the physical register itself in a first pass; a virtual
//! register only in a second pass, when no form accepted the operands in the
//! first. So `add %a, 1000` takes the general `r64/m, id` form and not the
//! accumulator form, while `shl %a, %c` takes the `cl` form with `%c` fixed
//! to rcx.
//!
//! Then, one [`OperandFact`] per explicit operand:
//!
//! - **kinds**: the shape's kind; a register operand also gets
//!   [`KindSet::MEM`] when the chosen form's kind there is register-or-memory
//!   (`r64/m`, `xmm/m`...), or when another form accepts the same operands
//!   with memory at that position (`mov %a, %b` may load `%b` from a spill
//!   slot through the `r64, r64/m` form). Fixed, high-byte and write-mask
//!   operands never accept memory, and only one operand of an instruction may be
//!   memory: the Compiler folds at most one.
//! - **access**: from the database (`Read`, `Write`, `ReadWrite`;
//!   conditional reads are reads; a conditional write, as the destination of
//!   `cmovcc`, keeps the old value, so it is `ReadWrite`; `lea`'s memory is
//!   [`Access::None`]). Then, where the IR's semantics need it:
//!   - a write to an 8- or 16-bit view of a larger register (`%v.b`, `%v.h`,
//!     `%v.w`, or a physical `al`) keeps the rest: [`Access::PartialWrite`].
//!     A 32-bit write zero-extends: a full `Write`. A write to a whole 8- or
//!     16-bit virtual register is a full `Write`.
//!   - a legacy-SSE write to a sub-view of a wider vector register keeps the
//!     upper bits: `PartialWrite`; VEX and EVEX writes zero them: `Write`.
//!   - scalar SSE instructions that only merge the destination's upper part
//!     (`movss`/`movsd` between registers, `cvtsi2sd`, `cvtss2sd`, `sqrtsd`,
//!     `roundsd`, `rcpss`, `rsqrtss`...) write the whole value of a virtual
//!     register no wider than the scalar (`f32`/`f64` values): `Write`;
//!     else `PartialWrite`. `movss`/`movsd` from memory zero the rest:
//!     `Write`. Arithmetic such as `addsd` really reads its destination:
//!     `ReadWrite`.
//!   - zeroing idioms with the same register twice are write-only, the
//!     sources [`Access::None`]: `xor`, `sub`, `sbb`, `pxor`, `xorps`,
//!     `xorpd`, `psub*`, `pcmpeq*` (`x, x`), their VEX/EVEX three-operand
//!     forms (`vpxor d, x, x`), `kxor*`/`kxnor*` (`k, k, k`), and
//!     `vpternlogd/q` whose immediate ignores the destination (or a source).
//!   - with a write mask, merging keeps the masked-off elements: the
//!     destination is `PartialWrite`; with `{z}` it is `Write`. The mask
//!     operand is read (read-write for gathers and scatters, which clear
//!     it) and may be k1..k7 only (a physical k0 is rejected).
//! - **size**: the shape's size (0 for immediates and labels).
//! - **fixed**: the register of a fixed kind (`cl` of shifts: rcx).
//! - **allowed**: vector operands of legacy-SSE, VEX and XOP forms are
//!   restricted to 0..15 (only EVEX reaches xmm16..31; the first accepting
//!   form is VEX wherever one exists, so AVX code stays in 0..15, unless
//!   the target is built for AVX-512 ([`X86Target::new_x64_avx512`]): then
//!   an operand of an instruction that also has an EVEX form for the same
//!   operands may use 0..31, and only VEX-only instructions such as `vpxor`
//!   and legacy SSE keep 0..15); `xmm.v4`
//!   and `zmm.v4` to multiples of four; a high-byte register (`%v.h`, `ah`)
//!   is 0..3, and with one present, forms needing REX.W are skipped, other
//!   byte registers are restricted to 0..3 (spl..dil need REX) and other
//!   general-purpose registers to 0..7. In 32-bit mode every class has 8.
//!
//! **Implicit registers** come from the form's implicit operands: RDX:RAX of
//! `div`/`idiv`/`mul`/`cqo`, RCX of `loop` and of a `rep`-prefixed string
//! instruction (added for [`Prefix::Rep`]/[`Prefix::Repne`]), RSI/RDI of
//! string instructions, xmm0 of `blendvps`, RCX/R11 of `syscall`. Accesses to
//! the same register are merged (read + write = `ReadWrite`; an 8/16-bit
//! write alone = `PartialWrite`; a conditional write = `ReadWrite`).
//! Left out: the stack pointer (push/pop/call/ret/enter/leave touch RSP,
//! which is never allocatable: the frame owns it), the flags (not
//! registers), segment, control, x87 and MMX registers, and the implicit
//! vector registers of `vzeroupper` (the Compiler inserts it only where no
//! 256/512-bit value is live). `vzeroall` clobbers vector registers 0..15.
//!
//! # Implicit registers as operands
//!
//! An id with [`X86Inst::bound`] (text suffix `_regs`: `idiv_regs`,
//! `rep_movsb_regs`) takes its form's implicit general-purpose and vector
//! registers as operands, so that virtual registers stand for them (the
//! Compiler's `cc.idiv(hi, lo, src)`, AsmJit's convention). Each such
//! operand is fixed to its register, with the merged access of the
//! database (`idiv r64`: rdx and rax read-write); the register is then no
//! implicit register of the instruction. The layout, per mnemonic
//! ([`X86Target::implicit_operands`]):
//!
//! - the implicit operands come **first**, then the explicit ones, except
//!   for `cmpxchg`, `cmpxchg8b/16b`, `mulx`, `blendvps/pd`, `pblendvb`,
//!   `sha256rnds2` and `pcmp[ei]str[im]`, where they come **last** (they add
//!   inputs to an instruction with an explicit destination);
//! - a `rep`/`repne` prefix adds rcx (the count) as the very first;
//! - order: rdx, rax, rcx, rbx, rdi, rsi (so `div`/`mul`/`imul`: `hi, lo,
//!   src`; `cqo`/`cdq`/`cwd`: `hi, lo`; `rdtsc`: `hi, lo`; `rdtscp` and
//!   `xgetbv`: `hi, lo, ecx`; `movsb`: `rdi, rsi`; `stosb`: `rdi` then the
//!   explicit `al`), except `cpuid` (eax, ebx, ecx, edx), `cmps*` (rsi,
//!   rdi) and `pcmp*str*` (rcx or xmm0, then eax, edx); other registers
//!   follow in database order.
//!
//! Which form applies is decided by the explicit operands (`div` of a
//! 64-bit register binds rdx and rax, of an 8-bit one only ax). A bound
//! operand must be a register of the implicit register's class, no high
//! byte, at least as wide as what is read (`eax`: 4 bytes; write-only
//! registers accept any size, and an 8/16-bit write of a wider register is
//! a partial write).
//!
//! **Flow**: `jmp label` is [`Flow::Jump`], `jmp r/m` [`Flow::IndirectJump`],
//! `jmp imm` (an absolute address outside the function) [`Flow::Return`],
//! `jcc`, `jrcxz`, `loop*` and `xbegin` [`Flow::CondBranch`], `ret`, `retf`,
//! `iret*`, `ud2`, `hlt` [`Flow::Return`], `call` [`Flow::Call`] (a raw call
//! has no calling convention, so no clobbers: use the IR's `invoke`).
//!
//! Nothing is ever [`OperandFact::tied`]: x86 two-address destinations are
//! `ReadWrite` operands (the IR keeps two-address forms as written).
//!
//! Physical-register operands are also checked for encodability, as the
//! encoder does after matching kinds: xmm16..31 skip the VEX forms, a
//! high byte excludes REX registers, 32-bit mode has 8 registers per class.
//! On physical operands the target accepts exactly what the Assembler
//! encodes (tested against the encoder on every combination of a pool of
//! registers, memory sizes and immediates for about seventy mnemonics).
//!
//! # For the Compiler
//!
//! - [`X86Target::form_for`] gives the form the facts came from, and
//!   [`X86Inst::options`] the encoder options of the prefix; a masked
//!   instruction's last operand is the mask, which the Compiler moves onto
//!   the destination's decorations.
//! - Fold at most one operand per instruction into memory, and only one
//!   whose fact contains [`KindSet::MEM`]. Address registers of memory
//!   operands carry no allowed set: next to a high-byte register they must
//!   be 0..7 (the Compiler should not combine `%v.h` with r8..r15 in
//!   addresses; the encoder reports it).
//! - Results are cached per thread, twice: the matched form (512 entries
//!   keyed by everything matching depends on: id, operand classes, sizes,
//!   physical numbers and which immediate kinds each value fits), and the
//!   whole facts (512 entries; the key adds which operands are sub-views
//!   and which name the same register, and `vpternlog`'s immediate). An
//!   instruction costs about 55 ns through `Function::inst_facts` on a
//!   hit (the IR's mock: 30 ns); a miss a few hundred. Tests check that
//!   both caches never change an answer.
//!
//! # Calling conventions
//!
//! Ids 0..6 in both modes: `sysv64`, `win64`, `vectorcall64`, `cdecl`,
//! `stdcall`, `fastcall`, `vectorcall` (the data of [`jitforge_ir::abi`]);
//! see [`X86Target::SYSV64`] and the other constants.

use crate::x86::db::{self, Access as DbAccess, Encoding, Form, Mnemonic, OperandKind as K};
use crate::x86::db::{flags, modes};
use crate::x86::encoder::imm_fits;
use crate::x86::{InstOptions, Reg as XReg, RegKind};
use jitforge_ir::abi::CallConv;
use jitforge_ir::target::{
    Access, FactsError, Flow, ImplicitReg, InstFacts, KindSet, OpShape, OperandFact, Target,
};
use jitforge_ir::{CallConvId, Extension, PReg, Reg, RegClass, RegSet, TargetInst, View};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A legacy prefix carried by a target instruction id.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub enum Prefix {
    /// No prefix.
    #[default]
    None,
    /// `rep` / `repe` (string instructions; adds RCX as an implicit register).
    Rep,
    /// `repne` (`scas`, `cmps`; adds RCX).
    Repne,
    /// `lock` (atomic read-modify-write on memory).
    Lock,
}

impl Prefix {
    const ALL: [Prefix; 4] = [Prefix::None, Prefix::Rep, Prefix::Repne, Prefix::Lock];

    /// The name prefix of decorated ids (`rep_`, `repne_`, `lock_`; empty for none).
    pub fn name_prefix(self) -> &'static str {
        match self {
            Prefix::None => "",
            Prefix::Rep => "rep_",
            Prefix::Repne => "repne_",
            Prefix::Lock => "lock_",
        }
    }

    /// The form flag a mnemonic needs for this prefix (0 for none).
    fn form_flag(self) -> u16 {
        match self {
            Prefix::None => 0,
            Prefix::Rep => flags::REP,
            Prefix::Repne => flags::REPNE,
            Prefix::Lock => flags::LOCK,
        }
    }
}

/// An x86 target instruction: a mnemonic with its prefix and AVX-512
/// decorations, packed into a [`TargetInst`] (see the module docs).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct X86Inst {
    /// The mnemonic.
    pub mnemonic: Mnemonic,
    /// The prefix.
    pub prefix: Prefix,
    /// Whether a write mask `{k}` is the last operand.
    pub masked: bool,
    /// Whether the mask zeroes (`{z}`); only with `masked`.
    pub zeroing: bool,
    /// Whether the form's implicit registers are operands (virtual registers
    /// bound to them; see "Implicit registers as operands" in the module docs).
    pub bound: bool,
}

const PREFIX_SHIFT: u32 = 16;
const MASKED_BIT: u32 = 1 << 18;
const ZEROING_BIT: u32 = 1 << 19;
const BOUND_BIT: u32 = 1 << 20;
/// Every bit an id may have.
const ID_BITS: u32 = 0xFFFF | (3 << PREFIX_SHIFT) | MASKED_BIT | ZEROING_BIT | BOUND_BIT;

impl X86Inst {
    /// A plain mnemonic.
    pub const fn new(mnemonic: Mnemonic) -> X86Inst {
        X86Inst {
            mnemonic,
            prefix: Prefix::None,
            masked: false,
            zeroing: false,
            bound: false,
        }
    }

    /// With the implicit registers as operands.
    pub const fn with_bound_implicit(self) -> X86Inst {
        X86Inst {
            bound: true,
            ..self
        }
    }

    /// With a prefix.
    pub const fn with_prefix(self, prefix: Prefix) -> X86Inst {
        X86Inst { prefix, ..self }
    }

    /// With a write mask (`{k}`), zeroing if `zeroing` (`{k}{z}`).
    pub const fn with_mask(self, zeroing: bool) -> X86Inst {
        X86Inst {
            masked: true,
            zeroing,
            ..self
        }
    }

    /// The packed id.
    pub const fn id(self) -> TargetInst {
        let p = match self.prefix {
            Prefix::None => 0,
            Prefix::Rep => 1,
            Prefix::Repne => 2,
            Prefix::Lock => 3,
        };
        let mut v = self.mnemonic as u32 | (p << PREFIX_SHIFT);
        if self.masked {
            v |= MASKED_BIT;
            if self.zeroing {
                v |= ZEROING_BIT;
            }
        }
        if self.bound {
            v |= BOUND_BIT;
        }
        TargetInst(v)
    }

    /// The encoder options of the prefix (`rep` -> [`InstOptions::REP`]...),
    /// for the Compiler's call to the Assembler. The mask is not an option:
    /// the Compiler decorates the destination with the last operand
    /// (`Decorators::with_mask`, and `with_zeroing` if [`X86Inst::zeroing`]).
    pub fn options(self) -> InstOptions {
        match self.prefix {
            Prefix::None => InstOptions::NONE,
            Prefix::Rep => InstOptions::REP,
            Prefix::Repne => InstOptions::REPNE,
            Prefix::Lock => InstOptions::LOCK,
        }
    }

    /// Unpacks an id (structurally; whether the target accepts the
    /// combination is [`X86Target::is_valid`]).
    pub const fn from_id(id: TargetInst) -> Option<X86Inst> {
        let v = id.0;
        if v & !ID_BITS != 0 {
            return None;
        }
        let masked = v & MASKED_BIT != 0;
        let zeroing = v & ZEROING_BIT != 0;
        if zeroing && !masked {
            return None;
        }
        let Some(mnemonic) = Mnemonic::from_index((v & 0xFFFF) as usize) else {
            return None;
        };
        Some(X86Inst {
            mnemonic,
            prefix: Prefix::ALL[((v >> PREFIX_SHIFT) & 3) as usize],
            masked,
            zeroing,
            bound: v & BOUND_BIT != 0,
        })
    }
}

impl From<Mnemonic> for X86Inst {
    fn from(m: Mnemonic) -> X86Inst {
        X86Inst::new(m)
    }
}

/// Special operand semantics of some mnemonics (see the module docs).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Special {
    None,
    /// `xor r, r`: two operands, same register = write-only.
    Idiom2,
    /// `vpxor d, x, x`: sources 1 and 2 the same = not read.
    Idiom3,
    /// `vpternlogd`: the immediate decides which inputs matter.
    Ternlog,
    /// Scalar op merging the destination's upper part (element size).
    ScalarMerge(u16),
    /// `movss`/`movsd`: merge from a register, zero-extend from memory.
    ScalarMove(u16),
    /// `vzeroupper`: no implicit registers reported.
    ZeroUpper,
    /// `vzeroall`: clobbers vector registers 0..15.
    ZeroAll,
}

/// What the target precomputes per mnemonic.
#[derive(Copy, Clone, Debug)]
struct MInfo {
    mnemonic: Mnemonic,
    /// Operand positions where some form valid in the mode accepts memory.
    mem_at: u8,
    /// Whether any form is valid in the target's mode.
    valid: bool,
    /// Form flags of all forms valid in the mode, or-ed.
    flags: u16,
    flow: Flow,
    special: Special,
    /// Whether the implicit registers may be bound as operands (some form
    /// has implicit general-purpose or vector registers, and it is no branch).
    bindable: bool,
}

/// The implicit registers of a mnemonic as operands: whether they follow
/// the explicit operands (else they precede them), and their order (codes
/// of [`binding_code`]); registers not listed follow in database order.
fn binding_of(name: &str) -> (bool, &'static [u8]) {
    const DEFAULT: &[u8] = &[2, 0, 1, 3, 7, 6];
    match name {
        "cpuid" => (false, &[0, 3, 1, 2]),
        "cmpsb" | "cmpsw" | "cmpsd" | "cmpsq" => (false, &[6, 7]),
        "cmpxchg" | "cmpxchg8b" | "cmpxchg16b" | "mulx" | "blendvps" | "blendvpd" | "pblendvb"
        | "sha256rnds2" => (true, DEFAULT),
        "pcmpestri" | "pcmpestrm" | "pcmpistri" | "pcmpistrm" => (true, &[1, 32, 0, 2]),
        _ => (false, DEFAULT),
    }
}

/// The code of a register in [`binding_of`]'s orders: the general-purpose
/// number, or 32 + the vector number.
fn binding_code(p: PReg) -> u8 {
    if p.class == RegClass::VEC {
        32 + p.hw
    } else {
        p.hw
    }
}

/// One implicit register of a form, bound to an operand (see
/// [`X86Target::implicit_operands`]).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ImplicitBinding {
    /// The register the operand is fixed to.
    pub reg: PReg,
    /// Whether the instruction reads it.
    pub read: bool,
    /// Whether the instruction writes it.
    pub write: bool,
    /// The smallest register (in bytes) that holds what the instruction
    /// reads and its 8/16-bit results (`al`: 1, `ax` of `mul r8`: 2, `eax`:
    /// 4, `rax`: 8; a 32/64-bit result fits any size).
    pub min_size: u16,
    /// Whether every write is 8- or 16-bit (keeps the rest of a wider register).
    pub narrow_write: bool,
    /// Size of the widest write (`ah` counts as 2).
    pub write_size: u16,
}

impl ImplicitBinding {
    /// The access of a register of `size` bytes bound to it.
    fn access(&self, size: u16) -> Access {
        let partial = self.narrow_write && self.write_size < size;
        match (self.read, self.write) {
            (true, true) => Access::ReadWrite,
            (true, false) => Access::Read,
            (false, true) if partial => Access::PartialWrite,
            (false, true) => Access::Write,
            (false, false) => Access::None,
        }
    }
}

/// The operands of an instruction with bound implicit registers (see
/// [`X86Target::implicit_operands`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BoundOperands {
    /// The positions of the explicit operands; the others are the implicit
    /// registers, in the order of `implicit`.
    pub explicit: core::ops::Range<usize>,
    /// The implicit registers.
    pub implicit: smallvec::SmallVec<[ImplicitBinding; 4]>,
}

/// The x86 target (64-bit or 32-bit mode). Build it once and share it
/// ([`X86Target::x64`] gives a static one): construction precomputes names
/// and per-mnemonic data.
pub struct X86Target {
    mode64: bool,
    avx512: bool,
    info: Vec<MInfo>,
    /// Decorated instruction names (`rep_movsb`), sorted by id.
    names: Vec<(u32, Box<str>)>,
    by_name: HashMap<Box<str>, u32>,
    convs: Vec<CallConv>,
}

impl core::fmt::Debug for X86Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("X86Target")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

const ST_NAMES: [&str; 8] = ["st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7"];

fn mnemonic_special(name: &str) -> Special {
    match name {
        "xor" | "sub" | "sbb" | "pxor" | "xorps" | "xorpd" | "psubb" | "psubw" | "psubd"
        | "psubq" | "pcmpeqb" | "pcmpeqw" | "pcmpeqd" | "pcmpeqq" => Special::Idiom2,
        "vpxor" | "vpxord" | "vpxorq" | "vxorps" | "vxorpd" | "vpsubb" | "vpsubw" | "vpsubd"
        | "vpsubq" | "vpcmpeqb" | "vpcmpeqw" | "vpcmpeqd" | "vpcmpeqq" | "kxorb" | "kxorw"
        | "kxord" | "kxorq" | "kxnorb" | "kxnorw" | "kxnord" | "kxnorq" => Special::Idiom3,
        "vpternlogd" | "vpternlogq" => Special::Ternlog,
        "vzeroupper" => Special::ZeroUpper,
        "vzeroall" => Special::ZeroAll,
        _ => Special::None,
    }
}

/// [`mnemonic_special`], and the scalar merges the database records
/// (`Form::merge`): `movss`/`movsd` merge only from a register.
fn special_of(m: Mnemonic) -> Special {
    let merging = m.forms().iter().find(|f| f.merge(false).is_some());
    match merging {
        Some(f) => {
            let elem = u16::from(f.merge(false).unwrap_or(0));
            if f.merge(true).is_none() {
                Special::ScalarMove(elem)
            } else {
                Special::ScalarMerge(elem)
            }
        }
        None => mnemonic_special(m.name()),
    }
}

/// Whether the Compiler may choose `form` in the mode of `mode_bit`: APX
/// forms are left out (their registers r16-r31 are not allocatable yet, and
/// an NDD form such as `imul r64, r64, r/m64` would otherwise capture the
/// bound-implicit `imul hi, lo, src` on CPUs without APX).
fn in_target(form: &Form, mode_bit: u8) -> bool {
    form.modes() & mode_bit != 0 && !form.is_apx()
}

fn mnemonic_flow(name: &str) -> Flow {
    match name {
        "jmp" => Flow::Jump,
        "call" => Flow::Call,
        "ret" | "retf" | "iret" | "iretd" | "iretq" | "ud2" | "hlt" | "sysret" | "sysretq"
        | "sysexit" | "sysexitq" => Flow::Return,
        "loop" | "loope" | "loopne" | "loopz" | "loopnz" | "xbegin" => Flow::CondBranch,
        n if n.starts_with('j') => Flow::CondBranch,
        _ => Flow::Normal,
    }
}

impl X86Target {
    /// System V AMD64.
    pub const SYSV64: CallConvId = CallConvId(0);
    /// Windows x64.
    pub const WIN64: CallConvId = CallConvId(1);
    /// x64 `__vectorcall`.
    pub const VECTORCALL64: CallConvId = CallConvId(2);
    /// 32-bit cdecl.
    pub const CDECL: CallConvId = CallConvId(3);
    /// 32-bit stdcall.
    pub const STDCALL: CallConvId = CallConvId(4);
    /// 32-bit fastcall.
    pub const FASTCALL: CallConvId = CallConvId(5);
    /// 32-bit `__vectorcall`.
    pub const VECTORCALL32: CallConvId = CallConvId(6);

    /// The 64-bit target (x86-64).
    pub fn new_x64() -> X86Target {
        X86Target::build(true, false)
    }

    /// The 64-bit target for CPUs with AVX-512 (F and VL): a vector operand
    /// whose instruction also has an EVEX form accepting the same operands
    /// may use xmm16..31 (the encoder then picks the EVEX form); VEX-only
    /// instructions and legacy SSE keep 0..15.
    pub fn new_x64_avx512() -> X86Target {
        X86Target::build(true, true)
    }

    /// The 32-bit target (x86-32: 8 registers per class, 32-bit forms).
    pub fn new_x86() -> X86Target {
        X86Target::build(false, false)
    }

    /// A shared AVX-512 64-bit target ([`X86Target::new_x64_avx512`]), built on first use.
    pub fn x64_avx512() -> &'static X86Target {
        static T: OnceLock<X86Target> = OnceLock::new();
        T.get_or_init(X86Target::new_x64_avx512)
    }

    /// A shared 64-bit target, built on first use.
    pub fn x64() -> &'static X86Target {
        static T: OnceLock<X86Target> = OnceLock::new();
        T.get_or_init(X86Target::new_x64)
    }

    /// A shared 32-bit target, built on first use.
    pub fn x86() -> &'static X86Target {
        static T: OnceLock<X86Target> = OnceLock::new();
        T.get_or_init(X86Target::new_x86)
    }

    fn build(mode64: bool, avx512: bool) -> X86Target {
        let bit = if mode64 { modes::M64 } else { modes::M32 };
        let mut info = Vec::with_capacity(Mnemonic::COUNT);
        let mut names = Vec::new();
        let mut by_name = HashMap::new();
        for &m in Mnemonic::ALL.iter() {
            let mut valid = false;
            let mut fl = 0u16;
            let mut mem_at = 0u8;
            for f in m.forms().iter().filter(|f| in_target(f, bit)) {
                valid = true;
                fl |= f.flags();
                for (j, (k, _)) in explicit_kinds(f).enumerate() {
                    if kind_set(k).contains(KindSet::MEM) {
                        mem_at |= 1 << j;
                    }
                }
            }
            let name = m.name();
            let flow = mnemonic_flow(name);
            let special = special_of(m);
            let gp_count = if mode64 { 16 } else { 8 };
            let bindable = flow == Flow::Normal
                && !matches!(special, Special::ZeroUpper | Special::ZeroAll)
                && m.forms().iter().filter(|f| in_target(f, bit)).any(|f| {
                    f.implicit()
                        .iter()
                        .any(|imp| bindable_reg(imp.reg, gp_count).is_some())
                });
            info.push(MInfo {
                mnemonic: m,
                mem_at,
                valid,
                flags: fl,
                flow,
                special,
                bindable,
            });
            if !valid {
                continue;
            }
            let mut add = |x: X86Inst| {
                let mask = match (x.masked, x.zeroing) {
                    (false, _) => "",
                    (true, false) => "_k",
                    (true, true) => "_kz",
                };
                let regs = if x.bound { "_regs" } else { "" };
                let prefix = x.prefix.name_prefix();
                // Exactly the room needed: no growth while it is written,
                // no shrinking when it becomes a `Box<str>` (thousands of names).
                let mut s =
                    String::with_capacity(prefix.len() + name.len() + mask.len() + regs.len());
                for part in [prefix, name, mask, regs] {
                    s.push_str(part);
                }
                let s: Box<str> = s.into();
                by_name.insert(s.clone(), x.id().0);
                names.push((x.id().0, s));
            };
            if bindable {
                add(X86Inst::new(m).with_bound_implicit());
            }
            for p in [Prefix::Rep, Prefix::Repne, Prefix::Lock] {
                if fl & p.form_flag() != 0 {
                    add(X86Inst::new(m).with_prefix(p));
                    if bindable {
                        add(X86Inst::new(m).with_prefix(p).with_bound_implicit());
                    }
                }
            }
            if fl & flags::K != 0 {
                add(X86Inst::new(m).with_mask(false));
                if fl & flags::Z != 0 {
                    add(X86Inst::new(m).with_mask(true));
                }
            }
        }
        names.sort_unstable_by_key(|e| e.0);
        X86Target {
            mode64,
            avx512,
            info,
            names,
            by_name,
            convs: vec![
                CallConv::sysv64(),
                CallConv::win64(),
                CallConv::vectorcall64(),
                CallConv::cdecl(),
                CallConv::stdcall(),
                CallConv::fastcall(),
                CallConv::vectorcall32(),
            ],
        }
    }

    /// Whether this is the 64-bit target.
    pub fn is_64bit(&self) -> bool {
        self.mode64
    }

    /// The id of a plain mnemonic.
    pub fn inst(&self, m: Mnemonic) -> TargetInst {
        X86Inst::new(m).id()
    }

    /// Unpacks `id` if the target accepts it: the mnemonic has forms in this
    /// mode, accepts the prefix, and can take a mask (and `{z}`) if decorated.
    pub fn decode(&self, id: TargetInst) -> Option<X86Inst> {
        let v = id.0;
        if v & !ID_BITS != 0
            || (v & ZEROING_BIT != 0 && v & MASKED_BIT == 0)
            || (v & BOUND_BIT != 0 && v & MASKED_BIT != 0)
        {
            return None;
        }
        let info = self.info.get((v & 0xFFFF) as usize)?;
        let x = X86Inst {
            mnemonic: info.mnemonic,
            prefix: Prefix::ALL[((v >> PREFIX_SHIFT) & 3) as usize],
            masked: v & MASKED_BIT != 0,
            zeroing: v & ZEROING_BIT != 0,
            bound: v & BOUND_BIT != 0,
        };
        if x.bound && !info.bindable {
            return None;
        }
        let need = x.prefix.form_flag()
            | if x.masked { flags::K } else { 0 }
            | if x.zeroing { flags::Z } else { 0 };
        (info.valid && info.flags & need == need).then_some(x)
    }

    /// Whether the target accepts `id` (see [`X86Target::decode`]).
    pub fn is_valid(&self, id: TargetInst) -> bool {
        self.decode(id).is_some()
    }

    /// The database form that [`Target::inst_facts`] chooses for `id` with
    /// operands of these shapes (as for `inst_facts`: a masked id's last
    /// operand is its mask): what the Compiler encodes.
    pub fn form_for(&self, id: TargetInst, ops: &[OpShape]) -> Result<&'static Form, FactsError> {
        let x = self.decode(id).ok_or(FactsError::UnknownInst(id))?;
        if x.bound {
            return self.find_bound(x, ops).map(|(f, _)| f);
        }
        let ops = split_mask(x, ops)?;
        if ops.len() > 5 {
            return Err(self.diagnose(x, ops));
        }
        // Through the matching cache: the Compiler asks for every
        // instruction whose mnemonic has implicit registers.
        let mut shapes = [OpShape::Imm(0); 5];
        for (d, s) in shapes.iter_mut().zip(ops) {
            *d = self.norm(*s);
        }
        self.resolve(x, &shapes[..ops.len()]).map(|r| r.form)
    }

    /// The implicit registers a form takes as operands when bound (for
    /// [`X86Inst::bound`] ids): its implicit general-purpose and vector
    /// registers (not the stack pointer), merged per register, plus rcx
    /// first for a `rep`/`repne` prefix, in the mnemonic's binding order.
    pub fn implicit_of(&self, x: X86Inst, form: &Form) -> smallvec::SmallVec<[ImplicitBinding; 4]> {
        let mut regs: smallvec::SmallVec<[ImplicitBinding; 4]> = smallvec::SmallVec::new();
        if matches!(x.prefix, Prefix::Rep | Prefix::Repne) {
            regs.push(ImplicitBinding {
                reg: PReg::gp(1),
                read: true,
                write: true,
                min_size: self.ptr(),
                narrow_write: false,
                write_size: self.ptr(),
            });
        }
        let mut own: smallvec::SmallVec<[ImplicitBinding; 4]> = smallvec::SmallVec::new();
        for imp in form.implicit() {
            let Some((p, size)) = bindable_reg(imp.reg, self.gp_count()) else {
                continue;
            };
            // The database names the 64-bit pointer registers (`rdi` of
            // `stosd`); in 32-bit mode they are 32 bits wide.
            let size = if p.class == RegClass::GP {
                size.min(self.ptr())
            } else {
                size
            };
            let Some((r, w)) = reads_writes(imp.access) else {
                continue;
            };
            // `ah` is bits 8..15: reading it needs two bytes, writing it is partial.
            let high = imp.reg.kind() == RegKind::Gp8Hi;
            let read_size = if high { 2 } else { size };
            let narrow = p.class == RegClass::GP && (size < 4 || high);
            let entry = match own.iter_mut().position(|e| e.reg == p) {
                Some(i) => &mut own[i],
                None => {
                    own.push(ImplicitBinding {
                        reg: p,
                        read: false,
                        write: false,
                        min_size: 1,
                        narrow_write: true,
                        write_size: 0,
                    });
                    own.last_mut().expect("pushed")
                }
            };
            if r {
                entry.read = true;
                entry.min_size = entry.min_size.max(read_size);
            }
            if w {
                entry.write = true;
                entry.narrow_write &= narrow;
                entry.write_size = entry.write_size.max(if high { 2 } else { size });
                // An 8/16-bit result (`ax` of `mul r8`) needs a register that
                // holds it; wider writes are whole (32-bit ones zero-extend).
                if narrow {
                    entry.min_size = entry.min_size.max(if high { 2 } else { size });
                }
            }
        }
        for e in &mut own {
            if !e.write {
                e.narrow_write = false;
            }
        }
        let (_, order) = binding_of(x.mnemonic.name());
        let rank = |e: &ImplicitBinding| {
            order
                .iter()
                .position(|&c| c == binding_code(e.reg))
                .unwrap_or(order.len())
        };
        own.sort_by_key(rank);
        for e in own {
            if !regs.iter().any(|r| r.reg == e.reg) {
                regs.push(e);
            }
        }
        regs
    }

    /// For an id with bound implicit registers ([`X86Inst::bound`]): which
    /// of `ops` are the explicit operands and which implicit register each
    /// other operand stands for (the form is the one the explicit operands
    /// select).
    pub fn implicit_operands(
        &self,
        id: TargetInst,
        ops: &[OpShape],
    ) -> Result<BoundOperands, FactsError> {
        let x = self.decode(id).ok_or(FactsError::UnknownInst(id))?;
        if !x.bound {
            return Ok(BoundOperands {
                explicit: 0..ops.len(),
                implicit: smallvec::SmallVec::new(),
            });
        }
        let (form, explicit) = self.find_bound(x, ops)?;
        Ok(BoundOperands {
            explicit,
            implicit: self.implicit_of(x, form),
        })
    }

    /// Where the explicit operands of a bound id are and which implicit
    /// registers the other operands stand for, without checking those
    /// operands (see [`X86Target::implicit_operands`], which does).
    pub fn implicit_layout(
        &self,
        id: TargetInst,
        ops: &[OpShape],
    ) -> Result<BoundOperands, FactsError> {
        let x = self.decode(id).ok_or(FactsError::UnknownInst(id))?;
        let (form, explicit) = self.layout(x, ops)?;
        Ok(BoundOperands {
            explicit,
            implicit: self.implicit_of(x, form),
        })
    }

    /// How the operands of bound id `x` with form `form` are laid out, for
    /// messages: `rdx, rax, then 1 explicit operand(s)`.
    pub fn binding_text(&self, x: X86Inst, form: &Form) -> String {
        let x = x.with_bound_implicit();
        let regs: Vec<&str> = self
            .implicit_of(x, form)
            .iter()
            .filter_map(|imp| {
                [View::Q64, View::D32, View::X128]
                    .iter()
                    .find_map(|&v| self.reg_name(imp.reg, v))
            })
            .collect();
        let explicit = format!("{} explicit operand(s)", form.explicit());
        if binding_of(x.mnemonic.name()).0 {
            format!("{explicit}, then {}", regs.join(", "))
        } else {
            format!("{}, then {explicit}", regs.join(", "))
        }
    }

    /// [`X86Target::binding_text`] of the form bound id `id` takes with `ops`.
    pub fn binding_text_of(&self, id: TargetInst, ops: &[OpShape]) -> Option<String> {
        let x = self.decode(id)?;
        let (form, _) = self.layout(x, ops).ok()?;
        Some(self.binding_text(x, form))
    }

    /// The form of a bound id and the range of its explicit operands: the
    /// first count of bound operands whose explicit rest selects a form
    /// with that many implicit registers.
    fn layout(
        &self,
        x: X86Inst,
        ops: &[OpShape],
    ) -> Result<(&'static Form, core::ops::Range<usize>), FactsError> {
        let plain = X86Inst { bound: false, ..x };
        let (last, _) = binding_of(x.mnemonic.name());
        let mut shapes = [OpShape::Imm(0); 9];
        if ops.len() > shapes.len() {
            return Err(FactsError::OperandCount {
                expected: shapes.len(),
                found: ops.len(),
            });
        }
        for (d, s) in shapes.iter_mut().zip(ops) {
            *d = self.norm(*s);
        }
        let shapes = &shapes[..ops.len()];
        let mut fewest = None;
        for n in 0..=ops.len().min(5) {
            let explicit = if last { 0..ops.len() - n } else { n..ops.len() };
            let Ok((form, _, _)) = self.find(plain, &shapes[explicit.clone()]) else {
                continue;
            };
            let implicit = self.implicit_of(x, form);
            if implicit.len() == n {
                return Ok((form, explicit));
            }
            fewest.get_or_insert(explicit.len() + implicit.len());
        }
        Err(match fewest {
            Some(expected) => FactsError::OperandCount {
                expected,
                found: ops.len(),
            },
            None => self.diagnose(plain, shapes),
        })
    }

    /// [`X86Target::layout`], and each bound operand a register of the
    /// implicit register's class, no high byte, holding what is read.
    fn find_bound(
        &self,
        x: X86Inst,
        ops: &[OpShape],
    ) -> Result<(&'static Form, core::ops::Range<usize>), FactsError> {
        let (form, explicit) = self.layout(x, ops)?;
        let bound_at = if explicit.start == 0 { explicit.end } else { 0 };
        for (k, imp) in self.implicit_of(x, form).iter().enumerate() {
            let ok = match self.norm(ops[bound_at + k]) {
                OpShape::Reg {
                    class, size, high, ..
                } => class == imp.reg.class && !high && size >= imp.min_size,
                _ => false,
            };
            if !ok {
                return Err(FactsError::OperandKind {
                    index: bound_at + k,
                    expected: if imp.reg.class == RegClass::VEC {
                        KindSet::VEC
                    } else {
                        KindSet::GP
                    },
                });
            }
        }
        Ok((form, explicit))
    }

    /// The facts of a bound id: the explicit operands' as without binding,
    /// and one fixed-register fact per implicit register, which is then no
    /// longer an implicit register of the instruction.
    fn bound_facts(
        &self,
        x: X86Inst,
        all: &[OpShape],
        out: &mut InstFacts,
    ) -> Result<(), FactsError> {
        let (form, explicit) = self.find_bound(x, all)?;
        let plain = X86Inst { bound: false, ..x };
        let shapes = &all[explicit.clone()];
        let r = self.resolve(plain, shapes)?;
        self.fill(plain, &r, shapes, out);
        let implicit = self.implicit_of(x, form);
        out.implicit
            .retain(|i| !implicit.iter().any(|b| b.reg == i.reg));
        let bound_at = if explicit.start == 0 { explicit.end } else { 0 };
        let facts = implicit.iter().enumerate().map(|(k, imp)| {
            let (size, sub_view) = match all[bound_at + k] {
                OpShape::Reg { size, id, .. } => (size, !matches!(id, Reg::Virt(_, View::FULL))),
                _ => (0, false),
            };
            OperandFact {
                kinds: if imp.reg.class == RegClass::VEC {
                    KindSet::VEC
                } else {
                    KindSet::GP
                },
                // An 8/16-bit write of a view of a wider register keeps the rest.
                access: imp.access(if sub_view { u16::MAX } else { size }),
                size,
                tied: None,
                fixed: Some(imp.reg),
                allowed: u32::MAX,
            }
        });
        if bound_at == 0 {
            let tail: smallvec::SmallVec<[OperandFact; 4]> = out.ops.drain(..).collect();
            out.ops.extend(facts);
            out.ops.extend(tail);
        } else {
            out.ops.extend(facts);
        }
        Ok(())
    }

    fn mode_bit(&self) -> u8 {
        if self.mode64 { modes::M64 } else { modes::M32 }
    }

    fn gp_count(&self) -> u8 {
        if self.mode64 { 16 } else { 8 }
    }

    fn ptr(&self) -> u16 {
        if self.mode64 { 8 } else { 4 }
    }

    /// Normalizes a shape: a general-purpose register of unknown size is
    /// pointer-sized.
    fn norm(&self, sh: OpShape) -> OpShape {
        match sh {
            OpShape::Reg {
                class: RegClass::GP,
                size: 0,
                high,
                id,
            } => OpShape::Reg {
                class: RegClass::GP,
                size: if high { 1 } else { self.ptr() },
                high,
                id,
            },
            s => s,
        }
    }

    /// The form and per-operand matches for these (normalized) shapes.
    fn find(
        &self,
        x: X86Inst,
        ops: &[OpShape],
    ) -> Result<(&'static Form, [Matched; 5], bool), FactsError> {
        if ops.len() > 5 {
            return Err(self.diagnose(x, ops));
        }
        let mut shapes = [OpShape::Imm(0); 5];
        for (d, s) in shapes.iter_mut().zip(ops) {
            *d = self.norm(*s);
        }
        let shapes = &shapes[..ops.len()];
        for pass2 in [false, true] {
            if let Some((f, m)) = self.scan(x, shapes, pass2) {
                return Ok((f, m, pass2));
            }
        }
        Err(self.diagnose(x, ops))
    }

    fn scan(
        &self,
        x: X86Inst,
        shapes: &[OpShape],
        pass2: bool,
    ) -> Option<(&'static Form, [Matched; 5])> {
        self.scan_in(x, shapes, pass2, candidates(x.mnemonic, shapes), false)
    }

    fn scan_in(
        &self,
        x: X86Inst,
        shapes: &[OpShape],
        pass2: bool,
        forms: Candidates,
        evex_only: bool,
    ) -> Option<(&'static Form, [Matched; 5])> {
        let high = shapes
            .iter()
            .any(|s| matches!(s, OpShape::Reg { high: true, .. }));
        let bit = self.mode_bit();
        for form in forms {
            if !in_target(form, bit)
                || form.explicit() as usize != shapes.len()
                // ah..bh exist only without REX, REX2, VEX or EVEX.
                || (high && (form.rex_w() || form.encoding() != Encoding::Legacy))
                || (x.masked && !form.has(flags::K))
                || (x.zeroing && !form.has(flags::Z))
                || (!x.masked && form.has(flags::K_REQUIRED))
                || (x.prefix != Prefix::None && !form.has(x.prefix.form_flag()))
                || (evex_only && form.encoding() != Encoding::Evex)
            {
                continue;
            }
            let mut out = [Matched::default(); 5];
            let mut ok = true;
            for (j, (kind, idx)) in explicit_kinds(form).enumerate() {
                let Some(sh) = shapes.get(j) else {
                    ok = false;
                    break;
                };
                match self.accepts(kind, sh, form, pass2) {
                    Some(mut m) => {
                        m.db_index = idx as u8;
                        m.kind = kind;
                        out[j] = m;
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && self.phys_ok(form, shapes, high) {
                return Some((form, out));
            }
        }
        None
    }

    /// Whether the physical registers among the shapes are encodable with
    /// `form` (what the encoder checks after matching kinds): xmm16..31 only
    /// with EVEX, no REX register next to a high byte, 8 per class in
    /// 32-bit mode.
    fn phys_ok(&self, form: &Form, shapes: &[OpShape], high: bool) -> bool {
        shapes.iter().all(|sh| match *sh {
            OpShape::Reg {
                class,
                size,
                high: h,
                id: Reg::Phys(p, _),
            } => {
                p.hw < self.reg_count(class)
                    && match class {
                        RegClass::VEC => p.hw < 16 || form.encoding() == Encoding::Evex,
                        RegClass::GP => {
                            h && p.hw < 4
                                || !h
                                    && !(high && (p.hw >= 8 || size == 1 && p.hw >= 4))
                                    && (self.mode64 || size != 1 || p.hw < 4)
                        }
                        _ => true,
                    }
            }
            _ => true,
        })
    }

    /// Whether operand kind `kind` of `form` accepts shape `sh` (the
    /// encoder's `accepts`, on shapes).
    fn accepts(&self, kind: K, sh: &OpShape, form: &Form, pass2: bool) -> Option<Matched> {
        let any = Matched::default();
        let (class, size, high, id) = match *sh {
            OpShape::Reg {
                class,
                size,
                high,
                id,
            } => (Some(class), size, high, Some(id)),
            _ => (None, 0, false, None),
        };
        let gp = |n: u16| class == Some(RegClass::GP) && size == n && (!high || n == 1);
        let vec = |n: u16| {
            class == Some(RegClass::VEC)
                && !high
                && match n {
                    16 => size <= 16,
                    n => size == 0 || size == n,
                }
        };
        let mask = class == Some(RegClass::MASK) && !high;
        let mem = match *sh {
            OpShape::Mem { size } => {
                kind != K::Moffs
                    && !(kind == K::MemFar && size == 0)
                    && (size == 0 || form.mem_size() == 0 || size == form.mem_size())
            }
            _ => false,
        };
        let ok = |b: bool| b.then_some(any);
        let fixed = |rc: RegClass, n: u16, hw: u8| -> Option<Matched> {
            if class != Some(rc) || high || (rc == RegClass::GP && size != n) {
                return None;
            }
            match id {
                Some(Reg::Phys(p, _)) if p.hw == hw => Some(Matched {
                    fixed: Some(p),
                    ..any
                }),
                Some(Reg::Virt(..)) if pass2 => Some(Matched {
                    fixed: Some(PReg::new(rc, hw)),
                    ..any
                }),
                _ => None,
            }
        };
        match kind {
            K::R8M => ok(gp(1) || mem),
            K::R16M => ok(gp(2) || mem),
            K::R32M | K::R32MMpx => ok(gp(4) || mem),
            K::R64M | K::R64MMpx => ok(gp(8) || mem),
            K::XmmM => ok(vec(16) || mem),
            K::YmmM => ok(vec(32) || mem),
            K::ZmmM => ok(vec(64) || mem),
            K::KM => ok(mask || mem),
            K::MmM | K::BndM => ok(mem),
            K::R8 | K::R8Op | K::R8V => ok(gp(1)),
            K::R16 | K::R16Addr | K::R16Rm | K::R16Op | K::R16V => ok(gp(2)),
            K::R32 | K::R32Addr | K::R32Rm | K::R32Op | K::R32V => ok(gp(4)),
            K::R64 | K::R64Addr | K::R64Rm | K::R64Op | K::R64V => ok(gp(8)),
            K::K | K::KRm | K::KV => ok(mask),
            K::KPair => match id {
                Some(Reg::Phys(p, _)) if mask && p.hw % 2 == 0 => Some(any),
                Some(Reg::Virt(..)) if mask => Some(Matched {
                    allowed: 0x55,
                    ..any
                }),
                _ => None,
            },
            K::Xmm | K::XmmRm | K::XmmV | K::XmmIs4 | K::XmmIs5 => ok(vec(16)),
            K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => ok(vec(32)),
            K::Zmm | K::ZmmRm | K::ZmmV => ok(vec(64)),
            K::XmmV4 | K::ZmmV4 => {
                let n = if kind == K::XmmV4 { 16 } else { 64 };
                match id {
                    Some(Reg::Phys(p, _)) if vec(n) && p.hw % 4 == 0 => Some(any),
                    Some(Reg::Virt(..)) if vec(n) => Some(Matched {
                        allowed: 0x1111_1111,
                        ..any
                    }),
                    _ => None,
                }
            }
            K::Al => fixed(RegClass::GP, 1, 0),
            K::Cl => fixed(RegClass::GP, 1, 1),
            K::Ax => fixed(RegClass::GP, 2, 0),
            K::Dx => fixed(RegClass::GP, 2, 2),
            K::Eax => fixed(RegClass::GP, 4, 0),
            K::Rax => fixed(RegClass::GP, 8, 0),
            K::St0 => fixed(RegClass::X87, 0, 0),
            K::StOp => ok(class == Some(RegClass::X87)),
            K::Imm4
            | K::Imm8
            | K::One
            | K::Imm8Sx16
            | K::Imm8Sx32
            | K::Imm8Sx64
            | K::Imm16
            | K::Imm32
            | K::Imm32Sx64
            | K::Imm64
            | K::FarPtr16
            | K::FarPtr32 => match *sh {
                OpShape::Imm(v) => ok(imm_fits(kind, v)),
                _ => None,
            },
            K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => {
                match *sh {
                    OpShape::Label => Some(any),
                    OpShape::Imm(v) => ok(self.mode64 || u32::try_from(v).is_ok()),
                    _ => None,
                }
            }
            K::Mem
            | K::MemFar
            | K::MemMpx
            | K::MemMib
            | K::MemSib
            | K::Moffs
            | K::Vm32x
            | K::Vm32y
            | K::Vm32z
            | K::Vm64x
            | K::Vm64y
            | K::Vm64z => ok(mem),
            // No IR register class for these: segment, control, debug,
            // bound, tile, MMX registers.
            K::SReg
            | K::Es
            | K::Cs
            | K::Ss
            | K::Ds
            | K::Fs
            | K::Gs
            | K::Cr
            | K::Dr
            | K::Bnd
            | K::Tmm
            | K::TmmRm
            | K::TmmV
            | K::Mm
            | K::MmRm
            | K::None
            | K::Tr
            | K::ImplicitRsi
            | K::ImplicitEsRdi
            | K::ImplicitRdi
            | K::ImplicitXlat => None,
        }
    }

    /// The error for operands no form accepts.
    fn diagnose(&self, x: X86Inst, ops: &[OpShape]) -> FactsError {
        let bit = self.mode_bit();
        let extra = x.masked as usize;
        let forms = || x.mnemonic.forms().iter().filter(|f| in_target(f, bit));
        if !forms().any(|f| f.explicit() as usize == ops.len()) {
            return FactsError::OperandCount {
                expected: forms().map(|f| f.explicit() as usize).min().unwrap_or(0) + extra,
                found: ops.len() + extra,
            };
        }
        let mut best = 0usize;
        let mut expected = KindSet(0);
        for f in forms().filter(|f| f.explicit() as usize == ops.len()) {
            for (j, (kind, _)) in explicit_kinds(f).enumerate() {
                let Some(sh) = ops.get(j) else { break };
                if self.accepts(kind, &self.norm(*sh), f, true).is_none() {
                    if j > best {
                        best = j;
                        expected = KindSet(0);
                    }
                    if j == best {
                        expected = expected.or(kind_set(kind));
                    }
                    break;
                }
            }
        }
        FactsError::OperandKind {
            index: best,
            expected,
        }
    }

    /// The form, operand matches and foldable operands for these explicit
    /// (normalized) shapes, through a small per-thread cache keyed by
    /// everything matching depends on (not register identities nor
    /// immediate values, only which immediate kinds each value fits).
    fn resolve(&self, x: X86Inst, shapes: &[OpShape]) -> Result<Resolved, FactsError> {
        let key = self.cache_key(x, shapes);
        let slot = key.map(|k| k.slot());
        if let (Some(k), Some(i)) = (key, slot) {
            let hit = CACHE.with(|c| c.borrow().get(i, &k).copied());
            if let Some(r) = hit {
                return Ok(r);
            }
        }
        let r = self.resolve_uncached(x, shapes)?;
        if let (Some(k), Some(i)) = (key, slot) {
            CACHE.with(|c| c.borrow_mut().put(i, k, r));
        }
        Ok(r)
    }

    fn resolve_uncached(&self, x: X86Inst, shapes: &[OpShape]) -> Result<Resolved, FactsError> {
        let (form, matched, _) = self.find(x, shapes)?;
        let n_mem = shapes
            .iter()
            .filter(|s| matches!(s, OpShape::Mem { .. }))
            .count();
        let mut fold = 0u8;
        for (j, sh) in shapes.iter().enumerate() {
            if matches!(sh, OpShape::Reg { high: false, .. })
                && matched[j].fixed.is_none()
                && n_mem == 0
                && (is_rm(matched[j].kind) || self.foldable(x, shapes, j))
            {
                fold |= 1 << j;
            }
        }
        let has_vec = shapes.iter().any(|s| {
            matches!(
                s,
                OpShape::Reg {
                    class: RegClass::VEC,
                    ..
                }
            )
        });
        let vec_all = if !self.mode64 {
            0xFF
        } else if form.encoding() == Encoding::Evex
            || (self.avx512
                && has_vec
                && (self
                    .scan_in(x, shapes, false, candidates(x.mnemonic, shapes), true)
                    .is_some()
                    || self
                        .scan_in(x, shapes, true, candidates(x.mnemonic, shapes), true)
                        .is_some()))
        {
            u32::MAX
        } else {
            0xFFFF
        };
        Ok(Resolved {
            form,
            matched,
            fold,
            vec_all,
        })
    }

    fn cache_key(&self, x: X86Inst, shapes: &[OpShape]) -> Option<CacheKey> {
        if shapes.len() > 5 {
            return None;
        }
        let mut ops = [0u64; 5];
        for (o, sh) in ops.iter_mut().zip(shapes) {
            *o = op_code(sh);
        }
        Some(CacheKey {
            inst: x.id().0 | (self.mode64 as u32) << 31 | (self.avx512 as u32) << 30,
            n: shapes.len() as u8,
            ops,
        })
    }

    /// The facts cache key of the shapes of `inst` (normalized here; the
    /// mask included). Computed from the id as given, without decoding it:
    /// a key only finds facts stored under a valid id.
    fn facts_key(&self, inst: TargetInst, all: &[OpShape]) -> FactsKey {
        let mut ops = [0u64; 6];
        let mut extra = 0u64;
        let ternlog = self
            .info
            .get((inst.0 & 0xFFFF) as usize)
            .is_some_and(|i| i.special == Special::Ternlog);
        for (j, sh) in all.iter().enumerate().take(6) {
            ops[j] = op_code(&self.norm(*sh));
            if let OpShape::Reg { id, .. } = *sh {
                let sub_view = matches!(id, Reg::Virt(_, v) if v != View::FULL) as u64;
                let same = all[..j]
                    .iter()
                    .position(|o| matches!(o, OpShape::Reg { id: p, .. } if *p == id))
                    .unwrap_or(7) as u64;
                extra |= (sub_view | same << 1) << (4 * j);
            }
            if let OpShape::Imm(v) = *sh
                && ternlog
            {
                extra |= (v as u8 as u64) << 32;
            }
        }
        FactsKey {
            inst: inst.0 | (self.mode64 as u32) << 31 | (self.avx512 as u32) << 30,
            n: all.len() as u8,
            ops,
            extra,
        }
    }

    /// The facts without the facts cache (normalized shapes, `n` explicit).
    fn facts_uncached(
        &self,
        x: X86Inst,
        all: &[OpShape],
        n: usize,
        out: &mut InstFacts,
    ) -> Result<(), FactsError> {
        out.clear();
        if x.bound {
            return self.bound_facts(x, all, out);
        }
        let r = self.resolve(x, &all[..n])?;
        self.fill(x, &r, &all[..n], out);
        if x.masked {
            // `fill` pushed the mask fact from `ops.get(n)` of the explicit
            // slice, which has none: take the size from the real operand.
            if let (Some(f), Some(OpShape::Reg { size, .. })) = (out.ops.last_mut(), all.get(n)) {
                f.size = *size;
            }
        }
        Ok(())
    }

    /// What the facts of `inst` on `ops` are computed from: the decoded
    /// id, the normalized shapes, the number of explicit operands and the
    /// facts cache key (or why no form can take them).
    fn facts_input(
        &self,
        inst: TargetInst,
        ops: &[OpShape],
    ) -> Result<(X86Inst, [OpShape; 6], usize, FactsKey), FactsError> {
        let x = self.decode(inst).ok_or(FactsError::UnknownInst(inst))?;
        let explicit = split_mask(x, ops)?;
        if x.bound && ops.len() > 6 {
            return Err(FactsError::OperandCount {
                expected: 6,
                found: ops.len(),
            });
        }
        if !x.bound && explicit.len() > 5 {
            return Err(self.diagnose(x, explicit));
        }
        let mut shapes = [OpShape::Imm(0); 6];
        for (d, s) in shapes.iter_mut().zip(ops) {
            *d = self.norm(*s);
        }
        let key = self.facts_key(inst, ops);
        Ok((x, shapes, explicit.len(), key))
    }

    /// The index in `table` of the facts of `inst` on `ops` (as
    /// [`Target::inst_facts`] gives them): computed once per shape of
    /// instruction for as long as the table lives. `None` when the table is
    /// full: then the facts are in `out` (which is left alone otherwise).
    pub fn facts_index(
        &self,
        table: &mut FactsTable,
        inst: TargetInst,
        ops: &[OpShape],
        out: &mut InstFacts,
    ) -> Result<Option<u16>, FactsError> {
        // A hit needs only the key (no decoding, no normalized copy); an id
        // with bits outside the packing could alias another's key.
        if ops.len() <= 6 && inst.0 & !ID_BITS == 0 {
            let key = self.facts_key(inst, ops);
            if let Some(&index) = table.slots.get(key.slot())
                && let Some(k) = table.keys.get(index as usize)
                && *k == key
            {
                return Ok(Some(index));
            }
        }
        let (x, shapes, n, key) = self.facts_input(inst, ops)?;
        let slot = key.slot();
        out.clear();
        self.facts_uncached(x, &shapes[..ops.len()], n, out)?;
        if table.facts.len() >= FactsTable::CAPACITY {
            return Ok(None);
        }
        if table.slots.is_empty() {
            table.slots.resize(MEMO_SLOTS, u16::MAX);
        }
        if table.facts.is_empty() {
            // A new run of indexes: whatever was derived from the old ones
            // (by another table or before `clear`) is not about these.
            table.epoch = NEXT_FACTS_EPOCH.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        let index = table.facts.len() as u16;
        table.slots[slot] = index;
        table.keys.push(key);
        table.facts.push(std::mem::take(out));
        Ok(Some(index))
    }

    fn write_access(&self, base: Access, sh: &OpShape, form: &Form, x: X86Inst) -> Access {
        let OpShape::Reg {
            class, size, id, ..
        } = *sh
        else {
            return base;
        };
        let sub_view = match id {
            Reg::Virt(_, v) => v != View::FULL,
            Reg::Phys(..) => true,
        };
        let mut a = base;
        if a == Access::Write {
            if class == RegClass::GP && size < 4 && sub_view {
                a = Access::PartialWrite;
            }
            if class == RegClass::VEC && sub_view && form.encoding() == Encoding::Legacy {
                a = Access::PartialWrite;
            }
            if x.masked && !x.zeroing {
                a = Access::PartialWrite;
            }
        }
        a
    }

    fn fill(&self, x: X86Inst, r: &Resolved, ops: &[OpShape], out: &mut InstFacts) {
        let form = r.form;
        let m = &r.matched;
        let high = ops
            .iter()
            .any(|s| matches!(s, OpShape::Reg { high: true, .. }));
        let n = ops.len();
        let vec_all = r.vec_all;
        let gp_all = if self.mode64 { u32::MAX } else { 0xFF };
        for (j, sh) in ops.iter().enumerate() {
            let mt = m[j];
            let base = map_access(form.access(mt.db_index as usize), sh);
            let access = self.write_access(base, sh, form, x);
            let (size, mut allowed) = match *sh {
                OpShape::Reg {
                    class,
                    size,
                    high: h,
                    ..
                } => {
                    let mut a = mt.allowed;
                    if class == RegClass::GP {
                        a &= gp_all;
                        if h {
                            a &= 0xF;
                        } else if high || (!self.mode64 && size == 1) {
                            a &= if size == 1 { 0xF } else { 0xFF };
                        }
                    } else if class == RegClass::VEC {
                        a &= vec_all;
                    }
                    (size, a)
                }
                OpShape::Mem { size } => (size, u32::MAX),
                _ => (0, u32::MAX),
            };
            let mut kinds = sh.kind();
            if r.fold & (1 << j) != 0 {
                kinds = kinds.or(KindSet::MEM);
            }
            if mt.fixed.is_some() {
                allowed = u32::MAX;
            }
            out.ops.push(OperandFact {
                kinds,
                access,
                size,
                tied: None,
                fixed: mt.fixed,
                allowed,
            });
        }
        self.special(x, form, ops, out);
        if x.masked {
            let size = match ops.get(n) {
                Some(OpShape::Reg { size, .. }) => *size,
                _ => 0,
            };
            out.ops.push(OperandFact {
                kinds: KindSet::MASK,
                // Gathers and scatters (mask required) clear the mask
                // bits of the elements they complete.
                access: if form.has(flags::K_REQUIRED) {
                    Access::ReadWrite
                } else {
                    Access::Read
                },
                size,
                tied: None,
                fixed: None,
                allowed: 0xFE,
            });
        }
        self.implicit(x, form, out);
        out.flow = self.flow_of(x.mnemonic, ops.first());
    }

    /// Whether operand `j` (a register) could be memory in another form.
    fn foldable(&self, x: X86Inst, ops: &[OpShape], j: usize) -> bool {
        if self.info[x.mnemonic as usize].mem_at & (1 << j) == 0 {
            return false;
        }
        let mut shapes = [OpShape::Imm(0); 5];
        for (d, s) in shapes.iter_mut().zip(ops) {
            *d = self.norm(*s);
        }
        let size = match shapes[j] {
            OpShape::Reg {
                class: RegClass::GP,
                size,
                ..
            } => size,
            OpShape::Reg { .. } => 0,
            _ => return false,
        };
        shapes[j] = OpShape::Mem { size };
        self.scan(x, &shapes[..ops.len()], false).is_some()
    }

    fn special(&self, x: X86Inst, form: &Form, ops: &[OpShape], out: &mut InstFacts) {
        let same = |a: usize, b: usize| match (ops.get(a), ops.get(b)) {
            (Some(OpShape::Reg { id: p, .. }), Some(OpShape::Reg { id: q, .. })) => p == q,
            _ => false,
        };
        let full_write = |sh: &OpShape, out: &mut OperandFact| {
            out.access = self.write_access(Access::Write, sh, form, x);
        };
        match self.info[x.mnemonic as usize].special {
            Special::Idiom2 if ops.len() == 2 && same(0, 1) => {
                full_write(&ops[0], &mut out.ops[0]);
                out.ops[1].access = Access::None;
            }
            Special::Idiom3 if ops.len() == 3 && same(1, 2) => {
                out.ops[1].access = Access::None;
                out.ops[2].access = Access::None;
            }
            Special::Ternlog if ops.len() == 4 => {
                if let OpShape::Imm(v) = ops[3] {
                    let v = v as u8;
                    if v >> 4 == v & 0xF {
                        full_write(&ops[0], &mut out.ops[0]);
                    }
                    if (v & 0xCC) >> 2 == v & 0x33 && matches!(ops[1], OpShape::Reg { .. }) {
                        out.ops[1].access = Access::None;
                    }
                    if (v & 0xAA) >> 1 == v & 0x55 && matches!(ops[2], OpShape::Reg { .. }) {
                        out.ops[2].access = Access::None;
                    }
                }
            }
            Special::ScalarMove(elem) | Special::ScalarMerge(elem)
                if ops.len() == 2 && out.ops[0].access == Access::ReadWrite =>
            {
                let from_mem = matches!(ops[1], OpShape::Mem { .. });
                if let OpShape::Mem { .. } = ops[0] {
                    // A scalar store writes exactly the scalar.
                    out.ops[0].access = Access::Write;
                } else if let OpShape::Reg { size, id, .. } = ops[0] {
                    let whole_value = matches!(id, Reg::Virt(_, View::FULL)) && size <= elem;
                    out.ops[0].access = if whole_value
                        || (from_mem
                            && matches!(
                                self.info[x.mnemonic as usize].special,
                                Special::ScalarMove(_)
                            )) {
                        Access::Write
                    } else {
                        Access::PartialWrite
                    };
                }
            }
            _ => {}
        }
    }

    fn implicit(&self, x: X86Inst, form: &Form, out: &mut InstFacts) {
        let special = self.info[x.mnemonic as usize].special;
        if special == Special::ZeroUpper {
            return;
        }
        if special == Special::ZeroAll {
            let mut c = RegSet::EMPTY;
            c.set_class_mask(RegClass::VEC, if self.mode64 { 0xFFFF } else { 0xFF });
            out.clobbers = c;
            return;
        }
        for imp in form.implicit() {
            let Some((p, narrow)) = map_reg(imp.reg) else {
                continue;
            };
            if p == PReg::gp(4) || p.hw >= self.gp_count() && p.class == RegClass::GP {
                continue;
            }
            let Some((r, w)) = reads_writes(imp.access) else {
                continue;
            };
            add_implicit(&mut out.implicit, p, r, w, narrow);
        }
        if matches!(x.prefix, Prefix::Rep | Prefix::Repne) {
            add_implicit(&mut out.implicit, PReg::gp(1), true, true, false);
        }
    }

    fn flow_of(&self, m: Mnemonic, first: Option<&OpShape>) -> Flow {
        let flow = self.info.get(m as usize).map_or(Flow::Normal, |i| i.flow);
        if flow == Flow::Jump {
            match first {
                Some(OpShape::Label) | None => Flow::Jump,
                Some(OpShape::Imm(_)) => Flow::Return,
                Some(_) => Flow::IndirectJump,
            }
        } else {
            flow
        }
    }
}

/// The result of matching: the form, per-operand matches, and which
/// operands may be memory instead of a register (bit per operand).
#[derive(Copy, Clone, Debug)]
struct Resolved {
    form: &'static Form,
    matched: [Matched; 5],
    fold: u8,
    /// The allowed set of vector operands.
    vec_all: u32,
}

/// What matching depends on (see [`X86Target::resolve`]).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct CacheKey {
    inst: u32,
    n: u8,
    ops: [u64; 5],
}

impl CacheKey {
    fn slot(&self) -> usize {
        memo_slot((self.inst as u64) ^ ((self.n as u64) << 40), &self.ops)
    }
}

/// A direct-mapped per-thread memo: a key hashes to one of `MEMO_SLOTS`
/// slots and the newest entry there wins. Matching and facts repeat per
/// instruction shape, so a small table catches most lookups.
struct Memo<K, V>(Vec<Option<(K, V)>>);

const MEMO_SLOTS: usize = 512;

impl<K: PartialEq, V> Memo<K, V> {
    const fn new() -> Self {
        Memo(Vec::new())
    }

    fn get(&self, slot: usize, key: &K) -> Option<&V> {
        match self.0.get(slot) {
            Some(Some((k, v))) if k == key => Some(v),
            _ => None,
        }
    }

    fn put(&mut self, slot: usize, key: K, value: V) {
        if self.0.is_empty() {
            self.0.resize_with(MEMO_SLOTS, || None);
        }
        self.0[slot] = Some((key, value));
    }
}

/// The memo slot of a key made of `seed` and `words`.
fn memo_slot(seed: u64, words: &[u64]) -> usize {
    let mut h = seed;
    for &w in words {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    (h >> 54) as usize & (MEMO_SLOTS - 1)
}

thread_local! {
    static CACHE: core::cell::RefCell<Memo<CacheKey, Resolved>> = const { core::cell::RefCell::new(Memo::new()) };
}

/// Frees this thread's memos of resolved operand shapes and of
/// instruction facts (see [`crate::compiler::release_thread_workspace`]).
pub(crate) fn release_thread_memos() {
    let _ = CACHE.try_with(|c| c.replace(Memo::new()));
    let _ = FACTS_CACHE.try_with(|c| c.replace(Memo::new()));
}

/// What matching depends on in one operand shape: kind, class, size, high
/// byte, physical number, and for immediates which immediate kinds the
/// value fits.
fn op_code(sh: &OpShape) -> u64 {
    match *sh {
        OpShape::Reg {
            class,
            size,
            high,
            id,
        } => {
            let (phys, hw) = match id {
                Reg::Phys(p, _) => (1u64, p.hw as u64),
                Reg::Virt(..) => (0, 0),
            };
            1 | (class.0 as u64) << 3
                | (high as u64) << 11
                | phys << 12
                | hw << 13
                | (size as u64) << 21
        }
        OpShape::Mem { size } => 2 | (size as u64) << 3,
        OpShape::Imm(v) => {
            let mut fits = 0u64;
            for (i, k) in IMM_KINDS.iter().enumerate() {
                fits |= (imm_fits(*k, v) as u64) << i;
            }
            let addr32 = u32::try_from(v).is_ok() as u64;
            3 | fits << 3 | addr32 << 20
        }
        OpShape::Label => 4,
    }
}

/// What the facts of an instruction depend on: the matching key of every
/// operand (the mask too), plus per operand whether it is a sub-view of a
/// virtual register and which earlier operand names the same register,
/// plus the immediate of `vpternlog`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct FactsKey {
    inst: u32,
    n: u8,
    ops: [u64; 6],
    extra: u64,
}

impl FactsKey {
    fn slot(&self) -> usize {
        let seed = (self.inst as u64) ^ ((self.n as u64) << 40) ^ self.extra.rotate_left(17);
        memo_slot(seed, &self.ops)
    }
}

thread_local! {
    static FACTS_CACHE: core::cell::RefCell<Memo<FactsKey, InstFacts>> = const { core::cell::RefCell::new(Memo::new()) };
}

/// Copies facts into `out` field by field, so that `out` keeps its buffers
/// (a few inline elements copy faster one by one than through
/// `extend_from_slice`'s two variable-length memmoves).
fn copy_facts(facts: &InstFacts, out: &mut InstFacts) {
    out.ops.clear();
    for &op in &facts.ops {
        out.ops.push(op);
    }
    out.implicit.clear();
    for &imp in &facts.implicit {
        out.implicit.push(imp);
    }
    out.clobbers = facts.clobbers;
    out.flow = facts.flow;
}

/// Operand facts of instructions kept by their user, each computed once
/// per shape of instruction ([`X86Target::facts_index`]) and then named by
/// its index: the Compiler tags every instruction it writes with one
/// (`jitforge_ir::InstData::tag`), and the allocator's view reads the facts
/// back instead of matching the forms a second time. Unlike the target's
/// own per-thread caches, it is owned (no thread-local lookup) and an index
/// stays valid until [`FactsTable::clear`].
#[derive(Default)]
pub struct FactsTable {
    /// Hash slot -> index of the newest entry with that slot.
    slots: Vec<u16>,
    keys: Vec<FactsKey>,
    facts: Vec<InstFacts>,
    /// Names this table's current run of entries (see [`FactsTable::epoch`]).
    epoch: u64,
}

/// The next [`FactsTable::epoch`] given out (0 is never one: an empty
/// table's, which has no entries to derive anything from).
static NEXT_FACTS_EPOCH: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl FactsTable {
    /// Entries a table holds at most (indexes are `u16`, one value stays
    /// free for "no tag").
    pub const CAPACITY: usize = u16::MAX as usize - 1;

    /// The facts at `index`.
    pub fn get(&self, index: u16) -> Option<&InstFacts> {
        self.facts.get(index as usize)
    }

    /// A number that names the entries' run: entries are only ever
    /// appended, and the indexes of two tables, or of one before and after
    /// [`FactsTable::clear`], never share an epoch. So data derived from the
    /// entry at an index stays right while the epoch is the same.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// Forgets every entry (their indexes become invalid), keeping the buffers.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.keys.clear();
        self.facts.clear();
        self.epoch = 0;
    }
}

/// The immediate kinds, whose fit decides matching.
const IMM_KINDS: [K; 12] = [
    K::Imm4,
    K::Imm8,
    K::One,
    K::Imm8Sx16,
    K::Imm8Sx32,
    K::Imm8Sx64,
    K::Imm16,
    K::Imm32,
    K::Imm32Sx64,
    K::Imm64,
    K::FarPtr16,
    K::FarPtr32,
];

/// One operand's match against a form.
#[derive(Copy, Clone, Debug)]
struct Matched {
    kind: K,
    db_index: u8,
    fixed: Option<PReg>,
    allowed: u32,
}

impl Default for Matched {
    fn default() -> Self {
        Matched {
            kind: K::None,
            db_index: 0,
            fixed: None,
            allowed: u32::MAX,
        }
    }
}

/// The explicit operand kinds of a form with their database indexes.
fn explicit_kinds(form: &Form) -> impl Iterator<Item = (K, usize)> + '_ {
    form.operands()
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, k)| *k != K::None && !k.is_implicit())
        .map(|(i, k)| (k, i))
}

/// The candidate forms: through the database's signature index when every
/// shape has one register kind, else all forms.
enum Candidates {
    Indexed(core::slice::Iter<'static, u16>),
    All(core::slice::Iter<'static, Form>),
}

impl Iterator for Candidates {
    type Item = &'static Form;
    fn next(&mut self) -> Option<&'static Form> {
        match self {
            Candidates::Indexed(i) => i.next().map(|&k| db::form(k)),
            Candidates::All(i) => i.next(),
        }
    }
}

fn candidates(m: Mnemonic, shapes: &[OpShape]) -> Candidates {
    let mut sig = 0u32;
    for (i, sh) in shapes.iter().enumerate().take(5) {
        let code = match *sh {
            OpShape::Reg {
                class, size, high, ..
            } => {
                let kind = match (class, size) {
                    (RegClass::GP, 1) if high => Some(RegKind::Gp8Hi),
                    (RegClass::GP, 1) => Some(RegKind::Gp8),
                    (RegClass::GP, 2) => Some(RegKind::Gp16),
                    (RegClass::GP, 4) => Some(RegKind::Gp32),
                    (RegClass::GP, 8) => Some(RegKind::Gp64),
                    (RegClass::VEC, 1..=16) => Some(RegKind::Xmm),
                    (RegClass::VEC, 32) => Some(RegKind::Ymm),
                    (RegClass::VEC, 64) => Some(RegKind::Zmm),
                    (RegClass::MASK, _) => Some(RegKind::K),
                    (RegClass::X87, _) => Some(RegKind::St),
                    _ => None,
                };
                match kind {
                    Some(k) => k as u32 + 1,
                    None => return Candidates::All(m.forms().iter()),
                }
            }
            OpShape::Mem { .. } => 18,
            OpShape::Imm(_) => 19,
            OpShape::Label => 20,
        };
        sig |= code << (5 * i);
    }
    Candidates::Indexed(m.candidates(sig).iter())
}

/// The explicit operands of `x` (without the mask of a masked instruction,
/// which must be a mask register other than a physical k0: k0 means "no
/// mask" in an encoding).
fn split_mask(x: X86Inst, ops: &[OpShape]) -> Result<&[OpShape], FactsError> {
    if !x.masked {
        return Ok(ops);
    }
    match ops.split_last() {
        Some((
            OpShape::Reg {
                class: RegClass::MASK,
                id,
                ..
            },
            rest,
        )) if !matches!(id, Reg::Phys(p, _) if p.hw == 0) => Ok(rest),
        _ => Err(FactsError::OperandKind {
            index: ops.len().saturating_sub(1),
            expected: KindSet::MASK,
        }),
    }
}

/// Whether a kind is register-or-memory.
fn is_rm(kind: K) -> bool {
    matches!(
        kind,
        K::R8M
            | K::R16M
            | K::R32M
            | K::R32MMpx
            | K::R64M
            | K::R64MMpx
            | K::XmmM
            | K::YmmM
            | K::ZmmM
            | K::KM
    )
}

/// The IR kinds an operand kind accepts (for error messages).
fn kind_set(kind: K) -> KindSet {
    match kind {
        K::R8M | K::R16M | K::R32M | K::R32MMpx | K::R64M | K::R64MMpx => {
            KindSet::GP.or(KindSet::MEM)
        }
        K::XmmM | K::YmmM | K::ZmmM => KindSet::VEC.or(KindSet::MEM),
        K::KM => KindSet::MASK.or(KindSet::MEM),
        K::R8
        | K::R8Op
        | K::R16
        | K::R16Addr
        | K::R16Rm
        | K::R16Op
        | K::R32
        | K::R32Addr
        | K::R32Rm
        | K::R32Op
        | K::R32V
        | K::R64
        | K::R64Addr
        | K::R64Rm
        | K::R64Op
        | K::R64V
        | K::Al
        | K::Cl
        | K::Ax
        | K::Dx
        | K::Eax
        | K::Rax => KindSet::GP,
        K::K | K::KRm | K::KV | K::KPair => KindSet::MASK,
        K::Xmm
        | K::XmmRm
        | K::XmmV
        | K::XmmV4
        | K::XmmIs4
        | K::XmmIs5
        | K::Ymm
        | K::YmmRm
        | K::YmmV
        | K::YmmIs4
        | K::YmmIs5
        | K::Zmm
        | K::ZmmRm
        | K::ZmmV
        | K::ZmmV4 => KindSet::VEC,
        K::St0 | K::StOp => KindSet::X87,
        K::Imm4
        | K::Imm8
        | K::One
        | K::Imm8Sx16
        | K::Imm8Sx32
        | K::Imm8Sx64
        | K::Imm16
        | K::Imm32
        | K::Imm32Sx64
        | K::Imm64
        | K::FarPtr16
        | K::FarPtr32 => KindSet::IMM,
        K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32 => {
            KindSet::IMM.or(KindSet::LABEL)
        }
        K::Mem
        | K::MemFar
        | K::MemMpx
        | K::MemMib
        | K::MemSib
        | K::Moffs
        | K::Vm32x
        | K::Vm32y
        | K::Vm32z
        | K::Vm64x
        | K::Vm64y
        | K::Vm64z
        | K::MmM
        | K::BndM => KindSet::MEM,
        _ => KindSet(0),
    }
}

/// The database access of an explicit operand, as the IR sees it.
fn map_access(a: DbAccess, sh: &OpShape) -> Access {
    match a {
        DbAccess::Read | DbAccess::CondRead => Access::Read,
        DbAccess::Write => Access::Write,
        DbAccess::ReadWrite | DbAccess::CondWrite | DbAccess::ReadCondWrite => Access::ReadWrite,
        DbAccess::NoMemAccess => Access::None,
        DbAccess::None => match sh {
            OpShape::Mem { .. } => Access::None,
            _ => Access::Read,
        },
    }
}

/// An implicit database register as an IR register, with whether it is an
/// 8/16-bit part.
fn map_reg(r: XReg) -> Option<(PReg, bool)> {
    let id = r.id();
    match r.kind() {
        RegKind::Gp8 | RegKind::Gp16 => Some((PReg::gp(id), true)),
        RegKind::Gp8Hi => Some((PReg::gp(id), true)),
        RegKind::Gp32 | RegKind::Gp64 => Some((PReg::gp(id), false)),
        RegKind::Xmm | RegKind::Ymm | RegKind::Zmm => Some((PReg::vec(id), false)),
        RegKind::K => Some((PReg::mask(id), false)),
        _ => None,
    }
}

/// Whether an implicit register access reads and whether it writes (a
/// conditional write keeps the old value: read and written); `None` when
/// the register is not accessed.
fn reads_writes(a: DbAccess) -> Option<(bool, bool)> {
    match a {
        DbAccess::Read | DbAccess::CondRead => Some((true, false)),
        DbAccess::Write => Some((false, true)),
        DbAccess::ReadWrite | DbAccess::CondWrite | DbAccess::ReadCondWrite => Some((true, true)),
        DbAccess::None | DbAccess::NoMemAccess => None,
    }
}

/// An implicit database register that may be bound to an operand, with the
/// size of its view: general-purpose registers of the mode except the stack
/// pointer, and vector registers.
fn bindable_reg(r: XReg, gp_count: u8) -> Option<(PReg, u16)> {
    let size = match r.kind() {
        RegKind::Gp8 | RegKind::Gp8Hi => 1,
        RegKind::Gp16 => 2,
        RegKind::Gp32 => 4,
        RegKind::Gp64 => 8,
        RegKind::Xmm => 16,
        RegKind::Ymm => 32,
        RegKind::Zmm => 64,
        _ => return None,
    };
    let (p, _) = map_reg(r)?;
    (p.class == RegClass::VEC || p.hw != 4 && p.hw < gp_count).then_some((p, size))
}

fn add_implicit(
    list: &mut smallvec::SmallVec<[ImplicitReg; 2]>,
    p: PReg,
    r: bool,
    w: bool,
    narrow: bool,
) {
    // (read, full write, narrow write) of an access.
    let bits = |a: Access| match a {
        Access::Read => (true, false, false),
        Access::ReadWrite => (true, true, false),
        Access::Write => (false, true, false),
        Access::PartialWrite => (false, false, true),
        Access::None => (false, false, false),
    };
    let (mut rd, mut full, mut part) = (r, w && !narrow, w && narrow);
    let existing = list.iter().position(|e| e.reg == p);
    if let Some(i) = existing {
        let (a, b, c) = bits(list[i].access);
        rd |= a;
        full |= b;
        part |= c;
    }
    let access = match (rd, full || part) {
        (true, true) => Access::ReadWrite,
        (true, false) => Access::Read,
        (false, true) if full => Access::Write,
        (false, true) => Access::PartialWrite,
        (false, false) => Access::None,
    };
    match existing {
        Some(i) => list[i].access = access,
        None => list.push(ImplicitReg { reg: p, access }),
    }
}

impl Target for X86Target {
    fn name(&self) -> &str {
        if self.mode64 { "x86-64" } else { "x86-32" }
    }

    fn pointer_size(&self) -> u8 {
        if self.mode64 { 8 } else { 4 }
    }

    fn reg_count(&self, class: RegClass) -> u8 {
        match class {
            RegClass::GP => self.gp_count(),
            RegClass::VEC => {
                if self.mode64 {
                    32
                } else {
                    8
                }
            }
            RegClass::MASK | RegClass::X87 => 8,
            _ => 0,
        }
    }

    fn reg_name(&self, reg: PReg, view: View) -> Option<&str> {
        if reg.hw >= self.reg_count(reg.class) {
            return None;
        }
        let kind = match (reg.class, view) {
            (RegClass::GP, View::B8) => RegKind::Gp8,
            (RegClass::GP, View::H8) if reg.hw < 4 => RegKind::Gp8Hi,
            (RegClass::GP, View::W16) => RegKind::Gp16,
            (RegClass::GP, View::D32) => RegKind::Gp32,
            (RegClass::GP, View::Q64) if self.mode64 => RegKind::Gp64,
            (RegClass::VEC, View::X128) => RegKind::Xmm,
            (RegClass::VEC, View::Y256) => RegKind::Ymm,
            (RegClass::VEC, View::Z512) => RegKind::Zmm,
            (RegClass::MASK, View::FULL) => RegKind::K,
            (RegClass::X87, View::FULL) => return ST_NAMES.get(reg.hw as usize).copied(),
            _ => return None,
        };
        if !self.mode64 && kind == RegKind::Gp8 && reg.hw >= 4 {
            return None;
        }
        XReg::new(kind, reg.hw).map(|r| r.name())
    }

    fn reg_by_name(&self, name: &str) -> Option<(PReg, View)> {
        let r = XReg::from_name(name)?;
        let (p, v) = match r.kind() {
            RegKind::Gp8 => (PReg::gp(r.id()), View::B8),
            RegKind::Gp8Hi => (PReg::gp(r.id()), View::H8),
            RegKind::Gp16 => (PReg::gp(r.id()), View::W16),
            RegKind::Gp32 => (PReg::gp(r.id()), View::D32),
            RegKind::Gp64 => (PReg::gp(r.id()), View::Q64),
            RegKind::Xmm => (PReg::vec(r.id()), View::X128),
            RegKind::Ymm => (PReg::vec(r.id()), View::Y256),
            RegKind::Zmm => (PReg::vec(r.id()), View::Z512),
            RegKind::K => (PReg::mask(r.id()), View::FULL),
            RegKind::St => (PReg::new(RegClass::X87, r.id()), View::FULL),
            _ => return None,
        };
        // Only the canonical spelling, so that names print back unchanged.
        (self.reg_name(p, v) == Some(name)).then_some((p, v))
    }

    fn inst_name(&self, inst: TargetInst) -> Option<&str> {
        let x = self.decode(inst)?;
        if x == X86Inst::new(x.mnemonic) {
            return Some(x.mnemonic.name());
        }
        self.names
            .binary_search_by_key(&inst.0, |e| e.0)
            .ok()
            .map(|i| &*self.names[i].1)
    }

    fn inst_by_name(&self, name: &str) -> Option<TargetInst> {
        if let Some(m) = Mnemonic::from_name(name) {
            return self.info[m as usize].valid.then(|| X86Inst::new(m).id());
        }
        self.by_name.get(name).map(|&v| TargetInst(v))
    }

    fn inst_facts(
        &self,
        inst: TargetInst,
        ops: &[OpShape],
        out: &mut InstFacts,
    ) -> Result<(), FactsError> {
        out.clear();
        let (x, shapes, n, key) = self.facts_input(inst, ops)?;
        let all = &shapes[..ops.len()];
        let slot = key.slot();
        let hit = FACTS_CACHE.with(|c| {
            // Copied field by field so that `out` keeps its buffers.
            let c = c.borrow();
            let Some(facts) = c.get(slot, &key) else {
                return false;
            };
            copy_facts(facts, out);
            true
        });
        if hit {
            return Ok(());
        }
        self.facts_uncached(x, all, n, out)?;
        FACTS_CACHE.with(|c| c.borrow_mut().put(slot, key, out.clone()));
        Ok(())
    }

    fn inst_flow(&self, inst: TargetInst, first: Option<&OpShape>) -> Flow {
        match self.info.get((inst.0 & 0xFFFF) as usize) {
            Some(i) if inst.0 & !ID_BITS == 0 => self.flow_of(i.mnemonic, first),
            _ => Flow::Normal,
        }
    }

    fn flow_key(&self) -> Option<u64> {
        // Flows follow from the mnemonic table, which only the mode and
        // the AVX-512 switch change: every X86Target built alike answers
        // alike. The high bits ("x86" in ASCII) keep the key apart from
        // other targets' small keys.
        Some(0x7838_3600 | u64::from(self.mode64) << 1 | u64::from(self.avx512))
    }

    fn call_conv(&self, id: CallConvId) -> Option<&CallConv> {
        self.convs.get(id.0 as usize)
    }

    fn call_conv_count(&self) -> u16 {
        // Ids are u16: a target has far fewer conventions.
        self.convs.len().min(usize::from(u16::MAX)) as u16
    }

    fn extend_inst(&self, ext: Extension) -> Option<TargetInst> {
        // `movsx r32, r/m8` and `r32, r/m16` (and `movzx`) exist in both modes.
        let mnemonic = match ext {
            Extension::Sign => Mnemonic::Movsx,
            Extension::Zero => Mnemonic::Movzx,
        };
        Some(X86Inst::new(mnemonic).id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let x = X86Inst::new(Mnemonic::Vaddps).with_mask(true);
        assert_eq!(X86Inst::from_id(x.id()), Some(x));
        let t = X86Target::x64();
        assert_eq!(t.inst_name(x.id()), Some("vaddps_kz"));
        assert_eq!(t.inst_by_name("vaddps_kz"), Some(x.id()));
        let r = X86Inst::new(Mnemonic::Movsb).with_prefix(Prefix::Rep);
        assert_eq!(t.inst_name(r.id()), Some("rep_movsb"));
        assert!(!t.is_valid(X86Inst::new(Mnemonic::Add).with_prefix(Prefix::Rep).id()));
        assert_eq!(X86Inst::from_id(TargetInst(u32::MAX)), None);
    }

    /// A shape each operand kind of `form` accepts, if the IR can express one.
    fn shape_for(kind: K, form: &Form) -> Option<OpShape> {
        let v = |class, size| OpShape::Reg {
            class,
            size,
            high: false,
            id: Reg::v(jitforge_ir::VReg::from_u32(0)),
        };
        let p = |class, hw, view: View| OpShape::Reg {
            class,
            size: view.size().unwrap_or(0),
            high: false,
            id: Reg::Phys(PReg::new(class, hw), view),
        };
        Some(match kind {
            K::R8M | K::R8 | K::R8Op => v(RegClass::GP, 1),
            K::R16M | K::R16 | K::R16Addr | K::R16Rm | K::R16Op => v(RegClass::GP, 2),
            K::R32M | K::R32MMpx | K::R32 | K::R32Addr | K::R32Rm | K::R32Op | K::R32V => {
                v(RegClass::GP, 4)
            }
            K::R64M | K::R64MMpx | K::R64 | K::R64Addr | K::R64Rm | K::R64Op | K::R64V => {
                v(RegClass::GP, 8)
            }
            K::XmmM | K::Xmm | K::XmmRm | K::XmmV | K::XmmV4 | K::XmmIs4 | K::XmmIs5 => {
                v(RegClass::VEC, 16)
            }
            K::YmmM | K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 => v(RegClass::VEC, 32),
            K::ZmmM | K::Zmm | K::ZmmRm | K::ZmmV | K::ZmmV4 => v(RegClass::VEC, 64),
            K::KM | K::K | K::KRm | K::KV | K::KPair => v(RegClass::MASK, 8),
            K::Mem
            | K::MemFar
            | K::MemMpx
            | K::MemMib
            | K::MemSib
            | K::Vm32x
            | K::Vm32y
            | K::Vm32z
            | K::Vm64x
            | K::Vm64y
            | K::Vm64z
            | K::MmM
            | K::BndM => OpShape::Mem {
                size: form.mem_size(),
            },
            k if k.takes_label() => OpShape::Label,
            k if k.takes_immediate() => OpShape::Imm(1),
            K::Al => p(RegClass::GP, 0, View::B8),
            K::Cl => p(RegClass::GP, 1, View::B8),
            K::Ax => p(RegClass::GP, 0, View::W16),
            K::Dx => p(RegClass::GP, 2, View::W16),
            K::Eax => p(RegClass::GP, 0, View::D32),
            K::Rax => p(RegClass::GP, 0, View::Q64),
            K::St0 => p(RegClass::X87, 0, View::FULL),
            K::StOp => p(RegClass::X87, 1, View::FULL),
            _ => return None,
        })
    }

    /// Every form the IR can express is reachable, and the signature index
    /// gives the same answer as a scan of all forms.
    #[test]
    fn every_expressible_form_matches_through_the_index() {
        for t in [X86Target::x64(), X86Target::x86()] {
            let mut checked = 0;
            for &m in Mnemonic::ALL.iter() {
                for form in m.forms().iter().filter(|f| in_target(f, t.mode_bit())) {
                    let shapes: Option<Vec<OpShape>> = explicit_kinds(form)
                        .map(|(k, _)| shape_for(k, form))
                        .collect();
                    let Some(shapes) = shapes else { continue };
                    if form.mem_size() == 0 && explicit_kinds(form).any(|(k, _)| k == K::MemFar) {
                        continue;
                    }
                    let mut x = X86Inst::new(m);
                    if form.has(flags::K_REQUIRED) {
                        x = x.with_mask(false);
                    }
                    let indexed = t.scan(x, &shapes, false).map(|r| r.0 as *const Form);
                    let all = t
                        .scan_in(x, &shapes, false, Candidates::All(m.forms().iter()), false)
                        .map(|r| r.0 as *const Form);
                    assert_eq!(indexed, all, "{} {:?}", m.name(), form.operands());
                    assert!(indexed.is_some(), "{} {:?}", m.name(), form.operands());
                    checked += 1;
                }
            }
            assert!(checked > 3000, "{checked}");
        }
    }

    /// The caches never change an answer: random shapes (few distinct keys,
    /// so that entries are hit and collide) resolve as without them, and
    /// the facts table (`facts_index`) holds the same facts.
    #[test]
    fn cache_is_transparent() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let names = [
            "add",
            "mov",
            "shl",
            "imul",
            "movzx",
            "vaddps",
            "pxor",
            "kmovw",
            "movsd",
            "cmp",
            "lea",
            "xchg",
            "vpternlogd",
        ];
        let mut table = FactsTable::default();
        for t in [X86Target::x64(), X86Target::x86(), X86Target::x64_avx512()] {
            for _ in 0..20_000 {
                let m = Mnemonic::from_name(names[(next() % names.len() as u64) as usize])
                    .expect("known");
                let n = (next() % 4) as usize;
                let shapes: Vec<OpShape> = (0..n)
                    .map(|_| match next() % 4 {
                        0 | 1 => {
                            let class = RegClass((next() % 3) as u8);
                            let size = [1u16, 2, 4, 8, 16, 32, 64][(next() % 7) as usize];
                            let hw = (next() % 20) as u8;
                            let high = size == 1 && next() % 5 == 0;
                            let view = if high {
                                View::H8
                            } else {
                                View::low(size).unwrap_or(View::FULL)
                            };
                            OpShape::Reg {
                                class,
                                size,
                                high,
                                id: if next() % 2 == 0 {
                                    Reg::Phys(PReg::new(class, hw), view)
                                } else {
                                    Reg::Virt(jitforge_ir::VReg::from_u32(hw as u32), view)
                                },
                            }
                        }
                        2 => OpShape::Mem {
                            size: [0u16, 1, 2, 4, 8, 16][(next() % 6) as usize],
                        },
                        _ => {
                            OpShape::Imm([0i64, 1, 200, 70000, -5, 1 << 33][(next() % 6) as usize])
                        }
                    })
                    .collect();
                let x = X86Inst::new(m);
                let shapes: Vec<OpShape> = shapes.iter().map(|s| t.norm(*s)).collect();
                let a = t.resolve(x, &shapes);
                let b = t.resolve_uncached(x, &shapes);
                match (a, b) {
                    (Ok(a), Ok(b)) => {
                        assert!(core::ptr::eq(a.form, b.form));
                        assert_eq!(a.fold, b.fold);
                        assert_eq!(a.vec_all, b.vec_all);
                        for (p, q) in a.matched.iter().zip(&b.matched) {
                            assert_eq!(
                                (p.kind, p.db_index, p.fixed, p.allowed),
                                (q.kind, q.db_index, q.fixed, q.allowed)
                            );
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("{m:?} {shapes:?}: {a:?} vs {b:?}"),
                }
                // The facts cache too, masked or not.
                let mut x = x;
                let mut shapes = shapes;
                let n = shapes.len();
                let masked = x.with_mask(next() % 2 == 0);
                if next() % 3 == 0 && t.is_valid(masked.id()) {
                    x = masked;
                    shapes.push(OpShape::Reg {
                        class: RegClass::MASK,
                        size: 8,
                        high: false,
                        id: Reg::Virt(
                            jitforge_ir::VReg::from_u32((next() % 20) as u32),
                            View::FULL,
                        ),
                    });
                }
                let (mut fa, mut fb) = (InstFacts::default(), InstFacts::default());
                let a = t.inst_facts(x.id(), &shapes, &mut fa);
                let b = t.facts_uncached(x, &shapes, n, &mut fb);
                assert_eq!(a.is_ok(), b.is_ok(), "{m:?} {shapes:?}");
                if a.is_ok() {
                    assert_eq!(fa, fb, "{m:?} {shapes:?}");
                }
                // And the facts table the Compiler keeps (one for all
                // targets, as its workspace is): the same facts by index.
                let mut scratch = InstFacts::default();
                match t.facts_index(&mut table, x.id(), &shapes, &mut scratch) {
                    Ok(Some(index)) => {
                        assert!(b.is_ok(), "{m:?} {shapes:?}");
                        assert_eq!(table.get(index), Some(&fb), "{m:?} {shapes:?}");
                    }
                    Ok(None) => panic!("the table is far from full"),
                    Err(e) => assert_eq!(Err(e), b, "{m:?} {shapes:?}"),
                }
            }
        }
        assert!(!table.is_empty());
    }
}
