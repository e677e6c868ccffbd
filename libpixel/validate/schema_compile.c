/*
 * Compiling schema objects into snodes.
 *
 * Each schema object becomes one snode with a flat array of operations, in a
 * fixed order: `type` first (cheapest rejection), then the validation
 * keywords, the fused object operation (properties + patternProperties +
 * additionalProperties + required, one pass over the members with an
 * open-addressed property table), arrays, applicators and references, and
 * the unevaluated* keywords last (they need everything else's annotations).
 * References are resolved here, once: an OP_REF points at the target snode.
 * Nodes are memoized by their JSON value, so recursive schemas compile into
 * cyclic graphs.
 */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "schema_private.h"

#define MAX_OPS 48

typedef struct cctx {
    pixel_schema_registry *r;
    const pixel_value *v;
    const sinfo *in;
    int draft;
    unsigned vocab;
} cctx;


/* A number for each compiled object schema, never given twice in a process
 * (not even after its registry is freed): the key under which module result
 * images remember a verdict (quick_image in schema_eval.c). */
static uint64_t next_memo_id(void)
{
    static _Atomic uint64_t last;
    return atomic_fetch_add_explicit(&last, 1, memory_order_relaxed) + 1;
}

static snode *compile_at(pixel_schema_registry *r, const pixel_value *v, sresource *res,
                         const char *ptr);

