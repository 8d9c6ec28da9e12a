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
    /// Backbone, by registry name (or an ensemble of several joined by `+`,
    /// e.g. `mobilenet_v2+efficientnet_lite0`: each one's unit embedding
    /// concatenated, the cosine the mean of theirs): mobilenet_v2, efficientnet_lite0/1/2,
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
    /// Pooling: default, avg, gem, gem:P, cls, cls+mean, grid:N (the last
    /// feature map averaged over an N × N grid) or grid:N@T (that of block
    /// T, counted from 0: MobileNetV2's features.T, EfficientNet-Lite's
    /// _blocks.T, ConvNeXt's stages.T, EfficientNetV2's T-th block).
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

/// An embedding run: the backbones, the embeddings and the seconds taken.
pub struct Embedded {
    /// The backbones used: one, or the parts of an ensemble (`--backbone
    /// a+b`) whose unit embeddings were concatenated
    /// ([`reid_backbone::pipeline::concat_embeddings`]).
    pub backbones: Vec<Backbone>,
    /// One L2-normalised row per record.
    pub embeddings: Embeddings,
    /// Wall time of the extraction.
    pub seconds: f64,
    /// The extraction's last progress report: where its time went (cache,
    /// waiting for the decoder, the network); `None` for no records.
    pub last: Option<Progress>,
}

impl Embedded {
    /// The backbones' names, joined by `+`.
    pub fn name(&self) -> String {
        self.backbones
            .iter()
            .map(|b| b.info().name.clone())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The model id of the embeddings: each backbone's `name@input_size`,
    /// joined by `+`.
    pub fn model_id(&self) -> String {
        self.backbones
            .iter()
            .map(|b| format!("{}@{}", b.info().name, b.info().input_size))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// `mobilenet_v2 @224 (1280-d)`, or each part's name and size joined by
    /// ` + ` and the ensemble's dimension.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .backbones
            .iter()
            .map(|b| format!("{} @{}", b.info().name, b.info().input_size))
            .collect();
        format!(
            "{} ({}-d)",
            parts.join(" + "),
            self.embeddings.matrix.ncols()
        )
    }
}

impl BackboneArgs {
    /// The backbone names asked for: one, or the parts of an ensemble
    /// (`--backbone mobilenet_v2+efficientnet_lite0`).
    pub fn names(&self) -> Vec<&str> {
        self.backbone.split('+').map(str::trim).collect()
    }

    /// The builder these options describe (to set more, e.g. the input
    /// size, before building).
    pub fn builder(&self) -> anyhow::Result<BackboneBuilder> {
        let names = self.names();
        let [name] = names.as_slice() else {
            anyhow::bail!(
                "--backbone {}: an ensemble is not taken here, give one backbone",
                self.backbone
            );
        };
        self.builder_of(name)
    }

    /// The builder of backbone `name` with the other options.
    pub(crate) fn builder_of(&self, name: &str) -> anyhow::Result<BackboneBuilder> {
        let mut b = BackboneBuilder::new(name)
            .device(parse_device(&self.device)?)
            .precision(Precision::parse(&self.precision)?)
            .pooling(Pooling::parse(&self.pooling)?);
        if let Some(w) = &self.weights {
            b = b.weights_file(w);
        }
        Ok(b)
    }

    /// Builds the backbone these options describe (one, not an ensemble).
    pub fn build(&self) -> anyhow::Result<Backbone> {
        Ok(self.builder()?.build()?)
    }

    /// Builds every backbone of `--backbone` (one, or each part of an
    /// ensemble; `--weights` only with one).
    pub fn build_all(&self) -> anyhow::Result<Vec<Backbone>> {
        let names = self.names();
        if names.len() > 1 && self.weights.is_some() {
            anyhow::bail!(
                "--weights goes with one backbone, not the ensemble {}",
                self.backbone
            );
        }
        if names.iter().any(|n| n.is_empty()) {
            anyhow::bail!("--backbone {}: an empty name", self.backbone);
        }
        names
            .iter()
            .map(|n| Ok(self.builder_of(n)?.build()?))
            .collect()
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
        let backbones = self.build_all()?;
        let (embeddings, _, seconds, last) =
            self.run_all(&backbones, records, cache, quiet, false)?;
        Ok(Embedded {
            backbones,
            embeddings,
            seconds,
            last,
        })
    }

    /// Embeds `records` with `backbone` and these options (cached in `cache`
    /// if given) with a progress bar, hidden when `quiet`; returns the
    /// embeddings, the seconds taken and the last progress report (where
    /// the time went; `None` for no records).
    pub fn embed_with(
        &self,
        backbone: &Backbone,
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
    ) -> anyhow::Result<(Embeddings, f64, Option<Progress>)> {
        let (embeddings, _, seconds, last) = self.run(backbone, records, cache, quiet, false)?;
        Ok((embeddings, seconds, last))
    }

