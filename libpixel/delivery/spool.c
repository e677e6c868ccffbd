/*
 * The durable spool: append-only segment files of CRC-framed records.
 *
 * Design (see include/pixel/spool.h for the format):
 * - A writer owns one sub-directory, held with flock() for its lifetime, so
 *   no two processes ever write the same segment.  The lock dies with the
 *   process, so a crashed writer's slot is free again at once.
 * - A writer never reopens a segment for appending.  At open it only cuts a
 *   torn tail (the half-written record of a crash) off its slot's last
 *   segment, then starts a new segment at the first append.
 * - A failed or short write is rolled back with ftruncate(), so the only
 *   torn records on disk are those of a crash.
 * - The size limit covers the whole directory.  Other writers and replay
 *   change it behind our back, so when the limit is hit the directory is
 *   measured again (at most every FULL_RESCAN_MS) before refusing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery_private.h"

#define SEG_MAGIC       "PIXSPOOL"
#define SEG_HEADER_LEN  16u
#define SEG_VERSION     1u
#define REC_MAGIC       0x31525850u /* "PXR1" read as little-endian */
#define REC_HEADER_LEN  16u
#define PAYLOAD_VERSION 1u
#define ABSENT          0xFFFFFFFFu
#define MAX_WRITERS     1000
#define FULL_RESCAN_MS  500
#define DEFAULT_SEGMENT (64u * 1024 * 1024)
#define DEFAULT_BATCH   256u

struct pixel_spool {
    char *dir;    /* the spool directory */
    char *wdir;   /* our writer sub-directory */
    int lock_fd;  /* holds the flock on wdir/lock */
    int fd;       /* current segment, -1 before the first append */
    uint64_t seq; /* current (or next) segment number */
    uint64_t seg_size;
    uint64_t total; /* bytes in the whole directory, as far as we know */
    int64_t last_scan_ms;
    unsigned int unsynced;
    uint64_t segment_bytes, max_bytes;
    int fsync_policy;
    unsigned int fsync_batch;
    unsigned char *buf; /* encoding scratch, kept across appends */
    size_t cap;
    uint64_t sync_failures; /* fsyncs that failed (see sync_fd) */
    /* Records such a failure lost that no pixel_spool_sync() has reported
     * yet (the append whose batch fsync failed told only of itself), and
     * the segment they were in. */
    unsigned int lost;
    uint64_t lost_seq;
    int (*fsync)(int fd);   /* fsync, or a test's stand-in */
};

struct pixel_spool_reader {
    char *path;
    const unsigned char *map;
    uint64_t size;
    uint64_t pos;
};

/* ---- payload encoding ------------------------------------------------- */

static size_t field_len(const char *s, size_t len)
{
    return 4 + (s != NULL ? len : 0);
}

static unsigned char *put_field(unsigned char *p, const char *s, size_t len)
{
    if (s == NULL) {
        pixel__put32(p, ABSENT);
        return p + 4;
    }
    pixel__put32(p, (uint32_t)len);
    memcpy(p + 4, s, len);
    return p + 4 + len;
}

static size_t payload_len(const pixel_spool_msg *m)
{
    return 16 + field_len(m->topic, m->topic_len) + field_len(m->key, m->key_len) +
           field_len(m->value, m->value_len) + field_len(m->type, m->type_len) +
           field_len(m->schema_id, m->schema_id_len) +
           field_len(m->pipeline_version, m->pipeline_version_len);
}

static void encode_payload(unsigned char *p, const pixel_spool_msg *m)
{
    p[0] = PAYLOAD_VERSION;
    p[1] = p[2] = p[3] = 0;
    pixel__put32(p + 4, m->flags);
    pixel__put64(p + 8, (uint64_t)m->timestamp_ms);
    p += 16;
    p = put_field(p, m->topic, m->topic_len);
    p = put_field(p, m->key, m->key_len);
    p = put_field(p, m->value, m->value_len);
    p = put_field(p, m->type, m->type_len);
    p = put_field(p, m->schema_id, m->schema_id_len);
    put_field(p, m->pipeline_version, m->pipeline_version_len);
}

