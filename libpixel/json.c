/*
 * JSON text <-> pixel_value.
 *
 * The parser is strict RFC 8259 and allocates only from the arena.  A string
 * without escapes is a view into the input (no copy); the caller keeps the
 * input alive while the values are used.  Integers that fit int64 are INT;
 * everything else numeric is NUMBER with its literal kept, so that
 * 0.1 or 1e400 serialize back exactly as they came.
 *
 * The serializer writes compact JSON in member order.
 */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixel_private.h"
#include "simd.h"

#define MAX_DEPTH 256

typedef struct jparser {
    pixel_arena *arena;
    const char *s, *p, *end;
    pixel_error *err;
    int depth;
} jparser;

static int jfail(jparser *j, const char *what)
{
    size_t off = (size_t)(j->p - j->s);
    pixel__error_set(j->err, PIXEL_EPARSE, PIXEL_STAGE_NONE, "invalid JSON at offset %zu: %s", off,
                     what);
    if (j->err) {
        /* JSON input is usually one line; the column is the useful part. */
        long line = 1, col = 1;
        for (const char *q = j->s; q < j->p; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        pixel__error_at(j->err, NULL, line, col);
    }
    return -1;
}

static inline void skip_ws(jparser *j)
{
    /* most places have no white space: one test for them */
    if (PIXEL_LIKELY(j->p < j->end && (unsigned char)*j->p > ' ')) {
        return;
    }
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int read_hex4(jparser *j, const char *at, unsigned *out)
{
    if (j->end - at < 4) {
        return -1;
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)at[i]);
        if (h < 0) {
            return -1;
        }
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at j->p (on the opening quote): any string, with the
 * checks and messages of every error.  parse_string() takes the usual ones
 * first. */
__attribute__((noinline)) static int parse_string_full(jparser *j, const char **out,
                                                       size_t *outlen)
{
    const char *start = ++j->p;
    const char *q = start;
    int escapes = 0;
    while (q < j->end && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20) {
            j->p = q;
            return jfail(j, "control character in string");
        }
        if (c == '\\') {
            escapes = 1;
            q++;
        }
        q++;
    }
    if (q >= j->end) {
        j->p = q > j->end ? j->end : q;
        return jfail(j, "unterminated string");
    }
    size_t raw = (size_t)(q - start);
    size_t bad = pixel__utf8_check(start, raw);
    if (bad != raw) {
        j->p = start + bad;
        return jfail(j, "invalid UTF-8 in string");
    }
    if (!escapes) {
        *out = start;
        *outlen = raw;
        j->p = q + 1;
        return 0;
    }
    char *buf = pixel__arena_alloc(j->arena, raw + 1);
    if (!buf) {
        return pixel__error_set(j->err, PIXEL_ENOMEM, PIXEL_STAGE_NONE, "out of memory"), -1;
    }
    size_t n = 0;
    for (const char *r = start; r < q;) {
        if (*r != '\\') {
            buf[n++] = *r++;
            continue;
        }
        r++;
        switch (*r) {
            case '"':
            case '\\':
            case '/':
                buf[n++] = *r++;
                break;
            case 'b':
                buf[n++] = '\b', r++;
                break;
            case 'f':
                buf[n++] = '\f', r++;
                break;
            case 'n':
                buf[n++] = '\n', r++;
                break;
            case 'r':
                buf[n++] = '\r', r++;
                break;
            case 't':
                buf[n++] = '\t', r++;
                break;
            case 'u': {
                unsigned cp, lo;
                if (read_hex4(j, r + 1, &cp) < 0) {
                    j->p = r;
                    return jfail(j, "bad \\u escape");
                }
                r += 5;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (r + 1 < q && r[0] == '\\' && r[1] == 'u' && read_hex4(j, r + 2, &lo) == 0 &&
                        lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        r += 6;
                    } else {
                        j->p = r;
                        return jfail(j, "unpaired surrogate in \\u escape");
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    j->p = r;
                    return jfail(j, "unpaired surrogate in \\u escape");
                }
                n += put_utf8(buf + n, cp);
                break;
            }
            default:
                j->p = r;
                return jfail(j, "bad escape in string");
        }
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    j->p = q + 1;
    return 0;
}

static const unsigned char needs_escape[256];

/* A string at j->p (on the opening quote).  Text of ASCII bytes without
 * escapes or control characters up to its closing quote (member names,
 * most values) is taken here: it is valid UTF-8 and its own value, a view
 * into the input.  Anything else (an escape, a byte of 0x80 or more, a
 * control character, no closing quote) goes to parse_string_full() from
 * the start. */
static inline int parse_string(jparser *j, const char **out, size_t *outlen)
{
    const unsigned char *start = (const unsigned char *)j->p + 1, *q = start;
    const unsigned char *end = (const unsigned char *)j->end;
#ifdef PIXEL_SIMD_SSE2
    /* 16 bytes a step while they are all in the input: a quote, a
     * backslash, or a byte that is negative or under 0x20 as signed */
    const __m128i quote = _mm_set1_epi8('"'), bsl = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bsl)));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask) {
            q += __builtin_ctz(mask);
            goto found;
        }
        q += 16;
    }
#endif
    while (q < end && *q < 0x80 && !needs_escape[*q]) {
        q++;
    }
#ifdef PIXEL_SIMD_SSE2
found:
#endif
    if (PIXEL_LIKELY(q < end && *q == '"')) {
        *out = (const char *)start;
        *outlen = (size_t)(q - start);
        j->p = (const char *)q + 1;
        return 0;
    }
    return parse_string_full(j, out, outlen);
}

/* A number at j->p: any number, with the checks and messages of every
 * error.  parse_number() takes the usual ones first. */
