/*
 * Built-in enrichers.  The `enrich:` list of the pipeline runs in order; each
 * entry is a one-key mapping naming the enricher, with its options:
 *
 *   - event_id: {into: event_id, from: query.eid}
 *   - ingest_time: {into: ingest_time}
 *   - pipeline: {into: pipeline}
 *   - anonymize_ip: {field: client.ip, ipv4_prefix: 24, ipv6_prefix: 48}
 *   - url: {from: page.url, into: page}
 *
 * Interceptor modules (`module:` entries) are loaded by module_loader.c.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "pipeline.h"
#include "pixel/module.h"
#include "simd.h"

/* The AVX2 paths are picked at run time; -DPIXEL_NO_AVX2 builds without
 * them (to test the SSE2 ones on a CPU that has AVX2). */
#if defined(PIXEL_SIMD_SSE2) && defined(__x86_64__) && defined(__GNUC__) && \
    !defined(PIXEL_NO_AVX2)
#define PIXEL_ENRICH_AVX2 1
#include <immintrin.h>
#endif

/*
 * Where a built-in's `into` is a root key that neither the map stage nor an
 * earlier built-in sets (decided at load), the member is new unless the
 * event was changed from outside (the public setters and
 * pixel_module_object_append, all that a module can change it with, mark an
 * object PIXEL_VALUE_EDITED) or the enrichers already ran on it.  The first
 * such enricher marks the root PIXEL_VALUE_ENRICHED; on an event marked
 * neither way it appends its member without a search and also marks the
 * root PIXEL_VALUE_FRESH_RUN, which lets the later ones do the same.
 * Otherwise every one of them looks its key up.
 */
enum { ENRICH_FRESH_NO, ENRICH_FRESH_FIRST, ENRICH_FRESH_LATER };

/* Sets e's target (e->into_path) to v. */
__attribute__((always_inline)) static inline int set_into(pixel_ctx *ctx, const pixel_enricher *e,
                                                          pixel_value *v)
{
    pixel_value *root = ctx->event;
    if (!v || !root || root->type != PIXEL_TYPE_OBJECT) {
        return PIXEL_ENOMEM;
    }
    bool append = false;
    if (e->into_fresh == ENRICH_FRESH_FIRST) {
        append = !(root->flags & (PIXEL_VALUE_EDITED | PIXEL_VALUE_ENRICHED));
        root->flags = (uint16_t)((root->flags & ~PIXEL_VALUE_FRESH_RUN) | PIXEL_VALUE_ENRICHED |
                                (append ? PIXEL_VALUE_FRESH_RUN : 0));
    } else if (e->into_fresh == ENRICH_FRESH_LATER) {
        append =
            (root->flags & (PIXEL_VALUE_FRESH_RUN | PIXEL_VALUE_EDITED)) == PIXEL_VALUE_FRESH_RUN;
    }
    if (append) {
        const struct pixel_path_seg *k = &e->into_path->seg[0];
        if (k->plain) {
            pixel__object_add_plain(root, k->key, k->len, v);
            v->flags |= e->into_key_flags;
        } else {
            pixel__object_add(root, k->key, k->len, v);
        }
        return 0;
    }
    return pixel__path_set(ctx, root, e->into_path, v) == 0 ? 0 : PIXEL_ENOMEM;
}

/*
 * The map stage keeps the objects it made (ctx->map_objs, by the pipeline's
 * objects index).  A built-in whose source's parent or target is one of them
 * (from_obj, into_obj: decided at load, none when a built-in that could
 * replace the object comes before) takes it from there instead of walking
 * the event from the root, while none of its parents was changed through
 * the public setters or by a module (PIXEL_VALUE_EDITED): only there can it
 * be replaced or removed.  Its own members are looked up by name each time,
 * so a change to them (which marks it) does not matter.
 */
__attribute__((always_inline)) static inline pixel_value *mapped_object(const pixel_ctx *ctx,
                                                                        int j)
{
    if (j <= 0 || !ctx->map_objs || !ctx->map_objs[j]) {
        return NULL;
    }
    const pixel_pipeline *p = ctx->pipeline;
    for (int k = p->objects[j].parent;; k = p->objects[k].parent) {
        if (ctx->map_objs[k]->flags & PIXEL_VALUE_EDITED) {
            return NULL;
        }
        if (k == 0) {
            return ctx->map_objs[j];
        }
    }
}

/* The member of a mapped object (an object, not NULL) named by a path's
 * last segment: pixel__object_getn in line. */
static inline pixel_value *leaf_member(const pixel_value *obj, const pixel_path *path)
{
    const struct pixel_path_seg *leaf = &path->seg[path->n - 1];
    for (pixel_value *m = obj->u.list.head; m; m = m->next) {
        if (m->klen == leaf->len && pixel__same_bytes(m->key, leaf->key, leaf->len)) {
            return m;
        }
    }
    return NULL;
}

static int fail(pixel_ctx *ctx, const pixel_enricher *e, const char *location, const char *msg)
{
    pixel_reason r = {
        .stage = PIXEL_STAGE_ENRICH,
        .family = "enrichment_failure",
        .code = "enrichment_failed",
        .message = pixel__arena_printf(&ctx->arena, "%s: %s", e->name, msg),
        .location = location,
        .source = e->name,
    };
    if (!r.message) {
        return PIXEL_ENOMEM;
    }
    pixel__ctx_add_reason(ctx, &r);
    return 1;
}

/* ---- event_id ---- */

/* When s is a UUID (8-4-4-4-12 hex digits, what pixel__is_uuid takes), its
 * canonical form (A-F lowered) into id[37] and true.  Three blocks of
 * sixteen (the last overlapping the second) are classified and lowered
 * from the same loads. */
static bool lower_uuid(char *id, const char *s, size_t n)
{
    if (n != 36) {
        return false;
    }
#ifdef PIXEL_SIMD_SSE2
    static const size_t at[3] = {0, 16, 20};
    uint64_t hex = 0, dash = 0;
    for (size_t k = 0; k < 3; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + at[k]));
        __m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));
        /* a range test in one signed compare: the byte less the range's
         * first, less 128, is below the range's size less 128 only inside */
        __m128i d = _mm_cmpgt_epi8(_mm_set1_epi8(10 - 128),
                                   _mm_add_epi8(v, _mm_set1_epi8((char)(-'0' - 128))));
        __m128i a = _mm_cmpgt_epi8(_mm_set1_epi8(6 - 128),
                                   _mm_add_epi8(l, _mm_set1_epi8((char)(-'a' - 128))));
        hex |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(d, a)) << at[k];
        dash |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')))
                << at[k];
        /* letters a-f/A-F: their lower-case form (digits and '-' as they are) */
        _mm_storeu_si128((__m128i *)(void *)(id + at[k]), _mm_or_si128(_mm_andnot_si128(a, v),
                                                                       _mm_and_si128(a, l)));
    }
    const uint64_t dashes = 1ull << 8 | 1ull << 13 | 1ull << 18 | 1ull << 23;
    if (dash != dashes || hex != (((1ull << 36) - 1) & ~dashes)) {
        return false;
    }
#else
    if (!pixel__is_uuid(s, n)) {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        id[i] = s[i] >= 'A' && s[i] <= 'F' ? (char)(s[i] + 32) : s[i];
    }
#endif
    id[36] = '\0';
    return true;
}

