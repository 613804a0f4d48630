//! The committed Rust tables must be exactly what the generator makes of the
//! committed database text, and `apx.txt` what the APX step makes of the rest.

#[test]
fn generated_tables_are_up_to_date() {
    let texts = jitforge_dbgen::generate_from_disk().expect("database parses");
    for (path, text) in jitforge_dbgen::generated_paths().iter().zip(texts) {
        let committed = std::fs::read_to_string(path).expect("generated file exists");
        assert!(
            committed == text,
            "{} is stale: run `cargo run -p jitforge-dbgen`",
            path.display()
        );
    }
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

/// The rows of `text` with one field of the first row that starts with
/// `line_start` (mnemonic, operands and more, single-spaced) changed.
fn edited(text: &str, line_start: &str, from: &str, to: &str) -> Vec<jitforge_dbgen::parse::Row> {
    let mut changed = 0;
    let mut lines = Vec::new();
    for line in text.lines() {
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if changed == 0 && words.starts_with(line_start) {
            changed += 1;
            lines.push(line.replacen(from, to, 1));
        } else {
            lines.push(line.to_string());
        }
    }
    assert_eq!(changed, 1, "no row `{line_start}`");
    jitforge_dbgen::parse::parse_database(&lines.join("\n")).expect("edited database parses")
}

/// The direct encoder's opcodes come from the rows of their forms, and a
/// missing form or one of another shape fails generation, naming it.
#[test]
fn direct_opcodes_come_from_the_database() {
    use jitforge_dbgen::{opcodes::generate_opcodes, parse::parse_database};
    let text = std::fs::read_to_string(jitforge_dbgen::database_path()).expect("database exists");
    let rows = parse_database(&text).expect("database parses");
    let generated = generate_opcodes(&rows).expect("every form is there");
    assert!(generated.contains(
        "pub(crate) const MOV_RM_R: LegacyOpcode = LegacyOpcode { escape_0f: false, byte: 0x89 };"
    ));
    assert!(generated.contains(
        "pub(crate) const IMUL_R_RM: LegacyOpcode = LegacyOpcode { escape_0f: true, byte: 0xAF };"
    ));

    // `sub r64, r64/m` as 2A while `sub r32, r32/m` stays 2B.
    let split = generate_opcodes(&edited(&text, "sub | r64:rw r64/m:r", "2b", "2a")).unwrap_err();
    assert!(
        split.contains("SUB_R_RM") && split.contains("REX.W"),
        "{split}"
    );
    // A missing form, a mandatory prefix, another map: errors naming the form.
    let missing =
        generate_opcodes(&edited(&text, "imul | r32:rw r32/m:r", "r32/m:r", "r32:r")).unwrap_err();
    assert!(missing.contains("`imul r32, r32/m`"), "{missing}");
    let prefixed =
        generate_opcodes(&edited(&text, "movups | xmm/m:w xmm:r", "np", "66")).unwrap_err();
    assert!(
        prefixed.contains("`movups xmm/m, xmm`") && prefixed.contains("prefix 66"),
        "{prefixed}"
    );
    let mapped =
        generate_opcodes(&edited(&text, "movups | xmm:w xmm/m:r", "0f", "0f38")).unwrap_err();
    assert!(
        mapped.contains("`movups xmm, xmm/m`") && mapped.contains("map 0f38"),
        "{mapped}"
    );
    let wide = generate_opcodes(&edited(&text, "add | r64/m:rw r64:r", "rex.w ", "")).unwrap_err();
    assert!(
        wide.contains("`add r64/m, r64`") && wide.contains("without REX.W"),
        "{wide}"
    );
}

/// The single opcode bytes of branch relaxation, the alignment NOPs, the
/// encoders' `nop`, REX2 `push`/`pop` and `fwait` rules and the JIT memory's
/// `int3` fill come from the rows of their forms; a form that is
/// missing, of another encoding, or of another byte than its fellows fails
/// generation, naming it.
#[test]
fn byte_constants_come_from_the_database() {
    use jitforge_dbgen::{opcodes::generate_opcodes, parse::parse_database};
    let text = std::fs::read_to_string(jitforge_dbgen::database_path()).expect("database exists");
    let generated = generate_opcodes(&parse_database(&text).expect("database parses"))
        .expect("every form is there");
    for constant in [
        "JMP_REL8: u8 = 0xEB;",
        "JMP_REL32: u8 = 0xE9;",
        "CALL_REL32: u8 = 0xE8;",
        "JO_REL8: u8 = 0x70;",
        "JG_0F_REL32: u8 = 0x8F;",
        "NOP: u8 = 0x90;",
        "NOP_0F_RM: u8 = 0x1F;",
        "PUSH_R: u8 = 0x50;",
        "POP_R: u8 = 0x58;",
        "WAIT: u8 = 0x9B;",
        "INT3: u8 = 0xCC;",
        "XSAVE_0F_M: u8 = 0xAE;",
        "XSAVES_0F_M: u8 = 0xC7;",
    ] {
        assert!(generated.contains(constant), "{constant}");
    }
    // `jmp rel8` as EC in 64-bit mode while the 32-bit form stays EB.
    let split = generate_opcodes(&edited(&text, "jmp | rel8:r | o64 eb", "eb", "ec")).unwrap_err();
    assert!(
        split.contains("JMP_REL8") && split.contains("opcode ec") && split.contains("has eb"),
        "{split}"
    );
    // xchg's `90+r` no longer on nop's byte: the encoders' rule would be wrong.
    let xchg =
        generate_opcodes(&edited(&text, "xchg | r64.o:rw rax:rw", "90+r", "91+r")).unwrap_err();
    assert!(
        xchg.contains("`xchg r64.o, rax`") && xchg.contains("NOP"),
        "{xchg}"
    );
    // A prefix on `jne rel32`: relaxation writes none, so the form is missing.
    let prefixed = generate_opcodes(&edited(
        &text,
        "jne | rel32:r | o64 0f 85",
        "o64 0f",
        "o64 f2 0f",
    ))
    .unwrap_err();
    assert!(
        prefixed.contains("no form `jne rel32` encoded `o64 0f xx`")
            && prefixed.contains("src/builder/relax.rs"),
        "{prefixed}"
    );
    // `nop r16/m` with another ModRM digit than the /0 the NOPs' ModRM bytes hold.
    let digit =
        generate_opcodes(&edited(&text, "nop | r16/m | o16 0f 1f /0", "/0", "/1")).unwrap_err();
    assert!(
        digit.contains("`nop r16/m` encoded `o16 0f xx /0`"),
        "{digit}"
    );
    // `pop r64` moved off `58+r`: the encoder's REX2 rule compares one byte.
    let pop = generate_opcodes(&edited(&text, "pop | r64.o:w", "58+r", "59+r")).unwrap_err();
    assert!(
        pop.contains("POP_R") && pop.contains("opcode 59") && pop.contains("has 58"),
        "{pop}"
    );
    // `xsaveopt` on another ModRM digit than the encoder's REX2 rule names.
    let xsaveopt = generate_opcodes(&edited(&text, "xsaveopt | m:rw", "/6", "/7")).unwrap_err();
    assert!(
        xsaveopt.contains("no form `xsaveopt m` encoded `np 0f xx /6`"),
        "{xsaveopt}"
    );
    // `int3` with a ModRM byte is not the one byte JIT memory is filled with.
    let int3 = generate_opcodes(&edited(&text, "int3 |", "cc", "cc /0")).unwrap_err();
    assert!(
        int3.contains("no form `int3` encoded `xx`") && int3.contains("INT3"),
        "{int3}"
    );
}