static int get_field(const unsigned char **p, const unsigned char *end, const char **s, size_t *len)
{
    uint32_t n;

    if (end - *p < 4) {
        return -1;
    }
    n = pixel__get32(*p);
    *p += 4;
    if (n == ABSENT) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if ((uint64_t)(end - *p) < n) {
        return -1;
    }
    *s = (const char *)*p;
    *len = n;
    *p += n;
    return 0;
}

static int decode_payload(const unsigned char *p, size_t len, pixel_spool_msg *m)
{
    const unsigned char *end = p + len;

    if (len < 16 || p[0] != PAYLOAD_VERSION) {
        return -1;
    }
    m->flags = pixel__get32(p + 4);
    m->timestamp_ms = (int64_t)pixel__get64(p + 8);
    p += 16;
    if (get_field(&p, end, &m->topic, &m->topic_len) < 0 ||
        get_field(&p, end, &m->key, &m->key_len) < 0 ||
        get_field(&p, end, &m->value, &m->value_len) < 0 ||
        get_field(&p, end, &m->type, &m->type_len) < 0 ||
        get_field(&p, end, &m->schema_id, &m->schema_id_len) < 0 ||
        get_field(&p, end, &m->pipeline_version, &m->pipeline_version_len) < 0 ||
        m->value == NULL || p != end) {
        return -1;
    }
    return 0;
}

/* ---- directory helpers ------------------------------------------------ */

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);

    if (s != NULL) {
        snprintf(s, n, "%s/%s", a, b);
    }
    return s;
}

static char *segment_path(const char *wdir, uint64_t seq)
{
    char name[32];

    snprintf(name, sizeof(name), "%020" PRIu64 ".seg", seq);
    return path_join(wdir, name);
}

/* "00000000000000000042.seg" -> 42; 0 when the name is not a segment. */
static uint64_t segment_seq(const char *name)
{
    size_t n = strlen(name);
    uint64_t v = 0;

    if (n != 24 || strcmp(name + 20, ".seg") != 0) {
        return 0;
    }
    for (size_t i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return v;
}

static int is_writer_dir(const char *name)
{
    if (name[0] != 'w' || name[1] == '\0') {
        return 0;
    }
    for (const char *p = name + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Segment numbers in wdir, sorted; *out is malloc'd (NULL when none). */
static int list_seqs(const char *wdir, uint64_t **out, size_t *count)
{
    DIR *d = opendir(wdir);
    struct dirent *de;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    *count = 0;
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        uint64_t seq = segment_seq(de->d_name);
        if (seq == 0) {
            continue;
        }
        if (n == cap) {
            uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
            if (nv == NULL) {
                free(v);
                closedir(d);
                errno = ENOMEM;
                return -1;
            }
            v = nv;
        }
        v[n++] = seq;
    }
    closedir(d);
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_u64);
    }
    *out = v;
    *count = n;
    return 0;
}

/* Writer sub-directory names of dir, sorted. */
static int list_writers(const char *dir, char ***out, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    *count = 0;
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!is_writer_dir(de->d_name)) {
            continue;
        }
        if (n == cap) {
            char **nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));
            if (nv == NULL) {
                goto nomem;
            }
            v = nv;
        }
        v[n] = path_join(dir, de->d_name);
        if (v[n] == NULL) {
            goto nomem;
        }
        n++;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) { /* few entries: insertion sort */
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    *out = v;
    *count = n;
    return 0;
nomem:
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
    closedir(d);
    errno = ENOMEM;
    return -1;
}

static uint64_t dir_bytes(const char *dir)
{
    char **w;
    size_t nw;
    uint64_t total = 0;

    if (list_writers(dir, &w, &nw) < 0) {
        return 0;
    }
    for (size_t i = 0; i < nw; i++) {
        uint64_t *seqs;
        size_t ns;
        if (list_seqs(w[i], &seqs, &ns) == 0) {
            for (size_t k = 0; k < ns; k++) {
                char *p = segment_path(w[i], seqs[k]);
                struct stat st;
                if (p != NULL && stat(p, &st) == 0) {
                    total += (uint64_t)st.st_size;
                }
                free(p);
            }
            free(seqs);
        }
        free(w[i]);
    }
    free(w);
    return total;
}

