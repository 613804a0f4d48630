//! The function: its entity tables, its linear instruction list with a shared
//! operand pool, the operand types, and the building API the Compiler uses.
//!
//! A function is a linear list of instructions in program order (as AsmJit's
//! node list): label binds are instructions too, and blocks are derived by
//! [`crate::cfg::Cfg`]. Operands of all instructions live in one pool
//! (`Vec<Operand>`), each instruction holds a range into it, so building an
//! instruction allocates nothing once the buffers have grown; [`Function::clear`]
//! keeps the buffers for the next function.

use crate::entities::*;
use core::ops::Range;
use cranelift_entity::{PrimaryMap, packed_option::PackedOption};
use smallvec::SmallVec;

/// A register operand: a (view of a) virtual register or a physical register.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Reg {
    /// A virtual register, possibly a sub-register view (`v.r8()`).
    Virt(VReg, View),
    /// A physical register with the width used (`eax` = gp 0 with [`View::D32`]).
    Phys(PReg, View),
}

impl Reg {
    /// The whole virtual register.
    pub fn v(v: VReg) -> Reg {
        Reg::Virt(v, View::FULL)
    }
    /// The virtual register if this is one.
    #[inline]
    pub fn vreg(self) -> Option<VReg> {
        match self {
            Reg::Virt(v, _) => Some(v),
            Reg::Phys(..) => None,
        }
    }
    /// The physical register if this is one.
    pub fn preg(self) -> Option<PReg> {
        match self {
            Reg::Phys(p, _) => Some(p),
            Reg::Virt(..) => None,
        }
    }
    /// The view.
    pub fn view(self) -> View {
        match self {
            Reg::Virt(_, w) | Reg::Phys(_, w) => w,
        }
    }
}

/// The base of a memory operand.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum MemBase {
    /// No base (absolute or index-only address).
    None,
    /// A register base.
    Reg(Reg),
    /// The address of a stack slot of this function.
    Slot(StackSlot),
    /// The address of a constant of this function's pool.
    Const(Constant),
    /// The address of a label (RIP-relative on x86-64).
    Label(Label),
    /// The address of a jump table's data (one address per target label).
    JumpTable(JumpTable),
    /// The incoming stack-argument area (just above the return address at entry).
    InArgs,
    /// The outgoing stack-argument area (the stack pointer at the call).
    OutArgs,
}

/// A memory operand: `size [base + index*scale + disp]`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Mem {
    /// The base.
    pub base: MemBase,
    /// The index register, if any.
    pub index: Option<Reg>,
    /// The index scale (1, 2, 4 or 8).
    pub scale: u8,
    /// The displacement.
    pub disp: i32,
    /// The accessed size in bytes (0 = unspecified).
    pub size: u16,
}

impl Mem {
    /// `size [base + disp]`.
    pub fn new(base: MemBase, disp: i32, size: u16) -> Mem {
        Mem {
            base,
            index: None,
            scale: 1,
            disp,
            size,
        }
    }
    /// `size [v + disp]` with a virtual register base.
    pub fn vreg(base: VReg, disp: i32, size: u16) -> Mem {
        Mem::new(MemBase::Reg(Reg::v(base)), disp, size)
    }
    /// With an index register and scale.
    pub fn with_index(mut self, index: Reg, scale: u8) -> Mem {
        self.index = Some(index);
        self.scale = scale;
        self
    }
    /// The registers the address reads (base and index).
    pub fn regs(&self) -> impl Iterator<Item = Reg> {
        let b = match self.base {
            MemBase::Reg(r) => Some(r),
            _ => None,
        };
        b.into_iter().chain(self.index)
    }
}

/// An operand of an instruction.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Operand {
    /// A register.
    Reg(Reg),
    /// A virtual register constrained to a physical register at this
    /// instruction (produced by calling-convention lowering).
    Fixed(VReg, PReg),
    /// A memory operand.
    Mem(Mem),
    /// An immediate.
    Imm(i64),
    /// A label (branch target, call target, or taken address).
    Label(Label),
}

