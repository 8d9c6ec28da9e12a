//! Projections fitted on the database: PCA whitening and LDA against
//! scikit-learn (`scripts/fixtures/adapt_sklearn.py`), and the episodes'
//! projections never seeing their pseudo-queries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_dir, matrix};
use ndarray::{Array2, Axis};
use reid_openset::{AdaptParams, Adaptation, ParamGuard, Projection};

fn cases(kind: &str) -> Vec<serde_json::Value> {
    let path = fixture_dir("adapt_sklearn").join("adapt_sklearn.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v[kind].as_array().unwrap().clone()
}

/// Each column of `got` equals the same column of `want` up to its sign,
/// within `tol` relative to the column's largest value.
fn same_up_to_sign(got: &Array2<f32>, want: &Array2<f32>, tol: f32, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    for (j, (g, w)) in got
        .axis_iter(Axis(1))
        .zip(want.axis_iter(Axis(1)))
        .enumerate()
    {
        let sign = if g.dot(&w) < 0.0 { -1.0 } else { 1.0 };
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = g
            .iter()
            .zip(w.iter())
            .fold(0.0f32, |m, (a, b)| m.max((sign * a - b).abs()));
        assert!(
            err <= tol * scale,
            "{what}: column {j}: max error {err} (scale {scale})"
        );
    }
}

#[test]
fn pca_whitening_matches_scikit_learn() {
    for (i, case) in cases("pca").iter().enumerate() {
        let x = matrix(&case["x"]);
        let k = case["k"].as_u64().unwrap() as usize;
        let want = matrix(&case["y"]);
        let labels = vec!["x"; x.nrows()];
        let p = AdaptParams::new(Adaptation::PcaWhiten)
            .shrinkage(0.0)
            .dim(Some(k))
            .check()
            .unwrap();
        let proj = Projection::fit(x.view(), &labels, &p).unwrap();
        assert_eq!(proj.output_dim(), k);
        let centred = &x - &proj.mean().view().insert_axis(Axis(0));
        let got = centred.dot(proj.matrix().unwrap());
        same_up_to_sign(&got, &want, 1e-4, &format!("pca case {i}"));
        // All it can give: the rank (rows - 1 when fewer rows than dims).
        let all = AdaptParams::new(Adaptation::PcaWhiten)
            .shrinkage(0.0)
            .check()
            .unwrap();
        let full = Projection::fit(x.view(), &labels, &all).unwrap();
        assert_eq!(
            full.output_dim(),
            x.ncols().min(x.nrows() - 1),
            "pca case {i}"
        );
    }
}

#[test]
fn lda_matches_scikit_learn() {
    for (i, case) in cases("lda").iter().enumerate() {
        let x = matrix(&case["x"]);
        let labels: Vec<String> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        let want = matrix(&case["y"]);
        let p = AdaptParams::new(Adaptation::Lda)
            .shrinkage(case["shrinkage"].as_f64().unwrap())
            .check()
            .unwrap();
        let proj = Projection::fit(x.view(), &labels, &p).unwrap();
        // scikit-learn's eigen solver projects without centring.
        let got = x.dot(proj.matrix().unwrap());
        same_up_to_sign(&got, &want, 1e-4, &format!("lda case {i}"));
    }
}

/// The projection an episode searches through is fitted on its
/// pseudo-gallery only: replacing every pseudo-query's embedding with noise
/// leaves the projected pseudo-gallery bit for bit the same, and it equals
/// a projection fitted by hand on the pseudo-gallery rows.
#[test]
fn an_episode_projection_never_sees_its_pseudo_queries() {
    use reid_openset::episodes::episode_view;
    use reid_openset::expand::{augment_database, expand_queries};
    use reid_openset::simulate_episodes;
    let sizes = [6, 5, 5, 4, 4, 3, 3, 2, 2, 1];
    let (x, labels) = common::planted(&sizes, 0.5, 0.2, 24, 11);
    let eps = simulate_episodes(&labels, &common::episodes(0.3, 0.4, 4, 5, vec![0.5])).unwrap();
    for method in [
        Adaptation::Center,
        Adaptation::PcaWhiten,
        Adaptation::Whiten,
        Adaptation::Lda,
    ] {
        // The projection alone, then with the neighbourhood steps.
        for (dba, qe) in [(0, 0), (3, 2)] {
            let p = AdaptParams::new(method)
                .shrinkage(0.3)
                .dba(dba)
                .qe(qe)
                .check()
                .unwrap();
            for (e, ep) in eps.iter().enumerate() {
                let g = common::gallery(&x, &labels);
                let (pseudo, q) = episode_view(&g, &labels, ep, Some(&p)).unwrap();
                let mut noisy = x.clone();
                let noise = common::random_rows(ep.queries.len(), x.ncols(), 100 + e as u64);
                for (k, &r) in ep.queries.iter().enumerate() {
                    noisy.row_mut(r).assign(&noise.row(k));
                }
                let g2 = common::gallery(&noisy, &labels);
                let (pseudo2, q2) = episode_view(&g2, &labels, ep, Some(&p)).unwrap();
                assert_eq!(pseudo.embeddings(), pseudo2.embeddings(), "{p} episode {e}");
                assert_ne!(q, q2, "{p} episode {e}: the queries did change");
                // One query changed: no other query moves (a query is
                // expanded with database rows only).
                let mut one = x.clone();
                one.row_mut(ep.queries[0]).assign(&noise.row(0));
                let (_, q3) =
                    episode_view(&common::gallery(&one, &labels), &labels, ep, Some(&p)).unwrap();
                assert_eq!(
                    q.slice(ndarray::s![1.., ..]),
                    q3.slice(ndarray::s![1.., ..])
                );
                // The same steps, fitted by hand on the pseudo-gallery.
                let rows = common::rows_of(&x, &ep.gallery);
                let g_labels: Vec<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
                let own = Projection::fit(rows.view(), &g_labels, &p).unwrap();
                let own_g = own.transform(rows.view()).unwrap();
                let own_g = augment_database(own_g.view(), &g_labels, dba, p.alpha()).unwrap();
                assert_eq!(pseudo.embeddings(), own_g, "{p}");
                let q_rows = common::rows_of(&x, &ep.queries);
                let own_q = own.transform(q_rows.view()).unwrap();
                let own_q = expand_queries(own_q.view(), own_g.view(), qe, p.alpha()).unwrap();
                assert_eq!(q, own_q, "{p}");
            }
        }
    }
}
