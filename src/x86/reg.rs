//! x86 registers: the untyped [`Reg`] the encoder works on, the typed register
//! structs the typed API checks at compile time (`Gp64`, `Xmm`, `KReg`, ...),
//! and a constant for every register (`rax`, `xmm17`, `k1`, `st3`, `tmm0`, ...).
//!
//! Register constants are lower case, as in Intel syntax and AsmJit.
//! APX's extended general-purpose registers are `r16`..`r31` (`r16d`,
//! `r16w`, `r16b` for the narrower views); they exist in 64-bit mode only and
//! need the `apx_f` CPU feature.

use std::fmt;

/// What kind of register a [`Reg`] is; its size follows from the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RegKind {
    /// 8-bit low general-purpose register (`al`..`r31b`, `spl`..`dil`; `r16b`..`r31b` are APX).
    Gp8,
    /// 8-bit high register `ah`, `ch`, `dh`, `bh` (id 0..3); not encodable with REX.
    Gp8Hi,
    /// 16-bit general-purpose register.
    Gp16,
    /// 32-bit general-purpose register.
    Gp32,
    /// 64-bit general-purpose register.
    Gp64,
    /// Segment register (`es`=0, `cs`, `ss`, `ds`, `fs`, `gs`=5).
    Seg,
    /// Control register `cr0`..`cr15`.
    Cr,
    /// Debug register `dr0`..`dr15`.
    Dr,
    /// x87 stack register `st0`..`st7`.
    St,
    /// MMX register `mm0`..`mm7`.
    Mm,
    /// 128-bit vector register `xmm0`..`xmm31`.
    Xmm,
    /// 256-bit vector register `ymm0`..`ymm31`.
    Ymm,
    /// 512-bit vector register `zmm0`..`zmm31`.
    Zmm,
    /// AVX-512 mask register `k0`..`k7`.
    K,
    /// AMX tile register `tmm0`..`tmm7`.
    Tmm,
    /// MPX bound register `bnd0`..`bnd3`.
    Bnd,
    /// The instruction pointer, only as a memory base (`[rip + disp]`).
    Rip,
}

impl RegKind {
    /// Size of the register in bytes (0 for `rip`).
    pub const fn size(self) -> u32 {
        match self {
            RegKind::Gp8 | RegKind::Gp8Hi => 1,
            RegKind::Gp16 | RegKind::Seg => 2,
            RegKind::Gp32 => 4,
            RegKind::Gp64 | RegKind::Cr | RegKind::Dr | RegKind::Mm | RegKind::K => 8,
            RegKind::St => 10,
            RegKind::Xmm | RegKind::Bnd => 16,
            RegKind::Ymm => 32,
            RegKind::Zmm => 64,
            RegKind::Tmm => 1024,
            RegKind::Rip => 0,
        }
    }

    /// Number of registers of this kind.
    pub const fn count(self) -> u8 {
        match self {
            // r16..r31 are APX's extended GPRs (64-bit mode, REX2 or EVEX).
            RegKind::Gp8 | RegKind::Gp16 | RegKind::Gp32 | RegKind::Gp64 => 32,
            RegKind::Gp8Hi | RegKind::Bnd => 4,
            RegKind::Seg => 6,
            RegKind::Cr | RegKind::Dr => 16,
            RegKind::St | RegKind::Mm | RegKind::K | RegKind::Tmm => 8,
            RegKind::Xmm | RegKind::Ymm | RegKind::Zmm => 32,
            RegKind::Rip => 1,
        }
    }

    /// Whether this is a general-purpose register kind.
    pub const fn is_gp(self) -> bool {
        matches!(
            self,
            RegKind::Gp8 | RegKind::Gp8Hi | RegKind::Gp16 | RegKind::Gp32 | RegKind::Gp64
        )
    }

    /// Whether this is an SSE/AVX vector register kind.
    pub const fn is_vec(self) -> bool {
        matches!(self, RegKind::Xmm | RegKind::Ymm | RegKind::Zmm)
    }
}

/// An AVX-512 write mask and zeroing decoration on a destination operand:
/// bits 0..2 the mask register (0 = none), bit 3 zeroing, bit 4 set when
/// the mask given was a virtual register (which a decoration cannot name:
/// the Compiler takes virtual masks through `Compiler::k` and reports this).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Decorators(u8);

impl Decorators {
    /// No mask, merging.
    pub const NONE: Decorators = Decorators(0);

