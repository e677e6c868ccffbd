/*
 * Access-log records.
 *
 * A text format (nginx `log_format`, Apache `LogFormat`, or the built-in
 * combined/common) compiles to literals and fields: lit0 f0 lit1 f1 ... litN.
 * A field runs up to the next occurrence of the literal that follows it.
 * That is exact for what web servers write, because they escape the
 * characters that delimit fields (nginx writes `"` as \x22).  The input
 * running out before the format is complete is a truncated line.
 *
 * nginx JSON logs (`escape=json`) parse as a JSON object whose member names
 * are nginx variable names (or names configured in `json_fields`).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pipeline.h"
#include "simd.h"

static const char *const standard_names[PIXEL_F_STANDARD_COUNT] = {
    "client", "ident",    "user",   "time",  "request", "method",     "target", "path",
    "query",  "protocol", "status", "bytes", "referer", "user_agent", "host",   "request_time",
};

/* nginx variables (and Apache %-directives) that mean a standard field. */
static const struct {
    const char *var;
    int field;
} nginx_vars[] = {
    {"remote_addr", PIXEL_F_CLIENT},
    {"remote_user", PIXEL_F_USER},
    {"time_local", PIXEL_F_TIME},
    {"time_iso8601", PIXEL_F_TIME},
    {"msec", PIXEL_F_TIME},
    {"request", PIXEL_F_REQUEST},
    {"request_method", PIXEL_F_METHOD},
    {"request_uri", PIXEL_F_TARGET},
    {"uri", PIXEL_F_PATH},
    {"document_uri", PIXEL_F_PATH},
    {"args", PIXEL_F_QUERY},
    {"query_string", PIXEL_F_QUERY},
    {"server_protocol", PIXEL_F_PROTOCOL},
    {"status", PIXEL_F_STATUS},
    {"body_bytes_sent", PIXEL_F_BYTES},
    {"http_referer", PIXEL_F_REFERER},
    {"http_user_agent", PIXEL_F_USER_AGENT},
    {"host", PIXEL_F_HOST},
    {"http_host", PIXEL_F_HOST},
    {"request_time", PIXEL_F_REQUEST_TIME},
};

int pixel__field_slot(pixel_pipeline *p, const char *name, int create)
{
    for (int i = 0; i < PIXEL_F_STANDARD_COUNT; i++) {
        if (strcmp(standard_names[i], name) == 0) {
            return i;
        }
    }
    for (size_t i = 0; i < p->ncustom; i++) {
        if (strcmp(p->custom_fields[i], name) == 0) {
            return PIXEL_F_STANDARD_COUNT + (int)i;
        }
    }
    if (!create || PIXEL_F_STANDARD_COUNT + p->ncustom >= PIXEL_MAX_FIELDS) {
        return -1;
    }
    char **grown = pixel__realloc(p->custom_fields, (p->ncustom + 1) * sizeof(char *));
    if (!grown) {
        return -1;
    }
    p->custom_fields = grown;
    grown[p->ncustom] = pixel__strdup(name);
    if (!grown[p->ncustom]) {
        return -1;
    }
    return PIXEL_F_STANDARD_COUNT + (int)p->ncustom++;
}

const char *pixel__field_name(const pixel_pipeline *p, int slot)
{
    if (slot >= 0 && slot < PIXEL_F_STANDARD_COUNT) {
        return standard_names[slot];
    }
    size_t i = (size_t)(slot - PIXEL_F_STANDARD_COUNT);
    return i < p->ncustom ? p->custom_fields[i] : "?";
}

/* The field slot for an nginx variable or a header name (lower case). */
static int var_slot(pixel_pipeline *p, const char *var)
{
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(nginx_vars); i++) {
        if (strcmp(nginx_vars[i].var, var) == 0) {
            return nginx_vars[i].field;
        }
    }
    if (strncmp(var, "http_", 5) == 0) {
        char name[128];
        snprintf(name, sizeof(name), "header.%s", var + 5);
        for (char *c = name; *c; c++) {
            *c = *c == '_' ? '-' : (char)tolower((unsigned char)*c);
        }
        return pixel__field_slot(p, name, 1);
    }
    return pixel__field_slot(p, var, 1);
}

