//! Exact cosine top-k search: a blocked query × gallery product with the
//! top-k selection fused per tile, spread over the rayon pool.
//!
//! The work is cut into tasks of `query_tile` queries × a contiguous chunk of
//! gallery rows. A task walks its chunk in tiles of `gallery_tile` rows; for
//! each tile one GEMM call writes the `[query_tile, gallery_tile]` score tile
//! into a task-local buffer (sized to stay in cache), and each score row is
//! then folded into that query's bounded heap of the best `k` so far. Chunks
//! of the same queries are merged at the end. Ties are broken by the lower
//! gallery index everywhere, so the result does not depend on the tiling or
//! on the number of threads.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::matmul::inner_products_into;
#[cfg(doc)]
use reid_core::ParamGuard;

use crate::{IndexError, Result};

/// The `k` best gallery matches of each query, best first.
///
/// Both arrays have shape `[queries, min(k, gallery)]`; row `q` holds the
/// gallery row indices and cosine similarities of query `q`, ordered by
/// decreasing similarity, ties broken by the lower gallery index.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Gallery row indices, `[queries, k']`.
    pub indices: Array2<usize>,
    /// Similarities, `[queries, k']`.
    pub scores: Array2<f32>,
}

/// Tiling of the exact search; [`ParamGuard::check`] gives the
/// [`ValidExactParams`] that search takes.
///
/// The defaults (`128` queries × `1024` gallery rows) keep the score tile at
/// 512 KiB, about one core's L2 cache; in a single trial on a loaded 2-core
/// AVX2 machine they beat `256 × 512`. Any values give the same results,
/// only the speed changes.
///
/// ```
/// use reid_index::{ExactParams, ParamGuard};
/// let p = ExactParams::default().query_tile(64).gallery_tile(2048).check()?;
/// assert_eq!(p.query_tile(), 64);
/// assert!(ExactParams::default().query_tile(0).check().is_err());
/// # Ok::<(), reid_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExactParams {
    query_tile: usize,
    gallery_tile: usize,
    kernel: Kernel,
}

/// How the score tiles are computed. Every kernel gives exact top-k
/// results: the same rows and f32 scores, up to the rounding of the f32 sum
/// (about 1e-7), so a tie may fall the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernel {
    /// f32 GEMM (the `gemm` crate), every CPU.
    F32,
    /// bf16 inner products with f32 accumulation as a pre-filter (x86-64
    /// AVX-512 BF16), the survivors of its proven error bound re-scored in
    /// f32: half the bytes per gallery value and twice the multiply-adds per
    /// instruction. Refused by `check` on a CPU without the instructions.
    Bf16Prefilter,
    /// The same pre-filter with the bf16 products on Intel AMX tiles
    /// ([`crate::amx`], x86-64 Linux): a 16 × 32 by 32 × 16 product per
    /// instruction. Refused by `check` where the CPU or OS lacks AMX.
    AmxPrefilter,
    /// For a batch of at least [`PREFILTER_MIN_QUERIES`] queries,
    /// [`Kernel::AmxPrefilter`] where the CPU and OS have AMX, else
    /// [`Kernel::Bf16Prefilter`] where the CPU has AVX-512 BF16, else
    /// [`Kernel::F32`]; for fewer queries [`Kernel::F32`] (the pre-filters
    /// repack the whole gallery at every search, which a few queries do not
    /// repay).
    #[default]
    Auto,
}

/// The smallest query batch for which [`Kernel::Auto`] takes a bf16
/// pre-filter. Measured on an Intel Xeon with AMX (2 threads, 512-d, k =
/// 10; f32 / AMX seconds): 100k rows, 1 query 0.010 / 0.059, 32 queries 0.033
/// / 0.064, 128 queries 0.083 / 0.080, 1000 queries 0.59 / 0.155; 10k rows,
/// 32 queries 0.0030 / 0.0041, 128 queries 0.0089 / 0.0067. Packing the
/// gallery costs about as much as 100 queries' f32 products, whatever its
/// size.
pub const PREFILTER_MIN_QUERIES: usize = 128;

