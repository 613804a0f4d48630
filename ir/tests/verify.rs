//! Verifier errors, one test per kind, with positions.

use jitforge_ir::mock::MockX86;
use jitforge_ir::text::parse_module_with_positions;
use jitforge_ir::verify::{VerifyError, VerifyErrorKind, verify};
use jitforge_ir::*;

/// Parses one function and verifies it; returns the errors as (source line, kind).
fn errors(src: &str) -> Vec<(u32, VerifyErrorKind)> {
    let t = MockX86::new();
    let p = parse_module_with_positions(src, &t).unwrap().remove(0);
    match verify(&p.func, &t) {
        Ok(()) => vec![],
        Err(v) => v
            .into_iter()
            .map(|VerifyError { inst, kind }| {
                (
                    inst.map(|i| p.inst_lines[i.as_u32() as usize]).unwrap_or(0),
                    kind,
                )
            })
            .collect(),
    }
}

#[test]
fn clean_function_has_no_errors() {
    assert_eq!(
        errors(
            "func f(i64) -> (i64) sysv64 {
  gp64 %a, %b
  entry %a
  mov %b, 1
  cmp %a, 0
  je .z
  add %b, %a
.z:
  ret %b
}"
        ),
        vec![]
    );
}

#[test]
fn label_bound_twice() {
    let e = errors("func f() -> () sysv64 {\n  entry\n.a:\n  nop\n.a:\n  ret\n}");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, 5);
    assert!(matches!(e[0].1, VerifyErrorKind::LabelBoundTwice { .. }));
}

#[test]
fn label_never_bound() {
    let e = errors("func f() -> () sysv64 {\n  entry\n  jump .nowhere\n}");
    assert_eq!(
        e,
        vec![(
            3,
            VerifyErrorKind::LabelNeverBound {
                label: Label::from_u32(0)
            }
        )]
    );
    // A label used only as a callee or an address may live in another function.
    let e = errors(
        "func f() -> () sysv64 {\n  gp64 %p\n  sig sig0 = () -> () sysv64\n  entry\n  invoke sig0, .other, () -> ()\n  lea %p, [.data]\n  ret\n}",
    );
    assert_eq!(e, vec![]);
}

#[test]
fn use_without_definition_on_some_path() {
    let e = errors(
        "func f(i64) -> (i64) sysv64 {
  gp64 %a, %b
  entry %a
  cmp %a, 0
  je .skip
  mov %b, 1
.skip:
  add %a, %b
  ret %a
}",
    );
    assert_eq!(
        e,
        vec![(
            8,
            VerifyErrorKind::UndefinedUse {
                vreg: VReg::from_u32(1),
                operand: 1
            }
        )]
    );
}

#[test]
fn loop_carried_definitions_are_fine_and_idioms_are_writes() {
    let e = errors(
        "func f(i64) -> (i64) sysv64 {
  gp64 %n, %s, %i
  gp8 %c
  entry %n
  xor %s, %s
  xor %i, %i
  sete %c
.l:
  add %s, %i
  add %i, 1
  cmp %i, %n
  jne .l
  ret %s
}",
    );
    assert_eq!(e, vec![]);
}

#[test]
fn use_in_address_and_pinned_registers() {
    let e = errors(
        "func f() -> (i64) sysv64 {
  gp64 %ctx, %p, %r
  pin %ctx, r15
  entry
  mov %r, qword [%ctx + 8]
  mov %r, qword [%p]
  ret %r
}",
    );
    assert_eq!(
        e,
        vec![(
            6,
            VerifyErrorKind::UndefinedUse {
                vreg: VReg::from_u32(1),
                operand: 1
            }
        )]
    );
}

#[test]
fn wrong_operand_count_and_class() {
    let e = errors(
        "func f() -> () sysv64 {
  gp64 %a
  vec128 %x
  entry
  mov %a
  mov %a, %x
  copy .l, %a
.l:
  ret
}",
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert_eq!(e[0].0, 5);
    assert!(matches!(
        e[0].1,
        VerifyErrorKind::Operands(FactsError::OperandCount {
            expected: 2,
            found: 1
        })
    ));
    assert_eq!(e[1].0, 6);
    assert!(matches!(
        e[1].1,
        VerifyErrorKind::Operands(FactsError::OperandKind { index: 1, .. })
    ));
    assert_eq!(e[2].0, 7);
    assert!(matches!(
        e[2].1,
        VerifyErrorKind::Operands(FactsError::Pseudo(_))
    ));
}

