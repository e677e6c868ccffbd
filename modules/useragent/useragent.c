/*
 * useragent: browser, OS and device from the User-Agent header, with
 * ua-parser's regexes (uap-core's regexes.yaml, read with libyaml; matched
 * with PCRE2, JIT-compiled when the platform has it).
 *
 * The parser lists are tried in order and the first match wins, as the
 * ua-parser specification says (uap-core docs/specification.md):
 *
 *   - a `*_replacement` may hold $1..$9, replaced by the match's groups;
 *   - without a replacement, family/major/minor/patch/patch_minor are
 *     groups 1..5 (device: family and model are group 1, brand is none);
 *   - results are trimmed; an empty result is absent; no match gives the
 *     family "Other".
 *
 * Instances are per thread (PIXEL_MODULE_PER_THREAD), so the hot path takes
 * no lock and writes no memory another thread reads: each instance has its
 * own cache of recent user agents (a set-associative table, LRU within a
 * set), its own PCRE2 match data and its own counters.  The compiled regexes
 * and the prefilter, read-only after they are built, are shared by the
 * instances of one module entry: the loader gives every instance of an entry
 * the same config object, so the first create() compiles them under that
 * key and the others take a reference.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

#include <pixel/module.h>

#include "shared_rules.h"

#include "prefilter.h"

/* ---- results ---- */

enum {
    B_FAMILY, B_MAJOR, B_MINOR, B_PATCH,
    O_FAMILY, O_MAJOR, O_MINOR, O_PATCH, O_PATCH_MINOR,
    D_FAMILY, D_BRAND, D_MODEL,
    NFIELDS
};

#define KEY(s) s, sizeof(s) - 1
static const struct {
    const char *key;
    size_t klen;
} field_names[NFIELDS] = {
    {KEY("family")}, {KEY("major")}, {KEY("minor")}, {KEY("patch")},       /* browser */
    {KEY("family")}, {KEY("major")}, {KEY("minor")}, {KEY("patch")},       /* os */
    {KEY("patch_minor")}, {KEY("family")}, {KEY("brand")}, {KEY("model")}, /* os, device */
};
static const struct {
    const char *name;
    size_t len;
    int first, end; /* its fields: first..end-1 */
} parts[3] = {
    {KEY("browser"), B_FAMILY, O_FAMILY},
    {KEY("os"), O_FAMILY, D_FAMILY},
    {KEY("device"), D_FAMILY, NFIELDS},
};

/* The part (0 browser, 1 os, 2 device) field k belongs to. */
static inline int part_of(int k)
{
    return k < O_FAMILY ? 0 : k < D_FAMILY ? 1 : 2;
}

/* One parse result: NFIELDS strings packed in one allocation, after the
 * struct (and the image, when there is one); field k is present when bit k
 * of `present` is set, and is then n[k] bytes at offset off[k] of the text
 * (vals[k], for the shape: the same, as pointers into that text).  A cached
 * result also holds its output object as a shape image. */
typedef struct ua_result {
    uint32_t present;
    uint32_t off[NFIELDS], n[NFIELDS];
    size_t textlen;
    const char *text;
    void *image; /* NULL: none (an uncached result) */
    pixel_module_str vals[NFIELDS];
} ua_result;

/* ---- parsers ---- */

typedef enum { KIND_UA, KIND_OS, KIND_DEVICE } parser_kind;

typedef struct parser {
    pcre2_code *re;
    char *repl[5]; /* family, v1..v4 (device: device, brand, model) */
    /* 1 once re is JIT-compiled (or the JIT declined it): regexes are
       compiled for the JIT when a user agent first needs them (see jit) */
    atomic_uchar jitted;
} parser;

typedef struct parser_list {
    parser *v;
    size_t n;
} parser_list;

/* ---- the compiled regexes, shared by the instances of one entry ---- */

typedef struct ua_rules {
    pixel_shared_rules shared; /* first: the registry's link (shared_rules.h) */
    parser_list lists[3];
    size_t base[3]; /* prefilter id of each list's first parser */
    prefilter *pf;
    uint32_t max_groups;
} ua_rules;

static pixel_rules_registry registry = PIXEL_RULES_REGISTRY_INIT;

