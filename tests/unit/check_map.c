/* The map stage: sources, conversions, per-type rules, and what fails. */
#include <time.h>

#include "testutil.h"

static pixel_ctx *ctx;
static void setup(void)
{
    ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795651200000); /* 2026-11-26T00:00:00Z */
}
static void teardown(void)
{
    pixel_ctx_free(ctx);
}

/* Map one query string with one field spec; returns the output. */
static const char *map1(const char *spec, const char *query, pixel_outcome *oc)
{
    char yaml[1024], line[2048];
    snprintf(yaml, sizeof(yaml), PIPE_HEAD "fields:\n  f: %s\n", spec);
    snprintf(line, sizeof(line), LINE("%s"), query);
    pixel_pipeline *p = load_ok(yaml);
    *oc = run(p, ctx, line);
    static char out[2048];
    snprintf(out, sizeof(out), "%s", *oc == PIXEL_OUTCOME_EVENT ? output(ctx, p) : first_code(ctx));
    pixel_pipeline_free(p);
    return out;
}

typedef struct {
    const char *spec, *query, *expect; /* expect: event JSON, or a reason code */
} conv_case;

static const conv_case convs[] = {
    {"query.x", "x=abc", "{\"f\":\"abc\"}"},
    {"{from: query.x, type: integer}", "x=-42", "{\"f\":-42}"},
    {"{from: query.x, type: integer}", "x=9223372036854775807", "{\"f\":9223372036854775807}"},
    {"{from: query.x, type: integer}", "x=9223372036854775808", "bad_integer"},
    {"{from: query.x, type: integer}", "x=2081234567abc", "bad_integer"},
    {"{from: query.x, type: integer}", "x=4.5e5", "bad_integer"},
    {"{from: query.x, type: integer}", "x=", "bad_integer"},
    {"{from: query.x, type: integer}", "x=%7B%7Bpid%7D%7D", "bad_integer"},
    {"{from: query.x, type: number}", "x=2.75", "{\"f\":2.75}"},
    {"{from: query.x, type: number}", "x=0.1", "{\"f\":0.1}"},
    {"{from: query.x, type: number}", "x=NaN", "bad_number"},
    {"{from: query.x, type: number}", "x=1.", "bad_number"},
    /* the grammar, read in one pass: no leading zero, digits on both sides
     * of the point, nothing after them; the literal is kept as it came */
    {"{from: query.x, type: number}", "x=00", "bad_number"},
    {"{from: query.x, type: number}", "x=-", "bad_number"},
    {"{from: query.x, type: number}", "x=.5", "bad_number"},
    {"{from: query.x, type: number}", "x=1e3", "bad_number"},
    {"{from: query.x, type: number}", "x=1.5.2", "bad_number"},
    {"{from: query.x, type: number}", "x=-0.50", "{\"f\":-0.50}"},
    {"{from: query.x, type: number}", "x=0", "{\"f\":0}"},
    {"{from: query.x, type: boolean}", "x=true", "{\"f\":true}"},
    {"{from: query.x, type: boolean}", "x=0", "{\"f\":false}"},
    {"{from: query.x, type: boolean}", "x=maybe", "bad_boolean"},
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=1795651199954",
     "{\"f\":\"2026-11-25T23:59:59.954Z\"}"},
    {"{from: query.x, type: timestamp, format: epoch_s}", "x=1795651199",
     "{\"f\":\"2026-11-25T23:59:59Z\"}"},
    /* epoch digits are read eight at a time: a non-digit anywhere in a block */
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=1795651:99954", "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=/795651199954", "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=1795651%C2%A9954", "bad_timestamp"},
    /* a failed block is not skipped by the tail word (fuzz_line found it:
     * read past a table, and accepted) */
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=17956511ab123456789",
     "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=1795651199954a1234", "bad_timestamp"},
    /* past int64 milliseconds: refused, never wrapped */
    {"{from: query.x, type: timestamp, format: epoch_s}", "x=9223372036854775", "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: epoch_s}", "x=9999999999999999999", "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: epoch_ms}", "x=9223372036854775808",
     "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: epoch_s}", "x=1795651199.5",
     "{\"f\":\"2026-11-25T23:59:59.500Z\"}"},
    {"{from: query.x, type: timestamp, format: epoch_s}", "x=17956511.5",
     "{\"f\":\"1970-07-27T19:55:11.500Z\"}"},
    {"{from: query.x, type: timestamp}", "x=2026-11-26T01:00:00%2B01:00",
     "{\"f\":\"2026-11-26T00:00:00Z\"}"},
    {"{from: query.x, type: timestamp, format: rfc3339}", "x=2026-02-30T00:00:00Z",
     "bad_timestamp"},
    {"{from: query.x, type: timestamp, format: '%d.%m.%Y %H:%M'}", "x=26.11.2026+05:24",
     "{\"f\":\"2026-11-26T05:24:00Z\"}"},
    {"{from: log.time, type: timestamp, format: clf}", "x=1", "{\"f\":\"2026-11-26T05:24:46Z\"}"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJiZWRzIjozfQ",
     "{\"f\":{\"beds\":3}}"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJiZWRzIjozfQ!",
     "bad_base64url_json"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJrIjoiYX4_Yj4-YyJ9",
     "{\"f\":{\"k\":\"a~?b>>c\"}}"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJrIjoiYX4_Yj4%2BYyJ9",
     "bad_base64url_json"}, /* '+' and '/' are base64, not base64url */
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJrIjoiYX4%2FYj4-YyJ9",
     "bad_base64url_json"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJiZWRzIjozf",
     "bad_base64url_json"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=aGVsbG8", "bad_base64url_json"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=WzEsMl0", "bad_base64url_json"},
    {"{from: query.x, type: base64url_json, expect: object}", "x=eyJi+ZWRz", "bad_base64url_json"},
    {"{from: query.x, type: json}", "x=%5B1%2C%22a%22%5D", "{\"f\":[1,\"a\"]}"},
    {"{from: query.x, type: json}", "x=%5B1%2C", "bad_json"},
    {"{from: query.x, type: list}", "x=a,b,,c", "{\"f\":[\"a\",\"b\",\"\",\"c\"]}"},
    {"{from: query.x, type: list, items: integer, separator: '|'}", "x=1|2", "{\"f\":[1,2]}"},
    {"{from: query.x, type: list, items: integer}", "x=1,b", "bad_list"},
    {"{from: query.x, type: kv}", "x=srp_map%3Ab%2Cbadge%3Av1",
     "{\"f\":{\"srp_map\":\"b\",\"badge\":\"v1\"}}"},
    {"{from: query.x, type: kv}", "x=nocolon", "bad_kv_list"},
    /* keys that need JSON escapes, and plain ones of every size class */
    {"{from: query.x, type: kv}", "x=a%22b:1,c%5Cd:2,e%09:3,%7F:4,ab:5,abcde:6,abcdefghijklmnopq:7",
     "{\"f\":{\"a\\\"b\":\"1\",\"c\\\\d\":\"2\",\"e\\t\":\"3\",\"\\u007f\":\"4\","
     "\"ab\":\"5\",\"abcde\":\"6\",\"abcdefghijklmnopq\":\"7\"}}"},
    {"{from: query.x, type: kv}", "x=a:1,a:2", "bad_kv_list"},
    /* the pairs as the masks cut them: an empty last pair, an empty key, an
     * empty value, a key separator in a value, a separator of its own */
    {"{from: query.x, type: kv}", "x=a:1,", "bad_kv_list"},
    {"{from: query.x, type: kv}", "x=,a:1", "bad_kv_list"},
    {"{from: query.x, type: kv}", "x=:1", "bad_kv_list"},
    {"{from: query.x, type: kv}", "x=a:,b:c:d", "{\"f\":{\"a\":\"\",\"b\":\"c:d\"}}"},
    /* an escape in a value only (the key after it plain), a pair with no
     * key separator before the next one's, 64 bytes ending in a separator */
    {"{from: query.x, type: kv}", "x=a:%22,b:c%09d,e:f",
     "{\"f\":{\"a\":\"\\\"\",\"b\":\"c\\td\",\"e\":\"f\"}}"},
    {"{from: query.x, type: kv}", "x=a:1,b,c:2", "bad_kv_list"},
    {"{from: query.x, type: kv}", "x=abcdefghijklmnopqrstuvwxyz:012345678901234567890123456789012345,",
     "bad_kv_list"},
    {"{from: query.x, type: kv, separator: ';', kv_separator: '='}", "x=a%3D1%3Bb%3D2,3",
     "{\"f\":{\"a\":\"1\",\"b\":\"2,3\"}}"},
    /* 64 bytes (one pass over masks) and 65 (the general loop), the same;
     * a repeat and an escaped key past the first block of sixteen */
    {"{from: query.x, type: kv}", "x=abcdefghijklmnopqrstuvwxyz:0123456789012345678901234567890123456",
     "{\"f\":{\"abcdefghijklmnopqrstuvwxyz\":\"0123456789012345678901234567890123456\"}}"},
    {"{from: query.x, type: kv}", "x=abcdefghijklmnopqrstuvwxyz:01234567890123456789012345678901234567",
     "{\"f\":{\"abcdefghijklmnopqrstuvwxyz\":\"01234567890123456789012345678901234567\"}}"},
    {"{from: query.x, type: kv}", "x=0123456789abcdef:1,0123456789abcdef:2", "bad_kv_list"},
    {"{from: query.x, type: kv}", "x=k:1,0123456789abcdefgh%22:2",
     "{\"f\":{\"k\":\"1\",\"0123456789abcdefgh\\\"\":\"2\"}}"},
    {"{from: query.x, max_length: 3}", "x=%C3%A9%C3%A9%C3%A9",
     "{\"f\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}"},
    {"{from: query.x, max_length: 3}", "x=abcd", "too_long"},
    {"{from: query.x, map: {pv: page_view}}", "x=pv", "{\"f\":\"page_view\"}"},
    {"{from: query.x, map: {pv: page_view}}", "x=other", "{\"f\":\"other\"}"},
    {"{from: query.x, default: '7', type: integer}", "y=1", "{\"f\":7}"},
    {"{from: query.x, required: true}", "y=1", "missing_required"},
    {"{const: web, required: true}", "y=1", "{\"f\":\"web\"}"},
    {"{from: log.status, type: integer}", "y=1", "{\"f\":200}"},
    {"log.referer", "y=1", "{\"f\":\"https://www.example.com/\"}"},
    {"log.path", "y=1", "{\"f\":\"/px.gif\"}"},
};

