/*
 * The literal prefilter (see prefilter.h).
 *
 * Reading a regex gives each node an `info`:
 *
 *   EXACT  the node matches exactly one of the strings of a small set
 *          ("bot"; {"ipad", "iphone"}; "" for an anchor);
 *   REQ    a few sets of strings, all required: every match of the node
 *          contains a string of each set;
 *   ANY    nothing is known (".", "\d+", "x*", a large character class).
 *
 * A concatenation folds each run of EXACT nodes into one set (the cross
 * product, while it stays small) and requires the sets of all its runs and
 * of its other nodes.  An alternation is EXACT when all its branches are
 * and the union is small; else it requires the union of one set of each
 * branch (each branch's best: the one whose shortest string is longest);
 * one branch with no requirement leaves none.  A quantifier that allows
 * zero gives ANY; one that needs at least one keeps the requirements.
 * Lookarounds and anchors match "", which drops a condition and never adds
 * one.  Strings are lower-cased (ASCII) and the user agent is compared
 * lower-cased, so this also holds for case-insensitive regexes; a prefix of
 * a required string is required too, so strings are cut to MAX_LIT bytes.
 * Sets whose shortest string is shorter than MIN_LIT bytes are dropped
 * (they would match nearly everything).  A syntax this reader does not know
 * gives up on the regex: it is always tried.
 *
 * Every step keeps "every match contains a string of each set", so a regex
 * the prefilter skips cannot match, and the first match is unchanged.
 */
#include "prefilter.h"

#include <stdlib.h>
#include <string.h>

#define MAX_EXACT 16     /* strings in an EXACT set */
#define MAX_EXACT_LEN 48 /* longer exact strings become a requirement */
#define MAX_OR 1024      /* strings in one required set */
#define MAX_AND 6        /* required sets kept per node (the best ones) */
#define MAX_LIT 16       /* bytes of a literal kept */
#define MIN_LIT 3        /* a set with a shorter string filters nothing */

enum { EXACT, REQ, ANY };

typedef struct strs {
    char **v; /* malloc'd, NUL-terminated, lower case */
    size_t n;
} strs;

typedef struct info {
    int kind;
    strs x;     /* EXACT: the strings */
    strs *req;  /* REQ: nreq sets, each required */
    size_t nreq;
} info;

typedef struct reader {
    const char *p;
    int bad; /* unknown syntax: give up on the regex */
    int oom;
} reader;

struct prefilter {
    size_t nregex, words, ngroups;
    uint64_t *always;  /* regexes tried whatever the input */
    uint8_t *need;     /* per regex: its groups (required sets) */
    uint32_t *group_regex;
    /* While adding: per regex, its sets as MAX_LIT-byte literals. */
    char **pending;
    size_t *pending_n;
    uint32_t **pending_group;
    /* The index: literals sorted by bytes, so grouped by their first three. */
    size_t nlits;
    char (*lit)[MAX_LIT];
    uint8_t *lit_len;
    uint32_t *lit_first; /* groups of literal i: groups[lit_first[i] .. lit_first[i + 1]) */
    uint32_t *groups;
    /* The literals starting with bytes a, b, c: an open-addressing table of
       those triples (key 1<<24 | a<<16 | b<<8 | c; 0 = empty) with the range
       first .. end of the literals, so that a position of the input whose
       three bytes start no literal costs one probe. */
    struct triple {
        uint32_t key, first, end;
    } *triples;
    uint32_t tmask, tshift;
};

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* ---- sets of strings ---- */

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static void info_free(info *a)
{
    strs_free(&a->x);
    for (size_t i = 0; i < a->nreq; i++) {
        strs_free(&a->req[i]);
    }
    free(a->req);
    a->req = NULL;
    a->nreq = 0;
}

static info any(void)
{
    return (info){ANY, {NULL, 0}, NULL, 0};
}

static info exact1(reader *r, const char *s, size_t n)
{
    info a = {EXACT, {calloc(1, sizeof(char *)), 1}, NULL, 0};
    if (a.x.v && (a.x.v[0] = malloc(n + 1))) {
        for (size_t i = 0; i < n; i++) {
            a.x.v[0][i] = (char)lower((unsigned char)s[i]);
        }
        a.x.v[0][n] = '\0';
        return a;
    }
    free(a.x.v);
    r->oom = 1;
    return any();
}

