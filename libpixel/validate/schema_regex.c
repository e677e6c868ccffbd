/*
 * ECMA-262 regular expressions on PCRE2.
 *
 * JSON Schema patterns are ECMA-262 (with the "u" flag) and unanchored.  We
 * translate the pattern to PCRE2 syntax and compile with PCRE2_UTF and
 * PCRE2_DOLLAR_ENDONLY, without PCRE2_UCP, which gives ECMA's ASCII-only
 * \d, \w and \b.  What the translation does:
 *
 *   \s, \S      ECMA's Unicode white space and line terminators (explicit class)
 *   .           any code point but \n, \r, U+2028, U+2029
 *   \uXXXX      \x{XXXX} (a surrogate pair becomes one code point); \u{X…} too
 *   \p{Letter}  long Unicode property names and Script=/gc= forms become the
 *               short names PCRE2 10.42 accepts (\p{L}, \p{Greek})
 *   \v \0 \cX   vertical tab, NUL, control characters
 *   [^] and []  any character / nothing
 *   \a \e \z \Z \A \h \R ...  rejected: not ECMA-262 escapes
 *
 * Known differences (docs/validation.md): \S inside a character class keeps
 * PCRE2's ASCII meaning; case-insensitive matching (never used by schemas,
 * which have no flags) is not mapped.
 *
 * Anchored deterministic patterns also get a one-pass program (further down)
 * that answers without calling PCRE2; PCRE2 still compiles every pattern, so
 * both accept the same syntax.
 */
#include <stdio.h>
#include <string.h>

#include "schema_private.h"
#include "simd.h"

static void onepass_compile(sregex *re, pixel_arena *a, const char *s, size_t len);
/* The matcher for a program of this mode (sregex.run). */
static int (*onepass_runner(const rprog *p))(const rprog *, const char *, size_t);

static const char WS_CLASS[] =
    "\\t\\n\\x0b\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"
    "\\x{3000}\\x{feff}";

static const struct {
    const char *lng, *shrt;
} PROPS[] = {
    {"Letter", "L"},
    {"Cased_Letter", "L&"},
    {"Uppercase_Letter", "Lu"},
    {"Lowercase_Letter", "Ll"},
    {"Titlecase_Letter", "Lt"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Mark", "M"},
    {"Combining_Mark", "M"},
    {"Nonspacing_Mark", "Mn"},
    {"Spacing_Mark", "Mc"},
    {"Enclosing_Mark", "Me"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Connector_Punctuation", "Pc"},
    {"Dash_Punctuation", "Pd"},
    {"Open_Punctuation", "Ps"},
    {"Close_Punctuation", "Pe"},
    {"Initial_Punctuation", "Pi"},
    {"Final_Punctuation", "Pf"},
    {"Other_Punctuation", "Po"},
    {"Symbol", "S"},
    {"Math_Symbol", "Sm"},
    {"Currency_Symbol", "Sc"},
    {"Modifier_Symbol", "Sk"},
    {"Other_Symbol", "So"},
    {"Separator", "Z"},
    {"Space_Separator", "Zs"},
    {"Line_Separator", "Zl"},
    {"Paragraph_Separator", "Zp"},
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
    {"Format", "Cf"},
    {"Surrogate", "Cs"},
    {"Private_Use", "Co"},
    {"Unassigned", "Cn"},
};

typedef struct out {
    char *buf;
    size_t len, cap;
    bool oom;
} out;

static void emit(out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->oom = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void emits(out *o, const char *s)
{
    emit(o, s, strlen(s));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The value of n hex digits, -1 for a non-digit; a value beyond the last
 * code point stays at 0x110000 (callers refuse it), so nothing overflows. */
static long hexn(const char *s, size_t n)
{
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(s[i]);
        if (h < 0) {
            return -1;
        }
        v = v > 0x10FFFF ? 0x110000 : v * 16 + h;
    }
    return v;
}

/* \p{...}: the name between the braces, rewritten. */
static int prop_name(out *o, const char *name, size_t n, bool neg, const char **why)
{
    const char *eq = memchr(name, '=', n);
    char buf[64];
    if (eq) {
        size_t kl = (size_t)(eq - name);
        const char *val = eq + 1;
        size_t vl = n - kl - 1;
        bool script = (kl == 6 && !memcmp(name, "Script", 6)) || (kl == 2 && !memcmp(name, "sc", 2)) ||
                      (kl == 17 && !memcmp(name, "Script_Extensions", 17)) ||
                      (kl == 3 && !memcmp(name, "scx", 3));
        bool gc = (kl == 16 && !memcmp(name, "General_Category", 16)) ||
                  (kl == 2 && !memcmp(name, "gc", 2));
        if (!script && !gc) {
            *why = "unknown Unicode property";
            return -1;
        }
        name = val;
        n = vl;
    }
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(PROPS); i++) {
        if (strlen(PROPS[i].lng) == n && memcmp(PROPS[i].lng, name, n) == 0) {
            name = PROPS[i].shrt;
            n = strlen(name);
            break;
        }
    }
    if (n >= sizeof(buf) - 8) {
        *why = "Unicode property name too long";
        return -1;
    }
    int k = snprintf(buf, sizeof(buf), "\\%c{%.*s}", neg ? 'P' : 'p', (int)n, name);
    emit(o, buf, (size_t)k);
    return 0;
}

static void emit_cp(out *o, long cp)
{
    char buf[16];
    int k = snprintf(buf, sizeof(buf), "\\x{%lx}", cp);
    emit(o, buf, (size_t)k);
}

/* One escape sequence at s[i] == '\\'; returns the index after it or -1. */
static long escape(out *o, const char *s, size_t len, size_t i, bool in_class, const char **why)
{
    if (i + 1 >= len) {
        *why = "pattern ends with a backslash";
        return -1;
    }
    char c = s[i + 1];
    switch (c) {
        case 'd':
        case 'D':
        case 'w':
        case 'W':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            emit(o, s + i, 2);
            return (long)i + 2;
        case 'b':
        case 'B':
            if (in_class && c == 'b') {
                emits(o, "\\x08");
            } else if (in_class) {
                *why = "\\B inside a character class";
                return -1;
            } else {
                emit(o, s + i, 2);
            }
            return (long)i + 2;
        case 'v':
            emits(o, "\\x0b");
            return (long)i + 2;
        case 's':
            if (in_class) {
                emits(o, WS_CLASS);
            } else {
                emits(o, "[");
                emits(o, WS_CLASS);
                emits(o, "]");
            }
            return (long)i + 2;
        case 'S':
            if (in_class) {
                emits(o, "\\S"); /* documented: ASCII meaning inside a class */
            } else {
                emits(o, "[^");
                emits(o, WS_CLASS);
                emits(o, "]");
            }
            return (long)i + 2;
        case '0':
            if (i + 2 < len && s[i + 2] >= '0' && s[i + 2] <= '9') {
                *why = "octal escapes are not allowed";
                return -1;
            }
            emits(o, "\\x{0}");
            return (long)i + 2;
        case 'c': {
            char l = i + 2 < len ? s[i + 2] : 0;
            if (!((l >= 'a' && l <= 'z') || (l >= 'A' && l <= 'Z'))) {
                *why = "\\c must be followed by a letter";
                return -1;
            }
            emit_cp(o, l % 32);
            return (long)i + 3;
        }
        case 'x': {
            long v = i + 3 < len ? hexn(s + i + 2, 2) : -1;
            if (v < 0) {
                *why = "\\x needs two hex digits";
                return -1;
            }
            emit_cp(o, v);
            return (long)i + 4;
        }
        case 'u': {
            if (i + 2 < len && s[i + 2] == '{') {
                const char *end = memchr(s + i + 3, '}', len - i - 3);
                long v = end ? hexn(s + i + 3, (size_t)(end - (s + i + 3))) : -1;
                if (v < 0 || v > 0x10FFFF || end == s + i + 3) {
                    *why = "bad \\u{...} escape";
                    return -1;
                }
                emit_cp(o, v);
                return (long)(end - s) + 1;
            }
            long v = i + 5 < len + 0 && i + 6 <= len ? hexn(s + i + 2, 4) : -1;
            if (v < 0) {
                *why = "\\u needs four hex digits";
                return -1;
            }
            size_t next = i + 6;
            if (v >= 0xD800 && v <= 0xDBFF && next + 6 <= len && s[next] == '\\' &&
                s[next + 1] == 'u') {
                long lo = hexn(s + next + 2, 4);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    emit_cp(o, 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
                    return (long)next + 6;
                }
            }
            if (v >= 0xD800 && v <= 0xDFFF) {
                *why = "lone surrogate escape";
                return -1;
            }
            emit_cp(o, v);
            return (long)next;
        }
        case 'p':
        case 'P': {
            if (i + 2 >= len || s[i + 2] != '{') {
                *why = "\\p needs {name}";
                return -1;
            }
            const char *end = memchr(s + i + 3, '}', len - i - 3);
            if (!end) {
                *why = "unterminated \\p{";
                return -1;
            }
            if (prop_name(o, s + i + 3, (size_t)(end - (s + i + 3)), c == 'P', why) < 0) {
                return -1;
            }
            return (long)(end - s) + 1;
        }
        case 'k':
            if (i + 2 < len && s[i + 2] == '<') {
                emit(o, s + i, 2);
                return (long)i + 2;
            }
            *why = "\\k must name a group";
            return -1;
        default:
            break;
    }
    if (c >= '1' && c <= '9' && !in_class) {
        emit(o, s + i, 2);
        return (long)i + 2;
    }
    if ((c && strchr("^$\\.*+?()[]{}|/", c)) || (in_class && c == '-')) {
        emit(o, s + i, 2);
        return (long)i + 2;
    }
    *why = "not an ECMA-262 escape";
    return -1;
}

int pixel__regex_translate(pixel_arena *a, const char *s, size_t len, char **result,
                           const char **why)
{
    out o = {pixel__arena_alloc(a, len * 40 + 64), 0, len * 40 + 64, false};
    if (!o.buf) {
        *why = "out of memory";
        return -1;
    }
    o.buf[0] = '\0';
    bool in_class = false;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            long next = escape(&o, s, len, i, in_class, why);
            if (next < 0) {
                return -1;
            }
            i = (size_t)next;
            continue;
        }
        if (!in_class && c == '[') {
            if (i + 1 < len && s[i + 1] == ']') {
                emits(&o, "(?!)");
                i += 2;
                continue;
            }
            if (i + 2 < len && s[i + 1] == '^' && s[i + 2] == ']') {
                emits(&o, "[\\s\\S]");
                i += 3;
                continue;
            }
            in_class = true;
            emit(&o, "[", 1);
            i++;
            if (i < len && s[i] == '^') {
                emit(&o, "^", 1);
                i++;
            }
            continue;
        }
        if (in_class && c == '[') {
            emits(&o, "\\["); /* ECMA: literal; PCRE2: maybe a POSIX class */
            i++;
            continue;
        }
        if (in_class && c == ']') {
            in_class = false;
        }
        if (!in_class && c == '(' && i + 1 < len && s[i + 1] == '?') {
            /* ECMA-262 groups: (?: (?= (?! (?<= (?<! (?<name> ; no flags, comments, (?P */
            char g = i + 2 < len ? s[i + 2] : 0;
            char h = i + 3 < len ? s[i + 3] : 0;
            bool ok = g == ':' || g == '=' || g == '!' ||
                      (g == '<' && (h == '=' || h == '!' || (h && h != '>')));
            if (!ok) {
                *why = "unsupported group syntax (not ECMA-262)";
                return -1;
            }
        }
        if (!in_class && c == '.') {
            emits(&o, "[^\\n\\r\\x{2028}\\x{2029}]");
            i++;
            continue;
        }
        if (c == '\0') {
            emits(&o, "\\x{0}"); /* the translation is NUL-terminated */
            i++;
            continue;
        }
        emit(&o, s + i, 1);
        i++;
    }
    if (o.oom) {
        *why = "pattern too long";
        return -1;
    }
    *result = o.buf;
    return 0;
}

