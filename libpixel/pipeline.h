/*
 * The compiled pipeline: everything the YAML file said, resolved to indexes
 * and tables at load time so that processing a line does no lookups by name.
 * Immutable after load; shared by threads.
 */
#ifndef PIXEL_PIPELINE_H
#define PIXEL_PIPELINE_H

#include "pixel_private.h"

/* ---- parse ---- */

typedef enum { FRAMING_NONE, FRAMING_RFC3164, FRAMING_RFC5424, FRAMING_AUTO } pixel_framing;
typedef enum { LOGFMT_TEXT, LOGFMT_JSON } pixel_logfmt_kind;
typedef enum { REPEAT_FIRST, REPEAT_LAST, REPEAT_LIST, REPEAT_REJECT } pixel_repeat;

/* A field of a text format with the literal that closes it, laid out for the
 * per-line loop: one record per field instead of three arrays. */
typedef struct pixel_logstep {
    const char *lit; /* = pixel_logfmt.lit[i + 1] */
    uint32_t litlen;
    int32_t slot;
    uint32_t head, mask; /* the literal's first bytes (up to 4) as a word, and which are set */
    uint32_t first4;     /* its first byte, four times */
} pixel_logstep;

/* A text log format: lit[0] field[0] lit[1] field[1] ... field[n-1] lit[n]. */
typedef struct pixel_logfmt {
    pixel_logfmt_kind kind;
    size_t nfields;
    int *field; /* field slot per position */
    char **lit; /* n+1 literals */
    size_t *litlen;
    pixel_logstep *step; /* nfields steps, built from the three above */
    uint64_t writes;     /* bits of the record's field slots the parse may set */
} pixel_logfmt;

/* ---- map ---- */

typedef enum {
    SRC_NONE,
    SRC_QUERY,  /* index = parameter slot */
    SRC_LOG,    /* index = field slot */
    SRC_SYSLOG, /* index = PIXEL_S_* */
    SRC_CONST
} pixel_src_kind;

typedef enum {
    CONV_STRING,
    CONV_INTEGER,
    CONV_NUMBER,
    CONV_BOOLEAN,
    CONV_TIMESTAMP,
    CONV_BASE64URL_JSON,
    CONV_JSON,
    CONV_LIST,
    CONV_KV
} pixel_conv;

typedef enum {
    TS_AUTO,
    TS_EPOCH_S,
    TS_EPOCH_MS,
    TS_RFC3339,
    TS_CLF,
    TS_SYSLOG,
    TS_STRPTIME
} pixel_tsfmt;

typedef struct pixel_field {
    char *target; /* dotted path, for messages */
    char *leaf;   /* last component */
    size_t leaflen;
    uint16_t key_flags; /* PIXEL_VALUE_PLAIN_KEY, and FRAMED_KEY when leaf is framed */
    int parent;        /* index into pipeline->objects; 0 = the event root */
    pixel_src_kind src;
    int index;
    char *source_name; /* "query.uid": the location in reasons */
    char *const_value;
    size_t const_len;
    pixel_conv conv;
    pixel_tsfmt tsfmt;
    char *strptime_fmt;
    int ts_output_ms; /* RFC 3339 with milliseconds */
    char separator, kv_separator;
    pixel_conv item_conv; /* CONV_LIST items */
    int expect_type;      /* -1, or the pixel_type the JSON must have */
    long max_length;      /* code points, 0 = none */
    bool required;
    uint64_t required_types;   /* bitmask of event types when `required: [..]`; all when `true` */
    uint64_t only_types;       /* bitmask; 0 = every type */
    char **map_from, **map_to; /* value map */
    size_t *map_from_len, *map_to_len;
    size_t nmap;
    char *default_value;
    size_t default_len;
} pixel_field;

/* A conversion of the map stage (convert.c): 0 with *out set, 1 when the line
 * was quarantined (reason added), or a negative status. */
typedef int (*pixel_conv_fn)(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                             pixel_span in, pixel_value **out);

/* One field of the map stage's plan for an event type: the fields that apply
 * to the type, in order, with all the loop needs without reading the field. */
