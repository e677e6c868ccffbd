/*
 * libpixel-delivery: delivery that loses nothing.
 *
 * A pixel_sink takes serialized events and quarantine records and makes
 * each one durable somewhere: in Kafka (confirmed by librdkafka's delivery
 * report) or, while Kafka cannot take events, in the local spool (fsync'd).
 * Only then is the input acknowledged, through the host's ack callback, so
 * a host such as rsyslog's omprog answers "OK" only for durable events.
 *
 *   Kafka healthy ──▶ produce (idempotent, acks=all) ──▶ delivery report ──▶ ack
 *   Kafka failing ──▶ spool (segments, CRC, fsync)  ──▶ fsync           ──▶ ack
 *                     probe Kafka with a growing penalty; switch back when it answers
 *   spool full    ──▶ back-pressure: the input is refused (PIXEL_DELIVERY_EFULL),
 *                     never dropped; the host retries after pixel_sink_poll()
 *
 * The configuration is the `delivery:` section of the pipeline's YAML file
 * (docs/delivery.md).  The library never prints: log lines go to the host's
 * log callback.  A sink is not thread-safe: use one per thread (or process).
 * Every callback runs inside a pixel_sink_* call on the caller's thread, and
 * must not call a pixel_sink_* function of the same sink: the sink may be
 * walking the list of inputs that wait for their acks.  Such calls are
 * refused (produce, quarantine and flush return PIXEL_EINVAL; poll returns
 * without serving anything); pixel_sink_free() from a callback is undefined.
 *
 * This component links librdkafka; the core libpixel does not.
 */
#ifndef PIXEL_DELIVERY_H
#define PIXEL_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "pixel/pixel.h"
#include "pixel/spool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ----------------------------------------------------- */

typedef struct pixel_delivery_config pixel_delivery_config;

/*
 * Load the `delivery:` section of a YAML file (other sections are ignored).
 * On error returns PIXEL_ECONFIG (or PIXEL_EIO) and fills err with the file,
 * the 1-based line and column, a JSON Pointer to the setting, and what was
 * expected.  librdkafka properties are checked here too.  *out belongs to
 * the caller: pixel_delivery_config_free().
 */
PIXEL_API int pixel_delivery_config_load_file(pixel_delivery_config **out, const char *path,
                                              pixel_error *err);

/* The same from YAML text; name is used in messages (NULL: "<string>"). */
PIXEL_API int pixel_delivery_config_load_string(pixel_delivery_config **out, const char *yaml,
                                                size_t len, const char *name, pixel_error *err);

/*
 * Override one setting by its dotted name, as a command line would:
 * "kafka.brokers", "kafka.topic", "spool.dir", "spool.max_bytes",
 * "kafka.properties.linger.ms", ...  A NULL value unsets an optional string
 * setting or removes a librdkafka property.  Returns 0 or PIXEL_ECONFIG.
 */
PIXEL_API int pixel_delivery_config_set(pixel_delivery_config *cfg, const char *name,
                                        const char *value, pixel_error *err);

/*
 * A setting as text ("kafka.key_field", "kafka.type_field", "spool.dir",
 * ...), or NULL when unset.  "kafka.properties.NAME" is the librdkafka
 * property NAME as the configuration sets it (under kafka.properties, or
 * through pixel_delivery_config_set()), or NULL when it leaves NAME to
 * librdkafka; the name is taken as it is (linger.ms and its alias
 * queue.buffering.max.ms are two names).  Borrowed: valid until the next set
 * or free.
 */
PIXEL_API const char *pixel_delivery_config_get(const pixel_delivery_config *cfg, const char *name);

/*
 * The i-th librdkafka property the configuration sets (i from 0, in the
 * order first set): returns 1 and fills *name and *value, or 0 past the
 * last one.  Only the user's properties: not the ones the sink sets itself
 * (bootstrap.servers, enable.idempotence, acks, compression.type,
 * message.timeout.ms, log.queue).  Borrowed, as with
 * pixel_delivery_config_get().
 */
