//! Open-set episodes simulated inside the database: their documented
//! structure, seeding, the checked parameters, databases that cannot form
//! episodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use reid_openset::{
    OpensetError, ParamGuard, SelfCalibrationParams, ValidSelfCalibrationParams, linear_grid,
    simulate_episodes,
};

fn sizes_with_singletons() -> Vec<usize> {
    // 12 identities with several images, 12 singletons, interleaved.
    (0..24)
        .map(|i| if i % 2 == 0 { 1 } else { 2 + i % 5 })
        .collect()
}

#[test]
fn episodes_have_the_documented_structure() {
    let sizes = sizes_with_singletons();
    let labels = common::labels_of_sizes(&sizes, "id");
    let params = common::episodes(0.25, 0.5, 8, 7, vec![0.5]);
    let eps = simulate_episodes(&labels, &params).unwrap();
    assert_eq!(eps.len(), 8);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &labels {
        *count.entry(l).or_default() += 1;
    }
    for ep in &eps {
        let g: BTreeSet<usize> = ep.gallery.iter().copied().collect();
        let q: BTreeSet<usize> = ep.queries.iter().copied().collect();
        assert!(g.is_disjoint(&q));
        assert_eq!(g.len() + q.len(), labels.len(), "every row is used once");
        assert!(ep.gallery.windows(2).all(|w| w[0] < w[1]), "ascending");
        assert!(ep.queries.windows(2).all(|w| w[0] < w[1]), "ascending");
        assert_eq!(ep.is_new.len(), ep.queries.len());
        let g_ids: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        let mut new_ids = BTreeSet::new();
        for (&r, &is_new) in ep.queries.iter().zip(&ep.is_new) {
            let id = labels[r].as_str();
            assert_eq!(is_new, !g_ids.contains(id), "row {r}");
            if is_new {
                new_ids.insert(id);
            } else {
                assert!(count[id] >= 2, "a singleton became a known query");
            }
        }
        // round(0.25 * 24) = 6 pseudo-new identities, all their images queries.
        assert_eq!(new_ids.len(), 6);
        for id in &new_ids {
            let n_q = ep.queries.iter().filter(|&&r| labels[r] == *id).count();
            assert_eq!(n_q, count[id]);
        }
        // Known identities with m >= 2 images: round(m / 2) queries, clamped to 1..=m-1.
        for (id, &m) in &count {
            if m >= 2 && !new_ids.contains(id) {
                let n_q = ep.queries.iter().filter(|&&r| labels[r] == *id).count();
                let want = ((m as f64 * 0.5).round() as usize).clamp(1, m - 1);
                assert_eq!(n_q, want, "{id}");
            }
        }
        assert!(
            ep.is_new.iter().any(|&n| !n),
            "every episode has known queries"
        );
    }
    // Seeded: same seed same episodes, other seed others, episodes differ.
    assert_eq!(eps, simulate_episodes(&labels, &params).unwrap());
    let other = common::episodes(0.25, 0.5, 8, 8, vec![0.5]);
    assert_ne!(eps, simulate_episodes(&labels, &other).unwrap());
    assert_ne!(eps[0], eps[1]);
    // Episode e is stream e of the seed: the first 3 of 8 are the 3 of 3.
    let three = common::episodes(0.25, 0.5, 3, 7, vec![0.5]);
    assert_eq!(simulate_episodes(&labels, &three).unwrap(), eps[..3]);
    // The grid plays no part in the episodes.
    let regrid = params.with_grid(vec![0.1, 0.9]).unwrap();
    assert_eq!(simulate_episodes(&labels, &regrid).unwrap(), eps);
}

