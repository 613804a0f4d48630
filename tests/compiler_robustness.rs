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

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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
    let cases: usize = std::env::var("COMPILER_ROBUSTNESS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
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
