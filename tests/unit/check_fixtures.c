/*
 * Data-driven cases: tests/data/lines/<case>/ holds input.log (one line) and
 * either expected.json (the exact output) or error.txt, whose first line is
 * "<outcome> <code> <location>" for the first reason (location "-" for none).
 * The pipeline is the case's pipeline.yaml, else the real-estate example.
 * The clock is fixed at 2026-11-26T12:00:00Z.
 */
#include <dirent.h>

#include "testutil.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }
    char *copy = malloc(n + 1);
    memcpy(copy, buf, n + 1);
    return copy;
}

static int run_case(const char *dir, const char *name, char *why, size_t whylen)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s/pipeline.yaml", dir, name);
    FILE *own = fopen(path, "r");
    if (own) {
        fclose(own);
    } else {
        snprintf(path, sizeof(path), "%s/examples/realestate/pipeline.yaml",
                 getenv("PIXEL_SOURCE_DIR"));
    }
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    if (pixel_pipeline_load_file(&p, path, NULL, &err) != 0) {
        char m[600];
        snprintf(why, whylen, "pipeline: %s", pixel_error_format(&err, m, sizeof(m)));
        return 0;
    }
    snprintf(path, sizeof(path), "%s/%s/input.log", dir, name);
    char *input = slurp(path);
    snprintf(path, sizeof(path), "%s/%s/expected.json", dir, name);
    char *expected = slurp(path);
    snprintf(path, sizeof(path), "%s/%s/error.txt", dir, name);
    char *error = slurp(path);
    int ok = 0;
    if (!input || (!expected == !error)) {
        snprintf(why, whylen, "needs input.log and one of expected.json / error.txt");
        goto done;
    }
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795694400000);
    pixel_outcome oc = run(p, ctx, input);
    if (expected) {
        const char *out = oc == PIXEL_OUTCOME_EVENT ? output(ctx, p) : "";
        ok = strcmp(out, expected) == 0;
        if (!ok) {
            snprintf(why, whylen, "%s; got %s %s", pixel_outcome_str(oc), out,
                     oc == PIXEL_OUTCOME_QUARANTINED ? output(ctx, p) : "");
        }
    } else {
        char want_oc[32] = "", want_code[64] = "", want_loc[128] = "";
        sscanf(error, "%31s %63s %127s", want_oc, want_code, want_loc);
        const pixel_reason *r = pixel_ctx_reason(ctx, 0);
        const char *loc = r && r->location ? r->location : "-";
        ok = strcmp(pixel_outcome_str(oc), want_oc) == 0 &&
             (strcmp(want_code, "-") == 0 ? r == NULL || oc != PIXEL_OUTCOME_QUARANTINED
                                          : r && strcmp(r->code, want_code) == 0) &&
             (strcmp(want_code, "-") == 0 || strcmp(loc, want_loc) == 0);
        if (!ok) {
            snprintf(why, whylen, "expected %s %s %s, got %s %s %s", want_oc, want_code, want_loc,
                     pixel_outcome_str(oc), r ? r->code : "-", loc);
        }
    }
    pixel_ctx_free(ctx);
done:
    free(input);
    free(expected);
    free(error);
    pixel_pipeline_free(p);
    return ok;
}

START_TEST(every_fixture_case_holds)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/lines", getenv("PIXEL_SOURCE_DIR"));
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    int cases = 0, failed = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char why[4096];
        cases++;
        if (!run_case(dir, e->d_name, why, sizeof(why))) {
            failed++;
            fprintf(stderr, "case %s: %s\n", e->d_name, why);
        }
    }
    closedir(d);
    ck_assert_int_gt(cases, 10);
    ck_assert_msg(failed == 0, "%d of %d fixture cases failed (see stderr)", failed, cases);
}
END_TEST

/* Every prefix of every case's line, placed at the end of mapped memory
 * (guard_page.h) and in a heap copy with room after it: the same outcome,
 * first reason and output.  A line cut anywhere ends wherever a field, a
 * query value or an escape happens to end. */
START_TEST(every_prefix_of_every_case_at_a_page_end)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/lines", getenv("PIXEL_SOURCE_DIR"));
    char path[2048];
    snprintf(path, sizeof(path), "%s/examples/realestate/pipeline.yaml",
             getenv("PIXEL_SOURCE_DIR"));
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_pipeline_load_file(&p, path, NULL, &err), 0);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    pixel_ctx *heap_ctx = pixel_ctx_new(), *edge_ctx = pixel_ctx_new();
    pixel_ctx_set_clock(heap_ctx, 1795694400000);
    pixel_ctx_set_clock(edge_ctx, 1795694400000);
    struct dirent *e;
    size_t lines = 0, events = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/pipeline.yaml", dir, e->d_name);
        FILE *own = fopen(path, "r");
        if (own) {
            fclose(own); /* a case of its own pipeline: the realestate one is what runs here */
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/input.log", dir, e->d_name);
        char *line = slurp(path);
        ck_assert_ptr_nonnull(line);
        const size_t n = strlen(line);
        for (size_t cut = 0; cut <= n; cut++) {
            char *heap = malloc(cut + 64);
            memcpy(heap, line, cut);
            memset(heap + cut, 'x', 64);
            pixel_outcome ho, eo;
            ck_assert_int_eq(pixel_process(p, heap_ctx, heap, cut, &ho, NULL), 0);
            ck_assert_int_eq(pixel_process(p, edge_ctx, guard_copy(line, cut), cut, &eo, NULL), 0);
            ck_assert_int_eq(eo, ho);
            ck_assert_str_eq(output(edge_ctx, p), output(heap_ctx, p));
            ck_assert_str_eq(first_code(edge_ctx), first_code(heap_ctx));
            lines++;
            events += eo == PIXEL_OUTCOME_EVENT;
            free(heap);
        }
        free(line);
    }
    closedir(d);
    ck_assert_uint_gt(lines, 1000);
    ck_assert_uint_gt(events, 5);
    pixel_ctx_free(heap_ctx);
    pixel_ctx_free(edge_ctx);
    pixel_pipeline_free(p);
}
END_TEST

static Suite *fixtures_suite(void)
{
    Suite *s = suite_create("fixtures");
    TCase *tc = tcase_create("lines");
    tcase_add_test(tc, every_fixture_case_holds);
    tcase_add_test(tc, every_prefix_of_every_case_at_a_page_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(fixtures_suite());
}