START_TEST(conversions)
{
    const conv_case *c = &convs[_i];
    pixel_outcome oc;
    const char *got = map1(c->spec, c->query, &oc);
    ck_assert_msg(strcmp(got, c->expect) == 0, "case %d (%s on %s): got %s, expected %s", _i,
                  c->spec, c->query, got, c->expect);
}
END_TEST

#define TYPED                                                                                      \
    PIPE_HEAD "event_type: {field: type, values: [view, buy]}\n"                                   \
              "fields:\n"                                                                          \
              "  type: {from: query.ev, required: true, map: {v: view}}\n"                         \
              "  user: {from: query.uid, required: true}\n"                                        \
              "  item.id: {from: query.id, type: integer, types: [buy], required: true}\n"         \
              "  item.qty: {from: query.qty, type: integer, required: [buy]}\n"

/* Decimals are read without strtod when that is exact; the value must be
 * the very double strtod gives, for short and long, big and small inputs. */
START_TEST(decimals_read_as_strtod_reads_them)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields:\n  f: {from: query.x, type: number}\n");
    unsigned seed = 7;
    for (int round = 0; round < 20000; round++) {
        char num[64], line[256];
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        if (seed >> 31) {
            num[n++] = '-';
        }
        int ints = 1 + (int)(seed >> 8) % 12, fracs = (int)(seed >> 16) % 26;
        for (int k = 0; k < ints; k++) {
            seed = seed * 1103515245u + 12345u;
            num[n++] =
                (char)('0' + (k == 0 && ints > 1 ? 1 + (seed >> 16) % 9 : (seed >> 16) % 10));
        }
        if (fracs) {
            num[n++] = '.';
            for (int k = 0; k < fracs; k++) {
                seed = seed * 1103515245u + 12345u;
                num[n++] = (char)('0' + (seed >> 16) % 10);
            }
        }
        num[n] = '\0';
        snprintf(line, sizeof(line), LINE("x=%s"), num);
        ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
        double got = pixel_value_number(pixel_value_at(pixel_ctx_event(ctx), "f"));
        double want = strtod(num, NULL);
        ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "%s: %.17g, strtod %.17g", num, got,
                      want);
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(per_type_rules)
{
    pixel_pipeline *p = load_ok(TYPED);
    ck_assert_int_eq(run(p, ctx, LINE("ev=v&uid=u1&id=5")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"type\":\"view\",\"user\":\"u1\"}"); /* id only for buy */
    ck_assert_int_eq(run(p, ctx, LINE("ev=buy&uid=u1&id=5&qty=2")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p),
                     "{\"type\":\"buy\",\"user\":\"u1\",\"item\":{\"id\":5,\"qty\":2}}");
    ck_assert_int_eq(run(p, ctx, LINE("ev=view&uid=u1&qty=2")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"type\":\"view\",\"user\":\"u1\",\"item\":{\"qty\":2}}");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(every_mapping_problem_is_reported)
{
    pixel_pipeline *p = load_ok(TYPED);
    ck_assert_int_eq(run(p, ctx, LINE("ev=buy&id=x")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_uint_eq(pixel_ctx_reason_count(ctx), 3);
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->code, "missing_required");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->location, "query.uid");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 1)->code, "bad_integer");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 1)->location, "query.id");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 2)->code, "missing_required");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 2)->location, "query.qty");
    ck_assert_int_eq(pixel_ctx_reason(ctx, 0)->stage, PIXEL_STAGE_MAP);
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->family, "mapping_violation");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(event_type_must_be_known)
{
    pixel_pipeline *p = load_ok(TYPED);
    ck_assert_int_eq(run(p, ctx, LINE("uid=u1")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "missing_event_type");
    static const char *const unknown[] = {"ev=View", "ev=", "ev=page-view", "ev=heartbeat"};
    for (size_t i = 0; i < 4; i++) {
        char line[512];
        snprintf(line, sizeof(line), LINE("%s&uid=u1"), unknown[i]);
        ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_QUARANTINED);
        ck_assert_str_eq(first_code(ctx), "unknown_event_type");
    }
    pixel_pipeline_free(p);
}
END_TEST

