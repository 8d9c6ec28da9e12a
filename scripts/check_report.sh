#!/usr/bin/env bash
# Checks that self-contained HTML reports render offline in headless Chromium, through
# scripts/check_report.mjs: fails on a console error, a page error, a failed request, a request
# that leaves the machine, a missing or undecodable <img>, or an in-page #anchor with no target.
# Saves a full-page screenshot (1280 px wide) of each report.
#
# Usage: scripts/check_report.sh [--out DIR] REPORT.html [REPORT.html ...]
#   --out DIR  where screenshots go (default: <report's folder>/screenshots/), named
#              <report stem>.png, or <parent folder>-<stem>.png when several reports share a stem.
#
# Installs, idempotently, playwright-core (pinned) into
# ${ANIMAL_REID_CACHE:-~/.cache/animal-reid}/report-check/ and Debian's chromium if
# /usr/bin/chromium is missing. Prints one verdict line per report; exits 1 if any fails.
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${ANIMAL_REID_CACHE:-$HOME/.cache/animal-reid}/report-check

OUT=
REPORTS=()
while [ "$#" -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) REPORTS+=("$1"); shift ;;
  esac
done
[ "${#REPORTS[@]}" -gt 0 ] || { echo "usage: $0 [--out DIR] REPORT.html [...]" >&2; exit 2; }

# --- setup: one line per step
have=$(node -p "require('$DIR/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$have" = "$PLAYWRIGHT_VERSION" ]; then
  echo "setup: playwright-core $have already in $DIR"
else
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION" \
    >"$DIR/npm.log" 2>&1 || { tail -n 20 "$DIR/npm.log" >&2; exit 1; }
  echo "setup: installed playwright-core $PLAYWRIGHT_VERSION into $DIR"
fi
if [ -x /usr/bin/chromium ]; then
  echo "setup: chromium already installed"
else
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  mkdir -p "$DIR"
  { $SUDO apt-get update && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
    >"$DIR/apt.log" 2>&1 || { tail -n 20 "$DIR/apt.log" >&2; exit 1; }
  echo "setup: installed Debian chromium ($(dpkg-query -W -f='${Version}' chromium))"
fi
export NODE_PATH=$DIR/node_modules

# --- check each report
stem() { local b; b=$(basename "$1"); echo "${b%.*}"; }
declare -A count=()
for r in "${REPORTS[@]}"; do s=$(stem "$r"); count[$s]=$(( ${count[$s]:-0} + 1 )); done

failed=0
for r in "${REPORTS[@]}"; do
  if [ ! -f "$r" ]; then echo "FAIL $r: no such file"; failed=1; continue; fi
  s=$(stem "$r")
  name=$s.png
  [ "${count[$s]}" -eq 1 ] || name=$(basename "$(cd "$(dirname "$r")" && pwd)")-$s.png
  png=${OUT:-$(dirname "$r")/screenshots}/$name
  json=$(node "$ROOT/scripts/check_report.mjs" "$r" "$png" 2>"$DIR/last-stderr.txt") || failed=1
  if [ -z "$json" ]; then
    echo "FAIL $r: checker crashed: $(tail -n 3 "$DIR/last-stderr.txt" | tr '\n' ' ')"; failed=1; continue
  fi
  # Turn the JSON line into the verdict line.
  node -e '
    const r = JSON.parse(process.argv[1]), path = process.argv[2];
    const kinds = { broken_images: "broken image", broken_anchors: "anchor without target",
      console_errors: "console error", page_errors: "page error",
      failed_requests: "failed request", external_requests: "external request" };
    if (r.ok) console.log(`ok ${path}: ${r.images} images, page ${r.height}px, screenshot ${r.screenshot}`);
    else console.log(`FAIL ${path}: ` + Object.entries(kinds).filter(([k]) => r[k].length)
      .map(([k, w]) => `${r[k].length} ${w}${r[k].length > 1 ? "s" : ""} (${r[k].join("; ").slice(0, 300)})`)
      .join(", "));
  ' "$json" "$r"
done
exit "$failed"
