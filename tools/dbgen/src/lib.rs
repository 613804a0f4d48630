//! Tools for jitforge's instruction database.
//!
//! - [`bootstrap`] seeds `src/x86/db/instructions.txt` from iced-x86's public
//!   opcode metadata (run once; the text is then the project's data).
//! - [`parse`] reads that text into rows.
//! - [`apx`] derives the APX forms (`apx.txt`) from the rows they promote.
//! - [`generate`] turns rows into the Rust tables in `src/x86/db/generated.rs`
//!   and `generated_api.rs`.
//! - [`opcodes`] looks up the opcodes that code outside the general encoder
//!   writes itself: the Compiler's direct encoder, branch relaxation, NOPs
//!   (`src/x86/db/generated_opcodes.rs`).
//!
//! `cargo run -p jitforge-dbgen` regenerates the tables; a test fails when the
//! committed tables differ from what the generator makes of the text.

pub mod apx;
pub mod bootstrap;
pub mod generate;
pub mod opcodes;
pub mod parse;

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of the bootstrapped database text.
pub fn database_path() -> PathBuf {
    repo_root().join("src/x86/db/instructions.txt")
}

/// Every database file, in order: the bootstrapped forms, then the
/// hand-written ones (forms no bootstrap source has, such as AsmJit's
/// `lsl r64, r32`). Within a mnemonic, earlier files' forms are preferred.
pub fn database_paths() -> Vec<PathBuf> {
    let dir = repo_root().join("src/x86/db");
    vec![
        dir.join("instructions.txt"),
        dir.join("extra.txt"),
        dir.join("apx.txt"),
    ]
}

/// Path of the APX forms (written by [`apx::apx_text`]).
pub fn apx_path() -> PathBuf {
    repo_root().join("src/x86/db/apx.txt")
}

/// The APX text that [`apx::apx_text`] makes of the other database files.
pub fn apx_from_disk() -> Result<String, Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for path in database_paths().iter().filter(|p| **p != apx_path()) {
        let text = std::fs::read_to_string(path)?;
        rows.extend(parse::parse_database(&text)?);
    }
    Ok(apx::apx_text(&rows))
}

/// Paths of the generated files, in the order [`generate_from_disk`] returns them.
pub fn generated_paths() -> [PathBuf; 3] {
    let dir = repo_root().join("src/x86/db");
    [
        dir.join("generated.rs"),
        dir.join("generated_api.rs"),
        dir.join("generated_opcodes.rs"),
    ]
}

/// Reads every database file and generates the Rust files (the tables, the
/// typed API, the opcodes written outside the general encoder), in [`generated_paths`] order.
pub fn generate_from_disk() -> Result<[String; 3], Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for path in database_paths() {
        let text = std::fs::read_to_string(&path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("database");
        let mut file_rows = parse::parse_database(&text).map_err(|e| format!("{name}: {e}"))?;
        for row in &mut file_rows {
            row.file = name.to_string();
        }
        rows.extend(file_rows);
    }
    let opcodes = opcodes::generate_opcodes(&rows)?;
    let (tables, api) = generate::generate(&rows);
    Ok([tables, api, opcodes])
}
