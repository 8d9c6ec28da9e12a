//! t-SNE: exact KL against scikit-learn, determinism, memory layouts,
//! cluster separation, and the typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ndarray::{Array2, ArrayView2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_eval::tsne::{
    Affinities, MIN_SAMPLES, TsneEngine, TsneInit, TsneOutput, TsneParams, kl_divergence,
    pca_initialisation, sparse_joint_probabilities, tsne,
};
use reid_eval::{EvalError, ParamGuard};

/// Checks `params`, then runs [`tsne`] (the data checks included).
fn run<A: Copy + Into<f64>>(
    x: ArrayView2<'_, A>,
    params: &TsneParams,
) -> reid_eval::Result<TsneOutput> {
    tsne(x, &params.clone().check()?)
}

mod common;
use common::fixture_dir;

fn matrix(v: &serde_json::Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    Array2::from_shape_fn((n, d), |(i, j)| rows[i][j])
}

fn sklearn_cases() -> Vec<serde_json::Value> {
    let path = fixture_dir("tsne_sklearn").join("tsne_sklearn.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_array().unwrap().clone()
}

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `per` points around each of `k` centres (N(0, 3²) per coordinate) with
/// N(0, spread²) noise; labels are the centre index.
fn blobs(k: usize, per: usize, d: usize, spread: f64, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((k, d), |_| 3.0 * gaussian(&mut rng));
    let n = k * per;
    let labels: Vec<usize> = (0..n).map(|i| i % k).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        (centres[[labels[i], j]] + spread * gaussian(&mut rng)) as f32
    });
    (x, labels)
}

/// Share of points whose nearest other point (Euclidean) has their label.
fn nn_agreement(y: ArrayView2<'_, f64>, labels: &[usize]) -> f64 {
    let n = y.nrows();
    let mut agree = 0;
    for i in 0..n {
        let mut best = (f64::INFINITY, usize::MAX);
        for j in (0..n).filter(|&j| j != i) {
            let d: f64 = (&y.row(i) - &y.row(j)).mapv(|v| v * v).sum();
            if d < best.0 {
                best = (d, j);
            }
        }
        agree += usize::from(labels[best.1] == labels[i]);
    }
    agree as f64 / n as f64
}

#[test]
fn kl_matches_sklearn_exact_objective() {
    let cases = sklearn_cases();
    assert!(cases.len() >= 4);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let x = matrix(&c["x"]);
        let y = matrix(&c["y"]);
        let perplexity = c["perplexity"].as_f64().unwrap();
        let want = c["kl"].as_f64().unwrap();
        let got = kl_divergence(x.view(), y.view(), perplexity).unwrap();
        // sklearn calibrates on float32 distances, we on float64.
        assert!(
            (got - want).abs() <= 1e-5 * want.abs() + 1e-9,
            "{name}: KL {got} vs sklearn {want}"
        );
        // The joint probabilities themselves, condensed (i < j) as sklearn keeps them.
        let aff = Affinities::new(x.view(), perplexity).unwrap();
        let p: Vec<f64> = c["p"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let n = x.nrows();
        assert_eq!(p.len(), n * (n - 1) / 2);
        let mut k = 0;
        for i in 0..n {
            for j in (i + 1)..n {
                let (a, b) = (aff.joint(i, j), p[k]);
                assert!(
                    (a - b).abs() <= 1e-5 * b + 1e-15,
                    "{name}: P[{i},{j}] = {a} vs sklearn {b}"
                );
                assert_eq!(aff.joint(i, j), aff.joint(j, i));
                k += 1;
            }
        }
        if let Some(sk) = c.get("sklearn_kl").and_then(|v| v.as_f64()) {
            // sklearn reports the objective of its last gradient step.
            assert!(
                (got - sk).abs() < 1e-3,
                "{name}: {got} vs kl_divergence_ {sk}"
            );
        }
    }
}