__attribute__((noinline)) static pixel_value *parse_number_full(jparser *j)
{
    const char *start = j->p, *q = j->p;
    int integral = 1;
    if (q < j->end && *q == '-') {
        q++;
    }
    if (q >= j->end || !(*q >= '0' && *q <= '9')) {
        return jfail(j, "bad number"), NULL;
    }
    if (*q == '0') {
        q++;
    } else {
        while (q < j->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < j->end && *q == '.') {
        integral = 0;
        q++;
        if (q >= j->end || !(*q >= '0' && *q <= '9')) {
            j->p = q;
            return jfail(j, "bad number: digit expected after '.'"), NULL;
        }
        while (q < j->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        integral = 0;
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q >= j->end || !(*q >= '0' && *q <= '9')) {
            j->p = q;
            return jfail(j, "bad number: digit expected in exponent"), NULL;
        }
        while (q < j->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    size_t len = (size_t)(q - start);
    size_t neg = *start == '-';
    if (integral && len - neg <= 18) {
        /* Up to 18 digits cannot overflow: what strtoll would give, without it. */
        int64_t i = 0;
        for (const char *d = start + neg; d < q; d++) {
            i = i * 10 + (*d - '0');
        }
        j->p = q;
        pixel_value *v = pixel__value_new(j->arena, PIXEL_TYPE_INT);
        if (v) {
            v->u.i = neg ? -i : i;
        }
        return v;
    }
    char tmp[64];
    char *text = tmp;
    if (len >= sizeof(tmp)) {
        text = pixel__arena_strndup(j->arena, start, len);
        if (!text) {
            return NULL;
        }
    } else {
        memcpy(tmp, start, len);
        tmp[len] = '\0';
    }
    j->p = q;
    if (integral) {
        errno = 0;
        long long i = strtoll(text, NULL, 10);
        if (errno == 0) {
            pixel_value *v = pixel__value_new(j->arena, PIXEL_TYPE_INT);
            if (v) {
                v->u.i = i;
            }
            return v;
        }
    }
    pixel_value *v = pixel__value_new(j->arena, PIXEL_TYPE_NUMBER);
    if (v) {
        v->u.num.d = strtod(text, NULL);
        v->u.num.raw = start;
        v->u.num.rawlen = len;
        v->flags |= PIXEL_VALUE_RAW;
    }
    return v;
}

/* A number at j->p.  An integer of 1 to 18 digits not starting with 0 (it
 * cannot overflow) is read here in one pass; anything else (a fraction, an
 * exponent, 0, more digits, an error) goes to parse_number_full() from the
 * start. */
static inline pixel_value *parse_number(jparser *j)
{
    const char *q = j->p, *end = j->end;
    const bool neg = q < end && *q == '-';
    q += neg;
    const char *digits = q;
    if (q < end && *q >= '1' && *q <= '9') {
        uint64_t u = 0;
        while (q < end && (unsigned char)(*q - '0') <= 9) {
            u = u * 10 + (unsigned char)(*q - '0'); /* wraps past 19 digits: not used then */
            q++;
        }
        if (q - digits <= 18 && !(q < end && (*q == '.' || *q == 'e' || *q == 'E'))) {
            pixel_value *v = pixel__value_new(j->arena, PIXEL_TYPE_INT);
            if (v) {
                v->u.i = neg ? -(int64_t)u : (int64_t)u;
                j->p = q;
            }
            return v;
        }
    }
    return parse_number_full(j);
}

static pixel_value *parse_value(jparser *j);

static pixel_value *parse_container(jparser *j, int is_object)
{
    if (++j->depth > MAX_DEPTH) {
        return jfail(j, "nesting deeper than 256"), NULL;
    }
    pixel_value *c = pixel__value_new(j->arena, is_object ? PIXEL_TYPE_OBJECT : PIXEL_TYPE_ARRAY);
    if (!c) {
        return NULL;
    }
    char close = is_object ? '}' : ']';
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return c;
    }
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        skip_ws(j);
        if (is_object) {
            if (j->p >= j->end || *j->p != '"') {
                return jfail(j, "member name expected"), NULL;
            }
            if (parse_string(j, &key, &klen) < 0) {
                return NULL;
            }
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                return jfail(j, "':' expected"), NULL;
            }
            j->p++;
        }
        /* strings and numbers (most values) here, the rest through parse_value */
        skip_ws(j);
        const char at = j->p < j->end ? *j->p : '\0';
        pixel_value *v;
        if (at == '"') {
            const char *s;
            size_t n;
            v = parse_string(j, &s, &n) < 0 ? NULL : pixel__value_string_view(j->arena, s, n);
        } else if ((unsigned char)(at - '0') <= 9 || at == '-') {
            v = parse_number(j);
        } else {
            v = parse_value(j);
        }
        if (!v) {
            return NULL;
        }
        pixel__object_add(c, key, klen, v);
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return c;
        }
        return jfail(j, is_object ? "',' or '}' expected" : "',' or ']' expected"), NULL;
    }
}

static pixel_value *literal(jparser *j, const char *word, pixel_type t, int b)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        return jfail(j, "unexpected character"), NULL;
    }
    j->p += n;
    pixel_value *v = pixel__value_new(j->arena, t);
    if (v) {
        v->u.b = b;
    }
    return v;
}

static pixel_value *parse_value(jparser *j)
{
    skip_ws(j);
    if (j->p >= j->end) {
        return jfail(j, "value expected"), NULL;
    }
    switch (*j->p) {
        case '{':
            return parse_container(j, 1);
        case '[':
            return parse_container(j, 0);
        case '"': {
            const char *s;
            size_t n;
            if (parse_string(j, &s, &n) < 0) {
                return NULL;
            }
            return pixel__value_string_view(j->arena, s, n);
        }
        case 't':
            return literal(j, "true", PIXEL_TYPE_BOOL, 1);
        case 'f':
            return literal(j, "false", PIXEL_TYPE_BOOL, 0);
        case 'n':
            return literal(j, "null", PIXEL_TYPE_NULL, 0);
        default:
            return parse_number(j);
    }
}

pixel_value *pixel__json_parse(pixel_arena *a, const char *text, size_t len, pixel_error *err)
{
    jparser j = {a, text, text, text + len, err, 0};
    pixel_value *v = parse_value(&j);
    if (!v) {
        if (err && err->code == 0) {
            pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_NONE, "out of memory");
        }
        return NULL;
    }
    skip_ws(&j);
    if (j.p != j.end) {
        jfail(&j, "trailing characters after the JSON value");
        return NULL;
    }
    return v;
}

pixel_value *pixel_json_parse(pixel_ctx *ctx, const char *text, size_t len, pixel_error *err)
{
    if (!ctx || !text) {
        pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_NONE, "no context or text");
        return NULL;
    }
    return pixel__json_parse(&ctx->arena, text, len, err);
}

/* ---- serialization ------------------------------------------------------ */

/* 1 for bytes that need an escape in a JSON string. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};

/* Writes the escape of c at o; returns the end.  Inlined where a call would
 * cost the vector constants of the loop around it. */
__attribute__((always_inline)) static inline char *escape_byte_inl(char *o, unsigned char c)
{
    *o++ = '\\';
    switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default: /* other control characters, and DEL for log safety */
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = "0123456789abcdef"[c >> 4];
            *o++ = "0123456789abcdef"[c & 15];
            break;
    }
    return o;
}

