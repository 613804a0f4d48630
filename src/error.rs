//! The error type of every fallible jitforge operation.

use std::fmt;

/// Everything that can go wrong while generating code. Each variant says what
/// was wrong in words a user can act on; none of them leaves wrong bytes behind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No form of the mnemonic accepts these operands (or options) in this mode.
    InvalidInstruction {
        /// The instruction as Intel text, e.g. `add eax, xmm0`.
        instruction: String,
        /// Why no form applies.
        reason: String,
    },
    /// A label that this code holder did not create.
    InvalidLabel {
        /// The label's id.
        id: u32,
    },
    /// `bind` on a label that is already bound.
    LabelAlreadyBound {
        /// The label's name (or `L<id>`).
        label: String,
    },
    /// Two labels with the same name.
    DuplicateLabelName {
        /// The name.
        name: String,
    },
    /// Code refers to a label that was never bound.
    UnboundLabel {
        /// The label's name (or `L<id>`).
        label: String,
    },
    /// A short (rel8) jump whose target is out of reach.
    ShortJumpOutOfRange {
        /// The label's name (or `L<id>`).
        label: String,
        /// The distance that did not fit in a signed byte.
        distance: i64,
    },
    /// A displacement or relocated value that does not fit its field.
    DisplacementOutOfRange {
        /// What the value is (e.g. `rel32 to 0x7f0000001000`).
        what: String,
        /// The value.
        value: i64,
    },
    /// An invalid argument to a code-holder operation (alignment not a power of two, ...).
    InvalidArgument {
        /// What was wrong.
        message: String,
    },
    /// Executable memory could not be provided.
    Jit(crate::jit::JitError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInstruction {
                instruction,
                reason,
            } => {
                write!(f, "invalid instruction `{instruction}`: {reason}")
            }
            Error::InvalidLabel { id } => {
                write!(f, "label L{id} does not belong to this code holder")
            }
            Error::LabelAlreadyBound { label } => write!(f, "label {label} is already bound"),
            Error::DuplicateLabelName { name } => {
                write!(f, "a label named {name:?} already exists")
            }
            Error::UnboundLabel { label } => write!(f, "label {label} is used but never bound"),
            Error::ShortJumpOutOfRange { label, distance } => {
                write!(
                    f,
                    "short jump to {label} does not reach: distance {distance} is outside -128..127"
                )
            }
            Error::DisplacementOutOfRange { what, value } => {
                write!(f, "{what}: value {value:#x} does not fit its field")
            }
            Error::InvalidArgument { message } => f.write_str(message),
            Error::Jit(e) => write!(f, "executable memory: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::jit::JitError> for Error {
    fn from(e: crate::jit::JitError) -> Error {
        Error::Jit(e)
    }
}

/// `Result` with jitforge's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
