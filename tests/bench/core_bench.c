/*
 * core_bench FILE PIPELINE: stage throughput of libpixel on one thread.
 *
 * The whole file is read into memory first, so the figures are the
 * library's, not the disk's.  Prints one line per measurement:
 *   parse_only     lines/s of pixel_parse()
 *   full           lines/s of pixel_process() + pixel_ctx_output()
 *   allocs/line    heap allocations per line after the first pass (steady state)
 * Each rate is given twice: by the wall clock, and by this thread's CPU time,
 * which a busy shared machine disturbs less (it still shares caches).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pixel/pixel.h"

/* Under callgrind (core_bench.sh INSTR=1, --instr-atstart=no), only the
 * timed full pass is counted: the steady state, without the first pass's
 * one-time work (cache fills, regexes compiled on first use). */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

unsigned long pixel_debug_alloc_count(void);

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static double cpu(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

typedef enum { PARSE_ONLY, FULL } mode;

static unsigned long pass(const pixel_pipeline *p, pixel_ctx *ctx, const char *buf, size_t len,
                          mode m, unsigned long *bytes_out)
{
    unsigned long lines = 0, out = 0;
    const char *s = buf, *end = buf + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = (size_t)((nl ? nl : end) - s);
        pixel_outcome oc;
        if (m == PARSE_ONLY) {
            pixel_parse(p, ctx, s, n, &oc, NULL);
        } else {
            size_t olen = 0;
            pixel_process(p, ctx, s, n, &oc, NULL);
            pixel_ctx_output(ctx, p, &olen);
            out += olen;
        }
        lines++;
        s = nl ? nl + 1 : end;
    }
    if (bytes_out) {
        *bytes_out = out;
    }
    return lines;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: core_bench CORPUS PIPELINE\n");
        return 2;
    }
    size_t len;
    char *buf = slurp(argv[1], &len);
    pixel_pipeline *p;
    pixel_error err;
    double l0 = now();
    if (pixel_pipeline_load_file(&p, argv[2], NULL, &err) != 0) {
        char m[512];
        fprintf(stderr, "%s\n", pixel_error_format(&err, m, sizeof(m)));
        return 2;
    }
    double l1 = now();
    pixel_ctx *ctx = pixel_ctx_new();
    pass(p, ctx, buf, len, FULL, NULL); /* warm-up: the arena reaches its size */
    unsigned long a0 = pixel_debug_alloc_count();
    double t0 = now(), c0 = cpu();
    unsigned long lines = pass(p, ctx, buf, len, PARSE_ONLY, NULL);
    double t1 = now(), c1 = cpu();
    unsigned long out_bytes = 0;
    CALLGRIND_START_INSTRUMENTATION;
    pass(p, ctx, buf, len, FULL, &out_bytes);
    CALLGRIND_STOP_INSTRUMENTATION;
    double t2 = now(), c2 = cpu();
    unsigned long a1 = pixel_debug_alloc_count();
    printf("load           %.1f ms (pixel_pipeline_load_file)\n", 1e3 * (l1 - l0));
    printf("lines          %lu (%.0f bytes/line)\n", lines, (double)len / lines);
    printf("parse_only     %.0f lines/s  (by CPU time %.0f)\n", lines / (t1 - t0),
           lines / (c1 - c0));
    printf("full           %.0f lines/s  (by CPU time %.0f; parse+map+enrich+validate+serialize, "
           "%.0f MB/s in)\n",
           lines / (t2 - t1), lines / (c2 - c1), len / (t2 - t1) / 1e6);
    printf("allocs/line    %.4f  (steady state, both passes)\n", (double)(a1 - a0) / (2.0 * lines));
    printf("output         %.0f bytes/line\n", (double)out_bytes / lines);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    free(buf);
    return 0;
}