impl Operand {
    /// The whole virtual register `v`.
    pub fn v(v: VReg) -> Operand {
        Operand::Reg(Reg::v(v))
    }
    /// A view of virtual register `v`.
    pub fn view(v: VReg, view: View) -> Operand {
        Operand::Reg(Reg::Virt(v, view))
    }
    /// A physical register of the given width.
    pub fn p(p: PReg, view: View) -> Operand {
        Operand::Reg(Reg::Phys(p, view))
    }
    /// The virtual register this operand names directly (not through memory).
    pub fn direct_vreg(&self) -> Option<VReg> {
        match *self {
            Operand::Reg(Reg::Virt(v, _)) | Operand::Fixed(v, _) => Some(v),
            _ => None,
        }
    }
}

impl From<Mem> for Operand {
    fn from(m: Mem) -> Operand {
        Operand::Mem(m)
    }
}

/// What an instruction is: a target instruction or a pseudo-instruction.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum InstKind {
    /// A target instruction; its operand facts come from the target.
    Target(TargetInst),
    /// Binds a label here (no operands).
    Bind(Label),
    /// Function entry: one operand per parameter, each a register the
    /// parameter arrives in (written). Must be the first instruction (only
    /// label binds may precede it).
    Entry,
    /// Return: one operand per return value (read).
    Ret,
    /// A call: operands are `[callee, args..., results...]`.
    Call(CallRef),
    /// A tail jump to another function: `[callee, args...]`. Ends the block
    /// and is not a CFG edge.
    TailJump(CallRef),
    /// A move `[dst, src]` (register, memory or immediate source; the
    /// classes may differ, e.g. gp <- vec, with equal sizes).
    Copy,
    /// Address of memory: `[dst, mem]` (a `lea` the IR can emit itself).
    Addr,
    /// Unconditional jump: `[label]`.
    Jump,
    /// Indirect jump `[target]` (register or memory), with the annotated
    /// list of targets if known.
    JumpIndirect(PackedOption<JumpTable>),
}

/// An instruction: its kind, its range in the operand pool and its tag.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct InstData {
    /// What it is.
    pub kind: InstKind,
    ops_start: u32,
    ops_len: u16,
    /// See [`InstData::tag`] (in the padding the other fields leave: free).
    tag: u16,
}

/// Instructions a list may have for its buffers to be kept for reuse
/// when a pass replaces it.
const SPARE_MAX_INSTS: usize = 4096;

/// The tag of an instruction that has none (see [`InstData::tag`]).
pub const NO_TAG: u16 = u16::MAX;

impl InstData {
    /// The operand range in the pool.
    #[inline]
    pub fn ops_range(&self) -> Range<usize> {
        self.ops_start as usize..self.ops_start as usize + self.ops_len as usize
    }
    /// Number of operands.
    #[inline]
    pub fn ops_len(&self) -> usize {
        self.ops_len as usize
    }
    /// The opaque number the IR's user attached to the instruction
    /// ([`Function::push_tagged`]), if any. The IR never reads it; passes
    /// that copy an instruction (lowering, unreachable-code removal) keep
    /// it. The Compiler tags each target instruction with the index of the
    /// operand facts it computed when the instruction was written, so that
    /// later stages read them instead of matching the forms again.
    #[inline]
    pub fn tag(&self) -> Option<u16> {
        (self.tag != NO_TAG).then_some(self.tag)
    }
}

/// A function signature: parameter and return types and a calling convention.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Signature {
    /// Parameter types (the fixed ones if variadic).
    pub params: SmallVec<[ValType; 6]>,
    /// Return types.
    pub rets: SmallVec<[ValType; 2]>,
    /// The calling convention.
    pub conv: CallConvId,
    /// Whether extra (variadic) arguments follow the fixed ones.
    pub varargs: bool,
}

impl Signature {
    /// A signature.
    pub fn new(conv: CallConvId, params: &[ValType], rets: &[ValType]) -> Signature {
        // `from_slice` copies the types at once (`collect` pushes them
        // one by one, checking for room each time).
        Signature {
            params: SmallVec::from_slice(params),
            rets: SmallVec::from_slice(rets),
            conv,
            varargs: false,
        }
    }
    /// The same signature, variadic after its fixed parameters.
    pub fn variadic(mut self) -> Signature {
        self.varargs = true;
        self
    }
}

/// The data of a virtual register.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct VRegData {
    /// Its class.
    pub class: RegClass,
    /// Its size in bytes.
    pub size: u16,
    name: NameRef,
}