static char *escape_byte(char *o, unsigned char c)
{
    return escape_byte_inl(o, c);
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint32_t load32(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

#ifdef PIXEL_SIMD_SSE2
/* The bytes of v that need an escape, as lanes of 0xFF: the set of
 * pixel__json_special_v in fewer operations.  Controls and '"' are one
 * unsigned compare after flipping bit 1 (that maps '"' to 0x20 and keeps
 * 0x00..0x1F among themselves); '\\' and DEL are compared each. */
static inline __m128i json_bad(__m128i v)
{
    __m128i t = _mm_xor_si128(v, _mm_set1_epi8(0x02));
    __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(0x20)), t);
    return _mm_or_si128(low, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F))));
}

/* The constants of json_bad, made once per container and then opaque to
 * the compiler, so that they stay in registers across the member loop
 * rather than being loaded or built again at each check. */
typedef struct json_k {
    __m128i flip, top, bsl, del;
} json_k;

__attribute__((always_inline)) static inline json_k json_k_make(void)
{
#define JSON_K_ROW(c) {c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c}
    static const unsigned char tab[4][16] __attribute__((aligned(16))) = {
        JSON_K_ROW(0x02), JSON_K_ROW(0x20), JSON_K_ROW('\\'), JSON_K_ROW(0x7F)};
#undef JSON_K_ROW
    json_k k = {_mm_load_si128((const __m128i *)(const void *)tab[0]),
                _mm_load_si128((const __m128i *)(const void *)tab[1]),
                _mm_load_si128((const __m128i *)(const void *)tab[2]),
                _mm_load_si128((const __m128i *)(const void *)tab[3])};
    __asm__("" : "+x"(k.flip), "+x"(k.top), "+x"(k.bsl), "+x"(k.del));
    return k;
}

__attribute__((always_inline)) static inline __m128i json_bad_k(__m128i v, const json_k *k)
{
    __m128i t = _mm_xor_si128(v, k->flip);
    __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(t, k->top), t);
    return _mm_or_si128(low, _mm_or_si128(_mm_cmpeq_epi8(v, k->bsl), _mm_cmpeq_epi8(v, k->del)));
}

static inline unsigned json_special16(const unsigned char *p)
{
    return (unsigned)_mm_movemask_epi8(json_bad(_mm_loadu_si128((const __m128i *)(const void *)p)));
}
#else
#define json_special16 pixel__json_special16
typedef int json_k;
static inline json_k json_k_make(void)
{
    return 0;
}
#endif

/* Copies n bytes, 4 <= n <= 16, as two overlapping words. */
static inline void copy_short(char *o, const unsigned char *p, size_t n)
{
    if (n >= 8) {
        uint64_t a = load64(p), z = load64(p + n - 8);
        memcpy(o, &a, 8);
        memcpy(o + n - 8, &z, 8);
    } else {
        uint32_t a = load32(p), z = load32(p + n - 4);
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &z, 4);
    }
}

/* Whether n bytes, 4 <= n <= 16, need no escape. */
static inline bool short_is_plain(const unsigned char *p, size_t n)
{
    return pixel__json_special_short(p, n) == 0;
}

/*
 * The end of a string from p on, once the blocks of 32 are done: blocks of
 * 16 while they need nothing, then the tail.  The tail is one more block
 * that overlaps what was already copied, when all of that overlap went out
 * verbatim (`clean`: output since there is a verbatim copy); else two
 * overlapping words of 8 or 4 bytes, or byte by byte.  Returns the end of
 * the output (no closing quote).
 */
__attribute__((always_inline)) static inline char *escape_tail(char *o, const unsigned char *p,
                                                               const unsigned char *end,
                                                               const unsigned char *clean,
                                                               size_t len)
{
    while (end - p >= 16) {
        unsigned m = json_special16(p);
        pixel__copy16(o, p);
        if (PIXEL_LIKELY(!m)) {
            o += 16;
            p += 16;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(m);
        o = escape_byte(o + k, p[k]);
        p += k + 1;
        clean = p;
    }
    size_t rem = (size_t)(end - p);
    if (rem == 0) {
        return o;
    }
    if (len >= 16 && end - 16 >= clean) {
        const unsigned char *t = end - 16;
        if (!json_special16(t)) {
            pixel__copy16(o - (p - t), t);
            return o + rem;
        }
    } else if (rem >= 4 && short_is_plain(p, rem)) {
        copy_short(o, p, rem);
        return o + rem;
    }
    for (; p < end; p++) {
        if (needs_escape[*p]) {
            o = escape_byte(o, *p);
        } else {
            *o++ = (char)*p;
        }
    }
    return o;
}

/* The body of a string (no quotes) at o with SSE2: two blocks of 16 a step
 * while they need nothing (most text), a byte that needs an escape rewinding
 * the output to it.  Returns the end. */
static char *escape_body(char *o, const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len, *clean = p;
    while (end - p >= 32) {
        unsigned m = json_special16(p) | json_special16(p + 16) << 16;
        pixel__copy16(o, p);
        pixel__copy16(o + 16, p + 16);
        if (PIXEL_LIKELY(!m)) {
            o += 32;
            p += 32;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(m);
        o = escape_byte(o + k, p[k]);
        p += k + 1;
        clean = p;
    }
    return escape_tail(o, p, end, clean, len);
}

/* The AVX2 paths, picked at run time; -DPIXEL_NO_AVX2 builds without them
 * (to test the SSE2 paths on a CPU that has AVX2). */
#if defined(PIXEL_SIMD_SSE2) && defined(__x86_64__) && defined(__GNUC__) && !defined(PIXEL_NO_AVX2)
#include <immintrin.h>
#define PIXEL_JSON_AVX2 1

/* escape_body with blocks of 32 (len >= 32): two a step while they need
 * nothing, then one, then a last one overlapping what was copied verbatim
 * when it may; what is left goes to escape_tail.  A byte that needs an
 * escape rewinds the output to it.  The escapes are inlined: a call would
 * cost the vector constants, which are built once here. */
__attribute__((target("avx2"))) static char *escape_body_avx2(char *o, const unsigned char *p,
                                                              size_t len)
{
    const unsigned char *end = p + len, *clean = p;
    __m256i flip = _mm256_set1_epi8(0x02), top = _mm256_set1_epi8(0x20);
    __m256i bsl = _mm256_set1_epi8('\\'), del = _mm256_set1_epi8(0x7F);
    /* opaque to the compiler from here on, so they stay in registers rather
     * than being built anew before each use */
    __asm__("" : "+x"(flip), "+x"(top), "+x"(bsl), "+x"(del));
#define SPECIAL32(v, t)                                                                           \
    ((t) = _mm256_xor_si256((v), flip),                                                           \
     (uint32_t)_mm256_movemask_epi8(                                                              \
         _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8((t), top), (t)),                       \
                         _mm256_or_si256(_mm256_cmpeq_epi8((v), bsl), _mm256_cmpeq_epi8((v), del)))))
    __m256i t, u;
    for (;;) {
        uint64_t m;
        if (end - p >= 64) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
            __m256i z = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
            _mm256_storeu_si256((__m256i *)(void *)o, a);
            _mm256_storeu_si256((__m256i *)(void *)(o + 32), z);
            m = SPECIAL32(a, t) | (uint64_t)SPECIAL32(z, u) << 32;
            if (PIXEL_LIKELY(!m)) {
                o += 64;
                p += 64;
                continue;
            }
        } else if (end - p >= 32) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
            _mm256_storeu_si256((__m256i *)(void *)o, a);
            m = SPECIAL32(a, t);
            if (PIXEL_LIKELY(!m)) {
                o += 32;
                p += 32;
                continue;
            }
        } else {
            break;
        }
        unsigned k = (unsigned)__builtin_ctzll(m);
        o = escape_byte_inl(o + k, p[k]);
        p += k + 1;
        clean = p;
    }
    if (p != end && end - 32 >= clean) {
        /* the last 32 bytes, of which those before p went out verbatim */
        const unsigned char *at = end - 32;
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)at);
        if (!SPECIAL32(a, t)) {
            _mm256_storeu_si256((__m256i *)(void *)(o - (p - at)), a);
            return o + (end - p);
        }
    }
