/*
 * Typed conversions of the map stage: text from the line -> event values.
 * Every conversion is strict; a value that does not convert quarantines the
 * line with `bad_<type>` and the offending text.  Times are normalised to
 * RFC 3339 in UTC.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline.h"
#include "simd.h"

/* The AVX2 paths are picked at run time; -DPIXEL_NO_AVX2 builds without
 * them (to test the others on a CPU that has AVX2). */
#if defined(PIXEL_SIMD_SSE2) && defined(__x86_64__) && defined(__GNUC__) && \
    !defined(PIXEL_NO_AVX2)
#define PIXEL_CONVERT_AVX2 1
#include <immintrin.h>
#endif

/* ---- civil time (proleptic Gregorian, no time zone database) ------------ */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* "00" to "99": the two digits of a number under 100 at twice its value. */
static const char two_digits[201] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* The seconds, milliseconds and 'Z' of an RFC 3339 time at o (out holds the
 * rest); the text of a whole second (which starts at sec_ms) is kept in the memo. */
static inline size_t finish_rfc3339(pixel_time_memo *memo, char *out, char *o, int64_t sec_ms,
                                    unsigned ss, unsigned frac, int with_ms)
{
    memcpy(o, two_digits + 2 * ss, 2);
    o += 2;
    if (with_ms) {
        unsigned hundreds = frac / 100;
        o[0] = '.';
        o[1] = (char)('0' + hundreds);
        memcpy(o + 2, two_digits + 2 * (frac - 100 * hundreds), 2);
        o += 4;
    }
    *o++ = 'Z';
    *o = '\0';
    if (!with_ms && memo && (size_t)(o - out) + 1 == sizeof(memo->sec_text)) {
        memcpy(memo->sec_text, out, sizeof(memo->sec_text));
        memo->sec_ms = sec_ms;
        memo->sec_set = true;
    }
    return (size_t)(o - out);
}

/* The whole text, from the day on (the day itself from the memo when it is the same). */
__attribute__((noinline)) static size_t format_rfc3339_full(pixel_time_memo *memo, char *out,
                                                            int64_t ms, int with_ms)
{
    int64_t days = floor_div(ms, 86400000);
    int64_t rem = ms - days * 86400000;
    unsigned s = (unsigned)(rem / 1000), frac = (unsigned)(rem % 1000);
    char ymd[10];
    if (memo && memo->day_set && memo->day == days) {
        memcpy(ymd, memo->ymd, sizeof(ymd));
    } else {
        int64_t y;
        unsigned mo, d;
        civil_from_days(days, &y, &mo, &d);
        if (y < 0 || y > 9999) {
            y = y < 0 ? 0 : 9999;
        }
        unsigned yy = (unsigned)y;
        ymd[0] = (char)('0' + yy / 1000);
        ymd[1] = (char)('0' + yy / 100 % 10);
        ymd[2] = (char)('0' + yy / 10 % 10);
        ymd[3] = (char)('0' + yy % 10);
        ymd[4] = '-';
        memcpy(ymd + 5, two_digits + 2 * mo, 2);
        ymd[7] = '-';
        memcpy(ymd + 8, two_digits + 2 * d, 2);
        if (memo) {
            memo->day_set = true;
            memo->day = days;
            memcpy(memo->ymd, ymd, sizeof(ymd));
        }
    }
    char *o = out;
    memcpy(o, ymd, sizeof(ymd));
    o += sizeof(ymd);
    *o++ = 'T';
    unsigned hh = s / 3600, mm = s / 60 % 60;
    memcpy(o, two_digits + 2 * hh, 2);
    o[2] = ':';
    memcpy(o + 3, two_digits + 2 * mm, 2);
    o[5] = ':';
    o += 6;
    if (memo) {
        memcpy(memo->min_text, out, sizeof(memo->min_text));
        memo->min_ms = ms - (int64_t)(s % 60) * 1000 - frac;
        memo->min_set = true;
    }
    return finish_rfc3339(memo, out, o, ms - frac, s % 60, frac, with_ms);
}

/* The text of ms through the memo: the last second (without milliseconds)
 * or the last minute, else the whole text.  Inline: the time conversions
 * of the map stage find most times here. */
static inline size_t format_memo(pixel_time_memo *memo, char *out, int64_t ms, int with_ms)
{
    /* Without milliseconds the text changes once a second: the last one
     * is kept.  Most other times fall in the minute of the one before:
     * only the seconds and milliseconds are written.  (Unsigned
     * differences: a time before the memo's is a large number.) */
    if (!with_ms && memo->sec_set && (uint64_t)ms - (uint64_t)memo->sec_ms < 1000) {
        memcpy(out, memo->sec_text, sizeof(memo->sec_text)); /* 20 characters and the NUL */
        return sizeof(memo->sec_text) - 1;
    }
    uint64_t r = (uint64_t)ms - (uint64_t)memo->min_ms;
    if (memo->min_set && r < 60000) {
        memcpy(out, memo->min_text, sizeof(memo->min_text));
        return finish_rfc3339(memo, out, out + sizeof(memo->min_text), ms - (int64_t)(r % 1000),
                              (unsigned)r / 1000, (unsigned)r % 1000, with_ms);
    }
    return format_rfc3339_full(memo, out, ms, with_ms);
}

size_t pixel__format_rfc3339(pixel_time_memo *memo, char *out, int64_t ms, int with_ms)
{
    return memo ? format_memo(memo, out, ms, with_ms) : format_rfc3339_full(NULL, out, ms, with_ms);
}

static int digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int month_index(const char *s)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++) {
        if (memcmp(names + 3 * i, s, 3) == 0) {
            return i + 1;
        }
    }
    return -1;
}

static int valid_date(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 60) {
        return 0;
    }
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(mo == 2 && d == 29 && !leap);
}

