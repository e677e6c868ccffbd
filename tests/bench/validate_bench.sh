#!/bin/sh
# Validator benchmark: libpixel vs ajv (+ ajv-formats) on the same schema and
# the same events, in the same run, one thread each.
#
#   tests/bench/validate_bench.sh [BUILD_DIR] [LINES] [PASSES] [ROUNDS]
#
# Generates a `gen_corpus.py --seed 1` corpus, turns its pixel hits into events
# (tests/bench/validate/corpus_events.py), and validates them against
# ../shared/bench/reference-model.schema.json and against the project's own
# model (schemas/realestate, root event.schema.json).  ajv is installed with
# npm into tests/bench/validate/node_modules (gitignored) on first use.
# Each side runs ROUNDS times (default 3), the two sides alternating, and
# each reports the best of its PASSES passes; the best round of each side
# counts, so a burst of load from other work on a shared machine hits both
# alike.  Prints validations/s for both and the ratio.  Not a timed test:
# run it by hand.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
LINES=${2:-200000}
PASSES=${3:-5}
ROUNDS=${4:-3}
SHARED=${PIXEL_SHARED_DIR:-$SRC/../shared}
HERE=$SRC/tests/bench/validate
WORK=$HERE/work
BENCH=${BENCH_VALIDATE:-$BUILD/tests/validate/bench_validate}

[ -x "$BENCH" ] || { echo "validate_bench: $BENCH not built (meson compile -C $BUILD)" >&2; exit 2; }
[ -f "$SHARED/bench/gen_corpus.py" ] || { echo "validate_bench: no $SHARED/bench (set PIXEL_SHARED_DIR)" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "validate_bench: needs node and npm" >&2; exit 2; }

if [ ! -d "$HERE/node_modules/ajv" ] || [ ! -d "$HERE/node_modules/ajv-formats" ]; then
    (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
mkdir -p "$WORK"
corpus=$WORK/corpus-seed1-$LINES.log
[ -s "$corpus" ] || python3 "$SHARED/bench/gen_corpus.py" --seed 1 --lines "$LINES" > "$corpus"
for model in reference project; do
    ev=$WORK/events-$model-$LINES.jsonl
    [ -s "$ev" ] || python3 "$HERE/corpus_events.py" --model "$model" < "$corpus" > "$ev"
done

run() { # name libpixel-args ajv-args events
    name=$1 lp=$2 aj=$3 ev=$4
    lbest= abest= lv=0 av=0 i=0
    while [ "$i" -lt "$ROUNDS" ]; do
        # shellcheck disable=SC2086
        l=$("$BENCH" $lp -p "$PASSES" "$ev")
        # shellcheck disable=SC2086
        a=$(node "$HERE/ajv_bench.js" $aj "$PASSES" "$ev")
        lr=$(echo "$l" | awk '{print $2}')
        ar=$(echo "$a" | awk '{print $2}')
        if [ "$lr" -gt "$lv" ]; then lv=$lr lbest=$l; fi
        if [ "$ar" -gt "$av" ]; then av=$ar abest=$a; fi
        i=$((i + 1))
    done
    echo "$name: $(wc -l < "$ev") events x $PASSES passes, best of $ROUNDS rounds"
    echo "  $lbest"
    echo "  $abest"
    awk -v l="$lv" -v a="$av" 'BEGIN { printf "  ratio libpixel/ajv: %.2fx\n", l / a }'
}

echo "corpus: gen_corpus.py --seed 1 --lines $LINES; $ROUNDS alternating rounds per side"
run "reference-model.schema.json" "-s $SHARED/bench/reference-model.schema.json" \
    "$SHARED/bench/reference-model.schema.json -" "$WORK/events-reference-$LINES.jsonl"
uri=https://libpixel.dev/schemas/realestate/v1/event.schema.json
run "schemas/realestate (event.schema.json)" "-r $SRC/schemas/realestate -s $uri" \
    "$uri $SRC/schemas/realestate" "$WORK/events-project-$LINES.jsonl"
