//! Randomness: file uids, and one small deterministic generator for
//! skiplist heights and simulated crash images.

/// A fresh random 128-bit file uid.
pub(crate) fn uid() -> [u8; 16] {
    let mut uid = [0u8; 16];
    if getrandom::fill(&mut uid).is_err() {
        // No OS randomness: fall back to time and address entropy. The uid
        // guards against swapped files; it is not a secret.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
            .to_le_bytes();
        let a = (&uid as *const _ as usize as u64).to_le_bytes();
        uid[..8].copy_from_slice(&t);
        uid[8..].copy_from_slice(&a);
    }
    uid
}

/// SplitMix64: fast, deterministic for a seed, and good enough for
/// everything here that is not a secret.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_sequence_and_uids_differ() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!(a.below(10) < 10);
        assert_eq!(a.below(0), 0);
        assert_ne!(uid(), uid());
    }
}
