/*
 * Format checkers, hand-written per their RFCs.  Each takes a byte range
 * (valid UTF-8, not NUL-terminated), never allocates, and answers 1 (valid)
 * or 0.  They are untrusted-input parsers: fuzzed by tests/fuzz/fuzz_format_*.
 *
 *   date-time, date, time   RFC 3339 section 5.6 (leap seconds at 23:59:60 UTC)
 *   duration                RFC 3339 appendix A (ISO 8601 durations)
 *   email, idn-email        RFC 5321 Mailbox (dot-string or quoted local part;
 *                           a hostname or an address literal)
 *   hostname, idn-hostname  RFC 1123 labels; A-labels and U-labels per RFC 5890-5893
 *                           (Punycode round trip, contextual rules, Bidi rule)
 *   ipv4, ipv6              RFC 2673 dotted quad; RFC 4291 section 2.2
 *   uri, uri-reference,     RFC 3986 (and RFC 3987 for iri: non-ASCII allowed)
 *   iri, iri-reference
 *   uri-template            RFC 6570 (expression syntax)
 *   uuid                    RFC 4122 text form
 *   json-pointer            RFC 6901; relative-json-pointer (draft)
 *   regex                   ECMA-262, through the pattern translator
 */
#include <string.h>

#include "schema_private.h"

enum {
    F_DATE_TIME,
    F_DATE,
    F_TIME,
    F_DURATION,
    F_EMAIL,
    F_IDN_EMAIL,
    F_HOSTNAME,
    F_IDN_HOSTNAME,
    F_IPV4,
    F_IPV6,
    F_URI,
    F_URI_REFERENCE,
    F_IRI,
    F_IRI_REFERENCE,
    F_URI_TEMPLATE,
    F_UUID,
    F_JSON_POINTER,
    F_REL_JSON_POINTER,
    F_REGEX,
};

static const char *const NAMES[] = {
    "date-time", "date",         "time",          "duration",     "email",
    "idn-email", "hostname",     "idn-hostname",  "ipv4",         "ipv6",
    "uri",       "uri-reference", "iri",          "iri-reference", "uri-template",
    "uuid",      "json-pointer", "relative-json-pointer", "regex",
};

