/*
 * botfilter: drops (or flags) bots and crawlers.
 *
 * Three tests, in this order; the first that matches decides:
 *
 *   1. families: the user agent families the useragent module wrote
 *      (`family_fields`, e.g. client.ua.device.family = "Spider") against
 *      a list of known bot families;
 *   2. patterns: case-insensitive PCRE2 regexes against the raw user agent;
 *   3. ip_ranges: CIDR ranges (IPv4 and IPv6) against the client address,
 *      by default the log's own field (log.client), so that an earlier
 *      anonymize_ip does not hide it.
 *
 * action: drop  -> the line is dropped (counted per module by the host);
 *         flag  -> `flag_field` is set to the rule that matched, e.g.
 *                  "family:Googlebot", and the event goes on.
 *
 * One instance per thread (each has its own PCRE2 match data and a small
 * cache of recent pattern verdicts, so no locks); counters are per instance,
 * written by its thread alone.  The fields it reads are compiled once
 * (pixel_module_path / pixel_module_field), and the family fields' common
 * prefix (client.ua) is looked up once per event; when it holds a result
 * another module emitted from a kept image and nobody changed since
 * (pixel_module_value_image()), the family verdict found for that image
 * before is taken without reading the fields again.
 */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <pixel/module.h>

#include "cache_hash.h"

static const char *const default_families[] = {
    "Spider",     "Googlebot",  "Googlebot-Image", "Googlebot-News", "bingbot",
    "YandexBot",  "Baiduspider", "DuckDuckBot",    "AhrefsBot",      "SemrushBot",
    "MJ12bot",    "DotBot",     "PetalBot",        "Applebot",       "facebookexternalhit",
    "Twitterbot", "Slurp",      "Bytespider",      "GPTBot",         NULL,
};

static const char *const default_patterns[] = {
    "(?:bot|crawler|spider|slurp|scraper)/[0-9]",
    "^(?:curl|wget|python-requests|python-urllib|go-http-client|java|libwww-perl|okhttp|"
    "scrapy|httpclient|axios|node-fetch)/",
    "headlesschrome/|phantomjs/|\\+https?://",
    NULL,
};

/* A rule that matched, as the drop reason or flag value: "family:Googlebot". */
typedef struct rule {
    char *text;
    size_t len;
} rule;

typedef struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
    rule why; /* "ip:<as configured>" */
} cidr;

/* Where the user agent or the client address is: a field of the parsed line
 * (log.*, syslog.*, query.*; field is NULL for a syslog name that does not
 * exist) or else an event path; the path is also used without a record. */
typedef struct source {
    int in_record;
    pixel_module_field *field;
    pixel_module_path *path;
} source;

/* Pattern verdicts of recent user agents (per instance, so per thread: no lock). */
#define VCACHE_SIZE 512
#define VCACHE_MAX_UA 255
typedef struct verdict_entry {
    uint64_t hash;
    uint16_t len; /* 0 = empty */
    int16_t rule; /* 0 = no pattern matched, else pattern index + 1 */
    char ua[VCACHE_MAX_UA];
} verdict_entry;

/* The family index: open addressing over the distinct names, each with the
 * index of its first occurrence in `families` (the rule that matches). */
typedef struct family_slot {
    uint64_t hash;
    int index; /* -1: empty */
} family_slot;

/* The family verdict found in a result another module emitted from a kept
 * image (pixel_module_value_image()): by the image's making, which decides
 * every family field below the common prefix. */
#define FMEMO_SIZE 1024 /* a power of two */
typedef struct family_memo {
    uint64_t image; /* 0: empty */
    int index;      /* the matching family, or -1 */
} family_memo;

typedef struct botfilter_ctx {
    int flag; /* 0 drop, 1 flag */
    char *flag_field;
    char **families;
    size_t nfamilies;
    size_t *family_len;
    rule *family_rules;
    family_slot *family_index;
    size_t nfamily_index; /* a power of two */
    /* family_first[n][c / 64] bit c % 64: some family is n bytes long (63: 63
       or more) and starts with byte c (0 for the empty name) */
    uint64_t family_first[64][4];
    char **family_fields;
    size_t nfamily_fields;
    pixel_module_event_path *family_base; /* the family fields' common prefix, or NULL */
    pixel_module_path **family_rest; /* each family field after that prefix */
    pcre2_code **patterns;
    size_t npatterns;
    rule *pattern_rules;
    pcre2_match_data *md;
    cidr *ranges;
    size_t nranges;
    source ua_from, ip_from;
    verdict_entry *vcache;
    family_memo *fmemo;
    atomic_ulong checked, by_family, by_pattern, by_ip; /* read by stats() from other threads */
} botfilter_ctx;

