//! The control-flow graph of a function: basic blocks from label binds and
//! terminators, predecessors and successors, reachability, reverse
//! post-order, dominators and loop nesting depth; and the pass that removes
//! unreachable blocks.
//!
//! Blocks are derived from the linear instruction list: a block starts at the
//! first instruction, at a label bind that follows a non-empty block (labels
//! bound back to back share one block), and after every terminator.
//! Successors: a jump's label; a conditional branch's label and the next
//! block; an indirect jump's annotated targets, or, without annotation,
//! every block whose label is *taken* (used other than as a branch target: as
//! an address, a callee or a jump-table entry); nothing after a return or a
//! tail jump; the next block otherwise.
//!
//! Reachability starts at the entry block and at every block whose label is
//! taken (its address may escape, so it may be entered from outside).
//! Loop depth counts the natural loops (back edges to a dominating header)
//! around a block; a cycle without a dominating header (irreducible) adds one
//! level to the members of its strongly connected component (found with
//! petgraph).
//!
//! [`Cfg::compute`] reuses the buffers of a previous computation.

use crate::entities::*;
use crate::function::*;

use crate::target::*;
use cranelift_entity::EntityRef;
use fixedbitset::FixedBitSet;
use std::ops::Range;

/// The CFG of one function.
#[derive(Clone, Debug, Default)]
pub struct Cfg {
    starts: Vec<u32>,
    succ_off: Vec<u32>,
    succs: Vec<Block>,
    pred_off: Vec<u32>,
    preds: Vec<Block>,
    label_block: Vec<u32>,
    taken: FixedBitSet,
    reachable: FixedBitSet,
    rpo: Vec<Block>,
    rpo_pos: Vec<u32>,
    idom: Vec<u32>,
    depth: Vec<u32>,
    falls_off: Option<Block>,
    flows: Vec<Flow>,
    tmp: Vec<u32>,
    tmp2: Vec<u32>,
    post: Vec<Block>,
    stack: Vec<(u32, u32)>,
    work: Vec<usize>,
    in_loop: FixedBitSet,
    members: Vec<usize>,
    dom_pre: Vec<u32>,
    dom_post: Vec<u32>,
    /// Target instructions' flows remembered from earlier computations
    /// (kept while the target's [`Target::flow_key`] stays the same).
    flow_memo: Option<Box<FlowMemos>>,
}

const NONE: u32 = u32::MAX;

/// Slots of the memo of target instructions' flows.
const FLOW_MEMO_SLOTS: usize = 16;

/// A target instruction's flow without operands, by its id modulo the slots.
type FlowMemo = [Option<(TargetInst, Flow)>; FLOW_MEMO_SLOTS];

/// What [`Cfg::compute`] remembers of a target's flows. A function repeats
/// a few instructions and the next function mostly the same ones, so with
/// a target that names its flows ([`Target::flow_key`]) the answers are
/// kept from one computation to the next.
#[derive(Clone, Debug)]
struct FlowMemos {
    /// The target's flow key (`None`: the memo serves one computation).
    key: Option<u64>,
    flows: FlowMemo,
    /// By id modulo the slots: a target instruction known to be ordinary
    /// ([`Flow::Normal`]). Slot `k` starts with `k + 1`, which is no id
    /// of that slot (so none matches before it is asked).
    ordinary: [u32; FLOW_MEMO_SLOTS],
}

impl FlowMemos {
    /// An empty memo for a target with flow key `key`.
    fn new(key: Option<u64>) -> FlowMemos {
        FlowMemos {
            key,
            flows: [None; FLOW_MEMO_SLOTS],
            ordinary: core::array::from_fn(|k| k as u32 + 1),
        }
    }
}

impl Cfg {
    /// An empty CFG (fill it with [`Cfg::compute`]).
    pub fn new() -> Cfg {
        Cfg::default()
    }

    /// The CFG of `func`.
    pub fn of(func: &Function, target: &dyn Target) -> Cfg {
        let mut c = Cfg::new();
        c.compute(func, target);
        c
    }

    /// Target instruction `id`'s flow without operands, from `memo` or
    /// asked of `target` (and kept in `memo`).
    #[inline(always)]
    fn memo_flow(target: &dyn Target, id: TargetInst, memo: &mut FlowMemo) -> Flow {
        let slot = &mut memo[id.0 as usize % FLOW_MEMO_SLOTS];
        match *slot {
            Some((known, flow)) if known == id => flow,
            _ => {
                let flow = target.inst_flow(id, None);
                *slot = Some((id, flow));
                flow
            }
        }
    }