/// Checked [`ExactParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidExactParams(ExactParams);

impl Default for ExactParams {
    fn default() -> Self {
        Self {
            query_tile: 128,
            gallery_tile: 1024,
            kernel: Kernel::Auto,
        }
    }
}

impl ExactParams {
    reid_core::setters! {
        /// Queries per tile (at least 1).
        query_tile: usize,

        /// Gallery rows per tile (at least 1; the score tile `query_tile ×
        /// gallery_tile` at most 2^26 floats).
        gallery_tile: usize,

        /// The score kernel (default [`Kernel::Auto`]).
        kernel: Kernel,
    }
}

reid_core::param_guard!(ExactParams => ValidExactParams, IndexError, |p| {
    if p.query_tile == 0 {
        return Err(IndexError::param("query_tile", "must be at least 1"));
    }
    if p.gallery_tile == 0 {
        return Err(IndexError::param("gallery_tile", "must be at least 1"));
    }
    if p.kernel == Kernel::Bf16Prefilter && !crate::bf16::available() {
        return Err(IndexError::param(
            "kernel",
            "Bf16Prefilter needs a CPU with AVX-512 BF16; use F32 or Auto",
        ));
    }
    if p.kernel == Kernel::AmxPrefilter && !crate::amx::available() {
        return Err(IndexError::param(
            "kernel",
            "AmxPrefilter needs a CPU with AMX-BF16 and an OS granting its tile state; use F32 or Auto",
        ));
    }
    match p.query_tile.checked_mul(p.gallery_tile) {
        Some(t) if t <= 1 << 26 => Ok(()),
        _ => Err(IndexError::param(
            "gallery_tile",
            format!(
                "score tile {} x {} exceeds 2^26 elements",
                p.query_tile, p.gallery_tile
            ),
        )),
    }
});

impl ValidExactParams {
    reid_core::getters! {
        /// Queries per tile.
        query_tile: usize,
        /// Gallery rows per tile.
        gallery_tile: usize,
    }

    /// The kernel that runs for a large batch: [`Kernel::Auto`] resolved
    /// for this CPU.
    pub fn kernel(&self) -> Kernel {
        self.kernel_for(PREFILTER_MIN_QUERIES)
    }

    /// The kernel that runs for a batch of `queries` queries: as
    /// [`ValidExactParams::kernel`], except that [`Kernel::Auto`] takes
    /// [`Kernel::F32`] below [`PREFILTER_MIN_QUERIES`]. A kernel named
    /// explicitly always runs.
    pub fn kernel_for(&self, queries: usize) -> Kernel {
        match self.0.kernel {
            Kernel::Auto if queries < PREFILTER_MIN_QUERIES => Kernel::F32,
            Kernel::Auto if crate::amx::available() => Kernel::AmxPrefilter,
            Kernel::Auto if crate::bf16::available() => Kernel::Bf16Prefilter,
            Kernel::Auto => Kernel::F32,
            k => k,
        }
    }
}

/// Exact top-`k` by inner product of L2-normalised rows (cosine similarity).
///
/// `queries` is `[q, d]`, `gallery` is `[n, d]`; the result has
/// `min(k, n)` columns. An empty gallery, `k == 0`, differing dimensions and
/// non-finite values (naming the first offending row) are errors. Runs on the
/// current rayon pool (use `ThreadPool::install` to choose the thread count).
///
/// ```
/// use ndarray::array;
/// let gallery = array![[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8]];
/// let queries = array![[0.8f32, 0.6]];
/// let top = reid_index::exact_topk(queries.view(), gallery.view(), 2).unwrap();
/// // 0.8*1 + 0.6*0 = 0.8; 0.8*0.6 + 0.6*0.8 = 0.96; 0.6 for row 1.
/// assert_eq!(top.indices.row(0).to_vec(), vec![2, 0]);
/// assert!((top.scores[[0, 0]] - 0.96).abs() < 1e-6);
/// ```
pub fn exact_topk(
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    k: usize,
) -> Result<TopK> {
    exact_topk_with(queries, gallery, k, &ValidExactParams::default())
}

