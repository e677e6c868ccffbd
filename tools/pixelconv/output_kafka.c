/*
 * pixelconv --kafka (see output_kafka.h).
 *
 * pixelconv's workers convert and, taking turns in input order, deliver.  A
 * worker packs each event with the message key, event type and schema ID it
 * reads from the event value it just built (the same dotted paths and the
 * same text for strings and integers as the omprog host), so the batch's
 * writing hands them to the sink as they are instead of parsing every
 * event's JSON again:
 *
 *   u32 value length, u32 key length, u32 type length, u32 schema ID length
 *   (0xFFFFFFFF: absent; host byte order, the buffer never leaves the
 *   process), then the key, type and schema ID bytes, then the JSON.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/pixel.h"
#include "pixel/value.h"

#include "output_kafka.h"

/*
 * A batch's packed events, lent to the sink (pixel_sink_produce_lent): the
 * JSON stays where the worker wrote it until every event of the batch is
 * acked, then the buffer goes back to a batch.  pending counts the events
 * not yet acked, plus one while the writer still produces from the block.
 */
typedef struct lent_block {
    struct lent_block *next; /* the spare list */
    struct lent_block *all;  /* every block, to free them at close */
    char *buf;
    size_t cap;
    size_t pending;
} lent_block;

struct pixelconv_kafka {
    pixel_delivery_config *cfg;
    pixel_sink *sink;
    const char *key_field, *type_field, *schema_field;
    char *pipeline_version;
    size_t pipeline_version_len;
    unsigned long not_durable;
    lent_block *spare; /* acked blocks: their buffers wait for a batch */
    lent_block *blocks;
    /* Quarantine lines gathered from batches of regular files, handed to
     * the sink together (one write to the quarantine file, not one a
     * record) once there are QBUF_FLUSH bytes, at a batch from a pipe, and
     * at close. */
    char *qbuf;
    size_t qlen, qcap;
};

#define QBUF_FLUSH (1u << 16)

static void block_release(pixelconv_kafka *k, lent_block *b)
{
    if (--b->pending == 0) {
        b->next = k->spare;
        k->spare = b;
    }
}

static void on_ack(void *token, int status, void *payload)
{
    pixelconv_kafka *k = payload;

    if (status < 0) {
        k->not_durable++;
    }
    if (token != NULL) {
        block_release(k, token);
    }
}

static void on_log(int level, const char *line, void *payload)
{
    (void)payload;
    if (level <= PIXEL_LOG_NOTICE) {
        fprintf(stderr, "pixelconv: %s\n", line);
    }
}

