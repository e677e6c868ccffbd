/*
 * geoip: country, region, city and ASN of the client address from MaxMind
 * DB files (GeoIP2/GeoLite2 City or Country, and ASN) through libmaxminddb.
 *
 * The address comes from the log's own field by default (log.client), so
 * that an earlier anonymize_ip does not move a client to another city.  An
 * address that is not in the database, or not an address, adds nothing.
 *
 * The databases are memory-mapped and read-only: one shared instance, and
 * libmaxminddb's lookups are thread-safe.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <maxminddb.h>

#include <pixel/module.h>

typedef struct geoip_ctx {
    MMDB_s city, asn;
    int have_city, have_asn;
    char *from, *into, *lang;
    /* `from` compiled: a log.* field of the record, else an event path */
    int from_log;
    pixel_module_field *from_field;
    pixel_module_path *from_path;
    /* `into` as its parent (NULL: the event) and last segment */
    pixel_module_path *into_parent, *into_last;
    const char *into_key;
    size_t into_klen;
} geoip_ctx;

static const pixel_module_option options[] = {
    {"database", PIXEL_OPT_PATH, NULL, "GeoIP2/GeoLite2 City or Country .mmdb file", 0},
    {"asn_database", PIXEL_OPT_PATH, NULL, "GeoLite2 ASN .mmdb file", 0},
    {"from", PIXEL_OPT_STRING, "log.client", "the client address (a log.* field or an event field)",
     0},
    {"into", PIXEL_OPT_STRING, "geo", "where {country_code, country, region_code, region, city, "
                                      "asn, as_org} goes", 0},
    {"language", PIXEL_OPT_STRING, "en", "language of the names", 0},
    {NULL, 0, NULL, NULL, 0},
};

static void destroy(void *instance)
{
    geoip_ctx *g = instance;
    if (!g) {
        return;
    }
    if (g->have_city) {
        MMDB_close(&g->city);
    }
    if (g->have_asn) {
        MMDB_close(&g->asn);
    }
    pixel_module_field_free(g->from_field);
    pixel_module_path_free(g->from_path);
    pixel_module_path_free(g->into_parent);
    pixel_module_path_free(g->into_last);
    free(g->from);
    free(g->into);
    free(g->lang);
    free(g);
}

static int open_db(const pixel_module_config *cfg, const char *opt, MMDB_s *db, int *have,
                   pixel_error *err)
{
    const char *file = pixel_module_config_string(cfg, opt);
    if (!file) {
        return 0;
    }
    int rc = MMDB_open(file, MMDB_MODE_MMAP, db);
    if (rc != MMDB_SUCCESS) {
        return pixel_module_config_error(cfg, err, opt, "cannot open %s: %s", file,
                                         MMDB_strerror(rc));
    }
    *have = 1;
    return 0;
}

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    geoip_ctx *g = calloc(1, sizeof(*g));
    if (!g) {
        return PIXEL_ENOMEM;
    }
    *instance = g;
    g->from = strdup(pixel_module_config_string(cfg, "from"));
    g->into = strdup(pixel_module_config_string(cfg, "into"));
    g->lang = strdup(pixel_module_config_string(cfg, "language"));
    if (!g->from || !g->into || !g->lang) {
        return PIXEL_ENOMEM;
    }
    g->from_log = strncmp(g->from, "log.", 4) == 0;
    if ((g->from_log && !(g->from_field = pixel_module_field_new(g->from))) ||
        !(g->from_path = pixel_module_path_new(g->from))) {
        return PIXEL_ENOMEM;
    }
    const char *dot = strrchr(g->into, '.');
    g->into_key = dot ? dot + 1 : g->into;
    g->into_klen = strlen(g->into_key);
    if (dot) {
        char *parent = strndup(g->into, (size_t)(dot - g->into));
        g->into_parent = parent ? pixel_module_path_new(parent) : NULL;
        free(parent);
        if (!g->into_parent) {
            return PIXEL_ENOMEM;
        }
    }
    if (!(g->into_last = pixel_module_path_new(g->into_key))) {
        return PIXEL_ENOMEM;
    }
    int rc = open_db(cfg, "database", &g->city, &g->have_city, err);
    if (rc == 0) {
        rc = open_db(cfg, "asn_database", &g->asn, &g->have_asn, err);
    }
    if (rc == 0 && !g->have_city && !g->have_asn) {
        rc = pixel_module_config_error(cfg, err, NULL, "give database, asn_database, or both");
    }
    return rc;
}

/* Add one string/integer of entry at path as o[key]; absent is fine.  The
 * keys differ from each other, so they are appended; strings point into the
 * memory-mapped database, which lives as long as the instance. */