static int oom(pixel_schema_registry *r)
{
    return pixel__error_set(r->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
}

/*
 * A keyword whose value is not what it must be: the error points at the
 * bad value (/name, /name/key below it, and /idx in an array there when
 * idx >= 0) and says what it is.
 */
PIXEL_PRINTF(6, 7)
static int kw_fail(cctx *c, const char *name, const char *key, long idx, const pixel_value *bad,
                   const char *fmt, ...)
{
    char ptr[256], what[256], got[160];
    va_list ap;

    size_t o = (size_t)snprintf(ptr, sizeof(ptr), "/%s", name);
    if (key != NULL && o + 1 < sizeof(ptr)) {
        ptr[o++] = '/';
        for (const char *k = key; *k && o + 2 < sizeof(ptr); k++) { /* RFC 6901 escapes */
            if (*k == '~' || *k == '/') {
                ptr[o++] = '~';
                ptr[o++] = *k == '~' ? '0' : '1';
            } else {
                ptr[o++] = *k;
            }
        }
        ptr[o] = '\0';
    }
    if (idx >= 0 && o < sizeof(ptr)) {
        snprintf(ptr + o, sizeof(ptr) - o, "/%ld", idx);
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    pixel__schema_describe(bad, got, sizeof(got));
    return pixel__schema_fail(c->r, c->v, ptr, "%s, not %s", what, got);
}

static const pixel_value *kw(const cctx *c, const char *name)
{
    return pixel__object_getn(c->v, name, strlen(name));
}

static const char *ptr_add(pixel_arena *a, const char *base, const char *key, size_t klen)
{
    pixel_buf b = {0};
    char *out = pixel__arena_alloc(a, strlen(base) + 2 * klen + 2);
    if (!out) {
        return NULL;
    }
    PIXEL_UNUSED(b);
    size_t o = strlen(base);
    memcpy(out, base, o);
    out[o++] = '/';
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == '~' || key[i] == '/') {
            out[o++] = '~';
            out[o++] = key[i] == '~' ? '0' : '1';
        } else {
            out[o++] = key[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* A subschema at keyword/…: compiled with its indexed location or a derived one. */
static snode *sub(cctx *c, const pixel_value *v, const char *k1, const char *k2, size_t k2len)
{
    if (v->type != PIXEL_TYPE_OBJECT && v->type != PIXEL_TYPE_BOOL) {
        kw_fail(c, k1, k2 ? pixel__arena_strndup(&c->r->arena, k2, k2len) : NULL, -1, v,
                "\"%s\" must hold a schema (an object or a boolean)", k1);
        return NULL;
    }
    const char *p = ptr_add(&c->r->arena, c->in->ptr, k1, strlen(k1));
    if (p && k2) {
        p = ptr_add(&c->r->arena, p, k2, k2len);
    }
    if (!p) {
        oom(c->r);
        return NULL;
    }
    return compile_at(c->r, v, c->in->res, p);
}

static snode **sub_array(cctx *c, const pixel_value *a, const char *name, size_t *n)
{
    if (a->type != PIXEL_TYPE_ARRAY || (a->u.list.count == 0 && strcmp(name, "prefixItems") &&
                                        strcmp(name, "items"))) {
        kw_fail(c, name, NULL, -1, a, "\"%s\" must be a non-empty array of schemas", name);
        return NULL;
    }
    snode **out = pixel__arena_alloc(&c->r->arena, (a->u.list.count + 1) * sizeof(*out));
    if (!out) {
        oom(c->r);
        return NULL;
    }
    size_t i = 0;
    for (const pixel_value *e = a->u.list.head; e; e = e->next, i++) {
        char idx[24];
        int l = snprintf(idx, sizeof(idx), "%zu", i);
        out[i] = sub(c, e, name, idx, (size_t)l);
        if (!out[i]) {
            return NULL;
        }
    }
    *n = i;
    return out;
}

static int need_count(cctx *c, const pixel_value *v, const char *name, uint64_t *out)
{
    if (v->type == PIXEL_TYPE_INT && v->u.i >= 0) {
        *out = (uint64_t)v->u.i;
        return 0;
    }
    if (v->type == PIXEL_TYPE_NUMBER && v->u.num.d >= 0 && v->u.num.d == floor(v->u.num.d)) {
        *out = v->u.num.d > 1.8e19 ? UINT64_MAX : (uint64_t)v->u.num.d;
        return 0;
    }
    return kw_fail(c, name, NULL, -1, v, "\"%s\" must be a non-negative integer", name);
}

static int type_bit(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int bit;
    } t[] = {{"null", ST_NULL},     {"boolean", ST_BOOL}, {"integer", ST_INT}, {"number", ST_NUM},
             {"string", ST_STR},    {"array", ST_ARR},    {"object", ST_OBJ}};
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(t); i++) {
        if (strlen(t[i].name) == n && memcmp(t[i].name, s, n) == 0) {
            return t[i].bit;
        }
    }
    return 0;
}

static int compile_type(cctx *c, const pixel_value *t, sop *op)
{
    op->kind = OP_TYPE;
    op->u.types = 0;
    if (t->type == PIXEL_TYPE_STRING) {
        op->u.types = (unsigned)type_bit(t->u.str.s, t->u.str.len);
        if (op->u.types) {
            return 0;
        }
    } else if (t->type == PIXEL_TYPE_ARRAY) {
        size_t i = 0;
        for (const pixel_value *e = t->u.list.head; e; e = e->next, i++) {
            int b = e->type == PIXEL_TYPE_STRING ? type_bit(e->u.str.s, e->u.str.len) : 0;
            if (!b) {
                return kw_fail(c, "type", NULL, (long)i, e,
                               "a type in \"type\" must be one of null, boolean, integer, number, "
                               "string, array, object");
            }
            op->u.types |= (unsigned)b;
        }
        return 0;
    }
    return kw_fail(c, "type", NULL, -1, t,
                   "\"type\" must be one of null, boolean, integer, number, string, array, "
                   "object or an array of them");
}

static int compile_enum(cctx *c, const pixel_value *e, sop *op)
{
    if (e->type != PIXEL_TYPE_ARRAY) {
        return kw_fail(c, "enum", NULL, -1, e, "\"enum\" must be an array");
    }
    op->kind = OP_ENUM;
    size_t n = e->u.list.count;
    op->u.en.n = n;
    op->u.en.values = pixel__arena_alloc(&c->r->arena, (n + 1) * sizeof(*op->u.en.values));
    if (!op->u.en.values) {
        return oom(c->r);
    }
    bool all_str = n > 0;
    size_t i = 0;
    for (const pixel_value *m = e->u.list.head; m; m = m->next) {
        op->u.en.values[i++] = m;
        all_str = all_str && m->type == PIXEL_TYPE_STRING;
    }
    op->u.en.all_strings = all_str;
    if (op->u.en.all_strings) {
        /* enum of strings: a set, so a lookup is one hash */
        const char **keys = pixel__malloc(n * sizeof(*keys));
        size_t *lens = pixel__malloc(n * sizeof(*lens));
        int rc = keys && lens ? 0 : -1;
        for (size_t k = 0; rc == 0 && k < n; k++) {
            keys[k] = op->u.en.values[k]->u.str.s;
            lens[k] = op->u.en.values[k]->u.str.len;
        }
        if (rc == 0) {
            rc = pixel__strtab_build(&op->u.en.strs, &c->r->arena, keys, lens, n, NULL);
        }
        pixel__free(keys);
        pixel__free(lens);
        if (rc < 0) {
            return oom(c->r);
        }
    }
    return 0;
}

static int add_regex(pixel_schema_registry *r, sregex *re)
{
    if (r->nregex == r->capregex) {
        size_t cap = r->capregex ? r->capregex * 2 : 16;
        pcre2_code **n = pixel__realloc(r->regexes, cap * sizeof(*n));
        if (!n) {
            return oom(r);
        }
        r->regexes = n;
        r->capregex = cap;
    }
    r->regexes[r->nregex++] = re->code;
    return 0;
}

static int compile_regex(cctx *c, const pixel_value *p, sregex *re, const char *where)
{
    if (p->type != PIXEL_TYPE_STRING) {
        return pixel__schema_fail(c->r, c->v, where, "a pattern must be a string");
    }
    char why[160];
    if (pixel__regex_compile(re, &c->r->arena, p->u.str.s, p->u.str.len, why, sizeof(why)) < 0) {
        return pixel__schema_fail(c->r, c->v, where, "invalid regular expression \"%.*s\": %s",
                                  (int)(p->u.str.len > 60 ? 60 : p->u.str.len), p->u.str.s, why);
    }
    return add_regex(c->r, re);
}

/* properties + patternProperties + additionalProperties + required. */
static int compile_object(cctx *c, sop *op, const pixel_value *props, const pixel_value *pats,
                          const pixel_value *addl, const pixel_value *req)
{
    pixel_arena *a = &c->r->arena;
    sobject *o = pixel__arena_alloc(a, sizeof(*o));
    if (!o) {
        return oom(c->r);
    }
    memset(o, 0, sizeof(*o));
    o->memo_id = next_memo_id();
    op->kind = OP_OBJECT;
    op->kw = "properties";
    op->u.obj = o;
    if (props && props->type != PIXEL_TYPE_OBJECT) {
        return kw_fail(c, "properties", NULL, -1, props, "\"properties\" must be an object");
    }
    if (req && req->type != PIXEL_TYPE_ARRAY) {
        return kw_fail(c, "required", NULL, -1, req, "\"required\" must be an array");
    }
    size_t ri = 0;
    for (const pixel_value *e = req ? req->u.list.head : NULL; e; e = e->next, ri++) {
        if (e->type != PIXEL_TYPE_STRING) {
            return kw_fail(c, "required", NULL, (long)ri, e, "\"required\" must list strings");
        }
    }
    /* every name, declared or required, once: a table of them */
    size_t ndecl = props ? props->u.list.count : 0;
    o->nrequired = req ? req->u.list.count : 0;
    size_t want = ndecl + o->nrequired;
    const char **keys = pixel__malloc((want + 1) * sizeof(*keys));
    size_t *lens = pixel__malloc((want + 1) * sizeof(*lens));
    uint32_t *canon = pixel__malloc((want + 1) * sizeof(*canon));
    size_t nk = 0;
    for (const pixel_value *m = props && keys && lens ? props->u.list.head : NULL; m; m = m->next) {
        keys[nk] = m->key;
        lens[nk++] = m->klen;
    }
    for (const pixel_value *e = req && keys && lens ? req->u.list.head : NULL; e; e = e->next) {
        keys[nk] = e->u.str.s;
        lens[nk++] = e->u.str.len;
    }
    int rc = keys && lens && canon ? pixel__strtab_build(&o->names, a, keys, lens, want, canon) : -1;
    o->nprops = o->names.n;
    o->props = rc == 0 ? pixel__arena_alloc(a, (o->nprops + 1) * sizeof(*o->props)) : NULL;
    o->required = pixel__arena_alloc(a, (o->nrequired + 1) * sizeof(*o->required));
    o->required_len = pixel__arena_alloc(a, (o->nrequired + 1) * sizeof(*o->required_len));
    o->required_prop = pixel__arena_alloc(a, (o->nrequired + 1) * sizeof(*o->required_prop));
    if (!o->props || !o->required || !o->required_len || !o->required_prop) {
        pixel__free(keys);
        pixel__free(lens);
        pixel__free(canon);
        return oom(c->r);
    }
    memset(o->props, 0, (o->nprops + 1) * sizeof(*o->props));
    o->props[o->nprops].klen = SPROP_END_KLEN; /* the end (see sobject.props) */
    for (size_t k = 0; k < want; k++) {
        sprop *p = &o->props[canon[k]];
        if (!p->key) {
            p->key = p->fkey = keys[k];
            p->klen = lens[k];
            p->schema = NULL;
            p->req_bit = -1;
        }
        if (k >= ndecl) {
            size_t r = k - ndecl;
            o->required[r] = keys[k];
            o->required_len[r] = lens[k];
            o->required_prop[r] = canon[k];
            if (p->req_bit < 0) {
                p->req_bit = (int32_t)o->nreq_bits++;
                if (p->req_bit < 1024) {
                    p->req_word = (uint32_t)p->req_bit >> 6;
                    p->req_mask = 1ull << (p->req_bit & 63);
                }
            }
        }
    }
    pixel__free(keys);
    pixel__free(lens);
    o->has_props = props != NULL;
    o->has_required = req != NULL;
    nk = 0;
    for (const pixel_value *m = props ? props->u.list.head : NULL; m; m = m->next, nk++) {
        /* a name given twice in "properties": the last schema counts */
        sprop *p = &o->props[canon[nk]];
        p->schema = sub(c, m, "properties", m->key, m->klen);
        if (!p->schema) {
            pixel__free(canon);
            return -1;
        }
    }
    pixel__free(canon);
    if (pats) {
        if (pats->type != PIXEL_TYPE_OBJECT) {
            return kw_fail(c, "patternProperties", NULL, -1, pats,
                           "\"patternProperties\" must be an object");
        }
        o->has_patterns = true;
        o->npatterns = pats->u.list.count;
        o->patterns = pixel__arena_alloc(a, (o->npatterns + 1) * sizeof(*o->patterns));
        if (!o->patterns) {
            return oom(c->r);
        }
        size_t i = 0;
        for (const pixel_value *m = pats->u.list.head; m; m = m->next, i++) {
            pixel_value key = {.type = PIXEL_TYPE_STRING};
            key.u.str.s = m->key;
            key.u.str.len = m->klen;
            const char *where = ptr_add(a, "/patternProperties", m->key, m->klen);
            if (!where || compile_regex(c, &key, &o->patterns[i].re, where) < 0) {
                return -1;
            }
            o->patterns[i].schema = sub(c, m, "patternProperties", m->key, m->klen);
            if (!o->patterns[i].schema) {
                return -1;
            }
        }
    }
    if (addl) {
        o->additional = sub(c, addl, "additionalProperties", NULL, 0);
        if (!o->additional) {
            return -1;
        }
    }
    o->lookup = !o->npatterns && !o->additional && o->nprops <= (o->has_props ? 4 : 16);
    o->general = o->npatterns || o->nreq_bits > 64;
    o->req_all = o->nreq_bits >= 64 ? ~0ull : (1ull << o->nreq_bits) - 1;
    return 0;
}

static int compile_deps(cctx *c, sop *op, const pixel_value *d, const char *name, int mode)
{
    /* mode 0: dependentRequired, 1: dependentSchemas, 2: draft-07 dependencies (either) */
    if (d->type != PIXEL_TYPE_OBJECT) {
        return kw_fail(c, name, NULL, -1, d, "\"%s\" must be an object", name);
    }
    op->kind = mode == 0 ? OP_DEPREQUIRED : OP_DEPSCHEMAS;
    op->kw = name;
    op->u.dep.n = d->u.list.count;
    op->u.dep.deps = pixel__arena_alloc(&c->r->arena, (op->u.dep.n + 1) * sizeof(sdep));
    if (!op->u.dep.deps) {
        return oom(c->r);
    }
    size_t i = 0;
    for (const pixel_value *m = d->u.list.head; m; m = m->next, i++) {
        sdep *dp = &op->u.dep.deps[i];
        memset(dp, 0, sizeof(*dp));
        dp->key = m->key;
        dp->klen = m->klen;
        if (m->type == PIXEL_TYPE_ARRAY && mode != 1) {
            dp->n = m->u.list.count;
            dp->names = pixel__arena_alloc(&c->r->arena, (dp->n + 1) * sizeof(*dp->names));
            dp->lens = pixel__arena_alloc(&c->r->arena, (dp->n + 1) * sizeof(*dp->lens));
            if (!dp->names || !dp->lens) {
                return oom(c->r);
            }
            size_t j = 0;
            for (const pixel_value *e = m->u.list.head; e; e = e->next, j++) {
                if (e->type != PIXEL_TYPE_STRING) {
                    return kw_fail(c, name, pixel__arena_strndup(&c->r->arena, m->key, m->klen),
                                   (long)j, e, "\"%s\" must list strings", name);
                }
                dp->names[j] = e->u.str.s;
                dp->lens[j] = e->u.str.len;
            }
        } else if (mode != 0) {
            dp->schema = sub(c, m, name, m->key, m->klen);
            if (!dp->schema) {
                return -1;
            }
        } else {
            return kw_fail(c, name, pixel__arena_strndup(&c->r->arena, m->key, m->klen), -1, m,
                           "\"%s\" must map to arrays", name);
        }
    }
    return 0;
}

/* Resolve a reference string against the node's base URI and compile the target. */
static snode *resolve_ref(cctx *c, const pixel_value *ref, const char *name, const char **anchor)
{
    if (ref->type != PIXEL_TYPE_STRING) {
        kw_fail(c, name, NULL, -1, ref, "\"%s\" must be a string", name);
        return NULL;
    }
    char *text = pixel__arena_strndup(&c->r->arena, ref->u.str.s, ref->u.str.len);
    const char *abs = text ? pixel__uri_resolve(&c->r->arena, c->in->res->uri, text) : NULL;
    if (!abs) {
        oom(c->r);
        return NULL;
    }
    sresource *res = NULL;
    const char *ptr = "";
    const pixel_value *t = pixel__schema_lookup(c->r, abs, &res, &ptr);
    if (!t) {
        if (c->r->err && c->r->err->code) {
            return NULL; /* a load error in the referenced document */
        }
        char where[160];
        snprintf(where, sizeof(where), "/%s", name);
        pixel__schema_fail(c->r, c->v, where, "unresolvable %s \"%s\" (resolved to %s)", name,
                           text, abs);
        return NULL;
    }
    if (anchor) {
        const char *h = strchr(abs, '#');
        *anchor = (h && h[1] && h[1] != '/') ? h + 1 : NULL;
    }
    return compile_at(c->r, t, res, ptr);
}

static bool has_dynamic_anchor(const snode *n, const char *name)
{
    if (!n->src || n->src->type != PIXEL_TYPE_OBJECT) {
        return false;
    }
    const pixel_value *d = pixel__object_getn(n->src, "$dynamicAnchor", 14);
    return d && d->type == PIXEL_TYPE_STRING && d->u.str.len == strlen(name) &&
           memcmp(d->u.str.s, name, d->u.str.len) == 0;
}

/* ---- oneOf/anyOf dispatch by a const discriminator ------------------------ */

static const pixel_value *const_of(const snode *n)
{
    for (size_t i = 0; n && i < n->nops; i++) {
        if (n->ops[i].kind == OP_CONST && n->ops[i].u.value->type == PIXEL_TYPE_STRING) {
            return n->ops[i].u.value;
        }
        if (n->ops[i].kind == OP_ENUM && n->ops[i].u.en.n == 1 &&
            n->ops[i].u.en.values[0]->type == PIXEL_TYPE_STRING) {
            return n->ops[i].u.en.values[0];
        }
    }
    return NULL;
}

/* The const string that branch b requires of member `prop` (looking through $ref/allOf). */
static const pixel_value *branch_const(const snode *b, const char *prop, size_t plen, int depth)
{
    if (!b || depth > 4 || !b->ready) {
        return NULL;
    }
    for (size_t i = 0; i < b->nops; i++) {
        const sop *op = &b->ops[i];
        if (op->kind == OP_OBJECT) {
            const sobject *o = op->u.obj;
            long j = pixel__strtab_find(&o->names, prop, plen);
            const pixel_value *cv = j >= 0 ? const_of(o->props[j].schema) : NULL;
            if (cv) {
                return cv;
            }
        } else if (op->kind == OP_REF) {
            const pixel_value *cv = branch_const(op->u.schema, prop, plen, depth + 1);
            if (cv) {
                return cv;
            }
        } else if (op->kind == OP_ALLOF) {
            for (size_t k = 0; k < op->u.list.n; k++) {
                const pixel_value *cv = branch_const(op->u.list.v[k], prop, plen, depth + 1);
                if (cv) {
                    return cv;
                }
            }
        }
    }
    return NULL;
}

/* Candidate member names: the properties of b that carry a const. */
static void find_disc(pixel_schema_registry *r, sop *op, const snode *b, int depth)
{
    if (!b || depth > 4 || op->u.list.disc || !b->ready) {
        return;
    }
    for (size_t i = 0; i < b->nops && !op->u.list.disc; i++) {
        const sop *bo = &b->ops[i];
        if (bo->kind == OP_REF) {
            find_disc(r, op, bo->u.schema, depth + 1);
        } else if (bo->kind == OP_ALLOF) {
            for (size_t k = 0; k < bo->u.list.n; k++) {
                find_disc(r, op, bo->u.list.v[k], depth + 1);
            }
        } else if (bo->kind == OP_OBJECT) {
            const sobject *o = bo->u.obj;
            for (size_t j = 0; j < o->nprops && !op->u.list.disc; j++) {
                if (!const_of(o->props[j].schema)) {
                    continue;
                }
                const char *p = o->props[j].key;
                size_t pl = o->props[j].klen;
                size_t n = op->u.list.n;
                const char **vals = pixel__malloc(n * sizeof(*vals));
                size_t *lens = pixel__malloc(n * sizeof(*lens));
                bool ok = vals && lens;
                for (size_t k = 0; k < n && ok; k++) {
                    const pixel_value *cv = branch_const(op->u.list.v[k], p, pl, 0);
                    ok = cv != NULL;
                    if (ok) {
                        vals[k] = cv->u.str.s;
                        lens[k] = cv->u.str.len;
                    }
                }
                sdisc *d = ok ? pixel__arena_alloc(&r->arena, sizeof(*d)) : NULL;
                if (d && pixel__strtab_build(&d->branch, &r->arena, vals, lens, n, NULL) == 0 &&
                    d->branch.n == n) {
                    /* a discriminator only when no two branches share a value */
                    d->prop = p;
                    d->plen = pl;
                    op->u.list.disc = d;
                }
                pixel__free(vals);
                pixel__free(lens);
            }
        }
    }
}

/* ---- the node ----------------------------------------------------------------- */

static int compile_items(cctx *c, sop *ops, size_t *n)
{
    const pixel_value *items = kw(c, "items");
    const pixel_value *prefix = c->draft == SDRAFT_2020 ? kw(c, "prefixItems") : NULL;
    const pixel_value *addl = c->draft != SDRAFT_2020 ? kw(c, "additionalItems") : NULL;
    if (!items && !prefix) {
        return 0;
    }
    sop *op = &ops[(*n)++];
    op->kind = OP_ITEMS;
    op->kw = "items";
    op->u.items.rest_kw = "items";
    op->u.items.prefix_kw = c->draft == SDRAFT_2020 ? "prefixItems" : "items";
    if (prefix) {
        op->u.items.prefix = sub_array(c, prefix, "prefixItems", &op->u.items.nprefix);
        if (!op->u.items.prefix) {
            return -1;
        }
    }
    if (items && items->type == PIXEL_TYPE_ARRAY && c->draft != SDRAFT_2020) {
        op->u.items.prefix = sub_array(c, items, "items", &op->u.items.nprefix);
        if (!op->u.items.prefix) {
            return -1;
        }
        if (addl) {
            op->u.items.rest = sub(c, addl, "additionalItems", NULL, 0);
            op->u.items.rest_kw = "additionalItems";
            if (!op->u.items.rest) {
                return -1;
            }
        }
    } else if (items) {
        op->u.items.rest = sub(c, items, "items", NULL, 0);
        if (!op->u.items.rest) {
            return -1;
        }
    }
    return 0;
}

/* A condition that only tests one member against const/enum: decide it directly. */
static void if_test(sop *op)
{
    const snode *c = op->u.cond.cond;
    op->u.cond.test = NULL;
    if (!c || c->boolean || !c->ready || c->nops != 1 || c->ops[0].kind != OP_OBJECT) {
        return;
    }
    const sobject *o = c->ops[0].u.obj;
    if (!o->lookup || o->nprops != 1 || o->nrequired > 1) {
        return;
    }
    const sprop *p = &o->props[0];
    const snode *ps = p->schema;
    if (!ps || ps->boolean || !ps->ready || ps->nops != 1 ||
        (ps->ops[0].kind != OP_CONST && ps->ops[0].kind != OP_ENUM)) {
        return;
    }
    op->u.cond.test_prop = p;
    op->u.cond.test = &ps->ops[0];
    op->u.cond.test_required = o->nrequired == 1;
}

static int compile_applicators(cctx *c, sop *ops, size_t *n)
{
    static const struct {
        const char *name;
        sop_kind kind;
    } lists[] = {{"allOf", OP_ALLOF}, {"anyOf", OP_ANYOF}, {"oneOf", OP_ONEOF}};
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(lists); i++) {
        const pixel_value *l = kw(c, lists[i].name);
        if (!l) {
            continue;
        }
        sop *op = &ops[(*n)++];
        op->kind = lists[i].kind;
        op->kw = lists[i].name;
        op->u.list.disc = NULL;
        op->u.list.v = sub_array(c, l, lists[i].name, &op->u.list.n);
        if (!op->u.list.v) {
            return -1;
        }
        if (op->kind != OP_ALLOF && op->u.list.n > 1) {
            find_disc(c->r, op, op->u.list.v[0], 0);
        }
    }
    const pixel_value *v = kw(c, "not");
    if (v) {
        sop *op = &ops[(*n)++];
        op->kind = OP_NOT;
        op->kw = "not";
        if (!(op->u.schema = sub(c, v, "not", NULL, 0))) {
            return -1;
        }
    }
    v = kw(c, "if");
    if (v) {
        sop *op = &ops[(*n)++];
        op->kind = OP_IF;
        op->kw = "if";
        const pixel_value *t = kw(c, "then"), *e = kw(c, "else");
        op->u.cond.cond = sub(c, v, "if", NULL, 0);
        op->u.cond.then = t ? sub(c, t, "then", NULL, 0) : NULL;
        op->u.cond.els = e ? sub(c, e, "else", NULL, 0) : NULL;
        if (!op->u.cond.cond || (t && !op->u.cond.then) || (e && !op->u.cond.els)) {
            return -1;
        }
        if_test(op);
    }
    v = kw(c, "propertyNames");
    if (v) {
        sop *op = &ops[(*n)++];
        op->kind = OP_PROPNAMES;
        op->kw = "propertyNames";
        if (!(op->u.schema = sub(c, v, "propertyNames", NULL, 0))) {
            return -1;
        }
    }
    v = kw(c, "contains");
    if (v) {
        sop *op = &ops[(*n)++];
        op->kind = OP_CONTAINS;
        op->kw = "contains";
        op->u.contains.min = 1;
        op->u.contains.max = -1;
        if (!(op->u.contains.schema = sub(c, v, "contains", NULL, 0))) {
            return -1;
        }
        if (c->draft != SDRAFT_7 && (c->vocab & SVOCAB_VALIDATION)) {
            const pixel_value *mn = kw(c, "minContains"), *mx = kw(c, "maxContains");
            uint64_t k = 0;
            if (mn) {
                if (need_count(c, mn, "minContains", &k) < 0) {
                    return -1;
                }
                op->u.contains.min = k > INT64_MAX ? INT64_MAX : (int64_t)k;
            }
            if (mx) {
                if (need_count(c, mx, "maxContains", &k) < 0) {
                    return -1;
                }
                op->u.contains.max = k > INT64_MAX ? INT64_MAX : (int64_t)k;
            }
        }
    }
    /* draft-07's "dependencies"; later drafts split it, but keep it for compatibility */
    v = kw(c, "dependencies");
    if (v && compile_deps(c, &ops[(*n)++], v, "dependencies", 2) < 0) {
        return -1;
    }
    if (c->draft != SDRAFT_7) {
        v = kw(c, "dependentSchemas");
        if (v && compile_deps(c, &ops[(*n)++], v, "dependentSchemas", 1) < 0) {
            return -1;
        }
    }
    return 0;
}

static int compile_refs(cctx *c, sop *ops, size_t *n)
{
    const pixel_value *v = kw(c, "$ref");
    if (v) {
        sop *op = &ops[(*n)++];
        op->kind = OP_REF;
        op->kw = "$ref";
        if (!(op->u.schema = resolve_ref(c, v, "$ref", NULL))) {
            return -1;
        }
    }
    if (c->draft == SDRAFT_2020 && (v = kw(c, "$dynamicRef")) != NULL) {
        sop *op = &ops[(*n)++];
        op->kind = OP_DYNREF;
        op->kw = "$dynamicRef";
        const char *anchor = NULL;
        if (!(op->u.dyn.target = resolve_ref(c, v, "$dynamicRef", &anchor))) {
            return -1;
        }
        /* Dynamic only when the static target itself has the $dynamicAnchor. */
        op->u.dyn.anchor = NULL;
        if (anchor && has_dynamic_anchor(op->u.dyn.target, anchor)) {
            op->u.dyn.anchor = anchor;
        }
    }
    if (c->draft == SDRAFT_2019 && (v = kw(c, "$recursiveRef")) != NULL) {
        sop *op = &ops[(*n)++];
        op->kind = OP_RECREF;
        op->kw = "$recursiveRef";
        if (!(op->u.dyn.target = resolve_ref(c, v, "$recursiveRef", NULL))) {
            return -1;
        }
    }
    return 0;
}

static int compile_validation(cctx *c, sop *ops, size_t *n)
{
    static const struct {
        const char *name;
        sop_kind kind;
    } nums[] = {{"minimum", OP_MINIMUM},
                {"maximum", OP_MAXIMUM},
                {"exclusiveMinimum", OP_EXMINIMUM},
                {"exclusiveMaximum", OP_EXMAXIMUM},
                {"multipleOf", OP_MULTIPLEOF}};
    static const struct {
        const char *name;
        sop_kind kind;
    } counts[] = {{"minLength", OP_MINLENGTH}, {"maxLength", OP_MAXLENGTH},
                  {"minItems", OP_MINITEMS},   {"maxItems", OP_MAXITEMS},
                  {"minProperties", OP_MINPROPS}, {"maxProperties", OP_MAXPROPS}};
    const pixel_value *v;
    if ((v = kw(c, "const")) != NULL) {
        ops[*n].kind = OP_CONST;
        ops[*n].kw = "const";
        ops[(*n)++].u.value = v;
    }
    if ((v = kw(c, "enum")) != NULL) {
        ops[*n].kw = "enum";
        if (compile_enum(c, v, &ops[(*n)++]) < 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(nums); i++) {
        if ((v = kw(c, nums[i].name)) == NULL) {
            continue;
        }
        if (v->type != PIXEL_TYPE_INT && v->type != PIXEL_TYPE_NUMBER) {
            return kw_fail(c, nums[i].name, NULL, -1, v, "\"%s\" must be a number", nums[i].name);
        }
        if (nums[i].kind == OP_MULTIPLEOF && pixel_value_number(v) <= 0) {
            return kw_fail(c, "multipleOf", NULL, -1, v, "\"multipleOf\" must be greater than 0");
        }
        ops[*n].kind = nums[i].kind;
        ops[*n].kw = nums[i].name;
        if (nums[i].kind == OP_MULTIPLEOF) {
            /* the divisor's exact decimal form, once */
            sop *op = &ops[*n];
            i128 m;
            int e;
            op->u.mul.value = v;
            op->u.mul.exact = pixel__schema_decimal(v, &m, &e) && m <= INT64_MAX && m >= -INT64_MAX;
            op->u.mul.m = op->u.mul.exact ? (int64_t)m : 0;
            op->u.mul.e = op->u.mul.exact ? e : 0;
            (*n)++;
            continue;
        }
        ops[(*n)++].u.value = v;
    }
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(counts); i++) {
        if ((v = kw(c, counts[i].name)) == NULL) {
            continue;
        }
        ops[*n].kind = counts[i].kind;
        ops[*n].kw = counts[i].name;
        if (need_count(c, v, counts[i].name, &ops[(*n)++].u.count) < 0) {
            return -1;
        }
    }
    if ((v = kw(c, "pattern")) != NULL) {
        ops[*n].kind = OP_PATTERN;
        ops[*n].kw = "pattern";
        if (compile_regex(c, v, &ops[(*n)++].u.re, "/pattern") < 0) {
            return -1;
        }
    }
    if ((v = kw(c, "uniqueItems")) != NULL && v->type == PIXEL_TYPE_BOOL && v->u.b) {
        ops[*n].kind = OP_UNIQUE;
        ops[(*n)++].kw = "uniqueItems";
    }
    if (c->draft != SDRAFT_7 && (v = kw(c, "dependentRequired")) != NULL) {
        if (compile_deps(c, &ops[(*n)++], v, "dependentRequired", 0) < 0) {
            return -1;
        }
    }
    return 0;
}

static int compile_body(cctx *c, snode *node)
{
    sop ops[MAX_OPS];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    bool validation = (c->vocab & SVOCAB_VALIDATION) != 0;
    const pixel_value *v;
    if (c->draft == SDRAFT_7 && kw(c, "$ref")) {
        /* draft-07: $ref overrides every sibling keyword */
        if (compile_refs(c, ops, &n) < 0) {
            return -1;
        }
        goto done;
    }
    if (validation && (v = kw(c, "type")) != NULL) {
        ops[n].kw = "type";
        if (compile_type(c, v, &ops[n++]) < 0) {
            return -1;
        }
    }
    if (validation && compile_validation(c, ops, &n) < 0) {
        return -1;
    }
    if ((v = kw(c, "format")) != NULL && v->type == PIXEL_TYPE_STRING) {
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)v->u.str.len, v->u.str.s);
        int id = pixel__format_id(name);
        if (id >= 0) {
            ops[n].kind = OP_FORMAT;
            ops[n].kw = "format";
            ops[n].u.fmt.id = id;
            ops[n].u.fmt.name = pixel__arena_strndup(&c->r->arena, name, strlen(name));
            ops[n].u.fmt.trust = pixel__format_trust(id);
            ops[n++].u.fmt.assert_always = (c->vocab & SVOCAB_FORMAT_ASSERT) != 0;
        }
    }
    {
        const pixel_value *props = kw(c, "properties"), *pats = kw(c, "patternProperties");
        const pixel_value *addl = kw(c, "additionalProperties");
        const pixel_value *req = validation ? kw(c, "required") : NULL;
        if ((props || pats || addl || req) &&
            compile_object(c, &ops[n++], props, pats, addl, req) < 0) {
            return -1;
        }
    }
    if (compile_items(c, ops, &n) < 0 || compile_applicators(c, ops, &n) < 0 ||
        compile_refs(c, ops, &n) < 0) {
        return -1;
    }
    if (c->draft != SDRAFT_7 && (c->vocab & SVOCAB_UNEVALUATED)) {
        if ((v = kw(c, "unevaluatedProperties")) != NULL) {
            ops[n].kind = OP_UNEVAL_PROPS;
            ops[n].kw = "unevaluatedProperties";
            if (!(ops[n++].u.schema = sub(c, v, "unevaluatedProperties", NULL, 0))) {
                return -1;
            }
        }
        if ((v = kw(c, "unevaluatedItems")) != NULL) {
            ops[n].kind = OP_UNEVAL_ITEMS;
            ops[n].kw = "unevaluatedItems";
            if (!(ops[n++].u.schema = sub(c, v, "unevaluatedItems", NULL, 0))) {
                return -1;
            }
        }
    }
