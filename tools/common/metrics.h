/*
 * Metrics for libpixel's hosts (pixel-omprog, pixel-mmexternal, pixelconv),
 * in Prometheus' text exposition format (version 0.0.4).
 *
 * Two ways out, both optional:
 *
 *   - a file rewritten atomically (write to "<path>.tmp.<pid>", fsync,
 *     rename) for node_exporter's textfile collector: a scrape never sees
 *     half a file;
 *   - a tiny HTTP listener on 127.0.0.1 that answers every request with the
 *     current text (GET /metrics), served by its own thread.
 *
 * What is counted: lines by outcome, quarantined lines by stage and code,
 * dropped lines by source, delivery latency (a histogram, seconds from
 * input to durable), and whatever gauges and counters the host sets by name
 * (librdkafka queue depth, spool bytes, the age of the oldest spooled
 * record, the sink's counters).
 *
 * Every function is thread-safe (one mutex); the cost of a counted line is
 * an uncontended lock and a few additions.  This component does not depend
 * on the delivery library, so a host without Kafka can use it.
 */
#ifndef PIXEL_TOOLS_METRICS_H
#define PIXEL_TOOLS_METRICS_H

#include <stddef.h>

typedef struct pixel_metrics pixel_metrics;

/* host is the value of the `host` label on every series ("pixel-omprog").
 * NULL when out of memory. */
pixel_metrics *pixel_metrics_new(const char *host);

/* Stops the listener (if any) and frees.  NULL is a no-op. */
void pixel_metrics_free(pixel_metrics *m);

/*
 * Count one line.  outcome is a pixel_outcome (pixel.h).  For a quarantined
 * line, stage is its first reason's stage name and code its code; for a
 * dropped line, code names the enricher or module that dropped it.  Both
 * may be NULL otherwise.  Strings are copied.
 */
void pixel_metrics_line(pixel_metrics *m, int outcome, const char *stage, const char *code);

/* Count an input the host could not handle (an infrastructure failure). */
void pixel_metrics_failure(pixel_metrics *m);

/* Observe one delivery latency: seconds from reading an input to its ack. */
void pixel_metrics_latency(pixel_metrics *m, double seconds);

/*
 * Set a named series (created on first use): type is "gauge" or "counter";
 * name must be a valid Prometheus metric name, help one line.  Strings must
 * stay valid for the life of m (use literals).
 */
void pixel_metrics_set(pixel_metrics *m, const char *name, const char *type, const char *help,
                       double value);

/*
 * The whole exposition text, NUL-terminated.  Free with free().  NULL when
 * out of memory.
 */
char *pixel_metrics_render(pixel_metrics *m, size_t *len);

/*
 * Rewrite path atomically with the current text.  Returns 0, or -1 with
 * errno set (the old file is then left as it was).
 */
int pixel_metrics_write_file(pixel_metrics *m, const char *path);

/*
 * Serve the text over HTTP on 127.0.0.1:port (0: any free port) from a
 * thread of its own.  Returns the bound port, or -1 with errno set.  Only
 * one listener per pixel_metrics.
 */
int pixel_metrics_listen(pixel_metrics *m, int port);

#endif