static int header_slot(pixel_pipeline *p, const char *header)
{
    if (strcasecmp(header, "Referer") == 0) {
        return PIXEL_F_REFERER;
    }
    if (strcasecmp(header, "User-Agent") == 0) {
        return PIXEL_F_USER_AGENT;
    }
    if (strcasecmp(header, "Host") == 0) {
        return PIXEL_F_HOST;
    }
    char name[128];
    snprintf(name, sizeof(name), "header.%s", header);
    for (char *c = name; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    return pixel__field_slot(p, name, 1);
}

/* ---- compiling a format -------------------------------------------------- */

typedef struct fmt_builder {
    pixel_logfmt *f;
    pixel_buf lit; /* the literal being collected */
} fmt_builder;

static int push_field(fmt_builder *b, int slot)
{
    pixel_logfmt *f = b->f;
    int *fields = pixel__realloc(f->field, (f->nfields + 1) * sizeof(int));
    char **lits = pixel__realloc(f->lit, (f->nfields + 2) * sizeof(char *));
    size_t *lens = pixel__realloc(f->litlen, (f->nfields + 2) * sizeof(size_t));
    if (fields) {
        f->field = fields;
    }
    if (lits) {
        f->lit = lits;
        lits[f->nfields] = lits[f->nfields + 1] = NULL; /* freeable whatever fails next */
    }
    if (lens) {
        f->litlen = lens;
    }
    if (!fields || !lits || !lens) {
        return -1;
    }
    /* Close the literal that precedes this field. */
    f->lit[f->nfields] = pixel__strndup(b->lit.data ? b->lit.data : "", b->lit.len);
    f->litlen[f->nfields] = b->lit.len;
    f->lit[f->nfields + 1] = NULL;
    b->lit.len = 0;
    if (!f->lit[f->nfields]) {
        return -1;
    }
    f->field[f->nfields++] = slot;
    return 0;
}

static int finish(fmt_builder *b, pixel_cfg *c, const yaml_node_t *at)
{
    pixel_logfmt *f = b->f;
    if (f->nfields == 0) {
        pixel__buf_free(&b->lit);
        return pixel__cfg_fail(c, at, "the log format has no fields");
    }
    f->lit[f->nfields] = pixel__strndup(b->lit.data ? b->lit.data : "", b->lit.len);
    f->litlen[f->nfields] = b->lit.len;
    pixel__buf_free(&b->lit);
    if (!f->lit[f->nfields]) {
        return PIXEL_ENOMEM;
    }
    /* the format's fields, and the parts split_request derives from the request */
    f->writes = 1ull << PIXEL_F_METHOD | 1ull << PIXEL_F_TARGET | 1ull << PIXEL_F_PATH |
                1ull << PIXEL_F_QUERY | 1ull << PIXEL_F_PROTOCOL;
    for (size_t i = 0; i < f->nfields; i++) {
        f->writes |= 1ull << f->field[i];
    }
    f->step = pixel__calloc(f->nfields, sizeof(*f->step));
    if (!f->step) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < f->nfields; i++) {
        pixel_logstep *st = &f->step[i];
        st->lit = f->lit[i + 1];
        st->litlen = (uint32_t)f->litlen[i + 1];
        st->slot = f->field[i];
        /* the first up to 4 bytes as a word read from memory, and the mask of those set */
        unsigned char head[4] = {0}, mask[4] = {0};
        for (size_t k = 0; k < 4 && k < f->litlen[i + 1]; k++) {
            head[k] = (unsigned char)st->lit[k];
            mask[k] = 0xff;
        }
        memcpy(&st->head, head, 4);
        memcpy(&st->mask, mask, 4);
        st->first4 = (unsigned char)st->lit[0] * 0x01010101u;
    }
    for (size_t i = 1; i < f->nfields; i++) {
        if (f->litlen[i] == 0) {
            return pixel__cfg_fail(
                c, at,
                "fields '%s' and '%s' touch: a literal separator is needed "
                "between two fields",
                standard_names[0] && f->field[i - 1] < PIXEL_F_STANDARD_COUNT
                    ? standard_names[f->field[i - 1]]
                    : "?",
                f->field[i] < PIXEL_F_STANDARD_COUNT ? standard_names[f->field[i]] : "?");
        }
    }
    return 0;
}

