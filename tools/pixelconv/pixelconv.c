/*
 * pixelconv: access-log files -> JSON Lines events, through a libpixel
 * pipeline.
 *
 * The tool is a thin host: it reads lines (plain or gzip, files or stdin;
 * from a pipe, as they come), hands each to pixel_process() and writes the
 * outcome.  With -j N, N worker threads, each with its own pixel_ctx, read
 * batches of lines in turn and convert them; the worker that finishes the
 * next batch in input order writes the results out, one worker at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "pixel/pixel.h"

#include "../common/metrics.h"
#ifdef PIXEL_HAVE_KAFKA
#include "output_kafka.h"
#endif

#define BATCH_BYTES (1u << 20)
/*
 * With --kafka, batches of 64 KB of input (about 100 lines): the events a
 * worker writes are still in a cache when the writer produces them and
 * librdkafka's broker threads copy them into requests.  With 1 MB batches
 * (about 1.8 MB of events each, four in the ring) they are not, and the
 * producer side took a tenth to a fifth more CPU (docs/delivery.md).
 */
#define KAFKA_BATCH_BYTES (1u << 16)

static unsigned int g_batch_bytes = BATCH_BYTES;
#define MAX_CODES   64
/*
 * How far reading may run ahead of writing, per worker (see worker()): 512
 * KB of input, at least two batches.  With --kafka's 64 KB batches that is
 * 8 a worker: the 2 of before left a worker without input whenever the
 * writer was held up for more than about half a millisecond (an fsync of
 * the quarantine file, librdkafka's threads taking its CPU), and a run's
 * workers blocked in about 7,500 waits; with 8, about 600.
 */
#define RING_BYTES_PER_JOB (1u << 19)

typedef struct code_count {
    char code[48];
    unsigned long n;
} code_count;

typedef struct counts {
    unsigned long lines, events, quarantined, skipped, dropped, failed;
    code_count codes[MAX_CODES]; /* quarantine reasons by code */
    size_t ncodes;
    code_count drops[MAX_CODES]; /* dropped lines by enricher/module */
    size_t ndrops;
} counts;

/* A batch: whole lines in, serialized outcomes out. */
typedef struct batch {
    char *in;
    size_t in_len, in_cap;
    char *ev, *qr;
    size_t ev_len, ev_cap, qr_len, qr_cap;
    counts c;
    char failure[400]; /* the first infrastructure failure, if any */
    unsigned long seq;
    int state;       /* 0 empty, 1 filled, 2 done */
    long long read_ms; /* when it was read: its lines' ingest time */
    bool regular;      /* read from regular files only: more input never waits */
} batch;

typedef struct options {
    const char *pipeline, *out, *quarantine, *stats, *metrics_file;
    int metrics_port;
    bool kafka;
    const char *kafka_set[64];
    int nkafka_set;
    int jobs;
    bool explain, quiet, progress;
    long long fixed_ms;
} options;

static const pixel_pipeline *g_pipe;
static long long g_fixed_ms;
static pixel_metrics *g_metrics; /* NULL unless --metrics-file / --metrics-port */
#ifdef PIXEL_HAVE_KAFKA
static pixelconv_kafka *g_kafka; /* --kafka: workers pack events with key and type */
#endif

static void die_usage(const char *msg)
{
    fprintf(stderr, "pixelconv: %s\nTry 'pixelconv --help'.\n", msg);
    exit(2);
}

static void usage(void)
{
    printf("Usage: pixelconv -c PIPELINE.yaml [OPTION]... [FILE]...\n"
           "Convert tracking-pixel access-log lines to JSON events, one per line.\n"
           "FILEs may be plain or gzip-compressed; with no FILE, or when FILE is -, read stdin.\n"
           "A pipe is converted as its lines come, each batch written before more is awaited.\n"
           "\n"
           "  -c, --config FILE       the pipeline (YAML); required\n"
           "  -o, --output FILE       write events to FILE (default: stdout)\n"
           "  -q, --quarantine FILE   write quarantine records to FILE (default: stderr;\n"
           "                          give /dev/null to discard them on purpose)\n"
           "  -s, --stats FILE        write counts as JSON to FILE when done\n"
           "  -j, --jobs N            convert with N worker threads (output order is kept)\n"
           "  -k, --kafka             send events (and quarantine records) through the Kafka\n"
           "                          sink of the pipeline file's `delivery:` section, with\n"
           "                          failover to its spool (docs/delivery.md)\n"
           "      --kafka-set K=V     override a delivery setting, e.g. kafka.brokers=host:9092\n"
           "      --metrics-file F    keep Prometheus metrics in F (rewritten atomically)\n"
           "      --metrics-port N    serve Prometheus metrics on 127.0.0.1:N\n"
           "  -e, --explain           show what each stage makes of each input line\n"
           "      --fixed-time TIME   use TIME as the ingest clock, for reproducible output\n"
           "                          (RFC 3339: YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM))\n"
           "      --quiet             no summary on stderr\n"
           "  -h, --help              show this help\n"
           "  -V, --version           show the version\n"
           "\n"
           "Every input line is counted as exactly one of: event, quarantined, skipped (not a\n"
           "pixel request), dropped (by an enricher).\n"
           "\n"
           "Exit status: 0 when every line was converted (whatever was quarantined), 1 on an\n"
           "input/output failure (a failed write stops the conversion there), 2 for bad usage\n"
           "or a bad pipeline.\n");
}

/* ---- growable buffers -------------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return 0;
    }
    size_t c = *cap ? *cap : 4096;
    while (c < need) {
        c *= 2;
    }
    char *n = realloc(*buf, c);
    if (!n) {
        return -1;
    }
    *buf = n;
    *cap = c;
    return 0;
}

static int put_line(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (grow(buf, cap, *len + n + 1) < 0) {
        return -1;
    }
    memcpy(*buf + *len, s, n);
    (*buf)[*len + n] = '\n';
    *len += n + 1;
    return 0;
}

static void count_in(code_count *tab, size_t *n, const char *code, unsigned long k)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(tab[i].code, code) == 0) {
            tab[i].n += k;
            return;
        }
    }
    if (*n < MAX_CODES) {
        snprintf(tab[*n].code, sizeof(tab[0].code), "%s", code);
        tab[(*n)++].n = k;
    }
}

static void count_code(counts *c, const char *code, unsigned long n)
{
    count_in(c->codes, &c->ncodes, code, n);
}

static void merge(counts *into, const counts *from)
{
    into->lines += from->lines;
    into->events += from->events;
    into->quarantined += from->quarantined;
    into->skipped += from->skipped;
    into->dropped += from->dropped;
    into->failed += from->failed;
    for (size_t i = 0; i < from->ncodes; i++) {
        count_code(into, from->codes[i].code, from->codes[i].n);
    }
    for (size_t i = 0; i < from->ndrops; i++) {
        count_in(into->drops, &into->ndrops, from->drops[i].code, from->drops[i].n);
    }
}

/* ---- processing ---------------------------------------------------------------- */