/// The data of a label.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct LabelData {
    name: NameRef,
}

/// A stack slot's size and alignment.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct StackSlotData {
    /// Size in bytes.
    pub size: u32,
    /// Alignment in bytes (a power of two).
    pub align: u32,
}

/// A constant's place in the pool and its alignment.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConstantData {
    start: u32,
    len: u32,
    /// Alignment in bytes.
    pub align: u32,
}

/// A call record.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct CallData {
    /// The callee's signature.
    pub sig: SigRef,
    /// How many of the operands after the callee are arguments (the rest are results).
    pub nargs: u16,
}

#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
struct NameRef {
    start: u32,
    len: u32,
}

impl NameRef {
    const NONE: NameRef = NameRef {
        start: u32::MAX,
        len: 0,
    };
}

/// What calling-convention lowering recorded for the frame builder.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct FrameInfo {
    /// Size of the outgoing stack-argument area the calls need (shadow space included).
    pub out_args: u32,
    /// Stack alignment required at calls (16, or 32/64 for wide stack arguments).
    pub call_align: u32,
    /// Bytes the function pops from the stack when it returns (stdcall, fastcall).
    pub ret_pop: u32,
}

/// A function of the IR.
#[derive(Clone, Debug)]
pub struct Function {
    name: String,
    /// The function's own signature.
    pub sig: Signature,
    vregs: PrimaryMap<VReg, VRegData>,
    labels: PrimaryMap<Label, LabelData>,
    slots: PrimaryMap<StackSlot, StackSlotData>,
    consts: PrimaryMap<Constant, ConstantData>,
    sigs: PrimaryMap<SigRef, Signature>,
    calls: PrimaryMap<CallRef, CallData>,
    jump_tables: PrimaryMap<JumpTable, (u32, u32)>,
    insts: PrimaryMap<Inst, InstData>,
    operands: Vec<Operand>,
    pins: SmallVec<[(VReg, PReg); 2]>,
    names: String,
    const_bytes: Vec<u8>,
    jt_labels: Vec<Label>,
    spare: InstBuf,
    /// The kinds pushed since [`Function::clear`] (a superset of those in
    /// `insts`).
    kinds: KindSummary,
    /// `Some` once calling-convention lowering ran.
    pub frame: Option<FrameInfo>,
}

/// A conservative summary of the kinds of a function's instructions, kept
/// up to date as they are pushed ([`Function::kind_summary`]): a pass that
/// looks for a rare kind skips its walk over the list when the summary
/// rules the kind out. It may only err towards "may have".
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct KindSummary {
    calls: bool,
    /// Entries, returns, calls and tail jumps pushed (at least as many as
    /// the function has).
    abi: u32,
    /// Bit `k`: a target instruction whose id's low six bits are `k`.
    target_bits: u64,
}

impl KindSummary {
    /// Records an instruction of `kind`.
    #[inline(always)]
    fn add(&mut self, kind: InstKind) {
        match kind {
            InstKind::Target(id) => self.target_bits |= 1 << (id.0 & 63),
            InstKind::Call(_) | InstKind::TailJump(_) => {
                self.calls = true;
                self.abi = self.abi.saturating_add(1);
            }
            InstKind::Entry | InstKind::Ret => self.abi = self.abi.saturating_add(1),
            _ => {}
        }
    }
    fn union(self, o: KindSummary) -> KindSummary {
        KindSummary {
            calls: self.calls | o.calls,
            // Each list's count covers its instructions.
            abi: self.abi.saturating_add(o.abi),
            target_bits: self.target_bits | o.target_bits,
        }
    }
    /// The [`may_have_target`](Self::may_have_target) mask of target
    /// instruction ids `ids`.
    pub const fn target_mask(ids: &[u32]) -> u64 {
        let mut mask = 0u64;
        let mut k = 0;
        while k < ids.len() {
            mask |= 1 << (ids[k] & 63);
            k += 1;
        }
        mask
    }
    /// Whether the function may have a call or tail jump (`false`: it has none).
    pub fn may_call(&self) -> bool {
        self.calls
    }
    /// At least as many as the function's entries, returns, calls and
    /// tail jumps (the instructions calling-convention lowering changes).
    pub fn abi_bound(&self) -> u32 {
        self.abi
    }
    /// Whether the function may have a target instruction of one of the
    /// ids of `mask` ([`target_mask`](Self::target_mask)); `false`: it has none.
    pub fn may_have_target(&self, mask: u64) -> bool {
        self.target_bits & mask != 0
    }
}

