//! k-reciprocal re-ranking (Zhong, Zheng, Cao and Li, "Re-ranking Person
//! Re-identification with k-reciprocal Encoding", CVPR 2017), one query at
//! a time.
//!
//! A gallery row that is among a query's nearest neighbours **and** has the
//! query among its own is far more likely the same individual than one that
//! merely sits close: photos of one animal form tight mutual
//! neighbourhoods, while a look-alike of another animal has its own
//! neighbours. Each row `p` is encoded by the set of its k-reciprocal
//! neighbours, and two rows are compared by the overlap of those sets.
//!
//! With `cos` the cosine and `d(a, b) = (1 - cos(a, b)) / 2` in `[0, 1]`:
//!
//! 1. `N(p, k)`: `p` and its `k` most similar other rows (ties: the lower
//!    row; the query comes after every gallery row);
//! 2. `R(p, k) = {x ∈ N(p, k) : p ∈ N(x, k)}`, the k-reciprocal set;
//! 3. `R*(p, k1)`: `R(p, k1)` joined with `R(x, ⌈k1 / 2⌉)` for each
//!    `x ∈ R(p, k1)` whose own set lies for more than two thirds in
//!    `R(p, k1)` (rows that a strict mutual test misses);
//! 4. `V_p[x] = exp(-d(p, x))` over `x ∈ R*(p, k1)`, scaled to sum 1;
//!    then the local expansion: `V_p` becomes the mean of the `V` of `p`
//!    and its `k2 - 1` nearest other rows;
//! 5. the Jaccard distance `d_J(p, g) = 1 - Σ min(V_p, V_g) / Σ max(V_p,
//!    V_g)`, and the final distance `d* = (1 - λ) d_J + λ d`.
//!
//! The score returned for a pair is `1 - d*`, in `[0, 1]`, higher for the
//! better match (with `λ = 1`, `(1 + cos) / 2`: the cosine ranking).
//!
//! **Inductive, as a catalogue needs it.** The paper re-ranks a whole query
//! set at once, each query's neighbourhood reading the other queries. Here
//! every query is re-ranked against the gallery alone: the gallery's
//! neighbourhoods and encodings are computed once from the gallery rows,
//! and a query enters them only through its own tests ("am I among this
//! row's `k` nearest?", answered exactly against the row's `k`-th
//! neighbour). A query's result never depends on which other queries are
//! searched with it, and no label is read: inside self-calibration the
//! gallery is the episode's pseudo-gallery
//! ([`crate::episodes::episode_view`]), after any projection refitted on
//! it.
//!
//! ```
//! use ndarray::array;
//! use reid_index::Gallery;
//! use reid_openset::rerank::{KReciprocalParams, Reranker};
//! use reid_openset::ParamGuard;
//!
//! // A tight pair (rows 0, 1) and a lone row 2; the query sits nearest row 1
//! // but cosine puts row 2 before row 0.
//! let g = array![[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0]];
//! let gallery = Gallery::from_labels(g.view(), &["a", "a", "b"])?;
//! let p = KReciprocalParams::default().k1(1).k2(1).lambda(0.5).check()?;
//! let top = Reranker::new(&gallery, &p)?.search(array![[0.6f32, 0.8]].view(), 3)?;
//! // Row 0 is row 1's reciprocal neighbour: re-ranked above row 2.
//! assert_eq!(top.indices.row(0).to_vec(), vec![1, 0, 2]);
//! // With λ = 1 the order is the cosine's.
//! let cos_only = KReciprocalParams::default().k1(1).k2(1).lambda(1.0).check()?;
//! let top = Reranker::new(&gallery, &cos_only)?.search(array![[0.6f32, 0.8]].view(), 3)?;
//! assert_eq!(top.indices.row(0).to_vec(), vec![1, 2, 0]);
//! assert!((top.scores[[0, 0]] - (1.0 + 0.96) / 2.0).abs() < 1e-6);
//! # Ok::<(), reid_openset::OpensetError>(())
//! ```

use std::fmt;

use ndarray::{Array2, ArrayView2};
use reid_core::ParamGuard;
use reid_index::{Gallery, TopK};

use crate::{OpensetError, Result, check};

/// Settings of k-reciprocal re-ranking; checked by [`ParamGuard::check`]
/// into [`ValidKReciprocalParams`]. The defaults are the paper's (Market-1501:
/// `k1 = 20`, `k2 = 6`, `λ = 0.3`).
///
/// ```
/// use reid_openset::rerank::KReciprocalParams;
/// use reid_openset::ParamGuard;
/// let p = KReciprocalParams::default().k1(10).check()?;
/// assert_eq!((p.k1(), p.k2(), p.lambda()), (10, 6, 0.3));
/// assert!(KReciprocalParams::default().k1(0).check().is_err());
/// assert!(KReciprocalParams::default().lambda(1.5).check().is_err());
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KReciprocalParams {
    k1: usize,
    k2: usize,
    lambda: f32,
}

