//! Whatever IR text it is given, the Compiler returns a result or an error;
//! it never panics. Valid functions are mutated token by token (the tokens
//! of a pool of real programs), compiled, and, when they compile, not run.

use jitforge::compiler::run::compile_listing;

const SEEDS: &[&str] = &[
    "func sum(i64, i64) -> (i64) sysv64 {\n  gp64 %p, %n, %s, %i\n  labels .loop, .done\n  entry %p, %n\n  xor %s, %s\n  xor %i, %i\n  test %n, %n\n  je .done\n.loop:\n  add %s, qword [%p + %i*8]\n  inc %i\n  cmp %i, %n\n  jne .loop\n.done:\n  ret %s\n}\n",
    "func mix(f64, i64) -> (f64) sysv64 {\n  vec128 %x, %y\n  gp64 %n, %t\n  entry %x, %n\n  cvtsi2sd %y, %n\n  addsd %x, %y\n  mov %t, %n\n  shl %t, 3\n  ret %x\n}\n",
    "func call(i64) -> (i64) sysv64 {\n  gp64 %a, %r\n  sig sig0 = (i64) -> (i64) sysv64\n  entry %a\n  invoke sig0, .call, (%a) -> (%r)\n  add %r, %a\n  ret %r\n}\n",
    "func pick(i64) -> (i64) win64 {\n  gp64 %i, %r\n  labels .a, .b, .end\n  jumptable jt0 = [.a, .b]\n  entry %i\n  jumpind %i, jt0\n.a:\n  mov %r, 1\n  jump .end\n.b:\n  mov %r, 2\n.end:\n  ret %r\n}\n",
];

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

fn mutate(rng: &mut Rng, text: &str, pool: &[&str]) -> String {
    let mut tokens: Vec<String> = text
        .split_inclusive([' ', '\n', ','])
        .map(str::to_string)
        .collect();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(tokens.len());
        match rng.below(4) {
            0 => tokens[i] = pool[rng.below(pool.len())].to_string(),
            1 => {
                tokens.remove(i.min(tokens.len() - 1));
            }
            2 => {
                let t = tokens[rng.below(tokens.len())].clone();
                tokens.insert(i, t);
            }
            _ => {
                let j = rng.below(tokens.len());
                tokens.swap(i, j);
            }
        }
        if tokens.is_empty() {
            break;
        }
    }
    tokens.concat()
}

#[test]
fn mutated_ir_never_panics_the_compiler() {
    let pool: Vec<&str> = SEEDS
        .iter()
        .flat_map(|s| s.split_inclusive([' ', '\n', ',']))
        .collect();
    let cases = rng::cases("COMPILER_ROBUSTNESS_CASES", 400);
    let mut rng = Rng(7);
    let (mut compiled, mut rejected) = (0, 0);
    for case in 0..cases {
        let seed = SEEDS[case % SEEDS.len()];
        let text = mutate(&mut rng, seed, &pool);
        let result = std::panic::catch_unwind(|| compile_listing(&text).is_ok());
        match result {
            Ok(true) => compiled += 1,
            Ok(false) => rejected += 1,
            Err(_) => panic!("case {case} panicked on:\n{text}"),
        }
    }
    println!("{cases} mutated modules: {compiled} compiled, {rejected} rejected with an error");
    assert!(compiled > 0 && rejected > 0);
}

/// Instructions with implicit registers given any operands through the
/// dynamic path (bound or not, right or wrong count, class and size, with
/// or without a rep count or mask) return a result or an error, and a
/// function that accepted them compiles or fails with an error.
#[test]
fn implicit_register_operands_never_panic() {
    use jitforge::compiler::{Compiler, Signature, ValType, X86Target};
    use jitforge::x86::*;
    use jitforge::{Arch, CodeHolder};
    let mnemonics = [
        Mnemonic::Div,
        Mnemonic::Idiv,
        Mnemonic::Mul,
        Mnemonic::Imul,
        Mnemonic::Cqo,
        Mnemonic::Cdq,
        Mnemonic::Cwd,
        Mnemonic::Cbw,
        Mnemonic::Rdtsc,
        Mnemonic::Rdtscp,
        Mnemonic::Cpuid,
        Mnemonic::Xgetbv,
        Mnemonic::Cmpxchg,
        Mnemonic::Cmpxchg16b,
        Mnemonic::Movsb,
        Mnemonic::Movsq,
        Mnemonic::Stosb,
        Mnemonic::Lodsb,
        Mnemonic::Scasb,
        Mnemonic::Cmpsb,
        Mnemonic::Mulx,
        Mnemonic::Blendvps,
        Mnemonic::Pcmpestri,
        Mnemonic::Shl,
        Mnemonic::Lahf,
    ];
    let cases = rng::cases("COMPILER_ROBUSTNESS_CASES", 400);
    let mut rng = Rng(11);
    let (mut accepted, mut compiled) = (0, 0);
    for case in 0..cases {
        let mut local = Rng(rng.next());
        let result = std::panic::catch_unwind(move || {
            let rng = &mut local;
            let mut code = CodeHolder::new(Arch::X64);
            let mut cc = Compiler::new(&mut code);
            let sig = Signature::new(X86Target::SYSV64, &[ValType::I64], &[ValType::I64]);
            cc.add_func("f", sig).expect("add_func");
            let p = cc.new_gp64("p");
            cc.set_arg(0, p).expect("set_arg");
            let pool: Vec<Operand> = vec![
                cc.new_gp64("a").into(),
                cc.new_gp64("b").into(),
                cc.new_gp32("c").into(),
                cc.new_gp16("d").into(),
                cc.new_gp8("e").into(),
                cc.new_xmm("x").into(),
                cc.new_k("k").into(),
                p.into(),
                rax.into(),
                Operand::Imm(7),
                qword_ptr(p).into(),
                xmmword_ptr(p).into(),
            ];
            let mut ok = 0;
            for _ in 0..4 {
                let m = mnemonics[rng.below(mnemonics.len())];
                let n = rng.below(6);
                let ops: Vec<Operand> = (0..n).map(|_| pool[rng.below(pool.len())]).collect();
                match rng.below(4) {
                    0 => {
                        let count = match pool[rng.below(pool.len())] {
                            Operand::Reg(r) => r,
                            _ => rcx.reg(),
                        };
                        cc.rep(count);
                    }
                    1 => {
                        cc.options(InstOptions::LOCK);
                    }
                    _ => {}
                }
                if cc.emit(m, &ops).is_ok() {
                    ok += 1;
                }
            }
            cc.ret(&[p.into()]).expect("ret");
            (ok, cc.end_func().is_ok())
        });
        match result {
            Ok((ok, done)) => {
                accepted += ok;
                compiled += done as usize;
            }
            Err(_) => panic!("case {case} panicked"),
        }
    }
    println!("{cases} functions: {accepted} instructions accepted, {compiled} functions compiled");
    assert!(accepted > 0 && compiled > 0);
}
