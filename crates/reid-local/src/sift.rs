//! A compact SIFT (Lowe, "Distinctive image features from scale-invariant
//! keypoints", IJCV 2004), written for this crate: Gaussian scale space,
//! difference-of-Gaussian extrema with sub-pixel refinement, contrast and
//! edge rejection, orientation histograms and the 4 × 4 × 8 descriptor, with
//! RootSIFT on top. Constants follow the paper (and OpenCV's defaults where
//! the paper leaves a choice; each is named below).

use std::f32::consts::{PI, TAU};

use crate::features::{DESCRIPTOR_LEN, Keypoint};
use crate::params::{DescriptorKind, ExtractParams};
use crate::prep::Plane;

/// Pixels at the border of each DoG image where no extremum is searched.
const BORDER: usize = 5;
/// Octaves stop when the shorter side falls below this.
const MIN_OCTAVE_SIDE: usize = 16;
/// Sub-pixel refinement steps (Lowe's "a few"; OpenCV uses 5).
const MAX_REFINE_STEPS: usize = 5;
/// Assumed blur of the input image (Lowe 2004, section 3.3).
const INPUT_BLUR: f32 = 0.5;
/// Orientation histogram bins (Lowe 2004, section 5).
const ORI_BINS: usize = 36;
/// Gaussian window of the orientation histogram: 1.5 × the keypoint scale.
const ORI_SIGMA_FACTOR: f32 = 1.5;
/// The window extends to 3 of its σ.
const ORI_RADIUS_FACTOR: f32 = 3.0;
/// Secondary orientation peaks within this fraction of the maximum.
const ORI_PEAK_RATIO: f32 = 0.8;
/// Descriptor grid (4 × 4 cells) and orientation bins (8).
const DESC_WIDTH: usize = 4;
const DESC_BINS: usize = 8;
/// A descriptor cell is 3 keypoint scales wide (OpenCV's SIFT_DESCR_SCL_FCTR).
const DESC_SCALE_FACTOR: f32 = 3.0;
/// Elements of the unit SIFT vector are clipped here (Lowe 2004, section 6.1).
const DESC_CLIP: f32 = 0.2;

/// `atan2(y, x)` in `(-π, π]`, to about 1e-5 rad: a degree-11 odd
/// polynomial for `atan` on `[-1, 1]` (a published minimax fit) and the
/// usual octant reduction. Plenty for 8- and 36-bin histograms, and several
/// times faster than `f32::atan2`.
#[inline]
fn fast_atan2(y: f32, x: f32) -> f32 {
    let (ax, ay) = (x.abs(), y.abs());
    let (num, den) = if ax >= ay { (ay, ax) } else { (ax, ay) };
    if den == 0.0 {
        return 0.0;
    }
    let z = num / den;
    let z2 = z * z;
    let mut a = z
        * (0.999_977_26
            + z2 * (-0.332_623_47
                + z2 * (0.193_543_46
                    + z2 * (-0.116_432_87 + z2 * (0.052_653_32 + z2 * -0.011_721_2)))));
    if ay > ax {
        a = std::f32::consts::FRAC_PI_2 - a;
    }
    if x < 0.0 {
        a = PI - a;
    }
    if y < 0.0 { -a } else { a }
}

/// A refined extremum before orientation assignment.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    octave: usize,
    layer: usize,
    /// Integer position in the octave after refinement.
    xi: usize,
    yi: usize,
    /// Sub-pixel position in the octave.
    xo: f32,
    yo: f32,
    /// Scale in octave pixels.
    scale: f32,
    response: f32,
}

/// The Gaussian images of one octave.
struct Octave {
    gauss: Vec<Plane>,
}

