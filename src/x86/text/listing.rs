//! Listings: a [`Logger`] that records every emitted item (offset, bytes,
//! text) and prints them as `offset  bytes  text` lines. Attaching it to an
//! [`Assembler`](crate::x86::Assembler) never changes the bytes.

use crate::x86::Logger;
use std::fmt;

/// One line of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingEntry {
    /// Offset of the item (in its section, or in the laid-out code).
    pub offset: usize,
    /// Its bytes (empty for a label).
    pub bytes: Vec<u8>,
    /// Its text (an instruction, `name:`, a directive).
    pub text: String,
}

/// A listing: a [`Logger`] that keeps every item it is given.
///
/// ```
/// use jitforge::code::{Arch, CodeHolder};
/// use jitforge::x86::text::Listing;
/// use jitforge::x86::*;
///
/// let mut listing = Listing::new();
/// let mut code = CodeHolder::new(Arch::X64);
/// let mut a = Assembler::new(&mut code);
/// a.set_logger(Some(&mut listing));
/// a.mov(eax, 1)?;
/// a.ret()?;
/// drop(a);
/// assert_eq!(listing.entries.len(), 2);
/// assert_eq!(listing.to_string().lines().next().unwrap(), "00000000  b8 01 00 00 00                 mov eax, 0x1");
/// # Ok::<(), jitforge::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The items, in emission order.
    pub entries: Vec<ListingEntry>,
}

impl Listing {
    /// An empty listing.
    pub fn new() -> Listing {
        Listing::default()
    }

    /// All bytes of the listing, concatenated (gaps from alignment are not included).
    pub fn bytes(&self) -> Vec<u8> {
        self.entries
            .iter()
            .flat_map(|e| e.bytes.iter().copied())
            .collect()
    }
}

impl Logger for Listing {
    fn log(&mut self, offset: usize, bytes: &[u8], text: &str) {
        self.entries.push(ListingEntry {
            offset,
            bytes: bytes.to_vec(),
            text: text.to_string(),
        });
    }
}

/// Hex bytes separated by spaces (`48 89 c8`).
pub fn hex_spaced(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Hex bytes without separators (`4889c8`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Bytes per listing line; longer items continue on following lines.
const BYTES_PER_LINE: usize = 10;

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            let mut chunks = e.bytes.chunks(BYTES_PER_LINE);
            let first = chunks.next().unwrap_or(&[]);
            writeln!(
                f,
                "{:08x}  {:<width$}  {}",
                e.offset,
                hex_spaced(first),
                e.text,
                width = BYTES_PER_LINE * 3 - 1
            )?;
            for (i, chunk) in chunks.enumerate() {
                writeln!(
                    f,
                    "{:08x}  {}",
                    e.offset + (i + 1) * BYTES_PER_LINE,
                    hex_spaced(chunk)
                )?;
            }
        }
        Ok(())
    }
}
