//! [`Compiler`]: AsmJit's model in Rust. Write x86 instructions on virtual
//! registers; the Compiler builds the IR, lowers the calling convention,
//! allocates registers and emits the function into a [`CodeHolder`].
//!
//! ```
//! use jitforge::compiler::{Compiler, Signature, ValType, X86Target};
//! use jitforge::x86::*;
//! use jitforge::{Arch, CodeHolder, JitRuntime};
//!
//! let runtime = JitRuntime::new()?;
//! let mut code = CodeHolder::new(Arch::X64);
//! let mut cc = Compiler::new(&mut code);
//! cc.add_func("sum3", Signature::new(X86Target::SYSV64, &[ValType::I64; 3], &[ValType::I64]))?;
//! let (a, b, c) = (cc.new_gp64("a"), cc.new_gp64("b"), cc.new_gp64("c"));
//! cc.set_arg(0, a)?;
//! cc.set_arg(1, b)?;
//! cc.set_arg(2, c)?;
//! cc.add(a, b)?;
//! cc.add(a, c)?;
//! cc.ret(&[a.into()])?;
//! cc.end_func()?;
//! cc.finalize()?;
//! drop(cc);
//! let function = runtime.add(&code)?;
//! // SAFETY: the code is a System V function of three integers.
//! let f: extern "C" fn(u64, u64, u64) -> u64 = unsafe { function.function() };
//! assert_eq!(f(1, 20, 300), 321);
//! # Ok::<(), jitforge::Error>(())
//! ```
//!
//! # Implicit registers
//!
//! Instructions with implicit registers take virtual registers for them,
//! written first as in AsmJit: `cc.idiv(hi, lo, src)` (rdx:rax / src),
//! `cc.imul(hi, lo, src)` and `cc.mul(..)` (widening), `cc.cqo(hi, lo)`,
//! `cc.rdtsc(hi, lo)`, `cc.cpuid(a, b, c, d)`, `cc.rep(count).movsb(dst,
//! src)`, `cc.rep(count).stosb(dst, value)`; `cc.cmpxchg(dst, src,
//! expected)` takes rax last. The dynamic path takes the same operands
//! (`cc.emit(Mnemonic::Idiv, &[hi, lo, src])`). The allocator places each
//! in its register (a value already there moves), so nothing physical is
//! named. Leaving out an implicit register that is read (`cc.idiv(src)`)
//! is an error naming the layout; one only written (`syscall`'s rcx) may be
//! left out and is clobbered. Shifts by `cl` take any virtual register
//! (`cc.shl(x, n.r8())`). The whole convention is in [`super::target`].

use super::ra::RaView;
use super::rewrite::{Frame, Rewriter};
use super::target::{FactsTable, Prefix, X86Inst, X86Target};
use crate::builder::Builder;
use crate::code::{CodeHolder, Label};
use crate::error::{Error, Result};
use crate::x86::{
    Arg, Emitter, Gp8Low, Gp16, Gp32, Gp64, InstOptions, KReg, Mem, MemBase, Mnemonic, Operand,
    Reg, RegKind, Xmm, Ymm, Zmm,
};
use jitforge_ir::cfg::{Cfg, remove_unreachable};
use jitforge_ir::target::{ExtendedTarget, InstFacts, OpShape, Target};
use jitforge_ir::{
    Function as IrFunction, Label as IrLabel, Mem as IrMem, MemBase as IrMemBase,
    Operand as IrOperand, Reg as IrReg, RegClass as IrClass, Signature, VReg as IrVReg, View,
};
use jitforge_regalloc::{Allocator, MachineEnv, Options, Output};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// What the front end knows of a function it recorded (a function given
/// as IR, [`Compiler::add_ir_function`], has none).
#[derive(Clone, Copy)]
struct Recorded {
    /// [`FuncState::wide_phys`].
    wide_phys: bool,
}

/// The function being built (small: its tables are in the workspace,
/// [`FuncTables`], so that starting and ending a function moves a few
/// words, not the tables).
struct FuncState {
    /// Boxed: it moves between the workspace, this state and the
    /// compilation once per function, a pointer rather than its fields.
    f: Box<IrFunction>,
    entry: Label,
    entered: bool,
    /// Whether rbp is kept as a frame pointer (asked for; it also is when
    /// stack memory is aligned to more than 16 bytes).
    frame_pointer: bool,
    /// Whether an operand names a physical ymm or zmm register: set where
    /// they become IR registers (the [`ir_reg`] function), so that a
    /// function without one and without vector vregs is not searched for
    /// one ([`OperandSummary::of`]).
    wide_phys: std::cell::Cell<bool>,
}

/// The tables of the function being built, kept in the [`Workspace`]
/// (emptied by [`Compiler::add_func`], their buffers reused).
#[derive(Default)]
struct FuncTables {
    /// The argument register of each value of the parameters: one per
    /// parameter, two (low, high) for an `I64` in 32-bit mode
    /// ([`jitforge_ir::abi::arg_operand_types`]).
    args: Vec<Option<IrOperand>>,
    /// Scratch for the operands of the entry and return instructions
    /// ([`Compiler::enter_first`], [`Compiler::ret`]): a list returned by
    /// value would be copied once more.
    operands: Vec<IrOperand>,
    /// Code label id -> IR label.
    labels: IdMap<IrLabel>,
    /// IR label index -> code label.
    code_labels: Vec<Label>,
    /// The function's constant pool: label, bytes, alignment.
    constants: Vec<(Label, Vec<u8>, u32)>,
    /// Labels that stand for stack memory of this function.
    stack_labels: IdMap<jitforge_ir::StackSlot>,
    /// Labels that stand for tables of label addresses of this function.
    table_labels: IdMap<jitforge_ir::JumpTable>,
}

impl FuncTables {
    /// Empties the tables for a function of `params` argument values.
    fn reset(&mut self, params: usize) {
        self.args.clear();
        self.args.resize(params, None);
        self.labels.clear();
        self.code_labels.clear();
        self.constants.clear();
        self.stack_labels.clear();
        self.table_labels.clear();
    }
}

/// Compiles functions written on virtual registers into a [`CodeHolder`].
///
/// Register names follow AsmJit: [`new_gp64`](Compiler::new_gp64),
/// [`new_xmm`](Compiler::new_xmm)...; functions with
/// [`add_func`](Compiler::add_func), [`set_arg`](Compiler::set_arg),
/// [`ret`](Compiler::ret), [`end_func`](Compiler::end_func). Every typed
/// instruction method works on it (it is an [`Emitter`]).
pub struct Compiler<'a> {
    asm: Builder<'a>,
    logging: bool,
    target: &'static X86Target,
    func: Option<FuncState>,
    pending: InstOptions,
    /// The per-function analyses and the allocator, their buffers reused
    /// (and handed to the next Compiler of this thread when this one drops).
    ws: Pooled,
    check: bool,
    /// The counter register of the next instruction (`cc.rep(count)`).
    pending_count: Option<Operand>,
    /// The write mask of the next instruction (`cc.k(mask)`), and `{z}`.
    pending_mask: Option<(KReg, bool)>,
    /// [`Compiler::compute_ready`], kept by every change of what it reads
    /// ([`Compiler::refresh_ready`]): one test on the path of every typed
    /// instruction rather than four.
    ready: bool,
    /// The global constant pool: bytes and alignment -> label, and the
    /// entries not yet written (by [`Compiler::finalize`]).
    global_constants: ConstantMap,
    pending_globals: Vec<(Label, Vec<u8>, u32)>,
    /// The target with the calling conventions added by [`Compiler::add_call_conv`].
    convs: ExtendedTarget<'static, X86Target>,
    /// The conventions added, to rebuild `convs` on another base target.
    added_convs: Vec<jitforge_ir::abi::CallConv>,
    /// Whether xmm16..31 are allocated ([`Compiler::set_avx512`]).
    avx512: bool,
    /// Virtual register numbers are unique across the functions of a
    /// Compiler: the current function's vreg `i` is register `vreg_base + i`,
    /// so a register of an earlier function is recognised.
    vreg_base: u32,
}

impl<'a> Compiler<'a> {
    /// A Compiler writing into `code`: 64-bit System V or Windows x64
    /// functions for [`crate::Arch::X64`], 32-bit cdecl, stdcall, fastcall
    /// or vectorcall functions for [`crate::Arch::X86`] (the target follows
    /// the code holder's architecture).
    #[inline]
    pub fn new(code: &'a mut CodeHolder) -> Compiler<'a> {
        let target = if code.arch() == crate::Arch::X86 {
            X86Target::x86()
        } else {
            X86Target::x64()
        };
        // The Builder is most of a Compiler's size: it is made in its
        // field and set there (a block that returns it set is one more copy
        // of it, measurable when each Compiler compiles one small function).
        // It is made last: were it followed by a call that may unwind (and
        // then drop it), it would be made aside and copied in.
        let ws = Pooled::take();
        let convs = ExtendedTarget::new(target);
        let mut compiler = Compiler {
            logging: false,
            target,
            func: None,
            pending: InstOptions::NONE,
            ws,
            check: cfg!(debug_assertions),
            pending_count: None,
            pending_mask: None,
            ready: false,
            convs,
            added_convs: Vec::new(),
            avx512: false,
            global_constants: ConstantMap::default(),
            pending_globals: Vec::new(),
            vreg_base: 0,
            asm: Builder::new(code),
        };
        // Functions may call functions compiled later and use the global
        // constant pool written at the end.
        compiler.asm.set_deferred_labels(true);
        compiler
    }

    /// Attaches a logger: it sees every emitted instruction and, as comment
    /// lines, every move, spill store, reload and rematerialization the
    /// allocator inserted. The bytes are the same with and without it.
    pub fn set_logger(&mut self, logger: Option<&'a mut dyn crate::x86::Logger>) {
        self.logging = logger.is_some();
        self.asm.set_logger(logger);
    }

    /// Adds a calling convention for functions and calls of this Compiler
    /// (a light convention between JIT functions, [`jitforge_ir::abi::CallConv::light`]);
    /// returns its id for [`Signature::new`].
    pub fn add_call_conv(&mut self, conv: jitforge_ir::abi::CallConv) -> jitforge_ir::CallConvId {
        self.added_convs.push(conv.clone());
        self.convs.add_call_conv(conv)
    }

    /// Allocates vector registers xmm16..31 (ymm, zmm) too, for the
    /// functions added from now on: their instructions that have an EVEX
    /// form may use them ([`X86Target::new_x64_avx512`]). Only for CPUs
    /// with AVX-512 (F and VL); off by default. A 32-bit Compiler keeps its
    /// target (32-bit mode has no xmm16..31): there it changes nothing.
    pub fn set_avx512(&mut self, on: bool) {
        if !self.target.is_64bit() {
            return;
        }
        self.avx512 = on;
        self.target = if on {
            X86Target::x64_avx512()
        } else {
            X86Target::x64()
        };
        let mut convs = ExtendedTarget::new(self.target);
        for conv in &self.added_convs {
            convs.add_call_conv(conv.clone());
        }
        self.convs = convs;
    }

    /// Why an instruction has no form in 32-bit mode when an operand is
    /// what only 64-bit mode has: a 64-bit general-purpose register (virtual
    /// ones too), r8..r15 or a vector register above 7. `None` in 64-bit mode.
    fn mode_error(&self, operands: &[Operand]) -> Option<Error> {
        if self.target.is_64bit() {
            return None;
        }
        let regs = operands.iter().flat_map(|op| match op {
            Operand::Reg(r) => [Some(*r), None],
            Operand::Mem(m) => [
                match m.base() {
                    MemBase::Reg(r) => Some(r),
                    _ => None,
                },
                m.index(),
            ],
            _ => [None, None],
        });
        for r in regs.flatten() {
            let what = if r.kind() == RegKind::Gp64 {
                "a 64-bit general-purpose register"
            } else if (r.kind().is_gp() || r.kind().is_vec()) && r.id() >= 8 && !r.is_virtual() {
                "a register numbered 8 or above"
            } else {
                continue;
            };
            let name = match self.ir_reg(r) {
                Ok(IrReg::Virt(v, _)) => self
                    .func
                    .as_ref()
                    .and_then(|st| st.f.vreg_name(v))
                    .map_or_else(|| format!("{v}"), |n| format!("%{n}")),
                _ => format!("{r}"),
            };
            return Some(invalid(&format!(
                "{name} is {what}, which 32-bit mode (Arch::X86) does not have"
            )));
        }
        None
    }

    /// Keeps rbp as the frame pointer of the current function (`push rbp;
    /// mov rbp, rsp`), for debuggers and profilers that walk frames. A
    /// function with stack memory aligned to more than 16 bytes gets one
    /// anyway (it aligns rsp and needs rbp to find its arguments and return).
    pub fn set_frame_pointer(&mut self, on: bool) -> Result<()> {
        self.state()?.frame_pointer = on;
        Ok(())
    }

    /// Runs the allocation checker on every function (on by default in debug builds).
    pub fn set_checked(&mut self, check: bool) {
        self.check = check;
    }

    /// Starts a function; returns the label of its entry (to call it from other functions).
    pub fn add_func(&mut self, name: &str, signature: Signature) -> Result<Label> {
        if self.func.is_some() {
            return Err(invalid(
                "add_func: the previous function was not ended (call end_func)",
            ));
        }
        let params = self.arg_operand_count(&signature);
        // Tags of earlier functions are no longer read: a table that grew
        // large starts again (its indexes must fit the tags).
        let ws = self.ws.get();
        // Facts depend on the mode (implicit registers are capped at the
        // pointer size): a workspace last used by a Compiler of the other
        // mode starts its tables again.
        let mode64 = Some(self.target.is_64bit());
        if ws.facts_table.len() > FACTS_TABLE_KEEP || ws.mode64 != mode64 {
            ws.facts_table.clear();
            ws.shape_memo.clear();
            ws.planned.clear();
            ws.mode64 = mode64;
        }
        ws.tables.reset(params);
        let spare_function = ws.function.take();
        let entry = self.function_label(name);
        // The signature goes to `signatures` when the function is compiled
        // (moved out of it then, not cloned now).
        self.func = Some(FuncState {
            f: match spare_function {
                Some(mut f) => {
                    f.clear(name, signature);
                    f
                }
                None => Box::new(IrFunction::new(name, signature)),
            },
            entry,
            entered: false,
            frame_pointer: false,
            wide_phys: std::cell::Cell::new(false),
        });
        self.refresh_ready();
        Ok(entry)
    }

    fn state(&mut self) -> Result<&mut FuncState> {
        self.func
            .as_mut()
            .ok_or_else(|| invalid("no function: call add_func first"))
    }

    fn new_vreg(&mut self, class: IrClass, size: u16, name: &str) -> u32 {
        let base = self.vreg_base;
        match self.func.as_mut() {
            Some(st) => base
                .checked_add(st.f.new_vreg(class, size, Some(name)).as_u32())
                .unwrap_or(OUTSIDE),
            // Outside a function the register cannot be used; any use is an error then.
            None => OUTSIDE,
        }
    }

    /// The IR register for `r` in the current function.
    #[inline]
    fn ir_reg(&self, r: Reg) -> Result<IrReg> {
        let st = self
            .func
            .as_ref()
            .ok_or_else(|| invalid("no function: call add_func first"))?;
        ir_reg(&st.f, self.vreg_base, r, &st.wide_phys)
    }

    /// A new 64-bit general-purpose virtual register.
    pub fn new_gp64(&mut self, name: &str) -> Gp64 {
        Gp64::new_virtual(self.new_vreg(IrClass::GP, 8, name))
    }

    /// A new 32-bit general-purpose virtual register.
    pub fn new_gp32(&mut self, name: &str) -> Gp32 {
        Gp32::new_virtual(self.new_vreg(IrClass::GP, 4, name))
    }

    /// A new 16-bit general-purpose virtual register.
    pub fn new_gp16(&mut self, name: &str) -> Gp16 {
        Gp16::new_virtual(self.new_vreg(IrClass::GP, 2, name))
    }

    /// A new 8-bit general-purpose virtual register.
    pub fn new_gp8(&mut self, name: &str) -> Gp8Low {
        Gp8Low::new_virtual(self.new_vreg(IrClass::GP, 1, name))
    }

    /// A new 128-bit vector virtual register.
    pub fn new_xmm(&mut self, name: &str) -> Xmm {
        Xmm::new_virtual(self.new_vreg(IrClass::VEC, 16, name))
    }

    /// A new 256-bit vector virtual register.
    pub fn new_ymm(&mut self, name: &str) -> Ymm {
        Ymm::new_virtual(self.new_vreg(IrClass::VEC, 32, name))
    }

    /// A new 512-bit vector virtual register.
    pub fn new_zmm(&mut self, name: &str) -> Zmm {
        Zmm::new_virtual(self.new_vreg(IrClass::VEC, 64, name))
    }

    /// A new mask virtual register.
    pub fn new_k(&mut self, name: &str) -> KReg {
        KReg::new_virtual(self.new_vreg(IrClass::MASK, 8, name))
    }

    /// Binds parameter `index` to `reg` (a virtual register of a matching
    /// class). An `I64` parameter in 32-bit mode is two 32-bit values: bind
    /// it with [`set_arg_pair`](Compiler::set_arg_pair).
    pub fn set_arg(&mut self, index: usize, reg: impl Into<Reg>) -> Result<()> {
        self.bind_arg("set_arg", index, &[reg.into()])
    }

    /// Binds parameter `index`, an `I64` of a 32-bit function
    /// (`CodeHolder::new(Arch::X86)`), to two 32-bit registers: `lo`
    /// receives its low half and `hi` its high half. The i386 conventions
    /// pass an `i64` in 8 bytes of the stack, the low dword at the lower
    /// address (fastcall and vectorcall too: only integers of up to 32
    /// bits go in ecx and edx). It is the argument side of
    /// `ret(&[lo, hi])`; [`invoke`](Compiler::invoke) likewise passes an
    /// `I64` argument as two operands, low then high.
    ///
    /// ```
    /// use jitforge::compiler::{Compiler, Signature, ValType, X86Target};
    /// use jitforge::x86::Instructions;
    /// use jitforge::{Arch, CodeHolder};
    /// # fn main() -> jitforge::Result<()> {
    /// let mut code = CodeHolder::new(Arch::X86);
    /// let mut cc = Compiler::new(&mut code);
    /// // i64 add_small(i64 x, i32 y): x + y, returned in edx:eax.
    /// let sig = Signature::new(X86Target::CDECL, &[ValType::I64, ValType::I32], &[ValType::I64]);
    /// cc.add_func("add_small", sig)?;
    /// let (lo, hi, y) = (cc.new_gp32("lo"), cc.new_gp32("hi"), cc.new_gp32("y"));
    /// cc.set_arg_pair(0, lo, hi)?;
    /// cc.set_arg(1, y)?;
    /// cc.add(lo, y)?;
    /// cc.adc(hi, 0)?;
    /// cc.ret(&[lo.into(), hi.into()])?;
    /// cc.end_func()?;
    /// cc.finalize()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_arg_pair(&mut self, index: usize, lo: Gp32, hi: Gp32) -> Result<()> {
        self.bind_arg("set_arg_pair", index, &[lo.into(), hi.into()])
    }

