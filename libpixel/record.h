/*
 * The parse stage's output: a record of views into the line.
 *
 * Log fields have fixed slots for the names every format knows (client,
 * time, request, ...) and pipeline-assigned slots for the rest (headers,
 * other nginx variables).  Query parameters are kept in order; the ones the
 * mapping refers to are also indexed by slot, so the map stage never
 * compares parameter names.
 */
#ifndef PIXEL_RECORD_H
#define PIXEL_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* A byte range; p == NULL means absent (an empty value has p != NULL, n == 0). */
typedef struct pixel_span {
    const char *p;
    size_t n;
} pixel_span;

enum {
    PIXEL_F_CLIENT,
    PIXEL_F_IDENT,
    PIXEL_F_USER,
    PIXEL_F_TIME,
    PIXEL_F_REQUEST,
    PIXEL_F_METHOD,
    PIXEL_F_TARGET,
    PIXEL_F_PATH,
    PIXEL_F_QUERY,
    PIXEL_F_PROTOCOL,
    PIXEL_F_STATUS,
    PIXEL_F_BYTES,
    PIXEL_F_REFERER,
    PIXEL_F_USER_AGENT,
    PIXEL_F_HOST,
    PIXEL_F_REQUEST_TIME,
    PIXEL_F_STANDARD_COUNT, /* custom fields follow */
    PIXEL_MAX_FIELDS = 48
};

enum {
    PIXEL_S_PRI,
    PIXEL_S_FACILITY,
    PIXEL_S_SEVERITY,
    PIXEL_S_TIMESTAMP,
    PIXEL_S_HOSTNAME,
    PIXEL_S_TAG,
    PIXEL_S_PROCID,
    PIXEL_S_MSGID,
    PIXEL_S_MESSAGE,
    PIXEL_S_COUNT
};

typedef struct pixel_param {
    pixel_span name, value; /* decoded */
    int32_t slot;           /* index in the pipeline's parameter table, -1 if unreferenced */
    int32_t next_same;      /* next parameter with the same slot, -1 at the end */
} pixel_param;

typedef struct pixel_slot {
    int32_t first; /* first parameter of this slot, -1 when absent */
    int32_t count; /* occurrences; set only when first >= 0 */
} pixel_slot;

struct pixel_record {
    pixel_span syslog[PIXEL_S_COUNT];
    char facility_text[4], severity_text[2];
    pixel_span fields[PIXEL_MAX_FIELDS];
    /* Bit i: fields[i] may be set (the parse of some line wrote it); what
     * pixel_ctx_reset() clears, rather than the whole array.  Kept across resets. */
    uint64_t fields_dirty;
    pixel_param *params;
    size_t nparams;
    pixel_slot *slots; /* pipeline->nslots entries */
    size_t nslots;
    const pixel_pipeline *pipeline;
};

#endif