int pixel__format_id(const char *name)
{
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(NAMES); i++) {
        if (strcmp(NAMES[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Character classes by table: hex digits and letters would otherwise be chains of
   comparisons, which mispredict on random input like UUIDs and IPv6 groups. */
#define C_HEX 1
#define C_ALPHA 2
#define C_DASH 4
#define CLS1(c)                                                                                   \
    (uint8_t)((((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') ||                        \
                       ((c) >= 'A' && (c) <= 'F')                                                  \
                   ? C_HEX                                                                         \
                   : 0) |                                                                          \
              (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') ? C_ALPHA : 0) |          \
              ((c) == '-' ? C_DASH : 0))
#define CLS4(c) CLS1(c), CLS1((c) + 1), CLS1((c) + 2), CLS1((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)
static const uint8_t CLASS[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

static bool digit(char c)
{
    return (unsigned)(unsigned char)c - '0' < 10;
}

static bool hex(char c)
{
    return CLASS[(unsigned char)c] & C_HEX;
}

static bool alpha(char c)
{
    return CLASS[(unsigned char)c] & C_ALPHA;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* ---- dates and times (RFC 3339) ------------------------------------------------ */

static bool full_date(const char *s, size_t n)
{
    if (n != 10 || s[4] != '-' || s[7] != '-') {
        return false;
    }
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1) {
        return false;
    }
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int max = days[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        max = 29;
    }
    return d <= max;
}

static bool full_time(const char *s, size_t n)
{
    if (n < 9 || s[2] != ':' || s[5] != ':') {
        return false;
    }
    int h = num(s, 2), mi = num(s + 3, 2), se = num(s + 6, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) {
        return false;
    }
    size_t i = 8;
    if (i < n && s[i] == '.') {
        size_t st = ++i;
        while (i < n && digit(s[i])) {
            i++;
        }
        if (i == st) {
            return false;
        }
    }
    if (i >= n) {
        return false;
    }
    int off = 0;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        off = 0;
    } else if ((s[i] == '+' || s[i] == '-') && n - i == 6 && s[i + 3] == ':') {
        int oh = num(s + i + 1, 2), om = num(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return false;
        }
        off = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
    } else {
        return false;
    }
    if (se == 60) {
        int utc = ((h * 60 + mi - off) % 1440 + 1440) % 1440;
        return utc == 23 * 60 + 59;
    }
    return true;
}

/* Byte lanes of x (a little- or big-endian load of 8 bytes) above their limit in lim:
   non-zero when some byte of x exceeds the matching byte of lim (each limit < 0x80). */
static uint64_t lanes_over(uint64_t x, uint64_t lim)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full, high = 0x8080808080808080ull;
    return (((x & low7) + (low7 - lim)) | x) & high;
}

static uint64_t load8(const char *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    return v;
}

/* Eight bytes of text as a word in load order, for comparing with load8(). */
#define WORD8(a, b, c, d, e, f, g, h) (load8((const char[8]){a, b, c, d, e, f, g, h}))

/* The usual shape, YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.sssZ, with a day of at most
   28 (or within its month, February aside) and a second below 60: true only when the full
   checker would say true; anything else goes to it. */
static bool date_time_common(const char *s, size_t n)
{
    if ((n != 20 && n != 24) || s[n - 1] != 'Z') {
        return false;
    }
    /* digits XOR '0' are 0..9; separators XOR themselves are 0 */
    uint64_t a = load8(s) ^ WORD8('0', '0', '0', '0', '-', '0', '0', '-');
    uint64_t b = load8(s + 8) ^ WORD8('0', '0', 'T', '0', '0', ':', '0', '0');
    uint64_t c = load8(s + n - 8) ^ (n == 20 ? WORD8('0', ':', '0', '0', ':', '0', '0', 'Z')
                                             : WORD8(':', '0', '0', '.', '0', '0', '0', 'Z'));
    uint64_t la = WORD8(9, 9, 9, 9, 0, 9, 9, 0), lb = WORD8(9, 9, 0, 9, 9, 0, 9, 9);
    uint64_t lc = n == 20 ? WORD8(9, 0, 9, 9, 0, 9, 9, 0) : WORD8(0, 9, 9, 0, 9, 9, 9, 0);
    if (lanes_over(a, la) | lanes_over(b, lb) | lanes_over(c, lc)) {
        return false;
    }
    int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    int h = (s[11] - '0') * 10 + (s[12] - '0'), mi = (s[14] - '0') * 10 + (s[15] - '0');
    int se = (s[17] - '0') * 10 + (s[18] - '0');
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m >= 1 && m <= 12 && d >= 1 && (d <= 28 || d <= days[m - 1]) && h <= 23 &&
           mi <= 59 && se <= 59;
}

static bool date_time(const char *s, size_t n)
{
    if (date_time_common(s, n)) {
        return true;
    }
    return n > 11 && (s[10] == 'T' || s[10] == 't') && full_date(s, 10) &&
           full_time(s + 11, n - 11);
}

/* P[nY[nM[nD]]][T[nH[nM[nS]]]] with no skipped units, or PnW. */
static bool duration(const char *s, size_t n)
{
    if (n < 2 || s[0] != 'P') {
        return false;
    }
    size_t i = 1;
    static const char dunits[] = "YMD", tunits[] = "HMS";
    int last = -1;
    bool any = false, week = false;
    while (i < n && s[i] != 'T') {
        size_t st = i;
        while (i < n && digit(s[i])) {
            i++;
        }
        if (i == st || i >= n) {
            return false;
        }
        if (s[i] == 'W') {
            if (any || i + 1 != n) {
                return false;
            }
            week = true;
            i++;
            break;
        }
        const char *u = strchr(dunits, s[i]);
        if (!u || !*u) {
            return false;
        }
        int k = (int)(u - dunits);
        if (k <= last || (last >= 0 && k != last + 1)) {
            return false;
        }
        last = k;
        any = true;
        i++;
    }
    if (week) {
        return true;
    }
    if (i < n && s[i] == 'T') {
        i++;
        last = -1;
        bool tany = false;
        while (i < n) {
            size_t st = i;
            while (i < n && digit(s[i])) {
                i++;
            }
            if (i == st || i >= n) {
                return false;
            }
            const char *u = strchr(tunits, s[i]);
            if (!u || !*u) {
                return false;
            }
            int k = (int)(u - tunits);
            if (k <= last || (last >= 0 && k != last + 1)) {
                return false;
            }
            last = k;
            tany = true;
            i++;
        }
        return tany;
    }
    return any && i == n;
}

/* ---- UTF-8 and code points ---------------------------------------------------- */

static size_t decode_utf8(const char *s, size_t n, uint32_t *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t len;
        if (c < 0x80) {
            cp = c, len = 1;
        } else if (c < 0xE0) {
            cp = c & 0x1F, len = 2;
        } else if (c < 0xF0) {
            cp = c & 0x0F, len = 3;
        } else {
            cp = c & 0x07, len = 4;
        }
        for (size_t j = 1; j < len && i + j < n; j++) {
            cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3F);
        }
        out[k++] = cp;
        i += len;
    }
    return k;
}

/* ---- Punycode (RFC 3492) -------------------------------------------------------- */

static uint32_t adapt(uint32_t delta, uint32_t numpoints, bool first)
{
    delta = first ? delta / 700 : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((36 - 1) * 26) / 2) {
        delta /= 35;
        k += 36;
    }
    return k + (36 * delta) / (delta + 38);
}

static int pdigit(char c)
{
    if (c >= 'a' && c <= 'z') {
        return c - 'a';
    }
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (digit(c)) {
        return c - '0' + 26;
    }
    return -1;
}

/* Decode; returns the number of code points or -1. */
static long puny_decode(const char *s, size_t n, uint32_t *out, size_t max)
{
    size_t b = 0;
    for (size_t j = 0; j < n; j++) {
        if (s[j] == '-') {
            b = j;
        }
    }
    size_t k = 0;
    for (size_t j = 0; j < b; j++) {
        if ((unsigned char)s[j] >= 0x80 || k >= max) {
            return -1;
        }
        out[k++] = (unsigned char)s[j];
    }
    uint32_t nn = 128, bias = 72, i = 0;
    for (size_t in = b > 0 ? b + 1 : 0; in < n;) {
        uint32_t oldi = i, w = 1;
        for (uint32_t kk = 36;; kk += 36) {
            if (in >= n) {
                return -1;
            }
            int d = pdigit(s[in++]);
            if (d < 0 || (uint32_t)d > (UINT32_MAX - i) / w) {
                return -1;
            }
            i += (uint32_t)d * w;
            uint32_t t = kk <= bias ? 1 : kk >= bias + 26 ? 26 : kk - bias;
            if ((uint32_t)d < t) {
                break;
            }
            if (w > UINT32_MAX / (36 - t)) {
                return -1;
            }
            w *= 36 - t;
        }
        bias = adapt(i - oldi, (uint32_t)k + 1, oldi == 0);
        if (i / (k + 1) > 0x10FFFF - nn) {
            return -1;
        }
        nn += i / (uint32_t)(k + 1);
        i %= (uint32_t)(k + 1);
        if (k >= max || nn > 0x10FFFF) {
            return -1;
        }
        memmove(out + i + 1, out + i, (k - i) * sizeof(*out));
        out[i++] = nn;
        k++;
    }
    return (long)k;
}

/* Encode to out (ASCII); returns length or -1 when longer than max. */
static long puny_encode(const uint32_t *in, size_t n, char *out, size_t max)
{
    size_t o = 0, h, b = 0;
    for (size_t j = 0; j < n; j++) {
        if (in[j] < 0x80) {
            if (o >= max) {
                return -1;
            }
            out[o++] = (char)in[j];
            b++;
        }
    }
    h = b;
    if (b > 0) {
        if (o >= max) {
            return -1;
        }
        out[o++] = '-';
    }
    uint32_t nn = 128, bias = 72, delta = 0;
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t j = 0; j < n; j++) {
            if (in[j] >= nn && in[j] < m) {
                m = in[j];
            }
        }
        delta += (m - nn) * (uint32_t)(h + 1);
        nn = m;
        for (size_t j = 0; j < n; j++) {
            if (in[j] < nn) {
                delta++;
            }
            if (in[j] == nn) {
                uint32_t q = delta;
                for (uint32_t k = 36;; k += 36) {
                    uint32_t t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
                    if (q < t) {
                        break;
                    }
                    uint32_t d = t + (q - t) % (36 - t);
                    if (o >= max) {
                        return -1;
                    }
                    out[o++] = (char)(d < 26 ? 'a' + d : '0' + d - 26);
                    q = (q - t) / (36 - t);
                }
                if (o >= max) {
                    return -1;
                }
                out[o++] = (char)(q < 26 ? 'a' + q : '0' + q - 26);
                bias = adapt(delta, (uint32_t)h + 1, h == b);
                delta = 0;
                h++;
            }
        }
        delta++;
        nn++;
    }
    return (long)o;
}