    /// Binds the value(s) of parameter `index` to `regs`: one register, or
    /// two for an `I64` in 32-bit mode.
    fn bind_arg(&mut self, what: &str, index: usize, regs: &[Reg]) -> Result<()> {
        let base = self.vreg_base;
        let st = self
            .func
            .as_mut()
            .ok_or_else(|| invalid("no function: call add_func first"))?;
        if st.entered {
            return Err(invalid(&format!(
                "{what} after the first instruction of the function"
            )));
        }
        let sig = &st.f.sig;
        let count = sig.params.len();
        let ty = *sig.params.get(index).ok_or_else(|| {
            invalid(&format!(
                "argument index {index} is out of range (the signature has {count})"
            ))
        })?;
        let conv = self.convs.call_conv(sig.conv);
        let split = |t| conv.is_some_and(|c| jitforge_ir::abi::split_in_two(c, t));
        if split(ty) != (regs.len() == 2) {
            return Err(invalid(&if split(ty) {
                format!(
                    "{what}: argument {index} is an I64, which 32-bit mode passes as two 32-bit values: bind it with set_arg_pair(index, lo, hi)"
                )
            } else {
                format!(
                    "{what}: argument {index} is {}, one value: bind it with set_arg (only an I64 in 32-bit mode is two 32-bit values)",
                    ty.name()
                )
            }));
        }
        // The values before this parameter's: two per earlier split one
        // (only an `I64` can be, so a convention that keeps it whole splits none).
        let position = if split(jitforge_ir::ValType::I64) {
            index + sig.params[..index].iter().filter(|&&t| split(t)).count()
        } else {
            index
        };
        let args = &mut self.ws.get().tables.args;
        for (k, &reg) in regs.iter().enumerate() {
            args[position + k] = Some(IrOperand::Reg(ir_reg(&st.f, base, reg, &st.wide_phys)?));
        }
        Ok(())
    }

    #[inline]
    fn enter(&mut self) -> Result<()> {
        match &self.func {
            Some(st) if st.entered => Ok(()),
            _ => self.enter_first(),
        }
    }

    /// [`enter`](Self::enter) at the first instruction (or without a function).
    fn enter_first(&mut self) -> Result<()> {
        let nothing_pending = self.nothing_pending();
        // Not `state()`: the conventions are read while it is borrowed.
        let st = self
            .func
            .as_mut()
            .ok_or_else(|| invalid("no function: call add_func first"))?;
        if st.entered {
            return Ok(());
        }
        let FuncTables {
            args: bound,
            operands: args,
            ..
        } = &mut self.ws.get().tables;
        // The type of each argument value, for those left unbound.
        let types: SmallVec<[jitforge_ir::ValType; 8]> = if bound.iter().any(Option::is_none) {
            match self.convs.call_conv(st.f.sig.conv) {
                Some(conv) => jitforge_ir::abi::arg_operand_types(conv, &st.f.sig.params),
                None => st.f.sig.params.iter().copied().collect(),
            }
        } else {
            SmallVec::new()
        };
        args.clear();
        for (i, a) in bound.iter().enumerate() {
            match a {
                Some(op) => args.push(*op),
                None => {
                    // An unused parameter still arrives somewhere: give it a register nobody reads.
                    let class = match types[i] {
                        jitforge_ir::ValType::F32
                        | jitforge_ir::ValType::F64
                        | jitforge_ir::ValType::V128
                        | jitforge_ir::ValType::V256
                        | jitforge_ir::ValType::V512 => IrClass::VEC,
                        _ => IrClass::GP,
                    };
                    let size = types[i].size();
                    let v = st.f.new_vreg(class, size, None);
                    args.push(IrOperand::v(v));
                }
            }
        }
        st.f.entry(args).map_err(|e| invalid(&e.to_string()))?;
        // Entered only once the entry is added (a failure leaves the
        // function as it was, and says so again at the next instruction).
        st.entered = true;
        // `refresh_ready`, while the state is borrowed.
        self.ready = nothing_pending;
        Ok(())
    }

    /// A new label (bound with [`bind`](Compiler::bind)).
    pub fn new_label(&mut self) -> Label {
        self.asm.new_label()
    }

    fn ir_label(&mut self, label: Label) -> Result<IrLabel> {
        let st = self
            .func
            .as_mut()
            .ok_or_else(|| invalid("no function: call add_func first"))?;
        let tables = &mut self.ws.get().tables;
        if let Some(&l) = tables.labels.get(&label.id()) {
            return Ok(l);
        }
        let l = st.f.new_label(None);
        tables.labels.insert(label.id(), l);
        tables.code_labels.push(label);
        Ok(l)
    }

    /// Binds `label` here.
    pub fn bind(&mut self, label: Label) -> Result<()> {
        self.enter()?;
        let l = self.ir_label(label)?;
        self.state()?
            .f
            .bind(l)
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(())
    }

    /// Stack memory of the current function: `size` bytes aligned to `align`
    /// (up to 4096; above 16 the function gets a frame pointer and aligns
    /// rsp), as a memory operand without size that may be indexed and
    /// offset like any other (`stack.with_index(i, 8).with_size(8)`).
    pub fn new_stack(&mut self, size: u32, align: u32) -> Result<Mem> {
        if !align.is_power_of_two() || align > 4096 {
            return Err(invalid(&format!(
                "stack alignment {align} is not a power of two up to 4096"
            )));
        }
        let label = self.asm.new_label();
        let slot = self.state()?.f.new_stack_slot(size, align);
        self.ws.get().tables.stack_labels.insert(label.id(), slot);
        Ok(Mem::new(MemBase::Label(label), 0))
    }

    /// Constant data for the current function (placed after its code), as a
    /// memory operand without size (`cc.movsd(x, cc.new_const(&bytes, 8)?.with_size(8))`).
    pub fn new_const(&mut self, bytes: &[u8], align: u32) -> Result<Mem> {
        if !align.is_power_of_two() || align > 4096 {
            return Err(invalid(&format!(
                "constant alignment {align} is not a power of two up to 4096"
            )));
        }
        self.state()?;
        // The same constant twice in one function is stored once.
        if let Some((label, _, _)) = self
            .ws
            .get()
            .tables
            .constants
            .iter()
            .find(|(_, b, a)| b == bytes && *a == align)
        {
            return Ok(Mem::new(MemBase::Label(*label), 0));
        }
        let label = self.asm.new_label();
        let constant = (label, bytes.to_vec(), align);
        self.ws.get().tables.constants.push(constant);
        Ok(Mem::new(MemBase::Label(label), 0))
    }

    /// Constant data shared by all functions of this Compiler (stored once,
    /// after the last function, by [`finalize`](Compiler::finalize)), as a
    /// memory operand without size. The same bytes and alignment give the
    /// same constant. Usable inside and outside a function.
    pub fn new_global_const(&mut self, bytes: &[u8], align: u32) -> Result<Mem> {
        if !align.is_power_of_two() || align > 4096 {
            return Err(invalid(&format!(
                "constant alignment {align} is not a power of two up to 4096"
            )));
        }
        let key = (bytes.to_vec(), align);
        let label = match self.global_constants.get(&key) {
            Some(&label) => label,
            None => {
                let label = self.asm.new_label();
                self.global_constants.insert(key, label);
                self.pending_globals.push((label, bytes.to_vec(), align));
                label
            }
        };
        Ok(Mem::new(MemBase::Label(label), 0))
    }

    /// A table of the absolute addresses of `targets` (labels of this
    /// function), placed after its code, as a memory operand without size:
    /// `cc.lea(base, table)?; cc.jmp(qword_ptr(base + i * 8))?` is an
    /// indirect jump without annotation, which the allocator assumes may go
    /// to any label whose address the function takes (these among them).
    /// [`jump_table`](Compiler::jump_table) names the targets of one jump.
    pub fn new_label_table(&mut self, targets: &[Label]) -> Result<Mem> {
        self.enter()?;
        let targets: Vec<IrLabel> = targets
            .iter()
            .map(|l| self.ir_label(*l))
            .collect::<Result<_>>()?;
        let label = self.asm.new_label();
        let table = self.state()?.f.new_jump_table(&targets);
        self.ws.get().tables.table_labels.insert(label.id(), table);
        Ok(Mem::new(MemBase::Label(label), 0))
    }

