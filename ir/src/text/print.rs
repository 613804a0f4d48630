//! The printer of the text format.

use super::{MEM_SIZES, is_ident, reserved};
use crate::entities::*;
use crate::function::*;
use crate::target::Target;
use core::fmt::{self, Write};
use cranelift_entity::EntityRef;
use std::collections::HashMap;

/// Prints `func` to a string.
pub fn print_function(func: &Function, target: &dyn Target) -> String {
    let mut s = String::new();
    let _ = write_function(&mut s, func, target);
    s
}

/// Prints several functions, separated by blank lines (the input of
/// [`super::parse_module`]).
pub fn print_module(funcs: &[Function], target: &dyn Target) -> String {
    let mut s = String::new();
    for (i, f) in funcs.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = write_function(&mut s, f, target);
    }
    s
}

/// A `Display` wrapper: `format!("{}", DisplayFunction(&f, &target))`.
pub struct DisplayFunction<'a>(pub &'a Function, pub &'a dyn Target);

impl fmt::Display for DisplayFunction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_function(f, self.0, self.1)
    }
}

pub(crate) fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Display tokens of named entities: `%name` when the name is a unique
/// identifier, else `%index` with the name given in the declaration.
fn tokens<'a>(names: impl Iterator<Item = Option<&'a str>>) -> Vec<(String, Option<String>)> {
    let names: Vec<Option<&str>> = names.collect();
    let mut count: HashMap<&str, u32> = HashMap::new();
    for n in names.iter().flatten() {
        *count.entry(n).or_default() += 1;
    }
    names
        .iter()
        .enumerate()
        .map(|(i, n)| match n {
            Some(n) if is_ident(n) && count[n] == 1 => (n.to_string(), None),
            Some(n) => (i.to_string(), Some(quote(n))),
            None => (i.to_string(), None),
        })
        .collect()
}

struct Printer<'a> {
    f: &'a Function,
    t: &'a dyn Target,
    vregs: Vec<(String, Option<String>)>,
    labels: Vec<(String, Option<String>)>,
}

fn imm(v: i64) -> String {
    if (0..4096).contains(&v) {
        v.to_string()
    } else if v >= 0 {
        format!("0x{v:x}")
    } else if v > -4096 {
        v.to_string()
    } else {
        format!("-0x{:x}", v.unsigned_abs())
    }
}

pub(crate) fn preg(t: &dyn Target, p: PReg, view: View) -> String {
    if let Some(n) = t.reg_name(p, view)
        && t.reg_by_name(n) == Some((p, view))
    {
        return n.to_string();
    }
    let suf = view.suffix();
    if suf.is_empty() {
        format!("!{}{}", p.class.name(), p.hw)
    } else {
        format!("!{}{}.{}", p.class.name(), p.hw, suf)
    }
}

fn fixed_preg(t: &dyn Target, p: PReg) -> String {
    const ORDER: [View; 9] = [
        View::Q64,
        View::X128,
        View::FULL,
        View::D32,
        View::Y256,
        View::Z512,
        View::W16,
        View::B8,
        View::H8,
    ];
    for v in ORDER {
        if let Some(n) = t.reg_name(p, v)
            && t.reg_by_name(n).map(|x| x.0) == Some(p)
        {
            return n.to_string();
        }
    }
    format!("!{}{}", p.class.name(), p.hw)
}

