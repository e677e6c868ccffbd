/* The pipeline loader: every mistake is reported with file, line and column. */
#include "testutil.h"

typedef struct {
    const char *yaml;
    long line, column;
    const char *needle;
} bad_case;

static const bad_case bad[] = {
    {"pipeline: {name: t\n", 2, 1, "YAML syntax"},
    {"- a\n- b\n", 1, 1, "mapping at the top level"},
    {"pipeline: {name: t}\nfoo: 1\n", 2, 1, "unknown key 'foo'"},
    {"input: {framing: carrier-pigeon, pixel_paths: [/p]}\nfields: {a: query.a}\n", 1, 18,
     "unknown framing 'carrier-pigeon'"},
    {"input: {format: fancy, pixel_paths: [/p]}\nfields: {a: query.a}\n", 1, 17,
     "unknown log format 'fancy'"},
    {"input: {format: combined}\nfields: {a: query.a}\n", 1, 8, "pixel_paths is required"},
    {"input: {pixel_paths: [/p]}\n", 1, 1, "needs a 'fields' mapping"},
    {"input: {pixel_paths: [/p]}\nfields:\n  a: {from: query.a, type: float}\n", 3, 28,
     "unknown type 'float'"},
    {"input: {pixel_paths: [/p]}\nfields:\n  a: {from: cookie.a}\n", 3, 13,
     "unknown source 'cookie.a'"},
    {"input: {pixel_paths: [/p]}\nfields:\n  a: {from: log.x_forwarded_for}\n", 3, 13,
     "log field 'x_forwarded_for' is not produced"},
    {"input: {pixel_paths: [/p]}\nfields:\n  a: {from: query.a, colour: red}\n", 3, 22,
     "unknown key 'colour'"},
    {"input: {pixel_paths: [/p]}\nfields:\n  a: query.a\n  a.b: query.b\n", 3, 3,
     "both a field and an object"},
    {"input: {pixel_paths: [/p]}\nevent_type: {field: t, values: [a]}\nfields:\n  u: query.u\n", 2,
     13, "is not one of the mapped fields"},
    {"input: {pixel_paths: [/p]}\nevent_type: {field: t, values: [a]}\nfields:\n"
     "  t: query.t\n  x: {from: query.x, types: [b]}\n",
     5, 30, "'b' is not one of event_type.values"},
    {"input: {pixel_paths: [/p], format: {nginx: '$remote_addr$status'}}\nfields: {a: query.a}\n",
     1, 36, "touch"},
    {"input: {pixel_paths: [/p], format: {apache: '%h %Z'}}\nfields: {a: query.a}\n", 1, 36,
     "unsupported Apache LogFormat directive '%Z'"},
    {"input: {pixel_paths: [/p]}\nfields: {a: query.a}\nenrich:\n  - teleport: {}\n", 4, 5,
     "unknown enricher 'teleport'"},
    {"input: {pixel_paths: [/p], max_line_length: 3}\nfields: {a: query.a}\n", 1, 45,
     "between 64 and"},
    {"input: {pixel_paths: [/p]}\nfields: {a: query.a}\ndelivery: {}\nfields: {b: query.b}\n", 4, 1,
     "duplicate key 'fields' (first at line 2)"},
    {"input: {pixel_paths: [/p], framing: none, framing: rfc3164}\nfields: {a: query.a}\n", 1, 43,
     "duplicate key 'framing'"},
    {"input: {pixel_paths: [/p]}\nfields:\n  a: {from: query.a, type: timestamp, format: "
     "julian}\n",
     3, 47, "unknown timestamp format 'julian'"},
};

START_TEST(config_errors_name_file_line_and_column)
{
    const bad_case *c = &bad[_i];
    pixel_error err;
    const char *msg = load_fail(c->yaml, &err);
    ck_assert_int_eq(err.code, PIXEL_ECONFIG);
    ck_assert_msg(strstr(msg, c->needle) != NULL, "case %d: \"%s\" lacks \"%s\"", _i, msg,
                  c->needle);
    ck_assert_str_eq(err.source, "test.yaml");
    ck_assert_msg(err.line == c->line && err.column == c->column, "case %d: %s: expected %ld:%ld",
                  _i, msg, c->line, c->column);
}
END_TEST

START_TEST(missing_file_is_an_io_error)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    memset(&err, 0xa5, sizeof(err)); /* the loaders clear err themselves */
    ck_assert_int_eq(pixel_pipeline_load_file(&p, "/nonexistent/pipeline.yaml", NULL, &err),
                     PIXEL_EIO);
    ck_assert_str_eq(err.source, "/nonexistent/pipeline.yaml");
    ck_assert_ptr_nonnull(strstr(err.text, "No such file"));
}
END_TEST

