//! Approximate search by an inverted file (IVF) for large galleries.
//! Enabled by the `hnsw` cargo feature (approximate search), beside the
//! HNSW graph of [`crate::ann`].
//!
//! [`Gallery::build_ivf`] clusters the gallery's rows with spherical
//! k-means (seeded; trained on a sample of [`IvfParams::train_per_list`]
//! rows per list; each assignment is one exact GEMM top-1 search against
//! the centroids) into [`IvfParams::lists`] lists (default `4·√n`), and
//! files every row under its nearest centroid. [`Gallery::search_ivf`]
//! finds each query's `nprobe` nearest centroids (one batched exact
//! search) and scores the rows of those lists exactly in `f32`, so the
//! returned scores are true cosines and a row is missed only when its list
//! is not probed. Re-identification galleries suit it: the photos of one
//! individual sit together and usually fall in one list.
//!
//! The lists hold each row's stable serial number: records added after the
//! build are filed under their nearest centroid, removed ones are skipped
//! (rebuild after many changes so the centroids follow the data). The
//! index is not persisted; rebuild it after [`Gallery::load`]. Its memory
//! is the centroids (`lists × dim` floats) and 8 bytes per row.

use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
#[cfg(doc)]
use reid_core::ParamGuard;

use crate::exact::exact_topk_with;
use crate::filter::Filter;
use crate::gallery::{Gallery, Hit};
use crate::{IndexError, Result};

/// IVF construction parameters; [`ParamGuard::check`] gives the
/// [`ValidIvfParams`] that [`Gallery::build_ivf`] takes.
///
/// ```
/// use reid_index::{IvfParams, ParamGuard};
/// let p = IvfParams::default().lists(Some(64)).iterations(5).check()?;
/// assert_eq!((p.lists(), p.iterations()), (Some(64), 5));
/// assert!(IvfParams::default().lists(Some(0)).check().is_err());
/// # Ok::<(), reid_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfParams {
    lists: Option<usize>,
    train_per_list: usize,
    iterations: usize,
    seed: u64,
}

/// Checked [`IvfParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidIvfParams(IvfParams);

impl Default for IvfParams {
    /// `4·√n` lists, 64 training rows per list, 10 k-means iterations,
    /// seed 0.
    fn default() -> Self {
        Self {
            lists: None,
            train_per_list: 64,
            iterations: 10,
            seed: 0,
        }
    }
}

impl IvfParams {
    reid_core::setters! {
        /// Number of lists (`None`: `round(4·√n)`, at most `n`).
        lists: Option<usize>,

        /// Rows sampled per list to train the centroids (at least 1).
        train_per_list: usize,

        /// k-means iterations (at least 1).
        iterations: usize,

        /// Seed of the sample and of the initial centroids.
        seed: u64,
    }
}

reid_core::param_guard!(IvfParams => ValidIvfParams, IndexError, |p| {
    if p.lists == Some(0) {
        return Err(IndexError::param("lists", "must be at least 1"));
    }
    if p.train_per_list == 0 {
        return Err(IndexError::param("train_per_list", "must be at least 1"));
    }
    if p.iterations == 0 {
        return Err(IndexError::param("iterations", "must be at least 1"));
    }
    Ok(())
});

impl ValidIvfParams {
    reid_core::getters! {
        /// Number of lists (`None`: `round(4·√n)`).
        lists: Option<usize>,
        /// Rows sampled per list to train the centroids.
        train_per_list: usize,
        /// k-means iterations.
        iterations: usize,
        /// Seed.
        seed: u64,
    }
}

/// The inverted file of a gallery.
#[derive(Debug)]
pub(crate) struct Ivf {
    /// Unit centroids, `[lists, dim]`.
    centroids: Array2<f32>,
    /// Serial numbers of the rows filed under each centroid.
    lists: Vec<Vec<u64>>,
}