static int compile_nginx(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *at, const char *s,
                         fmt_builder *b)
{
    while (*s) {
        if (*s != '$') {
            if (pixel__buf_append(&b->lit, s++, 1) < 0) {
                return PIXEL_ENOMEM;
            }
            continue;
        }
        s++;
        int braced = *s == '{';
        s += braced;
        char var[96];
        size_t n = 0;
        while ((isalnum((unsigned char)*s) || *s == '_') && n < sizeof(var) - 1) {
            var[n++] = *s++;
        }
        var[n] = '\0';
        if (n == 0 || (braced && *s++ != '}')) {
            return pixel__cfg_fail(c, at, "malformed variable in nginx log_format near '$%s'", var);
        }
        int slot = var_slot(p, var);
        if (slot < 0) {
            return pixel__cfg_fail(c, at, "too many distinct fields in the log format");
        }
        if (push_field(b, slot) < 0) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

static int apache_directive(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *at, char d,
                            const char *arg, fmt_builder *b)
{
    int slot;
    switch (d) {
        case 'h':
        case 'a':
            slot = PIXEL_F_CLIENT;
            break;
        case 'l':
            slot = PIXEL_F_IDENT;
            break;
        case 'u':
            slot = PIXEL_F_USER;
            break;
        case 't':
            /* %t is "[10/Oct/2000:13:55:36 -0700]": the brackets are literal. */
            if (pixel__buf_append(&b->lit, "[", 1) < 0 || push_field(b, PIXEL_F_TIME) < 0 ||
                pixel__buf_append(&b->lit, "]", 1) < 0) {
                return PIXEL_ENOMEM;
            }
            return 0;
        case 'r':
            slot = PIXEL_F_REQUEST;
            break;
        case 's':
            slot = PIXEL_F_STATUS;
            break;
        case 'b':
        case 'B':
            slot = PIXEL_F_BYTES;
            break;
        case 'm':
            slot = PIXEL_F_METHOD;
            break;
        case 'U':
            slot = PIXEL_F_PATH;
            break;
        case 'q':
            slot = pixel__field_slot(p, "query_with_mark", 1);
            break;
        case 'H':
            slot = PIXEL_F_PROTOCOL;
            break;
        case 'v':
        case 'V':
            slot = PIXEL_F_HOST;
            break;
        case 'T':
            slot = PIXEL_F_REQUEST_TIME;
            break;
        case 'D':
            slot = pixel__field_slot(p, "request_time_us", 1);
            break;
        case 'i':
            if (!arg) {
                return pixel__cfg_fail(c, at, "%%i needs a header name: %%{Name}i");
            }
            slot = header_slot(p, arg);
            break;
        default:
            return pixel__cfg_fail(c, at, "unsupported Apache LogFormat directive '%%%c'", d);
    }
    if (slot < 0) {
        return pixel__cfg_fail(c, at, "too many distinct fields in the log format");
    }
    return push_field(b, slot) < 0 ? PIXEL_ENOMEM : 0;
}

static int compile_apache(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *at, const char *s,
                          fmt_builder *b)
{
    while (*s) {
        if (*s == '\\' && (s[1] == '"' || s[1] == '\\')) {
            s++;
        } else if (*s == '%') {
            s++;
            if (*s == '%') {
                if (pixel__buf_append(&b->lit, "%", 1) < 0) {
                    return PIXEL_ENOMEM;
                }
                s++;
                continue;
            }
            char arg[96];
            const char *argp = NULL;
            while (*s == '>' || *s == '<' || *s == '!' || isdigit((unsigned char)*s) || *s == ',') {
                s++; /* modifiers: %>s, %400,501{..}i */
            }
            if (*s == '{') {
                const char *close = strchr(s, '}');
                if (!close || (size_t)(close - s - 1) >= sizeof(arg)) {
                    return pixel__cfg_fail(c, at, "unterminated %%{...} in Apache LogFormat");
                }
                memcpy(arg, s + 1, (size_t)(close - s - 1));
                arg[close - s - 1] = '\0';
                argp = arg;
                s = close + 1;
            }
            if (!*s) {
                return pixel__cfg_fail(c, at, "Apache LogFormat ends inside a directive");
            }
            int rc = apache_directive(p, c, at, *s++, argp, b);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if (pixel__buf_append(&b->lit, s++, 1) < 0) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

#define COMBINED                                                                                   \
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "             \
    "\"$http_referer\" \"$http_user_agent\""
#define COMMON "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent"

int pixel__logfmt_compile(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *at, const char *name,
                          const char *spec, int apache)
{
    pixel_logfmt *f = &p->logfmt;
    memset(f, 0, sizeof(*f));
    if (name && strcmp(name, "nginx_json") == 0) {
        f->kind = LOGFMT_JSON;
        f->writes = ~(uint64_t)0; /* any slot */
        return 0;
    }
    f->kind = LOGFMT_TEXT;
    if (name && strcmp(name, "combined") == 0) {
        spec = COMBINED, apache = 0;
    } else if (name && strcmp(name, "common") == 0) {
        spec = COMMON, apache = 0;
    } else if (!spec) {
        return pixel__cfg_fail(c, at,
                               "unknown log format '%s' (expected combined, common, nginx_json, "
                               "or a mapping {nginx: '...'} / {apache: '...'})",
                               name ? name : "");
    }
    fmt_builder b = {f, {0}};
    int rc = apache ? compile_apache(p, c, at, spec, &b) : compile_nginx(p, c, at, spec, &b);
    if (rc < 0) {
        pixel__buf_free(&b.lit);
        return rc;
    }
    return finish(&b, c, at);
}

void pixel__logfmt_free(pixel_logfmt *f)
{
    if (f->lit) {
        for (size_t i = 0; i <= f->nfields; i++) {
            pixel__free(f->lit[i]);
        }
    }
    pixel__free(f->lit);
    pixel__free(f->litlen);
    pixel__free(f->field);
    pixel__free(f->step);
    memset(f, 0, sizeof(*f));
}

/* ---- parsing -------------------------------------------------------------- */

/* Whether the literal of st starts at q, whose byte is its first one:
 * 1 yes, 0 no, -1 no and it does not fit before end (nor at any later q). */
static inline int lit_at(const char *q, const char *end, const pixel_logstep *st)
{
    /* literals are short: up to 4 bytes are one masked word compare */
    if (PIXEL_LIKELY(end - q >= 4 && st->litlen <= 4)) {
        uint32_t w;
        memcpy(&w, q, 4);
        return (w & st->mask) == st->head;
    }
    if ((size_t)(end - q) < st->litlen) {
        return -1;
    }
    return pixel__same_bytes(q + 1, st->lit + 1, st->litlen - 1);
}

static const char *find_lit_tail(const char *p, const char *end, const pixel_logstep *st);

/* The first occurrence of the literal of st in [p, end), or NULL. */
static const char *find_lit(const char *p, const char *end, const pixel_logstep *st)
{
    /* Most fields are short: the first 32 bytes are looked at in line (two
     * blocks, one mask), the rest by memchr. */
    if (end - p >= 32) {
#ifdef PIXEL_SIMD_SSE2
        /* (the byte spread at load: fewer steps than _mm_set1_epi8) */
        const __m128i c = _mm_set1_epi32((int)st->first4);
        uint32_t m = (uint32_t)_mm_movemask_epi8(
                         _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), c)) |
                     (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(
                         _mm_loadu_si128((const __m128i *)(const void *)(p + 16)), c))
                         << 16;
#else
        const unsigned char *u = (const unsigned char *)p;
        uint32_t m = pixel__eq16(u, (unsigned char)st->lit[0]) |
                     (uint32_t)pixel__eq16(u + 16, (unsigned char)st->lit[0]) << 16;
#endif
        for (; m; m &= m - 1) {
            const char *q = p + __builtin_ctz(m);
            int at = lit_at(q, end, st);
            if (at) {
                return at > 0 ? q : NULL;
            }
        }
        p += 32;
    }
    return find_lit_tail(p, end, st);
}

/* find_lit past its first look: memchr for the literal's first byte. */
static const char *find_lit_tail(const char *p, const char *end, const pixel_logstep *st)
{
    const char *lit = st->lit;
    size_t n = st->litlen;
    if (n == 1) {
        return memchr(p, lit[0], (size_t)(end - p));
    }
    while (p + n <= end) {
        const char *q = memchr(p, lit[0], (size_t)(end - p - (ptrdiff_t)n + 1));
        if (!q) {
            return NULL;
        }
        if (lit_at(q, end, st) > 0) {
            return q;
        }
        p = q + 1;
    }
    return NULL;
}

static int field_truncated(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_logstep *st)
{
    char loc[80];
    snprintf(loc, sizeof(loc), "log.%s", pixel__field_name(p, st->slot));
    return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "truncated_line", loc,
                             "the line ends inside field '%s' (the separator '%s' that "
                             "closes it is missing)",
                             pixel__field_name(p, st->slot), st->lit);
}

__attribute__((noinline, cold)) static int malformed_record(pixel_ctx *ctx, const pixel_logfmt *f)
{
    return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "malformed_log_record", "log",
                             "the record does not start with \"%s\" as the log format says",
                             f->lit[0]);
}

/* The AVX2 paths are picked at run time; -DPIXEL_NO_AVX2 builds without
 * them (to test the SSE2 ones on a CPU that has AVX2). */
#if defined(PIXEL_SIMD_SSE2) && defined(__x86_64__) && defined(__GNUC__) && \
    !defined(PIXEL_NO_AVX2)
#include <immintrin.h>
#define PIXEL_FIND2_AVX2 1
/* find2 for CPUs with AVX2 (asked at run time), for end - p >= 32: 64 bytes a
 * step, then blocks of 32, the last one ending at end. */
__attribute__((target("avx2"))) static const char *find2_avx2(const char *p, const char *end,
                                                             char a, char b)
{
    const __m256i va = _mm256_set1_epi8(a), vb = _mm256_set1_epi8(b);
    for (; end - p >= 64; p += 64) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)p);
        __m256i y = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
        __m256i hx = _mm256_or_si256(_mm256_cmpeq_epi8(x, va), _mm256_cmpeq_epi8(x, vb));
        __m256i hy = _mm256_or_si256(_mm256_cmpeq_epi8(y, va), _mm256_cmpeq_epi8(y, vb));
        __m256i h = _mm256_or_si256(hx, hy);
        if (!_mm256_testz_si256(h, h)) {
            uint64_t m = (uint32_t)_mm256_movemask_epi8(hx) |
                         (uint64_t)(uint32_t)_mm256_movemask_epi8(hy) << 32;
            return p + __builtin_ctzll(m);
        }
    }
    while (p < end) {
        /* (the range was at least 32 bytes long: a block ending at end starts in it) */
        const char *blk = end - p >= 32 ? p : end - 32;
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)blk);
        uint32_t m = (uint32_t)_mm256_movemask_epi8(
            _mm256_or_si256(_mm256_cmpeq_epi8(x, va), _mm256_cmpeq_epi8(x, vb)));
        m >>= (unsigned)(p - blk); /* bytes before p were looked at */
        if (m) {
            return p + __builtin_ctz(m);
        }
        p = blk + 32;
    }
    return end;
}