/* "+0100" / "-0530" -> offset in minutes. */
static int parse_offset4(const char *s, int *minutes)
{
    unsigned hh, mm;
    if ((s[0] != '+' && s[0] != '-') || digits(s + 1, 2, &hh) < 0 || digits(s + 3, 2, &mm) < 0 ||
        hh > 23 || mm > 59) {
        return -1;
    }
    *minutes = (int)(hh * 60 + mm) * (s[0] == '-' ? -1 : 1);
    return 0;
}

/* "26/Nov/2026:05:24:46 +0000" (nginx $time_local, Apache %t). */
int pixel__parse_clf_time(const char *s, size_t n, int64_t *ms)
{
    unsigned d, y, h, mi, sec;
    int off;
    if (n != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' ||
        s[20] != ' ' || digits(s, 2, &d) < 0 || digits(s + 7, 4, &y) < 0 ||
        digits(s + 12, 2, &h) < 0 || digits(s + 15, 2, &mi) < 0 || digits(s + 18, 2, &sec) < 0 ||
        parse_offset4(s + 21, &off) < 0) {
        return -1;
    }
    int mo = month_index(s + 3);
    if (mo < 0 || !valid_date(y, (unsigned)mo, d, h, mi, sec)) {
        return -1;
    }
    int64_t t = days_from_civil(y, (unsigned)mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    *ms = (t - off * 60) * 1000;
    return 0;
}

/* The same, through the context's memo of the last CLF time. */
/* The 26 bytes of a CLF time equal to the memo's: four overlapping words. */
static inline bool same_clf(const char *a, const char *b)
{
    uint64_t x = 0;
    for (size_t at = 0; at < 24; at += 8) {
        uint64_t u, v;
        memcpy(&u, a + at, 8);
        memcpy(&v, b + at, 8);
        x |= u ^ v;
    }
    uint64_t u, v;
    memcpy(&u, a + 18, 8);
    memcpy(&v, b + 18, 8);
    return (x | (u ^ v)) == 0;
}

/* A CLF time not in the memo: parsed, and kept there. */
__attribute__((noinline)) static int clf_time_parse(pixel_time_memo *m, const char *s, size_t n,
                                                    int64_t *ms)
{
    if (pixel__parse_clf_time(s, n, ms) < 0) {
        return -1;
    }
    if (n == sizeof(m->clf)) {
        memcpy(m->clf, s, n);
        m->clf_ms = *ms;
        m->clf_set = true;
    }
    return 0;
}

static inline int clf_time_memo(pixel_time_memo *m, const char *s, size_t n, int64_t *ms)
{
    if (n == sizeof(m->clf) && m->clf_set && same_clf(m->clf, s)) {
        *ms = m->clf_ms;
        return 0;
    }
    return clf_time_parse(m, s, n, ms);
}

/* The BSD syslog time, through the memo of the last text and reference
 * time (both change once a second in a live stream). */
static int parse_bsd_time(const char *s, size_t n, int64_t ref_ms, int64_t *ms);
/* A BSD syslog time not in the memo: read, and kept there. */
__attribute__((noinline)) static int bsd_time_parse(pixel_time_memo *m, const char *s, size_t n,
                                                    int64_t ref_ms, int64_t *ms)
{
    if (parse_bsd_time(s, n, ref_ms, ms) < 0) {
        return -1;
    }
    memcpy(m->bsd, s, sizeof(m->bsd)); /* n == 15: parse_bsd_time takes nothing else */
    m->bsd_ref = ref_ms;
    m->bsd_ms = *ms;
    m->bsd_set = true;
    return 0;
}

static inline int bsd_time_memo(pixel_time_memo *m, const char *s, size_t n, int64_t ref_ms,
                                int64_t *ms)
{
    if (n == sizeof(m->bsd) && m->bsd_set && m->bsd_ref == ref_ms &&
        pixel__same_bytes(m->bsd, s, n)) {
        *ms = m->bsd_ms;
        return 0;
    }
    return bsd_time_parse(m, s, n, ref_ms, ms);
}

/* RFC 3339 date-time: "2026-11-26T05:24:46Z", fractions, "+01:00". */
int pixel__parse_rfc3339(const char *s, size_t n, int64_t *ms)
{
    unsigned y, mo, d, h, mi, sec;
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':' || digits(s, 4, &y) < 0 || digits(s + 5, 2, &mo) < 0 ||
        digits(s + 8, 2, &d) < 0 || digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &mi) < 0 ||
        digits(s + 17, 2, &sec) < 0 || !valid_date(y, mo, d, h, mi, sec)) {
        return -1;
    }
    size_t i = 19;
    unsigned frac = 0, scale = 1000;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (unsigned)(s[i] - '0') * scale;
            }
            i++;
        }
        if (i == start) {
            return -1;
        }
    }
    int off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        unsigned oh, om;
        if (digits(s + i + 1, 2, &oh) < 0 || digits(s + i + 4, 2, &om) < 0 || oh > 23 || om > 59) {
            return -1;
        }
        off = (int)(oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n) {
        return -1;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec);
    *ms = (t - off * 60) * 1000 + frac;
    return 0;
}

