//! The gallery: embeddings with their [`Record`]s (image id, identity,
//! dataset, species, attributes) and the id of the model that made them.

use std::collections::{HashMap, HashSet};

use ndarray::{Array2, ArrayView2, Axis};
pub use reid_core::Record;

use crate::exact::{TopK, ValidExactParams, exact_topk_with, first_non_finite_row};
use crate::filter::Filter;
use crate::{IndexError, Result};

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a> {
    /// Current row of the record in the gallery.
    pub row: usize,
    /// The record's image id.
    pub id: &'a str,
    /// The identity label (`None` for an unlabelled record).
    pub identity: Option<&'a str>,
    /// Cosine similarity (inner product of the L2-normalised rows).
    pub score: f32,
}

/// A searchable gallery of L2-normalised embeddings, one [`Record`] per
/// row, record image ids unique.
///
/// Rows keep their enrolment order: removing records compacts the rest
/// without reordering, so a gallery built by adds and removes searches
/// exactly like one built from scratch from the remaining records.
#[derive(Debug)]
pub struct Gallery {
    pub(crate) model_id: String,
    pub(crate) dim: usize,
    pub(crate) data: Vec<f32>,
    pub(crate) records: Vec<Record>,
    pub(crate) rows: HashMap<String, usize>,
    /// Stable serial number of each row (strictly increasing), used by the
    /// approximate index to name points across removals.
    pub(crate) seqs: Vec<u64>,
    pub(crate) next_seq: u64,
    pub(crate) config: ValidExactParams,
    #[cfg(feature = "hnsw")]
    pub(crate) ann: Option<crate::ann::Ann>,
    #[cfg(feature = "hnsw")]
    pub(crate) ivf: Option<crate::ivf::Ivf>,
}

