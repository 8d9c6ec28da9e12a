//! Gallery: records and identities in results, filters against brute force
//! on the filtered subset, incremental add/remove against a fresh build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{brute, int_rows};
use ndarray::{Array2, Axis, array};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_index::{Filter, Gallery, IndexError, Record};

const SPECIES: [&str; 3] = ["lion", "lynx", "turtle"];
const PLACES: [&str; 2] = ["north", "south"];

/// A record `id` of identity `who`, path unset.
fn rec(id: impl Into<String>, who: impl Into<String>) -> Record {
    Record::new(id, "").with_identity(who)
}

fn record(i: usize, rng: &mut ChaCha8Rng) -> Record {
    rec(format!("img{i}"), format!("id{}", rng.gen_range(0..12)))
        .with_species(SPECIES[rng.gen_range(0..3)])
        .with("location", PLACES[rng.gen_range(0..2)])
}

fn random_gallery(n: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<Record>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let recs = (0..n).map(|i| record(i, &mut rng)).collect();
    (int_rows(n, d, seed + 100), recs)
}

fn as_tuples(hits: &[reid_index::Hit<'_>]) -> Vec<(String, f32)> {
    hits.iter().map(|h| (h.id.to_string(), h.score)).collect()
}

#[test]
fn hits_name_records_and_identities() {
    let emb = array![[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8]];
    let recs = vec![rec("a", "A"), rec("b", "B"), rec("c", "A")];
    let g = Gallery::from_parts("m", emb.view(), recs).unwrap();
    let q = array![[0.0f32, 1.0]];
    let hits = g.search(q.view(), 3, None).unwrap();
    let ids: Vec<_> = hits[0].iter().map(|h| (h.id, h.identity, h.row)).collect();
    assert_eq!(
        ids,
        vec![
            ("b", Some("B"), 1),
            ("c", Some("A"), 2),
            ("a", Some("A"), 0)
        ]
    );
    // Identity ranking: B (1.0), then A by its best image c (0.8).
    let ids = g.search_identities(q.view(), 5, None).unwrap();
    let names: Vec<_> = ids[0].iter().map(|h| (h.identity, h.id)).collect();
    assert_eq!(names, vec![(Some("B"), "b"), (Some("A"), "c")]);
}

#[test]
fn filters_equal_brute_force_on_the_subset() {
    let (emb, recs) = random_gallery(400, 6, 1);
    let g = Gallery::from_parts("m", emb.view(), recs.clone()).unwrap();
    let q = int_rows(15, 6, 77);
    for expr in [
        "species=lion",
        "species=lynx,location=south",
        "location = north & species = turtle",
        "species=whale",
    ] {
        let f: Filter = expr.parse().unwrap();
        let rows: Vec<usize> = (0..recs.len()).filter(|&i| f.matches(&recs[i])).collect();
        let got = g.search(q.view(), 8, Some(&f)).unwrap();
        if rows.is_empty() {
            assert!(got.iter().all(Vec::is_empty), "{expr}");
            continue;
        }
        let sub = emb.select(Axis(0), &rows);
        let want = brute(q.view(), sub.view(), 8);
        for (gq, wq) in got.iter().zip(&want) {
            let w: Vec<(String, f32)> = wq
                .iter()
                .map(|&(i, s)| (recs[rows[i]].image_id.clone(), s as f32))
                .collect();
            assert_eq!(as_tuples(gq), w, "{expr}");
            assert!(gq.iter().all(|h| f.matches(&recs[h.row])));
        }
    }
}

#[test]
fn identity_search_equals_brute_force_max_per_identity() {
    let (emb, recs) = random_gallery(300, 5, 2);
    let g = Gallery::from_parts("m", emb.view(), recs.clone()).unwrap();
    let q = int_rows(10, 5, 3);
    let got = g
        .search_identities(q.view(), 4, Some(&Filter::eq("species", "lion")))
        .unwrap();
    for (qi, hits) in got.iter().enumerate() {
        let mut best: Vec<(String, f64, usize)> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if r.species.as_deref() != Some("lion") {
                continue;
            }
            let s: f64 = q
                .row(qi)
                .iter()
                .zip(emb.row(i))
                .map(|(&a, &b)| (a * b) as f64)
                .sum::<f64>()
                + 0.0;
            let who = r.identity.clone().unwrap();
            match best.iter_mut().find(|b| b.0 == who) {
                Some(b) if s > b.1 => {
                    b.1 = s;
                    b.2 = i;
                }
                Some(_) => {}
                None => best.push((who, s, i)),
            }
        }
        best.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.2.cmp(&b.2)));
        let want: Vec<(String, usize)> = best.iter().take(4).map(|b| (b.0.clone(), b.2)).collect();
        let have: Vec<(String, usize)> = hits
            .iter()
            .map(|h| (h.identity.unwrap().to_string(), h.row))
            .collect();
        assert_eq!(have, want, "query {qi}");
    }
}