/* find_lit_tail for CPUs with AVX2, in line instead of memchr calls: the
 * literal's first byte looked for 64 bytes a step, then in blocks of 32, the
 * last one ending at end (so the 32 bytes before end must be readable: the
 * caller's field started at least 32 bytes before p); each candidate is
 * checked by lit_at.  The same result as find_lit_tail. */
__attribute__((target("avx2"))) static const char *
find_lit_tail_avx2(const char *p, const char *end, const pixel_logstep *st)
{
    const __m256i c = _mm256_set1_epi32((int)st->first4);
    for (; end - p >= 64; p += 64) {
        const __m256i hx =
            _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)p), c);
        const __m256i hy =
            _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(p + 32)), c);
        const __m256i h = _mm256_or_si256(hx, hy);
        if (PIXEL_UNLIKELY(!_mm256_testz_si256(h, h))) {
            uint64_t m = (uint32_t)_mm256_movemask_epi8(hx) |
                         (uint64_t)(uint32_t)_mm256_movemask_epi8(hy) << 32;
            for (; m; m &= m - 1) {
                const char *q = p + __builtin_ctzll(m);
                const int at = lit_at(q, end, st);
                if (at) {
                    return at > 0 ? q : NULL;
                }
            }
        }
    }
    while (p < end) {
        const char *blk = end - p >= 32 ? p : end - 32;
        uint32_t m = (uint32_t)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)blk), c));
        m >>= (unsigned)(p - blk); /* bytes before p were looked at */
        for (; m; m &= m - 1) {
            const char *q = p + __builtin_ctz(m);
            const int at = lit_at(q, end, st);
            if (at) {
                return at > 0 ? q : NULL;
            }
        }
        p = blk + 32;
    }
    return NULL;
}

