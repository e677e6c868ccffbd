/*
 * The Kafka sink with failover to the spool (include/pixel/delivery.h).
 *
 * Acknowledgement rule: an input is acked only when it is durable, i.e. when
 * librdkafka's delivery report says Kafka has it (acks=all), or when the
 * spool fsync'd it.  Everything else follows from that:
 *
 * - A message Kafka could not take comes back in its failed delivery report
 *   with payload, key, topic and headers: that is exactly what we spool, so
 *   the sink keeps no copy of in-flight messages.
 * - Failover (KAFKA -> SPOOL): a failed delivery report, ALL_BROKERS_DOWN,
 *   or a fatal producer error.  Queued messages are purged so they reach the
 *   spool now rather than at message.timeout.ms.
 * - Probing (Flume's failover processor): while failed over, the next event
 *   after the penalty is sent to Kafka instead of the spool.  Its success
 *   switches back; its failure doubles the penalty (up to probe_max_ms).
 * - Back-pressure: when the spool cannot take a record, a new input is
 *   refused (PIXEL_DELIVERY_EFULL) and one that Kafka handed back is parked
 *   in memory until space appears.  Nothing is ever dropped.
 *
 * librdkafka runs its callbacks (delivery reports, errors, logs with
 * log.queue) from rd_kafka_poll() on our thread, so no locks are needed.
 * The one other thread is the quarantine file's syncer (fsync: batch): the
 * caller's thread writes the lines and hands a batch of waiting inputs over;
 * the syncer only runs fdatasync(); the caller's thread collects the result
 * and gives the acks, so callbacks never run anywhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "delivery_private.h"

#define HDR_TYPE    "pixel-event-type"
#define HDR_SCHEMA  "pixel-schema-id"
#define HDR_VERSION "pixel-pipeline-version"
#define POLL_EVERY  64
#define PROBE_BOXES 8

/* An input waiting for an fsync (spool or quarantine file). */
typedef struct waiter {
    void *token;
    int kind; /* KIND_* */
} waiter;

enum { KIND_EVENT = 0, KIND_QUARANTINE = 1 };

typedef struct waitlist {
    waiter *v;
    size_t n, cap;
    int64_t since_ms; /* when the oldest entry was added */
} waitlist;

/* A record the spool could not take yet: owned copies. */
typedef struct parked {
    struct parked *next;
    pixel_spool_msg m; /* pointers into data */
    void *token;
    int kind;
    char data[];
} parked;

/*
 * The quarantine file's background fsync.  Between a kick and its collect the
 * batch belongs to the sink and `want`/`done`/`rc`/`err` to the mutex; the
 * syncer thread touches nothing else.  A batch due while another is being
 * synced waits in q_wait for the next kick.
 */
typedef struct qsyncer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started; /* the thread runs: kicks are asynchronous */
    int busy;    /* a batch was handed over and not collected yet */
    int want, done, stop;
    int rc, err; /* the fdatasync's result, errno */
    int (*fdatasync)(int fd); /* fdatasync, or a test's stand-in */
    waitlist batch;
} qsyncer;

/*
 * Header lists kept for reuse.  A message's headers are librdkafka's
 * allocations: an object, its list and a block per header, made for every
 * message and freed with its delivery report, a large part of producing's
 * CPU (docs/delivery.md).  The headers of a delivered message say the same
 * as those of the next message with the same event type, schema ID and
 * pipeline version, so the delivery report takes them off the message
 * (rd_kafka_message_detach_headers) and the next such message is produced
 * with them, unchanged: the same bytes on the wire, without the
 * allocations.  One set of spare lists for each combination of the three
 * values (HSET_MAX at most; other combinations get lists of their own, as
 * before), at most HSET_SPARE lists in all sets together (a list takes
 * about 350 bytes: a few MB at most, however many messages were in flight
 * at once).  Which set a delivered list
 * belongs to is looked up by its address (struct hlists) rather than read
 * from the list: by the time its delivery report comes the list has left
 * the caches, and reading it cost as much as freeing it.
 */
#define HSET_MAX   16
#define HSET_SPARE 8192
#define HL_DEFER   16

typedef struct hset {
    /* The header values, in the order kafka_put() adds them, with their
     * names; n of them. */
    const char *name[3];
    char *value[3];
    size_t len[3];
    int n;
    rd_kafka_headers_t **spare;
    size_t nspare, cap;
} hset;

/* The reusable lists, by address: which set each belongs to.  Open
 * addressing, linear probing; cap is 0 or a power of two. */
typedef struct hlist_entry {
    rd_kafka_headers_t *hd; /* NULL: free slot */
    int set;
} hlist_entry;

typedef struct hlists {
    hlist_entry *v;
    size_t n, cap;
} hlists;

typedef struct topic_entry {
    char *type; /* the event type it serves (topic_template) */
    rd_kafka_topic_t *rkt;
} topic_entry;

struct pixel_sink {
    const pixel_delivery_config *cfg;
    pixel_sink_options o;
    unsigned int in_callback; /* inside the host's ack or log callback: no calls back in */
    rd_kafka_t *rk;
    rd_kafka_topic_t *one_topic; /* kafka.topic */
    rd_kafka_topic_t *q_rkt;     /* quarantine.topic */
    topic_entry *topics;         /* kafka.topic_template, by type */
    size_t ntopics;
    pixel_spool *spool;
    uint64_t spool_failures; /* pixel__spool_sync_failures() when last looked at */
    int q_fd;
    waitlist spool_wait, q_wait;
    qsyncer qs;
    parked *park_head, *park_tail;
    size_t nparked;
    int state;
    int64_t probe_at_ms, failed_at_ms;
    long penalty_ms;
    int probe_inflight;
    /* A probe message's opaque is one of these boxes (holding the input's
     * token), so its delivery report is told apart from an event's.  A few
     * boxes, because an old probe may still be in flight when a new
     * failover episode probes again. */
    struct probe_box {
        void *token;
        int used;
    } probes[PROBE_BOXES];
    struct probe_box *probe_current; /* the probe whose verdict we wait for */
    char nack;                       /* its address tags copies that ack nobody */
    hset hsets[HSET_MAX];            /* header lists for reuse */
    size_t nspare_all;               /* their spare lists, all sets together */
    int nhsets;
    hlists hl;
    rd_kafka_headers_t *hl_defer[HL_DEFER]; /* hset_return_later() */
    int hl_defer_at;
    int purge_wanted, recreate_wanted, full_logged;
    /* With recreate_wanted and no producer (creating one failed): when to
     * try again.  The function that creates it (tests make it fail). */
    int64_t restart_at_ms;
    rd_kafka_t *(*kafka_new)(rd_kafka_type_t, rd_kafka_conf_t *, char *, size_t);
    unsigned int since_poll; /* records since the last rd_kafka_poll() */
    uint64_t inflight, spooled_since_switch;
    pixel_sink_stats st;
    char errbuf[512];
};

static void logf_(pixel_sink *s, int level, const char *fmt, ...) PIXEL_D_PRINTF(3, 4);

