/*
 * Fuzz target: untrusted pipeline YAML through pixel_pipeline_load_string()
 * (the YAML reader, every section's checks, the schema directory and module
 * lookups it names).  It must load or refuse with an error that says where;
 * a pipeline that loads must then convert a line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/pixel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char line[] =
    "127.0.0.1 - - [26/Nov/2026:12:00:00 +0000] \"GET /px.gif?ev=view&uid=u1&n=3&url=http%3A%2F%2F"
    "example.com%2Fa HTTP/1.1\" 200 43 \"-\" \"Mozilla/5.0\"";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pixel_ctx *ctx;
    if (!ctx && !(ctx = pixel_ctx_new())) {
        abort();
    }
    pixel_pipeline *p = NULL;
    pixel_error err;
    memset(&err, 0, sizeof(err));
    int rc = pixel_pipeline_load_string(&p, (const char *)data, size, "fuzz.yaml", NULL, NULL, &err);
    if (rc != 0) {
        /* a refusal says what (and the pipeline is not made) */
        if (p != NULL || err.text[0] == '\0') {
            abort();
        }
        return 0;
    }
    pixel_outcome oc;
    if (pixel_process(p, ctx, line, sizeof(line) - 1, &oc, NULL) == 0) {
        size_t n;
        const char *out = pixel_ctx_output(ctx, p, &n);
        if (out && strlen(out) != n) {
            abort();
        }
    }
    pixel_ctx_reset(ctx);
    pixel_pipeline_free(p);
    return 0;
}
