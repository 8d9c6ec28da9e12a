//! Exact cosine top-k search.

use ndarray::{Array2, ArrayView2};

use crate::{IndexError, Result};

/// The `k` best gallery matches of each query, best first.
///
/// Both arrays have shape `[queries, min(k, gallery)]`; row `q` holds the
/// gallery row indices and cosine similarities of query `q`, ordered by
/// decreasing similarity, ties broken by the lower gallery index.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Gallery row indices, `[queries, k']`.
    pub indices: Array2<usize>,
    /// Similarities, `[queries, k']`.
    pub scores: Array2<f32>,
}

/// Exact top-`k` by inner product of L2-normalised rows (cosine similarity).
///
/// `queries` is `[q, d]`, `gallery` is `[n, d]`. An empty gallery, `k == 0`
/// or differing dimensions are errors.
pub fn exact_topk(queries: ArrayView2<f32>, gallery: ArrayView2<f32>, k: usize) -> Result<TopK> {
    if gallery.nrows() == 0 {
        return Err(IndexError::EmptyGallery);
    }
    if k == 0 {
        return Err(IndexError::InvalidParam {
            name: "k",
            reason: "must be at least 1".into(),
        });
    }
    if queries.ncols() != gallery.ncols() {
        return Err(IndexError::Shape {
            expected: format!("[q, {}]", gallery.ncols()),
            got: format!("[{}, {}]", queries.nrows(), queries.ncols()),
        });
    }
    let kk = k.min(gallery.nrows());
    let sims = queries.dot(&gallery.t());
    let mut indices = Array2::zeros((queries.nrows(), kk));
    let mut scores = Array2::zeros((queries.nrows(), kk));
    for (q, row) in sims.outer_iter().enumerate() {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for (j, &g) in order.iter().take(kk).enumerate() {
            indices[[q, j]] = g;
            scores[[q, j]] = row[g];
        }
    }
    Ok(TopK { indices, scores })
}
