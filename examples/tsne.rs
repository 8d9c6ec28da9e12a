//! An embeddings file (written by the `embed` example, or any
//! `reid_index::Gallery` file) to a t-SNE plot in PNG and SVG: points
//! coloured by identity (the largest identities in colour, the rest grey),
//! query images of individuals absent from the database drawn as triangles.
//!
//! ```sh
//! cargo run --release --example tsne -- --embeddings lion.reidx --out lion-tsne
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use ndarray::Axis;

use animal_reid::eval::ParamGuard;
use animal_reid::eval::plot::{ScatterParams, ScatterPlot};
use animal_reid::eval::tsne::{TsneEngine, TsneInit, TsneOutput, TsneParams, kl_divergence};
use animal_reid::index::{Gallery, SplitRole};

/// `--engine`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Engine {
    /// The parallel, seeded Barnes-Hut t-SNE of reid-eval.
    Native,
    /// linfa-tsne 0.8 (single-threaded; fixed learning rate and init).
    Linfa,
}

/// `--init`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Init {
    /// First principal components (native default).
    Pca,
    /// Gaussian noise (linfa's only choice).
    Random,
}

/// t-SNE of an embeddings file, drawn as PNG and SVG.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The embeddings file.
    #[arg(long)]
    embeddings: PathBuf,
    /// Output path without extension (writes OUT.png and OUT.svg).
    #[arg(long, default_value = "tsne")]
    out: PathBuf,
    /// Perplexity (at most (images - 1) / 3).
    #[arg(long, default_value_t = 30.0)]
    perplexity: f64,
    /// Barnes-Hut accuracy θ (0 is exact, larger is faster).
    #[arg(long, default_value_t = 0.5)]
    theta: f64,
    /// Iterations.
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    /// The t-SNE implementation.
    #[arg(long, value_enum, default_value = "native")]
    engine: Engine,
    /// Learning rate in scikit-learn's units (native engine); default:
    /// max(images / 48, 50).
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Initial embedding (native engine); default: pca (linfa: random).
    #[arg(long, value_enum)]
    init: Option<Init>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Identities drawn in colour (the largest ones).
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Only the images whose `split` attribute is this (e.g. database).
    #[arg(long)]
    split: Option<String>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Plot width and height in pixels.
    #[arg(long, default_value_t = 1200)]
    size: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    reid_examples::prepare_out_file("--out", &args.out)?;
    let g = Gallery::load(&args.embeddings)
        .with_context(|| format!("reading {}", args.embeddings.display()))?;
    let rows: Vec<usize> = (0..g.len())
        .filter(|&i| {
            args.split
                .as_ref()
                .is_none_or(|s| g.records()[i].field("split").as_deref() == Some(s.as_str()))
        })
        .collect();
    let x = g.embeddings().select(Axis(0), &rows);
    println!(
        "{}: {} embeddings of {} dimensions ({}), {} selected",
        args.embeddings.display(),
        g.len(),
        g.dim(),
        g.model_id(),
        rows.len()
    );
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("building the thread pool")?;
    }
    let mut params = TsneParams::new(2)
        .perplexity(args.perplexity)
        .theta(args.theta)
        .max_iter(args.iterations)
        .seed(args.seed)
        .engine(match args.engine {
            Engine::Native => TsneEngine::Native,
            Engine::Linfa => TsneEngine::Linfa,
        });
    if let Some(rate) = args.learning_rate {
        params = params.learning_rate(rate);
    }
    if let Some(init) = args.init {
        params = params.init(match init {
            Init::Pca => TsneInit::Pca,
            Init::Random => TsneInit::Random,
        });
    }
    let valid = params.check()?;
    let t = Instant::now();
    let bar = reid_examples::bar(valid.max_iter(), "t-SNE iterations", args.quiet);
    let embedding =
        valid.embed_with_progress(x.view(), &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let kl_divergence = kl_divergence(x.view(), embedding.view(), valid.perplexity())?;
    let out = TsneOutput {
        embedding,
        kl_divergence,
    };
    println!(
        "t-SNE in {:.1} s, KL divergence {:.4}",
        t.elapsed().as_secs_f64(),
        out.kl_divergence
    );

    let recs = g.records();
    let database: BTreeSet<&str> = recs
        .iter()
        .filter(|r| r.split.as_ref().is_none_or(|s| *s == SplitRole::Database))
        .filter_map(|r| r.identity.as_deref())
        .collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|&i| recs[i].identity.clone().unwrap_or_else(|| "?".to_owned()))
        .collect();
    let known: Vec<bool> = rows
        .iter()
        .map(|&i| {
            recs[i]
                .identity
                .as_deref()
                .is_some_and(|id| database.contains(id))
        })
        .collect();
    let plot = ScatterPlot::new(
        out.embedding.view(),
        &labels,
        ScatterParams::new()
            .title(format!(
                "t-SNE of {} ({} images, perplexity {}, KL {:.3})",
                g.model_id(),
                rows.len(),
                args.perplexity,
                out.kl_divergence
            ))
            .width(args.size)
            .height(args.size)
            .top_identities(args.top)
            .check()?,
    )?
    .known(&known)?;
    let files = plot.write(&args.out)?;
    println!("wrote {} and {}", files.png.display(), files.svg.display());
    Ok(())
}