static size_t min_len(const strs *s)
{
    size_t m = (size_t)-1;
    for (size_t i = 0; i < s->n; i++) {
        size_t l = strlen(s->v[i]);
        m = l < m ? l : m;
    }
    return s->n == 0 ? 0 : m > MAX_LIT ? MAX_LIT : m;
}

/* s is a better requirement than t: its shortest string is longer, or it has fewer. */
static int better(const strs *s, const strs *t)
{
    size_t ms = min_len(s), mt = min_len(t);
    return ms > mt || (ms == mt && s->n < t->n);
}

/* Add set s (consumed) to a's requirements, keeping the MAX_AND best. */
static void require(reader *r, info *a, strs s)
{
    if (min_len(&s) < MIN_LIT) {
        strs_free(&s);
        return;
    }
    if (a->nreq == MAX_AND) {
        size_t worst = 0;
        for (size_t i = 1; i < a->nreq; i++) {
            worst = better(&a->req[worst], &a->req[i]) ? i : worst;
        }
        if (better(&s, &a->req[worst])) {
            strs_free(&a->req[worst]);
            a->req[worst] = s;
        } else {
            strs_free(&s);
        }
        return;
    }
    strs *v = realloc(a->req, (a->nreq + 1) * sizeof(strs));
    if (!v) {
        r->oom = 1;
        strs_free(&s);
        return;
    }
    a->req = v;
    a->req[a->nreq++] = s;
}

/* What a node requires of every match (a consumed): EXACT becomes REQ with
 * its strings, unless "" is one of them. */
static info to_req(reader *r, info a)
{
    if (a.kind != EXACT) {
        return a;
    }
    info out = {REQ, {NULL, 0}, NULL, 0};
    int empty = a.x.n == 0;
    for (size_t i = 0; i < a.x.n; i++) {
        empty |= a.x.v[i][0] == '\0';
    }
    if (empty) {
        info_free(&a);
        return any();
    }
    require(r, &out, a.x);
    a.x = (strs){NULL, 0};
    info_free(&a);
    return out.nreq ? out : any();
}

/* Move b's requirements (b consumed) into a. */
static void require_all(reader *r, info *a, info b)
{
    b = to_req(r, b);
    for (size_t i = 0; b.kind == REQ && i < b.nreq; i++) {
        require(r, a, b.req[i]);
        b.req[i] = (strs){NULL, 0};
    }
    info_free(&b);
}

/* a := a x b (both EXACT); 0, or -1 when it would grow too much (a and b unchanged). */
static int cross(reader *r, info *a, const info *b)
{
    if (a->x.n * b->x.n > MAX_EXACT) {
        return -1;
    }
    for (size_t i = 0; i < a->x.n; i++) {
        for (size_t k = 0; k < b->x.n; k++) {
            if (strlen(a->x.v[i]) + strlen(b->x.v[k]) > MAX_EXACT_LEN) {
                return -1;
            }
        }
    }
    strs c = {calloc(a->x.n * b->x.n + 1, sizeof(char *)), 0};
    for (size_t i = 0; c.v && i < a->x.n; i++) {
        for (size_t k = 0; k < b->x.n; k++) {
            size_t la = strlen(a->x.v[i]), lb = strlen(b->x.v[k]);
            if (!(c.v[c.n] = malloc(la + lb + 1))) {
                strs_free(&c);
                break;
            }
            memcpy(c.v[c.n], a->x.v[i], la);
            memcpy(c.v[c.n] + la, b->x.v[k], lb + 1);
            c.n++;
        }
    }
    if (!c.v) {
        r->oom = 1;
        return -1;
    }
    strs_free(&a->x);
    a->x = c;
    return 0;
}

/* s := s + t (t consumed). */
static void join(reader *r, strs *s, strs *t)
{
    char **v = realloc(s->v, (s->n + t->n + 1) * sizeof(char *));
    if (!v) {
        r->oom = 1;
        strs_free(t);
        return;
    }
    memcpy(v + s->n, t->v, t->n * sizeof(char *));
    s->v = v;
    s->n += t->n;
    free(t->v);
    *t = (strs){NULL, 0};
}