/* ---- IDNA 2008 label rules (RFC 5891, 5892 appendix A, 5893) ---------------- */

static bool is_mark(uint32_t c)
{
    return (c >= 0x300 && c <= 0x36F) || (c >= 0x483 && c <= 0x489) ||
           (c >= 0x591 && c <= 0x5BD) || (c >= 0x610 && c <= 0x61A) ||
           (c >= 0x64B && c <= 0x65F) || c == 0x670 || (c >= 0x6D6 && c <= 0x6ED) ||
           (c >= 0x900 && c <= 0x903) || (c >= 0x93A && c <= 0x94F) ||
           (c >= 0x951 && c <= 0x957) || (c >= 0x962 && c <= 0x963) ||
           (c >= 0x981 && c <= 0x983) || (c >= 0x9BC && c <= 0x9D7) ||
           (c >= 0xA01 && c <= 0xA03) || (c >= 0xA3C && c <= 0xA51) ||
           (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
           (c >= 0x20D0 && c <= 0x20FF) || (c >= 0xFE20 && c <= 0xFE2F);
}

static bool is_virama(uint32_t c)
{
    static const uint32_t v[] = {0x94D, 0x9CD, 0xA4D, 0xACD, 0xB4D, 0xBCD, 0xC4D, 0xCCD,
                                 0xD3B, 0xD3C, 0xD4D, 0xDCA, 0xE3A, 0xEBA, 0xF84, 0x1039,
                                 0x103A, 0x1714, 0x1734, 0x17D2, 0x1A60, 0x1B44, 0x1BAA,
                                 0x1BAB, 0x1BF2, 0x1BF3, 0x2D7F, 0xA806, 0xA8C4, 0xA953,
                                 0xA9C0, 0xAAF6, 0xABED};
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(v); i++) {
        if (v[i] == c) {
            return true;
        }
    }
    return false;
}

