//! Mutual nearest neighbours and the ratio test, on hand-made descriptors
//! and against a naive reference.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_local::ParamGuard;
use reid_local::{LocalError, MatchParams, match_descriptors};

// a0 is clearly b0; a1 is between b1 (0.10 away) and b2 (0.11 away), which
// fails a 0.8 ratio; a2 and a3 both have b3 nearest, but b3 prefers a2.
const A: [f32; 8] = [1.0, 0.0, 0.0, 1.0, 3.0, 0.0, 3.2, 0.0];
const B: [f32; 8] = [0.95, 0.05, 0.1, 1.0, -0.11, 1.0, 3.05, 0.0];

fn pairs(ratio: f32, mutual: bool) -> Vec<(u32, u32)> {
    let p = MatchParams { ratio, mutual }.check().unwrap();
    match_descriptors(&A, &B, 2, &p)
        .unwrap()
        .iter()
        .map(|m| (m.a, m.b))
        .collect()
}

#[test]
fn ratio_test_and_mutual_check_on_hand_made_descriptors() {
    assert_eq!(pairs(0.8, true), vec![(0, 0), (2, 3)]);
    // A looser ratio keeps the ambiguous a1 -> b1 (0.10 / 0.11 = 0.91).
    assert_eq!(pairs(1.0, true), vec![(0, 0), (1, 1), (2, 3)]);
    assert_eq!(pairs(0.9, true), vec![(0, 0), (2, 3)]);
    // Without the mutual check a3 -> b3 is kept too.
    assert_eq!(pairs(0.8, false), vec![(0, 0), (2, 3), (3, 3)]);

    let p = MatchParams::default().check().unwrap();
    let m = match_descriptors(&A, &B, 2, &p).unwrap();
    // |a0 - b0| = sqrt(0.05² + 0.05²); second nearest b1: sqrt(0.9² + 1²).
    assert!(
        (m[0].distance - 0.070_710_68).abs() < 1e-5,
        "{}",
        m[0].distance
    );
    assert!((m[0].second_distance - 1.345_362).abs() < 1e-5);
    assert!((m[1].distance - 0.05).abs() < 1e-5);
}

#[test]
fn exact_ties_fail_the_ratio_test_and_a_single_candidate_skips_it() {
    let p = MatchParams::default().check().unwrap();
    // a is equally far from both rows of b.
    let m = match_descriptors(&[0.0, 0.0], &[1.0, 0.0, -1.0, 0.0], 2, &p).unwrap();
    assert!(m.is_empty());
    let m = match_descriptors(&[0.0, 0.0], &[1.0, 0.0], 2, &p).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].second_distance, f32::INFINITY);
    assert!(
        match_descriptors(&[], &[1.0, 0.0], 2, &p)
            .unwrap()
            .is_empty()
    );
}

/// Naive O(n m d) mutual-NN + ratio matching.
fn reference(a: &[f32], b: &[f32], d: usize, ratio: f32) -> Vec<(u32, u32)> {
    let dist = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
    let (na, nb) = (a.len() / d, b.len() / d);
    let nearest_in_a = |j: usize| {
        (0..na)
            .map(|i| (dist(&a[i * d..][..d], &b[j * d..][..d]), i))
            .fold((f32::INFINITY, 0), |x, y| if y.0 < x.0 { y } else { x })
            .1
    };
    let mut out = Vec::new();
    for i in 0..na {
        let mut ds: Vec<(f32, usize)> = (0..nb)
            .map(|j| (dist(&a[i * d..][..d], &b[j * d..][..d]), j))
            .collect();
        ds.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        if ds[0].0.sqrt() < ratio * ds[1].0.sqrt() && nearest_in_a(ds[0].1) == i {
            out.push((i as u32, ds[0].1 as u32));
        }
    }
    out
}

#[test]
fn brute_force_matching_agrees_with_a_naive_reference() {
    let d = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let unit = |rng: &mut ChaCha8Rng| {
        let mut v: Vec<f32> = (0..d).map(|_| rng.gen_range(0.0f32..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    };
    // 300 rows (several GEMM tiles) against 250: 150 of b are noisy copies
    // of rows of a, in shuffled order.
    let a: Vec<Vec<f32>> = (0..300).map(|_| unit(&mut rng)).collect();
    let mut b: Vec<Vec<f32>> = (0..100).map(|_| unit(&mut rng)).collect();
    for i in 0..150 {
        let src = &a[(i * 37) % 300];
        b.push(
            src.iter()
                .map(|x| x + rng.gen_range(-0.01f32..0.01))
                .collect(),
        );
    }
    let flat = |v: &Vec<Vec<f32>>| v.iter().flatten().copied().collect::<Vec<f32>>();
    let (fa, fb) = (flat(&a), flat(&b));
    let p = MatchParams::default().check().unwrap();
    let got: Vec<(u32, u32)> = match_descriptors(&fa, &fb, d, &p)
        .unwrap()
        .iter()
        .map(|m| (m.a, m.b))
        .collect();
    assert_eq!(got, reference(&fa, &fb, d, 0.8));
    // Every planted copy is found.
    for i in 0..150u32 {
        assert!(
            got.contains(&(((i * 37) % 300), 100 + i)),
            "copy {i} missed"
        );
    }
}

#[test]
fn matching_input_errors_are_typed() {
    let p = MatchParams::default().check().unwrap();
    assert!(matches!(
        match_descriptors(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2, &p),
        Err(LocalError::Shape { .. })
    ));
    assert!(matches!(
        match_descriptors(&[1.0, f32::NAN], &[1.0, 2.0], 2, &p),
        Err(LocalError::NonFinite {
            what: "first descriptor set",
            index: 1
        })
    ));
    assert!(matches!(
        match_descriptors(&[1.0], &[1.0], 0, &p),
        Err(LocalError::InvalidParam { name: "dim", .. })
    ));
    for bad in [0.0, -0.5, 1.5, f32::NAN] {
        let e = MatchParams {
            ratio: bad,
            mutual: true,
        }
        .check()
        .unwrap_err();
        assert!(
            matches!(e, LocalError::InvalidParam { name: "ratio", .. }),
            "{e}"
        );
    }
}
