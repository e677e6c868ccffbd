/*
 * pixel-omprog: libpixel as an rsyslog omprog program.
 *
 *   pixel-omprog [options] PIPELINE.yaml
 *
 * rsyslog starts it, writes one message per line on its stdin and, with
 * confirmMessages="on", reads one reply per line on its stdout (rsyslog's
 * plugins/external/INTERFACE.md):
 *
 *   <= OK                      ready: the pipeline and the sink are loaded
 *   => line                    (no transactions)
 *   <= ..OK                    only once the line is durable: its event was
 *                              confirmed by Kafka or fsync'd to the spool, or
 *                              its quarantine record is durable, or it was
 *                              skipped/dropped by configuration; each dot is a
 *                              keep-alive sent while we wait, so rsyslog's
 *                              confirmTimeout does not fire and duplicate it
 *   <= ERROR ...               not durable: rsyslog keeps it and retries
 *
 * With useTransactions="on" too:
 *
 *   => BEGIN TRANSACTION   <= OK
 *   => line                <= DEFER_COMMIT, or PREVIOUS_COMMITTED when every
 *                             earlier line of the batch is already durable
 *   => COMMIT TRANSACTION  <= ..OK once the whole batch is durable, else an
 *                             error: rsyslog then retries the whole batch.
 *
 * A line inside a transaction is never answered with an error: rsyslog does
 * not retry the lines deferred before a failed one (rsyslog issue #2420),
 * so a failure inside a batch is reported at COMMIT, which retries them all.
 *
 * The delivery settings come from the pipeline file's `delivery:` section,
 * or from another file (--delivery).  librdkafka's linger.ms is 0 unless
 * that section sets it: every reply waits for the acks, so there is nothing
 * to linger for (docs/deployment.md, "Throughput").  Without one (or with --events-file),
 * events and quarantine records are appended to local files, fdatasync'd
 * before the reply.
 *
 * The reload signal (SIGHUP unless -s says otherwise; rsyslog forwards its
 * own HUP with hup.signal="HUP") reloads the pipeline, its modules and the
 * delivery section between two messages (or two transactions), when nothing
 * is in flight: no message is lost or duplicated by a reload.  A pipeline
 * that fails to load leaves the old one serving, with one log line saying
 * why.  SIGTERM (signalOnClose="on") or end of input: flush, then exit 0.
 *
 * Logs go to stderr, one line per write(2), so several copies can share
 * omprog's output= file without interleaving.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pixel/pixel.h>
#ifdef PIXEL_HAVE_DELIVERY
#include <pixel/delivery.h>
#endif

#include "../common/metrics.h"
#include "../common/logstamp.h"
#include "../common/version.h"

#define MAX_SETS 32

typedef struct options {
    const char *pipeline;
    const char *delivery; /* the delivery: section's file (default: the pipeline) */
    const char *events_file, *quarantine_file;
    const char *metrics_file;
    int metrics_port; /* -1: none */
    int keepalive_ms;
    int max_wait_ms;
    int reload_signal;
    const char *begin_mark, *commit_mark;
    const char *sets[MAX_SETS];
    int nsets;
    const char *const *module_dirs;
} options;

typedef struct host {
    const options *o;
    pixel_pipeline *pl;
    pixel_ctx *ctx;
#ifdef PIXEL_HAVE_DELIVERY
    pixel_delivery_config *dcfg;
    pixel_sink *sink;
#endif
    int ev_fd, q_fd; /* file mode */
    pixel_metrics *metrics;
    /* Tokens are sequence numbers.  A batch (a transaction, or one line
     * without transactions) starts at `first`; acks for tokens below it
     * belong to an abandoned batch and are ignored. */
    uint64_t next_token, first, submitted, acked, failed;
    int in_txn, txn_failed;
    double txn_start;
    int64_t last_metrics_ms;
} host;

static volatile sig_atomic_t reload_requested, term_requested;

/* The text of the last error logged: start() repeats it in its ERROR reply,
 * the line rsyslog puts in its own log.  The sink may log from its own
 * threads, hence the lock. */
