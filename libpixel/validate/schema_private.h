/*
 * Internals of the JSON Schema validator (libpixel/validate/).
 *
 * The registry holds schema documents (parsed into its arena), indexes their
 * resources ($id), anchors and dynamic anchors, and compiles schema objects
 * into `snode`s: a flat array of keyword operations per schema object, with
 * every reference already resolved to the target node.  Validation walks the
 * compiled graph with no allocation: paths and the dynamic scope are linked
 * lists on the C stack, and error strings are formatted into stack buffers.
 */
#ifndef PIXEL_SCHEMA_PRIVATE_H
#define PIXEL_SCHEMA_PRIVATE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "pixel_private.h"
#include "pixel/schema.h"

/* ---- embedded metaschemas (schema_metaschemas.c, generated) -------------- */

typedef struct pixel_metaschema {
    const char *uri;  /* $id without a trailing '#' */
    const char *text; /* compact JSON */
} pixel_metaschema;
extern const pixel_metaschema pixel__metaschemas[];

/* ---- hash maps (compile time, and dynamic-anchor lookups) ------------------ */

/*
 * One open-addressed map for both kinds of key: NUL-terminated strings
 * compared by content (URIs, "uri#anchor"), or pointers compared by
 * identity (schema values, nodes).  A zeroed map is empty and keyed by
 * pointer; pixel__hmap_by_string() makes it keyed by string.  Keys must
 * outlive the map.
 */
typedef struct hmap_ent {
    const void *key; /* NULL: empty slot */
    void *val;
    uint64_t hash;
} hmap_ent;

typedef struct hmap {
    hmap_ent *e;
    size_t cap, n;
    bool by_string;
} hmap;

void pixel__hmap_by_string(hmap *m);
void *pixel__hmap_get(const hmap *m, const void *key);
int pixel__hmap_put(hmap *m, const void *key, void *val); /* replaces an existing value */
void pixel__hmap_free(hmap *m);

uint64_t pixel__schema_hash(const char *s, size_t n);

/*
 * A set of strings known at compile time (member names, enum strings):
 * each maps to its index.  Built as a perfect hash when a multiplier is
 * found that puts every key in a slot of its own (then a lookup is one hash
 * and one comparison); otherwise it is an open-addressed table.  The hash
 * reads the length and three bytes, so it costs the same for every key.
 */
typedef struct sslot {
    const char *key;
    uint32_t len;
    int32_t idx; /* -1: empty */
} sslot;

typedef struct sstrtab {
    sslot *slot;
    size_t mask; /* slots - 1 (a power of two, at least 2 slots) */
    size_t n;    /* distinct keys */
    uint32_t mult;
    uint8_t shift; /* 32 - log2(slots) */
    bool perfect;
} sstrtab;

static inline uint32_t pixel__key32(const char *k, size_t n)
{
    if (n == 0) {
        return 0x9E3779B9u;
    }
    return (uint32_t)n ^ ((uint32_t)(unsigned char)k[0] << 8) ^
           ((uint32_t)(unsigned char)k[n - 1] << 16) ^ ((uint32_t)(unsigned char)k[n >> 1] << 24);
}

/* The index of key k, or -1. */
__attribute__((always_inline)) static inline long pixel__strtab_find(const sstrtab *t, const char *k, size_t n)
{
    size_t j = (uint32_t)(pixel__key32(k, n) * t->mult) >> t->shift;
    for (;;) {
        const sslot *s = &t->slot[j];
        if (s->idx < 0) {
            return -1;
        }
        if (s->len == n && pixel__key_eq(s->key, k, n)) {
            return s->idx;
        }
        if (t->perfect) {
            return -1;
        }
        j = (j + 1) & t->mask;
    }
}

/*
 * Builds t over keys[0..n) (in the arena).  Equal keys share the index of
 * the first; canon (optional, n entries) receives each key's index, and
 * indexes count distinct keys in order of first appearance.  -1 when out
 * of memory.
 */