static int put(pixel_ctx *ctx, pixel_value *o, const char *key, MMDB_entry_s *entry,
               const char *const *path)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data) {
        return 0;
    }
    pixel_value *v = NULL;
    if (d.type == MMDB_DATA_TYPE_UTF8_STRING) {
        v = pixel_module_string_ref(ctx, d.utf8_string, d.data_size);
    } else if (d.type == MMDB_DATA_TYPE_UINT32) {
        v = pixel_value_new_int(ctx, d.uint32);
    } else if (d.type == MMDB_DATA_TYPE_UINT16) {
        v = pixel_value_new_int(ctx, d.uint16);
    } else {
        return 0;
    }
    return v && pixel_module_object_append(o, key, strlen(key), v) == 0 ? 0 : -1;
}

/*
 * The address as a socket address, parsed once for both databases.  A plain
 * IPv4 or IPv6 address is parsed with inet_pton(), which gives the same
 * address as the getaddrinfo() call of MMDB_lookup_string() at a fraction of
 * the cost; anything else (an IPv6 scope, an IPv4 shorthand such as 127.1) is
 * left to MMDB_lookup_string(), as before: sa_family is then AF_UNSPEC.
 */
typedef union address {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} address;

static void parse_address(const char *ip, address *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, ip, &a->in4.sin_addr) == 1) {
        a->in4.sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
    } else {
        a->sa.sa_family = AF_UNSPEC;
    }
}

static int lookup(MMDB_s *db, const char *ip, const address *a, MMDB_lookup_result_s *r)
{
    int gai = 0, mm;
    *r = a->sa.sa_family != AF_UNSPEC ? MMDB_lookup_sockaddr(db, &a->sa, &mm)
                                      : MMDB_lookup_string(db, ip, &gai, &mm);
    return gai == 0 && mm == MMDB_SUCCESS && r->found_entry ? 0 : -1;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    geoip_ctx *g = instance;
    (void)err;
    size_t n = 0;
    const char *ip = g->from_log && ev->record
                         ? pixel_module_field_get(ev->record, g->from_field, &n)
                         : pixel_value_string(pixel_module_path_get(ev->event, g->from_path), &n);
    char text[64];
    if (!ip || n == 0 || n >= sizeof(text)) {
        return PIXEL_MODULE_CONTINUE;
    }
    memcpy(text, ip, n);
    text[n] = '\0';
    pixel_value *o = pixel_value_new_object(ev->ctx);
    if (!o) {
        return PIXEL_ENOMEM;
    }
    MMDB_lookup_result_s r;
    address addr;
    parse_address(text, &addr);
    int bad = 0;
    if (g->have_city && lookup(&g->city, text, &addr, &r) == 0) {
        const char *cc[] = {"country", "iso_code", NULL};
        const char *cn[] = {"country", "names", g->lang, NULL};
        const char *rc[] = {"subdivisions", "0", "iso_code", NULL};
        const char *rn[] = {"subdivisions", "0", "names", g->lang, NULL};
        const char *ci[] = {"city", "names", g->lang, NULL};
        bad = put(ev->ctx, o, "country_code", &r.entry, cc) < 0 ||
              put(ev->ctx, o, "country", &r.entry, cn) < 0 ||
              put(ev->ctx, o, "region_code", &r.entry, rc) < 0 ||
              put(ev->ctx, o, "region", &r.entry, rn) < 0 ||
              put(ev->ctx, o, "city", &r.entry, ci) < 0;
    }
    if (!bad && g->have_asn && lookup(&g->asn, text, &addr, &r) == 0) {
        const char *an[] = {"autonomous_system_number", NULL};
        const char *ao[] = {"autonomous_system_organization", NULL};
        bad = put(ev->ctx, o, "asn", &r.entry, an) < 0 || put(ev->ctx, o, "as_org", &r.entry, ao) < 0;
    }
    if (bad) {
        return PIXEL_ENOMEM;
    }
    if (!pixel_value_size(o)) {
        return PIXEL_MODULE_CONTINUE;
    }
    /* A new member of an existing parent is appended with the key of `into`
       itself (it outlives the event), as pixel_value_set_at() would append a
       copy; a member to replace, or a parent to make, goes through it. */
    pixel_value *parent = g->into_parent ? pixel_module_path_get(ev->event, g->into_parent)
                                         : ev->event;
    if (pixel_value_type(parent) == PIXEL_TYPE_OBJECT && !pixel_module_path_get(parent, g->into_last)) {
        return pixel_module_object_append(parent, g->into_key, g->into_klen, o) < 0
                   ? PIXEL_ENOMEM
                   : PIXEL_MODULE_CONTINUE;
    }
    return pixel_value_set_at(ev->ctx, ev->event, g->into, o) < 0 ? PIXEL_ENOMEM
                                                                  : PIXEL_MODULE_CONTINUE;
}

static const pixel_module geoip_module = {
    PIXEL_MODULE_HEADER,
    .threading = PIXEL_MODULE_SHARED,
    .name = "geoip",
    .version = "1.0.0",
    .description = "country, region, city and ASN from MaxMind DB files",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
};

PIXEL_MODULE_DEFINE(geoip_module)