int pixel__regex_compile(sregex *re, pixel_arena *a, const char *src, size_t len, char *why,
                         size_t whysize)
{
    char *pat;
    const char *w = NULL;
    memset(re, 0, sizeof(*re));
    re->source = pixel__arena_strndup(a, src, len);
    if (!re->source) {
        snprintf(why, whysize, "out of memory");
        return -1;
    }
    if (pixel__utf8_check(src, len) != len) {
        snprintf(why, whysize, "not valid UTF-8");
        return -1;
    }
    if (pixel__regex_translate(a, src, len, &pat, &w) < 0) {
        snprintf(why, whysize, "%s", w);
        return -1;
    }
    int ec;
    PCRE2_SIZE off;
    /* Nothing reads captures: without numbered back-references, groups need not capture
       (the JIT then has no capture slots to reset on each match). */
    uint32_t opts = PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK;
    bool backref = false;
    for (size_t i = 0; i + 1 < len; i++) {
        if (src[i] == '\\') {
            backref |= src[i + 1] >= '1' && src[i + 1] <= '9';
            i++;
        }
    }
    if (!backref) {
        opts |= PCRE2_NO_AUTO_CAPTURE;
    }
    re->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &ec, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        snprintf(why, whysize, "%s", (const char *)msg);
        return -1;
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    onepass_compile(re, a, src, len);
    return 0;
}

/* ---- the one-pass matcher ------------------------------------------------------ */

/*
 * Most schema patterns are anchored and deterministic: ^[0-9a-f]{32}$,
 * ^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$, ^https?://, a timestamp with an
 * optional fraction and a choice of offsets.  For those, the next byte always
 * decides what to do (one more repetition or stop; which alternative), so a
 * greedy left-to-right scan without backtracking gives exactly the ECMA-262
 * answer, without a PCRE2 call.
 *
 * The pattern is parsed into a small tree of sets (one code point from a
 * class, repeated min..max), sequences and alternations, and accepted only
 * when it is LL(1): at each repetition whose count varies, the bytes that
 * can start another round are disjoint from those that can follow;
 * alternatives start with disjoint bytes, and at most one matches empty (see
 * rb_check for patterns without a closing $).  The tree is lowered to a flat
 * list of instructions: runs of one set, blocks (fixed sequences of sets,
 * checked without a branch per byte), groups and alternations.  Each set and
 * each deciding byte set gets a bit in a 256-entry table, so every test is
 * one lookup.  Anything else (no leading ^, back-references, lookaround, \b,
 * \s, \p, non-ASCII in the pattern, more than 32 distinct sets) stays with
 * PCRE2.  Subjects are valid UTF-8, as PCRE2_NO_UTF_CHECK already assumes;
 * counts are in code points.  tests/validate/check_schema.c compares the two
 * matchers on generated subjects.
 */

enum { RI_ONE, RI_BLOCK, RI_RUN, RI_URUN, RI_GROUP, RI_ALT };

/* One instruction of a one-pass pattern. */
typedef struct rins {
    uint8_t op;
    uint8_t uni;        /* RI_URUN: 1 every non-ASCII code point; 2 all but U+2028/U+2029 */
    bool nullable;      /* an alternative that may match empty */
    bool tryall;        /* RI_ALT: try each alternative to the end (see rb_check) */
    uint16_t min, max;  /* RI_RUN, RI_URUN, RI_GROUP: repetitions (RI_ONE: exactly one) */
    uint16_t n;         /* RI_BLOCK: bytes; RI_GROUP and alternatives: instructions in the
                           body that follows; RI_ALT: alternatives */
    uint16_t at;        /* RI_BLOCK: its first entry in need[]; RI_ALT: instructions after it */
    uint16_t lit;       /* RI_BLOCK: 1 + its entry in lit[] (0: none) */
    uint32_t bit;       /* RI_ONE, RI_RUN, RI_URUN: the set; RI_GROUP and alternatives: the bytes
                           that start a round */
} rins;

/* How pixel__regex_onepass runs a program (chosen at compile time). */
enum {
    RP_EXEC,       /* the instructions (rp_exec) */
    RP_RUN_END,    /* one set repeated min..max times, then $: every byte in the set */
    RP_RUN_PREFIX, /* one set repeated, no $: the run's length */
    RP_DFA_END,    /* the DFA over the whole subject */
    RP_DFA_PREFIX, /* the DFA until it accepts or dies */
    RP_BDFA_END,   /* the same two with a row of 256 entries per state (no byte classes) */
    RP_BDFA_PREFIX,
    RP_SHENG_END,  /* the same two, at most 16 states, stepped by byte shuffles (SSSE3) */
    RP_SHENG_PREFIX,
};

static bool have_shuffle(void);

/* At most this many byte ranges make a run's set for the vector test. */
#define RP_MAX_RANGES 4

struct rprog {
    uint32_t tab[256];    /* byte -> the sets it belongs to, one bit each */
    const rins *code;
    const uint32_t *need; /* RI_BLOCK: the set each byte must belong to */
    const uint64_t *lit;  /* RI_BLOCK of at most 8 sets that are each one byte or one letter in
                             both cases: {bytes, 0x20 where case folds, 0xff per byte} */
    uint16_t ncode;
    bool anchored_end;
    const uint16_t *dfa; /* or NULL: [state + class] -> state (see dfa_compile) */
    const uint8_t *dcls; /* byte -> class */
    uint16_t dstart, dacc;
    const uint8_t *sheng; /* or NULL: [byte][state] -> state, 16 bytes a row (see dfa_compile) */
    uint8_t sstart, sacc; /* its start state, and the first accepting one */
    uint8_t mode;   /* RP_* */
    uint8_t nrange; /* RP_RUN_END: the set as byte ranges lo..lo+span (0: not a few ranges) */
    uint8_t rvec[RP_MAX_RANGES][2][16]; /* each range's lo and span, in every byte */
    /* RP_RUN_END over a set of ASCII bytes, when the CPU shuffles bytes: byte c is in
       the set when nib[0][c & 15] & nib[1][c >> 4] is not 0 (nib[0] holds, per low
       nibble, a bit per high nibble 0-7 that makes a member; nib[1] that bit, 0 for
       the high nibbles of non-ASCII bytes) */
    bool nibbles;
    uint8_t nib[2][16];
};

#define RP_MAX_NODES 128
#define RP_MAX_CODE 256
#define RP_MAX_NEED 512
#define RP_MAX_REPEAT 1000
#define RP_UNBOUNDED UINT16_MAX

/* An instruction's most repetitions as a count: RP_UNBOUNDED is no limit,
 * not 65,535 (a bounded quantifier is at most RP_MAX_REPEAT). */
static inline size_t rmax(const rins *i)
{
    return i->max == RP_UNBOUNDED ? SIZE_MAX : i->max;
}

enum { RK_SET, RK_SEQ, RK_ALT };

