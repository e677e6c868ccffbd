/*
 * libpixel internals shared between the core's files.  Nothing here is
 * public: modules and programs use include/pixel/ only.
 *
 * Naming: cross-file internal functions are pixel__name (two underscores).
 */
#ifndef PIXEL_PRIVATE_H
#define PIXEL_PRIVATE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <yaml.h>

#include "pixel/pixel.h"

#define PIXEL_UNUSED(x)    ((void)(x))
#define PIXEL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define PIXEL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PIXEL_LIKELY(x)    __builtin_expect(!!(x), 1)
#define PIXEL_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define PIXEL_FALLTHROUGH  __attribute__((fallthrough)) /* gcc and clang both take it */
#else
#define PIXEL_PRINTF(f, a)
#define PIXEL_LIKELY(x)   (x)
#define PIXEL_UNLIKELY(x) (x)
#define PIXEL_FALLTHROUGH ((void)0)
#endif

/* ---- allocation (one place, so tests can fail the Nth allocation) ------ */

void *pixel__malloc(size_t size);
void *pixel__calloc(size_t n, size_t size);
void *pixel__realloc(void *p, size_t size);
void pixel__free(void *p);
char *pixel__strdup(const char *s);
char *pixel__strndup(const char *s, size_t n);

/* ---- arena: bump allocation in retained chunks -------------------------- */

typedef struct pixel_arena_chunk pixel_arena_chunk;
typedef struct pixel_arena {
    pixel_arena_chunk *head; /* current chunk (most recently used) */
    pixel_arena_chunk *free; /* chunks kept for reuse after a reset */
    char *cur, *lim;         /* the free part of head */
} pixel_arena;

void pixel__arena_init(pixel_arena *a);
void pixel__arena_reset(pixel_arena *a);                    /* keeps chunks: no free() */
void pixel__arena_release(pixel_arena *a);                  /* frees everything */
void *pixel__arena_alloc_slow(pixel_arena *a, size_t size); /* a new chunk */
/* 8-aligned; NULL on ENOMEM.  Inline: the usual request is a bump of cur. */
static inline void *pixel__arena_alloc(pixel_arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (PIXEL_LIKELY((size_t)(a->lim - a->cur) >= size)) {
        void *p = a->cur;
        a->cur += size;
        return p;
    }
    return pixel__arena_alloc_slow(a, size);
}
char *pixel__arena_strndup(pixel_arena *a, const char *s, size_t n); /* NUL-terminated copy */
char *pixel__arena_printf(pixel_arena *a, const char *fmt, ...) PIXEL_PRINTF(2, 3);

/* n bytes equal?  Names and keys are short: two overlapping words of 8, 4
 * or 2 bytes (nothing outside the n bytes is read) beat a call to memcmp. */
static inline bool pixel__same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        if (n > 16) {
            return memcmp(a, b, n) == 0;
        }
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, a + n - 8, 8);
        memcpy(&b1, b + n - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    if (n >= 4) {
        uint32_t a0, a1, b0, b1;
        memcpy(&a0, a, 4);
        memcpy(&b0, b, 4);
        memcpy(&a1, a + n - 4, 4);
        memcpy(&b1, b + n - 4, 4);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    if (n >= 2) {
        uint16_t a0, a1, b0, b1;
        memcpy(&a0, a, 2);
        memcpy(&b0, b, 2);
        memcpy(&a1, a + n - 2, 2);
        memcpy(&b1, b + n - 2, 2);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    return n == 0 || a[0] == b[0];
}

/* n bytes equal, at any length without a libc call: words of 8 (the last one
 * overlapping), or the overlapping halves below 8.  For keys that may be
 * long (member names, enum strings) where a call would cost more. */
static inline bool pixel__key_eq(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    uint32_t u, w;
    uint16_t h, k;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y) {
                return false;
            }
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        memcpy(&u, a, 4);
        memcpy(&w, b, 4);
        uint32_t u2, w2;
        memcpy(&u2, a + n - 4, 4);
        memcpy(&w2, b + n - 4, 4);
        return ((u ^ w) | (u2 ^ w2)) == 0;
    }
    if (n >= 2) {
        memcpy(&h, a, 2);
        memcpy(&k, b, 2);
        return h == k && a[n - 1] == b[n - 1];
    }
    return n == 0 || a[0] == b[0];
}

