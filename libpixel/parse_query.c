/*
 * The query string: application/x-www-form-urlencoded pairs, decoded
 * strictly.  A malformed escape or bytes that are not UTF-8 reject the line
 * with the parameter and offset: a lenient decoder would let `%zz` or
 * Latin-1 through as text and the data model would never know.
 *
 * A value without '%' or '+' is a view into the line; others are decoded
 * into the arena.
 */
#include <stddef.h>
#include <string.h>

#include "pipeline.h"
#include "simd.h"

#if defined(PIXEL_SIMD_SSE2) && defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

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

/* The bucket of a name: the top bits of a product (shift is 64 less the
 * bits of the table's size). */
static inline uint32_t word_hash(uint64_t w, size_t n, uint64_t mult, unsigned shift)
{
    uint64_t h = (w ^ n) * mult;
    return (uint32_t)(h >> shift);
}

/* The shift for a table of mask + 1 (a power of two, at least 2) buckets
 * (its bits counted by the trailing zeros of mask + 1: a popcount is a call
 * into libgcc where the CPU's instruction is not assumed). */
static inline unsigned table_shift(uint32_t mask)
{
    return 64u - (unsigned)__builtin_ctz(mask + 1u);
}

/* The len an entry holds: a name longer than eight bytes is marked, so that
 * a match of word and len is a hit of a name its word holds whole. */
#define SLOT_LONG_NAME 0x80000000u
static inline uint32_t entry_len(size_t n)
{
    return n > 8 ? (uint32_t)n | SLOT_LONG_NAME : (uint32_t)n;
}

/* The probe of slot_find past its first entry, and names longer than eight
 * bytes (out of line: rare, and a call in the common path would cost
 * registers there). */
__attribute__((noinline)) static int32_t slot_find_rest(const pixel_pipeline *p, const char *name,
                                                        size_t len, uint64_t w, uint32_t i)
{
    const uint32_t mask = p->slot_hash_mask;
    for (;; i = (i + 1) & mask) {
        const pixel_slot_entry *e = &p->slot_hash[i];
        if (e->slot < 0) {
            return -1;
        }
        if (e->word == w && e->len == entry_len(len) &&
            (len <= 8 || memcmp(p->slot_names[e->slot] + 8, name + 8, len - 8) == 0)) {
            return e->slot;
        }
    }
}

/* The slot of a name whose name_word is w. */
static inline int32_t slot_find_word(const pixel_pipeline *p, const char *name, size_t len,
                                     uint64_t w)
{
    const pixel_slot_entry *h = p->slot_hash;
    if (!h) {
        return -1;
    }
    uint32_t i = word_hash(w, len, p->slot_hash_mult, table_shift(p->slot_hash_mask));
    const pixel_slot_entry *e = &h[i];
    if (PIXEL_LIKELY(e->word == w && e->len == len)) {
        return e->slot; /* the usual hit (an empty entry has len 0 and slot -1) */
    }
    if (e->slot < 0) {
        return -1;
    }
    return slot_find_rest(p, name, len, w, i);
}

/* slot_find_word with the table's fields in hand (the query loop keeps them in
 * registers or its frame: stores into its parameters could alias the pipeline). */
typedef struct slot_table {
    const pixel_slot_entry *h;
    uint64_t mult;
    unsigned shift;
} slot_table;

/* the table of a pipeline without slots (two buckets: a shift of 63) */
static const pixel_slot_entry no_slots[2] = {{0, 0, -1}, {0, 0, -1}};

static inline int32_t slot_find_in(const pixel_pipeline *p, slot_table t, const char *name,
                                   size_t len, uint64_t w)
{
    uint32_t i = word_hash(w, len, t.mult, t.shift);
    const pixel_slot_entry *e = &t.h[i];
    if (PIXEL_LIKELY(e->word == w && e->len == len)) {
        return e->slot;
    }
    if (e->slot < 0) {
        return -1;
    }
    return slot_find_rest(p, name, len, w, i);
}

static inline int32_t slot_find(const pixel_pipeline *p, const char *name, size_t len,
                                const char *limit)
{
    return slot_find_word(p, name, len, name_word(name, len, limit));
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The bytes of a name's first word that are the name's, by its length (all
 * eight from eight on). */
static const uint64_t name_keep[16] = {0,
                                       0xFF,
                                       0xFFFF,
                                       0xFFFFFF,
                                       0xFFFFFFFF,
                                       0xFFFFFFFFFF,
                                       0xFFFFFFFFFFFF,
                                       0xFFFFFFFFFFFFFF,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0,
                                       ~(uint64_t)0};
/* name_keep and a seventeenth entry (0) for a length of sixteen */
static const uint64_t name_keep_le16[17] = {0,
                                            0xFF,
                                            0xFFFF,
                                            0xFFFFFF,
                                            0xFFFFFFFF,
                                            0xFFFFFFFFFF,
                                            0xFFFFFFFFFFFF,
                                            0xFFFFFFFFFFFFFF,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            ~(uint64_t)0,
                                            0};
#endif

/* name_word of a name that has at least eight readable bytes from its start
 * (where words are not little-endian: name_word's byte loop). */
static inline uint64_t name_word_fast(const char *s, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, s, 8);
    return w & name_keep[n < 8 ? n : 8];
#else
    return name_word(s, n, NULL);
#endif
}

/* name_word_fast of a name of less than sixteen bytes: one table load for
 * the mask, with no clamp of n. */
static inline uint64_t name_word_lt16(const char *s, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, s, 8);
    return w & name_keep[n & 15];
#else
    return name_word(s, n, NULL);
#endif
}

/* name_word_lt16 of a name of at most sixteen bytes (that of sixteen is
 * 0: no entry of a name that long has its len). */
static inline uint64_t name_word_le16(const char *s, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, s, 8);
    return w & name_keep_le16[n];
#else
    return n < 16 ? name_word(s, n, NULL) : 0;
#endif
}

/* The fewest buckets of a table (as bits): the size of the tables of up to
 * 32 names, whose lookup the query loop has a version of with the shift a
 * constant. */
#define SLOT_HASH_MIN_BITS 8

/* The table has room for eight times the names (and at least
 * 1 << SLOT_HASH_MIN_BITS buckets), and its multiplier is the
 * first of a few that sends every name to a bucket of its own: a lookup of a
 * referenced name is then one probe. */