PIXEL_API int pixel_delivery_config_property(const pixel_delivery_config *cfg, size_t i,
                                             const char **name, const char **value);

/* NULL is a no-op.  No sink may still use cfg. */
PIXEL_API void pixel_delivery_config_free(pixel_delivery_config *cfg);

/* ---- the sink ------------------------------------------------------------ */

typedef struct pixel_sink pixel_sink;

/* How an input was made durable (the ack callback's status). */
typedef enum pixel_sink_ack {
    PIXEL_SINK_DELIVERED = 1,  /* Kafka confirmed the event */
    PIXEL_SINK_SPOOLED = 2,    /* the event is fsync'd in the spool */
    PIXEL_SINK_QUARANTINED = 3 /* the quarantine record is durable (file, topic or spool) */
} pixel_sink_ack;

/*
 * Called once for every input the sink accepted, with the token given to
 * pixel_sink_produce() or pixel_sink_quarantine().  status is a
 * pixel_sink_ack, or negative when the input could not be made durable: the
 * host must then treat it as not delivered and send it again.
 * PIXEL_DELIVERY_EFULL: the sink closed (pixel_sink_free()) or ran out of
 * memory before it could; PIXEL_EIO: the fsync that was to make it durable
 * failed (the spool or the quarantine file).  After a failed fsync the
 * kernel may have dropped the data and report the next fsync as a success,
 * so the sink never retries one to ack what it covered.
 */
typedef void (*pixel_sink_ack_cb)(void *token, int status, void *payload);

/* Log levels: syslog's numbers. */
#define PIXEL_LOG_ERR     3
#define PIXEL_LOG_WARNING 4
#define PIXEL_LOG_NOTICE  5
#define PIXEL_LOG_INFO    6
#define PIXEL_LOG_DEBUG   7

/* One log line, without a newline.  Borrowed: valid during the call. */
typedef void (*pixel_sink_log_cb)(int level, const char *line, void *payload);

#define PIXEL_SINK_OPTIONS_VERSION 1

typedef struct pixel_sink_options {
    unsigned int version; /* PIXEL_SINK_OPTIONS_VERSION */
    pixel_sink_ack_cb ack;
    void *ack_payload;
    pixel_sink_log_cb log; /* NULL: no logging */
    void *log_payload;
} pixel_sink_options;

#define PIXEL_SINK_OPTIONS_INIT                                                                    \
    {                                                                                              \
        PIXEL_SINK_OPTIONS_VERSION, NULL, NULL, NULL, NULL                                         \
    }

/*
 * One event.  Every pointer is borrowed for the duration of the call (the
 * sink copies what it keeps).  Strings are byte ranges, not NUL-terminated.
 */
typedef struct pixel_sink_msg {
    const char *value; /* the serialized JSON event */
    size_t value_len;
    const char *key; /* message key (e.g. the user ID); NULL: none */
    size_t key_len;
    const char *type; /* event type: header, and topic with topic_template */
    size_t type_len;
    const char *schema_id; /* schema ID header; NULL: absent */
    size_t schema_id_len;
    const char *pipeline_version; /* pipeline version header; NULL: absent */
    size_t pipeline_version_len;
} pixel_sink_msg;

/*
 * Create a sink: a Kafka producer (idempotent, acks=all) and the spool
 * writer.  cfg is borrowed and must outlive the sink.  Returns 0,
 * PIXEL_ECONFIG, PIXEL_DELIVERY_EKAFKA, or a spool status.  *out belongs to
 * the caller: pixel_sink_free().
 */
PIXEL_API int pixel_sink_new(pixel_sink **out, const pixel_delivery_config *cfg,
                             const pixel_sink_options *opts, pixel_error *err);