/* The parse tree: a node is repeated min..max times. */
typedef struct rnode {
    uint8_t kind;
    uint8_t uni; /* RK_SET: 0 ASCII only; 1 also every non-ASCII code point; 2 all but U+2028
                    and U+2029 ("." in ECMA-262) */
    bool tryall; /* RK_ALT at the very end: alternatives tried in turn */
    uint16_t min, max;
    uint16_t at, n; /* RK_SEQ/RK_ALT: children kids[at..at+n) */
} rnode;

typedef struct bset {
    uint64_t w[4]; /* bytes; a set allowing non-ASCII code points holds the lead bytes 0xC0-0xFF */
} bset;

typedef struct rbuild {
    const char *s;
    size_t i, len;
    bool bad;
    rnode nodes[RP_MAX_NODES];
    bset set[RP_MAX_NODES];   /* RK_SET: its members */
    bset first[RP_MAX_NODES]; /* bytes that can start one round of the node */
    bool empty[RP_MAX_NODES]; /* one round can match the empty string */
    uint16_t kids[RP_MAX_NODES];
    size_t nn, nk;
    bset bits[32]; /* distinct sets, one table bit each */
    size_t nbits;
    int depth;
    bool open_end; /* no closing $: a match may stop anywhere */
    rins code[RP_MAX_CODE];
    size_t ncode;
    uint32_t need[RP_MAX_NEED];
    size_t nneed;
    uint64_t lit[3 * RP_MAX_CODE];
    size_t nlit;
} rbuild;

static void bs_add(bset *b, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi && c < 256; c++) {
        b->w[c >> 6] |= 1ull << (c & 63);
    }
}

static bool bs_has(const bset *b, unsigned c)
{
    return (b->w[c >> 6] >> (c & 63)) & 1;
}

static void bs_or(bset *a, const bset *b)
{
    for (int k = 0; k < 4; k++) {
        a->w[k] |= b->w[k];
    }
}

static bool bs_meets(const bset *a, const bset *b)
{
    return ((a->w[0] & b->w[0]) | (a->w[1] & b->w[1]) | (a->w[2] & b->w[2]) |
            (a->w[3] & b->w[3])) != 0;
}

static int rb_node(rbuild *b, uint8_t kind)
{
    if (b->nn == RP_MAX_NODES) {
        b->bad = true;
        return -1;
    }
    int k = (int)b->nn++;
    memset(&b->nodes[k], 0, sizeof(b->nodes[k]));
    memset(&b->set[k], 0, sizeof(b->set[k]));
    b->nodes[k].kind = kind;
    b->nodes[k].min = b->nodes[k].max = 1;
    return k;
}

/* A class escape (\d \w \D \W) or a character escape; the set gets its members.
   Returns false for anything the one-pass matcher leaves to PCRE2. */
static bool rb_escape(rbuild *b, bset *set, uint8_t *uni, bool in_class)
{
    if (b->i + 1 >= b->len) {
        return false;
    }
    char c = b->s[b->i + 1];
    b->i += 2;
    switch (c) {
        case 'd':
            bs_add(set, '0', '9');
            return true;
        case 'w':
            bs_add(set, '0', '9');
            bs_add(set, 'a', 'z');
            bs_add(set, 'A', 'Z');
            bs_add(set, '_', '_');
            return true;
        case 'D':
        case 'W': {
            bset in = {{0, 0, 0, 0}};
            bs_add(&in, '0', '9');
            if (c == 'W') {
                bs_add(&in, 'a', 'z');
                bs_add(&in, 'A', 'Z');
                bs_add(&in, '_', '_');
            }
            for (unsigned k = 0; k < 128; k++) {
                if (!bs_has(&in, k)) {
                    bs_add(set, k, k);
                }
            }
            bs_add(set, 0xC0, 0xFF);
            *uni = 1;
            return true;
        }
        case 't':
            bs_add(set, '\t', '\t');
            return true;
        case 'n':
            bs_add(set, '\n', '\n');
            return true;
        case 'r':
            bs_add(set, '\r', '\r');
            return true;
        case 'f':
            bs_add(set, '\f', '\f');
            return true;
        case 'v':
            bs_add(set, '\v', '\v');
            return true;
        case 'x':
        case 'u': {
            size_t nd = c == 'x' ? 2 : 4;
            if (b->i + nd > b->len || (c == 'u' && b->s[b->i] == '{')) {
                return false;
            }
            long v = hexn(b->s + b->i, nd);
            if (v < 0 || v > 127) {
                return false; /* non-ASCII code points stay with PCRE2 */
            }
            b->i += nd;
            bs_add(set, (unsigned)v, (unsigned)v);
            return true;
        }
        default:
            if ((c && strchr("^$\\.*+?()[]{}|/", c)) || (in_class && c == '-')) {
                bs_add(set, (unsigned char)c, (unsigned char)c);
                return true;
            }
            return false; /* \s \S \b \B \p \c \0 \k, back-references ... */
    }
}

/* One member of a class (a character, possibly escaped) as a code point; -2 (nothing
   consumed) for a class escape such as \d, -1 for what the matcher leaves to PCRE2. */
static long rb_class_char(rbuild *b)
{
    unsigned char c = (unsigned char)b->s[b->i];
    if (c >= 128) {
        return -1;
    }
    if (c != '\\') {
        b->i++;
        return c;
    }
    if (b->i + 1 < b->len && b->s[b->i + 1] && strchr("dDwW", b->s[b->i + 1])) {
        return -2;
    }
    bset one = {{0, 0, 0, 0}};
    uint8_t uni = 0;
    if (!rb_escape(b, &one, &uni, true)) {
        return -1;
    }
    for (unsigned k = 0; k < 128; k++) {
        if (bs_has(&one, k)) {
            return k; /* every other escape rb_escape accepts is one character */
        }
    }
    return -1;
}

static bool rb_class(rbuild *b, bset *set, uint8_t *uni)
{
    b->i++; /* '[' */
    bool neg = b->i < b->len && b->s[b->i] == '^';
    bset in = {{0, 0, 0, 0}};
    uint8_t in_uni = 0;
    if (neg) {
        b->i++;
    }
    while (b->i < b->len && b->s[b->i] != ']') {
        size_t at = b->i;
        long lo = rb_class_char(b);
        if (lo == -2) {
            /* \d \w \D \W: no ranges around it */
            if (!rb_escape(b, &in, &in_uni, true)) {
                return false;
            }
            if (b->i < b->len && b->s[b->i] == '-' && b->i + 1 < b->len && b->s[b->i + 1] != ']') {
                return false;
            }
            continue;
        }
        if (lo < 0) {
            return false;
        }
        if (b->i + 1 < b->len && b->s[b->i] == '-' && b->s[b->i + 1] != ']') {
            b->i++;
            long hi = rb_class_char(b);
            if (hi < 0 || hi < lo) {
                return false;
            }
            bs_add(&in, (unsigned)lo, (unsigned)hi);
        } else {
            bs_add(&in, (unsigned)lo, (unsigned)lo);
        }
        if (b->i == at) {
            return false;
        }
    }
    if (b->i >= b->len) {
        return false;
    }
    b->i++; /* ']' */
    if (!neg) {
        *set = in;
        *uni = in_uni;
        return true;
    }
    if (in_uni) {
        return false; /* [^\W] and the like: rare, leave them to PCRE2 */
    }
    for (unsigned k = 0; k < 128; k++) {
        if (!bs_has(&in, k)) {
            bs_add(set, k, k);
        }
    }
    bs_add(set, 0xC0, 0xFF);
    *uni = 1;
    return true;
}

/* {n}, {n,}, {n,m}, ?, *, + (a trailing ? makes it lazy, which does not change
   whether a match exists). */
static void rb_quant(rbuild *b, int k)
{
    if (b->i >= b->len) {
        return;
    }
    unsigned long lo = 1, hi = 1;
    char c = b->s[b->i];
    if (c == '?') {
        lo = 0, b->i++;
    } else if (c == '*') {
        lo = 0, hi = RP_UNBOUNDED, b->i++;
    } else if (c == '+') {
        hi = RP_UNBOUNDED, b->i++;
    } else if (c == '{') {
        size_t j = b->i + 1;
        lo = 0;
        while (j < b->len && b->s[j] >= '0' && b->s[j] <= '9' && lo <= RP_MAX_REPEAT) {
            lo = lo * 10 + (unsigned long)(b->s[j++] - '0');
        }
        if (j == b->i + 1) {
            b->bad = true;
            return;
        }
        hi = lo;
        if (j < b->len && b->s[j] == ',') {
            j++;
            hi = RP_UNBOUNDED;
            if (j < b->len && b->s[j] >= '0' && b->s[j] <= '9') {
                hi = 0;
                while (j < b->len && b->s[j] >= '0' && b->s[j] <= '9' && hi <= RP_MAX_REPEAT) {
                    hi = hi * 10 + (unsigned long)(b->s[j++] - '0');
                }
            }
        }
        if (j >= b->len || b->s[j] != '}' || lo > RP_MAX_REPEAT ||
            (hi != RP_UNBOUNDED && (hi > RP_MAX_REPEAT || hi < lo)) || hi == 0) {
            b->bad = true;
            return;
        }
        b->i = j + 1;
    } else {
        return;
    }
    if (b->i < b->len && b->s[b->i] == '?') {
        b->i++;
    }
    if (b->i < b->len && b->s[b->i] && strchr("?*+{", b->s[b->i])) {
        b->bad = true; /* a quantifier on a quantifier */
        return;
    }
    if (b->nodes[k].min != 1 || b->nodes[k].max != 1) {
        b->bad = true;
        return;
    }
    b->nodes[k].min = (uint16_t)lo;
    b->nodes[k].max = (uint16_t)hi;
}