/* One more, by the instance's own thread: a plain load and store, no locked add. */
static void count(atomic_ulong *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static const pixel_module_option options[] = {
    {"action", PIXEL_OPT_STRING, "drop", "drop the line, or flag it and go on", 0},
    {"flag_field", PIXEL_OPT_STRING, "client.bot", "with action flag: where the rule is written", 0},
    {"families", PIXEL_OPT_LIST, NULL, "bot user agent families (default: a built-in list)", 0},
    {"family_fields", PIXEL_OPT_LIST, NULL,
     "event fields with families (default: client.ua.browser.family, client.ua.device.family)", 0},
    {"patterns", PIXEL_OPT_LIST, NULL, "case-insensitive regexes on the user agent (default: "
                                       "built-in)", 0},
    {"ip_ranges", PIXEL_OPT_LIST, NULL, "CIDR ranges of bot addresses", 0},
    {"user_agent", PIXEL_OPT_STRING, "log.user_agent", "where the raw user agent is", 0},
    {"client_ip", PIXEL_OPT_STRING, "log.client", "where the client address is", 0},
    {NULL, 0, NULL, NULL, 0},
};

static void destroy(void *instance)
{
    botfilter_ctx *b = instance;
    if (!b) {
        return;
    }
    free(b->flag_field);
    for (size_t i = 0; b->family_rules && i < b->nfamilies; i++) {
        free(b->family_rules[i].text);
    }
    free(b->family_rules);
    free(b->family_len);
    free(b->family_index);
    for (size_t i = 0; b->family_rest && i < b->nfamily_fields; i++) {
        pixel_module_path_free(b->family_rest[i]);
    }
    free(b->family_rest);
    pixel_module_event_path_free(b->family_base);
    pixel_module_strings_free(b->families);
    pixel_module_strings_free(b->family_fields);
    for (size_t i = 0; i < b->npatterns; i++) {
        pcre2_code_free(b->patterns[i]);
        free(b->pattern_rules[i].text);
    }
    free(b->patterns);
    free(b->pattern_rules);
    pcre2_match_data_free(b->md);
    for (size_t i = 0; i < b->nranges; i++) {
        free(b->ranges[i].why.text);
    }
    free(b->ranges);
    pixel_module_field_free(b->ua_from.field);
    pixel_module_field_free(b->ip_from.field);
    pixel_module_path_free(b->ua_from.path);
    pixel_module_path_free(b->ip_from.path);
    free(b->vcache);
    free(b->fmemo);
    free(b);
}

static int parse_cidr(const char *s, cidr *c)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    c->family = strchr(buf, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(c->family, buf, c->addr) != 1) {
        return -1;
    }
    int max = c->family == AF_INET ? 32 : 128;
    c->prefix = max;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || p < 0 || p > max) {
            return -1;
        }
        c->prefix = (int)p;
    }
    return 0;
}

static int in_range(const cidr *c, int family, const unsigned char *a)
{
    if (c->family != family) {
        return 0;
    }
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0) {
        return 0;
    }
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    return rest == 0 || (c->addr[full] & mask) == (a[full] & mask);
}

/* "<kind>:<what>", malloc'd. */
static int make_rule(rule *r, const char *kind, const char *what)
{
    size_t n = strlen(kind) + strlen(what) + 2;
    if (!(r->text = malloc(n))) {
        return PIXEL_ENOMEM;
    }
    r->len = (size_t)snprintf(r->text, n, "%s:%s", kind, what);
    return 0;
}

static int in_record(const char *from)
{
    return strncmp(from, "log.", 4) == 0 || strncmp(from, "syslog.", 7) == 0 ||
           strncmp(from, "query.", 6) == 0;
}

static int compile_source(const char *from, source *src)
{
    src->in_record = in_record(from);
    if (!(src->path = pixel_module_path_new(from))) {
        return PIXEL_ENOMEM;
    }
    src->field = src->in_record ? pixel_module_field_new(from) : NULL;
    /* NULL for a syslog name that does not exist: found nowhere, as by name */
    return src->in_record && !src->field && strncmp(from, "syslog.", 7) != 0 ? PIXEL_ENOMEM : 0;
}

/*
 * The family fields as one common prefix of whole segments (looked up once
 * per event) and the rest of each.  Every field keeps at least one segment
 * of its own.
 */