/* "Nov 26 05:24:46": no year, so take the one that puts it nearest to `ref`. */
static int parse_bsd_time(const char *s, size_t n, int64_t ref_ms, int64_t *ms)
{
    unsigned d, h, mi, sec;
    if (n != 15 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' ||
        digits(s + 5, 1, &d) < 0 || digits(s + 7, 2, &h) < 0 || digits(s + 10, 2, &mi) < 0 ||
        digits(s + 13, 2, &sec) < 0) {
        return -1;
    }
    if (s[4] != ' ') {
        unsigned tens;
        if (digits(s + 4, 1, &tens) < 0) {
            return -1;
        }
        d += tens * 10;
    }
    int mo = month_index(s);
    int64_t ry;
    unsigned rm, rd;
    civil_from_days(floor_div(ref_ms, 86400000), &ry, &rm, &rd);
    int64_t best = 0, best_dist = INT64_MAX;
    for (int64_t y = ry - 1; y <= ry + 1; y++) {
        if (mo < 0 || !valid_date(y, (unsigned)mo, d, h, mi, sec)) {
            continue;
        }
        int64_t t = (days_from_civil(y, (unsigned)mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000;
        int64_t dist = t > ref_ms ? t - ref_ms : ref_ms - t;
        if (dist < best_dist) {
            best = t, best_dist = dist;
        }
    }
    if (best_dist == INT64_MAX) {
        return -1;
    }
    *ms = best;
    return 0;
}

/* Whether the 8 bytes at s are all decimal digits; if so their value in *out.
 * One word: each byte is a digit when its high nibble is 3 and adding 6 does
 * not carry out of the low one.  The value is built from pairs of digits
 * (16-bit lanes), then groups of four (32-bit lanes), then the whole. */
static inline bool digits8(const char *s, uint64_t *out)
{
    const uint64_t ones = 0x0101010101010101u, high = 0xF0F0F0F0F0F0F0F0u;
    uint64_t w;
    memcpy(&w, s, 8); /* s[0] in the lowest byte on little endian, handled below */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    if ((w & high) != 0x30 * ones || ((w + 6 * ones) & high) != 0x30 * ones) {
        return false;
    }
    uint64_t d = w - 0x30 * ones; /* byte k: digit k, the first digit the most significant */
    uint64_t pairs = (d & 0x00FF00FF00FF00FFu) * 10 + ((d >> 8) & 0x00FF00FF00FF00FFu);
    uint64_t quads = (pairs & 0x0000FFFF0000FFFFu) * 100 + ((pairs >> 16) & 0x0000FFFF0000FFFFu);
    *out = (quads & 0xFFFFFFFFu) * 10000 + (quads >> 32);
    return true;
}

static int parse_epoch(const char *s, size_t n, int scale_ms, int64_t *ms, int *has_ms)
{
    /* digits, optionally ".fraction" ($msec is "1795651199.954") */
    uint64_t u = 0, d8;
    size_t i = 0;
    if (n == 0 || n > 19) {
        return -1;
    }
    for (; i + 8 <= n && digits8(s + i, &d8); i += 8) {
        u = u * 100000000 + d8;
    }
    /* The 1 to 7 bytes left after the whole words (the 5 of a 13-digit
     * epoch_ms), when they are digits: the last 8 bytes as one word, and the
     * new ones of them (the same value, modulo 2^64, as one digit at a time).
     * Only when every word before was digits (n - i < 8): a block that
     * failed must not be skipped. */
    static const uint64_t tens[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
    if (i >= 8 && i < n && n - i < 8 && digits8(s + n - 8, &d8)) {
        u = u * tens[n - i] + d8 % tens[n - i];
        i = n;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        u = u * 10 + (uint64_t)(s[i] - '0');
    }
    /* Milliseconds past int64 (about 292 million years) are no time: refused,
     * not wrapped. */
    if (i == 0 || u > (scale_ms ? (uint64_t)INT64_MAX : (uint64_t)(INT64_MAX - 999) / 1000)) {
        return -1;
    }
    int64_t v = (int64_t)u;
    int64_t frac = 0;
    if (i < n && s[i] == '.' && !scale_ms) {
        int scale = 100;
        size_t start = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            frac += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (i == start) {
            return -1;
        }
        *has_ms = 1;
    }
    if (i != n) {
        return -1;
    }
    *ms = scale_ms ? v : v * 1000 + frac;
    if (scale_ms) {
        *has_ms = 1;
    }
    return 0;
}

static int parse_strptime(const char *fmt, const char *s, size_t n, int64_t *ms)
{
    char tmp[128];
    if (n >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(tmp, fmt, &tm);
    if (!end || *end) {
        return -1;
    }
    long gmtoff = tm.tm_gmtoff;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - gmtoff) * 1000;
    return 0;
}

static int convert_time(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                        pixel_span in, int64_t *ms, int *has_ms)
{
    *has_ms = 0;
    switch (f->tsfmt) {
        case TS_EPOCH_S:
            return parse_epoch(in.p, in.n, 0, ms, has_ms);
        case TS_EPOCH_MS:
            return parse_epoch(in.p, in.n, 1, ms, has_ms);
        case TS_RFC3339:
            *has_ms = memchr(in.p, '.', in.n) != NULL;
            return pixel__parse_rfc3339(in.p, in.n, ms);
        case TS_CLF:
            return clf_time_memo(&ctx->time_memo, in.p, in.n, ms);
        case TS_STRPTIME:
            return parse_strptime(f->strptime_fmt, in.p, in.n, ms);
        case TS_SYSLOG:
        case TS_AUTO: {
            if (in.n == 15) {
                /* BSD syslog: the year comes from the event time, else the ingest clock. */
                int64_t ref = ctx->ingest_ms;
                pixel_span t = ctx->rec.fields[PIXEL_F_TIME];
                int64_t lt;
                if (t.p && clf_time_memo(&ctx->time_memo, t.p, t.n, &lt) == 0) {
                    ref = lt;
                }
                return bsd_time_memo(&ctx->time_memo, in.p, in.n, ref, ms);
            }
            if (in.n == 26 && in.p[2] == '/') {
                return clf_time_memo(&ctx->time_memo, in.p, in.n, ms);
            }
            if (in.n >= 20 && in.p[4] == '-') {
                *has_ms = memchr(in.p, '.', in.n) != NULL;
                return pixel__parse_rfc3339(in.p, in.n, ms);
            }
            /* digits: 13 = epoch ms, up to 11 (with a fraction) = epoch s */
            const char *dot = memchr(in.p, '.', in.n);
            size_t intlen = dot ? (size_t)(dot - in.p) : in.n;
            return parse_epoch(in.p, in.n, intlen >= 12 && !dot, ms, has_ms);
        }
    }
    PIXEL_UNUSED(p);
    return -1;
}

/* The ingest time's text is kept apart from the memo's last second and
 * minute, which the times of the lines use (the ingest clock is another
 * time: it would displace them): a time in the minute of the last one is
 * that text up to the seconds and the new seconds and milliseconds, any
 * other is written whole. */
const char *pixel__ingest_text(pixel_ctx *ctx, size_t *len)
{
    pixel_time_memo *m = &ctx->time_memo;
    if (!m->ingest_set || m->ingest_ms != ctx->ingest_ms) {
        const int64_t ms = ctx->ingest_ms;
        const int64_t minute = floor_div(m->ingest_ms, 60000) * 60000; /* the last one's */
        const uint64_t r = (uint64_t)ms - (uint64_t)minute;
        if (m->ingest_set && m->ingest_len == 24 && r < 60000) {
            m->ingest_len = finish_rfc3339(NULL, m->ingest, m->ingest + 17, ms - (int64_t)(r % 1000),
                                           (unsigned)r / 1000, (unsigned)r % 1000, 1);
        } else {
            m->ingest_len = format_rfc3339_full(NULL, m->ingest, ms, 1);
        }
        m->ingest_ms = ms;
        m->ingest_set = true;
    }
    *len = m->ingest_len;
    return m->ingest;
}

/* ---- numbers --------------------------------------------------------------- */

/* A JSON number literal; the literal is kept so it serializes unchanged. */
static pixel_value *parse_decimal(pixel_ctx *ctx, const char *s, size_t n)
{
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp)) {
        return NULL;
    }
    /* One pass: the grammar (an optional '-', digits without a leading
     * zero, then optionally '.' and digits) and, as it goes, the digits as
     * an integer and how many follow the '.'.  Up to 15 digits and 22
     * decimals: the digits and the power of ten are both exact doubles, so
     * one division is correctly rounded (what strtod gives).  Anything
     * longer goes to strtod. */
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const bool neg = s[0] == '-';
    size_t i = neg;
    uint64_t digits_v = 0;
    unsigned d;
    while (i < n && (d = (unsigned)(unsigned char)s[i] - '0') <= 9) {
        digits_v = digits_v * 10 + d; /* wraps past 19 digits: then strtod decides */
        i++;
    }
    const size_t int_len = i - neg;
    if (int_len == 0 || (s[neg] == '0' && int_len > 1)) {
        return NULL;
    }
    size_t frac = 0;
    if (i < n && s[i] == '.') {
        const size_t f = ++i;
        while (i < n && (d = (unsigned)(unsigned char)s[i] - '0') <= 9) {
            digits_v = digits_v * 10 + d;
            i++;
        }
        frac = i - f;
        if (frac == 0) {
            return NULL;
        }
    }
    if (i != n) {
        return NULL;
    }
    double v_d;
    if (FLT_EVAL_METHOD == 0 && int_len + frac <= 15 && frac < PIXEL_ARRAY_LEN(pow10)) {
        v_d = (double)digits_v / pow10[frac];
        v_d = neg ? -v_d : v_d;
    } else {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        v_d = strtod(tmp, NULL);
        if (!isfinite(v_d)) {
            return NULL;
        }
    }
    pixel_value *v = pixel__arena_alloc(&ctx->arena, sizeof(*v));
    if (v) {
        *v = (pixel_value){.type = PIXEL_TYPE_NUMBER,
                           .flags = PIXEL_VALUE_RAW,
                           .u.num = {.d = v_d, .raw = s, .rawlen = n}};
    }
    return v;
}

/* ---- base64url ------------------------------------------------------------- */

/* One more than the value of a base64url digit; 0 for other bytes. */
static const unsigned char b64_value1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64};

