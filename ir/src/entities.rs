//! Entity references of the IR: the small copyable ids (virtual registers,
//! labels, instructions, stack slots, constants, signatures, calls, jump
//! tables, blocks) and the physical-register and register-class types.
//!
//! Ids are `u32` newtypes made with cranelift-entity, so tables indexed by them
//! (`PrimaryMap`, `SecondaryMap`) stay dense and cheap.

use core::fmt;
use cranelift_entity::entity_impl;

/// A virtual register: a value the register allocator places in a physical
/// register or a stack slot. Not SSA: it may be written many times.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VReg(u32);
entity_impl!(VReg, "v");

/// A label: a position in the instruction list, bound by a `bind`
/// pseudo-instruction, targeted by jumps or taken as an address.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);
entity_impl!(Label, "L");

/// An instruction, in program order (the index is the position in the
/// function's linear instruction list).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inst(u32);
entity_impl!(Inst, "inst");

/// A stack slot of the function's frame (user stack memory, by-reference
/// arguments), with a size and an alignment.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackSlot(u32);
entity_impl!(StackSlot, "$");

/// A constant in the function's constant pool (bytes with an alignment).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Constant(u32);
entity_impl!(Constant, "#");

/// A signature imported into a function, used by calls and tail jumps.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SigRef(u32);
entity_impl!(SigRef, "sig");

/// The record of one call or tail jump (its signature and argument count).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(u32);
entity_impl!(CallRef, "call");

/// A jump table: the annotated list of labels an indirect jump may reach.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JumpTable(u32);
entity_impl!(JumpTable, "jt");

/// A basic block of a [`crate::cfg::Cfg`] (computed, not stored in the function).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block(u32);
entity_impl!(Block, "block");

/// An opaque target instruction id (a mnemonic of the target's instruction
/// database). Only the [`crate::target::Target`] knows what it means.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TargetInst(pub u32);

/// An id of a calling convention known to the target (see
/// [`crate::target::Target::call_conv`]).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CallConvId(pub u16);

/// A register class. The first four are predefined; the numbers up to
/// [`RegClass::MAX`] are free for targets that need more classes.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RegClass(pub u8);

impl RegClass {
    /// General-purpose (integer) registers.
    pub const GP: RegClass = RegClass(0);
    /// Vector / floating-point registers (xmm/ymm/zmm on x86).
    pub const VEC: RegClass = RegClass(1);
    /// Mask registers (k0..k7 on x86).
    pub const MASK: RegClass = RegClass(2);
    /// The x87 register stack (only used for 32-bit float returns).
    pub const X87: RegClass = RegClass(3);
    /// Number of classes a [`RegSet`] can hold.
    pub const COUNT: usize = 8;
    /// Highest valid class number.
    pub const MAX: u8 = 7;

    /// The class's index (for per-class arrays).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The name used by the text format (`gp`, `vec`, `mask`, `x87`, `cls4`...).
    pub fn name(self) -> &'static str {
        const N: [&str; 8] = ["gp", "vec", "mask", "x87", "cls4", "cls5", "cls6", "cls7"];
        N[(self.0 & 7) as usize]
    }

    /// Parses a class name printed by [`RegClass::name`].
    pub fn from_name(s: &str) -> Option<RegClass> {
        (0..=Self::MAX).map(RegClass).find(|c| c.name() == s)
    }
}

impl fmt::Display for RegClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A physical register: a class and a hardware index. For x86
/// general-purpose registers the index is the hardware number
/// (0=rax 1=rcx 2=rdx 3=rbx 4=rsp 5=rbp 6=rsi 7=rdi 8..15=r8..r15),
/// vector registers are 0..31, mask registers 0..7.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PReg {
    /// The register class.
    pub class: RegClass,
    /// The hardware index inside the class (0..31).
    pub hw: u8,
}

impl PReg {
    /// A physical register of `class` with hardware index `hw`.
    pub const fn new(class: RegClass, hw: u8) -> PReg {
        PReg { class, hw }
    }
    /// A general-purpose register.
    pub const fn gp(hw: u8) -> PReg {
        PReg::new(RegClass::GP, hw)
    }
    /// A vector register.
    pub const fn vec(hw: u8) -> PReg {
        PReg::new(RegClass::VEC, hw)
    }
    /// A mask register.
    pub const fn mask(hw: u8) -> PReg {
        PReg::new(RegClass::MASK, hw)
    }
}

