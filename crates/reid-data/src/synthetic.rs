//! A seeded synthetic re-identification dataset.
//!
//! Every individual is a distinct, procedurally generated coat pattern
//! (spots, stripes, rosettes or a reticulated net) painted on an animal-like
//! silhouette (body, neck, head, ears, legs, tail). The pattern lives in *body
//! coordinates*, so it moves with the body: a photo of the individual changes
//! the pose (rotation, shear, mirror flip, a mild bend of the spine), the
//! scale and position, the light (gain, offset, colour cast, a gradient), the
//! background (procedural gradients and noise textures), adds occluders
//! (rectangles and branches in front of the animal), blur and sensor noise,
//! and the identity is still told apart by its coat.
//!
//! Everything is drawn from one seed. Each individual and each photo draws
//! from its own ChaCha8 stream, so generation runs in parallel and the same
//! [`SyntheticParams`] give byte-identical images and `metadata.csv`.
//!
//! [`generate`] writes `images/<identity>/<n>.jpg` and `metadata.csv` (the
//! AnimalCLEF columns, an open-set database/query split); the in-memory
//! [`ValidSyntheticParams::render_photo`] and friends return [`RgbImage`]s.
//!
//! ```
//! use reid_data::synthetic::SyntheticParams;
//!
//! let set = SyntheticParams::default()
//!     .n_individuals(3)
//!     .images_per_individual(2)
//!     .size(64, 64)
//!     .seed(7)
//!     .check()?;
//! let photo = set.render_photo(1, 0)?;
//! assert_eq!(photo.dimensions(), (64, 64));
//! // Same parameters, same pixels.
//! assert_eq!(photo, set.render_photo(1, 0)?);
//! # Ok::<(), reid_data::DataError>(())
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::{Date, Record, SplitRole};

/// Largest accepted number of individuals.
pub const MAX_INDIVIDUALS: usize = 1 << 24;
/// Largest accepted number of photos per individual.
pub const MAX_IMAGES_PER_INDIVIDUAL: usize = 1 << 20;
/// Smallest accepted image side in pixels.
pub const MIN_SIDE: u32 = 16;
/// Largest accepted image side in pixels.
pub const MAX_SIDE: u32 = 4096;

/// The name of the metadata file [`generate`] writes into the output folder.
pub const METADATA_FILE: &str = "metadata.csv";

/// Parameters of the synthetic dataset, unchecked.
///
/// Build with [`Default`] and the builder methods, then call
/// [`SyntheticParams::check`] once to get a [`ValidSyntheticParams`] that
/// renders and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticParams {
    /// Number of individuals (identities), at least 1.
    pub n_individuals: usize,
    /// Photos per individual, at least 1.
    pub images_per_individual: usize,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Species names, assigned to individuals round-robin. Each name must be
    /// non-empty and use only ASCII letters, digits, `_` and `-` (it becomes
    /// part of the identity and of a folder name).
    pub species: Vec<String>,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Fraction of individuals (rounded to the nearest count) whose photos
    /// are all queries: the new individuals of the open-set split. In `[0, 1)`
    /// and must leave at least one individual in the database.
    pub new_identity_fraction: f64,
    /// Fraction of each known individual's photos (rounded, at most all but
    /// one) that become queries. In `[0, 1]`.
    pub query_fraction: f64,
    /// Strength of the photo nuisances (pose, scale, light, blur, occlusion,
    /// noise): 0 renders every photo in the canonical pose and light (the
    /// background still changes), 1 is the default; in `[0, 1]`.
    pub nuisance: f32,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
    /// Value of the `dataset` column.
    pub dataset_name: String,
    /// Whether records get a (synthetic, increasing per individual) date.
    pub dates: bool,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        SyntheticParams {
            n_individuals: 100,
            images_per_individual: 10,
            width: 256,
            height: 256,
            species: vec!["synthetic_cat".to_string()],
            seed: 2025,
            new_identity_fraction: 0.2,
            query_fraction: 0.2,
            nuisance: 1.0,
            jpeg_quality: 90,
            dataset_name: "Synthetic2025".to_string(),
            dates: true,
        }
    }
}

impl SyntheticParams {
    /// Sets [`SyntheticParams::n_individuals`].
    pub fn n_individuals(mut self, n: usize) -> Self {
        self.n_individuals = n;
        self
    }

    /// Sets [`SyntheticParams::images_per_individual`].
    pub fn images_per_individual(mut self, m: usize) -> Self {
        self.images_per_individual = m;
        self
    }

