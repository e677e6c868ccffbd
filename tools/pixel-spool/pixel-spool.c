/*
 * pixel-spool: look at a spool without changing it.
 *
 *   pixel-spool verify  [--all] PATH...   check framing and CRCs of every segment
 *   pixel-spool inspect [--all] PATH...   print every record with segment and offset
 *
 * PATH is a spool directory or a segment file.  Segments a live writer may
 * still append to are skipped unless --all is given.  The tool opens
 * everything read-only: a damaged spool is diagnosed, never "fixed".
 *
 * Exit status: 0 all clean, 1 damage found, 2 usage or I/O error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/version.h"

#include "pixel/spool.h"

typedef struct totals {
    uint64_t segments, records, corrupt, torn, bad_bytes;
    int error;
} totals;

static void print_bytes(FILE *f, const char *s, size_t len)
{
    if (s == NULL) {
        fputs("-", f);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t' || c == '\n' || c == '\\' || c < 0x20) {
            fprintf(f, "\\x%02x", c);
        } else {
            fputc(c, f);
        }
    }
}

static void do_segment(const char *path, int inspect, totals *t)
{
    pixel_spool_reader *r;
    pixel_spool_msg m;
    pixel_error err;
    uint64_t off, end, records = 0;
    int item;

    memset(&err, 0, sizeof(err));
    if (pixel_spool_reader_open(&r, path, &err) < 0) {
        struct stat st;
        fprintf(stderr, "pixel-spool: %s\n", err.text);
        if (err.code != PIXEL_DELIVERY_ECORRUPT) {
            t->error = 1; /* could not read it: an error, not damage */
            return;
        }
        /* A segment whose header is damaged: none of its records can be
         * read, and the summary says so in its counts. */
        off = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        t->segments++;
        t->corrupt++;
        t->bad_bytes += off;
        if (!inspect) {
            printf("%s: 0 records, %" PRIu64 " bytes (damaged header: all of it)\n", path, off);
        }
        return;
    }
    t->segments++;
    for (;;) {
        memset(&err, 0, sizeof(err));
        item = pixel_spool_reader_next(r, &m, &off, &end, &err);
        if (item <= 0) {
            break;
        }
        if (item == PIXEL_SPOOL_RECORD) {
            records++;
            if (inspect) {
                printf("%s\t%" PRIu64 "\t%s\t", path, off,
                       (m.flags & PIXEL_SPOOL_MSG_QUARANTINE) ? "quarantine" : "event");
                print_bytes(stdout, m.topic, m.topic_len);
                putchar('\t');
                print_bytes(stdout, m.key, m.key_len);
                putchar('\t');
                print_bytes(stdout, m.type, m.type_len);
                putchar('\t');
                print_bytes(stdout, m.value, m.value_len);
                putchar('\n');
            }
            continue;
        }
        /* Damage goes to stderr with segment and offset (err.text says both). */
        fprintf(stderr, "pixel-spool: %s\n", err.text);
        t->bad_bytes += end - off;
        if (item == PIXEL_SPOOL_CORRUPT) {
            t->corrupt++;
        } else {
            t->torn++;
        }
    }
    if (!inspect) {
        printf("%s: %" PRIu64 " records, %" PRIu64 " bytes\n", path, records,
               pixel_spool_reader_size(r));
    }
    t->records += records;
    pixel_spool_reader_close(r);
}

static void do_path(const char *path, int inspect, int all, totals *t)
{
    struct stat st;
    pixel_spool_segment *segs;
    pixel_error err;
    size_t n;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "pixel-spool: %s: %s\n", path, strerror(errno));
        t->error = 1;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        do_segment(path, inspect, t);
        return;
    }
    memset(&err, 0, sizeof(err));
    if (pixel_spool_segments(path, &segs, &n, &err) < 0) {
        fprintf(stderr, "pixel-spool: %s\n", err.text);
        t->error = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (segs[i].active && !all) {
            fprintf(stderr, "pixel-spool: %s: skipped, a live writer holds it (--all to read)\n",
                    segs[i].path);
            continue;
        }
        do_segment(segs[i].path, inspect, t);
    }
    pixel_spool_segments_free(segs, n);
}

static int usage_to(FILE *out, int status)
{
    fputs("usage: pixel-spool verify|inspect [--all] PATH...\n"
          "  verify   check every segment's framing and CRCs (read-only)\n"
          "  inspect  print records: segment, offset, kind, topic, key, type, value\n"
          "  PATH     a spool directory or a segment file\n" TOOL_VERSION_HELP,
          out);
    return status;
}

static int usage(void)
{
    return usage_to(stderr, 2);
}

int main(int argc, char **argv)
{
    totals t;
    int inspect, all = 0, first = 2;
    if (tool_version_asked(argc, argv, "pixel-spool")) {
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        return usage_to(stdout, 0); /* help asked for: stdout, status 0 */
    }

    if (argc < 3) {
        return usage();
    }
    if (strcmp(argv[1], "verify") == 0) {
        inspect = 0;
    } else if (strcmp(argv[1], "inspect") == 0) {
        inspect = 1;
    } else {
        return usage();
    }
    if (strcmp(argv[2], "--all") == 0) {
        all = 1;
        first = 3;
    }
    if (first >= argc) {
        return usage();
    }
    memset(&t, 0, sizeof(t));
    for (int i = first; i < argc; i++) {
        do_path(argv[i], inspect, all, &t);
    }
    fflush(stdout);
    fprintf(inspect ? stderr : stdout,
            "%" PRIu64 " segments, %" PRIu64 " records, %" PRIu64 " corrupt regions, %" PRIu64
            " torn tails, %" PRIu64 " damaged bytes\n",
            t.segments, t.records, t.corrupt, t.torn, t.bad_bytes);
    if (t.error && t.corrupt == 0) {
        return 2;
    }
    return (t.corrupt > 0 || t.torn > 0) ? 1 : 0;
}