/* Times are written through a memo of the last second, minute and day:
 * a run of times near, equal to, before and after each other, and far
 * apart, against gmtime. */
START_TEST(times_in_a_row_match_gmtime)
{
    pixel_pipeline *p = load_ok(
        PIPE_HEAD "fields:\n  a: {from: query.a, type: timestamp, format: epoch_s}\n"
                  "  b: {from: query.b, type: timestamp, format: epoch_ms, output: rfc3339_ms}\n");
    int64_t t = 1795651199000; /* a second before a day changes */
    unsigned seed = 99;
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245u + 12345u;
        static const int64_t steps[] = {0, 1, 999, 1000, -1, -1000, 59999, 60000, -60001, 86400000};
        int64_t step = i % 50 == 49 ? (int64_t)(seed >> 4) * 977
                                    : steps[(seed >> 16) % (sizeof(steps) / sizeof(steps[0]))];
        if (t + step > 0 && t + step < 253402300799000) { /* years 1970-9999 */
            t += step;
        }
        int64_t u = t + (int64_t)((seed >> 8) % 120000) - 60000;
        char line[256], want[160], a[40], b[40];
        snprintf(line, sizeof(line), LINE("a=%lld&b=%lld"), (long long)(t / 1000), (long long)u);
        ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
        time_t ts = (time_t)(t / 1000), us = (time_t)(u / 1000);
        struct tm tm;
        strftime(a, sizeof(a), "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts, &tm));
        strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", gmtime_r(&us, &tm));
        snprintf(want, sizeof(want), "{\"a\":\"%sZ\",\"b\":\"%s.%03dZ\"}", a, b, (int)(u % 1000));
        ck_assert_str_eq(output(ctx, p), want);
    }
    pixel_pipeline_free(p);
}
END_TEST

