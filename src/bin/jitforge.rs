//! The `jitforge` command: assemble Intel-syntax text (a whole program with a
//! listing, or one instruction per line for conformance suites), describe the
//! instruction database (per mnemonic, or all of it as JSON), and print the
//! host's CPU features; compile and run IR text, print its annotated
//! listing, and run the standard workloads.
//!
//! Exit status: 0 on success, 1 if any input line failed, 2 on bad usage.

use jitforge::Arch;
use jitforge::x86::cpu::CpuFeatures;
use jitforge::x86::text::listing::hex;
use jitforge::x86::text::{LineAssembler, assemble_program, isa, lookup_mnemonic};
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

const HELP: &str = "\
jitforge: x86/x86-64 machine code from Intel-syntax text

USAGE:
    jitforge asm [--bits 64|32] [--hex] [FILE|-]
    jitforge asm --each [--bits 64|32] [FILE|-]
    jitforge isa MNEMONIC...
    jitforge isa --json
    jitforge isa --coverage
    jitforge cpu
    jitforge run FILE [--entry NAME] [ARGS...]
    jitforge compile FILE
    jitforge bench [A.full A.gp B C] [--runs N]
    jitforge [COMMAND] --help

COMMANDS:
    asm    Assemble a program (labels, directives) and print a listing
    isa    Describe instruction forms, or dump the database as JSON
    cpu    Print the CPU features of this machine
    run    Compile IR text and run a function with integer/float arguments
    compile
           Compile IR text and print the annotated listing
    bench  Run the standard workloads and print key=value lines

Exit status: 0 on success, 1 if any input failed, 2 on bad usage.
";

const ASM_HELP: &str = "\
jitforge asm: assemble Intel-syntax text (the llvm-mc / GNU as dialect)

USAGE:
    jitforge asm [--bits 64|32] [--hex] [FILE|-]
    jitforge asm --each [--bits 64|32] [FILE|-]

OPTIONS:
    --bits 64|32   Mode (default 64)
    --hex          Print only the bytes of the whole program, in hex
    --each         Every non-empty input line is one instruction, assembled on
                   its own at address 0 (base address 0, so `jne 0x11` is
                   75 0f); print one line per input line: the bytes in hex, or
                   `error: <message>`
    FILE           Input file; `-` or nothing reads standard input

