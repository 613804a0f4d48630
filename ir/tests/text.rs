//! Text format: round trip on generated functions, parse errors with
//! positions, and no panic on any input.

use jitforge_ir::mock::MockX86;
use jitforge_ir::text::*;
use jitforge_ir::*;
use proptest::prelude::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn wide(&mut self) -> i64 {
        match self.below(6) {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -(self.below(5000) as i64),
            3 => self.below(5000) as i64,
            _ => ((self.next() << 31) ^ self.next()) as i64,
        }
    }
}

const NAMES: [&str; 10] = [
    "a",
    "sum",
    "tmp",
    "tmp",
    "x y",
    "q\"uote",
    "3",
    "_i",
    "ünï",
    "line\nbreak",
];
const VIEWS: [View; 9] = [
    View::FULL,
    View::B8,
    View::H8,
    View::W16,
    View::D32,
    View::Q64,
    View::X128,
    View::Y256,
    View::Z512,
];

fn name(r: &mut Rng) -> Option<String> {
    match r.below(4) {
        0 => None,
        1 => Some(format!("n{}", r.below(1000))),
        _ => Some(r.pick(&NAMES).to_string()),
    }
}

fn reg(r: &mut Rng, nv: u32) -> Reg {
    if r.below(4) == 0 || nv == 0 {
        let class = RegClass(r.below(6) as u8);
        Reg::Phys(PReg::new(class, r.below(32) as u8), r.pick(&VIEWS))
    } else {
        Reg::Virt(VReg::from_u32(r.below(nv as u64) as u32), r.pick(&VIEWS))
    }
}

fn operand(r: &mut Rng, f: &mut Function, nv: u32, nl: u32) -> Operand {
    match r.below(6) {
        0 | 1 => Operand::Reg(reg(r, nv)),
        2 if nv > 0 => Operand::Fixed(
            VReg::from_u32(r.below(nv as u64) as u32),
            PReg::new(RegClass(r.below(5) as u8), r.below(32) as u8),
        ),
        3 => {
            let base = match r.below(8) {
                0 => MemBase::None,
                1 | 2 => MemBase::Reg(reg(r, nv)),
                3 if f.stack_slots().len() > 0 => MemBase::Slot(StackSlot::from_u32(
                    r.below(f.stack_slots().len() as u64) as u32,
                )),
                4 if f.num_constants() > 0 => {
                    MemBase::Const(Constant::from_u32(r.below(f.num_constants() as u64) as u32))
                }
                5 if nl > 0 => MemBase::Label(Label::from_u32(r.below(nl as u64) as u32)),
                6 if f.num_jump_tables() > 0 => MemBase::JumpTable(JumpTable::from_u32(
                    r.below(f.num_jump_tables() as u64) as u32,
                )),
                6 => MemBase::InArgs,
                _ => MemBase::OutArgs,
            };
            let mut m = Mem::new(base, 0, r.pick(&[0, 1, 2, 4, 8, 10, 16, 32, 64, 3, 128]));
            m.disp = match r.below(4) {
                0 => 0,
                1 => i32::MIN,
                2 => -(r.below(100_000) as i32),
                _ => r.next() as i32,
            };
            if r.coin() {
                m = m.with_index(reg(r, nv), r.pick(&[1, 2, 4, 8]));
            }
            Operand::Mem(m)
        }
        4 if nl > 0 => Operand::Label(Label::from_u32(r.below(nl as u64) as u32)),
        _ => Operand::Imm(r.wide()),
    }
}

fn valtypes(r: &mut Rng, max: u64) -> Vec<ValType> {
    (0..r.below(max + 1))
        .map(|_| r.pick(&ValType::ALL))
        .collect()
}

fn signature(r: &mut Rng) -> Signature {
    let p = valtypes(r, 5);
    let q = valtypes(r, 2);
    let mut s = Signature::new(CallConvId(r.below(8) as u16), &p, &q);
    s.varargs = r.below(4) == 0;
    s
}