/// [`exact_topk`] with an explicit tiling.
pub fn exact_topk_with(
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    k: usize,
    config: &ValidExactParams,
) -> Result<TopK> {
    let n = gallery.nrows();
    if n == 0 {
        return Err(IndexError::EmptyGallery);
    }
    if k == 0 {
        return Err(IndexError::param("k", "must be at least 1"));
    }
    if queries.ncols() != gallery.ncols() {
        return Err(IndexError::Shape {
            expected: format!("queries [q, {}] (the gallery's dimension)", gallery.ncols()),
            got: format!("[{}, {}]", queries.nrows(), queries.ncols()),
        });
    }
    if let Some(row) = first_non_finite_row(queries) {
        return Err(IndexError::NonFinite { what: "query", row });
    }
    let nq = queries.nrows();
    let kk = k.min(n);
    if nq == 0 {
        return Ok(TopK {
            indices: Array2::zeros((0, kk)),
            scores: Array2::zeros((0, kk)),
        });
    }

    let qt = config.query_tile().min(nq);
    let mut gt = config.gallery_tile().min(n);
    let kernel = config.kernel_for(nq);
    let amx = kernel == Kernel::AmxPrefilter;
    if amx || kernel == Kernel::Bf16Prefilter {
        // The bf16 layout packs 16 rows per block: tiles (and so chunks)
        // start on block boundaries.
        gt = gt.div_ceil(16) * 16;
    }
    let q_tiles = nq.div_ceil(qt);
    // Enough tasks to keep every thread busy: split the gallery into chunks
    // (whole gallery tiles) when there are too few query tiles.
    let want = 4 * rayon::current_num_threads().max(1);
    let g_tiles = n.div_ceil(gt);
    let chunks = want.div_ceil(q_tiles).clamp(1, g_tiles);
    let tiles_per_chunk = g_tiles.div_ceil(chunks);
    let chunk_rows = tiles_per_chunk * gt;
    let chunks = n.div_ceil(chunk_rows);

    let packed = match kernel {
        Kernel::Bf16Prefilter | Kernel::AmxPrefilter => match pack_gallery(gallery, queries, amx) {
            // Scores are bounded by the product of the norms: past 1e36 a
            // bf16 sum could overflow, and the f32 kernel judges those.
            Ok(p) if p.max_norm * p.query_norms.iter().copied().fold(0.0, f32::max) < 1e36 => {
                Some(p)
            }
            Ok(_) => None,
            Err(row) => {
                return Err(IndexError::NonFinite {
                    what: "gallery",
                    row,
                });
            }
        },
        _ => None,
    };
    let tasks: Vec<(usize, usize)> = (0..q_tiles)
        .flat_map(|qi| (0..chunks).map(move |ci| (qi, ci)))
        .collect();
    let partial: Vec<std::result::Result<Vec<Heap>, Bad>> = tasks
        .par_iter()
        .map(|&(qi, ci)| {
            let q0 = qi * qt;
            let q1 = (q0 + qt).min(nq);
            let g0 = ci * chunk_rows;
            let g1 = (g0 + chunk_rows).min(n);
            let (q, g) = (queries.slice(s![q0..q1, ..]), gallery.slice(s![g0..g1, ..]));
            match &packed {
                Some(p) => search_block_bf16(q, g, g0, kk, gt, p, &p.query_norms[q0..q1]),
                None => search_block(q, g, g0, kk, gt),
            }
        })
        .collect();

    let mut indices = Array2::zeros((nq, kk));
    let mut scores = Array2::zeros((nq, kk));
    let mut merged: Vec<(f32, usize)> = Vec::with_capacity(kk * chunks);
    for (qi, group) in partial.chunks(chunks).enumerate() {
        let mut heaps = Vec::with_capacity(group.len());
        for r in group {
            match r {
                Ok(h) => heaps.push(h),
                Err(bad) => {
                    return Err(locate_non_finite(gallery, qi * qt + bad.query, bad.gallery));
                }
            }
        }
        let rows = heaps.first().map_or(0, |h| h.len());
        for r in 0..rows {
            merged.clear();
            for h in &heaps {
                if let Some(one) = h.get(r) {
                    merged.extend_from_slice(&one.items);
                }
            }
            merged.sort_unstable_by(better_first);
            let q = qi * qt + r;
            for (j, &(sc, g)) in merged.iter().take(kk).enumerate() {
                indices[[q, j]] = g;
                scores[[q, j]] = sc + 0.0; // -0.0 reported as 0.0
            }
        }
    }
    Ok(TopK { indices, scores })
}

