//! Memory operands: base, index, scale, displacement, segment, size, and the
//! RIP-relative, label-relative, absolute and VSIB forms; AVX-512 broadcast
//! and masking on memory. Built with readable expressions:
//!
//! ```
//! use jitforge::x86::*;
//! let m = qword_ptr(rax + rcx * 8 + 16);
//! assert_eq!(m.to_string(), "qword ptr [rax + rcx*8 + 0x10]");
//! let b = dword_ptr(rbx).bcst();
//! assert_eq!(b.to_string(), "dword ptr [rbx]{1toN}");
//! ```

use super::reg::{Decorators, Gp32, Gp64, KReg, Reg, RegKind, Rip, Xmm, Ymm, Zmm};
use crate::code::Label;
use std::fmt;
use std::ops::{Add, Mul, Sub};

/// What a memory operand's address is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemBase {
    /// No base: `[index*scale + disp]` or an absolute address `[disp]`.
    None,
    /// A general-purpose register (32- or 64-bit).
    Reg(Reg),
    /// `[rip + disp]`.
    Rip,
    /// `[rip + label + disp]` in 64-bit mode, `[label + disp]` (absolute) in 32-bit mode.
    Label(Label),
}

/// A memory operand. Small and `Copy`: 32 bytes, so that an [`Operand`]
/// with its own tag byte is 40.
///
/// [`Operand`]: super::operand::Operand
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mem {
    base: MemBase,
    index: Option<Reg>,
    scale: u8,
    /// The segment override as its kind and id (what encoding and display
    /// use of it).
    segment: Option<(RegKind, u8)>,
    size: u16,
    /// 0: no broadcast; 1: broadcast of unspecified count; N > 1: `{1toN}`.
    broadcast: u8,
    /// [`ABS64`] and [`PLAIN64`] bits.
    flags: u8,
    decorators: Decorators,
    disp: i64,
}

/// `Mem::flags`: a 64-bit absolute address for `movabs`.
const ABS64: u8 = 1;
/// `Mem::flags`: a plain address (see [`Mem::is_plain64`]), kept up to date
/// by every method that changes the address, so that the encoder's fast
/// path reads one bit where it would check six fields.
const PLAIN64: u8 = 2;

impl Mem {
    /// A memory operand with a base register and a displacement, no size.
    #[inline]
    pub fn new(base: MemBase, disp: i64) -> Mem {
        Mem {
            base,
            index: None,
            scale: 1,
            segment: None,
            size: 0,
            broadcast: 0,
            flags: 0,
            decorators: Decorators::NONE,
            disp,
        }
        .with_plain64()
    }

    /// With `plain64` recomputed after a change to the address.
    // Always inline: where the address is built from constant registers
    // (the usual case), this folds to a constant.
    #[inline(always)]
    const fn with_plain64(mut self) -> Mem {
        let base_ok = match self.base {
            MemBase::Reg(b) => is_low_physical_gp64(b),
            _ => false,
        };
        let index_ok = match self.index {
            None => true,
            // rsp cannot be an index (its SIB code means "none").
            Some(i) => is_low_physical_gp64(i) && i.id() != 4,
        };
        let plain = base_ok
            && index_ok
            && matches!(self.scale, 1 | 2 | 4 | 8)
            && self.flags & ABS64 == 0
            && self.decorators.is_empty()
            && self.disp >= i32::MIN as i64
            && self.disp <= i32::MAX as i64;
        self.flags = if plain {
            self.flags | PLAIN64
        } else {
            self.flags & !PLAIN64
        };
        self
    }

    /// Whether the address is `[base + index*scale + disp32]` through
    /// physical 64-bit registers r0-r15 (no `rsp` index), with no `movabs`
    /// form and no write mask: the shape the encoder's fast path encodes
    /// (segment, size and broadcast aside).
    #[inline]
    pub(crate) const fn is_plain64(&self) -> bool {
        self.flags & PLAIN64 != 0
    }

    /// An absolute address `[addr]` (encoded as disp32 when it fits, else with `movabs`).
    #[inline]
    pub fn absolute(addr: u64) -> Mem {
        Mem::new(MemBase::None, addr as i64)
    }

    /// The base.
    pub const fn base(&self) -> MemBase {
        self.base
    }

    /// The index register (general-purpose, or a vector register for VSIB).
    pub const fn index(&self) -> Option<Reg> {
        self.index
    }

    /// The scale: 1, 2, 4 or 8.
    pub const fn scale(&self) -> u8 {
        self.scale
    }

    /// The displacement (or the absolute address).
    pub const fn disp(&self) -> i64 {
        self.disp
    }

    /// The segment override, if any.
    pub const fn segment(&self) -> Option<Reg> {
        match self.segment {
            Some((kind, id)) => Some(Reg::new_unchecked(kind, id)),
            None => None,
        }
    }

    /// The size in bytes (0: unspecified).
    pub const fn size(&self) -> u16 {
        self.size
    }

    /// Whether this is an AVX-512 broadcast (`{1toN}`).
    pub const fn is_broadcast(&self) -> bool {
        self.broadcast != 0
    }

