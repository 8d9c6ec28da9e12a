//! Open-set scoring as AnimalCLEF 2025 does it: BAKS, BAUS, their geometric
//! mean averaged over datasets, and the adjusted Rand index for clusterings
//! of new individuals.
//!
//! Definitions follow the competition's Kaggle metric as published in
//! `wildlife-datasets` (`wildlife_datasets/metrics/metrics.py`, functions
//! `BAKS` and `BAUS`, and the competition's `score`,
//! <https://github.com/WildlifeDatasets/wildlife-datasets>,
//! <https://www.kaggle.com/competitions/animal-clef-2025>):
//!
//! - **BAKS** (balanced accuracy on known samples): over the queries whose
//!   true identity is in the database, the accuracy of predicting exactly
//!   that identity, computed per true identity and averaged over those
//!   identities (each identity weighs the same however many queries it has).
//! - **BAUS** (balanced accuracy on unknown samples): over the queries of new
//!   individuals, the fraction predicted as new, per true identity, averaged.
//! - **Empty cases.** With no known query BAKS is undefined (the reference
//!   returns NaN), likewise BAUS with no new query; here they are `None`.
//!   The competition score then counts an undefined value as **0**, so a
//!   dataset without new queries (or without known ones) scores 0.
//! - **Score**: per dataset `sqrt(BAKS * BAUS)`, averaged over datasets
//!   (each dataset weighs the same).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::{Decision, OpensetError, Result, check};

/// Per-identity hit counts, averaged: the shape shared by BAKS and BAUS.
fn balanced<S: AsRef<str>>(
    truth: &[S],
    include: impl Fn(usize) -> bool,
    hit: impl Fn(usize) -> bool,
) -> Option<f64> {
    let mut per_id: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, t) in truth.iter().enumerate() {
        if include(i) {
            let e = per_id.entry(t.as_ref()).or_default();
            e.1 += 1;
            if hit(i) {
                e.0 += 1;
            }
        }
    }
    if per_id.is_empty() {
        return None;
    }
    let sum: f64 = per_id.values().map(|&(h, n)| h as f64 / n as f64).sum();
    Some(sum / per_id.len() as f64)
}

fn check_lengths<S>(truth: &[S], predicted: &[Decision], is_new: &[bool]) -> Result<()> {
    check::same_len("predictions", truth.len(), predicted.len())?;
    check::same_len("new-individual flags", truth.len(), is_new.len())
}

/// BAKS: balanced accuracy on the queries with `is_new[i] == false` (their
/// true identity `truth[i]` is in the database). `None` when there is none.
pub fn baks<S: AsRef<str>>(
    truth: &[S],
    predicted: &[Decision],
    is_new: &[bool],
) -> Result<Option<f64>> {
    check_lengths(truth, predicted, is_new)?;
    Ok(balanced(
        truth,
        |i| !is_new.get(i).copied().unwrap_or(true),
        |i| predicted.get(i).and_then(Decision::identity) == truth.get(i).map(AsRef::as_ref),
    ))
}

/// BAUS: balanced accuracy on the queries with `is_new[i] == true` (new
/// individuals): per true identity the fraction predicted
/// [`Decision::New`], averaged. `None` when there is no new query.
pub fn baus<S: AsRef<str>>(
    truth: &[S],
    predicted: &[Decision],
    is_new: &[bool],
) -> Result<Option<f64>> {
    check_lengths(truth, predicted, is_new)?;
    Ok(balanced(
        truth,
        |i| is_new.get(i).copied().unwrap_or(false),
        |i| predicted.get(i).is_some_and(Decision::is_new),
    ))
}

/// BAKS and BAUS of one dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSetScore {
    /// BAKS, `None` without known queries.
    pub baks: Option<f64>,
    /// BAUS, `None` without new queries.
    pub baus: Option<f64>,
}

impl OpenSetScore {
    /// `sqrt(BAKS * BAUS)`, an undefined part counting as 0 (as the
    /// AnimalCLEF 2025 metric does).
    pub fn geometric_mean(&self) -> f64 {
        (self.baks.unwrap_or(0.0) * self.baus.unwrap_or(0.0)).sqrt()
    }
}

