/*
 * The delivery configuration and the Kafka sink against librdkafka's mock
 * cluster (in this process, on 127.0.0.1): acks after delivery reports,
 * failover to the spool and back, back-pressure, quarantine file.
 *
 * Waits are bounded loops on a state ("until the sink failed over"), never
 * assertions about how long something took.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "pixel/delivery.h"

#include "delivery_private.h" /* pixel__sink_kafka(), to inject a fatal error */

#define NBROKERS 3

static char tmpdir[256];
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;

typedef struct acks {
    int delivered, spooled, quarantined, failed;
    unsigned char seen[4096];
    int order[4096], status[4096], n; /* tokens and statuses in the order acked */
} acks;

static acks A;
static pthread_t test_thread; /* acks must come on it, never on the sink's syncer */
static int acks_elsewhere;
static char lastlog[1024];
static int create_failed_logs, created_again_logs;
static int saw_backpressure_log;

/* Values lent with pixel_sink_produce_lent(), by input ID: the ack scribbles
 * over and frees them, as a host reusing its buffers would (and ASan sees
 * any later read). */
static char *lent[4096];

static void on_ack(void *token, int status, void *payload)
{
    uintptr_t id = (uintptr_t)token;
    (void)payload;
    if (!pthread_equal(pthread_self(), test_thread)) {
        acks_elsewhere++;
    }
    if (id < sizeof(lent) / sizeof(lent[0]) && lent[id] != NULL) {
        memset(lent[id], 'X', strlen(lent[id]));
        free(lent[id]);
        lent[id] = NULL;
    }
    ck_assert_uint_lt(id, sizeof(A.seen));
    ck_assert_msg(A.seen[id] == 0, "input %u acked twice", (unsigned)id);
    A.seen[id] = 1;
    A.order[A.n] = (int)id;
    A.status[A.n++] = status;
    switch (status) {
        case PIXEL_SINK_DELIVERED:
            A.delivered++;
            break;
        case PIXEL_SINK_SPOOLED:
            A.spooled++;
            break;
        case PIXEL_SINK_QUARANTINED:
            A.quarantined++;
            break;
        default:
            A.failed++;
            break;
    }
}

static void on_log(int level, const char *line, void *payload)
{
    (void)payload;
    /* lastlog: the sink's own last word.  librdkafka's lines (connection
       refused while the brokers are down, ...) come whenever a poll serves
       them, in between, and are left out. */
    if (level <= PIXEL_LOG_NOTICE && strncmp(line, "librdkafka ", 11) != 0) {
        snprintf(lastlog, sizeof(lastlog), "%s", line);
    }
    if (strstr(line, "back-pressure") != NULL) {
        saw_backpressure_log = 1;
    }
    if (strstr(line, "cannot create the producer") != NULL) {
        create_failed_logs++;
    } else if (strstr(line, "producer created again") != NULL) {
        created_again_logs++;
    }
}

static void setup(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_sink.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(mock_rk);
    mock = rd_kafka_mock_cluster_new(mock_rk, NBROKERS);
    ck_assert_ptr_nonnull(mock);
    rd_kafka_mock_topic_create(mock, "events", 4, NBROKERS);
    rd_kafka_mock_topic_create(mock, "dlq", 1, NBROKERS);
    memset(&A, 0, sizeof(A));
    test_thread = pthread_self();
    acks_elsewhere = 0;
    lastlog[0] = '\0';
    saw_backpressure_log = 0;
}

static void teardown(void)
{
    char cmd[300];

    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        /* best effort */
    }
}

static pixel_delivery_config *config(const char *extra)
{
    char yaml[4096];
    pixel_delivery_config *cfg;
    pixel_error err;

    snprintf(yaml, sizeof(yaml),
             "pipeline: ignored\n"
             "delivery:\n"
             "  kafka:\n"
             "    brokers: \"%s\"\n"
             "    topic: events\n"
             "    delivery_timeout_ms: 3000\n"
             "    properties:\n"
             "      linger.ms: 5\n"
             "      reconnect.backoff.max.ms: 200\n"
             "  quarantine:\n"
             "    file: %s/quarantine.jsonl\n"
             "  spool:\n"
             "    dir: %s/spool\n"
             "    fsync: batch\n"
             "    fsync_batch: 16\n"
             "%s"
             "  failover:\n"
             "    probe_initial_ms: 200\n"
             "    probe_max_ms: 1000\n",
             rd_kafka_mock_cluster_bootstraps(mock), tmpdir, tmpdir, extra ? extra : "");
    memset(&err, 0, sizeof(err));
    ck_assert_msg(pixel_delivery_config_load_string(&cfg, yaml, strlen(yaml), "t.yaml", &err) == 0,
                  "%ld:%ld %s", err.line, err.column, err.text);
    return cfg;
}

/* A sink of cfg whose acks go to ack. */
static pixel_sink *sink_acking(const pixel_delivery_config *cfg,
                               void (*ack)(void *token, int status, void *payload))
{
    pixel_sink_options o = PIXEL_SINK_OPTIONS_INIT;
    pixel_sink *s;
    pixel_error err;

    o.ack = ack;
    o.log = on_log;
    memset(&err, 0, sizeof(err));
    ck_assert_msg(pixel_sink_new(&s, cfg, &o, &err) == 0, "%s", err.text);
    return s;
}

static pixel_sink *sink(const pixel_delivery_config *cfg)
{
    return sink_acking(cfg, on_ack);
}

static int produce(pixel_sink *s, int id)
{
    char v[128], k[16];
    pixel_sink_msg m;

    snprintf(v, sizeof(v), "{\"eid\":\"e-%05d\",\"ev\":\"page_view\"}", id);
    snprintf(k, sizeof(k), "user-%d", id % 7);
    memset(&m, 0, sizeof(m));
    m.value = v;
    m.value_len = strlen(v);
    m.key = k;
    m.key_len = strlen(k);
    m.type = "page_view";
    m.type_len = 9;
    m.pipeline_version = "3";
    m.pipeline_version_len = 1;
    return pixel_sink_produce(s, &m, (void *)(uintptr_t)id, NULL);
}

/* produce() with the value lent: it lives in lent[id] until its ack. */
static int produce_lent(pixel_sink *s, int id)
{
    char k[16];
    pixel_sink_msg m;
    int rc;

    ck_assert_ptr_null(lent[id]);
    lent[id] = malloc(128);
    ck_assert_ptr_nonnull(lent[id]);
    snprintf(lent[id], 128, "{\"eid\":\"e-%05d\",\"ev\":\"page_view\"}", id);
    snprintf(k, sizeof(k), "user-%d", id % 7);
    memset(&m, 0, sizeof(m));
    m.value = lent[id];
    m.value_len = strlen(lent[id]);
    m.key = k;
    m.key_len = strlen(k);
    m.type = "page_view";
    m.type_len = 9;
    rc = pixel_sink_produce_lent(s, &m, (void *)(uintptr_t)id, NULL);
    if (rc != 0) {
        free(lent[id]); /* not accepted: still ours */
        lent[id] = NULL;
    }
    return rc;
}

static void set_brokers(int up)
{
    for (int id = 1; id <= NBROKERS; id++) {
        if (up) {
            rd_kafka_mock_broker_set_up(mock, id);
        } else {
            rd_kafka_mock_broker_set_down(mock, id);
        }
    }
}

static void check_counters(pixel_sink *s)
{
    pixel_sink_stats st;

    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.events_in,
                      st.delivered + st.spooled + st.events_failed + st.events_pending);
    ck_assert_uint_eq(st.quarantine_in,
                      st.quarantined + st.quarantine_failed + st.quarantine_pending);
}

/* Polls (producing one event from make() with the next id before each, when
 * make is not NULL) until the sink is in `state`; with check, the counters
 * must add up after each poll. */
static void produce_until(pixel_sink *s, int *id, int state, int (*make)(pixel_sink *, int),
                          int check)
{
    for (int tries = 0; pixel_sink_state_get(s) != state && tries < 600; tries++) {
        if (make != NULL) {
            ck_assert_int_eq(make(s, (*id)++), 0);
        }
        pixel_sink_poll(s, 50);
        if (check) {
            check_counters(s);
        }
    }
    ck_assert_int_eq(pixel_sink_state_get(s), state);
}

/* All brokers down until the sink spools, `during` more events spooled,
 * brokers back until it switches back to Kafka, `after` more events there;
 * each event from make(s, id) with the next id.  Returns the next id. */
static int fail_over_and_back(pixel_sink *s, int id, int (*make)(pixel_sink *, int),
                              int during, int after)
{
    set_brokers(0);
    produce_until(s, &id, PIXEL_SINK_SPOOL, make, 0);
    for (int k = 0; k < during; k++) {
        ck_assert_int_eq(make(s, id++), 0);
    }
    set_brokers(1);
    produce_until(s, &id, PIXEL_SINK_KAFKA, make, 0);
    for (int k = 0; k < after; k++) {
        ck_assert_int_eq(make(s, id++), 0);
    }
    return id;
}

/* Count the records now in the spool (sealed and active). */
static int spooled_records(void)
{
    char dir[300];
    pixel_spool_segment *segs;
    size_t n;
    int total = 0;

    snprintf(dir, sizeof(dir), "%s/spool", tmpdir);
    if (pixel_spool_segments(dir, &segs, &n, NULL) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        pixel_spool_reader *r;
        pixel_spool_msg m;
        ck_assert_int_eq(pixel_spool_reader_open(&r, segs[i].path, NULL), 0);
        while (pixel_spool_reader_next(r, &m, NULL, NULL, NULL) == PIXEL_SPOOL_RECORD) {
            ck_assert_msg(m.value_len > 10 && memcmp(m.value, "{\"eid\":\"e-", 10) == 0,
                          "spooled value: %.*s", (int)m.value_len, (const char *)m.value);
            total++;
        }
        pixel_spool_reader_close(r);
    }
    pixel_spool_segments_free(segs, n);
    return total;
}

