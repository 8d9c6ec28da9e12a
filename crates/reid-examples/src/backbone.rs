//! The backbone options and embedding with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Instant;

use reid_backbone::backbone::{Backbone, BackboneBuilder, Precision, parse_device};
use reid_backbone::pipeline::{
    Embeddings, ExtractParams, Progress, SkippedImage, ValidExtractParams, default_batch_size,
    extract, extract_skipping,
};
use reid_backbone::pool::Pooling;
use reid_core::{ParamGuard, Record};
use reid_data::Dataset;

use crate::bar;

/// The backbone options every example that embeds images takes.
#[derive(Debug, Clone, clap::Args)]
pub struct BackboneArgs {
    /// Backbone, by registry name: mobilenet_v2, efficientnet_lite0/1/2,
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
    /// Precision: f32; f16 on CUDA; bf16 on CUDA and on CPUs with AVX-512 BF16.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Pooling: default, avg, gem, gem:P, cls, cls+mean.
    #[arg(long, default_value = "default")]
    pub pooling: String,
    /// Average each embedding with that of the mirror image.
    #[arg(long)]
    pub flip: bool,
    /// Images per batch (default: 8 on the CPU, 32 on CUDA; see
    /// `reid_backbone::pipeline::default_batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
}

/// An embedding run: the backbone, the embeddings and the seconds taken.
pub struct Embedded {
    /// The backbone used.
    pub backbone: Backbone,
    /// One L2-normalised row per record.
    pub embeddings: Embeddings,
    /// Wall time of the extraction.
    pub seconds: f64,
}

impl BackboneArgs {
    /// The builder these options describe (to set more, e.g. the input
    /// size, before building).
    pub fn builder(&self) -> anyhow::Result<BackboneBuilder> {
        let mut b = BackboneBuilder::new(&self.backbone)
            .device(parse_device(&self.device)?)
            .precision(Precision::parse(&self.precision)?)
            .pooling(Pooling::parse(&self.pooling)?);
        if let Some(w) = &self.weights {
            b = b.weights_file(w);
        }
        Ok(b)
    }

    /// Builds the backbone these options describe.
    pub fn build(&self) -> anyhow::Result<Backbone> {
        Ok(self.builder()?.build()?)
    }

    /// The batch size asked for, else the device's default
    /// ([`default_batch_size`]).
    pub fn batch_size(&self) -> anyhow::Result<usize> {
        Ok(match self.batch_size {
            Some(b) => b,
            None => default_batch_size(parse_device(&self.device)?),
        })
    }

    /// Extraction parameters (batch size, flip), caching in `cache` if given.
    pub fn extract_params(&self, cache: Option<&Path>) -> anyhow::Result<ValidExtractParams> {
        let mut p = ExtractParams::default()
            .batch_size(self.batch_size()?)
            .flip(self.flip);
        if let Some(c) = cache {
            p = p.cache_dir(c);
        }
        Ok(p.check()?)
    }

    /// Builds the backbone and embeds `records` (cached in `cache` if given)
    /// with a progress bar, hidden when `quiet`.
    pub fn embed(
        &self,
        records: &[Record],
        cache: Option<&Path>,
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

    /// Embeds `records` with `backbone` and these options (cached in `cache`
    /// if given) with a progress bar, hidden when `quiet`; returns the
    /// embeddings and the seconds taken.
    pub fn embed_with(
        &self,
        backbone: &Backbone,
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
    ) -> anyhow::Result<(Embeddings, f64)> {
        let (embeddings, _, seconds) = self.run(backbone, records, cache, quiet, false)?;
        Ok((embeddings, seconds))
    }

    /// [`BackboneArgs::embed`] of a loaded dataset; with `skip_bad`, the
    /// records whose image cannot be read or decoded (a truncated JPEG, say)
    /// are reported on stderr and left out of `ds` instead of stopping the
    /// run, so that `ds` and the embeddings stay row for row.
    pub fn embed_dataset(
        &self,
        ds: &mut Dataset,
        cache: Option<&Path>,
        quiet: bool,
        skip_bad: bool,
    ) -> anyhow::Result<Embedded> {
        let backbone = self.build()?;
        let (embeddings, skipped, seconds) =
            self.run(&backbone, &ds.records, cache, quiet, skip_bad)?;
        for s in &skipped {
            eprintln!("skipped {} (row {}): {}", s.image_id, s.index + 1, s.error);
        }
        if !skipped.is_empty() {
            let mut bad = skipped.iter().map(|s| s.index).peekable();
            let records = std::mem::take(&mut ds.records);
            ds.records = records
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bad.next_if_eq(i).is_none())
                .map(|(_, r)| r)
                .collect();
        }
        Ok(Embedded {
            backbone,
            embeddings,
            seconds,
        })
    }

    /// Embeds `records` with a progress bar; with `skip`, unreadable images
    /// are left out and returned (in record order).
    fn run(
        &self,
        backbone: &Backbone,
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
        skip: bool,
    ) -> anyhow::Result<(Embeddings, Vec<SkippedImage>, f64)> {
        let params = self.extract_params(cache)?;
        let t = Instant::now();
        let pb = bar(records.len(), "embedding", quiet);
        let progress = |p: Progress| pb.set_position(p.done as u64);
        let (embeddings, skipped) = if skip {
            extract_skipping(backbone, records, &params, progress)?
        } else {
            (extract(backbone, records, &params, progress)?, Vec::new())
        };
        pb.finish_and_clear();
        Ok((embeddings, skipped, t.elapsed().as_secs_f64()))
    }
}
