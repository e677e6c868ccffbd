/*
 * A fast, non-cryptographic hash of a byte string, eight bytes at a time:
 * the spread that the modules' verdict caches need, nothing more.  A header
 * of the in-tree modules only (each module is its own shared object, so the
 * code is compiled into each); it is not part of the module ABI.
 */
#ifndef PIXEL_MODULES_CACHE_HASH_H
#define PIXEL_MODULES_CACHE_HASH_H

#include <stdint.h>
#include <string.h>

static inline uint64_t pixel_cache_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

#endif
