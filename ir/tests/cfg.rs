//! CFG construction, orders, dominators (checked against petgraph), loop
//! depth and unreachable-block removal.

use jitforge_ir::abi::CallConv;
use jitforge_ir::cfg::{Cfg, remove_unreachable};
use jitforge_ir::mock::MockX86;
use jitforge_ir::text::{parse_function, print_function};
use jitforge_ir::*;
use proptest::prelude::*;

fn cfg(src: &str) -> (Function, Cfg) {
    let t = MockX86::new();
    let f = parse_function(src, &t).unwrap();
    let c = Cfg::of(&f, &t);
    (f, c)
}
fn b(i: u32) -> Block {
    Block::from_u32(i)
}

#[test]
fn diamond_and_back_to_back_labels() {
    let (f, c) = cfg("func f(i64) -> () sysv64 {
  gp64 %a
  entry %a
  cmp %a, 0
  je .else
  add %a, 1
  jump .join
.else:
  sub %a, 1
.join:
.join2:
  ret
}");
    assert_eq!(c.num_blocks(), 4);
    assert_eq!(c.succs(b(0)), &[b(2), b(1)]);
    assert_eq!(c.succs(b(1)), &[b(3)]);
    assert_eq!(c.succs(b(2)), &[b(3)]);
    assert_eq!(c.preds(b(3)), &[b(1), b(2)]);
    assert_eq!(c.insts(b(3), &f), 7..10);
    assert_eq!(c.rpo()[0], b(0));
    assert_eq!(c.idom(b(3)), Some(b(0)));
    assert!(c.blocks().all(|x| c.loop_depth(x) == 0));
    assert_eq!(c.block_of(Inst::from_u32(3)), Some(b(1)));
    assert_eq!(c.block_of(Inst::from_u32(5)), Some(b(2)));
}

#[test]
fn nested_loops_depth() {
    let (_, c) = cfg("func f(i64) -> () sysv64 {
  gp64 %n, %i, %j
  entry %n
  mov %i, 0
.outer:
  mov %j, 0
.inner:
  add %j, 1
  cmp %j, %n
  jne .inner
  add %i, 1
  cmp %i, %n
  jne .outer
  ret
}");
    let depths: Vec<u32> = c.blocks().map(|x| c.loop_depth(x)).collect();
    assert_eq!(depths, vec![0, 1, 2, 1, 0]);
}

#[test]
fn jump_tables_and_unannotated_indirect_jumps() {
    let src = "func f(i64) -> () sysv64 {
  gp64 %i, %t
  jumptable jt0 = [.a, .b]
  entry %i
  lea %t, [jt0 + %i*8]
  jumpind qword [%t], jt0
.a:
  ret
.b:
  ret
.c:
  ret
}";
    let (_, c) = cfg(src);
    assert_eq!(c.succs(b(0)), &[b(1), b(2)]);
    assert!(!c.is_reachable(b(3)));
    // Without annotation: every block whose label is taken (here the table entries
    // and .c, whose address is loaded).
    let src2 = src.replace("jumpind qword [%t], jt0", "lea %t, [.c]\n  jumpind %t");
    let (_, c) = cfg(&src2);
    assert_eq!(c.succs(b(0)), &[b(1), b(2), b(3)]);
    assert!(c.is_reachable(b(3)));
}

#[test]
fn tail_jump_and_ret_have_no_successors() {
    let (_, c) = cfg("func f() -> () sysv64 {
  sig sig0 = () -> () sysv64
  entry
  tailjump sig0, 0x1000, ()
.x:
  ret
}");
    assert_eq!(c.succs(b(0)), &[]);
    assert!(!c.is_reachable(b(1)));
    assert_eq!(c.falls_off_end(), None);
}

/// The mock target with a flow key of its choice, where `add` may
/// return (to tell apart answers remembered from another target).
struct Keyed {
    base: MockX86,
    key: Option<u64>,
    add_returns: bool,
}

impl Target for Keyed {
    jitforge_ir::forward_target_basics!(base);
    fn inst_flow(&self, inst: TargetInst, first: Option<&OpShape>) -> Flow {
        if self.add_returns && Some(inst) == self.base.inst_by_name("add") {
            return Flow::Return;
        }
        self.base.inst_flow(inst, first)
    }
    fn flow_key(&self) -> Option<u64> {
        self.key
    }
    fn call_conv(&self, id: CallConvId) -> Option<&CallConv> {
        self.base.call_conv(id)
    }
}

#[test]
fn flows_are_remembered_only_for_the_same_flow_key() {
    let keyed = |key, add_returns| Keyed {
        base: MockX86::new(),
        key,
        add_returns,
    };
    let (plain, returning) = (keyed(Some(1), false), keyed(Some(2), true));
    let unkeyed_plain = keyed(None, false);
    let unkeyed_returning = keyed(None, true);
    let f = parse_function(
        "func f(i64) -> (i64) sysv64 {
  gp64 %a
  entry %a
  add %a, 1
  add %a, 2
  ret %a
}",
        &plain.base,
    )
    .unwrap();
    // One Cfg computed in turn for each target: each answer is its own.
    let mut c = Cfg::new();
    let cases: [(&Keyed, usize); 6] = [
        (&plain, 1),
        (&returning, 3),
        (&plain, 1),
        (&unkeyed_returning, 3),
        (&unkeyed_plain, 1),
        (&returning, 3),
    ];
    for (target, blocks) in cases {
        c.compute(&f, target);
        assert_eq!(c.num_blocks(), blocks, "key {:?}", target.key);
    }
}

#[test]
fn straight_line_function_is_one_block() {
    // Computed into a CFG that held a larger function before (its buffers
    // reused): the one-block answer leaves nothing of the old one.
    let t = MockX86::new();
    let (_, mut c) = cfg("func f(i64) -> () sysv64 {
  gp64 %n
  entry %n
.top:
  sub %n, 1
  cmp %n, 0
  jne .top
  ret
}");
    assert_eq!(c.loop_depth(b(1)), 1);
    let f = parse_function(
        "func g(i64) -> (i64) sysv64 {
  gp64 %a
  entry %a
  add %a, 1
  ret %a
}",
        &t,
    )
    .unwrap();
    c.compute(&f, &t);
    assert_eq!(c.num_blocks(), 1);
    assert_eq!(c.insts(b(0), &f), 0..3);
    assert_eq!(c.succs(b(0)), &[]);
    assert_eq!(c.preds(b(0)), &[]);
    assert_eq!(c.rpo(), &[b(0)]);
    assert!(c.is_reachable(b(0)));
    assert_eq!(c.idom(b(0)), None);
    assert!(c.dominates(b(0), b(0)));
    assert_eq!(c.loop_depth(b(0)), 0);
    assert_eq!(c.falls_off_end(), None);
    assert_eq!(c.block_of(Inst::from_u32(2)), Some(b(0)));
}

#[test]
fn irreducible_loop_gets_depth() {
    let (_, c) = cfg("func f(i64) -> () sysv64 {
  gp64 %a
  entry %a
  cmp %a, 0
  je .y
.x:
  sub %a, 1
  jne .y
  ret
.y:
  sub %a, 1
  jne .x
  ret
}");
    // .x (block 1) and .y (block 3) form a cycle entered at both.
    assert_eq!(c.loop_depth(b(1)), 1);
    assert_eq!(c.loop_depth(b(3)), 1);
    assert_eq!(c.loop_depth(b(0)), 0);
}

#[test]
fn remove_unreachable_blocks() {
    let t = MockX86::new();
    let mut f = parse_function(
        "func f() -> () sysv64 {
  gp64 %a
  entry
  jump .end
  mov %a, 1
  mov %a, 2
.dead:
  add %a, 1
  jump .dead
.kept:
  ret
.end:
  lea %a, [.kept]
  ret
}",
        &t,
    )
    .unwrap();
    let mut c = Cfg::of(&f, &t);
    let n = remove_unreachable(&mut f, &t, &mut c);
    assert_eq!(n, 5);
    let s = print_function(&f, &t);
    assert!(
        s.ends_with("  entry\n  jump .end\n.kept:\n  ret\n.end:\n  lea %a, [.kept]\n  ret\n}\n"),
        "{s}"
    );
    assert!(c.blocks().all(|x| c.is_reachable(x)));
}

/// A random CFG as a function: block k starts with label .k and ends with a
/// jump, a conditional branch, a return or nothing (fallthrough).
fn graph_fn(ends: &[(u8, u8)]) -> String {
    let n = ends.len();
    let mut s = String::from("func g(i64) -> () sysv64 {\n  gp64 %a\n  entry %a\n");
    for (k, &(kind, tgt)) in ends.iter().enumerate() {
        s += &format!(".{}:\n  add %a, 1\n", k + 1000);
        let t = tgt as usize % n + 1000;
        match kind % 4 {
            0 => s += &format!("  jump .{t}\n"),
            1 => s += &format!("  cmp %a, 0\n  je .{t}\n"),
            2 => s += "  ret\n",
            _ => {}
        }
    }
    s += "  ret\n}\n";
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn dominators_match_petgraph(ends in proptest::collection::vec((0u8..4, 0u8..255), 1..24)) {
        use petgraph::graph::{DiGraph, NodeIndex};
        let t = MockX86::new();
        let f = parse_function(&graph_fn(&ends), &t).unwrap();
        let c = Cfg::of(&f, &t);
        let mut g: DiGraph<(), ()> = DiGraph::new();
        for _ in 0..c.num_blocks() { g.add_node(()); }
        for x in c.blocks() {
            for &y in c.succs(x) {
                g.add_edge(NodeIndex::new(x.as_u32() as usize), NodeIndex::new(y.as_u32() as usize), ());
            }
        }
        let d = petgraph::algo::dominators::simple_fast(&g, NodeIndex::new(0));
        for x in c.blocks() {
            let want = d.immediate_dominator(NodeIndex::new(x.as_u32() as usize)).map(|n| b(n.index() as u32));
            prop_assert_eq!(c.idom(x), want, "block {:?}", x);
            let reach = x == b(0) || want.is_some();
            prop_assert_eq!(c.is_reachable(x), reach);
        }
        // RPO: every forward edge goes to a later position.
        let pos: std::collections::HashMap<Block, usize> = c.rpo().iter().enumerate().map(|(i, &x)| (x, i)).collect();
        for &x in c.rpo() {
            for &y in c.succs(x) {
                if !c.dominates(y, x) && pos[&y] <= pos[&x] {
                    // A retreating edge that is not a back edge: irreducible; the
                    // target must then be in a loop.
                    prop_assert!(c.loop_depth(y) > 0);
                }
            }
        }
        // A block is in a loop iff it lies on a cycle (its SCC is non-trivial or has a self edge).
        let sccs = petgraph::algo::tarjan_scc(&g);
        for scc in sccs {
            for n in &scc {
                let bx = b(n.index() as u32);
                if !c.is_reachable(bx) { continue; }
                let cyclic = scc.len() > 1 || c.succs(bx).contains(&bx);
                prop_assert_eq!(c.loop_depth(bx) > 0, cyclic, "block {:?}", bx);
            }
        }
    }
}

/// An instruction's tag stays with it through lowering (which inserts
/// copies before and after) and unreachable-code removal (which drops
/// instructions before it); new instructions have none.
#[test]
fn tags_survive_lowering_and_unreachable_code_removal() {
    let t = MockX86::new();
    let sig = Signature::new(t.conv("sysv64"), &[ValType::I64], &[ValType::I64]);
    let mut f = Function::new("f", sig);
    let x = f.new_gp(8, "x");
    let skip = f.new_label(None);
    let add = InstKind::Target(t.id("add"));
    f.entry(&[Operand::v(x)]).unwrap();
    f.jump(skip).unwrap();
    // Unreachable: after a jump, without a label.
    f.push_tagged(add, &[Operand::v(x), Operand::Imm(2)], 9)
        .unwrap();
    f.bind(skip).unwrap();
    // A fixed number of operands (as the Compiler's typed calls push them).
    f.push_tagged_array(add, [Operand::v(x), Operand::Imm(1)], 7)
        .unwrap();
    f.ret(&[Operand::v(x)]).unwrap();
    let tags =
        |f: &Function| -> Vec<Option<u16>> { f.insts().map(|i| f.inst_data(i).tag()).collect() };
    lower::lower(&mut f, &t).unwrap();
    let lowered = tags(&f);
    assert_eq!(
        lowered.iter().flatten().copied().collect::<Vec<_>>(),
        [9, 7]
    );
    let seven = f
        .insts()
        .find(|&i| f.inst_data(i).tag() == Some(7))
        .unwrap();
    assert_eq!(f.operands(seven), &[Operand::v(x), Operand::Imm(1)]);
    let mut c = Cfg::of(&f, &t);
    assert_eq!(remove_unreachable(&mut f, &t, &mut c), 1);
    let kept = tags(&f);
    assert_eq!(kept.iter().flatten().copied().collect::<Vec<_>>(), [7]);
    let seven = f
        .insts()
        .find(|&i| f.inst_data(i).tag() == Some(7))
        .unwrap();
    assert_eq!(f.operands(seven), &[Operand::v(x), Operand::Imm(1)]);
    assert_eq!(f.kind(seven), add);
}
