//! The commands.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use ndarray::Array2;
use rayon::prelude::*;
use reid_catalogue::catalogue::{Catalogue, ChangeContext};
use reid_catalogue::decisions::{Suggestion, read_decisions, write_decisions};
use reid_catalogue::gallery::{
    QueryPhoto, all_new_items, identification_input, load_gallery, photo_record, review_items,
};
use reid_catalogue::review::{ReviewPage, write_review_page};
use reid_catalogue::store::EngineKind;
use reid_examples::{AdaptArgs, EpisodeArgs};
use reid_pipeline::{OpenSetParams, ParamGuard, identify};

use crate::config::{PipelineArgs, PipelineConfig};
use crate::photos::{self, model_of};
use crate::{Cli, Command, PhotoSource};

/// Options of `enrol`.
#[derive(Debug, clap::Args)]
pub struct EnrolArgs {
    #[command(flatten)]
    photos: PhotoSource,
    /// Keep image embeddings in this folder too (by content and model), so
    /// that another catalogue or a rerun does not embed them again.
    #[arg(long)]
    embedding_cache: Option<PathBuf>,
}

/// Options of `identify`.
#[derive(Debug, clap::Args)]
pub struct IdentifyArgs {
    #[command(flatten)]
    photos: PhotoSource,
    /// Folder for the review page (`review.html`), the decisions CSV
    /// (`decisions.csv`) and a summary (`identify.json`).
    #[arg(long)]
    out: PathBuf,
    /// Keep image embeddings in this folder too (see `enrol`).
    #[arg(long)]
    embedding_cache: Option<PathBuf>,
    /// Folder of the search-index cache (default: `<file>.index` beside a
    /// SQLite catalogue, the animal-reid cache for PostgreSQL).
    #[arg(long)]
    index_cache: Option<PathBuf>,
}

/// Options of `apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The decisions CSV, as `identify` wrote it and a person filled it.
    decisions: PathBuf,
}

/// Options of `undo`.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// The change to undo (see `log`); default: the latest enrol or apply
    /// not yet undone.
    change: Option<i64>,
}

/// Output as JSON.
#[derive(Debug, clap::Args)]
pub struct JsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Folder for `metadata.csv` and `embeddings.gallery`.
    #[arg(long)]
    out: PathBuf,
}

/// Options of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Also read every photo's file and compare its sha256.
    #[arg(long)]
    files: bool,
}

/// Runs the command; returns the exit status.
pub fn run(cli: Cli) -> Result<i32> {
    let location = cli
        .catalogue
        .clone()
        .context("no catalogue: give --catalogue PATH-OR-URL (or set ANIMAL_REID_CATALOGUE)")?;
    let actor = cli
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let mut ctx = ChangeContext::new(actor);
    ctx.reason = cli.reason.clone();
    let quiet = cli.quiet;
    match &cli.command {
        Command::Init(a) => init(&location, a, &ctx),
        Command::Config(a) => config(&location, a, &ctx),
        Command::Enrol(a) => enrol(&location, a, &ctx, quiet),
        Command::Identify(a) => identify_cmd(&location, a, &ctx, quiet),
        Command::Apply(a) => apply(&location, a, &ctx),
        Command::Undo(a) => {
            let mut cat = Catalogue::open(&location)?;
            let id = cat.undo(a.change, &ctx)?;
            let c = cat.changes()?;
            if let Some(u) = c.iter().find(|c| c.id == id) {
                println!("change {id}: {}", u.summary);
            }
            Ok(0)
        }
        Command::Log(a) => log(&location, a),
        Command::Stats(a) => stats(&location, a),
        Command::Export(a) => export(&location, a),
        Command::Check(a) => check(&location, a, quiet),
        Command::Ingest(a) => crate::worker::ingest(&location, a, &ctx),
        Command::Worker(a) => crate::worker::worker(&location, a, &ctx, quiet),
        Command::Status(a) => crate::worker::status(&location, a),
    }
}