Without --each the input is a program: labels (`name:`, `1:` with `1b`/`1f`),
directives (.byte .word .long .quad db dw dd dq .ascii .asciz .zero .skip
.align .section .equ), comments (; # //). The listing shows offset, bytes and
text. Errors go to standard error as FILE:LINE:COLUMN: error: MESSAGE.

Exit status: 0 on success, 1 if any line failed, 2 on bad usage.
";

const ISA_HELP: &str = "\
jitforge isa: describe the instruction database

USAGE:
    jitforge isa MNEMONIC...   The forms of each mnemonic (aliases and compare
                               pseudo-ops such as jz or vcmpltps are accepted):
                               operands with their access, encoding, CPU
                               features, modes, prefixes, implicit registers,
                               status flags read and written
    jitforge isa --json        The whole database as JSON
    jitforge isa --coverage    Per extension group and mode (64, 32): forms in
                               the database, forms encoded, forms verified and
                               by which oracle; then the forms that do not
                               encode, by name

Exit status: 0 on success, 1 if a mnemonic is unknown (or, with --coverage,
a form does not encode), 2 on bad usage.
";

const CPU_HELP: &str = "\
jitforge cpu: print the CPU features of this machine, one per line

Detected with cpuid and xgetbv: AVX, AVX-512 and AMX count only when the
operating system has enabled their register state.

USAGE:
    jitforge cpu

Exit status: 0 on success, 2 on bad usage.
";

const RUN_HELP: &str = "\
jitforge run: compile a module of IR text (the jitforge-ir format) and call a function

USAGE:
    jitforge run FILE [--entry NAME] [ARGS...]

Every function of FILE (`-` for standard input) is compiled; NAME (default:
the first) is called with ARGS parsed by its signature (integers: decimal,
0x hex, negative, truncated to the parameter's type as a C cast does;
floats: f32/f64), at most 6 integers and 8 floats (System V), and its
result is printed (i8, i16, i32 signed: -128..127 for i8; u8 and u16
unsigned: 0..255 for u8).

Exit status: 0 on success, 1 if the module does not compile or run, 2 on bad usage.
";

const COMPILE_HELP: &str = "\
jitforge compile: compile a module of IR text and print the annotated listing

USAGE:
    jitforge compile FILE

Prints each function before allocation, then the machine code with every
move, spill store, reload and rematerialization the allocator inserted.

Exit status: 0 on success, 1 if the module does not compile, 2 on bad usage.
";

const BENCH_HELP: &str = "\
jitforge bench: run the standard workloads (../shared/bench/WORKLOAD.md)

USAGE:
    jitforge bench [A.full A.gp B C] [--runs N]

Prints one key=value line per workload (medians of N runs, default 5), with
check=ok when the result matches the spec:
    workload=A.full ns_per_inst=... mb_per_s=... bytes=... check=ok
    workload=B ns_per_op=... code_bytes=... stores=... reloads=... folded=... moves=... run_ns=... check=ok
    workload=C us_per_func=... check=ok

Exit status: 0 on success, 1 if a check failed, 2 on bad usage.
";

fn run_cmd(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{RUN_HELP}");
        return ExitCode::SUCCESS;
    }
    let Some(file) = args.first() else {
        return usage("run: missing FILE", RUN_HELP);
    };
    let mut entry = None;
    let mut values = Vec::new();
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        if a == "--entry" {
            match rest.next() {
                Some(name) => entry = Some(name.clone()),
                None => return usage("run: --entry needs a NAME", RUN_HELP),
            }
        } else {
            values.push(a.clone());
        }
    }
    let text = match read_input(Some(file)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jitforge: {e}");
            return ExitCode::from(1);
        }
    };
    match jitforge::compiler::run::run(&text, entry.as_deref(), &values) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jitforge: {file}: {e}");
            ExitCode::from(1)
        }
    }
}

fn compile_cmd(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{COMPILE_HELP}");
        return ExitCode::SUCCESS;
    }
    let [file] = args else {
        return usage("compile: expected exactly one FILE", COMPILE_HELP);
    };
    let text = match read_input(Some(file)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jitforge: {e}");
            return ExitCode::from(1);
        }
    };
    match jitforge::compiler::run::compile_listing(&text) {
        Ok(listing) => {
            print!("{listing}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jitforge: {file}: {e}");
            ExitCode::from(1)
        }
    }
}

