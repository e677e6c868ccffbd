/*
 * Internals shared by the delivery component's files (libpixel-delivery).
 * Nothing here is public.  The component does not link the core library for
 * its spool, sink and replay: it only shares the pixel_error struct and the
 * status numbers from pixel.h.
 */
#ifndef PIXEL_DELIVERY_PRIVATE_H
#define PIXEL_DELIVERY_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pixel/pixel.h"
#include "pixel/spool.h"

#if defined(__GNUC__)
#define PIXEL_D_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PIXEL_D_PRINTF(f, a)
#endif

/* Zero err (if not NULL): the library's loaders start from a clean one. */
void pixel__d_error_clear(pixel_error *err);

/*
 * Fill err (if not NULL and not already set: the first error wins) and
 * return code.  source may be NULL; line/column are 1-based, 0 = none.
 */
int pixel__d_error(pixel_error *err, int code, const char *source, long line, long column,
                   const char *fmt, ...) PIXEL_D_PRINTF(6, 7);

/* Milliseconds of the monotonic clock, and of the wall clock. */
int64_t pixel__d_mono_ms(void);
int64_t pixel__d_wall_ms(void);

static inline void pixel__put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t pixel__get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void pixel__put64(unsigned char *p, uint64_t v)
{
    pixel__put32(p, (uint32_t)v);
    pixel__put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t pixel__get64(const unsigned char *p)
{
    return (uint64_t)pixel__get32(p) | (uint64_t)pixel__get32(p + 4) << 32;
}

/* ---- configuration (config.c) ------------------------------------------ */

#include <librdkafka/rdkafka.h>

#include "pixel/delivery.h"

typedef struct pixel__kprop {
    char *name, *value;
    long line, column; /* where it was set, for error messages; 0 = command line */
} pixel__kprop;

struct pixel_delivery_config {
    char *source;
    /* kafka */
    char *brokers, *topic, *topic_template, *key_field, *type_field, *schema_field;
    char *compression;
    long delivery_timeout_ms;
    int headers; /* send the pixel-* headers (default 1) */
    pixel__kprop *props;
    size_t nprops;
    /* quarantine */
    char *q_topic, *q_file;
    /* spool */
    char *spool_dir;
    uint64_t segment_bytes, max_bytes;
    int fsync;
    unsigned int fsync_batch;
    long fsync_interval_ms;
    /* failover */
    long probe_initial_ms, probe_max_ms;
    char numbuf[32]; /* pixel_delivery_config_get() of a number */
};

/*
 * A librdkafka producer configuration from cfg: bootstrap servers,
 * idempotence, acks=all, compression, timeouts, then the user's properties.
 * NULL on error (err filled, with the property's position when known).
 */
rd_kafka_conf_t *pixel__kafka_conf(const pixel_delivery_config *cfg, pixel_error *err);

/*
 * Replay progress of one writer directory: file "<wdir>/checkpoint" holding
 * "<segment seq> <offset>\n": every record before that point is confirmed by
 * Kafka.  read: 0 found, 1 none, -1 unreadable.  write: atomic (rename) and
 * durable; 0 or -1.  The writer reads it too, so that it never reuses a
 * segment number below the checkpoint.
 */
int pixel__spool_checkpoint_read(const char *wdir, uint64_t *seq, uint64_t *offset);
int pixel__spool_checkpoint_write(const char *wdir, uint64_t seq, uint64_t offset);

/* Kafka refused this message, not Kafka is failing (too large, invalid). */
int pixel__kafka_message_error(rd_kafka_resp_err_t e);

/* The sink's current producer (tests inject errors through it); NULL if none. */
rd_kafka_t *pixel__sink_kafka(pixel_sink *s);

/* Tests: the function the sink makes a new producer with (rd_kafka_new by
 * default; NULL restores it), to make re-creation after a fatal error fail. */
void pixel__sink_set_kafka_new(pixel_sink *s,
                               rd_kafka_t *(*fn)(rd_kafka_type_t, rd_kafka_conf_t *, char *, size_t));

/* Tests: the function the sink fsyncs its quarantine file with (fdatasync
 * by default), to make it slow or fail; set before the first record. */
void pixel__sink_set_fdatasync(pixel_sink *s, int (*fn)(int fd));

/* fsyncs of the spool's segments that failed: each makes the records written
 * since the last good one not durable (spool.c, sync_fd). */
uint64_t pixel__spool_sync_failures(const pixel_spool *s);
/* The caller has dealt with those failures (the sink fails the inputs):
 * pixel_spool_sync() need not report their lost records again. */
void pixel__spool_failures_seen(pixel_spool *s);
/* Tests: the spool's fsync (NULL: fsync). */
void pixel__spool_set_fsync(pixel_spool *s, int (*fn)(int fd));
/* The sink's spool writer (tests). */
pixel_spool *pixel__sink_spool(pixel_sink *s);

/* fsync a directory so that a file created or renamed in it survives a crash. */
int pixel__d_fsync_dir(const char *dir);

/* mkdir -p (mode 0750); 0 or -1 with errno. */
int pixel__d_mkdirs(const char *dir);

#endif
