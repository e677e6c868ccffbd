/*
 * libpixel event values.
 *
 * An event is a tree of pixel_value nodes: null, boolean, integer, number,
 * string, array and object, the JSON data model.  Nodes live in the arena of a
 * pixel_ctx and are valid until that context is reset (pixel_ctx_reset(), or
 * the next pixel_process() / pixel_parse() on it).  Nothing here calls malloc
 * per node: building an event costs a few pointer bumps.
 *
 * Strings are byte ranges (pointer + length) and are NOT NUL-terminated; they
 * are always valid UTF-8 when they come from the pipeline.  Object members
 * keep their insertion order, which is the order they are serialized in.
 *
 * Modules and callers reach events only through these functions, so the node
 * layout can change without breaking them.
 */
#ifndef PIXEL_VALUE_H
#define PIXEL_VALUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PIXEL_API
#define PIXEL_API __attribute__((visibility("default")))
#endif

typedef struct pixel_ctx pixel_ctx;
typedef struct pixel_value pixel_value;
typedef struct pixel_error pixel_error;

/* Value types.  The numbers are part of the ABI and never change. */
typedef enum pixel_type {
    PIXEL_TYPE_NULL = 0,
    PIXEL_TYPE_BOOL = 1,
    PIXEL_TYPE_INT = 2,    /* a signed 64-bit integer */
    PIXEL_TYPE_NUMBER = 3, /* a double (or a JSON number too big for int64) */
    PIXEL_TYPE_STRING = 4,
    PIXEL_TYPE_ARRAY = 5,
    PIXEL_TYPE_OBJECT = 6
} pixel_type;

/* ---- reading ---------------------------------------------------------- */

/* The type of v; PIXEL_TYPE_NULL when v is NULL. */
PIXEL_API pixel_type pixel_value_type(const pixel_value *v);

/* 1 for true, 0 for false or a non-boolean. */
PIXEL_API int pixel_value_bool(const pixel_value *v);

/* The integer; a NUMBER is truncated; 0 for other types. */
PIXEL_API int64_t pixel_value_int(const pixel_value *v);

/* The numeric value of an INT or NUMBER; 0.0 for other types. */
PIXEL_API double pixel_value_number(const pixel_value *v);

/* The bytes of a STRING (not NUL-terminated; *len receives the length) or
 * NULL for other types.  Borrowed: valid until the context is reset. */
PIXEL_API const char *pixel_value_string(const pixel_value *v, size_t *len);

/* Number of members of an OBJECT or elements of an ARRAY; 0 otherwise. */
PIXEL_API size_t pixel_value_size(const pixel_value *v);

/*
 * Iteration over an OBJECT's members or an ARRAY's elements, in order:
 *
 *     for (const pixel_value *m = pixel_value_first(obj); m; m = pixel_value_next(m)) {
 *         size_t klen; const char *key = pixel_value_key(m, &klen);
 *         ...
 *     }
 *
 * pixel_value_key() gives the member name of an object member (not
 * NUL-terminated) and NULL for an array element or a root value.
 */
PIXEL_API const pixel_value *pixel_value_first(const pixel_value *container);
PIXEL_API const pixel_value *pixel_value_next(const pixel_value *v);
PIXEL_API const char *pixel_value_key(const pixel_value *member, size_t *len);

/* The member of obj named key (NUL-terminated), or NULL. */
PIXEL_API pixel_value *pixel_object_get(const pixel_value *obj, const char *key);

/* The member at a dotted path such as "server.client_ip", or NULL. */
PIXEL_API pixel_value *pixel_value_at(const pixel_value *root, const char *path);

/* ---- building (all nodes and copies go to ctx's arena) ----------------- */

PIXEL_API pixel_value *pixel_value_null(pixel_ctx *ctx);
PIXEL_API pixel_value *pixel_value_new_bool(pixel_ctx *ctx, int b);
PIXEL_API pixel_value *pixel_value_new_int(pixel_ctx *ctx, int64_t i);
PIXEL_API pixel_value *pixel_value_new_number(pixel_ctx *ctx, double d);
/* Copies len bytes of s into the arena.  The caller promises valid UTF-8. */
PIXEL_API pixel_value *pixel_value_new_string(pixel_ctx *ctx, const char *s, size_t len);
PIXEL_API pixel_value *pixel_value_new_object(pixel_ctx *ctx);
PIXEL_API pixel_value *pixel_value_new_array(pixel_ctx *ctx);

/*
 * Set obj[key] = val: replaces an existing member in place (keeping its
 * position) or appends a new one.  val must be a fresh node (not already a
 * member or element of something).  Returns 0, or -1 if obj is not an object
 * or val is NULL.
 */
PIXEL_API int pixel_object_set(pixel_ctx *ctx, pixel_value *obj, const char *key, pixel_value *val);

/* Set the member at a dotted path, creating intermediate objects. */
PIXEL_API int pixel_value_set_at(pixel_ctx *ctx, pixel_value *root, const char *path,
                                 pixel_value *val);

/* Remove obj[key]; returns 1 if it was there, 0 if not. */
PIXEL_API int pixel_object_remove(pixel_value *obj, const char *key);

/* Remove the member at a dotted path; returns 1 if it was there, 0 if not. */
PIXEL_API int pixel_value_remove_at(pixel_value *root, const char *path);

/* Append val (a fresh node) to an ARRAY.  Returns 0 or -1. */
PIXEL_API int pixel_array_append(pixel_value *arr, pixel_value *val);

/* ---- text ------------------------------------------------------------ */

/*
 * Parse one JSON text into ctx's arena (strict RFC 8259: UTF-8 checked, no
 * trailing data, nesting at most 256 deep).  Integers that fit int64 become
 * INT; other numbers NUMBER (the literal is kept, so it serializes back
 * unchanged).  Strings without escapes point into `text`, which must stay
 * valid and unchanged while the values are used.  Returns the root, or NULL
 * with err filled (err may be NULL).
 */
PIXEL_API pixel_value *pixel_json_parse(pixel_ctx *ctx, const char *text, size_t len,
                                        pixel_error *err);

/*
 * Serialize v as compact JSON into a buffer owned by ctx.  Returns the text
 * (NUL-terminated, length in *len) valid until the next pixel_value_dump() or
 * pixel_ctx_output() on ctx, or NULL when out of memory.
 */
PIXEL_API const char *pixel_value_dump(pixel_ctx *ctx, const pixel_value *v, size_t *len);

/* Structural equality (JSON Schema's: 1 == 1.0, member order ignored). */
PIXEL_API int pixel_value_equal(const pixel_value *a, const pixel_value *b);

/*
 * A jansson copy of v, for callers who want one: a new reference that the
 * caller releases with json_decref().  Declared as void * so that this header
 * does not require jansson.h; cast it to json_t *.  NULL when out of memory.
 * libpixel.pc lists jansson as private: a program that calls json_*() links
 * it itself (`pkg-config --libs libpixel jansson`).
 */
PIXEL_API void *pixel_value_to_jansson(const pixel_value *v);

#ifdef __cplusplus
}
#endif

#endif