#undef SPECIAL32
    return escape_tail(o, p, end, clean, len);
}

#endif

/*
 * Appends s as a JSON string.  Blocks are copied as they are and then
 * checked; a byte that needs an escape rewinds the output to it.  Strings of
 * 32 bytes or more take blocks of 32 where the CPU has AVX2.
 */
int pixel__json_escape(pixel_buf *b, const char *s, size_t len)
{
    /* Worst case 6 bytes per input byte, plus quotes and a block of slack. */
    if (PIXEL_UNLIKELY(b->cap - b->len < len * 6 + 35) && pixel__buf_reserve(b, len * 6 + 35) < 0) {
        return -1;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    const unsigned char *p = (const unsigned char *)s;
#ifdef PIXEL_JSON_AVX2
    if (len >= 32 && __builtin_cpu_supports("avx2")) {
        o = escape_body_avx2(o, p, len);
    } else
#endif
    {
        o = escape_body(o, p, len);
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

int pixel__format_double(char *out, size_t size, double d)
{
    if (!isfinite(d)) {
        return snprintf(out, size, "null");
    }
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(out, size, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d) {
            return n;
        }
    }
    return 0;
}

/* Writes the decimal digits of i at o (room for 20 bytes); returns the end.
 * The digits are counted first, then written in place from the last pair. */
static inline char *put_int(char *o, int64_t i)
{
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                                   "25262728293031323334353637383940414243444546474849"
                                   "50515253545556575859606162636465666768697071727374"
                                   "75767778798081828384858687888990919293949596979899";
    uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
    if (i < 0) {
        *o++ = '-';
    }
    if (u < 10) {
        *o = (char)('0' + u);
        return o + 1;
    }
    /* The digit count from the bit length: t is floor(log10) of 2^bits
     * (1233/4096 ~ log10 2), one less than the count when u < 10^t. */
    static const uint64_t pow10[20] = {1u,
                                       10u,
                                       100u,
                                       1000u,
                                       10000u,
                                       100000u,
                                       1000000u,
                                       10000000u,
                                       100000000u,
                                       1000000000u,
                                       10000000000u,
                                       100000000000u,
                                       1000000000000u,
                                       10000000000000u,
                                       100000000000000u,
                                       1000000000000000u,
                                       10000000000000000u,
                                       100000000000000000u,
                                       1000000000000000000u,
                                       10000000000000000000u};
    unsigned t = ((unsigned)(64 - __builtin_clzll(u)) * 1233u) >> 12;
    size_t n = t + (u >= pow10[t]);
    char *p = o + n;
    /* four digits a step: one division by 10000, then the two pairs of the
     * remainder with a 32-bit multiply (r * 5243 >> 19 is r / 100 for
     * r < 10000) */
    while (u >= 10000) {
        uint64_t q = u / 10000;
        unsigned r = (unsigned)(u - q * 10000);
        unsigned hi = (r * 5243u) >> 19, lo = r - hi * 100;
        u = q;
        p -= 4;
        memcpy(p, pairs + 2 * hi, 2);
        memcpy(p + 2, pairs + 2 * lo, 2);
    }
    if (u >= 100) {
        unsigned hi = ((unsigned)u * 5243u) >> 19, lo = (unsigned)u - hi * 100;
        u = hi;
        p -= 2;
        memcpy(p, pairs + 2 * lo, 2);
    }
    if (u >= 10) {
        memcpy(p - 2, pairs + 2 * u, 2);
    } else {
        p[-1] = (char)('0' + u);
    }
    return o + n;
}

/* Room that every member may use without a check: the separator, a plain
 * key's quotes and colon, and the longest scalar written in place (a quoted
 * plain string of up to 32 bytes, or 46 when flagged plain, an integer, a
 * literal).  More than MEMBER_SLACK bytes are free where a value starts. */
#define MEMBER_SLACK 48

static int dump_container(pixel_buf *b, const pixel_value *v);

/* The longest name written without a check of its own (framed names are
 * up to 27 bytes, their frames written as one block of 32). */
#define KEY_ROOM 32

/* The room checked for before each member: a name of up to KEY_ROOM bytes
 * with its separator, quotes and colon, and MEMBER_SLACK for the value. */
#define MEMBER_ROOM (KEY_ROOM + MEMBER_SLACK + 4)

/* How deep objects in objects are followed without a call. */
#define NEST_MAX 8

/* Whether n bytes, n <= 3, need no escape: the first, middle and last byte
 * cover them all. */
static inline bool tiny_is_plain(const unsigned char *p, size_t n)
{
    return n == 0 || !(needs_escape[p[0]] | needs_escape[p[n / 2]] | needs_escape[p[n - 1]]);
}

/* Whether 17 to 32 bytes at p need an escape: blocks of 16 at both ends,
 * checked together (for the clone of the serializer built without AVX2). */
typedef bool (*bad_17_32_fn)(const unsigned char *p, size_t n, const json_k *k);
__attribute__((always_inline)) static inline bool bad_17_32(const unsigned char *p, size_t n,
                                                           const json_k *k)
{
#ifdef PIXEL_SIMD_SSE2
    __m128i bad = _mm_or_si128(
        json_bad_k(_mm_loadu_si128((const __m128i *)(const void *)p), k),
        json_bad_k(_mm_loadu_si128((const __m128i *)(const void *)(p + n - 16)), k));
    return _mm_movemask_epi8(bad) != 0;
#else
    (void)k;
    return (pixel__json_special16(p) | pixel__json_special16(p + n - 16)) != 0;
#endif
}

#ifdef PIXEL_JSON_AVX2
/* The same with the two blocks as the halves of one AVX2 vector. */
__attribute__((always_inline, target("avx2"))) static inline bool
bad_17_32_avx2(const unsigned char *p, size_t n, const json_k *k)
{
    __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p)),
        _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16)), 1);
    __m256i flip = _mm256_broadcastsi128_si256(k->flip), top = _mm256_broadcastsi128_si256(k->top);
    __m256i bsl = _mm256_broadcastsi128_si256(k->bsl), del = _mm256_broadcastsi128_si256(k->del);
    __m256i t = _mm256_xor_si256(v, flip);
    __m256i bad = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(t, top), t),
                                  _mm256_or_si256(_mm256_cmpeq_epi8(v, bsl), _mm256_cmpeq_epi8(v, del)));
    return !_mm256_testz_si256(bad, bad);
}
#endif

