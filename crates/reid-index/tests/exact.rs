//! Exact top-k: hand-worked cases, brute-force parity (ties included) over
//! tilings and thread counts, and typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{brute, int_rows, unit_rows};
use ndarray::{Array2, array, s};
use reid_index::{
    ExactParams, IndexError, ParamGuard, ValidExactParams, exact_topk, exact_topk_with,
};

#[test]
fn hand_worked_three_by_two() {
    // Gallery rows: e1, e2, (0.6, 0.8), -e1.
    let g = array![[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]];
    let q = array![[0.8f32, 0.6], [0.0, -1.0]];
    let top = exact_topk(q.view(), g.view(), 3).unwrap();
    // q0: e1 -> 0.8, e2 -> 0.6, (0.6,0.8) -> 0.48+0.48 = 0.96, -e1 -> -0.8.
    assert_eq!(top.indices.row(0).to_vec(), vec![2, 0, 1]);
    let want = [0.96f32, 0.8, 0.6];
    for (a, b) in top.scores.row(0).iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // q1 = -e2: e1 -> 0, e2 -> -1, (0.6,0.8) -> -0.8, -e1 -> 0; tie 0/0 -> lower index first.
    assert_eq!(top.indices.row(1).to_vec(), vec![0, 3, 2]);
    assert_eq!(top.scores.row(1).to_vec(), vec![0.0, 0.0, -0.8]);
}

#[test]
fn k_beyond_gallery_returns_all_rows() {
    let g = array![[0.0f32, 1.0], [1.0, 0.0]];
    let q = array![[1.0f32, 0.0]];
    let top = exact_topk(q.view(), g.view(), 10).unwrap();
    assert_eq!(top.indices.shape(), &[1, 2]);
    assert_eq!(top.indices.row(0).to_vec(), vec![1, 0]);
    assert_eq!(top.scores.row(0).to_vec(), vec![1.0, 0.0]);
}

#[test]
fn all_equal_scores_keep_lowest_indices() {
    let g = Array2::<f32>::ones((50, 4));
    let q = Array2::<f32>::ones((3, 4));
    for cfg in [
        ValidExactParams::default(),
        ExactParams::default()
            .query_tile(2)
            .gallery_tile(3)
            .check()
            .unwrap(),
    ] {
        let top = exact_topk_with(q.view(), g.view(), 7, &cfg).unwrap();
        for r in top.indices.rows() {
            assert_eq!(r.to_vec(), (0..7).collect::<Vec<_>>());
        }
        assert!(top.scores.iter().all(|&x| x == 4.0));
    }
}

#[test]
fn integer_data_equals_brute_force_exactly_with_ties() {
    let tilings = [(1, 1), (3, 5), (7, 64), (128, 1024), (1000, 17)];
    for (seed, (nq, ng, d, k)) in [
        (23, 301, 8, 5),
        (5, 40, 3, 40),
        (64, 1000, 16, 13),
        (1, 9, 4, 100),
    ]
    .into_iter()
    .enumerate()
    {
        let q = int_rows(nq, d, seed as u64 * 2);
        let g = int_rows(ng, d, seed as u64 * 2 + 1);
        let want = brute(q.view(), g.view(), k);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for (qt, gt) in tilings {
                let cfg = ExactParams::default()
                    .query_tile(qt)
                    .gallery_tile(gt)
                    .check()
                    .unwrap();
                let top = pool
                    .install(|| exact_topk_with(q.view(), g.view(), k, &cfg))
                    .unwrap();
                assert_eq!(top.indices.ncols(), k.min(ng));
                for (i, w) in want.iter().enumerate() {
                    let got: Vec<(usize, f64)> = top
                        .indices
                        .row(i)
                        .iter()
                        .zip(top.scores.row(i))
                        .map(|(&a, &b)| (a, b as f64))
                        .collect();
                    assert_eq!(&got, w, "query {i}, tiling {qt}x{gt}, {threads} threads");
                }
            }
        }
    }
}

