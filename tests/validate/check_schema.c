/*
 * Check suite for the schema registry, compiler and validator: load errors
 * name the file, the JSON Pointer and the reason; validation errors carry
 * instance and schema locations; validation allocates nothing.
 * Fixtures are in tests/validate/data/ ($PIXEL_SOURCE_DIR).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/guard_page.h"
#include "pipeline.h"
#include "pixel/pixel.h"
#include "pixel/schema.h"
#include "pixel_private.h"
#include "validate/schema_private.h"

unsigned long pixel_debug_alloc_count(void);

static char data_dir[1024];

static const char *fixture(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    return path;
}

/* Loads and compiles a fixture; returns the status, err filled. */
static int load(const char *name, pixel_schema_registry **reg, const pixel_schema **s,
                pixel_error *err)
{
    pixel_error_clear(err);
    ck_assert_int_eq(pixel_schema_registry_new(reg, 0, err), 0);
    int rc = pixel_schema_registry_add_file(*reg, fixture(name), NULL, err);
    if (rc == 0) {
        rc = pixel_schema_compile(s, *reg, pixel_schema_registry_last_uri(*reg), err);
    }
    return rc;
}

static void expect_load_error(const char *name, const char *pointer, const char *text)
{
    pixel_schema_registry *reg;
    const pixel_schema *s = NULL;
    pixel_error err;
    int rc = load(name, &reg, &s, &err);
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(strstr(err.source, name) != NULL, "source \"%s\" should name %s", err.source,
                  name);
    ck_assert_str_eq(err.pointer, pointer);
    ck_assert_msg(strstr(err.text, text) != NULL, "text \"%s\" should say \"%s\"", err.text, text);
    ck_assert_int_eq(err.stage, PIXEL_STAGE_LOAD);
    pixel_schema_registry_free(reg);
}

START_TEST(compile_rejects_an_unknown_type_name)
{
    expect_load_error("broken-type.json", "/properties/a/type", "not string \"strin\"");
}
END_TEST

/* Keyword errors point at the bad value and quote it (these schemas have no
 * $schema, so no metaschema check comes first). */
START_TEST(compile_errors_point_at_and_quote_the_bad_value)
{
    expect_load_error("broken-type-list.json", "/properties/a/type/1",
                      "a type in \"type\" must be one of null, boolean, integer, number, string, "
                      "array, object, not string \"strnig\"");
    expect_load_error("broken-dependent-required.json", "/dependentRequired/a~1b/1",
                      "\"dependentRequired\" must list strings, not integer 2");
}
END_TEST

START_TEST(compile_rejects_an_unresolvable_ref)
{
    expect_load_error("unresolvable-ref.json", "/properties/a/$ref", "unresolvable $ref");
}
END_TEST

START_TEST(compile_rejects_an_unknown_dollar_schema)
{
    expect_load_error("bad-dollar-schema.json", "/$schema", "unknown $schema");
}
END_TEST

START_TEST(compile_rejects_a_reference_cycle)
{
    expect_load_error("ref-cycle.json", "/$defs/a", "reference cycle");
}
END_TEST

/*
 * The fuzz finding tests/fuzz/corpus-schema/dynref-if-cycle.json: the root re-enters itself
 * on the same instance through if/then and a $dynamicRef to the root's $dynamicAnchor.  With
 * that anchor the only one of its name, the reference is static and the cycle is refused at
 * compile time, at the root.
 */
START_TEST(compile_rejects_a_dynamic_reference_cycle)
{
    expect_load_error("dynref-cycle.json", "", "reference cycle");
}
END_TEST

START_TEST(compile_rejects_an_invalid_regex)
{
    expect_load_error("bad-regex.json", "/properties/a/pattern", "invalid regular expression");
}
END_TEST

START_TEST(compile_rejects_what_the_metaschema_rejects)
{
    expect_load_error("metaschema-violation.json", "/$defs/x/minLength", "minLength");
}
END_TEST

START_TEST(load_reports_json_syntax_with_line)
{
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_lt(load("json-syntax.json", &reg, &s, &err), 0);
    ck_assert(strstr(err.source, "json-syntax.json") != NULL);
    ck_assert_int_gt(err.line, 0);
    pixel_schema_registry_free(reg);
}
END_TEST

typedef struct errs {
    int n;
    char loc[8][128], kw[8][32], msg[8][256], sloc[8][256];
} errs;

static int collect(const pixel_schema_error *e, void *payload)
{
    errs *x = payload;
    if (x->n < 8) {
        snprintf(x->loc[x->n], sizeof(x->loc[0]), "%s", e->instance_location);
        snprintf(x->kw[x->n], sizeof(x->kw[0]), "%s", e->keyword);
        snprintf(x->msg[x->n], sizeof(x->msg[0]), "%s", e->message);
        snprintf(x->sloc[x->n], sizeof(x->sloc[0]), "%s", e->schema_location);
    }
    x->n++;
    return 0;
}

static int validate_text(const pixel_schema *s, const char *json, unsigned flags, errs *out)
{
    pixel_arena a;
    pixel__arena_init(&a);
    pixel_value *v = pixel__json_parse(&a, guard_copy(json, strlen(json)), strlen(json), NULL);
    ck_assert_ptr_nonnull(v);
    memset(out, 0, sizeof(*out));
    int rc = pixel_schema_validate(s, v, flags, collect, out);
    pixel__arena_release(&a);
    return rc;
}

START_TEST(errors_name_instance_keyword_and_schema_locations)
{
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(load("price.json", &reg, &s, &err), 0);
    errs e;
    ck_assert_int_eq(validate_text(s, "{\"price\":\"12a\",\"city\":\"Bostonia\"}", 0, &e), 1);
    ck_assert_int_eq(e.n, 3);
    ck_assert_str_eq(e.loc[0], "/price");
    ck_assert_str_eq(e.kw[0], "type");
    ck_assert_str_eq(e.msg[0], "expected integer, got string \"12a\"");
    ck_assert_str_eq(e.sloc[0], "https://libpixel.test/price.schema.json#/properties/price/type");
    ck_assert_str_eq(e.loc[1], "/city");
    ck_assert_str_eq(e.kw[1], "maxLength");
    ck_assert_str_eq(e.loc[2], "/zip");
    ck_assert_str_eq(e.kw[2], "required");
    ck_assert_int_eq(validate_text(s, "{\"price\":\"12a\",\"city\":\"Bostonia\"}",
                                   PIXEL_SCHEMA_FIRST_ERROR, &e),
                     1);
    ck_assert_int_eq(e.n, 1);
    pixel_schema_registry_free(reg);
}
END_TEST

START_TEST(multiple_of_decimals_is_exact_and_lengths_count_code_points)
{
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(load("price.json", &reg, &s, &err), 0);
    errs e;
    ck_assert_int_eq(validate_text(s, "{\"price\":1,\"zip\":\"02116\",\"rate\":0.0075}", 0, &e), 0);
    ck_assert_int_eq(validate_text(s, "{\"price\":1,\"zip\":\"02116\",\"rate\":0.00751}", 0, &e), 1);
    ck_assert_str_eq(e.kw[0], "multipleOf");
    /* four code points, eight bytes */
    ck_assert_int_eq(validate_text(s, "{\"price\":1,\"zip\":\"02116\",\"city\":\"\xc3\xa3\xc3\xa3\xc3\xa3\xc3\xa3\"}", 0, &e), 0);
    pixel_schema_registry_free(reg);
}
END_TEST

START_TEST(validation_allocates_nothing)
{
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(load("price.json", &reg, &s, &err), 0);
    pixel_arena a;
    pixel__arena_init(&a);
    const char *good = "{\"price\":1,\"zip\":\"02116\",\"rate\":0.0075,\"city\":\"Bos\"}";
    const char *bad = "{\"price\":\"x\",\"zip\":\"0211\",\"rate\":0.00751}";
    pixel_value *g = pixel__json_parse(&a, guard_copy(good, strlen(good)), strlen(good), NULL);
    pixel_value *b = pixel__json_parse(&a, guard_copy(bad, strlen(bad)), strlen(bad), NULL);
    unsigned long before = pixel_debug_alloc_count();
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(pixel_schema_validate(s, g, PIXEL_SCHEMA_ASSERT_FORMAT, NULL, NULL), 0);
        ck_assert_int_eq(pixel_schema_validate(s, b, 0, NULL, NULL), 1);
    }
    ck_assert_uint_eq(pixel_debug_alloc_count(), before);
    pixel__arena_release(&a);
    pixel_schema_registry_free(reg);
}
END_TEST

START_TEST(format_checkers_follow_their_rfcs)
{
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26T05:24:46Z", 20), 1);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-02-30T05:24:46Z", 20), 0);
    /* the common shapes have a fast path; what it does not settle goes to the full checker */
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26T05:24:46.123Z", 24), 1);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2024-02-29T05:24:46Z", 20), 1);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2023-02-29T05:24:46Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-04-31T05:24:46.000Z", 24), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-12-31T23:59:60Z", 20), 1);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-12-31T22:59:60Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26T24:00:00Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26T05:60:00Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-13-26T05:24:46Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26t05:24:46z", 20), 1);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26T05:24:46.1234", 24), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026-11-26T05:24:4\xd9Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("date-time", "2026/11-26T05:24:46Z", 20), 0);
    ck_assert_int_eq(pixel_schema_format_check("ipv6", "2001:db8::", 10), 1);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "203.0.113.09", 12), 0);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "255.255.255.255", 15), 1);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "0.10.100.0", 10), 1);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "256.0.0.1", 9), 0);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "1.2.3.4.", 8), 0);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "1.2.3.1234", 10), 0);
    ck_assert_int_eq(pixel_schema_format_check("ipv4", "00.2.3.4", 8), 0);
    ck_assert_int_eq(pixel_schema_format_check("uuid", "f57bd9ab-f936-4984-a95e-852c4c77b896", 36), 1);
    ck_assert_int_eq(pixel_schema_format_check("uuid", "F57BD9AB-F936-4984-A95E-852C4C77B896", 36), 1);
    ck_assert_int_eq(pixel_schema_format_check("uuid", "f57bd9ab-f936-4984-a95e-852c4c77b89g", 36), 0);
    ck_assert_int_eq(pixel_schema_format_check("uuid", "f57bd9ab-f936-4984-a95e-852c4c77b8:6", 36), 0);
    ck_assert_int_eq(pixel_schema_format_check("uuid", "f57bd9abf-936-4984-a95e-852c4c77b896", 36), 0);
    ck_assert_int_eq(pixel_schema_format_check("uuid", "f57bd9ab-f936-4984-a95e-852c4c77b896-", 37), 0);
    ck_assert_int_eq(pixel_schema_format_check("duration", "P1Y2M3DT4H5M6S", 14), 1);
    ck_assert_int_eq(pixel_schema_format_check("duration", "P1Y3D", 5), 0);
    ck_assert_int_eq(pixel_schema_format_check("no-such-format", "x", 1), -1);
}
END_TEST

/* ---- the one-pass pattern matcher against PCRE2 ------------------------------------ */

static unsigned long lcg_state = 12345;

static unsigned lcg(unsigned n)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((lcg_state >> 33) % n);
}

/* Subjects: random strings over pieces that matter to the patterns, and one-piece
   edits of strings that match. */
static size_t make_subject(char *out, const char *const *seeds, size_t nseeds)
{
    static const char *const pieces[] = {
        "a", "b", "c", "x", "y", "z", "A", "U", "T", "C", "Z", "e", "f", "0", "1", "2", "9",
        "_", "-", "/", ".", ":", "@", "+", " ", "\n", "\r", "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80",
    };
    size_t n = 0;
    if (lcg(3) == 0 || nseeds == 0) {
        size_t k = lcg(14);
        for (size_t i = 0; i < k; i++) {
            const char *p = pieces[lcg(PIXEL_ARRAY_LEN(pieces))];
            memcpy(out + n, p, strlen(p));
            n += strlen(p);
        }
        return n;
    }
    const char *seed = seeds[lcg((unsigned)nseeds)];
    n = strlen(seed);
    memcpy(out, seed, n);
    if (lcg(4) == 0) {
        return n; /* unchanged */
    }
    /* replace, insert or delete one ASCII character */
    size_t at = n ? lcg((unsigned)n + 1) : 0;
    unsigned op = lcg(3);
    while (at < n && ((unsigned char)out[at] & 0xC0) == 0x80) {
        at++;
    }
    if (op == 0 && at < n && (unsigned char)out[at] < 0x80) {
        out[at] = pieces[lcg(27)][0];
    } else if (op == 1) {
        memmove(out + at + 1, out + at, n - at);
        out[at] = pieces[lcg(27)][0];
        n++;
    } else if (at < n && (unsigned char)out[at] < 0x80) {
        memmove(out + at, out + at + 1, n - at - 1);
        n--;
    }
    return n;
}

