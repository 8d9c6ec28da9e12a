//! The open-set pipeline on hand-made embeddings: decisions, per-dataset
//! thresholds, new-individual ids and scores worked out by hand, typed
//! errors for bad input, and a fused second source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ndarray::{Array2, Axis};
use reid_index::Gallery;
use reid_openset::{KReciprocalParams, Reranker};
use reid_pipeline::{
    AdaptParams, Adaptation, FusionParams, OpenSetParams, ParamGuard, PipelineError, Record,
    SplitRole, fuse, identify,
};

fn rec(id: &str, who: Option<&str>, split: SplitRole, dataset: &str) -> Record {
    let mut r = Record::new(id, format!("{id}.jpg"))
        .with_split(split)
        .with_dataset(dataset);
    r.identity = who.map(str::to_owned);
    r
}

/// Unit vector at `deg` degrees in the plane of axes `a` and `b` of 4-d.
fn at(deg: f32, a: usize, b: usize) -> [f32; 4] {
    let mut v = [0.0; 4];
    v[a] = deg.to_radians().cos();
    v[b] = deg.to_radians().sin();
    v
}

/// Dataset "x": identities a (axis 0) and b (axis 1) in the database; queries
/// q1 (a, 10° from a's photos), q2 (b), and q3, q4 two photos of a new animal
/// n near axis 2, q5 another new animal m near axis 3.
fn setup() -> (Vec<Record>, Array2<f32>) {
    use SplitRole::{Database as D, Query as Q};
    let rows = [
        (rec("a1", Some("a"), D, "x"), at(0.0, 0, 1)),
        (rec("a2", Some("a"), D, "x"), at(5.0, 0, 1)),
        (rec("b1", Some("b"), D, "x"), at(90.0, 0, 1)),
        (rec("b2", Some("b"), D, "x"), at(85.0, 0, 1)),
        (rec("q1", Some("a"), Q, "x"), at(10.0, 0, 1)),
        (rec("q2", Some("b"), Q, "x"), at(80.0, 0, 1)),
        (rec("q3", Some("n"), Q, "x"), at(88.0, 0, 2)),
        (rec("q4", Some("n"), Q, "x"), at(84.0, 0, 2)),
        (rec("q5", Some("m"), Q, "x"), at(89.0, 0, 3)),
    ];
    let emb = Array2::from_shape_fn((rows.len(), 4), |(i, j)| rows[i].1[j]);
    (rows.into_iter().map(|(r, _)| r).collect(), emb)
}

#[test]
fn decisions_new_ids_and_scores_by_hand() {
    let (records, emb) = setup();
    // cos 10° = 0.985 (q1→a2 at 5°: 0.996), q2→b2 at 5°: 0.996; q3, q4, q5
    // have best cosines cos 88° = 0.035, cos 84° = 0.105, cos 89° = 0.017.
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()
        .unwrap();
    let job = identify(&records, emb.view(), &params).unwrap();
    // A fixed threshold: no self-calibration, no projection.
    assert_eq!(
        (job.seconds.calibration, job.seconds.projection),
        (0.0, 0.0)
    );
    assert_eq!(job.database, vec![0, 1, 2, 3]);
    assert_eq!(job.queries, vec![4, 5, 6, 7, 8]);
    assert_eq!(job.scope_names(), vec!["x"; 5]);
    // q3·q4 = cos 4° (distance 0.002 < 1 - 0.5): one new animal; q5 is at
    // distance 1 - 0.035·0.105 - ... ≈ 1 from both: another.
    assert_eq!(
        job.final_ids,
        vec!["a", "b", "new_0001", "new_0001", "new_0002"]
    );
    let order: Vec<usize> = job.matches[0].iter().map(|m| m.database).collect();
    assert_eq!(order, vec![1, 0, 3, 2]);

    let s = job.score(&records).unwrap().unwrap();
    assert_eq!((s.known_queries, s.new_queries), (2, 3));
    let x = s.animalclef.per_dataset["x"];
    assert_eq!((x.baks, x.baus), (Some(1.0), Some(1.0)));
    assert_eq!(s.closed_top1, Some(1.0));
    assert_eq!(s.new_id_ari, Some(1.0));

    // At threshold 0.999 every query is new: BAKS 0, BAUS 1, score 0; the
    // ids group q1 with nothing (distance to q2 is 1 - cos 70°).
    let all_new = OpenSetParams::default()
        .fixed_threshold(Some(0.999))
        .check()
        .unwrap();
    let job = identify(&records, emb.view(), &all_new).unwrap();
    assert!(job.predictions.iter().all(|p| p.decision.is_new()));
    let s = job.score(&records).unwrap().unwrap();
    let x = s.animalclef.per_dataset["x"];
    assert_eq!((x.baks, x.baus), (Some(0.0), Some(1.0)));
    assert_eq!(s.animalclef.score, 0.0);
    // The closed-set top-1 ignores the threshold.
    assert_eq!(s.closed_top1, Some(1.0));
}

