//! Class-balanced P×K batch sampler for metric learning (triplet, ArcFace).
//!
//! Each batch holds `P` distinct identities × `K` images each, as record
//! indices: `batch[g*K .. (g+1)*K]` all belong to the `g`-th identity of the
//! batch. An identity with at least `K` images contributes `K` distinct ones
//! (a random subset); one with fewer than `K` contributes all of its images
//! once plus `K - n` drawn at random with replacement.
//!
//! **Epochs.** An epoch is one pass over all identities: at its start the
//! identities (one per `(dataset, identity)`, see
//! [`Dataset::identity_indices`]) are shuffled, then taken `P` at a time, so every identity is
//! the anchor group of exactly one batch per epoch. When the number of
//! identities is not a multiple of `P`, the last group of the epoch is
//! handled by [`LastGroup`]: `Fill` (default) completes it with identities
//! drawn at random among those already used this epoch (so every identity
//! appears at least once per epoch and some twice), `Drop` discards it (the
//! shuffled order changes every epoch, so no identity is left out for long).
//! [`PkSampler::batches_per_epoch`] is `ceil(n / P)` with `Fill` and
//! `floor(n / P)` with `Drop`.
//!
//! The sampler is an endless [`Iterator`]: epochs follow each other and
//! `next` never returns `None`. Use
//! `sampler.by_ref().take(sampler.batches_per_epoch())` or
//! [`PkSampler::next_epoch`] for one epoch. All randomness comes from one
//! `ChaCha8Rng` seeded with [`PkParams::seed`].
//!
//! ```
//! use reid_data::{Dataset, ParamGuard, Record};
//! use reid_data::sampler::PkParams;
//!
//! let records = (0..30)
//!     .map(|i| {
//!         let mut r = Record::new(i.to_string(), format!("{i}.jpg"));
//!         r.identity = Some(format!("id{}", i % 6));
//!         r
//!     })
//!     .collect();
//! let ds = Dataset::new("", records);
//! let mut sampler = PkParams::default().p(4).k(2).seed(42).check()?.sampler(&ds)?;
//! let epoch = sampler.next_epoch();
//! assert_eq!(epoch.len(), 2); // ceil(6 / 4)
//! assert!(epoch.iter().all(|b| b.len() == 8));
//! # Ok::<(), reid_data::DataError>(())
//! ```

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use reid_core::ParamGuard;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// What to do with the last, incomplete group of identities of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastGroup {
    /// Complete it with other identities already used in this epoch.
    #[default]
    Fill,
    /// Discard it.
    Drop,
}

/// Sampler parameters, unchecked: a builder with [`Default`] (`P = 8`,
/// `K = 4`, seed 0, [`LastGroup::Fill`]) and one setter per setting;
/// [`ParamGuard::check`] gives the [`ValidPkParams`] that builds samplers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkParams {
    /// Identities per batch (≥ 1, ≤ number of identities).
    pub p: usize,
    /// Images per identity in a batch (≥ 1).
    pub k: usize,
    /// Seed of the random choices.
    pub seed: u64,
    /// Last-group rule.
    pub last: LastGroup,
}

impl Default for PkParams {
    fn default() -> Self {
        PkParams {
            p: 8,
            k: 4,
            seed: 0,
            last: LastGroup::Fill,
        }
    }
}

impl PkParams {
    reid_core::setters! {
        /// Sets `P`, the identities per batch.
        p: usize,
        /// Sets `K`, the images per identity in a batch.
        k: usize,
        /// Sets the seed.
        seed: u64,
        /// Sets the last-group rule.
        last: LastGroup,
    }
}

impl ParamGuard for PkParams {
    type Checked = ValidPkParams;
    type Error = DataError;

    /// Validates `P ≥ 1` and `K ≥ 1` (`P` against the number of identities
    /// is checked when the sampler is built).
    fn check_ref(&self) -> Result<()> {
        if self.p == 0 {
            return Err(DataError::param(
                "p",
                "P (identities per batch) must be >= 1, got 0",
            ));
        }
        if self.k == 0 {
            return Err(DataError::param(
                "k",
                "K (images per identity) must be >= 1, got 0",
            ));
        }
        if self.p.checked_mul(self.k).is_none() {
            return Err(DataError::param(
                "k",
                format!("P × K = {} × {} overflows", self.p, self.k),
            ));
        }
        Ok(())
    }

    fn check(self) -> Result<ValidPkParams> {
        self.check_ref()?;
        Ok(ValidPkParams { params: self })
    }
}

/// Validated sampler parameters; made by [`ParamGuard::check`] on
/// [`PkParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidPkParams {
    params: PkParams,
}

impl ValidPkParams {
    /// The parameters.
    pub fn params(&self) -> &PkParams {
        &self.params
    }