/* ---- reader ------------------------------------------------------------ */

PIXEL_API int pixel_spool_reader_open(pixel_spool_reader **out, const char *path, pixel_error *err)
{
    pixel_spool_reader *r;
    struct stat st;
    int fd;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return pixel__d_error(err, PIXEL_EIO, path, 0, 0, "cannot open segment: %s", strerror(e));
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->path = strdup(path)) == NULL) {
        free(r);
        close(fd);
        return pixel__d_error(err, PIXEL_ENOMEM, path, 0, 0, "out of memory");
    }
    r->size = (uint64_t)st.st_size;
    if (r->size > 0) {
        void *m = mmap(NULL, (size_t)r->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            pixel_spool_reader_close(r);
            return pixel__d_error(err, PIXEL_EIO, path, 0, 0, "cannot map segment: %s",
                                  strerror(e));
        }
        r->map = m;
    }
    close(fd);
    if (r->size < SEG_HEADER_LEN || memcmp(r->map, SEG_MAGIC, 8) != 0 ||
        pixel__get32(r->map + 8) != SEG_VERSION) {
        pixel_spool_reader_close(r);
        return pixel__d_error(err, PIXEL_DELIVERY_ECORRUPT, path, 0, 0,
                              "segment %s: offset 0: not a spool segment header (magic and version %u expected)", path,
                              SEG_VERSION);
    }
    r->pos = SEG_HEADER_LEN;
    *out = r;
    return 0;
}

/* A complete, intact record starts at off: returns its total length, else 0. */
static uint64_t good_record_at(const pixel_spool_reader *r, uint64_t off)
{
    const unsigned char *h = r->map + off;
    uint32_t len;

    if (r->size - off < REC_HEADER_LEN || pixel__get32(h) != REC_MAGIC ||
        pixel_crc32c(0, h, 8) != pixel__get32(h + 8)) {
        return 0;
    }
    len = pixel__get32(h + 4);
    if (r->size - off - REC_HEADER_LEN < len ||
        pixel_crc32c(0, h + REC_HEADER_LEN, len) != pixel__get32(h + 12)) {
        return 0;
    }
    return REC_HEADER_LEN + (uint64_t)len;
}

/* After damage at from: the offset of the next intact record, or size. */
static uint64_t resync(const pixel_spool_reader *r, uint64_t from)
{
    for (uint64_t off = from; off + REC_HEADER_LEN <= r->size; off++) {
        /* Cheap magic test first: the CRCs run only on candidates. */
        if (r->map[off] == 'P' && good_record_at(r, off) > 0) {
            return off;
        }
    }
    return r->size;
}

static void report(pixel_error *err, const pixel_spool_reader *r, int code, uint64_t off,
                   uint64_t end, const char *what)
{
    pixel__d_error(err, code, r->path, 0, 0,
                   "segment %s: offset %" PRIu64 ": %s (%" PRIu64 " bytes skipped)", r->path, off,
                   what, end - off);
}

