//! A small mock "x86-like" target for tests and documentation: x86-64
//! register names, about thirty instructions with their operand facts
//! (two-address forms, shifts by `cl`, `div` on RDX:RAX, partial writes of
//! `setcc`, VEX-only registers of `vaddps`), and the standard calling
//! conventions. The real x86 target lives in the main crate.

use crate::abi::CallConv;
use crate::entities::*;
use crate::target::*;
use std::collections::HashMap;

/// One operand spec of a mock instruction form.
#[derive(Copy, Clone)]
struct Spec {
    kinds: KindSet,
    access: Access,
    fixed: Option<PReg>,
    allowed: u32,
    size: u16,
}

const fn s(kinds: KindSet, access: Access) -> Spec {
    Spec {
        kinds,
        access,
        fixed: None,
        allowed: u32::MAX,
        size: 0,
    }
}

const GP: KindSet = KindSet::GP;
const GM: KindSet = KindSet::GP.or(KindSet::MEM);
const GMI: KindSet = KindSet::GP.or(KindSet::MEM).or(KindSet::IMM);
const GI: KindSet = KindSet::GP.or(KindSet::IMM);
const VM: KindSet = KindSet::VEC.or(KindSet::MEM);
const R: Access = Access::Read;
const W: Access = Access::Write;
const RW: Access = Access::ReadWrite;
const PW: Access = Access::PartialWrite;

struct Def {
    name: &'static str,
    forms: Vec<Vec<Spec>>,
    implicit: Vec<ImplicitReg>,
    flow: Flow,
    xor_idiom: bool,
}

/// The mock target. See the module docs.
pub struct MockX86 {
    insts: Vec<Def>,
    by_name: HashMap<&'static str, u32>,
    reg_names: HashMap<(PReg, View), String>,
    regs_by_name: HashMap<String, (PReg, View)>,
    convs: Vec<CallConv>,
    /// Whether [`Target::extend_inst`] answers (see [`MockX86::without_extend_inst`]).
    extends: bool,
}

impl Default for MockX86 {
    fn default() -> Self {
        Self::new()
    }
}

const GP64: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];
const GP32: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
const GP16: [&str; 8] = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
const GP8: [&str; 8] = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"];
const GP8H: [&str; 4] = ["ah", "ch", "dh", "bh"];

impl MockX86 {
    /// Builds the mock target.
    pub fn new() -> MockX86 {
        let mut t = MockX86 {
            insts: Vec::new(),
            by_name: HashMap::new(),
            reg_names: HashMap::new(),
            regs_by_name: HashMap::new(),
            convs: vec![
                CallConv::sysv64(),
                CallConv::win64(),
                CallConv::vectorcall64(),
                CallConv::cdecl(),
                CallConv::stdcall(),
                CallConv::fastcall(),
                CallConv::vectorcall32(),
            ],
            extends: true,
        };
        t.add_regs();
        t.add_insts();
        t
    }

    fn reg(&mut self, p: PReg, v: View, name: String) {
        self.regs_by_name.insert(name.clone(), (p, v));
        self.reg_names.insert((p, v), name);
    }

    fn add_regs(&mut self) {
        for i in 0..16u8 {
            let p = PReg::gp(i);
            let iu = i as usize;
            self.reg(p, View::Q64, GP64[iu].to_string());
            if i < 8 {
                self.reg(p, View::D32, GP32[iu].to_string());
                self.reg(p, View::W16, GP16[iu].to_string());
                self.reg(p, View::B8, GP8[iu].to_string());
            } else {
                self.reg(p, View::D32, format!("r{i}d"));
                self.reg(p, View::W16, format!("r{i}w"));
                self.reg(p, View::B8, format!("r{i}b"));
            }
            if i < 4 {
                self.reg(p, View::H8, GP8H[iu].to_string());
            }
        }
        for i in 0..32u8 {
            let p = PReg::vec(i);
            self.reg(p, View::X128, format!("xmm{i}"));
            self.reg(p, View::Y256, format!("ymm{i}"));
            self.reg(p, View::Z512, format!("zmm{i}"));
        }
        for i in 0..8u8 {
            let k = PReg::mask(i);
            self.reg(k, View::FULL, format!("k{i}"));
            let st = PReg::new(RegClass::X87, i);
            self.reg(st, View::FULL, format!("st{i}"));
        }
    }

    fn def(&mut self, name: &'static str, forms: Vec<Vec<Spec>>) -> &mut Def {
        let id = self.insts.len() as u32;
        self.by_name.insert(name, id);
        self.insts.push(Def {
            name,
            forms,
            implicit: Vec::new(),
            flow: Flow::Normal,
            xor_idiom: false,
        });
        self.insts.last_mut().expect("just pushed")
    }

