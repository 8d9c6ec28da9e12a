//! `--tune`: the blocks that make a CNN's grid descriptors, fine-tuned on
//! the database, with some of its photos held out so that the
//! self-calibration episodes still score photos the network never saw.

use std::path::Path;
use std::time::Instant;

use reid_backbone::backbone::Backbone;
use reid_backbone::pipeline::Embeddings;
use reid_core::{Record, SplitRole};
use reid_openset::{Encounters, HeldOut, held_out_split};
use reid_train::loss::ArcFaceParams;
use reid_train::{Freeze, LossParams, ParamGuard, Progress, TrainParams, Trainer};

use reid_pipeline::ValidOpenSetParams;

use crate::backbone::{BackboneArgs, Embedded};

/// Blocks fine-tuned: the last ones up to the grid's tap (MobileNetV2's
/// `features.11` to `.13`, EfficientNet-Lite2's `_blocks.12` to `.14`).
pub const TUNED_BLOCKS: usize = 3;

/// Share of the identities kept wholly out of fine-tuning (they stand for
/// new individuals in the episodes: [`held_out_split`]).
pub const HELD_OUT_IDENTITIES: f64 = 0.2;

/// Share of every other identity's photos kept out of fine-tuning, in
/// whole encounters (they are the episodes' known pseudo-queries).
pub const HELD_OUT_PHOTOS: f64 = 0.15;

/// Times each photo kept for fine-tuning is seen, on average: the P × K
/// sampler's epoch shows every identity once, so the trainer runs as many
/// of its epochs as this takes.
pub const PASSES: usize = 15;

/// The fine-tuning recipe, chosen on cattle's database alone (four fifths
/// of its videos trained, the other fifth searched; MobileNetV2
/// `features.11`–`.13` on the 4 × 4 grid of `features.13`): nearest photo of
/// the right cow in unseen videos after within-identity whitening 0.65 with
/// ImageNet weights, 0.69 after 9 epochs at 1e-4, 0.76 at 1e-3 and 0.77 at
/// 3e-3, each over 15 passes, a tenth of them warm-up. ArcFace (margin 0.3, scale 30) on the grid
/// descriptor itself, batch norm frozen, random crops of 70–100 % of the
/// image, colour jitter, no flip (a face's patch layout is not symmetric).
pub fn tune_params() -> TrainParams {
    TrainParams::default()
        .p(16)
        .k(4)
        .lr_backbone(3e-3)
        .lr_head(3e-2)
        .weight_decay(1e-4)
        .loss(LossParams::ArcFace(
            ArcFaceParams::default().margin(0.3).scale(30.0),
        ))
        .crop_scale((0.7, 1.0))
        .flip(0.0)
        .frozen_batch_norm(true)
        .resume(false)
}

/// Grid descriptors of a fine-tuned network, and what was held out.
pub struct Tuned {
    /// `mobilenet_v2:grid4@features.13:tuned`.
    pub name: String,
    /// One row per record (database and queries).
    pub embeddings: Embeddings,
    /// The database photos left out of fine-tuning.
    pub held_out: HeldOut,
    /// Seconds: fine-tuning and embedding.
    pub seconds: f64,
}

/// Why `--tune auto` leaves this database alone (`None`: it tunes): it
/// needs encounters (a `video` or `encounter` column on every database
/// photo) and at least half of the identities seen in two or more, since
/// what fine-tuning learns is what stays the same across encounters.
pub fn auto_refusal(database: &[&Record]) -> Option<String> {
    let owned: Vec<Record> = database.iter().map(|r| (*r).clone()).collect();
    let Some(e) = Encounters::Auto.resolve(&owned) else {
        return Some("the database has no video or encounter column".into());
    };
    let mut by_id: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for r in &owned {
        by_id
            .entry(label(r))
            .or_default()
            .insert(e.key(r).unwrap_or_default());
    }
    let several = by_id.values().filter(|v| v.len() >= 2).count();
    (2 * several < by_id.len()).then(|| {
        format!(
            "{several} of {} identities have two or more encounters (by `{e}`); fine-tuning \
             needs half",
            by_id.len()
        )
    })
}

fn label(r: &Record) -> String {
    format!(
        "{}/{}",
        r.dataset.as_deref().unwrap_or(""),
        r.identity.as_deref().unwrap_or("")
    )
}