/* The first five digits of a 13-digit epoch_ms are kept from one line to
 * the next: the same head with a bad digit behind it, a bad head after a
 * good one, and a new head after a bad line are each read whole. */
START_TEST(epoch_ms_head_kept_across_lines)
{
    pixel_pipeline *p =
        load_ok(PIPE_HEAD "fields:\n  b: {from: query.b, type: timestamp, format: epoch_ms}\n");
    static const struct {
        const char *in, *want;
    } runs[] = {
        {"1795651199954", "{\"b\":\"2026-11-25T23:59:59.954Z\"}"},
        {"1795600000001", "{\"b\":\"2026-11-25T09:46:40.001Z\"}"},
        {"17956:1199954", NULL},
        {"179565119995:", NULL},
        {"1795a51199954", NULL},
        {"1800000000000", "{\"b\":\"2027-01-15T08:00:00.000Z\"}"},
        {"1795651199954", "{\"b\":\"2026-11-25T23:59:59.954Z\"}"},
        {"0000000000000", "{\"b\":\"1970-01-01T00:00:00.000Z\"}"},
        {"0000099999999", "{\"b\":\"1970-01-02T03:46:39.999Z\"}"},
    };
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        char line[256];
        snprintf(line, sizeof(line), LINE("b=%s"), runs[i].in);
        if (runs[i].want) {
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
            ck_assert_str_eq(output(ctx, p), runs[i].want);
        } else {
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_QUARANTINED);
            ck_assert_str_eq(first_code(ctx), "bad_timestamp");
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(syslog_time_takes_its_year_from_the_event_time)
{
    pixel_pipeline *p = load_ok("input: {framing: rfc3164, pixel_paths: [/px.gif]}\n"
                                "fields:\n  t: {from: log.time, type: timestamp}\n"
                                "  s: {from: syslog.timestamp, type: timestamp, format: syslog}\n");
    /* Logged on New Year's Eve, processed (clock) months later. */
    pixel_ctx_set_clock(ctx, 1800000000000);
    ck_assert_int_eq(
        run(p, ctx,
            "<190>Dec 31 23:59:59 web01 nginx: 192.0.2.1 - - [31/Dec/2025:23:59:58 +0000] "
            "\"GET /px.gif?a=1 HTTP/1.1\" 200 43 \"-\" \"x\""),
        PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p),
                     "{\"t\":\"2025-12-31T23:59:58Z\",\"s\":\"2025-12-31T23:59:59Z\"}");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(log_fields_must_be_utf8)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {ua: log.user_agent}\n");
    ck_assert_int_eq(run(p, ctx,
                         "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif HTTP/1.1\" 200 "
                         "43 \"-\" \"caf\xe9\""),
                     PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "invalid_utf8");
    pixel_pipeline_free(p);
}
END_TEST