    /// The element count of a `{1toN}` broadcast, when given (`None` for
    /// "whatever the instruction's vector length implies").
    pub const fn broadcast_count(&self) -> Option<u8> {
        if self.broadcast > 1 {
            Some(self.broadcast)
        } else {
            None
        }
    }

    /// Whether this is a 64-bit absolute address for `movabs`.
    pub const fn is_abs64(&self) -> bool {
        self.flags & ABS64 != 0
    }

    /// The write mask of a memory destination (`[rax]{k1}`).
    pub const fn decorators(&self) -> Decorators {
        self.decorators
    }

    /// With another size in bytes.
    #[inline]
    pub const fn with_size(mut self, size: u16) -> Mem {
        self.size = size;
        self
    }

    /// With a segment override (`fs:[rax]`).
    #[inline]
    pub fn with_segment(mut self, segment: impl Into<Reg>) -> Mem {
        let segment = segment.into();
        self.segment = Some((segment.kind(), segment.id()));
        self
    }

    /// With another displacement.
    #[inline]
    pub const fn with_disp(mut self, disp: i64) -> Mem {
        self.disp = disp;
        self.with_plain64()
    }

    /// With an index register and scale. Scale must be 1, 2, 4 or 8 (checked at encoding).
    #[inline]
    pub fn with_index(mut self, index: impl Into<Reg>, scale: u8) -> Mem {
        self.index = Some(index.into());
        self.scale = scale;
        self.with_plain64()
    }

    /// As an AVX-512 broadcast `{1toN}` of the element size (the size is the
    /// element's); the instruction's vector length decides N.
    #[inline]
    pub const fn bcst(mut self) -> Mem {
        self.broadcast = 1;
        self
    }

    /// As an AVX-512 broadcast `{1toN}` with an explicit element count, which
    /// selects the vector length where the other operands do not
    /// (`vcvtpd2ps xmm0, qword ptr [rax]{1to8}` is the 512-bit form).
    #[inline]
    pub const fn bcst_n(mut self, count: u8) -> Mem {
        self.broadcast = if count > 1 { count } else { 1 };
        self
    }

    /// As a 64-bit absolute address (`movabs`).
    #[inline]
    pub const fn abs64(mut self) -> Mem {
        self.flags |= ABS64;
        self.with_plain64()
    }

    /// With a write mask (memory destination of a masked store).
    #[inline]
    pub const fn k(mut self, mask: KReg) -> Mem {
        self.decorators = self.decorators.with_mask(mask);
        self.with_plain64()
    }

    /// Whether the index is a vector register (VSIB).
    pub fn is_vsib(&self) -> bool {
        self.index.is_some_and(|r| r.kind().is_vec())
    }
}

/// A physical 64-bit general-purpose register r0-r15 with no decorations.
#[inline(always)]
const fn is_low_physical_gp64(r: Reg) -> bool {
    matches!(r.kind(), RegKind::Gp64) && r.id() < 16 && !r.is_virtual() && r.decorators().is_empty()
}

fn size_keyword(size: u16) -> Option<&'static str> {
    Some(match size {
        1 => "byte",
        2 => "word",
        4 => "dword",
        6 => "fword",
        8 => "qword",
        10 => "tbyte",
        16 => "xmmword",
        32 => "ymmword",
        64 => "zmmword",
        _ => return None,
    })
}

impl fmt::Display for Mem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = size_keyword(self.size) {
            write!(f, "{k} ptr ")?;
        }
        if let Some(seg) = self.segment() {
            write!(f, "{}:", seg.name())?;
        }
        f.write_str("[")?;
        let mut first = true;
        match self.base {
            MemBase::None => {}
            MemBase::Reg(r) => {
                f.write_str(r.name())?;
                first = false;
            }
            MemBase::Rip => {
                f.write_str("rip")?;
                first = false;
            }
            MemBase::Label(l) => {
                write!(f, "L{}", l.id())?;
                first = false;
            }
        }
        if let Some(index) = self.index {
            if !first {
                f.write_str(" + ")?;
            }
            write!(f, "{}*{}", index.name(), self.scale)?;
            first = false;
        }
        if first {
            write!(f, "{:#x}", self.disp)?;
        } else if self.disp > 0 {
            write!(f, " + {:#x}", self.disp)?;
        } else if self.disp < 0 {
            write!(f, " - {:#x}", self.disp.unsigned_abs())?;
        }
        f.write_str("]")?;
        match self.broadcast {
            0 => {}
            1 => f.write_str("{1toN}")?,
            n => write!(f, "{{1to{n}}}")?,
        }
        if self.decorators.mask() != 0 {
            write!(f, "{{k{}}}", self.decorators.mask())?;
        }
        Ok(())
    }
}

/// An `index * scale` term of an address expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaledIndex {
    index: Reg,
    scale: u8,
}

/// Converts address expressions (`rax`, `rax + 8`, `rax + rcx*4 - 16`, `rip + 4`,
/// a label) into a [`Mem`] without size.
pub trait IntoAddress {
    /// The unsized memory operand.
    fn into_address(self) -> Mem;
}

impl IntoAddress for Mem {
    #[inline]
    fn into_address(self) -> Mem {
        self
    }
}