    /// The mask register id (1..7), or 0 for none.
    pub const fn mask(self) -> u8 {
        self.0 & 7
    }

    /// Whether `{z}` (zeroing-masking) is set.
    pub const fn zeroing(self) -> bool {
        self.0 & 8 != 0
    }

    /// With the mask register set (`{k1}`).
    pub const fn with_mask(self, k: KReg) -> Decorators {
        let virtual_mask = if k.2 != 0 { 16 } else { 0 };
        Decorators((self.0 & !(7 | 16)) | (k.0 & 7) | virtual_mask)
    }

    /// Whether the mask given was a virtual register (see the type's docs).
    pub const fn virtual_mask(self) -> bool {
        self.0 & 16 != 0
    }

    /// With `{z}` set.
    pub const fn with_zeroing(self) -> Decorators {
        Decorators(self.0 | 8)
    }

    /// Whether any decoration is present.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Any x86 register, untyped: a kind, an id, and the AVX-512 decorations of a
/// destination (`zmm0 {k1}{z}`). Small and `Copy`.
///
/// A register may also be *virtual* (made by the Compiler, numbered from
/// 0 upward in its own space); the Assembler rejects virtual registers, the
/// Compiler assigns them physical ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    kind: RegKind,
    id: u8,
    decorators: Decorators,
    /// 0 for a physical register, virtual index + 1 otherwise.
    virt: u32,
}

impl Reg {
    /// Makes a register; `None` when `id` is out of range for `kind`.
    pub const fn new(kind: RegKind, id: u8) -> Option<Reg> {
        if id < kind.count() {
            Some(Reg {
                kind,
                id,
                decorators: Decorators::NONE,
                virt: 0,
            })
        } else {
            None
        }
    }

    pub(crate) const fn new_unchecked(kind: RegKind, id: u8) -> Reg {
        Reg {
            kind,
            id,
            decorators: Decorators::NONE,
            virt: 0,
        }
    }

    /// A virtual register of `kind` with this index (for the Compiler).
    pub const fn new_virtual(kind: RegKind, index: u32) -> Reg {
        Reg {
            kind,
            id: 0,
            decorators: Decorators::NONE,
            virt: index.saturating_add(1),
        }
    }

    /// Whether this is a virtual register.
    pub const fn is_virtual(self) -> bool {
        self.virt != 0
    }

    /// The virtual register's index, if virtual.
    pub const fn virtual_index(self) -> Option<u32> {
        if self.virt == 0 {
            None
        } else {
            Some(self.virt - 1)
        }
    }

    /// The same register as another kind (a sub-register view of a virtual
    /// register, or `eax` for `rax`); `None` when the id does not exist there.
    pub const fn with_kind(self, kind: RegKind) -> Option<Reg> {
        if self.virt == 0 && self.id >= kind.count() {
            return None;
        }
        Some(Reg { kind, ..self })
    }

    /// The register kind.
    pub const fn kind(self) -> RegKind {
        self.kind
    }

    /// The register number (for `ah`..`bh`: 0..3).
    pub const fn id(self) -> u8 {
        self.id
    }

    /// Size in bytes.
    pub const fn size(self) -> u32 {
        self.kind.size()
    }

    /// The AVX-512 decorations.
    pub const fn decorators(self) -> Decorators {
        self.decorators
    }

    /// The same register with other decorations.
    pub const fn with_decorators(self, decorators: Decorators) -> Reg {
        Reg { decorators, ..self }
    }

    /// The number the encoder puts in ModRM/REX/VEX/EVEX fields (`ah` is 4).
    pub const fn hw_id(self) -> u8 {
        match self.kind {
            RegKind::Gp8Hi => self.id + 4,
            _ => self.id,
        }
    }