/* ---- an instance: one thread's cache ---- */

#define WAYS 4

typedef struct cache_entry {
    uint64_t hash;
    uint64_t stamp; /* 0 = empty */
    char *ua;
    size_t ualen;
    ua_result *res;
} cache_entry;

typedef struct useragent_ctx {
    ua_rules *rules;
    /* `from` and `into`, bound to the entry: each looked up from the
       deepest object on its way that the map stage made (client) */
    pixel_module_event_path *from_path;
    pixel_module_event_path *into_path;
    pixel_module_field *log_ua; /* log.user_agent, when the event has no `from` */
    char *into;
    pixel_module_shape *shape; /* {browser: {family, ...}, os: {...}, device: {...}} */
    int parts; /* bit 0 browser, 1 os, 2 device */
    size_t nsets; /* 0 = no cache */
    size_t max_len;
    cache_entry *sets; /* nsets * WAYS */
    /* Entries evicted while the current event was (see emit): they are
       freed at the first eviction on a later event. */
    cache_entry *retired;
    size_t nretired, capretired;
    uint64_t retired_event; /* pixel_module_event_serial() when they were evicted */
    uint64_t clock;
    pcre2_match_data *md; /* for a miss */
    uint64_t *marks;      /* the prefilter's marks, for a miss */
    void *work;           /* the prefilter's scratch, for a miss */
    /* Written only by the thread that owns the instance (plain load + store),
       read by stats() from any thread. */
    atomic_ulong hits, misses, uncached;
} useragent_ctx;

static void count(atomic_ulong *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* ---- loading regexes.yaml ---- */

static const char *const repl_keys[3][5] = {
    {"family_replacement", "v1_replacement", "v2_replacement", "v3_replacement", NULL},
    {"os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement",
     "os_v4_replacement"},
    {"device_replacement", "brand_replacement", "model_replacement", NULL, NULL},
};

static const char *scalar(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        yaml_node_t *v = yaml_document_get_node(d, p->value);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0) {
            return v && v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : NULL;
        }
    }
    return NULL;
}

static int load_list(ua_rules *u, yaml_document_t *d, yaml_node_t *seq, parser_kind kind,
                     const char *file, pixel_error *err)
{
    parser_list *l = &u->lists[kind];
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    l->v = calloc(n ? n : 1, sizeof(parser));
    if (!l->v) {
        return PIXEL_ENOMEM;
    }
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *m = yaml_document_get_node(d, *it);
        const char *re = m && m->type == YAML_MAPPING_NODE ? scalar(d, m, "regex") : NULL;
        if (!re) {
            return pixel_module_error(err, PIXEL_ECONFIG, "%s:%lu: a parser without a regex", file,
                                      m ? (unsigned long)m->start_mark.line + 1 : 0ul);
        }
        const char *flag = scalar(d, m, "regex_flag");
        int ec;
        PCRE2_SIZE off;
        parser *p = &l->v[l->n];
        p->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                              flag && strchr(flag, 'i') ? PCRE2_CASELESS : 0, &ec, &off, NULL);
        if (!p->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            return pixel_module_error(err, PIXEL_ECONFIG, "%s:%lu: bad regex at offset %zu: %s",
                                      file, (unsigned long)m->start_mark.line + 1, (size_t)off,
                                      (char *)msg);
        }
        l->n++;
        if (prefilter_add(u->pf, u->base[kind] + l->n - 1, re) < 0) {
            return PIXEL_ENOMEM;
        }
        uint32_t groups = 0;
        pcre2_pattern_info(p->re, PCRE2_INFO_CAPTURECOUNT, &groups);
        if (groups > u->max_groups) {
            u->max_groups = groups;
        }
        for (int k = 0; k < 5; k++) {
            const char *r = repl_keys[kind][k] ? scalar(d, m, repl_keys[kind][k]) : NULL;
            if (r && !(p->repl[k] = strdup(r))) {
                return PIXEL_ENOMEM;
            }
        }
    }
    return 0;
}

