//! Calling-convention lowering: turns `entry`, `ret`, `call` and tail jumps
//! into fixed-register constraints, copies and stack-argument traffic, before
//! register allocation.
//!
//! After [`lower`]:
//! - `entry` has one [`Operand::Fixed`] per register argument (`%a@rdi`);
//!   stack arguments are loaded by `copy %a, qword [inargs + off]` after it,
//!   and by-reference arguments through their pointer;
//! - `ret` has one `Fixed` operand per value (`%r@rax`), with copies before it
//!   where a value is an immediate, a view, a physical register or used twice;
//! - `call` has `[callee, fixed args..., fixed results...]`: arguments in
//!   registers are `Fixed` (an argument passed twice, an immediate or a view
//!   is first copied to a fresh virtual register), stack arguments become
//!   `copy size [outargs + off], value` before the call, 8- and 16-bit
//!   integer arguments are widened to 32 bits first (below), vectors passed by
//!   reference are copied to a new stack slot whose address is passed,
//!   System V variadic calls get `%n@rax` with the number of vector
//!   registers, Windows x64 variadic floats are duplicated into their
//!   integer register. The call's clobbers are the convention's
//!   (see [`crate::function::Function::inst_facts`]);
//! - `ret` of a float the convention returns in x87 st0 has the value in
//!   memory as its operand (a `copy` to a new stack slot before it): the
//!   target loads it onto the x87 stack as it returns; a call of such a
//!   function has a new stack slot as its last argument (the only memory
//!   operand of a lowered call), where the target stores st0 after the
//!   call, and a `copy result, slot` after it;
//! - an `i64` result in 32-bit mode is two 32-bit values in the return and
//!   in the call's results, the low half then the high half, fixed to eax
//!   and edx ([`ret_operand_types`]): AsmJit's `ret(lo, hi)` and two
//!   invoke results; an `i64` argument in 32-bit mode is likewise two
//!   32-bit values in `entry` and in the call's arguments, low then high,
//!   loaded from or stored to the two dwords of its 8-byte stack slot (low
//!   at the lower address; [`arg_operand_locs`]);
//! - the function's [`FrameInfo`] records the outgoing area size, the call
//!   alignment and the bytes the function pops on return (stdcall).
//!
//! # 8- and 16-bit integer arguments
//!
//! A call argument of type `i8`, `u8`, `i16` or `u16` is passed widened to
//! 32 bits, in its register or its stack slot, by the type's
//! [`Extension`]: sign for `i8`/`i16`, zero for `u8`/`u16`. The psABI
//! leaves bits 8/16..31 undefined, but clang and rustc callees read the
//! whole 32-bit register for `char`, `short`, `bool`, `u8`, `i16`... (the
//! de facto x86-64 System V rule, which GCC callers follow too), so a
//! register whose upper bits hold garbage would pass a wrong value.
//! - An immediate is truncated to the type and extended by its signedness
//!   (`-5` and `251` as `i8` are both passed as -5, as `u8` both as 251).
//! - A register, a view (`%v.b`) or memory is read at the type's size (the
//!   low byte or word of a wider operand) by the target's extension
//!   instruction ([`Target::extend_inst`]: `movsx` / `movzx` on x86) into
//!   a fresh 32-bit virtual register, which is then passed like any other
//!   register (`Fixed`, or stored as a dword to the stack slot).
//!
//! The rule is the same for every convention. Windows x64 does not
//! require it (MSVC callees extend what they read), 32-bit conventions pass the
//! value in a 4-byte slot, and the widening costs one instruction and never
//! changes what the callee sees of the value's own bits, so one rule keeps
//! the lowering target-agnostic and a JIT function safe to call from, and
//! to call, code built by any of those compilers. Variadic arguments are
//! typed from their registers (`i64` for general-purpose ones) and are not
//! widened: C promotes narrow variadic arguments to `int` at the call, so
//! the caller passes them already widened. Return values are left as the
//! function computed them: nothing is added at `ret`, so a function
//! returning `u8` leaves bits 8..63 of its result register as they are
//! (callers may not rely on them, in either psABI). For the same reason a
//! call result of one of these types is received in a register of the
//! type's size and, when the result operand is wider, extended into it by
//! the type's signedness after the call (`movzx r64, r8` for `u8`).
//!
//! On error the instruction list is left as it was (new virtual registers and
//! stack slots made before the error stay, unused).

use crate::abi::*;
use crate::entities::*;
use crate::function::*;
use crate::target::{OpShape, Target};
use core::fmt;
use cranelift_entity::EntityRef;
use smallvec::SmallVec;