START_TEST(one_pass_patterns_agree_with_pcre2)
{
    static const struct {
        const char *pattern;
        bool one_pass;
        const char *seeds[3];
    } cases[] = {
        {"^[0-9a-f]{32}$", true, {"0123456789abcdef0123456789abcdef"}},
        {"^[A-Za-z0-9_-]{8,64}$", true, {"abc_-XYZ0"}},
        {"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$", true, {"1920x1080", "390x844"}},
        {"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", true, {"en-US", "zh-Hant-TW", "fil"}},
        {"^(UTC|[A-Za-z]+(/[A-Za-z0-9_+-]+){1,2})$", true, {"UTC", "America/New_York"}},
        {"^(foo|foobar|fo+)$", true, {"foobar", "fooo"}},
        {"^x(a|ab|abc)", true, {"xab", "xabc"}},
        {"^(a|ab)c$", false, {"abc"}},
        {"^https?://", true, {"https://x", "http://"}},
        {"^[Hh][Tt]{2}[Pp][Ss]?://[a-z]", true, {"HtTps://example", "http://x", "hTTp:/"}},
        {"^[@`]x[Zz]{3}[0-9]yyyyyyy", true, {"@xzZz1yyyyyyyy", "`xZZZ2yyyyyyy", "@xzzz"}},
        {"^a*", true, {"", "baa"}},
        {"^(ab|cd){2,3}$", true, {"abcd", "cdabab", "ab"}},
        {"^[a-c]{0,2}(x[0-9]{1,3})?$", true, {"", "abx12", "cx1234"}},
        {"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$",
         true, {"2026-11-26T00:00:00Z", "2026-11-26T00:00:00.123+01:00"}},
        {"^(ab|cd)+e?$", true, {"abcdab", "cde"}},
        {"^.*$", true, {"a\xc3\xa9z", ""}},
        {"^a.c$", true, {"abc", "a\xe2\x80\xa8"
                                "c"}},
        {"^[^/]+/[^/]+$", true, {"a/b", "\xc3\xa9/x"}},
        {"^\\d{3}-\\D+$", true, {"012-ab", "999-\xc3\xa9"}},
        {"^\\W\\w$", true, {" a", "\xc3\xa9" "b"}},
        {"^(a|b|)c$", true, {"ac", "c"}},
        {"^x(?:y|z){2,4}$", true, {"xyz", "xzzzz"}},
        {"^[\\w.-]+@[\\w-]+(\\.[\\w-]+)+$", true, {"a.b@c.d", "x@y-z.e.f"}},
        {"^a{2}b{0,3}c+?$", true, {"aabbc", "aac"}},
        {"^\\u0041\\x42[\\-\\]]$", true, {"AB-", "AB]"}},
        {"^[^]x[]?$", true, {"ax", "\xc3\xa9x"}},
        {"^$", true, {""}},
        {"^[a-z]+", true, {"abc1", "x"}},
        {"^a(bc)?d$", true, {"abcd", "ad"}},
        {"^(?:\\d[-a]){0,2}", false, {"1c", "1a2-"}},
        {"^x(ab|)", true, {"xac", "xab"}},
        {"^(a|ab)$", true, {"ab"}},
        {"^a*ab$", false, {"aab"}},
        {"^(a?)+$", false, {"aa"}},
        {"a+", false, {"xa"}},
        {"^\\s+$", false, {" "}},
        {"^(?=a)", false, {"a"}},
        {"^\\bfoo", false, {"foo"}},
        {"^\xc3\xa9$", false, {"\xc3\xa9"}},
        {"^[\xc3\xa9]$", false, {"\xc3\xa9"}},
        {"^(a)\\1$", false, {"aa"}},
    };
    pixel_arena a;
    pixel__arena_init(&a);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    ck_assert_ptr_nonnull(md);
    /* twice: as this CPU runs them (small DFAs by byte shuffles where it has SSSE3),
       then with the table steps that every CPU runs */
    unsigned shuffled = 0;
    for (int portable = 0; portable < 2; portable++) {
        pixel__regex_portable = portable;
        for (size_t c = 0; c < PIXEL_ARRAY_LEN(cases); c++) {
            sregex re;
            char why[200];
            const char *pat = cases[c].pattern;
            ck_assert_msg(pixel__regex_compile(&re, &a, pat, strlen(pat), why, sizeof(why)) == 0,
                          "%s: %s", pat, why);
            ck_assert_msg(pixel__regex_is_simple(&re) == cases[c].one_pass, "%s: one-pass %d", pat,
                          pixel__regex_is_simple(&re));
            size_t nseeds = 0;
            while (nseeds < 3 && cases[c].seeds[nseeds]) {
                nseeds++;
            }
            unsigned matched = 0;
            for (int i = 0; i < 4000; i++) {
                char subj[256];
                size_t n = make_subject(subj, cases[c].seeds, nseeds);
                int want = pixel__regex_search_pcre2(&re, md, subj, n);
                int got = pixel__regex_search(&re, md, guard_copy(subj, n), n);
                ck_assert_msg(got == want, "%s on \"%.*s\": %d, PCRE2 says %d", pat, (int)n, subj,
                              got, want);
                matched += want == 1;
            }
            ck_assert_msg(matched > 0 || !cases[c].one_pass, "%s: no subject matched", pat);
            shuffled += pixel__regex_shuffled(&re);
            pcre2_code_free(re.code);
        }
    }
    pixel__regex_portable = false;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("ssse3")) {
        ck_assert_uint_gt(shuffled, 5);
    }
#endif
    /* a NUL in a pattern is a character like any other, for both matchers */
    sregex nul;
    char why[200];
    ck_assert_int_eq(pixel__regex_compile(&nul, &a, "^a\0b$", 5, why, sizeof(why)), 0);
    ck_assert(pixel__regex_is_simple(&nul));
    ck_assert_int_eq(pixel__regex_search_pcre2(&nul, md, "a\0b", 3), 1);
    ck_assert_int_eq(pixel__regex_search(&nul, md, "a\0b", 3), 1);
    ck_assert_int_eq(pixel__regex_search_pcre2(&nul, md, "a", 1), 0);
    ck_assert_int_eq(pixel__regex_search(&nul, md, "a", 1), 0);
    pcre2_code_free(nul.code);
    pcre2_match_data_free(md);
    pixel__arena_release(&a);
}
END_TEST

/* The shuffle steps give what the table steps give on every subject of up
 * to five bytes over the patterns' letters: whole-subject and prefix
 * patterns, a start state that accepts (and the empty subject), prefixes
 * accepted at the end of a block of eight bytes and past it, the dead
 * state, and a DFA of exactly 16 states (the most a lane holds: shuffled
 * where the CPU has SSSE3) next to one of 17 (never). */
START_TEST(shuffle_steps_agree_with_table_steps)
{
    static const struct {
        const char *pattern;
        int states16; /* 1: 16 states, 0: 17, -1: not checked */
    } cases[] = {
        {"^abcdefghijklmn$", 1}, {"^abcdefghijklmno$", 0}, {"^abcdefghijklmn", 1},
        {"^abcdefghijklmno", 0}, {"^$", -1},  {"^", -1},  {"^(ab)*$", -1},
        {"^[ab]{7}c", -1},   {"^[ab]{8}c", -1}, {"^a{0,7}b$", -1}, {"^(a|b)c{3,12}", -1},
        {"^[a-c]{2,5}x?$", -1},
    };
    static const char letters[] = "abcx";
    pixel_arena a;
    pixel__arena_init(&a);
    for (size_t c = 0; c < PIXEL_ARRAY_LEN(cases); c++) {
        sregex fast, table;
        char why[200];
        const char *pat = cases[c].pattern;
        pixel__regex_portable = false;
        ck_assert_int_eq(pixel__regex_compile(&fast, &a, pat, strlen(pat), why, sizeof(why)), 0);
        pixel__regex_portable = true;
        ck_assert_int_eq(pixel__regex_compile(&table, &a, pat, strlen(pat), why, sizeof(why)), 0);
        pixel__regex_portable = false;
        ck_assert_msg(fast.prog && table.prog, "%s: not one-pass", pat);
        ck_assert(!pixel__regex_shuffled(&table));
#if defined(__x86_64__)
        if (cases[c].states16 >= 0 && __builtin_cpu_supports("ssse3")) {
            ck_assert_msg(pixel__regex_shuffled(&fast) == (cases[c].states16 == 1), "%s", pat);
        }
#endif
        /* long subjects too: the pattern's own letters repeated */
        char subj[40];
        for (size_t len = 0, total = 1; len <= 5; len++, total *= 4) {
            for (size_t code = 0; code < total; code++) {
                for (size_t k = 0, x = code; k < len; k++, x /= 4) {
                    subj[k] = letters[x % 4];
                }
                ck_assert_msg(pixel__regex_onepass(fast.prog, subj, len) ==
                                  pixel__regex_onepass(table.prog, subj, len),
                              "%s on \"%.*s\"", pat, (int)len, subj);
            }
        }
        for (size_t len = 0; len < sizeof(subj); len++) {
            for (size_t off = 0; off < 3; off++) {
                for (size_t k = 0; k < len; k++) {
                    subj[k] = pat[1 + (k + off) % (strlen(pat) - 1 ? strlen(pat) - 1 : 1)];
                }
                ck_assert_msg(pixel__regex_onepass(fast.prog, subj, len) ==
                                  pixel__regex_onepass(table.prog, subj, len),
                              "%s on \"%.*s\"", pat, (int)len, subj);
            }
        }
        pcre2_code_free(fast.code);
        pcre2_code_free(table.code);
    }
    pixel__arena_release(&a);
}
END_TEST

START_TEST(nibble_runs_agree_with_table_runs)
{
    /* one set repeated to the end: 16 bytes a step by the nibble tables (ASCII sets, CPUs
       with the byte shuffle), subjects of 4 to 15 bytes by overlapping loads */
    static const char *const pats[] = {
        "^[A-Za-z0-9_-]{8,64}$", "^[0-9a-f]{32}$", "^[0-9]{5}$", "^[A-Z]{2}$",
        "^[a-z0-9_]{1,32}$",     "^[ -~]*$",       "^a+$",       "^[^a]*$",
        "^[\\t !#-~]{0,40}$",    "^.{3,}$",
    };
    /* members, their neighbours, and bytes whose high nibble is 8 or more */
    static const unsigned char bytes[] = {'a', 'f', 'g', 'z', 'A', 'Z', '0', '9', '_', '-', '/',
                                          ':', '@', '[', '`', '{', ' ', '~', '\t', 0x7f, 0x00,
                                          0x80, 0x8a, 0xc3, 0xa9, 0xe2, 0xff, '"', '\\'};
    pixel_arena a;
    pixel__arena_init(&a);
    uint32_t seed = 12345;
    for (size_t c = 0; c < PIXEL_ARRAY_LEN(pats); c++) {
        sregex fast, table;
        char why[200];
        const char *pat = pats[c];
        pixel__regex_portable = false;
        ck_assert_int_eq(pixel__regex_compile(&fast, &a, pat, strlen(pat), why, sizeof(why)), 0);
        pixel__regex_portable = true;
        ck_assert_int_eq(pixel__regex_compile(&table, &a, pat, strlen(pat), why, sizeof(why)), 0);
        pixel__regex_portable = false;
        ck_assert_msg(fast.prog && table.prog, "%s: not one-pass", pat);
        char subj[48];
        for (size_t len = 0; len <= 40; len++) {
            for (int round = 0; round < 400; round++) {
                /* a subject of one kind of byte, then one byte changed, or bytes at random */
                unsigned char fill = bytes[round % PIXEL_ARRAY_LEN(bytes)];
                for (size_t k = 0; k < len; k++) {
                    seed = seed * 1103515245u + 12345u;
                    unsigned char any = bytes[(seed >> 16) % PIXEL_ARRAY_LEN(bytes)];
                    subj[k] = (char)(round < 200 ? fill : any);
                }
                if (round < 200 && len) {
                    seed = seed * 1103515245u + 12345u;
                    subj[(seed >> 16) % len] = (char)bytes[(seed >> 8) % PIXEL_ARRAY_LEN(bytes)];
                }
                int want = table.run(table.prog, subj, len);
                ck_assert_int_eq(want, pixel__regex_onepass(table.prog, subj, len));
                /* at the end of mapped memory: a load past the subject faults */
                ck_assert_msg(fast.run(fast.prog, guard_copy(subj, len), len) == want, "%s on \"%.*s\" (%zu)", pat,
                              (int)len, subj, len);
            }
        }
        pcre2_code_free(fast.code);
        pcre2_code_free(table.code);
    }
    pixel__arena_release(&a);
}
END_TEST