fn init(location: &str, a: &PipelineArgs, ctx: &ChangeContext) -> Result<i32> {
    let config = PipelineConfig::default().updated(a)?;
    let mut cat = Catalogue::init(location, ctx)?;
    config.store(&mut cat, ctx)?;
    println!(
        "created catalogue {} ({})\npipeline: {}",
        cat.location(),
        cat.store().kind().name(),
        serde_json::to_string(&config)?
    );
    Ok(0)
}

fn config(location: &str, a: &PipelineArgs, ctx: &ChangeContext) -> Result<i32> {
    let mut cat = Catalogue::open(location)?;
    let old = PipelineConfig::load(&mut cat)?;
    let new = old.updated(a)?;
    if new.store(&mut cat, ctx)? {
        println!("pipeline changed: {}", serde_json::to_string_pretty(&new)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&new)?);
    }
    Ok(0)
}

/// The catalogue's model, recorded as current, with every catalogue photo
/// embedded by it.
struct Ready {
    cat: Catalogue,
    config: PipelineConfig,
    args: reid_examples::BackboneArgs,
    bb: reid_backbone::backbone::Backbone,
    model: reid_catalogue::catalogue::Model,
}

impl Ready {
    /// [`photos::embeddings`] with this catalogue's model.
    fn embed(
        &mut self,
        records: &[reid_core::Record],
        hashes: &[String],
        cache: Option<&Path>,
        quiet: bool,
        store: bool,
    ) -> Result<Vec<Vec<f32>>> {
        photos::embeddings(
            &mut self.cat,
            &self.model,
            &self.args,
            &self.bb,
            records,
            hashes,
            cache,
            quiet,
            store,
        )
    }
}

fn ready(location: &str, ctx: &ChangeContext, cache: Option<&Path>, quiet: bool) -> Result<Ready> {
    let mut cat = Catalogue::open(location)?;
    let config = PipelineConfig::load(&mut cat)?;
    let args = config.backbone_args();
    let bb = args.build()?;
    let model = model_of(&args, &bb)?;
    if let Some(prev) = cat.use_model(&model, ctx)? {
        eprintln!(
            "the catalogue's model changed ({prev} -> {}): its photos are embedded again",
            model.id
        );
    }
    let n = photos::catch_up(&mut cat, &model, &args, &bb, cache, quiet)?;
    if n > 0 && !quiet {
        eprintln!("embedded {n} catalogue photos with {}", model.id);
    }
    Ok(Ready {
        cat,
        config,
        args,
        bb,
        model,
    })
}

fn enrol(location: &str, a: &EnrolArgs, ctx: &ChangeContext, quiet: bool) -> Result<i32> {
    let ds = photos::load(&a.photos, true)?;
    let cache = a.embedding_cache.as_deref();
    let mut r = ready(location, ctx, cache, quiet)?;
    let hashes = photos::hashes(&ds.records)?;
    let emb = r.embed(&ds.records, &hashes, cache, quiet, false)?;
    let photos = photos::catalogue_photos(&ds.records, &hashes);
    let emb: Vec<Option<Vec<f32>>> = emb.into_iter().map(Some).collect();
    let report = r.cat.enrol(&photos, &r.model, &emb, ctx)?;
    match report.change {
        Some(c) => println!(
            "change {c}: {} photos added, {} individuals created, {} already present",
            report.photos_added, report.individuals_created, report.already_present
        ),
        None => println!(
            "nothing to enrol: {} photos already present",
            report.already_present
        ),
    }
    for c in &report.conflicts {
        eprintln!("not changed: {c}");
    }
    Ok(0)
}

/// Parses the projection option the way the examples do.
#[derive(Parser)]
struct AdaptOnly {
    #[command(flatten)]
    adapt: AdaptArgs,
}

fn index_dir(cat: &Catalogue, location: &str, given: Option<&Path>) -> PathBuf {
    if let Some(d) = given {
        return d.to_path_buf();
    }
    match cat_kind(location) {
        EngineKind::Sqlite => {
            let p = location.strip_prefix("sqlite://").unwrap_or(location);
            PathBuf::from(format!("{p}.index"))
        }
        EngineKind::Postgres => {
            let _ = cat;
            reid_backbone::weights::cache_dir().join("catalogue-index")
        }
    }
}