static void process_batch(pixel_ctx *ctx, batch *b)
{
    /* A line's ingest time is when its batch was read (or --fixed-time):
     * one clock read a batch, not one a line. */
    pixel_ctx_set_clock(ctx, g_fixed_ms ? g_fixed_ms : b->read_ms);
    memset(&b->c, 0, sizeof(b->c));
    b->ev_len = b->qr_len = 0;
    b->failure[0] = '\0';
    const char *s = b->in, *end = b->in + b->in_len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = (size_t)((nl ? nl : end) - s);
        pixel_outcome oc;
        pixel_error err;
        pixel_error_clear(&err);
        b->c.lines++;
        if (pixel_process(g_pipe, ctx, s, n, &oc, &err) < 0) {
            b->c.failed++;
            if (g_metrics) {
                pixel_metrics_failure(g_metrics);
            }
            if (!b->failure[0]) {
                pixel_error_format(&err, b->failure, sizeof(b->failure));
            }
        } else {
            size_t olen;
            const char *out = pixel_ctx_output(ctx, g_pipe, &olen);
            if (g_metrics) {
                const pixel_reason *r = pixel_ctx_reason(ctx, 0);
                pixel_metrics_line(g_metrics, oc, r ? pixel_stage_str(r->stage) : NULL,
                                   r ? (oc == PIXEL_OUTCOME_DROPPED ? r->source : r->code) : NULL);
            }
            int wrc = 0;
            switch (oc) {
                case PIXEL_OUTCOME_EVENT:
                    b->c.events++;
#ifdef PIXEL_HAVE_KAFKA
                    if (g_kafka) {
                        wrc = out ? pixelconv_kafka_pack(g_kafka, pixel_ctx_event(ctx), out, olen,
                                                         &b->ev, &b->ev_len, &b->ev_cap)
                                  : -1;
                        break;
                    }
#endif
                    wrc = out ? put_line(&b->ev, &b->ev_len, &b->ev_cap, out, olen) : -1;
                    break;
                case PIXEL_OUTCOME_QUARANTINED:
                    b->c.quarantined++;
                    for (size_t i = 0; i < pixel_ctx_reason_count(ctx); i++) {
                        count_code(&b->c, pixel_ctx_reason(ctx, i)->code, 1);
                    }
                    wrc = out ? put_line(&b->qr, &b->qr_len, &b->qr_cap, out, olen) : -1;
                    break;
                case PIXEL_OUTCOME_SKIPPED:
                    b->c.skipped++;
                    break;
                case PIXEL_OUTCOME_DROPPED: {
                    const pixel_reason *r = pixel_ctx_reason(ctx, 0);
                    b->c.dropped++;
                    count_in(b->c.drops, &b->c.ndrops, r && r->source ? r->source : "?", 1);
                    break;
                }
                default:
                    b->c.failed++;
                    break;
            }
            if (wrc < 0 && !b->failure[0]) {
                snprintf(b->failure, sizeof(b->failure), "out of memory writing output");
            }
        }
        s = nl ? nl + 1 : end;
    }
}

/* ---- input ------------------------------------------------------------------------ */

/*
 * Input is read with read(), as it comes:
 *  - a regular file, one read() of a batch's size at a time: it never
 *    waits for a producer, and full batches are what make files fast;
 *  - anything else (a pipe, a FIFO, a terminal), what has arrived: once
 *    there are bytes in hand, reading stops where more would have to be
 *    waited for (poll()), so lines go on as they come
 *    (`tail -F access.log | pixelconv ...`).
 * gzip input (its first two bytes are 1f 8b) is decoded here with zlib's
 * inflate, fed the same way, so decoded lines go on as soon as their
 * compressed bytes are in.  Like gzip -d: members one after another are
 * one stream; zero bytes after the last member (padding) are ignored;
 * anything else after it is reported and makes the run fail, the lines
 * before it converted.
 */

#define ZIN_BYTES (256u * 1024) /* compressed input, read at a time */

enum { GZ_MEMBER, GZ_BETWEEN, GZ_ZEROS, GZ_DONE };

typedef struct input {
    char **files;
    int nfiles, next;
    int fd; /* the open input */
    bool open;
    bool regular; /* fd is a regular file: reading it never waits */
    bool eof;     /* read() said the end, or failed: read no more of fd */
    bool gz;      /* gzip, decoded through z */
    int zstate;   /* GZ_*: in a member, after one, in padding, finished */
    z_stream z;
    unsigned char *zin;    /* compressed bytes read; z.next_in points into it */
    unsigned char peek[2]; /* the first bytes of an input that cannot seek */
    size_t peek_len;
    const char *name;
    char *carry; /* a partial line left from the previous read */
    size_t carry_len, carry_cap;
    unsigned long long bytes_total, bytes_done;
    bool failed;
    bool unflushed; /* the last batch given out was a regular one: the output may hold it */
} input;