/// A random function (any shape the data structure can hold, not
/// necessarily a valid program).
fn gen_function(seed: u64, size: u64) -> Function {
    let t = MockX86::new();
    let mut r = Rng(seed);
    let fname = if r.coin() {
        "f".to_string()
    } else {
        "odd name".to_string()
    };
    let sig = signature(&mut r);
    let mut f = Function::new(&fname, sig);
    let nv = r.below(size + 1) as u32;
    for _ in 0..nv {
        let class = RegClass(r.below(6) as u8);
        let size = r.pick(&[1u16, 2, 4, 8, 16, 32, 64, 10, 0]);
        let n = name(&mut r);
        f.new_vreg(class, size, n.as_deref());
    }
    let nl = r.below(size / 2 + 1) as u32;
    for _ in 0..nl {
        let n = name(&mut r);
        f.new_label(n.as_deref());
    }
    for _ in 0..r.below(3) {
        let s = r.below(100) as u32;
        f.new_stack_slot(s, 1 << r.below(7));
    }
    for _ in 0..r.below(3) {
        let bytes: Vec<u8> = (0..r.below(20)).map(|_| r.next() as u8).collect();
        f.new_constant(&bytes, 1 << r.below(7));
    }
    let nsig = r.below(3);
    for _ in 0..nsig {
        let s = signature(&mut r);
        f.import_sig(s);
    }
    if nl > 0 {
        for _ in 0..r.below(3) {
            let ls: Vec<Label> = (0..r.below(5))
                .map(|_| Label::from_u32(r.below(nl as u64) as u32))
                .collect();
            f.new_jump_table(&ls);
        }
    }
    if nv > 0 && r.coin() {
        f.pin(VReg::from_u32(0), PReg::gp(15));
    }
    if r.below(3) == 0 {
        f.frame = Some(FrameInfo {
            out_args: r.below(100) as u32,
            call_align: 16,
            ret_pop: r.below(3) as u32 * 4,
        });
    }
    let ninst = r.below(size * 2 + 1);
    for _ in 0..ninst {
        let nops = r.below(4);
        let mut ops: Vec<Operand> = (0..nops).map(|_| operand(&mut r, &mut f, nv, nl)).collect();
        let k = r.below(12);
        let res = match k {
            0 if nl > 0 => f.bind(Label::from_u32(r.below(nl as u64) as u32)),
            1 => f.entry(&ops),
            2 => f.ret(&ops),
            3 | 4 if nsig > 0 => {
                let s = SigRef::from_u32(r.below(nsig) as u32);
                let callee = operand(&mut r, &mut f, nv, nl);
                if k == 3 {
                    let rets: Vec<Operand> = (0..r.below(3))
                        .map(|_| operand(&mut r, &mut f, nv, nl))
                        .collect();
                    f.call(s, callee, &ops, &rets)
                } else {
                    f.tail_jump(s, callee, &ops)
                }
            }
            5 => {
                ops.truncate(2);
                f.push(InstKind::Copy, &ops)
            }
            6 => f.push(InstKind::Addr, &ops),
            7 => f.push(InstKind::Jump, &ops),
            8 => {
                ops.truncate(1);
                let jt = if f.num_jump_tables() > 0 && r.coin() {
                    Some(JumpTable::from_u32(
                        r.below(f.num_jump_tables() as u64) as u32
                    ))
                } else {
                    None
                };
                f.jump_indirect_ops(&ops, jt)
            }
            9 => f.inst(TargetInst(999 + r.below(3) as u32), &ops),
            _ => {
                let id = t
                    .inst_by_name(
                        r.pick(&["mov", "add", "jne", "lea", "nop", "vaddps", "shl", "div"]),
                    )
                    .unwrap();
                f.inst(id, &ops)
            }
        };
        res.unwrap();
    }
    f
}