/* pixel__source_value with a query parameter's look-up in line. */
static inline pixel_span source_span(pixel_ctx *ctx, pixel_src_kind src, int index)
{
    if (src == SRC_QUERY) {
        const pixel_record *r = &ctx->rec;
        if (r->slots && index < (int)r->nslots && r->slots[index].first >= 0) {
            return r->params[r->slots[index].first].value;
        }
        return (pixel_span){NULL, 0};
    }
    return src != SRC_NONE ? pixel__source_value(ctx->pipeline, ctx, src, index)
                           : (pixel_span){NULL, 0};
}

static int run_event_id(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err)
{
    PIXEL_UNUSED(err);
    pixel_span client = source_span(ctx, e->src, e->src_index);
    /* the value and its text (36 characters and a NUL) in one allocation */
    pixel_value *v = pixel__arena_alloc(&ctx->arena, sizeof(pixel_value) + 40);
    if (!v) {
        return PIXEL_ENOMEM;
    }
    char *id = (char *)(v + 1);
    if (!client.p || !lower_uuid(id, client.p, client.n)) {
        /* Derived from the record after the syslog header: a relay that
         * re-frames the line, or a replay, gives the same ID. */
        pixel_span m = ctx->rec.syslog[PIXEL_S_MESSAGE];
        if (!m.p) {
            m = (pixel_span){ctx->line, ctx->line_len};
        }
        pixel__uuid_from_bytes(m.p, m.n, id);
    }
    /* a plain view of lower_uuid's or pixel__uuid_from_bytes's text */
    *v = (pixel_value){.type = PIXEL_TYPE_STRING,
                       .flags = PIXEL_VALUE_PLAIN_STR | PIXEL_VALUE_FMT_UUID,
                       .u.str = {id, 36}};
    return set_into(ctx, e, v);
}

/* ---- ingest_time, pipeline ---- */

static int run_ingest_time(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err)
{
    PIXEL_UNUSED(err);
    size_t n;
    const char *text; /* lives as long as the event */
    const pixel_time_memo *m = &ctx->time_memo;
    if (PIXEL_LIKELY(m->ingest_set && m->ingest_ms == ctx->ingest_ms)) {
        text = m->ingest; /* pixel__ingest_text's, for this ingest time already */
        n = m->ingest_len;
    } else {
        text = pixel__ingest_text(ctx, &n);
    }
    pixel_value *v = pixel__arena_alloc(&ctx->arena, sizeof(*v));
    if (!v) {
        return PIXEL_ENOMEM;
    }
    /* pixel__format_rfc3339's text: plain */
    *v = (pixel_value){.type = PIXEL_TYPE_STRING,
                       .flags = PIXEL_VALUE_PLAIN_STR | PIXEL_VALUE_FMT_DATE_TIME,
                       .u.str = {text, n}};
    return set_into(ctx, e, v);
}

/* The pipeline enricher's state: the object {name, version} laid out once
 * at load as a kept shape image (the module API's, include/pixel/module.h):
 * each line gets a copy of it in one block, and the stages after know the
 * copy as emitted (its JSON text written once, its validity remembered)
 * while nothing changed it. */
typedef struct pipeline_text {
    pixel_module_shape *shape;
    void *image;
} pipeline_text;

static void free_state(pixel_enricher *e)
{
    pixel__free(e->state);
    e->state = NULL;
}

static void free_pipeline_text(pixel_enricher *e)
{
    pipeline_text *t = e->state;
    if (t) {
        pixel_module_shape_free(t->shape);
        pixel__free(t->image);
    }
    free_state(e);
}

static int run_pipeline(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err)
{
    PIXEL_UNUSED(err);
    const pipeline_text *t = e->state;
    return set_into(ctx, e, pixel_module_shape_emit(ctx, t->shape, t->image));
}

/* ---- anonymize_ip ---- */

/* Up to 8 bytes of s copied over t (t has room for 8 past n): two
 * overlapping words, or byte by byte under 4. */
static inline void copy_upto15(unsigned char *t, const char *s, size_t n)
{
    if (n >= 8) {
        memcpy(t, s, 8);
        memcpy(t + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(t, s, 4);
        memcpy(t + n - 4, s + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            t[i] = (unsigned char)s[i];
        }
    }
}

/* Dotted-quad IPv4 as inet_pton takes it: four decimal octets, no leading
 * zeros, none over 255.  end[k]: the offset just past octet k.  The text
 * (7 to 15 bytes) is read from a NUL-padded copy of sixteen. */
#ifdef PIXEL_SIMD_SSE2
/* The bytes' classes as bit masks, one block for all: digits and dots
 * only, three dots, none first, last or next to another, runs of at most
 * three digits, no '0' starting an octet before another digit; a run of
 * three is at most "255" as text (first digit below '2', or '2' and then
 * below '5', or '5' and then at most '5'). */
static bool parse_ipv4(const char *s, size_t n, size_t end[4])
{
    if (n < 7 || n > 15) {
        return false;
    }
    unsigned char t[16] = {0};
    copy_upto15(t, s, n);
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)t);
    /* digits: a range test in one signed compare (see lower_uuid) */
    const unsigned dig = (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(
        _mm_set1_epi8(10 - 128), _mm_add_epi8(v, _mm_set1_epi8((char)(-'0' - 128)))));
    const unsigned dot = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
    const unsigned d1 = dot & (dot - 1), d2 = d1 & (d1 - 1);
    if ((dig | dot) != (1u << n) - 1 || !d2 || (d2 & (d2 - 1)) || (dot & (dot >> 1 | 1)) ||
        (dot >> (n - 1)) || (dig & dig >> 1 & dig >> 2 & dig >> 3)) {
        return false;
    }
    const unsigned starts = (dot << 1 | 1) & dig; /* the first digit of each octet */
    const unsigned zero = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('0')));
    const unsigned three = starts & dig >> 1 & dig >> 2;
    if (zero & starts & dig >> 1) {
        return false;
    }
    if (three) {
        const unsigned lt2 = (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(_mm_set1_epi8('2'), v));
        const unsigned lt5 = (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(_mm_set1_epi8('5'), v));
        const unsigned le5 = (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(_mm_set1_epi8('6'), v));
        const unsigned eq2 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('2')));
        const unsigned eq5 = le5 & ~lt5;
        const unsigned ok = lt2 | (eq2 & (lt5 >> 1 | (eq5 >> 1 & le5 >> 2)));
        if (three & ~ok) {
            return false;
        }
    }
    end[0] = (size_t)__builtin_ctz(dot);
    end[1] = (size_t)__builtin_ctz(d1);
    end[2] = (size_t)__builtin_ctz(d2);
    end[3] = n;
    return true;
}
#else
static bool parse_ipv4(const char *s, size_t n, size_t end[4])
{
    if (n < 7 || n > 15) {
        return false;
    }
    unsigned char t[24] = {0};
    copy_upto15(t, s, n);
    size_t i = 0;
    for (int k = 0;; k++) {
        unsigned v = (unsigned)t[i] - '0', d;
        if (v > 9) {
            return false;
        }
        if ((d = (unsigned)t[i + 1] - '0') > 9) {
            i += 1;
        } else if (v == 0) {
            return false; /* a leading zero */
        } else if (v = v * 10 + d, (d = (unsigned)t[i + 2] - '0') > 9) {
            i += 2;
        } else {
            v = v * 10 + d;
            if (v > 255 || (unsigned)t[i + 3] - '0' <= 9) {
                return false;
            }
            i += 3;
        }
        end[k] = i;
        if (k == 3) {
            return i == n;
        }
        if (t[i++] != '.') {
            return false;
        }
    }
}
#endif

/* One more than the value of a hex digit; 0 for other bytes. */
static const unsigned char hex_value1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};

