/*
 * referer: classifies where a visit came from.
 *
 * The referer URL (by default the event's page.referrer) gets a medium:
 *
 *   direct    no referer at all (option `direct`);
 *   internal  its host is one of `internal_hosts` (or a subdomain), or the
 *             host of the page itself (`page_url`);
 *   search, social, email, paid
 *             its host (or a parent domain) is in the YAML table
 *             (referers.yaml: medium -> source -> {domains, parameters});
 *             for search, the terms come from the source's parameters;
 *   unknown   anything else.
 *
 * A landing page URL carrying an ad click ID (`paid_parameters`, e.g.
 * gclid) or utm_medium=cpc/ppc/paid turns the medium into paid, keeping the
 * source.  The result goes to `into`: {medium, source, host, term}.
 *
 * Instances are per thread (PIXEL_MODULE_PER_THREAD).  The table (sources,
 * domains and their host index), internal_hosts and paid_parameters are
 * read-only once built, and shared by the instances of one module entry:
 * the loader gives them all the same config object, so the first create()
 * builds them under that key and the others take a reference.  What a
 * referer string alone decides (its host, internal_hosts, the table's entry,
 * where its query is) is cached by the exact string in each instance's own
 * cache, a set-associative table with LRU replacement within a set, so the
 * cache follows the traffic however long the process runs, and a hit takes
 * no lock and writes nothing another thread reads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <pixel/module.h>

#include "cache_hash.h"
#include "shared_rules.h"

#ifndef REFERER_TABLE
#define REFERER_TABLE "/usr/local/share/libpixel/referers.yaml"
#endif

typedef struct source {
    char *medium, *name;
    size_t medium_len, name_len;
    char **params;
    size_t nparams;
} source;

typedef struct domain {
    char *host;
    const source *src;
} domain;

/* A slot of the host index: a distinct host of the table and the entry that
 * a binary search of the sorted table finds for it (so that a host listed
 * twice resolves as it always did). */
typedef struct host_slot {
    uint64_t hash;
    const char *host; /* NULL: empty */
    size_t len;
    const domain *d;
} host_slot;

/*
 * What the referer string alone decides, for one string: the answer of
 * split_url(), internal_hosts and find(), and where the query is when the
 * source has parameters (the term itself is decoded on each line, into the
 * line's arena).  Offsets are into the string, so a result built on a line
 * has the event's own bytes as its host; the image's host points into the
 * entry's copy of the string.  Immutable once in the cache; freed only
 * after no event can point into it any more (see retire()).
 */
typedef struct ref_entry {
    const domain *d; /* the table's entry, or NULL */
    size_t len;
    size_t host_off; /* NO_PART: not an absolute URL with a host */
    size_t host_len;
    size_t query_off; /* NO_PART: no query, or not looked for (d has no parameters) */
    size_t query_len;
    int internal; /* the host is one of internal_hosts or below one */
    /* The result when nothing but the string decides it (no term; the page
       neither internal nor paid), as a shape image whose host points into
       ref; in the same allocation.  NULL: none (built on each line). */
    const void *image;
    char ref[]; /* len bytes */
} ref_entry;

/* A way of a cache set: the entry and its string's hash, and when it was
 * last used (0: the way is empty). */
typedef struct ref_way {
    uint64_t hash;
    uint64_t stamp;
    ref_entry *e;
} ref_way;

/* Ways per set; strings longer than REF_MAX are not cached. */
#define WAYS    4
#define REF_MAX 256
#define NO_PART SIZE_MAX

/* The longest scheme and authority of a page that is remembered. */
#define PAGE_MEMO 64

/* What the config decides and every instance of the entry reads: built by
 * the first create() and shared, read-only, from then on. */
typedef struct referer_rules {
    pixel_shared_rules shared; /* first: the registry's link (shared_rules.h) */
    source *sources;
    size_t nsources, capsources;
    domain *domains; /* sorted by host */
    size_t ndomains, capdomains;
    host_slot *index; /* open addressing, nindex (a power of two) slots */
    size_t nindex;
    char **internal;
    size_t ninternal, *internal_len;
    char **paid;
    size_t npaid, *paid_len;
    uint64_t paid_lens; /* bit n: some paid parameter is n bytes long (bit 63: 63 or more) */
} referer_rules;

static pixel_rules_registry registry = PIXEL_RULES_REGISTRY_INIT;

/* An instance: one context's paths, shape and cache. */
typedef struct referer_ctx {
    referer_rules *rules;
    char *into;
    /* `from` and `page_url`, compiled: their common prefix of whole segments
       (page) looked up once, or NULL, and the rest of each */
    pixel_module_event_path *base;
    pixel_module_path *from, *page;
    pixel_module_event_path *into_path;
    pixel_module_shape *shape; /* {medium, source, host, term} */
    int direct;
    void *direct_image; /* {medium: direct} as a shape image, or NULL */
    /* The page last split (see split_page()): its first memo_len bytes, up
       to where its authority ends (0: none), where authority_of() found its
       authority, and what split_url() found. */
    char memo[PAGE_MEMO];
    size_t memo_len, memo_auth, memo_host, memo_hostlen;
    int memo_ok;
    size_t nsets;  /* 0: no cache */
    ref_way *sets; /* nsets * WAYS */
    /* Entries evicted while the current event was: freed at the first
       eviction on a later event (see retire()). */
    ref_entry **retired;
    size_t nretired, capretired;
    uint64_t retired_event; /* pixel_module_event_serial() when they were evicted */
    /* Written only by the thread that owns the instance (plain load + store),
       read by stats() from any thread.  clock counts the lookups in the
       cache, hits and misses, and stamps the ways they use. */
    atomic_ulong clock, misses, uncached;
} referer_ctx;

