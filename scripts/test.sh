#!/usr/bin/env bash
# Sets everything up (idempotent) and runs the whole test suite.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p reid-data`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh --quiet
if [ "$#" -eq 0 ]; then set -- --workspace; fi
exec cargo test --locked "$@"