fn cat_kind(location: &str) -> EngineKind {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        EngineKind::Postgres
    } else {
        EngineKind::Sqlite
    }
}

fn identify_cmd(location: &str, a: &IdentifyArgs, ctx: &ChangeContext, quiet: bool) -> Result<i32> {
    let t0 = Instant::now();
    let ds = photos::load(&a.photos, false)?;
    reid_examples::prepare_out_dir("--out", &a.out)?;
    let cache = a.embedding_cache.as_deref();
    let mut r = ready(location, ctx, cache, quiet)?;
    let hashes = photos::hashes(&ds.records)?;
    let emb = r.embed(&ds.records, &hashes, cache, quiet, true)?;
    let queries: Vec<QueryPhoto> = ds
        .records
        .iter()
        .zip(&hashes)
        .map(|(rec, h)| QueryPhoto {
            id: rec.image_id.clone(),
            path: photos::location_of(rec),
            content_hash: h.clone(),
            dataset: rec.dataset.clone().unwrap_or_default(),
            species: rec.species.clone(),
        })
        .collect();
    let mut q = Array2::<f32>::zeros((queries.len(), r.model.dim));
    for (i, v) in emb.iter().enumerate() {
        q.row_mut(i).iter_mut().zip(v).for_each(|(d, s)| *d = *s);
    }
    let dir = index_dir(&r.cat, location, a.index_cache.as_deref());
    let g = load_gallery(&mut r.cat, &r.model, Some(&dir))?;
    if !quiet {
        match &g.rebuilt_because {
            None => eprintln!("search index: {} photos from the cache", g.gallery.len()),
            Some(why) => eprintln!("search index rebuilt ({} photos): {why}", g.gallery.len()),
        }
    }
    let fetcher = crate::fetcher()?;
    let t = Instant::now();
    let (items, thresholds) = if g.gallery.is_empty() {
        eprintln!(
            "the catalogue has no photos yet: every photo is new (enrol labelled photos to match against)"
        );
        (all_new_items(&queries), serde_json::json!({}))
    } else {
        let (records, m) = identification_input(&g.gallery, &queries, &q)?;
        // Local matching reads the photos: this machine's copies.
        let records_here = photos::localize(&fetcher, &records)?;
        let ident = match decide(&records_here, &m, &r.config, None, quiet) {
            Err(e) if calibration_impossible(&e) => {
                eprintln!(
                    "the catalogue is too small to calibrate a threshold from itself ({e:#}); \
                     using the fixed cosine threshold {} (`config --fallback-threshold`), \
                     without local matching",
                    r.config.fallback_threshold
                );
                decide(
                    &records_here,
                    &m,
                    &r.config,
                    Some(r.config.fallback_threshold),
                    quiet,
                )?
            }
            other => other?,
        };
        (
            review_items(&ident, &records, &queries)?,
            serde_json::json!(ident.thresholds.groups()),
        )
    };
    let match_seconds = t.elapsed().as_secs_f64();
    let csv = a.out.join("decisions.csv");
    write_decisions(&csv, &items)?;
    let html = a.out.join("review.html");
    write_review_page(
        &html,
        &ReviewPage {
            title: format!("animal-reid: {} photos to review", items.len()),
            catalogue: r.cat.location(),
            model: format!("{} ({})", r.model.id, r.model.description),
            items: &items,
            thumbnail_px: 224,
            photos: Some(&fetcher),
        },
    )?;
    let known = items
        .iter()
        .filter(|i| i.suggestion == Suggestion::Known)
        .count();
    let groups: std::collections::BTreeSet<(&str, &str)> = items
        .iter()
        .filter(|i| i.suggestion == Suggestion::New)
        .map(|i| (i.dataset.as_str(), i.suggested.as_str()))
        .collect();
    let summary = serde_json::json!({
        "catalogue": r.cat.location(),
        "model": r.model.id,
        "photos": items.len(),
        "suggested_known": known,
        "suggested_new": items.len() - known,
        "new_groups": groups.len(),
        "thresholds": thresholds,
        "gallery_photos": g.gallery.len(),
        "index_from_cache": g.from_cache,
        "seconds": { "total": t0.elapsed().as_secs_f64(), "matching": match_seconds },
    });
    reid_examples::write_json(&a.out.join("identify.json"), &summary)?;
    println!(
        "{} photos: {known} suggested known, {} new ({} new individuals); review {} and fill {}",
        items.len(),
        items.len() - known,
        groups.len(),
        html.display(),
        csv.display()
    );
    Ok(0)
}