enum { STEP_QUERY, STEP_RECORD, STEP_OTHER, STEP_END /* after a type's steps */ };
enum {
    STEP_STRING,         /* a view of the input when within max_bytes */
    STEP_RECORD_STRING,  /* the same, when also ASCII (else checked for UTF-8 first) */
    STEP_INTEGER,        /* an integer when the input is one (else `conv` reports it) */
    STEP_CONVERT,        /* `conv` */
    STEP_RECORD_CONVERT, /* `conv` when the input is ASCII (else checked for UTF-8 first) */
    STEP_LIST            /* a query parameter that may be repeated (repeated_keys: list) */
};
typedef struct pixel_map_step {
    /* the first word of the member's value made in the loop (STEP_STRING,
     * STEP_RECORD_STRING: a string; STEP_INTEGER: an integer): its type,
     * key flags and key length */
    uint64_t head;
    const char *key;  /* the member's name (the field's leaf) */
    size_t max_bytes; /* strings: the longest input taken as it is (max_length or SIZE_MAX) */
    pixel_conv_fn conv;
    /* STEP_QUERY: parameter slot `index`; STEP_RECORD: the span at byte offset
     * `index` of the record (a log or syslog field); STEP_OTHER: field_input()
     * (a constant, a default or a value map) */
    int32_t index;
    int32_t parent;     /* index into pipeline->objects */
    uint32_t field;     /* index into pipeline->fields */
    uint32_t klen;      /* the name's length */
    uint16_t key_flags; /* the field's */
    uint8_t input;
    uint8_t kind;     /* STEP_STRING ... */
    uint8_t required; /* required for this type */
} pixel_map_step;

/* Member names the built-in enrichers add themselves, framed like the
 * pipeline's (keyframes) in this order: pixel_pipeline.lit_key. */
enum {
    PIXEL_LK_SCHEME,
    PIXEL_LK_HOST,
    PIXEL_LK_PATH,
    PIXEL_LK_QUERY,
    PIXEL_LK_FRAGMENT,
    PIXEL_LK_CAMPAIGN,
    PIXEL_LK_NAME,
    PIXEL_LK_VERSION,
    PIXEL_LK_COUNT
};

/* An intermediate object of the event (from dotted target paths). */
typedef struct pixel_objnode {
    int parent;
    char *key;
    size_t keylen;
    uint16_t key_flags; /* as pixel_field's */
} pixel_objnode;

/* ---- enrich ---- */

typedef struct pixel_enricher pixel_enricher;
/* 0 = continue; 1 = the outcome was decided (dropped/quarantined); <0 = failure. */
typedef int (*pixel_enrich_fn)(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err);

struct pixel_enricher {
    const char *name; /* for reasons and --explain */
    pixel_enrich_fn fn;
    void (*free_fn)(pixel_enricher *e);
    char *into;                        /* target path */
    char *from;                        /* source path or source name */
    pixel_path *into_path, *from_path; /* the same paths, split (built-ins) */
    uint16_t into_key_flags; /* PIXEL_VALUE_FRAMED_KEY when into_path's first name is framed */
    pixel_src_kind src;
    int src_index;
    int v4_prefix, v6_prefix;
    void *state; /* module instance etc. */
    /* built-ins: ENRICH_FRESH_* of enrich.c (a root key nothing earlier sets) */
    int into_fresh;
    /* built-ins: the pipeline->objects index of the source's parent and of the
     * target, when the map stage makes them and nothing before replaces them; 0: none */
    int from_obj, into_obj;
};

/* A query parameter name in the slot table: its first eight bytes as a
 * little-endian word, its length, and the slot (-1: an empty entry). */
typedef struct pixel_slot_entry {
    uint64_t word;
    uint32_t len;
    int32_t slot;
} pixel_slot_entry;

struct pixel_pipeline {
    char *name, *version;
    char *file, *dir;

    pixel_framing framing;
    pixel_logfmt logfmt;
    char **custom_fields; /* names of field slots >= PIXEL_F_STANDARD_COUNT */
    size_t ncustom;
    char **pixel_paths;
    size_t *pixel_path_len;
    size_t npixel_paths;
    char **methods;
    size_t *method_len; /* strlen of each, kept at load */
    size_t nmethods;
    pixel_repeat repeat;
    bool plus_as_space;
    size_t max_line_length;
    size_t max_params;

    char **slot_names; /* query parameters referenced by the mapping */
    size_t *slot_name_len;
    size_t nslots;
    uint32_t slot_hash_mask;
    uint64_t slot_hash_mult;     /* word_hash's multiplier (parse_query.c) */
    pixel_slot_entry *slot_hash; /* open addressing by name_word (parse_query.c) */