/* Messages in a topic, read back with a consumer. */
static int consume_count(const char *topic)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *c;
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(4);
    int count = 0, idle = 0;
    const struct rd_kafka_metadata *md;
    int parts = 0;

    rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mock), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", "check", NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(c);
    {
        rd_kafka_topic_t *t = rd_kafka_topic_new(c, topic, NULL);
        ck_assert_int_eq(rd_kafka_metadata(c, 0, t, &md, 5000), 0);
        parts = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
    }
    for (int p = 0; p < parts; p++) {
        rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    while (idle < 10) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (m == NULL) {
            idle++;
            continue;
        }
        if (m->err == 0) {
            /* Events (quarantine records are the other kind) are whole. */
            ck_assert_msg(strcmp(topic, "events") != 0 ||
                              (m->len > 10 && memcmp(m->payload, "{\"eid\":\"e-", 10) == 0),
                          "consumed value: %.*s", (int)m->len, (const char *)m->payload);
            count++;
            idle = 0;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return count;
}

START_TEST(config_reports_unknown_key_with_line_and_column)
{
    const char *yaml = "delivery:\n"
                       "  kafka: {brokers: \"x:1\", topic: t}\n"
                       "  spool:\n"
                       "    dir: /tmp/x\n"
                       "    max_byte: 10\n";
    pixel_delivery_config *cfg;
    pixel_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(pixel_delivery_config_load_string(&cfg, yaml, strlen(yaml), "p.yaml", &err),
                     PIXEL_ECONFIG);
    ck_assert_int_eq(err.line, 5);
    ck_assert_int_eq(err.column, 5);
    ck_assert_str_eq(err.source, "p.yaml");
    ck_assert_str_eq(err.pointer, "/delivery/spool/max_byte");
    ck_assert_ptr_nonnull(strstr(err.text, "max_bytes"));
}
END_TEST

START_TEST(config_reports_bad_values_where_they_are)
{
    static const struct {
        const char *yaml;
        long line, column;
        const char *needle;
    } cases[] = {
        {"delivery:\n  kafka: {brokers: b, topic: t}\n  spool: {dir: d, fsync: sometimes}\n", 3, 26,
         "batch, always or never"},
        {"delivery:\n  kafka:\n    brokers: b\n    topic: t\n    properties:\n"
         "      linger.ms: lots\n  spool: {dir: d}\n",
         6, 18, "linger.ms"},
        {"delivery:\n  kafka:\n    brokers: b\n    topic: t\n    properties:\n"
         "      acks: 1\n  spool: {dir: d}\n",
         6, 13, "acks=all"},
        {"delivery:\n  kafka: {topic: t}\n  spool: {dir: d}\n", 0, 0, "brokers"},
        {"delivery:\n  kafka: {brokers: b, topic: t, topic_template: \"x.{type}\"}\n"
         "  spool: {dir: d}\n",
         0, 0, "exactly one"},
        {"delivery:\n  kafka: {brokers: b, topic: t}\n  spool: {dir: d, max_bytes: 12Q}\n", 3, 30,
         "size"},
        {"delivery:\n  kafka: [1, 2\n", 3, 1, "YAML"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pixel_delivery_config *cfg = NULL;
        pixel_error err;
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(pixel_delivery_config_load_string(&cfg, cases[i].yaml,
                                                           strlen(cases[i].yaml), "c.yaml", &err),
                         PIXEL_ECONFIG);
        ck_assert_ptr_null(cfg);
        /* the pointer (where) is said apart from the text (what), not twice */
        ck_assert_msg(strstr(err.text, cases[i].needle) || strstr(err.pointer, cases[i].needle),
                      "case %zu: at %s: %s", i, err.pointer, err.text);
        ck_assert_msg(!err.pointer[0] || strstr(err.text, err.pointer) == NULL,
                      "case %zu: at %s: %s", i, err.pointer, err.text);
        if (cases[i].line > 0) {
            ck_assert_msg(err.line == cases[i].line && err.column == cases[i].column,
                          "case %zu: %ld:%ld %s", i, err.line, err.column, err.text);
        }
    }
}
END_TEST

START_TEST(config_overrides_and_reads_settings)
{
    pixel_delivery_config *cfg = config(NULL);

    ck_assert_str_eq(pixel_delivery_config_get(cfg, "kafka.topic"), "events");
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.topic_template", "ev.{type}", NULL), 0);
    ck_assert_ptr_null(pixel_delivery_config_get(cfg, "kafka.topic"));
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "spool.max_bytes", "2M", NULL), 0);
    ck_assert_str_eq(pixel_delivery_config_get(cfg, "spool.max_bytes"), "2097152");
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "spool.nonsense", "1", NULL), PIXEL_ECONFIG);
    /* as the YAML loader: a probe penalty of 0 would probe on every poll */
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_initial_ms", "0", NULL),
                     PIXEL_ECONFIG);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_initial_ms", "50", NULL), 0);
    pixel_delivery_config_free(cfg);
}
END_TEST

START_TEST(config_reads_back_the_users_kafka_properties)
{
    pixel_delivery_config *cfg = config(NULL);
    const char *name, *value;

    /* Those of the YAML (config() sets two), as written, in order. */
    ck_assert_str_eq(pixel_delivery_config_get(cfg, "kafka.properties.linger.ms"), "5");
    ck_assert_str_eq(pixel_delivery_config_get(cfg, "kafka.properties.reconnect.backoff.max.ms"),
                     "200");
    ck_assert_int_eq(pixel_delivery_config_property(cfg, 0, &name, &value), 1);
    ck_assert_str_eq(name, "linger.ms");
    ck_assert_str_eq(value, "5");
    ck_assert_int_eq(pixel_delivery_config_property(cfg, 1, &name, &value), 1);
    ck_assert_str_eq(name, "reconnect.backoff.max.ms");
    ck_assert_int_eq(pixel_delivery_config_property(cfg, 2, &name, &value), 0);
    /* Not the sink's own settings, nor what nobody set. */
    ck_assert_ptr_null(pixel_delivery_config_get(cfg, "kafka.properties.acks"));
    ck_assert_ptr_null(pixel_delivery_config_get(cfg, "kafka.properties.bootstrap.servers"));
    ck_assert_ptr_null(pixel_delivery_config_get(cfg, "kafka.properties.queue.buffering.max.ms"));
    /* Set, replaced, removed. */
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.properties.batch.size", "65536", NULL),
                     0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.properties.linger.ms", "0", NULL), 0);
    ck_assert_str_eq(pixel_delivery_config_get(cfg, "kafka.properties.linger.ms"), "0");
    ck_assert_int_eq(pixel_delivery_config_property(cfg, 2, &name, &value), 1);
    ck_assert_str_eq(name, "batch.size");
    ck_assert_str_eq(value, "65536");
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.properties.linger.ms", NULL, NULL), 0);
    ck_assert_ptr_null(pixel_delivery_config_get(cfg, "kafka.properties.linger.ms"));
    ck_assert_int_eq(pixel_delivery_config_property(cfg, 0, &name, &value), 1);
    ck_assert_str_eq(name, "reconnect.backoff.max.ms");
    ck_assert_int_eq(pixel_delivery_config_property(cfg, 2, &name, &value), 0);
    pixel_delivery_config_free(cfg);

    /* Flow style is the same mapping. */
    {
        const char *yaml = "delivery:\n"
                           "  kafka: {brokers: b, topic: t, properties: {queue.buffering.max.ms: 7}}\n"
                           "  spool: {dir: d}\n";
        ck_assert_int_eq(pixel_delivery_config_load_string(&cfg, yaml, strlen(yaml), "f", NULL), 0);
        ck_assert_str_eq(pixel_delivery_config_get(cfg, "kafka.properties.queue.buffering.max.ms"),
                         "7");
        pixel_delivery_config_free(cfg);
    }
}
END_TEST

/* The end of a test whose n events all go to Kafka: a flush (30 s at most)
 * after which each is acked as delivered, the sink freed, the n read back. */
static void end_all_delivered(pixel_sink *s, pixel_delivery_config *cfg, int n)
{
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(A.delivered, n);
    ck_assert_int_eq(A.spooled + A.failed, 0);
    pixel_sink_free(s);
    ck_assert_int_eq(consume_count("events"), n);
    pixel_delivery_config_free(cfg);
}

/* All brokers down while events go to Kafka: the ones queued in librdkafka
 * are purged at the failover and come back to a spool too small for them
 * (max_bytes), where they wait, parked; returns once librdkafka holds
 * nothing more (or after 20 s). */
static void park_records(pixel_sink *s, int *id)
{
    set_brokers(0);
    while (*id < 300 && pixel_sink_state_get(s) == PIXEL_SINK_KAFKA && produce(s, *id) == 0) {
        (*id)++;
    }
    for (int tries = 0; tries < 400; tries++) {
        pixel_sink_poll(s, 50);
        if (pixel_sink_state_get(s) == PIXEL_SINK_SPOOL &&
            rd_kafka_outq_len(pixel__sink_kafka(s)) == 0) {
            break;
        }
    }
}

