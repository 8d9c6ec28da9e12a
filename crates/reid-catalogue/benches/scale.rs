//! The catalogue at scale: a synthetic catalogue of `--photos` photos
//! (default 100,000; synthetic unit embeddings of dimension `--dim`, default
//! 256) enrolled in batches of `--batch` photos (one `enrol` call, one
//! transaction, each, as the program does), on SQLite and on PostgreSQL.
//! Per engine it measures:
//!
//! - the enrol rate: photos per second overall, and of the first and the
//!   last batches (does enrolling slow down as the catalogue grows?);
//! - the database size (`Store::size_bytes`: the SQLite file and its WAL,
//!   or `pg_database_size`);
//! - this process's memory: peak (`VmHWM`) and current (`VmRSS`) resident
//!   size after each phase (a PostgreSQL server's own memory is not
//!   counted: it runs in other processes);
//! - the identification of `--queries` new photos, excluding the network
//!   forward pass: the gallery loaded from the database (cold: the search
//!   index rebuilt and saved) and again from the index cache, then the
//!   queries (half near enrolled individuals, half new animals) through
//!   `identification_input` and `reid_pipeline::identify` with the default
//!   self-calibration, split into the database-only work
//!   (`seconds.database`: the split, the gallery and the self-calibration)
//!   and the per-query search and decisions (`seconds.queries / Q`).
//!
//! - where the time of an enrol goes: each kind of statement it runs
//!   (one round trip each), timed over one batch's worth in a transaction
//!   that is rolled back, after the first batch and after the last; with
//!   a plain `SELECT 1` (the engine's round trip) and the individual lookup
//!   also as a statement prepared just then (against the one the
//!   catalogue's connection prepared early on);
//! - the database's bytes per table and index.
//!
//! Each engine runs in a child process of its own (`--in-process`: all in
//! this one), so its memory figures are its own. Prints a markdown table,
//! one row per engine, then the notes and the statement profile, and writes
//! the same numbers (and every batch's time) as JSON (`--json`; default
//! `$CARGO_TARGET_DIR/scale-bench.json`, else `target/scale-bench.json` of
//! the workspace).
//!
//! ```text
//! cargo bench -p reid-catalogue --bench scale -- [--photos N] [--engines sqlite,postgres]
//!     [--queries Q] [--dim D] [--batch B] [--datasets K] [--episodes E] [--json PATH]
//!     [--seed S] [--sqlite-cache-mib M] [--no-profile] [--in-process]
//! ```
//!
//! Defaults: 100,000 photos, both engines, 200 queries, dimension 256,
//! batches of 1,000, 5 datasets, the default self-calibration (10
//! episodes). `--sqlite-cache-mib` is an experiment: `PRAGMA cache_size`
//! on the catalogue's SQLite connection before enrolling.
//!
//! SQLite runs as the catalogue configures it (WAL, `synchronous = FULL`,
//! in a temporary folder). PostgreSQL runs on a throwaway local server
//! ([`ThrowawayPostgres`]), which runs with `fsync = off`,
//! `synchronous_commit = off` and `full_page_writes = off`: its commit
//! figures are those of a server that never waits for the disk, and its
//! round trips are those of a server on the same machine. Times depend on
//! what else the machine runs: the load average before and after each
//! engine is recorded.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_catalogue::CatalogueError;
use reid_catalogue::catalogue::{Catalogue, ChangeContext, EnrolPhoto, Model};
use reid_catalogue::gallery::{QueryPhoto, identification_input, load_gallery, review_items};
use reid_catalogue::store::{Value, transact};
use reid_catalogue::testing::ThrowawayPostgres;
use reid_pipeline::{OpenSetParams, ParamGuard, SelfCalibrationParams, identify};
use serde_json::json;
use sha2::{Digest, Sha256};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The command line.
#[derive(Debug, Clone)]
struct Args {
    photos: usize,
    engines: Vec<String>,
    queries: usize,
    dim: usize,
    batch: usize,
    datasets: usize,
    episodes: Option<usize>,
    json: PathBuf,
    seed: u64,
    /// Experiment: `PRAGMA cache_size` (MiB) on the SQLite connection
    /// before enrolling (default: as the catalogue leaves it).
    sqlite_cache_mib: Option<usize>,
    /// Skip the per-statement profile of an enrol batch.
    no_profile: bool,
    /// Run the engines in this process (default: one child process each,
    /// so that each one's memory figures are its own).
    in_process: bool,
    /// Internal: this is a child running one engine.
    child: bool,
}

fn default_json() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("scale-bench.json"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scale-bench.json"),
    }
}

const USAGE: &str = "usage: scale [--photos N] [--engines sqlite,postgres] [--queries Q] \
                     [--dim D] [--batch B] [--datasets K] [--episodes E] [--json PATH] [--seed S] \
                     [--sqlite-cache-mib M] [--no-profile] [--in-process]";