/* The ASCII shortcut before the UTF-8 check reads blocks, words and bytes:
 * one non-ASCII byte anywhere in a user agent of any length is seen. */
START_TEST(log_fields_utf8_at_every_length_and_offset)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {ua: log.user_agent}\n");
    size_t n = (size_t)_i;
    for (size_t at = 0; at <= n; at++) {
        for (int valid = 0; valid < 2; valid++) {
            char ua[64], line[256];
            memset(ua, 'a', n);
            ua[n] = '\0';
            if (at < n) {
                if (valid && at + 1 < n) {
                    ua[at] = (char)0xC3, ua[at + 1] = (char)0xA9; /* é */
                } else {
                    ua[at] = (char)0xE9; /* Latin-1 é: not UTF-8 */
                }
            }
            snprintf(line, sizeof(line),
                     "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif HTTP/1.1\" 200 "
                     "43 \"-\" \"%s\"",
                     ua);
            int bad = at < n && !(valid && at + 1 < n);
            ck_assert_int_eq(run(p, ctx, line),
                             bad ? PIXEL_OUTCOME_QUARANTINED : PIXEL_OUTCOME_EVENT);
            if (bad) {
                ck_assert_str_eq(first_code(ctx), "invalid_utf8");
            }
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

/* base64url_json: JSON texts of every length (so every last-group size),
 * with and without '=' padding, decode to the same event as the text
 * itself; a bad digit at each offset is reported at that offset. */
/* Member names are written from frames made at load (up to 27 bytes: one
 * block of 32 with a string's opening quote; longer ones, and keys set from
 * outside, the usual way): every length around those bounds, nested,
 * replaced through the public setter, with string values of every path of
 * the serializer (empty, short, long, needing escapes). */
START_TEST(member_names_at_every_frame_length)
{
    static const size_t lens[] = {1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 27, 28, 29, 40};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char name[64], obj[64], into[64], yaml[1024], expect[512], tail[128];
        memset(name, 'a' + (int)i, lens[i]);
        name[lens[i]] = '\0';
        memset(obj, 'A' + (int)i, lens[i]);
        obj[lens[i]] = '\0';
        memset(into, 'q', lens[i]);
        into[lens[i]] = '\0';
        snprintf(yaml, sizeof(yaml),
                 PIPE_HEAD "fields:\n  %s: query.x\n  %s.%s: {from: query.y, type: integer}\n"
                           "  z: query.z\nenrich:\n  - pipeline: {into: %s}\n",
                 name, obj, name, into);
        pixel_pipeline *p = load_ok(yaml);
        ck_assert_int_eq(run(p, ctx, LINE("x=v&y=7&z=w")), PIXEL_OUTCOME_EVENT);
        const char *out = output(ctx, p);
        snprintf(expect, sizeof(expect), "{\"%s\":\"v\",\"%s\":{\"%s\":7},\"z\":\"w\",", name, obj,
                 name);
        ck_assert_msg(strncmp(out, expect, strlen(expect)) == 0, "%zu: %s", lens[i], out);
        snprintf(tail, sizeof(tail), ",\"%s\":{\"name\":\"t\",\"version\":\"1\"}}", into);
        ck_assert_msg(strlen(out) > strlen(tail) &&
                          strcmp(out + strlen(out) - strlen(tail), tail) == 0,
                      "%zu: %s", lens[i], out);
        /* string values of every length class after the frame */
        static const char *const vals[][2] = {
            {"", ""},
            {"ab", "ab"},
            {"abcde", "abcde"},
            {"abcdefghijkl", "abcdefghijkl"},
            {"abcdefghijklmnopqrstu", "abcdefghijklmnopqrstu"},
            {"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
             "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"},
            {"a%22b", "a\\\"b"},
            {"abcdefghijklmnopqrs%5Ctuvwxyz", "abcdefghijklmnopqrs\\\\tuvwxyz"},
        };
        for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
            char vline[256];
            snprintf(vline, sizeof(vline), LINE("x=%s&y=7&z=w"), vals[v][0]);
            ck_assert_int_eq(run(p, ctx, vline), PIXEL_OUTCOME_EVENT);
            out = output(ctx, p);
            snprintf(expect, sizeof(expect), "{\"%s\":\"%s\",\"%s\":{\"%s\":7},\"z\":\"w\",", name,
                     vals[v][1], obj, name);
            ck_assert_msg(strncmp(out, expect, strlen(expect)) == 0, "%zu/%zu: %s", lens[i], v, out);
        }
        /* a member replaced from outside keeps its name */
        pixel_value *ev = pixel_ctx_event(ctx);
        ck_assert_int_eq(pixel_object_set(ctx, ev, name, pixel_value_new_string(ctx, "r", 1)), 0);
        snprintf(expect, sizeof(expect), "{\"%s\":\"r\",\"%s\":{\"%s\":7},\"z\":\"w\",", name, obj,
                 name);
        out = output(ctx, p);
        ck_assert_msg(strncmp(out, expect, strlen(expect)) == 0, "%zu: %s", lens[i], out);
        pixel_pipeline_free(p);
    }
}
END_TEST