/* Events, a refused one offered again, until the sink is back on Kafka. */
static void produce_until_back(pixel_sink *s, int *id)
{
    for (int tries = 0; tries < 1200 && pixel_sink_state_get(s) != PIXEL_SINK_KAFKA; tries++) {
        if (produce(s, *id) == 0) {
            (*id)++;
        }
        pixel_sink_poll(s, 50);
    }
    ck_assert_int_eq(pixel_sink_state_get(s), PIXEL_SINK_KAFKA);
}

/* Flush and free s: each of its n inputs was acked once (on_ack checks
 * "once"), none failed, and each one acked as spooled is in the spool. */
static void end_none_lost(pixel_sink *s, pixel_delivery_config *cfg, int n)
{
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(A.delivered + A.spooled, n);
    ck_assert_int_eq(A.failed, 0);
    pixel_sink_free(s);
    ck_assert_int_eq(spooled_records(), A.spooled);
    pixel_delivery_config_free(cfg);
}

START_TEST(sink_acks_each_event_after_its_delivery_report)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    pixel_sink_stats st;

    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(produce(s, i), 0);
        check_counters(s);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(A.delivered, 500);
    ck_assert_int_eq(A.spooled + A.failed, 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.delivered, 500);
    ck_assert_uint_eq(st.failovers, 0);
    pixel_sink_free(s);
    ck_assert_int_eq(consume_count("events"), 500);
    ck_assert_int_eq(spooled_records(), 0);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* An ack callback that calls back into its sink: the calls are refused
 * (PIXEL_EINVAL), nothing else changes, and every input is acked once. */
static pixel_sink *reentry_sink;
static int reentry_refused, reentry_calls;

static void on_ack_reentering(void *token, int status, void *payload)
{
    pixel_error err;

    on_ack(token, status, payload);
    reentry_calls++;
    memset(&err, 0, sizeof(err));
    reentry_refused += produce(reentry_sink, 1000 + (int)(uintptr_t)token) == PIXEL_EINVAL;
    reentry_refused += pixel_sink_flush(reentry_sink, 1000, &err) == PIXEL_EINVAL &&
                       strstr(err.text, "callback") != NULL;
    reentry_refused += pixel_sink_quarantine(reentry_sink, "{}", 2, NULL, NULL) == PIXEL_EINVAL;
    int acked = A.n;
    pixel_sink_poll(reentry_sink, 1000); /* serves nothing: no ack from inside an ack */
    reentry_refused += A.n == acked;
}

START_TEST(sink_refuses_calls_from_its_own_callbacks)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink_acking(cfg, on_ack_reentering);

    reentry_sink = s;
    reentry_refused = reentry_calls = 0;
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(produce(s, i), 0);
    }
    end_all_delivered(s, cfg, 20); /* and nothing more: the produce calls were refused */
    ck_assert_int_eq(reentry_calls, 20);
    ck_assert_int_eq(reentry_refused, 4 * 20);
}
END_TEST

/* A producer that holds messages a minute before it sends them (linger.ms):
 * flush sends them now instead of waiting, as rd_kafka_flush() does. */
START_TEST(sink_flush_sends_what_lingers)
{
    pixel_delivery_config *cfg = config(NULL);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.delivery_timeout_ms", "300000", NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.properties.linger.ms", "60000", NULL), 0);
    pixel_sink *s = sink(cfg);

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(produce(s, i), 0);
    }
    end_all_delivered(s, cfg, 3); /* its flush waits 30 s at most */
}
END_TEST

START_TEST(sink_fails_over_to_the_spool_and_comes_back)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    pixel_sink_stats st;
    int id = 0;

    for (; id < 200; id++) {
        ck_assert_int_eq(produce(s, id), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    set_brokers(0);
    /* Keep sending until the sink notices (bounded: no timing assertion). */
    produce_until(s, &id, PIXEL_SINK_SPOOL, produce, 1);
    ck_assert_ptr_nonnull(strstr(lastlog, "failing over"));
    for (int k = 0; k < 300; k++) {
        ck_assert_int_eq(produce(s, id++), 0);
        check_counters(s);
    }
    set_brokers(1);
    produce_until(s, &id, PIXEL_SINK_KAFKA, produce, 1);
    ck_assert_ptr_nonnull(strstr(lastlog, "switching back"));
    for (int k = 0; k < 100; k++) {
        ck_assert_int_eq(produce(s, id++), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    check_counters(s);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_ge(st.failovers, 1);
    ck_assert_uint_ge(st.recoveries, 1);
    ck_assert_uint_ge(st.spooled, 300);
    /* Every input acked exactly once (on_ack checks "once"), none failed. */
    ck_assert_int_eq(A.delivered + A.spooled, id);
    ck_assert_int_eq(A.failed, 0);
    pixel_sink_free(s);
    /* Nothing lost: each event is in Kafka or in the spool. */
    ck_assert_int_eq(spooled_records(), A.spooled);
    ck_assert_int_ge(consume_count("events"), A.delivered);
    pixel_delivery_config_free(cfg);
}
END_TEST

/*
 * Lent values (pixel_sink_produce_lent) through delivery, failover and
 * recovery: the host takes each value back at its ack (scribbled over and
 * freed), yet Kafka and the spool hold every event whole, once.
 */
START_TEST(sink_lent_values_are_kept_until_their_ack)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    int id = 0;

    for (; id < 200; id++) {
        ck_assert_int_eq(produce_lent(s, id), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(A.delivered, 200);
    id = fail_over_and_back(s, id, produce_lent, 300, 100);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    check_counters(s);
    ck_assert_int_eq(A.delivered + A.spooled, id);
    ck_assert_int_eq(A.failed, 0);
    for (int i = 0; i < id; i++) {
        ck_assert_msg(lent[i] == NULL, "input %d: value never taken back", i);
    }
    pixel_sink_free(s);
    ck_assert_int_eq(spooled_records(), A.spooled);
    ck_assert_int_ge(consume_count("events"), A.delivered);
    pixel_delivery_config_free(cfg);
}
END_TEST

/*
 * A poll that waits first makes the records waiting for an fsync durable
 * and acks them; only then does it wait for Kafka.  Seen in the order of the
 * acks: the input that waited for its fsync is acked before an input whose
 * delivery report arrives during the wait.
 */
START_TEST(sink_poll_syncs_waiting_quarantine_lines_before_it_waits)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    const char *q = "{\"raw\":\"line\"}";

    /* One line in the quarantine file (fsync batches of 16: it waits),
     * then one event for Kafka. */
    ck_assert_int_eq(pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)100, NULL), 0);
    ck_assert_int_eq(produce(s, 1), 0);
    ck_assert_int_eq(A.n, 0);
    for (int tries = 0; A.n < 2 && tries < 30; tries++) {
        pixel_sink_poll(s, 1000);
    }
    ck_assert_int_eq(A.n, 2);
    ck_assert_int_eq(A.order[0], 100);
    ck_assert_int_eq(A.status[0], PIXEL_SINK_QUARANTINED);
    ck_assert_int_eq(A.order[1], 1);
    ck_assert_int_eq(A.status[1], PIXEL_SINK_DELIVERED);
    check_counters(s);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* Every broker down: events (ids from *id on) until the sink has failed
 * over to the spool, and polls until every one of them is acked. */
static void fail_over(pixel_sink *s, int *id)
{
    int tries;

    set_brokers(0);
    produce_until(s, id, PIXEL_SINK_SPOOL, produce, 0);
    for (tries = 0; A.n < *id && tries < 100; tries++) {
        pixel_sink_poll(s, 50);
    }
    ck_assert_int_eq(A.n, *id);
}

/* The same for a spooled event while failed over: it is acked before the
 * probe that Kafka confirms during the wait. */
START_TEST(sink_poll_syncs_waiting_spool_records_before_it_waits)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    int id = 0, tries, spooled;

    ck_assert_int_eq(produce(s, id++), 0);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    fail_over(s, &id);
    /* One event to the spool, before the probe is due: it waits for its fsync. */
    spooled = id;
    ck_assert_int_eq(produce(s, id++), 0);
    ck_assert_int_eq(A.n, spooled);
    set_brokers(1);
    usleep(400 * 1000); /* past probe_initial_ms: the next event is a probe */
    ck_assert_int_eq(produce(s, id++), 0);
    ck_assert_uint_eq(A.n, spooled);
    for (tries = 0; A.n < id && tries < 30; tries++) {
        pixel_sink_poll(s, 1000);
    }
    ck_assert_int_eq(A.n, id);
    ck_assert_int_eq(A.order[spooled], spooled);
    ck_assert_int_eq(A.status[spooled], PIXEL_SINK_SPOOLED);
    ck_assert_int_eq(A.order[spooled + 1], spooled + 1);
    check_counters(s);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

static double clock_now(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Records parked (the spool is full, Kafka is down and librdkafka holds
 * nothing more): a flush that waits for them sleeps between its checks
 * instead of spinning on a CPU until its timeout. */
START_TEST(sink_flush_waits_for_parked_records_without_spinning)
{
    pixel_delivery_config *cfg = config("    max_bytes: 4096\n");
    pixel_sink_stats st;
    double wall, cpu;
    int id = 0;

    /* No probe during the test: the parked records stay parked. */
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_max_ms", "600000", NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_initial_ms", "600000", NULL),
                     0);
    pixel_sink *s = sink(cfg);
    park_records(s, &id);
    ck_assert_int_eq(pixel_sink_state_get(s), PIXEL_SINK_SPOOL);
    ck_assert_int_eq(rd_kafka_outq_len(pixel__sink_kafka(s)), 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_gt(st.events_pending, 0);

    wall = clock_now(CLOCK_MONOTONIC);
    cpu = clock_now(CLOCK_THREAD_CPUTIME_ID);
    ck_assert_int_eq(pixel_sink_flush(s, 1000, NULL), PIXEL_ERROR);
    wall = clock_now(CLOCK_MONOTONIC) - wall;
    cpu = clock_now(CLOCK_THREAD_CPUTIME_ID) - cpu;
    ck_assert_double_ge(wall, 0.9);
    ck_assert_msg(cpu < 0.25 * wall, "flush used %.3f s of CPU in %.3f s", cpu, wall);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

START_TEST(sink_applies_back_pressure_when_the_spool_is_full)
{
    pixel_delivery_config *cfg = config("    max_bytes: 4096\n");
    pixel_sink *s = sink(cfg);
    pixel_sink_stats st;
    int id = 0, rc = 0, tries;

    set_brokers(0);
    for (tries = 0; tries < 2000; tries++) {
        rc = produce(s, id);
        if (rc == PIXEL_DELIVERY_EFULL) {
            break;
        }
        ck_assert_int_eq(rc, 0);
        id++;
        pixel_sink_poll(s, 5);
        check_counters(s);
    }
    ck_assert_int_eq(rc, PIXEL_DELIVERY_EFULL);
    ck_assert(saw_backpressure_log);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_ge(st.backpressure, 1);
    /* Kafka comes back: the parked and refused inputs can go on. */
    set_brokers(1);
    produce_until_back(s, &id);
    end_none_lost(s, cfg, id);
}
END_TEST

START_TEST(sink_sends_quarantine_records_to_the_dead_letter_topic)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.file", NULL, NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.topic", "dlq", NULL), 0);
    s = sink(cfg);
    for (int i = 0; i < 40; i++) {
        char q[64];
        snprintf(q, sizeof(q), "{\"raw\":\"line %d\"}", i);
        ck_assert_int_eq(pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)i, NULL), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(A.quarantined, 40);
    check_counters(s);
    pixel_sink_free(s);
    ck_assert_int_eq(consume_count("dlq"), 40);
    ck_assert_int_eq(consume_count("events"), 0);
    pixel_delivery_config_free(cfg);
}
END_TEST