done:
    node->ops = pixel__arena_alloc(&c->r->arena, (n + 1) * sizeof(sop));
    if (!node->ops) {
        return oom(c->r);
    }
    memcpy(node->ops, ops, n * sizeof(sop));
    node->nops = n;
    return 0;
}

static snode *compile_at(pixel_schema_registry *r, const pixel_value *v, sresource *res,
                         const char *ptr)
{
    snode *node = pixel__hmap_get(&r->compiled, v);
    if (node) {
        return node;
    }
    sinfo *in = pixel__hmap_get(&r->info, v);
    if (!in) {
        /* Reached by a JSON Pointer into a place the indexer does not walk. */
        in = pixel__arena_alloc(&r->arena, sizeof(*in));
        if (!in) {
            oom(r);
            return NULL;
        }
        in->res = res;
        in->ptr = ptr;
        in->dptr = pixel__arena_printf(&r->arena, "%s%s", res->ptr, ptr);
        if (!in->dptr || pixel__hmap_put(&r->info, v, in) < 0) {
            oom(r);
            return NULL;
        }
    }
    node = pixel__arena_alloc(&r->arena, sizeof(*node));
    if (!node) {
        oom(r);
        return NULL;
    }
    memset(node, 0, sizeof(*node));
    node->src = v;
    node->res = in->res;
    node->draft = in->res->draft;
    node->loc = pixel__arena_printf(&r->arena, "%s#%s", in->res->uri, in->ptr);
    if (!node->loc || pixel__hmap_put(&r->compiled, v, node) < 0) {
        oom(r);
        return NULL;
    }
    if (v->type == PIXEL_TYPE_BOOL) {
        node->boolean = v->u.b ? 1 : 2;
        node->ready = 1;
        return node;
    }
    if (v->type != PIXEL_TYPE_OBJECT) {
        pixel__schema_fail(r, v, NULL, "a schema must be an object or a boolean");
        return NULL;
    }
    cctx c = {r, v, in, in->res->draft, in->res->vocab};
    if (compile_body(&c, node) < 0) {
        return NULL;
    }
    node->ready = 1;
    return node;
}