    /// Sets the image size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Sets [`SyntheticParams::species`].
    pub fn species<S: Into<String>>(mut self, species: impl IntoIterator<Item = S>) -> Self {
        self.species = species.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`SyntheticParams::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`SyntheticParams::new_identity_fraction`].
    pub fn new_identity_fraction(mut self, f: f64) -> Self {
        self.new_identity_fraction = f;
        self
    }

    /// Sets [`SyntheticParams::query_fraction`].
    pub fn query_fraction(mut self, f: f64) -> Self {
        self.query_fraction = f;
        self
    }

    /// Sets [`SyntheticParams::nuisance`].
    pub fn nuisance(mut self, k: f32) -> Self {
        self.nuisance = k;
        self
    }

    /// Sets [`SyntheticParams::jpeg_quality`].
    pub fn jpeg_quality(mut self, q: u8) -> Self {
        self.jpeg_quality = q;
        self
    }

    /// Sets [`SyntheticParams::dataset_name`].
    pub fn dataset_name(mut self, name: impl Into<String>) -> Self {
        self.dataset_name = name.into();
        self
    }

    /// Sets [`SyntheticParams::dates`].
    pub fn dates(mut self, on: bool) -> Self {
        self.dates = on;
        self
    }

    /// Validates every parameter once; the result renders and writes.
    ///
    /// Errors with [`DataError::InvalidParam`] naming the first bad parameter.
    pub fn check(&self) -> Result<ValidSyntheticParams> {
        let p = self;
        if p.n_individuals == 0 || p.n_individuals > MAX_INDIVIDUALS {
            return Err(DataError::param(
                "n_individuals",
                format!("must be in 1..={MAX_INDIVIDUALS}, got {}", p.n_individuals),
            ));
        }
        if p.images_per_individual == 0 || p.images_per_individual > MAX_IMAGES_PER_INDIVIDUAL {
            return Err(DataError::param(
                "images_per_individual",
                format!(
                    "must be in 1..={MAX_IMAGES_PER_INDIVIDUAL}, got {}",
                    p.images_per_individual
                ),
            ));
        }
        if p.n_individuals
            .checked_mul(p.images_per_individual)
            .is_none()
        {
            return Err(DataError::param(
                "images_per_individual",
                "n_individuals x images_per_individual overflows",
            ));
        }
        for (name, v) in [("width", p.width), ("height", p.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
                return Err(DataError::param(
                    name,
                    format!("must be in {MIN_SIDE}..={MAX_SIDE} pixels, got {v}"),
                ));
            }
        }
        if p.species.is_empty() {
            return Err(DataError::param("species", "needs at least one species"));
        }
        for s in &p.species {
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(DataError::param(
                    "species",
                    format!("`{s}` must be non-empty ASCII letters, digits, `_` or `-`"),
                ));
            }
        }
        let f = p.new_identity_fraction;
        if !(f.is_finite() && (0.0..1.0).contains(&f)) {
            return Err(DataError::param(
                "new_identity_fraction",
                format!("must be in [0, 1), got {f}"),
            ));
        }
        let n_new = (p.n_individuals as f64 * f).round() as usize;
        if n_new >= p.n_individuals {
            return Err(DataError::param(
                "new_identity_fraction",
                format!(
                    "{f} of {} individuals leaves none in the database",
                    p.n_individuals
                ),
            ));
        }
        let q = p.query_fraction;
        if !(q.is_finite() && (0.0..=1.0).contains(&q)) {
            return Err(DataError::param(
                "query_fraction",
                format!("must be in [0, 1], got {q}"),
            ));
        }
        let k = p.nuisance;
        if !(k.is_finite() && (0.0..=1.0).contains(&k)) {
            return Err(DataError::param(
                "nuisance",
                format!("must be in [0, 1], got {k}"),
            ));
        }
        if !(1..=100).contains(&p.jpeg_quality) {
            return Err(DataError::param(
                "jpeg_quality",
                format!("must be in 1..=100, got {}", p.jpeg_quality),
            ));
        }
        if p.dataset_name.trim().is_empty() {
            return Err(DataError::param("dataset_name", "must not be empty"));
        }
        let known_queries = ((p.images_per_individual as f64 * q).round() as usize)
            .min(p.images_per_individual - 1);
        Ok(ValidSyntheticParams {
            p: p.clone(),
            n_new,
            known_queries,
        })
    }
}

/// Checked parameters: renders individuals and photos, and writes the dataset.
///
/// Made by [`SyntheticParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSyntheticParams {
    p: SyntheticParams,
    n_new: usize,
    known_queries: usize,
}

/// The coat pattern family of an individual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternFamily {
    /// Irregular elliptical spots.
    Spots,
    /// Warped stripes across the body.
    Stripes,
    /// Broken rings around a darker centre, with a few small spots.
    Rosettes,
    /// Dark patches separated by a light net (giraffe-like).
    Reticulated,
}

impl PatternFamily {
    /// Lower-case name of the family.
    pub fn as_str(&self) -> &'static str {
        match self {
            PatternFamily::Spots => "spots",
            PatternFamily::Stripes => "stripes",
            PatternFamily::Rosettes => "rosettes",
            PatternFamily::Reticulated => "reticulated",
        }
    }
}