/* The value of the len (1 to 4) hex digits at g, which has room for 4:
 * the four bytes' nibbles at once ('0'-'9' are their low nibble, letters
 * theirs plus 9), the first digit the most significant, the bytes past
 * the group shifted out. */
static inline unsigned hex_group(const unsigned char *g, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t x;
    memcpy(&x, g, 4);
    x = (x & 0x0F0F0F0Fu) + 9 * ((x >> 6) & 0x01010101u);
    x = __builtin_bswap32(x); /* the first digit in the top byte */
    unsigned v = (x >> 12 & 0xF000u) | (x >> 8 & 0x0F00u) | (x >> 4 & 0x00F0u) | (x & 0x000Fu);
    return v >> (4 * (4 - len));
#else
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        v = v << 4 | (unsigned)(hex_value1[g[i]] - 1);
    }
    return v;
#endif
}

/* The hex digits of v (1 to 0xFFFF), without leading zeros, at o, which
 * has room for 4; returns how many.  The four nibbles are spread one to a
 * byte, the first in the lowest, and made digits at once ('0' + nibble,
 * and 39 more for 10 to 15); the leading zeros are shifted out. */
static inline size_t put_hex_group(char *o, unsigned v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const size_t nd = (size_t)(35 - __builtin_clz(v)) / 4;
    uint32_t x = (v >> 12 & 0xFu) | (v >> 8 & 0xFu) << 8 | (v >> 4 & 0xFu) << 16 | (v & 0xFu) << 24;
    x += 0x30303030u + ((x + 0x76767676u) >> 7 & 0x01010101u) * 39;
    x >>= 8 * (4 - nd);
    memcpy(o, &x, 4);
    return nd;
#else
    char *p = o;
    for (int sh = v >= 0x1000 ? 12 : v >= 0x100 ? 8 : v >= 0x10 ? 4 : 0; sh >= 0; sh -= 4) {
        *p++ = "0123456789abcdef"[(v >> sh) & 15];
    }
    return (size_t)(p - o);
#endif
}

/* Set bits of x (inline: no popcount instruction is assumed). */
static inline unsigned bit_count(uint64_t x)
{
    x -= x >> 1 & 0x5555555555555555u;
    x = (x & 0x3333333333333333u) + (x >> 2 & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Fu;
    return (unsigned)((x * 0x0101010101010101u) >> 56);
}

/* What parse_ipv6 returns for text it does not take: -1 when the text
 * holds a '.' (an embedded dotted quad is left to inet_pton), else 0. */
static int ipv6_refused(const char *s, size_t n)
{
    return memchr(s, '.', n) ? -1 : 0;
}

/* format_ipv6_kept's text for the full form (eight groups, no "::", read
 * into t, with the colons' mask col) when the kept groups (1 to 6) are as
 * it writes them: none starts with '0' (a leading zero, or a group of
 * value 0), none has an upper-case letter.  Then the text is the address's
 * own up to the colon after them, and one more ':'.  Whether it was (the
 * text at out, room for 46, and its length in *len). */
static inline bool kept_text(const unsigned char *t, uint64_t col, int kept, char *out,
                             size_t *len)
{
    uint64_t after = col; /* the colons from the one after the kept groups on */
    for (int j = 1; j < kept; j++) {
        after &= after - 1;
    }
    const size_t end = (size_t)__builtin_ctzll(after); /* under 30 */
    const uint64_t before = ((uint64_t)1 << end) - 1;
    const uint64_t starts = (col << 1 | 1) & before;
    uint64_t zero = pixel__eq16(t, '0') | (uint64_t)pixel__eq16(t + 16, '0') << 16, upper = 0;
#ifdef PIXEL_SIMD_SSE2
    for (size_t i = 0; i < 32; i += 16) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(t + i));
        upper |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(
                     _mm_set1_epi8(6 - 128), _mm_add_epi8(v, _mm_set1_epi8((char)(-'A' - 128)))))
                 << i;
    }
#else
    for (size_t i = 0; i < end; i++) {
        upper |= (uint64_t)(t[i] >= 'A' && t[i] <= 'F') << i;
    }
#endif
    if ((starts & zero) || (upper & before)) {
        return false;
    }
    memcpy(out, t, 32);
    out[end + 1] = ':';
    out[end + 2] = '\0';
    *len = end + 2;
    return true;
}

/* IPv6 in hex groups, as inet_pton takes it: up to eight groups of one to
 * four hex digits, one "::" for a run of zero groups; the eight 16-bit
 * groups into w (those past the first prefix bits may be left 0).  The
 * text (under 64 bytes) is read from a NUL-padded copy, so no byte needs a
 * bound test.  Text with an embedded dotted quad returns -1: the caller
 * leaves it to inet_pton. */
static int parse_ipv6(const char *s, size_t n, unsigned w[8], int prefix, char *kept_out,
                      size_t *kept_len)
{
    unsigned char t[64 + 8];
    size_t i = 0, k = 0, gap = 9; /* gap: the group index "::" stands at; 9: none */
    if (n >= 15 && n <= 39) {
        /* The common full form, eight groups and no "::", is checked as bit
         * masks of its hex digits and colons; then only the groups the
         * prefix keeps are read. */
        memset(t, 0, 48);
        for (; i + 8 <= n; i += 8) {
            memcpy(t + i, s + i, 8);
        }
        memcpy(t + n - 8, s + n - 8, 8);
        uint64_t all = ((uint64_t)1 << n) - 1;
        uint64_t hex = pixel__hex16(t) | (uint64_t)pixel__hex16(t + 16) << 16 |
                       (uint64_t)pixel__hex16(t + 32) << 32;
        uint64_t col = pixel__eq16(t, ':') | (uint64_t)pixel__eq16(t + 16, ':') << 16 |
                       (uint64_t)pixel__eq16(t + 32, ':') << 32;
        if ((hex | col) == all && bit_count(col) == 7 && !(col & (col >> 1 | 1)) &&
            !(col >> (n - 1)) && !(hex & hex >> 1 & hex >> 2 & hex >> 3 & hex >> 4)) {
            if (kept_out && kept_text(t, col, prefix / 16, kept_out, kept_len)) {
                return 2;
            }
            size_t at = 0;
            int j = 0;
            for (; j < 8 && 16 * j < prefix; j++) {
                /* the group ends at the next ':' (the last one at n) */
                size_t e = j < 7 ? (size_t)__builtin_ctzll(col) : n;
                col &= col - 1;
                w[j] = hex_group(t + at, e - at);
                at = e + 1;
            }
            for (; j < 8; j++) {
                w[j] = 0;
            }
            return 1;
        }
        i = 0;
    }
    if (n >= 8) {
        for (; i + 8 <= n; i += 8) {
            memcpy(t + i, s + i, 8);
        }
        memcpy(t + n - 8, s + n - 8, 8);
    } else {
        copy_upto15(t, s, n);
    }
    memset(t + n, 0, 8);
    unsigned g[8];
    i = 0;
    if (t[0] == ':' && t[1] == ':') {
        gap = 0;
        i = 2;
    }
    while (i < n) {
        unsigned d = hex_value1[t[i]], v;
        if (!d || k == 8) {
            return ipv6_refused(s, n);
        }
        v = d - 1;
        if ((d = hex_value1[t[++i]])) {
            v = v << 4 | (d - 1);
            if ((d = hex_value1[t[++i]])) {
                v = v << 4 | (d - 1);
                if ((d = hex_value1[t[++i]])) {
                    v = v << 4 | (d - 1);
                    if (hex_value1[t[++i]]) {
                        return ipv6_refused(s, n); /* five digits */
                    }
                }
            }
        }
        g[k++] = v;
        if (i == n) {
            break;
        }
        if (t[i++] != ':' || i == n) {
            return ipv6_refused(s, n); /* not a separator, or a single trailing ':' */
        }
        if (t[i] == ':') {
            if (gap != 9) {
                return ipv6_refused(s, n); /* a second "::" */
            }
            gap = k;
            i++;
        }
    }
    if (gap == 9 ? k != 8 : k == 8) {
        return ipv6_refused(s, n);
    }
    size_t zeros = 8 - k; /* groups that "::" stands for */
    for (size_t j = 0; j < 8; j++) {
        w[j] = j < gap ? g[j] : j < gap + zeros ? 0 : g[j - zeros];
    }
    return 1;
}

