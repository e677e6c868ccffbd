/*
 * Offline replay of the spool into Kafka (pixel_replay_spool()).
 *
 * Order and resumption: writer directories in name order, segments by
 * number, records by offset.  Delivery reports come back out of order
 * (partitions are independent), so we keep a window of in-flight records
 * and advance the checkpoint over the contiguous prefix Kafka confirmed.
 * A crash therefore resends at most the records after the last checkpoint
 * written: up to checkpoint_every confirmed records plus the in-flight
 * window (MAX_INFLIGHT).  Consumers deduplicate on the deterministic event
 * ID.
 *
 * Locking: "<dir>/replay.lock" keeps two replays apart.  A writer directory
 * whose lock we can take is held for the duration, so no writer starts
 * there (and cuts a torn tail under our mmap); one held by a live writer is
 * replayed up to, not including, its active segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery_private.h"

#define MAX_INFLIGHT 10000u

typedef struct replay {
    const pixel_replay_options *o;
    pixel_replay_stats *st;
    pixel_error *err;
    rd_kafka_t *rk;
    struct {
        char *name;
        rd_kafka_topic_t *rkt;
    } topics[64];
    size_t ntopics;
    /* The in-flight window of the current segment. */
    uint64_t ends[MAX_INFLIGHT]; /* end offset of each record */
    unsigned char acked[MAX_INFLIGHT];
    uint64_t base, next;    /* record numbers: [base, next) in flight */
    uint64_t confirmed_off; /* end of the contiguous confirmed prefix */
    uint64_t since_ckpt;
    int failed;
    char why[400];
    int64_t last_progress_ms;
    const char *dir;       /* the spool directory */
    pixel_spool *rejected; /* <dir>/rejected, opened at the first refusal */
} replay;

static void rlog(replay *r, int level, const char *fmt, ...) PIXEL_D_PRINTF(3, 4);

static void rlog(replay *r, int level, const char *fmt, ...)
{
    char line[640];
    va_list ap;

    if (r->o->log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    r->o->log(level, line, r->o->log_payload);
}

/* Record n is settled: advance the contiguous confirmed prefix. */
static void confirm(replay *r, uint64_t n)
{
    r->acked[n % MAX_INFLIGHT] = 1;
    r->last_progress_ms = pixel__d_mono_ms();
    while (r->base < r->next && r->acked[r->base % MAX_INFLIGHT]) {
        r->confirmed_off = r->ends[r->base % MAX_INFLIGHT];
        r->acked[r->base % MAX_INFLIGHT] = 0;
        r->base++;
        r->since_ckpt++;
    }
}

/*
 * Kafka refuses this record itself: keep it in the "rejected" spool, so it
 * is neither lost nor retried forever.  0, or -1 when even that fails.
 */
static int reject(replay *r, const pixel_spool_msg *m, rd_kafka_resp_err_t e)
{
    pixel_error err;

    memset(&err, 0, sizeof(err));
    if (r->rejected == NULL) {
        pixel_spool_options so = PIXEL_SPOOL_OPTIONS_INIT;
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/rejected", r->dir);
        so.dir = dir;
        so.fsync = PIXEL_SPOOL_FSYNC_ALWAYS;
        if (pixel_spool_open(&r->rejected, &so, &err) != 0) {
            snprintf(r->why, sizeof(r->why), "cannot keep a rejected record: %.300s", err.text);
            r->failed = 1;
            return -1;
        }
    }
    if (pixel_spool_append(r->rejected, m, &err) < 0) {
        snprintf(r->why, sizeof(r->why), "cannot keep a rejected record: %.300s", err.text);
        r->failed = 1;
        return -1;
    }
    r->st->rejected++;
    rlog(r, PIXEL_LOG_ERR, "replay: Kafka refused a record (%s): kept in %s/rejected",
         rd_kafka_err2str(e), r->dir);
    return 0;
}

static void dr_header(rd_kafka_headers_t *h, const char *name, const char **v, size_t *len)
{
    const void *val = NULL;
    size_t size = 0;

    *v = NULL;
    *len = 0;
    if (h != NULL && rd_kafka_header_get_last(h, name, &val, &size) == 0) {
        *v = val != NULL ? val : "";
        *len = size;
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    replay *r = opaque;
    uint64_t n = (uint64_t)(uintptr_t)m->_private;

    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && pixel__kafka_message_error(m->err)) {
        rd_kafka_headers_t *h = NULL;
        pixel_spool_msg sm;
        memset(&sm, 0, sizeof(sm));
        rd_kafka_message_headers(m, &h);
        sm.topic = rd_kafka_topic_name(m->rkt);
        sm.topic_len = strlen(sm.topic);
        sm.key = m->key;
        sm.key_len = m->key_len;
        sm.value = m->payload != NULL ? m->payload : "";
        sm.value_len = m->len;
        dr_header(h, "pixel-event-type", &sm.type, &sm.type_len);
        dr_header(h, "pixel-schema-id", &sm.schema_id, &sm.schema_id_len);
        dr_header(h, "pixel-pipeline-version", &sm.pipeline_version, &sm.pipeline_version_len);
        sm.timestamp_ms = pixel__d_wall_ms();
        if (reject(r, &sm, m->err) == 0) {
            confirm(r, n);
        }
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!r->failed) {
            snprintf(r->why, sizeof(r->why), "%s", rd_kafka_err2str(m->err));
        }
        r->failed = 1;
        return;
    }
    r->st->records++;
    confirm(r, n);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    replay *r = rd_kafka_opaque(rk);

    rlog(r, level < PIXEL_LOG_ERR ? PIXEL_LOG_ERR : level, "librdkafka %s: %s", fac, buf);
}