    /// An indirect jump through a table of `targets` indexed by `index`
    /// (a virtual register holding 0..targets.len(): a [`Gp64`] in 64-bit
    /// mode, a [`Gp32`] in 32-bit mode, as wide as the table's addresses);
    /// the targets are the annotation the CFG uses.
    pub fn jump_table(&mut self, index: impl Into<Reg>, targets: &[Label]) -> Result<()> {
        self.enter()?;
        let index: Reg = index.into();
        let (word, kind) = if self.target.is_64bit() {
            (8u16, RegKind::Gp64)
        } else {
            (4, RegKind::Gp32)
        };
        if index.kind() != kind {
            return Err(invalid(&format!(
                "jump_table: the index must be a {}-bit general-purpose register in this mode, not {}",
                word * 8,
                index.name()
            )));
        }
        let targets: Vec<IrLabel> = targets
            .iter()
            .map(|l| self.ir_label(*l))
            .collect::<Result<_>>()?;
        let index = self.ir_reg(index)?;
        let st = self.state()?;
        let table = st.f.new_jump_table(&targets);
        let base = st.f.new_gp(word, "jump_table");
        st.f.addr(
            IrOperand::v(base),
            IrMem::new(IrMemBase::JumpTable(table), 0, 0),
        )
        .map_err(|e| invalid(&e.to_string()))?;
        let slot = IrMem::new(IrMemBase::Reg(IrReg::Virt(base, View::FULL)), 0, word)
            .with_index(index, word as u8);
        st.f.jump_indirect(IrOperand::Mem(slot), Some(table))
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(())
    }

    /// Calls `callee` (a label of a function in this code holder, an absolute
    /// address as an immediate, or a register) with `signature`, passing
    /// `args` (registers or immediates; the same register may appear twice)
    /// and receiving `rets`. A variadic signature (`Signature::variadic`)
    /// accepts more arguments than its fixed parameters; each extra one is
    /// passed by its register's class and size, and System V's `al` receives
    /// the number of vector registers used. An `I64` result in 32-bit mode
    /// is received in two 32-bit registers, low half then high half
    /// (from eax and edx), and an `I64` argument there is two operands,
    /// low half then high half (stored to its 8 bytes of the stack; see
    /// [`set_arg_pair`](Compiler::set_arg_pair)).
    pub fn invoke(
        &mut self,
        callee: Operand,
        signature: Signature,
        args: &[Operand],
        rets: &[Operand],
    ) -> Result<()> {
        self.enter()?;
        let results = self.result_operand_count(&signature);
        check_call_arity(
            "invoke",
            &signature,
            (args.len(), self.arg_operand_count(&signature)),
            Some((rets.len(), results)),
        )?;
        self.check_callee_signature("invoke", &callee, &signature)?;
        let callee = self.ir_operand(&callee)?;
        let args = self.ir_operands(args)?;
        let rets = self.ir_operands(rets)?;
        let st = self.state()?;
        let sig = st.f.import_sig(signature);
        st.f.call(sig, callee, &args, &rets)
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(())
    }

    /// A tail call: tears the frame down and jumps to `callee` (a label of a
    /// function in this code holder, an absolute address or a register),
    /// which returns straight to this function's caller with its own
    /// results. The arguments travel in registers only (a callee taking
    /// stack arguments is an error), and `signature` should return what
    /// the current function returns.
    pub fn tail_call(
        &mut self,
        callee: Operand,
        signature: Signature,
        args: &[Operand],
    ) -> Result<()> {
        self.enter()?;
        let fixed = self.arg_operand_count(&signature);
        check_call_arity("tail_call", &signature, (args.len(), fixed), None)?;
        self.check_callee_signature("tail_call", &callee, &signature)?;
        let callee = self.ir_operand(&callee)?;
        let args = self.ir_operands(args)?;
        let st = self.state()?;
        let sig = st.f.import_sig(signature);
        st.f.tail_jump(sig, callee, &args)
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(())
    }

    /// Returns `values` (in the signature's return registers). An `I64`
    /// result in 32-bit mode is two 32-bit registers, low half then high
    /// half (`cc.ret(&[lo.into(), hi.into()])`, returned in edx:eax).
    pub fn ret(&mut self, values: &[Operand]) -> Result<()> {
        self.enter()?;
        let mut ops = std::mem::take(&mut self.ws.get().tables.operands);
        ops.clear();
        for op in values {
            ops.push(self.ir_operand(op)?);
        }
        let added = self.state()?.f.ret(&ops);
        self.ws.get().tables.operands = ops;
        added.map_err(|e| invalid(&e.to_string()))?;
        Ok(())
    }

    /// How many argument operands the fixed parameters of `signature`
    /// take: one per parameter, but two (low half, high half) for an `I64`
    /// in 32-bit mode.
    fn arg_operand_count(&self, signature: &Signature) -> usize {
        match self.convs.call_conv(signature.conv) {
            Some(conv) => jitforge_ir::abi::arg_operand_count(conv, &signature.params),
            None => signature.params.len(),
        }
    }

    /// How many result operands a call with `signature` takes: one per
    /// result, but two (low half, high half) for an `I64` in 32-bit mode.
    fn result_operand_count(&self, signature: &Signature) -> usize {
        match self.convs.call_conv(signature.conv) {
            Some(conv) => jitforge_ir::abi::ret_operand_types(conv, &signature.rets).len(),
            None => signature.rets.len(),
        }
    }

    /// A call of a function of this Compiler must use its signature.
    fn check_callee_signature(
        &self,
        what: &str,
        callee: &Operand,
        signature: &Signature,
    ) -> Result<()> {
        let Operand::Label(l) = callee else {
            return Ok(());
        };
        let Some(ws) = self.ws.0.as_ref() else {
            return Ok(());
        };
        // The open function's own signature is still its IR's.
        let open = self
            .func
            .as_ref()
            .filter(|st| st.entry == *l)
            .map(|st| &st.f.sig);
        match open.or_else(|| ws.signatures.get(&l.id())) {
            Some(own) if own != signature => Err(invalid(&format!(
                "{what}: function {} has the signature {}, the call passes {}",
                self.function_name(l.id()).as_deref().unwrap_or("?"),
                describe_signature(&self.convs, own),
                describe_signature(&self.convs, signature)
            ))),
            _ => Ok(()),
        }
    }

    /// The IR operands of `ops` (inline for the few of a call or return).
    fn ir_operands(&mut self, ops: &[Operand]) -> Result<SmallVec<[IrOperand; 6]>> {
        // A loop, not `collect` into a `Result`: that builds the list aside
        // and copies it out.
        let mut out = SmallVec::new();
        for op in ops {
            out.push(self.ir_operand(op)?);
        }
        Ok(out)
    }

    fn ir_operand(&mut self, op: &Operand) -> Result<IrOperand> {
        Ok(match op {
            Operand::Reg(r) => IrOperand::Reg(self.ir_reg(*r)?),
            Operand::Imm(v) => IrOperand::Imm(*v),
            Operand::Label(l) => IrOperand::Label(self.ir_label(*l)?),
            Operand::Mem(m) => IrOperand::Mem(self.ir_mem(m)?),
            Operand::None => return Err(invalid("empty operand")),
        })
    }

    fn ir_mem(&mut self, m: &Mem) -> Result<IrMem> {
        if m.segment().is_some() || m.is_broadcast() || m.is_abs64() {
            return Err(invalid(
                "segment overrides, broadcast and movabs memory are not supported by the Compiler yet",
            ));
        }
        let disp =
            i32::try_from(m.disp()).map_err(|_| invalid("displacement does not fit 32 bits"))?;
        let base = match m.base() {
            MemBase::None => IrMemBase::None,
            MemBase::Reg(r) => IrMemBase::Reg(self.ir_reg(r)?),
            MemBase::Label(l) => {
                self.state()?;
                let tables = &self.ws.get().tables;
                match (
                    tables.stack_labels.get(&l.id()),
                    tables.table_labels.get(&l.id()),
                ) {
                    (Some(&slot), _) => IrMemBase::Slot(slot),
                    (_, Some(&table)) => IrMemBase::JumpTable(table),
                    _ => IrMemBase::Label(self.ir_label(l)?),
                }
            }
            MemBase::Rip => {
                return Err(invalid(
                    "[rip + disp] is not supported by the Compiler (use a label)",
                ));
            }
        };
        let mut mem = IrMem::new(base, disp, m.size());
        if let Some(index) = m.index() {
            mem = mem.with_index(self.ir_reg(index)?, m.scale());
        }
        Ok(mem)
    }

    /// Compiles the current function into the code holder.
    pub fn end_func(&mut self) -> Result<()> {
        self.enter()?;
        let st = self.func.take();
        self.refresh_ready();
        let st = st.ok_or_else(|| invalid("end_func without add_func"))?;
        let FuncState {
            f,
            entry,
            frame_pointer,
            wide_phys,
            ..
        } = st;
        let tables = &mut self.ws.get().tables;
        let code_labels = std::mem::take(&mut tables.code_labels);
        let constants = std::mem::take(&mut tables.constants);
        self.vreg_base = self.vreg_base.saturating_add(f.num_vregs() as u32);
        let recorded = Recorded {
            wide_phys: wide_phys.get(),
        };
        self.compile(f, entry, code_labels, frame_pointer, Some(recorded))?;
        // The constant pool follows the function's code.
        for (label, bytes, align) in constants {
            self.asm.align(align as usize)?;
            self.asm.bind(label)?;
            self.asm.embed(&bytes)?;
        }
        self.flush()
    }

    /// Relaxes the finished function's branches and writes it into the code holder.
    fn flush(&mut self) -> Result<()> {
        if self.asm.is_empty() {
            // Written straight into the code holder: nothing to relax.
            return Ok(());
        }
        let result = self.asm.finalize();
        self.asm.clear();
        result
    }

    /// The entry label of the function named `name` (made on first use, so
    /// functions may call ones defined later).
    pub fn function_label(&mut self, name: &str) -> Label {
        let ws = self.ws.get();
        if let Some(id) = ws.functions.get(name) {
            return Label(id);
        }
        if !ws.named_functions.is_empty()
            && let Some(l) = self.asm.code().label_by_name(name)
            && has_bit(&ws.named_functions, l.id())
        {
            return l;
        }
        // Named in the code holder (listings, `label_by_name`) unless the
        // name is taken there already; only then is the name kept here too.
        match self.asm.new_named_label(name) {
            Ok(l) => {
                set_bit(&mut self.ws.get().named_functions, l.id());
                l
            }
            Err(_) => {
                let l = self.asm.new_label();
                self.ws.get().functions.insert(name, l.id());
                l
            }
        }
    }

    /// The name of the function whose entry label is `id` (`None`: not a
    /// function of this Compiler).
    fn function_name(&self, id: u32) -> Option<String> {
        let ws = self.ws.0.as_deref()?;
        if let Some(name) = ws.functions.name_of(id) {
            return Some(name.to_string());
        }
        has_bit(&ws.named_functions, id).then(|| self.asm.code().label_name(Label(id)))
    }

    /// Compiles an IR function (for example one parsed from the IR text
    /// format with [`X86Target`]) and returns its entry label. Labels it
    /// leaves unbound that name a function are calls to that function.
    pub fn add_ir_function(&mut self, f: IrFunction) -> Result<Label> {
        if self.func.is_some() {
            return Err(invalid(
                "add_ir_function while a function is open (call end_func)",
            ));
        }
        // IR from outside (text, hand-built) is checked before it is trusted.
        if let Err(errors) = jitforge_ir::verify::verify(&f, self.target) {
            let list: Vec<String> = errors.iter().take(5).map(|e| e.to_string()).collect();
            return Err(invalid(&format!(
                "function {} does not verify: {}",
                f.name(),
                list.join("; ")
            )));
        }
        let entry = self.function_label(f.name());
        self.ws.get().signatures.insert(entry.id(), f.sig.clone());
        let mut bound = vec![false; f.num_labels()];
        for i in f.insts() {
            if let jitforge_ir::InstKind::Bind(l) = f.kind(i) {
                bound[l.as_u32() as usize] = true;
            }
        }
        let mut code_labels = Vec::with_capacity(f.num_labels());
        for (l, &is_bound) in bound.iter().enumerate() {
            let label = IrLabel::from_u32(l as u32);
            let named_function = f
                .label_name(label)
                .filter(|_| !is_bound)
                .map(str::to_string);
            code_labels.push(match named_function {
                Some(name) => self.function_label(&name),
                None => self.asm.new_label(),
            });
        }
        // Not recorded here: nothing is known of its operands.
        self.compile(Box::new(f), entry, code_labels, false, None)?;
        self.flush()?;
        Ok(entry)
    }

    /// Lowers, allocates and emits `f` at `entry`; keeps `f`'s buffers for
    /// the next function.
    fn compile(
        &mut self,
        mut f: Box<IrFunction>,
        entry: Label,
        code_labels: Vec<Label>,
        frame_pointer: bool,
        recorded: Option<Recorded>,
    ) -> Result<()> {
        let result = self.compile_function(&mut f, entry, code_labels, frame_pointer, recorded);
        // Calls to the function must use its signature: moved into the
        // table (an empty one left, replaced when the buffers are reused).
        let empty = Signature {
            params: SmallVec::new(),
            rets: SmallVec::new(),
            conv: f.sig.conv,
            varargs: false,
        };
        let ws = self.ws.get();
        ws.signatures
            .insert(entry.id(), std::mem::replace(&mut f.sig, empty));
        ws.function = Some(f);
        result
    }

