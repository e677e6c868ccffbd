/*
 * pixel-mmexternal: libpixel as an rsyslog mmexternal program (message
 * modification), for users who deliver with rsyslog's own omkafka and
 * queues and want libpixel only as the transformer.
 *
 *   pixel-mmexternal [--metrics-file PATH] [--metrics-port PORT] PIPELINE.yaml
 *
 * rsyslog writes one message per line (use interface.input="rawmsg", so
 * that libpixel sees the syslog header too) and reads exactly one JSON
 * object per line back, in order (plugins/external/INTERFACE.md).  The reply
 * sets message variables:
 *
 *   {"$!":{"pixel_outcome":"event","pixel":{...the event...}}}
 *   {"$!":{"pixel_outcome":"quarantined","pixel":{...the quarantine record...}}}
 *   {"$!":{"pixel_outcome":"skipped"}}          (or "dropped")
 *   {"$!":{"pixel_outcome":"error"}}            infrastructure failure (logged)
 *   {"$!":{"pixel_outcome":"error","pixel_error":"pipeline FILE: ..."}}
 *                                    the pipeline has not loaded (see below)
 *
 * so a configuration routes on $!pixel_outcome and writes $!pixel with a
 * template (docs/deployment.md).  SIGHUP reloads the pipeline between two
 * lines; a pipeline that fails to load leaves the old one serving.
 *
 * Logs go to --log-file, else to stderr, one line per write.  rsyslog's
 * mmexternal gives the program's stderr the same pipe as its stdout, where
 * each line is read as the reply to a message: a log line there is taken
 * for one message's reply, and that message leaves without its
 * $!pixel_outcome.  So when stderr is that pipe and no --log-file was
 * given, logs go to syslog(3) instead.
 *
 * A pipeline that does not load at start does not end the program: were it
 * to exit, rsyslog would start it again for every message (hundreds of
 * processes a second, each message passing unchanged).  It stays, answers
 * every line with outcome "error" and the reason in $!pixel_error (the
 * documented routing keeps those lines for pixel-replay), and tries the
 * pipeline again on SIGHUP, when the file changes (looked at once a second
 * at most) and every RETRY_S seconds (a module or schema may be what was
 * fixed).  A reason is logged when it differs from the one logged before.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <pixel/pixel.h>

#include "../common/logstamp.h"
#include "../common/version.h"

#include "../common/metrics.h"

static volatile sig_atomic_t reload_requested;

static int log_fd = 2;      /* where logf_() writes, */
static int log_syslog = 0;  /* unless this says syslog(3) */

static void on_reload(int sig)
{
    (void)sig;
    reload_requested = 1;
}

__attribute__((format(printf, 2, 3))) static void logf_(const char *level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    /* syslog(3) stamps its lines itself */
    int t = log_syslog ? 0 : tool_log_stamp(line, sizeof(line));
    int n = t + snprintf(line + t, sizeof(line) - (size_t)t, "pixel-mmexternal[%ld]: %s: ", (long)getpid(), level);

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    if (log_syslog) {
        /* syslog adds the name and PID itself: skip our own prefix. */
        const char *text = strchr(line, ' ');
        syslog(strcmp(level, "error") == 0     ? LOG_ERR
               : strcmp(level, "warning") == 0 ? LOG_WARNING
                                               : LOG_INFO,
               "%s", text ? text + 1 : line);
        return;
    }
    line[n++] = '\n';
    if (write(log_fd, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}

/* --module-path: rsyslog's mmexternal starts us with an empty environment,
 * so PIXEL_MODULE_PATH cannot reach us; the directories come as an argument. */
static const char *module_dirs[33];

static void set_module_dirs(char *list)
{
    size_t n = 0;
    for (char *d = list; d && n < 32;) {
        char *colon = strchr(d, ':');
        if (colon) {
            *colon = '\0';
        }
        if (*d) {
            module_dirs[n++] = d;
        }
        d = colon ? colon + 1 : NULL;
    }
    module_dirs[n] = NULL;
}

/* Is stderr the pipe stdout replies on (rsyslog's mmexternal does that)? */
static int stderr_is_reply_pipe(void)
{
    struct stat o, e;
    return fstat(1, &o) == 0 && fstat(2, &e) == 0 && S_ISFIFO(o.st_mode) &&
           o.st_dev == e.st_dev && o.st_ino == e.st_ino;
}

enum { RETRY_S = 10 };

/* Why the pipeline did not load, the last time it was tried. */
static char load_error[900];

static pixel_pipeline *load(const char *path)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_pipeline_options opts = PIXEL_PIPELINE_OPTIONS_INIT;
    char msg[800];

    opts.module_dirs = module_dirs;
    memset(&err, 0, sizeof(err));
    if (pixel_pipeline_load_file(&p, path, &opts, &err) != 0) {
        snprintf(load_error, sizeof(load_error), "pipeline %s: %s", path,
                 pixel_error_format(&err, msg, sizeof(msg)));
        return NULL;
    }
    load_error[0] = '\0';
    return p;
}

/* The pipeline file as it was when it failed to load; same_file() tells
 * whether it is still so (a file that cannot be read is "unchanged" while it
 * stays unreadable). */
static struct stat failed_st;
static int failed_stat_ok;

static void remember_file(const char *path)
{
    failed_stat_ok = stat(path, &failed_st) == 0;
}

static int same_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return !failed_stat_ok;
    }
    return failed_stat_ok && st.st_dev == failed_st.st_dev && st.st_ino == failed_st.st_ino &&
           st.st_size == failed_st.st_size &&
           st.st_mtim.tv_sec == failed_st.st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == failed_st.st_mtim.tv_nsec;
}