/* A string of 32 to PLAIN_LONG_MAX bytes not known to be plain, quoted at
 * o (n + 2 bytes free there) when it needs no escape: returns the end, or
 * NULL (the output past o is then garbage) when it needs one or this clone
 * of the serializer has no such check. */
#define PLAIN_LONG_MAX 256
typedef char *(*plain_long_fn)(char *o, const unsigned char *p, size_t n, const json_k *k);
__attribute__((always_inline)) static inline char *plain_long_none(char *o, const unsigned char *p,
                                                                   size_t n, const json_k *k)
{
    (void)o, (void)p, (void)n, (void)k;
    return NULL;
}

#ifdef PIXEL_JSON_AVX2
/* Blocks of 32 copied, and their findings gathered in one vector that is
 * tested once at the end; the last block overlaps the one before. */
__attribute__((always_inline, target("avx2"))) static inline char *
plain_long_avx2(char *o, const unsigned char *p, size_t n, const json_k *k)
{
    if (n < 32) {
        return NULL;
    }
    const __m256i flip = _mm256_broadcastsi128_si256(k->flip);
    const __m256i top = _mm256_broadcastsi128_si256(k->top);
    const __m256i bsl = _mm256_broadcastsi128_si256(k->bsl);
    const __m256i del = _mm256_broadcastsi128_si256(k->del);
    __m256i acc = _mm256_setzero_si256();
#define PLAIN_LONG_BLOCK(at)                                                                       \
    do {                                                                                           \
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + (at)));                 \
        _mm256_storeu_si256((__m256i *)(void *)(o + 1 + (at)), v);                                 \
        __m256i t = _mm256_xor_si256(v, flip);                                                     \
        acc = _mm256_or_si256(acc, _mm256_cmpeq_epi8(_mm256_min_epu8(t, top), t));                \
        acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_cmpeq_epi8(v, bsl),                      \
                                                   _mm256_cmpeq_epi8(v, del)));                    \
    } while (0)
    for (size_t i = 0; i + 32 < n; i += 32) {
        PLAIN_LONG_BLOCK(i);
    }
    PLAIN_LONG_BLOCK(n - 32);
#undef PLAIN_LONG_BLOCK
    if (!_mm256_testz_si256(acc, acc)) {
        return NULL;
    }
    o[0] = '"';
    o[n + 1] = '"';
    return o + n + 2;
}
#endif

/* A string of up to 32 bytes (most member values) that needs no escape is
 * written at o (more than MEMBER_SLACK bytes free there).  One dispatch on
 * the length loads the text once, as two overlapping blocks or words (bytes
 * one by one under 4); the same loads are checked for escapes, unless the
 * text is known plain (flagged PIXEL_VALUE_PLAIN_STR), and stored.  Returns the end of what
 * was written, or NULL for any other string. */
__attribute__((always_inline)) static inline char *put_short_text(char *o, const unsigned char *p,
                                                                  const size_t n, const bool known,
                                                                  const json_k *k,
                                                                  const bad_17_32_fn bad32,
                                                                  const bool quoted)
{
    if (n >= 8) {
        if (n > 16) {
            if (n > 32) {
                /* Up to 46 bytes of known-plain text (event ids) still fit in the slack. */
                if (n > MEMBER_SLACK - 2 || !known) {
                    return NULL;
                }
                pixel__copy16(o + 17, p + 16);
            } else if (!known && bad32(p, n, k)) {
                return NULL;
            }
            pixel__copy16(o + 1, p);
            pixel__copy16(o + 1 + n - 16, p + n - 16);
        } else {
            uint64_t a = load64(p), z = load64(p + n - 8);
#ifdef PIXEL_SIMD_SSE2
            if (!known &&
                _mm_movemask_epi8(json_bad_k(_mm_set_epi64x((long long)z, (long long)a), k)) != 0) {
                return NULL;
            }
#else
            if (!known && !short_is_plain(p, n)) {
                return NULL;
            }
#endif
            memcpy(o + 1, &a, 8);
            memcpy(o + 1 + n - 8, &z, 8);
        }
    } else if (n >= 4) {
        uint32_t a = load32(p), z = load32(p + n - 4);
#ifdef PIXEL_SIMD_SSE2
        if (!known &&
            _mm_movemask_epi8(json_bad_k(_mm_set_epi32((int)z, (int)a, (int)z, (int)a), k)) != 0) {
            return NULL;
        }
#else
        if (!known && !short_is_plain(p, n)) {
            return NULL;
        }
#endif
        memcpy(o + 1, &a, 4);
        memcpy(o + 1 + n - 4, &z, 4);
    } else if (n > 0) {
        if (!known && !tiny_is_plain(p, n)) {
            return NULL;
        }
        o[1] = (char)p[0];
        o[1 + n / 2] = (char)p[n / 2];
        o[n] = (char)p[n - 1];
    }
    if (!quoted) {
        o[0] = '"';
    }
    o[n + 1] = '"';
    return o + n + 2;
}

/* n bytes, 1 <= n <= 32, copied to o (more than 32 bytes free there) as
 * overlapping blocks or words; returns the end. */
static inline char *put_raw(char *o, const unsigned char *p, size_t n)
{
    if (n >= 16) {
        pixel__copy16(o, p);
        pixel__copy16(o + n - 16, p + n - 16);
    } else if (n >= 4) {
        copy_short(o, p, n);
    } else {
        o[0] = (char)p[0];
        o[n / 2] = (char)p[n / 2];
        o[n - 1] = (char)p[n - 1];
    }
    return o + n;
}

