/*
 * Fuzz target: one untrusted line through the whole pipeline (every stage
 * and the serializer), with each framing and log format.  Built for
 * libFuzzer with clang (-Dfuzzing=true); otherwise linked with
 * fuzz_driver.c, which replays the seed corpus and deterministic mutations
 * of it as a regression test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/pixel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pipelines[] = {
    "input: {framing: auto, format: combined, pixel_paths: [/px.gif], repeated_keys: list}\n"
    "event_type: {field: t, values: [a, b]}\n"
    "fields:\n"
    "  t: {from: query.ev, required: true, map: {x: a}}\n"
    "  n: {from: query.n, type: integer}\n"
    "  f: {from: query.f, type: number}\n"
    "  j: {from: query.j, type: base64url_json, expect: object}\n"
    "  k: {from: query.k, type: kv}\n"
    "  l: {from: query.l, type: list, items: integer}\n"
    "  ts: {from: query.ts, type: timestamp}\n"
    "  u.url: {from: query.url, max_length: 100}\n"
    "  time: {from: log.time, type: timestamp}\n"
    "  st: {from: syslog.timestamp, type: timestamp, format: syslog}\n"
    "  ip: log.client\n"
    "enrich:\n  - event_id: {from: query.eid}\n  - url: {from: u.url, into: u}\n"
    "  - anonymize_ip: {field: ip}\n",
    "input: {framing: rfc5424, format: nginx_json, pixel_paths: [/px.gif]}\n"
    "fields: {a: query.a, b: {from: log.status, type: integer}, c: log.upstream}\n",
    "input: {framing: none, pixel_paths: [/px.gif], format: {apache: '%h %l %u %t \\\"%r\\\" %>s "
    "%b %D \\\"%{Referer}i\\\"'}}\nfields: {a: query.a, d: log.request_time_us}\n",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pixel_pipeline *p[sizeof(pipelines) / sizeof(pipelines[0])];
    static pixel_ctx *ctx;
    if (!ctx) {
        ctx = pixel_ctx_new();
        for (size_t i = 0; i < sizeof(pipelines) / sizeof(pipelines[0]); i++) {
            if (pixel_pipeline_load_string(&p[i], pipelines[i], strlen(pipelines[i]), "fuzz", NULL,
                                           NULL, NULL) != 0) {
                abort();
            }
        }
    }
    for (size_t i = 0; i < sizeof(pipelines) / sizeof(pipelines[0]); i++) {
        pixel_outcome oc;
        if (pixel_process(p[i], ctx, (const char *)data, size, &oc, NULL) == 0) {
            size_t n;
            const char *out = pixel_ctx_output(ctx, p[i], &n);
            if (out && strlen(out) != n) {
                abort(); /* JSON output never holds a NUL */
            }
        }
    }
    /* The JSON parser alone. */
    pixel_ctx_reset(ctx);
    pixel_value *v = pixel_json_parse(ctx, (const char *)data, size, NULL);
    if (v) {
        pixel_value_dump(ctx, v, NULL);
    }
    return 0;
}