#[test]
fn kl_scores_structure() {
    let (x, _) = blobs(4, 25, 16, 0.2, 3);
    let params = TsneParams::new(2).perplexity(10.0).max_iter(500).seed(1);
    let out = run(x.view(), &params).unwrap();
    assert!(
        out.kl_divergence > 0.0 && out.kl_divergence < 1.0,
        "{}",
        out.kl_divergence
    );
    // A random embedding of the same spread scores far worse.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let spread = out.embedding.std(0.0);
    let random = Array2::from_shape_fn(out.embedding.dim(), |_| spread * gaussian(&mut rng));
    let kl_random = kl_divergence(x.view(), random.view(), 10.0).unwrap();
    assert!(
        kl_random > out.kl_divergence + 1.0,
        "{kl_random} vs {}",
        out.kl_divergence
    );
    // One scorer, several embeddings: same values as the one-shot function.
    let aff = Affinities::new(x.view(), 10.0).unwrap();
    assert_eq!(
        aff.kl_divergence(out.embedding.view()).unwrap(),
        out.kl_divergence
    );
    assert_eq!(aff.kl_divergence(random.view()).unwrap(), kl_random);
}

/// Bit-for-bit reproducibility: the native engine on both paths, linfa-tsne
/// on its exact path (θ = 0), where the only randomness left is the seeded
/// initial embedding.
#[test]
fn same_seed_same_embedding() {
    let (x, _) = blobs(3, 20, 10, 0.5, 5);
    let base = TsneParams::new(2).perplexity(8.0).max_iter(300).seed(42);
    for params in [
        base.clone().theta(0.0).engine(TsneEngine::Linfa),
        base.clone().theta(0.0).init(TsneInit::Random),
        base.clone().init(TsneInit::Random),
    ] {
        let a = run(x.view(), &params).unwrap();
        let b = run(x.view(), &params).unwrap();
        assert_eq!(a, b, "{params:?}");
        let c = run(x.view(), &params.clone().seed(43)).unwrap();
        assert_ne!(a.embedding, c.embedding, "{params:?}");
    }
}

/// The native engine gives the same bits on 1, 2 and 3 threads: each
/// point's forces are computed alone and every sum runs in a fixed order.
#[test]
fn native_is_reproducible_across_thread_counts() {
    let (x, _) = blobs(5, 60, 16, 0.4, 11);
    for dims in [2, 3] {
        let params = TsneParams::new(dims).perplexity(20.0).max_iter(300).seed(1);
        let runs: Vec<_> = [1, 2, 3]
            .iter()
            .map(|&threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| params.clone().check().unwrap().embed(x.view()).unwrap())
            })
            .collect();
        assert_eq!(runs[0], runs[1], "{dims}-D: 1 vs 2 threads");
        assert_eq!(runs[0], runs[2], "{dims}-D: 1 vs 3 threads");
    }
}

/// The native engine's inputs equal scikit-learn's: the sparse joint
/// probabilities of `TSNE(method="barnes_hut")` and the PCA initialisation.
#[test]
fn native_affinities_and_init_match_sklearn() {
    let path = fixture_dir("tsne_sklearn").join("tsne_sklearn_native.json");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let x = matrix(&c["x"]);
        let perplexity = c["perplexity"].as_f64().unwrap();
        let want = matrix(&c["p_nn"]);
        let n = x.nrows();
        let mut got = Array2::<f64>::zeros((n, n));
        for (i, j, p) in sparse_joint_probabilities(x.view(), perplexity).unwrap() {
            assert_eq!(got[[i, j]], 0.0, "{name}: ({i}, {j}) twice");
            got[[i, j]] = p;
        }
        assert!((got.sum() - 1.0).abs() < 1e-12, "{name}: sum {}", got.sum());
        let stored = want.iter().filter(|&&v| v > 0.0).count();
        assert_eq!(got.iter().filter(|&&v| v > 0.0).count(), stored, "{name}");
        for ((i, j), &w) in want.indexed_iter() {
            // sklearn's binary search runs on float32 distances.
            assert!(
                (got[[i, j]] - w).abs() <= 1e-5 * w + 1e-12,
                "{name}: P[{i},{j}] = {} vs sklearn {w}",
                got[[i, j]]
            );
        }
        let dims = c["dims"].as_u64().unwrap() as usize;
        let pca = matrix(&c["pca"]);
        let ours = pca_initialisation(x.view(), dims, 0).unwrap();
        assert_eq!(ours.dim(), (n, dims));
        for k in 0..dims {
            let (a, b) = (ours.column(k), pca.column(k));
            let sign = if a.dot(&b) < 0.0 { -1.0 } else { 1.0 };
            let scale = b.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            for (u, v) in a.iter().zip(b.iter()) {
                assert!(
                    (sign * u - v).abs() <= 1e-7 * scale,
                    "{name}: PCA column {k}: {u} vs sklearn {v}"
                );
            }
        }
    }
}

