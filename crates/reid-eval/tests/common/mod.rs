//! Helpers shared by the integration tests of `reid-eval`: where the shared
//! data and the generated fixtures are (the same places and variables as the
//! other crates' tests use).
#![allow(clippy::panic, clippy::print_stderr, dead_code)]

use std::path::PathBuf;

/// The shared data folder (`reid_core::paths::shared_dir`), or `None` after
/// printing why the calling test is skipped.
pub fn shared() -> Option<PathBuf> {
    reid_core::paths::shared_data()
        .map_err(|e| eprintln!("skipping: {e}"))
        .ok()
}

/// The folder of fixtures made by `scripts/fixtures/<stem>.py` (run by
/// `scripts/setup.sh test`; `reid_core::paths::fixtures_dir`). Missing fixtures
/// fail the test with the command to run.
pub fn fixture_dir(stem: &str) -> PathBuf {
    reid_core::paths::fixture_dir(stem).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh sample folder per test under the target folder (tests run in
/// parallel), kept after the run to look at.
pub fn samples(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("reid-eval-samples")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// `params` is refused by `check_ref` and by `check`, with an
/// `InvalidParam` naming `name` whose message says `got {value}`.
pub fn assert_refused<P>(params: P, name: &str, value: &str)
where
    P: reid_eval::ParamGuard<Error = reid_eval::EvalError> + std::fmt::Debug,
    P::Checked: std::fmt::Debug,
{
    assert!(params.check_ref().is_err(), "{params:?}");
    let e = params.check().unwrap_err();
    assert!(e.to_string().contains(&format!("got {value}")), "{e}");
    assert!(
        matches!(e, reid_eval::EvalError::InvalidParam { name: n, .. } if n == name),
        "{e:?}"
    );
}