/* Both passes agree, and give the verdict expected, on every instance. */
/* Validates text against itself (s compiled from it) under flags: the status, errs filled. */
static int validate_cycle(const pixel_schema *s, const char *json, unsigned flags, errs *out,
                          bool with_cb)
{
    pixel_arena a;
    pixel__arena_init(&a);
    pixel_value *v = pixel__json_parse(&a, guard_copy(json, strlen(json)), strlen(json), NULL);
    ck_assert_ptr_nonnull(v);
    memset(out, 0, sizeof(*out));
    int rc = pixel_schema_validate(s, v, flags, with_cb ? collect : NULL, out);
    pixel__arena_release(&a);
    return rc;
}

/* Every way to evaluate: with and without messages, the first error only, no boolean pass. */
static void expect_cycle_refused(const pixel_schema *s, const char *instance, const char *where)
{
    static const unsigned flags[] = {0, PIXEL_SCHEMA_FIRST_ERROR, SFLAG_FULL_ONLY,
                                     PIXEL_SCHEMA_ASSERT_FORMAT};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        errs e;
        ck_assert_int_eq(validate_cycle(s, instance, flags[i], &e, false), PIXEL_ESCHEMA);
        ck_assert_int_eq(e.n, 0);
        ck_assert_int_eq(validate_cycle(s, instance, flags[i], &e, true), PIXEL_ESCHEMA);
        ck_assert_int_eq(e.n, 1);
        ck_assert_msg(strstr(e.msg[0], "would never finish") != NULL, "message: %s", e.msg[0]);
        ck_assert_msg(strstr(e.sloc[0], where) != NULL, "schema location %s should hold %s",
                      e.sloc[0], where);
    }
}

/*
 * A $dynamicRef whose target depends on the dynamic scope is left to the evaluator: re-entering
 * the same node on the same instance (with nothing new in the scope) fails the validation with
 * PIXEL_ESCHEMA and one message naming the node, in every evaluation path, instead of running
 * for an exponential time.
 */
START_TEST(evaluation_refuses_a_dynamic_reference_cycle)
{
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    pixel_error_clear(&err);
    char *fuzz = NULL;
    size_t fuzz_len = 0;
    FILE *f = fopen(fixture("dynref-cycle.json"), "rb");
    ck_assert_ptr_nonnull(f);
    char buf[4096];
    fuzz_len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[fuzz_len] = 0;
    fuzz = buf;

    /* The fuzz input again, with a second "x" anchor in the registry: no longer static. */
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    static const char other[] = "{\"$id\":\"urn:other\",\"$dynamicAnchor\":\"x\"}";
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, NULL, other, strlen(other), &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, "urn:fuzz", fuzz, fuzz_len, &err), 0);
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:fuzz", &err) == 0, "%s", err.text);
    expect_cycle_refused(s, fuzz, "urn:fuzz#");
    expect_cycle_refused(s, "{}", "urn:fuzz#");
    /* an instance the cycle never reaches (the if fails on it) stays valid */
    errs e;
    ck_assert_int_eq(validate_cycle(s, "[]", 0, &e, true), 0);
    pixel_schema_registry_free(reg);

    /* Two resources: a -> b -> $dynamicRef "#x" -> a (the outermost "x"), and again. */
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    static const char a[] = "{\"$id\":\"urn:a\",\"$dynamicAnchor\":\"x\",\"$ref\":\"urn:b\"}";
    static const char b[] = "{\"$id\":\"urn:b\",\"$dynamicAnchor\":\"x\","
                            "\"allOf\":[{\"$dynamicRef\":\"#x\"}]}";
    /* the same loop reached from anyOf (a quiet evaluation) and through unevaluatedProperties */
    static const char c[] = "{\"$id\":\"urn:c\",\"anyOf\":[{\"type\":\"string\"},{\"$ref\":\"urn:a\"}],"
                            "\"unevaluatedProperties\":false}";
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, NULL, a, strlen(a), &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, NULL, b, strlen(b), &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, NULL, c, strlen(c), &err), 0);
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:a", &err) == 0, "%s", err.text);
    expect_cycle_refused(s, "{\"k\":[1,2]}", "urn:");
    expect_cycle_refused(s, "7", "urn:");
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:c", &err) == 0, "%s", err.text);
    expect_cycle_refused(s, "{\"k\":1}", "urn:");
    ck_assert_int_eq(validate_cycle(s, "\"str\"", 0, &e, true), 0);
    pixel_schema_registry_free(reg);
}
END_TEST

/*
 * An instance nested past the evaluator's depth limit under a schema with two branches per
 * level: the failure unwinds at once (it used to retry every branch on the way up, 2^depth).
 */
START_TEST(depth_limit_unwinds_without_retrying_branches)
{
    static const char *const schemas[] = {
        "{\"anyOf\":[{\"allOf\":[{\"items\":{\"$ref\":\"#\"}}]},"
        "{\"allOf\":[{\"items\":{\"$ref\":\"#\"}}]}]}",
        "{\"$dynamicAnchor\":\"n\",\"anyOf\":[{\"items\":{\"$dynamicRef\":\"#n\"}},"
        "{\"items\":{\"$dynamicRef\":\"#n\"}}]}",
    };
    char deep[2 * 250 + 1];
    for (int i = 0; i < 250; i++) {
        deep[i] = '[';
        deep[250 + i] = ']';
    }
    deep[500] = 0;
    for (size_t k = 0; k < 2; k++) {
        pixel_schema_registry *reg;
        const pixel_schema *s;
        pixel_error err;
        pixel_error_clear(&err);
        ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
        ck_assert_int_eq(
            pixel_schema_registry_add_json(reg, "urn:d", schemas[k], strlen(schemas[k]), &err), 0);
        ck_assert_msg(pixel_schema_compile(&s, reg, "urn:d", &err) == 0, "%s", err.text);
        errs e;
        ck_assert_int_eq(validate_cycle(s, deep, 0, &e, false), PIXEL_ERROR);
        ck_assert_int_eq(validate_cycle(s, deep, 0, &e, true), PIXEL_ERROR);
        ck_assert_int_eq(validate_cycle(s, deep, SFLAG_FULL_ONLY, &e, true), PIXEL_ERROR);
        ck_assert_int_eq(validate_cycle(s, "[[[]]]", 0, &e, true), 0);
        pixel_schema_registry_free(reg);
    }
}
END_TEST

/* schema compiled as "urn:t" in a registry of its own (*reg, for the caller to free). */
static const pixel_schema *compile_urn_t(const char *schema, pixel_schema_registry **reg)
{
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(pixel_schema_registry_new(reg, 0, &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(*reg, "urn:t", schema, strlen(schema), &err),
                     0);
    ck_assert_int_eq(pixel_schema_compile(&s, *reg, "urn:t", &err), 0);
    return s;
}

/* The object keyword of a compiled schema's root (the last one). */
static const sobject *root_object(const pixel_schema *s)
{
    const sobject *o = NULL;
    for (size_t k = 0; k < s->root->nops; k++) {
        if (s->root->ops[k].kind == OP_OBJECT) {
            o = s->root->ops[k].u.obj;
        }
    }
    ck_assert_ptr_nonnull(o);
    return o;
}

static void expect_verdicts(const char *schema, const char *const *instances, const int *valid,
                            size_t n, bool ifgroup)
{
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, "urn:t", schema, strlen(schema), &err), 0);
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:t", &err) == 0, "%s: %s", schema, err.text);
    ck_assert(s->root->quick);
    if (ifgroup) {
        ck_assert(s->root->nops == 1 && s->root->ops[0].u.list.ifs != NULL);
    }
    pixel_arena a;
    pixel__arena_init(&a);
    for (size_t i = 0; i < n; i++) {
        pixel_value *v = pixel__json_parse(&a, guard_copy(instances[i], strlen(instances[i])), strlen(instances[i]), NULL);
        ck_assert_ptr_nonnull(v);
        int want = valid[i] ? 0 : 1;
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_QUICK_ONLY, NULL, NULL) == want,
                      "boolean pass on %s", instances[i]);
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_FULL_ONLY, NULL, NULL) == want,
                      "full evaluation on %s", instances[i]);
    }
    pixel__arena_release(&a);
    pixel_schema_registry_free(reg);
}

/* Unbounded repetitions (+, *, {n,}) have no limit: subjects past 65,535
 * bytes (the stored "unbounded") match as short ones do, in every matcher;
 * bounded ones keep their bound. */
START_TEST(unbounded_repetitions_match_subjects_past_64k)
{
    static const struct {
        const char *pattern, *unit, *tail;
        size_t n;
        int valid;
    } cases[] = {
        {"^[a-z]+$", "a", "", 70000, 1},      {"^[a-z]*$", "a", "", 70000, 1},
        {"^[a-z]{3,}$", "a", "", 70000, 1},   {"^[a-z]+$", "a", "1", 70000, 0},
        {"^.+$", "\\u00e9", "", 70000, 1},   {"^[a-z]+b$", "a", "b", 70000, 1},
        {"^x[a-z]+$", "a", "", 70000, 1},     {"^[a-z]+", "a", "", 70000, 1},
        {"^[a-z]{1,1000}$", "a", "", 1000, 1}, {"^[a-z]{1,1000}$", "a", "", 1001, 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char schema[128];
        snprintf(schema, sizeof(schema), "{\"type\": \"string\", \"pattern\": \"%s\"}",
                 cases[c].pattern);
        size_t ul = strlen(cases[c].unit), tl = strlen(cases[c].tail);
        char *json = malloc(cases[c].n * ul + tl + 8);
        ck_assert_ptr_nonnull(json);
        size_t k = 0;
        json[k++] = '"';
        if (cases[c].pattern[1] == 'x') {
            json[k++] = 'x';
        }
        for (size_t i = 0; i < cases[c].n; i++, k += ul) {
            memcpy(json + k, cases[c].unit, ul);
        }
        memcpy(json + k, cases[c].tail, tl);
        k += tl;
        json[k++] = '"';
        json[k] = '\0';
        const char *instances[] = {json};
        const int valid[] = {cases[c].valid};
        expect_verdicts(schema, instances, valid, 1, false);
        free(json);
    }
}
END_TEST

START_TEST(if_groups_agree_with_the_full_evaluation)
{
    /* four conditions on "t": an enum, a const, one without "required", one with else */
    const char *schema =
        "{\"allOf\": ["
        "{\"if\": {\"required\": [\"t\"], \"properties\": {\"t\": {\"enum\": [\"a\", \"b\", \"c\"]}}},"
        " \"then\": {\"required\": [\"x\"]}},"
        "{\"if\": {\"required\": [\"t\"], \"properties\": {\"t\": {\"const\": \"b\"}}},"
        " \"then\": {\"required\": [\"y\"]}},"
        "{\"if\": {\"properties\": {\"t\": {\"const\": \"d\"}}}, \"then\": {\"required\": [\"z\"]}},"
        "{\"if\": {\"required\": [\"t\"], \"properties\": {\"t\": {\"const\": \"e\"}}},"
        " \"then\": {\"required\": [\"w\"]}, \"else\": {\"maxProperties\": 3}}]}";
    static const char *const inst[] = {
        "{\"t\": \"a\", \"x\": 1}",       "{\"t\": \"a\"}",
        "{\"t\": \"b\", \"x\": 1, \"y\": 1}", "{\"t\": \"b\", \"x\": 1}",
        "{\"t\": \"d\", \"z\": 1}",       "{\"t\": \"d\"}",
        "{\"z\": 1}",                     "{}",
        "{\"t\": \"e\", \"w\": 1, \"a\": 1, \"b\": 1, \"c\": 1}", "{\"t\": \"e\"}",
        "{\"t\": \"f\", \"a\": 1, \"b\": 1}", "{\"t\": \"f\", \"a\": 1, \"b\": 1, \"c\": 1}",
        "{\"t\": 5}",                     "\"not an object\"",
    };
    static const int valid[] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1};
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), true);
}
END_TEST

/* A member named by the pipeline's key frames (PIXEL_VALUE_FRAMED_KEY), as the map stage
   makes them: three names of two bytes, framed like map.c does, and zeros past them. */
static const char test_frames[32] = "\x02,\"ab\":\x02,\"cd\":\x02,\"ef\":";
#define FRAME_AB (test_frames + 3)
#define FRAME_CD (test_frames + 10)
#define FRAME_EF (test_frames + 17)

/* {k1: v1, k2: v2} (or one member when k2 is NULL) in vals[0..3), keys framed. */
static pixel_value *framed_object(pixel_value *vals, const char *k1, const pixel_value *v1,
                                  const char *k2, const pixel_value *v2)
{
    pixel_value *o = &vals[0], *a = &vals[1], *b = &vals[2];
    *a = *v1;
    a->key = k1;
    a->klen = 2;
    a->flags |= PIXEL_VALUE_FRAMED_KEY | PIXEL_VALUE_PLAIN_KEY;
    a->next = NULL;
    *o = (pixel_value){.type = PIXEL_TYPE_OBJECT};
    o->u.list.head = o->u.list.tail = a;
    o->u.list.count = 1;
    if (k2) {
        *b = *v2;
        b->key = k2;
        b->klen = 2;
        b->flags |= PIXEL_VALUE_FRAMED_KEY | PIXEL_VALUE_PLAIN_KEY;
        b->next = NULL;
        a->next = o->u.list.tail = b;
        o->u.list.count = 2;
    }
    return o;
}

