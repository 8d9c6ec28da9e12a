//! Descriptor matching: brute-force nearest neighbours (one GEMM per tile of
//! rows), Lowe's ratio test and the mutual-nearest-neighbour check.

use crate::error::{LocalError, Result};
use crate::features::Features;
use crate::params::ValidMatchParams;
use reid_index::matmul::inner_products_of_rows;

/// Rows of the first descriptor set per GEMM tile (a 128 × 1000 tile of
/// scores is 512 KiB).
const ROW_TILE: usize = 128;

/// A tentative correspondence between descriptor `a` of the first set and
/// descriptor `b` of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index in the first set.
    pub a: u32,
    /// Index in the second set (`a`'s nearest neighbour there).
    pub b: u32,
    /// Euclidean distance between the two descriptors.
    pub distance: f32,
    /// Distance from `a` to its second-nearest neighbour in the second set
    /// (`f32::INFINITY` when the second set has a single descriptor).
    pub second_distance: f32,
}

/// Matches row-major descriptor sets `a: [na, dim]` and `b: [nb, dim]`:
/// each row of `a` is paired with its nearest row of `b` (Euclidean
/// distance; ties go to the lower index) when the ratio test
/// `d1 < ratio · d2` passes (it is skipped when `b` has one row) and, if
/// [`crate::MatchParams::mutual`], when `a` is also `b`'s nearest row.
/// Results are ordered by `a`.
///
/// Errors when a length is not a multiple of `dim` or a value is not finite.
///
/// ```
/// use reid_local::{MatchParams, ParamGuard, match_descriptors};
/// let a = [1.0f32, 0.0, 0.0, 1.0];
/// let b = [0.0f32, 1.0, 0.9, 0.1, -1.0, 0.0];
/// let m = match_descriptors(&a, &b, 2, &MatchParams::default().check()?)?;
/// assert_eq!(m.iter().map(|m| (m.a, m.b)).collect::<Vec<_>>(), vec![(0, 1), (1, 0)]);
/// # Ok::<(), reid_local::LocalError>(())
/// ```
pub fn match_descriptors(
    a: &[f32],
    b: &[f32],
    dim: usize,
    params: &ValidMatchParams,
) -> Result<Vec<Match>> {
    if dim == 0 {
        return Err(LocalError::param(
            "dim",
            "descriptor length must be at least 1",
        ));
    }
    for (what, v) in [("first descriptor set", a), ("second descriptor set", b)] {
        if v.len() % dim != 0 {
            return Err(LocalError::Shape {
                what,
                expected: format!("a multiple of {dim} values"),
                got: format!("{} values", v.len()),
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(LocalError::NonFinite { what, index });
        }
    }
    Ok(match_unchecked(
        a,
        b,
        dim,
        params,
        &mut MatchScratch::default(),
    ))
}

/// [`match_descriptors`] for two [`Features`] (errors when their
/// descriptor lengths differ).
pub fn match_features(a: &Features, b: &Features, params: &ValidMatchParams) -> Result<Vec<Match>> {
    check_dims(a, b)?;
    Ok(match_unchecked(
        a.descriptors(),
        b.descriptors(),
        a.dim(),
        params,
        &mut MatchScratch::default(),
    ))
}

pub(crate) fn check_dims(a: &Features, b: &Features) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(LocalError::Shape {
            what: "descriptor length",
            expected: a.dim().to_string(),
            got: b.dim().to_string(),
        });
    }
    Ok(())
}

/// Buffers reused across the pairs one thread scores.
#[derive(Default)]
pub(crate) struct MatchScratch {
    dots: Vec<f32>,
    norms_b: Vec<f32>,
    col_d: Vec<f32>,
    col_i: Vec<u32>,
    row_best: Vec<(u32, f32, f32)>,
}

/// Matching of validated inputs (lengths multiples of `dim`, finite).
pub(crate) fn match_unchecked(
    a: &[f32],
    b: &[f32],
    dim: usize,
    params: &ValidMatchParams,
    s: &mut MatchScratch,
) -> Vec<Match> {
    let p = params.get();
    if dim == 0 {
        return Vec::new();
    }
    let (na, nb) = (a.len() / dim, b.len() / dim);
    if na == 0 || nb == 0 {
        return Vec::new();
    }
    s.norms_b.clear();
    s.norms_b.extend(
        b.chunks_exact(dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>()),
    );
    s.col_d.clear();
    s.col_d.resize(nb, f32::INFINITY);
    s.col_i.clear();
    s.col_i.resize(nb, u32::MAX);
    s.row_best.clear();
    s.row_best.reserve(na);
    for (t, tile) in a.chunks(ROW_TILE * dim).enumerate() {
        let rows = tile.len() / dim;
        s.dots.clear();
        s.dots.resize(rows * nb, 0.0);
        if !inner_products_of_rows(tile, b, dim, &mut s.dots) {
            return Vec::new();
        }
        for (r, (row, arow)) in s
            .dots
            .chunks_exact_mut(nb)
            .zip(tile.chunks_exact(dim))
            .enumerate()
        {
            let i = (t * ROW_TILE + r) as u32;
            let na2: f32 = arow.iter().map(|v| v * v).sum();
            // Squared distances in place, and the column minima, branch-free
            // over equal-length slices so that the loop vectorises. `+ 0.0`
            // turns a -0.0 into +0.0, so that the bit patterns of these
            // non-negative floats order like the values (used below).
            let row = &mut row[..nb];
            let norms = &s.norms_b[..nb];
            let col_d = &mut s.col_d[..nb];
            let col_i = &mut s.col_i[..nb];
            for j in 0..nb {
                let d = (na2 + norms[j] - 2.0 * row[j]).max(0.0) + 0.0;
                row[j] = d;
                let old = col_d[j];
                // All-ones when `d` is strictly better (ties keep the lower
                // row), as a mask rather than a branch.
                let mask = u32::from(d < old).wrapping_neg();
                col_i[j] = (i & mask) | (col_i[j] & !mask);
                col_d[j] = old.min(d);
            }
            // Nearest and second nearest: integer minima of the bits
            // (vectorised), then the first position of the minimum.
            // (An empty slice gives +inf: no second neighbour.)
            let min_bits = |v: &[f32]| {
                v.iter()
                    .fold(f32::INFINITY.to_bits(), |m, x| m.min(x.to_bits()))
            };
            let m1 = min_bits(row);
            let b1 = row.iter().position(|x| x.to_bits() == m1).unwrap_or(0);
            let m2 = min_bits(&row[..b1]).min(min_bits(row.get(b1 + 1..).unwrap_or(&[])));
            let (b1, d1, d2) = (b1 as u32, f32::from_bits(m1), f32::from_bits(m2));
            s.row_best.push((b1, d1, d2));
        }
    }
    let r2 = p.ratio * p.ratio;
    let mut out = Vec::new();
    for (i, &(j, d1, d2)) in s.row_best.iter().enumerate() {
        let ratio_ok = nb < 2 || d1 < r2 * d2;
        let mutual_ok = !p.mutual || s.col_i.get(j as usize) == Some(&(i as u32));
        if ratio_ok && mutual_ok {
            out.push(Match {
                a: i as u32,
                b: j,
                distance: d1.sqrt(),
                second_distance: d2.sqrt(),
            });
        }
    }
    out
}