/// An error of the building API (also used by the parser).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BuildError {
    /// An instruction has more than 65535 operands, or a pool outgrew 4 GiB.
    TooLarge,
    /// A call's argument count does not fit the operand list.
    BadCall,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::TooLarge => f.write_str("instruction or pool too large"),
            BuildError::BadCall => f.write_str("malformed call operands"),
        }
    }
}

impl std::error::Error for BuildError {}

impl Function {
    /// A new empty function.
    pub fn new(name: &str, sig: Signature) -> Function {
        Function {
            name: name.to_string(),
            sig,
            vregs: PrimaryMap::new(),
            labels: PrimaryMap::new(),
            slots: PrimaryMap::new(),
            consts: PrimaryMap::new(),
            sigs: PrimaryMap::new(),
            calls: PrimaryMap::new(),
            jump_tables: PrimaryMap::new(),
            insts: PrimaryMap::new(),
            operands: Vec::new(),
            pins: SmallVec::new(),
            names: String::new(),
            const_bytes: Vec::new(),
            jt_labels: Vec::new(),
            spare: InstBuf::default(),
            kinds: KindSummary::default(),
            frame: None,
        }
    }

    /// Empties the function for reuse, keeping every buffer's capacity.
    pub fn clear(&mut self, name: &str, sig: Signature) {
        self.name.clear();
        self.name.push_str(name);
        self.sig = sig;
        self.vregs.clear();
        self.labels.clear();
        self.slots.clear();
        self.consts.clear();
        self.sigs.clear();
        self.calls.clear();
        self.jump_tables.clear();
        self.insts.clear();
        self.operands.clear();
        self.pins.clear();
        self.names.clear();
        self.const_bytes.clear();
        self.jt_labels.clear();
        self.kinds = KindSummary::default();
        self.frame = None;
    }