static int framed_verdict(const pixel_schema *s, const pixel_value *v)
{
    int quick = pixel__schema_validate_framed(s, v, SFLAG_QUICK_ONLY, NULL, NULL, test_frames,
                                              sizeof(test_frames));
    int full = pixel_schema_validate(s, v, SFLAG_FULL_ONLY, NULL, NULL);
    ck_assert_int_eq(quick, full);
    return quick;
}

START_TEST(framed_member_names_match_only_their_own_property)
{
    const char *schema = "{\"type\": \"object\", \"required\": [\"ab\"],"
                         " \"properties\": {\"ab\": {\"type\": \"string\"},"
                         " \"cd\": {\"type\": \"integer\"}}, \"additionalProperties\": false}";
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, "urn:f", schema, strlen(schema), &err), 0);
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:f", &err) == 0, "%s", err.text);
    ck_assert(s->root->quick && s->root->nops == 2 && s->root->ops[1].kind == OP_OBJECT);
    const sobject *ob = s->root->ops[1].u.obj;
    ck_assert(!ob->lookup && ob->nprops == 2 && ob->props[0].klen == 2);
    ck_assert_ptr_eq(ob->props[0].fkey, ob->props[0].key); /* nothing learned yet */

    pixel_value str = {.type = PIXEL_TYPE_STRING}, num = {.type = PIXEL_TYPE_INT};
    str.u.str.s = "x";
    str.u.str.len = 1;
    num.u.i = 7;
    pixel_value vals[3];
    /* valid: "ab" then "cd", as declared; the framed names are remembered */
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_AB, &str, FRAME_CD, &num)), 0);
    ck_assert_ptr_eq(ob->props[0].fkey, FRAME_AB);
    ck_assert_ptr_eq(ob->props[1].fkey, FRAME_CD);
    /* and the same again through the remembered pointers */
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_AB, &str, FRAME_CD, &num)), 0);
    /* a name of the same length in another frame is not "ab": additionalProperties
       rejects it (and "ab" is then missing) */
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_EF, &str, NULL, NULL)), 1);
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_EF, &str, FRAME_CD, &num)), 1);
    /* the remembered pointer still leads to its own property's schema */
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_AB, &num, NULL, NULL)), 1);
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_AB, &str, FRAME_CD, &str)), 1);
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_AB, &str, NULL, NULL)), 0);
    /* "cd" first: found out of order, still checked as "cd" */
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_CD, &num, FRAME_AB, &str)), 0);
    ck_assert_int_eq(framed_verdict(s, framed_object(vals, FRAME_CD, &str, FRAME_AB, &str)), 1);

    /* a flagged name outside the frames is compared, never remembered */
    pixel_schema_registry *reg2;
    const pixel_schema *s2;
    ck_assert_int_eq(pixel_schema_registry_new(&reg2, 0, &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg2, "urn:f", schema, strlen(schema), &err),
                     0);
    ck_assert_msg(pixel_schema_compile(&s2, reg2, "urn:f", &err) == 0, "%s", err.text);
    const sobject *ob2 = s2->root->ops[1].u.obj;
    char outside[8] = "ab";
    ck_assert_int_eq(framed_verdict(s2, framed_object(vals, outside, &str, NULL, NULL)), 0);
    ck_assert_ptr_eq(ob2->props[0].fkey, ob2->props[0].key);
    /* nor by the public entry point, which knows no frames */
    ck_assert_int_eq(pixel_schema_validate(s2, framed_object(vals, FRAME_AB, &str, NULL, NULL), 0,
                                           NULL, NULL),
                     0);
    ck_assert_ptr_eq(ob2->props[0].fkey, ob2->props[0].key);
    pixel_schema_registry_free(reg2);
    pixel_schema_registry_free(reg);
}
END_TEST

START_TEST(flattened_event_schemas_agree_with_the_full_evaluation)
{
    /* an event schema: its own properties, an envelope through allOf/$ref, closed by
       unevaluatedProperties (the boolean pass walks the members once: sflat) */
    static const char *const env =
        "\"$defs\": {\"env\": {\"type\": \"object\", \"required\": [\"id\", \"t\"],"
        " \"properties\": {\"id\": {\"type\": \"string\"}, \"t\": {\"enum\": [\"a\", \"b\"]},"
        " \"o\": {\"type\": \"object\", \"properties\": {\"k\": {\"type\": \"integer\"}},"
        " \"additionalProperties\": false}, \"n\": {\"type\": \"integer\", \"maximum\": 5}, \"m\": {}}}},"
        " \"allOf\": [{\"$ref\": \"#/$defs/env\"}], \"unevaluatedProperties\": false,";
    static const char *const inst[] = {
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1}",
        "{\"p\": 1, \"t\": \"a\", \"id\": \"x\", \"o\": {\"k\": 2}, \"n\": 5}",
        "{\"id\": \"x\", \"t\": \"b\", \"p\": 1}",         /* own const */
        "{\"id\": \"x\", \"t\": \"c\", \"p\": 1}",         /* the envelope's enum */
        "{\"id\": \"x\", \"t\": \"a\"}",                   /* own required */
        "{\"t\": \"a\", \"p\": 1}",                        /* the envelope's required */
        "{\"id\": \"x\", \"t\": \"a\", \"p\": \"1\"}",     /* own property's type */
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"q\": 1}", /* unevaluated */
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"o\": {\"k\": 2, \"z\": 1}}",
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"n\": 6}",
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"p\": \"s\"}", /* a lookup sees the first */
        "{\"id\": \"x\", \"t\": \"a\", \"p\": \"s\", \"p\": 1}",
        "{\"id\": \"x\", \"t\": \"a\", \"t\": \"b\", \"p\": 1}",
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"r\": 1}", /* only required: unevaluated */
        "[1]",
        "7",
        "{\"id\": \"x\", \"t\": \"a\", \"t\": \"c\", \"p\": 1}", /* a later t: the enum */
        "{\"id\": \"x\", \"t\": \"c\", \"t\": \"a\", \"p\": 1}",
    };
    static const int valid[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
    char schema[2048];
    snprintf(schema, sizeof(schema),
             "{%s \"properties\": {\"t\": {\"const\": \"a\"}, \"p\": {\"type\": \"integer\"}},"
             " \"required\": [\"p\"]}",
             env);
    {
        pixel_schema_registry *reg;
        const pixel_schema *s = compile_urn_t(schema, &reg);
        ck_assert_ptr_nonnull(s->root->flat); /* the shape this test is about */
        pixel_schema_registry_free(reg);
    }
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);
    /* a name the node only requires, and more than a lookup's few properties */
    static const int valid2[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    snprintf(schema, sizeof(schema),
             "{%s \"properties\": {\"t\": {\"const\": \"a\"}, \"p\": {\"type\": \"integer\"},"
             " \"u\": {}, \"v\": {}, \"w\": {}}, \"required\": [\"p\", \"r\"]}",
             env);
    expect_verdicts(schema, inst, valid2, PIXEL_ARRAY_LEN(inst), false);
    static const char *const inst3[] = {
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"r\": 1}",
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"p\": \"s\"}", /* not a lookup: each */
        "{\"id\": \"x\", \"t\": \"a\", \"p\": 1, \"u\": 1, \"v\": 2}",
    };
    static const int valid3[] = {0, 0, 1};
    snprintf(schema, sizeof(schema),
             "{%s \"properties\": {\"t\": {\"const\": \"a\"}, \"p\": {\"type\": \"integer\"},"
             " \"u\": {}, \"v\": {}, \"w\": {}}, \"required\": [\"p\", \"id\"]}",
             env);
    expect_verdicts(schema, inst3, valid3, PIXEL_ARRAY_LEN(inst3), false);
}
END_TEST

START_TEST(routed_event_schemas_agree_with_the_full_evaluation)
{
    /* an "any event" schema: a oneOf by the const of "t" over event schemas of the
       flattened shape (sroute), one branch of another shape, and an object member that
       only an event schema's own properties declare (walked with the envelope's) */
    static const char *const schema =
        "{\"$defs\": {\"env\": {\"type\": \"object\", \"required\": [\"id\", \"t\"],"
        " \"properties\": {\"id\": {\"type\": \"string\"}, \"t\": {\"enum\": [\"a\", \"b\", \"c\"]},"
        " \"o\": {\"type\": \"object\", \"properties\": {\"k\": {\"type\": \"integer\"}},"
        " \"additionalProperties\": false}, \"n\": {\"type\": \"integer\", \"maximum\": 5},"
        " \"m\": {}}}, \"a\": {\"allOf\": [{\"$ref\": \"#/$defs/env\"}], \"unevaluatedProperties\": false,"
        " \"properties\": {\"t\": {\"const\": \"a\"}, \"q\": {\"type\": \"object\","
        " \"required\": [\"r\"], \"additionalProperties\": false, \"properties\":"
        " {\"r\": {\"type\": \"integer\"}, \"s\": {\"type\": \"string\", \"maxLength\": 2}}}},"
        " \"required\": [\"q\"]},"
        " \"b\": {\"allOf\": [{\"$ref\": \"#/$defs/env\"}], \"unevaluatedProperties\": false,"
        " \"properties\": {\"t\": {\"const\": \"b\"}, \"p\": {\"type\": \"integer\"}}},"
        " \"c\": {\"type\": \"object\", \"properties\": {\"t\": {\"const\": \"c\"},"
        " \"w\": {\"type\": \"string\"}}, \"required\": [\"w\"]}},"
        " \"oneOf\": [{\"$ref\": \"#/$defs/a\"}, {\"$ref\": \"#/$defs/b\"}, {\"$ref\": \"#/$defs/c\"}]}";
    static const char *const inst[] = {
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1}}",
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1, \"s\": \"ab\"}, \"n\": 5}",
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1, \"s\": \"abc\"}}", /* in q */
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"s\": \"a\"}}",             /* q's required */
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1, \"z\": 1}}",       /* q is closed */
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1}, \"n\": 6}",       /* after q */
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1}, \"p\": 1}",       /* b's name */
        "{\"id\": \"x\", \"t\": \"a\", \"q\": 1}",
        "{\"id\": \"x\", \"t\": \"a\"}",
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {\"r\": 1}, \"q\": {}}", /* a lookup: the first */
        "{\"id\": \"x\", \"t\": \"a\", \"q\": {}, \"q\": {\"r\": 1}}",
        "{\"q\": {\"r\": 1}, \"o\": {\"k\": 1}, \"t\": \"a\", \"id\": \"x\"}", /* out of order */
        "{\"id\": \"x\", \"t\": \"b\", \"p\": 1}",
        "{\"id\": \"x\", \"t\": \"b\", \"p\": 1, \"q\": {\"r\": 1}}",
        "{\"id\": \"x\", \"t\": \"b\", \"o\": {\"k\": \"1\"}}",
        "{\"t\": \"c\", \"w\": \"s\", \"zz\": 1}", /* the branch of another shape */
        "{\"t\": \"c\"}",
        "{\"id\": \"x\", \"t\": \"d\", \"p\": 1}", /* no branch's value */
        "{\"id\": \"x\", \"p\": 1, \"w\": \"s\"}", /* no discriminator: every branch */
        "{\"id\": \"x\", \"t\": 1, \"w\": \"s\"}",
        "{\"id\": \"x\", \"t\": \"b\", \"t\": \"a\", \"p\": 1}", /* the first t picks */
        "{\"id\": \"x\", \"t\": \"a\", \"t\": \"b\", \"q\": {\"r\": 1}}",
        "{\"id\": \"x\", \"t\": \"a\", \"t\": \"d\", \"q\": {\"r\": 1}}", /* the enum's */
        "[1]",
        "7",
    };
    static const int valid[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1,
                                0, 0, 1, 0, 1, 1, 0, 0, 0};
    {
        pixel_schema_registry *reg;
        const pixel_schema *s = compile_urn_t(schema, &reg);
        /* the shape this test is about: two routed branches, one not */
        ck_assert_ptr_nonnull(s->root->route);
        ck_assert_ptr_nonnull(s->root->route->flat[0]);
        ck_assert_ptr_nonnull(s->root->route->flat[1]);
        ck_assert_ptr_null(s->root->route->flat[2]);
        pixel_schema_registry_free(reg);
    }
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);

    /* the flat walk's formats (asserted), maps and consts */
    static const char *const schema2 =
        "{\"$defs\": {\"env\": {\"type\": \"object\", \"required\": [\"t\"], \"properties\":"
        " {\"t\": {\"enum\": [\"a\", \"b\"]}, \"d\": {\"type\": \"string\", \"format\":"
        " \"date-time\", \"maxLength\": 40}, \"x\": {\"type\": \"object\", \"maxProperties\": 2,"
        " \"propertyNames\": {\"pattern\": \"^[a-z]+$\"}, \"additionalProperties\":"
        " {\"type\": \"string\"}}, \"v\": {\"const\": 1}, \"w\": {\"type\": \"object\","
        " \"additionalProperties\": false, \"properties\": {\"k\": {\"type\": \"string\"}}}}},"
        " \"a\": {\"allOf\": [{\"$ref\": \"#/$defs/env\"}], \"unevaluatedProperties\": false,"
        " \"properties\": {\"t\": {\"const\": \"a\"}}},"
        " \"b\": {\"allOf\": [{\"$ref\": \"#/$defs/env\"}], \"unevaluatedProperties\": false,"
        " \"properties\": {\"t\": {\"const\": \"b\"}}}},"
        " \"oneOf\": [{\"$ref\": \"#/$defs/a\"}, {\"$ref\": \"#/$defs/b\"}]}";
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"{\"t\": \"a\", \"d\": \"2026-11-27T00:00:00Z\", \"x\": {\"k\": \"v\"}, \"v\": 1}", 0},
        {"{\"t\": \"a\", \"d\": \"2026-02-30T00:00:00Z\"}", 1},
        {"{\"t\": \"a\", \"d\": \"2026-11-27 00:00:00\"}", 1},
        {"{\"t\": \"a\", \"d\": 5}", 1},
        {"{\"t\": \"b\", \"x\": {\"K\": \"v\"}}", 1},
        {"{\"t\": \"b\", \"x\": {\"k\": 1}}", 1},
        {"{\"t\": \"b\", \"x\": {\"k\": \"1\", \"l\": \"2\", \"m\": \"3\"}}", 1},
        {"{\"t\": \"b\", \"v\": 2}", 1},
        {"{\"t\": \"b\", \"v\": 1.0}", 0},
        {"{\"t\": \"b\", \"w\": {\"k\": \"s\"}}", 0},
        {"{\"t\": \"b\", \"w\": {\"k\": \"s\", \"j\": 1}}", 1},
        {"{\"t\": \"b\", \"w\": 1}", 1},
        {"{\"t\": \"b\", \"u\": 1}", 1},
    };
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, "urn:t2", schema2, strlen(schema2), &err),
                     0);
    ck_assert_int_eq(pixel_schema_compile(&s, reg, "urn:t2", &err), 0);
    ck_assert_ptr_nonnull(s->root->route);
    pixel_arena a;
    pixel__arena_init(&a);
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(cases); i++) {
        const char *j = cases[i].json;
        pixel_value *v = pixel__json_parse(&a, guard_copy(j, strlen(j)), strlen(j), NULL);
        ck_assert_ptr_nonnull(v);
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_QUICK_ONLY | PIXEL_SCHEMA_ASSERT_FORMAT,
                                            NULL, NULL) == cases[i].want,
                      "boolean pass on %s", j);
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_FULL_ONLY | PIXEL_SCHEMA_ASSERT_FORMAT,
                                            NULL, NULL) == cases[i].want,
                      "full evaluation on %s", j);
    }
    pixel__arena_release(&a);
    pixel_schema_registry_free(reg);
}
END_TEST