/* The one set a branch of an alternation contributes (a consumed); n == 0: none. */
static strs best_set(reader *r, info a)
{
    a = to_req(r, a);
    strs s = {NULL, 0};
    size_t best = 0;
    for (size_t i = 1; a.kind == REQ && i < a.nreq; i++) {
        best = better(&a.req[i], &a.req[best]) ? i : best;
    }
    if (a.kind == REQ && a.nreq) {
        s = a.req[best];
        a.req[best] = (strs){NULL, 0};
    }
    info_free(&a);
    return s;
}

/* ---- reading a regex ---- */

static info alternation(reader *r, int depth);

static int hexdigit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* After a backslash (r->p at the escaped char): a literal byte (>= 0), or
 * -1 for a class like \d, -2 for a zero-width assertion like \b; r->bad for
 * escapes this reader does not know. */
static int escape(reader *r)
{
    char c = *r->p++;
    switch (c) {
        case 'd': case 'D': case 'w': case 'W': case 's': case 'S': case 'h': case 'H':
        case 'v': case 'V': case 'N': case 'R': case 'X': case 'C':
            return -1;
        case 'b': case 'B': case 'A': case 'Z': case 'z': case 'G': case 'K':
            return -2;
        case 't': return '\t';
        case 'n': return '\n';
        case 'r': return '\r';
        case 'f': return '\f';
        case 'e': return 27;
        case 'a': return 7;
        case 'x': {
            int hi = hexdigit(r->p[0]), lo = hi >= 0 ? hexdigit(r->p[1]) : -1;
            if (hi >= 0 && lo >= 0) {
                r->p += 2;
                return hi * 16 + lo ? hi * 16 + lo : -1; /* a NUL would cut the literal */
            }
            r->bad = 1;
            return -1;
        }
        default:
            if (c == '\0' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                (c >= 'A' && c <= 'Z')) {
                r->bad = 1; /* back-references, \p, \Q, \k, octal, ... */
                return -1;
            }
            return (unsigned char)c;
    }
}

/* [...] (r->p after '['): up to 3 lower-cased bytes as EXACT, else ANY. */
static info char_class(reader *r)
{
    unsigned char set[256] = {0};
    int neg = *r->p == '^';
    r->p += neg;
    int first = 1, prev = -1;
    while (*r->p && (*r->p != ']' || first)) {
        first = 0;
        int c;
        if (*r->p == '[' && r->p[1] == ':') {
            r->bad = 1; /* POSIX classes */
            return any();
        }
        if (*r->p == '\\') {
            r->p++;
            c = escape(r);
            if (c == -2) {
                c = r->p[-1] == 'b' ? 8 : -1; /* \b in a class is a backspace */
            }
            if (c < 0) {
                memset(set, 1, sizeof(set)); /* \d, \w, ...: many bytes */
                prev = -1;
                continue;
            }
        } else {
            c = (unsigned char)*r->p++;
        }
        if (c == '-' && prev >= 0 && *r->p && *r->p != ']') {
            int hi;
            if (*r->p == '\\') {
                r->p++;
                hi = escape(r);
            } else {
                hi = (unsigned char)*r->p++;
            }
            if (hi < prev) {
                r->bad = 1;
                return any();
            }
            for (int k = prev; k <= hi; k++) {
                set[k] = 1;
            }
            prev = -1;
            continue;
        }
        set[c] = 1;
        prev = c;
    }
    if (*r->p != ']' || r->bad) {
        r->bad = 1;
        return any();
    }
    r->p++;
    if (neg) {
        return any();
    }
    unsigned char folded[256] = {0};
    int count = 0;
    for (int k = 0; k < 256; k++) {
        if (set[k] && !folded[lower((unsigned char)k)]) {
            folded[lower((unsigned char)k)] = 1;
            count++;
        }
    }
    if (count == 0 || count > 3) {
        return any();
    }
    info a = {EXACT, {calloc(4, sizeof(char *)), 0}, NULL, 0};
    for (int k = 0; a.x.v && k < 256; k++) {
        if (folded[k] && !(a.x.v[a.x.n] = calloc(1, 2))) {
            info_free(&a);
            break;
        }
        if (folded[k]) {
            a.x.v[a.x.n++][0] = (char)k;
        }
    }
    if (!a.x.v) {
        r->oom = 1;
        return any();
    }
    return a;
}

