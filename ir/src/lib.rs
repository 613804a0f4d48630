//! The virtual-register function IR of jitforge: what the Compiler builds and
//! the register allocator consumes.
//!
//! It keeps AsmJit's user model: an instruction is a *target instruction* (an
//! opaque [`TargetInst`] id the target interprets) whose operands may be
//! virtual registers (or 8/16/32-bit views of them), physical registers,
//! memory, immediates or labels. It is not SSA: a virtual register may be
//! written many times, and two-address forms stay as written. The crate
//! knows nothing about x86 encodings; a [`Target`] supplies names, operand
//! facts and calling conventions as data.
//!
//! # Modules
//!
//! - [`entities`]: ids (virtual registers, labels, instructions, stack slots,
//!   constants, signatures, calls, jump tables, blocks), register classes,
//!   physical registers and register sets, views, value types.
//! - [`function`]: the function (a linear instruction list with label binds,
//!   operands in one shared pool), operands, pseudo-instructions and the
//!   building API.
//! - [`target`]: the [`Target`] trait and the operand facts it supplies.
//! - [`facts`]: facts of every instruction (target and pseudo) and the
//!   per-virtual-register accesses the allocator needs.
//! - [`abi`]: calling conventions as data and argument/return assignment.
//! - [`lower`]: calling-convention lowering before allocation.
//! - [`cfg`](mod@cfg): blocks, edges, reverse post-order, dominators, loop depth,
//!   unreachable-block removal.
//! - [`verify`]: structural checks with positions.
//! - [`text`]: the text format (printer and parser).
//! - [`mock`]: a small x86-like target for tests and these docs.
//!
//! # Pseudo-instructions
//!
//! | text | [`InstKind`] | meaning |
//! |---|---|---|
//! | `entry %a, %b` | `Entry` | function entry; one register per parameter (written) |
//! | `ret %r` | `Ret` | return these values |
//! | `invoke sig0, callee, (args) -> (results)` | `Call` | call an address, label or register; arguments are registers or immediates (the same register may appear twice) |
//! | `tailjump sig0, callee, (args)` | `TailJump` | jump to another function; ends the path, not a CFG edge |
//! | `copy dst, src` | `Copy` | move (register, memory or immediate source) |
//! | `addr %p, [mem]` | `Addr` | address of memory |
//! | `jump .l` | `Jump` | unconditional jump |
//! | `jumpind %t, jt0` | `JumpIndirect` | indirect jump, with its annotated targets (or without: it may reach every block whose label is taken) |
//! | `pin %ctx, r15` | (declaration) | `%ctx` lives in r15 for the whole function, which is reserved |
//!
//! Conditional branches are target instructions whose facts say
//! [`Flow::CondBranch`] (`jne .loop`): a label operand plus fallthrough.
//!
//! # Text format
//!
//! One or more functions; `;` starts a comment; one declaration, label or
//! instruction per line. Virtual registers are `%name` (or `%N` when unnamed;
//! a name that is not a unique identifier is printed `%N "the name"`),
//! labels `.name`, stack slots `$N`, constants `#N`, signatures `sigN`, jump
//! tables `jtN`. Physical registers use the target's names (`rax`, `eax`,
//! `ah`, `xmm3`, `k1`); any register can also be written `!gp3`, `!vec17.x`.
//! Views of virtual registers: `%v.b` (low 8 bits), `.h` (bits 8..15),
//! `.w`, `.d`, `.q`, `.x`, `.y`, `.z` (16..512 bits). A virtual register with
//! a fixed register (after lowering) is `%v@rdi`. Target mnemonics are the
//! target's names; one that collides with a keyword is written `@name`.
//!
//! ```text
//! module    = { function } ;
//! function  = "func" name signature "{" NL { line NL } "}" ;
//! name      = IDENT | STRING ;
//! signature = "(" [ types ] ")" "->" "(" [ types ] ")" CONV ;   (types may end with "...")
//! type      = "i8" | "u8" | "i16" | "u16" | "i32" | "i64" | "f32" | "f64" | "v128" | "v256" | "v512" ;
//! line      = decl | LABEL ":" | inst ;
//! decl      = CLASS BITS vreg [STRING] { "," vreg [STRING] }        e.g. gp64 %a, %b / vec128 %x
//!           | "labels" LABEL [STRING] { "," LABEL [STRING] }
//!           | "slot" "$"N "size" N "align" N
//!           | "const" "#"N "align" N "=" "[" { HEXBYTE } "]"
//!           | "sig" "sig"N "=" signature
//!           | "jumptable" "jt"N "=" "[" [ LABEL { "," LABEL } ] "]"
//!           | "pin" VREG "," preg
//!           | "lowered" "out_args" N "call_align" N "ret_pop" N ;
//! inst      = "entry" [ops] | "ret" [ops] | "copy" op "," op | "addr" op "," mem
//!           | "jump" LABEL | "jumpind" [op] [","] ["jt"N]
//!           | "invoke" "sig"N "," op "," "(" [ops] ")" "->" "(" [ops] ")"
//!           | "tailjump" "sig"N "," op "," "(" [ops] ")"
//!           | ["@"] MNEMONIC [ops] ;
//! ops       = op { "," op } ;
//! op        = reg | VREG "@" preg | mem | ["-"] NUMBER | LABEL ;
//! reg       = VREG ["." VIEW] | preg ;
//! preg      = REGNAME | "!" CLASS HW ["." VIEW] ;
//! mem       = [SIZE] "[" term { ("+" | "-") term } "]" ;
//! term      = reg ["*" SCALE] | NUMBER | "$"N | "#"N | LABEL | "jt"N | "inargs" | "outargs" ;
//! SIZE      = "byte" | "word" | "dword" | "qword" | "tword" | "xmmword" | "ymmword" | "zmmword" | "m"N ;
//! CLASS     = "gp" | "vec" | "mask" | "x87" | "cls4" .. "cls7" ;   BITS = size in bits
//! NUMBER    = decimal | "0x" hex ;   VREG = "%" (IDENT | DIGITS) ;   LABEL = "." (IDENT | DIGITS)
//! ```
//!
//! `inargs` is the incoming stack-argument area (just above the return
//! address), `outargs` the outgoing one (the stack pointer at a call); both
//! appear after lowering. Calling conventions are named by the target
//! (`sysv64`, `win64`, `vectorcall64`, `cdecl`, `stdcall`, `fastcall`,
//! `vectorcall` for the mock and x86 targets). The 8- and 16-bit integer
//! types are signed (`i8`, `i16`) or unsigned (`u8`, `u16`): lowering
//! passes such an argument widened to 32 bits by sign or zero extension
//! ([`lower`] module docs). In a 32-bit convention an `i64` parameter or
//! result is two 32-bit values, low half then high half, wherever values
//! are listed (`entry %lo, %hi`, `invoke sig0, f, (%lo, %hi) -> (%l, %h)`,
//! `ret %lo, %hi`; [`abi::arg_operand_types`], [`abi::ret_operand_types`]).
//!
//! ## A loop summing an array
//!
//! ```
//! use jitforge_ir::{mock::MockX86, text, verify::verify, cfg::Cfg};
//! let t = MockX86::new();
//! let src = "\
//! func sum_array(i64, i64) -> (i64) sysv64 {
//!   gp64 %p, %n, %sum, %i
//!   labels .loop, .done
//!   entry %p, %n
//!   xor %sum, %sum
//!   xor %i, %i
//!   test %n, %n
//!   je .done
//! .loop:
//!   add %sum, qword [%p + %i*8]
//!   add %i, 1
//!   cmp %i, %n
//!   jne .loop
//! .done:
//!   ret %sum
//! }
//! ";
//! let f = text::parse_function(src, &t)?;
//! verify(&f, &t).expect("valid");
//! assert_eq!(text::print_function(&f, &t), src);
//! let cfg = Cfg::of(&f, &t);
//! assert_eq!(cfg.num_blocks(), 3);
//! assert_eq!(cfg.loop_depth(cfg.label_block(jitforge_ir::Label::from_u32(0)).unwrap()), 1);
//! # Ok::<(), jitforge_ir::text::ParseError>(())
//! ```
//!
//! ## A call with mixed integer and double arguments, and its lowering
//!
//! ```
//! use jitforge_ir::{mock::MockX86, text, verify::verify, lower::lower};
//! let t = MockX86::new();
//! let src = "\
//! func caller(i64, f64) -> (f64) sysv64 {
//!   gp64 %n
//!   vec64 %x, %y, %r
//!   sig sig0 = (i64, f64, i32, f64) -> (f64) sysv64
//!   entry %n, %x
//!   movsd %y, %x
//!   addsd %y, %x
//!   invoke sig0, .scale, (%n, %x, 3, %y) -> (%r)
//!   ret %r
//! }
//!
//! func scale(i64, f64, i32, f64) -> (f64) sysv64 {
//!   gp64 %a
//!   gp32 %k
//!   vec64 %b, %c, %t
//!   entry %a, %b, %k, %c
//!   cvtsi2sd %t, %a
//!   mulsd %t, %b
//!   addsd %t, %c
//!   ret %t
//! }
//! ";
//! let mut m = text::parse_module(src, &t)?;
//! for f in &m {
//!     verify(f, &t).expect("valid");
//! }
//! let caller = &mut m[0];
//! lower(caller, &t).expect("lowered");
//! verify(caller, &t).expect("still valid");
//! assert_eq!(text::print_function(caller, &t), "\
//! func caller(i64, f64) -> (f64) sysv64 {
//!   gp64 %n
//!   vec64 %x, %y, %r
//!   gp32 %4
//!   labels .scale
//!   sig sig0 = (i64, f64, i32, f64) -> (f64) sysv64
//!   lowered out_args 0 call_align 16 ret_pop 0
//!   entry %n@rdi, %x@xmm0
//!   movsd %y, %x
//!   addsd %y, %x
//!   copy %4, 3
//!   invoke sig0, .scale, (%n@rdi, %x@xmm0, %4@rsi, %y@xmm1) -> (%r@xmm0)
//!   ret %r@xmm0
//! }
//! ");
//! # Ok::<(), jitforge_ir::text::ParseError>(())
//! ```
//!
//! The lowered call reads `%n` in rdi, `%x` in xmm0, the immediate 3
//! (materialized in a fresh register) in esi and `%y` in xmm1, defines `%r`
//! in xmm0, and clobbers System V's caller-saved registers (its facts, from
//! [`Function::inst_facts`]).
//!
//! ## A jump table
//!
//! ```
//! use jitforge_ir::{mock::MockX86, text, verify::verify, cfg::Cfg, Block};
//! let t = MockX86::new();
//! let src = "\
//! func pick(i64) -> (i64) sysv64 {
//!   gp64 %i, %t, %r
//!   labels .zero, .one, .two, .other
//!   jumptable jt0 = [.zero, .one, .two]
//!   entry %i
//!   cmp %i, 2
//!   jg .other
//!   lea %t, [jt0]
//!   jumpind qword [%t + %i*8], jt0
//! .zero:
//!   mov %r, 10
//!   jump .other
//! .one:
//!   mov %r, 20
//!   ret %r
//! .two:
//!   mov %r, 30
//!   ret %r
//! .other:
//!   mov %r, -1
//!   ret %r
//! }
//! ";
//! let f = text::parse_function(src, &t)?;
//! verify(&f, &t).expect("valid");
//! let cfg = Cfg::of(&f, &t);
//! let b = |i| Block::from_u32(i);
//! assert_eq!(cfg.succs(b(1)), &[b(2), b(3), b(4)]);
//! assert_eq!(text::print_function(&f, &t), src);
//! # Ok::<(), jitforge_ir::text::ParseError>(())
//! ```
//!
//! # Building through the API
//!
//! ```
//! use jitforge_ir::*;
//! use jitforge_ir::mock::MockX86;
//! let t = MockX86::new();
//! let sig = Signature::new(t.conv("win64"), &[ValType::I64], &[ValType::I64]);
//! let mut f = Function::new("inc", sig);
//! let x = f.new_gp(8, "x");
//! f.entry(&[Operand::v(x)]).unwrap();
//! f.inst(t.id("add"), &[Operand::v(x), Operand::Imm(1)]).unwrap();
//! f.ret(&[Operand::v(x)]).unwrap();
//! assert!(verify::verify(&f, &t).is_ok());
//! lower::lower(&mut f, &t).unwrap();
//! assert!(text::print_function(&f, &t).contains("entry %x@rcx"));
//! ```
//!
//! # Fuzzing
//!
//! [`text::fuzz_text`] is the entry point for a cargo-fuzz target
//! (`fuzz_target!(|data: &[u8]| jitforge_ir::text::fuzz_text(data));`): it
//! parses any bytes, and checks that whatever parses prints and parses back
//! equal, and verifies, lowers and gets a CFG without panicking. Without
//! cargo-fuzz, a long mutation run:
//! `IR_FUZZ_ITERS=1000000 cargo test -p jitforge-ir --release --test text long_fuzz -- --ignored --nocapture`.
//!
//! # Memory
//!
//! An instruction costs one [`InstData`] (16 bytes) plus its operands in the
//! shared pool (24 bytes each); [`Function::clear`] keeps every buffer for the
//! next function, so building many small functions does not touch the heap.

pub mod abi;
pub mod cfg;
pub mod entities;
pub mod facts;
pub mod function;
pub mod lower;
pub mod mock;
pub mod target;
pub mod text;
pub mod verify;

pub use entities::*;
pub use function::*;
pub use target::*;