/*
 * parse_text for CPUs with AVX2 (asked at run time): the same fields and
 * faults.  A field with at least 36 bytes after its start and a literal of
 * up to four bytes has the literal's first byte looked for in its first 32
 * bytes with one compare (every candidate has four readable bytes: one
 * masked word compare each); the rest is find_lit's.
 */
__attribute__((target("avx2"))) static int parse_text_avx2(const pixel_pipeline *p,
                                                           pixel_ctx *ctx, pixel_span msg)
{
    const pixel_logfmt *f = &p->logfmt;
    pixel_span *fields = ctx->rec.fields;
    const char *s = msg.p, *end = msg.p + msg.n;
    if ((size_t)(end - s) < f->litlen[0] || !pixel__same_bytes(s, f->lit[0], f->litlen[0])) {
        return malformed_record(ctx, f);
    }
    s += f->litlen[0];
    const pixel_logstep *st = f->step, *last = f->step + f->nfields - 1;
    for (; st < last; st++) {
        const char *stop;
        if (PIXEL_LIKELY(end - s >= 36 && st->litlen <= 4)) {
            const __m256i c = _mm256_set1_epi32((int)st->first4);
            uint32_t m = (uint32_t)_mm256_movemask_epi8(
                _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)s), c));
            for (; m; m &= m - 1) {
                const char *q = s + __builtin_ctz(m);
                uint32_t w;
                memcpy(&w, q, 4);
                if ((w & st->mask) == st->head) {
                    stop = q;
                    goto found;
                }
            }
            stop = find_lit_tail_avx2(s + 32, end, st);
        } else {
            stop = find_lit(s, end, st);
        }
        if (!stop) {
            return field_truncated(p, ctx, st);
        }
    found:
        fields[st->slot] = (pixel_span){s, (size_t)(stop - s)};
        s = stop + st->litlen;
    }
    /* The last literal must end the record. */
    if ((size_t)(end - s) < st->litlen || !pixel__same_bytes(end - st->litlen, st->lit, st->litlen)) {
        return field_truncated(p, ctx, st);
    }
    fields[st->slot] = (pixel_span){s, (size_t)(end - st->litlen - s)};
    return 0;
}
#endif

