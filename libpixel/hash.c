/*
 * SHA-256 (FIPS 180-4) for deterministic event IDs, and UUID helpers.
 * Exported for modules (HMAC for pseudonymisation) through pixel_sha256().
 */
#include <string.h>

#include "pipeline.h"
#include "simd.h"

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void block(sha256_ctx *c, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
             g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d;
    c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

static void sha_init(sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->len = 0;
    c->nbuf = 0;
}

static void sha_update(sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->len += len;
    while (len > 0) {
        size_t take = 64 - c->nbuf < len ? 64 - c->nbuf : len;
        memcpy(c->buf + c->nbuf, p, take);
        c->nbuf += take, p += take, len -= take;
        if (c->nbuf == 64) {
            block(c, c->buf);
            c->nbuf = 0;
        }
    }
}

static void sha_final(sha256_ctx *c, uint8_t out[32])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80;
    sha_update(c, &pad, 1);
    pad = 0;
    while (c->nbuf != 56) {
        sha_update(c, &pad, 1);
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) {
        lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    sha_update(c, lenbuf, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void pixel__sha256(const void *data, size_t len, uint8_t out[32])
{
    sha256_ctx c;
    sha_init(&c);
    sha_update(&c, data, len);
    sha_final(&c, out);
}

PIXEL_API void pixel_sha256(const void *data, size_t len, unsigned char out[32]);
void pixel_sha256(const void *data, size_t len, unsigned char out[32])
{
    pixel__sha256(data, len, out);
}

PIXEL_API void pixel_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                                 unsigned char out[32]);
void pixel_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                       unsigned char out[32])
{
    uint8_t k[64] = {0}, pad[64], inner[32];
    if (keylen > 64) {
        pixel__sha256(key, keylen, k);
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    sha256_ctx c;
    for (int i = 0; i < 64; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    sha_init(&c);
    sha_update(&c, pad, 64);
    sha_update(&c, data, len);
    sha_final(&c, inner);
    for (int i = 0; i < 64; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    sha_init(&c);
    sha_update(&c, pad, 64);
    sha_update(&c, inner, 32);
    sha_final(&c, out);
}

/*
 * A UUID derived from bytes: version 8 (RFC 9562 "custom"), the first 128
 * bits of SHA-256("libpixel event id v1\n" || bytes) with the version and
 * variant bits set.  The prefix keeps these IDs apart from any other use of
 * the same hash.
 */
void pixel__uuid_from_bytes(const char *s, size_t n, char out[37])
{
    static const char prefix[] = "libpixel event id v1\n";
    sha256_ctx c;
    uint8_t h[32];
    sha_init(&c);
    sha_update(&c, prefix, sizeof(prefix) - 1);
    sha_update(&c, s, n);
    sha_final(&c, h);
    h[6] = (uint8_t)((h[6] & 0x0F) | 0x80);
    h[8] = (uint8_t)((h[8] & 0x3F) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        *o++ = hex[h[i] >> 4];
        *o++ = hex[h[i] & 15];
    }
    *o = '\0';
}

int pixel__is_uuid(const char *s, size_t n)
{
    /* 8-4-4-4-12 hex digits: three blocks of sixteen (the last overlaps the
     * second) classify all 36 bytes at once. */
    if (n != 36) {
        return 0;
    }
    const unsigned char *u = (const unsigned char *)s;
    uint64_t hex = pixel__hex16(u) | (uint64_t)pixel__hex16(u + 16) << 16 |
                   (uint64_t)pixel__hex16(u + 20) << 20;
    uint64_t dash = pixel__eq16(u, '-') | (uint64_t)pixel__eq16(u + 16, '-') << 16 |
                    (uint64_t)pixel__eq16(u + 20, '-') << 20;
    const uint64_t dashes = 1ull << 8 | 1ull << 13 | 1ull << 18 | 1ull << 23;
    const uint64_t all = (1ull << 36) - 1;
    return dash == dashes && hex == (all & ~dashes);
}
