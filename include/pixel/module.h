/*
 * libpixel interceptor modules: the ABI between libpixel and a module .so.
 *
 * A module is a shared object that exports exactly one symbol,
 * pixel_module_entry(), returning a const pixel_module that lives as long as
 * the object is loaded.  libpixel opens modules named in a pipeline's
 * `enrich:` list (`- module: {name: useragent, config: {...}}`), checks the
 * description before trusting anything in it, builds the instance(s) from the
 * module's config subtree at pipeline load, and calls process() for every
 * event that reaches the module's place in the enrich list.
 *
 * A module sees events only through the public headers (pixel/value.h,
 * pixel/pixel.h and this file); it never sees libpixel internals, so a change
 * inside libpixel does not break a module built against an older one.
 *
 *     #include <pixel/module.h>
 *     static const pixel_module hello = {PIXEL_MODULE_HEADER, .name = "hello", ...};
 *     PIXEL_MODULE_DEFINE(hello)
 *
 * ---- versioning --------------------------------------------------------
 *
 * The ABI has a major and a minor number.  The loader refuses a module whose
 * abi_major differs from its own, or whose struct_size is smaller than the
 * ABI 1.0 layout.  A module built for an older minor has a smaller
 * struct_size: callbacks beyond it are treated as NULL.  A module built for a
 * newer minor (larger struct_size) is accepted, and the fields unknown to
 * the host are ignored.
 *
 *   - append a field to pixel_module, pixel_module_event or
 *     pixel_module_option, or add an exported function:  minor + 1;
 *   - change, remove or reorder anything, or change the meaning of a field
 *     or return value:  major + 1 (every module must be rebuilt).
 *
 * A module that calls a helper added in a later minor needs a libpixel of
 * at least that minor: on an older one, dlopen() fails on the missing
 * symbol and the loader says so.
 *
 * Changes (newest first):
 *   1.6  2026-11  pixel_module_event_hash(): a hash of bytes of the event or
 *                 the parsed line, computed once per event for the same bytes,
 *                 so modules that index caches by the same field share it;
 *                 pixel_module_value_image(): which making of a kept image a
 *                 result still as emitted is a copy of, so a module reading
 *                 another's cached result can cache what it found there.
 *                 pixel_module_event_set_image(): a result emitted from an
 *                 image and set at an event path in one call.
 *   1.5  2026-11  pixel_module_event_serial(): which event of its context a call
 *                 is on, so a module knows when memory an event may still point
 *                 into (a cache entry it evicted) can be freed.
 *   1.4  2026-11  pixel_module_shape_image_kept() and _image_size_for(): an image
 *                 kept with room for the result's JSON text, so the stages after
 *                 the module (validate, serialize) reuse what they found for that image instead of redoing it per line.
 *   1.3  2026-11  pixel_module_shape_new/_build/_free() (and _image_size/_image/
 *                 _emit for results kept): a result object (nested objects of
 *                 string members) laid out once, built in one call;
 *                 pixel_module_event_path_new/_free(), pixel_module_event_get/_set():
 *                 event paths bound to the module entry, read and written
 *                 without walking what the pipeline already knows.
 *   1.2  2026-11  pixel_module_path_new/_get/_free() and pixel_module_field_new/_get/
 *                 _free(): an event path or a record field compiled once, read on
 *                 every line without parsing the name again.
 *   1.1  2026-11  pixel_module_config_strings() and pixel_module_strings_free():
 *                 a LIST option (or a built-in default list) copied for keeps;
 *                 pixel_module_string_ref() and pixel_module_object_append():
 *                 output without copies.
 *   1.0  2025-11  first version.
 *
 * ---- threads -------------------------------------------------------------
 *
 * `threading` chooses the contract:
 *
 *   PIXEL_MODULE_PER_THREAD (0, the default): the module is not thread-safe.
 *     libpixel creates one instance per pixel_ctx that uses it (the first at
 *     pipeline load, to check the config; the others lazily, from the thread
 *     that calls the context), and never calls one instance from two threads
 *     at once.  pixel_ctx_free() gives the context's instances back: each
 *     becomes its pipeline's spare, which the next new context takes (state
 *     and counters included), or is destroyed when there is a spare already.
 *     The rest go with the pipeline.
 *   PIXEL_MODULE_SHARED: one instance, created at pipeline load, whose
 *     process() may be called from several threads at the same time.
 *
 * create() and destroy() are never called concurrently with process() on
 * the same instance.  stats() may be called while other threads process.
 */