    /// The name in Intel syntax (`rax`, `r9d`, `ah`, `xmm17`, `st(3)`...).
    // Not inlined: rustc would otherwise copy this small function, with its
    // tables of names (each entry a load-time relocation), into every
    // codegen unit that prints a register (three copies in a release build).
    #[inline(never)]
    pub fn name(self) -> &'static str {
        let slots: &'static [[u8; NAME_SLOT]] = match self.kind {
            RegKind::Gp8 => &GP8_SLOTS,
            RegKind::Gp8Hi => &GP8HI_SLOTS,
            RegKind::Gp16 => &GP16_SLOTS,
            RegKind::Gp32 => &GP32_SLOTS,
            RegKind::Gp64 => &GP64_SLOTS,
            RegKind::Seg => &SEG_SLOTS,
            RegKind::Cr => &CR_SLOTS,
            RegKind::Dr => &DR_SLOTS,
            RegKind::St => &ST_SLOTS,
            RegKind::Mm => &MM_SLOTS,
            RegKind::Xmm => &XMM_SLOTS,
            RegKind::Ymm => &YMM_SLOTS,
            RegKind::Zmm => &ZMM_SLOTS,
            RegKind::K => &K_SLOTS,
            RegKind::Tmm => &TMM_SLOTS,
            RegKind::Bnd => &BND_SLOTS,
            RegKind::Rip => return "rip",
        };
        let slot = slots.get(usize::from(self.id)).unwrap_or(&[0; NAME_SLOT]);
        let len = slot.iter().position(|&b| b == 0).unwrap_or(NAME_SLOT);
        std::str::from_utf8(&slot[..len]).unwrap_or_default()
    }

    /// Looks a register up by its Intel name (case-insensitive; `st(3)` and `st3` both work).
    pub fn from_name(name: &str) -> Option<Reg> {
        let lower = name.to_ascii_lowercase();
        let n = lower.as_str();
        let find = |names: &[&str], kind: RegKind| {
            names
                .iter()
                .position(|x| *x == n)
                .map(|i| Reg::new_unchecked(kind, i as u8))
        };
        find(&GP64_NAMES, RegKind::Gp64)
            .or_else(|| find(&GP32_NAMES, RegKind::Gp32))
            .or_else(|| find(&GP16_NAMES, RegKind::Gp16))
            .or_else(|| find(&GP8_NAMES, RegKind::Gp8))
            .or_else(|| find(&GP8HI_NAMES, RegKind::Gp8Hi))
            .or_else(|| find(&XMM_NAMES, RegKind::Xmm))
            .or_else(|| find(&YMM_NAMES, RegKind::Ymm))
            .or_else(|| find(&ZMM_NAMES, RegKind::Zmm))
            .or_else(|| find(&K_NAMES, RegKind::K))
            .or_else(|| find(&MM_NAMES, RegKind::Mm))
            .or_else(|| find(&SEG_NAMES, RegKind::Seg))
            .or_else(|| find(&CR_NAMES, RegKind::Cr))
            .or_else(|| find(&DR_NAMES, RegKind::Dr))
            .or_else(|| find(&TMM_NAMES, RegKind::Tmm))
            .or_else(|| find(&BND_NAMES, RegKind::Bnd))
            .or_else(|| {
                find(
                    &["st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7"],
                    RegKind::St,
                )
            })
            .or_else(|| find(&ST_NAMES, RegKind::St))
            .or_else(|| (n == "st").then_some(Reg::new_unchecked(RegKind::St, 0)))
            .or_else(|| (n == "rip").then_some(Reg::new_unchecked(RegKind::Rip, 0)))
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.virtual_index() {
            Some(index) => write!(f, "%{index}")?,
            None => f.write_str(self.name())?,
        }
        if self.decorators.mask() != 0 {
            write!(f, " {{k{}}}", self.decorators.mask())?;
        }
        if self.decorators.zeroing() {
            f.write_str("{z}")?;
        }
        Ok(())
    }
}