/* Whether fd has more to read, or its end or an error to tell, at once. */
static bool ready(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* read() of the open input: an error is said on stderr and fails the run;
 * after the end or an error, in->eof.  A descriptor left non-blocking by
 * whoever made it (stdin shared with a parent) says EAGAIN when nothing
 * has come yet: that is waited for, as a blocking read() would. */
static ssize_t read_fd(input *in, void *buf, size_t n)
{
    ssize_t r;
    for (;;) {
        r = read(in->fd, buf, n);
        if (r >= 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
        }
        if (errno != EINTR) {
            struct pollfd p = {.fd = in->fd, .events = POLLIN};
            int pr;
            while ((pr = poll(&p, 1, -1)) < 0 && errno == EINTR) {
            }
            if (pr < 0) {
                break; /* said below, as a read error */
            }
        }
    }
    if (r < 0) {
        fprintf(stderr, "pixelconv: %s: read error: %s\n", in->name, strerror(errno));
        in->failed = true;
    }
    in->eof = r <= 0;
    return r;
}

static int open_next(input *in)
{
    while (in->next < in->nfiles || (in->nfiles == 0 && in->next == 0)) {
        const char *f = in->nfiles ? in->files[in->next] : "-";
        in->next++;
        in->name = strcmp(f, "-") == 0 ? "<stdin>" : f;
        int fd = strcmp(f, "-") == 0 ? dup(0) : open(f, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "pixelconv: %s: %s\n", in->name, strerror(errno));
            in->failed = true;
            continue;
        }
        struct stat st;
        bool st_ok = fstat(fd, &st) == 0;
        in->fd = fd;
        in->regular = st_ok && S_ISREG(st.st_mode);
#ifdef F_SETPIPE_SZ
        if (st_ok && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < (int)g_batch_bytes) {
            /* Room in the pipe for a batch: a fast producer stays a batch
             * ahead, and a read takes a batch.  With the default 64 KB,
             * batches from `cat big.log | pixelconv -j 2` were that small,
             * the ring of batches too short to keep the workers busy, and
             * the run took about a quarter longer.  A larger pipe is kept;
             * where the system does not allow it (beyond
             * /proc/sys/fs/pipe-max-size), the pipe stays as it is. */
            (void)fcntl(fd, F_SETPIPE_SZ, (int)g_batch_bytes);
        }
#endif
        in->eof = false;
        in->peek_len = 0;
        unsigned char m[2];
        size_t mn = 0;
        off_t at = lseek(fd, 0, SEEK_CUR);
        if (at >= 0) {
            /* Looked at, not read (a read error shows when it is read). */
            ssize_t r = pread(fd, m, sizeof(m), at);
            mn = r > 0 ? (size_t)r : 0;
        } else {
            /* A pipe and the like: its first bytes are read, and kept for
             * the batch or the decoder.  A first byte other than gzip's
             * first is enough to tell (no waiting for a second one). */
            while (in->peek_len < 2 && !in->eof && (in->peek_len == 0 || in->peek[0] == 0x1f)) {
                ssize_t r = read_fd(in, in->peek + in->peek_len, 2 - in->peek_len);
                in->peek_len += r > 0 ? (size_t)r : 0;
            }
            memcpy(m, in->peek, in->peek_len);
            mn = in->peek_len;
        }
        in->gz = mn == 2 && m[0] == 0x1f && m[1] == 0x8b;
        if (in->gz) {
            memset(&in->z, 0, sizeof(in->z));
            if ((!in->zin && !(in->zin = malloc(ZIN_BYTES))) ||
                inflateInit2(&in->z, 16 + MAX_WBITS) != Z_OK) {
                fprintf(stderr, "pixelconv: %s: out of memory\n", in->name);
                close(fd);
                in->failed = true;
                continue;
            }
            memcpy(in->zin, in->peek, in->peek_len);
            in->z.next_in = in->zin;
            in->z.avail_in = (uInt)in->peek_len;
            in->peek_len = 0;
            in->zstate = GZ_MEMBER;
        }
        in->open = true;
        return 1;
    }
    return 0;
}

/* Up to n bytes of a plain input: the count, 0 at its end, -1 on an error. */
static int read_plain(input *in, char *buf, unsigned int n)
{
    size_t got = in->peek_len;
    memcpy(buf, in->peek, got);
    in->peek_len = 0;
    while (got < n && !in->eof) {
        if (got && (in->regular || !ready(in->fd))) {
            break;
        }
        ssize_t r = read_fd(in, buf + got, n - got);
        if (r < 0 && !got) {
            return -1;
        }
        got += r > 0 ? (size_t)r : 0;
    }
    return (int)got;
}

static void gz_damaged(input *in, const char *what)
{
    fprintf(stderr, "pixelconv: %s: %s (the file is damaged or incomplete)\n", in->name, what);
    in->failed = true;
    in->zstate = GZ_DONE;
}

/* More compressed input after what is left undecoded: 1 when some came, 0
 * at the end, -1 on an error. */
static int gz_refill(input *in)
{
    z_stream *z = &in->z;
    if (in->eof) {
        return 0;
    }
    if (z->avail_in) {
        memmove(in->zin, z->next_in, z->avail_in);
    }
    z->next_in = in->zin;
    ssize_t r = read_fd(in, in->zin + z->avail_in, ZIN_BYTES - z->avail_in);
    if (r > 0) {
        z->avail_in += (uInt)r;
    }
    return r > 0 ? 1 : (int)r;
}

/*
 * Up to n decoded bytes of a gzip input: the count, 0 at its end.  A
 * regular file fills n (as gzread did); from a pipe, what the compressed
 * bytes that have arrived decode to.  Damage, trailing garbage and read
 * errors are said on stderr and set in->failed; what decoded before them
 * is returned.
 */
static int read_gz(input *in, char *buf, unsigned int n)
{
    z_stream *z = &in->z;
    z->next_out = (Bytef *)buf;
    z->avail_out = n;
    while (z->avail_out && in->zstate != GZ_DONE) {
        /* Input would be read next: unless it is at hand, bytes decoded
         * already go on first. */
        bool hand_on = z->avail_out < n && !in->regular;
        if (in->zstate == GZ_MEMBER) {
            if (z->avail_in == 0) {
                if (hand_on && !ready(in->fd)) {
                    break;
                }
                int r = gz_refill(in);
                if (r <= 0) {
                    if (r == 0) {
                        gz_damaged(in, "unexpected end of file");
                    }
                    in->zstate = GZ_DONE;
                    break;
                }
            }
            int rc = inflate(z, Z_NO_FLUSH);
            if (rc == Z_STREAM_END) {
                in->zstate = GZ_BETWEEN;
            } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && !(z->avail_in && z->avail_out))) {
                gz_damaged(in, z->msg ? z->msg : zError(rc));
            }
            continue;
        }
        if (in->zstate == GZ_BETWEEN) {
            /* Another member, the end, or bytes after the gzip data. */
            if (z->avail_in < 2 && !in->eof) {
                if (hand_on && !ready(in->fd)) {
                    break;
                }
                if (gz_refill(in) < 0) {
                    in->zstate = GZ_DONE;
                }
                continue;
            }
            if (z->avail_in >= 2 && z->next_in[0] == 0x1f && z->next_in[1] == 0x8b) {
                inflateReset(z);
                in->zstate = GZ_MEMBER;
                continue;
            }
            in->zstate = GZ_ZEROS;
        }
        /* GZ_ZEROS: zero bytes up to the end are padding. */
        while (z->avail_in && *z->next_in == 0) {
            z->next_in++;
            z->avail_in--;
        }
        if (z->avail_in) {
            fprintf(stderr, "pixelconv: %s: trailing garbage after the gzip data, not converted\n",
                    in->name);
            in->failed = true;
            in->zstate = GZ_DONE;
        } else if (in->eof) {
            in->zstate = GZ_DONE;
        } else if (hand_on && !ready(in->fd)) {
            break;
        } else if (gz_refill(in) < 0) {
            in->zstate = GZ_DONE;
        }
    }
    return (int)(n - z->avail_out);
}

