#!/usr/bin/env bash
# Fuzzes the readers that take untrusted bytes (issue "Hostile input, crashes
# and fuzzing", point 3), on stable Rust, with AFL++ through cargo-afl.
#
# Targets (the crate fuzz/, one binary each; see the top of each source file):
#   image            reid_data::decode (image_dimensions, decode_image,
#                    decode_bytes) and Preprocess::load
#   csv_animalclef   reid_data::loaders::load_animalclef (fail-fast, skip,
#                    skip with file checks)
#   csv_generic      reid_data::loaders::load_csv / load_csv_with_root, every
#                    bounding-box layout
#   state_dict       reid_backbone::state_dict::{detect_format, read, read_with}
#                    and Loader::load (needs libtorch)
#   gallery          reid_index::Gallery::load (persist.rs)
#   feature_cache    reid_local::cache::read_features_file, FeatureCache::load
#   embedding_cache  reid_backbone::cache::EmbeddingCache open/get on damaged
#                    entries and folders (needs libtorch)
# Every target must never panic: a typed error is fine; a panic, an abort or
# a hang (more than 1 s on one input) is a finding.
#
# Usage:
#   scripts/fuzz.sh [--minutes N] [--no-install] [TARGET ...]
#     --minutes N   fuzz each target N minutes (default 10; fractions allowed)
#     --no-install  do not install afl++ / cargo-afl (fail if missing)
#     TARGET ...    a subset of the targets above (default: all)
#
# What it does, idempotently: installs Debian's afl++ (for its tools and
# compilers) and cargo-afl (which builds its own AFL++ runtime), builds the
# fuzz crate (`cargo afl build --release`), makes the seeds that a program can
# make (images, gallery / feature / cache files written by the library,
# safetensors and torch.save files; fuzz/seeds/ holds the hand-written CSV
# seeds), runs `cargo afl fuzz -V` per target, one after the other, and
# prints per target: executions, corpus size, bitmap coverage, crashes,
# hangs, and each crashing input with the panic it reproduces (the fuzz
# binary run on the input outside AFL, RUST_BACKTRACE=1).
#
# Outputs (ignored by git) under $FUZZ_OUT (default fuzz/out):
#   afl/<target>/default/   AFL's output of the last run (queue, crashes, hangs, fuzzer_stats)
#   findings/<target>/      crashing and hanging inputs of every run, kept across runs
#   logs/<target>.log       AFL's log; logs/<target>.repro.txt the replays
#   seeds/<target>/         the seeds used
#
# Environment:
#   CARGO_TARGET_DIR  build folder (default fuzz/target)
#   LIBTORCH          libtorch for the torch targets (default: the PyPI torch of
#                     scripts/setup.sh under ~/.cache/animal-reid); without one
#                     state_dict and embedding_cache are skipped
#   TORCH_PYTHON      a python with torch, for the .pth seeds (default the venv
#                     of scripts/setup.sh; without one only safetensors seeds)
#   FUZZ_NICE         niceness of builds and fuzzers (default 19)
#   FUZZ_TIMEOUT_MS   AFL's per-input timeout (default 1000)
#
# Not part of CI: it takes N minutes per target.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ_DIR=$ROOT/fuzz
OUT=${FUZZ_OUT:-$FUZZ_DIR/out}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FUZZ_DIR/target}
NICE=${FUZZ_NICE:-19}
TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-1000}
ALL_TARGETS=(image csv_animalclef csv_generic state_dict gallery feature_cache embedding_cache)
TORCH_TARGETS=" state_dict embedding_cache "