snode *pixel__schema_compile_node(pixel_schema_registry *r, const pixel_value *v)
{
    sinfo *in = pixel__hmap_get(&r->info, v);
    if (!in) {
        return NULL;
    }
    return compile_at(r, v, in->res, in->ptr);
}

/* ---- reference cycles that cannot terminate ----------------------------------- */

/*
 * A dynamic reference whose target cannot depend on the path taken: not
 * bookended ($dynamicRef to a target without the $dynamicAnchor; a
 * $recursiveRef to a resource without "$recursiveAnchor": true), or the only
 * anchor of its name in the registry (so that every dynamic scope resolves it
 * to the static target).  Documents added later can make it dynamic again:
 * the evaluator then catches a cycle on its own.
 */
static bool dyn_static(const pixel_schema_registry *r, const sop *op)
{
    size_t n = 0;
    if (op->kind == OP_RECREF) {
        if (!op->u.dyn.target->res->recursive_anchor) {
            return true;
        }
        for (size_t i = 0; i < r->resources.cap && n < 2; i++) {
            const sresource *res = r->resources.e[i].val;
            n += r->resources.e[i].key && res->recursive_anchor;
        }
        return n == 1;
    }
    if (!op->u.dyn.anchor) {
        return true;
    }
    for (size_t i = 0; i < r->dynanchors.cap && n < 2; i++) {
        const char *key = r->dynanchors.e[i].key;
        const char *hash = key ? strchr(key, '#') : NULL;
        n += hash && strcmp(hash + 1, op->u.dyn.anchor) == 0;
    }
    return n == 1;
}

