#!/bin/sh
# The out-of-tree module example, from a fresh install:
#   1. build libpixel from this source tree into a temporary prefix and
#      `meson install` it (no tests, no sanitizers: a user's install);
#   2. build examples/module-hello against it through `pkg-config libpixel`
#      and install it into the module directory named by libpixel.pc;
#   3. run the installed pixelconv with a pipeline that uses `hello` by name
#      only (found in the installed module directory).
set -eu
SRC=${PIXEL_SOURCE_DIR:?run through meson test}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
P="$T/prefix"
log() { echo "--- $1"; }
run() { "$@" >"$T/step.log" 2>&1 || { cat "$T/step.log"; echo "FAIL: $*"; exit 1; }; }

log "libpixel -> $P"
run meson setup "$T/libpixel" "$SRC" --prefix="$P" --libdir=lib -Dtests=disabled \
    -Dkafka=disabled -Dgeoip=disabled -Db_sanitize=none
run meson compile -C "$T/libpixel"
run meson install -C "$T/libpixel" --quiet

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
moddir=$(pkg-config --variable=moduledir libpixel)
[ "$moddir" = "$P/lib/libpixel/modules" ] || { echo "FAIL: moduledir is '$moddir'"; exit 1; }
for m in useragent botfilter privacy referer; do
    [ -f "$moddir/$m.so" ] || { echo "FAIL: $m.so not installed in $moddir"; exit 1; }
done
[ -f "$P/include/pixel/module.h" ] || { echo "FAIL: pixel/module.h not installed"; exit 1; }

log "examples/module-hello against the installed libpixel"
cp -r "$SRC/examples/module-hello" "$T/hello-src"   # as a user would: a tree of its own
run meson setup "$T/hello" "$T/hello-src"
run meson compile -C "$T/hello"
run meson install -C "$T/hello" --quiet
[ -f "$moddir/hello.so" ] || { echo "FAIL: hello.so not installed into $moddir"; exit 1; }
nm -D --defined-only "$moddir/hello.so" | grep -q ' T pixel_module_entry$' ||
    { echo "FAIL: hello.so does not export pixel_module_entry"; exit 1; }
[ "$(nm -D --defined-only "$moddir/hello.so" | grep -c ' T ')" = 1 ] ||
    { echo "FAIL: hello.so exports more than its entry symbol"; exit 1; }

log "pixelconv with a pipeline using hello"
cat >"$T/pipeline.yaml" <<'Y'
pipeline: {name: hello-test, version: '1'}
input: {framing: none, format: combined, pixel_paths: [/px.gif]}
fields:
  user.id: {from: query.uid}
enrich:
  - module: {name: hello, config: {greeting: hi, ignore: [robot]}}
Y
for uid in u1 robot u2; do
    echo "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?uid=$uid HTTP/1.1\" 200 43 \"-\" \"x\""
done >"$T/in.log"
LD_LIBRARY_PATH="$P/lib" "$P/bin/pixelconv" -c "$T/pipeline.yaml" -s "$T/stats.json" \
    -o "$T/out.jsonl" "$T/in.log" 2>"$T/err.log" || { cat "$T/err.log"; echo "FAIL: pixelconv"; exit 1; }
expected='{"user":{"id":"u1"},"hello":"hi, u1"}
{"user":{"id":"u2"},"hello":"hi, u2"}'
[ "$(cat "$T/out.jsonl")" = "$expected" ] || { echo "FAIL: output:"; cat "$T/out.jsonl"; exit 1; }
grep -q '"dropped_by":{"hello":1}' "$T/stats.json" ||
    { echo "FAIL: the drop is not counted for hello:"; cat "$T/stats.json"; exit 1; }
echo "ok   out-of-tree module built, installed and run: $(tr '\n' ' ' <"$T/out.jsonl")"
