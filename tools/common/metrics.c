/*
 * Prometheus text metrics for the hosts; see metrics.h.
 *
 * Everything lives behind one mutex: the host thread counts, the HTTP
 * thread (if any) renders.  Label sets for quarantine codes are a small
 * table searched linearly: there are a few dozen codes, and a code seen
 * after the table is full is counted under code="other" so that a flood
 * of odd input can never grow the memory without bound.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CODES   128
#define MAX_SERIES  64
#define N_OUTCOMES  5
#define N_BUCKETS   12

static const double buckets[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,   0.25,   0.5,   1.0,  5.0,   30.0};
static const char *const outcome_names[N_OUTCOMES] = {"pending", "event", "quarantined",
                                                      "skipped", "dropped"};

typedef struct code_count {
    char stage[24];
    char code[64];
    int dropped; /* 1: a drop by `code` (an enricher), 0: a quarantine */
    uint64_t n;
} code_count;

typedef struct series {
    const char *name, *type, *help;
    double value;
} series;

struct pixel_metrics {
    pthread_mutex_t mu;
    char host[64];
    uint64_t outcomes[N_OUTCOMES];
    uint64_t failures;
    code_count codes[MAX_CODES];
    size_t ncodes;
    uint64_t other_codes;
    uint64_t lat_buckets[N_BUCKETS];
    uint64_t lat_count;
    double lat_sum;
    series extra[MAX_SERIES];
    size_t nextra;
    /* the HTTP listener */
    int lfd;
    int running;
    volatile int stop;
    pthread_t thread;
};

pixel_metrics *pixel_metrics_new(const char *host)
{
    pixel_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    snprintf(m->host, sizeof(m->host), "%s", host ? host : "libpixel");
    m->lfd = -1;
    return m;
}

void pixel_metrics_free(pixel_metrics *m)
{
    if (m == NULL) {
        return;
    }
    if (m->running) {
        m->stop = 1;
        pthread_join(m->thread, NULL);
    }
    if (m->lfd >= 0) {
        close(m->lfd);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void count_code(pixel_metrics *m, const char *stage, const char *code, int dropped)
{
    for (size_t i = 0; i < m->ncodes; i++) {
        code_count *c = &m->codes[i];
        if (c->dropped == dropped && strcmp(c->code, code) == 0 && strcmp(c->stage, stage) == 0) {
            c->n++;
            return;
        }
    }
    if (m->ncodes == MAX_CODES) {
        m->other_codes++;
        return;
    }
    code_count *c = &m->codes[m->ncodes++];
    snprintf(c->stage, sizeof(c->stage), "%s", stage);
    snprintf(c->code, sizeof(c->code), "%s", code);
    c->dropped = dropped;
    c->n = 1;
}

void pixel_metrics_line(pixel_metrics *m, int outcome, const char *stage, const char *code)
{
    if (m == NULL || outcome < 0 || outcome >= N_OUTCOMES) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->outcomes[outcome]++;
    if (outcome == 2 || outcome == 4) {
        count_code(m, stage ? stage : "", code ? code : "unknown", outcome == 4);
    }
    pthread_mutex_unlock(&m->mu);
}

void pixel_metrics_failure(pixel_metrics *m)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->failures++;
    pthread_mutex_unlock(&m->mu);
}

void pixel_metrics_latency(pixel_metrics *m, double seconds)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < N_BUCKETS; i++) {
        if (seconds <= buckets[i]) {
            m->lat_buckets[i]++;
        }
    }
    m->lat_count++;
    m->lat_sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void pixel_metrics_set(pixel_metrics *m, const char *name, const char *type, const char *help,
                       double value)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nextra; i++) {
        if (strcmp(m->extra[i].name, name) == 0) {
            m->extra[i].value = value;
            pthread_mutex_unlock(&m->mu);
            return;
        }
    }
    if (m->nextra < MAX_SERIES) {
        m->extra[m->nextra++] = (series){name, type, help, value};
    }
    pthread_mutex_unlock(&m->mu);
}

/* A growing text buffer; on out-of-memory it stays failed and render returns NULL. */
typedef struct buf {
    char *p;
    size_t len, cap;
    int failed;
} buf;

__attribute__((format(printf, 2, 3))) static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Label values are ours (codes, stage names), but escape them all the same. */
static void put_label(buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            put(b, "\\%c", *s);
        } else if (*s == '\n') {
            put(b, "\\n");
        } else {
            put(b, "%c", *s);
        }
    }
}

static void render_codes(buf *b, const pixel_metrics *m, int dropped)
{
    const char *name = dropped ? "pixel_dropped_total" : "pixel_quarantined_total";

    put(b, "# HELP %s %s\n# TYPE %s counter\n", name,
        dropped ? "Lines dropped on purpose, by the enricher or module that dropped them."
                : "Quarantined lines by stage and quarantine code.",
        name);
    for (size_t i = 0; i < m->ncodes; i++) {
        const code_count *c = &m->codes[i];
        if (c->dropped != dropped) {
            continue;
        }
        put(b, "%s{host=\"%s\",", name, m->host);
        if (!dropped) {
            put(b, "stage=\"");
            put_label(b, c->stage);
            put(b, "\",code=\"");
        } else {
            put(b, "source=\"");
        }
        put_label(b, c->code);
        put(b, "\"} %llu\n", (unsigned long long)c->n);
    }
}

