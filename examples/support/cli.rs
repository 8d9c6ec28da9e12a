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
