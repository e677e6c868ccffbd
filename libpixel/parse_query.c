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
#include "simd.h"

/*
 * Parameter names are short and few.  A name is looked up by its first eight
 * bytes as one little-endian word (zero-padded) and its length; most names
 * fit in the word, so a hit is one compare, and longer ones compare the rest.
 * `limit`, when not NULL, is where the bytes after the name end: a shorter
 * name is then loaded as one word and masked.
 */
static inline uint64_t name_word(const char *s, size_t n, const char *limit)
{
    const unsigned char *u = (const unsigned char *)s;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n >= 8 || (limit && limit - s >= 8)) {
        uint64_t w;
        memcpy(&w, u, 8);
        return n >= 8 ? w : w & ((1ull << (8 * n)) - 1);
    }
#else
    PIXEL_UNUSED(limit);
#endif
    uint64_t w = 0;
    for (size_t i = 0; i < n && i < 8; i++) {
        w |= (uint64_t)u[i] << (8 * i);
    }
    return w;
}

static inline uint32_t word_hash(uint64_t w, size_t n, uint32_t mask)
{
    uint64_t h = (w ^ n) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & mask;
}

static inline int32_t slot_find(const pixel_pipeline *p, const char *name, size_t len,
                                const char *limit)
{
    if (!p->slot_hash) {
        return -1;
    }
    uint64_t w = name_word(name, len, limit);
    for (uint32_t i = word_hash(w, len, p->slot_hash_mask);; i = (i + 1) & p->slot_hash_mask) {
        const pixel_slot_entry *e = &p->slot_hash[i];
        if (e->slot < 0) {
            return -1;
        }
        if (e->word == w && e->len == len &&
            (len <= 8 || memcmp(p->slot_names[e->slot] + 8, name + 8, len - 8) == 0)) {
            return e->slot;
        }
    }
}

static int rebuild_hash(pixel_pipeline *p)
{
    uint32_t size = 16;
    while (size < p->nslots * 4) {
        size *= 2;
    }
    pixel_slot_entry *h = pixel__malloc(size * sizeof(*h));
    if (!h) {
        return -1;
    }
    for (uint32_t i = 0; i < size; i++) {
        h[i] = (pixel_slot_entry){0, 0, -1};
    }
    for (size_t s = 0; s < p->nslots; s++) {
        size_t n = p->slot_name_len[s];
        uint64_t w = name_word(p->slot_names[s], n, NULL);
        uint32_t i = word_hash(w, n, size - 1);
        while (h[i].slot >= 0) {
            i = (i + 1) & (size - 1);
        }
        h[i] = (pixel_slot_entry){w, (uint32_t)n, (int32_t)s};
    }
    pixel__free(p->slot_hash);
    p->slot_hash = h;
    p->slot_hash_mask = size - 1;
    return 0;
}

int pixel__slot_for_param(pixel_pipeline *p, const char *name)
{
    int32_t s = slot_find(p, name, strlen(name), NULL);
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
 * check needed).  Plain runs move sixteen bytes at a time.
 */
