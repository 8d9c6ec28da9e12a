//! Plane transformations fitted to point correspondences: affine maps
//! (least squares, exact from 3 points) and homographies (the normalised
//! direct linear transform of Hartley & Zisserman, "Multiple View Geometry",
//! algorithm 4.2).

use crate::params::ModelKind;

/// A 2-D point `[x, y]`.
pub type Point = [f64; 2];

/// `x' = m[0][0] x + m[0][1] y + m[0][2]`, `y' = m[1][0] x + m[1][1] y + m[1][2]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// The 2 × 3 matrix, row-major.
    pub m: [[f64; 3]; 2],
}

impl Affine {
    /// The identity map.
    pub fn identity() -> Self {
        Affine {
            m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        }
    }

    /// Maps a point.
    #[inline]
    pub fn apply(&self, p: Point) -> Point {
        let m = &self.m;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// Determinant of the linear part (negative for a reflection).
    pub fn det(&self) -> f64 {
        self.m[0][0] * self.m[1][1] - self.m[0][1] * self.m[1][0]
    }

    /// Least-squares fit of `dst ≈ A(src)` (exact for 3 non-collinear
    /// points). `None` with fewer than 3 points, different lengths, or
    /// (near-)collinear `src`.
    pub fn fit(src: &[Point], dst: &[Point]) -> Option<Self> {
        let n = src.len();
        if n < 3 || dst.len() != n {
            return None;
        }
        let inv_n = 1.0 / n as f64;
        let mut cs = [0.0; 2];
        let mut cd = [0.0; 2];
        for (s, d) in src.iter().zip(dst) {
            cs[0] += s[0];
            cs[1] += s[1];
            cd[0] += d[0];
            cd[1] += d[1];
        }
        cs = [cs[0] * inv_n, cs[1] * inv_n];
        cd = [cd[0] * inv_n, cd[1] * inv_n];
        // Centred normal equations: A = (Σ d qᵀ)(Σ q qᵀ)⁻¹.
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        let (mut ux, mut uy, mut vx, mut vy) = (0.0, 0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (qx, qy) = (s[0] - cs[0], s[1] - cs[1]);
            let (du, dv) = (d[0] - cd[0], d[1] - cd[1]);
            sxx += qx * qx;
            sxy += qx * qy;
            syy += qy * qy;
            ux += du * qx;
            uy += du * qy;
            vx += dv * qx;
            vy += dv * qy;
        }
        let det = sxx * syy - sxy * sxy;
        // Collinear (or coincident) source points: relative to the spread.
        let scale = (sxx + syy) * (sxx + syy);
        if !(det > 1e-12 * scale && det.is_finite()) {
            return None;
        }
        let (i00, i01, i11) = (syy / det, -sxy / det, sxx / det);
        let a = ux * i00 + uy * i01;
        let b = ux * i01 + uy * i11;
        let c = vx * i00 + vy * i01;
        let d = vx * i01 + vy * i11;
        Some(Affine {
            m: [
                [a, b, cd[0] - a * cs[0] - b * cs[1]],
                [c, d, cd[1] - c * cs[0] - d * cs[1]],
            ],
        })
    }
}

/// A plane projective map, `[x', y', w']ᵀ = H [x, y, 1]ᵀ`, scaled so that
/// `h[2][2] = 1` when possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    /// The 3 × 3 matrix, row-major.
    pub h: [[f64; 3]; 3],
}

