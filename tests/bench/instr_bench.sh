#!/bin/sh
# Instructions per line, by stage: what a line costs, counted by callgrind,
# which the load of a shared machine does not move (lines/s do; see
# core_bench.sh).  Runs core_bench under callgrind on the first LINES lines of
# a `gen_corpus.py --seed 1` corpus, counting only pixel_process() and
# pixel_ctx_output() (two passes over the lines: the first, the arena's
# warm-up, counts too, which is why a pass is steady-state work), for the
# pipeline as it is and for its core alone (no modules, no validate section).
#
#   tests/bench/instr_bench.sh [BUILD_DIR] [LINES]    (PIXEL_SHARED_DIR: ../shared)
#
# Prints, per pipeline, instructions per line in all and per stage:
# parse, map, built-in enrichers, modules, validate, serialize.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
LINES=${2:-20000}
SHARED=${PIXEL_SHARED_DIR:-$SRC/../shared}
PIPE=${PIPELINE:-$SRC/examples/realestate/pipeline.yaml}
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    echo "SKIP: valgrind (callgrind) not installed"
    exit 77
fi
[ -f "$SHARED/bench/gen_corpus.py" ] || { echo "SKIP: $SHARED/bench/gen_corpus.py not found"; exit 77; }
[ -x "$BUILD/tests/bench/core_bench" ] || { echo "instr_bench: build $BUILD first" >&2; exit 2; }
CACHE=${BENCH_CACHE:-$BUILD/bench-cache}
mkdir -p "$CACHE"
CORPUS="$CACHE/corpus-seed1-$LINES.log"
[ -s "$CORPUS" ] || python3 "$SHARED/bench/gen_corpus.py" --seed 1 --lines "$LINES" >"$CORPUS"
export PIXEL_MODULE_PATH="${PIXEL_MODULE_PATH:-$(ls -d "$BUILD"/modules/*/ 2>/dev/null | tr '\n' ':')}"

# The core alone, as core_bench.sh makes it (beside the original, so that its
# relative paths still resolve).
CORE="$(dirname "$PIPE")/.core-only.instr.yaml"
OUT=$(mktemp -d)
trap 'rm -rf "$CORE" "$OUT"' EXIT
awk '/^validate:/ {skip = 1; next} skip && /^[^ #]/ {skip = 0} !skip' "$PIPE" |
    awk '/^  - module:/ {skip = 1; next} skip && /^  - / {skip = 0} skip && /^[^ ]/ {skip = 0} !skip' >"$CORE"

for p in "$PIPE" "$CORE"; do
    case $p in *core-only*) name="core only (no modules, no validation)" ;; *) name="$(basename "$p") as is" ;; esac
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" \
        --toggle-collect=pixel_process --toggle-collect=pixel_ctx_output \
        "$BUILD/tests/bench/core_bench" "$CORPUS" "$p" >/dev/null 2>"$OUT/log" ||
        { cat "$OUT/log" >&2; exit 1; }
    callgrind_annotate --inclusive=yes "$OUT/cg" >"$OUT/incl" 2>/dev/null
    python3 - "$OUT/incl" "$LINES" "$name" <<'PY'
import re, sys
path, lines, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
per_line = 2 * lines  # core_bench's two full passes (pixel_parse alone is not counted)
incl = {}
total = 0
for l in open(path):
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", l)
    if not m:
        continue
    n = int(m.group(1).replace(",", ""))
    where = m.group(2)
    if where == "PROGRAM":
        total = n
        continue
    fn = where.rsplit(":", 1)[-1]
    # the first mention of a function is its total (file:function lines repeat per object)
    incl.setdefault(fn, n)
stages = [
    ("parse", ["pixel_parse"]),
    ("map", ["pixel__map_run"]),
    ("built-in enrichers", ["run_url", "run_anonymize_ip", "run_event_id", "run_ingest_time",
                            "run_pipeline"]),
    ("modules", ["run_module"]),
    ("validate", ["pixel__validator_check"]),
    ("serialize", ["pixel_ctx_output"]),
]
print(f"== {name}: {total / per_line:,.0f} instructions per line "
      f"(callgrind, {lines:,} lines, pixel_process + pixel_ctx_output)")
counted = 0
for label, fns in stages:
    n = sum(incl.get(f, 0) for f in fns)
    counted += n
    if n:
        print(f"   {label:<20} {n / per_line:>8,.0f}")
print(f"   {'the rest':<20} {(total - counted) / per_line:>8,.0f}  (pixel_process itself, stage glue)")
PY
done