/// Order: higher score first, then lower index (`-0.0 == 0.0`; scores are
/// finite here, NaN never reaches this point).
pub(crate) fn better_first(a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// A non-finite score seen at (query row within the tile, absolute gallery row).
struct Bad {
    query: usize,
    gallery: usize,
}

/// Bounded heap of the best `cap` (score, index) pairs; the root is the worst
/// kept pair (lowest score, then highest index).
struct Heap {
    items: Vec<(f32, usize)>,
    cap: usize,
}

impl Heap {
    fn new(cap: usize) -> Self {
        Self {
            items: Vec::with_capacity(cap),
            cap,
        }
    }

    /// `a` is worse than `b`.
    #[inline]
    fn worse(a: (f32, usize), b: (f32, usize)) -> bool {
        a.0 < b.0 || (a.0 == b.0 && a.1 > b.1)
    }

    /// Score a candidate must beat (strictly) to enter, since candidates of
    /// one task arrive in increasing index order.
    #[inline]
    fn threshold(&self) -> f32 {
        if self.items.len() < self.cap {
            f32::NEG_INFINITY
        } else {
            self.items.first().map_or(f32::NEG_INFINITY, |x| x.0)
        }
    }

    fn push(&mut self, item: (f32, usize)) {
        if self.items.len() < self.cap {
            self.items.push(item);
            let mut i = self.items.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if Self::worse(self.items[i], self.items[p]) {
                    self.items.swap(i, p);
                    i = p;
                } else {
                    break;
                }
            }
        } else if let Some(root) = self.items.first_mut() {
            if !Self::worse(*root, item) {
                return;
            }
            *root = item;
            let len = self.items.len();
            let mut i = 0;
            loop {
                let l = 2 * i + 1;
                if l >= len {
                    break;
                }
                let r = l + 1;
                let c = if r < len && Self::worse(self.items[r], self.items[l]) {
                    r
                } else {
                    l
                };
                if Self::worse(self.items[c], self.items[i]) {
                    self.items.swap(c, i);
                    i = c;
                } else {
                    break;
                }
            }
        }
    }
}

/// Top-`kk` of each query of `q` over the gallery block `g` (whose first row
/// is absolute row `g_offset`), walking `g` in tiles of `gt` rows.
fn search_block(
    q: ArrayView2<'_, f32>,
    g: ArrayView2<'_, f32>,
    g_offset: usize,
    kk: usize,
    gt: usize,
) -> std::result::Result<Vec<Heap>, Bad> {
    let m = q.nrows();
    let mut heaps: Vec<Heap> = (0..m).map(|_| Heap::new(kk)).collect();
    let mut buf = vec![0.0f32; m * gt.min(g.nrows())];
    let mut start = 0;
    while start < g.nrows() {
        let end = (start + gt).min(g.nrows());
        let w = end - start;
        let tile = &mut buf[..m * w];
        if !inner_products_into(q, g.slice(s![start..end, ..]), tile) {
            // Shapes are checked by the caller; unreachable in practice.
            return Err(Bad {
                query: 0,
                gallery: g_offset + start,
            });
        }
        for (r, (row, heap)) in tile.chunks_exact(w).zip(heaps.iter_mut()).enumerate() {
            if !row_is_finite(row) {
                let j = row.iter().position(|x| !x.is_finite()).unwrap_or(0);
                return Err(Bad {
                    query: r,
                    gallery: g_offset + start + j,
                });
            }
            let base = g_offset + start;
            let mut thr = heap.threshold();
            for (j, &sc) in row.iter().enumerate() {
                if sc > thr {
                    heap.push((sc, base + j));
                    thr = heap.threshold();
                }
            }
        }
        start = end;
    }
    Ok(heaps)
}

