//! The x86 instruction database: the form record and operand-kind vocabulary
//! (written by hand, here) and the tables generated from
//! `instructions.txt` (in `generated.rs` and `generated_api.rs`, and in
//! `generated_opcodes.rs` the opcodes that code outside the general encoder
//! writes itself: the Compiler's direct encoder, branch relaxation, NOPs,
//! the encoder's REX2 rules, the JIT memory's `int3` fill).
//!
//! # The text format (`src/x86/db/instructions.txt`)
//!
//! One line per encoding form, five `|`-separated columns and an attribute column:
//!
//! ```text
//! add    | r64/m ib.sx64 | o64 rex.w 83 /0       | x64     | 64    | m=8 lock xacquire xrelease
//! vaddps | zmm zmm.v zmm/m | evex.512.0f.w0 58 /r | avx512f | 64,32 | m=64 bcst=4 n=64 nb=4 k z er
//! ```
//!
//! - **mnemonic**, lower case. The forms of a mnemonic stand together, in
//!   preference order: the encoder takes the first that accepts the operands.
//! - **operands** in Intel order. A register kind alone (`r64`, `xmm`, `k`) is
//!   ModRM.reg; `r64/m` is ModRM.rm register or memory; `.rm` ModRM.rm register
//!   only; `.v` VEX/EVEX.vvvv; `.o` the low bits of the opcode; `.is4` bits 7:4
//!   of an imm8; `.a` a register holding an address (ModRM.reg, sized by the
//!   address size); `m`, `m.far`, `m.mib`, `m.sib`, `m.mpx`, `moffs`, `vm32x`..`vm64z`
//!   memory only; `al`, `cl`, `ax`, `dx`, `eax`, `rax`, `st0`, `es`..`gs` fixed
//!   registers; `ib`, `iw`, `id`, `iq`, `ib.sx16/32/64`, `id.sx64`, `i4`, `1`
//!   immediates; `rel8`, `rel16`, `rel32`, `xrel16`, `xrel32` branch targets;
//!   `ptr16:16`, `ptr16:32` far pointers; `[rsi]`, `es:[rdi]`, `[rdi]`, `[rbx+al]`
//!   implicit memory operands of string instructions (not written in Intel syntax).
//! - **encoding**, as the Intel manual's opcode column: legacy
//!   `[fwait] [o16|o32|o64] [a16|a32|a64] [np|66|f3|f2] [rex.w] [0f|0f38|0f3a] OP [BYTE|BASE+i] [/r|/0../7]`,
//!   `OP+r` for a register in the opcode, `/r rm=N` for ModRM `11:rrr:N`, `3dnow /r SUFFIX`, or
//!   `vex|evex|xop.{128|256|512|lig}[.66|.f3|.f2].{0f|0f38|0f3a|map5|map6|m8|m9|m10}.{w0|w1|wig}[.wig32] OP ...`.
//! - **CPU features**, `+`-joined, all required.
//! - **modes**: `64`, `32` or both.
//! - APX: `r8.v`/`r16.v` (and `r32.v`, `r64.v`) are EVEX.vvvv, the new data
//!   destination; `evex.128.map4...` is EVEX map 4, with `.nd` (EVEX.ND=1) and
//!   `.nf` (EVEX.NF=1 in the encoding); `rex2` before a legacy opcode forces a
//!   REX2 prefix (`rex2 rex.w` sets REX2.W). Legacy map-0/map-1 forms take r16-r31
//!   through REX2 without saying so (the encoder knows the opcodes REX2 excludes).
//! - **attributes**: `m=N` memory size in bytes (0: any), `bcst=N` broadcast
//!   element size, `n=N`/`nb=N` EVEX disp8 scale without/with broadcast, `k`
//!   (may take a write mask), `k!` (requires one), `z`, `er`, `sae`, and the
//!   prefixes the form accepts (`lock`, `xacquire`, `xrelease`, `rep`, `repne`,
//!   `bnd`, `notrack`); `nf` (accepts `{nf}`), `scc=N` (APX conditional
//!   form with condition code N, takes `{dfv=...}`); `merge=N` (the
//!   destination's low N bytes are written, the rest kept, the old low part
//!   not read: `sqrtsd`, `cvtsi2ss`), `merge=N.reg` (so only with a register
//!   source: `movss`); `rep.implicit=rcx:rw` (registers a `rep`/`repne`
//!   prefix adds: the count of string instructions).
//!
//! Regenerate the Rust tables after editing: `cargo run -p jitforge-dbgen`.

#[rustfmt::skip]
mod generated;
#[rustfmt::skip]
mod generated_api;
// Without the Compiler feature its direct encoder's opcodes have no user.
#[cfg_attr(not(feature = "compiler"), allow(dead_code))]
#[rustfmt::skip]
pub(crate) mod generated_opcodes;

pub use generated::{CpuFeature, Mnemonic};

use super::operand::Operand;
use super::reg::{Reg, RegKind};
pub(crate) use generated::{
    FEATURE_LIST, FEATURE_SET_ENDS, FORM_INFOS, FORMS, IMPLICIT_LIST, IMPLICIT_SET_ENDS, MEM_SIZES,
    MNEMONIC_FORM_ENDS, MNEMONIC_NAME_ENDS, MNEMONIC_SIGNATURE_ENDS, MNEMONIC_TEXT, OPERAND_LISTS,
    SIGNATURE_FORM_ENDS, SIGNATURE_FORMS, SIGNATURE_KEYS,
};
pub use generated_api::{Instructions, sig};

