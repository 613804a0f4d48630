//! The committed Rust tables must be exactly what the generator makes of the
//! committed database text.

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

#[test]
fn parse_errors_name_the_line() {
    let err =
        jitforge_dbgen::parse::parse_database("# c\nadd | r64/m bogus | 01 /r | x64 | 64 |\n")
            .unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.contains("bogus"), "{}", err.message);
}