/* Clears all but the first prefix bits of the eight groups. */
static void mask_groups(unsigned w[8], int prefix)
{
    for (int j = 0; j < 8; j++) {
        int keep = prefix - 16 * j;
        if (keep <= 0) {
            w[j] = 0;
        } else if (keep < 16) {
            w[j] &= 0xFFFFu << (16 - keep) & 0xFFFFu;
        }
    }
}

/* RFC 5952 text of an IPv6 address, the same as glibc's inet_ntop: lower
 * case, no leading zeros, the first longest run of two or more zero groups
 * as "::".  The IPv4-mapped and -compatible forms, which inet_ntop writes
 * with a dotted quad, are left to it. */
static size_t format_ipv6(const unsigned w[8], char *out)
{
    int best = -1, bestlen = 0;
    for (int j = 0, run = 0; j < 8; j++) {
        run = w[j] ? 0 : run + 1;
        if (run > bestlen) {
            bestlen = run;
            best = j - run + 1;
        }
    }
    if (bestlen < 2) {
        best = -1;
    }
    if (best == 0 && (bestlen == 6 || (bestlen == 5 && w[5] == 0xffff))) {
        unsigned char a[16];
        for (int j = 0; j < 8; j++) {
            a[2 * j] = (unsigned char)(w[j] >> 8);
            a[2 * j + 1] = (unsigned char)w[j];
        }
        inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN);
        return strlen(out);
    }
    char *o = out;
    for (int j = 0; j < 8; j++) {
        if (j == best) {
            *o++ = ':';
            if (j + bestlen == 8) {
                *o++ = ':';
            }
            j += bestlen - 1;
            continue;
        }
        if (j) {
            *o++ = ':';
        }
        unsigned v = w[j];
        for (int sh = v >= 0x1000 ? 12 : v >= 0x100 ? 8 : v >= 0x10 ? 4 : 0; sh >= 0; sh -= 4) {
            *o++ = "0123456789abcdef"[(v >> sh) & 15];
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* format_ipv6's text for the usual case of a prefix of whole groups, `kept`
 * of them (1 to 6), none of them zero: the zeros after them are the one
 * longest run, so the text is "g0:...:gk-1::" without a look for it. */
static size_t format_ipv6_kept(const unsigned w[8], int kept, char *out)
{
    char *o = out;
    for (int j = 0; j < kept; j++) {
        o += put_hex_group(o, w[j]);
        *o++ = ':';
    }
    *o++ = ':';
    *o = '\0';
    return (size_t)(o - out);
}

/* The anonymized text of a parsed IPv4 address (parse_ipv4's ends) into
 * out (room for 24). */
static size_t format_ipv4(const pixel_enricher *e, const char *s, const size_t end[4], char *out)
{
    if (e->v4_prefix % 8 == 0) {
        /* Whole octets kept: they are the text as it came (no leading zeros),
         * and each one cleared is ".0". */
        int kept = e->v4_prefix / 8;
        size_t len = 1;
        if (kept) {
            len = end[kept - 1];
            copy_upto15((unsigned char *)out, s, len);
        } else {
            out[0] = '0';
            kept = 1;
        }
        memcpy(out + len, ".0.0.0", 7); /* what is needed of it, and more */
        len += 2 * (size_t)(4 - kept);
        out[len] = '\0';
        return len;
    }
    unsigned bits = 0;
    for (size_t k = 0, i = 0; k < 4; k++, i++) { /* the octets' values, from the text */
        unsigned octet = 0;
        for (; i < end[k]; i++) {
            octet = octet * 10 + (unsigned)(s[i] - '0');
        }
        bits = bits << 8 | octet;
    }
    bits &= e->v4_prefix ? 0xFFFFFFFFu << (32 - e->v4_prefix) : 0;
    char *o = out;
    for (int i = 0; i < 4; i++) {
        unsigned octet = bits >> (24 - 8 * i) & 0xFF;
        if (octet >= 100) {
            *o++ = (char)('0' + octet / 100);
        }
        if (octet >= 10) {
            *o++ = (char)('0' + octet / 10 % 10);
        }
        *o++ = (char)('0' + octet % 10);
        *o++ = '.';
    }
    size_t len = (size_t)(o - out) - 1;
    out[len] = '\0';
    return len;
}

static int run_anonymize_ip(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err)
{
    PIXEL_UNUSED(err);
    pixel_value *parent = mapped_object(ctx, e->from_obj), *v;
    if (parent) {
        v = leaf_member(parent, e->from_path);
    } else {
        v = pixel__path_get(ctx->event, e->from_path);
    }
    if (!v) {
        return 0; /* nothing to anonymize */
    }
    size_t n = v->type == PIXEL_TYPE_STRING ? v->u.str.len : 0;
    const char *s = v->type == PIXEL_TYPE_STRING ? v->u.str.s : NULL;
    size_t ends[4];
    char *out;
    size_t len = 0;
    uint16_t fmt = 0;
    if (s && parse_ipv4(s, n, ends)) {
        if (!(out = pixel__arena_alloc(&ctx->arena, 24))) {
            return PIXEL_ENOMEM;
        }
        len = format_ipv4(e, s, ends, out);
        fmt = PIXEL_VALUE_FMT_IPV4; /* octets of 1-3 digits, no leading zero, at most 255 */
    } else {
        if (!(out = pixel__arena_alloc(&ctx->arena, INET6_ADDRSTRLEN))) {
            return PIXEL_ENOMEM;
        }
        if (!s || n >= 64) {
            return fail(ctx, e, e->from, "not an IP address");
        }
        unsigned w[8];
        int kept = e->v6_prefix / 16;
        const bool whole = e->v6_prefix % 16 == 0 && kept >= 1 && kept <= 6;
        int ok = parse_ipv6(s, n, w, e->v6_prefix, whole ? out : NULL, &len);
        if (ok < 0) { /* an embedded dotted quad: inet_pton's rules */
            unsigned char a[16];
            char text[64];
            if (memchr(s, '\0', n)) { /* a NUL (from %00) ends no address */
                return fail(ctx, e, e->from, "not an IP address");
            }
            memcpy(text, s, n);
            text[n] = '\0';
            ok = inet_pton(AF_INET6, text, a);
            for (int j = 0; ok == 1 && j < 8; j++) {
                w[j] = (unsigned)a[2 * j] << 8 | a[2 * j + 1];
            }
        }
        if (ok == 2) {
            /* the text written already */
        } else if (ok != 1) {
            return fail(ctx, e, e->from, "not an IP address");
        } else if (whole && w[0] && (kept < 2 || w[1]) &&
            (kept < 3 || w[2]) && (kept < 4 || w[3]) && (kept < 5 || w[4]) && (kept < 6 || w[5])) {
            len = format_ipv6_kept(w, kept, out);
        } else {
            mask_groups(w, e->v6_prefix);
            len = format_ipv6(w, out);
        }
        /* RFC 5952 text (hex groups, "::", a dotted quad only in the mapped
           and compatible forms): what the ipv6 format accepts */
        fmt = PIXEL_VALUE_FMT_IPV6;
    }
    pixel__image_edit(v, NULL);
    v->u.str.s = out; /* v is the event's own value: change it in place */
    v->u.str.len = len;
    /* hex digits, '.' and ':'; no longer what a format flag said, but the address's own */
    v->flags = (uint16_t)((v->flags & ~PIXEL_VALUE_FMT_MASK) | PIXEL_VALUE_PLAIN_STR | fmt);
    return 0;
}

#ifdef PIXEL_ENRICH_AVX2
/* text_is_plain for n >= 32 on CPUs with AVX2 (asked at run time): blocks
 * of 32, the last one overlapping the one before. */
__attribute__((target("avx2"))) static bool text_is_plain_avx2(const unsigned char *p, size_t n)
{
    __m256i any = _mm256_setzero_si256();
    for (size_t i = 0;; i += 32) {
        if (i + 32 > n) {
            i = n - 32;
        }
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + i));
        __m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1F)), v);
        __m256i q = _mm256_cmpeq_epi8(v, _mm256_set1_epi8('"'));
        __m256i bs = _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\'));
        __m256i del = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7F));
        any = _mm256_or_si256(any, _mm256_or_si256(_mm256_or_si256(ctl, q),
                                                   _mm256_or_si256(bs, del)));
        if (i + 32 >= n) {
            return _mm256_movemask_epi8(any) == 0;
        }
    }
}
#endif

