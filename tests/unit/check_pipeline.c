/* The whole pipeline: stage by stage, the quarantine record, threads, and out-of-memory. */
#include <jansson.h>
#include <pthread.h>

#include "testutil.h"

void pixel_debug_fail_alloc_at(unsigned long n);
const char *pixel_reason_code_at(size_t i, const char **family);

#define PIPE                                                                                       \
    PIPE_HEAD "event_type: {field: type, values: [page_view]}\n"                                   \
              "fields:\n  type: {from: query.ev, required: true}\n"                                \
              "  n: {from: query.n, type: integer}\n  ua: log.user_agent\n"                        \
              "enrich: [{event_id: {into: id}}]\n"

START_TEST(stages_run_one_at_a_time)
{
    pixel_pipeline *p = load_ok(PIPE);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_outcome oc;
    const char *line = LINE("ev=page_view&n=3");
    ck_assert_int_eq(pixel_parse(p, ctx, guard_copy(line, strlen(line)), strlen(line), &oc, NULL), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    ck_assert_ptr_null(pixel_ctx_event(ctx));
    ck_assert_int_eq(pixel_map(p, ctx, &oc, NULL), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    ck_assert_str_eq(pixel_value_dump(ctx, pixel_ctx_event(ctx), NULL),
                     "{\"type\":\"page_view\",\"n\":3,\"ua\":\"Mozilla/5.0 (X11)\"}");
    /* A caller may change the event between stages. */
    pixel_value_set_at(ctx, pixel_ctx_event(ctx), "n", pixel_value_new_int(ctx, 4));
    ck_assert_int_eq(pixel_enrich(p, ctx, &oc, NULL), 0);
    ck_assert_ptr_nonnull(pixel_value_at(pixel_ctx_event(ctx), "id"));
    ck_assert_int_eq(pixel_validate(p, ctx, &oc, NULL), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(pixel_value_int(pixel_value_at(pixel_ctx_event(ctx), "n")), 4);
    /* Stages after a verdict do nothing. */
    ck_assert_int_eq(pixel_parse(p, ctx, "garbage", 7, &oc, NULL), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_QUARANTINED);
    ck_assert_int_eq(pixel_map(p, ctx, &oc, NULL), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_QUARANTINED);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

/* Calls out of order or with a NULL argument are refused with PIXEL_EINVAL
 * and leave no verdict (*outcome PENDING), even after an earlier line's. */
START_TEST(misuse_is_refused_without_a_verdict)
{
    pixel_pipeline *p = load_ok(PIPE);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_outcome oc = PIXEL_OUTCOME_DROPPED;
    pixel_error err = {0};
    ck_assert_int_eq(pixel_map(p, ctx, &oc, &err), PIXEL_EINVAL);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    ck_assert_int_eq(err.code, PIXEL_EINVAL);
    ck_assert_int_eq(err.stage, PIXEL_STAGE_MAP);
    oc = PIXEL_OUTCOME_DROPPED;
    ck_assert_int_eq(pixel_enrich(p, ctx, &oc, NULL), PIXEL_EINVAL);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    oc = PIXEL_OUTCOME_DROPPED;
    ck_assert_int_eq(pixel_validate(p, ctx, &oc, NULL), PIXEL_EINVAL);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    /* NULL contexts are refused, not dereferenced. */
    oc = PIXEL_OUTCOME_DROPPED;
    ck_assert_int_eq(pixel_map(p, NULL, &oc, NULL), PIXEL_EINVAL);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    ck_assert_int_eq(pixel_enrich(p, NULL, &oc, NULL), PIXEL_EINVAL);
    ck_assert_int_eq(pixel_validate(NULL, ctx, &oc, NULL), PIXEL_EINVAL);
    /* A refused call after a decided line does not report that line's verdict. */
    const char *line = LINE("ev=page_view&n=3");
    ck_assert_int_eq(pixel_process(p, ctx, line, strlen(line), &oc, NULL), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(pixel_process(NULL, ctx, line, strlen(line), &oc, NULL), PIXEL_EINVAL);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    oc = PIXEL_OUTCOME_DROPPED;
    ck_assert_int_eq(pixel_parse(p, ctx, NULL, 0, &oc, NULL), PIXEL_EINVAL);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
    /* outcome may be NULL */
    ck_assert_int_eq(pixel_process(p, ctx, line, strlen(line), NULL, NULL), 0);
    ck_assert_int_eq(pixel_ctx_outcome(ctx), PIXEL_OUTCOME_EVENT);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(quarantine_record_carries_everything)
{
    pixel_pipeline *p = load_ok(PIPE);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_ctx_set_clock(ctx, 1795651200000);
    ck_assert_int_eq(run(p, ctx, LINE("ev=page_view&n=x")), PIXEL_OUTCOME_QUARANTINED);
    json_error_t je;
    json_t *q = json_loads(output(ctx, p), 0, &je);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(json_integer_value(json_object_get(q, "quarantine")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(q, "received_at")),
                     "2026-11-26T00:00:00.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(q, "stage")), "map");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(q, "pipeline"), "name")),
                     "t");
    ck_assert_str_eq(json_string_value(json_object_get(q, "raw")), LINE("ev=page_view&n=x"));
    json_t *r = json_array_get(json_object_get(q, "reasons"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(r, "code")), "bad_integer");
    ck_assert_str_eq(json_string_value(json_object_get(r, "family")), "mapping_violation");
    ck_assert_str_eq(json_string_value(json_object_get(r, "location")), "query.n");
    /* the partial event */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(q, "event"), "type")),
                     "page_view");
    json_decref(q);
    /* A line that is not UTF-8 is kept exactly, as base64. */
    ck_assert_int_eq(run(p, ctx, "\xff\xfe garbage"), PIXEL_OUTCOME_QUARANTINED);
    q = json_loads(output(ctx, p), 0, &je);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_null(json_object_get(q, "raw"));
    ck_assert_str_eq(json_string_value(json_object_get(q, "raw_base64")), "//4gZ2FyYmFnZQ==");
    json_decref(q);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

typedef struct {
    const pixel_pipeline *p;
    int id;
    int ok;
} thread_arg;

static void *worker(void *arg)
{
    thread_arg *a = arg;
    pixel_ctx *ctx = pixel_ctx_new();
    a->ok = 1;
    for (int i = 0; i < 2000; i++) {
        char line[512], expect[128];
        snprintf(line, sizeof(line), LINE("ev=page_view&n=%d"), a->id * 100000 + i);
        pixel_outcome oc;
        if (pixel_process(a->p, ctx, line, strlen(line), &oc, NULL) != 0 ||
            oc != PIXEL_OUTCOME_EVENT) {
            a->ok = 0;
            break;
        }
        snprintf(expect, sizeof(expect), "\"n\":%d,", a->id * 100000 + i);
        if (!strstr(pixel_ctx_output(ctx, a->p, NULL), expect)) {
            a->ok = 0;
            break;
        }
    }
    pixel_ctx_free(ctx);
    return NULL;
}

START_TEST(one_pipeline_serves_many_threads)
{
    pixel_pipeline *p = load_ok(PIPE);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){p, i, 0};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(args[i].ok, "thread %d saw a wrong result", i);
    }
    pixel_pipeline_free(p);
}
END_TEST

/* Fail every allocation in turn: each failure is reported, none crashes or leaks. */
START_TEST(out_of_memory_is_reported_at_every_allocation)
{
    const char *yaml = PIPE;
    int failures_seen = 0;
    for (unsigned long n = 1; n < 2000; n++) {
        pixel_pipeline *p = NULL;
        pixel_error err;
        pixel_error_clear(&err);
        pixel_debug_fail_alloc_at(n);
        int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), NULL, NULL, NULL, &err);
        pixel_debug_fail_alloc_at(0);
        if (rc < 0) {
            failures_seen++;
            ck_assert_ptr_null(p);
            continue;
        }
        /* loading got through: now fail inside processing */
        pixel_ctx *ctx = pixel_ctx_new();
        ck_assert_ptr_nonnull(ctx);
        int prc = 0;
        for (unsigned long k = 1; k < 40; k++) {
            pixel_outcome oc;
            pixel_debug_fail_alloc_at(k);
            prc = pixel_process(p, ctx, LINE("ev=page_view&n=1"), strlen(LINE("ev=page_view&n=1")),
                                &oc, &err);
            size_t len;
            const char *out = prc == 0 ? pixel_ctx_output(ctx, p, &len) : NULL;
            pixel_debug_fail_alloc_at(0);
            ck_assert(prc == 0 || prc == PIXEL_ENOMEM);
            (void)out;
        }
        pixel_ctx_free(ctx);
        pixel_pipeline_free(p);
        break;
    }
    ck_assert_int_gt(failures_seen, 10);
}
END_TEST