static int compile_family_fields(botfilter_ctx *b, const pixel_module_config *cfg)
{
    size_t n = b->nfamily_fields, prefix = 0; /* bytes of the common prefix, its dot excluded */
    for (size_t len = 1; n > 1 && b->family_fields[0][len - 1]; len++) {
        if (b->family_fields[0][len] != '.') {
            continue;
        }
        size_t k = 0;
        while (k < n && strncmp(b->family_fields[k], b->family_fields[0], len + 1) == 0 &&
               b->family_fields[k][len + 1]) {
            k++;
        }
        if (k < n) {
            break;
        }
        prefix = len;
    }
    if (!(b->family_rest = calloc(n ? n : 1, sizeof(pixel_module_path *)))) {
        return PIXEL_ENOMEM;
    }
    if (prefix) {
        char *base = strndup(b->family_fields[0], prefix);
        b->family_base = base ? pixel_module_event_path_new(cfg, base) : NULL;
        free(base);
        if (!b->family_base) {
            return PIXEL_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *rest = b->family_fields[i] + (prefix ? prefix + 1 : 0);
        if (!(b->family_rest[i] = pixel_module_path_new(rest))) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

/* The bit of family_first for the name s of n bytes: its length and first byte. */
static inline uint64_t *family_first_word(botfilter_ctx *b, const char *s, size_t n, uint64_t *bit)
{
    unsigned c = n ? (unsigned char)s[0] : 0;
    *bit = (uint64_t)1 << (c % 64);
    return &b->family_first[n < 63 ? n : 63][c / 64];
}

/* Some family has the length and first byte of s (n bytes): only then is
 * it worth hashing s and looking (most names on most lines have neither). */
static inline int family_may_be(const botfilter_ctx *b, const char *s, size_t n)
{
    unsigned c = n ? (unsigned char)s[0] : 0;
    return (b->family_first[n < 63 ? n : 63][c / 64] >> (c % 64)) & 1;
}

/* The slot of the family name s (n bytes, hash h): its entry, or the empty
 * slot where it would go. */
static family_slot *family_slot_of(const botfilter_ctx *b, const char *s, size_t n, uint64_t h)
{
    size_t mask = b->nfamily_index - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        family_slot *e = &b->family_index[i];
        if (e->index < 0 || (e->hash == h && b->family_len[e->index] == n &&
                             memcmp(b->families[e->index], s, n) == 0)) {
            return e;
        }
    }
}

static int index_families(botfilter_ctx *b)
{
    size_t n = 8;
    while (n < 2 * b->nfamilies) {
        n *= 2;
    }
    if (!(b->family_index = malloc(n * sizeof(family_slot)))) {
        return PIXEL_ENOMEM;
    }
    b->nfamily_index = n;
    for (size_t i = 0; i < n; i++) {
        b->family_index[i].index = -1;
    }
    for (size_t k = 0; k < b->nfamilies; k++) {
        uint64_t bit;
        *family_first_word(b, b->families[k], b->family_len[k], &bit) |= bit;
        uint64_t h = pixel_cache_hash(b->families[k], b->family_len[k]);
        family_slot *e = family_slot_of(b, b->families[k], b->family_len[k], h);
        if (e->index < 0) { /* the first of equal names wins, as in a scan */
            *e = (family_slot){h, (int)k};
        }
    }
    return 0;
}

static int compile_patterns(botfilter_ctx *b, const pixel_module_config *cfg, pixel_error *err)
{
    size_t n = 0;
    char **src = pixel_module_config_strings(cfg, "patterns", default_patterns, &n);
    int rc = src ? 0 : PIXEL_ENOMEM;
    b->patterns = rc == 0 ? calloc(n ? n : 1, sizeof(pcre2_code *)) : NULL;
    b->pattern_rules = rc == 0 ? calloc(n ? n : 1, sizeof(rule)) : NULL;
    for (size_t i = 0; rc == 0 && b->patterns && b->pattern_rules && i < n; i++) {
        char num[24];
        snprintf(num, sizeof(num), "%zu", i + 1);
        if ((rc = make_rule(&b->pattern_rules[i], "pattern", num)) < 0) {
            break;
        }
        int ec;
        PCRE2_SIZE off;
        b->patterns[i] = pcre2_compile((PCRE2_SPTR)src[i], PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
                                       &ec, &off, NULL);
        if (!b->patterns[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            rc = pixel_module_config_error(cfg, err, "patterns", "pattern '%s': %s at offset %zu",
                                           src[i], (char *)msg, (size_t)off);
            break;
        }
        b->npatterns++;
        pcre2_jit_compile(b->patterns[i], PCRE2_JIT_COMPLETE);
    }
    if (b->pattern_rules && b->npatterns < n) {
        free(b->pattern_rules[b->npatterns].text); /* made before its pattern failed */
        b->pattern_rules[b->npatterns].text = NULL;
    }
    pixel_module_strings_free(src);
    if (rc == 0 && (!b->patterns || !b->pattern_rules)) {
        rc = PIXEL_ENOMEM;
    }
    if (rc == 0 && !(b->md = pcre2_match_data_create(1, NULL))) {
        rc = PIXEL_ENOMEM;
    }
    return rc;
}

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    static const char *const default_fields[] = {"client.ua.browser.family",
                                                 "client.ua.device.family", NULL};
    botfilter_ctx *b = calloc(1, sizeof(*b));
    if (!b) {
        return PIXEL_ENOMEM;
    }
    *instance = b;
    const char *action = pixel_module_config_string(cfg, "action");
    if (strcmp(action, "drop") != 0 && strcmp(action, "flag") != 0) {
        return pixel_module_config_error(cfg, err, "action", "action is drop or flag, not '%s'",
                                         action);
    }
    b->flag = strcmp(action, "flag") == 0;
    if (!(b->vcache = calloc(VCACHE_SIZE, sizeof(verdict_entry))) ||
        !(b->fmemo = calloc(FMEMO_SIZE, sizeof(family_memo)))) {
        return PIXEL_ENOMEM;
    }
    b->flag_field = strdup(pixel_module_config_string(cfg, "flag_field"));
    if (!b->flag_field ||
        compile_source(pixel_module_config_string(cfg, "user_agent"), &b->ua_from) < 0 ||
        compile_source(pixel_module_config_string(cfg, "client_ip"), &b->ip_from) < 0) {
        return PIXEL_ENOMEM;
    }
    b->families = pixel_module_config_strings(cfg, "families", default_families, &b->nfamilies);
    b->family_fields =
        pixel_module_config_strings(cfg, "family_fields", default_fields, &b->nfamily_fields);
    if (!b->families || !b->family_fields ||
        !(b->family_len = calloc(b->nfamilies + 1, sizeof(size_t))) ||
        !(b->family_rules = calloc(b->nfamilies + 1, sizeof(rule))) ||
        compile_family_fields(b, cfg) < 0) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < b->nfamilies; i++) {
        b->family_len[i] = strlen(b->families[i]);
        if (make_rule(&b->family_rules[i], "family", b->families[i]) < 0) {
            return PIXEL_ENOMEM;
        }
    }
    if (index_families(b) < 0) {
        return PIXEL_ENOMEM;
    }
    int rc = compile_patterns(b, cfg, err);
    if (rc < 0) {
        return rc;
    }
    size_t nr = pixel_module_config_list_size(cfg, "ip_ranges");
    if (!(b->ranges = calloc(nr ? nr : 1, sizeof(cidr)))) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < nr; i++) {
        const char *s = pixel_module_config_list_item(cfg, "ip_ranges", i);
        if (parse_cidr(s, &b->ranges[i]) < 0) {
            return pixel_module_config_error(cfg, err, "ip_ranges",
                                             "'%s' is not an address or CIDR range", s);
        }
        if (make_rule(&b->ranges[i].why, "ip", s) < 0) {
            return PIXEL_ENOMEM;
        }
        b->nranges++;
    }
    return 0;
}