/// What an operand slot of a form accepts. The names follow the text format
/// (`r64/m` is [`OperandKind::R64M`], `xmm.v` is [`OperandKind::XmmV`], ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum OperandKind {
    None,
    FarPtr16,
    FarPtr32,
    Moffs,
    Mem,
    MemFar,
    MemMpx,
    MemMib,
    MemSib,
    Vm32x,
    Vm64x,
    Vm32y,
    Vm64y,
    Vm32z,
    Vm64z,
    R8M,
    R16M,
    R32M,
    R32MMpx,
    R64M,
    R64MMpx,
    MmM,
    XmmM,
    YmmM,
    ZmmM,
    BndM,
    KM,
    R8,
    R8Op,
    R8V,
    R16,
    R16Addr,
    R16Rm,
    R16Op,
    R16V,
    R32,
    R32Addr,
    R32Rm,
    R32Op,
    R32V,
    R64,
    R64Addr,
    R64Rm,
    R64Op,
    R64V,
    SReg,
    K,
    KPair,
    KRm,
    KV,
    Mm,
    MmRm,
    Xmm,
    XmmRm,
    XmmV,
    XmmV4,
    XmmIs4,
    XmmIs5,
    Ymm,
    YmmRm,
    YmmV,
    YmmIs4,
    YmmIs5,
    Zmm,
    ZmmRm,
    ZmmV,
    ZmmV4,
    Cr,
    Dr,
    Tr,
    Bnd,
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
    Al,
    Cl,
    Ax,
    Dx,
    Eax,
    Rax,
    St0,
    StOp,
    Imm4,
    Imm8,
    One,
    Imm8Sx16,
    Imm8Sx32,
    Imm8Sx64,
    Imm16,
    Imm32,
    Imm32Sx64,
    Imm64,
    ImplicitRsi,
    ImplicitEsRdi,
    ImplicitRdi,
    ImplicitXlat,
    Rel8,
    Rel16,
    Rel32,
    XRel16,
    XRel32,
    Disp16,
    Disp32,
    Tmm,
    TmmRm,
    TmmV,
}

impl OperandKind {
    /// Whether the operand is implicit (not written in Intel syntax).
    pub const fn is_implicit(self) -> bool {
        matches!(
            self,
            OperandKind::ImplicitRsi
                | OperandKind::ImplicitEsRdi
                | OperandKind::ImplicitRdi
                | OperandKind::ImplicitXlat
        )
    }

    /// Whether the slot can take a memory operand.
    pub const fn takes_memory(self) -> bool {
        use OperandKind as K;
        matches!(
            self,
            K::R8M
                | K::R16M
                | K::R32M
                | K::R32MMpx
                | K::R64M
                | K::R64MMpx
                | K::MmM
                | K::XmmM
                | K::YmmM
                | K::ZmmM
                | K::BndM
                | K::KM
                | K::Mem
                | K::MemFar
                | K::MemMpx
                | K::MemMib
                | K::MemSib
                | K::Moffs
                | K::Vm32x
                | K::Vm64x
                | K::Vm32y
                | K::Vm64y
                | K::Vm32z
                | K::Vm64z
        )
    }

    /// Whether the slot takes a label: a branch target or a displacement.
    pub const fn takes_label(self) -> bool {
        use OperandKind as K;
        matches!(
            self,
            K::Rel8 | K::Rel16 | K::Rel32 | K::XRel16 | K::XRel32 | K::Disp16 | K::Disp32
        )
    }

    /// Whether the slot takes an immediate (of any value; which values
    /// fit is the encoder's business): immediates, far pointers, and the
    /// label slots, which also take an absolute target.
    pub const fn takes_immediate(self) -> bool {
        use OperandKind as K;
        self.takes_label()
            || matches!(
                self,
                K::Imm4
                    | K::Imm8
                    | K::Imm8Sx16
                    | K::Imm8Sx32
                    | K::Imm8Sx64
                    | K::One
                    | K::Imm16
                    | K::Imm32
                    | K::Imm32Sx64
                    | K::Imm64
                    | K::FarPtr16
                    | K::FarPtr32
            )
    }

    /// Whether a register of kind `rk` can go in the slot (ignoring which
    /// register of the kind a fixed slot such as `al` wants).
    pub const fn takes_register(self, rk: RegKind) -> bool {
        use OperandKind as K;
        use RegKind as R;
        match self {
            K::R8M | K::R8 | K::R8Op | K::R8V => matches!(rk, R::Gp8 | R::Gp8Hi),
            K::Al | K::Cl => matches!(rk, R::Gp8),
            K::R16M | K::R16 | K::R16Addr | K::R16Rm | K::R16Op | K::R16V | K::Ax | K::Dx => {
                matches!(rk, R::Gp16)
            }
            K::R32M | K::R32MMpx | K::R32 | K::R32Addr | K::R32Rm | K::R32Op | K::R32V | K::Eax => {
                matches!(rk, R::Gp32)
            }
            K::R64M | K::R64MMpx | K::R64 | K::R64Addr | K::R64Rm | K::R64Op | K::R64V | K::Rax => {
                matches!(rk, R::Gp64)
            }
            K::SReg | K::Es | K::Cs | K::Ss | K::Ds | K::Fs | K::Gs => matches!(rk, R::Seg),
            K::K | K::KPair | K::KRm | K::KV | K::KM => matches!(rk, R::K),
            K::Mm | K::MmRm | K::MmM => matches!(rk, R::Mm),
            K::Xmm | K::XmmRm | K::XmmV | K::XmmV4 | K::XmmIs4 | K::XmmIs5 | K::XmmM => {
                matches!(rk, R::Xmm)
            }
            K::Ymm | K::YmmRm | K::YmmV | K::YmmIs4 | K::YmmIs5 | K::YmmM => matches!(rk, R::Ymm),
            K::Zmm | K::ZmmRm | K::ZmmV | K::ZmmV4 | K::ZmmM => matches!(rk, R::Zmm),
            K::Cr => matches!(rk, R::Cr),
            K::Dr => matches!(rk, R::Dr),
            K::Bnd | K::BndM => matches!(rk, R::Bnd),
            K::Tmm | K::TmmRm | K::TmmV => matches!(rk, R::Tmm),
            K::St0 | K::StOp => matches!(rk, R::St),
            _ => false,
        }
    }