START_TEST(every_code_is_documented)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/quarantine-codes.md", getenv("PIXEL_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    doc[n] = '\0';
    fclose(f);
    const char *family;
    for (size_t i = 0; pixel_reason_code_at(i, &family); i++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "| `%s` | %s |", pixel_reason_code_at(i, NULL), family);
        ck_assert_msg(strstr(doc, needle) != NULL, "docs/quarantine-codes.md lacks the row %s",
                      needle);
    }
}
END_TEST

/* The ingest clock: fixed, set again for each batch of lines, or the real clock (0). */
START_TEST(ingest_clock_is_the_given_time_until_reset)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "fields: {a: query.a}\n"
                                          "enrich: [{ingest_time: {into: at}}]\n");
    pixel_ctx *ctx = pixel_ctx_new();
    const char *line = LINE("a=1");
    pixel_ctx_set_clock(ctx, 1795651200123); /* a batch read at this time */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
        ck_assert_str_eq(output(ctx, p), "{\"a\":\"1\",\"at\":\"2026-11-26T00:00:00.123Z\"}");
    }
    pixel_ctx_set_clock(ctx, 1795651201000); /* the next batch */
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
    ck_assert_str_eq(output(ctx, p), "{\"a\":\"1\",\"at\":\"2026-11-26T00:00:01.000Z\"}");
    /* 0: the real clock again, read for each line */
    pixel_ctx_set_clock(ctx, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
    clock_gettime(CLOCK_REALTIME, &t1);
    json_error_t je;
    json_t *ev = json_loads(output(ctx, p), 0, &je);
    ck_assert_ptr_nonnull(ev);
    const char *at = json_string_value(json_object_get(ev, "at"));
    ck_assert_ptr_nonnull(at);
    struct tm tm = {0};
    const char *rest = strptime(at, "%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_ptr_nonnull(rest);
    long long ms = (long long)timegm(&tm) * 1000 + atoi(rest + 1);
    ck_assert(ms >= (long long)t0.tv_sec * 1000 + t0.tv_nsec / 1000000);
    ck_assert(ms <= (long long)t1.tv_sec * 1000 + t1.tv_nsec / 1000000);
    json_decref(ev);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

static Suite *pipeline_suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, stages_run_one_at_a_time);
    tcase_add_test(tc, misuse_is_refused_without_a_verdict);
    tcase_add_test(tc, quarantine_record_carries_everything);
    tcase_add_test(tc, one_pipeline_serves_many_threads);
    tcase_add_test(tc, every_code_is_documented);
    tcase_add_test(tc, ingest_clock_is_the_given_time_until_reset);
    suite_add_tcase(s, tc);
    tc = tcase_create("oom");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, out_of_memory_is_reported_at_every_allocation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(pipeline_suite());
}