    fn add_insts(&mut self) {
        let rax = PReg::gp(0);
        let rdx = PReg::gp(2);
        let cl = Spec {
            fixed: Some(PReg::gp(1)),
            size: 1,
            ..s(GP, R)
        };
        self.def("mov", vec![vec![s(GM, W), s(GMI, R)]]);
        for n in ["add", "sub", "and", "or", "xor", "adc"] {
            let d = self.def(n, vec![vec![s(GM, RW), s(GMI, R)]]);
            d.xor_idiom = n == "xor" || n == "sub";
        }
        self.def(
            "imul",
            vec![
                vec![s(GP, RW), s(GM, R)],
                vec![s(GP, W), s(GM, R), s(KindSet::IMM, R)],
            ],
        );
        self.def("cmp", vec![vec![s(GM, R), s(GMI, R)]]);
        self.def("test", vec![vec![s(GM, R), s(GI, R)]]);
        self.def("lea", vec![vec![s(GP, W), s(KindSet::MEM, Access::None)]]);
        for n in ["shl", "shr", "sar"] {
            self.def(
                n,
                vec![vec![s(GM, RW), s(KindSet::IMM, R)], vec![s(GM, RW), cl]],
            );
        }
        for n in ["div", "idiv"] {
            let d = self.def(n, vec![vec![s(GM, R)]]);
            d.implicit = vec![
                ImplicitReg {
                    reg: rax,
                    access: RW,
                },
                ImplicitReg {
                    reg: rdx,
                    access: RW,
                },
            ];
        }
        let d = self.def("cqo", vec![vec![]]);
        d.implicit = vec![
            ImplicitReg {
                reg: rax,
                access: R,
            },
            ImplicitReg {
                reg: rdx,
                access: W,
            },
        ];
        for n in ["sete", "setne", "setl", "setg"] {
            self.def(
                n,
                vec![vec![Spec {
                    size: 1,
                    ..s(GM, PW)
                }]],
            );
        }
        self.def("movzx", vec![vec![s(GP, W), s(GM, R)]]);
        self.def("movsx", vec![vec![s(GP, W), s(GM, R)]]);
        for n in ["je", "jne", "jl", "jg", "jb", "jae"] {
            let d = self.def(n, vec![vec![s(KindSet::LABEL, R)]]);
            d.flow = Flow::CondBranch;
        }
        let d = self.def("jmp", vec![vec![s(KindSet::LABEL, R)], vec![s(GM, R)]]);
        d.flow = Flow::Jump;
        self.def(
            "movsd",
            vec![
                vec![s(KindSet::VEC, W), s(VM, R)],
                vec![s(KindSet::MEM, W), s(KindSet::VEC, R)],
            ],
        );
        for n in ["addsd", "subsd", "mulsd", "divsd"] {
            self.def(n, vec![vec![s(KindSet::VEC, RW), s(VM, R)]]);
        }
        self.def("movaps", vec![vec![s(VM, W), s(VM, R)]]);
        let vex = Spec {
            allowed: 0xFFFF,
            ..s(KindSet::VEC, W)
        };
        let vexr = Spec {
            allowed: 0xFFFF,
            ..s(KindSet::VEC, R)
        };
        let vexm = Spec {
            allowed: 0xFFFF,
            ..s(VM, R)
        };
        self.def("vaddps", vec![vec![vex, vexr, vexm]]);
        self.def("kmovw", vec![vec![s(KindSet::MASK, W), s(GP, R)]]);
        self.def("cvtsi2sd", vec![vec![s(KindSet::VEC, PW), s(GM, R)]]);
        self.def(
            "movq",
            vec![
                vec![s(KindSet::VEC, W), s(GM, R)],
                vec![s(GM, W), s(KindSet::VEC, R)],
            ],
        );
        let d = self.def("ud2", vec![vec![]]);
        d.flow = Flow::Return;
        self.def("nop", vec![vec![]]);
    }

    /// The same target as a target without an extension instruction would
    /// be ([`Target::extend_inst`] answers `None`), for tests of lowering.
    pub fn without_extend_inst(self) -> MockX86 {
        MockX86 {
            extends: false,
            ..self
        }
    }

    /// The id of a mnemonic (panics if unknown: for tests and docs only).
    pub fn id(&self, name: &str) -> TargetInst {
        TargetInst(self.by_name[name])
    }

    /// The id of a calling convention by name (panics if unknown: for tests and docs only).
    pub fn conv(&self, name: &str) -> CallConvId {
        self.call_conv_by_name(name).expect("known convention")
    }
}

fn shape_size(sh: &OpShape) -> u16 {
    match *sh {
        OpShape::Reg { size, .. } | OpShape::Mem { size } => size,
        _ => 0,
    }
}

