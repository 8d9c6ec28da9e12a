//! Inner products in bf16 with f32 accumulation (x86-64 AVX-512 BF16,
//! `vdpbf16ps`): twice the multiply-adds per instruction of f32 FMA and half
//! the bytes per gallery value. Exact search uses them as a pre-filter whose
//! error is bounded ([`error_bound`]), then re-scores the survivors in f32,
//! so its results stay exact.
//!
//! Layouts: a row of `d` values becomes `ceil(d / 2)` 32-bit words, each the
//! bf16 pair `(x[2p], x[2p + 1])` (zero-padded), rounded to nearest even. A
//! gallery tile is packed in blocks of 16 rows, pair-major inside a block
//! (word `p` of the block's 16 rows side by side), so one 64-byte load gives
//! `vdpbf16ps` the pair `p` of 16 rows.
#![allow(unsafe_code)]

/// Whether this CPU runs the bf16 kernel (AVX-512 F + BF16, run-time check).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to bf16 (nearest, ties to even), as its 16 bits.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    // Finite inputs only (the caller checked): round the low 16 bits away.
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// The packed words of one row: pairs of bf16 values, zero-padded.
pub fn pack_row(row: &[f32], out: &mut [u32]) {
    let pairs = row.chunks_exact(2);
    let last = pairs.remainder().first().copied();
    let mut words = out.iter_mut();
    // `pairs` first: zip stops on it without taking another word.
    for (pair, w) in pairs.zip(words.by_ref()) {
        *w = u32::from(to_bf16(pair[0])) | (u32::from(to_bf16(pair[1])) << 16);
    }
    if let (Some(w), Some(x)) = (words.next(), last) {
        *w = u32::from(to_bf16(x));
    }
    for w in words {
        *w = 0;
    }
}

/// Packs the rows of `rows` (`[n, d]`) into blocks of 16 rows: word
/// `(block * pairs + p) * 16 + lane` is pair `p` of row `16 * block + lane`
/// (zero rows pad the last block). Blocks are packed in parallel on the
/// current rayon pool.
pub fn pack_rows(rows: ndarray::ArrayView2<'_, f32>) -> Vec<u32> {
    pack_rows_padded(rows, rows.ncols().div_ceil(2))
}

/// [`pack_rows`] with `pairs` words per row (at least `ceil(d / 2)`; the
/// words past the row's values are zero), as the AMX kernel wants a
/// multiple of 16.
pub fn pack_rows_padded(rows: ndarray::ArrayView2<'_, f32>, pairs: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let n = rows.nrows();
    let d = rows.ncols();
    assert!(
        pairs >= d.div_ceil(2),
        "{pairs} words cannot hold {d} values"
    );
    let blocks = n.div_ceil(16);
    let mut out = vec![0u32; blocks * pairs * 16];
    if pairs == 0 {
        return out;
    }
    out.par_chunks_mut(pairs * 16)
        .enumerate()
        .for_each(|(b, block)| {
            let mut packed = vec![0u32; pairs];
            let mut tmp = Vec::with_capacity(d);
            for lane in 0..16 {
                let r = b * 16 + lane;
                if r >= n {
                    break;
                }
                pack_row(
                    crate::exact::contiguous(&rows.row(r), &mut tmp),
                    &mut packed,
                );
                for (p, &w) in packed.iter().enumerate() {
                    block[p * 16 + lane] = w;
                }
            }
        });
    out
}

/// An upper bound of `|q·g - bf16(q)·bf16(g)|` (f32 accumulation of `d`
/// products) for rows of norms at most `q_norm` and `g_norm`: each value
/// rounded to bf16 moves by at most 2^-8 of itself, so a product by at most
/// `2^-7 + 2^-16` of `|q_i g_i|`, whose sum is at most `q_norm · g_norm`
/// (Cauchy–Schwarz); products of bf16 values are exact in f32 and each of
/// the `d / 2` fused steps rounds the running sum once (2^-24 relative each);
/// denormal inputs are flushed to zero (at most 2^-126 each). Enlarged by a
/// tenth for the f32 arithmetic of the bound itself.
pub fn error_bound(q_norm: f32, g_norm: f32, d: usize) -> f32 {
    let scale = f64::from(q_norm) * f64::from(g_norm);
    let rel = 2f64.powi(-7) + 2f64.powi(-16) + (d as f64 + 2.0) * 2f64.powi(-23);
    ((scale * rel + d as f64 * 2f64.powi(-120)) * 1.1) as f32
}

