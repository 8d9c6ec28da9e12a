//! P×K sampler tests: batch shape, distinct identities, determinism,
//! with-replacement for small identities, epoch coverage, validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use reid_data::ParamGuard;
use reid_data::sampler::{LastGroup, PkParams, PkSampler};
use reid_data::{DataError, Dataset, Record};

/// Identity `i` (0..n_ids) has `1 + i % 6` images; plus two unlabelled records.
fn toy(n_ids: usize) -> Dataset {
    let mut recs = Vec::new();
    recs.push(Record::new("u0", "u0.jpg"));
    for i in 0..n_ids {
        for j in 0..1 + i % 6 {
            let mut r = Record::new(format!("{i}-{j}"), format!("{i}/{j}.jpg"));
            r.identity = Some(format!("id{i:02}"));
            recs.push(r);
        }
    }
    recs.push(Record::new("u1", "u1.jpg"));
    Dataset::new("", recs)
}

fn identity(ds: &Dataset, i: usize) -> &str {
    ds.records[i].identity.as_deref().unwrap()
}

#[test]
fn batches_are_p_distinct_identities_by_k() {
    let ds = toy(23);
    let (p, k) = (5, 4);
    let mut s = PkParams::default()
        .p(p)
        .k(k)
        .seed(1)
        .check()
        .unwrap()
        .sampler(&ds)
        .unwrap();
    assert_eq!(s.num_identities(), 23);
    assert_eq!(s.batches_per_epoch(), 5); // ceil(23 / 5)
    for batch in s.by_ref().take(40) {
        assert_eq!(batch.len(), p * k);
        let mut ids = BTreeSet::new();
        for group in batch.chunks(k) {
            let id = identity(&ds, group[0]);
            assert!(group.iter().all(|&i| identity(&ds, i) == id), "{group:?}");
            assert!(ids.insert(id.to_string()), "identity {id} twice in a batch");
            // Distinct images when the identity has enough; all images otherwise.
            let n = ds
                .records
                .iter()
                .filter(|r| r.identity.as_deref() == Some(id))
                .count();
            let distinct: BTreeSet<usize> = group.iter().copied().collect();
            assert_eq!(distinct.len(), n.min(k), "{id} has {n} images: {group:?}");
        }
        assert_eq!(ids.len(), p);
    }
    assert_eq!(s.epoch(), 8); // 40 batches / 5 per epoch
}

#[test]
fn with_replacement_for_small_identities() {
    // Identity a: 1 image, b: 2 images, c: 7 images.
    let mut recs = Vec::new();
    for (id, n) in [("a", 1), ("b", 2), ("c", 7)] {
        for j in 0..n {
            let mut r = Record::new(format!("{id}{j}"), format!("{id}{j}.jpg"));
            r.identity = Some(id.into());
            recs.push(r);
        }
    }
    let ds = Dataset::new("", recs);
    let mut s = PkSampler::new(&ds, PkParams::default().p(3).k(5).seed(9)).unwrap();
    let batch = s.next().unwrap();
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for g in batch.chunks(5) {
        by_id.insert(identity(&ds, g[0]), g.to_vec());
    }
    assert_eq!(by_id["a"], vec![0; 5]);
    let b: BTreeSet<usize> = by_id["b"].iter().copied().collect();
    assert_eq!(b, BTreeSet::from([1, 2]), "both images of b, repeated");
    let c: BTreeSet<usize> = by_id["c"].iter().copied().collect();
    assert_eq!(c.len(), 5, "5 distinct of c's 7 images");
    assert!(c.iter().all(|i| (3..10).contains(i)));
}

#[test]
fn deterministic_given_seed() {
    let ds = toy(30);
    let take = |seed| {
        PkSampler::new(&ds, PkParams::default().p(6).k(3).seed(seed))
            .unwrap()
            .take(12)
            .collect::<Vec<_>>()
    };
    assert_eq!(take(7), take(7));
    assert_ne!(take(7), take(8));
}