/* Up to n bytes of the open input: the count, 0 at its end, -1 on an error
 * (said on stderr). */
static int read_some(input *in, char *buf, unsigned int n)
{
    return in->gz ? read_gz(in, buf, n) : read_plain(in, buf, n);
}

static void close_current(input *in)
{
    if (in->gz) {
        inflateEnd(&in->z);
        in->gz = false;
    }
    close(in->fd);
    in->fd = -1;
    in->open = false;
}

/* Whether the input after the current one may keep a reader waiting (it
 * is not a regular file): the lines in hand go on before it is opened.
 * Files that will be skipped (missing, or regular and empty) are looked
 * past. */
static bool next_may_wait(const input *in)
{
    for (int i = in->next; i < in->nfiles; i++) {
        struct stat st;
        const char *f = in->files[i];
        if ((strcmp(f, "-") == 0 ? fstat(0, &st) : stat(f, &st)) != 0) {
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            return true;
        }
        if (st.st_size > 0) {
            return false;
        }
    }
    return false;
}

/* Whether the open input, a regular file, has been read to its end (for
 * gzip: no compressed bytes left undecoded either). */
static bool read_to_end(const input *in)
{
    struct stat st;
    off_t at = lseek(in->fd, 0, SEEK_CUR);
    return at >= 0 && fstat(in->fd, &st) == 0 && at >= st.st_size &&
           !(in->gz && in->zstate != GZ_DONE && in->z.avail_in);
}

/*
 * Whether reading on after a batch may wait: the open input is not a
 * regular file, or it is one read to its end (its last compressed bytes
 * decoded, for gzip) and the input after it may wait.  Then the batch is
 * written at once, not gathered with later ones: the batch that ends a
 * file before a quiet pipe would otherwise stay in the output's buffer
 * until the pipe sends something or closes.
 */
static bool rest_may_wait(const input *in)
{
    if (in->open && (!in->regular || !read_to_end(in))) {
        return !in->regular;
    }
    return next_may_wait(in);
}

/* Whether input is left after the batches given out so far (from a pipe:
 * maybe, so yes). */
static bool input_left(const input *in)
{
    if (in->carry_len || in->next < in->nfiles || (in->nfiles == 0 && in->next == 0)) {
        return true;
    }
    return in->open && (!in->regular || !read_to_end(in));
}

/*
 * Fill b->in with whole lines: about g_batch_bytes from regular files,
 * what has arrived from anything else.  Returns 1 when the batch has data,
 * 0 at the end of all input.
 */
static int fill_lines(input *in, batch *b)
{
    b->in_len = 0;
    b->regular = true;
    if (in->carry_len) {
        if (grow(&b->in, &b->in_cap, in->carry_len + 1) < 0) {
            return -1;
        }
        memcpy(b->in, in->carry, in->carry_len);
        b->in_len = in->carry_len;
        in->carry_len = 0;
    }
    for (;;) {
        if (!in->open && !open_next(in)) {
            return b->in_len > 0;
        }
        if (grow(&b->in, &b->in_cap, b->in_len + g_batch_bytes + 1) < 0) {
            return -1;
        }
        b->regular = b->regular && in->regular;
        int n = read_some(in, b->in + b->in_len, g_batch_bytes);
        if (n < 0) {
            in->failed = true;
        }
        if (n <= 0) {
            close_current(in);
            if (b->in_len && b->in[b->in_len - 1] != '\n') {
                b->in[b->in_len++] = '\n'; /* the last line of a file without a newline */
            }
            if (b->in_len && rest_may_wait(in)) {
                b->regular = false;
                in->unflushed = false;
                return 1;
            }
            if (b->in_len >= g_batch_bytes) {
                in->unflushed = b->regular;
                return 1;
            }
            if (!b->in_len && in->unflushed && rest_may_wait(in)) {
                /* The file ended after the batch before this one was given
                 * out as regular (it ended on a batch's end, with the file's
                 * last bytes, gzip padding or trailer, not read yet): a batch
                 * of no lines has that one written before the wait. */
                b->regular = false;
                in->unflushed = false;
                return 1;
            }
            continue;
        }
        in->bytes_done += (unsigned long long)n;
        b->in_len += (size_t)n;
        /* Keep whole lines; carry the tail into the next batch. */
        char *last = memrchr(b->in, '\n', b->in_len);
        if (!last) {
            continue; /* one long line: read on */
        }
        size_t keep = (size_t)(last - b->in) + 1;
        size_t tail = b->in_len - keep;
        if (tail) {
            if (grow(&in->carry, &in->carry_cap, tail) < 0) {
                return -1;
            }
            memcpy(in->carry, b->in + keep, tail);
            in->carry_len = tail;
        }
        b->in_len = keep;
        if (b->regular && rest_may_wait(in)) {
            b->regular = false;
        }
        in->unflushed = b->regular;
        return 1;
    }
}

/* fill_lines(), and the batch's ingest time: when its last bytes came (a
 * batch from a pipe may have waited long for them). */
static int fill_batch(input *in, batch *b)
{
    int f = fill_lines(in, b);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->read_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return f;
}

/* ---- output ----------------------------------------------------------------------- */

typedef struct sinks {
    FILE *ev, *qr;
    void *kafka;  /* pixelconv_kafka *, with --kafka */
    bool qr_too;  /* --kafka with -q: quarantine records to the file as well */
    counts total;
    char failure[400];
    bool write_failed;
    bool stopped; /* reading stopped at a failed write, before the input's end */
    const char *ev_name, *qr_name; /* for messages: -o and -q, or stdout and stderr */
    char write_failure[300];       /* the first failed write: what, where, why */
} sinks;