    /// A `Display` of the function in the text format.
    pub fn display<'a>(
        &'a self,
        target: &'a dyn crate::target::Target,
    ) -> crate::text::DisplayFunction<'a> {
        crate::text::DisplayFunction(self, target)
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn intern(&mut self, name: Option<&str>) -> NameRef {
        match name {
            None => NameRef::NONE,
            Some(n) => {
                let start = self.names.len() as u32;
                self.names.push_str(n);
                NameRef {
                    start,
                    len: n.len() as u32,
                }
            }
        }
    }

    fn name_of(&self, n: NameRef) -> Option<&str> {
        if n.start == u32::MAX {
            None
        } else {
            self.names
                .get(n.start as usize..n.start as usize + n.len as usize)
        }
    }

    // ----- entities -----

    /// A new virtual register of `class` and `size` bytes, optionally named.
    #[inline]
    pub fn new_vreg(&mut self, class: RegClass, size: u16, name: Option<&str>) -> VReg {
        let name = self.intern(name);
        self.vregs.push(VRegData { class, size, name })
    }
    /// A new general-purpose virtual register.
    pub fn new_gp(&mut self, size: u16, name: &str) -> VReg {
        self.new_vreg(RegClass::GP, size, Some(name))
    }
    /// A new vector virtual register.
    pub fn new_vec(&mut self, size: u16, name: &str) -> VReg {
        self.new_vreg(RegClass::VEC, size, Some(name))
    }
    /// The data of a virtual register.
    #[inline]
    pub fn vreg(&self, v: VReg) -> &VRegData {
        &self.vregs[v]
    }
    /// The data of a virtual register, or `None` if it is not of this function.
    #[inline]
    pub fn get_vreg(&self, v: VReg) -> Option<&VRegData> {
        self.vregs.get(v)
    }
    /// The name of a virtual register.
    pub fn vreg_name(&self, v: VReg) -> Option<&str> {
        self.vregs.get(v).and_then(|d| self.name_of(d.name))
    }
    /// Number of virtual registers.
    #[inline]
    pub fn num_vregs(&self) -> usize {
        self.vregs.len()
    }
    /// All virtual registers.
    pub fn vregs(&self) -> impl ExactSizeIterator<Item = (VReg, &VRegData)> {
        self.vregs.iter()
    }

    /// A new label, optionally named.
    pub fn new_label(&mut self, name: Option<&str>) -> Label {
        let name = self.intern(name);
        self.labels.push(LabelData { name })
    }
    /// The name of a label.
    pub fn label_name(&self, l: Label) -> Option<&str> {
        self.labels.get(l).and_then(|d| self.name_of(d.name))
    }
    /// Number of labels.
    #[inline]
    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    /// A new stack slot.
    pub fn new_stack_slot(&mut self, size: u32, align: u32) -> StackSlot {
        self.slots.push(StackSlotData { size, align })
    }
    /// A stack slot's data.
    pub fn stack_slot(&self, s: StackSlot) -> &StackSlotData {
        &self.slots[s]
    }
    /// All stack slots.
    pub fn stack_slots(&self) -> impl ExactSizeIterator<Item = (StackSlot, &StackSlotData)> {
        self.slots.iter()
    }

    /// A new constant with the given bytes and alignment.
    pub fn new_constant(&mut self, bytes: &[u8], align: u32) -> Constant {
        let start = self.const_bytes.len() as u32;
        self.const_bytes.extend_from_slice(bytes);
        self.consts.push(ConstantData {
            start,
            len: bytes.len() as u32,
            align,
        })
    }
    /// A constant's bytes.
    pub fn constant_bytes(&self, c: Constant) -> &[u8] {
        let d = &self.consts[c];
        &self.const_bytes[d.start as usize..(d.start + d.len) as usize]
    }
    /// A constant's data.
    pub fn constant(&self, c: Constant) -> &ConstantData {
        &self.consts[c]
    }
    /// Number of constants.
    pub fn num_constants(&self) -> usize {
        self.consts.len()
    }

    /// Imports a signature for calls.
    pub fn import_sig(&mut self, sig: Signature) -> SigRef {
        self.sigs.push(sig)
    }
    /// An imported signature.
    pub fn sig_ref(&self, s: SigRef) -> &Signature {
        &self.sigs[s]
    }
    /// An imported signature, or `None` if `s` is not of this function.
    pub fn get_sig_ref(&self, s: SigRef) -> Option<&Signature> {
        self.sigs.get(s)
    }
    /// All imported signatures.
    pub fn sig_refs(&self) -> impl ExactSizeIterator<Item = (SigRef, &Signature)> {
        self.sigs.iter()
    }
    /// Number of call records.
    pub fn num_calls(&self) -> usize {
        self.calls.len()
    }
    /// A call record, or `None` if `c` is not of this function.
    pub fn get_call_data(&self, c: CallRef) -> Option<&CallData> {
        self.calls.get(c)
    }
    /// A call record.
    pub fn call_data(&self, c: CallRef) -> &CallData {
        &self.calls[c]
    }

    /// A new jump table listing `targets`.
    pub fn new_jump_table(&mut self, targets: &[Label]) -> JumpTable {
        let start = self.jt_labels.len() as u32;
        self.jt_labels.extend_from_slice(targets);
        self.jump_tables.push((start, targets.len() as u32))
    }
    /// A jump table's targets.
    pub fn jump_table(&self, jt: JumpTable) -> &[Label] {
        let (s, n) = self.jump_tables[jt];
        &self.jt_labels[s as usize..(s + n) as usize]
    }
    /// Number of jump tables.
    #[inline]
    pub fn num_jump_tables(&self) -> usize {
        self.jump_tables.len()
    }

    /// Reserves `preg` for the whole function, holding `vreg` (e.g. a VM
    /// context pointer pinned in r15). The allocator never uses `preg` for
    /// anything else and `vreg` always lives there.
    pub fn pin(&mut self, vreg: VReg, preg: PReg) {
        self.pins.push((vreg, preg));
    }
    /// The pinned registers.
    pub fn pins(&self) -> &[(VReg, PReg)] {
        &self.pins
    }

    // ----- instructions -----

    /// Appends an instruction of `kind` with `ops`.
    pub fn push(&mut self, kind: InstKind, ops: &[Operand]) -> Result<Inst, BuildError> {
        self.push_tagged(kind, ops, NO_TAG)
    }
    /// Appends an instruction of `kind` with `ops` and a tag (see
    /// [`InstData::tag`]; [`NO_TAG`] for none).
    // Inlined across crates: the Compiler pushes every instruction through
    // here, and a call costs more than the push.
    #[inline(always)]
    pub fn push_tagged(
        &mut self,
        kind: InstKind,
        ops: &[Operand],
        tag: u16,
    ) -> Result<Inst, BuildError> {
        if ops.len() > u16::MAX as usize || self.operands.len() + ops.len() > u32::MAX as usize {
            return Err(BuildError::TooLarge);
        }
        self.kinds.add(kind);
        let ops_start = self.operands.len() as u32;
        if ops.len() <= 4 {
            // The few operands of most instructions one by one: a
            // `memcpy` call costs more than their copy.
            self.operands.reserve(4);
            for op in ops {
                self.operands.push(*op);
            }
        } else {
            self.operands.extend_from_slice(ops);
        }
        Ok(self.insts.push(InstData {
            kind,
            ops_start,
            ops_len: ops.len() as u16,
            tag,
        }))
    }
    /// [`push_tagged`](Self::push_tagged) of a fixed number of operands
    /// (the Compiler's typed calls): one capacity check and a copy of known
    /// length.
    #[inline(always)]
    pub fn push_tagged_array<const N: usize>(
        &mut self,
        kind: InstKind,
        ops: [Operand; N],
        tag: u16,
    ) -> Result<Inst, BuildError> {
        if N > u16::MAX as usize || self.operands.len() + N > u32::MAX as usize {
            return Err(BuildError::TooLarge);
        }
        self.kinds.add(kind);
        let ops_start = self.operands.len() as u32;
        self.operands.extend_from_slice(&ops);
        Ok(self.insts.push(InstData {
            kind,
            ops_start,
            ops_len: N as u16,
            tag,
        }))
    }
    /// Appends a target instruction.
    pub fn inst(&mut self, id: TargetInst, ops: &[Operand]) -> Result<Inst, BuildError> {
        self.push(InstKind::Target(id), ops)
    }
    /// Binds `label` here.
    pub fn bind(&mut self, label: Label) -> Result<Inst, BuildError> {
        self.push(InstKind::Bind(label), &[])
    }
    /// The entry pseudo-instruction, one register per parameter.
    pub fn entry(&mut self, args: &[Operand]) -> Result<Inst, BuildError> {
        self.push(InstKind::Entry, args)
    }
    /// Return with `values`.
    pub fn ret(&mut self, values: &[Operand]) -> Result<Inst, BuildError> {
        self.push(InstKind::Ret, values)
    }
    /// Copy `src` into `dst`.
    pub fn copy(&mut self, dst: Operand, src: Operand) -> Result<Inst, BuildError> {
        self.push(InstKind::Copy, &[dst, src])
    }
    /// `dst = address of mem`.
    pub fn addr(&mut self, dst: Operand, mem: Mem) -> Result<Inst, BuildError> {
        self.push(InstKind::Addr, &[dst, Operand::Mem(mem)])
    }
    /// Unconditional jump.
    pub fn jump(&mut self, label: Label) -> Result<Inst, BuildError> {
        self.push(InstKind::Jump, &[Operand::Label(label)])
    }
    /// Indirect jump, with its annotated targets if known.
    pub fn jump_indirect(
        &mut self,
        target: Operand,
        table: Option<JumpTable>,
    ) -> Result<Inst, BuildError> {
        self.push(InstKind::JumpIndirect(table.into()), &[target])
    }
    /// A call (`invoke`): `callee` is an immediate address, a label or a
    /// register; `args` registers or immediates (the same register may appear
    /// twice); `rets` registers receiving the results.
    pub fn call(
        &mut self,
        sig: SigRef,
        callee: Operand,
        args: &[Operand],
        rets: &[Operand],
    ) -> Result<Inst, BuildError> {
        let c = self.new_call(sig, args.len())?;
        self.push_call(InstKind::Call(c), callee, args, rets)
    }
    /// A tail jump to `callee` with `args` (ends the function's path).
    pub fn tail_jump(
        &mut self,
        sig: SigRef,
        callee: Operand,
        args: &[Operand],
    ) -> Result<Inst, BuildError> {
        let c = self.new_call(sig, args.len())?;
        self.push_call(InstKind::TailJump(c), callee, args, &[])
    }
    /// A new call record (for [`Function::push`] users).
    pub fn new_call(&mut self, sig: SigRef, nargs: usize) -> Result<CallRef, BuildError> {
        let nargs = u16::try_from(nargs).map_err(|_| BuildError::TooLarge)?;
        Ok(self.calls.push(CallData { sig, nargs }))
    }
    fn push_call(
        &mut self,
        kind: InstKind,
        callee: Operand,
        args: &[Operand],
        rets: &[Operand],
    ) -> Result<Inst, BuildError> {
        let n = 1 + args.len() + rets.len();
        if n > u16::MAX as usize {
            return Err(BuildError::TooLarge);
        }
        self.kinds.add(kind);
        let ops_start = self.operands.len() as u32;
        self.operands.push(callee);
        self.operands.extend_from_slice(args);
        self.operands.extend_from_slice(rets);
        Ok(self.insts.push(InstData {
            kind,
            ops_start,
            ops_len: n as u16,
            tag: NO_TAG,
        }))
    }

    /// What kinds of instruction the function may have (a superset of
    /// those it has: kinds pushed since it was made or cleared).
    #[inline]
    pub fn kind_summary(&self) -> KindSummary {
        self.kinds
    }

    /// Number of instructions.
    #[inline]
    pub fn num_insts(&self) -> usize {
        self.insts.len()
    }
    /// An instruction's data.
    #[inline]
    pub fn inst_data(&self, i: Inst) -> &InstData {
        &self.insts[i]
    }
    /// An instruction's kind.
    #[inline]
    pub fn kind(&self, i: Inst) -> InstKind {
        self.insts[i].kind
    }
    /// An instruction's operands.
    #[inline]
    pub fn operands(&self, i: Inst) -> &[Operand] {
        &self.operands[self.insts[i].ops_range()]
    }
    /// An instruction's operands, mutable (the allocator's rewrite may use it).
    pub fn operands_mut(&mut self, i: Inst) -> &mut [Operand] {
        let r = self.insts[i].ops_range();
        &mut self.operands[r]
    }
    /// The operands of every instruction, in program order (the shared
    /// pool: a scan over all operands needs no per-instruction lookup).
    #[inline]
    pub fn all_operands(&self) -> &[Operand] {
        &self.operands
    }
    /// The data of every instruction, in program order (a scan over all
    /// instructions needs no per-instruction lookup).
    #[inline]
    pub fn all_insts(&self) -> &[InstData] {
        self.insts.as_values_slice()
    }
    /// All instructions in program order.
    pub fn insts(&self) -> impl ExactSizeIterator<Item = Inst> + use<> {
        (0..self.insts.len() as u32).map(Inst::from_u32)
    }
    /// A call instruction's parts: `(call record, callee, args, results)`.
    pub fn call_parts(&self, i: Inst) -> Option<(CallRef, Operand, &[Operand], &[Operand])> {
        let c = match self.insts[i].kind {
            InstKind::Call(c) | InstKind::TailJump(c) => c,
            _ => return None,
        };
        let ops = self.operands(i);
        let n = self.calls.get(c)?.nargs as usize;
        let (callee, rest) = ops.split_first()?;
        if rest.len() < n {
            return None;
        }
        let (a, r) = rest.split_at(n);
        Some((c, *callee, a, r))
    }

    /// Approximate bytes of memory the function holds (instructions by count,
    /// operand pool and names by capacity): for the Compiler's memory budget.
    pub fn heap_bytes(&self) -> usize {
        self.insts.len() * core::mem::size_of::<InstData>()
            + self.operands.capacity() * core::mem::size_of::<Operand>()
            + self.vregs.len() * core::mem::size_of::<VRegData>()
            + self.names.capacity()
    }

    /// Takes the instruction list and operand pool out (for passes that
    /// rebuild it); put them back with [`Function::set_insts`].
    pub(crate) fn take_insts(&mut self) -> (PrimaryMap<Inst, InstData>, Vec<Operand>) {
        (
            core::mem::take(&mut self.insts),
            core::mem::take(&mut self.operands),
        )
    }
    /// Puts a list taken with [`Function::take_insts`] back (changed in
    /// place: its kinds kept), or one rebuilt in `kinds` ([`InstBuf`]).
    pub(crate) fn set_insts(
        &mut self,
        insts: PrimaryMap<Inst, InstData>,
        ops: Vec<Operand>,
        kinds: KindSummary,
    ) {
        self.insts = insts;
        self.operands = ops;
        self.kinds = self.kinds.union(kinds);
    }
    /// An empty instruction buffer for a pass that rebuilds the list (the
    /// buffers of the list replaced last time, so rebuilding allocates nothing
    /// once warm).
    pub(crate) fn take_spare(&mut self) -> InstBuf {
        let mut b = core::mem::take(&mut self.spare);
        b.insts.clear();
        b.ops.clear();
        b.kinds = KindSummary::default();
        b
    }
    /// Gives buffers back for the next [`Function::take_spare`]; those of a
    /// large list are freed instead (a second copy of a large list would
    /// double the memory the function holds, for little gain).
    pub(crate) fn put_spare(&mut self, insts: PrimaryMap<Inst, InstData>, ops: Vec<Operand>) {
        self.spare = if insts.len() <= SPARE_MAX_INSTS {
            InstBuf {
                insts,
                ops,
                kinds: KindSummary::default(),
            }
        } else {
            InstBuf::default()
        };
    }
    /// Frees the growth slack of a large instruction list (a list a pass
    /// rebuilds is sized exactly): for a pass that changed the list in
    /// place, so that a large function holds no more through register
    /// allocation than a rebuilt list would. Small lists keep their room
    /// for the next function built in them.
    pub(crate) fn shrink_large_insts(&mut self) {
        if self.insts.len() > SPARE_MAX_INSTS {
            self.insts.shrink_to_fit();
            self.operands.shrink_to_fit();
        }
    }
    pub(crate) fn call_data_mut(&mut self, c: CallRef) -> &mut CallData {
        &mut self.calls[c]
    }
}