#[test]
fn unit_data_matches_f64_brute_force() {
    let q = unit_rows(37, 64, 7);
    let g = unit_rows(2500, 64, 8);
    let k = 10;
    let want = brute(q.view(), g.view(), k);
    let top = exact_topk_with(
        q.view(),
        g.view(),
        k,
        &ExactParams::default()
            .query_tile(16)
            .gallery_tile(300)
            .check()
            .unwrap(),
    )
    .unwrap();
    for (i, w) in want.iter().enumerate() {
        for (j, &(idx, sc)) in w.iter().enumerate() {
            assert!((top.scores[[i, j]] as f64 - sc).abs() < 1e-5);
            // Indices agree unless two scores are within rounding of each other.
            if top.indices[[i, j]] != idx {
                assert!((top.scores[[i, j]] as f64 - sc).abs() < 1e-5 && j + 1 < w.len());
                assert!(
                    (w[j + 1].1 - sc).abs() < 1e-5 || (j > 0 && (w[j - 1].1 - sc).abs() < 1e-5)
                );
            }
        }
    }
}

#[test]
fn strided_views_are_accepted() {
    let g = int_rows(60, 10, 3);
    let q = int_rows(9, 10, 4);
    let gt = g.t().to_owned(); // [10, 60], so gt.t() is a non-contiguous [60, 10] view
    let a = exact_topk(q.view(), g.view(), 6).unwrap();
    let b = exact_topk(q.slice(s![.., ..]), gt.t(), 6).unwrap();
    assert_eq!(a, b);
    let every_other = exact_topk(q.slice(s![..;2, ..]), g.view(), 6).unwrap();
    assert_eq!(every_other.indices.row(1), a.indices.row(2));
}

#[test]
fn zero_queries_give_empty_result() {
    let g = int_rows(5, 3, 1);
    let q = Array2::<f32>::zeros((0, 3));
    let top = exact_topk(q.view(), g.view(), 2).unwrap();
    assert_eq!(top.indices.shape(), &[0, 2]);
}

#[test]
fn typed_errors() {
    let g = int_rows(5, 3, 1);
    let q = int_rows(4, 3, 2);
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(matches!(
        exact_topk(q.view(), empty.view(), 1),
        Err(IndexError::EmptyGallery)
    ));
    assert!(matches!(
        exact_topk(q.view(), g.view(), 0),
        Err(IndexError::InvalidParam { name: "k", .. })
    ));
    let q4 = int_rows(2, 4, 2);
    let e = exact_topk(q4.view(), g.view(), 1).unwrap_err();
    assert!(matches!(e, IndexError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("[2, 4]"));

    let mut qn = q.clone();
    qn[[2, 1]] = f32::NAN;
    let e = exact_topk(qn.view(), g.view(), 1).unwrap_err();
    assert!(
        matches!(
            e,
            IndexError::NonFinite {
                what: "query",
                row: 2
            }
        ),
        "{e}"
    );

    let big = int_rows(3000, 3, 9);
    for (row, bad) in [
        (2999, f32::INFINITY),
        (1500, f32::NAN),
        (0, f32::NEG_INFINITY),
    ] {
        let mut gb = big.clone();
        gb[[row, 0]] = bad;
        gb[[2999.min(row + 7), 2]] = f32::NAN; // a later bad row too: the first is named
        let cfg = ExactParams::default()
            .query_tile(2)
            .gallery_tile(100)
            .check()
            .unwrap();
        let e = exact_topk_with(q.view(), gb.view(), 3, &cfg).unwrap_err();
        assert!(
            matches!(e, IndexError::NonFinite { what: "gallery", row: r } if r == row),
            "{e}"
        );
    }
    assert!(
        ExactParams::default()
            .query_tile(0)
            .gallery_tile(1)
            .check()
            .is_err()
    );
    assert!(
        ExactParams::default()
            .query_tile(1)
            .gallery_tile(0)
            .check()
            .is_err()
    );
    assert!(
        ExactParams::default()
            .query_tile(1 << 14)
            .gallery_tile(1 << 14)
            .check()
            .is_err()
    );
}