START_TEST(loaders_fill_an_uninitialized_error)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    memset(&err, 0xa5, sizeof(err));
    const char *y = "pipeline: {name: t}\nfoo: 1\n";
    ck_assert_int_eq(pixel_pipeline_load_string(&p, y, strlen(y), "x.yaml", NULL, NULL, &err),
                     PIXEL_ECONFIG);
    char buf[600];
    ck_assert_str_eq(pixel_error_format(&err, buf, sizeof(buf)),
                     "x.yaml:2:1: unknown key 'foo' (expected one of: pipeline, input, event_type, "
                     "fields, enrich, validate, delivery, modules)");
}
END_TEST

START_TEST(unknown_options_version_is_refused)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    pixel_pipeline_options o = PIXEL_PIPELINE_OPTIONS_INIT;
    o.version = 99;
    const char *y = PIPE_HEAD "fields: {a: query.a}\n";
    ck_assert_int_eq(pixel_pipeline_load_string(&p, y, strlen(y), NULL, NULL, &o, &err),
                     PIXEL_EVERSION);
}
END_TEST

START_TEST(example_pipeline_loads)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/examples/realestate/pipeline.yaml",
             getenv("PIXEL_SOURCE_DIR"));
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    char buf[600];
    ck_assert_msg(pixel_pipeline_load_file(&p, path, NULL, &err) == 0, "%s",
                  pixel_error_format(&err, buf, sizeof(buf)));
    ck_assert_str_eq(pixel_pipeline_name(p), "realestate");
    pixel_pipeline_free(p);
}
END_TEST

/* The loaded library's version is the one these headers were made with. */
START_TEST(the_library_says_its_version)
{
    char want[64];
    snprintf(want, sizeof(want), "%d.%d.%d", PIXEL_VERSION_MAJOR, PIXEL_VERSION_MINOR,
             PIXEL_VERSION_PATCH);
    ck_assert_str_eq(pixel_version(), want);
    ck_assert_str_eq(pixel_version(), PIXEL_VERSION_STRING);
}
END_TEST

/* pixel_time_parse(): RFC 3339 as the rfc3339 timestamps take it. */
START_TEST(time_parse_takes_rfc3339)
{
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } cases[] = {
        {"2026-11-26T12:00:00Z", PIXEL_OK, 1795694400000},
        {"2026-11-26T12:00:00.5Z", PIXEL_OK, 1795694400500},
        {"2026-11-26T13:30:00.123456+01:30", PIXEL_OK, 1795694400123},
        {"2026-11-26T06:00:00-06:00", PIXEL_OK, 1795694400000},
        {"2024-02-29T00:00:00Z", PIXEL_OK, 1709164800000},
        {"2026-11-26T12:00:00", PIXEL_EPARSE, 0},
        {"2026-02-29T00:00:00Z", PIXEL_EPARSE, 0},
        {"2026-11-26T12:00:00.Z", PIXEL_EPARSE, 0},
        {"2026-11-26T12:00:00+1:00", PIXEL_EPARSE, 0},
        {"2026-11-26T24:00:00Z", PIXEL_EPARSE, 0},
        {"2026-11-26T12:00:00Zjunk", PIXEL_EPARSE, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = 0;
        int rc = pixel_time_parse(cases[i].text, strlen(cases[i].text), &ms);
        ck_assert_msg(rc == cases[i].rc, "%s: %d", cases[i].text, rc);
        ck_assert_msg(rc != PIXEL_OK || ms == cases[i].ms, "%s: %lld", cases[i].text,
                      (long long)ms);
    }
    int64_t ms;
    ck_assert_int_eq(pixel_time_parse(NULL, 0, &ms), PIXEL_EINVAL);
    ck_assert_int_eq(pixel_time_parse("x", 1, NULL), PIXEL_EINVAL);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("errors");
    tcase_add_loop_test(tc, config_errors_name_file_line_and_column, 0,
                        (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, missing_file_is_an_io_error);
    tcase_add_test(tc, loaders_fill_an_uninitialized_error);
    tcase_add_test(tc, unknown_options_version_is_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("load");
    tcase_add_test(tc, example_pipeline_loads);
    tcase_add_test(tc, the_library_says_its_version);
    tcase_add_test(tc, time_parse_takes_rfc3339);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(config_suite());
}
