//! k-reciprocal re-ranking: a case worked out by hand, parity with a
//! dense reference written from the definitions (every row's full
//! ranking, dense encodings over gallery + query), one query at a time
//! whatever the batch, and typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use ndarray::{Array2, ArrayView1, array, s};
use reid_openset::rerank::{KReciprocalParams, Reranker, ValidKReciprocalParams, search};
use reid_openset::{AdaptParams, Adaptation, OpensetError, ParamGuard};

fn params(k1: usize, k2: usize, lambda: f32) -> ValidKReciprocalParams {
    KReciprocalParams::default()
        .k1(k1)
        .k2(k2)
        .lambda(lambda)
        .check()
        .unwrap()
}

/// Gallery rows 0 = (1, 0), 1 = (0.8, 0.6), 2 = (0, 1); query (0.6, 0.8);
/// k1 = 1 (so ⌈k1/2⌉ = 1), k2 = 1 (no local expansion), λ = 0.5.
///
/// Cosines: rows 0·1 = 0.8, 0·2 = 0, 1·2 = 0.6; query·rows = 0.6, 0.96, 0.8.
/// Nearest other: row 0 → 1, row 1 → 0, row 2 → 1 (0.6); query → row 1.
/// R(0) = {0, 1}, R(1) = {0, 1}, R(2) = {2} (2 ∉ N(1, 1) = {1, 0});
/// the query beats row 1's nearest (0.96 > 0.8): R(q) = {q, 1}. The
/// extension adds nothing: R(1) = {0, 1} meets R(q) in 1 ≤ 2/3 · 2.
/// Encodings (d = (1 - cos)/2): V_0 = (1, e^-0.1)/(1 + e^-0.1) on rows
/// (0, 1), V_1 the same on (1, 0), V_2 = 1 on row 2, V_q = (1,
/// e^-0.02)/(1 + e^-0.02) on (q, 1). Σ min: row 0 min(V_q[1], V_0[1]) =
/// e^-0.1/(1 + e^-0.1) (the smaller), row 1 V_q[1], row 2 nothing.
#[test]
fn a_case_worked_out_by_hand() {
    let g = array![[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0]];
    let gallery = common::gallery(&g, &["a", "a", "b"]);
    let r = Reranker::new(&gallery, &params(1, 1, 0.5)).unwrap();
    let top = r.search(array![[0.6f32, 0.8]].view(), 3).unwrap();
    let e1 = (-0.1f64).exp();
    let e2 = (-0.02f64).exp();
    let v0 = e1 / (1.0 + e1);
    let vq = e2 / (1.0 + e2);
    let jaccard = |m: f64| 1.0 - m / (2.0 - m);
    let score = |m: f64, cos: f64| 1.0 - (0.5 * jaccard(m) + 0.5 * (1.0 - cos) / 2.0);
    let want = [
        (1usize, score(vq, 0.96)),
        (0, score(v0, 0.6)),
        (2, score(0.0, 0.8)),
    ];
    // 0.654452, 0.555747, 0.45: row 0 (row 1's reciprocal neighbour) now
    // before row 2, which cosine ranked second.
    assert!((want[0].1 - 0.654452).abs() < 1e-6 && (want[1].1 - 0.555747).abs() < 1e-6);
    for (j, (row, s)) in want.iter().enumerate() {
        assert_eq!(top.indices[[0, j]], *row);
        assert!(
            (f64::from(top.scores[[0, j]]) - s).abs() < 1e-6,
            "{j}: {} vs {s}",
            top.scores[[0, j]]
        );
    }
}

