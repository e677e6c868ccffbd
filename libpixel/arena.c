/*
 * The per-context arena.  Chunks are never returned to the heap on reset:
 * they move to a free list and are reused, so once a context has seen its
 * largest line, processing allocates nothing.  Requests larger than a chunk
 * get a chunk of their own, which is also kept for reuse.
 */
#include <stdio.h>
#include <string.h>

#include "pixel_private.h"

#define CHUNK_SIZE (64 * 1024)

struct pixel_arena_chunk {
    pixel_arena_chunk *next;
    size_t size;
    max_align_t data[]; /* aligned payload */
};

void pixel__arena_init(pixel_arena *a)
{
    memset(a, 0, sizeof(*a));
}

static void free_list(pixel_arena_chunk *c)
{
    while (c) {
        pixel_arena_chunk *next = c->next;
        pixel__free(c);
        c = next;
    }
}

void pixel__arena_release(pixel_arena *a)
{
    free_list(a->head);
    free_list(a->free);
    pixel__arena_init(a);
}

void pixel__arena_reset(pixel_arena *a)
{
    /* The current chunk stays current, from its start (the next line's first
     * request is then a bump, not a trip to the free list); the older ones
     * move to the free list. */
    pixel_arena_chunk *head = a->head;
    if (!head) {
        return;
    }
    pixel_arena_chunk *c = head->next;
    while (c) {
        pixel_arena_chunk *next = c->next;
        c->next = a->free;
        a->free = c;
        c = next;
    }
    head->next = NULL;
    a->cur = (char *)head->data;
    a->lim = (char *)head->data + head->size;
}

static pixel_arena_chunk *take_chunk(pixel_arena *a, size_t need)
{
    pixel_arena_chunk **pp = &a->free;
    for (pixel_arena_chunk *c = a->free; c; pp = &c->next, c = c->next) {
        if (c->size >= need) {
            *pp = c->next;
            return c;
        }
    }
    size_t size = need > CHUNK_SIZE ? need : CHUNK_SIZE;
    pixel_arena_chunk *c = pixel__malloc(sizeof(*c) + size);
    if (c) {
        c->size = size;
    }
    return c;
}

void *pixel__arena_alloc_slow(pixel_arena *a, size_t size)
{
    /* The rest of the current chunk is left unused until the next reset. */
    pixel_arena_chunk *c = take_chunk(a, size);
    if (!c) {
        return NULL;
    }
    c->next = a->head;
    a->head = c;
    a->cur = (char *)c->data + size;
    a->lim = (char *)c->data + c->size;
    return c->data;
}

char *pixel__arena_strndup(pixel_arena *a, const char *s, size_t n)
{
    char *d = pixel__arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *pixel__arena_printf(pixel_arena *a, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    if ((size_t)n < sizeof(small)) {
        return pixel__arena_strndup(a, small, (size_t)n);
    }
    char *d = pixel__arena_alloc(a, (size_t)n + 1);
    if (d) {
        va_start(ap, fmt);
        vsnprintf(d, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return d;
}

int pixel__buf_reserve(pixel_buf *b, size_t extra)
{
    if (b->len + extra < b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap <= b->len + extra) {
        cap *= 2;
    }
    char *d = pixel__realloc(b->data, cap);
    if (!d) {
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int pixel__buf_append(pixel_buf *b, const void *s, size_t n)
{
    if (pixel__buf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int pixel__buf_printf(pixel_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || pixel__buf_reserve(b, (size_t)n + 1) < 0) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void pixel__buf_free(pixel_buf *b)
{
    pixel__free(b->data);
    memset(b, 0, sizeof(*b));
}
