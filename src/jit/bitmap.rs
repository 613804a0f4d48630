//! A fixed-size bitmap with the range operations the JIT allocator needs:
//! set/clear a run of bits and find the first run of clear bits.
//!
//! One bit stands for one granule of a region (set = in use). Searches work a
//! 64-bit word at a time, so skipping full or empty stretches is cheap.

/// A fixed-length bitmap of `len` bits, all clear initially.
#[derive(Debug, Clone)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    /// A bitmap of `len` clear bits.
    pub(crate) fn new(len: usize) -> Self {
        Bitmap {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Number of bits.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether bit `index` is set.
    pub(crate) fn get(&self, index: usize) -> bool {
        debug_assert!(index < self.len);
        self.words[index / 64] & (1u64 << (index % 64)) != 0
    }

    /// Calls `f` with each word touched by bits `start..start + count` and the
    /// mask of those bits within it.
    fn for_each_mask(&mut self, start: usize, count: usize, mut f: impl FnMut(&mut u64, u64)) {
        debug_assert!(start + count <= self.len);
        let bit = start % 64;
        if count <= 64 - bit {
            // Within one word (most allocations): one mask, no loop.
            if count != 0 {
                f(
                    &mut self.words[start / 64],
                    (u64::MAX >> (64 - count)) << bit,
                );
            }
            return;
        }
        let end = start + count;
        let mut i = start;
        while i < end {
            let bit = i % 64;
            let take = (64 - bit).min(end - i);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << bit
            };
            f(&mut self.words[i / 64], mask);
            i += take;
        }
    }

    /// Sets bits `start..start + count`.
    pub(crate) fn set_range(&mut self, start: usize, count: usize) {
        self.for_each_mask(start, count, |word, mask| *word |= mask);
    }

    /// Clears bits `start..start + count`.
    pub(crate) fn clear_range(&mut self, start: usize, count: usize) {
        self.for_each_mask(start, count, |word, mask| *word &= !mask);
    }

    /// Whether any bit of `start..start + count` is set.
    pub(crate) fn any_in_range(&self, start: usize, count: usize) -> bool {
        start < start + count && self.next_one(start, start + count) < start + count
    }

    /// Whether bits `start..start + count` are all clear and lie in one
    /// word (`false` otherwise, or for an empty or out-of-range run): the
    /// allocator's quick test at its bump hint, one load and mask.
    #[inline]
    pub(crate) fn is_clear_within_word(&self, start: usize, count: usize) -> bool {
        let bit = start % 64;
        if count == 0 || count > 64 - bit || start + count > self.len {
            return false;
        }
        let mask = (u64::MAX >> (64 - count)) << bit;
        self.words[start / 64] & mask == 0
    }

    /// Whether all bits of `start..start + count` are set.
    #[cfg(test)]
    pub(crate) fn all_in_range(&self, start: usize, count: usize) -> bool {
        (start..start + count).all(|i| self.get(i))
    }

    /// The first clear bit at or after `from`, if any.
    #[cfg(test)]
    pub(crate) fn next_zero(&self, from: usize) -> Option<usize> {
        self.view().next_zero(from)
    }

    /// The first set bit in `from..limit`, or `limit` if there is none
    /// (`limit <= len`).
    pub(crate) fn next_one(&self, from: usize, limit: usize) -> usize {
        self.view().next_one(from, limit)
    }

    /// The start of the first run of `count` clear bits at or after `from`
    /// (first fit).
    pub(crate) fn find_zero_run(&self, count: usize, from: usize) -> Option<usize> {
        self.view().find_zero_run(count, from)
    }

    /// Like [`Bitmap::find_zero_run`], over the union of `self` and `other`
    /// (same length): the first run of bits clear in both.
    pub(crate) fn find_zero_run_in_union(
        &self,
        other: &Bitmap,
        count: usize,
        from: usize,
    ) -> Option<usize> {
        debug_assert_eq!(self.len, other.len);
        View {
            len: self.len,
            word: |w: usize| self.words[w] | other.words[w],
        }
        .find_zero_run(count, from)
    }

    fn view(&self) -> View<impl Fn(usize) -> u64 + '_> {
        View {
            len: self.len,
            word: |w: usize| self.words[w],
        }
    }
}

/// Read-only searches over `len` bits given word by word (a bitmap or the
/// union of two).
struct View<W: Fn(usize) -> u64> {
    len: usize,
    word: W,
}

impl<W: Fn(usize) -> u64> View<W> {
    fn words(&self) -> usize {
        self.len.div_ceil(64)
    }

