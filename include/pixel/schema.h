/*
 * libpixel's standalone JSON Schema validator (draft 2020-12, 2019-09 and
 * draft-07), the engine behind the pipeline's validate stage and
 * pixel-validate.
 *
 *     pixel_schema_registry *reg;
 *     pixel_schema_registry_new(&reg, PIXEL_SCHEMA_DRAFT_2020_12, &err);
 *     pixel_schema_registry_add_dir(reg, "schemas", &err);
 *     const pixel_schema *s;
 *     pixel_schema_compile(&s, reg, "https://pixel.example/schemas/event.schema.json", &err);
 *     int rc = pixel_schema_validate(s, value, 0, print_cb, NULL);
 *
 * A registry holds schema documents; every `$ref` resolves only to documents
 * that were added to it, to files under a URI-prefix mapping, or to the
 * embedded official metaschemas: there is never network access.  Compiling
 * resolves all references and checks each document against its metaschema,
 * so that a broken schema, an unresolvable `$ref`, a bad `$schema` or a
 * reference cycle that cannot terminate fails at compile time with the file
 * and JSON Pointer in pixel_error (source, pointer, text).
 *
 * Thread-safety: building and compiling are not thread-safe; once compiled,
 * a pixel_schema may be used by many threads at once (validation reads it
 * only).  Validation never allocates heap memory.
 */
#ifndef PIXEL_SCHEMA_H
#define PIXEL_SCHEMA_H

#include <stddef.h>

#include "pixel/pixel.h"
#include "pixel/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pixel_schema_registry pixel_schema_registry;
typedef struct pixel_schema pixel_schema;

/* Dialects, used when a schema has no `$schema`. */
typedef enum pixel_schema_draft {
    PIXEL_SCHEMA_DRAFT_7 = 7,
    PIXEL_SCHEMA_DRAFT_2019_09 = 2019,
    PIXEL_SCHEMA_DRAFT_2020_12 = 2020
} pixel_schema_draft;

/* Parses "7", "draft-07", "2019-09", "2020-12" (and URIs of the metaschemas); 0 if unknown. */
PIXEL_API int pixel_schema_draft_parse(const char *s);

/*
 * A new, empty registry.  default_draft (a pixel_schema_draft, or 0 for
 * 2020-12) applies to schemas without `$schema`.  Free with
 * pixel_schema_registry_free().  Returns 0 or a negative pixel_status.
 */
PIXEL_API int pixel_schema_registry_new(pixel_schema_registry **out, int default_draft,
                                        pixel_error *err);

/* Frees the registry and every schema compiled from it; NULL is a no-op. */
PIXEL_API void pixel_schema_registry_free(pixel_schema_registry *reg);

/*
 * Adds one schema document.  uri is the retrieval URI (NULL: the document's
 * `$id`, or file://<absolute path> for a file without one).  The text is
 * copied.  Returns 0 or a negative pixel_status (a JSON syntax error, or a
 * URI already taken).
 */
PIXEL_API int pixel_schema_registry_add_json(pixel_schema_registry *reg, const char *uri,
                                             const char *text, size_t len, pixel_error *err);
PIXEL_API int pixel_schema_registry_add_file(pixel_schema_registry *reg, const char *path,
                                             const char *uri, pixel_error *err);

/* Adds every *.json file below dir (recursively), each by its `$id`. */
PIXEL_API int pixel_schema_registry_add_dir(pixel_schema_registry *reg, const char *dir,
                                            pixel_error *err);

/*
 * References to URIs that start with uri_prefix load, on first use, the file
 * dir/<rest of the URI>.  (This is how the conformance suite's
 * http://localhost:1234/ remotes are served.)
 */
PIXEL_API int pixel_schema_registry_map(pixel_schema_registry *reg, const char *uri_prefix,
                                        const char *dir, pixel_error *err);

/* The `$id` (or retrieval URI) of the most recently added document; borrowed. */
PIXEL_API const char *pixel_schema_registry_last_uri(const pixel_schema_registry *reg);

/*
 * Compiles the schema at uri (which may carry a fragment: a JSON Pointer or
 * an anchor) with everything it references.  *out is borrowed from the
 * registry and lives until the registry is freed.  Returns 0, or a negative
 * pixel_status with err naming the file, the JSON Pointer and the reason.
 */
PIXEL_API int pixel_schema_compile(const pixel_schema **out, pixel_schema_registry *reg,
                                   const char *uri, pixel_error *err);

/*
 * Checks everything added so far, as a load step for a schema directory:
 * compiles every schema object of every added document (also $defs nothing
 * references), meta-validates each document and refuses reference cycles.
 * Returns 0 or a negative pixel_status with err naming the file, the JSON
 * Pointer and the reason.
 */
PIXEL_API int pixel_schema_registry_check(pixel_schema_registry *reg, pixel_error *err);

/* Validation flags. */
#define PIXEL_SCHEMA_FIRST_ERROR 0x1u   /* stop at the first error */
#define PIXEL_SCHEMA_ASSERT_FORMAT 0x2u /* `format` asserts (default: annotation only) */

/* One validation error.  All strings are valid only during the callback. */
typedef struct pixel_schema_error {
    const char *instance_location; /* JSON Pointer into the instance, "" = the root */
    const char *keyword_location;  /* JSON Pointer through the schema as evaluated */
    const char *schema_location;   /* absolute URI#pointer of the keyword */
    const char *keyword;           /* "maxLength", "required", ... */
    const char *message;           /* "expected integer, got string \"12a\"" */
} pixel_schema_error;

/* Called once per error; return nonzero to stop validating. */
typedef int (*pixel_schema_error_cb)(const pixel_schema_error *e, void *payload);

/*
 * Validates instance.  Returns 0 when valid, 1 when invalid (cb, which may
 * be NULL, was called for each error), or a negative pixel_status when the
 * evaluation could not finish: PIXEL_ERROR for nesting beyond the recursion
 * limit, PIXEL_ESCHEMA for a schema that re-enters itself on the same
 * instance value through dynamic references (cb then got one error, with an
 * empty keyword, naming the schema node).
 * Thread-safe; never allocates.
 */
PIXEL_API int pixel_schema_validate(const pixel_schema *schema, const pixel_value *instance,
                                    unsigned flags, pixel_schema_error_cb cb, void *payload);

/* Checks s against a format ("date-time", "ipv6", ...): 1 valid, 0 invalid, -1 unknown format. */
PIXEL_API int pixel_schema_format_check(const char *format, const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif
