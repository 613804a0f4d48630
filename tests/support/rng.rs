//! The tests' deterministic generator (the workloads' 64-bit LCG, upper
//! bits): the same seed gives the same cases on every machine, with no
//! random-number crate; and the number of cases a random test runs.

/// A linear congruential generator.
pub struct Rng(pub u64);

impl Rng {
    /// The next 31-bit value.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// How many cases a random test runs: the environment variable `name` (a
/// longer run, e.g. `COMPAT32_CASES=1000000`) or `default`.
#[allow(dead_code)] // not every test that draws numbers takes a count
pub fn cases(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
