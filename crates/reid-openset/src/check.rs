//! Input checks shared by the modules (private).

use ndarray::ArrayView2;

use crate::{OpensetError, Result};

/// Every value of `a` is finite; otherwise names the first bad cell.
pub(crate) fn finite_2d(a: ArrayView2<'_, f32>, what: &'static str) -> Result<()> {
    for ((row, col), v) in a.indexed_iter() {
        if !v.is_finite() {
            return Err(OpensetError::NonFinite { what, row, col });
        }
    }
    Ok(())
}

/// Every value of `a` is finite; otherwise names the first bad position.
pub(crate) fn finite_1d(a: &[f32], what: &'static str) -> Result<()> {
    match a.iter().position(|v| !v.is_finite()) {
        Some(col) => Err(OpensetError::NonFinite { what, row: 0, col }),
        None => Ok(()),
    }
}

/// `got == expected`, or a [`OpensetError::Length`].
pub(crate) fn same_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(OpensetError::Length {
            what,
            expected,
            got,
        })
    }
}

/// Query rows have the gallery's dimension and are finite.
pub(crate) fn queries(q: ArrayView2<'_, f32>, dim: usize) -> Result<()> {
    if q.ncols() != dim {
        return Err(OpensetError::Shape {
            expected: format!("[queries, {dim}]"),
            got: format!("[{}, {}]", q.nrows(), q.ncols()),
        });
    }
    finite_2d(q, "queries")
}

/// The identity of every gallery row; a record without one is an
/// [`OpensetError::Unlabelled`] naming it.
pub(crate) fn labels(gallery: &reid_index::Gallery) -> Result<Vec<&str>> {
    gallery
        .records()
        .iter()
        .map(|r| {
            r.identity
                .as_deref()
                .ok_or_else(|| OpensetError::Unlabelled {
                    image_id: r.image_id.clone(),
                })
        })
        .collect()
}

/// Scales `row` to unit L2 norm (computed in f64); a row of zero or
/// non-finite norm becomes zero.
pub(crate) fn normalise_row(mut row: ndarray::ArrayViewMut1<'_, f32>) {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 && norm.is_finite() {
        row.mapv_inplace(|v| (f64::from(v) / norm) as f32);
    } else {
        row.fill(0.0);
    }
}
