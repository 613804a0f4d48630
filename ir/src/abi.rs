//! Calling conventions as data, and the assignment of argument and return
//! locations (registers, stack offsets, by-reference) that lowering uses.
//!
//! One algorithm, [`assign_args`], driven by the fields of [`CallConv`],
//! covers System V AMD64, Windows x64 (positional slots, shadow space,
//! vectors by reference, floats duplicated in integer registers for variadic
//! callees), x64 vectorcall, the 32-bit cdecl, stdcall, fastcall and
//! vectorcall, and user-defined light conventions ([`CallConv::light`]).
//!
//! Stack offsets are relative to the outgoing argument area at the call (the
//! stack pointer at the `call` instruction), which is also the incoming
//! argument area of the callee just above its return address
//! ([`crate::function::MemBase::OutArgs`] and [`crate::function::MemBase::InArgs`]).

use crate::entities::*;
use core::fmt;
use smallvec::SmallVec;

/// A calling convention, as data.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CallConv {
    /// Name used by the text format (`sysv64`, `win64`, `cdecl`...).
    pub name: String,
    /// Pointer size in bytes (8 or 4).
    pub ptr_size: u8,
    /// Integer argument registers, in order.
    pub gp_args: SmallVec<[PReg; 6]>,
    /// Float/vector argument registers, in order.
    pub vec_args: SmallVec<[PReg; 8]>,
    /// Windows x64 style: argument *i* may only use register *i* of its
    /// class's list, and every argument consumes one position.
    pub positional: bool,
    /// Largest integer passed in a register (fastcall: 4, so 64-bit
    /// integers go to the stack).
    pub gp_arg_max_size: u16,
    /// Whether `f32`/`f64` arguments use the vector registers (false on the
    /// 32-bit cdecl, stdcall and fastcall: they go on the stack).
    pub float_in_vec: bool,
    /// Vectors of this size or larger are passed by reference to a
    /// caller-made copy (Windows x64: 16). 0 = never.
    pub vec_by_ref_from: u16,
    /// Integer return registers.
    pub gp_rets: SmallVec<[PReg; 2]>,
    /// Float/vector return registers.
    pub vec_rets: SmallVec<[PReg; 2]>,
    /// Whether `f32`/`f64` results come back in `st(0)` (32-bit cdecl,
    /// stdcall, fastcall).
    pub float_ret_x87: bool,
    /// Largest vector returned in a register (Windows x64: 16).
    pub max_vec_ret: u16,
    /// Whether only one value may be returned (Windows x64).
    pub single_ret: bool,
    /// Registers a callee preserves.
    pub callee_saved: RegSet,
    /// Registers a call clobbers.
    pub clobbered: RegSet,
    /// Bytes of the callee-saved vector registers that are preserved (Windows
    /// x64: 16, the upper parts of ymm6..15 are clobbered). 0 = whole registers.
    pub vec_saved_bytes: u16,
    /// Bytes below the stack pointer a leaf function may use (System V: 128).
    pub red_zone: u32,
    /// Bytes the caller reserves for the callee above the return address (Windows x64: 32).
    pub shadow_space: u32,
    /// Stack alignment at calls.
    pub stack_align: u32,
    /// Size of one stack slot (8 or 4).
    pub stack_slot: u8,
    /// Whether vectors on the stack are aligned to their size (System V).
    pub stack_vec_natural_align: bool,
    /// Whether the callee pops its stack arguments (stdcall, fastcall, vectorcall 32).
    pub callee_pops: bool,
    /// Whether vectors that find no vector register are passed by reference
    /// instead of by value on the stack (`__vectorcall`).
    pub vec_stack_by_ref: bool,
    /// For variadic calls: the register receiving the number of vector
    /// registers used (System V: `al`).
    pub varargs_vec_count: Option<PReg>,
    /// For variadic calls: float arguments are also copied to the integer
    /// register of their position (Windows x64).
    pub varargs_float_dup_gp: bool,
}