/* One atom (a literal, class, group, ...), without its quantifier. */
static info atom(reader *r, int depth)
{
    char c = *r->p;
    if (c == '(') {
        r->p++;
        int zero_width = 0;
        if (*r->p == '?') {
            r->p++;
            if (*r->p == ':' || *r->p == '|') {
                r->p++;
            } else if (*r->p == '=' || *r->p == '!') {
                r->p++;
                zero_width = 1;
            } else if (*r->p == '<' && (r->p[1] == '=' || r->p[1] == '!')) {
                r->p += 2;
                zero_width = 1;
            } else if (*r->p == '<' || *r->p == '\'' || (*r->p == 'P' && r->p[1] == '<')) {
                char close = *r->p == '\'' ? '\'' : '>';
                const char *e = strchr(r->p + 1, close);
                if (!e) {
                    r->bad = 1;
                    return any();
                }
                r->p = e + 1; /* a named group */
            } else {
                /* Option settings: (?i) or (?i-x:...); case does not matter here. */
                while ((*r->p >= 'a' && *r->p <= 'z') || (*r->p >= 'A' && *r->p <= 'Z') ||
                       *r->p == '-') {
                    r->p++;
                }
                if (*r->p == ')') {
                    r->p++;
                    return exact1(r, "", 0);
                }
                if (*r->p != ':') {
                    r->bad = 1;
                    return any();
                }
                r->p++;
            }
        }
        info inner = alternation(r, depth + 1);
        if (*r->p != ')') {
            r->bad = 1;
            info_free(&inner);
            return any();
        }
        r->p++;
        if (zero_width) {
            info_free(&inner);
            return exact1(r, "", 0);
        }
        return inner;
    }
    if (c == '[') {
        r->p++;
        return char_class(r);
    }
    if (c == '.') {
        r->p++;
        return any();
    }
    if (c == '^' || c == '$') {
        r->p++;
        return exact1(r, "", 0);
    }
    if (c == '*' || c == '+' || c == '?') {
        r->bad = 1; /* a quantifier with nothing before it */
        return any();
    }
    if (c == '\\') {
        r->p++;
        int e = escape(r);
        if (e == -2) {
            return exact1(r, "", 0);
        }
        if (e < 0) {
            return any();
        }
        char ch = (char)e;
        return exact1(r, &ch, 1);
    }
    r->p++;
    return exact1(r, &c, 1);
}

/* A quantifier at r->p: its minimum count, or -1 when there is none. */
static long quantifier(reader *r, int *exactly_one)
{
    long min = -1;
    *exactly_one = 0;
    if (*r->p == '*' || *r->p == '?') {
        min = 0;
        r->p++;
    } else if (*r->p == '+') {
        min = 1;
        r->p++;
    } else if (*r->p == '{') {
        const char *q = r->p + 1;
        char *end;
        long lo = strtol(q, &end, 10);
        if (end == q) {
            return -1; /* "{" that is not a quantifier is a literal */
        }
        long hi = lo;
        if (*end == ',') {
            q = end + 1;
            hi = strtol(q, &end, 10);
            if (end == q) {
                hi = -1; /* {n,} */
            }
        }
        if (*end != '}') {
            return -1;
        }
        r->p = end + 1;
        min = lo;
        *exactly_one = lo == 1 && hi == 1;
    } else {
        return -1;
    }
    if (*r->p == '?' || *r->p == '+') {
        r->p++; /* lazy, possessive */
    }
    return min;
}