#[test]
fn falls_off_the_end() {
    let e = errors("func f() -> () sysv64 {\n  gp64 %a\n  entry\n  mov %a, 1\n}");
    assert_eq!(e, vec![(4, VerifyErrorKind::FallsOffEnd)]);
    let e = errors(
        "func f() -> () sysv64 {\n  gp64 %a\n  entry\n  cmp %a, 1\n  je .x\n.x:\n  jump .x\n}",
    );
    assert!(
        e.iter().all(|x| x.1 != VerifyErrorKind::FallsOffEnd),
        "{e:?}"
    );
}

#[test]
fn signature_mismatches() {
    let e = errors(
        "func f(i64, f64) -> (i64) sysv64 {
  gp64 %a, %b
  sig sig0 = (i64) -> () sysv64
  entry %a, %b
  invoke sig0, 0x10, (%a, %b) -> ()
  ret
}",
    );
    let kinds: Vec<_> = e.iter().map(|x| (x.0, x.1.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (
                4,
                VerifyErrorKind::SignatureClass {
                    operand: 1,
                    expected: ValType::F64
                }
            ),
            (
                5,
                VerifyErrorKind::SignatureCount {
                    expected: 1,
                    found: 2
                }
            ),
            (
                6,
                VerifyErrorKind::SignatureCount {
                    expected: 1,
                    found: 0
                }
            ),
        ]
    );
}

#[test]
fn entry_misplaced_and_foreign_vreg() {
    let t = MockX86::new();
    let mut f = Function::new("f", Signature::new(CallConvId(0), &[], &[]));
    f.inst(t.id("nop"), &[]).unwrap();
    f.entry(&[]).unwrap();
    // A virtual register of another function.
    f.inst(
        t.id("mov"),
        &[Operand::v(VReg::from_u32(7)), Operand::Imm(1)],
    )
    .unwrap();
    f.ret(&[]).unwrap();
    let e = verify(&f, &t).unwrap_err();
    assert_eq!(e[0].kind, VerifyErrorKind::EntryMisplaced);
    assert_eq!(e[0].inst, Some(Inst::from_u32(1)));
    assert_eq!(
        e[1].kind,
        VerifyErrorKind::UnknownEntity {
            operand: 0,
            what: "virtual register"
        }
    );
    assert!(e[1].to_string().contains("instruction 2"));
    // The function's own label may be bound before its entry.
    assert_eq!(
        errors("func f() -> () sysv64 {\n.f:\n  entry\n  ret\n}"),
        vec![]
    );
}

#[test]
fn fixed_register_of_another_class() {
    let e = errors(
        "func f() -> () sysv64 {\n  gp64 %a\n  lowered out_args 0 call_align 16 ret_pop 0\n  entry %a@xmm0\n  ret\n}",
    );
    assert_eq!(e, vec![(4, VerifyErrorKind::FixedClass { operand: 0 })]);
}

#[test]
fn pins_conflict_and_clobbered_by_calls() {
    let e = errors(
        "func f() -> () sysv64 {
  gp64 %ctx, %other
  pin %ctx, r15
  pin %other, r15
  sig sig0 = () -> () sysv64
  sig sig1 = () -> () win64
  entry
  invoke sig0, 0x10, () -> ()
  ret
}",
    );
    assert_eq!(
        e,
        vec![(0, VerifyErrorKind::PinConflict { preg: PReg::gp(15) })]
    );
    // rsi is callee-saved on Windows x64 but not on System V.
    let e = errors(
        "func f() -> () sysv64 {
  gp64 %ctx
  pin %ctx, rsi
  sig sig0 = () -> () win64
  sig sig1 = () -> () sysv64
  entry
  invoke sig0, 0x10, () -> ()
  invoke sig1, 0x10, () -> ()
  ret
}",
    );
    assert_eq!(
        e,
        vec![(8, VerifyErrorKind::PinClobbered { preg: PReg::gp(6) })]
    );
}
