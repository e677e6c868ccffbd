#!/bin/sh
# `meson install` into a staging directory gives the promised layout, and a
# tiny program built with `pkg-config --cflags --libs libpixel` converts a line.
# Then, as a C user of the installed library: the pkg-config variables name
# the installed modules, data and schemas; examples/c/convert_line.c, built
# as its comment says, converts the sample log through the installed example
# pipeline (installed modules, schemas and referer table, nothing of the
# source tree); nothing of libpixel pulls librdkafka in; and a program of
# libpixel-delivery links with that package's flags alone.
set -eu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
meson install -C "$PIXEL_BUILD_DIR" --destdir "$T/root" --quiet >"$T/install.log" 2>&1 || {
    cat "$T/install.log"; exit 1; }
prefix=$(meson introspect "$PIXEL_BUILD_DIR" --buildoptions | python3 -c \
    "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='prefix'))")
opt() {
    meson introspect "$PIXEL_BUILD_DIR" --buildoptions | python3 -c \
        "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='$1'))"
}
libdir=$(opt libdir)
datadir=$(opt datadir)
R="$T/root$prefix"
for f in bin/pixelconv include/pixel/pixel.h include/pixel/value.h include/pixel/version.h \
         include/pixel/module.h include/pixel/schema.h "$libdir/pkgconfig/libpixel.pc" \
         "$datadir/libpixel/referers.yaml" "$datadir/libpixel/schemas/quarantine.schema.json" \
         "$datadir/libpixel/schemas/realestate/event.schema.json" \
         "$datadir/libpixel/schemas/realestate/events/search.schema.json" \
         "$datadir/libpixel/examples/realestate/pipeline.yaml"; do
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

# ---- as a user of the installed library ----
# The variables, asked without the sysroot (pkgconf would prefix it to them,
# pkg-config would not): absolute paths in the prefix.
for v in "moduledir $prefix/$libdir/libpixel/modules" "pkgdatadir $prefix/$datadir/libpixel" \
         "schemadir $prefix/$datadir/libpixel/schemas"; do
    name=${v%% *} want=${v#* }
    got=$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable="$name" libpixel)
    [ "$got" = "$want" ] || { echo "FAIL: pkg-config --variable=$name is '$got', not '$want'"; exit 1; }
    [ -d "$T/root$got" ] || { echo "FAIL: $name $got is not an installed directory"; exit 1; }
done
echo "ok   pkg-config names moduledir, pkgdatadir and schemadir"

# A transform-only program does not pull librdkafka, statically or not.
case "$(pkg-config --libs --static libpixel)" in
    *rdkafka*) echo "FAIL: pkg-config --static --libs libpixel names librdkafka"; exit 1 ;;
esac
# Nor do the modules it loads.
for f in "$T/tiny" "$R/$libdir"/libpixel/modules/*.so; do
    if LD_LIBRARY_PATH="$R/$libdir" ldd "$f" | grep -q rdkafka; then
        echo "FAIL: $f loads librdkafka:"
        LD_LIBRARY_PATH="$R/$libdir" ldd "$f"
        exit 1
    fi
done
echo "ok   linking libpixel (and loading its modules) does not pull librdkafka in"

# examples/c/convert_line.c as its comment builds it (strict C11: it must
# ask for getline() itself), on the installed example pipeline.  The staged
# tree is not where the library was built to look (DESTDIR): it must find
# its modules beside itself, with no PIXEL_MODULE_PATH.
cc -std=c11 -pedantic -Wall -Wextra -Werror $san -o "$T/convert_line" \
    "$PIXEL_SOURCE_DIR/examples/c/convert_line.c" $(pkg-config --cflags --libs libpixel)
pipeline="$T/root$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=pkgdatadir libpixel)/examples/realestate/pipeline.yaml"
sample="$PIXEL_SOURCE_DIR/examples/realestate/sample.log"
unset PIXEL_MODULE_PATH
LD_LIBRARY_PATH="$R/$libdir" "$T/convert_line" "$pipeline" <"$sample" >"$T/convert.out" \
    2>"$T/convert.err" || { cat "$T/convert.err"; echo "FAIL: convert_line"; exit 1; }
counts=$(cut -d' ' -f1 "$T/convert.out" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
[ "$counts" = " 320 event  44 quarantined " ] ||
    { echo "FAIL: convert_line printed: $counts"; exit 1; }
echo "ok   convert_line.c converts the sample through the installed example pipeline: $counts"

# The installed pixelconv with the installed pipeline gives the expected output.
LD_LIBRARY_PATH="$R/$libdir" "$R/bin/pixelconv" -c "$pipeline" --fixed-time 2026-11-26T12:00:00Z \
    --quiet -o "$T/events.jsonl" -q "$T/quarantine.jsonl" -s "$T/stats.json" "$sample" ||
    { echo "FAIL: installed pixelconv with the installed pipeline"; exit 1; }
for f in events.jsonl quarantine.jsonl stats.json; do
    cmp -s "$T/$f" "$PIXEL_SOURCE_DIR/examples/realestate/expected/$f" ||
        { echo "FAIL: $f differs from examples/realestate/expected/$f"; exit 1; }
done
echo "ok   installed pixelconv + installed example pipeline = examples/realestate/expected"

# libpixel-delivery (when built): its header includes pixel/pixel.h, so its
# flags alone must link the libpixel functions a caller uses on its errors.
if [ -e "$R/$libdir/pkgconfig/libpixel-delivery.pc" ]; then
    for f in include/pixel/delivery.h include/pixel/spool.h; do
        [ -e "$R/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
    done
    cat >"$T/dl.c" <<'C'
#include <pixel/delivery.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    static const char yaml[] = "delivery: {kafka: {brokerz: x}}\n";
    pixel_delivery_config *cfg = NULL;
    pixel_error err;
    char msg[512];
    int rc = pixel_delivery_config_load_string(&cfg, yaml, strlen(yaml), NULL, &err);
    printf("%s: %s\n", pixel_status_str(rc), pixel_error_format(&err, msg, sizeof(msg)));
    pixel_delivery_config_free(cfg);
    return rc == PIXEL_ECONFIG ? 0 : 1;
}
C
    cc -std=c99 -pedantic -Wall -Werror $san -o "$T/dl" "$T/dl.c" \
        $(pkg-config --cflags --libs libpixel-delivery)
    out=$(LD_LIBRARY_PATH="$R/$libdir" "$T/dl") || { echo "FAIL: delivery program: $out"; exit 1; }
    case "$out" in
        *"/delivery/kafka/brokerz"*) ;;
        *) echo "FAIL: delivery program printed: $out"; exit 1 ;;
    esac
    echo "ok   a libpixel-delivery program links with its pkg-config flags alone"
fi
