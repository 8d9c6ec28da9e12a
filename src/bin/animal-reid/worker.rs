//! `ingest`, `worker` and `status`: embeddings computed by any number of
//! worker processes, on any number of machines, coordinated through the
//! catalogue's database (its `jobs` queue; see `reid_catalogue::queue`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use reid_backbone::pipeline::extract_skipping;
use reid_catalogue::catalogue::{Catalogue, ChangeContext, content_hash, now_rfc3339};
use reid_catalogue::queue::{BatchResult, WorkerInfo};
use reid_core::Record;

use crate::PhotoSource;
use crate::config::PipelineConfig;
use crate::photos::{self, model_of};

/// Options of `ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    photos: PhotoSource,
}

/// Options of `worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Photos claimed per batch (one claim and one write-back transaction
    /// each).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Seconds a claimed batch stays leased; a worker that dies loses its
    /// batch to the others this long after its claim. Keep it well above
    /// the time one batch takes.
    #[arg(long, default_value_t = 300.0)]
    lease: f64,
    /// Claims of a photo that fails (e.g. an undecodable image) before it
    /// is parked.
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    /// Stop when the queue is empty (nothing pending, nothing leased)
    /// instead of waiting for more.
    #[arg(long)]
    exit_when_idle: bool,
    /// Seconds between looks at an empty queue.
    #[arg(long, default_value_t = 5.0)]
    poll: f64,
    /// Device of the network: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// This worker's name in `status` (default: host-pid).
    #[arg(long)]
    id: Option<String>,
}

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Registers photos (labelled ones under their individual, others
/// unassigned) and queues their embeddings; computes nothing.
pub fn ingest(location: &str, a: &IngestArgs, ctx: &ChangeContext) -> Result<i32> {
    let ds = photos::load(&a.photos, false)?;
    let mut cat = Catalogue::open(location)?;
    let config = PipelineConfig::load(&mut cat)?;
    let args = config.backbone_args();
    let bb = args.build()?;
    let model = model_of(&args, &bb)?;
    if let Some(prev) = cat.use_model(&model, ctx)? {
        eprintln!("the catalogue's model changed ({prev} -> {})", model.id);
    }
    let hashes = photos::hashes(&ds.records)?;
    let list = photos::catalogue_photos(&ds.records, &hashes);
    let report = cat.ingest(&list, &model, ctx)?;
    // Photos of the catalogue still lacking an embedding (an earlier
    // model) are queued too.
    let more = cat.enqueue_missing(&model.id)?;
    let status = cat.queue_status(&model.id)?;
    println!(
        "{} photos registered ({} individuals created, {} already present); queue for {}: {} pending{}",
        report.photos_added,
        report.individuals_created,
        report.already_present,
        model.id,
        status.states.get("pending").copied().unwrap_or(0),
        if more > 0 {
            format!(" ({more} catalogue photos queued again)")
        } else {
            String::new()
        }
    );
    for c in &report.conflicts {
        eprintln!("not changed: {c}");
    }
    Ok(0)
}

/// Claims batches, embeds them, writes them back, until the queue is empty
/// (with `--exit-when-idle`) or forever.
pub fn worker(location: &str, a: &WorkerArgs, ctx: &ChangeContext, quiet: bool) -> Result<i32> {
    if a.batch == 0 || a.lease <= 0.0 || a.poll <= 0.0 || a.max_attempts < 1 {
        bail!("--batch, --lease, --poll and --max-attempts must be positive");
    }
    let started = Instant::now();
    let mut cat = Catalogue::open(location)?;
    let config = PipelineConfig::load(&mut cat)?;
    let mut args = config.backbone_args();
    args.device = a.device.clone();
    args.batch_size = a.batch_size;
    let bb = args.build()?;
    let model = model_of(&args, &bb)?;
    match cat.current_model()? {
        Some(m) if m != model.id => bail!(
            "the catalogue's model is {m}, this worker's pipeline gives {} ({}): \
             check that its weights file holds the same bytes as the catalogue's",
            model.id,
            model.description
        ),
        Some(_) => {}
        None => {
            cat.use_model(&model, ctx)?;
        }
    }
    cat.enqueue_missing(&model.id)?;
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("{}-{}", host(), std::process::id()));
    let params = args.extract_params(None)?;
    let lease = Duration::from_secs_f64(a.lease);
    let mut info = WorkerInfo {
        id: id.clone(),
        host: host(),
        model: model.id.clone(),
        device: a.device.clone(),
        started_at: now_rfc3339(),
        ..WorkerInfo::default()
    };
    loop {
        let t = Instant::now();
        cat.park_abandoned(&model, a.max_attempts)?;
        let jobs = cat.claim(&model, &id, a.batch, lease)?;
        info.queue_seconds += t.elapsed().as_secs_f64();
        if jobs.is_empty() {
            let s = cat.queue_status(&model.id)?;
            let open = s.states.get("pending").copied().unwrap_or(0)
                + s.states.get("leased").copied().unwrap_or(0);
            if open == 0 && a.exit_when_idle {
                break;
            }
            std::thread::sleep(Duration::from_secs_f64(a.poll));
            continue;
        }
        // Compute: each file must still hold the bytes it was registered
        // with; unreadable and undecodable images are failures, not stops.
        let t = Instant::now();
        let checked: Vec<Result<(), String>> = jobs
            .par_iter()
            .map(|j| match content_hash(&j.path) {
                Err(e) => Err(e.to_string()),
                Ok(h) if h != j.content_hash => Err(format!(
                    "{}: file changed since it was registered (sha256 {h}, registered {})",
                    j.path.display(),
                    j.content_hash
                )),
                Ok(_) => Ok(()),
            })
            .collect();
        let mut result = BatchResult::default();
        let mut todo = Vec::new();
        for (j, c) in jobs.iter().zip(checked) {
            match c {
                Ok(()) => todo.push(j),
                Err(e) => result.failed.push((j.content_hash.clone(), e)),
            }
        }
        if !todo.is_empty() {
            let records: Vec<Record> = todo
                .iter()
                .map(|j| Record::new(j.content_hash.clone(), j.path.clone()))
                .collect();
            let (emb, skipped) = extract_skipping(&bb, &records, &params, |_| {})?;
            let bad: std::collections::HashSet<usize> = skipped.iter().map(|s| s.index).collect();
            for s in skipped {
                result
                    .failed
                    .push((todo[s.index].content_hash.clone(), s.error));
            }
            let good = todo
                .iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(_, j)| j);
            for (j, row) in good.zip(emb.matrix.rows()) {
                result.done.push((j.content_hash.clone(), row.to_vec()));
            }
        }
        info.compute_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = cat.complete(&model, &id, &result, a.max_attempts)?;
        info.photos += c.written as i64;
        info.failed += (c.retried + c.parked) as i64;
        info.last_seen = now_rfc3339();
        info.running_seconds = started.elapsed().as_secs_f64();
        cat.report_worker(&info)?;
        info.queue_seconds += t.elapsed().as_secs_f64();
        if !quiet {
            eprintln!(
                "{id}: {} embedded, {} failed, {} lost to another worker; {:.1} photos/s",
                c.written,
                c.retried + c.parked,
                c.lost_lease,
                info.photos_per_second()
            );
        }
    }
    info.running_seconds = started.elapsed().as_secs_f64();
    info.last_seen = now_rfc3339();
    cat.report_worker(&info)?;
    println!("{}", serde_json::to_string(&info)?);
    Ok(0)
}