    /// Lowers, allocates and emits `f` at `entry`.
    fn compile_function(
        &mut self,
        f: &mut IrFunction,
        entry: Label,
        mut code_labels: Vec<Label>,
        frame_pointer: bool,
        recorded: Option<Recorded>,
    ) -> Result<()> {
        let target: &dyn Target = &self.convs;
        // A recorded function's label operands are labels it made
        // (`ir_label`): without one, no jump can go to an unbound label.
        let may_refer_to_labels =
            recorded.is_none() || f.num_labels() != 0 || f.num_jump_tables() != 0;
        if may_refer_to_labels && let Some(l) = unbound_jump_target(f) {
            let ws = self.ws.get();
            let to_function = code_labels
                .get(l.as_u32() as usize)
                .filter(|code| **code == entry || ws.signatures.contains_key(&code.id()))
                .and_then(|code| self.function_name(code.id()));
            return Err(Error::InvalidArgument {
                message: match to_function {
                    Some(name) => format!(
                        "function {}: a jump goes to function {name} (use Compiler::tail_call, which tears the frame down first)",
                        f.name()
                    ),
                    None => format!(
                        "function {}: a jump goes to label {} which is never bound in it",
                        f.name(),
                        f.label_name(l)
                            .map_or_else(|| format!("L{}", l.as_u32()), str::to_string)
                    ),
                },
            });
        }
        if self.target.is_64bit() {
            super::rewrite::check_conventions(f, target, 8)?;
        } else {
            super::rewrite::check_32bit(f, target)?;
        }
        if self.logging {
            // The function as written, virtual registers by name, before
            // the listing of what it became.
            self.asm.comment("before allocation:")?;
            for line in jitforge_ir::text::print_function(f, target).lines() {
                self.asm.comment(&format!("| {line}"))?;
            }
            self.asm.comment("after allocation:")?;
        }
        if f.frame.is_none() {
            jitforge_ir::lower::lower(f, target)
                .map_err(|e| invalid(&format!("calling convention: {e}")))?;
        }
        let ws = self.ws.get();
        ws.cfg.compute(f, target);
        remove_unreachable(f, target, &mut ws.cfg);
        if let Some(b) = ws.cfg.falls_off_end() {
            return Err(invalid(&format!(
                "function {} falls off its end (block {b:?} has no ret or jump)",
                f.name()
            )));
        }
        ws.view
            .build(f, &ws.cfg, target, &ws.facts_table)
            .map_err(|e| invalid(&e))?;
        // The registers the function's convention preserves (Windows x64
        // also rsi, rdi and xmm6..15; a light convention its own), mask
        // registers k1..k7 allocatable (AVX-512 code names them only where
        // the CPU has them); vectors in 0..15 unless the target allows more.
        let conv = target
            .call_conv(f.sig.conv)
            .ok_or_else(|| invalid(&format!("unknown calling convention {:?}", f.sig.conv)))?;
        let mut env = MachineEnv::x86_64_sysv(self.avx512);
        if !self.target.is_64bit() {
            super::rewrite::restrict_to_32bit(&mut env);
        }
        env.allocatable = env
            .allocatable
            .union(jitforge_regalloc::PRegSet::from_class_mask(
                jitforge_regalloc::RegClass::Mask,
                0xfe,
            ));
        // A frame pointer when asked for or when stack memory needs rsp aligned.
        let frame_pointer = frame_pointer || f.stack_slots().any(|(_, s)| s.align > 16);
        if frame_pointer {
            env.allocatable.remove(jitforge_regalloc::PReg::gp(5));
        }
        let preserved = jitforge_regalloc::PRegSet::from_class_mask(
            jitforge_regalloc::RegClass::Gp,
            conv.callee_saved.class_mask(IrClass::GP),
        )
        .union(jitforge_regalloc::PRegSet::from_class_mask(
            jitforge_regalloc::RegClass::Vec,
            conv.callee_saved.class_mask(IrClass::VEC),
        ));
        env.callee_saved = jitforge_regalloc::PRegSet(preserved.0 & env.allocatable.0);
        let red_zone = conv.red_zone;
        // Vector spill slots hold the widest vector register the function uses.
        let widest = f
            .vregs()
            .filter(|(_, d)| d.class == IrClass::VEC)
            .map(|(_, d)| u32::from(d.size))
            .max()
            .unwrap_or(16);
        env.slot_size[1] = widest.clamp(16, 64).next_power_of_two();
        let options = Options {
            check: self.check,
            // The decision log explains the inserted moves in the listing.
            log: self.logging,
        };
        ws.allocator
            .run(&ws.view, &env, &options, &mut ws.out)
            .map_err(|e| invalid(&format!("register allocation: {e}")))?;
        let frame = Frame::layout(f, &ws.out, frame_pointer, red_zone, self.target.is_64bit());
        // Labels the IR made itself get code labels too.
        while code_labels.len() < f.num_labels() {
            code_labels.push(self.asm.new_label());
        }
        let decisions = if self.logging {
            let mut d = ws.out.log.entries.clone();
            d.sort_by_key(|d| d.inst.index());
            d
        } else {
            Vec::new()
        };
        let summary = OperandSummary::of(f, recorded.is_none_or(|r| r.wide_phys));
        ws.memo.begin(ws.view.facts_epoch(), f.num_insts());
        macro_rules! rewrite_into {
            ($sink:expr) => {
                Rewriter {
                    f,
                    target: self.target,
                    ra: &ws.view,
                    out: &ws.out,
                    frame: &frame,
                    asm: $sink,
                    logging: self.logging,
                    labels: &code_labels,
                    cfg: &ws.cfg,
                    split_labels: Vec::new(),
                    table_labels: Vec::new(),
                    wide_vectors: summary.wide_vectors,
                    vector_bytes: env.slot_size[1] as u16,
                    decisions,
                    memo: &mut ws.memo,
                }
                .run()
            };
        }
        // Code without branches to relax (no label anywhere, no split
        // edge) goes straight into the code holder: the Builder's nodes
        // would only be copied out again. With a logger, through the
        // Builder, whose listing has the comments (same bytes either way).
        if !self.logging
            && self.asm.is_empty()
            && !summary.refers_to_labels
            && ws.out.edge_splits.is_empty()
        {
            // Instructions average under 5 bytes; the prologue and epilogue
            // are a few more.
            let mut direct = self.asm.direct(f.num_insts() * 5 + 32)?;
            let start = direct.asm.offset();
            direct.asm.bind(entry)?;
            let result = rewrite_into!(&mut direct);
            if result.is_err() {
                // As with the Builder, a failed function leaves no code.
                direct
                    .asm
                    .code_mut()
                    .buffer_mut(CodeHolder::TEXT)
                    .truncate(start);
            }
            return result;
        }
        self.asm.bind(entry)?;
        rewrite_into!(&mut self.asm)
    }

    /// Finishes: fails if a function is still open, else writes the global
    /// constant pool. (Each function is written into the code holder, its
    /// branches relaxed, by [`end_func`](Compiler::end_func).)
    pub fn finalize(&mut self) -> Result<()> {
        if self.func.is_some() {
            return Err(invalid(
                "finalize: a function was not ended (call end_func)",
            ));
        }
        if self.pending_globals.is_empty() {
            return Ok(());
        }
        // The global constant pool follows the last function.
        for (label, bytes, align) in std::mem::take(&mut self.pending_globals) {
            self.asm.align(align as usize)?;
            self.asm.bind(label)?;
            self.asm.embed(&bytes)?;
        }
        self.flush()
    }

    /// Statistics of the last function's register allocation.
    pub fn last_stats(&self) -> jitforge_regalloc::Stats {
        self.ws
            .0
            .as_ref()
            .map(|ws| ws.out.stats)
            .unwrap_or_default()
    }
}

impl Emitter for Compiler<'_> {
    fn emit(&mut self, mnemonic: Mnemonic, operands: &[Operand]) -> Result<()> {
        // Most instructions have no prefix, count or mask pending, and
        // virtual registers and register-based memory of a shape seen
        // before as operands: their facts are known, only their operands
        // are built, here. The rest (and the first of each shape) take the
        // general path, kept out of line so that this one stays short.
        let mut memo_key = None;
        if self.pending == InstOptions::NONE
            && self.pending_count.is_none()
            && self.pending_mask.is_none()
        {
            match self.memo_inst(mnemonic, operands)? {
                Memo::Added => return Ok(()),
                Memo::Miss(key) => memo_key = Some(key),
                Memo::NotMemoized => {}
            }
        }
        self.emit_general(mnemonic, operands, memo_key)
    }

    // The typed methods come here (through `emit_typed`, which knows the
    // operand count): `plans` is a constant of the typed method and its
    // operand classes, so an instruction of a shape seen before from the
    // same method is found by that pointer and checked operand by operand
    // against what the earlier one had (see [`PlannedShape`]), without
    // building a shape key.
    fn emit_planned(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static crate::x86::FormPlans,
        operands: &[Operand],
    ) -> Result<()> {
        match *operands {
            [a] => self.typed(mnemonic, plans, &[a]),
            [a, b] => self.typed(mnemonic, plans, &[a, b]),
            [a, b, c] => self.typed(mnemonic, plans, &[a, b, c]),
            [a, b, c, d] => self.typed(mnemonic, plans, &[a, b, c, d]),
            _ => self.typed_general(plans as *const _ as usize, mnemonic, operands),
        }
    }

    #[inline(always)]
    fn emit_typed<const N: usize>(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static crate::x86::FormPlans,
        operands: [Operand; N],
    ) -> Result<()> {
        self.typed(mnemonic, plans, &operands)
    }
}

impl Compiler<'_> {
    /// Whether the next instruction may take the typed fast path: nothing
    /// pending, in a function already entered.
    fn compute_ready(&self) -> bool {
        self.nothing_pending() && matches!(&self.func, Some(st) if st.entered)
    }

    /// Brings [`ready`](Compiler::ready) up to date: called by every change
    /// of the pending options, count or mask, of the function or of its
    /// entered state.
    #[inline(always)]
    fn refresh_ready(&mut self) {
        self.ready = self.compute_ready();
    }

    /// Whether the next instruction has no options, count or mask pending.
    #[inline(always)]
    fn nothing_pending(&self) -> bool {
        self.pending == InstOptions::NONE
            && self.pending_count.is_none()
            && self.pending_mask.is_none()
    }

    /// A typed method's instruction of `N` operands: the planned path,
    /// whose answer comes back in a register (a `Result` is returned
    /// through memory), else the general one.
    #[inline(always)]
    fn typed<const N: usize>(
        &mut self,
        mnemonic: Mnemonic,
        plans: &'static crate::x86::FormPlans,
        operands: &[Operand; N],
    ) -> Result<()> {
        let site = plans as *const crate::x86::FormPlans as usize;
        // The operand kinds are constants of a typed method's call: one
        // branch remains.
        let planned = if operands.iter().any(|op| matches!(op, Operand::Mem(_))) {
            self.typed_planned::<N, true>(site, mnemonic, operands)
        } else {
            self.typed_planned::<N, false>(site, mnemonic, operands)
        };
        if planned {
            return Ok(());
        }
        self.typed_general(site, mnemonic, operands)
    }

    /// [`add_planned`](Self::add_planned) of a typed method's instruction
    /// in a ready function: one instance per operand count (its loops
    /// unrolled) and per `MEMORY` (instructions with a memory operand
    /// apart: the registers' path copies registers only), out of line so
    /// that each typed call stays a call; it enters the function at its
    /// first instruction. `false`: not added.
    #[inline(never)]
    fn typed_planned<const N: usize, const MEMORY: bool>(
        &mut self,
        site: usize,
        mnemonic: Mnemonic,
        operands: &[Operand; N],
    ) -> bool {
        debug_assert_eq!(self.ready, self.compute_ready());
        if !self.ready && !self.enter_planned() {
            return false;
        }
        self.add_planned::<N, MEMORY>(site, mnemonic, operands)
    }

    /// Enters the function at its first instruction for
    /// [`typed_planned`](Self::typed_planned): `true` when the instruction
    /// may then be planned. `false` with something pending, without a
    /// function, or when entering fails (nothing changed: the general path
    /// enters again and reports the error).
    #[cold]
    #[inline(never)]
    fn enter_planned(&mut self) -> bool {
        self.nothing_pending() && self.enter_first().is_ok() && self.ready
    }

    /// A typed method's instruction that [`add_planned`](Self::add_planned)
    /// did not add: [`Emitter::emit`], then its shape is remembered.
    #[inline(never)]
    fn typed_general(
        &mut self,
        site: usize,
        mnemonic: Mnemonic,
        operands: &[Operand],
    ) -> Result<()> {
        if self.nothing_pending() {
            // Entered first, so that the instruction alone is counted (and
            // learned) below; the general path enters after taking what is pending.
            self.enter()?;
        }
        // Only instructions on registers and memory are planned.
        if !operands
            .iter()
            .all(|op| matches!(op, Operand::Reg(_) | Operand::Mem(_)))
        {
            return self.emit(mnemonic, operands);
        }
        let before = self.func.as_ref().map(|st| st.f.num_insts());
        self.emit(mnemonic, operands)?;
        self.learn_planned(site, mnemonic, operands, before);
        Ok(())
    }
}