int pixel__strtab_build(sstrtab *t, pixel_arena *a, const char *const *keys, const size_t *lens,
                        size_t n, uint32_t *canon);

/* ---- URIs ----------------------------------------------------------------- */

/* RFC 3986 section 5.2 reference resolution; result in the arena. */
char *pixel__uri_resolve(pixel_arena *a, const char *base, const char *ref);
/* Split "uri#frag": returns the part before '#' (arena) and *frag (points into uri or ""). */
char *pixel__uri_split(pixel_arena *a, const char *uri, const char **frag);

/* ---- registry -------------------------------------------------------------- */

enum {
    SDRAFT_7 = 7,
    SDRAFT_2019 = 2019,
    SDRAFT_2020 = 2020,
};

/* Vocabularies that change what keywords mean. */
#define SVOCAB_VALIDATION 0x1u
#define SVOCAB_APPLICATOR 0x2u
#define SVOCAB_FORMAT_ASSERT 0x4u
#define SVOCAB_UNEVALUATED 0x8u
#define SVOCAB_DEFAULT (SVOCAB_VALIDATION | SVOCAB_APPLICATOR | SVOCAB_UNEVALUATED)

typedef struct sdoc {
    const char *uri;  /* retrieval URI */
    const char *file; /* file name for messages, or the URI */
    pixel_value *root;
    bool builtin;   /* an embedded metaschema: trusted, not meta-validated */
    bool checked;   /* meta-validated */
    struct sdoc *next;
} sdoc;

typedef struct sresource {
    const char *uri; /* absolute, no fragment */
    const pixel_value *root;
    sdoc *doc;
    const char *ptr; /* pointer of root inside doc */
    int draft;
    unsigned vocab;
    bool recursive_anchor; /* 2019-09 "$recursiveAnchor": true */
} sresource;

/* What the indexer learned about one schema object. */
typedef struct sinfo {
    sresource *res;
    const char *ptr; /* JSON Pointer from the resource root */
    const char *dptr; /* JSON Pointer from the document root */
} sinfo;

typedef struct smapping {
    const char *prefix;
    const char *dir;
    struct smapping *next;
} smapping;

typedef struct snode snode;

struct pixel_schema_registry {
    pixel_arena arena;
    int default_draft;
    sdoc *docs;
    sdoc *last; /* the last document added through the public API */
    sdoc *cur;  /* the document being indexed (for error messages) */
    hmap docs_by_uri; /* by string: uri -> sdoc */
    hmap resources;   /* by string: uri -> sresource */
    hmap anchors;     /* by string: "uri#name" -> pixel_value (schema object) */
    hmap dynanchors;  /* by string: "uri#name" -> pixel_value, $dynamicAnchor only */
    hmap info;        /* pixel_value* -> sinfo */
    hmap compiled;    /* pixel_value* -> snode */
    smapping *maps;
    pcre2_code **regexes; /* for freeing */
    size_t nregex, capregex;
    pixel_error *err;
    int meta_depth;
    unsigned serial;
};

/* Loads a document from text (copied), indexing it.  Returns the doc or NULL. */
sdoc *pixel__schema_doc_add(pixel_schema_registry *r, const char *uri, const char *file,
                            const char *text, size_t len, pixel_error *err);
/* Finds (or loads through the maps or the metaschemas) the resource at uri. */
sresource *pixel__schema_resource(pixel_schema_registry *r, const char *uri);
/* Resolves "uri#fragment" to a schema value; NULL if nowhere. */
const pixel_value *pixel__schema_lookup(pixel_schema_registry *r, const char *uri,
                                        sresource **res_out, const char **ptr_out);
/* Report a compile/load error at a schema node (file + pointer). */
/* A value in an error message: "string \"12a\"", "integer 5", "object" ... */
void pixel__schema_describe(const pixel_value *v, char *out, size_t cap);
int pixel__schema_fail(pixel_schema_registry *r, const pixel_value *at, const char *extra_ptr,
                       const char *fmt, ...) PIXEL_PRINTF(4, 5);