/* The optional settings that "NAME=" (an empty value) turns off. */
static int unsettable(const char *name)
{
    static const char *const names[] = {"kafka.key_field", "kafka.type_field", "kafka.schema_field",
                                        "quarantine.topic", "quarantine.file"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
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
    if (k == NULL) {
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
        rc = pixel_delivery_config_set(k->cfg, name,
                                       eq[1] == '\0' && unsettable(name) ? NULL : eq + 1, &err);
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
        free(k);
        return rc;
    }
    k->key_field = pixel_delivery_config_get(k->cfg, "kafka.key_field");
    k->type_field = pixel_delivery_config_get(k->cfg, "kafka.type_field");
    k->schema_field = pixel_delivery_config_get(k->cfg, "kafka.schema_field");
    if (pipeline_version != NULL) {
        k->pipeline_version = strdup(pipeline_version);
        k->pipeline_version_len = strlen(pipeline_version);
    }
    *out = k;
    return 0;
}

#define ABSENT UINT32_MAX
#define HEAD   (4 * sizeof(uint32_t))

/* A member of the event as message text: a string as it is, an integer in
 * decimal (num), anything else absent. */
static const char *field_text(const pixel_value *ev, const char *path, uint32_t *len, char *num,
                              size_t numsize)
{
    const pixel_value *v = path != NULL ? pixel_value_at(ev, path) : NULL;
    size_t n = 0;
    const char *t = NULL;

    if (pixel_value_type(v) == PIXEL_TYPE_STRING) {
        t = pixel_value_string(v, &n);
    } else if (pixel_value_type(v) == PIXEL_TYPE_INT) {
        n = (size_t)snprintf(num, numsize, "%" PRId64, pixel_value_int(v));
        t = num;
    }
    if (t == NULL || n >= ABSENT) {
        *len = ABSENT;
        return NULL;
    }
    *len = (uint32_t)n;
    return t;
}

int pixelconv_kafka_pack(const pixelconv_kafka *k, const pixel_value *event, const char *json,
                         size_t len, char **buf, size_t *buf_len, size_t *buf_cap)
{
    char knum[24], tnum[24], snum[24];
    uint32_t head[4];
    const char *key = field_text(event, k->key_field, &head[1], knum, sizeof(knum));
    const char *type = field_text(event, k->type_field, &head[2], tnum, sizeof(tnum));
    const char *schema = field_text(event, k->schema_field, &head[3], snum, sizeof(snum));
    size_t need = HEAD + len, at = *buf_len;
    char *p;

    if (len >= ABSENT) {
        return -1;
    }
    head[0] = (uint32_t)len;
    for (int i = 1; i < 4; i++) {
        need += head[i] != ABSENT ? head[i] : 0;
    }
    if (at + need > *buf_cap) {
        size_t cap = *buf_cap ? *buf_cap : 1u << 16;
        char *nb;
        while (cap < at + need) {
            cap *= 2;
        }
        if ((nb = realloc(*buf, cap)) == NULL) {
            return -1;
        }
        *buf = nb;
        *buf_cap = cap;
    }
    p = *buf + at;
    memcpy(p, head, HEAD);
    p += HEAD;
#define PUT(s, n)                                                                                  \
    if ((s) != NULL) {                                                                             \
        memcpy(p, s, n);                                                                           \
        p += (n);                                                                                  \
    }
    PUT(key, head[1])
    PUT(type, head[2])
    PUT(schema, head[3])
    PUT(json, len)
#undef PUT
    *buf_len = at + need;
    return 0;
}

/* The next packed field: NULL when absent. */
static const char *unpack(const char **p, uint32_t n, size_t *len)
{
    const char *s = *p;

    if (n == ABSENT) {
        *len = 0;
        return NULL;
    }
    *len = n;
    *p += n;
    return s;
}

int pixelconv_kafka_events(pixelconv_kafka *k, char **buf, size_t *cap, size_t len)
{
    lent_block *blk = k->spare;
    const char *p, *end;
    char *spare_buf;
    size_t spare_cap;
    pixel_sink_msg m;
    int rc = 0;

    if (len == 0) {
        return 0;
    }
    if (blk != NULL) {
        k->spare = blk->next;
    } else if ((blk = calloc(1, sizeof(*blk))) != NULL) {
        blk->all = k->blocks;
        k->blocks = blk;
    } else {
        return PIXEL_ENOMEM;
    }
    /* The block takes the batch's buffer; the batch gets the block's old
     * one (already grown to a batch's size once the first blocks come
     * back). */
    spare_buf = blk->buf;
    spare_cap = blk->cap;
    blk->buf = *buf;
    blk->cap = *cap;
    *buf = spare_buf;
    *cap = spare_cap;
    blk->pending = 1;
    p = blk->buf;
    end = p + len;
    memset(&m, 0, sizeof(m));
    m.pipeline_version = k->pipeline_version;
    m.pipeline_version_len = k->pipeline_version_len;
    while (rc == 0 && (size_t)(end - p) >= HEAD) {
        uint32_t head[4];

        memcpy(head, p, HEAD);
        p += HEAD;
        m.key = unpack(&p, head[1], &m.key_len);
        m.type = unpack(&p, head[2], &m.type_len);
        m.schema_id = unpack(&p, head[3], &m.schema_id_len);
        m.value = unpack(&p, head[0], &m.value_len);
        /* The buffer may have been written on another core: each event's
         * first touch here can be a cache (and TLB) miss that the producer
         * would wait for.  Ask for the next event's head and key now, so that
         * they arrive while this one is produced. */
        if (p < end) {
            __builtin_prefetch(p);
            __builtin_prefetch(p + 64);
        }
        /* Counted first: the ack may come from inside the call. */
        blk->pending++;
        while ((rc = pixel_sink_produce_lent(k->sink, &m, blk, NULL)) == PIXEL_DELIVERY_EFULL) {
            pixel_sink_poll(k->sink, 100);
        }
        if (rc != 0) {
            blk->pending--; /* not accepted: no ack will come */
        }
    }
    block_release(k, blk);
    return rc;
}

/* Hand the gathered quarantine lines to the sink, waiting (serving the
 * sink) while it cannot take them. */
static int quarantine_flush(pixelconv_kafka *k)
{
    size_t at = 0;
    int rc = 0;

    while (at < k->qlen) {
        size_t taken = 0;
        rc = pixel_sink_quarantine_lines(k->sink, k->qbuf + at, k->qlen - at, NULL, &taken, NULL);
        at += taken;
        if (rc != PIXEL_DELIVERY_EFULL) {
            break;
        }
        pixel_sink_poll(k->sink, 100);
    }
    k->qlen = 0;
    return rc;
}

int pixelconv_kafka_quarantine(pixelconv_kafka *k, const char *lines, size_t len, bool hold)
{
    if (len == 0) {
        return hold || k->qlen == 0 ? 0 : quarantine_flush(k);
    }
    if (k->qlen + len > k->qcap) {
        size_t cap = k->qcap ? k->qcap : QBUF_FLUSH * 2;
        char *nb;
        while (cap < k->qlen + len) {
            cap *= 2;
        }
        if ((nb = realloc(k->qbuf, cap)) == NULL) {
            return PIXEL_ENOMEM;
        }
        k->qbuf = nb;
        k->qcap = cap;
    }
    memcpy(k->qbuf + k->qlen, lines, len);
    k->qlen += len;
    return k->qlen >= QBUF_FLUSH || !hold ? quarantine_flush(k) : 0;
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
    int rc, qrc;

    memset(&err, 0, sizeof(err));
    qrc = quarantine_flush(k);
    rc = pixel_sink_flush(k->sink, -1, &err);
    if (qrc != 0 && rc == 0) {
        snprintf(err.text, sizeof(err.text), "quarantine records could not be handed to the sink");
        rc = -1;
    }
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
    free(k->pipeline_version);
    free(k->qbuf);
    /* The sink is gone: nothing refers to the lent buffers any more. */
    while (k->blocks != NULL) {
        lent_block *b = k->blocks;
        k->blocks = b->all;
        free(b->buf);
        free(b);
    }
    free(k);
    return rc == 0 ? 0 : -1;
}
