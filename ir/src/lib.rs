//! The virtual-register function IR of jitforge.

pub mod abi;
pub mod entities;
pub mod facts;
pub mod function;
pub mod mock;
pub mod target;

pub use entities::*;
pub use function::*;