/* ---- compiled form --------------------------------------------------------- */

enum {
    ST_NULL = 1,
    ST_BOOL = 2,
    ST_INT = 4, /* "integer" */
    ST_NUM = 8, /* "number" (includes integers) */
    ST_STR = 16,
    ST_ARR = 32,
    ST_OBJ = 64,
    ST_ALL = 127,
};

typedef enum sop_kind {
    OP_TYPE,
    OP_CONST,
    OP_ENUM,
    OP_MINIMUM,
    OP_MAXIMUM,
    OP_EXMINIMUM,
    OP_EXMAXIMUM,
    OP_MULTIPLEOF,
    OP_MINLENGTH,
    OP_MAXLENGTH,
    OP_PATTERN,
    OP_FORMAT,
    OP_MINITEMS,
    OP_MAXITEMS,
    OP_UNIQUE,
    OP_MINPROPS,
    OP_MAXPROPS,
    OP_OBJECT, /* properties + patternProperties + additionalProperties + required, fused */
    OP_DEPREQUIRED,
    OP_DEPSCHEMAS,
    OP_PROPNAMES,
    OP_ITEMS, /* prefixItems / items / additionalItems */
    OP_CONTAINS,
    OP_REF,
    OP_DYNREF,
    OP_RECREF,
    OP_ALLOF,
    OP_ANYOF,
    OP_ONEOF,
    OP_NOT,
    OP_IF,
    OP_UNEVAL_PROPS,
    OP_UNEVAL_ITEMS,
} sop_kind;

typedef struct rprog rprog; /* a one-pass pattern (schema_regex.c) */

typedef struct sregex {
    pcre2_code *code;
    const char *source;
    bool jit;
    rprog *prog; /* non-NULL: the one-pass matcher applies, no PCRE2 */
    /* with prog: the one-pass matcher for prog's mode (pixel__regex_onepass or the
       one its mode would pick), called without the dispatch on the mode */
    int (*run)(const rprog *p, const char *s, size_t len);
} sregex;

typedef struct sleaf sleaf;

typedef struct sprop {
    const char *key;
    size_t klen;
    /* Text known to be the name: key itself at first, then a member name of the
       owning pipeline's (PIXEL_VALUE_FRAMED_KEY, in its key frames, which never
       change and outlive the registry) that the boolean pass found equal to it, so
       that a member with the same key pointer and length is this property without
       comparing bytes.  Read and written with relaxed atomics (threads share the
       schema); any value it takes is true. */
    const char *fkey;
    /* The property a member had where this one was awaited next and missed (an
       optional one absent, or members in another order than declared), tried before
       the hash on the next miss here: NULL at first, then the first such property the
       boolean walks found (set once; relaxed atomics, as fkey).  Only a property of the
       same object, so that finding its name there is what the hash would find. */
    const struct sprop *alt;
    snode *schema;   /* NULL: only named by required */
    int32_t req_bit; /* its bit among the distinct required names, -1 if not required */
    uint32_t req_word; /* the bit as word and mask (mask 0: not required, or past 1024) */
    uint64_t req_mask;
    const sleaf *leaf; /* the schema's leaf form (through $ref-only nodes), if quick */
    uint8_t qk;        /* SQK_*: how the boolean pass checks a member with this name */
    const void *qt;    /* its target: the sleaf (SQK_STR, SQK_PAT, SQK_FMT, SQK_LEAF), the
                          sobject (SQK_OBJ) or the snode (SQK_NODE) */
} sprop;

/*
 * The boolean pass's check of a declared property, chosen when the schema is
 * marked quick (pixel__schema_mark_quick): the common shapes in line in the
 * member loop, without the generic node dispatch.
 */