static void logf_(pixel_sink *s, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (s->o.log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->in_callback++;
    s->o.log(level, line, s->o.log_payload);
    s->in_callback--;
}

/* A call into the sink from one of its own callbacks: refused (the sink may
 * be walking the very list the call would change). */
static int reentered(pixel_error *err)
{
    return pixel__d_error(err, PIXEL_EINVAL, NULL, 0, 0,
                          "a callback of the sink called the sink (not allowed)");
}

static void ack(pixel_sink *s, void *token, int kind, int status)
{
    if (token == &s->nack) {
        return;
    }
    if (kind == KIND_QUARANTINE) {
        s->st.quarantine_pending--;
        if (status > 0) {
            s->st.quarantined++;
            status = PIXEL_SINK_QUARANTINED;
        } else {
            s->st.quarantine_failed++;
        }
    } else {
        s->st.events_pending--;
        if (status == PIXEL_SINK_DELIVERED) {
            s->st.delivered++;
        } else if (status == PIXEL_SINK_SPOOLED) {
            s->st.spooled++;
        } else {
            s->st.events_failed++;
        }
    }
    if (s->o.ack != NULL) {
        s->in_callback++;
        s->o.ack(token, status, s->o.ack_payload);
        s->in_callback--;
    }
}

/* ---- wait lists (inputs waiting for an fsync) ---------------------------- */

static int wait_add(waitlist *w, void *token, int kind)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        waiter *nv = realloc(w->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return -1;
        }
        w->v = nv;
        w->cap = cap;
    }
    if (w->n == 0) {
        w->since_ms = pixel__d_mono_ms();
    }
    w->v[w->n].token = token;
    w->v[w->n].kind = kind;
    w->n++;
    return 0;
}

static void wait_ack_all(pixel_sink *s, waitlist *w, int status)
{
    /* Entries can be added by the callbacks; take the list first. */
    size_t n = w->n;

    w->n = 0;
    for (size_t i = 0; i < n; i++) {
        ack(s, w->v[i].token, w->v[i].kind,
            w->v[i].kind == KIND_QUARANTINE ? PIXEL_SINK_QUARANTINED : status);
    }
}

/* Every input of w acked as not durable (status < 0), whatever its kind. */
static void wait_fail_all(pixel_sink *s, waitlist *w, int status)
{
    size_t n = w->n;

    w->n = 0;
    for (size_t i = 0; i < n; i++) {
        ack(s, w->v[i].token, w->v[i].kind, status);
    }
}

static void spool_synced(pixel_sink *s)
{
    wait_ack_all(s, &s->spool_wait, PIXEL_SINK_SPOOLED);
}

/*
 * After any call that may have fsync'd the spool: when an fsync failed
 * (pixel__spool_sync_failures() moved), the records waiting for one are not
 * durable, whatever a later fsync says (spool.c, sync_fd): their inputs are
 * acked as failed, for the host to send again.  Returns 1 when it saw a
 * new failure.
 */
static int spool_check(pixel_sink *s)
{
    uint64_t f = pixel__spool_sync_failures(s->spool);

    if (f == s->spool_failures) {
        return 0;
    }
    s->spool_failures = f;
    pixel__spool_failures_seen(s->spool);
    if (s->spool_wait.n > 0) {
        logf_(s, PIXEL_LOG_ERR,
              "spool: an fsync failed: %zu inputs written since the last good one are not "
              "acknowledged as durable (acked as failed: the host sends them again)",
              s->spool_wait.n);
        wait_fail_all(s, &s->spool_wait, PIXEL_EIO);
    }
    return 1;
}

static int sync_spool(pixel_sink *s)
{
    pixel_error e;

    if (s->spool_wait.n == 0) {
        return 0;
    }
    memset(&e, 0, sizeof(e));
    if (pixel_spool_sync(s->spool, &e) < 0) {
        logf_(s, PIXEL_LOG_ERR, "spool: %s", e.text);
        spool_check(s);
        return -1;
    }
    spool_synced(s);
    return 0;
}

