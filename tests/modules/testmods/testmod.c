/*
 * A module for the loader's tests, compiled into several variants (see
 * meson.build): a good one with every option type, and broken ones (another
 * ABI major, a too-small description, a wrong name, no entry symbol).
 *
 * process() writes {instance, calls, version, live, "we\"ird", tags} at
 * `into` (live: the instances of this variant not destroyed yet; we"ird:
 * `into` again, through the ABI 1.1 no-copy helpers; tags: the `tags` option
 * copied with pixel_module_config_strings(); the last two are absent in the
 * ABI 1.0 build),
 * then does what `action` says: continue, drop, fail, or error (an
 * infrastructure failure).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixel/module.h>

#ifndef TESTMOD_NAME
#define TESTMOD_NAME "testmod"
#endif
#ifndef TESTMOD_VERSION
#define TESTMOD_VERSION 1
#endif
#ifndef TESTMOD_ABI_MAJOR
#define TESTMOD_ABI_MAJOR PIXEL_MODULE_ABI_MAJOR
#endif
#ifndef TESTMOD_STRUCT_SIZE
#define TESTMOD_STRUCT_SIZE sizeof(pixel_module)
#endif
#ifndef TESTMOD_THREADING
#define TESTMOD_THREADING PIXEL_MODULE_PER_THREAD
#endif
/* TESTMOD_ABI_MINOR=0 builds a module as ABI 1.0 headers would have: it
 * knows no helper newer than 1.0. */
#ifndef TESTMOD_ABI_MINOR
#define TESTMOD_ABI_MINOR PIXEL_MODULE_ABI_MINOR
#endif

#ifdef TESTMOD_FROM_THE_FUTURE
/* A helper of a later ABI minor that this libpixel does not export. */
PIXEL_API int pixel_module_helper_from_the_future(void);
#endif

typedef struct testmod_ctx {
    int serial;
    long calls;
    int action; /* 0 continue, 1 drop, 2 fail, 3 error */
    char into[64];
    char **tags; /* ABI 1.1: the `tags` option, default {alpha, beta} */
    size_t ntags;
} testmod_ctx;

static atomic_int serials;
static atomic_int live; /* instances created and not destroyed */

static const pixel_module_option options[] = {
    {"action", PIXEL_OPT_STRING, "continue", "continue, drop, fail or error", 0},
    {"into", PIXEL_OPT_STRING, "testmod", "where to write the instance info", 0},
    {"count", PIXEL_OPT_INT, "1", "an integer", 0},
    {"flag", PIXEL_OPT_BOOL, "false", "a boolean", 0},
    {"ratio", PIXEL_OPT_NUMBER, "0.5", "a number", 0},
    {"tags", PIXEL_OPT_LIST, NULL, "a list", 0},
    {"table", PIXEL_OPT_ANY, NULL, "anything", 0},
    {"file", PIXEL_OPT_PATH, NULL, "a path", 0},
    {"fail_create", PIXEL_OPT_BOOL, "false", "refuse the config in create()", 0},
    {NULL, 0, NULL, NULL, 0},
};

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    static const char *const actions[] = {"continue", "drop", "fail", "error"};
    if (pixel_module_config_bool(cfg, "fail_create")) {
        return pixel_module_config_error(cfg, err, "fail_create", "refused as asked (count=%lld)",
                                         (long long)pixel_module_config_int(cfg, "count"));
    }
    const char *a = pixel_module_config_string(cfg, "action");
    int act = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(a, actions[i]) == 0) {
            act = i;
        }
    }
    if (act < 0) {
        return pixel_module_config_error(cfg, err, "action", "unknown action '%s'", a);
    }
    testmod_ctx *t = calloc(1, sizeof(*t));
    if (!t) {
        return PIXEL_ENOMEM;
    }
    *instance = t;
    atomic_fetch_add(&live, 1);
