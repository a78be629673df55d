//! The random start offsets that spread probes over their interval, so 10,000 targets do
//! not all connect at the same instant (`scheduler.rs`).
//!
//! Hand-written rather than the `rand` crate (three crates with its OS entropy source):
//! an offset needs no cryptographic or statistical quality, only numbers that differ
//! between targets and between runs. SplitMix64 (Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", 2014) gives that in a few lines, seeded either by a
//! test (reproducible) or by std's `RandomState`, whose keys the standard library draws
//! from the operating system once per process. Never use it where an attacker must not
//! guess the next value.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A SplitMix64 generator of start offsets.
#[derive(Clone, Debug)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// Seeded from the operating system (through std's `RandomState`): differs per run.
    pub fn from_os() -> Jitter {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x6269_6762_726f); // any input: the keys are what is random
        Jitter::seeded(hasher.finish())
    }

    /// Reproducible: the same seed gives the same offsets (tests).
    pub fn seeded(seed: u64) -> Jitter {
        Jitter { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `[0, bound)` (`0` when `bound` is 0), by multiply-shift: no modulo bias
    /// worth the name for bounds far below 2^64 (a probe interval in nanoseconds).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_below_the_bound_and_spread_over_it() {
        let mut j = Jitter::seeded(7);
        let bound = 2_000_000_000u64; // 2 s in nanoseconds
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let v = j.below(bound);
            assert!(v < bound);
            buckets[(v / (bound / 10)) as usize] += 1;
        }
        // Each tenth of the interval gets about 1,000 of 10,000 starts.
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
        assert_eq!(j.below(0), 0);
        assert_eq!(Jitter::seeded(0).below(1), 0);
    }

    /// Five draws below 2^40 from `j`.
    fn draws(mut j: Jitter) -> Vec<u64> {
        (0..5).map(|_| j.below(1 << 40)).collect()
    }

    #[test]
    fn a_seed_repeats_and_the_os_seed_differs_between_generators() {
        assert_eq!(draws(Jitter::seeded(42)), draws(Jitter::seeded(42)));
        assert_ne!(
            draws(Jitter::from_os()),
            draws(Jitter::from_os()),
            "two OS-seeded generators gave the same offsets"
        );
    }
}