impl Compiler<'_> {
    /// [`Emitter::emit`] for what [`memo_inst`](Self::memo_inst) did not
    /// add: `memo_key` is the shape to remember the instruction's facts
    /// under once it is added.
    #[inline(never)]
    fn emit_general(
        &mut self,
        mnemonic: Mnemonic,
        operands: &[Operand],
        memo_key: Option<ShapeKey>,
    ) -> Result<()> {
        let options = std::mem::take(&mut self.pending);
        let count = self.pending_count.take();
        let mask = self.pending_mask.take();
        self.refresh_ready();
        self.enter()?;
        if count.is_some() && mask.is_some() {
            return Err(invalid("a rep count and a write mask on one instruction"));
        }
        let prefix = if options.contains(InstOptions::LOCK) {
            Prefix::Lock
        } else if options.contains(InstOptions::REP) {
            Prefix::Rep
        } else if options.contains(InstOptions::REPNE) {
            Prefix::Repne
        } else {
            Prefix::None
        };
        let text =
            || crate::x86::text::format_instruction(mnemonic, operands, options, crate::Arch::X64);
        let plain = if count.is_none() {
            match self.plain_inst(mnemonic, prefix, options, mask, operands)? {
                Plain::Added(tag) => {
                    if let Some(key) = memo_key
                        && tag != jitforge_ir::NO_TAG
                    {
                        self.ws.get().shape_memo.insert(key, tag);
                    }
                    return Ok(());
                }
                Plain::MissingImplicit(e) => return Err(*e),
                // No form with a write mask binds implicit registers.
                Plain::NoForm(e) if mask.is_some() => return Err(*e),
                Plain::NoForm(e) => Some(self.mode_error(operands).unwrap_or(*e)),
            }
        } else {
            None
        };
        // The implicit registers as operands (`cc.idiv(hi, lo, src)`).
        let bound = X86Inst::new(mnemonic)
            .with_prefix(prefix)
            .with_bound_implicit();
        if !self.target.is_valid(bound.id()) {
            return Err(plain.unwrap_or_else(|| Error::InvalidInstruction {
                instruction: text(),
                reason:
                    "it has no implicit registers to bind (a rep count needs a string instruction)"
                        .into(),
            }));
        }
        let mut all: Vec<Operand> = Vec::with_capacity(operands.len() + 1);
        all.extend(count);
        all.extend_from_slice(operands);
        match self.bound_inst(bound, &all) {
            Ok(()) => Ok(()),
            // An operand count no bound form takes: the plain error says more.
            Err(None) => Err(plain.unwrap_or_else(|| Error::InvalidInstruction {
                instruction: text(),
                reason: "no form takes these operands".into(),
            })),
            Err(Some(reason)) => Err(Error::InvalidInstruction {
                instruction: text(),
                reason,
            }),
        }
    }
}

impl Compiler<'_> {
    /// Options (prefixes) for the next instruction.
    pub fn options(&mut self, options: InstOptions) -> &mut Self {
        self.pending |= options;
        self.refresh_ready();
        self
    }

    /// Write mask `{k}` on the next (AVX-512) instruction's destination,
    /// `mask` a virtual (or physical) mask register: `cc.k(m).vpaddd(r, a, b)`.
    /// (A decoration `r.k(m)` can only name a physical mask.)
    pub fn k(&mut self, mask: KReg) -> &mut Self {
        let zeroing = self.pending_mask.is_some_and(|(_, z)| z);
        self.pending_mask = Some((mask, zeroing));
        self.refresh_ready();
        self
    }

    /// Zeroing `{z}` for the mask of the next instruction (after [`k`](Compiler::k)).
    pub fn z(&mut self) -> &mut Self {
        if let Some((_, z)) = &mut self.pending_mask {
            *z = true;
        }
        self
    }

    /// `lock` on the next instruction.
    pub fn lock(&mut self) -> &mut Self {
        self.options(InstOptions::LOCK)
    }

    /// `rep` on the next (string) instruction, with `count` the virtual
    /// register holding the count (bound to rcx): `cc.rep(n).movsb(dst, src)`.
    pub fn rep(&mut self, count: impl Into<Reg>) -> &mut Self {
        self.pending_count = Some(Operand::Reg(count.into()));
        self.options(InstOptions::REP)
    }

    /// `repne` on the next (string) instruction, with its count register
    /// (bound to rcx).
    pub fn repne(&mut self, count: impl Into<Reg>) -> &mut Self {
        self.pending_count = Some(Operand::Reg(count.into()));
        self.options(InstOptions::REPNE)
    }

    /// Adds the IR form of an instruction written with explicit operands
    /// only, or says why not: no form takes the operands, or one does but reads
    /// implicit registers, which must then be bound (a physical rax read by
    /// `idiv` holds nothing the allocator knows of).
    fn plain_inst(
        &mut self,
        mnemonic: Mnemonic,
        prefix: Prefix,
        options: InstOptions,
        pending_mask: Option<(KReg, bool)>,
        operands: &[Operand],
    ) -> Result<Plain> {
        let mut inst = X86Inst::new(mnemonic).with_prefix(prefix);
        // Inline: most instructions have few operands (no heap allocation).
        let mut ops: SmallVec<[IrOperand; 4]> = SmallVec::new();
        let mut mask = None;
        if let Some((k, zeroing)) = pending_mask {
            inst = inst.with_mask(zeroing);
            mask = Some(k.reg());
        }
        for (i, op) in operands.iter().enumerate() {
            let mut op = *op;
            if i == 0 {
                let decorators = match &op {
                    Operand::Reg(r) => r.decorators(),
                    Operand::Mem(m) => m.decorators(),
                    _ => crate::x86::Decorators::NONE,
                };
                if decorators.virtual_mask() {
                    return Err(invalid(
                        "a virtual mask register cannot be a decoration (x.k(mask)): write cc.k(mask).instruction(..), or cc.k(mask).z() for {z}",
                    ));
                }
                if mask.is_some() && !decorators.is_empty() {
                    return Err(invalid(
                        "the destination has a mask decoration and cc.k() gave another",
                    ));
                }
                if decorators.mask() != 0 {
                    inst = inst.with_mask(decorators.zeroing());
                    mask = Some(
                        Reg::new(RegKind::K, decorators.mask())
                            .ok_or_else(|| invalid("bad mask register"))?,
                    );
                    if let Operand::Reg(r) = &mut op {
                        *r = r.with_decorators(crate::x86::Decorators::NONE);
                    }
                }
            }
            if !op.is_none() {
                ops.push(self.ir_operand(&op)?);
            }
        }
        if let Some(k) = mask {
            ops.push(IrOperand::Reg(self.ir_reg(k)?));
        }
        let id = inst.id();
        let st = self
            .func
            .as_mut()
            .ok_or_else(|| invalid("no function: call add_func first"))?;
        let mut shapes: SmallVec<[OpShape; 4]> = SmallVec::new();
        for o in &ops {
            shapes.push(st.f.operand_shape(o));
        }
        let error = |reason: String| Error::InvalidInstruction {
            instruction: crate::x86::text::format_instruction(
                mnemonic,
                operands,
                options,
                crate::Arch::X64,
            ),
            reason,
        };
        // Check now, so a bad instruction fails at this call and not at
        // end_func; the facts are kept for the allocator's view (the tag).
        let ws = self.ws.get();
        let index = match self
            .target
            .facts_index(&mut ws.facts_table, id, &shapes, &mut ws.facts)
        {
            Ok(index) => index,
            Err(e) => return Ok(Plain::NoForm(Box::new(error(e.to_string())))),
        };
        let facts = index
            .and_then(|i| ws.facts_table.get(i))
            .unwrap_or(&ws.facts);
        // Only an instruction that reads an implicit register (in the facts
        // just computed) needs it bound; the rest is for the message.
        let reads_implicit = facts.implicit.iter().any(|i| i.access.reads());
        let tag = index.unwrap_or(jitforge_ir::NO_TAG);
        let bound = inst.with_bound_implicit();
        if reads_implicit && self.target.is_valid(bound.id()) {
            let form = self
                .target
                .form_for(id, &shapes)
                .map_err(|e| error(e.to_string()))?;
            let implicit = self.target.implicit_of(bound, form);
            let read: Vec<String> = implicit
                .iter()
                .filter(|imp| imp.read)
                .map(|imp| preg_name(self.target, imp.reg))
                .collect();
            if !read.is_empty() {
                return Ok(Plain::MissingImplicit(Box::new(error(format!(
                    "it reads {} implicitly: pass a virtual register for each implicit register as an operand ({})",
                    read.join(", "),
                    self.target.binding_text(bound, form)
                )))));
            }
        }
        self.push_target(id, &ops, tag)?;
        Ok(Plain::Added(tag))
    }

    /// Adds an instruction written by a typed method (`site`: its plans'
    /// address) when the last instruction of that method with the same
    /// repeated-register pattern had operands of the same kinds on virtual
    /// registers of the same classes and sizes: it has the same facts tag.
    /// Only for an instruction without anything pending (options, count,
    /// mask) in an entered function. `false`: not found, or the
    /// instruction cannot be added (nothing added: the general path adds it
    /// or reports the error). With `MEMORY`, an operand may also be memory
    /// of the form [`planned_mem`] takes (the typed path of registers alone
    /// is kept free of it: its operands copy as registers only).
    #[inline(always)]
    fn add_planned<const N: usize, const MEMORY: bool>(
        &mut self,
        site: usize,
        mnemonic: Mnemonic,
        operands: &[Operand; N],
    ) -> bool {
        if N > ShapeKey::MAX_OPERANDS {
            return false;
        }
        let (Some(st), Some(ws)) = (self.func.as_mut(), self.ws.0.as_deref()) else {
            return false;
        };
        // The virtual register numbers (0: memory, checked below).
        let mut virt = [0u32; ShapeKey::MAX_OPERANDS];
        for j in 0..N {
            match &operands[j] {
                Operand::Reg(r) => match r.virtual_index() {
                    Some(index) if r.decorators().is_empty() => virt[j] = index.wrapping_add(1),
                    _ => return false,
                },
                Operand::Mem(_) if MEMORY => {}
                _ => return false,
            }
        }
        let same = PlannedShape::same_pattern(&virt);
        let Some(entry) = ws
            .planned
            .get(PlannedShape::set(site, same))
            .and_then(|set| set.iter().find(|e| e.site == site && e.same == same))
        else {
            return false;
        };
        let id = X86Inst::new(mnemonic).id();
        let inst = id.0 | u32::from(self.avx512) << 31;
        if entry.inst != inst || usize::from(entry.len) != N {
            return false;
        }
        let mut ops = [IrOperand::Imm(0); N];
        for j in 0..N {
            let r = match &operands[j] {
                Operand::Reg(r) => r,
                Operand::Mem(m) if MEMORY => {
                    // Its shape is its size (its address registers are no
                    // operands of the shape).
                    let Some((mem, code)) = planned_mem(&st.f, self.vreg_base, m) else {
                        return false;
                    };
                    if entry.kinds[j] != PlannedShape::MEM || code != entry.vregs[j] {
                        return false;
                    }
                    ops[j] = IrOperand::Mem(mem);
                    continue;
                }
                _ => return false,
            };
            let Some(v) = (virt[j] - 1).checked_sub(self.vreg_base) else {
                return false;
            };
            let v = IrVReg::from_u32(v);
            let Some(data) = st.f.get_vreg(v) else {
                return false;
            };
            if r.kind() as u8 != entry.kinds[j] || PlannedShape::vreg_code(data) != entry.vregs[j] {
                return false;
            }
            ops[j] = IrOperand::Reg(IrReg::Virt(v, entry.views[j]));
        }
        st.f.push_tagged_array(jitforge_ir::InstKind::Target(id), ops, entry.tag)
            .is_ok()
    }

    /// After a typed method's instruction was added by [`Emitter::emit`]
    /// (the function had `before` instructions): when it became one tagged
    /// instruction on plain virtual registers, remembers its shape for
    /// [`add_planned`](Self::add_planned).
    #[cold]
    fn learn_planned(
        &mut self,
        site: usize,
        mnemonic: Mnemonic,
        operands: &[Operand],
        before: Option<usize>,
    ) {
        let n = operands.len();
        let (Some(st), Some(before)) = (self.func.as_ref(), before) else {
            return;
        };
        if n > ShapeKey::MAX_OPERANDS || st.f.num_insts() != before + 1 {
            return;
        }
        let last = &st.f.all_insts()[before];
        let id = X86Inst::new(mnemonic).id();
        let (Some(tag), jitforge_ir::InstKind::Target(added)) = (last.tag(), last.kind) else {
            return;
        };
        let ir_ops = st.f.operands(jitforge_ir::Inst::from_u32(before as u32));
        if added != id || ir_ops.len() != n {
            return;
        }
        let mut entry = PlannedShape {
            site,
            inst: id.0 | u32::from(self.avx512) << 31,
            len: n as u8,
            tag,
            ..PlannedShape::default()
        };
        let mut virt = [0u32; ShapeKey::MAX_OPERANDS];
        for (j, (op, ir)) in operands.iter().zip(ir_ops).enumerate() {
            if let (Operand::Mem(m), IrOperand::Mem(mem)) = (op, ir) {
                // Memory that `add_planned` converts the same way.
                let Some((planned, code)) = planned_mem(&st.f, self.vreg_base, m) else {
                    return;
                };
                if planned != *mem {
                    return;
                }
                entry.kinds[j] = PlannedShape::MEM;
                entry.vregs[j] = code;
                continue;
            }
            let (Operand::Reg(r), IrOperand::Reg(IrReg::Virt(v, view))) = (op, ir) else {
                return;
            };
            let (Some(index), true) = (r.virtual_index(), r.decorators().is_empty()) else {
                return;
            };
            virt[j] = index.wrapping_add(1);
            entry.kinds[j] = r.kind() as u8;
            entry.vregs[j] = PlannedShape::vreg_code(st.f.vreg(*v));
            entry.views[j] = *view;
        }
        entry.same = PlannedShape::same_pattern(&virt);
        let range = PlannedShape::set(site, entry.same);
        let planned = &mut self.ws.get().planned;
        if planned.is_empty() {
            planned.resize(PlannedShape::SLOTS, PlannedShape::default());
        }
        // The key's own slot, else a free one, else the first of the set
        // (four ways: frequent shapes whose sites share a set keep their
        // slots unless five do).
        let set = &mut planned[range];
        let at = set
            .iter()
            .position(|e| e.site == site && e.same == entry.same)
            .or_else(|| set.iter().position(|e| e.site == 0))
            .unwrap_or(0);
        set[at] = entry;
    }

    /// Adds an instruction without prefixes or mask whose operands are
    /// virtual registers (no decorations) and register-based memory, when
    /// an instruction of the same shape was added before: it gets that
    /// one's facts tag, without building operand shapes or looking the
    /// facts up. Anything else, and errors, are left to
    /// [`plain_inst`](Self::plain_inst), which reports them.
    #[inline(always)]
    fn memo_inst(&mut self, mnemonic: Mnemonic, operands: &[Operand]) -> Result<Memo> {
        if operands.len() > ShapeKey::MAX_OPERANDS {
            return Ok(Memo::NotMemoized);
        }
        if !matches!(&self.func, Some(st) if st.entered) {
            // The first instruction enters the function (or fails without one).
            self.enter_first()?;
        }
        let base = self.vreg_base;
        let Some(st) = self.func.as_mut() else {
            return Ok(Memo::NotMemoized);
        };
        let id = X86Inst::new(mnemonic).id();
        let mut key = ShapeKey {
            inst: id.0 | u32::from(self.avx512) << 31,
            ops: [0; ShapeKey::MAX_OPERANDS],
        };
        // Fixed arrays: no vector to grow or drop on the path of every
        // instruction. `regs` has each operand's register, to find repeats.
        let mut ops = [IrOperand::Imm(0); ShapeKey::MAX_OPERANDS];
        let mut regs: [Option<IrReg>; ShapeKey::MAX_OPERANDS] = [None; ShapeKey::MAX_OPERANDS];
        for (j, op) in operands.iter().enumerate() {
            // Each arm writes its operand in place (a returned operand
            // would be moved once more).
            let code = match op {
                Operand::Reg(r) => {
                    let Some((reg, code)) = memo_reg(&st.f, base, *r) else {
                        return Ok(Memo::NotMemoized);
                    };
                    // The first earlier operand that is the same register.
                    let same = regs[..j].iter().position(|r| *r == Some(reg)).unwrap_or(7) as u32;
                    regs[j] = Some(reg);
                    ops[j] = IrOperand::Reg(reg);
                    code | same << 22
                }
                // Memory's shape is its size (the address registers are no operands of it).
                Operand::Mem(m) => {
                    let Some(mem) = register_mem(&st.f, base, m, &st.wide_phys) else {
                        return Ok(Memo::NotMemoized);
                    };
                    ops[j] = IrOperand::Mem(mem);
                    ShapeKey::MEM | u32::from(mem.size)
                }
                _ => return Ok(Memo::NotMemoized),
            };
            key.ops[j] = ShapeKey::PRESENT | code;
        }
        let tag = match self.ws.0.as_deref() {
            Some(ws) => ws.shape_memo.get(&key),
            None => None,
        };
        let Some(tag) = tag else {
            return Ok(Memo::Miss(key));
        };
        st.f.push_tagged(
            jitforge_ir::InstKind::Target(id),
            &ops[..operands.len()],
            tag,
        )
        .map_err(|e| invalid(&e.to_string()))?;
        Ok(Memo::Added)
    }

    /// Appends target instruction `id` on `ops` with facts tag `tag`.
    fn push_target(
        &mut self,
        id: jitforge_ir::TargetInst,
        ops: &[IrOperand],
        tag: u16,
    ) -> Result<()> {
        let st = self
            .func
            .as_mut()
            .ok_or_else(|| invalid("no function: call add_func first"))?;
        st.f.push_tagged(jitforge_ir::InstKind::Target(id), ops, tag)
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(())
    }

    /// Adds an instruction whose operands include virtual registers bound
    /// to its implicit registers. `Err(None)`: no form takes this many
    /// operands; `Err(Some(reason))`: one does, but an operand is wrong.
    fn bound_inst(&mut self, inst: X86Inst, operands: &[Operand]) -> Result<(), Option<String>> {
        let mut ops: Vec<IrOperand> = Vec::with_capacity(operands.len());
        for op in operands {
            ops.push(self.ir_operand(op).map_err(|e| Some(e.to_string()))?);
        }
        let id = inst.id();
        let base = self.vreg_base;
        let target = self.target;
        let st = self.func.as_mut().ok_or(None)?;
        let shapes: Vec<OpShape> = ops.iter().map(|o| st.f.operand_shape(o)).collect();
        let layout = target.implicit_layout(id, &shapes).map_err(|_| None)?;
        let bound_at = if layout.explicit.start == 0 {
            layout.explicit.end
        } else {
            0
        };
        let mut bound_vregs: Vec<IrVReg> = Vec::with_capacity(layout.implicit.len());
        for (k, imp) in layout.implicit.iter().enumerate() {
            let at = bound_at + k;
            let name = preg_name(target, imp.reg);
            let what = if imp.reg.class == IrClass::VEC {
                "vector"
            } else {
                "general-purpose"
            };
            let wrong = |got: String| {
                Some(format!(
                    "operand {at} stands for {name} and must be a {what} virtual register of at least {} bytes, not {got} ({})",
                    imp.min_size,
                    target.binding_text_of(id, &shapes).unwrap_or_default()
                ))
            };
            match ops[at] {
                IrOperand::Reg(IrReg::Virt(v, view)) => {
                    let data = st.f.vreg(v);
                    let size = view.size().unwrap_or(data.size);
                    if data.class != imp.reg.class || view.is_high() || size < imp.min_size {
                        let kind = if data.class == IrClass::VEC {
                            "vector"
                        } else if data.class == IrClass::MASK {
                            "mask"
                        } else {
                            "general-purpose"
                        };
                        return Err(wrong(format!("a {size}-byte {kind} register")));
                    }
                    if bound_vregs.contains(&v) {
                        return Err(Some(format!(
                            "virtual register %{} stands for two implicit registers",
                            base + v.as_u32()
                        )));
                    }
                    bound_vregs.push(v);
                }
                IrOperand::Reg(IrReg::Phys(..)) => {
                    return Err(wrong(format!("the physical register {}", operands[at])));
                }
                _ => return Err(wrong(format!("{}", operands[at]))),
            }
        }
        // An explicit operand naming a bound register gets a copy: the
        // allocator gives each operand its own constraint.
        let mut copies: Vec<(IrVReg, IrVReg)> = Vec::new();
        for op in &mut ops[layout.explicit.clone()] {
            rename_vregs(op, |v| {
                if !bound_vregs.contains(&v) {
                    return v;
                }
                if let Some(&(_, t)) = copies.iter().find(|(from, _)| *from == v) {
                    return t;
                }
                let data = *st.f.vreg(v);
                let t = st.f.new_vreg(data.class, data.size, None);
                copies.push((v, t));
                t
            });
        }
        for &(from, to) in &copies {
            st.f.copy(IrOperand::v(to), IrOperand::v(from))
                .map_err(|e| Some(e.to_string()))?;
        }
        let shapes: Vec<OpShape> = ops.iter().map(|o| st.f.operand_shape(o)).collect();
        let ws = self.ws.get();
        let tag = target
            .facts_index(&mut ws.facts_table, id, &shapes, &mut ws.facts)
            .map_err(|e| Some(e.to_string()))?
            .unwrap_or(jitforge_ir::NO_TAG);
        st.f.push_tagged(jitforge_ir::InstKind::Target(id), &ops, tag)
            .map_err(|e| Some(e.to_string()))?;
        Ok(())
    }
}