static int rb_alt(rbuild *b);

/* Stores a list of children; returns the index of the first. */
static bool rb_kids(rbuild *b, int parent, const int *list, size_t n)
{
    if (b->nk + n > RP_MAX_NODES) {
        b->bad = true;
        return false;
    }
    b->nodes[parent].at = (uint16_t)b->nk;
    b->nodes[parent].n = (uint16_t)n;
    for (size_t j = 0; j < n; j++) {
        b->kids[b->nk++] = (uint16_t)list[j];
    }
    return true;
}

/* A sequence of quantified atoms, up to '|', ')' or the end ('$' at the very end). */
static int rb_seq(rbuild *b, bool top)
{
    int list[RP_MAX_NODES];
    size_t n = 0;
    int seq = rb_node(b, RK_SEQ);
    while (!b->bad && b->i < b->len) {
        unsigned char c = (unsigned char)b->s[b->i];
        if (c == '|' || c == ')') {
            break;
        }
        if (c == '$' && top && b->i + 1 == b->len) {
            break;
        }
        int k;
        if (c == '(') {
            if (b->i + 1 < b->len && b->s[b->i + 1] == '?') {
                if (b->i + 2 >= b->len || b->s[b->i + 2] != ':') {
                    b->bad = true; /* lookaround, named groups */
                    break;
                }
                b->i += 3;
            } else {
                b->i++;
            }
            if (++b->depth > 16) {
                b->bad = true;
                break;
            }
            k = rb_alt(b);
            b->depth--;
            if (k < 0 || b->i >= b->len || b->s[b->i] != ')') {
                b->bad = true;
                break;
            }
            b->i++;
        } else {
            k = rb_node(b, RK_SET);
            if (k < 0) {
                break;
            }
            uint8_t uni = 0;
            bool ok = true;
            if (c == '[') {
                ok = rb_class(b, &b->set[k], &uni);
            } else if (c == '\\') {
                ok = rb_escape(b, &b->set[k], &uni, false);
            } else if (c == '.') {
                bs_add(&b->set[k], 0, 127);
                b->set[k].w[0] &= ~((1ull << '\n') | (1ull << '\r'));
                bs_add(&b->set[k], 0xC0, 0xFF);
                uni = 2;
                b->i++;
            } else if (c >= 128 || (c && strchr("^$*+?{}[]", c))) {
                ok = false;
            } else {
                bs_add(&b->set[k], c, c);
                b->i++;
            }
            if (!ok) {
                b->bad = true;
                break;
            }
            b->nodes[k].uni = uni;
        }
        rb_quant(b, k);
        if (n == RP_MAX_NODES) {
            b->bad = true;
            break;
        }
        list[n++] = k;
    }
    if (b->bad || seq < 0 || !rb_kids(b, seq, list, n)) {
        b->bad = true;
        return -1;
    }
    return seq;
}

static int rb_alt(rbuild *b)
{
    int list[RP_MAX_NODES];
    size_t n = 0;
    for (;;) {
        int k = rb_seq(b, false);
        if (k < 0 || n == RP_MAX_NODES) {
            b->bad = true;
            return -1;
        }
        list[n++] = k;
        if (b->i < b->len && b->s[b->i] == '|') {
            b->i++;
            continue;
        }
        break;
    }
    if (n == 1) {
        return list[0];
    }
    int alt = rb_node(b, RK_ALT);
    if (alt < 0 || !rb_kids(b, alt, list, n)) {
        b->bad = true;
        return -1;
    }
    return alt;
}

/* first[] and empty[] of node k and everything below it. */
static void rb_first(rbuild *b, int k)
{
    rnode *n = &b->nodes[k];
    bset *f = &b->first[k];
    memset(f, 0, sizeof(*f));
    if (n->kind == RK_SET) {
        *f = b->set[k];
        b->empty[k] = false;
        return;
    }
    bool empty = n->kind == RK_SEQ;
    for (size_t j = 0; j < n->n; j++) {
        int c = b->kids[n->at + j];
        rb_first(b, c);
        bool ce = b->empty[c] || b->nodes[c].min == 0;
        if (n->kind == RK_ALT) {
            bs_or(f, &b->first[c]);
            empty = empty || ce;
        } else if (empty) {
            bs_or(f, &b->first[c]);
            empty = ce;
        }
    }
    b->empty[k] = empty;
}

/*
 * The LL(1) conditions, top-down: `follow` holds the bytes that may come
 * right after node k (the end of the subject never conflicts with a byte),
 * and `tail` says that the rest of the pattern after k can match empty.
 *
 * Without a closing $, a match may stop anywhere once the pattern is done.
 * A set never fails after taking one more code point, so a greedy run stays
 * exact; but a round of a group, or the non-empty alternative of a choice,
 * can fail half-way where stopping before it (the rest being empty) would
 * have matched.  Those shapes are left to PCRE2 when the tail can be empty.
 *
 * `last` says that nothing at all follows k in the pattern.  An alternation
 * there need not be LL(1): its alternatives are tried one after the other,
 * each to the end of the subject (^(UTC|[A-Za-z]+(/[A-Za-z_]+)+)$), with no
 * more backtracking than one pass per alternative.
 */
static bool rb_check(rbuild *b, int k, const bset *follow, bool tail, bool last)
{
    rnode *n = &b->nodes[k];
    bool varies = n->min != n->max;
    if (varies && (bs_meets(&b->first[k], follow) || b->empty[k])) {
        return false; /* "one more round or stop" would need look-ahead */
    }
    if (n->kind == RK_SET) {
        return true;
    }
    if (varies && tail && b->open_end) {
        return false;
    }
    bset inner = *follow;
    if (n->max > 1) {
        if (b->empty[k]) {
            return false;
        }
        bs_or(&inner, &b->first[k]);
    }
    if (n->kind == RK_ALT && last && !varies && n->max == 1) {
        n->tryall = true;
        for (size_t j = 0; j < n->n; j++) {
            if (!rb_check(b, b->kids[n->at + j], follow, tail, true)) {
                return false;
            }
        }
        return true;
    }
    if (n->kind == RK_ALT) {
        size_t nempty = 0;
        for (size_t j = 0; j < n->n; j++) {
            int c = b->kids[n->at + j];
            for (size_t q = 0; q < j; q++) {
                if (bs_meets(&b->first[c], &b->first[b->kids[n->at + q]])) {
                    return false;
                }
            }
            nempty += b->empty[c] || b->nodes[c].min == 0;
            if (!rb_check(b, c, &inner, tail, false)) {
                return false;
            }
        }
        if (nempty > 0 && tail && b->open_end) {
            return false;
        }
        return nempty == 0 || (nempty == 1 && !bs_meets(&b->first[k], &inner));
    }
    /* a sequence: what follows child j is what can start the rest, and (while the
       rest can be empty) what follows the sequence */
    bset after = inner;
    bool rest_empty = tail;
    for (size_t j = n->n; j-- > 0;) {
        int c = b->kids[n->at + j];
        if (!rb_check(b, c, &after, rest_empty, last && n->max == 1 && j + 1 == n->n)) {
            return false;
        }
        if (b->empty[c] || b->nodes[c].min == 0) {
            bs_or(&after, &b->first[c]);
        } else {
            after = b->first[c];
            rest_empty = false;
        }
    }
    return true;
}

/* The table bit of a byte set (shared by equal sets); 0 when out of bits. */
static uint32_t rb_bit(rbuild *b, const bset *s)
{
    for (size_t j = 0; j < b->nbits; j++) {
        if (!memcmp(&b->bits[j], s, sizeof(*s))) {
            return 1u << j;
        }
    }
    if (b->nbits == 32) {
        b->bad = true;
        return 0;
    }
    b->bits[b->nbits] = *s;
    return 1u << b->nbits++;
}

static rins *rb_emit(rbuild *b, uint8_t op)
{
    if (b->ncode == RP_MAX_CODE) {
        b->bad = true;
        return NULL;
    }
    rins *i = &b->code[b->ncode++];
    memset(i, 0, sizeof(*i));
    i->op = op;
    i->min = i->max = 1;
    return i;
}

/*
 * A set of one byte (*fold 0), or of one ASCII letter in both cases (*c the
 * lower case, *fold 0x20: a byte OR 0x20 equals *c exactly for those two).
 */
static bool rb_literal(const bset *s, unsigned *c, unsigned *fold)
{
    unsigned n = 0, first = 0, second = 0;
    for (unsigned k = 0; k < 256 && n <= 2; k++) {
        if (bs_has(s, k)) {
            if (n == 0) {
                first = k;
            } else {
                second = k;
            }
            n++;
        }
    }
    if (n == 1) {
        *c = first;
        *fold = 0;
        return true;
    }
    if (n == 2 && first >= 'A' && first <= 'Z' && second == first + 0x20) {
        *c = second;
        *fold = 0x20;
        return true;
    }
    return false;
}

/* A set matched a fixed number of times, ASCII only: it may join a block. */
static bool rb_fixed(const rbuild *b, int k)
{
    const rnode *n = &b->nodes[k];
    return n->kind == RK_SET && !n->uni && n->min == n->max && n->min <= 64;
}

/*
 * Lowering to instructions.  A node with no repetition of its own becomes
 * straight-line code.  Two or more fixed ASCII sets in a row gather into a
 * block, checked without a branch per byte; a lone one is a run.
 */
static void rb_lower(rbuild *b, int k);