/// Barnes-Hut at θ = 0.5 reaches the KL of the exact gradient (θ = 0).
#[test]
fn barnes_hut_tracks_the_exact_gradient() {
    let (x, _) = blobs(6, 50, 20, 0.5, 13);
    let params = TsneParams::new(2).perplexity(15.0).max_iter(500).seed(2);
    let exact = run(x.view(), &params.clone().theta(0.0)).unwrap();
    let bh = run(x.view(), &params).unwrap();
    assert!(
        (bh.kl_divergence - exact.kl_divergence).abs() < 0.05 * exact.kl_divergence,
        "θ 0.5: KL {} vs exact {}",
        bh.kl_divergence,
        exact.kl_divergence
    );
}

/// Barnes-Hut (θ > 0) is not bit-reproducible with linfa-tsne 0.8: bhtsne
/// 0.4's vantage-point tree draws its vantage points from an unseeded
/// generator and, partitioning at the wrong index, misses a few true
/// neighbours, differently each run (see the module doc). Repeats agree in
/// quality, not in bits: most land within 10 % of the exact engine's KL, and
/// now and then one settles in a worse local minimum (60 repeats measured:
/// 57 at 0.578, three ≤ 0.62; one CI run met 0.88 against an exact 0.566), so
/// the median is held to 10 % of exact and every repeat to 1.7× exact with
/// the clusters kept apart.
#[test]
fn barnes_hut_repeats_agree_in_quality() {
    let (x, labels) = blobs(4, 40, 24, 0.3, 5);
    let params = TsneParams::new(2)
        .perplexity(12.0)
        .max_iter(400)
        .seed(42)
        .engine(TsneEngine::Linfa);
    let exact = run(x.view(), &params.clone().theta(0.0))
        .unwrap()
        .kl_divergence;
    let runs: Vec<_> = (0..3).map(|_| run(x.view(), &params).unwrap()).collect();
    let mut kls: Vec<f64> = runs.iter().map(|r| r.kl_divergence).collect();
    kls.sort_by(f64::total_cmp);
    assert!(
        (kls[1] - exact).abs() < 0.1 * exact,
        "median KL of repeats {kls:?} vs exact {exact}"
    );
    assert!(
        kls[2] < 1.7 * exact,
        "KL of repeats {kls:?} vs exact {exact}"
    );
    for r in &runs {
        assert!(nn_agreement(r.embedding.view(), &labels) > 0.95);
    }
}

/// Non-contiguous, transposed and f64 inputs take the same path as the
/// contiguous f32 copy: identical output (native engine, both paths; linfa's
/// exact path).
#[test]
fn any_layout_gives_the_contiguous_result() {
    let (x, _) = blobs(3, 20, 12, 0.5, 6);
    let params = TsneParams::new(2)
        .perplexity(6.0)
        .theta(0.0)
        .max_iter(300)
        .seed(3);
    let xt = x.t().as_standard_layout().into_owned();
    let view = xt.t();
    assert!(!view.is_standard_layout());
    let mut big = Array2::<f32>::from_elem((2 * x.nrows(), 2 * x.ncols()), f32::NAN);
    big.slice_mut(s![..;2, ..;2]).assign(&x);
    let strided = big.slice(s![..;2, ..;2]);
    assert!(strided.as_slice().is_none());
    let x64 = x.mapv(f64::from);
    for p in [
        params.clone(),
        params.clone().theta(0.5),
        params.clone().engine(TsneEngine::Linfa),
    ] {
        let want = run(x.view(), &p).unwrap();
        // Transposed storage (column-major view).
        assert_eq!(run(view, &p).unwrap(), want, "{p:?}");
        // Every other row of a bigger matrix, and every other column.
        assert_eq!(run(strided, &p).unwrap(), want, "{p:?}");
        // f64 input holding the same values.
        assert_eq!(run(x64.view(), &p).unwrap(), want, "{p:?}");
    }
    // linfa's Barnes-Hut path accepts the same views (its output is not bit-stable).
    let bh = params.clone().theta(0.5).engine(TsneEngine::Linfa);
    assert_eq!(run(view, &bh).unwrap().embedding.dim(), (60, 2));
    assert_eq!(run(strided, &bh).unwrap().embedding.dim(), (60, 2));
    let want = run(x.view(), &params).unwrap();
    // KL of a transposed embedding view equals that of the embedding.
    let yt = want.embedding.t().as_standard_layout().into_owned();
    assert_eq!(
        kl_divergence(x.view(), yt.t(), 6.0).unwrap(),
        want.kl_divergence
    );
}

