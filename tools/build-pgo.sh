#!/bin/sh
# A profile-guided (PGO) release build of libpixel, its modules and tools.
#
#   tools/build-pgo.sh BUILD_DIR [-c PIPELINE] [LOG ...]
#
# 1. configures BUILD_DIR as a release build with link-time optimization
#    that records profiles (-Db_lto=true -Db_pgo=generate) and builds it;
# 2. runs the training: pixelconv with PIPELINE over the LOGs, on one thread
#    and on two, to files and, when librdkafka is there, into an in-process
#    mock Kafka cluster through the sink (--kafka);
# 3. rebuilds with the profiles (-Db_pgo=use).
#
# Train on logs like the ones the build will see: a sample of your own
# access logs with your own pipeline.  Without arguments it trains on the
# example pipeline and its bundled sample (examples/realestate), repeated to
# 100,000 lines.  The profile is only a hint to the compiler: any input is
# still handled exactly as in any other build.  On the example pipeline the
# build ran 7-9 % faster than a plain release build (core_bench, the 1M-line
# seed-1 corpus).  An existing BUILD_DIR is turned into such a build
# (release, no sanitizer, no coverage).  Run `meson test -C BUILD_DIR`
# afterwards to check the result.
set -eu
usage() {
    echo "usage: tools/build-pgo.sh BUILD_DIR [-c PIPELINE] [LOG ...]" >&2
    exit 2
}
case ${1:-} in -h | --help) sed -n '2,21s/^# \{0,1\}//p' "$0"; exit 0 ;; "" | -*) usage ;; esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$1
shift
PIPE=$SRC/examples/realestate/pipeline.yaml
if [ "${1:-}" = -c ]; then
    [ $# -ge 2 ] || usage
    PIPE=$2
    shift 2
fi
[ -f "$PIPE" ] || { echo "build-pgo: no pipeline file $PIPE" >&2; exit 2; }
for f in "$@"; do
    [ -r "$f" ] || { echo "build-pgo: cannot read $f" >&2; exit 2; }
done

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# A step's output only when it fails (meson and ninja report on stdout).
quiet() {
    "$@" >"$T/step.log" 2>&1 || {
        rc=$?
        cat "$T/step.log" >&2
        echo "build-pgo: failed ($rc): $*" >&2
        exit 1
    }
}
if [ $# -eq 0 ]; then
    i=0
    while [ $i -lt 250 ]; do
        cat "$SRC/examples/realestate/sample.log"
        i=$((i + 1))
    done >"$T/train.log"
    set -- "$T/train.log"
fi

echo "build-pgo: 1/3 instrumented build in $BUILD"
# A sanitizer would fail the training (LeakSanitizer sees gcov's own
# allocations), and coverage instrumentation does not mix with profiles.
OPTS="-Dbuildtype=release -Db_lto=true -Db_pgo=generate -Db_sanitize=none -Db_coverage=false"
if [ -f "$BUILD/build.ninja" ]; then
    quiet meson configure "$BUILD" $OPTS
else
    quiet meson setup "$BUILD" "$SRC" $OPTS
fi
quiet meson compile -C "$BUILD"
# Profiles of an earlier training would be merged with this one's.
find "$BUILD" -name '*.gcda' -delete

echo "build-pgo: 2/3 training on $* with $PIPE"
PIXEL_MODULE_PATH=$(ls -d "$BUILD"/modules/*/ 2>/dev/null | tr '\n' ':')
export PIXEL_MODULE_PATH
CONV=$BUILD/tools/pixelconv/pixelconv
for j in 1 2; do
    "$CONV" -c "$PIPE" -j $j -o "$T/out.jsonl" -q "$T/quarantine.jsonl" --quiet "$@"
done
if "$CONV" --help 2>&1 | grep -q -- '--kafka'; then
    # The sink, into librdkafka's mock cluster in this process (loopback only).
    "$CONV" -c "$PIPE" -j 2 --quiet --kafka \
        --kafka-set kafka.brokers=127.0.0.1:1 \
        --kafka-set kafka.properties.test.mock.num.brokers=3 \
        --kafka-set quarantine.topic= --kafka-set "quarantine.file=$T/quarantine-kafka.jsonl" \
        --kafka-set "spool.dir=$T/spool" "$@"
fi

echo "build-pgo: 3/3 optimized build with the profiles"
quiet meson configure "$BUILD" -Db_pgo=use
quiet meson compile -C "$BUILD"
echo "build-pgo: done: $BUILD (profile-guided release build); check it with: meson test -C $BUILD"