/* A string leaf with an anyOf of formats (an address, IPv4 or IPv6): a converter's
   flag passes its branch without a check, whichever branch it is; an unflagged string
   is checked by each branch's checker; the verdicts are the full evaluation's. */
START_TEST(any_of_formats_trust_a_flag_of_any_branch)
{
    static const char *const schema =
        "{\"type\": \"object\", \"properties\": {\"ip\": {\"type\": \"string\","
        " \"maxLength\": 45, \"anyOf\": [{\"format\": \"ipv4\"}, {\"format\": \"ipv6\"}]}}}";
    static const struct {
        const char *text;
        unsigned flags;
        int want; /* 0 valid */
    } cases[] = {
        {"1.2.3.4", 0, 0},
        {"2001:db8::1", 0, 0},
        {"1.2.3", 0, 1},
        {"2001:db8:::1", 0, 1},
        {"1.2.3.0", PIXEL_VALUE_FMT_IPV4, 0},
        {"2001:db8::", PIXEL_VALUE_FMT_IPV6, 0},
        {"2001:db8::", PIXEL_VALUE_FMT_IPV4, 0}, /* another branch's checker */
        {"x", PIXEL_VALUE_FMT_UUID, 1},
    };
    pixel_schema_registry *reg;
    const pixel_schema *s = compile_urn_t(schema, &reg);
    pixel_arena a;
    pixel__arena_init(&a);
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(cases); i++) {
        char j[80];
        snprintf(j, sizeof(j), "{\"ip\": \"%s\"}", cases[i].text);
        pixel_value *v = pixel__json_parse(&a, guard_copy(j, strlen(j)), strlen(j), NULL);
        ck_assert_ptr_nonnull(v);
        v->u.list.head->flags |= cases[i].flags;
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_QUICK_ONLY | PIXEL_SCHEMA_ASSERT_FORMAT,
                                            NULL, NULL) == cases[i].want,
                      "boolean pass on %s", j);
        if (!cases[i].flags) {
            ck_assert_msg(pixel_schema_validate(s, v, SFLAG_FULL_ONLY | PIXEL_SCHEMA_ASSERT_FORMAT,
                                                NULL, NULL) == cases[i].want,
                          "full evaluation on %s", j);
        }
    }
    pixel__arena_release(&a);
    pixel_schema_registry_free(reg);
}
END_TEST

START_TEST(map_objects_agree_with_the_full_evaluation)
{
    /* objects used as maps (a member count, propertyNames and additionalProperties,
       each a leaf: SQK_MAP), and one whose propertyNames is not a leaf */
    static const char *const schema =
        "{\"type\": \"object\", \"properties\": {"
        "\"e\": {\"type\": \"object\", \"minProperties\": 1, \"maxProperties\": 2,"
        " \"propertyNames\": {\"pattern\": \"^[a-z]+$\", \"maxLength\": 4},"
        " \"additionalProperties\": {\"type\": \"string\", \"maxLength\": 3}},"
        "\"f\": {\"$ref\": \"#/$defs/f\"}, \"g\": {\"type\": \"object\", \"propertyNames\":"
        " {\"not\": {\"const\": \"x\"}}, \"additionalProperties\": {\"type\": \"integer\"}}},"
        " \"$defs\": {\"f\": {\"type\": \"object\","
        " \"additionalProperties\": {\"$ref\": \"#/$defs/i\"}, \"maxProperties\": 1}, \"i\": {\"type\":"
        " \"integer\", \"minimum\": 0}}}";
    static const char *const inst[] = {
        "{\"e\": {\"a\": \"x\"}}",
        "{\"e\": {\"a\": \"x\", \"bb\": \"yyy\"}}",
        "{\"e\": {}}",                                      /* minProperties */
        "{\"e\": {\"a\": \"x\", \"b\": \"y\", \"c\": \"z\"}}", /* maxProperties */
        "{\"e\": {\"A\": \"x\"}}",                           /* a name's pattern */
        "{\"e\": {\"abcde\": \"x\"}}",                       /* a name's length */
        "{\"e\": {\"a\": \"wxyz\"}}",                        /* a value's length */
        "{\"e\": {\"a\": 1}}",                               /* a value's type */
        "{\"e\": {\"a\": \"x\", \"a\": \"y\"}}",
        "{\"e\": []}",
        "{\"e\": \"a\"}",
        "{\"f\": {\"z\": 3}}",
        "{\"f\": {\"z\": -3}}",
        "{\"f\": {\"z\": 3, \"y\": 4}}",
        "{\"f\": 1}",
        "{\"g\": {\"y\": 1}}",
        "{\"g\": {\"x\": 1}}",
        "{\"g\": {\"y\": \"1\"}}",
        "{\"e\": {\"a\": \"\\u00e9\\u00e9\\u00e9\"}}",       /* 3 code points, 6 bytes */
        "{\"e\": {\"a\": \"\\u00e9\\u00e9\\u00e9\\u00e9\"}}",
        "{\"e\": {\"\\u00e9\": \"x\"}}",
        "{\"e\": {\"ab\": \"x\", \"cd\": null}}",
    };
    static const int valid[] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0,
                                1, 0, 0, 0};
    {
        pixel_schema_registry *reg;
        const pixel_schema *s = compile_urn_t(schema, &reg);
        const sobject *o = root_object(s);
        /* the shape this test is about: "e" and "f" maps, "g" not */
        ck_assert_int_eq(o->props[0].qk, SQK_MAP);
        ck_assert_int_eq(o->props[1].qk, SQK_MAP);
        ck_assert_int_eq(o->props[2].qk, SQK_NODE);
        /* "e" checks a name and its value in one pass, "f" (integer values) does not */
        ck_assert(((const smap *)o->props[0].qt)->one_pass);
        ck_assert(!((const smap *)o->props[1].qt)->one_pass);
        pixel_schema_registry_free(reg);
    }
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);
}
END_TEST

START_TEST(string_lengths_by_byte_count_agree_with_the_full_evaluation)
{
    /* the byte-length shortcut of a string leaf (sleaf.flo/fspan) at its edges: ASCII
       and multi-byte text around minLength, 4 * minLength and maxLength, a minLength
       above maxLength / 4 and one above maxLength, for each member kind */
    static const char *const schema =
        "{\"type\": \"object\", \"properties\": {"
        "\"s\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 9},"
        "\"p\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 9, \"pattern\": \"^[^x]\"},"
        "\"f\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 9, \"format\": \"hostname\"},"
        "\"l\": {\"type\": [\"string\", \"null\"], \"minLength\": 2, \"maxLength\": 9},"
        "\"w\": {\"type\": \"string\", \"minLength\": 3, \"maxLength\": 5},"
        "\"z\": {\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}}}";
    static const char *const inst[] = {
        "{\"s\": \"ab\"}",  "{\"s\": \"a\"}",  "{\"s\": \"abcdefghi\"}", "{\"s\": \"abcdefghij\"}",
        "{\"s\": \"\\u00e9\"}", "{\"s\": \"\\u00e9\\u00e9\"}", "{\"s\": \"\\u20ac\\u20ac\\u20ac\"}",
        "{\"s\": \"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",       /* 10 bytes, 5 code points */
        "{\"s\": \"\\u20ac\\u20ac\\u20ac\\u20ac\"}",             /* 12 bytes, 4 code points */
        "{\"p\": \"ab\"}",  "{\"p\": \"a\"}",  "{\"p\": \"xb\"}",  "{\"p\": \"\\u00e9\"}",
        "{\"p\": \"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", "{\"p\": \"abcdefghij\"}",
        "{\"f\": \"ab\"}",  "{\"f\": \"a\"}",  "{\"f\": \"abcdefghij\"}", "{\"f\": \"a-b.cd\"}",
        "{\"l\": \"ab\"}",  "{\"l\": \"a\"}",  "{\"l\": null}", "{\"l\": \"\\u00e9\\u00e9\"}",
        "{\"l\": \"abcdefghij\"}",
        "{\"w\": \"abc\"}", "{\"w\": \"ab\"}", "{\"w\": \"abcde\"}", "{\"w\": \"abcdef\"}",
        "{\"w\": \"\\u00e9\\u00e9\\u00e9\"}", "{\"w\": \"\\u00e9\\u00e9\"}",
        "{\"w\": \"\\u20ac\\u20ac\\u20ac\\u20ac\\u20ac\"}",     /* 15 bytes, 5 code points */
        "{\"z\": \"ab\"}",  "{\"z\": \"abc\"}", "{\"z\": \"\"}",
    };
    static const int valid[] = {1, 0, 1, 0, 0, 1, 1, 1, 1,
                                1, 0, 0, 0, 1, 0,
                                1, 0, 0, 1,
                                1, 0, 1, 1, 0,
                                1, 0, 1, 0, 1, 0, 1,
                                0, 0, 0};
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);
}
END_TEST

