/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF.  Almost all pixel traffic is ASCII, so an ASCII prefix is skipped
 * sixteen bytes at a time first.
 */
#include <string.h>

#include "pixel_private.h"
#include "simd.h"

/* The length of the ASCII prefix of s. */
static size_t ascii_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    for (; len - i >= 16; i += 16) {
        unsigned m = pixel__high16(s + i);
        if (m) {
            return i + (size_t)__builtin_ctz(m);
        }
    }
    if (i == len || (len >= 16 && !pixel__high16(s + len - 16))) {
        return len;
    }
    while (i < len && s[i] < 0x80) {
        i++;
    }
    return i;
}

size_t pixel__utf8_check(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = ascii_prefix(s, len);
    while (i < len) {
        if (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0) {
                lo = 0xA0;
            } else if (c == 0xED) {
                hi = 0x9F; /* no surrogates */
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return i;
        }
        if (len - i <= n) {
            return i; /* truncated sequence */
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return i;
        }
        for (size_t k = 2; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return i;
            }
        }
        i += n + 1;
    }
    return len;
}

size_t pixel__utf8_length(const char *str, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)str[i] & 0xC0) != 0x80;
    }
    return n;
}