PIXEL_API int pixel_spool_reader_next(pixel_spool_reader *r, pixel_spool_msg *msg, uint64_t *offset,
                                      uint64_t *end, pixel_error *err)
{
    uint64_t off = r->pos, stop;
    const unsigned char *h;
    uint32_t len;

    if (offset != NULL) {
        *offset = off;
    }
    if (end != NULL) {
        *end = off;
    }
    if (off >= r->size) {
        return PIXEL_SPOOL_END;
    }
    h = r->map + off;
    if (r->size - off < REC_HEADER_LEN) {
        stop = r->size;
        report(err, r, PIXEL_DELIVERY_ECORRUPT, off, stop, "torn tail: incomplete record header");
        r->pos = stop;
        if (end != NULL) {
            *end = stop;
        }
        return PIXEL_SPOOL_TORN;
    }
    if (pixel__get32(h) == REC_MAGIC && pixel_crc32c(0, h, 8) == pixel__get32(h + 8)) {
        /* The header is intact, so its length can be trusted. */
        len = pixel__get32(h + 4);
        if (r->size - off - REC_HEADER_LEN < len) {
            stop = r->size;
            report(err, r, PIXEL_DELIVERY_ECORRUPT, off, stop, "torn tail: record cut short");
            r->pos = stop;
            if (end != NULL) {
                *end = stop;
            }
            return PIXEL_SPOOL_TORN;
        }
        stop = off + REC_HEADER_LEN + len;
        if (pixel_crc32c(0, h + REC_HEADER_LEN, len) == pixel__get32(h + 12) &&
            decode_payload(h + REC_HEADER_LEN, len, msg) == 0) {
            r->pos = stop;
            if (end != NULL) {
                *end = stop;
            }
            return PIXEL_SPOOL_RECORD;
        }
        report(err, r, PIXEL_DELIVERY_ECORRUPT, off, stop, "corrupt record: payload CRC mismatch");
        r->pos = stop;
        if (end != NULL) {
            *end = stop;
        }
        return PIXEL_SPOOL_CORRUPT;
    }
    stop = resync(r, off + 1);
    r->pos = stop;
    if (end != NULL) {
        *end = stop;
    }
    if (stop == r->size) {
        /* Nothing intact follows: what a crash mid-write leaves behind. */
        report(err, r, PIXEL_DELIVERY_ECORRUPT, off, stop, "torn tail: damaged record header");
        return PIXEL_SPOOL_TORN;
    }
    report(err, r, PIXEL_DELIVERY_ECORRUPT, off, stop, "corrupt record: bad record header");
    return PIXEL_SPOOL_CORRUPT;
}

PIXEL_API int pixel_spool_reader_seek(pixel_spool_reader *r, uint64_t offset)
{
    if (offset < SEG_HEADER_LEN || offset > r->size) {
        return PIXEL_EINVAL;
    }
    r->pos = offset;
    return 0;
}

PIXEL_API uint64_t pixel_spool_reader_size(const pixel_spool_reader *r)
{
    return r->size;
}

PIXEL_API void pixel_spool_reader_close(pixel_spool_reader *r)
{
    if (r == NULL) {
        return;
    }
    if (r->map != NULL) {
        munmap((void *)r->map, (size_t)r->size);
    }
    free(r->path);
    free(r);
}

/* ---- listing ----------------------------------------------------------- */

/* 1 when a live writer holds wdir's lock. */
static int writer_alive(const char *wdir)
{
    char *lp = path_join(wdir, "lock");
    int fd, alive = 0;

    if (lp == NULL) {
        return 0;
    }
    fd = open(lp, O_RDONLY | O_CLOEXEC);
    free(lp);
    if (fd < 0) {
        return 0;
    }
    if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
        alive = (errno == EWOULDBLOCK);
    }
    close(fd); /* also drops our shared lock */
    return alive;
}

PIXEL_API void pixel_spool_segments_free(pixel_spool_segment *segs, size_t count)
{
    for (size_t i = 0; i < count && segs != NULL; i++) {
        free(segs[i].path);
        free(segs[i].writer_dir);
    }
    free(segs);
}