static void *qsync_main(void *arg)
{
    pixel_sink *s = arg;
    qsyncer *q = &s->qs;

    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        if (!q->want) {
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        q->want = 0;
        pthread_mutex_unlock(&q->mu);
        int rc = q->fdatasync(s->q_fd);
        int e = errno;
        pthread_mutex_lock(&q->mu);
        q->rc = rc;
        q->err = e;
        q->done = 1;
        pthread_cond_broadcast(&q->cv); /* a caller may wait for it */
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void qsync_start(pixel_sink *s)
{
    qsyncer *q = &s->qs;

    if (s->q_fd < 0 || s->cfg->fsync != PIXEL_SPOOL_FSYNC_BATCH) {
        return; /* never: nothing to sync; always: synced in line, record by record */
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    /* Without the thread every sync runs in line, as it did before. */
    q->started = pthread_create(&q->th, NULL, qsync_main, s) == 0;
    if (!q->started) {
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
    }
}

/*
 * The quarantine file's fdatasync failed (errno e).  A retry proves nothing:
 * the kernel may have dropped the pages it could not write and report the
 * next sync as a success (Linux does).  So the lines that sync covered (the
 * batch handed to the syncer) and those written since (q_wait: their pages
 * may have gone with the same error) are acked as failed, for the host to
 * send again; lines written from now on are synced as usual.
 */
static void qfile_sync_failed(pixel_sink *s, int e)
{
    size_t n = s->qs.batch.n + s->q_wait.n;

    logf_(s, PIXEL_LOG_ERR,
          "quarantine file %s: fsync failed: %s; %zu lines written since the last good fsync are "
          "not acknowledged as durable (acked as failed: the host sends them again)",
          s->cfg->q_file, strerror(e), n);
    wait_fail_all(s, &s->qs.batch, PIXEL_EIO);
    wait_fail_all(s, &s->q_wait, PIXEL_EIO);
}

/* The finished batch's acks (or, when its fdatasync failed, its failure: see
 * qfile_sync_failed).  With block, waits for a batch in progress. */
static void qsync_collect(pixel_sink *s, int block)
{
    qsyncer *q = &s->qs;
    int done, rc, e;

    if (!q->busy) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    while (block && !q->done) {
        pthread_cond_wait(&q->cv, &q->mu);
    }
    done = q->done;
    rc = q->rc;
    e = q->err;
    q->done = 0;
    pthread_mutex_unlock(&q->mu);
    if (!done) {
        return;
    }
    q->busy = 0;
    if (rc < 0) {
        qfile_sync_failed(s, e);
        return;
    }
    wait_ack_all(s, &q->batch, PIXEL_SINK_QUARANTINED);
}

/* fsync the quarantine file now and ack what waits for it (after the batch
 * the syncer may be working on). */
static int sync_qfile(pixel_sink *s)
{
    qsync_collect(s, 1);
    if (s->q_wait.n == 0) {
        return 0;
    }
    if (s->cfg->fsync != PIXEL_SPOOL_FSYNC_NEVER && s->qs.fdatasync(s->q_fd) < 0) {
        qfile_sync_failed(s, errno);
        return -1;
    }
    wait_ack_all(s, &s->q_wait, PIXEL_SINK_QUARANTINED);
    return 0;
}

/* Hand what waits in q_wait to the syncer; in line without one. */
static int qfile_kick(pixel_sink *s)
{
    qsyncer *q = &s->qs;
    waitlist t;

    if (!q->started) {
        return sync_qfile(s);
    }
    qsync_collect(s, 0);
    if (q->busy) {
        /* One batch at a time; the waiting list grows meanwhile.  Past four
         * batches the disk is slower than the input: wait for it (the
         * caller feels it as back-pressure, as it did before). */
        if (s->q_wait.n < 4 * (size_t)s->cfg->fsync_batch) {
            return 0;
        }
        qsync_collect(s, 1);
    }
    if (s->q_wait.n == 0) {
        return 0;
    } else {
        /* The waiting list becomes the batch; the batch's (empty) array is
         * reused for the next waiters. */
        t = q->batch;
        q->batch = s->q_wait;
        s->q_wait = t;
        s->q_wait.n = 0;
    }
    q->busy = 1;
    pthread_mutex_lock(&q->mu);
    q->want = 1;
    q->done = 0;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void qsync_stop(pixel_sink *s)
{
    qsyncer *q = &s->qs;

    if (!q->started) {
        free(q->batch.v);
        return;
    }
    qsync_collect(s, 1);
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->th, NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    q->started = 0;
    free(q->batch.v);
}

/* ---- spool side ------------------------------------------------------------ */

/* Append to the spool; ack now or when the batch is fsync'd.  0 or a status. */
static int spool_put(pixel_sink *s, const pixel_spool_msg *m, void *token, int kind)
{
    pixel_error e;
    int rc;

    memset(&e, 0, sizeof(e));
    if (m->timestamp_ms == 0) {
        /* Stamped only when spooled: a clock read per event costs. */
        pixel_spool_msg stamped = *m;
        stamped.timestamp_ms = pixel__d_wall_ms();
        rc = pixel_spool_append(s->spool, &stamped, &e);
    } else {
        rc = pixel_spool_append(s->spool, m, &e);
    }
    if (spool_check(s) && rc < 0) {
        /* its own append ran the fsync that failed: refused, not spooled
           (the host sends it again); the spool is not full */
        logf_(s, PIXEL_LOG_ERR, "spool: %s: the input is refused (the host sends it again)",
              e.text);
        return PIXEL_DELIVERY_EFULL;
    }
    if (rc < 0) {
        if (!s->full_logged) {
            logf_(s, PIXEL_LOG_ERR,
                  "spool cannot take records (%s): back-pressure, inputs are not acknowledged "
                  "until space is freed",
                  e.text);
            s->full_logged = 1;
        }
        return rc == PIXEL_DELIVERY_EFULL ? rc : PIXEL_DELIVERY_EFULL;
    }
    if (s->full_logged) {
        logf_(s, PIXEL_LOG_NOTICE, "spool takes records again: back-pressure released");
        s->full_logged = 0;
    }
    s->spooled_since_switch++;
    if (wait_add(&s->spool_wait, token, kind) < 0) {
        /* Cannot remember the token: make it durable now instead. */
        if (pixel_spool_sync(s->spool, NULL) < 0) {
            spool_check(s);
            return PIXEL_DELIVERY_EFULL;
        }
        spool_synced(s);
        ack(s, token, kind, PIXEL_SINK_SPOOLED);
        return 0;
    }
    if (rc == 1) {
        spool_synced(s); /* the fsync covered every earlier record too */
    }
    return 0;
}

static parked *park_new(const pixel_spool_msg *m, void *token, int kind)
{
    size_t n = m->topic_len + m->key_len + m->value_len + m->type_len + m->schema_id_len +
               m->pipeline_version_len;
    parked *p = malloc(sizeof(*p) + n + 1);
    char *d;

    if (p == NULL) {
        return NULL;
    }
    p->next = NULL;
    p->m = *m;
    p->token = token;
    p->kind = kind;
    d = p->data;
#define COPY(f)                                                                                    \
    if (m->f != NULL) {                                                                            \
        memcpy(d, m->f, m->f##_len);                                                               \
        p->m.f = d;                                                                                \
        d += m->f##_len;                                                                           \
    }
    COPY(topic)
    COPY(key)
    COPY(value)
    COPY(type)
    COPY(schema_id)
    COPY(pipeline_version)
#undef COPY
    return p;
}

/* Spool a record Kafka handed back; park it when the spool is full. */
static void spool_or_park(pixel_sink *s, const pixel_spool_msg *m, void *token, int kind)
{
    parked *p;

    if (s->park_head == NULL && spool_put(s, m, token, kind) == 0) {
        return;
    }
    p = park_new(m, token, kind);
    if (p == NULL) {
        /* Out of memory with nowhere to put it: the input cannot be made
         * durable.  Say so through its ack rather than pretending. */
        logf_(s, PIXEL_LOG_ERR, "out of memory while parking a record: input not acknowledged");
        ack(s, token, kind, PIXEL_DELIVERY_EFULL);
        return;
    }
    if (s->park_tail != NULL) {
        s->park_tail->next = p;
    } else {
        s->park_head = p;
    }
    s->park_tail = p;
    s->nparked++;
}

/* ---- Kafka side -------------------------------------------------------------- */

static void switch_to_spool(pixel_sink *s, const char *why)
{
    int64_t now = pixel__d_mono_ms();

    if (s->state == PIXEL_SINK_SPOOL) {
        return;
    }
    s->state = PIXEL_SINK_SPOOL;
    s->penalty_ms = s->cfg->probe_initial_ms;
    s->probe_at_ms = now + s->penalty_ms;
    s->failed_at_ms = now;
    s->spooled_since_switch = 0;
    s->purge_wanted = 1;
    s->st.failovers++;
    logf_(s, PIXEL_LOG_WARNING,
          "kafka: cannot take events (%s): failing over to the spool %s; probing again in %ld ms",
          why, pixel_spool_writer_dir(s->spool), s->penalty_ms);
}

static void switch_to_kafka(pixel_sink *s)
{
    if (s->state == PIXEL_SINK_KAFKA) {
        return;
    }
    s->state = PIXEL_SINK_KAFKA;
    s->probe_inflight = 0;
    s->probe_current = NULL;
    s->st.recoveries++;
    logf_(s, PIXEL_LOG_NOTICE,
          "kafka: takes events again after %" PRId64 " ms: switching back from the spool "
          "(%" PRIu64 " records spooled meanwhile; run pixel-replay)",
          pixel__d_mono_ms() - s->failed_at_ms, s->spooled_since_switch);
}

static void probe_failed(pixel_sink *s, const char *why)
{
    s->probe_inflight = 0;
    s->penalty_ms =
        s->penalty_ms * 2 > s->cfg->probe_max_ms ? s->cfg->probe_max_ms : s->penalty_ms * 2;
    s->probe_at_ms = pixel__d_mono_ms() + s->penalty_ms;
    s->purge_wanted = 1;
    logf_(s, PIXEL_LOG_INFO, "kafka: probe failed (%s); next probe in %ld ms", why, s->penalty_ms);
}

/* Errors that say "this message", not "Kafka": spool it, but do not fail over. */
int pixel__kafka_message_error(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_MSG ||
           e == RD_KAFKA_RESP_ERR_INVALID_RECORD || e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE;
}

static void header(rd_kafka_headers_t *h, const char *name, const char **v, size_t *len)
{
    const void *val = NULL;
    size_t size = 0;

    if (h != NULL && rd_kafka_header_get_last(h, name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        *v = val != NULL ? val : "";
        *len = size;
    } else {
        *v = NULL;
        *len = 0;
    }
}

/* ---- header lists for reuse (see struct hset) ------------------------------ */

static const char *const hdr_names[3] = {HDR_TYPE, HDR_SCHEMA, HDR_VERSION};

/* The headers m gets, in order: which of hdr_names (kind), value, length. */
static int header_values(const pixel_spool_msg *m, int *kind, const char **value, size_t *len)
{
    const char *v[3] = {m->type, m->schema_id, m->pipeline_version};
    size_t l[3] = {m->type_len, m->schema_id_len, m->pipeline_version_len};
    int n = 0;

    for (int i = 0; i < 3; i++) {
        if (v[i] != NULL) {
            kind[n] = i;
            value[n] = v[i];
            len[n++] = l[i];
        }
    }
    return n;
}

/* The set for these headers: found, or added while there is room; NULL
 * when the table is full (or out of memory). */
static hset *hset_for(pixel_sink *s, const int *kind, const char *const *value, const size_t *len,
                      int n)
{
    hset *h;

    for (int i = 0; i < s->nhsets; i++) {
        int j = 0;
        h = &s->hsets[i];
        if (h->n != n) {
            continue;
        }
        while (j < n && h->name[j] == hdr_names[kind[j]] && h->len[j] == len[j] &&
               memcmp(h->value[j], value[j], len[j]) == 0) {
            j++;
        }
        if (j == n) {
            return h;
        }
    }
    if (s->nhsets == HSET_MAX) {
        return NULL;
    }
    h = &s->hsets[s->nhsets];
    memset(h, 0, sizeof(*h));
    for (int j = 0; j < n; j++) {
        h->name[j] = hdr_names[kind[j]];
        h->len[j] = len[j];
        if ((h->value[j] = malloc(len[j] + 1)) == NULL) {
            while (j-- > 0) {
                free(h->value[j]);
            }
            return NULL;
        }
        memcpy(h->value[j], value[j], len[j]);
    }
    h->n = n;
    s->nhsets++;
    return h;
}

static size_t hl_slot(const hlists *t, const rd_kafka_headers_t *hd)
{
    uint64_t x = (uint64_t)(uintptr_t)hd;

    x ^= x >> 29;
    x *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(x >> 32) & (t->cap - 1);
}

/* The slot holding hd, or the free slot where it would go. */
static size_t hl_find(const hlists *t, const rd_kafka_headers_t *hd)
{
    size_t i = hl_slot(t, hd);

    while (t->v[i].hd != NULL && t->v[i].hd != hd) {
        i = (i + 1) & (t->cap - 1);
    }
    return i;
}

/* Forget hd (a list about to be destroyed, or a new one at an address a
 * forgotten list had). */
static void hl_del(hlists *t, const rd_kafka_headers_t *hd)
{
    size_t i, j;

    if (t->n == 0 || t->v[i = hl_find(t, hd)].hd == NULL) {
        return;
    }
    /* Backward shift: move up the entries after it that probed past it. */
    t->v[i].hd = NULL;
    t->n--;
    for (j = (i + 1) & (t->cap - 1); t->v[j].hd != NULL; j = (j + 1) & (t->cap - 1)) {
        size_t home = hl_slot(t, t->v[j].hd);
        /* j's entry may fill the hole at i unless its home lies in (i, j]. */
        if (((j - home) & (t->cap - 1)) >= ((j - i) & (t->cap - 1))) {
            t->v[i] = t->v[j];
            t->v[j].hd = NULL;
            i = j;
        }
    }
}

/* Remember that hd is set's.  0, or -1 when out of memory. */
static int hl_add(hlists *t, rd_kafka_headers_t *hd, int set)
{
    size_t i;

    if ((t->n + 1) * 2 > t->cap) {
        hlists nt = {NULL, 0, t->cap ? t->cap * 2 : 1024};
        if ((nt.v = calloc(nt.cap, sizeof(*nt.v))) == NULL) {
            return -1;
        }
        for (size_t k = 0; k < t->cap; k++) {
            if (t->v[k].hd != NULL) {
                nt.v[hl_find(&nt, t->v[k].hd)] = t->v[k];
                nt.n++;
            }
        }
        free(t->v);
        *t = nt;
    }
    i = hl_find(t, hd);
    if (t->v[i].hd == NULL) {
        t->n++;
    }
    t->v[i].hd = hd;
    t->v[i].set = set;
    return 0;
}

/* A spare list of the set, or NULL. */
static rd_kafka_headers_t *hset_take(pixel_sink *s, hset *h)
{
    if (h == NULL || h->nspare == 0) {
        return NULL;
    }
    s->nspare_all--;
    return h->spare[--h->nspare];
}

/* Keep a list for the set's next message; destroy it when there is no
 * room (or it is not one of the sets'). */
static void hset_keep(pixel_sink *s, hset *h, rd_kafka_headers_t *hd)
{
    if (h != NULL && s->nspare_all >= HSET_SPARE) {
        h = NULL; /* enough kept already */
    }
    if (h != NULL && h->nspare == h->cap && h->cap < HSET_SPARE) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        rd_kafka_headers_t **nv = realloc(h->spare, cap * sizeof(*nv));
        if (nv != NULL) {
            h->spare = nv;
            h->cap = cap;
        }
    }
    if (h != NULL && h->nspare < h->cap) {
        h->spare[h->nspare++] = hd;
        s->nspare_all++;
    } else {
        hl_del(&s->hl, hd);
        rd_kafka_headers_destroy(hd);
    }
}

/* A delivered message's list back to its set. */
static void hset_return(pixel_sink *s, rd_kafka_headers_t *hd)
{
    size_t i = s->hl.n > 0 ? hl_find(&s->hl, hd) : 0;

    hset_keep(s, s->hl.n > 0 && s->hl.v[i].hd == hd ? &s->hsets[s->hl.v[i].set] : NULL, hd);
}

/*
 * A delivered message's list, back to its set HL_DEFER reports later: its
 * slot in the table is fetched into the cache now and read then, so that
 * the lookup does not wait for memory (delivery reports come in bursts of
 * a request's messages, one report after another).
 */
static void hset_return_later(pixel_sink *s, rd_kafka_headers_t *hd)
{
    rd_kafka_headers_t **slot = &s->hl_defer[s->hl_defer_at];

    if (s->hl.cap > 0) {
        __builtin_prefetch(&s->hl.v[hl_slot(&s->hl, hd)]);
    }
    if (*slot != NULL) {
        hset_return(s, *slot);
    }
    *slot = hd;
    s->hl_defer_at = (s->hl_defer_at + 1) % HL_DEFER;
}

/* Every list still waiting in hset_return_later(), back to its set now. */
static void hset_return_all(pixel_sink *s)
{
    for (int i = 0; i < HL_DEFER; i++) {
        if (s->hl_defer[i] != NULL) {
            hset_return(s, s->hl_defer[i]);
            s->hl_defer[i] = NULL;
        }
    }
}

static void hsets_free(pixel_sink *s)
{
    hset_return_all(s);
    for (int i = 0; i < s->nhsets; i++) {
        hset *h = &s->hsets[i];
        while (h->nspare > 0) {
            rd_kafka_headers_destroy(h->spare[--h->nspare]);
        }
        free(h->spare);
        for (int j = 0; j < h->n; j++) {
            free(h->value[j]);
        }
    }
    s->nhsets = 0;
    s->nspare_all = 0;
    free(s->hl.v);
    memset(&s->hl, 0, sizeof(s->hl));
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    pixel_sink *s = opaque;
    void *token = m->_private;
    struct probe_box *box = NULL;
    int is_probe = 0;
    int kind = (s->q_rkt != NULL && m->rkt == s->q_rkt) ? KIND_QUARANTINE : KIND_EVENT;
    rd_kafka_headers_t *h = NULL;
    pixel_spool_msg sm;

    (void)rk;
    s->inflight--;
    for (int i = 0; i < PROBE_BOXES; i++) {
        if (token == &s->probes[i]) {
            box = &s->probes[i];
        }
    }
    if (box != NULL) {
        token = box->token;
        box->used = 0;
        is_probe = (box == s->probe_current);
        if (is_probe) {
            s->probe_current = NULL;
        }
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (s->nhsets > 0) {
            /* The headers for a later message (struct hset).  The message
             * is librdkafka's, not constant: it is destroyed after this
             * callback, without the headers taken off it. */
            rd_kafka_headers_t *hd = NULL;
            if (rd_kafka_message_detach_headers((rd_kafka_message_t *)m, &hd) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR &&
                hd != NULL) {
                hset_return_later(s, hd);
            }
        }
        if (s->state == PIXEL_SINK_SPOOL && !s->recreate_wanted) {
            switch_to_kafka(s);
        } else if (is_probe) {
            /* Its producer failed fatally (recreate_wanted): the sink stays
             * on the spool until a probe through the new one answers. */
            s->probe_inflight = 0;
        }
        ack(s, token, kind,
            kind == KIND_QUARANTINE ? PIXEL_SINK_QUARANTINED : PIXEL_SINK_DELIVERED);
        return;
    }
    if (pixel__kafka_message_error(m->err)) {
        logf_(s, PIXEL_LOG_ERR, "kafka: message refused (%s): spooled for inspection",
              rd_kafka_err2str(m->err));
    } else if (s->state == PIXEL_SINK_KAFKA) {
        switch_to_spool(s, rd_kafka_err2str(m->err));
    } else if (is_probe) {
        probe_failed(s, rd_kafka_err2str(m->err));
    }
    memset(&sm, 0, sizeof(sm));
    rd_kafka_message_headers(m, &h);
    if (h != NULL) {
        hl_del(&s->hl, h); /* destroyed with the message */
    }
    sm.topic = rd_kafka_topic_name(m->rkt);
    sm.topic_len = strlen(sm.topic);
    sm.key = m->key;
    sm.key_len = m->key_len;
    sm.value = m->payload != NULL ? m->payload : "";
    sm.value_len = m->len;
    header(h, HDR_TYPE, &sm.type, &sm.type_len);
    header(h, HDR_SCHEMA, &sm.schema_id, &sm.schema_id_len);
    header(h, HDR_VERSION, &sm.pipeline_version, &sm.pipeline_version_len);
    sm.timestamp_ms = pixel__d_wall_ms();
    sm.flags = kind == KIND_QUARANTINE ? PIXEL_SPOOL_MSG_QUARANTINE : 0;
    spool_or_park(s, &sm, token, kind);
}

static void on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    pixel_sink *s = opaque;

    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        s->recreate_wanted = 1;
        switch_to_spool(s, why);
    } else if (e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        switch_to_spool(s, reason);
    } else {
        logf_(s, PIXEL_LOG_DEBUG, "kafka: %s", reason);
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    pixel_sink *s = rd_kafka_opaque(rk);

    logf_(s, level < PIXEL_LOG_ERR ? PIXEL_LOG_ERR : level, "librdkafka %s: %s", fac, buf);
}

static int kafka_start(pixel_sink *s, pixel_error *err)
{
    rd_kafka_conf_t *kc = pixel__kafka_conf(s->cfg, err);

    if (kc == NULL) {
        return PIXEL_ECONFIG;
    }
    rd_kafka_conf_set_opaque(kc, s);
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_log_cb(kc, on_log);
    s->rk = s->kafka_new(RD_KAFKA_PRODUCER, kc, s->errbuf, sizeof(s->errbuf));
    if (s->rk == NULL) {
        rd_kafka_conf_destroy(kc);
        return pixel__d_error(err, PIXEL_DELIVERY_EKAFKA, s->cfg->source, 0, 0,
                              "kafka: cannot create the producer: %s", s->errbuf);
    }
    /* Logs join the main queue, served by rd_kafka_poll() on our thread. */
    rd_kafka_set_log_queue(s->rk, NULL);
    if (s->cfg->topic != NULL) {
        s->one_topic = rd_kafka_topic_new(s->rk, s->cfg->topic, NULL);
    }
    if (s->cfg->q_topic != NULL) {
        s->q_rkt = rd_kafka_topic_new(s->rk, s->cfg->q_topic, NULL);
    }
    return 0;
}

static void kafka_stop(pixel_sink *s)
{
    for (size_t i = 0; i < s->ntopics; i++) {
        rd_kafka_topic_destroy(s->topics[i].rkt);
        free(s->topics[i].type);
    }
    free(s->topics);
    s->topics = NULL;
    s->ntopics = 0;
    if (s->one_topic != NULL) {
        rd_kafka_topic_destroy(s->one_topic);
        s->one_topic = NULL;
    }
    if (s->q_rkt != NULL) {
        rd_kafka_topic_destroy(s->q_rkt);
        s->q_rkt = NULL;
    }
    if (s->rk != NULL) {
        rd_kafka_destroy(s->rk);
        s->rk = NULL;
    }
}

/* kafka.topic_template filled in for an event type (type already defaulted). */
static void topic_name(const pixel_sink *s, const char *type, size_t type_len, char *name,
                       size_t size)
{
    const char *tpl = s->cfg->topic_template;
    const char *at = strstr(tpl, "{type}");
    size_t n = (size_t)snprintf(name, size, "%.*s%.*s%s", (int)(at - tpl), tpl, (int)type_len,
                                type, at + 6);

    /* Kafka topic names allow [A-Za-z0-9._-]; keep odd types from failing. */
    for (size_t i = (size_t)(at - tpl); i < n && i < size - 1; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            name[i] = '_';
        }
    }
}

/* The topic handle for an event type (NULL type: "unknown"); NULL without
 * a producer. */
static rd_kafka_topic_t *topic_for(pixel_sink *s, const char *type, size_t type_len)
{
    char name[256];
    topic_entry *nt;

    if (s->rk == NULL) {
        return NULL; /* none until recreate() makes one */
    }
    if (s->one_topic != NULL) {
        return s->one_topic;
    }
    if (type == NULL || type_len == 0) {
        type = "unknown";
        type_len = 7;
    }
    for (size_t i = 0; i < s->ntopics; i++) {
        if (strlen(s->topics[i].type) == type_len &&
            memcmp(s->topics[i].type, type, type_len) == 0) {
            return s->topics[i].rkt;
        }
    }
    topic_name(s, type, type_len, name, sizeof(name));
    nt = realloc(s->topics, (s->ntopics + 1) * sizeof(*nt));
    if (nt == NULL) {
        return NULL;
    }
    s->topics = nt;
    nt[s->ntopics].type = strndup(type, type_len);
    nt[s->ntopics].rkt = rd_kafka_topic_new(s->rk, name, NULL);
    if (nt[s->ntopics].type == NULL || nt[s->ntopics].rkt == NULL) {
        free(nt[s->ntopics].type);
        if (nt[s->ntopics].rkt != NULL) {
            rd_kafka_topic_destroy(nt[s->ntopics].rkt);
        }
        return NULL;
    }
    return nt[s->ntopics++].rkt;
}

/*
 * Produce to Kafka.  0 when librdkafka took it; -1 when it cannot (the
 * caller spools).  With wait, a full local queue is served and retried
 * while Kafka still looks healthy (Fluent Bit's out_kafka does the same).
 */
static int kafka_put(pixel_sink *s, rd_kafka_topic_t *rkt, const pixel_spool_msg *m, void *op,
                     int wait, int lent)
{
    size_t key_len = m->key != NULL ? m->key_len : 0;
    /* A lent value stays valid until its delivery report: librdkafka
     * refers to it instead of copying it into a block of its own (with
     * events of about 1 KB that block is also a malloc too large for
     * glibc's per-thread cache). */
    int flags = lent ? 0 : RD_KAFKA_MSG_F_COPY;
    int kind[3], n = 0;
    const char *value[3];
    size_t len[3];
    hset *hs = NULL;

    /* Headers cost librdkafka an object, a list and a block per header, a
     * message (a quarter of the sink's CPU; copying a template with
     * rd_kafka_headers_copy() makes the same allocations): a delivered
     * message's list is used again (struct hset).  kafka.headers: false
     * turns them off. */
    if (s->cfg->headers) {
        n = header_values(m, kind, value, len);
        hs = hset_for(s, kind, value, len, n);
    }
    for (;;) {
        rd_kafka_headers_t *h = NULL;
        rd_kafka_resp_err_t e;

        if (!s->cfg->headers) {
            e = rd_kafka_producev(
                s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                RD_KAFKA_V_MSGFLAGS(flags), RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
                RD_KAFKA_V_KEY(m->key, key_len), RD_KAFKA_V_OPAQUE(op), RD_KAFKA_V_END);
            goto produced;
        }
        if ((h = hset_take(s, hs)) == NULL) {
            h = rd_kafka_headers_new(3);
            for (int i = 0; i < n; i++) {
                rd_kafka_header_add(h, hdr_names[kind[i]], -1, value[i], (ssize_t)len[i]);
            }
            /* Its address may be that of a list destroyed without a
             * delivery report (rd_kafka_destroy): what the table says of
             * it is replaced, or forgotten. */
            if (hs == NULL || hl_add(&s->hl, h, (int)(hs - s->hsets)) < 0) {
                hl_del(&s->hl, h);
            }
        }
        e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_MSGFLAGS(flags), RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
            RD_KAFKA_V_KEY(m->key, key_len), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(op),
            RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            hset_keep(s, hs, h); /* still ours */
        }
    produced:
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s->inflight++;
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            switch_to_spool(s, rd_kafka_err2str(e));
            return -1;
        }
        if (!wait) {
            return -1;
        }
        rd_kafka_poll(s->rk, 10);
        if (s->state != PIXEL_SINK_KAFKA) {
            return -1; /* a delivery report failed us over meanwhile */
        }
    }
}

/*
 * Recreate the producer after a fatal error; in-flight messages get spooled.
 * When a new one cannot be made (out of memory, threads or descriptors),
 * the sink stays on the spool and tries again after the probe penalty,
 * growing as a probe's does; meanwhile serve() sleeps instead of polling.
 */
static void recreate(pixel_sink *s)
{
    pixel_error e;
    int again = s->rk == NULL;

    if (s->rk != NULL) {
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(s->rk, 0);
        rd_kafka_flush(s->rk, 1000);
        kafka_stop(s);
    }
    /* A purge asked for meanwhile (a probe that the purge above failed)
     * meant the old producer's queue, gone now: on the new one it would
     * purge the first probe. */
    s->purge_wanted = 0;
    memset(&e, 0, sizeof(e));
    if (kafka_start(s, &e) != 0) {
        kafka_stop(s); /* topics of a half-made start */
        if (again) {
            s->penalty_ms = s->penalty_ms * 2 > s->cfg->probe_max_ms ? s->cfg->probe_max_ms
                                                                     : s->penalty_ms * 2;
        }
        s->restart_at_ms = pixel__d_mono_ms() + s->penalty_ms;
        logf_(s, PIXEL_LOG_ERR, "kafka: %s; records go to the spool; trying again in %ld ms",
              e.text, s->penalty_ms);
        return;
    }
    s->recreate_wanted = 0;
    if (again) {
        s->probe_at_ms = pixel__d_mono_ms(); /* the next record probes */
        logf_(s, PIXEL_LOG_NOTICE, "kafka: producer created again; probing");
    }
}

/* Deferred work that must not run inside librdkafka's callbacks. */
static void housekeeping(pixel_sink *s)
{
    if (s->purge_wanted && s->rk != NULL) {
        s->purge_wanted = 0;
        /* Queued (not yet sent) messages: to the spool now, not at timeout. */
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_NON_BLOCKING);
    }
    if (s->recreate_wanted && (s->rk != NULL || pixel__d_mono_ms() >= s->restart_at_ms)) {
        recreate(s);
    }
}