/* ---- growable byte buffer (kept across lines) --------------------------- */

typedef struct pixel_buf {
    char *data;
    size_t len, cap;
} pixel_buf;

int pixel__buf_reserve(pixel_buf *b, size_t extra); /* 0 or -1 */
int pixel__buf_append(pixel_buf *b, const void *s, size_t n);
int pixel__buf_printf(pixel_buf *b, const char *fmt, ...) PIXEL_PRINTF(2, 3);
void pixel__buf_free(pixel_buf *b);
static inline int pixel__buf_putc(pixel_buf *b, char c)
{
    if (PIXEL_UNLIKELY(b->len + 1 >= b->cap) && pixel__buf_reserve(b, 1) < 0) {
        return -1;
    }
    b->data[b->len++] = c;
    return 0;
}

/* ---- values -------------------------------------------------------------- */

#define PIXEL_VALUE_RAW       0x1u /* NUMBER: `raw` holds the literal it came from */
#define PIXEL_VALUE_PLAIN_KEY 0x2u /* member name needs no JSON escaping */
/* STRING: the text needs no JSON escaping.  Set only by producers that know
 * it (times, UUIDs, IP addresses, parts of a checked URL); the serializer
 * then copies the text without looking at it.  Whoever changes u.str of a
 * value in place must clear or re-establish it. */
#define PIXEL_VALUE_PLAIN_STR 0x4u
/* OBJECT: changed through the public setters or removers (value.c,
 * pixel_module_object_append); the built-in enrichers then look every key up. */
#define PIXEL_VALUE_EDITED 0x8u
/* OBJECT (an event root), enrich.c: the built-in enrichers ran on it
 * (ENRICHED), and in this run the later ones whose target is a new root key
 * may append theirs without a search (FRESH_RUN). */
#define PIXEL_VALUE_FRESH_RUN 0x10u
#define PIXEL_VALUE_ENRICHED  0x20u
/* STRING: text libpixel wrote itself in a form a JSON Schema format accepts, so
 * the validator need not check it (validate/schema_eval.c, tests/validate).
 * Set only where the text is made; whoever changes u.str in place must clear it. */
#define PIXEL_VALUE_FMT_MASK      0x8C0u
#define PIXEL_VALUE_FMT_DATE_TIME 0x40u  /* written by pixel__format_rfc3339 */
#define PIXEL_VALUE_FMT_UUID      0x80u  /* 8-4-4-4-12 hex digits */
#define PIXEL_VALUE_FMT_IPV4      0xC0u  /* a dotted quad written by anonymize_ip (enrich.c) */
#define PIXEL_VALUE_FMT_IPV6      0x800u /* an RFC 4291 text address written by anonymize_ip */
/* With PLAIN_KEY: the key is one of the pipeline's framed member names
 * (pipeline.h keyframes): `,"` before it and `":` after it, readable a
 * block past that.  Cleared wherever a key is set (pixel__object_add). */
#define PIXEL_VALUE_FRAMED_KEY 0x100u
/* OBJECT: the url enricher added its parts to it (enrich.c). */
#define PIXEL_VALUE_URL_PARTS 0x1000u
/* The root of a module result emitted from a shape image (module_loader.c):
 * a pointer to the image is just before it in the arena. */
#define PIXEL_VALUE_IMAGE 0x200u
/* Any node of such a result, the root too: the public setters and removers
 * that change one (as the object changed, the value placed or moved) count
 * the change with pixel__image_edit(). */
#define PIXEL_VALUE_IMAGE_NODE 0x400u

/* A module result kept as an image (module_loader.c).  pixel__image_check():
 * for an object flagged PIXEL_VALUE_IMAGE, the image it was emitted from,
 * when the image is still the same making and the object holds exactly what
 * was emitted (NULL otherwise); its JSON text (NULL: none kept) and a word
 * that the validator keeps for it (0 at first; relaxed atomics: a shared
 * module's image is read by many threads). */