START_TEST(sink_survives_a_fatal_producer_error)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    pixel_sink_stats st;
    int id = 0;

    for (; id < 100; id++) {
        ck_assert_int_eq(produce(s, id), 0);
    }
    /* What an idempotence failure looks like to librdkafka's users. */
    ck_assert_int_eq(rd_kafka_test_fatal_error(pixel__sink_kafka(s),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected by the test"),
                     0);
    produce_until(s, &id, PIXEL_SINK_SPOOL, NULL, 0);
    /* A new producer takes over; a probe brings the sink back. */
    produce_until(s, &id, PIXEL_SINK_KAFKA, produce, 1);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_ge(st.failovers, 1);
    ck_assert_uint_ge(st.recoveries, 1);
    ck_assert_int_eq(A.delivered + A.spooled, id);
    ck_assert_int_eq(A.failed, 0);
    pixel_sink_free(s);
    ck_assert_int_eq(spooled_records(), A.spooled);
    /* Whatever the dead producer had not confirmed is in the spool. */
    ck_assert_int_ge(consume_count("events") + A.spooled, id);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* rd_kafka_new() that fails while kafka_new_failures says so. */
static int kafka_new_failures, kafka_new_calls;

static rd_kafka_t *kafka_new_failing(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                                     size_t size)
{
    kafka_new_calls++;
    if (kafka_new_failures > 0) {
        kafka_new_failures--;
        snprintf(errstr, size, "injected by the test");
        return NULL;
    }
    return rd_kafka_new(type, conf, errstr, size);
}

/*
 * After a fatal error the producer cannot be made again at first (twice
 * here): the sink stays on the spool, waits in its polls instead of
 * spinning, tries again after a growing penalty, and once a producer is
 * made, probes and switches back; nothing is lost.
 */
START_TEST(sink_retries_a_producer_it_could_not_recreate)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink_stats st;
    double wall, cpu;
    int id = 0, tries;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_initial_ms", "1000", NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_max_ms", "2000", NULL), 0);
    pixel_sink *s = sink(cfg);
    pixel__sink_set_kafka_new(s, kafka_new_failing);
    kafka_new_failures = 2;
    kafka_new_calls = create_failed_logs = created_again_logs = 0;
    for (; id < 50; id++) {
        ck_assert_int_eq(produce(s, id), 0);
    }
    ck_assert_int_eq(rd_kafka_test_fatal_error(pixel__sink_kafka(s),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected by the test"),
                     0);
    for (tries = 0; tries < 200 && pixel__sink_kafka(s) != NULL; tries++) {
        pixel_sink_poll(s, 20);
    }
    ck_assert_ptr_null(pixel__sink_kafka(s));
    ck_assert_int_eq(pixel_sink_state_get(s), PIXEL_SINK_SPOOL);
    ck_assert_int_eq(create_failed_logs, 1);
    ck_assert_msg(strstr(lastlog, "trying again in 1000 ms") != NULL, "last log: %s", lastlog);

    /* Without a producer a poll still waits (it returned at once, and the
     * callers' loops spun), and records go to the spool. */
    wall = clock_now(CLOCK_MONOTONIC);
    cpu = clock_now(CLOCK_THREAD_CPUTIME_ID);
    pixel_sink_poll(s, 300);
    wall = clock_now(CLOCK_MONOTONIC) - wall;
    cpu = clock_now(CLOCK_THREAD_CPUTIME_ID) - cpu;
    ck_assert_double_ge(wall, 0.25);
    ck_assert_msg(cpu < 0.25 * wall, "poll used %.3f s of CPU in %.3f s", cpu, wall);
    for (int k = 0; k < 20; k++) {
        ck_assert_int_eq(produce(s, id++), 0);
    }

    /* The second try fails too (the penalty doubles), the third makes one. */
    produce_until(s, &id, PIXEL_SINK_KAFKA, produce, 1);
    ck_assert_int_eq(kafka_new_calls, 3);
    ck_assert_int_eq(create_failed_logs, 2);
    ck_assert_int_eq(created_again_logs, 1);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_ge(st.recoveries, 1);
    end_none_lost(s, cfg, id);
    ck_assert_int_ge(consume_count("events") + A.spooled, id);
}
END_TEST

/* A fatal error for the sink's producer, and every re-creation failing
 * until kafka_new_failures is cleared: polls until the sink has none. */
static void lose_the_producer(pixel_sink *s)
{
    pixel__sink_set_kafka_new(s, kafka_new_failing);
    kafka_new_failures = 1000;
    ck_assert_int_eq(rd_kafka_test_fatal_error(pixel__sink_kafka(s),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected by the test"),
                     0);
    for (int tries = 0; tries < 200 && pixel__sink_kafka(s) != NULL; tries++) {
        pixel_sink_poll(s, 20);
    }
    ck_assert_ptr_null(pixel__sink_kafka(s));
}

/*
 * Messages in flight when the producer fails fatally are confirmed after
 * the error: Kafka has them (acked as delivered), but the sink stays on the
 * spool, since the producer that sent them is gone and no other could be
 * made; it comes back through a probe of the new one.
 */
START_TEST(sink_stays_on_the_spool_when_a_dying_producer_delivers)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink_stats st;
    int id = 0;

    pixel_sink *s = sink(cfg);
    for (; id < 10; id++) {
        ck_assert_int_eq(produce(s, id), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 10000, NULL), 0);
    /* The next messages are in flight for 300 ms; the error comes
     * meanwhile, so their confirmations queue up behind it. */
    for (int b = 1; b <= NBROKERS; b++) {
        rd_kafka_mock_broker_set_rtt(mock, b, 300);
    }
    for (; id < 40; id++) {
        ck_assert_int_eq(produce(s, id), 0);
    }
    usleep(100 * 1000);
    pixel__sink_set_kafka_new(s, kafka_new_failing);
    kafka_new_failures = 1000;
    ck_assert_int_eq(rd_kafka_test_fatal_error(pixel__sink_kafka(s),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected by the test"),
                     0);
    usleep(700 * 1000);
    pixel_sink_poll(s, 20);
    ck_assert_ptr_null(pixel__sink_kafka(s));
    ck_assert_int_eq(pixel_sink_state_get(s), PIXEL_SINK_SPOOL);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.recoveries, 0);

    for (int b = 1; b <= NBROKERS; b++) {
        rd_kafka_mock_broker_set_rtt(mock, b, 0);
    }
    kafka_new_failures = 0;
    produce_until(s, &id, PIXEL_SINK_KAFKA, produce, 1);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_ge(st.probes, 1);
    end_none_lost(s, cfg, id);
}
END_TEST

/* Records parked (the spool is full) when the producer is lost: serving
 * them without a producer keeps them parked; once one is made again they
 * go on, none lost. */
START_TEST(sink_keeps_records_parked_without_a_producer)
{
    pixel_delivery_config *cfg = config("    max_bytes: 4096\n");
    pixel_sink_stats st;
    int id = 0;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_initial_ms", "1000", NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_max_ms", "1000", NULL), 0);
    pixel_sink *s = sink(cfg);
    park_records(s, &id);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_gt(st.events_pending, 0); /* parked */

    lose_the_producer(s);
    for (int k = 0; k < 3; k++) {
        pixel_sink_poll(s, 20);
        ck_assert_int_eq(produce(s, id), PIXEL_DELIVERY_EFULL); /* still parked */
    }
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_gt(st.events_pending, 0);

    set_brokers(1);
    kafka_new_failures = 0;
    produce_until_back(s, &id);
    end_none_lost(s, cfg, id);
}
END_TEST