static int rebuild_hash(pixel_pipeline *p)
{
    uint32_t size = 1u << SLOT_HASH_MIN_BITS;
    while (size < p->nslots * 8) {
        size *= 2;
    }
    pixel_slot_entry *h = pixel__malloc(size * sizeof(*h));
    uint64_t *words = pixel__malloc((p->nslots ? p->nslots : 1) * sizeof(uint64_t));
    if (!h || !words) {
        pixel__free(h);
        pixel__free(words);
        return -1;
    }
    for (size_t s = 0; s < p->nslots; s++) {
        words[s] = name_word(p->slot_names[s], p->slot_name_len[s], NULL);
    }
    uint64_t mult = 0x9E3779B97F4A7C15ull;
    for (unsigned attempt = 0; attempt < 64; attempt++) {
        mult = 0x9E3779B97F4A7C15ull + attempt * 0x2545F4914F6CDD1Eull; /* odd */
        for (uint32_t i = 0; i < size; i++) {
            h[i].slot = -1;
        }
        bool clash = false;
        for (size_t s = 0; s < p->nslots && !clash; s++) {
            uint32_t i = word_hash(words[s], p->slot_name_len[s], mult, table_shift(size - 1));
            clash = h[i].slot >= 0;
            h[i].slot = 0;
        }
        if (!clash) {
            break;
        }
    }
    for (uint32_t i = 0; i < size; i++) {
        h[i] = (pixel_slot_entry){0, 0, -1};
    }
    for (size_t s = 0; s < p->nslots; s++) {
        size_t n = p->slot_name_len[s];
        uint32_t i = word_hash(words[s], n, mult, table_shift(size - 1));
        while (h[i].slot >= 0) {
            i = (i + 1) & (size - 1);
        }
        h[i] = (pixel_slot_entry){words[s], entry_len(n), (int32_t)s};
    }
    pixel__free(words);
    pixel__free(p->slot_hash);
    p->slot_hash = h;
    p->slot_hash_mask = size - 1;
    p->slot_hash_mult = mult;
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

/* Hex digit values: lo, -1 for other bytes; hi, times sixteen, -256 for
 * other bytes (one base for the two loads of an escape's digits). */
#define HEX_VAL(c)                                                                               \
    ((c) >= '0' && (c) <= '9'   ? (c) - '0'                                                    \
     : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10                                               \
     : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10                                               \
                                : -16)
#define HEX16(X, i)                                                                              \
    X(i), X(i + 1), X(i + 2), X(i + 3), X(i + 4), X(i + 5), X(i + 6), X(i + 7), X(i + 8),        \
        X(i + 9), X(i + 10), X(i + 11), X(i + 12), X(i + 13), X(i + 14), X(i + 15)
#define HEX256(X)                                                                                \
    HEX16(X, 0), HEX16(X, 16), HEX16(X, 32), HEX16(X, 48), HEX16(X, 64), HEX16(X, 80),           \
        HEX16(X, 96), HEX16(X, 112), HEX16(X, 128), HEX16(X, 144), HEX16(X, 160), HEX16(X, 176), \
        HEX16(X, 192), HEX16(X, 208), HEX16(X, 224), HEX16(X, 240)
#define HEX_HI(c) (int16_t)(HEX_VAL(c) * 16)
#define HEX_LO(c) (signed char)(HEX_VAL(c) < 0 ? -1 : HEX_VAL(c))
static const struct {
    int16_t hi[256];
    signed char lo[256];
} hex = {{HEX256(HEX_HI)}, {HEX256(HEX_LO)}};
#undef HEX_LO
#undef HEX_HI
#undef HEX256
#undef HEX16
#undef HEX_VAL

static inline int hexval(unsigned char c)
{
    return hex.lo[c];
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

__attribute__((noinline, cold)) static int
bad_escape(pixel_ctx *ctx, const char *what, pixel_span name, const char *s, size_t n, size_t at)
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
 * The query string is classified once, sixteen bytes at a time, into two
 * bit masks (bit i of word i/64 for byte i): '&', and the bytes that need
 * decoding or a UTF-8 check (the escapes '%' and '+' when it means a space,
 * and the bytes >= 0x80).  Pairs are cut by walking the '&' bits; the first
 * byte to decode at or after the pair's start is a cursor that only moves
 * forward, and the first '=' is looked for in the block that starts the
 * pair (names are short), so a plain pair (the usual one) costs a few
 * compares.  A pair that needs decoding goes the slow way: decode_part
 * walks the bits of its bytes to decode.
 */
typedef struct qmasks {
    uint64_t *amp, *spec;
    size_t nw;
} qmasks;

/* The masks' words from word wi (byte o) on: blocks of sixteen bytes, then the
 * last n - o < 16 bytes (classify's second half, shared by its two versions). */
__attribute__((always_inline)) static inline void classify_rest(const char *q, size_t n,
                                                                const char *rd_end,
                                                                unsigned char plus, qmasks *m,
                                                                size_t o, size_t wi)
{
    const unsigned char *s = (const unsigned char *)q;
    const size_t nw = m->nw;
    for (; wi < nw; wi++) {
        uint64_t a = 0, x = 0;
        for (unsigned sh = 0; n - o >= 16; sh += 16, o += 16) {
            pixel_qsplit k = pixel__query_split16(s + o, plus);
            a |= (uint64_t)k.amp << sh;
            x |= (uint64_t)k.spec << sh;
        }
        m->amp[wi] = a;
        m->spec[wi] = x;
    }
    if (o < n) {
        /* The last n - o < 16 bytes: the block that ends with them when the
         * query is that long, the block that starts with them when the line
         * goes on, else a padded copy. */
        size_t rem = n - o, tw = o / 64;
        unsigned sh = (unsigned)(o % 64);
        pixel_qsplit k;
        if (n >= 16) {
            k = pixel__query_split16(s + n - 16, plus);
            unsigned drop = (unsigned)(16 - rem);
            k.amp >>= drop, k.spec >>= drop;
        } else {
            if (rd_end - q >= 16) {
                k = pixel__query_split16(s, plus);
            } else {
                unsigned char pad[16] = {0};
                memcpy(pad, s, rem);
                k = pixel__query_split16(pad, plus);
            }
            unsigned keep = (1u << rem) - 1;
            k.amp &= keep, k.spec &= keep;
        }
        m->amp[tw] |= (uint64_t)k.amp << sh;
        m->spec[tw] |= (uint64_t)k.spec << sh;
    }
}

/* Fills the masks (nw = n / 64 + 1 words each, in w). */
static void classify(const char *q, size_t n, const char *rd_end, unsigned char plus, uint64_t *w,
                     qmasks *m)
{
    const unsigned char *s = (const unsigned char *)q;
    const size_t nw = n / 64 + 1;
    m->nw = nw;
    m->amp = w;
    m->spec = w + nw;
    size_t o = 0, wi = 0;
    /* whole blocks of 64 bytes, then of 16 */
    for (; n - o >= 64; o += 64, wi++) {
        /* one block at a time into the two words (fewer live registers) */
        uint64_t a, x;
        pixel_qsplit k = pixel__query_split16(s + o, plus);
        a = k.amp, x = k.spec;
        k = pixel__query_split16(s + o + 16, plus);
        a |= (uint64_t)k.amp << 16, x |= (uint64_t)k.spec << 16;
        k = pixel__query_split16(s + o + 32, plus);
        a |= (uint64_t)k.amp << 32, x |= (uint64_t)k.spec << 32;
        k = pixel__query_split16(s + o + 48, plus);
        a |= (uint64_t)k.amp << 48, x |= (uint64_t)k.spec << 48;
        m->amp[wi] = a;
        m->spec[wi] = x;
    }
    classify_rest(q, n, rd_end, plus, m, o, wi);
}

/* The AVX2 paths are picked at run time; -DPIXEL_NO_AVX2 builds without
 * them (to test the SSE2 ones on a CPU that has AVX2). */
#if defined(PIXEL_SIMD_SSE2) && defined(__x86_64__) && defined(__GNUC__) && \
    !defined(PIXEL_NO_AVX2)
#define PIXEL_CLASSIFY_AVX2 1
/* The two classes of 32 bytes at p. */
__attribute__((target("avx2"), always_inline)) static inline void
split32(const unsigned char *p, __m256i pl, uint32_t *a, uint32_t *x)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i esc =
        _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('%')), _mm256_cmpeq_epi8(v, pl));
    *a = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('&')));
    *x = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(esc, v)); /* v: its high bit */
}

