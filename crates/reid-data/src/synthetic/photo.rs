//! Photos: the setup of one photo (pose, light, background, occluders,
//! blur, noise), drawn from a seed, and the renderer.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::coat::Individual;
use super::math::{hash01, hash32, invert, nominal_scale, seg_dist, smoothstep};

/// Kind of procedural background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundKind {
    /// One flat colour (the first of [`Background::colors`]).
    Plain,
    /// Sky above a horizon, ground below, both with noise texture.
    Horizon,
    /// Foliage-like value noise mixing the two colours.
    Foliage,
    /// Vertical bands (tree trunks, reeds) over noise.
    Bands,
}

/// A procedural background.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    /// Which generator.
    pub kind: BackgroundKind,
    /// Two colours (RGB, `0..=255`) the generator mixes.
    pub colors: [[f32; 3]; 2],
    /// Horizon height as a fraction of the image height (for `Horizon`).
    pub horizon: f32,
    /// Cells of the coarse noise grid across the image (texture scale).
    pub cells: u32,
    /// Seed of the noise grids.
    pub seed: u64,
}

/// An object in front of the animal, in image pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Occluder {
    /// An axis-aligned rectangle.
    Rect {
        /// Left edge.
        x0: f32,
        /// Top edge.
        y0: f32,
        /// Right edge.
        x1: f32,
        /// Bottom edge.
        y1: f32,
        /// Colour (RGB, `0..=255`).
        color: [f32; 3],
    },
    /// A thick line segment (a branch).
    Branch {
        /// Start point.
        a: (f32, f32),
        /// End point.
        b: (f32, f32),
        /// Half the thickness in pixels.
        half_width: f32,
        /// Colour (RGB, `0..=255`).
        color: [f32; 3],
    },
}

impl Occluder {
    /// Coverage of pixel centre `(x, y)`: 0 (clear) to 1 (covered), with a
    /// one-pixel soft edge.
    #[inline]
    fn coverage(&self, x: f32, y: f32) -> f32 {
        match self {
            Occluder::Rect { x0, y0, x1, y1, .. } => {
                let dx = (x0 - x).max(x - x1);
                let dy = (y0 - y).max(y - y1);
                (0.5 - dx.max(dy)).clamp(0.0, 1.0)
            }
            Occluder::Branch {
                a, b, half_width, ..
            } => (0.5 + half_width - seg_dist((x, y), *a, *b)).clamp(0.0, 1.0),
        }
    }

    fn color(&self) -> [f32; 3] {
        match self {
            Occluder::Rect { color, .. } | Occluder::Branch { color, .. } => *color,
        }
    }
}

/// Everything that makes one photo of an individual: pose, light,
/// background, occluders, blur and noise. Drawn by
/// [`ValidSyntheticParams::photo_setup`](super::ValidSyntheticParams::photo_setup); fields are public so tests and
/// users can switch single nuisances off.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoSetup {
    /// Image position (pixels) of the body origin.
    pub center: (f32, f32),
    /// Pixels per body unit.
    pub scale: f32,
    /// Rotation in radians (positive turns `+u` towards `+y`).
    pub angle: f32,
    /// Horizontal shear of the body.
    pub shear: f32,
    /// Mirror the body (the animal faces left).
    pub flip: bool,
    /// Spine bend: body point `(u, v)` is drawn at `(u, v + bend * u^2)`.
    pub bend: f32,
    /// Multiplicative contrast.
    pub gain: f32,
    /// Additive brightness offset (`0..=255` scale).
    pub bias: f32,
    /// Per-channel colour cast (multipliers).
    pub cast: [f32; 3],
    /// Strength of the linear light gradient across the image.
    pub gradient: f32,
    /// Direction of the light gradient (unit vector).
    pub gradient_dir: (f32, f32),
    /// The background.
    pub background: Background,
    /// Objects in front of the animal.
    pub occluders: Vec<Occluder>,
    /// Box-blur radius in pixels (0: sharp); applied twice.
    pub blur_radius: u32,
    /// Amplitude of uniform sensor noise (`0..=255` scale).
    pub noise: f32,
    /// Seed of the sensor noise.
    pub noise_seed: u64,
}