enum {
    SQK_NONE, /* no schema (named only by "required"): additionalProperties applies */
    SQK_STR,  /* a leaf that is a string with length bounds at most */
    SQK_PAT,  /* a leaf that is a string with length bounds at most and a one-pass pattern */
    SQK_FMT,  /* a leaf that is a string with length bounds and a format */
    SQK_INT,  /* a leaf that is an integer in [imin, imax] */
    SQK_ENUM, /* a leaf that is only an enum of strings (and a type that allows strings) */
    SQK_CONST, /* a leaf that is only a const */
    SQK_OBJ,  /* an object node whose only keyword besides "type": "object" is properties/
                 required/additionalProperties (through $ref-only nodes) */
    SQK_LEAF, /* any other leaf */
    SQK_NODE, /* any other node */
    SQK_MERGED, /* a flattened object's name that an allOf's sibling "properties" declares
                   (see sflat): qt is an smerged */
    SQK_MAP,    /* an object node used as a map (see smap): qt is the smap */
    SQK_OBJX,   /* SQK_OBJ to a general or lookup sobject (the member loop walks only the
                   others in line) */
    SQK_NUM,    /* a leaf that is numbers only with num_fast (see sleaf) */
    SQK_WALK,   /* SQK_OBJ to an sobject without patterns, cover or flattening (nor
                   general or lookup): walked by a call of quick_walk() */
};

/*
 * A name of a flattened object (sflat) declared by the node's own "properties": checked
 * by the envelope's declaration first (if it has one), then by the node's own, one level
 * shallower (where the node's own properties were walked), and, as a lookup object does,
 * only on the first member with the name when first_only.
 */
typedef struct smerged {
    const struct sprop *outer; /* the allOf branch object's declaration, or NULL */
    const struct sprop *own;   /* the node's own declaration (qk never SQK_NONE) */
    uint32_t bit;              /* its bit among the node's own names (first_only) */
    bool first_only;
    bool outer_implied; /* own is a string const that outer's enum holds: when own holds,
                           outer does (the boolean pass checks outer only on a later
                           member of the name, which own does not check) */
} smerged;

/*
 * An object node that is only "type": "object", minProperties/maxProperties (before
 * the rest), propertyNames and additionalProperties, without properties or
 * patternProperties, each subschema a leaf (past $ref-only nodes): the boolean pass
 * checks the member count, then every member's name and every value in line, in the
 * order of the node's keywords.
 */
typedef struct smap {
    uint64_t minp, maxp;
    const struct sleaf *names;  /* propertyNames' leaf, or NULL */
    const struct sleaf *values; /* additionalProperties' leaf, or NULL */
    bool names_first;           /* propertyNames comes before additionalProperties */
    /* both leaves (those present) are strings with at most length bounds and a one-pass
       pattern: no check can fail the evaluation (x->fail), so a name and its value are
       checked in one pass, in line when the byte length settles the bounds */
    bool one_pass;
} smap;

typedef struct spattern {
    sregex re;
    snode *schema;
} spattern;

/* The length of the entry after an sobject's last property: no member name has it (a
   member's is 32 bits), so a walk comparing lengths stops there without a bound check. */
#define SPROP_END_KLEN SIZE_MAX

typedef struct sobject {
    sprop *props; /* the names of "properties" and "required", in order, each once; then an
                     end entry of klen SPROP_END_KLEN */
    size_t nprops;
    sstrtab names; /* name -> index in props */
    spattern *patterns;
    size_t npatterns;
    snode *additional; /* NULL: absent */
    const char **required; /* "required" as written (for messages) */
    size_t *required_len;
    uint32_t *required_prop; /* each one's index in props */
    size_t nrequired;
    size_t nreq_bits; /* distinct required names */
    bool has_props, has_patterns, has_required;
    bool lookup; /* few properties, no patterns or additionalProperties: look each up */
    bool general; /* patternProperties, or more than 64 required names: quick_object_general */
    uint64_t req_all; /* the required bits, all set (when at most 64) */
    bool cover;  /* its names are in a static unevaluatedProperties set: the boolean pass
                    notes an object whose every member it declared (see uneval.cover) */
    bool merged; /* flattened with another object (SQK_MERGED properties: see smerged) */
    uint64_t memo_id; /* unique in the process: see quick_image */
} sobject;