/// A set of physical registers: one 32-bit mask per class.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct RegSet(pub [u32; RegClass::COUNT]);

impl RegSet {
    /// The empty set.
    pub const EMPTY: RegSet = RegSet([0; RegClass::COUNT]);

    /// A set from a list of registers.
    pub fn of(regs: &[PReg]) -> RegSet {
        let mut s = RegSet::EMPTY;
        for &r in regs {
            s.insert(r);
        }
        s
    }
    /// Adds a register (indexes above 31 are ignored).
    pub fn insert(&mut self, r: PReg) {
        if r.hw < 32 && r.class.0 <= RegClass::MAX {
            self.0[r.class.index()] |= 1 << r.hw;
        }
    }
    /// Removes a register.
    pub fn remove(&mut self, r: PReg) {
        if r.hw < 32 && r.class.0 <= RegClass::MAX {
            self.0[r.class.index()] &= !(1 << r.hw);
        }
    }
    /// Whether the register is in the set.
    pub fn contains(&self, r: PReg) -> bool {
        r.hw < 32 && r.class.0 <= RegClass::MAX && self.0[r.class.index()] & (1 << r.hw) != 0
    }
    /// The mask of one class.
    pub fn class_mask(&self, c: RegClass) -> u32 {
        self.0.get(c.index()).copied().unwrap_or(0)
    }
    /// Sets the mask of one class.
    pub fn set_class_mask(&mut self, c: RegClass, mask: u32) {
        if let Some(m) = self.0.get_mut(c.index()) {
            *m = mask;
        }
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&m| m == 0)
    }
    /// Union of two sets.
    pub fn union(&self, o: &RegSet) -> RegSet {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(o.0.iter()) {
            *a |= *b;
        }
        r
    }
    /// Iterates the registers in class then index order.
    pub fn iter(&self) -> impl Iterator<Item = PReg> + '_ {
        self.0.iter().enumerate().flat_map(|(c, &m)| {
            (0..32u8)
                .filter(move |i| m & (1 << i) != 0)
                .map(move |i| PReg::new(RegClass(c as u8), i))
        })
    }
}

/// Which part of a register an operand names: the whole register, the low
/// N bytes, or the high byte of the low 16 bits (x86 `ah`-class).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct View(u8);

impl View {
    /// The whole register (for a virtual register: its declared size).
    pub const FULL: View = View(0);
    /// The low byte (`al`).
    pub const B8: View = View(1);
    /// Bits 8..15 (`ah`; only hardware indexes 0..3 on x86).
    pub const H8: View = View(0x81);
    /// The low 16 bits (`ax`).
    pub const W16: View = View(2);
    /// The low 32 bits (`eax`).
    pub const D32: View = View(4);
    /// The low 64 bits (`rax`, or the low quadword of a vector).
    pub const Q64: View = View(8);
    /// The low 128 bits (`xmm`).
    pub const X128: View = View(16);
    /// The low 256 bits (`ymm`).
    pub const Y256: View = View(32);
    /// The low 512 bits (`zmm`).
    pub const Z512: View = View(64);

    const ALL: [(View, &'static str); 9] = [
        (View::FULL, ""),
        (View::B8, "b"),
        (View::H8, "h"),
        (View::W16, "w"),
        (View::D32, "d"),
        (View::Q64, "q"),
        (View::X128, "x"),
        (View::Y256, "y"),
        (View::Z512, "z"),
    ];

    /// A view of the low `bytes` bytes, if that is a valid view.
    pub fn low(bytes: u16) -> Option<View> {
        match bytes {
            1 | 2 | 4 | 8 | 16 | 32 | 64 => Some(View(bytes as u8)),
            _ => None,
        }
    }
    /// The viewed size in bytes, or `None` for [`View::FULL`].
    #[inline]
    pub fn size(self) -> Option<u16> {
        match self.0 {
            0 => None,
            0x81 => Some(1),
            n => Some(n as u16),
        }
    }
    /// Whether this is the high-byte view.
    #[inline]
    pub fn is_high(self) -> bool {
        self.0 == 0x81
    }
    /// The text-format suffix (`b`, `h`, `w`, `d`, `q`, `x`, `y`, `z`; empty for full).
    pub fn suffix(self) -> &'static str {
        View::ALL
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, s)| *s)
            .unwrap_or("")
    }
    /// Parses a suffix printed by [`View::suffix`].
    pub fn from_suffix(s: &str) -> Option<View> {
        View::ALL
            .iter()
            .find(|(_, n)| !n.is_empty() && *n == s)
            .map(|(v, _)| *v)
    }
}