PIXEL_API int pixel_spool_segments(const char *dir, pixel_spool_segment **out, size_t *count,
                                   pixel_error *err)
{
    char **w;
    size_t nw, n = 0, cap = 0;
    pixel_spool_segment *v = NULL;
    int rc = 0;

    *out = NULL;
    *count = 0;
    if (list_writers(dir, &w, &nw) < 0) {
        return pixel__d_error(err, PIXEL_EIO, dir, 0, 0, "cannot read spool directory: %s",
                              strerror(errno));
    }
    for (size_t i = 0; i < nw && rc == 0; i++) {
        uint64_t *seqs;
        size_t ns;
        int alive = writer_alive(w[i]);
        if (list_seqs(w[i], &seqs, &ns) < 0) {
            continue;
        }
        for (size_t k = 0; k < ns && rc == 0; k++) {
            struct stat st;
            if (n == cap) {
                pixel_spool_segment *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
                if (nv == NULL) {
                    rc = pixel__d_error(err, PIXEL_ENOMEM, dir, 0, 0, "out of memory");
                    break;
                }
                v = nv;
            }
            v[n].path = segment_path(w[i], seqs[k]);
            v[n].writer_dir = strdup(w[i]);
            v[n].seq = seqs[k];
            v[n].size = 0;
            v[n].active = alive && k + 1 == ns;
            if (v[n].path == NULL || v[n].writer_dir == NULL) {
                n++;
                rc = pixel__d_error(err, PIXEL_ENOMEM, dir, 0, 0, "out of memory");
                break;
            }
            if (stat(v[n].path, &st) == 0) {
                v[n].size = (uint64_t)st.st_size;
            }
            n++;
        }
        free(seqs);
    }
    for (size_t i = 0; i < nw; i++) {
        free(w[i]);
    }
    free(w);
    if (rc != 0) {
        pixel_spool_segments_free(v, n);
        return rc;
    }
    *out = v;
    *count = n;
    return 0;
}

/* ---- checkpoints ------------------------------------------------------- */

int pixel__spool_checkpoint_read(const char *wdir, uint64_t *seq, uint64_t *offset)
{
    char *path = path_join(wdir, "checkpoint");
    FILE *f;
    int rc;

    if (path == NULL) {
        return -1;
    }
    f = fopen(path, "r");
    free(path);
    if (f == NULL) {
        return errno == ENOENT ? 1 : -1;
    }
    rc = fscanf(f, "%" SCNu64 " %" SCNu64, seq, offset) == 2 ? 0 : -1;
    fclose(f);
    return rc;
}

