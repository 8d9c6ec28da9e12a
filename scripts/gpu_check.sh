#!/usr/bin/env bash
# The GPU check: the test and bench binaries built on a machine without a GPU,
# run on one with CUDA and torch 2.11's libraries (no Rust, no network there).
#
#   scripts/gpu_check.sh pack [PARTS]   # here: build, strip and gather into device-carry/gpu-check
#   scripts/gpu_check.sh run            # there, from the repository root: run what the pack holds
#   scripts/gpu_check.sh local          # here: run the pack on the CPU, to check it is complete
#
# PARTS (comma-separated; default `backbones,xfeat`) choose what travels, because a
# device call carries at most 64 MiB with the working tree (~3 MiB); the binaries
# travel gzipped (~9 MiB together):
#   backbones  the CUDA test binary (every registry architecture with seeded weights,
#              CUDA f32 against the CPU, f16 / bf16 close to it; MobileNetV2's real
#              weights on 9 lion photos) and the backbone bench (ConvNeXt-T, ViT-B/16,
#              EfficientNetV2-S, MobileNetV2; f32/f16/bf16, batch 64), with
#              MobileNetV2's weights (14 MiB);
#   lite2      EfficientNet-Lite2's weights too, for the same test (24 MiB);
#   xfeat      the learned-matching bench with XFeat + LighterGlue's weights (17 MiB);
#   disk       the same with DISK + LightGlue (52 MiB: a call of its own);
#   aliked     the same with ALIKED-N16 + LightGlue (50 MiB: a call of its own).
# `pack` refuses a pack over 60 MiB. With the device tool, one call per pack:
#   run(command="scripts/gpu_check.sh run", carry=["device-carry/gpu-check"], timeout_s=540)
# Results go to $OUT (the device tool's folder that comes back) or, without it,
# device-carry/gpu-check/results: gpu.txt, cuda-test.log, backbones-bench.log,
# glue-bench.log and summary.txt (the lines that carry numbers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
pack=device-carry/gpu-check
limit_mib=60

die() { echo "gpu_check: $*" >&2; exit 1; }

# The executable a `cargo ... --no-run --message-format=json` build made.
executable() {
  python3 -c '
import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m.get("executable")]
print(exe[-1] if exe else "")'
}

build() { # cargo test|bench args... -> the executable (release / bench profile)
  local exe profile=()
  [ "$1" = test ] && profile=(--release)
  exe=$(cargo "$@" "${profile[@]}" --locked --no-run --message-format=json 2>/dev/null | executable)
  [ -n "$exe" ] && [ -x "$exe" ] || die "no executable from: cargo $*"
  echo "$exe"
}

copy_weights() { # file names...
  local src="${ANIMAL_REID_WEIGHTS:-${ANIMAL_REID_CACHE:-$HOME/.cache/animal-reid}/weights}"
  for f in "$@"; do
    [ -f "$src/$f" ] || die "$src/$f missing: run scripts/setup.sh first"
    cp "$src/$f" "$pack/cache/weights/"
  done
}

