/*
 * privacy: pseudonymises personal data in the event.
 *
 *   hash:   fields replaced by HMAC-SHA-256(key, value), hex or base64url.
 *           The same value under the same key always gives the same
 *           pseudonym, so joins across events still work, but nobody
 *           without the key can recompute or reverse it.  Strings are hashed
 *           as their bytes; other values as their compact JSON text.
 *   remove: fields deleted from the event.
 *
 * The key is the whole content of `key_file` (one trailing newline is
 * ignored), at least 16 bytes; it never appears in messages.  Read-only
 * after create(): one shared instance.
 *
 * HMAC (RFC 2104) hashes the key block XOR ipad, then the value, and the key
 * block XOR opad, then that digest.  The two key blocks are the same for
 * every value, so their SHA-256 states are computed once in create(): a short
 * value then costs two compressions instead of four (the same MAC as
 * pixel_hmac_sha256(), which tests/modules/modules_test.py checks against
 * Python's hmac for short and long values and keys).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixel/module.h>

#define MIN_KEY 16
#define MAX_KEY 4096

typedef struct privacy_ctx {
    unsigned char key[MAX_KEY];
    size_t keylen;
    uint32_t inner[8], outer[8]; /* SHA-256 states after the key block ^ ipad, ^ opad */
    char **hash, **remove;
    size_t nhash, nremove;
    int base64;
    size_t truncate; /* bytes of the MAC kept (1..32) */
} privacy_ctx;

static const pixel_module_option options[] = {
    {"key_file", PIXEL_OPT_PATH, NULL, "file holding the secret HMAC key (>= 16 bytes)",
     PIXEL_OPT_REQUIRED},
    {"hash", PIXEL_OPT_LIST, NULL, "event fields to replace by their keyed hash", 0},
    {"remove", PIXEL_OPT_LIST, NULL, "event fields to delete", 0},
    {"encoding", PIXEL_OPT_STRING, "hex", "hex or base64url", 0},
    {"bytes", PIXEL_OPT_INT, "32", "bytes of the MAC kept (16..32)", 0},
    {NULL, 0, NULL, NULL, 0},
};

static void destroy(void *instance)
{
    privacy_ctx *p = instance;
    if (!p) {
        return;
    }
    pixel_module_strings_free(p->hash);
    pixel_module_strings_free(p->remove);
    memset(p->key, 0, sizeof(p->key));
    memset(p->inner, 0, sizeof(p->inner));
    memset(p->outer, 0, sizeof(p->outer));
    free(p);
}

/* ---- SHA-256 (FIPS 180-4): one 64-byte block into the state h ---- */

static const uint32_t round_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n)
{
    return x >> n | x << (32 - n);
}

static void compress(uint32_t h[8], const unsigned char *blk)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t a = w[i - 15], b = w[i - 2];
        w[i] = w[i - 16] + w[i - 7] + (rotr(a, 7) ^ rotr(a, 18) ^ a >> 3) +
               (rotr(b, 17) ^ rotr(b, 19) ^ b >> 10);
    }
    /* the working variables a..h of the standard, s0..s7 here */
    uint32_t s0 = h[0], s1 = h[1], s2 = h[2], s3 = h[3], s4 = h[4], s5 = h[5], s6 = h[6], s7 = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = s7 + (rotr(s4, 6) ^ rotr(s4, 11) ^ rotr(s4, 25)) + ((s4 & s5) ^ (~s4 & s6)) +
                      round_k[i] + w[i];
        uint32_t t2 = (rotr(s0, 2) ^ rotr(s0, 13) ^ rotr(s0, 22)) + ((s0 & s1) ^ (s0 & s2) ^ (s1 & s2));
        s7 = s6;
        s6 = s5;
        s5 = s4;
        s4 = s3 + t1;
        s3 = s2;
        s2 = s1;
        s1 = s0;
        s0 = t1 + t2;
    }
    h[0] += s0, h[1] += s1, h[2] += s2, h[3] += s3;
    h[4] += s4, h[5] += s5, h[6] += s6, h[7] += s7;
}

/* Hash the rest of a message whose first `done` bytes (whole blocks) are in
 * h: data (n bytes), the padding and the length; the digest goes to out. */
static void finish(uint32_t h[8], uint64_t done, const unsigned char *data, size_t n,
                   unsigned char out[32])
{
    uint64_t bits = (done + n) * 8;
    for (; n >= 64; data += 64, n -= 64) {
        compress(h, data);
    }
    unsigned char blk[128] = {0};
    memcpy(blk, data, n);
    blk[n] = 0x80;
    size_t last = n < 56 ? 64 : 128; /* the length needs 8 bytes after the 0x80 */
    for (int i = 0; i < 8; i++) {
        blk[last - 1 - i] = (unsigned char)(bits >> (8 * i));
    }
    compress(h, blk);
    if (last == 128) {
        compress(h, blk + 64);
    }
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* The states after the key block XOR ipad and XOR opad (a key longer than a
 * block is hashed first, as HMAC says). */
static void key_states(privacy_ctx *p)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char k[64] = {0}, blk[64];
    if (p->keylen > 64) {
        pixel_sha256(p->key, p->keylen, k);
    } else {
        memcpy(k, p->key, p->keylen);
    }
    memcpy(p->inner, iv, sizeof(iv));
    memcpy(p->outer, iv, sizeof(iv));
    for (int i = 0; i < 64; i++) {
        blk[i] = k[i] ^ 0x36;
    }
    compress(p->inner, blk);
    for (int i = 0; i < 64; i++) {
        blk[i] = k[i] ^ 0x5c;
    }
    compress(p->outer, blk);
    memset(k, 0, sizeof(k));
    memset(blk, 0, sizeof(blk));
}