static const pixel_module_option options[] = {
    {"table", PIXEL_OPT_PATH, REFERER_TABLE, "the YAML table of known referers", 0},
    {"from", PIXEL_OPT_STRING, "page.referrer", "event field with the referer URL", 0},
    {"into", PIXEL_OPT_STRING, "referer", "where {medium, source, host, term} goes", 0},
    {"page_url", PIXEL_OPT_STRING, "page.url", "event field with the page URL (its host is "
                                               "internal; its ad parameters mean paid)", 0},
    {"internal_hosts", PIXEL_OPT_LIST, NULL, "the site's own domains (subdomains included)", 0},
    {"paid_parameters", PIXEL_OPT_LIST, NULL,
     "landing page parameters that mean paid (default gclid, msclkid, dclid, gbraid, wbraid)", 0},
    {"direct", PIXEL_OPT_BOOL, "true", "write medium 'direct' when there is no referer", 0},
    {"cache_size", PIXEL_OPT_INT, "1024",
     "referer strings kept in each instance's cache (0: no cache)", 0},
    {NULL, 0, NULL, NULL, 0},
};

/* ---- the table ---- */

static void lower(char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            *s = (char)(*s + 32);
        }
    }
}

static yaml_node_t *node(yaml_document_t *d, int id)
{
    return yaml_document_get_node(d, id);
}

static const char *sc(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = sc(node(d, p->key));
        if (k && strcmp(k, key) == 0) {
            return node(d, p->value);
        }
    }
    return NULL;
}

static int strings(yaml_document_t *d, yaml_node_t *seq, char ***out, size_t *n)
{
    size_t k = seq && seq->type == YAML_SEQUENCE_NODE
                   ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start)
                   : 0;
    *n = 0;
    *out = calloc(k ? k : 1, sizeof(char *));
    if (!*out) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        const char *s = sc(node(d, seq->data.sequence.items.start[i]));
        if (s && !((*out)[(*n)++] = strdup(s))) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

static int add_source(referer_rules *r, yaml_document_t *d, const char *medium, const char *name,
                      yaml_node_t *def)
{
    if (r->nsources == r->capsources) {
        /* Domains point at sources: grow by rebuilding their pointers. */
        size_t cap = r->capsources ? r->capsources * 2 : 64;
        source *s = realloc(r->sources, cap * sizeof(*s));
        if (!s) {
            return PIXEL_ENOMEM;
        }
        for (size_t i = 0; i < r->ndomains; i++) {
            r->domains[i].src = s + (r->domains[i].src - r->sources);
        }
        r->sources = s;
        r->capsources = cap;
    }
    source *s = &r->sources[r->nsources++];
    memset(s, 0, sizeof(*s));
    if (!(s->medium = strdup(medium)) || !(s->name = strdup(name)) ||
        strings(d, get(d, def, "parameters"), &s->params, &s->nparams) < 0) {
        return PIXEL_ENOMEM;
    }
    s->medium_len = strlen(medium);
    s->name_len = strlen(name);
    char **doms;
    size_t nd;
    if (strings(d, get(d, def, "domains"), &doms, &nd) < 0) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < nd; i++) {
        char *slash = strchr(doms[i], '/');
        if (slash) {
            *slash = '\0'; /* hosts only */
        }
        lower(doms[i]);
        if (r->ndomains == r->capdomains) {
            size_t cap = r->capdomains ? r->capdomains * 2 : 256;
            domain *dm = realloc(r->domains, cap * sizeof(*dm));
            if (!dm) {
                for (; i < nd; i++) {
                    free(doms[i]);
                }
                free(doms);
                return PIXEL_ENOMEM;
            }
            r->domains = dm;
            r->capdomains = cap;
        }
        r->domains[r->ndomains++] = (domain){doms[i], s};
    }
    free(doms);
    return 0;
}

static int by_host(const void *a, const void *b)
{
    return strcmp(((const domain *)a)->host, ((const domain *)b)->host);
}

/* The slot of host (n bytes, hash h): its entry, or the empty slot where it
 * would go. */
static host_slot *slot_of(const referer_rules *r, const char *host, size_t n, uint64_t h)
{
    size_t mask = r->nindex - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        host_slot *s = &r->index[i];
        if (!s->host || (s->hash == h && s->len == n && memcmp(s->host, host, n) == 0)) {
            return s;
        }
    }
}

/* The host index over the sorted table: each distinct host once, with the
 * entry bsearch() finds for it. */
static int build_index(referer_rules *r)
{
    size_t n = 16;
    while (n < 2 * r->ndomains) {
        n *= 2;
    }
    if (!(r->index = calloc(n, sizeof(host_slot)))) {
        return PIXEL_ENOMEM;
    }
    r->nindex = n;
    for (size_t i = 0; i < r->ndomains; i++) {
        const char *host = r->domains[i].host;
        size_t len = strlen(host);
        uint64_t h = pixel_cache_hash(host, len);
        host_slot *s = slot_of(r, host, len, h);
        if (!s->host) {
            domain key = {(char *)host, NULL};
            *s = (host_slot){h, host, len,
                             bsearch(&key, r->domains, r->ndomains, sizeof(domain), by_host)};
        }
    }
    return 0;
}

