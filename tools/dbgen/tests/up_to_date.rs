//! The committed Rust tables must be exactly what the generator makes of the
//! committed database text, and `apx.txt` what the APX step makes of the rest.

#[test]
fn generated_tables_are_up_to_date() {
    let (tables, api) = jitforge_dbgen::generate_from_disk().expect("database parses");
    let [tables_path, api_path] = jitforge_dbgen::generated_paths();
    let committed_tables = std::fs::read_to_string(&tables_path).expect("generated.rs exists");
    let committed_api = std::fs::read_to_string(&api_path).expect("generated_api.rs exists");
    assert!(
        committed_tables == tables,
        "{} is stale: run `cargo run -p jitforge-dbgen`",
        tables_path.display()
    );
    assert!(
        committed_api == api,
        "{} is stale: run `cargo run -p jitforge-dbgen`",
        api_path.display()
    );
}

/// `apx.txt` is what `jitforge-dbgen apx` makes of the rows it promotes.
#[test]
fn apx_rows_are_up_to_date() {
    let text = jitforge_dbgen::apx_from_disk().expect("database parses");
    let committed = std::fs::read_to_string(jitforge_dbgen::apx_path()).expect("apx.txt exists");
    assert!(
        committed == text,
        "apx.txt is stale: run `cargo run -p jitforge-dbgen -- apx`, then `cargo run -p jitforge-dbgen`"
    );
}

#[test]
fn parse_errors_name_the_line() {
    let err =
        jitforge_dbgen::parse::parse_database("# c\nadd | r64/m bogus | 01 /r | x64 | 64 |\n")
            .unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.contains("bogus"), "{}", err.message);
}
