/*
 * The `delivery:` section of the pipeline YAML file (docs/delivery.md).
 *
 * The core's pipeline loader ignores this section; we read the same file
 * with libyaml's document API and walk only our subtree.  Unknown keys are
 * errors, not warnings: a misspelt `max_byte` would otherwise silently
 * remove the spool's size limit.  Every error carries the file, the 1-based
 * line and column, a JSON Pointer to the setting, and what was expected.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#include "delivery_private.h"

typedef struct walker {
    yaml_document_t *doc;
    const char *source;
    pixel_error *err;
    pixel_delivery_config *cfg;
} walker;

/* An error at node n, whose JSON Pointer is pointer (said apart from text). */
static int node_error(walker *w, const yaml_node_t *n, const char *pointer, const char *text)
{
    if (w->err != NULL && w->err->text[0] == '\0') {
        snprintf(w->err->pointer, sizeof(w->err->pointer), "%s", pointer);
        w->err->stage = PIXEL_STAGE_LOAD;
    }
    return pixel__d_error(w->err, PIXEL_ECONFIG, w->source, n ? (long)n->start_mark.line + 1 : 0,
                          n ? (long)n->start_mark.column + 1 : 0, "%s", text);
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int set_str(walker *w, const yaml_node_t *n, const char *ptr, char **dst)
{
    const char *v = scalar(n);

    if (v == NULL) {
        return node_error(w, n, ptr, "expected a string");
    }
    free(*dst);
    *dst = strdup(v);
    return *dst ? 0 : pixel__d_error(w->err, PIXEL_ENOMEM, w->source, 0, 0, "out of memory");
}

/* "64M", "1g", "4096" -> bytes.  -1 when not a size. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    uint64_t v;

    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0) {
        return -1;
    }
    switch (*end) {
        case 'k':
        case 'K':
            v <<= 10;
            end++;
            break;
        case 'm':
        case 'M':
            v <<= 20;
            end++;
            break;
        case 'g':
        case 'G':
            v <<= 30;
            end++;
            break;
        default:
            break;
    }
    if (*end == 'i' || *end == 'B') {
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    }
    if (*end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

static int set_size(walker *w, const yaml_node_t *n, const char *ptr, uint64_t *dst)
{
    if (parse_size(scalar(n), dst) < 0) {
        return node_error(w, n, ptr, "expected a size in bytes (e.g. 67108864 or 64M)");
    }
    return 0;
}

static int parse_ms(const char *s, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 86400000L) {
        return -1;
    }
    *out = v;
    return 0;
}

static int set_ms(walker *w, const yaml_node_t *n, const char *ptr, long *dst)
{
    if (parse_ms(scalar(n), dst) < 0) {
        return node_error(w, n, ptr, "expected milliseconds (an integer, 0..86400000)");
    }
    return 0;
}

static int parse_fsync(const char *v, int *out)
{
    if (v == NULL) {
        return -1;
    }
    if (strcmp(v, "batch") == 0) {
        *out = PIXEL_SPOOL_FSYNC_BATCH;
    } else if (strcmp(v, "always") == 0) {
        *out = PIXEL_SPOOL_FSYNC_ALWAYS;
    } else if (strcmp(v, "never") == 0) {
        *out = PIXEL_SPOOL_FSYNC_NEVER;
    } else {
        return -1;
    }
    return 0;
}

static int add_prop(pixel_delivery_config *cfg, const char *name, const char *value, long line,
                    long column)
{
    pixel__kprop *np;

    for (size_t i = 0; i < cfg->nprops; i++) {
        if (strcmp(cfg->props[i].name, name) == 0) {
            char *v = strdup(value);
            if (v == NULL) {
                return -1;
            }
            free(cfg->props[i].value);
            cfg->props[i].value = v;
            cfg->props[i].line = line;
            cfg->props[i].column = column;
            return 0;
        }
    }
    np = realloc(cfg->props, (cfg->nprops + 1) * sizeof(*np));
    if (np == NULL) {
        return -1;
    }
    cfg->props = np;
    np[cfg->nprops].name = strdup(name);
    np[cfg->nprops].value = strdup(value);
    np[cfg->nprops].line = line;
    np[cfg->nprops].column = column;
    cfg->nprops++;
    return (np[cfg->nprops - 1].name && np[cfg->nprops - 1].value) ? 0 : -1;
}

static const pixel__kprop *find_prop(const pixel_delivery_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nprops; i++) {
        if (strcmp(cfg->props[i].name, name) == 0) {
            return &cfg->props[i];
        }
    }
    return NULL;
}

static void remove_prop(pixel_delivery_config *cfg, const char *name)
{
    pixel__kprop *p = (pixel__kprop *)find_prop(cfg, name);

    if (p != NULL) {
        size_t i = (size_t)(p - cfg->props);
        free(p->name);
        free(p->value);
        memmove(p, p + 1, (cfg->nprops - i - 1) * sizeof(*p));
        cfg->nprops--;
    }
}

/* A section's key/value pairs, dispatched to fn with the key's name. */
typedef int (*member_fn)(walker *w, const char *key, const yaml_node_t *val, const char *ptr);

static int walk_map(walker *w, const yaml_node_t *map, const char *ptr, member_fn fn,
                    const char *expected)
{
    if (map->type != YAML_MAPPING_NODE) {
        return node_error(w, map, ptr, "expected a mapping");
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        const char *name = k ? scalar(k) : NULL;
        char sub[128];
        int rc;

        if (name == NULL) {
            return node_error(w, k, ptr, "expected a key name");
        }
        snprintf(sub, sizeof(sub), "%s/%s", ptr, name);
        rc = fn(w, name, v, sub);
        if (rc > 0) {
            char text[200];
            snprintf(text, sizeof(text), "unknown key; expected one of: %s", expected);
            return node_error(w, k, sub, text);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int props_member(walker *w, const char *key, const yaml_node_t *v, const char *ptr)
{
    const char *val = scalar(v);

    if (val == NULL) {
        return node_error(w, v, ptr, "expected a scalar librdkafka property value");
    }
    if (add_prop(w->cfg, key, val, (long)v->start_mark.line + 1, (long)v->start_mark.column + 1) <
        0) {
        return pixel__d_error(w->err, PIXEL_ENOMEM, w->source, 0, 0, "out of memory");
    }
    return 0;
}

static int kafka_member(walker *w, const char *key, const yaml_node_t *v, const char *ptr)
{
    pixel_delivery_config *c = w->cfg;

    if (strcmp(key, "brokers") == 0) {
        return set_str(w, v, ptr, &c->brokers);
    } else if (strcmp(key, "topic") == 0) {
        return set_str(w, v, ptr, &c->topic);
    } else if (strcmp(key, "topic_template") == 0) {
        return set_str(w, v, ptr, &c->topic_template);
    } else if (strcmp(key, "key_field") == 0) {
        return set_str(w, v, ptr, &c->key_field);
    } else if (strcmp(key, "type_field") == 0) {
        return set_str(w, v, ptr, &c->type_field);
    } else if (strcmp(key, "schema_field") == 0) {
        return set_str(w, v, ptr, &c->schema_field);
    } else if (strcmp(key, "compression") == 0) {
        return set_str(w, v, ptr, &c->compression);
    } else if (strcmp(key, "delivery_timeout_ms") == 0) {
        return set_ms(w, v, ptr, &c->delivery_timeout_ms);
    } else if (strcmp(key, "headers") == 0) {
        const char *b = scalar(v);
        if (b != NULL && (strcmp(b, "true") == 0 || strcmp(b, "false") == 0)) {
            c->headers = b[0] == 't';
            return 0;
        }
        return node_error(w, v, ptr, "expected true or false");
    } else if (strcmp(key, "properties") == 0) {
        return walk_map(w, v, ptr, props_member, "librdkafka properties");
    }
    return 1;
}

static int quarantine_member(walker *w, const char *key, const yaml_node_t *v, const char *ptr)
{
    if (strcmp(key, "topic") == 0) {
        return set_str(w, v, ptr, &w->cfg->q_topic);
    } else if (strcmp(key, "file") == 0) {
        return set_str(w, v, ptr, &w->cfg->q_file);
    }
    return 1;
}

static int spool_member(walker *w, const char *key, const yaml_node_t *v, const char *ptr)
{
    pixel_delivery_config *c = w->cfg;

    if (strcmp(key, "dir") == 0) {
        return set_str(w, v, ptr, &c->spool_dir);
    } else if (strcmp(key, "segment_bytes") == 0) {
        return set_size(w, v, ptr, &c->segment_bytes);
    } else if (strcmp(key, "max_bytes") == 0) {
        return set_size(w, v, ptr, &c->max_bytes);
    } else if (strcmp(key, "fsync") == 0) {
        if (parse_fsync(scalar(v), &c->fsync) < 0) {
            return node_error(w, v, ptr, "expected batch, always or never");
        }
        return 0;
    } else if (strcmp(key, "fsync_batch") == 0) {
        uint64_t n;
        if (parse_size(scalar(v), &n) < 0 || n == 0 || n > 1000000) {
            return node_error(w, v, ptr, "expected a record count (1..1000000)");
        }
        c->fsync_batch = (unsigned int)n;
        return 0;
    } else if (strcmp(key, "fsync_interval_ms") == 0) {
        return set_ms(w, v, ptr, &c->fsync_interval_ms);
    }
    return 1;
}

static int failover_member(walker *w, const char *key, const yaml_node_t *v, const char *ptr)
{
    if (strcmp(key, "probe_initial_ms") == 0) {
        return set_ms(w, v, ptr, &w->cfg->probe_initial_ms);
    } else if (strcmp(key, "probe_max_ms") == 0) {
        return set_ms(w, v, ptr, &w->cfg->probe_max_ms);
    }
    return 1;
}

static int delivery_member(walker *w, const char *key, const yaml_node_t *v, const char *ptr)
{
    if (strcmp(key, "kafka") == 0) {
        return walk_map(w, v, ptr, kafka_member,
                        "brokers, topic, topic_template, key_field, type_field, schema_field, "
                        "compression, delivery_timeout_ms, headers, properties");
    } else if (strcmp(key, "quarantine") == 0) {
        return walk_map(w, v, ptr, quarantine_member, "topic, file");
    } else if (strcmp(key, "spool") == 0) {
        return walk_map(w, v, ptr, spool_member,
                        "dir, segment_bytes, max_bytes, fsync, fsync_batch, fsync_interval_ms");
    } else if (strcmp(key, "failover") == 0) {
        return walk_map(w, v, ptr, failover_member, "probe_initial_ms, probe_max_ms");
    }
    return 1;
}

static pixel_delivery_config *config_new(const char *name)
{
    pixel_delivery_config *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->source = strdup(name);
    c->type_field = strdup("type");
    c->delivery_timeout_ms = 10000;
    c->headers = 1;
    c->fsync = PIXEL_SPOOL_FSYNC_BATCH;
    c->fsync_batch = 256;
    c->fsync_interval_ms = 50;
    c->probe_initial_ms = 1000;
    c->probe_max_ms = 60000;
    if (c->source == NULL || c->type_field == NULL) {
        pixel_delivery_config_free(c);
        return NULL;
    }
    return c;
}

/* Checks that need the whole section. */
static int config_check(pixel_delivery_config *c, const yaml_node_t *root, walker *w)
{
    if (c->brokers == NULL) {
        return node_error(w, root, "/delivery/kafka/brokers",
                          "missing; expected the bootstrap servers (host:port,...)");
    }
    if ((c->topic == NULL) == (c->topic_template == NULL)) {
        return node_error(w, root, "/delivery/kafka",
                          "expected exactly one of topic or topic_template");
    }
    if (c->topic_template != NULL && strstr(c->topic_template, "{type}") == NULL) {
        return node_error(w, root, "/delivery/kafka/topic_template",
                          "expected a template containing {type}");
    }
    if (c->spool_dir == NULL) {
        return node_error(w, root, "/delivery/spool/dir",
                          "missing; expected the spool directory (failover needs it)");
    }
    if (c->q_topic != NULL && c->topic != NULL && strcmp(c->q_topic, c->topic) == 0) {
        return node_error(w, root, "/delivery/quarantine/topic",
                          "expected a topic other than the events' topic");
    }
    if (c->probe_initial_ms == 0 || c->probe_max_ms < c->probe_initial_ms) {
        return node_error(w, root, "/delivery/failover",
                          "expected 0 < probe_initial_ms <= probe_max_ms");
    }
    return 0;
}

static int load_document(pixel_delivery_config **out, yaml_parser_t *parser, const char *name,
                         pixel_error *err)
{
    yaml_document_t doc;
    yaml_node_t *root, *section = NULL;
    pixel_delivery_config *c;
    walker w;
    int rc;

    if (!yaml_parser_load(parser, &doc)) {
        return pixel__d_error(err, PIXEL_ECONFIG, name, (long)parser->problem_mark.line + 1,
                              (long)parser->problem_mark.column + 1, "YAML syntax error: %s",
                              parser->problem ? parser->problem : "unknown");
    }
    root = yaml_document_get_root_node(&doc);
    if (root != NULL && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            if (k != NULL && scalar(k) != NULL && strcmp(scalar(k), "delivery") == 0) {
                section = yaml_document_get_node(&doc, p->value);
            }
        }
    }
    c = config_new(name);
    if (c == NULL) {
        yaml_document_delete(&doc);
        return pixel__d_error(err, PIXEL_ENOMEM, name, 0, 0, "out of memory");
    }
    w.doc = &doc;
    w.source = name;
    w.err = err;
    w.cfg = c;
    if (section == NULL) {
        rc = node_error(&w, root, "/delivery", "missing; expected a delivery: section");
    } else {
        rc = walk_map(&w, section, "/delivery", delivery_member,
                      "kafka, quarantine, spool, failover");
    }
    if (rc == 0) {
        rc = config_check(c, section, &w);
    }
    if (rc == 0) {
        /* Let librdkafka judge the properties now, while we know their lines. */
        rd_kafka_conf_t *kc = pixel__kafka_conf(c, err);
        rc = kc != NULL ? 0 : PIXEL_ECONFIG;
        if (kc != NULL) {
            rd_kafka_conf_destroy(kc);
        }
    }
    yaml_document_delete(&doc);
    if (rc != 0) {
        pixel_delivery_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

PIXEL_API int pixel_delivery_config_load_string(pixel_delivery_config **out, const char *yaml,
                                                size_t len, const char *name, pixel_error *err)
{
    yaml_parser_t parser;
    int rc;

    pixel__d_error_clear(err); /* err may be uninitialized: fill it from scratch */
    *out = NULL;
    if (!yaml_parser_initialize(&parser)) {
        return pixel__d_error(err, PIXEL_ENOMEM, name, 0, 0, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    rc = load_document(out, &parser, name ? name : "<string>", err);
    yaml_parser_delete(&parser);
    return rc;
}

PIXEL_API int pixel_delivery_config_load_file(pixel_delivery_config **out, const char *path,
                                              pixel_error *err)
{
    yaml_parser_t parser;
    FILE *f;
    int rc;

    pixel__d_error_clear(err); /* err may be uninitialized: fill it from scratch */
    *out = NULL;
    f = fopen(path, "rb");
    if (f == NULL) {
        return pixel__d_error(err, PIXEL_EIO, path, 0, 0, "cannot open: %s", strerror(errno));
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return pixel__d_error(err, PIXEL_ENOMEM, path, 0, 0, "out of memory");
    }
    yaml_parser_set_input_file(&parser, f);
    rc = load_document(out, &parser, path, err);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

PIXEL_API void pixel_delivery_config_free(pixel_delivery_config *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->nprops; i++) {
        free(c->props[i].name);
        free(c->props[i].value);
    }
    free(c->props);
    free(c->source);
    free(c->brokers);
    free(c->topic);
    free(c->topic_template);
    free(c->key_field);
    free(c->type_field);
    free(c->schema_field);
    free(c->compression);
    free(c->q_topic);
    free(c->q_file);
    free(c->spool_dir);
    free(c);
}

/* The string settings by dotted name. */
static char **str_slot(pixel_delivery_config *c, const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } slots[] = {
        {"kafka.brokers", offsetof(pixel_delivery_config, brokers)},
        {"kafka.topic", offsetof(pixel_delivery_config, topic)},
        {"kafka.topic_template", offsetof(pixel_delivery_config, topic_template)},
        {"kafka.key_field", offsetof(pixel_delivery_config, key_field)},
        {"kafka.type_field", offsetof(pixel_delivery_config, type_field)},
        {"kafka.schema_field", offsetof(pixel_delivery_config, schema_field)},
        {"kafka.compression", offsetof(pixel_delivery_config, compression)},
        {"quarantine.topic", offsetof(pixel_delivery_config, q_topic)},
        {"quarantine.file", offsetof(pixel_delivery_config, q_file)},
        {"spool.dir", offsetof(pixel_delivery_config, spool_dir)},
    };
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        if (strcmp(slots[i].name, name) == 0) {
            return (char **)((char *)c + slots[i].off);
        }
    }
    return NULL;
}

PIXEL_API int pixel_delivery_config_set(pixel_delivery_config *c, const char *name,
                                        const char *value, pixel_error *err)
{
    char **slot = str_slot(c, name);
    long ms;

    if (slot != NULL) {
        char *v = value ? strdup(value) : NULL;
        if (value != NULL && v == NULL) {
            return pixel__d_error(err, PIXEL_ENOMEM, NULL, 0, 0, "out of memory");
        }
        free(*slot);
        *slot = v;
        /* One topic setting replaces the other. */
        if (strcmp(name, "kafka.topic") == 0 && v != NULL) {
            free(c->topic_template);
            c->topic_template = NULL;
        } else if (strcmp(name, "kafka.topic_template") == 0 && v != NULL) {
            free(c->topic);
            c->topic = NULL;
        }
        return 0;
    }
    if (strncmp(name, "kafka.properties.", 17) == 0 && name[17] != '\0') {
        if (value == NULL) {
            remove_prop(c, name + 17);
            return 0;
        }
        return add_prop(c, name + 17, value, 0, 0) == 0
                   ? 0
                   : pixel__d_error(err, PIXEL_ENOMEM, NULL, 0, 0, "out of memory");
    }
    if (strcmp(name, "spool.max_bytes") == 0 || strcmp(name, "spool.segment_bytes") == 0) {
        uint64_t v;
        if (parse_size(value, &v) < 0) {
            return pixel__d_error(err, PIXEL_ECONFIG, NULL, 0, 0,
                                  "%s: expected a size in bytes, not \"%s\"", name, value);
        }
        *(name[6] == 'm' ? &c->max_bytes : &c->segment_bytes) = v;
        return 0;
    }
    if (strcmp(name, "spool.fsync") == 0) {
        return parse_fsync(value, &c->fsync) == 0
                   ? 0
                   : pixel__d_error(err, PIXEL_ECONFIG, NULL, 0, 0,
                                    "%s: expected batch, always or never", name);
    }
    if (parse_ms(value, &ms) == 0) {
        if (strcmp(name, "kafka.delivery_timeout_ms") == 0) {
            c->delivery_timeout_ms = ms;
            return 0;
        } else if (strcmp(name, "failover.probe_initial_ms") == 0 && ms > 0) {
            c->probe_initial_ms = ms; /* 0 would probe (and retry a producer) on every poll */
            return 0;
        } else if (strcmp(name, "failover.probe_max_ms") == 0) {
            c->probe_max_ms = ms;
            return 0;
        } else if (strcmp(name, "spool.fsync_interval_ms") == 0) {
            c->fsync_interval_ms = ms;
            return 0;
        }
    }
    return pixel__d_error(err, PIXEL_ECONFIG, NULL, 0, 0,
                          "cannot set %s to \"%s\": unknown setting or bad value", name,
                          value ? value : "(null)");
}

PIXEL_API const char *pixel_delivery_config_get(const pixel_delivery_config *c, const char *name)
{
    char **slot = str_slot((pixel_delivery_config *)c, name);

    if (slot != NULL) {
        return *slot;
    }
    if (strcmp(name, "spool.max_bytes") == 0) {
        snprintf(((pixel_delivery_config *)c)->numbuf, sizeof(c->numbuf), "%" PRIu64, c->max_bytes);
        return c->numbuf;
    }
    if (strncmp(name, "kafka.properties.", 17) == 0) {
        const pixel__kprop *p = find_prop(c, name + 17);
        return p != NULL ? p->value : NULL;
    }
    return NULL;
}

PIXEL_API int pixel_delivery_config_property(const pixel_delivery_config *c, size_t i,
                                             const char **name, const char **value)
{
    if (i >= c->nprops) {
        return 0;
    }
    *name = c->props[i].name;
    *value = c->props[i].value;
    return 1;
}

rd_kafka_conf_t *pixel__kafka_conf(const pixel_delivery_config *c, pixel_error *err)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512], num[32];
    struct {
        const char *name, *value;
    } fixed[] = {
        {"bootstrap.servers", c->brokers},
        /* No loss, no duplicates from internal retries, per-key order kept. */
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", c->compression ? c->compression : "none"},
        {"message.timeout.ms", num},
        /* Every callback on the thread that calls rd_kafka_poll(). */
        {"log.queue", "true"},
    };

    snprintf(num, sizeof(num), "%ld", c->delivery_timeout_ms);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (rd_kafka_conf_set(kc, fixed[i].name, fixed[i].value, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(kc);
            pixel__d_error(err, PIXEL_ECONFIG, c->source, 0, 0, "kafka: %s", errstr);
            return NULL;
        }
    }
    for (size_t i = 0; i < c->nprops; i++) {
        const pixel__kprop *p = &c->props[i];
        if ((strcmp(p->name, "enable.idempotence") == 0 && strcmp(p->value, "true") != 0) ||
            ((strcmp(p->name, "acks") == 0 || strcmp(p->name, "request.required.acks") == 0) &&
             strcmp(p->value, "all") != 0 && strcmp(p->value, "-1") != 0)) {
            rd_kafka_conf_destroy(kc);
            if (err != NULL && err->text[0] == '\0') {
                snprintf(err->pointer, sizeof(err->pointer), "/delivery/kafka/properties/%s",
                         p->name);
            }
            pixel__d_error(err, PIXEL_ECONFIG, c->source, p->line, p->column,
                           "kafka property %s: the sink needs enable.idempotence=true and "
                           "acks=all (no loss); remove it",
                           p->name);
            return NULL;
        }
        if (rd_kafka_conf_set(kc, p->name, p->value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(kc);
            if (err != NULL && err->text[0] == '\0') {
                snprintf(err->pointer, sizeof(err->pointer), "/delivery/kafka/properties/%s",
                         p->name);
            }
            pixel__d_error(err, PIXEL_ECONFIG, c->source, p->line, p->column,
                           "kafka property %s: %s", p->name, errstr);
            return NULL;
        }
    }
    return kc;
}
