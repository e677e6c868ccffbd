/*
 * pixel-queue-trim: before rsyslog starts, cut a disk queue back to what its
 * .qi file accounts for.
 *
 *   pixel-queue-trim [-n] QI_FILE...
 *
 * QI_FILE is <workDirectory>/<queue.filename>.qi, for tier two
 * /var/spool/rsyslog/pixel.qi.  Run it while that rsyslog is stopped (as the
 * unit's ExecStartPre=); -n only reports.
 *
 * Why (docs/deployment.md, "A SIGKILL between a queue write and its
 * checkpoint"): a Disk queue writes a message to its file, then checkpoints
 * the .qi file (queue.checkpointInterval="1"), and only then does imrelp
 * acknowledge it.  A SIGKILL between the two leaves bytes past the write
 * offset the .qi records: a message no sender was told was received.  On
 * restart rsyslog 8.2302 writes new messages from that offset, over those
 * bytes, but its reader may already hold the old bytes in its read-ahead
 * buffer: it hands the stale message on, reads on from a misaligned offset,
 * skips to the next object header and so loses acknowledged messages,
 * reporting "lost N messages from diskqueue (invalid .qi file)" at best.
 * Cutting the file back to the recorded offset removes the stale bytes;
 * their message was never acknowledged, so its sender sends it again.
 *
 * What it changes, and nothing else:
 *   - the write file (<prefix>.<8 digits> named by the .qi's write stream)
 *     is truncated to the recorded offset when it is longer;
 *   - files numbered after it (begun after the last checkpoint) are removed;
 *   - with no .qi file at all, every <prefix>.<8 digits> file is removed:
 *     rsyslog starts such a queue afresh at file 1, offset 0, and nothing in
 *     them is accounted for.
 *
 * Exit status: 0 nothing to do or repaired, 1 the queue is damaged in a way
 * this cannot repair (a file shorter than the .qi says), 2 usage or I/O error.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/version.h"

/* rsyslog's STREAMMODE_WRITE (runtime/stream.h) and file number width. */
#define STREAMMODE_WRITE 2
#define FNUM_DIGITS 8

typedef struct wstream {
    char prefix[256];
    long long fnum, offs;
    int have_fnum, have_offs, mode;
} wstream;

static int dry_run;

/* One line on stdout per change (or, with -n, per change it would make). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    fputs("pixel-queue-trim: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Read the whole file; NULL with errno set on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, ncap + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        errno = EIO;
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/*
 * One serialized stream object: lines "+NAME:TYPE:LEN:VALUE:" up to ">End".
 * LEN counts VALUE's bytes, so a value may hold ':' (file names do not, but
 * the format allows it).  Returns 0 and fills *w, or -1 if malformed.
 */
static int parse_strm(const char *p, const char *end, wstream *w)
{
    memset(w, 0, sizeof(*w));
    w->mode = -1;
    while (p < end && *p == '+') {
        const char *name = p + 1, *c1 = memchr(name, ':', (size_t)(end - name));
        if (c1 == NULL || c1 + 2 >= end || c1[2] != ':') {
            return -1;
        }
        char *after;
        errno = 0;
        long len = strtol(c1 + 3, &after, 10);
        if (errno != 0 || after == c1 + 3 || *after != ':' || len < 0 || len > end - after - 2) {
            return -1;
        }
        const char *val = after + 1;
        if (val[len] != ':') {
            return -1;
        }
        size_t nlen = (size_t)(c1 - name);
        char num[32];
        if (nlen == 8 && memcmp(name, "pszFName", 8) == 0) {
            if ((size_t)len >= sizeof(w->prefix)) {
                return -1;
            }
            memcpy(w->prefix, val, (size_t)len);
            w->prefix[len] = '\0';
        } else if ((size_t)len < sizeof(num) &&
                   ((nlen == 9 && memcmp(name, "iCurrFNum", 9) == 0) ||
                    (nlen == 9 && memcmp(name, "iCurrOffs", 9) == 0) ||
                    (nlen == 15 && memcmp(name, "tOperationsMode", 15) == 0))) {
            memcpy(num, val, (size_t)len);
            num[len] = '\0';
            char *e;
            errno = 0;
            long long v = strtoll(num, &e, 10);
            if (errno != 0 || e == num || *e != '\0' || v < 0) {
                return -1;
            }
            if (name[0] == 't') {
                w->mode = (int)v;
            } else if (name[5] == 'F') {
                w->fnum = v;
                w->have_fnum = 1;
            } else {
                w->offs = v;
                w->have_offs = 1;
            }
        }
        p = val + len + 1;
        if (p < end && *p == '\n') {
            p++;
        }
    }
    return w->have_fnum && w->have_offs && w->prefix[0] != '\0' ? 0 : -1;
}

/* The write stream of a .qi file: the stream object in write mode. */
static int find_write_stream(const char *buf, size_t len, wstream *out)
{
    static const char tag[] = "<Obj:1:strm:1:\n";
    const char *p = buf, *end = buf + len;
    int found = 0;

    while ((p = strstr(p, tag)) != NULL) {
        wstream w;
        p += sizeof(tag) - 1;
        const char *oend = strstr(p, ">End");
        if (oend == NULL || parse_strm(p, oend, &w) != 0) {
            return -1;
        }
        if (!found || w.mode == STREAMMODE_WRITE) {
            *out = w;
            found = 1;
        }
        if (w.mode == STREAMMODE_WRITE) {
            break;
        }
        p = oend < end ? oend : end;
    }
    return found ? 0 : -1;
}

