//! Choosing the projection from the database's own episodes: on embeddings
//! whose largest variance is a nuisance shared by every animal, a
//! projection fitted on the identities wins; the choice never reads a
//! query; and each trial is the self-calibration `identify` runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ndarray::Array2;
use reid_pipeline::{
    AdaptParams, Adaptation, FeatureSet, OpenSetParams, ParamGuard, Record, SelfCalibrationParams,
    SplitRole, choose_adaptation, choose_features, default_adapt_candidates,
    default_neighbourhood_candidates, default_rerank_candidates, identify,
};

const DIM: usize = 16;

/// A reproducible value in [-1, 1) from a counter (no random crate).
fn noise(i: u64) -> f32 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// 12 animals (10 in the database, 2 new) × 6 photos: each animal a small
/// signature in dims 0..8 (norm 0.3), each photo a large nuisance in dims
/// 8..16 (each coordinate up to ±1), so raw cosine mostly sees the
/// nuisance. The last two photos of animals 0..4 are queries.
fn nuisance_set() -> (Vec<Record>, Array2<f32>) {
    let mut records = Vec::new();
    let mut rows = Vec::new();
    let mut k = 0u64;
    for animal in 0..12usize {
        let mut sig = [0f32; 8];
        for (d, v) in sig.iter_mut().enumerate() {
            *v = noise(1000 + (animal * 8 + d) as u64);
        }
        let n = sig.iter().map(|v| v * v).sum::<f32>().sqrt();
        for photo in 0..6 {
            let mut row = [0f32; DIM];
            for d in 0..8 {
                row[d] = 0.3 * sig[d] / n + 0.02 * noise(k);
                k += 1;
            }
            for v in &mut row[8..] {
                *v = noise(k);
                k += 1;
            }
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            rows.extend(row.iter().map(|v| v / norm));
            let split = if animal >= 10 || (animal < 5 && photo >= 4) {
                SplitRole::Query
            } else {
                SplitRole::Database
            };
            records.push(
                Record::new(format!("{animal}_{photo}"), format!("{animal}_{photo}.jpg"))
                    .with_identity(format!("animal{animal}"))
                    .with_split(split),
            );
        }
    }
    let emb = Array2::from_shape_vec((records.len(), DIM), rows).unwrap();
    (records, emb)
}

fn params() -> reid_pipeline::ValidOpenSetParams {
    OpenSetParams::default()
        .episodes(SelfCalibrationParams::default().episodes(8).seed(3))
        .check()
        .unwrap()
}

#[test]
fn a_projection_fitted_on_the_identities_wins_over_a_shared_nuisance() {
    let (records, emb) = nuisance_set();
    let candidates = default_adapt_candidates();
    let choice = choose_adaptation(&records, emb.view(), &params(), &candidates).unwrap();
    assert_eq!(choice.trials.len(), 7);
    let names: Vec<String> = choice.trials.iter().map(|t| t.name()).collect();
    assert_eq!(names[0], "none");
    assert_eq!(names[6], "lda(shrinkage 0.9)");
    let none = choice.trials[0].score;
    let best = choice.best().unwrap();
    assert!(best.adapt.is_some(), "{names:?}");
    assert!(
        best.score > none + 0.2,
        "best {} ({}) vs none {none}",
        best.score,
        best.name()
    );
    // The chosen one is the highest, and the earliest of equals.
    for (i, t) in choice.trials.iter().enumerate() {
        assert!(t.score <= best.score);
        if i < choice.chosen {
            assert!(t.score < best.score);
        }
    }
    // One dataset: its score is the trial's.
    for t in &choice.trials {
        assert_eq!(t.per_dataset.len(), 1);
        assert_eq!(t.per_dataset.values().next().copied(), Some(t.score));
    }
}

#[test]
fn each_trial_is_the_calibration_identify_runs() {
    let (records, emb) = nuisance_set();
    let p = params();
    let lda = AdaptParams::new(Adaptation::Lda).shrinkage(0.3);
    let rerank = reid_openset::KReciprocalParams::default().k1(5).k2(2);
    let candidates = vec![None, Some(lda), Some(lda.rerank(Some(rerank)))];
    let choice = choose_adaptation(&records, emb.view(), &p, &candidates).unwrap();
    for (t, c) in choice.trials.iter().zip(&candidates) {
        let pc = p.with_adapt(c.map(|c| c.check().unwrap())).unwrap();
        let out = identify(&records, emb.view(), &pc).unwrap();
        let cal = out.calibration.unwrap();
        let (_, s) = cal.per_group.iter().next().unwrap();
        assert_eq!(t.score, s.score_mean, "{}", t.name());
    }
    // The chosen parameters carry the chosen projection.
    let chosen = choice.params(&p).unwrap();
    assert_eq!(chosen.adapt().copied(), choice.adapt());
}