impl Printer<'_> {
    fn vreg(&self, v: VReg) -> String {
        match self.vregs.get(v.index()) {
            Some((t, _)) => format!("%{t}"),
            None => format!("%{}", v.index()),
        }
    }
    fn label(&self, l: Label) -> String {
        match self.labels.get(l.index()) {
            Some((t, _)) => format!(".{t}"),
            None => format!(".{}", l.index()),
        }
    }
    fn reg(&self, r: Reg) -> String {
        match r {
            Reg::Virt(v, view) => {
                let s = view.suffix();
                if s.is_empty() {
                    self.vreg(v)
                } else {
                    format!("{}.{s}", self.vreg(v))
                }
            }
            Reg::Phys(p, view) => preg(self.t, p, view),
        }
    }
    fn mem(&self, m: &Mem) -> String {
        let mut s = String::new();
        if m.size != 0 {
            match MEM_SIZES.iter().find(|(_, n)| *n == m.size) {
                Some((k, _)) => s.push_str(k),
                None => {
                    let _ = write!(s, "m{}", m.size);
                }
            }
            s.push(' ');
        }
        s.push('[');
        let mut parts: Vec<String> = Vec::new();
        match m.base {
            MemBase::None => {}
            MemBase::Reg(r) => parts.push(self.reg(r)),
            MemBase::Slot(x) => parts.push(format!("${}", x.index())),
            MemBase::Const(x) => parts.push(format!("#{}", x.index())),
            MemBase::Label(l) => parts.push(self.label(l)),
            MemBase::JumpTable(j) => parts.push(format!("jt{}", j.index())),
            MemBase::InArgs => parts.push("inargs".into()),
            MemBase::OutArgs => parts.push("outargs".into()),
        }
        if let Some(i) = m.index {
            parts.push(format!("{}*{}", self.reg(i), m.scale));
        }
        s.push_str(&parts.join(" + "));
        if m.disp != 0 || parts.is_empty() {
            let d = m.disp as i64;
            if parts.is_empty() {
                s.push_str(&imm(d));
            } else if d < 0 {
                let _ = write!(s, " - {}", imm(-d));
            } else {
                let _ = write!(s, " + {}", imm(d));
            }
        }
        s.push(']');
        s
    }
    fn op(&self, o: &Operand) -> String {
        match *o {
            Operand::Reg(r) => self.reg(r),
            Operand::Fixed(v, p) => format!("{}@{}", self.vreg(v), fixed_preg(self.t, p)),
            Operand::Mem(ref m) => self.mem(m),
            Operand::Imm(v) => imm(v),
            Operand::Label(l) => self.label(l),
        }
    }
    fn ops(&self, ops: &[Operand]) -> String {
        ops.iter()
            .map(|o| self.op(o))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(crate) fn conv_name(t: &dyn Target, c: CallConvId) -> String {
    match t.call_conv(c) {
        Some(cc) if is_ident(&cc.name) && t.call_conv_by_name(&cc.name) == Some(c) => {
            cc.name.clone()
        }
        _ => format!("conv{}", c.0),
    }
}

pub(crate) fn sig_text(t: &dyn Target, s: &Signature) -> String {
    let mut p: Vec<&str> = s.params.iter().map(|t| t.name()).collect();
    if s.varargs {
        p.push("...");
    }
    let r: Vec<&str> = s.rets.iter().map(|t| t.name()).collect();
    format!(
        "({}) -> ({}) {}",
        p.join(", "),
        r.join(", "),
        conv_name(t, s.conv)
    )
}

/// Writes `func` in the text format.
pub fn write_function(w: &mut impl Write, func: &Function, target: &dyn Target) -> fmt::Result {
    let p = Printer {
        f: func,
        t: target,
        vregs: tokens(func.vregs().map(|(v, _)| func.vreg_name(v))),
        labels: tokens((0..func.num_labels()).map(|l| func.label_name(Label::new(l)))),
    };
    let name = if is_ident(func.name()) {
        func.name().to_string()
    } else {
        quote(func.name())
    };
    writeln!(w, "func {name}{} {{", sig_text(target, &func.sig))?;
    // Virtual registers, one line per run of the same class and size.
    let mut line = String::new();
    let mut cur: Option<(RegClass, u16)> = None;
    for (v, d) in func.vregs() {
        if cur != Some((d.class, d.size)) {
            if !line.is_empty() {
                writeln!(w, "{line}")?;
            }
            line = format!("  {}{}", d.class.name(), d.size as u32 * 8);
            cur = Some((d.class, d.size));
        } else {
            line.push(',');
        }
        line.push(' ');
        line.push_str(&p.vreg(v));
        if let Some(n) = &p.vregs[v.index()].1 {
            line.push(' ');
            line.push_str(n);
        }
    }
    if !line.is_empty() {
        writeln!(w, "{line}")?;
    }
    if func.num_labels() > 0 {
        let ls: Vec<String> = (0..func.num_labels())
            .map(|l| {
                let l = Label::new(l);
                match &p.labels[l.index()].1 {
                    Some(n) => format!("{} {n}", p.label(l)),
                    None => p.label(l),
                }
            })
            .collect();
        writeln!(w, "  labels {}", ls.join(", "))?;
    }
    for (s, d) in func.stack_slots() {
        writeln!(w, "  slot ${} size {} align {}", s.index(), d.size, d.align)?;
    }
    for c in 0..func.num_constants() {
        let c = Constant::new(c);
        let bytes: Vec<String> = func
            .constant_bytes(c)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(
            w,
            "  const #{} align {} = [{}]",
            c.index(),
            func.constant(c).align,
            bytes.join(" ")
        )?;
    }
    for (s, sig) in func.sig_refs() {
        writeln!(w, "  sig sig{} = {}", s.index(), sig_text(target, sig))?;
    }
    for j in 0..func.num_jump_tables() {
        let j = JumpTable::new(j);
        let ls: Vec<String> = func.jump_table(j).iter().map(|&l| p.label(l)).collect();
        writeln!(w, "  jumptable jt{} = [{}]", j.index(), ls.join(", "))?;
    }
    for &(v, r) in func.pins() {
        writeln!(w, "  pin {}, {}", p.vreg(v), fixed_preg(target, r))?;
    }
    if let Some(fr) = func.frame {
        writeln!(
            w,
            "  lowered out_args {} call_align {} ret_pop {}",
            fr.out_args, fr.call_align, fr.ret_pop
        )?;
    }
    for i in func.insts() {
        let ops = func.operands(i);
        match func.kind(i) {
            InstKind::Bind(l) => writeln!(w, "{}:", p.label(l))?,
            InstKind::Target(id) => {
                let name = match target.inst_name(id) {
                    Some(n) if is_ident(n) && target.inst_by_name(n) == Some(id) => {
                        if reserved(n) {
                            format!("@{n}")
                        } else {
                            n.to_string()
                        }
                    }
                    _ => format!("@inst{}", id.0),
                };
                if ops.is_empty() {
                    writeln!(w, "  {name}")?;
                } else {
                    writeln!(w, "  {name} {}", p.ops(ops))?;
                }
            }
            InstKind::Call(c) | InstKind::TailJump(c) => {
                let tail = matches!(func.kind(i), InstKind::TailJump(_));
                let sig = func.get_call_data(c).map(|d| d.sig.index()).unwrap_or(0);
                match func.call_parts(i) {
                    Some((_, callee, args, rets)) => {
                        if tail {
                            writeln!(
                                w,
                                "  tailjump sig{sig}, {}, ({})",
                                p.op(&callee),
                                p.ops(args)
                            )?;
                        } else {
                            writeln!(
                                w,
                                "  invoke sig{sig}, {}, ({}) -> ({})",
                                p.op(&callee),
                                p.ops(args),
                                p.ops(rets)
                            )?;
                        }
                    }
                    None => writeln!(w, "  ; malformed call")?,
                }
            }
            k => {
                let kw = match k {
                    InstKind::Entry => "entry",
                    InstKind::Ret => "ret",
                    InstKind::Copy => "copy",
                    InstKind::Addr => "addr",
                    InstKind::Jump => "jump",
                    _ => "jumpind",
                };
                let mut s = format!("  {kw}");
                if !ops.is_empty() {
                    s.push(' ');
                    s.push_str(&p.ops(ops));
                }
                if let InstKind::JumpIndirect(t) = k
                    && let Some(t) = t.expand()
                {
                    let sep = if ops.is_empty() { " " } else { ", " };
                    let _ = write!(s, "{sep}jt{}", t.index());
                }
                writeln!(w, "{s}")?;
            }
        }
    }
    let _ = p.f;
    writeln!(w, "}}")
}