/* A concatenation, up to '|', ')' or the end. */
static info sequence(reader *r, int depth)
{
    info out = {REQ, {NULL, 0}, NULL, 0}, run = exact1(r, "", 0);
    int all_exact = 1;
    while (*r->p && *r->p != '|' && *r->p != ')' && !r->bad && !r->oom) {
        info a = atom(r, depth);
        int one;
        long min = quantifier(r, &one);
        if (min == 0) {
            info_free(&a);
            a = any();
        } else if (min > 0 && !one) {
            a = to_req(r, a); /* repeated: it still contains it, no longer exactly */
        }
        if (a.kind == EXACT && run.kind == EXACT && cross(r, &run, &a) == 0) {
            info_free(&a);
            continue;
        }
        all_exact = 0;
        require_all(r, &out, run); /* the run so far is required */
        if (a.kind == EXACT) {
            run = a; /* it grew too large: a new run starts here */
        } else {
            run = exact1(r, "", 0);
            require_all(r, &out, a);
        }
    }
    if (all_exact) {
        info_free(&out);
        return run;
    }
    require_all(r, &out, run);
    if (!out.nreq) {
        info_free(&out);
        return any();
    }
    return out;
}

static info alternation(reader *r, int depth)
{
    if (depth > 50) {
        r->bad = 1;
        return any();
    }
    info all = sequence(r, depth);
    if (*r->p != '|') {
        return all; /* one branch keeps all its sets */
    }
    strs set = {NULL, 0};
    int exact = all.kind == EXACT, none = 0;
    if (!exact) {
        set = best_set(r, all);
        none = set.n == 0;
    }
    while (*r->p == '|' && !r->bad && !r->oom) {
        r->p++;
        info b = sequence(r, depth);
        if (none) {
            info_free(&b); /* read only to find the end */
            continue;
        }
        if (exact && b.kind == EXACT && all.x.n + b.x.n <= MAX_EXACT) {
            join(r, &all.x, &b.x);
            info_free(&b);
            continue;
        }
        if (exact) {
            exact = 0;
            set = best_set(r, all);
            none = set.n == 0;
        }
        strs t = best_set(r, b);
        if (none || t.n == 0 || set.n + t.n > MAX_OR) {
            strs_free(&set); /* a branch without a requirement: the whole has none */
            strs_free(&t);
            none = 1;
            continue;
        }
        join(r, &set, &t);
    }
    if (exact) {
        return all;
    }
    info out = {REQ, {NULL, 0}, NULL, 0};
    if (!none) {
        require(r, &out, set);
    }
    return out.nreq ? out : any();
}

/* ---- the index ---- */

prefilter *prefilter_new(size_t nregex)
{
    prefilter *pf = calloc(1, sizeof(*pf));
    if (!pf) {
        return NULL;
    }
    pf->nregex = nregex;
    pf->words = (nregex + 63) / 64;
    pf->always = calloc(pf->words + 1, sizeof(uint64_t));
    pf->need = calloc(nregex + 1, 1);
    pf->pending = calloc(nregex + 1, sizeof(char *));
    pf->pending_n = calloc(nregex + 1, sizeof(size_t));
    pf->pending_group = calloc(nregex + 1, sizeof(uint32_t *));
    if (!pf->always || !pf->need || !pf->pending || !pf->pending_n || !pf->pending_group) {
        prefilter_free(pf);
        return NULL;
    }
    for (size_t i = 0; i < nregex; i++) {
        pf->always[i / 64] |= 1ull << (i % 64); /* until prefilter_add() says otherwise */
    }
    return pf;
}

int prefilter_add(prefilter *pf, size_t id, const char *pattern)
{
    if (id >= pf->nregex || pf->need[id]) {
        return 0;
    }
    reader r = {pattern, 0, 0};
    info a = to_req(&r, alternation(&r, 0));
    if (*r.p) {
        r.bad = 1; /* an unbalanced ')' */
    }
    if (r.oom) {
        info_free(&a);
        return -1;
    }
    if (r.bad || a.kind != REQ || a.nreq == 0) {
        info_free(&a);
        return 0; /* always tried */
    }
    /* Each set is a group; its strings are kept as MAX_LIT-byte literals. */
    size_t n = 0;
    for (size_t g = 0; g < a.nreq; g++) {
        n += a.req[g].n;
    }
    char *text = calloc(n + 1, MAX_LIT);
    uint32_t *group = calloc(n + 1, sizeof(uint32_t));
    if (!text || !group) {
        free(text);
        free(group);
        info_free(&a);
        return -1;
    }
    n = 0;
    for (size_t g = 0; g < a.nreq; g++) {
        for (size_t i = 0; i < a.req[g].n; i++, n++) {
            size_t l = strlen(a.req[g].v[i]);
            memcpy(text + n * MAX_LIT, a.req[g].v[i], l < MAX_LIT ? l : MAX_LIT);
            group[n] = (uint32_t)(pf->ngroups + g);
        }
    }
    pf->pending[id] = text;
    pf->pending_n[id] = n;
    pf->pending_group[id] = group;
    pf->need[id] = (uint8_t)a.nreq;
    pf->ngroups += a.nreq;
    pf->always[id / 64] &= ~(1ull << (id % 64));
    info_free(&a);
    return 0;
}

