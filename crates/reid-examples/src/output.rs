//! The ending `demo` and `evaluate` share: the figures printed and
//! reported, the t-SNE plot, the match sheets and the report.

use std::path::Path;

use anyhow::Context;
use std::time::Instant;

use ndarray::ArrayView2;
use reid_core::{ParamGuard, Record};
use reid_eval::report::Report;
use reid_pipeline::figures::{FigureInputs, write_figures};
use reid_pipeline::report::{PictureParams, add_figures, write_pictures, write_report};
use reid_pipeline::{Evaluation, Identification, evaluate};

/// The output options `demo` and `evaluate` share.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Match sheets for this many queries (0: none).
    #[arg(long, default_value_t = 12)]
    pub sheets: usize,
    /// No t-SNE plot.
    #[arg(long)]
    pub no_tsne: bool,
    /// t-SNE perplexity (at most (images - 1) / 3).
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f64,
    /// t-SNE iterations.
    #[arg(long, default_value_t = 1000)]
    pub tsne_iter: usize,
}

impl OutputArgs {
    /// The picture settings, with the t-SNE seeded by `seed`.
    pub fn pictures(&self, seed: u64) -> PictureParams {
        PictureParams::default()
            .sheets(self.sheets)
            .tsne(!self.no_tsne)
            .perplexity(self.perplexity)
            .tsne_iter(self.tsne_iter)
            .seed(seed)
    }
}

/// Makes sure the folder `dir` given as `flag` exists and can be written,
/// before any work starts: a file in its place, a folder that cannot be
/// made or one that refuses a new file is an error naming the flag and the
/// path (rather than a failure minutes later, after the embedding).
pub fn prepare_out_dir(flag: &str, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("{flag} {}: is a file, not a folder", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{flag} {}: cannot create the folder", dir.display()))?;
    let probe = dir.join(format!(".animal-reid-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("{flag} {}: cannot write into the folder", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Makes sure the file `path` given as `flag` can be written later: not a
/// folder, its folder exists (or is made) and takes a new file.
pub fn prepare_out_file(flag: &str, path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!("{flag} {}: is a folder, not a file", path.display());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    prepare_out_dir(&format!("{flag} (its folder)"), parent)
}

/// Writes `value` as pretty JSON (with a final newline) to `path`, atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    reid_core::fs::write_atomic(path, &bytes)?;
    Ok(())
}

/// Evaluates `ident` and prints the figures.
pub fn print_evaluation(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    ident: &Identification,
) -> anyhow::Result<Evaluation> {
    let evaluation = evaluate(records, embeddings, ident)?;
    println!("{evaluation}");
    Ok(evaluation)
}

/// The end of `demo` and `evaluate`: prints the figures of `ident`, adds
/// them to `report`, draws the pictures of each dataset
/// ([`write_figures`], comparing with `inputs`), the t-SNE plot and the
/// match sheets into `out`,
/// and writes the report there, with the time since `start`, and
/// `<out>/summary.json` ([`reid_pipeline::Summary`]: score, BAKS, BAUS,
/// top-1, mAP and seconds, overall and `per_dataset`; and `stages`, the
/// report's timings in order, also printed as a table).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    report: &mut Report,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    ident: &Identification,
    inputs: &FigureInputs<'_>,
    out: &Path,
    args: &OutputArgs,
    seed: u64,
    start: Instant,
) -> anyhow::Result<()> {
    let evaluation = print_evaluation(records, embeddings, ident)?;
    add_figures(report, ident, &evaluation)?;
    let t = Instant::now();
    let (_, files) = write_figures(report, records, ident, Some(&evaluation), inputs, out)?;
    report.timing_since("figures", t);
    println!(
        "{} picture files in {} ({:.1} s)",
        files.len(),
        out.join("figures").display(),
        t.elapsed().as_secs_f64()
    );
    let params = args.pictures(seed).check()?;
    let pictures = write_pictures(report, records, embeddings, ident, out, &params)?;
    match (&pictures.tsne, &pictures.tsne_skipped) {
        (Some(t), _) => println!(
            "t-SNE of {} embeddings in {:.1} s (KL {:.3}): {}",
            t.points,
            t.seconds,
            t.kl_divergence,
            t.files.png.display()
        ),
        (None, Some(why)) => println!("t-SNE skipped: {why}"),
        (None, None) => {}
    }
    if let Some(s) = &pictures.sheets {
        println!(
            "{} match sheets in {}{}",
            s.pages.len(),
            out.join("match-sheets").display(),
            if s.failures.is_empty() {
                String::new()
            } else {
                format!(" ({} images could not be shown)", s.failures.len())
            }
        );
    }
    report.timing_since("total", start);
    println!("\nwhere the time went:\n{}", crate::timing_table(report));
    let (json, html) = write_report(report, out)?;
    let summary = evaluation.summary(records, ident, start.elapsed().as_secs_f64());
    let path = out.join("summary.json");
    let mut value = serde_json::to_value(&summary)?;
    if let Some(o) = value.as_object_mut() {
        o.insert("stages".into(), crate::timings_json(report));
    }
    write_json(&path, &value)?;
    println!(
        "report: {} and {}; figures: {}",
        html.display(),
        json.display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{prepare_out_dir, prepare_out_file};

    /// Output paths are checked before any work, naming the flag.
    #[test]
    fn output_paths_are_checked_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = prepare_out_dir("--out", &file).unwrap_err();
        assert!(e.to_string().starts_with("--out "), "{e}");
        assert!(e.to_string().contains("is a file, not a folder"), "{e}");
        // Missing parents are made; nothing is left behind.
        let deep = dir.path().join("x/y/z");
        prepare_out_dir("--out", &deep).unwrap();
        assert_eq!(std::fs::read_dir(&deep).unwrap().count(), 0);
        // A file under a file cannot be made.
        let e = prepare_out_file("--out", &file.join("sub.csv")).unwrap_err();
        assert!(e.to_string().starts_with("--out (its folder) "), "{e}");
        let e = prepare_out_file("--out", dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a folder, not a file"), "{e}");
        prepare_out_file("--out", &dir.path().join("new/submission.csv")).unwrap();
    }
}