const GP8_NAMES: [&str; 32] = [
    "al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b",
    "r13b", "r14b", "r15b", "r16b", "r17b", "r18b", "r19b", "r20b", "r21b", "r22b", "r23b", "r24b",
    "r25b", "r26b", "r27b", "r28b", "r29b", "r30b", "r31b",
];
const GP16_NAMES: [&str; 32] = [
    "ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w",
    "r14w", "r15w", "r16w", "r17w", "r18w", "r19w", "r20w", "r21w", "r22w", "r23w", "r24w", "r25w",
    "r26w", "r27w", "r28w", "r29w", "r30w", "r31w",
];
const GP32_NAMES: [&str; 32] = [
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d",
    "r13d", "r14d", "r15d", "r16d", "r17d", "r18d", "r19d", "r20d", "r21d", "r22d", "r23d", "r24d",
    "r25d", "r26d", "r27d", "r28d", "r29d", "r30d", "r31d",
];
const GP64_NAMES: [&str; 32] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26",
    "r27", "r28", "r29", "r30", "r31",
];
const CR_NAMES: [&str; 16] = [
    "cr0", "cr1", "cr2", "cr3", "cr4", "cr5", "cr6", "cr7", "cr8", "cr9", "cr10", "cr11", "cr12",
    "cr13", "cr14", "cr15",
];
const DR_NAMES: [&str; 16] = [
    "dr0", "dr1", "dr2", "dr3", "dr4", "dr5", "dr6", "dr7", "dr8", "dr9", "dr10", "dr11", "dr12",
    "dr13", "dr14", "dr15",
];
macro_rules! vec_names {
    ($p:literal) => {
        [
            concat!($p, "0"),
            concat!($p, "1"),
            concat!($p, "2"),
            concat!($p, "3"),
            concat!($p, "4"),
            concat!($p, "5"),
            concat!($p, "6"),
            concat!($p, "7"),
            concat!($p, "8"),
            concat!($p, "9"),
            concat!($p, "10"),
            concat!($p, "11"),
            concat!($p, "12"),
            concat!($p, "13"),
            concat!($p, "14"),
            concat!($p, "15"),
            concat!($p, "16"),
            concat!($p, "17"),
            concat!($p, "18"),
            concat!($p, "19"),
            concat!($p, "20"),
            concat!($p, "21"),
            concat!($p, "22"),
            concat!($p, "23"),
            concat!($p, "24"),
            concat!($p, "25"),
            concat!($p, "26"),
            concat!($p, "27"),
            concat!($p, "28"),
            concat!($p, "29"),
            concat!($p, "30"),
            concat!($p, "31"),
        ]
    };
}
const XMM_NAMES: [&str; 32] = vec_names!("xmm");
const YMM_NAMES: [&str; 32] = vec_names!("ymm");
const ZMM_NAMES: [&str; 32] = vec_names!("zmm");

const GP8HI_NAMES: [&str; 4] = ["ah", "ch", "dh", "bh"];
const SEG_NAMES: [&str; 6] = ["es", "cs", "ss", "ds", "fs", "gs"];
const ST_NAMES: [&str; 8] = [
    "st(0)", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
];
const MM_NAMES: [&str; 8] = ["mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7"];
const K_NAMES: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
const TMM_NAMES: [&str; 8] = [
    "tmm0", "tmm1", "tmm2", "tmm3", "tmm4", "tmm5", "tmm6", "tmm7",
];
const BND_NAMES: [&str; 4] = ["bnd0", "bnd1", "bnd2", "bnd3"];

/// The longest register name (`xmm31`, `st(7)`).
const NAME_SLOT: usize = 5;

/// Names in fixed NUL-padded slots, made at compile time from a name list:
/// what `Reg::name` reads. A table of `&str` would cost 16 bytes and a
/// load-time relocation per name (302 of them) in every program that prints
/// a register (every error message can).
const fn name_slots<const N: usize>(names: [&str; N]) -> [[u8; NAME_SLOT]; N] {
    let mut slots = [[0; NAME_SLOT]; N];
    let mut i = 0;
    while i < N {
        let name = names[i].as_bytes();
        assert!(
            name.len() <= NAME_SLOT,
            "a register name is longer than NAME_SLOT"
        );
        let mut j = 0;
        while j < name.len() {
            slots[i][j] = name[j];
            j += 1;
        }
        i += 1;
    }
    slots
}

static GP8_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(GP8_NAMES);
static GP8HI_SLOTS: [[u8; NAME_SLOT]; 4] = name_slots(GP8HI_NAMES);
static GP16_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(GP16_NAMES);
static GP32_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(GP32_NAMES);
static GP64_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(GP64_NAMES);
static SEG_SLOTS: [[u8; NAME_SLOT]; 6] = name_slots(SEG_NAMES);
static CR_SLOTS: [[u8; NAME_SLOT]; 16] = name_slots(CR_NAMES);
static DR_SLOTS: [[u8; NAME_SLOT]; 16] = name_slots(DR_NAMES);
static ST_SLOTS: [[u8; NAME_SLOT]; 8] = name_slots(ST_NAMES);
static MM_SLOTS: [[u8; NAME_SLOT]; 8] = name_slots(MM_NAMES);
static XMM_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(XMM_NAMES);
static YMM_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(YMM_NAMES);
static ZMM_SLOTS: [[u8; NAME_SLOT]; 32] = name_slots(ZMM_NAMES);
static K_SLOTS: [[u8; NAME_SLOT]; 8] = name_slots(K_NAMES);
static TMM_SLOTS: [[u8; NAME_SLOT]; 8] = name_slots(TMM_NAMES);
static BND_SLOTS: [[u8; NAME_SLOT]; 4] = name_slots(BND_NAMES);