static int parse_text(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span msg)
{
    const pixel_logfmt *f = &p->logfmt;
    pixel_span *fields = ctx->rec.fields;
    const char *s = msg.p, *end = msg.p + msg.n;
    if ((size_t)(end - s) < f->litlen[0] || !pixel__same_bytes(s, f->lit[0], f->litlen[0])) {
        return malformed_record(ctx, f);
    }
    s += f->litlen[0];
    const pixel_logstep *st = f->step, *last = f->step + f->nfields - 1;
    for (; st < last; st++) {
        const char *stop = find_lit(s, end, st);
        if (!stop) {
            return field_truncated(p, ctx, st);
        }
        fields[st->slot] = (pixel_span){s, (size_t)(stop - s)};
        s = stop + st->litlen;
    }
    /* The last literal must end the record. */
    if ((size_t)(end - s) < st->litlen || !pixel__same_bytes(end - st->litlen, st->lit, st->litlen)) {
        return field_truncated(p, ctx, st);
    }
    fields[st->slot] = (pixel_span){s, (size_t)(end - st->litlen - s)};
    return 0;
}

static int parse_json(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span msg)
{
    pixel_error jerr;
    pixel_error_clear(&jerr);
    pixel_value *obj = pixel__json_parse(&ctx->arena, msg.p, msg.n, &jerr);
    if (!obj) {
        if (jerr.code == PIXEL_ENOMEM) {
            return PIXEL_ENOMEM;
        }
        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE,
                                 strstr(jerr.text, "unterminated") || strstr(jerr.text, "expected")
                                     ? "truncated_line"
                                     : "malformed_log_record",
                                 "log", "the JSON log record is not valid: %s", jerr.text);
    }
    if (obj->type != PIXEL_TYPE_OBJECT) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "malformed_log_record", "log",
                                 "the JSON log record is not an object");
    }
    for (const pixel_value *m = obj->u.list.head; m; m = m->next) {
        char key[96];
        if (m->klen >= sizeof(key)) {
            continue;
        }
        memcpy(key, m->key, m->klen);
        key[m->klen] = '\0';
        /* The pipeline is const here: only look names up, never add. */
        int slot = -1;
        for (size_t i = 0; i < PIXEL_ARRAY_LEN(nginx_vars) && slot < 0; i++) {
            if (strcmp(nginx_vars[i].var, key) == 0) {
                slot = nginx_vars[i].field;
            }
        }
        if (slot < 0) {
            slot = pixel__field_slot((pixel_pipeline *)p, key, 0);
        }
        if (slot < 0) {
            continue;
        }
        if (m->type == PIXEL_TYPE_STRING) {
            ctx->rec.fields[slot] = (pixel_span){m->u.str.s, m->u.str.len};
        } else if (m->type == PIXEL_TYPE_NUMBER && (m->flags & PIXEL_VALUE_RAW)) {
            ctx->rec.fields[slot] = (pixel_span){m->u.num.raw, m->u.num.rawlen};
        } else if (m->type == PIXEL_TYPE_INT) {
            char *t = pixel__arena_printf(&ctx->arena, "%lld", (long long)m->u.i);
            if (!t) {
                return PIXEL_ENOMEM;
            }
            ctx->rec.fields[slot] = (pixel_span){t, strlen(t)};
        }
    }
    return 0;
}


