//! The coverage report (`jitforge isa --coverage`) against the database:
//! its totals are the database's form counts per mode, every form encodes,
//! and the APX forms are attributed to the oracle that checks them.

use jitforge::Arch;
use jitforge::x86::db::modes;
use jitforge::x86::text::coverage::{self, LLVM22};
use jitforge::x86::*;

#[test]
fn coverage_totals_match_the_database() {
    for (arch, bit) in [(Arch::X64, modes::M64), (Arch::X86, modes::M32)] {
        let in_db: usize = Mnemonic::ALL
            .iter()
            .map(|m| m.forms().iter().filter(|f| f.modes() & bit != 0).count())
            .sum();
        let apx_in_db: usize = Mnemonic::ALL
            .iter()
            .map(|m| {
                m.forms()
                    .iter()
                    .filter(|f| f.modes() & bit != 0 && f.is_apx())
                    .count()
            })
            .sum();
        let rows = coverage::coverage(arch);
        let total: usize = rows.iter().map(|r| r.forms).sum();
        let encoded: usize = rows.iter().map(|r| r.encoded).sum();
        let missing: Vec<&String> = rows.iter().flat_map(|r| &r.missing).collect();
        println!(
            "{}-bit: {total} forms in {} groups, {encoded} encoded",
            arch.bits(),
            rows.len()
        );
        assert_eq!(total, in_db, "{}-bit total", arch.bits());
        assert!(missing.is_empty(), "forms that do not encode: {missing:?}");
        assert_eq!(encoded, total);
        for r in &rows {
            assert_eq!(r.forms, r.encoded + r.missing.len(), "{}", r.group);
            assert!(r.verified <= r.encoded, "{}", r.group);
        }
        let apx: usize = rows
            .iter()
            .filter(|r| r.oracle == LLVM22)
            .map(|r| r.forms)
            .sum();
        assert_eq!(apx, apx_in_db, "APX forms are llvm-mc-22's");
        if arch == Arch::X86 {
            assert_eq!(apx, 0, "APX is 64-bit only");
        }
    }
    let text = coverage::coverage_text();
    assert!(text.contains("missing: 0\n"), "{text}");
}
