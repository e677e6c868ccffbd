/*
 * Read-only rules shared by the instances of one module entry.  Modules
 * with per-thread instances (PIXEL_MODULE_PER_THREAD) build what the config
 * decides (a table, compiled regexes) once: the loader gives every
 * instance of an entry the same config object, so the first create()
 * builds the rules under that key and the others take a reference; the
 * last destroy() frees them.  A module's rules struct starts with a
 * pixel_shared_rules.  A header of the in-tree modules only (each module
 * is its own shared object, with its own registry); not part of the module
 * ABI.
 */
#ifndef PIXEL_MODULES_SHARED_RULES_H
#define PIXEL_MODULES_SHARED_RULES_H

#include <pthread.h>
#include <stddef.h>

#include <pixel/module.h>

typedef struct pixel_shared_rules {
    const void *key; /* the entry's config (an identity, never read) */
    int refs;        /* under the registry's lock */
    struct pixel_shared_rules *next;
} pixel_shared_rules;

typedef struct pixel_rules_registry {
    pthread_mutex_t lock;
    pixel_shared_rules *all;
} pixel_rules_registry;

#define PIXEL_RULES_REGISTRY_INIT {PTHREAD_MUTEX_INITIALIZER, NULL}

/*
 * The rules for key: those of the entry's other instances, or *out from
 * build(key, out, arg) (0, or a negative status with nothing left to free).
 * The lock is held while building, so that threads creating their first
 * instances at once build once.  Returns 0 or build()'s status.
 */
static inline int pixel_rules_get(pixel_rules_registry *reg, const void *key,
                                  pixel_shared_rules **out,
                                  int (*build)(const void *key, pixel_shared_rules **made,
                                               void *arg),
                                  void *arg)
{
    pthread_mutex_lock(&reg->lock);
    pixel_shared_rules *r = reg->all;
    while (r && r->key != key) {
        r = r->next;
    }
    int rc = 0;
    if (r) {
        r->refs++;
    } else if ((rc = build(key, &r, arg)) < 0) {
        r = NULL;
    } else {
        r->key = key;
        r->refs = 1;
        r->next = reg->all;
        reg->all = r;
    }
    pthread_mutex_unlock(&reg->lock);
    *out = r;
    return rc;
}

/* Drop one reference to r (NULL: none); the last one frees it with free_fn. */
static inline void pixel_rules_release(pixel_rules_registry *reg, pixel_shared_rules *r,
                                       void (*free_fn)(pixel_shared_rules *))
{
    if (!r) {
        return;
    }
    pthread_mutex_lock(&reg->lock);
    int last = --r->refs == 0;
    if (last) {
        pixel_shared_rules **pp = &reg->all;
        while (*pp != r) {
            pp = &(*pp)->next;
        }
        *pp = r->next;
    }
    pthread_mutex_unlock(&reg->lock);
    if (last) {
        free_fn(r);
    }
}

#endif