#ifndef PIXEL_MODULE_H
#define PIXEL_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "pixel/pixel.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PIXEL_MODULE_ABI_MAJOR 1 /* bump: the host refuses the module */
#define PIXEL_MODULE_ABI_MINOR 6 /* bump: fields or helpers appended */

/* The one symbol a module exports (see PIXEL_MODULE_DEFINE). */
#define PIXEL_MODULE_ENTRY_SYMBOL "pixel_module_entry"

/* ---- configuration ---------------------------------------------------------- */

/* Option types.  Numbers are forever. */
typedef enum pixel_module_option_type {
    PIXEL_OPT_STRING = 1, /* a scalar */
    PIXEL_OPT_PATH = 2,   /* a scalar; relative paths are resolved against the pipeline file */
    PIXEL_OPT_INT = 3,    /* a signed 64-bit integer */
    PIXEL_OPT_BOOL = 4,   /* true/false, yes/no, on/off */
    PIXEL_OPT_NUMBER = 5, /* a double */
    PIXEL_OPT_LIST = 6,   /* a list of scalars (a single scalar is a list of one) */
    PIXEL_OPT_ANY = 7     /* any YAML subtree; read with pixel_module_config_value() */
} pixel_module_option_type;

#define PIXEL_OPT_REQUIRED 0x1u /* the pipeline must give this option */

/*
 * One option of a module (Fluent Bit's config_map).  A module's table ends
 * with an entry whose name is NULL.  The loader refuses options not in the
 * table and values of the wrong type, with the pipeline file's line and
 * column, before create() is called.
 */
typedef struct pixel_module_option {
    const char *name;
    int type;                  /* a pixel_module_option_type */
    const char *default_value; /* as YAML scalar text ("24", "true"); NULL = none */
    const char *help;          /* one sentence, for docs and --help */
    unsigned int flags;        /* PIXEL_OPT_REQUIRED */
} pixel_module_option;

/*
 * The checked config of one module instance, with defaults applied.  Valid
 * only during create(): copy what you keep.  Getters return the option's
 * value, its default when not given, or 0 / NULL when neither exists (or the
 * name is not in the option table).
 */
typedef struct pixel_module_config pixel_module_config;

/* STRING and PATH options (PATH: resolved; NUL-terminated). */
PIXEL_API const char *pixel_module_config_string(const pixel_module_config *cfg, const char *name);
PIXEL_API int64_t pixel_module_config_int(const pixel_module_config *cfg, const char *name);
PIXEL_API int pixel_module_config_bool(const pixel_module_config *cfg, const char *name);
PIXEL_API double pixel_module_config_number(const pixel_module_config *cfg, const char *name);
/* LIST options: the number of items and item i (NUL-terminated). */
PIXEL_API size_t pixel_module_config_list_size(const pixel_module_config *cfg, const char *name);
PIXEL_API const char *pixel_module_config_list_item(const pixel_module_config *cfg,
                                                    const char *name, size_t i);
/* Any option as a value tree (scalars are strings), or NULL when not given. */
PIXEL_API const pixel_value *pixel_module_config_value(const pixel_module_config *cfg,
                                                       const char *name);
/* 1 when the pipeline gave the option, 0 when it is absent or defaulted. */
PIXEL_API int pixel_module_config_isset(const pixel_module_config *cfg, const char *name);
/* Resolve a path found inside an ANY option like a PATH option; malloc'd, free with pixel_free. */
PIXEL_API char *pixel_module_config_resolve(const pixel_module_config *cfg, const char *path);

