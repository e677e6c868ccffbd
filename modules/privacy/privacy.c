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
    free(p);
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
        pixel_hmac_sha256(p->key, p->keylen, s, n, mac);
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