/* The records spooled while the sink has no producer name their topics
 * (the template's, for events; quarantine.topic for the copies of
 * quarantine lines): pixel-replay needs them. */
START_TEST(sink_spools_records_with_their_topics_without_a_producer)
{
    pixel_delivery_config *cfg = config(NULL);
    char dir[300];
    pixel_spool_segment *segs;
    size_t n;
    int events = 0, copies = 0;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "kafka.topic_template", "ev.{type}", NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.topic", "dlq", NULL), 0);
    pixel_sink *s = sink(cfg);
    lose_the_producer(s);
    for (int id = 0; id < 10; id++) {
        ck_assert_int_eq(produce(s, id), 0);
    }
    for (int i = 0; i < 5; i++) {
        char q[64];
        snprintf(q, sizeof(q), "{\"raw\":\"line %d\"}", i);
        ck_assert_int_eq(pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)(100 + i), NULL),
                         0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 10000, NULL), 0);
    ck_assert_int_eq(A.spooled, 10);
    ck_assert_int_eq(A.quarantined, 5);
    pixel_sink_free(s);

    snprintf(dir, sizeof(dir), "%s/spool", tmpdir);
    ck_assert_int_eq(pixel_spool_segments(dir, &segs, &n, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        pixel_spool_reader *r;
        pixel_spool_msg m;
        ck_assert_int_eq(pixel_spool_reader_open(&r, segs[i].path, NULL), 0);
        while (pixel_spool_reader_next(r, &m, NULL, NULL, NULL) == PIXEL_SPOOL_RECORD) {
            const char *want = (m.flags & PIXEL_SPOOL_MSG_QUARANTINE) ? "dlq" : "ev.page_view";
            ck_assert_msg(m.topic_len == strlen(want) && memcmp(m.topic, want, m.topic_len) == 0,
                          "topic \"%.*s\", expected %s", (int)m.topic_len, m.topic, want);
            (m.flags & PIXEL_SPOOL_MSG_QUARANTINE) ? copies++ : events++;
        }
        pixel_spool_reader_close(r);
    }
    pixel_spool_segments_free(segs, n);
    ck_assert_int_eq(events, 10);
    ck_assert_int_eq(copies, 5);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* A probe in flight when the producer is lost fails with it (the purge
 * of the old producer's queue); the new producer's first probe is not
 * purged for it: one probe brings the sink back. */
START_TEST(sink_probes_a_new_producer_once)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink_stats st;
    uint64_t probes;
    int id = 0, tries;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_initial_ms", "300", NULL), 0);
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "failover.probe_max_ms", "300", NULL), 0);
    pixel_sink *s = sink(cfg);
    set_brokers(0);
    produce_until(s, &id, PIXEL_SINK_SPOOL, produce, 0);
    pixel_sink_stats_get(s, &st);
    for (tries = 0; tries < 200 && st.probes == 0; tries++) {
        ck_assert_int_eq(produce(s, id++), 0);
        pixel_sink_poll(s, 20);
        pixel_sink_stats_get(s, &st);
    }
    ck_assert_uint_eq(st.probes, 1); /* in flight: brokers down, 3 s timeout */
    lose_the_producer(s);
    pixel_sink_stats_get(s, &st);
    probes = st.probes;

    /* Slow answers keep the new producer's probe in its queue a while,
     * where a purge would catch it. */
    for (int b = 1; b <= NBROKERS; b++) {
        rd_kafka_mock_broker_set_rtt(mock, b, 200);
    }
    set_brokers(1);
    kafka_new_failures = 0;
    produce_until(s, &id, PIXEL_SINK_KAFKA, produce, 1);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.probes, probes + 1);
    end_none_lost(s, cfg, id);
}
END_TEST

/* The copies of quarantine lines for quarantine.topic are no inputs (the
 * file holds the durable copy, a flush does not wait for them), but
 * freeing the sink gives Kafka the delivery timeout for them, as for
 * events, before it spools what is left. */
START_TEST(sink_free_waits_for_the_copies_of_quarantine_lines)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.topic", "dlq", NULL), 0);
    s = sink(cfg);
    for (int b = 1; b <= NBROKERS; b++) {
        rd_kafka_mock_broker_set_rtt(mock, b, 300); /* the copies are in flight at the free */
    }
    for (int i = 0; i < 10; i++) {
        char q[64];
        snprintf(q, sizeof(q), "{\"raw\":\"line %d\"}", i);
        ck_assert_int_eq(pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)i, NULL), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 10000, NULL), 0);
    ck_assert_int_eq(A.quarantined, 10);
    pixel_sink_free(s);
    for (int b = 1; b <= NBROKERS; b++) {
        rd_kafka_mock_broker_set_rtt(mock, b, 0);
    }
    ck_assert_int_eq(consume_count("dlq"), 10);
    pixel_delivery_config_free(cfg);
}
END_TEST

START_TEST(sink_quarantine_file_does_not_wait_for_kafka)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s;
    char path[300], line[256];
    FILE *f;
    int lines = 0;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.topic", "dlq", NULL), 0);
    s = sink(cfg);
    set_brokers(0); /* a stalled Kafka */
    for (int i = 0; i < 50; i++) {
        char q[64];
        snprintf(q, sizeof(q), "{\"raw\":\"line %d\"}", i);
        ck_assert_int_eq(pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)i, NULL), 0);
    }
    pixel_sink_poll(s, 100);
    ck_assert_int_eq(A.quarantined, 50);
    pixel_sink_count(s, PIXEL_OUTCOME_SKIPPED);
    check_counters(s);
    set_brokers(1);
    pixel_sink_free(s);
    snprintf(path, sizeof(path), "%s/quarantine.jsonl", tmpdir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        ck_assert_ptr_nonnull(strstr(line, "{\"raw\":\"line "));
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 50);
    pixel_delivery_config_free(cfg);
}
END_TEST

/*
 * With fsync: batch, a full batch of quarantine lines is fsync'd in the
 * background: the call that fills it returns before any of those lines is
 * acked (the caller keeps producing meanwhile), and the acks come later, on
 * the caller's thread, from a poll that does not wait.
 */
START_TEST(sink_syncs_quarantine_batches_in_the_background)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    char path[300], line[256];
    FILE *f;
    int lines = 0;

    for (int i = 0; i < 40; i++) {
        char q[64];
        snprintf(q, sizeof(q), "{\"raw\":\"line %d\"}", i);
        ck_assert_int_eq(pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)i, NULL), 0);
        if (i == 15) {
            /* the 16th line filled the batch: handed to the syncer, not waited for */
            ck_assert_int_eq(A.quarantined, 0);
        }
    }
    /* Polls that never wait collect the two full batches (32 lines); the
     * last 8 wait for fsync_interval_ms or a poll that waits. */
    for (int tries = 0; A.quarantined < 32 && tries < 5000; tries++) {
        pixel_sink_poll(s, 0);
        usleep(1000);
    }
    ck_assert_int_ge(A.quarantined, 32);
    pixel_sink_poll(s, 100);
    ck_assert_int_eq(A.quarantined, 40);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(A.order[i], i); /* batches are acked in order */
    }
    ck_assert_int_eq(acks_elsewhere, 0);
    pixel_sink_count(s, PIXEL_OUTCOME_SKIPPED);
    check_counters(s);
    pixel_sink_free(s);
    snprintf(path, sizeof(path), "%s/quarantine.jsonl", tmpdir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 40);
    pixel_delivery_config_free(cfg);
}
END_TEST

/*
 * A quarantine file whose fsync fails (/dev/null refuses fdatasync with
 * EINVAL): its lines are never acked as durable but as failed (PIXEL_EIO),
 * each failure is logged, and the counters stay whole.  The host sends
 * those inputs again (rsyslog retries them).
 */
START_TEST(sink_fails_quarantine_lines_whose_fsync_failed)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s;
    pixel_sink_stats st;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.file", "/dev/null", NULL), 0);
    s = sink(cfg);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(pixel_sink_quarantine(s, "{}", 2, (void *)(uintptr_t)i, NULL), 0);
        if (i % 8 == 0) {
            usleep(2000);
            pixel_sink_poll(s, 0);
        }
    }
    for (int tries = 0; A.n < 40 && tries < 50; tries++) {
        pixel_sink_poll(s, 100); /* the in-line fsync fails too */
    }
    ck_assert_int_eq(A.n, 40);
    ck_assert_int_eq(A.failed, 40);
    for (int i = 0; i < A.n; i++) {
        ck_assert_int_eq(A.status[i], PIXEL_EIO);
    }
    ck_assert_msg(strstr(lastlog, "fsync failed") != NULL, "last log: %s", lastlog);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.quarantine_in, 40);
    ck_assert_uint_eq(st.quarantine_failed, 40);
    ck_assert_uint_eq(st.quarantine_pending, 0);
    check_counters(s);
    pixel_sink_free(s);
    ck_assert_int_eq(A.n, 40);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* Stand-ins for the quarantine file's fdatasync. */
static int sync_calls;