START_TEST(base64url_every_length_and_bad_offset)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields:\n  f: {from: query.x, type: base64url_json}\n");
    pixel_pipeline *plain = load_ok(PIPE_HEAD "fields:\n  f: {from: query.x, type: json}\n");
    for (size_t len = 8; len < 40; len++) {
        /* {"k":"aaa..."} of len bytes */
        char json[64], enc[96], line[512], want[512];
        size_t body = len - 8;
        memcpy(json, "{\"k\":\"", 6);
        for (size_t i = 0; i < body; i++) {
            json[6 + i] = (char)('a' + (i * 7 + len) % 26);
        }
        memcpy(json + 6 + body, "\"}", 3);
        /* reference encoder: 6 bits at a time, the last digit's spare bits 0 */
        size_t k = 0;
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < len; i++) {
            acc = acc << 8 | (unsigned char)json[i];
            bits += 8;
            while (bits >= 6) {
                bits -= 6;
                enc[k++] = digits[(acc >> bits) & 63];
            }
        }
        if (bits) {
            enc[k++] = digits[(acc << (6 - bits)) & 63];
        }
        size_t enclen = k;
        /* the expected event: the JSON text mapped with type json */
        char q[160];
        snprintf(q, sizeof(q), "x=%%7B%%22k%%22%%3A%%22%.*s%%22%%7D", (int)body, json + 6);
        snprintf(line, sizeof(line), LINE("%s"), q);
        ck_assert_int_eq(run(plain, ctx, line), PIXEL_OUTCOME_EVENT);
        snprintf(want, sizeof(want), "%s", output(ctx, plain));
        for (int pad = 0; pad < 2; pad++) {
            enc[enclen] = '\0';
            if (pad) {
                while (k % 4) {
                    enc[k++] = '=';
                }
                enc[k] = '\0';
            }
            snprintf(line, sizeof(line), LINE("x=%s"), enc);
            ck_assert_msg(run(p, ctx, line) == PIXEL_OUTCOME_EVENT, "%s", enc);
            ck_assert_str_eq(output(ctx, p), want);
        }
        for (size_t at = 0; at < enclen; at++) {
            char bad[96];
            memcpy(bad, enc, enclen);
            bad[enclen] = '\0';
            bad[at] = '.';
            snprintf(line, sizeof(line), LINE("x=%s"), bad);
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_QUARANTINED);
            ck_assert_str_eq(first_code(ctx), "bad_base64url_json");
            char where[64];
            snprintf(where, sizeof(where), "'.' at offset %zu", at);
            ck_assert_msg(strstr(pixel_ctx_reason(ctx, 0)->message, where) != NULL, "%s: %s", bad,
                          pixel_ctx_reason(ctx, 0)->message);
        }
    }
    pixel_pipeline_free(plain);
    pixel_pipeline_free(p);
}
END_TEST

/* base64url_json over texts long enough for the blocks of sixteen digits
 * decoded at once: bodies of printable bytes (every digit, '-' and '_'
 * among them, turns up), compared with the same text mapped with type json;
 * a byte that is no base64url digit ('.', '+', '/', '=') inside a block is
 * reported at its offset. */