static bool disallowed(uint32_t c)
{
    if (c < 0x80) {
        return !(alpha((char)c) || digit((char)c) || c == '-');
    }
    return c <= 0xBF ? c != 0xB7
                     : (c == 0x640 || c == 0x7FA || c == 0x302E || c == 0x302F ||
                        (c >= 0x3031 && c <= 0x3035) || c == 0x303B ||
                        (c >= 0x2000 && c <= 0x2BFF && c != 0x200C && c != 0x200D) ||
                        (c >= 0x3000 && c <= 0x3004) || (c >= 0x3008 && c <= 0x3020) ||
                        (c >= 0xD800 && c <= 0xDFFF) || (c >= 0xFE00 && c <= 0xFE0F) ||
                        (c >= 0xFF00 && c <= 0xFFEF) || c == 0xFFFD || c == 0x340 || c == 0x341);
}

enum { BIDI_L, BIDI_R, BIDI_AL, BIDI_AN, BIDI_EN, BIDI_NSM, BIDI_ON };

static int bidi(uint32_t c)
{
    if (digit((char)c) && c < 0x80) {
        return BIDI_EN;
    }
    if (c >= 0x6F0 && c <= 0x6F9) {
        return BIDI_EN;
    }
    if (c >= 0x660 && c <= 0x669) {
        return BIDI_AN;
    }
    if (is_mark(c)) {
        return BIDI_NSM;
    }
    if (c == '-' || c == 0x200C || c == 0x200D) {
        return BIDI_ON;
    }
    if ((c >= 0x590 && c <= 0x5FF) || (c >= 0x7C0 && c <= 0x85F) || (c >= 0xFB1D && c <= 0xFB4F) ||
        (c >= 0x10800 && c <= 0x10FFF)) {
        return BIDI_R;
    }
    if ((c >= 0x600 && c <= 0x6FF) || (c >= 0x700 && c <= 0x7BF) || (c >= 0x860 && c <= 0x8FF) ||
        (c >= 0xFB50 && c <= 0xFDFF) || (c >= 0xFE70 && c <= 0xFEFF)) {
        return BIDI_AL;
    }
    return BIDI_L;
}

static bool label_is_rtl(const uint32_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int b = bidi(c[i]);
        if (b == BIDI_R || b == BIDI_AL || b == BIDI_AN) {
            return true;
        }
    }
    return false;
}

static bool bidi_ok(const uint32_t *c, size_t n)
{
    int first = bidi(c[0]);
    if (first != BIDI_L && first != BIDI_R && first != BIDI_AL) {
        return false;
    }
    size_t e = n;
    while (e > 1 && bidi(c[e - 1]) == BIDI_NSM) {
        e--;
    }
    int last = bidi(c[e - 1]);
    if (first == BIDI_L) {
        for (size_t i = 0; i < n; i++) {
            int b = bidi(c[i]);
            if (b == BIDI_R || b == BIDI_AL || b == BIDI_AN) {
                return false;
            }
        }
        return last == BIDI_L || last == BIDI_EN;
    }
    bool en = false, an = false;
    for (size_t i = 0; i < n; i++) {
        int b = bidi(c[i]);
        if (b == BIDI_L) {
            return false;
        }
        en |= b == BIDI_EN;
        an |= b == BIDI_AN;
    }
    return !(en && an) && (last == BIDI_R || last == BIDI_AL || last == BIDI_EN || last == BIDI_AN);
}

static bool arabic_joining(uint32_t c)
{
    return (c >= 0x620 && c <= 0x64A) || (c >= 0x66E && c <= 0x6D3);
}

