/*
 * Sixteen bytes at a time: the byte classes the scanners look for, as a bit
 * mask (bit i for byte i).  SSE2 is part of every x86-64, so that is the
 * vector path; elsewhere the same masks are built a byte at a time, which is
 * slower but gives identical results.
 */
#ifndef PIXEL_SIMD_H
#define PIXEL_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define PIXEL_SIMD_SSE2 1
#endif

/* Bytes a JSON string must escape: < 0x20, '"', '\\', and DEL (for log safety). */
#ifdef PIXEL_SIMD_SSE2
static inline unsigned pixel__json_special_v(__m128i v)
{
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
    __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i bs = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    __m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(ctl, q), _mm_or_si128(bs, del)));
}
#endif

static inline unsigned pixel__json_special16(const unsigned char *p)
{
#ifdef PIXEL_SIMD_SSE2
    return pixel__json_special_v(_mm_loadu_si128((const __m128i *)(const void *)p));
#else
    unsigned m = 0;
    for (unsigned i = 0; i < 16; i++) {
        unsigned char c = p[i];
        m |= (unsigned)(c < 0x20 || c == '"' || c == '\\' || c == 0x7F) << i;
    }
    return m;
#endif
}

/* Nonzero when some of n bytes, 4 <= n <= 16, needs an escape.  The bytes
 * are read as two overlapping words (of 8, or of 4 when n < 8) into one
 * block, so nothing outside the n bytes is read. */
static inline unsigned pixel__json_special_short(const unsigned char *p, size_t n)
{
#ifdef PIXEL_SIMD_SSE2
    uint64_t a, z = 0;
    unsigned lanes = 0xFFFF;
    if (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&z, p + n - 8, 8);
    } else {
        uint32_t a4, z4;
        memcpy(&a4, p, 4);
        memcpy(&z4, p + n - 4, 4);
        a = a4 | (uint64_t)z4 << 32;
        lanes = 0xFF;
    }
    return pixel__json_special_v(_mm_set_epi64x((long long)z, (long long)a)) & lanes;
#else
    unsigned m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        m |= c < 0x20 || c == '"' || c == '\\' || c == 0x7F;
    }
    return m;
#endif
}

/* The byte classes of a query string, for one block of sixteen bytes. */
typedef struct pixel_qclass {
    unsigned amp;     /* '&' */
    unsigned eq;      /* '=' */
    unsigned special; /* '%', and '+' when it means a space */
    unsigned high;    /* >= 0x80 */
} pixel_qclass;

static inline pixel_qclass pixel__query_class16(const unsigned char *p, unsigned char plus)
{
    pixel_qclass k;
#ifdef PIXEL_SIMD_SSE2
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    k.amp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('&')));
    k.eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('=')));
    k.special = (unsigned)_mm_movemask_epi8(_mm_or_si128(
        _mm_cmpeq_epi8(v, _mm_set1_epi8('%')), _mm_cmpeq_epi8(v, _mm_set1_epi8((char)plus))));
    k.high = (unsigned)_mm_movemask_epi8(v);
#else
    k.amp = k.eq = k.special = k.high = 0;
    for (unsigned i = 0; i < 16; i++) {
        unsigned char c = p[i];
        k.amp |= (unsigned)(c == '&') << i;
        k.eq |= (unsigned)(c == '=') << i;
        k.special |= (unsigned)(c == '%' || c == plus) << i;
        k.high |= (unsigned)(c >= 0x80) << i;
    }
#endif
    return k;
}

/* The byte classes that cut a query string into pairs, for one block of
 * sixteen bytes: '&', and the bytes a pair must be decoded or checked for
 * ('%', '+' when it means a space, and >= 0x80). */
typedef struct pixel_qsplit {
    unsigned amp, spec;
} pixel_qsplit;

static inline pixel_qsplit pixel__query_split16(const unsigned char *p, unsigned char plus)
{
    pixel_qsplit k;
#ifdef PIXEL_SIMD_SSE2
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    k.amp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('&')));
    __m128i esc = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('%')),
                               _mm_cmpeq_epi8(v, _mm_set1_epi8((char)plus)));
    k.spec = (unsigned)_mm_movemask_epi8(_mm_or_si128(esc, v)); /* v: its high bit */
#else
    k.amp = k.spec = 0;
    for (unsigned i = 0; i < 16; i++) {
        unsigned char c = p[i];
        k.amp |= (unsigned)(c == '&') << i;
        k.spec |= (unsigned)(c == '%' || c == plus || c >= 0x80) << i;
    }
#endif
    return k;
}

/* Zeroes n sixteen-byte blocks at p, n a small constant: one store each
 * (the compiler's own memset of a few hundred bytes is a `rep stos`, which
 * costs more than the stores). */