/// Extent of the coat texture in body coordinates. The torso is an ellipse
/// centred on the origin with semi-axes 1 along `u` (the head at `+u`) and
/// about 0.42 along `v` (`+v` points down, to the legs).
const U0: f32 = -1.8;
const U1: f32 = 1.8;
const V0: f32 = -0.9;
const V1: f32 = 1.15;

/// One individual: its identity, species and rendered coat (pattern and
/// silhouette, in body coordinates).
#[derive(Debug, Clone)]
pub struct Individual {
    /// Identity name, `<species>_<index>` with the index zero-padded to 4.
    pub identity: String,
    /// Species name.
    pub species: String,
    /// The pattern family drawn for this individual.
    pub family: PatternFamily,
    coat: Coat,
}

impl Individual {
    /// Coat colour and coverage at body coordinates `(u, v)`: premultiplied
    /// RGB in `0..=255` and alpha in `0..=1` (0 outside the silhouette).
    pub fn coat_at(&self, u: f32, v: f32) -> ([f32; 3], f32) {
        let t = self.coat.sample(u, v);
        ([t[0], t[1], t[2]], t[3])
    }
}

/// The coat raster: premultiplied RGBA texels over `[U0, U1] x [V0, V1]`.
#[derive(Debug, Clone)]
struct Coat {
    tw: usize,
    th: usize,
    tpu: f32,
    texels: Vec<[f32; 4]>,
}

impl Coat {
    /// Bilinear sample; transparent outside the raster.
    #[inline]
    fn sample(&self, u: f32, v: f32) -> [f32; 4] {
        let fx = (u - U0) * self.tpu - 0.5;
        let fy = (v - V0) * self.tpu - 0.5;
        if !(fx > -1.0 && fy > -1.0 && fx < self.tw as f32 && fy < self.th as f32) {
            return [0.0; 4];
        }
        let x0 = fx.floor();
        let y0 = fy.floor();
        let ax = fx - x0;
        let ay = fy - y0;
        let (x0, y0) = (x0 as isize, y0 as isize);
        let get = |x: isize, y: isize| -> [f32; 4] {
            if x < 0 || y < 0 || x >= self.tw as isize || y >= self.th as isize {
                [0.0; 4]
            } else {
                self.texels[y as usize * self.tw + x as usize]
            }
        };
        let a = get(x0, y0);
        let b = get(x0 + 1, y0);
        let c = get(x0, y0 + 1);
        let d = get(x0 + 1, y0 + 1);
        let mut out = [0.0; 4];
        for k in 0..4 {
            let top = a[k] + (b[k] - a[k]) * ax;
            let bot = c[k] + (d[k] - c[k]) * ax;
            out[k] = top + (bot - top) * ay;
        }
        out
    }
}

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
/// [`ValidSyntheticParams::photo_setup`]; fields are public so tests and
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

fn invert(m: [f32; 4]) -> [f32; 4] {
    let det = m[0] * m[3] - m[1] * m[2];
    let d = if det.abs() < 1e-12 { 1e-12 } else { det };
    [m[3] / d, -m[1] / d, -m[2] / d, m[0] / d]
}

// Random-stream ids: each individual, photo, split and date sequence draws
// from its own ChaCha stream so work can run in any order.
const STREAM_INDIVIDUAL: u64 = 1 << 60;
const STREAM_PHOTO: u64 = 2 << 60;
const STREAM_SPLIT: u64 = 3 << 60;
const STREAM_DATE: u64 = 4 << 60;

impl ValidSyntheticParams {
    /// The parameters as given.
    pub fn params(&self) -> &SyntheticParams {
        &self.p
    }

    /// Number of individuals that appear only as queries (new individuals).
    pub fn n_new_individuals(&self) -> usize {
        self.n_new
    }

    /// Number of query photos of each individual that is in the database.
    pub fn queries_per_known_individual(&self) -> usize {
        self.known_queries
    }