/* put_short_text for a string value (quoted: its opening quote is already at o). */
__attribute__((always_inline)) static inline char *put_short_plain(char *o, const pixel_value *m,
                                                                   const bool known, const json_k *k,
                                                                   const bad_17_32_fn bad32,
                                                                   const bool quoted)
{
    return put_short_text(o, (const unsigned char *)m->u.str.s, m->u.str.len, known, k, bad32,
                          quoted);
}

/* Text of 16 bytes or more known to need no escape, quoted at o (n + 2
 * bytes free there): blocks of 16, the last one overlapping the one before.
 * Returns the end. */
static inline char *put_plain_blocks(char *o, const unsigned char *p, size_t n)
{
    o[0] = '"';
    for (size_t i = 0; i + 16 < n; i += 16) {
        pixel__copy16(o + 1 + i, p + i);
    }
    pixel__copy16(o + 1 + n - 16, p + n - 16);
    o[n + 1] = '"';
    return o + n + 2;
}

/* A string that put_short_plain did not take. */
static int long_string(pixel_buf *b, const pixel_value *m)
{
    const size_t n = m->u.str.len;
    if (!(m->flags & PIXEL_VALUE_PLAIN_STR)) {
        return pixel__json_escape(b, m->u.str.s, n);
    }
    if (PIXEL_UNLIKELY(b->cap - b->len < n + 3) && pixel__buf_reserve(b, n + 3) < 0) {
        return -1;
    }
    b->len = (size_t)(put_plain_blocks(b->data + b->len, (const unsigned char *)m->u.str.s, n) -
                      b->data);
    return 0;
}

/* Writes one scalar at b->len, or the whole of a container; 0 or -1. */
__attribute__((noinline)) static int dump_value(pixel_buf *b, const pixel_value *m)
{
    char *o = b->data + b->len; /* MEMBER_SLACK bytes are free here */
    switch (m->type) {
        case PIXEL_TYPE_STRING: {
            const json_k k = json_k_make();
            char *e = put_short_plain(o, m, m->flags & PIXEL_VALUE_PLAIN_STR, &k, bad_17_32, false);
            if (e) {
                b->len = (size_t)(e - b->data);
                return 0;
            }
            return long_string(b, m);
        }
        case PIXEL_TYPE_INT:
            b->len = (size_t)(put_int(o, m->u.i) - b->data);
            return 0;
        case PIXEL_TYPE_OBJECT:
        case PIXEL_TYPE_ARRAY:
            return dump_container(b, m);
        case PIXEL_TYPE_NULL:
            memcpy(o, "null", 4);
            b->len += 4;
            return 0;
        case PIXEL_TYPE_BOOL:
            memcpy(o, m->u.b ? "true" : "false", 5);
            b->len += m->u.b ? 4 : 5;
            return 0;
        case PIXEL_TYPE_NUMBER: {
            if (m->flags & PIXEL_VALUE_RAW) {
                return pixel__buf_append(b, m->u.num.raw, m->u.num.rawlen);
            }
            char tmp[40];
            int n = pixel__format_double(tmp, sizeof(tmp), m->u.num.d);
            return pixel__buf_append(b, tmp, (size_t)n);
        }
        default:
            return -1;
    }
}

/* Copies n bytes of text to o (nothing is written past them); returns the
 * end.  Each clone of the serializer has its own. */
typedef char *(*copy_text_fn)(char *o, const char *text, size_t n);
__attribute__((always_inline)) static inline char *copy_text_base(char *o, const char *text,
                                                                  size_t n)
{
    memcpy(o, text, n);
    return o + n;
}

#ifdef PIXEL_JSON_AVX2
/* Blocks of 32, the last one overlapping the one before. */
__attribute__((always_inline, target("avx2"))) static inline char *
copy_text_avx2(char *o, const char *text, size_t n)
{
    if (n < 32) {
        /* overlapping blocks or words, not a call */
        if (n >= 16) {
            pixel__copy16(o, (const unsigned char *)text);
            pixel__copy16(o + n - 16, (const unsigned char *)text + n - 16);
        } else if (n >= 4) {
            copy_short(o, (const unsigned char *)text, n);
        } else if (n > 0) {
            o[0] = text[0];
            o[n / 2] = text[n / 2];
            o[n - 1] = text[n - 1];
        }
        return o + n;
    }
    for (size_t i = 0; i + 32 < n; i += 32) {
        _mm256_storeu_si256((__m256i *)(void *)(o + i),
                            _mm256_loadu_si256((const __m256i *)(const void *)(text + i)));
    }
    _mm256_storeu_si256((__m256i *)(void *)(o + n - 32),
                        _mm256_loadu_si256((const __m256i *)(const void *)(text + n - 32)));
    return o + n;
}
#endif

/* A member's type and flags as one word (the flags in the high half), to
 * tell the usual members (a pipeline name and a string, known plain or not)
 * from the rest with a mask and a compare.  On little-endian
 * targets they are the first four bytes of the value, read at once (the byte
 * between them is masked out). */
#define KIND_FRAMED ((uint32_t)PIXEL_VALUE_FRAMED_KEY << 16)
#define KIND_PLAIN  ((uint32_t)PIXEL_VALUE_PLAIN_STR << 16)
static inline uint32_t member_kind(const pixel_value *m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    _Static_assert(offsetof(pixel_value, type) == 0 && offsetof(pixel_value, flags) == 2,
                   "member_kind reads type and flags as one word");
    uint32_t w;
    memcpy(&w, m, 4);
    return w & 0xFFFF00FFu;
#else
    return m->type | (uint32_t)m->flags << 16;
#endif
}

/*
 * The members of an object (obj) or the elements of an array, each after a
 * ',', from b->len on.  The output position is kept in a local pointer and
 * written back to b->len only around calls.  Before each member the buffer
 * is grown, when needed, to hold a key of up to KEY_ROOM bytes (a longer
 * plain key checks for itself) and MEMBER_SLACK more bytes, so the
 * separator, a plain key and a short scalar are written without further
 * checks; longer strings and nested containers reserve for themselves.  A
 * member with a name of the pipeline and a string value (most of an event)
 * is told apart by one word of type and flags, and its value written with
 * the plain check compiled in or out.  In an object, non-empty objects
 * nested up to NEST_MAX deep are walked by the same loop (no call per nested
 * object); arrays, empty and deeper objects go to dump_container.  Inlined
 * twice, with obj a constant.
 */