    fn flow(func: &Function, target: &dyn Target, d: &InstData, memo: &mut FlowMemo) -> Flow {
        match d.kind {
            InstKind::Target(id) => {
                // Asked without the operand first: building its shape costs
                // more than the question, and only a transfer of control
                // depends on it (see [`Target::inst_flow`]). A function
                // repeats a few instructions: each is asked once.
                let flow = Self::memo_flow(target, id, memo);
                if !flow.is_terminator() {
                    return flow;
                }
                let first = func.all_operands()[d.ops_range()]
                    .first()
                    .map(|o| func.operand_shape(o));
                target.inst_flow(id, first.as_ref())
            }
            InstKind::Jump => Flow::Jump,
            InstKind::JumpIndirect(_) => Flow::IndirectJump,
            InstKind::Ret | InstKind::TailJump(_) => Flow::Return,
            InstKind::Call(_) => Flow::Call,
            _ => Flow::Normal,
        }
    }

    /// Computes the CFG of `func`. Never fails: malformed instructions count
    /// as ordinary ones (the verifier reports them).
    pub fn compute(&mut self, func: &Function, target: &dyn Target) {
        let n = func.num_insts();
        self.starts.clear();
        self.label_block.clear();
        self.label_block.resize(func.num_labels(), NONE);
        self.taken.clear();
        self.taken.grow(func.num_labels());
        self.falls_off = None;
        // Pass 1: block starts, label binds, each block's last flow, taken
        // labels. Only a block's last instruction's flow is kept (pass 2
        // reads no other): one store per block, not per instruction.
        let mut flows = core::mem::take(&mut self.flows);
        flows.clear();
        let mut last_flow = Flow::Normal;
        let mut block_open = false;
        // Without labels no operand can take one.
        let has_labels = func.num_labels() != 0;
        let key = target.flow_key();
        let mut memo = match self.flow_memo.take() {
            Some(memo) if key.is_some() && memo.key == key => memo,
            Some(mut memo) => {
                *memo = FlowMemos::new(key);
                memo
            }
            None => Box::new(FlowMemos::new(key)),
        };
        let insts = func.all_insts();
        let mut i = 0;
        while i < insts.len() {
            let d = &insts[i];
            let kind = d.kind;
            if !block_open
                || matches!(kind, InstKind::Bind(_)) && !self.block_empty_so_far(func, Inst::new(i))
            {
                if !self.starts.is_empty() {
                    flows.push(last_flow);
                }
                self.starts.push(i as u32);
                block_open = true;
            }
            if let InstKind::Bind(l) = kind
                && let Some(slot) = self.label_block.get_mut(l.index())
                && *slot == NONE
            {
                *slot = self.starts.len() as u32 - 1;
            }
            let flow = Self::flow(func, target, d, &mut memo.flows);
            last_flow = flow;
            if has_labels {
                let branch = matches!(flow, Flow::Jump | Flow::CondBranch)
                    && !matches!(kind, InstKind::Call(_) | InstKind::TailJump(_));
                for op in &func.all_operands()[d.ops_range()] {
                    match *op {
                        Operand::Label(l) if !branch => self.take(l),
                        Operand::Mem(Mem {
                            base: MemBase::Label(l),
                            ..
                        }) => self.take(l),
                        _ => {}
                    }
                }
            }
            if flow.is_terminator() {
                block_open = false;
            }
            i += 1;
            if block_open && !has_labels {
                // The run of ordinary target instructions that follows
                // (most of a function): each changes nothing above but the
                // last flow, so they are skipped with one test each of
                // `ordinary` (the target asked here the first time, as
                // `flow` does).
                while let Some(d) = insts.get(i)
                    && let InstKind::Target(id) = d.kind
                {
                    let slot = id.0 as usize % FLOW_MEMO_SLOTS;
                    if memo.ordinary[slot] != id.0 {
                        if Self::memo_flow(target, id, &mut memo.flows) != Flow::Normal {
                            break;
                        }
                        memo.ordinary[slot] = id.0;
                    }
                    last_flow = Flow::Normal;
                    i += 1;
                }
            }
        }
        self.flow_memo = Some(memo);
        for j in 0..func.num_jump_tables() {
            for &l in func.jump_table(JumpTable::new(j)) {
                self.take(l);
            }
        }
        let nb = self.starts.len();
        if nb != 0 {
            flows.push(last_flow);
        }
        // Pass 2: successors.
        self.succ_off.clear();
        self.succs.clear();
        for (b, &block_flow) in flows.iter().enumerate() {
            self.succ_off.push(self.succs.len() as u32);
            let end = self.block_end(b, n);
            let last = Inst::new(end - 1);
            let lbl = |this: &Cfg| {
                func.operands(last).iter().find_map(|o| match *o {
                    Operand::Label(l) => this.label_block.get(l.index()).copied(),
                    _ => None,
                })
            };
            let next = if b + 1 < nb { Some(b as u32 + 1) } else { None };
            match block_flow {
                Flow::Jump => {
                    if let Some(t) = lbl(self) {
                        self.add_succ(t);
                    }
                }
                Flow::CondBranch => {
                    if let Some(t) = lbl(self) {
                        self.add_succ(t);
                    }
                    match next {
                        Some(nx) => self.add_succ(nx),
                        None => self.falls_off = Some(Block::new(b)),
                    }
                }
                Flow::IndirectJump => {
                    let table = match func.kind(last) {
                        InstKind::JumpIndirect(t) => t.expand(),
                        _ => None,
                    };
                    match table {
                        Some(t) if t.index() < func.num_jump_tables() => {
                            for &l in func.jump_table(t) {
                                if let Some(&lb) = self.label_block.get(l.index()) {
                                    self.add_succ(lb);
                                }
                            }
                        }
                        _ => {
                            for l in 0..self.label_block.len() {
                                if self.taken.contains(l) {
                                    self.add_succ(self.label_block[l]);
                                }
                            }
                        }
                    }
                }
                Flow::Return => {}
                Flow::Normal | Flow::Call => match next {
                    Some(nx) => self.add_succ(nx),
                    None => self.falls_off = Some(Block::new(b)),
                },
            }
        }
        self.succ_off.push(self.succs.len() as u32);
        self.flows = flows;
        if nb == 1 && self.succs.is_empty() {
            self.one_block();
            return;
        }
        self.compute_preds(nb);
        self.compute_order(nb);
        self.compute_dominators(nb);
        self.number_dominator_tree(nb);
        self.compute_loops(nb);
    }

