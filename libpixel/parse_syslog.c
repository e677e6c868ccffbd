/*
 * Syslog framing: RFC 3164 (BSD) and RFC 5424.  Everything is a view into
 * the line.  The 3164 parser accepts what relays really send: an optional
 * <PRI>, either the BSD timestamp ("Nov  6 05:24:46") or an RFC 3339 one
 * (rsyslog's high-precision templates), HOSTNAME, and a TAG that ends with
 * ':' (optionally "tag[pid]:").
 */
#include <string.h>

#include "pipeline.h"
#include "simd.h"

static const char *const syslog_names[PIXEL_S_COUNT] = {
    "pri", "facility", "severity", "timestamp", "hostname", "tag", "procid", "msgid", "message",
};

int pixel__syslog_index(const char *name)
{
    for (int i = 0; i < PIXEL_S_COUNT; i++) {
        if (strcmp(syslog_names[i], name) == 0) {
            return i;
        }
    }
    if (strcmp(name, "app") == 0 || strcmp(name, "appname") == 0) {
        return PIXEL_S_TAG;
    }
    return -1;
}

const char *pixel__syslog_name(int idx)
{
    return idx >= 0 && idx < PIXEL_S_COUNT ? syslog_names[idx] : "?";
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* <PRI>: sets pri/facility/severity; returns bytes consumed, 0 if absent, -1 if bad. */
static int parse_pri(pixel_record *r, const char *s, size_t n)
{
    if (n == 0 || s[0] != '<') {
        return 0;
    }
    size_t i = 1;
    unsigned v = 0;
    /* up to four digits; the usual three without a loop */
    if (n > 4 && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3])) {
        v = (unsigned)(s[1] - '0') * 100 + (unsigned)(s[2] - '0') * 10 + (unsigned)(s[3] - '0');
        i = 4;
    }
    while (i < n && i <= 4 && is_digit(s[i])) {
        v = v * 10 + (unsigned)(s[i] - '0');
        i++;
    }
    if (i == 1 || i >= n || s[i] != '>' || v > 191) {
        return -1;
    }
    r->syslog[PIXEL_S_PRI] = (pixel_span){s + 1, i - 1};
    /* facility 0-23 and severity 0-7 as text: views into constant tables */
    static const char facilities[] = "0\0\0" "1\0\0" "2\0\0" "3\0\0" "4\0\0" "5\0\0" "6\0\0" "7\0\0"
                                     "8\0\0" "9\0\0" "10\0" "11\0" "12\0" "13\0" "14\0" "15\0"
                                     "16\0" "17\0" "18\0" "19\0" "20\0" "21\0" "22\0" "23";
    static const char severities[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7";
    unsigned fac = v / 8, sev = v % 8;
    r->syslog[PIXEL_S_FACILITY] = (pixel_span){facilities + 3 * fac, fac >= 10 ? 2u : 1u};
    r->syslog[PIXEL_S_SEVERITY] = (pixel_span){severities + 2 * sev, 1};
    return (int)i + 1;
}

/* (fields are short: a block or two in line, not a call) */
static const char *next_space(const char *p, const char *end)
{
    return pixel__find3(p, end, ' ', ' ', ' ');
}

static int bsd_timestamp(const char *p, const char *end)
{
    /* "Mmm dd hh:mm:ss" */
    return end - p >= 15 && p[3] == ' ' && p[6] == ' ' && p[9] == ':' && p[12] == ':' &&
           (is_digit(p[4]) || p[4] == ' ') && is_digit(p[5]);
}

/* bsd_timestamp with a space after it, for end - p >= 16: the five
 * separators (at 3, 6, 9, 12 and 15) as one compare of a block. */
static int bsd_timestamp_sp(const char *p)
{
#ifdef PIXEL_SIMD_SSE2
    const __m128i sep = _mm_setr_epi8(0, 0, 0, ' ', 0, 0, ' ', 0, 0, ':', 0, 0, ':', 0, 0, ' ');
    const unsigned m = (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), sep));
    return (m & 0x9248u) == 0x9248u && (is_digit(p[4]) || p[4] == ' ') && is_digit(p[5]);
#else
    return bsd_timestamp(p, p + 16) && p[15] == ' ';
#endif
}

