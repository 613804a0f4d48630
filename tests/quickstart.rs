//! The seed's example: `examples/quickstart.rs` must run and print `1`.
//! `cargo test` builds the examples next to the test binaries, so the test
//! runs the real example program.

use std::path::PathBuf;
use std::process::Command;

fn example_path(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

#[test]
fn quickstart_prints_1() {
    let path = example_path("quickstart");
    let output = if path.exists() {
        Command::new(&path).output().expect("run the example")
    } else {
        // Built elsewhere (e.g. a custom target dir layout): let cargo build and run it.
        Command::new(env!("CARGO"))
            .args(["run", "-q", "--example", "quickstart"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo run --example quickstart")
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1\n");
}