/// A lowering error, at an instruction of the function as it was.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LowerError {
    /// The function was already lowered.
    AlreadyLowered,
    /// A convention cannot do what an instruction asks.
    Abi {
        /// The instruction (index in the unlowered function).
        inst: Inst,
        /// What went wrong.
        error: AbiError,
    },
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerError::AlreadyLowered => f.write_str("function already lowered"),
            LowerError::Abi { inst, error } => write!(f, "instruction {}: {error}", inst.index()),
        }
    }
}

impl std::error::Error for LowerError {}

struct Lowerer<'a> {
    target: &'a dyn Target,
    out: InstBuf,
    frame: FrameInfo,
    used: SmallVec<[VReg; 8]>,
    fixed: SmallVec<[Operand; 8]>,
    /// Instructions after the one being lowered, `kind dst, src`: copies
    /// out of fixed registers and slots, and extensions of narrow values.
    after: SmallVec<[(InstKind, Operand, Operand); 4]>,
    nargs: Vec<(CallRef, u16)>,
}

fn conv_of<'t>(target: &'t dyn Target, sig: &Signature) -> Result<&'t CallConv, AbiError> {
    target
        .call_conv(sig.conv)
        .ok_or(AbiError::UnknownConv(sig.conv))
}

/// An immediate argument of type `ty` as the 32-bit value passed: for an
/// 8- or 16-bit integer type truncated to it and extended by its
/// signedness, else unchanged.
fn narrow_immediate(v: i64, ty: ValType) -> i64 {
    match ty {
        ValType::I8 => i64::from(v as i8),
        ValType::U8 => i64::from(v as u8),
        ValType::I16 => i64::from(v as i16),
        ValType::U16 => i64::from(v as u16),
        _ => v,
    }
}

/// The type of each of the `found` values a return or call result list
/// has for the result types `rets` ([`ret_operand_types`]), or the error
/// that says how many it needs.
fn result_types(
    conv: &CallConv,
    rets: &[ValType],
    found: usize,
) -> Result<SmallVec<[ValType; 2]>, AbiError> {
    let types = ret_operand_types(conv, rets);
    if types.len() == found {
        Ok(types)
    } else if types.len() != rets.len() {
        Err(AbiError::BadOperand(
            "an i64 result in 32-bit mode is two 32-bit values, the low half then the high half (eax, edx)",
        ))
    } else {
        Err(AbiError::Count {
            expected: rets.len(),
            found,
        })
    }
}

/// The error for an argument list of `found` values where the parameter
/// types `params` need `expected` ([`arg_operand_count`]): one that says an
/// `i64` in 32-bit mode is two values when the signature has one.
fn arg_count_error(params: &[ValType], expected: usize, found: usize) -> AbiError {
    if expected != params.len() {
        AbiError::BadOperand(
            "an i64 argument in 32-bit mode is two 32-bit values, the low half then the high half",
        )
    } else {
        AbiError::Count { expected, found }
    }
}

fn mem(base: MemBase, off: u32, size: u16) -> Operand {
    Operand::Mem(Mem::new(base, off as i32, size))
}

/// Runs `body` with the function's own signature taken out of it for the
/// time (lowering adds virtual registers to `f` while it reads the
/// signature: no clone of it needed).
fn with_own_sig<R>(f: &mut Function, body: impl FnOnce(&mut Function, &Signature) -> R) -> R {
    let placeholder = Signature {
        params: SmallVec::new(),
        rets: SmallVec::new(),
        conv: f.sig.conv,
        varargs: false,
    };
    let sig = core::mem::replace(&mut f.sig, placeholder);
    let result = body(f, &sig);
    f.sig = sig;
    result
}

