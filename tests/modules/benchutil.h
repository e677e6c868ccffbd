/* What the module benchmark tools (modbench, modscale) share. */
#ifndef PIXEL_TESTS_BENCHUTIL_H
#define PIXEL_TESTS_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The whole file in memory (malloc'd), or NULL. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 20, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
            }
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

/* A clock (CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID, ...) in seconds. */
static inline double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