#[test]
fn bad_params_are_rejected() {
    let grid = || vec![0.1, 0.2];
    for (nf, qf, e, g) in [
        (0.0, 0.5, 3, grid()),
        (1.0, 0.5, 3, grid()),
        (f64::NAN, 0.5, 3, grid()),
        (0.3, 1.5, 3, grid()),
        (0.3, 0.0, 3, grid()),
        (0.3, f64::NAN, 3, grid()),
        (0.3, 0.5, 0, grid()),
        (0.3, 0.5, 3, vec![]),
        (0.3, 0.5, 3, vec![0.1, f32::NAN]),
        (0.3, 0.5, 3, vec![f32::INFINITY]),
    ] {
        let p = SelfCalibrationParams::default()
            .new_fraction(nf)
            .query_fraction(qf)
            .episodes(e)
            .grid(g);
        assert!(
            matches!(p.check_ref(), Err(OpensetError::InvalidParam { .. })),
            "{nf} {qf} {e}"
        );
        assert!(
            matches!(p.check(), Err(OpensetError::InvalidParam { .. })),
            "{nf} {qf} {e}"
        );
    }
    // Each error names its parameter.
    let name = |p: SelfCalibrationParams| match p.check() {
        Err(OpensetError::InvalidParam { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    let d = SelfCalibrationParams::default;
    assert_eq!(name(d().new_fraction(1.0)), "new_fraction");
    assert_eq!(name(d().query_fraction(0.0)), "query_fraction");
    assert_eq!(name(d().episodes(0)), "episodes");
    assert_eq!(name(d().grid(vec![])), "grid");
    // The grid is sorted and deduplicated.
    let p = d().grid(vec![0.5, 0.1, 0.5]).check().unwrap();
    assert_eq!(p.grid(), &[0.1, 0.5]);
    // The settings read back.
    let p = d()
        .new_fraction(0.2)
        .query_fraction(0.4)
        .episodes(7)
        .seed(99)
        .check()
        .unwrap();
    assert_eq!(
        (p.new_fraction(), p.query_fraction(), p.episodes(), p.seed()),
        (0.2, 0.4, 7, 99)
    );
    // with_grid checks its grid; into_params goes back to the builder.
    assert!(matches!(
        p.with_grid(vec![]),
        Err(OpensetError::InvalidParam { name: "grid", .. })
    ));
    assert_eq!(p.clone().into_params().check().unwrap(), p);
}

/// Defaults: 0.3 new, 0.5 queries, 10 episodes, seed 0, grid -1 to 1 in
/// steps of 0.01 (201 values).
#[test]
fn defaults_and_linear_grid() {
    let p = ValidSelfCalibrationParams::default();
    assert_eq!(p, SelfCalibrationParams::default().check().unwrap());
    assert_eq!(
        (p.new_fraction(), p.query_fraction(), p.episodes(), p.seed()),
        (0.3, 0.5, 10, 0)
    );
    assert_eq!(p.grid().len(), 201);
    assert_eq!((p.grid()[0], p.grid()[200]), (-1.0, 1.0));
    assert!((p.grid()[150] - 0.5).abs() < 1e-6);

    // steps + 1 values, both ends included.
    assert_eq!(linear_grid(0.0..=1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(linear_grid(-0.2..=1.0, 240).len(), 241);
    // 0 steps is read as 1: both ends.
    assert_eq!(linear_grid(0.0..=1.0, 0), vec![0.0, 1.0]);
    let p = SelfCalibrationParams::default()
        .grid_steps(0.0..=1.0, 4)
        .check()
        .unwrap();
    assert_eq!(p.grid(), &[0.0, 0.25, 0.5, 0.75, 1.0]);
}

#[test]
fn databases_that_cannot_form_episodes() {
    let p = ValidSelfCalibrationParams::default();
    let one_id = vec!["a".to_string(); 4];
    assert!(matches!(
        simulate_episodes(&one_id, &p),
        Err(OpensetError::Episodes(_))
    ));
    let all_singletons: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    assert!(matches!(
        simulate_episodes(&all_singletons, &p),
        Err(OpensetError::Episodes(_))
    ));
    let none: Vec<String> = Vec::new();
    assert!(matches!(
        simulate_episodes(&none, &p),
        Err(OpensetError::Episodes(_))
    ));
    // Two identities, one of them a singleton: the singleton is the new one.
    let tiny: Vec<String> = ["a", "a", "b"].iter().map(|s| s.to_string()).collect();
    for ep in simulate_episodes(&tiny, &p).unwrap() {
        assert_eq!(ep.gallery.len(), 1);
        assert!(ep.gallery[0] < 2, "the gallery keeps one image of a");
        assert_eq!(ep.queries.len(), 2);
        assert!(ep.queries.contains(&2));
        let new_row = ep.queries.iter().position(|&r| r == 2).unwrap();
        assert!(ep.is_new[new_row]);
    }
}

/// Episodes by encounter: known pseudo-queries are whole encounters that
/// the pseudo-gallery never shares, an identity's last encounter stays in
/// the gallery, an identity of one encounter is never a known query, and
/// the query share follows `query_fraction` in whole encounters.
#[test]
fn episodes_by_encounter_hold_out_whole_encounters() {
    use reid_openset::simulate_episodes_in_encounters;
    // 10 identities: identity k has k % 4 + 1 videos of 1..=3 photos each.
    let mut labels = Vec::new();
    let mut video = Vec::new();
    for k in 0..10 {
        for v in 0..(k % 4 + 1) {
            for _ in 0..(1 + (k + v) % 3) {
                labels.push(format!("id{k}"));
                video.push(Some(format!("id{k}-v{v}")));
            }
        }
    }
    let params = common::episodes(0.3, 0.5, 12, 5, vec![0.5]);
    let eps = simulate_episodes_in_encounters(&labels, &video, &params).unwrap();
    assert_eq!(eps.len(), 12);
    let n_videos = |id: &str| {
        video
            .iter()
            .zip(&labels)
            .filter(|(_, l)| *l == id)
            .map(|(v, _)| v.clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    for ep in &eps {
        let g_videos: BTreeSet<&str> = ep
            .gallery
            .iter()
            .map(|&r| video[r].as_deref().unwrap())
            .collect();
        let g_ids: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        let mut known_queries = 0;
        for (&q, &new) in ep.queries.iter().zip(&ep.is_new) {
            let (id, v) = (labels[q].as_str(), video[q].as_deref().unwrap());
            // No query shares an encounter with the gallery.
            assert!(!g_videos.contains(v), "{v} in both");
            assert_eq!(new, !g_ids.contains(id));
            if !new {
                known_queries += 1;
                assert!(n_videos(id) >= 2, "{id} has one video but is a known query");
            }
        }
        assert!(known_queries > 0);
        // Every row is used once.
        let mut all: Vec<usize> = ep.gallery.iter().chain(&ep.queries).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
    }
    // Identity 3 (4 videos of 1, 2, 3, 1 photos: 7 photos) is known in some
    // episode; there round(0.5 × 7) = 4 photos are wanted, so whole videos
    // are taken until at least 4 photos, never all four videos.
    let id3: Vec<usize> = (0..labels.len()).filter(|&r| labels[r] == "id3").collect();
    let mut seen_known = false;
    for ep in &eps {
        let q: Vec<usize> = ep
            .queries
            .iter()
            .copied()
            .filter(|r| id3.contains(r))
            .collect();
        if q.len() == id3.len() {
            continue; // pseudo-new
        }
        seen_known = true;
        let videos: BTreeSet<&str> = q.iter().map(|&r| video[r].as_deref().unwrap()).collect();
        assert!((1..=3).contains(&videos.len()), "{videos:?}");
        assert!(q.len() >= 4 || videos.len() == 3, "{} photos", q.len());
    }
    assert!(seen_known);
    // Seeded: the same again.
    assert_eq!(
        eps,
        simulate_episodes_in_encounters(&labels, &video, &params).unwrap()
    );

    // Photos without a key are encounters of their own: every identity of
    // two or more photos can then give known queries, as by photo.
    let none: Vec<Option<String>> = vec![None; labels.len()];
    let by_photo = simulate_episodes_in_encounters(&labels, &none, &params).unwrap();
    for ep in &by_photo {
        let g_ids: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        // Identity 0 (one video of one photo) is never a known query; a
        // known query of identity 4 (one video of 2 photos) now can be.
        for &q in &ep.queries {
            if labels[q] == "id0" {
                assert!(!g_ids.contains("id0"));
            }
        }
    }
    assert!(by_photo.iter().any(|ep| {
        let g: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        ep.queries.iter().any(|&q| labels[q] == "id4") && g.contains("id4")
    }));
    assert!(!eps.iter().any(|ep| {
        let g: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        ep.queries.iter().any(|&q| labels[q] == "id4") && g.contains("id4")
    }));
    // When no identity has two encounters, the photo-level episodes.
    let one_video: Vec<Option<String>> = labels.iter().map(|l| Some(l.clone())).collect();
    assert_eq!(
        simulate_episodes_in_encounters(&labels, &one_video, &params).unwrap(),
        simulate_episodes(&labels, &params).unwrap()
    );
    // One key per label.
    assert!(matches!(
        simulate_episodes_in_encounters(&labels, &none[1..], &params),
        Err(OpensetError::Length {
            what: "encounters",
            ..
        })
    ));
}

/// `auto` finds the `video` (else `encounter`) column only when every
/// photo has it; names parse; a record's key is its column's value.
#[test]
fn encounters_resolve_and_parse() {
    use reid_core::Record;
    use reid_openset::Encounters;
    let with = |k: &str, v: &str| {
        let mut r = Record::new("x", "x.jpg");
        r.attributes.insert(k.into(), v.into());
        r
    };
    let videos = [with("video", "a"), with("video", "b")];
    let col = |c: &str| Some(Encounters::Column(c.into()));
    assert_eq!(Encounters::Auto.resolve(&videos), col("video"));
    let mixed = [with("video", "a"), with("encounter", "e")];
    assert_eq!(Encounters::Auto.resolve(&mixed), None);
    let enc = [with("encounter", "e"), with("encounter", "f")];
    assert_eq!(Encounters::Auto.resolve(&enc), col("encounter"));
    let empty_value = [with("video", "a"), with("video", "")];
    assert_eq!(Encounters::Auto.resolve(&empty_value), None);
    assert_eq!(Encounters::Auto.resolve(&[]), None);
    assert_eq!(Encounters::Date.resolve(&videos), Some(Encounters::Date));
    assert_eq!("auto".parse::<Encounters>().unwrap(), Encounters::Auto);
    assert_eq!("date".parse::<Encounters>().unwrap(), Encounters::Date);
    assert_eq!(
        "video".parse::<Encounters>().unwrap(),
        Encounters::Column("video".into())
    );
    assert!(" ".parse::<Encounters>().is_err());
    assert_eq!(
        Encounters::Column("video".into())
            .key(&videos[1])
            .as_deref(),
        Some("b")
    );
    assert_eq!(Encounters::Date.key(&videos[1]), None);
}

/// Held-out episodes (for embeddings fitted on part of the database): the
/// split keeps whole videos together and leaves photos to fit on; every
/// pseudo-query of every episode is a held-out photo, every pseudo-new
/// identity is one the fitting never saw, every known pseudo-query one it
/// learned from, and pseudo-new identities vary across episodes.
#[test]
fn held_out_episodes_query_only_unseen_photos() {
    use reid_openset::{held_out_split, simulate_held_out_episodes};
    // 20 identities, identity k with k % 4 + 1 videos of 1..=3 photos each.
    let mut labels = Vec::new();
    let mut video = Vec::new();
    for k in 0..20 {
        for v in 0..(k % 4 + 1) {
            for _ in 0..(1 + (k + v) % 3) {
                labels.push(format!("id{k}"));
                video.push(Some(format!("id{k}-v{v}")));
            }
        }
    }
    let held = held_out_split(&labels, &video, 0.3, 0.3, 7).unwrap();
    // Whole videos held out or kept.
    for i in 0..labels.len() {
        for j in 0..labels.len() {
            if video[i] == video[j] {
                assert_eq!(held[i], held[j], "rows {i} and {j} share a video");
            }
        }
    }
    let fitted = held.iter().filter(|&&h| !h).count();
    assert!(
        fitted > labels.len() / 3 && fitted < labels.len(),
        "{fitted} of {} fitted",
        labels.len()
    );
    let wholly_held: BTreeSet<&str> = labels
        .iter()
        .map(String::as_str)
        .filter(|id| (0..labels.len()).all(|r| labels[r] != *id || held[r]))
        .collect();
    // round(0.3 × 20) = 6 identities wholly held out.
    assert_eq!(wholly_held.len(), 6);

    let params = common::episodes(0.5, 0.5, 8, 3, vec![0.5]);
    let eps = simulate_held_out_episodes(&labels, &video, &held, &params).unwrap();
    let mut new_sets = BTreeSet::new();
    for ep in &eps {
        let g_ids: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        let mut new_ids = BTreeSet::new();
        for (&q, &new) in ep.queries.iter().zip(&ep.is_new) {
            assert!(held[q], "row {q} was fitted on but is a pseudo-query");
            assert_eq!(new, !g_ids.contains(labels[q].as_str()));
            // New: an identity never fitted on; known: a new encounter of
            // one fitted on.
            assert_eq!(new, wholly_held.contains(labels[q].as_str()));
            if new {
                new_ids.insert(labels[q].clone());
            }
        }
        // round(0.5 × 6) = 3 pseudo-new identities, all from the unseen six.
        assert_eq!(new_ids.len(), 3);
        assert!(ep.is_new.iter().any(|n| !n), "no known pseudo-query");
        new_sets.insert(new_ids);
        let mut all: Vec<usize> = ep.gallery.iter().chain(&ep.queries).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
    }
    assert!(
        new_sets.len() > 1,
        "the same pseudo-new identities every episode"
    );

    // Nothing wholly held out: a typed error, not a panic.
    let none_held = vec![false; labels.len()];
    let err = simulate_held_out_episodes(&labels, &video, &none_held, &params).unwrap_err();
    assert!(matches!(err, OpensetError::Episodes(_)), "{err}");
}