impl IntoAddress for Label {
    #[inline]
    fn into_address(self) -> Mem {
        Mem::new(MemBase::Label(self), 0)
    }
}

impl IntoAddress for Rip {
    #[inline]
    fn into_address(self) -> Mem {
        Mem::new(MemBase::Rip, 0)
    }
}

impl IntoAddress for u64 {
    #[inline]
    fn into_address(self) -> Mem {
        Mem::absolute(self)
    }
}

impl IntoAddress for i64 {
    #[inline]
    fn into_address(self) -> Mem {
        Mem::absolute(self as u64)
    }
}

impl IntoAddress for i32 {
    #[inline]
    fn into_address(self) -> Mem {
        Mem::absolute(self as i64 as u64)
    }
}

impl IntoAddress for ScaledIndex {
    #[inline]
    fn into_address(self) -> Mem {
        Mem::new(MemBase::None, 0).with_index(self.index, self.scale)
    }
}

macro_rules! base_reg {
    ($($ty:ident),*) => {$(
        impl IntoAddress for $ty {
            #[inline]
            fn into_address(self) -> Mem {
                Mem::new(MemBase::Reg(self.reg()), 0)
            }
        }
        impl Add<i32> for $ty {
            type Output = Mem;
            #[inline]
            fn add(self, disp: i32) -> Mem {
                self.into_address().with_disp(disp as i64)
            }
        }
        impl Sub<i32> for $ty {
            type Output = Mem;
            #[inline]
            fn sub(self, disp: i32) -> Mem {
                self.into_address().with_disp(-(disp as i64))
            }
        }
        impl Add<ScaledIndex> for $ty {
            type Output = Mem;
            #[inline]
            fn add(self, index: ScaledIndex) -> Mem {
                self.into_address().with_index(index.index, index.scale)
            }
        }
        impl<R: IndexReg> Add<R> for $ty {
            type Output = Mem;
            #[inline]
            fn add(self, index: R) -> Mem {
                self.into_address().with_index(index.index_reg(), 1)
            }
        }
    )*};
}
base_reg!(Gp64, Gp32);

/// Registers that may serve as an index (general-purpose, or vector for VSIB).
pub trait IndexReg: Copy {
    /// The index register.
    fn index_reg(self) -> Reg;
}

macro_rules! index_reg {
    ($($ty:ident),*) => {$(
        impl IndexReg for $ty {
            #[inline]
            fn index_reg(self) -> Reg {
                self.reg()
            }
        }
        impl Mul<u8> for $ty {
            type Output = ScaledIndex;
            #[inline]
            fn mul(self, scale: u8) -> ScaledIndex {
                ScaledIndex { index: self.reg(), scale }
            }
        }
    )*};
}
index_reg!(Gp64, Gp32, Xmm, Ymm, Zmm);

impl Add<i32> for Rip {
    type Output = Mem;
    #[inline]
    fn add(self, disp: i32) -> Mem {
        Mem::new(MemBase::Rip, disp as i64)
    }
}

impl Add<i32> for Label {
    type Output = Mem;
    #[inline]
    fn add(self, disp: i32) -> Mem {
        Mem::new(MemBase::Label(self), disp as i64)
    }
}

impl Add<i32> for Mem {
    type Output = Mem;
    #[inline]
    fn add(self, disp: i32) -> Mem {
        self.with_disp(self.disp.wrapping_add(disp as i64))
    }
}

impl Sub<i32> for Mem {
    type Output = Mem;
    #[inline]
    fn sub(self, disp: i32) -> Mem {
        self.with_disp(self.disp.wrapping_sub(disp as i64))
    }
}

impl Add<ScaledIndex> for Mem {
    type Output = Mem;
    #[inline]
    fn add(self, index: ScaledIndex) -> Mem {
        self.with_index(index.index, index.scale)
    }
}

impl Add<i32> for ScaledIndex {
    type Output = Mem;
    #[inline]
    fn add(self, disp: i32) -> Mem {
        self.into_address().with_disp(disp as i64)
    }
}

macro_rules! ptr_fn {
    ($($(#[$doc:meta])* $name:ident = $size:expr;)*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name(address: impl IntoAddress) -> Mem {
            address.into_address().with_size($size)
        }
    )*};
}

ptr_fn! {
    /// A memory operand without a size (`[rax]`), for instructions whose other operands say it.
    ptr = 0;
    /// `byte ptr [...]`.
    byte_ptr = 1;
    /// `word ptr [...]`.
    word_ptr = 2;
    /// `dword ptr [...]`.
    dword_ptr = 4;
    /// `fword ptr [...]` (6 bytes: a far pointer m16:32).
    fword_ptr = 6;
    /// `qword ptr [...]`.
    qword_ptr = 8;
    /// `tbyte ptr [...]` (10 bytes: x87 extended or m16:64).
    tbyte_ptr = 10;
    /// `xmmword ptr [...]`.
    xmmword_ptr = 16;
    /// `ymmword ptr [...]`.
    ymmword_ptr = 32;
    /// `zmmword ptr [...]`.
    zmmword_ptr = 64;
}