/// Identifies the queries of `records`: self-calibrated (and fused with
/// the configured local matchers), or at the `fixed` cosine threshold.
fn decide(
    records: &[reid_core::Record],
    m: &Array2<f32>,
    config: &PipelineConfig,
    fixed: Option<f32>,
    quiet: bool,
) -> Result<reid_pipeline::Identification> {
    let episodes = EpisodeArgs {
        episodes: config.episodes,
        new_fraction: 0.3,
        query_fraction: 0.3,
        seed: 2025,
        encounters: "none".into(),
    };
    if let Some(t) = fixed {
        let params = OpenSetParams::default().fixed_threshold(Some(t)).check()?;
        return Ok(identify(records, m.view(), &params)?);
    }
    let adapt = AdaptOnly::try_parse_from(["animal-reid", "--adapt", &config.adapt])
        .map_err(|e| anyhow::anyhow!("pipeline config: {e}"))?
        .adapt;
    let openset = OpenSetParams::default()
        .episodes(episodes.params())
        .adapt(adapt.params()?)
        .check()?;
    // The catalogue searches the embeddings it stores (no thumbnails).
    let stored = [reid_pipeline::FeatureSet {
        name: "catalogue".into(),
        embeddings: m.view(),
    }];
    let (openset, _) = adapt.choose(records, &stored, openset)?;
    let cosine = identify(records, m.view(), &openset)?;
    let local = config.local_args()?;
    let fusions = local.fusions()?;
    let fused = local.refine(&fusions, &cosine, records, m.view(), &openset, quiet, None)?;
    Ok(fused.unwrap_or(cosine))
}

/// Whether `e` says the database cannot form self-calibration episodes.
fn calibration_impossible(e: &anyhow::Error) -> bool {
    use reid_openset::OpensetError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<OpensetError>(),
            Some(OpensetError::Episodes(_))
        ) || matches!(
            c.downcast_ref::<reid_pipeline::PipelineError>(),
            Some(reid_pipeline::PipelineError::Openset(
                OpensetError::Episodes(_)
            ))
        )
    })
}

fn apply(location: &str, a: &ApplyArgs, ctx: &ChangeContext) -> Result<i32> {
    let rows = read_decisions(&a.decisions)?;
    let mut cat = Catalogue::open(location)?;
    let report = cat.apply(&rows, &a.decisions, ctx)?;
    match report.change {
        Some(c) => println!(
            "change {c}: {} confirmed, {} photos to {} new individuals, {} rejected, {} unchanged, {} without a verdict",
            report.confirmed,
            report.new_photos,
            report.new_individuals.len(),
            report.rejected,
            report.unchanged,
            report.skipped
        ),
        None => println!(
            "nothing changed: {} rows already applied, {} without a verdict",
            report.unchanged, report.skipped
        ),
    }
    Ok(0)
}

fn log(location: &str, a: &JsonArgs) -> Result<i32> {
    let mut cat = Catalogue::open(location)?;
    let changes = cat.changes()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(0);
    }
    for c in changes {
        let undone = c
            .undone_by
            .map(|u| format!(" [undone by {u}]"))
            .unwrap_or_default();
        let why = c.reason.map(|r| format!(" ({r})")).unwrap_or_default();
        println!(
            "{:>5}  {}  {:<8} {:<12} {}{why}{undone}",
            c.id, c.at, c.command, c.actor, c.summary
        );
    }
    Ok(0)
}

