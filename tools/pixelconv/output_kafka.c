/*
 * pixelconv --kafka (see output_kafka.h).
 *
 * pixelconv's workers keep only the serialized lines of a batch, so the key
 * and the event type are read back from the JSON here, with libpixel's own
 * parser into a context that is reset per event: no allocation per line in
 * steady state, and the same dotted paths as the omprog host uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/pixel.h"
#include "pixel/value.h"

#include "output_kafka.h"

struct pixelconv_kafka {
    pixel_delivery_config *cfg;
    pixel_sink *sink;
    pixel_ctx *ctx;
    const char *key_field, *type_field, *schema_field;
    char *pipeline_version;
    unsigned long not_durable;
};

static void on_ack(void *token, int status, void *payload)
{
    pixelconv_kafka *k = payload;

    (void)token;
    if (status < 0) {
        k->not_durable++;
    }
}

static void on_log(int level, const char *line, void *payload)
{
    (void)payload;
    if (level <= PIXEL_LOG_NOTICE) {
        fprintf(stderr, "pixelconv: %s\n", line);
    }
}

int pixelconv_kafka_open(pixelconv_kafka **out, const char *config_path,
                         const char *const *overrides, const char *pipeline_version, char *errbuf,
                         size_t errlen)
{
    pixel_sink_options so = PIXEL_SINK_OPTIONS_INIT;
    pixelconv_kafka *k = calloc(1, sizeof(*k));
    pixel_error err;
    int rc;

    *out = NULL;
    memset(&err, 0, sizeof(err));
    if (k == NULL || (k->ctx = pixel_ctx_new()) == NULL) {
        free(k);
        snprintf(errbuf, errlen, "out of memory");
        return PIXEL_ENOMEM;
    }
    rc = pixel_delivery_config_load_file(&k->cfg, config_path, &err);
    for (size_t i = 0; rc == 0 && overrides != NULL && overrides[i] != NULL; i++) {
        char name[128];
        const char *eq = strchr(overrides[i], '=');
        if (eq == NULL || (size_t)(eq - overrides[i]) >= sizeof(name)) {
            snprintf(errbuf, errlen, "expected name=value, not \"%s\"", overrides[i]);
            rc = PIXEL_EINVAL;
            break;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - overrides[i]), overrides[i]);
        rc = pixel_delivery_config_set(k->cfg, name, eq + 1, &err);
    }
    if (rc == 0) {
        so.ack = on_ack;
        so.ack_payload = k;
        so.log = on_log;
        rc = pixel_sink_new(&k->sink, k->cfg, &so, &err);
    }
    if (rc != 0) {
        if (err.text[0] != '\0') {
            pixel_error_format(&err, errbuf, errlen);
        }
        pixel_delivery_config_free(k->cfg);
        pixel_ctx_free(k->ctx);
        free(k);
        return rc;
    }
    k->key_field = pixel_delivery_config_get(k->cfg, "kafka.key_field");
    k->type_field = pixel_delivery_config_get(k->cfg, "kafka.type_field");
    k->schema_field = pixel_delivery_config_get(k->cfg, "kafka.schema_field");
    k->pipeline_version = pipeline_version ? strdup(pipeline_version) : NULL;
    *out = k;
    return 0;
}

static const char *member(const pixel_value *ev, const char *path, size_t *len)
{
    *len = 0;
    return path != NULL ? pixel_value_string(pixel_value_at(ev, path), len) : NULL;
}

int pixelconv_kafka_event(pixelconv_kafka *k, const char *json, size_t len)
{
    pixel_sink_msg m;
    pixel_value *ev;
    int rc;

    pixel_ctx_reset(k->ctx);
    ev = pixel_json_parse(k->ctx, json, len, NULL);
    memset(&m, 0, sizeof(m));
    m.value = json;
    m.value_len = len;
    m.key = member(ev, k->key_field, &m.key_len);
    m.type = member(ev, k->type_field, &m.type_len);
    m.schema_id = member(ev, k->schema_field, &m.schema_id_len);
    m.pipeline_version = k->pipeline_version;
    m.pipeline_version_len = k->pipeline_version ? strlen(k->pipeline_version) : 0;
    while ((rc = pixel_sink_produce(k->sink, &m, NULL, NULL)) == PIXEL_DELIVERY_EFULL) {
        pixel_sink_poll(k->sink, 100);
    }
    return rc;
}

int pixelconv_kafka_quarantine(pixelconv_kafka *k, const char *json, size_t len)
{
    int rc;

    while ((rc = pixel_sink_quarantine(k->sink, json, len, NULL, NULL)) == PIXEL_DELIVERY_EFULL) {
        pixel_sink_poll(k->sink, 100);
    }
    return rc;
}

void pixelconv_kafka_count(pixelconv_kafka *k, int outcome, unsigned long n)
{
    while (n-- > 0) {
        pixel_sink_count(k->sink, outcome);
    }
}

int pixelconv_kafka_close(pixelconv_kafka *k, pixel_sink_stats *stats, char *errbuf, size_t errlen)
{
    pixel_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = pixel_sink_flush(k->sink, -1, &err);
    if (stats != NULL) {
        pixel_sink_stats_get(k->sink, stats);
    }
    pixel_sink_free(k->sink); /* may still ack with a failure: counted below */
    if (rc != 0) {
        snprintf(errbuf, errlen, "%s", err.text);
    } else if (k->not_durable > 0) {
        snprintf(errbuf, errlen, "%lu records could not be made durable", k->not_durable);
        rc = -1;
    }
    pixel_delivery_config_free(k->cfg);
    pixel_ctx_free(k->ctx);
    free(k->pipeline_version);
    free(k);
    return rc == 0 ? 0 : -1;
}
