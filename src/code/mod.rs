//! The code buffer: [`CodeHolder`] with sections, labels, fixups and
//! relocations, the destination every emitter writes to.
//!
//! Labels are resolved as soon as they are bound: a fixup to a label in the
//! same section is patched at `bind`, one across sections when the sections
//! are laid out. Uses of absolute addresses (and of labels from 32-bit code)
//! become relocations applied when the code is placed at its final address
//! ([`CodeHolder::relocate_to`]), which is what [`crate::jit::JitRuntime`] does.

mod holder;
mod label;
mod names;

#[cfg(feature = "compiler")]
pub(crate) use holder::release_spare_buffers;
pub use holder::{Arch, CodeHolder, FixupKind, Section, SectionId, SectionKind};
pub use label::Label;
pub(crate) use names::NameTable;