do_pack() {
  local parts=${1:-backbones,xfeat}
  scripts/setup.sh test --quiet
  local shared
  shared=$(readlink -f "${ANIMAL_REID_SHARED:-../shared}")
  [ -d "$shared/datasets" ] || die "no datasets under $shared (set ANIMAL_REID_SHARED)"
  rm -rf "$pack"
  mkdir -p "$pack/bin" "$pack/cache/weights" "$pack/shared/datasets"
  local glue=0
  IFS=, read -r -a list <<<"$parts"
  for part in "${list[@]}"; do
    case "$part" in
      backbones)
        cp "$(build test -p reid-backbone --test cuda)" "$pack/bin/cuda-test"
        cp "$(build bench -p reid-backbone --bench backbones)" "$pack/bin/backbones-bench"
        copy_weights mobilenet_v2-b0353104.pth
        # The 9 lion photos the CUDA test reads (every 90th row of lion.csv).
        mkdir -p "$pack/shared/datasets/lion"
        cp "$shared/datasets/lion/lion.csv" "$pack/shared/datasets/lion/"
        tail -n +2 "$shared/datasets/lion/lion.csv" | awk -F, 'NR % 90 == 1 {print $3}' |
          while read -r rel; do
            mkdir -p "$pack/shared/datasets/lion/$(dirname "$rel")"
            cp "$shared/datasets/lion/$rel" "$pack/shared/datasets/lion/$rel"
          done
        ;;
      lite2) copy_weights efficientnet-lite2-9656183e.pth ;;
      xfeat) glue=1; copy_weights xfeat.pt xfeat-lighterglue.pt ;;
      disk) glue=1; copy_weights disk-depth-save.pth disk_lightglue.pth ;;
      aliked) glue=1; copy_weights aliked-n16.pth aliked_lightglue.pth ;;
      *) die "unknown part '$part' (backbones, xfeat, disk, aliked)" ;;
    esac
  done
  if [ "$glue" = 1 ]; then
    cp "$(build bench -p reid-glue --bench glue)" "$pack/bin/glue-bench"
    # The 17 cow photos the bench reads (the first rows of cattle.csv).
    mkdir -p "$pack/shared/datasets/cattle"
    head -n 18 "$shared/datasets/cattle/cattle.csv" >"$pack/shared/datasets/cattle/cattle.csv"
    tail -n +2 "$pack/shared/datasets/cattle/cattle.csv" | cut -d, -f3 |
      while read -r rel; do
        mkdir -p "$pack/shared/datasets/cattle/$(dirname "$rel")"
        cp "$shared/datasets/cattle/$rel" "$pack/shared/datasets/cattle/$rel"
      done
  fi
  strip "$pack"/bin/*
  gzip -9 "$pack"/bin/*
  echo "$parts" >"$pack/parts"
  local size
  size=$(du -sm "$pack" | cut -f1)
  du -sh "$pack"/bin/* "$pack"/cache/weights/* 2>/dev/null | sed 's/^/  /'
  [ "$size" -le "$limit_mib" ] || die "the pack is $size MiB, over $limit_mib: pack fewer parts per call"
  echo "packed $parts: $size MiB in $pack; on the GPU machine: scripts/gpu_check.sh run"
}

# Runs the pack; $1 = cuda or cpu (local check).
do_run() {
  local device=$1
  [ -d "$pack/bin" ] || die "no pack in $pack: run 'scripts/gpu_check.sh pack' here first"
  local gz
  for gz in "$pack"/bin/*.gz; do
    [ -e "$gz" ] || continue
    gzip -dc "$gz" >"${gz%.gz}"
    chmod +x "${gz%.gz}"
  done
  local out=${OUT:-$pack/results}
  mkdir -p "$out"
  if [ "$device" = cuda ]; then
    local lib=${TORCH_LIB:-}
    if [ -z "$lib" ]; then
      lib=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n 1 || true)
    fi
    [ -n "$lib" ] && [ -d "$lib" ] || die "torch's lib folder not found: set TORCH_LIB"
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    nvidia-smi >"$out/gpu.txt" 2>&1 || echo "nvidia-smi failed" >>"$out/gpu.txt"
  else
    export LD_LIBRARY_PATH="$(readlink -f .cache/libtorch)/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "local check on the CPU" >"$out/gpu.txt"
  fi
  export ANIMAL_REID_CACHE="$root/$pack/cache"
  export ANIMAL_REID_WEIGHTS="$root/$pack/cache/weights"
  export ANIMAL_REID_SHARED="$root/$pack/shared"
  export ANIMAL_REID_BENCH_DEVICE=$device
  local status=0
  if [ -x "$pack/bin/cuda-test" ]; then
    if [ "$device" = cuda ]; then
      "$pack/bin/cuda-test" --ignored --nocapture --test-threads 1 >"$out/cuda-test.log" 2>&1 || status=1
    else
      # Without a GPU the tests are ignored: check that they are there.
      "$pack/bin/cuda-test" --list >"$out/cuda-test.log" 2>&1 || status=1
    fi
  fi
  # Criterion: full measurements on the GPU; each bench once (--test) locally.
  local mode=--bench
  [ "$device" = cuda ] || mode=--test
  for b in backbones-bench glue-bench; do
    if [ -x "$pack/bin/$b" ]; then
      "$pack/bin/$b" "$mode" --noplot >"$out/$b.log" 2>&1 || status=1
    fi
  done
  grep -hE "cosine|relative|test result|panicked|time: |thrpt: |skipped|Benchmarking .*: Success|Testing .*Success|^[a-z_0-9]+(@| )" \
    "$out"/*.log >"$out/summary.txt" 2>/dev/null || true
  cat "$out/summary.txt"
  echo "gpu_check: results in $out (status $status)"
  return "$status"
}

case "${1:-}" in
  pack) do_pack "${2:-}" ;;
  run) do_run cuda ;;
  local) do_run cpu ;;
  *) sed -n '2,26p' "$0"; exit 2 ;;
esac
