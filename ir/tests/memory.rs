//! Memory and speed budget: compact instructions, no heap traffic when a
//! function is rebuilt in a cleared one.

use jitforge_ir::mock::MockX86;
use jitforge_ir::*;

#[test]
fn compact_layout() {
    assert_eq!(core::mem::size_of::<InstData>(), 16);
    assert!(
        core::mem::size_of::<Operand>() <= 24,
        "{}",
        core::mem::size_of::<Operand>()
    );
    assert!(core::mem::size_of::<VRegData>() <= 12);
}

/// Builds workload C's function k (v0 = x, v1 = y, v2 = x ^ y, v3 = x + 1,
/// 20 operations, return v0 ^ v1 ^ v2 ^ v3) into `f`.
fn build_c(f: &mut Function, t: &MockX86, k: u64) {
    let sig = Signature::new(
        CallConvId(0),
        &[ValType::I64, ValType::I64],
        &[ValType::I64],
    );
    f.clear("f", sig);
    let v: Vec<VReg> = (0..4).map(|_| f.new_vreg(RegClass::GP, 8, None)).collect();
    let ops = [t.id("add"), t.id("sub"), t.id("xor"), t.id("imul")];
    let (mov, add, xor) = (t.id("mov"), t.id("add"), t.id("xor"));
    let o = Operand::v;
    f.entry(&[o(v[0]), o(v[1])]).unwrap();
    f.inst(mov, &[o(v[2]), o(v[0])]).unwrap();
    f.inst(xor, &[o(v[2]), o(v[1])]).unwrap();
    f.inst(mov, &[o(v[3]), o(v[0])]).unwrap();
    f.inst(add, &[o(v[3]), Operand::Imm(1)]).unwrap();
    let mut s = k + 1;
    for _ in 0..20 {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = s >> 33;
        let (op, d, src) = (
            (r % 4) as usize,
            ((r >> 2) % 4) as usize,
            ((r >> 8) % 4) as usize,
        );
        f.inst(ops[op], &[o(v[d]), o(v[src])]).unwrap();
    }
    f.inst(xor, &[o(v[0]), o(v[1])]).unwrap();
    f.inst(xor, &[o(v[0]), o(v[2])]).unwrap();
    f.inst(xor, &[o(v[0]), o(v[3])]).unwrap();
    f.ret(&[o(v[0])]).unwrap();
}

#[test]
fn workload_c_functions_are_small_and_verify() {
    let t = MockX86::new();
    let mut f = Function::new("f", Signature::new(CallConvId(0), &[], &[]));
    build_c(&mut f, &t, 0);
    assert!(verify::verify(&f, &t).is_ok());
    let per_inst = f.heap_bytes() / f.num_insts();
    assert!(per_inst < 200, "{per_inst} bytes per instruction");
    // Rebuilding in the cleared function reuses its buffers.
    let cap = f.heap_bytes();
    for k in 1..100 {
        build_c(&mut f, &t, k);
    }
    assert_eq!(f.heap_bytes(), cap);
    // Timing is only printed (tests run unoptimized); see the note in the report.
    let n = 2000;
    let start = std::time::Instant::now();
    for k in 0..n {
        build_c(&mut f, &t, k);
    }
    let ns = start.elapsed().as_nanos() / n as u128;
    println!(
        "workload C function built in {ns} ns ({} instructions)",
        f.num_insts()
    );
}

#[test]
fn pipeline_timing_workload_c() {
    let t = MockX86::new();
    let mut f = Function::new("f", Signature::new(CallConvId(0), &[], &[]));
    let mut cfg = cfg::Cfg::new();
    let n = 2000u64;
    let mut ns = [0u128; 3];
    for k in 0..n {
        build_c(&mut f, &t, k);
        let s = std::time::Instant::now();
        lower::lower(&mut f, &t).unwrap();
        let a = s.elapsed().as_nanos();
        cfg.compute(&f, &t);
        let b = s.elapsed().as_nanos();
        verify::verify_with_cfg(&f, &t, &cfg).unwrap();
        let c = s.elapsed().as_nanos();
        ns[0] += a;
        ns[1] += b - a;
        ns[2] += c - b;
    }
    println!(
        "per function: lower {} ns, cfg {} ns, verify {} ns",
        ns[0] / n as u128,
        ns[1] / n as u128,
        ns[2] / n as u128
    );
}

