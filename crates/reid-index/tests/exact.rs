//! Exact top-k: hand-worked cases, brute-force parity (ties included) over
//! tilings and thread counts, and typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use common::{brute, int_rows, unit_rows};
use ndarray::{Array2, array, s};
use reid_index::{
    ExactParams, IndexError, Kernel, ParamGuard, ValidExactParams, exact_topk, exact_topk_with,
};

/// The kernels this CPU runs (bf16 only with AVX-512 BF16, AMX only with
/// AMX tiles).
fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::F32];
    if reid_index::bf16::available() {
        k.push(Kernel::Bf16Prefilter);
    } else {
        eprintln!("no AVX-512 BF16: the bf16 kernel is not tested here");
    }
    if reid_index::amx::available() {
        k.push(Kernel::AmxPrefilter);
    } else {
        eprintln!("no AMX: the tile kernel is not tested here");
    }
    k
}

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
            for ((qt, gt), kernel) in tilings
                .into_iter()
                .flat_map(|t| kernels().into_iter().map(move |k| (t, k)))
            {
                let cfg = ExactParams::default()
                    .query_tile(qt)
                    .gallery_tile(gt)
                    .kernel(kernel)
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
                    assert_eq!(
                        &got, w,
                        "query {i}, tiling {qt}x{gt}, {threads} threads, {kernel:?}"
                    );
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
    let want = brute(q.view(), g.view(), k + 10);
    for kernel in kernels() {
        let top = exact_topk_with(
            q.view(),
            g.view(),
            k,
            &ExactParams::default()
                .query_tile(16)
                .gallery_tile(300)
                .kernel(kernel)
                .check()
                .unwrap(),
        )
        .unwrap();
        assert_close_to_brute(&top, &want);
    }
}

/// Scores within 1e-5 of f64 position by position; where an index differs
/// from brute force's, it is one whose f64 score (in `want`, which lists
/// more than k) is within rounding of the expected one (a near-tie).
fn assert_close_to_brute(top: &reid_index::TopK, want: &[Vec<(usize, f64)>]) {
    for (i, w) in want.iter().enumerate() {
        for (j, (&idx, &sc)) in top.indices.row(i).iter().zip(top.scores.row(i)).enumerate() {
            let sc = f64::from(sc);
            assert!(
                (sc - w[j].1).abs() < 1e-5,
                "query {i} rank {j}: {sc} vs {}",
                w[j].1
            );
            if idx != w[j].0 {
                let other = w.iter().find(|x| x.0 == idx).map(|x| x.1);
                assert!(
                    other.is_some_and(|o| (o - w[j].1).abs() < 1e-5),
                    "query {i} rank {j}: row {idx} ({other:?}) instead of {:?}",
                    w[j]
                );
            }
        }
    }
}

/// Near-duplicates: 40 tight clusters (offsets of norm 0.02, cluster mates
/// at cosine ~0.9996) so that the best scores of a query lie far closer
/// together than bf16's resolution (2^-8), yet apart in f32: the bf16
/// pre-filter must still return the f32 kernel's rows and scores.
#[test]
fn bf16_prefilter_loses_nothing_among_near_duplicates() {
    let prefilters: Vec<Kernel> = kernels()
        .into_iter()
        .filter(|&k| k != Kernel::F32)
        .collect();
    if prefilters.is_empty() {
        eprintln!("skipping: no AVX-512 BF16 and no AMX");
        return;
    }
    let centres = unit_rows(40, 96, 11);
    let noise = unit_rows(4000, 96, 12);
    let mut g = Array2::<f32>::zeros((4000, 96));
    for (i, mut row) in g.rows_mut().into_iter().enumerate() {
        let c = centres.row(i % 40);
        row.assign(&(&c + &(&noise.row(i) * 0.02)));
        let n = row.dot(&row).sqrt();
        row /= n;
    }
    let q = g.slice(s![..50, ..]).to_owned();
    let k = 25;
    let want = brute(q.view(), g.view(), k + 10);
    let run = |kernel| {
        let cfg = ExactParams::default().kernel(kernel).check().unwrap();
        exact_topk_with(q.view(), g.view(), k, &cfg).unwrap()
    };
    let f32_top = run(Kernel::F32);
    assert_close_to_brute(&f32_top, &want);
    // The spread of a query's top 25 is below bf16's step: the filter
    // really had to keep more than k candidates.
    let spread = want[0][0].1 - want[0][k - 1].1;
    assert!(spread < 2f64.powi(-8), "spread {spread}");
    for kernel in prefilters {
        let bf16_top = run(kernel);
        assert_close_to_brute(&bf16_top, &want);
        for (a, b) in f32_top.scores.iter().zip(&bf16_top.scores) {
            assert!((a - b).abs() < 1e-6, "{kernel:?}: {a} vs {b}");
        }
    }
}

#[test]
fn the_bf16_kernel_is_refused_without_the_instructions() {
    let r = ExactParams::default().kernel(Kernel::Bf16Prefilter).check();
    let amx = ExactParams::default().kernel(Kernel::AmxPrefilter).check();
    let auto = ValidExactParams::default().kernel();
    if reid_index::bf16::available() {
        assert_eq!(r.unwrap().kernel(), Kernel::Bf16Prefilter);
    } else {
        assert!(r.unwrap_err().to_string().contains("AVX-512 BF16"));
    }
    if reid_index::amx::available() {
        assert_eq!(amx.unwrap().kernel(), Kernel::AmxPrefilter);
        assert_eq!(auto, Kernel::AmxPrefilter);
    } else {
        assert!(amx.unwrap_err().to_string().contains("AMX-BF16"));
        let fallback = if reid_index::bf16::available() {
            Kernel::Bf16Prefilter
        } else {
            Kernel::F32
        };
        assert_eq!(auto, fallback);
    }
}

/// `Auto` takes the f32 kernel for small batches (the pre-filters repack the
/// gallery at each search) and its large-batch choice from
/// `PREFILTER_MIN_QUERIES` queries on; a kernel named explicitly runs at
/// any batch size.
#[test]
fn auto_takes_f32_for_small_batches() {
    use reid_index::PREFILTER_MIN_QUERIES;
    let auto = ValidExactParams::default();
    assert_eq!(auto.kernel_for(1), Kernel::F32);
    assert_eq!(auto.kernel_for(PREFILTER_MIN_QUERIES - 1), Kernel::F32);
    assert_eq!(auto.kernel_for(PREFILTER_MIN_QUERIES), auto.kernel());
    assert_eq!(auto.kernel_for(100_000), auto.kernel());
    for kernel in kernels() {
        let p = ExactParams::default().kernel(kernel).check().unwrap();
        assert_eq!(p.kernel_for(1), kernel);
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
