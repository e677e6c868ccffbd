/*
 * libpixel-delivery: the durable spool.
 *
 * When Kafka cannot take events, the sink writes them here; pixel-replay
 * feeds them back later.  A spool is a directory:
 *
 *   <dir>/w000/lock                     flock()ed by the writer that owns w000
 *   <dir>/w000/00000000000000000001.seg  append-only segments, in order
 *   <dir>/w001/...                       a second writer process
 *
 * Each writer process takes the first writer sub-directory whose lock it can
 * get, so several processes (one per rsyslog worker) share a spool directory
 * without ever sharing a segment file.  A writer never appends to an existing
 * segment: it starts a new one when it opens, and when the current one
 * reaches segment_bytes.
 *
 * Segment format (all integers little-endian; docs/delivery.md has the
 * details):
 *
 *   header  "PIXSPOOL" u32 version(1) u32 reserved(0)            16 bytes
 *   record  u32 magic "PXR1" | u32 length | u32 header CRC32C     12 bytes
 *           u32 payload CRC32C | payload (length bytes)
 *
 * The header CRC covers magic and length, so a damaged length is caught
 * before it is trusted; the payload CRC covers the payload.  A reader that
 * meets a bad record reports its offset and searches forward for the next
 * record whose two CRCs check: a damaged record is skipped, never misread.
 *
 * Objects here are not thread-safe: use one per thread.
 */
#ifndef PIXEL_SPOOL_H
#define PIXEL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "pixel/pixel.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Statuses of the delivery component, beside the core's pixel_status.
 * Numbers are forever.
 */
typedef enum pixel_delivery_status {
    /* The spool reached its size limit or the disk is full: nothing was
     * written and nothing was lost; retry after space is freed. */
    PIXEL_DELIVERY_EFULL = -101,
    /* The spool directory has no free writer slot, or a replay holds it. */
    PIXEL_DELIVERY_ELOCKED = -102,
    /* Kafka refused the operation (see pixel_error.text). */
    PIXEL_DELIVERY_EKAFKA = -103,
    /* Damaged spool data was found (verify). */
    PIXEL_DELIVERY_ECORRUPT = -104
} pixel_delivery_status;

/* Like pixel_status_str() for the statuses above and the core's; static. */
PIXEL_API const char *pixel_delivery_status_str(int status);

/* ---- records ----------------------------------------------------------- */

/* The record is a quarantine record rather than an event. */
#define PIXEL_SPOOL_MSG_QUARANTINE 0x1u

/*
 * One spooled message: what the sink would have produced to Kafka.  When
 * read back, every pointer is borrowed from the reader and valid until its
 * next call.  Strings are byte ranges, not NUL-terminated.
 */
typedef struct pixel_spool_msg {
    const char *topic; /* destination topic */
    size_t topic_len;
    const char *key; /* NULL: no key */
    size_t key_len;
    const char *value; /* the serialized JSON */
    size_t value_len;
    const char *type; /* event type header; NULL: absent */
    size_t type_len;
    const char *schema_id; /* schema ID header; NULL: absent */
    size_t schema_id_len;
    const char *pipeline_version; /* pipeline version header; NULL: absent */
    size_t pipeline_version_len;
    int64_t timestamp_ms; /* when it was spooled */
    uint32_t flags;       /* PIXEL_SPOOL_MSG_* */
} pixel_spool_msg;

/* ---- writing ----------------------------------------------------------- */

typedef struct pixel_spool pixel_spool;

typedef enum pixel_spool_fsync {
    PIXEL_SPOOL_FSYNC_BATCH = 0,  /* fsync every fsync_batch records or on pixel_spool_sync() */
    PIXEL_SPOOL_FSYNC_ALWAYS = 1, /* fsync after every record */
    PIXEL_SPOOL_FSYNC_NEVER = 2   /* leave it to the kernel: not crash-safe */
} pixel_spool_fsync;

#define PIXEL_SPOOL_OPTIONS_VERSION 1

typedef struct pixel_spool_options {
    unsigned int version;     /* PIXEL_SPOOL_OPTIONS_VERSION */
    const char *dir;          /* the spool directory (created if missing) */
    uint64_t segment_bytes;   /* rotate after this many bytes; 0: 64 MiB */
    uint64_t max_bytes;       /* limit for the whole directory; 0: none */
    int fsync;                /* a pixel_spool_fsync */
    unsigned int fsync_batch; /* records per fsync with FSYNC_BATCH; 0: 256 */
} pixel_spool_options;

#define PIXEL_SPOOL_OPTIONS_INIT                                                                   \
    {                                                                                              \
        PIXEL_SPOOL_OPTIONS_VERSION, NULL, 0, 0, 0, 0                                              \
    }

/*
 * Open a writer: create the directory if needed, take the first free writer
 * sub-directory (flock), cut a torn tail left in its last segment by a crash,
 * and start a new segment.  Returns 0, PIXEL_DELIVERY_ELOCKED when no slot
 * is free (at most 1000 writers), PIXEL_EIO, PIXEL_EINVAL or PIXEL_EVERSION.
 * *out belongs to the caller: pixel_spool_close().
 */
