/*
 * The time at the start of a host's log line: UTC, RFC 3339 with
 * milliseconds ("2026-11-27T21:30:05.042Z "), so that the lines of a log
 * file that rsyslog's omprog output= or --log-file collects can be put
 * beside rsyslog's and Kafka's own.  Lines that go to syslog(3) get their
 * time from syslog and do not use this.
 */
#ifndef PIXEL_TOOLS_LOGSTAMP_H
#define PIXEL_TOOLS_LOGSTAMP_H

#include <stdio.h>
#include <time.h>

/* Writes the stamp and one space into buf; returns its length (25), or 0
 * when the clock or the buffer fails (the line then goes without it). */
static inline int tool_log_stamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm)) {
        return 0;
    }
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000);
    return n > 0 && (size_t)n < size ? n : 0;
}

#endif
