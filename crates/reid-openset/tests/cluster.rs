//! New-individual clustering: parity with scikit-learn's agglomerative
//! clustering, new ids, ARI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ndarray::{Array2, array};
use reid_openset::score::adjusted_rand_index;
use reid_openset::{
    ClusterParams, Decision, Linkage, OpensetError, ParamGuard, Prediction, ValidClusterParams,
    assign_new_ids, cluster,
};

fn params(linkage: Linkage, t: f32) -> ValidClusterParams {
    ClusterParams::new(t).linkage(linkage).check().unwrap()
}

/// scikit-learn's labels renumbered by first appearance.
fn canonical(labels: &[i64]) -> Vec<usize> {
    let mut seen: Vec<i64> = Vec::new();
    labels
        .iter()
        .map(|l| match seen.iter().position(|s| s == l) {
            Some(i) => i,
            None => {
                seen.push(*l);
                seen.len() - 1
            }
        })
        .collect()
}

#[test]
fn matches_sklearn_agglomerative() {
    let fx = common::sklearn_fixture();
    let cases = fx["agglomerative"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for (i, c) in cases.iter().enumerate() {
        let x = common::matrix(&c["x"]);
        let linkage = match c["linkage"].as_str().unwrap() {
            "single" => Linkage::Single,
            "average" => Linkage::Average,
            _ => Linkage::Complete,
        };
        let t = c["threshold"].as_f64().unwrap() as f32;
        let want = canonical(&common::i64s(&c["labels"]));
        let got = cluster(x.view(), &params(linkage, t)).unwrap();
        assert_eq!(got, want, "case {i} ({linkage:?}, t = {t})");
        assert_eq!(adjusted_rand_index(&got, &want).unwrap(), 1.0);
    }
}

/// Points on a circle at angles 0°, 10°, 30°, 90°: cosine distances
/// d(0,10) = 0.0152, d(10,30) = 0.0603, d(0,30) = 0.1340, 90° is ≥ 0.5 from
/// all. With threshold 0.1: single joins {0,10} then 30 (0.0603 < 0.1);
/// complete stops at {0,10},{30} (max 0.134 ≥ 0.1); average gives
/// (0.134 + 0.0603)/2 = 0.097 < 0.1, so joins.
#[test]
fn linkages_by_hand() {
    let p = |deg: f32| {
        let r = deg.to_radians();
        [r.cos(), r.sin()]
    };
    let rows = [p(0.0), p(10.0), p(30.0), p(90.0)];
    let x = Array2::from_shape_fn((4, 2), |(i, j)| rows[i][j]);
    let run = |l| cluster(x.view(), &params(l, 0.1)).unwrap();
    assert_eq!(run(Linkage::Single), vec![0, 0, 0, 1]);
    assert_eq!(run(Linkage::Average), vec![0, 0, 0, 1]);
    assert_eq!(run(Linkage::Complete), vec![0, 0, 1, 2]);
}

#[test]
fn new_queries_get_consistent_ids() {
    let known = |id: &str| Prediction {
        decision: Decision::Known(id.into()),
        similarity: 0.9,
        candidate: id.into(),
    };
    let new = || Prediction {
        decision: Decision::New,
        similarity: 0.1,
        candidate: "a".into(),
    };
    let preds = vec![new(), known("a"), new(), new(), known("b")];
    // Rows 0 and 3 are one animal, row 2 another; rows 1 and 4 are ignored.
    let q = array![
        [1.0f32, 0.0],
        [0.0, 1.0],
        [0.0, 1.0],
        [0.99, 0.141],
        [1.0, 0.0]
    ];
    let ids = assign_new_ids(&preds, q.view(), &params(Linkage::Average, 0.2), "new_").unwrap();
    assert_eq!(ids, vec!["new_0001", "a", "new_0002", "new_0001", "b"]);
    // Scored by ARI against the truth of the new queries.
    let truth = ["n7", "n9", "n7"];
    let found = [&ids[0], &ids[2], &ids[3]];
    assert_eq!(adjusted_rand_index(&truth, &found).unwrap(), 1.0);
}

#[test]
fn cluster_edge_cases_and_errors() {
    let p = params(Linkage::Average, 0.3);
    // Average linkage unless told otherwise; the settings read back.
    assert_eq!(ClusterParams::new(0.3).check().unwrap(), p);
    assert_eq!(
        (p.linkage(), p.distance_threshold()),
        (Linkage::Average, 0.3)
    );
    // The largest cosine distance, 2, is allowed.
    assert!(ClusterParams::new(2.0).check().is_ok());
    assert!(
        cluster(Array2::<f32>::zeros((0, 3)).view(), &p)
            .unwrap()
            .is_empty()
    );
    assert_eq!(cluster(array![[1.0f32, 0.0]].view(), &p).unwrap(), vec![0]);
    assert!(matches!(
        cluster(array![[1.0f32, f32::NAN]].view(), &p),
        Err(OpensetError::NonFinite { row: 0, col: 1, .. })
    ));
    for t in [0.0, -0.1, 2.5, f32::NAN, f32::INFINITY] {
        let p = ClusterParams::new(t).linkage(Linkage::Single);
        assert!(matches!(
            p.check_ref(),
            Err(OpensetError::InvalidParam {
                name: "distance_threshold",
                ..
            })
        ));
        assert!(matches!(
            p.check(),
            Err(OpensetError::InvalidParam {
                name: "distance_threshold",
                ..
            })
        ));
    }
    assert!(matches!(
        assign_new_ids(&[], array![[1.0f32, 0.0]].view(), &p, "new_"),
        Err(OpensetError::Length { .. })
    ));
}