    /// Whether `op` could go in the slot: by its class only (register kind,
    /// memory, immediate, label), a superset of what the encoder accepts.
    /// The parser uses it to point at the operand no form takes, the
    /// formatter to guess the form an instruction used.
    pub const fn may_take(self, op: &Operand) -> bool {
        match op {
            Operand::Reg(r) => self.takes_register(r.kind()),
            Operand::Mem(_) => self.takes_memory(),
            Operand::Imm(_) => self.takes_immediate(),
            Operand::Label(_) => self.takes_label(),
            Operand::None => false,
        }
    }
}

/// How an instruction accesses an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Access {
    /// Not accessed (or not known).
    None = 0,
    /// Read.
    Read = 1,
    /// Written.
    Write = 2,
    /// Read and written.
    ReadWrite = 3,
    /// Read only under a condition.
    CondRead = 4,
    /// Written only under a condition (`cmovcc`).
    CondWrite = 5,
    /// Read, and written under a condition.
    ReadCondWrite = 6,
    /// A memory operand whose memory is not accessed (`lea`, `nop [m]`).
    NoMemAccess = 7,
}

impl Access {
    const fn from_bits(bits: u32) -> Access {
        match bits & 15 {
            1 => Access::Read,
            2 => Access::Write,
            3 => Access::ReadWrite,
            4 => Access::CondRead,
            5 => Access::CondWrite,
            6 => Access::ReadCondWrite,
            7 => Access::NoMemAccess,
            _ => Access::None,
        }
    }

    /// Whether the operand's old value may be read.
    pub const fn reads(self) -> bool {
        matches!(
            self,
            Access::Read | Access::ReadWrite | Access::CondRead | Access::ReadCondWrite
        )
    }

    /// Whether the operand may be written.
    pub const fn writes(self) -> bool {
        matches!(
            self,
            Access::Write | Access::ReadWrite | Access::CondWrite | Access::ReadCondWrite
        )
    }
}

/// A register an instruction uses without naming it (RDX:RAX of `div`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImplicitOperand {
    /// The register.
    pub reg: Reg,
    /// How it is accessed.
    pub access: Access,
}

/// Builds an [`ImplicitOperand`] in the generated tables.
pub(crate) const fn imp(kind: RegKind, id: u8, access: Access) -> ImplicitOperand {
    ImplicitOperand {
        reg: Reg::new_unchecked(kind, id),
        access,
    }
}

/// Status flags (RFLAGS and the x87 condition codes), as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u16);

impl Flags {
    /// The flag names, in bit order.
    pub const NAMES: [&'static str; 14] = [
        "of", "sf", "zf", "af", "pf", "cf", "df", "if", "ac", "uif", "c0", "c1", "c2", "c3",
    ];

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the flags set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// The encoding family of a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Legacy (optional prefixes, REX, opcode map escape).
    Legacy,
    /// VEX (C4/C5).
    Vex,
    /// EVEX (62).
    Evex,
    /// AMD XOP (8F).
    Xop,
    /// AMD 3DNow! (0F 0F /r suffix).
    Amd3dNow,
}

/// A mandatory prefix (or `np`: none of 66/F2/F3 allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MandatoryPrefix {
    /// None required.
    None,
    /// None of 66/F2/F3 may be present.
    Np,
    /// 66.
    P66,
    /// F3.
    PF3,
    /// F2.
    PF2,
}

/// The opcode map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpcodeMap {
    /// One-byte opcodes.
    Primary,
    /// 0F.
    M0F,
    /// 0F 38.
    M0F38,
    /// 0F 3A.
    M0F3A,
    /// EVEX map 4 (APX: legacy instructions promoted to EVEX).
    Map4,
    /// EVEX map 5.
    Map5,
    /// EVEX map 6.
    Map6,
    /// XOP map 8.
    Xop8,
    /// XOP map 9.
    Xop9,
    /// XOP map 10.
    Xop10,
    /// 3DNow! (0F 0F).
    M0F0F,
}

/// How the ModRM byte is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModRmSpec {
    /// No ModRM byte.
    None,
    /// `/r`: ModRM.reg holds a register operand.
    Reg,
    /// `/r rm=N`: ModRM.reg holds a register, mod is 11 and ModRM.rm is fixed to N.
    RegFixedRm(u8),
    /// `/digit`: ModRM.reg is a fixed opcode extension.
    Digit(u8),
    /// `+r`: the register is added to the opcode byte; no ModRM.
    OpcodeReg,
    /// A fixed second byte (`0f 01 d0`).
    Fixed(u8),
    /// An x87 register added to a fixed second byte (`d8 c0+i`).
    StPlus(u8),
}

/// VEX/EVEX/XOP W.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VexW {
    /// W0.
    W0,
    /// W1.
    W1,
    /// W ignored (encoded 0).
    Wig,
    /// W1 in 64-bit mode, ignored (encoded 0) in 32-bit mode.
    W1Wig32,
    /// W0, ignored in 32-bit mode.
    W0Wig32,
}