impl Homography {
    /// The identity map.
    pub fn identity() -> Self {
        Homography {
            h: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// Maps a point; `None` when it goes to (or near) infinity.
    #[inline]
    pub fn apply(&self, p: Point) -> Option<Point> {
        let h = &self.h;
        let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
        if w.abs() < 1e-12 {
            return None;
        }
        Some([
            (h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w,
            (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w,
        ])
    }

    /// Normalised DLT fit of `dst ≈ H(src)` from at least 4
    /// correspondences (exact for 4 points in general position): points are
    /// translated to their centroid and scaled to mean distance √2, the
    /// linear system is solved (for 4 points directly, with `h₃₃ = 1` in the
    /// normalised frame; for more as the least-squares null vector of
    /// `AᵀA`), and the normalisation is undone. `None` when degenerate.
    pub fn fit(src: &[Point], dst: &[Point]) -> Option<Self> {
        let n = src.len();
        if n < 4 || dst.len() != n {
            return None;
        }
        let t1 = normalizer(src)?;
        let t2 = normalizer(dst)?;
        let norm = |t: &[f64; 3], p: &Point| [t[0] * p[0] + t[1], t[0] * p[1] + t[2]];
        let rows = |s: Point, d: Point| -> [[f64; 9]; 2] {
            let (x, y, u, v) = (s[0], s[1], d[0], d[1]);
            [
                [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u],
                [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v],
            ]
        };
        let hn: [f64; 9] = if n == 4 {
            let mut a = [[0.0f64; 9]; 8];
            for (k, (s, d)) in src.iter().zip(dst).enumerate() {
                let r = rows(norm(&t1, s), norm(&t2, d));
                a[2 * k] = r[0];
                a[2 * k + 1] = r[1];
            }
            match solve_h33(&a) {
                Some(h) => h,
                None => null_vector(&ata(a.iter()))?,
            }
        } else {
            let mut m = [[0.0f64; 9]; 9];
            for (s, d) in src.iter().zip(dst) {
                let r = rows(norm(&t1, s), norm(&t2, d));
                accumulate_ata(&mut m, &r[0]);
                accumulate_ata(&mut m, &r[1]);
            }
            null_vector(&m)?
        };
        // H = T2⁻¹ Hn T1 with T = [[s, 0, tx], [0, s, ty], [0, 0, 1]].
        let hm = [
            [hn[0], hn[1], hn[2]],
            [hn[3], hn[4], hn[5]],
            [hn[6], hn[7], hn[8]],
        ];
        let t1m = [[t1[0], 0.0, t1[1]], [0.0, t1[0], t1[2]], [0.0, 0.0, 1.0]];
        let inv_s = 1.0 / t2[0];
        let t2inv = [
            [inv_s, 0.0, -t2[1] * inv_s],
            [0.0, inv_s, -t2[2] * inv_s],
            [0.0, 0.0, 1.0],
        ];
        let mut h = mul3(&mul3(&t2inv, &hm), &t1m);
        let h22 = h[2][2];
        let scale = if h22.abs() > 1e-12 {
            1.0 / h22
        } else {
            let f: f64 = h.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
            if f > 0.0 { 1.0 / f } else { return None }
        };
        for v in h.iter_mut().flatten() {
            *v *= scale;
        }
        if h.iter().flatten().all(|v| v.is_finite()) {
            Some(Homography { h })
        } else {
            None
        }
    }
}

/// A fitted model of either kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// An affine map.
    Affine(Affine),
    /// A homography.
    Homography(Homography),
}

impl Model {
    /// Which kind of model this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Affine(_) => ModelKind::Affine,
            Model::Homography(_) => ModelKind::Homography,
        }
    }

    /// Maps a point (`None` when a homography sends it to infinity).
    #[inline]
    pub fn apply(&self, p: Point) -> Option<Point> {
        match self {
            Model::Affine(a) => Some(a.apply(p)),
            Model::Homography(h) => h.apply(p),
        }
    }

    /// Fits a model of `kind` to the correspondences (least squares beyond
    /// the minimal sample).
    pub fn fit(kind: ModelKind, src: &[Point], dst: &[Point]) -> Option<Self> {
        match kind {
            ModelKind::Affine => Affine::fit(src, dst).map(Model::Affine),
            ModelKind::Homography => Homography::fit(src, dst).map(Model::Homography),
        }
    }
}

/// `[s, tx, ty]` moving the centroid to the origin and the mean distance
/// to √2; `None` if all points coincide.
fn normalizer(p: &[Point]) -> Option<[f64; 3]> {
    let n = p.len() as f64;
    let cx = p.iter().map(|q| q[0]).sum::<f64>() / n;
    let cy = p.iter().map(|q| q[1]).sum::<f64>() / n;
    let mean = p
        .iter()
        .map(|q| ((q[0] - cx).powi(2) + (q[1] - cy).powi(2)).sqrt())
        .sum::<f64>()
        / n;
    if !(mean > 1e-12 && mean.is_finite()) {
        return None;
    }
    let s = std::f64::consts::SQRT_2 / mean;
    Some([s, -s * cx, -s * cy])
}

fn mul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

// Matrix code reads best with explicit indices.
#[allow(clippy::needless_range_loop)]
fn accumulate_ata(m: &mut [[f64; 9]; 9], r: &[f64; 9]) {
    for i in 0..9 {
        for j in i..9 {
            m[i][j] += r[i] * r[j];
        }
    }
    for i in 0..9 {
        for j in 0..i {
            m[i][j] = m[j][i];
        }
    }
}

fn ata<'a>(rows: impl Iterator<Item = &'a [f64; 9]>) -> [[f64; 9]; 9] {
    let mut m = [[0.0f64; 9]; 9];
    for r in rows {
        accumulate_ata(&mut m, r);
    }
    m
}

/// Solves the 8 × 9 system `A h = 0` with `h₉ = 1` by Gaussian elimination
/// with partial pivoting; `None` when (near-)singular.
// Matrix code reads best with explicit indices.
#[allow(clippy::needless_range_loop)]
fn solve_h33(a: &[[f64; 9]; 8]) -> Option<[f64; 9]> {
    let mut m = [[0.0f64; 9]; 8];
    for (r, row) in a.iter().enumerate() {
        m[r][..8].copy_from_slice(&row[..8]);
        m[r][8] = -row[8];
    }
    let scale = a.iter().flatten().map(|v| v.abs()).fold(0.0, f64::max);
    if scale <= 0.0 {
        return None;
    }
    for col in 0..8 {
        let (piv, pv) = (col..8)
            .map(|r| (r, m[r][col].abs()))
            .fold((col, -1.0), |b, x| if x.1 > b.1 { x } else { b });
        if pv <= 1e-10 * scale {
            return None;
        }
        m.swap(col, piv);
        let d = m[col][col];
        for r in col + 1..8 {
            let f = m[r][col] / d;
            if f != 0.0 {
                for c in col..9 {
                    m[r][c] -= f * m[col][c];
                }
            }
        }
    }
    let mut h = [0.0f64; 9];
    h[8] = 1.0;
    for r in (0..8).rev() {
        let s: f64 = (r + 1..8).map(|c| m[r][c] * h[c]).sum();
        h[r] = (m[r][8] - s) / m[r][r];
    }
    h.iter().all(|v| v.is_finite()).then_some(h)
}

/// Unit eigenvector of the smallest eigenvalue of a symmetric 9 × 9 matrix
/// (cyclic Jacobi rotations).
// Matrix code reads best with explicit indices.
#[allow(clippy::needless_range_loop)]
fn null_vector(m: &[[f64; 9]; 9]) -> Option<[f64; 9]> {
    const N: usize = 9;
    let mut a = *m;
    let mut v = [[0.0f64; N]; N];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let total: f64 = a.iter().flatten().map(|x| x * x).sum();
    if !(total > 0.0 && total.is_finite()) {
        return None;
    }
    for _sweep in 0..60 {
        let off: f64 = (0..N)
            .flat_map(|i| (0..N).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= 1e-30 * total {
            break;
        }
        for p in 0..N {
            for q in p + 1..N {
                let apq = a[p][q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                for k in 0..N {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let k = (0..N).fold(0, |b, i| if a[i][i] < a[b][b] { i } else { b });
    let mut out = [0.0f64; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = v[i][k];
    }
    out.iter().all(|x| x.is_finite()).then_some(out)
}