/// [`search_block`] with bf16 inner products as a pre-filter (AVX-512 BF16,
/// [`crate::bf16`]): every gallery row whose bf16 score is within twice the
/// proven error bound of the `kk`-th best bf16 score is re-scored in f32
/// with [`dot`], and the best `kk` of those are kept. A row of the true
/// top-`kk` has a bf16 score at least its f32 score minus the bound, which is
/// at least the `kk`-th bf16 score minus twice the bound, so none is lost:
/// the result is exact (f32 scores, ties to the lower row).
fn search_block_bf16(
    q: ArrayView2<'_, f32>,
    g: ArrayView2<'_, f32>,
    g_offset: usize,
    kk: usize,
    gt: usize,
    packed: &PackedGallery,
    q_norms: &[f32],
) -> std::result::Result<Vec<Heap>, Bad> {
    let (m, d) = q.dim();
    let pairs = packed.pairs;
    // The AMX kernel takes queries 16 at a time: zero rows pad the last.
    let m_pad = if packed.amx { m.div_ceil(16) * 16 } else { m };
    let mut qp = vec![0u32; m_pad * pairs];
    let mut tmp = Vec::new();
    for (row, out) in q.rows().into_iter().zip(qp.chunks_exact_mut(pairs)) {
        crate::bf16::pack_row(contiguous(&row, &mut tmp), out);
    }
    let margin: Vec<f32> = q_norms
        .iter()
        .map(|&n| 2.0 * crate::bf16::error_bound(n, packed.max_norm, d))
        .collect();
    let mut approx: Vec<Heap> = (0..m).map(|_| Heap::new(kk)).collect();
    let mut cands: Vec<Vec<(f32, usize)>> = vec![Vec::new(); m];
    let ld_max = gt.min(g.nrows()).div_ceil(16) * 16;
    let mut buf = vec![0.0f32; m_pad * ld_max];
    let mut start = 0;
    while start < g.nrows() {
        let end = (start + gt).min(g.nrows());
        let w = end - start;
        let blocks = w.div_ceil(16);
        let ld = blocks * 16;
        // Tiles and chunks start on 16-row boundaries (see exact_topk_with).
        let first = (g_offset + start) / 16 * pairs * 16;
        let words = &packed.words[first..first + blocks * pairs * 16];
        if packed.amx {
            crate::amx::scores(&qp, m_pad, words, blocks, pairs, &mut buf, ld);
        } else {
            crate::bf16::scores(&qp, m, words, blocks, pairs, &mut buf, ld);
        }
        let base = g_offset + start;
        for r in 0..m {
            let row = &buf[r * ld..r * ld + w];
            let (heap, list) = (&mut approx[r], &mut cands[r]);
            let mut keep = heap.threshold() - margin[r];
            // Scores are finite here (norms bounded, see exact_topk_with):
            // skip 16 at a time while their maximum is below the bar.
            for (c, chunk) in row.chunks(16).enumerate() {
                if chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max) < keep {
                    continue;
                }
                for (j, &sc) in chunk.iter().enumerate() {
                    if sc >= keep {
                        let i = base + 16 * c + j;
                        list.push((sc, i));
                        if sc > heap.threshold() {
                            heap.push((sc, i));
                            keep = heap.threshold() - margin[r];
                        }
                    }
                }
            }
            if list.len() > 4 * kk + 256 {
                list.retain(|c| c.0 >= keep);
            }
        }
        start = end;
    }
    // Re-score the survivors in f32, in increasing row order (as the heap
    // expects of one task's candidates).
    let mut exact: Vec<Heap> = (0..m).map(|_| Heap::new(kk)).collect();
    let mut grow = Vec::with_capacity(d);
    for (r, (list, heap)) in cands.iter().zip(&mut exact).enumerate() {
        let keep = approx[r].threshold() - margin[r];
        let qr = q.row(r);
        let qr = contiguous(&qr, &mut tmp);
        for &(sc, i) in list {
            if sc < keep {
                continue;
            }
            let gr = g.row(i - g_offset);
            let e = dot(qr, contiguous(&gr, &mut grow));
            if !e.is_finite() {
                return Err(Bad {
                    query: r,
                    gallery: i,
                });
            }
            if e > heap.threshold() {
                heap.push((e, i));
            }
        }
    }
    Ok(exact)
}

/// `row` as a slice: itself when contiguous, else copied into `buf`.
pub(crate) fn contiguous<'a>(row: &'a ArrayView1<'_, f32>, buf: &'a mut Vec<f32>) -> &'a [f32] {
    match row.as_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(row.iter().copied());
            buf
        }
    }
}

/// The gallery in the bf16 kernel's layout, packed once per search, with
/// the norms the error bound scales with.
struct PackedGallery {
    words: Vec<u32>,
    /// Words per row: `ceil(d / 2)`, rounded up to a multiple of 16 for AMX.
    pairs: usize,
    /// Whether the AMX kernel scores it.
    amx: bool,
    /// The largest gallery row norm.
    max_norm: f32,
    /// Each query's norm.
    query_norms: Vec<f32>,
}

/// The L2 norm of a row.
fn row_norm(r: ArrayView1<'_, f32>) -> f32 {
    r.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// The norm of each row of `a`.
fn row_norms(a: ArrayView2<'_, f32>) -> Vec<f32> {
    a.axis_iter(Axis(0)).into_par_iter().map(row_norm).collect()
}

/// Packs `gallery` for [`search_block_bf16`] (for the AMX kernel when
/// `amx`) with the norms of its rows and of the `queries`, or names the
/// first gallery row that is not finite.
fn pack_gallery(
    gallery: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    amx: bool,
) -> std::result::Result<PackedGallery, usize> {
    let norms = row_norms(gallery);
    if let Some(row) = norms.iter().position(|n| !n.is_finite()) {
        return Err(row);
    }
    let mut pairs = gallery.ncols().div_ceil(2);
    if amx {
        pairs = pairs.div_ceil(16) * 16;
    }
    Ok(PackedGallery {
        words: crate::bf16::pack_rows_padded(gallery, pairs),
        pairs,
        amx,
        max_norm: norms.iter().copied().fold(0.0, f32::max),
        query_norms: row_norms(queries),
    })
}

/// Vectorisable finiteness check of a score row: `x * 0.0` is `±0.0` for
/// finite `x` and NaN for NaN or infinite `x`, so the lane sums stay zero
/// exactly when every score is finite.
#[inline]
fn row_is_finite(row: &[f32]) -> bool {
    let mut acc = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x * 0.0;
        }
    }
    let mut t: f32 = acc.iter().sum();
    for &x in rest {
        t += x * 0.0;
    }
    t == 0.0
}

/// The error for a non-finite score at (query `q`, gallery row `g`): the first
/// non-finite gallery row if there is one, else an overflow.
fn locate_non_finite(gallery: ArrayView2<'_, f32>, q: usize, g: usize) -> IndexError {
    match first_non_finite_row(gallery) {
        Some(row) => IndexError::NonFinite {
            what: "gallery",
            row,
        },
        None => IndexError::NonFiniteScore {
            query: q,
            gallery: g,
        },
    }
}

/// Index of the first row holding a NaN or an infinity.
pub(crate) fn first_non_finite_row(a: ArrayView2<'_, f32>) -> Option<usize> {
    a.axis_iter(Axis(0))
        .into_par_iter()
        .position_first(|row| row.iter().any(|x| !x.is_finite()))
}

/// `a·b`, 16 lanes wide so the compiler vectorises it (for re-scoring a few
/// candidates, where a matrix product does not pay).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}