static void rb_lower_seq(rbuild *b, int k)
{
    const rnode *n = &b->nodes[k];
    for (size_t j = 0; j < n->n && !b->bad;) {
        int c = b->kids[n->at + j];
        size_t run = 0;
        while (j + run < n->n && rb_fixed(b, b->kids[n->at + j + run])) {
            run++;
        }
        if (run < 2) {
            rb_lower(b, c);
            j++;
            continue;
        }
        rins *i = rb_emit(b, RI_BLOCK);
        if (!i) {
            return;
        }
        i->at = (uint16_t)b->nneed;
        i->n = 0;
        unsigned char word[8] = {0}, fold[8] = {0}, mask[8] = {0}; /* in subject order */
        bool lit = true;
        for (; run > 0; run--, j++) {
            int f = b->kids[n->at + j];
            uint32_t bit = rb_bit(b, &b->set[f]);
            unsigned lc = 0, fc = 0;
            bool one = rb_literal(&b->set[f], &lc, &fc);
            for (size_t q = 0; q < b->nodes[f].min; q++) {
                if (b->nneed == RP_MAX_NEED) {
                    b->bad = true;
                    return;
                }
                b->need[b->nneed++] = bit;
                if (i->n < 8 && one) {
                    word[i->n] = (unsigned char)lc;
                    fold[i->n] = (unsigned char)fc;
                    mask[i->n] = 0xff;
                } else {
                    lit = false;
                }
                i->n++;
            }
        }
        if (lit && b->nlit + 3 <= sizeof(b->lit) / sizeof(b->lit[0])) {
            memcpy(&b->lit[b->nlit], word, 8);
            memcpy(&b->lit[b->nlit + 1], fold, 8);
            memcpy(&b->lit[b->nlit + 2], mask, 8);
            i->lit = (uint16_t)(1 + b->nlit);
            b->nlit += 3;
        }
    }
}

/* Emits a header instruction and the body after it; the header counts the body. */
static void rb_body(rbuild *b, rins *h, int k)
{
    size_t at = b->ncode;
    rnode saved = b->nodes[k];
    b->nodes[k].min = b->nodes[k].max = 1;
    rb_lower(b, k);
    b->nodes[k] = saved;
    h->n = (uint16_t)(b->ncode - at);
}

static void rb_lower(rbuild *b, int k)
{
    const rnode *n = &b->nodes[k];
    if (n->kind == RK_SET) {
        bool one = !n->uni && n->min == 1 && n->max == 1;
        rins *i = rb_emit(b, one ? RI_ONE : n->uni ? RI_URUN : RI_RUN);
        if (i) {
            i->uni = n->uni;
            i->min = n->min;
            i->max = n->max;
            i->bit = rb_bit(b, &b->set[k]);
        }
        return;
    }
    if (n->min != 1 || n->max != 1) {
        /* repeated: a group whose body is the node once */
        rins *g = rb_emit(b, RI_GROUP);
        if (g) {
            g->min = n->min;
            g->max = n->max;
            g->bit = rb_bit(b, &b->first[k]);
            rb_body(b, g, k);
        }
        return;
    }
    if (n->kind == RK_SEQ) {
        rb_lower_seq(b, k);
        return;
    }
    /* an alternation: each alternative has a header with the bytes that start it */
    rins *alt = rb_emit(b, RI_ALT);
    if (!alt) {
        return;
    }
    size_t at = b->ncode;
    alt->n = n->n;
    alt->tryall = n->tryall;
    for (size_t j = 0; j < n->n && !b->bad; j++) {
        int c = b->kids[n->at + j];
        rins *h = rb_emit(b, RI_GROUP);
        if (!h) {
            return;
        }
        h->bit = rb_bit(b, &b->first[c]);
        h->nullable = b->empty[c] || b->nodes[c].min == 0;
        rb_body(b, h, c);
    }
    alt->at = (uint16_t)(b->ncode - at);
}

/* ---- the one-pass pattern as a byte DFA ---------------------------------------------- */

/*
 * A pattern of ASCII sets only (no ".", no negated class, no \D or \W) is
 * also turned into a deterministic automaton over byte classes, when it
 * stays small: the counted repetitions are unrolled into a Thompson NFA, and
 * the subset construction gives at most DFA_MAX_STATES states.  A match is
 * then one table step per byte, with no dispatch per instruction.  The
 * automaton accepts exactly the regular language of the pattern, which is
 * what ECMA-262's backtracking decides for a pattern without back-references
 * or lookaround: with a closing $ the whole subject must be in it, without,
 * some prefix.  A state is the offset of its row in the table (a row per
 * state, a power of two of entries wide, one per byte class).  State 0 is
 * dead, and the accepting states come last (from dacc on), so one comparison
 * per byte finds both ends.
 */
#define NFA_MAX 2048
#define DFA_MAX_STATES 128
#define DFA_MAX_CLASSES 64
#define DFA_MAX_ENTRIES 4096 /* 8 KB of table */
#define NFA_NONE UINT16_MAX

typedef struct nstate {
    uint16_t eps[2]; /* epsilon edges (NFA_NONE: none) */
    uint16_t next;   /* the edge on the set, to next */
    int16_t set;     /* the rnode whose set it is, or -1 */
} nstate;

typedef struct dbuild {
    const rbuild *b;
    nstate st[NFA_MAX];
    size_t n;
    bool bad;
} dbuild;

typedef struct frag {
    uint16_t s, t;
} frag;

static uint16_t nf_new(dbuild *d)
{
    if (d->n == NFA_MAX) {
        d->bad = true;
        return 0;
    }
    nstate *s = &d->st[d->n];
    s->eps[0] = s->eps[1] = s->next = NFA_NONE;
    s->set = -1;
    return (uint16_t)d->n++;
}

static void nf_eps(dbuild *d, uint16_t from, uint16_t to)
{
    if (d->bad) {
        return;
    }
    nstate *s = &d->st[from];
    if (s->eps[0] == NFA_NONE) {
        s->eps[0] = to;
    } else if (s->eps[1] == NFA_NONE) {
        s->eps[1] = to;
    } else {
        d->bad = true; /* cannot happen: each construction leaves room */
    }
}

static frag nf_node(dbuild *d, int k);

/* Node k once, its repetition aside. */
static frag nf_once(dbuild *d, int k)
{
    const rnode *n = &d->b->nodes[k];
    frag f = {nf_new(d), nf_new(d)};
    if (d->bad) {
        return f;
    }
    if (n->kind == RK_SET) {
        d->st[f.s].set = (int16_t)k;
        d->st[f.s].next = f.t;
        return f;
    }
    if (n->kind == RK_SEQ) {
        uint16_t cur = f.s;
        for (size_t j = 0; j < n->n && !d->bad; j++) {
            frag c = nf_node(d, d->b->kids[n->at + j]);
            nf_eps(d, cur, c.s);
            cur = c.t;
        }
        nf_eps(d, cur, f.t);
        return f;
    }
    /* an alternation: a chain of splits */
    uint16_t split = f.s;
    for (size_t j = 0; j < n->n && !d->bad; j++) {
        frag c = nf_node(d, d->b->kids[n->at + j]);
        nf_eps(d, split, c.s);
        nf_eps(d, c.t, f.t);
        if (j + 1 < n->n) {
            uint16_t nx = nf_new(d);
            nf_eps(d, split, nx);
            split = nx;
        }
    }
    return f;
}

/* Node k with its repetition unrolled. */
static frag nf_node(dbuild *d, int k)
{
    const rnode *n = &d->b->nodes[k];
    if (n->min == 1 && n->max == 1) {
        return nf_once(d, k);
    }
    frag f = {nf_new(d), nf_new(d)};
    uint16_t cur = f.s;
    for (unsigned i = 0; i < n->min && !d->bad; i++) {
        frag c = nf_once(d, k);
        nf_eps(d, cur, c.s);
        cur = c.t;
    }
    if (n->max == RP_UNBOUNDED) {
        uint16_t loop = nf_new(d);
        nf_eps(d, cur, loop);
        frag c = nf_once(d, k);
        nf_eps(d, loop, c.s);
        nf_eps(d, loop, f.t);
        nf_eps(d, c.t, loop);
        return f;
    }
    for (unsigned i = n->min; i < n->max && !d->bad; i++) {
        frag c = nf_once(d, k);
        nf_eps(d, cur, c.s);
        nf_eps(d, cur, f.t);
        cur = c.t;
    }
    nf_eps(d, cur, f.t);
    return f;
}

#define NW (NFA_MAX / 64)

/* Adds the epsilon closure of state s to set w. */
static void nf_close(const dbuild *d, uint64_t *w, uint16_t s, uint16_t *stack)
{
    size_t sp = 0;
    if (w[s >> 6] >> (s & 63) & 1) {
        return;
    }
    w[s >> 6] |= 1ull << (s & 63);
    stack[sp++] = s;
    while (sp) {
        const nstate *q = &d->st[stack[--sp]];
        for (int e = 0; e < 2; e++) {
            uint16_t t = q->eps[e];
            if (t != NFA_NONE && !(w[t >> 6] >> (t & 63) & 1)) {
                w[t >> 6] |= 1ull << (t & 63);
                stack[sp++] = t;
            }
        }
    }
}