fn bench_cmd(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{BENCH_HELP}");
        return ExitCode::SUCCESS;
    }
    let mut runs = 5usize;
    let mut names: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => runs = n,
                _ => return usage("bench: --runs needs a positive number", BENCH_HELP),
            },
            "A.full" | "A.gp" | "B" | "C" => names.push(a.as_str()),
            other => return usage(&format!("bench: unknown workload `{other}`"), BENCH_HELP),
        }
    }
    if names.is_empty() {
        names = vec!["A.full", "A.gp", "B", "C"];
    }
    match jitforge::workloads::run(&names, runs) {
        Ok(lines) => {
            let failed = lines.iter().any(|l| !l.ends_with("check=ok"));
            for line in lines {
                println!("{line}");
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("jitforge: bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(msg: &str, help: &str) -> ExitCode {
    eprintln!("jitforge: {msg}\n");
    eprint!("{help}");
    ExitCode::from(2)
}

fn read_input(path: Option<&str>) -> Result<String, String> {
    match path {
        None | Some("-") => {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("standard input: {e}"))?;
            Ok(s)
        }
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")),
    }
}

fn asm(args: &[String]) -> ExitCode {
    let mut arch = Arch::X64;
    let mut hex_only = false;
    let mut each = false;
    let mut file: Option<&str> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--help" | "-h" => {
                print!("{ASM_HELP}");
                return ExitCode::SUCCESS;
            }
            "--bits" => {
                i += 1;
                arch = match args.get(i).map(String::as_str) {
                    Some("64") => Arch::X64,
                    Some("32") => Arch::X86,
                    Some(other) => {
                        return usage(&format!("--bits takes 64 or 32, not `{other}`"), ASM_HELP);
                    }
                    None => return usage("--bits needs a value (64 or 32)", ASM_HELP),
                };
            }
            "--bits=64" => arch = Arch::X64,
            "--bits=32" => arch = Arch::X86,
            "--hex" => hex_only = true,
            "--each" => each = true,
            a if a.starts_with('-') && a != "-" => {
                return usage(&format!("unknown option `{a}`"), ASM_HELP);
            }
            a => {
                if file.is_some() {
                    return usage("more than one input file", ASM_HELP);
                }
                file = Some(a);
            }
        }
        i += 1;
    }
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jitforge: {e}");
            return ExitCode::from(1);
        }
    };
    let name = file.filter(|f| *f != "-").unwrap_or("<stdin>");
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut failed = false;
    if each {
        let mut a = LineAssembler::new(arch);
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let r = match a.assemble(line) {
                Ok(bytes) => writeln!(out, "{}", hex(&bytes)),
                Err(e) => {
                    failed = true;
                    writeln!(out, "error: {}", e.message)
                }
            };
            if r.is_err() {
                return ExitCode::from(1);
            }
        }
    } else {
        match assemble_program(&text, arch) {
            Ok(done) => {
                let r = if hex_only {
                    writeln!(out, "{}", hex(&done.bytes))
                } else {
                    write!(out, "{}", done.listing)
                };
                if r.is_err() {
                    return ExitCode::from(1);
                }
            }
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{name}:{}:{}: error: {}", e.line, e.column, e.message);
                }
            }
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn isa_cmd(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{ISA_HELP}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--json") {
        if args.len() != 1 {
            return usage("--json takes no mnemonic", ISA_HELP);
        }
        let mut out = io::stdout().lock();
        return if out.write_all(isa::database_json().as_bytes()).is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if args.iter().any(|a| a == "--coverage") {
        if args.len() != 1 {
            return usage("--coverage takes no mnemonic", ISA_HELP);
        }
        let text = jitforge::x86::text::coverage::coverage_text();
        print!("{text}");
        return if text.contains("missing: 0\n") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if let Some(opt) = args.iter().find(|a| a.starts_with('-')) {
        return usage(&format!("unknown option `{opt}`"), ISA_HELP);
    }
    if args.is_empty() {
        return usage("isa needs a mnemonic, --json or --coverage", ISA_HELP);
    }
    let mut out = String::from(
        "# mnemonic   access:operands (r read, w write, rw both, ? conditional; {k}? optional mask, {z}? zeroing, {er}/{sae}, <implicit>) | encoding | CPU features | modes | prefixes\n#            then implicit registers and status flags\n",
    );
    let mut failed = false;
    for name in args {
        match lookup_mnemonic(name, Arch::X64).or_else(|| lookup_mnemonic(name, Arch::X86)) {
            Some((m, pred)) => {
                if let Some(p) = pred {
                    out.push_str(&format!(
                        "# {name} is {} with predicate {p:#x} as the last operand\n",
                        m.name()
                    ));
                }
                out.push_str(&format!("# {} ({} forms)\n", m.name(), m.forms().len()));
                for f in m.forms() {
                    out.push_str(&isa::describe_form(f));
                    out.push('\n');
                }
            }
            None => {
                failed = true;
                eprintln!("jitforge: unknown mnemonic `{name}`");
            }
        }
    }
    print!("{out}");
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn cpu(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{CPU_HELP}");
        return ExitCode::SUCCESS;
    }
    if let Some(a) = args.first() {
        return usage(&format!("unexpected argument `{a}`"), CPU_HELP);
    }
    let host = CpuFeatures::host();
    let mut out = String::new();
    for f in host.iter() {
        out.push_str(f.name());
        out.push('\n');
    }
    print!("{out}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => usage("missing command", HELP),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("asm") => asm(&args[1..]),
        Some("isa") => isa_cmd(&args[1..]),
        Some("cpu") => cpu(&args[1..]),
        Some("run") => run_cmd(&args[1..]),
        Some("compile") => compile_cmd(&args[1..]),
        Some("bench") => bench_cmd(&args[1..]),
        Some(other) => usage(&format!("unknown command `{other}`"), HELP),
    }
}
