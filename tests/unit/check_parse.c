/* The parse stage: framing, log formats, request line and query decoding. */
#include "testutil.h"

static pixel_ctx *ctx;
static void setup(void)
{
    ctx = pixel_ctx_new();
}
static void teardown(void)
{
    pixel_ctx_free(ctx);
}

static const char *get(const char *name)
{
    static char buf[512];
    size_t n;
    const char *v = pixel_record_get(pixel_ctx_record(ctx), name, &n);
    if (!v) {
        return "(absent)";
    }
    snprintf(buf, sizeof(buf), "%.*s", (int)n, v);
    return buf;
}

static pixel_outcome parse(const pixel_pipeline *p, const char *line)
{
    pixel_outcome oc;
    /* at the end of mapped memory: a read past the line faults */
    const size_t n = strlen(line);
    ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(line, n), n, &oc, NULL), 0);
    return oc;
}

#define FIELDS "fields: {a: query.a}\n"

START_TEST(rfc3164_header_is_split)
{
    pixel_pipeline *p = load_ok("input: {framing: rfc3164, pixel_paths: [/px.gif]}\n" FIELDS);
    ck_assert_int_eq(parse(p, "<190>Nov  6 05:24:46 web01 nginx: " LINE("a=1")),
                     PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.pri"), "190");
    ck_assert_str_eq(get("syslog.facility"), "23");
    ck_assert_str_eq(get("syslog.severity"), "6");
    ck_assert_str_eq(get("syslog.timestamp"), "Nov  6 05:24:46");
    ck_assert_str_eq(get("syslog.hostname"), "web01");
    ck_assert_str_eq(get("syslog.tag"), "nginx");
    ck_assert_str_eq(get("log.client"), "203.0.113.9");
    ck_assert_str_eq(get("query.a"), "1");
    /* tag[pid]: and an RFC 3339 timestamp (rsyslog templates) */
    ck_assert_int_eq(parse(p, "2026-11-26T05:24:46.123+00:00 web02 nginx[42]: " LINE("a=2")),
                     PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.procid"), "42");
    ck_assert_str_eq(get("syslog.hostname"), "web02");
    ck_assert_int_eq(parse(p, "<190>yesterday web01 nginx: " LINE("a=1")),
                     PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "bad_syslog_header");
    ck_assert_int_eq(parse(p, "<999>Nov  6 05:24:46 web01 nginx: x"), PIXEL_OUTCOME_QUARANTINED);
    /* the timestamp's separators (and the space after it) one at a time
     * replaced, and digits where a day's may be a space */
    static const char good[] = "<190>Nov 16 05:24:46 web01 nginx: ";
    for (size_t at = 5; at < 5 + 16; at++) {
        char line[400];
        snprintf(line, sizeof(line), "%s%s", good, LINE("a=1"));
        const char was = line[at];
        line[at] = was == ' ' || was == ':' ? '-' : was == '1' ? ' ' : 'x';
        /* checked: the separators, the day's last digit and its first (a
         * digit or a space); the other bytes are taken as they are */
        const int bad = at == 8 || at == 10 || at == 11 || at == 14 || at == 17 || at == 20;
        ck_assert_msg(parse(p, line) == (bad ? PIXEL_OUTCOME_QUARANTINED : PIXEL_OUTCOME_PENDING),
                      "byte %zu", at);
        if (bad) {
            ck_assert_str_eq(first_code(ctx), "bad_syslog_header");
        }
    }
    /* cut anywhere in the header: never pending, never a read past the end */
    for (size_t cut = 0; cut < strlen(good); cut++) {
        pixel_outcome oc;
        ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(good, cut), cut, &oc, NULL), 0);
        ck_assert_int_ne(oc, PIXEL_OUTCOME_PENDING);
    }
    pixel_pipeline_free(p);
}
END_TEST

