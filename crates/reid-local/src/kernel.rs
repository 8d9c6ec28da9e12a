//! Inner products of descriptor tiles through reid-index's GEMM kernel (the
//! workspace's one wrapper of the `gemm` crate's raw-pointer call).

use ndarray::ArrayView2;

/// Writes `dst[i * n + j] = <a_i, b_j>` for row-major `a: [m, d]` and
/// `b: [n, d]` into a row-major `[m, n]` buffer, on the calling thread.
///
/// Returns `false` (and writes nothing) when the lengths do not agree;
/// callers check lengths before, so this is a guard, not an error path.
pub(crate) fn dots_into(a: &[f32], b: &[f32], d: usize, dst: &mut [f32]) -> bool {
    if d == 0 || a.len() % d != 0 || b.len() % d != 0 {
        return false;
    }
    match (
        ArrayView2::from_shape((a.len() / d, d), a),
        ArrayView2::from_shape((b.len() / d, d), b),
    ) {
        (Ok(a), Ok(b)) => reid_index::kernel::scores_into(a, b, dst),
        _ => false,
    }
}
