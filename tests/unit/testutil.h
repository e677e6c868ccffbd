/* Shared helpers for the Check suites. */
#ifndef PIXEL_TESTUTIL_H
#define PIXEL_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_page.h"
#include "pixel/pixel.h"

/* A minimal valid pipeline header, for tests that add their own fields. */
#define PIPE_HEAD                                                                                  \
    "pipeline: {name: t, version: '1'}\n"                                                          \
    "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"

#define LINE(q)                                                                                    \
    "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?" q                                \
    " HTTP/1.1\" 200 43 \"https://www.example.com/\" \"Mozilla/5.0 (X11)\""

static inline pixel_pipeline *load_ok(const char *yaml)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), "test.yaml", ".", NULL, &err);
    char buf[600];
    ck_assert_msg(rc == 0, "load failed: %s", pixel_error_format(&err, buf, sizeof(buf)));
    return p;
}

/* Loads a pipeline that must fail; returns the formatted error (static). */
static inline const char *load_fail(const char *yaml, pixel_error *err)
{
    static char buf[800];
    pixel_pipeline *p = NULL;
    pixel_error_clear(err);
    int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), "test.yaml", ".", NULL, err);
    ck_assert_msg(rc < 0, "load unexpectedly succeeded");
    ck_assert_ptr_null(p);
    return pixel_error_format(err, buf, sizeof(buf));
}

/* Processes one line, copied to the end of mapped memory (guard_page.h);
 * returns the outcome. */
static inline pixel_outcome run(const pixel_pipeline *p, pixel_ctx *ctx, const char *line)
{
    pixel_outcome oc = PIXEL_OUTCOME_PENDING;
    pixel_error err;
    pixel_error_clear(&err);
    const size_t n = strlen(line);
    ck_assert_int_eq(pixel_process(p, ctx, guard_copy(line, n), n, &oc, &err), 0);
    return oc;
}

/* The serialized output of the current line (event or quarantine record). */
static inline const char *output(pixel_ctx *ctx, const pixel_pipeline *p)
{
    size_t n;
    const char *s = pixel_ctx_output(ctx, p, &n);
    return s ? s : "";
}

static inline const char *first_code(pixel_ctx *ctx)
{
    const pixel_reason *r = pixel_ctx_reason(ctx, 0);
    return r ? r->code : "";
}

static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