/// Scores of `qn` packed query rows (each `pairs` words, row-major in `q`)
/// against the packed gallery tile `g` of `blocks` blocks: `out[i * ld + j]`
/// for query `i`, gallery row `j < 16 * blocks`. Call only when
/// [`available`].
pub fn scores(
    q: &[u32],
    qn: usize,
    g: &[u32],
    blocks: usize,
    pairs: usize,
    out: &mut [f32],
    ld: usize,
) {
    assert_tile_bounds(q.len(), qn, g.len(), blocks, pairs, out.len(), ld);
    #[cfg(target_arch = "x86_64")]
    {
        assert!(available(), "the bf16 kernel needs AVX-512 BF16");
        // SAFETY: the CPU has AVX-512 F and BF16 (checked just above); every
        // index the kernel reads or writes is bounded by the asserts above.
        unsafe { kernel::scores(q, qn, g, blocks, pairs, out, ld) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, qn, g, blocks, pairs, out, ld);
        unreachable!("the bf16 kernel needs AVX-512 BF16");
    }
}

/// Panics unless a score kernel may read `qn` query rows of `pairs` words
/// from `q_len` words, `blocks` gallery blocks from `g_len` words, and write
/// `qn` rows of `16 * blocks` scores, `ld` apart, into `out_len` floats: the
/// bounds that make the unsafe kernels (this one and [`crate::amx`]) safe.
pub(crate) fn assert_tile_bounds(
    q_len: usize,
    qn: usize,
    g_len: usize,
    blocks: usize,
    pairs: usize,
    out_len: usize,
    ld: usize,
) {
    assert!(q_len >= qn * pairs && g_len >= blocks * pairs * 16);
    assert!(ld >= blocks * 16 && out_len >= qn.saturating_sub(1) * ld + blocks * 16);
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::{
        __m512, __m512bh, _mm512_dpbf16_ps, _mm512_loadu_ps, _mm512_set1_epi32, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    /// Queries per register block (2 × R accumulators of 16 lanes); the
    /// `go!` arms below list 1..=R.
    const R: usize = 12;

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn bh(p: *const u32) -> __m512bh {
        // SAFETY: the caller passes 16 readable words.
        unsafe { std::mem::transmute(_mm512_loadu_ps(p.cast::<f32>())) }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    fn splat(w: u32) -> __m512bh {
        // SAFETY: a bit reinterpretation of 16 copies of one word.
        unsafe { std::mem::transmute(_mm512_set1_epi32(w as i32)) }
    }

    /// `ROWS` queries from `q` against one (or, with `TWO`, two adjacent)
    /// gallery blocks at `g0`; scores to `out` rows `ld` apart.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn block<const ROWS: usize, const TWO: bool>(
        q: *const u32,
        g0: *const u32,
        pairs: usize,
        out: *mut f32,
        ld: usize,
    ) {
        let mut acc0: [__m512; ROWS] = [_mm512_setzero_ps(); ROWS];
        let mut acc1: [__m512; ROWS] = [_mm512_setzero_ps(); ROWS];
        let g1 = g0.wrapping_add(pairs * 16);
        for p in 0..pairs {
            // SAFETY: p < pairs; the block(s) hold pairs * 16 words each.
            let v0 = unsafe { bh(g0.add(p * 16)) };
            let v1 = if TWO {
                unsafe { bh(g1.add(p * 16)) }
            } else {
                v0
            };
            for r in 0..ROWS {
                // SAFETY: query r < ROWS (rows of the caller), word p < pairs.
                let a = splat(unsafe { *q.add(r * pairs + p) });
                acc0[r] = _mm512_dpbf16_ps(acc0[r], a, v0);
                if TWO {
                    acc1[r] = _mm512_dpbf16_ps(acc1[r], a, v1);
                }
            }
        }
        for r in 0..ROWS {
            // SAFETY: the caller's out has ROWS rows of ld >= 16 (32 with
            // TWO) writable lanes from `out`.
            unsafe {
                _mm512_storeu_ps(out.add(r * ld), acc0[r]);
                if TWO {
                    _mm512_storeu_ps(out.add(r * ld + 16), acc1[r]);
                }
            }
        }
    }

    /// See [`super::scores`]; the bounds were checked there.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn scores(
        q: &[u32],
        qn: usize,
        g: &[u32],
        blocks: usize,
        pairs: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        let qp = q.as_ptr();
        let gp = g.as_ptr();
        let op = out.as_mut_ptr();
        let mut b = 0;
        while b < blocks {
            let two = blocks - b >= 2;
            let g0 = gp.wrapping_add(b * pairs * 16);
            let mut i = 0;
            while i < qn {
                let rows = (qn - i).min(R);
                let qi = qp.wrapping_add(i * pairs);
                let oi = op.wrapping_add(i * ld + b * 16);
                // SAFETY: rows queries from i, blocks b (and b + 1 when
                // `two`) and their output lanes are in bounds (checked by
                // the caller's asserts).
                unsafe {
                    macro_rules! go {
                        ($($n:literal)*) => {
                            match (rows, two) {
                                $(($n, true) => block::<$n, true>(qi, g0, pairs, oi, ld),
                                ($n, false) => block::<$n, false>(qi, g0, pairs, oi, ld),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                    go!(1 2 3 4 5 6 7 8 9 10 11 12);
                }
                i += rows;
            }
            b += if two { 2 } else { 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_bf16_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(-2.0), 0xc000);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even.
        assert_eq!(to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        // Just above halfway rounds up.
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81);
    }

    #[test]
    fn kernel_equals_the_products_of_the_rounded_values_within_the_bound() {
        if !available() {
            eprintln!("skipping: no AVX-512 BF16 on this CPU");
            return;
        }
        // 5 queries × 37 gallery rows of d = 19 (odd: padding), values of
        // mixed sign and size.
        let d = 19;
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 5) as f32);
        let q: Vec<f32> = (0..5 * d).map(val).collect();
        let g: Vec<f32> = (0..37 * d).map(|i| val(i + 12345)).collect();
        let pairs = d.div_ceil(2);
        let mut qp = vec![0u32; 5 * pairs];
        for (row, out) in q.chunks_exact(d).zip(qp.chunks_exact_mut(pairs)) {
            pack_row(row, out);
        }
        let ga = ndarray::ArrayView2::from_shape((37, d), &g[..]).unwrap();
        let gp = pack_rows(ga);
        let blocks = 37usize.div_ceil(16);
        let ld = blocks * 16;
        let mut out = vec![f32::NAN; 5 * ld];
        scores(&qp, 5, &gp, blocks, pairs, &mut out, ld);
        let bf = |x: f32| f32::from_bits(u32::from(to_bf16(x)) << 16);
        let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>().sqrt();
        for (i, qr) in q.chunks_exact(d).enumerate() {
            for (j, gr) in g.chunks_exact(d).enumerate() {
                let rounded: f64 = qr
                    .iter()
                    .zip(gr)
                    .map(|(&a, &b)| f64::from(bf(a)) * f64::from(bf(b)))
                    .sum();
                let exact: f64 = qr
                    .iter()
                    .zip(gr)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let got = f64::from(out[i * ld + j]);
                // The kernel sums the rounded products (f32 accumulation).
                assert!(
                    (got - rounded).abs() <= 1e-5 * (1.0 + rounded.abs()),
                    "{i},{j}: {got} vs {rounded}"
                );
                // And stays within the bound of the exact product.
                let bound = f64::from(error_bound(norm(qr), norm(gr), d));
                assert!(
                    (got - exact).abs() <= bound,
                    "{i},{j}: {got} vs {exact}, bound {bound}"
                );
            }
            // Padding rows of the last block score 0.
            for j in 37..ld {
                assert_eq!(out[i * ld + j], 0.0);
            }
        }
    }
}