fn gp(hw: &[u8]) -> SmallVec<[PReg; 6]> {
    hw.iter().map(|&h| PReg::gp(h)).collect()
}
fn vecs<const N: usize>(hw: core::ops::Range<u8>) -> SmallVec<[PReg; N]> {
    hw.map(PReg::vec).collect()
}
fn set(class: RegClass, hw: &[u8]) -> u32 {
    let _ = class;
    hw.iter().fold(0, |m, &h| m | 1 << h)
}
fn mask_range(r: core::ops::Range<u8>) -> u32 {
    r.fold(0, |m, h| m | 1 << h)
}

impl CallConv {
    /// System V AMD64 (Linux, macOS, BSD).
    pub fn sysv64() -> CallConv {
        let mut saved = RegSet::EMPTY;
        saved.set_class_mask(RegClass::GP, set(RegClass::GP, &[3, 4, 5, 12, 13, 14, 15]));
        let mut clob = RegSet::EMPTY;
        clob.set_class_mask(
            RegClass::GP,
            set(RegClass::GP, &[0, 1, 2, 6, 7, 8, 9, 10, 11]),
        );
        clob.set_class_mask(RegClass::VEC, u32::MAX);
        clob.set_class_mask(RegClass::MASK, 0xFF);
        clob.set_class_mask(RegClass::X87, 0xFF);
        CallConv {
            name: "sysv64".into(),
            ptr_size: 8,
            gp_args: gp(&[7, 6, 2, 1, 8, 9]),
            vec_args: vecs(0..8),
            positional: false,
            gp_arg_max_size: 8,
            float_in_vec: true,
            vec_by_ref_from: 0,
            gp_rets: gp(&[0, 2]).into_iter().collect(),
            vec_rets: vecs(0..2),
            float_ret_x87: false,
            max_vec_ret: 64,
            single_ret: false,
            callee_saved: saved,
            clobbered: clob,
            vec_saved_bytes: 0,
            red_zone: 128,
            shadow_space: 0,
            stack_align: 16,
            stack_slot: 8,
            stack_vec_natural_align: true,
            callee_pops: false,
            vec_stack_by_ref: false,
            varargs_vec_count: Some(PReg::gp(0)),
            varargs_float_dup_gp: false,
        }
    }

    /// Windows x64.
    pub fn win64() -> CallConv {
        let mut saved = RegSet::EMPTY;
        saved.set_class_mask(
            RegClass::GP,
            set(RegClass::GP, &[3, 4, 5, 6, 7, 12, 13, 14, 15]),
        );
        saved.set_class_mask(RegClass::VEC, mask_range(6..16));
        let mut clob = RegSet::EMPTY;
        clob.set_class_mask(RegClass::GP, set(RegClass::GP, &[0, 1, 2, 8, 9, 10, 11]));
        clob.set_class_mask(RegClass::VEC, !mask_range(6..16));
        clob.set_class_mask(RegClass::MASK, 0xFF);
        clob.set_class_mask(RegClass::X87, 0xFF);
        CallConv {
            name: "win64".into(),
            ptr_size: 8,
            gp_args: gp(&[1, 2, 8, 9]),
            vec_args: vecs(0..4),
            positional: true,
            gp_arg_max_size: 8,
            float_in_vec: true,
            vec_by_ref_from: 16,
            gp_rets: gp(&[0]).into_iter().collect(),
            vec_rets: vecs(0..1),
            float_ret_x87: false,
            max_vec_ret: 16,
            single_ret: true,
            callee_saved: saved,
            clobbered: clob,
            vec_saved_bytes: 16,
            red_zone: 0,
            shadow_space: 32,
            stack_align: 16,
            stack_slot: 8,
            stack_vec_natural_align: false,
            callee_pops: false,
            vec_stack_by_ref: false,
            varargs_vec_count: None,
            varargs_float_dup_gp: true,
        }
    }

    /// x64 `__vectorcall`: Windows x64 with six positional vector registers,
    /// vectors passed in them and returned by value; a vector beyond the six
    /// registers goes by reference.
    pub fn vectorcall64() -> CallConv {
        CallConv {
            name: "vectorcall64".into(),
            vec_args: vecs(0..6),
            vec_by_ref_from: 0,
            max_vec_ret: 64,
            varargs_float_dup_gp: false,
            vec_stack_by_ref: true,
            ..CallConv::win64()
        }
    }