#[test]
fn self_calibrated_thresholds_are_per_dataset_and_scored_per_dataset() {
    use SplitRole::{Database as D, Query as Q};
    // Dataset "y": identities in two tight pairs at 60° apart; its own
    // threshold must separate pairs (cos 2° ≈ 0.9994) from others (cos 60°).
    let (mut records, emb) = setup();
    let mut rows: Vec<[f32; 4]> = emb.outer_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect();
    for (k, deg) in [0.0f32, 60.0, 120.0, 180.0].into_iter().enumerate() {
        for (j, d) in [0.0f32, 2.0].into_iter().enumerate() {
            records.push(rec(&format!("y{k}{j}"), Some(&format!("y{k}")), D, "y"));
            rows.push(at(deg + d, 2, 3));
        }
    }
    records.push(rec("yq", Some("y1"), Q, "y"));
    rows.push(at(61.0, 2, 3));
    let emb = Array2::from_shape_fn((rows.len(), 4), |(i, j)| rows[i][j]);
    let job = identify(
        &records,
        emb.view(),
        &OpenSetParams::default().check().unwrap(),
    )
    .unwrap();
    let cal = job.calibration.as_ref().unwrap();
    assert!(cal.per_group.contains_key("y"));
    let ty = job.thresholds.get(Some("y"));
    assert!(ty > 0.5 && ty < 0.9994, "threshold of y: {ty}");
    assert_eq!(job.scope_names().last().copied(), Some("y"));
    assert_eq!(job.final_ids.last().map(String::as_str), Some("y1"));
    let s = job.score(&records).unwrap().unwrap();
    assert_eq!(
        s.animalclef.per_dataset.keys().collect::<Vec<_>>(),
        vec!["x", "y"]
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let (mut records, emb) = setup();
    let p = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()
        .unwrap();
    // Rows and records disagree.
    let short = emb.slice(ndarray::s![..5, ..]);
    assert!(matches!(
        identify(&records, short, &p),
        Err(PipelineError::Rows {
            records: 9,
            rows: 5
        })
    ));
    // A database record without identity is named.
    records[2].identity = None;
    match identify(&records, emb.view(), &p) {
        Err(PipelineError::Unlabelled { image_id, row }) => {
            assert_eq!((image_id.as_str(), row), ("b1", 2))
        }
        other => panic!("{other:?}"),
    }
    // No queries.
    let (records, emb) = setup();
    let db: Vec<Record> = records[..4].to_vec();
    assert!(matches!(
        identify(&db, emb.slice(ndarray::s![..4, ..]), &p),
        Err(PipelineError::Empty { what: "query" })
    ));
    // Unlabelled queries: the job runs, the score is None.
    let mut test = records.clone();
    test[6].identity = None;
    let job = identify(&test, emb.view(), &p).unwrap();
    assert!(job.score(&test).unwrap().is_none());
    // NaN in the embeddings reaches the open-set crate's typed error.
    let mut bad = emb.clone();
    bad[[1, 1]] = f32::NAN;
    assert!(identify(&records, bad.view(), &p).is_err());
    // Bad parameters are refused up front.
    assert!(OpenSetParams::default().shortlist(0).check().is_err());
    assert!(
        OpenSetParams::default()
            .fixed_threshold(Some(f32::NAN))
            .check()
            .is_err()
    );
    // A 0-column matrix is refused.
    let empty = Array2::<f32>::zeros((9, 0));
    assert!(identify(&records, empty.view(), &p).is_err());
}

/// 12 identities × 4 database photos and 12 queries (one photo each of 8
/// known identities, two each of 2 new animals) on random, uninformative
/// embeddings; a second source that knows the truth (10 for the same
/// animal, below 3 otherwise). Fused and self-calibrated from the database
/// alone, every query is decided right; cosine alone is far from it.
#[test]
fn fused_job_self_calibrates_a_second_source() {
    use SplitRole::{Database as D, Query as Q};
    use reid_openset::FnScorer;
    let mut records = Vec::new();
    for id in 0..12 {
        for k in 0..4 {
            records.push(rec(&format!("d{id}_{k}"), Some(&format!("id{id}")), D, "x"));
        }
    }
    for id in 0..8 {
        records.push(rec(&format!("q{id}"), Some(&format!("id{id}")), Q, "x"));
    }
    for k in 0..4 {
        records.push(rec(
            &format!("n{k}"),
            Some(&format!("new{}", k / 2)),
            Q,
            "x",
        ));
    }
    let n = records.len();
    // Deterministic pseudo-random unit rows.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32
    };
    let mut emb = Array2::from_shape_fn((n, 16), |_| next() - 0.5);
    for mut r in emb.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    let noise: Vec<f32> = (0..n * n).map(|_| 3.0 * next()).collect();
    let ids: Vec<String> = records
        .iter()
        .map(|r| r.identity.clone().unwrap())
        .collect();
    let truth = FnScorer::new("truth", |a: usize, b: usize| {
        Ok(if ids[a] == ids[b] {
            10.0
        } else {
            noise[a * n + b]
        })
    });
    let params = OpenSetParams::default().check().unwrap();
    let global = identify(&records, emb.view(), &params).unwrap();
    let global_score = global.score(&records).unwrap().unwrap().animalclef.score;
    let fusion = FusionParams::default().shortlist(48).check().unwrap();
    let job = fuse(
        &identify(&records, emb.view(), &params).unwrap(),
        &records,
        emb.view(),
        &params,
        &[&truth],
        &fusion,
    )
    .unwrap();
    let s = job.score(&records).unwrap().unwrap();
    assert_eq!(s.animalclef.score, 1.0, "{:?}", s.animalclef);
    assert!(global_score < 0.8, "cosine alone: {global_score}");
    for (k, p) in job.predictions.iter().enumerate().take(8) {
        assert_eq!(p.decision.identity(), Some(format!("id{k}").as_str()));
    }
    // The new animals get new ids (grouped by cosine, which is random here).
    assert!(job.final_ids[8..].iter().all(|id| id.starts_with("new_")));
    // Where the time went: the parts sit inside their totals, the fusion
    // keeps the cosine job's database stages and adds its own.
    let (c, f) = (&global.seconds, &job.seconds);
    assert_eq!(
        (c.projection, c.fusion_calibration, c.local),
        (0.0, 0.0, 0.0)
    );
    assert!(c.calibration > 0.0 && c.calibration <= c.database, "{c:?}");
    assert!(c.search + c.decide <= c.queries + 1e-6, "{c:?}");
    assert!(f.fusion_calibration > 0.0 && f.local > 0.0, "{f:?}");
    assert!(
        f.projection + f.calibration + f.fusion_calibration <= f.database + 1e-6,
        "{f:?}"
    );
    assert!(
        (f.search + f.local + f.decide - f.queries).abs() < 1e-9,
        "{f:?}"
    );
    let report = job.fusion.as_ref().unwrap();
    assert_eq!(report.shortlist, 48);
    assert_eq!(report.query_pairs, 12 * 48);
    assert!(report.database_pairs > 0 && report.database_pairs <= 48 * 47);
    // One dataset: its own calibration is the default.
    let cal = &report.calibration;
    assert_eq!(cal.per_group.keys().collect::<Vec<_>>(), vec!["x"]);
    assert_eq!(cal.per_group["x"], cal.all);
    // The fusion step on the cosine job already made gives the same job.
    let again = fuse(&global, &records, emb.view(), &params, &[&truth], &fusion).unwrap();
    assert_eq!(again.final_ids, job.final_ids);
    assert_eq!(again.matches, job.matches);
    // A job from other records is refused.
    assert!(matches!(
        fuse(
            &global,
            &records[..40],
            emb.slice(ndarray::s![..40, ..]),
            &params,
            &[&truth],
            &fusion
        ),
        Err(PipelineError::InvalidParam {
            name: "identification",
            ..
        })
    ));
    // A zero shortlist is refused up front; so are three weights for two
    // sources, and a fusion with no pair scorer.
    assert!(FusionParams::default().shortlist(0).check().is_err());
    let three = FusionParams::default()
        .shortlist(48)
        .weights(vec![1.0, 1.0, 1.0])
        .check()
        .unwrap();
    assert!(matches!(
        fuse(&global, &records, emb.view(), &params, &[&truth], &three),
        Err(PipelineError::InvalidParam {
            name: "weights",
            ..
        })
    ));
    assert!(matches!(
        fuse(&global, &records, emb.view(), &params, &[], &fusion),
        Err(PipelineError::InvalidParam {
            name: "scorers",
            ..
        })
    ));
    // Three sources: the truth, and a scorer that says the same of every
    // pair (its calibration is flat, so the truth still decides). Each
    // scorer's work is reported on its own, and they add up.
    let flat = FnScorer::new("flat", |_a: usize, _b: usize| Ok(1.0f32));
    let both = fuse(
        &global,
        &records,
        emb.view(),
        &params,
        &[&truth, &flat],
        &three,
    )
    .unwrap();
    let s3 = both.score(&records).unwrap().unwrap();
    assert!(
        s3.animalclef.score > global_score,
        "{} vs cosine alone {global_score}",
        s3.animalclef.score
    );
    let r3 = both.fusion.as_ref().unwrap();
    let names: Vec<&str> = r3.sources.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["truth", "flat"]);
    assert!(r3.sources.iter().all(|c| c.query_pairs == 12 * 48));
    assert_eq!(r3.query_pairs, 2 * 12 * 48);
    assert_eq!(
        r3.database_pairs,
        r3.sources.iter().map(|c| c.database_pairs).sum::<usize>()
    );

    // Re-ranked (centring, then k-reciprocal): the matches are the
    // re-ranked search of the projected database, the fusion shortlists
    // through it and reads its scores as the first source; the truth still
    // decides every query.
    let k_rec = KReciprocalParams::default().k1(4).k2(2);
    let rr = params
        .with_adapt(Some(
            AdaptParams::new(Adaptation::Center)
                .rerank(Some(k_rec))
                .check()
                .unwrap(),
        ))
        .unwrap();
    let global_rr = identify(&records, emb.view(), &rr).unwrap();
    let a = global_rr.adapted.as_ref().unwrap();
    let db = Gallery::from_labels(
        a.embeddings.select(Axis(0), &global_rr.database).view(),
        &global_rr.database_labels,
    )
    .unwrap();
    let q = a.embeddings.select(Axis(0), &global_rr.queries);
    let top = Reranker::new(&db, &k_rec.check().unwrap())
        .unwrap()
        .search(q.view(), 1)
        .unwrap();
    for (qi, m) in global_rr.matches.iter().enumerate() {
        assert_eq!(
            (m[0].database, m[0].score),
            (top.indices[[qi, 0]], top.scores[[qi, 0]])
        );
    }
    let fused_rr = fuse(&global_rr, &records, emb.view(), &rr, &[&truth], &fusion).unwrap();
    let s_rr = fused_rr.score(&records).unwrap().unwrap();
    assert_eq!(s_rr.animalclef.score, 1.0, "{:?}", s_rr.animalclef);
    assert_eq!(fused_rr.fusion.as_ref().unwrap().query_pairs, 12 * 48);
}