#[test]
fn add_and_remove_equal_a_fresh_build() {
    let d = 5;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut g = Gallery::new("m", d).unwrap();
    // The model: an ordered list of (record, embedding row).
    let mut model: Vec<(Record, Vec<f32>)> = Vec::new();
    let mut next = 0;
    let q = int_rows(12, d, 55);
    for step in 0..40 {
        match rng.gen_range(0..3) {
            0 | 1 => {
                let m = rng.gen_range(1..20);
                let emb = int_rows(m, d, 1000 + step);
                let recs: Vec<Record> = (0..m).map(|i| record(next + i, &mut rng)).collect();
                next += m;
                g.add(emb.view(), recs.clone()).unwrap();
                model.extend(
                    recs.into_iter()
                        .zip(emb.rows().into_iter().map(|r| r.to_vec())),
                );
            }
            _ if !model.is_empty() => {
                if rng.gen_bool(0.5) {
                    let ids: Vec<String> = (0..rng.gen_range(1..4))
                        .map(|_| model[rng.gen_range(0..model.len())].0.image_id.clone())
                        .collect();
                    let mut uniq = ids.clone();
                    uniq.sort();
                    uniq.dedup();
                    assert_eq!(g.remove_ids(&ids).unwrap(), uniq.len());
                    model.retain(|(r, _)| !uniq.contains(&r.image_id));
                } else {
                    let who = model[rng.gen_range(0..model.len())]
                        .0
                        .identity
                        .clone()
                        .unwrap();
                    let before = model.len();
                    model.retain(|(r, _)| r.identity.as_deref() != Some(who.as_str()));
                    assert_eq!(g.remove_identity(&who), before - model.len());
                }
            }
            _ => {}
        }
        if model.is_empty() {
            continue;
        }
        let emb = Array2::from_shape_vec(
            (model.len(), d),
            model.iter().flat_map(|(_, e)| e.clone()).collect(),
        )
        .unwrap();
        let fresh = Gallery::from_parts(
            "m",
            emb.view(),
            model.iter().map(|(r, _)| r.clone()).collect(),
        )
        .unwrap();
        assert_eq!(g.records(), fresh.records());
        assert_eq!(g.embeddings(), fresh.embeddings());
        let f = Filter::eq("location", "north");
        for filt in [None, Some(&f)] {
            let a = g.search(q.view(), 6, filt).unwrap();
            let b = fresh.search(q.view(), 6, filt).unwrap();
            assert_eq!(a, b, "step {step}");
        }
        for (r, _) in &model {
            assert_eq!(
                g.records()[g.row_of(&r.image_id).unwrap()].image_id,
                r.image_id
            );
        }
    }
}