    fn x86_32(name: &str) -> CallConv {
        let mut saved = RegSet::EMPTY;
        saved.set_class_mask(RegClass::GP, set(RegClass::GP, &[3, 4, 5, 6, 7]));
        let mut clob = RegSet::EMPTY;
        clob.set_class_mask(RegClass::GP, set(RegClass::GP, &[0, 1, 2]));
        clob.set_class_mask(RegClass::VEC, 0xFF);
        clob.set_class_mask(RegClass::MASK, 0xFF);
        clob.set_class_mask(RegClass::X87, 0xFF);
        CallConv {
            name: name.into(),
            ptr_size: 4,
            gp_args: SmallVec::new(),
            vec_args: SmallVec::new(),
            positional: false,
            gp_arg_max_size: 4,
            float_in_vec: false,
            vec_by_ref_from: 0,
            // edx holds the high half of an `i64` result (edx:eax).
            gp_rets: gp(&[0, 2]).into_iter().collect(),
            vec_rets: vecs(0..1),
            float_ret_x87: true,
            max_vec_ret: 16,
            single_ret: true,
            callee_saved: saved,
            clobbered: clob,
            vec_saved_bytes: 0,
            red_zone: 0,
            shadow_space: 0,
            stack_align: 4,
            stack_slot: 4,
            stack_vec_natural_align: true,
            callee_pops: false,
            vec_stack_by_ref: false,
            varargs_vec_count: None,
            varargs_float_dup_gp: false,
        }
    }

    /// 32-bit cdecl (System V i386: 16-byte stack alignment, caller pops, the
    /// first three vector arguments in xmm0..2, floats on the stack).
    pub fn cdecl() -> CallConv {
        CallConv {
            stack_align: 16,
            vec_args: vecs(0..3),
            ..CallConv::x86_32("cdecl")
        }
    }

    /// 32-bit stdcall: all arguments on the stack, the callee pops them.
    pub fn stdcall() -> CallConv {
        CallConv {
            callee_pops: true,
            ..CallConv::x86_32("stdcall")
        }
    }

    /// 32-bit fastcall (Microsoft): the first two integer arguments of up to
    /// 32 bits in ecx and edx, the rest on the stack; the callee pops.
    pub fn fastcall() -> CallConv {
        CallConv {
            gp_args: gp(&[1, 2]),
            callee_pops: true,
            ..CallConv::x86_32("fastcall")
        }
    }

    /// 32-bit `__vectorcall`: fastcall plus the first six float/vector
    /// arguments in xmm0..5 (a vector beyond them goes by reference), float
    /// and vector results in xmm0.
    pub fn vectorcall32() -> CallConv {
        CallConv {
            gp_args: gp(&[1, 2]),
            vec_args: vecs(0..6),
            float_in_vec: true,
            float_ret_x87: false,
            max_vec_ret: 64,
            callee_pops: true,
            vec_stack_by_ref: true,
            ..CallConv::x86_32("vectorcall")
        }
    }

    /// A user-defined light convention between JIT functions (64-bit): the
    /// given argument and return registers, the given callee-saved set
    /// (everything else of gp 0..15 but the stack pointer, vec 0..31 and mask
    /// 0..7 is clobbered), no red zone, no shadow space, 16-byte stack alignment.
    pub fn light(
        name: &str,
        gp_args: &[PReg],
        vec_args: &[PReg],
        gp_rets: &[PReg],
        vec_rets: &[PReg],
        callee_saved: RegSet,
    ) -> CallConv {
        let mut clob = RegSet::EMPTY;
        clob.set_class_mask(RegClass::GP, 0xFFFF & !(1 << 4));
        clob.set_class_mask(RegClass::VEC, u32::MAX);
        clob.set_class_mask(RegClass::MASK, 0xFF);
        for c in 0..RegClass::COUNT {
            clob.0[c] &= !callee_saved.0[c];
        }
        CallConv {
            name: name.into(),
            gp_args: gp_args.iter().copied().collect(),
            vec_args: vec_args.iter().copied().collect(),
            gp_rets: gp_rets.iter().copied().collect(),
            vec_rets: vec_rets.iter().copied().collect(),
            callee_saved,
            clobbered: clob,
            red_zone: 0,
            varargs_vec_count: None,
            ..CallConv::sysv64()
        }
    }
}