#[test]
fn tight_clusters_stay_separated() {
    let (x, labels) = blobs(4, 50, 32, 0.3, 7);
    for (dims, engine) in [
        (2, TsneEngine::Native),
        (3, TsneEngine::Native),
        (2, TsneEngine::Linfa),
        (3, TsneEngine::Linfa),
    ] {
        let params = TsneParams::new(dims)
            .perplexity(15.0)
            .max_iter(500)
            .seed(0)
            .engine(engine);
        let out = run(x.view(), &params).unwrap();
        assert_eq!(out.embedding.dim(), (200, dims));
        let agree = nn_agreement(out.embedding.view(), &labels);
        assert!(
            agree > 0.95,
            "{dims}-D: nearest-neighbour label agreement {agree}"
        );
        // Clusters are far apart compared with their own size.
        let mut centroid = Array2::<f64>::zeros((4, dims));
        for (i, &l) in labels.iter().enumerate() {
            let mut c = centroid.row_mut(l);
            c += &out.embedding.row(i);
        }
        centroid /= 50.0;
        let mut within: f64 = 0.0;
        for (i, &l) in labels.iter().enumerate() {
            let d = (&out.embedding.row(i) - &centroid.row(l))
                .mapv(|v| v * v)
                .sum()
                .sqrt();
            within = within.max(d);
        }
        let mut between = f64::INFINITY;
        for a in 0..4 {
            for b in (a + 1)..4 {
                let d = (&centroid.row(a) - &centroid.row(b))
                    .mapv(|v| v * v)
                    .sum()
                    .sqrt();
                between = between.min(d);
            }
        }
        assert!(
            between > 2.0 * within,
            "{dims}-D: between {between} within {within}"
        );
        assert!(out.kl_divergence < 1.0, "{dims}-D KL {}", out.kl_divergence);
    }
}

