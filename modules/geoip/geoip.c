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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <maxminddb.h>

#include <pixel/module.h>

typedef struct geoip_ctx {
    MMDB_s city, asn;
    int have_city, have_asn;
    char *from, *into, *lang;
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
    int rc = open_db(cfg, "database", &g->city, &g->have_city, err);
    if (rc == 0) {
        rc = open_db(cfg, "asn_database", &g->asn, &g->have_asn, err);
    }
    if (rc == 0 && !g->have_city && !g->have_asn) {
        rc = pixel_module_config_error(cfg, err, NULL, "give database, asn_database, or both");
    }
    return rc;
}

/* Copy one string/integer of entry at path into o[key]; absent is fine. */
static int put(pixel_ctx *ctx, pixel_value *o, const char *key, MMDB_entry_s *entry,
               const char *const *path)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data) {
        return 0;
    }
    pixel_value *v = NULL;
    if (d.type == MMDB_DATA_TYPE_UTF8_STRING) {
        v = pixel_value_new_string(ctx, d.utf8_string, d.data_size);
    } else if (d.type == MMDB_DATA_TYPE_UINT32) {
        v = pixel_value_new_int(ctx, d.uint32);
    } else if (d.type == MMDB_DATA_TYPE_UINT16) {
        v = pixel_value_new_int(ctx, d.uint16);
    } else {
        return 0;
    }
    return v && pixel_object_set(ctx, o, key, v) == 0 ? 0 : -1;
}

static int lookup(MMDB_s *db, const char *ip, MMDB_lookup_result_s *r)
{
    int gai, mm;
    *r = MMDB_lookup_string(db, ip, &gai, &mm);
    return gai == 0 && mm == MMDB_SUCCESS && r->found_entry ? 0 : -1;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    geoip_ctx *g = instance;
    (void)err;
    size_t n = 0;
    const char *ip = strncmp(g->from, "log.", 4) == 0 && ev->record
                         ? pixel_record_get(ev->record, g->from, &n)
                         : pixel_value_string(pixel_value_at(ev->event, g->from), &n);
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
    int bad = 0;
    if (g->have_city && lookup(&g->city, text, &r) == 0) {
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
    if (!bad && g->have_asn && lookup(&g->asn, text, &r) == 0) {
        const char *an[] = {"autonomous_system_number", NULL};
        const char *ao[] = {"autonomous_system_organization", NULL};
        bad = put(ev->ctx, o, "asn", &r.entry, an) < 0 || put(ev->ctx, o, "as_org", &r.entry, ao) < 0;
    }
    if (bad) {
        return PIXEL_ENOMEM;
    }
    if (pixel_value_size(o) && pixel_value_set_at(ev->ctx, ev->event, g->into, o) < 0) {
        return PIXEL_ENOMEM;
    }
    return PIXEL_MODULE_CONTINUE;
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
