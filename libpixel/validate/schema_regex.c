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
 */
#include <stdio.h>
#include <string.h>

#include "schema_private.h"

static void simple_compile(sregex *re, pixel_arena *a, const char *s, size_t len);

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

static long hexn(const char *s, size_t n)
{
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(s[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
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
    if (strchr("^$\\.*+?()[]{}|/", c) || (in_class && c == '-')) {
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
    simple_compile(re, a, src, len);
    return 0;
}

/* ---- the simple matcher ------------------------------------------------------- */

static void set_add(satom *a, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi && c < 128; c++) {
        a->set[c >> 6] |= 1ull << (c & 63);
    }
}

static bool set_has(const satom *a, unsigned char c)
{
    return c < 128 && ((a->set[c >> 6] >> (c & 63)) & 1);
}

/* One class escape or literal escape at s[i] == '\\' into a; returns chars used or 0. */
static size_t simple_escape(satom *a, const char *s, size_t i, size_t len)
{
    if (i + 1 >= len) {
        return 0;
    }
    char c = s[i + 1];
    if (c == 'd') {
        set_add(a, '0', '9');
    } else if (c == 'w') {
        set_add(a, '0', '9');
        set_add(a, 'a', 'z');
        set_add(a, 'A', 'Z');
        set_add(a, '_', '_');
    } else if (c && strchr(".-/\\^$|()[]{}*+?", c)) {
        set_add(a, (unsigned char)c, (unsigned char)c);
    } else {
        return 0;
    }
    return 2;
}

static size_t simple_class(satom *a, const char *s, size_t i, size_t len)
{
    size_t j = i + 1;
    if (j < len && s[j] == '^') {
        return 0; /* a negated class holds non-ASCII too */
    }
    while (j < len && s[j] != ']') {
        unsigned char lo = (unsigned char)s[j];
        if (lo == '\\') {
            satom t = {{0, 0}, 0, 0};
            size_t k = simple_escape(&t, s, j, len);
            if (!k) {
                return 0;
            }
            a->set[0] |= t.set[0];
            a->set[1] |= t.set[1];
            j += k;
            continue;
        }
        if (lo >= 128 || lo == '[') {
            return 0;
        }
        if (j + 2 < len && s[j + 1] == '-' && s[j + 2] != ']') {
            unsigned char hi = (unsigned char)s[j + 2];
            if (hi >= 128 || hi == '\\' || hi < lo) {
                return 0;
            }
            set_add(a, lo, hi);
            j += 3;
        } else {
            set_add(a, lo, lo);
            j++;
        }
    }
    return j < len ? j + 1 - i : 0;
}

static size_t simple_quant(satom *a, const char *s, size_t i, size_t len)
{
    a->min = a->max = 1;
    if (i >= len) {
        return 0;
    }
    size_t used = 0;
    if (s[i] == '?') {
        a->min = 0, used = 1;
    } else if (s[i] == '*') {
        a->min = 0, a->max = UINT16_MAX, used = 1;
    } else if (s[i] == '+') {
        a->max = UINT16_MAX, used = 1;
    } else if (s[i] == '{') {
        size_t j = i + 1;
        unsigned long lo = 0, hi;
        while (j < len && s[j] >= '0' && s[j] <= '9' && lo < 10000) {
            lo = lo * 10 + (unsigned long)(s[j++] - '0');
        }
        if (j == i + 1 || lo >= 10000) {
            return (size_t)-1;
        }
        hi = lo;
        if (j < len && s[j] == ',') {
            j++;
            hi = UINT16_MAX;
            if (j < len && s[j] >= '0' && s[j] <= '9') {
                hi = 0;
                while (j < len && s[j] >= '0' && s[j] <= '9' && hi < 10000) {
                    hi = hi * 10 + (unsigned long)(s[j++] - '0');
                }
            }
        }
        if (j >= len || s[j] != '}' || hi < lo || hi > UINT16_MAX) {
            return (size_t)-1;
        }
        a->min = (uint16_t)lo, a->max = (uint16_t)hi, used = j + 1 - i;
    }
    if (used && i + used < len && s[i + used] == '?') {
        return (size_t)-1; /* lazy quantifiers need backtracking */
    }
    return used;
}

/*
 * Patterns like ^[0-9a-f]{32}$ or ^https?:// : a sequence of ASCII sets with
 * counts, anchored at the start.  Greedy matching is exact when each
 * variable-count atom is disjoint from the atoms that could follow it (up to
 * the next mandatory one); anything else stays with PCRE2.
 */
static void simple_compile(sregex *re, pixel_arena *a, const char *s, size_t len)
{
    satom atoms[SIMPLE_MAX_ATOMS];
    size_t n = 0, i = 1;
    bool end = false;
    if (len == 0 || s[0] != '^') {
        return;
    }
    while (i < len) {
        if (s[i] == '$' && i + 1 == len) {
            end = true;
            break;
        }
        if (n == SIMPLE_MAX_ATOMS) {
            return;
        }
        satom *at = &atoms[n];
        memset(at, 0, sizeof(*at));
        size_t used;
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            used = simple_escape(at, s, i, len);
        } else if (c == '[') {
            used = simple_class(at, s, i, len);
        } else if (c >= 128 || strchr(".^$|()[]{}*+?", c)) {
            used = 0;
        } else {
            set_add(at, c, c);
            used = 1;
        }
        if (!used) {
            return;
        }
        i += used;
        size_t q = simple_quant(at, s, i, len);
        if (q == (size_t)-1) {
            return;
        }
        i += q;
        n++;
    }
    for (size_t k = 0; k < n; k++) {
        if (atoms[k].min == atoms[k].max) {
            continue;
        }
        for (size_t j = k + 1; j < n; j++) {
            if ((atoms[k].set[0] & atoms[j].set[0]) || (atoms[k].set[1] & atoms[j].set[1])) {
                return;
            }
            if (atoms[j].min > 0) {
                break;
            }
        }
    }
    re->atoms = pixel__arena_alloc(a, (n + 1) * sizeof(satom));
    re->table = pixel__arena_alloc(a, 256 * sizeof(uint16_t));
    if (!re->table) {
        re->atoms = NULL;
    }
    if (re->atoms) {
        for (unsigned c = 0; c < 256; c++) {
            re->table[c] = 0;
            for (size_t k = 0; k < n; k++) {
                if (set_has(&atoms[k], (unsigned char)c)) {
                    re->table[c] |= (uint16_t)(1u << k);
                }
            }
        }
        memcpy(re->atoms, atoms, n * sizeof(satom));
        re->natoms = (uint8_t)n;
        re->anchored_end = end;
    }
}

static int simple_match(const sregex *re, const char *s, size_t len)
{
    size_t pos = 0;
    const uint16_t *tab = re->table;
    for (size_t k = 0; k < re->natoms; k++) {
        const satom *a = &re->atoms[k];
        uint16_t bit = (uint16_t)(1u << k);
        size_t end = len - pos > a->max ? pos + a->max : len;
        size_t st = pos;
        while (pos < end && (tab[(unsigned char)s[pos]] & bit)) {
            pos++;
        }
        if (pos - st < a->min) {
            return 0;
        }
    }
    return !re->anchored_end || pos == len;
}

bool pixel__regex_is_simple(const sregex *re)
{
    return re->atoms != NULL;
}

int pixel__regex_search(const sregex *re, pcre2_match_data *md, const char *s, size_t len)
{
    int rc;
    if (re->atoms) {
        return simple_match(re, s, len);
    }
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
