//! Typed errors: invalid input and impossible constraints.

use crate::function::{Block, Inst, PReg, RegClass, VReg};
use core::fmt;

/// Why allocation failed. The allocator returns these for any input it
/// cannot handle; it does not panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The function breaks a requirement of [`crate::Function`].
    InvalidInput(String),
    /// A value is used before any definition on some path from the entry.
    LiveInAtEntry(VReg),
    /// Two operands of one instruction need the same fixed register for
    /// different values (or at conflicting times).
    ConflictingFixed {
        /// The instruction.
        inst: Inst,
        /// The register.
        preg: PReg,
    },
    /// An instruction needs more registers of a class than can be allocated.
    OutOfRegisters {
        /// The instruction.
        inst: Inst,
        /// The class.
        class: RegClass,
    },
    /// The allocator's own consistency check failed (a bug; reported rather
    /// than panicking).
    Internal(String),
    /// The checker found a wrong allocation (a bug in the allocator or in the
    /// client's description of the function).
    Check(crate::checker::CheckError),
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidInput(msg.into())
    }

    pub(crate) fn block_msg(b: Block, msg: &str) -> Error {
        Error::InvalidInput(format!("{b}: {msg}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::LiveInAtEntry(v) => write!(f, "{v} is used before it is defined"),
            Error::ConflictingFixed { inst, preg } => {
                write!(f, "{inst}: conflicting fixed constraints on {preg}")
            }
            Error::OutOfRegisters { inst, class } => {
                write!(f, "{inst}: out of {class:?} registers")
            }
            Error::Internal(m) => write!(f, "internal allocator error: {m}"),
            Error::Check(e) => write!(f, "allocation check failed: {e}"),
        }
    }
}

impl std::error::Error for Error {}
