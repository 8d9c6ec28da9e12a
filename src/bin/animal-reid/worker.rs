//! `ingest`, `worker` and `status`: embeddings computed by any number of
//! worker processes, on any number of machines, coordinated through the
//! catalogue's database (its `jobs` queue; see `reid_catalogue::queue`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use reid_backbone::pipeline::extract_skipping;
use reid_catalogue::catalogue::{Catalogue, ChangeContext, now_rfc3339};
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
    /// Seconds a claimed batch stays leased without news from its worker:
    /// a live worker renews its lease every third of this (a thread of its
    /// own, so a slow batch is not taken from it), a worker that dies or
    /// loses the network loses its batch to the others this long after its
    /// last renewal.
    #[arg(long, default_value_t = 300.0)]
    lease: f64,
    /// Seconds one batch may take: past this the worker stops renewing its
    /// lease (a worker stuck on one batch gives it up to the others).
    #[arg(long, default_value_t = 3600.0)]
    max_batch_seconds: f64,
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
    /// Images per forward pass (default: 8 on the CPU, 32 on CUDA).
    #[arg(long)]
    batch_size: Option<usize>,
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
    if a.batch == 0
        || a.lease.is_nan()
        || a.lease <= 0.0
        || a.poll.is_nan()
        || a.poll <= 0.0
        || a.max_attempts < 1
        || a.max_batch_seconds.is_nan()
        || a.max_batch_seconds <= 0.0
    {
        bail!("--batch, --lease, --poll, --max-attempts and --max-batch-seconds must be positive");
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
    let fetcher = crate::fetcher()?;
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("{}-{}", host(), std::process::id()));
    let params = args.extract_params(None)?;
    let lease = Duration::from_secs_f64(a.lease);
    let heartbeat = Heartbeat::start(
        location,
        &model,
        &id,
        lease,
        Duration::from_secs_f64(a.max_batch_seconds),
    )?;
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
        heartbeat.batch_started();
        info.queue_seconds += t.elapsed().as_secs_f64();
        slow_batch_fault();
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
        // Compute: each file (a URL's download) must still hold the bytes
        // it was registered with; unreadable and undecodable images are
        // failures, not stops.
        let t = Instant::now();
        let checked: Vec<Result<std::path::PathBuf, String>> = jobs
            .par_iter()
            .map(
                |j| match fetcher.local_with_hash(&j.path, &j.content_hash) {
                    Err(e) => Err(e.to_string()),
                    Ok((_, h)) if h != j.content_hash => Err(format!(
                        "{}: file changed since it was registered (sha256 {h}, registered {})",
                        j.path.display(),
                        j.content_hash
                    )),
                    Ok((local, _)) => Ok(local),
                },
            )
            .collect();
        let mut result = BatchResult::default();
        let mut todo = Vec::new();
        for (j, c) in jobs.iter().zip(checked) {
            match c {
                Ok(local) => todo.push((j, local)),
                Err(e) => result.failed.push((j.content_hash.clone(), e)),
            }
        }
        if !todo.is_empty() {
            let records: Vec<Record> = todo
                .iter()
                .map(|(j, local)| Record::new(j.content_hash.clone(), local.clone()))
                .collect();
            let (emb, skipped) = extract_skipping(&bb, &records, &params, |_| {})?;
            let bad: std::collections::HashSet<usize> = skipped.iter().map(|s| s.index).collect();
            for s in skipped {
                result
                    .failed
                    .push((todo[s.index].0.content_hash.clone(), s.error));
            }
            let good = todo
                .iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(_, (j, _))| j);
            for (j, row) in good.zip(emb.matrix.rows()) {
                result.done.push((j.content_hash.clone(), row.to_vec()));
            }
        }
        info.compute_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = cat.complete(&model, &id, &result, a.max_attempts)?;
        heartbeat.batch_done();
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

/// A fault-injection knob for the tests: `ANIMAL_REID_FAULT_SLOW_BATCH_MS`
/// makes every batch that long slower (a batch slower than its lease must
/// stay with its live worker).
fn slow_batch_fault() {
    if let Some(ms) = std::env::var("ANIMAL_REID_FAULT_SLOW_BATCH_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Renews a worker's leases from a thread (and a database connection) of
/// its own while a batch is being computed, so that a batch slower than the
/// lease stays with its live worker; the process dying (SIGKILL, power) or
/// losing the database stops the renewals and the lease runs out. A batch
/// held longer than `max_batch` is no longer renewed.
struct Heartbeat {
    /// When the batch in hand was claimed, in ms since `epoch` plus one; 0
    /// when no batch is in hand.
    claimed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    epoch: Instant,
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(
        location: &str,
        model: &reid_catalogue::catalogue::Model,
        id: &str,
        lease: Duration,
        max_batch: Duration,
    ) -> Result<Self> {
        use std::sync::atomic::Ordering;
        let mut cat =
            Catalogue::open(location).context("the worker's second connection (lease renewals)")?;
        let epoch = Instant::now();
        let claimed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (c, model, id) = (claimed.clone(), model.clone(), id.to_string());
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(lease / 3)
            {
                let at = c.load(Ordering::SeqCst);
                let now = epoch.elapsed().as_millis() as u64 + 1;
                if at > 0
                    && u128::from(now.saturating_sub(at)) <= max_batch.as_millis()
                    && let Err(e) = cat.renew(&model, &id, lease)
                {
                    eprintln!("{id}: could not renew the lease (will retry): {e}");
                }
            }
        });
        Ok(Self {
            claimed,
            epoch,
            stop,
            thread: Some(thread),
        })
    }

    fn batch_started(&self) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.claimed.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    fn batch_done(&self) {
        self.claimed.store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