/* The offset of the first byte of s[0..n) that is not a base64url digit. */
static size_t b64_first_bad(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && b64_value1[(unsigned char)s[i]]) {
        i++;
    }
    return i;
}

#ifdef PIXEL_CONVERT_AVX2
/* The whole blocks of sixteen digits at the start of the n bytes at s,
 * decoded to twelve bytes each at out (each block's store is sixteen
 * bytes: out has room for four past the last twelve); returns how many
 * digits were taken, up to the first block that holds a byte that is no
 * digit (left to the caller, which finds it).  A digit's value is the
 * byte plus the offset of its range (A-Z, a-z, 0-9, '-', '_'); pairs of
 * values are then joined to 12 bits, pairs of those to 24, and the three
 * bytes of each 32-bit lane taken, the high one first. */
__attribute__((target("avx2"))) static size_t b64url_blocks_avx2(const unsigned char *s, size_t n,
                                                                 char *out)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* a range test in one signed compare: the byte less the range's
         * first, less 128, is below the range's size less 128 only inside */
        const __m128i up = _mm_cmpgt_epi8(_mm_set1_epi8(26 - 128),
                                          _mm_add_epi8(v, _mm_set1_epi8((char)(-'A' - 128))));
        const __m128i low = _mm_cmpgt_epi8(_mm_set1_epi8(26 - 128),
                                           _mm_add_epi8(v, _mm_set1_epi8((char)(-'a' - 128))));
        const __m128i dig = _mm_cmpgt_epi8(_mm_set1_epi8(10 - 128),
                                           _mm_add_epi8(v, _mm_set1_epi8((char)(-'0' - 128))));
        const __m128i minus = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
        const __m128i under = _mm_cmpeq_epi8(v, _mm_set1_epi8('_'));
        const __m128i ok = _mm_or_si128(_mm_or_si128(up, low), _mm_or_si128(dig, minus));
        if (_mm_movemask_epi8(_mm_or_si128(ok, under)) != 0xFFFF) {
            break;
        }
        const __m128i off = _mm_or_si128(
            _mm_or_si128(_mm_and_si128(up, _mm_set1_epi8(-'A')),
                         _mm_and_si128(low, _mm_set1_epi8(26 - 'a'))),
            _mm_or_si128(_mm_or_si128(_mm_and_si128(dig, _mm_set1_epi8(52 - '0')),
                                      _mm_and_si128(minus, _mm_set1_epi8(62 - '-'))),
                         _mm_and_si128(under, _mm_set1_epi8(63 - '_'))));
        const __m128i d = _mm_add_epi8(v, off);
        const __m128i d12 = _mm_maddubs_epi16(d, _mm_set1_epi32(0x01400140));
        const __m128i d24 = _mm_madd_epi16(d12, _mm_set1_epi32(0x00011000));
        const __m128i b = _mm_shuffle_epi8(
            d24, _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1));
        _mm_storeu_si128((__m128i *)(void *)(out + i / 4 * 3), b);
    }
    return i;
}
#endif

