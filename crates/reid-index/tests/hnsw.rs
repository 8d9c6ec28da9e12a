//! Approximate search (feature `hnsw`): recall against exact search,
//! filters, incremental enrolment and removal.
#![cfg(feature = "hnsw")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::clustered_rows;
use ndarray::{Array2, Axis};
use reid_index::ParamGuard;
use reid_index::{Filter, Gallery, HnswParams, IndexError, Record};

fn clustered(n: usize, d: usize, seed: u64) -> Array2<f32> {
    clustered_rows(n, d, seed, 20, 0.5)
}

fn gallery(n: usize) -> Gallery {
    let emb = clustered(n, 32, 1);
    let recs = (0..n)
        .map(|i| {
            Record::new(format!("r{i}"), "")
                .with_identity(format!("id{}", i % 50))
                .with("site", if i % 3 == 0 { "a" } else { "b" })
        })
        .collect();
    Gallery::from_parts("m", emb.view(), recs).unwrap()
}

fn ids(hits: &[Vec<reid_index::Hit<'_>>]) -> Vec<HashSet<String>> {
    hits.iter()
        .map(|h| h.iter().map(|x| x.id.to_string()).collect())
        .collect()
}

fn recall(approx: &[Vec<reid_index::Hit<'_>>], exact: &[Vec<reid_index::Hit<'_>>]) -> f64 {
    recall_ids(approx, &ids(exact))
}

fn recall_ids(approx: &[Vec<reid_index::Hit<'_>>], truth: &[HashSet<String>]) -> f64 {
    let mut hit = 0;
    let mut total = 0;
    for (a, t) in approx.iter().zip(truth) {
        hit += a.iter().filter(|h| t.contains(h.id)).count();
        total += t.len();
    }
    hit as f64 / total as f64
}

#[test]
fn recall_filters_and_updates() {
    let mut g = gallery(3000);
    let q = clustered(100, 32, 2);
    assert!(matches!(
        g.search_approx(q.view(), 10, 50, None),
        Err(IndexError::InvalidParam { .. })
    ));
    g.build_hnsw(
        HnswParams::default()
            .m(16)
            .ef_construction(100)
            .parallel(false)
            .check()
            .unwrap(),
    )
    .unwrap();

    let exact = g.search(q.view(), 10, None).unwrap();
    let approx = g.search_approx(q.view(), 10, 200, None).unwrap();
    let r = recall(&approx, &exact);
    assert!(r > 0.95, "recall@10 {r}");
    // Scores are the true cosine of the returned records, best first.
    for (qi, hits) in approx.iter().enumerate() {
        for w in hits.windows(2) {
            assert!(w[0].score >= w[1].score);
        }
        for h in hits {
            let s: f32 = q.row(qi).dot(&g.embeddings().row(h.row));
            assert!((s - h.score).abs() < 1e-4);
        }
    }

    // Filtered: only matching records, and close to the exact filtered answer.
    let f = Filter::eq("site", "a");
    let exact_f = g.search(q.view(), 10, Some(&f)).unwrap();
    let approx_f = g.search_approx(q.view(), 10, 200, Some(&f)).unwrap();
    assert!(
        approx_f
            .iter()
            .flatten()
            .all(|h| h.id[1..].parse::<usize>().unwrap() % 3 == 0)
    );
    assert!(recall(&approx_f, &exact_f) > 0.9);

    // Removed records never come back; added ones are found.
    let removed: Vec<String> = exact.iter().map(|h| h[0].id.to_string()).collect();
    g.remove_ids(&removed).unwrap();
    let extra = clustered(5, 32, 3);
    let recs: Vec<Record> = (0..5)
        .map(|i| {
            Record::new(format!("new{i}"), "")
                .with_identity("fresh")
                .with("site", "a")
        })
        .collect();
    g.add(extra.view(), recs).unwrap();
    let after = g.search_approx(q.view(), 10, 200, None).unwrap();
    let gone: HashSet<&str> = removed.iter().map(String::as_str).collect();
    assert!(after.iter().flatten().all(|h| !gone.contains(h.id)));
    let exact_after = ids(&g.search(q.view(), 10, None).unwrap());
    assert!(recall_ids(&after, &exact_after) > 0.95);
    let self_hits = g.search_approx(extra.view(), 1, 100, None).unwrap();
    for (i, h) in self_hits.iter().enumerate() {
        assert_eq!(h[0].id, format!("new{i}"));
        assert_eq!(h[0].row, g.row_of(&format!("new{i}")).unwrap());
    }

    // Rebuilding after the updates gives the same quality.
    g.build_hnsw(
        HnswParams::default()
            .m(8)
            .ef_construction(64)
            .parallel(true)
            .check()
            .unwrap(),
    )
    .unwrap();
    let rebuilt = g.search_approx(q.view(), 10, 200, None).unwrap();
    assert!(recall_ids(&rebuilt, &exact_after) > 0.9);
    let sub = q.select(Axis(0), &[0, 1]);
    assert_eq!(g.search_approx(sub.view(), 3, 1, None).unwrap()[0].len(), 3);
}

#[test]
fn params_are_checked() {
    assert!(
        HnswParams::default()
            .m(1)
            .ef_construction(10)
            .parallel(true)
            .check()
            .is_err()
    );
    assert!(
        HnswParams::default()
            .m(300)
            .ef_construction(400)
            .parallel(true)
            .check()
            .is_err()
    );
    assert!(
        HnswParams::default()
            .m(16)
            .ef_construction(8)
            .parallel(true)
            .check()
            .is_err()
    );
    let p = HnswParams::default()
        .m(16)
        .ef_construction(16)
        .parallel(false)
        .check()
        .unwrap();
    assert_eq!((p.m(), p.ef_construction()), (16, 16));
}

#[test]
fn serial_build_is_deterministic_and_exact_on_small_galleries() {
    // 40 points: every node fits in every other node's layer-0 list, so a
    // beam as wide as the gallery must return the exact ranking.
    let mut g = gallery(40);
    let q = clustered(7, 32, 5);
    g.build_hnsw(
        HnswParams::default()
            .m(16)
            .ef_construction(40)
            .parallel(false)
            .check()
            .unwrap(),
    )
    .unwrap();
    let exact = g.search(q.view(), 5, None).unwrap();
    let approx = g.search_approx(q.view(), 5, 40, None).unwrap();
    for (a, e) in approx.iter().zip(&exact) {
        let a: Vec<usize> = a.iter().map(|h| h.row).collect();
        let e: Vec<usize> = e.iter().map(|h| h.row).collect();
        assert_eq!(a, e);
    }

    // Two serial builds of the same gallery answer identically.
    let mut big = gallery(2000);
    let q = clustered(50, 32, 6);
    let mut build_and_search = || -> Vec<Vec<usize>> {
        let serial = HnswParams::default()
            .m(8)
            .ef_construction(32)
            .parallel(false);
        big.build_hnsw(serial.check().unwrap()).unwrap();
        big.search_approx(q.view(), 10, 20, None)
            .unwrap()
            .iter()
            .map(|h| h.iter().map(|x| x.row).collect())
            .collect()
    };
    let first = build_and_search();
    let second = build_and_search();
    assert_eq!(first, second);
}
