//! Approximate search (HNSW, the crate's own graph in `hnsw.rs`) for large
//! galleries. Enabled by the `hnsw` cargo feature.
//!
//! The graph is owned by the [`Gallery`]: records added after
//! [`Gallery::build_hnsw`] are inserted into it, removed records stay in the
//! graph as routing points but are never returned (they are filtered out by
//! their stable serial number). Filters are applied during the graph search.
//! The graph is not persisted; rebuild it after [`Gallery::load`]. It keeps
//! its own 8-bit copy of the vectors (removed records stay routing points):
//! a quarter of the embedding memory (256 MB for 1M x 256), plus about `2m`
//! links of 4 bytes per record. The graph walk compares 8-bit codes; the
//! `ef` candidates it ends with are re-scored exactly with the gallery's
//! `f32` rows, so returned scores are true cosines.

use std::fmt;

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::filter::Filter;
use crate::gallery::{Gallery, Hit};
use crate::hnsw::Graph;
#[cfg(doc)]
use reid_core::ParamGuard;

use crate::{IndexError, Result};

/// HNSW construction parameters; [`ParamGuard::check`] gives the
/// [`ValidHnswParams`] that [`Gallery::build_hnsw`] takes.
///
/// ```
/// use reid_index::{HnswParams, ParamGuard};
/// let p = HnswParams::default().m(8).ef_construction(64).parallel(false).check()?;
/// assert_eq!((p.m(), p.ef_construction()), (8, 64));
/// assert!(HnswParams::default().m(32).ef_construction(16).check().is_err());
/// # Ok::<(), reid_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    m: usize,
    ef_construction: usize,
    parallel: bool,
}

/// Checked [`HnswParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidHnswParams(HnswParams);

impl Default for HnswParams {
    /// `m` 16, `ef_construction` 100, parallel build.
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 100,
            parallel: true,
        }
    }
}

impl HnswParams {
    reid_core::setters! {
        /// Links per point and layer (2..=128).
        m: usize,

        /// Beam width while building (at least `m`).
        ef_construction: usize,

        /// Insert on all rayon threads while building (faster, but the graph
        /// then depends on thread timing); off, the build is deterministic.
        parallel: bool,
    }
}

reid_core::param_guard!(HnswParams => ValidHnswParams, IndexError, |p| {
    if !(2..=128).contains(&p.m) {
        return Err(IndexError::param(
            "m",
            format!("{} is outside 2..=128", p.m),
        ));
    }
    if p.ef_construction < p.m {
        return Err(IndexError::param(
            "ef_construction",
            format!("{} is below m = {}", p.ef_construction, p.m),
        ));
    }
    Ok(())
});

impl ValidHnswParams {
    reid_core::getters! {
        /// Links per point and layer.
        m: usize,
        /// Beam width while building.
        ef_construction: usize,
    }
}

pub(crate) struct Ann {
    graph: Graph,
    params: ValidHnswParams,
}

impl fmt::Debug for Ann {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ann")
            .field("points", &self.graph.len())
            .field("params", &self.params)
            .finish()
    }
}

impl Gallery {
    /// Builds (or rebuilds) the HNSW graph over every record.
    pub fn build_hnsw(&mut self, params: ValidHnswParams) -> Result<()> {
        let mut graph = Graph::new(self.dim, params.m(), params.ef_construction());
        graph.insert(&self.data, &self.seqs, params.0.parallel);
        self.ann = Some(Ann { graph, params });
        Ok(())
    }

    /// Whether an HNSW graph is built.
    pub fn has_hnsw(&self) -> bool {
        self.ann.is_some()
    }

    /// Drops the HNSW graph (frees its memory).
    pub fn drop_hnsw(&mut self) {
        self.ann = None;
    }

    /// Inserts rows `first_row..` into the graph, if one is built.
    pub(crate) fn ann_insert_rows(&mut self, first_row: usize) {
        let d = self.dim;
        if let Some(ann) = self.ann.as_mut() {
            let rows = self.data.get(first_row * d..).unwrap_or(&[]);
            let seqs = self.seqs.get(first_row..).unwrap_or(&[]);
            ann.graph.insert(rows, seqs, false);
        }
    }