START_TEST(number_leaves_by_bounds_agree_with_the_full_evaluation)
{
    /* numeric leaves whose bounds are inclusive integers (SQK_NUM: doubles compared with
       the bounds as doubles, integers as integers, then multipleOf), and one with an
       exclusive bound (not SQK_NUM) */
    static const char *const schema =
        "{\"type\": \"object\", \"properties\": {"
        "\"b\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 50, \"multipleOf\": 0.25},"
        "\"i\": {\"type\": \"integer\", \"minimum\": -9007199254740992,"
        " \"maximum\": 9007199254740992, \"multipleOf\": 2},"
        "\"m\": {\"type\": \"number\", \"minimum\": 2, \"maximum\": 9, \"multipleOf\": 3},"
        "\"x\": {\"type\": \"number\", \"exclusiveMinimum\": 0, \"multipleOf\": 0.5}}}";
    static const char *const inst[] = {
        "{\"b\": 3.75}", "{\"b\": 3.7}", "{\"b\": 0}", "{\"b\": 50}", "{\"b\": 50.25}",
        "{\"b\": -0.25}", "{\"b\": -0.0}", "{\"b\": 49.999999999999999999}", "{\"b\": 2}",
        "{\"b\": 51}", "{\"b\": -1}", "{\"b\": \"3\"}", "{\"b\": null}", "{\"b\": 1e308}",
        "{\"b\": 0.0000}", "{\"b\": 12.50}",
        "{\"i\": 4}", "{\"i\": 5}", "{\"i\": 4.0}", "{\"i\": 4.5}", "{\"i\": 9007199254740992}",
        "{\"i\": 9007199254740994}", "{\"i\": -9007199254740994}", "{\"i\": 9007199254740992.0}",
        "{\"i\": 1e300}", "{\"i\": true}",
        "{\"m\": 3}", "{\"m\": 6}", "{\"m\": 1.5}", "{\"m\": 0}", "{\"m\": 9}", "{\"m\": 12}",
        "{\"x\": 0.5}", "{\"x\": 0}", "{\"x\": 0.25}",
    };
    static const int valid[] = {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1,
                                1, 0, 1, 0, 1, 0, 0, 1, 0, 0,
                                1, 1, 0, 0, 1, 0,
                                1, 0, 0};
    {
        pixel_schema_registry *reg;
        const pixel_schema *s = compile_urn_t(schema, &reg);
        const sobject *o = root_object(s);
        ck_assert_int_eq(o->props[0].qk, SQK_NUM);
        ck_assert_int_eq(o->props[1].qk, SQK_NUM);
        ck_assert_int_eq(o->props[3].qk, SQK_LEAF);
        pixel_schema_registry_free(reg);
    }
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);
}
END_TEST

START_TEST(objects_walked_apart_agree_with_the_full_evaluation)
{
    /* an object member walked by quick_walk() (SQK_WALK), with every leaf kind, a name
       only required, a nested object of the same kind and one of another, and
       additionalProperties as a schema; and one with patternProperties (not SQK_WALK) */
    static const char *const schema =
        "{\"type\": \"object\", \"properties\": {"
        "\"o\": {\"type\": \"object\", \"required\": [\"s\", \"r\"], \"properties\": {"
        " \"s\": {\"type\": \"string\", \"maxLength\": 3}, \"p\": {\"type\": \"string\","
        " \"pattern\": \"^[a-z]+$\"}, \"f\": {\"type\": \"string\", \"format\": \"ipv4\"},"
        " \"i\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9}, \"e\": {\"enum\":"
        " [\"x\", \"y\"]}, \"c\": {\"const\": \"k\"}, \"n\": {\"type\": \"number\", \"maximum\": 5,"
        " \"multipleOf\": 0.5}, \"l\": {\"type\": [\"string\", \"null\"]}, \"w\": {\"type\": \"object\","
        " \"required\": [\"k\"], \"additionalProperties\": false, \"properties\": {\"k\": {\"type\":"
        " \"integer\"}, \"h\": {\"type\": \"string\"}}}, \"u\": {\"type\": \"object\", \"properties\":"
        " {\"k\": {\"type\": \"integer\"}}}},"
        " \"additionalProperties\": {\"type\": \"boolean\"}},"
        "\"q\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"object\","
        " \"properties\": {\"b\": {\"type\": \"integer\"}}}}, \"patternProperties\": {\"^z\":"
        " {\"type\": \"integer\"}}, \"additionalProperties\": false}}}";
    static const char *const inst[] = {
        "{\"o\": {\"s\": \"ab\", \"r\": true}}",
        "{\"o\": {\"s\": \"ab\", \"p\": \"q\", \"f\": \"1.2.3.4\", \"i\": 9, \"e\": \"y\","
        " \"c\": \"k\", \"n\": 4.5, \"l\": null, \"r\": false}}",
        "{\"o\": {\"r\": true, \"l\": \"z\", \"n\": 5, \"c\": \"k\", \"e\": \"x\", \"i\": 0,"
        " \"f\": \"1.2.3.4\", \"p\": \"q\", \"s\": \"\"}}", /* the other order */
        "{\"o\": {\"s\": \"abcd\", \"r\": true}}",
        "{\"o\": {\"s\": 1, \"r\": true}}",
        "{\"o\": {\"s\": \"ab\"}}",                    /* r is only required */
        "{\"o\": {\"r\": true}}",
        "{\"o\": {\"s\": \"ab\", \"r\": 1}}",          /* r: additionalProperties */
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"z\": true}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"z\": 0}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"p\": \"Q\"}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"p\": 7}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"i\": 10}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"i\": 1.0}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"i\": \"1\"}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"e\": \"z\"}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"c\": \"kk\"}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"n\": 4.25}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"l\": 1}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"s\": \"abcd\"}}", /* every member checked */
        "{\"o\": {\"s\": \"\\u00e9\\u00e9\\u00e9\", \"r\": true}}",
        "{\"o\": {\"s\": \"\\u00e9\\u00e9\\u00e9\\u00e9\", \"r\": true}}",
        "{\"o\": []}",
        "{\"q\": {\"a\": {}}}",
        "{\"q\": {\"a\": 1}}",
        "{\"q\": {\"b\": {}}}",
        "{\"q\": {\"a\": {\"b\": \"1\"}}}",
        "{\"q\": {\"a\": {\"b\": 1}, \"z\": 1}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"w\": {\"k\": 1, \"h\": \"x\"}, \"u\": {\"k\": 2}}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"w\": {\"h\": \"x\"}}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"w\": {\"k\": 1, \"q\": 1}}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"w\": {\"k\": 1}, \"s\": 1}}", /* after w */
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"u\": {\"k\": \"2\"}}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"u\": {\"j\": \"2\"}}}",
        "{\"o\": {\"s\": \"ab\", \"r\": true, \"w\": []}}",
    };
    static const int valid[] = {1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0};
    {
        pixel_schema_registry *reg;
        const pixel_schema *s = compile_urn_t(schema, &reg);
        const sobject *o = root_object(s);
        ck_assert_int_eq(o->props[0].qk, SQK_WALK);
        ck_assert_int_ne(o->props[1].qk, SQK_WALK);
        const sobject *w = o->props[0].qt;
        long j = pixel__strtab_find(&w->names, "w", 1);
        ck_assert(j >= 0 && w->props[j].qk == SQK_WALK);
        pixel_schema_registry_free(reg);
    }
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);
}
END_TEST

/* A property awaited next and missed remembers the one found instead (sprop.alt) and
   tries it first on its next miss: one registry walks these in turn, so that the
   remembered property is found, missed (another member, an undeclared one) and found
   checked like any other. */
START_TEST(remembered_properties_after_a_miss_agree_with_the_full_evaluation)
{
    static const char *const schema =
        "{\"type\": \"object\", \"properties\": {\"o\": {\"type\": \"object\","
        " \"required\": [\"a\"], \"properties\": {\"a\": {\"type\": \"integer\"},"
        " \"b\": {\"type\": \"string\"}, \"c\": {\"type\": \"boolean\"},"
        " \"d\": {\"type\": \"null\"}}, \"additionalProperties\": false}}}";
    static const char *const inst[] = {
        "{\"o\": {\"a\": 1, \"c\": true}}",   /* b absent: c remembered */
        "{\"o\": {\"a\": 1, \"d\": null}}",   /* c tried, d by the hash */
        "{\"o\": {\"a\": 1, \"c\": 1}}",      /* c remembered, and checked */
        "{\"o\": {\"a\": 1, \"d\": 1}}",
        "{\"o\": {\"a\": 1, \"x\": 1}}",      /* undeclared */
        "{\"o\": {\"c\": true, \"a\": 1}}",   /* another order */
        "{\"o\": {\"c\": true}}",
        "{\"o\": {\"c\": false, \"a\": \"1\"}}",
        "{\"o\": {\"d\": null, \"c\": true, \"b\": \"s\", \"a\": 2}}",
        "{\"o\": {\"d\": null, \"c\": true, \"b\": 1, \"a\": 2}}",
        "{\"o\": {\"c\": true, \"c\": 0, \"a\": 2}}",
    };
    static const int valid[] = {1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0};
    {
        pixel_schema_registry *reg;
        const pixel_schema *s = compile_urn_t(schema, &reg);
        ck_assert_int_eq(root_object(s)->props[0].qk, SQK_WALK); /* walked by walk_body() */
        pixel_schema_registry_free(reg);
    }
    expect_verdicts(schema, inst, valid, PIXEL_ARRAY_LEN(inst), false);
}
END_TEST

/* "{"a": " n times, then leaf, then n closing braces (and ", \"z\": 1" before each when
   extra). */
static char *nested_json(int n, const char *leaf, bool extra)
{
    size_t cap = (size_t)n * 16 + strlen(leaf) + 1;
    char *s = malloc(cap), *o = s;
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < n; i++) {
        o += sprintf(o, "{\"a\": ");
    }
    o += sprintf(o, "%s", leaf);
    for (int i = 0; i < n; i++) {
        o += sprintf(o, extra ? ", \"z\": 1}" : "}");
    }
    return s;
}

START_TEST(nested_objects_walked_in_one_loop_agree_with_the_full_evaluation)
{
    /* three closed objects in one another, required names at each level, members after
       the nested object in the enclosing one */
    static const char *const inst[] = {
        "{\"p\": {\"q\": {\"r\": 1}, \"s\": \"x\"}, \"t\": true}",
        "{\"p\": {\"q\": {\"r\": 1}, \"s\": \"x\"}}",           /* t is optional */
        "{\"p\": {\"q\": {}, \"s\": \"x\"}, \"t\": true}",      /* r required */
        "{\"p\": {\"q\": {\"r\": \"1\"}, \"s\": \"x\"}}",       /* r's type */
        "{\"p\": {\"q\": {\"r\": 1, \"u\": 1}, \"s\": \"x\"}}", /* closed innermost */
        "{\"p\": {\"q\": {\"r\": 1}, \"s\": 2}}",               /* after the nested object */
        "{\"p\": {\"q\": {\"r\": 1}}}",                         /* s required */
        "{\"p\": {\"q\": {\"r\": 1}, \"s\": \"x\"}, \"t\": 1}", /* two levels up */
        "{\"p\": {\"q\": {\"r\": 1}, \"s\": \"x\"}, \"u\": 1}",
        "{\"p\": {\"s\": \"x\", \"q\": {\"r\": 1}}, \"t\": false}", /* out of order */
        "{\"p\": {\"q\": {\"r\": 1}, \"q\": {\"r\": 2}, \"s\": \"x\"}}",
        "{\"p\": {\"q\": {\"r\": 1}, \"q\": {}, \"s\": \"x\"}}", /* the second q too */
        "{\"p\": {\"q\": [], \"s\": \"x\"}}",
        "{\"t\": true}",
    };
    static const int valid[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0};
    expect_verdicts("{\"type\": \"object\", \"required\": [\"p\"], \"additionalProperties\": false,"
                    " \"properties\": {\"p\": {\"type\": \"object\", \"required\": [\"q\", \"s\"],"
                    " \"additionalProperties\": false, \"properties\": {\"q\":"
                    " {\"type\": \"object\", \"required\": [\"r\"],"
                    " \"additionalProperties\": false, \"properties\":"
                    " {\"r\": {\"type\": \"integer\"}}}, \"s\": {\"type\": \"string\"}}},"
                    " \"t\": {\"type\": \"boolean\"}}}",
                    inst, valid, PIXEL_ARRAY_LEN(inst), false);

    /* one schema nested in itself: deeper than the loop keeps (it recurses past that), and
       deeper than the depth limit */
    const char *schema = "{\"type\": \"object\", \"additionalProperties\": false,"
                         " \"properties\": {\"a\": {\"$ref\": \"#\"}, \"z\": {\"const\": 1}}}";
    pixel_schema_registry *reg;
    const pixel_schema *s;
    pixel_error err;
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, "urn:n", schema, strlen(schema), &err), 0);
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:n", &err) == 0, "%s", err.text);
    ck_assert(s->root->quick);
    static const struct {
        int n;
        const char *leaf;
        bool extra;
        int want;
    } cases[] = {
        {3, "{}", true, 0},     {20, "{}", true, 0},   {20, "{\"z\": 2}", false, 1},
        {20, "{}", false, 0},   {20, "{\"b\": 1}", false, 1}, {9, "{\"z\": 2}", true, 1},
        {100, "{}", true, 0},   {200, "{\"z\": 2}", true, 1},
    };
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(cases); i++) {
        char *json = nested_json(cases[i].n, cases[i].leaf, cases[i].extra);
        pixel_arena a;
        pixel__arena_init(&a);
        pixel_value *v = pixel__json_parse(&a, guard_copy(json, strlen(json)), strlen(json), NULL);
        ck_assert_ptr_nonnull(v);
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_QUICK_ONLY, NULL, NULL) == cases[i].want,
                      "boolean pass, case %zu", i);
        ck_assert_msg(pixel_schema_validate(s, v, SFLAG_FULL_ONLY, NULL, NULL) == cases[i].want,
                      "full evaluation, case %zu", i);
        pixel__arena_release(&a);
        free(json);
    }
    /* past the depth limit (deeper than JSON text parses here: built in place) */
    enum { DEEP = 600 };
    pixel_value *chain = calloc(DEEP, sizeof(*chain));
    ck_assert_ptr_nonnull(chain);
    for (int i = 0; i < DEEP; i++) {
        chain[i].type = PIXEL_TYPE_OBJECT;
        if (i + 1 < DEEP) {
            chain[i + 1].key = "a";
            chain[i + 1].klen = 1;
            chain[i].u.list.head = chain[i].u.list.tail = &chain[i + 1];
            chain[i].u.list.count = 1;
        }
    }
    ck_assert_int_eq(pixel_schema_validate(s, chain, SFLAG_QUICK_ONLY, NULL, NULL), PIXEL_ERROR);
    ck_assert_int_eq(pixel_schema_validate(s, chain, 0, NULL, NULL), PIXEL_ERROR);
    ck_assert_int_eq(pixel_schema_validate(s, &chain[DEEP - 300], 0, NULL, NULL), 0);
    free(chain);
    pixel_schema_registry_free(reg);
}
END_TEST