/* Strict base64url (padding optional); returns decoded length or -1 with
 * *bad = offset.  Four digits (24 bits) make three bytes; a last group of
 * two or three digits makes one or two (its spare low bits are dropped).
 * out has room for n + 1 bytes. */
static long b64url_decode(const char *s, size_t n, char *out, size_t *bad)
{
    while (n > 0 && s[n - 1] == '=') {
        n--;
    }
    if (n % 4 == 1) {
        *bad = n;
        return -1;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k = 0;
#ifdef PIXEL_CONVERT_AVX2
    /* 3/4 of the blocks' digits plus a store of sixteen: within n + 1 bytes */
    if (n >= 16 && __builtin_cpu_supports("avx2")) {
        i = b64url_blocks_avx2(u, n, out);
        k = i / 4 * 3;
    }
#endif
    for (; i + 4 <= n; i += 4, k += 3) {
        unsigned a = b64_value1[u[i]], b = b64_value1[u[i + 1]], c = b64_value1[u[i + 2]],
                 d = b64_value1[u[i + 3]];
        if (!a || !b || !c || !d) {
            *bad = i + b64_first_bad(s + i, 4);
            return -1;
        }
        uint32_t w = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[k] = (char)(w >> 16);
        out[k + 1] = (char)(w >> 8);
        out[k + 2] = (char)w;
    }
    size_t r = n - i; /* 0, 2 or 3 */
    if (r) {
        if (b64_first_bad(s + i, r) < r) {
            *bad = i + b64_first_bad(s + i, r);
            return -1;
        }
        uint32_t w = (uint32_t)(b64_value1[u[i]] - 1) << 6 | (uint32_t)(b64_value1[u[i + 1]] - 1);
        if (r == 2) {
            out[k++] = (char)(w >> 4);
        } else {
            w = w << 6 | (uint32_t)(b64_value1[u[i + 2]] - 1);
            out[k++] = (char)(w >> 10);
            out[k++] = (char)(w >> 2);
        }
    }
    return (long)k;
}

/* ---- the conversions ------------------------------------------------------- */

static const char *conv_codes[] = {
    [CONV_STRING] = "invalid_utf8",     [CONV_INTEGER] = "bad_integer",
    [CONV_NUMBER] = "bad_number",       [CONV_BOOLEAN] = "bad_boolean",
    [CONV_TIMESTAMP] = "bad_timestamp", [CONV_BASE64URL_JSON] = "bad_base64url_json",
    [CONV_JSON] = "bad_json",           [CONV_LIST] = "bad_list",
    [CONV_KV] = "bad_kv_list",
};

static int fail(pixel_ctx *ctx, const pixel_field *f, pixel_span in, const char *why)
{
    int shown = in.n > 64 ? 64 : (int)in.n;
    return pixel__ctx_reason(ctx, PIXEL_STAGE_MAP, conv_codes[f->conv], f->source_name,
                             "field \"%s\" (%s): \"%.*s%s\" %s", f->target, f->source_name, shown,
                             in.p, in.n > 64 ? "..." : "", why) < 0
               ? PIXEL_ENOMEM
               : 1;
}

static pixel_value *scalar_item(pixel_ctx *ctx, pixel_conv conv, pixel_span in)
{
    if (conv == CONV_INTEGER) {
        int64_t i;
        return pixel__parse_int64(in.p, in.n, &i) == 0 ? pixel_value_new_int(ctx, i) : NULL;
    }
    if (conv == CONV_NUMBER) {
        return parse_decimal(ctx, in.p, in.n);
    }
    return pixel__value_string_view(&ctx->arena, in.p, in.n);
}

static int convert_list(pixel_ctx *ctx, const pixel_field *f, pixel_span in, pixel_value **out)
{
    pixel_value *arr = pixel__value_new(&ctx->arena, PIXEL_TYPE_ARRAY);
    if (!arr) {
        return PIXEL_ENOMEM;
    }
    const char *s = in.p, *end = in.p + in.n;
    while (in.n > 0 && s <= end) {
        const char *sep = memchr(s, f->separator, (size_t)(end - s));
        const char *e = sep ? sep : end;
        pixel_value *item = scalar_item(ctx, f->item_conv, (pixel_span){s, (size_t)(e - s)});
        if (!item) {
            return fail(ctx, f, in,
                        f->item_conv == CONV_INTEGER ? "has an item that is not an integer"
                                                     : "has an item that is not a number");
        }
        pixel__object_add(arr, NULL, 0, item);
        s = e + 1;
    }
    *out = arr;
    return 0;
}

/* The bits below bit k of a word (k <= 64). */
static inline uint64_t low_bits(size_t k)
{
    return k >= 64 ? ~0ull : (1ull << k) - 1;
}

/*
 * A kv list of at most 64 bytes, in one pass: the bytes (copied into a
 * zeroed block of 64, in blocks of sixteen, the last one overlapping) give
 * three masks, the separators, the key separators and the bytes a JSON
 * string must escape; the pairs are then cut from the masks.  What
 * convert_kv makes, checks and says, the same.
 */
static int convert_kv_short(pixel_ctx *ctx, const pixel_field *f, pixel_span in, pixel_value **out)
{
    const size_t n = in.n;
    unsigned char t[64] = {0};
    if (n >= 16) {
        for (size_t i = 0; i + 16 <= n; i += 16) {
            pixel__copy16(t + i, in.p + i);
        }
        pixel__copy16(t + n - 16, in.p + n - 16);
    } else if (n >= 8) {
        memcpy(t, in.p, 8);
        memcpy(t + n - 8, in.p + n - 8, 8);
    } else {
        for (size_t i = 0; i < n; i++) {
            t[i] = (unsigned char)in.p[i];
        }
    }
    uint64_t seps = 0, kvs = 0, special = 0;
    for (size_t i = 0; i < n; i += 16) {
        seps |= (uint64_t)pixel__eq16(t + i, (unsigned char)f->separator) << i;
        kvs |= (uint64_t)pixel__eq16(t + i, (unsigned char)f->kv_separator) << i;
        special |= (uint64_t)pixel__json_special16(t + i) << i;
    }
    const uint64_t in_text = low_bits(n); /* the zeros after the text are no bytes of it */
    seps &= in_text;
    kvs &= in_text;
    pixel_value *obj = pixel__arena_alloc(&ctx->arena, sizeof(*obj));
    if (!obj) {
        return PIXEL_ENOMEM;
    }
    *obj = (pixel_value){.type = PIXEL_TYPE_OBJECT};
    /* kvs and special hold only the bits from the pair's start on: those
     * before it are dropped as each pair is done */
    for (size_t at = 0;;) {
        const size_t e = seps ? (size_t)__builtin_ctzll(seps) : n; /* the pair ends */
        const size_t colon = kvs ? (size_t)__builtin_ctzll(kvs) : 64;
        if (colon >= e || colon == at) {
            return fail(ctx, f, in, "is not a list of key:value pairs");
        }
        const char *key = in.p + at;
        const uint32_t klen = (uint32_t)(colon - at);
        for (const pixel_value *m = obj->u.list.head; m; m = m->next) {
            if (m->klen == klen && pixel__same_bytes(m->key, key, klen)) {
                return fail(ctx, f, in, "repeats a key");
            }
        }
        pixel_value *v = pixel__arena_alloc(&ctx->arena, sizeof(*v));
        if (!v) {
            return PIXEL_ENOMEM;
        }
        /* a key that needs no JSON escaping (most) is copied as it is when
         * serialized; so is a value (PIXEL_VALUE_PLAIN_STR): none of the
         * bytes from the key's start, then from the value's, up to its end
         * (the zeros after the text are escapes: past the last pair's end) */
        const bool plain = !special || (size_t)__builtin_ctzll(special) >= colon;
        const uint64_t in_value = special & ~low_bits(colon + 1);
        const bool plain_value = !in_value || (size_t)__builtin_ctzll(in_value) >= e;
        *v = (pixel_value){.type = PIXEL_TYPE_STRING,
                           .flags = (uint16_t)((plain ? PIXEL_VALUE_PLAIN_KEY : 0) |
                                               (plain_value ? PIXEL_VALUE_PLAIN_STR : 0)),
                           .klen = klen,
                           .key = key,
                           .u.str = {in.p + colon + 1, e - colon - 1}};
        pixel__list_link(obj, v, v, 1);
        if (!seps) {
            break; /* the last pair */
        }
        const uint64_t after = ~(uint64_t)0 << e << 1; /* e < n: a separator */
        kvs &= after;
        special &= after;
        seps &= seps - 1;
        at = e + 1;
    }
    *out = obj;
    return 0;
}

static int convert_kv(pixel_ctx *ctx, const pixel_field *f, pixel_span in, pixel_value **out)
{
    pixel_value *obj = pixel__value_new(&ctx->arena, PIXEL_TYPE_OBJECT);
    if (!obj) {
        return PIXEL_ENOMEM;
    }
    const char *s = in.p, *end = in.p + in.n;
    while (in.n > 0 && s <= end) {
        const char *sep = memchr(s, f->separator, (size_t)(end - s));
        const char *e = sep ? sep : end;
        const char *colon = memchr(s, f->kv_separator, (size_t)(e - s));
        if (!colon || colon == s) {
            return fail(ctx, f, in, "is not a list of key:value pairs");
        }
        if (pixel__object_getn(obj, s, (size_t)(colon - s))) {
            return fail(ctx, f, in, "repeats a key");
        }
        pixel_value *v = pixel__value_string_view(&ctx->arena, colon + 1, (size_t)(e - colon - 1));
        if (!v) {
            return PIXEL_ENOMEM;
        }
        /* a key that needs no JSON escaping (most) is copied as it is when serialized */
        if (pixel__plain_key(s, (size_t)(colon - s))) {
            pixel__object_add_plain(obj, s, (size_t)(colon - s), v);
        } else {
            pixel__object_add(obj, s, (size_t)(colon - s), v);
        }
        s = e + 1;
    }
    *out = obj;
    return 0;
}

static const char *type_names[] = {"null",   "boolean", "integer", "number",
                                   "string", "array",   "object"};

static int convert_json_text(pixel_ctx *ctx, const pixel_field *f, pixel_span orig, const char *s,
                             size_t n, pixel_value **out)
{
    pixel_error jerr;
    /* What pixel__error_set and pixel__error_at look at (a whole clear is a
     * memset of the message buffers on every call). */
    jerr.code = 0;
    jerr.text[0] = '\0';
    jerr.source[0] = '\0';
    jerr.line = 0;
    pixel_value *v = pixel__json_parse(&ctx->arena, s, n, &jerr);
    if (!v) {
        if (jerr.code == PIXEL_ENOMEM) {
            return PIXEL_ENOMEM;
        }
        char why[360];
        snprintf(why, sizeof(why), "%s: %s",
                 f->conv == CONV_BASE64URL_JSON ? "does not decode to JSON" : "is not JSON",
                 jerr.text);
        return fail(ctx, f, orig, why);
    }
    if (f->expect_type >= 0 && v->type != f->expect_type &&
        !(f->expect_type == PIXEL_TYPE_NUMBER && v->type == PIXEL_TYPE_INT)) {
        char why[96];
        snprintf(why, sizeof(why), "holds a JSON %s, not an %s", type_names[v->type],
                 type_names[f->expect_type]);
        return fail(ctx, f, orig, why);
    }
    *out = v;
    return 0;
}

/* A string longer than max_length bytes: quarantined when it is longer in characters too. */
__attribute__((noinline)) static int string_too_long(pixel_ctx *ctx, const pixel_field *f,
                                                     pixel_span in, pixel_value **out)
{
    size_t chars = pixel__utf8_length(in.p, in.n);
    if (chars > (size_t)f->max_length) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_MAP, "too_long", f->source_name,
                                 "field \"%s\" (%s) is %zu characters long, more than the "
                                 "%ld allowed",
                                 f->target, f->source_name, chars, f->max_length) < 0
                   ? PIXEL_ENOMEM
                   : 1;
    }
    *out = pixel__value_string_view(&ctx->arena, in.p, in.n);
    return *out ? 0 : PIXEL_ENOMEM;
}