static rd_kafka_topic_t *topic(replay *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->ntopics; i++) {
        if (strlen(r->topics[i].name) == len && memcmp(r->topics[i].name, name, len) == 0) {
            return r->topics[i].rkt;
        }
    }
    if (r->ntopics == sizeof(r->topics) / sizeof(r->topics[0])) {
        return NULL;
    }
    r->topics[r->ntopics].name = strndup(name, len);
    if (r->topics[r->ntopics].name == NULL) {
        return NULL;
    }
    r->topics[r->ntopics].rkt = rd_kafka_topic_new(r->rk, r->topics[r->ntopics].name, NULL);
    return r->topics[r->ntopics++].rkt;
}

static void pace(replay *r, int64_t start_ms, uint64_t sent)
{
    int64_t due, now;

    if (r->o->rate <= 0) {
        return;
    }
    due = start_ms + (int64_t)((double)sent * 1000.0 / r->o->rate);
    now = pixel__d_mono_ms();
    while (now < due) {
        rd_kafka_poll(r->rk, (int)(due - now));
        now = pixel__d_mono_ms();
    }
}

static int produce(replay *r, const pixel_spool_msg *m, uint64_t end)
{
    rd_kafka_topic_t *rkt = m->topic_len > 0 ? topic(r, m->topic, m->topic_len) : NULL;
    size_t key_len = m->key != NULL ? m->key_len : 0;

    if (rkt == NULL) {
        snprintf(r->why, sizeof(r->why), "record without a usable topic");
        r->failed = 1;
        return -1;
    }
    /* Bound the window: wait for confirmations, not for librdkafka's queue. */
    while (r->next - r->base >= MAX_INFLIGHT && !r->failed) {
        rd_kafka_poll(r->rk, 10);
    }
    r->ends[r->next % MAX_INFLIGHT] = end;
    r->acked[r->next % MAX_INFLIGHT] = 0;
    for (;;) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_resp_err_t e;
        if (m->type != NULL) {
            rd_kafka_header_add(h, "pixel-event-type", -1, m->type, (ssize_t)m->type_len);
        }
        if (m->schema_id != NULL) {
            rd_kafka_header_add(h, "pixel-schema-id", -1, m->schema_id, (ssize_t)m->schema_id_len);
        }
        if (m->pipeline_version != NULL) {
            rd_kafka_header_add(h, "pixel-pipeline-version", -1, m->pipeline_version,
                                (ssize_t)m->pipeline_version_len);
        }
        e = rd_kafka_producev(
            r->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE((void *)m->value, m->value_len), RD_KAFKA_V_KEY(m->key, key_len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)r->next), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            r->next++;
            return 0;
        }
        rd_kafka_headers_destroy(h);
        if (pixel__kafka_message_error(e)) {
            if (reject(r, m, e) != 0) {
                return -1;
            }
            confirm(r, r->next++);
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(r->why, sizeof(r->why), "%s", rd_kafka_err2str(e));
            r->failed = 1;
            return -1;
        }
        rd_kafka_poll(r->rk, 10);
    }
}