static inline void pixel__zero16n(void *p, size_t n)
{
#ifdef PIXEL_SIMD_SSE2
    const __m128i z = _mm_setzero_si128();
    char *d = (char *)p;
#pragma GCC unroll 16
    for (size_t i = 0; i < n; i++) {
        _mm_storeu_si128((__m128i *)(void *)(d + 16 * i), z);
    }
#else
    memset(p, 0, 16 * n);
#endif
}

/* Sets n sixteen-byte blocks at p to all ones (0xFF bytes). */
static inline void pixel__ones16n(void *p, size_t n)
{
#ifdef PIXEL_SIMD_SSE2
    const __m128i ones = _mm_set1_epi8((char)0xFF);
    char *d = (char *)p;
    for (size_t i = 0; i < n; i++) {
        _mm_storeu_si128((__m128i *)(void *)(d + 16 * i), ones);
    }
#else
    memset(p, 0xFF, 16 * n);
#endif
}

/* Bytes >= 0x80. */
static inline unsigned pixel__high16(const unsigned char *p)
{
#ifdef PIXEL_SIMD_SSE2
    return (unsigned)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)p));
#else
    unsigned m = 0;
    for (unsigned i = 0; i < 16; i++) {
        m |= (unsigned)(p[i] >> 7) << i;
    }
    return m;
#endif
}

/* Whether all n bytes at p are ASCII (< 0x80).  Only the n bytes are read:
 * overlapping blocks (or words) cover the tail. */
static inline int pixel__all_ascii(const void *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    if (n >= 16) {
#ifdef PIXEL_SIMD_SSE2
        __m128i acc = _mm_loadu_si128((const __m128i *)(const void *)(s + n - 16));
        for (size_t i = 0; n - i > 16; i += 16) {
            acc = _mm_or_si128(acc, _mm_loadu_si128((const __m128i *)(const void *)(s + i)));
        }
        return _mm_movemask_epi8(acc) == 0;
#else
        uint64_t acc = 0, w;
        for (size_t i = 0; n - i > 8; i += 8) {
            memcpy(&w, s + i, 8);
            acc |= w;
        }
        memcpy(&w, s + n - 8, 8);
        return ((acc | w) & 0x8080808080808080ull) == 0;
#endif
    }
    if (n >= 8) {
        uint64_t a, z;
        memcpy(&a, s, 8);
        memcpy(&z, s + n - 8, 8);
        return ((a | z) & 0x8080808080808080ull) == 0;
    }
    if (n >= 4) {
        uint32_t a, z;
        memcpy(&a, s, 4);
        memcpy(&z, s + n - 4, 4);
        return ((a | z) & 0x80808080u) == 0;
    }
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= s[i];
    }
    return acc < 0x80;
}

/* ASCII hex digits (0-9, a-f, A-F). */
static inline unsigned pixel__hex16(const unsigned char *p)
{
#ifdef PIXEL_SIMD_SSE2
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));
    __m128i d = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                              _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), v));
    __m128i a = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                              _mm_cmpgt_epi8(_mm_set1_epi8('f' + 1), l));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(d, a));
#else
    unsigned m = 0;
    for (unsigned i = 0; i < 16; i++) {
        unsigned c = p[i], lc = c | 0x20u;
        m |= (unsigned)((c - '0' < 10u) | (lc - 'a' < 6u)) << i;
    }
    return m;
#endif
}

/* Bytes equal to c. */
static inline unsigned pixel__eq16(const unsigned char *p, unsigned char c)
{
#ifdef PIXEL_SIMD_SSE2
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)c)));
#else
    unsigned m = 0;
    for (unsigned i = 0; i < 16; i++) {
        m |= (unsigned)(p[i] == c) << i;
    }
    return m;
#endif
}

/* The first byte of [p, end) equal to a, b or c, or end. */
static inline const char *pixel__find3(const char *p, const char *end, char a, char b, char c)
{
#ifdef PIXEL_SIMD_SSE2
    const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b), vc = _mm_set1_epi8(c);
    for (; end - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)), _mm_cmpeq_epi8(v, vc)));
        if (m) {
            return p + __builtin_ctz(m);
        }
    }
#endif
    for (; p < end; p++) {
        if (*p == a || *p == b || *p == c) {
            return p;
        }
    }
    return end;
}

/* Copies sixteen bytes (the caller has room for all of them). */
static inline void pixel__copy16(void *dst, const void *src)
{
#ifdef PIXEL_SIMD_SSE2
    _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)src));
#else
    memcpy(dst, src, 16);
#endif
}

#endif