#if TESTMOD_ABI_MINOR >= 1
    static const char *const default_tags[] = {"alpha", "beta", NULL};
    if (!(t->tags = pixel_module_config_strings(cfg, "tags", default_tags, &t->ntags))) {
        return PIXEL_ENOMEM;
    }
#endif
#ifdef TESTMOD_FROM_THE_FUTURE
    pixel_module_helper_from_the_future();
#endif
    t->serial = atomic_fetch_add(&serials, 1) + 1;
    t->action = act;
    strncpy(t->into, pixel_module_config_string(cfg, "into"), sizeof(t->into) - 1);
    return 0;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    testmod_ctx *t = instance;
    (void)err;
    t->calls++;
    pixel_value *o = pixel_value_new_object(ev->ctx);
    if (!o || pixel_object_set(ev->ctx, o, "instance", pixel_value_new_int(ev->ctx, t->serial)) ||
        pixel_object_set(ev->ctx, o, "calls", pixel_value_new_int(ev->ctx, t->calls)) ||
        pixel_object_set(ev->ctx, o, "version", pixel_value_new_int(ev->ctx, TESTMOD_VERSION)) ||
        pixel_object_set(ev->ctx, o, "live", pixel_value_new_int(ev->ctx, atomic_load(&live))) ||
        pixel_value_set_at(ev->ctx, ev->event, t->into, o)) {
        return PIXEL_ENOMEM;
    }
#if TESTMOD_ABI_MINOR >= 1
    /* A key that needs escaping, and a value pointing at the instance's memory. */
    if (pixel_module_object_append(o, "we\"ird", 6,
                                   pixel_module_string_ref(ev->ctx, t->into, strlen(t->into))) ||
        pixel_module_object_append(NULL, "x", 1, o) != -1) {
        return PIXEL_ENOMEM;
    }
#endif
    if (t->tags) {
        pixel_value *tags = pixel_value_new_array(ev->ctx);
        if (!tags || pixel_object_set(ev->ctx, o, "tags", tags)) {
            return PIXEL_ENOMEM;
        }
        for (size_t i = 0; i < t->ntags; i++) {
            if (pixel_array_append(tags, pixel_value_new_string(ev->ctx, t->tags[i],
                                                                strlen(t->tags[i])))) {
                return PIXEL_ENOMEM;
            }
        }
    }
    switch (t->action) {
        case 1:
            ev->message = "dropped as asked";
            return PIXEL_MODULE_DROP;
        case 2:
            ev->message = pixel_module_printf(ev->ctx, "failed as asked (call %ld)", t->calls);
            ev->location = t->into;
            return PIXEL_MODULE_FAIL;
        case 3:
            return PIXEL_ERROR;
        default:
            return PIXEL_MODULE_CONTINUE;
    }
}

static void destroy(void *instance)
{
    testmod_ctx *t = instance;
    if (!t) {
        return;
    }
#if TESTMOD_ABI_MINOR >= 1
    pixel_module_strings_free(t->tags);
#endif
    free(t);
    atomic_fetch_sub(&live, 1);
}

static int stats(void *instance, char *buf, size_t size)
{
    testmod_ctx *t = instance;
    return snprintf(buf, size, "calls=%ld", t->calls) < 0 ? -1 : 0;
}

static const pixel_module testmod = {
    .abi_major = TESTMOD_ABI_MAJOR,
    .abi_minor = TESTMOD_ABI_MINOR,
    .struct_size = (uint32_t)(TESTMOD_STRUCT_SIZE),
    .threading = TESTMOD_THREADING,
    .name = TESTMOD_NAME,
    .version = "1.0.0",
    .description = "test module",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
    .stats = stats,
};

#ifndef TESTMOD_NO_ENTRY
PIXEL_MODULE_DEFINE(testmod)
#else
/* Exported, but under another name: the loader must not find an entry. */
__attribute__((visibility("default"))) const pixel_module *pixel_module_entry_v0(void);
const pixel_module *pixel_module_entry_v0(void)
{
    return &testmod;
}
#endif