static char last_error[512];
static pthread_mutex_t last_error_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_reload(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static void on_term(int sig)
{
    (void)sig;
    term_requested = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One log line, one write(2): lines from several copies never interleave. */
__attribute__((format(printf, 2, 3))) static void logf_(const char *level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int t = tool_log_stamp(line, sizeof(line));
    int n = t + snprintf(line + t, sizeof(line) - (size_t)t, "pixel-omprog[%ld]: %s: ", (long)getpid(), level);

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (strcmp(level, "error") == 0) {
        pthread_mutex_lock(&last_error_lock);
        snprintf(last_error, sizeof(last_error), "%s", line + n);
        pthread_mutex_unlock(&last_error_lock);
    }
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(2, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}

/* A reply to rsyslog: one write, never partial. */
static int reply(const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t w = write(1, text, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1; /* rsyslog is gone: EPIPE */
        }
        text += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- input --------------------------------------------------------------- */

typedef struct reader {
    char *buf;
    size_t len, cap, start;
    int eof;
} reader;

/*
 * The next line (without its LF) or NULL: *timed_out when nothing arrived
 * within timeout_ms, else end of input.  The line stays valid until the next
 * call.  A last line without LF at end of input still counts.
 */
static char *read_line(reader *r, size_t *len, int timeout_ms, int *timed_out)
{
    *timed_out = 0;
    for (;;) {
        char *nl = r->len > r->start ? memchr(r->buf + r->start, '\n', r->len - r->start) : NULL;
        if (nl != NULL) {
            char *line = r->buf + r->start;
            *len = (size_t)(nl - line);
            r->start += *len + 1;
            return line;
        }
        if (r->eof) {
            if (r->len > r->start) {
                char *line = r->buf + r->start;
                *len = r->len - r->start;
                r->start = r->len;
                return line;
            }
            return NULL;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->start = 0;
        }
        if (r->cap - r->len < 4096) {
            size_t cap = r->cap ? r->cap * 2 : 65536;
            char *b = realloc(r->buf, cap);
            if (b == NULL) {
                logf_("error", "out of memory reading input");
                return NULL;
            }
            r->buf = b;
            r->cap = cap;
        }
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int pr = poll(&p, 1, timeout_ms);
        if (pr == 0 || (pr < 0 && errno == EINTR)) {
            *timed_out = 1;
            return NULL;
        }
        ssize_t n = read(0, r->buf + r->len, r->cap - r->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            *timed_out = 1;
            return NULL;
        }
        if (n <= 0) {
            r->eof = 1;
        } else {
            r->len += (size_t)n;
        }
    }
}

/* ---- outputs -------------------------------------------------------------- */

#ifdef PIXEL_HAVE_DELIVERY
static void ack_cb(void *token, int status, void *payload)
{
    host *h = payload;
    uint64_t t = (uint64_t)(uintptr_t)token;

    if (t < h->first) {
        return; /* from a batch we already answered with an error */
    }
    if (status == PIXEL_SINK_DELIVERED || status == PIXEL_SINK_SPOOLED ||
        status == PIXEL_SINK_QUARANTINED) {
        h->acked++;
    } else {
        h->failed++;
    }
}

static void sink_log_cb(int level, const char *line, void *payload)
{
    (void)payload;
    logf_(level <= PIXEL_LOG_ERR ? "error" : level <= PIXEL_LOG_WARNING ? "warning" : "info", "%s",
          line);
}
#endif

static int append_line(int fd, const char *s, size_t len)
{
    /* One write per record: O_APPEND keeps concurrent copies' lines whole. */
    char stackbuf[8192];
    char *p = len + 1 <= sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    int rc = -1;

    if (p == NULL) {
        return -1;
    }
    memcpy(p, s, len);
    p[len] = '\n';
    if (write(fd, p, len + 1) == (ssize_t)(len + 1)) {
        rc = 0;
    }
    if (p != stackbuf) {
        free(p);
    }
    return rc;
}

static int file_sync(host *h)
{
    if (h->ev_fd >= 0 && fdatasync(h->ev_fd) != 0) {
        return -1;
    }
    if (h->q_fd >= 0 && h->q_fd != h->ev_fd && fdatasync(h->q_fd) != 0) {
        return -1;
    }
    return 0;
}

static int open_files(host *h)
{
    const options *o = h->o;

    h->ev_fd = open(o->events_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (h->ev_fd < 0) {
        logf_("error", "cannot open %s: %s", o->events_file, strerror(errno));
        return -1;
    }
    if (o->quarantine_file == NULL || strcmp(o->quarantine_file, o->events_file) == 0) {
        h->q_fd = h->ev_fd;
        return 0;
    }
    h->q_fd = open(o->quarantine_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (h->q_fd < 0) {
        logf_("error", "cannot open %s: %s", o->quarantine_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- loading -------------------------------------------------------------- */

static int load_pipeline(const options *o, pixel_pipeline **out)
{
    pixel_pipeline_options po = PIXEL_PIPELINE_OPTIONS_INIT;
    pixel_error err;
    char msg[1024];
    int rc;

    memset(&err, 0, sizeof(err));
    po.module_dirs = o->module_dirs;
    rc = pixel_pipeline_load_file(out, o->pipeline, &po, &err);
    if (rc != 0) {
        logf_("error", "pipeline %s: %s", o->pipeline, pixel_error_format(&err, msg, sizeof(msg)));
    }
    return rc;
}

#ifdef PIXEL_HAVE_DELIVERY
/* Does the delivery configuration set librdkafka's linger.ms (by either name)? */
static int sets_linger(const pixel_delivery_config *cfg)
{
    return pixel_delivery_config_get(cfg, "kafka.properties.linger.ms") != NULL ||
           pixel_delivery_config_get(cfg, "kafka.properties.queue.buffering.max.ms") != NULL;
}

static int load_delivery(const options *o, pixel_delivery_config **out)
{
    pixel_error err;
    char msg[1024];

    memset(&err, 0, sizeof(err));
    if (pixel_delivery_config_load_file(out, o->delivery, &err) != 0) {
        logf_("error", "delivery: %s", pixel_error_format(&err, msg, sizeof(msg)));
        return -1;
    }
    for (int i = 0; i < o->nsets; i++) {
        char name[128];
        const char *eq = strchr(o->sets[i], '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq - o->sets[i]), o->sets[i]);
        memset(&err, 0, sizeof(err));
        if (pixel_delivery_config_set(*out, name, eq + 1, &err) != 0) {
            logf_("error", "--set %s: %s", o->sets[i], pixel_error_format(&err, msg, sizeof(msg)));
            pixel_delivery_config_free(*out);
            *out = NULL;
            return -1;
        }
    }
    /*
     * linger.ms=0 unless the user chose a value (in the delivery section or
     * with --set).  rsyslog waits for our reply to every message (or
     * COMMIT), and we send it only once every record produced so far is
     * acknowledged: nothing more will come to batch with while we wait, so
     * lingering only adds its delay to every reply.  With librdkafka's
     * default (5 ms), one message at a time was capped at ~200 lines/s.
     * With 0, records produced while a request is in flight are still
     * batched into the next one.
     */
    if (!sets_linger(*out)) {
        if (pixel_delivery_config_set(*out, "kafka.properties.linger.ms", "0", &err) != 0) {
            logf_("error", "delivery: %s", pixel_error_format(&err, msg, sizeof(msg)));
            pixel_delivery_config_free(*out);
            *out = NULL;
            return -1;
        }
        logf_("info", "kafka linger.ms=0 (the delivery section does not set it)");
    }
    if (pixel_delivery_config_get(*out, "quarantine.file") == NULL &&
        pixel_delivery_config_get(*out, "quarantine.topic") == NULL) {
        logf_("error", "delivery: set quarantine.file or quarantine.topic: every quarantined "
                       "line must have a durable destination");
        pixel_delivery_config_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static int open_sink(host *h, const pixel_delivery_config *cfg, pixel_sink **out)
{
    pixel_sink_options so = PIXEL_SINK_OPTIONS_INIT;
    pixel_error err;
    char msg[1024];

    so.ack = ack_cb;
    so.ack_payload = h;
    so.log = sink_log_cb;
    memset(&err, 0, sizeof(err));
    if (pixel_sink_new(out, cfg, &so, &err) != 0) {
        logf_("error", "delivery: %s", pixel_error_format(&err, msg, sizeof(msg)));
        return -1;
    }
    return 0;
}

/* Is there a `delivery:` section?  (Only then do we need the sink.) */
static int has_delivery_section(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int found = 0;

    if (f == NULL) {
        return 0;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strncmp(line, "delivery:", 9) == 0;
    }
    fclose(f);
    return found;
}
#endif

static int use_files(const host *h)
{
    return h->ev_fd >= 0;
}

/*
 * Reload at a quiet point (nothing in flight).  The new pipeline and delivery
 * settings are loaded first; only when both are good is anything swapped.
 */
static void reload(host *h)
{
    pixel_pipeline *pl = NULL;

    reload_requested = 0;
    if (load_pipeline(h->o, &pl) != 0) {
        logf_("error", "reload failed: still serving pipeline %s %s", pixel_pipeline_name(h->pl),
              pixel_pipeline_version(h->pl));
        return;
    }
#ifdef PIXEL_HAVE_DELIVERY
    if (!use_files(h)) {
        pixel_delivery_config *cfg = NULL;
        pixel_sink *sink = NULL;
        if (load_delivery(h->o, &cfg) != 0) {
            logf_("error", "reload failed: still serving pipeline %s %s",
                  pixel_pipeline_name(h->pl), pixel_pipeline_version(h->pl));
            pixel_pipeline_free(pl);
            return;
        }
        /* The old sink must let go of its spool slot before the new one opens;
         * it holds nothing unacked here (we only reload when idle). */
        pixel_sink_free(h->sink);
        h->sink = NULL;
        if (open_sink(h, cfg, &sink) != 0) {
            pixel_delivery_config_free(cfg);
            pixel_pipeline_free(pl);
            logf_("error", "reload failed: keeping the old pipeline and delivery settings");
            if (open_sink(h, h->dcfg, &h->sink) != 0) {
                logf_("error", "cannot reopen the old sink either: exiting");
                term_requested = 1;
            }
            return;
        }
        pixel_delivery_config_free(h->dcfg);
        h->dcfg = cfg;
        h->sink = sink;
    }
#endif
    pixel_pipeline_free(h->pl);
    h->pl = pl;
    logf_("info", "reloaded %s: pipeline %s %s", h->o->pipeline, pixel_pipeline_name(pl),
          pixel_pipeline_version(pl));
}

/* ---- processing ----------------------------------------------------------- */

static void count_outcome(host *h, pixel_outcome out)
{
    const char *stage = NULL, *code = NULL;

    if ((out == PIXEL_OUTCOME_QUARANTINED || out == PIXEL_OUTCOME_DROPPED) &&
        pixel_ctx_reason_count(h->ctx) > 0) {
        const pixel_reason *r = pixel_ctx_reason(h->ctx, 0);
        stage = pixel_stage_str(r->stage);
        code = out == PIXEL_OUTCOME_DROPPED && r->source ? r->source : r->code;
    }
    pixel_metrics_line(h->metrics, out, stage, code);
}

#ifdef PIXEL_HAVE_DELIVERY
/* A field of the event as text for a Kafka key or header (strings and integers). */
static const char *field_text(pixel_ctx *ctx, const char *path, size_t *len, char *num,
                              size_t numsize)
{
    pixel_value *v;

    if (path == NULL || (v = pixel_value_at(pixel_ctx_event(ctx), path)) == NULL) {
        return NULL;
    }
    if (pixel_value_type(v) == PIXEL_TYPE_STRING) {
        return pixel_value_string(v, len);
    }
    if (pixel_value_type(v) == PIXEL_TYPE_INT) {
        *len = (size_t)snprintf(num, numsize, "%lld", (long long)pixel_value_int(v));
        return num;
    }
    return NULL;
}

static int sink_submit(host *h, pixel_outcome out, const char *json, size_t len, void *token,
                       pixel_error *err)
{
    char kbuf[32], tbuf[32], sbuf[32];
    pixel_sink_msg m;
    const char *ver;

    if (out == PIXEL_OUTCOME_QUARANTINED) {
        return pixel_sink_quarantine(h->sink, json, len, token, err);
    }
    memset(&m, 0, sizeof(m));
    m.value = json;
    m.value_len = len;
    m.key = field_text(h->ctx, pixel_delivery_config_get(h->dcfg, "kafka.key_field"), &m.key_len,
                       kbuf, sizeof(kbuf));
    m.type = field_text(h->ctx, pixel_delivery_config_get(h->dcfg, "kafka.type_field"),
                        &m.type_len, tbuf, sizeof(tbuf));
    m.schema_id = field_text(h->ctx, pixel_delivery_config_get(h->dcfg, "kafka.schema_field"),
                             &m.schema_id_len, sbuf, sizeof(sbuf));
    ver = pixel_pipeline_version(h->pl);
    m.pipeline_version = ver;
    m.pipeline_version_len = ver ? strlen(ver) : 0;
    return pixel_sink_produce(h->sink, &m, token, err);
}
#endif

/* Serve the sink for up to ms (file mode: just sleep on nothing). */
static void serve(host *h, int ms)
{
#ifdef PIXEL_HAVE_DELIVERY
    if (h->sink != NULL) {
        pixel_sink_poll(h->sink, ms);
        return;
    }
#endif
    (void)h;
    if (ms > 0) {
        poll(NULL, 0, ms);
    }
}

/* A keep-alive dot when one is due (rsyslog restarts its confirm timer on each). */
static void keepalive(host *h, int64_t *last)
{
    int64_t t = now_ms();
    if (t - *last >= h->o->keepalive_ms) {
        reply(".");
        *last = t;
    }
}

/*
 * Hand one processed line to its destination.  Returns 0 when accepted (an
 * ack will follow, or already came), 1 when nothing needs to be made
 * durable (skipped, dropped), -1 when it could not be accepted within
 * max_wait_ms (back-pressure) or failed.
 */
static int submit(host *h, pixel_outcome out, int64_t *dot)
{
    size_t len = 0;
    const char *json = pixel_ctx_output(h->ctx, h->pl, &len);

    if (out == PIXEL_OUTCOME_SKIPPED || out == PIXEL_OUTCOME_DROPPED) {
#ifdef PIXEL_HAVE_DELIVERY
        if (h->sink != NULL) {
            pixel_sink_count(h->sink, out);
        }
#endif
        return 1;
    }
    if (json == NULL) {
        logf_("error", "out of memory serializing a line");
        return -1;
    }
    if (use_files(h)) {
        if (append_line(out == PIXEL_OUTCOME_EVENT ? h->ev_fd : h->q_fd, json, len) != 0) {
            logf_("error", "write failed: %s", strerror(errno));
            return -1;
        }
        h->submitted++;
        h->acked++; /* durable at the next file_sync(), before any reply */
        return 0;
    }
#ifdef PIXEL_HAVE_DELIVERY
    int64_t start = now_ms();
    int logged = 0;
    for (;;) {
        pixel_error err;
        void *token = (void *)(uintptr_t)h->next_token;
        memset(&err, 0, sizeof(err));
        h->submitted++;
        int rc = sink_submit(h, out, json, len, token, &err);
        if (rc == 0) {
            h->next_token++;
            return 0;
        }
        h->submitted--;
        if (rc != PIXEL_DELIVERY_EFULL) {
            char msg[512];
            logf_("error", "delivery refused a record: %s",
                  pixel_error_format(&err, msg, sizeof(msg)));
            return -1;
        }
        if (!logged) {
            logf_("warning", "back-pressure: %s; waiting", err.text);
            logged = 1;
        }
        if (term_requested || now_ms() - start >= h->o->max_wait_ms) {
            return -1;
        }
        /* The output buffer of the sink is borrowed from ctx: keep json valid
         * by not touching ctx while we wait. */
        pixel_sink_poll(h->sink, 100);
        keepalive(h, dot);
    }
#else
    (void)dot;
    return -1;
#endif
}

/*
 * Wait until every record of the current batch is durable, sending
 * keep-alive dots.  Returns 0, or -1 when one failed, we are told to stop,
 * or max_wait_ms passed with no progress at all.
 */
static int wait_batch(host *h, int64_t *dot)
{
    int64_t last_progress = now_ms();
    uint64_t seen = h->acked;

    if (use_files(h)) {
        if (h->submitted > 0 && file_sync(h) != 0) {
            logf_("error", "fdatasync failed: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    /*
     * The poll timeout starts at 1 ms and doubles up to 50 ms, back to 1 ms
     * after each ack.  pixel_sink_poll() fsyncs (and acks) spooled records
     * before it waits for Kafka, so a spooled reply never waits out the
     * timeout; the short first timeouts date from when it fsync'd only
     * after the wait (a fixed 50 ms made every spooled reply wait 50 ms).
     * While Kafka is up a delivery report ends the wait at once, whatever
     * the timeout.
     */
    int wait_ms = 1;
    while (h->acked + h->failed < h->submitted) {
        serve(h, wait_ms);
        keepalive(h, dot);
        if (h->acked != seen) {
            seen = h->acked;
            last_progress = now_ms();
            wait_ms = 1;
        } else if (wait_ms < 50) {
            wait_ms = wait_ms * 2 < 50 ? wait_ms * 2 : 50;
        }
        if (term_requested) {
            return -1;
        }
        /* The sink always ends in an ack (Kafka or the spool); this only
         * guards against a sink that stopped making progress at all. */
        if (now_ms() - last_progress > 10 * (int64_t)h->o->max_wait_ms) {
            logf_("error", "no delivery progress for %d ms", 10 * h->o->max_wait_ms);
            return -1;
        }
    }
    return h->failed > 0 ? -1 : 0;
}

static void batch_start(host *h)
{
    h->first = h->next_token;
    h->submitted = h->acked = h->failed = 0;
    h->txn_failed = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    h->txn_start = (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void batch_done(host *h)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double secs = (double)ts.tv_sec + ts.tv_nsec / 1e9 - h->txn_start;
    for (uint64_t i = 0; i < h->acked; i++) {
        pixel_metrics_latency(h->metrics, secs);
    }
    h->first = h->next_token; /* late acks of a failed batch are ignored */
}

/* Process one line; returns 0 when handed over (or nothing to do), -1 on failure. */
static int process(host *h, const char *line, size_t len, int64_t *dot)
{
    pixel_outcome out = PIXEL_OUTCOME_PENDING;
    pixel_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = pixel_process(h->pl, h->ctx, line, len, &out, &err);
    if (rc != 0) {
        char msg[512];
        logf_("error", "line not processed: %s", pixel_error_format(&err, msg, sizeof(msg)));
        pixel_metrics_failure(h->metrics);
        return -1;
    }
    rc = submit(h, out, dot);
    if (rc < 0) {
        pixel_metrics_failure(h->metrics);
        return -1;
    }
    count_outcome(h, out);
    return 0;
}

static void handle_message(host *h, const char *line, size_t len)
{
    int64_t dot = now_ms();

    if (h->in_txn) {
        /* Never an error here (see the top of the file): a failure fails the COMMIT. */
        uint64_t before = h->submitted, done = h->acked;
        if (!h->txn_failed && process(h, line, len, &dot) != 0) {
            h->txn_failed = 1;
        }
        serve(h, 0);
        /* PREVIOUS_COMMITTED only when it is true: every earlier line of the
         * batch is acked by the sink (file mode syncs only at COMMIT). */
        int all_done = before > 0 && done == before && !h->txn_failed && !use_files(h);
        reply(all_done ? "PREVIOUS_COMMITTED\n" : "DEFER_COMMIT\n");
        return;
    }
    batch_start(h);
    if (process(h, line, len, &dot) != 0 || wait_batch(h, &dot) != 0) {
        batch_done(h);
        reply("ERROR: not durable, retry later\n");
        return;
    }
    batch_done(h);
    reply("OK\n");
}

static void handle_commit(host *h)
{
    int64_t dot = now_ms();
    int failed = h->txn_failed || wait_batch(h, &dot) != 0;

    batch_done(h);
    h->in_txn = 0;
    reply(failed ? "ERROR: transaction not durable, retry it\n" : "OK\n");
}

#ifdef PIXEL_HAVE_DELIVERY
/*
 * Spool size and the age of its oldest record, from the directory itself
 * (the sink does not expose its spool): every writer's segments, and the
 * timestamp of the first record of the oldest one.  Cheap: a directory
 * listing and one mapped header every few seconds.
 */
static void spool_metrics(host *h)
{
    const char *dir = pixel_delivery_config_get(h->dcfg, "spool.dir");
    pixel_spool_segment *segs = NULL;
    size_t n = 0;
    uint64_t bytes = 0;
    double age = 0;
    pixel_error err;

    memset(&err, 0, sizeof(err));
    if (dir == NULL || pixel_spool_segments(dir, &segs, &n, &err) != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bytes += segs[i].size;
    }
    for (size_t i = 0; i < n && age == 0; i++) {
        pixel_spool_reader *r = NULL;
        pixel_spool_msg m;
        if (segs[i].size <= 16 || pixel_spool_reader_open(&r, segs[i].path, &err) != 0) {
            continue;
        }
        if (pixel_spool_reader_next(r, &m, NULL, NULL, &err) == PIXEL_SPOOL_RECORD) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            age = ((double)ts.tv_sec * 1000 + ts.tv_nsec / 1e6 - (double)m.timestamp_ms) / 1000;
        }
        pixel_spool_reader_close(r);
    }
    pixel_spool_segments_free(segs, n);
    pixel_metrics_set(h->metrics, "pixel_spool_bytes", "gauge",
                      "Bytes in the spool directory's segments (all writers).", (double)bytes);
    pixel_metrics_set(h->metrics, "pixel_spool_oldest_record_age_seconds", "gauge",
                      "Age of the oldest record waiting in the spool (0: empty).",
                      age > 0 ? age : 0);
}
#endif

static void publish_metrics(host *h, int force)
{
    int64_t t = now_ms();

    if (h->metrics == NULL || (!force && t - h->last_metrics_ms < 1000)) {
        return;
    }
    h->last_metrics_ms = t;
#ifdef PIXEL_HAVE_DELIVERY
    if (h->sink != NULL) {
        pixel_sink_stats st;
        pixel_sink_stats_get(h->sink, &st);
        pixel_metrics_set(h->metrics, "pixel_delivery_pending", "gauge",
                          "Inputs handed to the sink and not yet durable.",
                          (double)(st.events_pending + st.quarantine_pending));
        pixel_metrics_set(h->metrics, "pixel_delivery_delivered_total", "counter",
                          "Events confirmed by Kafka.", (double)st.delivered);
        pixel_metrics_set(h->metrics, "pixel_delivery_spooled_total", "counter",
                          "Events written to the spool.", (double)st.spooled);
        pixel_metrics_set(h->metrics, "pixel_delivery_failed_total", "counter",
                          "Inputs acked as not durable (an fsync failed): rsyslog retries them.",
                          (double)(st.events_failed + st.quarantine_failed));
        pixel_metrics_set(h->metrics, "pixel_delivery_failovers_total", "counter",
                          "Switches from Kafka to the spool.", (double)st.failovers);
        pixel_metrics_set(h->metrics, "pixel_delivery_backpressure_total", "counter",
                          "Inputs refused while the spool was full.", (double)st.backpressure);
        pixel_metrics_set(h->metrics, "pixel_delivery_failed_over", "gauge",
                          "1 while events go to the spool instead of Kafka.",
                          pixel_sink_state_get(h->sink) == PIXEL_SINK_SPOOL ? 1 : 0);
        spool_metrics(h);
    }
#endif
    if (h->o->metrics_file != NULL && pixel_metrics_write_file(h->metrics, h->o->metrics_file)) {
        logf_("warning", "metrics file %s: %s", h->o->metrics_file, strerror(errno));
    }
}

/* ---- main ------------------------------------------------------------------- */

static int usage_to(FILE *out, int status)
{
    fputs("usage: pixel-omprog [options] PIPELINE.yaml\n"
          "  --delivery PATH         YAML file with the delivery: section (default: the pipeline)\n"
          "  --set NAME=VALUE        override a delivery setting (kafka.brokers, spool.dir, ...)\n"
          "  --events-file PATH      file mode: append events here instead of the sink\n"
          "  --quarantine-file PATH  file mode: quarantine records (default: the events file)\n"
          "  --metrics-file PATH     Prometheus textfile, rewritten atomically every second\n"
          "  --metrics-port PORT     serve metrics on 127.0.0.1:PORT\n"
          "  --keepalive-ms N        keep-alive dot interval while waiting (1000)\n"
          "  --max-wait-ms N         back-pressure wait before an error reply (30000; ten\n"
          "                          times that for a line the sink took but cannot make\n"
          "                          durable)\n"
          "  --reload-signal NAME    HUP (default), USR1 or USR2\n"
          "  --module-dir DIR        extra directory for interceptor modules\n"
          "  --begin-mark TEXT       rsyslog's beginTransactionMark (BEGIN TRANSACTION)\n"
          "  --commit-mark TEXT      rsyslog's commitTransactionMark (COMMIT TRANSACTION)\n"
          TOOL_VERSION_HELP,
          out);
    return status;
}

static int usage(void)
{
    return usage_to(stderr, 2);
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"set", required_argument, NULL, 'S'},
        {"delivery", required_argument, NULL, 'D'},
        {"events-file", required_argument, NULL, 'e'},
        {"quarantine-file", required_argument, NULL, 'q'},
        {"metrics-file", required_argument, NULL, 'm'},
        {"metrics-port", required_argument, NULL, 'p'},
        {"keepalive-ms", required_argument, NULL, 'k'},
        {"max-wait-ms", required_argument, NULL, 'w'},
        {"reload-signal", required_argument, NULL, 's'},
        {"module-dir", required_argument, NULL, 'M'},
        {"begin-mark", required_argument, NULL, 'B'},
        {"commit-mark", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *dirs[2];
    int c;

    while ((c = getopt_long(argc, argv, "S:D:e:q:m:p:k:w:s:M:B:C:h", longs, NULL)) != -1) {
        switch (c) {
            case 'S':
                if (o->nsets == MAX_SETS || strchr(optarg, '=') == NULL) {
                    return -1;
                }
                o->sets[o->nsets++] = optarg;
                break;
            case 'D':
                o->delivery = optarg;
                break;
            case 'e':
                o->events_file = optarg;
                break;
            case 'q':
                o->quarantine_file = optarg;
                break;
            case 'm':
                o->metrics_file = optarg;
                break;
            case 'p':
                o->metrics_port = (int)strtol(optarg, NULL, 10);
                break;
            case 'k':
                o->keepalive_ms = (int)strtol(optarg, NULL, 10);
                break;
            case 'w':
                o->max_wait_ms = (int)strtol(optarg, NULL, 10);
                break;
            case 's':
                o->reload_signal = strcmp(optarg, "USR1") == 0   ? SIGUSR1
                                   : strcmp(optarg, "USR2") == 0 ? SIGUSR2
                                   : strcmp(optarg, "HUP") == 0  ? SIGHUP
                                                                 : -1;
                if (o->reload_signal < 0) {
                    return -1;
                }
                break;
            case 'M':
                dirs[0] = optarg;
                o->module_dirs = dirs;
                break;
            case 'B':
                o->begin_mark = optarg;
                break;
            case 'C':
                o->commit_mark = optarg;
                break;
            default:
                return -1;
        }
    }
    if (optind != argc - 1 || o->keepalive_ms <= 0 || o->max_wait_ms <= 0) {
        return -1;
    }
    o->pipeline = argv[optind];
    if (o->delivery == NULL) {
        o->delivery = o->pipeline;
    }
    return 0;
}

static void install_signals(const options *o)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_reload;
    sigaction(o->reload_signal, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a vanished rsyslog shows as EPIPE */
}

/* The ERROR reply of a failed start, with the reason logged last: rsyslog
 * puts the line in its own log, so it must say why on its own. */
static void reply_start_error(const char *what)
{
    char text[sizeof(last_error) + 128];

    pthread_mutex_lock(&last_error_lock);
    if (last_error[0] != '\0') {
        snprintf(text, sizeof(text), "ERROR: %s: %s", what, last_error);
    } else {
        snprintf(text, sizeof(text), "ERROR: %s", what);
    }
    pthread_mutex_unlock(&last_error_lock);
    text[strcspn(text, "\r\n")] = '\0'; /* one line, whatever the message held */
    strcat(text, "\n");
    reply(text);
}

/* Load everything; on failure say so on stdout (rsyslog logs a non-OK line). */
static int start(host *h)
{
    if (load_pipeline(h->o, &h->pl) != 0 || (h->ctx = pixel_ctx_new()) == NULL) {
        reply_start_error("cannot load the pipeline");
        return -1;
    }
    if (h->o->events_file != NULL) {
        if (open_files(h) != 0) {
            reply_start_error("cannot open the output files");
            return -1;
        }
        return 0;
    }
#ifdef PIXEL_HAVE_DELIVERY
    if (has_delivery_section(h->o->delivery)) {
        if (load_delivery(h->o, &h->dcfg) != 0 || open_sink(h, h->dcfg, &h->sink) != 0) {
            reply_start_error("cannot start delivery");
            return -1;
        }
        return 0;
    }
#endif
    logf_("error", "%s has no delivery: section and no --events-file was given", h->o->delivery);
    reply_start_error("no destination configured");
    return -1;
}

static void finish(host *h)
{
#ifdef PIXEL_HAVE_DELIVERY
    if (h->sink != NULL) {
        pixel_error err;
        memset(&err, 0, sizeof(err));
        /* Whatever Kafka does not confirm now is spooled by pixel_sink_free(). */
        pixel_sink_flush(h->sink, 5000, &err);
        publish_metrics(h, 1);
        pixel_sink_free(h->sink);
        h->sink = NULL;
    }
    pixel_delivery_config_free(h->dcfg);
#endif
    if (h->ev_fd >= 0) {
        file_sync(h);
        publish_metrics(h, 1);
        if (h->q_fd != h->ev_fd) {
            close(h->q_fd);
        }
        close(h->ev_fd);
    }
    pixel_ctx_free(h->ctx);
    pixel_pipeline_free(h->pl);
}

static void loop(host *h)
{
    const char *begin = h->o->begin_mark ? h->o->begin_mark : "BEGIN TRANSACTION";
    const char *commit = h->o->commit_mark ? h->o->commit_mark : "COMMIT TRANSACTION";
    size_t blen = strlen(begin), clen = strlen(commit);
    reader r = {0};

    while (!term_requested) {
        size_t len;
        int timed_out;
        char *line;

        if (reload_requested && !h->in_txn) {
            reload(h);
        }
        publish_metrics(h, 0);
        line = read_line(&r, &len, 50, &timed_out);
        if (line == NULL) {
            if (timed_out) {
                serve(h, 0);
                continue;
            }
            break; /* end of input: rsyslog closed the pipe */
        }
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        if (len == blen && memcmp(line, begin, blen) == 0) {
            batch_start(h);
            h->in_txn = 1;
            reply("OK\n");
        } else if (len == clen && memcmp(line, commit, clen) == 0) {
            handle_commit(h);
        } else {
            handle_message(h, line, len);
        }
    }
    free(r.buf);
}

int main(int argc, char **argv)
{
    options o = {.metrics_port = -1, .keepalive_ms = 1000, .max_wait_ms = 30000,
                 .reload_signal = SIGHUP};
    host h = {.o = &o, .ev_fd = -1, .q_fd = -1, .next_token = 1};
    int rc = 0;
    if (tool_version_asked(argc, argv, "pixel-omprog")) {
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        return usage_to(stdout, 0); /* help asked for: stdout, status 0 */
    }

    if (parse_args(argc, argv, &o) != 0) {
        return usage();
    }
    install_signals(&o);
    if (o.metrics_file != NULL || o.metrics_port >= 0) {
        h.metrics = pixel_metrics_new("pixel-omprog");
        if (h.metrics != NULL && o.metrics_port >= 0 && pixel_metrics_listen(h.metrics, o.metrics_port) < 0) {
            logf_("warning", "metrics listener on 127.0.0.1:%d: %s", o.metrics_port,
                  strerror(errno));
        }
    }
    if (start(&h) != 0) {
        rc = 1;
    } else {
        logf_("info", "ready: pipeline %s %s from %s", pixel_pipeline_name(h.pl),
              pixel_pipeline_version(h.pl), o.pipeline);
        reply("OK\n");
        loop(&h);
    }
    finish(&h);
    pixel_metrics_free(h.metrics);
    return rc;
}
