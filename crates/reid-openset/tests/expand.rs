//! Database-side augmentation and α-query expansion: values worked out by
//! hand, and typed errors for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array2, array};
use reid_openset::expand::{augment_database, expand_queries};
use reid_openset::{AdaptParams, Adaptation, OpensetError, ParamGuard};

fn unit(v: [f32; 2]) -> [f32; 2] {
    let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
    [v[0] / n, v[1] / n]
}

fn close(got: &Array2<f32>, want: &[[f32; 2]]) {
    assert_eq!(got.nrows(), want.len());
    for (g, w) in got.outer_iter().zip(want) {
        assert!(
            (g[0] - w[0]).abs() < 1e-6 && (g[1] - w[1]).abs() < 1e-6,
            "{g} vs {w:?}"
        );
    }
}

#[test]
fn augmentation_merges_the_nearest_rows_of_the_same_identity() {
    // Identity a: three rows at 0°, 36.87° (cos 0.8 to row 0) and 90°;
    // identity b: one row, which stays as it is. Row 2 is nearer row 1
    // (cos 0.6) than row 0 (cos 0).
    let db = array![[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, -0.8]];
    let labels = ["a", "a", "a", "b"];
    let g = augment_database(db.view(), &labels, 2, 3.0).unwrap();
    // Row 0: itself + 0.8^3 row 1; row 1: itself + 0.8^3 row 0 (0.8 > 0.6);
    // row 2: itself + 0.6^3 row 1.
    let w8 = 0.8f32.powi(3);
    let w6 = 0.6f32.powi(3);
    close(
        &g,
        &[
            unit([1.0 + w8 * 0.8, w8 * 0.6]),
            unit([0.8 + w8, 0.6]),
            unit([w6 * 0.8, 1.0 + w6 * 0.6]),
            [0.6, -0.8],
        ],
    );
    // k = 3 over identity a: row 2 also takes row 0, at weight 0^3 = 0.
    let g3 = augment_database(db.view(), &labels, 3, 3.0).unwrap();
    close(
        &g3.slice(ndarray::s![2..3, ..]).to_owned(),
        &[unit([w6 * 0.8, 1.0 + w6 * 0.6])],
    );
    // k <= 1: nothing changes.
    assert_eq!(augment_database(db.view(), &labels, 1, 3.0).unwrap(), db);
    assert_eq!(augment_database(db.view(), &labels, 0, 3.0).unwrap(), db);
}

#[test]
fn query_expansion_adds_the_nearest_database_rows() {
    let db = array![[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0]];
    // q at cos 0.96 to row 0, 0.936 to row 1, 0.28 to row 2.
    let q = array![[0.96f32, 0.28]];
    let a = 0.96f32.powi(3);
    let b = (0.96f32 * 0.8 + 0.28 * 0.6).powi(3);
    let y = expand_queries(q.view(), db.view(), 2, 3.0).unwrap();
    close(&y, &[unit([0.96 + a + b * 0.8, 0.28 + b * 0.6])]);
    // alpha 0: every neighbour weighs 1.
    let y0 = expand_queries(q.view(), db.view(), 1, 0.0).unwrap();
    close(&y0, &[unit([1.96, 0.28])]);
    assert_eq!(expand_queries(q.view(), db.view(), 0, 3.0).unwrap(), q);
    // A negative cosine weighs nothing.
    let far = array![[-1.0f32, 0.0]];
    let y = expand_queries(far.view(), db.view(), 1, 3.0).unwrap();
    close(&y, &[[-1.0, 0.0]]);
}

#[test]
fn bad_input_is_a_typed_error() {
    let db = array![[1.0f32, 0.0], [0.0, 1.0]];
    let e = augment_database(db.view(), &["a"], 2, 3.0).unwrap_err();
    assert!(matches!(e, OpensetError::Length { .. }), "{e}");
    let nan = array![[f32::NAN, 0.0], [0.0, 1.0]];
    assert!(augment_database(nan.view(), &["a", "a"], 2, 3.0).is_err());
    assert!(expand_queries(nan.view(), db.view(), 1, 3.0).is_err());
    let e = expand_queries(array![[1.0f32, 0.0, 0.0]].view(), db.view(), 1, 3.0).unwrap_err();
    assert!(e.to_string().contains("[1, 3]"), "{e}");
    let e = augment_database(db.view(), &["a", "a"], 2, -1.0).unwrap_err();
    assert!(e.to_string().contains("alpha"), "{e}");
    let e = AdaptParams::new(Adaptation::Center)
        .alpha(f32::NAN)
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("alpha"), "{e}");
}

#[test]
fn the_settings_name_themselves() {
    let p = AdaptParams::new(Adaptation::Whiten)
        .shrinkage(0.1)
        .dba(3)
        .qe(2)
        .check()
        .unwrap();
    assert_eq!(
        p.to_string(),
        "whiten(shrinkage 0.1) + dba 3 + qe 2 (alpha 1)"
    );
    let p = AdaptParams::new(Adaptation::Center).check().unwrap();
    assert_eq!(p.to_string(), "center");
}
