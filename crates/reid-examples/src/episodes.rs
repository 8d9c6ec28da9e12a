//! The self-calibration options.

use reid_openset::SelfCalibrationParams;

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