/* Notes a failed write of WHAT to NAME (errno says why; err 0: no errno). */
static void write_failed(sinks *s, const char *what, const char *name, int err)
{
    s->write_failed = true;
    if (!s->write_failure[0]) {
        snprintf(s->write_failure, sizeof(s->write_failure), "writing %s to %s failed%s%s", what,
                 name, err ? ": " : "", err ? strerror(err) : "");
    }
}

static void write_batch(sinks *s, batch *b)
{
#ifdef PIXEL_HAVE_KAFKA
    if (s->kafka) {
        pixelconv_kafka *k = s->kafka;
        /* The events' buffer is lent to the sink; b->ev becomes another. */
        if (pixelconv_kafka_events(k, &b->ev, &b->ev_cap, b->ev_len) < 0 ||
            pixelconv_kafka_quarantine(k, b->qr, b->qr_len, b->regular) < 0) {
            write_failed(s, "events", "the Kafka sink", 0);
        }
        b->ev_len = 0;
        pixelconv_kafka_count(k, PIXEL_OUTCOME_SKIPPED, b->c.skipped);
        pixelconv_kafka_count(k, PIXEL_OUTCOME_DROPPED, b->c.dropped);
        if (s->qr_too && b->qr_len && fwrite(b->qr, 1, b->qr_len, s->qr) != b->qr_len) {
            write_failed(s, "quarantine records", s->qr_name, errno);
        }
        if (s->qr_too && !b->regular && fflush(s->qr) != 0) {
            write_failed(s, "quarantine records", s->qr_name, errno);
        }
    } else
#endif
        if (b->ev_len && fwrite(b->ev, 1, b->ev_len, s->ev) != b->ev_len) {
        write_failed(s, "events", s->ev_name, errno);
    } else if (b->qr_len && fwrite(b->qr, 1, b->qr_len, s->qr) != b->qr_len) {
        write_failed(s, "quarantine records", s->qr_name, errno);
    } else if (!b->regular) {
        /* The next batch may wait for its input: what this one made is
         * written now, not when the buffers fill. */
        if (fflush(s->ev) != 0) {
            write_failed(s, "events", s->ev_name, errno);
        } else if (fflush(s->qr) != 0) {
            write_failed(s, "quarantine records", s->qr_name, errno);
        }
    }
    merge(&s->total, &b->c);
    if (b->failure[0] && !s->failure[0]) {
        snprintf(s->failure, sizeof(s->failure), "%s", b->failure);
    }
}

/* Rewrites the metrics file about once a second while converting. */
static void metrics_tick(const options *o)
{
    static double last;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = ts.tv_sec + ts.tv_nsec / 1e9;
    if (g_metrics && o->metrics_file && t - last >= 1.0) {
        pixel_metrics_write_file(g_metrics, o->metrics_file);
        last = t;
    }
}

static void progress(const input *in, const counts *c, double t0, int final)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double el = ts.tv_sec + ts.tv_nsec / 1e9 - t0;
    double pct = in->bytes_total ? 100.0 * (double)in->bytes_done / (double)in->bytes_total : 0;
    if (pct > 100) {
        pct = 100; /* gzip: compressed size is the total */
    }
    fprintf(stderr, "\r[%-30.*s] %5.1f%%  %lu lines  %.0f lines/s%s", (int)(pct * 0.3),
            "##############################", pct, c->lines, el > 0 ? c->lines / el : 0.0,
            final ? "\n" : "");
}

/* ---- threads -------------------------------------------------------------------- */

typedef struct pool {
    pthread_mutex_t mu;
    /* Workers wait for input to read (a free slot, the input to themselves)
     * or the end; the main thread for the end (or the next progress line). */
    pthread_cond_t work_cv, end_cv;
    batch *ring;
    int nring;
    unsigned long next_fill, next_write; /* batches read, batches written */
    unsigned long lines_written;         /* for the progress line */
    unsigned long long bytes_read;
    bool done_reading;
    bool write_failed; /* a write failed: the workers read no more input */
    bool reading; /* a worker is reading the input */
    bool writing; /* a worker is writing batches */
    int waiting;  /* workers in pthread_cond_wait(work_cv) */
    int rc;       /* 1 when reading the input failed */
    input *in;
    const options *o;
    sinks *s;
} pool;

/*
 * Called with pl->mu held, by a worker that just finished a batch: unless
 * another thread is writing already, write every finished batch that is
 * next in input order.  Writing is a role, not a thread: the worker whose
 * batch completes the run in order writes it while much of it is still in
 * its core's caches, and no third thread has to wake for every batch and
 * compete with the workers (and, with --kafka, librdkafka's threads) for
 * the CPUs.  The outputs and the sink are used by one thread at a time, in
 * input order.
 */
static void write_finished(pool *pl)
{
    if (pl->writing) {
        return; /* that thread takes this batch too: it looks again below */
    }
    pl->writing = true;
    for (;;) {
        batch *w = &pl->ring[pl->next_write % (unsigned long)pl->nring];
        if (pl->next_write == pl->next_fill || w->state != 2) {
            break;
        }
        pthread_mutex_unlock(&pl->mu);
        write_batch(pl->s, w);
        metrics_tick(pl->o);
        pthread_mutex_lock(&pl->mu);
        pl->write_failed = pl->s->write_failed; /* read no more: see worker() */
        w->state = 0;
        pl->next_write++;
        pl->lines_written = pl->s->total.lines;
        if (pl->waiting) {
            pthread_cond_signal(&pl->work_cv); /* a slot is free */
        }
    }
    pl->writing = false;
    if (pl->done_reading && !pl->reading && pl->next_write == pl->next_fill) {
        pthread_cond_signal(&pl->end_cv);
    }
}

/*
 * Each worker reads its own next batch (one reader at a time, in input
 * order), converts it while the input is still in its core's caches, and
 * takes the writing role when its batch is next in order.  The ring bounds
 * how far reading may run ahead of writing: a writer held up (the sink
 * waiting for an fsync, or the thread losing its CPU to librdkafka's) does
 * not leave the other workers without input until the ring is full.
 */
