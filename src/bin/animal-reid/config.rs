//! The pipeline a catalogue runs: chosen at `init`, stored in the
//! catalogue (so every member of a team embeds and matches alike), changed
//! with `config`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use reid_examples::{BackboneArgs, LocalArgs};
use serde::{Deserialize, Serialize};

/// Pipeline options of `init` and `config` (unset: keep / default).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PipelineArgs {
    /// Backbone (registry name, see `animal-reid identify --help` of the
    /// examples): default efficientnet_lite2.
    #[arg(long)]
    pub backbone: Option<String>,
    /// Weights file instead of the bundled ImageNet weights (its content
    /// hash keys the embeddings: a changed file is embedded again).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Pooling (default, avg, gem, gem:P, cls, cls+mean).
    #[arg(long)]
    pub pooling: Option<String>,
    /// Average each embedding with that of the mirror image (true/false).
    #[arg(long)]
    pub flip: Option<bool>,
    /// Local matchers fused with cosine: none, sift, xfeat, disk, aliked
    /// (comma-separated). Default sift.
    #[arg(long)]
    pub local: Option<String>,
    /// Cosine shortlist re-ranked by the local matchers (default 50).
    #[arg(long)]
    pub shortlist: Option<usize>,
    /// Projection fitted on the catalogue (auto, none, whiten, lda, ...);
    /// default none.
    #[arg(long)]
    pub adapt: Option<String>,
    /// Self-calibration episodes per dataset (default 20).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// The cosine threshold used while the catalogue is too small to
    /// calibrate one from itself (fewer than two individuals with two
    /// photos in a dataset); default 0.6.
    #[arg(long)]
    pub fallback_threshold: Option<f32>,
}

/// The stored pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// Backbone name.
    pub backbone: String,
    /// Weights file, if not the bundled one.
    pub weights: Option<PathBuf>,
    /// Pooling.
    pub pooling: String,
    /// Mirror-averaged embeddings.
    pub flip: bool,
    /// Local matchers (`none` for cosine alone).
    pub local: String,
    /// Shortlist.
    pub shortlist: usize,
    /// Projection.
    pub adapt: String,
    /// Self-calibration episodes.
    pub episodes: usize,
    /// Threshold while self-calibration is impossible.
    #[serde(default = "default_fallback")]
    pub fallback_threshold: f32,
}

fn default_fallback() -> f32 {
    0.6
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            backbone: "efficientnet_lite2".into(),
            weights: None,
            pooling: "default".into(),
            flip: false,
            local: "sift".into(),
            shortlist: 50,
            adapt: "none".into(),
            episodes: 20,
            fallback_threshold: default_fallback(),
        }
    }
}

/// Parses the local options the way the examples do.
#[derive(Parser)]
struct LocalOnly {
    #[command(flatten)]
    local: LocalArgs,
}

impl PipelineConfig {
    /// This config with the options given in `a` changed.
    pub fn updated(&self, a: &PipelineArgs) -> Result<PipelineConfig> {
        let mut c = self.clone();
        if let Some(v) = &a.backbone {
            c.backbone = v.clone();
        }
        if let Some(v) = &a.weights {
            c.weights = Some(
                std::fs::canonicalize(v).with_context(|| format!("--weights {}", v.display()))?,
            );
        }
        if let Some(v) = &a.pooling {
            c.pooling = v.clone();
        }
        if let Some(v) = a.flip {
            c.flip = v;
        }
        if let Some(v) = &a.local {
            c.local = v.clone();
        }
        if let Some(v) = a.shortlist {
            c.shortlist = v;
        }
        if let Some(v) = &a.adapt {
            c.adapt = v.clone();
        }
        if let Some(v) = a.episodes {
            c.episodes = v;
        }
        if let Some(v) = a.fallback_threshold {
            c.fallback_threshold = v;
        }
        c.check()?;
        Ok(c)
    }

    /// Checks every option by building what it describes (not the model).
    pub fn check(&self) -> Result<()> {
        self.local_args()?;
        self.backbone_args().builder()?;
        if self.episodes == 0 {
            bail!("--episodes must be at least 1");
        }
        if !(-1.0..=1.0).contains(&self.fallback_threshold) {
            bail!(
                "--fallback-threshold {} is not a cosine in [-1, 1]",
                self.fallback_threshold
            );
        }
        Ok(())
    }

    /// The backbone options.
    pub fn backbone_args(&self) -> BackboneArgs {
        BackboneArgs {
            backbone: self.backbone.clone(),
            weights: self.weights.clone(),
            device: "cpu".into(),
            precision: "f32".into(),
            pooling: self.pooling.clone(),
            flip: self.flip,
            batch_size: None,
        }
    }

    /// The local matching options.
    pub fn local_args(&self) -> Result<LocalArgs> {
        let parsed = LocalOnly::try_parse_from([
            "animal-reid",
            "--local",
            &self.local,
            "--shortlist",
            &self.shortlist.to_string(),
        ])
        .map_err(|e| anyhow::anyhow!("pipeline config: {e}"))?;
        Ok(parsed.local)
    }

    /// Reads the stored config (default when none was stored).
    pub fn load(cat: &mut reid_catalogue::catalogue::Catalogue) -> Result<PipelineConfig> {
        match cat.setting("pipeline")? {
            None => Ok(PipelineConfig::default()),
            Some(json) => serde_json::from_str(&json)
                .with_context(|| format!("the catalogue's stored pipeline {json:?}")),
        }
    }

    /// Stores it; true when it changed.
    pub fn store(
        &self,
        cat: &mut reid_catalogue::catalogue::Catalogue,
        ctx: &reid_catalogue::catalogue::ChangeContext,
    ) -> Result<bool> {
        Ok(cat.set_setting("pipeline", &serde_json::to_string(self)?, ctx)?)
    }
}