/// The definitions, densely: every ranking sorted in full, every
/// encoding a vector over the gallery rows and the query (last).
fn reference<'a>(
    g: &'a Array2<f32>,
    q: ArrayView1<'a, f32>,
    p: &ValidKReciprocalParams,
) -> Vec<f64> {
    let n = g.nrows();
    let m = n + 1;
    let row = |i: usize| if i == n { q } else { g.row(i) };
    let mut c = vec![vec![0.0f64; m]; m];
    for (i, ci) in c.iter_mut().enumerate() {
        for (j, cij) in ci.iter_mut().enumerate() {
            *cij = row(i)
                .iter()
                .zip(row(j).iter())
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
        }
    }
    // Ranking of the others: the gallery's among gallery rows only; the
    // query's over the gallery.
    let order = |i: usize| -> Vec<usize> {
        let mut o: Vec<usize> = (0..n).filter(|&x| x != i).collect();
        o.sort_by(|&a, &b| c[i][b].total_cmp(&c[i][a]).then(a.cmp(&b)));
        o
    };
    let orders: Vec<Vec<usize>> = (0..m).map(order).collect();
    // Is `p` in N(x, k)? For the query in a gallery row's list: its rank
    // among that row's others with the query inserted (after equal rows).
    let in_n = |p: usize, x: usize, k: usize| -> bool {
        if p == x {
            return true;
        }
        if p == n {
            let ahead = orders[x].iter().filter(|&&y| c[x][y] >= c[x][n]).count();
            return ahead < k;
        }
        if x == n {
            return false;
        }
        orders[x].iter().take(k).any(|&y| y == p)
    };
    let r = |p: usize, k: usize| -> Vec<usize> {
        let mut v: Vec<usize> = std::iter::once(p)
            .chain(orders[p].iter().take(k).copied())
            .filter(|&x| in_n(p, x, k))
            .collect();
        v.sort_unstable();
        v
    };
    let half = p.k1().div_ceil(2);
    let encode = |i: usize| -> Vec<f64> {
        let base = r(i, p.k1());
        let mut star = base.clone();
        for &x in &base {
            let rx = r(x, half);
            let shared = rx.iter().filter(|y| base.contains(y)).count();
            if 3 * shared > 2 * rx.len() {
                star.extend(rx);
            }
        }
        let mut v = vec![0.0f64; m];
        for &x in &star {
            v[x] = (-(1.0 - c[i][x]) / 2.0).exp();
        }
        let sum: f64 = v.iter().sum();
        v.iter().map(|w| w / sum).collect()
    };
    let raw: Vec<Vec<f64>> = (0..m).map(encode).collect();
    let expanded = |i: usize| -> Vec<f64> {
        let rows: Vec<usize> = std::iter::once(i)
            .chain(orders[i].iter().take(p.k2() - 1).copied())
            .collect();
        (0..m)
            .map(|x| rows.iter().map(|&j| raw[j][x]).sum::<f64>() / rows.len() as f64)
            .collect()
    };
    let vq = expanded(n);
    let lambda = f64::from(p.lambda());
    (0..n)
        .map(|gi| {
            let vg = expanded(gi);
            let (mut lo, mut hi) = (0.0, 0.0);
            for x in 0..m {
                lo += vq[x].min(vg[x]);
                hi += vq[x].max(vg[x]);
            }
            let d = (1.0 - lambda) * (1.0 - lo / hi) + lambda * (1.0 - c[n][gi]) / 2.0;
            1.0 - d
        })
        .collect()
}

#[test]
fn matches_the_dense_reference() {
    // Six identities of six photos, and queries: photos of three of them
    // and two random rows.
    let (x, labels) = common::planted(&[6, 6, 6, 6, 6, 6, 3, 3, 3], 0.3, 0.35, 12, 7);
    let g = x.slice(s![..36, ..]).to_owned();
    let noise = common::random_rows(2, x.ncols(), 11);
    let mut q = Array2::<f32>::zeros((7, x.ncols()));
    q.slice_mut(s![..3, ..]).assign(&x.slice(s![36..39, ..]));
    q.slice_mut(s![3..5, ..]).assign(&x.slice(s![39..41, ..]));
    q.slice_mut(s![5.., ..]).assign(&noise);
    let gallery = common::gallery(&g, &labels[..36]);
    for p in [
        params(4, 2, 0.3),
        params(6, 3, 0.0),
        params(1, 1, 0.5),
        params(20, 6, 0.3),
        params(50, 4, 0.3), // more neighbours than the gallery holds
    ] {
        let r = Reranker::new(&gallery, &p).unwrap();
        let all = r.search(q.view(), 36).unwrap();
        let top3 = r.search(q.view(), 3).unwrap();
        assert_eq!(all.indices.ncols(), 36);
        for qi in 0..q.nrows() {
            let want = reference(&g, q.row(qi), &p);
            let mut order: Vec<usize> = (0..36).collect();
            order.sort_by(|&a, &b| want[b].total_cmp(&want[a]).then(a.cmp(&b)));
            for j in 0..36 {
                let got = all.indices[[qi, j]];
                assert!(
                    (f64::from(all.scores[[qi, j]]) - want[got]).abs() < 1e-5,
                    "{p}: query {qi} rank {j}: row {got} scored {} against {}",
                    all.scores[[qi, j]],
                    want[got]
                );
                assert!(
                    (want[got] - want[order[j]]).abs() < 1e-5,
                    "{p}: query {qi} rank {j}"
                );
            }
            assert_eq!(
                top3.indices.row(qi).to_vec(),
                all.indices.row(qi).slice(s![..3]).to_vec()
            );
        }
    }
}

