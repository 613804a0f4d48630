//! The `jitforge` command: every mode on a sample of the conformance rows
//! (../shared/conformance), the listing and hex outputs, `isa`, `cpu`,
//! `--help` everywhere, and the exit statuses (0 ok, 1 failed input, 2 usage).

use jitforge::Arch;
use jitforge::x86::Mnemonic;
use jitforge::x86::text::LineAssembler;
use jitforge::x86::text::listing::hex;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn jitforge(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jitforge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jitforge");
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for jitforge");
    writer.join().unwrap();
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Every 40th row that an assembler reproduced: (text, expected hex).
fn sample(file: &str) -> Option<Vec<(String, String)>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance")
        .join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("note: {} not found; using built-in rows", path.display());
        return None;
    };
    let rows = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let ok = |s: &str| s == "same" || s == "equiv";
            (c.len() >= 5 && (ok(c[3]) || ok(c[4]))).then(|| (c[0].to_string(), c[1].to_string()))
        })
        .step_by(40)
        .collect();
    Some(rows)
}

fn builtin() -> Vec<(String, String)> {
    [
        ("add ecx, 1", "83c101"),
        ("vaddps zmm0, zmm1, zmm2, {rn-sae}", "62f1741858c2"),
        ("ret", "c3"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[test]
fn each_mode_agrees_with_the_library_on_conformance_rows() {
    for (file, bits, arch) in [
        ("asmjit-vectors-x64.tsv", "64", Arch::X64),
        ("asmjit-vectors-x86.tsv", "32", Arch::X86),
    ] {
        let rows = sample(file).unwrap_or_else(builtin);
        let input: String = rows.iter().map(|(t, _)| format!("{t}\n\n")).collect();
        let out = jitforge(&["asm", "--each", "--bits", bits, "-"], &input);
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            rows.len(),
            "one output line per non-empty input line"
        );
        let mut a = LineAssembler::new(arch);
        let mut expected_matches = 0;
        let mut any_error = false;
        for ((t, want), got) in rows.iter().zip(&lines) {
            let lib = match a.assemble(t) {
                Ok(b) => hex(&b),
                Err(e) => {
                    any_error = true;
                    format!("error: {}", e.message)
                }
            };
            assert_eq!(*got, lib, "{t}: the command and the library disagree");
            if got == want {
                expected_matches += 1;
            }
        }
        println!(
            "{file}: {} sampled rows, {expected_matches} give AsmJit's bytes",
            rows.len()
        );
        assert!(
            expected_matches * 100 >= rows.len() * 95,
            "{expected_matches} of {}",
            rows.len()
        );
        assert_eq!(status(&out), if any_error { 1 } else { 0 });
    }
}

#[test]
fn each_mode_reports_errors_per_line_and_exits_1() {
    let out = jitforge(
        &["asm", "--each"],
        "nop\nfrob eax\n\n   \nmov eax, [rax + rcx*3]\njne 0x11\n",
    );
    assert_eq!(status(&out), 1);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "90");
    assert!(
        lines[1].starts_with("error: unknown mnemonic"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("error: scale 3"), "{}", lines[2]);
    assert_eq!(lines[3], "750f");
    let ok = jitforge(
        &["asm", "--each", "--bits", "32"],
        "push ebp\nmov ebp, esp\n",
    );
    assert_eq!(status(&ok), 0);
    assert_eq!(stdout(&ok), "55\n89e5\n");
}

#[test]
fn program_listing_and_hex() {
    let program = "start:\n  mov ecx, 3\n.Lloop: dec ecx\n  jnz .Lloop\n  ret\n  .byte 0xcc\n";
    let out = jitforge(&["asm", "-"], program);
    assert_eq!(status(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let listing = stdout(&out);
    assert!(listing.contains("00000000  b9 03 00 00 00"), "{listing}");
    assert!(listing.contains("00000005  ff c9"), "{listing}");
    assert!(listing.contains("jnz .Lloop"), "{listing}");
    let out = jitforge(&["asm", "--hex"], program);
    assert_eq!(status(&out), 0);
    assert_eq!(stdout(&out), "b903000000ffc975fcc3cc\n");
    // From a file, 32-bit.
    let dir = std::env::temp_dir().join(format!("jitforge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.s");
    std::fs::write(&path, "push ebp\nmov ebp, esp\npop ebp\nret\n").unwrap();
    let out = jitforge(
        &["asm", "--bits", "32", "--hex", path.to_str().unwrap()],
        "",
    );
    assert_eq!(stdout(&out), "5589e55dc3\n");
    assert_eq!(status(&out), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn program_errors_go_to_stderr_with_line_and_column() {
    let out = jitforge(&["asm"], "nop\n  mov eax, xmm32\n  jmp nowhere\n");
    assert_eq!(status(&out), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<stdin>:2:12: error: bad register `xmm32`"),
        "{err}"
    );
    let out = jitforge(&["asm"], "jmp nowhere\n");
    assert_eq!(status(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
    let out = jitforge(&["asm", "/nonexistent/file.s"], "");
    assert_eq!(status(&out), 1);
}

#[test]
fn isa_modes() {
    let out = jitforge(&["isa", "vaddps"], "");
    assert_eq!(status(&out), 0);
    let text = stdout(&out);
    assert!(text.contains("evex.512.0f.w0 58 /r"), "{text}");
    assert!(text.contains("avx512f"), "{text}");
    assert!(text.contains("w:zmm"), "access is shown: {text}");
    let out = jitforge(&["isa", "div"], "");
    let text = stdout(&out);
    assert!(
        text.contains("implicit") && text.contains("flags written"),
        "{text}"
    );
    let out = jitforge(&["isa", "vcmpltps"], "");
    assert_eq!(status(&out), 0);
    assert!(stdout(&out).contains("vcmpps with predicate 0x1"));
    let out = jitforge(&["isa", "nosuchinsn"], "");
    assert_eq!(status(&out), 1);
    let out = jitforge(&["isa", "--json"], "");
    assert_eq!(status(&out), 0);
    let json = stdout(&out);
    assert!(json.starts_with('{') && json.trim_end().ends_with('}'));
    assert_eq!(json.matches("{\"name\":").count(), Mnemonic::ALL.len());
    assert_eq!(json.matches('{').count(), json.matches('}').count());
    assert_eq!(json.matches('[').count(), json.matches(']').count());
    assert!(json.contains("\"name\":\"vaddps\""));
    assert!(json.contains("\"access\":[\"w\",\"r\",\"r\"]"));
    assert!(json.contains("\"flags_written\":[\"of\""));
}

#[test]
fn cpu_mode() {
    let out = jitforge(&["cpu"], "");
    assert_eq!(status(&out), 0);
    if cfg!(target_arch = "x86_64") {
        let text = stdout(&out);
        assert!(text.lines().any(|l| l == "x64"), "{text}");
        assert!(text.lines().any(|l| l == "sse2"), "{text}");
    }
}

#[test]
fn help_everywhere_and_usage_errors_exit_2() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["asm", "--help"],
        &["asm", "--each", "--help"],
        &["isa", "--help"],
        &["cpu", "--help"],
    ] {
        let out = jitforge(args, "");
        assert_eq!(status(&out), 0, "{args:?}");
        assert!(stdout(&out).contains("USAGE"), "{args:?}");
    }
    for args in [
        &[][..],
        &["frob"],
        &["asm", "--bits", "16"],
        &["asm", "--bits"],
        &["asm", "--frob"],
        &["asm", "a.s", "b.s"],
        &["isa"],
        &["isa", "--json", "add"],
        &["cpu", "extra"],
    ] {
        let out = jitforge(args, "");
        assert_eq!(status(&out), 2, "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn program_modes_agree_with_the_library_on_conformance_rows() {
    use jitforge::x86::text::assemble_program;
    for (file, bits, arch) in [
        ("asmjit-vectors-x64.tsv", "64", Arch::X64),
        ("asmjit-vectors-x86.tsv", "32", Arch::X86),
    ] {
        let rows = sample(file).unwrap_or_else(builtin);
        // Keep the rows the library assembles (a program stops at none).
        let mut a = LineAssembler::new(arch);
        let program: String = rows
            .iter()
            .filter(|(t, _)| a.assemble(t).is_ok())
            .map(|(t, _)| format!("{t}\n"))
            .collect();
        let lib = assemble_program(&program, arch).expect("sample program assembles");
        let out = jitforge(&["asm", "--hex", "--bits", bits], &program);
        assert_eq!(status(&out), 0);
        assert_eq!(stdout(&out).trim_end(), hex(&lib.bytes));
        let out = jitforge(&["asm", "--bits", bits], &program);
        assert_eq!(status(&out), 0);
        let listing = stdout(&out);
        for line in program.lines() {
            assert!(listing.contains(line), "listing lacks {line}");
        }
        assert_eq!(listing, lib.listing.to_string());
    }
}

/// `sum` (tests/data/sum.ir, also run by tests/compiler.rs) and a float function.
const SUM_IR: &str = concat!(
    include_str!("data/sum.ir"),
    "func twice(f64) -> (f64) sysv64 {
  vec128 %x
  entry %x
  addsd %x, %x
  ret %x
}
"
);

/// The same byte and word arithmetic with signed and unsigned types.
const NARROW_IR: &str = "
func ubyte(u8) -> (u8) sysv64 {
  gp8 %a
  entry %a
  add %a, 127
  ret %a
}
func sbyte(i8) -> (i8) sysv64 {
  gp8 %a
  entry %a
  add %a, 127
  ret %a
}
func uword(u16) -> (u16) sysv64 {
  gp16 %a
  entry %a
  add %a, 0x7fff
  ret %a
}
func sword(i16) -> (i16) sysv64 {
  gp16 %a
  entry %a
  add %a, 0x7fff
  ret %a
}
";

#[test]
fn run_prints_narrow_results_by_signedness() {
    for (entry, arg, want) in [
        ("ubyte", "1", "128"),
        ("sbyte", "1", "-128"),
        ("ubyte", "300", "171"),
        ("sbyte", "-1", "126"),
        ("uword", "1", "32768"),
        ("sword", "1", "-32768"),
        ("uword", "0x18001", "0"),
    ] {
        let o = jitforge(&["run", "-", "--entry", entry, arg], NARROW_IR);
        assert_eq!(
            (status(&o), stdout(&o)),
            (0, format!("{want}\n")),
            "{entry}({arg})"
        );
    }
}

#[test]
fn run_compile_and_bench() {
    let o = jitforge(&["run", "-", "0", "10"], SUM_IR);
    assert_eq!((status(&o), stdout(&o)), (0, "45\n".to_string()));
    let o = jitforge(&["run", "-", "--entry", "twice", "1.25"], SUM_IR);
    assert_eq!((status(&o), stdout(&o)), (0, "2.5\n".to_string()));
    let o = jitforge(&["run", "-", "1"], SUM_IR);
    assert_eq!(status(&o), 1, "wrong argument count");
    let o = jitforge(&["run"], "");
    assert_eq!(status(&o), 2);
    let o = jitforge(&["compile", "-"], SUM_IR);
    assert_eq!(status(&o), 0);
    let listing = stdout(&o);
    assert!(
        listing.contains("; before allocation") && listing.contains("; after allocation"),
        "{listing}"
    );
    let o = jitforge(&["bench", "B", "--runs", "1"], "");
    assert_eq!(status(&o), 0);
    let line = stdout(&o);
    for key in [
        "workload=B ",
        "ns_per_op=",
        "code_bytes=",
        "stores=",
        "reloads=",
        "folded=",
        "moves=",
        "run_ns=",
        "check=ok",
    ] {
        assert!(line.contains(key), "{key} missing in {line}");
    }
    let o = jitforge(&["bench", "nonsense"], "");
    assert_eq!(status(&o), 2);
}
