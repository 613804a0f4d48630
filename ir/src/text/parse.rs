//! The parser of the text format. It never panics: every malformed input
//! gives a [`ParseError`] with a line and a column.

use super::{MEM_SIZES, vreg_decl};
use crate::entities::*;
use crate::function::*;
use crate::target::Target;
use core::fmt;
use std::collections::HashMap;

/// What went wrong while parsing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ParseErrorKind {
    /// A character that starts no token.
    BadChar(char),
    /// A number does not fit.
    NumberOverflow,
    /// A string literal is not closed or has a bad escape.
    BadString,
    /// Something else was expected here.
    Expected(&'static str),
    /// A name is used but not declared.
    Undeclared(String),
    /// A name is declared twice.
    Redeclared(String),
    /// Unknown target instruction.
    UnknownInst(String),
    /// Unknown calling convention.
    UnknownConv(String),
    /// A value out of its range (size, scale, alignment...).
    OutOfRange(&'static str),
    /// The building API refused (too many operands).
    Build(BuildError),
}

/// A parse error at a 1-based line and column.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParseError {
    /// Line (1-based).
    pub line: u32,
    /// Column (1-based, in characters).
    pub col: u32,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::BadChar(c) => write!(f, "unexpected character {c:?}"),
            ParseErrorKind::NumberOverflow => f.write_str("number too large"),
            ParseErrorKind::BadString => f.write_str("malformed string literal"),
            ParseErrorKind::Expected(w) => write!(f, "expected {w}"),
            ParseErrorKind::Undeclared(n) => write!(f, "undeclared {n}"),
            ParseErrorKind::Redeclared(n) => write!(f, "{n} declared twice"),
            ParseErrorKind::UnknownInst(n) => write!(f, "unknown instruction {n:?}"),
            ParseErrorKind::UnknownConv(n) => write!(f, "unknown calling convention {n:?}"),
            ParseErrorKind::OutOfRange(w) => write!(f, "{w} out of range"),
            ParseErrorKind::Build(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.kind)
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, PartialEq, Debug)]
enum Tok {
    Ident(String),
    Num(u64),
    BadNum(ParseErrorKind),
    Str(String),
    VReg(String),
    Label(String),
    Slot(u64),
    Const(u64),
    Punct(char),
    Arrow,
    Ellipsis,
    Newline,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: u32,
    col: u32,
    start: usize,
    end: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let (mut i, mut line, mut line_start) = (0usize, 1u32, 0usize);
    let at = |i: usize| chars.get(i).map(|c| c.1);
    let byte = |i: usize| chars.get(i).map(|c| c.0).unwrap_or(src.len());
    let word = |mut j: usize| {
        while let Some(c) = at(j) {
            if c.is_ascii_alphanumeric() || c == '_' {
                j += 1;
            } else {
                break;
            }
        }
        j
    };
    while i < chars.len() {
        let c = chars[i].1;
        let col = (i - line_start + 1) as u32;
        let err = |kind| ParseError { line, col, kind };
        let start = i;
        let tok = match c {
            '\n' => {
                i += 1;
                let t = Token {
                    tok: Tok::Newline,
                    line,
                    col,
                    start: byte(start),
                    end: byte(i),
                };
                line += 1;
                line_start = i;
                out.push(t);
                continue;
            }
            ' ' | '\t' | '\r' => {
                i += 1;
                continue;
            }
            ';' => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
                continue;
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    match at(i) {
                        None | Some('\n') => return Err(err(ParseErrorKind::BadString)),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            i += 1;
                            match at(i) {
                                Some('"') => s.push('"'),
                                Some('\\') => s.push('\\'),
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('u') if at(i + 1) == Some('{') => {
                                    let mut j = i + 2;
                                    let mut v: u32 = 0;
                                    while let Some(d) = at(j).and_then(|c| c.to_digit(16)) {
                                        v = v
                                            .checked_mul(16)
                                            .and_then(|v| v.checked_add(d))
                                            .ok_or(err(ParseErrorKind::BadString))?;
                                        j += 1;
                                    }
                                    if at(j) != Some('}') || j == i + 2 {
                                        return Err(err(ParseErrorKind::BadString));
                                    }
                                    s.push(
                                        char::from_u32(v).ok_or(err(ParseErrorKind::BadString))?,
                                    );
                                    i = j;
                                }
                                _ => return Err(err(ParseErrorKind::BadString)),
                            }
                            i += 1;
                        }
                        Some(ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            '0'..='9' => {
                let j = word(i);
                let text: String = chars[i..j].iter().map(|c| c.1).collect();
                i = j;
                match parse_num(&text) {
                    Ok(n) => Tok::Num(n),
                    Err(k) => Tok::BadNum(k),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let j = word(i);
                let text: String = chars[i..j].iter().map(|c| c.1).collect();
                i = j;
                Tok::Ident(text)
            }
            '%' | '.' | '$' | '#' => {
                if c == '.' && at(i + 1) == Some('.') && at(i + 2) == Some('.') {
                    i += 3;
                    Tok::Ellipsis
                } else {
                    let j = word(i + 1);
                    if j == i + 1 {
                        return Err(err(ParseErrorKind::BadChar(c)));
                    }
                    let text: String = chars[i + 1..j].iter().map(|c| c.1).collect();
                    i = j;
                    match c {
                        '%' => Tok::VReg(text),
                        '.' => Tok::Label(text),
                        _ => {
                            if !text.bytes().all(|b| b.is_ascii_digit()) {
                                return Err(err(ParseErrorKind::Expected("a number")));
                            }
                            let n = text
                                .parse::<u64>()
                                .map_err(|_| err(ParseErrorKind::NumberOverflow))?;
                            if c == '$' {
                                Tok::Slot(n)
                            } else {
                                Tok::Const(n)
                            }
                        }
                    }
                }
            }
            '-' if at(i + 1) == Some('>') => {
                i += 2;
                Tok::Arrow
            }
            ',' | '(' | ')' | '[' | ']' | '{' | '}' | ':' | '+' | '-' | '*' | '=' | '@' | '!' => {
                i += 1;
                Tok::Punct(c)
            }
            c => return Err(err(ParseErrorKind::BadChar(c))),
        };
        out.push(Token {
            tok,
            line,
            col,
            start: byte(start),
            end: byte(i),
        });
    }
    let col = (chars.len() - line_start + 1) as u32;
    out.push(Token {
        tok: Tok::Eof,
        line,
        col,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

fn parse_num(text: &str) -> Result<u64, ParseErrorKind> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(ParseErrorKind::Expected("a number"));
    }
    u64::from_str_radix(digits, radix).map_err(|_| ParseErrorKind::NumberOverflow)
}

/// A parsed function with the source line of each instruction.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The function.
    pub func: Function,
    /// For each instruction (by index), its 1-based source line.
    pub inst_lines: Vec<u32>,
}

struct P<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    t: &'a dyn Target,
}

type R<T> = Result<T, ParseError>;

struct Names {
    vregs: HashMap<String, VReg>,
    labels: HashMap<String, Label>,
    slots: HashMap<u64, StackSlot>,
    consts: HashMap<u64, Constant>,
    sigs: HashMap<u64, SigRef>,
    jts: HashMap<u64, JumpTable>,
}

fn num_suffix(s: &str, prefix: &str) -> Option<u64> {
    let d = s.strip_prefix(prefix)?;
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    d.parse().ok()
}

impl P<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }
    fn tok(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn err<T>(&self, kind: ParseErrorKind) -> R<T> {
        let t = self.tok();
        Err(ParseError {
            line: t.line,
            col: t.col,
            kind,
        })
    }
    fn err_prev<T>(&self, kind: ParseErrorKind) -> R<T> {
        let t = &self.toks[self.pos.saturating_sub(1)];
        Err(ParseError {
            line: t.line,
            col: t.col,
            kind,
        })
    }
    fn punct(&mut self, c: char) -> bool {
        if *self.peek() == Tok::Punct(c) {
            self.next();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char, what: &'static str) -> R<()> {
        if self.punct(c) {
            Ok(())
        } else {
            self.err(ParseErrorKind::Expected(what))
        }
    }
    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Tok::Ident(s) if s == k) {
            self.next();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, k: &str, what: &'static str) -> R<()> {
        if self.keyword(k) {
            Ok(())
        } else {
            self.err(ParseErrorKind::Expected(what))
        }
    }
    fn skip_newlines(&mut self) {
        while *self.peek() == Tok::Newline {
            self.next();
        }
    }
    fn end_line(&mut self) -> R<()> {
        match self.peek() {
            Tok::Newline => {
                self.next();
                Ok(())
            }
            Tok::Punct('}') | Tok::Eof => Ok(()),
            _ => self.err(ParseErrorKind::Expected("end of line")),
        }
    }
    fn number(&mut self, what: &'static str) -> R<u64> {
        match self.next() {
            Tok::Num(n) => Ok(n),
            Tok::BadNum(k) => self.err_prev(k),
            _ => self.err_prev(ParseErrorKind::Expected(what)),
        }
    }
    fn u32_num(&mut self, what: &'static str) -> R<u32> {
        let n = self.number(what)?;
        u32::try_from(n).or_else(|_| self.err_prev(ParseErrorKind::OutOfRange(what)))
    }
    fn signed(&mut self) -> R<i64> {
        let neg = self.punct('-');
        let n = self.number("a number")?;
        if neg {
            if n > 1u64 << 63 {
                return self.err_prev(ParseErrorKind::NumberOverflow);
            }
            Ok((n as i64).wrapping_neg())
        } else {
            Ok(n as i64)
        }
    }
    fn adjacent(&self) -> bool {
        self.pos > 0
            && self.pos < self.toks.len()
            && self.toks[self.pos - 1].end == self.toks[self.pos].start
    }

    fn conv(&mut self) -> R<CallConvId> {
        match self.next() {
            Tok::Ident(n) => {
                if let Some(c) = self.t.call_conv_by_name(&n) {
                    Ok(c)
                } else if let Some(k) = num_suffix(&n, "conv").and_then(|k| u16::try_from(k).ok()) {
                    Ok(CallConvId(k))
                } else {
                    self.err_prev(ParseErrorKind::UnknownConv(n))
                }
            }
            _ => self.err_prev(ParseErrorKind::Expected("a calling convention")),
        }
    }

    fn signature(&mut self) -> R<Signature> {
        self.expect('(', "'('")?;
        let mut sig = Signature::new(CallConvId(0), &[], &[]);
        if !self.punct(')') {
            loop {
                match self.next() {
                    Tok::Ellipsis => {
                        sig.varargs = true;
                        self.expect(')', "')' after '...'")?;
                        break;
                    }
                    Tok::Ident(n) => match ValType::from_name(&n) {
                        Some(t) => sig.params.push(t),
                        None => return self.err_prev(ParseErrorKind::Expected("a type")),
                    },
                    _ => return self.err_prev(ParseErrorKind::Expected("a type")),
                }
                if self.punct(')') {
                    break;
                }
                self.expect(',', "',' or ')'")?;
            }
        }
        if self.next() != Tok::Arrow {
            return self.err_prev(ParseErrorKind::Expected("'->'"));
        }
        self.expect('(', "'('")?;
        if !self.punct(')') {
            loop {
                match self.next() {
                    Tok::Ident(n) => match ValType::from_name(&n) {
                        Some(t) => sig.rets.push(t),
                        None => return self.err_prev(ParseErrorKind::Expected("a type")),
                    },
                    _ => return self.err_prev(ParseErrorKind::Expected("a type")),
                }
                if self.punct(')') {
                    break;
                }
                self.expect(',', "',' or ')'")?;
            }
        }
        sig.conv = self.conv()?;
        Ok(sig)
    }

    fn preg_after_bang(&mut self) -> R<(PReg, View)> {
        let Tok::Ident(s) = self.next() else {
            return self.err_prev(ParseErrorKind::Expected("a register class and index"));
        };
        let split = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        // Class names may end in digits (x87, cls4): try the longest class prefix.
        let mut found = None;
        for cut in (1..=s.len()).rev() {
            if let (Some(c), Some(rest)) =
                (s.get(..cut).and_then(RegClass::from_name), s.get(cut..))
                && let Ok(hw) = rest.parse::<u8>()
            {
                found = Some(PReg::new(c, hw));
                break;
            }
        }
        let _ = split;
        let Some(p) = found else {
            return self.err_prev(ParseErrorKind::Expected("a register class and index"));
        };
        if p.hw >= 32 {
            return self.err_prev(ParseErrorKind::OutOfRange("register index"));
        }
        let mut view = View::FULL;
        if let Tok::Label(v) = self.peek().clone()
            && self.adjacent()
        {
            self.next();
            view = View::from_suffix(&v)
                .map_or_else(|| self.err_prev(ParseErrorKind::Expected("a view")), Ok)?;
        }
        Ok((p, view))
    }

    fn vreg_ref(&mut self, names: &Names, n: &str) -> R<VReg> {
        match names.vregs.get(n) {
            Some(&v) => Ok(v),
            None => self.err_prev(ParseErrorKind::Undeclared(format!("%{n}"))),
        }
    }

    fn label_ref(&mut self, f: &mut Function, names: &mut Names, n: String) -> Label {
        if let Some(&l) = names.labels.get(&n) {
            return l;
        }
        let is_num = n.bytes().all(|b| b.is_ascii_digit());
        let l = f.new_label(if is_num { None } else { Some(&n) });
        names.labels.insert(n, l);
        l
    }

    /// A register: `%v`, `%v.b`, a target register name, `!gp3`, `!gp3.d`.
    fn try_reg(&mut self, names: &Names) -> R<Option<Reg>> {
        match self.peek().clone() {
            Tok::VReg(n) => {
                self.next();
                let v = self.vreg_ref(names, &n)?;
                let mut view = View::FULL;
                if let Tok::Label(s) = self.peek().clone()
                    && self.adjacent()
                {
                    self.next();
                    view = match View::from_suffix(&s) {
                        Some(w) => w,
                        None => return self.err_prev(ParseErrorKind::Expected("a view suffix")),
                    };
                }
                Ok(Some(Reg::Virt(v, view)))
            }
            Tok::Ident(n) => match self.t.reg_by_name(&n) {
                Some((p, w)) => {
                    self.next();
                    Ok(Some(Reg::Phys(p, w)))
                }
                None => Ok(None),
            },
            Tok::Punct('!') => {
                self.next();
                let (p, w) = self.preg_after_bang()?;
                Ok(Some(Reg::Phys(p, w)))
            }
            _ => Ok(None),
        }
    }

    fn fixed_preg(&mut self) -> R<PReg> {
        if self.punct('!') {
            return Ok(self.preg_after_bang()?.0);
        }
        match self.next() {
            Tok::Ident(n) => match self.t.reg_by_name(&n) {
                Some((p, _)) => Ok(p),
                None => self.err_prev(ParseErrorKind::Expected("a register")),
            },
            _ => self.err_prev(ParseErrorKind::Expected("a register")),
        }
    }

    fn mem(&mut self, f: &mut Function, names: &mut Names, size: u16) -> R<Mem> {
        let mut m = Mem::new(MemBase::None, 0, size);
        let mut disp: i64 = 0;
        let mut first = true;
        loop {
            let neg = if first {
                self.punct('-')
            } else if self.punct('+') {
                false
            } else if self.punct('-') {
                true
            } else if self.punct(']') {
                break;
            } else {
                return self.err(ParseErrorKind::Expected("'+', '-' or ']'"));
            };
            first = false;
            if let Tok::Num(n) = *self.peek() {
                self.next();
                let v =
                    i64::try_from(n).or_else(|_| self.err_prev(ParseErrorKind::NumberOverflow))?;
                disp = if neg { disp - v } else { disp + v };
                if !(i32::MIN as i64..=i32::MAX as i64).contains(&disp) {
                    return self.err_prev(ParseErrorKind::OutOfRange("displacement"));
                }
                continue;
            }
            if neg {
                return self.err(ParseErrorKind::Expected("a number after '-'"));
            }
            let set_base = |this: &Self, m: &mut Mem, b: MemBase| -> R<()> {
                if m.base != MemBase::None {
                    return this.err_prev(ParseErrorKind::Expected("one base only"));
                }
                m.base = b;
                Ok(())
            };
            if let Some(r) = self.try_reg(names)? {
                if self.punct('*') {
                    let s = self.number("a scale")?;
                    if m.index.is_some() || s > u8::MAX as u64 {
                        return self.err_prev(ParseErrorKind::OutOfRange("scale or index"));
                    }
                    m.index = Some(r);
                    m.scale = s as u8;
                } else if m.base == MemBase::None {
                    m.base = MemBase::Reg(r);
                } else if m.index.is_none() {
                    m.index = Some(r);
                    m.scale = 1;
                } else {
                    return self.err_prev(ParseErrorKind::Expected("at most a base and an index"));
                }
                continue;
            }
            match self.next() {
                Tok::Slot(n) => match names.slots.get(&n) {
                    Some(&s) => set_base(self, &mut m, MemBase::Slot(s))?,
                    None => return self.err_prev(ParseErrorKind::Undeclared(format!("${n}"))),
                },
                Tok::Const(n) => match names.consts.get(&n) {
                    Some(&c) => set_base(self, &mut m, MemBase::Const(c))?,
                    None => return self.err_prev(ParseErrorKind::Undeclared(format!("#{n}"))),
                },
                Tok::Label(n) => {
                    let l = self.label_ref(f, names, n);
                    set_base(self, &mut m, MemBase::Label(l))?
                }
                Tok::Ident(n) if n == "inargs" => set_base(self, &mut m, MemBase::InArgs)?,
                Tok::Ident(n) if n == "outargs" => set_base(self, &mut m, MemBase::OutArgs)?,
                Tok::Ident(n) if num_suffix(&n, "jt").is_some() => {
                    let k = num_suffix(&n, "jt").unwrap_or(0);
                    match names.jts.get(&k) {
                        Some(&j) => set_base(self, &mut m, MemBase::JumpTable(j))?,
                        None => return self.err_prev(ParseErrorKind::Undeclared(n)),
                    }
                }
                _ => return self.err_prev(ParseErrorKind::Expected("an address term")),
            }
        }
        m.disp = disp as i32;
        Ok(m)
    }

    fn operand(&mut self, f: &mut Function, names: &mut Names) -> R<Operand> {
        if let Some(r) = self.try_reg(names)? {
            if self.punct('@') {
                let Reg::Virt(v, View::FULL) = r else {
                    return self.err_prev(ParseErrorKind::Expected(
                        "a whole virtual register before '@'",
                    ));
                };
                let p = self.fixed_preg()?;
                return Ok(Operand::Fixed(v, p));
            }
            return Ok(Operand::Reg(r));
        }
        match self.peek().clone() {
            Tok::Num(_) | Tok::BadNum(_) | Tok::Punct('-') => Ok(Operand::Imm(self.signed()?)),
            Tok::Label(n) => {
                self.next();
                Ok(Operand::Label(self.label_ref(f, names, n)))
            }
            Tok::Punct('[') => {
                self.next();
                Ok(Operand::Mem(self.mem(f, names, 0)?))
            }
            Tok::Ident(k) => {
                let size = MEM_SIZES
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|x| x.1)
                    .or_else(|| num_suffix(&k, "m").and_then(|n| u16::try_from(n).ok()));
                match size {
                    Some(size) => {
                        self.next();
                        self.expect('[', "'['")?;
                        Ok(Operand::Mem(self.mem(f, names, size)?))
                    }
                    None => self.err(ParseErrorKind::Expected("an operand")),
                }
            }
            _ => self.err(ParseErrorKind::Expected("an operand")),
        }
    }

    fn operand_list(
        &mut self,
        f: &mut Function,
        names: &mut Names,
        out: &mut Vec<Operand>,
    ) -> R<()> {
        if matches!(
            self.peek(),
            Tok::Newline | Tok::Eof | Tok::Punct('}') | Tok::Punct(')')
        ) {
            return Ok(());
        }
        loop {
            out.push(self.operand(f, names)?);
            if !self.punct(',') {
                return Ok(());
            }
            // `jumpind %t, jt0`: leave the table to the caller.
            if matches!(self.peek(), Tok::Ident(n) if num_suffix(n, "jt").is_some()) {
                self.pos -= 1;
                return Ok(());
            }
        }
    }

    fn paren_list(&mut self, f: &mut Function, names: &mut Names, out: &mut Vec<Operand>) -> R<()> {
        self.expect('(', "'('")?;
        self.operand_list(f, names, out)?;
        self.expect(')', "')'")
    }

    fn decl_vregs(
        &mut self,
        f: &mut Function,
        names: &mut Names,
        class: RegClass,
        size: u16,
    ) -> R<()> {
        loop {
            let Tok::VReg(n) = self.next() else {
                return self.err_prev(ParseErrorKind::Expected("a virtual register"));
            };
            if names.vregs.contains_key(&n) {
                return self.err_prev(ParseErrorKind::Redeclared(format!("%{n}")));
            }
            let is_num = n.bytes().all(|b| b.is_ascii_digit());
            let v = if let Tok::Str(s) = self.peek().clone() {
                self.next();
                f.new_vreg(class, size, Some(&s))
            } else if is_num {
                f.new_vreg(class, size, None)
            } else {
                f.new_vreg(class, size, Some(&n))
            };
            names.vregs.insert(n, v);
            if !self.punct(',') {
                return Ok(());
            }
        }
    }

    fn decl_labels(&mut self, f: &mut Function, names: &mut Names) -> R<()> {
        loop {
            let Tok::Label(n) = self.next() else {
                return self.err_prev(ParseErrorKind::Expected("a label"));
            };
            if names.labels.contains_key(&n) {
                return self.err_prev(ParseErrorKind::Redeclared(format!(".{n}")));
            }
            let is_num = n.bytes().all(|b| b.is_ascii_digit());
            let l = if let Tok::Str(s) = self.peek().clone() {
                self.next();
                f.new_label(Some(&s))
            } else {
                f.new_label(if is_num { None } else { Some(&n) })
            };
            names.labels.insert(n, l);
            if !self.punct(',') {
                return Ok(());
            }
        }
    }

    fn function(&mut self, lines: &mut Vec<u32>) -> R<Function> {
        self.expect_kw("func", "'func'")?;
        let name = match self.next() {
            Tok::Ident(n) | Tok::Str(n) => n,
            _ => return self.err_prev(ParseErrorKind::Expected("a function name")),
        };
        let sig = self.signature()?;
        let mut f = Function::new(&name, sig);
        self.expect('{', "'{'")?;
        let mut names = Names {
            vregs: HashMap::new(),
            labels: HashMap::new(),
            slots: HashMap::new(),
            consts: HashMap::new(),
            sigs: HashMap::new(),
            jts: HashMap::new(),
        };
        let mut ops: Vec<Operand> = Vec::new();
        loop {
            self.skip_newlines();
            let line = self.tok().line;
            let tok = self.next();
            let build = |this: &Self, r: Result<Inst, BuildError>| -> R<()> {
                match r {
                    Ok(_) => Ok(()),
                    Err(e) => this.err_prev(ParseErrorKind::Build(e)),
                }
            };
            ops.clear();
            let n_before = f.num_insts();
            match tok {
                Tok::Punct('}') => break,
                Tok::Label(n) => {
                    self.expect(':', "':' after a label")?;
                    let l = self.label_ref(&mut f, &mut names, n);
                    build(self, f.bind(l))?;
                    lines.push(line);
                    continue;
                }
                Tok::Punct('@') => {
                    let Tok::Ident(n) = self.next() else {
                        return self.err_prev(ParseErrorKind::Expected("a mnemonic"));
                    };
                    let id = match self.t.inst_by_name(&n) {
                        Some(id) => id,
                        None => match num_suffix(&n, "inst").and_then(|k| u32::try_from(k).ok()) {
                            Some(k) => TargetInst(k),
                            None => return self.err_prev(ParseErrorKind::UnknownInst(n)),
                        },
                    };
                    self.operand_list(&mut f, &mut names, &mut ops)?;
                    build(self, f.inst(id, &ops))?;
                }
                Tok::Ident(kw) => {
                    if let Some((class, bits)) = vreg_decl(&kw) {
                        if bits % 8 != 0 || bits / 8 > u16::MAX as u32 {
                            return self.err_prev(ParseErrorKind::OutOfRange("register size"));
                        }
                        self.decl_vregs(&mut f, &mut names, class, (bits / 8) as u16)?;
                        self.end_line()?;
                        continue;
                    }
                    match kw.as_str() {
                        "labels" => self.decl_labels(&mut f, &mut names)?,
                        "slot" => {
                            let Tok::Slot(k) = self.next() else {
                                return self.err_prev(ParseErrorKind::Expected("a slot ($N)"));
                            };
                            self.expect_kw("size", "'size'")?;
                            let size = self.u32_num("a size")?;
                            self.expect_kw("align", "'align'")?;
                            let align = self.u32_num("an alignment")?;
                            if names.slots.contains_key(&k) {
                                return self.err_prev(ParseErrorKind::Redeclared(format!("${k}")));
                            }
                            let s = f.new_stack_slot(size, align);
                            names.slots.insert(k, s);
                        }
                        "const" => {
                            let Tok::Const(k) = self.next() else {
                                return self.err_prev(ParseErrorKind::Expected("a constant (#N)"));
                            };
                            self.expect_kw("align", "'align'")?;
                            let align = self.u32_num("an alignment")?;
                            self.expect('=', "'='")?;
                            self.expect('[', "'['")?;
                            let mut bytes = Vec::new();
                            while !self.punct(']') {
                                let t = self.tok().clone();
                                let raw = self.src.get(t.start..t.end).unwrap_or("");
                                let b = match t.tok {
                                    Tok::Num(_) | Tok::Ident(_) | Tok::BadNum(_)
                                        if (1..=2).contains(&raw.len()) =>
                                    {
                                        u8::from_str_radix(raw, 16).ok()
                                    }
                                    _ => None,
                                };
                                match b {
                                    Some(b) => {
                                        bytes.push(b);
                                        self.next();
                                    }
                                    None => {
                                        return Err(ParseError {
                                            line: t.line,
                                            col: t.col,
                                            kind: ParseErrorKind::Expected("a hex byte"),
                                        });
                                    }
                                }
                            }
                            if names.consts.contains_key(&k) {
                                return self.err_prev(ParseErrorKind::Redeclared(format!("#{k}")));
                            }
                            let c = f.new_constant(&bytes, align);
                            names.consts.insert(k, c);
                        }
                        "sig" => {
                            let Tok::Ident(n) = self.next() else {
                                return self.err_prev(ParseErrorKind::Expected("sigN"));
                            };
                            let Some(k) = num_suffix(&n, "sig") else {
                                return self.err_prev(ParseErrorKind::Expected("sigN"));
                            };
                            self.expect('=', "'='")?;
                            let s = self.signature()?;
                            if names.sigs.contains_key(&k) {
                                return self.err_prev(ParseErrorKind::Redeclared(n));
                            }
                            let r = f.import_sig(s);
                            names.sigs.insert(k, r);
                        }
                        "jumptable" => {
                            let Tok::Ident(n) = self.next() else {
                                return self.err_prev(ParseErrorKind::Expected("jtN"));
                            };
                            let Some(k) = num_suffix(&n, "jt") else {
                                return self.err_prev(ParseErrorKind::Expected("jtN"));
                            };
                            self.expect('=', "'='")?;
                            self.expect('[', "'['")?;
                            let mut ls = Vec::new();
                            if !self.punct(']') {
                                loop {
                                    let Tok::Label(l) = self.next() else {
                                        return self.err_prev(ParseErrorKind::Expected("a label"));
                                    };
                                    ls.push(self.label_ref(&mut f, &mut names, l));
                                    if self.punct(']') {
                                        break;
                                    }
                                    self.expect(',', "',' or ']'")?;
                                }
                            }
                            if names.jts.contains_key(&k) {
                                return self.err_prev(ParseErrorKind::Redeclared(n));
                            }
                            let j = f.new_jump_table(&ls);
                            names.jts.insert(k, j);
                        }
                        "pin" => {
                            let Tok::VReg(n) = self.next() else {
                                return self
                                    .err_prev(ParseErrorKind::Expected("a virtual register"));
                            };
                            let v = self.vreg_ref(&names, &n)?;
                            self.expect(',', "','")?;
                            let p = self.fixed_preg()?;
                            f.pin(v, p);
                        }
                        "lowered" => {
                            self.expect_kw("out_args", "'out_args'")?;
                            let out_args = self.u32_num("a size")?;
                            self.expect_kw("call_align", "'call_align'")?;
                            let call_align = self.u32_num("an alignment")?;
                            self.expect_kw("ret_pop", "'ret_pop'")?;
                            let ret_pop = self.u32_num("a size")?;
                            f.frame = Some(FrameInfo {
                                out_args,
                                call_align,
                                ret_pop,
                            });
                        }
                        "entry" | "ret" | "copy" | "addr" | "jump" => {
                            self.operand_list(&mut f, &mut names, &mut ops)?;
                            let kind = match kw.as_str() {
                                "entry" => InstKind::Entry,
                                "ret" => InstKind::Ret,
                                "copy" => InstKind::Copy,
                                "addr" => InstKind::Addr,
                                _ => InstKind::Jump,
                            };
                            build(self, f.push(kind, &ops))?;
                        }
                        "jumpind" => {
                            let bare_table = matches!(self.peek(), Tok::Ident(n) if num_suffix(n, "jt").is_some());
                            if !bare_table {
                                self.operand_list(&mut f, &mut names, &mut ops)?;
                            }
                            let mut table = None;
                            if bare_table || self.punct(',') {
                                let Tok::Ident(n) = self.next() else {
                                    return self.err_prev(ParseErrorKind::Expected("jtN"));
                                };
                                match num_suffix(&n, "jt").and_then(|k| names.jts.get(&k)) {
                                    Some(&j) => table = Some(j),
                                    None => return self.err_prev(ParseErrorKind::Undeclared(n)),
                                }
                            }
                            build(self, f.push(InstKind::JumpIndirect(table.into()), &ops))?;
                        }
                        "invoke" | "tailjump" => {
                            let Tok::Ident(n) = self.next() else {
                                return self.err_prev(ParseErrorKind::Expected("sigN"));
                            };
                            let Some(&s) = num_suffix(&n, "sig").and_then(|k| names.sigs.get(&k))
                            else {
                                return self.err_prev(ParseErrorKind::Undeclared(n));
                            };
                            self.expect(',', "','")?;
                            let callee = self.operand(&mut f, &mut names)?;
                            self.expect(',', "','")?;
                            let mut args = Vec::new();
                            self.paren_list(&mut f, &mut names, &mut args)?;
                            if kw == "invoke" {
                                if self.next() != Tok::Arrow {
                                    return self.err_prev(ParseErrorKind::Expected("'->'"));
                                }
                                self.paren_list(&mut f, &mut names, &mut ops)?;
                                build(self, f.call(s, callee, &args, &ops))?;
                            } else {
                                build(self, f.tail_jump(s, callee, &args))?;
                            }
                        }
                        _ => {
                            let Some(id) = self.t.inst_by_name(&kw) else {
                                return self.err_prev(ParseErrorKind::UnknownInst(kw));
                            };
                            self.operand_list(&mut f, &mut names, &mut ops)?;
                            build(self, f.inst(id, &ops))?;
                        }
                    }
                }
                Tok::Eof => return self.err(ParseErrorKind::Expected("'}'")),
                _ => {
                    return self.err_prev(ParseErrorKind::Expected(
                        "a declaration, label or instruction",
                    ));
                }
            }
            if f.num_insts() > n_before {
                lines.push(line);
            }
            self.end_line()?;
        }
        Ok(f)
    }
}

