//! Tools for jitforge's instruction database.
//!
//! - [`bootstrap`] seeds `src/x86/db/instructions.txt` from iced-x86's public
//!   opcode metadata (run once; the text is then the project's data).
//! - [`parse`] reads that text into rows.
//! - [`generate`] turns rows into the Rust tables in `src/x86/db/generated*.rs`.
//!
//! `cargo run -p jitforge-dbgen` regenerates the tables; a test fails when the
//! committed tables differ from what the generator makes of the text.

pub mod bootstrap;
pub mod generate;
pub mod parse;

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of the database text.
pub fn database_path() -> PathBuf {
    repo_root().join("src/x86/db/instructions.txt")
}

/// Paths of the generated files, in the order [`generate::generate`] returns them.
pub fn generated_paths() -> [PathBuf; 2] {
    let dir = repo_root().join("src/x86/db");
    [dir.join("generated.rs"), dir.join("generated_api.rs")]
}

/// Reads the database and generates both files.
pub fn generate_from_disk() -> Result<(String, String), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(database_path())?;
    let rows = parse::parse_database(&text)?;
    Ok(generate::generate(&rows))
}
