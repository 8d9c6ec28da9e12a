//! Parity with scikit-learn (and an independent numpy ranking) on the
//! fixtures of `scripts/fixtures/eval_sklearn.py`, made by
//! `scripts/setup.sh test`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::Array2;
use reid_eval::ParamGuard;
use reid_eval::metrics::{
    RankingParams, SilhouetteMetric, adjusted_mutual_info, homogeneity_completeness_v_measure,
    mutual_info_score, normalized_mutual_info, ranking_metrics, ranking_metrics_from_lists,
    silhouette_samples, silhouette_score,
};
use serde_json::Value;

mod common;
use common::fixture_dir;

fn fixture() -> Value {
    let path = fixture_dir("eval_sklearn").join("eval_sklearn.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

fn opt_f64s(v: &Value) -> Vec<Option<f64>> {
    v.as_array().unwrap().iter().map(Value::as_f64).collect()
}

fn opt_usizes(v: &Value) -> Vec<Option<usize>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().map(|u| u as usize))
        .collect()
}

fn matrix_f32(v: &Value) -> Array2<f32> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    Array2::from_shape_fn((n, d), |(i, j)| rows[i][j] as f32)
}

fn matrix_usize(v: &Value) -> Array2<usize> {
    let rows: Vec<Vec<i64>> = v.as_array().unwrap().iter().map(i64s).collect();
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    Array2::from_shape_fn((n, d), |(i, j)| rows[i][j] as usize)
}

fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, scikit-learn {want} (|diff| {:e} > {tol:e})",
        (got - want).abs()
    );
}