/* classify() for CPUs with AVX2 (asked at run time), for n >= 32: blocks of
 * 32 bytes, each the half of a word (x86 is little-endian), then the last
 * n % 32 bytes from the block that ends with them. */
__attribute__((target("avx2,popcnt"))) static size_t classify_avx2(const char *q, size_t n,
                                                                   uint64_t *w, unsigned char plus,
                                                                   qmasks *m)
{
    size_t namp = 0; /* the '&' (every CPU with AVX2 has popcnt) */
    const unsigned char *s = (const unsigned char *)q;
    const size_t nw = n / 64 + 1;
    m->nw = nw;
    m->amp = w;
    m->spec = w + nw;
    const __m256i pl = _mm256_set1_epi8((char)plus);
    char *const ab = (char *)m->amp, *const xb = (char *)m->spec;
    size_t o = 0;
    uint32_t a, x;
    for (; n - o >= 64; o += 64) { /* a word of each mask a step */
        uint32_t a2, x2;
        split32(s + o, pl, &a, &x);
        split32(s + o + 32, pl, &a2, &x2);
        const uint64_t aw = a | (uint64_t)a2 << 32;
        m->amp[o / 64] = aw;
        m->spec[o / 64] = x | (uint64_t)x2 << 32;
        namp += (size_t)__builtin_popcountll(aw);
    }
    if (n - o >= 32) {
        split32(s + o, pl, &a, &x);
        namp += (size_t)__builtin_popcount(a);
        memcpy(ab + o / 8, &a, 4);
        memcpy(xb + o / 8, &x, 4);
        o += 32;
    }
    /* the rest of the last word (all of it when o is at a word's start) */
    const size_t r = n - o;
    uint64_t ta = 0, tx = 0;
    if (r) {
        split32(s + n - 32, pl, &a, &x);
        ta = a >> (32 - r), tx = x >> (32 - r);
        namp += (size_t)__builtin_popcountll(ta);
    }
    if (o % 64 == 0) {
        m->amp[o / 64] = ta, m->spec[o / 64] = tx;
    } else {
        a = (uint32_t)ta, x = (uint32_t)tx;
        memcpy(ab + o / 8, &a, 4);
        memcpy(xb + o / 8, &x, 4);
    }
    return namp;
}
#endif

/* The trailing zeros of w != 0 as a 64-bit count: __builtin_ctzll's int
 * costs a sign extension on every use as an offset (x86-64: one tzcnt, which
 * is bsf where BMI1 is missing, the same for w != 0). */
static inline size_t ctz64(uint64_t w)
{
#if defined(__x86_64__) && defined(__GNUC__)
    uint64_t r;
    __asm__("tzcnt %1, %0" : "=r"(r) : "rm"(w) : "cc");
    return (size_t)r;
#else
    return (size_t)__builtin_ctzll(w);
#endif
}

/* The set bits of the nw words at m. */
static size_t count_bits(const uint64_t *m, size_t nw)
{
    size_t k = 0;
    for (size_t i = 0; i < nw; i++) {
        k += (size_t)__builtin_popcountll(m[i]);
    }
    return k;
}


/* The first set bit of m at or after pos, when there is one. */
static inline size_t next_set(const uint64_t *m, size_t pos)
{
    size_t wi = pos / 64;
    uint64_t w = m[wi] & (~(uint64_t)0 << (pos % 64));
    while (!w) {
        w = m[++wi];
    }
    return wi * 64 + ctz64(w);
}

/* Quarantines a name or value whose decoded bytes are not UTF-8 (from the
 * byte at u on); out of line, so that the decoder keeps a small frame. */
__attribute__((noinline, cold)) static void bad_utf8(pixel_ctx *ctx, const char *what,
                                                     pixel_span nm, pixel_span out, size_t u)
{
    char loc[160];
    snprintf(loc, sizeof(loc), "query.%.*s", (int)(nm.n < 128 ? nm.n : 128), nm.p);
    pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "invalid_utf8", loc,
                      "%s \"%.*s\": decoded bytes are not UTF-8 (byte 0x%02X at offset %zu)", what,
                      (int)(nm.n < 128 ? nm.n : 128), nm.p, (unsigned char)out.p[u], u);
}