START_TEST(base64url_long_texts)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    static const char notdigit[] = ".+/=";
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields:\n  f: {from: query.x, type: base64url_json}\n");
    pixel_pipeline *plain = load_ok(PIPE_HEAD "fields:\n  f: {from: query.x, type: json}\n");
    unsigned long long seen = 0; /* the digits met */
    for (size_t len = 8; len < 140; len++) {
        char json[160], enc[200], line[1024], want[1024], q[600];
        size_t body = len - 8;
        memcpy(json, "{\"k\":\"", 6);
        for (size_t i = 0; i < body; i++) {
            char c = (char)(0x20 + (i * 37 + len * 11) % 95); /* ' ' to '~' */
            json[6 + i] = c == '"' || c == '\\' ? '?' : c;
        }
        memcpy(json + 6 + body, "\"}", 3);
        size_t k = 0;
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < len; i++) {
            acc = acc << 8 | (unsigned char)json[i];
            bits += 8;
            while (bits >= 6) {
                bits -= 6;
                seen |= 1ull << ((acc >> bits) & 63);
                enc[k++] = digits[(acc >> bits) & 63];
            }
        }
        if (bits) {
            enc[k++] = digits[(acc << (6 - bits)) & 63];
        }
        enc[k] = '\0';
        size_t o = 0;
        o += (size_t)snprintf(q, sizeof(q), "x=");
        for (size_t i = 0; i < len; i++) {
            o += (size_t)snprintf(q + o, sizeof(q) - o, "%%%02X", (unsigned char)json[i]);
        }
        snprintf(line, sizeof(line), LINE("%s"), q);
        ck_assert_int_eq(run(plain, ctx, line), PIXEL_OUTCOME_EVENT);
        snprintf(want, sizeof(want), "%s", output(ctx, plain));
        snprintf(line, sizeof(line), LINE("x=%s"), enc);
        ck_assert_msg(run(p, ctx, line) == PIXEL_OUTCOME_EVENT, "%s", enc);
        ck_assert_str_eq(output(ctx, p), want);
        for (size_t at = len % 5; at < k; at += 7) {
            char bad[200];
            const char c = notdigit[at % 4];
            memcpy(bad, enc, k + 1);
            bad[at] = c;
            if (c == '=' && at + 1 == k) {
                continue; /* a trailing '=' is padding */
            }
            /* (in a query '+' stands for a space: no digit either) */
            snprintf(line, sizeof(line), LINE("x=%s"), bad);
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_QUARANTINED);
            ck_assert_str_eq(first_code(ctx), "bad_base64url_json");
            char where[64];
            snprintf(where, sizeof(where), "at offset %zu", at);
            ck_assert_msg(strstr(pixel_ctx_reason(ctx, 0)->message, where) != NULL, "%s: %s", bad,
                          pixel_ctx_reason(ctx, 0)->message);
        }
    }
    ck_assert_msg(seen == ~0ull, "digits not met: %llx", ~seen);
    pixel_pipeline_free(plain);
    pixel_pipeline_free(p);
}
END_TEST