/// BAKS and BAUS of one dataset (see the module docs).
pub fn open_set_score<S: AsRef<str>>(
    truth: &[S],
    predicted: &[Decision],
    is_new: &[bool],
) -> Result<OpenSetScore> {
    Ok(OpenSetScore {
        baks: baks(truth, predicted, is_new)?,
        baus: baus(truth, predicted, is_new)?,
    })
}

/// The AnimalCLEF score and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct AnimalClefScore {
    /// BAKS and BAUS of each dataset.
    pub per_dataset: BTreeMap<String, OpenSetScore>,
    /// Mean over datasets of [`OpenSetScore::geometric_mean`].
    pub score: f64,
}

/// The AnimalCLEF 2025 score: queries grouped by `dataset[i]`, each
/// dataset's `sqrt(BAKS * BAUS)` (undefined parts as 0), averaged over
/// datasets. No queries at all is an error.
pub fn animalclef_score<S: AsRef<str>, D: AsRef<str>>(
    truth: &[S],
    predicted: &[Decision],
    is_new: &[bool],
    dataset: &[D],
) -> Result<AnimalClefScore> {
    check_lengths(truth, predicted, is_new)?;
    check::same_len("datasets", truth.len(), dataset.len())?;
    if truth.is_empty() {
        return Err(OpensetError::Empty { what: "queries" });
    }
    let mut rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in dataset.iter().enumerate() {
        rows.entry(d.as_ref()).or_default().push(i);
    }
    let mut per_dataset = BTreeMap::new();
    for (name, idx) in rows {
        let t: Vec<&str> = idx
            .iter()
            .filter_map(|&i| truth.get(i))
            .map(AsRef::as_ref)
            .collect();
        let p: Vec<Decision> = idx
            .iter()
            .filter_map(|&i| predicted.get(i))
            .cloned()
            .collect();
        let n: Vec<bool> = idx.iter().filter_map(|&i| is_new.get(i)).copied().collect();
        per_dataset.insert(name.to_owned(), open_set_score(&t, &p, &n)?);
    }
    let score = per_dataset
        .values()
        .map(OpenSetScore::geometric_mean)
        .sum::<f64>()
        / per_dataset.len() as f64;
    Ok(AnimalClefScore { per_dataset, score })
}

/// Whether each query is new: its true identity is not among `database`.
pub fn new_flags<S: AsRef<str>, T: AsRef<str>>(truth: &[S], database: &[T]) -> Vec<bool> {
    let db: std::collections::HashSet<&str> = database.iter().map(AsRef::as_ref).collect();
    truth.iter().map(|t| !db.contains(t.as_ref())).collect()
}

/// Adjusted Rand index between two labelings of the same items (Hubert &
/// Arabie 1985), with scikit-learn's conventions
/// (`sklearn.metrics.adjusted_rand_score`): 1.0 when the two agree on every
/// pair, including no items, one item, or both labelings all-one-cluster or
/// all-singletons. Label values only name clusters; their numbering does not
/// matter.
pub fn adjusted_rand_index<A: Hash + Eq, B: Hash + Eq>(a: &[A], b: &[B]) -> Result<f64> {
    check::same_len("labels", a.len(), b.len())?;
    let n = a.len() as u128;
    let mut cells: HashMap<(&A, &B), u128> = HashMap::new();
    let mut rows: HashMap<&A, u128> = HashMap::new();
    let mut cols: HashMap<&B, u128> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *cells.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let sq = |m: u128| m * m;
    let sum_cells: u128 = cells.values().copied().map(sq).sum();
    let sum_rows: u128 = rows.values().copied().map(sq).sum();
    let sum_cols: u128 = cols.values().copied().map(sq).sum();
    // Ordered pair counts (each unordered pair twice), as in scikit-learn's
    // pair confusion matrix.
    let tp = (sum_cells - n) as f64;
    let fp = (sum_cols - sum_cells) as f64;
    let fn_ = (sum_rows - sum_cells) as f64;
    let tn = (sq(n) + sum_cells - sum_rows - sum_cols) as f64;
    if fp == 0.0 && fn_ == 0.0 {
        return Ok(1.0);
    }
    Ok(2.0 * (tp * tn - fn_ * fp) / ((tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn)))
}