typedef struct pair {
    const char *lit; /* MAX_LIT bytes, NUL-padded */
    uint32_t group;
} pair;

static int by_lit(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    int c = memcmp(x->lit, y->lit, MAX_LIT);
    return c ? c : (x->group > y->group) - (x->group < y->group);
}

static size_t lit_len(const char *lit)
{
    size_t n = 0;
    while (n < MAX_LIT && lit[n]) {
        n++;
    }
    return n;
}

static uint32_t triple_key(const char *lit)
{
    return 1u << 24 | (uint32_t)(unsigned char)lit[0] << 16 | (uint32_t)(unsigned char)lit[1] << 8 |
           (unsigned char)lit[2];
}

/* The slot of key: its entry, or the empty slot where it would go. */
static struct triple *triple_slot(const prefilter *pf, uint32_t key)
{
    for (uint32_t i = (key * 2654435761u) >> pf->tshift;; i = (i + 1) & pf->tmask) {
        struct triple *t = &pf->triples[i];
        if (t->key == key || !t->key) {
            return t;
        }
    }
}

int prefilter_build(prefilter *pf)
{
    size_t np = 0;
    for (size_t i = 0; i < pf->nregex; i++) {
        np += pf->pending_n[i];
    }
    pair *pairs = calloc(np + 1, sizeof(pair));
    pf->group_regex = calloc(pf->ngroups + 1, sizeof(uint32_t));
    if (!pairs || !pf->group_regex) {
        free(pairs);
        return -1;
    }
    np = 0;
    for (size_t i = 0; i < pf->nregex; i++) {
        for (size_t k = 0; k < pf->pending_n[i]; k++) {
            pairs[np++] = (pair){pf->pending[i] + k * MAX_LIT, pf->pending_group[i][k]};
            pf->group_regex[pf->pending_group[i][k]] = (uint32_t)i;
        }
    }
    qsort(pairs, np, sizeof(pair), by_lit);
    size_t nl = 0;
    for (size_t i = 0; i < np; i++) {
        nl += i == 0 || memcmp(pairs[i].lit, pairs[i - 1].lit, MAX_LIT) != 0;
    }
    pf->lit = calloc(nl + 1, MAX_LIT);
    pf->lit_len = calloc(nl + 1, 1);
    pf->lit_first = calloc(nl + 1, sizeof(uint32_t));
    pf->groups = calloc(np + 1, sizeof(uint32_t));
    size_t nt = 64;
    pf->tshift = 26;
    while (nt < 4 * nl) { /* at most a quarter full: a miss is mostly one probe */
        nt *= 2;
        pf->tshift--;
    }
    pf->tmask = (uint32_t)nt - 1;
    pf->triples = calloc(nt, sizeof(*pf->triples));
    if (!pf->lit || !pf->lit_len || !pf->lit_first || !pf->groups || !pf->triples) {
        free(pairs);
        return -1;
    }
    /* Sorted by (literal, group): each literal's groups are adjacent. */
    size_t l = 0, ng = 0;
    for (size_t i = 0; i < np; i++) {
        if (i == 0 || memcmp(pairs[i].lit, pairs[i - 1].lit, MAX_LIT) != 0) {
            l = i == 0 ? 0 : l + 1;
            memcpy(pf->lit[l], pairs[i].lit, MAX_LIT);
            pf->lit_len[l] = (uint8_t)lit_len(pairs[i].lit);
            pf->lit_first[l] = (uint32_t)ng;
        } else if (pairs[i].group == pairs[i - 1].group) {
            continue; /* the same literal twice in one set */
        }
        pf->groups[ng++] = pairs[i].group;
    }
    pf->nlits = nl;
    pf->lit_first[nl] = (uint32_t)ng;
    free(pairs);
    for (size_t k = 0; k < pf->nlits;) {
        if (pf->lit_len[k] < MIN_LIT) {
            /* Not made (sets with a shorter string are dropped); were it, its
               regexes are simply always tried, which keeps the first match. */
            for (uint32_t q = pf->lit_first[k]; q < pf->lit_first[k + 1]; q++) {
                uint32_t re = pf->group_regex[pf->groups[q]];
                pf->always[re / 64] |= 1ull << (re % 64);
            }
            k++;
            continue;
        }
        uint32_t key = triple_key(pf->lit[k]);
        size_t end = k + 1;
        while (end < pf->nlits && pf->lit_len[end] >= MIN_LIT && triple_key(pf->lit[end]) == key) {
            end++;
        }
        struct triple *t = triple_slot(pf, key);
        if (!t->key) { /* sorted: a triple's literals are adjacent, so this is its only run */
            *t = (struct triple){key, (uint32_t)k, (uint32_t)end};
        }
        k = end;
    }
    for (size_t i = 0; i < pf->nregex; i++) {
        free(pf->pending[i]);
        free(pf->pending_group[i]);
        pf->pending[i] = NULL;
        pf->pending_group[i] = NULL;
        pf->pending_n[i] = 0;
    }
    return 0;
}