PIXEL_API int pixel_spool_open(pixel_spool **out, const pixel_spool_options *opts,
                               pixel_error *err);

/*
 * Append one record.  Returns 1 when the record is already durable (fsync
 * policy ALWAYS or NEVER, or a batch fsync just happened), 0 when it will be
 * durable after the next pixel_spool_sync(), PIXEL_DELIVERY_EFULL when the
 * size limit is reached or the disk is full (nothing was written: the
 * caller keeps the record and retries later), or another negative status.
 * A partial write is rolled back, so a failed append leaves no torn record.
 * PIXEL_EIO can also mean that the fsync this append ran (policy ALWAYS, a
 * full batch, a new segment) failed: this record and those appended since
 * the last good fsync are not durable (the next pixel_spool_sync() says so
 * again), and the next record starts a new segment.
 */
PIXEL_API int pixel_spool_append(pixel_spool *s, const pixel_spool_msg *msg, pixel_error *err);

/*
 * fsync the current segment.  Returns 0 when every record appended so far
 * is durable, or PIXEL_EIO when an fsync failed since the last call
 * returned: the records appended since the last good fsync are not durable
 * and never will be (after a failed fsync the kernel may drop them and
 * report the next fsync as a success), so do not retry to make them so;
 * append them again.
 */
PIXEL_API int pixel_spool_sync(pixel_spool *s, pixel_error *err);

/* Records appended since the last fsync, with those a failed fsync lost
 * until pixel_spool_sync() has reported them (0: everything is durable). */
PIXEL_API unsigned int pixel_spool_unsynced(const pixel_spool *s);

/* Bytes in the whole spool directory as last measured (segments only). */
PIXEL_API uint64_t pixel_spool_bytes(const pixel_spool *s);

/* The writer's own sub-directory; borrowed, valid until close. */
PIXEL_API const char *pixel_spool_writer_dir(const pixel_spool *s);

/* Sync, close and unlock.  NULL is a no-op. */
PIXEL_API void pixel_spool_close(pixel_spool *s);

/* ---- listing ----------------------------------------------------------- */

typedef struct pixel_spool_segment {
    char *path;       /* full path of the .seg file */
    char *writer_dir; /* its writer sub-directory */
    uint64_t seq;     /* sequence number within the writer directory */
    uint64_t size;    /* bytes */
    int active;       /* 1: a live writer may still append to it */
} pixel_spool_segment;

/*
 * All segments of a spool directory, by writer sub-directory then sequence.
 * A segment is `active` when its writer directory is locked by a running
 * writer and it is that writer's last segment; everything else is sealed.
 * *out (free with pixel_spool_segments_free) may be NULL when *count is 0.
 */
PIXEL_API int pixel_spool_segments(const char *dir, pixel_spool_segment **out, size_t *count,
                                   pixel_error *err);
PIXEL_API void pixel_spool_segments_free(pixel_spool_segment *segs, size_t count);

/* ---- reading ----------------------------------------------------------- */

typedef struct pixel_spool_reader pixel_spool_reader;

/* What pixel_spool_reader_next() found. */
typedef enum pixel_spool_item {
    PIXEL_SPOOL_END = 0,     /* clean end of the segment */
    PIXEL_SPOOL_RECORD = 1,  /* a good record in *msg */
    PIXEL_SPOOL_CORRUPT = 2, /* damaged bytes [offset, end) skipped; call again */
    PIXEL_SPOOL_TORN = 3     /* an incomplete record at the tail [offset, end): the end */
} pixel_spool_item;

/*
 * Open one segment read-only (it is mapped, never changed).  Returns 0,
 * PIXEL_EIO, or PIXEL_DELIVERY_ECORRUPT when the file header is not a
 * spool segment header.
 */
PIXEL_API int pixel_spool_reader_open(pixel_spool_reader **out, const char *path, pixel_error *err);

/*
 * The next item.  Returns a pixel_spool_item (>= 0) or a negative status.
 * *offset and *end (either may be NULL) receive the byte range of the record
 * or of the damaged region.  For CORRUPT and TORN, err (if given) holds a
 * one-line description naming the segment and the offset.
 */
PIXEL_API int pixel_spool_reader_next(pixel_spool_reader *r, pixel_spool_msg *msg, uint64_t *offset,
                                      uint64_t *end, pixel_error *err);

/* Continue reading at a record boundary (a checkpoint); 0 or PIXEL_EINVAL. */
PIXEL_API int pixel_spool_reader_seek(pixel_spool_reader *r, uint64_t offset);

/* The segment's size in bytes. */
PIXEL_API uint64_t pixel_spool_reader_size(const pixel_spool_reader *r);

/* NULL is a no-op; every borrowed pointer becomes invalid. */
PIXEL_API void pixel_spool_reader_close(pixel_spool_reader *r);

/* CRC32C (Castagnoli) of buf, continuing from crc (start with 0). */
PIXEL_API uint32_t pixel_crc32c(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