static bool ulabel_ok(const uint32_t *c, size_t n)
{
    if (n == 0 || c[0] == '-' || c[n - 1] == '-' || is_mark(c[0])) {
        return false;
    }
    if (n >= 4 && c[2] == '-' && c[3] == '-') {
        return false;
    }
    bool arabic_digits = false, ext_digits = false, kana_han = false, has_katakana_dot = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = c[i];
        if (disallowed(x)) {
            return false;
        }
        arabic_digits |= x >= 0x660 && x <= 0x669;
        ext_digits |= x >= 0x6F0 && x <= 0x6F9;
        if (x == 0x30FB) {
            has_katakana_dot = true;
        } else if ((x >= 0x3040 && x <= 0x30FF) || (x >= 0x3400 && x <= 0x9FFF) ||
                   (x >= 0x20000 && x <= 0x2FFFF)) {
            kana_han = true;
        }
        if (x == 0xB7 && (i == 0 || i + 1 >= n || c[i - 1] != 'l' || c[i + 1] != 'l')) {
            return false;
        }
        if (x == 0x375 && (i + 1 >= n || !((c[i + 1] >= 0x370 && c[i + 1] <= 0x3FF) ||
                                            (c[i + 1] >= 0x1F00 && c[i + 1] <= 0x1FFF)))) {
            return false;
        }
        if ((x == 0x5F3 || x == 0x5F4) && (i == 0 || !(c[i - 1] >= 0x590 && c[i - 1] <= 0x5FF))) {
            return false;
        }
        if (x == 0x200D && (i == 0 || !is_virama(c[i - 1]))) {
            return false;
        }
        if (x == 0x200C && (i == 0 || !is_virama(c[i - 1]))) {
            /* the joining-type regexp: (L|D) T* ZWNJ T* (R|D), approximated for Arabic */
            size_t a = i, b = i + 1;
            while (a > 0 && is_mark(c[a - 1])) {
                a--;
            }
            while (b < n && is_mark(c[b])) {
                b++;
            }
            if (a == 0 || b >= n || !arabic_joining(c[a - 1]) || !arabic_joining(c[b])) {
                return false;
            }
        }
    }
    if (arabic_digits && ext_digits) {
        return false;
    }
    return !has_katakana_dot || kana_han;
}

/* One label of a hostname: ASCII LDH or A-label; idn also allows U-labels. */
static bool label_ok(const char *s, size_t n, bool idn, bool *rtl, uint32_t *cps, size_t *ncp)
{
    *ncp = 0;
    if (n == 0) {
        return false;
    }
    bool ascii = true;
    for (size_t i = 0; i < n; i++) {
        ascii &= (unsigned char)s[i] < 0x80;
    }
    if (ascii) {
        if (n > 63) {
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if (!(alpha(s[i]) || digit(s[i]) || s[i] == '-')) {
                return false;
            }
        }
        if (s[0] == '-' || s[n - 1] == '-') {
            return false;
        }
        if (n >= 4 && s[2] == '-' && s[3] == '-') {
            if (!((s[0] == 'x' || s[0] == 'X') && (s[1] == 'n' || s[1] == 'N'))) {
                return false;
            }
            long k = puny_decode(s + 4, n - 4, cps, 64);
            if (k <= 0) {
                return false;
            }
            bool nonascii = false;
            for (long i = 0; i < k; i++) {
                nonascii |= cps[i] >= 0x80;
            }
            char re[64];
            long rl = puny_encode(cps, (size_t)k, re, sizeof(re));
            if (!nonascii || rl != (long)(n - 4) || strncasecmp(re, s + 4, n - 4) != 0) {
                return false;
            }
            if (!ulabel_ok(cps, (size_t)k)) {
                return false;
            }
            *ncp = (size_t)k;
            *rtl |= label_is_rtl(cps, (size_t)k);
            return true;
        }
        size_t k = decode_utf8(s, n, cps, 64);
        *ncp = k;
        return true;
    }
    if (!idn) {
        return false;
    }
    size_t k = decode_utf8(s, n, cps, 256);
    if (k > 63 || !ulabel_ok(cps, k)) {
        return false;
    }
    char enc[64];
    if (puny_encode(cps, k, enc, sizeof(enc) - 4) < 0) {
        return false; /* the A-label would be longer than 63 octets */
    }
    *ncp = k;
    *rtl |= label_is_rtl(cps, k);
    return true;
}

/* The length of a label separator at s[i] (".", U+3002, U+FF0E, U+FF61), or 0. */
static size_t sep_len(const char *s, size_t n, size_t i, bool idn)
{
    if (s[i] == '.') {
        return 1;
    }
    if (idn && i + 3 <= n) {
        const unsigned char *u = (const unsigned char *)s + i;
        if ((u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x82) ||
            (u[0] == 0xEF && u[1] == 0xBC && u[2] == 0x8E) ||
            (u[0] == 0xEF && u[1] == 0xBD && u[2] == 0xA1)) {
            return 3;
        }
    }
    return 0;
}

