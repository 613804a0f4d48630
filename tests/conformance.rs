//! Conformance: AsmJit's public assembler test vectors, as Intel text
//! (../shared/conformance/asmjit-vectors-{x64,x86}.tsv), go through the text
//! parser and the encoder. Every row that llvm-mc or GNU as reproduced
//! (column 4 or 5 is `same` or `equiv`) must give the expected bytes, or bytes
//! that iced-x86 decodes to the same instruction.
//!
//! The test prints counts per AsmJit test group and the first failures, and
//! asserts a floor on the number of passing rows (raise it as the encoder
//! grows). Set `JITFORGE_CONFORMANCE_FAILURES=path` to write every failure.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter, MemorySizeOptions};
use jitforge::Arch;
use jitforge::x86::text::LineAssembler;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Passing rows today (64-bit file, 32-bit file). Raise, never lower.
const FLOOR_X64: usize = 17_803;
const FLOOR_X86: usize = 8_221;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance")
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The instruction `bytes` decode to (iced's Intel text with every memory
/// size spelled out), if they are exactly one instruction.
fn decode(bytes: &[u8], bits: u32) -> Option<String> {
    let mut d = Decoder::with_ip(bits, bytes, 0, DecoderOptions::NONE);
    let inst = d.decode();
    if inst.is_invalid() || inst.len() != bytes.len() {
        return None;
    }
    // Same mnemonic, operands, memory sizes and decorators; the opcode may
    // differ (`movq mm, m64` as 0F 6F or REX.W 0F 6E; FMA4 with W0 or W1).
    let mut f = IntelFormatter::new();
    f.options_mut()
        .set_memory_size_options(MemorySizeOptions::Always);
    let mut out = String::new();
    f.format(&inst, &mut out);
    Some(out)
}

#[derive(Default)]
struct Counts {
    checked: usize,
    passed: usize,
    equiv: usize,
    failed: usize,
}

/// Runs one file; returns (passed, failures) or None if the file is absent.
fn run(file: &str, arch: Arch) -> Option<(usize, Vec<String>)> {
    let path = dir().join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "note: {} not found; conformance rows skipped",
            path.display()
        );
        return None;
    };
    let bits = arch.bits();
    let mut a = LineAssembler::new(arch);
    let mut groups: BTreeMap<String, Counts> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut passed = 0;
    // Rows no assembler reproduced but iced-x86 decodes: (checked, passed).
    let mut unreproduced = (0usize, 0usize);
    let mut unreproduced_failures: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 {
            continue;
        }
        let (intel, expected, group, llvm, gnu) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let reproduced = |c: &str| c == "same" || c == "equiv";
        if !reproduced(llvm) && !reproduced(gnu) {
            // No assembler took the text: check against iced-x86 where it
            // decodes AsmJit's bytes (informational).
            let Some(want) = unhex(expected).and_then(|w| decode(&w, bits)) else {
                continue;
            };
            unreproduced.0 += 1;
            match a.assemble(intel) {
                Ok(got) if decode(&got, bits).as_ref() == Some(&want) => unreproduced.1 += 1,
                Ok(got) => unreproduced_failures.push(format!(
                    "{file}:{}: [{group}] {intel}: got {} want {expected} (iced: {want})",
                    n + 1,
                    jitforge::x86::text::listing::hex(&got)
                )),
                Err(e) => unreproduced_failures.push(format!(
                    "{file}:{}: [{group}] {intel}: error: {}",
                    n + 1,
                    e.message
                )),
            }
            continue;
        }
        let counts = groups.entry(group.to_string()).or_default();
        counts.checked += 1;
        let Some(want) = unhex(expected) else {
            continue;
        };
        match a.assemble(intel) {
            Ok(got) if got == want => {
                counts.passed += 1;
                passed += 1;
            }
            Ok(got) => {
                let same = match (decode(&got, bits), decode(&want, bits)) {
                    (Some(g), Some(w)) => g == w,
                    _ => false,
                };
                if same {
                    counts.passed += 1;
                    counts.equiv += 1;
                    passed += 1;
                } else {
                    counts.failed += 1;
                    failures.push(format!(
                        "{file}:{}: [{group}] {intel}: got {} want {expected} (wrong bytes)",
                        n + 1,
                        jitforge::x86::text::listing::hex(&got)
                    ));
                }
            }
            Err(e) => {
                counts.failed += 1;
                failures.push(format!(
                    "{file}:{}: [{group}] {intel}: want {expected}: error: {}",
                    n + 1,
                    e.message
                ));
            }
        }
    }
    println!("{file} ({bits}-bit): group / checked / passed (of which equivalent) / failed");
    let mut total = Counts::default();
    for (g, c) in &groups {
        println!(
            "  {g:<16} {:>6} {:>6} ({:>3}) {:>6}",
            c.checked, c.passed, c.equiv, c.failed
        );
        total.checked += c.checked;
        total.passed += c.passed;
        total.equiv += c.equiv;
        total.failed += c.failed;
    }
    println!(
        "  {:<16} {:>6} {:>6} ({:>3}) {:>6}",
        "total", total.checked, total.passed, total.equiv, total.failed
    );
    println!(
        "  rows no assembler took, checked against iced-x86: {} checked, {} same instruction, {} not",
        unreproduced.0,
        unreproduced.1,
        unreproduced_failures.len()
    );
    for f in unreproduced_failures.iter().take(10) {
        println!("  (unreproduced) {f}");
    }
    Some((passed, failures))
}

fn check(file: &str, arch: Arch, floor: usize) {
    let Some((passed, failures)) = run(file, arch) else {
        return;
    };
    for f in failures.iter().take(30) {
        println!("FAIL {f}");
    }
    if let Ok(path) = std::env::var("JITFORGE_CONFORMANCE_FAILURES") {
        let path = format!("{path}.{}", arch.bits());
        std::fs::write(&path, failures.join("\n") + "\n").expect("write failures");
    }
    assert!(
        passed >= floor,
        "{file}: {passed} rows pass, fewer than the floor {floor}"
    );
}

#[test]
fn asmjit_vectors_x64() {
    check("asmjit-vectors-x64.tsv", Arch::X64, FLOOR_X64);
}

#[test]
fn asmjit_vectors_x86() {
    check("asmjit-vectors-x86.tsv", Arch::X86, FLOOR_X86);
}
