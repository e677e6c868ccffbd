/*
 * Evaluating compiled schemas.
 *
 * No allocation: the instance path, the keyword path and the dynamic scope
 * are linked lists of frames on the C stack; an error's strings are built in
 * stack buffers only when an error is reported; PCRE2's match data comes from
 * a bump allocator over a buffer in the top-level frame.
 *
 * Sub-evaluations whose failures are not errors of their own (anyOf, oneOf,
 * not, if, contains, and the annotation checks of unevaluated*) run "quiet":
 * they stop at the first failure and report nothing.  A oneOf/anyOf with a
 * const discriminator evaluates only the matching branch, loudly, so that an
 * event's errors come from its own type's schema.
 *
 * unevaluatedProperties/unevaluatedItems are answered per member by asking
 * the adjacent keywords (and the valid in-place subschemas) whether they
 * evaluated it, instead of collecting annotation sets: slower for schemas
 * that use them, free for those that do not.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "schema_private.h"

#define MAX_DEPTH 512

#define MATCH_HEAP 32768

/* A failure in a quiet evaluation (or after the first error) needs no message. */
#define QUIET_FAIL(x)                                                                              \
    do {                                                                                           \
        if ((x)->quiet || (x)->stop) {                                                             \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

typedef struct seg {
    const struct seg *up;
    const char *s; /* NULL: array index */
    size_t len;
    size_t idx;
} seg;

typedef struct dscope {
    const struct dscope *up;
    const sresource *res;
} dscope;

/*
 * One evaluation on the stack: a schema node on an instance (aux NULL), or
 * the unevaluated* question "did node n evaluate member/item aux of v".
 * run counts the frames below it on the same instance: evaluation never
 * returns to an outer instance, so the frames of one instance are the top
 * run of the stack, and a long run is where a re-entry is looked for.
 */
typedef struct eframe {
    const struct eframe *up;
    const snode *n;
    const pixel_value *v;
    const void *aux;
    const struct dscope *ds;
    unsigned run;
} eframe;

/* Same-instance frames stacked before a re-entry is looked for. */
#define CYCLE_RUN 16

typedef struct bump {
    char *buf;
    size_t used, cap;
} bump;

typedef struct ectx {
    const pixel_schema_registry *reg;
    unsigned flags;
    bool quiet;
    bool stop;
    bool fail;
    bool cycle; /* fail: the schema re-entered itself (PIXEL_ESCHEMA, not a depth limit) */
    int depth;
    uint32_t lseen; /* the walk of an sflat's object: its first_only names met so far */
    const eframe *top;
    unsigned nerr;
    pixel_schema_error_cb cb;
    void *payload;
    pcre2_match_data *md;
    /* The boolean pass's last valid walk of an object by an sobject that is some
       scover's main: the object, the sobject, and how many members it declared. */
    const pixel_value *cov_v;
    const sobject *cov_o;
    size_t cov_declared;
    /* The pipeline's key frames (pixel__schema_validate_framed), or NULL. */
    const char *frames;
    size_t frames_len;
} ectx;

static bool eval(ectx *x, const snode *n, const pixel_value *v, const seg *ip, const seg *kp,
                 const dscope *ds);
static bool if_cond(ectx *x, const sop *op, const pixel_value *v, const dscope *ds);

/* ---- regex matching without malloc ------------------------------------------- */

static void *bump_malloc(size_t size, void *data)
{
    bump *b = data;
    size_t at = (b->used + 15) & ~(size_t)15;
    if (at + size > b->cap) {
        return NULL;
    }
    b->used = at + size;
    return b->buf + at;
}

static void bump_free(void *p, void *data)
{
    PIXEL_UNUSED(p);
    PIXEL_UNUSED(data);
}

/*
 * PCRE2 needs match data (and, without JIT, a frames vector).  Each thread
 * gets one, carved by a bump allocator out of a thread-local buffer the
 * first time a pattern needs PCRE2: no heap allocation, ever, and none per
 * validation.
 */
typedef struct match_tls {
    char heap[MATCH_HEAP] __attribute__((aligned(16)));
    bump b;
    pcre2_general_context *gctx;
    pcre2_match_data *md;
} match_tls;

static _Thread_local match_tls tls_match;

static int regex_match(ectx *x, const sregex *re, const char *s, size_t len)
{
    if (re->prog) {
        return re->run(re->prog, s, len);
    }
    if (!x->md) {
        match_tls *t = &tls_match;
        if (!t->md) {
            t->b.buf = t->heap;
            t->b.cap = sizeof(t->heap);
            t->b.used = 0;
            t->gctx = pcre2_general_context_create(bump_malloc, bump_free, &t->b);
            t->md = t->gctx ? pcre2_match_data_create(1, t->gctx) : NULL;
        }
        x->md = t->md;
        if (!x->md) {
            x->fail = true;
            return 0;
        }
    }
    int rc = pixel__regex_search_pcre2(re, x->md, s, len);
    if (rc < 0) {
        x->fail = true;
        return 0;
    }
    return rc;
}

/* ---- error reporting ---------------------------------------------------------- */

static size_t put_escaped(char *out, size_t o, size_t cap, const char *s, size_t len)
{
    for (size_t i = 0; i < len && o + 3 < cap; i++) {
        if (s[i] == '~' || s[i] == '/') {
            out[o++] = '~';
            out[o++] = s[i] == '~' ? '0' : '1';
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static size_t path_str(const seg *p, char *out, size_t cap)
{
    const seg *stack[256];
    size_t n = 0;
    for (; p && n < PIXEL_ARRAY_LEN(stack); p = p->up) {
        stack[n++] = p;
    }
    size_t o = 0;
    while (n > 0 && o + 24 < cap) {
        const seg *s = stack[--n];
        out[o++] = '/';
        if (s->s) {
            o = put_escaped(out, o, cap, s->s, s->len);
        } else {
            o += (size_t)snprintf(out + o, cap - o, "%zu", s->idx);
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
    return o;
}

static const char *type_name(const pixel_value *v)
{
    switch (v->type) {
        case PIXEL_TYPE_NULL:
            return "null";
        case PIXEL_TYPE_BOOL:
            return "boolean";
        case PIXEL_TYPE_INT:
            return "integer";
        case PIXEL_TYPE_NUMBER:
            return "number";
        case PIXEL_TYPE_STRING:
            return "string";
        case PIXEL_TYPE_ARRAY:
            return "array";
        default:
            return "object";
    }
}

/* "string \"12a\"", "integer 5", "object" ... */
void pixel__schema_describe(const pixel_value *v, char *out, size_t cap)
{
    switch (v->type) {
        case PIXEL_TYPE_STRING: {
            size_t n = v->u.str.len > 40 ? 40 : v->u.str.len;
            while (n < v->u.str.len && n > 0 && ((unsigned char)v->u.str.s[n] & 0xC0) == 0x80) {
                n--; /* do not cut a UTF-8 sequence */
            }
            char esc[128];
            size_t o = 0;
            for (size_t i = 0; i < n && o + 6 < sizeof(esc); i++) {
                unsigned char c = (unsigned char)v->u.str.s[i];
                if (c == '"' || c == '\\') {
                    esc[o++] = '\\';
                    esc[o++] = (char)c;
                } else if (c < 0x20) {
                    o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\u%04x", c);
                } else {
                    esc[o++] = (char)c;
                }
            }
            esc[o] = '\0';
            snprintf(out, cap, "string \"%.100s\"%s", esc, n < v->u.str.len ? "..." : "");
            break;
        }
        case PIXEL_TYPE_INT:
            snprintf(out, cap, "integer %lld", (long long)v->u.i);
            break;
        case PIXEL_TYPE_NUMBER:
            if (v->flags & PIXEL_VALUE_RAW) {
                snprintf(out, cap, "number %.*s", (int)(v->u.num.rawlen > 40 ? 40 : v->u.num.rawlen),
                         v->u.num.raw);
            } else {
                snprintf(out, cap, "number %.17g", v->u.num.d);
            }
            break;
        case PIXEL_TYPE_BOOL:
            snprintf(out, cap, "boolean %s", v->u.b ? "true" : "false");
            break;
        case PIXEL_TYPE_NULL:
            snprintf(out, cap, "null");
            break;
        case PIXEL_TYPE_ARRAY:
            snprintf(out, cap, "array of %zu items", v->u.list.count);
            break;
        default:
            snprintf(out, cap, "object");
            break;
    }
}

static void report(ectx *x, const snode *n, const seg *kp, const char *kw, const seg *ip,
                   const char *fmt, ...) PIXEL_PRINTF(6, 7);

static void report(ectx *x, const snode *n, const seg *kp, const char *kw, const seg *ip,
                   const char *fmt, ...)
{
    if (x->quiet || x->stop) {
        return;
    }
    x->nerr++;
    if (x->flags & PIXEL_SCHEMA_FIRST_ERROR) {
        x->stop = true;
    }
    if (!x->cb) {
        return;
    }
    char iloc[512], kloc[1024], sloc[1024], msg[512];
    path_str(ip, iloc, sizeof(iloc));
    size_t k = path_str(kp, kloc, sizeof(kloc) - 80);
    if (kw) {
        snprintf(kloc + k, sizeof(kloc) - k, "/%s", kw);
        snprintf(sloc, sizeof(sloc), "%s/%s", n->loc, kw);
    } else {
        snprintf(sloc, sizeof(sloc), "%s", n->loc);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pixel_schema_error e = {iloc, kloc, sloc, kw ? kw : "false", msg};
    if (x->cb(&e, x->payload)) {
        x->stop = true;
    }
}

/* ---- numbers ------------------------------------------------------------------ */

/* Integers that a double holds exactly. */
#define EXACT_DOUBLE_INT 9007199254740992ll /* 2^53 */

__attribute__((always_inline)) static inline int numcmp(const pixel_value *a,
                                                        const pixel_value *b)
{
    if (a->type == PIXEL_TYPE_INT && b->type == PIXEL_TYPE_INT) {
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    }
    if (a->type == PIXEL_TYPE_NUMBER && b->type == PIXEL_TYPE_INT && isfinite(a->u.num.d) &&
        b->u.i >= -EXACT_DOUBLE_INT && b->u.i <= EXACT_DOUBLE_INT) {
        /* the integer converts exactly: comparing doubles is exact */
        double d = a->u.num.d, i = (double)b->u.i;
        return d < i ? -1 : d > i;
    }
    if (a->type == PIXEL_TYPE_INT || b->type == PIXEL_TYPE_INT) {
        bool swap = b->type == PIXEL_TYPE_INT;
        int64_t i = swap ? b->u.i : a->u.i;
        double d = swap ? a->u.num.d : b->u.num.d;
        int r;
        if (d >= 9223372036854775807.0) {
            r = -1;
        } else if (d < -9223372036854775807.0) {
            r = 1;
        } else if (d != d) {
            r = 1;
        } else {
            double f = floor(d);
            int64_t fi = (int64_t)f;
            if (i < fi) {
                r = -1;
            } else if (i > fi) {
                r = 1;
            } else {
                r = d > f ? -1 : 0;
            }
        }
        return swap ? -r : r;
    }
    return a->u.num.d < b->u.num.d ? -1 : a->u.num.d > b->u.num.d;
}

/* A number as mantissa * 10^exp, exactly; false when it does not fit. */
bool pixel__schema_decimal(const pixel_value *v, i128 *m, int *e)
{
    if (v->type == PIXEL_TYPE_INT) {
        *m = v->u.i;
        *e = 0;
        return true;
    }
    char buf[64];
    const char *s;
    size_t n;
    if (v->flags & PIXEL_VALUE_RAW) {
        s = v->u.num.raw;
        n = v->u.num.rawlen;
    } else {
        if (!isfinite(v->u.num.d) || pixel__format_double(buf, sizeof(buf), v->u.num.d) < 0) {
            return false;
        }
        s = buf;
        n = strlen(buf);
    }
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    i128 acc = 0;
    int exp = 0, digits = 0;
    bool frac = false;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            frac = true;
        } else if (c >= '0' && c <= '9') {
            if (acc == 0 && c == '0') {
                if (frac) {
                    exp--;
                }
                continue;
            }
            if (++digits > 36) {
                return false;
            }
            acc = acc * 10 + (c - '0');
            if (frac) {
                exp--;
            }
        } else if (c == 'e' || c == 'E') {
            /* The exponent, read to n only: a raw literal points into the
             * parsed text (no terminator; it may end where mapped memory
             * does). */
            size_t k = i + 1;
            bool eneg = false;
            if (k < n && (s[k] == '-' || s[k] == '+')) {
                eneg = s[k] == '-';
                k++;
            }
            if (k == n) {
                return false;
            }
            long x = 0;
            for (; k < n; k++) {
                if (s[k] < '0' || s[k] > '9') {
                    return false;
                }
                x = x * 10 + (s[k] - '0');
                if (x > 100000) {
                    return false;
                }
            }
            exp += (int)(eneg ? -x : x);
            break;
        } else {
            return false;
        }
    }
    *m = neg ? -acc : acc;
    *e = exp;
    return true;
}

static bool scale(i128 *m, int by)
{
    static const i128 lim = (i128)1000000000000000000ll * 1000000000000000000ll;
    while (by-- > 0) {
        if (*m > lim || *m < -lim) {
            return false;
        }
        *m *= 10;
    }
    return true;
}

/*
 * pixel__schema_decimal() for the common cases, in 64 bits: an integer, or a number
 * literal of at most 18 significant digits without an exponent (the same m and e as
 * pixel__schema_decimal gives); false for the rest.
 */
static bool decimal64(const pixel_value *v, int64_t *m, int *e)
{
    if (v->type == PIXEL_TYPE_INT) {
        *m = v->u.i;
        *e = 0;
        return true;
    }
    if (!(v->flags & PIXEL_VALUE_RAW)) {
        return false;
    }
    const char *s = v->u.num.raw;
    size_t n = v->u.num.rawlen, i = 0;
    bool neg = false, frac = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    uint64_t acc = 0;
    int exp = 0, digits = 0;
    if (n - i <= 18) {
        /* at most 18 digits: no count to keep, and a leading zero adds nothing to acc
           as below */
        for (; i < n; i++) {
            unsigned c = (unsigned char)s[i] - (unsigned)'0';
            if (c > 9) {
                if (s[i] == '.' && !frac) {
                    frac = true;
                    continue;
                }
                return false;
            }
            acc = acc * 10 + c;
            exp -= frac;
        }
    }
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.' && !frac) {
            frac = true;
            continue;
        }
        if (c < '0' || c > '9') {
            return false;
        }
        if (acc == 0 && c == '0') {
            exp -= frac;
            continue;
        }
        if (++digits > 18) {
            return false;
        }
        acc = acc * 10 + (uint64_t)(c - '0');
        exp -= frac;
    }
    *m = neg ? -(int64_t)acc : (int64_t)acc;
    *e = exp;
    return true;
}

/* m * 10^by into *m; false when it overflows. */
static bool scale64(int64_t *m, int by)
{
    while (by-- > 0) {
        if (__builtin_mul_overflow(*m, 10, m)) {
            return false;
        }
    }
    return true;
}

/* multipleOf: the divisor's decimal form was found at compile time (u.mul) when exact. */
__attribute__((noinline)) static bool multiple_of(const pixel_value *v, const sop *op)
{
    int64_t a64, b64;
    int ea, eb = op->u.mul.e;
    if (op->u.mul.exact && op->u.mul.m != 0 && decimal64(v, &a64, &ea)) {
        /* exact in 64 bits when the scaled operands fit; otherwise in 128 below */
        b64 = op->u.mul.m < 0 ? -op->u.mul.m : op->u.mul.m; /* never INT64_MIN (compile) */
        if (a64 == 0) {
            return true;
        }
        int e = ea < eb ? ea : eb;
        if (ea - e <= 18 && eb - e <= 18 && scale64(&a64, ea - e) && scale64(&b64, eb - e)) {
            return a64 % b64 == 0;
        }
    }
    const pixel_value *d = op->u.mul.value;
    i128 m1, m2 = op->u.mul.m;
    int e1, e2 = op->u.mul.e;
    if (pixel__schema_decimal(v, &m1, &e1) &&
        (op->u.mul.exact || pixel__schema_decimal(d, &m2, &e2)) && m2 != 0) {
        if (m1 == 0) {
            return true;
        }
        int e = e1 < e2 ? e1 : e2;
        if (e1 - e <= 40 && e2 - e <= 40 && scale(&m1, e1 - e) && scale(&m2, e2 - e)) {
            return m1 % m2 == 0;
        }
    }
    double a = pixel_value_number(v), b = pixel_value_number(d);
    if (!isfinite(a) || b == 0) {
        return false;
    }
    double q = a / b;
    if (!isfinite(q)) {
        return fmod(a, b) == 0;
    }
    return q == floor(q);
}

static bool is_integer(const pixel_value *v)
{
    return v->type == PIXEL_TYPE_INT ||
           (v->type == PIXEL_TYPE_NUMBER && isfinite(v->u.num.d) && v->u.num.d == floor(v->u.num.d));
}

static inline bool type_ok(const pixel_value *v, unsigned t)
{
    /* the ST_* bits each value type satisfies by itself (a NUMBER may still be an integer) */
    static const uint8_t meets[8] = {ST_NULL, ST_BOOL, ST_INT | ST_NUM, ST_NUM,
                                     ST_STR,  ST_ARR,  ST_OBJ,         ST_OBJ};
    if (t & meets[v->type & 7]) {
        return true;
    }
    return v->type == PIXEL_TYPE_NUMBER && (t & ST_INT) && is_integer(v);
}

static void types_str(unsigned t, char *out, size_t cap)
{
    static const char *const names[] = {"null", "boolean", "integer", "number",
                                        "string", "array", "object"};
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < 7; i++) {
        if (t & (1u << i)) {
            o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " or " : "", names[i]);
            if (o >= cap) {
                break;
            }
        }
    }
}

static size_t cp_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return c;
}

static void num_text(const pixel_value *v, char *out, size_t cap)
{
    if (v->type == PIXEL_TYPE_INT) {
        snprintf(out, cap, "%lld", (long long)v->u.i);
    } else if (v->flags & PIXEL_VALUE_RAW) {
        snprintf(out, cap, "%.*s", (int)(v->u.num.rawlen > 60 ? 60 : v->u.num.rawlen), v->u.num.raw);
    } else {
        snprintf(out, cap, "%.17g", v->u.num.d);
    }
}

/* ---- keyword predicates (shared by both passes) ------------------------------------- */

/* const: strings and integers compared in line, the rest by pixel_value_equal(). */
static inline bool const_ok(const pixel_value *c, const pixel_value *v)
{
    if (c->type == PIXEL_TYPE_STRING) {
        return v->type == PIXEL_TYPE_STRING && v->u.str.len == c->u.str.len &&
               pixel__key_eq(v->u.str.s, c->u.str.s, c->u.str.len);
    }
    if (c->type == PIXEL_TYPE_INT && v->type == PIXEL_TYPE_INT) {
        return c->u.i == v->u.i;
    }
    return pixel_value_equal(c, v);
}

static bool number_ok(const sop *op, const pixel_value *v)
{
    switch (op->kind) {
        case OP_MINIMUM:
            return numcmp(v, op->u.value) >= 0;
        case OP_MAXIMUM:
            return numcmp(v, op->u.value) <= 0;
        case OP_EXMINIMUM:
            return numcmp(v, op->u.value) > 0;
        case OP_EXMAXIMUM:
            return numcmp(v, op->u.value) < 0;
        default:
            return multiple_of(v, op);
    }
}

static bool string_ok(ectx *x, const sop *op, const pixel_value *v)
{
    const char *s = v->u.str.s;
    size_t len = v->u.str.len;
    switch (op->kind) {
        case OP_MINLENGTH:
            /* a code point takes 1 to 4 bytes: count them only when it matters */
            return !(len < op->u.count ||
                     (len / 4 < op->u.count && cp_len(s, len) < op->u.count));
        case OP_MAXLENGTH:
            return !(len > op->u.count && cp_len(s, len) > op->u.count);
        case OP_PATTERN:
            return regex_match(x, &op->u.re, s, len);
        default: /* OP_FORMAT */
            return (!(x->flags & PIXEL_SCHEMA_ASSERT_FORMAT) && !op->u.fmt.assert_always) ||
                   pixel__format_trusted(op->u.fmt.trust, v->flags, s, len) ||
                   pixel__format_check(op->u.fmt.id, s, len);
    }
}

/* ---- dynamic references ---------------------------------------------------------- */

static const snode *dyn_target(ectx *x, const sop *op, const dscope *ds)
{
    const snode *t = op->u.dyn.target;
    if (op->kind == OP_RECREF) {
        if (!t->res->recursive_anchor) {
            return t;
        }
        for (const dscope *d = ds; d; d = d->up) {
            if (!d->res->recursive_anchor) {
                break;
            }
            const snode *c = pixel__hmap_get(&x->reg->compiled, d->res->root);
            if (c) {
                t = c;
            }
        }
        return t;
    }
    if (!op->u.dyn.anchor) {
        return t;
    }
    const snode *found = NULL;
    char key[1024];
    for (const dscope *d = ds; d; d = d->up) {
        snprintf(key, sizeof(key), "%s#%s", d->res->uri, op->u.dyn.anchor);
        const pixel_value *v = pixel__hmap_get(&x->reg->dynanchors, key);
        if (v) {
            const snode *c = pixel__hmap_get(&x->reg->compiled, v);
            if (c) {
                found = c; /* keep going: the outermost wins */
            }
        }
    }
    return found ? found : t;
}

/* ---- evaluations that never finish ---------------------------------------------- */

/*
 * Re-entering a node on the same instance (for the same question) with no
 * resource new to the dynamic scope means the evaluation would repeat itself
 * forever: every $dynamicRef resolves as it did the first time, because the
 * scope is the earlier one plus resources it already held.  The compile-time
 * check refuses the static cycles; this catches the ones through dynamic
 * references.
 */
static bool scope_grew(const dscope *now, const dscope *then)
{
    for (const dscope *d = now; d && d != then; d = d->up) {
        const dscope *o = then;
        while (o && o->res != d->res) {
            o = o->up;
        }
        if (!o) {
            return true;
        }
    }
    return false;
}

__attribute__((noinline, cold)) static bool reentered(ectx *x, const eframe *f)
{
    for (const eframe *g = f->up; g && g->v == f->v; g = g->up) {
        if (g->n == f->n && g->aux == f->aux && !scope_grew(f->ds, g->ds)) {
            x->fail = x->stop = x->cycle = true;
            if (x->cb) {
                char msg[512];
                snprintf(msg, sizeof(msg),
                         "the schema cannot be evaluated: it re-enters %s on the same "
                         "instance value, through in-place references, and would never finish",
                         f->n->loc);
                pixel_schema_error e = {"", "", f->n->loc, "", msg};
                x->cb(&e, x->payload);
            }
            return true;
        }
    }
    return false;
}

/* Pushes f; false (f not pushed, x failed) when it re-enters an evaluation on the stack. */
static inline bool frame_push(ectx *x, eframe *f, const snode *n, const pixel_value *v,
                              const void *aux, const dscope *ds)
{
    const eframe *up = x->top;
    f->up = up;
    f->n = n;
    f->v = v;
    f->aux = aux;
    f->ds = ds;
    f->run = up && up->v == v ? up->run + 1 : 0;
    if (PIXEL_UNLIKELY(f->run >= CYCLE_RUN) && reentered(x, f)) {
        return false;
    }
    x->top = f;
    return true;
}

/* ---- the boolean pass ----------------------------------------------------------- */

/*
 * Most instances are valid, and a valid instance needs no paths, messages or
 * dynamic scope.  The boolean pass answers valid/invalid with only the
 * instance in hand; the evaluation further down, which says why, runs only
 * for an instance the boolean pass rejects.  It applies to nodes marked
 * quick at compile time: nothing reachable from them needs the dynamic scope
 * or run-time annotations (no $dynamicRef, no $recursiveRef, no
 * unevaluated* keyword without a static answer).  Sub-evaluations whose
 * failure is not an error of their own (anyOf, oneOf, not, if, contains) use
 * it too.
 */
static bool quick(ectx *x, const snode *n, const pixel_value *v);
static bool leaf_rest(ectx *x, const sleaf *l, const pixel_value *v);
static inline bool quick_leaf(ectx *x, const sleaf *l, const pixel_value *v);
static bool enum_has(const sop *op, const pixel_value *v);
static bool unique(const pixel_value *v, size_t *a, size_t *b);
static long disc_branch(const sop *op, const pixel_value *v);

static const pixel_value *member(const pixel_value *obj, const char *key, size_t klen)
{
    const pixel_value *m = obj->u.list.head;
    while (m && !(m->klen == klen && pixel__key_eq(m->key, key, klen))) {
        m = m->next;
    }
    return m;
}

/* The declared property named like m, or NULL. */
static const sprop *prop_find(const sobject *o, const pixel_value *m)
{
    long i = pixel__strtab_find(&o->names, m->key, m->klen);
    return i >= 0 ? &o->props[i] : NULL;
}

/* The words of the bitset of required names seen (at most 1024 names; beyond, a lookup). */
static size_t req_words(const sobject *o)
{
    return o->nreq_bits > 1024 ? 16 : (o->nreq_bits + 63) / 64;
}

static bool req_seen(const sobject *o, const uint64_t *bits, size_t i, const pixel_value *v)
{
    int32_t b = o->props[o->required_prop[i]].req_bit;
    if (b < 1024) {
        return (bits[b >> 6] >> (b & 63)) & 1;
    }
    return member(v, o->required[i], o->required_len[i]) != NULL;
}

/* One member of an object: its declared schema, the patterns it matches, or else
   additionalProperties; marks it in the required bitset. */
static bool quick_member(ectx *x, const sobject *o, const sprop *p, const pixel_value *m,
                         uint64_t *bits)
{
    bool matched = false;
    if (p) {
        bits[p->req_word] |= p->req_mask;
        if (p->schema) {
            if (!(p->leaf ? quick_leaf(x, p->leaf, m) : quick(x, p->schema, m))) {
                return false;
            }
            matched = true;
        }
    }
    for (size_t k = 0; k < o->npatterns; k++) {
        if (regex_match(x, &o->patterns[k].re, m->key, m->klen)) {
            if (!quick(x, o->patterns[k].schema, m)) {
                return false;
            }
            matched = true;
        }
    }
    return matched || !o->additional || quick(x, o->additional, m);
}

static bool quick_object_general(ectx *x, const sobject *o, const pixel_value *v);
static bool quick_object(ectx *x, const sobject *o, const pixel_value *v);

/* Formats assert: the flag, or the format-assertion vocabulary. */
static inline bool format_asserts(const ectx *x, const sop *f)
{
    return (x->flags & PIXEL_SCHEMA_ASSERT_FORMAT) || f->u.fmt.assert_always;
}

/* True when the n bytes at s are all ASCII (then each is a code point). */
static inline bool ascii(const char *s, size_t n)
{
    uint64_t acc = 0, w;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, s + i, 8);
            acc |= w;
        }
        memcpy(&w, s + n - 8, 8);
        acc |= w;
    } else {
        for (size_t i = 0; i < n; i++) {
            acc |= (unsigned char)s[i];
        }
    }
    return (acc & 0x8080808080808080ull) == 0;
}