#[test]
fn epoch_covers_every_identity() {
    let ds = toy(23);
    let all: BTreeSet<String> = ds.identities().into_iter().map(|(id, _)| id).collect();
    let mut s = PkSampler::new(&ds, PkParams::default().p(5).k(2).seed(3)).unwrap();
    let mut first_orders = Vec::new();
    for e in 0..4 {
        assert_eq!(s.epoch(), e);
        let batches = s.next_epoch();
        assert_eq!(batches.len(), 5);
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for b in &batches {
            for g in b.chunks(2) {
                *count.entry(identity(&ds, g[0]).to_string()).or_default() += 1;
            }
        }
        let seen: BTreeSet<String> = count.keys().cloned().collect();
        assert_eq!(seen, all, "epoch {e} misses identities");
        // 25 slots for 23 identities: exactly two appear twice (the fill).
        assert_eq!(count.values().filter(|&&c| c == 2).count(), 2);
        assert_eq!(count.values().sum::<usize>(), 25);
        first_orders.push(batches[0].clone());
    }
    assert_ne!(
        first_orders[0], first_orders[1],
        "identities reshuffled per epoch"
    );

    // Drop: floor(23 / 5) = 4 batches, each identity at most once.
    let mut s = PkSampler::new(
        &ds,
        PkParams::default().p(5).k(2).seed(3).last(LastGroup::Drop),
    )
    .unwrap();
    assert_eq!(s.batches_per_epoch(), 4);
    let batches = s.next_epoch();
    assert_eq!(batches.len(), 4);
    let ids: Vec<String> = batches
        .iter()
        .flat_map(|b| b.chunks(2).map(|g| identity(&ds, g[0]).to_string()))
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (20, 20));
    assert_eq!(s.epoch(), 1);
}

#[test]
fn unlabelled_records_never_drawn() {
    let ds = toy(8);
    let s = PkSampler::new(&ds, PkParams::default().p(8).k(4).seed(0)).unwrap();
    let last = ds.len() - 1;
    for b in s.take(20) {
        assert!(b.iter().all(|&i| i != 0 && i != last));
    }
}

#[test]
fn parameters_validated() {
    let ds = toy(4);
    for (params, name) in [
        (PkParams::default().p(0).k(2).seed(0), "p"),
        (PkParams::default().p(2).k(0).seed(0), "k"),
        (PkParams::default().p(5).k(2).seed(0), "p"),
    ] {
        match PkSampler::new(&ds, params) {
            Err(DataError::InvalidParam { name: got, reason }) => {
                assert_eq!(got, name, "{reason}")
            }
            other => panic!("{params:?}: {other:?}"),
        }
    }
    let err = PkParams::default()
        .p(5)
        .k(2)
        .seed(0)
        .check()
        .unwrap()
        .sampler(&ds)
        .unwrap_err();
    assert!(err.to_string().contains("4 identities"), "{err}");
    // Explicit groups: an empty group is rejected.
    let err = PkParams::default()
        .p(1)
        .k(1)
        .seed(0)
        .check()
        .unwrap()
        .sampler_from_groups(vec![vec![0], vec![]])
        .unwrap_err();
    assert!(err.to_string().contains("group 1"), "{err}");
}

#[test]
fn identities_of_different_datasets_are_different_groups() {
    // `7` of two datasets: two groups of two images each, never mixed.
    let recs: Vec<Record> = ["turtles", "turtles", "lynx", "lynx"]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut r = Record::new(i.to_string(), format!("{i}.jpg"));
            r.identity = Some("7".into());
            r.dataset = Some(d.to_string());
            r
        })
        .collect();
    let ds = Dataset::new("", recs);
    let mut s = PkParams::default()
        .p(2)
        .k(2)
        .check()
        .unwrap()
        .sampler(&ds)
        .unwrap();
    assert_eq!(s.num_identities(), 2);
    // Groups in (dataset, identity) order: lynx first.
    assert_eq!(s.group(0), Some(&[2usize, 3][..]));
    assert_eq!(s.group(1), Some(&[0usize, 1][..]));
    for batch in s.next_epoch() {
        let mut halves: Vec<Vec<usize>> = batch.chunks(2).map(|c| c.to_vec()).collect();
        for h in &mut halves {
            h.sort_unstable();
        }
        halves.sort();
        assert_eq!(halves, vec![vec![0, 1], vec![2, 3]]);
    }
}