MINUTES=10
INSTALL=1
TARGETS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) MINUTES=${2:?--minutes needs a number}; shift 2 ;;
    --minutes=*) MINUTES=${1#*=}; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
      if [[ " ${ALL_TARGETS[*]} " != *" $1 "* ]]; then
        echo "unknown target $1; targets: ${ALL_TARGETS[*]}" >&2; exit 2
      fi
      TARGETS+=("$1"); shift ;;
  esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")
SECONDS_EACH=$(python3 -c "import sys; print(max(1, round(float(sys.argv[1]) * 60)))" "$MINUTES")

say() { printf '[fuzz] %s\n' "$*"; }
die() { printf '[fuzz] error: %s\n' "$*" >&2; exit 1; }

# --- 1. tools -----------------------------------------------------------------
install_tools() {
  if ! command -v afl-fuzz >/dev/null 2>&1; then
    [[ $INSTALL == 1 ]] || die "afl++ missing (apt-get install afl++)"
    command -v apt-get >/dev/null 2>&1 || die "afl++ missing and no apt-get"
    say "installing Debian afl++"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null
  fi
  if ! cargo afl --version >/dev/null 2>&1; then
    [[ $INSTALL == 1 ]] || die "cargo-afl missing (cargo install cargo-afl)"
    say "installing cargo-afl (builds AFL++)"
    nice -n "$NICE" cargo install --locked cargo-afl
  fi
  # The AFL++ runtime that cargo-afl links into the targets; built once per
  # rustc version (cargo install usually did it already).
  local cfg
  if ! cfg=$(nice -n "$NICE" cargo afl config --build 2>&1); then
    if [[ $cfg != *"already built"* ]]; then
      printf '%s\n' "$cfg" | tail -20 >&2
      die "cargo afl config --build failed (see above)"
    fi
  fi
}

# --- 2. libtorch --------------------------------------------------------------
find_libtorch() {
  local cand
  for cand in "${LIBTORCH:-}" \
    "$HOME/.cache/animal-reid/torch-2.11.0/lib/python3.11/site-packages/torch" \
    "$ROOT/.cache/libtorch"; do
    if [[ -n $cand && -d $cand/lib ]]; then
      (cd "$cand" && pwd -P)
      return
    fi
  done
}

# --- 3. seeds -----------------------------------------------------------------
make_torch_seeds() {
  # $1: seeds/state_dict. safetensors with plain python; torch.save files
  # (zip and legacy, wrapped, prefixed, several dtypes) with TORCH_PYTHON.
  local dir=$1
  python3 - "$dir" <<'PY'
import json, struct, sys, os
d = sys.argv[1]
def st(name, tensors, meta=None):
    header, data = {}, b""
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open(os.path.join(d, name), "wb").write(struct.pack("<Q", len(h)) + h + data)
f32 = lambda *v: struct.pack("<%df" % len(v), *v)
st("fc.safetensors", {"fc.weight": ("F32", [3, 2], f32(1, 2, 3, 4, 5, 6)), "fc.bias": ("F32", [3], f32(0, .5, 1))}, {"format": "pt"})
st("mixed.safetensors", {"bn.num_batches_tracked": ("I64", [], struct.pack("<q", 7)),
                         "h": ("F16", [2], b"\x00\x3c\x00\x40"), "b": ("BOOL", [2], b"\x01\x00"),
                         "bf": ("BF16", [1], b"\x80\x3f"), "u": ("U8", [0], b"")})
PY
  local py=${TORCH_PYTHON:-$HOME/.cache/animal-reid/torch-2.11.0/bin/python}
  if [[ -x $py ]] && "$py" -c 'import torch' >/dev/null 2>&1; then
    "$py" - "$dir" <<'PY'
import collections, os, sys, torch
d = sys.argv[1]
torch.manual_seed(0)
sd = collections.OrderedDict([
    ("fc.weight", torch.randn(3, 2)), ("fc.bias", torch.zeros(3)),
    ("bn.weight", torch.ones(3)), ("bn.bias", torch.zeros(3)),
    ("bn.running_mean", torch.zeros(3)), ("bn.running_var", torch.ones(3)),
    ("bn.num_batches_tracked", torch.tensor(5)),
])
torch.save(sd, os.path.join(d, "zip.pth"))
torch.save(sd, os.path.join(d, "legacy.pth"), _use_new_zipfile_serialization=False)
wrapped = {"epoch": 3, "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())}
torch.save(wrapped, os.path.join(d, "wrapped_zip.pth"))
torch.save(wrapped, os.path.join(d, "wrapped_legacy.pth"), _use_new_zipfile_serialization=False)
base = torch.arange(12, dtype=torch.float16)
views = {"view": base[2:8].view(2, 3), "t": base.view(3, 4).t(), "i": torch.tensor([1, -2], dtype=torch.int64),
         "b": torch.tensor([True, False]), "bf": torch.ones(2, dtype=torch.bfloat16)}
torch.save(views, os.path.join(d, "views_legacy.pth"), _use_new_zipfile_serialization=False)
torch.save(views, os.path.join(d, "views_zip.pth"))
PY
  else
    say "no python with torch ($py): state_dict gets safetensors seeds only"
  fi
}

make_seeds() {
  local seeds=$OUT/seeds
  rm -rf "$seeds"
  mkdir -p "$seeds"
  local t
  for t in "${ALL_TARGETS[@]}"; do
    mkdir -p "$seeds/$t"
    if [[ -d $FUZZ_DIR/seeds/$t ]]; then
      cp "$FUZZ_DIR/seeds/$t"/* "$seeds/$t"/ 2>/dev/null || true
    fi
  done
  "$CARGO_TARGET_DIR/release/make_seeds" "$seeds"
  make_torch_seeds "$seeds/state_dict"
  # A few cross-format seeds: every reader also sees the others' files.
  cp "$seeds/gallery/one_row.gal" "$seeds/state_dict/" 2>/dev/null || true
  cp "$seeds/csv_animalclef/basic.csv" "$seeds/csv_generic/animalclef.csv"
  cp "$seeds/csv_generic/xywh.csv" "$seeds/csv_animalclef/generic.csv"
}

# --- 4. one target ------------------------------------------------------------
dict_for() {
  case $1 in
    csv_*) echo "$FUZZ_DIR/dicts/csv.dict" ;;
    gallery) echo "$FUZZ_DIR/dicts/json.dict" ;;
    state_dict) echo "$FUZZ_DIR/dicts/pickle.dict" ;;
    *) echo "" ;;
  esac
}

stat_of() { # stat_of FILE KEY...: the first key present
  local f=$1; shift
  local k v
  for k in "$@"; do
    v=$(awk -F' *: *' -v k="$k" '$1 == k { print $2; exit }' "$f" 2>/dev/null || true)
    if [[ -n $v ]]; then printf '%s' "$v"; return; fi
  done
  printf '?'
}

declare -A ROW
run_target() {
  local t=$1
  local bin=$CARGO_TARGET_DIR/release/$t
  local afl_out=$OUT/afl/$t
  local log=$OUT/logs/$t.log
  local scratch=/dev/shm
  [[ -d $scratch && -w $scratch ]] || scratch=${TMPDIR:-/tmp}
  scratch=$scratch/animal-reid-fuzz-$t
  rm -rf "$afl_out" "$scratch"
  mkdir -p "$afl_out" "$OUT/logs" "$scratch"
  local dict args=()
  dict=$(dict_for "$t")
  [[ -n $dict ]] && args+=(-x "$dict")
  say "$t: fuzzing for ${SECONDS_EACH}s (log $log)"
  local rc=0
  FUZZ_SCRATCH=$scratch \
  AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
  AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=120000 \
    nice -n "$NICE" cargo afl fuzz -i "$OUT/seeds/$t" -o "$afl_out" -V "$SECONDS_EACH" \
      -t "$TIMEOUT_MS" -m none "${args[@]}" -- "$bin" >"$log" 2>&1 || rc=$?
  rm -rf "$scratch"
  local stats=$afl_out/default/fuzzer_stats
  if [[ ! -f $stats ]]; then
    say "$t: AFL did not start (exit $rc); last lines of $log:"
    tail -15 "$log" | sed 's/^/    /'
    ROW[$t]="$t|-|-|-|-|-|-|did not start (see $log)"
    return
  fi
  local run_time execs corpus cvg crashes hangs speed
  run_time=$(stat_of "$stats" run_time)
  execs=$(stat_of "$stats" execs_done)
  speed=$(stat_of "$stats" execs_per_sec)
  corpus=$(stat_of "$stats" corpus_count paths_total)
  cvg=$(stat_of "$stats" bitmap_cvg)
  crashes=$(stat_of "$stats" saved_crashes unique_crashes)
  hangs=$(stat_of "$stats" saved_hangs unique_hangs)
  local minutes
  minutes=$(python3 -c "import sys; print('%.1f' % (int(sys.argv[1]) / 60))" "${run_time:-0}" 2>/dev/null || echo '?')
  # Keep the findings of every run, and replay each outside AFL.
  local find=$OUT/findings/$t
  local repro=$OUT/logs/$t.repro.txt
  : >"$repro"
  local f kind n=0
  for kind in crashes hangs; do
    for f in "$afl_out/default/$kind"/id:*; do
      [[ -e $f ]] || continue
      mkdir -p "$find/$kind"
      local keep
      keep=$find/$kind/$(date +%Y%m%d-%H%M%S)-$(basename "$f" | tr ':,' '_.')
      cp "$f" "$keep"
      n=$((n + 1))
      {
        echo "== $kind: $keep"
        local start end st=0
        start=$(date +%s.%N)
        FUZZ_SCRATCH=$scratch-repro RUST_BACKTRACE=1 timeout 20 "$bin" <"$keep" >/tmp/fuzz-repro.$$ 2>&1 || st=$?
        end=$(date +%s.%N)
        echo "exit status $st, $(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$end") s"
        grep -m1 -A1 "panicked at" /tmp/fuzz-repro.$$ || tail -5 /tmp/fuzz-repro.$$
        echo
        rm -f /tmp/fuzz-repro.$$
        rm -rf "$scratch-repro"
      } >>"$repro"
    done
  done
  ROW[$t]="$t|$minutes|$execs|$speed|$corpus|$cvg|$crashes|$hangs"
  say "$t: $execs execs ($speed/s), corpus $corpus, coverage $cvg, crashes $crashes, hangs $hangs"
  if [[ $n -gt 0 ]]; then
    say "$t: $n crashing/hanging inputs kept in $find; replays in $repro:"
    sed 's/^/    /' "$repro" | head -60
  fi
}

# --- main ---------------------------------------------------------------------
[[ $INSTALL == 1 ]] && install_tools
command -v cargo-afl >/dev/null 2>&1 || die "cargo-afl missing (run without --no-install)"

LIBTORCH_DIR=$(find_libtorch || true)
FEATURES=()
WANT_TORCH=0
for t in "${TARGETS[@]}"; do [[ $TORCH_TARGETS == *" $t "* ]] && WANT_TORCH=1; done
if [[ $WANT_TORCH == 1 ]]; then
  if [[ -n $LIBTORCH_DIR ]]; then
    export LIBTORCH=$LIBTORCH_DIR
    export LD_LIBRARY_PATH=$LIBTORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    FEATURES=(--features torch)
  else
    say "no libtorch found (set LIBTORCH): skipping${TORCH_TARGETS% }"
    kept=()
    for t in "${TARGETS[@]}"; do [[ $TORCH_TARGETS == *" $t "* ]] || kept+=("$t"); done
    TARGETS=("${kept[@]}")
  fi
fi

# The fuzz crate resolves its dependencies like the workspace does.
[[ -f $FUZZ_DIR/Cargo.lock ]] || cp "$ROOT/Cargo.lock" "$FUZZ_DIR/Cargo.lock"
say "building the targets (cargo afl build --release ${FEATURES[*]:-}; CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$FUZZ_DIR" && nice -n "$NICE" cargo afl build --release --bins "${FEATURES[@]}")

say "making seeds in $OUT/seeds"
make_seeds

for t in "${TARGETS[@]}"; do run_target "$t"; done

echo
echo "| target | minutes | executions | execs/s | corpus | bitmap coverage | crashes | hangs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for t in "${TARGETS[@]}"; do
  IFS='|' read -r -a r <<<"${ROW[$t]}"
  echo "| ${r[0]} | ${r[1]} | ${r[2]} | ${r[3]} | ${r[4]} | ${r[5]} | ${r[6]} | ${r[7]:-} |"
done
echo
say "findings (crashing / hanging inputs) are kept under $OUT/findings/<target>/"
