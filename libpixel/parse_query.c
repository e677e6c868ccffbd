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

/* Hex digit values; -1 for other bytes. */
static const signed char hex_tab[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  -1, -1, -1, -1, -1, -1, -1, 10, 11, 12, 13, 14, 15, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static inline int hexval(unsigned char c)
{
    return hex_tab[c];
}

/*
 * Decodes s into the arena (or returns a view when there is nothing to
 * decode).  Returns 0, 1 with *bad_at on a malformed escape, or ENOMEM.
 * *high tells whether any resulting byte is >= 0x80 (only then is a UTF-8
 * check needed).
 */
int pixel__percent_decode(pixel_arena *a, const char *s, size_t n, bool plus_as_space,
                          pixel_span *out, size_t *bad_at, bool *high)
{
    unsigned hi = 0;
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        hi |= c;
        if (c == '%' || (c == '+' && plus_as_space)) {
            break;
        }
    }
    if (i == n) {
        *out = (pixel_span){s, n};
        if (high) {
            *high = (hi & 0x80) != 0;
        }
        return 0;
    }
    char *d = pixel__arena_alloc(a, n + 1);
    if (!d) {
        return PIXEL_ENOMEM;
    }
    memcpy(d, s, i);
    size_t k = i;
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const unsigned char plus = plus_as_space ? '+' : '%';
    for (; i < n; i++) {
        /* Copy plain runs eight bytes at a time. */
        while (n - i >= 8) {
            uint64_t w, pc, pl;
            memcpy(&w, s + i, 8);
            pc = w ^ (ones * '%');
            pl = w ^ (ones * plus);
            uint64_t m = (((pc - ones) & ~pc) | ((pl - ones) & ~pl)) & highs;
            hi |= (unsigned)((w & highs) != 0) << 7;
            if (m) {
                size_t run = (size_t)__builtin_ctzll(m) >> 3;
                memcpy(d + k, s + i, run);
                k += run;
                i += run;
                break;
            }
            memcpy(d + k, &w, 8);
            k += 8;
            i += 8;
        }
        if (i >= n) {
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                *bad_at = i;
                return 1;
            }
            c = (unsigned char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            c = ' ';
        }
        hi |= c;
        d[k++] = (char)c;
    }
    d[k] = '\0';
    *out = (pixel_span){d, k};
    if (high) {
        *high = (hi & 0x80) != 0;
    }
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

/* Decode one name or value: 0 fine, 1 quarantined, <0 failure. */
static int decode_part(pixel_ctx *ctx, const pixel_pipeline *p, const char *s, size_t n,
                       bool special, bool raw_high, pixel_span name_for_msg, const char *what,
                       pixel_span *out)
{
    bool high = raw_high;
    if (special) {
        size_t bad = 0;
        int rc = pixel__percent_decode(&ctx->arena, s, n, p->plus_as_space, out, &bad, &high);
        if (rc < 0) {
            return rc;
        }
        if (rc > 0) {
            bad_escape(ctx, what, name_for_msg.p ? name_for_msg : (pixel_span){s, n}, s, n, bad);
            return 1;
        }
    } else {
        *out = (pixel_span){s, n};
    }
    if (!high) {
        return 0; /* pure ASCII is valid UTF-8 */
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

static inline bool byte_matters(unsigned char c, unsigned char plus)
{
    return c == '&' || c == '=' || c == '%' || c == plus || c >= 0x80;
}

/* Nonzero when w may hold '&', '=', '%', the plus byte, or a byte >= 0x80. */
static inline uint64_t word_has_any(uint64_t w, unsigned char plus)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t a = w ^ (ones * '&'), e = w ^ (ones * '='), pc = w ^ (ones * '%'),
             pl = w ^ (ones * plus);
    a = (a - ones) & ~a;
    e = (e - ones) & ~e;
    pc = (pc - ones) & ~pc;
    pl = (pl - ones) & ~pl;
    return (a | e | pc | pl | w) & high;
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
    const unsigned char plus = p->plus_as_space ? '+' : '%';
    while (s < end) {
        /* One pass over the pair: where '=' is, whether name or value need
         * decoding, whether any byte is non-ASCII. */
        const char *q = s, *eq = NULL;
        unsigned hi = 0;
        bool name_special = false, value_special = false;
        for (;;) {
            /* Jump to the next byte that matters, eight bytes at a time: the
             * lowest flagged byte of a word is exact. */
            while (end - q >= 8) {
                uint64_t w;
                memcpy(&w, q, 8);
                uint64_t m = word_has_any(w, plus);
                if (m) {
                    q += __builtin_ctzll(m) >> 3;
                    break;
                }
                q += 8;
            }
            while (q < end && !byte_matters((unsigned char)*q, plus)) {
                q++;
            }
            if (q >= end) {
                break;
            }
            unsigned char c = (unsigned char)*q;
            if (c == '&') {
                break;
            }
            hi |= c;
            if (c == '=' && !eq) {
                eq = q;
            } else if (c == '%' || c == plus) {
                if (eq) {
                    value_special = true;
                } else {
                    name_special = true;
                }
            }
            q++;
        }
        const char *pe = q;
        if (pe == s) {
            s = pe + 1;
            continue; /* "&&" */
        }
        if (r->nparams >= p->max_params) {
            return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "too_many_parameters", "query",
                                     "more than %zu query parameters", p->max_params);
        }
        const char *ne = eq ? eq : pe;
        pixel_param *pa = &r->params[r->nparams];
        bool high = (hi & 0x80) != 0;
        int rc = decode_part(ctx, p, s, (size_t)(ne - s), name_special, high, (pixel_span){NULL, 0},
                             "parameter name", &pa->name);
        if (rc != 0) {
            return rc < 0 ? rc : 0;
        }
        if (eq) {
            rc = decode_part(ctx, p, eq + 1, (size_t)(pe - eq - 1), value_special, high, pa->name,
                             "parameter", &pa->value);
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
