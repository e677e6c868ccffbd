/*
 * libpixel: tracking-pixel access-log lines -> governed JSON events.
 *
 * A pixel_pipeline is loaded once from a YAML file (or string).  It is
 * immutable and may be shared by any number of threads.  Each thread owns a
 * pixel_ctx: an arena plus scratch space, reused line after line, so that a
 * line costs no heap allocation in steady state.  A context is used by one
 * thread at a time; it may pass to another thread (a worker pool) when the
 * hand-over synchronizes (a mutex, pthread_join()): the module instances
 * that serve it follow it.  Module counters: pixel_pipeline_module_stats()
 * in pixel/module.h.
 *
 * Every line ends in exactly one outcome:
 *
 *   PIXEL_OUTCOME_EVENT        an event of the data model (pixel_ctx_event())
 *   PIXEL_OUTCOME_QUARANTINED  rejected, with reasons (pixel_ctx_reason())
 *   PIXEL_OUTCOME_SKIPPED      not a pixel request (by configuration)
 *   PIXEL_OUTCOME_DROPPED      dropped on purpose by an enricher or module
 *
 * The stages can be run one at a time (pixel_parse, pixel_map, pixel_enrich,
 * pixel_validate) or all at once (pixel_process).  Each stage works on the
 * state held by the context and stops the line early when the outcome is
 * decided.
 *
 * Functions return 0 (PIXEL_OK) or a negative pixel_status.  A negative
 * status is an infrastructure failure (bad config, out of memory, unreadable
 * file) and is never used for bad input data: bad data is a quarantine
 * outcome with status 0.
 *
 * The library never prints and never exits.
 */
#ifndef PIXEL_PIXEL_H
#define PIXEL_PIXEL_H

#include <stddef.h>
#include <stdint.h>

#include "pixel/version.h"
#include "pixel/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pixel_pipeline pixel_pipeline;
typedef struct pixel_record pixel_record;

/* Status codes.  Numbers are forever. */
typedef enum pixel_status {
    PIXEL_OK = 0,
    PIXEL_ERROR = -1,    /* generic failure; see pixel_error.text */
    PIXEL_ENOMEM = -2,   /* out of memory */
    PIXEL_ECONFIG = -3,  /* invalid configuration (file, line, column in the error) */
    PIXEL_EIO = -4,      /* a file could not be read */
    PIXEL_EVERSION = -5, /* an options struct or module of an unknown version */
    PIXEL_ESCHEMA = -6,  /* an invalid schema or an unresolvable reference */
    PIXEL_EINVAL = -7,   /* invalid argument (API misuse) */
    PIXEL_EPARSE = -8    /* invalid text handed to a parser (pixel_json_parse) */
} pixel_status;

/* Static, never NULL. */
PIXEL_API const char *pixel_status_str(int status);

/*
 * The version of the library loaded at run time ("0.1.0"), which may differ
 * from the PIXEL_VERSION_STRING a program was compiled against.  Static.
 */
PIXEL_API const char *pixel_version(void);

/* Pipeline stages.  Numbers are forever. */
typedef enum pixel_stage {
    PIXEL_STAGE_NONE = 0,
    PIXEL_STAGE_PARSE = 1,
    PIXEL_STAGE_MAP = 2,
    PIXEL_STAGE_ENRICH = 3,
    PIXEL_STAGE_VALIDATE = 4,
    PIXEL_STAGE_SERIALIZE = 5,
    PIXEL_STAGE_LOAD = 6 /* loading a pipeline, a schema or a module */
} pixel_stage;

/* "parse", "map", ... ; static, never NULL. */
PIXEL_API const char *pixel_stage_str(int stage);

/*
 * Details of a failure.  Caller-allocated; every function accepts NULL.  The
 * first error set wins (later, derived failures do not overwrite it).  The
 * calls that load or create something (pixel_pipeline_load_*(),
 * pixel_schema_registry_new(), pixel_schema_compile(), the delivery config
 * loaders, pixel_sink_new(), pixel_spool_open(), pixel_replay_spool()) clear
 * err first, so it may be uninitialized; give every other call a cleared one
 * (pixel_error_clear(), or `pixel_error e = {0}`).
 */
struct pixel_error {   /* typedef'd as pixel_error in value.h */
    int code;          /* a pixel_status */
    int stage;         /* a pixel_stage */
    long line, column; /* 1-based position in `source`; 0 = not applicable */
    char pointer[128]; /* RFC 6901 JSON Pointer (schemas, config paths); "" = none */
    char source[256];  /* file name, "<string>", or module name; "" = none */
    char text[320];    /* one sentence, no trailing newline */
    void *reserved[4]; /* room to grow without an ABI break */
};

/* Clears err (no-op for NULL). */
PIXEL_API void pixel_error_clear(pixel_error *err);

/*
 * Formats "source:line:column: text" (omitting the parts that are not set)
 * into buf.  Returns buf.
 */
PIXEL_API const char *pixel_error_format(const pixel_error *err, char *buf, size_t size);

/* ---- pipelines --------------------------------------------------------- */