    /// The rest of [`Cfg::compute`] for a function of one block without
    /// successors (straight-line code ending in a return): the entry alone,
    /// its own dominator tree, outside every loop.
    fn one_block(&mut self) {
        self.pred_off.clear();
        self.pred_off.extend_from_slice(&[0, 0]);
        self.preds.clear();
        self.reachable.clear();
        self.reachable.grow(1);
        self.reachable.insert(0);
        self.rpo.clear();
        self.rpo.push(Block::new(0));
        self.rpo_pos.clear();
        self.rpo_pos.push(0);
        self.idom.clear();
        self.idom.push(NONE);
        self.dom_pre.clear();
        self.dom_pre.push(0);
        self.dom_post.clear();
        self.dom_post.push(0);
        self.depth.clear();
        self.depth.push(0);
    }

    fn block_empty_so_far(&self, func: &Function, i: Inst) -> bool {
        // The open block holds only label binds up to `i`.
        let start = *self.starts.last().unwrap_or(&0) as usize;
        (start..i.index()).all(|k| matches!(func.kind(Inst::new(k)), InstKind::Bind(_)))
    }

    fn take(&mut self, l: Label) {
        if l.index() < self.taken.len() {
            self.taken.insert(l.index());
        }
    }

    fn add_succ(&mut self, b: u32) {
        if b == NONE {
            return;
        }
        let from = *self.succ_off.last().unwrap_or(&0) as usize;
        let b = Block::from_u32(b);
        if !self.succs[from..].contains(&b) {
            self.succs.push(b);
        }
    }

    fn block_end(&self, b: usize, n: usize) -> usize {
        self.starts.get(b + 1).map(|&s| s as usize).unwrap_or(n)
    }

    fn compute_preds(&mut self, nb: usize) {
        self.tmp.clear();
        self.tmp.resize(nb + 1, 0);
        for s in &self.succs {
            self.tmp[s.index() + 1] += 1;
        }
        for i in 0..nb {
            self.tmp[i + 1] += self.tmp[i];
        }
        self.pred_off.clear();
        self.pred_off.extend_from_slice(&self.tmp);
        self.preds.clear();
        self.preds.resize(self.succs.len(), Block::new(0));
        for b in 0..nb {
            for k in self.succ_off[b]..self.succ_off[b + 1] {
                let s = self.succs[k as usize].index();
                self.preds[self.tmp[s] as usize] = Block::new(b);
                self.tmp[s] += 1;
            }
        }
    }

    fn compute_order(&mut self, nb: usize) {
        self.reachable.clear();
        self.reachable.grow(nb);
        self.rpo.clear();
        let mut post = core::mem::take(&mut self.post);
        post.clear();
        let mut stack = core::mem::take(&mut self.stack);
        stack.clear();
        let roots = (nb > 0).then_some(0).into_iter().chain(
            self.taken
                .ones()
                .filter_map(|l| self.label_block.get(l).copied())
                .filter(|&b| b != NONE),
        );
        let roots: smallvec::SmallVec<[u32; 8]> = roots.collect();
        for r in roots {
            if self.reachable.contains(r as usize) {
                continue;
            }
            self.reachable.insert(r as usize);
            stack.push((r, self.succ_off[r as usize]));
            while let Some(top) = stack.last_mut() {
                let (b, k) = *top;
                if k < self.succ_off[b as usize + 1] {
                    top.1 += 1;
                    let s = self.succs[k as usize].index();
                    if !self.reachable.contains(s) {
                        self.reachable.insert(s);
                        stack.push((s as u32, self.succ_off[s]));
                    }
                } else {
                    post.push(Block::from_u32(b));
                    stack.pop();
                }
            }
        }
        self.rpo.extend(post.iter().rev());
        self.post = post;
        self.stack = stack;
        self.rpo_pos.clear();
        self.rpo_pos.resize(nb, NONE);
        for (i, b) in self.rpo.iter().enumerate() {
            self.rpo_pos[b.index()] = i as u32;
        }
    }

    /// Cooper, Harvey and Kennedy's iterative algorithm over RPO positions
    /// with a virtual root above every root.
    fn compute_dominators(&mut self, nb: usize) {
        const VROOT: u32 = u32::MAX - 1;
        let n = self.rpo.len();
        let mut idom = core::mem::take(&mut self.tmp2);
        idom.clear();
        idom.resize(n, NONE);
        // Roots: the first RPO node and any node with no reachable predecessor
        // that appears earlier in RPO (taken-label roots).
        for (pos, b) in self.rpo.iter().enumerate() {
            let has_earlier_pred = self.preds_of(b.index()).iter().any(|p| {
                let pp = self.rpo_pos[p.index()];
                pp != NONE && (pp as usize) < pos
            });
            if pos == 0 || !has_earlier_pred {
                idom[pos] = VROOT;
            }
        }
        let intersect = |idom: &[u32], mut a: u32, mut b: u32| -> u32 {
            while a != b {
                if a == VROOT || b == VROOT {
                    return VROOT;
                }
                while a > b {
                    a = idom[a as usize];
                    if a == VROOT {
                        return VROOT;
                    }
                }
                while b > a {
                    b = idom[b as usize];
                    if b == VROOT {
                        return VROOT;
                    }
                }
            }
            a
        };
        let mut changed = true;
        while changed {
            changed = false;
            for pos in 0..n {
                if idom[pos] == VROOT {
                    continue;
                }
                let b = self.rpo[pos].index();
                let mut new = NONE;
                for p in self.preds_of(b) {
                    let pp = self.rpo_pos[p.index()];
                    if pp == NONE || idom[pp as usize] == NONE {
                        continue;
                    }
                    new = if new == NONE {
                        pp
                    } else {
                        intersect(&idom, pp, new)
                    };
                }
                if new != NONE && idom[pos] != new {
                    idom[pos] = new;
                    changed = true;
                }
            }
        }
        self.idom.clear();
        self.idom.resize(nb, NONE);
        for (pos, &d) in idom.iter().enumerate() {
            let b = self.rpo[pos].index();
            self.idom[b] = if d == VROOT || d == NONE {
                NONE
            } else {
                self.rpo[d as usize].as_u32()
            };
        }
        self.tmp2 = idom;
    }

    fn preds_of(&self, b: usize) -> &[Block] {
        &self.preds[self.pred_off[b] as usize..self.pred_off[b + 1] as usize]
    }

    /// Numbers the dominator tree (pre and post order) so that
    /// [`Cfg::dominates`] is O(1).
    fn number_dominator_tree(&mut self, nb: usize) {
        self.dom_pre.clear();
        self.dom_pre.resize(nb, NONE);
        self.dom_post.clear();
        self.dom_post.resize(nb, NONE);
        // Children lists (CSR) in RPO order.
        self.tmp.clear();
        self.tmp.resize(nb + 1, 0);
        for &b in &self.rpo {
            let d = self.idom[b.index()];
            if d != NONE {
                self.tmp[d as usize + 1] += 1;
            }
        }
        for i in 0..nb {
            self.tmp[i + 1] += self.tmp[i];
        }
        let mut kids = core::mem::take(&mut self.tmp2);
        kids.clear();
        kids.resize(self.tmp[nb] as usize, 0);
        let mut fill = core::mem::take(&mut self.work);
        fill.clear();
        fill.extend(self.tmp.iter().map(|&x| x as usize));
        for &b in &self.rpo {
            let d = self.idom[b.index()];
            if d != NONE {
                kids[fill[d as usize]] = b.as_u32();
                fill[d as usize] += 1;
            }
        }
        let (mut pre, mut post) = (0u32, 0u32);
        let mut stack = core::mem::take(&mut self.stack);
        stack.clear();
        for i in 0..self.rpo.len() {
            let r = self.rpo[i].as_u32();
            if self.idom[r as usize] != NONE {
                continue;
            }
            self.dom_pre[r as usize] = pre;
            pre += 1;
            stack.push((r, self.tmp[r as usize]));
            while let Some(top) = stack.last_mut() {
                let (b, k) = *top;
                if k < self.tmp[b as usize + 1] {
                    top.1 += 1;
                    let c = kids[k as usize];
                    self.dom_pre[c as usize] = pre;
                    pre += 1;
                    stack.push((c, self.tmp[c as usize]));
                } else {
                    self.dom_post[b as usize] = post;
                    post += 1;
                    stack.pop();
                }
            }
        }
        self.stack = stack;
        self.tmp2 = kids;
        self.work = fill;
    }

    fn compute_loops(&mut self, nb: usize) {
        self.depth.clear();
        self.depth.resize(nb, 0);
        let mut in_loop = core::mem::take(&mut self.in_loop);
        in_loop.clear();
        in_loop.grow(nb);
        let mut members = core::mem::take(&mut self.members);
        let mut work = core::mem::take(&mut self.work);
        work.clear();
        let mut irreducible = false;
        // Headers in RPO order; one loop per header (bodies of its back edges merged).
        for pos in 0..self.rpo.len() {
            let h = self.rpo[pos].index();
            let mut has_back = false;
            for k in self.pred_off[h]..self.pred_off[h + 1] {
                let p = self.preds[k as usize].index();
                if !self.reachable.contains(p) {
                    continue;
                }
                if self.dominates(Block::new(h), Block::new(p)) {
                    if !has_back {
                        has_back = true;
                        in_loop.insert(h);
                        members.push(h);
                    }
                    if !in_loop.contains(p) {
                        in_loop.insert(p);
                        members.push(p);
                        work.push(p);
                    }
                } else if self.rpo_pos[p] >= self.rpo_pos[h] {
                    irreducible = true;
                }
            }
            while let Some(x) = work.pop() {
                for q in self.preds_of(x) {
                    let q = q.index();
                    if self.reachable.contains(q) && !in_loop.contains(q) {
                        in_loop.insert(q);
                        members.push(q);
                        work.push(q);
                    }
                }
            }
            for m in members.drain(..) {
                self.depth[m] += 1;
                in_loop.set(m, false);
            }
        }
        self.in_loop = in_loop;
        self.members = members;
        self.work = work;
        if irreducible {
            self.irreducible_loops(nb);
        }
    }

