//! Helpers shared by the integration tests of `reid-backbone`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use tch::Tensor;

/// The tests that build seeded networks run one at a time: libtorch's
/// random generator is one per process, and a build (even one that then
/// loads a file) draws from it, so two builds that should get the same
/// weights must not interleave with another.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the test lock (see `SERIAL`) until dropped.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The folder of fixtures made by `scripts/fixtures/<stem>.py` (run by
/// `scripts/setup.sh test`). Missing fixtures fail the test with the command to run.
pub fn fixture_dir(stem: &str) -> PathBuf {
    reid_core::paths::fixture_dir(stem).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads every tensor of a safetensors file into a name → tensor map (CPU).
pub fn read_tensors(path: &std::path::Path) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// Max absolute difference and the max absolute value of `want`.
pub fn diff(got: &Tensor, want: &Tensor) -> (f64, f64) {
    assert_eq!(got.size(), want.size(), "shape");
    let got = got.to_kind(tch::Kind::Double);
    let want = want.to_kind(tch::Kind::Double);
    let d = (&got - &want).abs().max().double_value(&[]);
    let m = want.abs().max().double_value(&[]);
    (d, m)
}

/// Asserts `max|got - want| <= atol`.
pub fn assert_abs(got: &Tensor, want: &Tensor, atol: f64, what: &str) {
    let (d, m) = diff(got, want);
    assert!(
        d <= atol,
        "{what}: max abs diff {d:e} > {atol:e} (max |want| {m:e})"
    );
}

/// Asserts `max|got - want| <= rtol * max|want|`.
pub fn assert_rel(got: &Tensor, want: &Tensor, rtol: f64, what: &str) {
    let (d, m) = diff(got, want);
    assert!(
        d <= rtol * m,
        "{what}: max abs diff {d:e} > {rtol:e} x max |want| {m:e}"
    );
}

/// The `shared` data folder (`reid_core::paths::shared_dir`).
pub fn shared() -> PathBuf {
    reid_core::paths::shared_dir()
}

/// The first `n` records of `lion.csv` (real photos).
pub fn lion_records(n: usize) -> Vec<reid_data::Record> {
    let csv = shared().join("datasets/lion/lion.csv");
    let (ds, _) = reid_data::loaders::load_animalclef(&csv, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    ds.records.into_iter().take(n).collect()
}