static int parse_3164(pixel_record *r, const char *p, const char *end, pixel_span *msg)
{
    const char *ts_end;
    if (PIXEL_LIKELY(end - p >= 16 && bsd_timestamp_sp(p))) {
        /* (the space after it checked too) */
        r->syslog[PIXEL_S_TIMESTAMP] = (pixel_span){p, 15};
        p += 16;
        goto host;
    }
    if (bsd_timestamp(p, end)) {
        ts_end = p + 15;
    } else if (end - p >= 10 && is_digit(p[0]) && p[4] == '-') {
        ts_end = next_space(p, end); /* RFC 3339 */
    } else {
        return -1;
    }
    r->syslog[PIXEL_S_TIMESTAMP] = (pixel_span){p, (size_t)(ts_end - p)};
    if (ts_end >= end || *ts_end != ' ') {
        return -1;
    }
    p = ts_end + 1;
host:;
    const char *h_end = next_space(p, end);
    if (h_end == p || h_end >= end) {
        return -1;
    }
    r->syslog[PIXEL_S_HOSTNAME] = (pixel_span){p, (size_t)(h_end - p)};
    p = h_end + 1;
    /* TAG: up to ':' (or '[' for a pid), at most 48 characters, no space. */
    const char *t = pixel__find3(p, end - p > 49 ? p + 49 : end, ':', '[', ' ');
    if (t >= end || t == p || (*t != ':' && *t != '[')) {
        return -1;
    }
    r->syslog[PIXEL_S_TAG] = (pixel_span){p, (size_t)(t - p)};
    if (*t == '[') {
        const char *close = memchr(t, ']', (size_t)(end - t));
        if (!close || close + 1 >= end || close[1] != ':') {
            return -1;
        }
        r->syslog[PIXEL_S_PROCID] = (pixel_span){t + 1, (size_t)(close - t - 1)};
        t = close + 1;
    }
    t++; /* ':' */
    if (t < end && *t == ' ') {
        t++;
    }
    *msg = (pixel_span){t, (size_t)(end - t)};
    return 0;
}

/* One RFC 5424 header field; "-" is NILVALUE (absent). */
static const char *field_5424(const char *p, const char *end, pixel_span *out)
{
    const char *q = next_space(p, end);
    if (q == p || q >= end) {
        return NULL;
    }
    if (!(q - p == 1 && *p == '-')) {
        *out = (pixel_span){p, (size_t)(q - p)};
    }
    return q + 1;
}

static const char *skip_sd(const char *p, const char *end)
{
    if (p < end && *p == '-') {
        return p + 1;
    }
    while (p < end && *p == '[') {
        int quoted = 0;
        p++;
        while (p < end) {
            if (quoted && *p == '\\' && p + 1 < end) {
                p += 2;
                continue;
            }
            if (*p == '"') {
                quoted = !quoted;
            } else if (*p == ']' && !quoted) {
                break;
            }
            p++;
        }
        if (p >= end) {
            return NULL;
        }
        p++;
    }
    return p;
}

static int parse_5424(pixel_record *r, const char *p, const char *end, pixel_span *msg)
{
    if (end - p < 2 || p[0] != '1' || p[1] != ' ') {
        return -1;
    }
    p += 2;
    static const int order[] = {PIXEL_S_TIMESTAMP, PIXEL_S_HOSTNAME, PIXEL_S_TAG, PIXEL_S_PROCID,
                                PIXEL_S_MSGID};
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(order); i++) {
        p = field_5424(p, end, &r->syslog[order[i]]);
        if (!p) {
            return -1;
        }
    }
    p = skip_sd(p, end);
    if (!p) {
        return -1;
    }
    if (p < end && *p == ' ') {
        p++;
    }
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3; /* BOM */
    }
    *msg = (pixel_span){p, (size_t)(end - p)};
    return 0;
}

int pixel__parse_syslog(const pixel_pipeline *p, pixel_ctx *ctx, pixel_span *msg)
{
    pixel_record *r = &ctx->rec;
    const char *s = ctx->line, *end = ctx->line + ctx->line_len;
    if (p->framing == FRAMING_NONE) {
        *msg = (pixel_span){s, ctx->line_len};
        return 0;
    }
    int k = parse_pri(r, s, ctx->line_len);
    if (k < 0) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "bad_syslog_header", "syslog.pri",
                                 "syslog PRI is malformed (expected <0..191>)");
    }
    const char *body = s + k;
    int rc;
    if (p->framing == FRAMING_RFC5424) {
        rc = k > 0 ? parse_5424(r, body, end, msg) : -1;
    } else if (p->framing == FRAMING_AUTO && k > 0 && end - body >= 2 && body[0] == '1' &&
               body[1] == ' ') {
        rc = parse_5424(r, body, end, msg);
    } else {
        rc = parse_3164(r, body, end, msg);
        if (rc < 0 && p->framing == FRAMING_AUTO && k == 0) {
            /* auto, and no <PRI> nor a syslog header: the line is the record */
            memset(r->syslog, 0, sizeof(r->syslog));
            *msg = (pixel_span){s, ctx->line_len};
            rc = 0;
        }
    }
    if (rc < 0) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "bad_syslog_header", "syslog",
                                 "the syslog header does not match %s",
                                 p->framing == FRAMING_RFC5424   ? "RFC 5424"
                                 : p->framing == FRAMING_RFC3164 ? "RFC 3164"
                                                                 : "RFC 3164 or RFC 5424");
    }
    r->syslog[PIXEL_S_MESSAGE] = *msg;
    return 0;
}
