/*
 * modrun: a small host for the module tests.  Loads a pipeline and reads
 * stdin line by line:
 *
 *   - a line starting with '{' is a JSON object whose members are set on the
 *     event of a fixed pixel line (parse + map), then the enrich stage runs:
 *     this puts arbitrary user agents, referers and IDs in front of a module;
 *   - any other line is a log line, processed by every stage.
 *
 * Prints one line per input: "event\t<json>", "dropped\t<source>\t<message>"
 * or "quarantined\t<code>\t<source>\t<message>".  Module counters go to
 * stderr at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/module.h"
#include "pixel/pixel.h"

#define FIXED_LINE                                                                                 \
    "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?a=1 HTTP/1.1\" 200 43 \"-\" "      \
    "\"-\""

static int seed(const pixel_pipeline *p, pixel_ctx *ctx, const char *json, size_t len,
                pixel_error *err)
{
    int rc = pixel_parse(p, ctx, FIXED_LINE, strlen(FIXED_LINE), NULL, err);
    if (rc == 0) {
        rc = pixel_map(p, ctx, NULL, err);
    }
    pixel_value *ev = pixel_ctx_event(ctx);
    pixel_value *obj = rc == 0 ? pixel_json_parse(ctx, json, len, err) : NULL;
    if (!ev || !obj || pixel_value_type(obj) != PIXEL_TYPE_OBJECT) {
        return rc ? rc : PIXEL_EPARSE;
    }
    for (const pixel_value *m = pixel_value_first(obj); m; m = pixel_value_next(m)) {
        size_t kn;
        const char *k = pixel_value_key(m, &kn);
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)kn, k);
        /* Re-create the member: set_at needs a fresh node. */
        size_t vn;
        const char *vs = pixel_value_string(m, &vn);
        pixel_value *v = NULL;
        if (vs) {
            v = pixel_value_new_string(ctx, vs, vn);
        } else {
            /* A copy through text, kept in the arena (the dump buffer is reused). */
            const char *js = pixel_value_dump(ctx, m, &vn);
            const char *copy = js ? pixel_module_printf(ctx, "%s", js) : NULL;
            v = copy ? pixel_json_parse(ctx, copy, vn, err) : NULL;
        }
        if (!v || pixel_value_set_at(ctx, ev, key, v) < 0) {
            return PIXEL_ENOMEM;
        }
    }
    return pixel_enrich(p, ctx, NULL, err);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: modrun PIPELINE.yaml < input\n");
        return 2;
    }
    pixel_pipeline *p = NULL;
    pixel_error err;
    char ebuf[1024];
    pixel_error_clear(&err);
    if (pixel_pipeline_load_file(&p, argv[1], NULL, &err) < 0) {
        fprintf(stderr, "modrun: %s\n", pixel_error_format(&err, ebuf, sizeof(ebuf)));
        return 1;
    }
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795651200123);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        pixel_error_clear(&err);
        int rc = line[0] == '{' ? seed(p, ctx, line, (size_t)n, &err)
                                : pixel_process(p, ctx, line, (size_t)n, NULL, &err);
        if (rc < 0) {
            printf("error\t%s\n", pixel_error_format(&err, ebuf, sizeof(ebuf)));
            status = 1;
            continue;
        }
        pixel_outcome oc = pixel_ctx_outcome(ctx);
        const pixel_reason *r = pixel_ctx_reason_count(ctx) ? pixel_ctx_reason(ctx, 0) : NULL;
        if (oc == PIXEL_OUTCOME_DROPPED) {
            printf("dropped\t%s\t%s\n", r && r->source ? r->source : "", r ? r->message : "");
        } else if (oc == PIXEL_OUTCOME_QUARANTINED) {
            printf("quarantined\t%s\t%s\t%s\n", r ? r->code : "", r && r->source ? r->source : "",
                   r ? r->message : "");
        } else {
            size_t len;
            const char *js = pixel_value_dump(ctx, pixel_ctx_event(ctx), &len);
            printf("event\t%s\n", js ? js : "null");
        }
    }
    free(line);
    char stats[4096];
    pixel_pipeline_module_stats(p, stats, sizeof(stats));
    fputs(stats, stderr);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    return status;
}