#[test]
fn typed_errors() {
    let (x, _) = blobs(2, 15, 8, 0.5, 8);
    let ok = TsneParams::new(2).perplexity(5.0).max_iter(50);

    // Perplexity against the sample count: 30 samples allow up to 29 / 3.
    let e = run(x.view(), &ok.clone().perplexity(10.0)).unwrap_err();
    match &e {
        EvalError::PerplexityTooLarge {
            perplexity,
            samples,
        } => {
            assert_eq!((*perplexity, *samples), (10.0, 30));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("30 samples"), "{e}");
    assert!(run(x.view(), &ok.clone().perplexity(29.0 / 3.0)).is_ok());

    // NaN / infinity name the row.
    let mut bad = x.clone();
    bad[[7, 3]] = f32::NAN;
    match run(bad.view(), &ok).unwrap_err() {
        EvalError::NonFinite { name, row, .. } => assert_eq!((name, row), ("x", 7)),
        other => panic!("{other:?}"),
    }
    bad[[7, 3]] = 0.0;
    bad[[12, 0]] = f32::INFINITY;
    let e = run(bad.view(), &ok).unwrap_err();
    assert!(matches!(e, EvalError::NonFinite { row: 12, .. }), "{e:?}");
    assert!(e.to_string().contains("row 12"), "{e}");
    assert!(matches!(
        kl_divergence(bad.view(), x.slice(s![.., ..2]), 5.0),
        Err(EvalError::NonFinite { row: 12, .. })
    ));

    // Too few samples.
    let tiny = x.slice(s![..MIN_SAMPLES - 1, ..]);
    match run(tiny, &TsneParams::new(2).perplexity(1.0)).unwrap_err() {
        EvalError::TooFewSamples { samples, min, .. } => {
            assert_eq!((samples, min), (MIN_SAMPLES - 1, MIN_SAMPLES));
        }
        other => panic!("{other:?}"),
    }

    // Parameters checked without data; the message names the value.
    for (params, name, value) in [
        (TsneParams::new(4), "dims", "4"),
        (TsneParams::new(1), "dims", "1"),
        (TsneParams::default().dims(0), "dims", "0"),
        (TsneParams::new(2).perplexity(0.5), "perplexity", "0.5"),
        (TsneParams::new(2).perplexity(f64::NAN), "perplexity", "NaN"),
        (TsneParams::new(2).theta(-0.1), "theta", "-0.1"),
        (TsneParams::new(2).max_iter(1), "max_iter", "1"),
        (
            TsneParams::new(2).max_iter(100).exaggeration_iter(100),
            "exaggeration_iter",
            "100",
        ),
        (TsneParams::new(2).learning_rate(0.0), "learning_rate", "0"),
        (
            TsneParams::new(2).learning_rate(f64::NAN),
            "learning_rate",
            "NaN",
        ),
        (
            TsneParams::new(2).early_exaggeration(0.5),
            "early_exaggeration",
            "0.5",
        ),
        // What linfa-tsne fixes cannot be set for it.
        (
            TsneParams::new(2)
                .engine(TsneEngine::Linfa)
                .learning_rate(100.0),
            "learning_rate",
            "100",
        ),
        (
            TsneParams::new(2)
                .engine(TsneEngine::Linfa)
                .init(TsneInit::Pca),
            "init",
            "Pca",
        ),
        (
            TsneParams::new(2)
                .engine(TsneEngine::Linfa)
                .early_exaggeration(4.0),
            "early_exaggeration",
            "4",
        ),
    ] {
        assert!(params.check_ref().is_err(), "{params:?}");
        let e = params.clone().check().unwrap_err();
        assert!(e.to_string().contains(&format!("`{name}`")), "{e}");
        assert!(e.to_string().contains(&format!("got {value}")), "{e}");
        match e {
            EvalError::InvalidParam { name: got, .. } => assert_eq!(got, name),
            other => panic!("{other:?}"),
        }
    }
    // The checked parameters resolve the defaults that depend on others.
    let v = TsneParams::default().max_iter(100).check().unwrap();
    assert_eq!((v.dims(), v.exaggeration_iter()), (2, 50));
    assert_eq!(v.init(), TsneInit::Pca);
    let v = TsneParams::new(3)
        .engine(TsneEngine::Linfa)
        .check()
        .unwrap();
    assert_eq!(
        (v.dims(), v.init(), v.exaggeration_iter()),
        (3, TsneInit::Random, 250)
    );

    // Fewer features than output dims; every row the same point.
    let narrow = x.slice(s![.., ..2]);
    assert!(matches!(
        run(narrow, &ok.clone().max_iter(50)).map(|_| ()),
        Ok(())
    ));
    assert!(matches!(
        run(narrow, &TsneParams::new(3).perplexity(5.0)),
        Err(EvalError::Shape { .. })
    ));
    let constant = Array2::<f32>::ones((20, 4));
    assert!(matches!(
        run(constant.view(), &ok),
        Err(EvalError::ConstantInput { samples: 20, .. })
    ));

    // KL: rows must pair up; perplexity must be positive.
    assert!(matches!(
        kl_divergence(x.view(), x.slice(s![..10, ..2]), 5.0),
        Err(EvalError::Shape { .. })
    ));
    assert!(matches!(
        kl_divergence(x.view(), x.slice(s![.., ..2]), 0.0),
        Err(EvalError::InvalidParam {
            name: "perplexity",
            ..
        })
    ));
    assert!(matches!(
        kl_divergence(x.slice(s![..1, ..]), x.slice(s![..1, ..2]), 5.0),
        Err(EvalError::TooFewSamples { samples: 1, .. })
    ));

    // The native engine's parts, called on their own.
    assert!(matches!(
        sparse_joint_probabilities(bad.view(), 5.0),
        Err(EvalError::NonFinite { row: 12, .. })
    ));
    assert!(matches!(
        sparse_joint_probabilities(x.view(), -1.0),
        Err(EvalError::InvalidParam {
            name: "perplexity",
            ..
        })
    ));
    assert!(matches!(
        sparse_joint_probabilities(x.slice(s![..1, ..]), 5.0),
        Err(EvalError::TooFewSamples { samples: 1, .. })
    ));
    for dims in [0, 9] {
        assert!(matches!(
            pca_initialisation(x.view(), dims, 0),
            Err(EvalError::InvalidParam { name: "dims", .. })
        ));
    }
}