/// Fine-tunes the [`TUNED_BLOCKS`] blocks up to `backbone`'s grid tap (a
/// fresh copy of it, built from `model`'s options) on the database photos
/// of `records` minus a held-out share ([`HELD_OUT_IDENTITIES`],
/// [`HELD_OUT_PHOTOS`], by encounter when the database has them), with
/// `params` ([`PASSES`] over the photos kept unless `passes` says), then embeds every
/// record with it on the 4 × 4 grid. With `cache`, the tuned weights are
/// kept in `<cache>/tuned/<key>.safetensors` (written atomically; the key
/// hashes the backbone, the photos trained on and the settings) and read
/// back by the next run with the same key instead of training again; the
/// embeddings themselves are not cached. `Ok(None)` when the backbone has
/// no grid tap.
pub fn tuned_grid(
    model: &BackboneArgs,
    backbone: &Backbone,
    records: &[Record],
    params: TrainParams,
    passes: usize,
    cache: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<Option<Tuned>> {
    let Some((pooling, levels, taps, t)) = crate::backbone::default_grid_of(backbone) else {
        return Ok(None);
    };
    let t0 = Instant::now();
    let database: Vec<&Record> = records
        .iter()
        .filter(|r| r.split == Some(SplitRole::Database))
        .collect();
    if let Some(r) = database.iter().find(|r| r.identity.is_none()) {
        anyhow::bail!("--tune: database photo {} has no identity", r.image_id);
    }
    let owned: Vec<Record> = database.iter().map(|r| (*r).clone()).collect();
    let keys: Vec<Option<String>> = match Encounters::Auto.resolve(&owned) {
        Some(e) => owned.iter().map(|r| e.key(r)).collect(),
        None => vec![None; owned.len()],
    };
    let labels: Vec<String> = owned.iter().map(label).collect();
    let held = held_out_split(
        &labels,
        &keys,
        HELD_OUT_IDENTITIES,
        HELD_OUT_PHOTOS,
        params.seed,
    )?;
    let fit: Vec<Record> = owned
        .iter()
        .zip(&held)
        .filter(|(_, h)| !**h)
        .map(|(r, _)| r.clone())
        .collect();
    let held_out = HeldOut::new(
        owned
            .iter()
            .zip(&held)
            .filter(|(_, h)| **h)
            .map(|(r, _)| r.image_id.clone()),
    );

    let name = &backbone.info().name;
    let tuned = model.builder_of(name)?.pooling(pooling).build()?;
    let first = t.saturating_sub(TUNED_BLOCKS - 1);
    let trained: Vec<String> = taps[first..=t]
        .iter()
        .map(|tap| format!("{}.", tap.name))
        .collect();
    let frozen: Vec<String> = tuned
        .var_store()
        .variables()
        .into_keys()
        .filter(|k| !trained.iter().any(|p| k.starts_with(p.as_str())))
        .collect();
    // The sampler's epoch: every identity once, K photos each.
    let ids = fit
        .iter()
        .map(label)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if ids < 2 {
        anyhow::bail!(
            "--tune: {ids} identity left to train on after holding out a share; it needs two"
        );
    }
    let p = params.p.min(ids);
    let per_epoch = ids.div_ceil(p) * p * params.k;
    let epochs = (passes * fit.len()).div_ceil(per_epoch.max(1)).max(1);
    let warmup = epochs as f64 / 10.0;
    let params = params
        .p(p)
        .epochs(epochs)
        .warmup_epochs(warmup)
        .freeze(Freeze::Prefixes(frozen))
        .check()?;
    println!(
        "fine-tuning {} of {name} on {} of {} database photos, {epochs} epochs of {per_epoch} \
         photos; the episodes draw their pseudo-queries among the {} held out",
        trained
            .iter()
            .map(|p| p.trim_end_matches('.'))
            .collect::<Vec<_>>()
            .join(", "),
        fit.len(),
        owned.len(),
        held_out.len()
    );
    let key = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(format!(
            "tuned v1\n{}\n",
            serde_json::to_string(backbone.info())?
        ));
        for r in &fit {
            h.update(format!(
                "{}\t{}\t{}\n",
                r.image_id,
                r.path.display(),
                label(r)
            ));
        }
        h.update(format!("{:?}", params.params()));
        hex::encode(h.finalize())
    };
    let stored = cache.map(|c| c.join("tuned").join(format!("{key}.safetensors")));
    if let Some(path) = stored.as_deref().filter(|p| p.exists()) {
        reid_train::load_var_store(tuned.var_store(), path)?;
        println!("  tuned weights read from {}", path.display());
    } else {
        train(&tuned, &fit, params, epochs, quiet)?;
        if let Some(path) = stored.as_deref() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            reid_train::train::save_var_store(tuned.var_store(), path)?;
        }
    }
    let (embeddings, _, _, _) = model.run(&tuned, records, None, quiet, false)?;
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "fine-tuned and embedded {} images in {seconds:.1} s",
        records.len()
    );
    Ok(Some(Tuned {
        name: format!("{name}:grid{}@{}:tuned", levels.name(), taps[t].name),
        embeddings,
        held_out,
        seconds,
    }))
}

