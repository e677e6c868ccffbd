/*
 * Check suite for the pipeline's validate stage: the example pipeline with a
 * validate: section over schemas/realestate quarantines an event that breaks
 * the model with one reason per error, and a schema directory with a broken
 * file (even an unreferenced $defs entry) fails the pipeline load with the
 * file, the JSON Pointer and the reason.
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/pixel.h"

static char src_dir[1024];

static char *pipeline_text(const char *validate_section)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/examples/realestate/pipeline.yaml", src_dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t extra = strlen(validate_section);
    char *text = malloc((size_t)n + extra + 2);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    /* drop the example's own validate: section, if any, and append ours */
    text[n] = '\0';
    char *v = strstr(text, "\nvalidate:");
    size_t keep = v ? (size_t)(v - text) + 1 : (size_t)n;
    memcpy(text + keep, "\n", 1);
    memcpy(text + keep + 1, validate_section, extra + 1);
    return text;
}

static int load(pixel_pipeline **p, const char *section, pixel_error *err)
{
    char base[1200];
    snprintf(base, sizeof(base), "%s/examples/realestate", src_dir);
    char *text = pipeline_text(section);
    pixel_error_clear(err);
    int rc = pixel_pipeline_load_string(p, text, strlen(text), "pipeline.yaml", base, NULL, err);
    free(text);
    return rc;
}

/* A line of the corpus whose uid and zip break the model's patterns. */
static const char BAD_LINE[] =
    "<190>Nov 26 05:24:46 web01 nginx: 203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] "
    "\"GET /px.gif?v=1&ev=property_view&uid=XYZ&sid=565b8e2b672704de"
    "&eid=f57bd9ab-f936-4984-a95e-852c4c77b896&ts=1795651199954"
    "&url=https%3A%2F%2Fwww.example.com%2Fhome%2F1&pid=2167393756&price=1186000&zip=ABCDE"
    "&city=Boston&st=MA HTTP/2.0\" 200 43 \"https://www.example.com/\" \"Mozilla/5.0\"";

START_TEST(stage_quarantines_every_schema_error_with_pointers)
{
    pixel_pipeline *p;
    pixel_error err;
    int rc = load(&p,
                  "validate:\n"
                  "  schemas: ../../schemas/realestate\n"
                  "  schema: https://libpixel.dev/schemas/realestate/v1/event.schema.json\n",
                  &err);
    ck_assert_msg(rc == 0, "load: %s", err.text);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_outcome oc;
    ck_assert_int_eq(pixel_process(p, ctx, BAD_LINE, strlen(BAD_LINE), &oc, &err), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_QUARANTINED);
    int seen_uid = 0, seen_zip = 0;
    for (size_t i = 0; i < pixel_ctx_reason_count(ctx); i++) {
        const pixel_reason *r = pixel_ctx_reason(ctx, i);
        ck_assert_int_eq(r->stage, PIXEL_STAGE_VALIDATE);
        ck_assert_str_eq(r->family, "schema_violation");
        ck_assert_str_eq(r->code, "pattern");
        ck_assert_ptr_nonnull(r->keyword_location);
        ck_assert(strstr(r->schema_location, "https://libpixel.dev/schemas/realestate/v1/") != NULL);
        seen_uid += strcmp(r->location, "/user/id") == 0;
        seen_zip += strcmp(r->location, "/property/zip") == 0;
    }
    ck_assert_int_eq(seen_uid, 1);
    ck_assert_int_eq(seen_zip, 1);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(stage_load_fails_on_a_broken_schema_file)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    char section[1600];
    snprintf(section, sizeof(section),
             "validate:\n"
             "  schemas: [../../schemas/realestate, %s/tests/validate/data/broken-dir]\n"
             "  schema: https://libpixel.dev/schemas/realestate/v1/event.schema.json\n",
             src_dir);
    ck_assert_int_lt(load(&p, section, &err), 0);
    ck_assert_ptr_null(p);
    ck_assert(strstr(err.source, "unused-def.schema.json") != NULL);
    ck_assert_str_eq(err.pointer, "/$defs/unused/$ref");
    ck_assert(strstr(err.text, "unresolvable $ref") != NULL);
}
END_TEST