int pixel__spool_checkpoint_write(const char *wdir, uint64_t seq, uint64_t offset)
{
    char *path = path_join(wdir, "checkpoint"), *tmp = path_join(wdir, "checkpoint.tmp");
    FILE *f = NULL;
    int rc = -1;

    if (path != NULL && tmp != NULL && (f = fopen(tmp, "w")) != NULL) {
        fprintf(f, "%" PRIu64 " %" PRIu64 "\n", seq, offset);
        if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0) {
            f = NULL;
            if (rename(tmp, path) == 0 && pixel__d_fsync_dir(wdir) == 0) {
                rc = 0;
            }
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    free(path);
    free(tmp);
    return rc;
}

/* ---- writer ------------------------------------------------------------ */

/* The disk (or a quota, or a file size limit) is full: back-pressure, not failure. */
static int full_errno(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

/* Take the first free writer slot of s->dir. */
static int take_slot(pixel_spool *s, pixel_error *err)
{
    for (int i = 0; i < MAX_WRITERS; i++) {
        char name[16], *lp;
        int fd;

        snprintf(name, sizeof(name), "w%03d", i);
        s->wdir = path_join(s->dir, name);
        lp = s->wdir != NULL ? path_join(s->wdir, "lock") : NULL;
        if (lp == NULL) {
            return pixel__d_error(err, PIXEL_ENOMEM, s->dir, 0, 0, "out of memory");
        }
        if (mkdir(s->wdir, 0750) < 0 && errno != EEXIST) {
            int e = errno;
            free(lp);
            return pixel__d_error(err, PIXEL_EIO, s->wdir, 0, 0, "cannot create directory: %s",
                                  strerror(e));
        }
        fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        free(lp);
        if (fd < 0) {
            return pixel__d_error(err, PIXEL_EIO, s->wdir, 0, 0, "cannot open lock file: %s",
                                  strerror(errno));
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            s->lock_fd = fd;
            return 0;
        }
        close(fd);
        free(s->wdir);
        s->wdir = NULL;
    }
    return pixel__d_error(err, PIXEL_DELIVERY_ELOCKED, s->dir, 0, 0,
                          "no free writer slot in the spool directory (%d in use)", MAX_WRITERS);
}

/*
 * Our slot's last segment may end in a record torn by a crash of the
 * previous owner: cut it, so replay finds a clean end.  Damage in the middle
 * is left alone for verify to report.  A segment with no record left is
 * removed and its number reused.
 */
static int recover_last(pixel_spool *s, pixel_error *err)
{
    uint64_t *seqs;
    size_t ns;
    char *path;
    pixel_spool_reader *r;
    pixel_spool_msg m;
    uint64_t off, end, records = 0;
    int item, rc = 0;

    if (list_seqs(s->wdir, &seqs, &ns) < 0) {
        return pixel__d_error(err, PIXEL_EIO, s->wdir, 0, 0, "cannot list segments: %s",
                              strerror(errno));
    }
    s->seq = ns > 0 ? seqs[ns - 1] + 1 : 1;
    free(seqs);
    {
        /* Replay may have removed every segment: never go back below its
         * checkpoint, or new records would look already replayed. */
        uint64_t ck_seq, ck_off;
        if (pixel__spool_checkpoint_read(s->wdir, &ck_seq, &ck_off) == 0 && ck_seq > s->seq) {
            s->seq = ck_seq + 1;
        }
    }
    if (ns == 0) {
        return 0;
    }
    path = segment_path(s->wdir, s->seq - 1);
    if (path == NULL) {
        return pixel__d_error(err, PIXEL_ENOMEM, s->wdir, 0, 0, "out of memory");
    }
    if (pixel_spool_reader_open(&r, path, NULL) < 0) {
        struct stat st;
        /* Only a segment too short to hold its header (a crash right after
         * creating it) is ours to remove; anything else waits for verify. */
        if (stat(path, &st) == 0 && st.st_size < (off_t)SEG_HEADER_LEN) {
            unlink(path);
            s->seq--;
        }
        free(path);
        return 0;
    }
    while ((item = pixel_spool_reader_next(r, &m, &off, &end, NULL)) > 0) {
        if (item == PIXEL_SPOOL_RECORD) {
            records++;
        } else if (item == PIXEL_SPOOL_TORN) {
            pixel_spool_reader_close(r);
            r = NULL;
            if (truncate(path, (off_t)off) < 0) {
                rc = pixel__d_error(err, PIXEL_EIO, path, 0, 0, "cannot cut torn tail: %s",
                                    strerror(errno));
            }
            break;
        }
    }
    pixel_spool_reader_close(r);
    if (rc == 0 && records == 0) {
        unlink(path);
        s->seq--;
    }
    free(path);
    return rc;
}

PIXEL_API int pixel_spool_open(pixel_spool **out, const pixel_spool_options *opts, pixel_error *err)
{
    pixel_spool *s;
    int rc;

    pixel__d_error_clear(err); /* err may be uninitialized: fill it from scratch */
    *out = NULL;
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0') {
        return pixel__d_error(err, PIXEL_EINVAL, NULL, 0, 0, "spool: no directory given");
    }
    if (opts->version != PIXEL_SPOOL_OPTIONS_VERSION) {
        return pixel__d_error(err, PIXEL_EVERSION, NULL, 0, 0,
                              "invalid version %u on pixel_spool_options", opts->version);
    }
    if (pixel__d_mkdirs(opts->dir) < 0) {
        return pixel__d_error(err, PIXEL_EIO, opts->dir, 0, 0, "cannot create spool directory: %s",
                              strerror(errno));
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(opts->dir)) == NULL) {
        free(s);
        return pixel__d_error(err, PIXEL_ENOMEM, opts->dir, 0, 0, "out of memory");
    }
    s->fd = -1;
    s->lock_fd = -1;
    s->segment_bytes = opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT;
    s->max_bytes = opts->max_bytes;
    s->fsync_policy = opts->fsync;
    s->fsync = fsync;
    s->fsync_batch = opts->fsync_batch ? opts->fsync_batch : DEFAULT_BATCH;
    rc = take_slot(s, err);
    if (rc == 0) {
        rc = recover_last(s, err);
    }
    if (rc != 0) {
        pixel_spool_close(s);
        return rc;
    }
    s->total = dir_bytes(s->dir);
    s->last_scan_ms = pixel__d_mono_ms();
    *out = s;
    return 0;
}