/// Parses every function of `src`, with the source line of each instruction.
pub fn parse_module_with_positions(
    src: &str,
    target: &dyn Target,
) -> Result<Vec<Parsed>, ParseError> {
    let toks = lex(src)?;
    let mut p = P {
        src,
        toks,
        pos: 0,
        t: target,
    };
    let mut out = Vec::new();
    loop {
        p.skip_newlines();
        if *p.peek() == Tok::Eof {
            break;
        }
        let mut lines = Vec::new();
        let func = p.function(&mut lines)?;
        out.push(Parsed {
            func,
            inst_lines: lines,
        });
        p.end_line()?;
    }
    Ok(out)
}

/// Parses every function of `src` (the entry point for fuzzing: it never panics).
pub fn parse_module(src: &str, target: &dyn Target) -> Result<Vec<Function>, ParseError> {
    Ok(parse_module_with_positions(src, target)?
        .into_iter()
        .map(|p| p.func)
        .collect())
}

/// Parses exactly one function.
pub fn parse_function(src: &str, target: &dyn Target) -> Result<Function, ParseError> {
    let mut v = parse_module_with_positions(src, target)?;
    if v.len() != 1 {
        return Err(ParseError {
            line: 1,
            col: 1,
            kind: ParseErrorKind::Expected("exactly one function"),
        });
    }
    Ok(v.remove(0).func)
}