impl Lowerer<'_> {
    /// A `Fixed(v, p)` for `op` if it is a whole vreg of p's class not yet
    /// fixed in this instruction; otherwise a fresh vreg and a copy (`before`
    /// = copy from op into the fresh one, else the fresh one into op after).
    fn fix(&mut self, f: &mut Function, op: Operand, p: PReg, size: u16, before: bool) -> Operand {
        if let Operand::Reg(Reg::Virt(v, view)) = op
            && view == View::FULL
            && !self.used.contains(&v)
            && f.get_vreg(v).is_some_and(|d| d.class == p.class)
        {
            self.used.push(v);
            return Operand::Fixed(v, p);
        }
        let t = f.new_vreg(p.class, size, None);
        self.used.push(t);
        if before {
            self.out.push(InstKind::Copy, &[Operand::v(t), op]);
        } else {
            self.after.push((InstKind::Copy, op, Operand::v(t)));
        }
        Operand::Fixed(t, p)
    }

    /// The entry or return (`is_entry`) with operands `ops` of the
    /// function `f` lowered as most are: integer values no wider than a
    /// register, each in the next integer register of the convention,
    /// every operand a whole vreg fixed in place (no copy, no new vreg, so
    /// the signature is read where it is, without [`with_own_sig`]).
    /// Leaves the operands in `fixed` (and `used` as it was: empty) and
    /// returns `true`; `false` with `fixed` empty again when the
    /// instruction is not such one (then [`entry`](Self::entry) or
    /// [`ret`](Self::ret) lowers it, and reports any error).
    fn abi_in_place(&mut self, f: &Function, ops: &[Operand], is_entry: bool) -> bool {
        let sig = &f.sig;
        let target = self.target;
        let Some(conv) = target.call_conv(sig.conv) else {
            return false;
        };
        // The conditions of the fast paths of `entry` and `ret`.
        let (types, regs) = if is_entry {
            if sig.varargs
                || conv.callee_pops
                || !sig.params.iter().all(|&t| {
                    t.is_int() && t.size() <= conv.gp_arg_max_size && !split_in_two(conv, t)
                })
            {
                return false;
            }
            (&sig.params[..], &conv.gp_args[..])
        } else {
            if (conv.single_ret && sig.rets.len() > 1)
                || !sig
                    .rets
                    .iter()
                    .all(|&t| t.is_int() && t.size() <= conv.ptr_size as u16)
            {
                return false;
            }
            (&sig.rets[..], &conv.gp_rets[..])
        };
        if ops.len() != types.len() || types.len() > regs.len() {
            return false;
        }
        // `used` is not kept: the vregs fixed so far are those of the
        // operands before (each fixed in place, or the loop stops).
        for (k, (&op, &p)) in ops.iter().zip(regs).enumerate() {
            match op {
                Operand::Reg(Reg::Virt(v, View::FULL))
                    if !ops[..k]
                        .iter()
                        .any(|o| matches!(*o, Operand::Reg(Reg::Virt(u, _)) if u == v))
                        && f.get_vreg(v).is_some_and(|d| d.class == p.class) =>
                {
                    self.fixed.push(Operand::Fixed(v, p));
                }
                _ => {
                    self.fixed.clear();
                    return false;
                }
            }
        }
        true
    }

    /// `op`, an argument of the 8- or 16-bit integer type `ty`, widened to
    /// 32 bits by `ext` (see the module docs): an immediate is extended in
    /// place; a register, view or memory operand is read at the type's
    /// size by the target's extension instruction into a fresh 32-bit
    /// virtual register.
    fn widen(
        &mut self,
        f: &mut Function,
        op: Operand,
        ty: ValType,
        ext: Extension,
    ) -> Result<Operand, AbiError> {
        let bytes = ty.size();
        let src = match op {
            Operand::Imm(v) => return Ok(Operand::Imm(narrow_immediate(v, ty))),
            Operand::Mem(m) => Operand::Mem(Mem { size: bytes, ..m }),
            Operand::Reg(r) => match f.operand_shape(&op) {
                OpShape::Reg {
                    class: RegClass::GP,
                    size,
                    high,
                    ..
                } => {
                    if high || (size != 0 && size <= bytes) {
                        op
                    } else {
                        // The low byte or word of a wider register.
                        let low = View::low(bytes).unwrap_or(View::FULL);
                        Operand::Reg(match r {
                            Reg::Virt(v, _) => Reg::Virt(v, low),
                            Reg::Phys(p, _) => Reg::Phys(p, low),
                        })
                    }
                }
                _ => {
                    return Err(AbiError::BadOperand(
                        "an 8- or 16-bit integer argument must be a general-purpose register",
                    ));
                }
            },
            Operand::Label(_) | Operand::Fixed(..) => {
                return Err(AbiError::BadOperand("call argument"));
            }
        };
        let inst = self.extend_inst(ext)?;
        let t = f.new_vreg(RegClass::GP, 4, None);
        self.out.push(InstKind::Target(inst), &[Operand::v(t), src]);
        Ok(Operand::v(t))
    }

    /// The target's extension instruction for `ext` (`movsx` / `movzx`).
    fn extend_inst(&self, ext: Extension) -> Result<TargetInst, AbiError> {
        self.target.extend_inst(ext).ok_or(AbiError::Unsupported(
            "an 8- or 16-bit integer: the target has no extension instruction",
        ))
    }

    /// How a value of type `ty` arriving in a register or slot of its own
    /// size gets into `op`: `Some(extension)` when `ty` is an 8- or 16-bit
    /// integer and `op` a wider general-purpose register (a copy cannot
    /// change the size, and the bits above the type are undefined), `None`
    /// when a copy does.
    fn narrow_into(
        &self,
        f: &Function,
        op: Operand,
        ty: ValType,
    ) -> Result<Option<TargetInst>, AbiError> {
        let Some(ext) = ty.narrow_extension() else {
            return Ok(None);
        };
        let wider = matches!(
            f.operand_shape(&op),
            OpShape::Reg { class: RegClass::GP, size, high: false, .. } if size > ty.size()
        );
        if wider {
            self.extend_inst(ext).map(Some)
        } else {
            Ok(None)
        }
    }

    fn flush_after(&mut self) {
        if self.after.is_empty() {
            // Nothing to move out (the list is inline: moving it copies it).
            return;
        }
        for (kind, d, s) in core::mem::take(&mut self.after) {
            self.out.push(kind, &[d, s]);
        }
    }

    /// The function's entry; `sig` is its signature (see [`with_own_sig`]).
    /// Leaves the entry's operands in `fixed` and what follows it in
    /// `after` (see [`lower`]).
    fn entry(
        &mut self,
        f: &mut Function,
        ops: &[Operand],
        sig: &Signature,
    ) -> Result<(), AbiError> {
        let conv = conv_of(self.target, sig)?;
        // Most entries: integer parameters, each in the next integer
        // register (what `assign_args` gives them, asked of nothing).
        if !sig.varargs
            && !conv.callee_pops
            && ops.len() == sig.params.len()
            && sig.params.len() <= conv.gp_args.len()
            && sig
                .params
                .iter()
                .all(|&t| t.is_int() && t.size() <= conv.gp_arg_max_size && !split_in_two(conv, t))
        {
            for ((&op, &ty), &p) in ops.iter().zip(&sig.params).zip(&conv.gp_args) {
                if !matches!(op, Operand::Reg(_)) {
                    return Err(AbiError::BadOperand("entry operands must be registers"));
                }
                let x = self.fix(f, op, p, ty.size(), false);
                self.fixed.push(x);
            }
            return Ok(());
        }
        let asg = assign_args(conv, &sig.params, sig.varargs)?;
        // One value per parameter, two (low, high) for an i64 in 32-bit mode.
        let values = arg_operand_count(conv, &sig.params);
        if ops.len() != values {
            return Err(arg_count_error(&sig.params, values, ops.len()));
        }
        let locs = arg_operand_locs(conv, &sig.params, &asg)?;
        if conv.callee_pops {
            self.frame.ret_pop = asg.stack_size - conv.shadow_space.min(asg.stack_size);
        }
        let ptr = conv.ptr_size as u16;
        for (&op, (loc, ty)) in ops.iter().zip(locs) {
            if !matches!(op, Operand::Reg(_)) {
                return Err(AbiError::BadOperand("entry operands must be registers"));
            }
            match (loc.place, loc.by_ref) {
                (Place::Reg(p), false) => {
                    let x = self.fix(f, op, p, ty.size(), false);
                    self.fixed.push(x);
                }
                (Place::Reg(p), true) => {
                    let t = f.new_vreg(RegClass::GP, ptr, None);
                    self.fixed.push(Operand::Fixed(t, p));
                    self.after
                        .push((InstKind::Copy, op, Operand::Mem(Mem::vreg(t, 0, ty.size()))));
                }
                (Place::Stack(off), false) => {
                    let slot = mem(MemBase::InArgs, off, ty.size());
                    let kind = match self.narrow_into(f, op, ty)? {
                        Some(extension) => InstKind::Target(extension),
                        None => InstKind::Copy,
                    };
                    self.after.push((kind, op, slot));
                }
                (Place::Stack(off), true) => {
                    let t = f.new_vreg(RegClass::GP, ptr, None);
                    self.after.push((
                        InstKind::Copy,
                        Operand::v(t),
                        mem(MemBase::InArgs, off, ptr),
                    ));
                    self.after
                        .push((InstKind::Copy, op, Operand::Mem(Mem::vreg(t, 0, ty.size()))));
                }
            }
        }
        Ok(())
    }

    /// A return; `sig` is the function's signature (see [`with_own_sig`]).
    /// Leaves the return's operands in `fixed` (see [`lower`]).
    fn ret(&mut self, f: &mut Function, ops: &[Operand], sig: &Signature) -> Result<(), AbiError> {
        let conv = conv_of(self.target, sig)?;
        // Most returns: integer results no wider than a register, each in
        // the next integer result register (what `assign_rets` gives them).
        if ops.len() == sig.rets.len()
            && sig.rets.len() <= conv.gp_rets.len()
            && !(conv.single_ret && sig.rets.len() > 1)
            && sig
                .rets
                .iter()
                .all(|&t| t.is_int() && t.size() <= conv.ptr_size as u16)
        {
            for ((&op, &ty), &p) in ops.iter().zip(&sig.rets).zip(&conv.gp_rets) {
                if matches!(op, Operand::Label(_) | Operand::Fixed(..)) {
                    return Err(AbiError::BadOperand("return value"));
                }
                let x = self.fix(f, op, p, ty.size(), true);
                self.fixed.push(x);
            }
            return Ok(());
        }
        let types = result_types(conv, &sig.rets, ops.len())?;
        let regs = assign_rets(conv, &sig.rets)?;
        for ((&op, &p), &ty) in ops.iter().zip(regs.iter()).zip(types.iter()) {
            if matches!(op, Operand::Label(_) | Operand::Fixed(..)) {
                return Err(AbiError::BadOperand("return value"));
            }
            if p.class == RegClass::X87 {
                // A float returned on the x87 register stack (32-bit
                // cdecl, stdcall, fastcall): `ret` reads it from memory (a
                // new stack slot, or the memory operand given), from where
                // the target loads it (`fld`) before it returns.
                let value = match op {
                    Operand::Mem(m) => Operand::Mem(Mem {
                        size: ty.size(),
                        ..m
                    }),
                    Operand::Reg(_) => {
                        let slot = f.new_stack_slot(ty.size() as u32, ty.size() as u32);
                        let value = Operand::Mem(Mem::new(MemBase::Slot(slot), 0, ty.size()));
                        self.out.push(InstKind::Copy, &[value, op]);
                        value
                    }
                    _ => return Err(AbiError::BadOperand("x87 return value")),
                };
                self.fixed.push(value);
                continue;
            }
            let x = self.fix(f, op, p, ty.size(), true);
            self.fixed.push(x);
        }
        Ok(())
    }

    fn call(
        &mut self,
        f: &mut Function,
        kind: InstKind,
        c: CallRef,
        ops: &[Operand],
    ) -> Result<(), AbiError> {
        let cd = *f
            .get_call_data(c)
            .ok_or(AbiError::BadOperand("unknown call record"))?;
        let sig = f
            .get_sig_ref(cd.sig)
            .cloned()
            .ok_or(AbiError::BadOperand("unknown signature"))?;
        let conv = conv_of(self.target, &sig)?;
        let nargs = cd.nargs as usize;
        if ops.len() < 1 + nargs {
            return Err(AbiError::BadOperand("malformed call"));
        }
        let callee = ops[0];
        let (args, rets) = ops[1..].split_at(nargs);
        // The values of the fixed parameters: two for an i64 in 32-bit mode.
        let fixed = arg_operand_count(conv, &sig.params);
        let count_ok = if sig.varargs {
            args.len() >= fixed
        } else {
            args.len() == fixed
        };
        if !count_ok {
            return Err(arg_count_error(&sig.params, fixed, args.len()));
        }
        let tail = matches!(kind, InstKind::TailJump(_));
        let ret_types = if tail {
            SmallVec::new()
        } else {
            result_types(conv, &sig.rets, rets.len())?
        };
        let mut types: SmallVec<[ValType; 8]> = sig.params.iter().copied().collect();
        for a in &args[fixed..] {
            types.push(match *a {
                Operand::Reg(r) => {
                    let sh = f.operand_shape(&Operand::Reg(r));
                    match sh {
                        OpShape::Reg { class, size, .. } => ValType::for_vararg(class, size),
                        _ => ValType::I64,
                    }
                }
                _ => ValType::I64,
            });
        }
        let asg = assign_args(conv, &types, sig.varargs)?;
        let locs = arg_operand_locs(conv, &types, &asg)?;
        if tail && asg.stack_size > conv.shadow_space {
            return Err(AbiError::Unsupported("tail jump with stack arguments"));
        }
        self.frame.out_args = self.frame.out_args.max(asg.stack_size);
        self.frame.call_align = self.frame.call_align.max(asg.stack_align);
        let ptr = conv.ptr_size as u16;
        for (&op, (loc, ty)) in args.iter().zip(locs) {
            if matches!(op, Operand::Label(_) | Operand::Fixed(..)) {
                return Err(AbiError::BadOperand("call argument"));
            }
            // An 8- or 16-bit integer is passed widened to 32 bits (module docs).
            let (op, size) = match ty.narrow_extension() {
                Some(ext) if !loc.by_ref => (self.widen(f, op, ty, ext)?, loc.size.max(4)),
                _ => (op, loc.size),
            };
            // Memory cannot be copied to memory: go through a register.
            let op = if matches!(op, Operand::Mem(_))
                && (loc.by_ref || matches!(loc.place, Place::Stack(_)))
            {
                let t = f.new_vreg(ty.class(), ty.size(), None);
                self.out.push(InstKind::Copy, &[Operand::v(t), op]);
                Operand::v(t)
            } else {
                op
            };
            let val = if loc.by_ref {
                let slot = f.new_stack_slot(ty.size() as u32, (ty.size() as u32).min(64));
                self.out.push(
                    InstKind::Copy,
                    &[
                        Operand::Mem(Mem::new(MemBase::Slot(slot), 0, ty.size())),
                        op,
                    ],
                );
                let t = f.new_vreg(RegClass::GP, ptr, None);
                self.out.push(
                    InstKind::Addr,
                    &[
                        Operand::v(t),
                        Operand::Mem(Mem::new(MemBase::Slot(slot), 0, 0)),
                    ],
                );
                Operand::v(t)
            } else {
                op
            };
            match loc.place {
                Place::Reg(p) => {
                    let x = self.fix(f, val, p, size, true);
                    self.fixed.push(x);
                }
                Place::Stack(off) => {
                    self.out
                        .push(InstKind::Copy, &[mem(MemBase::OutArgs, off, size), val]);
                }
            }
            if let Some(g) = loc.dup_gp {
                let t = f.new_vreg(RegClass::GP, 8, None);
                self.out.push(InstKind::Copy, &[Operand::v(t), val]);
                self.used.push(t);
                self.fixed.push(Operand::Fixed(t, g));
            }
        }
        if sig.varargs
            && let Some(r) = conv.varargs_vec_count
        {
            let t = f.new_vreg(RegClass::GP, 4, None);
            self.out.push(
                InstKind::Copy,
                &[Operand::v(t), Operand::Imm(asg.vec_regs_used as i64)],
            );
            self.used.push(t);
            self.fixed.push(Operand::Fixed(t, r));
        }
        let mut n_fixed_args = self.fixed.len();
        if !tail {
            let regs = assign_rets(conv, &sig.rets)?;
            self.used.clear();
            for ((&op, &p), &ty) in rets.iter().zip(regs.iter()).zip(ret_types.iter()) {
                if !matches!(op, Operand::Reg(_)) {
                    return Err(AbiError::BadOperand("call result"));
                }
                if p.class == RegClass::X87 {
                    // A float result on the x87 register stack: the target
                    // stores it (`fstp`) to the slot given as the call's last
                    // argument, from where it is copied to the result.
                    let slot = f.new_stack_slot(ty.size() as u32, ty.size() as u32);
                    let value = Operand::Mem(Mem::new(MemBase::Slot(slot), 0, ty.size()));
                    self.fixed.insert(n_fixed_args, value);
                    n_fixed_args += 1;
                    self.after.push((InstKind::Copy, op, value));
                    continue;
                }
                // A narrow result into a wider register: received at the
                // type's size and extended after the call (the callee leaves
                // the bits above the type undefined, in either psABI).
                let x = match self.narrow_into(f, op, ty)? {
                    Some(extension) => {
                        let t = f.new_vreg(RegClass::GP, ty.size(), None);
                        self.used.push(t);
                        self.after
                            .push((InstKind::Target(extension), op, Operand::v(t)));
                        Operand::Fixed(t, p)
                    }
                    None => self.fix(f, op, p, ty.size(), false),
                };
                self.fixed.push(x);
            }
        }
        self.nargs.push((c, n_fixed_args as u16));
        let mut all: SmallVec<[Operand; 12]> = SmallVec::new();
        all.push(callee);
        all.extend(self.fixed.drain(..));
        self.out.push(kind, &all);
        self.flush_after();
        Ok(())
    }
}