/* Whether n bytes need no JSON escaping (the serializer's test, once for a
 * whole URL so that the parts taken from it need none). */
static bool text_is_plain(const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
#ifdef PIXEL_ENRICH_AVX2
    if (n >= 32 && __builtin_cpu_supports("avx2")) {
        return text_is_plain_avx2(p, n);
    }
#endif
    if (n < 4) {
        for (size_t i = 0; i < n; i++) {
            if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || p[i] == 0x7f) {
                return false;
            }
        }
        return true;
    }
    if (n <= 16) {
        return pixel__json_special_short(p, n) == 0;
    }
    unsigned m = pixel__json_special16(p + n - 16);
    for (size_t i = 0; i + 16 <= n && !m; i += 16) {
        m = pixel__json_special16(p + i);
    }
    return m == 0;
}

/* A part of the URL: a view into it, flagged plain when the URL is. */
static pixel_value *part_value(pixel_ctx *ctx, const char *s, size_t n, uint16_t flags)
{
    pixel_value *v = pixel__value_string_view(&ctx->arena, s, n);
    if (v) {
        v->flags = flags;
    }
    return v;
}

/* key: a string literal, plain, the same as the pipeline's framed name lk
 * (PIXEL_LK_*).  `fresh`: the target has no member of that name (checked
 * once for all parts), so the part is appended without a search, with the
 * framed name. */
#define add_part(ctx, o, fresh, lk, key, s, n, flags)                                              \
    add_part_n(ctx, o, fresh, lk, key, sizeof(key) - 1, s, n, flags)
__attribute__((always_inline)) static inline int add_part_n(pixel_ctx *ctx, pixel_value *o,
                                                            bool fresh, int lk, const char *key,
                                                            size_t klen, const char *s, size_t n,
                                                            uint16_t flags)
{
    pixel_value *v = part_value(ctx, s, n, flags);
    if (!v) {
        return PIXEL_ENOMEM;
    }
    if (fresh) {
        pixel__object_add_plain(o, ctx->pipeline->lit_key[lk], klen, v);
        v->flags |= PIXEL_VALUE_FRAMED_KEY;
        return 0;
    }
    return pixel__object_set_plain(o, key, klen, v) < 0 ? PIXEL_ENOMEM : 0;
}

/* The first byte of [p, end) equal to a or b (neither of them NUL), or
 * end.  As pixel__find3, but the bytes after the last whole block are
 * looked at as one more block: the sixteen that end at end (the bytes seen
 * already masked off), or, when there are fewer than sixteen in all, a
 * zero-padded copy of them. */
static inline const char *find_either(const char *p, const char *end, char a, char b)
{
#ifdef PIXEL_SIMD_SSE2
    const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b);
    const size_t n = (size_t)(end - p);
    if (n < 16) {
        unsigned char t[16] = {0};
        copy_upto15(t, p, n);
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)t);
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)));
        return m ? p + __builtin_ctz(m) : end;
    }
    for (; end - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)));
        if (m) {
            return p + __builtin_ctz(m);
        }
    }
    if (p < end) {
        const char *last = end - 16;
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)last);
        unsigned m = (unsigned)_mm_movemask_epi8(
                         _mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb))) >>
                     (p - last);
        return m ? p + __builtin_ctz(m) : end;
    }
    return end;
#else
    return pixel__find3(p, end, a, b, b);
#endif
}

/* The first ':' of the n bytes at s, or NULL: a scheme is short, so the
 * first block is looked at in line, the rest (if need be) by memchr. */
static inline const char *find_colon(const char *s, size_t n)
{
    if (n >= 16) {
        unsigned m = pixel__eq16((const unsigned char *)s, ':');
        return m ? s + __builtin_ctz(m) : memchr(s + 16, ':', n - 16);
    }
    return memchr(s, ':', n);
}

/* The end of the host that starts at *h (the first '/', '?' or '#' after
 * it, or end); *h moves past userinfo, up to the first '@' before that.
 * One scan: the first of the four, and past a '@' the first of three. */
static inline const char *host_end(const char **h, const char *end)
{
    const char *p = *h;
#ifdef PIXEL_SIMD_SSE2
    for (; end - p >= 16; p += 16) {
        const unsigned char *b = (const unsigned char *)p;
        unsigned m = pixel__eq16(b, '/') | pixel__eq16(b, '?') | pixel__eq16(b, '#') |
                     pixel__eq16(b, '@');
        if (m) {
            p += __builtin_ctz(m);
            break;
        }
    }
#endif
    for (; p < end && *p != '/' && *p != '?' && *p != '#' && *p != '@'; p++) {
    }
    if (p < end && *p == '@') {
        *h = p + 1; /* drop userinfo */
        p = pixel__find3(p + 1, end, '/', '?', '#');
    }
    return p;
}

/* Whether the n bytes at k name a member the url enricher adds. */
static bool is_part_name(const char *k, size_t n)
{
    switch (n) {
        case 4:
            return memcmp(k, "host", 4) == 0 || memcmp(k, "path", 4) == 0;
        case 5:
            return memcmp(k, "query", 5) == 0;
        case 6:
            return memcmp(k, "scheme", 6) == 0;
        case 8:
            return memcmp(k, "fragment", 8) == 0 || memcmp(k, "campaign", 8) == 0;
        default:
            return false;
    }
}

/* Whether object o has a member named like one the url enricher adds. */
static bool has_part_member(const pixel_value *o)
{
    for (const pixel_value *m = o->u.list.head; m; m = m->next) {
        if (is_part_name(m->key, m->klen)) {
            return true;
        }
    }
    return false;
}

/* The utm_ parameters the campaign takes: the name after "utm_" and the
 * campaign's member it sets. */