/// VEX/EVEX/XOP vector length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VexL {
    /// 128 bits (L=0).
    L128,
    /// 256 bits (L=1).
    L256,
    /// 512 bits (L'L=2).
    L512,
    /// Ignored (encoded 0, or the rounding mode with `{er}`).
    Lig,
}

/// Form flags (attribute column).
pub mod flags {
    /// May take a write mask.
    pub const K: u16 = 1 << 0;
    /// Requires a write mask (k1..k7).
    pub const K_REQUIRED: u16 = 1 << 1;
    /// May take `{z}`.
    pub const Z: u16 = 1 << 2;
    /// May take embedded rounding.
    pub const ER: u16 = 1 << 3;
    /// May take `{sae}`.
    pub const SAE: u16 = 1 << 4;
    /// Accepts `lock`.
    pub const LOCK: u16 = 1 << 5;
    /// Accepts `xacquire`.
    pub const XACQUIRE: u16 = 1 << 6;
    /// Accepts `xrelease`.
    pub const XRELEASE: u16 = 1 << 7;
    /// Accepts `rep`/`repe`.
    pub const REP: u16 = 1 << 8;
    /// Accepts `repne`.
    pub const REPNE: u16 = 1 << 9;
    /// Accepts `bnd`.
    pub const BND: u16 = 1 << 10;
    /// Accepts `notrack`.
    pub const NOTRACK: u16 = 1 << 11;
}

/// APX encoding details of a form (the `apx` field of [`Form`]).
pub mod apx {
    /// EVEX.ND is 1: the new-data-destination form (or `setzu`'s zero-upper).
    pub const ND: u16 = 1 << 0;
    /// EVEX.NF is 1 in the encoding itself (`cfcmov`'s store and NDD forms).
    pub const NF_FIXED: u16 = 1 << 1;
    /// Accepts `{nf}` (no flags written; sets EVEX.NF).
    pub const NF: u16 = 1 << 2;
    /// A conditional form (`ccmp`, `ctest`): the condition is in EVEX.SCC
    /// (bits 8..11 of the field) and `{dfv=...}` fills EVEX.vvvv.
    pub const SCC: u16 = 1 << 3;
    /// Legacy form that always takes a REX2 prefix (`jmpabs`, `pushp`, `popp`).
    pub const REX2: u16 = 1 << 4;
    /// Shift of the SCC condition code in the field.
    pub const SCC_SHIFT: u16 = 8;
}

/// Valid-mode bits.
pub mod modes {
    /// Valid in 64-bit mode.
    pub const M64: u8 = 1;
    /// Valid in 32-bit mode.
    pub const M32: u8 = 2;

    /// The bit of the mode `arch` runs in.
    pub const fn of(arch: crate::code::Arch) -> u8 {
        match arch {
            crate::code::Arch::X64 => M64,
            crate::code::Arch::X86 => M32,
        }
    }
}

/// One encoding form, from one database line, in 16 bytes: the fields the
/// encoder reads for every candidate are packed into one word and read
/// through the accessor methods; the operand-kind list and the record the
/// Compiler reads (accesses, implicit registers, flags, CPU features) are
/// indices into shared tables (a few hundred distinct lists and records
/// serve the 5,650 forms), so a program that only assembles does not link
/// the Compiler's part at all.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Form {
    /// The encoding fields, packed, and the index of the Compiler-facing
    /// record in `FORM_INFOS` (see [`form_bits`]).
    bits: u64,
    /// The mnemonic.
    mnemonic: Mnemonic,
    /// Index of the operand-kind list in `OPERAND_LISTS`.
    operand_list: u16,
    /// ModRM usage.
    modrm: ModRmSpec,
    /// Opcode byte (3DNow!: the suffix byte).
    opcode: u8,
    /// The [`modes`] bits and the number of explicit operands, which the
    /// encoder tests first for every candidate (see [`form_bits`]).
    shape: u8,
}

/// Where each field of [`Form`]'s packed word (`bits`) and of its
/// `shape` byte lies: (shift, width in bits).
mod form_bits {
    pub const ENCODING: (u32, u32) = (0, 3);
    pub const PREFIX: (u32, u32) = (3, 3);
    pub const MAP: (u32, u32) = (6, 4);
    /// 0, 16, 32, 64 as 0..3.
    pub const OPERAND_SIZE: (u32, u32) = (10, 2);
    /// 0, 16, 32, 64 as 0..3.
    pub const ADDRESS_SIZE: (u32, u32) = (12, 2);
    pub const REX_W: (u32, u32) = (14, 1);
    pub const FWAIT: (u32, u32) = (15, 1);
    pub const W: (u32, u32) = (16, 3);
    pub const L: (u32, u32) = (19, 2);
    /// log2 of the broadcast element size, 0 for none.
    pub const BCST: (u32, u32) = (21, 2);
    /// log2 of the disp8 scale without broadcast.
    pub const DISP8_N: (u32, u32) = (23, 3);
    /// log2 of the disp8 scale with broadcast.
    pub const DISP8_NB: (u32, u32) = (26, 2);
    /// Index of the memory operand size in `MEM_SIZES`.
    pub const MEM_SIZE: (u32, u32) = (28, 4);
    pub const FLAGS: (u32, u32) = (32, 12);
    /// The low [`super::apx`] bits (ND..REX2).
    pub const APX: (u32, u32) = (44, 5);
    /// The APX condition code (bits 8..11 of the `apx` value).
    pub const APX_SCC: (u32, u32) = (49, 4);
    /// Index of the Compiler-facing record in `FORM_INFOS`.
    pub const INFO: (u32, u32) = (53, 11);