/*
 * Hand one event to the sink.  Returns 0 when accepted: the ack callback
 * will be called for token exactly once, later or during this call.
 * Returns PIXEL_DELIVERY_EFULL when the sink cannot take it now (the spool
 * is full while Kafka is down): the event was not accepted and the ack
 * callback will not be called for it; keep it, call pixel_sink_poll(), and
 * try again.  May wait (serving callbacks) while librdkafka's queue is full.
 */
PIXEL_API int pixel_sink_produce(pixel_sink *s, const pixel_sink_msg *msg, void *token,
                                 pixel_error *err);

/*
 * pixel_sink_produce() with the event's value lent rather than copied:
 * msg->value must stay valid and unchanged until the ack callback has been
 * called for token, or, if it never is, until pixel_sink_free() has
 * returned.  Kafka's producer then refers to the host's bytes instead of
 * copying each event into an allocation of its own.  The other fields are
 * borrowed for the call only, as with pixel_sink_produce(), and so is the
 * value when PIXEL_DELIVERY_EFULL is returned.  Same semantics otherwise.
 */
PIXEL_API int pixel_sink_produce_lent(pixel_sink *s, const pixel_sink_msg *msg, void *token,
                                      pixel_error *err);

/*
 * Hand one quarantine record (compact JSON) to the sink: written to the
 * quarantine file and/or produced to the quarantine topic (configured).  A
 * stalled Kafka never blocks the file.  Returns as pixel_sink_produce();
 * PIXEL_EINVAL when no quarantine destination is configured.
 */
PIXEL_API int pixel_sink_quarantine(pixel_sink *s, const char *json, size_t len, void *token,
                                    pixel_error *err);

/*
 * Several quarantine records at once: lines holds len bytes of records,
 * each compact JSON ended by a newline (the last one may lack it).  The
 * same as pixel_sink_quarantine() for each record in turn with the same
 * token (each record is acked on its own), except that the quarantine
 * file gets all of them in one write.  Returns 0 when every record was
 * accepted; otherwise the status pixel_sink_quarantine() returns, and
 * *taken (may be NULL) says how many bytes of lines were accepted before
 * the failure, whole records only: those are acked as usual, the others
 * are not the sink's (hand them again, e.g. after pixel_sink_poll()).
 */
PIXEL_API int pixel_sink_quarantine_lines(pixel_sink *s, const char *lines, size_t len, void *token,
                                          size_t *taken, pixel_error *err);

/*
 * Count an input the host settled itself (a line skipped or dropped by the
 * pipeline), so that the sink's counters add up: outcome is
 * PIXEL_OUTCOME_SKIPPED or PIXEL_OUTCOME_DROPPED (pixel.h).
 */
PIXEL_API void pixel_sink_count(pixel_sink *s, int outcome);

/*
 * Serve delivery reports, spool fsync batches, probes and parked records,
 * waiting up to timeout_ms for something to happen.  Call it regularly.
 * With timeout_ms != 0 the records waiting for an fsync (spool, quarantine
 * file) are fsync'd and acked before the wait, and what the wait spooled
 * after it.  Returns the number of inputs still waiting for their ack.
 */
PIXEL_API size_t pixel_sink_poll(pixel_sink *s, int timeout_ms);

/*
 * Wait up to timeout_ms (-1: no limit) until every accepted input is acked.
 * Messages that librdkafka holds back to batch them (linger.ms) are sent at
 * once.  Returns 0, or PIXEL_ERROR when inputs are still pending at the
 * timeout.
 */
PIXEL_API int pixel_sink_flush(pixel_sink *s, int timeout_ms, pixel_error *err);

/* Where events go now. */
typedef enum pixel_sink_state {
    PIXEL_SINK_KAFKA = 0, /* Kafka takes events */
    PIXEL_SINK_SPOOL = 1  /* failed over: events go to the spool */
} pixel_sink_state;

PIXEL_API int pixel_sink_state_get(const pixel_sink *s);

/*
 * Counters since the sink was created.  At every moment:
 *   events_in     = delivered + spooled + events_pending
 *   quarantine_in = quarantined + quarantine_pending
 * so the host's  lines = events_in + quarantine_in + skipped + dropped.
 */
