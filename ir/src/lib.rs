//! The virtual-register function IR of jitforge.

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