/* The first byte of [p, end) equal to a or b, or end. */
static inline const char *find2(const char *p, const char *end, char a, char b)
{
#ifdef PIXEL_FIND2_AVX2
    if (end - p >= 32 && __builtin_cpu_supports("avx2")) {
        return find2_avx2(p, end, a, b);
    }
#endif
    return pixel__find3(p, end, a, b, b);
}

/* "GET /px.gif?a=b HTTP/1.1" -> method, target, path, query, protocol. */
static inline __attribute__((always_inline)) int split_request(pixel_record *r)
{
    pixel_span req = r->fields[PIXEL_F_REQUEST];
    if (req.p) {
        const char *s = req.p, *end = req.p + req.n;
        const char *sp1 = pixel__find3(s, end, ' ', ' ', ' ');
        if (sp1 == end) {
            return -1;
        }
        const char *t = sp1 + 1;
        /* The target ends at the first ' ' after it (HTTP/0.9 has no protocol);
         * its path at the first '?' or '#', its query at the first '#'.  One
         * pass: up to the first of the three, then up to the first ' ' or '#'
         * after a '?', then up to the ' ' after a '#'. */
        const char *x = pixel__find3(t, end, ' ', '?', '#');
        const char *qm = NULL, *hash = NULL, *sp2 = x;
        if (x < end && *x == '?') {
            qm = x;
            sp2 = find2(x + 1, end, ' ', '#');
            x = sp2;
        }
        if (x < end && *x == '#') {
            hash = x;
            sp2 = memchr(x + 1, ' ', (size_t)(end - x - 1));
        }
        if (sp2 == end) {
            sp2 = NULL;
        }
        const char *t_end = sp2 ? sp2 : end;
        if (sp1 == s || t_end == t) {
            return -1;
        }
        r->fields[PIXEL_F_METHOD] = (pixel_span){s, (size_t)(sp1 - s)};
        r->fields[PIXEL_F_TARGET] = (pixel_span){t, (size_t)(t_end - t)};
        if (sp2) {
            r->fields[PIXEL_F_PROTOCOL] = (pixel_span){sp2 + 1, (size_t)(end - sp2 - 1)};
        }
        if (!r->fields[PIXEL_F_PATH].p) {
            const char *q_end = hash ? hash : t_end;
            if (qm) {
                r->fields[PIXEL_F_PATH] = (pixel_span){t, (size_t)(qm - t)};
                r->fields[PIXEL_F_QUERY] = (pixel_span){qm + 1, (size_t)(q_end - qm - 1)};
            } else {
                r->fields[PIXEL_F_PATH] = (pixel_span){t, (size_t)(q_end - t)};
            }
        }
        return 0;
    }
    pixel_span tgt = r->fields[PIXEL_F_TARGET];
    if (tgt.p && !r->fields[PIXEL_F_PATH].p) {
        const char *q = memchr(tgt.p, '?', tgt.n);
        const char *end = tgt.p + tgt.n;
        const char *hash = memchr(tgt.p, '#', tgt.n);
        if (hash) {
            end = hash;
        }
        if (q && q < end) {
            r->fields[PIXEL_F_PATH] = (pixel_span){tgt.p, (size_t)(q - tgt.p)};
            r->fields[PIXEL_F_QUERY] = (pixel_span){q + 1, (size_t)(end - q - 1)};
        } else {
            r->fields[PIXEL_F_PATH] = (pixel_span){tgt.p, (size_t)(end - tgt.p)};
        }
    }
    return 0;
}