#[test]
fn bad_adds_and_removes_change_nothing() {
    let (emb, recs) = random_gallery(10, 4, 4);
    let mut g = Gallery::from_parts("m", emb.view(), recs).unwrap();
    let before = (g.records().to_vec(), g.embeddings().to_owned());

    let e = g
        .add(
            int_rows(2, 4, 1).view(),
            vec![rec("new", "x"), rec("img3", "y")],
        )
        .unwrap_err();
    assert!(
        matches!(e, IndexError::DuplicateId(ref id) if id == "img3"),
        "{e}"
    );
    let e = g
        .add(
            int_rows(2, 4, 1).view(),
            vec![rec("n1", "x"), rec("n1", "y")],
        )
        .unwrap_err();
    assert!(matches!(e, IndexError::DuplicateId(_)), "{e}");
    let e = g
        .add(
            int_rows(2, 3, 1).view(),
            vec![rec("n1", "x"), rec("n2", "y")],
        )
        .unwrap_err();
    assert!(matches!(e, IndexError::Shape { .. }), "{e}");
    let e = g
        .add(int_rows(3, 4, 1).view(), vec![rec("n1", "x")])
        .unwrap_err();
    assert!(matches!(e, IndexError::Shape { .. }), "{e}");
    let mut bad = int_rows(3, 4, 1);
    bad[[1, 2]] = f32::NAN;
    let recs3 = vec![rec("n1", "x"), rec("n2", "x"), rec("n3", "x")];
    let e = g.add(bad.view(), recs3).unwrap_err();
    assert!(
        matches!(
            e,
            IndexError::NonFinite {
                what: "embedding",
                row: 1
            }
        ),
        "{e}"
    );
    let e = g.remove_ids(&["img1", "nope"]).unwrap_err();
    assert!(
        matches!(e, IndexError::UnknownId(ref id) if id == "nope"),
        "{e}"
    );
    assert_eq!(g.remove_identity("nobody"), 0);

    assert_eq!(g.records(), &before.0[..]);
    assert_eq!(g.embeddings(), before.1);
}

#[test]
fn search_errors_are_typed() {
    let g = Gallery::new("m", 3).unwrap();
    let q = int_rows(2, 3, 1);
    assert!(matches!(
        g.search(q.view(), 1, None),
        Err(IndexError::EmptyGallery)
    ));
    assert!(matches!(
        Gallery::new("m", 0),
        Err(IndexError::InvalidParam { name: "dim", .. })
    ));
    let (emb, recs) = random_gallery(10, 3, 4);
    let g = Gallery::from_parts("m", emb.view(), recs).unwrap();
    let f = Filter::eq("species", "none");
    assert!(matches!(
        g.search(q.view(), 0, Some(&f)),
        Err(IndexError::InvalidParam { name: "k", .. })
    ));
    let q2 = int_rows(2, 2, 1);
    assert!(matches!(
        g.search(q2.view(), 1, Some(&f)),
        Err(IndexError::Shape { .. })
    ));
}

#[test]
fn filter_parsing() {
    let f: Filter = " species = lion ,dataset=LionData".parse().unwrap();
    assert_eq!(
        f.clauses(),
        &[
            ("species".to_string(), "lion".to_string()),
            ("dataset".to_string(), "LionData".to_string())
        ]
    );
    assert_eq!(f.to_string(), "species=lion,dataset=LionData");
    assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
    for bad in ["", "  ", "species", "=lion", "species=lion,,x=y", "a=b&"] {
        assert!(
            matches!(Filter::parse(bad), Err(IndexError::Filter { .. })),
            "{bad:?}"
        );
    }
    // Empty value is allowed and matches an empty attribute only.
    let e = Filter::parse("location=").unwrap();
    assert!(e.matches(&Record::new("1", "").with("location", "")));
    assert!(!e.matches(&Record::new("1", "")));
    // Fields are tested by name, attributes by key.
    let r = Record::new("1", "")
        .with_dataset("D")
        .with_split(reid_index::SplitRole::Query)
        .with("dataset_note", "x");
    assert!(
        Filter::parse("dataset=D,split=query,dataset_note=x")
            .unwrap()
            .matches(&r)
    );
    assert!(!Filter::parse("dataset=E").unwrap().matches(&r));
}