typedef struct pixel__image pixel__image;
const pixel__image *pixel__image_check(const pixel_value *root);
void pixel__image_edited(void);

/* The head of an image (the nodes, the relocation table and the text
 * follow; module_loader.c makes it).  Here so that the stages after the
 * modules test "still as emitted" in line. */
struct pixel__image {
    uint32_t bytes;    /* the used nodes */
    uint32_t nrel;     /* links to relocate */
    uint32_t rel_off;  /* the table: from the start of the image */
    uint32_t json_off; /* the text (0: none) */
    uint32_t json_len;
    uint32_t pad;
    uint64_t gen;            /* which making of the image this is */
    _Atomic uint64_t valid; /* pixel__image_valid() */
};

/* What the arena holds just before an emitted root: the image, which making
 * of it the copy is from, and the count of changes to image copies
 * (pixel__image_edits), plus one, at which the copy was last known to be as
 * emitted (its stamp). */
typedef struct pixel__image_link {
    const pixel__image *im;
    uint64_t gen;
    uint64_t stamp;
} pixel__image_link;

/* Changes made to nodes of image copies in the whole process
 * (pixel__image_edited(); module_loader.c): a stamp is good only while this
 * has not moved since.  On a cache line of its own. */
struct pixel__image_edit_count {
    _Alignas(64) _Atomic uint64_t n;
    char pad[64 - sizeof(uint64_t)];
};
extern struct pixel__image_edit_count pixel__image_edits;

/* The full check of a copy whose stamp is stale (pixel__image_check()),
 * stamped again with now when found as emitted. */
const pixel__image *pixel__image_restamp(const pixel_value *root, uint64_t now);

/* pixel__image_check(), taking the stamp's word while no change to a node
 * of any image copy has been counted since the copy was emitted or last
 * found as emitted; in line, the full check out of line. */
static inline const pixel__image *pixel__image_check_stamped(const pixel_value *root)
{
    const char *link = (const char *)root - sizeof(pixel__image_link);
    const pixel__image *im;
    uint64_t gen, stamp;
    memcpy(&im, link + offsetof(pixel__image_link, im), sizeof(im));
    memcpy(&gen, link + offsetof(pixel__image_link, gen), sizeof(gen));
    memcpy(&stamp, link + offsetof(pixel__image_link, stamp), sizeof(stamp));
    const uint64_t now = atomic_load_explicit(&pixel__image_edits.n, memory_order_relaxed) + 1;
    if (PIXEL_LIKELY(stamp == now && im->gen == gen)) {
        return im;
    }
    return pixel__image_restamp(root, now);
}

static inline const char *pixel__image_json(const pixel__image *im, size_t *len)
{
    *len = im->json_len;
    return im->json_len ? (const char *)im + im->json_off : NULL;
}

static inline uint64_t pixel__image_valid(const pixel__image *im)
{
    return atomic_load_explicit(&((pixel__image *)(uintptr_t)im)->valid, memory_order_relaxed);
}

static inline void pixel__image_set_valid(const pixel__image *im, uint64_t key)
{
    atomic_store_explicit(&((pixel__image *)(uintptr_t)im)->valid, key, memory_order_relaxed);
}

struct pixel_value {
    uint8_t type;  /* pixel_type */
    uint16_t flags; /* PIXEL_VALUE_* */
    uint32_t klen; /* member name length (0 for elements and roots) */
    const char *key;
    pixel_value *next; /* next member / element */
    union {
        int b;
        int64_t i;
        struct {
            double d;
            const char *raw; /* when PIXEL_VALUE_RAW */
            size_t rawlen;
        } num;
        struct {
            const char *s;
            size_t len;
        } str;
        struct {
            pixel_value *head, *tail;
            size_t count;
        } list; /* ARRAY and OBJECT */
    } u;
};

