//! bf16 inner products on Intel AMX tiles (`tdpbf16ps`, x86-64 Linux): the
//! same products as [`crate::bf16::scores`], with f32 accumulation, on the
//! tile unit, which multiplies a 16 × 32 by a 32 × 16 bf16 matrix per
//! instruction (16 times the multiply-adds of one `vdpbf16ps`).
//!
//! Layouts are those of [`crate::bf16`] with two more constraints: the pair
//! count per row is a multiple of 16 (one tile row is 16 pairs; pack with
//! [`crate::bf16::pack_rows_padded`]) and the query rows a multiple of 16
//! (zero rows pad them). A gallery block of 16 rows is then a column of
//! `pairs / 16` B tiles, 64 bytes a row, as the instruction reads them.
//!
//! Rust does not expose the AMX instructions on stable, so they are written
//! as inline assembly; the kernel asks Linux for the tile state once per
//! process (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`) and loads
//! its tile configuration at the start of every call, on the calling thread.
//! Like `vdpbf16ps`, `tdpbf16ps` flushes denormal inputs and results to zero
//! and rounds each f32 addition to nearest, which
//! [`crate::bf16::error_bound`] covers.
#![allow(unsafe_code)]

/// Whether this CPU and OS run the AMX kernel: AMX-TILE and AMX-BF16 in
/// CPUID, and Linux granted this process the tile state (asked once).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    let (bf16, tile) = (edx >> 22 & 1 == 1, edx >> 24 & 1 == 1);
    if !(bf16 && tile) {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    const SYS_ARCH_PRCTL: i64 = 158;
    let ret: i64;
    // SAFETY: the arch_prctl system call only reads its two integer
    // arguments; `syscall` clobbers rcx and r11, declared here.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Scores of `qn` packed query rows (each `pairs` words, row-major in `q`)
/// against the packed gallery tile `g` of `blocks` blocks: `out[i * ld + j]`
/// for query `i`, gallery row `j < 16 * blocks`. `qn` and `pairs` must be
/// multiples of 16. Call only when [`available`].
pub fn scores(
    q: &[u32],
    qn: usize,
    g: &[u32],
    blocks: usize,
    pairs: usize,
    out: &mut [f32],
    ld: usize,
) {
    assert!(qn.is_multiple_of(16) && pairs.is_multiple_of(16));
    crate::bf16::assert_tile_bounds(q.len(), qn, g.len(), blocks, pairs, out.len(), ld);
    if qn == 0 || blocks == 0 || pairs == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert!(available(), "the AMX kernel needs AMX-BF16 tiles");
        // SAFETY: the CPU has AMX and the OS granted the tile state (checked
        // just above); every tile load and store stays inside the bounds
        // asserted above (see `kernel::scores`).
        unsafe { kernel::scores(q, qn, g, blocks, pairs, out, ld) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, qn, g, blocks, pairs, out, ld);
        unreachable!("the AMX kernel needs AMX-BF16 tiles");
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::asm;

    /// The tile configuration: palette 1, all eight tiles 16 rows of 64
    /// bytes (tmm0–3 accumulators, tmm4–5 query tiles, tmm6–7 gallery
    /// tiles).
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64; // bytes per row, little-endian u16
            c[48 + t] = 16; // rows
            t += 1;
        }
        Config(c)
    };

    macro_rules! zero {
        ($t:literal) => {
            asm!(concat!("tilezero tmm", $t), options(nostack))
        };
    }
    macro_rules! load {
        ($t:literal, $p:expr, $stride:expr) => {
            asm!(concat!("tileloadd tmm", $t, ", [{0} + {1}]"),
                 in(reg) $p, in(reg) $stride, options(nostack, readonly))
        };
    }
    macro_rules! store {
        ($t:literal, $p:expr, $stride:expr) => {
            asm!(concat!("tilestored [{0} + {1}], tmm", $t),
                 in(reg) $p, in(reg) $stride, options(nostack))
        };
    }
    macro_rules! dot {
        ($c:literal, $a:literal, $b:literal) => {
            asm!(
                concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
                options(nostack, nomem)
            )
        };
    }

    /// One register block: 16 or 32 queries (`TWO_Q`) from `q` against one or
    /// two (`TWO_G`) adjacent gallery blocks from `g`, scores stored at `out`
    /// (rows `ld` floats apart).
    ///
    /// # Safety
    /// The tile configuration is loaded; `q` holds the block's query rows of
    /// `pairs` words, `g` its gallery blocks of `pairs * 16` words, `out` its
    /// 16/32 rows of 16/32 writable floats; `pairs` is a multiple of 16.
    #[inline(always)]
    unsafe fn block<const TWO_Q: bool, const TWO_G: bool>(
        q: *const u32,
        g: *const u32,
        pairs: usize,
        out: *mut f32,
        ld: usize,
    ) {
        let q_stride = pairs * 4;
        let q1 = q.wrapping_add(16 * pairs);
        let g1 = g.wrapping_add(16 * pairs);
        // SAFETY (every asm below): tiles 16 rows × 64 bytes; the query
        // tile at word offset 16·kt of 16 rows `pairs` words apart, the
        // gallery tile at word 256·kt of 16 consecutive 16-word rows: inside
        // the rows the caller vouched for, since 16·kt + 16 <= pairs.
        unsafe {
            zero!(0);
            if TWO_G {
                zero!(1);
            }
            if TWO_Q {
                zero!(2);
                if TWO_G {
                    zero!(3);
                }
            }
            for kt in 0..pairs / 16 {
                load!(4, q.add(16 * kt), q_stride);
                load!(6, g.add(256 * kt), 64usize);
                dot!(0, 4, 6);
                if TWO_G {
                    load!(7, g1.add(256 * kt), 64usize);
                    dot!(1, 4, 7);
                }
                if TWO_Q {
                    load!(5, q1.add(16 * kt), q_stride);
                    dot!(2, 5, 6);
                    if TWO_G {
                        dot!(3, 5, 7);
                    }
                }
            }
            let o_stride = ld * 4;
            store!(0, out, o_stride);
            if TWO_G {
                store!(1, out.add(16), o_stride);
            }
            if TWO_Q {
                store!(2, out.add(16 * ld), o_stride);
                if TWO_G {
                    store!(3, out.add(16 * ld + 16), o_stride);
                }
            }
        }
    }

    /// See [`super::scores`]; the bounds were checked there. Walks the
    /// gallery two blocks at a time (they stay in L1 while every query
    /// passes over them), the queries 32 at a time.
    pub(super) unsafe fn scores(
        q: &[u32],
        qn: usize,
        g: &[u32],
        blocks: usize,
        pairs: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        let (qp, gp, op) = (q.as_ptr(), g.as_ptr(), out.as_mut_ptr());
        // SAFETY: the configuration is a valid palette-1 layout; the blocks
        // index only rows < qn, blocks < `blocks` and words < pairs, which
        // the caller's asserts bound.
        unsafe {
            asm!("ldtilecfg [{0}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
            let mut b = 0;
            while b < blocks {
                let two_g = b + 1 < blocks;
                let gb = gp.add(b * pairs * 16);
                let mut r = 0;
                while r < qn {
                    let two_q = r + 16 < qn;
                    let (qr, o) = (qp.add(r * pairs), op.add(r * ld + b * 16));
                    match (two_q, two_g) {
                        (true, true) => block::<true, true>(qr, gb, pairs, o, ld),
                        (true, false) => block::<true, false>(qr, gb, pairs, o, ld),
                        (false, true) => block::<false, true>(qr, gb, pairs, o, ld),
                        (false, false) => block::<false, false>(qr, gb, pairs, o, ld),
                    }
                    r += if two_q { 32 } else { 16 };
                }
                b += if two_g { 2 } else { 1 };
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tile kernel gives the vector kernel's products (both f32 sums of
    /// the same bf16 products; sums may round differently, by at most the
    /// accumulation part of the bound) at every block-edge case: 16, 32 and
    /// 48 queries; one, two and three gallery blocks; 16 and 48 pairs.
    #[test]
    fn matches_the_vector_kernel() {
        if !(available() && crate::bf16::available()) {
            eprintln!("skipped: no AMX or no AVX-512 BF16 here");
            return;
        }
        for &(qn, n, d) in &[(16, 16, 32), (32, 48, 96), (48, 40, 90), (17, 33, 64)] {
            let rows = |n: usize, seed: u32| {
                ndarray::Array2::from_shape_fn((n, d), |(i, j)| {
                    let h =
                        (i as u32 * 7919 + j as u32 * 104_729 + seed).wrapping_mul(2_654_435_761);
                    (h >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
            };
            let (qs, gs) = (rows(qn, 1), rows(n, 2));
            let pairs = d.div_ceil(2).div_ceil(16) * 16;
            let qpad = qn.div_ceil(16) * 16;
            let mut qw = vec![0u32; qpad * pairs];
            for (r, out) in qs.rows().into_iter().zip(qw.chunks_exact_mut(pairs)) {
                crate::bf16::pack_row(r.as_slice().unwrap(), out);
            }
            let gw = crate::bf16::pack_rows_padded(gs.view(), pairs);
            let blocks = n.div_ceil(16);
            let ld = blocks * 16 + 16;
            let mut tile = vec![f32::NAN; qpad * ld];
            scores(&qw, qpad, &gw, blocks, pairs, &mut tile, ld);
            let mut vector = vec![f32::NAN; qpad * ld];
            crate::bf16::scores(&qw, qpad, &gw, blocks, pairs, &mut vector, ld);
            for i in 0..qn {
                for j in 0..n {
                    let (a, b) = (tile[i * ld + j], vector[i * ld + j]);
                    let (qr, gr) = (qs.row(i), gs.row(j));
                    let exact: f32 = qr.iter().zip(gr).map(|(x, y)| x * y).sum();
                    let norm = |r: ndarray::ArrayView1<'_, f32>| r.dot(&r).sqrt();
                    let bound = crate::bf16::error_bound(norm(qr), norm(gr), d);
                    assert!(
                        (a - b).abs() <= 1e-5,
                        "({qn}, {n}, {d}) [{i}, {j}]: {a} vs {b}"
                    );
                    assert!(
                        (a - exact).abs() <= bound,
                        "[{i}, {j}]: {a} vs exact {exact}"
                    );
                }
                // The padding columns of the last block are zero rows' scores.
                for j in n..blocks * 16 {
                    assert_eq!(tile[i * ld + j], 0.0);
                }
                // Columns past the tile are left alone.
                assert!(tile[i * ld + blocks * 16].is_nan());
            }
        }
    }
}