static int load_table(referer_rules *r, const pixel_module_config *cfg, pixel_error *err)
{
    const char *file = pixel_module_config_string(cfg, "table");
    FILE *f = fopen(file, "rb");
    if (!f) {
        return pixel_module_config_error(cfg, err, "table", "cannot open the referer table %s",
                                         file);
    }
    yaml_parser_t y;
    yaml_document_t d;
    if (!yaml_parser_initialize(&y)) {
        fclose(f);
        return PIXEL_ENOMEM;
    }
    yaml_parser_set_input_file(&y, f);
    int ok = yaml_parser_load(&y, &d), rc = 0;
    if (!ok) {
        rc = pixel_module_config_error(cfg, err, "table", "%s:%lu:%lu: YAML: %s", file,
                                       (unsigned long)y.problem_mark.line + 1,
                                       (unsigned long)y.problem_mark.column + 1,
                                       y.problem ? y.problem : "syntax error");
    }
    yaml_parser_delete(&y);
    fclose(f);
    if (!ok) {
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&d);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = pixel_module_config_error(cfg, err, "table", "%s: expected medium -> source -> "
                                                          "{domains, parameters}", file);
    }
    for (yaml_node_pair_t *m = rc ? NULL : root->data.mapping.pairs.start;
         m && m < root->data.mapping.pairs.top && rc == 0; m++) {
        const char *medium = sc(node(&d, m->key));
        yaml_node_t *srcs = node(&d, m->value);
        if (!medium || !srcs || srcs->type != YAML_MAPPING_NODE) {
            rc = pixel_module_config_error(cfg, err, "table", "%s:%lu: a medium maps source names "
                                                              "to {domains, parameters}",
                                           file, (unsigned long)srcs->start_mark.line + 1);
            break;
        }
        for (yaml_node_pair_t *s = srcs->data.mapping.pairs.start;
             s < srcs->data.mapping.pairs.top && rc == 0; s++) {
            const char *name = sc(node(&d, s->key));
            rc = name ? add_source(r, &d, medium, name, node(&d, s->value)) : 0;
        }
    }
    yaml_document_delete(&d);
    if (rc == 0) {
        qsort(r->domains, r->ndomains, sizeof(domain), by_host);
        rc = build_index(r);
    }
    return rc;
}

/* ---- lifecycle ---- */

/* A list of the table's own (from strings()). */
static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void rules_free(referer_rules *r)
{
    for (size_t i = 0; i < r->nsources; i++) {
        free(r->sources[i].medium);
        free(r->sources[i].name);
        free_list(r->sources[i].params, r->sources[i].nparams);
    }
    free(r->sources);
    for (size_t i = 0; i < r->ndomains; i++) {
        free(r->domains[i].host);
    }
    free(r->domains);
    free(r->index);
    pixel_module_strings_free(r->internal);
    free(r->internal_len);
    pixel_module_strings_free(r->paid);
    free(r->paid_len);
    free(r);
}

/* internal_hosts and paid_parameters, lower case, with their lengths. */
static int load_lists(referer_rules *r, const pixel_module_config *cfg)
{
    static const char *const paid[] = {"gclid", "msclkid", "dclid", "gbraid", "wbraid", NULL};
    r->internal = pixel_module_config_strings(cfg, "internal_hosts", NULL, &r->ninternal);
    r->paid = pixel_module_config_strings(cfg, "paid_parameters", paid, &r->npaid);
    if (!r->internal || !r->paid || !(r->internal_len = calloc(r->ninternal + 1, sizeof(size_t))) ||
        !(r->paid_len = calloc(r->npaid + 1, sizeof(size_t)))) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < r->ninternal; i++) {
        lower(r->internal[i]);
        r->internal_len[i] = strlen(r->internal[i]);
    }
    for (size_t i = 0; i < r->npaid; i++) {
        lower(r->paid[i]);
        r->paid_len[i] = strlen(r->paid[i]);
        r->paid_lens |= (uint64_t)1 << (r->paid_len[i] < 63 ? r->paid_len[i] : 63);
    }
    return 0;
}

/* The rules for the entry whose config is key, built (pixel_rules_get()). */
static int rules_build(const void *key, pixel_shared_rules **made, void *err)
{
    const pixel_module_config *cfg = key;
    referer_rules *r = calloc(1, sizeof(*r));
    int rc = r ? 0 : PIXEL_ENOMEM;
    if (r && ((rc = load_lists(r, cfg)) < 0 || (rc = load_table(r, cfg, err)) < 0)) {
        rules_free(r);
        r = NULL;
    }
    *made = r ? &r->shared : NULL;
    return rc;
}

static void rules_free_shared(pixel_shared_rules *r)
{
    rules_free((referer_rules *)r);
}

static void retired_free(referer_ctx *r)
{
    for (size_t i = 0; i < r->nretired; i++) {
        free(r->retired[i]);
    }
    r->nretired = 0;
}

