#!/usr/bin/env bash
# Sets up what running and testing need (idempotent) and runs the whole test suite, then the
# libtorch-free builds on their own (reid-eval's metrics without its
# features, the pipeline without its report, the facade without torch).
# Extra arguments go to `cargo test` instead (e.g. `scripts/test.sh -p reid-data`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh test --quiet
# Doctests are linked by rustdoc, which does not get the build scripts' rpath
# to libtorch (cargo passes `rustc-link-arg` to rustc only): give it here, for
# the doctests that run code linking tch (reid-examples').
lib=${LIBTORCH:-$(readlink -f .cache/libtorch 2>/dev/null || true)}
if [ -n "$lib" ] && [ -d "$lib/lib" ]; then
  export RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -C link-arg=-Wl,-rpath,$(readlink -f "$lib/lib")"
fi
if [ "$#" -gt 0 ]; then
  exec cargo test --locked "$@"
fi
cargo test --locked --workspace
cargo test --locked -p reid-eval --no-default-features
cargo test --locked -p reid-pipeline --no-default-features
cargo check --locked -p animal-reid --no-default-features --lib