static int fdatasync_fails_once(int fd)
{
    if (sync_calls++ == 0) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static int fdatasync_slow(int fd)
{
    sync_calls++;
    usleep(300 * 1000);
    return fdatasync(fd);
}

/*
 * One failed fdatasync in the background.  Retrying it would prove nothing
 * (after a failed fsync Linux may have dropped the pages and report the
 * next one as a success), so the lines it covered are acked as failed, once,
 * and the lines quarantined after it are synced and acked as durable.
 */
/* Quarantine records from..to-1 (their tokens), then poll until all those
 * acks came (5 s at most: the test's asserts tell what is missing). */
static void quarantine_and_wait(pixel_sink *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        ck_assert_int_eq(pixel_sink_quarantine(s, "{}", 2, (void *)(uintptr_t)i, NULL), 0);
    }
    for (int tries = 0; A.n < to && tries < 5000; tries++) {
        pixel_sink_poll(s, 0);
        usleep(1000);
    }
}

START_TEST(sink_fails_the_lines_a_failed_quarantine_fsync_covered)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);

    sync_calls = 0;
    pixel__sink_set_fdatasync(s, fdatasync_fails_once);
    quarantine_and_wait(s, 0, 16);
    ck_assert_int_eq(A.failed, 16);
    ck_assert_int_eq(A.quarantined, 0);
    ck_assert_int_eq(sync_calls, 1);
    ck_assert_msg(strstr(lastlog, "fsync failed") != NULL, "last log: %s", lastlog);
    quarantine_and_wait(s, 16, 32);
    ck_assert_int_eq(A.failed, 16);
    ck_assert_int_eq(A.quarantined, 16);
    for (int i = 0; i < 32; i++) {
        ck_assert_int_eq(A.status[i], A.order[i] < 16 ? PIXEL_EIO : PIXEL_SINK_QUARANTINED);
    }
    check_counters(s);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* The spool's fsync: fails the first time when armed. */
static int spool_fsync_calls, spool_fsync_fail;

static int spool_fsync_fails_once(int fd)
{
    spool_fsync_calls++;
    if (spool_fsync_fail) {
        spool_fsync_fail = 0;
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

/* Segment files in the sink's spool writer directory. */
static int spool_segments(pixel_sink *s)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '\\.seg$'",
             pixel_spool_writer_dir(pixel__sink_spool(s)));
    FILE *p = popen(cmd, "r");
    int n = -1;
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/*
 * A failed fsync of a spool segment: the events written to the segment since
 * its last good fsync are acked as failed (PIXEL_EIO), never as spooled, even
 * though a later fsync of the same file would succeed; the next event starts
 * a new segment, and events spooled there are acked as spooled.
 */
START_TEST(sink_fails_the_records_a_failed_spool_fsync_covered)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    int id = 0, first, segs;

    pixel__spool_set_fsync(pixel__sink_spool(s), spool_fsync_fails_once);
    ck_assert_int_eq(produce(s, id++), 0);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    fail_over(s, &id);
    ck_assert_int_eq(A.failed, 0);
    segs = spool_segments(s);
    ck_assert_int_ge(segs, 1);
    /* Five events in the spool, then an fsync that fails. */
    first = id;
    spool_fsync_fail = 1;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(produce(s, id++), 0);
    }
    ck_assert_int_eq(A.n, first);
    pixel_sink_poll(s, 10); /* a waiting poll fsyncs: it fails */
    ck_assert_int_eq(A.n, id);
    ck_assert_int_eq(A.failed, 5);
    for (int i = first; i < id; i++) {
        ck_assert_int_eq(A.status[i], PIXEL_EIO);
    }
    ck_assert_msg(strstr(lastlog, "fsync failed") != NULL || strstr(lastlog, "not acknowledged"),
                  "last log: %s", lastlog);
    /* The next events: a new segment, fsync'd and acked as spooled. */
    first = id;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(produce(s, id++), 0);
    }
    pixel_sink_poll(s, 10);
    ck_assert_int_eq(A.n, id);
    for (int i = first; i < id; i++) {
        ck_assert_int_eq(A.status[i], PIXEL_SINK_SPOOLED);
    }
    ck_assert_int_eq(spool_segments(s), segs + 1);
    pixel_sink_stats st;
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.events_failed, 5);
    check_counters(s);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

/*
 * A spool fsync that fails inside an append (the one completing a batch of
 * 16): the 15 events before it are acked as failed, the 16th is refused
 * (back-pressure: the host keeps it), and the events after it, in a new
 * segment, are acked as spooled by the next waiting poll; the spool does not
 * report the lost records to the sink a second time (it failed them).
 */
START_TEST(sink_goes_on_after_an_append_whose_batch_fsync_failed)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    int id = 0, first;

    pixel__spool_set_fsync(pixel__sink_spool(s), spool_fsync_fails_once);
    fail_over(s, &id);
    ck_assert_int_eq(A.failed, 0);
    first = id;
    spool_fsync_fail = 1;
    for (int i = 0; i < 15; i++) {
        ck_assert_int_eq(produce(s, id++), 0);
    }
    ck_assert_int_eq(A.n, first);
    ck_assert_int_ne(produce(s, id), 0); /* its append ran the failed fsync */
    ck_assert_int_eq(A.n, id);
    ck_assert_int_eq(A.failed, 15);
    /* refused for the failed fsync, not for a full spool */
    ck_assert_msg(strstr(lastlog, "the input is refused") != NULL && !strstr(lastlog, "back-pressure"),
                  "last log: %s", lastlog);
    first = id;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(produce(s, id++), 0);
    }
    lastlog[0] = '\0';
    pixel_sink_poll(s, 10);
    ck_assert_int_eq(A.n, id);
    for (int i = first; i < id; i++) {
        ck_assert_int_eq(A.status[i], PIXEL_SINK_SPOOLED);
    }
    ck_assert_msg(strstr(lastlog, "not durable") == NULL, "last log: %s", lastlog);
    check_counters(s);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

/*
 * A disk that loses what a failed fsync covered, as Linux may: the stand-in
 * below, on failure, cuts the file back to its size at the last good sync
 * (so the records or lines written since are gone) and fails every few
 * calls.  Whatever the order of events, quarantine lines, polls and
 * failures, every input is acked exactly once, and each one acked as
 * spooled or quarantined is really in the spool or the quarantine file.
 */
static struct {
    pthread_mutex_t mu;
    struct {
        dev_t dev;
        ino_t ino;
        off_t good;
    } f[1024];
    int n, calls, every;
} lossy = {PTHREAD_MUTEX_INITIALIZER, {{0, 0, 0}}, 0, 0, 3};

