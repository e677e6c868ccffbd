/*
 * libpixel's side of the validator benchmark: loads a schema (a file, or a
 * URI with -r DIR), parses a JSON Lines file of events once, then validates
 * every event in PASSES rounds on one thread and prints the best round's
 *
 *   libpixel <validations/s> valid=<n> invalid=<n> allocs_per_validation=<x>
 *
 * usage: bench_validate [-r DIR] [--first] [--cpu] -s SCHEMA -p PASSES EVENTS.jsonl
 *
 * --cpu times the rounds in this thread's CPU time instead of wall-clock
 * time: steadier on a shared machine, for comparing builds (the benchmark
 * script's ratio uses wall-clock time on both sides).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pixel/schema.h"
#include "pixel_private.h"

unsigned long pixel_debug_alloc_count(void);

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *schema = NULL, *dirs[16];
    size_t ndirs = 0;
    long passes = 5;
    unsigned flags = PIXEL_SCHEMA_ASSERT_FORMAT;
    int c;
    static const struct option lo[] = {{"first", no_argument, NULL, 'f'},
                                       {"cpu", no_argument, NULL, 'c'},
                                       {NULL, 0, NULL, 0}};
    while ((c = getopt_long(argc, argv, "s:r:p:", lo, NULL)) != -1) {
        if (c == 's') {
            schema = optarg;
        } else if (c == 'r' && ndirs < 16) {
            dirs[ndirs++] = optarg;
        } else if (c == 'p') {
            passes = strtol(optarg, NULL, 10);
        } else if (c == 'f') {
            flags |= PIXEL_SCHEMA_FIRST_ERROR;
        } else if (c == 'c') {
            clock_id = CLOCK_THREAD_CPUTIME_ID;
        } else {
            return 2;
        }
    }
    if (!schema || optind >= argc) {
        fprintf(stderr,
                "usage: bench_validate [-r DIR] [--first] [--cpu] -s SCHEMA -p PASSES EVENTS\n");
        return 2;
    }
    pixel_error err;
    pixel_error_clear(&err);
    pixel_schema_registry *reg;
    const pixel_schema *s;
    int rc = pixel_schema_registry_new(&reg, 0, &err);
    for (size_t i = 0; rc == 0 && i < ndirs; i++) {
        rc = pixel_schema_registry_add_dir(reg, dirs[i], &err);
    }
    const char *uri = schema;
    struct stat st;
    if (rc == 0 && stat(schema, &st) == 0) {
        rc = pixel_schema_registry_add_file(reg, schema, NULL, &err);
        uri = pixel_schema_registry_last_uri(reg);
    }
    if (rc == 0) {
        rc = pixel_schema_compile(&s, reg, uri, &err);
    }
    if (rc != 0) {
        char buf[800];
        fprintf(stderr, "bench_validate: %s\n", pixel_error_format(&err, buf, sizeof(buf)));
        return 2;
    }
    FILE *f = fopen(argv[optind], "rb");
    if (!f) {
        perror(argv[optind]);
        return 2;
    }
    pixel_arena arena;
    pixel__arena_init(&arena);
    size_t n = 0, cap = 1024;
    pixel_value **events = malloc(cap * sizeof(*events));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        char *copy = pixel__arena_strndup(&arena, line, (size_t)len);
        pixel_value *v = copy ? pixel__json_parse(&arena, copy, (size_t)len - 1, NULL) : NULL;
        if (!v) {
            continue;
        }
        if (n == cap) {
            cap *= 2;
            events = realloc(events, cap * sizeof(*events));
        }
        events[n++] = v;
    }
    free(line);
    fclose(f);
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) { /* warm-up, and the verdicts */
        valid += pixel_schema_validate(s, events[i], flags, NULL, NULL) == 0;
    }
    /* PASSES rounds over all events; the best round counts (the machine is shared). */
    unsigned long a0 = pixel_debug_alloc_count();
    double best = 1e30;
    for (long p = 0; p < passes; p++) {
        double t0 = now();
        for (size_t i = 0; i < n; i++) {
            pixel_schema_validate(s, events[i], flags, NULL, NULL);
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    unsigned long a1 = pixel_debug_alloc_count();
    double count = (double)n * (double)passes;
    printf("libpixel %.0f valid=%zu invalid=%zu allocs_per_validation=%.4f\n", (double)n / best,
           valid, n - valid, (double)(a1 - a0) / count);
    free(events);
    pixel__arena_release(&arena);
    pixel_schema_registry_free(reg);
    return 0;
}
