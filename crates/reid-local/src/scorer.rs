//! The local score as a similarity source of [`reid_openset::fuse`].

use std::collections::HashMap;
use std::sync::RwLock;

use reid_openset::{PairScorer, TopK};

use crate::error::{LocalError, Result};
use crate::features::Features;
use crate::pairs::{PairMatch, match_pair, score_pairs};
use crate::params::ValidLocalParams;

/// A [`PairScorer`] whose score is the RANSAC inlier count between query
/// `q` and gallery item `g`.
///
/// [`reid_openset::fuse`] asks for scores one pair at a time, on one thread;
/// call [`LocalScorer::precompute`] with the same shortlist first to score
/// all its pairs in parallel. [`PairScorer::score`] then looks results up,
/// and computes (and remembers) any pair it has not seen.
#[derive(Debug)]
pub struct LocalScorer<'a> {
    name: String,
    queries: &'a [Features],
    gallery: &'a [Features],
    params: ValidLocalParams,
    memo: RwLock<HashMap<(usize, usize), PairMatch>>,
}

impl<'a> LocalScorer<'a> {
    /// A scorer named `"local"` with `params`, of no queries and no gallery
    /// yet: set them with [`LocalScorer::queries`] and
    /// [`LocalScorer::gallery`] (a builder, so that the two lists of the
    /// same type cannot swap silently).
    ///
    /// ```
    /// use reid_local::{LocalParams, LocalScorer, ParamGuard};
    /// use reid_openset::PairScorer;
    ///
    /// let (queries, gallery) = (Vec::new(), Vec::new());
    /// let params = LocalParams::default().check()?;
    /// let scorer = LocalScorer::new(&params).named("keypoints").queries(&queries).gallery(&gallery);
    /// assert_eq!(scorer.name(), "keypoints");
    /// assert!(scorer.pair(0, 0).is_err()); // no query 0
    /// # Ok::<(), reid_local::LocalError>(())
    /// ```
    pub fn new(params: &ValidLocalParams) -> Self {
        LocalScorer {
            name: "local".to_string(),
            queries: &[],
            gallery: &[],
            params: *params,
            memo: RwLock::new(HashMap::new()),
        }
    }

    /// The name the scorer reports ([`PairScorer::name`], hence this
    /// setter's own name); default `"local"`.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The query features: `query` indices index this list. Forgets the
    /// pairs scored so far.
    #[must_use]
    pub fn queries(mut self, queries: &'a [Features]) -> Self {
        self.queries = queries;
        self.memo = RwLock::new(HashMap::new());
        self
    }

    /// The gallery features: `gallery` indices index this list. Forgets the
    /// pairs scored so far.
    #[must_use]
    pub fn gallery(mut self, gallery: &'a [Features]) -> Self {
        self.gallery = gallery;
        self.memo = RwLock::new(HashMap::new());
        self
    }

    /// Scores, in parallel, every (query row, shortlisted gallery item) pair
    /// of `shortlist` not yet known; returns how many were computed.
    pub fn precompute(&self, shortlist: &TopK) -> Result<usize> {
        let pairs: Vec<(usize, usize)> = shortlist
            .indices
            .outer_iter()
            .enumerate()
            .flat_map(|(q, row)| row.iter().map(move |&g| (q, g)).collect::<Vec<_>>())
            .collect();
        self.precompute_pairs(&pairs)
    }

    /// Scores, in parallel, the `(query, gallery)` pairs not yet known;
    /// returns how many were computed.
    pub fn precompute_pairs(&self, pairs: &[(usize, usize)]) -> Result<usize> {
        let mut todo: Vec<(usize, usize)> = {
            let memo = self.memo.read().unwrap_or_else(|e| e.into_inner());
            pairs
                .iter()
                .copied()
                .filter(|p| !memo.contains_key(p))
                .collect()
        };
        todo.sort_unstable();
        todo.dedup();
        let done = score_pairs(self.queries, self.gallery, &todo, &self.params)?;
        let n = done.len();
        let mut memo = self.memo.write().unwrap_or_else(|e| e.into_inner());
        memo.extend(todo.into_iter().zip(done));
        Ok(n)
    }

    /// The verified matches of `(query, gallery)`, from the memo or computed
    /// now (and remembered).
    pub fn pair(&self, query: usize, gallery: usize) -> Result<PairMatch> {
        if let Some(m) = self
            .memo
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(query, gallery))
        {
            return Ok(m.clone());
        }
        let q = self.queries.get(query).ok_or(LocalError::OutOfRange {
            what: "query",
            index: query,
            len: self.queries.len(),
        })?;
        let g = self.gallery.get(gallery).ok_or(LocalError::OutOfRange {
            what: "gallery item",
            index: gallery,
            len: self.gallery.len(),
        })?;
        let m = match_pair(q, g, &self.params)?;
        self.memo
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((query, gallery), m.clone());
        Ok(m)
    }

    /// Number of pairs remembered.
    pub fn known_pairs(&self) -> usize {
        self.memo.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl PairScorer for LocalScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String> {
        self.pair(query, gallery)
            .map(|m| m.score())
            .map_err(|e| e.to_string())
    }

    /// Scores the pairs not yet known in parallel ([`LocalScorer::precompute_pairs`]),
    /// then reads every score from the memo; a failure is located by
    /// scoring pair by pair.
    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        let parallel = self.precompute_pairs(pairs);
        pairs
            .iter()
            .enumerate()
            .map(|(i, &(q, g))| {
                self.pair(q, g).map(|m| m.score()).map_err(|e| {
                    let why = match &parallel {
                        Err(first) if first.to_string() != e.to_string() => {
                            format!("{e} (the parallel pass failed first with: {first})")
                        }
                        _ => e.to_string(),
                    };
                    (i, why)
                })
            })
            .collect()
    }
}