/* Bits of m in [from, to), which is not empty, for word wi. */
static inline uint64_t range_word(const uint64_t *m, size_t wi, size_t from, size_t to)
{
    uint64_t w = m[wi];
    if (wi == from / 64) {
        w &= ~(uint64_t)0 << (from % 64);
    }
    if (wi == (to - 1) / 64) {
        w &= ~(uint64_t)0 >> (63 - (to - 1) % 64);
    }
    return w;
}

/* Copies len bytes from s to d: sixteen at a time, the last block too when
 * the source may be read that far (d has room for a block past len). */
static inline void copy_run(char *d, const char *s, size_t len, const char *rd_end)
{
    if (PIXEL_LIKELY(len <= 16 && rd_end - s >= 16)) {
        pixel__copy16(d, s); /* the usual short run, in one block */
        return;
    }
    while (len >= 16) {
        pixel__copy16(d, s);
        d += 16, s += 16, len -= 16;
    }
    if (len) {
        if (rd_end - s >= 16) {
            pixel__copy16(d, s);
        } else {
            memcpy(d, s, len);
        }
    }
}

/* The parse state of one query string. */
typedef struct qstate {
    const char *q;      /* the query */
    const char *rd_end; /* bytes up to here may be read */
    size_t n;           /* the query's length */
    qmasks m;
} qstate;

/*
 * One name or value, [from, to) of the query, of a pair that needs decoding
 * (decoded when it has escapes, checked when it has bytes >= 0x80): the runs
 * between escapes are copied whole.  0 fine, 1 quarantined, <0 failure.
 */