    /// In `shape`: the [`super::modes`] bits.
    pub const MODES: (u32, u32) = (0, 2);
    /// In `shape`: the number of explicit operands.
    pub const EXPLICIT: (u32, u32) = (2, 3);
}

/// The fields of a [`Form`] as the generated table writes them, unpacked.
struct FormSpec {
    mnemonic: Mnemonic,
    operand_list: u16,
    explicit: u8,
    info: u16,
    encoding: Encoding,
    prefix: MandatoryPrefix,
    map: OpcodeMap,
    opcode: u8,
    modrm: ModRmSpec,
    operand_size: u8,
    address_size: u8,
    rex_w: bool,
    w: VexW,
    l: VexL,
    fwait: bool,
    mem_size: u16,
    bcst_size: u8,
    disp8_n: u8,
    disp8_nb: u8,
    flags: u16,
    modes: u8,
    apx: u16,
}

/// `value` placed at `field` of a packed word; fails the build (the tables
/// are constants) when it does not fit.
const fn put(field: (u32, u32), value: u64) -> u64 {
    assert!(value < 1 << field.1, "a Form field does not fit its bits");
    value << field.0
}

/// The code of an operand or address size (0, 16, 32, 64).
const fn size_code(size: u8) -> u64 {
    match size {
        0 => 0,
        16 => 1,
        32 => 2,
        64 => 3,
        _ => panic!("operand and address sizes are 0, 16, 32 or 64"),
    }
}

/// The size a [`size_code`] stands for: 8 << code is 16, 32, 64 for codes
/// 1..3, and the mask clears code 0's 8 (no table load in the encoder).
const fn size_of_code(code: u64) -> u8 {
    ((8 << code) & 0x70) as u8
}

/// log2 of a power of two.
const fn log2(value: u8) -> u64 {
    assert!(value.is_power_of_two(), "disp8 scales are powers of two");
    value.trailing_zeros() as u64
}

impl Form {
    /// Packs a form (at compile time: the generated table is a constant).
    const fn new(spec: FormSpec) -> Form {
        let mut mem_index = 0;
        while MEM_SIZES[mem_index] != spec.mem_size {
            mem_index += 1; // out of bounds fails the build: add the size to MEM_SIZES
        }
        assert!(spec.apx & !0xf1f == 0, "unknown apx bits");
        let bits = put(form_bits::ENCODING, spec.encoding as u64)
            | put(form_bits::PREFIX, spec.prefix as u64)
            | put(form_bits::MAP, spec.map as u64)
            | put(form_bits::OPERAND_SIZE, size_code(spec.operand_size))
            | put(form_bits::ADDRESS_SIZE, size_code(spec.address_size))
            | put(form_bits::REX_W, spec.rex_w as u64)
            | put(form_bits::FWAIT, spec.fwait as u64)
            | put(form_bits::W, spec.w as u64)
            | put(form_bits::L, spec.l as u64)
            | put(
                form_bits::BCST,
                if spec.bcst_size == 0 {
                    0
                } else {
                    log2(spec.bcst_size)
                },
            )
            | put(form_bits::DISP8_N, log2(spec.disp8_n))
            | put(form_bits::DISP8_NB, log2(spec.disp8_nb))
            | put(form_bits::MEM_SIZE, mem_index as u64)
            | put(form_bits::FLAGS, spec.flags as u64)
            | put(form_bits::APX, (spec.apx & 0x1f) as u64)
            | put(form_bits::APX_SCC, (spec.apx >> apx::SCC_SHIFT) as u64)
            | put(form_bits::INFO, spec.info as u64);
        let shape = put(form_bits::MODES, spec.modes as u64)
            | put(form_bits::EXPLICIT, spec.explicit as u64);
        Form {
            bits,
            mnemonic: spec.mnemonic,
            operand_list: spec.operand_list,
            modrm: spec.modrm,
            opcode: spec.opcode,
            shape: shape as u8,
        }
    }

    /// The packed field at `field`.
    #[inline(always)]
    const fn get(&self, field: (u32, u32)) -> u64 {
        (self.bits >> field.0) & ((1 << field.1) - 1)
    }