#[test]
fn cfg_timing_loop() {
    let t = MockX86::new();
    let mut f = Function::new("f", Signature::new(CallConvId(0), &[], &[]));
    build_c(&mut f, &t, 3);
    lower::lower(&mut f, &t).unwrap();
    let mut cfg = cfg::Cfg::new();
    let n = 5000;
    let s = std::time::Instant::now();
    for _ in 0..n {
        cfg.compute(&f, &t);
    }
    println!("cfg compute {} ns", s.elapsed().as_nanos() / n);
    let s = std::time::Instant::now();
    for _ in 0..n {
        verify::verify_with_cfg(&f, &t, &cfg).unwrap();
    }
    println!("verify {} ns", s.elapsed().as_nanos() / n);
}

/// Workload B's shape (64 values, `n` operations), with a conditional branch
/// and a label every 8 operations so the CFG has many blocks.
fn build_b(t: &MockX86, n: usize) -> Function {
    let sig = Signature::new(CallConvId(0), &[ValType::I64], &[ValType::I64]);
    let mut f = Function::new("pressure", sig);
    let p = f.new_gp(8, "p");
    let v: Vec<VReg> = (0..64).map(|i| f.new_gp(8, &format!("v{i}"))).collect();
    let o = Operand::v;
    let ops = [t.id("add"), t.id("sub"), t.id("xor"), t.id("imul")];
    f.entry(&[o(p)]).unwrap();
    for (i, &x) in v.iter().enumerate() {
        f.inst(
            t.id("mov"),
            &[o(x), Operand::Mem(Mem::vreg(p, 8 * i as i32, 8))],
        )
        .unwrap();
    }
    let mut s = 12345u64;
    for k in 0..n {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = s >> 33;
        let (op, d, src) = (
            (r % 4) as usize,
            ((r >> 2) % 64) as usize,
            ((r >> 8) % 64) as usize,
        );
        f.inst(ops[op], &[o(v[d]), o(v[src])]).unwrap();
        if k % 8 == 7 {
            let l = f.new_label(None);
            f.inst(t.id("cmp"), &[o(v[d]), Operand::Imm(0)]).unwrap();
            f.inst(t.id("je"), &[Operand::Label(l)]).unwrap();
            f.bind(l).unwrap();
        }
    }
    for &x in &v[1..] {
        f.inst(t.id("add"), &[o(v[0]), o(x)]).unwrap();
    }
    f.ret(&[o(v[0])]).unwrap();
    f
}

#[test]
fn large_functions_round_trip() {
    let t = MockX86::new();
    let mut per = Vec::new();
    for n in [2_000usize, 40_000] {
        let s = std::time::Instant::now();
        let mut f = build_b(&t, n);
        lower::lower(&mut f, &t).unwrap();
        let c = cfg::Cfg::of(&f, &t);
        verify::verify_with_cfg(&f, &t, &c).unwrap();
        let text = text::print_function(&f, &t);
        let g = text::parse_function(&text, &t).unwrap();
        assert!(g == f);
        let ns = s.elapsed().as_nanos() as f64 / f.num_insts() as f64;
        println!(
            "{n} operations, {} blocks: {ns:.0} ns per instruction (build, lower, cfg, verify, print, parse)",
            c.num_blocks()
        );
        per.push(ns);
    }
    // The per-instruction figures are printed, not asserted: timing belongs
    // in benchmarks, never in a test that a loaded machine could fail.
    println!("ns per instruction at 2k and 40k operations: {per:?}");
}