__attribute__((always_inline)) static inline int
decode_part(pixel_ctx *ctx, const pixel_pipeline *p, const qstate *st, size_t from, size_t to,
            pixel_span name_for_msg, const char *what, pixel_span *out)
{
    /* locals: the stores into the output may alias anything *st points to */
    const char *const q = st->q, *const rd_end = st->rd_end, *const s = q + from;
    const uint64_t *const specm = st->m.spec;
    const size_t n = to - from;
    const bool plus_as_space = p->plus_as_space;
    unsigned hi = 0;
    char *d = NULL; /* the output, made at the first escape */
    size_t i = from, k = 0;
    /* One walk over the bytes to decode or check: a byte >= 0x80 stays in
     * its run; an escape ends the run, which is copied whole. */
    for (size_t wi = from / 64; from < to && wi <= (to - 1) / 64; wi++) {
        for (uint64_t w = range_word(specm, wi, from, to); w; w &= w - 1) {
            size_t at = wi * 64 + (size_t)__builtin_ctzll(w);
            unsigned char c = (unsigned char)q[at];
            if (c >= 0x80) {
                hi = 0x80;
                continue;
            }
            /* (never a bit inside an escape already decoded: its two bytes are
             * hex digits, none of which is a byte to decode) */
            if (!d) {
                /* room for a sixteen-byte block copied at the end of the output */
                d = pixel__arena_alloc(&ctx->arena, n + 16);
                if (!d) {
                    return PIXEL_ENOMEM;
                }
            }
            copy_run(d + k, q + i, at - i, rd_end);
            k += at - i;
            if (c == '%') {
                int h = -1, l = -1;
                if (PIXEL_LIKELY(to - at > 2)) {
                    h = hexval((unsigned char)q[at + 1]);
                    l = hexval((unsigned char)q[at + 2]);
                }
                if ((h | l) < 0) {
                    bad_escape(ctx, what, name_for_msg.p ? name_for_msg : (pixel_span){s, n}, s, n,
                               at - from);
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
    if (!d) {
        *out = (pixel_span){s, n};
    } else {
        copy_run(d + k, q + i, to - i, rd_end);
        k += to - i;
        d[k] = '\0';
        *out = (pixel_span){d, k};
    }
    if (!(hi & 0x80)) {
        return 0; /* pure ASCII is valid UTF-8 */
    }
    size_t u = pixel__utf8_check(out->p, out->n);
    if (u != out->n) {
        bad_utf8(ctx, what, name_for_msg.p ? name_for_msg : *out, *out, u);
        return 1;
    }
    return 0;
}

/* A name that needs decoding (rare): out of line, so that decode_pair holds
 * one copy of decode_part, for the value, with fewer live registers. */
__attribute__((noinline)) static int decode_name(pixel_ctx *ctx, const pixel_pipeline *p,
                                                 const qstate *st, size_t at, size_t eqi,
                                                 pixel_span *out)
{
    return decode_part(ctx, p, st, at, eqi, (pixel_span){NULL, 0}, "parameter name", out);
}

/* A value that ends less than sixteen bytes before the readable end (rare):
 * decode_part, which copies its last run with care. */
__attribute__((noinline)) static int decode_value_near_end(pixel_ctx *ctx, const pixel_pipeline *p,
                                                           const qstate *st, size_t from,
                                                           size_t to, pixel_span name,
                                                           pixel_span *out)
{
    return decode_part(ctx, p, st, from, to, name, "parameter", out);
}

/* Copies the run src .. e (16 bytes a step: the output has room past it)
 * and a space for the '+' at e; returns the output's new end. */
__attribute__((always_inline)) static inline char *copy_then_space(char *o, const char *src,
                                                                   const char *e)
{
    const size_t len = (size_t)(e - src);
    pixel__copy16(o, src);
    for (size_t k = 16; k < len; k += 16) {
        pixel__copy16(o + k, src + k);
    }
    o += len;
    *o++ = ' ';
    return o;
}

/* The position of the next bit of a mask walked a word at a time (*w: the
 * bits of the word at *mw not taken yet, *wq: the byte of its bit 0); the
 * mask must have a bit ahead. */
__attribute__((always_inline)) static inline const char *
next_bit(const uint64_t **mw, const char **wq, uint64_t *w)
{
    while (!*w) {
        *w = *++*mw;
        *wq += 64;
    }
    const char *at = *wq + ctz64(*w);
    *w &= *w - 1;
    return at;
}

/*
 * decode_part for a value, [vs, stop) of the query, followed by at least
 * sixteen readable bytes: every run is copied in blocks of sixteen and an
 * escape's two digits are read before the bounds check, with no test of the
 * readable end.  The same results as decode_part.  *next_sp is the first
 * byte to decode at or after stop (the walk over the bits finds it), set
 * when the value is fine or not UTF-8.
 */
__attribute__((always_inline)) static inline int
decode_value_at(pixel_ctx *ctx, const qstate *st, const char *const vs, const char *const stop,
                pixel_span name, pixel_span *out, const char **next_sp, const char *const first,
                const bool known)
{
    const char *const q = st->q;
    const char *src = vs; /* the run not copied yet */
    const size_t fo = (size_t)(first - q), vn = (size_t)(stop - vs);
    unsigned hi = 0;
    /* the bits to decode from `first` on (vs, unless known: then it is the
     * first byte to decode, in [vs, stop)): the word at mw, whose first byte
     * is at wq */
    const uint64_t *mw = st->m.spec + fo / 64;
    const char *wq = q + (fo & ~(size_t)63);
    uint64_t w;
    const char *e;
    unsigned char c;
    if (known) {
        /* when that byte is an escape (nearly always), the walk goes on past
         * its bit */
        e = first;
        c = (unsigned char)*e;
        w = *mw & (~(uint64_t)1 << (fo % 64));
        if (PIXEL_LIKELY(c < 0x80)) {
            goto escape;
        }
        hi = 0x80;
    } else {
        w = *mw & (~(uint64_t)0 << (fo % 64));
    }
    /* The first escape (bytes >= 0x80 before it are only marked) */
    for (;;) {
        e = next_bit(&mw, &wq, &w);
        if (e >= stop) {
            *next_sp = e;
            *out = (pixel_span){vs, vn};
            goto check;
        }
        c = (unsigned char)*e;
        if (c < 0x80) {
            break;
        }
        hi = 0x80;
    }
escape:;
    /* room for a sixteen-byte block copied at the end of the output */
    char *d;
    {
        /* pixel__arena_alloc, with its NULL test on the slow side only */
        pixel_arena *const a = &ctx->arena;
        const size_t size = (vn + 16 + 7) & ~(size_t)7;
        if (PIXEL_LIKELY((size_t)(a->lim - a->cur) >= size)) {
            d = a->cur;
            a->cur += size;
        } else if (!(d = pixel__arena_alloc_slow(a, size))) {
            return PIXEL_ENOMEM;
        }
    }
    char *o = d; /* the output's end */
    /* An escape at or after stop2 is cut short by the end of the value (or
     * is past it): the walk leaves the fast loop there, so that an escape
     * inside it needs no bounds check. */
    const char *const stop2 = vn >= 2 ? stop - 2 : vs;
    if (PIXEL_UNLIKELY(e >= stop2)) {
        goto tail;
    }
    /* Each escape: the run before it copied whole, then its byte.  (Never a
     * bit inside an escape already decoded: its two bytes are hex digits,
     * none of which is a byte to decode.)  The loop takes the '%' escapes
     * (e is one, before stop2); a '+' or a byte >= 0x80 goes to `other`. */
    if (c != '%') {
        goto other;
    }
    for (;;) {
        {
            const size_t len = (size_t)(e - src);
            pixel__copy16(o, src);
            if (PIXEL_UNLIKELY(len > 16)) { /* (a run of more than a block: rare) */
                size_t k = 16;
                do {
                    pixel__copy16(o + k, src + k);
                    k += 16;
                } while (k < len);
            }
            o += len;
        }
        /* negative when either digit is not one (a digit's value is -1) */
        const int v = hex.hi[(unsigned char)e[1]] | hexval((unsigned char)e[2]);
        if (PIXEL_UNLIKELY(v < 0)) {
            bad_escape(ctx, "parameter", name, vs, vn, (size_t)(e - vs));
            return 1;
        }
        hi |= (unsigned)v;
        src = e + 3;
        *o++ = (char)v;
        /* the next byte to decode, or the tail */
        e = next_bit(&mw, &wq, &w);
        if (PIXEL_UNLIKELY(e >= stop2)) {
            goto tail;
        }
        if (PIXEL_LIKELY(*e == '%')) {
            continue;
        }
    other:
        /* '+' (a space) and bytes >= 0x80 (only marked), up to the next '%' */
        for (;;) {
            c = (unsigned char)*e;
            if (c >= 0x80) {
                hi = 0x80;
            } else if (c == '%') {
                break;
            } else { /* a '+' */
                o = copy_then_space(o, src, e);
                src = e + 1;
            }
            e = next_bit(&mw, &wq, &w);
            if (PIXEL_UNLIKELY(e >= stop2)) {
                goto tail;
            }
        }
    }
tail:
    /* The bytes to decode in the last two of the value, then the end: there
     * a '%' is cut short, a '+' is a space. */
    while (e < stop) {
        c = (unsigned char)*e;
        if (c >= 0x80) {
            hi = 0x80;
        } else if (c == '%') {
            bad_escape(ctx, "parameter", name, vs, vn, (size_t)(e - vs));
            return 1;
        } else { /* a '+' */
            o = copy_then_space(o, src, e);
            src = e + 1;
        }
        e = next_bit(&mw, &wq, &w);
    }
    *next_sp = e;
    {
        const size_t len = (size_t)(stop - src);
        for (size_t k = 0; k < len; k += 16) {
            pixel__copy16(o + k, src + k);
        }
        o += len;
    }
    *o = '\0';
    *out = (pixel_span){d, (size_t)(o - d)};
check:
    if (!(hi & 0x80)) {
        return 0; /* pure ASCII is valid UTF-8 */
    }
    size_t u = pixel__utf8_check(out->p, out->n);
    if (u != out->n) {
        bad_utf8(ctx, "parameter", name, *out, u);
        return 1;
    }
    return 0;
}

/* decode_value_at by offsets into the query (*next_sp one too) */
__attribute__((always_inline)) static inline int
decode_value(pixel_ctx *ctx, const qstate *st, size_t from, size_t to, pixel_span name,
             pixel_span *out, size_t *next_sp, size_t first, const bool known)
{
    const char *const q = st->q;
    const char *nsp = NULL;
    int rc = decode_value_at(ctx, st, q + from, q + to, name, out, &nsp, q + first, known);
    if (nsp) {
        *next_sp = (size_t)(nsp - q);
    }
    return rc;
}

/* decode_value for the value [from, to) of pa, whose name is set (plain),
 * with its first byte to decode at `first` (the caller's cursor): the call of
 * the usual pair that needs decoding, with few arguments. */
__attribute__((noinline)) static int decode_plain_named(pixel_ctx *ctx, const qstate *st,
                                                        size_t from, size_t to, size_t first,
                                                        pixel_param *pa, size_t *next_sp)
{
    return decode_value(ctx, st, from, to, pa->name, &pa->value, next_sp, first, true);
}

/* A pair [at, end) of the query, its first '=' at eqi (end if none), that
 * needs decoding: its name (unless name_plain) and value.  0 fine, 1
 * quarantined, <0 failure.  *next_sp: the first byte to decode at or after
 * end when the walk found it, else 0. */
__attribute__((noinline)) static int decode_pair(pixel_ctx *ctx, const pixel_pipeline *p,
                                                 const qstate *st, size_t at, size_t end,
                                                 size_t eqi, bool name_plain, pixel_param *pa,
                                                 size_t *next_sp)
{
    if (PIXEL_LIKELY(name_plain)) {
        pa->name = (pixel_span){st->q + at, eqi - at};
    } else {
        int rc = decode_name(ctx, p, st, at, eqi, &pa->name);
        if (rc != 0) {
            return rc;
        }
    }
    if (eqi < end) {
        if (PIXEL_LIKELY(st->rd_end - (st->q + end) >= 16)) {
            return decode_value(ctx, st, eqi + 1, end, pa->name, &pa->value, next_sp, eqi + 1,
                                false);
        }
        return decode_value_near_end(ctx, p, st, eqi + 1, end, pa->name, &pa->value);
    }
    pa->value = (pixel_span){st->q + end, 0};
    return 0;
}

/* Parameter i has a slot that an earlier parameter took: what repeated_keys
 * says.  0 fine, 1 quarantined, <0 failure. */
__attribute__((noinline)) static int repeated(const pixel_pipeline *p, pixel_ctx *ctx,
                                              pixel_param *params, pixel_slot *sl, int32_t i)
{
    pixel_param *pa = &params[i];
    switch (p->repeat) {
        case REPEAT_FIRST:
            pa->slot = -1;
            break;
        case REPEAT_LAST:
            params[sl->first].slot = -1;
            sl->first = i;
            break;
        case REPEAT_LIST: {
            int32_t k = sl->first;
            while (params[k].next_same >= 0) {
                k = params[k].next_same;
            }
            params[k].next_same = i;
            sl->count++;
            break;
        }
        case REPEAT_REJECT: {
            char loc[160];
            snprintf(loc, sizeof(loc), "query.%s", p->slot_names[pa->slot]);
            int rc = pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "repeated_parameter", loc,
                                       "parameter \"%s\" appears more than once",
                                       p->slot_names[pa->slot]);
            return rc < 0 ? rc : 1;
        }
    }
    return 0;
}

/* The pairs of a query whose masks are made (pixel__parse_query's loop).  The
 * pair being cut is [at, end); sp is the first byte to decode at or after
 * `at` (a cursor that only moves forward).  A pair's first '=' is looked for
 * in the sixteen bytes from its start (names are short), and in the '=' bits
 * past them.  room_everywhere: sixteen bytes can be read from every name on
 * (a constant where this is inlined: two versions of the loop). */
__attribute__((always_inline)) static inline int
cut_pairs(const pixel_pipeline *p, pixel_ctx *ctx, const qstate *stp, pixel_param *params,
          pixel_slot *slots, size_t max_params, slot_table tab, size_t *np_out,
          const bool room_everywhere)
{
    const qstate st = *stp;
    const qmasks m = st.m;
    const char *const q = st.q, *const rd_end = st.rd_end;
    const size_t n = st.n;
    size_t at = 0, np = 0;
    size_t sp = next_set(m.spec, 0);
    int rc = 0;
    for (;;) {
        const size_t end = next_set(m.amp, at);
        if (end > at) { /* "&&" and a trailing '&' make no pair */
            if (PIXEL_UNLIKELY(np >= max_params)) {
                rc = pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "too_many_parameters", "query",
                                       "more than %zu query parameters", max_params);
                break;
            }
            pixel_param *pa = &params[np];
            const char *const name_p = q + at;
            size_t eqi;
            /* sixteen readable bytes from the name on (nearly always) */
            const bool room = room_everywhere || rd_end - name_p >= 16;
            if (PIXEL_LIKELY(room)) {
                eqi = at + (size_t)__builtin_ctz(
                               pixel__eq16((const unsigned char *)name_p, '=') | 0x10000u);
                if (PIXEL_UNLIKELY(eqi == at + 16 && end > eqi)) {
                    /* a name of sixteen bytes or more */
                    const char *e = memchr(q + eqi, '=', end - eqi);
                    eqi = e ? (size_t)(e - q) : end;
                }
            } else {
                const char *e = memchr(name_p, '=', end - at);
                eqi = e ? (size_t)(e - q) : end;
            }
            eqi = eqi < end ? eqi : end;
            int32_t slot;
            /* a plain name, and a plain value or one decode_value takes (the usual
             * pair that needs decoding: sixteen readable bytes after it) */
            if (PIXEL_LIKELY(sp >= eqi) &&
                (PIXEL_LIKELY(sp >= end) ||
                 (eqi < end && (room_everywhere || rd_end - (q + end) >= 16)))) {
                const size_t nlen = eqi - at;
                pa->name = (pixel_span){name_p, nlen};
                if (PIXEL_LIKELY(sp >= end)) {
                    const size_t vat = eqi + (eqi < end); /* the value's start (end when none) */
                    pa->value = (pixel_span){q + vat, end - vat};
                } else {
                    size_t next_sp;
                    rc = decode_plain_named(ctx, &st, eqi + 1, end, sp, pa, &next_sp);
                    if (rc != 0) {
                        break;
                    }
                    sp = next_sp;
                }
                uint64_t word = PIXEL_LIKELY(room) ? name_word_fast(name_p, nlen)
                                                   : name_word(name_p, nlen, NULL);
                slot = slot_find_in(p, tab, name_p, nlen, word);
            } else {
                size_t next_sp = 0;
                rc = decode_pair(ctx, p, &st, at, end, eqi, sp >= eqi, pa, &next_sp);
                if (rc != 0) {
                    break;
                }
                sp = next_sp; /* (0 when not known: looked for below) */
                slot = slot_find(p, pa->name.p, pa->name.n, pa->name.p == name_p ? rd_end : NULL);
            }
            pa->slot = slot;
            pa->next_same = -1;
            if (slot >= 0) {
                pixel_slot *sl = &slots[slot];
                if (PIXEL_LIKELY(sl->first < 0)) {
                    sl->first = (int32_t)np;
                    sl->count = 1;
                } else if ((rc = repeated(p, ctx, params, sl, (int32_t)np)) != 0) {
                    break;
                }
            }
            np++;
        }
        if (end >= n) {
            break;
        }
        at = end + 1;
        if (PIXEL_UNLIKELY(sp < at)) {
            sp = next_set(m.spec, at);
        }
    }
    *np_out = np;
    return rc;
}

/* *sl = {first: the low half of npc, count: its high half} (one store where
 * that is the struct's layout in a word) */
static inline void store_first(pixel_slot *sl, uint64_t npc)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    _Static_assert(sizeof(pixel_slot) == 8 && offsetof(pixel_slot, count) == 4, "pixel_slot");
    memcpy(sl, &npc, 8);
#else
    *sl = (pixel_slot){(int32_t)(uint32_t)npc, (int32_t)(npc >> 32)};
#endif
}

/*
 * cut_pairs when sixteen bytes can be read from every name on (the usual
 * query, inside a line that goes on): the same pairs, slots and results.
 * The '&' bits are walked once, in order, a word at a time (each pair ends
 * at the next one), and positions are pointers, so that the loop keeps its
 * state in registers.  A pair that needs decoding calls out as cut_pairs
 * does.
 */
__attribute__((always_inline)) static inline int
cut_pairs_room(const pixel_pipeline *p, pixel_ctx *ctx, const qstate *stp, pixel_param *params,
               pixel_slot *slots, size_t max_params, slot_table tab, size_t *np_out,
               const unsigned shift_c)
{
    /* the table's shift: shift_c when it is not 0 (a constant where this is
     * inlined: the usual table of SLOT_HASH_MIN buckets) */
    const unsigned shift = shift_c ? shift_c : tab.shift;
    const qstate st = *stp;
    const char *const q = st.q, *const qend = q + st.n;
    const uint64_t *const specm = st.m.spec;
    /* the walk over the '&' bits: the word whose bit 0 is the byte at abase
     * (the word's index is its distance from q over 64), with the bits not
     * taken yet in abits */
    const uint64_t *const ampm = st.m.amp;
    const char *abase = q;
    uint64_t abits = *ampm;
    pixel_param *pa = params;
    /* pa - params in the low half, 1 in the high half: the pixel_slot of a
     * first pair, {np, 1}, in one word (x86-64 and the like: little-endian) */
    uint64_t npc = (uint64_t)1 << 32;
#define NP ((int32_t)(uint32_t)npc)
    bool over = false; /* a pair past the first max_params broke the loop */
    const char *name = q;                  /* the pair's start */
    const char *sp = q + next_set(specm, 0); /* the first byte to decode at or after name */
    int rc = 0;
    while (!abits) { /* (the bit at qend ends the search) */
        abase += 64;
        abits = ampm[(size_t)(abase - q) / 64];
    }
    for (;;) {
        /* abits is not 0 here */
        const char *const end = abase + ctz64(abits);
        abits &= abits - 1;
        /* The usual pair first: a name of less than sixteen bytes with its
         * '=' before end, its slot's first entry in the table (or an empty
         * one); then nothing to decode and no earlier pair of that slot, or a
         * value to decode (the slot found here). */
        const char *eq;
        size_t nlen;
        int32_t slot;
        {
            /* (nlen <= 16: a name of sixteen bytes or more, or of more than
             * eight, matches no entry's len, which marks names longer than
             * eight; and nlen < end - name means end > name) */
            nlen = ctz64(pixel__eq16((const unsigned char *)name, '=') | 0x10000u);
            if (PIXEL_LIKELY(nlen < (size_t)(end - name))) {
                const uint64_t word = name_word_le16(name, nlen);
                const pixel_slot_entry *e =
                    &tab.h[(uint32_t)(((word ^ nlen) * tab.mult) >> shift)];
                if (PIXEL_LIKELY(e->word == word && e->len == nlen)) {
                    slot = e->slot;
                    pixel_slot *const sl = &slots[slot >= 0 ? slot : 0];
                    if (PIXEL_LIKELY(sp >= end)) {
                        if (PIXEL_LIKELY(slot < 0 || sl->first < 0)) {
                            pa->name = (pixel_span){name, nlen};
                            pa->value =
                                (pixel_span){name + nlen + 1, (size_t)(end - name) - nlen - 1};
                            pa->slot = slot;
                            pa->next_same = -1;
                            if (slot >= 0) {
                                store_first(sl, npc);
                            }
                            pa++, npc++;
                            goto next;
                        }
                    } else if (PIXEL_LIKELY(sp > name + nlen && (size_t)NP < max_params)) {
                        /* a plain name, a value to decode: as below */
                        eq = name + nlen;
                        pa->name = (pixel_span){name, nlen};
                        goto decode_named;
                    }
                }
            }
        }
        if (PIXEL_LIKELY(end > name)) { /* "&&" and a trailing '&' make no pair */
            eq = name + ctz64(pixel__eq16((const unsigned char *)name, '=') | 0x10000u);
            if (PIXEL_UNLIKELY(eq >= end)) {
                eq = end;
            } else if (PIXEL_UNLIKELY(eq == name + 16)) {
                /* a name of sixteen bytes or more */
                const char *e = memchr(eq, '=', (size_t)(end - eq));
                eq = e ? e : end;
            }
            nlen = (size_t)(eq - name);
            if (PIXEL_LIKELY(sp >= end)) {
                /* plain: views into the query (the params have room for every
                 * pair; one past max_params is reported after the loop) */
                const char *const vat = eq + (eq < end);
                pa->name = (pixel_span){name, nlen};
                pa->value = (pixel_span){vat, (size_t)(end - vat)};
                slot = slot_find_in(p, tab, name, nlen, name_word_fast(name, nlen));
            } else if (PIXEL_UNLIKELY((size_t)NP >= max_params)) {
                over = true; /* too many: reported below, before this pair's own faults */
                break;
            } else if (PIXEL_LIKELY(sp > eq && eq < end)) {
                /* a plain name, a value to decode (sp > eq: the '=' is no byte to
                 * decode, so sp >= eq means sp > eq) */
                pa->name = (pixel_span){name, nlen};
                slot = slot_find_in(p, tab, name, nlen, name_word_fast(name, nlen));
            decode_named:
                rc = decode_value_at(ctx, &st, eq + 1, end, pa->name, &pa->value, &sp, sp, true);
                if (rc != 0) {
                    break;
                }
            } else {
                size_t next_sp = 0;
                const size_t at = (size_t)(name - q), e = (size_t)(end - q);
                rc = decode_pair(ctx, p, &st, at, e, (size_t)(eq - q), sp >= eq, pa, &next_sp);
                if (rc != 0) {
                    break;
                }
                /* the cursor, when the decoder did not find it: at or after end */
                sp = next_sp ? q + next_sp : q + next_set(specm, e);
                slot = slot_find(p, pa->name.p, pa->name.n,
                                 pa->name.p == name ? st.rd_end : NULL);
            }
            pa->slot = slot;
            pa->next_same = -1;
            if (slot >= 0) {
                pixel_slot *sl = &slots[slot];
                if (PIXEL_LIKELY(sl->first < 0)) {
                    store_first(sl, npc);
                } else if ((size_t)NP >= max_params) {
                    over = true;
                    break;
                } else if ((rc = repeated(p, ctx, params, sl, NP)) != 0) {
                    break;
                }
            }
            pa++, npc++;
        }
    next:
        /* (the bit at qend is the mask's last: the word has none left) */
        name = end + 1;
        if (PIXEL_LIKELY(abits)) {
            continue;
        }
        if (end >= qend) {
            break;
        }
        /* (sp >= end here, and sp == end only at qend: an '&' is no byte to
         * decode) */
        do {
            abase += 64;
            abits = ampm[(size_t)(abase - q) / 64];
        } while (!abits);
    }
    if (rc == 0 && (over || (size_t)NP > max_params)) {
        /* the pair after the first max_params (the first of them to fail was
         * the one that breaks out of the loop, or none did) */
        npc = (uint64_t)1 << 32 | (uint32_t)max_params;
        rc = pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "too_many_parameters", "query",
                               "more than %zu query parameters", max_params);
    }
    *np_out = (size_t)NP;
#undef NP
    return rc;
}

