//! Command-line helpers shared by the example binaries (included with `#[path]`).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of `len` steps labelled `what`, hidden when `quiet`.
pub fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// The `shared` data folder: `ANIMAL_REID_SHARED`, else `../shared` beside the repository.
#[allow(dead_code)]
pub fn shared_dir() -> PathBuf {
    std::env::var_os("ANIMAL_REID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// The backbone options every example takes.
#[derive(Debug, clap::Args)]
pub struct BackboneArgs {
    /// Backbone, by registry name: efficientnet_lite0/1/2, mobilenet_v2,
    /// convnext_tiny/small/base, tf_efficientnetv2_s/m/l, efficientnetv2_s/m/l,
    /// vit_base_patch16_224/384, vit_small/base/large_patch14_dinov2,
    /// swin_base/large_patch4_window12_384, or torchscript (with --weights).
    #[arg(long, default_value = "efficientnet_lite2")]
    pub backbone: String,
    /// Weights file (safetensors or PyTorch state dict with the original key
    /// names, or a TorchScript model); default: the bundled ImageNet weights.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision: f32, or f16 / bf16 on CUDA.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Pooling: default, avg, gem, gem:P, cls, cls+mean.
    #[arg(long, default_value = "default")]
    pub pooling: String,
    /// Average each embedding with that of the mirror image.
    #[arg(long)]
    pub flip: bool,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

impl BackboneArgs {
    /// Builds the backbone these options describe.
    pub fn build(&self) -> anyhow::Result<animal_reid::backbone::backbone::Backbone> {
        use animal_reid::backbone::backbone::{BackboneBuilder, Precision, parse_device};
        use animal_reid::backbone::pool::Pooling;
        let mut b = BackboneBuilder::new(&self.backbone)
            .device(parse_device(&self.device)?)
            .precision(Precision::parse(&self.precision)?)
            .pooling(Pooling::parse(&self.pooling)?);
        if let Some(w) = &self.weights {
            b = b.weights_file(w);
        }
        Ok(b.build()?)
    }

    /// Extraction parameters (batch size, flip), caching in `cache` if given.
    pub fn extract_params(
        &self,
        cache: Option<&std::path::Path>,
    ) -> anyhow::Result<animal_reid::backbone::pipeline::ValidExtractParams> {
        let mut p =
            animal_reid::backbone::pipeline::ExtractParams::new(self.batch_size).flip(self.flip);
        if let Some(c) = cache {
            p = p.cache_dir(c);
        }
        Ok(p.check()?)
    }
}

/// Loader options: fail on the first bad row or file, or skip and report
/// them; every image file checked.
#[allow(dead_code)]
pub fn load_options(skip_bad: bool) -> animal_reid::data::loaders::LoadOptions {
    use animal_reid::data::loaders::LoadOptions;
    if skip_bad {
        LoadOptions::skip()
    } else {
        LoadOptions::default()
    }
    .with_check_files(true)
}

/// An embedding run: the backbone, the embeddings and the seconds taken.
#[allow(dead_code)]
pub struct Embedded {
    /// The backbone used.
    pub backbone: animal_reid::backbone::backbone::Backbone,
    /// One L2-normalised row per record.
    pub embeddings: animal_reid::backbone::pipeline::Embeddings,
    /// Wall time of the extraction.
    pub seconds: f64,
}

impl BackboneArgs {
    /// Builds the backbone and embeds `records` (cached in `cache` if
    /// given) with a progress bar, hidden when `quiet`.
    #[allow(dead_code)]
    pub fn embed(
        &self,
        records: &[animal_reid::data::Record],
        cache: Option<&std::path::Path>,
        quiet: bool,
    ) -> anyhow::Result<Embedded> {
        let backbone = self.build()?;
        let (embeddings, seconds) = self.embed_with(&backbone, records, cache, quiet)?;
        Ok(Embedded {
            backbone,
            embeddings,
            seconds,
        })
    }

    /// Embeds `records` with `backbone` and these options (cached in
    /// `cache` if given) with a progress bar, hidden when `quiet`; returns
    /// the embeddings and the seconds taken.
    #[allow(dead_code)]
    pub fn embed_with(
        &self,
        backbone: &animal_reid::backbone::backbone::Backbone,
        records: &[animal_reid::data::Record],
        cache: Option<&std::path::Path>,
        quiet: bool,
    ) -> anyhow::Result<(animal_reid::backbone::pipeline::Embeddings, f64)> {
        let params = self.extract_params(cache)?;
        let t = std::time::Instant::now();
        let pb = bar(records.len(), "embedding", quiet);
        let embeddings =
            animal_reid::backbone::pipeline::extract(backbone, records, &params, |p| {
                pb.set_position(p.done as u64)
            })?;
        pb.finish_and_clear();
        Ok((embeddings, t.elapsed().as_secs_f64()))
    }
}

/// Self-calibration episodes over the thresholds -0.2..=1.0 in 240 steps
/// (the grid every example searches).
#[allow(dead_code)]
pub fn selfcal_params(
    new_fraction: f64,
    query_fraction: f64,
    episodes: usize,
    seed: u64,
) -> anyhow::Result<animal_reid::openset::SelfCalibrationParams> {
    use animal_reid::openset::SelfCalibrationParams;
    Ok(SelfCalibrationParams::new(
        new_fraction,
        query_fraction,
        episodes,
        seed,
        SelfCalibrationParams::linear_grid(-0.2, 1.0, 240),
    )?)
}

/// The self-calibration options of the examples that score real data.
#[derive(Debug, clap::Args)]
pub struct SelfCalArgs {
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

impl SelfCalArgs {
    /// The checked episode parameters.
    #[allow(dead_code)]
    pub fn params(&self) -> anyhow::Result<animal_reid::openset::SelfCalibrationParams> {
        selfcal_params(
            self.new_fraction,
            self.query_fraction,
            self.episodes,
            self.seed,
        )
    }
}
