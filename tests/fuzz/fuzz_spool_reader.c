/*
 * Fuzz target: an untrusted spool segment (a disk after a crash, a flipped
 * bit, a truncated copy) through the reader that pixel-replay and
 * pixel-spool use.  Whatever the bytes, the reader must end, report
 * damaged ranges inside the file in order, and hand out only records that
 * lie inside the file; a seek to any offset must be refused or read on
 * the same terms.  The segment lives in a memfd, not on disk.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pixel/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the n bytes at p (none when p is NULL, which must then be n == 0). */
static size_t touch(const char *p, size_t n)
{
    volatile uint8_t sum = 0;
    if (p == NULL && n != 0) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        sum ^= (uint8_t)p[i];
    }
    (void)sum;
    return n;
}

static void walk(pixel_spool_reader *r, uint64_t from)
{
    uint64_t size = pixel_spool_reader_size(r), last_end = from;
    for (int steps = 0;; steps++) {
        pixel_spool_msg m;
        uint64_t off = 0, end = 0;
        pixel_error err;
        memset(&m, 0, sizeof(m));
        int item = pixel_spool_reader_next(r, &m, &off, &end, &err);
        if (item <= PIXEL_SPOOL_END) {
            break;
        }
        /* every item is a range of the file, after the one before */
        if (off < last_end || end < off || end > size || steps > 1000000) {
            abort();
        }
        if (item == PIXEL_SPOOL_RECORD) {
            /* a record's fields are bytes of its range: read them all
               (ASan sees a read outside the mapping) */
            size_t total = touch(m.topic, m.topic_len) + touch(m.key, m.key_len) +
                           touch(m.value, m.value_len) + touch(m.type, m.type_len) +
                           touch(m.schema_id, m.schema_id_len) +
                           touch(m.pipeline_version, m.pipeline_version_len);
            if (total > end - off) {
                abort();
            }
        }
        if (item == PIXEL_SPOOL_TORN) {
            break; /* the end */
        }
        last_end = end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("segment", MFD_CLOEXEC);
    if (fd < 0) {
        abort();
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        abort();
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    pixel_spool_reader *r = NULL;
    pixel_error err;
    if (pixel_spool_reader_open(&r, path, &err) == 0) {
        walk(r, 0);
        /* a checkpoint's offset taken from the data: a record boundary or refused */
        uint64_t at = 0;
        memcpy(&at, data, size < sizeof(at) ? size : sizeof(at));
        at %= (uint64_t)size + 1;
        if (pixel_spool_reader_seek(r, at) == 0) {
            walk(r, at);
        }
        pixel_spool_reader_close(r);
    }
    close(fd);
    return 0;
}
