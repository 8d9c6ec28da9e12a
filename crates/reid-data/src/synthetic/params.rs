//! The parameters of the synthetic set and their checked form.

use reid_core::ParamGuard;

use crate::error::{DataError, Result};

/// Largest accepted number of individuals.
pub const MAX_INDIVIDUALS: usize = 1 << 24;
/// Largest accepted number of photos per individual.
pub const MAX_IMAGES_PER_INDIVIDUAL: usize = 1 << 20;
/// Smallest accepted image side in pixels.
pub const MIN_SIDE: u32 = 16;
/// Largest accepted image side in pixels.
pub const MAX_SIDE: u32 = 4096;
/// Parameters of the synthetic dataset, unchecked.
///
/// Build with [`Default`] and the builder methods (one per setting), then
/// call [`ParamGuard::check`] once to get a [`ValidSyntheticParams`] that
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
    reid_core::setters! {
        /// Sets [`SyntheticParams::n_individuals`].
        n_individuals: usize,
        /// Sets [`SyntheticParams::images_per_individual`].
        images_per_individual: usize,
        /// Sets [`SyntheticParams::width`], in pixels.
        width: u32,
        /// Sets [`SyntheticParams::height`], in pixels.
        height: u32,
        /// Sets [`SyntheticParams::seed`].
        seed: u64,
        /// Sets [`SyntheticParams::new_identity_fraction`].
        new_identity_fraction: f64,
        /// Sets [`SyntheticParams::query_fraction`].
        query_fraction: f64,
        /// Sets [`SyntheticParams::nuisance`].
        nuisance: f32,
        /// Sets [`SyntheticParams::jpeg_quality`].
        jpeg_quality: u8,
        /// Sets [`SyntheticParams::dates`].
        dates: bool,
    }

    /// Sets [`SyntheticParams::species`].
    #[must_use]
    pub fn species<S: Into<String>>(mut self, species: impl IntoIterator<Item = S>) -> Self {
        self.species = species.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`SyntheticParams::dataset_name`].
    #[must_use]
    pub fn dataset_name(mut self, name: impl Into<String>) -> Self {
        self.dataset_name = name.into();
        self
    }
}

impl ParamGuard for SyntheticParams {
    type Checked = ValidSyntheticParams;
    type Error = DataError;

    /// Validates every parameter; errors with [`DataError::InvalidParam`]
    /// naming the first bad parameter and its value.
    fn check_ref(&self) -> Result<()> {
        self.counts().map(|_| ())
    }

    /// Validates every parameter once; the result renders and writes.
    fn check(self) -> Result<ValidSyntheticParams> {
        let (n_new, known_queries) = self.counts()?;
        Ok(ValidSyntheticParams {
            p: self,
            n_new,
            known_queries,
        })
    }
}

impl SyntheticParams {
    /// Checks every setting; returns the number of new individuals and of
    /// queries per known individual.
    fn counts(&self) -> Result<(usize, usize)> {
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
        Ok((n_new, known_queries))
    }
}

/// Checked parameters: renders individuals and photos, and writes the dataset.
///
/// Made by [`ParamGuard::check`] on [`SyntheticParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSyntheticParams {
    pub(super) p: SyntheticParams,
    pub(super) n_new: usize,
    pub(super) known_queries: usize,
}