/* One level deeper in the boolean pass (the caller comes back up with
 * x->depth--); false at the depth limit, which is an error (x->fail), not
 * an invalid instance. */
__attribute__((always_inline)) static inline bool quick_deeper(ectx *x)
{
    if (PIXEL_UNLIKELY(++x->depth > MAX_DEPTH)) {
        x->fail = true;
        x->stop = true;
        x->depth--;
        return false;
    }
    return true;
}

static bool quick_merged(ectx *x, const sobject *o, const smerged *g, const pixel_value *m);
static bool quick_walk(ectx *x, const sobject *o, const pixel_value *v);
static bool quick_flat_walk(ectx *x, const sobject *o, const pixel_value *v);

/*
 * An object that a module emitted from a shape image (pixel__image_check):
 * when the image, unchanged since, passed this very object schema (with the
 * same format assertion), it passes again without a walk; when it passes
 * now, the image remembers it.  Only for a schema whose answer is the
 * instance's alone: an object that notes its coverage for an
 * unevaluatedProperties above (cover), or one flattened with another
 * (merged: its members' checks read x->lseen), is walked every time.
 *
 * The walk counts schema levels against MAX_DEPTH (an anyOf, an allOf or a
 * $ref to a node with keywords of its own is a level, as is each object),
 * so whether it passes depends on where the copy sits: the image remembers
 * the deepest x->depth at which it passed, and a copy deeper than that is
 * walked again (and reports the depth error where a built tree would).
 */
