/*
 * The schema registry: documents, URIs, resources and anchors.
 *
 * Adding a document parses it into the registry's arena and indexes it: a
 * walk over the keywords that hold subschemas (per draft) records every
 * schema resource (`$id`), every `$anchor`/`$dynamicAnchor` (and draft-07's
 * `"$id": "#name"`), and, for every schema object, its resource and JSON
 * Pointer, so that errors and compiled nodes can name an absolute location.
 * Lookups never touch the network: a URI resolves to an added document, to a
 * file under a URI-prefix mapping, or to an embedded metaschema.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "schema_private.h"

/* ---- hash maps ------------------------------------------------------------ */

uint64_t pixel__schema_hash(const char *s, size_t n)
{
    /* Member names are short: mix 8 bytes at a time (this runs per member per event). */
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    return h ^ (h >> 29);
}

void pixel__hmap_by_string(hmap *m)
{
    m->by_string = true;
}

static uint64_t hmap_hash(const hmap *m, const void *key)
{
    if (m->by_string) {
        return pixel__schema_hash(key, strlen(key));
    }
    uint64_t x = (uint64_t)(uintptr_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    return x ^ (x >> 33);
}

static bool hmap_same(const hmap *m, const hmap_ent *e, const void *key, uint64_t h)
{
    return e->key == key || (m->by_string && e->hash == h && strcmp(e->key, key) == 0);
}

static int hmap_grow(hmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    hmap_ent *e = pixel__calloc(cap, sizeof(*e));
    if (!e) {
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->e[i].key) {
            size_t j = m->e[i].hash & (cap - 1);
            while (e[j].key) {
                j = (j + 1) & (cap - 1);
            }
            e[j] = m->e[i];
        }
    }
    pixel__free(m->e);
    m->e = e;
    m->cap = cap;
    return 0;
}

void *pixel__hmap_get(const hmap *m, const void *key)
{
    if (!m->cap) {
        return NULL;
    }
    uint64_t h = hmap_hash(m, key);
    for (size_t j = h & (m->cap - 1); m->e[j].key; j = (j + 1) & (m->cap - 1)) {
        if (hmap_same(m, &m->e[j], key, h)) {
            return m->e[j].val;
        }
    }
    return NULL;
}

int pixel__hmap_put(hmap *m, const void *key, void *val)
{
    if ((m->n + 1) * 2 > m->cap && hmap_grow(m) < 0) {
        return -1;
    }
    uint64_t h = hmap_hash(m, key);
    size_t j = h & (m->cap - 1);
    for (; m->e[j].key; j = (j + 1) & (m->cap - 1)) {
        if (hmap_same(m, &m->e[j], key, h)) {
            m->e[j].val = val;
            return 0;
        }
    }
    m->e[j].key = key;
    m->e[j].val = val;
    m->e[j].hash = h;
    m->n++;
    return 0;
}

void pixel__hmap_free(hmap *m)
{
    bool by_string = m->by_string;
    pixel__free(m->e);
    memset(m, 0, sizeof(*m));
    m->by_string = by_string;
}

/* ---- compile-time string sets ----------------------------------------------- */

static uint32_t next_mult(uint64_t *state)
{
    /* splitmix64: a fixed sequence of odd multipliers to try */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(z ^ (z >> 31)) | 1u;
}

int pixel__strtab_build(sstrtab *t, pixel_arena *a, const char *const *keys, const size_t *lens,
                        size_t n, uint32_t *canon)
{
    memset(t, 0, sizeof(*t));
    /* distinct keys first, each with its index (a plain table of the full hash) */
    size_t dcap = 8;
    while (dcap < n * 2 + 2) {
        dcap *= 2;
    }
    size_t *dist = pixel__calloc(dcap, sizeof(*dist));       /* distinct index + 1, 0: empty */
    size_t *first = pixel__malloc((n + 1) * sizeof(*first)); /* distinct index -> key index */
    if (!dist || !first) {
        pixel__free(dist);
        pixel__free(first);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = pixel__schema_hash(keys[i], lens[i]) & (dcap - 1);
        while (dist[j] && !(lens[first[dist[j] - 1]] == lens[i] &&
                            memcmp(keys[first[dist[j] - 1]], keys[i], lens[i]) == 0)) {
            j = (j + 1) & (dcap - 1);
        }
        if (!dist[j]) {
            first[t->n] = i;
            dist[j] = ++t->n;
        }
        if (canon) {
            canon[i] = (uint32_t)(dist[j] - 1);
        }
    }
    /* a multiplier that gives every distinct key a slot of its own, tables of 2n to 16n */
    unsigned bits = 1;
    while ((1ull << bits) < t->n * 2) {
        bits++;
    }
    uint64_t state = 0x5EED;
    uint32_t best = next_mult(&state);
    bool perfect = false;
    uint8_t *used = pixel__calloc((size_t)1 << (bits + 3), 1);
    for (unsigned extra = 0; used && extra <= 3 && !perfect; extra++) {
        size_t size = (size_t)1 << (bits + extra);
        for (int tries = 0; tries < 200 && !perfect; tries++) {
            uint32_t m = tries == 0 && extra == 0 ? best : next_mult(&state);
            memset(used, 0, size);
            perfect = true;
            for (size_t d = 0; d < t->n && perfect; d++) {
                size_t j = (uint32_t)(pixel__key32(keys[first[d]], lens[first[d]]) * m) >>
                           (32 - bits - extra);
                perfect = !used[j];
                used[j] = 1;
            }
            if (perfect) {
                best = m;
                bits += extra;
            }
        }
    }
    pixel__free(used);
    t->perfect = perfect;
    t->mult = best;
    t->shift = (uint8_t)(32 - bits);
    t->mask = ((size_t)1 << bits) - 1;
    t->slot = pixel__arena_alloc(a, (t->mask + 1) * sizeof(*t->slot));
    if (!t->slot) {
        pixel__free(dist);
        pixel__free(first);
        return -1;
    }
    for (size_t j = 0; j <= t->mask; j++) {
        t->slot[j].key = NULL;
        t->slot[j].len = 0;
        t->slot[j].idx = -1;
    }
    for (size_t d = 0; d < t->n; d++) {
        const char *k = keys[first[d]];
        size_t kl = lens[first[d]];
        size_t j = (uint32_t)(pixel__key32(k, kl) * t->mult) >> t->shift;
        while (t->slot[j].idx >= 0) {
            j = (j + 1) & t->mask; /* only when not perfect */
        }
        t->slot[j].key = k;
        t->slot[j].len = (uint32_t)kl;
        t->slot[j].idx = (int32_t)d;
    }
    pixel__free(dist);
    pixel__free(first);
    return 0;
}