impl Gallery {
    /// An empty gallery for `dim`-dimensional embeddings of model `model_id`.
    pub fn new(model_id: impl Into<String>, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(IndexError::param("dim", "must be at least 1"));
        }
        Ok(Self {
            model_id: model_id.into(),
            dim,
            data: Vec::new(),
            records: Vec::new(),
            rows: HashMap::new(),
            seqs: Vec::new(),
            next_seq: 0,
            config: ValidExactParams::default(),
            #[cfg(feature = "hnsw")]
            ann: None,
            #[cfg(feature = "hnsw")]
            ivf: None,
        })
    }

    /// A gallery holding `embeddings` (`[n, dim]`) and their `records`.
    pub fn from_parts(
        model_id: impl Into<String>,
        embeddings: ArrayView2<'_, f32>,
        records: Vec<Record>,
    ) -> Result<Self> {
        let mut g = Self::new(model_id, embeddings.ncols())?;
        g.add(embeddings, records)?;
        Ok(g)
    }

    /// Sets the tiling of exact search (speed only).
    pub fn set_exact_params(&mut self, config: ValidExactParams) {
        self.config = config;
    }

    /// Enrols `embeddings` (`[m, dim]`, one row per record) without a
    /// rebuild. Checked before anything changes: shapes, finiteness, and
    /// that no id is already present or repeated; on error the gallery is
    /// unchanged.
    pub fn add(&mut self, embeddings: ArrayView2<'_, f32>, records: Vec<Record>) -> Result<()> {
        if embeddings.ncols() != self.dim || embeddings.nrows() != records.len() {
            return Err(IndexError::Shape {
                expected: format!("[{}, {}] (one row per record)", records.len(), self.dim),
                got: format!("[{}, {}]", embeddings.nrows(), embeddings.ncols()),
            });
        }
        if let Some(row) = first_non_finite_row(embeddings) {
            return Err(IndexError::NonFinite {
                what: "embedding",
                row,
            });
        }
        let mut fresh = HashSet::with_capacity(records.len());
        for r in &records {
            if self.rows.contains_key(&r.image_id) || !fresh.insert(r.image_id.as_str()) {
                return Err(IndexError::DuplicateId(r.image_id.clone()));
            }
        }
        let first_row = self.records.len();
        self.data.reserve(embeddings.len());
        for row in embeddings.axis_iter(Axis(0)) {
            self.data.extend(row.iter().copied());
        }
        for (i, r) in records.into_iter().enumerate() {
            self.rows.insert(r.image_id.clone(), first_row + i);
            self.records.push(r);
            self.seqs.push(self.next_seq);
            self.next_seq += 1;
        }
        #[cfg(feature = "hnsw")]
        {
            self.ann_insert_rows(first_row);
            self.ivf_insert_rows(first_row)?;
        }
        Ok(())
    }

    /// Removes the records with these ids (all or nothing: an unknown id is
    /// an error and nothing is removed). Returns how many were removed.
    pub fn remove_ids<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize> {
        let mut drop = vec![false; self.records.len()];
        for id in ids {
            let id = id.as_ref();
            let row = *self
                .rows
                .get(id)
                .ok_or_else(|| IndexError::UnknownId(id.to_string()))?;
            if let Some(d) = drop.get_mut(row) {
                *d = true;
            }
        }
        Ok(self.retain_rows(&drop))
    }

    /// Removes every record of `identity`; returns how many were removed.
    pub fn remove_identity(&mut self, identity: &str) -> usize {
        let drop: Vec<bool> = self
            .records
            .iter()
            .map(|r| r.identity.as_deref() == Some(identity))
            .collect();
        self.retain_rows(&drop)
    }

    /// Drops the rows flagged in `drop`, keeping the order of the rest.
    fn retain_rows(&mut self, drop: &[bool]) -> usize {
        let removed = drop.iter().filter(|&&d| d).count();
        if removed == 0 {
            return 0;
        }
        let d = self.dim;
        let mut w = 0;
        for r in 0..self.records.len() {
            if drop.get(r).copied().unwrap_or(false) {
                continue;
            }
            if w != r {
                self.data.copy_within(r * d..(r + 1) * d, w * d);
                self.records.swap(w, r);
                self.seqs.swap(w, r);
            }
            w += 1;
        }
        self.data.truncate(w * d);
        self.records.truncate(w);
        self.seqs.truncate(w);
        self.rows = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.image_id.clone(), i))
            .collect();
        removed
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record is enrolled.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Id of the model that made the embeddings.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The records, in row order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The row of record `id`, if enrolled.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.rows.get(id).copied()
    }

    /// The embeddings, `[len, dim]`.
    pub fn embeddings(&self) -> ArrayView2<'_, f32> {
        // `data.len() == len * dim` always holds; the fallback is never taken.
        ArrayView2::from_shape((self.records.len(), self.dim), &self.data).unwrap_or_else(|_| {
            let empty: &[[f32; 0]] = &[];
            ArrayView2::from(empty)
        })
    }

    /// Rows whose metadata matches `filter`, in increasing order.
    pub fn matching_rows(&self, filter: &Filter) -> Vec<usize> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| filter.matches(r))
            .map(|(i, _)| i)
            .collect()
    }

    fn hit(&self, row: usize, score: f32) -> Option<Hit<'_>> {
        self.records.get(row).map(|r| Hit {
            row,
            id: &r.image_id,
            identity: r.identity.as_deref(),
            score,
        })
    }

    /// Exact top-`k` records for each query (`[q, dim]`), best first, ties by
    /// lower row; with a filter, only records matching it are candidates
    /// (a filter matching nothing gives empty lists). An empty gallery,
    /// `k == 0`, a wrong dimension or a non-finite query are errors.
    pub fn search(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Vec<Hit<'_>>>> {
        let top = self.search_topk(queries, k, filter)?;
        Ok(top
            .indices
            .outer_iter()
            .zip(top.scores.outer_iter())
            .map(|(ir, sr)| {
                ir.iter()
                    .zip(sr.iter())
                    .filter_map(|(&row, &s)| self.hit(row, s))
                    .collect()
            })
            .collect())
    }

    /// [`Gallery::search`] as arrays: row `q` of the result holds the gallery
    /// rows and cosines of query `q`'s best `min(k, m)` matches among the `m`
    /// records the filter admits (all without one), best first, ties by the
    /// lower row. A filter that admits no record gives `[q, 0]` arrays.
    pub fn search_topk(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<TopK> {
        if self.is_empty() {
            return Err(IndexError::EmptyGallery);
        }
        let all = self.embeddings();
        match filter {
            Some(f) if !f.is_all() => {
                let rows = self.matching_rows(f);
                if rows.is_empty() {
                    self.check_queries(queries, k)?;
                    return Ok(TopK {
                        indices: Array2::zeros((queries.nrows(), 0)),
                        scores: Array2::zeros((queries.nrows(), 0)),
                    });
                }
                let sub = all.select(Axis(0), &rows);
                let mut top = exact_topk_with(queries, sub.view(), k, &self.config)?;
                top.indices
                    .mapv_inplace(|i| rows.get(i).copied().unwrap_or(i));
                Ok(top)
            }
            _ => exact_topk_with(queries, all, k, &self.config),
        }
    }

    /// A new gallery (same model id and search settings, no approximate
    /// index) holding the given rows, in the order given. Errors on a row out
    /// of range or repeated.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Gallery> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(IndexError::param(
                "rows",
                format!("row {bad} is outside the gallery of {} rows", self.len()),
            ));
        }
        let records = rows.iter().map(|&r| self.records[r].clone()).collect();
        let mut g = Self::new(self.model_id.clone(), self.dim)?;
        g.config = self.config;
        g.add(self.embeddings().select(Axis(0), rows).view(), records)?;
        Ok(g)
    }

    /// A new gallery with the records `filter` admits, in row order (see
    /// [`Gallery::select_rows`]); it may be empty.
    pub fn select(&self, filter: &Filter) -> Result<Gallery> {
        self.select_rows(&self.matching_rows(filter))
    }

    /// A gallery of bare embeddings with one identity label per row (record
    /// image ids are the row numbers; no paths or attributes): what a caller
    /// with only an array and labels needs.
    ///
    /// ```
    /// use ndarray::array;
    /// let g = reid_index::Gallery::from_labels(array![[1.0f32, 0.0], [0.0, 1.0]].view(), &["a", "b"])?;
    /// assert_eq!(g.records()[1].identity.as_deref(), Some("b"));
    /// # Ok::<(), reid_index::IndexError>(())
    /// ```
    pub fn from_labels<S: AsRef<str>>(
        embeddings: ArrayView2<'_, f32>,
        labels: &[S],
    ) -> Result<Self> {
        let records = labels
            .iter()
            .enumerate()
            .map(|(i, l)| Record::new(i.to_string(), "").with_identity(l.as_ref()))
            .collect();
        Self::from_parts("", embeddings, records)
    }

    /// The checks [`Gallery::search`] makes on its arguments.
    pub(crate) fn check_queries(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<()> {
        if k == 0 {
            return Err(IndexError::param("k", "must be at least 1"));
        }
        if queries.ncols() != self.dim {
            return Err(IndexError::Shape {
                expected: format!("queries [q, {}] (the gallery's dimension)", self.dim),
                got: format!("[{}, {}]", queries.nrows(), queries.ncols()),
            });
        }
        if let Some(row) = first_non_finite_row(queries) {
            return Err(IndexError::NonFinite { what: "query", row });
        }
        Ok(())
    }

    /// The best `k` distinct identities per query: each identity scored by
    /// its best record (max similarity), ties by the lower row of that
    /// record. `filter` as in [`Gallery::search`].
    pub fn search_identities(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Vec<Hit<'_>>>> {
        // Identities first seen within the top `m` records are exactly the
        // best identities when at least `k` of them appear there (records
        // outside score no higher, and on equal score sit at higher rows).
        // Widen `m` until that holds or the whole gallery is covered.
        self.check_queries(queries, k)?;
        let mut out: Vec<Option<Vec<Hit<'_>>>> = vec![None; queries.nrows()];
        let mut m = k.saturating_mul(4).max(16);
        loop {
            let pending: Vec<usize> = out
                .iter()
                .enumerate()
                .filter(|(_, o)| o.is_none())
                .map(|(i, _)| i)
                .collect();
            if pending.is_empty() {
                break;
            }
            let sub = queries.select(Axis(0), &pending);
            let hits = self.search(sub.view(), m, filter)?;
            let complete = m >= self.len();
            for (qi, hs) in pending.into_iter().zip(hits) {
                let mut seen = HashSet::new();
                // An unlabelled record stands for itself.
                let best: Vec<Hit<'_>> = hs
                    .into_iter()
                    .filter(|h| seen.insert(h.identity.unwrap_or(h.id)))
                    .take(k)
                    .collect();
                if (best.len() == k || complete)
                    && let Some(slot) = out.get_mut(qi)
                {
                    *slot = Some(best);
                }
            }
            if complete {
                break;
            }
            m = m.saturating_mul(4);
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Owned copy of the embeddings.
    pub fn to_array(&self) -> Array2<f32> {
        self.embeddings().to_owned()
    }
}
