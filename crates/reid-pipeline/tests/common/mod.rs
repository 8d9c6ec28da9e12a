//! Small hand-made datasets shared by the pipeline's tests.
#![allow(dead_code, clippy::unwrap_used)]

use ndarray::Array2;
use reid_pipeline::{Record, SplitRole};

const DIM: usize = 8;

/// Axis `a` tilted by `deg` degrees towards axis `b`.
pub fn tilt(a: usize, b: usize, deg: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[a] = deg.to_radians().cos();
    v[b] += deg.to_radians().sin();
    v
}

/// Dataset X: database a (axis 0), b (axis 1), two photos each; queries
/// `qa` (a, near a), `qb` (b, but 30° from a towards b: a's photos rank
/// first), `qn` (new, axis 4). Dataset Y: database c (axis 2), d (axis 3);
/// queries `qc` (c, near c), `qm` (new, but 10° from d).
pub fn two_sets() -> (Vec<Record>, Array2<f32>) {
    use SplitRole::{Database as D, Query as Q};
    let rows: Vec<(&str, &str, SplitRole, &str, Vec<f32>)> = vec![
        ("a1", "a", D, "X", tilt(0, 5, 0.0)),
        ("a2", "a", D, "X", tilt(0, 5, 5.0)),
        ("b1", "b", D, "X", tilt(1, 5, 0.0)),
        ("b2", "b", D, "X", tilt(1, 5, 5.0)),
        ("c1", "c", D, "Y", tilt(2, 5, 0.0)),
        ("c2", "c", D, "Y", tilt(2, 5, 5.0)),
        ("d1", "d", D, "Y", tilt(3, 5, 0.0)),
        ("d2", "d", D, "Y", tilt(3, 5, 5.0)),
        ("qa", "a", Q, "X", tilt(0, 6, 3.0)),
        ("qb", "b", Q, "X", tilt(0, 1, 30.0)),
        ("qn", "n", Q, "X", tilt(4, 6, 0.0)),
        ("qc", "c", Q, "Y", tilt(2, 6, 3.0)),
        ("qm", "m", Q, "Y", tilt(3, 6, 10.0)),
    ];
    let mut records = Vec::new();
    let mut flat = Vec::new();
    for (id, who, split, set, v) in rows {
        let mut r = Record::new(id, format!("{id}.jpg"))
            .with_identity(who)
            .with_split(split);
        r.dataset = Some(set.into());
        records.push(r);
        flat.extend(v);
    }
    (records, Array2::from_shape_vec((13, DIM), flat).unwrap())
}