/// Keypoints (strongest first) and their descriptors, row-major
/// `[n, DESCRIPTOR_LEN]`, for a grayscale image in `[0, 1]`.
pub(crate) fn extract(img: &Plane, p: &ExtractParams) -> (Vec<Keypoint>, Vec<f32>) {
    let s = p.octave_layers as usize;
    let base = if p.double_image {
        upsample2(img)
    } else {
        img.clone()
    };
    let init_blur = if p.double_image {
        2.0 * INPUT_BLUR
    } else {
        INPUT_BLUR
    };
    if base.w.min(base.h) < MIN_OCTAVE_SIDE {
        return (Vec::new(), Vec::new());
    }
    let octaves = build_scale_space(base, p.sigma, init_blur, s);

    // Detection over all octaves.
    let mut cands = Vec::new();
    let mut scratch = Scratch::default();
    for (o, oct) in octaves.iter().enumerate() {
        detect(o, oct, p, &mut scratch, &mut cands);
    }
    // Refinement can move two extrema onto the same sample: keep one.
    cands.sort_by_key(|c| (c.octave, c.layer, c.yi, c.xi));
    cands.dedup_by_key(|c| (c.octave, c.layer, c.yi, c.xi));
    cands.sort_by(|a, b| {
        b.response
            .total_cmp(&a.response)
            .then(a.octave.cmp(&b.octave))
            .then(a.layer.cmp(&b.layer))
            .then(a.yi.cmp(&b.yi))
            .then(a.xi.cmp(&b.xi))
    });
    cands.truncate(p.max_keypoints);

    // Orientations (a candidate may get several), then descriptors.
    let coord_scale = |o: usize| -> f32 {
        let f = (1u64 << o) as f32;
        if p.double_image { f * 0.5 } else { f }
    };
    let mut oriented: Vec<(Candidate, f32)> = Vec::with_capacity(cands.len() + cands.len() / 4);
    let mut angles = Vec::with_capacity(4);
    for c in &cands {
        let Some(oct) = octaves.get(c.octave) else {
            continue;
        };
        let Some(g) = oct.gauss.get(c.layer) else {
            continue;
        };
        orientations(g, c, &mut angles);
        oriented.extend(angles.iter().map(|&a| (*c, a)));
        if oriented.len() >= p.max_keypoints {
            break;
        }
    }
    oriented.truncate(p.max_keypoints);

    let mut keypoints = Vec::with_capacity(oriented.len());
    let mut descriptors = Vec::with_capacity(oriented.len() * DESCRIPTOR_LEN);
    let mut desc = [0.0f32; DESCRIPTOR_LEN];
    for (c, angle) in oriented {
        let Some(g) = octaves.get(c.octave).and_then(|oct| oct.gauss.get(c.layer)) else {
            continue;
        };
        if !describe(g, &c, angle, p.descriptor, &mut desc) {
            continue;
        }
        let f = coord_scale(c.octave);
        keypoints.push(Keypoint {
            x: c.xo * f,
            y: c.yo * f,
            sigma: c.scale * f,
            angle,
            response: c.response,
            octave: c.octave as i32 - i32::from(p.double_image),
        });
        descriptors.extend_from_slice(&desc);
    }
    (keypoints, descriptors)
}

/// Doubles the image: even pixels copy the input, odd ones average their
/// neighbours, so that input pixel `x` sits exactly at `2x`.
fn upsample2(img: &Plane) -> Plane {
    let (w, h) = (img.w, img.h);
    let (w2, h2) = (2 * w, 2 * h);
    let mut out = Plane::new(w2, h2);
    if w == 0 || h == 0 {
        return out;
    }
    // Rows first into even output rows.
    for y in 0..h {
        let src = &img.data[y * w..(y + 1) * w];
        let dst = &mut out.data[2 * y * w2..(2 * y + 1) * w2];
        for x in 0..w {
            let a = src[x];
            let b = src[(x + 1).min(w - 1)];
            dst[2 * x] = a;
            dst[2 * x + 1] = 0.5 * (a + b);
        }
    }
    // Odd rows: average of the even rows around them.
    for y in 0..h {
        let next = (y + 1).min(h - 1);
        let (top, rest) = out.data.split_at_mut((2 * y + 1) * w2);
        let a = &top[2 * y * w2..(2 * y + 1) * w2];
        let (mid, rest2) = rest.split_at_mut(w2);
        let b: &[f32] = if next == y {
            a
        } else {
            &rest2[(2 * next - 2 * y - 2) * w2..(2 * next - 2 * y - 1) * w2]
        };
        for ((m, &u), &v) in mid.iter_mut().zip(a).zip(b) {
            *m = 0.5 * (u + v);
        }
    }
    out
}