static inline __attribute__((always_inline)) int is_pixel_request(const pixel_pipeline *p,
                                                                const pixel_record *r)
{
    pixel_span path = r->fields[PIXEL_F_PATH];
    pixel_span method = r->fields[PIXEL_F_METHOD];
    if (!path.p) {
        return 0;
    }
    if (p->nmethods && method.p) {
        size_t i = 0;
        while (i < p->nmethods && !(p->method_len[i] == method.n &&
                                    pixel__same_bytes(p->methods[i], method.p, method.n))) {
            i++;
        }
        if (i == p->nmethods) {
            return 0;
        }
    }
    for (size_t i = 0; i < p->npixel_paths; i++) {
        if (p->pixel_path_len[i] == path.n &&
            pixel__same_bytes(p->pixel_paths[i], path.p, path.n)) {
            return 1;
        }
    }
    return 0;
}

/*
 * Parse the record in msg.  On return the outcome is PENDING (a pixel hit to
 * map), SKIPPED (some other request) or QUARANTINED.
 */
int pixel__parse_log(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span msg)
{
    ctx->rec.fields_dirty |= p->logfmt.writes; /* what the next reset clears */
    int rc;
    if (p->logfmt.kind == LOGFMT_JSON) {
        rc = parse_json(p, ctx, msg);
    } else {
#ifdef PIXEL_FIND2_AVX2
        rc = __builtin_cpu_supports("avx2") ? parse_text_avx2(p, ctx, msg) : parse_text(p, ctx, msg);
#else
        rc = parse_text(p, ctx, msg);
#endif
    }
    pixel_record *r = &ctx->rec;
    if (rc < 0) {
        return rc;
    }
    if (ctx->outcome == PIXEL_OUTCOME_QUARANTINED) {
        /* A damaged line that is visibly not a pixel hit is skipped, not quarantined:
         * only the request line tells, so it must be complete. */
        pixel_span req = r->fields[PIXEL_F_REQUEST];
        if (req.p && split_request(r) == 0 && !is_pixel_request(p, r)) {
            ctx->nreasons = 0;
            ctx->outcome = PIXEL_OUTCOME_SKIPPED;
        }
        return 0;
    }
    pixel_span req = r->fields[PIXEL_F_REQUEST];
    if (req.p && req.n == 1 && req.p[0] == '-') {
        ctx->outcome = PIXEL_OUTCOME_SKIPPED; /* nginx's "-": no request was sent */
        return 0;
    }
    if (split_request(r) < 0) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "bad_request_line", "log.request",
                                 "the request line is not \"METHOD TARGET PROTOCOL\"");
    }
    if (!is_pixel_request(p, r)) {
        ctx->outcome = PIXEL_OUTCOME_SKIPPED;
        return 0;
    }
    pixel_span q = r->fields[PIXEL_F_QUERY];
    return pixel__parse_query(p, ctx, q.p ? q : (pixel_span){"", 0});
}