impl Target for MockX86 {
    fn name(&self) -> &str {
        "mock-x86-64"
    }
    fn pointer_size(&self) -> u8 {
        8
    }
    fn reg_count(&self, class: RegClass) -> u8 {
        match class {
            RegClass::GP => 16,
            RegClass::VEC => 32,
            RegClass::MASK | RegClass::X87 => 8,
            _ => 0,
        }
    }
    fn reg_name(&self, reg: PReg, view: View) -> Option<&str> {
        self.reg_names.get(&(reg, view)).map(|s| s.as_str())
    }
    fn reg_by_name(&self, name: &str) -> Option<(PReg, View)> {
        self.regs_by_name.get(name).copied()
    }
    fn inst_name(&self, inst: TargetInst) -> Option<&str> {
        self.insts.get(inst.0 as usize).map(|d| d.name)
    }
    fn inst_by_name(&self, name: &str) -> Option<TargetInst> {
        self.by_name.get(name).map(|&i| TargetInst(i))
    }
    fn inst_facts(
        &self,
        inst: TargetInst,
        ops: &[OpShape],
        out: &mut InstFacts,
    ) -> Result<(), FactsError> {
        out.clear();
        let def = self
            .insts
            .get(inst.0 as usize)
            .ok_or(FactsError::UnknownInst(inst))?;
        let mut err = None;
        for form in def.forms.iter().filter(|f| f.len() == ops.len()) {
            let bad = form.iter().zip(ops).position(|(sp, sh)| {
                !sp.kinds.contains(sh.kind())
                    || (sp.size != 0 && shape_size(sh) != 0 && sp.size != shape_size(sh))
            });
            let two_mem = ops
                .iter()
                .filter(|o| matches!(o, OpShape::Mem { .. }))
                .count()
                > 1;
            match bad {
                Some(i) => {
                    err.get_or_insert(FactsError::OperandKind {
                        index: i,
                        expected: form[i].kinds,
                    });
                }
                None if two_mem => {
                    err.get_or_insert(FactsError::OperandKind {
                        index: 1,
                        expected: KindSet(form[1].kinds.0 & !KindSet::MEM.0),
                    });
                }
                None => {
                    for (sp, sh) in form.iter().zip(ops) {
                        let mut access = sp.access;
                        let mut allowed = sp.allowed;
                        if let OpShape::Reg {
                            class: RegClass::GP,
                            size,
                            high,
                            ..
                        } = *sh
                        {
                            if access == W && size < 4 {
                                access = PW;
                            }
                            if high {
                                allowed &= 0xF;
                            }
                        }
                        out.ops.push(OperandFact {
                            kinds: sp.kinds,
                            access,
                            size: shape_size(sh),
                            tied: None,
                            fixed: sp.fixed,
                            allowed,
                        });
                    }
                    // A high-byte register forbids REX, so the other byte
                    // registers of the instruction must be 0..3 too.
                    if ops
                        .iter()
                        .any(|o| matches!(o, OpShape::Reg { high: true, .. }))
                    {
                        for (f, sh) in out.ops.iter_mut().zip(ops) {
                            if matches!(
                                sh,
                                OpShape::Reg {
                                    class: RegClass::GP,
                                    size: 1,
                                    ..
                                }
                            ) {
                                f.allowed &= 0xF;
                            }
                        }
                    }
                    if def.xor_idiom
                        && let (Some(OpShape::Reg { id: a, .. }), Some(OpShape::Reg { id: b, .. })) =
                            (ops.first(), ops.get(1))
                        && a == b
                    {
                        out.ops[0].access = W;
                        out.ops[1].access = Access::None;
                    }
                    if def.name == "movsd" && matches!(ops.get(1), Some(OpShape::Reg { .. })) {
                        out.ops[0].access = PW;
                    }
                    out.implicit.extend_from_slice(&def.implicit);
                    out.flow = def.flow;
                    if def.name == "jmp" && !matches!(ops.first(), Some(OpShape::Label)) {
                        out.flow = Flow::IndirectJump;
                    }
                    return Ok(());
                }
            }
        }
        Err(err.unwrap_or_else(|| FactsError::OperandCount {
            expected: def.forms.iter().map(|f| f.len()).min().unwrap_or(0),
            found: ops.len(),
        }))
    }
    fn inst_flow(&self, inst: TargetInst, first: Option<&OpShape>) -> Flow {
        match self.insts.get(inst.0 as usize) {
            Some(d) if d.name == "jmp" && !matches!(first, Some(OpShape::Label)) => {
                Flow::IndirectJump
            }
            Some(d) => d.flow,
            None => Flow::Normal,
        }
    }
    fn extend_inst(&self, ext: Extension) -> Option<TargetInst> {
        if !self.extends {
            return None;
        }
        let name = match ext {
            Extension::Sign => "movsx",
            Extension::Zero => "movzx",
        };
        self.inst_by_name(name)
    }
    fn call_conv(&self, id: CallConvId) -> Option<&CallConv> {
        self.convs.get(id.0 as usize)
    }
}