#define IMAGE_DEPTH_BITS 10
_Static_assert(MAX_DEPTH < (1 << IMAGE_DEPTH_BITS), "the depth must fit an image's verdict");

/* The image's verdict for o: the key that says it passed o (with the
 * format assertion of x), the deepest level it passed at in between. */
static inline uint64_t image_key(const ectx *x, const sobject *o)
{
    return o->memo_id << (IMAGE_DEPTH_BITS + 1) | ((x->flags & PIXEL_SCHEMA_ASSERT_FORMAT) ? 1u : 0u);
}

/* The walk of a copy that its image's verdict does not cover; im (or NULL:
 * not as emitted, or a schema whose answer is not the instance's alone)
 * remembers a pass. */
__attribute__((noinline)) static bool quick_image_walk(ectx *x, const sobject *o,
                                                       const pixel_value *v,
                                                       const pixel__image *im)
{
    bool ok = quick_object(x, o, v);
    if (ok && im && !x->fail) {
        pixel__image_set_valid(im, image_key(x, o) | (uint64_t)x->depth << 1);
    }
    return ok;
}

/* In line where the walks meet a copy: the stamp, the image's verdict, and
 * only a copy that they do not cover walked. */
static inline bool quick_image(ectx *x, const sobject *o, const pixel_value *v)
{
    const uint64_t depth_mask = ((1u << IMAGE_DEPTH_BITS) - 1) << 1;
    const pixel__image *im = o->cover || o->merged ? NULL : pixel__image_check_stamped(v);
    if (im) {
        uint64_t seen = pixel__image_valid(im);
        if ((seen & ~depth_mask) == image_key(x, o) &&
            (seen & depth_mask) >> 1 >= (uint64_t)x->depth) {
            return true;
        }
    }
    return quick_image_walk(x, o, v, im);
}

/* The names of v's members against a map's propertyNames leaf. */
static bool quick_map_names(ectx *x, const sleaf *l, const pixel_value *v)
{
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        pixel_value name = {.type = PIXEL_TYPE_STRING};
        name.u.str.s = m->key;
        name.u.str.len = m->klen;
        if (!quick_leaf(x, l, &name)) {
            return false;
        }
    }
    return true;
}

/* The values of v's members against a map's additionalProperties leaf. */
static bool quick_map_values(ectx *x, const sleaf *l, const pixel_value *v)
{
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        if (!quick_leaf(x, l, m)) {
            return false;
        }
    }
    return true;
}

/* A member whose schema is an smap: as quick() on that node (type, depth, then its
   keywords in order), without the dispatch per keyword and per member. */
__attribute__((noinline)) static bool quick_map(ectx *x, const smap *mp, const pixel_value *v)
{
    if (v->type != PIXEL_TYPE_OBJECT || PIXEL_UNLIKELY(x->fail) || !quick_deeper(x)) {
        return false;
    }
    bool ok = v->u.list.count >= mp->minp && v->u.list.count <= mp->maxp;
    if (ok && mp->one_pass) {
        /* no check here can fail the evaluation: the order of the checks does not matter */
        const sleaf *nl = mp->names, *vl = mp->values;
        for (const pixel_value *m = v->u.list.head; m && ok; m = m->next) {
            if (nl) {
                if (m->klen - nl->flo <= nl->fspan) {
                    ok = !nl->pattern || nl->pattern->run(nl->pattern->prog, m->key, m->klen);
                } else {
                    pixel_value name = {.type = PIXEL_TYPE_STRING};
                    name.u.str.s = m->key;
                    name.u.str.len = m->klen;
                    ok = quick_leaf(x, nl, &name);
                }
            }
            if (ok && vl) {
                size_t len = m->u.str.len;
                if (m->type == PIXEL_TYPE_STRING && len - vl->flo <= vl->fspan) {
                    ok = !vl->pattern || vl->pattern->run(vl->pattern->prog, m->u.str.s, len);
                } else {
                    ok = quick_leaf(x, vl, m);
                }
            }
        }
        x->depth--;
        return ok;
    }
    if (ok && mp->names_first) {
        ok = quick_map_names(x, mp->names, v);
    }
    if (ok && mp->values) {
        ok = quick_map_values(x, mp->values, v);
    }
    if (ok && mp->names && !mp->names_first) {
        ok = quick_map_names(x, mp->names, v);
    }
    x->depth--;
    return ok;
}

/* An SQK_NUM leaf: its bounds as doubles or integers, then its multipleOf; anything
   else (a number that is not finite, another type) as quick_leaf(). */
__attribute__((noinline)) static bool quick_num(ectx *x, const sleaf *l, const pixel_value *v)
{
    if (v->type == PIXEL_TYPE_NUMBER && isfinite(v->u.num.d)) {
        double d = v->u.num.d;
        if (!type_ok(v, l->types) || !(d >= l->dlo && d <= l->dhi)) {
            return false;
        }
    } else if (v->type == PIXEL_TYPE_INT) {
        if (!(l->types & (ST_INT | ST_NUM)) || v->u.i < l->imin || v->u.i > l->imax) {
            return false;
        }
    } else {
        return quick_leaf(x, l, v);
    }
    return !l->mul || multiple_of(v, l->mul); /* the bounds are dlo..dhi, imin..imax */
}