/// Runs the trainer over `fit`, printing every tenth epoch and the last
/// (every one unless `quiet`).
fn train(
    tuned: &Backbone,
    fit: &[Record],
    params: reid_train::ValidTrainParams,
    epochs: usize,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut trainer = Trainer::new(tuned, fit, params)?;
    trainer.fit(tuned, fit, None, &mut |p: &Progress<'_>| {
        if let Progress::Epoch(log) = p
            && (!quiet || (log.epoch + 1) % 10 == 0 || log.epoch + 1 == epochs)
        {
            println!(
                "  epoch {}/{epochs}: loss {:.3} ({:.1} s)",
                log.epoch + 1,
                log.loss,
                log.seconds
            );
        }
    })?;
    Ok(())
}

impl Tuned {
    /// Adds these descriptors to `bases` (as one more set to choose among)
    /// and returns `params` with episodes that draw their pseudo-queries
    /// among the held-out photos, in whole encounters (the database's
    /// `video` or `encounter` column unless the params name another), so
    /// that every set is scored on photos the network never saw.
    pub fn offer(
        self,
        bases: &mut Vec<(String, Embeddings)>,
        params: &ValidOpenSetParams,
    ) -> anyhow::Result<ValidOpenSetParams> {
        bases.push((self.name, self.embeddings));
        Ok(params.with_held_out(Some(self.held_out), Some(Encounters::Auto))?)
    }
}

