/*
 * pixel-replay: feed what the sink could not deliver back into Kafka, offline.
 *
 *   pixel-replay -c PIPELINE.yaml [options]                 replay the spool
 *   pixel-replay -c PIPELINE.yaml -q QUARANTINE.jsonl...    re-run quarantined lines
 *
 * Spool mode reads every sealed segment in order, produces each record to
 * the topic it was spooled for, checkpoints progress (resumable after a
 * crash), and removes (or, with -a, archives) finished segments.
 *
 * Quarantine mode takes JSON Lines whose "raw" member (or, for a line that
 * was not UTF-8, "raw_base64") holds the original log line, runs each raw line through the pipeline of -c again (after the
 * mapping was fixed) and sends the results through the regular sink (with
 * its failover): events to Kafka, lines still rejected to the quarantine
 * destination.  Event IDs are deterministic, so running a file twice only
 * makes duplicates that consumers drop.
 *
 * Options:
 *   -c FILE     pipeline YAML with a delivery: section (required)
 *   -b SERVERS  override delivery.kafka.brokers
 *   -s DIR      override delivery.spool.dir
 *   -a DIR      archive finished segments here instead of removing them
 *   -r N        at most N records per second
 *   -k N        checkpoint every N confirmed records (default 1000)
 *   -t MS       give up when Kafka confirms nothing for MS (default 60000)
 *   -q          the remaining arguments are quarantine files
 *   -v          log more (to stderr)
 *
 * Exit status: 0 done, 1 damaged records were skipped or records Kafka
 * refused were set aside (all else done),
 * 2 usage or configuration error, 3 Kafka stopped confirming (resume later).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixel/delivery.h"

#include "../common/version.h"

#ifdef PIXEL_REPLAY_WITH_CORE
#include <jansson.h>
#endif

static int verbose;

static void on_log(int level, const char *line, void *payload)
{
    (void)payload;
    if (level <= PIXEL_LOG_NOTICE || verbose) {
        fprintf(stderr, "pixel-replay: %s\n", line);
    }
}

static int usage_to(FILE *out, int status)
{
    fputs("usage: pixel-replay -c PIPELINE.yaml [-b SERVERS] [-s DIR] [-a DIR] [-r N] [-k N]"
          " [-t MS] [-v]\n"
          "       pixel-replay -c PIPELINE.yaml [-b SERVERS] -q QUARANTINE.jsonl...\n"
          "Replays the spool of the pipeline's delivery: section to Kafka, in order and\n"
          "resumably (a checkpoint per segment); with -q, runs the raw lines of quarantine\n"
          "files through the (fixed) pipeline again.\n"
          "  -c FILE     the pipeline file (its delivery: section)\n"
          "  -b SERVERS  override delivery.kafka.brokers\n"
          "  -s DIR      override delivery.spool.dir\n"
          "  -a DIR      archive finished segments here instead of removing them\n"
          "  -r N        at most N records per second\n"
          "  -k N        checkpoint every N confirmed records (default 1000)\n"
          "  -t MS       give up when Kafka confirms nothing for MS (default 60000)\n"
          "  -q          the remaining arguments are quarantine files\n"
          "  -v          log more (to stderr)\n"
          "Exit status: 0 done; 1 damaged records skipped or refused records set aside;\n"
          "2 usage or configuration error; 3 Kafka stopped confirming (run again later).\n"
          TOOL_VERSION_HELP,
          out);
    return status;
}

static int usage(void)
{
    return usage_to(stderr, 2);
}

static void print_error(const pixel_error *e)
{
    if (e->line > 0) {
        fprintf(stderr, "pixel-replay: %s:%ld:%ld: %s\n", e->source, e->line, e->column, e->text);
    } else {
        fprintf(stderr, "pixel-replay: %s\n", e->text);
    }
}

#ifdef PIXEL_REPLAY_WITH_CORE

typedef struct qstate {
    uint64_t acked_bad;
} qstate;

static void on_ack(void *token, int status, void *payload)
{
    qstate *q = payload;
    (void)token;
    if (status < 0) {
        q->acked_bad++;
    }
}

/* Send the current line's outcome through the sink, waiting out back-pressure. */
static int send_outcome(pixel_sink *s, const pixel_pipeline *p, pixel_ctx *ctx,
                        const pixel_delivery_config *cfg, pixel_outcome outcome)
{
    size_t len;
    const char *out = pixel_ctx_output(ctx, p, &len);
    pixel_error e;
    int rc;

    if (outcome == PIXEL_OUTCOME_SKIPPED || outcome == PIXEL_OUTCOME_DROPPED) {
        pixel_sink_count(s, outcome);
        return 0;
    }
    if (out == NULL) {
        return -1;
    }
    for (;;) {
        memset(&e, 0, sizeof(e));
        if (outcome == PIXEL_OUTCOME_EVENT) {
            pixel_sink_msg m;
            const pixel_value *ev = pixel_ctx_event(ctx);
            const char *kf = pixel_delivery_config_get(cfg, "kafka.key_field");
            const char *tf = pixel_delivery_config_get(cfg, "kafka.type_field");
            memset(&m, 0, sizeof(m));
            m.value = out;
            m.value_len = len;
            if (kf != NULL) {
                m.key = pixel_value_string(pixel_value_at(ev, kf), &m.key_len);
            }
            if (tf != NULL) {
                m.type = pixel_value_string(pixel_value_at(ev, tf), &m.type_len);
            }
            m.pipeline_version = pixel_pipeline_version(p);
            m.pipeline_version_len = m.pipeline_version ? strlen(m.pipeline_version) : 0;
            rc = pixel_sink_produce(s, &m, NULL, &e);
        } else {
            rc = pixel_sink_quarantine(s, out, len, NULL, &e);
        }
        if (rc != PIXEL_DELIVERY_EFULL) {
            return rc;
        }
        pixel_sink_poll(s, 100); /* back-pressure: wait, never drop */
    }
}

