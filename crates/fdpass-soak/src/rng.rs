//! A small seeded generator: every random choice of a soak run comes from
//! one, so a printed seed replays the same choices.

use std::time::{SystemTime, UNIX_EPOCH};

/// The SplitMix64 finaliser: a good 64-bit mix of `x`.
///
/// ```
/// assert_ne!(fdpass_soak::rng::mix(1), fdpass_soak::rng::mix(2));
/// ```
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A seed from the clock, for runs that were not given one (it is printed so
/// that the run can be replayed).
pub fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(nanos ^ u64::from(std::process::id()))
}

/// SplitMix64: tiny, fast, and good enough to schedule faults.
///
/// ```
/// use fdpass_soak::rng::Rng;
/// let mut a = Rng::derive(42, 1);
/// let mut b = Rng::derive(42, 1);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.range(5, 9);
/// assert!((5..=9).contains(&x));
/// ```
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent stream `stream` of `seed` (one per process and run).
    pub fn derive(seed: u64, stream: u64) -> Rng {
        Rng::new(mix(seed ^ mix(stream.wrapping_add(0x5eed))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below(hi - lo + 1)
    }
}