static const struct {
    const char *key, *name;
    uint8_t klen, nlen;
} campaign_member[] = {{"source", "source", 6, 6},
                       {"medium", "medium", 6, 6},
                       {"campaign", "name", 8, 4},
                       {"term", "term", 4, 4},
                       {"content", "content", 7, 7}};

/* The campaign_member index of the parameter of len bytes at s, or -1: a
 * parameter "utm_NAME=..." with one of the five names.  The name has no
 * '=': the first '=' of the parameter is the one just past it, which is
 * where it is looked for. */
static inline int campaign_index(const char *s, size_t len)
{
    if (len < 9 || memcmp(s, "utm_", 4) != 0) {
        return -1;
    }
    const char *k = s + 4;
    int i;
    switch (k[0]) {
        case 's':
            i = 0;
            break;
        case 'm':
            i = 1;
            break;
        case 'c':
            i = k[1] == 'a' ? 2 : 4;
            break;
        case 't':
            i = 3;
            break;
        default:
            return -1;
    }
    const size_t kl = campaign_member[i].klen;
    return len - 4 > kl && k[kl] == '=' && pixel__same_bytes(k, campaign_member[i].key, kl)
               ? i
               : -1;
}

/* Whether the n bytes at p are what percent-decoding them gives, all
 * ASCII: no '%', no '+' (a space) and no byte >= 0x80.  One block of
 * sixteen at a time (under sixteen: a zero-padded copy); a byte's mask bit
 * is its high bit or its being '%' or '+'. */
static inline bool decoded_as_is(const char *p, size_t n)
{
#ifdef PIXEL_SIMD_SSE2
    unsigned char t[16] = {0};
    const unsigned char *b = (const unsigned char *)p;
    size_t i = 0;
    if (n < 16) {
        copy_upto15(t, p, n);
        b = t;
        n = 16;
    }
    unsigned m = 0;
    for (;; i += 16) {
        if (i + 16 > n) {
            i = n - 16; /* the last block, overlapping the one before */
        }
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        m |= (unsigned)_mm_movemask_epi8(_mm_or_si128(
            v, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('%')),
                            _mm_cmpeq_epi8(v, _mm_set1_epi8('+')))));
        if (i + 16 >= n) {
            return m == 0;
        }
    }
#else
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' || p[i] == '+' || (unsigned char)p[i] >= 0x80) {
            return false;
        }
    }
    return true;
#endif
}

static int add_campaign(pixel_ctx *ctx, pixel_value *target, bool fresh, const char *q, size_t qn)
{
    /* utm_X -> campaign.Y */
    pixel_value *camp = NULL;
    unsigned added = 0; /* the members camp has, by campaign_member index */
    const char *s = q, *end = q + qn;
    while (s < end) {
        const char *pe = find_either(s, end, '&', '&');
        const int k = campaign_index(s, (size_t)(pe - s));
        if (k >= 0) {
            const char *eq = s + 4 + campaign_member[k].klen;
            pixel_span dec = {eq + 1, (size_t)(pe - eq - 1)};
            size_t bad;
            bool high = false;
            int rc = 0;
            if (!decoded_as_is(dec.p, dec.n)) {
                rc = pixel__percent_decode(&ctx->arena, dec.p, dec.n, true, &dec, &bad, &high);
                if (rc < 0) {
                    return rc;
                }
            }
            /* only a byte >= 0x80 can make the text other than UTF-8 */
            if (rc > 0 || (high && pixel__utf8_check(dec.p, dec.n) != dec.n)) {
                dec = (pixel_span){eq + 1, (size_t)(pe - eq - 1)}; /* keep it as sent */
            }
            if (!camp && !(camp = pixel__value_new(&ctx->arena, PIXEL_TYPE_OBJECT))) {
                return PIXEL_ENOMEM;
            }
            /* a name met before is replaced (the last one counts); a new
             * one is appended without a search */
            pixel_value *v = part_value(ctx, dec.p, dec.n, 0);
            if (!v) {
                return PIXEL_ENOMEM;
            }
            const char *name = campaign_member[k].name;
            const size_t nlen = campaign_member[k].nlen;
            if (!(added & 1u << k)) {
                pixel__object_add_plain(camp, name, nlen, v);
                added |= 1u << k;
            } else if (pixel__object_set_plain(camp, name, nlen, v) < 0) {
                return PIXEL_ENOMEM;
            }
        }
        s = pe + 1;
    }
    if (!camp) {
        return 0;
    }
    if (fresh) {
        pixel__object_add_plain(target, ctx->pipeline->lit_key[PIXEL_LK_CAMPAIGN], 8, camp);
        camp->flags |= PIXEL_VALUE_FRAMED_KEY;
        return 0;
    }
    return pixel__object_set_plain(target, "campaign", 8, camp) < 0 ? PIXEL_ENOMEM : 0;
}

/* The parts up to the query of the URL at s, appended to target, which has
 * no member of their names (`fresh`): the values of scheme, host, path and
 * the query (when q) in one allocation, each written whole with its framed
 * name, as add_part would make them. */
static int add_fresh_parts(pixel_ctx *ctx, pixel_value *target, const char *s, const char *colon,
                           const char *h, const char *path, const char *path_end, const char *q,
                           const char *q_end, uint16_t flags)
{
    const char *const *lk = ctx->pipeline->lit_key;
    const size_t count = q ? 4 : 3;
    pixel_value *v = pixel__arena_alloc(&ctx->arena, count * sizeof(pixel_value));
    if (!v) {
        return PIXEL_ENOMEM;
    }
    const uint16_t f = (uint16_t)(flags | PIXEL_VALUE_PLAIN_KEY | PIXEL_VALUE_FRAMED_KEY);
    v[0] = (pixel_value){.type = PIXEL_TYPE_STRING, .flags = f, .klen = 6,
                         .key = lk[PIXEL_LK_SCHEME], .next = &v[1],
                         .u.str = {s, (size_t)(colon - s)}};
    v[1] = (pixel_value){.type = PIXEL_TYPE_STRING, .flags = f, .klen = 4,
                         .key = lk[PIXEL_LK_HOST], .next = &v[2],
                         .u.str = {h, (size_t)(path - h)}};
    v[2] = (pixel_value){.type = PIXEL_TYPE_STRING, .flags = f, .klen = 4,
                         .key = lk[PIXEL_LK_PATH],
                         .u.str = {path, (size_t)(path_end - path)}};
    if (q) {
        v[2].next = &v[3];
        v[3] = (pixel_value){.type = PIXEL_TYPE_STRING, .flags = f, .klen = 5,
                             .key = lk[PIXEL_LK_QUERY],
                             .u.str = {q, (size_t)(q_end - q)}};
    }
    /* the chain v[0] .. v[count - 1] as the target's last members */
    pixel__list_link(target, v, &v[count - 1], count);
    return 0;
}

/* Whether `child` names a member of what `parent` names ("page.url", "page"). */
static bool path_is_child(const pixel_path *parent, const pixel_path *child)
{
    if (child->n != parent->n + 1) {
        return false;
    }
    for (size_t k = 0; k < parent->n; k++) {
        if (child->seg[k].len != parent->seg[k].len ||
            !pixel__same_bytes(child->seg[k].key, parent->seg[k].key, parent->seg[k].len)) {
            return false;
        }
    }
    return true;
}

/* The url enricher's state, decided at load: whether the source is a member
 * of the target (path_is_child), and whether the target, when it is the map
 * stage's object (into_obj), is made with no member named like a part:
 * neither the map stage nor a built-in before this one sets one
 * (parts_absent).  Then, on a line where the object was not changed from
 * outside (PIXEL_VALUE_EDITED) and this enricher did not add its parts to it
 * already (PIXEL_VALUE_URL_PARTS: pixel_enrich() run again), the parts are
 * appended without a search. */