    fn rng(&self, stream: u64) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::seed_from_u64(self.p.seed);
        r.set_stream(stream);
        r
    }

    fn check_individual(&self, i: usize) -> Result<()> {
        if i >= self.p.n_individuals {
            return Err(DataError::param(
                "individual",
                format!("index {i} out of range 0..{}", self.p.n_individuals),
            ));
        }
        Ok(())
    }

    fn check_photo(&self, i: usize, n: usize) -> Result<()> {
        self.check_individual(i)?;
        if n >= self.p.images_per_individual {
            return Err(DataError::param(
                "photo",
                format!("index {n} out of range 0..{}", self.p.images_per_individual),
            ));
        }
        Ok(())
    }

    /// The identity name of individual `i` (no range check).
    pub fn identity_name(&self, i: usize) -> String {
        format!("{}_{i:04}", self.species_of(i))
    }

    fn species_of(&self, i: usize) -> &str {
        &self.p.species[i % self.p.species.len()]
    }

    /// Builds individual `i`: its pattern and silhouette.
    pub fn individual(&self, i: usize) -> Result<Individual> {
        self.check_individual(i)?;
        let mut rng = self.rng(STREAM_INDIVIDUAL | i as u64);
        let species_idx = i % self.p.species.len();
        // Texels per body unit: a bit above the largest on-screen scale.
        let side = self.p.width.max(self.p.height) as f32;
        let tpu = (side * 0.36).max(8.0);
        let (family, coat) = build_coat(&mut rng, species_idx, tpu);
        Ok(Individual {
            identity: self.identity_name(i),
            species: self.species_of(i).to_string(),
            family,
            coat,
        })
    }

    /// The canonical photo setup: the animal centred, facing right, upright,
    /// at the nominal scale, in neutral light, on a plain grey background,
    /// with no occluder, blur or noise.
    pub fn canonical_setup(&self) -> PhotoSetup {
        let (w, h) = (self.p.width as f32, self.p.height as f32);
        let scale = nominal_scale(w, h);
        PhotoSetup {
            center: (w * 0.5, h * 0.5 - 0.12 * scale),
            scale,
            angle: 0.0,
            shear: 0.0,
            flip: false,
            bend: 0.0,
            gain: 1.0,
            bias: 0.0,
            cast: [1.0; 3],
            gradient: 0.0,
            gradient_dir: (1.0, 0.0),
            background: Background {
                kind: BackgroundKind::Plain,
                colors: [[128.0; 3]; 2],
                horizon: 0.5,
                cells: 4,
                seed: 0,
            },
            occluders: Vec::new(),
            blur_radius: 0,
            noise: 0.0,
            noise_seed: 0,
        }
    }

    /// The setup of photo `n` of individual `i`, drawn from the seed and
    /// scaled by [`SyntheticParams::nuisance`].
    pub fn photo_setup(&self, i: usize, n: usize) -> Result<PhotoSetup> {
        self.check_photo(i, n)?;
        let mut rng = self.rng(STREAM_PHOTO | ((i as u64) << 20) | n as u64);
        Ok(draw_setup(
            &mut rng,
            self.p.width as f32,
            self.p.height as f32,
            self.p.nuisance,
        ))
    }

    /// Renders `individual` as photographed by `setup`, at the configured size.
    pub fn render(&self, individual: &Individual, setup: &PhotoSetup) -> RgbImage {
        render_photo(individual, setup, self.p.width, self.p.height)
    }

    /// Photo `n` of individual `i`, exactly as [`generate`] encodes it.
    pub fn render_photo(&self, i: usize, n: usize) -> Result<RgbImage> {
        let ind = self.individual(i)?;
        let setup = self.photo_setup(i, n)?;
        Ok(self.render(&ind, &setup))
    }

    /// Individual `i` in the [`ValidSyntheticParams::canonical_setup`].
    pub fn render_canonical(&self, i: usize) -> Result<RgbImage> {
        let ind = self.individual(i)?;
        Ok(self.render(&ind, &self.canonical_setup()))
    }

    /// Indices of the individuals that appear only as queries (sorted).
    pub fn new_individuals(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.p.n_individuals).collect();
        order.shuffle(&mut self.rng(STREAM_SPLIT));
        let mut new: Vec<usize> = order[..self.n_new].to_vec();
        new.sort_unstable();
        new
    }

    /// The records [`generate`] writes, without rendering anything. Paths
    /// are `root/images/<identity>/<n>.jpg`; record order is individual by
    /// individual, photo by photo; `image_id` is the running index.
    pub fn records(&self, root: &Path) -> Vec<Record> {
        let m = self.p.images_per_individual;
        let new: BTreeSet<usize> = self.new_individuals().into_iter().collect();
        let width = digits(m.saturating_sub(1));
        let mut out = Vec::with_capacity(self.p.n_individuals * m);
        for i in 0..self.p.n_individuals {
            let identity = self.identity_name(i);
            let queries: BTreeSet<usize> = if new.contains(&i) {
                (0..m).collect()
            } else {
                let mut photos: Vec<usize> = (0..m).collect();
                photos.shuffle(&mut self.rng(STREAM_SPLIT | (1 + i as u64)));
                photos[..self.known_queries].iter().copied().collect()
            };
            let dates = self
                .p
                .dates
                .then(|| photo_dates(&mut self.rng(STREAM_DATE | i as u64), m));
            for n in 0..m {
                let mut r = Record::new(
                    (i * m + n).to_string(),
                    root.join(relative_image_path(&identity, n, width)),
                );
                r.identity = Some(identity.clone());
                r.species = Some(self.species_of(i).to_string());
                r.split = Some(if queries.contains(&n) {
                    SplitRole::Query
                } else {
                    SplitRole::Database
                });
                r.dataset = Some(self.p.dataset_name.clone());
                r.date = dates.as_ref().and_then(|d| d.get(n).copied());
                r.orientation = Some(
                    self.photo_setup(i, n)
                        .map(|s| s.orientation().to_string())
                        .unwrap_or_default(),
                );
                out.push(r);
            }
        }
        out
    }

    /// Writes the dataset into `out_dir`; see [`generate`].
    pub fn generate(&self, out_dir: &Path) -> Result<Dataset> {
        self.generate_with_progress(out_dir, |_, _| {})
    }

    /// Like [`ValidSyntheticParams::generate`], calling `progress(done,
    /// total)` after each image is written (from worker threads, in no
    /// particular order).
    pub fn generate_with_progress<F>(&self, out_dir: &Path, progress: F) -> Result<Dataset>
    where
        F: Fn(usize, usize) + Sync,
    {
        let records = self.records(out_dir);
        let m = self.p.images_per_individual;
        let total = records.len();
        let done = AtomicUsize::new(0);
        for i in 0..self.p.n_individuals {
            let dir = out_dir.join("images").join(self.identity_name(i));
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        }
        let quality = self.p.jpeg_quality;
        (0..self.p.n_individuals)
            .into_par_iter()
            .try_for_each(|i| -> Result<()> {
                let ind = self.individual(i)?;
                (0..m).into_par_iter().try_for_each(|n| -> Result<()> {
                    let setup = self.photo_setup(i, n)?;
                    let img = self.render(&ind, &setup);
                    let path: &PathBuf = &records[i * m + n].path;
                    let mut bytes = Vec::with_capacity(img.as_raw().len() / 4);
                    JpegEncoder::new_with_quality(&mut bytes, quality)
                        .encode_image(&img)
                        .map_err(|e| DataError::io(path, std::io::Error::other(e)))?;
                    write_image(path, &bytes)?;
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(d, total);
                    Ok(())
                })
            })?;
        let ds = Dataset::new(out_dir, records);
        crate::loaders::write_metadata_csv(&out_dir.join(METADATA_FILE), &ds)?;
        Ok(ds)
    }
}