/* Wait until everything in flight is confirmed; 0, or -1 on failure/timeout. */
static int drain(replay *r)
{
    int timeout = r->o->timeout_ms > 0 ? r->o->timeout_ms : 60000;

    r->last_progress_ms = pixel__d_mono_ms();
    while (r->base < r->next && !r->failed) {
        rd_kafka_poll(r->rk, 50);
        if (pixel__d_mono_ms() - r->last_progress_ms > timeout) {
            snprintf(r->why, sizeof(r->why), "no confirmation from Kafka for %d ms", timeout);
            r->failed = 1;
        }
    }
    if (r->failed) {
        /* Let the rest of the window report, so the checkpoint is exact. */
        rd_kafka_flush(r->rk, 2000);
        return -1;
    }
    return 0;
}

static int checkpoint(replay *r, const pixel_spool_segment *seg)
{
    r->since_ckpt = 0;
    if (pixel__spool_checkpoint_write(seg->writer_dir, seg->seq, r->confirmed_off) < 0) {
        return pixel__d_error(r->err, PIXEL_EIO, seg->writer_dir, 0, 0,
                              "cannot write the replay checkpoint: %s", strerror(errno));
    }
    return 0;
}

static int finish_segment(replay *r, const pixel_spool_segment *seg)
{
    if (pixel__spool_checkpoint_write(seg->writer_dir, seg->seq + 1, 16) < 0) {
        return pixel__d_error(r->err, PIXEL_EIO, seg->writer_dir, 0, 0,
                              "cannot write the replay checkpoint: %s", strerror(errno));
    }
    if (r->o->archive_dir != NULL) {
        const char *wname = strrchr(seg->writer_dir, '/');
        const char *sname = strrchr(seg->path, '/');
        char dst[4096];
        snprintf(dst, sizeof(dst), "%s/%s-%s", r->o->archive_dir, wname ? wname + 1 : "w",
                 sname ? sname + 1 : seg->path);
        if (pixel__d_mkdirs(r->o->archive_dir) < 0 || rename(seg->path, dst) < 0) {
            return pixel__d_error(r->err, PIXEL_EIO, seg->path, 0, 0,
                                  "cannot archive the segment to %s: %s", dst, strerror(errno));
        }
        rlog(r, PIXEL_LOG_INFO, "replay: %s done, archived as %s", seg->path, dst);
    } else {
        if (unlink(seg->path) < 0) {
            return pixel__d_error(r->err, PIXEL_EIO, seg->path, 0, 0,
                                  "cannot remove the replayed segment: %s", strerror(errno));
        }
        rlog(r, PIXEL_LOG_INFO, "replay: %s done, removed", seg->path);
    }
    r->st->segments++;
    return 0;
}

/*
 * A segment whose header is not a spool segment's: none of it can be read
 * as records, and it must not stop the segments after it.  It is moved,
 * whole, to <dir>/damaged/<writer>/ (a spool directory of its own, for
 * pixel-spool verify and inspect), never deleted; one shorter than a header
 * (a crash right after it was created) holds no record and is removed, as
 * its writer would on restart.
 */