static int probe_due(pixel_sink *s)
{
    return s->state == PIXEL_SINK_SPOOL && !s->probe_inflight && s->rk != NULL &&
           pixel__d_mono_ms() >= s->probe_at_ms;
}

/*
 * Route one record: Kafka when healthy or when a probe is due, else the
 * spool.  0 when accepted, PIXEL_DELIVERY_EFULL when not.
 */
static int route(pixel_sink *s, rd_kafka_topic_t *rkt, const pixel_spool_msg *m, void *token,
                 int kind, int lent)
{
    if (s->state == PIXEL_SINK_KAFKA && rkt != NULL) {
        if (kafka_put(s, rkt, m, token, 1, lent) == 0) {
            return 0;
        }
    } else if (probe_due(s) && rkt != NULL) {
        struct probe_box *box = NULL;
        for (int i = 0; i < PROBE_BOXES && box == NULL; i++) {
            box = s->probes[i].used ? NULL : &s->probes[i];
        }
        if (box != NULL) {
            box->token = token;
            if (kafka_put(s, rkt, m, box, 0, lent) == 0) {
                box->used = 1;
                s->probe_current = box;
                s->probe_inflight = 1;
                s->st.probes++;
                return 0;
            }
            probe_failed(s, "local queue full");
        }
    }
    return spool_put(s, m, token, kind);
}