    /// The Compiler-facing record.
    fn info(&self) -> &'static FormInfo {
        FORM_INFOS
            .get(self.get(form_bits::INFO) as usize)
            .unwrap_or(&FormInfo::NONE)
    }

    /// The mnemonic.
    pub const fn mnemonic(&self) -> Mnemonic {
        self.mnemonic
    }

    /// Operand kinds: the explicit ones in Intel order, then the implicit
    /// memory operands of string instructions; padded with `None`.
    #[inline]
    pub const fn operands(&self) -> &'static [OperandKind; 5] {
        // `const` (the encoder's per-form plans are built at compile time),
        // so a plain bounds check instead of `get`.
        let index = self.operand_list as usize;
        if index < OPERAND_LISTS.len() {
            &OPERAND_LISTS[index]
        } else {
            &[OperandKind::None; 5]
        }
    }

    /// Number of explicit (written) operands (see [`Form::explicit_count`]).
    #[inline]
    pub const fn explicit(&self) -> u8 {
        (self.shape >> form_bits::EXPLICIT.0) & ((1 << form_bits::EXPLICIT.1) - 1)
    }

    /// Encoding family.
    pub const fn encoding(&self) -> Encoding {
        match self.get(form_bits::ENCODING) {
            0 => Encoding::Legacy,
            1 => Encoding::Vex,
            2 => Encoding::Evex,
            3 => Encoding::Xop,
            _ => Encoding::Amd3dNow,
        }
    }

    /// Mandatory prefix.
    pub const fn prefix(&self) -> MandatoryPrefix {
        match self.get(form_bits::PREFIX) {
            0 => MandatoryPrefix::None,
            1 => MandatoryPrefix::Np,
            2 => MandatoryPrefix::P66,
            3 => MandatoryPrefix::PF3,
            _ => MandatoryPrefix::PF2,
        }
    }

    /// Opcode map.
    pub const fn map(&self) -> OpcodeMap {
        match self.get(form_bits::MAP) {
            0 => OpcodeMap::Primary,
            1 => OpcodeMap::M0F,
            2 => OpcodeMap::M0F38,
            3 => OpcodeMap::M0F3A,
            4 => OpcodeMap::Map4,
            5 => OpcodeMap::Map5,
            6 => OpcodeMap::Map6,
            7 => OpcodeMap::Xop8,
            8 => OpcodeMap::Xop9,
            9 => OpcodeMap::Xop10,
            _ => OpcodeMap::M0F0F,
        }
    }

    /// Opcode byte (3DNow!: the suffix byte).
    pub const fn opcode(&self) -> u8 {
        self.opcode
    }

    /// ModRM usage.
    pub const fn modrm(&self) -> ModRmSpec {
        self.modrm
    }

    /// Operand size: 0, 16, 32, 64.
    pub const fn operand_size(&self) -> u8 {
        size_of_code(self.get(form_bits::OPERAND_SIZE))
    }

    /// Address size: 0, 16, 32, 64.
    pub const fn address_size(&self) -> u8 {
        size_of_code(self.get(form_bits::ADDRESS_SIZE))
    }

    /// Legacy REX.W required.
    pub const fn rex_w(&self) -> bool {
        self.get(form_bits::REX_W) != 0
    }

    /// VEX/EVEX/XOP W.
    pub const fn w(&self) -> VexW {
        match self.get(form_bits::W) {
            0 => VexW::W0,
            1 => VexW::W1,
            2 => VexW::Wig,
            3 => VexW::W1Wig32,
            _ => VexW::W0Wig32,
        }
    }

    /// VEX/EVEX/XOP L.
    pub const fn l(&self) -> VexL {
        match self.get(form_bits::L) {
            0 => VexL::L128,
            1 => VexL::L256,
            2 => VexL::L512,
            _ => VexL::Lig,
        }
    }

    /// Starts with FWAIT (9B).
    pub const fn fwait(&self) -> bool {
        self.get(form_bits::FWAIT) != 0
    }

    /// Memory operand size in bytes (0: any or none).
    #[inline]
    pub const fn mem_size(&self) -> u16 {
        MEM_SIZES[self.get(form_bits::MEM_SIZE) as usize]
    }

    /// Broadcast element size in bytes (0: no broadcast).
    pub const fn bcst_size(&self) -> u8 {
        match self.get(form_bits::BCST) {
            0 => 0,
            log2 => 1 << log2,
        }
    }

    /// EVEX disp8 scale without broadcast.
    pub const fn disp8_n(&self) -> u8 {
        1 << self.get(form_bits::DISP8_N)
    }

    /// EVEX disp8 scale with broadcast.
    pub const fn disp8_nb(&self) -> u8 {
        1 << self.get(form_bits::DISP8_NB)
    }

    /// [`flags`] bits (see also [`Form::has`]).
    pub const fn flags(&self) -> u16 {
        self.get(form_bits::FLAGS) as u16
    }

    /// [`modes`] bits.
    #[inline]
    pub const fn modes(&self) -> u8 {
        (self.shape >> form_bits::MODES.0) & ((1 << form_bits::MODES.1) - 1)
    }

    /// [`apx`] bits, 0 for every non-APX form (see also [`Form::has_apx`]).
    pub const fn apx(&self) -> u16 {
        self.get(form_bits::APX) as u16 | (self.get(form_bits::APX_SCC) as u16) << apx::SCC_SHIFT
    }

    /// The CPU features this form needs (all of them).
    pub fn cpu_features(&self) -> &'static [CpuFeature] {
        packed(
            &FEATURE_LIST,
            &FEATURE_SET_ENDS,
            self.info().features as usize,
        )
    }

    /// Number of explicit (written) operands.
    pub const fn explicit_count(&self) -> usize {
        self.explicit() as usize
    }

    /// The kinds of the explicit operands, in Intel order.
    #[inline]
    pub fn explicit_kinds(&self) -> &'static [OperandKind] {
        let kinds: &'static [OperandKind; 5] = self.operands();
        &kinds[..self.explicit_count().min(5)]
    }

    /// How operand `index` (in the order of [`Form::operands`]) is accessed.
    pub fn access(&self, index: usize) -> Access {
        if index >= 5 {
            Access::None
        } else {
            Access::from_bits(self.info().access >> (4 * index))
        }
    }

    /// The registers the form uses without naming them.
    pub fn implicit(&self) -> &'static [ImplicitOperand] {
        packed(
            &IMPLICIT_LIST,
            &IMPLICIT_SET_ENDS,
            self.info().implicit as usize,
        )
    }

    /// The registers a `rep`/`repne` prefix adds to [`Form::implicit`]
    /// (rcx, read and written, for the string instructions); empty otherwise.
    pub fn implicit_with_rep(&self) -> &'static [ImplicitOperand] {
        packed(
            &IMPLICIT_LIST,
            &IMPLICIT_SET_ENDS,
            self.info().implicit_rep as usize,
        )
    }

    /// The status flags the form reads.
    pub fn reads_flags(&self) -> Flags {
        Flags(self.info().flags_read)
    }

    /// The status flags the form writes.
    pub fn writes_flags(&self) -> Flags {
        Flags(self.info().flags_written)
    }

    /// For a scalar SSE instruction whose destination keeps everything above
    /// the element it writes, without reading that element (`sqrtsd`,
    /// `cvtsi2ss`, `movss` between registers): the element size in bytes.
    /// `from_memory` says whether the source operand is memory (`movss xmm,
    /// m32` zeroes the rest instead). `None` for every other form, including
    /// scalar arithmetic such as `addss`, which reads its destination.
    pub fn merge(&self, from_memory: bool) -> Option<u8> {
        let merge = self.info().merge;
        let size = merge & 0x7f;
        if size == 0 || from_memory && merge & 0x80 != 0 {
            None
        } else {
            Some(size)
        }
    }

    /// Whether the form has a bit from [`apx`].
    pub const fn has_apx(&self, bit: u16) -> bool {
        self.apx() & bit != 0
    }

    /// Whether the form is part of APX (needs the `apx_f` feature).
    pub fn is_apx(&self) -> bool {
        self.cpu_features().contains(&CpuFeature::ApxF)
    }

    /// Whether the form has a flag from [`flags`].
    #[inline]
    pub const fn has(&self, flag: u16) -> bool {
        self.flags() & flag != 0
    }
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Form")
            .field("mnemonic", &self.mnemonic())
            .field("operands", self.operands())
            .field("explicit", &self.explicit())
            .field("encoding", &self.encoding())
            .field("prefix", &self.prefix())
            .field("map", &self.map())
            .field("opcode", &format_args!("{:#04x}", self.opcode()))
            .field("modrm", &self.modrm())
            .field("operand_size", &self.operand_size())
            .field("address_size", &self.address_size())
            .field("rex_w", &self.rex_w())
            .field("w", &self.w())
            .field("l", &self.l())
            .field("fwait", &self.fwait())
            .field("mem_size", &self.mem_size())
            .field("bcst_size", &self.bcst_size())
            .field("disp8_n", &self.disp8_n())
            .field("disp8_nb", &self.disp8_nb())
            .field("flags", &format_args!("{:#x}", self.flags()))
            .field("modes", &self.modes())
            .field("apx", &format_args!("{:#x}", self.apx()))
            .field("info", self.info())
            .finish()
    }
}