static void destroy(void *instance)
{
    referer_ctx *r = instance;
    if (!r) {
        return;
    }
    for (size_t i = 0; r->sets && i < r->nsets * WAYS; i++) {
        free(r->sets[i].e);
    }
    free(r->sets);
    retired_free(r);
    free(r->retired);
    pixel_rules_release(&registry, r->rules ? &r->rules->shared : NULL, rules_free_shared);
    pixel_module_event_path_free(r->base);
    pixel_module_path_free(r->from);
    pixel_module_path_free(r->page);
    pixel_module_event_path_free(r->into_path);
    pixel_module_shape_free(r->shape);
    free(r->into);
    free(r->direct_image);
    free(r);
}

/* The referer and page paths as a common prefix and the rest of each (each
 * keeps at least one segment of its own). */
static int compile_paths(referer_ctx *r, const pixel_module_config *cfg, const char *from,
                         const char *page)
{
    size_t prefix = 0;
    for (size_t i = 0; from[i] && from[i] == page[i]; i++) {
        if (from[i] == '.' && from[i + 1] && page[i + 1]) {
            prefix = i;
        }
    }
    if (prefix) {
        char *base = strndup(from, prefix);
        r->base = base ? pixel_module_event_path_new(cfg, base) : NULL;
        free(base);
        if (!r->base) {
            return -1;
        }
        from += prefix + 1;
        page += prefix + 1;
    }
    r->from = pixel_module_path_new(from);
    r->page = pixel_module_path_new(page);
    return r->from && r->page ? 0 : -1;
}

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    int64_t size = pixel_module_config_int(cfg, "cache_size");
    if (size < 0 || size > (1 << 24)) {
        return pixel_module_config_error(cfg, err, "cache_size", "cache_size must be 0..16777216");
    }
    referer_ctx *r = calloc(1, sizeof(*r));
    if (!r) {
        return PIXEL_ENOMEM;
    }
    *instance = r;
    r->direct = pixel_module_config_bool(cfg, "direct");
    r->nsets = ((size_t)size + WAYS - 1) / WAYS;
    if (r->nsets && !(r->sets = calloc(r->nsets * WAYS, sizeof(ref_way)))) {
        return PIXEL_ENOMEM;
    }
    r->into = strdup(pixel_module_config_string(cfg, "into"));
    if (!r->into || compile_paths(r, cfg, pixel_module_config_string(cfg, "from"),
                                  pixel_module_config_string(cfg, "page_url")) < 0) {
        return PIXEL_ENOMEM;
    }
    static const char *const keys[] = {"medium", "source", "host", "term"};
    if (!(r->into_path = pixel_module_event_path_new(cfg, r->into)) ||
        !(r->shape = pixel_module_shape_new(keys, 4))) {
        return PIXEL_ENOMEM;
    }
    const pixel_module_str direct[4] = {{"direct", 6}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    const size_t dsize = pixel_module_shape_image_size_for(r->shape, direct);
    if (r->direct && (r->direct_image = malloc(dsize)) &&
        pixel_module_shape_image_kept(r->shape, direct, r->direct_image, dsize) < 0) {
        free(r->direct_image); /* built on each line instead */
        r->direct_image = NULL;
    }
    pixel_shared_rules *shared;
    int rc = pixel_rules_get(&registry, cfg, &shared, rules_build, err);
    r->rules = (referer_rules *)shared;
    return rc;
}

/* ---- classifying ---- */

typedef struct url {
    const char *host, *query;
    size_t hostlen, querylen;
    const char *rest, *end; /* where the URL's authority ends, and the URL */
} url;

#if defined(__GNUC__)
#define PIXEL_REFERER_INLINE __attribute__((always_inline)) /* its `kind` known at each call */
#else
#define PIXEL_REFERER_INLINE
#endif

/* The bytes next_delim() looks for. */
enum {
    DELIM_AUTHORITY, /* what ends a part of the authority: '/', '?', '#', '@', ':' */
    DELIM_SCHEME,    /* ':' */
    DELIM_NAME,      /* what ends a parameter's name: '=', '&' */
};

static inline PIXEL_REFERER_INLINE int is_delim(unsigned char c, int kind)
{
    return kind == DELIM_AUTHORITY ? c == '/' || c == '?' || c == '#' || c == '@' || c == ':'
           : kind == DELIM_SCHEME  ? c == ':'
                                   : c == '=' || c == '&';
}

/*
 * The first byte at or after p (before end) that is one of the `kind`
 * delimiters; end when there is none.  Sixteen bytes at a time; a tail
 * shorter than that is read as the last sixteen bytes of the string (s..end,
 * when it has as many), the bytes before p left out: nothing outside the
 * string is read.
 */
static inline PIXEL_REFERER_INLINE const char *next_delim(const char *s, const char *p,
                                                          const char *end, int kind)
{
#ifdef __SSE2__
    while (p < end) {
        const char *blk = p;
        unsigned skip = 0;
        if (end - p < 16) {
            if (end - s < 16) {
                break; /* a short string: below, a byte at a time */
            }
            blk = end - 16;
            skip = (unsigned)(p - blk);
        }
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)blk), m;
        if (kind == DELIM_AUTHORITY) {
            m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('?')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8('#'))),
                             _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')),
                                          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('@')),
                                                       _mm_cmpeq_epi8(v, _mm_set1_epi8(':')))));
        } else if (kind == DELIM_SCHEME) {
            m = _mm_cmpeq_epi8(v, _mm_set1_epi8(':'));
        } else {
            m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('=')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('&')));
        }
        unsigned bits = (unsigned)_mm_movemask_epi8(m) >> skip << skip;
        if (bits) {
            return blk + __builtin_ctz(bits);
        }
        p = blk + 16;
    }
