//! New-individual discovery: the queries judged new are clustered among
//! themselves so that each new animal gets one consistent id.
//!
//! Agglomerative clustering on cosine distance `1 - <x, y>` (rows
//! L2-normalised): starting from singletons, the two closest clusters are
//! joined while their linkage distance is **below** `distance_threshold`
//! (as `sklearn.cluster.AgglomerativeClustering(metric="cosine",
//! distance_threshold=t, n_clusters=None)`). [`Linkage::Single`] is the
//! connected components of the graph "similarity > 1 - t". Deterministic:
//! ties are broken by the lowest cluster indices; cluster labels are
//! numbered by first appearance. Time `O(n^3)` worst case, memory `O(n^2)`.

use ndarray::ArrayView2;

#[cfg(doc)]
use reid_core::ParamGuard;

use crate::decision::{Decision, Prediction};
use crate::{OpensetError, Result, check};

/// Distance between clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// Closest pair (connected components).
    Single,
    /// Mean over all pairs (UPGMA).
    Average,
    /// Farthest pair.
    Complete,
}

/// Clustering parameters; [`ParamGuard::check`] gives the
/// [`ValidClusterParams`] that [`cluster`] takes.
///
/// ```
/// use reid_openset::{ClusterParams, Linkage, ParamGuard};
/// let p = ClusterParams::new(0.3).linkage(Linkage::Single).check()?;
/// assert_eq!((p.linkage(), p.distance_threshold()), (Linkage::Single, 0.3));
/// assert!(ClusterParams::new(0.0).check().is_err());
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterParams {
    linkage: Linkage,
    distance_threshold: f32,
}

/// Checked [`ClusterParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidClusterParams(ClusterParams);

impl ClusterParams {
    /// Average linkage, joining clusters closer than `distance_threshold`
    /// (a cosine distance in `(0, 2]`).
    pub fn new(distance_threshold: f32) -> Self {
        Self {
            linkage: Linkage::Average,
            distance_threshold,
        }
    }

    reid_core::setters! {
        /// The linkage (default average).
        linkage: Linkage,
    }
}

reid_core::param_guard!(ClusterParams => ValidClusterParams, OpensetError, |p| {
    let d = p.distance_threshold;
    if !(d > 0.0 && d <= 2.0) {
        return Err(OpensetError::InvalidParam {
            name: "distance_threshold",
            reason: format!("must be in (0, 2], got {d}"),
        });
    }
    Ok(())
});

impl ValidClusterParams {
    reid_core::getters! {
        /// The linkage.
        linkage: Linkage,
        /// The distance threshold.
        distance_threshold: f32,
    }
}

/// Cluster label of each row of `embeddings` (`[n, dim]`), numbered from 0
/// by first appearance. No rows gives no labels.
pub fn cluster(embeddings: ArrayView2<'_, f32>, params: &ValidClusterParams) -> Result<Vec<usize>> {
    check::finite_2d(embeddings, "embeddings")?;
    let n = embeddings.nrows();
    if n == 0 {
        return Ok(Vec::new());
    }
    let sims = embeddings.dot(&embeddings.t());
    let mut d = vec![0.0f64; n * n];
    for ((i, j), &s) in sims.indexed_iter() {
        if let Some(v) = d.get_mut(i * n + j) {
            *v = 1.0 - f64::from(s);
        }
    }
    let at = |d: &[f64], i: usize, j: usize| d.get(i * n + j).copied().unwrap_or(f64::INFINITY);
    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let t = f64::from(params.distance_threshold());
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for i in 0..n {
            if !active.get(i).copied().unwrap_or(false) {
                continue;
            }
            for j in (i + 1)..n {
                if !active.get(j).copied().unwrap_or(false) {
                    continue;
                }
                let v = at(&d, i, j);
                if best.is_none_or(|(b, _, _)| v < b) {
                    best = Some((v, i, j));
                }
            }
        }
        let Some((v, i, j)) = best else { break };
        if v >= t {
            break;
        }
        // Join j into i (Lance-Williams update of row/column i).
        let (ni, nj) = (
            size.get(i).copied().unwrap_or(1) as f64,
            size.get(j).copied().unwrap_or(1) as f64,
        );
        for k in 0..n {
            if k == i || k == j || !active.get(k).copied().unwrap_or(false) {
                continue;
            }
            let (dik, djk) = (at(&d, i, k), at(&d, j, k));
            let new = match params.linkage() {
                Linkage::Single => dik.min(djk),
                Linkage::Complete => dik.max(djk),
                Linkage::Average => (ni * dik + nj * djk) / (ni + nj),
            };
            if let Some(x) = d.get_mut(i * n + k) {
                *x = new;
            }
            if let Some(x) = d.get_mut(k * n + i) {
                *x = new;
            }
        }
        if let Some(a) = active.get_mut(j) {
            *a = false;
        }
        if let Some(s) = size.get_mut(i) {
            *s += nj as usize;
        }
        for p in parent.iter_mut() {
            if *p == j {
                *p = i;
            }
        }
    }
    // Number clusters by first appearance.
    let mut names: Vec<Option<usize>> = vec![None; n];
    let mut next = 0;
    let mut labels = Vec::with_capacity(n);
    for &p in &parent {
        let slot = names.get_mut(p);
        let id = match slot {
            Some(Some(id)) => *id,
            Some(s) => {
                *s = Some(next);
                next += 1;
                next - 1
            }
            None => 0,
        };
        labels.push(id);
    }
    Ok(labels)
}

/// The final identity of every query: the identity of a
/// [`Decision::Known`], and for the queries decided [`Decision::New`] a
/// cluster id `"{prefix}{number:04}"` (numbers from 1 by first appearance,
/// e.g. `new_0001`) from clustering their rows of `queries` together.
pub fn assign_new_ids(
    predictions: &[Prediction],
    queries: ArrayView2<'_, f32>,
    params: &ValidClusterParams,
    prefix: &str,
) -> Result<Vec<String>> {
    check::same_len("predictions", queries.nrows(), predictions.len())?;
    let new_rows: Vec<usize> = predictions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.decision.is_new())
        .map(|(i, _)| i)
        .collect();
    let sub = queries.select(ndarray::Axis(0), &new_rows);
    let labels = cluster(sub.view(), params)?;
    let mut out: Vec<String> = predictions
        .iter()
        .map(|p| match &p.decision {
            Decision::Known(id) => id.clone(),
            Decision::New => String::new(),
        })
        .collect();
    for (&row, &c) in new_rows.iter().zip(&labels) {
        if let Some(slot) = out.get_mut(row) {
            *slot = format!("{prefix}{:04}", c + 1);
        }
    }
    Ok(out)
}
