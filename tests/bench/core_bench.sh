#!/bin/sh
# The core benchmark: a 1,000,000-line corpus (gen_corpus.py --seed 1), then
#   - core_bench: lines/s for parse only and for the whole pipeline, one
#     thread, input in memory, and heap allocations per line in steady state;
#   - pixelconv -j 1 and -j 2 end to end (file -> /dev/null), with peak RSS;
# each for the example pipeline as it is (modules + validation) and for its
# core alone (parse, map, built-in enrichers, serialize: no module, no
# validate section), side by side in one run.
# INSTR=1 adds instructions per line, in all and by stage (parse, map,
# built-in enrichers, modules, validate, serialize), counted by callgrind on
# the first INSTR_LINES lines (default 20000) in core_bench's timed pass
# (the steady state: the warm-up pass before it fills the caches and
# compiles the regexes in use): figures the load of a shared machine does
# not move, to compare builds.
# Usage: [INSTR=1] tests/bench/core_bench.sh [BUILD_DIR] [LINES]   (PIXEL_SHARED_DIR: ../shared)
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
INSTR=${INSTR:-0}
INSTR_LINES=${INSTR_LINES:-20000}
if [ "$INSTR" = 1 ] && ! command -v valgrind >/dev/null; then
    echo "core_bench.sh: INSTR=1 needs valgrind (callgrind)" >&2
    exit 2
fi
T=$(mktemp -d)
trap 'rm -rf "$CORE" "$T"' EXIT
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
    [ "$INSTR" = 1 ] || continue
    head -n "$INSTR_LINES" "$CORPUS" >"$T/head.log"
    valgrind --tool=callgrind --callgrind-out-file="$T/cg" --instr-atstart=no \
        --toggle-collect=pixel_process --toggle-collect=pixel_ctx_output \
        "$BUILD/tests/bench/core_bench" "$T/head.log" "$p" >/dev/null 2>"$T/log" ||
        { cat "$T/log" >&2; exit 1; }
    callgrind_annotate --inclusive=yes --threshold=100 "$T/cg" >"$T/incl" 2>/dev/null
    python3 - "$T/incl" "$INSTR_LINES" <<'PY'
import re, sys
path, lines = sys.argv[1], int(sys.argv[2])
per_line = lines  # core_bench's timed pass of pixel_process + pixel_ctx_output
incl, total = {}, 0
for l in open(path):
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", l)
    if not m:
        continue
    n = int(m.group(1).replace(",", ""))
    if m.group(2) == "PROGRAM":
        total = n
    else:  # a function's first mention is its total
        incl.setdefault(m.group(2).rsplit(":", 1)[-1], n)
stages = [("parse", ["pixel_parse"]), ("map", ["pixel__map_run"]),
          ("built-in enrichers", ["run_url", "run_anonymize_ip", "run_event_id",
                                  "run_ingest_time", "run_pipeline"]),
          ("modules", ["run_module"]), ("validate", ["pixel__validator_check"]),
          ("serialize", ["pixel_ctx_output"])]
if total == 0:
    sys.exit("core_bench.sh: callgrind counted nothing: core_bench was built without "
             "valgrind/callgrind.h (install valgrind, then rebuild)")
parts = [(label, sum(incl.get(f, 0) for f in fns)) for label, fns in stages]
print(f"instructions   {total / per_line:,.0f} per line (callgrind, first {lines:,} lines): " +
      ", ".join(f"{label} {n / per_line:,.0f}" for label, n in parts if n) +
      f", the rest {(total - sum(n for _, n in parts)) / per_line:,.0f}")
PY
done