static bool hostname(const char *s, size_t n, bool idn)
{
    if (n == 0 || n > (idn ? 1024u : 253u)) {
        return false;
    }
    uint32_t cps[256];
    bool rtl = false;
    size_t st = 0, total = 0;
    /* first pass: labels; the Bidi rule needs to know whether any label is RTL */
    for (int pass = 0; pass < 2; pass++) {
        st = 0;
        total = 0;
        for (size_t i = 0; i <= n;) {
            size_t sl = i < n ? sep_len(s, n, i, idn) : 0;
            if (i < n && sl == 0) {
                i++;
                continue;
            }
            size_t k;
            if (!label_ok(s + st, i - st, idn, &rtl, cps, &k)) {
                return false;
            }
            if (pass == 1 && rtl && k > 0 && !bidi_ok(cps, k)) {
                return false;
            }
            total += (i - st) + 1;
            if (i == n) {
                break;
            }
            i += sl;
            st = i;
            if (st == n) {
                return false; /* trailing dot */
            }
        }
        if (!rtl) {
            break;
        }
    }
    return total - 1 <= 253;
}

/* ---- IP addresses ---------------------------------------------------------------- */

static bool ipv4(const char *s, size_t n)
{
    if (n < 7 || n > 15) {
        return false;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (int part = 0;; part++) {
        /* one to three digits, no leading zero, at most 255; p < end here */
        unsigned d0 = (unsigned)p[0] - '0';
        if (d0 > 9) {
            return false;
        }
        p++;
        unsigned d1 = p < end ? (unsigned)p[0] - '0' : 10;
        if (d1 <= 9) {
            unsigned d2 = p + 1 < end ? (unsigned)p[1] - '0' : 10;
            if (d0 == 0 || (d2 <= 9 && d0 * 100 + d1 * 10 + d2 > 255)) {
                return false;
            }
            p += d2 <= 9 ? 2 : 1;
        }
        if (part == 3) {
            return p == end;
        }
        /* a dot with something after it */
        if (end - p < 2 || *p != '.') {
            return false;
        }
        p++;
    }
}

static bool ipv6(const char *s, size_t n)
{
    if (n < 2) {
        return false;
    }
    int groups = 0;
    bool dbl = false;
    size_t i = 0;
    if (s[0] == ':') {
        if (s[1] != ':') {
            return false;
        }
        dbl = true;
        i = 2;
        if (i == n) {
            return true;
        }
    }
    while (i < n) {
        size_t st = i, lim = n - i < 5 ? n : i + 5;
        while (i < lim && hex(s[i])) {
            i++;
        }
        if (i < n && s[i] == '.') {
            /* an embedded IPv4 address ends it */
            if (!ipv4(s + st, n - st)) {
                return false;
            }
            groups += 2;
            i = n;
            break;
        }
        size_t l = i - st;
        if (l == 0 || l > 4) {
            return false;
        }
        groups++;
        if (i == n) {
            break;
        }
        if (s[i] != ':') {
            return false;
        }
        i++;
        if (i < n && s[i] == ':') {
            if (dbl) {
                return false;
            }
            dbl = true;
            i++;
            if (i == n) {
                break;
            }
        } else if (i == n) {
            return false;
        }
    }
    return dbl ? groups < 8 : groups == 8;
}

/* ---- URIs (RFC 3986 / 3987) ------------------------------------------------------- */

static bool unreserved(char c)
{
    return alpha(c) || digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool sub_delim(char c)
{
    return c && strchr("!$&'()*+,;=", c);
}

/* Characters allowed in a component: extra lists what else (":@" ...). */
static bool chars_ok(const char *s, size_t n, const char *extra, bool iri)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n + 0 || !hex(s[i + 1]) || !hex(s[i + 2])) {
                return false;
            }
            i += 2;
        } else if ((unsigned char)c >= 0x80) {
            if (!iri) {
                return false;
            }
        } else if (!unreserved(c) && !sub_delim(c) && !strchr(extra, c)) {
            return false;
        }
    }
    return true;
}

static bool authority(const char *s, size_t n, bool iri)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@') {
            at = s + i;
        }
    }
    if (at) {
        if (!chars_ok(s, (size_t)(at - s), ":", iri)) {
            return false;
        }
        n -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    size_t hl = n;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end) {
            return false;
        }
        size_t il = (size_t)(end - s - 1);
        if (il > 0 && (s[1] == 'v' || s[1] == 'V')) {
            /* IPvFuture */
        } else if (!ipv6(s + 1, il)) {
            return false;
        }
        hl = (size_t)(end - s) + 1;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ':') {
                hl = i;
                break;
            }
        }
        if (!chars_ok(s, hl, "", iri)) {
            return false;
        }
    }
    if (hl < n) {
        if (s[hl] != ':') {
            return false;
        }
        for (size_t i = hl + 1; i < n; i++) {
            if (!digit(s[i])) {
                return false;
            }
        }
    }
    return true;
}