/// The buffers of the analyses the Compiler runs on every function: a
/// Compiler keeps them between its functions, and when it drops they wait
/// in [`SPARE_WORKSPACE`] for the next Compiler of the thread, so that
/// compiling many small functions, each with its own Compiler and code
/// holder (workload C), does not allocate them anew each time.
#[derive(Default)]
struct Workspace {
    cfg: Cfg,
    view: RaView,
    allocator: Allocator,
    out: Output,
    facts: InstFacts,
    /// The facts of the instructions written, by their tags.
    facts_table: FactsTable,
    /// Tags of `facts_table` by the shape of the instruction (cleared with it).
    shape_memo: ShapeMemo,
    /// The rewrite's encoded instructions (by tags of `facts_table`).
    memo: super::rewrite::EncodingMemo,
    /// Tags of `facts_table` by typed method (cleared with it).
    planned: Vec<PlannedShape>,
    /// The mode (64-bit or not) `facts_table` was filled for.
    mode64: Option<bool>,
    /// The last function compiled, its buffers kept for the next one.
    function: Option<Box<IrFunction>>,
    /// The open function's tables.
    tables: FuncTables,
    /// The entry label of each function of the Compiler whose name was
    /// taken in the code holder, by name (emptied, not freed, when the
    /// workspace goes back to the pool).
    functions: crate::code::NameTable,
    /// The other functions' entry labels, named in the code holder: a bit
    /// per label id (emptied with `functions`). They are found by their
    /// name there: a Compiler per function copies no name into a table.
    named_functions: Vec<u64>,
    /// The name and signature of each function added, by entry label id
    /// (a call to one must use that signature); emptied like `functions`.
    signatures: IdMap<Signature>,
}

thread_local! {
    /// The workspace of the last Compiler dropped on this thread.
    static SPARE_WORKSPACE: std::cell::Cell<Option<Box<Workspace>>> = const { std::cell::Cell::new(None) };
}

/// A [`Workspace`] that goes back to [`SPARE_WORKSPACE`] when dropped
/// (boxed: handing it over moves a pointer, not the workspace).
struct Pooled(Option<Box<Workspace>>);

impl Pooled {
    /// The thread's spare workspace, or none yet (made on first use).
    fn take() -> Pooled {
        Pooled(SPARE_WORKSPACE.try_with(|s| s.take()).ok().flatten())
    }

    /// The workspace (inline: on the path of every instruction; making
    /// one, once per thread, is not).
    #[inline]
    fn get(&mut self) -> &mut Workspace {
        if self.0.is_none() {
            self.make();
        }
        self.0.get_or_insert_with(Box::default)
    }

    #[cold]
    fn make(&mut self) {
        self.0 = Some(Box::default());
    }
}

/// Entries of the facts table kept from one function to the next (beyond,
/// it starts again empty).
const FACTS_TABLE_KEEP: usize = 4096;

/// A workspace whose last function had more instructions than this is
/// freed, not kept: a thread that compiled one very large function should
/// not hold its buffers for good. Below it they are kept: freeing and
/// faulting in again the 3 MB of workload B for every function made it
/// 23% slower (measured with a limit of 4,096). [`release_thread_workspace`]
/// frees them on demand.
const SPARE_MAX_INSTS: usize = 65_536;

/// Frees the buffers this thread keeps between Compilers (the function,
/// allocator and encoding-memo scratch of the last function compiled, if
/// it had at most 65,536 IR instructions). The next Compiler of the
/// thread starts from nothing. For a thread that compiled a large function
/// and will not compile again soon.
///
/// ```
/// jitforge::compiler::release_thread_workspace();
/// ```
pub fn release_thread_workspace() {
    let _ = SPARE_WORKSPACE.try_with(|s| s.take());
    // The Builder's spare scratch and the target's memos are kept per
    // thread too: all of it goes, so that a heap measurement made after
    // this call counts everything a compile from nothing allocates.
    crate::builder::release_spare_scratch();
    crate::code::release_spare_buffers();
    super::target::release_thread_memos();
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(mut ws) = self.0.take() else { return };
        // The tables of functions belong to the Compiler that drops.
        ws.functions.clear();
        ws.named_functions.clear();
        ws.signatures.clear();
        let large = ws.function.as_ref().map_or(0, |f| f.num_insts()) > SPARE_MAX_INSTS;
        if large {
            return;
        }
        // During thread teardown the slot may be gone: the buffers are freed.
        let _ = SPARE_WORKSPACE.try_with(|s| s.set(Some(ws)));
    }
}

/// What [`Compiler::plain_inst`] found (errors boxed: the common case
/// stays small to return).
enum Plain {
    /// The instruction is added, tagged with the index of its facts in the
    /// workspace's facts table (or `NO_TAG`).
    Added(u16),
    /// No form takes the operands.
    NoForm(Box<Error>),
    /// A form takes them but reads implicit registers.
    MissingImplicit(Box<Error>),
}

/// What [`Compiler::memo_inst`] did.
enum Memo {
    /// The instruction is added.
    Added,
    /// It can be memoized but its shape is not known yet: the key to
    /// remember its tag under once it is added.
    Miss(ShapeKey),
    /// Not an instruction the memo takes.
    NotMemoized,
}

/// The shape of an instruction as far as its facts depend on it, for
/// instructions on virtual registers and register-based memory (see
/// [`Compiler::memo_inst`]): the instruction id (the AVX-512 setting in
/// the top bit) and one code per operand (0: no operand).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct ShapeKey {
    inst: u32,
    ops: [u32; ShapeKey::MAX_OPERANDS],
}

impl ShapeKey {
    const MAX_OPERANDS: usize = 4;
    /// Set in the code of every operand present.
    const PRESENT: u32 = 1 << 31;
    /// Set in the code of a memory operand.
    const MEM: u32 = 1 << 30;