static int load_regexes(ua_rules *u, const char *file, pixel_error *err)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        return pixel_module_error(err, PIXEL_EIO, "cannot open regexes file %s", file);
    }
    yaml_parser_t y;
    yaml_document_t d;
    if (!yaml_parser_initialize(&y)) {
        fclose(f);
        return PIXEL_ENOMEM;
    }
    yaml_parser_set_input_file(&y, f);
    int ok = yaml_parser_load(&y, &d);
    int rc = 0;
    if (!ok) {
        rc = pixel_module_error(err, PIXEL_ECONFIG, "%s:%lu: YAML: %s", file,
                                (unsigned long)y.problem_mark.line + 1,
                                y.problem ? y.problem : "syntax error");
    }
    yaml_parser_delete(&y);
    fclose(f);
    if (!ok) {
        return rc;
    }
    static const char *const lists[3] = {"user_agent_parsers", "os_parsers", "device_parsers"};
    yaml_node_t *root = yaml_document_get_root_node(&d), *seqs[3] = {NULL, NULL, NULL};
    size_t total = 0;
    for (int k = 0; rc == 0 && k < 3; k++) {
        for (yaml_node_pair_t *p = root && root->type == YAML_MAPPING_NODE
                                       ? root->data.mapping.pairs.start
                                       : NULL;
             p && p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *key = yaml_document_get_node(&d, p->key);
            if (key->type == YAML_SCALAR_NODE && strcmp((char *)key->data.scalar.value, lists[k]) == 0) {
                seqs[k] = yaml_document_get_node(&d, p->value);
            }
        }
        if (!seqs[k] || seqs[k]->type != YAML_SEQUENCE_NODE) {
            rc = pixel_module_error(err, PIXEL_ECONFIG, "%s: no '%s' list (not a uap-core regexes.yaml?)",
                                    file, lists[k]);
        } else {
            u->base[k] = total;
            total += (size_t)(seqs[k]->data.sequence.items.top - seqs[k]->data.sequence.items.start);
        }
    }
    if (rc == 0 && !(u->pf = prefilter_new(total))) {
        rc = PIXEL_ENOMEM;
    }
    for (int k = 0; rc == 0 && k < 3; k++) {
        rc = load_list(u, &d, seqs[k], (parser_kind)k, file, err);
    }
    if (rc == 0 && prefilter_build(u->pf) < 0) {
        rc = PIXEL_ENOMEM;
    }
    yaml_document_delete(&d);
    return rc;
}

/* ---- matching ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* Append the field (replacement with $N substituted, or group `group`),
 * trimmed; records its offset/length in off/len (len 0 = absent). */
static int put_field(sbuf *b, const char *repl, int group, const char *ua,
                     const PCRE2_SIZE *ov, int rc, size_t *off, size_t *len)
{
    size_t start = b->len;
    if (repl) {
        for (const char *r = repl; *r; r++) {
            if (r[0] == '$' && r[1] >= '1' && r[1] <= '9') {
                int g = r[1] - '0';
                if (g < rc && ov[2 * g] != PCRE2_UNSET &&
                    sb_put(b, ua + ov[2 * g], ov[2 * g + 1] - ov[2 * g]) < 0) {
                    return -1;
                }
                r++;
            } else if (sb_put(b, r, 1) < 0) {
                return -1;
            }
        }
    } else if (group > 0 && group < rc && ov[2 * group] != PCRE2_UNSET &&
               sb_put(b, ua + ov[2 * group], ov[2 * group + 1] - ov[2 * group]) < 0) {
        return -1;
    }
    size_t s = start, e = b->len;
    while (s < e && (b->p[s] == ' ' || b->p[s] == '\t')) {
        s++;
    }
    while (e > s && (b->p[e - 1] == ' ' || b->p[e - 1] == '\t')) {
        e--;
    }
    *off = s;
    *len = e - s;
    return 0;
}

/*
 * JIT-compiles p's regex the first time a user agent needs it.  Most of the
 * ~1,200 regexes of uap-core are never tried on a given site's traffic (the
 * prefilter rules them out, and the cache answers repeated agents), and
 * compiling them all for the JIT was half of a pipeline's load time.  The
 * regexes are shared by the instances of every thread: the lock makes one
 * thread compile while the others wait, and no thread matches with a regex
 * before its compilation is done (the flag is set, with release, after it).
 */