static int lossy_sync(int fd, off_t fresh_size)
{
    struct stat st;
    int i, fail;

    pthread_mutex_lock(&lossy.mu);
    ck_assert_int_eq(fstat(fd, &st), 0);
    for (i = 0; i < lossy.n; i++) {
        if (lossy.f[i].dev == st.st_dev && lossy.f[i].ino == st.st_ino) {
            break;
        }
    }
    if (i == lossy.n) {
        ck_assert_int_lt(lossy.n, 1024);
        lossy.f[i].dev = st.st_dev;
        lossy.f[i].ino = st.st_ino;
        lossy.f[i].good = fresh_size;
        lossy.n++;
    }
    fail = ++lossy.calls % lossy.every == 0;
    if (fail) {
        ck_assert_int_eq(ftruncate(fd, lossy.f[i].good), 0);
    } else {
        lossy.f[i].good = st.st_size; /* written before the sync: made durable */
    }
    pthread_mutex_unlock(&lossy.mu);
    if (fail) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static int lossy_spool_fsync(int fd)
{
    return lossy_sync(fd, 16); /* a new segment's header was fsync'd */
}

static int lossy_qfile_fdatasync(int fd)
{
    return lossy_sync(fd, 0);
}

START_TEST(sink_acks_as_durable_only_what_survives_failed_fsyncs)
{
    pixel_delivery_config *cfg = config("    segment_bytes: 4096\n");
    pixel_sink *s;
    unsigned char accepted[4096] = {0}, in_spool[4096] = {0}, in_qfile[4096] = {0};
    unsigned int seed = 12345;
    int id = 0, tries, naccepted = 0;
    char path[300], line[256];
    pixel_spool_segment *segs;
    size_t nsegs;
    FILE *f;

    /* Best-effort copies to the dead-letter topic (the spool while Kafka is
     * down) are written along, and must not disturb the count. */
    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.topic", "dlq", NULL), 0);
    s = sink(cfg);
    pixel__spool_set_fsync(pixel__sink_spool(s), lossy_spool_fsync);
    pixel__sink_set_fdatasync(s, lossy_qfile_fdatasync);
    set_brokers(0);
    for (tries = 0; pixel_sink_state_get(s) != PIXEL_SINK_SPOOL && tries < 600; tries++) {
        if (produce(s, id) == 0) {
            accepted[id] = 1;
            naccepted++;
        }
        id++;
        pixel_sink_poll(s, 50);
    }
    ck_assert_int_eq(pixel_sink_state_get(s), PIXEL_SINK_SPOOL);
    while (id < 3000) {
        unsigned int r = (seed = seed * 1103515245u + 12345u) >> 16;
        if (r % 8 < 4) {
            if (produce(s, id) == 0) {
                accepted[id] = 1;
                naccepted++;
            }
            id++;
        } else if (r % 8 < 6) {
            char q[64];
            snprintf(q, sizeof(q), "{\"q\":%d}", id);
            if (pixel_sink_quarantine(s, q, strlen(q), (void *)(uintptr_t)id, NULL) == 0) {
                accepted[id] = 1;
                naccepted++;
            }
            id++;
        } else if (r % 8 < 7) {
            pixel_sink_poll(s, 0);
        } else {
            pixel_sink_poll(s, 2);
        }
    }
    pixel_sink_flush(s, 30000, NULL);
    check_counters(s);
    pixel_sink_free(s);
    ck_assert_int_eq(acks_elsewhere, 0);
    ck_assert_int_eq(A.n, naccepted);
    ck_assert_int_gt(A.failed, 0);
    ck_assert_int_gt(A.spooled, 0);
    ck_assert_int_gt(A.quarantined, 0);
    /* What is really on disk. */
    snprintf(path, sizeof(path), "%s/spool", tmpdir);
    ck_assert_int_eq(pixel_spool_segments(path, &segs, &nsegs, NULL), 0);
    for (size_t i = 0; i < nsegs; i++) {
        pixel_spool_reader *rd;
        pixel_spool_msg m;
        int item;
        ck_assert_int_eq(pixel_spool_reader_open(&rd, segs[i].path, NULL), 0);
        while ((item = pixel_spool_reader_next(rd, &m, NULL, NULL, NULL)) > 0) {
            char v[64];
            int n;
            snprintf(v, sizeof(v), "%.*s", (int)(m.value_len < 63 ? m.value_len : 63),
                     (const char *)m.value);
            if (item == PIXEL_SPOOL_RECORD && !(m.flags & PIXEL_SPOOL_MSG_QUARANTINE) &&
                sscanf(v, "{\"eid\":\"e-%5d", &n) == 1 && n >= 0 && n < 4096) {
                in_spool[n] = 1;
            }
        }
        pixel_spool_reader_close(rd);
    }
    pixel_spool_segments_free(segs, nsegs);
    snprintf(path, sizeof(path), "%s/quarantine.jsonl", tmpdir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        int n;
        if (sscanf(line, "{\"q\":%d}", &n) == 1 && n >= 0 && n < 4096) {
            in_qfile[n] = 1;
        }
    }
    fclose(f);
    for (int i = 0; i < A.n; i++) {
        int t = A.order[i];
        ck_assert_msg(accepted[t], "input %d acked but refused", t);
        if (A.status[i] == PIXEL_SINK_SPOOLED) {
            ck_assert_msg(in_spool[t], "event %d acked as spooled, not in the spool", t);
        } else if (A.status[i] == PIXEL_SINK_QUARANTINED) {
            ck_assert_msg(in_qfile[t], "line %d acked as quarantined, not in the file", t);
        }
    }
    pixel_delivery_config_free(cfg);
}
END_TEST

/* A poll that waits takes the batch the syncer is working on first: its
 * acks (after a slow, 0.3 s, fdatasync) come before the delivery report of
 * an event that Kafka confirms during the wait, as in the test below for
 * lines that were still waiting.  The order tells, not a clock. */
START_TEST(sink_poll_that_waits_collects_the_batch_being_synced)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);

    sync_calls = 0;
    pixel__sink_set_fdatasync(s, fdatasync_slow);
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(pixel_sink_quarantine(s, "{}", 2, (void *)(uintptr_t)i, NULL), 0);
    }
    ck_assert_int_eq(produce(s, 100), 0);
    ck_assert_int_eq(A.n, 0);
    for (int tries = 0; A.n < 17 && tries < 30; tries++) {
        pixel_sink_poll(s, 1000);
    }
    ck_assert_int_eq(A.n, 17);
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(A.order[i], i);
        ck_assert_int_eq(A.status[i], PIXEL_SINK_QUARANTINED);
    }
    ck_assert_int_eq(A.order[16], 100);
    ck_assert_int_eq(A.status[16], PIXEL_SINK_DELIVERED);
    check_counters(s);
    pixel_sink_free(s);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* Events of three types, with and without a schema ID: each message's
 * headers must say what its own value says, also when the header lists of
 * delivered messages are used again for later ones. */
static const char *const typed_types[3] = {"page_view", "click", "search"};

/* Event id of the given type and schema ID (NULL: none), its type and
 * schema ID spelled out in the value, keyed by one of 7 users. */
static int produce_tagged(pixel_sink *s, int id, const char *type, const char *sid)
{
    char v[128], k[16];
    pixel_sink_msg m;

    snprintf(v, sizeof(v), "{\"eid\":\"e-%05d\",\"ev\":\"%s\",\"sid\":\"%s\"}", id, type,
             sid ? sid : "");
    snprintf(k, sizeof(k), "user-%d", id % 7);
    memset(&m, 0, sizeof(m));
    m.value = v;
    m.value_len = strlen(v);
    m.key = k;
    m.key_len = strlen(k);
    m.type = type;
    m.type_len = strlen(type);
    m.schema_id = sid;
    m.schema_id_len = sid ? strlen(sid) : 0;
    m.pipeline_version = "3";
    m.pipeline_version_len = 1;
    return pixel_sink_produce(s, &m, (void *)(uintptr_t)id, NULL);
}

static int produce_typed(pixel_sink *s, int id)
{
    return produce_tagged(s, id, typed_types[id % 3], id % 2 ? "s-1" : NULL);
}

