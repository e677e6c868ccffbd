/*
 * Read access to the parse stage's record, by source name
 * ("log.client", "syslog.hostname", "query.uid").
 */
#include <string.h>

#include "pipeline.h"

const pixel_record *pixel_ctx_record(const pixel_ctx *ctx)
{
    return ctx && ctx->parsed ? &ctx->rec : NULL;
}

const char *pixel_record_get(const pixel_record *rec, const char *name, size_t *len)
{
    pixel_span v = {NULL, 0};
    const pixel_pipeline *p = rec ? rec->pipeline : NULL;
    if (!p || !name) {
        return NULL;
    }
    if (strncmp(name, "query.", 6) == 0) {
        const char *pn = name + 6;
        size_t n = strlen(pn);
        for (size_t i = 0; i < rec->nparams; i++) {
            if (rec->params[i].name.n == n && memcmp(rec->params[i].name.p, pn, n) == 0) {
                v = rec->params[i].value;
                break;
            }
        }
    } else if (strncmp(name, "log.", 4) == 0) {
        int slot = pixel__field_slot((pixel_pipeline *)p, name + 4, 0);
        if (slot >= 0) {
            v = rec->fields[slot];
        }
    } else if (strncmp(name, "syslog.", 7) == 0) {
        int idx = pixel__syslog_index(name + 7);
        if (idx >= 0) {
            v = rec->syslog[idx];
        }
    }
    if (len) {
        *len = v.n;
    }
    return v.p;
}

size_t pixel_record_param_count(const pixel_record *rec)
{
    return rec ? rec->nparams : 0;
}

const char *pixel_record_param(const pixel_record *rec, size_t i, const char **value,
                               size_t *name_len, size_t *value_len)
{
    if (!rec || i >= rec->nparams) {
        return NULL;
    }
    const pixel_param *pa = &rec->params[i];
    if (value) {
        *value = pa->value.p;
    }
    if (value_len) {
        *value_len = pa->value.n;
    }
    if (name_len) {
        *name_len = pa->name.n;
    }
    return pa->name.p;
}