__attribute__((always_inline)) static inline int dump_members(pixel_buf *b, const pixel_value *v,
                                                              const bool obj, const bad_17_32_fn bad32,
                                                              const plain_long_fn plong,
                                                              const copy_text_fn copy_text)
{
    /* Non-empty objects nested in an object are walked by this same loop:
     * the member after each one and where its bracket goes are kept here. */
    struct {
        const pixel_value *next;
        size_t open;
    } up[NEST_MAX], *top = up; /* top: the next free entry */
    const json_k jk = json_k_make();
    /* `stop` is MEMBER_ROOM bytes before the end of the buffer: a member
     * starting before it has its room (the buffer always holds more than
     * MEMBER_ROOM bytes, so it points into it). */
    if (PIXEL_UNLIKELY(b->cap - b->len <= MEMBER_ROOM) && pixel__buf_reserve(b, MEMBER_ROOM) < 0) {
        return -1;
    }
    char *o = b->data + b->len, *stop = b->data + b->cap - MEMBER_ROOM;
    /* After a member: the next one, straight to its code while there is
     * one (each path has its own jump back), else the end of the list. */
#define NEXT_MEMBER                                                                                \
    do {                                                                                           \
        m = m->next;                                                                               \
        if (PIXEL_LIKELY(m != NULL)) {                                                             \
            goto member;                                                                           \
        }                                                                                          \
        goto list_end;                                                                             \
    } while (0)
    for (const pixel_value *m = v->u.list.head;; m = m->next) {
    list_end:
        while (!m) {
            /* the end of a list: of this container, or of a nested object */
            if (!obj || top == up) {
                goto done;
            }
            if (PIXEL_UNLIKELY(o > stop + (MEMBER_ROOM - 2))) {
                b->len = (size_t)(o - b->data);
                if (pixel__buf_reserve(b, 2) < 0) {
                    return -1;
                }
                o = b->data + b->len;
                stop = b->data + b->cap - MEMBER_ROOM;
            }
            top--;
            b->data[top->open] = '{';
            *o++ = '}';
            m = top->next;
        }
    member:
        /* room for a member with a name of up to KEY_ROOM bytes (longer
         * ones reserve theirs below) */
        if (PIXEL_UNLIKELY(o >= stop)) {
            b->len = (size_t)(o - b->data);
            if (pixel__buf_reserve(b, MEMBER_ROOM) < 0) {
                return -1;
            }
            o = b->data + b->len;
            stop = b->data + b->cap - MEMBER_ROOM;
        }
        uint32_t kind;
        if (!obj) {
            *o++ = ',';
        } else if ((kind = member_kind(m)) & KIND_FRAMED) {
            /* `,"name":` and a string's opening quote as one block of 32
             * (KEY_ROOM bytes are free at o, and the frames are followed by
             * 32 zeros, pixel__map_frame_keys); a value other than a
             * string writes over the quote */
            copy_text(o, m->key - 2, KEY_ROOM);
            o += m->klen + 4;
            /* the usual members: a pipeline name and a string, known plain or not */
            kind &= KIND_PLAIN | 0xFF;
            if (kind == (PIXEL_TYPE_STRING | KIND_PLAIN)) {
                char *e = put_short_plain(o, m, true, &jk, bad32, true);
                if (PIXEL_LIKELY(e != NULL)) {
                    o = e;
                    NEXT_MEMBER;
                }
                goto long_string;
            }
            if (kind == PIXEL_TYPE_STRING) {
                char *e = put_short_plain(o, m, false, &jk, bad32, true);
                if (PIXEL_LIKELY(e != NULL)) {
                    o = e;
                    NEXT_MEMBER;
                }
                goto long_string;
            }
            goto not_string; /* the type is known not to be a string */
        } else if (PIXEL_LIKELY(kind & ((uint32_t)PIXEL_VALUE_PLAIN_KEY << 16))) {
            /* a key from the configuration, checked at load: no escapes */
            const size_t kl = m->klen;
            const unsigned char *k = (const unsigned char *)m->key;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            if (kl - 4 <= 10) {
                /* 4 to 14 bytes: ",\"" and the key's first bytes as one word,
                 * the key's last bytes over the rest, then "\":" */
                uint64_t a = kl >= 8 ? load64(k) : load32(k), z;
                a = a << 16 | 0x222C; /* ',' '"' */
                memcpy(o, &a, 8);
                if (kl >= 8) {
                    z = load64(k + kl - 8);
                    memcpy(o + 2 + kl - 8, &z, 8);
                } else {
                    uint32_t z4 = load32(k + kl - 4);
                    memcpy(o + 2 + kl - 4, &z4, 4);
                }
                memcpy(o + 2 + kl, "\":", 2);
                o += kl + 4;
                goto value;
            }
#endif
            if (PIXEL_UNLIKELY(kl > KEY_ROOM) &&
                (size_t)(stop + MEMBER_ROOM - o) <= kl + MEMBER_SLACK + 4) {
                b->len = (size_t)(o - b->data);
                if (pixel__buf_reserve(b, kl + MEMBER_SLACK + 4) < 0) {
                    return -1;
                }
                o = b->data + b->len;
                stop = b->data + b->cap - MEMBER_ROOM;
            }
            o[0] = ',';
            o[1] = '"';
            o += 2;
            if (kl >= 4 && kl <= 16) {
                copy_short(o, k, kl);
            } else if (kl < 4 && kl > 0) {
                o[0] = m->key[0];
                o[kl / 2] = m->key[kl / 2];
                o[kl - 1] = m->key[kl - 1];
            } else {
                memcpy(o, m->key, kl);
            }
            o += kl;
            o[0] = '"';
            o[1] = ':';
            o += 2;
        } else {
            /* a name not checked at load (a module's, a parsed text's):
             * in place when it is short and needs no escape */
            char *e = m->klen <= KEY_ROOM ? put_short_text(o + 1, (const unsigned char *)m->key,
                                                           m->klen, false, &jk, bad32, false)
                                          : NULL;
            if (PIXEL_LIKELY(e != NULL)) {
                *o = ',';
                *e = ':';
                o = e + 1;
                goto value;
            }
            *o = ',';
            b->len = (size_t)(o + 1 - b->data);
            if (pixel__json_escape(b, m->key, m->klen) < 0 || pixel__buf_putc(b, ':') < 0 ||
                pixel__buf_reserve(b, MEMBER_SLACK) < 0) {
                return -1;
            }
            o = b->data + b->len;
            stop = b->data + b->cap - MEMBER_ROOM;
        }
        /* The value: short plain strings and integers in place. */
    value:
        if (PIXEL_LIKELY(m->type == PIXEL_TYPE_STRING)) {
            char *e = put_short_plain(o, m, m->flags & PIXEL_VALUE_PLAIN_STR, &jk, bad32, false);
            if (PIXEL_LIKELY(e != NULL)) {
                o = e;
                NEXT_MEMBER;
            }
        long_string:;
            const size_t n = m->u.str.len;
            const bool known = m->flags & PIXEL_VALUE_PLAIN_STR;
            if (known || (plong != plain_long_none && n <= PLAIN_LONG_MAX)) {
                /* longer text (URLs, paths, user agents) copied here: when
                 * known plain, else when the check finds nothing */
                if ((size_t)(stop + MEMBER_ROOM - o) <= n + 2) {
                    b->len = (size_t)(o - b->data);
                    if (pixel__buf_reserve(b, n + 2) < 0) {
                        return -1;
                    }
                    o = b->data + b->len;
                    stop = b->data + b->cap - MEMBER_ROOM;
                }
                if (known) {
                    if (copy_text == copy_text_base) {
                        o = put_plain_blocks(o, (const unsigned char *)m->u.str.s, n);
                    } else {
                        *o = '"';
                        o = copy_text(o + 1, m->u.str.s, n);
                        *o++ = '"';
                    }
                    NEXT_MEMBER;
                }
                char *end = plong(o, (const unsigned char *)m->u.str.s, n, &jk);
                if (end) {
                    o = end;
                    NEXT_MEMBER;
                }
            }
            b->len = (size_t)(o - b->data);
            if (pixel__json_escape(b, m->u.str.s, n) < 0) {
                return -1;
            }
        } else {
        not_string:
            if (obj && m->type == PIXEL_TYPE_OBJECT && m->u.list.head &&
                ((m->flags & PIXEL_VALUE_IMAGE) || top < up + NEST_MAX)) {
                if (m->flags & PIXEL_VALUE_IMAGE) {
                    /* A module's result emitted from a shape image, still as
                     * emitted: the image's text, written once. */
                    const pixel__image *im = pixel__image_check_stamped(m);
                    size_t tn;
                    const char *text = im ? pixel__image_json(im, &tn) : NULL;
                    if (text) {
                        if ((size_t)(stop + MEMBER_ROOM - o) <= tn) {
                            b->len = (size_t)(o - b->data);
                            if (pixel__buf_reserve(b, tn + MEMBER_ROOM) < 0) {
                                return -1;
                            }
                            o = b->data + b->len;
                            stop = b->data + b->cap - MEMBER_ROOM;
                        }
                        o = copy_text(o, text, tn);
                        NEXT_MEMBER;
                    }
                    if (top == up + NEST_MAX) {
                        goto deep; /* a stale image too deep to follow here */
                    }
                }
                /* into a nested object: its first ',' is where '{' goes */
                top->next = m->next;
                top->open = (size_t)(o - b->data);
                top++;
                m = m->u.list.head;
                goto member;
            } else if (m->type == PIXEL_TYPE_INT) {
                o = put_int(o, m->u.i);
                NEXT_MEMBER;
            } else if (m->type == PIXEL_TYPE_NUMBER && (m->flags & PIXEL_VALUE_RAW) &&
                       m->u.num.rawlen - 1 < 32) {
                /* a number kept as the literal it came from (1 to 32 bytes) */
                o = put_raw(o, (const unsigned char *)m->u.num.raw, m->u.num.rawlen);
                NEXT_MEMBER;
            } else if (m->type >= PIXEL_TYPE_ARRAY) {
            deep:
                /* an array, an empty or deep object: to its own loop */
                b->len = (size_t)(o - b->data);
                if (dump_container(b, m) < 0) {
                    return -1;
                }
            } else {
                b->len = (size_t)(o - b->data);
                if (dump_value(b, m) < 0) {
                    return -1;
                }
            }
        }
        o = b->data + b->len;
        stop = b->data + b->cap - MEMBER_ROOM;
    }
#undef NEXT_MEMBER
done:
    b->len = (size_t)(o - b->data);
    return 0;
}

