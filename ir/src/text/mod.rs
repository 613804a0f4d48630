//! The text format of the IR: a printer and a parser that round-trip
//! (`parse(print(f)) == f`), for golden tests, fuzz reproducers and the
//! `jitforge run` / `jitforge compile` commands. The grammar is documented in
//! the crate docs ([`crate`]).

mod parse;
mod print;

pub use parse::{
    ParseError, ParseErrorKind, Parsed, parse_function, parse_module, parse_module_with_positions,
};
pub use print::{DisplayFunction, print_function, print_module, write_function};

/// The fuzzing entry point: parses `data` (as UTF-8, lossily) with the mock
/// target; whatever parses must print and parse back to an equal function,
/// and must verify, lower and get a CFG without panicking. Panics only on a
/// round-trip mismatch (a bug). Drive it from a cargo-fuzz target:
/// `fuzz_target!(|data: &[u8]| jitforge_ir::text::fuzz_text(data));`
pub fn fuzz_text(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let t = crate::mock::MockX86::new();
    let Ok(funcs) = parse_module(&src, &t) else {
        return;
    };
    for f in funcs {
        let text = print_function(&f, &t);
        let g = parse_function(&text, &t).expect("printed text parses");
        assert!(g == f, "round trip changed the function:\n{text}");
        let cfg = crate::cfg::Cfg::of(&f, &t);
        let _ = crate::verify::verify_with_cfg(&f, &t, &cfg);
        let mut l = f.clone();
        if crate::lower::lower(&mut l, &t).is_ok() {
            let text = print_function(&l, &t);
            let g = parse_function(&text, &t).expect("printed lowered text parses");
            assert!(g == l, "round trip changed the lowered function:\n{text}");
        }
    }
}

/// Pseudo-instruction keywords. A target mnemonic equal to one of these is
/// printed with a leading `@` (`@ret`).
pub const PSEUDO_KEYWORDS: [&str; 8] = [
    "entry", "ret", "invoke", "tailjump", "copy", "addr", "jump", "jumpind",
];

/// Whether `s` is an identifier of the text format: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Memory size keywords and their sizes in bytes.
pub const MEM_SIZES: [(&str, u16); 8] = [
    ("byte", 1),
    ("word", 2),
    ("dword", 4),
    ("qword", 8),
    ("tword", 10),
    ("xmmword", 16),
    ("ymmword", 32),
    ("zmmword", 64),
];

/// Declaration keywords; a target mnemonic equal to one is printed with `@` too.
pub const DECL_KEYWORDS: [&str; 8] = [
    "labels",
    "slot",
    "const",
    "sig",
    "jumptable",
    "pin",
    "lowered",
    "func",
];

/// Whether a mnemonic must be printed with a leading `@` to be read back.
pub(crate) fn reserved(name: &str) -> bool {
    PSEUDO_KEYWORDS.contains(&name) || DECL_KEYWORDS.contains(&name) || vreg_decl(name).is_some()
}

/// A virtual-register declaration keyword: class name and size in bits (`gp64`).
pub(crate) fn vreg_decl(kw: &str) -> Option<(crate::RegClass, u32)> {
    for c in (0..=crate::RegClass::MAX).map(crate::RegClass) {
        if let Some(rest) = kw.strip_prefix(c.name())
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
            && rest.len() <= 6
        {
            return rest.parse().ok().map(|b| (c, b));
        }
    }
    None
}