/* Decodes standard base64 (padding optional) into a new buffer; NULL when
 * the text is not base64 or memory runs out. */
static unsigned char *base64_decode(const char *in, size_t in_len, size_t *out_len)
{
    unsigned char *out = malloc(in_len / 4 * 3 + 3);
    uint32_t acc = 0;
    size_t n = 0, bits = 0, i = 0;

    if (out == NULL) {
        return NULL;
    }
    for (; i < in_len && in[i] != '='; i++) {
        const char *digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *d = in[i] ? strchr(digits, in[i]) : NULL;
        if (d == NULL) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)(d - digits);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    for (; i < in_len && in[i] == '='; i++) {
    }
    if (i != in_len || bits >= 6) {
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

static int replay_quarantine(const char *pipeline_path, const pixel_delivery_config *cfg,
                             char **files, int nfiles)
{
    pixel_sink_options so = PIXEL_SINK_OPTIONS_INIT;
    pixel_pipeline *p = NULL;
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_sink *s = NULL;
    pixel_error e;
    qstate q = {0};
    uint64_t lines = 0, events = 0, again = 0, other = 0, unreadable = 0;
    int rc = 0;

    memset(&e, 0, sizeof(e));
    so.ack = on_ack;
    so.ack_payload = &q;
    so.log = on_log;
    if (ctx == NULL || pixel_pipeline_load_file(&p, pipeline_path, NULL, &e) != 0 ||
        pixel_sink_new(&s, cfg, &so, &e) != 0) {
        print_error(&e);
        pixel_pipeline_free(p);
        pixel_ctx_free(ctx);
        return 2;
    }
    for (int i = 0; i < nfiles && rc == 0; i++) {
        FILE *f = fopen(files[i], "r");
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        if (f == NULL) {
            fprintf(stderr, "pixel-replay: cannot open %s: %s\n", files[i], strerror(errno));
            rc = 2;
            break;
        }
        uint64_t line_no = 0; /* for messages: the line in this file */
        while ((n = getline(&line, &cap, f)) > 0) {
            json_error_t je;
            json_t *rec = json_loadb(line, (size_t)n, 0, &je);
            /* The line as it came: "raw" when it was UTF-8 (it may hold
             * U+0000, so take its length), else "raw_base64". */
            json_t *jraw = json_object_get(rec, "raw");
            json_t *jb64 = json_object_get(rec, "raw_base64");
            const char *raw = json_string_value(jraw);
            size_t raw_len = raw ? json_string_length(jraw) : 0;
            unsigned char *decoded = NULL;
            pixel_outcome outcome;
            lines++;
            line_no++;
            if (raw == NULL && json_is_string(jb64)) {
                decoded = base64_decode(json_string_value(jb64), json_string_length(jb64),
                                        &raw_len);
                raw = (const char *)decoded;
            }
            if (raw == NULL) {
                fprintf(stderr,
                        "pixel-replay: %s:%" PRIu64 ": %s\n", files[i], line_no,
                        rec == NULL ? "not JSON"
                        : json_is_string(jb64) ? "\"raw_base64\" is not base64"
                                               : "no \"raw\" or \"raw_base64\" string member");
                unreadable++;
                json_decref(rec);
                continue;
            }
            memset(&e, 0, sizeof(e));
            if (pixel_process(p, ctx, raw, raw_len, &outcome, &e) != 0 ||
                send_outcome(s, p, ctx, cfg, outcome) != 0) {
                print_error(&e);
                free(decoded);
                json_decref(rec);
                rc = 3;
                break;
            }
            events += outcome == PIXEL_OUTCOME_EVENT;
            again += outcome == PIXEL_OUTCOME_QUARANTINED;
            other += outcome == PIXEL_OUTCOME_SKIPPED || outcome == PIXEL_OUTCOME_DROPPED;
            free(decoded);
            json_decref(rec);
        }
        free(line);
        fclose(f);
    }
    memset(&e, 0, sizeof(e));
    if (pixel_sink_flush(s, -1, &e) != 0) {
        print_error(&e);
        rc = 3;
    }
    pixel_sink_free(s);
    pixel_pipeline_free(p);
    pixel_ctx_free(ctx);
    fprintf(stderr,
            "pixel-replay: %" PRIu64 " quarantined lines: %" PRIu64 " events, %" PRIu64
            " quarantined again, %" PRIu64 " skipped/dropped, %" PRIu64 " unreadable\n",
            lines, events, again, other, unreadable);
    if (rc == 0 && (q.acked_bad > 0 || unreadable > 0)) {
        rc = 1;
    }
    return rc;
}

#endif

/* A number in [lo, hi] with nothing after it: 1, else 0. */
static int number_arg(const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && errno == 0 && *out >= lo && *out <= hi;
}

int main(int argc, char **argv)
{
    pixel_replay_options o = PIXEL_REPLAY_OPTIONS_INIT;
    pixel_replay_stats st;
    pixel_delivery_config *cfg = NULL;
    pixel_error e;
    const char *config = NULL, *brokers = NULL, *spool = NULL;
    int opt, quarantine = 0, rc;
    double num;
    if (tool_version_asked(argc, argv, "pixel-replay")) {
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        return usage_to(stdout, 0); /* help asked for: stdout, status 0 */
    }

    while ((opt = getopt(argc, argv, "c:b:s:a:r:k:t:qvh")) != -1) {
        switch (opt) {
            case 'c':
                config = optarg;
                break;
            case 'b':
                brokers = optarg;
                break;
            case 's':
                spool = optarg;
                break;
            case 'a':
                o.archive_dir = optarg;
                break;
            case 'r':
                if (!number_arg(optarg, 0, 1e9, &num)) {
                    fprintf(stderr, "pixel-replay: -r takes records per second (0: no limit)\n");
                    return usage();
                }
                o.rate = num;
                break;
            case 'k':
                if (!number_arg(optarg, 1, 4e9, &num) || num != (unsigned int)num) {
                    fprintf(stderr, "pixel-replay: -k takes a whole number of records, at least 1\n");
                    return usage();
                }
                o.checkpoint_every = (unsigned int)num;
                break;
            case 't':
                if (!number_arg(optarg, 1, 2e9, &num) || num != (int)num) {
                    fprintf(stderr, "pixel-replay: -t takes whole milliseconds, at least 1\n");
                    return usage();
                }
                o.timeout_ms = (int)num;
                break;
            case 'q':
                quarantine = 1;
                break;
            case 'v':
                verbose = 1;
                break;
            default:
                return usage();
        }
    }
    if (config == NULL || (quarantine && optind >= argc) || (!quarantine && optind < argc)) {
        return usage();
    }
    memset(&e, 0, sizeof(e));
    if (pixel_delivery_config_load_file(&cfg, config, &e) != 0 ||
        (brokers && pixel_delivery_config_set(cfg, "kafka.brokers", brokers, &e) != 0) ||
        (spool && pixel_delivery_config_set(cfg, "spool.dir", spool, &e) != 0)) {
        print_error(&e);
        pixel_delivery_config_free(cfg);
        return 2;
    }
    if (quarantine) {
#ifdef PIXEL_REPLAY_WITH_CORE
        rc = replay_quarantine(config, cfg, argv + optind, argc - optind);
#else
        fputs("pixel-replay: built without libpixel: quarantine replay unavailable\n", stderr);
        rc = 2;
#endif
        pixel_delivery_config_free(cfg);
        return rc;
    }
    o.log = on_log;
    rc = pixel_replay_spool(cfg, &o, &st, &e);
    fprintf(stderr,
            "pixel-replay: %" PRIu64 " records confirmed, %" PRIu64 " segments finished, %" PRIu64
            " corrupt regions, %" PRIu64 " torn tails (%" PRIu64 " bytes skipped), %" PRIu64
            " refused by Kafka (kept in the spool's rejected/)\n",
            st.records, st.segments, st.corrupt, st.torn, st.bad_bytes, st.rejected);
    pixel_delivery_config_free(cfg);
    if (rc != 0) {
        print_error(&e);
        return rc == PIXEL_DELIVERY_EKAFKA ? 3 : 2;
    }
    return (st.corrupt > 0 || st.torn > 0 || st.rejected > 0) ? 1 : 0;
}