/* One header's value as a string ("" when absent, "<dup>" when twice). */
static void header_text(rd_kafka_headers_t *h, const char *name, char *out, size_t size)
{
    const void *v;
    size_t n, count = 0;

    out[0] = '\0';
    for (size_t i = 0; rd_kafka_header_get(h, i, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        snprintf(out, size, "%.*s", (int)n, (const char *)v);
        count++;
    }
    if (count > 1) {
        snprintf(out, size, "<dup>");
    }
}

/* Reads "events" back; checks every message's headers against its value.
 * Returns the number of messages. */
static int consume_checking_headers(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(4);
    rd_kafka_t *c;
    int count = 0, idle = 0;

    rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mock), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", "check-headers", NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(c);
    for (int p = 0; p < 4; p++) {
        rd_kafka_topic_partition_list_add(tp, "events", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    while (idle < 10) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        rd_kafka_headers_t *h = NULL;
        char value[256], want_type[32], want_sid[32], type[64], sid[64], ver[64];
        int id;

        if (m == NULL) {
            idle++;
            continue;
        }
        idle = 0;
        if (m->err != 0) {
            rd_kafka_message_destroy(m);
            continue;
        }
        snprintf(value, sizeof(value), "%.*s", (int)m->len, (const char *)m->payload);
        ck_assert_int_eq(sscanf(value, "{\"eid\":\"e-%5d\",\"ev\":\"%31[a-z_]\",\"sid\":\"%31[^\"]",
                                &id, want_type, want_sid) >= 2,
                         1);
        if (strstr(value, "\"sid\":\"\"") != NULL) {
            want_sid[0] = '\0';
        }
        ck_assert_int_eq(rd_kafka_message_headers(m, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
        ck_assert_uint_eq(rd_kafka_header_cnt(h), want_sid[0] ? 3 : 2);
        header_text(h, "pixel-event-type", type, sizeof(type));
        header_text(h, "pixel-schema-id", sid, sizeof(sid));
        header_text(h, "pixel-pipeline-version", ver, sizeof(ver));
        ck_assert_str_eq(type, want_type);
        ck_assert_str_eq(sid, want_sid);
        ck_assert_str_eq(ver, "3");
        count++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return count;
}

START_TEST(sink_headers_match_each_event_when_lists_are_reused)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s = sink(cfg);
    int id = 0;

    /* Rounds of events with a flush between them: the later rounds are
     * produced with the header lists the earlier ones' reports gave back. */
    for (int round = 0; round < 4; round++) {
        for (int k = 0; k < 250; k++) {
            ck_assert_int_eq(produce_typed(s, id++), 0);
        }
        ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    }
    ck_assert_int_eq(A.delivered, id);
    check_counters(s);
    pixel_sink_free(s);
    ck_assert_int_eq(consume_checking_headers(), id);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* Events of 40 combinations of event type and schema ID (more than the
 * sink keeps header lists for), their type spelled out in the value. */
static int produce_combo(pixel_sink *s, int id)
{
    char type[16];
    snprintf(type, sizeof(type), "ev_%c", 'a' + id % 20);
    return produce_tagged(s, id, type, (id / 20) % 2 ? "s-1" : NULL);
}

/* The spooled records' headers against their values; returns how many. */
static int spooled_checking_headers(void)
{
    char dir[300];
    pixel_spool_segment *segs;
    size_t n;
    int total = 0;

    snprintf(dir, sizeof(dir), "%s/spool", tmpdir);
    if (pixel_spool_segments(dir, &segs, &n, NULL) != 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        pixel_spool_reader *r;
        pixel_spool_msg m;
        ck_assert_int_eq(pixel_spool_reader_open(&r, segs[i].path, NULL), 0);
        while (pixel_spool_reader_next(r, &m, NULL, NULL, NULL) == PIXEL_SPOOL_RECORD) {
            char value[256], want_type[32], want_sid[32] = "";
            int id;
            snprintf(value, sizeof(value), "%.*s", (int)m.value_len, m.value);
            ck_assert_int_ge(sscanf(value,
                                    "{\"eid\":\"e-%5d\",\"ev\":\"%31[a-z_]\",\"sid\":\"%31[^\"]",
                                    &id, want_type, want_sid),
                             2);
            ck_assert_ptr_nonnull(m.type);
            ck_assert_msg(m.type_len == strlen(want_type) &&
                              memcmp(m.type, want_type, m.type_len) == 0,
                          "spooled %s with type header %.*s", value, (int)m.type_len, m.type);
            if (want_sid[0]) {
                ck_assert_ptr_nonnull(m.schema_id);
                ck_assert_int_eq(memcmp(m.schema_id, want_sid, m.schema_id_len), 0);
            } else {
                ck_assert_ptr_null(m.schema_id);
            }
            ck_assert_uint_eq(m.pipeline_version_len, 1);
            total++;
        }
        pixel_spool_reader_close(r);
    }
    pixel_spool_segments_free(segs, n);
    return total;
}

/* Header lists used again through failover, switch-back, a fatal error
 * (a new producer) and a full local queue, with more combinations than the
 * sink keeps lists for: every message in Kafka and every record in the
 * spool carries its own event's headers, each input is acked once. */
START_TEST(sink_headers_stay_right_through_failover_and_recreate)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink_stats st;
    pixel_sink *s;
    int id = 0;

    ck_assert_int_eq(
        pixel_delivery_config_set(cfg, "kafka.properties.queue.buffering.max.messages", "40", NULL),
        0);
    s = sink(cfg);
    for (int k = 0; k < 600; k++) {
        ck_assert_int_eq(produce_combo(s, id++), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    id = fail_over_and_back(s, id, produce_combo, 100, 400);
    ck_assert_int_eq(rd_kafka_test_fatal_error(pixel__sink_kafka(s),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected by the test"),
                     0);
    produce_until(s, &id, PIXEL_SINK_SPOOL, NULL, 0);
    produce_until(s, &id, PIXEL_SINK_KAFKA, produce_combo, 0);
    for (int k = 0; k < 400; k++) {
        ck_assert_int_eq(produce_combo(s, id++), 0);
    }
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    check_counters(s);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_ge(st.failovers, 2);
    ck_assert_uint_ge(st.recoveries, 2);
    ck_assert_int_gt(A.spooled, 0);
    ck_assert_int_eq(A.delivered + A.spooled, id);
    ck_assert_int_eq(A.failed, 0);
    pixel_sink_free(s);
    ck_assert_int_eq(spooled_checking_headers(), A.spooled);
    ck_assert_int_ge(consume_checking_headers() + A.spooled, id);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* Acks of pixel_sink_quarantine_lines(): one token for every record. */
static int line_acks, line_acks_bad;

static void on_line_ack(void *token, int status, void *payload)
{
    (void)payload;
    if (token == (void *)&line_acks && status == PIXEL_SINK_QUARANTINED) {
        line_acks++;
    } else {
        line_acks_bad++;
    }
}

static pixel_sink *lines_sink(const pixel_delivery_config *cfg)
{
    line_acks = line_acks_bad = 0;
    return sink_acking(cfg, on_line_ack);
}

/* The lines of the quarantine file, into buf; returns how many. */
static int read_quarantine_file(char *buf, size_t size)
{
    char path[300];
    size_t n;
    int lines = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/quarantine.jsonl", tmpdir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        lines += buf[i] == '\n';
    }
    return lines;
}

/* Many records in one call: each in the file once, in order, each acked on
 * its own, each copied to the dead-letter topic; the last may lack its
 * newline. */
START_TEST(sink_quarantine_lines_takes_every_record)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s;
    pixel_sink_stats st;
    char lines[4096], file[8192];
    size_t len = 0, taken = 12345;

    ck_assert_int_eq(pixel_delivery_config_set(cfg, "quarantine.topic", "dlq", NULL), 0);
    s = lines_sink(cfg);
    for (int i = 0; i < 40; i++) {
        len += (size_t)snprintf(lines + len, sizeof(lines) - len, "{\"raw\":\"line %02d\"}%s", i,
                                i < 39 ? "\n" : "");
    }
    ck_assert_int_eq(pixel_sink_quarantine_lines(s, lines, len, &line_acks, &taken, NULL), 0);
    ck_assert_uint_eq(taken, len);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(line_acks, 40);
    ck_assert_int_eq(line_acks_bad, 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.quarantine_in, 40);
    ck_assert_uint_eq(st.quarantined, 40);
    ck_assert_uint_eq(st.quarantine_pending, 0);
    pixel_sink_free(s);
    ck_assert_int_eq(read_quarantine_file(file, sizeof(file)), 40);
    ck_assert_uint_eq(strlen(file), len + 1);
    ck_assert_int_eq(memcmp(file, lines, len), 0);
    ck_assert_int_eq(consume_count("dlq"), 40);
    pixel_delivery_config_free(cfg);
}
END_TEST

/* A write the file cannot take whole (a file size limit cuts it): the
 * records before the cut are taken and acked, the partial line is rolled
 * back, the rest is refused and taken when handed again. */
START_TEST(sink_quarantine_lines_takes_whole_records_of_a_short_write)
{
    pixel_delivery_config *cfg = config(NULL);
    pixel_sink *s;
    pixel_sink_stats st;
    char lines[1024], file[4096], path[300];
    size_t len = 0, taken = 0;
    struct rlimit rl;
    struct stat sb;

    s = lines_sink(cfg);
    for (int i = 0; i < 10; i++) {
        len += (size_t)snprintf(lines + len, sizeof(lines) - len,
                                "{\"raw\":\"line %02d ......\"}\n", i);
    }
    ck_assert_uint_eq(len, 250); /* 25 bytes a record */
    /* The file may grow by 3.4 records: the write stops inside the fourth. */
    snprintf(path, sizeof(path), "%s/quarantine.jsonl", tmpdir);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 0);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = 85;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ck_assert_int_eq(pixel_sink_quarantine_lines(s, lines, len, &line_acks, &taken, NULL),
                     PIXEL_DELIVERY_EFULL);
    ck_assert_uint_eq(taken, 75);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 75); /* the partial fourth line is gone */
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ck_assert_int_eq(
        pixel_sink_quarantine_lines(s, lines + taken, len - taken, &line_acks, &taken, NULL), 0);
    ck_assert_uint_eq(taken, 175);
    ck_assert_int_eq(pixel_sink_flush(s, 30000, NULL), 0);
    ck_assert_int_eq(line_acks, 10);
    ck_assert_int_eq(line_acks_bad, 0);
    pixel_sink_stats_get(s, &st);
    ck_assert_uint_eq(st.quarantine_in, 10);
    ck_assert_uint_eq(st.quarantined, 10);
    pixel_sink_free(s);
    ck_assert_int_eq(read_quarantine_file(file, sizeof(file)), 10);
    ck_assert_str_eq(file, lines);
    pixel_delivery_config_free(cfg);
}
END_TEST

static Suite *sink_suite(void)
{
    Suite *s = suite_create("sink");
    TCase *tc = tcase_create("config");
    TCase *tk = tcase_create("kafka");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, config_reports_unknown_key_with_line_and_column);
    tcase_add_test(tc, config_reports_bad_values_where_they_are);
    tcase_add_test(tc, config_overrides_and_reads_settings);
    tcase_add_test(tc, config_reads_back_the_users_kafka_properties);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tk, setup, teardown);
    tcase_set_timeout(tk, 120);
    tcase_add_test(tk, sink_acks_each_event_after_its_delivery_report);
    tcase_add_test(tk, sink_flush_sends_what_lingers);
    tcase_add_test(tk, sink_refuses_calls_from_its_own_callbacks);
    tcase_add_test(tk, sink_fails_over_to_the_spool_and_comes_back);
    tcase_add_test(tk, sink_lent_values_are_kept_until_their_ack);
    tcase_add_test(tk, sink_applies_back_pressure_when_the_spool_is_full);
    tcase_add_test(tk, sink_flush_waits_for_parked_records_without_spinning);
    tcase_add_test(tk, sink_quarantine_file_does_not_wait_for_kafka);
    tcase_add_test(tk, sink_syncs_quarantine_batches_in_the_background);
    tcase_add_test(tk, sink_fails_quarantine_lines_whose_fsync_failed);
    tcase_add_test(tk, sink_fails_the_lines_a_failed_quarantine_fsync_covered);
    tcase_add_test(tk, sink_fails_the_records_a_failed_spool_fsync_covered);
    tcase_add_test(tk, sink_goes_on_after_an_append_whose_batch_fsync_failed);
    tcase_add_test(tk, sink_acks_as_durable_only_what_survives_failed_fsyncs);
    tcase_add_test(tk, sink_poll_that_waits_collects_the_batch_being_synced);
    tcase_add_test(tk, sink_poll_syncs_waiting_quarantine_lines_before_it_waits);
    tcase_add_test(tk, sink_poll_syncs_waiting_spool_records_before_it_waits);
    tcase_add_test(tk, sink_survives_a_fatal_producer_error);
    tcase_add_test(tk, sink_retries_a_producer_it_could_not_recreate);
    tcase_add_test(tk, sink_stays_on_the_spool_when_a_dying_producer_delivers);
    tcase_add_test(tk, sink_keeps_records_parked_without_a_producer);
    tcase_add_test(tk, sink_spools_records_with_their_topics_without_a_producer);
    tcase_add_test(tk, sink_probes_a_new_producer_once);
    tcase_add_test(tk, sink_free_waits_for_the_copies_of_quarantine_lines);
    tcase_add_test(tk, sink_sends_quarantine_records_to_the_dead_letter_topic);
    tcase_add_test(tk, sink_headers_match_each_event_when_lists_are_reused);
    tcase_add_test(tk, sink_headers_stay_right_through_failover_and_recreate);
    tcase_add_test(tk, sink_quarantine_lines_takes_every_record);
    tcase_add_test(tk, sink_quarantine_lines_takes_whole_records_of_a_short_write);
    suite_add_tcase(s, tk);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sink_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