/* ---- URIs (RFC 3986) -------------------------------------------------------- */

typedef struct uparts {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_len, auth_len, path_len, query_len, frag_len;
    bool has_scheme, has_auth, has_query, has_frag;
} uparts;

static void uri_parse(const char *s, uparts *u)
{
    memset(u, 0, sizeof(*u));
    const char *p = s;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
        const char *q = p;
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               *q == '+' || *q == '-' || *q == '.') {
            q++;
        }
        if (*q == ':') {
            u->has_scheme = true;
            u->scheme = p;
            u->scheme_len = (size_t)(q - p);
            p = q + 1;
        }
    }
    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        u->has_auth = true;
        u->auth = p;
        while (*p && *p != '/' && *p != '?' && *p != '#') {
            p++;
        }
        u->auth_len = (size_t)(p - u->auth);
    }
    u->path = p;
    while (*p && *p != '?' && *p != '#') {
        p++;
    }
    u->path_len = (size_t)(p - u->path);
    if (*p == '?') {
        u->has_query = true;
        u->query = ++p;
        while (*p && *p != '#') {
            p++;
        }
        u->query_len = (size_t)(p - u->query);
    }
    if (*p == '#') {
        u->has_frag = true;
        u->frag = p + 1;
        u->frag_len = strlen(p + 1);
    }
}

/* remove_dot_segments (RFC 3986 5.2.4) of in[0..n) into out; returns length. */
static size_t remove_dots(const char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (n - i >= 3 && memcmp(in + i, "../", 3) == 0) {
            i += 3;
        } else if (n - i >= 2 && memcmp(in + i, "./", 2) == 0) {
            i += 2;
        } else if (n - i >= 3 && memcmp(in + i, "/./", 3) == 0) {
            i += 2;
        } else if (n - i == 2 && memcmp(in + i, "/.", 2) == 0) {
            out[o++] = '/';
            i += 2;
        } else if ((n - i >= 4 && memcmp(in + i, "/../", 4) == 0) ||
                   (n - i == 3 && memcmp(in + i, "/..", 3) == 0)) {
            i += 3;
            if (i == n) {
                i--; /* leave a '/' to copy */
                while (o > 0 && out[o - 1] != '/') {
                    o--;
                }
                if (o > 0) {
                    o--;
                }
                out[o++] = '/';
                i = n;
                continue;
            }
            while (o > 0 && out[o - 1] != '/') {
                o--;
            }
            if (o > 0) {
                o--;
            }
        } else if ((n - i == 1 && in[i] == '.') || (n - i == 2 && memcmp(in + i, "..", 2) == 0)) {
            i = n;
        } else {
            size_t j = i;
            if (in[j] == '/') {
                j++;
            }
            while (j < n && in[j] != '/') {
                j++;
            }
            memcpy(out + o, in + i, j - i);
            o += j - i;
            i = j;
        }
    }
    return o;
}

static void put(char *buf, size_t *o, const char *s, size_t n)
{
    memcpy(buf + *o, s, n);
    *o += n;
}

