//! `jitforge-dbgen`: regenerates the instruction tables from the database text.
//!
//! - `cargo run -p jitforge-dbgen` writes `src/x86/db/generated.rs`, `generated_api.rs`
//!   and `generated_opcodes.rs`.
//! - `cargo run -p jitforge-dbgen -- check` exits 1 when they are stale.
//! - `cargo run -p jitforge-dbgen -- apx` rewrites `apx.txt` from the rows APX promotes.
//! - `cargo run -p jitforge-dbgen -- bootstrap` reseeds `instructions.txt` from iced-x86.

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "generate".into());
    match command.as_str() {
        "bootstrap" => {
            let text = jitforge_dbgen::bootstrap::database_text();
            if let Err(e) = std::fs::write(jitforge_dbgen::database_path(), text) {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        "apx" => {
            let written = jitforge_dbgen::apx_from_disk()
                .and_then(|text| Ok(std::fs::write(jitforge_dbgen::apx_path(), text)?));
            if let Err(e) = written {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        "generate" | "check" => {
            let texts = match jitforge_dbgen::generate_from_disk() {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            let paths = jitforge_dbgen::generated_paths();
            if command == "check" {
                let same = |path: &std::path::Path, text: &str| {
                    std::fs::read_to_string(path).is_ok_and(|t| t == text)
                };
                let apx_fresh = jitforge_dbgen::apx_from_disk()
                    .is_ok_and(|text| same(&jitforge_dbgen::apx_path(), &text));
                if apx_fresh && paths.iter().zip(&texts).all(|(p, t)| same(p, t)) {
                    return ExitCode::SUCCESS;
                }
                eprintln!(
                    "generated tables are stale: run `cargo run -p jitforge-dbgen -- apx` and `cargo run -p jitforge-dbgen`"
                );
                return ExitCode::from(1);
            }
            for (path, text) in paths.iter().zip(texts) {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("error writing {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        "--help" | "-h" => {
            println!("usage: jitforge-dbgen [generate|check|bootstrap|apx]");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!(
                "unknown command {other:?}; usage: jitforge-dbgen [generate|check|bootstrap|apx]"
            );
            ExitCode::from(2)
        }
    }
}