/// Defines a typed register struct that converts into [`Reg`].
macro_rules! typed_reg {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub(crate) u8, pub(crate) Decorators, pub(crate) u32);

        impl $name {
            /// The register with number `id`; `None` when out of range.
            pub const fn from_id(id: u8) -> Option<$name> {
                if id < $kind.count() { Some($name(id, Decorators::NONE, 0)) } else { None }
            }
            /// A virtual register of this kind (for the Compiler).
            pub const fn new_virtual(index: u32) -> $name {
                $name(0, Decorators::NONE, index.saturating_add(1))
            }
            /// The register number.
            pub const fn id(self) -> u8 {
                self.0
            }
            /// The untyped register.
            pub const fn reg(self) -> Reg {
                Reg { kind: $kind, id: self.0, decorators: self.1, virt: self.2 }
            }
        }

        impl From<$name> for Reg {
            fn from(r: $name) -> Reg {
                r.reg()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.reg(), f)
            }
        }
    };
}

typed_reg!(/// An 8-bit general-purpose register (`al`..`r15b`, `spl`..`dil`, and `ah`..`bh`).
    Gp8Low, RegKind::Gp8);
typed_reg!(/// One of `ah`, `ch`, `dh`, `bh`.
    Gp8High, RegKind::Gp8Hi);
typed_reg!(/// A 16-bit general-purpose register.
    Gp16, RegKind::Gp16);
typed_reg!(/// A 32-bit general-purpose register.
    Gp32, RegKind::Gp32);
typed_reg!(/// A 64-bit general-purpose register.
    Gp64, RegKind::Gp64);
typed_reg!(/// A segment register.
    SegReg, RegKind::Seg);
typed_reg!(/// A control register.
    CrReg, RegKind::Cr);
typed_reg!(/// A debug register.
    DrReg, RegKind::Dr);
typed_reg!(/// An x87 stack register `st(i)`.
    St, RegKind::St);
typed_reg!(/// An MMX register.
    Mm, RegKind::Mm);
typed_reg!(/// A 128-bit vector register.
    Xmm, RegKind::Xmm);
typed_reg!(/// A 256-bit vector register.
    Ymm, RegKind::Ymm);
typed_reg!(/// A 512-bit vector register.
    Zmm, RegKind::Zmm);
typed_reg!(/// An AVX-512 mask register.
    KReg, RegKind::K);
typed_reg!(/// An AMX tile register.
    Tmm, RegKind::Tmm);
typed_reg!(/// An MPX bound register.
    BndReg, RegKind::Bnd);

/// The instruction pointer as a memory base: `qword_ptr(rip + 16)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rip;

/// An 8-bit register for the typed API: low (`al`, `sil`, `r8b`) or high (`ah`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gp8(pub(crate) Reg);

impl Gp8 {
    /// The untyped register.
    pub const fn reg(self) -> Reg {
        self.0
    }
}

impl From<Gp8> for Reg {
    fn from(r: Gp8) -> Reg {
        r.0
    }
}

impl From<Gp8Low> for Gp8 {
    fn from(r: Gp8Low) -> Gp8 {
        Gp8(r.reg())
    }
}

impl From<Gp8High> for Gp8 {
    fn from(r: Gp8High) -> Gp8 {
        Gp8(r.reg())
    }
}

/// Views of the same general-purpose register in other sizes:
/// `rax.r32()` is `eax`; for a Compiler virtual register, `v.r8()` is its
/// low byte (a partial write keeps the rest).
macro_rules! gp_views {
    ($($name:ident),*) => {$(
        impl $name {
            /// The low 8 bits (`al`, `r9b`, or a virtual register's low byte).
            pub const fn r8(self) -> Gp8Low {
                Gp8Low(self.0, Decorators::NONE, self.2)
            }
            /// The low 16 bits.
            pub const fn r16(self) -> Gp16 {
                Gp16(self.0, Decorators::NONE, self.2)
            }
            /// The low 32 bits.
            pub const fn r32(self) -> Gp32 {
                Gp32(self.0, Decorators::NONE, self.2)
            }
            /// The whole 64-bit register.
            pub const fn r64(self) -> Gp64 {
                Gp64(self.0, Decorators::NONE, self.2)
            }
        }
    )*};
}
gp_views!(Gp8Low, Gp16, Gp32, Gp64);