#else
    (void)s;
#endif
    for (; p < end; p++) {
        if (is_delim((unsigned char)*p, kind)) {
            return p;
        }
    }
    return end;
}

/* Where the authority of an absolute URL starts (after the scheme's "://"),
 * or NULL when s (n bytes) has no ':' followed by "//". */
static const char *authority_of(const char *s, size_t n)
{
    const char *end = s + n, *colon = NULL;
#ifdef __SSE2__
    if (n >= 16) { /* the scheme is short: its ':' is mostly in the first sixteen bytes */
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        unsigned bits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(':')));
        colon = bits ? s + __builtin_ctz(bits) : next_delim(s, s + 16, end, DELIM_SCHEME);
    }
#endif
    if (!colon) {
        colon = next_delim(s, s, end, DELIM_SCHEME);
    }
    return end - colon >= 3 && colon[1] == '/' && colon[2] == '/' ? colon + 3 : NULL;
}

/*
 * scheme://[userinfo@]host[:port][/path][?query][#fragment]: the host (its
 * trailing dots left out), from the authority that authority_of() found
 * (h, not NULL); the query is found only when asked for (url_query(): most
 * lines need no query of a page or referer, and the path before it is the
 * longest part).  The host starts after the first '@' of the authority and
 * ends at the first ':' after that.
 */
static int split_url(const char *s, size_t n, const char *h, url *u)
{
    const char *end = s + n, *p = h, *port = NULL;
    int at = 0;
    for (;; p++) {
        p = next_delim(s, p, end, DELIM_AUTHORITY);
        if (p == end || *p == '/' || *p == '?' || *p == '#') {
            break;
        }
        if (*p == '@') {
            if (!at) { /* the first '@': the host starts after it */
                at = 1;
                h = p + 1;
                port = NULL;
            }
        } else if (!port) {
            port = p;
        }
    }
    u->host = h;
    u->hostlen = (size_t)((port ? port : p) - h);
    while (u->hostlen && h[u->hostlen - 1] == '.') {
        u->hostlen--;
    }
    u->query = NULL;
    u->querylen = 0;
    u->rest = p;
    u->end = end;
    return u->hostlen ? 0 : -1;
}

/* The query of a URL (ending at `end`) whose authority ends at `rest` (or
 * starts there: the authority has no '?' or '#'): after the first '?', when
 * no '#' comes before it, up to the next '#'.  NULL when there is none. */
static const char *query_of(const char *rest, const char *end, size_t *len)
{
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    if (!q || memchr(rest, '#', (size_t)(q - rest))) {
        return NULL; /* none, or in the fragment */
    }
    const char *frag = memchr(q + 1, '#', (size_t)(end - q - 1));
    *len = (size_t)((frag ? frag : end) - q - 1);
    return q + 1;
}

/* url_query() of a URL split_url() took apart. */
static void url_query(url *u)
{
    u->query = query_of(u->rest, u->end, &u->querylen);
}

/* ASCII letters folded to lower case, eight bytes at once. */
static inline uint64_t fold8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = ones * 0x80;
    uint64_t low7 = x & ~high; /* no carry from one byte into the next below */
    uint64_t upper = (low7 + ones * (0x80 - 'A')) & ~(low7 + ones * (0x80 - 'Z' - 1)) & ~x & high;
    return x | upper >> 2;
}

/* Some byte of x is zero. */
static inline int has_zero8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull;
    return ((x - ones) & ~x & ones * 0x80) != 0;
}

/* strncasecmp(a, b, n) == 0 in the C locale (ASCII letters fold; the
 * comparison ends at a NUL byte both have), without the call: hosts are
 * short, and most compare as whole words. */
static int same_nocase(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        uint64_t x, y;
        for (size_t i = 0;; i += 8) {
            if (i > n - 8) {
                i = n - 8; /* the last word overlaps the one before */
            }
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (has_zero8(x)) {
                break; /* a NUL, which may end the comparison: byte by byte below */
            }
            if (x != y && fold8(x) != fold8(y)) {
                return 0;
            }
            if (i == n - 8) {
                return 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = x >= 'A' && x <= 'Z' ? (unsigned char)(x + 32) : x;
        y = y >= 'A' && y <= 'Z' ? (unsigned char)(y + 32) : y;
        if (x != y) {
            return 0;
        }
        if (!x) {
            return 1;
        }
    }
    return 1;
}

/* host equals d (dn bytes) or is a subdomain of it (case-insensitive host). */
static int host_in(const char *host, size_t n, const char *d, size_t dn)
{
    return n >= dn && same_nocase(host + n - dn, d, dn) &&
           (n == dn || host[n - dn - 1] == '.');
}

static const domain *find(const referer_rules *r, const char *host, size_t n)
{
    char buf[256];
    if (n >= sizeof(buf)) {
        return NULL;
    }
    /* Lower case, up to a NUL byte (as the table's C strings compare):
       eight bytes at a time while there is none. */
    size_t len = 0;
    for (uint64_t w; len + 8 <= n; len += 8) {
        memcpy(&w, host + len, 8);
        if (has_zero8(w)) {
            break;
        }
        w = fold8(w);
        memcpy(buf + len, &w, 8);
    }
    while (len < n && host[len]) {
        buf[len] = host[len] >= 'A' && host[len] <= 'Z' ? (char)(host[len] + 32) : host[len];
        len++;
    }
    /* The host, then each parent domain: www.google.co.uk, google.co.uk, co.uk, uk. */
    for (const char *h = buf, *end = buf + len; h;) {
        size_t hn = (size_t)(end - h);
        const host_slot *s = slot_of(r, h, hn, pixel_cache_hash(h, hn));
        if (s->host) {
            return s->d;
        }
        const char *dot = memchr(h, '.', hn);
        h = dot ? dot + 1 : NULL;
    }
    return NULL;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xC2 && c <= 0xDF ? 1 : (c & 0xF0) == 0xE0 ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        if (!k || i + k >= n) {
            return 0;
        }
        unsigned c1 = s[i + 1];
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 >= 0x90)) {
            return 0; /* overlong, surrogate, beyond U+10FFFF */
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += k + 1;
    }
    return 1;
}

