/*
 * A fast, non-cryptographic hash of a byte string, sixteen bytes at a time
 * (two lanes of eight), or for a long string with the CPU's CRC32-C
 * instruction when it has one: the spread that the modules' caches and
 * indexes need, nothing more.  The last bytes are read as one overlapping word
 * instead of byte by byte.  A header of the in-tree modules (each module
 * is its own shared object, so the code is compiled into each) and of
 * libpixel's pixel_module_event_hash(); it is not part of the module ABI,
 * and its values are only compared within a process.
 */
#ifndef PIXEL_MODULES_CACHE_HASH_H
#define PIXEL_MODULES_CACHE_HASH_H

#include <stdint.h>
#include <string.h>

static inline uint64_t pixel_cache_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t pixel_cache_hash_mul(const char *s, size_t n)
{
    const uint64_t k1 = 0xff51afd7ed558ccdull, k2 = 0xc4ceb9fe1a85ec53ull;
    uint64_t a = 0x9e3779b97f4a7c15ull ^ n, b = 0x2545f4914f6cdd1dull, w0 = 0, w1 = 0;
    if (n >= 8) {
        const char *end = s + n;
        for (; end - s > 16; s += 16) {
            memcpy(&w0, s, 8);
            memcpy(&w1, s + 8, 8);
            a = pixel_cache_rotl(a ^ w0, 29) * k1;
            b = pixel_cache_rotl(b ^ w1, 31) * k2;
        }
        /* 1 to 16 bytes left: the last eight, and the eight before them
           when more than eight are left (the words may overlap) */
        memcpy(&w0, end - 8, 8);
        if (end - s > 8) {
            memcpy(&w1, s, 8);
        }
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w0 = (uint64_t)lo | (uint64_t)hi << 32;
    } else if (n) {
        w0 = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
             (uint64_t)(unsigned char)s[n - 1] << 16;
    }
    a = (a ^ w0) * k1;
    b = (b ^ w1) * k2;
    uint64_t h = a ^ pixel_cache_rotl(b, 32);
    h ^= h >> 33;
    h *= k1;
    h ^= h >> 33;
    h *= k2;
    return h ^ (h >> 33);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PIXEL_CACHE_HASH_CRC 1
/*
 * Strings of 32 bytes or more on a CPU with SSE4.2 (a user agent, a URL):
 * three CRC32-C lanes over 24 bytes a step, one instruction per eight
 * bytes, the last 24 bytes read as three overlapping words; the lanes and
 * the length mixed as above.  Another value than pixel_cache_hash_mul()'s
 * for the same bytes, but always the same one in a process (the CPU does
 * not change).
 */
__attribute__((target("sse4.2"))) static inline uint64_t pixel_cache_hash_crc(const char *s,
                                                                              size_t n)
{
    uint64_t a = 0x9e3779b97f4a7c15ull ^ n, b = 0x2545f4914f6cdd1dull, c = 0xff51afd7ed558ccdull;
    uint64_t w0, w1, w2;
    const char *end = s + n;
    for (; end - s > 24; s += 24) {
        memcpy(&w0, s, 8);
        memcpy(&w1, s + 8, 8);
        memcpy(&w2, s + 16, 8);
        a = __builtin_ia32_crc32di(a, w0);
        b = __builtin_ia32_crc32di(b, w1);
        c = __builtin_ia32_crc32di(c, w2);
    }
    memcpy(&w0, end - 24, 8); /* 1 to 24 bytes left; n >= 24 */
    memcpy(&w1, end - 16, 8);
    memcpy(&w2, end - 8, 8);
    a = __builtin_ia32_crc32di(a, w0);
    b = __builtin_ia32_crc32di(b, w1);
    c = __builtin_ia32_crc32di(c, w2);
    uint64_t h = (a | b << 32) ^ pixel_cache_rotl(c * 0xc4ceb9fe1a85ec53ull, 17) ^ n;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}
#endif

static inline uint64_t pixel_cache_hash(const char *s, size_t n)
{
#ifdef PIXEL_CACHE_HASH_CRC
    if (n >= 32 && __builtin_cpu_supports("sse4.2")) {
        return pixel_cache_hash_crc(s, n);
    }
#endif
    return pixel_cache_hash_mul(s, n);
}

#endif