trait JumpOps {
    fn jump_indirect_ops(
        &mut self,
        ops: &[Operand],
        jt: Option<JumpTable>,
    ) -> Result<Inst, BuildError>;
}
impl JumpOps for Function {
    fn jump_indirect_ops(
        &mut self,
        ops: &[Operand],
        jt: Option<JumpTable>,
    ) -> Result<Inst, BuildError> {
        self.push(InstKind::JumpIndirect(jt.into()), ops)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn print_parse_round_trip(seed in any::<u64>(), size in 0u64..24) {
        let t = MockX86::new();
        let f = gen_function(seed, size);
        let text = print_function(&f, &t);
        let g = parse_function(&text, &t);
        prop_assert!(g.is_ok(), "{}\n{:?}", text, g.err());
        let g = g.unwrap();
        prop_assert!(f == g, "{}\n---\n{}", text, print_function(&g, &t));
        prop_assert_eq!(print_function(&g, &t), text);
    }

    #[test]
    fn parse_never_panics_on_token_soup(parts in proptest::collection::vec(0usize..40, 0..60)) {
        const SOUP: [&str; 40] = [
            "func", "f", "(", ")", "->", "i64", "sysv64", "{", "}", "\n", "gp64", "%a", "%b", ",",
            "[", "]", "+", "-", "*", "8", "0xffffffffffffffffff", "qword", ".l", ":", "entry",
            "ret", "invoke", "sig0", "sig", "=", "jt0", "jumptable", "\"s", "\"ok\"", "@", "!gp3",
            ".d", "$0", "#0", "...",
        ];
        let src: String = parts.iter().map(|&i| SOUP[i]).collect::<Vec<_>>().join(" ");
        let t = MockX86::new();
        let _ = parse_module(&src, &t);
    }

    #[test]
    fn parse_never_panics_on_random_strings(s in ".{0,200}") {
        let t = MockX86::new();
        let _ = parse_module(&s, &t);
        fuzz_text(s.as_bytes());
    }

    #[test]
    fn parse_never_panics_on_mutated_text(seed in any::<u64>(), edits in proptest::collection::vec((any::<u16>(), any::<char>(), 0u8..3), 1..8)) {
        let t = MockX86::new();
        let f = gen_function(seed, 8);
        let mut chars: Vec<char> = print_function(&f, &t).chars().collect();
        for (pos, c, op) in edits {
            if chars.is_empty() { break; }
            let p = pos as usize % chars.len();
            match op {
                0 => { chars.remove(p); }
                1 => chars.insert(p, c),
                _ => chars[p] = c,
            }
        }
        let s: String = chars.into_iter().collect();
        fuzz_text(s.as_bytes());
        if let Ok(fs) = parse_module(&s, &t) {
            // Whatever parses must print and parse back to itself.
            for g in fs {
                let again = parse_function(&print_function(&g, &t), &t).unwrap();
                prop_assert!(again == g);
            }
        }
    }
}

#[test]
fn errors_have_line_and_column() {
    let t = MockX86::new();
    let e = parse_function("func f() -> () sysv64 {\n  entry\n  mov %nope, 1\n}", &t).unwrap_err();
    assert_eq!((e.line, e.col), (3, 7));
    assert_eq!(e.kind, ParseErrorKind::Undeclared("%nope".into()));
    assert_eq!(e.to_string(), "3:7: undeclared %nope");
    let e = parse_function("func f() -> () sysv64 {\n  frob 1\n}", &t).unwrap_err();
    assert_eq!(
        (e.line, e.col, e.kind),
        (2, 3, ParseErrorKind::UnknownInst("frob".into()))
    );
    let e = parse_function(
        "func f() -> () sysv64 {\n  gp64 %a\n  mov %a, 99999999999999999999\n}",
        &t,
    )
    .unwrap_err();
    assert_eq!((e.line, e.kind), (3, ParseErrorKind::NumberOverflow));
    let e = parse_function("func f() -> () nosuch {\n}", &t).unwrap_err();
    assert_eq!((e.line, e.col), (1, 16));
    let e = parse_function("func f() -> () sysv64 {\n  gp64 %a\n  mov %a, 1 2\n}", &t).unwrap_err();
    assert_eq!(
        (e.line, e.col, e.kind),
        (3, 13, ParseErrorKind::Expected("end of line"))
    );
    let e = parse_function("func f() -> () sysv64 {\n  entry\n", &t).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Expected("'}'"));
    let e = parse_function("func f() -> () sysv64 {\n  gp64 %a \"unterminated\n}", &t).unwrap_err();
    assert_eq!((e.line, e.kind), (2, ParseErrorKind::BadString));
}