/*
 * The conversions, one function each (pixel_conv_fn): the map stage's plan
 * holds the one of each field (pixel__conv_fn, chosen at load).  Each returns
 * 0 with *out set, 1 when the line was quarantined (reason added), or a
 * negative status.
 */

static int conv_string(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                       pixel_value **out)
{
    PIXEL_UNUSED(p);
    if (f->max_length > 0 && in.n > (size_t)f->max_length) {
        return string_too_long(ctx, f, in, out);
    }
    *out = pixel__value_string_view(&ctx->arena, in.p, in.n);
    return *out ? 0 : PIXEL_ENOMEM;
}

static int conv_integer(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                        pixel_span in, pixel_value **out)
{
    PIXEL_UNUSED(p);
    int64_t i;
    if (pixel__parse_int64(in.p, in.n, &i) < 0) {
        return fail(ctx, f, in, "is not an integer");
    }
    pixel_value *v = pixel__value_new(&ctx->arena, PIXEL_TYPE_INT);
    if (!v) {
        return PIXEL_ENOMEM;
    }
    v->u.i = i;
    *out = v;
    return 0;
}

static int conv_number(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                       pixel_value **out)
{
    PIXEL_UNUSED(p);
    *out = parse_decimal(ctx, in.p, in.n);
    return *out ? 0 : fail(ctx, f, in, "is not a decimal number");
}