/*
 * (ABI 1.1) A LIST option copied for keeps: a NULL-terminated array of
 * NUL-terminated strings, all malloc'd (the module may change them in
 * place, e.g. fold their case).  When the pipeline gave the option, its
 * items; otherwise the items of `dflt` (a NULL-terminated array), or when
 * dflt is NULL the option's own default.  No items (or an option that is
 * not a LIST) give an empty array.  *n (may be NULL) receives the number of
 * items.  NULL only when out of memory.  Free with pixel_module_strings_free().
 */
PIXEL_API char **pixel_module_config_strings(const pixel_module_config *cfg, const char *name,
                                             const char *const *dflt, size_t *n);
/* (ABI 1.1) Free an array from pixel_module_config_strings() (NULL-safe). */
PIXEL_API void pixel_module_strings_free(char **list);

/*
 * Refuse the config: fills err (PIXEL_ECONFIG) with the pipeline file, the
 * line and column of `option` (NULL: of the module entry) and the printf'd
 * reason, and returns PIXEL_ECONFIG for create() to return.
 */
PIXEL_API int pixel_module_config_error(const pixel_module_config *cfg, pixel_error *err,
                                        const char *option, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Set err (if not set yet) to code with a printf'd text; returns code.  For
 * failures that are not about one option (a file that cannot be read). */
PIXEL_API int pixel_module_error(pixel_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- processing ---------------------------------------------------------------- */

/* process() results; a negative pixel_status is an infrastructure failure
 * (the line gets no verdict, the host retries or fails it upstream). */
#define PIXEL_MODULE_CONTINUE 0 /* go on with the next enricher */
#define PIXEL_MODULE_DROP 1     /* drop the line on purpose (counted per module) */
#define PIXEL_MODULE_FAIL 2     /* quarantine the line: code module_failed, source = module */

/*
 * One event handed to process().  The host owns it; fields are appended
 * only (struct_size tells the module how much the host filled in).
 */
typedef struct pixel_module_event {
    uint32_t struct_size;
    pixel_ctx *ctx;             /* allocate new values with pixel_value_new_*(ctx, ...) */
    pixel_value *event;         /* the event so far (an object); change it in place */
    const pixel_record *record; /* the parsed line: pixel_record_get(record, "log.user_agent") */
    /* Out, with DROP or FAIL: one sentence, and the field concerned (or NULL).
     * Static strings or strings from pixel_module_printf(). */
    const char *message;
    const char *location;
} pixel_module_event;

/*
 * (ABI 1.1) Building output without copies, for modules that run on every
 * line.  Both are cheaper than pixel_value_new_string() / pixel_object_set(),
 * and both make the event point at memory the module names, which must
 * stay valid and unchanged while the event is used (until the context is
 * reset): the event's or the record's own strings, the context's arena
 * (pixel_module_printf()), string literals, or memory of the instance that
 * lives as long as it does.  Never memory that another thread may change or
 * free meanwhile, such as an entry of a cache shared by threads.
 *
 * pixel_module_string_ref: a STRING value of the len bytes at s, not copied
 * (valid UTF-8, as always).  NULL when out of memory.
 * pixel_module_object_append: obj[key] = val, for a key (klen bytes, not
 * copied) that obj does not have yet: no search, no copy.  val must be a
 * fresh node.  Returns 0, or -1 if obj is not an object or val is NULL.
 */
PIXEL_API pixel_value *pixel_module_string_ref(pixel_ctx *ctx, const char *s, size_t len);
PIXEL_API int pixel_module_object_append(pixel_value *obj, const char *key, size_t klen,
                                         pixel_value *val);

/*
 * (ABI 1.2) Names compiled once, in create(), for reading on every line:
 * pixel_value_at() and pixel_record_get() take the name apart at each call,
 * these do not.  Both kinds are immutable once made, so one may be used by
 * any number of threads at once; free them in destroy().
 *
 * pixel_module_path_new: a dotted event path ("client.ua.browser.family"),
 * or NULL when out of memory.  pixel_module_path_get: the member of root at
 * that path (pixel_value_at()'s answer), or NULL; root may be any object,
 * so a module can resolve a common prefix once and the rest from there.
 *
 * pixel_module_field_new: a field of the parsed line, "log.NAME",
 * "syslog.NAME" or "query.NAME"; NULL for another name or when out of
 * memory.  pixel_module_field_get: pixel_record_get()'s answer for it.
 */
typedef struct pixel_module_path pixel_module_path;
typedef struct pixel_module_field pixel_module_field;
PIXEL_API pixel_module_path *pixel_module_path_new(const char *dotted);
PIXEL_API pixel_value *pixel_module_path_get(const pixel_value *root, const pixel_module_path *path);
PIXEL_API void pixel_module_path_free(pixel_module_path *path);
PIXEL_API pixel_module_field *pixel_module_field_new(const char *name);
PIXEL_API const char *pixel_module_field_get(const pixel_record *record,
                                             const pixel_module_field *field, size_t *len);
PIXEL_API void pixel_module_field_free(pixel_module_field *field);

/*
 * (ABI 1.3) A module's result object, laid out once in create() and built on
 * every line in one call: cheaper than a pixel_module_object_append() per
 * member.  pixel_module_shape_new: the n member paths (dotted, e.g.
 * "browser.family"; keys copied and checked for JSON escaping once), or NULL
 * when a path is empty, has an empty segment, repeats another or runs
 * through another's leaf, or when out of memory.
 *
 * pixel_module_shape_build: a fresh object holding, for each i in order
 * whose vals[i].s is not NULL, the string vals[i] (len bytes, not copied:
 * the same rules as pixel_module_string_ref()) at path i; the objects on the
 * way are made when their first member is, so an object without members is
 * left out and members come in the order of the paths -- the tree that
 * pixel_value_set_at() calls on a new object, path by path, would make.  NULL
 * only when out of memory.  A shape is immutable: any number of threads may
 * build from it at once.  Free it in destroy().
 */
typedef struct pixel_module_shape pixel_module_shape;
typedef struct pixel_module_str {
    const char *s; /* NULL: the member is absent */
    size_t len;
} pixel_module_str;
PIXEL_API pixel_module_shape *pixel_module_shape_new(const char *const *paths, size_t n);
PIXEL_API pixel_value *pixel_module_shape_build(pixel_ctx *ctx, const pixel_module_shape *shape,
                                                const pixel_module_str *vals);
PIXEL_API void pixel_module_shape_free(pixel_module_shape *shape);
/*
 * (ABI 1.3) A result the module keeps (a cache entry): pixel_module_shape_image()
 * writes what pixel_module_shape_build() would build from vals into
 * `image`, module memory of pixel_module_shape_image_size() bytes (0 or -1
 * when too small), and pixel_module_shape_emit() makes a fresh copy of it
 * in ctx's arena on each line (NULL only when out of memory): a copy of the
 * block instead of a member at a time.  The image holds the vals pointers,
 * not their bytes: they must stay valid while an event made from it is in
 * use, as for pixel_module_shape_build().
 */
PIXEL_API size_t pixel_module_shape_image_size(const pixel_module_shape *shape);
/*
 * (ABI 1.4) The size of the image of vals with room for the result's JSON
 * text (at least pixel_module_shape_image_size()), for
 * pixel_module_shape_image_kept().
 */
PIXEL_API size_t pixel_module_shape_image_size_for(const pixel_module_shape *shape,
                                                   const pixel_module_str *vals);
PIXEL_API int pixel_module_shape_image(const pixel_module_shape *shape,
                                       const pixel_module_str *vals, void *image, size_t size);
/*
 * (ABI 1.4) pixel_module_shape_image() for an image the module keeps
 * allocated and unchanged while an event made from it is in use (its copies
 * refer to it).  Made with the size pixel_module_shape_image_size_for()
 * gives, it holds the result's JSON text: libpixel writes the text once and
 * copies it into every event made from the image, and remembers that it
 * passed the pipeline's schema, so the stages after the module skip an
 * emitted result that nothing changed since.  The bytes the vals point at
 * must not change while the image is in use.  Making it anew on the same
 * memory is allowed and forgets what it remembered; copies made before then
 * are serialized and validated member by member.  An image made by
 * pixel_module_shape_image() is only copied, as in ABI 1.3, and may be freed
 * or reused once emitted, whatever its size.
 */
PIXEL_API int pixel_module_shape_image_kept(const pixel_module_shape *shape,
                                            const pixel_module_str *vals, void *image,
                                            size_t size);
PIXEL_API pixel_value *pixel_module_shape_emit(pixel_ctx *ctx, const pixel_module_shape *shape,
                                               const void *image);
/*
 * (ABI 1.6) For v, a result emitted from an image made by
 * pixel_module_shape_image_kept() (with its text) and still exactly as
 * emitted (nothing in it set, removed or replaced since): a number for that
 * making of the image, the same for every copy of it and never given to
 * another making in the process.  0 for any other value, or a copy changed
 * since.  Whatever is read inside v (its members, their strings) is the
 * same whenever the number is, so a module that reads another module's
 * result (botfilter reads useragent's families) may keep what it found
 * there under the number.  v must belong to an event in use.
 */
PIXEL_API uint64_t pixel_module_value_image(const pixel_value *v);

/*
 * (ABI 1.5) Which event of its context ev is: the same number for every
 * call on one event (however often it is enriched), a different one once
 * the context was reset for the next line.  A PIXEL_MODULE_PER_THREAD
 * instance is used by one context at a time, and its events can point only
 * into memory the instance handed out while that event was current; so
 * memory handed out (a cache entry's image, say) and then let go may be
 * freed at the first call that returns a different number, and not before:
 * the same event may have moved or copied what it got.
 */
PIXEL_API uint64_t pixel_module_event_serial(const pixel_module_event *ev);

/*
 * (ABI 1.6) A 64-bit hash of the len bytes at s, for indexing a module's
 * own cache: not cryptographic, the same for the same bytes within the
 * process, and not kept across processes.  s must be bytes of the event
 * (a string it holds) or of the parsed line (pixel_module_field_get()),
 * which stay as they are while ev is current: the context remembers its
 * last answers for the current event by address and length, so a module
 * that hashes a field another module hashed on the same event (the user
 * agent, say) gets the answer without reading the bytes again.  With ev
 * or ev->ctx NULL the hash is computed.
 */
PIXEL_API uint64_t pixel_module_event_hash(const pixel_module_event *ev, const char *s, size_t len);

/*
 * (ABI 1.3) Event paths bound to the module entry, made in create() from
 * its cfg.  At load, libpixel knows which objects the map stage makes, and
 * what the enrichers before the entry may set; on a line, what the public
 * setters changed (they mark it).  With that, pixel_module_event_get(ev,
 * path) starts at the object the map stage made instead of walking the
 * event from its root, and pixel_module_event_set(ev, path, val) appends a
 * member nothing before the entry can have set without looking for it.
 * The answers are those of pixel_value_at(ev->event, dotted) and
 * pixel_value_set_at(ev->ctx, ev->event, dotted, val) (a member replaced in
 * place, objects made on the way); the key of a new member is the path's
 * own, not copied, so free the path in destroy() only.  val must be a
 * fresh node; _set returns 0 or -1.  A path is immutable: any number of
 * threads may use it at once.  pixel_module_event_path_new: NULL when out
 * of memory.
 */
typedef struct pixel_module_event_path pixel_module_event_path;
PIXEL_API pixel_module_event_path *pixel_module_event_path_new(const pixel_module_config *cfg,
                                                               const char *dotted);
PIXEL_API pixel_value *pixel_module_event_get(const pixel_module_event *ev,
                                              const pixel_module_event_path *path);
PIXEL_API int pixel_module_event_set(pixel_module_event *ev, const pixel_module_event_path *path,
                                     pixel_value *val);
/*
 * (ABI 1.6) pixel_module_event_set(ev, path, pixel_module_shape_emit(ev->ctx,
 * shape, image)) in one call, for a module that sets a kept result on most
 * lines: 0, or -1 (out of memory, or an argument NULL).
 */
PIXEL_API int pixel_module_event_set_image(pixel_module_event *ev,
                                           const pixel_module_event_path *path,
                                           const pixel_module_shape *shape, const void *image);
PIXEL_API void pixel_module_event_path_free(pixel_module_event_path *path);

/* printf into ctx's arena (valid until the context is reset); NULL when out of memory. */
PIXEL_API const char *pixel_module_printf(pixel_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- the module description ----------------------------------------------------- */

#define PIXEL_MODULE_PER_THREAD 0u /* one instance per context; never called concurrently */
#define PIXEL_MODULE_SHARED 1u     /* one instance; process() is thread-safe */

typedef struct pixel_module {
    uint32_t abi_major;   /* PIXEL_MODULE_ABI_MAJOR when the module was built */
    uint32_t abi_minor;   /* PIXEL_MODULE_ABI_MINOR when the module was built */
    uint32_t struct_size; /* sizeof(pixel_module) when the module was built */
    uint32_t threading;   /* PIXEL_MODULE_PER_THREAD or PIXEL_MODULE_SHARED */
    const char *name;     /* must equal the file name without ".so" */
    const char *version;  /* the module's own version, e.g. "1.2.0" */
    const char *description;
    const pixel_module_option *options; /* NULL-name-terminated; NULL = takes no options */

    /*
     * Build an instance from its config.  Return 0 with *instance set (NULL
     * is allowed), or a negative pixel_status with err filled (use
     * pixel_module_config_error() for a bad option).  *instance is NULL on
     * entry; when create() fails after setting it, the loader passes that
     * half-built instance to destroy(), so set it early and let destroy()
     * free what was made.  Required.
     */
    int (*create)(void **instance, const pixel_module_config *cfg, pixel_error *err);
    /* Look at / change one event; returns PIXEL_MODULE_*.  Required. */
    int (*process)(void *instance, pixel_module_event *ev, pixel_error *err);
    /* Free an instance (NULL-safe).  Optional. */
    void (*destroy)(void *instance);
    /* One line of counters ("hits=10 misses=2"), NUL-terminated, into buf.
     * Returns 0 or -1.  Optional. */
    int (*stats)(void *instance, char *buf, size_t size);
} pixel_module;

/* Designated initializers for the version fields of a pixel_module. */
#define PIXEL_MODULE_HEADER                                                                        \
    .abi_major = PIXEL_MODULE_ABI_MAJOR, .abi_minor = PIXEL_MODULE_ABI_MINOR,                      \
    .struct_size = (uint32_t)sizeof(pixel_module)

typedef const pixel_module *(*pixel_module_entry_fn)(void);

/* Export the entry symbol for the pixel_module variable `var`. */
#define PIXEL_MODULE_DEFINE(var)                                                                   \
    __attribute__((visibility("default"))) const pixel_module *pixel_module_entry(void);           \
    __attribute__((visibility("default"))) const pixel_module *pixel_module_entry(void)            \
    {                                                                                              \
        return &(var);                                                                             \
    }

/* ---- for hosts ------------------------------------------------------------------ */

/*
 * Counters of every module instance of p, one line each:
 * "<enrich index> <module> <stats>\n".  Writes at most size bytes
 * (NUL-terminated) and returns the length the whole text needs.
 */
PIXEL_API size_t pixel_pipeline_module_stats(const pixel_pipeline *p, char *buf, size_t size);

/* ---- helpers libpixel exports for modules ----------------------------------------- */

/* SHA-256 of data, and HMAC-SHA-256 (RFC 2104) of data under key. */
PIXEL_API void pixel_sha256(const void *data, size_t len, unsigned char out[32]);
PIXEL_API void pixel_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                                 unsigned char out[32]);

#ifdef __cplusplus
}
#endif

#endif
