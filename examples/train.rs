//! Fine-tunes a backbone on the database images of a split CSV (AnimalCLEF
//! columns `image_id,identity,path,species,split,dataset`, such as
//! `../shared/datasets/lion/lion.csv`) and writes a checkpoint that the
//! backbone registry loads back (`--weights <out>/backbone.safetensors`),
//! with a JSON log of every epoch.
//!
//! Only the database images are trained on, never the queries. A held-out
//! part of the database (an open-set split by `reid-data`: some identities
//! entirely, as pseudo-new, and `--val-per-identity` images of each other
//! identity that has at least 3) gives the per-epoch self-calibrated
//! open-set score used for early stopping. When the CSV's queries carry
//! their identity, the self-calibrated open-set score of the queries against
//! the whole database is printed before and after training.
//!
//! ```sh
//! cargo run --release --example train -- --backbone efficientnet_lite0 --epochs 8 --out out/train
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;

use animal_reid::data::loaders::{LoadOptions, load_animalclef};
use animal_reid::data::split::SplitParams;
use animal_reid::data::{Dataset, ParamGuard, Record, SplitRole};
use animal_reid::train::loss::{ArcFaceParams, Distance, SubCenterParams, TripletParams};
use animal_reid::train::{
    Freeze, LossParams, Progress, TrainParams, Trainer, ValScore, load_var_store,
};

/// Fine-tune a backbone on the database images of a split CSV.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Split CSV (default: lion.csv in the shared data folder).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Output folder: checkpoint (backbone.safetensors, best.safetensors,
    /// head.safetensors, state.json), log.json and summary.json.
    #[arg(long, default_value = "out/train")]
    out: PathBuf,
    /// Input size in pixels (default: the backbone's own).
    #[arg(long)]
    img_size: Option<i64>,
    /// Epochs in total.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Identities per batch (P).
    #[arg(long, default_value_t = 8)]
    p: usize,
    /// Images per identity per batch (K).
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Cap on batches per epoch (default: a full pass over the identities).
    #[arg(long)]
    batches_per_epoch: Option<usize>,
    /// Peak learning rate of the head and the loss weights.
    #[arg(long, default_value_t = 1e-3)]
    lr_head: f64,
    /// Peak learning rate of the backbone.
    #[arg(long, default_value_t = 1e-4)]
    lr_backbone: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Linear warm-up in epochs, then cosine decay.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Clip the global gradient norm (0: no clipping).
    #[arg(long, default_value_t = 5.0)]
    clip_norm: f64,
    /// Frozen backbone parts: `none`, `backbone`, or comma-separated
    /// variable-name prefixes (e.g. `_conv_stem.,_bn0.,_blocks.0.,_blocks.1.`).
    #[arg(long, default_value = "none")]
    freeze: Freeze,
    /// Projection head to this embedding size (default: none, the loss acts
    /// on the pooled backbone features and the checkpoint is the whole model).
    #[arg(long)]
    embedding_dim: Option<i64>,
    /// Batch norm after the projection head.
    #[arg(long)]
    head_bn: bool,
    /// Loss: `arcface`, `subcenter`, `triplet` or `softmax`.
    #[arg(long, default_value = "arcface")]
    loss: String,
    /// ArcFace angular margin in radians; triplet margin for `triplet`.
    #[arg(long, default_value_t = 0.3)]
    margin: f64,
    /// ArcFace logit scale.
    #[arg(long, default_value_t = 30.0)]
    scale: f64,
    /// insightface's easy margin (margin only where cos > 0).
    #[arg(long)]
    easy_margin: bool,
    /// Centres per class of sub-center ArcFace.
    #[arg(long, default_value_t = 3)]
    subcenters: i64,
    /// Triplet distance: `euclidean` or `cosine`.
    #[arg(long, default_value = "euclidean")]
    triplet_distance: Distance,
    /// CUDA autocast (refused on the CPU).
    #[arg(long)]
    autocast: bool,
    /// No training augmentations.
    #[arg(long)]
    no_augment: bool,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Early stopping: epochs without a better validation score.
    #[arg(long)]
    patience: Option<usize>,
    /// Fraction of database identities held out entirely (pseudo-new) for validation.
    #[arg(long, default_value_t = 0.1)]
    val_new_fraction: f64,
    /// Images of each other identity (with at least 3) held out for validation.
    #[arg(long, default_value_t = 1)]
    val_per_identity: usize,
    /// Run at most this many epochs now (resume later from the checkpoint).
    #[arg(long)]
    max_epochs_this_run: Option<usize>,
    /// Start afresh even if `--out` holds a checkpoint.
    #[arg(long)]
    fresh: bool,
    /// No before/after score on the queries.
    #[arg(long)]
    no_query_score: bool,
    /// libtorch CPU threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    model: reid_examples::BackboneArgs,
}