/* An RFC 3164 TAG is at most 49 characters before its ':' (or '['). */
START_TEST(every_pri)
{
    pixel_pipeline *p = load_ok("input: {framing: rfc3164, pixel_paths: [/px.gif]}\n" FIELDS);
    for (unsigned v = 0; v <= 200; v++) {
        for (int zeros = 0; zeros < 2; zeros++) {
            char line[300], want[16];
            snprintf(line, sizeof(line), "<%s%u>Nov  6 05:24:46 web01 nginx: " LINE("a=1"),
                     zeros && v < 100 ? "0" : "", v);
            pixel_outcome oc = parse(p, line);
            if (v > 191) {
                ck_assert_int_eq(oc, PIXEL_OUTCOME_QUARANTINED);
                continue;
            }
            ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
            snprintf(want, sizeof(want), "%u", v / 8);
            ck_assert_str_eq(get("syslog.facility"), want);
            snprintf(want, sizeof(want), "%u", v % 8);
            ck_assert_str_eq(get("syslog.severity"), want);
        }
    }
    ck_assert_int_eq(parse(p, "<00190>Nov  6 05:24:46 web01 nginx: " LINE("a=1")),
                     PIXEL_OUTCOME_QUARANTINED);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(rfc3164_tag_length_limit)
{
    pixel_pipeline *p = load_ok("input: {framing: rfc3164, pixel_paths: [/px.gif]}\n" FIELDS);
    for (int len = 1; len <= 52; len++) {
        char tag[64], line[512];
        memset(tag, 't', (size_t)len);
        tag[len] = '\0';
        snprintf(line, sizeof(line), "<190>Nov  6 05:24:46 web01 %s: " LINE("a=1"), tag);
        ck_assert_int_eq(parse(p, line),
                         len <= 49 ? PIXEL_OUTCOME_PENDING : PIXEL_OUTCOME_QUARANTINED);
        if (len <= 49) {
            ck_assert_str_eq(get("syslog.tag"), tag);
        }
        snprintf(line, sizeof(line), "<190>Nov  6 05:24:46 web01 %s[7]: " LINE("a=1"), tag);
        ck_assert_int_eq(parse(p, line),
                         len <= 49 ? PIXEL_OUTCOME_PENDING : PIXEL_OUTCOME_QUARANTINED);
    }
    /* the line ends inside the tag */
    ck_assert_int_eq(parse(p, "<190>Nov  6 05:24:46 web01 nginx"), PIXEL_OUTCOME_QUARANTINED);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(rfc5424_header_is_split)
{
    pixel_pipeline *p = load_ok("input: {framing: rfc5424, pixel_paths: [/px.gif]}\n" FIELDS);
    ck_assert_int_eq(parse(p, "<165>1 2026-11-26T05:24:46.003Z web03 nginx 77 ID47 "
                              "[ex@32473 iut=\"3\" note=\"a]b\"] " LINE("a=1")),
                     PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.timestamp"), "2026-11-26T05:24:46.003Z");
    ck_assert_str_eq(get("syslog.hostname"), "web03");
    ck_assert_str_eq(get("syslog.tag"), "nginx");
    ck_assert_str_eq(get("syslog.procid"), "77");
    ck_assert_str_eq(get("syslog.msgid"), "ID47");
    ck_assert_str_eq(get("log.client"), "203.0.113.9");
    ck_assert_int_eq(parse(p, "<165>1 - - - - - - " LINE("a=1")), PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.hostname"), "(absent)");
    ck_assert_int_eq(parse(p, "<165>2 x"), PIXEL_OUTCOME_QUARANTINED);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(auto_framing_takes_either)
{
    pixel_pipeline *p = load_ok("input: {framing: auto, pixel_paths: [/px.gif]}\n" FIELDS);
    ck_assert_int_eq(parse(p, "<165>1 2026-11-26T05:24:46Z h a - - - " LINE("a=1")),
                     PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.hostname"), "h");
    ck_assert_int_eq(parse(p, "<13>Nov 26 05:24:46 h2 nginx: " LINE("a=1")), PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.hostname"), "h2");
    /* a plain access log: no header at all */
    ck_assert_int_eq(parse(p, LINE("a=1")), PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("syslog.hostname"), "(absent)");
    ck_assert_str_eq(get("log.client"), "203.0.113.9");
    /* a <PRI> promises a header: a broken one is still an error */
    ck_assert_int_eq(parse(p, "<13>garbage " LINE("a=1")), PIXEL_OUTCOME_QUARANTINED);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(common_and_custom_nginx_formats)
{
    pixel_pipeline *p =
        load_ok("input: {framing: none, format: common, pixel_paths: [/px.gif]}\n" FIELDS);
    ck_assert_int_eq(
        parse(p,
              "192.0.2.1 - bob [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?a=1 HTTP/1.0\" 200 43"),
        PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("log.user"), "bob");
    ck_assert_str_eq(get("log.bytes"), "43");
    pixel_pipeline_free(p);
    p = load_ok(
        "input:\n  framing: none\n  pixel_paths: [/px.gif]\n  format: {nginx: '$remote_addr "
        "[$time_local] \"$request\" $status \"$http_user_agent\" $request_time "
        "\"$http_x_forwarded_for\" ${host}'}\n"
        "fields: {a: query.a, xff: log.header.x-forwarded-for, rt: log.request_time}\n");
    ck_assert_int_eq(
        parse(p, "192.0.2.1 [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?a=1 HTTP/1.1\" 200 "
                 "\"curl/8\" 0.004 \"198.51.100.7, 10.0.0.1\" px.example.com"),
        PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("log.header.x-forwarded-for"), "198.51.100.7, 10.0.0.1");
    ck_assert_str_eq(get("log.request_time"), "0.004");
    ck_assert_str_eq(get("log.host"), "px.example.com");
    ck_assert_str_eq(get("log.user_agent"), "curl/8");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(apache_logformat_directives)
{
    pixel_pipeline *p =
        load_ok("input:\n  framing: none\n  pixel_paths: [/px.gif]\n"
                "  format: {apache: '%h %l %u %t \\\"%r\\\" %>s %b %D %T \\\"%{Referer}i\\\" "
                "\\\"%{User-agent}i\\\" %{X-Request-Id}i'}\n"
                "fields: {a: query.a, us: log.request_time_us, id: log.header.x-request-id}\n");
    ck_assert_int_eq(
        parse(
            p,
            "192.0.2.1 - - [26/Nov/2026:05:24:46 -0700] \"GET /px.gif?a=1 HTTP/1.1\" 200 43 1234 0 "
            "\"https://r.example/\" \"Mozilla/5.0\" abc-123"),
        PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("log.time"), "26/Nov/2026:05:24:46 -0700");
    ck_assert_str_eq(get("log.status"), "200");
    ck_assert_str_eq(get("log.request_time_us"), "1234");
    ck_assert_str_eq(get("log.request_time"), "0");
    ck_assert_str_eq(get("log.referer"), "https://r.example/");
    ck_assert_str_eq(get("log.user_agent"), "Mozilla/5.0");
    ck_assert_str_eq(get("log.header.x-request-id"), "abc-123");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(nginx_json_records)
{
    pixel_pipeline *p =
        load_ok("input: {framing: none, format: nginx_json, pixel_paths: [/px.gif]}\n"
                "fields: {a: query.a, up: log.upstream_addr}\n");
    ck_assert_int_eq(
        parse(p,
              "{\"time_iso8601\":\"2026-11-26T05:24:46+00:00\",\"remote_addr\":\"192.0.2.1\","
              "\"request\":\"GET /px.gif?a=%C3%A9 HTTP/1.1\",\"status\":200,"
              "\"http_user_agent\":\"Mozilla \\\"quoted\\\"\",\"upstream_addr\":\"10.0.0.2:80\"}"),
        PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("log.client"), "192.0.2.1");
    ck_assert_str_eq(get("log.status"), "200");
    ck_assert_str_eq(get("log.user_agent"), "Mozilla \"quoted\"");
    ck_assert_str_eq(get("log.upstream_addr"), "10.0.0.2:80");
    ck_assert_str_eq(get("query.a"), "\xc3\xa9");
    ck_assert_int_eq(parse(p, "{\"remote_addr\":\"192.0.2.1\",\"request\":\"GET /px.gif?a=1 HT"),
                     PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "truncated_line");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(only_configured_pixel_requests_are_kept)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif, /t.gif]}\n" FIELDS);
    ck_assert_int_eq(parse(p, LINE("a=1")), PIXEL_OUTCOME_PENDING);
    ck_assert_int_eq(parse(p, "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET /t.gif HTTP/1.1\" "
                              "200 43 \"-\" \"x\""),
                     PIXEL_OUTCOME_PENDING);
    ck_assert_int_eq(parse(p, "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET "
                              "/api/v1/search?city=x HTTP/1.1\" 200 9 \"-\" \"x\""),
                     PIXEL_OUTCOME_SKIPPED);
    ck_assert_int_eq(parse(p, "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"POST /px.gif "
                              "HTTP/1.1\" 200 9 \"-\" \"x\""),
                     PIXEL_OUTCOME_SKIPPED);
    ck_assert_int_eq(parse(p, "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"-\" 400 0 \"-\" \"-\""),
                     PIXEL_OUTCOME_SKIPPED);
    /* a damaged line whose complete request shows it is not a pixel */
    ck_assert_int_eq(parse(p, "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET /index.html "
                              "HTTP/1.1\" 200 9 \"-\" \"Mozil"),
                     PIXEL_OUTCOME_SKIPPED);
    pixel_pipeline_free(p);
}
END_TEST

/* The request line's parts as the parser must cut them: the target ends at
 * the first ' ', its path at the first '?' or '#', its query at the first '#'. */
static void expect_split(const char *req)
{
    const char *sp1 = strchr(req, ' ');
    const char *t = sp1 + 1, *sp2 = strchr(t, ' ');
    size_t tn = sp2 ? (size_t)(sp2 - t) : strlen(t);
    char target[600], path[600], query[600];
    snprintf(target, sizeof(target), "%.*s", (int)tn, t);
    size_t hn = strcspn(target, "#"), qn = strcspn(target, "?");
    if (qn < hn) {
        snprintf(path, sizeof(path), "%.*s", (int)qn, target);
        snprintf(query, sizeof(query), "%.*s", (int)(hn - qn - 1), target + qn + 1);
    } else {
        snprintf(path, sizeof(path), "%.*s", (int)hn, target);
        snprintf(query, sizeof(query), "(absent)");
    }
    ck_assert_str_eq(get("log.target"), target);
    ck_assert_str_eq(get("log.path"), path);
    ck_assert_str_eq(get("log.query"), query);
    ck_assert_str_eq(get("log.protocol"), sp2 ? sp2 + 1 : "(absent)");
}

START_TEST(request_lines_of_every_length)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    /* a target of every length to 140, with a '?', '#' or ' ' (or none) at
     * each of a few places: the scans' blocks end everywhere */
    static const char marks[] = "?# ";
    for (size_t len = 1; len <= 140; len++) {
        for (size_t m1 = 0; m1 < 4; m1++) {
            for (size_t at = 1; at < len; at += 1 + len / 9) {
                char req[400], line[700];
                size_t k = (size_t)snprintf(req, sizeof(req), "GET /");
                for (size_t i = 1; i < len; i++) {
                    req[k++] = (char)('a' + i % 26);
                }
                req[k] = '\0';
                if (m1 < 3) {
                    req[4 + at] = marks[m1];
                    /* a second mark further on */
                    if (4 + at + len / 3 < k) {
                        req[4 + at + len / 3] = marks[(m1 + at) % 3];
                    }
                }
                if (k > 4 && req[k - 1] == ' ') {
                    req[k - 1] = 'z';
                }
                const char *proto = len % 5 == 0 ? "" : " HTTP/1.1";
                snprintf(line, sizeof(line),
                         "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"%s%s\" 200 43 \"-\" \"x\"",
                         req, proto);
                pixel_outcome oc = parse(p, line);
                ck_assert_int_ne(oc, PIXEL_OUTCOME_QUARANTINED);
                char full[420];
                snprintf(full, sizeof(full), "%s%s", req, proto);
                ck_assert_str_eq(get("log.request"), full);
                expect_split(full);
            }
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(fields_of_every_length)
{
    /* fields that end before, at and after the first 32 bytes, and separators
     * whose first byte also occurs inside the field */
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    for (size_t len = 0; len <= 80; len++) {
        char ref[100], ua[100], line[700];
        for (size_t i = 0; i < len; i++) {
            ref[i] = i % 7 == 3 ? '"' : (char)('a' + i % 26);
            ua[i] = i % 5 == 1 ? '"' : (char)('A' + i % 26);
        }
        ref[len] = ua[len] = '\0';
        snprintf(line, sizeof(line),
                 "192.0.2.%zu - %.*s [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?a=%zu HTTP/1.1\" "
                 "200 %zu \"%s\" \"%s\"",
                 len, (int)(len % 40), ua, len, len * 1000, ref, ua);
        ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_PENDING);
        char want[100];
        snprintf(want, sizeof(want), "%.*s", (int)(len % 40), ua);
        ck_assert_str_eq(get("log.user"), want);
        ck_assert_str_eq(get("log.referer"), ref);
        ck_assert_str_eq(get("log.user_agent"), ua);
        snprintf(want, sizeof(want), "%zu", len * 1000);
        ck_assert_str_eq(get("log.bytes"), want);
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(separators_and_methods_of_every_length)
{
    /* separators of 1 to 8 bytes, with decoys (their first bytes, or all but
     * the last) inside the fields, at every distance from the line's start
     * (fields of up to ~160 bytes);
     * methods of 1, 3, 8 and 9 bytes against their prefixes and extensions */
    pixel_pipeline *p =
        load_ok("input:\n  framing: none\n  pixel_paths: [/px.gif]\n"
                "  methods: [G, GET, PROPFIND, MKCOLLECT]\n"
                "  format: {nginx: '$remote_addr|$status::$body_bytes_sent<=>$request_time ~~~~ "
                "\"$request\" @@@@@ ${host}'}\n"
                "fields: {a: query.a, rt: log.request_time, h: log.host}\n");
    for (size_t pad = 0; pad <= 150; pad++) { /* (past 96: the AVX2 64-byte steps) */
        char x[160], line[900], want[200];
        memset(x, 'x', pad);
        x[pad] = '\0';
        snprintf(line, sizeof(line),
                 "192.0.2.1%s|200:%sz::4<=5<%s<=>0.1 ~~~~ x%s ~~~~ \"GET /px.gif?a=%zu HTTP/1.1\" "
                 "@@@@ y\" @@@@@ h.example",
                 x, x, x, x, pad);
        ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_PENDING);
        snprintf(want, sizeof(want), "192.0.2.1%s", x);
        ck_assert_str_eq(get("log.client"), want);
        snprintf(want, sizeof(want), "200:%sz", x);
        ck_assert_str_eq(get("log.status"), want);
        snprintf(want, sizeof(want), "4<=5<%s", x);
        ck_assert_str_eq(get("log.bytes"), want);
        snprintf(want, sizeof(want), "0.1 ~~~~ x%s", x);
        ck_assert_str_eq(get("log.request_time"), want);
        snprintf(want, sizeof(want), "GET /px.gif?a=%zu HTTP/1.1\" @@@@ y", pad);
        ck_assert_str_eq(get("log.request"), want);
        ck_assert_str_eq(get("log.host"), "h.example");
        /* cut anywhere: truncated, never a field read past the end */
        for (size_t cut = 0; cut < strlen(line) - strlen("h.example"); cut++) {
            pixel_outcome oc;
            ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(line, cut), cut, &oc, NULL), 0);
            ck_assert_int_ne(oc, PIXEL_OUTCOME_PENDING);
        }
    }
    static const struct {
        const char *method;
        pixel_outcome want;
    } methods[] = {
        {"G", PIXEL_OUTCOME_PENDING},         {"GET", PIXEL_OUTCOME_PENDING},
        {"PROPFIND", PIXEL_OUTCOME_PENDING},  {"MKCOLLECT", PIXEL_OUTCOME_PENDING},
        {"GE", PIXEL_OUTCOME_SKIPPED},        {"GETS", PIXEL_OUTCOME_SKIPPED},
        {"get", PIXEL_OUTCOME_SKIPPED},       {"PROPFIN", PIXEL_OUTCOME_SKIPPED},
        {"PROPFINDX", PIXEL_OUTCOME_SKIPPED}, {"MKCOLLECTX", PIXEL_OUTCOME_SKIPPED},
        {"MKCOLLEC", PIXEL_OUTCOME_SKIPPED},  {"H", PIXEL_OUTCOME_SKIPPED},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char line[200];
        snprintf(line, sizeof(line),
                 "192.0.2.1|200::43<=>0.1 ~~~~ \"%s /px.gif?a=1 HTTP/1.1\" @@@@@ h", methods[i].method);
        ck_assert_msg(parse(p, line) == methods[i].want, "method %s", methods[i].method);
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(truncated_pixel_lines_are_quarantined)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    const char *full = LINE("a=1&b=2");
    for (size_t cut = strlen("203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?");
         cut < strlen(full); cut++) {
        pixel_outcome oc;
        ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(full, cut), cut, &oc, NULL), 0);
        ck_assert_int_eq(oc, PIXEL_OUTCOME_QUARANTINED);
        ck_assert_str_eq(first_code(ctx), "truncated_line");
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(query_values_are_decoded_strictly)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    ck_assert_int_eq(parse(p, LINE("a=S%C3%A3o+Paulo&b=55%2B&c=%F0%9F%8F%A1&d&e=&&f=x%20y")),
                     PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("query.a"), "S\xc3\xa3o Paulo");
    ck_assert_str_eq(get("query.b"), "55+");
    ck_assert_str_eq(get("query.c"), "\xf0\x9f\x8f\xa1");
    ck_assert_str_eq(get("query.d"), "");
    ck_assert_str_eq(get("query.e"), "");
    ck_assert_str_eq(get("query.f"), "x y");
    ck_assert_uint_eq(pixel_record_param_count(pixel_ctx_record(ctx)), 6);
    pixel_pipeline_free(p);
}
END_TEST

/* Parameter names are looked up by their first eight bytes and length, then
 * the rest: names that share a prefix, or are longer than 8 and 16 bytes. */
START_TEST(long_and_similar_parameter_names_are_told_apart)
{
    pixel_pipeline *p =
        load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n"
                "fields: {a: query.abcdefgh, b: query.abcdefgh1, c: query.abcdefgh2,"
                " d: query.abcdefghijklmnopq, e: query.abcdefghijklmnopqrstuvwxyz}\n");
    ck_assert_int_eq(run(p, ctx,
                         LINE("abcdefgh3=no&abcdefghijklmnopr=no&abcdefgh=1&abcdefgh2=3&abcdefgh1=2"
                              "&abcdefghijklmnopq=4&abcdefghijklmnopqrstuvwxy=no&abcdefghijklmnopqr"
                              "stuvwxyz=5&abcdefg=no")),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p),
                     "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\"}");
    /* the same names escaped (decoded before the lookup), and at the line's end */
    ck_assert_int_eq(run(p, ctx,
                         "192.0.2.1 - - [26/Nov/2026:05:24:46 +0000] \"GET "
                         "/px.gif?abcdefgh%31=x&abcdefghijklmnopqrstuvwxy%7A=y&abcdefgh2=z\""
                         " 200 43 \"-\" \"-\""),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"b\":\"x\",\"c\":\"z\",\"e\":\"y\"}");
    pixel_pipeline_free(p);
}
END_TEST

/* Every printable byte as either digit of an escape, in a value that the
 * line goes on past: hex digits of either case decode, other bytes are a
 * malformed escape. */
START_TEST(every_byte_as_an_escape_digit)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n"
                                "fields: {a: query.a, b: query.b}\n");
    for (int c = 0x21; c < 0x7f; c++) {
        if (c == '"' || c == '&' || c == '\\') {
            continue;
        }
        const int v = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        for (int pos = 0; pos < 2; pos++) {
            char line[300], q[32], want[8];
            /* %<c>4 (0x?4: ASCII for a digit below 8) or %4<c> */
            if (pos == 0) {
                snprintf(q, sizeof(q), "a=x%%%c4y", c);
            } else {
                snprintf(q, sizeof(q), "a=x%%4%cy", c);
            }
            snprintf(line, sizeof(line),
                     "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?b=1&%s&b2=1 "
                     "HTTP/1.1\" 200 43 \"-\" \"UA\"",
                     q);
            const int r = parse(p, line);
            if (v < 0) {
                ck_assert_int_eq(r, PIXEL_OUTCOME_QUARANTINED);
                ck_assert_str_eq(first_code(ctx), "bad_percent_escape");
                ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->location, "query.a");
            } else if (pos == 0 && v >= 8) {
                ck_assert_int_eq(r, PIXEL_OUTCOME_QUARANTINED);
                ck_assert_str_eq(first_code(ctx), "invalid_utf8");
            } else {
                ck_assert_int_eq(r, PIXEL_OUTCOME_PENDING);
                snprintf(want, sizeof(want), "x%cy", pos == 0 ? v * 16 + 4 : 0x40 + v);
                ck_assert_str_eq(get("query.a"), want);
            }
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

static const char *const bad_escapes[] = {"%zz", "%g1", "%%", "%u00e9", "%4", "%E", "%", "ab%"};
START_TEST(malformed_escapes_are_rejected_with_the_parameter)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    char q[128], line[512];
    snprintf(q, sizeof(q), "a=1&city=x%s", bad_escapes[_i]);
    snprintf(line, sizeof(line), LINE("%s"), q);
    ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_QUARANTINED);
    const pixel_reason *r = pixel_ctx_reason(ctx, 0);
    ck_assert_str_eq(r->code, "bad_percent_escape");
    ck_assert_str_eq(r->family, "parse_violation");
    ck_assert_str_eq(r->location, "query.city");
    ck_assert_ptr_nonnull(strstr(r->message, "offset"));
    pixel_pipeline_free(p);
}
END_TEST

static const char *const bad_utf8[] = {"Ca%F1on", "caf%C3", "%C3%28",       "%ED%A0%80", "%C0%AF",
                                       "%FF%FE",  "%80%80", "%F4%90%80%80", "%E0%80%AF"};
START_TEST(invalid_utf8_is_rejected)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    char line[512];
    snprintf(line, sizeof(line), LINE("a=1&q=%s"), bad_utf8[_i]);
    ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "invalid_utf8");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->location, "query.q");
    pixel_pipeline_free(p);
}
END_TEST

/* Raw (unescaped) bytes >= 0x80 in a query: kept as they are when they are
 * UTF-8, with or without escapes around them; rejected otherwise. */
START_TEST(raw_non_ascii_query_bytes)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n" FIELDS);
    ck_assert_int_eq(
        parse(p, LINE("a=S\xc3\xa3o%20Paulo&b=caf\xc3\xa9&c\xc3\xa9=1&d=\xc3\xa9%C3%A9+")),
        PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(get("query.a"), "S\xc3\xa3o Paulo");
    ck_assert_str_eq(get("query.b"), "caf\xc3\xa9");
    ck_assert_str_eq(get("query.c\xc3\xa9"), "1");
    ck_assert_str_eq(get("query.d"), "\xc3\xa9\xc3\xa9 ");
    ck_assert_int_eq(parse(p, LINE("a=1&q=Ca\xf1on%20x")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "invalid_utf8");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->location, "query.q");
    ck_assert_int_eq(parse(p, LINE("a=1&\xff=x")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "invalid_utf8");
    pixel_pipeline_free(p);
}
END_TEST

/* Pairs cut and decoded at every position of a long query: the classes are
 * found in blocks (of 16, 32 or 64 bytes, by the CPU), so a pair, an escape or
 * a '+' may sit across any boundary; and the query may end the line. */
START_TEST(query_blocks_at_every_offset)
{
    pixel_pipeline *p[2] = {
        load_ok("input: {framing: none, pixel_paths: [/px.gif]}\n"
                "fields: {a: query.a, b: query.b, z: query.z}\n"),
        load_ok("input: {framing: none, pixel_paths: [/px.gif], format: {nginx: '$remote_addr "
                "$request'}}\nfields: {a: query.a, b: query.b, z: query.z}\n")};
    const char *head[2] = {"203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?",
                           "203.0.113.9 GET /px.gif?"};
    const char *tail[2] = {" HTTP/1.1\" 200 43 \"-\" \"UA\"", ""};
    for (int off = 0; off < 150; off++) {
        char xs[160], ys[64], line[600], want[64];
        memset(xs, 'x', (size_t)off);
        xs[off] = '\0';
        memset(ys, 'y', (size_t)(off % 37));
        ys[off % 37] = '\0';
        for (int k = 0; k < 2; k++) {
            snprintf(line, sizeof(line), "%sz=%s&a=v%%41+\xc3\xa9&=&&b=%s%s", head[k], xs, ys,
                     tail[k]);
            ck_assert_int_eq(parse(p[k], line), PIXEL_OUTCOME_PENDING);
            ck_assert_str_eq(get("query.z"), xs);
            ck_assert_str_eq(get("query.a"), "vA \xc3\xa9");
            ck_assert_str_eq(get("query.b"), ys);
            /* a malformed escape at the offset: the parameter and offset in the reason */
            snprintf(line, sizeof(line), "%sb=1&a=%s%%4g&z=1%s", head[k], xs, tail[k]);
            ck_assert_int_eq(parse(p[k], line), PIXEL_OUTCOME_QUARANTINED);
            ck_assert_str_eq(first_code(ctx), "bad_percent_escape");
            ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->location, "query.a");
            snprintf(want, sizeof(want), "at offset %d", off);
            ck_assert_ptr_nonnull(strstr(pixel_ctx_reason(ctx, 0)->message, want));
        }
    }
    pixel_pipeline_free(p[0]);
    pixel_pipeline_free(p[1]);
}
END_TEST

/* The plain form decoding of s (valid escapes only), for comparison. */
static void ref_decode(const char *s, char *out)
{
    while (*s) {
        if (*s == '%') {
            unsigned v;
            sscanf(s + 1, "%2x", &v);
            *out++ = (char)v;
            s += 3;
        } else {
            *out++ = *s == '+' ? ' ' : *s;
            s++;
        }
    }
    *out = '\0';
}

START_TEST(decoded_values_at_every_distance_from_the_end)
{
    /* the query ends the line: its last value is followed by 0 to 40 bytes */
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif], format: {nginx: "
                                "'$remote_addr $request'}}\nfields: {a: query.a, z: query.z}\n");
    static const size_t runs[] = {0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 70};
    for (size_t dist = 0; dist <= 40; dist++) {
        for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
            for (size_t j = 0; j < sizeof(runs) / sizeof(runs[0]); j += 2) {
                char val[300], line[600], want[300], pad[48];
                size_t k = 0;
                for (size_t r = 0; r < runs[i]; r++) {
                    val[k++] = (char)('a' + r % 26);
                }
                k += (size_t)sprintf(val + k, "%%3A%%2f");
                for (size_t r = 0; r < runs[j]; r++) {
                    val[k++] = (char)('A' + r % 26);
                }
                val[k++] = '+';
                for (size_t r = 0; r < (runs[i] + runs[j]) % 19; r++) {
                    val[k++] = (char)('0' + r % 10);
                }
                val[k] = '\0';
                memset(pad, 'p', dist);
                pad[dist] = '\0';
                const char *sep = dist ? "&z=" : "";
                snprintf(line, sizeof(line), "192.0.2.1 GET /px.gif?a=%s%s%s", val, sep,
                         dist > 3 ? pad + 3 : "");
                ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_PENDING);
                ref_decode(val, want);
                ck_assert_str_eq(get("query.a"), want);
                /* an escape cut short by the value's end */
                snprintf(line, sizeof(line), "192.0.2.1 GET /px.gif?a=%s%%%s%s%s", val,
                         runs[j] % 2 ? "4" : "", sep, dist > 3 ? pad + 3 : "");
                ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_QUARANTINED);
                ck_assert_str_eq(first_code(ctx), "bad_percent_escape");
                snprintf(want, sizeof(want), "at offset %zu", strlen(val));
                ck_assert_ptr_nonnull(strstr(pixel_ctx_reason(ctx, 0)->message, want));
            }
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(names_of_every_length)
{
    /* names of 1 to 40 bytes, with a value, an empty value or no '=', at every
     * distance from the line's end (the query ends the line), and in a line
     * that goes on past the query (the parse's version for that: a name of
     * sixteen bytes or more goes its slow way) */
    static const char *const inputs[2] = {
        "input: {framing: none, pixel_paths: [/px.gif], format: {nginx: '$remote_addr "
        "$request'}}\n",
        "input: {framing: none, pixel_paths: [/px.gif]}\n"};
    for (int k = 0; k < 2; k++) {
        char cfg[400];
        snprintf(cfg, sizeof(cfg),
                 "%sfields: {z: query.zz, l: query.abcdefghijklmnopq, "
                 "m: query.abcdefghijklmnop, s: query.abcdefghijklmno}\n",
                 inputs[k]);
        pixel_pipeline *p = load_ok(cfg);
        for (size_t len = 1; len <= 40; len++) {
            for (int form = 0; form < 3; form++) {
                for (size_t tail = 0; tail < 20; tail += 3) {
                    char name[48], line[400], t[24];
                    for (size_t i = 0; i < len; i++) {
                        name[i] = (char)('a' + i % 26);
                    }
                    name[len] = '\0';
                    memset(t, 'x', tail);
                    t[tail] = '\0';
                    static const char *const forms[] = {"=v=w", "=", ""};
                    if (k == 0) {
                        snprintf(line, sizeof(line), "192.0.2.1 GET /px.gif?zz=1&%s%s&%s", name,
                                 forms[form], t);
                    } else {
                        snprintf(line, sizeof(line),
                                 "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET "
                                 "/px.gif?zz=1&%s%s&%s HTTP/1.1\" 200 43 \"-\" \"UA\"",
                                 name, forms[form], t);
                    }
                    ck_assert_int_eq(parse(p, line), PIXEL_OUTCOME_PENDING);
                    const pixel_record *rec = pixel_ctx_record(ctx);
                    ck_assert_uint_eq(pixel_record_param_count(rec), tail ? 3 : 2);
                    const char *v;
                    size_t nl, vl;
                    const char *nm = pixel_record_param(rec, 1, &v, &nl, &vl);
                    ck_assert_uint_eq(nl, len);
                    ck_assert_int_eq(memcmp(nm, name, len), 0);
                    ck_assert_uint_eq(vl, form == 0 ? 3 : 0);
                    ck_assert_str_eq(get("query.zz"), "1");
                    const char *want = form == 0 ? "v=w" : "";
                    ck_assert_str_eq(get("query.abcdefghijklmnopq"),
                                     len == 17 ? want : "(absent)");
                    ck_assert_str_eq(get("query.abcdefghijklmnop"),
                                     len == 16 ? want : "(absent)");
                    ck_assert_str_eq(get("query.abcdefghijklmno"),
                                     len == 15 ? want : "(absent)");
                }
            }
        }
        pixel_pipeline_free(p);
    }
}
END_TEST