/* One member m named like the declared property p of o, checked by p's kind. */
__attribute__((always_inline)) static inline bool quick_prop(ectx *x, const sobject *o,
                                                             const sprop *p, const pixel_value *m)
{
    switch (p->qk) {
        case SQK_STR:
        case SQK_PAT: {
            const sleaf *l = p->qt;
            if (m->type != PIXEL_TYPE_STRING) {
                return false;
            }
            size_t len = m->u.str.len;
            if (PIXEL_UNLIKELY(len - l->flo > l->fspan) &&
                (len > l->maxlen || len < l->minlen || !ascii(m->u.str.s, len))) {
                /* a code point takes 1 to 4 bytes: counted when it matters */
                return leaf_rest(x, l, m);
            }
            return p->qk == SQK_STR || l->pattern->run(l->pattern->prog, m->u.str.s, len);
        }
        case SQK_FMT: {
            const sleaf *l = p->qt;
            if (m->type != PIXEL_TYPE_STRING) {
                return false;
            }
            size_t len = m->u.str.len;
            if (PIXEL_UNLIKELY(len - l->flo > l->fspan)) {
                return leaf_rest(x, l, m);
            }
            return !format_asserts(x, l->format) ||
                   pixel__format_trusted(l->format->u.fmt.trust, m->flags, m->u.str.s, len) ||
                   pixel__format_check(l->format->u.fmt.id, m->u.str.s, len);
        }
        case SQK_INT: {
            const sleaf *l = p->qt;
            if (m->type == PIXEL_TYPE_INT) {
                return m->u.i >= l->imin && m->u.i <= l->imax;
            }
            return quick_leaf(x, l, m);
        }
        case SQK_ENUM: {
            const sop *e = p->qt;
            return m->type == PIXEL_TYPE_STRING &&
                   pixel__strtab_find(&e->u.en.strs, m->u.str.s, m->u.str.len) >= 0;
        }
        case SQK_CONST:
            return const_ok(p->qt, m);
        case SQK_WALK: {
            if (m->type != PIXEL_TYPE_OBJECT || !quick_deeper(x)) {
                return false;
            }
            bool ok = PIXEL_UNLIKELY(m->flags & PIXEL_VALUE_IMAGE)
                          ? quick_image(x, p->qt, m)
                          : quick_walk(x, p->qt, m);
            x->depth--;
            return ok;
        }
        case SQK_OBJ:
        case SQK_OBJX: {
            if (m->type != PIXEL_TYPE_OBJECT || !quick_deeper(x)) {
                return false;
            }
            bool ok = PIXEL_UNLIKELY(m->flags & PIXEL_VALUE_IMAGE) ? quick_image(x, p->qt, m)
                                                                   : quick_object(x, p->qt, m);
            x->depth--;
            return ok;
        }
        case SQK_LEAF:
            return quick_leaf(x, p->qt, m);
        case SQK_NODE:
            return quick(x, p->qt, m);
        case SQK_MAP:
            return quick_map(x, p->qt, m);
        case SQK_NUM:
            return quick_num(x, p->qt, m);
        case SQK_MERGED: {
            /* an own const that implies the envelope's enum, on the member the own check
               sees (the first of its name, or each): as quick_merged(), in line */
            const smerged *g = p->qt;
            if (!(x->lseen & g->bit)) {
                if (g->outer_implied) {
                    x->lseen |= g->bit;
                    return const_ok(g->own->qt, m);
                }
                /* an object only the own properties declare: walked at this depth (one
                   level up for the own check, one down into the object) */
                if (!g->outer &&
                    (g->own->qk == SQK_OBJ || g->own->qk == SQK_OBJX ||
                     g->own->qk == SQK_WALK) &&
                    m->type == PIXEL_TYPE_OBJECT && !(m->flags & PIXEL_VALUE_IMAGE)) {
                    x->lseen |= g->bit;
                    return g->own->qk == SQK_WALK ? quick_walk(x, g->own->qt, m)
                                                  : quick_object(x, g->own->qt, m);
                }
            }
            return quick_merged(x, o, g, m);
        }
        default: /* SQK_NONE: only required, so additionalProperties applies */
            return !o->additional || quick(x, o->additional, m);
    }
}

/* A name of a flattened object that the node's own properties declare (see smerged). */
__attribute__((noinline)) static bool quick_merged(ectx *x, const sobject *o, const smerged *g,
                                                   const pixel_value *m)
{
    if (g->outer && !g->outer_implied && !quick_prop(x, o, g->outer, m)) {
        return false;
    }
    if (g->first_only) {
        if (x->lseen & g->bit) {
            /* a later member of the same name: the lookup saw the first only */
            return !g->outer_implied || quick_prop(x, o, g->outer, m);
        }
        x->lseen |= g->bit;
    }
    x->depth--;
    bool ok = quick_prop(x, o, g->own, m);
    x->depth++;
    return ok;
}

/* The boolean pass entering a node: its type, then one level deeper (the
 * caller leaves it with x->depth--).  False when the type does not match or
 * the depth limit is hit (an error, not invalid: x->fail). */
__attribute__((always_inline)) static inline bool quick_enter(ectx *x, const pixel_value *v,
                                                              unsigned types)
{
    return type_ok(v, types) && !PIXEL_UNLIKELY(x->fail) && quick_deeper(x);
}

/* A node with an sflat: the allOf branch's type and depth, then one walk. */
__attribute__((noinline)) static bool quick_flat(ectx *x, const sflat *f, const pixel_value *v)
{
    if (!quick_enter(x, v, f->inner->types)) {
        return false;
    }
    bool ok = true;
    if (v->type == PIXEL_TYPE_OBJECT) {
        uint32_t saved = x->lseen;
        x->lseen = 0;
        ok = quick_flat_walk(x, f->obj, v);
        x->lseen = saved;
    }
    x->depth--;
    return ok;
}

/*
 * Whether member m (its length equal to p's) is named p->key.  The same key pointer
 * as p->fkey answers without reading the name: fkey is p's own text or one of the
 * validating pipeline's framed names found equal to it before (framed text never
 * changes while the registry lives).  A framed name found equal here is remembered.
 */
__attribute__((always_inline)) static inline bool prop_named(const ectx *x, const sprop *p,
                                                             const pixel_value *m)
{
    if (m->key == __atomic_load_n(&p->fkey, __ATOMIC_RELAXED)) {
        return true;
    }
    if (!pixel__key_eq(p->key, m->key, m->klen)) {
        return false;
    }
    if ((m->flags & PIXEL_VALUE_FRAMED_KEY) &&
        (uintptr_t)m->key - (uintptr_t)x->frames < x->frames_len) {
        __atomic_store_n(&((sprop *)p)->fkey, m->key, __ATOMIC_RELAXED);
    }
    return true;
}

/* How many objects nested in one another quick_object() walks in one call (deeper ones
   recurse). */
#define QUICK_NEST 8

/* The walk of an enclosing object, while quick_object() walks one nested in it. */
typedef struct qnest {
    const sobject *o;
    const pixel_value *v;
    const pixel_value *m; /* its member after the nested object */
    const sprop *next;
    uint64_t seen;
    size_t misses;
} qnest;

/*
 * The members of an object without patternProperties and with at most 64
 * required names: each declared one checked by its kind (sprop.qk), the
 * common leaves in line.  A member that is an object of the same kind (SQK_OBJ to an
 * sobject neither general nor lookup) is walked in the same loop, its enclosing walk
 * kept in a qnest, one level deeper as quick_prop() would go.
 */
static bool quick_object(ectx *x, const sobject *o, const pixel_value *v)
{
    if (PIXEL_UNLIKELY(o->general)) {
        return quick_object_general(x, o, v);
    }
    if (o->lookup) {
        /* few properties, nothing else: find each one */
        for (const sprop *p = o->props, *end = p + o->nprops; p < end; p++) {
            const pixel_value *m = member(v, p->key, p->klen);
            if (!m ? p->req_bit >= 0 : !quick_prop(x, o, p, m)) {
                return false;
            }
        }
        return true;
    }
    qnest outer[QUICK_NEST];
    unsigned nest = 0;
    const sprop *props = o->props, *end = props + o->nprops, *next = props;
    uint64_t seen = 0;
    size_t misses = 0; /* members that are not declared */
    const pixel_value *m = v->u.list.head;
    for (;;) {
        for (; m; m = m->next) {
            /* Members usually come in the order the schema declares them: try the declared
               property after the last one found (its bytes compared in place) before
               hashing. */
            const sprop *p = NULL;
            if (next->klen == m->klen && prop_named(x, next, m)) {
                p = next; /* never the end entry: no member's length is its */
            } else if (props < end) {
                long i = pixel__strtab_find(&o->names, m->key, m->klen);
                p = i >= 0 ? props + i : NULL;
            }
            if (!p) {
                misses++;
                if (o->additional && !quick(x, o->additional, m)) {
                    goto invalid;
                }
                continue;
            }
            next = p + 1;
            seen |= p->req_mask;
            if (p->qk == SQK_STR) {
                /* the most common kind, before the jump table */
                const sleaf *l = p->qt;
                size_t len = m->u.str.len;
                if (m->type != PIXEL_TYPE_STRING || len - l->flo > l->fspan) {
                    if (!quick_prop(x, o, p, m)) {
                        goto invalid;
                    }
                }
                continue;
            }
            if (p->qk == SQK_OBJ && m->type == PIXEL_TYPE_OBJECT && nest < QUICK_NEST &&
                !(m->flags & PIXEL_VALUE_IMAGE)) {
                const sobject *c = p->qt; /* neither general nor lookup (SQK_OBJX) */
                {
                    if (!quick_deeper(x)) {
                        goto invalid;
                    }
                    outer[nest++] = (qnest){o, v, m->next, next, seen, misses};
                    o = c;
                    v = m;
                    props = next = o->props;
                    end = props + o->nprops;
                    seen = 0;
                    misses = 0;
                    m = v->u.list.head;
                    break;
                }
            }
            if (!quick_prop(x, o, p, m)) {
                goto invalid;
            }
        }
        if (m) {
            continue; /* entered a nested object */
        }
        if (seen != o->req_all) {
            goto invalid;
        }
        if (o->cover) {
            x->cov_v = v;
            x->cov_o = o;
            x->cov_declared = v->u.list.count - misses; /* a main's names all have a schema */
        }
        if (nest == 0) {
            return true;
        }
        /* back to the enclosing object, after the nested one */
        x->depth--;
        const qnest *q = &outer[--nest];
        o = q->o;
        v = q->v;
        m = q->m;
        next = q->next;
        seen = q->seen;
        misses = q->misses;
        props = o->props;
        end = props + o->nprops;
    }
invalid:
    x->depth -= (int)nest;
    return false;
}

/* quick_prop() out of line. */
__attribute__((noinline)) static bool quick_prop_cold(ectx *x, const sobject *o, const sprop *p,
                                                      const pixel_value *m)
{
    return quick_prop(x, o, p, m);
}

/*
 * quick_object() for the sobject of an SQK_WALK member: the same walk (the declared
 * property after the last one found, else the hash; additionalProperties; the required
 * bits), the common kinds in line (strings, patterns, formats, integers, enums, leaves
 * and another SQK_WALK object, by a call) and the others through quick_prop() out of
 * line: a shorter loop than quick_object()'s, whose state for the objects it walks in
 * line costs more than a call here.
 */
__attribute__((always_inline)) static inline bool walk_body(ectx *x, const sobject *o,
                                                            const pixel_value *v)
{
    const sprop *props = o->props, *next = props;
    uint64_t seen = 0;
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        const sprop *p;
        if (next->klen == m->klen && prop_named(x, next, m)) {
            p = next; /* never the end entry: no member's length is its */
        } else {
            const sprop *a = __atomic_load_n(&next->alt, __ATOMIC_RELAXED);
            if (a && a->klen == m->klen && prop_named(x, a, m)) {
                p = a;
            } else {
                long i = pixel__strtab_find(&o->names, m->key, m->klen); /* nprops >= 1 */
                if (i < 0) {
                    if (o->additional && !quick(x, o->additional, m)) {
                        return false;
                    }
                    continue;
                }
                p = props + i;
                if (!a) {
                    __atomic_store_n(&((sprop *)next)->alt, p, __ATOMIC_RELAXED);
                }
            }
        }
        next = p + 1;
        seen |= p->req_mask;
        /* the common kinds in line, as quick_prop() checks them (a string's when its
           byte length settles both bounds), the rest out of line */
        if (p->qk == SQK_STR || p->qk == SQK_PAT) {
            const sleaf *l = p->qt;
            size_t len = m->u.str.len;
            if (m->type == PIXEL_TYPE_STRING && len - l->flo <= l->fspan) {
                if (p->qk == SQK_PAT && !l->pattern->run(l->pattern->prog, m->u.str.s, len)) {
                    return false;
                }
                continue;
            }
        } else if (p->qk == SQK_INT && m->type == PIXEL_TYPE_INT) {
            const sleaf *l = p->qt;
            if (m->u.i < l->imin || m->u.i > l->imax) {
                return false;
            }
            continue;
        } else if (p->qk == SQK_FMT) {
            const sleaf *l = p->qt;
            size_t len = m->u.str.len;
            if (m->type == PIXEL_TYPE_STRING && len - l->flo <= l->fspan) {
                if (format_asserts(x, l->format) &&
                    !pixel__format_trusted(l->format->u.fmt.trust, m->flags, m->u.str.s, len) &&
                    !pixel__format_check(l->format->u.fmt.id, m->u.str.s, len)) {
                    return false;
                }
                continue;
            }
        } else if (p->qk == SQK_ENUM) {
            const sop *e = p->qt;
            if (m->type != PIXEL_TYPE_STRING ||
                pixel__strtab_find(&e->u.en.strs, m->u.str.s, m->u.str.len) < 0) {
                return false;
            }
            continue;
        } else if (p->qk == SQK_LEAF) {
            if (!quick_leaf(x, p->qt, m)) {
                return false;
            }
            continue;
        } else if (p->qk == SQK_WALK && m->type == PIXEL_TYPE_OBJECT) {
            /* as quick_prop() does: one level deeper */
            if (!quick_deeper(x)) {
                return false;
            }
            bool ok = PIXEL_UNLIKELY(m->flags & PIXEL_VALUE_IMAGE) ? quick_image(x, p->qt, m)
                                                                   : quick_walk(x, p->qt, m);
            x->depth--;
            if (!ok) {
                return false;
            }
            continue;
        }
        if (!quick_prop_cold(x, o, p, m)) {
            return false;
        }
    }
    return seen == o->req_all;
}