    /// A sampler over the labelled records of `ds` (indices into
    /// `ds.records`; unlabelled records are never drawn), one group per
    /// `(dataset, identity)` ([`Dataset::identity_indices`]).
    pub fn sampler(&self, ds: &Dataset) -> Result<PkSampler> {
        self.sampler_from_groups(ds.identity_indices().into_values().collect())
    }

    /// A sampler over explicit groups: `groups[c]` lists the indices of the
    /// items of class `c`. Every group must be non-empty.
    pub fn sampler_from_groups(&self, groups: Vec<Vec<usize>>) -> Result<PkSampler> {
        if let Some(c) = groups.iter().position(Vec::is_empty) {
            return Err(DataError::param("groups", format!("group {c} is empty")));
        }
        if self.params.p > groups.len() {
            return Err(DataError::param(
                "p",
                format!(
                    "P = {} is more than the {} identities available",
                    self.params.p,
                    groups.len()
                ),
            ));
        }
        Ok(PkSampler {
            order: Vec::new(),
            pos: 0,
            epoch: 0,
            rng: ChaCha8Rng::seed_from_u64(self.params.seed),
            groups,
            params: self.params,
        })
    }
}

/// The P×K sampler; see the [module documentation](self) for the epoch rules.
#[derive(Debug, Clone)]
pub struct PkSampler {
    groups: Vec<Vec<usize>>,
    params: PkParams,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    pos: usize,
    epoch: usize,
}

impl PkSampler {
    /// Checks `params` and builds a sampler over `ds` (shorthand for
    /// `params.check()?.sampler(ds)`).
    pub fn new(ds: &Dataset, params: PkParams) -> Result<Self> {
        params.check()?.sampler(ds)
    }

    /// Number of identities (groups) sampled from.
    pub fn num_identities(&self) -> usize {
        self.groups.len()
    }

    /// Batches in one epoch: `ceil(n / P)` with [`LastGroup::Fill`],
    /// `floor(n / P)` with [`LastGroup::Drop`].
    pub fn batches_per_epoch(&self) -> usize {
        let (n, p) = (self.groups.len(), self.params.p);
        match self.params.last {
            LastGroup::Fill => n.div_ceil(p),
            LastGroup::Drop => n / p,
        }
    }

    /// The 0-based epoch the next batch belongs to.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The record indices of identity group `g` (groups are in sorted
    /// `(dataset, identity)` order when built from a [`Dataset`]).
    pub fn group(&self, g: usize) -> Option<&[usize]> {
        self.groups.get(g).map(Vec::as_slice)
    }

    /// The remaining batches of the current epoch (all of them when called
    /// at an epoch boundary).
    pub fn next_epoch(&mut self) -> Vec<Vec<usize>> {
        let epoch = self.epoch;
        let mut out = Vec::new();
        while self.epoch == epoch {
            out.push(self.next_batch());
        }
        out
    }

    fn next_batch(&mut self) -> Vec<usize> {
        let n = self.groups.len();
        let p = self.params.p;
        if self.pos == 0 {
            self.order = (0..n).collect();
            self.order.shuffle(&mut self.rng);
        }
        let end = (self.pos + p).min(n);
        let mut chosen: Vec<usize> = self.order[self.pos..end].to_vec();
        if chosen.len() < p {
            // Only reachable with Fill: complete with identities used earlier
            // in this epoch (P ≤ n guarantees there are enough).
            let mut earlier: Vec<usize> = self.order[..self.pos].to_vec();
            earlier.shuffle(&mut self.rng);
            chosen.extend(earlier.into_iter().take(p - chosen.len()));
        }
        self.pos = end;
        let epoch_done = match self.params.last {
            LastGroup::Fill => self.pos >= n,
            LastGroup::Drop => n - self.pos < p,
        };
        if epoch_done {
            self.pos = 0;
            self.epoch += 1;
        }
        let k = self.params.k;
        let mut batch = Vec::with_capacity(p * k);
        for g in chosen {
            let items = &self.groups[g];
            if items.len() >= k {
                let pick = rand::seq::index::sample(&mut self.rng, items.len(), k);
                batch.extend(pick.iter().map(|i| items[i]));
            } else {
                let mut group: Vec<usize> = items.clone();
                for _ in items.len()..k {
                    group.push(items[self.rng.gen_range(0..items.len())]);
                }
                group.shuffle(&mut self.rng);
                batch.extend(group);
            }
        }
        batch
    }
}

impl Iterator for PkSampler {
    type Item = Vec<usize>;

    /// The next batch of `P × K` record indices; never `None`.
    fn next(&mut self) -> Option<Vec<usize>> {
        Some(self.next_batch())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}