static int conv_boolean(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                        pixel_span in, pixel_value **out)
{
    PIXEL_UNUSED(p);
    int b;
    if ((in.n == 4 && memcmp(in.p, "true", 4) == 0) || (in.n == 1 && in.p[0] == '1')) {
        b = 1;
    } else if ((in.n == 5 && memcmp(in.p, "false", 5) == 0) || (in.n == 1 && in.p[0] == '0')) {
        b = 0;
    } else {
        return fail(ctx, f, in, "is not a boolean (true, false, 1 or 0)");
    }
    *out = pixel_value_new_bool(ctx, b);
    return *out ? 0 : PIXEL_ENOMEM;
}

/* A time as its RFC 3339 text (in UTC): the value and its text in one allocation. */
static inline int time_value(pixel_ctx *ctx, int64_t ms, int with_ms, pixel_value **out)
{
    pixel_value *v = pixel__arena_alloc(&ctx->arena, sizeof(*v) + 32);
    if (!v) {
        return PIXEL_ENOMEM;
    }
    char *text = (char *)(v + 1);
    size_t n = format_memo(&ctx->time_memo, text, ms, with_ms);
    /* digits and -T:.Z: no escaping; a date-time as JSON Schema has it */
    *v = (pixel_value){.type = PIXEL_TYPE_STRING,
                       .flags = PIXEL_VALUE_PLAIN_STR | PIXEL_VALUE_FMT_DATE_TIME,
                       .u.str = {text, n}};
    *out = v;
    return 0;
}

static int time_fail(pixel_ctx *ctx, const pixel_field *f, pixel_span in)
{
    return fail(ctx, f, in, "is not a valid timestamp in the configured format");
}

/* Any timestamp format (convert_time's switch). */
static int conv_timestamp(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                          pixel_span in, pixel_value **out)
{
    int64_t ms;
    int has_ms;
    if (convert_time(p, ctx, f, in, &ms, &has_ms) < 0) {
        return time_fail(ctx, f, in);
    }
    return time_value(ctx, ms, f->ts_output_ms || has_ms, out);
}

/* format: clf, most often the time of the line before (the memo). */
static int conv_time_clf(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                         pixel_span in, pixel_value **out)
{
    PIXEL_UNUSED(p);
    int64_t ms;
    if (clf_time_memo(&ctx->time_memo, in.p, in.n, &ms) < 0) {
        return time_fail(ctx, f, in);
    }
    return time_value(ctx, ms, f->ts_output_ms, out);
}