/// The part of a form only the Compiler (and the text tools) read, shared
/// by the forms that agree on it (see [`Form`]); 12 bytes (the set indices
/// are bytes: 126 implicit-operand sets and 187 feature sets today, and the
/// generated table stops compiling when one outgrows its byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FormInfo {
    /// Operand accesses, 4 bits per operand (see [`Form::access`]).
    access: u32,
    /// Index of the implicit-operand set (see [`Form::implicit`]).
    implicit: u8,
    /// Index of the implicit registers a `rep`/`repne` prefix adds (the
    /// count register of string instructions); see [`Form::implicit_with_rep`].
    implicit_rep: u8,
    /// Flags read, as [`Flags`] bits.
    flags_read: u16,
    /// Flags written (set, cleared or left undefined), as [`Flags`] bits.
    flags_written: u16,
    /// Index into the feature-set pool.
    features: u8,
    /// Scalar merge of the destination (`merge=N` in the text): bits 0..6 the
    /// bytes written, bit 7 set when only a register source merges (from
    /// memory the rest is zeroed); 0 for none. See [`Form::merge`].
    merge: u8,
}

impl FormInfo {
    /// Nothing accessed, implicit or needed (what an index out of the table,
    /// which the generator never writes, would read).
    const NONE: FormInfo = FormInfo {
        access: 0,
        implicit: 0,
        implicit_rep: 0,
        flags_read: 0,
        flags_written: 0,
        features: 0,
        merge: 0,
    };
}

/// The form with this index in the form table.
pub(crate) fn form(index: u16) -> &'static Form {
    &FORMS[index as usize]
}

/// The operand-class signature of an instruction: 5 bits per explicit
/// operand (register kind + 1, 18 memory, 19 immediate, 20 label).
pub(crate) fn signature_of(operands: &[super::Operand]) -> u32 {
    let mut signature = 0u32;
    for (i, op) in operands.iter().enumerate().take(5) {
        let code = match op {
            super::Operand::Reg(r) => r.kind() as u32 + 1,
            super::Operand::Mem(_) => 18,
            super::Operand::Imm(_) => 19,
            super::Operand::Label(_) => 20,
            super::Operand::None => 0,
        };
        signature |= code << (5 * i);
    }
    signature
}

/// Where entry `index` of a packed table lies: the generated tables store
/// variable-length entries one after another with the end of each in `ends`
/// (no pointer per entry, so no load-time relocation per entry either).
fn packed_range(ends: &[u16], index: usize) -> std::ops::Range<usize> {
    let start = match index {
        0 => 0,
        _ => ends.get(index - 1).map_or(0, |&e| usize::from(e)),
    };
    let end = ends.get(index).map_or(start, |&e| usize::from(e));
    start..end
}