/*
 * An in-place cycle ($ref, allOf, anyOf, oneOf, not, if/then/else,
 * dependentSchemas, and dynamic references that resolve statically)
 * evaluates the same instance forever.  Other dynamic references are left
 * out: their target depends on the path taken.
 */
static int cycle_dfs(pixel_schema_registry *r, snode *n, hmap *state, int depth)
{
    if (!n || n->boolean) {
        return 0;
    }
    uintptr_t s = (uintptr_t)pixel__hmap_get(state, n);
    if (s == 2) {
        return 0;
    }
    if (s == 1) {
        return pixel__schema_fail(r, n->src, NULL,
                                  "reference cycle that never advances in the instance "
                                  "(it would recurse forever) at %s",
                                  n->loc);
    }
    if (depth > 10000 || pixel__hmap_put(state, n, (void *)1) < 0) {
        return oom(r);
    }
    for (size_t i = 0; i < n->nops; i++) {
        const sop *op = &n->ops[i];
        int rc = 0;
        switch (op->kind) {
            case OP_REF:
            case OP_NOT:
                rc = cycle_dfs(r, op->u.schema, state, depth + 1);
                break;
            case OP_DYNREF:
            case OP_RECREF:
                if (dyn_static(r, op)) {
                    rc = cycle_dfs(r, op->u.dyn.target, state, depth + 1);
                }
                break;
            case OP_ALLOF:
            case OP_ANYOF:
            case OP_ONEOF:
                for (size_t k = 0; k < op->u.list.n && rc == 0; k++) {
                    rc = cycle_dfs(r, op->u.list.v[k], state, depth + 1);
                }
                break;
            case OP_IF:
                rc = cycle_dfs(r, op->u.cond.cond, state, depth + 1);
                if (rc == 0) {
                    rc = cycle_dfs(r, op->u.cond.then, state, depth + 1);
                }
                if (rc == 0) {
                    rc = cycle_dfs(r, op->u.cond.els, state, depth + 1);
                }
                break;
            case OP_DEPSCHEMAS:
                for (size_t k = 0; k < op->u.dep.n && rc == 0; k++) {
                    rc = cycle_dfs(r, op->u.dep.deps[k].schema, state, depth + 1);
                }
                break;
            default:
                break;
        }
        if (rc < 0) {
            return rc;
        }
    }
    return pixel__hmap_put(state, n, (void *)2) < 0 ? oom(r) : 0;
}

int pixel__schema_check_cycles(pixel_schema_registry *r, snode *root)
{
    hmap state = {0};
    /* Every compiled node: a cycle anywhere in the graph is reachable from some entry. */
    int rc = cycle_dfs(r, root, &state, 0);
    for (size_t i = 0; rc == 0 && i < r->compiled.cap; i++) {
        if (r->compiled.e[i].key) {
            rc = cycle_dfs(r, r->compiled.e[i].val, &state, 0);
        }
    }
    pixel__hmap_free(&state);
    return rc;
}

/* ---- unevaluatedProperties with a static answer ------------------------------- */

/*
 * Collect the property names a node evaluates unconditionally: its own
 * "properties" and those of allOf branches and $ref targets.  Returns false
 * when something else could evaluate members (patternProperties,
 * additionalProperties, anyOf/oneOf/if, dependentSchemas, dynamic refs, a
 * nested unevaluatedProperties): then the run-time walk stays.
 */
static bool static_names(const snode *n, hmap *seen, const sobject **objs, size_t *nobjs,
                         size_t max, int depth)
{
    if (!n || depth > 64) {
        return false;
    }
    if (n->boolean) {
        return true; /* true and false evaluate no member by name */
    }
    if (pixel__hmap_get(seen, n)) {
        return true;
    }
    if (pixel__hmap_put(seen, n, (void *)1) < 0) {
        return false;
    }
    for (size_t i = 0; i < n->nops; i++) {
        const sop *op = &n->ops[i];
        switch (op->kind) {
            case OP_OBJECT:
                if (op->u.obj->npatterns || op->u.obj->additional || *nobjs == max) {
                    return false;
                }
                objs[(*nobjs)++] = op->u.obj;
                break;
            case OP_REF:
                if (!static_names(op->u.schema, seen, objs, nobjs, max, depth + 1)) {
                    return false;
                }
                break;
            case OP_ALLOF:
                for (size_t k = 0; k < op->u.list.n; k++) {
                    if (!static_names(op->u.list.v[k], seen, objs, nobjs, max, depth + 1)) {
                        return false;
                    }
                }
                break;
            case OP_ANYOF:
            case OP_ONEOF:
            case OP_IF:
            case OP_DEPSCHEMAS:
            case OP_DYNREF:
            case OP_RECREF:
            case OP_UNEVAL_PROPS:
                return false;
            default:
                break;
        }
    }
    return true;
}