/* Percent-decode v (+ is a space) into out, which has room for vn bytes; the length. */
static size_t decode(const char *v, size_t vn, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < vn; i++) {
        int hi, lo;
        if (v[i] == '%' && i + 2 < vn && (hi = hexval(v[i + 1])) >= 0 &&
            (lo = hexval(v[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[k++] = v[i] == '+' ? ' ' : v[i];
        }
    }
    return k;
}

/* The decoded value of parameter `name` in query q; NULL if absent, empty or not UTF-8. */
static pixel_value *param(pixel_ctx *ctx, const char *q, size_t qn, const char *name)
{
    size_t nl = strlen(name);
    const char *end = q + qn;
    for (const char *s = q; s < end;) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pe = amp ? amp : end;
        if ((size_t)(pe - s) > nl && memcmp(s, name, nl) == 0 && s[nl] == '=') {
            const char *v = s + nl + 1;
            size_t vn = (size_t)(pe - v), k;
            char small[512];
            if (vn <= sizeof(small)) {
                k = decode(v, vn, small);
                return k && valid_utf8((unsigned char *)small, k)
                           ? pixel_value_new_string(ctx, small, k)
                           : NULL;
            }
            /* A long one: a copy in the context's arena, decoded in place. */
            char *big = (char *)pixel_module_printf(ctx, "%.*s", (int)vn, v);
            k = big ? decode(big, vn, big) : 0;
            return k && valid_utf8((unsigned char *)big, k) ? pixel_module_string_ref(ctx, big, k)
                                                            : NULL;
        }
        s = pe + 1;
    }
    return NULL;
}

/* The landing page's query q (qn bytes) says paid: utm_medium=cpc|ppc|...,
 * or one of the ad click IDs. */
static int paid_landing(const referer_rules *r, const char *q, size_t qn)
{
    static const struct {
        const char *s;
        size_t len;
    } paid_media[] = {{"cpc", 3}, {"ppc", 3}, {"paid", 4}, {"paidsearch", 10}, {"display", 7}};
    const char *end = q + qn;
    for (const char *s = q; s < end;) {
        const char *p = next_delim(q, s, end, DELIM_NAME); /* the name ends here */
        size_t nn = (size_t)(p - s);
        const char *pe = p; /* the end of the parameter */
        if (p < end && *p == '=') {
            pe = memchr(p + 1, '&', (size_t)(end - p - 1));
            pe = pe ? pe : end;
            if (nn == 10 && memcmp(s, "utm_medium", 10) == 0) {
                size_t vn = (size_t)(pe - p - 1);
                for (size_t i = 0; i < sizeof(paid_media) / sizeof(paid_media[0]); i++) {
                    if (vn == paid_media[i].len && same_nocase(p + 1, paid_media[i].s, vn)) {
                        return 1;
                    }
                }
            }
        }
        if (r->paid_lens >> (nn < 63 ? nn : 63) & 1) { /* else no name is as long */
            for (size_t i = 0; i < r->npaid; i++) {
                if (nn == r->paid_len[i] && memcmp(s, r->paid[i], nn) == 0) {
                    return 1;
                }
            }
        }
        s = pe + 1;
    }
    return 0;
}

/* What the referer ref (n bytes, not empty) alone decides, into e (all but
 * its key). */
static void classify_ref(const referer_rules *r, const char *ref, size_t n, ref_entry *e)
{
    url u;
    const char *auth = authority_of(ref, n);
    e->d = NULL;
    e->host_off = e->query_off = NO_PART;
    e->host_len = e->query_len = 0;
    e->internal = 0;
    e->image = NULL;
    if (!auth || split_url(ref, n, auth, &u) < 0) {
        return;
    }
    e->host_off = (size_t)(u.host - ref);
    e->host_len = u.hostlen;
    for (size_t i = 0; !e->internal && i < r->ninternal; i++) {
        e->internal = host_in(u.host, u.hostlen, r->internal[i], r->internal_len[i]);
    }
    /* The table's entry and the query only count when the page does not
       make the referer internal either; they are looked up regardless. */
    if (!e->internal && (e->d = find(r, u.host, u.hostlen)) && e->d->src->nparams) {
        url_query(&u);
        if (u.query) {
            e->query_off = (size_t)(u.query - ref);
            e->query_len = u.querylen;
        }
    }
}

/* c + 1, stored; the new value. */
static inline unsigned long count(atomic_ulong *c)
{
    unsigned long v = atomic_load_explicit(c, memory_order_relaxed) + 1;
    atomic_store_explicit(c, v, memory_order_relaxed);
    return v;
}

/*
 * An entry evicted from the cache may still be in use: the event of the
 * current call may hold a copy of its image (whose host points into the
 * entry), or a result that a host moved elsewhere in the event, if the same
 * event is enriched again.  The instance is its context's alone, so no
 * other event can: an entry evicted on an event is kept (r->retired) until
 * an eviction on a later event (pixel_module_event_serial()), which frees
 * it.  retire() frees those evicted on earlier events and keeps e; -1 when
 * out of memory (e is then not evicted).
 */
static int retire(referer_ctx *r, ref_entry *e, uint64_t event)
{
    if (event != r->retired_event) {
        retired_free(r);
        r->retired_event = event;
    }
    if (r->nretired == r->capretired) {
        size_t cap = r->capretired ? 2 * r->capretired : 4;
        ref_entry **more = realloc(r->retired, cap * sizeof(*more));
        if (!more) {
            return -1;
        }
        r->retired = more;
        r->capretired = cap;
    }
    r->retired[r->nretired++] = e;
    return 0;
}

/*
 * classify_ref() of ref through the instance's cache: the cached entry; or
 * a new entry, which takes the place of the least recently used of its set;
 * or else e filled in, uncached (no cache, a string longer than REF_MAX, or
 * no memory).  The set is picked by the hash's high half scaled to nsets.
 */
static const ref_entry *lookup_ref(referer_ctx *r, const pixel_module_event *ev, const char *ref,
                                   size_t n, ref_entry *e)
{
    if (!r->nsets || n > REF_MAX) {
        count(&r->uncached);
        classify_ref(r->rules, ref, n, e);
        return e;
    }
    uint64_t h = pixel_cache_hash(ref, n), now = count(&r->clock);
    ref_way *set = r->sets + (size_t)(((h >> 32) * (uint64_t)r->nsets) >> 32) * WAYS;
    for (int w = 0; w < WAYS; w++) {
        ref_way *way = &set[w];
        if (way->hash == h && way->stamp && way->e->len == n && memcmp(way->e->ref, ref, n) == 0) {
            way->stamp = now;
            return way->e;
        }
    }
    count(&r->misses);
    classify_ref(r->rules, ref, n, e);
    /* The object of the usual outcome: its members as they will be, the host
       read where it is now (in the event) to size the image. */
    const source *so = !e->internal && e->d ? e->d->src : NULL;
    pixel_module_str vals[4] = {
        e->internal ? (pixel_module_str){"internal", 8}
        : so        ? (pixel_module_str){so->medium, so->medium_len}
                    : (pixel_module_str){"unknown", 7},
        {so ? so->name : NULL, so ? so->name_len : 0},
        {e->host_off != NO_PART ? ref + e->host_off : NULL, e->host_len},
        {NULL, 0}};
    /* The entry, then the image (aligned as malloc() aligns), with room for
       its text: it never changes while the entry lives. */
    size_t at = (sizeof(ref_entry) + n + 15) / 16 * 16;
    size_t isize = pixel_module_shape_image_size_for(r->shape, vals);
    ref_entry *fresh = malloc(at + isize);
    if (!fresh) {
        return e; /* used uncached */
    }
    *fresh = *e;
    fresh->len = n;
    memcpy(fresh->ref, ref, n);
    if (vals[2].s) {
        vals[2].s = fresh->ref + e->host_off; /* the entry's own copy */
    }
    void *image = (char *)fresh + at;
    fresh->image = pixel_module_shape_image_kept(r->shape, vals, image, isize) == 0 ? image : NULL;
    ref_way *victim = &set[0];
    for (int w = 1; w < WAYS && victim->stamp; w++) {
        if (set[w].stamp < victim->stamp) {
            victim = &set[w];
        }
    }
    if (victim->stamp && retire(r, victim->e, pixel_module_event_serial(ev)) < 0) {
        free(fresh);
        return e;
    }
    *victim = (ref_way){h, now, fresh};
    return fresh;
}

/* split_url() of the page, whose authority starts at auth; remembered
 * (page_memo()) when its scheme and authority are at most PAGE_MEMO bytes. */
static int split_page(referer_ctx *r, const char *page, size_t pn, const char *auth, url *pu)
{
    int rc = split_url(page, pn, auth, pu);
    size_t len = (size_t)(pu->rest - page);
    if (len <= PAGE_MEMO) {
        memcpy(r->memo, page, len);
        r->memo_len = len;
        r->memo_auth = (size_t)(auth - page);
        r->memo_host = (size_t)(pu->host - page);
        r->memo_hostlen = pu->hostlen;
        r->memo_ok = rc == 0;
    }
    return rc;
}

/*
 * The page starts with the scheme and authority remembered by split_page(),
 * and its authority ends where that one did (at a '/', '?' or '#', or at
 * its end): then authority_of() and split_url(), which read no further,
 * would find what they found then: pu gets the host and the end of the
 * authority (all that is read of a page's split).  Most pages of a site
 * share their scheme and host.
 */
static inline int page_memo(const referer_ctx *r, const char *page, size_t pn, url *pu)
{
    size_t k = r->memo_len;
    if (!k || pn < k || (pn > k && page[k] != '/' && page[k] != '?' && page[k] != '#') ||
        memcmp(page, r->memo, k) != 0) {
        return 0;
    }
    pu->host = page + r->memo_host;
    pu->hostlen = r->memo_hostlen;
    pu->rest = page + k;
    return 1;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    referer_ctx *r = instance;
    (void)err;
    size_t n = 0, pn = 0;
    const pixel_value *base = r->base ? pixel_module_event_get(ev, r->base) : ev->event;
    const char *ref = pixel_value_string(pixel_module_path_get(base, r->from), &n);
    const char *page = pixel_value_string(pixel_module_path_get(base, r->page), &pn);
    /* The page is an absolute URL with a host (split once, when first needed,
       or known from the page before: 1 yes, -1 no, 0 not looked at yet). */
    const char *page_auth = NULL;
    int have_page = -1;
    url pu;
    if (page && page_memo(r, page, pn, &pu)) {
        page_auth = page + r->memo_auth;
        have_page = r->memo_ok ? 1 : -1;
    } else if (page && (page_auth = authority_of(page, pn))) {
        have_page = 0;
    }
    const char *medium = "unknown", *src = NULL, *host = NULL;
    size_t medium_len = 7, src_len = 0, host_len = 0;
    int internal = 0;
    pixel_value *term = NULL;
    const void *image = NULL; /* the result, when an image has it */
    if (!ref || n == 0) {
        if (!r->direct) {
            return PIXEL_MODULE_CONTINUE;
        }
        medium = "direct";
        medium_len = 6;
        image = r->direct_image;
    } else {
        ref_entry scratch;
        const ref_entry *e = lookup_ref(r, ev, ref, n, &scratch);
        if (e->host_off != NO_PART) {
            host = ref + e->host_off;
            host_len = e->host_len;
            internal = e->internal;
            /* internal_hosts first: then the page need not be split at all */
            if (!internal && have_page == 0) {
                have_page = split_page(r, page, pn, page_auth, &pu) == 0 ? 1 : -1;
            }
            internal = internal || (have_page > 0 && pu.hostlen == host_len &&
                                    same_nocase(pu.host, host, host_len));
        }
        if (internal) {
            medium = "internal";
            medium_len = 8;
        } else if (e->d) {
            const source *so = e->d->src;
            medium = so->medium;
            medium_len = so->medium_len;
            src = so->name;
            src_len = so->name_len;
            for (size_t i = 0; e->query_off != NO_PART && i < so->nparams && !term; i++) {
                term = param(ev->ctx, ref + e->query_off, e->query_len, so->params[i]);
            }
        }
        /* the string's own result: no term, and not internal by the page */
        image = !term && internal == e->internal ? e->image : NULL;
    }
    /* Paid: the page's query (looked for from its authority on, which has no
       '?' or '#') says so, and the page has a host. */
    size_t qn = 0;
    const char *q = internal || have_page < 0
                        ? NULL
                        : query_of(have_page > 0 ? pu.rest : page_auth, page + pn, &qn);
    if (q && paid_landing(r->rules, q, qn)) {
        if (have_page == 0) {
            have_page = split_page(r, page, pn, page_auth, &pu) == 0 ? 1 : -1;
        }
        if (have_page > 0) {
            medium = "paid";
            medium_len = 4;
            image = NULL;
        }
    }
    if (image) { /* emitted and set in one call */
        return pixel_module_event_set_image(ev, r->into_path, r->shape, image) < 0
                   ? PIXEL_ENOMEM
                   : PIXEL_MODULE_CONTINUE;
    }
    /* medium and source: literals or the table's own strings, which live as
     * long as the instance; host: a part of the event's own referer string;
     * term: in the context's arena. */
    pixel_module_str vals[4] = {{medium, medium_len}, {src, src_len}, {host, host_len}, {NULL, 0}};
    if (term) { /* most lines have none: no call */
        vals[3].s = pixel_value_string(term, &vals[3].len);
    }
    pixel_value *o = pixel_module_shape_build(ev->ctx, r->shape, vals);
    if (!o) {
        return PIXEL_ENOMEM;
    }
    return pixel_module_event_set(ev, r->into_path, o) < 0 ? PIXEL_ENOMEM : PIXEL_MODULE_CONTINUE;
}

static int stats(void *instance, char *buf, size_t size)
{
    referer_ctx *r = instance;
    /* misses first: a lookup is counted before it is found to miss */
    unsigned long m = atomic_load_explicit(&r->misses, memory_order_relaxed),
                  all = atomic_load_explicit(&r->clock, memory_order_relaxed),
                  h = all > m ? all - m : 0;
    int n = snprintf(buf, size, "hits=%lu misses=%lu uncached=%lu hit_rate=%.4f", h, m,
                     atomic_load_explicit(&r->uncached, memory_order_relaxed),
                     h + m ? (double)h / (double)(h + m) : 0.0);
    return n < 0 ? -1 : 0;
}

static const pixel_module referer_module = {
    PIXEL_MODULE_HEADER,
    .threading = PIXEL_MODULE_PER_THREAD,
    .name = "referer",
    .version = "1.0.0",
    .description = "referer medium (internal, search, social, email, paid, unknown) and search terms",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
    .stats = stats,
};

PIXEL_MODULE_DEFINE(referer_module)