    pixel_field *fields;
    size_t nfields;
    pixel_objnode *objects; /* [0] is the root */
    size_t nobjects;
    /* The member names this pipeline sets (its fields' leaves and objects, the
     * built-ins' targets), each written out once here as its length (a byte
     * under 32), then `,"name":`; the fields, objects and paths point at the
     * names in it (pixel__map_frame_keys), and their members are flagged
     * PIXEL_VALUE_FRAMED_KEY (key_flags). */
    char *keyframes;
    size_t keyframes_len;
    const char *lit_key[PIXEL_LK_COUNT]; /* the built-ins' own names, framed (PIXEL_LK_*) */
    int type_field; /* index into fields, -1 when no event_type */
    char **types;   /* allowed event types (<= 64) */
    size_t *type_len;
    size_t ntypes;
    /* The map plan: the steps of event type t from plan_start[t] to a
     * STEP_END, and for t = ntypes every field (a pipeline without event types). */
    pixel_map_step *plan;
    size_t *plan_start;
    size_t plan_max; /* the most steps of a type */

    pixel_enricher *enrichers;
    size_t nenrichers;

    pixel_validator *validator;

    char **module_dirs; /* from pixel_pipeline_options, searched first */
    size_t nmodule_dirs;
};

/* parse_*.c */
int pixel__logfmt_compile(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *fmt_node,
                          const char *name, const char *spec, int apache);
void pixel__logfmt_free(pixel_logfmt *f);
int pixel__field_slot(pixel_pipeline *p, const char *name, int create);
const char *pixel__field_name(const pixel_pipeline *p, int slot);
int pixel__slot_for_param(pixel_pipeline *p, const char *name);
int pixel__syslog_index(const char *name);
const char *pixel__syslog_name(int idx);

int pixel__parse_syslog(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span *msg);
int pixel__parse_log(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span msg);
int pixel__parse_query(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span query);
/* Strict percent-decoding into the arena (a view when nothing needs decoding): 0, 1 with
 * *bad_at at a malformed escape, or PIXEL_ENOMEM; *high (may be NULL) says if a byte is >= 0x80. */
int pixel__percent_decode(pixel_arena *a, const char *s, size_t n, bool plus_as_space,
                          pixel_span *out, size_t *bad_at, bool *high);

/* map.c / convert.c */
int pixel__map_load(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *root);
void pixel__map_free(pixel_pipeline *p);
int pixel__map_frame_keys(pixel_pipeline *p); /* after the enrichers are loaded; 0 or -1 */
/* A decimal integer (an optional '-', 1 to 19 digits) into *out; 0, or -1
 * when it is not one or is out of range.  Inline: the map loop converts
 * most integer fields itself. */
static inline int pixel__parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1, i = 1;
    }
    if (i == n || n - i > 19) {
        return -1;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (uint64_t)neg) {
        return -1;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int pixel__convert(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                   pixel_value **out);
int pixel__conv_parse(pixel_cfg *c, const yaml_node_t *n, pixel_conv *out);
pixel_conv_fn pixel__conv_fn(const pixel_field *f); /* the conversion of f's type and format */
pixel_span pixel__source_value(const pixel_pipeline *p, pixel_ctx *ctx, pixel_src_kind src,
                               int index);
int pixel__source_parse(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *at, const char *name,
                        pixel_src_kind *src, int *index);

/* Time helpers (convert.c) */
int pixel__parse_clf_time(const char *s, size_t n, int64_t *epoch_ms);
int pixel__parse_rfc3339(const char *s, size_t n, int64_t *epoch_ms);
/* Writes "YYYY-MM-DDTHH:MM:SS[.mmm]Z" and a NUL to out (32 bytes); memo may be NULL. */
size_t pixel__format_rfc3339(pixel_time_memo *memo, char *out, int64_t epoch_ms, int with_ms);
/* The context's ingest time as RFC 3339 with milliseconds: text the context
 * keeps until the ingest time changes (a later line). */
const char *pixel__ingest_text(pixel_ctx *ctx, size_t *len);

/* enrich.c */
int pixel__enrich_load(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *seq);
void pixel__enrich_free(pixel_pipeline *p);
/* module_loader.c: a `- module: {...}` entry of the enrich list. */
int pixel__module_enricher_load(pixel_pipeline *p, pixel_cfg *c, yaml_node_t *opts,
                                pixel_enricher *e);
/* Gives back ctx's per-thread module instances (pixel_ctx_free()). */
void pixel__module_ctx_release(pixel_ctx *ctx);

/* hash.c */
void pixel__sha256(const void *data, size_t len, uint8_t out[32]);
void pixel__uuid_from_bytes(const char *s, size_t n, char out[37]);
int pixel__is_uuid(const char *s, size_t n);

#endif