impl PartialEq for Function {
    fn eq(&self, o: &Function) -> bool {
        self.name == o.name
            && self.sig == o.sig
            && self.frame == o.frame
            && self.pins == o.pins
            && self.vregs.len() == o.vregs.len()
            && self
                .vregs
                .iter()
                .zip(o.vregs.iter())
                .all(|((a, x), (b, y))| {
                    x.class == y.class && x.size == y.size && self.vreg_name(a) == o.vreg_name(b)
                })
            && self.labels.len() == o.labels.len()
            && self
                .labels
                .keys()
                .all(|l| self.label_name(l) == o.label_name(l))
            && self.slots == o.slots
            && self.consts.len() == o.consts.len()
            && self.consts.iter().all(|(c, d)| {
                d.align == o.consts[c].align && self.constant_bytes(c) == o.constant_bytes(c)
            })
            && self.sigs == o.sigs
            && self.calls == o.calls
            && self.jump_tables.len() == o.jump_tables.len()
            && self
                .jump_tables
                .keys()
                .all(|j| self.jump_table(j) == o.jump_table(j))
            && self.insts.len() == o.insts.len()
            && self
                .insts()
                .all(|i| self.kind(i) == o.kind(i) && self.operands(i) == o.operands(i))
    }
}

impl Eq for Function {}

/// An instruction list under construction (for passes that rebuild the list).
#[derive(Default, Clone, Debug)]
pub(crate) struct InstBuf {
    pub(crate) insts: PrimaryMap<Inst, InstData>,
    pub(crate) ops: Vec<Operand>,
    /// The kinds pushed into it.
    pub(crate) kinds: KindSummary,
}

impl InstBuf {
    pub(crate) fn push(&mut self, kind: InstKind, ops: &[Operand]) -> Inst {
        self.push_tagged(kind, ops, NO_TAG)
    }
    /// Appends a copy of an instruction, its tag kept.
    pub(crate) fn push_tagged(&mut self, kind: InstKind, ops: &[Operand], tag: u16) -> Inst {
        self.kinds.add(kind);
        let ops_start = self.ops.len() as u32;
        self.ops.extend_from_slice(ops);
        self.insts.push(InstData {
            kind,
            ops_start,
            ops_len: ops.len().min(u16::MAX as usize) as u16,
            tag,
        })
    }
}