/// `--tune` (`tune`: `auto`, `on` or `off`; `grid`: `--grid`): the
/// fine-tuned grid descriptors of `run`'s backbone ([`tuned_grid`] with
/// [`tune_params`] and [`PASSES`], its weights kept in `cache`), when asked for (`on`) or when the
/// database suits (`auto`, [`auto_refusal`]; else it says why not). `on`
/// where they cannot be made (an ensemble, no stride-16 block, `--grid
/// off`) is an error.
pub fn tuned_base(
    tune: &str,
    grid: &str,
    model: &BackboneArgs,
    run: &Embedded,
    records: &[Record],
    cache: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<Option<Tuned>> {
    let on = match tune {
        "off" => return Ok(None),
        "on" => true,
        "auto" => false,
        other => anyhow::bail!("--tune {other}: use auto, on or off"),
    };
    let refuse = |why: String| -> anyhow::Result<Option<Tuned>> {
        if on {
            anyhow::bail!("--tune on: {why}");
        }
        println!("not fine-tuning (--tune auto): {why}");
        Ok(None)
    };
    let [backbone] = run.backbones.as_slice() else {
        return refuse(format!("{} is an ensemble; tune one backbone", run.name()));
    };
    if grid == "off" {
        return refuse("it tunes the grid descriptors, and --grid is off".into());
    }
    if !on {
        let database: Vec<&Record> = records
            .iter()
            .filter(|r| r.split == Some(SplitRole::Database))
            .collect();
        if let Some(why) = auto_refusal(&database) {
            return refuse(why);
        }
    }
    match tuned_grid(
        model,
        backbone,
        records,
        tune_params(),
        PASSES,
        cache,
        quiet,
    )? {
        Some(t) => Ok(Some(t)),
        None => refuse(format!("{} has no block at stride 16", run.name())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    /// Three identities in the database with two videos of two photos
    /// each; a fourth's one video of two photos are the queries.
    fn records(dir: &std::path::Path, video: bool) -> Vec<Record> {
        let mut out = Vec::new();
        for k in 0..4u32 {
            for v in 0..(if k == 3 { 1 } else { 2 }) {
                for i in 0..2u32 {
                    let n = out.len();
                    let path = dir.join(format!("{n}.png"));
                    image::RgbImage::from_fn(48, 48, |x, y| {
                        let on = ((x / (4 + k)) + (y / (3 + k)) + i) % 2 == 0;
                        image::Rgb(if on {
                            [200, 40 * k as u8, 30]
                        } else {
                            [20, 90, 160]
                        })
                    })
                    .save(&path)
                    .unwrap();
                    let mut r = Record::new(n.to_string(), path);
                    r.identity = Some(format!("cow{k}"));
                    r.split = Some(if n >= 12 {
                        SplitRole::Query
                    } else {
                        SplitRole::Database
                    });
                    if video {
                        r.attributes.insert("video".into(), format!("cow{k}-{v}"));
                    }
                    out.push(r);
                }
            }
        }
        out
    }

    #[derive(clap::Parser)]
    struct M {
        #[command(flatten)]
        model: BackboneArgs,
    }

    /// `auto` tunes a database with videos, half its identities in two or
    /// more; not one without videos, nor one whose identities have one each.
    #[test]
    fn auto_needs_encounters() {
        let dir = tempfile::tempdir().unwrap();
        let with = records(dir.path(), true);
        let db = |rs: &[Record]| -> Vec<Record> {
            rs.iter()
                .filter(|r| r.split == Some(SplitRole::Database))
                .cloned()
                .collect()
        };
        let refs = |rs: &[Record]| -> Option<String> {
            let d = db(rs);
            auto_refusal(&d.iter().collect::<Vec<_>>())
        };
        assert_eq!(refs(&with), None);
        let without = records(dir.path(), false);
        assert!(refs(&without).unwrap().contains("no video"));
        let mut one_each = with.clone();
        for r in &mut one_each {
            let id = r.identity.clone().unwrap();
            r.attributes.insert("video".into(), id);
        }
        let why = refs(&one_each).unwrap();
        assert!(why.contains("0 of 3 identities"), "{why}");
    }

    /// `--tune`: `off` makes nothing; `auto` says why not without
    /// encounters; `on` with `--grid off` or an ensemble is an error; a
    /// misspelt value too.
    #[test]
    fn flag_values() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(dir.path(), false);
        let model = M::try_parse_from(["prog", "--backbone", "mobilenet_v2"])
            .unwrap()
            .model;
        let run = |copies: usize| Embedded {
            backbones: (0..copies).map(|_| model.build().unwrap()).collect(),
            embeddings: Embeddings {
                ids: Vec::new(),
                matrix: ndarray::Array2::zeros((0, 2)),
            },
            seconds: 0.0,
            last: None,
        };
        let go = |tune: &str, grid: &str, copies: usize| {
            tuned_base(tune, grid, &model, &run(copies), &recs, None, true)
        };
        assert!(go("off", "auto", 1).unwrap().is_none());
        assert!(go("auto", "auto", 1).unwrap().is_none());
        let e = go("on", "off", 1).err().unwrap().to_string();
        assert!(
            e.contains("--tune on") && e.contains("--grid is off"),
            "{e}"
        );
        let e = go("on", "auto", 2).err().unwrap().to_string();
        assert!(e.contains("ensemble"), "{e}");
        let e = go("maybe", "auto", 1).err().unwrap().to_string();
        assert!(e.contains("--tune maybe"), "{e}");
    }

    /// Real MobileNetV2: one pass trains `features.11`–`.13`; the tuned
    /// grid descriptors are 1536-d, unit length, named so, and differ from
    /// the ImageNet network's; the held-out photos are database photos in
    /// whole videos.
    #[test]
    fn tuned_grid_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(dir.path(), true);
        let model = M::try_parse_from(["prog", "--backbone", "mobilenet_v2"])
            .unwrap()
            .model;
        let bb = model.build().unwrap();
        let t = tuned_grid(&model, &bb, &recs, tune_params(), 1, None, true)
            .unwrap()
            .unwrap();
        assert_eq!(t.name, "mobilenet_v2:grid4@features.13:tuned");
        assert_eq!(t.embeddings.matrix.dim(), (recs.len(), 96 * 16));
        for row in t.embeddings.matrix.rows() {
            assert!((row.dot(&row) - 1.0).abs() < 1e-4);
        }
        assert!(!t.held_out.is_empty());
        for (i, r) in recs.iter().enumerate() {
            let held = t.held_out.contains(&r.image_id);
            if r.split == Some(SplitRole::Query) {
                assert!(!held, "query {i} held out");
            }
            // Photos 2j and 2j + 1 share a video.
            let mate = &recs[i ^ 1];
            assert_eq!(
                held,
                t.held_out.contains(&mate.image_id),
                "video of {i} split"
            );
        }
        let (_, plain) = model
            .grid_embeddings(&bb, &recs, None, true)
            .unwrap()
            .unwrap();
        let diff = (&plain.matrix - &t.embeddings.matrix)
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(diff > 1e-3, "tuning changed nothing: {diff}");
    }
}
