#!/bin/sh
# The core benchmark: a 1,000,000-line corpus (gen_corpus.py --seed 1), then
#   - core_bench: lines/s for parse only and for the whole pipeline, one
#     thread, input in memory, and heap allocations per line in steady state;
#   - pixelconv -j 1 and -j 2 end to end (file -> /dev/null), with peak RSS;
# each for the example pipeline as it is (modules + validation) and for its
# core alone (parse, map, built-in enrichers, serialize: no module, no
# validate section), side by side in one run.
# Usage: tests/bench/core_bench.sh [BUILD_DIR] [LINES]   (PIXEL_SHARED_DIR: ../shared)
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
LINES=${2:-1000000}
SHARED=${PIXEL_SHARED_DIR:-$SRC/../shared}
PIPE=${PIPELINE:-$SRC/examples/realestate/pipeline.yaml}
[ -f "$SHARED/bench/gen_corpus.py" ] || { echo "SKIP: $SHARED/bench/gen_corpus.py not found"; exit 77; }
CACHE=${BENCH_CACHE:-$BUILD/bench-cache}
mkdir -p "$CACHE"
CORPUS="$CACHE/corpus-seed1-$LINES.log"
[ -s "$CORPUS" ] || python3 "$SHARED/bench/gen_corpus.py" --seed 1 --lines "$LINES" >"$CORPUS"
export PIXEL_MODULE_PATH="${PIXEL_MODULE_PATH:-$(ls -d "$BUILD"/modules/*/ 2>/dev/null | tr '\n' ':')}"

# The core alone: the same file without module entries and validate section,
# next to the original so that its relative paths still resolve.
CORE="$(dirname "$PIPE")/.core-only.bench.yaml"
trap 'rm -f "$CORE"' EXIT
awk '/^validate:/ {skip = 1; next} skip && /^[^ #]/ {skip = 0} !skip' "$PIPE" |
    awk '/^  - module:/ {skip = 1; next} skip && /^  - / {skip = 0} skip && /^[^ ]/ {skip = 0} !skip' >"$CORE"

for p in "$CORE" "$PIPE"; do
    case $p in *core-only*) name="core only (no modules, no validation)" ;; *) name="$(basename "$p") as is" ;; esac
    echo "== $name, $LINES lines"
    "$BUILD/tests/bench/core_bench" "$CORPUS" "$p"
    for j in 1 2; do
        python3 - "$BUILD/tools/pixelconv/pixelconv" "$p" "$CORPUS" "$j" <<'PY'
import resource, subprocess, sys, time
exe, pipe, corpus, j = sys.argv[1:]
lines = sum(1 for _ in open(corpus, "rb"))
before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
t = time.monotonic()
subprocess.run([exe, "-c", pipe, "-j", j, "-o", "/dev/null", "-q", "/dev/null", "--quiet", corpus], check=True)
dt = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"pixelconv -j {j}   {lines / dt:,.0f} lines/s end to end (file -> /dev/null), peak RSS {rss:.1f} MiB")
PY
    done
done