fn loss_params(a: &Args) -> Result<LossParams> {
    let arc = ArcFaceParams::default()
        .margin(a.margin)
        .scale(a.scale)
        .easy_margin(a.easy_margin);
    Ok(match a.loss.as_str() {
        "arcface" => LossParams::ArcFace(arc),
        "subcenter" => {
            LossParams::SubCenter(SubCenterParams::default().arcface(arc).k(a.subcenters))
        }
        "triplet" => LossParams::Triplet(
            TripletParams::default()
                .margin(a.margin)
                .distance(a.triplet_distance),
        ),
        "softmax" => LossParams::Softmax,
        other => bail!("--loss {other}: use arcface, subcenter, triplet or softmax"),
    })
}

/// Database split into training records and held-out validation queries:
/// an open-set split (identities keyed by dataset and name) with
/// `new_fraction` of the identities held out entirely as pseudo-new and
/// `per_id` images of each other identity held out, at least two kept for
/// training (so identities with fewer than 3 images stay whole).
fn holdout(
    db: &[Record],
    new_fraction: f64,
    per_id: usize,
    seed: u64,
) -> Result<(Vec<Record>, Vec<Record>)> {
    let (train, valid) = (SplitRole::parse("train"), SplitRole::parse("valid"));
    let split = SplitParams::open_set()
        .new_identity_fraction(new_fraction)
        .query_per_identity(per_id)
        .min_database_per_identity(2)
        .database_role(train.clone())
        .query_role(valid.clone())
        .seed(seed)
        .check()?
        .split(&Dataset::new(PathBuf::new(), db.to_vec()))?;
    Ok((
        split.by_split(&train).records,
        split.by_split(&valid).records,
    ))
}

fn show(v: &ValScore) -> String {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
    format!(
        "BAKS {} BAUS {} score {:.3} (top-1 {:.3}, threshold {:.2})",
        f(v.baks),
        f(v.baus),
        v.score,
        v.top1,
        v.threshold
    )
}