/*
 * Make the segment's records durable.  When fsync fails, the kernel may
 * have dropped the pages it could not write and marked them clean, and
 * then report the next fsync as a success (Linux does): a retry proves
 * nothing.  So every record written since the last good fsync counts as
 * lost (the caller learns it from pixel__spool_sync_failures() and fails
 * those inputs), and the segment is not written to again: the next record
 * starts a new one.  What did reach the old segment stays there, CRC-framed,
 * and may be replayed as well (a duplicate, never a loss).
 */
static int sync_fd(pixel_spool *s, pixel_error *err)
{
    if (s->fd >= 0 && s->unsynced > 0 && s->fsync(s->fd) < 0) {
        int e = errno;
        uint64_t seq = s->seq;
        close(s->fd);
        s->fd = -1;
        s->seq++;
        s->seg_size = 0;
        s->lost += s->unsynced;
        s->lost_seq = seq;
        s->unsynced = 0;
        s->sync_failures++;
        return pixel__d_error(err, PIXEL_EIO, s->wdir, 0, 0,
                              "fsync of segment %" PRIu64 " failed: %s; its records since the last "
                              "good fsync are not durable, and the next record starts segment %"
                              PRIu64,
                              seq, strerror(e), s->seq);
    }
    s->unsynced = 0;
    return 0;
}

uint64_t pixel__spool_sync_failures(const pixel_spool *s)
{
    return s->sync_failures;
}

void pixel__spool_failures_seen(pixel_spool *s)
{
    s->lost = 0;
}

void pixel__spool_set_fsync(pixel_spool *s, int (*fn)(int fd))
{
    s->fsync = fn ? fn : fsync;
}

/* Start segment s->seq: header written, file and directory entry durable. */
static int new_segment(pixel_spool *s, pixel_error *err)
{
    unsigned char h[SEG_HEADER_LEN];
    char *path = segment_path(s->wdir, s->seq);
    int fd;

    if (path == NULL) {
        return pixel__d_error(err, PIXEL_ENOMEM, s->wdir, 0, 0, "out of memory");
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        int e = errno;
        free(path);
        return pixel__d_error(err, full_errno(e) ? PIXEL_DELIVERY_EFULL : PIXEL_EIO, s->wdir, 0, 0,
                              "cannot create segment: %s", strerror(e));
    }
    memcpy(h, SEG_MAGIC, 8);
    pixel__put32(h + 8, SEG_VERSION);
    pixel__put32(h + 12, 0);
    if (write(fd, h, sizeof(h)) != (ssize_t)sizeof(h) ||
        (s->fsync_policy != PIXEL_SPOOL_FSYNC_NEVER &&
         (fsync(fd) < 0 || pixel__d_fsync_dir(s->wdir) < 0))) {
        int e = errno;
        close(fd);
        unlink(path);
        free(path);
        return pixel__d_error(err, full_errno(e) ? PIXEL_DELIVERY_EFULL : PIXEL_EIO, s->wdir, 0, 0,
                              "cannot write segment header: %s", strerror(e));
    }
    free(path);
    s->fd = fd;
    s->seg_size = SEG_HEADER_LEN;
    s->total += SEG_HEADER_LEN;
    return 0;
}

static int rotate(pixel_spool *s, pixel_error *err)
{
    int rc = sync_fd(s, err);

    if (rc != 0) {
        return rc;
    }
    close(s->fd);
    s->fd = -1;
    s->seq++;
    /* Take the chance to see what others (writers, replay) did. */
    s->total = dir_bytes(s->dir);
    s->last_scan_ms = pixel__d_mono_ms();
    return new_segment(s, err);
}