static void dfa_compile(const rbuild *b, int root, rprog *p, pixel_arena *a)
{
    /* ASCII sets only */
    for (size_t k = 0; k < b->nn; k++) {
        if (b->nodes[k].kind == RK_SET && (b->nodes[k].uni || b->set[k].w[2] || b->set[k].w[3])) {
            return;
        }
    }
    /* byte classes: bytes in the same sets */
    uint8_t cls[256];
    unsigned rep[DFA_MAX_CLASSES];
    unsigned ncls = 0;
    for (unsigned c = 0; c < 256; c++) {
        unsigned j = 0;
        for (; j < ncls; j++) {
            bool same = true;
            for (size_t k = 0; k < b->nn && same; k++) {
                same = b->nodes[k].kind != RK_SET ||
                       bs_has(&b->set[k], c) == bs_has(&b->set[k], rep[j]);
            }
            if (same) {
                break;
            }
        }
        if (j == ncls) {
            if (ncls == DFA_MAX_CLASSES) {
                return;
            }
            rep[ncls++] = c;
        }
        cls[c] = (uint8_t)j;
    }
    unsigned shift = 0;
    while ((1u << shift) < ncls) {
        shift++;
    }
    dbuild *d = pixel__malloc(sizeof(*d));
    /* DFA states as NFA state sets; [0] is the dead (empty) one */
    uint64_t(*sets)[NW] = pixel__calloc(DFA_MAX_STATES, sizeof(*sets));
    uint8_t *delta = pixel__calloc((size_t)DFA_MAX_STATES << shift, 1);
    uint16_t *stack = pixel__malloc(NFA_MAX * sizeof(uint16_t));
    uint64_t *cmask = pixel__malloc(NFA_MAX * sizeof(uint64_t));
    if (!d || !sets || !delta || !stack || !cmask) {
        goto out;
    }
    d->b = b;
    d->n = 0;
    d->bad = false;
    frag whole = nf_node(d, root);
    if (d->bad) {
        goto out;
    }
    size_t nw = (d->n + 63) / 64;
    /* per NFA state, the classes its set edge takes */
    for (size_t i = 0; i < d->n; i++) {
        uint64_t m = 0;
        for (unsigned c = 0; c < ncls && d->st[i].set >= 0; c++) {
            m |= (uint64_t)bs_has(&b->set[d->st[i].set], rep[c]) << c;
        }
        cmask[i] = m;
    }
    size_t ns = 2;
    nf_close(d, sets[1], whole.s, stack);
    for (size_t q = 1; q < ns; q++) {
        for (unsigned c = 0; c < ncls; c++) {
            uint64_t nx[NW] = {0};
            for (size_t w = 0; w < nw; w++) {
                for (uint64_t bits = sets[q][w]; bits; bits &= bits - 1) {
                    size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                    if (cmask[i] >> c & 1) {
                        nf_close(d, nx, d->st[i].next, stack);
                    }
                }
            }
            size_t t = 0;
            for (; t < ns; t++) {
                if (!memcmp(sets[t], nx, nw * sizeof(uint64_t))) {
                    break;
                }
            }
            if (t == ns) {
                if (ns == DFA_MAX_STATES) {
                    goto out;
                }
                memcpy(sets[ns++], nx, sizeof(nx));
            }
            delta[(q << shift) | c] = (uint8_t)t;
        }
    }
    if ((ns << shift) > DFA_MAX_ENTRIES) {
        goto out; /* too big to stay in the cache: the instructions do */
    }
    /* number the accepting states last */
    uint8_t perm[DFA_MAX_STATES];
    size_t next = 1, nacc = 0;
    for (size_t q = 1; q < ns; q++) {
        nacc += sets[q][whole.t >> 6] >> (whole.t & 63) & 1;
    }
    size_t acc = ns - nacc, nexta = acc;
    perm[0] = 0;
    for (size_t q = 1; q < ns; q++) {
        perm[q] = (uint8_t)((sets[q][whole.t >> 6] >> (whole.t & 63) & 1) ? nexta++ : next++);
    }
    uint16_t *tab = pixel__arena_alloc(a, (ns << shift) * sizeof(uint16_t));
    uint8_t *ctab = pixel__arena_alloc(a, 256);
    if (!tab || !ctab) {
        goto out;
    }
    memset(tab, 0, (ns << shift) * sizeof(uint16_t));
    for (size_t q = 1; q < ns; q++) {
        for (unsigned c = 0; c < ncls; c++) {
            tab[((size_t)perm[q] << shift) | c] = (uint16_t)(perm[delta[(q << shift) | c]] << shift);
        }
    }
    memcpy(ctab, cls, 256);
    p->dfa = tab;
    p->dcls = ctab;
    p->dstart = (uint16_t)(perm[1] << shift);
    p->dacc = (uint16_t)(acc << shift);
    if ((ns << 8) <= DFA_MAX_ENTRIES) {
        /* few states: a row per state of 256 entries, one per byte, saves the class lookup */
        uint16_t *btab = pixel__arena_alloc(a, (ns << 8) * sizeof(uint16_t));
        if (btab) {
            memset(btab, 0, (ns << 8) * sizeof(uint16_t));
            for (size_t q = 1; q < ns; q++) {
                for (unsigned c = 0; c < 256; c++) {
                    btab[((size_t)perm[q] << 8) | c] =
                        (uint16_t)(perm[delta[(q << shift) | cls[c]]] << 8);
                }
            }
            p->dfa = btab;
            p->dcls = NULL;
            p->dstart = (uint16_t)(perm[1] << 8);
            p->dacc = (uint16_t)(acc << 8);
        }
        /* The same automaton as one 16-byte row per byte, a lane per state,
           for a step by byte shuffle (a state fits a lane: ns <= 16).  The
           accepting states keep themselves, so that a prefix match is seen
           at the end of a block of bytes as well as after the byte that
           reached it (the dead state keeps itself already). */
        uint8_t *sh = ns <= 16 && have_shuffle() ? pixel__arena_alloc(a, 256 * 16 + 15) : NULL;
        if (sh) {
            sh = (uint8_t *)(((uintptr_t)sh + 15) & ~(uintptr_t)15);
            memset(sh, 0, 256 * 16);
            for (size_t q = 1; q < ns; q++) {
                for (unsigned c = 0; c < 256; c++) {
                    unsigned to = perm[delta[(q << shift) | cls[c]]];
                    sh[c * 16 + perm[q]] = (uint8_t)(perm[q] >= acc && b->open_end ? perm[q] : to);
                }
            }
            p->sheng = sh;
            p->sstart = perm[1];
            p->sacc = (uint8_t)acc;
        }
    }
out:
    pixel__free(cmask);
    pixel__free(stack);
    pixel__free(delta);
    pixel__free(sets);
    pixel__free(d);
}

/* A run's set as at most RP_MAX_RANGES ranges of ASCII bytes, for the vector test; left
   at none when it is not. */
static void run_ranges(rprog *p, const bset *set)
{
    unsigned n = 0;
    for (unsigned c = 0; c < 256; c++) {
        if (!bs_has(set, c) || (c > 0 && bs_has(set, c - 1))) {
            continue;
        }
        unsigned hi = c;
        while (hi < 255 && bs_has(set, hi + 1)) {
            hi++;
        }
        if (hi >= 0x80 || n == RP_MAX_RANGES) {
            return;
        }
        memset(p->rvec[n][0], (int)c, 16);
        memset(p->rvec[n][1], (int)(hi - c), 16);
        n++;
    }
    p->nrange = (uint8_t)n;
}

/* RP_RUN_END: the nibble tables of the run's set (p->nib), when it is ASCII only and the
   CPU has the byte shuffle. */
static void run_nibbles(rprog *p, const bset *set)
{
    p->nibbles = false;
    if (!have_shuffle()) {
        return;
    }
    memset(p->nib, 0, sizeof(p->nib));
    for (unsigned c = 0; c < 256; c++) {
        if (bs_has(set, c)) {
            if (c >= 0x80) {
                return;
            }
            p->nib[0][c & 15] |= (uint8_t)(1u << (c >> 4));
        }
    }
    for (unsigned h = 0; h < 8; h++) {
        p->nib[1][h] = (uint8_t)(1u << h);
    }
    p->nibbles = true;
}

static void onepass_compile(sregex *re, pixel_arena *a, const char *s, size_t len)
{
    if (len == 0 || s[0] != '^' || len > 512) {
        return;
    }
    rbuild *b = pixel__malloc(sizeof(*b));
    if (!b) {
        return;
    }
    memset(b, 0, sizeof(*b));
    b->s = s;
    b->len = len;
    b->i = 1;
    int root = rb_seq(b, true);
    bool end = !b->bad && b->i + 1 == b->len && s[b->i] == '$';
    bool ok = root >= 0 && !b->bad && (end || b->i == b->len);
    if (ok) {
        bset none = {{0, 0, 0, 0}};
        b->open_end = !end;
        rb_first(b, root);
        ok = rb_check(b, root, &none, true, true);
    }
    if (ok) {
        rb_lower(b, root);
        ok = !b->bad;
    }
    rprog *p = ok ? pixel__arena_alloc(a, sizeof(*p)) : NULL;
    rins *code = p ? pixel__arena_alloc(a, (b->ncode + 1) * sizeof(rins)) : NULL;
    uint32_t *need = code ? pixel__arena_alloc(a, (b->nneed + 1) * sizeof(uint32_t)) : NULL;
    uint64_t *lit = need ? pixel__arena_alloc(a, (b->nlit + 1) * sizeof(uint64_t)) : NULL;
    if (lit) {
        memcpy(code, b->code, b->ncode * sizeof(rins));
        memcpy(need, b->need, b->nneed * sizeof(uint32_t));
        memcpy(lit, b->lit, b->nlit * sizeof(uint64_t));
        p->lit = lit;
        for (unsigned c = 0; c < 256; c++) {
            p->tab[c] = 0;
            for (size_t j = 0; j < b->nbits; j++) {
                if (bs_has(&b->bits[j], c)) {
                    p->tab[c] |= 1u << j;
                }
            }
        }
        p->code = code;
        p->ncode = (uint16_t)b->ncode;
        p->need = need;
        p->anchored_end = end;
        p->dfa = NULL;
        p->sheng = NULL;
        dfa_compile(b, root, p, a);
        p->nrange = 0;
        p->nibbles = false;
        if (p->ncode == 1 && code[0].op == RI_RUN) {
            p->mode = end ? RP_RUN_END : RP_RUN_PREFIX;
            if (end) {
                run_ranges(p, &b->bits[__builtin_ctz(code[0].bit)]);
                run_nibbles(p, &b->bits[__builtin_ctz(code[0].bit)]);
            }
        } else if (p->sheng) {
            p->mode = end ? RP_SHENG_END : RP_SHENG_PREFIX;
        } else if (p->dfa) {
            p->mode = p->dcls ? (end ? RP_DFA_END : RP_DFA_PREFIX)
                              : (end ? RP_BDFA_END : RP_BDFA_PREFIX);
        } else {
            p->mode = RP_EXEC;
        }
        re->prog = p;
        re->run = onepass_runner(p);
    }
    pixel__free(b);
}