__attribute__((noinline)) static bool quick_walk(ectx *x, const sobject *o, const pixel_value *v)
{
    return walk_body(x, o, v);
}

/*
 * quick_object() for an sflat's object (no patterns, not general or lookup, no cover):
 * one dispatch per member by kind, the formats, consts and objects walked apart in line.
 * Its property lookup is walk_body()'s, written out again on purpose: the same lookup
 * as one inline helper shared by both loops measured 70 to 170 instructions a line
 * more (gcc allocates the loops' registers differently).
 */
__attribute__((noinline)) static bool quick_flat_walk(ectx *x, const sobject *o,
                                                      const pixel_value *v)
{
    if (PIXEL_UNLIKELY(!o->nprops)) {
        return quick_object(x, o, v);
    }
    const sprop *props = o->props, *next = props;
    uint64_t seen = 0;
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        const sprop *p;
        if (next->klen == m->klen && prop_named(x, next, m)) {
            p = next; /* never the end entry: no member's length is its */
        } else {
            const sprop *a = __atomic_load_n(&next->alt, __ATOMIC_RELAXED);
            if (a && a->klen == m->klen && prop_named(x, a, m)) {
                p = a;
            } else {
                long i = pixel__strtab_find(&o->names, m->key, m->klen); /* nprops >= 1 */
                if (i < 0) {
                    if (o->additional && !quick(x, o->additional, m)) {
                        return false;
                    }
                    continue;
                }
                p = props + i;
                if (!a) {
                    __atomic_store_n(&((sprop *)next)->alt, p, __ATOMIC_RELAXED);
                }
            }
        }
        next = p + 1;
        seen |= p->req_mask;
        bool ok;
        switch (p->qk) {
            case SQK_FMT: {
                const sleaf *l = p->qt;
                size_t len = m->u.str.len;
                if (m->type == PIXEL_TYPE_STRING && len - l->flo <= l->fspan) {
                    ok = !format_asserts(x, l->format) ||
                         pixel__format_trusted(l->format->u.fmt.trust, m->flags, m->u.str.s,
                                               len) ||
                         pixel__format_check(l->format->u.fmt.id, m->u.str.s, len);
                } else {
                    ok = quick_prop_cold(x, o, p, m);
                }
                break;
            }
            case SQK_CONST:
                ok = const_ok(p->qt, m);
                break;
            case SQK_MAP:
                ok = quick_map(x, p->qt, m);
                break;
            case SQK_MERGED: {
                /* as quick_prop() does: an own const that implies the envelope's enum, or
                   an object only the own properties declare, on the member the own check
                   sees, in line; the rest by quick_merged() */
                const smerged *g = p->qt;
                if (!(x->lseen & g->bit)) {
                    if (g->outer_implied) {
                        x->lseen |= g->bit;
                        ok = const_ok(g->own->qt, m);
                        break;
                    }
                    if (!g->outer && g->own->qk == SQK_WALK && m->type == PIXEL_TYPE_OBJECT &&
                        !(m->flags & PIXEL_VALUE_IMAGE)) {
                        x->lseen |= g->bit;
                        ok = quick_walk(x, g->own->qt, m);
                        break;
                    }
                }
                ok = quick_merged(x, o, g, m);
                break;
            }
            case SQK_WALK:
                if (m->type != PIXEL_TYPE_OBJECT || !quick_deeper(x)) {
                    return false;
                }
                ok = PIXEL_UNLIKELY(m->flags & PIXEL_VALUE_IMAGE) ? quick_image(x, p->qt, m)
                                                                  : walk_body(x, p->qt, m);
                x->depth--;
                break;
            default:
                ok = quick_prop_cold(x, o, p, m);
                break;
        }
        if (!ok) {
            return false;
        }
    }
    return seen == o->req_all;
}

__attribute__((noinline)) static bool quick_object_general(ectx *x, const sobject *o,
                                                          const pixel_value *v)
{
    if (o->lookup) {
        for (size_t i = 0; i < o->nprops; i++) {
            const sprop *p = &o->props[i];
            const pixel_value *m = member(v, p->key, p->klen);
            if (!m ? p->req_bit >= 0 : p->schema && !quick(x, p->schema, m)) {
                return false;
            }
        }
        return true;
    }
    uint64_t bits[16];
    size_t words = req_words(o);
    bits[0] = 0;
    for (size_t i = 1; i < words; i++) {
        bits[i] = 0;
    }
    /* Members usually come in the order the schema declares them (producers serialize
       that way): try the declared property after the last one found before hashing. */
    size_t next = 0;
    size_t misses = 0; /* members that are not declared */
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        const sprop *p = NULL;
        if (next < o->nprops && o->props[next].klen == m->klen &&
            pixel__key_eq(o->props[next].key, m->key, m->klen)) {
            p = &o->props[next++];
        } else if (o->nprops && (p = prop_find(o, m)) != NULL) {
            next = (size_t)(p - o->props) + 1;
        } else {
            misses++;
        }
        if (!quick_member(x, o, p, m, bits)) {
            return false;
        }
    }
    if (o->nreq_bits <= 64) {
        uint64_t all = o->nreq_bits == 64 ? ~0ull : (1ull << o->nreq_bits) - 1;
        if (o->nreq_bits != 0 && bits[0] != all) {
            return false;
        }
    } else {
        for (size_t i = 0; i < o->nrequired; i++) {
            if (!req_seen(o, bits, i, v)) {
                return false;
            }
        }
    }
    if (o->cover) {
        x->cov_v = v;
        x->cov_o = o;
        x->cov_declared = v->u.list.count - misses; /* a main's names all have a schema */
    }
    return true;
}

/* An allOf of if/then/else on one member: the member's value picks the conditions. */
static bool quick_ifs(ectx *x, const sifgroup *g, size_t n, const pixel_value *v)
{
    uint64_t holds = ~0ull; /* every condition holds for what is not an object */
    if (v->type == PIXEL_TYPE_OBJECT) {
        const pixel_value *m = member(v, g->prop, g->plen);
        if (!m) {
            holds = g->absent;
        } else {
            long i = m->type == PIXEL_TYPE_STRING
                         ? pixel__strtab_find(&g->values, m->u.str.s, m->u.str.len)
                         : -1;
            holds = i >= 0 ? g->masks[i] : 0;
        }
    }
    for (size_t k = 0; k < n; k++) {
        const snode *b = (holds >> k) & 1 ? g->then[k] : g->els[k];
        if (b && !quick(x, b, v)) {
            return false;
        }
    }
    return true;
}

static bool quick_list(ectx *x, const sop *op, const pixel_value *v)
{
    size_t n = op->u.list.n, nvalid = 0;
    if (op->u.list.ifs) {
        return quick_ifs(x, op->u.list.ifs, n, v);
    }
    if (op->kind == OP_ALLOF) {
        for (size_t k = 0; k < n; k++) {
            if (!quick(x, op->u.list.v[k], v)) {
                return false;
            }
        }
        return true;
    }
    long b = disc_branch(op, v);
    if (b >= 0) {
        return quick(x, op->u.list.v[b], v);
    }
    for (size_t k = 0; k < n; k++) {
        if (quick(x, op->u.list.v[k], v)) {
            if (op->kind == OP_ANYOF) {
                return true;
            }
            if (++nvalid > 1) {
                return false;
            }
        }
    }
    return nvalid == 1;
}

static bool quick_op(ectx *x, const sop *op, const pixel_value *v)
{
    switch (op->kind) {
        case OP_TYPE:
            return type_ok(v, op->u.types);
        case OP_CONST:
            return const_ok(op->u.value, v);
        case OP_ENUM:
            return enum_has(op, v);
        case OP_MINIMUM:
        case OP_MAXIMUM:
        case OP_EXMINIMUM:
        case OP_EXMAXIMUM:
        case OP_MULTIPLEOF:
            return (v->type != PIXEL_TYPE_INT && v->type != PIXEL_TYPE_NUMBER) ||
                   number_ok(op, v);
        case OP_MINLENGTH:
        case OP_MAXLENGTH:
        case OP_PATTERN:
        case OP_FORMAT:
            return v->type != PIXEL_TYPE_STRING || string_ok(x, op, v);
        case OP_MINITEMS:
            return v->type != PIXEL_TYPE_ARRAY || v->u.list.count >= op->u.count;
        case OP_MAXITEMS:
            return v->type != PIXEL_TYPE_ARRAY || v->u.list.count <= op->u.count;
        case OP_MINPROPS:
            return v->type != PIXEL_TYPE_OBJECT || v->u.list.count >= op->u.count;
        case OP_MAXPROPS:
            return v->type != PIXEL_TYPE_OBJECT || v->u.list.count <= op->u.count;
        case OP_UNIQUE: {
            size_t i, j;
            return v->type != PIXEL_TYPE_ARRAY || unique(v, &i, &j);
        }
        case OP_OBJECT:
            return v->type != PIXEL_TYPE_OBJECT || quick_object(x, op->u.obj, v);
        case OP_DEPREQUIRED:
        case OP_DEPSCHEMAS:
            if (v->type != PIXEL_TYPE_OBJECT) {
                return true;
            }
            for (size_t k = 0; k < op->u.dep.n; k++) {
                const sdep *d = &op->u.dep.deps[k];
                if (!member(v, d->key, d->klen)) {
                    continue;
                }
                for (size_t j = 0; j < d->n; j++) {
                    if (!member(v, d->names[j], d->lens[j])) {
                        return false;
                    }
                }
                if (d->schema && !quick(x, d->schema, v)) {
                    return false;
                }
            }
            return true;
        case OP_PROPNAMES:
            if (v->type != PIXEL_TYPE_OBJECT) {
                return true;
            }
            for (const pixel_value *m = v->u.list.head; m; m = m->next) {
                pixel_value name = {.type = PIXEL_TYPE_STRING};
                name.u.str.s = m->key;
                name.u.str.len = m->klen;
                if (!quick(x, op->u.schema, &name)) {
                    return false;
                }
            }
            return true;
        case OP_ITEMS: {
            if (v->type != PIXEL_TYPE_ARRAY) {
                return true;
            }
            size_t i = 0;
            for (const pixel_value *e = v->u.list.head; e; e = e->next, i++) {
                const snode *s = i < op->u.items.nprefix ? op->u.items.prefix[i] : op->u.items.rest;
                if (!s) {
                    break;
                }
                if (!quick(x, s, e)) {
                    return false;
                }
            }
            return true;
        }
        case OP_CONTAINS: {
            if (v->type != PIXEL_TYPE_ARRAY) {
                return true;
            }
            int64_t count = 0;
            for (const pixel_value *e = v->u.list.head; e; e = e->next) {
                if (quick(x, op->u.contains.schema, e)) {
                    count++;
                    if (op->u.contains.max < 0 && count >= op->u.contains.min) {
                        return true;
                    }
                }
            }
            return count >= op->u.contains.min &&
                   (op->u.contains.max < 0 || count <= op->u.contains.max);
        }
        case OP_REF:
            return quick(x, op->u.schema, v);
        case OP_ALLOF:
        case OP_ANYOF:
        case OP_ONEOF:
            return quick_list(x, op, v);
        case OP_NOT:
            return !quick(x, op->u.schema, v);
        case OP_IF:
            if (if_cond(x, op, v, NULL)) {
                return !op->u.cond.then || quick(x, op->u.cond.then, v);
            }
            return !op->u.cond.els || quick(x, op->u.cond.els, v);
        case OP_UNEVAL_PROPS:
            if (v->type != PIXEL_TYPE_OBJECT) {
                return true;
            }
            if (!op->u.uneval.static_names) {
                break; /* needs annotations: such a node is never quick */
            }
            if (x->cov_v == v && op->u.uneval.cover && op->u.uneval.cover->main == x->cov_o) {
                /* allOf/$ref here walked v: its declared members, plus the members with
                   the other names of the set (distinct names, each found once), make
                   every member evaluated */
                const scover *c = op->u.uneval.cover;
                size_t n = x->cov_declared;
                for (size_t k = 0; k < c->nextra && n < v->u.list.count; k++) {
                    n += member(v, c->extra[k], c->extra_len[k]) != NULL;
                }
                if (n == v->u.list.count) {
                    return true;
                }
            }
            for (const pixel_value *m = v->u.list.head; m; m = m->next) {
                bool done = pixel__strtab_find(&op->u.uneval.names, m->key, m->klen) >= 0;
                if (!done && !quick(x, op->u.schema, m)) {
                    return false;
                }
            }
            return true;
        case OP_DYNREF:
        case OP_RECREF:
        case OP_UNEVAL_ITEMS:
            break; /* never in a quick node */
    }
    x->fail = true;
    return false;
}