char *pixel__uri_resolve(pixel_arena *a, const char *base, const char *ref)
{
    uparts b, r;
    uri_parse(base ? base : "", &b);
    uri_parse(ref, &r);
    size_t cap = strlen(ref) + (base ? strlen(base) : 0) + 8;
    char *buf = pixel__arena_alloc(a, cap);
    char *tmp = pixel__arena_alloc(a, cap);
    if (!buf || !tmp) {
        return NULL;
    }
    size_t o = 0, t = 0;
    const uparts *sch = r.has_scheme ? &r : &b;
    if (sch->has_scheme) {
        put(buf, &o, sch->scheme, sch->scheme_len);
        buf[o++] = ':';
    }
    const char *query = NULL;
    size_t qlen = 0;
    bool hasq = false;
    if (r.has_scheme || r.has_auth) {
        const uparts *au = &r;
        if (au->has_auth) {
            put(buf, &o, "//", 2);
            put(buf, &o, au->auth, au->auth_len);
        }
        o += remove_dots(r.path, r.path_len, buf + o);
        query = r.query, qlen = r.query_len, hasq = r.has_query;
    } else {
        if (b.has_auth) {
            put(buf, &o, "//", 2);
            put(buf, &o, b.auth, b.auth_len);
        }
        if (r.path_len == 0) {
            put(buf, &o, b.path, b.path_len);
            if (r.has_query) {
                query = r.query, qlen = r.query_len, hasq = true;
            } else {
                query = b.query, qlen = b.query_len, hasq = b.has_query;
            }
        } else {
            if (r.path[0] == '/') {
                put(tmp, &t, r.path, r.path_len);
            } else if (b.has_auth && b.path_len == 0) {
                tmp[t++] = '/';
                put(tmp, &t, r.path, r.path_len);
            } else {
                size_t k = b.path_len;
                while (k > 0 && b.path[k - 1] != '/') {
                    k--;
                }
                put(tmp, &t, b.path, k);
                put(tmp, &t, r.path, r.path_len);
            }
            if (sch->has_scheme && !b.has_auth && tmp[0] != '/' && !r.has_scheme) {
                /* a non-hierarchical base (urn:...): no dot-segment games */
                put(buf, &o, tmp, t);
            } else {
                o += remove_dots(tmp, t, buf + o);
            }
            query = r.query, qlen = r.query_len, hasq = r.has_query;
        }
    }
    if (hasq) {
        buf[o++] = '?';
        put(buf, &o, query, qlen);
    }
    if (r.has_frag) {
        buf[o++] = '#';
        put(buf, &o, r.frag, r.frag_len);
    }
    buf[o] = '\0';
    return buf;
}

char *pixel__uri_split(pixel_arena *a, const char *uri, const char **frag)
{
    const char *h = strchr(uri, '#');
    if (!h) {
        *frag = "";
        return pixel__arena_strndup(a, uri, strlen(uri));
    }
    *frag = h + 1;
    return pixel__arena_strndup(a, uri, (size_t)(h - uri));
}

/* ---- errors ------------------------------------------------------------------ */

int pixel__schema_fail(pixel_schema_registry *r, const pixel_value *at, const char *extra_ptr,
                       const char *fmt, ...)
{
    pixel_error *err = r->err;
    if (!err || err->code != 0) {
        return PIXEL_ESCHEMA;
    }
    va_list ap;
    va_start(ap, fmt);
    pixel__error_vset(err, PIXEL_ESCHEMA, PIXEL_STAGE_LOAD, fmt, ap);
    va_end(ap);
    const sinfo *in = at ? pixel__hmap_get(&r->info, at) : NULL;
    if (in) {
        pixel__error_at(err, in->res->doc->file, 0, 0);
        snprintf(err->pointer, sizeof(err->pointer), "%s%s", in->dptr, extra_ptr ? extra_ptr : "");
    } else {
        if (r->cur) {
            pixel__error_at(err, r->cur->file, 0, 0);
        }
        snprintf(err->pointer, sizeof(err->pointer), "%s", extra_ptr ? extra_ptr : "");
    }
    return PIXEL_ESCHEMA;
}

static int reg_oom(pixel_schema_registry *r)
{
    return pixel__error_set(r->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
}

/* ---- indexing ---------------------------------------------------------------- */

static const char *ptr_join(pixel_arena *a, const char *base, const char *key, size_t klen)
{
    size_t bl = strlen(base);
    char *out = pixel__arena_alloc(a, bl + 2 * klen + 2);
    if (!out) {
        return NULL;
    }
    memcpy(out, base, bl);
    size_t o = bl;
    out[o++] = '/';
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == '~') {
            out[o++] = '~';
            out[o++] = '0';
        } else if (key[i] == '/') {
            out[o++] = '~';
            out[o++] = '1';
        } else {
            out[o++] = key[i];
        }
    }
    out[o] = '\0';
    return out;
}

static const char *ptr_index(pixel_arena *a, const char *base, size_t i)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%zu", i);
    return ptr_join(a, base, num, (size_t)n);
}

/* A NUL-terminated copy of a string member (schema strings may be views). */
static const char *sdup(pixel_schema_registry *r, const pixel_value *obj, const char *key)
{
    const pixel_value *v = pixel__object_getn(obj, key, strlen(key));
    if (!v || v->type != PIXEL_TYPE_STRING) {
        return NULL;
    }
    return pixel__arena_strndup(&r->arena, v->u.str.s, v->u.str.len);
}