typedef struct pixel_sink_stats {
    uint64_t events_in, delivered, spooled, events_pending;
    uint64_t quarantine_in, quarantined, quarantine_pending;
    uint64_t skipped, dropped;
    uint64_t failovers;    /* switches Kafka -> spool */
    uint64_t recoveries;   /* switches spool -> Kafka */
    uint64_t probes;       /* events sent to test Kafka while failed over */
    uint64_t backpressure; /* inputs refused with PIXEL_DELIVERY_EFULL */
    /* Inputs acked as not durable (a negative status: an fsync that was to
     * make them durable failed, or the sink closed before it could): the
     * host sends them again.  events_in and quarantine_in count them too. */
    uint64_t events_failed, quarantine_failed;
    uint64_t reserved[6];
} pixel_sink_stats;

PIXEL_API void pixel_sink_stats_get(const pixel_sink *s, pixel_sink_stats *out);

/*
 * Flush (bounded by the delivery timeout; the dead-letter copies of
 * quarantine records that also went to the file are waited for within the
 * same bound), spool what Kafka did not confirm, fsync, and free.  Inputs that still cannot be made durable are
 * acked with PIXEL_DELIVERY_EFULL (PIXEL_EIO when that last fsync fails).
 * NULL is a no-op.
 */
PIXEL_API void pixel_sink_free(pixel_sink *s);

/* ---- replay -------------------------------------------------------------- */

#define PIXEL_REPLAY_OPTIONS_VERSION 1

typedef struct pixel_replay_options {
    unsigned int version;          /* PIXEL_REPLAY_OPTIONS_VERSION */
    const char *spool_dir;         /* NULL: the configuration's spool.dir */
    const char *archive_dir;       /* finished segments move here; NULL: removed */
    double rate;                   /* records per second; 0: no limit */
    unsigned int checkpoint_every; /* records between checkpoints; 0: 1000 */
    int timeout_ms;                /* give up when Kafka confirms nothing this long; 0: 60000 */
    pixel_sink_log_cb log;
    void *log_payload;
} pixel_replay_options;

#define PIXEL_REPLAY_OPTIONS_INIT                                                                  \
    {                                                                                              \
        PIXEL_REPLAY_OPTIONS_VERSION, NULL, NULL, 0, 0, 0, NULL, NULL                              \
    }

typedef struct pixel_replay_stats {
    uint64_t segments;  /* finished (removed or archived) */
    uint64_t records;   /* confirmed by Kafka */
    uint64_t skipped;   /* records before the checkpoint (already confirmed) */
    uint64_t corrupt;   /* damaged regions skipped */
    uint64_t torn;      /* torn tails */
    uint64_t bad_bytes; /* bytes in damaged regions */
    uint64_t rejected;  /* refused by Kafka itself (e.g. too large): kept in <dir>/rejected */
    uint64_t reserved[7];
} pixel_replay_stats;

/*
 * Produce every sealed spool segment to Kafka, in order (writer directory,
 * then segment, then offset), to the topic each record was spooled for.
 * Progress is checkpointed in each writer directory (file "checkpoint"), so
 * a replay killed at any point and started again resends at most the
 * records after the last checkpoint.  A segment is removed (or archived)
 * only after Kafka confirmed all of its records.  Damaged regions are
 * logged with segment and offset, counted, and skipped.  A record Kafka
 * refuses for itself (too large, invalid) would stop every replay at the
 * same place: it is moved to the spool "<dir>/rejected" (inspect it with
 * pixel-spool), counted and logged.  Returns 0, or a
 * negative status (PIXEL_DELIVERY_EKAFKA when Kafka stopped confirming);
 * the checkpoint then marks where to resume.
 */
PIXEL_API int pixel_replay_spool(const pixel_delivery_config *cfg, const pixel_replay_options *opts,
                                 pixel_replay_stats *stats, pixel_error *err);

#ifdef __cplusplus
}
#endif

#endif
