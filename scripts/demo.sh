#!/usr/bin/env bash
# Sets up what running needs (idempotent; not the test tools) and runs the main job: the demo on the
# embedded synthetic dataset. Extra arguments go to the demo (`--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh run --quiet
exec cargo run --locked --release --example demo -- "$@"