static void *worker(void *arg)
{
    pool *pl = arg;
    pixel_ctx *ctx = pixel_ctx_new();
    if (!ctx) {
        return NULL;
    }
    if (g_fixed_ms) {
        pixel_ctx_set_clock(ctx, g_fixed_ms);
    }
    pthread_mutex_lock(&pl->mu);
    while (!pl->done_reading) {
        if (pl->write_failed && !pl->reading) {
            /* Converting more would only fail to be written (a full disk,
               a closed pipe): the batches read already are finished, no
               more is read. */
            pl->done_reading = true;
            pl->s->stopped = input_left(pl->in);
            pthread_cond_broadcast(&pl->work_cv);
            if (pl->next_write == pl->next_fill) {
                pthread_cond_signal(&pl->end_cv);
            }
            break;
        }
        if (pl->reading || pl->next_fill - pl->next_write >= (unsigned long)pl->nring) {
            pl->waiting++;
            pthread_cond_wait(&pl->work_cv, &pl->mu);
            pl->waiting--;
            continue;
        }
        batch *b = &pl->ring[pl->next_fill % (unsigned long)pl->nring];
        pl->reading = true;
        pthread_mutex_unlock(&pl->mu);
        int f = fill_batch(pl->in, b);
        pthread_mutex_lock(&pl->mu);
        pl->reading = false;
        pl->bytes_read = pl->in->bytes_done;
        if (f <= 0) {
            pl->done_reading = true;
            pl->rc = f < 0 ? 1 : pl->rc;
            pthread_cond_broadcast(&pl->work_cv); /* every worker ends */
            if (pl->next_write == pl->next_fill) {
                pthread_cond_signal(&pl->end_cv);
            }
            break;
        }
        b->seq = pl->next_fill++;
        b->state = 1;
        if (pl->waiting) {
            pthread_cond_signal(&pl->work_cv); /* the input is free */
        }
        pthread_mutex_unlock(&pl->mu);
        process_batch(ctx, b);
        pthread_mutex_lock(&pl->mu);
        b->state = 2;
        write_finished(pl);
    }
    pthread_mutex_unlock(&pl->mu);
    pixel_ctx_free(ctx);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The workers read, convert and write (write_finished) until the end; this
 * thread waits for it, drawing the progress line. */
static int run_threads(const options *o, input *in, sinks *s)
{
    unsigned int per_job = RING_BYTES_PER_JOB / g_batch_bytes;
    pool pl = {.nring = o->jobs * (int)(per_job > 2 ? per_job : 2), .in = in, .o = o, .s = s};
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.work_cv, NULL);
    pthread_cond_init(&pl.end_cv, NULL);
    pl.ring = calloc((size_t)pl.nring, sizeof(batch));
    pthread_t *th = calloc((size_t)o->jobs, sizeof(pthread_t));
    if (!pl.ring || !th) {
        fprintf(stderr, "pixelconv: out of memory\n");
        return 1;
    }
    double t0 = now_s();
    for (int i = 0; i < o->jobs; i++) {
        pthread_create(&th[i], NULL, worker, &pl);
    }
    pthread_mutex_lock(&pl.mu);
    while (!(pl.done_reading && !pl.reading && pl.next_write == pl.next_fill)) {
        if (o->progress) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&pl.end_cv, &pl.mu, &ts);
            /* A worker may be reading: a snapshot, not *in. */
            input now = {.bytes_total = in->bytes_total, .bytes_done = pl.bytes_read};
            counts c = {.lines = pl.lines_written};
            progress(&now, &c, t0, 0);
        } else {
            pthread_cond_wait(&pl.end_cv, &pl.mu);
        }
    }
    pthread_mutex_unlock(&pl.mu);
    for (int i = 0; i < o->jobs; i++) {
        pthread_join(th[i], NULL);
    }
    if (o->progress) {
        progress(in, &s->total, t0, 1);
    }
    for (int i = 0; i < pl.nring; i++) {
        free(pl.ring[i].in);
        free(pl.ring[i].ev);
        free(pl.ring[i].qr);
    }
    free(pl.ring);
    free(th);
    return pl.rc;
}

static int run_inline(const options *o, input *in, sinks *s)
{
    pixel_ctx *ctx = pixel_ctx_new();
    batch b = {0};
    if (!ctx) {
        fprintf(stderr, "pixelconv: out of memory\n");
        return 1;
    }
    if (g_fixed_ms) {
        pixel_ctx_set_clock(ctx, g_fixed_ms);
    }
    double t0 = now_s(), last = t0;
    int f, rc = 0;
    while ((f = fill_batch(in, &b)) > 0) {
        process_batch(ctx, &b);
        write_batch(s, &b);
        if (s->write_failed) {
            s->stopped = input_left(in); /* converting more would only fail to be written */
            break;
        }
        metrics_tick(o);
        if (o->progress && now_s() - last > 0.25) {
            progress(in, &s->total, t0, 0);
            last = now_s();
        }
    }
    if (f < 0) {
        fprintf(stderr, "pixelconv: out of memory reading input\n");
        rc = 1;
    }
    if (o->progress) {
        progress(in, &s->total, t0, 1);
    }
    free(b.in);
    free(b.ev);
    free(b.qr);
    pixel_ctx_free(ctx);
    return rc;
}

/* ---- explain ------------------------------------------------------------------ */