/* The JSON text of byte c inside a string, as the serializer writes it. */
static size_t json_byte(char *o, unsigned char c)
{
    static const char short_esc[] = {['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r',
                                      ['\t'] = 't', ['\b'] = 'b', ['\f'] = 'f'};
    if (c < sizeof(short_esc) && short_esc[c]) {
        o[0] = '\\', o[1] = short_esc[c];
        return 2;
    }
    if (c < 0x20 || c == 0x7F) {
        return (size_t)sprintf(o, "\\u%04x", c);
    }
    o[0] = (char)c;
    return 1;
}

/* Text of n bytes, 'a' but for byte c at `at`. */
static void text_with(char *t, size_t n, size_t at, unsigned char c)
{
    memset(t, 'a', n);
    t[at] = (char)c;
    t[n] = '\0';
}

/* Bytes a JSON string escapes (and one it does not), in every kind of field
 * at every length up to two blocks of 32 and at the edges and middle of the
 * text: a query value (as it is, and %-encoded), the user agent, the referer
 * and the syslog host.  Each comes out escaped, whatever the stages know
 * (or do not) of the text. */
START_TEST(escaped_bytes_in_every_field)
{
    static const unsigned char bytes[] = {'"', '\\', 0x01, '\t', 0x1F, 0x7F, '!'};
    pixel_pipeline *p = load_ok("pipeline: {name: t, version: '1'}\n"
                                "input: {framing: rfc3164, format: combined, pixel_paths: [/px.gif]}\n"
                                "fields: {q: query.q, e: query.e, ua: log.user_agent, "
                                "ref: log.referer, h: syslog.hostname}\n");
    for (size_t n = 1; n <= 70; n++) {
        const size_t ats[] = {0, n / 2, n - 1};
        for (size_t ai = 0; ai < 3; ai++) {
            for (size_t bi = 0; bi < sizeof(bytes); bi++) {
                const size_t at = ats[ai];
                const unsigned char c = bytes[bi];
                char t[80], enc[240], line[1024], want[3072];
                text_with(t, n, at, c);
                /* the query's copy: %-encoded, the byte (and the rest) */
                size_t k = 0;
                for (size_t i = 0; i < n; i++) {
                    k += (size_t)sprintf(enc + k, i == at ? "%%%02X" : "%c", (unsigned char)t[i]);
                }
                /* the host: a syslog hostname ends at a space, has no tab */
                const unsigned char hc = c == '\t' ? 'b' : c;
                char h[80];
                text_with(h, n, at, hc);
                snprintf(line, sizeof(line),
                         "<190>Nov 26 05:24:46 %s nginx: 192.0.2.1 - - [26/Nov/2026:05:24:46 "
                         "+0000] \"GET /px.gif?q=%s&e=%s&z=1 HTTP/1.1\" 200 43 \"%s\" \"%s\"",
                         h, t, enc, t, t);
                pixel_outcome oc = run(p, ctx, line);
                ck_assert_msg(oc == PIXEL_OUTCOME_EVENT, "n %zu at %zu byte 0x%02x: %s", n, at, c,
                              first_code(ctx));
                char jt[512], jh[512];
                size_t m = 0, mh = 0;
                for (size_t i = 0; i < n; i++) {
                    m += json_byte(jt + m, (unsigned char)t[i]);
                    mh += json_byte(jh + mh, (unsigned char)h[i]);
                }
                jt[m] = jh[mh] = '\0';
                snprintf(want, sizeof(want),
                         "{\"q\":\"%s\",\"e\":\"%s\",\"ua\":\"%s\",\"ref\":\"%s\",\"h\":\"%s\"}",
                         jt, jt, jt, jt, jh);
                ck_assert_str_eq(output(ctx, p), want);
            }
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

/* Bytes that are not UTF-8 (a lone continuation byte, a Latin-1 letter, a
 * cut sequence) in each kind of field quarantine the line as invalid_utf8,
 * at every length and place; the same bytes made valid (é) come out as they
 * are. */
START_TEST(invalid_utf8_in_every_field)
{
    static const char *const fields[] = {"query.q", "log.user_agent", "log.referer",
                                         "syslog.hostname"};
    static const unsigned char bad[] = {0x80, 0xE9, 0xC3};
    for (size_t fi = 0; fi < sizeof(fields) / sizeof(fields[0]); fi++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "pipeline: {name: t, version: '1'}\n"
                 "input: {framing: rfc3164, format: combined, pixel_paths: [/px.gif]}\n"
                 "fields: {f: %s}\n",
                 fields[fi]);
        pixel_pipeline *p = load_ok(yaml);
        for (size_t n = 2; n <= 66; n += 4) {
            for (size_t at = 0; at + 1 < n; at += n / 2) {
                for (size_t bi = 0; bi <= sizeof(bad); bi++) {
                    char t[80], line[1024];
                    text_with(t, n, at, 'a');
                    if (bi < sizeof(bad)) {
                        t[at] = (char)bad[bi];
                        if (bad[bi] == 0xC3 && at + 1 < n) {
                            t[at + 1] = '!'; /* a lead byte without its continuation */
                        }
                    } else {
                        t[at] = (char)0xC3, t[at + 1] = (char)0xA9;
                    }
                    char h[80] = "web01";
                    const char *q = "x", *ua = "Mozilla", *ref = "-";
                    if (fi == 0) {
                        q = t;
                    } else if (fi == 1) {
                        ua = t;
                    } else if (fi == 2) {
                        ref = t;
                    } else {
                        snprintf(h, sizeof(h), "%s", t);
                    }
                    snprintf(line, sizeof(line),
                             "<190>Nov 26 05:24:46 %s nginx: 192.0.2.1 - - [26/Nov/2026:05:24:46 "
                             "+0000] \"GET /px.gif?q=%s HTTP/1.1\" 200 43 \"%s\" \"%s\"",
                             h, q, ref, ua);
                    pixel_outcome oc = run(p, ctx, line);
                    if (bi < sizeof(bad)) {
                        ck_assert_msg(oc == PIXEL_OUTCOME_QUARANTINED, "%s n %zu at %zu",
                                      fields[fi], n, at);
                        ck_assert_str_eq(first_code(ctx), "invalid_utf8");
                    } else {
                        ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
                        char want[128];
                        snprintf(want, sizeof(want), "{\"f\":\"%s\"}", t);
                        ck_assert_str_eq(output(ctx, p), want);
                    }
                }
            }
        }
        pixel_pipeline_free(p);
    }
}
END_TEST

static Suite *map_suite(void)
{
    Suite *s = suite_create("map");
    TCase *tc = tcase_create("conversions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, conversions, 0, (int)(sizeof(convs) / sizeof(convs[0])));
    suite_add_tcase(s, tc);
    tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, per_type_rules);
    tcase_add_test(tc, decimals_read_as_strtod_reads_them);
    tcase_add_test(tc, every_mapping_problem_is_reported);
    tcase_add_test(tc, event_type_must_be_known);
    tcase_add_test(tc, times_in_a_row_match_gmtime);
    tcase_add_test(tc, epoch_ms_head_kept_across_lines);
    tcase_add_test(tc, syslog_time_takes_its_year_from_the_event_time);
    tcase_add_test(tc, log_fields_must_be_utf8);
    tcase_add_test(tc, base64url_every_length_and_bad_offset);
    tcase_add_test(tc, base64url_long_texts);
    tcase_add_test(tc, member_names_at_every_frame_length);
    tcase_add_loop_test(tc, log_fields_utf8_at_every_length_and_offset, 0, 40);
    tcase_add_test(tc, escaped_bytes_in_every_field);
    tcase_add_test(tc, invalid_utf8_in_every_field);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(map_suite());
}