/// How an 8- or 16-bit integer is widened to 32 bits: its sign bit or
/// zeros copied into the upper bits.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Extension {
    /// Sign extension (x86 `movsx`): the type is signed.
    Sign,
    /// Zero extension (x86 `movzx`): the type is unsigned.
    Zero,
}

/// A value type of a signature: what the calling convention classifies.
///
/// The 8- and 16-bit integers carry a signedness, as AsmJit's `TypeId`
/// tells `Int8` from `UInt8`: an argument of such a type is passed widened
/// to 32 bits by the type's [`Extension`] (see [`crate::lower`]). The wider
/// integers need none: 32-bit values fill their register's low half and
/// 64-bit values all of it.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ValType {
    /// Signed 8-bit integer (C `signed char`, Rust `i8`).
    I8,
    /// Unsigned 8-bit integer (C `unsigned char` and `bool`, Rust `u8` and `bool`).
    U8,
    /// Signed 16-bit integer (C `short`, Rust `i16`).
    I16,
    /// Unsigned 16-bit integer (C `unsigned short`, Rust `u16`).
    U16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer (or a pointer on a 64-bit target).
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 128-bit vector (`__m128`).
    V128,
    /// 256-bit vector (`__m256`).
    V256,
    /// 512-bit vector (`__m512`).
    V512,
}

impl ValType {
    /// All types, in text order.
    pub const ALL: [ValType; 11] = [
        ValType::I8,
        ValType::U8,
        ValType::I16,
        ValType::U16,
        ValType::I32,
        ValType::I64,
        ValType::F32,
        ValType::F64,
        ValType::V128,
        ValType::V256,
        ValType::V512,
    ];
    /// Size in bytes.
    pub fn size(self) -> u16 {
        match self {
            ValType::I8 | ValType::U8 => 1,
            ValType::I16 | ValType::U16 => 2,
            ValType::I32 | ValType::F32 => 4,
            ValType::I64 | ValType::F64 => 8,
            ValType::V128 => 16,
            ValType::V256 => 32,
            ValType::V512 => 64,
        }
    }
    /// Whether it is an integer type (passed in general-purpose registers).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            ValType::I8 | ValType::U8 | ValType::I16 | ValType::U16 | ValType::I32 | ValType::I64
        )
    }
    /// How a value of an 8- or 16-bit integer type is widened to 32 bits
    /// when passed (sign for `i8`/`i16`, zero for `u8`/`u16`); `None` for
    /// the other types, which are passed as they are.
    pub fn narrow_extension(self) -> Option<Extension> {
        match self {
            ValType::I8 | ValType::I16 => Some(Extension::Sign),
            ValType::U8 | ValType::U16 => Some(Extension::Zero),
            _ => None,
        }
    }
    /// Whether it is a scalar float.
    pub fn is_float(self) -> bool {
        matches!(self, ValType::F32 | ValType::F64)
    }
    /// Whether it is a 128/256/512-bit vector.
    pub fn is_vector(self) -> bool {
        matches!(self, ValType::V128 | ValType::V256 | ValType::V512)
    }
    /// The register class a value of this type lives in.
    pub fn class(self) -> RegClass {
        if self.is_int() {
            RegClass::GP
        } else {
            RegClass::VEC
        }
    }
    /// The text-format name (`i64`, `u8`, `f64`, `v128`...).
    pub fn name(self) -> &'static str {
        match self {
            ValType::I8 => "i8",
            ValType::U8 => "u8",
            ValType::I16 => "i16",
            ValType::U16 => "u16",
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::V256 => "v256",
            ValType::V512 => "v512",
        }
    }
    /// Parses a name printed by [`ValType::name`].
    pub fn from_name(s: &str) -> Option<ValType> {
        ValType::ALL.iter().copied().find(|t| t.name() == s)
    }
    /// The type of a variadic argument held in a register of `class` and `size` bytes
    /// (integers are promoted to `i64`, vector values of up to 8 bytes are doubles).
    pub fn for_vararg(class: RegClass, size: u16) -> ValType {
        if class == RegClass::GP {
            ValType::I64
        } else if size <= 8 {
            ValType::F64
        } else if size <= 16 {
            ValType::V128
        } else if size <= 32 {
            ValType::V256
        } else {
            ValType::V512
        }
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