    /// The grid descriptors ([`Pooling::default_grid`]: the feature map of
    /// `backbone`'s last stride-16 block averaged over a 4 × 4 grid) of
    /// `records`, with these options and `cache`, and their name
    /// (`mobilenet_v2:grid4@features.13`); `None` when the backbone has no
    /// such block (transformers, TorchScript).
    pub fn grid_embeddings(
        &self,
        backbone: &Backbone,
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
    ) -> anyhow::Result<Option<(String, Embeddings)>> {
        let Some((pooling, levels, taps, t)) = default_grid_of(backbone) else {
            return Ok(None);
        };
        let name = &backbone.info().name;
        let grid = self.builder_of(name)?.pooling(pooling).build()?;
        let (embeddings, _, seconds, _) = self.run(&grid, records, cache, quiet, false)?;
        let sides: Vec<String> = levels
            .cells()
            .iter()
            .map(|n| format!("{n} × {n}"))
            .collect();
        println!(
            "grid descriptors ({} of {}, {}-d) of {} images in {seconds:.1} s",
            sides.join(" and "),
            taps[t].name,
            grid.info().dim,
            records.len()
        );
        Ok(Some((
            format!("{name}:grid{}@{}", levels.name(), taps[t].name),
            embeddings,
        )))
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
        let backbones = self.build_all()?;
        let (embeddings, skipped, seconds, last) =
            self.run_all(&backbones, &ds.records, cache, quiet, skip_bad)?;
        for s in &skipped {
            eprintln!("skipped {} (row {}): {}", s.image_id, s.index + 1, s.error);
        }
        if !skipped.is_empty() {
            ds.records = without_skipped(&ds.records, &skipped);
        }
        Ok(Embedded {
            backbones,
            embeddings,
            seconds,
            last,
        })
    }

    /// [`BackboneArgs::run`] with each backbone, the parts concatenated
    /// into one ensemble embedding (the records the first left out are left
    /// out of the others); the progress reports' times are summed.
    fn run_all(
        &self,
        backbones: &[Backbone],
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
        skip: bool,
    ) -> anyhow::Result<(Embeddings, Vec<SkippedImage>, f64, Option<Progress>)> {
        let Some((first, rest)) = backbones.split_first() else {
            anyhow::bail!("--backbone: no backbone given");
        };
        let (emb, skipped, mut seconds, mut last) = self.run(first, records, cache, quiet, skip)?;
        if rest.is_empty() {
            return Ok((emb, skipped, seconds, last));
        }
        let kept = without_skipped(records, &skipped);
        let mut parts = vec![emb];
        for bb in rest {
            let (e, _, s, p) = self.run(bb, &kept, cache, quiet, false)?;
            parts.push(e);
            seconds += s;
            last = match (last, p) {
                (Some(a), Some(b)) => Some(Progress {
                    cached: a.cached + b.cached,
                    damaged: a.damaged + b.damaged,
                    cache_time: a.cache_time + b.cache_time,
                    decode_wait: a.decode_wait + b.decode_wait,
                    network: a.network + b.network,
                    ..b
                }),
                (a, b) => a.or(b),
            };
        }
        let embeddings = reid_backbone::pipeline::concat_embeddings(&parts)?;
        Ok((embeddings, skipped, seconds, last))
    }

    /// Embeds `records` with a progress bar; with `skip`, unreadable images
    /// are left out and returned (in record order).
    pub(crate) fn run(
        &self,
        backbone: &Backbone,
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
        skip: bool,
    ) -> anyhow::Result<(Embeddings, Vec<SkippedImage>, f64, Option<Progress>)> {
        let params = self.extract_params(cache)?;
        let t = Instant::now();
        let pb = bar(records.len(), "embedding", quiet);
        let mut last = None;
        let progress = |p: Progress| {
            pb.set_position(p.done as u64);
            last = Some(p);
        };
        let (embeddings, skipped) = if skip {
            extract_skipping(backbone, records, &params, progress)?
        } else {
            (extract(backbone, records, &params, progress)?, Vec::new())
        };
        pb.finish_and_clear();
        Ok((embeddings, skipped, t.elapsed().as_secs_f64(), last))
    }
}

/// `records` without those `skipped` names (in record order, as
/// [`extract_skipping`] returns them).
fn without_skipped(records: &[Record], skipped: &[SkippedImage]) -> Vec<Record> {
    let mut bad = skipped.iter().map(|s| s.index).peekable();
    records
        .iter()
        .enumerate()
        .filter(|(i, _)| bad.next_if_eq(i).is_none())
        .map(|(_, r)| r.clone())
        .collect()
}

/// `backbone`'s default grid pooling ([`Pooling::default_grid`]: a 4 × 4
/// grid of its last stride-16 block), with its levels, the network's taps
/// and that block's index among them; `None` for a network without one
/// (transformers, TorchScript).
pub(crate) fn default_grid_of(
    backbone: &Backbone,
) -> Option<(
    Pooling,
    reid_backbone::pool::GridLevels,
    &[reid_backbone::arch::Tap],
    usize,
)> {
    let taps = backbone.network()?.taps();
    match Pooling::default_grid(taps)? {
        pooling @ Pooling::Grid {
            levels,
            tap: Some(t),
        } if t < taps.len() => Some((pooling, levels, taps, t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::BackboneArgs;

    #[derive(Parser)]
    struct A {
        #[command(flatten)]
        model: BackboneArgs,
    }

    fn parse(args: &[&str]) -> BackboneArgs {
        A::parse_from(std::iter::once("prog").chain(args.iter().copied())).model
    }

    /// `--backbone a+b` names an ensemble; what cannot be one is refused
    /// before any weights are read.
    #[test]
    fn ensembles_are_named_with_plus() {
        let one = parse(&["--backbone", "mobilenet_v2"]);
        assert_eq!(one.names(), ["mobilenet_v2"]);
        let two = parse(&["--backbone", "mobilenet_v2 + efficientnet_lite0"]);
        assert_eq!(two.names(), ["mobilenet_v2", "efficientnet_lite0"]);
        let e = two.builder().unwrap_err().to_string();
        assert!(e.contains("an ensemble is not taken here"), "{e}");
        let weighted = parse(&["--backbone", "a+b", "--weights", "w.safetensors"]);
        let e = weighted.build_all().unwrap_err().to_string();
        assert!(e.contains("--weights goes with one backbone"), "{e}");
        let e = parse(&["--backbone", "a++b"])
            .build_all()
            .unwrap_err()
            .to_string();
        assert!(e.contains("an empty name"), "{e}");
    }
}