impl PhotoSetup {
    /// The 2x2 linear part of the body-to-image map (before translation).
    fn matrix(&self) -> [f32; 4] {
        let (s, c) = self.angle.sin_cos();
        let f = if self.flip { -1.0 } else { 1.0 };
        // scale * R * Shear * Flip, Shear = [[1, sh], [0, 1]], Flip = diag(f, 1).
        let r = [c, -s, s, c];
        let m = [
            r[0] * f,
            r[0] * self.shear + r[1],
            r[2] * f,
            r[2] * self.shear + r[3],
        ];
        [
            m[0] * self.scale,
            m[1] * self.scale,
            m[2] * self.scale,
            m[3] * self.scale,
        ]
    }

    /// Image position (pixel coordinates, pixel centres at `+0.5`) of body
    /// point `(u, v)`.
    pub fn body_to_image(&self, u: f32, v: f32) -> (f32, f32) {
        let m = self.matrix();
        let vb = v + self.bend * u * u;
        (
            self.center.0 + m[0] * u + m[1] * vb,
            self.center.1 + m[2] * u + m[3] * vb,
        )
    }

    /// Body coordinates of image position `(x, y)`; inverse of
    /// [`PhotoSetup::body_to_image`].
    pub fn image_to_body(&self, x: f32, y: f32) -> (f32, f32) {
        let inv = invert(self.matrix());
        let dx = x - self.center.0;
        let dy = y - self.center.1;
        let u = inv[0] * dx + inv[1] * dy;
        let vb = inv[2] * dx + inv[3] * dy;
        (u, vb - self.bend * u * u)
    }

    /// Whether an occluder covers more than half of the pixel at `(x, y)`.
    pub fn is_occluded(&self, x: f32, y: f32) -> bool {
        self.occluders.iter().any(|o| o.coverage(x, y) > 0.5)
    }

    /// `"left"` when the animal faces left (flipped), else `"right"`.
    pub fn orientation(&self) -> &'static str {
        if self.flip { "left" } else { "right" }
    }
}

/// Smooth value noise on a `cells x cells` grid over the unit square.
struct ValueNoise {
    n: usize,
    vals: Vec<f32>,
}

