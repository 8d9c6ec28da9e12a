#!/usr/bin/env bash
# Sets everything up (idempotent) and runs the main job: the demo on the
# embedded synthetic dataset. Extra arguments go to the demo (`--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh --quiet
exec cargo run --locked --release --example demo -- "$@"
