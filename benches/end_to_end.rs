//! Files → decisions on real sets, the path a user waits on: load the split
//! CSV, decode and embed every image with MobileNetV2 (ImageNet weights,
//! CPU, f32), self-calibrate one threshold per dataset from the database
//! alone, search each query within its dataset, decide and group the new
//! animals; and the same with RootSIFT matching fused with cosine on each
//! query's shortlist of 50 (keypoints extracted from the files, no cache).
//! Then each stage alone, so the whole can be read as its parts:
//!
//! | bench | what it times |
//! |---|---|
//! | `files_to_decisions` | everything above, cosine alone |
//! | `files_to_decisions_sift` | everything, with the RootSIFT fusion |
//! | `decode` | reading, decoding, resizing, normalising every image |
//! | `embed` | `decode` with the network (decoding overlaps it) |
//! | `openset` | on ready embeddings: self-calibration, search, decisions |
//! | `sift_features` | RootSIFT keypoints of every image (2 threads) |
//! | `fusion` | on ready embeddings and keypoints: the fusion's calibration on database pairs, re-ranking, decisions |
//!
//! Before the benches, one run of each set prints the stages inside
//! `openset` and `fusion` (projection, self-calibration, search, local
//! matching, decisions: [`StageSeconds`]).
//!
//! Sets: `lion` (`../shared/datasets/lion/lion.csv`, 740 images) and
//! `cattle` (`../shared/datasets/cattle/cattle.csv`, 3,621); choose with
//! `ANIMAL_REID_E2E_SETS=lion` (default `lion,cattle`). A set whose CSV is
//! absent is skipped, and so is everything without the weights
//! (`scripts/setup.sh` fetches them).
//!
//! Run: `cargo bench --bench end_to_end` (cattle's whole path takes about a
//! minute per iteration on 2 cores: `-- lion` or `-- decode` pick parts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use animal_reid::backbone::backbone::{Backbone, BackboneBuilder};
use animal_reid::backbone::pipeline::{ExtractParams, ValidExtractParams, extract};
use animal_reid::data::loaders::{LoadOptions, load_animalclef};
use animal_reid::data::{BatchIter, PrefetchParams, Record};
use animal_reid::local::{FeatureStore, LocalParams, LocalScorer, ValidLocalParams};
use animal_reid::ndarray::ArrayView2;
use animal_reid::openset::{FusionParams, PairScorer, Rule, ValidFusionParams};
use animal_reid::pipeline::{
    Identification, OpenSetParams, ParamGuard, SelfCalibrationParams, StageSeconds,
    ValidOpenSetParams, fuse, identify,
};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

/// The sets asked for, with their CSVs.
fn sets() -> Vec<(String, PathBuf)> {
    let asked = std::env::var("ANIMAL_REID_E2E_SETS").unwrap_or_else(|_| "lion,cattle".into());
    let data = animal_reid::core::paths::shared_dir().join("datasets");
    asked
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| (s.to_string(), data.join(s).join(format!("{s}.csv"))))
        .collect()
}

/// The open-set settings of the bench: 20 episodes, no projection (its
/// choice is `evaluate`'s work, timed there).
fn openset_params() -> ValidOpenSetParams {
    OpenSetParams::default()
        .episodes(
            SelfCalibrationParams::default()
                .new_fraction(0.3)
                .query_fraction(0.3)
                .episodes(20)
                .seed(2025)
                .grid_steps(-0.2..=1.0, 240),
        )
        .check()
        .unwrap()
}

/// RootSIFT fused with cosine on each query's 50 nearest database photos,
/// weighted mean of the calibrated probabilities, decided by the best photo.
fn fusion_params() -> ValidFusionParams {
    FusionParams::default()
        .shortlist(50)
        .weights(vec![1.0, 1.0])
        .rules(vec![Rule::Top1])
        .check()
        .unwrap()
}

/// RootSIFT keypoints of every record, computed from the files (no cache).
fn sift(records: &[Record], params: &ValidLocalParams) -> FeatureStore {
    let paths: Vec<&Path> = records.iter().map(|r| r.path.as_path()).collect();
    FeatureStore::extract_with(&paths, params, None, |_, _| {}).unwrap()
}