static int set_aside(replay *r, const pixel_spool_segment *seg)
{
    const char *wname = strrchr(seg->writer_dir, '/');
    const char *sname = strrchr(seg->path, '/');
    char dir[4096], dst[4352];

    pixel__d_error_clear(r->err); /* the reader's complaint: said below instead */
    if (seg->size < 16) {
        if (unlink(seg->path) < 0) {
            return pixel__d_error(r->err, PIXEL_EIO, seg->path, 0, 0,
                                  "cannot remove the empty segment: %s", strerror(errno));
        }
        rlog(r, PIXEL_LOG_NOTICE, "replay: %s holds no record (%" PRIu64 " bytes): removed",
             seg->path, seg->size);
    } else {
        snprintf(dir, sizeof(dir), "%s/damaged/%s", r->dir, wname ? wname + 1 : "w");
        snprintf(dst, sizeof(dst), "%s/%s", dir, sname ? sname + 1 : seg->path);
        if (pixel__d_mkdirs(dir) < 0 || rename(seg->path, dst) < 0) {
            return pixel__d_error(r->err, PIXEL_EIO, seg->path, 0, 0,
                                  "cannot move the damaged segment to %s: %s", dst, strerror(errno));
        }
        rlog(r, PIXEL_LOG_ERR,
             "replay: segment %s: offset 0: not a spool segment header: none of its %" PRIu64
             " bytes replayed; moved to %s (pixel-spool verify %s/damaged)",
             seg->path, seg->size, dst, r->dir);
        r->st->corrupt++;
        r->st->bad_bytes += seg->size;
    }
    if (pixel__spool_checkpoint_write(seg->writer_dir, seg->seq + 1, 16) < 0) {
        return pixel__d_error(r->err, PIXEL_EIO, seg->writer_dir, 0, 0,
                              "cannot write the replay checkpoint: %s", strerror(errno));
    }
    return 0;
}

static int replay_segment(replay *r, const pixel_spool_segment *seg, uint64_t start, int64_t t0,
                          uint64_t *sent)
{
    pixel_spool_reader *rd;
    pixel_spool_msg m;
    uint64_t off, end;
    int item, rc;
    unsigned int every = r->o->checkpoint_every ? r->o->checkpoint_every : 1000;

    rc = pixel_spool_reader_open(&rd, seg->path, r->err);
    if (rc == PIXEL_DELIVERY_ECORRUPT) {
        return set_aside(r, seg);
    }
    if (rc != 0) {
        return rc;
    }
    if (start > 16 && pixel_spool_reader_seek(rd, start) != 0) {
        pixel_spool_reader_close(rd);
        return pixel__d_error(r->err, PIXEL_DELIVERY_ECORRUPT, seg->path, 0, 0,
                              "checkpoint offset %" PRIu64 " is beyond the segment", start);
    }
    if (start > 16) {
        rlog(r, PIXEL_LOG_NOTICE, "replay: resuming %s at offset %" PRIu64, seg->path, start);
    }
    r->confirmed_off = start;
    for (;;) {
        pixel_error e;
        memset(&e, 0, sizeof(e));
        item = pixel_spool_reader_next(rd, &m, &off, &end, &e);
        if (item <= 0 || r->failed) {
            break;
        }
        if (item != PIXEL_SPOOL_RECORD) {
            rlog(r, PIXEL_LOG_ERR, "replay: %s", e.text);
            r->st->bad_bytes += end - off;
            if (item == PIXEL_SPOOL_CORRUPT) {
                r->st->corrupt++;
            } else {
                r->st->torn++;
            }
            continue;
        }
        pace(r, t0, *sent);
        if (produce(r, &m, end) < 0) {
            break;
        }
        (*sent)++;
        rd_kafka_poll(r->rk, 0);
        if (r->since_ckpt >= every && (rc = checkpoint(r, seg)) != 0) {
            break;
        }
    }
    pixel_spool_reader_close(rd);
    if (rc != 0) {
        return rc;
    }
    if (drain(r) < 0) {
        checkpoint(r, seg);
        return pixel__d_error(r->err, PIXEL_DELIVERY_EKAFKA, seg->path, 0, 0,
                              "replay stopped at offset %" PRIu64 " of %s: %s", r->confirmed_off,
                              seg->path, r->why);
    }
    return finish_segment(r, seg);
}

static int lock_file(const char *dir, const char *name, int how)
{
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -1;
    }
    if (flock(fd, how | LOCK_NB) < 0) {
        close(fd);
        return -2;
    }
    return fd;
}