/// Decorations for vector destinations: `zmm0.k(k1).z()`.
macro_rules! maskable {
    ($($name:ident),*) => {$(
        impl $name {
            /// With write mask `{k}`.
            pub const fn k(self, mask: KReg) -> $name {
                $name(self.0, self.1.with_mask(mask), self.2)
            }
            /// With zeroing `{z}` (needs a mask too).
            pub const fn z(self) -> $name {
                $name(self.0, self.1.with_zeroing(), self.2)
            }
        }
    )*};
}
maskable!(Xmm, Ymm, Zmm, KReg);

/// Register constants, lower case as in Intel syntax.
#[allow(non_upper_case_globals, missing_docs)]
pub mod regs {
    use super::*;

    macro_rules! consts {
        ($ty:ident: $($name:ident = $id:expr),* $(,)?) => {$(
            pub const $name: $ty = $ty($id, Decorators::NONE, 0);
        )*};
    }
    consts!(Gp8Low: al = 0, cl = 1, dl = 2, bl = 3, spl = 4, bpl = 5, sil = 6, dil = 7, r8b = 8, r9b = 9,
        r10b = 10, r11b = 11, r12b = 12, r13b = 13, r14b = 14, r15b = 15,
        r16b = 16, r17b = 17, r18b = 18, r19b = 19, r20b = 20, r21b = 21, r22b = 22, r23b = 23, r24b = 24, r25b = 25, r26b = 26, r27b = 27, r28b = 28, r29b = 29, r30b = 30, r31b = 31);
    consts!(Gp8High: ah = 0, ch = 1, dh = 2, bh = 3);
    consts!(Gp16: ax = 0, cx = 1, dx = 2, bx = 3, sp = 4, bp = 5, si = 6, di = 7, r8w = 8, r9w = 9, r10w = 10,
        r11w = 11, r12w = 12, r13w = 13, r14w = 14, r15w = 15,
        r16w = 16, r17w = 17, r18w = 18, r19w = 19, r20w = 20, r21w = 21, r22w = 22, r23w = 23, r24w = 24, r25w = 25, r26w = 26, r27w = 27, r28w = 28, r29w = 29, r30w = 30, r31w = 31);
    consts!(Gp32: eax = 0, ecx = 1, edx = 2, ebx = 3, esp = 4, ebp = 5, esi = 6, edi = 7, r8d = 8, r9d = 9,
        r10d = 10, r11d = 11, r12d = 12, r13d = 13, r14d = 14, r15d = 15,
        r16d = 16, r17d = 17, r18d = 18, r19d = 19, r20d = 20, r21d = 21, r22d = 22, r23d = 23, r24d = 24, r25d = 25, r26d = 26, r27d = 27, r28d = 28, r29d = 29, r30d = 30, r31d = 31);
    consts!(Gp64: rax = 0, rcx = 1, rdx = 2, rbx = 3, rsp = 4, rbp = 5, rsi = 6, rdi = 7, r8 = 8, r9 = 9,
        r10 = 10, r11 = 11, r12 = 12, r13 = 13, r14 = 14, r15 = 15,
        r16 = 16, r17 = 17, r18 = 18, r19 = 19, r20 = 20, r21 = 21, r22 = 22, r23 = 23, r24 = 24, r25 = 25, r26 = 26, r27 = 27, r28 = 28, r29 = 29, r30 = 30, r31 = 31);
    consts!(SegReg: es = 0, cs = 1, ss = 2, ds = 3, fs = 4, gs = 5);
    consts!(CrReg: cr0 = 0, cr1 = 1, cr2 = 2, cr3 = 3, cr4 = 4, cr5 = 5, cr6 = 6, cr7 = 7, cr8 = 8, cr9 = 9,
        cr10 = 10, cr11 = 11, cr12 = 12, cr13 = 13, cr14 = 14, cr15 = 15);
    consts!(DrReg: dr0 = 0, dr1 = 1, dr2 = 2, dr3 = 3, dr4 = 4, dr5 = 5, dr6 = 6, dr7 = 7, dr8 = 8, dr9 = 9,
        dr10 = 10, dr11 = 11, dr12 = 12, dr13 = 13, dr14 = 14, dr15 = 15);
    consts!(St: st0 = 0, st1 = 1, st2 = 2, st3 = 3, st4 = 4, st5 = 5, st6 = 6, st7 = 7);
    consts!(Mm: mm0 = 0, mm1 = 1, mm2 = 2, mm3 = 3, mm4 = 4, mm5 = 5, mm6 = 6, mm7 = 7);
    consts!(KReg: k0 = 0, k1 = 1, k2 = 2, k3 = 3, k4 = 4, k5 = 5, k6 = 6, k7 = 7);
    consts!(Tmm: tmm0 = 0, tmm1 = 1, tmm2 = 2, tmm3 = 3, tmm4 = 4, tmm5 = 5, tmm6 = 6, tmm7 = 7);
    consts!(BndReg: bnd0 = 0, bnd1 = 1, bnd2 = 2, bnd3 = 3);
    consts!(Xmm: xmm0 = 0, xmm1 = 1, xmm2 = 2, xmm3 = 3, xmm4 = 4, xmm5 = 5, xmm6 = 6, xmm7 = 7, xmm8 = 8,
        xmm9 = 9, xmm10 = 10, xmm11 = 11, xmm12 = 12, xmm13 = 13, xmm14 = 14, xmm15 = 15, xmm16 = 16,
        xmm17 = 17, xmm18 = 18, xmm19 = 19, xmm20 = 20, xmm21 = 21, xmm22 = 22, xmm23 = 23, xmm24 = 24,
        xmm25 = 25, xmm26 = 26, xmm27 = 27, xmm28 = 28, xmm29 = 29, xmm30 = 30, xmm31 = 31);
    consts!(Ymm: ymm0 = 0, ymm1 = 1, ymm2 = 2, ymm3 = 3, ymm4 = 4, ymm5 = 5, ymm6 = 6, ymm7 = 7, ymm8 = 8,
        ymm9 = 9, ymm10 = 10, ymm11 = 11, ymm12 = 12, ymm13 = 13, ymm14 = 14, ymm15 = 15, ymm16 = 16,
        ymm17 = 17, ymm18 = 18, ymm19 = 19, ymm20 = 20, ymm21 = 21, ymm22 = 22, ymm23 = 23, ymm24 = 24,
        ymm25 = 25, ymm26 = 26, ymm27 = 27, ymm28 = 28, ymm29 = 29, ymm30 = 30, ymm31 = 31);
    consts!(Zmm: zmm0 = 0, zmm1 = 1, zmm2 = 2, zmm3 = 3, zmm4 = 4, zmm5 = 5, zmm6 = 6, zmm7 = 7, zmm8 = 8,
        zmm9 = 9, zmm10 = 10, zmm11 = 11, zmm12 = 12, zmm13 = 13, zmm14 = 14, zmm15 = 15, zmm16 = 16,
        zmm17 = 17, zmm18 = 18, zmm19 = 19, zmm20 = 20, zmm21 = 21, zmm22 = 22, zmm23 = 23, zmm24 = 24,
        zmm25 = 25, zmm26 = 26, zmm27 = 27, zmm28 = 28, zmm29 = 29, zmm30 = 30, zmm31 = 31);
    pub const rip: Rip = Rip;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every register's name (read from the fixed slots) is whole and
    /// finds the register again.
    #[test]
    fn names_round_trip() {
        use RegKind as R;
        let kinds = [
            R::Gp8,
            R::Gp8Hi,
            R::Gp16,
            R::Gp32,
            R::Gp64,
            R::Seg,
            R::Cr,
            R::Dr,
            R::St,
            R::Mm,
            R::Xmm,
            R::Ymm,
            R::Zmm,
            R::K,
            R::Tmm,
            R::Bnd,
            R::Rip,
        ];
        let mut count = 0;
        for kind in kinds {
            for id in 0..kind.count() {
                let reg = Reg::new_unchecked(kind, id);
                let name = reg.name();
                assert!(!name.is_empty() && !name.contains('\0'), "{kind:?} {id}");
                assert_eq!(Reg::from_name(name), Some(reg), "{name}");
                count += 1;
            }
        }
        assert_eq!(count, 303);
        assert_eq!(Reg::new_unchecked(R::Xmm, 31).name(), "xmm31");
        assert_eq!(Reg::new_unchecked(R::St, 7).name(), "st(7)");
        assert_eq!(Reg::new_unchecked(R::Gp8, 4).name(), "spl");
    }
}