START_TEST(queries_of_a_pipeline_without_parameters)
{
    /* no query field: every name misses the (empty) table */
    pixel_pipeline *p =
        load_ok("input: {framing: none, pixel_paths: [/px.gif]}\nfields: {c: log.client}\n");
    ck_assert_int_eq(parse(p, LINE("a=1&b=%41&=&longer_than_eight_bytes=x&&c")),
                     PIXEL_OUTCOME_PENDING);
    const pixel_record *rec = pixel_ctx_record(ctx);
    ck_assert_uint_eq(pixel_record_param_count(rec), 5);
    const char *v;
    size_t nl, vl;
    const char *nm = pixel_record_param(rec, 1, &v, &nl, &vl);
    ck_assert_int_eq(memcmp(nm, "b", nl), 0);
    ck_assert_int_eq(memcmp(v, "A", vl), 0);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(repeated_keys_follow_the_policy)
{
    const char *line = LINE("a=1&a=2&b=x");
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif], repeated_keys: "
                                "first}\nfields: {a: query.a}\n");
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"a\":\"1\"}");
    pixel_pipeline_free(p);
    p = load_ok("input: {framing: none, pixel_paths: [/px.gif], repeated_keys: last}\nfields: {a: "
                "query.a}\n");
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"a\":\"2\"}");
    pixel_pipeline_free(p);
    p = load_ok("input: {framing: none, pixel_paths: [/px.gif], repeated_keys: list}\nfields: {a: "
                "{from: query.a, type: integer}}\n");
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"a\":[1,2]}");
    pixel_pipeline_free(p);
    p = load_ok("input: {framing: none, pixel_paths: [/px.gif], repeated_keys: reject}\nfields: "
                "{a: query.a}\n");
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "repeated_parameter");
    /* a repeat whose value is decoded */
    ck_assert_int_eq(run(p, ctx, LINE("a=1&a=%41&b=x")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "repeated_parameter");
    /* unmapped parameters may repeat */
    ck_assert_int_eq(run(p, ctx, LINE("a=1&z=1&z=2")), PIXEL_OUTCOME_EVENT);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(size_limits)
{
    pixel_pipeline *p = load_ok("input: {framing: none, pixel_paths: [/px.gif], max_line_length: "
                                "100, max_parameters: 3}\n" FIELDS);
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "line_too_long");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->family, "size_violation");
    pixel_pipeline_free(p);
    p = load_ok("input: {framing: none, pixel_paths: [/px.gif], max_parameters: 3}\n" FIELDS);
    ck_assert_int_eq(run(p, ctx, LINE("a=1&b=2&c=3")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(run(p, ctx, LINE("a=1&b=2&c=3&d=4")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "too_many_parameters");
    /* values to decode: the one past the limit is reported before its own faults */
    ck_assert_int_eq(run(p, ctx, LINE("a=%41&b=%42&c=%43")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(run(p, ctx, LINE("a=%41&b=%42&c=%43&d=%44")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "too_many_parameters");
    ck_assert_int_eq(run(p, ctx, LINE("a=1&b=2&c=3&d=%4g")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "too_many_parameters");
    ck_assert_uint_eq(pixel_ctx_reason_count(ctx), 1);
    pixel_pipeline_free(p);
}
END_TEST

static Suite *parse_suite(void)
{
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, rfc3164_header_is_split);
    tcase_add_test(tc, every_pri);
    tcase_add_test(tc, rfc3164_tag_length_limit);
    tcase_add_test(tc, rfc5424_header_is_split);
    tcase_add_test(tc, auto_framing_takes_either);
    suite_add_tcase(s, tc);
    tc = tcase_create("formats");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, common_and_custom_nginx_formats);
    tcase_add_test(tc, apache_logformat_directives);
    tcase_add_test(tc, nginx_json_records);
    tcase_add_test(tc, only_configured_pixel_requests_are_kept);
    tcase_add_test(tc, truncated_pixel_lines_are_quarantined);
    tcase_add_test(tc, request_lines_of_every_length);
    tcase_add_test(tc, fields_of_every_length);
    tcase_add_test(tc, separators_and_methods_of_every_length);
    suite_add_tcase(s, tc);
    tc = tcase_create("query");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, query_values_are_decoded_strictly);
    tcase_add_test(tc, long_and_similar_parameter_names_are_told_apart);
    tcase_add_loop_test(tc, malformed_escapes_are_rejected_with_the_parameter, 0,
                        (int)(sizeof(bad_escapes) / sizeof(bad_escapes[0])));
    tcase_add_loop_test(tc, invalid_utf8_is_rejected, 0,
                        (int)(sizeof(bad_utf8) / sizeof(bad_utf8[0])));
    tcase_add_test(tc, every_byte_as_an_escape_digit);
    tcase_add_test(tc, raw_non_ascii_query_bytes);
    tcase_add_test(tc, query_blocks_at_every_offset);
    tcase_add_test(tc, decoded_values_at_every_distance_from_the_end);
    tcase_add_test(tc, names_of_every_length);
    tcase_add_test(tc, queries_of_a_pipeline_without_parameters);
    tcase_add_test(tc, repeated_keys_follow_the_policy);
    tcase_add_test(tc, size_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(parse_suite());
}
