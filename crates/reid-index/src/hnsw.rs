//! A compact HNSW graph (Malkov & Yashunin, 2018) over L2-normalised `f32`
//! vectors with distance `1 - dot`: 8-bit scalar-quantised vector codes (one
//! scale per vector, a quarter of the memory and memory traffic of `f32`),
//! one small locked neighbour list per node and layer, a reusable per-thread
//! visited table and the "keep diverse neighbours" selection heuristic. The
//! graph search returns its whole beam with approximate cosines; the caller
//! re-scores it with the exact `f32` vectors. Node levels come from a seeded
//! hash, so a serial build is deterministic.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

/// Highest layer a node may get.
const MAX_LEVEL: usize = 15;

/// `Σ a·b` of two 8-bit codes, 16 lanes wide so the compiler vectorises it.
#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += i32::from(i16::from(u) * i16::from(v));
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// A vector's 8-bit code: `x ≈ scale · code`, `scale = max|x| / 127`.
fn quantise(x: &[f32], out: &mut Vec<i8>) -> f32 {
    let maxabs = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if maxabs > 0.0 && maxabs.is_finite() {
        maxabs / 127.0
    } else {
        1.0
    };
    out.extend(
        x.iter()
            .map(|&v| (v / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// A quantised vector: its code and scale.
#[derive(Clone, Copy)]
struct Code<'a> {
    c: &'a [i8],
    s: f32,
}

/// Approximate `1 - a·b` of two quantised vectors.
#[inline]
fn dist(a: Code<'_>, b: Code<'_>) -> f32 {
    1.0 - a.s * b.s * dot_i8(a.c, b.c) as f32
}

/// A node and its distance, ordered by distance (then node).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cand {
    d: f32,
    node: u32,
}

impl Eq for Cand {}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d.total_cmp(&other.d).then(self.node.cmp(&other.node))
    }
}