/* For whatever changes a node of the event once modules may have run (the
 * public setters and removers, the module API, the built-in enrichers):
 * obj changed (its members, or itself in place), val (or NULL) placed or
 * moved.  A change to an image copy is counted; the copy's root placed
 * somewhere is not (its name, flags and next are the event's). */
static inline void pixel__image_edit(const pixel_value *obj, const pixel_value *val)
{
    const unsigned vf = val ? val->flags & (PIXEL_VALUE_IMAGE_NODE | PIXEL_VALUE_IMAGE) : 0;
    if (PIXEL_UNLIKELY((obj->flags & PIXEL_VALUE_IMAGE_NODE) || vf == PIXEL_VALUE_IMAGE_NODE)) {
        pixel__image_edited();
    }
}

/* Arena-level constructors (the public ones wrap these with a ctx).  Inline:
 * the map stage makes a few dozen values a line. */
static inline pixel_value *pixel__value_new(pixel_arena *a, pixel_type t)
{
    pixel_value *v = pixel__arena_alloc(a, sizeof(*v));
    if (v) {
        memset(v, 0, sizeof(*v));
        v->type = (uint8_t)t;
    }
    return v;
}

/* A string value that points at s (no copy). */
static inline pixel_value *pixel__value_string_view(pixel_arena *a, const char *s, size_t len)
{
    pixel_value *v = pixel__value_new(a, PIXEL_TYPE_STRING);
    if (v) {
        v->u.str.s = s;
        v->u.str.len = len;
    }
    return v;
}

/* The same, for text known to need no JSON escaping (PIXEL_VALUE_PLAIN_STR). */
static inline pixel_value *pixel__value_plain_view(pixel_arena *a, const char *s, size_t len)
{
    pixel_value *v = pixel__value_string_view(a, s, len);
    if (v) {
        v->flags = PIXEL_VALUE_PLAIN_STR;
    }
    return v;
}

/* Links the chain first .. last (count values, last->next already set) as
 * the last members (or elements) of obj. */
static inline void pixel__list_link(pixel_value *obj, pixel_value *first, pixel_value *last,
                                    size_t count)
{
    if (obj->u.list.tail) {
        obj->u.list.tail->next = first;
    } else {
        obj->u.list.head = first;
    }
    obj->u.list.tail = last;
    obj->u.list.count += count;
}

/* Appends a member (or an element, with no key); no duplicate check. */
static inline int pixel__object_add(pixel_value *obj, const char *key, size_t klen,
                                    pixel_value *val)
{
    val->flags &= (uint16_t)~(PIXEL_VALUE_PLAIN_KEY | PIXEL_VALUE_FRAMED_KEY);
    val->key = key;
    val->klen = (uint32_t)klen;
    val->next = NULL;
    pixel__list_link(obj, val, val, 1);
    return 0;
}

/* The same, for a key known to need no JSON escaping (checked with pixel__plain_key). */
static inline int pixel__object_add_plain(pixel_value *obj, const char *key, size_t klen,
                                          pixel_value *val)
{
    pixel__object_add(obj, key, klen, val);
    val->flags |= PIXEL_VALUE_PLAIN_KEY;
    return 0;
}

bool pixel__plain_key(const char *key, size_t klen);
pixel_value *pixel__object_getn(const pixel_value *obj, const char *key, size_t klen);
/* A dotted member path split once, at load ("page.url" -> page, url); the
 * keys live as long as the path and are what members set through it point at. */
typedef struct pixel_path {
    size_t n;
    struct pixel_path_seg {
        const char *key;
        uint32_t len;
        bool plain; /* needs no JSON escaping */
    } seg[];
} pixel_path;
pixel_path *pixel__path_new(const char *dotted); /* NULL: out of memory */
void pixel__path_free(pixel_path *p);
pixel_value *pixel__path_get(const pixel_value *root, const pixel_path *path);
/* Creates missing objects on the way; replaces a member of the same name. 0 or -1. */
int pixel__path_set(pixel_ctx *ctx, pixel_value *root, const pixel_path *path, pixel_value *val);
/* pixel_object_set for a key that outlives the event and needs no escaping. */
int pixel__object_set_plain(pixel_value *obj, const char *key, size_t klen, pixel_value *val);