static bool uri_ref(const char *s, size_t n, bool need_scheme, bool iri)
{
    size_t i = 0;
    bool scheme = false;
    if (n > 0 && alpha(s[0])) {
        size_t j = 1;
        while (j < n && (alpha(s[j]) || digit(s[j]) || s[j] == '+' || s[j] == '-' || s[j] == '.')) {
            j++;
        }
        if (j < n && s[j] == ':') {
            scheme = true;
            i = j + 1;
        }
    }
    if (need_scheme && !scheme) {
        return false;
    }
    size_t end = n;
    const char *hash = memchr(s + i, '#', n - i);
    if (hash) {
        end = (size_t)(hash - s);
        if (!chars_ok(hash + 1, n - end - 1, ":@/?", iri)) {
            return false;
        }
    }
    const char *q = memchr(s + i, '?', end - i);
    size_t pend = q ? (size_t)(q - s) : end;
    if (q && !chars_ok(q + 1, end - pend - 1, ":@/?", iri)) {
        return false;
    }
    if (pend - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        size_t a = i + 2, b = a;
        while (b < pend && s[b] != '/') {
            b++;
        }
        if (!authority(s + a, b - a, iri)) {
            return false;
        }
        i = b;
    }
    if (!scheme) {
        /* path-noscheme: no ':' in the first segment */
        for (size_t j = i; j < pend && s[j] != '/'; j++) {
            if (s[j] == ':') {
                return false;
            }
        }
    }
    return chars_ok(s + i, pend - i, ":@/", iri);
}

/* RFC 6570: literals and {operator varspec,...} expressions (level 4). */
static bool varspec_list(const char *s, size_t n)
{
    size_t i = 0;
    if (n > 0 && strchr("+#./;?&", s[0])) {
        i++;
    }
    for (;;) {
        size_t st = i;
        bool dot_ok = false;
        while (i < n) {
            if (alpha(s[i]) || digit(s[i]) || s[i] == '_') {
                dot_ok = true;
                i++;
            } else if (s[i] == '%' && i + 2 < n && hex(s[i + 1]) && hex(s[i + 2])) {
                dot_ok = true;
                i += 3;
            } else if (s[i] == '.' && dot_ok && i + 1 < n && s[i + 1] != '.' && s[i + 1] != ',' &&
                       s[i + 1] != ':' && s[i + 1] != '*') {
                dot_ok = false;
                i++;
            } else {
                break;
            }
        }
        if (i == st) {
            return false;
        }
        if (i < n && s[i] == ':') {
            size_t d = ++i;
            while (i < n && digit(s[i])) {
                i++;
            }
            if (i == d || i - d > 4 || s[d] == '0') {
                return false;
            }
        } else if (i < n && s[i] == '*') {
            i++;
        }
        if (i == n) {
            return true;
        }
        if (s[i] != ',') {
            return false;
        }
        i++;
    }
}

static bool uri_template(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '{') {
            const char *end = memchr(s + i + 1, '}', n - i - 1);
            if (!end || !varspec_list(s + i + 1, (size_t)(end - s - i - 1))) {
                return false;
            }
            i = (size_t)(end - s);
        } else if (c == '%') {
            if (i + 2 >= n || !hex(s[i + 1]) || !hex(s[i + 2])) {
                return false;
            }
            i += 2;
        } else if (c <= 0x20 || c == 0x7F || strchr("\"<>\\^`|}", (char)c)) {
            return false;
        }
    }
    return true;
}

/* ---- the rest ------------------------------------------------------------------- */

/* Non-zero when some byte of w is not a hex digit: 0-9, a-f, A-F. */
static uint64_t not_hex8(uint64_t w)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full, high = 0x8080808080808080ull;
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t d = (w ^ (0x30 * ones)) & low7;             /* '0'..'9' -> 0..9 */
    uint64_t not_digit = (d + (0x7f - 9) * ones) & high;  /* d > 9 */
    uint64_t t = (w | (0x20 * ones)) & low7;             /* letters in lower case */
    uint64_t ge_a = (t + (0x80 - 'a') * ones) & high;     /* t >= 'a' */
    uint64_t gt_f = (t + (0x7f - 'f') * ones) & high;     /* t > 'f' */
    uint64_t not_letter = (~ge_a | gt_f) & high;
    return (w & high) | (not_digit & not_letter);
}

static bool uuid(const char *s, size_t n)
{
    /* 8-4-4-4-12 hex digits: the dashes, then five 8-byte words with the dashes as '0' */
    if (n != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
        return false;
    }
    const uint64_t w1 = WORD8('-' ^ '0', 0, 0, 0, 0, '-' ^ '0', 0, 0);
    const uint64_t w2 = WORD8(0, 0, '-' ^ '0', 0, 0, 0, 0, '-' ^ '0');
    return !(not_hex8(load8(s)) | not_hex8(load8(s + 8) ^ w1) | not_hex8(load8(s + 16) ^ w2) |
             not_hex8(load8(s + 24)) | not_hex8(load8(s + 28)));
}

