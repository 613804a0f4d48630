//! Instruction operands: the untyped [`Operand`] the encoder and the dynamic
//! API take, and the [`Arg`] trait through which the typed API checks operand
//! kinds at compile time (each typed argument has a `Class`; the generated
//! signature traits list which class tuples a mnemonic accepts).

use super::mem::Mem;
use super::reg::*;
use crate::code::Label;
use std::fmt;

/// One instruction operand. Small and `Copy` (40 bytes).
// An explicit tag rather than a niche inside `Mem`: the typed API builds
// each operand from an argument of known class, and with a tag of its own
// the variant is a constant where the encoder matches on it (a niche tag
// is a byte of the runtime `Mem` value, so every match on a memory operand
// stayed a runtime branch). `Mem` is 32 bytes so that the tag costs no
// size. The tag is as wide as the padding before `Mem` anyway: with a
// one-byte tag, rustc and LLVM copied a `Mem` argument into the operand
// array through a temporary (its bytes after the tag, padding included,
// which the copy from the argument does not cover).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u64)]
pub enum Operand {
    /// No operand (unused slot).
    #[default]
    None,
    /// A register, possibly with AVX-512 decorations.
    Reg(Reg),
    /// A memory operand.
    Mem(Mem),
    /// An immediate value (or an absolute branch target).
    Imm(i64),
    /// A label (branch target).
    Label(Label),
}

impl Operand {
    /// Whether this slot is empty.
    pub const fn is_none(&self) -> bool {
        matches!(self, Operand::None)
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::None => Ok(()),
            Operand::Reg(r) => fmt::Display::fmt(r, f),
            Operand::Mem(m) => fmt::Display::fmt(m, f),
            Operand::Imm(v) => {
                if *v < 0 {
                    write!(f, "-{:#x}", v.unsigned_abs())
                } else {
                    write!(f, "{v:#x}")
                }
            }
            Operand::Label(l) => write!(f, "L{}", l.id()),
        }
    }
}

impl From<Reg> for Operand {
    fn from(r: Reg) -> Operand {
        Operand::Reg(r)
    }
}

impl From<Mem> for Operand {
    fn from(m: Mem) -> Operand {
        Operand::Mem(m)
    }
}

impl From<Label> for Operand {
    fn from(l: Label) -> Operand {
        Operand::Label(l)
    }
}

/// Operand classes of the typed API (marker types; see [`Arg`]).
pub mod class {
    /// An immediate (any Rust integer).
    #[derive(Debug)]
    pub struct Imm;
    /// A label.
    #[derive(Debug)]
    pub struct Label;
    /// A memory operand.
    #[derive(Debug)]
    pub struct Mem;
    /// An 8-bit general-purpose register (low or high).
    #[derive(Debug)]
    pub struct Gp8;
}

/// A typed operand: something the typed API accepts as an argument. Its
/// `Class` is what the generated signature traits are implemented for, so an
/// operand of the wrong kind (`a.add(eax, xmm0)`) does not compile.
pub trait Arg: Copy {
    /// The operand class checked at compile time.
    type Class;
    /// The untyped operand.
    fn to_operand(self) -> Operand;
}

macro_rules! reg_arg {
    ($($ty:ident),*) => {$(
        impl Arg for $ty {
            type Class = $ty;
            fn to_operand(self) -> Operand {
                Operand::Reg(self.reg())
            }
        }
        impl From<$ty> for Operand {
            fn from(r: $ty) -> Operand {
                Operand::Reg(r.reg())
            }
        }
    )*};
}
reg_arg!(
    Gp16, Gp32, Gp64, SegReg, CrReg, DrReg, St, Mm, Xmm, Ymm, Zmm, KReg, Tmm, BndReg
);

macro_rules! gp8_arg {
    ($($ty:ident),*) => {$(
        impl Arg for $ty {
            type Class = class::Gp8;
            fn to_operand(self) -> Operand {
                Operand::Reg(self.reg())
            }
        }
        impl From<$ty> for Operand {
            fn from(r: $ty) -> Operand {
                Operand::Reg(r.reg())
            }
        }
    )*};
}
gp8_arg!(Gp8Low, Gp8High, Gp8);

macro_rules! imm_arg {
    ($($ty:ident),*) => {$(
        impl Arg for $ty {
            type Class = class::Imm;
            fn to_operand(self) -> Operand {
                Operand::Imm(self as i64)
            }
        }
        impl From<$ty> for Operand {
            fn from(v: $ty) -> Operand {
                Operand::Imm(v as i64)
            }
        }
    )*};
}
imm_arg!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);

impl Arg for Mem {
    type Class = class::Mem;
    fn to_operand(self) -> Operand {
        Operand::Mem(self)
    }
}

impl Arg for Label {
    type Class = class::Label;
    fn to_operand(self) -> Operand {
        Operand::Label(self)
    }
}

const _: () = assert!(std::mem::size_of::<Operand>() == 40);
