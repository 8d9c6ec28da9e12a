//! RANSAC (Fischler & Bolles, 1981) over point correspondences with the
//! adaptive stopping rule (Hartley & Zisserman, "Multiple View Geometry",
//! section 4.7.1) and a least-squares refit on the inliers.
//!
//! Minimal samples are rejected before fitting when their points are
//! (near-)collinear or when the orientation of a point triple differs
//! between the two images (a reflection, or a fold of the homography):
//! a mirrored match is not the same side of an animal.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{LocalError, Result};
use crate::geometry::{Model, Point};
use crate::params::{ModelKind, ValidRansacParams};

/// The sine of the smallest angle a sample triangle may have.
const MIN_SAMPLE_SINE: f64 = 1e-3;
/// Least-squares refits after sampling, at most.
const MAX_REFITS: usize = 5;

/// What RANSAC found.
#[derive(Debug, Clone, PartialEq)]
pub struct RansacResult {
    /// The best model, refit on its inliers; `None` when there are fewer
    /// correspondences than a minimal sample or no sample was usable.
    pub model: Option<Model>,
    /// Indices of the correspondences within the inlier threshold of
    /// `model`, increasing.
    pub inliers: Vec<usize>,
    /// Samples drawn (at most `max_iterations`).
    pub iterations: u32,
}

/// Fits a model of [`crate::RansacParams::model`] to `src[i] -> dst[i]`.
///
/// Errors when the lengths differ or a coordinate is not finite.
///
/// ```
/// use reid_local::{ParamGuard, RansacParams, ransac};
/// let src: Vec<[f64; 2]> = (0..20).map(|i| [i as f64, (i * i % 7) as f64]).collect();
/// let dst: Vec<[f64; 2]> = src.iter().map(|p| [p[0] + 5.0, p[1] - 2.0]).collect();
/// let r = ransac(&src, &dst, &RansacParams::default().check()?)?;
/// assert_eq!(r.inliers.len(), 20);
/// # Ok::<(), reid_local::LocalError>(())
/// ```
pub fn ransac(src: &[Point], dst: &[Point], params: &ValidRansacParams) -> Result<RansacResult> {
    if src.len() != dst.len() {
        return Err(LocalError::Shape {
            what: "correspondences",
            expected: format!("{} destination points (one per source point)", src.len()),
            got: dst.len().to_string(),
        });
    }
    for (what, pts) in [("source points", src), ("destination points", dst)] {
        if let Some(index) = pts
            .iter()
            .position(|p| !(p[0].is_finite() && p[1].is_finite()))
        {
            return Err(LocalError::NonFinite { what, index });
        }
    }
    Ok(ransac_unchecked(src, dst, params))
}

fn cross(a: Point, b: Point, c: Point) -> (f64, f64) {
    let (e1, e2) = ([b[0] - a[0], b[1] - a[1]], [c[0] - a[0], c[1] - a[1]]);
    let cr = e1[0] * e2[1] - e1[1] * e2[0];
    let norms = (e1[0].hypot(e1[1])) * (e2[0].hypot(e2[1]));
    (cr, norms)
}

/// Whether triangle `(a, b, c)` is non-degenerate in both images with the
/// same orientation.
fn good_triangle(src: [Point; 3], dst: [Point; 3]) -> bool {
    let (cs, ns) = cross(src[0], src[1], src[2]);
    let (cd, nd) = cross(dst[0], dst[1], dst[2]);
    cs.abs() > MIN_SAMPLE_SINE * ns && cd.abs() > MIN_SAMPLE_SINE * nd && (cs > 0.0) == (cd > 0.0)
}

fn good_sample(kind: ModelKind, src: &[Point], dst: &[Point]) -> bool {
    match kind {
        ModelKind::Affine => good_triangle([src[0], src[1], src[2]], [dst[0], dst[1], dst[2]]),
        ModelKind::Homography => [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]
            .iter()
            .all(|t| {
                good_triangle(
                    [src[t[0]], src[t[1]], src[t[2]]],
                    [dst[t[0]], dst[t[1]], dst[t[2]]],
                )
            }),
    }
}