static int draft_of_uri(const char *u)
{
    if (!u) {
        return 0;
    }
    const char *p = strstr(u, "://");
    if (!p) {
        return 0;
    }
    p += 3;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '#') {
        n--;
    }
    if (n == strlen("json-schema.org/draft-07/schema") &&
        memcmp(p, "json-schema.org/draft-07/schema", n) == 0) {
        return SDRAFT_7;
    }
    if (n == strlen("json-schema.org/draft-06/schema") &&
        memcmp(p, "json-schema.org/draft-06/schema", n) == 0) {
        return SDRAFT_7; /* close enough for cross-draft references */
    }
    if (n == strlen("json-schema.org/draft-04/schema") &&
        memcmp(p, "json-schema.org/draft-04/schema", n) == 0) {
        return SDRAFT_7;
    }
    if (n == strlen("json-schema.org/draft/2019-09/schema") &&
        memcmp(p, "json-schema.org/draft/2019-09/schema", n) == 0) {
        return SDRAFT_2019;
    }
    if (n == strlen("json-schema.org/draft/2020-12/schema") &&
        memcmp(p, "json-schema.org/draft/2020-12/schema", n) == 0) {
        return SDRAFT_2020;
    }
    return 0;
}

int pixel_schema_draft_parse(const char *s)
{
    if (!s) {
        return 0;
    }
    if (!strcmp(s, "7") || !strcmp(s, "draft7") || !strcmp(s, "draft-07") || !strcmp(s, "07")) {
        return PIXEL_SCHEMA_DRAFT_7;
    }
    if (!strcmp(s, "2019-09") || !strcmp(s, "draft2019-09") || !strcmp(s, "2019")) {
        return PIXEL_SCHEMA_DRAFT_2019_09;
    }
    if (!strcmp(s, "2020-12") || !strcmp(s, "draft2020-12") || !strcmp(s, "2020")) {
        return PIXEL_SCHEMA_DRAFT_2020_12;
    }
    return draft_of_uri(s);
}

/* Vocabulary flags from a metaschema's $vocabulary; -1 on an unknown required one. */
static int vocab_of(pixel_schema_registry *r, const pixel_value *meta, const pixel_value *at,
                    unsigned *out)
{
    const pixel_value *voc = pixel__object_getn(meta, "$vocabulary", 11);
    if (!voc || voc->type != PIXEL_TYPE_OBJECT) {
        *out = SVOCAB_DEFAULT;
        return 0;
    }
    unsigned f = 0;
    for (const pixel_value *m = voc->u.list.head; m; m = m->next) {
        const char *k = m->key;
        size_t n = m->klen;
        const char *tail;
        const char *slash = NULL;
        for (size_t i = 0; i < n; i++) {
            if (k[i] == '/') {
                slash = k + i;
            }
        }
        bool known = n > 25 && memcmp(k, "https://json-schema.org/draft/", 30 < n ? 30 : n) == 0;
        tail = slash ? slash + 1 : k;
        size_t tl = (size_t)(k + n - tail);
#define IS(s) (tl == strlen(s) && memcmp(tail, s, tl) == 0)
        if (known && IS("validation")) {
            f |= SVOCAB_VALIDATION;
        } else if (known && IS("applicator")) {
            f |= SVOCAB_APPLICATOR;
            if (strstr(k, "2019-09")) {
                f |= SVOCAB_UNEVALUATED;
            }
        } else if (known && IS("unevaluated")) {
            f |= SVOCAB_UNEVALUATED;
        } else if (known && IS("format-assertion")) {
            f |= SVOCAB_FORMAT_ASSERT;
        } else if (known && (IS("core") || IS("meta-data") || IS("content") ||
                             IS("format-annotation") || IS("format"))) {
            /* nothing to switch */
        } else if (m->type == PIXEL_TYPE_BOOL && m->u.b) {
            return pixel__schema_fail(r, at, "/$schema",
                                      "the metaschema requires the unknown vocabulary \"%.*s\"",
                                      (int)n, k);
        }
#undef IS
    }
    *out = f;
    return 0;
}

typedef struct ictx {
    pixel_schema_registry *r;
    sdoc *doc;
} ictx;

static int index_node(ictx *x, const pixel_value *v, sresource *res, const char *rptr,
                      const char *dptr, int draft);

/* The dialect named by $schema: draft and vocabularies; <0 when unknown. */
static int dialect_of(ictx *x, const pixel_value *v, const char *uri, int *draft, unsigned *vocab)
{
    pixel_schema_registry *r = x->r;
    int d = draft_of_uri(uri);
    if (d) {
        *draft = d;
        *vocab = SVOCAB_DEFAULT;
        return 0;
    }
    /* A custom metaschema: its own $schema gives the draft; its $vocabulary the vocabularies. */
    if (r->meta_depth > 8) {
        return pixel__schema_fail(r, v, "/$schema", "metaschema chain too deep at \"%s\"", uri);
    }
    const char *frag;
    char *base = pixel__uri_split(&r->arena, uri, &frag);
    r->meta_depth++;
    sresource *mres = base ? pixel__schema_resource(r, base) : NULL;
    r->meta_depth--;
    if (!mres) {
        return pixel__schema_fail(r, v, "/$schema", "unknown $schema \"%s\" (not a known draft, "
                                                    "and no loaded metaschema has that URI)",
                                  uri);
    }
    if (mres->root->type != PIXEL_TYPE_OBJECT) {
        return pixel__schema_fail(r, v, "/$schema", "$schema \"%s\" is not a metaschema", uri);
    }
    *draft = mres->draft;
    return vocab_of(r, mres->root, v, vocab);
}

