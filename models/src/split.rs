//! The stratified train/validation/test split shared with the Python baselines.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Returns the `index`-th output (0-based) of a SplitMix64 generator seeded
/// with `seed`.
pub(crate) fn splitmix64(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic SplitMix64 stream for weight initialisation and shuffling.
pub(crate) struct Rng {
    seed: u64,
    index: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng { seed, index: 0 }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let value = splitmix64(self.seed, self.index);
        self.index += 1;
        value
    }

    /// Draws a uniform number from [0, 1) with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Row indices of the training, validation and test parts of a data set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    /// Splits rows 70/15/15 within each class.
    ///
    /// Row `i` gets the key `splitmix64(seed, i)`. Within each class, rows
    /// are ordered by (key, i). The first floor(70 n / 100) go to train, the
    /// next floor(15 n / 100) to validation and the rest to test. The
    /// scikit-learn comparison script `models/bench/compare.py` implements
    /// the same rule, so both sides score the same test rows.
    pub fn stratified(labels: &[bool], seed: u64) -> Split {
        let mut split = Split {
            seed,
            train: Vec::new(),
            validation: Vec::new(),
            test: Vec::new(),
        };
        for class in [false, true] {
            let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
            rows.sort_by_key(|&i| (splitmix64(seed, i as u64), i));
            let n_train = rows.len() * 70 / 100;
            let n_validation = rows.len() * 15 / 100;
            split.train.extend(&rows[..n_train]);
            split
                .validation
                .extend(&rows[n_train..n_train + n_validation]);
            split.test.extend(&rows[n_train + n_validation..]);
        }
        split.train.sort_unstable();
        split.validation.sort_unstable();
        split.test.sort_unstable();
        split
    }

    /// Returns the first 16 hex digits of SHA-256 over the comma-joined test
    /// row indices, to check that two programs score the same rows.
    pub fn test_fingerprint(&self) -> String {
        let text: Vec<String> = self.test.iter().map(usize::to_string).collect();
        let digest = Sha256::digest(text.join(",").as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_outputs() {
        // The first two outputs for seed 0; `splitmix64` in
        // models/bench/compare.py returns the same values.
        assert_eq!(splitmix64(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0, 1), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn stratified_split_keeps_class_shares() {
        let labels: Vec<bool> = (0..200).map(|i| i % 4 == 0).collect();

        let split = Split::stratified(&labels, 7);

        let positives = |rows: &[usize]| rows.iter().filter(|&&i| labels[i]).count();
        assert_eq!((split.train.len(), positives(&split.train)), (140, 35));
        // 150 negatives: 105, floor(22.5) = 22, 23; 50 positives: 35, 7, 8.
        assert_eq!(
            (split.validation.len(), positives(&split.validation)),
            (29, 7)
        );
        assert_eq!((split.test.len(), positives(&split.test)), (31, 8));
    }

    #[test]
    fn stratified_split_is_a_partition() {
        let labels: Vec<bool> = (0..101).map(|i| i % 3 == 0).collect();

        let split = Split::stratified(&labels, 42);

        let mut all: Vec<usize> = [&split.train[..], &split.validation, &split.test].concat();
        all.sort_unstable();
        assert_eq!(all, (0..101).collect::<Vec<_>>());
    }

    #[test]
    fn stratified_split_depends_on_seed() {
        let labels = vec![false; 100];

        assert_eq!(Split::stratified(&labels, 1), Split::stratified(&labels, 1));
        assert_ne!(
            Split::stratified(&labels, 1).test,
            Split::stratified(&labels, 2).test
        );
    }

    #[test]
    fn uniform_draws_stay_in_unit_interval() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
