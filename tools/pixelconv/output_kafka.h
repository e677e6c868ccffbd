/*
 * pixelconv --kafka: the converter's events and quarantine records through
 * libpixel-delivery's sink (Kafka with failover to the spool).  Written by
 * the delivery work (issue 4) for pixelconv's in-order writer; every
 * function must be called from that one thread.
 */
#ifndef PIXELCONV_OUTPUT_KAFKA_H
#define PIXELCONV_OUTPUT_KAFKA_H

#include <stddef.h>

#include "pixel/delivery.h"

typedef struct pixelconv_kafka pixelconv_kafka;

/*
 * Open the sink from the `delivery:` section of config_path.  overrides is
 * a NULL-ended list of "name=value" settings (e.g. "kafka.brokers=host:9092")
 * or NULL.  pipeline_version goes into each event's header (may be NULL).
 * Returns 0, or a negative status with a one-line message in errbuf.
 */
int pixelconv_kafka_open(pixelconv_kafka **out, const char *config_path,
                         const char *const *overrides, const char *pipeline_version, char *errbuf,
                         size_t errlen);

/*
 * One event as a compact JSON line (no newline).  The key and the event type
 * are read from the JSON by the configured key_field and type_field.  Waits
 * (serving the sink) while the spool is full: back-pressure, never a drop.
 * Returns 0 or a negative status.
 */
int pixelconv_kafka_event(pixelconv_kafka *k, const char *json, size_t len);

/* One quarantine record (compact JSON, no newline).  0 or a negative status. */
int pixelconv_kafka_quarantine(pixelconv_kafka *k, const char *json, size_t len);

/* Lines settled without output: PIXEL_OUTCOME_SKIPPED or _DROPPED, n times. */
void pixelconv_kafka_count(pixelconv_kafka *k, int outcome, unsigned long n);

/*
 * Wait until every event is durable (delivered or spooled), close, and free.
 * *stats (may be NULL) receives the final counters.  Returns 0 when every
 * input was made durable, -1 otherwise (message in errbuf).
 */
int pixelconv_kafka_close(pixelconv_kafka *k, pixel_sink_stats *stats, char *errbuf, size_t errlen);

#endif