typedef struct url_state {
    bool target_known, parts_absent;
} url_state;

static int run_url(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err)
{
    PIXEL_UNUSED(err);
    /* The usual setup reads page.url into page: the target is looked up
     * once, and the source in it. */
    pixel_value *target = NULL, *src;
    const url_state *st = e->state;
    const bool target_known = st->target_known;
    bool mapped = false; /* target is the map stage's object */
    if (target_known) {
        target = mapped_object(ctx, e->into_obj);
        mapped = target != NULL;
        if (!target) {
            target = pixel__path_get(ctx->event, e->into_path);
        }
        src = target && target->type == PIXEL_TYPE_OBJECT ? leaf_member(target, e->from_path)
                                                          : NULL;
    } else {
        src = pixel__path_get(ctx->event, e->from_path);
    }
    if (!src || src->type != PIXEL_TYPE_STRING) {
        return 0;
    }
    const char *s = src->u.str.s, *end = s + src->u.str.len, *p = s;
    size_t n = src->u.str.len;
    const char *colon = find_colon(s, n);
    if (!colon || colon == s || end - colon < 3 || colon[1] != '/' || colon[2] != '/') {
        return 0; /* not an absolute URL: nothing to decompose (the schema judges it) */
    }
    if (!target_known) {
        target = pixel__path_get(ctx->event, e->into_path);
    }
    bool fresh = false;
    if (!target) {
        target = pixel__value_new(&ctx->arena, PIXEL_TYPE_OBJECT);
        if (set_into(ctx, e, target) < 0) {
            return PIXEL_ENOMEM;
        }
        fresh = true;
    }
    if (target->type != PIXEL_TYPE_OBJECT) {
        return fail(ctx, e, e->into, "the target is not an object");
    }
    if (!fresh) {
        fresh = (mapped && st->parts_absent &&
                 !(target->flags & (PIXEL_VALUE_EDITED | PIXEL_VALUE_URL_PARTS))) ||
                !has_part_member(target);
    }
    pixel__image_edit(target, src); /* its members added, src's flags below */
    target->flags |= PIXEL_VALUE_URL_PARTS;
    /* Every part is a piece of the URL: when it needs no escaping, neither do they. */
    uint16_t flags = 0;
    if (text_is_plain(s, n)) {
        flags = PIXEL_VALUE_PLAIN_STR;
        src->flags |= PIXEL_VALUE_PLAIN_STR;
    }
    const char *h = colon + 3;
    p = host_end(&h, end);
    const char *path = p;
    p = find_either(p, end, '?', '#');
    const char *path_end = p, *q = NULL;
    if (p < end && *p == '?') {
        q = ++p;
        p = find_either(p, end, '#', '#');
    }
    if (fresh) {
        if (add_fresh_parts(ctx, target, s, colon, h, path, path_end, q, p, flags) < 0 ||
            (q && add_campaign(ctx, target, true, q, (size_t)(p - q)) < 0)) {
            return PIXEL_ENOMEM;
        }
    } else if (add_part(ctx, target, false, PIXEL_LK_SCHEME, "scheme", s, (size_t)(colon - s),
                        flags) < 0 ||
               add_part(ctx, target, false, PIXEL_LK_HOST, "host", h, (size_t)(path - h), flags) <
                   0 ||
               add_part(ctx, target, false, PIXEL_LK_PATH, "path", path,
                        (size_t)(path_end - path), flags) < 0 ||
               (q && (add_part(ctx, target, false, PIXEL_LK_QUERY, "query", q, (size_t)(p - q),
                               flags) < 0 ||
                      add_campaign(ctx, target, false, q, (size_t)(p - q)) < 0))) {
        return PIXEL_ENOMEM;
    }
    if (p < end && *p == '#' &&
        add_part(ctx, target, fresh, PIXEL_LK_FRAGMENT, "fragment", p + 1, (size_t)(end - p - 1), flags) < 0) {
        return PIXEL_ENOMEM;
    }
    return 0;
}

/* ---- loading ---------------------------------------------------------------- */

static const struct {
    const char *name;
    pixel_enrich_fn fn;
    const char *default_into, *default_from;
} builtins[] = {
    {"event_id", run_event_id, "event_id", NULL},
    {"ingest_time", run_ingest_time, "ingest_time", NULL},
    {"pipeline", run_pipeline, "pipeline", NULL},
    {"anonymize_ip", run_anonymize_ip, NULL, "client.ip"},
    {"url", run_url, "page", "page.url"},
};

static int load_one(pixel_pipeline *p, pixel_cfg *c, yaml_node_t *item, pixel_enricher *e)
{
    if (item->type != YAML_MAPPING_NODE ||
        item->data.mapping.pairs.top - item->data.mapping.pairs.start != 1) {
        return pixel__cfg_fail(c, item,
                               "each enrich entry is a one-key mapping, e.g. "
                               "'- event_id: {into: event_id}'");
    }
    yaml_node_pair_t *pair = item->data.mapping.pairs.start;
    yaml_node_t *kn = pixel__cfg_node(c, pair->key), *opts = pixel__cfg_node(c, pair->value);
    const char *name = pixel__cfg_scalar(kn);
    if (name && strcmp(name, "module") == 0) {
        return pixel__module_enricher_load(p, c, opts, e);
    }
    size_t i = 0;
    while (name && i < PIXEL_ARRAY_LEN(builtins) && strcmp(builtins[i].name, name) != 0) {
        i++;
    }
    if (!name || i == PIXEL_ARRAY_LEN(builtins)) {
        return pixel__cfg_fail(c, kn,
                               "unknown enricher '%s' (expected event_id, ingest_time, pipeline, "
                               "anonymize_ip, url, or module)",
                               name ? name : "?");
    }
    if (opts->type == YAML_SCALAR_NODE && pixel__cfg_scalar(opts)[0] == '\0') {
        opts = NULL; /* "- pipeline:" with no options */
    }
    if (opts && pixel__cfg_expect(c, opts, YAML_MAPPING_NODE, "a mapping of options") < 0) {
        return PIXEL_ECONFIG;
    }
    static const char *const known[] = {"into",        "from",        "field",
                                        "ipv4_prefix", "ipv6_prefix", NULL};
    const char *into = builtins[i].default_into, *from = builtins[i].default_from;
    long long v4 = 24, v6 = 48;
    if (opts && (pixel__cfg_only_keys(c, opts, known) < 0 ||
                 pixel__cfg_string(c, opts, "into", &into) < 0 ||
                 pixel__cfg_string(c, opts, "from", &from) < 0 ||
                 pixel__cfg_string(c, opts, "field", &from) < 0 ||
                 pixel__cfg_int(c, opts, "ipv4_prefix", 0, 32, &v4) < 0 ||
                 pixel__cfg_int(c, opts, "ipv6_prefix", 0, 128, &v6) < 0)) {
        return PIXEL_ECONFIG;
    }
    e->name = builtins[i].name;
    e->fn = builtins[i].fn;
    e->v4_prefix = (int)v4;
    e->v6_prefix = (int)v6;
    e->src = SRC_NONE;
    if (into && !(e->into = pixel__strdup(into))) {
        return PIXEL_ENOMEM;
    }
    if (from && !(e->from = pixel__strdup(from))) {
        return PIXEL_ENOMEM;
    }
    if ((into && !(e->into_path = pixel__path_new(into))) ||
        (from && e->fn != run_event_id && !(e->from_path = pixel__path_new(from)))) {
        return PIXEL_ENOMEM;
    }
    if (e->fn == run_event_id && from &&
        pixel__source_parse(p, c, pixel__cfg_get(c, opts, "from"), from, &e->src, &e->src_index) <
            0) {
        return PIXEL_ECONFIG;
    }
    if (e->fn == run_url) {
        url_state *t = pixel__malloc(sizeof(*t));
        if (!t) {
            return PIXEL_ENOMEM;
        }
        t->target_known = path_is_child(e->into_path, e->from_path);
        t->parts_absent = false; /* set with into_obj, below */
        e->state = t;
        e->free_fn = free_state;
    }
    if (e->fn == run_pipeline) {
        pipeline_text *t = pixel__calloc(1, sizeof(*t));
        if (!t) {
            return PIXEL_ENOMEM;
        }
        e->state = t;
        e->free_fn = free_pipeline_text;
        static const char *const members[] = {"name", "version"};
        const pixel_module_str vals[] = {{p->name, strlen(p->name)},
                                         {p->version, strlen(p->version)}};
        size_t size;
        if (!(t->shape = pixel_module_shape_new(members, 2)) ||
            !(t->image = pixel__malloc(size = pixel_module_shape_image_size_for(t->shape, vals))) ||
            pixel_module_shape_image_kept(t->shape, vals, t->image, size) < 0) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

static bool is_builtin(const pixel_enricher *e)
{
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(builtins); i++) {
        if (e->fn == builtins[i].fn) {
            return true;
        }
    }
    return false;
}

/* Whether the root key `top` is set by the map stage or by an enricher before e. */
static bool root_key_taken(const pixel_pipeline *p, const pixel_enricher *e,
                           const struct pixel_path_seg *top)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const pixel_field *f = &p->fields[i];
        if (f->parent == 0 && f->leaflen == top->len && memcmp(f->leaf, top->key, top->len) == 0) {
            return true;
        }
    }
    for (size_t i = 1; i < p->nobjects; i++) {
        const pixel_objnode *o = &p->objects[i];
        if (o->parent == 0 && o->keylen == top->len && memcmp(o->key, top->key, top->len) == 0) {
            return true;
        }
    }
    for (const pixel_enricher *x = p->enrichers; x < e; x++) {
        if (x->into_path && x->into_path->seg[0].len == top->len &&
            memcmp(x->into_path->seg[0].key, top->key, top->len) == 0) {
            return true;
        }
    }
    return false;
}

