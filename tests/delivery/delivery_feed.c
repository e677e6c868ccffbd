/*
 * delivery-feed: the producing process of the delivery integration tests
 * and of the benchmark.  It plays the host (like pixelconv --kafka or the
 * omprog host): one input line at a time into a pixel_sink, acks recorded.
 *
 *   delivery-feed -c CONFIG.yaml [options] INPUT
 *
 *   -p PIPELINE  INPUT is raw log lines, run through libpixel (pixel_process)
 *   -j           INPUT is already converted, one input per line:
 *                "E\t<type>\t<key>\t<event json>", "Q\t<quarantine json>",
 *                "S" (skipped) or "D" (dropped); the converting host knows the
 *                key and type, so the feed does not parse the JSON again
 *   -b SERVERS   override delivery.kafka.brokers
 *   -s DIR       override delivery.spool.dir
 *   -A FILE      append "<line number> <ack status>\n" for every acked input
 *   -R FILE      skip the lines listed in FILE (an -A file of an earlier,
 *                killed run): the host resends only what was never acked
 *   -m FIFO      the mock cluster's control FIFO, for -x
 *   -x N:CMD     before line N, write CMD ("down all", "up all") to the FIFO;
 *                after a "down", wait until the sink has failed over
 *   -K N         SIGKILL ourselves before line N (a crash, deterministic)
 *   -S FILE      write the final counters as JSON
 *   -O FILE      write each event's JSON as handed to the sink, one per line
 *   -T           with -p: convert on a second thread, in batches, while this
 *                thread delivers (how a host overlaps transform and transport)
 *
 * After every line the counters must add up (lines = events_in +
 * quarantine_in + skipped + dropped, events_in = delivered + spooled +
 * pending); exit 4 if they ever do not.  Exit 0 when every input was acked
 * as durable, 3 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixel/delivery.h"

#ifdef FEED_WITH_CORE
#include "pixel/value.h"
#endif

#define MAX_CMDS 8

static FILE *ackf;
static FILE *sentf; /* -O */
static uint64_t acked_ok, acked_bad;
static unsigned char *skip; /* lines to skip (-R), by number */
static size_t nskip;

static void on_ack(void *token, int status, void *payload)
{
    (void)payload;
    if (status > 0) {
        acked_ok++;
    } else {
        acked_bad++;
    }
    if (ackf != NULL && status > 0) {
        fprintf(ackf, "%" PRIuPTR " %d\n", (uintptr_t)token, status);
    }
}

static void on_log(int level, const char *line, void *payload)
{
    (void)payload;
    if (level <= PIXEL_LOG_NOTICE) {
        fprintf(stderr, "delivery-feed: %s\n", line);
    }
}

static int die(const char *what, const pixel_error *e)
{
    fprintf(stderr, "delivery-feed: %s: %s%s%s\n", what, e ? e->source : "",
            e && e->source[0] ? ": " : "", e ? e->text : strerror(errno));
    return 2;
}

static void load_skip(const char *path)
{
    FILE *f = fopen(path, "r");
    uintptr_t n;
    int st;

    if (f == NULL) {
        return;
    }
    while (fscanf(f, "%" SCNuPTR " %d", &n, &st) == 2) {
        if (n >= nskip) {
            size_t nn = (n + 1) * 2;
            unsigned char *ns = realloc(skip, nn);
            if (ns == NULL) {
                break;
            }
            memset(ns + nskip, 0, nn - nskip);
            skip = ns;
            nskip = nn;
        }
        skip[n] = 1;
    }
    fclose(f);
}

typedef struct feed {
    pixel_sink *sink;
    const pixel_delivery_config *cfg;
    uint64_t lines;
} feed;

/* Hand one input to the sink, waiting out back-pressure (never dropping). */
static int send_event(feed *f, pixel_sink_msg *m, uintptr_t token)
{
    int rc;
    int logged = 0;

    if (sentf != NULL) {
        fwrite(m->value, 1, m->value_len, sentf);
        fputc('\n', sentf);
    }
    while ((rc = pixel_sink_produce(f->sink, m, (void *)token, NULL)) == PIXEL_DELIVERY_EFULL) {
        if (!logged) {
            fprintf(stderr, "delivery-feed: back-pressure at line %" PRIuPTR "\n", token);
            logged = 1;
        }
        pixel_sink_poll(f->sink, 100);
    }
    return rc;
}