/* One writer directory: its segments are segs[0..n), all with the same writer_dir. */
static int replay_writer(replay *r, const pixel_spool_segment *segs, size_t n, int64_t t0,
                         uint64_t *sent)
{
    uint64_t ck_seq = 0, ck_off = 16;
    int lock = lock_file(segs[0].writer_dir, "lock", LOCK_EX), rc = 0;

    if (pixel__spool_checkpoint_read(segs[0].writer_dir, &ck_seq, &ck_off) < 0) {
        rlog(r, PIXEL_LOG_WARNING, "replay: %s/checkpoint unreadable: starting from the beginning",
             segs[0].writer_dir);
        ck_seq = 0;
        ck_off = 16;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* A live writer's last segment is still growing: leave it, and say
         * so by default (a notice): its records are still to be replayed,
         * once the writer has rotated it or stopped. */
        if (lock < 0 && i + 1 == n) {
            rlog(r, PIXEL_LOG_NOTICE,
                 "replay: %s skipped: a live writer appends to it (replay again once "
                 "the writer has rotated the segment or stopped)",
                 segs[i].path);
            break;
        }
        if (segs[i].seq < ck_seq) {
            /* Confirmed before a crash, only its removal was lost. */
            rc = finish_segment(r, &segs[i]);
            continue;
        }
        rc = replay_segment(r, &segs[i], segs[i].seq == ck_seq ? ck_off : 16, t0, sent);
    }
    if (lock >= 0) {
        close(lock);
    }
    return rc;
}

static int kafka_open(replay *r, const pixel_delivery_config *cfg)
{
    char errstr[512];
    rd_kafka_conf_t *kc = pixel__kafka_conf(cfg, r->err);

    if (kc == NULL) {
        return PIXEL_ECONFIG;
    }
    rd_kafka_conf_set_opaque(kc, r);
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_log_cb(kc, on_log);
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    if (r->rk == NULL) {
        rd_kafka_conf_destroy(kc);
        return pixel__d_error(r->err, PIXEL_DELIVERY_EKAFKA, cfg->source, 0, 0,
                              "kafka: cannot create the producer: %s", errstr);
    }
    rd_kafka_set_log_queue(r->rk, NULL);
    return 0;
}

PIXEL_API int pixel_replay_spool(const pixel_delivery_config *cfg, const pixel_replay_options *opts,
                                 pixel_replay_stats *stats, pixel_error *err)
{
    const char *dir = opts->spool_dir ? opts->spool_dir : cfg->spool_dir;
    pixel_spool_segment *segs = NULL;
    size_t n = 0;
    replay *r;
    int lock, rc;
    uint64_t sent = 0;
    int64_t t0 = pixel__d_mono_ms();

    pixel__d_error_clear(err); /* err may be uninitialized: fill it from scratch */
    memset(stats, 0, sizeof(*stats));
    if (opts->version != PIXEL_REPLAY_OPTIONS_VERSION) {
        return pixel__d_error(err, PIXEL_EVERSION, NULL, 0, 0,
                              "invalid version %u on pixel_replay_options", opts->version);
    }
    if (dir == NULL) {
        return pixel__d_error(err, PIXEL_EINVAL, NULL, 0, 0, "replay: no spool directory");
    }
    lock = lock_file(dir, "replay.lock", LOCK_EX);
    if (lock == -2) {
        return pixel__d_error(err, PIXEL_DELIVERY_ELOCKED, dir, 0, 0,
                              "another replay is running on the spool %s", dir);
    }
    if (lock < 0) {
        /* most often a spool directory that does not exist (-s, spool.dir) */
        return pixel__d_error(err, PIXEL_EIO, dir, 0, 0, "cannot open %s/replay.lock: %s", dir,
                              strerror(errno));
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        close(lock);
        return pixel__d_error(err, PIXEL_ENOMEM, NULL, 0, 0, "out of memory");
    }
    r->o = opts;
    r->st = stats;
    r->err = err;
    r->dir = dir;
    rc = pixel_spool_segments(dir, &segs, &n, err);
    if (rc == 0 && n > 0) {
        rc = kafka_open(r, cfg);
    }
    for (size_t i = 0; i < n && rc == 0;) {
        size_t k = i;
        while (k < n && strcmp(segs[k].writer_dir, segs[i].writer_dir) == 0) {
            k++;
        }
        rc = replay_writer(r, segs + i, k - i, t0, &sent);
        i = k;
    }
    if (r->rk != NULL) {
        rd_kafka_flush(r->rk, 5000);
        for (size_t i = 0; i < r->ntopics; i++) {
            rd_kafka_topic_destroy(r->topics[i].rkt);
            free(r->topics[i].name);
        }
        rd_kafka_destroy(r->rk);
    }
    pixel_spool_segments_free(segs, n);
    pixel_spool_close(r->rejected);
    free(r);
    close(lock);
    return rc;
}
