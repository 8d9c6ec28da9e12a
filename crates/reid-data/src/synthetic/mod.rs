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
//! use reid_data::ParamGuard;
//! use reid_data::synthetic::SyntheticParams;
//!
//! let set = SyntheticParams::default()
//!     .n_individuals(3)
//!     .images_per_individual(2)
//!     .width(64)
//!     .height(64)
//!     .seed(7)
//!     .check()?;
//! let photo = set.render_photo(1, 0)?;
//! assert_eq!(photo.dimensions(), (64, 64));
//! // Same parameters, same pixels.
//! assert_eq!(photo, set.render_photo(1, 0)?);
//! # Ok::<(), reid_data::DataError>(())
//! ```
//!
//! One file per job: `params` ([`SyntheticParams`], checked once into
//! [`ValidSyntheticParams`]), `coat` (silhouettes and coat patterns),
//! `photo` (pose, light, background, occluders, blur and noise, and the
//! renderer), `write` (the records, the split and the files on disk) and
//! `math` (small shared helpers); everything public is re-exported here.

mod coat;
mod math;
mod params;
mod photo;
mod write;

pub use coat::{Individual, PatternFamily};
pub use params::{
    MAX_IMAGES_PER_INDIVIDUAL, MAX_INDIVIDUALS, MAX_SIDE, MIN_SIDE, SyntheticParams,
    ValidSyntheticParams,
};
pub use photo::{Background, BackgroundKind, Occluder, PhotoSetup};
pub use write::{METADATA_FILE, generate};

use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use coat::build_coat;
use math::nominal_scale;
use photo::{draw_setup, render_photo};

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
}