/* An object or array, at b->len with more than MEMBER_SLACK bytes free.
 * The first member's ',' lands where the opening bracket goes, and the
 * bracket is written over it at the end.  Not NUL-terminated (the caller
 * of the whole dump ends the text). */
__attribute__((always_inline)) static inline int container_body(pixel_buf *b, const pixel_value *v,
                                                                const bad_17_32_fn bad32,
                                                                const plain_long_fn plong,
                                                              const copy_text_fn copy_text)
{
    const bool obj = v->type == PIXEL_TYPE_OBJECT;
    const size_t open = b->len;
    if ((obj ? dump_members(b, v, true, bad32, plong, copy_text)
             : dump_members(b, v, false, bad32, plong, copy_text)) < 0) {
        return -1;
    }
    if (PIXEL_UNLIKELY(b->cap - b->len < 2) && pixel__buf_reserve(b, 2) < 0) {
        return -1;
    }
    b->data[open] = obj ? '{' : '[';
    if (!v->u.list.head) {
        b->len = open + 1;
    }
    b->data[b->len++] = obj ? '}' : ']';
    return 0;
}

__attribute__((noinline)) static int dump_container_base(pixel_buf *b, const pixel_value *v)
{
    return container_body(b, v, bad_17_32, plain_long_none, copy_text_base);
}

#ifdef PIXEL_JSON_AVX2
/* The same code for CPUs with AVX2: its vector compares take three
 * operands, which saves the register copies of the checks. */
__attribute__((noinline, target("avx2"))) static int dump_container_avx2(pixel_buf *b,
                                                                          const pixel_value *v)
{
    return container_body(b, v, bad_17_32_avx2, plain_long_avx2, copy_text_avx2);
}
#endif

static int dump_container(pixel_buf *b, const pixel_value *v)
{
#ifdef PIXEL_JSON_AVX2
    if (__builtin_cpu_supports("avx2")) {
        return dump_container_avx2(b, v);
    }
#endif
    return dump_container_base(b, v);
}

int pixel__json_dump(pixel_buf *b, const pixel_value *v)
{
    if (PIXEL_UNLIKELY(b->cap - b->len <= MEMBER_SLACK) &&
        pixel__buf_reserve(b, MEMBER_SLACK) < 0) {
        return -1;
    }
    /* an event is an object: straight to its loop */
    const bool container = v->type == PIXEL_TYPE_OBJECT || v->type == PIXEL_TYPE_ARRAY;
    if ((container ? dump_container(b, v) : dump_value(b, v)) < 0) {
        return -1;
    }
    b->data[b->len] = '\0';
    return 0;
}

const char *pixel_value_dump(pixel_ctx *ctx, const pixel_value *v, size_t *len)
{
    ctx->out.len = 0;
    if (!v || pixel__json_dump(&ctx->out, v) < 0 || pixel__buf_reserve(&ctx->out, 1) < 0) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }
    ctx->out.data[ctx->out.len] = '\0';
    if (len) {
        *len = ctx->out.len;
    }
    return ctx->out.data;
}