/* Is NAME "<prefix>.<FNUM_DIGITS digits>"?  Sets *num. */
static int data_file_num(const char *name, const char *prefix, long long *num)
{
    size_t pl = strlen(prefix);

    if (strncmp(name, prefix, pl) != 0 || name[pl] != '.' || strlen(name + pl + 1) != FNUM_DIGITS) {
        return 0;
    }
    *num = 0;
    for (const char *d = name + pl + 1; *d != '\0'; d++) {
        if (*d < '0' || *d > '9') {
            return 0;
        }
        *num = *num * 10 + (*d - '0');
    }
    return 1;
}

/* Remove the data files of PREFIX in DIR numbered above ABOVE (-1: all). */
static int remove_files_above(const char *dir, const char *prefix, long long above)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        if (errno == ENOENT) {
            return 0; /* no work directory yet: no queue to trim */
        }
        fprintf(stderr, "pixel-queue-trim: %s: %s\n", dir, strerror(errno));
        return 2;
    }
    while ((e = readdir(d)) != NULL) {
        long long num;
        char path[PATH_MAX];
        if (!data_file_num(e->d_name, prefix, &num) || num <= above) {
            continue;
        }
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path)) {
            rc = 2;
            continue;
        }
        say("%s: not accounted for by the .qi file: %s", path, dry_run ? "would remove it" : "removed");
        if (!dry_run && unlink(path) != 0) {
            fprintf(stderr, "pixel-queue-trim: %s: %s\n", path, strerror(errno));
            rc = 2;
        }
    }
    closedir(d);
    return rc;
}

static int trim_one(const char *qi)
{
    char dir[PATH_MAX], prefix[256], path[PATH_MAX];
    const char *slash = strrchr(qi, '/'), *base = slash ? slash + 1 : qi;
    size_t blen = strlen(base);
    struct stat st;
    wstream w;

    if (blen <= 3 || strcmp(base + blen - 3, ".qi") != 0 || blen - 3 >= sizeof(prefix)) {
        fprintf(stderr, "pixel-queue-trim: %s: not a queue's .qi file name\n", qi);
        return 2;
    }
    memcpy(prefix, base, blen - 3);
    prefix[blen - 3] = '\0';
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if ((size_t)(slash - qi) >= sizeof(dir)) {
        return 2;
    } else {
        memcpy(dir, qi, (size_t)(slash - qi));
        dir[slash - qi] = '\0';
        if (dir[0] == '\0') {
            strcpy(dir, "/");
        }
    }

    size_t len;
    char *buf = slurp(qi, &len);
    if (buf == NULL) {
        if (errno != ENOENT) {
            fprintf(stderr, "pixel-queue-trim: %s: %s\n", qi, strerror(errno));
            return 2;
        }
        /* No .qi: rsyslog starts the queue afresh over whatever is there. */
        return remove_files_above(dir, prefix, -1);
    }
    int bad = find_write_stream(buf, len, &w);
    free(buf);
    if (bad != 0) {
        fprintf(stderr, "pixel-queue-trim: %s: no write stream found: not an rsyslog .qi file?\n", qi);
        return 2;
    }
    if (snprintf(path, sizeof(path), "%s/%s.%0*lld", dir, w.prefix, FNUM_DIGITS, w.fnum) >=
        (int)sizeof(path)) {
        return 2;
    }

    int rc = 0;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) {
            fprintf(stderr, "pixel-queue-trim: %s: %s\n", path, strerror(errno));
            return 2;
        }
        if (w.offs > 0) {
            say("%s: missing, but %s records %lld bytes in it", path, qi, w.offs);
            rc = 1;
        }
    } else if ((long long)st.st_size > w.offs) {
        say("%s: %s from %lld to %lld bytes, the write offset %s records (the rest was written "
            "after the last checkpoint, never acknowledged)",
            path, dry_run ? "would cut it" : "cut", (long long)st.st_size, w.offs, qi);
        if (!dry_run && truncate(path, (off_t)w.offs) != 0) {
            fprintf(stderr, "pixel-queue-trim: %s: %s\n", path, strerror(errno));
            return 2;
        }
    } else if ((long long)st.st_size < w.offs) {
        say("%s: %lld bytes, but %s records %lld: data was lost before this start", path,
            (long long)st.st_size, qi, w.offs);
        rc = 1;
    }
    int rc2 = remove_files_above(dir, w.prefix, w.fnum);
    return rc2 > rc ? rc2 : rc;
}

int main(int argc, char **argv)
{
    int i = 1, rc = 0;

    if (tool_version_asked(argc, argv, "pixel-queue-trim")) {
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: pixel-queue-trim [-n] QI_FILE...\n"
               "Cut an rsyslog disk queue back to what its .qi file records (run while rsyslog is "
               "stopped).\n  -n  report only\n" TOOL_VERSION_HELP);
        return 0;
    }
    if (i < argc && strcmp(argv[i], "-n") == 0) {
        dry_run = 1;
        i++;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: pixel-queue-trim [-n] QI_FILE...\n");
        return 2;
    }
    for (; i < argc; i++) {
        int r = trim_one(argv[i]);
        rc = r > rc ? r : rc;
    }
    return rc;
}
