//! The self-calibration options.

use reid_core::ParamGuard;
use reid_openset::{AdaptParams, Adaptation, OpensetError, SelfCalibrationParams};

/// The self-calibration options of the examples that decide known / new.
#[derive(Debug, Clone, clap::Args)]
pub struct EpisodeArgs {
    /// Self-calibration episodes (per dataset).
    #[arg(long, default_value_t = 20)]
    pub episodes: usize,
    /// Fraction of database identities held out as pseudo-new per episode.
    #[arg(long, default_value_t = 0.3)]
    pub new_fraction: f64,
    /// Fraction of the remaining images used as pseudo-queries per episode.
    #[arg(long, default_value_t = 0.3)]
    pub query_fraction: f64,
    /// Seed of the episodes.
    #[arg(long, default_value_t = 2025)]
    pub seed: u64,
}

impl EpisodeArgs {
    /// The episode parameters, over the thresholds -0.2..=1.0 in 240 steps
    /// (the grid every example searches); checked by the pipeline.
    pub fn params(&self) -> SelfCalibrationParams {
        SelfCalibrationParams::default()
            .new_fraction(self.new_fraction)
            .query_fraction(self.query_fraction)
            .episodes(self.episodes)
            .seed(self.seed)
            .grid_steps(-0.2..=1.0, 240)
    }
}

/// The projection of the embeddings fitted on each dataset's database
/// (`--adapt`, `--shrinkage`, `--adapt-dim`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdaptArgs {
    /// Projection of the embeddings fitted on each dataset's database (and
    /// refitted on every self-calibration episode's pseudo-gallery): `none`,
    /// `center`, `pca` (PCA whitening), `whiten` (within-identity whitening)
    /// or `lda`.
    #[arg(long, default_value = "none")]
    pub adapt: String,
    /// Shrinkage of the projection's scatter matrices, in [0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub shrinkage: f64,
    /// Dimensions the projection keeps (default: all it gives).
    #[arg(long)]
    pub adapt_dim: Option<usize>,
}

impl AdaptArgs {
    /// The projection asked for (`None` for `--adapt none`), checked.
    pub fn params(&self) -> Result<Option<AdaptParams>, OpensetError> {
        if self.adapt == "none" {
            return Ok(None);
        }
        let p = AdaptParams::new(self.adapt.parse::<Adaptation>()?)
            .shrinkage(self.shrinkage)
            .dim(self.adapt_dim);
        p.check_ref()?;
        Ok(Some(p))
    }
}

/// One line on the projection: its settings, and per dataset the rows and
/// identities it was fitted on, its dimension and fit time.
pub fn adapt_summary(a: &reid_pipeline::Adapted) -> String {
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|(name, g)| {
            format!(
                "{name}: {} rows, {} identities -> {} dims in {:.2} s",
                g.rows, g.identities, g.dim, g.seconds
            )
        })
        .collect();
    format!(
        "projection {} fitted per dataset ({})",
        a.params,
        groups.join("; ")
    )
}