    fn slot(&self) -> usize {
        let mut h = u64::from(self.inst);
        for &o in &self.ops {
            h = (h ^ u64::from(o)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        (h >> (64 - ShapeMemo::SLOTS.trailing_zeros())) as usize
    }
}

/// What [`Compiler::add_planned`] checks an instruction of a typed method
/// against: the last instruction of that method (`site`) with the same
/// pattern of repeated registers, its operands' register kinds and their
/// virtual registers' classes and sizes, which decide its shape and so its
/// facts tag, and the IR view each operand became.
#[derive(Clone, Copy)]
struct PlannedShape {
    /// The address of the typed method's plans (0: empty slot).
    site: usize,
    /// The instruction id, the AVX-512 setting in the top bit (as [`ShapeKey::inst`]).
    inst: u32,
    len: u8,
    /// Which operands name the same virtual register ([`PlannedShape::same_pattern`]).
    same: u8,
    tag: u16,
    kinds: [u8; ShapeKey::MAX_OPERANDS],
    vregs: [u32; ShapeKey::MAX_OPERANDS],
    views: [View; ShapeKey::MAX_OPERANDS],
}

impl Default for PlannedShape {
    fn default() -> PlannedShape {
        PlannedShape {
            site: 0,
            inst: 0,
            len: 0,
            same: 0,
            tag: jitforge_ir::NO_TAG,
            kinds: [0; ShapeKey::MAX_OPERANDS],
            vregs: [0; ShapeKey::MAX_OPERANDS],
            views: [View::FULL; ShapeKey::MAX_OPERANDS],
        }
    }
}

impl PlannedShape {
    /// The kind code of a memory operand (no register kind has it); its
    /// `vregs` code is [`planned_mem`]'s.
    const MEM: u8 = u8::MAX;

    /// Slots (a function has a handful of typed calls), in sets of
    /// [`PlannedShape::WAYS`] that a key may use.
    const SLOTS: usize = 64;
    const WAYS: usize = 4;

    /// The slots of a key: one set of [`PlannedShape::WAYS`].
    fn set(site: usize, same: u8) -> std::ops::Range<usize> {
        let sets = Self::SLOTS / Self::WAYS;
        let h = (site as u64 ^ u64::from(same)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let first = (h >> (64 - sets.trailing_zeros())) as usize * Self::WAYS;
        first..first + Self::WAYS
    }

    /// A bit per pair of operands ((0,1), (0,2), (1,2), (0,3), (1,3),
    /// (2,3)) naming the same virtual register (`virt`: their numbers
    /// from 1, 0 past the operands; written out: a loop over the pairs
    /// cost more than the lookup it keys).
    #[inline(always)]
    fn same_pattern(virt: &[u32; ShapeKey::MAX_OPERANDS]) -> u8 {
        let [a, b, c, d] = *virt;
        if c == 0 && a != 0 && b != 0 {
            // Two operands (the common case): only the first pair can
            // match, and the absent two always do (the same value as below).
            return u8::from(b == a) | 1 << 5;
        }
        u8::from(b == a)
            | u8::from(c == a) << 1
            | u8::from(c == b) << 2
            | u8::from(d == a) << 3
            | u8::from(d == b) << 4
            | u8::from(d == c) << 5
    }

    /// A virtual register's class and size in one word.
    fn vreg_code(data: &jitforge_ir::VRegData) -> u32 {
        u32::from(data.class.0) | u32::from(data.size) << 8
    }
}

/// Facts tags by instruction shape: two-way, the newest shape of a full
/// pair of slots wins. Tags index the workspace's facts table, so it is cleared
/// with it.
#[derive(Default)]
struct ShapeMemo {
    slots: Vec<(ShapeKey, u16)>,
}

impl ShapeMemo {
    /// Few: a function has a handful of instruction shapes, and the memo
    /// is part of the first function's heap.
    const SLOTS: usize = 64;

    /// The two slots a key may be in (two-way, so that two frequent
    /// shapes with one hash slot do not take turns).
    fn slots_of(key: &ShapeKey) -> [usize; 2] {
        let slot = key.slot();
        [slot, slot ^ 1]
    }

    fn get(&self, key: &ShapeKey) -> Option<u16> {
        Self::slots_of(key).into_iter().find_map(|slot| {
            let (k, tag) = self.slots.get(slot)?;
            (k == key && *tag != jitforge_ir::NO_TAG).then_some(*tag)
        })
    }

    fn insert(&mut self, key: ShapeKey, tag: u16) {
        if self.slots.is_empty() {
            self.slots
                .resize(Self::SLOTS, (ShapeKey::default(), jitforge_ir::NO_TAG));
        }
        let [first, second] = Self::slots_of(&key);
        // The first slot unless it is taken and the second is free.
        let slot = if self.slots[first].1 != jitforge_ir::NO_TAG
            && self.slots[second].1 == jitforge_ir::NO_TAG
        {
            second
        } else {
            first
        };
        self.slots[slot] = (key, tag);
    }

    fn clear(&mut self) {
        self.slots.clear();
    }
}

/// Whether bit `id` of `bits` is set.
fn has_bit(bits: &[u64], id: u32) -> bool {
    bits.get(id as usize / 64)
        .is_some_and(|w| w & 1 << (id % 64) != 0)
}

/// Sets bit `id` of `bits` (growing it).
fn set_bit(bits: &mut Vec<u64>, id: u32) {
    let word = id as usize / 64;
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (id % 64);
}

/// The name of a physical register in its widest view.
fn preg_name(target: &X86Target, p: jitforge_ir::PReg) -> String {
    [View::Q64, View::D32, View::X128, View::FULL]
        .iter()
        .find_map(|&v| target.reg_name(p, v))
        .map_or_else(|| format!("{p:?}"), str::to_string)
}

/// Renames the virtual registers of an operand (also inside its address).
fn rename_vregs(op: &mut IrOperand, mut rename: impl FnMut(IrVReg) -> IrVReg) {
    let mut reg = |r: &mut IrReg| {
        if let IrReg::Virt(v, view) = *r {
            *r = IrReg::Virt(rename(v), view);
        }
    };
    match op {
        IrOperand::Reg(r) => reg(r),
        IrOperand::Mem(m) => {
            if let IrMemBase::Reg(r) = &mut m.base {
                reg(r);
            }
            if let Some(r) = &mut m.index {
                reg(r);
            }
        }
        _ => {}
    }
}

/// The global constant pool's labels by bytes and alignment: SipHash with
/// fixed keys (the constants are the program's own; a random seed would be
/// read from thread-local state by every Compiler made).
type ConstantMap = HashMap<(Vec<u8>, u32), Label, BuildHasherDefault<std::hash::DefaultHasher>>;

/// A map keyed by code label id.
type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// Hashes label ids (small distinct numbers, not chosen by an adversary) by
/// one multiplication: SipHash's protection costs more than the lookup.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The register number of virtual registers made outside a function (or
/// past the end of the numbering): never valid.
const OUTSIDE: u32 = u32::MAX - 1;

/// The IR register for an x86 register (virtual or physical) used in `f`,
/// whose virtual registers are numbered from `base`; a physical ymm or zmm
/// register sets `wide_phys` ([`FuncState::wide_phys`]).
#[inline]
fn ir_reg(f: &IrFunction, base: u32, r: Reg, wide_phys: &std::cell::Cell<bool>) -> Result<IrReg> {
    // A virtual register of `f` (the common case) inline; the rest, and
    // the errors with their messages, out of line.
    if let Some(index) = r.virtual_index()
        && let Some(view) = reg_view(r.kind())
        && let Some((reg, _)) = virtual_reg(f, base, index, view)
    {
        return Ok(reg);
    }
    other_ir_reg(f, base, r, wide_phys)
}

/// [`ir_reg`] of a physical register, or the error for one the Compiler
/// does not take.
#[inline(never)]
fn other_ir_reg(
    f: &IrFunction,
    base: u32,
    r: Reg,
    wide_phys: &std::cell::Cell<bool>,
) -> Result<IrReg> {
    let view = reg_view(r.kind())
        .ok_or_else(|| invalid(&format!("{r} cannot be used by the Compiler")))?;
    match r.virtual_index() {
        Some(index) => {
            if let Some((reg, _)) = virtual_reg(f, base, index, view) {
                return Ok(reg);
            }
            Err(invalid(&if index == OUTSIDE {
                format!(
                    "virtual register {r} was made outside a function (call add_func first); it does not belong to function {}",
                    f.name()
                )
            } else if index < base {
                format!(
                    "virtual register %{index} belongs to an earlier function of this Compiler, not to function {}",
                    f.name()
                )
            } else {
                format!(
                    "virtual register %{index} does not belong to function {} (it was not made by this Compiler)",
                    f.name()
                )
            }))
        }
        None => {
            if matches!(r.kind(), RegKind::Ymm | RegKind::Zmm) {
                wide_phys.set(true);
            }
            let class = match r.kind() {
                RegKind::Xmm | RegKind::Ymm | RegKind::Zmm => IrClass::VEC,
                RegKind::K => IrClass::MASK,
                _ => IrClass::GP,
            };
            Ok(IrReg::Phys(jitforge_ir::PReg::new(class, r.hw_id()), view))
        }
    }
}

/// The IR view of an x86 register kind (`None`: not one the Compiler takes).
fn reg_view(kind: RegKind) -> Option<View> {
    Some(match kind {
        RegKind::Gp8 => View::B8,
        RegKind::Gp8Hi => View::H8,
        RegKind::Gp16 => View::W16,
        RegKind::Gp32 => View::D32,
        RegKind::Gp64 => View::Q64,
        RegKind::Xmm => View::X128,
        RegKind::Ymm => View::Y256,
        RegKind::Zmm => View::Z512,
        RegKind::K => View::FULL,
        _ => return None,
    })
}

/// Virtual register `index` (numbered from `base`) of `f` seen through
/// `view`, and its data; `None` when it is not one of `f`'s.
fn virtual_reg(
    f: &IrFunction,
    base: u32,
    index: u32,
    view: View,
) -> Option<(IrReg, &jitforge_ir::VRegData)> {
    if index == OUTSIDE {
        return None;
    }
    let v = IrVReg::from_u32(index.checked_sub(base)?);
    let data = f.get_vreg(v)?;
    // The register's own size is its full view (so copies are recognised).
    let view = if view.size() == Some(data.size) || view == View::FULL {
        View::FULL
    } else {
        view
    };
    Some((IrReg::Virt(v, view), data))
}

/// The IR register of `r`, an undecorated virtual register of `f`
/// (numbered from `base`), and the part of an operand's code in a
/// [`ShapeKey`] that the facts take from a register's shape: class, size,
/// high byte, sub-view (the repeat of an earlier operand is the caller's).
/// `None` for any other register.
#[inline(always)]
fn memo_reg(f: &IrFunction, base: u32, r: Reg) -> Option<(IrReg, u32)> {
    if !r.decorators().is_empty() {
        return None;
    }
    let view = reg_view(r.kind())?;
    let v = IrVReg::from_u32(r.virtual_index()?.checked_sub(base)?);
    let data = f.get_vreg(v)?;
    // The register's own size is its full view (so copies are recognised).
    let (view, size) = match view.size() {
        Some(size) if size != data.size => (view, size),
        _ => (View::FULL, data.size),
    };
    let code = u32::from(data.class.0 & 0xF)
        | u32::from(size) << 4
        | u32::from(view.is_high()) << 20
        | u32::from(view != View::FULL) << 21;
    Some((IrReg::Virt(v, view), code))
}

/// The IR form of memory `m` addressed by registers of `f` (numbered
/// from `base`) only, without segment, broadcast or decorations; `None`
/// for anything else (which [`Compiler::ir_mem`] converts or reports).
#[inline(always)]
fn register_mem(
    f: &IrFunction,
    base: u32,
    m: &Mem,
    wide_phys: &std::cell::Cell<bool>,
) -> Option<IrMem> {
    if m.segment().is_some() || m.is_broadcast() || m.is_abs64() || !m.decorators().is_empty() {
        return None;
    }
    let disp = i32::try_from(m.disp()).ok()?;
    let address = match m.base() {
        MemBase::None => IrMemBase::None,
        MemBase::Reg(r) => IrMemBase::Reg(ir_reg(f, base, r, wide_phys).ok()?),
        _ => return None,
    };
    let mut mem = IrMem::new(address, disp, m.size());
    if let Some(index) = m.index() {
        mem = mem.with_index(ir_reg(f, base, index, wide_phys).ok()?, m.scale());
    }
    Some(mem)
}

/// The IR form of memory `m` that [`Compiler::add_planned`] takes: a
/// virtual register of `f` (numbered from `base`) plus a displacement, no
/// index, segment, broadcast or decorations (`None` for anything else);
/// and its code for [`PlannedShape::vregs`]: the memory's size, the base
/// register's kind and its virtual register's class and size (so that a
/// base of another width or class takes the general path, which checks it).
#[inline(always)]
fn planned_mem(f: &IrFunction, base: u32, m: &Mem) -> Option<(IrMem, u32)> {
    if m.segment().is_some()
        || m.is_broadcast()
        || m.is_abs64()
        || !m.decorators().is_empty()
        || m.index().is_some()
    {
        return None;
    }
    let MemBase::Reg(r) = m.base() else {
        return None;
    };
    let (reg, data) = virtual_reg(f, base, r.virtual_index()?, reg_view(r.kind())?)?;
    let disp = i32::try_from(m.disp()).ok()?;
    let code = u32::from(m.size())
        | u32::from(r.kind() as u8) << 16
        | u32::from(data.class.0 & 0xF) << 24
        | (data.size.trailing_zeros() & 0xF) << 28;
    Some((IrMem::new(IrMemBase::Reg(reg), disp, m.size()), code))
}

/// A signature as text: `(i64, f64) -> (i64) sysv64`.
fn describe_signature(target: &dyn Target, s: &Signature) -> String {
    let list = |types: &[jitforge_ir::ValType]| {
        types
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conv = target
        .call_conv(s.conv)
        .map_or_else(|| format!("convention {}", s.conv.0), |c| c.name.clone());
    format!(
        "({}{}) -> ({}) {conv}",
        list(&s.params),
        if s.varargs { ", ..." } else { "" },
        list(&s.rets)
    )
}

/// Whether a call passes as many arguments (and results, unless `rets` is
/// `None`) as `signature` takes; `args` and `rets` are (found, wanted)
/// operand counts, which differ from the signature's types where an `I64`
/// in 32-bit mode is two 32-bit values. A variadic callee takes its fixed
/// parameters and any number more, typed by the registers passed.
fn check_call_arity(
    what: &str,
    signature: &Signature,
    (args, wanted_args): (usize, usize),
    rets: Option<(usize, usize)>,
) -> Result<()> {
    let args_fit = if signature.varargs {
        args >= wanted_args
    } else {
        args == wanted_args
    };
    if args_fit && rets.is_none_or(|(found, wanted)| found == wanted) {
        return Ok(());
    }
    let split_args = wanted_args != signature.params.len();
    let split_rets = rets.is_some_and(|(_, wanted)| wanted != signature.rets.len());
    Err(invalid(&format!(
        "{what}: the signature takes {}{} argument(s) and {} result(s){}, the call passes {} and {}",
        if signature.varargs { "at least " } else { "" },
        wanted_args,
        rets.map_or(signature.rets.len(), |(_, wanted)| wanted),
        match (split_args, split_rets) {
            (false, false) => "",
            (true, false) =>
                " (an I64 argument in 32-bit mode is two 32-bit values, low then high)",
            (false, true) =>
                " (an I64 result in 32-bit mode is two 32-bit registers, low then high)",
            (true, true) =>
                " (an I64 argument or result in 32-bit mode is two 32-bit values, low then high)",
        },
        args,
        rets.map_or_else(
            || "returns the callee's".to_string(),
            |(found, _)| found.to_string()
        )
    )))
}

/// A label that a jump or jump table of `f` targets but `f` never binds
/// (calls may name other functions' labels).
fn unbound_jump_target(f: &IrFunction) -> Option<IrLabel> {
    // Most functions have no label operand at all: one pass over the
    // operand pool, without looking at instructions.
    if f.num_jump_tables() == 0
        && !f
            .all_operands()
            .iter()
            .any(|op| matches!(op, IrOperand::Label(_)))
    {
        return None;
    }
    let mut bound = vec![false; f.num_labels()];
    for i in f.insts() {
        if let jitforge_ir::InstKind::Bind(l) = f.kind(i) {
            bound[l.as_u32() as usize] = true;
        }
    }
    let unbound = |l: &IrLabel| !bound.get(l.as_u32() as usize).copied().unwrap_or(false);
    for i in f.insts() {
        if matches!(
            f.kind(i),
            jitforge_ir::InstKind::Call(_) | jitforge_ir::InstKind::TailJump(_)
        ) {
            continue;
        }
        for op in f.operands(i) {
            if let IrOperand::Label(l) = op
                && unbound(l)
            {
                return Some(*l);
            }
        }
    }
    (0..f.num_jump_tables()).find_map(|t| {
        f.jump_table(jitforge_ir::JumpTable::from_u32(t as u32))
            .iter()
            .find(|l| unbound(l))
            .copied()
    })
}

/// What the emission needs to know of a function's operands (one pass
/// over the operand pool).
struct OperandSummary {
    /// Whether an operand is a label or an address built on one (a label,
    /// stack slot or jump table), or the function has jump tables.
    refers_to_labels: bool,
    /// Whether it names a 256- or 512-bit vector register anywhere.
    wide_vectors: bool,
}

impl OperandSummary {
    /// The summary of `f`'s operands; `wide_phys`: whether one may be a
    /// physical ymm or zmm register ([`FuncState::wide_phys`]).
    fn of(f: &IrFunction, wide_phys: bool) -> OperandSummary {
        // Without a vector vreg only a physical register can be wide.
        let vector_vregs = f.vregs().any(|(_, d)| d.class == IrClass::VEC);
        let wide_vreg = |v: IrVReg, view: View| {
            vector_vregs
                && f.get_vreg(v)
                    .is_some_and(|d| d.class == IrClass::VEC && view.size().unwrap_or(d.size) >= 32)
        };
        let mut summary = OperandSummary {
            refers_to_labels: f.num_jump_tables() != 0,
            wide_vectors: false,
        };
        if !vector_vregs && f.num_labels() == 0 && f.num_constants() == 0 {
            // Nothing to refer to (no label, jump table or constant), and
            // only a physical register can be wide: one test per operand,
            // when there may be one.
            summary.wide_vectors = wide_phys
                && f.all_operands().iter().any(|op| {
                    matches!(*op, IrOperand::Reg(IrReg::Phys(p, view))
                    if p.class == IrClass::VEC && view.size().unwrap_or(0) >= 32)
                });
            return summary;
        }
        for op in f.all_operands() {
            match *op {
                IrOperand::Label(_) => summary.refers_to_labels = true,
                IrOperand::Mem(m) => {
                    summary.refers_to_labels |= !matches!(
                        m.base,
                        IrMemBase::None
                            | IrMemBase::Reg(_)
                            | IrMemBase::Slot(_)
                            | IrMemBase::InArgs
                            | IrMemBase::OutArgs
                    )
                }
                IrOperand::Reg(IrReg::Virt(v, view)) => summary.wide_vectors |= wide_vreg(v, view),
                IrOperand::Reg(IrReg::Phys(p, view)) => {
                    summary.wide_vectors |=
                        p.class == IrClass::VEC && view.size().unwrap_or(0) >= 32
                }
                IrOperand::Fixed(v, _) => summary.wide_vectors |= wide_vreg(v, View::FULL),
                IrOperand::Imm(_) => {}
            }
        }
        summary
    }
}

fn invalid(message: &str) -> Error {
    Error::InvalidArgument {
        message: message.to_string(),
    }
}

/// Typed methods for instructions whose implicit registers are operands
/// (they shadow the one-form methods of [`crate::x86::Instructions`], whose
/// implicit registers a Compiler cannot leave unbound).
macro_rules! bound_insts {
    ($($(#[$doc:meta])* $name:ident => $m:ident ($($arg:ident),+);)*) => {
        impl Compiler<'_> {$(
            $(#[$doc])*
            pub fn $name(&mut self, $($arg: impl Arg),+) -> Result<()> {
                self.emit(Mnemonic::$m, &[$($arg.to_operand()),+])
            }
        )*}
    };
}

bound_insts! {
    /// `div`: `hi:lo` (rdx:rax, 16/32/64-bit) divided by `src` (unsigned);
    /// the quotient goes to `lo`, the remainder to `hi`.
    div => Div(hi, lo, src);
    /// `idiv`: as [`div`](Compiler::div), signed.
    idiv => Idiv(hi, lo, src);
    /// `mul`: `hi:lo` (rdx:rax) = `lo * src` (unsigned, widening).
    mul => Mul(hi, lo, src);
    /// `imul` with one explicit operand: `hi:lo` (rdx:rax) = `lo * src`
    /// (signed, widening). The two- and three-operand forms are `imul_2`, `imul_3`.
    imul => Imul(hi, lo, src);
    /// `mul` of bytes: `ax` (a 16-bit register or view) = its low byte
    /// (al) * `src` (8-bit, unsigned, widening). The three-operand methods
    /// above have no byte form: it has one implicit register, not two.
    mul8 => Mul(ax, src);
    /// `imul` of bytes: as [`mul8`](Compiler::mul8), signed.
    imul8 => Imul(ax, src);
    /// `div` of bytes: `ax` divided by `src` (8-bit, unsigned); the
    /// quotient goes to al, the remainder to ah (`ax.r8()`, and bits 8..15).
    div8 => Div(ax, src);
    /// `idiv` of bytes: as [`div8`](Compiler::div8), signed.
    idiv8 => Idiv(ax, src);
    /// `cwd`: `hi` (dx) = the sign of `lo` (ax).
    cwd => Cwd(hi, lo);
    /// `cdq`: `hi` (edx) = the sign of `lo` (eax).
    cdq => Cdq(hi, lo);
    /// `cqo`: `hi` (rdx) = the sign of `lo` (rax).
    cqo => Cqo(hi, lo);
    /// `cbw`: `r` (ax) = the sign-extended byte `r.r8()` (al).
    cbw => Cbw(r);
    /// `cwde`: `r` (eax) = the sign-extended word (ax).
    cwde => Cwde(r);
    /// `cdqe`: `r` (rax) = the sign-extended doubleword (eax).
    cdqe => Cdqe(r);
    /// `mulx`: `hi:lo` = `multiplier` (rdx) * `src`, flags untouched (BMI2).
    mulx => Mulx(hi, lo, src, multiplier);
    /// `blendvps`: `dst` takes the elements of `src` where `mask` (xmm0) has the sign bit.
    blendvps => Blendvps(dst, src, mask);
    /// `pblendvb`: `dst` takes the bytes of `src` where `mask` (xmm0) has the sign bit.
    pblendvb => Pblendvb(dst, src, mask);
    /// `rdtsc`: the time-stamp counter in `hi:lo` (edx:eax).
    rdtsc => Rdtsc(hi, lo);
    /// `rdtscp`: the time-stamp counter in `hi:lo` (edx:eax), the processor id in `aux` (ecx).
    rdtscp => Rdtscp(hi, lo, aux);
    /// `cpuid`: reads the leaf in `a` (eax) and sub-leaf in `c` (ecx); writes `a`, `b`, `c`, `d` (eax, ebx, ecx, edx).
    cpuid => Cpuid(a, b, c, d);
    /// `xgetbv`: the extended control register `index` (ecx) in `hi:lo` (edx:eax).
    xgetbv => Xgetbv(hi, lo, index);
    /// `cmpxchg`: if `dst == expected` (rax) then `dst = src`, else `expected = dst`.
    cmpxchg => Cmpxchg(dst, src, expected);
    /// `movsb`: copies a byte from `[src]` (rsi) to `[dst]` (rdi) and advances both; with `rep(count)`, `count` bytes.
    movsb => Movsb(dst, src);
    /// `movsw`: as [`movsb`](Compiler::movsb), two bytes.
    movsw => Movsw(dst, src);
    /// `movsq`: as [`movsb`](Compiler::movsb), eight bytes.
    movsq => Movsq(dst, src);
    /// `stosb`: stores `value` (al) at `[dst]` (rdi) and advances it; with `rep(count)`, `count` times.
    stosb => Stosb(dst, value);
    /// `stosw`: as [`stosb`](Compiler::stosb), `value` in ax.
    stosw => Stosw(dst, value);
    /// `stosd`: as [`stosb`](Compiler::stosb), `value` in eax.
    stosd => Stosd(dst, value);
    /// `stosq`: as [`stosb`](Compiler::stosb), `value` in rax.
    stosq => Stosq(dst, value);
    /// `lodsb`: loads `value` (al) from `[src]` (rsi) and advances it.
    lodsb => Lodsb(src, value);
    /// `scasb`: compares `value` (al) with `[dst]` (rdi) and advances it; with `repne(count)`, a `memchr`.
    scasb => Scasb(dst, value);
    /// `cmpsb`: compares `[src]` (rsi) with `[dst]` (rdi) and advances both; with `rep(count)`, a `memcmp`.
    cmpsb => Cmpsb(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::Instructions;

    type Recorded = Vec<(jitforge_ir::InstKind, Option<u16>, Vec<IrOperand>)>;

    /// Writes a function through `write` (given its registers), twice over,
    /// so that the second time the typed methods find their shapes;
    /// returns the IR instructions recorded: kind, tag and operands.
    fn program(write: impl Fn(&mut Compiler<'_>, Gp64, Gp64, Gp32, Xmm) -> Result<()>) -> Recorded {
        let mut code = CodeHolder::new(crate::Arch::X64);
        let mut cc = Compiler::new(&mut code);
        let sig = Signature::new(X86Target::SYSV64, &[], &[]);
        cc.add_func("shapes", sig).expect("add_func");
        let (a, b) = (cc.new_gp64("a"), cc.new_gp64("b"));
        let (w, x) = (cc.new_gp32("w"), cc.new_xmm("x"));
        for _ in 0..2 {
            write(&mut cc, a, b, w, x).expect("instructions");
        }
        let f = &cc.func.as_ref().expect("a function is open").f;
        (0..f.num_insts())
            .map(|i| {
                let d = &f.all_insts()[i];
                let ops = f.operands(jitforge_ir::Inst::from_u32(i as u32));
                (d.kind, d.tag(), ops.to_vec())
            })
            .collect()
    }

    /// The typed methods' shortcut ([`Compiler::add_planned`]) records
    /// what the general path records for the same instructions: registers
    /// repeated or not, sub-register views, registers of other sizes.
    #[test]
    fn typed_methods_record_what_the_dynamic_path_records() {
        let dynamic = program(|cc, a, b, w, x| {
            cc.emit(Mnemonic::Xor, &[a.into(), a.into()])?;
            cc.emit(Mnemonic::Xor, &[a.into(), b.into()])?;
            cc.emit(Mnemonic::Xor, &[b.into(), a.into()])?;
            cc.emit(Mnemonic::Add, &[a.r32().into(), w.into()])?;
            cc.emit(Mnemonic::Add, &[w.into(), a.r32().into()])?;
            cc.emit(Mnemonic::Add, &[w.into(), w.into()])?;
            cc.emit(Mnemonic::Add, &[a.r8().into(), b.r8().into()])?;
            cc.emit(Mnemonic::Add, &[w.r64().into(), b.into()])?;
            cc.emit(Mnemonic::Imul, &[a.into(), b.into()])?;
            cc.emit(Mnemonic::Pxor, &[x.into(), x.into()])
        });
        let typed = program(|cc, a, b, w, x| {
            cc.xor_(a, a)?;
            cc.xor_(a, b)?;
            cc.xor_(b, a)?;
            cc.add(a.r32(), w)?;
            cc.add(w, a.r32())?;
            cc.add(w, w)?;
            cc.add(a.r8(), b.r8())?;
            cc.add(w.r64(), b)?;
            cc.imul_2(a, b)?;
            cc.pxor(x, x)
        });
        assert_eq!(typed.len(), dynamic.len());
        for (i, (t, d)) in typed.iter().zip(&dynamic).enumerate() {
            assert_eq!(t, d, "instruction {i}");
        }
    }
}
