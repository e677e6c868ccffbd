/*
 * The query string: application/x-www-form-urlencoded pairs, decoded
 * strictly.  A malformed escape or bytes that are not UTF-8 reject the line
 * with the parameter and offset: a lenient decoder would let `%zz` or
 * Latin-1 through as text and the data model would never know.
 *
 * A value without '%' or '+' is a view into the line; others are decoded
 * into the arena.
 */
#include <string.h>

#include "pipeline.h"

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

int32_t pixel__slot_lookup(const pixel_pipeline *p, const char *name, size_t len)
{
    if (!p->slot_hash) {
        return -1;
    }
    uint32_t i = name_hash(name, len) & p->slot_hash_mask;
    for (;;) {
        int32_t s = p->slot_hash[i];
        if (s < 0) {
            return -1;
        }
        if (p->slot_name_len[s] == len && memcmp(p->slot_names[s], name, len) == 0) {
            return s;
        }
        i = (i + 1) & p->slot_hash_mask;
    }
}

static int rebuild_hash(pixel_pipeline *p)
{
    uint32_t size = 16;
    while (size < p->nslots * 4) {
        size *= 2;
    }
    int32_t *h = pixel__malloc(size * sizeof(int32_t));
    if (!h) {
        return -1;
    }
    for (uint32_t i = 0; i < size; i++) {
        h[i] = -1;
    }
    for (size_t s = 0; s < p->nslots; s++) {
        uint32_t i = name_hash(p->slot_names[s], p->slot_name_len[s]) & (size - 1);
        while (h[i] >= 0) {
            i = (i + 1) & (size - 1);
        }
        h[i] = (int32_t)s;
    }
    pixel__free(p->slot_hash);
    p->slot_hash = h;
    p->slot_hash_mask = size - 1;
    return 0;
}

int pixel__slot_for_param(pixel_pipeline *p, const char *name)
{
    int32_t s = pixel__slot_lookup(p, name, strlen(name));
    if (s >= 0) {
        return s;
    }
    char **names = pixel__realloc(p->slot_names, (p->nslots + 1) * sizeof(char *));
    if (!names) {
        return -1;
    }
    p->slot_names = names;
    size_t *lens = pixel__realloc(p->slot_name_len, (p->nslots + 1) * sizeof(size_t));
    if (!lens) {
        return -1;
    }
    p->slot_name_len = lens;
    names[p->nslots] = pixel__strdup(name);
    if (!names[p->nslots]) {
        return -1;
    }
    lens[p->nslots] = strlen(name);
    p->nslots++;
    return rebuild_hash(p) < 0 ? -1 : (int)p->nslots - 1;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int pixel__percent_decode(pixel_arena *a, const char *s, size_t n, bool plus_as_space,
                          pixel_span *out, size_t *bad_at)
{
    const char *pct = memchr(s, '%', n);
    const char *plus = plus_as_space ? memchr(s, '+', n) : NULL;
    if (!pct && !plus) {
        *out = (pixel_span){s, n};
        return 0;
    }
    char *d = pixel__arena_alloc(a, n + 1);
    if (!d) {
        return PIXEL_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *bad_at = i;
                return 1;
            }
            d[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            d[k++] = ' ';
        } else {
            d[k++] = c;
        }
    }
    d[k] = '\0';
    *out = (pixel_span){d, k};
    return 0;
}

static int bad_escape(pixel_ctx *ctx, const char *what, pixel_span name, const char *s, size_t n,
                      size_t at)
{
    char esc[4] = {0};
    size_t k = n - at < 3 ? n - at : 3;
    memcpy(esc, s + at, k);
    char loc[160];
    snprintf(loc, sizeof(loc), "query.%.*s", (int)(name.n < 128 ? name.n : 128), name.p);
    return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "bad_percent_escape", loc,
                             "%s \"%.*s\": malformed percent escape \"%s\" at offset %zu", what,
                             (int)(name.n < 128 ? name.n : 128), name.p, esc, at);
}