/// Writes an image file so that no reader ever sees it half-written
/// (`reid_core::fs`), but without syncing each image to disk (a thousand
/// `fsync`s dominate the run time); `metadata.csv`, written last, is synced.
/// A file that already holds exactly `bytes` is left alone, so a re-run
/// rewrites nothing.
fn write_image(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    reid_core::fs::AtomicWrite::new()
        .durable(false)
        .bytes(path, bytes)?;
    Ok(())
}

/// Writes the synthetic dataset described by `params` into `out_dir`:
/// `images/<identity>/<n>.jpg` (JPEG) and `metadata.csv` with the AnimalCLEF
/// columns `image_id,identity,path,date,orientation,species,split,dataset`
/// (paths relative to `out_dir`). Every file is written through a temporary
/// file and a rename, so an interrupted run never leaves a half-written image
/// or CSV; the CSV is written last (and flushed to disk), and re-running into
/// the same folder gives the same bytes (unchanged images are not rewritten).
/// Files of an earlier run with other parameters are not deleted.
///
/// The split is open-set: [`SyntheticParams::new_identity_fraction`] of the
/// individuals are query-only (new individuals), and
/// [`SyntheticParams::query_fraction`] of each remaining individual's photos
/// are queries; queries keep their true identity.
///
/// ```
/// use reid_data::synthetic::{SyntheticParams, generate};
///
/// let dir = tempfile::tempdir().unwrap();
/// let params = SyntheticParams::default()
///     .n_individuals(4)
///     .images_per_individual(3)
///     .size(48, 48);
/// let ds = generate(&params, dir.path())?;
/// assert_eq!(ds.records.len(), 12);
/// assert!(dir.path().join("metadata.csv").is_file());
/// # Ok::<(), reid_data::DataError>(())
/// ```
pub fn generate(params: &SyntheticParams, out_dir: &Path) -> Result<Dataset> {
    params.check()?.generate(out_dir)
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn relative_image_path(identity: &str, n: usize, width: usize) -> PathBuf {
    PathBuf::from("images")
        .join(identity)
        .join(format!("{n:0width$}.jpg"))
}

/// `m` increasing dates in 2024 and 2025, gaps of 1..=20 days.
fn photo_dates(rng: &mut ChaCha8Rng, m: usize) -> Vec<Date> {
    let mut day: u32 = rng.gen_range(0..240);
    let mut out = Vec::with_capacity(m);
    for _ in 0..m {
        out.push(day_to_date(day));
        day = (day + rng.gen_range(1..=20)) % (366 + 365);
    }
    out
}

fn day_to_date(mut day: u32) -> Date {
    let mut year = 2024;
    loop {
        let leap = year % 4 == 0;
        let len = if leap { 366 } else { 365 };
        if day < len {
            let months = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let mut month = 1u8;
            for ml in months {
                if day < ml {
                    break;
                }
                day -= ml;
                month += 1;
            }
            return Date {
                year,
                month,
                day: day as u8 + 1,
            };
        }
        day -= len;
        year += 1;
    }
}

// ---------------------------------------------------------------------------
// Coat: silhouette and pattern.

fn nominal_scale(w: f32, h: f32) -> f32 {
    // The animal spans about 3.5 body units across and 2 down.
    (0.95 * w / 3.5).min(0.95 * h / 2.0)
}

#[inline]
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
fn seg_dist(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (bax, bay) = (b.0 - a.0, b.1 - a.1);
    let (pax, pay) = (p.0 - a.0, p.1 - a.1);
    let len2 = bax * bax + bay * bay;
    let t = if len2 > 0.0 {
        ((pax * bax + pay * bay) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let dx = pax - bax * t;
    let dy = pay - bay * t;
    (dx * dx + dy * dy).sqrt()
}

/// A silhouette part with an approximate signed distance (negative inside).
enum Part {
    Ellipse {
        c: (f32, f32),
        a: f32,
        b: f32,
    },
    Capsule {
        a: (f32, f32),
        b: (f32, f32),
        r: f32,
    },
}

impl Part {
    fn sdf(&self, p: (f32, f32)) -> f32 {
        match self {
            Part::Ellipse { c, a, b } => {
                let x = (p.0 - c.0) / a;
                let y = (p.1 - c.1) / b;
                ((x * x + y * y).sqrt() - 1.0) * a.min(*b)
            }
            Part::Capsule { a, b, r } => seg_dist(p, *a, *b) - r,
        }
    }
}

fn silhouette(rng: &mut ChaCha8Rng) -> Vec<Part> {
    let body_b = rng.gen_range(0.38..0.46);
    let neck_up = rng.gen_range(0.0..0.1);
    let head_r = rng.gen_range(0.2..0.26);
    let leg_len = rng.gen_range(0.68..0.82);
    let leg_r = rng.gen_range(0.07..0.095);
    let curl = rng.gen_range(-1.0f32..1.0);
    let hy = -0.35 - neck_up;
    let mut parts = vec![
        Part::Ellipse {
            c: (0.0, 0.0),
            a: 1.0,
            b: body_b,
        },
        Part::Capsule {
            a: (0.7, -0.08),
            b: (1.1, hy + 0.05),
            r: 0.19,
        },
        Part::Ellipse {
            c: (1.2, hy),
            a: head_r * 1.1,
            b: head_r,
        },
        Part::Ellipse {
            c: (1.2 + head_r * 1.05, hy + 0.05),
            a: 0.14,
            b: 0.1,
        },
        Part::Ellipse {
            c: (1.1, hy - head_r * 0.9),
            a: 0.075,
            b: 0.1,
        },
        Part::Ellipse {
            c: (1.27, hy - head_r * 0.85),
            a: 0.07,
            b: 0.09,
        },
    ];
    for x in [-0.75f32, -0.52, 0.52, 0.75] {
        let dx = rng.gen_range(-0.08..0.08);
        parts.push(Part::Capsule {
            a: (x, 0.1),
            b: (x + dx, 0.1 + leg_len),
            r: leg_r,
        });
    }
    let pts = [
        (-0.9, -0.12),
        (-1.25, -0.2 + 0.1 * curl),
        (-1.5, -0.3 + 0.25 * curl),
        (-1.68, -0.35 + 0.3 * curl),
    ];
    for (k, r) in [0.06f32, 0.05, 0.045].into_iter().enumerate() {
        parts.push(Part::Capsule {
            a: pts[k],
            b: pts[k + 1],
            r,
        });
    }
    parts
}

/// A pattern: a value in `[0, 1]` (1 = pattern colour) at each body point.
enum Pattern {
    Spots(Vec<Spot>),
    Stripes {
        freq: f32,
        tilt: (f32, f32),
        warp: [(f32, f32, f32); 2],
        phase: f32,
        threshold: f32,
    },
    Rosettes {
        rings: Vec<Rosette>,
        spots: Vec<Spot>,
    },
    Reticulated {
        seeds: Vec<(f32, f32)>,
        net: f32,
    },
}

struct Spot {
    c: (f32, f32),
    r: f32,
    /// Inverse-scaled ellipse axes: (cos, sin) of the orientation and aspect.
    rot: (f32, f32),
    aspect: f32,
    /// Radius wobble: amplitude and phase of the 3rd angular harmonic.
    wobble: (f32, f32),
}

impl Spot {
    #[inline]
    fn value(&self, u: f32, v: f32, edge: f32) -> f32 {
        let dx = u - self.c.0;
        let dy = v - self.c.1;
        if dx.abs() > self.r * 1.6 || dy.abs() > self.r * 1.6 {
            return 0.0;
        }
        let x = dx * self.rot.0 + dy * self.rot.1;
        let y = (-dx * self.rot.1 + dy * self.rot.0) / self.aspect;
        let d = (x * x + y * y).sqrt();
        let ang = y.atan2(x);
        let r = self.r * (1.0 + self.wobble.0 * (3.0 * ang + self.wobble.1).sin());
        smoothstep(r + edge, r - edge, d)
    }
}

struct Rosette {
    c: (f32, f32),
    r: f32,
    thick: f32,
    /// Number of arcs and the gap fraction between them.
    arcs: f32,
    gap: f32,
    phase: f32,
}

fn random_point(rng: &mut ChaCha8Rng) -> (f32, f32) {
    // Mostly on the torso, some on neck, legs, tail.
    if rng.gen_bool(0.8) {
        (rng.gen_range(-1.05..1.05), rng.gen_range(-0.5..0.5))
    } else {
        (rng.gen_range(U0..U1), rng.gen_range(V0..V1))
    }
}

fn random_spot(rng: &mut ChaCha8Rng, rmin: f32, rmax: f32) -> Spot {
    let ang: f32 = rng.gen_range(0.0..std::f32::consts::PI);
    Spot {
        c: random_point(rng),
        r: rng.gen_range(rmin..rmax),
        rot: (ang.cos(), ang.sin()),
        aspect: rng.gen_range(0.55..1.0),
        wobble: (
            rng.gen_range(0.0..0.2),
            rng.gen_range(0.0..std::f32::consts::TAU),
        ),
    }
}

impl Pattern {
    fn draw(rng: &mut ChaCha8Rng, family: PatternFamily) -> Pattern {
        use std::f32::consts::TAU;
        match family {
            PatternFamily::Spots => {
                let n = rng.gen_range(16..36);
                Pattern::Spots((0..n).map(|_| random_spot(rng, 0.06, 0.16)).collect())
            }
            PatternFamily::Stripes => {
                let t: f32 = rng.gen_range(-0.45..0.45);
                Pattern::Stripes {
                    freq: rng.gen_range(2.0..4.5),
                    tilt: (t.cos(), t.sin()),
                    warp: [
                        (
                            rng.gen_range(0.03..0.1),
                            rng.gen_range(1.0..3.0),
                            rng.gen_range(0.0..TAU),
                        ),
                        (
                            rng.gen_range(0.005..0.04),
                            rng.gen_range(1.0..3.0),
                            rng.gen_range(0.0..TAU),
                        ),
                    ],
                    phase: rng.gen_range(0.0..TAU),
                    threshold: rng.gen_range(-0.1..0.45),
                }
            }
            PatternFamily::Rosettes => {
                let mut rings: Vec<Rosette> = Vec::new();
                let target = rng.gen_range(10..20);
                for _ in 0..200 {
                    if rings.len() >= target {
                        break;
                    }
                    let c = random_point(rng);
                    let r = rng.gen_range(0.08..0.14);
                    let clear = rings.iter().all(|o| {
                        let d = ((o.c.0 - c.0).powi(2) + (o.c.1 - c.1).powi(2)).sqrt();
                        d > o.r + r + 0.05
                    });
                    if clear {
                        rings.push(Rosette {
                            c,
                            r,
                            thick: rng.gen_range(0.03..0.05),
                            arcs: rng.gen_range(3..6) as f32,
                            gap: rng.gen_range(0.1..0.3),
                            phase: rng.gen_range(0.0..TAU),
                        });
                    }
                }
                let n = rng.gen_range(4..12);
                let spots = (0..n).map(|_| random_spot(rng, 0.03, 0.06)).collect();
                Pattern::Rosettes { rings, spots }
            }
            PatternFamily::Reticulated => {
                let n = rng.gen_range(18..34);
                Pattern::Reticulated {
                    seeds: (0..n).map(|_| random_point(rng)).collect(),
                    net: rng.gen_range(0.015..0.035),
                }
            }
        }
    }

    fn value(&self, u: f32, v: f32, edge: f32) -> f32 {
        use std::f32::consts::TAU;
        match self {
            Pattern::Spots(spots) => spots
                .iter()
                .map(|s| s.value(u, v, edge))
                .fold(0.0, f32::max),
            Pattern::Stripes {
                freq,
                tilt,
                warp,
                phase,
                threshold,
            } => {
                let along = u * tilt.0 + v * tilt.1;
                let w = warp[0].0 * (TAU * warp[0].1 * v + warp[0].2).sin()
                    + warp[1].0 * (TAU * warp[1].1 * u + warp[1].2).sin();
                let s = (TAU * freq * (along + w) + phase).sin();
                // Edge width in the units of `s` (slope about TAU * freq).
                let e = edge * TAU * freq;
                smoothstep(threshold - e, threshold + e, s)
            }
            Pattern::Rosettes { rings, spots } => {
                let mut p: f32 = 0.0;
                for ring in rings {
                    let dx = u - ring.c.0;
                    let dy = v - ring.c.1;
                    let reach = ring.r + ring.thick + edge;
                    if dx.abs() > reach || dy.abs() > reach {
                        continue;
                    }
                    let d = (dx * dx + dy * dy).sqrt();
                    if d < ring.r - ring.thick {
                        // The centre: a tone between coat and pattern.
                        p = p.max(
                            0.4 * smoothstep(ring.r - ring.thick, ring.r - ring.thick - edge, d),
                        );
                        continue;
                    }
                    let band = smoothstep(ring.thick + edge, ring.thick - edge, (d - ring.r).abs());
                    let a = (dy.atan2(dx) + ring.phase) / TAU * ring.arcs;
                    let frac = a - a.floor();
                    let arc = smoothstep(0.0, 0.05, frac - ring.gap);
                    p = p
                        .max(band * arc)
                        .max(0.4 * smoothstep(ring.r, ring.r - edge, d));
                }
                for s in spots {
                    p = p.max(s.value(u, v, edge));
                }
                p
            }
            Pattern::Reticulated { seeds, net } => {
                let (mut d1, mut d2) = (f32::MAX, f32::MAX);
                for s in seeds {
                    let d = ((u - s.0).powi(2) + (v - s.1).powi(2)).sqrt();
                    if d < d1 {
                        d2 = d1;
                        d1 = d;
                    } else if d < d2 {
                        d2 = d;
                    }
                }
                smoothstep(net - edge, net + edge, (d2 - d1) * 0.5)
            }
        }
    }
}

/// Coat base colours per species (cycled), RGB.
const COAT_BASES: [[f32; 3]; 5] = [
    [205.0, 150.0, 80.0],
    [165.0, 160.0, 150.0],
    [225.0, 205.0, 165.0],
    [185.0, 105.0, 55.0],
    [230.0, 228.0, 215.0],
];

fn build_coat(rng: &mut ChaCha8Rng, species_idx: usize, tpu: f32) -> (PatternFamily, Coat) {
    let parts = silhouette(rng);
    let family = match rng.gen_range(0..4) {
        0 => PatternFamily::Spots,
        1 => PatternFamily::Stripes,
        2 => PatternFamily::Rosettes,
        _ => PatternFamily::Reticulated,
    };
    let pattern = Pattern::draw(rng, family);
    let base0 = COAT_BASES[species_idx % COAT_BASES.len()];
    let mut base = [0.0f32; 3];
    for (b, b0) in base.iter_mut().zip(base0) {
        *b = (b0 + rng.gen_range(-20.0..20.0)).clamp(0.0, 255.0);
    }
    let dark = rng.gen_range(20.0..70.0f32);
    let pat = [dark + 10.0, dark + 4.0, dark];
    let belly = rng.gen_range(0.1..0.3f32);
    let fur_seed: u32 = rng.r#gen();

    let tw = ((U1 - U0) * tpu).ceil() as usize;
    let th = ((V1 - V0) * tpu).ceil() as usize;
    let edge = 0.6 / tpu;
    let mut texels = vec![[0.0f32; 4]; tw * th];
    texels.par_chunks_mut(tw).enumerate().for_each(|(ty, row)| {
        let v = V0 + (ty as f32 + 0.5) / tpu;
        for (tx, t) in row.iter_mut().enumerate() {
            let u = U0 + (tx as f32 + 0.5) / tpu;
            let sd = parts.iter().map(|p| p.sdf((u, v))).fold(f32::MAX, f32::min);
            let alpha = (0.5 - sd * tpu).clamp(0.0, 1.0);
            if alpha <= 0.0 {
                continue;
            }
            let p = pattern.value(u, v, edge);
            let light = 1.0 + belly * smoothstep(0.1, 0.45, v);
            let fur = (hash01(fur_seed ^ (ty * tw + tx) as u32) - 0.5) * 14.0;
            for k in 0..3 {
                let c = (base[k] * light).min(255.0) * (1.0 - p) + pat[k] * p + fur;
                t[k] = c.clamp(0.0, 255.0) * alpha;
            }
            t[3] = alpha;
        }
    });
    (
        family,
        Coat {
            tw,
            th,
            tpu,
            texels,
        },
    )
}

// ---------------------------------------------------------------------------
// Photo: setup and rendering.

#[inline]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[inline]
fn hash01(x: u32) -> f32 {
    (hash32(x) >> 8) as f32 / (1u32 << 24) as f32
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

fn draw_setup(rng: &mut ChaCha8Rng, w: f32, h: f32, k: f32) -> PhotoSetup {
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

fn render_photo(ind: &Individual, setup: &PhotoSetup, width: u32, height: u32) -> RgbImage {
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