/*
 * A static unevaluatedProperties set that is the names of one walked object (main,
 * e.g. the envelope reached through allOf/$ref) plus a few more (extra, e.g. the
 * event's own properties).  The boolean pass notes, when main walks an instance,
 * how many members it declared; if that plus the extra names present is the
 * member count, every member is evaluated and the set is not looked up per member.
 */
typedef struct scover {
    const struct sobject *main;
    size_t nextra;
    const char *extra[8];
    size_t extra_len[8];
} scover;

typedef struct sdep {
    const char *key;
    size_t klen;
    const char **names; /* dependentRequired */
    size_t *lens;
    size_t n;
    snode *schema; /* dependentSchemas */
} sdep;

typedef struct sdisc {
    const char *prop; /* discriminator member */
    size_t plen;
    sstrtab branch; /* its const value -> the branch */
} sdisc;

/*
 * An allOf whose branches are each only an if/then/else testing one member
 * against string consts or enums (the same member in every branch): the
 * member is found once and its value picks, from a table, the branches whose
 * condition holds.  Used by the boolean pass.
 */
typedef struct sifgroup {
    const char *prop;
    size_t plen;
    sstrtab values;  /* a tested string -> its row of masks */
    uint64_t *masks; /* per row: the branches whose condition holds */
    uint64_t absent; /* the branches whose condition holds without the member */
    const snode **then, **els; /* per branch, or NULL */
} sifgroup;

typedef struct sop {
    sop_kind kind;
    const char *kw; /* keyword as written (for locations) */
    union {
        unsigned types;
        const pixel_value *value; /* const, bounds, multipleOf */
        struct {
            const pixel_value *value; /* the same as u.value */
            int64_t m;  /* exact: value is m * 10^e (pixel__schema_decimal at compile time) */
            int32_t e;
            bool exact;
        } mul; /* multipleOf */
        struct {
            const pixel_value **values;
            size_t n;
            bool all_strings; /* then strs holds them */
            sstrtab strs;
        } en;
        uint64_t count;
        sregex re;
        struct {
            int id;
            const char *name;
            bool assert_always; /* format-assertion vocabulary */
            uint16_t trust; /* the PIXEL_VALUE_FMT_* flag of text known to pass, or 0xFFFF */
        } fmt;
        sobject *obj;
        struct {
            sdep *deps;
            size_t n;
        } dep;
        snode *schema; /* propertyNames, not, unevaluated*, ref */
        struct {
            snode *schema;
            /* When only properties reached through allOf/$ref can evaluate members,
               the evaluated names are known at compile time: a set. */
            bool static_names;
            sstrtab names;
            const struct scover *cover; /* NULL: none */
        } uneval;
        struct {
            snode **prefix;
            size_t nprefix;
            snode *rest;         /* items (2020) / additionalItems / items-as-schema */
            const char *rest_kw; /* "items" or "additionalItems" */
            const char *prefix_kw;
        } items;
        struct {
            snode *schema;
            int64_t min, max; /* max < 0: none */
        } contains;
        struct {
            snode *target;     /* static resolution */
            const char *anchor; /* dynamic anchor name to look for, or NULL */
        } dyn;
        struct {
            snode **v;
            size_t n;
            sdisc *disc;
            const sifgroup *ifs; /* allOf of if/then/else on one member, or NULL */
        } list;
        struct {
            snode *cond, *then, *els;
            /* "if": {"required": [P], "properties": {P: {"const"|"enum": ...}}} decided
               without evaluating the subschema (set when the condition has that shape) */
            const sprop *test_prop;
            const struct sop *test;
            bool test_required;
        } cond;
    } u;
} sop;

/*
 * A node made only of keywords on one value (type, const, enum, numeric
 * bounds, lengths, pattern, format): the boolean pass checks it in
 * straight-line code instead of dispatching keyword by keyword.
 */