    fn next_zero(&self, from: usize) -> Option<usize> {
        if from >= self.len {
            return None;
        }
        let mut w = from / 64;
        let mut word = !(self.word)(w) & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let index = w * 64 + word.trailing_zeros() as usize;
                return (index < self.len).then_some(index);
            }
            w += 1;
            if w >= self.words() {
                return None;
            }
            word = !(self.word)(w);
        }
    }

    fn next_one(&self, from: usize, limit: usize) -> usize {
        debug_assert!(limit <= self.len);
        if from >= limit {
            return limit;
        }
        let mut w = from / 64;
        let mut word = (self.word)(w) & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return (w * 64 + word.trailing_zeros() as usize).min(limit);
            }
            w += 1;
            if w * 64 >= limit {
                return limit;
            }
            word = (self.word)(w);
        }
    }

    fn find_zero_run(&self, count: usize, from: usize) -> Option<usize> {
        if count == 0 {
            return None;
        }
        let mut i = from;
        loop {
            i = self.next_zero(i)?;
            let end = i.checked_add(count)?;
            if end > self.len {
                return None;
            }
            let one = self.next_one(i, end);
            if one == end {
                return Some(i);
            }
            i = one + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear_ranges_across_words() {
        let mut bitmap = Bitmap::new(200);
        bitmap.set_range(60, 70);
        assert!(!bitmap.get(59));
        assert!(bitmap.all_in_range(60, 70));
        assert!(!bitmap.get(130));
        bitmap.clear_range(64, 64);
        assert!(bitmap.all_in_range(60, 4));
        assert!(!bitmap.any_in_range(64, 64));
        assert!(bitmap.all_in_range(128, 2));
        assert_eq!(bitmap.len(), 200);
    }

    #[test]
    fn next_zero_and_next_one() {
        let mut bitmap = Bitmap::new(130);
        bitmap.set_range(0, 129);
        assert_eq!(bitmap.next_zero(0), Some(129));
        assert_eq!(bitmap.next_zero(130), None);
        bitmap.set_range(129, 1);
        assert_eq!(bitmap.next_zero(0), None);
        bitmap.clear_range(0, 130);
        assert_eq!(bitmap.next_one(0, 130), 130);
        bitmap.set_range(100, 1);
        assert_eq!(bitmap.next_one(0, 130), 100);
        assert_eq!(bitmap.next_one(0, 90), 90);
        assert_eq!(bitmap.next_one(101, 130), 130);
    }

    #[test]
    fn first_fit_runs() {
        let mut bitmap = Bitmap::new(256);
        assert_eq!(bitmap.find_zero_run(256, 0), Some(0));
        assert_eq!(bitmap.find_zero_run(257, 0), None);
        assert_eq!(bitmap.find_zero_run(0, 0), None);
        bitmap.set_range(0, 10);
        bitmap.set_range(12, 50);
        // The two-bit gap at 10 fits 2 but not 3.
        assert_eq!(bitmap.find_zero_run(2, 0), Some(10));
        assert_eq!(bitmap.find_zero_run(3, 0), Some(62));
        assert_eq!(bitmap.find_zero_run(194, 0), Some(62));
        assert_eq!(bitmap.find_zero_run(195, 0), None);
        bitmap.set_range(62, 194);
        assert_eq!(bitmap.find_zero_run(1, 11), Some(11));
        assert_eq!(bitmap.find_zero_run(1, 12), None);
    }

    #[test]
    fn runs_in_a_union() {
        let mut a = Bitmap::new(100);
        let mut b = Bitmap::new(100);
        a.set_range(0, 10);
        b.set_range(10, 10);
        a.set_range(25, 1);
        assert_eq!(a.find_zero_run(10, 0), Some(10));
        assert_eq!(a.find_zero_run_in_union(&b, 5, 0), Some(20));
        assert_eq!(a.find_zero_run_in_union(&b, 6, 0), Some(26));
        b.set_range(26, 74);
        assert_eq!(a.find_zero_run_in_union(&b, 1, 0), Some(20));
        assert_eq!(a.find_zero_run_in_union(&b, 6, 0), None);
    }

    #[test]
    fn matches_a_naive_model() {
        // A tiny deterministic pseudo-random walk compared with a Vec<bool>.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let len = 333;
        let mut bitmap = Bitmap::new(len);
        let mut model = vec![false; len];
        for _ in 0..2000 {
            let start = (next() % len as u64) as usize;
            let count = (next() % 40) as usize;
            let count = count.min(len - start);
            if next() % 2 == 0 {
                bitmap.set_range(start, count);
                model[start..start + count]
                    .iter_mut()
                    .for_each(|b| *b = true);
            } else {
                bitmap.clear_range(start, count);
                model[start..start + count]
                    .iter_mut()
                    .for_each(|b| *b = false);
            }
            let want = (next() % 20 + 1) as usize;
            let from = (next() % len as u64) as usize;
            let expected =
                (from..len).find(|&i| i + want <= len && model[i..i + want].iter().all(|b| !b));
            assert_eq!(bitmap.find_zero_run(want, from), expected);
            let in_one_word = from % 64 + want <= 64 && from + want <= len;
            assert_eq!(
                bitmap.is_clear_within_word(from, want),
                in_one_word && model[from..from + want].iter().all(|b| !b)
            );
            assert_eq!(
                bitmap.any_in_range(start, count),
                model[start..start + count].iter().any(|&b| b)
            );
        }
    }
}
