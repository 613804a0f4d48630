//! Assembling text: a whole program (labels, directives, sections) into a
//! [`CodeHolder`] with a listing, or one line at a time at address 0 (the
//! `jitforge asm --each` mode, built to be fast: one reused code holder).

use super::listing::{Listing, ListingEntry};
use super::parse::{
    DataValue, ParseError, ParsedInstruction, ParsedOperand, Statement, StatementKind,
    implicit_fills, parse_line, parse_line_with,
};
use crate::code::{Arch, CodeHolder, Label, SectionId, SectionKind};
use crate::error::Error;
use crate::x86::{Assembler, InstOptions, MemBase, Operand};
use std::collections::HashMap;

/// Emits a parsed instruction with `a`, resolving labels by name in the code
/// holder (creating them on first use). When the operands as written fit no
/// form, the variants with omitted fixed registers filled in are tried
/// (`lodsb` means `lodsb al`).
pub fn emit_parsed(a: &mut Assembler<'_>, inst: &ParsedInstruction) -> Result<(), Error> {
    let operands = inst.resolve(|name| match a.code().label_by_name(name) {
        Some(l) => Ok(l),
        None => a.new_named_label(name),
    })?;
    // `rep ret`: the prefix byte, then the return (no form of `ret` takes rep).
    if inst.options.contains(InstOptions::REP)
        && inst.mnemonic.name() == "ret"
        && operands.is_empty()
    {
        a.embed(&[0xf3]);
        return a.emit_with(
            inst.mnemonic,
            &operands,
            InstOptions(inst.options.0 & !InstOptions::REP.0),
        );
    }
    let first = match a.emit_with(inst.mnemonic, &operands, inst.options) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let arch = a.code().arch();
    for alt in implicit_fills(inst.mnemonic, &operands, arch) {
        if a.emit_with(inst.mnemonic, &alt, inst.options).is_ok() {
            return Ok(());
        }
    }
    // `mov al, [0x123456789]` in 64-bit mode: an absolute address beyond 32
    // bits only fits the accumulator's moffs64 form (what `movabs` names),
    // which GNU as picks by itself.
    let far_address = |o: &Operand| {
        matches!(o, Operand::Mem(m) if arch == Arch::X64 && m.base() == MemBase::None && m.index().is_none()
            && !m.is_abs64() && i32::try_from(m.disp()).is_err())
    };
    if operands.iter().any(far_address) {
        let wide: Vec<Operand> = operands
            .iter()
            .map(|o| match o {
                Operand::Mem(m) if far_address(o) => Operand::Mem(m.abs64()),
                other => *other,
            })
            .collect();
        if a.emit_with(inst.mnemonic, &wide, inst.options).is_ok() {
            return Ok(());
        }
    }
    // The encoder checks a written `{1toN}` against the form's vector length,
    // which is wrong for the widening conversions (`vcvtdq2pd ymm0,
    // dword ptr [rax]{1to4}`): retry with N left to the other operands.
    if operands
        .iter()
        .any(|o| matches!(o, Operand::Mem(m) if m.broadcast_count().is_some()))
    {
        let plain: Vec<Operand> = operands
            .iter()
            .map(|o| match o {
                Operand::Mem(m) if m.broadcast_count().is_some() => Operand::Mem(m.bcst()),
                other => *other,
            })
            .collect();
        if a.emit_with(inst.mnemonic, &plain, inst.options).is_ok() {
            return Ok(());
        }
    }
    Err(first)
}

/// The column an encoder error points at: the operand it names
/// (`operand 2: ...`), else the mnemonic.
fn error_column(inst: &ParsedInstruction, e: &Error) -> usize {
    // `lock is not allowed here`, `lock needs a memory destination`: the prefix.
    if let Error::InvalidInstruction { reason, .. } = e
        && let Some(first) = reason.split_whitespace().next()
    {
        fn canonical(w: &str) -> &str {
            match w {
                "repe" | "repz" => "rep",
                "repnz" => "repne",
                other => other,
            }
        }
        if let Some((_, col)) = inst.prefixes.iter().find(|(w, _)| canonical(w) == first) {
            return *col;
        }
    }
    if let Error::InvalidInstruction { reason, .. } = e
        && let Some(rest) = reason.strip_prefix("operand ")
        && let Some((n, _)) = rest.split_once(':')
        && let Ok(n) = n.parse::<usize>()
        && let Some(col) = n.checked_sub(1).and_then(|i| inst.columns.get(i))
    {
        return *col;
    }
    inst.column
}

fn error_at(stmt: &Statement, column: usize, e: impl std::fmt::Display) -> ParseError {
    ParseError {
        line: stmt.line,
        column,
        message: e.to_string(),
    }
}