struct sleaf {
    unsigned types;       /* allowed ST_* types (all when there is no "type") */
    const sop *eq;        /* const or enum, or NULL */
    const sop *num;       /* the numeric keywords (contiguous), nnum of them */
    size_t nnum;
    bool int_range;       /* every numeric keyword is an integer bound: [imin, imax] */
    int64_t imin, imax;
    /* num_fast: every numeric keyword is an inclusive minimum or maximum with an integer
       bound of at most 2^53 in magnitude, or a multipleOf: a finite number d is within
       the bounds when dlo <= d <= dhi (exact as doubles), an integer when imin <= i <= imax */
    bool num_fast;
    const sop *mul; /* num_fast: its multipleOf (one at most), or NULL */
    double dlo, dhi;
    uint64_t minlen, maxlen; /* code points */
    /* A string of len bytes with len - flo <= fspan (unsigned) meets both lengths without
       a count: len <= maxlen and len / 4 >= minlen (flo = 4 * minlen, or UINT64_MAX
       with fspan 0 when no byte length is sure to). */
    uint64_t flo, fspan;
    const sregex *pattern;
    const sop *format;
    const sop *anyfmt;    /* an anyOf whose branches are each only a format, or NULL */
};

struct snode {
    uint8_t boolean; /* 0: a schema object; 1: true; 2: false */
    uint8_t ready;   /* fully compiled */
    int draft;
    const char *loc; /* absolute schema location "uri#/pointer" */
    const sresource *res;
    const pixel_value *src;
    sop *ops;
    size_t nops;
    bool quick;          /* the boolean pass applies: see pixel__schema_mark_quick() */
    bool marked;         /* seen by pixel__schema_mark_quick() (its flags are final) */
    uint8_t skip;        /* the boolean pass checks types first and skips ops[0..skip) */
    unsigned types;
    const sleaf *leaf;   /* set with quick for a node of one-value keywords */
    const snode *alias;  /* set with quick for a node that is only a $ref: its target */
    const struct sflat *flat; /* set with quick: the node's object checks in one walk */
    const struct sroute *route; /* set with quick: a oneOf/anyOf by discriminator to flat walks */
};

/*
 * A node that is "properties"/"required" (own), one allOf branch whose node (inner,
 * past $ref-only nodes) is only an object schema (the envelope), and
 * "unevaluatedProperties" with a boolean schema and a static name set: the boolean pass
 * checks inner's type and depth as quick() would, then walks the instance's members once
 * against obj, the union of both objects' names with unevaluatedProperties as
 * additionalProperties (the names that evaluate are exactly obj's names with a schema).
 */
typedef struct sflat {
    const snode *inner;
    struct sobject *obj;
} sflat;

/*
 * A node that is only a oneOf/anyOf with a const discriminator (an "any event" schema
 * over event schemas of the sflat shape): per branch, the branch's sflat when the branch,
 * past $ref-only nodes, is a node with an sflat whose type and whose inner node's type
 * allow objects.  The boolean pass then goes from the discriminator's value straight to
 * the flat walk, two levels deeper (the branch's node and the inner one), as quick()
 * through the oneOf, the branch and quick_flat() would.
 */
typedef struct sroute {
    const sop *op;           /* the oneOf/anyOf (its sdisc picks the branch) */
    const sflat *const *flat; /* per branch, or NULL: that branch is checked by quick() */
} sroute;

/*
 * pixel_schema_validate() for the pipeline's validate stage: member names of the
 * pipeline's key frames (frames[0..frames_len), PIXEL_VALUE_FRAMED_KEY) that match a
 * declared property are remembered in it (sprop.fkey).  Only for a registry that the
 * frames outlive.
 */
int pixel__schema_validate_framed(const pixel_schema *s, const pixel_value *v, unsigned flags,
                                  pixel_schema_error_cb cb, void *payload, const char *frames,
                                  size_t frames_len);