/* format: syslog or auto: a BSD syslog time (15 bytes) read as convert_time
 * reads it (its year from the line's CLF time, else from the ingest clock),
 * without the switch over formats; any other text through conv_timestamp. */
static int conv_time_syslog(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                            pixel_span in, pixel_value **out)
{
    if (in.n != 15) {
        return conv_timestamp(p, ctx, f, in, out);
    }
    int64_t ref = ctx->ingest_ms, lt, ms;
    const pixel_span t = ctx->rec.fields[PIXEL_F_TIME];
    if (t.p && clf_time_memo(&ctx->time_memo, t.p, t.n, &lt) == 0) {
        ref = lt;
    }
    if (bsd_time_memo(&ctx->time_memo, in.p, in.n, ref, &ms) < 0) {
        return time_fail(ctx, f, in);
    }
    return time_value(ctx, ms, f->ts_output_ms, out);
}

/* The first five digits of a 13-digit epoch_ms text into the memo (false if
 * one of its first eight bytes is not a digit: the text is then read by
 * parse_epoch). */
__attribute__((noinline)) static bool epoch_head_read(pixel_time_memo *m, const char *s)
{
    uint64_t hi;
    if (!digits8(s, &hi)) {
        return false;
    }
    memcpy(m->epoch_head, s, sizeof(m->epoch_head));
    m->epoch_high = hi / 1000;
    m->epoch_set = true;
    return true;
}

/* format: epoch_ms (always with milliseconds). */
static int conv_time_epoch_ms(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                              pixel_span in, pixel_value **out)
{
    PIXEL_UNUSED(p);
    int64_t ms;
    int has_ms;
    uint64_t lo;
    pixel_time_memo *m = &ctx->time_memo;
    /* 13 digits (the epoch_ms of these years): parse_epoch's value, in line.
     * The first five (a day and more) are most often the last one's: their
     * value from the memo, else read with the next three (all checked) and
     * kept; the last eight read at once. */
    if (in.n == 13 &&
        ((m->epoch_set && pixel__same_bytes(m->epoch_head, in.p, sizeof(m->epoch_head))) ||
         epoch_head_read(m, in.p)) &&
        digits8(in.p + 5, &lo)) {
        ms = (int64_t)(m->epoch_high * 100000000 + lo);
    } else if (parse_epoch(in.p, in.n, 1, &ms, &has_ms) < 0) {
        return time_fail(ctx, f, in);
    }
    return time_value(ctx, ms, 1, out);
}

static int conv_base64url_json(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                               pixel_span in, pixel_value **out)
{
    PIXEL_UNUSED(p);
    char *buf = pixel__arena_alloc(&ctx->arena, in.n + 1);
    size_t bad = 0;
    if (!buf) {
        return PIXEL_ENOMEM;
    }
    long n = b64url_decode(in.p, in.n, buf, &bad);
    if (n < 0) {
        char why[96];
        if (bad >= in.n || in.n % 4 == 1) {
            snprintf(why, sizeof(why), "is not base64url: its length %zu is impossible", in.n);
        } else {
            snprintf(why, sizeof(why), "is not base64url: '%c' at offset %zu", in.p[bad], bad);
        }
        return fail(ctx, f, in, why);
    }
    return convert_json_text(ctx, f, in, buf, (size_t)n, out);
}

static int conv_json(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                     pixel_value **out)
{
    PIXEL_UNUSED(p);
    return convert_json_text(ctx, f, in, in.p, in.n, out);
}

static int conv_list(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                     pixel_value **out)
{
    PIXEL_UNUSED(p);
    return convert_list(ctx, f, in, out);
}

static int conv_kv(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                   pixel_value **out)
{
    PIXEL_UNUSED(p);
    return in.n - 1 < 64 ? convert_kv_short(ctx, f, in, out) : convert_kv(ctx, f, in, out);
}

pixel_conv_fn pixel__conv_fn(const pixel_field *f)
{
    static const pixel_conv_fn by_conv[] = {
        [CONV_STRING] = conv_string,
        [CONV_INTEGER] = conv_integer,
        [CONV_NUMBER] = conv_number,
        [CONV_BOOLEAN] = conv_boolean,
        [CONV_TIMESTAMP] = conv_timestamp,
        [CONV_BASE64URL_JSON] = conv_base64url_json,
        [CONV_JSON] = conv_json,
        [CONV_LIST] = conv_list,
        [CONV_KV] = conv_kv,
    };
    if (f->conv == CONV_TIMESTAMP && f->tsfmt == TS_CLF) {
        return conv_time_clf;
    }
    if (f->conv == CONV_TIMESTAMP && f->tsfmt == TS_EPOCH_MS) {
        return conv_time_epoch_ms;
    }
    if (f->conv == CONV_TIMESTAMP && (f->tsfmt == TS_SYSLOG || f->tsfmt == TS_AUTO)) {
        return conv_time_syslog;
    }
    return by_conv[f->conv];
}

int pixel__convert(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f, pixel_span in,
                   pixel_value **out)
{
    if (PIXEL_LIKELY(f->conv == CONV_STRING)) {
        return conv_string(p, ctx, f, in, out);
    }
    return pixel__conv_fn(f)(p, ctx, f, in, out);
}

int pixel__conv_parse(pixel_cfg *c, const yaml_node_t *n, pixel_conv *out)
{
    static const char *const names[] = {"string",  "integer",   "number",
                                        "boolean", "timestamp", "base64url_json",
                                        "json",    "list",      "kv"};
    const char *s = pixel__cfg_scalar(n);
    for (size_t i = 0; s && i < PIXEL_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (pixel_conv)i;
            return 0;
        }
    }
    return pixel__cfg_fail(c, n,
                           "unknown type '%s' (expected string, integer, number, boolean, "
                           "timestamp, base64url_json, json, list or kv)",
                           s ? s : "");
}