static int index_children(ictx *x, const pixel_value *v, sresource *res, const char *rptr,
                          const char *dptr, int draft)
{
    static const char *const single[] = {"additionalProperties", "not", "if", "then", "else",
                                         "contains", "propertyNames", "additionalItems",
                                         "unevaluatedItems", "unevaluatedProperties",
                                         "contentSchema", "items", NULL};
    static const char *const arrays[] = {"allOf", "anyOf", "oneOf", "prefixItems", "items", NULL};
    static const char *const maps[] = {"properties", "patternProperties", "$defs", "definitions",
                                       "dependentSchemas", "dependencies", NULL};
    pixel_arena *a = &x->r->arena;
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        bool is_single = false, is_array = false, is_map = false;
        for (size_t i = 0; single[i]; i++) {
            if (m->klen == strlen(single[i]) && memcmp(m->key, single[i], m->klen) == 0) {
                is_single = true;
            }
        }
        for (size_t i = 0; arrays[i]; i++) {
            if (m->klen == strlen(arrays[i]) && memcmp(m->key, arrays[i], m->klen) == 0) {
                is_array = true;
            }
        }
        for (size_t i = 0; maps[i]; i++) {
            if (m->klen == strlen(maps[i]) && memcmp(m->key, maps[i], m->klen) == 0) {
                is_map = true;
            }
        }
        if (!is_single && !is_array && !is_map) {
            continue;
        }
        const char *rp = ptr_join(a, rptr, m->key, m->klen);
        const char *dp = ptr_join(a, dptr, m->key, m->klen);
        if (!rp || !dp) {
            return reg_oom(x->r);
        }
        if (is_single && (m->type == PIXEL_TYPE_OBJECT || m->type == PIXEL_TYPE_BOOL)) {
            if (index_node(x, m, res, rp, dp, draft) < 0) {
                return -1;
            }
        } else if (is_array && m->type == PIXEL_TYPE_ARRAY) {
            size_t i = 0;
            for (const pixel_value *e = m->u.list.head; e; e = e->next, i++) {
                if (e->type != PIXEL_TYPE_OBJECT && e->type != PIXEL_TYPE_BOOL) {
                    continue;
                }
                const char *rpi = ptr_index(a, rp, i), *dpi = ptr_index(a, dp, i);
                if (!rpi || !dpi || index_node(x, e, res, rpi, dpi, draft) < 0) {
                    return -1;
                }
            }
        } else if (is_map && m->type == PIXEL_TYPE_OBJECT) {
            for (const pixel_value *e = m->u.list.head; e; e = e->next) {
                if (e->type != PIXEL_TYPE_OBJECT && e->type != PIXEL_TYPE_BOOL) {
                    continue;
                }
                const char *rpi = ptr_join(a, rp, e->key, e->klen);
                const char *dpi = ptr_join(a, dp, e->key, e->klen);
                if (!rpi || !dpi || index_node(x, e, res, rpi, dpi, draft) < 0) {
                    return -1;
                }
            }
        }
    }
    return 0;
}

static sresource *new_resource(ictx *x, const char *uri, const pixel_value *v, const char *dptr,
                               int draft, unsigned vocab)
{
    sresource *res = pixel__arena_alloc(&x->r->arena, sizeof(*res));
    if (!res) {
        return NULL;
    }
    memset(res, 0, sizeof(*res));
    res->uri = uri;
    res->root = v;
    res->doc = x->doc;
    res->ptr = dptr;
    res->draft = draft;
    res->vocab = vocab;
    if (!pixel__hmap_get(&x->r->resources, uri)) {
        if (pixel__hmap_put(&x->r->resources, uri, res) < 0) {
            return NULL;
        }
    }
    return res;
}

static int add_anchor(ictx *x, sresource *res, const pixel_value *v, const char *name,
                      bool dynamic)
{
    pixel_schema_registry *r = x->r;
    const char *key = pixel__arena_printf(&r->arena, "%s#%s", res->uri, name);
    if (!key) {
        return reg_oom(r);
    }
    if (!pixel__hmap_get(&r->anchors, key) && pixel__hmap_put(&r->anchors, key, (void *)v) < 0) {
        return reg_oom(r);
    }
    if (dynamic && pixel__hmap_put(&r->dynanchors, key, (void *)v) < 0) {
        return reg_oom(r);
    }
    return 0;
}