thread_local! {
    /// Visited marks (generation numbers) reused across searches.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// SplitMix64, for the seeded node levels.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The graph. Node `i` has code `codes[i*dim..]`, scale `scales[i]`, caller id `ids[i]` and
/// neighbour lists `links[i][level]`.
pub(crate) struct Graph {
    dim: usize,
    m: usize,
    efc: usize,
    ml: f64,
    codes: Vec<i8>,
    scales: Vec<f32>,
    ids: Vec<u64>,
    links: Vec<Vec<Mutex<Vec<u32>>>>,
    /// Entry node and its level.
    entry: Mutex<Option<(u32, usize)>>,
}

impl Graph {
    /// An empty graph; `m` links per node on upper layers (`2m` on layer 0).
    pub(crate) fn new(dim: usize, m: usize, efc: usize) -> Self {
        Self {
            dim,
            m,
            efc,
            ml: 1.0 / (m.max(2) as f64).ln(),
            codes: Vec::new(),
            scales: Vec::new(),
            ids: Vec::new(),
            links: Vec::new(),
            entry: Mutex::new(None),
        }
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn vec(&self, i: u32) -> Code<'_> {
        let s = i as usize * self.dim;
        Code {
            c: self.codes.get(s..s + self.dim).unwrap_or(&[]),
            s: self.scales.get(i as usize).copied().unwrap_or(0.0),
        }
    }

    fn max_links(&self, level: usize) -> usize {
        if level == 0 { 2 * self.m } else { self.m }
    }

    fn neighbours(&self, i: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        if let Some(l) = self.links.get(i as usize).and_then(|v| v.get(level)) {
            out.extend_from_slice(&l.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    fn level_of(&self, i: usize) -> usize {
        let u = (mix(i as u64 ^ 0x5EED_4E55) >> 11) as f64 / (1u64 << 53) as f64;
        let l = (-(u.max(f64::MIN_POSITIVE)).ln() * self.ml) as usize;
        l.min(MAX_LEVEL)
    }

    /// Appends `rows` (row-major, `dim` wide) named `ids` and links them,
    /// on all rayon threads when `parallel`.
    pub(crate) fn insert(&mut self, rows: &[f32], ids: &[u64], parallel: bool) {
        let first = self.len();
        self.codes.reserve(rows.len());
        for row in rows.chunks_exact(self.dim.max(1)) {
            let scale = quantise(row, &mut self.codes);
            self.scales.push(scale);
        }
        self.ids.extend_from_slice(ids);
        for i in first..self.ids.len() {
            let lv = self.level_of(i);
            self.links.push(
                (0..=lv)
                    .map(|l| Mutex::new(Vec::with_capacity(self.max_links(l) + 1)))
                    .collect(),
            );
        }
        let n = self.ids.len();
        let this = &*self;
        if parallel {
            // Seed the graph serially so parallel inserts have an entry.
            let serial_end = (first + 64).min(n);
            (first..serial_end).for_each(|i| this.link(i as u32));
            (serial_end..n)
                .into_par_iter()
                .for_each(|i| this.link(i as u32));
        } else {
            (first..n).for_each(|i| this.link(i as u32));
        }
    }

    fn link(&self, q: u32) {
        let level = self
            .links
            .get(q as usize)
            .map_or(0, Vec::len)
            .saturating_sub(1);
        let entry = *self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((ep, top)) = entry else {
            *self.entry.lock().unwrap_or_else(PoisonError::into_inner) = Some((q, level));
            return;
        };
        let qv = self.vec(q);
        let mut cur = Cand {
            d: dist(qv, self.vec(ep)),
            node: ep,
        };
        let mut buf = Vec::new();
        for l in (level + 1..=top).rev() {
            cur = self.greedy(qv, cur, l, &mut buf);
        }
        let mut eps = vec![cur];
        for l in (0..=level.min(top)).rev() {
            let w = self.search_layer(qv, &eps, self.efc, l, &|_| true, Some(q));
            let chosen = self.select(&w, self.m);
            if let Some(mine) = self.links.get(q as usize).and_then(|v| v.get(l)) {
                let mut mine = mine.lock().unwrap_or_else(PoisonError::into_inner);
                mine.clear();
                mine.extend(chosen.iter().map(|c| c.node));
            }
            let cap = self.max_links(l);
            for c in &chosen {
                let Some(list) = self.links.get(c.node as usize).and_then(|v| v.get(l)) else {
                    continue;
                };
                let mut list = list.lock().unwrap_or_else(PoisonError::into_inner);
                if list.contains(&q) {
                    continue;
                }
                if list.len() < cap {
                    list.push(q);
                } else {
                    let cv = self.vec(c.node);
                    let mut cands: Vec<Cand> = list
                        .iter()
                        .chain(std::iter::once(&q))
                        .map(|&o| Cand {
                            d: dist(cv, self.vec(o)),
                            node: o,
                        })
                        .collect();
                    cands.sort_unstable();
                    let kept = self.select(&cands, cap);
                    list.clear();
                    list.extend(kept.iter().map(|k| k.node));
                }
            }
            eps = w;
        }
        if level > top {
            let mut e = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
            if e.is_none_or(|(_, t)| level > t) {
                *e = Some((q, level));
            }
        }
    }

    /// The diversity heuristic: from `cands` (sorted nearest first) keep a
    /// candidate only if it is nearer the query than every one kept so far.
    fn select(&self, cands: &[Cand], m: usize) -> Vec<Cand> {
        let mut kept: Vec<Cand> = Vec::with_capacity(m);
        for &c in cands {
            if kept.len() >= m {
                break;
            }
            let cv = self.vec(c.node);
            if kept.iter().all(|k| dist(cv, self.vec(k.node)) > c.d) {
                kept.push(c);
            }
        }
        kept
    }

    /// Distances from `q` to `nodes`.
    fn dists(&self, q: Code<'_>, nodes: &[u32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(nodes.iter().map(|&n| dist(q, self.vec(n))));
    }

    fn greedy(&self, qv: Code<'_>, mut cur: Cand, level: usize, buf: &mut Vec<u32>) -> Cand {
        loop {
            let mut improved = false;
            self.neighbours(cur.node, level, buf);
            for &n in buf.iter() {
                let d = dist(qv, self.vec(n));
                if d < cur.d {
                    cur = Cand { d, node: n };
                    improved = true;
                }
            }
            if !improved {
                return cur;
            }
        }
    }

    /// Beam search of one layer; returns up to `ef` nodes accepted by `keep`
    /// (and not `skip`), nearest first.
    fn search_layer(
        &self,
        qv: Code<'_>,
        eps: &[Cand],
        ef: usize,
        level: usize,
        keep: &dyn Fn(u64) -> bool,
        skip: Option<u32>,
    ) -> Vec<Cand> {
        VISITED.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (marks, gen_) = &mut *guard;
            if marks.len() < self.len() {
                marks.resize(self.len(), 0);
            }
            *gen_ = gen_.wrapping_add(1);
            if *gen_ == 0 {
                marks.iter_mut().for_each(|m| *m = 0);
                *gen_ = 1;
            }
            let g = *gen_;
            let mut cands: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef * 4);
            let mut res: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
            let accept = |c: Cand| {
                Some(c.node) != skip && self.ids.get(c.node as usize).is_some_and(|&id| keep(id))
            };
            for &e in eps {
                if let Some(m) = marks.get_mut(e.node as usize) {
                    if *m == g {
                        continue;
                    }
                    *m = g;
                }
                cands.push(Reverse(e));
                if accept(e) {
                    res.push(e);
                    if res.len() > ef {
                        res.pop();
                    }
                }
            }
            let mut buf = Vec::with_capacity(2 * self.m);
            let mut fresh = Vec::with_capacity(2 * self.m);
            let mut ds = Vec::with_capacity(2 * self.m);
            while let Some(Reverse(c)) = cands.pop() {
                if res.len() >= ef && res.peek().is_some_and(|w| c.d > w.d) {
                    break;
                }
                self.neighbours(c.node, level, &mut buf);
                fresh.clear();
                for &n in &buf {
                    if let Some(m) = marks.get_mut(n as usize)
                        && *m != g
                    {
                        *m = g;
                        fresh.push(n);
                    }
                }
                self.dists(qv, &fresh, &mut ds);
                for (&n, &d) in fresh.iter().zip(&ds) {
                    let full = res.len() >= ef;
                    if !full || res.peek().is_some_and(|w| d < w.d) {
                        let nc = Cand { d, node: n };
                        cands.push(Reverse(nc));
                        if accept(nc) {
                            res.push(nc);
                            if res.len() > ef {
                                res.pop();
                            }
                        }
                    }
                }
            }
            res.into_sorted_vec()
        })
    }

    /// The beam of `ef` nodes nearest `q` (caller id, approximate cosine),
    /// keeping only ids accepted by `keep`; best first.
    pub(crate) fn search(
        &self,
        q: &[f32],
        ef: usize,
        keep: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let entry = *self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((ep, top)) = entry else {
            return Vec::new();
        };
        let mut code = Vec::with_capacity(q.len());
        let s = quantise(q, &mut code);
        let q = Code { c: &code, s };
        let mut cur = Cand {
            d: dist(q, self.vec(ep)),
            node: ep,
        };
        let mut buf = Vec::new();
        for l in (1..=top).rev() {
            cur = self.greedy(q, cur, l, &mut buf);
        }
        let found = self.search_layer(q, &[cur], ef, 0, keep, None);
        found
            .into_iter()
            .filter_map(|c| Some((*self.ids.get(c.node as usize)?, 1.0 - c.d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Code, dist, dot_i8, quantise};

    /// Deterministic pseudo-random unit vector of `d` dimensions.
    fn unit(d: usize, seed: u64) -> Vec<f32> {
        let v: Vec<f32> = (0..d as u64)
            .map(|i| (super::mix(seed * 1000 + i) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn codes_reproduce_cosines() {
        // dot_i8 against a plain integer sum, with a tail that is not a
        // multiple of the 16 lanes.
        let a: Vec<i8> = (0..37).map(|i| (i * 7 % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..37).map(|i| (i * 13 % 255 - 127) as i8).collect();
        let want: i32 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
        assert_eq!(dot_i8(&a, &b), want);
        // Extreme codes: 127·127·256 fits, and -127 (not -128) is the floor.
        let mut c = Vec::new();
        let s = quantise(&[1.0, -1.0, 0.5, 0.0], &mut c);
        assert_eq!(c, vec![127, -127, 64, 0]);
        assert!((s - 1.0 / 127.0).abs() < 1e-9);
        // The 8-bit cosine of unit vectors is within 0.01 of the exact one.
        for d in [7usize, 64, 256, 300] {
            for seed in 0..20u64 {
                let (x, y) = (unit(d, seed), unit(d, seed + 100));
                let exact: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
                let (mut cx, mut cy) = (Vec::new(), Vec::new());
                let (sx, sy) = (quantise(&x, &mut cx), quantise(&y, &mut cy));
                let approx = 1.0 - dist(Code { c: &cx, s: sx }, Code { c: &cy, s: sy });
                assert!(
                    (approx - exact).abs() < 0.01,
                    "d {d} seed {seed}: {approx} vs {exact}"
                );
            }
        }
        // A zero vector gets a zero code and does not divide by zero.
        let mut z = Vec::new();
        assert_eq!(quantise(&[0.0; 5], &mut z), 1.0);
        assert_eq!(z, vec![0; 5]);
    }
}