#[test]
fn readable_names_and_views() {
    let t = MockX86::new();
    let mut f = Function::new("f", Signature::new(CallConvId(0), &[], &[]));
    let a = f.new_gp(8, "acc");
    let b = f.new_gp(8, "tmp");
    let c = f.new_gp(8, "tmp");
    let d = f.new_vreg(RegClass::GP, 8, None);
    f.entry(&[]).unwrap();
    f.inst(
        t.id("mov"),
        &[
            Operand::view(a, View::B8),
            Operand::p(PReg::gp(0), View::H8),
        ],
    )
    .unwrap();
    f.inst(t.id("add"), &[Operand::v(b), Operand::v(c)])
        .unwrap();
    f.inst(
        t.id("mov"),
        &[
            Operand::v(d),
            Operand::Mem(Mem::vreg(a, -8, 8).with_index(Reg::v(b), 4)),
        ],
    )
    .unwrap();
    f.ret(&[]).unwrap();
    let s = print_function(&f, &t);
    assert_eq!(
        s,
        "func f() -> () sysv64 {
  gp64 %acc, %1 \"tmp\", %2 \"tmp\", %3
  entry
  mov %acc.b, ah
  add %1, %2
  mov %3, qword [%acc + %1*4 - 8]
  ret
}
"
    );
    assert_eq!(parse_function(&s, &t).unwrap(), f);
}

#[test]
fn several_functions_in_a_module() {
    let t = MockX86::new();
    let src = "func a() -> () sysv64 {\n  entry\n  ret\n}\n\n; comment\nfunc b() -> () win64 {\n  entry\n  ret\n}\n";
    let m = parse_module(src, &t).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].name(), "b");
    assert_eq!(parse_module(&print_module(&m, &t), &t).unwrap(), m);
    assert!(parse_function(src, &t).is_err());
}

/// A long fuzz run without cargo-fuzz: `IR_FUZZ_ITERS=1000000 cargo test -p
/// jitforge-ir --release --test text long_fuzz -- --ignored --nocapture`.
/// Generated functions are printed, mutated (deleted, inserted, replaced
/// characters, spliced lines) and fed to [`fuzz_text`].
#[test]
#[ignore]
fn long_fuzz() {
    let iters: u64 = std::env::var("IR_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let t = MockX86::new();
    let mut r = Rng(0x5eed);
    let mut parsed = 0u64;
    const CHARS: [char; 16] = [
        '%', '.', '$', '#', '@', '!', '[', ']', ',', '-', '0', 'x', '\n', ' ', '"', '*',
    ];
    for k in 0..iters {
        let f = gen_function(r.next() ^ k, r.below(16));
        let text = print_function(&f, &t);
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..1 + r.below(6) {
            if chars.is_empty() {
                break;
            }
            let p = r.below(chars.len() as u64) as usize;
            match r.below(4) {
                0 => {
                    chars.remove(p);
                }
                1 => chars.insert(p, r.pick(&CHARS)),
                2 => chars[p] = r.pick(&CHARS),
                _ => {
                    let q = r.below(chars.len() as u64) as usize;
                    let (a, b) = (p.min(q), p.max(q));
                    let piece: Vec<char> = chars[a..b.min(a + 40)].to_vec();
                    let at = r.below(chars.len() as u64) as usize;
                    for (i, c) in piece.into_iter().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
            }
        }
        let s: String = chars.into_iter().collect();
        if parse_module(&s, &t).is_ok() {
            parsed += 1;
        }
        fuzz_text(s.as_bytes());
    }
    println!("{iters} inputs, {parsed} parsed");
}