impl ValueNoise {
    fn new(seed: u64, cells: u32) -> Self {
        let n = cells.max(1) as usize + 2;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        ValueNoise {
            n,
            vals: (0..n * n).map(|_| rng.r#gen::<f32>()).collect(),
        }
    }

    #[inline]
    fn at(&self, x: f32, y: f32) -> f32 {
        let m = (self.n - 2) as f32;
        let fx = (x * m).clamp(0.0, m);
        let fy = (y * m).clamp(0.0, m);
        let (ix, iy) = (fx.floor() as usize, fy.floor() as usize);
        let (ax, ay) = (fx - ix as f32, fy - iy as f32);
        let (ax, ay) = (ax * ax * (3.0 - 2.0 * ax), ay * ay * (3.0 - 2.0 * ay));
        let v = |x: usize, y: usize| self.vals[y * self.n + x];
        let top = v(ix, iy) + (v(ix + 1, iy) - v(ix, iy)) * ax;
        let bot = v(ix, iy + 1) + (v(ix + 1, iy + 1) - v(ix, iy + 1)) * ax;
        top + (bot - top) * ay
    }
}

/// Natural background colours.
const BG_COLORS: [[f32; 3]; 8] = [
    [95.0, 125.0, 60.0],
    [60.0, 90.0, 45.0],
    [140.0, 120.0, 85.0],
    [110.0, 95.0, 70.0],
    [165.0, 185.0, 205.0],
    [120.0, 120.0, 115.0],
    [185.0, 170.0, 120.0],
    [75.0, 70.0, 60.0],
];

fn jitter_color(rng: &mut ChaCha8Rng, c: [f32; 3], amp: f32) -> [f32; 3] {
    let mut out = c;
    for v in &mut out {
        *v = (*v + rng.gen_range(-amp..amp)).clamp(0.0, 255.0);
    }
    out
}

pub(super) fn draw_setup(rng: &mut ChaCha8Rng, w: f32, h: f32, k: f32) -> PhotoSetup {
    use std::f32::consts::TAU;
    let sym = |rng: &mut ChaCha8Rng, amp: f32| -> f32 { rng.gen_range(-1.0f32..1.0) * amp * k };
    let flip = rng.r#gen::<f32>() < 0.5 * k;
    let angle = sym(rng, 0.4);
    let shear = sym(rng, 0.2);
    let bend = sym(rng, 0.12);
    let scale = nominal_scale(w, h) * sym(rng, 0.2).exp();
    let center = (
        w * 0.5 + sym(rng, 0.08 * w),
        h * 0.5 - 0.12 * scale + sym(rng, 0.08 * h),
    );
    let gain = sym(rng, 0.3).exp();
    let bias = sym(rng, 25.0);
    let cast = [
        sym(rng, 0.1).exp(),
        sym(rng, 0.1).exp(),
        sym(rng, 0.1).exp(),
    ];
    let gradient = sym(rng, 0.35);
    let ga: f32 = rng.gen_range(0.0..TAU);
    let kind = match rng.gen_range(0..3) {
        0 => BackgroundKind::Horizon,
        1 => BackgroundKind::Foliage,
        _ => BackgroundKind::Bands,
    };
    let c0 = BG_COLORS[rng.gen_range(0..BG_COLORS.len())];
    let c1 = BG_COLORS[rng.gen_range(0..BG_COLORS.len())];
    let background = Background {
        kind,
        colors: [jitter_color(rng, c0, 20.0), jitter_color(rng, c1, 20.0)],
        horizon: rng.gen_range(0.25..0.6),
        cells: rng.gen_range(3..9),
        seed: rng.r#gen(),
    };
    // Occluders overlap the animal's extent around the body centre.
    let n_occ = (rng.r#gen::<f32>() * 3.0 * k) as usize;
    let mut occluders = Vec::with_capacity(n_occ);
    let side = w.min(h);
    for _ in 0..n_occ {
        let cx = center.0 + rng.gen_range(-1.2..1.2) * scale;
        let cy = center.1 + rng.gen_range(-0.4..0.8) * scale;
        if rng.gen_bool(0.5) {
            let hw = rng.gen_range(0.12..0.4) * scale;
            let hh = rng.gen_range(0.12..0.4) * scale;
            occluders.push(Occluder::Rect {
                x0: cx - hw,
                y0: cy - hh,
                x1: cx + hw,
                y1: cy + hh,
                color: {
                    let c = BG_COLORS[rng.gen_range(0..BG_COLORS.len())];
                    jitter_color(rng, c, 25.0)
                },
            });
        } else {
            let a: f32 = rng.gen_range(0.0..TAU);
            let len = side * 0.8;
            let (dx, dy) = (a.cos() * len, a.sin() * len);
            occluders.push(Occluder::Branch {
                a: (cx - dx, cy - dy),
                b: (cx + dx, cy + dy),
                half_width: rng.gen_range(0.008..0.02) * side,
                color: jitter_color(rng, [90.0, 65.0, 40.0], 20.0),
            });
        }
    }
    let blur_radius = (rng.r#gen::<f32>() * 3.0 * k) as u32;
    let noise = rng.gen_range(0.0..6.0) * k;
    PhotoSetup {
        center,
        scale,
        angle,
        shear,
        flip,
        bend,
        gain,
        bias,
        cast,
        gradient,
        gradient_dir: (ga.cos(), ga.sin()),
        background,
        occluders,
        blur_radius,
        noise,
        noise_seed: rng.r#gen(),
    }
}

fn background_at(bg: &Background, n1: &ValueNoise, n2: &ValueNoise, x: f32, y: f32) -> [f32; 3] {
    let [c0, c1] = bg.colors;
    let mix = |t: f32| -> [f32; 3] {
        [
            c0[0] + (c1[0] - c0[0]) * t,
            c0[1] + (c1[1] - c0[1]) * t,
            c0[2] + (c1[2] - c0[2]) * t,
        ]
    };
    match bg.kind {
        BackgroundKind::Plain => c0,
        BackgroundKind::Horizon => {
            let tex = n2.at(x, y) - 0.5;
            let wave = (n1.at(x, 0.5) - 0.5) * 0.15;
            let t = smoothstep(-0.02, 0.02, y - bg.horizon - wave);
            let c = mix(t);
            let amp = 20.0 + 30.0 * t;
            [c[0] + tex * amp, c[1] + tex * amp, c[2] + tex * amp]
        }
        BackgroundKind::Foliage => {
            let t = 0.65 * n1.at(x, y) + 0.35 * n2.at(x, y);
            mix(smoothstep(0.3, 0.7, t))
        }
        BackgroundKind::Bands => {
            let f = bg.cells as f32 * 1.5;
            let s = (std::f32::consts::TAU * f * (x + 0.08 * n1.at(x, y))).sin();
            let t = smoothstep(0.2, 0.6, s);
            let c = mix(t);
            let tex = (n2.at(x, y) - 0.5) * 30.0;
            [c[0] + tex, c[1] + tex, c[2] + tex]
        }
    }
}

pub(super) fn render_photo(
    ind: &Individual,
    setup: &PhotoSetup,
    width: u32,
    height: u32,
) -> RgbImage {
    let (w, h) = (width as usize, height as usize);
    let (wf, hf) = (width as f32, height as f32);
    let bg = &setup.background;
    let n1 = ValueNoise::new(bg.seed, bg.cells);
    let n2 = ValueNoise::new(bg.seed ^ 0x9e37_79b9_7f4a_7c15, bg.cells * 4);
    let inv = invert(setup.matrix());
    let diag = (wf * wf + hf * hf).sqrt();
    let mut buf = vec![0.0f32; w * h * 3];
    for (y, row) in buf.chunks_mut(w * 3).enumerate() {
        let py = y as f32 + 0.5;
        for (x, px3) in row.chunks_mut(3).enumerate() {
            let px = x as f32 + 0.5;
            let dx = px - setup.center.0;
            let dy = py - setup.center.1;
            let u = inv[0] * dx + inv[1] * dy;
            let v = inv[2] * dx + inv[3] * dy - setup.bend * u * u;
            let t = ind.coat.sample(u, v);
            let b = background_at(bg, &n1, &n2, px / wf, py / hf);
            let mut c = [
                t[0] + (1.0 - t[3]) * b[0],
                t[1] + (1.0 - t[3]) * b[1],
                t[2] + (1.0 - t[3]) * b[2],
            ];
            for o in &setup.occluders {
                let cov = o.coverage(px, py);
                if cov > 0.0 {
                    let oc = o.color();
                    for k in 0..3 {
                        c[k] += (oc[k] - c[k]) * cov;
                    }
                }
            }
            let g = 1.0
                + setup.gradient
                    * ((dx * setup.gradient_dir.0 + dy * setup.gradient_dir.1) / diag * 2.0);
            for k in 0..3 {
                px3[k] = c[k] * setup.gain * setup.cast[k] * g + setup.bias;
            }
        }
    }
    if setup.blur_radius > 0 {
        let r = setup.blur_radius as usize;
        box_blur(&mut buf, w, h, r);
        box_blur(&mut buf, w, h, r);
    }
    let seed = (setup.noise_seed ^ (setup.noise_seed >> 32)) as u32;
    let mut out = RgbImage::new(width, height);
    for (i, (dst, src)) in out.iter_mut().zip(buf.iter()).enumerate() {
        let nz = if setup.noise > 0.0 {
            (hash01(seed ^ hash32(i as u32)) * 2.0 - 1.0) * setup.noise
        } else {
            0.0
        };
        *dst = (src + nz).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Separable box blur of an interleaved RGB f32 buffer, clamped edges.
fn box_blur(buf: &mut [f32], w: usize, h: usize, r: usize) {
    let norm = 1.0 / (2 * r + 1) as f32;
    let mut line = vec![0.0f32; w.max(h) * 3];
    // Horizontal.
    for y in 0..h {
        let row = &mut buf[y * w * 3..(y + 1) * w * 3];
        line[..w * 3].copy_from_slice(row);
        for k in 0..3 {
            let at = |x: isize| line[(x.clamp(0, w as isize - 1) as usize) * 3 + k];
            let mut acc: f32 = (-(r as isize)..=r as isize).map(at).sum();
            for x in 0..w {
                row[x * 3 + k] = acc * norm;
                acc += at(x as isize + r as isize + 1) - at(x as isize - r as isize);
            }
        }
    }
    // Vertical.
    for x in 0..w {
        for y in 0..h {
            for k in 0..3 {
                line[y * 3 + k] = buf[(y * w + x) * 3 + k];
            }
        }
        for k in 0..3 {
            let at = |y: isize| line[(y.clamp(0, h as isize - 1) as usize) * 3 + k];
            let mut acc: f32 = (-(r as isize)..=r as isize).map(at).sum();
            for y in 0..h {
                buf[(y * w + x) * 3 + k] = acc * norm;
                acc += at(y as isize + r as isize + 1) - at(y as isize - r as isize);
            }
        }
    }
}