    fn irreducible_loops(&mut self, nb: usize) {
        use petgraph::graph::{DiGraph, NodeIndex};
        let mut g: DiGraph<(), ()> = DiGraph::with_capacity(nb, self.succs.len());
        for _ in 0..nb {
            g.add_node(());
        }
        for b in 0..nb {
            for k in self.succ_off[b]..self.succ_off[b + 1] {
                g.add_edge(
                    NodeIndex::new(b),
                    NodeIndex::new(self.succs[k as usize].index()),
                    (),
                );
            }
        }
        for scc in petgraph::algo::tarjan_scc(&g) {
            // An SCC entered at more than one block has no dominating header.
            let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
            let entries = members
                .iter()
                .filter(|&&m| {
                    m == 0
                        || self
                            .preds_of(m)
                            .iter()
                            .any(|p| !members.contains(&p.index()))
                })
                .count();
            if members.len() > 1 && entries > 1 {
                for m in members {
                    self.depth[m] += 1;
                }
            }
        }
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.starts.len()
    }
    /// All blocks in layout order.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = Block> + use<> {
        (0..self.starts.len() as u32).map(Block::from_u32)
    }
    /// The instructions of a block (indexes into the function).
    pub fn insts(&self, b: Block, func: &Function) -> Range<usize> {
        self.starts[b.index()] as usize..self.block_end(b.index(), func.num_insts())
    }
    /// The first instruction of a block.
    pub fn first_inst(&self, b: Block) -> Inst {
        Inst::from_u32(self.starts[b.index()])
    }
    /// The block containing an instruction.
    pub fn block_of(&self, i: Inst) -> Option<Block> {
        match self.starts.binary_search(&(i.index() as u32)) {
            Ok(b) => Some(Block::new(b)),
            Err(0) => None,
            Err(b) => Some(Block::new(b - 1)),
        }
    }
    /// Successors of a block.
    pub fn succs(&self, b: Block) -> &[Block] {
        &self.succs[self.succ_off[b.index()] as usize..self.succ_off[b.index() + 1] as usize]
    }
    /// Predecessors of a block.
    pub fn preds(&self, b: Block) -> &[Block] {
        self.preds_of(b.index())
    }
    /// The block where a label is bound (the first bind if bound twice).
    pub fn label_block(&self, l: Label) -> Option<Block> {
        match self.label_block.get(l.index()) {
            Some(&b) if b != NONE => Some(Block::from_u32(b)),
            _ => None,
        }
    }
    /// Whether a label's address is taken (see the module docs).
    pub fn is_taken(&self, l: Label) -> bool {
        l.index() < self.taken.len() && self.taken.contains(l.index())
    }
    /// Whether a block is reachable.
    pub fn is_reachable(&self, b: Block) -> bool {
        self.reachable.contains(b.index())
    }
    /// Reachable blocks in reverse post-order (entry first).
    pub fn rpo(&self) -> &[Block] {
        &self.rpo
    }
    /// The immediate dominator of a reachable block (`None` for roots and
    /// unreachable blocks).
    pub fn idom(&self, b: Block) -> Option<Block> {
        match self.idom.get(b.index()) {
            Some(&d) if d != NONE => Some(Block::from_u32(d)),
            _ => None,
        }
    }
    /// Whether `a` dominates `b` (every block dominates itself). O(1).
    pub fn dominates(&self, a: Block, b: Block) -> bool {
        if a == b {
            return true;
        }
        match (
            self.dom_pre.get(a.index()),
            self.dom_pre.get(b.index()),
            self.dom_post.get(a.index()),
            self.dom_post.get(b.index()),
        ) {
            (Some(&pa), Some(&pb), Some(&qa), Some(&qb)) if pa != NONE && pb != NONE => {
                pa <= pb && qb <= qa
            }
            _ => false,
        }
    }
    /// Loop nesting depth of a block (0 outside loops).
    pub fn loop_depth(&self, b: Block) -> u32 {
        self.depth.get(b.index()).copied().unwrap_or(0)
    }
    /// The last block, if it can fall off the end of the function.
    pub fn falls_off_end(&self) -> Option<Block> {
        self.falls_off
    }
}

/// Removes the instructions of unreachable blocks (see the module docs for
/// what is reachable), then recomputes `cfg`. Returns how many instructions
/// were removed.
pub fn remove_unreachable(func: &mut Function, target: &dyn Target, cfg: &mut Cfg) -> usize {
    let n = func.num_insts();
    if cfg.blocks().all(|b| cfg.is_reachable(b)) {
        return 0;
    }
    let mut keep = FixedBitSet::with_capacity(n);
    for b in cfg.blocks() {
        if cfg.is_reachable(b) {
            for i in cfg.insts(b, func) {
                keep.insert(i);
            }
        }
    }
    let removed = n - keep.count_ones(..);
    if removed == 0 {
        return 0;
    }
    let (insts, ops) = func.take_insts();
    let mut out = func.take_spare();
    for (i, d) in insts.iter() {
        if keep.contains(i.index()) {
            out.push_tagged(d.kind, &ops[d.ops_range()], d.tag().unwrap_or(NO_TAG));
        }
    }
    func.set_insts(out.insts, out.ops, out.kinds);
    func.put_spare(insts, ops);
    cfg.compute(func, target);
    removed
}