int pixel__percent_decode(pixel_arena *a, const char *s, size_t n, bool plus_as_space,
                          pixel_span *out, size_t *bad_at, bool *high)
{
    const unsigned char *u = (const unsigned char *)s;
    const unsigned char plus = plus_as_space ? '+' : '%';
    unsigned hi = 0;
    size_t i = 0;
    for (;; i += 16) {
        if (n - i < 16) {
            while (i < n && u[i] != '%' && u[i] != plus) {
                hi |= u[i++];
            }
            break;
        }
        pixel_qclass k = pixel__query_class16(u + i, plus);
        if (k.special) {
            unsigned j = (unsigned)__builtin_ctz(k.special);
            hi |= (k.high & ((1u << j) - 1)) ? 0x80 : 0;
            i += j;
            break;
        }
        hi |= k.high ? 0x80 : 0;
    }
    if (i == n) {
        *out = (pixel_span){s, n};
        if (high) {
            *high = (hi & 0x80) != 0;
        }
        return 0;
    }
    /* The output never runs ahead of the input (k <= i), so a block copied
     * while sixteen input bytes remain stays inside n bytes. */
    char *d = pixel__arena_alloc(a, n + 1);
    if (!d) {
        return PIXEL_ENOMEM;
    }
    memcpy(d, s, i);
    size_t k = i;
    while (i < n) {
        if (n - i >= 16) {
            pixel_qclass c = pixel__query_class16(u + i, plus);
            pixel__copy16(d + k, u + i);
            if (!c.special) {
                hi |= c.high ? 0x80 : 0;
                i += 16;
                k += 16;
                continue;
            }
            unsigned j = (unsigned)__builtin_ctz(c.special);
            hi |= (c.high & ((1u << j) - 1)) ? 0x80 : 0;
            i += j;
            k += j;
        }
        unsigned char c = u[i];
        if (c == '%') {
            int h = n - i > 2 ? hexval(u[i + 1]) : -1;
            int l = n - i > 2 ? hexval(u[i + 2]) : -1;
            if (h < 0 || l < 0) {
                *bad_at = i;
                return 1;
            }
            c = (unsigned char)(h << 4 | l);
            i += 3;
        } else {
            if (c == '+' && plus_as_space) {
                c = ' ';
            }
            i++;
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

/*
 * The query string is classified once, sixteen bytes at a time, into three
 * bit masks (bit i of word i/64 for byte i): the separators '&' and '=', the
 * escapes ('%', and '+' when it means a space), and the bytes >= 0x80.  Pairs
 * are cut by walking the separator bits; a name or value is decoded by
 * walking its escape bits, so no byte between them is looked at again.
 */
typedef struct qmasks {
    uint64_t *sep, *esc, *high;
    bool any_esc, any_high;
} qmasks;

static int classify(pixel_arena *a, const unsigned char *s, size_t n, unsigned char plus, qmasks *m)
{
    size_t nw = n / 64 + 1;
    uint64_t *w = pixel__arena_alloc(a, 3 * nw * sizeof(uint64_t));
    if (!w) {
        return PIXEL_ENOMEM;
    }
    memset(w, 0, 3 * nw * sizeof(uint64_t));
    m->sep = w;
    m->esc = w + nw;
    m->high = w + 2 * nw;
    unsigned esc = 0, high = 0;
    for (size_t o = 0; o < n; o += 16) {
        unsigned char pad[16];
        const unsigned char *b = s + o;
        if (n - o < 16) {
            memset(pad, 0, sizeof(pad));
            memcpy(pad, b, n - o);
            b = pad;
        }
        pixel_qclass k = pixel__query_class16(b, plus);
        unsigned sh = (unsigned)(o % 64);
        m->sep[o / 64] |= (uint64_t)(k.amp | k.eq) << sh;
        m->esc[o / 64] |= (uint64_t)k.special << sh;
        m->high[o / 64] |= (uint64_t)k.high << sh;
        esc |= k.special;
        high |= k.high;
    }
    m->any_esc = esc != 0;
    m->any_high = high != 0;
    return 0;
}

/* Bits of m in [from, to), word by word: w holds the bits of word wi. */
static inline uint64_t range_word(const uint64_t *m, size_t wi, size_t from, size_t to)
{
    uint64_t w = m[wi];
    if (wi == from / 64) {
        w &= ~(uint64_t)0 << (from % 64);
    }
    if (wi == to / 64) {
        w &= ((uint64_t)1 << (to % 64)) - 1;
    }
    return w;
}

/* Whether any bit in [from, to) is set. */
static inline bool any_bit(const uint64_t *m, size_t from, size_t to)
{
    if (from >= to) {
        return false;
    }
    size_t a = from / 64, z = (to - 1) / 64;
    uint64_t first = ~(uint64_t)0 << (from % 64), last = ~(uint64_t)0 >> (63 - (to - 1) % 64);
    if (a == z) {
        return (m[a] & first & last) != 0;
    }
    if ((m[a] & first) || (m[z] & last)) {
        return true;
    }
    for (size_t i = a + 1; i < z; i++) {
        if (m[i]) {
            return true;
        }
    }
    return false;
}

/*
 * Decodes [from, to) of the query, whose escapes are the bits of m->esc, into
 * the arena: the runs between escapes are copied whole.  0, 1 with *bad_at
 * (offset in the part) on a malformed escape, or ENOMEM; *high is set when
 * an escape decoded to a byte >= 0x80.
 */
static int decode_masked(pixel_arena *a, const qmasks *m, const char *q, size_t from, size_t to,
                         bool plus_as_space, pixel_span *out, size_t *bad_at, bool *high)
{
    char *d = pixel__arena_alloc(a, to - from + 1);
    if (!d) {
        return PIXEL_ENOMEM;
    }
    size_t i = from, k = 0;
    unsigned hi = 0;
    for (size_t wi = from / 64; wi <= to / 64; wi++) {
        for (uint64_t w = range_word(m->esc, wi, from, to); w; w &= w - 1) {
            size_t at = wi * 64 + (size_t)__builtin_ctzll(w);
            if (at < i) {
                continue; /* inside an escape already decoded */
            }
            memcpy(d + k, q + i, at - i);
            k += at - i;
            unsigned char c = (unsigned char)q[at];
            if (c == '%') {
                int h = to - at > 2 ? hexval((unsigned char)q[at + 1]) : -1;
                int l = to - at > 2 ? hexval((unsigned char)q[at + 2]) : -1;
                if (h < 0 || l < 0) {
                    *bad_at = at - from;
                    return 1;
                }
                c = (unsigned char)(h << 4 | l);
                hi |= c;
                i = at + 3;
            } else {
                c = plus_as_space ? ' ' : c;
                i = at + 1;
            }
            d[k++] = (char)c;
        }
    }
    memcpy(d + k, q + i, to - i);
    k += to - i;
    d[k] = '\0';
    *out = (pixel_span){d, k};
    *high = (hi & 0x80) != 0;
    return 0;
}

/* One name or value, [from, to) of the query, that has escapes or high
 * bytes: 0 fine, 1 quarantined, <0 failure. */
__attribute__((noinline)) static int decode_part(pixel_ctx *ctx, const pixel_pipeline *p,
                                                 pixel_span query, const qmasks *m, size_t from,
                                                 size_t to, pixel_span name_for_msg,
                                                 const char *what, pixel_span *out)
{
    const char *s = query.p + from;
    size_t n = to - from;
    bool esc = any_bit(m->esc, from, to);
    bool high = m->any_high && any_bit(m->high, from, to);
    if (esc) {
        size_t bad = 0;
        bool decoded_high = false;
        int rc = decode_masked(&ctx->arena, m, query.p, from, to, p->plus_as_space, out, &bad,
                               &decoded_high);
        if (rc < 0) {
            return rc;
        }
        if (rc > 0) {
            bad_escape(ctx, what, name_for_msg.p ? name_for_msg : (pixel_span){s, n}, s, n, bad);
            return 1;
        }
        high |= decoded_high;
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

/* One name=value pair: [at, end) of the query, its first '=' at eqi (end if
 * none).  0 fine, 1 quarantined, <0 failure. */
static int add_pair(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span query, const qmasks *m,
                    size_t at, size_t end, size_t eqi)
{
    pixel_record *r = &ctx->rec;
    if (r->nparams >= p->max_params) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "too_many_parameters", "query",
                                 "more than %zu query parameters", p->max_params);
    }
    pixel_param *pa = &r->params[r->nparams];
    int rc = 0;
    if (PIXEL_LIKELY(!(m->any_esc && any_bit(m->esc, at, end)) &&
                     !(m->any_high && any_bit(m->high, at, end)))) {
        /* plain ASCII: views into the line */
        pa->name = (pixel_span){query.p + at, eqi - at};
        pa->value = eqi < end ? (pixel_span){query.p + eqi + 1, end - eqi - 1}
                              : (pixel_span){query.p + end, 0};
    } else {
        rc = decode_part(ctx, p, query, m, at, eqi, (pixel_span){NULL, 0}, "parameter name",
                         &pa->name);
        if (rc == 0) {
            rc = eqi < end ? decode_part(ctx, p, query, m, eqi + 1, end, pa->name, "parameter",
                                         &pa->value)
                           : (pa->value = (pixel_span){query.p + end, 0}, 0);
        }
        if (rc != 0) {
            return rc;
        }
    }
    /* a name that is a view into the query may be loaded a word at a time */
    bool view = pa->name.p == query.p + at;
    pa->slot = slot_find(p, pa->name.p, pa->name.n, view ? query.p + query.n : NULL);
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
                    rc = pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "repeated_parameter", loc,
                                           "parameter \"%s\" appears more than once",
                                           p->slot_names[pa->slot]);
                    return rc < 0 ? rc : 1;
                }
            }
        }
    }
    r->nparams++;
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
    memset(r->slots, 0xff, p->nslots * sizeof(pixel_slot)); /* first = -1: absent (count unused) */
    r->nparams = 0;
    const size_t n = query.n;
    qmasks m;
    if (classify(&ctx->arena, (const unsigned char *)query.p, n, p->plus_as_space ? '+' : '%', &m) <
        0) {
        return PIXEL_ENOMEM;
    }
    /* The pair being cut starts at `at`; its first '=' is at eqi (n: none yet). */
    size_t at = 0, eqi = n;
    for (size_t wi = 0; wi <= n / 64; wi++) {
        uint64_t w = m.sep[wi];
        if (wi == n / 64) {
            w |= (uint64_t)1 << (n % 64); /* the end of the string acts as one more '&' */
        }
        for (; w; w &= w - 1) {
            size_t q = wi * 64 + (size_t)__builtin_ctzll(w);
            if (q < n && query.p[q] == '=') {
                eqi = eqi == n ? q : eqi; /* a later '=' belongs to the value */
                continue;
            }
            if (q > at) { /* "&&" and a trailing '&' make no pair */
                int rc = add_pair(p, ctx, query, &m, at, q, eqi < q ? eqi : q);
                if (rc != 0) {
                    return rc < 0 ? rc : 0;
                }
            }
            at = q + 1;
            eqi = n;
        }
    }
    return 0;
}