/* Length of the UTF-8 sequence that starts with lead byte c (valid input). */
static size_t u8len(unsigned char c)
{
    return c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* How many of s[0..lim) in a row belong to the set `bit`: eight at a time while they do. */
static inline size_t run_len(const uint32_t *tab, uint32_t bit, const unsigned char *s, size_t lim)
{
    size_t k = 0;
    while (lim - k >= 8) {
        uint32_t all = tab[s[k]] & tab[s[k + 1]] & tab[s[k + 2]] & tab[s[k + 3]] &
                       tab[s[k + 4]] & tab[s[k + 5]] & tab[s[k + 6]] & tab[s[k + 7]];
        if (!(all & bit)) {
            break;
        }
        k += 8;
    }
    while (k < lim && (tab[s[k]] & bit)) {
        k++;
    }
    return k;
}

/* Runs code[ip, end) from pos; the new position, or -1. */
static long rp_exec(const rprog *p, const rins *ip, const rins *end, const unsigned char *s,
                    size_t pos, size_t len)
{
    const uint32_t *tab = p->tab;
    while (ip < end) {
        size_t avail = len - pos;
        switch (ip->op) {
            case RI_ONE:
                if (!avail || !(tab[s[pos]] & ip->bit)) {
                    return -1;
                }
                pos++;
                ip++;
                break;
            case RI_BLOCK: {
                if (avail < ip->n) {
                    return -1;
                }
                if (ip->lit && avail >= 8) {
                    /* literal bytes (letters in either case): one word */
                    const uint64_t *l = p->lit + ip->lit - 1;
                    uint64_t w;
                    memcpy(&w, s + pos, 8);
                    if (((w | l[1]) ^ l[0]) & l[2]) {
                        return -1;
                    }
                    pos += ip->n;
                    ip++;
                    break;
                }
                const uint32_t *need = p->need + ip->at;
                uint32_t bad = 0;
                for (size_t k = 0; k < ip->n; k++) {
                    bad |= need[k] & ~tab[s[pos + k]];
                }
                if (bad) {
                    return -1;
                }
                pos += ip->n;
                ip++;
                break;
            }
            case RI_RUN: {
                size_t k = run_len(tab, ip->bit, s + pos, avail < rmax(ip) ? avail : rmax(ip));
                if (k < ip->min) {
                    return -1;
                }
                pos += k;
                ip++;
                break;
            }
            case RI_URUN: {
                size_t count = 0;
                while (count < rmax(ip) && pos < len && (tab[s[pos]] & ip->bit)) {
                    size_t w = s[pos] < 0x80 ? 1 : u8len(s[pos]);
                    if (w > len - pos ||
                        (ip->uni == 2 && w == 3 && s[pos] == 0xE2 && s[pos + 1] == 0x80 &&
                         (s[pos + 2] == 0xA8 || s[pos + 2] == 0xA9))) {
                        break; /* U+2028 and U+2029 are line terminators: not "." */
                    }
                    pos += w;
                    count++;
                }
                if (count < ip->min) {
                    return -1;
                }
                ip++;
                break;
            }
            case RI_GROUP: {
                const rins *body = ip + 1, *bend = body + ip->n;
                for (size_t round = 0; round < ip->max; round++) {
                    if (round >= ip->min && (pos >= len || !(tab[s[pos]] & ip->bit))) {
                        break;
                    }
                    long r = rp_exec(p, body, bend, s, pos, len);
                    if (r < 0) {
                        return -1;
                    }
                    pos = (size_t)r;
                }
                ip = bend;
                break;
            }
            default: { /* RI_ALT: the alternative the next byte starts, or the empty one */
                uint32_t t = pos < len ? tab[s[pos]] : 0;
                const rins *a = ip + 1, *pick = NULL, *empty = NULL;
                if (ip->tryall) {
                    /* the last thing in the pattern: the first alternative that gets to
                       the end (of the subject, with a closing $) wins */
                    for (size_t j = 0; j < ip->n; j++, a += 1 + a->n) {
                        if ((t & a->bit) || a->nullable) {
                            long r = rp_exec(p, a + 1, a + 1 + a->n, s, pos, len);
                            if (r >= 0 && (!p->anchored_end || (size_t)r == len)) {
                                return r;
                            }
                        }
                    }
                    return -1;
                }
                for (size_t j = 0; j < ip->n; j++, a += 1 + a->n) {
                    if (t & a->bit) {
                        pick = a;
                        break;
                    }
                    if (a->nullable) {
                        empty = a;
                    }
                }
                pick = pick ? pick : empty;
                if (!pick) {
                    return -1;
                }
                long r = rp_exec(p, pick + 1, pick + 1 + pick->n, s, pos, len);
                if (r < 0) {
                    return -1;
                }
                pos = (size_t)r;
                ip += 1 + ip->at;
                break;
            }
        }
    }
    return (long)pos;
}

/* RP_EXEC: the instructions, out of line (the other modes need few registers). */
__attribute__((noinline)) static int exec_all(const rprog *p, const unsigned char *u, size_t len)
{
    long r = rp_exec(p, p->code, p->code + p->ncode, u, 0, len);
    return r >= 0 && (!p->anchored_end || (size_t)r == len);
}

#ifdef PIXEL_SIMD_SSE2
/* The 16 bytes at s all in the set of p's first n ranges? */
__attribute__((always_inline)) static inline bool run16(const rprog *p, const unsigned char *s,
                                                        unsigned n)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s), in = _mm_setzero_si128();
    for (unsigned k = 0; k < n; k++) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)p->rvec[k][0]);
        __m128i span = _mm_loadu_si128((const __m128i *)(const void *)p->rvec[k][1]);
        __m128i t = _mm_sub_epi8(x, lo); /* in the range: t <= span, unsigned */
        in = _mm_or_si128(in, _mm_cmpeq_epi8(_mm_min_epu8(t, span), t));
    }
    return _mm_movemask_epi8(in) == 0xFFFF;
}

/* Every byte of s[0..len), len >= 16, in the set of p's n ranges: blocks of 16, the last
   one overlapping its neighbour. */
__attribute__((always_inline)) static inline bool run_all16(const rprog *p, const unsigned char *s,
                                                            size_t len, unsigned n)
{
    for (size_t k = 0; len - k > 16; k += 16) {
        if (!run16(p, s + k, n)) {
            return false;
        }
    }
    return run16(p, s + len - 16, n);
}
#endif

/* RP_RUN_END: the length decides the count; every byte must be in the set. */
__attribute__((always_inline)) static inline int run_end(const rprog *p, const unsigned char *u,
                                                         size_t len)
{
    const rins *i = p->code;
    if (len < i->min || len > rmax(i)) {
        return 0;
    }
#ifdef PIXEL_SIMD_SSE2
    if (len >= 16) {
        switch (p->nrange) {
            case 1:
                return run_all16(p, u, len, 1);
            case 2:
                return run_all16(p, u, len, 2);
            case 3:
                return run_all16(p, u, len, 3);
            case 4:
                return run_all16(p, u, len, 4);
            default:
                break;
        }
    }
#endif
    const uint32_t *tab = p->tab;
    uint32_t acc = i->bit;
    size_t k = 0;
    for (; len - k >= 8 && acc; k += 8) {
        acc &= tab[u[k]] & tab[u[k + 1]] & tab[u[k + 2]] & tab[u[k + 3]] & tab[u[k + 4]] &
               tab[u[k + 5]] & tab[u[k + 6]] & tab[u[k + 7]];
    }
    for (; k < len; k++) {
        acc &= tab[u[k]];
    }
    return acc != 0;
}

/* ---- the small DFA stepped by byte shuffles ---------------------------------------- */

/*
 * With at most 16 states, a state fits a lane of a 16-byte vector, and the
 * row of a byte (its next state for every state, p->sheng) picks the next
 * state with one shuffle: next = row[byte][state].  The row is loaded by the
 * byte alone, so the loads run ahead and only the shuffle, one cycle, waits
 * for the state before it (a table step waits for a load, four or five).
 * The state sits in lane 0; the other lanes carry whatever and are never
 * read.  SSSE3; the rows are used only where the CPU has it.
 */
bool pixel__regex_portable; /* tests: compile for the table steps instead */

#if defined(__x86_64__) || defined(__i386__)
#include <tmmintrin.h>
#define PIXEL_HAVE_SHENG 1