static pthread_mutex_t jit_lock = PTHREAD_MUTEX_INITIALIZER;

static void jit(parser *p)
{
    if (__builtin_expect(atomic_load_explicit(&p->jitted, memory_order_acquire), 1)) {
        return;
    }
    pthread_mutex_lock(&jit_lock);
    if (!atomic_load_explicit(&p->jitted, memory_order_relaxed)) {
        pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* failing, the interpreter matches */
        atomic_store_explicit(&p->jitted, 1, memory_order_release);
    }
    pthread_mutex_unlock(&jit_lock);
}

/* The first parser of l that matches ua, among those the prefilter marked
 * (bit base + i of marks): its fields appended to b.  1, 0 (none) or -1. */
static int match_list(const parser_list *l, parser_kind kind, const char *ua, size_t n,
                      const uint64_t *marks, size_t base, pcre2_match_data *md, sbuf *b,
                      size_t *off, size_t *len)
{
    static const int ua_groups[5] = {1, 2, 3, 4, 0}, os_groups[5] = {1, 2, 3, 4, 5},
                     dev_groups[5] = {1, 0, 1, 0, 0};
    const int *groups = kind == KIND_UA ? ua_groups : kind == KIND_OS ? os_groups : dev_groups;
    int nf = kind == KIND_UA ? 4 : kind == KIND_OS ? 5 : 3;
    for (size_t i = 0; i < l->n; i++) {
        size_t id = base + i;
        if (!((marks[id / 64] >> (id % 64)) & 1)) {
            continue; /* it contains none of the literals every match of it has */
        }
        jit(&l->v[i]);
        int rc = pcre2_match(l->v[i].re, (PCRE2_SPTR)ua, n, 0, 0, md, NULL);
        if (rc < 0) {
            continue;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        for (int k = 0; k < nf; k++) {
            if (put_field(b, l->v[i].repl[k], groups[k], ua, ov, rc, &off[k], &len[k]) < 0) {
                return -1;
            }
        }
        return 1;
    }
    return 0;
}

/* Parse ua into a freshly allocated result (free with free()), with the
 * instance's match data and marks. */
static ua_result *parse(useragent_ctx *u, const char *ua, size_t n, int cached)
{
    const ua_rules *rules = u->rules;
    size_t off[NFIELDS] = {0}, len[NFIELDS] = {0};
    sbuf b = {0};
    static const int first[3] = {B_FAMILY, O_FAMILY, D_FAMILY};
    int bad = prefilter_scan(rules->pf, ua, n, u->marks, u->work) < 0;
    for (int k = 0; !bad && k < 3; k++) {
        if (!(u->parts & (1 << k))) {
            continue;
        }
        int m = match_list(&rules->lists[k], (parser_kind)k, ua, n, u->marks, rules->base[k],
                           u->md, &b, off + first[k], len + first[k]);
        bad = m < 0;
        if (m == 0 || (m > 0 && len[first[k]] == 0)) {
            off[first[k]] = b.len;
            len[first[k]] = 5;
            bad = bad || sb_put(&b, "Other", 5) < 0;
        }
    }
    size_t isize = 0;
    if (cached && !bad) {
        /* the image's size with room for its JSON text: the values as they
           will be, read where they are now */
        pixel_module_str at[NFIELDS];
        for (int k = 0; k < NFIELDS; k++) {
            int on = len[k] && (u->parts & (1 << part_of(k)));
            at[k] = (pixel_module_str){on ? b.p + off[k] : NULL, len[k]};
        }
        isize = (pixel_module_shape_image_size_for(u->shape, at) + 7) & ~(size_t)7;
    }
    ua_result *r = bad ? NULL : malloc(sizeof(*r) + isize + b.len + 1);
    if (r) {
        char *text = (char *)(r + 1) + isize;
        r->text = text;
        r->image = isize ? (void *)(r + 1) : NULL;
        if (b.len) {
            memcpy(text, b.p, b.len);
        }
        r->textlen = b.len;
        r->present = 0;
        for (int k = 0; k < NFIELDS; k++) {
            r->present |= len[k] && (u->parts & (1 << part_of(k))) ? 1u << k : 0;
            r->off[k] = (uint32_t)off[k];
            r->n[k] = (uint32_t)len[k];
            r->vals[k].s = (r->present >> k) & 1 ? text + off[k] : NULL;
            r->vals[k].len = len[k];
        }
        if (r->image && pixel_module_shape_image_kept(u->shape, r->vals, r->image, isize) < 0) {
            free(r);
            r = NULL;
        }
    }
    free(b.p);
    return r;
}

/* ---- the cache ---- */

/*
 * Write r into the event at u->into.  A cached r: a copy of its image,
 * whose values point into it.  The instance is its context's alone
 * (PIXEL_MODULE_PER_THREAD), so only a later call of this instance evicts
 * it: on a later line of the context, after the event went with the reset,
 * or when the same event is enriched again.  The event may have kept the
 * result elsewhere (a host moved it), so an entry evicted on an event stays
 * allocated (u->retired) until an eviction on a later event
 * (pixel_module_event_serial()).  An uncached r is freed after the call:
 * its text is copied into the context's arena, and the values point into
 * that copy.
 */
static void retired_free(useragent_ctx *u)
{
    for (size_t i = 0; i < u->nretired; i++) {
        free(u->retired[i].ua);
        free(u->retired[i].res);
    }
    u->nretired = 0;
}

static int emit(const useragent_ctx *u, pixel_module_event *ev, const ua_result *r, int cached)
{
    if (cached) { /* a copy of the image, emitted and set in one call */
        return pixel_module_event_set_image(ev, u->into_path, u->shape, r->image) < 0
                   ? PIXEL_ENOMEM
                   : 0;
    }
    pixel_module_str copied[NFIELDS];
    pixel_value *text = pixel_value_new_string(ev->ctx, r->text, r->textlen);
    const char *base = pixel_value_string(text, NULL);
    if (!base) {
        return PIXEL_ENOMEM;
    }
    for (int k = 0; k < NFIELDS; k++) {
        copied[k].s = r->vals[k].s ? base + r->off[k] : NULL;
        copied[k].len = r->n[k];
    }
    pixel_value *into = pixel_module_shape_build(ev->ctx, u->shape, copied);
    if (!into) {
        return PIXEL_ENOMEM;
    }
    return pixel_module_event_set(ev, u->into_path, into) < 0 ? PIXEL_ENOMEM : 0;
}

/* Frees the entries evicted on earlier events, and keeps e until a later one (see emit). */
static int retire(useragent_ctx *u, const cache_entry *e, uint64_t event)
{
    if (event != u->retired_event) {
        retired_free(u);
        u->retired_event = event;
    }
    if (u->nretired == u->capretired) {
        size_t cap = u->capretired ? 2 * u->capretired : 4;
        cache_entry *more = realloc(u->retired, cap * sizeof(*more));
        if (!more) {
            return -1;
        }
        u->retired = more;
        u->capretired = cap;
    }
    u->retired[u->nretired++] = *e;
    return 0;
}

static int lookup_or_parse(useragent_ctx *u, pixel_module_event *ev, const char *ua, size_t n)
{
    if (!u->nsets || n > u->max_len) {
        count(&u->uncached);
        ua_result *r = parse(u, ua, n, 0);
        int rc = r ? emit(u, ev, r, 0) : PIXEL_ENOMEM;
        free(r);
        return rc;
    }
    /* (the host's: another module that hashed these bytes on this event,
       or will, computes it once) */
    uint64_t h = pixel_module_event_hash(ev, ua, n);
    /* the set: the hash's high half scaled to nsets (no division) */
    cache_entry *set = u->sets + (size_t)(((h >> 32) * (uint64_t)u->nsets) >> 32) * WAYS;
    for (int w = 0; w < WAYS; w++) {
        cache_entry *e = &set[w];
        if (e->stamp && e->hash == h && e->ualen == n && memcmp(e->ua, ua, n) == 0) {
            e->stamp = ++u->clock;
            count(&u->hits);
            return emit(u, ev, e->res, 1);
        }
    }
    count(&u->misses);
    ua_result *r = parse(u, ua, n, 1);
    char *copy = r ? malloc(n ? n : 1) : NULL;
    if (!r || !copy) {
        free(r);
        return PIXEL_ENOMEM;
    }
    memcpy(copy, ua, n);
    cache_entry *victim = &set[0];
    for (int w = 1; w < WAYS && victim->stamp; w++) {
        if (set[w].stamp < victim->stamp) {
            victim = &set[w];
        }
    }
    if (victim->stamp && retire(u, victim, pixel_module_event_serial(ev)) < 0) {
        free(copy);
        free(r);
        return PIXEL_ENOMEM;
    }
    *victim = (cache_entry){h, ++u->clock, copy, n, r};
    return emit(u, ev, r, 1);
}

/* ---- the module ---- */

static const pixel_module_option options[] = {
    {"regexes", PIXEL_OPT_PATH, "/usr/share/uap-core/regexes.yaml",
     "uap-core's regexes.yaml", 0},
    {"from", PIXEL_OPT_STRING, "client.user_agent",
     "event field with the user agent (else the log's user agent)", 0},
    {"into", PIXEL_OPT_STRING, "client.ua", "where to write {browser, os, device}", 0},
    {"parts", PIXEL_OPT_LIST, NULL, "which of browser, os, device to parse (default: all)", 0},
    {"cache_size", PIXEL_OPT_INT, "8192", "user agents kept in the cache (0: no cache)", 0},
    {"max_length", PIXEL_OPT_INT, "1024", "longer user agents are parsed but not cached", 0},
    {NULL, 0, NULL, NULL, 0},
};

static void rules_free(ua_rules *r)
{
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < r->lists[k].n; i++) {
            pcre2_code_free(r->lists[k].v[i].re);
            for (int j = 0; j < 5; j++) {
                free(r->lists[k].v[i].repl[j]);
            }
        }
        free(r->lists[k].v);
    }
    prefilter_free(r->pf);
    free(r);
}