/* An anyOf of formats (sleaf.anyfmt) on a string: one holds (or does not assert). */
static bool any_format(ectx *x, const sop *any, const pixel_value *v)
{
    const char *s = v->u.str.s;
    size_t len = v->u.str.len;
    /* first the branches that hold without a check (a converter's flag: an IPv6
       address is not checked as an IPv4 one first), then the checkers */
    for (size_t k = 0; k < any->u.list.n; k++) {
        const sop *f = &any->u.list.v[k]->ops[0]; /* each branch is only a format */
        if (!format_asserts(x, f) || pixel__format_trusted(f->u.fmt.trust, v->flags, s, len)) {
            return true;
        }
    }
    for (size_t k = 0; k < any->u.list.n; k++) {
        if (pixel__format_check(any->u.list.v[k]->ops[0].u.fmt.id, s, len)) {
            return true;
        }
    }
    return false;
}

/* All of a leaf's keywords (the type excepted), out of line. */
__attribute__((noinline)) static bool leaf_rest(ectx *x, const sleaf *l, const pixel_value *v)
{
    if (l->eq && !(l->eq->kind == OP_CONST ? const_ok(l->eq->u.value, v)
                                             : enum_has(l->eq, v))) {
        return false;
    }
    switch (v->type) {
        case PIXEL_TYPE_STRING: {
            const char *s = v->u.str.s;
            size_t len = v->u.str.len;
            if (len > l->maxlen || len / 4 < l->minlen) {
                /* a code point takes 1 to 4 bytes: count them only when it matters */
                size_t cp = cp_len(s, len);
                if (cp < l->minlen || cp > l->maxlen) {
                    return false;
                }
            }
            return (!l->pattern || regex_match(x, l->pattern, s, len)) &&
                   (!l->format || string_ok(x, l->format, v)) &&
                   (!l->anyfmt || any_format(x, l->anyfmt, v));
        }
        case PIXEL_TYPE_INT:
            if (l->int_range) {
                return v->u.i >= l->imin && v->u.i <= l->imax;
            }
            PIXEL_FALLTHROUGH;
        case PIXEL_TYPE_NUMBER:
            for (size_t i = 0; i < l->nnum; i++) {
                if (!number_ok(&l->num[i], v)) {
                    return false;
                }
            }
            return true;
        default:
            return true;
    }
}

/* A leaf: the type and the cheap checks in line, the rest in leaf_rest(). */
__attribute__((always_inline)) static inline bool quick_leaf(ectx *x, const sleaf *l,
                                                             const pixel_value *v)
{
    if (!type_ok(v, l->types)) {
        return false;
    }
    if (!l->eq) {
        if (v->type == PIXEL_TYPE_STRING) {
            size_t len = v->u.str.len;
            if (!l->format && len - l->flo <= l->fspan) {
                if (l->anyfmt) {
                    if (!l->pattern) {
                        return any_format(x, l->anyfmt, v); /* such as ipv4 or ipv6 */
                    }
                } else if (!l->pattern) {
                    return true;
                } else if (l->pattern->prog) {
                    return l->pattern->run(l->pattern->prog, v->u.str.s, len);
                }
            }
        } else if (v->type == PIXEL_TYPE_INT && l->int_range) {
            return v->u.i >= l->imin && v->u.i <= l->imax;
        }
    }
    return leaf_rest(x, l, v);
}

/*
 * A node with an sroute, entered (its type and depth checked): the branch the
 * discriminator picks walked flat, two levels deeper as through quick() on the branch
 * and quick_flat() (whose type checks the route settled at compile time); another
 * branch, no branch, or the depth limit as quick_op() on the oneOf/anyOf.
 */
__attribute__((always_inline)) static inline bool route_walk(ectx *x, const sroute *rt,
                                                             const pixel_value *v)
{
    long b = disc_branch(rt->op, v);
    if (b < 0) {
        return quick_op(x, rt->op, v);
    }
    const sflat *f = rt->flat[b];
    if (!f || x->depth > MAX_DEPTH - 2) {
        return quick(x, rt->op->u.list.v[b], v);
    }
    x->depth += 2;
    uint32_t saved = x->lseen;
    x->lseen = 0;
    bool ok = quick_flat_walk(x, f->obj, v);
    x->lseen = saved;
    x->depth -= 2;
    return ok;
}

__attribute__((noinline)) static bool quick_routed(ectx *x, const sroute *rt, const pixel_value *v)
{
    return route_walk(x, rt, v);
}

/* A node that is not a leaf (nor only a $ref): its type and depth, then its keywords. */
__attribute__((noinline)) static bool quick_node(ectx *x, const snode *n, const pixel_value *v)
{
    if (n->boolean) {
        return n->boolean == 1;
    }
    if (!quick_enter(x, v, n->types)) {
        return false;
    }
    bool ok = true;
    if (n->route) {
        ok = quick_routed(x, n->route, v);
    } else if (n->flat) {
        ok = quick_flat(x, n->flat, v);
    } else {
        for (const sop *op = n->ops + n->skip, *end = n->ops + n->nops; op < end; op++) {
            if (!quick_op(x, op, v)) {
                ok = false;
                break;
            }
        }
    }
    x->depth--;
    return ok;
}

/* The boolean pass on a node: a leaf (the common case) in line, without the frame the
   other nodes need. */
__attribute__((noinline)) static bool quick(ectx *x, const snode *n, const pixel_value *v)
{
    while (n->alias) {
        n = n->alias;
    }
    if (n->leaf) {
        return quick_leaf(x, n->leaf, v);
    }
    return quick_node(x, n, v);
}

/* ---- annotations for unevaluated* ------------------------------------------------ */

static bool quiet_eval(ectx *x, const snode *n, const pixel_value *v, const dscope *ds)
{
    if (n->quick) {
        return quick(x, n, v);
    }
    bool saved = x->quiet;
    x->quiet = true;
    bool ok = eval(x, n, v, NULL, NULL, ds);
    x->quiet = saved;
    return ok;
}

static const dscope *enter(const snode *n, const dscope *ds, dscope *frame)
{
    if (ds && ds->res == n->res) {
        return ds;
    }
    frame->up = ds;
    frame->res = n->res;
    return frame;
}

static bool prop_evaluated(ectx *x, const snode *n, const pixel_value *obj, const pixel_value *m,
                           const dscope *ds, bool self, int depth);
static bool item_evaluated(ectx *x, const snode *n, const pixel_value *arr, const pixel_value *e,
                           size_t idx, const dscope *ds, bool self, int depth);

/* The in-place applicators: does any (valid) one evaluate the member or item? */
static bool inplace_evaluated(ectx *x, const sop *op, const pixel_value *inst, const pixel_value *m,
                              size_t idx, const dscope *ds, int depth, bool items)
{
#define EVALD(node)                                                                                \
    (items ? item_evaluated(x, (node), inst, m, idx, ds, false, depth + 1)                         \
           : prop_evaluated(x, (node), inst, m, ds, false, depth + 1))
    switch (op->kind) {
        case OP_REF:
            return EVALD(op->u.schema);
        case OP_DYNREF:
        case OP_RECREF:
            return EVALD(dyn_target(x, op, ds));
        case OP_ALLOF:
            for (size_t k = 0; k < op->u.list.n; k++) {
                if (EVALD(op->u.list.v[k])) {
                    return true;
                }
            }
            return false;
        case OP_ANYOF:
        case OP_ONEOF:
            for (size_t k = 0; k < op->u.list.n; k++) {
                if (quiet_eval(x, op->u.list.v[k], inst, ds) && EVALD(op->u.list.v[k])) {
                    return true;
                }
            }
            return false;
        case OP_IF:
            if (if_cond(x, op, inst, ds)) {
                return EVALD(op->u.cond.cond) || (op->u.cond.then && EVALD(op->u.cond.then));
            }
            return op->u.cond.els && EVALD(op->u.cond.els);
        case OP_DEPSCHEMAS:
            if (items || inst->type != PIXEL_TYPE_OBJECT) {
                return false;
            }
            for (size_t k = 0; k < op->u.dep.n; k++) {
                const sdep *d = &op->u.dep.deps[k];
                if (d->schema && pixel__object_getn(inst, d->key, d->klen) && EVALD(d->schema)) {
                    return true;
                }
            }
            return false;
        default:
            return false;
    }
#undef EVALD
}

static bool prop_evaluated(ectx *x, const snode *n, const pixel_value *obj, const pixel_value *m,
                           const dscope *ds, bool self, int depth)
{
    if (!n || n->boolean || PIXEL_UNLIKELY(x->fail)) {
        return false;
    }
    if (PIXEL_UNLIKELY(depth > MAX_DEPTH)) {
        x->fail = x->stop = true;
        return false;
    }
    dscope frame;
    ds = enter(n, ds, &frame);
    eframe f;
    if (!frame_push(x, &f, n, obj, m, ds)) {
        return false;
    }
    bool found = false;
    for (size_t i = 0; i < n->nops; i++) {
        const sop *op = &n->ops[i];
        if (op->kind == OP_OBJECT) {
            const sobject *o = op->u.obj;
            if (o->additional) {
                found = true;
                goto out;
            }
            const sprop *p = prop_find(o, m);
            if (p && p->schema) {
                found = true;
                goto out;
            }
            for (size_t k = 0; k < o->npatterns; k++) {
                if (regex_match(x, &o->patterns[k].re, m->key, m->klen)) {
                    found = true;
                    goto out;
                }
            }
        } else if (op->kind == OP_UNEVAL_PROPS) {
            if (!self) {
                found = true;
                goto out;
            }
        } else if (inplace_evaluated(x, op, obj, m, 0, ds, depth, false)) {
            found = true;
            goto out;
        }
    }
out:
    x->top = f.up;
    return found;
}

static bool item_evaluated(ectx *x, const snode *n, const pixel_value *arr, const pixel_value *e,
                           size_t idx, const dscope *ds, bool self, int depth)
{
    if (!n || n->boolean || PIXEL_UNLIKELY(x->fail)) {
        return false;
    }
    if (PIXEL_UNLIKELY(depth > MAX_DEPTH)) {
        x->fail = x->stop = true;
        return false;
    }
    dscope frame;
    ds = enter(n, ds, &frame);
    eframe f;
    if (!frame_push(x, &f, n, arr, e, ds)) {
        return false;
    }
    bool found = false;
    for (size_t i = 0; i < n->nops; i++) {
        const sop *op = &n->ops[i];
        if (op->kind == OP_ITEMS) {
            if (idx < op->u.items.nprefix || op->u.items.rest) {
                found = true;
                goto out;
            }
        } else if (op->kind == OP_CONTAINS) {
            if (n->draft == SDRAFT_2020 && quiet_eval(x, op->u.contains.schema, e, ds)) {
                found = true;
                goto out;
            }
        } else if (op->kind == OP_UNEVAL_ITEMS) {
            if (!self) {
                found = true;
                goto out;
            }
        } else if (inplace_evaluated(x, op, arr, e, idx, ds, depth, true)) {
            found = true;
            goto out;
        }
    }
out:
    x->top = f.up;
    return found;
}