/* The ENRICH_FRESH_* of each built-in (see set_into).  A module before it
 * changes the event only through the public setters and
 * pixel_module_object_append, which mark what they change EDITED: that is
 * judged per line. */
static void mark_fresh_targets(pixel_pipeline *p)
{
    bool first = true;
    for (size_t i = 0; i < p->nenrichers; i++) {
        pixel_enricher *e = &p->enrichers[i];
        if (!is_builtin(e)) {
            continue;
        }
        if (e->into_path && e->into_path->n == 1 && !root_key_taken(p, e, &e->into_path->seg[0])) {
            e->into_fresh = first ? ENRICH_FRESH_FIRST : ENRICH_FRESH_LATER;
            first = false;
        }
    }
}

/* The pipeline->objects index of the first n segments of path, 0 for none
 * (or for the root), and 0 too when a built-in before e may replace that
 * object or one of its parents (its target is a prefix of the path).  What a
 * module before it changes is marked EDITED (mapped_object). */
static int mapped_index(const pixel_pipeline *p, const pixel_enricher *e, const pixel_path *path,
                        size_t n)
{
    int j = 0;
    for (size_t k = 0; k < n; k++) {
        int found = 0;
        for (size_t i = 1; i < p->nobjects && !found; i++) {
            const pixel_objnode *o = &p->objects[i];
            if (o->parent == j && o->keylen == path->seg[k].len &&
                memcmp(o->key, path->seg[k].key, o->keylen) == 0) {
                found = (int)i;
            }
        }
        if (!found) {
            return 0;
        }
        j = found;
    }
    for (const pixel_enricher *x = p->enrichers; x < e; x++) {
        if (!is_builtin(x)) {
            continue;
        }
        const pixel_path *t = x->into_path;
        if (t && t->n <= n) {
            size_t k = 0;
            while (k < t->n && t->seg[k].len == path->seg[k].len &&
                   memcmp(t->seg[k].key, path->seg[k].key, t->seg[k].len) == 0) {
                k++;
            }
            if (k == t->n) {
                return 0;
            }
        }
    }
    return j;
}

/* Whether the map stage or a built-in before e sets a member named like a
 * url part in e's target (the pipeline->objects entry into_obj). */
static bool part_set_before(const pixel_pipeline *p, const pixel_enricher *e)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const pixel_field *f = &p->fields[i];
        if (f->parent == e->into_obj && is_part_name(f->leaf, f->leaflen)) {
            return true;
        }
    }
    for (size_t i = 1; i < p->nobjects; i++) {
        const pixel_objnode *o = &p->objects[i];
        if (o->parent == e->into_obj && is_part_name(o->key, o->keylen)) {
            return true;
        }
    }
    const pixel_path *t = e->into_path;
    for (const pixel_enricher *x = p->enrichers; x < e; x++) {
        const pixel_path *xp = x->into_path;
        if (!is_builtin(x) || !xp || xp->n <= t->n) {
            continue;
        }
        size_t k = 0;
        while (k < t->n && xp->seg[k].len == t->seg[k].len &&
               memcmp(xp->seg[k].key, t->seg[k].key, t->seg[k].len) == 0) {
            k++;
        }
        if (k == t->n && is_part_name(xp->seg[k].key, xp->seg[k].len)) {
            return true;
        }
    }
    return false;
}

int pixel__enrich_load(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *seq)
{
    if (!seq) {
        return 0;
    }
    if (pixel__cfg_expect(c, seq, YAML_SEQUENCE_NODE, "a list of enrichers") < 0) {
        return PIXEL_ECONFIG;
    }
    size_t count = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    p->enrichers = pixel__calloc(count ? count : 1, sizeof(pixel_enricher));
    if (!p->enrichers) {
        return PIXEL_ENOMEM;
    }
    PIXEL_CFG_ITEMS(c, seq, item)
    {
        int rc = load_one(p, c, pixel__cfg_node(c, *item), &p->enrichers[p->nenrichers]);
        p->nenrichers++;
        if (rc < 0) {
            return rc;
        }
    }
    mark_fresh_targets(p);
    for (size_t i = 0; i < p->nenrichers; i++) {
        pixel_enricher *e = &p->enrichers[i];
        if (!is_builtin(e)) {
            continue;
        }
        if (e->from_path && e->from_path->n > 1) {
            e->from_obj = mapped_index(p, e, e->from_path, e->from_path->n - 1);
        }
        if (e->into_path) {
            e->into_obj = mapped_index(p, e, e->into_path, e->into_path->n);
        }
        if (e->fn == run_url) {
            ((url_state *)e->state)->parts_absent = e->into_obj > 0 && !part_set_before(p, e);
        }
    }
    return 0;
}

void pixel__enrich_free(pixel_pipeline *p)
{
    for (size_t i = 0; i < p->nenrichers; i++) {
        pixel_enricher *e = &p->enrichers[i];
        if (e->free_fn) {
            e->free_fn(e);
        }
        pixel__free(e->into);
        pixel__free(e->from);
        pixel__path_free(e->into_path);
        pixel__path_free(e->from_path);
    }
    pixel__free(p->enrichers);
}