impl Gallery {
    /// Builds (or rebuilds) the inverted file over every record: spherical
    /// k-means on a seeded sample, then every row filed under its nearest
    /// centroid. Errors on an empty gallery.
    pub fn build_ivf(&mut self, params: ValidIvfParams) -> Result<()> {
        let n = self.len();
        if n == 0 {
            return Err(IndexError::EmptyGallery);
        }
        let p = params.0;
        let lists = p
            .lists
            .unwrap_or_else(|| (4.0 * (n as f64).sqrt()).round() as usize)
            .clamp(1, n);
        let data = self.embeddings();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut picked: Vec<usize> = (0..n).collect();
        picked.shuffle(&mut rng);
        picked.truncate(p.train_per_list.saturating_mul(lists).clamp(lists, n));
        let sample = data.select(Axis(0), &picked);
        let mut centroids = sample.slice(ndarray::s![..lists, ..]).to_owned();
        for _ in 0..p.iterations {
            let nearest = exact_topk_with(sample.view(), centroids.view(), 1, &self.config)?;
            let mut sums = Array2::<f32>::zeros((lists, self.dim));
            let mut counts = vec![0usize; lists];
            for (row, &c) in sample.axis_iter(Axis(0)).zip(nearest.indices.column(0)) {
                let mut s = sums.row_mut(c);
                s += &row;
                counts[c] += 1;
            }
            for (c, &count) in counts.iter().enumerate() {
                let norm = sums.row(c).dot(&sums.row(c)).sqrt();
                if count == 0 || norm <= f32::EPSILON {
                    // An empty list takes a random sample row instead.
                    let r = rng.gen_range(0..sample.nrows());
                    centroids.row_mut(c).assign(&sample.row(r));
                } else {
                    centroids.row_mut(c).assign(&(&sums.row(c) / norm));
                }
            }
        }
        let mut ivf = Ivf {
            centroids,
            lists: vec![Vec::new(); lists],
        };
        file_rows(&mut ivf, data, &self.seqs, &self.config)?;
        self.ivf = Some(ivf);
        Ok(())
    }

    /// Whether an inverted file is built.
    pub fn has_ivf(&self) -> bool {
        self.ivf.is_some()
    }

    /// Drops the inverted file.
    pub fn drop_ivf(&mut self) {
        self.ivf = None;
    }

    /// Files rows `first_row..` under their nearest centroids, if an
    /// inverted file is built.
    pub(crate) fn ivf_insert_rows(&mut self, first_row: usize) -> Result<()> {
        let Some(ivf) = self.ivf.as_mut() else {
            return Ok(());
        };
        let d = self.dim;
        let rows = self.data.get(first_row * d..).unwrap_or(&[]);
        if rows.is_empty() {
            return Ok(());
        }
        let view =
            ArrayView2::from_shape((rows.len() / d, d), rows).map_err(|e| IndexError::Shape {
                expected: format!("rows of {d}"),
                got: e.to_string(),
            })?;
        let seqs = self.seqs.get(first_row..).unwrap_or(&[]);
        file_rows(ivf, view, seqs, &self.config)
    }

    /// Approximate top-`k` records per query: the rows of the `nprobe`
    /// lists whose centroids are nearest the query (clamped to the number
    /// of lists; more is slower and more exact), scored exactly. Same
    /// result shape, ordering and filter semantics as [`Gallery::search`].
    /// Errors when no inverted file is built, and on the same bad inputs as
    /// exact search.
    pub fn search_ivf(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        nprobe: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Vec<Hit<'_>>>> {
        if self.is_empty() {
            return Err(IndexError::EmptyGallery);
        }
        self.check_queries(queries, k)?;
        let ivf = self.ivf.as_ref().ok_or_else(|| {
            IndexError::param("search_ivf", "no inverted file: call build_ivf first")
        })?;
        let nprobe = nprobe.clamp(1, ivf.lists.len());
        let probes = exact_topk_with(queries, ivf.centroids.view(), nprobe, &self.config)?;
        Ok(queries
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(qi, q)| {
                let q = q.to_vec();
                let probed = probes.indices.row(qi);
                let rows = probed
                    .iter()
                    .flat_map(|&c| ivf.lists[c].iter())
                    .filter_map(|&seq| self.live_row(seq, filter));
                self.best_hits(&q, rows, k)
            })
            .collect())
    }
}

/// Files `rows` (serial numbers `seqs`) under their nearest centroids.
fn file_rows(
    ivf: &mut Ivf,
    rows: ArrayView2<'_, f32>,
    seqs: &[u64],
    config: &crate::ValidExactParams,
) -> Result<()> {
    let nearest = exact_topk_with(rows, ivf.centroids.view(), 1, config)?;
    for (&c, &seq) in nearest.indices.column(0).iter().zip(seqs) {
        ivf.lists[c].push(seq);
    }
    Ok(())
}
