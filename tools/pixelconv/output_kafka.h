/*
 * pixelconv --kafka: the converter's events and quarantine records through
 * libpixel-delivery's sink (Kafka with failover to the spool).  Written by
 * the delivery work (issue 4) for pixelconv's in-order writing; except
 * pixelconv_kafka_pack(), the functions must be called by one thread at a
 * time (pixelconv's workers take turns, under its pool's lock).
 */
#ifndef PIXELCONV_OUTPUT_KAFKA_H
#define PIXELCONV_OUTPUT_KAFKA_H

#include <stdbool.h>
#include <stddef.h>

#include "pixel/delivery.h"
#include "pixel/value.h"

typedef struct pixelconv_kafka pixelconv_kafka;

/*
 * Open the sink from the `delivery:` section of config_path.  overrides is
 * a NULL-ended list of "name=value" settings (e.g. "kafka.brokers=host:9092")
 * or NULL; an empty value turns an optional setting off (kafka.key_field,
 * kafka.type_field, kafka.schema_field, quarantine.topic, quarantine.file).
 * pipeline_version goes into each event's header (may be NULL).  Returns 0,
 * or a negative status with a one-line message in errbuf.
 */
int pixelconv_kafka_open(pixelconv_kafka **out, const char *config_path,
                         const char *const *overrides, const char *pipeline_version, char *errbuf,
                         size_t errlen);

/*
 * Worker side, from any thread (it reads only the configuration, which does
 * not change after open): append one event to a batch buffer together with
 * its message key, event type and schema ID, taken from the event value
 * itself (pixel_ctx_event() of the line just converted; strings and
 * integers, as pixel-omprog does), so that the writer does not parse the
 * JSON again.  json is the event as compact JSON (pixel_ctx_output()).
 * *buf grows with realloc() as needed.  Returns 0, or -1 when out of memory.
 */
int pixelconv_kafka_pack(const pixelconv_kafka *k, const pixel_value *event, const char *json,
                         size_t len, char **buf, size_t *buf_len, size_t *buf_cap);

/*
 * Writer side: hand every event packed in *buf (len bytes,
 * pixelconv_kafka_pack) to the sink, in order.  The events are lent, not
 * copied: the sink keeps *buf until each of them is acked, and *buf and
 * *cap are replaced by a buffer for the next batch (one that came back, or
 * NULL and 0).  Waits (serving the sink) while the spool is full:
 * back-pressure, never a drop.  Returns 0 or a negative status.
 */
int pixelconv_kafka_events(pixelconv_kafka *k, char **buf, size_t *cap, size_t len);

/*
 * Quarantine records: len bytes of lines, each compact JSON ended by a
 * newline.  With hold (a batch of regular files, plain or gzip, whose next
 * batch never waits for input) they are gathered and handed to the sink
 * together (one write to the quarantine file) once there are 64 KB of them;
 * without (a batch from a pipe, which may stay quiet for long), those
 * gathered and these go now, so that records wait no longer than the
 * batch's events.
 * pixelconv_kafka_close() hands over the rest.  0 or a negative status.
 */
int pixelconv_kafka_quarantine(pixelconv_kafka *k, const char *lines, size_t len, bool hold);

/* Lines settled without output: PIXEL_OUTCOME_SKIPPED or _DROPPED, n times. */
void pixelconv_kafka_count(pixelconv_kafka *k, int outcome, unsigned long n);

/*
 * Wait until every event is durable (delivered or spooled), close, and free.
 * *stats (may be NULL) receives the final counters.  Returns 0 when every
 * input was made durable, -1 otherwise (message in errbuf).
 */
int pixelconv_kafka_close(pixelconv_kafka *k, pixel_sink_stats *stats, char *errbuf, size_t errlen);

#endif
