//! A set of images' features, extracted once (in parallel, through the
//! cache), scored pairwise.

use std::path::Path;

use rayon::prelude::*;

use crate::cache::{CacheStatus, FeatureCache};
use crate::error::{LocalError, Result};
use crate::extract::extract_file;
use crate::features::Features;
use crate::pairs::{PairMatch, match_pair, score_pairs};
use crate::params::ValidLocalParams;

/// The features of a list of images, with the parameters they were made
/// with.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    features: Vec<Features>,
    status: Vec<CacheStatus>,
    params: ValidLocalParams,
}

impl FeatureStore {
    /// Extracts (or reads from `cache`) the features of every image in
    /// `paths`, in parallel on the current rayon pool. On failure, the error
    /// of the first failing path (in `paths` order) is returned.
    pub fn extract<P: AsRef<Path> + Sync>(
        paths: &[P],
        params: &ValidLocalParams,
        cache: Option<&FeatureCache>,
    ) -> Result<Self> {
        Self::extract_with(paths, params, cache, |_, _| {})
    }

    /// [`FeatureStore::extract`], calling `on_done(index, status)` after
    /// each image (from worker threads, in completion order), e.g. to
    /// advance a progress bar.
    pub fn extract_with<P, F>(
        paths: &[P],
        params: &ValidLocalParams,
        cache: Option<&FeatureCache>,
        on_done: F,
    ) -> Result<Self>
    where
        P: AsRef<Path> + Sync,
        F: Fn(usize, &CacheStatus) + Sync,
    {
        let results: Vec<Result<(Features, CacheStatus)>> = paths
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                let r = extract_file(p.as_ref(), params, cache);
                if let Ok((_, s)) = &r {
                    on_done(i, s);
                }
                r
            })
            .collect();
        let mut features = Vec::with_capacity(results.len());
        let mut status = Vec::with_capacity(results.len());
        for r in results {
            let (f, s) = r?;
            features.push(f);
            status.push(s);
        }
        Ok(FeatureStore {
            features,
            status,
            params: *params,
        })
    }

    /// A store of features computed elsewhere (status
    /// [`CacheStatus::Uncached`]).
    pub fn from_features(features: Vec<Features>, params: &ValidLocalParams) -> Self {
        let status = vec![CacheStatus::Uncached; features.len()];
        FeatureStore {
            features,
            status,
            params: *params,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether the store holds no image.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The features of image `i`.
    pub fn get(&self, i: usize) -> Option<&Features> {
        self.features.get(i)
    }

    /// All features, in the order of the paths.
    pub fn features(&self) -> &[Features] {
        &self.features
    }

    /// How each image's features were obtained.
    pub fn cache_status(&self) -> &[CacheStatus] {
        &self.status
    }

    /// The parameters.
    pub fn params(&self) -> &ValidLocalParams {
        &self.params
    }

    /// Matches and verifies images `i` and `j` of this store.
    pub fn score_pair(&self, i: usize, j: usize) -> Result<PairMatch> {
        let out = |index| LocalError::OutOfRange {
            what: "image",
            index,
            len: self.features.len(),
        };
        let a = self.features.get(i).ok_or_else(|| out(i))?;
        let b = self.features.get(j).ok_or_else(|| out(j))?;
        match_pair(a, b, &self.params)
    }

    /// Scores pairs of images of this store in parallel (see
    /// [`crate::score_pairs`]).
    pub fn score_pairs(&self, pairs: &[(usize, usize)]) -> Result<Vec<PairMatch>> {
        score_pairs(&self.features, &self.features, pairs, &self.params)
    }
}