/* Private validation flags, for the tests: one pass alone. */
#define SFLAG_FULL_ONLY 0x40000000u  /* skip the boolean pass */
#define SFLAG_QUICK_ONLY 0x20000000u /* the boolean pass's verdict, even with a callback */

struct pixel_schema {
    snode *root;
    pixel_schema_registry *reg;
    struct pixel_schema *next;
};

snode *pixel__schema_compile_node(pixel_schema_registry *r, const pixel_value *v);
/* Precompute static evaluated-name sets for unevaluatedProperties (after compiling). */
int pixel__schema_static_uneval(pixel_schema_registry *r);
int pixel__schema_check_cycles(pixel_schema_registry *r, snode *root);
/*
 * Marks the nodes the boolean pass can evaluate: those from which no
 * $dynamicRef, $recursiveRef, unevaluatedItems or unevaluatedProperties
 * without a static name set is reachable (after pixel__schema_static_uneval).
 */
void pixel__schema_mark_quick(pixel_schema_registry *r);

__extension__ typedef __int128 i128; /* exact decimal arithmetic */
/* A number as mantissa * 10^exp exactly (multipleOf); false when it does not fit. */
bool pixel__schema_decimal(const pixel_value *v, i128 *m, int *e);

/* ---- regex ----------------------------------------------------------------- */

/* Translate an ECMA-262 pattern to PCRE2 syntax; 0 or -1 with *why. Result in arena. */
int pixel__regex_translate(pixel_arena *a, const char *src, size_t len, char **out,
                           const char **why);
/* Compile a pattern; returns 0 or -1 (why set, static text or PCRE2 message in buf). */
int pixel__regex_compile(sregex *re, pixel_arena *a, const char *src, size_t len, char *why,
                         size_t whysize);
/* True when the pattern runs on the one-pass matcher (no PCRE2 match data needed). */
bool pixel__regex_is_simple(const sregex *re);
/* Match with caller-provided match data. 1 match, 0 none, <0 error. */
int pixel__regex_search(const sregex *re, pcre2_match_data *md, const char *s, size_t len);
/* The same through PCRE2 even when the one-pass matcher applies. */
int pixel__regex_search_pcre2(const sregex *re, pcre2_match_data *md, const char *s, size_t len);
/* The one-pass matcher alone (re->prog): 1 match, 0 none. */
int pixel__regex_onepass(const rprog *p, const char *s, size_t len);
/* Tests: patterns compiled while this is true never use the SSSE3 shuffle
   steps of small DFAs (the table steps every CPU runs are checked too). */
extern bool pixel__regex_portable;
/* Whether the pattern runs as a small DFA stepped by byte shuffles. */
bool pixel__regex_shuffled(const sregex *re);

/* ---- formats --------------------------------------------------------------- */

int pixel__format_id(const char *name); /* -1 for an unknown format */
/* The PIXEL_VALUE_FMT_* flag that marks text the format accepts (see
   pixel__format_trusted), or 0xFFFF when none does. */
uint16_t pixel__format_trust(int id);
/* Whether a string flagged f (PIXEL_VALUE_FMT_*) passes format id without a check: the
   core wrote it in that form.  A date-time's year 0000 or 9999 may be clamped
   (pixel__format_rfc3339), so such a text is checked. */
__attribute__((always_inline)) static inline bool pixel__format_trusted(uint16_t trust, unsigned f,
                                                                       const char *s, size_t n)
{
    if ((f & PIXEL_VALUE_FMT_MASK) != trust) {
        return false;
    }
    if (trust == PIXEL_VALUE_FMT_DATE_TIME) {
        return n >= 4 && !(s[0] == '0' && s[1] == '0' && s[2] == '0' && s[3] == '0') &&
               !(s[0] == '9' && s[1] == '9' && s[2] == '9' && s[3] == '9');
    }
    return true;
}
/* 1 valid, 0 invalid.  Checkers never allocate. */
int pixel__format_check(int id, const char *s, size_t len);

#endif