START_TEST(stage_load_fails_on_an_unknown_root)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    ck_assert_int_lt(load(&p,
                          "validate:\n"
                          "  schemas: ../../schemas/realestate\n"
                          "  schema: https://libpixel.dev/schemas/realestate/v1/nope.json\n",
                          &err),
                     0);
    ck_assert(strstr(err.text, "nope.json") != NULL);
    ck_assert_int_gt(err.line, 0);
}
END_TEST

/* The lines of tests/data/lines and BAD_LINE, run by several threads at once
 * through one pipeline with a validate stage (the validator remembers
 * member names in the shared schema as it goes): every output is the one a
 * single thread made first.  Run under TSan it checks that sharing. */
#define SHARED_THREADS 4
#define SHARED_MAX_LINES 64

typedef struct shared_run {
    const pixel_pipeline *p;
    char *lines[SHARED_MAX_LINES];
    char *want[SHARED_MAX_LINES];
    int want_oc[SHARED_MAX_LINES];
    size_t n;
} shared_run;

static void *shared_worker(void *arg)
{
    shared_run *r = arg;
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795694400000);
    long bad = 0;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < r->n; i++) {
            pixel_outcome oc;
            if (pixel_process(r->p, ctx, r->lines[i], strlen(r->lines[i]), &oc, NULL) != 0 ||
                (int)oc != r->want_oc[i]) {
                bad++;
                continue;
            }
            const char *out = pixel_ctx_output(ctx, r->p, NULL);
            bad += strcmp(out ? out : "", r->want[i]) != 0;
        }
    }
    pixel_ctx_free(ctx);
    return (void *)bad;
}

START_TEST(threads_share_a_validating_pipeline)
{
    char path[2600];
    snprintf(path, sizeof(path), "%s/examples/realestate/pipeline.yaml", src_dir);
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    ck_assert_msg(pixel_pipeline_load_file(&p, path, NULL, &err) == 0, "load: %s", err.text);
    static shared_run r;
    memset(&r, 0, sizeof(r));
    r.p = p;
    r.lines[r.n++] = strdup(BAD_LINE);
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/tests/data/lines", src_dir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) && r.n < SHARED_MAX_LINES) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/input.log", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            continue;
        }
        char buf[8192];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            n--;
        }
        buf[n] = '\0';
        r.lines[r.n++] = strdup(buf);
    }
    closedir(d);
    ck_assert_uint_gt(r.n, 10);
    /* what one thread makes */
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795694400000);
    int events = 0;
    for (size_t i = 0; i < r.n; i++) {
        pixel_outcome oc;
        ck_assert_int_eq(pixel_process(p, ctx, r.lines[i], strlen(r.lines[i]), &oc, NULL), 0);
        r.want_oc[i] = (int)oc;
        events += oc == PIXEL_OUTCOME_EVENT;
        const char *out = pixel_ctx_output(ctx, p, NULL);
        r.want[i] = strdup(out ? out : "");
    }
    pixel_ctx_free(ctx);
    ck_assert_int_gt(events, 3);
    pthread_t t[SHARED_THREADS];
    for (int i = 0; i < SHARED_THREADS; i++) {
        ck_assert_int_eq(pthread_create(&t[i], NULL, shared_worker, &r), 0);
    }
    long bad = 0;
    for (int i = 0; i < SHARED_THREADS; i++) {
        void *b;
        pthread_join(t[i], &b);
        bad += (long)b;
    }
    ck_assert_int_eq(bad, 0);
    for (size_t i = 0; i < r.n; i++) {
        free(r.lines[i]);
        free(r.want[i]);
    }
    pixel_pipeline_free(p);
}
END_TEST

int main(void)
{
    const char *src = getenv("PIXEL_SOURCE_DIR");
    snprintf(src_dir, sizeof(src_dir), "%s", src ? src : ".");
    Suite *s = suite_create("validate_stage");
    TCase *tc = tcase_create("stage");
    tcase_add_test(tc, stage_quarantines_every_schema_error_with_pointers);
    tcase_add_test(tc, stage_load_fails_on_a_broken_schema_file);
    tcase_add_test(tc, stage_load_fails_on_an_unknown_root);
    tcase_add_test(tc, threads_share_a_validating_pipeline);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