void prefilter_free(prefilter *pf)
{
    if (!pf) {
        return;
    }
    for (size_t i = 0; pf->pending && i < pf->nregex; i++) {
        free(pf->pending[i]);
        free(pf->pending_group[i]);
    }
    free(pf->pending);
    free(pf->pending_n);
    free(pf->pending_group);
    free(pf->always);
    free(pf->need);
    free(pf->group_regex);
    free(pf->lit);
    free(pf->lit_len);
    free(pf->lit_first);
    free(pf->groups);
    free(pf->triples);
    free(pf);
}

size_t prefilter_words(const prefilter *pf)
{
    return pf->words;
}

size_t prefilter_always(const prefilter *pf)
{
    size_t n = 0;
    for (size_t i = 0; i < pf->nregex; i++) {
        n += (pf->always[i / 64] >> (i % 64)) & 1;
    }
    return n;
}

size_t prefilter_literals(const prefilter *pf)
{
    return pf->nlits;
}

size_t prefilter_work_bytes(const prefilter *pf)
{
    return ((pf->ngroups + 63) / 64 + 1) * sizeof(uint64_t) + pf->nregex + 1;
}

int prefilter_scan(const prefilter *pf, const char *s, size_t n, uint64_t *marks, void *work)
{
    size_t gwords = (pf->ngroups + 63) / 64;
    uint64_t *seen = work;
    uint8_t *need = (uint8_t *)(seen + gwords + 1);
    memset(seen, 0, (gwords + 1) * sizeof(uint64_t));
    memcpy(marks, pf->always, pf->words * sizeof(uint64_t));
    memcpy(need, pf->need, pf->nregex);
    const unsigned char *u = (const unsigned char *)s;
    uint32_t key = n >= MIN_LIT ? (uint32_t)lower(u[0]) << 8 | lower(u[1]) : 0;
    for (size_t i = 0; i + MIN_LIT <= n; i++) {
        key = 1u << 24 | (key << 8 & 0xffffff) | lower(u[i + 2]);
        const struct triple *t = triple_slot(pf, key);
        for (uint32_t k = t->first; k < t->end; k++) { /* an empty slot has none */
            size_t len = pf->lit_len[k], j = MIN_LIT;
            if (len > n - i) {
                continue;
            }
            while (j < len && lower(u[i + j]) == (unsigned char)pf->lit[k][j]) {
                j++;
            }
            for (uint32_t q = pf->lit_first[k]; j == len && q < pf->lit_first[k + 1]; q++) {
                uint32_t g = pf->groups[q];
                if ((seen[g / 64] >> (g % 64)) & 1) {
                    continue;
                }
                seen[g / 64] |= 1ull << (g % 64);
                uint32_t re = pf->group_regex[g];
                if (--need[re] == 0) {
                    marks[re / 64] |= 1ull << (re % 64); /* every set of it is there */
                }
            }
        }
    }
    return 0;
}