/* The compiled regexes for the entry whose config is key (pixel_rules_get()). */
static int rules_build(const void *key, pixel_shared_rules **made, void *err)
{
    ua_rules *r = calloc(1, sizeof(*r));
    int rc = r ? load_regexes(r, pixel_module_config_string(key, "regexes"), err) : PIXEL_ENOMEM;
    if (r && rc < 0) {
        rules_free(r);
        r = NULL;
    }
    *made = r ? &r->shared : NULL;
    return rc;
}

static void rules_free_shared(pixel_shared_rules *r)
{
    rules_free((ua_rules *)r);
}

static void destroy(void *instance)
{
    useragent_ctx *u = instance;
    if (!u) {
        return;
    }
    for (size_t i = 0; u->sets && i < u->nsets * WAYS; i++) {
        free(u->sets[i].ua);
        free(u->sets[i].res);
    }
    free(u->sets);
    retired_free(u);
    free(u->retired);
    pcre2_match_data_free(u->md);
    free(u->marks);
    free(u->work);
    pixel_rules_release(&registry, u->rules ? &u->rules->shared : NULL, rules_free_shared);
    pixel_module_event_path_free(u->from_path);
    pixel_module_event_path_free(u->into_path);
    pixel_module_field_free(u->log_ua);
    pixel_module_shape_free(u->shape);
    free(u->into);
    free(u);
}

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    int64_t size = pixel_module_config_int(cfg, "cache_size");
    int64_t maxlen = pixel_module_config_int(cfg, "max_length");
    if (size < 0 || size > (1 << 24)) {
        return pixel_module_config_error(cfg, err, "cache_size", "cache_size must be 0..16777216");
    }
    if (maxlen < 1) {
        return pixel_module_config_error(cfg, err, "max_length", "max_length must be positive");
    }
    useragent_ctx *u = calloc(1, sizeof(*u));
    if (!u) {
        return PIXEL_ENOMEM;
    }
    *instance = u;
    size_t nparts = pixel_module_config_list_size(cfg, "parts");
    u->parts = nparts ? 0 : 7;
    for (size_t i = 0; i < nparts; i++) {
        const char *p = pixel_module_config_list_item(cfg, "parts", i);
        int bit = strcmp(p, "browser") == 0 ? 1 : strcmp(p, "os") == 0 ? 2
                                              : strcmp(p, "device") == 0 ? 4 : 0;
        if (!bit) {
            return pixel_module_config_error(cfg, err, "parts",
                                             "unknown part '%s' (expected browser, os, device)", p);
        }
        u->parts |= bit;
    }
    u->max_len = (size_t)maxlen;
    u->nsets = size ? ((size_t)size + WAYS - 1) / WAYS : 0;
    if (u->nsets && !(u->sets = calloc(u->nsets * WAYS, sizeof(cache_entry)))) {
        return PIXEL_ENOMEM;
    }
    const char *paths[NFIELDS];
    char names[NFIELDS][32];
    for (int k = 0; k < NFIELDS; k++) {
        snprintf(names[k], sizeof(names[k]), "%s.%s", parts[part_of(k)].name, field_names[k].key);
        paths[k] = names[k];
    }
    if (!(u->shape = pixel_module_shape_new(paths, NFIELDS))) {
        return PIXEL_ENOMEM;
    }
    u->log_ua = pixel_module_field_new("log.user_agent");
    u->into = strdup(pixel_module_config_string(cfg, "into"));
    if (!u->log_ua || !u->into ||
        !(u->from_path =
              pixel_module_event_path_new(cfg, pixel_module_config_string(cfg, "from"))) ||
        !(u->into_path = pixel_module_event_path_new(cfg, u->into))) {
        return PIXEL_ENOMEM;
    }
    pixel_shared_rules *shared;
    int rc = pixel_rules_get(&registry, cfg, &shared, rules_build, err);
    u->rules = (ua_rules *)shared;
    if (rc == PIXEL_EIO && !pixel_module_config_isset(cfg, "regexes")) {
        pixel_error_clear(err);
        return pixel_module_config_error(cfg, err, NULL,
                                         "cannot open %s (install uap-core, or set 'regexes')",
                                         pixel_module_config_string(cfg, "regexes"));
    }
    if (rc == PIXEL_EIO) {
        pixel_error_clear(err);
        return pixel_module_config_error(cfg, err, "regexes", "cannot open %s",
                                         pixel_module_config_string(cfg, "regexes"));
    }
    if (rc < 0) {
        return rc;
    }
    u->md = pcre2_match_data_create(u->rules->max_groups + 1, NULL);
    u->marks = malloc((prefilter_words(u->rules->pf) + 1) * sizeof(uint64_t));
    u->work = malloc(prefilter_work_bytes(u->rules->pf));
    return u->md && u->marks && u->work ? 0 : PIXEL_ENOMEM;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    useragent_ctx *u = instance;
    (void)err;
    size_t n = 0;
    const char *ua = pixel_value_string(pixel_module_event_get(ev, u->from_path), &n);
    if (!ua && ev->record) {
        ua = pixel_module_field_get(ev->record, u->log_ua, &n);
        if (ua && (n == 0 || (n == 1 && ua[0] == '-'))) {
            ua = NULL; /* the log's "no header" */
        }
    }
    if (!ua) {
        return PIXEL_MODULE_CONTINUE; /* nothing to parse; an empty field parses as Other */
    }
    return lookup_or_parse(u, ev, ua, n) < 0 ? PIXEL_ENOMEM : PIXEL_MODULE_CONTINUE;
}

static int stats(void *instance, char *buf, size_t size)
{
    useragent_ctx *u = instance;
    unsigned long h = atomic_load_explicit(&u->hits, memory_order_relaxed),
                  m = atomic_load_explicit(&u->misses, memory_order_relaxed);
    int n = snprintf(buf, size, "hits=%lu misses=%lu uncached=%lu hit_rate=%.4f", h, m,
                     atomic_load_explicit(&u->uncached, memory_order_relaxed), h + m ? (double)h / (double)(h + m) : 0.0);
    return n < 0 ? -1 : 0;
}

static const pixel_module useragent_module = {
    PIXEL_MODULE_HEADER,
    .threading = PIXEL_MODULE_PER_THREAD,
    .name = "useragent",
    .version = "1.0.0",
    .description = "browser, OS and device from the user agent (uap-core regexes)",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
    .stats = stats,
};

PIXEL_MODULE_DEFINE(useragent_module)