/// Re-ranking reads no other query: each query alone gets what it gets
/// in the batch, and other queries moved change nothing.
#[test]
fn each_query_is_reranked_on_its_own() {
    let (x, labels) = common::planted(&[5, 5, 5, 5], 0.3, 0.4, 10, 3);
    let gallery = common::gallery(&x.slice(s![..16, ..]).to_owned(), &labels[..16]);
    let q = x.slice(s![16.., ..]).to_owned();
    let p = params(4, 3, 0.3);
    let r = Reranker::new(&gallery, &p).unwrap();
    let batch = r.search(q.view(), 8).unwrap();
    for i in 0..q.nrows() {
        let one = r.search(q.slice(s![i..i + 1, ..]), 8).unwrap();
        assert_eq!(one.indices.row(0), batch.indices.row(i));
        assert_eq!(one.scores.row(0), batch.scores.row(i));
    }
    let mut moved = q.clone();
    moved.row_mut(1).assign(&q.row(0));
    let again = r.search(moved.view(), 8).unwrap();
    assert_eq!(again.indices.row(0), batch.indices.row(0));
    assert_eq!(again.scores.row(2), batch.scores.row(2));
    // `search` with no settings is the cosine search.
    let plain = search(&gallery, q.view(), 8, None).unwrap();
    let cos = gallery.search_topk(q.view(), 8, None).unwrap();
    assert_eq!(plain.indices, cos.indices);
    assert_eq!(search(&gallery, q.view(), 8, Some(&p)).unwrap(), batch);
}

#[test]
fn bad_input_is_a_typed_error() {
    for (p, name) in [
        (KReciprocalParams::default().k1(0), "k1"),
        (KReciprocalParams::default().k2(0), "k2"),
        (KReciprocalParams::default().lambda(-0.1), "lambda"),
        (KReciprocalParams::default().lambda(f32::NAN), "lambda"),
    ] {
        match p.check() {
            Err(OpensetError::InvalidParam { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A projection carrying a bad re-ranking is refused with it.
    let bad = AdaptParams::new(Adaptation::Whiten).rerank(Some(KReciprocalParams::default().k1(0)));
    assert!(matches!(
        bad.check(),
        Err(OpensetError::InvalidParam { name: "k1", .. })
    ));
    let good = AdaptParams::new(Adaptation::Whiten)
        .shrinkage(0.1)
        .qe(2)
        .rerank(Some(KReciprocalParams::default()))
        .check()
        .unwrap();
    assert_eq!(
        good.to_string(),
        "whiten(shrinkage 0.1) + qe 2 (alpha 1) + k-reciprocal(k1 20, k2 6, lambda 0.3)"
    );
    assert_eq!(good.rerank(), Some(params(20, 6, 0.3)));

    let g = array![[1.0f32, 0.0], [0.0, 1.0]];
    let gallery = common::gallery(&g, &["a", "b"]);
    let r = Reranker::new(&gallery, &params(2, 2, 0.3)).unwrap();
    match r.search(array![[1.0f32, 0.0, 0.0]].view(), 1) {
        Err(OpensetError::Shape { got, .. }) => assert_eq!(got, "[1, 3]"),
        other => panic!("{other:?}"),
    }
    match r.search(array![[1.0f32, f32::NAN]].view(), 1) {
        Err(OpensetError::NonFinite { row: 0, col: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    let empty = reid_index::Gallery::new("m", 2).unwrap();
    assert!(matches!(
        Reranker::new(&empty, &params(2, 2, 0.3)),
        Err(OpensetError::EmptyGallery)
    ));
    // No queries: an empty answer; k beyond the gallery: every row.
    assert_eq!(
        r.search(Array2::<f32>::zeros((0, 2)).view(), 1)
            .unwrap()
            .indices
            .nrows(),
        0
    );
    assert_eq!(
        r.search(array![[0.6f32, 0.8]].view(), 9)
            .unwrap()
            .indices
            .ncols(),
        2
    );
}