/// Entry `index` of a packed table (see [`packed_range`]).
fn packed<T>(items: &'static [T], ends: &[u16], index: usize) -> &'static [T] {
    items.get(packed_range(ends, index)).unwrap_or_default()
}

impl Mnemonic {
    /// The lower-case Intel name.
    pub fn name(self) -> &'static str {
        MNEMONIC_TEXT
            .get(packed_range(&MNEMONIC_NAME_ENDS, self as usize))
            .unwrap_or_default()
    }

    /// Every form of this mnemonic, in preference order.
    pub fn forms(self) -> &'static [Form] {
        packed(&FORMS, &MNEMONIC_FORM_ENDS, self as usize)
    }

    /// The candidate forms (indices into the form table, in preference order)
    /// for operands of these classes (see [`signature_of`]); empty when none.
    pub(crate) fn candidates(self, signature: u32) -> &'static [u16] {
        let range = packed_range(&MNEMONIC_SIGNATURE_ENDS, self as usize);
        let first = range.start;
        let keys = SIGNATURE_KEYS.get(range).unwrap_or_default();
        match keys.binary_search(&signature) {
            Ok(i) => packed(&SIGNATURE_FORMS, &SIGNATURE_FORM_ENDS, first + i),
            Err(_) => &[],
        }
    }

    /// Looks a mnemonic up by its lower-case name.
    pub fn from_name(name: &str) -> Option<Mnemonic> {
        Mnemonic::ALL
            .binary_search_by(|m| m.name().cmp(name))
            .ok()
            .map(|index| Mnemonic::ALL[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are stored packed (one string, end offsets): each must come
    /// back whole, in name order, and find its mnemonic again.
    #[test]
    fn mnemonic_names_round_trip() {
        assert_eq!(Mnemonic::Aaa.name(), "aaa");
        assert_eq!(Mnemonic::ALL[Mnemonic::COUNT - 1].name(), "xtest");
        for pair in Mnemonic::ALL.windows(2) {
            assert!(pair[0].name() < pair[1].name(), "{:?}", pair);
        }
        for m in Mnemonic::ALL {
            assert!(!m.name().is_empty());
            assert_eq!(Mnemonic::from_name(m.name()), Some(m));
        }
        assert_eq!(Mnemonic::from_name("vaddps"), Some(Mnemonic::Vaddps));
        assert_eq!(Mnemonic::from_name("not_an_instruction"), None);
    }

    /// The form record stays at 16 bytes (the size goal of a program that
    /// only assembles: 5,650 of them are linked), and the packed fields
    /// come back as the table wrote them.
    #[test]
    fn form_is_16_bytes_and_unpacks() {
        assert_eq!(std::mem::size_of::<Form>(), 16);
        assert_eq!(std::mem::size_of::<FormInfo>(), 12);
        let add = Mnemonic::Add.forms();
        let r64_imm8 = add
            .iter()
            .find(|f| f.operands()[..2] == [OperandKind::R64M, OperandKind::Imm8Sx64])
            .expect("add r64/m, ib.sx64");
        assert_eq!(
            (r64_imm8.opcode(), r64_imm8.modrm(), r64_imm8.operand_size()),
            (0x83, ModRmSpec::Digit(0), 64)
        );
        assert!(r64_imm8.rex_w() && r64_imm8.has(flags::LOCK) && r64_imm8.mem_size() == 8);
        assert_eq!(r64_imm8.modes(), modes::M64);
        assert_eq!(r64_imm8.writes_flags().0, 0x3f);
        let vaddps = Mnemonic::Vaddps.forms();
        let zmm = vaddps
            .iter()
            .find(|f| f.l() == VexL::L512)
            .expect("vaddps zmm");
        assert_eq!(
            (zmm.encoding(), zmm.w(), zmm.map()),
            (Encoding::Evex, VexW::W0, OpcodeMap::M0F)
        );
        assert_eq!(
            (
                zmm.bcst_size(),
                zmm.disp8_n(),
                zmm.disp8_nb(),
                zmm.mem_size()
            ),
            (4, 64, 4, 64)
        );
        assert!(zmm.has(flags::K) && zmm.has(flags::ER) && !zmm.has(flags::SAE));
        assert_eq!(zmm.cpu_features(), [CpuFeature::Avx512f]);
    }

    /// The operand-kind predicates the parser and formatter share: `r/m`
    /// slots take both, register slots no memory, label slots also an
    /// absolute target (an immediate).
    #[test]
    fn operand_kind_predicates() {
        use OperandKind as K;
        assert!(K::R64M.may_take(&Operand::Reg(Reg::new_unchecked(RegKind::Gp64, 0))));
        assert!(K::R64M.may_take(&Operand::Mem(crate::x86::qword_ptr(crate::x86::rax))));
        assert!(!K::R64.may_take(&Operand::Mem(crate::x86::qword_ptr(crate::x86::rax))));
        assert!(K::R8.takes_register(RegKind::Gp8Hi) && !K::Al.takes_register(RegKind::Gp8Hi));
        assert!(K::Imm8.may_take(&Operand::Imm(-1)) && !K::Xmm.may_take(&Operand::Imm(0)));
        assert!(K::Rel32.takes_label() && K::Rel32.takes_immediate());
        assert!(!K::Imm32.takes_label() && !K::None.may_take(&Operand::None));
        assert_eq!(modes::of(crate::code::Arch::X86), modes::M32);
    }

    /// `Form::explicit_kinds` is what Intel syntax writes: no empty or
    /// implicit slot among them (the parser and formatter match operands
    /// against it position by position).
    #[test]
    fn explicit_kinds_are_the_written_operands() {
        for form in FORMS.iter() {
            let written: Vec<OperandKind> = form
                .operands()
                .iter()
                .copied()
                .filter(|k| *k != OperandKind::None && !k.is_implicit())
                .collect();
            assert_eq!(form.explicit_kinds(), written, "{form:?}");
        }
    }
}