START_TEST(multiple_of_and_bounds_agree_in_64_and_128_bits)
{
    /* literals that the 64-bit path takes, and ones past it (19 digits, exponents,
       operands that overflow when scaled), each with its exact answer */
    static const char *const inst[] = {
        "2.5", "2.55", "-0.75", "0", "0.000", "-0", "1e2", "2.5e0", "2.5E-1", "12",
        "0.250000000000000000", "0.2500000000000000001", "123456789012345678.25",
        "1234567890123456789.25", "9223372036854775807", "-9223372036854775808",
        "922337203685477580.75", "0.00000000000000000025",
    };
    static const int valid[] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0};
    expect_verdicts("{\"multipleOf\": 0.25}", inst, valid, PIXEL_ARRAY_LEN(inst), false);
    static const char *const inst2[] = {"7",     "-7",  "7.0", "7.5",
                                        "14e-1", "0.7", "7000000000000000000"};
    static const int valid2[] = {1, 1, 1, 0, 1, 1, 1};
    expect_verdicts("{\"multipleOf\": 0.7}", inst2, valid2, PIXEL_ARRAY_LEN(inst2), false);
    /* a divisor whose mantissa is 1 */
    static const char *const inst5[] = {"0.00751", "0.0075", "3", "0.00001"};
    static const int valid5[] = {0, 1, 1, 0};
    expect_verdicts("{\"multipleOf\": 0.0001}", inst5, valid5, PIXEL_ARRAY_LEN(inst5), false);
    /* a double against integer bounds, at and around them, and past 2^53 */
    static const char *const inst3[] = {"-0.5", "0.0", "50.0", "50.25", "49.999999", "1e300",
                                        "-1e300", "9007199254740993"};
    static const int valid3[] = {0, 1, 1, 0, 1, 0, 0, 0};
    expect_verdicts("{\"minimum\": 0, \"maximum\": 50}", inst3, valid3, PIXEL_ARRAY_LEN(inst3),
                    false);
    static const char *const inst4[] = {"9007199254740993.0", "9007199254740992.0", "1e20"};
    static const int valid4[] = {0, 0, 1};
    expect_verdicts("{\"minimum\": 9007199254740993}", inst4, valid4, PIXEL_ARRAY_LEN(inst4),
                    false);
}
END_TEST

START_TEST(objects_agree_with_the_full_evaluation)
{
    /* declared and required names mixed, members out of the declared order */
    static const char *const inst1[] = {
        "{\"a\": \"x\", \"b\": 1}", "{\"b\": 1, \"a\": \"x\"}", "{\"a\": \"x\"}",
        "{\"b\": 1, \"a\": 2}",     "{\"c\": 1, \"b\": 1, \"a\": \"x\", \"d\": true}", "[1]",
    };
    static const int valid1[] = {1, 1, 0, 0, 1, 1};
    expect_verdicts("{\"properties\": {\"c\": {\"type\": \"integer\"}, \"a\": {\"type\": \"string\"},"
                    " \"b\": {}}, \"required\": [\"a\", \"b\"]}",
                    inst1, valid1, PIXEL_ARRAY_LEN(inst1), false);
    /* 70 required names: a bitset of two words */
    char schema[4096] = "{\"required\": [";
    char all[4096] = "{", most[4096] = "{";
    for (int i = 0; i < 70; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s\"n%d\"", i ? ", " : "", i);
        strcat(schema, name);
        snprintf(name, sizeof(name), "%s\"n%d\": %d", i ? ", " : "", i, i);
        strcat(all, name);
        if (i != 66) {
            strcat(most, name);
        }
    }
    strcat(schema, "]}");
    strcat(all, "}");
    strcat(most, "}");
    const char *inst2[] = {all, most};
    static const int valid2[] = {1, 0};
    expect_verdicts(schema, inst2, valid2, 2, false);
    /* patterns, additionalProperties, and a closing unevaluatedProperties */
    static const char *const inst3[] = {
        "{\"id\": 1, \"x_a\": \"s\", \"other\": true}", "{\"id\": 1, \"x_a\": 5}",
        "{\"id\": 1, \"others\": 5}",                   "{\"id\": 1, \"more\": 1}",
    };
    static const int valid3[] = {1, 0, 0, 1};
    expect_verdicts("{\"properties\": {\"id\": {\"type\": \"integer\"}},"
                    " \"patternProperties\": {\"^x_\": {\"type\": \"string\"}},"
                    " \"additionalProperties\": {\"type\": [\"boolean\", \"integer\"]},"
                    " \"propertyNames\": {\"maxLength\": 5}}",
                    inst3, valid3, PIXEL_ARRAY_LEN(inst3), false);
    static const char *const inst4[] = {
        "{\"a\": 1, \"t\": \"k\"}", "{\"a\": 1, \"t\": \"k\", \"z\": 0}", "{\"t\": \"k\"}",
    };
    static const int valid4[] = {1, 0, 1};
    expect_verdicts("{\"allOf\": [{\"properties\": {\"a\": {\"type\": \"integer\"}}}],"
                    " \"properties\": {\"t\": {\"const\": \"k\"}},"
                    " \"unevaluatedProperties\": false}",
                    inst4, valid4, PIXEL_ARRAY_LEN(inst4), false);
    /* an envelope walked by allOf/$ref (enough names not to be looked up one by one), the
       event's own names, and unevaluatedProperties counting members instead of looking
       each one up */
    static const char *const inst5[] = {
        "{\"a\": 1, \"b\": 2, \"t\": \"k\"}",
        "{\"a\": 1, \"t\": \"k\", \"p\": 3}",
        "{\"a\": 1, \"t\": \"k\", \"p\": 3, \"z\": 0}",
        "{\"a\": 1, \"t\": \"k\", \"z\": 0}",
        "{\"z\": 0, \"a\": 1}",
        "{\"a\": 1, \"t\": \"k\", \"p\": \"x\"}",
        "{\"b\": 1}",
        "{\"a\": 1, \"e\": null, \"d\": null, \"c\": null, \"b\": null, \"t\": \"k\", \"p\": 0}",
        "{\"a\": 1, \"q\": 1}",
    };
    static const int valid5[] = {1, 1, 0, 0, 0, 0, 0, 1, 0};
    expect_verdicts("{\"allOf\": [{\"$ref\": \"#/$defs/env\"}],"
                    " \"properties\": {\"t\": {\"const\": \"k\"}, \"p\": {\"type\": \"integer\"}},"
                    " \"unevaluatedProperties\": false,"
                    " \"$defs\": {\"env\": {\"properties\": {\"a\": {}, \"b\": {}, \"c\": {}, \"d\": {},"
                    " \"e\": {}, \"t\": {\"type\": \"string\"}}, \"required\": [\"a\"]}}}",
                    inst5, valid5, PIXEL_ARRAY_LEN(inst5), false);
}
END_TEST

/*
 * Text the core flags PIXEL_VALUE_FMT_* skips the format check: every text the
 * flag may mark must pass the full checker.  Dates over twelve millennia (each
 * day for the years around 0 and 10000, where pixel__format_rfc3339 clamps the
 * year), with and without milliseconds, through the memo and without it.
 */
START_TEST(trusted_date_times_pass_the_checker)
{
    int dt = pixel__format_id("date-time");
    pixel_time_memo memo;
    memset(&memo, 0, sizeof(memo));
    char buf[64];
    size_t trusted = 0, checked = 0;
    const int64_t day = 86400000;
    for (int pass = 0; pass < 3; pass++) {
        int64_t from = pass == 0 ? -800 * day : pass == 1 ? 2932000 * day : -365 * 3 * day;
        int64_t to = pass == 0 ? 3000000 * day : pass == 1 ? 2934500 * day : 365 * 3 * day;
        int64_t step = pass == 0 ? 37 * day + 7919 : day + 1013;
        for (int64_t ms = from; ms < to; ms += step) {
            for (int k = 0; k < 4; k++) {
                /* the memo's second, minute and day paths, then a fresh one */
                int64_t t = ms + (k == 1 ? 999 : k == 2 ? 61000 : k == 3 ? day / 2 : 0);
                int with_ms = (int)((t / 1000) & 1);
                size_t n = pixel__format_rfc3339(k == 3 ? NULL : &memo, buf, t, with_ms);
                checked++;
                if (pixel__format_trusted(PIXEL_VALUE_FMT_DATE_TIME, PIXEL_VALUE_FMT_DATE_TIME,
                                          buf, n)) {
                    trusted++;
                    ck_assert_msg(pixel__format_check(dt, buf, n) == 1, "%s (%lld ms) is trusted",
                                  buf, (long long)t);
                }
            }
        }
    }
    ck_assert_uint_gt(trusted, checked / 2);
    /* the flag is one kind: another format, or another flag, is checked */
    ck_assert(!pixel__format_trusted(pixel__format_trust(pixel__format_id("date")),
                                     PIXEL_VALUE_FMT_DATE_TIME, "2026-11-26", 10));
    ck_assert(!pixel__format_trusted(PIXEL_VALUE_FMT_DATE_TIME, PIXEL_VALUE_FMT_UUID,
                                     "2026-11-26T00:00:00Z", 20));
    ck_assert(!pixel__format_trusted(PIXEL_VALUE_FMT_DATE_TIME, 0, "2026-11-26T00:00:00Z", 20));
}
END_TEST

START_TEST(trusted_uuids_pass_the_checker)
{
    int uuid = pixel__format_id("uuid");
    ck_assert_int_eq(pixel__format_trust(uuid), PIXEL_VALUE_FMT_UUID);
    char in[64], id[37];
    uint64_t r = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(i % 60);
        for (size_t j = 0; j < n; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            in[j] = (char)r;
        }
        pixel__uuid_from_bytes(in, n, id);
        ck_assert_msg(pixel__format_check(uuid, id, 36) == 1, "%s", id);
    }
}
END_TEST

static size_t flagged_ok(const pixel_value *v, size_t *bad)
{
    size_t n = 0;
    if (v->type == PIXEL_TYPE_OBJECT || v->type == PIXEL_TYPE_ARRAY) {
        for (const pixel_value *m = v->u.list.head; m; m = m->next) {
            n += flagged_ok(m, bad);
        }
        return n;
    }
    unsigned f = v->flags & PIXEL_VALUE_FMT_MASK;
    if (v->type != PIXEL_TYPE_STRING || !f) {
        return 0;
    }
    int id = pixel__format_id(f == PIXEL_VALUE_FMT_DATE_TIME ? "date-time"
                              : f == PIXEL_VALUE_FMT_UUID   ? "uuid"
                              : f == PIXEL_VALUE_FMT_IPV4   ? "ipv4"
                                                            : "ipv6");
    ck_assert_int_eq(pixel__format_trust(id), f);
    if (pixel__format_trusted((uint16_t)f, f, v->u.str.s, v->u.str.len) &&
        pixel__format_check(id, v->u.str.s, v->u.str.len) != 1) {
        ck_assert_msg(0, "flagged %#x but the checker refuses \"%.*s\"", f, (int)v->u.str.len,
                      v->u.str.s);
        ++*bad;
    }
    return 1;
}

/* The example pipeline's flagged values (times of each kind, event IDs sent in any case or
   derived, the ingest time, anonymized IPv4 addresses) on its sample log and on lines with
   odd IDs, times and client addresses, with IPv4 prefixes of every kind. */