int pixel__parse_query(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span query)
{
    pixel_record *r = &ctx->rec;
    const size_t nslots = p->nslots, max_params = p->max_params;
    const char *q = query.p;
    const size_t n = query.n;
    /* One allocation: the slots (whole blocks of sixteen bytes, at least
     * one), max_params parameters, and the two masks of n / 64 + 1 words. */
    const size_t slot_blocks = nslots / 2 + 1, nw = n / 64 + 1;
    char *mem = pixel__arena_alloc(&ctx->arena, slot_blocks * 16 +
                                                    max_params * sizeof(pixel_param) +
                                                    2 * nw * sizeof(uint64_t));
    pixel_slot *slots = (pixel_slot *)(void *)mem;
    pixel_param *params = mem ? (pixel_param *)(void *)(mem + slot_blocks * 16) : NULL;
    r->nslots = nslots;
    r->slots = slots;
    r->params = params;
    r->nparams = 0;
    if (!mem) {
        return PIXEL_ENOMEM;
    }
    pixel__ones16n(slots, slot_blocks); /* first = -1: absent (count unused) */
    /* bytes up to rd_end may be read: a query inside the line, to the line's end */
    const char *rd_end = q + n;
    if (ctx->line && q >= ctx->line && q + n <= ctx->line + ctx->line_len) {
        rd_end = ctx->line + ctx->line_len;
    }
    qstate st = {q, rd_end, n, {0}};
    uint64_t *w = (uint64_t *)(void *)(mem + slot_blocks * 16 + max_params * sizeof(pixel_param));
    size_t namp; /* the query's '&' */
#ifdef PIXEL_CLASSIFY_AVX2
    if (n >= 32 && __builtin_cpu_supports("avx2")) {
        namp = classify_avx2(q, n, w, p->plus_as_space ? '+' : '%', &st.m);
    } else
#endif
    {
        classify(q, n, rd_end, p->plus_as_space ? '+' : '%', w, &st.m);
        namp = count_bits(st.m.amp, st.m.nw);
    }
    /* cut_pairs_room makes a parameter of every pair with no test of
     * max_params (it reports too many after the loop, or before the first
     * pair that can fail): a query of more pairs than that, at most namp + 1,
     * has its parameters in a block of that many (rare: the usual query is
     * far below max_params). */
    if (PIXEL_UNLIKELY(namp + 1 > max_params)) {
        params = pixel__arena_alloc(&ctx->arena, (namp + 1) * sizeof(pixel_param));
        if (!params) {
            return PIXEL_ENOMEM;
        }
        r->params = params;
    }
    const qmasks m = st.m;
    /* Each mask gets a bit at n: the end of the string acts as one more '&',
     * and a byte to decode at n means none in the pair; so a search
     * for the next bit always ends. */
    const uint64_t end_bit = (uint64_t)1 << (n % 64);
    m.amp[n / 64] |= end_bit;
    m.spec[n / 64] |= end_bit;
    /* (and none past it: cut_pairs_room's walk ends when it takes that bit
     * and the word has no more) */
    m.amp[n / 64] &= (end_bit << 1) - 1;
    const slot_table tab = {p->slot_hash ? p->slot_hash : no_slots, p->slot_hash_mult,
                            table_shift(p->slot_hash ? p->slot_hash_mask : 1)};
    size_t np = 0;
    const int rc = rd_end - (q + n) >= 16
                       ? (tab.shift == 64 - SLOT_HASH_MIN_BITS
                              ? cut_pairs_room(p, ctx, &st, params, slots, max_params, tab, &np,
                                               64 - SLOT_HASH_MIN_BITS)
                              : cut_pairs_room(p, ctx, &st, params, slots, max_params, tab, &np, 0))
                       : cut_pairs(p, ctx, &st, params, slots, max_params, tab, &np, false);
    r->nparams = np;
    return rc < 0 ? rc : 0;
}