pixel_value *pixel__json_parse(pixel_arena *a, const char *text, size_t len, pixel_error *err);
int pixel__json_dump(pixel_buf *b, const pixel_value *v);
int pixel__json_escape(pixel_buf *b, const char *s, size_t len); /* appends "..." */
int pixel__format_double(char *out, size_t size, double d);      /* shortest round-trip text */

/* ---- UTF-8 --------------------------------------------------------------- */

/* Index of the first byte that is not part of valid UTF-8, or len if all valid. */
size_t pixel__utf8_check(const char *s, size_t len);
/* Number of code points of valid UTF-8. */
size_t pixel__utf8_length(const char *s, size_t len);

/* ---- errors -------------------------------------------------------------- */

int pixel__error_set(pixel_error *err, int code, int stage, const char *fmt, ...)
    PIXEL_PRINTF(4, 5);
int pixel__error_vset(pixel_error *err, int code, int stage, const char *fmt, va_list ap);
void pixel__error_at(pixel_error *err, const char *source, long line, long column);

/* ---- YAML configuration -------------------------------------------------- */

/*
 * The pipeline file, loaded as a libyaml document.  Every config error goes
 * through pixel__cfg_fail(), which records file, line and column of the node.
 */
typedef struct pixel_cfg {
    yaml_document_t doc;
    const char *file;     /* for messages */
    const char *base_dir; /* relative paths resolve here */
    pixel_error *err;
} pixel_cfg;

int pixel__cfg_fail(pixel_cfg *c, const yaml_node_t *at, const char *fmt, ...) PIXEL_PRINTF(3, 4);
yaml_node_t *pixel__cfg_root(pixel_cfg *c);
yaml_node_t *pixel__cfg_get(pixel_cfg *c, const yaml_node_t *map, const char *key);
/* A scalar's text (NUL-terminated, owned by the document) or NULL. */
const char *pixel__cfg_scalar(const yaml_node_t *n);
/* Typed getters: 0 when absent (out untouched) or fine, <0 with the error set. */
int pixel__cfg_string(pixel_cfg *c, const yaml_node_t *map, const char *key, const char **out);
int pixel__cfg_bool(pixel_cfg *c, const yaml_node_t *map, const char *key, bool *out);
int pixel__cfg_int(pixel_cfg *c, const yaml_node_t *map, const char *key, long long min,
                   long long max, long long *out);
/* Refuse a mapping that holds a key twice, anywhere below n. */
int pixel__cfg_check_duplicates(pixel_cfg *c, const yaml_node_t *n, int depth);
/* Refuse keys of map that are not in the NULL-ended list `known`. */
int pixel__cfg_only_keys(pixel_cfg *c, const yaml_node_t *map, const char *const *known);
int pixel__cfg_expect(pixel_cfg *c, const yaml_node_t *n, yaml_node_type_t type, const char *what);
/* Iteration helpers. */
#define PIXEL_CFG_PAIRS(c, map, pair)                                                              \
    for (yaml_node_pair_t *pair = (map)->data.mapping.pairs.start;                                 \
         pair < (map)->data.mapping.pairs.top; pair++)
#define PIXEL_CFG_ITEMS(c, seq, item)                                                              \
    for (yaml_node_item_t *item = (seq)->data.sequence.items.start;                                \
         item < (seq)->data.sequence.items.top; item++)
static inline yaml_node_t *pixel__cfg_node(pixel_cfg *c, int id)
{
    return yaml_document_get_node(&c->doc, id);
}
/* Resolve a config-relative path; malloc'd. */
char *pixel__cfg_path(pixel_cfg *c, const char *path);

/* ---- reasons -------------------------------------------------------------- */

#define PIXEL_MAX_REASONS 64

/* Quarantine the current line with one more reason (message is printf'd into the arena). */
int pixel__ctx_reason(pixel_ctx *ctx, int stage, const char *code, const char *location,
                      const char *fmt, ...) PIXEL_PRINTF(5, 6);
