//! [`NameTable`]: names mapped to numbers, for the code holder's named
//! labels and the Compiler's functions.
//!
//! The Compiler names one label per function, and a program of many small
//! functions (one code holder and one Compiler each) paid for a hash map
//! per name: a `String` key, a name copy for listings, SipHash, and their
//! allocations and frees. Here the names lie end to end in one string and
//! are found by a scan while there are few; past that an open-addressing
//! index over them is built. Clearing keeps every buffer.

/// Names (unique) mapped to `u32` values, in insertion order.
#[derive(Clone, Debug, Default)]
pub(crate) struct NameTable {
    /// Every name, one after another.
    text: String,
    /// Per name in insertion order: where it ends in `text` (it starts
    /// where the one before ends) and its value.
    entries: Vec<(usize, u32)>,
    /// Open addressing over `entries` (entry index + 1; 0 is empty), a
    /// power of two at least twice as long as `entries`; empty while
    /// there are at most [`NameTable::SCAN`] names.
    index: Vec<u32>,
}

impl NameTable {
    /// Names found by a scan, without an index (a Compiler's code holder
    /// usually has one).
    const SCAN: usize = 8;

    /// The name of entry `i`.
    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.entries[i - 1].0 };
        &self.text[start..self.entries[i].0]
    }

    /// The entry named `name`.
    fn find(&self, name: &str) -> Option<usize> {
        if self.index.is_empty() {
            return (0..self.entries.len()).find(|&i| self.name(i) == name);
        }
        let mask = self.index.len() - 1;
        let mut slot = hash(name) as usize & mask;
        loop {
            let at = self.index[slot] as usize;
            if at == 0 {
                return None;
            }
            if self.name(at - 1) == name {
                return Some(at - 1);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.find(name).map(|i| self.entries[i].1)
    }

    /// Adds `name` with `value`; `false` (and nothing added) when the name
    /// is there already.
    pub(crate) fn insert(&mut self, name: &str, value: u32) -> bool {
        if self.find(name).is_some() {
            return false;
        }
        self.text.push_str(name);
        self.entries.push((self.text.len(), value));
        if self.entries.len() > Self::SCAN {
            if self.index.len() < 2 * self.entries.len() {
                self.rebuild_index();
            } else {
                self.place(self.entries.len() - 1);
            }
        }
        true
    }

    /// Puts entry `i` into the index.
    fn place(&mut self, i: usize) {
        let mask = self.index.len() - 1;
        let mut slot = hash(self.name(i)) as usize & mask;
        while self.index[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.index[slot] = i as u32 + 1;
    }

    fn rebuild_index(&mut self) {
        let len = (4 * self.entries.len()).next_power_of_two();
        self.index.clear();
        self.index.resize(len, 0);
        for i in 0..self.entries.len() {
            self.place(i);
        }
    }

    /// The name whose value is `value`, when values were inserted in
    /// increasing order (label ids are).
    pub(crate) fn name_of_sorted(&self, value: u32) -> Option<&str> {
        let i = self
            .entries
            .binary_search_by_key(&value, |&(_, v)| v)
            .ok()?;
        Some(self.name(i))
    }

    /// The name whose value is `value` (a scan).
    // Only the Compiler's listings and errors ask (and this module's tests).
    #[cfg_attr(not(feature = "compiler"), allow(dead_code))]
    pub(crate) fn name_of(&self, value: u32) -> Option<&str> {
        let i = self.entries.iter().position(|&(_, v)| v == value)?;
        Some(self.name(i))
    }

    /// Empties the table, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.index.clear();
    }
}

/// FNV-1a over the name's bytes (names are short; the index only needs
/// them spread, not protected from chosen collisions).
fn hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_by_scan_and_through_the_index() {
        let mut t = NameTable::default();
        for i in 0..100u32 {
            assert!(t.insert(&format!("name{i}"), i * 3));
            // Every name so far is found, before and after the index exists.
            for j in 0..=i {
                assert_eq!(t.get(&format!("name{j}")), Some(j * 3));
            }
            assert_eq!(t.get(&format!("name{}", i + 1)), None);
        }
        assert!(!t.insert("name42", 7), "a name is added once");
        assert_eq!(t.get("name42"), Some(126));
        assert_eq!(t.name_of_sorted(126), Some("name42"));
        assert_eq!(t.name_of(297), Some("name99"));
        assert_eq!(t.name_of_sorted(1), None);
        t.clear();
        assert_eq!(t.get("name0"), None);
        assert!(t.insert("", 5));
        assert_eq!(t.get(""), Some(5));
    }
}