/// Numeric local labels (GNU as): every `1:` is a new label; `1b` refers
/// to the previous `1:`, `1f` to the next one. Each definition gets an
/// internal name (`1:#k`, which source text cannot spell).
#[derive(Default)]
struct LocalLabels {
    defined: HashMap<String, usize>,
}

impl LocalLabels {
    fn internal(digits: &str, k: usize) -> String {
        format!("{digits}:#{k}")
    }

    fn map(&self, name: &str) -> Option<String> {
        if name.len() < 2 || !name.is_char_boundary(name.len() - 1) {
            return None;
        }
        let (digits, dir) = name.split_at(name.len() - 1);
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let k = self.defined.get(digits).copied().unwrap_or(0);
        match dir {
            "b" | "B" if k > 0 => Some(Self::internal(digits, k)),
            "f" | "F" => Some(Self::internal(digits, k + 1)),
            _ => None,
        }
    }

    /// Gives numeric labels and references to them their internal names.
    fn rename(&mut self, stmt: &mut Statement) {
        match &mut stmt.kind {
            StatementKind::Label(name) if name.bytes().all(|c| c.is_ascii_digit()) => {
                let k = self.defined.entry(name.clone()).or_insert(0);
                *k += 1;
                *name = Self::internal(name, *k);
            }
            StatementKind::Instruction(inst) => {
                for op in &mut inst.operands {
                    let name = match op {
                        ParsedOperand::Label(n) => n,
                        ParsedOperand::LabelMem(m) => &mut m.name,
                        ParsedOperand::Op(_) => continue,
                    };
                    if let Some(new) = self.map(name) {
                        *name = new;
                    }
                }
            }
            StatementKind::Data { values, .. } => {
                for v in values {
                    if let DataValue::Label(name) = v
                        && let Some(new) = self.map(name)
                    {
                        *name = new;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The message of a layout error, with numeric local labels spelled as written.
fn finalize_message(e: &Error) -> String {
    if let Error::UnboundLabel { label } = e
        && let Some((digits, _)) = label.split_once(":#")
    {
        return format!("label {digits}f is used but no `{digits}:` follows");
    }
    e.to_string()
}

/// A fully assembled program.
#[derive(Clone, Debug)]
pub struct Assembled {
    /// The laid-out, relocated bytes (base address 0).
    pub bytes: Vec<u8>,
    /// One entry per statement: offset in the laid-out code, final bytes, source text.
    pub listing: Listing,
}

fn label_for(code: &mut CodeHolder, name: &str) -> Result<Label, Error> {
    match code.label_by_name(name) {
        Some(l) => Ok(l),
        None => code.new_named_label(name),
    }
}

/// Assembles a whole program (labels, directives, sections) at base address
/// 0. Returns every error found (each line is tried even after one fails).
pub fn assemble_program(text: &str, arch: Arch) -> Result<Assembled, Vec<ParseError>> {
    let mut code = CodeHolder::new(arch);
    code.set_base_address(Some(0));
    let mut errors = Vec::new();
    let mut sections: HashMap<String, SectionId> = HashMap::new();
    sections.insert(".text".into(), CodeHolder::TEXT);
    let mut first_use: HashMap<String, (usize, usize)> = HashMap::new();
    let mut locals = LocalLabels::default();
    let mut constants: HashMap<String, i64> = HashMap::new();
    // (section, offset, len, text)
    let mut entries: Vec<(SectionId, usize, usize, String)> = Vec::new();
    {
        let mut a = Assembler::new(&mut code);
        for (i, line) in text.lines().enumerate() {
            let stmts = match parse_line_with(line, i + 1, arch, &constants) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for mut stmt in stmts {
                locals.rename(&mut stmt);
                let section = a.current_section();
                let start = a.offset();
                let result: Result<(), ParseError> = match &stmt.kind {
                    StatementKind::Label(name) => label_for(a.code_mut(), name)
                        .and_then(|l| a.bind(l))
                        .map_err(|e| error_at(&stmt, stmt.column, e)),
                    StatementKind::Instruction(inst) => {
                        for name in inst.label_refs() {
                            first_use
                                .entry(name.to_string())
                                .or_insert((stmt.line, inst.column));
                        }
                        emit_parsed(&mut a, inst)
                            .map_err(|e| error_at(&stmt, error_column(inst, &e), e))
                    }
                    StatementKind::Data { size, values } => {
                        let mut r = Ok(());
                        for v in values {
                            let res = match v {
                                DataValue::Int(x) => a.embed_int(*x as u64, *size as usize),
                                DataValue::Bytes(b) => {
                                    a.embed(b);
                                    Ok(())
                                }
                                DataValue::Label(name) => {
                                    first_use
                                        .entry(name.clone())
                                        .or_insert((stmt.line, stmt.column));
                                    label_for(a.code_mut(), name).and_then(|l| a.embed_label(l))
                                }
                            };
                            if let Err(e) = res {
                                r = Err(error_at(&stmt, stmt.column, e));
                                break;
                            }
                        }
                        r
                    }
                    StatementKind::Align(n) => a
                        .align(*n as usize)
                        .map_err(|e| error_at(&stmt, stmt.column, e)),
                    StatementKind::Constant { name, value } => {
                        constants.insert(name.clone(), *value);
                        Ok(())
                    }
                    StatementKind::Section(name) => {
                        let id = match sections.get(name) {
                            Some(id) => Ok(*id),
                            None => {
                                let kind = match name.as_str() {
                                    n if n.starts_with(".text") => SectionKind::Text,
                                    n if n.starts_with(".rodata") => SectionKind::ReadOnlyData,
                                    _ => SectionKind::Data,
                                };
                                a.code_mut().add_section(name, kind, 16).inspect(|id| {
                                    sections.insert(name.clone(), *id);
                                })
                            }
                        };
                        id.and_then(|id| a.switch_section(id))
                            .map_err(|e| error_at(&stmt, stmt.column, e))
                    }
                };
                match result {
                    Ok(()) => {
                        let end = a.offset();
                        let len = if a.current_section() == section {
                            end - start
                        } else {
                            0
                        };
                        entries.push((section, start, len, stmt.text.clone()));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let bytes = match code.finalize() {
        Ok(b) => b,
        Err(e) => {
            let (line, column) = match &e {
                Error::UnboundLabel { label } => first_use.get(label).copied().unwrap_or((0, 0)),
                _ => (0, 0),
            };
            return Err(vec![ParseError {
                line,
                column,
                message: finalize_message(&e),
            }]);
        }
    };
    let offsets = code.section_offsets();
    let mut listing = Listing::new();
    for (section, start, len, text) in entries {
        let at = offsets[section.0 as usize] as usize + start;
        let b = bytes.get(at..at + len).unwrap_or(&[]);
        listing.entries.push(ListingEntry {
            offset: at,
            bytes: b.to_vec(),
            text,
        });
    }
    Ok(Assembled { bytes, listing })
}

/// Assembles one line at a time, each on its own at address 0 with base
/// address 0 (so a numeric branch target is an absolute address). Reuses one
/// code holder; fast enough for tens of thousands of lines per second.
pub struct LineAssembler {
    code: CodeHolder,
    arch: Arch,
}

impl LineAssembler {
    /// A line assembler for 64-bit (`Arch::X64`) or 32-bit (`Arch::X86`) code.
    pub fn new(arch: Arch) -> LineAssembler {
        let mut code = CodeHolder::new(arch);
        code.set_base_address(Some(0));
        LineAssembler { code, arch }
    }

    /// The mode.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The bytes of one line (labels and directives allowed; an empty line
    /// gives no bytes). Errors are reported on line 1.
    pub fn assemble(&mut self, line: &str) -> Result<Vec<u8>, ParseError> {
        let mut stmts = parse_line(line, 1, self.arch)?;
        let mut locals = LocalLabels::default();
        for stmt in &mut stmts {
            locals.rename(stmt);
        }
        self.code.reset();
        let mut a = Assembler::new(&mut self.code);
        let mut last_col = 1;
        for stmt in &stmts {
            last_col = stmt.column;
            match &stmt.kind {
                StatementKind::Label(name) => label_for(a.code_mut(), name)
                    .and_then(|l| a.bind(l))
                    .map_err(|e| error_at(stmt, stmt.column, e))?,
                StatementKind::Instruction(inst) => {
                    emit_parsed(&mut a, inst)
                        .map_err(|e| error_at(stmt, error_column(inst, &e), e))?;
                }
                StatementKind::Data { size, values } => {
                    for v in values {
                        match v {
                            DataValue::Int(x) => a.embed_int(*x as u64, *size as usize),
                            DataValue::Bytes(b) => {
                                a.embed(b);
                                Ok(())
                            }
                            DataValue::Label(name) => {
                                label_for(a.code_mut(), name).and_then(|l| a.embed_label(l))
                            }
                        }
                        .map_err(|e| error_at(stmt, stmt.column, e))?;
                    }
                }
                StatementKind::Align(n) => a
                    .align(*n as usize)
                    .map_err(|e| error_at(stmt, stmt.column, e))?,
                // Constants apply to the lines after; a line alone has none.
                StatementKind::Constant { .. } => {}
                // Already in `.text`.
                StatementKind::Section(name) if name == ".text" => {}
                StatementKind::Section(_) => {
                    return Err(error_at(
                        stmt,
                        stmt.column,
                        "sections need a whole program (`jitforge asm`)",
                    ));
                }
            }
        }
        self.code.finalize().map_err(|e| ParseError {
            line: 1,
            column: last_col,
            message: finalize_message(&e),
        })
    }
}