/* The family of a code ("parse_violation", ...), from the table in reasons.c. */
const char *pixel__code_family(const char *code);
/* Drop the current line on purpose (an enricher or module); `source` names it. Returns 1. */
int pixel__ctx_drop(pixel_ctx *ctx, const char *source, const char *why);
/* Add a fully formed reason (the validator uses this); strings must live in the arena. */
int pixel__ctx_add_reason(pixel_ctx *ctx, const pixel_reason *r);

/* ---- the validate stage's slot ------------------------------------------- */

/*
 * The validator is loaded from the pipeline's `validate:` section and checks
 * an event in place, adding one reason per error through
 * pixel__ctx_add_reason().  Implemented in libpixel/validate/.
 */
typedef struct pixel_validator pixel_validator;

int pixel__validator_load(pixel_validator **out, pixel_cfg *c, const yaml_node_t *section);
void pixel__validator_free(pixel_validator *v);
/* 0: valid; 1: invalid (reasons added); <0: infrastructure failure. */
int pixel__validator_check(const pixel_validator *v, pixel_ctx *ctx, const pixel_value *event,
                           const char *event_type, size_t event_type_len, pixel_error *err);

/* ---- the context ------------------------------------------------------- */

#include "record.h"

/* The last calendar day formatted and the last CLF time parsed: log lines
 * come in time order, so most lines find their day and second here. */
typedef struct pixel_time_memo {
    bool day_set, clf_set, bsd_set, ingest_set, sec_set;
    int64_t day; /* days since the epoch of ymd */
    char ymd[10];
    char clf[26]; /* the last CLF time text and its value */
    int64_t clf_ms;
    char bsd[15]; /* the last BSD syslog time text, the reference it was read against, its value */
    int64_t bsd_ref, bsd_ms;
    int64_t sec_ms; /* the last whole second formatted without ms (its first ms), and its text */
    char sec_text[21];
    bool min_set;
    int64_t min_ms; /* the last minute formatted (its first ms), and its text up to the seconds */
    char min_text[17];
    bool epoch_set;
    char epoch_head[5];  /* the first five digits of the last 13-digit epoch_ms text */
    uint64_t epoch_high; /* and their value */
    int64_t ingest_ms;   /* the last ingest time formatted (RFC 3339 with ms) */
    char ingest[32];
    size_t ingest_len;
} pixel_time_memo;

struct pixel_ctx {
    pixel_arena arena;
    pixel_outcome outcome;
    const pixel_pipeline *pipeline; /* the one that processed the current line */
    const char *line;               /* the raw line (after a trailing newline is cut) */
    size_t line_len;
    pixel_record rec;
    bool parsed;
    pixel_value *event;
    pixel_value **map_objs; /* map.c: the event's objects by pipeline->objects index (set
                               with event; an entry is NULL until made) */
    const char *event_type; /* value of the event-type field once mapped */
    size_t event_type_len;
    pixel_reason reasons[PIXEL_MAX_REASONS];
    size_t nreasons;
    size_t reasons_lost; /* beyond PIXEL_MAX_REASONS */
    pixel_buf out;       /* serialization buffer */
    pixel_buf scratch;   /* scratch for stages */
    int64_t fixed_clock_ms;
    int64_t ingest_ms; /* ingest time of the current line (fixed at parse) */
    pixel_time_memo time_memo;
    uint64_t module_key; /* module_loader.c: this context's unique id for per-thread module
                            instances; 0 until a module first needs it (never reused) */
    uint64_t serial;     /* resets so far: which event of the context is current
                            (pixel_module_event_serial()) */
    struct {
        uint64_t id; /* module_loader.c: the module entry's id (0: empty) */
        void *inst;  /* and this context's instance of it */
    } module_inst[8];
    struct {
        uint64_t serial; /* module_loader.c: the event it was asked on */
        const char *s;   /* the bytes hashed (NULL: empty) */
        size_t len;
        uint64_t h;      /* their pixel_module_event_hash() */
    } hash_memo[2];
    unsigned hash_memo_next; /* the entry the next new answer takes */
};

int64_t pixel__now_ms(pixel_ctx *ctx);

#endif