#[test]
fn the_choice_never_reads_a_query() {
    let (records, emb) = nuisance_set();
    let mut candidates = default_adapt_candidates();
    // With a re-ranking too: its neighbourhoods are the pseudo-gallery's.
    candidates.extend(
        default_rerank_candidates()
            .into_iter()
            .map(|r| Some(AdaptParams::new(Adaptation::Whiten).rerank(Some(r)))),
    );
    let a = choose_adaptation(&records, emb.view(), &params(), &candidates).unwrap();
    let mut other = emb.clone();
    for (i, r) in records.iter().enumerate() {
        if r.split == Some(SplitRole::Query) {
            other.row_mut(i).fill(0.0);
            other[[i, i % DIM]] = 1.0;
        }
    }
    let b = choose_adaptation(&records, other.view(), &params(), &candidates).unwrap();
    assert_eq!(a.chosen, b.chosen);
    for (x, y) in a.trials.iter().zip(&b.trials) {
        assert_eq!((x.score, &x.per_dataset), (y.score, &y.per_dataset));
    }
}

#[test]
fn no_candidate_or_a_bad_one_is_an_error() {
    let (records, emb) = nuisance_set();
    let e = choose_adaptation(&records, emb.view(), &params(), &[]).unwrap_err();
    assert!(e.to_string().contains("candidates"), "{e}");
    let bad = [Some(AdaptParams::new(Adaptation::Lda).shrinkage(1.5))];
    let e = choose_adaptation(&records, emb.view(), &params(), &bad).unwrap_err();
    assert!(e.to_string().contains("shrinkage"), "{e}");
    let e = choose_adaptation(&records[1..], emb.view(), &params(), &[None]).unwrap_err();
    assert!(e.to_string().contains("rows"), "{e}");
}

/// What a trial found, without its timing.
fn outcomes(
    trials: &[reid_pipeline::AdaptTrial],
) -> Vec<(String, f64, std::collections::BTreeMap<String, f64>)> {
    trials
        .iter()
        .map(|t| (t.name(), t.score, t.per_dataset.clone()))
        .collect()
}

/// Rows of pure noise, one per record: no identity in them.
fn blind(n: usize) -> Array2<f32> {
    let mut m = Array2::from_shape_fn((n, DIM), |(i, d)| noise(50_000 + (i * DIM + d) as u64));
    for mut row in m.rows_mut() {
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    m
}

#[test]
fn the_set_of_embeddings_that_tells_the_animals_apart_is_chosen() {
    let (records, emb) = nuisance_set();
    let noise_rows = blind(records.len());
    let candidates = default_adapt_candidates();
    let sets = [
        FeatureSet {
            name: "blind".into(),
            embeddings: noise_rows.view(),
        },
        FeatureSet {
            name: "signature".into(),
            embeddings: emb.view(),
        },
    ];
    let choice = choose_features(
        &records,
        &sets,
        &params(),
        &candidates,
        default_neighbourhood_candidates,
        &default_rerank_candidates(),
    )
    .unwrap();
    assert_eq!(choice.chosen, 1);
    assert_eq!(choice.name(), "signature");
    // Each set's first-stage trials are `choose_adaptation`'s on that set;
    // only the winner's were followed by the neighbourhood steps.
    for (set, c) in sets.iter().zip(&choice.choices) {
        let alone = choose_adaptation(&records, set.embeddings, &params(), &candidates).unwrap();
        assert_eq!(
            outcomes(&c.trials[..7]),
            outcomes(&alone.trials),
            "{}",
            set.name
        );
    }
    assert_eq!(choice.choices[0].trials.len(), 7);
    assert!(choice.choices[1].trials.len() > 7);
    let blind_best = choice.choices[0].best().unwrap().score;
    let chosen_best = choice.adapt_choice().best().unwrap().score;
    assert!(
        chosen_best > blind_best + 0.1,
        "{chosen_best} vs {blind_best}"
    );
    let names: Vec<String> = choice.trials().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "blind: none");
    assert_eq!(names[7], "signature: none");

    // Equal sets: the first is kept.
    let twins = [sets[1].clone(), sets[1].clone()];
    let tie = choose_features(
        &records,
        &twins,
        &params(),
        &candidates,
        |_| Vec::new(),
        &[],
    )
    .unwrap();
    assert_eq!(tie.chosen, 0);

    // The queries' rows change nothing.
    let mut other = emb.clone();
    for (i, r) in records.iter().enumerate() {
        if r.split == Some(SplitRole::Query) {
            other.row_mut(i).fill(0.0);
            other[[i, i % DIM]] = 1.0;
        }
    }
    let moved = [
        sets[0].clone(),
        FeatureSet {
            name: "signature".into(),
            embeddings: other.view(),
        },
    ];
    let again = choose_features(
        &records,
        &moved,
        &params(),
        &candidates,
        default_neighbourhood_candidates,
        &default_rerank_candidates(),
    )
    .unwrap();
    assert_eq!(again.chosen, choice.chosen);
    for (a, b) in again.choices.iter().zip(&choice.choices) {
        assert_eq!(outcomes(&a.trials), outcomes(&b.trials));
    }

    let e =
        choose_features(&records, &[], &params(), &candidates, |_| Vec::new(), &[]).unwrap_err();
    assert!(e.to_string().contains("sets"), "{e}");
}
