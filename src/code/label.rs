//! Labels: names for positions in a [`super::CodeHolder`], bound once.

/// A label of a [`super::CodeHolder`]: a branch target or an address to embed.
/// Small and `Copy`; meaningful only in the code holder that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub(crate) u32);

impl Label {
    /// The label's number in its code holder.
    pub const fn id(self) -> u32 {
        self.0
    }
}