/* ---- keywords --------------------------------------------------------------------- */

static bool enum_has(const sop *op, const pixel_value *v);

/* The "if" condition: directly when it is a const/enum test of one member. */
static bool if_cond(ectx *x, const sop *op, const pixel_value *v, const dscope *ds)
{
    const sop *t = op->u.cond.test;
    if (!t) {
        return quiet_eval(x, op->u.cond.cond, v, ds);
    }
    if (v->type != PIXEL_TYPE_OBJECT) {
        return true;
    }
    const sprop *p = op->u.cond.test_prop;
    const pixel_value *m = v->u.list.head;
    while (m && !(m->klen == p->klen && pixel__key_eq(m->key, p->key, p->klen))) {
        m = m->next;
    }
    if (!m) {
        return !op->u.cond.test_required;
    }
    return t->kind == OP_CONST ? const_ok(t->u.value, m) : enum_has(t, m);
}

#define SUB(node, inst, ipath, kpath) eval(x, (node), (inst), (ipath), (kpath), ds)

/* Few declared properties and nothing else: find each one instead of walking the members. */
static bool eval_object_lookup(ectx *x, const snode *n, const sobject *o, const pixel_value *v,
                               const seg *ip, const seg *kp, const dscope *ds)
{
    bool ok = true;
    for (size_t i = 0; i < o->nprops; i++) {
        const sprop *p = &o->props[i];
        const pixel_value *m = member(v, p->key, p->klen);
        if (!m) {
            if (p->req_bit >= 0) {
                ok = false;
                seg mi = {ip, p->key, p->klen, 0};
                report(x, n, kp, "required", &mi, "required property \"%.*s\" is missing",
                       (int)p->klen, p->key);
            }
        } else if (p->schema) {
            seg mi = {ip, m->key, m->klen, 0};
            seg k1 = {kp, "properties", 10, 0}, k2 = {&k1, m->key, m->klen, 0};
            ok = SUB(p->schema, m, &mi, &k2) && ok;
        }
        if (!ok && (x->quiet || x->stop)) {
            return false;
        }
    }
    return ok;
}

static bool eval_object(ectx *x, const snode *n, const sop *op, const pixel_value *v, const seg *ip,
                        const seg *kp, const dscope *ds)
{
    const sobject *o = op->u.obj;
    if (o->lookup) {
        return eval_object_lookup(x, n, o, v, ip, kp, ds);
    }
    uint64_t bits[16];
    size_t words = req_words(o);
    for (size_t i = 0; i < words; i++) {
        bits[i] = 0; /* only what "required" uses: rep stos of 128 bytes costs per object */
    }
    bool ok = true;
    for (const pixel_value *m = v->u.list.head; m; m = m->next) {
        const sprop *p = o->nprops ? prop_find(o, m) : NULL;
        seg mi = {ip, m->key, m->klen, 0};
        bool matched = false;
        if (p) {
            if (p->req_bit >= 0 && (size_t)p->req_bit < words * 64) {
                bits[p->req_bit >> 6] |= 1ull << (p->req_bit & 63);
            }
            if (p->schema) {
                matched = true;
                seg k1 = {kp, "properties", 10, 0}, k2 = {&k1, m->key, m->klen, 0};
                if (!SUB(p->schema, m, &mi, &k2)) {
                    ok = false;
                    if (x->quiet || x->stop) {
                        return false;
                    }
                }
            }
        }
        for (size_t k = 0; k < o->npatterns; k++) {
            if (!regex_match(x, &o->patterns[k].re, m->key, m->klen)) {
                continue;
            }
            matched = true;
            seg k1 = {kp, "patternProperties", 17, 0};
            seg k2 = {&k1, o->patterns[k].re.source, strlen(o->patterns[k].re.source), 0};
            if (!SUB(o->patterns[k].schema, m, &mi, &k2)) {
                ok = false;
                if (x->quiet || x->stop) {
                    return false;
                }
            }
        }
        if (!matched && o->additional) {
            seg k1 = {kp, "additionalProperties", 20, 0};
            if (o->additional->boolean == 2) {
                report(x, n, kp, "additionalProperties", &mi, "property \"%.*s\" is not allowed",
                       (int)m->klen, m->key);
                ok = false;
            } else if (!SUB(o->additional, m, &mi, &k1)) {
                ok = false;
            }
            if (!ok && (x->quiet || x->stop)) {
                return false;
            }
        }
    }
    for (size_t i = 0; i < o->nrequired; i++) {
        if (!req_seen(o, bits, i, v)) {
            ok = false;
            seg mi = {ip, o->required[i], o->required_len[i], 0};
            report(x, n, kp, "required", &mi, "required property \"%.*s\" is missing",
                   (int)o->required_len[i], o->required[i]);
            if (x->quiet || x->stop) {
                return false;
            }
        }
    }
    return ok;
}

static bool eval_items(ectx *x, const snode *n, const sop *op, const pixel_value *v, const seg *ip,
                       const seg *kp, const dscope *ds)
{
    bool ok = true;
    size_t i = 0;
    for (const pixel_value *e = v->u.list.head; e; e = e->next, i++) {
        seg ei = {ip, NULL, 0, i};
        if (i < op->u.items.nprefix) {
            seg k1 = {kp, op->u.items.prefix_kw, strlen(op->u.items.prefix_kw), 0};
            seg k2 = {&k1, NULL, 0, i};
            ok = SUB(op->u.items.prefix[i], e, &ei, &k2) && ok;
        } else if (op->u.items.rest) {
            seg k1 = {kp, op->u.items.rest_kw, strlen(op->u.items.rest_kw), 0};
            if (op->u.items.rest->boolean == 2) {
                report(x, n, kp, op->u.items.rest_kw, &ei, "item %zu is not allowed", i);
                ok = false;
            } else {
                ok = SUB(op->u.items.rest, e, &ei, &k1) && ok;
            }
        } else {
            break;
        }
        if (!ok && (x->quiet || x->stop)) {
            return false;
        }
    }
    return ok;
}

static bool unique(const pixel_value *v, size_t *a, size_t *b)
{
    size_t i = 0;
    for (const pixel_value *p = v->u.list.head; p; p = p->next, i++) {
        size_t j = i + 1;
        for (const pixel_value *q = p->next; q; q = q->next, j++) {
            if (pixel_value_equal(p, q)) {
                *a = i;
                *b = j;
                return false;
            }
        }
    }
    return true;
}

static bool enum_has(const sop *op, const pixel_value *v)
{
    if (op->u.en.all_strings) {
        return v->type == PIXEL_TYPE_STRING &&
               pixel__strtab_find(&op->u.en.strs, v->u.str.s, v->u.str.len) >= 0;
    }
    for (size_t i = 0; i < op->u.en.n; i++) {
        if (pixel_value_equal(op->u.en.values[i], v)) {
            return true;
        }
    }
    return false;
}

/* The branch a const discriminator picks, or -1. */
static long disc_branch(const sop *op, const pixel_value *v)
{
    const sdisc *d = op->u.list.disc;
    if (!d || v->type != PIXEL_TYPE_OBJECT) {
        return -1;
    }
    const pixel_value *m = member(v, d->prop, d->plen);
    if (!m || m->type != PIXEL_TYPE_STRING) {
        return -1;
    }
    return pixel__strtab_find(&d->branch, m->u.str.s, m->u.str.len);
}

static bool eval_list(ectx *x, const snode *n, const sop *op, const pixel_value *v, const seg *ip,
                      const seg *kp, const dscope *ds)
{
    seg k1 = {kp, op->kw, strlen(op->kw), 0};
    if (op->kind == OP_ALLOF) {
        bool ok = true;
        for (size_t k = 0; k < op->u.list.n; k++) {
            seg k2 = {&k1, NULL, 0, k};
            ok = SUB(op->u.list.v[k], v, ip, &k2) && ok;
            if (!ok && (x->quiet || x->stop)) {
                return false;
            }
        }
        return ok;
    }
    long b = disc_branch(op, v);
    if (b >= 0) {
        seg k2 = {&k1, NULL, 0, (size_t)b};
        return SUB(op->u.list.v[b], v, ip, &k2);
    }
    size_t nvalid = 0, first = 0, second = 0;
    for (size_t k = 0; k < op->u.list.n; k++) {
        if (quiet_eval(x, op->u.list.v[k], v, ds)) {
            if (nvalid == 0) {
                first = k;
            } else if (nvalid == 1) {
                second = k;
            }
            nvalid++;
            if (op->kind == OP_ANYOF || nvalid > 1) {
                break;
            }
        }
    }
    if (op->kind == OP_ANYOF) {
        if (nvalid == 0) {
            report(x, n, kp, "anyOf", ip, "%s matches none of the %zu anyOf schemas",
                   type_name(v), op->u.list.n);
            return false;
        }
        return true;
    }
    if (nvalid == 1) {
        return true;
    }
    if (nvalid == 0) {
        report(x, n, kp, "oneOf", ip, "%s matches none of the %zu oneOf schemas", type_name(v),
               op->u.list.n);
    } else {
        report(x, n, kp, "oneOf", ip, "%s matches more than one oneOf schema (%zu and %zu)",
               type_name(v), first, second);
    }
    return false;
}

static bool eval_contains(ectx *x, const snode *n, const sop *op, const pixel_value *v,
                          const seg *ip, const dscope *ds, const seg *kp)
{
    int64_t count = 0;
    for (const pixel_value *e = v->u.list.head; e; e = e->next) {
        if (quiet_eval(x, op->u.contains.schema, e, ds)) {
            count++;
            if (op->u.contains.max < 0 && count >= op->u.contains.min) {
                return true;
            }
        }
    }
    if (count < op->u.contains.min) {
        report(x, n, kp, op->u.contains.min == 1 ? "contains" : "minContains", ip,
               "array contains %lld matching items, at least %lld required", (long long)count,
               (long long)op->u.contains.min);
        return false;
    }
    if (op->u.contains.max >= 0 && count > op->u.contains.max) {
        report(x, n, kp, "maxContains", ip,
               "array contains %lld matching items, at most %lld allowed", (long long)count,
               (long long)op->u.contains.max);
        return false;
    }
    return true;
}

static bool eval_uneval(ectx *x, const snode *n, const sop *op, const pixel_value *v,
                        const seg *ip, const seg *kp, const dscope *ds)
{
    bool ok = true;
    seg k1 = {kp, op->kw, strlen(op->kw), 0};
    size_t i = 0;
    for (const pixel_value *m = v->u.list.head; m; m = m->next, i++) {
        bool done;
        if (op->kind == OP_UNEVAL_PROPS && op->u.uneval.static_names) {
            /* the evaluated names are static: one lookup */
            done = pixel__strtab_find(&op->u.uneval.names, m->key, m->klen) >= 0;
        } else {
            done = op->kind == OP_UNEVAL_PROPS ? prop_evaluated(x, n, v, m, ds, true, 0)
                                               : item_evaluated(x, n, v, m, i, ds, true, 0);
        }
        if (done) {
            continue;
        }
        seg mi = op->kind == OP_UNEVAL_PROPS ? (seg){ip, m->key, m->klen, 0} : (seg){ip, NULL, 0, i};
        if (op->u.schema->boolean == 2) {
            if (op->kind == OP_UNEVAL_PROPS) {
                report(x, n, kp, op->kw, &mi, "property \"%.*s\" is not allowed (unevaluated)",
                       (int)m->klen, m->key);
            } else {
                report(x, n, kp, op->kw, &mi, "item %zu is not allowed (unevaluated)", i);
            }
            ok = false;
        } else {
            ok = SUB(op->u.schema, m, &mi, &k1) && ok;
        }
        if (!ok && (x->quiet || x->stop)) {
            return false;
        }
    }
    return ok;
}