/* HMAC-SHA-256(key, data) from the key states. */
static void hmac(const privacy_ctx *p, const void *data, size_t n, unsigned char mac[32])
{
    uint32_t h[8];
    unsigned char inner[32];
    memcpy(h, p->inner, sizeof(h));
    finish(h, 64, data, n, inner);
    memcpy(h, p->outer, sizeof(h));
    finish(h, 64, inner, 32, mac);
}

static int read_key(privacy_ctx *p, const pixel_module_config *cfg, pixel_error *err)
{
    const char *file = pixel_module_config_string(cfg, "key_file");
    FILE *f = fopen(file, "rb");
    if (!f) {
        return pixel_module_config_error(cfg, err, "key_file", "cannot open the key file %s: %s",
                                         file, strerror(errno));
    }
    p->keylen = fread(p->key, 1, sizeof(p->key), f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (p->keylen && p->key[p->keylen - 1] == '\n') {
        p->keylen--;
    }
    if (more || p->keylen < MIN_KEY) {
        return pixel_module_config_error(cfg, err, "key_file",
                                         "the key in %s must be %d to %d bytes", file, MIN_KEY,
                                         MAX_KEY);
    }
    return 0;
}

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    privacy_ctx *p = calloc(1, sizeof(*p));
    if (!p) {
        return PIXEL_ENOMEM;
    }
    *instance = p;
    const char *enc = pixel_module_config_string(cfg, "encoding");
    if (strcmp(enc, "hex") != 0 && strcmp(enc, "base64url") != 0) {
        return pixel_module_config_error(cfg, err, "encoding", "encoding is hex or base64url");
    }
    p->base64 = strcmp(enc, "base64url") == 0;
    int64_t bytes = pixel_module_config_int(cfg, "bytes");
    if (bytes < 16 || bytes > 32) {
        return pixel_module_config_error(cfg, err, "bytes", "bytes must be 16..32");
    }
    p->truncate = (size_t)bytes;
    int rc = read_key(p, cfg, err);
    if (rc == 0) {
        key_states(p);
        p->hash = pixel_module_config_strings(cfg, "hash", NULL, &p->nhash);
        p->remove = pixel_module_config_strings(cfg, "remove", NULL, &p->nremove);
        rc = p->hash && p->remove ? 0 : PIXEL_ENOMEM;
    }
    if (rc == 0 && p->nhash + p->nremove == 0) {
        rc = pixel_module_config_error(cfg, err, NULL, "give at least one field in hash or remove");
    }
    return rc;
}

static size_t encode(const privacy_ctx *p, const unsigned char *mac, char *out)
{
    static const char hex[] = "0123456789abcdef";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0, len = p->truncate;
    if (!p->base64) {
        for (size_t i = 0; i < len; i++) {
            out[n++] = hex[mac[i] >> 4];
            out[n++] = hex[mac[i] & 15];
        }
        return n;
    }
    for (size_t i = 0; i < len; i += 3) { /* unpadded base64url */
        uint32_t v = (uint32_t)mac[i] << 16 | (i + 1 < len ? (uint32_t)mac[i + 1] << 8 : 0) |
                     (i + 2 < len ? mac[i + 2] : 0);
        out[n++] = b64[v >> 18];
        out[n++] = b64[v >> 12 & 63];
        if (i + 1 < len) {
            out[n++] = b64[v >> 6 & 63];
        }
        if (i + 2 < len) {
            out[n++] = b64[v & 63];
        }
    }
    return n;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    privacy_ctx *p = instance;
    (void)err;
    for (size_t i = 0; i < p->nhash; i++) {
        pixel_value *v = pixel_value_at(ev->event, p->hash[i]);
        if (!v || pixel_value_type(v) == PIXEL_TYPE_NULL) {
            continue;
        }
        size_t n;
        const char *s = pixel_value_string(v, &n);
        if (!s && !(s = pixel_value_dump(ev->ctx, v, &n))) {
            return PIXEL_ENOMEM;
        }
        unsigned char mac[32];
        char text[64];
        hmac(p, s, n, mac);
        pixel_value *h = pixel_value_new_string(ev->ctx, text, encode(p, mac, text));
        if (!h || pixel_value_set_at(ev->ctx, ev->event, p->hash[i], h) < 0) {
            return PIXEL_ENOMEM;
        }
    }
    for (size_t i = 0; i < p->nremove; i++) {
        pixel_value_remove_at(ev->event, p->remove[i]);
    }
    return PIXEL_MODULE_CONTINUE;
}

static const pixel_module privacy_module = {
    PIXEL_MODULE_HEADER,
    .threading = PIXEL_MODULE_SHARED,
    .name = "privacy",
    .version = "1.0.0",
    .description = "keyed hashing (HMAC-SHA-256) and removal of personal fields",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
};

PIXEL_MODULE_DEFINE(privacy_module)
