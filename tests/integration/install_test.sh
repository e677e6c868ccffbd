#!/bin/sh
# `meson install` into a staging directory gives the promised layout, and a
# tiny program built with `pkg-config --cflags --libs libpixel` converts a line.
set -eu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
meson install -C "$PIXEL_BUILD_DIR" --destdir "$T/root" --quiet >"$T/install.log" 2>&1 || {
    cat "$T/install.log"; exit 1; }
prefix=$(meson introspect "$PIXEL_BUILD_DIR" --buildoptions | python3 -c \
    "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='prefix'))")
libdir=$(meson introspect "$PIXEL_BUILD_DIR" --buildoptions | python3 -c \
    "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='libdir'))")
R="$T/root$prefix"
for f in bin/pixelconv include/pixel/pixel.h include/pixel/value.h include/pixel/version.h \
         "$libdir/pkgconfig/libpixel.pc"; do
    [ -e "$R/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
ls "$R/$libdir"/libpixel.so.0* >/dev/null || { echo "FAIL: no libpixel.so.0"; exit 1; }
echo "ok   installed layout"

cat >"$T/tiny.c" <<'C'
#include <pixel/pixel.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    static const char yaml[] = "input: {framing: none, pixel_paths: [/px.gif]}\n"
                               "fields: {user.id: {from: query.uid, required: true}}\n";
    static const char line[] = "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] "
                               "\"GET /px.gif?uid=u%2B1 HTTP/1.1\" 200 43 \"-\" \"curl\"";
    pixel_pipeline *p;
    pixel_error err;
    pixel_outcome oc;
    if (pixel_pipeline_load_string(&p, yaml, strlen(yaml), NULL, NULL, NULL, &err) != 0) {
        return 2;
    }
    pixel_ctx *ctx = pixel_ctx_new();
    if (!ctx || pixel_process(p, ctx, line, strlen(line), &oc, &err) != 0) {
        return 3;
    }
    puts(pixel_ctx_output(ctx, p, NULL));
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    return oc == PIXEL_OUTCOME_EVENT ? 0 : 4;
}
C
export PKG_CONFIG_PATH="$R/$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$T/root"
# A sanitized libpixel needs a sanitized program.
san=$(meson introspect "$PIXEL_BUILD_DIR" --buildoptions | python3 -c \
    "import json,sys; v=next(o['value'] for o in json.load(sys.stdin) if o['name']=='b_sanitize'); print('' if v=='none' else '-fsanitize='+v)")
cc -std=c99 -pedantic -Wall -Werror $san -o "$T/tiny" "$T/tiny.c" $(pkg-config --cflags --libs libpixel)
out=$(LD_LIBRARY_PATH="$R/$libdir" "$T/tiny")
[ "$out" = '{"user":{"id":"u+1"}}' ] || { echo "FAIL: tiny program printed: $out"; exit 1; }
echo "ok   a program built with pkg-config converts a line: $out"