/// The index of the first entry, return, call or tail jump of `insts`
/// from `from` on. Out of line: in `lower`'s body its loop keeps nothing
/// in registers.
#[inline(never)]
fn next_abi(insts: &[InstData], from: usize) -> Option<usize> {
    let rest = insts.get(from..)?;
    rest.iter().position(is_abi).map(|skip| from + skip)
}

/// Whether `d` is an entry, return, call or tail jump (what lowering changes).
#[inline(always)]
fn is_abi(d: &InstData) -> bool {
    matches!(
        d.kind,
        InstKind::Entry | InstKind::Ret | InstKind::Call(_) | InstKind::TailJump(_)
    )
}

/// The most entries, returns, calls and tail jumps whose indices
/// [`abi_positions`] collects.
const FEW_ABI: u32 = 8;

/// The indices of the entries, returns, calls and tail jumps of `insts`,
/// in order, given that there are at most `bound` of them (at most
/// [`FEW_ABI`]): searched from both ends at once, so that a function whose
/// entry comes first and whose return comes last is not walked through.
fn abi_positions(insts: &[InstData], bound: u32) -> SmallVec<[usize; FEW_ABI as usize]> {
    debug_assert!(bound <= FEW_ABI);
    let mut found = SmallVec::<[usize; FEW_ABI as usize]>::new();
    // Those found from the back, last first (fewer than `bound`: room).
    let mut back = [0usize; FEW_ABI as usize];
    let mut num_back = 0;
    // `insts[low..high]` is not searched yet.
    let (mut low, mut high) = (0, insts.len());
    while low < high && ((found.len() + num_back) as u32) < bound {
        if is_abi(&insts[low]) {
            found.push(low);
        }
        low += 1;
        if low < high {
            high -= 1;
            if is_abi(&insts[high])
                && let Some(slot) = back.get_mut(num_back)
            {
                *slot = high;
                num_back += 1;
            }
        }
    }
    for &at in back[..num_back].iter().rev() {
        found.push(at);
    }
    found
}