char *pixel_metrics_render(pixel_metrics *m, size_t *len)
{
    buf b = {malloc(4096), 0, 4096, 0};

    if (b.p == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP pixel_lines_total Input lines by outcome.\n# TYPE pixel_lines_total counter\n");
    for (int i = 1; i < N_OUTCOMES; i++) {
        put(&b, "pixel_lines_total{host=\"%s\",outcome=\"%s\"} %llu\n", m->host, outcome_names[i],
            (unsigned long long)m->outcomes[i]);
    }
    put(&b, "# HELP pixel_failures_total Inputs refused for an infrastructure failure "
            "(retried upstream).\n# TYPE pixel_failures_total counter\n");
    put(&b, "pixel_failures_total{host=\"%s\"} %llu\n", m->host, (unsigned long long)m->failures);
    render_codes(&b, m, 0);
    if (m->other_codes > 0) {
        put(&b, "pixel_quarantined_total{host=\"%s\",stage=\"\",code=\"other\"} %llu\n", m->host,
            (unsigned long long)m->other_codes);
    }
    render_codes(&b, m, 1);
    put(&b, "# HELP pixel_delivery_latency_seconds From reading an input to its durable ack.\n"
            "# TYPE pixel_delivery_latency_seconds histogram\n");
    for (int i = 0; i < N_BUCKETS; i++) {
        put(&b, "pixel_delivery_latency_seconds_bucket{host=\"%s\",le=\"%g\"} %llu\n", m->host,
            buckets[i], (unsigned long long)m->lat_buckets[i]);
    }
    put(&b, "pixel_delivery_latency_seconds_bucket{host=\"%s\",le=\"+Inf\"} %llu\n", m->host,
        (unsigned long long)m->lat_count);
    put(&b, "pixel_delivery_latency_seconds_sum{host=\"%s\"} %.6f\n", m->host, m->lat_sum);
    put(&b, "pixel_delivery_latency_seconds_count{host=\"%s\"} %llu\n", m->host,
        (unsigned long long)m->lat_count);
    for (size_t i = 0; i < m->nextra; i++) {
        const series *s = &m->extra[i];
        put(&b, "# HELP %s %s\n# TYPE %s %s\n%s{host=\"%s\"} %.17g\n", s->name, s->help, s->name,
            s->type, s->name, m->host, s->value);
    }
    pthread_mutex_unlock(&m->mu);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len != NULL) {
        *len = b.len;
    }
    return b.p;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int pixel_metrics_write_file(pixel_metrics *m, const char *path)
{
    char tmp[4096];
    size_t len;
    char *text = pixel_metrics_render(m, &len);
    int fd, rc = -1, saved;

    if (text == NULL) {
        errno = ENOMEM;
        return -1;
    }
    /* The textfile collector reads only *.prom, so "<path>.tmp.<pid>" is never scraped. */
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write_all(fd, text, len) == 0 && fsync(fd) == 0) {
            rc = 0;
        }
        saved = errno;
        close(fd);
        if (rc == 0 && rename(tmp, path) != 0) {
            saved = errno;
            rc = -1;
        }
        if (rc != 0) {
            unlink(tmp);
            errno = saved;
        }
    }
    free(text);
    return rc;
}

static void serve_one(pixel_metrics *m, int fd)
{
    char req[1024], head[160];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t len = 0;
    char *text;

    /* Read what the client sent (we answer every path the same); never block long. */
    if (poll(&p, 1, 1000) > 0) {
        ssize_t n = read(fd, req, sizeof(req));
        (void)n;
    }
    text = pixel_metrics_render(m, &len);
    if (text == NULL) {
        static const char oom[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        (void)write_all(fd, oom, sizeof(oom) - 1);
        return;
    }
    snprintf(head, sizeof(head),
             "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             len);
    if (write_all(fd, head, strlen(head)) == 0) {
        (void)write_all(fd, text, len);
    }
    free(text);
}

static void *listener(void *arg)
{
    pixel_metrics *m = arg;

    while (!m->stop) {
        struct pollfd p = {.fd = m->lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            serve_one(m, fd);
            close(fd);
        }
    }
    return NULL;
}

int pixel_metrics_listen(pixel_metrics *m, int port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int one = 1, fd;

    if (m->running) {
        errno = EBUSY;
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* never beyond this host */
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    m->lfd = fd;
    m->stop = 0;
    if (pthread_create(&m->thread, NULL, listener, m) != 0) {
        close(fd);
        m->lfd = -1;
        errno = EAGAIN;
        return -1;
    }
    m->running = 1;
    return ntohs(a.sin_port);
}