/*
 * The message of a failed keyword, out of line: the hot paths stay small
 * (no message buffers in their frames) and quiet evaluations never get here.
 */
__attribute__((noinline, cold)) static bool fail_op(ectx *x, const snode *n, const sop *op,
                                                   const pixel_value *v, const seg *ip,
                                                   const seg *kp)
{
    char a[160], b[160];
    QUIET_FAIL(x);
    pixel__schema_describe(v, a, sizeof(a));
    switch (op->kind) {
        case OP_TYPE:
            types_str(op->u.types, b, sizeof(b));
            report(x, n, kp, "type", ip, "expected %s, got %s", b, a);
            break;
        case OP_CONST:
            if (op->u.value->type == PIXEL_TYPE_OBJECT || op->u.value->type == PIXEL_TYPE_ARRAY) {
                report(x, n, kp, "const", ip, "%s is not the constant value", a);
            } else {
                pixel__schema_describe(op->u.value, b, sizeof(b));
                report(x, n, kp, "const", ip, "expected %s, got %s", b, a);
            }
            break;
        case OP_ENUM:
            report(x, n, kp, "enum", ip, "%s is not one of the %zu allowed values", a, op->u.en.n);
            break;
        case OP_MINIMUM:
        case OP_MAXIMUM:
        case OP_EXMINIMUM:
        case OP_EXMAXIMUM:
        case OP_MULTIPLEOF: {
            static const char *const rel[] = {"less than the minimum", "greater than the maximum",
                                              "not greater than the exclusive minimum",
                                              "not less than the exclusive maximum",
                                              "not a multiple of"};
            num_text(op->u.value, b, sizeof(b));
            report(x, n, kp, op->kw, ip, "%s is %s %s", a, rel[op->kind - OP_MINIMUM], b);
            break;
        }
        case OP_MINLENGTH:
            report(x, n, kp, op->kw, ip, "%s is shorter than %llu characters", a,
                   (unsigned long long)op->u.count);
            break;
        case OP_MAXLENGTH:
            report(x, n, kp, op->kw, ip, "%s is longer than %llu characters (%zu)", a,
                   (unsigned long long)op->u.count, cp_len(v->u.str.s, v->u.str.len));
            break;
        case OP_PATTERN:
            report(x, n, kp, op->kw, ip, "%s does not match the pattern %s", a, op->u.re.source);
            break;
        case OP_FORMAT:
            report(x, n, kp, op->kw, ip, "%s is not a valid %s", a, op->u.fmt.name);
            break;
        default:
            report(x, n, kp, op->kw, ip, "%s must not match the \"not\" schema", a);
            break;
    }
    return false;
}

static bool eval_number(ectx *x, const snode *n, const sop *op, const pixel_value *v,
                        const seg *ip, const seg *kp)
{
    return number_ok(op, v) || fail_op(x, n, op, v, ip, kp);
}

static bool eval_string(ectx *x, const snode *n, const sop *op, const pixel_value *v,
                        const seg *ip, const seg *kp)
{
    return string_ok(x, op, v) || fail_op(x, n, op, v, ip, kp);
}

static bool eval_op(ectx *x, const snode *n, const sop *op, const pixel_value *v, const seg *ip,
                    const seg *kp, const dscope *ds)
{
    switch (op->kind) {
        case OP_TYPE:
            return type_ok(v, op->u.types) || fail_op(x, n, op, v, ip, kp);
        case OP_CONST:
            return const_ok(op->u.value, v) || fail_op(x, n, op, v, ip, kp);
        case OP_ENUM:
            return enum_has(op, v) || fail_op(x, n, op, v, ip, kp);
        case OP_MINIMUM:
        case OP_MAXIMUM:
        case OP_EXMINIMUM:
        case OP_EXMAXIMUM:
        case OP_MULTIPLEOF:
            if (v->type != PIXEL_TYPE_INT && v->type != PIXEL_TYPE_NUMBER) {
                return true;
            }
            return eval_number(x, n, op, v, ip, kp);
        case OP_MINLENGTH:
        case OP_MAXLENGTH:
        case OP_PATTERN:
        case OP_FORMAT:
            if (v->type != PIXEL_TYPE_STRING) {
                return true;
            }
            return eval_string(x, n, op, v, ip, kp);
        case OP_MINITEMS:
        case OP_MAXITEMS:
            if (v->type != PIXEL_TYPE_ARRAY) {
                return true;
            }
            if (op->kind == OP_MINITEMS ? v->u.list.count < op->u.count
                                        : v->u.list.count > op->u.count) {
                report(x, n, kp, op->kw, ip, "array has %zu items, %s %llu", v->u.list.count,
                       op->kind == OP_MINITEMS ? "at least" : "at most",
                       (unsigned long long)op->u.count);
                return false;
            }
            return true;
        case OP_UNIQUE: {
            size_t i, j;
            if (v->type == PIXEL_TYPE_ARRAY && !unique(v, &i, &j)) {
                report(x, n, kp, "uniqueItems", ip, "items %zu and %zu are equal", i, j);
                return false;
            }
            return true;
        }
        case OP_MINPROPS:
        case OP_MAXPROPS:
            if (v->type != PIXEL_TYPE_OBJECT) {
                return true;
            }
            if (op->kind == OP_MINPROPS ? v->u.list.count < op->u.count
                                        : v->u.list.count > op->u.count) {
                report(x, n, kp, op->kw, ip, "object has %zu properties, %s %llu",
                       v->u.list.count, op->kind == OP_MINPROPS ? "at least" : "at most",
                       (unsigned long long)op->u.count);
                return false;
            }
            return true;
        case OP_OBJECT:
            return v->type != PIXEL_TYPE_OBJECT || eval_object(x, n, op, v, ip, kp, ds);
        case OP_DEPREQUIRED:
        case OP_DEPSCHEMAS: {
            if (v->type != PIXEL_TYPE_OBJECT) {
                return true;
            }
            bool ok = true;
            for (size_t k = 0; k < op->u.dep.n; k++) {
                const sdep *d = &op->u.dep.deps[k];
                if (!pixel__object_getn(v, d->key, d->klen)) {
                    continue;
                }
                for (size_t j = 0; j < d->n; j++) {
                    if (!pixel__object_getn(v, d->names[j], d->lens[j])) {
                        seg mi = {ip, d->names[j], d->lens[j], 0};
                        report(x, n, kp, op->kw, &mi,
                               "property \"%.*s\" is required when \"%.*s\" is present",
                               (int)d->lens[j], d->names[j], (int)d->klen, d->key);
                        ok = false;
                    }
                }
                if (d->schema) {
                    seg k1 = {kp, op->kw, strlen(op->kw), 0}, k2 = {&k1, d->key, d->klen, 0};
                    ok = SUB(d->schema, v, ip, &k2) && ok;
                }
                if (!ok && (x->quiet || x->stop)) {
                    return false;
                }
            }
            return ok;
        }
        case OP_PROPNAMES: {
            if (v->type != PIXEL_TYPE_OBJECT) {
                return true;
            }
            bool ok = true;
            seg k1 = {kp, "propertyNames", 13, 0};
            for (const pixel_value *m = v->u.list.head; m; m = m->next) {
                pixel_value name = {.type = PIXEL_TYPE_STRING};
                name.u.str.s = m->key;
                name.u.str.len = m->klen;
                seg mi = {ip, m->key, m->klen, 0};
                ok = SUB(op->u.schema, &name, &mi, &k1) && ok;
                if (!ok && (x->quiet || x->stop)) {
                    return false;
                }
            }
            return ok;
        }
        case OP_ITEMS:
            return v->type != PIXEL_TYPE_ARRAY || eval_items(x, n, op, v, ip, kp, ds);
        case OP_CONTAINS:
            return v->type != PIXEL_TYPE_ARRAY || eval_contains(x, n, op, v, ip, ds, kp);
        case OP_REF: {
            seg k1 = {kp, "$ref", 4, 0};
            return SUB(op->u.schema, v, ip, &k1);
        }
        case OP_DYNREF:
        case OP_RECREF: {
            seg k1 = {kp, op->kw, strlen(op->kw), 0};
            return SUB(dyn_target(x, op, ds), v, ip, &k1);
        }
        case OP_ALLOF:
        case OP_ANYOF:
        case OP_ONEOF:
            return eval_list(x, n, op, v, ip, kp, ds);
        case OP_NOT:
            return !quiet_eval(x, op->u.schema, v, ds) || fail_op(x, n, op, v, ip, kp);
        case OP_IF:
            if (if_cond(x, op, v, ds)) {
                if (op->u.cond.then) {
                    seg k1 = {kp, "then", 4, 0};
                    return SUB(op->u.cond.then, v, ip, &k1);
                }
            } else if (op->u.cond.els) {
                seg k1 = {kp, "else", 4, 0};
                return SUB(op->u.cond.els, v, ip, &k1);
            }
            return true;
        case OP_UNEVAL_PROPS:
            return v->type != PIXEL_TYPE_OBJECT || eval_uneval(x, n, op, v, ip, kp, ds);
        case OP_UNEVAL_ITEMS:
            return v->type != PIXEL_TYPE_ARRAY || eval_uneval(x, n, op, v, ip, kp, ds);
    }
    return true;
}

static bool eval(ectx *x, const snode *n, const pixel_value *v, const seg *ip, const seg *kp,
                 const dscope *ds)
{
    if (n->boolean) {
        if (n->boolean == 2) {
            char b[160];
            QUIET_FAIL(x);
            pixel__schema_describe(v, b, sizeof(b));
            report(x, n, kp, NULL, ip, "%s is not allowed here (the schema is false)", b);
            return false;
        }
        return true;
    }
    if (PIXEL_UNLIKELY(x->fail)) {
        return false; /* unwinding: nothing more to learn */
    }
    if (PIXEL_UNLIKELY(++x->depth > MAX_DEPTH)) {
        x->fail = true;
        x->stop = true;
        x->depth--;
        return false;
    }
    dscope frame;
    ds = enter(n, ds, &frame);
    eframe f;
    if (!frame_push(x, &f, n, v, NULL, ds)) {
        x->depth--;
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n->nops; i++) {
        if (!eval_op(x, n, &n->ops[i], v, ip, kp, ds)) {
            ok = false;
            if (x->quiet || x->stop) {
                break;
            }
        }
    }
    x->top = f.up;
    x->depth--;
    return ok;
}

int pixel_schema_validate(const pixel_schema *s, const pixel_value *v, unsigned flags,
                          pixel_schema_error_cb cb, void *payload)
{
    return pixel__schema_validate_framed(s, v, flags, cb, payload, NULL, 0);
}

int pixel__schema_validate_framed(const pixel_schema *s, const pixel_value *v, unsigned flags,
                                  pixel_schema_error_cb cb, void *payload, const char *frames,
                                  size_t frames_len)
{
    ectx x = {0};
    x.frames = frames;
    x.frames_len = frames ? frames_len : 0;
    x.reg = s->reg;
    x.flags = flags;
    x.cb = cb;
    x.payload = payload;
    if (s->root->quick && !(flags & SFLAG_FULL_ONLY)) {
        const snode *root = s->root;
        bool ok;
        if (root->route && v->type == PIXEL_TYPE_OBJECT) {
            /* quick() on the root without the steps between (a routed node is neither
               boolean, a leaf nor an alias, and its types allow an object) */
            x.depth = 1;
            ok = route_walk(&x, root->route, v);
            x.depth = 0;
        } else {
            ok = quick(&x, root, v);
        }
        if (!x.fail && (ok || !cb || (flags & SFLAG_QUICK_ONLY))) {
            return ok ? 0 : 1;
        }
        /* invalid: evaluate again, to say why (or to fail the same way) */
        x.fail = x.stop = false;
        x.depth = 0;
    }
    bool ok = eval(&x, s->root, v, NULL, NULL, NULL);
    if (x.fail) {
        return x.cycle ? PIXEL_ESCHEMA : PIXEL_ERROR;
    }
    return ok ? 0 : 1;
}