static void explain_line(pixel_ctx *ctx, const char *line, size_t n, FILE *out)
{
    pixel_outcome oc;
    pixel_error err;
    pixel_error_clear(&err);
    fprintf(out, "line:     %.*s\n", (int)n, line);
    int rc = pixel_parse(g_pipe, ctx, line, n, &oc, &err);
    const pixel_record *rec = pixel_ctx_record(ctx);
    static const char *const names[] = {
        "syslog.pri",   "syslog.timestamp", "syslog.hostname", "syslog.tag",  "syslog.procid",
        "log.client",   "log.user",         "log.time",        "log.method",  "log.path",
        "log.protocol", "log.status",       "log.bytes",       "log.referer", "log.user_agent",
        "log.host",     "log.request_time"};
    fprintf(out, "parse:    %s\n",
            rc < 0 ? "FAILED" : oc == PIXEL_OUTCOME_PENDING ? "ok" : pixel_outcome_str(oc));
    if (rc == 0 && oc == PIXEL_OUTCOME_SKIPPED) {
        fprintf(out, "          (not a pixel hit: its method and path are not input.methods and "
                     "input.pixel_paths)\n");
    }
    for (size_t i = 0; rec && i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len;
        const char *v = pixel_record_get(rec, names[i], &len);
        if (v) {
            fprintf(out, "  %-18s %.*s\n", names[i], (int)len, v);
        }
    }
    for (size_t i = 0; rec && i < pixel_record_param_count(rec); i++) {
        const char *v;
        size_t nl, vl;
        const char *name = pixel_record_param(rec, i, &v, &nl, &vl);
        fprintf(out, "  query.%-12.*s %.*s\n", (int)nl, name, (int)vl, v);
    }
    if (rc == 0 && oc == PIXEL_OUTCOME_PENDING) {
        rc = pixel_map(g_pipe, ctx, &oc, &err);
        fprintf(out, "map:      %s\n", pixel_value_dump(ctx, pixel_ctx_event(ctx), NULL));
    }
    if (rc == 0 && oc == PIXEL_OUTCOME_PENDING) {
        rc = pixel_enrich(g_pipe, ctx, &oc, &err);
        if (oc == PIXEL_OUTCOME_PENDING) {
            fprintf(out, "enrich:   %s\n", pixel_value_dump(ctx, pixel_ctx_event(ctx), NULL));
        }
    }
    if (rc == 0 && oc == PIXEL_OUTCOME_PENDING) {
        rc = pixel_validate(g_pipe, ctx, &oc, &err);
        fprintf(out, "validate: %s\n", rc < 0                           ? "FAILED"
                                        : oc == PIXEL_OUTCOME_EVENT ? "valid"
                                                                    : "invalid");
    }
    if (rc < 0) {
        char buf[512];
        fprintf(out, "verdict:  FAILED: %s\n\n", pixel_error_format(&err, buf, sizeof(buf)));
        return;
    }
    fprintf(out, "verdict:  %s\n", pixel_outcome_str(oc));
    for (size_t i = 0; i < pixel_ctx_reason_count(ctx); i++) {
        const pixel_reason *r = pixel_ctx_reason(ctx, i);
        fprintf(out, "  - [%s] %s/%s%s%s%s%s: %s\n", pixel_stage_str(r->stage), r->family, r->code,
                r->location ? " at " : "", r->location ? r->location : "",
                r->source ? " by " : "", r->source ? r->source : "", r->message);
    }
    size_t olen;
    const char *o = pixel_ctx_output(ctx, g_pipe, &olen);
    if (o) {
        fprintf(out, "output:   %.*s\n", (int)olen, o);
    }
    fputc('\n', out);
}

static int run_explain(input *in, FILE *out)
{
    pixel_ctx *ctx = pixel_ctx_new();
    batch b = {0};
    if (!ctx) {
        return 1;
    }
    if (g_fixed_ms) {
        pixel_ctx_set_clock(ctx, g_fixed_ms);
    }
    int f;
    while ((f = fill_batch(in, &b)) > 0) {
        const char *s = b.in, *end = b.in + b.in_len;
        while (s < end) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            explain_line(ctx, s, (size_t)((nl ? nl : end) - s), out);
            s = nl ? nl + 1 : end;
        }
        if (!b.regular) {
            fflush(out);
        }
    }
    free(b.in);
    free(b.ev);
    free(b.qr);
    pixel_ctx_free(ctx);
    return f < 0 ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------ */

/* The counters as JSON to f (opened at the start, see main), then closed. */
static int write_stats(FILE *f, const counts *c)
{
    fprintf(f,
            "{\"lines\":%lu,\"events\":%lu,\"quarantined\":%lu,\"skipped\":%lu,\"dropped\":%lu,"
            "\"failed\":%lu,\"quarantine_codes\":{",
            c->lines, c->events, c->quarantined, c->skipped, c->dropped, c->failed);
    for (size_t i = 0; i < c->ncodes; i++) {
        fprintf(f, "%s\"%s\":%lu", i ? "," : "", c->codes[i].code, c->codes[i].n);
    }
    fprintf(f, "},\"dropped_by\":{");
    for (size_t i = 0; i < c->ndrops; i++) {
        fprintf(f, "%s\"%s\":%lu", i ? "," : "", c->drops[i].code, c->drops[i].n);
    }
    fprintf(f, "}}\n");
    return (f == stdout ? fflush(f) : fclose(f)) == 0 ? 0 : -1;
}

/* --fixed-time: what the pipeline's rfc3339 timestamps take, after 1970. */
static long long parse_fixed_time(const char *s)
{
    int64_t ms;
    return pixel_time_parse(s, strlen(s), &ms) == PIXEL_OK && ms > 0 ? (long long)ms : -1;
}