static int index_node(ictx *x, const pixel_value *v, sresource *res, const char *rptr,
                      const char *dptr, int draft)
{
    pixel_schema_registry *r = x->r;
    if (v->type == PIXEL_TYPE_OBJECT) {
        const char *schema = sdup(r, v, "$schema");
        unsigned vocab = res ? res->vocab : SVOCAB_DEFAULT;
        if (schema && (!res || pixel__object_getn(v, "$id", 3) || v == x->doc->root)) {
            if (dialect_of(x, v, schema, &draft, &vocab) < 0) {
                return -1;
            }
        } else if (pixel__object_getn(v, "$schema", 7) && !schema) {
            return pixel__schema_fail(r, v, "/$schema", "$schema must be a string");
        }
        const char *id = sdup(r, v, "$id");
        bool has_ref = pixel__object_getn(v, "$ref", 4) != NULL;
        if (!res) {
            res = new_resource(x, x->doc->uri, v, dptr, draft, vocab);
            if (!res) {
                return reg_oom(r);
            }
        }
        if (id && !(draft == SDRAFT_7 && has_ref)) {
            if (draft == SDRAFT_7 && id[0] == '#') {
                if (add_anchor(x, res, v, id + 1, false) < 0) {
                    return -1;
                }
            } else {
                const char *abs = pixel__uri_resolve(&r->arena, res->uri, id);
                const char *frag;
                char *base = abs ? pixel__uri_split(&r->arena, abs, &frag) : NULL;
                if (!base) {
                    return reg_oom(r);
                }
                if (v != res->root || strcmp(base, res->uri) != 0) {
                    sresource *nr = new_resource(x, base, v, dptr, draft, vocab);
                    if (!nr) {
                        return reg_oom(r);
                    }
                    if (v == res->root && v == x->doc->root) {
                        /* the document's own $id: it is the resource (the retrieval
                           URI stays registered too) */
                        nr->recursive_anchor = res->recursive_anchor;
                    }
                    res = nr;
                    rptr = "";
                }
                if (draft == SDRAFT_7 && frag[0] != '\0' &&
                    add_anchor(x, res, v, frag, false) < 0) {
                    return -1;
                }
            }
        }
        if (draft != SDRAFT_7) {
            const char *anchor = sdup(r, v, "$anchor");
            if (anchor && add_anchor(x, res, v, anchor, false) < 0) {
                return -1;
            }
            const char *dyn = sdup(r, v, "$dynamicAnchor");
            if (dyn && add_anchor(x, res, v, dyn, draft == SDRAFT_2020) < 0) {
                return -1;
            }
            const pixel_value *ra = pixel__object_getn(v, "$recursiveAnchor", 16);
            if (ra && ra->type == PIXEL_TYPE_BOOL && ra->u.b && res->root == v) {
                res->recursive_anchor = true;
            }
        }
        sinfo *in = pixel__arena_alloc(&r->arena, sizeof(*in));
        if (!in) {
            return reg_oom(r);
        }
        in->res = res;
        in->ptr = rptr;
        in->dptr = dptr;
        if (!pixel__hmap_get(&r->info, v) && pixel__hmap_put(&r->info, v, in) < 0) {
            return reg_oom(r);
        }
        return index_children(x, v, res, rptr, dptr, draft);
    }
    if (v->type == PIXEL_TYPE_BOOL) {
        if (!res) {
            res = new_resource(x, x->doc->uri, v, dptr, draft, SVOCAB_DEFAULT);
            if (!res) {
                return reg_oom(r);
            }
        }
        sinfo *in = pixel__arena_alloc(&r->arena, sizeof(*in));
        if (!in) {
            return reg_oom(r);
        }
        in->res = res;
        in->ptr = rptr;
        in->dptr = dptr;
        if (!pixel__hmap_get(&r->info, v) && pixel__hmap_put(&r->info, v, in) < 0) {
            return reg_oom(r);
        }
    }
    return 0;
}

/* ---- documents ------------------------------------------------------------------ */