static bool json_pointer(const char *s, size_t n)
{
    if (n > 0 && s[0] != '/') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '~' && (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))) {
            return false;
        }
    }
    return true;
}

static bool rel_json_pointer(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && digit(s[i])) {
        i++;
    }
    if (i == 0 || (i > 1 && s[0] == '0')) {
        return false;
    }
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        /* index manipulation (draft 2020-12 relative pointers): +N / -N */
        size_t st = ++i;
        while (i < n && digit(s[i])) {
            i++;
        }
        if (i == st || (i - st > 1 && s[st] == '0')) {
            return false;
        }
    }
    if (i < n && s[i] == '#') {
        return i + 1 == n;
    }
    return json_pointer(s + i, n - i);
}

static bool email(const char *s, size_t n, bool idn)
{
    const char *at = NULL;
    size_t i = 0;
    if (n > 0 && s[0] == '"') {
        for (i = 1; i < n && s[i] != '"'; i++) {
            if (s[i] == '\\') {
                i++;
            }
        }
        if (i >= n) {
            return false;
        }
        i++;
        if (i >= n || s[i] != '@') {
            return false;
        }
        at = s + i;
    } else {
        for (i = 0; i < n && s[i] != '@'; i++) {
            char c = s[i];
            bool ok = alpha(c) || digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~.", c)) ||
                      (idn && (unsigned char)c >= 0x80);
            if (!ok) {
                return false;
            }
            if (c == '.' && (i == 0 || s[i - 1] == '.')) {
                return false;
            }
        }
        if (i == 0 || i >= n || s[i - 1] == '.') {
            return false;
        }
        at = s + i;
    }
    const char *d = at + 1;
    size_t dl = n - (size_t)(d - s);
    if (dl >= 2 && d[0] == '[' && d[dl - 1] == ']') {
        if (dl > 7 && strncmp(d + 1, "IPv6:", 5) == 0) {
            return ipv6(d + 6, dl - 7);
        }
        return ipv4(d + 1, dl - 2);
    }
    return hostname(d, dl, idn);
}

static bool regex(const char *s, size_t n)
{
    char buf[4096];
    pixel_arena a;
    (void)buf;
    if (n > 1000) {
        return true; /* too long to translate here; not worth rejecting */
    }
    /* The translator needs an arena; a local one, released at once. */
    pixel__arena_init(&a);
    char *out;
    const char *why;
    bool ok = pixel__regex_translate(&a, s, n, &out, &why) == 0;
    if (ok) {
        int ec;
        PCRE2_SIZE off;
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)out, PCRE2_ZERO_TERMINATED,
                                      PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &off, NULL);
        ok = c != NULL;
        pcre2_code_free(c);
    }
    pixel__arena_release(&a);
    return ok;
}

uint16_t pixel__format_trust(int id)
{
    switch (id) {
        case F_DATE_TIME:
            return PIXEL_VALUE_FMT_DATE_TIME;
        case F_UUID:
            return PIXEL_VALUE_FMT_UUID;
        case F_IPV4:
            return PIXEL_VALUE_FMT_IPV4;
        case F_IPV6:
            return PIXEL_VALUE_FMT_IPV6;
        default:
            return 0xFFFF;
    }
}

int pixel__format_check(int id, const char *s, size_t n)
{
    switch (id) {
        case F_DATE_TIME:
            return date_time(s, n);
        case F_DATE:
            return full_date(s, n);
        case F_TIME:
            return full_time(s, n);
        case F_DURATION:
            return duration(s, n);
        case F_EMAIL:
            return email(s, n, false);
        case F_IDN_EMAIL:
            return email(s, n, true);
        case F_HOSTNAME:
            return hostname(s, n, false);
        case F_IDN_HOSTNAME:
            return hostname(s, n, true);
        case F_IPV4:
            return ipv4(s, n);
        case F_IPV6:
            return ipv6(s, n);
        case F_URI:
            return uri_ref(s, n, true, false);
        case F_URI_REFERENCE:
            return uri_ref(s, n, false, false);
        case F_IRI:
            return uri_ref(s, n, true, true);
        case F_IRI_REFERENCE:
            return uri_ref(s, n, false, true);
        case F_URI_TEMPLATE:
            return uri_template(s, n);
        case F_UUID:
            return uuid(s, n);
        case F_JSON_POINTER:
            return json_pointer(s, n);
        case F_REL_JSON_POINTER:
            return rel_json_pointer(s, n);
        case F_REGEX:
            return regex(s, n);
        default:
            return 1;
    }
}