impl CallConv {
    /// Whether a value of `size` bytes held in `p` survives a call with this
    /// convention (on Windows x64 only the low 16 bytes of xmm6..15 do).
    pub fn preserves(&self, p: PReg, size: u16) -> bool {
        self.callee_saved.contains(p)
            && !(p.class == RegClass::VEC
                && self.vec_saved_bytes != 0
                && size > self.vec_saved_bytes)
    }
}

/// Where an argument or its pointer goes.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Place {
    /// In a register.
    Reg(PReg),
    /// At this offset of the stack-argument area.
    Stack(u32),
}

/// The location of one argument.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ArgLoc {
    /// Where the value (or, if `by_ref`, the pointer to its copy) goes.
    pub place: Place,
    /// Whether the value is passed by reference.
    pub by_ref: bool,
    /// Bytes the value occupies at `place` (the pointer size if `by_ref`).
    pub size: u16,
    /// Windows x64 variadic floats: the integer register that also receives the value.
    pub dup_gp: Option<PReg>,
}

/// The locations of a call's arguments.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ArgAssignment {
    /// One location per argument.
    pub args: SmallVec<[ArgLoc; 8]>,
    /// Size of the stack-argument area (shadow space included, rounded to the slot size).
    pub stack_size: u32,
    /// Stack alignment needed at the call.
    pub stack_align: u32,
    /// Number of vector registers used (System V variadic `al`).
    pub vec_regs_used: u8,
}

/// An error of calling-convention handling.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AbiError {
    /// The target has no convention with this id.
    UnknownConv(CallConvId),
    /// The convention cannot pass or return this (e.g. two results on Windows x64).
    Unsupported(&'static str),
    /// The number of arguments or results does not match the signature.
    Count {
        /// What the signature says.
        expected: usize,
        /// What the instruction has.
        found: usize,
    },
    /// An argument or result is not a register or immediate where one is needed.
    BadOperand(&'static str),
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbiError::UnknownConv(c) => write!(f, "unknown calling convention {}", c.0),
            AbiError::Unsupported(w) => write!(f, "unsupported by the convention: {w}"),
            AbiError::Count { expected, found } => {
                write!(f, "expected {expected} values, found {found}")
            }
            AbiError::BadOperand(w) => write!(f, "bad operand: {w}"),
        }
    }
}

impl std::error::Error for AbiError {}

fn round_up(x: u32, a: u32) -> u32 {
    let a = a.max(1);
    x.div_ceil(a) * a
}