fn stats(location: &str, a: &JsonArgs) -> Result<i32> {
    let mut cat = Catalogue::open(location)?;
    let s = cat.stats()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("catalogue {} ({})", s.location, s.engine);
    println!("model: {}", s.model.as_deref().unwrap_or("(none yet)"));
    for (d, c) in &s.datasets {
        println!(
            "  {d}: {} individuals ({} with one photo), {} photos, {} unassigned",
            c.individuals, c.single_photo_individuals, c.photos, c.unassigned
        );
    }
    for (m, n) in &s.embeddings {
        println!("embeddings of {m}: {n}");
    }
    println!("journal: {} changes", s.changes);
    if let Some(b) = s.size_bytes {
        println!("size: {:.1} MB", b as f64 / 1e6);
    }
    Ok(0)
}

fn export(location: &str, a: &ExportArgs) -> Result<i32> {
    let mut cat = Catalogue::open(location)?;
    let model_id = cat
        .current_model()?
        .context("the catalogue has no model yet: enrol photos first")?;
    let model = cat.model(&model_id)?;
    reid_examples::prepare_out_dir("--out", &a.out)?;
    let photos = cat.photos(None)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "image_id",
        "identity",
        "name",
        "path",
        "species",
        "split",
        "dataset",
        "content_hash",
    ])?;
    for p in &photos {
        w.write_record([
            format!("photo-{}", p.id),
            p.individual.clone().unwrap_or_default(),
            p.name.clone().unwrap_or_default(),
            p.path.display().to_string(),
            p.species.clone().unwrap_or_default(),
            "database".into(),
            p.dataset.clone(),
            p.content_hash.clone(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    let meta = a.out.join("metadata.csv");
    reid_core::fs::write_atomic(&meta, &bytes)?;
    let (_, gallery) = cat.gallery(&model)?;
    let mut m = Array2::<f32>::zeros((gallery.len(), model.dim));
    for (i, (_, v)) in gallery.iter().enumerate() {
        m.row_mut(i).iter_mut().zip(v).for_each(|(d, s)| *d = *s);
    }
    let records = gallery.iter().map(|(p, _)| photo_record(p)).collect();
    let g = if gallery.is_empty() {
        reid_index::Gallery::new(model.id.clone(), model.dim)?
    } else {
        reid_index::Gallery::from_parts(model.id.clone(), m.view(), records)?
    };
    let emb = a.out.join("embeddings.gallery");
    g.save(&emb)?;
    println!(
        "exported {} photos to {} and {} embeddings of {} to {}",
        photos.len(),
        meta.display(),
        g.len(),
        model.id,
        emb.display()
    );
    Ok(0)
}

fn check(location: &str, a: &CheckArgs, quiet: bool) -> Result<i32> {
    let mut cat = Catalogue::open(location)?;
    let mut problems = cat.check()?;
    if a.files {
        let photos = cat.photos(None)?;
        let fetcher = crate::fetcher()?;
        let pb = reid_examples::bar(photos.len(), "reading photo files", quiet);
        let bad: Vec<String> = photos
            .par_iter()
            .filter_map(|p| {
                pb.inc(1);
                match fetcher
                    .local_with_hash(&p.path, &p.content_hash)
                    .map(|(_, h)| h)
                {
                    Err(e) => Some(format!("photo {}: {e}", p.id)),
                    Ok(h) if h != p.content_hash => Some(format!(
                        "photo {} ({}): file changed (sha256 {h}, enrolled {})",
                        p.id,
                        p.path.display(),
                        p.content_hash
                    )),
                    Ok(_) => None,
                }
            })
            .collect();
        pb.finish_and_clear();
        problems.extend(bad);
    }
    if problems.is_empty() {
        let s = cat.stats()?;
        let photos: usize = s.datasets.values().map(|d| d.photos + d.unassigned).sum();
        println!(
            "ok: {} datasets, {photos} photos, {} changes",
            s.datasets.len(),
            s.changes
        );
        return Ok(0);
    }
    for p in &problems {
        println!("problem: {p}");
    }
    Ok(1)
}