/* The reply to a line while no pipeline is loaded: outcome "error" and the
 * reason, as a JSON string. */
static void answer_unloaded(FILE *out, pixel_metrics *m)
{
    pixel_metrics_failure(m);
    fputs("{\"$!\":{\"pixel_outcome\":\"error\",\"pixel_error\":\"", out);
    for (const unsigned char *c = (const unsigned char *)load_error; *c; c++) {
        if (*c == '"' || *c == '\\') {
            fprintf(out, "\\%c", *c);
        } else if (*c < 0x20 || *c == 0x7f) {
            fprintf(out, "\\u%04x", *c);
        } else {
            fputc(*c, out);
        }
    }
    fputs("\"}}\n", out);
}

static void count(pixel_metrics *m, pixel_ctx *ctx, pixel_outcome out)
{
    const char *stage = NULL, *code = NULL;

    if (m == NULL) {
        return;
    }
    if (pixel_ctx_reason_count(ctx) > 0) {
        const pixel_reason *r = pixel_ctx_reason(ctx, 0);
        stage = pixel_stage_str(r->stage);
        code = out == PIXEL_OUTCOME_DROPPED && r->source ? r->source : r->code;
    }
    pixel_metrics_line(m, out, stage, code);
}

/* Answer one line: exactly one line of JSON, whatever happens. */
static void answer(FILE *out, const pixel_pipeline *p, pixel_ctx *ctx, pixel_metrics *m,
                   const char *line, size_t len)
{
    pixel_outcome oc = PIXEL_OUTCOME_PENDING;
    pixel_error err;
    const char *json;
    size_t jlen = 0;

    memset(&err, 0, sizeof(err));
    if (pixel_process(p, ctx, line, len, &oc, &err) != 0) {
        char msg[512];
        logf_("error", "line not processed: %s", pixel_error_format(&err, msg, sizeof(msg)));
        pixel_metrics_failure(m);
        fputs("{\"$!\":{\"pixel_outcome\":\"error\"}}\n", out);
        return;
    }
    count(m, ctx, oc);
    json = pixel_ctx_output(ctx, p, &jlen);
    if (json == NULL) {
        fprintf(out, "{\"$!\":{\"pixel_outcome\":\"%s\"}}\n", pixel_outcome_str(oc));
        return;
    }
    fprintf(out, "{\"$!\":{\"pixel_outcome\":\"%s\",\"pixel\":", pixel_outcome_str(oc));
    fwrite(json, 1, jlen, out);
    fputs("}}\n", out);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"metrics-file", required_argument, NULL, 'm'},
        {"metrics-port", required_argument, NULL, 'p'},
        {"module-path", required_argument, NULL, 'M'},
        {"log-file", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *metrics_file = NULL, *log_file = NULL;
    int metrics_port = -1, c;
    pixel_metrics *m = NULL;
    pixel_pipeline *p;
    pixel_ctx *ctx;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    time_t last = 0;
    struct sigaction sa;

    if (tool_version_asked(argc, argv, "pixel-mmexternal")) {
        return 0;
    }
    int help = 0;
    while ((c = getopt_long(argc, argv, "m:p:M:l:h", longs, NULL)) != -1) {
        if (c == 'h') {
            help = 1;
        } else if (c == 'M') {
            set_module_dirs(optarg);
        } else if (c == 'm') {
            metrics_file = optarg;
        } else if (c == 'l') {
            log_file = optarg;
        } else if (c == 'p') {
            metrics_port = (int)strtol(optarg, NULL, 10);
        } else {
            break;
        }
    }
    if (optind != argc - 1 || help) {
        fputs("usage: pixel-mmexternal [--metrics-file PATH] [--metrics-port PORT] "
              "[--module-path DIR[:DIR...]]\n"
              "                        [--log-file PATH] PIPELINE.yaml\n"
              "rsyslog's mmexternal host: answers each input line with the JSON that sets\n"
              "$!pixel_outcome and $!pixel (the event or the quarantine record).  SIGHUP\n"
              "reloads the pipeline.  Logs go to --log-file, else to stderr, or to syslog\n"
              "when stderr is the reply pipe (as mmexternal starts it).  A pipeline that\n"
              "does not load is not fatal: each line is answered with outcome \"error\"\n"
              "and $!pixel_error until it loads.  See docs/deployment.md.\n"
              TOOL_VERSION_HELP,
              help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (log_file != NULL) {
        log_fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (log_fd < 0) {
            fprintf(stderr, "pixel-mmexternal: --log-file %s: %s\n", log_file, strerror(errno));
            return 2;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, NULL);
    if (log_file == NULL && stderr_is_reply_pipe()) {
        openlog("pixel-mmexternal", LOG_PID, LOG_DAEMON);
        log_syslog = 1;
    }
    ctx = pixel_ctx_new();
    if (ctx == NULL) {
        logf_("error", "out of memory");
        return 1;
    }
    const char *path = argv[optind];
    time_t last_try = time(NULL), last_look = last_try;
    char logged[sizeof(load_error)] = "";
    p = load(path);
    if (p == NULL) {
        remember_file(path);
        snprintf(logged, sizeof(logged), "%s", load_error);
        logf_("error", "%s; every line is answered with pixel_outcome \"error\" until it loads "
              "(tried again on SIGHUP, when the file changes, and every %d s)",
              load_error, RETRY_S);
    }
    if (metrics_file != NULL || metrics_port >= 0) {
        m = pixel_metrics_new("pixel-mmexternal");
        if (m != NULL && metrics_port >= 0 && pixel_metrics_listen(m, metrics_port) < 0) {
            logf_("warning", "metrics listener: %s", strerror(errno));
        }
    }
    /* getline() restarts on EINTR only for SA_RESTART; loop on a signal. */
    for (;;) {
        errno = 0;
        n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (errno == EINTR) {
                clearerr(stdin);
                continue;
            }
            break;
        }
        time_t t = p == NULL ? time(NULL) : 0;
        if (p == NULL && (reload_requested || t - last_try >= RETRY_S ||
                          (t != last_look && (last_look = t, !same_file(path))))) {
            reload_requested = 0;
            last_try = t;
            if ((p = load(path)) != NULL) {
                logged[0] = '\0';
                logf_("info", "loaded pipeline %s %s", pixel_pipeline_name(p),
                      pixel_pipeline_version(p));
            } else {
                remember_file(path);
                if (strcmp(logged, load_error) != 0) {
                    snprintf(logged, sizeof(logged), "%s", load_error);
                    logf_("error", "%s", load_error);
                }
            }
        }
        if (reload_requested) {
            pixel_pipeline *np;
            reload_requested = 0;
            np = load(path);
            if (np == NULL) {
                logf_("error", "%s", load_error);
                logf_("error", "reload failed: still serving pipeline %s %s",
                      pixel_pipeline_name(p), pixel_pipeline_version(p));
            } else {
                pixel_pipeline_free(p);
                p = np;
                logf_("info", "reloaded pipeline %s %s", pixel_pipeline_name(p),
                      pixel_pipeline_version(p));
            }
        }
        if (n > 0 && line[n - 1] == '\n') {
            n--;
        }
        if (p != NULL) {
            answer(stdout, p, ctx, m, line, (size_t)n);
        } else {
            answer_unloaded(stdout, m);
        }
        fflush(stdout);
        if (m != NULL && metrics_file != NULL && time(NULL) != last) {
            last = time(NULL);
            if (pixel_metrics_write_file(m, metrics_file) != 0) {
                logf_("warning", "metrics file %s: %s", metrics_file, strerror(errno));
            }
        }
    }
    if (m != NULL && metrics_file != NULL) {
        pixel_metrics_write_file(m, metrics_file);
    }
    free(line);
    pixel_metrics_free(m);
    pixel_ctx_free(ctx);
    int loaded = p != NULL;
    pixel_pipeline_free(p);
    return loaded ? 0 : 1; /* 1: the pipeline never loaded (each line was answered "error") */
}
