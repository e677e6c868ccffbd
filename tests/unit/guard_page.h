/*
 * Copies of test input that end exactly where mapped memory ends: the bytes
 * are placed at the end of a fresh mapping whose next page is PROT_NONE, so
 * that any read past the last byte (a vector load at the tail of a line, a
 * string or a JSON text) faults instead of reading whatever follows on the
 * stack or the heap.  The library takes caller memory of len bytes with no
 * padding (an mmap'ed file may end at a page boundary), so every entry
 * point must hold up to this.
 *
 * The last GUARD_RING copies stay mapped, so that a test may keep the views
 * of a few lines at once (contexts processed one after the other).
 */
#ifndef PIXEL_GUARD_PAGE_H
#define PIXEL_GUARD_PAGE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_RING 8

typedef struct guard_map {
    char *base;
    size_t size; /* with the guard page */
} guard_map;

/* A copy of the n bytes at s whose last byte is the last byte before a
 * PROT_NONE page.  Valid until GUARD_RING more copies are made. */
static inline const char *guard_copy(const char *s, size_t n)
{
    static guard_map ring[GUARD_RING];
    static unsigned next;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_map *g = &ring[next++ % GUARD_RING];
    const size_t data = (n + page - 1) / page * page + page; /* at least one page of data */
    if (g->base && g->size == data + page) {
        /* the same size again: the mapping is reused */
        char *at = g->base + data - n;
        memcpy(at, s, n);
        return at;
    }
    if (g->base) {
        munmap(g->base, g->size);
    }
    g->size = data + page;
    g->base = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->base == MAP_FAILED || mprotect(g->base + data, page, PROT_NONE) != 0) {
        perror("guard_copy");
        abort();
    }
    /* bytes before the copy: not NUL, so that nothing relies on a terminator */
    memset(g->base, 'G', data);
    char *at = g->base + data - n;
    memcpy(at, s, n);
    return at;
}

#endif