static int static_uneval(pixel_schema_registry *r, snode *n, sop *op)
{
    const sobject *objs[64];
    size_t nobjs = 0, total = 0;
    hmap seen = {0};
    /* the node itself, minus this keyword */
    bool ok = true;
    for (size_t i = 0; ok && i < n->nops; i++) {
        const sop *o = &n->ops[i];
        if (o == op) {
            continue;
        }
        if (o->kind == OP_OBJECT) {
            ok = !o->u.obj->npatterns && !o->u.obj->additional && nobjs < 64;
            if (ok) {
                objs[nobjs++] = o->u.obj;
            }
        } else if (o->kind == OP_REF) {
            ok = static_names(o->u.schema, &seen, objs, &nobjs, 64, 0);
        } else if (o->kind == OP_ALLOF) {
            for (size_t k = 0; ok && k < o->u.list.n; k++) {
                ok = static_names(o->u.list.v[k], &seen, objs, &nobjs, 64, 0);
            }
        } else if (o->kind == OP_ANYOF || o->kind == OP_ONEOF || o->kind == OP_IF ||
                   o->kind == OP_DEPSCHEMAS || o->kind == OP_DYNREF || o->kind == OP_RECREF) {
            ok = false;
        }
    }
    pixel__hmap_free(&seen);
    if (!ok) {
        return 0;
    }
    for (size_t i = 0; i < nobjs; i++) {
        total += objs[i]->nprops;
    }
    const char **keys = pixel__malloc((total + 1) * sizeof(*keys));
    size_t *lens = pixel__malloc((total + 1) * sizeof(*lens));
    size_t nk = 0;
    for (size_t i = 0; keys && lens && i < nobjs; i++) {
        for (size_t k = 0; k < objs[i]->nprops; k++) {
            const sprop *p = &objs[i]->props[k];
            if (p->schema) { /* a name only "required" does not evaluate */
                keys[nk] = p->key;
                lens[nk++] = p->klen;
            }
        }
    }
    /* the walked object with the most names, and the rest of the set as extra names */
    const sobject *main = NULL;
    for (size_t i = 0; i < nobjs; i++) {
        bool all_schemas = true; /* no name only "required" mentions */
        for (size_t k = 0; k < objs[i]->nprops && all_schemas; k++) {
            all_schemas = objs[i]->props[k].schema != NULL;
        }
        if (all_schemas && !objs[i]->lookup && (!main || objs[i]->nprops > main->nprops)) {
            main = objs[i];
        }
    }
    scover cv = {.main = main};
    for (size_t i = 0; main && i < nk; i++) {
        if (pixel__strtab_find(&main->names, keys[i], lens[i]) >= 0) {
            continue; /* main declares it */
        }
        bool dup = false;
        for (size_t e = 0; e < cv.nextra && !dup; e++) {
            dup = cv.extra_len[e] == lens[i] && memcmp(cv.extra[e], keys[i], lens[i]) == 0;
        }
        if (dup) {
            continue;
        }
        if (cv.nextra == 8) {
            main = NULL; /* too many: the per-member lookup stays */
            break;
        }
        cv.extra[cv.nextra] = keys[i];
        cv.extra_len[cv.nextra++] = lens[i];
    }
    op->u.uneval.cover = NULL;
    if (main) {
        scover *c = pixel__arena_alloc(&r->arena, sizeof(*c));
        if (!c) {
            pixel__free(keys);
            pixel__free(lens);
            return oom(r);
        }
        *c = cv;
        ((sobject *)main)->cover = true; /* the registry's own, compiled here */
        op->u.uneval.cover = c;
    }
    int rc = keys && lens ? pixel__strtab_build(&op->u.uneval.names, &r->arena, keys, lens, nk, NULL)
                          : -1;
    pixel__free(keys);
    pixel__free(lens);
    if (rc < 0) {
        return oom(r);
    }
    op->u.uneval.static_names = true;
    return 0;
}