static int decode_part(pixel_ctx *ctx, const pixel_pipeline *p, const char *s, size_t n,
                       pixel_span name_for_msg, const char *what, pixel_span *out)
{
    size_t bad = 0;
    int rc = pixel__percent_decode(&ctx->arena, s, n, p->plus_as_space, out, &bad);
    if (rc < 0) {
        return rc;
    }
    if (rc > 0) {
        bad_escape(ctx, what, name_for_msg.p ? name_for_msg : (pixel_span){s, n}, s, n, bad);
        return 1;
    }
    size_t u = pixel__utf8_check(out->p, out->n);
    if (u != out->n) {
        pixel_span nm = name_for_msg.p ? name_for_msg : *out;
        char loc[160];
        snprintf(loc, sizeof(loc), "query.%.*s", (int)(nm.n < 128 ? nm.n : 128), nm.p);
        pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "invalid_utf8", loc,
                          "%s \"%.*s\": decoded bytes are not UTF-8 (byte 0x%02X at offset %zu)",
                          what, (int)(nm.n < 128 ? nm.n : 128), nm.p, (unsigned char)out->p[u], u);
        return 1;
    }
    return 0;
}

int pixel__parse_query(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span query)
{
    pixel_record *r = &ctx->rec;
    r->nslots = p->nslots;
    r->slots = pixel__arena_alloc(&ctx->arena, (p->nslots ? p->nslots : 1) * sizeof(pixel_slot));
    r->params = pixel__arena_alloc(&ctx->arena, p->max_params * sizeof(pixel_param));
    if (!r->slots || !r->params) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < p->nslots; i++) {
        r->slots[i] = (pixel_slot){-1, 0};
    }
    r->nparams = 0;
    const char *s = query.p, *end = query.p + query.n;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pe = amp ? amp : end;
        if (pe == s) {
            s = pe + 1;
            continue; /* "&&" */
        }
        if (r->nparams >= p->max_params) {
            return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "too_many_parameters", "query",
                                     "more than %zu query parameters", p->max_params);
        }
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        const char *ne = eq ? eq : pe;
        pixel_param *pa = &r->params[r->nparams];
        int rc = decode_part(ctx, p, s, (size_t)(ne - s), (pixel_span){NULL, 0},
                             "parameter name", &pa->name);
        if (rc != 0) {
            return rc < 0 ? rc : 0;
        }
        if (eq) {
            rc = decode_part(ctx, p, eq + 1, (size_t)(pe - eq - 1), pa->name, "parameter",
                             &pa->value);
            if (rc != 0) {
                return rc < 0 ? rc : 0;
            }
        } else {
            pa->value = (pixel_span){pe, 0};
        }
        pa->slot = pixel__slot_lookup(p, pa->name.p, pa->name.n);
        pa->next_same = -1;
        if (pa->slot >= 0) {
            pixel_slot *sl = &r->slots[pa->slot];
            if (sl->first < 0) {
                sl->first = (int32_t)r->nparams;
                sl->count = 1;
            } else {
                switch (p->repeat) {
                    case REPEAT_FIRST:
                        pa->slot = -1;
                        break;
                    case REPEAT_LAST:
                        r->params[sl->first].slot = -1;
                        sl->first = (int32_t)r->nparams;
                        break;
                    case REPEAT_LIST: {
                        int32_t k = sl->first;
                        while (r->params[k].next_same >= 0) {
                            k = r->params[k].next_same;
                        }
                        r->params[k].next_same = (int32_t)r->nparams;
                        sl->count++;
                        break;
                    }
                    case REPEAT_REJECT: {
                        char loc[160];
                        snprintf(loc, sizeof(loc), "query.%s", p->slot_names[pa->slot]);
                        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "repeated_parameter", loc,
                                                 "parameter \"%s\" appears more than once",
                                                 p->slot_names[pa->slot]);
                    }
                }
            }
        }
        r->nparams++;
        s = pe + 1;
    }
    return 0;
}