static int over_limit(pixel_spool *s, uint64_t need)
{
    int64_t now;

    if (s->max_bytes == 0 || s->total + need <= s->max_bytes) {
        return 0;
    }
    now = pixel__d_mono_ms();
    if (now - s->last_scan_ms >= FULL_RESCAN_MS) {
        s->total = dir_bytes(s->dir);
        s->last_scan_ms = now;
    }
    return s->total + need > s->max_bytes;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

PIXEL_API int pixel_spool_append(pixel_spool *s, const pixel_spool_msg *msg, pixel_error *err)
{
    size_t plen = payload_len(msg), total = REC_HEADER_LEN + plen;
    int rc;

    if (msg->value == NULL || plen > 0xFFFFFFF0u) {
        return pixel__d_error(err, PIXEL_EINVAL, s->wdir, 0, 0,
                              "spool: record without value or"
                              " too large (%zu bytes)",
                              plen);
    }
    if (over_limit(s, total + (s->fd < 0 ? SEG_HEADER_LEN : 0))) {
        return pixel__d_error(err, PIXEL_DELIVERY_EFULL, s->dir, 0, 0,
                              "spool size limit reached (%" PRIu64 " of %" PRIu64 " bytes)",
                              s->total, s->max_bytes);
    }
    if (s->fd < 0) {
        rc = new_segment(s, err);
    } else if (s->seg_size > SEG_HEADER_LEN && s->seg_size + total > s->segment_bytes) {
        rc = rotate(s, err);
    } else {
        rc = 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (total > s->cap) {
        unsigned char *nb = realloc(s->buf, total);
        if (nb == NULL) {
            return pixel__d_error(err, PIXEL_ENOMEM, s->wdir, 0, 0, "out of memory");
        }
        s->buf = nb;
        s->cap = total;
    }
    encode_payload(s->buf + REC_HEADER_LEN, msg);
    pixel__put32(s->buf, REC_MAGIC);
    pixel__put32(s->buf + 4, (uint32_t)plen);
    pixel__put32(s->buf + 8, pixel_crc32c(0, s->buf, 8));
    pixel__put32(s->buf + 12, pixel_crc32c(0, s->buf + REC_HEADER_LEN, plen));
    if (write_all(s->fd, s->buf, total) < 0) {
        int e = errno;
        /* Roll back a partial write: no torn record outside a crash. */
        if (ftruncate(s->fd, (off_t)s->seg_size) < 0) {
            e = EIO;
        }
        return pixel__d_error(err, full_errno(e) ? PIXEL_DELIVERY_EFULL : PIXEL_EIO, s->wdir, 0, 0,
                              "spool write failed: %s", strerror(e));
    }
    s->seg_size += total;
    s->total += total;
    s->unsynced++;
    switch (s->fsync_policy) {
        case PIXEL_SPOOL_FSYNC_NEVER:
            s->unsynced = 0;
            return 1;
        case PIXEL_SPOOL_FSYNC_ALWAYS:
            rc = sync_fd(s, err);
            return rc != 0 ? rc : 1;
        default:
            if (s->unsynced >= s->fsync_batch) {
                rc = sync_fd(s, err);
                return rc != 0 ? rc : 1;
            }
            return 0;
    }
}

PIXEL_API int pixel_spool_sync(pixel_spool *s, pixel_error *err)
{
    int rc = sync_fd(s, err);
    unsigned int lost = s->lost;

    /* Records an append's failed batch fsync took with it were promised to
     * be durable after this call: it must not say they are.  Told once. */
    s->lost = 0;
    if (rc == 0 && lost > 0) {
        return pixel__d_error(err, PIXEL_EIO, s->wdir, 0, 0,
                              "%u records appended before the failed fsync of segment %" PRIu64
                              " are not durable",
                              lost, s->lost_seq);
    }
    return rc;
}

PIXEL_API unsigned int pixel_spool_unsynced(const pixel_spool *s)
{
    return s->unsynced + s->lost;
}

PIXEL_API uint64_t pixel_spool_bytes(const pixel_spool *s)
{
    return s->total;
}

PIXEL_API const char *pixel_spool_writer_dir(const pixel_spool *s)
{
    return s->wdir;
}

PIXEL_API void pixel_spool_close(pixel_spool *s)
{
    if (s == NULL) {
        return;
    }
    if (s->fd >= 0 && sync_fd(s, NULL) == 0) {
        close(s->fd); /* a failed fsync closed it already */
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    free(s->buf);
    free(s->wdir);
    free(s->dir);
    free(s);
}