static FILE *open_out(const char *path, FILE *dflt)
{
    if (!path || strcmp(path, "-") == 0) {
        return dflt;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "pixelconv: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void parse_args(int argc, char **argv, options *o)
{
    static const struct option longs[] = {{"config", required_argument, NULL, 'c'},
                                          {"output", required_argument, NULL, 'o'},
                                          {"quarantine", required_argument, NULL, 'q'},
                                          {"stats", required_argument, NULL, 's'},
                                          {"jobs", required_argument, NULL, 'j'},
                                          {"explain", no_argument, NULL, 'e'},
                                          {"fixed-time", required_argument, NULL, 'T'},
                                          {"quiet", no_argument, NULL, 'Q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {"kafka", no_argument, NULL, 'k'},
                                          {"kafka-set", required_argument, NULL, 'K'},
                                          {"metrics-file", required_argument, NULL, 'M'},
                                          {"metrics-port", required_argument, NULL, 'P'},
                                          {NULL, 0, NULL, 0}};
    int c;
    o->jobs = 1;
    o->metrics_port = -1;
    while ((c = getopt_long(argc, argv, "c:o:q:s:j:ekhV", longs, NULL)) != -1) {
        switch (c) {
            case 'k':
#ifndef PIXEL_HAVE_KAFKA
                die_usage("this pixelconv was built without Kafka support (librdkafka)");
#endif
                o->kafka = true;
                break;
            case 'K':
                if (!strchr(optarg, '=') || o->nkafka_set >= 63) {
                    die_usage("--kafka-set takes NAME=VALUE (at most 63 times)");
                }
                o->kafka_set[o->nkafka_set++] = optarg;
                break;
            case 'M':
                o->metrics_file = optarg;
                break;
            case 'P': {
                char *end;
                long port = strtol(optarg, &end, 10);
                if (*end || port < 0 || port > 65535) {
                    die_usage("--metrics-port takes a port number (0 picks a free one)");
                }
                o->metrics_port = (int)port;
                break;
            }
            case 'c':
                o->pipeline = optarg;
                break;
            case 'o':
                o->out = optarg;
                break;
            case 'q':
                o->quarantine = optarg;
                break;
            case 's':
                o->stats = optarg;
                break;
            case 'j': {
                char *end;
                long j = strtol(optarg, &end, 10);
                if (*end || j < 1 || j > 256) {
                    die_usage("-j takes a number of threads from 1 to 256");
                }
                o->jobs = (int)j;
                break;
            }
            case 'e':
                o->explain = true;
                break;
            case 'T':
                o->fixed_ms = parse_fixed_time(optarg);
                if (o->fixed_ms < 0) {
                    die_usage("--fixed-time takes an RFC 3339 time: YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)");
                }
                break;
            case 'Q':
                o->quiet = true;
                break;
            case 'h':
                usage();
                exit(0);
            case 'V':
                printf("pixelconv (libpixel) %s\n", PIXEL_VERSION_STRING);
                exit(0);
            default:
                die_usage("invalid option");
        }
    }
    if (!o->pipeline) {
        die_usage("a pipeline is required: -c PIPELINE.yaml");
    }
}

int main(int argc, char **argv)
{
    options o = {0};
    parse_args(argc, argv, &o);
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    if (pixel_pipeline_load_file(&p, o.pipeline, NULL, &err) < 0) {
        char buf[1024];
        fprintf(stderr, "pixelconv: %s\n", pixel_error_format(&err, buf, sizeof(buf)));
        return 2;
    }
    g_pipe = p;
    g_fixed_ms = o.fixed_ms;
    input in = {.files = argv + optind, .nfiles = argc - optind};
    for (int i = 0; i < in.nfiles; i++) {
        struct stat st;
        if (strcmp(in.files[i], "-") != 0 && stat(in.files[i], &st) == 0) {
            in.bytes_total += (unsigned long long)st.st_size;
        }
    }
    o.progress = !o.quiet && !o.explain && isatty(2) && in.bytes_total > 0;
    /* before -o and -q are opened (and truncated) */
    if (o.kafka && o.explain) {
        die_usage("--explain and --kafka do not go together");
    }
    if (!o.kafka && o.nkafka_set > 0) {
        /* the settings would be ignored and the events go to -o instead */
        die_usage("--kafka-set applies to --kafka only");
    }
    sinks s = {0};
    /* Every output is opened before any input is read: a path that cannot be
       written is said at once, not after the whole conversion. */
    FILE *stats = o.stats ? open_out(o.stats, stdout) : NULL;
    s.ev = open_out(o.out, stdout);
    s.qr = open_out(o.quarantine, stderr);
    s.ev_name = s.ev == stdout ? "stdout" : o.out;
    s.qr_name = s.qr == stderr ? "stderr" : o.quarantine;
    if (o.metrics_file || o.metrics_port >= 0) {
        g_metrics = pixel_metrics_new("pixelconv");
        if (!g_metrics || (o.metrics_port >= 0 && pixel_metrics_listen(g_metrics, o.metrics_port) < 0)) {
            fprintf(stderr, "pixelconv: cannot start the metrics listener on 127.0.0.1:%d\n",
                    o.metrics_port);
            return 1;
        }
    }
#ifdef PIXEL_HAVE_KAFKA
    if (o.kafka) {
        char msg[512] = "";
        pixelconv_kafka *k = NULL;
        o.kafka_set[o.nkafka_set] = NULL;
        if (pixelconv_kafka_open(&k, o.pipeline, o.kafka_set, pixel_pipeline_version(p), msg,
                                 sizeof(msg)) < 0) {
            fprintf(stderr, "pixelconv: %s\n", msg);
            return 2;
        }
        s.kafka = g_kafka = k;
        s.qr_too = o.quarantine != NULL;
        g_batch_bytes = KAFKA_BATCH_BYTES;
    }
#endif
    setvbuf(s.ev, NULL, _IOFBF, 1 << 20);
    int rc;
    if (o.explain) {
        rc = run_explain(&in, s.ev);
    } else {
        rc = o.jobs > 1 ? run_threads(&o, &in, &s) : run_inline(&o, &in, &s);
    }
    if (fflush(s.ev) != 0 || (s.ev != stdout && fclose(s.ev) != 0)) {
        write_failed(&s, "events", s.ev_name, errno);
    }
    if (fflush(s.qr) != 0 || (s.qr != stderr && fclose(s.qr) != 0)) {
        write_failed(&s, "quarantine records", s.qr_name, errno);
    }
    if (s.write_failed) {
        fprintf(stderr, "pixelconv: %s%s\n", s.write_failure,
                s.stopped ? "; stopped there: the rest of the input was not converted" : "");
        rc = 1;
    }
#ifdef PIXEL_HAVE_KAFKA
    if (s.kafka) {
        char msg[512] = "";
        pixel_sink_stats st;
        if (pixelconv_kafka_close(s.kafka, &st, msg, sizeof(msg)) < 0) {
            fprintf(stderr, "pixelconv: delivery failed: %s\n", msg);
            rc = 1;
        }
        if (!o.quiet) {
            fprintf(stderr,
                    "pixelconv: delivery: %llu delivered to Kafka, %llu spooled, %llu quarantine "
                    "records, %llu failovers\n",
                    (unsigned long long)st.delivered, (unsigned long long)st.spooled,
                    (unsigned long long)st.quarantined, (unsigned long long)st.failovers);
        }
    }
#endif
    if (g_metrics) {
        if (o.metrics_file && pixel_metrics_write_file(g_metrics, o.metrics_file) != 0) {
            fprintf(stderr, "pixelconv: %s: cannot write metrics\n", o.metrics_file);
            rc = 1;
        }
        pixel_metrics_free(g_metrics);
    }
    if (s.failure[0]) {
        fprintf(stderr, "pixelconv: %lu line(s) could not be processed: %s\n", s.total.failed,
                s.failure);
        rc = 1;
    }
    if (in.failed) {
        rc = 1;
    }
    if (!o.explain && !o.quiet) {
        fprintf(
            stderr, "pixelconv: %lu lines: %lu events, %lu quarantined, %lu skipped, %lu dropped\n",
            s.total.lines, s.total.events, s.total.quarantined, s.total.skipped, s.total.dropped);
    }
    if (stats && write_stats(stats, &s.total) < 0) {
        fprintf(stderr, "pixelconv: writing the stats to %s failed: %s\n", o.stats, strerror(errno));
        rc = 1;
    }
    free(in.carry);
    free(in.zin);
    pixel_pipeline_free(p);
    return rc;
}