fn main() -> Result<()> {
    let a = Args::parse();
    reid_examples::prepare_out_dir("--out", &a.out)?;
    if let Some(t) = a.threads {
        tch::set_num_threads(t);
    }
    let csv = a
        .csv
        .clone()
        .unwrap_or_else(|| reid_examples::shared_dir().join("datasets/lion/lion.csv"));
    let (ds, _) = load_animalclef(&csv, &LoadOptions::default())
        .with_context(|| format!("loading {}", csv.display()))?;
    let role = |r: SplitRole| -> Vec<Record> {
        ds.records
            .iter()
            .filter(|x| x.split.as_ref() == Some(&r))
            .cloned()
            .collect()
    };
    let database = role(SplitRole::Database);
    let queries = role(SplitRole::Query);
    if database.is_empty() {
        bail!(
            "{}: no database records (split column `database`)",
            csv.display()
        );
    }
    let (train, val) = holdout(&database, a.val_new_fraction, a.val_per_identity, a.seed)?;
    eprintln!(
        "{}: {} database images ({} for training, {} held out for validation), {} queries",
        csv.display(),
        database.len(),
        train.len(),
        val.len(),
        queries.len()
    );

    let m = &a.model;
    let mut b = m.builder()?;
    if let Some(s) = a.img_size {
        b = b.img_size(s);
    }
    let backbone = b.build()?;
    let cfg = TrainParams::default()
        .epochs(a.epochs)
        .p(a.p)
        .k(a.k)
        .batches_per_epoch(a.batches_per_epoch)
        .lr_head(a.lr_head)
        .lr_backbone(a.lr_backbone)
        .weight_decay(a.weight_decay)
        .warmup_epochs(a.warmup)
        .clip_norm((a.clip_norm > 0.0).then_some(a.clip_norm))
        .freeze(a.freeze.clone())
        .embedding_dim(a.embedding_dim)
        .head_bn(a.head_bn)
        .loss(loss_params(&a)?)
        .autocast(a.autocast)
        .augment(!a.no_augment)
        .seed(a.seed)
        .patience(a.patience)
        .checkpoint_dir(a.out.clone())
        .resume(!a.fresh)
        .max_epochs_this_run(a.max_epochs_this_run)
        .eval_batch(m.batch_size()?)
        .check()?;
    if a.fresh && a.out.join("state.json").exists() {
        std::fs::remove_file(a.out.join("state.json"))?;
    }
    let mut trainer = Trainer::new(&backbone, &train, cfg)?;
    let scored =
        !a.no_query_score && !queries.is_empty() && queries.iter().all(|q| q.identity.is_some());
    let before = if scored {
        let v = trainer.evaluate(&backbone, &database, &queries)?;
        println!("before: {}", show(&v));
        Some(v)
    } else {
        None
    };

    let t0 = Instant::now();
    let mut pb: Option<indicatif::ProgressBar> = None;
    let quiet = a.quiet;
    let report = trainer.fit(
        &backbone,
        &train,
        (!val.is_empty()).then_some(val.as_slice()),
        &mut |p| match p {
            Progress::Loaded { images } => {
                if !quiet {
                    eprintln!("{images} images decoded");
                }
            }
            Progress::Step {
                epoch,
                epochs,
                step,
                steps,
                loss,
                lr,
            } => {
                let bar = pb.get_or_insert_with(|| {
                    reid_examples::bar(*steps, &format!("epoch {}/{epochs}", epoch + 1), quiet)
                });
                bar.set_message(format!(
                    "e{}/{epochs} loss {loss:.3} lr {lr:.1e}",
                    epoch + 1
                ));
                bar.set_position((*step + 1) as u64);
            }
            Progress::Epoch(e) => {
                if let Some(bar) = pb.take() {
                    bar.finish_and_clear();
                }
                let v = e
                    .val
                    .as_ref()
                    .map_or(String::new(), |v| format!("; val {}", show(v)));
                eprintln!(
                    "epoch {:>3}: loss {:.4}, lr {:.2e}/{:.2e}, {:.1} s{v}",
                    e.epoch + 1,
                    e.loss,
                    e.lr_head,
                    e.lr_backbone,
                    e.seconds
                );
            }
        },
    )?;
    let train_s = t0.elapsed().as_secs_f64();
    let st = &report.state;
    eprintln!(
        "trained epochs {}..{} of {} in {train_s:.1} s{}; checkpoint {}",
        report.started_at,
        st.epochs_done,
        a.epochs,
        if st.stopped_early {
            " (early stop)"
        } else {
            ""
        },
        a.out.join("backbone.safetensors").display()
    );
    let after = if scored {
        let v = trainer.evaluate(&backbone, &database, &queries)?;
        println!("after (last epoch {}):  {}", st.epochs_done, show(&v));
        Some(v)
    } else {
        None
    };
    // The weights of the best validation epoch (what early stopping keeps).
    let best_path = a.out.join("best.safetensors");
    let after_best = match st.best {
        Some((_, epoch)) if scored && epoch + 1 != st.epochs_done && best_path.is_file() => {
            load_var_store(backbone.var_store(), &best_path)?;
            let v = trainer.evaluate(&backbone, &database, &queries)?;
            println!("after (best validation epoch {}):  {}", epoch + 1, show(&v));
            Some(v)
        }
        _ => None,
    };
    let summary = serde_json::json!({
        "csv": csv,
        "backbone": backbone.info().name,
        "input_size": backbone.info().input_size,
        "train_images": train.len(),
        "val_images": val.len(),
        "epochs_done": st.epochs_done,
        "best": st.best,
        "stopped_early": st.stopped_early,
        "train_seconds_this_run": train_s,
        "before": before,
        "after": after,
        "after_best": after_best,
        "log": st.log,
    });
    let path = a.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
