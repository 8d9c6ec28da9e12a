//! Approximate search by inverted file (feature `hnsw`): probing every
//! list is exact search, recall at few probes, filters, incremental
//! enrolment and removal, typed errors.
#![cfg(feature = "hnsw")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::clustered_rows;
use ndarray::Array2;
use reid_index::{Filter, Gallery, Hit, IndexError, IvfParams, ParamGuard, Record};

/// 40 clusters of unit rows in `d` dimensions.
fn clustered(n: usize, d: usize, seed: u64) -> Array2<f32> {
    clustered_rows(n, d, seed, 40, 0.4)
}

fn gallery(n: usize) -> Gallery {
    let emb = clustered(n, 32, 1);
    let recs = (0..n)
        .map(|i| {
            Record::new(format!("r{i}"), "")
                .with_identity(format!("id{}", i % 40))
                .with("site", if i % 3 == 0 { "a" } else { "b" })
        })
        .collect();
    Gallery::from_parts("m", emb.view(), recs).unwrap()
}

fn rows(hits: &[Vec<Hit<'_>>]) -> Vec<Vec<usize>> {
    hits.iter()
        .map(|h| h.iter().map(|x| x.row).collect())
        .collect()
}

#[test]
fn every_list_probed_is_exact_search() {
    let mut g = gallery(2000);
    let q = clustered(50, 32, 2);
    let p = IvfParams::default().lists(Some(16)).check().unwrap();
    g.build_ivf(p).unwrap();
    let exact = g.search(q.view(), 10, None).unwrap();
    let all = g.search_ivf(q.view(), 10, 16, None).unwrap();
    assert_eq!(rows(&all), rows(&exact));
    for (a, e) in all.iter().flatten().zip(exact.iter().flatten()) {
        assert!((a.score - e.score).abs() < 1e-5);
    }
    // More probes than lists: clamped, still exact.
    assert_eq!(
        rows(&g.search_ivf(q.view(), 10, 99, None).unwrap()),
        rows(&exact)
    );
    // The same filter semantics as exact search.
    let f = Filter::eq("site", "a");
    let exact_f = g.search(q.view(), 5, Some(&f)).unwrap();
    let all_f = g.search_ivf(q.view(), 5, 16, Some(&f)).unwrap();
    assert_eq!(rows(&all_f), rows(&exact_f));
}

#[test]
fn recall_and_updates() {
    let mut g = gallery(4000);
    let q = clustered(100, 32, 2);
    assert!(matches!(
        g.search_ivf(q.view(), 10, 4, None),
        Err(IndexError::InvalidParam { .. })
    ));
    g.build_ivf(IvfParams::default().seed(3).check().unwrap())
        .unwrap();
    assert!(g.has_ivf());
    // 4·√4000 ≈ 253 lists; 8 probed: a few per cent of the rows scanned.
    let exact = g.search(q.view(), 1, None).unwrap();
    let approx = g.search_ivf(q.view(), 1, 8, None).unwrap();
    let same = approx
        .iter()
        .zip(&exact)
        .filter(|(a, e)| a[0].row == e[0].row)
        .count();
    assert!(same >= 95, "recall@1 {same} / 100");
    for (qi, hits) in approx.iter().enumerate() {
        let s: f32 = q.row(qi).dot(&g.embeddings().row(hits[0].row));
        assert!((s - hits[0].score).abs() < 1e-5);
    }

    // Removed records never come back; added ones are filed and found.
    let removed: Vec<String> = exact.iter().map(|h| h[0].id.to_string()).collect();
    g.remove_ids(&removed).unwrap();
    let extra = clustered(5, 32, 3);
    let recs: Vec<Record> = (0..5)
        .map(|i| Record::new(format!("new{i}"), "").with_identity("fresh"))
        .collect();
    g.add(extra.view(), recs).unwrap();
    let gone: HashSet<&str> = removed.iter().map(String::as_str).collect();
    let after = g.search_ivf(q.view(), 10, 8, None).unwrap();
    assert!(after.iter().flatten().all(|h| !gone.contains(h.id)));
    let self_hits = g.search_ivf(extra.view(), 1, 1, None).unwrap();
    for (i, h) in self_hits.iter().enumerate() {
        assert_eq!(h[0].id, format!("new{i}"));
        assert_eq!(h[0].row, g.row_of(&format!("new{i}")).unwrap());
    }
    g.drop_ivf();
    assert!(!g.has_ivf());
}

#[test]
fn typed_errors() {
    let mut empty = Gallery::new("m", 8).unwrap();
    assert!(matches!(
        empty.build_ivf(IvfParams::default().check().unwrap()),
        Err(IndexError::EmptyGallery)
    ));
    for bad in [
        IvfParams::default().lists(Some(0)),
        IvfParams::default().iterations(0),
        IvfParams::default().train_per_list(0),
    ] {
        assert!(matches!(bad.check(), Err(IndexError::InvalidParam { .. })));
    }
    let mut g = gallery(300);
    // More lists than rows: one row each at most.
    g.build_ivf(IvfParams::default().lists(Some(1000)).check().unwrap())
        .unwrap();
    let q = clustered(3, 32, 5);
    assert!(g.search_ivf(q.view(), 0, 1, None).is_err());
    let wrong = Array2::<f32>::zeros((2, 31));
    assert!(matches!(
        g.search_ivf(wrong.view(), 3, 1, None),
        Err(IndexError::Shape { .. })
    ));
    let mut nan = q.clone();
    nan[[1, 4]] = f32::NAN;
    assert!(matches!(
        g.search_ivf(nan.view(), 3, 1, None),
        Err(IndexError::NonFinite { .. })
    ));
}