/// Lowers every entry, return, call and tail jump of `func` for `target`'s
/// conventions (see the module docs) and records the [`FrameInfo`].
pub fn lower(func: &mut Function, target: &dyn Target) -> Result<(), LowerError> {
    if func.frame.is_some() {
        return Err(LowerError::AlreadyLowered);
    }
    let abi_bound = func.kind_summary().abi_bound();
    let (insts, mut ops) = func.take_insts();
    let mut l = Lowerer {
        target,
        out: func.take_spare(),
        frame: FrameInfo {
            call_align: 0,
            ..FrameInfo::default()
        },
        used: SmallVec::new(),
        fixed: SmallVec::new(),
        after: SmallVec::new(),
        nargs: Vec::new(),
    };
    // In place while every entry, return and call lowers to one
    // instruction of its kind with as many operands (the common case: its
    // registers become fixed ones): only those operands are rewritten, and
    // `undo` keeps what they were in case a later instruction fails. At
    // the first that does not, the list is rebuilt from there on in `l.out`.
    let mut rebuilding = false;
    let mut undo: SmallVec<[(usize, Operand); 8]> = SmallVec::new();
    let mut result = Ok(());
    let all = insts.as_values_slice();
    // A few of them: where they are, found without walking the whole list.
    let few = (abi_bound <= FEW_ABI).then(|| abi_positions(all, abi_bound));
    let mut at = 0;
    while at < all.len() {
        if !rebuilding {
            // In place only entries, returns and calls change: straight to
            // the next (else one test per instruction between them).
            let next = match &few {
                Some(positions) => positions.iter().copied().find(|&p| p >= at),
                None => next_abi(all, at),
            };
            match next {
                Some(next) => at = next,
                None => break,
            }
        }
        let (i, d) = (Inst::new(at), &all[at]);
        at += 1;
        if !is_abi(d) {
            if rebuilding {
                l.out
                    .push_tagged(d.kind, &ops[d.ops_range()], d.tag().unwrap_or(NO_TAG));
            }
            continue;
        }
        let o = &ops[d.ops_range()];
        l.used.clear();
        l.fixed.clear();
        l.after.clear();
        let r = match d.kind {
            InstKind::Entry | InstKind::Ret
                if l.abi_in_place(func, o, d.kind == InstKind::Entry) =>
            {
                Ok(())
            }
            InstKind::Entry => with_own_sig(func, |f, sig| l.entry(f, o, sig)),
            InstKind::Ret => with_own_sig(func, |f, sig| l.ret(f, o, sig)),
            InstKind::Call(c) | InstKind::TailJump(c) => l.call(func, d.kind, c, o),
            // Not reached (the kinds above are the ones lowered).
            _ => Ok(()),
        };
        if let Err(error) = r {
            result = Err(LowerError::Abi { inst: i, error });
            break;
        }
        if matches!(d.kind, InstKind::Entry | InstKind::Ret) {
            // Its operands are in `l.fixed`, what follows it in `l.after`:
            // without copies around it, it changes in place (without a
            // trip through `l.out`).
            if !rebuilding
                && l.out.insts.is_empty()
                && l.after.is_empty()
                && l.fixed.len() == d.ops_len()
                && d.tag().is_none()
            {
                // By index: a `drain` costs more than these few copies.
                for (k, at) in d.ops_range().enumerate() {
                    let new = l.fixed[k];
                    if ops[at] != new {
                        undo.push((at, ops[at]));
                        ops[at] = new;
                    }
                }
                continue;
            }
            let fixed = core::mem::take(&mut l.fixed);
            l.out.push(d.kind, &fixed);
            l.flush_after();
        }
        if rebuilding {
            continue;
        }
        let in_place = l.out.insts.len() == 1
            && l.out.insts.values().all(|n| n.kind == d.kind)
            && l.out.ops.len() == d.ops_len()
            && d.tag().is_none();
        if in_place {
            for (at, new) in d.ops_range().zip(l.out.ops.drain(..)) {
                if ops[at] != new {
                    undo.push((at, ops[at]));
                    ops[at] = new;
                }
            }
            l.out.insts.clear();
            continue;
        }
        // From here on a new list: the instructions before this one (those
        // lowered in place as they are now), then what this one became.
        rebuilding = true;
        let lowered: Vec<(InstKind, SmallVec<[Operand; 8]>)> = l
            .out
            .insts
            .values()
            .map(|n| (n.kind, l.out.ops[n.ops_range()].iter().copied().collect()))
            .collect();
        l.out.insts.clear();
        l.out.ops.clear();
        // Room for the lowered list at once (no doubling slack): each
        // operand of an entry, return or call adds at most two copies.
        let mut extra = (0usize, 0usize);
        for d in insts.values() {
            if is_abi(d) {
                extra.0 += 2 * d.ops_len() + 2;
                extra.1 += 4 * d.ops_len() + 4;
            }
        }
        l.out.insts.reserve_exact(insts.len() + extra.0);
        l.out.ops.reserve_exact(ops.len() + extra.1);
        for before in insts.values().take(i.index()) {
            l.out.push_tagged(
                before.kind,
                &ops[before.ops_range()],
                before.tag().unwrap_or(NO_TAG),
            );
        }
        for (kind, lowered_ops) in &lowered {
            l.out.push(*kind, lowered_ops);
        }
    }
    if result.is_err() {
        for &(at, old) in undo.iter().rev() {
            ops[at] = old;
        }
    }
    match result {
        Ok(()) => {
            if let Some(conv) = target.call_conv(func.sig.conv) {
                l.frame.call_align = l.frame.call_align.max(conv.stack_align);
            }
            for &(c, n) in &l.nargs {
                func.call_data_mut(c).nargs = n;
            }
            if rebuilding {
                func.set_insts(l.out.insts, l.out.ops, l.out.kinds);
                func.put_spare(insts, ops);
            } else {
                func.set_insts(insts, ops, KindSummary::default());
                func.put_spare(l.out.insts, l.out.ops);
                func.shrink_large_insts();
            }
            func.frame = Some(l.frame);
            Ok(())
        }
        Err(e) => {
            func.set_insts(insts, ops, KindSummary::default());
            func.put_spare(l.out.insts, l.out.ops);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `abi_positions` finds every entry, return, call and tail jump in
    /// order, from both ends, wherever they are (first, last, middle,
    /// side by side), and stops early only when the bound is reached.
    #[test]
    fn abi_positions_finds_each_in_order() {
        let call = InstKind::Call(CallRef::new(0));
        let mut f = Function::new("f", Signature::new(CallConvId(0), &[], &[]));
        for len in 0..12usize {
            for mask in 0u32..1 << len {
                let sig = f.sig.clone();
                f.clear("f", sig);
                for k in 0..len {
                    let kind = match (mask >> k & 1, k % 3) {
                        (0, _) => InstKind::Target(TargetInst(1)),
                        (_, 0) => InstKind::Entry,
                        (_, 1) => InstKind::Ret,
                        _ => call,
                    };
                    f.push(kind, &[]).expect("small function");
                }
                let insts = f.all_insts();
                let expected: Vec<usize> = (0..len).filter(|k| mask >> k & 1 != 0).collect();
                if expected.len() > FEW_ABI as usize {
                    continue;
                }
                for bound in expected.len() as u32..=FEW_ABI {
                    let got = abi_positions(insts, bound);
                    assert_eq!(got.as_slice(), expected, "mask {mask:#b}, bound {bound}");
                }
            }
        }
    }
}