sdoc *pixel__schema_doc_add(pixel_schema_registry *r, const char *uri, const char *file,
                            const char *text, size_t len, pixel_error *err)
{
    pixel_error *saved = r->err;
    r->err = err;
    char *copy = pixel__arena_strndup(&r->arena, text, len);
    sdoc *d = pixel__arena_alloc(&r->arena, sizeof(*d));
    if (!copy || !d) {
        reg_oom(r);
        r->err = saved;
        return NULL;
    }
    memset(d, 0, sizeof(*d));
    pixel_error perr;
    pixel_error_clear(&perr);
    d->root = pixel__json_parse(&r->arena, copy, len, &perr);
    if (!d->root) {
        pixel__error_set(err, PIXEL_ESCHEMA, PIXEL_STAGE_LOAD, "%s", perr.text);
        pixel__error_at(err, file ? file : uri, perr.line, perr.column);
        r->err = saved;
        return NULL;
    }
    if (!uri) {
        const char *id = d->root->type == PIXEL_TYPE_OBJECT ? sdup(r, d->root, "$id") : NULL;
        if (id && strchr(id, ':')) {
            const char *frag;
            uri = pixel__uri_split(&r->arena, id, &frag);
        } else if (file) {
            char *abs = realpath(file, NULL);
            uri = pixel__arena_printf(&r->arena, "file://%s", abs ? abs : file);
            free(abs);
        } else {
            uri = pixel__arena_printf(&r->arena, "urn:pixel:schema:%u", ++r->serial);
        }
    } else {
        const char *frag;
        uri = pixel__uri_split(&r->arena, uri, &frag);
    }
    d->uri = uri;
    d->file = file ? pixel__arena_strndup(&r->arena, file, strlen(file)) : uri;
    if (!d->uri || !d->file) {
        reg_oom(r);
        r->err = saved;
        return NULL;
    }
    if (pixel__hmap_get(&r->docs_by_uri, d->uri)) {
        pixel__error_set(err, PIXEL_ESCHEMA, PIXEL_STAGE_LOAD,
                         "a schema document with URI %s is already loaded", d->uri);
        pixel__error_at(err, d->file, 0, 0);
        r->err = saved;
        return NULL;
    }
    if (pixel__hmap_put(&r->docs_by_uri, d->uri, d) < 0) {
        reg_oom(r);
        r->err = saved;
        return NULL;
    }
    d->next = r->docs;
    r->docs = d;
    ictx x = {r, d};
    sdoc *outer = r->cur;
    r->cur = d;
    int rc = index_node(&x, d->root, NULL, "", "", r->default_draft);
    r->cur = outer;
    r->err = saved;
    return rc < 0 ? NULL : d;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = pixel__malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            break;
        }
        char *nb = pixel__realloc(buf, cap * 2);
        if (!nb) {
            pixel__free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

static sdoc *add_file(pixel_schema_registry *r, const char *path, const char *uri,
                      pixel_error *err)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        pixel__error_set(err, PIXEL_EIO, PIXEL_STAGE_LOAD, "cannot read %s: %s", path,
                         strerror(errno));
        return NULL;
    }
    sdoc *d = pixel__schema_doc_add(r, uri, path, text, len, err);
    pixel__free(text);
    return d;
}

sresource *pixel__schema_resource(pixel_schema_registry *r, const char *uri)
{
    sresource *res = pixel__hmap_get(&r->resources, uri);
    if (res) {
        return res;
    }
    for (const pixel_metaschema *m = pixel__metaschemas; m->uri; m++) {
        if (strcmp(m->uri, uri) == 0) {
            sdoc *d = pixel__schema_doc_add(r, m->uri, m->uri, m->text, strlen(m->text), r->err);
            if (!d) {
                return NULL;
            }
            d->builtin = true;
            return pixel__hmap_get(&r->resources, uri);
        }
    }
    for (smapping *mp = r->maps; mp; mp = mp->next) {
        size_t pl = strlen(mp->prefix);
        if (strncmp(uri, mp->prefix, pl) != 0 || strstr(uri + pl, "..")) {
            continue;
        }
        char *path = pixel__arena_printf(&r->arena, "%s/%s", mp->dir, uri + pl);
        struct stat st;
        if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (!add_file(r, path, uri, r->err)) {
            return NULL;
        }
        return pixel__hmap_get(&r->resources, uri);
    }
    return NULL;
}

/* Percent-decoding and JSON Pointer walking of a fragment. */
static const pixel_value *walk_pointer(pixel_schema_registry *r, const pixel_value *v,
                                       const char *frag)
{
    size_t n = strlen(frag);
    char *dec = pixel__arena_alloc(&r->arena, n + 1);
    if (!dec) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (frag[i] == '%' && i + 2 < n) {
            char hex[3] = {frag[i + 1], frag[i + 2], 0};
            char *end;
            long c = strtol(hex, &end, 16);
            if (end == hex + 2) {
                dec[o++] = (char)c;
                i += 2;
                continue;
            }
        }
        dec[o++] = frag[i];
    }
    dec[o] = '\0';
    const char *p = dec;
    while (*p == '/' && v) {
        p++;
        char tok[512];
        size_t t = 0;
        while (*p && *p != '/' && t < sizeof(tok) - 1) {
            if (*p == '~' && p[1] == '0') {
                tok[t++] = '~';
                p += 2;
            } else if (*p == '~' && p[1] == '1') {
                tok[t++] = '/';
                p += 2;
            } else {
                tok[t++] = *p++;
            }
        }
        tok[t] = '\0';
        if (v->type == PIXEL_TYPE_OBJECT) {
            v = pixel__object_getn(v, tok, t);
        } else if (v->type == PIXEL_TYPE_ARRAY) {
            char *end;
            unsigned long idx = strtoul(tok, &end, 10);
            if (t == 0 || *end || (t > 1 && tok[0] == '0')) {
                return NULL;
            }
            const pixel_value *e = v->u.list.head;
            while (e && idx > 0) {
                e = e->next;
                idx--;
            }
            v = e;
        } else {
            return NULL;
        }
    }
    return *p ? NULL : v;
}

const pixel_value *pixel__schema_lookup(pixel_schema_registry *r, const char *uri,
                                        sresource **res_out, const char **ptr_out)
{
    const char *frag;
    char *base = pixel__uri_split(&r->arena, uri, &frag);
    if (!base) {
        return NULL;
    }
    sresource *res = pixel__schema_resource(r, base);
    if (!res) {
        return NULL;
    }
    *res_out = res;
    *ptr_out = frag;
    if (frag[0] == '\0') {
        *ptr_out = "";
        return res->root;
    }
    if (frag[0] == '/') {
        return walk_pointer(r, res->root, frag);
    }
    const char *key = pixel__arena_printf(&r->arena, "%s#%s", res->uri, frag);
    return key ? pixel__hmap_get(&r->anchors, key) : NULL;
}