int pixel__schema_static_uneval(pixel_schema_registry *r)
{
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = r->compiled.e[i].key ? r->compiled.e[i].val : NULL;
        for (size_t k = 0; n && k < n->nops; k++) {
            sop *op = &n->ops[k];
            if (op->kind == OP_UNEVAL_PROPS && !op->u.uneval.static_names &&
                static_uneval(r, n, op) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* ---- which nodes the boolean pass evaluates ------------------------------------- */

static bool op_needs_scope(const sop *op)
{
    return op->kind == OP_DYNREF || op->kind == OP_RECREF || op->kind == OP_UNEVAL_ITEMS ||
           (op->kind == OP_UNEVAL_PROPS && !op->u.uneval.static_names);
}

/* Every subschema an operation applies, quick or not: false when one is not. */
static bool children_quick(const sop *op)
{
#define Q(node) ((node) == NULL || (node)->quick)
    switch (op->kind) {
        case OP_OBJECT: {
            const sobject *o = op->u.obj;
            for (size_t i = 0; i < o->nprops; i++) {
                if (!Q(o->props[i].schema)) {
                    return false;
                }
            }
            for (size_t i = 0; i < o->npatterns; i++) {
                if (!Q(o->patterns[i].schema)) {
                    return false;
                }
            }
            return Q(o->additional);
        }
        case OP_DEPSCHEMAS:
        case OP_DEPREQUIRED:
            for (size_t i = 0; i < op->u.dep.n; i++) {
                if (!Q(op->u.dep.deps[i].schema)) {
                    return false;
                }
            }
            return true;
        case OP_PROPNAMES:
        case OP_NOT:
        case OP_REF:
        case OP_UNEVAL_PROPS:
        case OP_UNEVAL_ITEMS:
            return Q(op->u.schema);
        case OP_ITEMS:
            for (size_t i = 0; i < op->u.items.nprefix; i++) {
                if (!Q(op->u.items.prefix[i])) {
                    return false;
                }
            }
            return Q(op->u.items.rest);
        case OP_CONTAINS:
            return Q(op->u.contains.schema);
        case OP_ALLOF:
        case OP_ANYOF:
        case OP_ONEOF:
            for (size_t i = 0; i < op->u.list.n; i++) {
                if (!Q(op->u.list.v[i])) {
                    return false;
                }
            }
            return true;
        case OP_IF:
            return Q(op->u.cond.cond) && Q(op->u.cond.then) && Q(op->u.cond.els);
        case OP_DYNREF:
        case OP_RECREF:
            return Q(op->u.dyn.target);
        default:
            return true;
    }
#undef Q
}

/* The straight-line form of a node of one-value keywords, or NULL. */
static sleaf *make_leaf(pixel_schema_registry *r, const snode *n)
{
    sleaf l;
    memset(&l, 0, sizeof(l));
    l.types = ST_ALL;
    l.maxlen = UINT64_MAX;
    l.int_range = true;
    l.imin = INT64_MIN;
    l.imax = INT64_MAX;
    for (size_t i = 0; i < n->nops; i++) {
        const sop *op = &n->ops[i];
        switch (op->kind) {
            case OP_TYPE:
                l.types = op->u.types;
                break;
            case OP_CONST:
            case OP_ENUM:
                if (l.eq) {
                    return NULL;
                }
                l.eq = op;
                break;
            case OP_MINIMUM:
            case OP_MAXIMUM:
            case OP_EXMINIMUM:
            case OP_EXMAXIMUM:
            case OP_MULTIPLEOF: {
                if (!l.num) {
                    l.num = op;
                } else if (l.num + l.nnum != op) {
                    return NULL; /* not contiguous: cannot happen with the fixed order */
                }
                l.nnum++;
                const pixel_value *b = op->u.value;
                bool in = op->kind == OP_MINIMUM || op->kind == OP_MAXIMUM;
                if (op->kind == OP_MULTIPLEOF || b->type != PIXEL_TYPE_INT ||
                    (op->kind == OP_EXMINIMUM && b->u.i == INT64_MAX) ||
                    (op->kind == OP_EXMAXIMUM && b->u.i == INT64_MIN)) {
                    l.int_range = false;
                } else if (op->kind == OP_MINIMUM || op->kind == OP_EXMINIMUM) {
                    int64_t lo = in ? b->u.i : b->u.i + 1;
                    l.imin = lo > l.imin ? lo : l.imin;
                } else {
                    int64_t hi = in ? b->u.i : b->u.i - 1;
                    l.imax = hi < l.imax ? hi : l.imax;
                }
                break;
            }
            case OP_MINLENGTH:
                l.minlen = op->u.count;
                break;
            case OP_MAXLENGTH:
                l.maxlen = op->u.count;
                break;
            case OP_PATTERN:
                l.pattern = &op->u.re;
                break;
            case OP_FORMAT:
                l.format = op;
                break;
            case OP_ANYOF:
                /* "anyOf": [{"format": ...}, ...], e.g. ipv4 or ipv6 */
                if (l.anyfmt || op->u.list.n == 0 || op->u.list.n > 8) {
                    return NULL;
                }
                for (size_t k = 0; k < op->u.list.n; k++) {
                    const snode *b = op->u.list.v[k];
                    if (b->boolean || b->nops != 1 || b->ops[0].kind != OP_FORMAT) {
                        return NULL;
                    }
                }
                l.anyfmt = op;
                break;
            default:
                return NULL;
        }
    }
    l.num_fast = l.nnum > 0;
    l.dlo = -INFINITY;
    l.dhi = INFINITY;
    for (size_t i = 0; i < l.nnum && l.num_fast; i++) {
        const sop *op = &l.num[i];
        const pixel_value *b = op->u.value;
        if (op->kind == OP_MULTIPLEOF) {
            l.num_fast = !l.mul; /* quick_num() checks one */
            l.mul = op;
            continue;
        }
        if ((op->kind != OP_MINIMUM && op->kind != OP_MAXIMUM) || b->type != PIXEL_TYPE_INT ||
            b->u.i < -(1ll << 53) || b->u.i > (1ll << 53)) {
            l.num_fast = false;
        } else if (op->kind == OP_MINIMUM) {
            l.dlo = (double)b->u.i > l.dlo ? (double)b->u.i : l.dlo;
        } else {
            l.dhi = (double)b->u.i < l.dhi ? (double)b->u.i : l.dhi;
        }
    }
    l.flo = l.minlen <= UINT64_MAX / 4 ? 4 * l.minlen : UINT64_MAX;
    l.fspan = l.flo <= l.maxlen ? l.maxlen - l.flo : 0;
    if (l.flo > l.maxlen) {
        l.flo = UINT64_MAX; /* len - flo is len + 1: never at most 0 */
    }
    sleaf *out = pixel__arena_alloc(&r->arena, sizeof(*out));
    if (out) {
        *out = l;
    }
    return out;
}

/* The if of an allOf branch that is only a member test (see sifgroup), or NULL. */
static const sop *branch_if(const snode *b)
{
    while (b && b->alias) {
        b = b->alias;
    }
    if (!b || b->boolean || b->nops != 1 || b->ops[0].kind != OP_IF || !b->ops[0].u.cond.test) {
        return NULL;
    }
    const sop *t = b->ops[0].u.cond.test;
    if (t->kind == OP_CONST ? t->u.value->type != PIXEL_TYPE_STRING : !t->u.en.all_strings) {
        return NULL;
    }
    return &b->ops[0];
}

static sifgroup *make_ifgroup(pixel_schema_registry *r, const sop *all)
{
    size_t n = all->u.list.n, nvals = 0;
    if (n < 2 || n > 64) {
        return NULL;
    }
    const sprop *p = NULL;
    for (size_t i = 0; i < n; i++) {
        const sop *c = branch_if(all->u.list.v[i]);
        if (!c || (p && !(c->u.cond.test_prop->klen == p->klen &&
                          memcmp(c->u.cond.test_prop->key, p->key, p->klen) == 0))) {
            return NULL;
        }
        p = c->u.cond.test_prop;
        const sop *t = c->u.cond.test;
        nvals += t->kind == OP_CONST ? 1 : t->u.en.n;
    }
    pixel_arena *a = &r->arena;
    sifgroup *g = pixel__arena_alloc(a, sizeof(*g));
    const char **keys = pixel__malloc((nvals + 1) * sizeof(*keys));
    size_t *lens = pixel__malloc((nvals + 1) * sizeof(*lens));
    size_t *branch = pixel__malloc((nvals + 1) * sizeof(*branch));
    uint32_t *canon = pixel__malloc((nvals + 1) * sizeof(*canon));
    bool ok = g && keys && lens && branch && canon;
    if (ok) {
        memset(g, 0, sizeof(*g));
        g->prop = p->key;
        g->plen = p->klen;
        g->then = pixel__arena_alloc(a, n * sizeof(*g->then));
        g->els = pixel__arena_alloc(a, n * sizeof(*g->els));
        ok = g->then && g->els;
    }
    size_t k = 0;
    for (size_t i = 0; ok && i < n; i++) {
        const sop *c = branch_if(all->u.list.v[i]);
        const sop *t = c->u.cond.test;
        g->then[i] = c->u.cond.then;
        g->els[i] = c->u.cond.els;
        if (!c->u.cond.test_required) {
            g->absent |= 1ull << i;
        }
        size_t nv = t->kind == OP_CONST ? 1 : t->u.en.n;
        for (size_t j = 0; j < nv; j++, k++) {
            const pixel_value *sv = t->kind == OP_CONST ? t->u.value : t->u.en.values[j];
            keys[k] = sv->u.str.s;
            lens[k] = sv->u.str.len;
            branch[k] = i;
        }
    }
    ok = ok && pixel__strtab_build(&g->values, a, keys, lens, nvals, canon) == 0;
    if (ok) {
        g->masks = pixel__arena_alloc(a, (g->values.n + 1) * sizeof(*g->masks));
        ok = g->masks != NULL;
    }
    if (ok) {
        memset(g->masks, 0, (g->values.n + 1) * sizeof(*g->masks));
        for (size_t j = 0; j < nvals; j++) {
            g->masks[canon[j]] |= 1ull << branch[j];
        }
    }
    pixel__free(keys);
    pixel__free(lens);
    pixel__free(branch);
    pixel__free(canon);
    return ok ? g : NULL;
}

/* How the boolean pass checks a member named like p, whose schema is t (past $ref-only
   nodes; NULL when p is only required).  t's shortcuts are final here. */
static void prop_kind(sprop *p, const snode *t)
{
    const sleaf *l = t ? t->leaf : NULL;
    /* no string keyword besides the enum or const */
    bool bare_string = l && l->minlen == 0 && l->maxlen == UINT64_MAX && !l->pattern &&
                       !l->format && !l->anyfmt;
    p->qt = t;
    if (!t) {
        p->qk = SQK_NONE;
    } else if (l && l->types == ST_STR && !l->eq && !l->format && !l->anyfmt &&
               (!l->pattern || l->pattern->prog)) {
        p->qk = l->pattern ? SQK_PAT : SQK_STR;
        p->qt = l;
    } else if (l && l->types == ST_STR && !l->eq && l->format && !l->pattern && !l->anyfmt) {
        p->qk = SQK_FMT;
        p->qt = l;
    } else if (l && (l->types & (ST_INT | ST_NUM)) && !l->eq && l->int_range) {
        p->qk = SQK_INT;
        p->qt = l;
    } else if (l && !l->eq && l->num_fast && !(l->types & ~(ST_INT | ST_NUM))) {
        p->qk = SQK_NUM;
        p->qt = l;
    } else if (l && l->eq && l->eq->kind == OP_ENUM && l->eq->u.en.all_strings &&
               (l->types & ST_STR) && bare_string) {
        p->qk = SQK_ENUM;
        p->qt = l->eq;
    } else if (l && l->eq && l->eq->kind == OP_CONST && l->types == ST_ALL && !l->nnum &&
               bare_string) {
        p->qk = SQK_CONST;
        p->qt = l->eq->u.value;
    } else if (l) {
        p->qk = SQK_LEAF;
        p->qt = l;
    } else if (!t->boolean && t->types == ST_OBJ && t->nops == (size_t)t->skip + 1 &&
               t->ops[t->skip].kind == OP_OBJECT) {
        const sobject *o = t->ops[t->skip].u.obj;
        p->qk = o->general || o->lookup ? SQK_OBJX : SQK_OBJ;
        p->qt = o;
    } else {
        p->qk = SQK_NODE;
    }
}

/* The leaf of n past $ref-only nodes, or NULL. */
static const sleaf *leaf_of(const snode *n)
{
    while (n && n->alias) {
        n = n->alias;
    }
    return n && !n->boolean ? n->leaf : NULL;
}

/* Whether an object member whose sobject is o is walked by quick_walk() (see SQK_WALK). */
static bool walk_apart(const sobject *o)
{
    return !o->general && !o->lookup && !o->cover && !o->merged && !o->npatterns && o->nprops;
}

/* Whether l is absent or allows strings and has only length bounds and a one-pass
   pattern for them (see smap.one_pass). */
static bool simple_string_leaf(const sleaf *l)
{
    return !l || ((l->types & ST_STR) && !l->eq && !l->format && !l->anyfmt &&
                  (!l->pattern || l->pattern->prog));
}

/* Makes p (SQK_NODE, its schema t past $ref-only nodes) an SQK_MAP when t has that shape
   (see smap). */
static void make_map(pixel_schema_registry *r, sprop *p, const snode *t)
{
    if (t->boolean || t->leaf || t->alias || t->flat || t->route || t->types != ST_OBJ ||
        t->skip != 1) {
        return;
    }
    smap m = {.minp = 0, .maxp = UINT64_MAX};
    bool names = false, values = false;
    for (size_t k = t->skip; k < t->nops; k++) {
        const sop *op = &t->ops[k];
        switch (op->kind) {
            case OP_MINPROPS:
            case OP_MAXPROPS:
                if (names || values) {
                    return; /* the counts first */
                }
                if (op->kind == OP_MINPROPS) {
                    m.minp = op->u.count;
                } else {
                    m.maxp = op->u.count;
                }
                break;
            case OP_PROPNAMES:
                if (names || !(m.names = leaf_of(op->u.schema))) {
                    return;
                }
                names = true;
                m.names_first = !values;
                break;
            case OP_OBJECT: {
                const sobject *o = op->u.obj;
                if (values || o->nprops || o->npatterns || o->general || o->cover ||
                    !o->additional || !(m.values = leaf_of(o->additional))) {
                    return;
                }
                values = true;
                break;
            }
            default:
                return;
        }
    }
    m.one_pass = simple_string_leaf(m.names) && simple_string_leaf(m.values);
    smap *mp = pixel__arena_alloc(&r->arena, sizeof(*mp));
    if (mp) {
        *mp = m;
        p->qk = SQK_MAP;
        p->qt = mp;
    }
}

/*
 * The sflat of n, or NULL: n is "properties"/"required" at most, one allOf of one branch
 * that is only an object schema (past $ref-only nodes; the envelope an event schema
 * extends), and "unevaluatedProperties" with a boolean schema whose static name set
 * has that object as its cover's main (so the names that evaluate are both objects'
 * names with a schema).  Both objects' prop kinds are final here.
 */
static sflat *make_flat(pixel_schema_registry *r, const snode *n)
{
    const sobject *own = NULL, *outer = NULL;
    const snode *inner = NULL, *rest = NULL;
    const scover *cover = NULL;
    for (size_t k = n->skip; k < n->nops; k++) {
        const sop *op = &n->ops[k];
        if (op->kind == OP_OBJECT && !own) {
            own = op->u.obj;
            if (own->npatterns || own->additional || own->general) {
                return NULL;
            }
        } else if (op->kind == OP_ALLOF && !inner && op->u.list.n == 1 && !op->u.list.ifs) {
            inner = op->u.list.v[0];
            while (inner && inner->alias) {
                inner = inner->alias;
            }
        } else if (op->kind == OP_UNEVAL_PROPS && !rest && op->u.uneval.static_names &&
                   op->u.uneval.cover) {
            rest = op->u.schema;
            cover = op->u.uneval.cover;
        } else {
            return NULL;
        }
    }
    if (!inner || !rest || !rest->boolean || !inner->quick || inner->boolean || inner->leaf ||
        inner->alias || inner->nops != (size_t)inner->skip + 1 ||
        inner->ops[inner->skip].kind != OP_OBJECT) {
        return NULL;
    }
    outer = inner->ops[inner->skip].u.obj;
    if (cover->main != outer || outer->general || outer->npatterns || outer->additional ||
        (own && own->lookup && own->nprops > 32)) {
        return NULL;
    }
    size_t nown = own ? own->nprops : 0, max = outer->nprops + nown;
    pixel_arena *a = &r->arena;
    sflat *f = pixel__arena_alloc(a, sizeof(*f));
    sobject *o = pixel__arena_alloc(a, sizeof(*o));
    sprop *props = pixel__arena_alloc(a, (max + 1) * sizeof(*props));
    smerged *g = pixel__arena_alloc(a, (max + 1) * sizeof(*g));
    const char **keys = pixel__malloc((max + 1) * sizeof(*keys));
    size_t *lens = pixel__malloc((max + 1) * sizeof(*lens));
    bool ok = f && o && props && g && keys && lens;
    size_t np = 0, ng = 0, nreq = 0;
    /* the outer object's names in its order (members tend to come that way), then the
       names only the node's own properties declare */
    for (size_t i = 0; ok && i < max; i++) {
        bool from_outer = i < outer->nprops;
        const sprop *src = from_outer ? &outer->props[i] : &own->props[i - outer->nprops];
        long j = own && from_outer ? pixel__strtab_find(&own->names, src->key, src->klen) : -1;
        const sprop *mine = from_outer ? (j >= 0 ? &own->props[j] : NULL) : src;
        if (!from_outer && pixel__strtab_find(&outer->names, src->key, src->klen) >= 0) {
            continue; /* merged above */
        }
        sprop *p = &props[np];
        *p = from_outer
                 ? *src
                 : (sprop){.key = src->key, .fkey = src->key, .klen = src->klen, .qk = SQK_NONE};
        bool required = src->req_bit >= 0 || (mine && mine->req_bit >= 0);
        p->alt = NULL; /* never a property of the outer object's */
        p->req_bit = -1;
        p->req_word = 0;
        p->req_mask = 0;
        if (required) {
            if (nreq == 64) {
                ok = false;
                break;
            }
            p->req_bit = (int32_t)nreq;
            p->req_mask = 1ull << nreq++;
        }
        if (mine && mine->schema) {
            smerged *m = &g[ng++];
            m->outer = from_outer ? src : NULL;
            m->own = mine;
            m->bit = own->lookup ? 1u << (mine - own->props) : 0;
            m->first_only = own->lookup;
            m->outer_implied = false;
            if (from_outer && mine->qk == SQK_CONST && src->qk == SQK_ENUM) {
                const pixel_value *c = mine->qt;
                const sop *e = src->qt;
                m->outer_implied = c->type == PIXEL_TYPE_STRING && e->u.en.all_strings &&
                                   pixel__strtab_find(&e->u.en.strs, c->u.str.s, c->u.str.len) >= 0;
            }
            p->schema = from_outer ? p->schema : mine->schema;
            p->leaf = NULL;
            p->qk = SQK_MERGED;
            p->qt = m;
        }
        keys[np] = p->key;
        lens[np++] = p->klen;
    }
    if (ok) {
        memset(o, 0, sizeof(*o));
        o->memo_id = next_memo_id();
        props[np] = (sprop){.klen = SPROP_END_KLEN, .req_bit = -1}; /* the end */
        o->props = props;
        o->nprops = np;
        o->additional = (snode *)rest;
        o->nreq_bits = nreq;
        o->req_all = nreq >= 64 ? ~0ull : (1ull << nreq) - 1;
        o->has_props = true;
        o->merged = true;
        ok = pixel__strtab_build(&o->names, a, keys, lens, np, NULL) == 0 && o->names.n == np;
    }
    pixel__free(keys);
    pixel__free(lens);
    if (!ok) {
        return NULL;
    }
    f->inner = inner;
    f->obj = o;
    return f;
}

/* The sroute of n, or NULL (after every node it reaches has its sflat, if any). */
static sroute *make_route(pixel_schema_registry *r, const snode *n)
{
    if (n->flat || n->nops != (size_t)n->skip + 1 || !(n->types & ST_OBJ)) {
        return NULL;
    }
    const sop *op = &n->ops[n->skip];
    if ((op->kind != OP_ONEOF && op->kind != OP_ANYOF) || !op->u.list.disc) {
        return NULL;
    }
    sroute *rt = pixel__arena_alloc(&r->arena, sizeof(*rt));
    const sflat **flat = pixel__arena_alloc(&r->arena, op->u.list.n * sizeof(*flat));
    if (!rt || !flat) {
        return NULL;
    }
    bool any = false;
    for (size_t k = 0; k < op->u.list.n; k++) {
        const snode *t = op->u.list.v[k];
        while (t->alias) {
            t = t->alias;
        }
        flat[k] = NULL;
        if (t->quick && !t->boolean && !t->leaf && t->flat && (t->types & ST_OBJ) &&
            (t->flat->inner->types & ST_OBJ)) {
            flat[k] = t->flat;
            any = true;
        }
    }
    if (!any) {
        return NULL;
    }
    rt->op = op;
    rt->flat = flat;
    return rt;
}

/* The compiled nodes a mark_quick pass has not seen yet. */
static snode *fresh(const pixel_schema_registry *r, size_t i)
{
    snode *n = r->compiled.e[i].key ? r->compiled.e[i].val : NULL;
    return n && !n->marked ? n : NULL;
}

void pixel__schema_mark_quick(pixel_schema_registry *r)
{
    /*
     * Only nodes compiled since the last pass: what an earlier node reaches was
     * compiled with it, so its flags are final (and stay untouched while other
     * threads validate with it).  Start from "quick unless it needs the scope
     * itself", then take the flag away from every node with a child that lost it,
     * until nothing changes (graphs have cycles).
     */
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        if (!n) {
            continue;
        }
        n->quick = n->ready;
        for (size_t k = 0; k < n->nops && n->quick; k++) {
            n->quick = !op_needs_scope(&n->ops[k]);
        }
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < r->compiled.cap; i++) {
            snode *n = fresh(r, i);
            for (size_t k = 0; n && n->quick && k < n->nops; k++) {
                if (!children_quick(&n->ops[k])) {
                    n->quick = false;
                    changed = true;
                }
            }
        }
    }
    /* shortcuts for the boolean pass (a node without one keeps its operations) */
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        if (!n || !n->quick || n->boolean) {
            continue;
        }
        if (n->nops == 1 && n->ops[0].kind == OP_REF) {
            n->alias = n->ops[0].u.schema;
        } else {
            n->leaf = make_leaf(r, n);
        }
        n->types = ST_NULL | ST_BOOL | ST_INT | ST_NUM | ST_STR | ST_ARR | ST_OBJ;
        if (n->nops > 0 && n->ops[0].kind == OP_TYPE) {
            n->types = n->ops[0].u.types;
            n->skip = 1;
        }
    }
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        for (size_t k = 0; n && n->quick && k < n->nops; k++) {
            if (n->ops[k].kind == OP_ALLOF) {
                /* an allOf of if/then/else on one member: a table */
                n->ops[k].u.list.ifs = make_ifgroup(r, &n->ops[k]);
            } else if (n->ops[k].kind == OP_OBJECT) {
                /* a declared property whose schema is a leaf: checked in place */
                sobject *o = n->ops[k].u.obj;
                for (size_t j = 0; j < o->nprops; j++) {
                    const snode *t = o->props[j].schema;
                    while (t && t->alias) {
                        t = t->alias;
                    }
                    o->props[j].leaf = t ? t->leaf : NULL;
                    prop_kind(&o->props[j], t);
                    if (o->props[j].qk == SQK_NODE) {
                        make_map(r, &o->props[j], t);
                    }
                }
            }
        }
    }
    /* an object member that quick_walk() walks (see SQK_WALK) */
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        for (size_t k = 0; n && n->quick && k < n->nops; k++) {
            if (n->ops[k].kind != OP_OBJECT) {
                continue;
            }
            sobject *o = n->ops[k].u.obj;
            for (size_t j = 0; j < o->nprops; j++) {
                if (o->props[j].qk == SQK_OBJ && walk_apart(o->props[j].qt)) {
                    o->props[j].qk = SQK_WALK;
                }
            }
        }
    }
    /* an event schema's own properties, its envelope and unevaluatedProperties: one walk */
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        if (n && n->quick && !n->boolean && !n->leaf && !n->alias) {
            n->flat = make_flat(r, n);
        }
    }
    /* a oneOf of such event schemas by their discriminator */
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        if (n && n->quick && !n->boolean && !n->leaf && !n->alias) {
            n->route = make_route(r, n);
        }
    }
    for (size_t i = 0; i < r->compiled.cap; i++) {
        snode *n = fresh(r, i);
        if (n) {
            n->marked = true;
        }
    }
}