/* A record field ("log.*", "syslog.*", "query.*") or an event field. */
static const char *get(pixel_module_event *ev, const source *src, size_t *n)
{
    if (src->in_record && ev->record) {
        return pixel_module_field_get(ev->record, src->field, n);
    }
    return pixel_value_string(pixel_module_path_get(ev->event, src->path), n);
}

/* Drop with the rule as the reason, or write it to flag_field and go on. */
static int verdict(botfilter_ctx *b, pixel_module_event *ev, const rule *r)
{
    if (!b->flag) {
        ev->message = r->text; /* the host copies it */
        return PIXEL_MODULE_DROP;
    }
    /* The rule lives in the instance, which outlives the context's event. */
    pixel_value *v = pixel_module_string_ref(ev->ctx, r->text, r->len);
    return v && pixel_value_set_at(ev->ctx, ev->event, b->flag_field, v) == 0 ? PIXEL_MODULE_CONTINUE
                                                                              : PIXEL_ENOMEM;
}

/* The first pattern matching ua (index + 1), or 0; recent answers are
 * cached, by the hash the host keeps for the event's bytes (the useragent
 * module hashed the same user agent on this event). */
static int match_patterns(botfilter_ctx *b, const pixel_module_event *ev, const char *ua, size_t n)
{
    verdict_entry *e = NULL;
    uint64_t h = 0;
    if (n > 0 && n <= VCACHE_MAX_UA) {
        h = pixel_module_event_hash(ev, ua, n);
        e = &b->vcache[h % VCACHE_SIZE];
        if (e->len == n && e->hash == h && memcmp(e->ua, ua, n) == 0) {
            return e->rule;
        }
    }
    int found = 0;
    for (size_t i = 0; !found && i < b->npatterns; i++) {
        if (pcre2_match(b->patterns[i], (PCRE2_SPTR)ua, n, 0, 0, b->md, NULL) >= 0) {
            found = (int)i + 1;
        }
    }
    if (e) {
        e->hash = h;
        e->len = (uint16_t)n;
        e->rule = (int16_t)found;
        memcpy(e->ua, ua, n);
    }
    return found;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    botfilter_ctx *b = instance;
    (void)err;
    count(&b->checked);
    size_t n;
    const pixel_value *base = NULL;
    if (b->nfamilies && b->nfamily_fields) {
        base = b->family_base ? pixel_module_event_get(ev, b->family_base) : ev->event;
    }
    /* The prefix holds a result still as a module emitted it from a kept
       image (useragent's client.ua): what the fields below it say is what
       they said for that image before. */
    const uint64_t image = b->family_base ? pixel_module_value_image(base) : 0;
    family_memo *memo = image ? &b->fmemo[image & (FMEMO_SIZE - 1)] : NULL;
    int index = -1;
    if (memo && memo->image == image) {
        index = memo->index;
    } else {
        for (size_t i = 0; base && index < 0 && i < b->nfamily_fields; i++) {
            const char *fam =
                pixel_value_string(pixel_module_path_get(base, b->family_rest[i]), &n);
            /* no family of that length and first byte: no need to hash it and look */
            const family_slot *e = fam && family_may_be(b, fam, n)
                                       ? family_slot_of(b, fam, n, pixel_cache_hash(fam, n))
                                       : NULL;
            index = e ? e->index : -1;
        }
        if (memo) {
            *memo = (family_memo){image, index};
        }
    }
    if (index >= 0) {
        count(&b->by_family);
        return verdict(b, ev, &b->family_rules[index]);
    }
    const char *ua = b->npatterns ? get(ev, &b->ua_from, &n) : NULL;
    int found = ua ? match_patterns(b, ev, ua, n) : 0;
    if (found > 0) {
        count(&b->by_pattern);
        return verdict(b, ev, &b->pattern_rules[found - 1]);
    }
    const char *ip = b->nranges ? get(ev, &b->ip_from, &n) : NULL;
    char text[64];
    unsigned char addr[16];
    if (ip && n < sizeof(text)) {
        memcpy(text, ip, n);
        text[n] = '\0';
        int fam = strchr(text, ':') ? AF_INET6 : AF_INET;
        bool parsed = inet_pton(fam, text, addr) == 1; /* once, not per range */
        for (size_t i = 0; parsed && i < b->nranges; i++) {
            if (in_range(&b->ranges[i], fam, addr)) {
                count(&b->by_ip);
                return verdict(b, ev, &b->ranges[i].why);
            }
        }
    }
    return PIXEL_MODULE_CONTINUE;
}

static int stats(void *instance, char *buf, size_t size)
{
    botfilter_ctx *b = instance;
    unsigned long f = atomic_load(&b->by_family), p = atomic_load(&b->by_pattern),
                  i = atomic_load(&b->by_ip);
    return snprintf(buf, size, "checked=%lu bots=%lu by_family=%lu by_pattern=%lu by_ip=%lu",
                    atomic_load(&b->checked), f + p + i, f, p, i) < 0
               ? -1
               : 0;
}

static const pixel_module botfilter_module = {
    PIXEL_MODULE_HEADER,
    .threading = PIXEL_MODULE_PER_THREAD,
    .name = "botfilter",
    .version = "1.0.0",
    .description = "drop or flag bots: user agent families, patterns, IP ranges",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
    .stats = stats,
};

PIXEL_MODULE_DEFINE(botfilter_module)
