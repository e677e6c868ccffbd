/* Built-in enrichers. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <time.h>

#include "testutil.h"
#include "pixel/module.h"

static pixel_ctx *ctx;
static void setup(void)
{
    ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795651200123);
}
static void teardown(void)
{
    pixel_ctx_free(ctx);
}

static const char *str_at(const char *path)
{
    static char buf[256];
    size_t n;
    const char *s = pixel_value_string(pixel_value_at(pixel_ctx_event(ctx), path), &n);
    if (!s) {
        return "(absent)";
    }
    snprintf(buf, sizeof(buf), "%.*s", (int)n, s);
    return buf;
}

#define EID_PIPE                                                                                   \
    PIPE_HEAD "fields: {a: query.a}\nenrich:\n  - event_id: {into: id, from: query.eid}\n"

START_TEST(event_id_prefers_a_valid_client_uuid)
{
    pixel_pipeline *p = load_ok(EID_PIPE);
    ck_assert_int_eq(run(p, ctx, LINE("a=1&eid=F57BD9AB-F936-4984-A95E-852C4C77B896")),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("id"), "f57bd9ab-f936-4984-a95e-852c4c77b896");
    ck_assert_int_eq(run(p, ctx, LINE("a=1&eid=aBcDeF09-0000-4fFf-8AaA-0123456789Ef")),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("id"), "abcdef09-0000-4fff-8aaa-0123456789ef");
    /* Near misses are not taken: the ID is derived from the line instead. */
    static const char *const near[] = {
        "f57bd9ab-f936-4984-a95e-852c4c77b89",   /* 35 bytes */
        "f57bd9ab-f936-4984-a95e-852c4c77b8961", /* 37 bytes */
        "f57bd9abf-936-4984-a95e-852c4c77b896",  /* a dash moved */
        "f57bd9ab-f936-4984-a95e-852c4c77b89g",  /* not hex, last byte */
        "g57bd9ab-f936-4984-a95e-852c4c77b896",  /* not hex, first byte */
        "f57bd9ab-f936-4984-a95e-852c4c7%C3%A9", /* non-ASCII */
        "f57bd9ab-f936-4984-a95e-852c4c77b-96",  /* a dash too many */
        "f57bd9ab-f936-4984-a95e-852c4c77b%3A6", /* ':' just after '9' */
        "f57bd9ab-f936-4984-a95e-852c4c77b%606", /* '`' just before 'a' */
        "%2F57bd9ab-f936-4984-a95e-852c4c77b896", /* '/' just before '0' */
        "f57bd9ab-f936-4984-a95e-852c4c77b89%40", /* '@' just before 'A' */
        "f57bd9ab-f936-4984-a95e-852c4c77b89G",   /* 'G' just after 'F' */
        "%C3%A97bd9ab-f936-4984-a95e-852c4c77b8", /* non-ASCII, 36 bytes, at the start */
        "f57bd9ab-f936-4984-a95e-852c4c77%C3%A96", /* and in the last block */
    };
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        char line[256];
        snprintf(line, sizeof(line), LINE("a=1&eid=%s"), near[i]);
        ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
        const char *id = str_at("id");
        ck_assert_uint_eq(strlen(id), 36);
        ck_assert_msg(id[14] == '8', "%s taken as %s", near[i], id); /* derived: version 8 */
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(event_id_is_derived_deterministically_otherwise)
{
    pixel_pipeline *p = load_ok(EID_PIPE);
    char first[256], second[256];
    ck_assert_int_eq(run(p, ctx, LINE("a=1&eid=not-a-uuid")), PIXEL_OUTCOME_EVENT);
    snprintf(first, sizeof(first), "%s", str_at("id"));
    ck_assert_uint_eq(strlen(first), 36);
    ck_assert_int_eq(first[14], '8'); /* version 8 */
    ck_assert_msg(strchr("89ab", first[19]) != NULL, "variant bits");
    pixel_ctx_set_clock(ctx, 1900000000000); /* a replay later: same line, same ID */
    ck_assert_int_eq(run(p, ctx, LINE("a=1&eid=not-a-uuid")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("id"), first);
    ck_assert_int_eq(run(p, ctx, LINE("a=2&eid=not-a-uuid")), PIXEL_OUTCOME_EVENT);
    snprintf(second, sizeof(second), "%s", str_at("id"));
    ck_assert_str_ne(first, second);
    pixel_pipeline_free(p);
    /* The syslog header is not part of the ID: a relay may re-frame the line. */
    p = load_ok("input: {framing: auto, pixel_paths: [/px.gif]}\nfields: {a: query.a}\n"
                "enrich: [{event_id: {into: id}}]\n");
    ck_assert_int_eq(run(p, ctx, "<190>Nov 26 05:24:46 web01 nginx: " LINE("a=1&eid=x")),
                     PIXEL_OUTCOME_EVENT);
    snprintf(first, sizeof(first), "%s", str_at("id"));
    ck_assert_int_eq(
        run(p, ctx, "<13>1 2026-11-26T05:24:47Z relay2 nginx - - - " LINE("a=1&eid=x")),
        PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("id"), first);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(ip_addresses_are_anonymized_by_prefix)
{
    pixel_pipeline *p = load_ok(
        PIPE_HEAD "fields: {client.ip: query.ip}\nenrich:\n"
                  "  - anonymize_ip: {field: client.ip, ipv4_prefix: 16, ipv6_prefix: 32}\n");
    ck_assert_int_eq(run(p, ctx, LINE("ip=203.0.113.77")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("client.ip"), "203.0.0.0");
    ck_assert_int_eq(run(p, ctx, LINE("ip=2001:db8:a2f6:8a7d::1")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("client.ip"), "2001:db8::");
    ck_assert_int_eq(run(p, ctx, LINE("ip=example.com")), PIXEL_OUTCOME_QUARANTINED);
    /* a NUL inside is refused whatever follows it (inet_pton would stop at it) */
    ck_assert_int_eq(run(p, ctx, LINE("ip=2001:db8::1%00junk")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_int_eq(run(p, ctx, LINE("ip=2001:db8::1%00.9")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_int_eq(run(p, ctx, LINE("ip=1:2:3:4:5:6:7:8%00")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_int_eq(run(p, ctx, LINE("ip=1:2:3:4:5:6:7:8%001")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_int_eq(run(p, ctx, LINE("ip=1.2.3.4%00")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_int_eq(run(p, ctx, LINE("ip=203.0.113.7%00")), PIXEL_OUTCOME_QUARANTINED);
    ck_assert_str_eq(first_code(ctx), "enrichment_failed");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->source, "anonymize_ip");
    pixel_pipeline_free(p);
    p = load_ok(PIPE_HEAD "fields: {ip: query.ip}\nenrich: [{anonymize_ip: {field: ip}}]\n");
    ck_assert_int_eq(run(p, ctx, LINE("ip=198.51.100.200")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("ip"), "198.51.100.0"); /* default /24 */
    ck_assert_int_eq(run(p, ctx, LINE("ip=0.0.0.9")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("ip"), "0.0.0.0");
    ck_assert_int_eq(run(p, ctx, LINE("ip=::ffff:198.51.100.7")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("ip"), "::"); /* an IPv6 address: its first 48 bits */
    /* What inet_pton refuses for IPv4 is refused here too. */
    static const char *const not_ipv4[] = {"198.51.100.256", "198.51.100",    "198.51.100.1.2",
                                           "198.051.100.1",  "198.51.100.1+", "1..2.3",
                                           "198.51.100.",    "1234.1.1.1",
                                           "1.2.3.04",       "1.2.3.4.",      "0.0.0.00",
                                           "999.1.1.1",      "1.2.3.2555",    "1.2.3.4.5.6.7.8"};
    for (size_t i = 0; i < sizeof(not_ipv4) / sizeof(not_ipv4[0]); i++) {
        char line[160];
        snprintf(line, sizeof(line), LINE("ip=%s"), not_ipv4[i]);
        ck_assert_msg(run(p, ctx, line) == PIXEL_OUTCOME_QUARANTINED, "%s", not_ipv4[i]);
        ck_assert_str_eq(first_code(ctx), "enrichment_failed");
    }
    pixel_pipeline_free(p);
}
END_TEST

/* IPv4 against libc too, at every prefix: whole octets kept are copied
 * from the text, other prefixes are masked and written. */
START_TEST(ipv4_anonymization_matches_libc)
{
    unsigned seed = 4242;
    for (int prefix = 0; prefix <= 32; prefix++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 PIPE_HEAD "fields: {ip: query.ip}\nenrich: [{anonymize_ip: {field: ip, "
                           "ipv4_prefix: %d}}]\n",
                 prefix);
        pixel_pipeline *p = load_ok(yaml);
        for (int round = 0; round < 60; round++) {
            unsigned char a[4];
            for (int k = 0; k < 4; k++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 16;
                a[k] = (unsigned char)(r % 3 == 0 ? r % 10 : r % 3 == 1 ? 10 + r % 90 : r);
            }
            char text[INET_ADDRSTRLEN], want[INET_ADDRSTRLEN], line[160];
            ck_assert_ptr_nonnull(inet_ntop(AF_INET, a, text, sizeof(text)));
            uint32_t bits;
            memcpy(&bits, a, 4);
            bits = ntohl(bits);
            bits &= prefix == 0 ? 0 : 0xFFFFFFFFu << (32 - prefix);
            bits = htonl(bits);
            ck_assert_ptr_nonnull(inet_ntop(AF_INET, &bits, want, sizeof(want)));
            snprintf(line, sizeof(line), LINE("ip=%s"), text);
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
            ck_assert_msg(strcmp(str_at("ip"), want) == 0, "/%d %s: %s, not %s", prefix, text,
                          str_at("ip"), want);
        }
        pixel_pipeline_free(p);
    }
}
END_TEST

/* IPv6 is parsed and written by the library itself; libc's inet_pton and
 * inet_ntop are the reference: the same addresses accepted, the same text
 * out, for addresses of every shape of zero runs and many prefixes. */
START_TEST(ipv6_anonymization_matches_libc)
{
    static const int prefixes[] = {0, 1, 15, 16, 17, 32, 48, 63, 64, 80, 96, 112, 127, 128};
    unsigned seed = 12345;
    for (size_t pi = 0; pi < sizeof(prefixes) / sizeof(prefixes[0]); pi++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 PIPE_HEAD "fields: {ip: query.ip}\nenrich: [{anonymize_ip: {field: ip, "
                           "ipv6_prefix: %d}}]\n",
                 prefixes[pi]);
        pixel_pipeline *p = load_ok(yaml);
        for (int round = 0; round < 400; round++) {
            unsigned char a[16], m[16];
            for (int g = 0; g < 8; g++) {
                seed = seed * 1103515245u + 12345u;
                /* each group zero half of the time, so every run shape occurs */
                unsigned v = (seed >> 16) & 1 ? 0 : (seed >> 8) & (round % 3 ? 0xffff : 0x00ff);
                if (round % 7 == 0 && g == 5) {
                    v = 0xffff; /* IPv4-mapped shapes */
                }
                a[2 * g] = (unsigned char)(v >> 8);
                a[2 * g + 1] = (unsigned char)v;
            }
            char text[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN], line[256];
            ck_assert_ptr_nonnull(inet_ntop(AF_INET6, a, text, sizeof(text)));
            /* the masked address as libc would write it */
            ck_assert_int_eq(inet_pton(AF_INET6, text, m), 1);
            for (int i = 0; i < 16; i++) {
                int keep = prefixes[pi] - i * 8;
                m[i] &= keep >= 8 ? 0xFF : keep <= 0 ? 0 : (unsigned char)(0xFF << (8 - keep));
            }
            ck_assert_ptr_nonnull(inet_ntop(AF_INET6, m, want, sizeof(want)));
            /* canonical text, and the same address written out in full, upper case */
            snprintf(line, sizeof(line), LINE("ip=%s"), text);
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
            ck_assert_str_eq(str_at("ip"), want);
            char full[64];
            snprintf(full, sizeof(full),
                     "%02X%02X:%02X%02X:%02X%02X:%02X%02X:%02X%02X:%02X%02X:%02X%02X:%02X%02X",
                     a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                     a[12], a[13], a[14], a[15]);
            snprintf(line, sizeof(line), LINE("ip=%s"), full);
            ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
            ck_assert_str_eq(str_at("ip"), want);
            /* all eight groups in lower case: in full (leading zeros), and
             * without leading zeros (the kept groups' text may be copied) */
            for (int form = 0; form < 2; form++) {
                size_t o = 0;
                for (int g = 0; g < 8; g++) {
                    unsigned v = (unsigned)a[2 * g] << 8 | a[2 * g + 1];
                    o += (size_t)snprintf(full + o, sizeof(full) - o, form ? "%s%x" : "%s%04x",
                                          g ? ":" : "", v);
                }
                snprintf(line, sizeof(line), LINE("ip=%s"), full);
                ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
                ck_assert_msg(strcmp(str_at("ip"), want) == 0, "/%d %s: %s, not %s", prefixes[pi],
                              full, str_at("ip"), want);
            }
        }
        pixel_pipeline_free(p);
    }
    /* Accepted or refused exactly as inet_pton decides. */
    static const char *const forms[] = {"::",
                                        "::1",
                                        "1::",
                                        "1:2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7::",
                                        "::2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7:8::",
                                        "::1:2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7",
                                        "1::2::3",
                                        ":::",
                                        ":1::",
                                        "1:",
                                        ":1",
                                        "1::2:",
                                        "12345::",
                                        "0001:0002::",
                                        "g::1",
                                        "1:2:3:4:5:6:7:8:9",
                                        "::ffff:1.2.3.4",
                                        "::1.2.3.4",
                                        "1::1.2.3.4",
                                        "::ffff:1.2.3",
                                        "::ffff:1.2.3.4.5",
                                        "1:2:3:4:5:6:1.2.3.4",
                                        "1:2:3:4:5:6:7:1.2.3.4",
                                        "fe80::1%eth0",
                                        " ::1",
                                        "::1 ",
                                        "1::2:3:4:5:6:7:8",
                                        /* eight groups, no "::" (read as bit masks) */
                                        "ABCD:EF01:2345:6789:abcd:ef01:2345:6789",
                                        "0000:0000:0000:0000:0000:0000:0000:0001",
                                        "1:2:3:4:5:6:7:12345",
                                        "12345:2:3:4:5:6:7:8",
                                        "00001:2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7:8:",
                                        ":1:2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7:8g",
                                        "1:2:3:4:5:6:7:8.1",
                                        "1:2:3:4:5:6:7:1.2",
                                        "1:2:3:4:5:6:7:x",
                                        "1:2:3:4:5:6:7:",
                                        "1:2:3:4:5:6::7:8",
                                        "11:22:33:44:55:66:77:88:99"};
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {ip: query.ip}\nenrich: [{anonymize_ip: "
                                          "{field: ip, ipv6_prefix: 128}}]\n");
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        unsigned char a[16];
        char want[INET6_ADDRSTRLEN], line[256];
        bool ok = inet_pton(AF_INET6, forms[i], a) == 1;
        snprintf(line, sizeof(line), LINE("ip=%s"), forms[i]);
        for (char *c = strstr(line, "ip=") + 3; *c && *c != ' '; c++) {
            if (*c == '%') {
                *c = 'x'; /* keep the query string well formed */
            }
        }
        if (strchr(forms[i], '%') || strchr(forms[i], ' ')) {
            continue; /* not expressible in a query value as is */
        }
        ck_assert_msg(run(p, ctx, line) == (ok ? PIXEL_OUTCOME_EVENT : PIXEL_OUTCOME_QUARANTINED),
                      "%s", forms[i]);
        if (ok) {
            inet_ntop(AF_INET6, a, want, sizeof(want));
            ck_assert_str_eq(str_at("ip"), want);
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(urls_are_decomposed_with_campaign_fields)
{
    pixel_pipeline *p = load_ok(
        PIPE_HEAD "fields: {page.url: query.url}\nenrich: [{url: {from: page.url, into: page}}]\n");
    ck_assert_int_eq(run(p, ctx,
                         LINE("url=https%3A%2F%2Fu%40www.example.com%3A8443%2Fa%2Fb%3Futm_source%"
                              "3Dnews%26utm_campaign%3DFall%2B2026%26x%3D1%23top")),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(
        output(ctx, p),
        "{\"page\":{\"url\":\"https://u@www.example.com:8443/a/"
        "b?utm_source=news&utm_campaign=Fall+2026&x=1#top\","
        "\"scheme\":\"https\",\"host\":\"www.example.com:8443\",\"path\":\"/a/b\","
        "\"query\":\"utm_source=news&utm_campaign=Fall+2026&x=1\","
        "\"campaign\":{\"source\":\"news\",\"name\":\"Fall 2026\"},\"fragment\":\"top\"}}");
    ck_assert_int_eq(run(p, ctx, LINE("url=not+a+url")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("page.host"), "(absent)");
    pixel_pipeline_free(p);
}
END_TEST

/* Campaign values are percent-decoded when that gives UTF-8 (a decoded byte
 * >= 0x80 is checked), else kept as sent; the last of a repeated name
 * counts, in the place of the first; other utm_ names, and one without '=',
 * are not campaign members.  An empty path before '?' or '#'. */
START_TEST(url_campaign_values_and_empty_paths)
{
    pixel_pipeline *p = load_ok(
        PIPE_HEAD "fields: {page.url: query.url}\nenrich: [{url: {from: page.url, into: page}}]\n");
    ck_assert_int_eq(run(p, ctx,
                         LINE("url=https%3A%2F%2Fh.example%3Futm_source%3Dcaf%25C3%25A9%26utm_medium"
                              "%3D%25FF%26utm_foo%3D1%26utm_term%26utm_content%3D%25E2%2582%26utm_"
                              "source%3Dx%2By%23f")),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("page.path"), "");
    ck_assert_str_eq(str_at("page.campaign.source"), "x y");
    ck_assert_str_eq(str_at("page.campaign.medium"), "%FF");
    ck_assert_str_eq(str_at("page.campaign.content"), "%E2%82");
    ck_assert_str_eq(str_at("page.campaign.term"), "(absent)");
    ck_assert_str_eq(str_at("page.fragment"), "f");
    ck_assert_str_eq(output(ctx, p),
                     "{\"page\":{\"url\":\"https://h.example?utm_source=caf%C3%A9&utm_medium=%FF&"
                     "utm_foo=1&utm_term&utm_content=%E2%82&utm_source=x+y#f\",\"scheme\":\"https\","
                     "\"host\":\"h.example\",\"path\":\"\",\"query\":\"utm_source=caf%C3%A9&"
                     "utm_medium=%FF&utm_foo=1&utm_term&utm_content=%E2%82&utm_source=x+y\","
                     "\"campaign\":{\"source\":\"x y\",\"medium\":\"%FF\",\"content\":\"%E2%82\"},"
                     "\"fragment\":\"f\"}}");
    ck_assert_int_eq(run(p, ctx, LINE("url=https%3A%2F%2Fh%3Futm_campaign%3D%25E2%2582%25AC")),
                     PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("page.campaign.name"), "\xe2\x82\xac");
    ck_assert_int_eq(run(p, ctx, LINE("url=https%3A%2F%2Fh%23a%3Fb")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(str_at("page.path"), "");
    ck_assert_str_eq(str_at("page.query"), "(absent)");
    ck_assert_str_eq(str_at("page.fragment"), "a?b");
    pixel_pipeline_free(p);
}
END_TEST

/* A part that the target already has is replaced where it stands; parts of
 * a URL that needs escaping are escaped; a new target gets every part. */
START_TEST(url_parts_replace_members_and_keep_escapes)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {page.host: query.h, page.url: query.url}\n"
                                          "enrich: [{url: {from: page.url, into: page}}]\n");
    ck_assert_int_eq(
        run(p, ctx, LINE("h=old&url=http%3A%2F%2Fa.b%2Fp%22q%3Fx%3D1%26utm_term%3Dt%5C1%23f")),
        PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(
        output(ctx, p),
        "{\"page\":{\"host\":\"a.b\",\"url\":\"http://a.b/p\\\"q?x=1&utm_term=t\\\\1#f\","
        "\"scheme\":\"http\",\"path\":\"/p\\\"q\",\"query\":\"x=1&utm_term=t\\\\1\","
        "\"campaign\":{\"term\":\"t\\\\1\"},\"fragment\":\"f\"}}");
    pixel_pipeline_free(p);

    p = load_ok(PIPE_HEAD "fields: {u: query.url}\nenrich: [{url: {from: u, into: parts.of}}]\n");
    ck_assert_int_eq(run(p, ctx, LINE("url=https%3A%2F%2Fx.org")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"u\":\"https://x.org\",\"parts\":{\"of\":{\"scheme\":"
                                     "\"https\",\"host\":\"x.org\",\"path\":\"\"}}}");
    pixel_pipeline_free(p);
}
END_TEST

/* The built-ins append a new root member without a search when nothing can
 * have set it; an event changed from outside between the stages, enriched
 * twice, or a key the map stage sets, still gets one member per key. */
static const char *stages(pixel_pipeline *p, const char *line, int edit)
{
    pixel_error err;
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(line, strlen(line)), strlen(line), NULL, &err), 0);
    ck_assert_int_eq(pixel_map(p, ctx, NULL, &err), 0);
    pixel_value *ev = pixel_ctx_event(ctx);
    if (edit == 1) {
        ck_assert_int_eq(pixel_object_set(ctx, ev, "ingest", pixel_value_new_int(ctx, 1)), 0);
    } else if (edit == 2) {
        ck_assert_int_eq(pixel_module_object_append(ev, "meta", 4, pixel_value_new_int(ctx, 2)), 0);
    } else if (edit == 3) {
        ck_assert_int_eq(pixel_value_set_at(ctx, ev, "meta.x", pixel_value_new_int(ctx, 3)), 0);
    }
    ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
    if (edit == 4) {
        ck_assert_int_eq(pixel_object_remove(ev, "id"), 1);
        ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
    } else if (edit == 5) {
        ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
    } else if (edit == 6) {
        ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
        ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
    }
    return pixel_value_dump(ctx, ev, NULL);
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *q = text; (q = strstr(q, what)) != NULL; q++) {
        n++;
    }
    return n;
}

/* The pipeline enricher's texts: as they are when plain, escaped when not. */
START_TEST(pipeline_name_and_version_are_escaped_when_needed)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"pipeline: {name: plain-name, version: 2.0.1}\n",
         ",\"meta\":{\"name\":\"plain-name\",\"version\":\"2.0.1\"}}"},
        {"pipeline: {name: 'a \"quoted\" \\ name', version: \"tab\\there\"}\n",
         ",\"meta\":{\"name\":\"a \\\"quoted\\\" \\\\ name\",\"version\":\"tab\\there\"}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "%sinput: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"
                 "fields: {a: query.a}\nenrich:\n  - pipeline: {into: meta}\n",
                 cases[i].yaml);
        pixel_pipeline *p = load_ok(yaml);
        ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
        const char *out = output(ctx, p);
        size_t n = strlen(out), w = strlen(cases[i].want);
        ck_assert_msg(n > w && strcmp(out + n - w, cases[i].want) == 0, "%s", out);
        pixel_pipeline_free(p);
    }
}
END_TEST

START_TEST(new_root_members_are_set_once)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {a: query.a}\nenrich:\n"
                                          "  - event_id: {into: id}\n"
                                          "  - ingest_time: {into: ingest}\n"
                                          "  - pipeline: {into: meta}\n");
    const char *line = LINE("a=1");
    char want[512];
    snprintf(want, sizeof(want), "%s", stages(p, line, 0));
    ck_assert_ptr_nonnull(strstr(want, "{\"a\":\"1\",\"id\":\""));
    ck_assert_ptr_nonnull(strstr(want, "\",\"ingest\":\"2026-"));
    ck_assert_ptr_nonnull(strstr(want, "\",\"meta\":{\"name\":"));
    ck_assert_str_eq(stages(p, line, 5), want); /* enriched twice: replaced in place */
    ck_assert_str_eq(stages(p, line, 6), want); /* three times */
    for (int edit = 1; edit <= 4; edit++) {
        const char *got = stages(p, line, edit);
        ck_assert_msg(count_of(got, "\"id\":") == 1 && count_of(got, "\"ingest\":") == 1 &&
                          count_of(got, "\"meta\":") == 1,
                      "edit %d: %s", edit, got);
    }
    pixel_pipeline_free(p);

    /* a key the map stage sets is replaced where it stands */
    p = load_ok(PIPE_HEAD "fields: {a: query.a, ingest: query.b}\nenrich:\n"
                          "  - event_id: {into: id}\n  - ingest_time: {into: ingest}\n");
    const char *got = stages(p, LINE("a=1&b=2"), 0);
    ck_assert_ptr_nonnull(strstr(got, "{\"a\":\"1\",\"ingest\":\"2026-"));
    ck_assert_int_eq(count_of(got, "\"ingest\":"), 1);
    pixel_pipeline_free(p);
}
END_TEST

/* Parts of a plain URL are copied without a check, at every length. */
START_TEST(url_parts_of_every_length)
{
    pixel_pipeline *p = load_ok(
        PIPE_HEAD "fields: {page.url: query.url}\nenrich: [{url: {from: page.url, into: page}}]\n");
    for (int len = 0; len < 90; len++) {
        char path[100], line[300], want[600];
        for (int i = 0; i < len; i++) {
            path[i] = (char)('a' + i % 26);
        }
        path[len] = '\0';
        snprintf(line, sizeof(line), LINE("url=http://h/%s"), path);
        snprintf(want, sizeof(want),
                 "{\"page\":{\"url\":\"http://h/%s\",\"scheme\":\"http\",\"host\":\"h\","
                 "\"path\":\"/%s\"}}",
                 path, path);
        ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
        ck_assert_str_eq(output(ctx, p), want);
    }
    pixel_pipeline_free(p);
}
END_TEST

/* The parts go into the map stage's object without a search while nothing
 * else can have named a member like one: enriched twice, or with the object
 * changed from outside between the stages, the target still gets one member
 * per part. */
START_TEST(url_parts_are_set_once)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {page.url: query.url, page.r: query.r}\n"
                                          "enrich: [{url: {from: page.url, into: page}}]\n");
    const char *line = LINE("r=1&url=https%3A%2F%2Fa.b%2Fp%3Futm_source%3Dx%23f");
    for (int edit = 0; edit < 4; edit++) {
        pixel_error err;
        pixel_error_clear(&err);
        ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(line, strlen(line)), strlen(line), NULL, &err), 0);
        ck_assert_int_eq(pixel_map(p, ctx, NULL, &err), 0);
        pixel_value *ev = pixel_ctx_event(ctx);
        pixel_value *page = pixel_value_at(ev, "page");
        if (edit == 1) {
            ck_assert_int_eq(pixel_object_set(ctx, page, "host", pixel_value_new_int(ctx, 1)), 0);
        } else if (edit == 2) {
            ck_assert_int_eq(
                pixel_module_object_append(page, "path", 4, pixel_value_new_int(ctx, 2)), 0);
        }
        ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
        if (edit == 3) {
            ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
        }
        const char *text = pixel_value_dump(ctx, ev, NULL);
        ck_assert_msg(strstr(text, "\"scheme\":\"https\",") || strstr(text, "\"scheme\":\"https\"}"),
                      "%s", text);
        const char *parts[] = {"\"scheme\"", "\"host\"", "\"path\"", "\"query\"",
                               "\"campaign\"", "\"fragment\"", "\"url\""};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            ck_assert_msg(count_of(text, parts[i]) == 1, "edit %d: %s", edit, text);
        }
        ck_assert_str_eq(str_at("page.host"), "a.b");
        ck_assert_str_eq(str_at("page.path"), "/p");
    }
    pixel_pipeline_free(p);
}
END_TEST

/* The built-ins take the objects the map stage made without a walk from the
 * root; an object replaced or removed between the stages, or by an earlier
 * built-in, is looked up instead. */
START_TEST(mapped_objects_follow_changes)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {client.ip: query.ip, page.url: query.u}\n"
                                          "enrich:\n  - anonymize_ip: {field: client.ip}\n"
                                          "  - url: {from: page.url, into: page}\n");
    const char *line = LINE("ip=203.0.113.77&u=http%3A%2F%2Fh%2Fp");
    pixel_error err;
    pixel_error_clear(&err);
    for (int edit = 0; edit < 4; edit++) {
        ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(line, strlen(line)), strlen(line), NULL, &err), 0);
        ck_assert_int_eq(pixel_map(p, ctx, NULL, &err), 0);
        pixel_value *ev = pixel_ctx_event(ctx);
        const char *want = "{\"client\":{\"ip\":\"203.0.113.0\"},\"page\":{\"url\":\"http://h/p\","
                           "\"scheme\":\"http\",\"host\":\"h\",\"path\":\"/p\"}}";
        if (edit == 1) { /* new objects in place of the mapped ones */
            pixel_value *c = pixel_value_new_object(ctx), *pg = pixel_value_new_object(ctx);
            ck_assert_int_eq(
                pixel_object_set(ctx, c, "ip", pixel_value_new_string(ctx, "198.51.100.9", 12)), 0);
            ck_assert_int_eq(
                pixel_object_set(ctx, pg, "url", pixel_value_new_string(ctx, "https://x/y", 11)),
                0);
            ck_assert_int_eq(pixel_object_set(ctx, ev, "client", c), 0);
            ck_assert_int_eq(pixel_object_set(ctx, ev, "page", pg), 0);
            want = "{\"client\":{\"ip\":\"198.51.100.0\"},\"page\":{\"url\":\"https://x/y\","
                   "\"scheme\":\"https\",\"host\":\"x\",\"path\":\"/y\"}}";
        } else if (edit == 2) {
            ck_assert_int_eq(pixel_object_remove(ev, "client"), 1);
            ck_assert_int_eq(pixel_value_remove_at(ev, "page.url"), 1);
            want = "{\"page\":{}}";
        } else if (edit == 3) {
            ck_assert_int_eq(pixel_value_set_at(ctx, ev, "client.ip",
                                                pixel_value_new_string(ctx, "192.0.2.200", 11)),
                             0);
            want = "{\"client\":{\"ip\":\"192.0.2.0\"},\"page\":{\"url\":\"http://h/p\","
                   "\"scheme\":\"http\",\"host\":\"h\",\"path\":\"/p\"}}";
        }
        ck_assert_int_eq(pixel_enrich(p, ctx, NULL, &err), 0);
        ck_assert_str_eq(pixel_value_dump(ctx, ev, NULL), want);
    }
    pixel_pipeline_free(p);

    /* an earlier built-in writes over the mapped object */
    p = load_ok(PIPE_HEAD "fields: {client.ip: query.ip}\nenrich:\n"
                          "  - pipeline: {into: client}\n  - anonymize_ip: {field: client.ip}\n");
    ck_assert_int_eq(run(p, ctx, LINE("ip=203.0.113.77")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"client\":{\"name\":\"t\",\"version\":\"1\"}}");
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(ingest_time_and_pipeline_info)
{
    pixel_pipeline *p = load_ok(
        PIPE_HEAD
        "fields: {a: query.a}\nenrich:\n  - ingest_time: {into: meta.ingest}\n  - pipeline:\n");
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p),
                     "{\"a\":\"1\",\"meta\":{\"ingest\":\"2026-11-26T00:00:00.123Z\"},"
                     "\"pipeline\":{\"name\":\"t\",\"version\":\"1\"}}");
    pixel_pipeline_free(p);
}
END_TEST

/* The pipeline object is a copy of one laid out at load: a change to it
 * through the public setters shows in the output, and the next line gets
 * it as it was. */
START_TEST(pipeline_info_is_a_fresh_copy_per_line)
{
    pixel_pipeline *p =
        load_ok(PIPE_HEAD "fields: {a: query.a}\nenrich:\n  - pipeline: {into: meta.p}\n");
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
        ck_assert_str_eq(output(ctx, p),
                         "{\"a\":\"1\",\"meta\":{\"p\":{\"name\":\"t\",\"version\":\"1\"}}}");
        pixel_value *o = pixel_value_at(pixel_ctx_event(ctx), "meta.p");
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(pixel_object_set(ctx, o, "version", pixel_value_new_string(ctx, "2\"", 2)),
                         0);
        ck_assert_str_eq(output(ctx, p),
                         "{\"a\":\"1\",\"meta\":{\"p\":{\"name\":\"t\",\"version\":\"2\\\"\"}}}");
        ck_assert_int_eq(pixel_object_remove(o, "name"), 1);
        ck_assert_str_eq(output(ctx, p), "{\"a\":\"1\",\"meta\":{\"p\":{\"version\":\"2\\\"\"}}}");
    }
    pixel_pipeline_free(p);
}
END_TEST

/* The ingest time follows the clock line by line: within a minute of the
 * last one (forward, backward, at its edges), across minutes, days and
 * years, and before 1970, the text is what gmtime gives. */
START_TEST(ingest_time_follows_the_clock)
{
    static const int64_t steps[] = {0,      1,       59876,   -1,     -59999, 60000,   1,
                                    -1000,  86400000, 59999,  -60001, 31 * 86400000LL,
                                    1,      -120000, 0,       7};
    pixel_pipeline *p =
        load_ok(PIPE_HEAD "fields: {a: query.a}\nenrich:\n  - ingest_time: {into: t}\n");
    for (int start = 0; start < 3; start++) {
        int64_t ms = start == 0 ? 1795651200123LL : start == 1 ? 1798761599500LL : -86399001LL;
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            ms += steps[i];
            pixel_ctx_set_clock(ctx, ms);
            ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
            int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
            time_t t = (time_t)sec;
            struct tm tm;
            ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
            char want[96];
            snprintf(want, sizeof(want),
                     "{\"a\":\"1\",\"t\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"}",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(ms - sec * 1000));
            ck_assert_msg(strcmp(output(ctx, p), want) == 0, "%lld: %s, not %s", (long long)ms,
                          output(ctx, p), want);
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

static Suite *enrich_suite(void)
{
    Suite *s = suite_create("enrich");
    TCase *tc = tcase_create("builtins");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, event_id_prefers_a_valid_client_uuid);
    tcase_add_test(tc, ingest_time_follows_the_clock);
    tcase_add_test(tc, pipeline_info_is_a_fresh_copy_per_line);
    tcase_add_test(tc, event_id_is_derived_deterministically_otherwise);
    tcase_add_test(tc, ip_addresses_are_anonymized_by_prefix);
    tcase_add_test(tc, ipv4_anonymization_matches_libc);
    tcase_add_test(tc, ipv6_anonymization_matches_libc);
    tcase_add_test(tc, urls_are_decomposed_with_campaign_fields);
    tcase_add_test(tc, url_campaign_values_and_empty_paths);
    tcase_add_test(tc, url_parts_replace_members_and_keep_escapes);
    tcase_add_test(tc, new_root_members_are_set_once);
    tcase_add_test(tc, pipeline_name_and_version_are_escaped_when_needed);
    tcase_add_test(tc, url_parts_of_every_length);
    tcase_add_test(tc, url_parts_are_set_once);
    tcase_add_test(tc, mapped_objects_follow_changes);
    tcase_add_test(tc, ingest_time_and_pipeline_info);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(enrich_suite());
}