static size_t pipeline_flags_run(int v4_prefix, int v6_prefix, size_t *flagged_v6);

START_TEST(pipeline_flags_only_what_passes_the_checker)
{
    static const int prefixes[] = {24, 0, 1, 7, 8, 9, 16, 23, 31, 32};
    static const int v6_prefixes[] = {48, 0, 1, 15, 16, 17, 32, 64, 96, 112, 127, 128};
    size_t flagged_ip = 0, flagged_v6 = 0;
    for (size_t pi = 0; pi < sizeof(prefixes) / sizeof(prefixes[0]); pi++) {
        flagged_ip += pipeline_flags_run(prefixes[pi], 48, &flagged_v6);
    }
    for (size_t pi = 0; pi < sizeof(v6_prefixes) / sizeof(v6_prefixes[0]); pi++) {
        flagged_ip += pipeline_flags_run(24, v6_prefixes[pi], &flagged_v6);
    }
    ck_assert_uint_gt(flagged_ip, 1000);
    ck_assert_uint_gt(flagged_v6, 1000);
    ck_assert_int_eq(pixel__format_trust(pixel__format_id("ipv6")), PIXEL_VALUE_FMT_IPV6);
    ck_assert(!pixel__format_trusted(pixel__format_trust(pixel__format_id("ipv4")),
                                     PIXEL_VALUE_FMT_IPV6, "2001:db8::", 10));
    int v4 = pixel__format_id("ipv4");
    ck_assert_int_eq(pixel__format_trust(v4), PIXEL_VALUE_FMT_IPV4);
    ck_assert(!pixel__format_trusted(pixel__format_trust(pixel__format_id("ipv6")),
                                     PIXEL_VALUE_FMT_IPV4, "1.2.3.0", 7));
    ck_assert(!pixel__format_trusted(pixel__format_trust(v4), PIXEL_VALUE_FMT_UUID, "1.2.3.0", 7));
}
END_TEST

static size_t count_fmt_flags(const pixel_value *v, unsigned fmt)
{
    size_t n = 0;
    if (v->type == PIXEL_TYPE_OBJECT || v->type == PIXEL_TYPE_ARRAY) {
        for (const pixel_value *m = v->u.list.head; m; m = m->next) {
            n += count_fmt_flags(m, fmt);
        }
        return n;
    }
    return v->type == PIXEL_TYPE_STRING && (v->flags & PIXEL_VALUE_FMT_MASK) == fmt;
}

/* A random IPv6 client address of one of the written forms: full, with
   leading zeros, upper case, compressed, with an embedded dotted quad, or
   IPv4-mapped or -compatible. */
static void random_ipv6(uint64_t *rnd, char *out, size_t size)
{
    unsigned g[8];
    for (int k = 0; k < 8; k++) {
        *rnd ^= *rnd << 13, *rnd ^= *rnd >> 7, *rnd ^= *rnd << 17;
        unsigned r = (unsigned)(*rnd >> 20);
        g[k] = r % 5 == 0 ? 0 : r % 5 == 1 ? r % 16 : r % 5 == 2 ? r % 256 : r & 0xFFFF;
    }
    switch ((unsigned)(*rnd >> 50) % 7) {
        case 5: /* IPv4-mapped, written back with a dotted quad */
            snprintf(out, size, "::ffff:%u.%u.%u.%u", g[4] & 255, g[5] & 255, g[6] & 255,
                     g[7] & 255);
            break;
        case 6: /* IPv4-compatible (deprecated, still an address) */
            snprintf(out, size, "::%u.%u.%u.%u", (g[4] & 255) | 1, g[5] & 255, g[6] & 255,
                     g[7] & 255);
            break;
        case 0:
            snprintf(out, size, "%x:%x:%x:%x:%x:%x:%x:%x", g[0], g[1], g[2], g[3], g[4], g[5], g[6],
                     g[7]);
            break;
        case 1:
            snprintf(out, size, "%04x:%04x:%04x:%04x:%04x:%04x:%04x:%04x", g[0], g[1], g[2], g[3],
                     g[4], g[5], g[6], g[7]);
            break;
        case 2:
            snprintf(out, size, "%X:%X:%X:%X:%X:%X:%X:%X", g[0], g[1], g[2], g[3], g[4], g[5], g[6],
                     g[7]);
            break;
        case 3:
            snprintf(out, size, "%x:%x::%x:%x", g[0] | 1, g[1], g[6], g[7]);
            break;
        default:
            snprintf(out, size, "%x:%x::ffff:%u.%u.%u.%u", g[0] | 1, g[1], g[4] & 255, g[5] & 255,
                     g[6] & 255, g[7] & 255);
            break;
    }
}

static size_t pipeline_flags_run(int v4_prefix, int v6_prefix, size_t *flagged_v6)
{
    const char *src = getenv("PIXEL_SOURCE_DIR");
    char path[1300], base[1200];
    snprintf(base, sizeof(base), "%s/examples/realestate", src ? src : ".");
    snprintf(path, sizeof(path), "%s/pipeline.yaml", base);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char text[1 << 16];
    size_t tn = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[tn] = '\0';
    char *vs = strstr(text, "\nvalidate:");
    if (vs) {
        vs[1] = '\0'; /* the flags are what is checked here, not the model */
    }
    char *pf = strstr(text, "ipv4_prefix: 24");
    ck_assert_ptr_nonnull(pf);
    static char with[1 << 16];
    snprintf(with, sizeof(with), "%.*sipv4_prefix: %d%s", (int)(pf - text), text, v4_prefix,
             pf + 15);
    snprintf(text, sizeof(text), "%s", with);
    pf = strstr(text, "ipv6_prefix: 48");
    ck_assert_ptr_nonnull(pf);
    snprintf(with, sizeof(with), "%.*sipv6_prefix: %d%s", (int)(pf - text), text, v6_prefix,
             pf + 15);
    snprintf(text, sizeof(text), "%s", with);
    pixel_pipeline *p = NULL;
    pixel_error err;
    ck_assert_int_eq(pixel_pipeline_load_string(&p, text, strlen(text), "pipeline.yaml", base,
                                                NULL, &err),
                     0);
    pixel_ctx *ctx = pixel_ctx_new();
    snprintf(path, sizeof(path), "%s/sample.log", base);
    f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char line[1 << 16];
    size_t flagged = 0, bad = 0, events = 0, ipv4 = 0;
    uint64_t rnd = 88172645463325252ull + (uint64_t)v4_prefix;
    static const char *const eids[] = {"E050C60B-125F-4D87-8599-D9621BED87A7",
                                       "e050c60b-125f-4d87-8599-d9621bed87aG", "", "x"};
    static const char *const ts[] = {"0", "253402300799999", "253402300800000", "-62135596800001",
                                     "1795651336309", "951782400000"};
    for (int round = 0; round < 2; round++) {
        rewind(f);
        int i = 0;
        while (fgets(line, sizeof(line), f)) {
            size_t n = strcspn(line, "\n");
            line[n] = '\0';
            if (round == 1) {
                /* another ID and client time in the same line */
                char *e = strstr(line, "&eid=");
                char *t = strstr(line, "&ts=");
                if (!e || !t || t < e) {
                    continue;
                }
                char *ee = strchr(e + 1, '&'), *te = strchr(t + 1, '&');
                if (!ee || !te) {
                    continue;
                }
                static char alt[1 << 16];
                snprintf(alt, sizeof(alt), "%.*s&eid=%s%.*s&ts=%s%s", (int)(e - line), line,
                         eids[i % 4], (int)(t - ee), ee, ts[i % 6], te);
                snprintf(line, sizeof(line), "%s", alt);
                n = strlen(line);
            }
            if (round == 1) {
                /* another client address: random octets of one to three digits */
                char *ip = strstr(line, "nginx: ");
                char *ipe = ip ? strstr(ip, " - - [") : NULL;
                if (ip && ipe) {
                    static char alt[1 << 16];
                    rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
                    unsigned o[4];
                    for (int k = 0; k < 4; k++) {
                        unsigned r8 = (unsigned)(rnd >> (16 * k)) & 0xFFFF;
                        o[k] = r8 % 3 == 0 ? r8 % 10 : r8 % 3 == 1 ? 10 + r8 % 90 : r8 % 256;
                    }
                    if (i % 2) {
                        char v6[64];
                        random_ipv6(&rnd, v6, sizeof(v6));
                        snprintf(alt, sizeof(alt), "%.*snginx: %s%s", (int)(ip - line), line, v6,
                                 ipe);
                    } else {
                        snprintf(alt, sizeof(alt), "%.*snginx: %u.%u.%u.%u%s", (int)(ip - line),
                                 line, o[0], o[1], o[2], o[3], ipe);
                    }
                    snprintf(line, sizeof(line), "%s", alt);
                    n = strlen(line);
                }
            }
            i++;
            pixel_ctx_reset(ctx);
            pixel_ctx_set_clock(ctx, (int64_t)i * 86400013 - 62135596800000 * (i % 3 == 0));
            pixel_outcome oc;
            ck_assert_int_eq(pixel_process(p, ctx, guard_copy(line, n), n, &oc, &err), 0);
            if (oc == PIXEL_OUTCOME_EVENT) {
                events++;
                flagged += flagged_ok(pixel_ctx_event(ctx), &bad);
                ipv4 += count_fmt_flags(pixel_ctx_event(ctx), PIXEL_VALUE_FMT_IPV4);
                *flagged_v6 += count_fmt_flags(pixel_ctx_event(ctx), PIXEL_VALUE_FMT_IPV6);
            }
        }
    }
    fclose(f);
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_gt(events, 300);
    ck_assert_uint_ge(flagged, events * 3);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    return ipv4;
}

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *load_tc = tcase_create("load_errors");
    tcase_add_test(load_tc, compile_rejects_an_unknown_type_name);
    tcase_add_test(load_tc, compile_errors_point_at_and_quote_the_bad_value);
    tcase_add_test(load_tc, compile_rejects_an_unresolvable_ref);
    tcase_add_test(load_tc, compile_rejects_an_unknown_dollar_schema);
    tcase_add_test(load_tc, compile_rejects_a_reference_cycle);
    tcase_add_test(load_tc, compile_rejects_a_dynamic_reference_cycle);
    tcase_add_test(load_tc, compile_rejects_an_invalid_regex);
    tcase_add_test(load_tc, compile_rejects_what_the_metaschema_rejects);
    tcase_add_test(load_tc, load_reports_json_syntax_with_line);
    suite_add_tcase(s, load_tc);
    TCase *val = tcase_create("validation");
    tcase_add_test(val, errors_name_instance_keyword_and_schema_locations);
    tcase_add_test(val, multiple_of_decimals_is_exact_and_lengths_count_code_points);
    tcase_add_test(val, multiple_of_and_bounds_agree_in_64_and_128_bits);
    tcase_add_test(val, validation_allocates_nothing);
    tcase_add_test(val, format_checkers_follow_their_rfcs);
    tcase_add_test(val, one_pass_patterns_agree_with_pcre2);
    tcase_add_test(val, shuffle_steps_agree_with_table_steps);
    tcase_add_test(val, nibble_runs_agree_with_table_runs);
    tcase_add_test(val, unbounded_repetitions_match_subjects_past_64k);
    tcase_add_test(val, if_groups_agree_with_the_full_evaluation);
    tcase_add_test(val, objects_agree_with_the_full_evaluation);
    tcase_add_test(val, nested_objects_walked_in_one_loop_agree_with_the_full_evaluation);
    tcase_add_test(val, evaluation_refuses_a_dynamic_reference_cycle);
    tcase_add_test(val, depth_limit_unwinds_without_retrying_branches);
    tcase_add_test(val, trusted_date_times_pass_the_checker);
    tcase_add_test(val, trusted_uuids_pass_the_checker);
    tcase_add_test(val, pipeline_flags_only_what_passes_the_checker);
    tcase_add_test(val, flattened_event_schemas_agree_with_the_full_evaluation);
    tcase_add_test(val, routed_event_schemas_agree_with_the_full_evaluation);
    tcase_add_test(val, map_objects_agree_with_the_full_evaluation);
    tcase_add_test(val, string_lengths_by_byte_count_agree_with_the_full_evaluation);
    tcase_add_test(val, number_leaves_by_bounds_agree_with_the_full_evaluation);
    tcase_add_test(val, objects_walked_apart_agree_with_the_full_evaluation);
    tcase_add_test(val, any_of_formats_trust_a_flag_of_any_branch);
    tcase_add_test(val, remembered_properties_after_a_miss_agree_with_the_full_evaluation);
    tcase_add_test(val, framed_member_names_match_only_their_own_property);
    suite_add_tcase(s, val);
    return s;
}

int main(void)
{
    const char *src = getenv("PIXEL_SOURCE_DIR");
    snprintf(data_dir, sizeof(data_dir), "%s/tests/validate/data", src ? src : ".");
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