static int send_quarantine(feed *f, const char *json, size_t len, uintptr_t token)
{
    int rc;

    while ((rc = pixel_sink_quarantine(f->sink, json, len, (void *)token, NULL)) ==
           PIXEL_DELIVERY_EFULL) {
        pixel_sink_poll(f->sink, 100);
    }
    return rc;
}

/* The next tab-separated field of [*p, end); NULL when there is none. */
static const char *field(const char **p, const char *end, size_t *len)
{
    const char *start = *p, *tab = memchr(start, '\t', (size_t)(end - start));

    if (tab == NULL) {
        return NULL;
    }
    *len = (size_t)(tab - start);
    *p = tab + 1;
    return start;
}

static int feed_json(feed *f, char *line, size_t len, uintptr_t token)
{
    const char *p = line + 2, *end = line + len;
    pixel_sink_msg m;

    if (len >= 2 && line[0] == 'Q' && line[1] == '\t') {
        return send_quarantine(f, line + 2, len - 2, token);
    }
    if (len < 2 || line[0] != 'E' || line[1] != '\t') {
        pixel_sink_count(f->sink, line[0] == 'D' ? PIXEL_OUTCOME_DROPPED : PIXEL_OUTCOME_SKIPPED);
        on_ack((void *)token, 1, NULL); /* settled by the host itself */
        return 0;
    }
    memset(&m, 0, sizeof(m));
    m.type = field(&p, end, &m.type_len);
    m.key = field(&p, end, &m.key_len);
    if (m.type == NULL || m.key == NULL) {
        fprintf(stderr, "delivery-feed: line %" PRIuPTR ": expected E<TAB>type<TAB>key<TAB>json\n",
                token);
        return -1;
    }
    m.value = p;
    m.value_len = (size_t)(end - p);
    m.pipeline_version = "feed";
    m.pipeline_version_len = 4;
    return send_event(f, &m, token);
}

#ifdef FEED_WITH_CORE
static int feed_raw(feed *f, const pixel_pipeline *p, pixel_ctx *ctx, const char *line, size_t len,
                    uintptr_t token)
{
    const char *kf = pixel_delivery_config_get(f->cfg, "kafka.key_field");
    const char *tf = pixel_delivery_config_get(f->cfg, "kafka.type_field");
    pixel_outcome outcome;
    pixel_sink_msg m;
    const char *out;
    size_t olen;

    if (pixel_process(p, ctx, line, len, &outcome, NULL) != 0) {
        return -1;
    }
    if (outcome == PIXEL_OUTCOME_SKIPPED || outcome == PIXEL_OUTCOME_DROPPED) {
        pixel_sink_count(f->sink, outcome);
        on_ack((void *)token, 1, NULL);
        return 0;
    }
    out = pixel_ctx_output(ctx, p, &olen);
    if (out == NULL) {
        return -1;
    }
    if (outcome == PIXEL_OUTCOME_QUARANTINED) {
        return send_quarantine(f, out, olen, token);
    }
    memset(&m, 0, sizeof(m));
    m.value = out;
    m.value_len = olen;
    if (kf != NULL) {
        m.key = pixel_value_string(pixel_value_at(pixel_ctx_event(ctx), kf), &m.key_len);
    }
    if (tf != NULL) {
        m.type = pixel_value_string(pixel_value_at(pixel_ctx_event(ctx), tf), &m.type_len);
    }
    m.pipeline_version = pixel_pipeline_version(p);
    m.pipeline_version_len = m.pipeline_version ? strlen(m.pipeline_version) : 0;
    return send_event(f, &m, token);
}
#endif

#ifdef FEED_WITH_CORE
/*
 * -T: a converter thread turns raw lines into the -j format ("E\ttype\tkey\t
 * json", "Q\tjson", "S", "D") in batches; the main thread delivers them.
 */
#define BATCH_LINES 2048
#define QUEUE_SLOTS 4

typedef struct cbatch {
    char *buf;
    size_t len, cap;
} cbatch;

typedef struct conveyor {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cbatch *q[QUEUE_SLOTS];
    size_t head, count;
    int done, failed;
    FILE *in;
    const pixel_pipeline *p;
    const pixel_delivery_config *cfg;
} conveyor;

