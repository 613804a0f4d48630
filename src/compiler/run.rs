//! Compiling and running IR text: what `jitforge run` and `jitforge
//! compile` do. A module in the IR text format (see the `jitforge-ir` crate
//! docs) is parsed with the x86 target, every function is compiled into one
//! code holder, and one function is called with integer and floating-point
//! arguments (System V, up to 6 of each kind) or listed.

use super::{Compiler, X86Target};
use crate::code::{Arch, CodeHolder};
use crate::error::{Error, Result};
use crate::jit::JitRuntime;
use crate::x86::text::listing::Listing;
use jitforge_ir::ValType;

fn invalid(message: String) -> Error {
    Error::InvalidArgument { message }
}

fn parse(text: &str) -> Result<Vec<jitforge_ir::Function>> {
    jitforge_ir::text::parse_module(text, X86Target::x64()).map_err(|e| invalid(format!("{e}")))
}

/// Compiles every function of `text` and returns the annotated listing:
/// each function's IR before allocation, then the code with the
/// allocator's edits marked.
pub fn compile_listing(text: &str) -> Result<String> {
    let functions = parse(text)?;
    let mut listing = Listing::new();
    let mut code = CodeHolder::new(Arch::X64);
    {
        let mut cc = Compiler::new(&mut code);
        cc.set_logger(Some(&mut listing));
        for f in functions {
            cc.add_ir_function(f)?;
        }
        cc.finalize()?;
    }
    // The Compiler lists each function as written, then as compiled.
    Ok(listing.to_string())
}

/// Compiles `text`, calls `entry` (or the first function) with `args`, and
/// returns the result as text (decimal integer, or a float).
pub fn run(text: &str, entry: Option<&str>, args: &[String]) -> Result<String> {
    let functions = parse(text)?;
    let first = functions
        .first()
        .ok_or_else(|| invalid("the module has no function".into()))?;
    let name = entry.unwrap_or(first.name()).to_string();
    let f = functions
        .iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| invalid(format!("no function named {name:?}")))?;
    let sig = f.sig.clone();
    if sig.params.len() != args.len() {
        return Err(invalid(format!(
            "{name} takes {} argument(s), {} given",
            sig.params.len(),
            args.len()
        )));
    }
    let mut ints = [0u64; 6];
    let mut floats = [0f64; 8];
    let (mut ni, mut nf) = (0, 0);
    for (ty, text) in sig.params.iter().zip(args) {
        match ty {
            ValType::F32 | ValType::F64 => {
                let v: f64 = text
                    .parse()
                    .map_err(|_| invalid(format!("argument {text:?} is not a number")))?;
                if nf == floats.len() {
                    return Err(invalid("more than 8 floating-point arguments".into()));
                }
                // An f32 argument travels in the low lane of its xmm register.
                floats[nf] = if *ty == ValType::F32 {
                    f64::from_bits((v as f32).to_bits() as u64)
                } else {
                    v
                };
                nf += 1;
            }
            ValType::I8
            | ValType::U8
            | ValType::I16
            | ValType::U16
            | ValType::I32
            | ValType::I64 => {
                let v = parse_int(text)
                    .ok_or_else(|| invalid(format!("argument {text:?} is not an integer")))?;
                if ni == ints.len() {
                    return Err(invalid("more than 6 integer arguments".into()));
                }
                // Passed as a compiled caller would: truncated to the type,
                // and an 8- or 16-bit value widened by its signedness.
                ints[ni] = as_type(v, *ty);
                ni += 1;
            }
            other => {
                return Err(invalid(format!(
                    "arguments of type {other:?} are not supported by `run`"
                )));
            }
        }
    }
    let runtime = JitRuntime::new()?;
    let mut code = CodeHolder::new(Arch::X64);
    let mut entry_label = None;
    {
        let mut cc = Compiler::new(&mut code);
        for f in functions {
            let is_entry = f.name() == name;
            let label = cc.add_ir_function(f)?;
            if is_entry {
                entry_label = Some(label);
            }
        }
        cc.finalize()?;
    }
    let label = entry_label.ok_or_else(|| invalid(format!("no function named {name:?}")))?;
    let (_, offset) = code
        .label_offset(label)
        .ok_or_else(|| invalid("entry label not bound".into()))?;
    let function = runtime.add(&code)?;
    let address = function.address() as usize + offset as usize;
    let [i0, i1, i2, i3, i4, i5] = ints;
    let [f0, f1, f2, f3, f4, f5, f6, f7] = floats;
    // System V assigns integer and vector registers independently of the
    // parameters' order, so one shape with 6 integers and 8 doubles calls any
    // function that takes at most that many of each.
    type IntFn =
        extern "C" fn(u64, u64, u64, u64, u64, u64, f64, f64, f64, f64, f64, f64, f64, f64) -> u64;
    type FloatFn =
        extern "C" fn(u64, u64, u64, u64, u64, u64, f64, f64, f64, f64, f64, f64, f64, f64) -> f64;
    match sig.rets.first() {
        Some(ValType::F64) | Some(ValType::F32) => {
            // SAFETY: `address` is the entry of a compiled System V function whose
            // parameters fit the registers passed here and that returns in xmm0.
            let f: FloatFn = unsafe { std::mem::transmute::<usize, FloatFn>(address) };
            let r = f(i0, i1, i2, i3, i4, i5, f0, f1, f2, f3, f4, f5, f6, f7);
            let r = if sig.rets[0] == ValType::F32 {
                f32::from_bits(r.to_bits() as u32) as f64
            } else {
                r
            };
            Ok(format!("{r}"))
        }
        _ => {
            // SAFETY: as above, returning in rax (or nothing).
            let f: IntFn = unsafe { std::mem::transmute::<usize, IntFn>(address) };
            let r = f(i0, i1, i2, i3, i4, i5, f0, f1, f2, f3, f4, f5, f6, f7);
            // Only the result type's bits are the result: a `u8` prints as
            // 0..255, an `i8` as -128..127.
            let r = match sig.rets.first() {
                Some(&ty) => as_type(r, ty) as i64,
                None => r as i64,
            };
            Ok(format!("{r}"))
        }
    }
}

/// `v` truncated to the integer type `ty` and extended back to 64 bits by
/// its signedness (`i32` sign-extends; `i64` and non-integers are unchanged).
pub(crate) fn as_type(v: u64, ty: ValType) -> u64 {
    match ty {
        ValType::I8 => v as i8 as u64,
        ValType::U8 => u64::from(v as u8),
        ValType::I16 => v as i16 as u64,
        ValType::U16 => u64::from(v as u16),
        ValType::I32 => v as i32 as u64,
        _ => v,
    }
}

fn parse_int(text: &str) -> Option<u64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}