static bool have_shuffle(void)
{
    return !pixel__regex_portable && __builtin_cpu_supports("ssse3");
}

#define SHENG_STEP(st, rows, c) _mm_shuffle_epi8(_mm_load_si128((rows) + (c)), (st))

__attribute__((target("ssse3"))) static int sheng_end(const rprog *p, const unsigned char *u,
                                                      size_t len)
{
    const __m128i *rows = (const __m128i *)(const void *)p->sheng;
    __m128i st = _mm_cvtsi32_si128(p->sstart);
    /* the first len % 4 bytes by a jump, then blocks of four without a test a byte */
    size_t k = len & 3;
    switch (k) {
        case 3:
            st = SHENG_STEP(st, rows, u[0]);
            st = SHENG_STEP(st, rows, u[1]);
            st = SHENG_STEP(st, rows, u[2]);
            break;
        case 2:
            st = SHENG_STEP(st, rows, u[0]);
            st = SHENG_STEP(st, rows, u[1]);
            break;
        case 1:
            st = SHENG_STEP(st, rows, u[0]);
            break;
        default:
            break;
    }
    for (; k < len; k += 4) {
        st = SHENG_STEP(st, rows, u[k]);
        st = SHENG_STEP(st, rows, u[k + 1]);
        st = SHENG_STEP(st, rows, u[k + 2]);
        st = SHENG_STEP(st, rows, u[k + 3]);
    }
    return (_mm_cvtsi128_si32(st) & 0xFF) >= p->sacc;
}

/* A prefix: the accepting states keep themselves in these rows, so a block
 * of eight steps ends in one when any step reached one; the dead state
 * keeps itself too. */
__attribute__((target("ssse3"))) static int sheng_prefix(const rprog *p, const unsigned char *u,
                                                         size_t len)
{
    const __m128i *rows = (const __m128i *)(const void *)p->sheng;
    const unsigned acc = p->sacc;
    __m128i st = _mm_cvtsi32_si128(p->sstart);
    unsigned now = p->sstart;
    size_t k = 0;
    /* blocks of eight steps written out (a loop of one step a turn cost twice the
       instructions on a URL's scheme), then the rest */
    for (; now != 0 && now < acc && len - k >= 8; k += 8) {
        st = SHENG_STEP(st, rows, u[k]);
        st = SHENG_STEP(st, rows, u[k + 1]);
        st = SHENG_STEP(st, rows, u[k + 2]);
        st = SHENG_STEP(st, rows, u[k + 3]);
        st = SHENG_STEP(st, rows, u[k + 4]);
        st = SHENG_STEP(st, rows, u[k + 5]);
        st = SHENG_STEP(st, rows, u[k + 6]);
        st = SHENG_STEP(st, rows, u[k + 7]);
        now = (unsigned)_mm_cvtsi128_si32(st) & 0xFF;
    }
    if (now != 0 && now < acc && k < len) {
        for (; k < len; k++) {
            st = SHENG_STEP(st, rows, u[k]);
        }
        now = (unsigned)_mm_cvtsi128_si32(st) & 0xFF;
    }
    return now >= acc;
}
#else
static bool have_shuffle(void)
{
    return false;
}
#endif

/* The matchers of the commonest modes, entered directly (sregex.run). */
static int run_end_direct(const rprog *p, const char *s, size_t len)
{
    return run_end(p, (const unsigned char *)s, len);
}

#ifdef PIXEL_HAVE_SHENG
/* Whether all 16 bytes of x are in the set of p's nibble tables. */
__attribute__((target("ssse3"), always_inline)) static inline bool nib16(const rprog *p, __m128i x)
{
    const __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)p->nib[0]);
    const __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)p->nib[1]);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m128i in = _mm_and_si128(_mm_shuffle_epi8(lo, _mm_and_si128(x, low4)),
                               _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16(x, 4), low4)));
    return _mm_movemask_epi8(_mm_cmpeq_epi8(in, _mm_setzero_si128())) == 0;
}

/*
 * RP_RUN_END by the nibble tables: 16 bytes a step, the last block overlapping the one
 * before; a subject of 4 to 15 bytes fills the 16 lanes with two or four overlapping
 * loads of its own bytes (nothing outside it is read); shorter ones by the table.
 */
__attribute__((target("ssse3"))) static int run_nib_end(const rprog *p, const char *s, size_t len)
{
    const rins *i = p->code;
    if (len < i->min || len > rmax(i)) {
        return 0;
    }
    if (len >= 16) {
        for (size_t k = 0; len - k > 16; k += 16) {
            if (!nib16(p, _mm_loadu_si128((const __m128i *)(const void *)(s + k)))) {
                return 0;
            }
        }
        return nib16(p, _mm_loadu_si128((const __m128i *)(const void *)(s + len - 16)));
    }
    if (len >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
        return nib16(p, _mm_set_epi64x((long long)b, (long long)a));
    }
    if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        return nib16(p, _mm_set_epi32((int)b, (int)a, (int)b, (int)a));
    }
    uint32_t acc = i->bit;
    for (size_t k = 0; k < len; k++) {
        acc &= p->tab[(unsigned char)s[k]];
    }
    return acc != 0;
}

__attribute__((target("ssse3"))) static int sheng_end_direct(const rprog *p, const char *s,
                                                             size_t len)
{
    return sheng_end(p, (const unsigned char *)s, len);
}

__attribute__((target("ssse3"))) static int sheng_prefix_direct(const rprog *p, const char *s,
                                                                size_t len)
{
    return sheng_prefix(p, (const unsigned char *)s, len);
}
#endif

static int (*onepass_runner(const rprog *p))(const rprog *, const char *, size_t)
{
    switch (p->mode) {
        case RP_RUN_END:
#ifdef PIXEL_HAVE_SHENG
            if (p->nibbles) {
                return run_nib_end;
            }
#endif
            return run_end_direct;
#ifdef PIXEL_HAVE_SHENG
        case RP_SHENG_END:
            return sheng_end_direct;
        case RP_SHENG_PREFIX:
            return sheng_prefix_direct;
#endif
        default:
            return pixel__regex_onepass;
    }
}

int pixel__regex_onepass(const rprog *p, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    switch (p->mode) {
        case RP_RUN_END:
            return run_end(p, u, len);
        case RP_RUN_PREFIX: {
            const rins *i = p->code;
            return run_len(p->tab, i->bit, u, len < rmax(i) ? len : rmax(i)) >= i->min;
        }
        case RP_DFA_END: {
            /* the dead state keeps itself: no test per byte */
            const uint16_t *tab = p->dfa;
            const uint8_t *cls = p->dcls;
            unsigned st = p->dstart;
            size_t k = 0;
            for (; k + 2 <= len; k += 2) {
                st = tab[st + cls[u[k]]];
                st = tab[st + cls[u[k + 1]]];
            }
            if (k < len) {
                st = tab[st + cls[u[k]]];
            }
            return st >= p->dacc;
        }
        case RP_DFA_PREFIX: {
            /* a prefix is enough: stop at the first accepting state (or the dead one) */
            const uint16_t *tab = p->dfa;
            const uint8_t *cls = p->dcls;
            unsigned acc = p->dacc, st = p->dstart;
            if (st >= acc) {
                return 1;
            }
            for (size_t k = 0; k < len; k++) {
                st = tab[st + cls[u[k]]];
                if (st - 1 >= acc - 1) {
                    return st != 0;
                }
            }
            return 0;
        }
        case RP_BDFA_END: {
            const uint16_t *tab = p->dfa;
            unsigned st = p->dstart;
            size_t k = 0;
            for (; k + 4 <= len; k += 4) {
                st = tab[st + u[k]];
                st = tab[st + u[k + 1]];
                st = tab[st + u[k + 2]];
                st = tab[st + u[k + 3]];
            }
            for (; k < len; k++) {
                st = tab[st + u[k]];
            }
            return st >= p->dacc;
        }
        case RP_BDFA_PREFIX: {
            const uint16_t *tab = p->dfa;
            unsigned acc = p->dacc, st = p->dstart;
            if (st >= acc) {
                return 1;
            }
            for (size_t k = 0; k < len; k++) {
                st = tab[st + u[k]];
                if (st - 1 >= acc - 1) {
                    return st != 0;
                }
            }
            return 0;
        }
#ifdef PIXEL_HAVE_SHENG
        case RP_SHENG_END: /* the entries, so that each body has one caller, in line */
            return sheng_end_direct(p, s, len);
        case RP_SHENG_PREFIX:
            return sheng_prefix_direct(p, s, len);
#endif
        default:
            return exec_all(p, u, len);
    }
}

bool pixel__regex_shuffled(const sregex *re)
{
    return re->prog && (re->prog->mode == RP_SHENG_END || re->prog->mode == RP_SHENG_PREFIX);
}

bool pixel__regex_is_simple(const sregex *re)
{
    return re->prog != NULL;
}

int pixel__regex_search_pcre2(const sregex *re, pcre2_match_data *md, const char *s, size_t len)
{
    int rc;
    if (re->jit) {
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
        if (rc != PCRE2_ERROR_JIT_STACKLIMIT) {
            goto done;
        }
    }
    rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, PCRE2_NO_UTF_CHECK, md, NULL);
done:
    if (rc >= 0) {
        return 1;
    }
    return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
}

int pixel__regex_search(const sregex *re, pcre2_match_data *md, const char *s, size_t len)
{
    if (re->prog) {
        return pixel__regex_onepass(re->prog, s, len);
    }
    return pixel__regex_search_pcre2(re, md, s, len);
}