static int cput(cbatch *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *nb = realloc(b->buf, cap);
        if (nb == NULL) {
            return -1;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    return 0;
}

static void cpush(conveyor *c, cbatch *b)
{
    pthread_mutex_lock(&c->mu);
    while (c->count == QUEUE_SLOTS) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    c->q[(c->head + c->count++) % QUEUE_SLOTS] = b;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* The next batch, or NULL at the end. */
static cbatch *cpop(conveyor *c)
{
    cbatch *b = NULL;

    pthread_mutex_lock(&c->mu);
    while (c->count == 0 && !c->done) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    if (c->count > 0) {
        b = c->q[c->head];
        c->head = (c->head + 1) % QUEUE_SLOTS;
        c->count--;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

static int convert_line(cbatch *b, const conveyor *c, pixel_ctx *ctx, const char *line, size_t n)
{
    const char *kf = pixel_delivery_config_get(c->cfg, "kafka.key_field");
    const char *tf = pixel_delivery_config_get(c->cfg, "kafka.type_field");
    pixel_outcome oc;
    const char *out, *key = NULL, *type = NULL;
    size_t olen, klen = 0, tlen = 0;

    if (pixel_process(c->p, ctx, line, n, &oc, NULL) != 0) {
        return -1;
    }
    if (oc == PIXEL_OUTCOME_SKIPPED || oc == PIXEL_OUTCOME_DROPPED) {
        return cput(b, oc == PIXEL_OUTCOME_SKIPPED ? "S\n" : "D\n", 2);
    }
    out = pixel_ctx_output(ctx, c->p, &olen);
    if (out == NULL) {
        return -1;
    }
    if (oc == PIXEL_OUTCOME_QUARANTINED) {
        /* || sequences the appends (| would not) and stops at a failure. */
        return (cput(b, "Q\t", 2) || cput(b, out, olen) || cput(b, "\n", 1)) ? -1 : 0;
    }
    if (kf != NULL) {
        key = pixel_value_string(pixel_value_at(pixel_ctx_event(ctx), kf), &klen);
    }
    if (tf != NULL) {
        type = pixel_value_string(pixel_value_at(pixel_ctx_event(ctx), tf), &tlen);
    }
    return (cput(b, "E\t", 2) || cput(b, type ? type : "", tlen) || cput(b, "\t", 1) ||
            cput(b, key ? key : "", klen) || cput(b, "\t", 1) || cput(b, out, olen) ||
            cput(b, "\n", 1))
               ? -1
               : 0;
}

static void *converter(void *arg)
{
    conveyor *c = arg;
    pixel_ctx *ctx = pixel_ctx_new();
    char *line = NULL;
    size_t cap = 0, lines = 0;
    ssize_t n;
    cbatch *b = calloc(1, sizeof(*b));

    while (ctx != NULL && b != NULL && (n = getline(&line, &cap, c->in)) > 0) {
        if (line[n - 1] == '\n') {
            n--;
        }
        if (convert_line(b, c, ctx, line, (size_t)n) != 0) {
            c->failed = 1;
            break;
        }
        if (++lines == BATCH_LINES) {
            cpush(c, b);
            b = calloc(1, sizeof(*b));
            lines = 0;
        }
    }
    if (b != NULL && b->len > 0) {
        cpush(c, b);
    } else if (b != NULL) {
        free(b);
    }
    free(line);
    pixel_ctx_free(ctx);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
#endif

static int counters_ok(feed *f)
{
    pixel_sink_stats st;

    pixel_sink_stats_get(f->sink, &st);
    return st.events_in == st.delivered + st.spooled + st.events_pending &&
           st.quarantine_in == st.quarantined + st.quarantine_pending &&
           f->lines == st.events_in + st.quarantine_in + st.skipped + st.dropped;
}

static void mock_cmd(const char *fifo, const char *cmd)
{
    int fd = open(fifo, O_WRONLY);
    char line[128];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);

    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "delivery-feed: cannot send \"%s\" to %s\n", cmd, fifo);
    }
    if (fd >= 0) {
        close(fd);
    }
}

int main(int argc, char **argv)
{
    const char *config = NULL, *pipeline = NULL, *brokers = NULL, *spool = NULL;
    const char *fifo = NULL, *statsf = NULL;
    struct {
        uint64_t at;
        char cmd[64];
    } cmds[MAX_CMDS];
    int ncmds = 0, json_mode = 0, threaded = 0, opt, rc = 0;
    uint64_t kill_at = 0, lineno = 0;
    pixel_delivery_config *cfg = NULL;
    pixel_sink_options so = PIXEL_SINK_OPTIONS_INIT;
    pixel_sink_stats st;
    pixel_error e;
    feed f;
    FILE *in;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
#ifdef FEED_WITH_CORE
    pixel_pipeline *p = NULL;
    pixel_ctx *ctx = NULL;
#endif

    while ((opt = getopt(argc, argv, "c:p:jTb:s:A:R:m:x:K:S:O:")) != -1) {
        switch (opt) {
            case 'c':
                config = optarg;
                break;
            case 'p':
                pipeline = optarg;
                break;
            case 'j':
                json_mode = 1;
                break;
            case 'T':
                threaded = 1;
                break;
            case 'b':
                brokers = optarg;
                break;
            case 's':
                spool = optarg;
                break;
            case 'A':
                ackf = fopen(optarg, "a");
                if (ackf == NULL) {
                    return die(optarg, NULL);
                }
                setvbuf(ackf, NULL, _IOLBF, 0); /* a SIGKILL must not lose acks we wrote */
                break;
            case 'R':
                load_skip(optarg);
                break;
            case 'm':
                fifo = optarg;
                break;
            case 'x':
                if (ncmds < MAX_CMDS) {
                    char *colon = strchr(optarg, ':');
                    if (colon == NULL) {
                        return 2;
                    }
                    cmds[ncmds].at = strtoull(optarg, NULL, 10);
                    snprintf(cmds[ncmds].cmd, sizeof(cmds[ncmds].cmd), "%s", colon + 1);
                    ncmds++;
                }
                break;
            case 'K':
                kill_at = strtoull(optarg, NULL, 10);
                break;
            case 'S':
                statsf = optarg;
                break;
            case 'O':
                sentf = fopen(optarg, "w");
                if (sentf == NULL) {
                    return die(optarg, NULL);
                }
                break;
            default:
                return 2;
        }
    }
    if (config == NULL || optind + 1 != argc || (pipeline == NULL) == (json_mode == 0)) {
        fputs("usage: delivery-feed -c CONFIG (-p PIPELINE | -j) [options] INPUT\n", stderr);
        return 2;
    }
    memset(&e, 0, sizeof(e));
    if (pixel_delivery_config_load_file(&cfg, config, &e) != 0 ||
        (brokers && pixel_delivery_config_set(cfg, "kafka.brokers", brokers, &e) != 0) ||
        (spool && pixel_delivery_config_set(cfg, "spool.dir", spool, &e) != 0)) {
        return die("config", &e);
    }
#ifdef FEED_WITH_CORE
    if (pipeline != NULL) {
        ctx = pixel_ctx_new();
        if (ctx == NULL || pixel_pipeline_load_file(&p, pipeline, NULL, &e) != 0) {
            return die("pipeline", &e);
        }
    }
#else
    (void)threaded;
    if (pipeline != NULL) {
        fputs("delivery-feed: built without libpixel; use -j\n", stderr);
        return 77;
    }
#endif
    so.ack = on_ack;
    so.log = on_log;
    if (pixel_sink_new(&f.sink, cfg, &so, &e) != 0) {
        return die("sink", &e);
    }
    f.cfg = cfg;
    f.lines = 0;
    in = fopen(argv[optind], "r");
    if (in == NULL) {
        return die(argv[optind], NULL);
    }
#ifdef FEED_WITH_CORE
    conveyor conv;
    pixel_pipeline *owned = NULL;
    cbatch *cur = NULL;
    size_t cur_off = 0;
    pthread_t conv_thread;

    memset(&conv, 0, sizeof(conv));
    if (threaded && p != NULL) {
        pthread_mutex_init(&conv.mu, NULL);
        pthread_cond_init(&conv.cv, NULL);
        conv.in = in;
        conv.p = p;
        conv.cfg = cfg;
        pthread_create(&conv_thread, NULL, converter, &conv);
        owned = p;
        p = NULL; /* the main thread now reads converted lines */
        json_mode = 1;
    }
#endif
    for (;;) {
#ifdef FEED_WITH_CORE
        if (conv.in != NULL) {
            /* The next converted line, from the current or the next batch. */
            char *nl;
            while (cur == NULL || cur_off >= cur->len) {
                if (cur != NULL) {
                    free(cur->buf);
                    free(cur);
                }
                cur = cpop(&conv);
                cur_off = 0;
                if (cur == NULL) {
                    break;
                }
            }
            if (cur == NULL) {
                break;
            }
            nl = memchr(cur->buf + cur_off, '\n', cur->len - cur_off);
            line = cur->buf + cur_off;
            n = nl - line;
            *nl = '\0';
            cur_off += (size_t)n + 1;
        } else
#endif
        {
            n = getline(&line, &cap, in);
            if (n <= 0) {
                break;
            }
        }
        lineno++;
        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (kill_at != 0 && lineno == kill_at) {
            fflush(NULL);
            raise(SIGKILL);
        }
        for (int i = 0; i < ncmds; i++) {
            if (cmds[i].at == lineno && fifo != NULL) {
                mock_cmd(fifo, cmds[i].cmd);
                for (int t = 0; strncmp(cmds[i].cmd, "down", 4) == 0 && t < 1200 &&
                                pixel_sink_state_get(f.sink) != PIXEL_SINK_SPOOL;
                     t++) {
                    pixel_sink_poll(f.sink, 50);
                }
            }
        }
        if (lineno < nskip && skip[lineno]) {
            continue;
        }
        f.lines++;
#ifdef FEED_WITH_CORE
        if (p != NULL) {
            rc = feed_raw(&f, p, ctx, line, (size_t)n, (uintptr_t)lineno);
        } else
#endif
        {
            rc = feed_json(&f, line, (size_t)n, (uintptr_t)lineno);
        }
        if (rc != 0) {
            fprintf(stderr, "delivery-feed: line %" PRIu64 ": status %d\n", lineno, rc);
            break;
        }
        if (!counters_ok(&f)) {
            fprintf(stderr, "delivery-feed: counters do not add up at line %" PRIu64 "\n", lineno);
            rc = 4;
            break;
        }
    }
#ifdef FEED_WITH_CORE
    if (conv.in != NULL) {
        /* Drain what the converter still holds, then join it. */
        line = NULL;
        while (cur != NULL || (cur = cpop(&conv)) != NULL) {
            free(cur->buf);
            free(cur);
            cur = NULL;
        }
        pthread_join(conv_thread, NULL);
        if (conv.failed && rc == 0) {
            fprintf(stderr, "delivery-feed: the converter failed\n");
            rc = 3;
        }
    }
#endif
    free(line);
    fclose(in);
    if (rc == 0 && pixel_sink_flush(f.sink, 120000, &e) != 0) {
        fprintf(stderr, "delivery-feed: %s\n", e.text);
        rc = 3;
    }
    pixel_sink_stats_get(f.sink, &st);
    if (rc == 0 && !counters_ok(&f)) {
        rc = 4;
    }
    pixel_sink_free(f.sink);
    if (statsf != NULL) {
        FILE *sf = fopen(statsf, "w");
        if (sf != NULL) {
            fprintf(sf,
                    "{\"lines\":%" PRIu64 ",\"events_in\":%" PRIu64 ",\"delivered\":%" PRIu64
                    ",\"spooled\":%" PRIu64 ",\"quarantine_in\":%" PRIu64
                    ",\"quarantined\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"dropped\":%" PRIu64
                    ",\"failovers\":%" PRIu64 ",\"recoveries\":%" PRIu64 ",\"probes\":%" PRIu64
                    ",\"backpressure\":%" PRIu64 ",\"acked_ok\":%" PRIu64 ",\"acked_bad\":%" PRIu64
                    "}\n",
                    f.lines, st.events_in, st.delivered, st.spooled, st.quarantine_in,
                    st.quarantined, st.skipped, st.dropped, st.failovers, st.recoveries, st.probes,
                    st.backpressure, acked_ok, acked_bad);
            fclose(sf);
        }
    }
#ifdef FEED_WITH_CORE
    pixel_pipeline_free(owned);
    pixel_pipeline_free(p);
    pixel_ctx_free(ctx);
#endif
    pixel_delivery_config_free(cfg);
    free(skip);
    if (ackf != NULL) {
        fclose(ackf);
    }
    if (sentf != NULL) {
        fclose(sentf);
    }
    if (rc == 0 && (acked_bad > 0 || acked_ok != f.lines)) {
        fprintf(stderr, "delivery-feed: %" PRIu64 " of %" PRIu64 " inputs acked as durable\n",
                acked_ok, f.lines);
        rc = 3;
    }
    return rc;
}