/* Retry parked records in order; stop at the first that still cannot go. */
static void unpark(pixel_sink *s)
{
    while (s->park_head != NULL) {
        parked *p = s->park_head;
        rd_kafka_topic_t *rkt =
            p->kind == KIND_QUARANTINE ? s->q_rkt : topic_for(s, p->m.type, p->m.type_len);
        int rc;

        /* route() must not park again: take it off the list first. */
        s->park_head = p->next;
        if (s->park_head == NULL) {
            s->park_tail = NULL;
        }
        s->nparked--;
        if (p->token == &s->nack) {
            /* A best-effort copy: the spool only (it must not be a probe). */
            rc = spool_put(s, &p->m, p->token, p->kind);
        } else {
            rc = route(s, rkt, &p->m, p->token, p->kind, 0); /* p is freed below */
        }
        if (rc != 0) {
            p->next = s->park_head;
            s->park_head = p;
            if (s->park_tail == NULL) {
                s->park_tail = p;
            }
            s->nparked++;
            return;
        }
        free(p);
    }
}

/*
 * fsync what waits for it (and ack those inputs) once it is due: after
 * fsync_interval_ms, a full batch of quarantine lines, or at once (now) when
 * the caller is about to wait anyway.
 */
static void sync_due(pixel_sink *s, int now)
{
    int64_t t;

    /* A caller about to wait takes the syncer's batch first (its acks must
     * not wait out the caller's timeout). */
    qsync_collect(s, now);
    if (s->spool_wait.n == 0 && s->q_wait.n == 0) {
        return;
    }
    t = pixel__d_mono_ms();
    if (s->spool_wait.n > 0 && (now || t - s->spool_wait.since_ms >= s->cfg->fsync_interval_ms)) {
        sync_spool(s);
    }
    if (s->q_wait.n > 0 && now) {
        sync_qfile(s); /* the caller is about to wait anyway */
    } else if (s->q_wait.n > 0 && (t - s->q_wait.since_ms >= s->cfg->fsync_interval_ms ||
                                   s->q_wait.n >= s->cfg->fsync_batch)) {
        qfile_kick(s);
    }
}