/// Cosine identification fused with RootSIFT on `store`'s keypoints.
fn fused(
    cosine: &Identification,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    store: &FeatureStore,
) -> Identification {
    let scorer = LocalScorer::new(store.params())
        .named("sift")
        .queries(store.features())
        .gallery(store.features());
    let sources: Vec<&dyn PairScorer> = vec![&scorer];
    fuse(
        cosine,
        records,
        embeddings,
        &openset_params(),
        &sources,
        &fusion_params(),
    )
    .unwrap()
}

/// One line per stage of an identification.
fn print_stages(set: &str, what: &str, s: &StageSeconds, queries: usize) {
    eprintln!(
        "{set} {what}: database {:.2} s (projection {:.2}, self-calibration {:.2}, fusion calibration {:.2}); \
         queries {:.2} s = {:.2} ms per query (search {:.3}, local matching {:.2}, decide {:.3})",
        s.database,
        s.projection,
        s.calibration,
        s.fusion_calibration,
        s.queries,
        1e3 * s.queries / queries.max(1) as f64,
        s.search,
        s.local,
        s.decide
    );
}

fn bench_set(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    set: &str,
    csv: &Path,
    backbone: &Backbone,
) {
    let Ok((ds, _)) = load_animalclef(csv, &LoadOptions::default()) else {
        eprintln!("skipping {set}: {} not found", csv.display());
        return;
    };
    let records = &ds.records;
    let extract_params: ValidExtractParams =
        ExtractParams::default().batch_size(32).check().unwrap();
    let params = openset_params();
    let local = LocalParams::default().check().unwrap();
    g.throughput(Throughput::Elements(records.len() as u64));

    // One run first: where the time goes inside the open-set stages.
    let emb = extract(backbone, records, &extract_params, |_| {}).unwrap();
    let cosine = identify(records, emb.matrix.view(), &params).unwrap();
    print_stages(set, "cosine", &cosine.seconds, cosine.queries.len());
    let store = sift(records, &local);
    let fusion = fused(&cosine, records, emb.matrix.view(), &store);
    print_stages(set, "+ sift B = 50", &fusion.seconds, fusion.queries.len());

    g.bench_function(format!("{set}/files_to_decisions"), |b| {
        b.iter(|| {
            let (ds, _) = load_animalclef(csv, &LoadOptions::default()).unwrap();
            let emb = extract(backbone, &ds.records, &extract_params, |_| {}).unwrap();
            identify(&ds.records, emb.matrix.view(), &params)
                .unwrap()
                .predictions
                .len()
        })
    });
    g.bench_function(format!("{set}/files_to_decisions_sift"), |b| {
        b.iter(|| {
            let (ds, _) = load_animalclef(csv, &LoadOptions::default()).unwrap();
            let emb = extract(backbone, &ds.records, &extract_params, |_| {}).unwrap();
            let cosine = identify(&ds.records, emb.matrix.view(), &params).unwrap();
            let store = sift(&ds.records, &local);
            fused(&cosine, &ds.records, emb.matrix.view(), &store)
                .predictions
                .len()
        })
    });
    let pre = backbone.preprocess_params().check().unwrap();
    let prefetch = PrefetchParams::default().batch_size(32).check().unwrap();
    g.bench_function(format!("{set}/decode"), |b| {
        b.iter(|| {
            BatchIter::new(records.to_vec(), pre.clone(), prefetch)
                .map(|batch| batch.unwrap().ids.len())
                .sum::<usize>()
        })
    });
    g.bench_function(format!("{set}/embed"), |b| {
        b.iter(|| {
            extract(backbone, records, &extract_params, |_| {})
                .unwrap()
                .matrix
                .nrows()
        })
    });
    g.bench_function(format!("{set}/openset"), |b| {
        b.iter(|| {
            identify(records, emb.matrix.view(), &params)
                .unwrap()
                .predictions
                .len()
        })
    });
    g.bench_function(format!("{set}/sift_features"), |b| {
        b.iter(|| sift(records, &local).features().len())
    });
    g.bench_function(format!("{set}/fusion"), |b| {
        b.iter(|| {
            fused(&cosine, records, emb.matrix.view(), &store)
                .predictions
                .len()
        })
    });
}

fn bench(c: &mut Criterion) {
    let backbone = match BackboneBuilder::new("mobilenet_v2").build() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("files_to_decisions");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    for (set, csv) in sets() {
        bench_set(&mut g, &set, &csv, &backbone);
    }
    g.finish();
}

// Minutes per sample: no plots (they need fonts and add nothing here).
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