fn count_inliers(model: &Model, src: &[Point], dst: &[Point], thr2: f64) -> usize {
    src.iter()
        .zip(dst)
        .filter(|(s, d)| {
            model
                .apply(**s)
                .is_some_and(|p| (p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2) < thr2)
        })
        .count()
}

fn inlier_indices(model: &Model, src: &[Point], dst: &[Point], thr2: f64, out: &mut Vec<usize>) {
    out.clear();
    out.extend(src.iter().zip(dst).enumerate().filter_map(|(i, (s, d))| {
        model
            .apply(*s)
            .filter(|p| (p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2) < thr2)
            .map(|_| i)
    }));
}

/// Samples needed to draw one all-inlier sample with probability
/// `confidence` at inlier fraction `w`.
fn needed_iterations(w: f64, s: usize, confidence: f64, max: u32) -> u32 {
    let all_in = w.powi(s as i32);
    if all_in >= 1.0 {
        return 1;
    }
    let denom = (1.0 - all_in).ln();
    if denom.is_nan() || denom >= 0.0 {
        return max;
    }
    let n = ((1.0 - confidence).ln() / denom).ceil();
    if n.is_finite() && n >= 1.0 {
        (n.min(f64::from(max))) as u32
    } else {
        max
    }
}

/// RANSAC on checked inputs.
pub(crate) fn ransac_unchecked(
    src: &[Point],
    dst: &[Point],
    params: &ValidRansacParams,
) -> RansacResult {
    let p = params.get();
    let kind = p.model;
    let s = kind.sample_size();
    let n = src.len().min(dst.len());
    let none = |iterations| RansacResult {
        model: None,
        inliers: Vec::new(),
        iterations,
    };
    if n < s {
        return none(0);
    }
    let thr2 = f64::from(p.inlier_threshold).powi(2);
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut best: Option<(Model, usize)> = None;
    let mut needed = p.max_iterations;
    let mut it = 0u32;
    let mut idx = [0usize; 4];
    let mut ss = [[0.0f64; 2]; 4];
    let mut ds = [[0.0f64; 2]; 4];
    while it < needed {
        it += 1;
        // s distinct indices.
        let mut k = 0;
        while k < s {
            let c = rng.gen_range(0..n);
            if !idx[..k].contains(&c) {
                idx[k] = c;
                k += 1;
            }
        }
        for (j, &i) in idx[..s].iter().enumerate() {
            ss[j] = src[i];
            ds[j] = dst[i];
        }
        if !good_sample(kind, &ss[..s], &ds[..s]) {
            continue;
        }
        let Some(model) = Model::fit(kind, &ss[..s], &ds[..s]) else {
            continue;
        };
        let count = count_inliers(&model, &src[..n], &dst[..n], thr2);
        if best.as_ref().is_none_or(|b| count > b.1) {
            best = Some((model, count));
            needed = needed_iterations(count as f64 / n as f64, s, p.confidence, p.max_iterations);
            if count == n {
                break;
            }
        }
    }
    let Some((mut model, mut count)) = best else {
        return none(it);
    };
    let mut inliers = Vec::with_capacity(count);
    inlier_indices(&model, &src[..n], &dst[..n], thr2, &mut inliers);
    if p.refine {
        let mut fs: Vec<Point> = Vec::with_capacity(count);
        let mut fd: Vec<Point> = Vec::with_capacity(count);
        for _ in 0..MAX_REFITS {
            if inliers.len() <= s {
                break;
            }
            fs.clear();
            fd.clear();
            fs.extend(inliers.iter().map(|&i| src[i]));
            fd.extend(inliers.iter().map(|&i| dst[i]));
            let Some(refit) = Model::fit(kind, &fs, &fd) else {
                break;
            };
            let c = count_inliers(&refit, &src[..n], &dst[..n], thr2);
            if c < count {
                break;
            }
            let grew = c > count;
            model = refit;
            count = c;
            inlier_indices(&model, &src[..n], &dst[..n], thr2, &mut inliers);
            if !grew {
                break;
            }
        }
    }
    RansacResult {
        model: Some(model),
        inliers,
        iterations: it,
    }
}
