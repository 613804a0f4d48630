//! Diagnostic: shows the allocation of a raw-generated input (temporary).
fn main() {
    use jitforge_regalloc::*;
    let seed: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let len: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let raw = std::env::args().nth(3).is_none();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let data: Vec<u8> = if let Ok(path) = std::env::var("RA_FILE") { std::fs::read(path).unwrap() } else { (0..len).map(|_| { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 33) as u8 }).collect() };
    let (f, env) = if raw { fuzzing::generate_raw(&data) } else { fuzzing::generate(&data) };
    let mut out = Output::default();
    let r = Allocator::new().run(&f, &env, &Options { check: false, log: true }, &mut out);
    println!("{r:?}");
    for (bi, b) in f.blocks.iter().enumerate() {
        println!("b{bi}: preds {:?} succs {:?}", b.preds, b.succs);
        for i in b.start..b.end {
            let inst = Inst(i);
            for (p, e) in out.edits.iter().filter(|(p, _)| *p == ProgPoint::Before(inst)) { let _ = p; println!("      {e}"); }
            let ops = &f.insts[i as usize].ops;
            let al = if out.inst_alloc_offsets.len() > i as usize + 1 { out.inst_allocs(inst).to_vec() } else { vec![] };
            print!("  i{i}: {:?}", f.insts[i as usize].kind);
            for (k, op) in ops.iter().enumerate() { print!(" {:?}:{}:{:?}={}", op.kind, op.vreg, op.constraint, al.get(k).map(|a| a.to_string()).unwrap_or_default()); }
            if !f.insts[i as usize].clobbers.is_empty() { print!(" clob"); }
            println!();
            for d in out.log.at(inst) { println!("        ; {d}"); }
            for (p, e) in out.edits.iter().filter(|(p, _)| *p == ProgPoint::After(inst)) { let _ = p; println!("      after: {e}"); }
        }
    }
    for sp in &out.edge_splits { println!("split {:?}->{:?}: {:?}", sp.from, sp.to, sp.edits); }
    println!("{:?}", checker::check(&f, &env, &out));
}