/* ---- public API ----------------------------------------------------------------- */

int pixel_schema_registry_new(pixel_schema_registry **out, int default_draft, pixel_error *err)
{
    pixel_error_clear(err); /* err may be uninitialized: fill it from scratch */
    *out = NULL;
    if (default_draft == 0) {
        default_draft = SDRAFT_2020;
    }
    if (default_draft != SDRAFT_7 && default_draft != SDRAFT_2019 && default_draft != SDRAFT_2020) {
        return pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_LOAD, "unknown draft %d",
                                default_draft);
    }
    pixel_schema_registry *r = pixel__calloc(1, sizeof(*r));
    if (!r) {
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    pixel__arena_init(&r->arena);
    r->default_draft = default_draft;
    pixel__hmap_by_string(&r->docs_by_uri);
    pixel__hmap_by_string(&r->resources);
    pixel__hmap_by_string(&r->anchors);
    pixel__hmap_by_string(&r->dynanchors);
    *out = r;
    return 0;
}

void pixel_schema_registry_free(pixel_schema_registry *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->nregex; i++) {
        pcre2_code_free(r->regexes[i]);
    }
    pixel__free(r->regexes);
    pixel__hmap_free(&r->docs_by_uri);
    pixel__hmap_free(&r->resources);
    pixel__hmap_free(&r->anchors);
    pixel__hmap_free(&r->dynanchors);
    pixel__hmap_free(&r->info);
    pixel__hmap_free(&r->compiled);
    pixel__arena_release(&r->arena);
    pixel__free(r);
}

int pixel_schema_registry_add_json(pixel_schema_registry *r, const char *uri, const char *text,
                                   size_t len, pixel_error *err)
{
    sdoc *d = pixel__schema_doc_add(r, uri, NULL, text, len, err);
    if (!d) {
        return err && err->code ? err->code : PIXEL_ESCHEMA;
    }
    r->last = d;
    return 0;
}

int pixel_schema_registry_add_file(pixel_schema_registry *r, const char *path, const char *uri,
                                   pixel_error *err)
{
    sdoc *d = add_file(r, path, uri, err);
    if (!d) {
        return err && err->code ? err->code : PIXEL_ESCHEMA;
    }
    r->last = d;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_dir(pixel_schema_registry *r, const char *dir, int depth, pixel_error *err)
{
    if (depth > 16) {
        return 0;
    }
    DIR *dp = opendir(dir);
    if (!dp) {
        return pixel__error_set(err, PIXEL_EIO, PIXEL_STAGE_LOAD, "cannot open directory %s: %s",
                                dir, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = pixel__realloc(names, cap * sizeof(*nn));
            if (!nn) {
                rc = PIXEL_ENOMEM;
                break;
            }
            names = nn;
        }
        names[n] = pixel__arena_printf(&r->arena, "%s/%s", dir, de->d_name);
        if (!names[n]) {
            rc = PIXEL_ENOMEM;
            break;
        }
        n++;
    }
    closedir(dp);
    if (n) {
        qsort(names, n, sizeof(*names), cmp_str); /* deterministic load order */
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0) {
            continue;
        }
        size_t l = strlen(names[i]);
        if (S_ISDIR(st.st_mode)) {
            rc = add_dir(r, names[i], depth + 1, err);
        } else if (l > 5 && strcmp(names[i] + l - 5, ".json") == 0) {
            rc = pixel_schema_registry_add_file(r, names[i], NULL, err);
        }
    }
    pixel__free(names);
    if (rc == PIXEL_ENOMEM) {
        pixel__error_set(err, rc, PIXEL_STAGE_LOAD, "out of memory");
    }
    return rc;
}

int pixel_schema_registry_add_dir(pixel_schema_registry *r, const char *dir, pixel_error *err)
{
    return add_dir(r, dir, 0, err);
}

int pixel_schema_registry_map(pixel_schema_registry *r, const char *prefix, const char *dir,
                              pixel_error *err)
{
    smapping *m = pixel__arena_alloc(&r->arena, sizeof(*m));
    if (!m) {
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') {
        dl--;
    }
    m->prefix = pixel__arena_strndup(&r->arena, prefix, strlen(prefix));
    m->dir = pixel__arena_strndup(&r->arena, dir, dl);
    if (!m->prefix || !m->dir) {
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    m->next = r->maps;
    r->maps = m;
    return 0;
}

const char *pixel_schema_registry_last_uri(const pixel_schema_registry *r)
{
    if (!r->last) {
        return NULL;
    }
    const pixel_value *root = r->last->root;
    if (root->type == PIXEL_TYPE_OBJECT) {
        const pixel_value *id = pixel__object_getn(root, "$id", 3);
        if (id && id->type == PIXEL_TYPE_STRING) {
            const sinfo *in = pixel__hmap_get(&r->info, root);
            if (in) {
                return in->res->uri;
            }
        }
    }
    return r->last->uri;
}
