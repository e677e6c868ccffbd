/*
 * Every heap allocation of libpixel goes through these functions, so that a
 * test can make the Nth allocation fail (PIXEL_FAIL_ALLOC_AT) and check that
 * each failure path reports PIXEL_ENOMEM instead of crashing.  The counter
 * also lets the benchmark prove "no malloc per line in steady state".
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pixel_private.h"

static atomic_ulong alloc_count;
static atomic_ulong fail_at; /* 0 = never */

PIXEL_API unsigned long pixel_debug_alloc_count(void);
PIXEL_API void pixel_debug_fail_alloc_at(unsigned long n);

/* Number of allocations so far (benchmarks and tests). */
unsigned long pixel_debug_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

/* Make allocation number n (counted from now, 1-based) fail; 0 disables. */
void pixel_debug_fail_alloc_at(unsigned long n)
{
    atomic_store(&fail_at, n ? atomic_load(&alloc_count) + n : 0);
}

static int should_fail(void)
{
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    unsigned long f = atomic_load(&fail_at);
    return f != 0 && n == f;
}

void *pixel__malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *pixel__calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *pixel__realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size ? size : 1);
}

void pixel__free(void *p)
{
    free(p);
}

char *pixel__strndup(const char *s, size_t n)
{
    char *d = pixel__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *pixel__strdup(const char *s)
{
    return s ? pixel__strndup(s, strlen(s)) : NULL;
}

void pixel_free(void *p)
{
    pixel__free(p);
}