#define PIXEL_PIPELINE_OPTIONS_VERSION 1

typedef struct pixel_pipeline_options {
    unsigned int version; /* PIXEL_PIPELINE_OPTIONS_VERSION */
    /* Extra directories searched for interceptor modules, before the
     * PIXEL_MODULE_PATH environment variable, the pipeline's own
     * `modules: {path: ...}`, libpixel/modules beside the running
     * libpixel.so (an installation moved elsewhere) and the installed
     * module directory (`pkg-config --variable=moduledir libpixel`).
     * Copied at load.
     * NULL-ended; may be NULL. */
    const char *const *module_dirs;
    unsigned int flags; /* PIXEL_PIPELINE_* below */
} pixel_pipeline_options;

#define PIXEL_PIPELINE_OPTIONS_INIT                                                                \
    {                                                                                              \
        PIXEL_PIPELINE_OPTIONS_VERSION, NULL, 0                                                    \
    }

/* Do not load the validate section (a pipeline that only transforms). */
#define PIXEL_PIPELINE_NO_VALIDATE 0x1u

/*
 * Load a pipeline from a YAML file.  Relative paths inside the file (schemas,
 * modules) are taken relative to the file's directory.  opts may be NULL.
 * On failure returns a negative status and fills err with the file, line,
 * column and what was expected.  *out belongs to the caller, who frees it
 * with pixel_pipeline_free().
 */
PIXEL_API int pixel_pipeline_load_file(pixel_pipeline **out, const char *path,
                                       const pixel_pipeline_options *opts, pixel_error *err);

/*
 * Load a pipeline from YAML text.  `name` is used in error messages (NULL:
 * "<string>"); relative paths are taken relative to `base_dir` (NULL: the
 * current directory).
 */
PIXEL_API int pixel_pipeline_load_string(pixel_pipeline **out, const char *yaml, size_t len,
                                         const char *name, const char *base_dir,
                                         const pixel_pipeline_options *opts, pixel_error *err);

/* NULL is a no-op.  No context may be processing with p any more. */
PIXEL_API void pixel_pipeline_free(pixel_pipeline *p);

/* The pipeline's configured name and version (static for its lifetime). */
PIXEL_API const char *pixel_pipeline_name(const pixel_pipeline *p);
PIXEL_API const char *pixel_pipeline_version(const pixel_pipeline *p);

/* ---- contexts ---------------------------------------------------------- */

/*
 * A per-thread context.  Not tied to one pipeline: the same context may
 * process lines of a reloaded pipeline.  NULL when out of memory.
 * pixel_ctx_free(): NULL is a no-op; it may come before or after the free
 * of the pipelines it served.
 */
PIXEL_API pixel_ctx *pixel_ctx_new(void);
PIXEL_API void pixel_ctx_free(pixel_ctx *ctx);

/* Forget the current line; every value and view of it becomes invalid. */
PIXEL_API void pixel_ctx_reset(pixel_ctx *ctx);

/*
 * Fix the clock used for ingest times (milliseconds since the epoch) of the
 * lines that follow: a fixed time for reproducible output, or, from a host
 * that reads lines in batches, the time it read the batch (a line's ingest
 * time is then when its batch was read, and the clock is not read for
 * every line).  0 returns to the real clock, read once per line.
 */
PIXEL_API void pixel_ctx_set_clock(pixel_ctx *ctx, int64_t epoch_ms);

/*
 * An RFC 3339 date-time ("2026-11-26T12:00:00Z", "...T13:30:00.25+01:30")
 * as milliseconds since the epoch, for pixel_ctx_set_clock(): the parser of
 * the pipeline's `format: rfc3339` timestamps (a fraction is cut to
 * milliseconds, a leap second counts as :59).  PIXEL_OK, or PIXEL_EPARSE
 * for any other text; PIXEL_EINVAL for NULL arguments.
 */
PIXEL_API int pixel_time_parse(const char *text, size_t len, int64_t *epoch_ms);

/* ---- processing -------------------------------------------------------- */

typedef enum pixel_outcome {
    PIXEL_OUTCOME_PENDING = 0, /* a stage run alone left the line undecided */
    PIXEL_OUTCOME_EVENT = 1,
    PIXEL_OUTCOME_QUARANTINED = 2,
    PIXEL_OUTCOME_SKIPPED = 3,
    PIXEL_OUTCOME_DROPPED = 4
} pixel_outcome;

/* "pending", "event", "quarantined", "skipped", "dropped"; static. */
PIXEL_API const char *pixel_outcome_str(int outcome);

/*
 * Run every stage on one line (without its line terminator; a trailing
 * "\n" or "\r\n" is ignored).  The line is not copied: it must stay valid
 * and unchanged until the context is reset.  *outcome receives the verdict.
 * Returns 0, or a negative status for an infrastructure failure (the line
 * then has no verdict and should be retried or failed upstream):
 * PIXEL_ENOMEM, PIXEL_EINVAL for a NULL pipeline, context or line, or the
 * status a module's process() returned.  outcome may be NULL; on a negative
 * status *outcome is PIXEL_OUTCOME_PENDING.
 */