/// Every second pixel (OpenCV's octave step: `dst(x, y) = src(2x, 2y)`).
fn downsample2(img: &Plane) -> Plane {
    let (w, h) = (img.w / 2, img.h / 2);
    let mut out = Plane::new(w, h);
    for y in 0..h {
        let src = &img.data[2 * y * img.w..];
        for (x, o) in out.data[y * w..(y + 1) * w].iter_mut().enumerate() {
            *o = src[2 * x];
        }
    }
    out
}

/// Reflect-101 border (`-1 -> 1`, `n -> n - 2`), for any index.
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = ((3.0 * sigma).ceil() as usize).max(1);
    let mut k: Vec<f32> = (0..=2 * r)
        .map(|i| {
            let x = i as f32 - r as f32;
            (-x * x / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    for v in &mut k {
        *v /= sum;
    }
    k
}

/// Separable Gaussian blur with reflect-101 borders. The kernel is
/// symmetric, so each pass adds mirrored pairs of taps before multiplying.
fn blur(src: &Plane, sigma: f32, tmp: &mut Vec<f32>, pad: &mut Vec<f32>) -> Plane {
    let (w, h) = (src.w, src.h);
    let k = gaussian_kernel(sigma);
    let r = k.len() / 2;
    let kc = k[r];
    tmp.clear();
    tmp.resize(w * h, 0.0);
    pad.clear();
    pad.resize(w + 2 * r, 0.0);
    // Horizontal: the row with reflected borders in `pad`.
    for y in 0..h {
        let row = &src.data[y * w..(y + 1) * w];
        pad[r..r + w].copy_from_slice(row);
        for i in 0..r {
            pad[i] = row[reflect(i as isize - r as isize, w)];
            pad[r + w + i] = row[reflect((w + i) as isize, w)];
        }
        let out = &mut tmp[y * w..(y + 1) * w];
        for (o, &v) in out.iter_mut().zip(&pad[r..r + w]) {
            *o = kc * v;
        }
        for t in 1..=r {
            let kt = k[r + t];
            let (lo, hi) = (&pad[r - t..r - t + w], &pad[r + t..r + t + w]);
            for ((o, &a), &b) in out.iter_mut().zip(lo).zip(hi) {
                *o += kt * (a + b);
            }
        }
    }
    // Vertical.
    let mut dst = Plane::new(w, h);
    for y in 0..h {
        let out = &mut dst.data[y * w..(y + 1) * w];
        for (o, &v) in out.iter_mut().zip(&tmp[y * w..(y + 1) * w]) {
            *o = kc * v;
        }
        for t in 1..=r {
            let kt = k[r + t];
            let ya = reflect(y as isize - t as isize, h);
            let yb = reflect((y + t) as isize, h);
            let (lo, hi) = (&tmp[ya * w..(ya + 1) * w], &tmp[yb * w..(yb + 1) * w]);
            for ((o, &a), &b) in out.iter_mut().zip(lo).zip(hi) {
                *o += kt * (a + b);
            }
        }
    }
    dst
}

fn build_scale_space(base: Plane, sigma: f32, init_blur: f32, s: usize) -> Vec<Octave> {
    let k = 2f32.powf(1.0 / s as f32);
    // Incremental blurs between successive scales of an octave.
    let incs: Vec<f32> = (1..s + 3)
        .map(|i| {
            let prev = sigma * k.powi(i as i32 - 1);
            let total = prev * k;
            (total * total - prev * prev).sqrt()
        })
        .collect();
    let mut tmp = Vec::new();
    let mut pad = Vec::new();
    let first_inc = (sigma * sigma - init_blur * init_blur).max(0.01).sqrt();
    let mut start = blur(&base, first_inc, &mut tmp, &mut pad);
    let mut octaves = Vec::new();
    loop {
        let mut gauss = Vec::with_capacity(s + 3);
        gauss.push(start);
        for &inc in &incs {
            let next = match gauss.last() {
                Some(g) => blur(g, inc, &mut tmp, &mut pad),
                None => break,
            };
            gauss.push(next);
        }
        let next_start = gauss.get(s).map(downsample2);
        octaves.push(Octave { gauss });
        match next_start {
            Some(n) if n.w.min(n.h) >= MIN_OCTAVE_SIDE => start = n,
            _ => break,
        }
    }
    octaves
}

#[derive(Default)]
struct Scratch {
    dog: Vec<Plane>,
}

/// Difference of Gaussians of one octave into `scratch.dog`.
fn dogs(oct: &Octave, scratch: &mut Scratch) {
    let n = oct.gauss.len().saturating_sub(1);
    scratch.dog.resize_with(n, Plane::default);
    for (i, d) in scratch.dog.iter_mut().enumerate() {
        let (a, b) = (&oct.gauss[i], &oct.gauss[i + 1]);
        d.w = a.w;
        d.h = a.h;
        d.data.clear();
        d.data
            .extend(b.data.iter().zip(&a.data).map(|(y, x)| y - x));
    }
}

fn detect(
    o: usize,
    oct: &Octave,
    p: &ExtractParams,
    scratch: &mut Scratch,
    out: &mut Vec<Candidate>,
) {
    let s = p.octave_layers as usize;
    dogs(oct, scratch);
    let dog = &scratch.dog;
    let Some(first) = dog.first() else {
        return;
    };
    let (w, h) = (first.w, first.h);
    if w <= 2 * BORDER || h <= 2 * BORDER {
        return;
    }
    let prefilter = 0.5 * p.contrast_threshold / s as f32;
    let wi = w as isize;
    let nb8: [isize; 8] = [-wi - 1, -wi, -wi + 1, -1, 1, wi - 1, wi, wi + 1];
    for layer in 1..=s {
        let (prev, cur, next) = (&dog[layer - 1].data, &dog[layer].data, &dog[layer + 1].data);
        for y in BORDER..h - BORDER {
            for x in BORDER..w - BORDER {
                let i = y * w + x;
                let v = cur[i];
                if v.abs() <= prefilter {
                    continue;
                }
                let at = |img: &[f32], d: isize| img[(i as isize + d) as usize];
                let is_ext = if v > 0.0 {
                    nb8.iter().all(|&d| v >= at(cur, d))
                        && v >= prev[i]
                        && v >= next[i]
                        && nb8.iter().all(|&d| v >= at(prev, d) && v >= at(next, d))
                } else {
                    nb8.iter().all(|&d| v <= at(cur, d))
                        && v <= prev[i]
                        && v <= next[i]
                        && nb8.iter().all(|&d| v <= at(prev, d) && v <= at(next, d))
                };
                if !is_ext {
                    continue;
                }
                if let Some(c) = refine(dog, o, layer, x, y, p) {
                    out.push(c);
                }
            }
        }
    }
}

/// Sub-pixel refinement by fitting a 3-D quadratic (Brown & Lowe 2002),
/// then the contrast and edge tests of Lowe 2004, sections 4 and 4.1.
fn refine(
    dog: &[Plane],
    o: usize,
    mut layer: usize,
    mut x: usize,
    mut y: usize,
    p: &ExtractParams,
) -> Option<Candidate> {
    let s = p.octave_layers as usize;
    let (w, h) = (dog[0].w, dog[0].h);
    let mut off = [0.0f32; 3];
    let mut grad = [0.0f32; 3];
    let mut v = 0.0f32;
    let mut hess_xy = (0.0f32, 0.0f32, 0.0f32);
    let mut converged = false;
    for _ in 0..MAX_REFINE_STEPS {
        let (pv, c, n) = (&dog[layer - 1].data, &dog[layer].data, &dog[layer + 1].data);
        let i = y * w + x;
        v = c[i];
        let dx = 0.5 * (c[i + 1] - c[i - 1]);
        let dy = 0.5 * (c[i + w] - c[i - w]);
        let ds = 0.5 * (n[i] - pv[i]);
        let dxx = c[i + 1] + c[i - 1] - 2.0 * v;
        let dyy = c[i + w] + c[i - w] - 2.0 * v;
        let dss = n[i] + pv[i] - 2.0 * v;
        let dxy = 0.25 * (c[i + w + 1] - c[i + w - 1] - c[i - w + 1] + c[i - w - 1]);
        let dxs = 0.25 * (n[i + 1] - n[i - 1] - pv[i + 1] + pv[i - 1]);
        let dys = 0.25 * (n[i + w] - n[i - w] - pv[i + w] + pv[i - w]);
        grad = [dx, dy, ds];
        hess_xy = (dxx, dyy, dxy);
        let hm = [[dxx, dxy, dxs], [dxy, dyy, dys], [dxs, dys, dss]];
        off = solve3(&hm, &[-dx, -dy, -ds])?;
        if off.iter().all(|d| d.abs() < 0.5) {
            converged = true;
            break;
        }
        if off
            .iter()
            .any(|d| !d.is_finite() || d.abs() > (w.max(h) as f32))
        {
            return None;
        }
        let nx = x as isize + off[0].round() as isize;
        let ny = y as isize + off[1].round() as isize;
        let nl = layer as isize + off[2].round() as isize;
        if nl < 1
            || nl > s as isize
            || nx < BORDER as isize
            || nx >= (w - BORDER) as isize
            || ny < BORDER as isize
            || ny >= (h - BORDER) as isize
        {
            return None;
        }
        (x, y, layer) = (nx as usize, ny as usize, nl as usize);
    }
    if !converged {
        return None;
    }
    let contrast = v + 0.5 * (grad[0] * off[0] + grad[1] * off[1] + grad[2] * off[2]);
    if contrast.abs() * (s as f32) < p.contrast_threshold {
        return None;
    }
    let (dxx, dyy, dxy) = hess_xy;
    let tr = dxx + dyy;
    let det = dxx * dyy - dxy * dxy;
    let r = p.edge_threshold;
    if det <= 0.0 || tr * tr * r >= (r + 1.0) * (r + 1.0) * det {
        return None;
    }
    let scale = p.sigma * 2f32.powf((layer as f32 + off[2]) / s as f32);
    Some(Candidate {
        octave: o,
        layer,
        xi: x,
        yi: y,
        xo: x as f32 + off[0],
        yo: y as f32 + off[1],
        scale,
        response: contrast.abs(),
    })
}

/// Solves the 3 × 3 system `m x = b` by Cramer's rule; `None` if singular.
fn solve3(m: &[[f32; 3]; 3], b: &[f32; 3]) -> Option<[f32; 3]> {
    let det3 = |a: &[[f32; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det3(m);
    if d == 0.0 || !d.is_finite() {
        return None;
    }
    let mut out = [0.0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut mc = *m;
        for r in 0..3 {
            mc[r][c] = b[r];
        }
        *o = det3(&mc) / d;
    }
    Some(out)
}

/// Dominant orientations (Lowe 2004, section 5) into `angles`.
fn orientations(g: &Plane, c: &Candidate, angles: &mut Vec<f32>) {
    angles.clear();
    let (w, h) = (g.w, g.h);
    let sigma_w = ORI_SIGMA_FACTOR * c.scale;
    let radius = (ORI_RADIUS_FACTOR * sigma_w).round() as isize;
    let inv2s2 = -1.0 / (2.0 * sigma_w * sigma_w);
    let mut hist = [0.0f32; ORI_BINS];
    let bins_per_rad = ORI_BINS as f32 / TAU;
    // The Gaussian weight is separable: exp(-(i² + j²) k) = exp(-i² k) exp(-j² k).
    let wts: Vec<f32> = (-radius..=radius)
        .map(|d| (((d * d) as f32) * inv2s2).exp())
        .collect();
    let x0 = (c.xi as isize - radius).max(1);
    let x1 = (c.xi as isize + radius).min(w as isize - 2);
    for (wi, i) in (-radius..=radius).enumerate() {
        let yy = c.yi as isize + i;
        if yy <= 0 || yy >= h as isize - 1 {
            continue;
        }
        let wy = wts[wi];
        let row = yy as usize * w;
        for xx in x0..=x1 {
            let k = row + xx as usize;
            let gx = g.data[k + 1] - g.data[k - 1];
            let gy = g.data[k + w] - g.data[k - w];
            let weight = wy * wts[(xx - c.xi as isize + radius) as usize];
            let mag = (gx * gx + gy * gy).sqrt();
            // Nearest bin; + 36.5 keeps the value positive so truncation
            // rounds (f32::round is a libm call without SSE4.1).
            let bin = (fast_atan2(gy, gx) * bins_per_rad + ORI_BINS as f32 + 0.5) as usize;
            hist[bin % ORI_BINS] += weight * mag;
        }
    }
    // Circular smoothing with [1 4 6 4 1] / 16.
    let n = ORI_BINS;
    let mut sm = [0.0f32; ORI_BINS];
    for (k, o) in sm.iter_mut().enumerate() {
        let at = |d: isize| hist[(k as isize + d).rem_euclid(n as isize) as usize];
        *o = (at(-2) + at(2)) * (1.0 / 16.0)
            + (at(-1) + at(1)) * (4.0 / 16.0)
            + at(0) * (6.0 / 16.0);
    }
    let max = sm.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return;
    }
    for k in 0..n {
        let l = sm[(k + n - 1) % n];
        let r = sm[(k + 1) % n];
        let v = sm[k];
        if v > l && v > r && v >= ORI_PEAK_RATIO * max {
            let denom = l - 2.0 * v + r;
            let delta = if denom != 0.0 {
                0.5 * (l - r) / denom
            } else {
                0.0
            };
            let mut bin = k as f32 + delta;
            if bin < 0.0 {
                bin += n as f32;
            }
            let mut a = bin * TAU / n as f32;
            if a >= TAU {
                a -= TAU;
            }
            if a < 0.0 {
                a = 0.0;
            }
            angles.push(a);
        }
    }
}

/// The 4 × 4 × 8 descriptor (Lowe 2004, section 6) into `out`; `false`
/// when the window has no gradient at all.
fn describe(
    g: &Plane,
    c: &Candidate,
    angle: f32,
    kind: DescriptorKind,
    out: &mut [f32; DESCRIPTOR_LEN],
) -> bool {
    const D: usize = DESC_WIDTH;
    const N: usize = DESC_BINS;
    const HD: usize = D + 2;
    const HN: usize = N + 2;
    let (w, h) = (g.w, g.h);
    let hist_width = DESC_SCALE_FACTOR * c.scale;
    let max_r = ((w * w + h * h) as f32).sqrt();
    let radius = (hist_width * std::f32::consts::SQRT_2 * (D as f32 + 1.0) * 0.5)
        .round()
        .min(max_r) as isize;
    let (sin_a, cos_a) = angle.sin_cos();
    let (cos_t, sin_t) = (cos_a / hist_width, sin_a / hist_width);
    // Gaussian weight with σ = D / 2 cells.
    let exp_scale = -1.0 / (0.5 * (D * D) as f32);
    let half = D as f32 / 2.0 - 0.5;
    let bins_per_rad = N as f32 / TAU;
    let mut hist = [0.0f32; HD * HD * HN];
    let (fx0, fy0) = (c.xi as f32 - c.xo, c.yi as f32 - c.yo);
    // Rotation keeps lengths, so the weight exp(-(c_rot² + r_rot²) k) is
    // exp(-fx² k') exp(-fy² k') with k' = k / hist_width²: separable.
    let k2 = exp_scale / (hist_width * hist_width);
    let wx: Vec<f32> = (-radius..=radius)
        .map(|j| {
            let f = j as f32 + fx0;
            (f * f * k2).exp()
        })
        .collect();
    let x0 = (c.xi as isize - radius).max(1);
    let x1 = (c.xi as isize + radius).min(w as isize - 2);
    for i in -radius..=radius {
        let yy = c.yi as isize + i;
        if yy <= 0 || yy >= h as isize - 1 {
            continue;
        }
        let fy = i as f32 + fy0;
        let wy = (fy * fy * k2).exp();
        let row = yy as usize * w;
        for xx in x0..=x1 {
            let j = xx - c.xi as isize;
            let fx = j as f32 + fx0;
            let c_rot = fx * cos_t + fy * sin_t;
            let r_rot = -fx * sin_t + fy * cos_t;
            let rbin = r_rot + half;
            let cbin = c_rot + half;
            if rbin <= -1.0 || rbin >= D as f32 || cbin <= -1.0 || cbin >= D as f32 {
                continue;
            }
            let k = row + xx as usize;
            let gx = g.data[k + 1] - g.data[k - 1];
            let gy = g.data[k + w] - g.data[k - w];
            let mag = (gx * gx + gy * gy).sqrt();
            if mag == 0.0 {
                continue;
            }
            let weight = wy * wx[(j + radius) as usize];
            let mut ori = fast_atan2(gy, gx) - angle;
            if ori < 0.0 {
                ori += TAU;
            }
            if ori < 0.0 {
                ori += TAU;
            }
            let obin = (ori * bins_per_rad).clamp(0.0, N as f32 - 1e-4);
            let v = mag * weight;
            // rbin, cbin > -1 and obin >= 0: truncation after +1 is floor.
            let (r1, c1, o0) = ((rbin + 1.0) as usize, (cbin + 1.0) as usize, obin as usize);
            let (dr, dc, dobin) = (
                rbin + 1.0 - r1 as f32,
                cbin + 1.0 - c1 as f32,
                obin - o0 as f32,
            );
            let (r0, c0) = (r1, c1);
            let v_r1 = v * dr;
            let v_r0 = v - v_r1;
            let v_rc11 = v_r1 * dc;
            let v_rc10 = v_r1 - v_rc11;
            let v_rc01 = v_r0 * dc;
            let v_rc00 = v_r0 - v_rc01;
            let idx = (r0 * HD + c0) * HN + o0;
            let put = |hist: &mut [f32], at: usize, val: f32| {
                let v1 = val * dobin;
                if let Some(h0) = hist.get_mut(at) {
                    *h0 += val - v1;
                }
                if let Some(h1) = hist.get_mut(at + 1) {
                    *h1 += v1;
                }
            };
            put(&mut hist, idx, v_rc00);
            put(&mut hist, idx + HN, v_rc01);
            put(&mut hist, idx + HD * HN, v_rc10);
            put(&mut hist, idx + (HD + 1) * HN, v_rc11);
        }
    }
    // Fold the wrapped orientation bin and the border cells away.
    for r in 0..D {
        for cc in 0..D {
            let base = ((r + 1) * HD + cc + 1) * HN;
            let wrap = hist[base + N];
            hist[base] += wrap;
            for o in 0..N {
                out[(r * D + cc) * N + o] = hist[base + o];
            }
        }
    }
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return false;
    }
    let clip = DESC_CLIP * norm;
    for v in out.iter_mut() {
        *v = v.min(clip);
    }
    match kind {
        DescriptorKind::Sift => {
            let n2 = out.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n2 <= 0.0 {
                return false;
            }
            for v in out.iter_mut() {
                *v /= n2;
            }
        }
        DescriptorKind::RootSift => {
            let l1: f32 = out.iter().sum();
            if l1 <= 0.0 {
                return false;
            }
            for v in out.iter_mut() {
                *v = (*v / l1).sqrt();
            }
        }
    }
    true
}