impl Default for KReciprocalParams {
    fn default() -> Self {
        Self {
            k1: 20,
            k2: 6,
            lambda: 0.3,
        }
    }
}

impl KReciprocalParams {
    reid_core::setters! {
        /// Neighbours of the k-reciprocal sets (at least 1).
        k1: usize,
        /// Rows whose encodings are averaged, the row itself included (at
        /// least 1; 1: no local expansion).
        k2: usize,
        /// Weight of the original distance in the final one, in `[0, 1]`.
        lambda: f32,
    }
}

/// Checked [`KReciprocalParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidKReciprocalParams(KReciprocalParams);

impl ParamGuard for KReciprocalParams {
    type Checked = ValidKReciprocalParams;
    type Error = OpensetError;

    fn check_ref(&self) -> Result<()> {
        for (name, v) in [("k1", self.k1), ("k2", self.k2)] {
            if v == 0 {
                return Err(OpensetError::InvalidParam {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if !(self.lambda.is_finite() && (0.0..=1.0).contains(&self.lambda)) {
            return Err(OpensetError::InvalidParam {
                name: "lambda",
                reason: format!("must be in [0, 1], got {}", self.lambda),
            });
        }
        Ok(())
    }

    fn check(self) -> Result<ValidKReciprocalParams> {
        self.check_ref()?;
        Ok(ValidKReciprocalParams(self))
    }
}

impl ValidKReciprocalParams {
    reid_core::getters! {
        /// Neighbours of the k-reciprocal sets.
        k1: usize,
        /// Rows whose encodings are averaged.
        k2: usize,
        /// Weight of the original distance.
        lambda: f32,
    }

    /// Back to the builder, to change a setting.
    pub fn into_params(self) -> KReciprocalParams {
        self.0
    }

    /// `⌈k1 / 2⌉`, the size of the sets that extend `R(p, k1)`.
    fn half(&self) -> usize {
        self.0.k1.div_ceil(2)
    }
}

impl fmt::Display for ValidKReciprocalParams {
    /// `k-reciprocal(k1 20, k2 6, lambda 0.3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "k-reciprocal(k1 {}, k2 {}, lambda {})",
            self.0.k1, self.0.k2, self.0.lambda
        )
    }
}

/// A sparse encoding: `(row, weight)` sorted by row.
type Sparse = Vec<(u32, f32)>;

/// The original distance of a cosine, in `[0, 1]`.
fn distance(cos: f32) -> f32 {
    ((1.0 - cos) * 0.5).clamp(0.0, 1.0)
}

/// `(x, exp(-d))` over `members` scaled to sum 1, sorted by `x`.
fn encode(members: &[(u32, f32)]) -> Sparse {
    let mut v: Sparse = members
        .iter()
        .map(|&(x, cos)| (x, (-distance(cos)).exp()))
        .collect();
    v.sort_unstable_by_key(|&(x, _)| x);
    let sum: f32 = v.iter().map(|&(_, w)| w).sum();
    if sum > 0.0 {
        for e in &mut v {
            e.1 /= sum;
        }
    }
    v
}

/// The mean of `parts` (sparse, each summing to 1).
fn mean_of(parts: &[&Sparse], scratch: &mut [f32], touched: &mut Vec<u32>) -> Sparse {
    let scale = 1.0 / parts.len().max(1) as f32;
    for part in parts {
        for &(x, w) in part.iter() {
            let slot = &mut scratch[x as usize];
            if *slot == 0.0 {
                touched.push(x);
            }
            *slot += w * scale;
        }
    }
    touched.sort_unstable();
    let out = touched.iter().map(|&x| (x, scratch[x as usize])).collect();
    for &x in touched.iter() {
        scratch[x as usize] = 0.0;
    }
    touched.clear();
    out
}

/// Members of `a` that are in `b` (both sorted).
fn overlap(a: &[u32], b: &[u32]) -> usize {
    a.iter().filter(|x| b.binary_search(x).is_ok()).count()
}

/// `R(p, k1)` extended by every `R(x, half)` that lies for more than two
/// thirds in it (`sets(x)` gives `R(x, half)`, sorted); sorted, no repeats.
fn extend<'s>(r: &[u32], sets: impl Fn(u32) -> &'s [u32]) -> Vec<u32> {
    let mut out = r.to_vec();
    for &x in r {
        let rx = sets(x);
        if 3 * overlap(rx, r) > 2 * rx.len() {
            out.extend_from_slice(rx);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A gallery's neighbourhoods and encodings, ready to re-rank queries
/// against it ([`Reranker::search`]).
pub struct Reranker<'g> {
    gallery: &'g Gallery,
    params: ValidKReciprocalParams,
    /// Cosine of each row's `k1`-th and `⌈k1/2⌉`-th nearest other row
    /// (`-inf` when it has fewer others): a query enters `N(row, k)` when
    /// its cosine beats it.
    kth_k1: Vec<f32>,
    kth_half: Vec<f32>,
    /// `R(row, ⌈k1/2⌉)`, sorted.
    r_half: Vec<Vec<u32>>,
    /// Each row's encoding before the local expansion.
    encoding: Vec<Sparse>,
    /// After it, as postings: for each row `x`, the rows `g` with
    /// `V_g[x] > 0` and that weight.
    postings: Vec<Vec<(u32, f32)>>,
}

impl<'g> Reranker<'g> {
    /// Computes the gallery's neighbourhoods (one exact search of the
    /// gallery against itself) and encodings. Errors on an empty gallery.
    pub fn new(gallery: &'g Gallery, params: &ValidKReciprocalParams) -> Result<Self> {
        if gallery.is_empty() {
            return Err(OpensetError::EmptyGallery);
        }
        let n = gallery.len();
        if n > u32::MAX as usize - 1 {
            return Err(OpensetError::InvalidParam {
                name: "gallery",
                reason: format!("{n} rows: re-ranking takes at most 2^32 - 2"),
            });
        }
        let (k1, half, k2) = (params.k1(), params.half(), params.k2());
        let depth = k1.max(k2 - 1);
        let emb = gallery.embeddings();
        let top = gallery.search_topk(emb, depth + 1, None)?;
        let mut nearest = Vec::with_capacity(n);
        let mut kth_k1 = Vec::with_capacity(n);
        let mut kth_half = Vec::with_capacity(n);
        for (p, (idx, sc)) in top
            .indices
            .outer_iter()
            .zip(top.scores.outer_iter())
            .enumerate()
        {
            let others: Vec<(u32, f32)> = idx
                .iter()
                .zip(sc.iter())
                .filter(|&(&g, _)| g != p)
                .take(depth)
                .map(|(&g, &s)| (g as u32, s))
                .collect();
            let kth = |k: usize| others.get(k - 1).map_or(f32::NEG_INFINITY, |o| o.1);
            kth_k1.push(kth(k1));
            kth_half.push(kth(half));
            nearest.push(others.into_iter().map(|o| o.0).collect::<Vec<u32>>());
        }
        // p ∈ N(x, k): x itself or among its k nearest others.
        let in_n = |p: u32, x: u32, k: usize| {
            p == x || nearest[x as usize].iter().take(k).any(|&y| y == p)
        };
        let reciprocal = |p: u32, k: usize| -> Vec<u32> {
            let mut r: Vec<u32> = std::iter::once(p)
                .chain(nearest[p as usize].iter().take(k).copied())
                .filter(|&x| in_n(p, x, k))
                .collect();
            r.sort_unstable();
            r
        };
        let r_half: Vec<Vec<u32>> = (0..n as u32).map(|p| reciprocal(p, half)).collect();
        let encoding: Vec<Sparse> = (0..n as u32)
            .map(|p| {
                let star = extend(&reciprocal(p, k1), |x| &r_half[x as usize]);
                let row = emb.row(p as usize);
                let members: Vec<(u32, f32)> = star
                    .iter()
                    .map(|&x| (x, row.dot(&emb.row(x as usize))))
                    .collect();
                encode(&members)
            })
            .collect();
        let mut scratch = vec![0.0f32; n];
        let mut touched = Vec::new();
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for p in 0..n {
            let parts: Vec<&Sparse> = std::iter::once(&encoding[p])
                .chain(
                    nearest[p]
                        .iter()
                        .take(k2 - 1)
                        .map(|&x| &encoding[x as usize]),
                )
                .collect();
            for (x, w) in mean_of(&parts, &mut scratch, &mut touched) {
                postings[x as usize].push((p as u32, w));
            }
        }
        Ok(Self {
            gallery,
            params: *params,
            kth_k1,
            kth_half,
            r_half,
            encoding,
            postings,
        })
    }

    /// The `min(k, gallery rows)` best gallery rows of each query by the
    /// re-ranked score `1 - d*`, best first (ties: the lower row), with
    /// those scores. Each query is re-ranked on its own. Errors on a query
    /// of the wrong width or with a non-finite value.
    pub fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<TopK> {
        check::queries(queries, self.gallery.dim())?;
        let n = self.gallery.len();
        let k = k.min(n);
        let mut indices = Array2::<usize>::zeros((queries.nrows(), k));
        let mut scores = Array2::<f32>::zeros((queries.nrows(), k));
        if queries.nrows() == 0 {
            return Ok(TopK { indices, scores });
        }
        let (k1, half, k2) = (self.params.k1(), self.params.half(), self.params.k2());
        let depth = k1.max(k2 - 1).max(k);
        let top = self.gallery.search_topk(queries, depth, None)?;
        let emb = self.gallery.embeddings();
        let lambda = self.params.lambda();
        // The query's own coordinate in the encodings: after every row.
        let me = n as u32;
        let mut scratch = vec![0.0f32; n + 1];
        let mut touched = Vec::new();
        let mut acc = vec![0.0f32; n];
        let mut hit = vec![false; n];
        for (qi, (idx, sc)) in top
            .indices
            .outer_iter()
            .zip(top.scores.outer_iter())
            .enumerate()
        {
            let q = queries.row(qi);
            let cos_to = |x: u32| -> f32 {
                if x == me {
                    1.0
                } else {
                    q.dot(&emb.row(x as usize))
                }
            };
            // R(q, k): q, and each of its k nearest rows that has q among
            // its own k nearest (q beats the row's k-th neighbour).
            let reciprocal = |k: usize, kth: &[f32]| -> Vec<u32> {
                let mut r: Vec<u32> = std::iter::once(me)
                    .chain(
                        idx.iter()
                            .zip(sc.iter())
                            .take(k)
                            .filter(|&(&g, &s)| s > kth[g])
                            .map(|(&g, _)| g as u32),
                    )
                    .collect();
                r.sort_unstable();
                r
            };
            let r_q = reciprocal(k1, &self.kth_k1);
            let r_q_half = reciprocal(half, &self.kth_half);
            let star = extend(&r_q, |x| {
                if x == me {
                    &r_q_half
                } else {
                    &self.r_half[x as usize]
                }
            });
            let members: Vec<(u32, f32)> = star.iter().map(|&x| (x, cos_to(x))).collect();
            let own = encode(&members);
            let parts: Vec<&Sparse> = std::iter::once(&own)
                .chain(idx.iter().take(k2 - 1).map(|&g| &self.encoding[g]))
                .collect();
            let v_q = mean_of(&parts, &mut scratch, &mut touched);
            // Σ min(V_q, V_g) for every g sharing a coordinate with q.
            let mut rows: Vec<u32> = Vec::new();
            for &(x, w) in &v_q {
                if x == me {
                    continue;
                }
                for &(g, wg) in &self.postings[x as usize] {
                    if !hit[g as usize] {
                        hit[g as usize] = true;
                        rows.push(g);
                    }
                    acc[g as usize] += w.min(wg);
                }
            }
            // Rows sharing nothing have d_J = 1 and rank by cosine: the
            // cosine's own best k cover them.
            for &g in idx.iter().take(k) {
                if !hit[g] {
                    hit[g] = true;
                    rows.push(g as u32);
                }
            }
            let mut ranked: Vec<(u32, f32)> = rows
                .iter()
                .map(|&g| {
                    let m = acc[g as usize];
                    let jaccard = 1.0 - m / (2.0 - m);
                    let d = (1.0 - lambda) * jaccard + lambda * distance(cos_to(g));
                    (g, 1.0 - d)
                })
                .collect();
            for &g in &rows {
                acc[g as usize] = 0.0;
                hit[g as usize] = false;
            }
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (j, &(g, s)) in ranked.iter().take(k).enumerate() {
                indices[[qi, j]] = g as usize;
                scores[[qi, j]] = s;
            }
        }
        Ok(TopK { indices, scores })
    }

    /// The settings.
    pub fn params(&self) -> &ValidKReciprocalParams {
        &self.params
    }
}

/// The `k` best gallery rows of each query: by k-reciprocal re-ranking
/// when `rerank` is given ([`Reranker`], the gallery's neighbourhoods
/// computed for this call), else by cosine ([`Gallery::search_topk`]).
/// What every search of the pipeline's episodes goes through.
pub fn search(
    gallery: &Gallery,
    queries: ArrayView2<'_, f32>,
    k: usize,
    rerank: Option<&ValidKReciprocalParams>,
) -> Result<TopK> {
    match rerank {
        Some(p) => Reranker::new(gallery, p)?.search(queries, k),
        None => Ok(gallery.search_topk(queries, k, None)?),
    }
}