fn parse_args() -> AnyResult<Args> {
    let mut a = Args {
        photos: 100_000,
        engines: vec!["sqlite".into(), "postgres".into()],
        queries: 200,
        dim: 256,
        batch: 1000,
        datasets: 5,
        episodes: None,
        json: default_json(),
        seed: 2026,
        sqlite_cache_mib: None,
        no_profile: false,
        in_process: false,
        child: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench program.
        if flag == "--bench" {
            continue;
        }
        match flag.as_str() {
            "--no-profile" => {
                a.no_profile = true;
                continue;
            }
            "--in-process" => {
                a.in_process = true;
                continue;
            }
            "--child" => {
                a.child = true;
                continue;
            }
            _ => {}
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> AnyResult<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}").into())
        };
        let num = |v: String| -> AnyResult<usize> {
            v.parse::<usize>()
                .map_err(|e| format!("{name} {v}: {e}").into())
        };
        match name.as_str() {
            "--photos" => a.photos = num(value()?)?,
            "--queries" => a.queries = num(value()?)?,
            "--dim" => a.dim = num(value()?)?,
            "--batch" => a.batch = num(value()?)?,
            "--datasets" => a.datasets = num(value()?)?,
            "--episodes" => a.episodes = Some(num(value()?)?),
            "--seed" => a.seed = num(value()?)? as u64,
            "--json" => a.json = PathBuf::from(value()?),
            "--sqlite-cache-mib" => a.sqlite_cache_mib = Some(num(value()?)?),
            "--engines" => {
                a.engines = value()?
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = a
                    .engines
                    .iter()
                    .find(|e| *e != "sqlite" && *e != "postgres")
                {
                    return Err(
                        format!("--engines: unknown engine {bad} (sqlite, postgres)").into(),
                    );
                }
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if a.photos < 2 || a.dim < 2 || a.batch == 0 || a.datasets == 0 || a.engines.is_empty() {
        return Err(format!(
            "--photos and --dim at least 2, --batch, --datasets and --engines not empty\n{USAGE}"
        )
        .into());
    }
    Ok(a)
}

/// Resident memory of this process, in bytes: (current `VmRSS`, peak `VmHWM`).
fn memory() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |key: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak (`VmHWM`) to the current resident size (Linux 4.0+),
/// so that each phase's peak is its own; false when refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// A unit vector: `centre + noise * N(0, 1)` per component, normalised
/// (`centre` `None`: a random direction).
fn unit(rng: &mut ChaCha8Rng, dim: usize, centre: Option<&[f32]>, noise: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|i| {
            // Box-Muller: a standard normal from two uniforms.
            let u1: f32 = rng.r#gen::<f32>().max(f32::MIN_POSITIVE);
            let u2: f32 = rng.r#gen::<f32>();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            centre.map_or(z, |c| c[i] + noise * z)
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn hash_of(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Noise per component of a photo around its individual's centre: with
/// dimension 256 a photo's cosine to its centre is about 0.8 and to another
/// photo of the same animal about 0.65; two animals' about 0 ± 0.06.
fn noise_for(dim: usize) -> f32 {
    0.75 / (dim as f32).sqrt()
}

/// The synthetic catalogue: individuals of 5 to 15 photos, dealt round
/// the datasets; photos in individual order.
struct Synthetic {
    dim: usize,
    /// Per individual: dataset index, name, centre.
    individuals: Vec<(usize, String, Vec<f32>)>,
    /// Per photo: its individual.
    photo_individual: Vec<usize>,
}

impl Synthetic {
    fn new(photos: usize, datasets: usize, dim: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut individuals = Vec::new();
        let mut photo_individual = Vec::with_capacity(photos);
        while photo_individual.len() < photos {
            let k = individuals.len();
            let n = rng.gen_range(5..=15).min(photos - photo_individual.len());
            let centre = unit(&mut rng, dim, None, 0.0);
            individuals.push((k % datasets, format!("animal-{k:06}"), centre));
            photo_individual.extend(std::iter::repeat_n(k, n));
        }
        Synthetic {
            dim,
            individuals,
            photo_individual,
        }
    }

    fn dataset_name(d: usize) -> String {
        format!("site-{d}")
    }

    /// Photos `range` to enrol, with their embeddings (made on demand, from
    /// a generator seeded by the photo index, so a batch costs the same
    /// wherever it is).
    fn batch(
        &self,
        range: std::ops::Range<usize>,
        seed: u64,
    ) -> (Vec<EnrolPhoto>, Vec<Option<Vec<f32>>>) {
        let noise = noise_for(self.dim);
        range
            .map(|i| {
                let (d, name, centre) = &self.individuals[self.photo_individual[i]];
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0000_0000);
                rng.set_stream(i as u64);
                let v = unit(&mut rng, self.dim, Some(centre), noise);
                let photo = EnrolPhoto {
                    path: PathBuf::from(format!(
                        "/synthetic/{}/{name}/photo-{i:07}.jpg",
                        Self::dataset_name(*d)
                    )),
                    content_hash: hash_of(&format!("photo-{i}")),
                    dataset: Self::dataset_name(*d),
                    species: Some("synthetic".into()),
                    individual: name.clone(),
                };
                (photo, Some(v))
            })
            .unzip()
    }

    /// `q` queries: even ones near an enrolled individual (its name
    /// returned), odd ones new animals.
    fn queries(&self, q: usize, seed: u64) -> (Vec<QueryPhoto>, Array2<f32>, Vec<Option<String>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9);
        let noise = noise_for(self.dim);
        let datasets = self.individuals.iter().map(|x| x.0).max().unwrap_or(0) + 1;
        let mut m = Array2::<f32>::zeros((q, self.dim));
        let mut photos = Vec::with_capacity(q);
        let mut truth = Vec::with_capacity(q);
        for i in 0..q {
            let (dataset, v, who) = if i % 2 == 0 {
                let k = rng.gen_range(0..self.individuals.len());
                let (d, name, centre) = &self.individuals[k];
                (
                    *d,
                    unit(&mut rng, self.dim, Some(centre), noise),
                    Some(name.clone()),
                )
            } else {
                let centre = unit(&mut rng, self.dim, None, 0.0);
                let d = rng.gen_range(0..datasets);
                (d, unit(&mut rng, self.dim, Some(&centre), noise), None)
            };
            m.row_mut(i).iter_mut().zip(&v).for_each(|(a, b)| *a = *b);
            photos.push(QueryPhoto {
                id: format!("query-{i:05}.jpg"),
                path: PathBuf::from(format!("/synthetic/new/query-{i:05}.jpg")),
                content_hash: hash_of(&format!("query-{i}")),
                dataset: Self::dataset_name(dataset),
                species: Some("synthetic".into()),
            });
            truth.push(who);
        }
        (photos, m, truth)
    }
}

/// The cost of one statement kind of an enrol, run `n` times in one
/// transaction (rolled back) on a catalogue of `at_photos` photos.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct StatementCost {
    at_photos: usize,
    kind: String,
    n: usize,
    /// Mean microseconds per statement.
    mean_us: f64,
    /// Mean of the first and the last tenth of the transaction's statements.
    first_tenth_us: f64,
    last_tenth_us: f64,
}

/// What one engine measured.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct EngineRun {
    engine: String,
    note: String,
    /// 1-minute load average of the machine before and after the run (the
    /// machine may be shared).
    load_before: f64,
    load_after: f64,
    sqlite_cache_mib: Option<usize>,
    photos: usize,
    individuals: usize,
    datasets: usize,
    dim: usize,
    batch: usize,
    batches: usize,
    enrol_seconds: f64,
    enrol_photos_per_s: f64,
    /// Photos per second of the first and the last batch, and of the first
    /// and last tenth of the batches.
    first_batch_photos_per_s: f64,
    last_batch_photos_per_s: f64,
    first_tenth_photos_per_s: f64,
    last_tenth_photos_per_s: f64,
    batch_seconds: Vec<f64>,
    db_size_bytes: Option<u64>,
    db_bytes_per_photo: Option<f64>,
    /// Bytes per table or index (SQLite `dbstat`; PostgreSQL heap, indexes
    /// and TOAST per table), largest first.
    db_tables: Vec<(String, u64)>,
    /// The statements of an enrol, timed one kind at a time, after the
    /// first batch and after the last.
    statement_profile: Vec<StatementCost>,
    gallery_cold_seconds: f64,
    gallery_cached_seconds: f64,
    gallery_cache_bytes: u64,
    queries: usize,
    identification_input_seconds: f64,
    episodes: usize,
    identify_seconds: f64,
    /// `Identification.seconds.database`: split, gallery, self-calibration.
    self_calibration_seconds: f64,
    /// `Identification.seconds.queries`.
    queries_seconds: f64,
    per_query_ms: f64,
    review_items_seconds: f64,
    /// Per photo of a batch of Q: (input + identify + review items) / Q,
    /// with the gallery loaded from the cache.
    total_per_photo_ms_cached: f64,
    /// The same with the cold gallery load.
    total_per_photo_ms_cold: f64,
    thresholds: std::collections::BTreeMap<String, f32>,
    known_queries_correct: usize,
    known_queries: usize,
    new_queries_called_new: usize,
    new_queries: usize,
    /// (phase, RSS bytes at its end, peak RSS bytes during it).
    memory: Vec<(String, u64, u64)>,
    /// The largest of the phases' peaks.
    peak_rss_bytes: u64,
    /// Whether that peak is this engine's own (the peak could be reset
    /// before its run), else the process's since it started.
    peak_is_per_engine: bool,
}

fn run_engine(
    engine: &str,
    args: &Args,
    data: &Synthetic,
    scratch: &Path,
    server: Option<&ThrowawayPostgres>,
) -> AnyResult<EngineRun> {
    let mut out = EngineRun {
        engine: engine.to_string(),
        photos: args.photos,
        individuals: data.individuals.len(),
        datasets: args.datasets,
        dim: args.dim,
        batch: args.batch,
        queries: args.queries,
        load_before: load_average(),
        sqlite_cache_mib: args.sqlite_cache_mib.filter(|_| engine == "sqlite"),
        ..Default::default()
    };
    // Each phase's peak is its own when the kernel lets the peak be reset;
    // else the peak since the process started.
    let resets = reset_peak();
    let phase = |out: &mut EngineRun, name: &str| {
        let (rss, hwm) = memory();
        eprintln!(
            "  [{engine}] {name}: RSS {:.0} MiB, peak {:.0} MiB",
            mib(rss),
            mib(hwm)
        );
        out.memory.push((name.to_string(), rss, hwm));
        out.peak_rss_bytes = out.peak_rss_bytes.max(hwm);
        out.peak_is_per_engine = resets;
        reset_peak();
    };
    let location = match engine {
        "sqlite" => {
            out.note = "WAL, synchronous=FULL (as the catalogue configures it), local disk".into();
            scratch.join("scale.db").to_string_lossy().into_owned()
        }
        _ => {
            out.note =
                "throwaway local server: fsync=off, synchronous_commit=off, full_page_writes=off; \
                        server memory not counted"
                    .into();
            let s = server.ok_or("no PostgreSQL server")?;
            s.fresh_database("scale_bench")?
        }
    };
    let ctx = ChangeContext::new("scale-bench");
    let mut cat = Catalogue::init(&location, &ctx)?;
    let model = Model {
        id: format!("synthetic-{}", args.dim),
        description: "synthetic unit vectors".into(),
        dim: args.dim,
    };
    cat.use_model(&model, &ctx)?;
    if let Some(m) = out.sqlite_cache_mib {
        let sql = format!("PRAGMA cache_size = -{}", m * 1024);
        transact(cat.store(), |tx| tx.execute(&sql, &[]))?;
        out.note
            .push_str(&format!("; experiment: PRAGMA cache_size = {m} MiB"));
    }
    phase(&mut out, "created");

    // Enrol.
    let batches = args.photos.div_ceil(args.batch);
    out.batches = batches;
    let mut enrol_total = 0.0;
    let started = Instant::now();
    let mut last_print = Instant::now();
    for b in 0..batches {
        let range = b * args.batch..((b + 1) * args.batch).min(args.photos);
        let n = range.len();
        let (photos, embeddings) = data.batch(range, args.seed);
        let t = Instant::now();
        let report = cat.enrol(&photos, &model, &embeddings, &ctx)?;
        let s = t.elapsed().as_secs_f64();
        enrol_total += s;
        out.batch_seconds.push(s);
        if report.photos_added != n {
            return Err(format!("batch {b}: {} of {n} photos added", report.photos_added).into());
        }
        if b == 0 && !args.no_profile && batches > 1 {
            profile_into(&mut out, &mut cat, &model, data, n, args.batch);
        }
        if last_print.elapsed().as_secs() >= 10 || b == 0 || b + 1 == batches {
            last_print = Instant::now();
            eprintln!(
                "  [{engine}] batch {}/{batches}: {:.0} photos/s (this batch), {:.0} photos/s so far, {:.0} s elapsed",
                b + 1,
                n as f64 / s,
                (b * args.batch + n) as f64 / enrol_total,
                started.elapsed().as_secs_f64()
            );
        }
    }
    out.enrol_seconds = enrol_total;
    out.enrol_photos_per_s = args.photos as f64 / enrol_total;
    let rate = |bs: &[f64]| -> f64 {
        let photos: usize = bs.len() * args.batch;
        photos as f64 / bs.iter().sum::<f64>()
    };
    out.first_batch_photos_per_s = rate(&out.batch_seconds[..1]);
    out.last_batch_photos_per_s = if args.photos.is_multiple_of(args.batch) {
        rate(&out.batch_seconds[batches - 1..])
    } else {
        (args.photos % args.batch) as f64 / out.batch_seconds[batches - 1]
    };
    let tenth = (batches / 10).max(1);
    out.first_tenth_photos_per_s = rate(&out.batch_seconds[..tenth]);
    // The last tenth without a short last batch, so every batch is full.
    let full = args.photos / args.batch;
    if full >= tenth {
        out.last_tenth_photos_per_s = rate(&out.batch_seconds[full - tenth..full]);
    }
    phase(&mut out, "enrolled");
    out.db_size_bytes = cat.store().size_bytes()?;
    out.db_bytes_per_photo = out.db_size_bytes.map(|b| b as f64 / args.photos as f64);
    match db_tables(&mut cat, engine) {
        Ok(t) => out.db_tables = t,
        Err(e) => eprintln!("  [{engine}] no per-table sizes: {e}"),
    }
    if !args.no_profile {
        profile_into(&mut out, &mut cat, &model, data, args.photos, args.batch);
        for c in &out.statement_profile {
            eprintln!(
                "  [{engine}] at {} photos, {}: {:.1} us (first / last tenth of the transaction {:.1} / {:.1})",
                c.at_photos, c.kind, c.mean_us, c.first_tenth_us, c.last_tenth_us
            );
        }
    }

    // Gallery: cold (rebuilt from the database and saved), then cached.
    let cache = scratch.join(format!("index-{engine}"));
    let t = Instant::now();
    let cold = load_gallery(&mut cat, &model, Some(&cache))?;
    out.gallery_cold_seconds = t.elapsed().as_secs_f64();
    if cold.from_cache || cold.gallery.len() != args.photos {
        return Err(format!(
            "cold gallery: from cache {}, {} rows",
            cold.from_cache,
            cold.gallery.len()
        )
        .into());
    }
    drop(cold);
    phase(&mut out, "gallery cold");
    let t = Instant::now();
    let cached = load_gallery(&mut cat, &model, Some(&cache))?;
    out.gallery_cached_seconds = t.elapsed().as_secs_f64();
    if !cached.from_cache {
        return Err(format!(
            "second load not from the cache: {:?}",
            cached.rebuilt_because
        )
        .into());
    }
    out.gallery_cache_bytes = dir_size(&cache);
    phase(&mut out, "gallery cached");

    // Identify Q new photos.
    let (queries, q_emb, truth) = data.queries(args.queries, args.seed);
    let t = Instant::now();
    let (records, emb) = identification_input(&cached.gallery, &queries, &q_emb)?;
    out.identification_input_seconds = t.elapsed().as_secs_f64();
    let mut episodes = SelfCalibrationParams::default();
    if let Some(e) = args.episodes {
        episodes = episodes.episodes(e);
    }
    let params = OpenSetParams::default().episodes(episodes).check()?;
    out.episodes = params.episodes().episodes();
    let t = Instant::now();
    let ident = identify(&records, emb.view(), &params)?;
    out.identify_seconds = t.elapsed().as_secs_f64();
    out.self_calibration_seconds = ident.seconds.database;
    out.queries_seconds = ident.seconds.queries;
    out.per_query_ms = 1e3 * ident.seconds.queries / args.queries.max(1) as f64;
    let t = Instant::now();
    let items = review_items(&ident, &records, &queries)?;
    out.review_items_seconds = t.elapsed().as_secs_f64();
    phase(&mut out, "identified");
    let q = args.queries.max(1) as f64;
    let batch_seconds =
        out.identification_input_seconds + out.identify_seconds + out.review_items_seconds;
    out.total_per_photo_ms_cached = 1e3 * (out.gallery_cached_seconds + batch_seconds) / q;
    out.total_per_photo_ms_cold = 1e3 * (out.gallery_cold_seconds + batch_seconds) / q;
    out.thresholds = ident.thresholds.groups().clone().into_iter().collect();
    out.thresholds
        .insert("(default)".into(), ident.thresholds.default_threshold());
    // Sanity: the synthetic data is separable, so the decisions should be
    // mostly right.
    let names: HashMap<&str, &str> = records
        .iter()
        .filter_map(|r| Some((r.identity.as_deref()?, r.attributes.get("name")?.as_str())))
        .collect();
    if items.len() != args.queries {
        return Err(format!("{} review items for {} queries", items.len(), args.queries).into());
    }
    for (p, who) in ident.predictions.iter().zip(&truth) {
        match who {
            Some(name) => {
                out.known_queries += 1;
                if p.decision.identity().and_then(|id| names.get(id)) == Some(&name.as_str()) {
                    out.known_queries_correct += 1;
                }
            }
            None => {
                out.new_queries += 1;
                if p.decision.is_new() {
                    out.new_queries_called_new += 1;
                }
            }
        }
    }
    out.load_after = load_average();
    Ok(out)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The statement kinds of an enrol of a new photo of a known individual,
/// with the SQL the catalogue runs (`catalogue.rs`: `enrol`,
/// `find_photo`, `find_individual`, `next_ids`, `insert_photo`,
/// `Items::push`).
const PROFILE_SQL: [(&str, &str); 7] = [
    ("round trip (SELECT 1)", "SELECT 1"),
    (
        "insert embedding",
        "INSERT INTO embeddings (content_hash, model, vector) VALUES (?1, ?2, ?3) \
         ON CONFLICT (content_hash, model) DO NOTHING",
    ),
    (
        "find photo",
        "SELECT id, individual, changed_by FROM photos WHERE dataset = ?1 AND content_hash = ?2",
    ),
    (
        "find individual",
        "SELECT id FROM individuals WHERE dataset = ?1 AND (id = ?2 OR name = ?2) \
         ORDER BY CASE WHEN id = ?2 THEN 0 ELSE 1 END",
    ),
    (
        "next photo id (counters)",
        "UPDATE counters SET value = value + ?2 WHERE name = ?1 RETURNING value",
    ),
    (
        "insert photo",
        "INSERT INTO photos (id, dataset, content_hash, path, species, individual, changed_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    ),
    (
        "insert journal item",
        "INSERT INTO change_items (change_id, seq, kind, photo, individual, before_individual, \
         before_change, reviewer, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    ),
];

/// Times each statement kind of an enrol, `n` new photos of one known
/// individual, in one transaction that is rolled back (the catalogue is
/// left as it was).
fn statement_profile(
    cat: &mut Catalogue,
    model: &Model,
    data: &Synthetic,
    at_photos: usize,
    n: usize,
) -> AnyResult<Vec<StatementCost>> {
    let (d, name, centre) = &data.individuals[0];
    let dataset = Synthetic::dataset_name(*d);
    let vector = reid_catalogue::catalogue::vector_bytes(centre);
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(n); PROFILE_SQL.len() + 1];
    // The same lookup as a statement prepared now (new text, so a new
    // prepared statement, planned on today's table), against the one the
    // catalogue prepared on its connection when the table was small.
    let fresh_sql = format!("{} -- prepared at {at_photos} photos", PROFILE_SQL[3].1);
    let r = transact(cat.store(), |tx| {
        // A retried transaction starts its timings again.
        times.iter_mut().for_each(Vec::clear);
        let ind = tx
            .query(
                "SELECT id FROM individuals WHERE dataset = ?1 AND name = ?2",
                &[dataset.as_str().into(), name.as_str().into()],
            )?
            .first()
            .map(|r| r[0].text("individual"))
            .transpose()?
            .ok_or_else(|| CatalogueError::Invalid(format!("no individual {name}")))?;
        let change = tx.query_one_int(PROFILE_SQL[4].1, &["change".into(), Value::Int(1)])?;
        tx.execute(
            "INSERT INTO changes (id, command, actor, at, reason, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            &[
                Value::Int(change),
                "enrol".into(),
                "scale-bench".into(),
                "2026-01-01T00:00:00Z".into(),
                Value::Null,
                "statement profile (rolled back)".into(),
            ],
        )?;
        for i in 0..n {
            let hash = hash_of(&format!("profile-{at_photos}-{i}"));
            let mut timed = |k: usize, f: &mut dyn FnMut() -> reid_catalogue::Result<i64>| {
                let t = Instant::now();
                let v = f();
                times[k].push(t.elapsed().as_secs_f64());
                v
            };
            timed(0, &mut || tx.query_one_int(PROFILE_SQL[0].1, &[]))?;
            timed(1, &mut || {
                tx.execute(
                    PROFILE_SQL[1].1,
                    &[
                        hash.as_str().into(),
                        model.id.as_str().into(),
                        Value::Blob(vector.clone()),
                    ],
                )
                .map(|n| n as i64)
            })?;
            timed(2, &mut || {
                tx.query(
                    PROFILE_SQL[2].1,
                    &[dataset.as_str().into(), hash.as_str().into()],
                )
                .map(|r| r.len() as i64)
            })?;
            timed(3, &mut || {
                tx.query(
                    PROFILE_SQL[3].1,
                    &[dataset.as_str().into(), name.as_str().into()],
                )
                .map(|r| r.len() as i64)
            })?;
            timed(PROFILE_SQL.len(), &mut || {
                tx.query(&fresh_sql, &[dataset.as_str().into(), name.as_str().into()])
                    .map(|r| r.len() as i64)
            })?;
            let id = timed(4, &mut || {
                tx.query_one_int(PROFILE_SQL[4].1, &["photo".into(), Value::Int(1)])
            })?;
            timed(5, &mut || {
                tx.execute(
                    PROFILE_SQL[5].1,
                    &[
                        Value::Int(id),
                        dataset.as_str().into(),
                        hash.as_str().into(),
                        format!("/synthetic/profile/{i}.jpg").into(),
                        "synthetic".into(),
                        ind.as_str().into(),
                        Value::Int(change),
                    ],
                )
                .map(|n| n as i64)
            })?;
            timed(6, &mut || {
                tx.execute(
                    PROFILE_SQL[6].1,
                    &[
                        Value::Int(change),
                        Value::Int(i as i64 + 1),
                        "photo_added".into(),
                        Value::Int(id),
                        ind.as_str().into(),
                        Value::Null,
                        Value::Null,
                        Value::Null,
                        Value::Null,
                    ],
                )
                .map(|n| n as i64)
            })?;
        }
        Err::<(), _>(CatalogueError::Invalid(ROLLBACK.into()))
    });
    match r {
        Err(CatalogueError::Invalid(m)) if m == ROLLBACK => {}
        Err(e) => return Err(e.into()),
        Ok(()) => return Err("the profile's transaction was not rolled back".into()),
    }
    let tenth = (n / 10).max(1);
    let mean_us = |t: &[f64]| 1e6 * t.iter().sum::<f64>() / t.len().max(1) as f64;
    Ok(PROFILE_SQL
        .iter()
        .chain(&[("find individual (newly prepared)", "")])
        .zip(&times)
        .map(|((kind, _), t)| StatementCost {
            at_photos,
            kind: (*kind).to_string(),
            n,
            mean_us: mean_us(t),
            first_tenth_us: mean_us(&t[..tenth.min(n)]),
            last_tenth_us: mean_us(&t[n.saturating_sub(tenth)..]),
        })
        .collect())
}

/// [`statement_profile`] into `out`; a failure (the catalogue's tables
/// changed under the copied statements) is reported, not fatal.
fn profile_into(
    out: &mut EngineRun,
    cat: &mut Catalogue,
    model: &Model,
    data: &Synthetic,
    at_photos: usize,
    n: usize,
) {
    match statement_profile(cat, model, data, at_photos, n) {
        Ok(p) => out.statement_profile.extend(p),
        Err(e) => eprintln!(
            "  [{}] no statement profile at {at_photos} photos: {e}",
            out.engine
        ),
    }
}

const ROLLBACK: &str = "scale bench: roll the profile back";

/// Bytes per table / index, largest first.
fn db_tables(cat: &mut Catalogue, engine: &str) -> AnyResult<Vec<(String, u64)>> {
    let rows = transact(cat.store(), |tx| match engine {
        "sqlite" => tx.query("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name", &[]),
        _ => tx.query(
            "SELECT relname::text, pg_relation_size(relid), pg_indexes_size(relid), \
             pg_total_relation_size(relid) - pg_relation_size(relid) - pg_indexes_size(relid) \
             FROM pg_stat_user_tables",
            &[],
        ),
    })?;
    let mut out = Vec::new();
    for r in rows {
        let name = r[0].text("name")?;
        if engine == "sqlite" {
            out.push((name, r[1].int("bytes")? as u64));
        } else {
            out.push((format!("{name} (heap)"), r[1].int("heap")? as u64));
            out.push((format!("{name} (indexes)"), r[2].int("indexes")? as u64));
            let toast = r[3].int("toast")? as u64;
            if toast > 0 {
                out.push((format!("{name} (toast)"), toast));
            }
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map_or(0, |m| m.len());
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn table(runs: &[EngineRun], args: &Args) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Synthetic catalogue: {} photos, {} individuals (5-15 photos each) in {} datasets, dim {}, \
         enrolled in batches of {} (one transaction each); {} query photos (half known, half new), \
         self-calibration with {} episodes.\n\n",
        args.photos,
        runs.first().map_or(0, |r| r.individuals),
        args.datasets,
        args.dim,
        args.batch,
        args.queries,
        runs.first().map_or(0, |r| r.episodes),
    ));
    s.push_str(
        "| engine | enrol photos/s | first / last batch photos/s | first / last tenth photos/s | DB size MiB (bytes/photo) \
         | gallery load cold / cached s | self-calibration s | search+decide ms/query | total ms/photo (Q batch, cached / cold) \
         | peak RSS MiB | known right / new right |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {} | {:.2} / {:.2} | {:.2} | {:.3} | {:.1} / {:.1} | {:.0} | {}/{} / {}/{} |\n",
            r.engine,
            r.enrol_photos_per_s,
            r.first_batch_photos_per_s,
            r.last_batch_photos_per_s,
            r.first_tenth_photos_per_s,
            r.last_tenth_photos_per_s,
            match (r.db_size_bytes, r.db_bytes_per_photo) {
                (Some(b), Some(p)) => format!("{:.1} ({p:.0})", mib(b)),
                _ => "?".into(),
            },
            r.gallery_cold_seconds,
            r.gallery_cached_seconds,
            r.self_calibration_seconds,
            r.per_query_ms,
            r.total_per_photo_ms_cached,
            r.total_per_photo_ms_cold,
            mib(r.peak_rss_bytes),
            r.known_queries_correct,
            r.known_queries,
            r.new_queries_called_new,
            r.new_queries,
        ));
    }
    s.push('\n');
    for r in runs {
        s.push_str(&format!("- {}: {}.\n", r.engine, r.note));
    }
    s.push_str(
        "- Identification excludes the network forward pass. Self-calibration = `Identification.seconds.database` \
         (split, per-dataset gallery, episodes); search+decide = `seconds.queries / Q`; total per photo = \
         (gallery load + identification_input + identify + review_items) / Q.\n",
    );
    let isolated = args.engines.len() == 1 || !args.in_process;
    match (isolated, runs.iter().all(|r| r.peak_is_per_engine)) {
        (true, true) => s.push_str(
            "- Memory: this process's (one per engine) resident size; peak = VmHWM, reset between phases.\n",
        ),
        (false, true) => s.push_str(
            "- Memory: one process for all engines (--in-process): an engine's figures include what \
             the allocator kept from the engines run before it; peak = VmHWM, reset between phases.\n",
        ),
        (_, false) => s.push_str(
            "- Memory: the kernel refused to reset VmHWM: peaks are since the process started.\n",
        ),
    }
    for r in runs {
        let phases: Vec<String> = r
            .memory
            .iter()
            .map(|(n, rss, hwm)| format!("{n} {:.0}/{:.0}", mib(*rss), mib(*hwm)))
            .collect();
        s.push_str(&format!(
            "- {} memory by phase (RSS at end / peak during, MiB): {}.\n",
            r.engine,
            phases.join(", ")
        ));
        let tables: Vec<String> = r
            .db_tables
            .iter()
            .filter(|(_, b)| *b >= 1 << 20)
            .map(|(n, b)| format!("{n} {:.1}", mib(*b)))
            .collect();
        if !tables.is_empty() {
            s.push_str(&format!(
                "- {} size by table / index (MiB, 1 MiB and over): {}.\n",
                r.engine,
                tables.join(", ")
            ));
        }
        s.push_str(&format!(
            "- {} machine load (1-min average) before / after: {:.2} / {:.2}.\n",
            r.engine, r.load_before, r.load_after
        ));
    }
    if runs.iter().any(|r| !r.statement_profile.is_empty()) {
        s.push_str(
            "\nEnrol statements, one kind at a time, microseconds each: mean of a transaction of \
             one batch's worth (rolled back) after the first batch -> after the last batch \
             (in brackets: first / last tenth of that last transaction).\n\n",
        );
        s.push_str("| engine | statement | after first batch | after last batch (first / last tenth) |\n|---|---|---|---|\n");
        for r in runs {
            let first = r
                .statement_profile
                .iter()
                .filter(|c| c.at_photos < r.photos);
            let last: Vec<&StatementCost> = r
                .statement_profile
                .iter()
                .filter(|c| c.at_photos == r.photos)
                .collect();
            for c in first {
                let l = last.iter().find(|l| l.kind == c.kind);
                s.push_str(&format!(
                    "| {} | {} | {:.1} | {} |\n",
                    r.engine,
                    c.kind,
                    c.mean_us,
                    l.map_or("-".into(), |l| format!(
                        "{:.1} ({:.1} / {:.1})",
                        l.mean_us, l.first_tenth_us, l.last_tenth_us
                    ))
                ));
            }
        }
    }
    s
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("scale bench failed: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> AnyResult<()> {
    let args = parse_args()?;
    if !args.child {
        eprintln!("{args:?}");
    }
    let mut runs = Vec::new();
    if args.engines.len() > 1 && !args.in_process && !args.child {
        // One child process per engine: each one's memory is its own.
        let scratch = tempfile::tempdir()?;
        for engine in &args.engines {
            let json = scratch.path().join(format!("{engine}.json"));
            let mut cmd = std::process::Command::new(std::env::current_exe()?);
            cmd.args(child_args(&args, engine, &json));
            let status = cmd.status()?;
            if !status.success() {
                return Err(format!("the {engine} run failed ({status})").into());
            }
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
            let mut r: Vec<EngineRun> = serde_json::from_value(v["runs"].clone())?;
            runs.append(&mut r);
        }
    } else {
        let t = Instant::now();
        let data = Synthetic::new(args.photos, args.datasets, args.dim, args.seed);
        eprintln!(
            "synthetic catalogue: {} photos of {} individuals ({:.1} s)",
            data.photo_individual.len(),
            data.individuals.len(),
            t.elapsed().as_secs_f64()
        );
        for engine in &args.engines {
            let scratch = tempfile::tempdir()?;
            let server = if engine == "postgres" {
                let s = ThrowawayPostgres::start()?;
                eprintln!(
                    "PostgreSQL at {} (started in {:.1} s)",
                    s.url(),
                    s.started_in().as_secs_f64()
                );
                Some(s)
            } else {
                None
            };
            eprintln!("== {engine}");
            let t = Instant::now();
            let run = run_engine(engine, &args, &data, scratch.path(), server.as_ref())?;
            eprintln!("== {engine} done in {:.0} s", t.elapsed().as_secs_f64());
            runs.push(run);
            drop(server);
        }
    }
    if !args.child {
        let md = table(&runs, &args);
        println!("{md}");
    }
    let value = json!({
        "args": {
            "photos": args.photos,
            "engines": args.engines,
            "queries": args.queries,
            "dim": args.dim,
            "batch": args.batch,
            "datasets": args.datasets,
            "episodes": args.episodes,
            "seed": args.seed,
            "sqlite_cache_mib": args.sqlite_cache_mib,
            "processes": if args.engines.len() > 1 && !args.in_process { "one per engine" } else { "one" },
        },
        "runs": runs,
    });
    if let Some(parent) = args.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&value)?)?;
    if !args.child {
        eprintln!("wrote {}", args.json.display());
    }
    Ok(())
}

/// The command line of the child that runs `engine` alone.
fn child_args(a: &Args, engine: &str, json: &Path) -> Vec<String> {
    let mut v = vec![
        "--child".to_string(),
        "--engines".into(),
        engine.into(),
        "--json".into(),
        json.to_string_lossy().into_owned(),
        "--photos".into(),
        a.photos.to_string(),
        "--queries".into(),
        a.queries.to_string(),
        "--dim".into(),
        a.dim.to_string(),
        "--batch".into(),
        a.batch.to_string(),
        "--datasets".into(),
        a.datasets.to_string(),
        "--seed".into(),
        a.seed.to_string(),
    ];
    if let Some(e) = a.episodes {
        v.extend(["--episodes".into(), e.to_string()]);
    }
    if let Some(m) = a.sqlite_cache_mib {
        v.extend(["--sqlite-cache-mib".into(), m.to_string()]);
    }
    if a.no_profile {
        v.push("--no-profile".into());
    }
    v
}
