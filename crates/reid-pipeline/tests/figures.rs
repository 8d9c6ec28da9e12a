//! The report's pictures checked against what they show: histogram counts
//! against the decisions, the CMC against the ranking, reliability bins and
//! ECE against the fused probabilities, the calibration curve against the
//! self-calibration, confusions worked out by hand; and the files: inside
//! the output folder whatever the dataset is called, embedded in a
//! self-contained HTML report, the data kept in its JSON.
#![cfg(feature = "report")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::two_sets;
use ndarray::Array2;
use reid_eval::report::{Item, Report};
use reid_openset::{FnScorer, expected_calibration_error};
use reid_pipeline::figures::{FigureInputs, dataset_figures, write_figures};
use reid_pipeline::{
    FusionParams, Identification, OpenSetParams, ParamGuard, Record, SplitRole, evaluate, fuse,
    identify,
};

/// The hand-worked sets of `summary.rs` at the fixed threshold 0.5: in X,
/// `qa` is right (cos 0.999), `qb` (truth b) is taken for a (cos 0.866),
/// `qn` is new (cos 0); in Y, `qc` is right and the new `qm` is taken for d
/// (cos 0.985).
#[test]
fn figures_of_the_hand_worked_sets() {
    let (records, emb) = two_sets();
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()
        .unwrap();
    let ident = identify(&records, emb.view(), &params).unwrap();
    let ev = evaluate(&records, emb.view(), &ident).unwrap();
    let fixed = fixed_at(&records, &emb, 0.6);
    let inputs = FigureInputs {
        cosine: None,
        fixed: Some(&fixed),
    };
    let figs = dataset_figures(&records, &ident, Some(&ev), &inputs).unwrap();
    assert_eq!(
        figs.iter().map(|f| f.dataset.as_str()).collect::<Vec<_>>(),
        ["X", "Y"]
    );
    let (x, y) = (&figs[0], &figs[1]);
    // Known and new histograms: X has 2 known queries, both above 0.5, and
    // 1 new one below; Y 1 known above and 1 new above.
    let counts = |f: &reid_pipeline::figures::DatasetFigures| {
        f.scores
            .series
            .iter()
            .map(|(n, h)| (n.clone(), h.total(), h.count_at_least(0.5)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(x),
        [
            ("known individuals".into(), 2, 2),
            ("new individuals".into(), 1, 0)
        ]
    );
    assert_eq!(
        counts(y),
        [
            ("known individuals".into(), 1, 1),
            ("new individuals".into(), 1, 1)
        ]
    );
    assert_eq!((x.scores.accepted(), y.scores.accepted()), (2, 2));
    assert_eq!(
        (x.scores.threshold, x.scores.baseline),
        (0.5, Some(0.6f32.into()))
    );
    // A fixed threshold has no calibration curve; no fusion, no reliability.
    assert!(x.curve.is_none() && x.reliability.is_empty());
    // CMC over ranks 1..4: X's qa at rank 1, qb's first b photo at rank 3;
    // Y's qc at rank 1. The overall CMC is their mean weighted by queries.
    assert_eq!(x.cmc.as_deref(), Some(&[0.5, 0.5, 1.0, 1.0][..]));
    assert_eq!(y.cmc.as_deref(), Some(&[1.0, 1.0, 1.0, 1.0][..]));
    let all = &ev.ranking.as_ref().unwrap().cmc;
    for (r, v) in all.iter().enumerate() {
        let mean = (2.0 * x.cmc.as_ref().unwrap()[r] + y.cmc.as_ref().unwrap()[r]) / 3.0;
        assert!((v - mean).abs() < 1e-12, "rank {}: {v} vs {mean}", r + 1);
    }
    // Confusions: b taken for a (query 1) in X; the new m taken for d (query
    // 4) in Y. Identities worst first: b (0 of 1 right, taken for a), then a.
    let c = &x.confusions;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (
            c[0].truth.as_str(),
            c[0].answer.as_str(),
            c[0].count,
            c[0].example,
            c[0].truth_is_new
        ),
        ("b", "a", 1, 1, false)
    );
    assert_eq!(
        (
            y.confusions[0].truth.as_str(),
            y.confusions[0].answer.as_str(),
            y.confusions[0].truth_is_new
        ),
        ("m", "d", true)
    );
    let rows: Vec<_> = x
        .identities
        .iter()
        .map(|r| {
            (
                r.identity.as_str(),
                r.queries,
                r.right,
                r.wrong,
                r.called_new,
                r.confused_with.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("b", 1, 0, 1, 0, Some("a")), ("a", 1, 1, 0, 0, None)]
    );
}

/// Two datasets (the second named to escape the output folder) of 12
/// identities × 4 database photos around random centres, 8 known and 4 new
/// queries each, and a noisy second source (same animal: 4 to 10, others:
/// 0 to 7).
fn fused_sets() -> (Vec<Record>, Array2<f32>, Vec<f32>) {
    use SplitRole::{Database as D, Query as Q};
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32
    };
    let dim = 16;
    let mut records = Vec::new();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for set in ["x", "../../y"] {
        let centres: Vec<Vec<f32>> = (0..14)
            .map(|_| (0..dim).map(|_| next() - 0.5).collect())
            .collect();
        let photo = |who: usize, next: &mut dyn FnMut() -> f32| -> Vec<f32> {
            centres[who]
                .iter()
                .map(|c| c + 0.35 * (next() - 0.5))
                .collect()
        };
        for id in 0..12 {
            for k in 0..4 {
                let mut r = Record::new(format!("{set}d{id}_{k}"), format!("{id}_{k}.jpg"))
                    .with_identity(format!("id{id}"))
                    .with_split(D);
                r.dataset = Some(set.into());
                records.push(r);
                rows.push(photo(id, &mut next));
            }
        }
        for q in 0..12 {
            let who = if q < 8 { q } else { 12 + (q - 8) / 2 };
            let mut r = Record::new(format!("{set}q{q}"), format!("q{q}.jpg"))
                .with_identity(format!("id{who}"))
                .with_split(Q);
            r.dataset = Some(set.into());
            records.push(r);
            rows.push(photo(who, &mut next));
        }
    }
    let n = records.len();
    let mut emb = Array2::from_shape_vec((n, dim), rows.concat()).unwrap();
    for mut r in emb.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    let noise: Vec<f32> = (0..n * n).map(|_| next()).collect();
    (records, emb, noise)
}

fn fused_job(
    records: &[Record],
    emb: &Array2<f32>,
    noise: &[f32],
) -> (Identification, Identification) {
    let n = records.len();
    let ids: Vec<String> = records
        .iter()
        .map(|r| r.identity.clone().unwrap())
        .collect();
    let source = FnScorer::new("keypoints", |a: usize, b: usize| {
        let u = noise[a * n + b];
        Ok(if ids[a] == ids[b] {
            4.0 + 6.0 * u
        } else {
            7.0 * u
        })
    });
    let params = OpenSetParams::default().check().unwrap();
    let cosine = identify(records, emb.view(), &params).unwrap();
    let fusion = FusionParams::default().shortlist(10).check().unwrap();
    let fused = fuse(&cosine, records, emb.view(), &params, &[&source], &fusion).unwrap();
    (cosine, fused)
}

#[test]
fn fused_figures_match_the_decisions_and_the_probabilities() {
    let (records, emb, noise) = fused_sets();
    let (cosine, fused) = fused_job(&records, &emb, &noise);
    let ev = evaluate(&records, emb.view(), &fused).unwrap();
    let fixed = fixed_at(&records, &emb, 0.6);
    let inputs = FigureInputs {
        cosine: Some(&cosine),
        fixed: Some(&fixed),
    };
    let figs = dataset_figures(&records, &fused, Some(&ev), &inputs).unwrap();
    assert_eq!(figs.len(), 2);
    let truth = fused.truth(&records).unwrap();
    let report = fused.fusion.as_ref().unwrap();
    for f in &figs {
        let g = f.dataset.as_str();
        let known = f
            .queries
            .iter()
            .filter(|&&q| !fused.predictions[q].decision.is_new())
            .count();
        // The bars at and above the threshold are the queries decided known.
        assert_eq!(f.scores.accepted(), known, "{g}");
        let total: usize = f.scores.series.iter().map(|(_, h)| h.total()).sum();
        assert_eq!(total, f.queries.len());
        assert_eq!(f.scores.score, "fused probability");
        assert_eq!(f.scores.threshold, f64::from(fused.thresholds.get(Some(g))));
        assert_eq!(f.scores.baseline, None);
        // The cosine stage, with its own threshold and the fixed baseline.
        let c = f.cosine_scores.as_ref().unwrap();
        let cos_known = f
            .queries
            .iter()
            .filter(|&&q| !cosine.predictions[q].decision.is_new())
            .count();
        assert_eq!(c.accepted(), cos_known);
        assert_eq!(c.baseline, Some(0.6f32.into()));
        // The curve is the fusion's self-calibration of this dataset.
        let curve = f.curve.as_ref().unwrap();
        let own = &report.calibration.per_group[g].self_calibration;
        assert!(curve.own);
        assert_eq!(curve.points, own.curve);
        assert_eq!(curve.threshold, f64::from(fused.thresholds.get(Some(g))));
        // Reliability: cosine, the second source and the fusion, each over
        // every query's top candidate.
        let names: Vec<&str> = f.reliability.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cosine", "keypoints", "fusion"]);
        let cal = report.calibration.get(g);
        let mut top_prob = Vec::new();
        let mut cos_prob = Vec::new();
        let mut right = Vec::new();
        for &q in &f.queries {
            let top = fused.matches[q][0];
            right.push(fused.database_labels[top.database] == truth[q]);
            top_prob.push(top.score.clamp(0.0, 1.0));
            // The cosine source's probability, recomputed from the embeddings.
            let a = emb.row(fused.queries[q]);
            let b = emb.row(fused.database[top.database]);
            cos_prob.push(cal.calibrators[0].probability(a.dot(&b)));
        }
        for (name, probs) in [("fusion", &top_prob), ("cosine", &cos_prob)] {
            let r = &f.reliability.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(r.samples, f.queries.len());
            assert_eq!(
                r.bins.iter().map(|b| b.count).sum::<usize>(),
                f.queries.len()
            );
            let ece = expected_calibration_error(probs, &right, 10).unwrap();
            assert!((r.ece - ece).abs() < 1e-5, "{g} {name}: {} vs {ece}", r.ece);
        }
    }
}

#[test]
fn the_report_embeds_every_figure_and_keeps_the_data() {
    let (records, emb, noise) = fused_sets();
    let (cosine, fused) = fused_job(&records, &emb, &noise);
    let ev = evaluate(&records, emb.view(), &fused).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut report = Report::new("figures");
    let fixed = fixed_at(&records, &emb, 0.6);
    let inputs = FigureInputs {
        cosine: Some(&cosine),
        fixed: Some(&fixed),
    };
    let (figs, files) =
        write_figures(&mut report, &records, &fused, Some(&ev), &inputs, &out).unwrap();
    // Five charts per dataset, PNG and SVG, plus the confusion sheets; every
    // file inside the output folder although a dataset is named "../../y".
    let charts = files
        .iter()
        .filter(|p| p.starts_with(out.join("figures")))
        .count();
    assert_eq!(charts, 2 * 5 * 2, "{files:?}");
    for p in &files {
        assert!(p.is_file(), "{}", p.display());
        let canon = p.canonicalize().unwrap();
        assert!(
            canon.starts_with(out.canonicalize().unwrap()),
            "{}",
            p.display()
        );
    }
    assert!(!dir.path().join("y").exists());
    // The HTML embeds every chart as SVG and needs nothing from the network.
    let html = report.to_html(&out).unwrap();
    let svgs = html.matches("src=\"data:image/svg+xml;base64,").count();
    assert_eq!(svgs, 2 * 5);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("src=\"file:"));
    // The JSON keeps the charts' data: the CMC line is the ranking's CMC.
    let json = dir.path().join("report.json");
    report.write_json(&json).unwrap();
    let back = Report::read_json(&json).unwrap();
    assert_eq!(back.sections.len(), report.sections.len());
    let cmc = ev.cmc_by_dataset(&records, &fused);
    let mut seen = 0;
    for s in &back.sections {
        for item in &s.items {
            if let Item::Chart { chart, .. } = item
                && chart.title.ends_with("CMC of the known queries")
            {
                let g = chart.title.split(':').next().unwrap();
                let ys: Vec<f64> = chart.lines[0].points.iter().map(|p| p.1).collect();
                let fig = figs.iter().find(|f| f.dataset == g).unwrap();
                assert_eq!(fig.cmc.as_ref(), Some(&cmc[g]));
                assert_eq!(ys.len(), cmc[g].len());
                for (a, b) in ys.iter().zip(&cmc[g]) {
                    assert!((a - b).abs() < 1e-12, "{g}: {ys:?} vs {:?}", cmc[g]);
                }
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 2);
}

/// The same queries by raw cosine at a fixed threshold.
fn fixed_at(records: &[Record], emb: &Array2<f32>, t: f32) -> Identification {
    let params = OpenSetParams::default()
        .fixed_threshold(Some(t))
        .check()
        .unwrap();
    identify(records, emb.view(), &params).unwrap()
}

/// The fixed baseline's threshold is a rule on raw cosines; on projected
/// ones it has its own chart, whose bars at and above it are the queries
/// it decides known.
#[test]
fn the_fixed_baseline_on_raw_and_on_projected_cosines() {
    use reid_openset::{AdaptParams, Adaptation};
    let (records, emb, _) = fused_sets();
    let fixed = fixed_at(&records, &emb, 0.6);
    let inputs = FigureInputs {
        cosine: None,
        fixed: Some(&fixed),
    };
    let params = OpenSetParams::default().check().unwrap();
    let raw = identify(&records, emb.view(), &params).unwrap();
    for f in dataset_figures(&records, &raw, None, &inputs).unwrap() {
        assert_eq!(f.scores.baseline, Some(f64::from(0.6f32)));
        assert!(f.fixed_scores.is_none());
    }
    let params = OpenSetParams::default()
        .adapt(Some(AdaptParams::new(Adaptation::Lda)))
        .check()
        .unwrap();
    let projected = identify(&records, emb.view(), &params).unwrap();
    for f in dataset_figures(&records, &projected, None, &inputs).unwrap() {
        assert_eq!(f.scores.baseline, None);
        let b = f.fixed_scores.as_ref().unwrap();
        assert_eq!(b.threshold, f64::from(0.6f32));
        let known = f
            .queries
            .iter()
            .filter(|&&q| !fixed.predictions[q].decision.is_new())
            .count();
        assert_eq!(b.accepted(), known);
    }
}

/// Without the truth (a competition's test set): only the queries' scores
/// and the calibration curve.
#[test]
fn without_the_truth_only_scores_and_curves() {
    let (mut records, emb, noise) = fused_sets();
    let (_, fused) = fused_job(&records, &emb, &noise);
    for r in records
        .iter_mut()
        .filter(|r| r.split == Some(SplitRole::Query))
    {
        r.identity = None;
    }
    let figs = dataset_figures(&records, &fused, None, &FigureInputs::default()).unwrap();
    for f in &figs {
        assert_eq!(f.scores.series.len(), 1);
        assert_eq!(f.scores.series[0].0, "queries");
        assert_eq!(f.scores.series[0].1.total(), 12);
        assert!(f.curve.is_some());
        assert!(f.cmc.is_none() && f.reliability.is_empty() && f.confusions.is_empty());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut report = Report::new("no truth");
    let (_, files) = write_figures(
        &mut report,
        &records,
        &fused,
        None,
        &FigureInputs::default(),
        dir.path(),
    )
    .unwrap();
    // Scores and calibration curve per dataset, PNG and SVG.
    assert_eq!(files.len(), 2 * 2 * 2);
}
