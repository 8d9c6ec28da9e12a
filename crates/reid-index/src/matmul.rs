//! Inner products of two sets of rows (`a · bᵀ`) into a buffer: the one
//! place in the workspace that calls the `gemm` crate's raw-pointer kernel
//! (runtime AVX2 / AVX-512 dispatch), behind a safe, shape-checked wrapper.
//! Exact search here, descriptor matching in `reid-local` and the t-SNE
//! neighbours in `reid-eval` use it.
#![allow(unsafe_code)]

use ndarray::ArrayView2;

/// Writes `dst[i * n + j] = <a.row(i), b.row(j)>` for `a: [m, d]`, `b: [n, d]`
/// into a row-major `[m, n]` buffer, on the calling thread only.
///
/// Returns `false` (and writes nothing) when the shapes do not agree; callers
/// check shapes before, so this is a guard, not an error path.
///
/// ```
/// use ndarray::array;
/// let a = array![[1.0f32, 2.0], [0.0, 1.0]];
/// let b = array![[3.0f32, 4.0]];
/// let mut out = [0.0f32; 2];
/// assert!(reid_index::matmul::inner_products_into(a.view(), b.view(), &mut out));
/// assert_eq!(out, [11.0, 4.0]);
/// assert!(!reid_index::matmul::inner_products_into(a.view(), b.view(), &mut [0.0; 3]));
/// ```
pub fn inner_products_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    dst: &mut [f32],
) -> bool {
    let (m, d) = a.dim();
    let (n, d2) = b.dim();
    if d != d2 || m.checked_mul(n) != Some(dst.len()) {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    if d == 0 {
        dst.fill(0.0);
        return true;
    }
    let [a_rs, a_cs] = [a.strides()[0], a.strides()[1]];
    let [b_rs, b_cs] = [b.strides()[0], b.strides()[1]];
    // SAFETY: `a` and `b` are live ndarray views, so for every i < m, j < n,
    // p < d the addresses `a.as_ptr() + i*a_rs + p*a_cs` and
    // `b.as_ptr() + j*b_rs + p*b_cs` are in bounds (ndarray's view invariant,
    // negative strides included, and `as_ptr` is element [0, 0]). The
    // destination is an exclusively borrowed slice of exactly m*n elements
    // addressed as `i*n + j` (row stride n, column stride 1). The right-hand
    // operand is bᵀ, `[d, n]`: element (p, j) = b[j, p], i.e. row stride b_cs
    // and column stride b_rs. `read_dst = false`, so `dst` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_rs,
            b_cs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    true
}

/// [`inner_products_into`] for row-major slices: `a` holds rows of `d`
/// values, as does `b`. Returns `false` (and writes nothing) when a length
/// is not a multiple of `d`, `d` is 0, or `dst` is not `rows(a) × rows(b)`.
///
/// ```
/// let a = [1.0f32, 2.0, 0.0, 1.0];
/// let b = [3.0f32, 4.0];
/// let mut out = [0.0f32; 2];
/// assert!(reid_index::matmul::inner_products_of_rows(&a, &b, 2, &mut out));
/// assert_eq!(out, [11.0, 4.0]);
/// ```
pub fn inner_products_of_rows(a: &[f32], b: &[f32], d: usize, dst: &mut [f32]) -> bool {
    if d == 0 || !a.len().is_multiple_of(d) || !b.len().is_multiple_of(d) {
        return false;
    }
    match (
        ArrayView2::from_shape((a.len() / d, d), a),
        ArrayView2::from_shape((b.len() / d, d), b),
    ) {
        (Ok(a), Ok(b)) => inner_products_into(a, b, dst),
        _ => false,
    }
}