/// The queue's progress across workers.
pub fn status(location: &str, a: &StatusArgs) -> Result<i32> {
    let mut cat = Catalogue::open(location)?;
    let model = cat
        .current_model()?
        .context("the catalogue has no model yet: ingest or enrol photos first")?;
    let s = cat.queue_status(&model)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("queue for {}:", s.model);
    for (state, n) in &s.states {
        println!("  {state:<8} {n}");
    }
    if s.expired_leases > 0 {
        println!(
            "  ({} leased photos past their lease: their worker died or stalled; the next claim takes them)",
            s.expired_leases
        );
    }
    if !s.workers.is_empty() {
        println!("workers:");
        for w in &s.workers {
            println!(
                "  {:<24} {:<8} {:>7} photos {:>4} failed {:>7.2} photos/s  queue {:.2} ms/photo  last seen {}",
                w.id,
                w.device,
                w.photos,
                w.failed,
                w.photos_per_second(),
                if w.photos > 0 {
                    1e3 * w.queue_seconds / w.photos as f64
                } else {
                    0.0
                },
                w.last_seen
            );
        }
    }
    if !s.failures.is_empty() {
        println!("failed photos (attempts, last error):");
        for (h, p, n, e) in &s.failures {
            println!("  {p} ({}…): {n}: {e}", &h[..h.len().min(12)]);
        }
    }
    Ok(0)
}