PIXEL_API int pixel_process(const pixel_pipeline *p, pixel_ctx *ctx, const char *line, size_t len,
                            pixel_outcome *outcome, pixel_error *err);

/*
 * The stages on their own.  pixel_parse() starts a new line (it resets the
 * context); each later stage continues from the context's state and does
 * nothing when the outcome is already decided.  *outcome is PENDING while
 * the line is still going; pixel_validate() (the last stage) decides EVENT.
 * A stage with nothing to work on (pixel_map() before pixel_parse(),
 * pixel_enrich() or pixel_validate() before pixel_map()), or given a context
 * that holds a line of another pipeline, returns PIXEL_EINVAL with
 * *outcome PENDING.  Skipping pixel_enrich() is allowed: the event is then
 * validated without what the enrichers add.
 */
PIXEL_API int pixel_parse(const pixel_pipeline *p, pixel_ctx *ctx, const char *line, size_t len,
                          pixel_outcome *outcome, pixel_error *err);
PIXEL_API int pixel_map(const pixel_pipeline *p, pixel_ctx *ctx, pixel_outcome *outcome,
                        pixel_error *err);
PIXEL_API int pixel_enrich(const pixel_pipeline *p, pixel_ctx *ctx, pixel_outcome *outcome,
                           pixel_error *err);
PIXEL_API int pixel_validate(const pixel_pipeline *p, pixel_ctx *ctx, pixel_outcome *outcome,
                             pixel_error *err);

/* The outcome of the current line so far. */
PIXEL_API pixel_outcome pixel_ctx_outcome(const pixel_ctx *ctx);

/*
 * The current event (after pixel_map), or the partial event of a quarantined
 * line; NULL before mapping.  Borrowed: valid until the context is reset.
 * Callers may change it through the value.h functions; pixel_ctx_output()
 * serializes it as it is then, so a change made after pixel_validate() (or
 * pixel_process()) is not validated: change it before the validate stage.
 */
PIXEL_API pixel_value *pixel_ctx_event(pixel_ctx *ctx);

/*
 * The serialized result of the current line, as compact JSON without a
 * newline: the event for EVENT, the quarantine record (schemas/quarantine
 * .schema.json) for QUARANTINED, and NULL for SKIPPED and DROPPED.
 * Borrowed: valid until the next call on ctx.  NULL with len 0 when there is
 * nothing to write; on out-of-memory also NULL, and ctx's outcome is kept.
 * len may be NULL (the text is NUL-terminated).
 */
PIXEL_API const char *pixel_ctx_output(pixel_ctx *ctx, const pixel_pipeline *p, size_t *len);

/* ---- quarantine reasons ----------------------------------------------- */

/*
 * Why a line was quarantined (or, for a DROPPED line, which enricher dropped
 * it).  The reasons and their strings are borrowed from the context, valid
 * until it is reset; `family`, `code` and `message` are never NULL; the
 * others are NULL when not applicable.  pixel_ctx_reason() returns NULL for
 * i >= pixel_ctx_reason_count().
 */
typedef struct pixel_reason {
    int stage;                    /* a pixel_stage */
    const char *family;           /* "parse_violation", "schema_violation", ... */
    const char *code;             /* stable, e.g. "bad_percent_escape"; docs/quarantine-codes.md */
    const char *message;          /* one readable sentence */
    const char *location;         /* query parameter, log field, or JSON Pointer */
    const char *keyword_location; /* validate stage: the schema keyword's path */
    const char *schema_location;  /* validate stage: absolute schema URI#pointer */
    const char *source;           /* enricher or module name */
} pixel_reason;

PIXEL_API size_t pixel_ctx_reason_count(const pixel_ctx *ctx);
PIXEL_API const pixel_reason *pixel_ctx_reason(const pixel_ctx *ctx, size_t i);

/* ---- parsed records (parse stage output) ------------------------------- */

/* The parsed record of the current line, or NULL before/without parsing. */
PIXEL_API const pixel_record *pixel_ctx_record(const pixel_ctx *ctx);

/*
 * A field of the record by source name: "log.client", "log.time",
 * "syslog.hostname", "query.uid", ... (see docs/pipeline.md for the list).
 * Returns the bytes (not NUL-terminated; decoded for query parameters) or
 * NULL when the field is absent.  Borrowed: valid until the context is reset.
 */
PIXEL_API const char *pixel_record_get(const pixel_record *rec, const char *name, size_t *len);

/*
 * Iterate the query parameters in order: index 0..count-1.  Returns the
 * name (length in *name_len) and sets *value / *value_len (each pointer may
 * be NULL); both are decoded, not NUL-terminated, and borrowed like
 * pixel_record_get()'s answer.  NULL past the end.
 */
PIXEL_API size_t pixel_record_param_count(const pixel_record *rec);
PIXEL_API const char *pixel_record_param(const pixel_record *rec, size_t i, const char **value,
                                         size_t *name_len, size_t *value_len);

/* ---- memory ------------------------------------------------------------ */

/* Frees memory that libpixel handed to the caller with "free with pixel_free". */
PIXEL_API void pixel_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