/// Assigns locations to arguments of `types` (for a variadic call, all
/// arguments, fixed and variadic; `variadic` says whether the callee is).
pub fn assign_args(
    conv: &CallConv,
    types: &[ValType],
    variadic: bool,
) -> Result<ArgAssignment, AbiError> {
    let mut out = ArgAssignment {
        stack_align: conv.stack_align,
        ..ArgAssignment::default()
    };
    let (mut gi, mut vi) = (0usize, 0usize);
    let mut stack = conv.shadow_space;
    let slot = conv.stack_slot.max(1) as u32;
    for (pos, &t) in types.iter().enumerate() {
        let mut by_ref =
            t.is_vector() && conv.vec_by_ref_from != 0 && t.size() >= conv.vec_by_ref_from;
        let mut size = if by_ref {
            conv.ptr_size as u16
        } else {
            t.size()
        };
        let is_gp = by_ref || t.is_int();
        let mut reg = if is_gp {
            if size > conv.gp_arg_max_size {
                None
            } else if conv.positional {
                conv.gp_args.get(pos).copied()
            } else {
                let r = conv.gp_args.get(gi).copied();
                gi += r.is_some() as usize;
                r
            }
        } else if t.is_float() && !conv.float_in_vec {
            None
        } else if conv.positional {
            conv.vec_args.get(pos).copied()
        } else {
            let r = conv.vec_args.get(vi).copied();
            vi += r.is_some() as usize;
            r
        };
        if reg.is_none() && t.is_vector() && !by_ref && conv.vec_stack_by_ref {
            // A vector that found no vector register goes by reference; the
            // pointer takes the integer register of its position, else the stack.
            by_ref = true;
            size = conv.ptr_size as u16;
            reg = if conv.positional {
                conv.gp_args.get(pos).copied()
            } else {
                None
            };
        }
        let place = match reg {
            Some(r) => Place::Reg(r),
            None if conv.positional => {
                let off = pos as u32 * slot;
                stack = stack.max(off + slot);
                Place::Stack(off)
            }
            None => {
                let align = if !by_ref && t.is_vector() && conv.stack_vec_natural_align {
                    t.size() as u32
                } else {
                    slot
                };
                stack = round_up(stack, align);
                let off = stack;
                stack += round_up(size as u32, slot);
                out.stack_align = out.stack_align.max(align);
                Place::Stack(off)
            }
        };
        let dup_gp = if variadic && conv.varargs_float_dup_gp && t.is_float() && conv.positional {
            match place {
                Place::Reg(_) => conv.gp_args.get(pos).copied(),
                Place::Stack(_) => None,
            }
        } else {
            None
        };
        out.args.push(ArgLoc {
            place,
            by_ref,
            size,
            dup_gp,
        });
    }
    out.vec_regs_used = out
        .args
        .iter()
        .filter(|a| matches!(a.place, Place::Reg(r) if r.class == RegClass::VEC))
        .count() as u8;
    out.stack_size = round_up(stack, slot);
    Ok(out)
}

/// Bytes a callee with signature `sig` pops from the stack when it returns
/// (stdcall, fastcall, 32-bit vectorcall; 0 for caller-cleanup conventions).
/// After a call to such a callee the caller's stack pointer has moved up by
/// this much.
pub fn callee_pop_bytes(
    conv: &CallConv,
    sig: &crate::function::Signature,
) -> Result<u32, AbiError> {
    if !conv.callee_pops || sig.varargs {
        return Ok(0);
    }
    let a = assign_args(conv, &sig.params, false)?;
    Ok(a.stack_size - conv.shadow_space.min(a.stack_size))
}

/// Whether a value of type `t` is two 32-bit values for `conv`: an `i64`
/// with 4-byte registers (32-bit mode), returned in edx:eax and passed as
/// two dwords, as the i386 conventions do.
pub fn split_in_two(conv: &CallConv, t: ValType) -> bool {
    t == ValType::I64 && conv.ptr_size == 4
}

/// The type of each value an `entry` or a call's arguments carry for the
/// parameter types `types`: one per type, but two `i32` halves, low then
/// high, for an `i64` in 32-bit mode (as [`ret_operand_types`] does for
/// results), which [`arg_operand_locs`] places in the parameter's 8 bytes.
pub fn arg_operand_types(conv: &CallConv, types: &[ValType]) -> SmallVec<[ValType; 8]> {
    operand_types(conv, types)
}

/// `types` with each one [`split_in_two`] replaced by two `i32`.
fn operand_types<A: smallvec::Array<Item = ValType>>(
    conv: &CallConv,
    types: &[ValType],
) -> SmallVec<A> {
    let mut out = SmallVec::new();
    for &t in types {
        if split_in_two(conv, t) {
            out.extend([ValType::I32, ValType::I32]);
        } else {
            out.push(t);
        }
    }
    out
}

/// How many values an `entry` or a call's arguments carry for the
/// parameter types `types`: [`arg_operand_types`]'s length, counted
/// without building it.
pub fn arg_operand_count(conv: &CallConv, types: &[ValType]) -> usize {
    if conv.ptr_size != 4 {
        return types.len();
    }
    types.len() + types.iter().filter(|&&t| split_in_two(conv, t)).count()
}

/// The location and type of each value of [`arg_operand_types`], from the
/// per-parameter locations `asg` that [`assign_args`] gave `types`: an
/// `i64` in 32-bit mode, which every i386 convention passes in 8 bytes of
/// the stack (never in ecx or edx: fastcall and vectorcall take only
/// integers of up to 32 bits there, and a later `i32` still takes them),
/// is its low dword at the slot's offset and its high dword 4 bytes above.
/// An `i64` a convention would put in a register or pass by reference is
/// unsupported (checked before anything is yielded).
pub fn arg_operand_locs<'a>(
    conv: &'a CallConv,
    types: &'a [ValType],
    asg: &'a ArgAssignment,
) -> Result<impl Iterator<Item = (ArgLoc, ValType)> + 'a, AbiError> {
    if conv.ptr_size == 4 {
        for (loc, &t) in asg.args.iter().zip(types) {
            if split_in_two(conv, t) && (loc.by_ref || !matches!(loc.place, Place::Stack(_))) {
                return Err(AbiError::Unsupported(
                    "an i64 argument in 32-bit mode outside the stack",
                ));
            }
        }
    }
    Ok(ArgOperandLocs {
        split: conv.ptr_size == 4,
        args: asg.args.iter().zip(types.iter()),
        high: None,
    })
}

/// The iterator of [`arg_operand_locs`]: a parameter's location, or the
/// low half's then the high half's (kept in `high` meanwhile).
struct ArgOperandLocs<'a> {
    /// Whether an `i64` is two values (32-bit mode).
    split: bool,
    args: core::iter::Zip<core::slice::Iter<'a, ArgLoc>, core::slice::Iter<'a, ValType>>,
    high: Option<(ArgLoc, ValType)>,
}

impl Iterator for ArgOperandLocs<'_> {
    type Item = (ArgLoc, ValType);

    fn next(&mut self) -> Option<(ArgLoc, ValType)> {
        if let Some(high) = self.high.take() {
            return Some(high);
        }
        let (&loc, &t) = self.args.next()?;
        match loc.place {
            Place::Stack(off) if self.split && t == ValType::I64 => {
                let half = |off| {
                    let loc = ArgLoc {
                        place: Place::Stack(off),
                        by_ref: false,
                        size: 4,
                        dup_gp: None,
                    };
                    (loc, ValType::I32)
                };
                self.high = Some(half(off + 4));
                Some(half(off))
            }
            _ => Some((loc, t)),
        }
    }
}

/// The type of each value a return or a call's results carry for the
/// result types `types`: one per type, but two `i32` halves, low then high,
/// for an `i64` in 32-bit mode (AsmJit's `ret(lo, hi)`), which
/// [`assign_rets`] puts in eax and edx.
pub fn ret_operand_types(conv: &CallConv, types: &[ValType]) -> SmallVec<[ValType; 2]> {
    operand_types(conv, types)
}

/// Assigns registers to return values of `types`: one per value of
/// [`ret_operand_types`] (an `i64` in 32-bit mode takes eax, then edx).
pub fn assign_rets(conv: &CallConv, types: &[ValType]) -> Result<SmallVec<[PReg; 2]>, AbiError> {
    if conv.single_ret && types.len() > 1 {
        return Err(AbiError::Unsupported("more than one return value"));
    }
    let (mut gi, mut vi) = (0, 0);
    let mut out = SmallVec::new();
    for &t in &ret_operand_types(conv, types) {
        let r = if t.is_int() {
            if t.size() > conv.ptr_size as u16 {
                return Err(AbiError::Unsupported(
                    "integer return wider than a register",
                ));
            }
            gi += 1;
            conv.gp_rets.get(gi - 1).copied()
        } else if t.is_float() && conv.float_ret_x87 {
            vi += 1;
            (vi == 1).then_some(PReg::new(RegClass::X87, 0))
        } else {
            if t.size() > conv.max_vec_ret {
                return Err(AbiError::Unsupported("vector return this wide"));
            }
            vi += 1;
            conv.vec_rets.get(vi - 1).copied()
        };
        out.push(r.ok_or(AbiError::Unsupported("too many return values"))?);
    }
    Ok(out)
}
