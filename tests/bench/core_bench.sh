#!/bin/sh
# The core benchmark: a 1,000,000-line corpus (gen_corpus.py --seed 1), then
#   - core_bench: lines/s for parse only and for the full pipeline, one thread,
#     and heap allocations per line in steady state;
#   - pixelconv -j 1 and -j 2 end to end, with peak RSS.
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
echo "== core_bench ($(basename "$PIPE"), $LINES lines)"
"$BUILD/tests/bench/core_bench" "$CORPUS" "$PIPE"
for j in 1 2; do
    python3 - "$BUILD/tools/pixelconv/pixelconv" "$PIPE" "$CORPUS" "$j" <<'PY'
import resource, subprocess, sys, time
exe, pipe, corpus, j = sys.argv[1:]
t = time.monotonic()
subprocess.run([exe, "-c", pipe, "-j", j, "-o", "/dev/null", "-q", "/dev/null", "--quiet", corpus], check=True)
dt = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
lines = sum(1 for _ in open(corpus, "rb"))
print(f"pixelconv -j {j}   {lines / dt:,.0f} lines/s end to end (file -> file), peak RSS {rss:.1f} MiB")
PY
done