    /// Approximate top-`k` records per query by HNSW with beam width `ef`
    /// (at least `k`; larger is slower and more exact). Same result shape,
    /// ordering and filter semantics as [`Gallery::search`]. Errors when no
    /// graph is built, and on the same bad inputs as exact search.
    pub fn search_approx(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        ef: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Vec<Hit<'_>>>> {
        if self.is_empty() {
            return Err(IndexError::EmptyGallery);
        }
        self.check_queries(queries, k)?;
        let ann = self.ann.as_ref().ok_or_else(|| {
            IndexError::param("search_approx", "no HNSW graph: call build_hnsw first")
        })?;
        let ef = ef.max(k);
        // No filter and nothing ever removed: every graph point is live.
        let unfiltered =
            filter.is_none_or(Filter::is_all) && self.seqs.len() as u64 == self.next_seq;
        let keep = |seq: u64| unfiltered || self.live_row(seq, filter).is_some();
        Ok(queries
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|q| {
                let q = q.to_vec();
                // The beam holds approximate (8-bit) cosines: re-score it with
                // the exact f32 vectors, then keep the best k.
                let found = ann.graph.search(&q, ef, &keep);
                let rows = found
                    .iter()
                    .filter_map(|&(seq, _)| self.live_row(seq, filter));
                self.best_hits(&q, rows, k)
            })
            .collect())
    }
}

impl Gallery {
    /// The current row of the record with serial number `seq`, if it is
    /// still in the gallery and passes `filter`.
    pub(crate) fn live_row(&self, seq: u64, filter: Option<&Filter>) -> Option<usize> {
        // Nothing ever removed: serial numbers are the rows.
        let row = if self.seqs.len() as u64 == self.next_seq {
            usize::try_from(seq).ok().filter(|&r| r < self.seqs.len())?
        } else {
            self.seqs.binary_search(&seq).ok()?
        };
        match filter {
            Some(f) if !f.is_all() => self.records.get(row).filter(|r| f.matches(r)).map(|_| row),
            _ => Some(row),
        }
    }

    /// The best `k` of `rows` for query `q`, scored exactly in f32, best
    /// first (ties to the lower row), as [`Hit`]s.
    pub(crate) fn best_hits(
        &self,
        q: &[f32],
        rows: impl Iterator<Item = usize>,
        k: usize,
    ) -> Vec<Hit<'_>> {
        // Score first, touch the records of the best k only. The rows lie
        // scattered over the gallery: each is fetched a few rows ahead.
        let rows: Vec<usize> = rows.collect();
        let mut scored: Vec<(f32, usize)> = Vec::with_capacity(rows.len());
        for (i, &row) in rows.iter().enumerate() {
            if let Some(&ahead) = rows.get(i + PREFETCH_AHEAD) {
                prefetch(self.data.get(ahead * self.dim..(ahead + 1) * self.dim));
            }
            if let Some(v) = self.data.get(row * self.dim..(row + 1) * self.dim) {
                scored.push((crate::exact::dot(q, v), row));
            }
        }
        let order = crate::exact::better_first;
        if scored.len() > k {
            scored.select_nth_unstable_by(k, order);
            scored.truncate(k);
        }
        scored.sort_by(order);
        scored
            .into_iter()
            .filter_map(|(score, row)| {
                let r = self.records.get(row)?;
                Some(Hit {
                    row,
                    id: &r.image_id,
                    identity: r.identity.as_deref(),
                    score,
                })
            })
            .collect()
    }
}

/// How many rows ahead [`Gallery::best_hits`] asks for a row's cache lines.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to bring `v`'s cache lines into cache (a hint: no effect on
/// results, nothing on other architectures).
#[inline]
fn prefetch(v: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = v {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for line in v.chunks(16) {
            // SAFETY: a prefetch never faults; the pointer is into `v`.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch(line.as_ptr().cast::<i8>(), _MM_HINT_T0)
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}
