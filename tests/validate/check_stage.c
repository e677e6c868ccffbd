/*
 * Check suite for the pipeline's validate stage: the example pipeline with a
 * validate: section over schemas/realestate quarantines an event that breaks
 * the model with one reason per error, and a schema directory with a broken
 * file (even an unreferenced $defs entry) fails the pipeline load with the
 * file, the JSON Pointer and the reason.
 */
#include <check.h>
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

int main(void)
{
    const char *src = getenv("PIXEL_SOURCE_DIR");
    snprintf(src_dir, sizeof(src_dir), "%s", src ? src : ".");
    Suite *s = suite_create("validate_stage");
    TCase *tc = tcase_create("stage");
    tcase_add_test(tc, stage_quarantines_every_schema_error_with_pointers);
    tcase_add_test(tc, stage_load_fails_on_a_broken_schema_file);
    tcase_add_test(tc, stage_load_fails_on_an_unknown_root);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