static void serve(pixel_sink *s, int timeout_ms, bool flushing)
{
    /* A caller that waits has nothing more for this fsync batch: make the
     * waiting records durable and ack them before the wait for Kafka, not
     * after it (with Kafka down nothing would end that wait early). */
    sync_due(s, timeout_ms != 0);
    if (s->rk != NULL && flushing && rd_kafka_outq_len(s->rk) > 0) {
        /* Sends what waits for linger.ms now (a poll would let the last
         * messages wait it out) and serves the reports as poll does.  Only
         * while librdkafka holds something: with nothing there it returns
         * at once, and a flush waiting for parked records would spin. */
        rd_kafka_flush(s->rk, timeout_ms);
    } else if (s->rk != NULL) {
        rd_kafka_poll(s->rk, timeout_ms);
    } else if (timeout_ms != 0) {
        /* No producer (see recreate()): wait as a poll would, but not past
         * the next try to make one. */
        int64_t left = s->restart_at_ms - pixel__d_mono_ms();
        int64_t ms = timeout_ms > 0 && timeout_ms < left ? timeout_ms : left;
        if (ms > 0) {
            struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    housekeeping(s);
    unpark(s);
    /* What the delivery reports spooled meanwhile. */
    sync_due(s, timeout_ms != 0);
}

/* ---- public API -------------------------------------------------------------- */

PIXEL_API int pixel_sink_new(pixel_sink **out, const pixel_delivery_config *cfg,
                             const pixel_sink_options *opts, pixel_error *err)
{
    pixel_spool_options so = PIXEL_SPOOL_OPTIONS_INIT;
    pixel_sink *s;
    int rc;

    pixel__d_error_clear(err); /* err may be uninitialized: fill it from scratch */
    *out = NULL;
    if (opts != NULL && opts->version != PIXEL_SINK_OPTIONS_VERSION) {
        return pixel__d_error(err, PIXEL_EVERSION, NULL, 0, 0,
                              "invalid version %u on pixel_sink_options", opts->version);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return pixel__d_error(err, PIXEL_ENOMEM, NULL, 0, 0, "out of memory");
    }
    s->cfg = cfg;
    s->q_fd = -1;
    s->qs.fdatasync = fdatasync;
    s->kafka_new = rd_kafka_new;
    if (opts != NULL) {
        s->o = *opts;
    }
    so.dir = cfg->spool_dir;
    so.segment_bytes = cfg->segment_bytes;
    so.max_bytes = cfg->max_bytes;
    so.fsync = cfg->fsync;
    so.fsync_batch = cfg->fsync_batch;
    rc = pixel_spool_open(&s->spool, &so, err);
    if (rc == 0 && cfg->q_file != NULL) {
        s->q_fd = open(cfg->q_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (s->q_fd < 0) {
            rc = pixel__d_error(err, PIXEL_EIO, cfg->q_file, 0, 0,
                                "cannot open the quarantine file: %s", strerror(errno));
        } else {
            qsync_start(s);
        }
    }
    if (rc == 0) {
        rc = kafka_start(s, err);
    }
    if (rc != 0) {
        pixel_sink_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int produce(pixel_sink *s, const pixel_sink_msg *msg, void *token, int lent,
                   pixel_error *err)
{
    pixel_spool_msg m;
    rd_kafka_topic_t *rkt;
    char tname[256];
    int rc;

    if (s->park_head != NULL) {
        unpark(s);
        if (s->park_head != NULL) {
            s->st.backpressure++;
            return pixel__d_error(err, PIXEL_DELIVERY_EFULL, s->cfg->spool_dir, 0, 0,
                                  "spool full: back-pressure");
        }
    }
    memset(&m, 0, sizeof(m));
    m.value = msg->value;
    m.value_len = msg->value_len;
    m.key = msg->key;
    m.key_len = msg->key_len;
    m.type = msg->type;
    m.type_len = msg->type_len;
    m.schema_id = msg->schema_id;
    m.schema_id_len = msg->schema_id_len;
    m.pipeline_version = msg->pipeline_version;
    m.pipeline_version_len = msg->pipeline_version_len;
    rkt = topic_for(s, msg->type, msg->type_len);
    if (rkt != NULL) {
        m.topic = rd_kafka_topic_name(rkt);
    } else if (s->cfg->topic != NULL) {
        m.topic = s->cfg->topic;
    } else {
        /* No producer (or no handle): the spooled record still names its
         * topic, or pixel-replay could not send it. */
        int unknown = msg->type == NULL || msg->type_len == 0;
        topic_name(s, unknown ? "unknown" : msg->type, unknown ? 7 : msg->type_len, tname,
                   sizeof(tname));
        m.topic = tname;
    }
    m.topic_len = strlen(m.topic);
    /* Count first: the ack may come from inside route(). */
    s->st.events_in++;
    s->st.events_pending++;
    rc = route(s, rkt, &m, token, KIND_EVENT, lent);
    if (rc != 0) {
        s->st.events_in--;
        s->st.events_pending--;
        s->st.backpressure++;
        return pixel__d_error(err, rc, s->cfg->spool_dir, 0, 0, "spool full: back-pressure");
    }
    /* Serve delivery reports in batches: a poll per event would cost more
     * than the produce itself.  Failover never waits for this (the error
     * and report callbacks also run in pixel_sink_poll and on a full queue). */
    if (++s->since_poll >= POLL_EVERY || s->state != PIXEL_SINK_KAFKA) {
        s->since_poll = 0;
        qsync_collect(s, 0); /* the quarantine lines the syncer made durable */
        if (s->rk != NULL) {
            rd_kafka_poll(s->rk, 0);
            housekeeping(s);
        }
    }
    return 0;
}

PIXEL_API int pixel_sink_produce(pixel_sink *s, const pixel_sink_msg *msg, void *token,
                                 pixel_error *err)
{
    return s->in_callback ? reentered(err) : produce(s, msg, token, 0, err);
}

PIXEL_API int pixel_sink_produce_lent(pixel_sink *s, const pixel_sink_msg *msg, void *token,
                                      pixel_error *err)
{
    return s->in_callback ? reentered(err) : produce(s, msg, token, 1, err);
}

/*
 * Append records to the quarantine file in one system call: len bytes of
 * lines, each ended by a newline, plus one more newline when the last one
 * lacks it.  Returns 0, or -1 (errno set) with *whole set to the bytes of
 * lines that made it as whole records: a partial last line is rolled back
 * so that the file stays valid JSON Lines.
 */
static int qfile_write(pixel_sink *s, const char *lines, size_t len, size_t *whole)
{
    int add_nl = len == 0 || lines[len - 1] != '\n';
    struct iovec iov[2] = {{(void *)lines, len}, {"\n", 1}};
    ssize_t w = writev(s->q_fd, iov, add_nl ? 2 : 1);
    size_t keep = 0;
    off_t end;

    *whole = 0;
    if (w == (ssize_t)(len + (size_t)add_nl)) {
        *whole = len;
        return 0;
    }
    if (w > 0) {
        /* The records written whole end at the last newline written. */
        const char *nl = memrchr(lines, '\n', (size_t)w < len ? (size_t)w : len);
        keep = nl != NULL ? (size_t)(nl - lines) + 1 : 0;
    }
    /* Roll back the partial line (the sink is the file's only writer, so
     * the file ends where the write began plus what it wrote). */
    if (w > 0 && (size_t)w > keep &&
        ((end = lseek(s->q_fd, 0, SEEK_END)) < 0 ||
         ftruncate(s->q_fd, end - (off_t)((size_t)w - keep)) < 0)) {
        logf_(s, PIXEL_LOG_ERR, "quarantine file %s: cannot roll back a partial line",
              s->cfg->q_file);
    }
    *whole = keep;
    if (w >= 0) {
        errno = ENOSPC; /* a short write: the file cannot grow */
    }
    return -1;
}

/* A quarantine record for the dead-letter topic or the spool. */
static void quarantine_msg(pixel_spool_msg *m, const pixel_sink *s, const char *json, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->value = json;
    m->value_len = len;
    m->topic = s->cfg->q_topic;
    m->topic_len = m->topic ? strlen(m->topic) : 0;
    m->timestamp_ms = pixel__d_wall_ms();
    m->flags = PIXEL_SPOOL_MSG_QUARANTINE;
}

/* A record whose line is in the file: it waits for the file's fsync; a
 * best-effort copy goes to the dead-letter topic. */
static void qfile_taken(pixel_sink *s, const char *json, size_t len, void *token)
{
    s->st.quarantine_in++;
    s->st.quarantine_pending++;
    wait_add(&s->q_wait, token, KIND_QUARANTINE);
    if (s->cfg->q_topic != NULL) {
        pixel_spool_msg m;
        quarantine_msg(&m, s, json, len);
        /* Never blocks: a copy that Kafka cannot take now (or that has no
         * producer to take it, see recreate()) is spooled. */
        if (s->state != PIXEL_SINK_KAFKA || s->q_rkt == NULL ||
            kafka_put(s, s->q_rkt, &m, &s->nack, 0, 0) != 0) {
            spool_or_park(s, &m, &s->nack, KIND_QUARANTINE);
        }
    }
}

/* After records were added to the file: fsync now (fsync: always) or hand
 * a full batch to the syncer. */
static void qfile_due(pixel_sink *s)
{
    if (s->cfg->fsync == PIXEL_SPOOL_FSYNC_ALWAYS) {
        sync_qfile(s);
    } else if (s->q_wait.n >= s->cfg->fsync_batch) {
        qfile_kick(s); /* in the background: producing goes on meanwhile */
    }
}

static int qfile_failed(pixel_sink *s, pixel_error *err)
{
    s->st.backpressure++;
    if (!s->full_logged) {
        logf_(s, PIXEL_LOG_ERR, "quarantine file %s: write failed (%s): back-pressure",
              s->cfg->q_file, strerror(errno));
        s->full_logged = 1;
    }
    return pixel__d_error(err, PIXEL_DELIVERY_EFULL, s->cfg->q_file, 0, 0,
                          "quarantine file: write failed: back-pressure");
}

/* Serve delivery reports after every POLL_EVERY records (see produce()). */
static void poll_due(pixel_sink *s, unsigned int records)
{
    s->since_poll += records;
    if (s->since_poll >= POLL_EVERY || s->state != PIXEL_SINK_KAFKA) {
        s->since_poll = 0;
        qsync_collect(s, 0); /* the quarantine lines the syncer made durable */
        if (s->rk != NULL) {
            rd_kafka_poll(s->rk, 0);
            housekeeping(s);
        }
    }
}

static int no_quarantine(pixel_sink *s, pixel_error *err)
{
    return pixel__d_error(err, PIXEL_EINVAL, s->cfg->source, 0, 0,
                          "no quarantine destination configured (quarantine.file or .topic)");
}

PIXEL_API int pixel_sink_quarantine(pixel_sink *s, const char *json, size_t len, void *token,
                                    pixel_error *err)
{
    pixel_spool_msg m;
    size_t whole;
    int rc;

    if (s->in_callback) {
        return reentered(err);
    }
    if (s->q_fd < 0 && s->cfg->q_topic == NULL) {
        return no_quarantine(s, err);
    }
    if (s->q_fd >= 0) {
        /* The file is the durable copy: it never waits for Kafka.  One
         * system call: the line and its newline together. */
        if (qfile_write(s, json, len, &whole) < 0) {
            return qfile_failed(s, err);
        }
        qfile_taken(s, json, len, token);
        qfile_due(s);
    } else {
        quarantine_msg(&m, s, json, len);
        s->st.quarantine_in++;
        s->st.quarantine_pending++;
        rc = route(s, s->q_rkt, &m, token, KIND_QUARANTINE, 0);
        if (rc != 0) {
            s->st.quarantine_in--;
            s->st.quarantine_pending--;
            s->st.backpressure++;
            return pixel__d_error(err, rc, s->cfg->spool_dir, 0, 0, "spool full: back-pressure");
        }
    }
    poll_due(s, 1);
    return 0;
}

PIXEL_API int pixel_sink_quarantine_lines(pixel_sink *s, const char *lines, size_t len, void *token,
                                          size_t *taken, pixel_error *err)
{
    const char *p = lines, *end;
    size_t whole;
    unsigned int n = 0;
    int rc = 0;

    if (taken != NULL) {
        *taken = 0;
    }
    if (s->in_callback) {
        return reentered(err);
    }
    if (s->q_fd < 0 && s->cfg->q_topic == NULL) {
        return no_quarantine(s, err);
    }
    if (len == 0) {
        return 0;
    }
    if (s->q_fd < 0) {
        /* Kafka only: record by record. */
        for (end = lines + len; p < end && rc == 0;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl != NULL ? nl : end;
            if ((rc = pixel_sink_quarantine(s, p, (size_t)(stop - p), token, err)) == 0) {
                p = nl != NULL ? nl + 1 : end;
                if (taken != NULL) {
                    *taken = (size_t)(p - lines);
                }
            }
        }
        return rc;
    }
    /* The file: every line in one write, then each record as
     * pixel_sink_quarantine() takes one. */
    if (qfile_write(s, lines, len, &whole) < 0) {
        rc = qfile_failed(s, err);
    }
    for (end = lines + whole; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        qfile_taken(s, p, (size_t)(stop - p), token);
        p = nl != NULL ? nl + 1 : end;
    }
    if (taken != NULL) {
        *taken = whole;
    }
    if (n > 0) {
        qfile_due(s);
        poll_due(s, n);
    }
    return rc;
}

PIXEL_API void pixel_sink_count(pixel_sink *s, int outcome)
{
    if (outcome == PIXEL_OUTCOME_SKIPPED) {
        s->st.skipped++;
    } else if (outcome == PIXEL_OUTCOME_DROPPED) {
        s->st.dropped++;
    }
}

PIXEL_API size_t pixel_sink_poll(pixel_sink *s, int timeout_ms)
{
    if (!s->in_callback) {
        serve(s, timeout_ms, false);
    }
    return (size_t)(s->st.events_pending + s->st.quarantine_pending);
}

PIXEL_API int pixel_sink_flush(pixel_sink *s, int timeout_ms, pixel_error *err)
{
    int64_t deadline = pixel__d_mono_ms() + timeout_ms;

    if (s->in_callback) {
        return reentered(err);
    }
    for (;;) {
        serve(s, 20, true);
        sync_spool(s);
        sync_qfile(s);
        if (s->st.events_pending + s->st.quarantine_pending == 0) {
            return 0;
        }
        if (timeout_ms >= 0 && pixel__d_mono_ms() >= deadline) {
            return pixel__d_error(err, PIXEL_ERROR, NULL, 0, 0,
                                  "flush: %" PRIu64 " inputs still pending",
                                  s->st.events_pending + s->st.quarantine_pending);
        }
    }
}

void pixel__sink_set_kafka_new(pixel_sink *s,
                               rd_kafka_t *(*fn)(rd_kafka_type_t, rd_kafka_conf_t *, char *, size_t))
{
    s->kafka_new = fn != NULL ? fn : rd_kafka_new;
}

void pixel__sink_set_fdatasync(pixel_sink *s, int (*fn)(int fd))
{
    s->qs.fdatasync = fn;
}

pixel_spool *pixel__sink_spool(pixel_sink *s)
{
    return s->spool;
}

rd_kafka_t *pixel__sink_kafka(pixel_sink *s)
{
    return s->rk;
}

PIXEL_API int pixel_sink_state_get(const pixel_sink *s)
{
    return s->state;
}

PIXEL_API void pixel_sink_stats_get(const pixel_sink *s, pixel_sink_stats *out)
{
    *out = s->st;
}

PIXEL_API void pixel_sink_free(pixel_sink *s)
{
    if (s == NULL) {
        return;
    }
    if (s->rk != NULL) {
        /* Whatever Kafka has not confirmed by the delivery timeout goes to
         * the spool: purging produces failed delivery reports for it. */
        int64_t deadline = pixel__d_mono_ms() + s->cfg->delivery_timeout_ms + 1000;
        pixel_sink_flush(s, (int)s->cfg->delivery_timeout_ms + 1000, NULL);
        /* The flush waits for inputs; the copies of quarantine lines for
         * quarantine.topic are none (the file holds them), but get the same
         * time while Kafka takes messages. */
        int64_t left = deadline - pixel__d_mono_ms();
        if (s->inflight > 0 && s->state == PIXEL_SINK_KAFKA && left > 0) {
            rd_kafka_flush(s->rk, (int)left);
        }
        if (s->inflight > 0) {
            s->state = PIXEL_SINK_SPOOL;
            rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(s->rk, 5000);
        }
    }
    if (s->spool != NULL) {
        unpark(s);
        sync_spool(s);
    }
    if (s->q_fd >= 0) {
        sync_qfile(s);
    }
    while (s->park_head != NULL) {
        parked *p = s->park_head;
        s->park_head = p->next;
        ack(s, p->token, p->kind, PIXEL_DELIVERY_EFULL);
        free(p);
    }
    kafka_stop(s);
    hsets_free(s);
    pixel_spool_close(s->spool);
    qsync_stop(s);
    if (s->q_fd >= 0) {
        close(s->q_fd);
    }
    free(s->spool_wait.v);
    free(s->q_wait.v);
    free(s);
}