#[test]
fn clustering_scores_match_sklearn() {
    let fx = fixture();
    let cases = fx["clustering"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (i, c) in cases.iter().enumerate() {
        let (a, b) = (i64s(&c["a"]), i64s(&c["b"]));
        let what = |m: &str| format!("case {i} (n = {}) {m}", a.len());
        assert_close(
            normalized_mutual_info(&a, &b).unwrap(),
            c["nmi"].as_f64().unwrap(),
            1e-9,
            &what("NMI"),
        );
        assert_close(
            adjusted_mutual_info(&a, &b).unwrap(),
            c["ami"].as_f64().unwrap(),
            1e-9,
            &what("AMI"),
        );
        assert_close(
            mutual_info_score(&a, &b).unwrap(),
            c["mi"].as_f64().unwrap(),
            1e-12,
            &what("MI"),
        );
        let h = homogeneity_completeness_v_measure(&a, &b).unwrap();
        assert_close(
            h.homogeneity,
            c["homogeneity"].as_f64().unwrap(),
            1e-9,
            &what("homogeneity"),
        );
        assert_close(
            h.completeness,
            c["completeness"].as_f64().unwrap(),
            1e-9,
            &what("completeness"),
        );
        assert_close(
            h.v_measure,
            c["v_measure"].as_f64().unwrap(),
            1e-9,
            &what("V-measure"),
        );
    }
}

#[test]
fn silhouette_matches_sklearn() {
    let fx = fixture();
    for (i, c) in fx["silhouette"].as_array().unwrap().iter().enumerate() {
        let x = matrix_f32(&c["x"]);
        let labels = i64s(&c["labels"]);
        for (metric, name) in [
            (SilhouetteMetric::Euclidean, "euclidean"),
            (SilhouetteMetric::Cosine, "cosine"),
        ] {
            let what = format!("case {i} ({} points) {name}", x.nrows());
            let score = silhouette_score(x.view(), &labels, metric).unwrap();
            assert_close(
                score,
                c[format!("score_{name}")].as_f64().unwrap(),
                1e-4,
                &what,
            );
            let samples = silhouette_samples(x.view(), &labels, metric).unwrap();
            let want = f64s(&c[format!("samples_{name}")]);
            assert_eq!(samples.len(), want.len());
            for (j, (g, w)) in samples.iter().zip(&want).enumerate() {
                assert_close(*g, *w, 1e-4, &format!("{what} sample {j}"));
            }
        }
    }
}

/// Untied scores: AP against `sklearn.metrics.average_precision_score`, first
/// hits against numpy counting; top-k and CMC follow from the first hits.
#[test]
fn ranking_matches_sklearn_average_precision() {
    let fx = fixture();
    for (i, c) in fx["ranking"].as_array().unwrap().iter().enumerate() {
        check_ranking(i, c, 1e-9);
    }
}

/// Tied scores ordered by the lower gallery index (numpy `lexsort`).
#[test]
fn ranking_with_ties_matches_lexsort() {
    let fx = fixture();
    for (i, c) in fx["ranking_ties"].as_array().unwrap().iter().enumerate() {
        check_ranking(i, c, 1e-12);
        // The same from the top-w lists (AP@w, first hit within w).
        let lists = matrix_usize(&c["lists"]);
        let w = lists.ncols();
        let (q, g) = (strings(&c["queries"]), strings(&c["gallery"]));
        let params = RankingParams::default()
            .ks(&[1, w])
            .cmc_len(w)
            .check()
            .unwrap();
        let m = ranking_metrics_from_lists(lists.view(), &q, &g, &params).unwrap();
        let want_ap = opt_f64s(&c["ap_w"]);
        let want_first = opt_usizes(&c["first_hit_w"]);
        for (j, pq) in m.per_query.iter().enumerate() {
            assert_eq!(pq.first_hit, want_first[j], "ties case {i} query {j}");
            match (pq.average_precision, want_ap[j]) {
                (Some(a), Some(b)) => {
                    assert_close(a, b, 1e-12, &format!("ties case {i} query {j} AP@w"))
                }
                (a, b) => assert_eq!(a, b, "ties case {i} query {j}"),
            }
        }
    }
}

fn check_ranking(i: usize, c: &Value, tol: f64) {
    let s = matrix_f32(&c["scores"]);
    let (q, g) = (strings(&c["queries"]), strings(&c["gallery"]));
    let want_ap = opt_f64s(&c["ap"]);
    let want_first = opt_usizes(&c["first_hit"]);
    let ks = [1, 3, 5, 10];
    let params = RankingParams::default()
        .ks(&ks)
        .cmc_len(g.len())
        .check()
        .unwrap();
    let m = ranking_metrics(s.view(), &q, &g, &params).unwrap();
    let evaluated: Vec<usize> = want_first.iter().filter_map(|f| *f).collect();
    assert_eq!(m.evaluated, evaluated.len(), "case {i}");
    assert_eq!(m.excluded, q.len() - evaluated.len(), "case {i}");
    assert!(
        m.excluded > 0,
        "case {i}: the fixture has queries without a match"
    );
    for (j, pq) in m.per_query.iter().enumerate() {
        assert_eq!(pq.first_hit, want_first[j], "case {i} query {j}");
        match (pq.average_precision, want_ap[j]) {
            (Some(a), Some(b)) => assert_close(a, b, tol, &format!("case {i} query {j} AP")),
            (a, b) => assert_eq!(a, b, "case {i} query {j}"),
        }
    }
    let n = evaluated.len() as f64;
    let want_map = want_ap.iter().flatten().sum::<f64>() / n;
    assert_close(m.mean_ap, want_map, tol, &format!("case {i} mAP"));
    for (r, cmc) in m.cmc.iter().enumerate() {
        let want = evaluated.iter().filter(|&&f| f <= r + 1).count() as f64 / n;
        assert_close(*cmc, want, 1e-15, &format!("case {i} CMC[{r}]"));
    }
    for k in ks {
        let want = evaluated.iter().filter(|&&f| f <= k).count() as f64 / n;
        assert_close(
            m.top_k(k).unwrap(),
            want,
            1e-15,
            &format!("case {i} top-{k}"),
        );
    }
}
