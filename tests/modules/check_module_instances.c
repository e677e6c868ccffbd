/*
 * Per-thread module instances and the life of contexts: pixel_ctx_free()
 * gives the context's instances back (one stays as the pipeline's spare,
 * the others are destroyed), so a host that creates and frees contexts all
 * day keeps a bounded number of instances, not one per context it ever had.
 *
 * The testmod module reports `live`, the number of its instances not yet
 * destroyed; pixel_pipeline_module_stats() has one line per instance; and
 * pixel_debug_alloc_count() counts libpixel's own allocations.  Under ASan
 * the same runs also prove that every instance is destroyed exactly once.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixel/module.h"
#include "pixel/pixel.h"

unsigned long pixel_debug_alloc_count(void);

#define PIPE_HEAD                                                                                  \
    "pipeline: {name: t, version: '1'}\n"                                                          \
    "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"                           \
    "fields: {a: query.a}\n"

#define LINE                                                                                       \
    "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?a=1 HTTP/1.1\" 200 43 "           \
    "\"https://www.example.com/\" \"Mozilla/5.0 (X11)\""

static pixel_pipeline *load_ok(const char *yaml)
{
    const char *dirs[] = {getenv("PIXEL_TEST_MODULES_DIR"), NULL};
    ck_assert_msg(dirs[0] != NULL, "PIXEL_TEST_MODULES_DIR is not set (run through meson test)");
    pixel_pipeline_options o = PIXEL_PIPELINE_OPTIONS_INIT;
    o.module_dirs = dirs;
    pixel_pipeline *p = NULL;
    pixel_error err;
    char buf[900];
    pixel_error_clear(&err);
    int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), "test.yaml", ".", &o, &err);
    ck_assert_msg(rc == 0, "load failed: %s", pixel_error_format(&err, buf, sizeof(buf)));
    return p;
}

/* Runs one line; returns testmod's `field` at `into` (instance, calls, live). */
static long run(const pixel_pipeline *p, pixel_ctx *ctx, const char *into, const char *field)
{
    pixel_outcome oc;
    pixel_error err;
    char buf[900], path[128];
    pixel_error_clear(&err);
    ck_assert_msg(pixel_process(p, ctx, LINE, strlen(LINE), &oc, &err) == 0, "process: %s",
                  pixel_error_format(&err, buf, sizeof(buf)));
    ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
    snprintf(path, sizeof(path), "%s.%s", into, field);
    pixel_value *v = pixel_value_at(pixel_ctx_event(ctx), path);
    ck_assert_msg(v != NULL, "no %s in the event", path);
    return (long)pixel_value_int(v);
}

/* Instances of p that stats() reports (one line each). */
static int instances(const pixel_pipeline *p)
{
    char stats[65536];
    pixel_pipeline_module_stats(p, stats, sizeof(stats));
    int n = 0;
    for (const char *s = stats; (s = strchr(s, '\n')); s++) {
        n++;
    }
    return n;
}

#define ONE_TESTMOD PIPE_HEAD "enrich:\n  - module: {name: testmod}\n"

START_TEST(many_contexts_created_and_freed_keep_one_instance)
{
    pixel_pipeline *p = load_ok(ONE_TESTMOD);
    unsigned long mark = 0, first_half = 0;
    for (int i = 0; i < 3000; i++) {
        if (i == 1000) {
            mark = pixel_debug_alloc_count();
        } else if (i == 2000) {
            first_half = pixel_debug_alloc_count() - mark;
            mark = pixel_debug_alloc_count();
        }
        pixel_ctx *ctx = pixel_ctx_new();
        ck_assert_ptr_nonnull(ctx);
        /* Only this context's instance is alive: the spare is the one it took. */
        ck_assert_int_eq(run(p, ctx, "testmod", "live"), 1);
        ck_assert_int_eq(instances(p), 1);
        pixel_ctx_free(ctx);
    }
    /* Steady state: every 1000 contexts cost libpixel the same allocations. */
    ck_assert_uint_eq(pixel_debug_alloc_count() - mark, first_half);
    ck_assert_int_eq(instances(p), 1);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(live_contexts_keep_their_own_instances_and_the_spare_is_reused)
{
    pixel_pipeline *p = load_ok(ONE_TESTMOD);
    pixel_ctx *a = pixel_ctx_new(), *b = pixel_ctx_new(), *c = pixel_ctx_new();
    long ia = run(p, a, "testmod", "instance");
    long ib = run(p, b, "testmod", "instance");
    long ic = run(p, c, "testmod", "instance");
    ck_assert_int_ne(ia, ib);
    ck_assert_int_ne(ib, ic);
    ck_assert_int_eq(run(p, c, "testmod", "live"), 3);
    pixel_ctx_free(a); /* a's instance: the spare */
    pixel_ctx_free(b); /* b's instance: destroyed (there is a spare) */
    ck_assert_int_eq(run(p, c, "testmod", "live"), 2);
    ck_assert_int_eq(run(p, c, "testmod", "instance"), ic);
    ck_assert_int_eq(instances(p), 2);
    pixel_ctx *d = pixel_ctx_new();
    ck_assert_int_eq(run(p, d, "testmod", "instance"), ia); /* took the spare */
    ck_assert_int_eq(run(p, d, "testmod", "live"), 2);
    pixel_ctx_free(c);
    pixel_ctx_free(d);
    ck_assert_int_eq(instances(p), 1);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(a_context_is_released_from_every_pipeline_and_entry)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n"
                                          "  - module: {name: testmod, config: {into: one}}\n"
                                          "  - module: {name: testmod, config: {into: two}}\n"
                                          "  - module: {name: sharedmod}\n");
    pixel_pipeline *q = load_ok(ONE_TESTMOD);
    pixel_ctx *keep = pixel_ctx_new();
    run(p, keep, "one", "instance");
    run(q, keep, "testmod", "instance");
    for (int i = 0; i < 200; i++) {
        pixel_ctx *ctx = pixel_ctx_new();
        run(p, ctx, "one", "instance");
        run(q, ctx, "testmod", "instance");
        pixel_ctx_free(ctx);
    }
    /* p: keep's two + two spares + the shared one; q: keep's + the spare. */
    ck_assert_int_eq(instances(p), 5);
    ck_assert_int_eq(instances(q), 2);
    pixel_ctx_free(keep);
    ck_assert_int_eq(instances(p), 3);
    ck_assert_int_eq(instances(q), 1);
    pixel_pipeline_free(p);
    pixel_pipeline_free(q);
}
END_TEST

START_TEST(a_context_may_outlive_its_pipeline)
{
    pixel_pipeline *p = load_ok(ONE_TESTMOD);
    pixel_ctx *ctx = pixel_ctx_new();
    run(p, ctx, "testmod", "instance");
    pixel_pipeline_free(p); /* destroys the instance; the context must not find it again */
    p = load_ok(ONE_TESTMOD);
    ck_assert_int_eq(run(p, ctx, "testmod", "live"), 1);
    pixel_pipeline_free(p);
    pixel_ctx_free(ctx);
}
END_TEST

#define NTHREADS 6
#define NCONTEXTS 300

static void *churn(void *arg)
{
    const pixel_pipeline *p = arg;
    for (int i = 0; i < NCONTEXTS; i++) {
        pixel_ctx *ctx = pixel_ctx_new();
        long inst = 0;
        for (int k = 0; k < 3; k++) {
            pixel_outcome oc;
            if (!ctx || pixel_process(p, ctx, LINE, strlen(LINE), &oc, NULL) != 0) {
                return (void *)1;
            }
            long now =
                (long)pixel_value_int(pixel_value_at(pixel_ctx_event(ctx), "testmod.instance"));
            if (k > 0 && now != inst) {
                return (void *)1; /* a context kept its instance for its whole life */
            }
            inst = now;
        }
        pixel_ctx_free(ctx);
    }
    return NULL;
}

START_TEST(threads_creating_and_freeing_contexts_stay_bounded)
{
    pixel_pipeline *p = load_ok(ONE_TESTMOD);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn, p), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        ck_assert_ptr_null(bad);
    }
    /* Every context is gone: one spare is left of up to NTHREADS at a time. */
    ck_assert_int_eq(instances(p), 1);
    pixel_pipeline_free(p);
}
END_TEST

/*
 * useragent keeps the results it caches as images that events point into.
 * One event enriched again and again (a host re-running the stage with a
 * new user agent each time) evicts entry after entry from a 4-entry cache,
 * while the event keeps every earlier result, moved aside.  Each must still
 * read as the result of its own user agent: an entry is freed only once a
 * later event comes (pixel_module_event_serial()), never under this one.
 * (Before, an entry was freed at the eviction after its own; ASan saw the
 * read after free, and without it the results read as other agents'.)
 */
#define UA_PIPE(cache)                                                                             \
    "pipeline: {name: t, version: '1'}\n"                                                          \
    "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"                           \
    "fields: {a: query.a, client.user_agent: log.user_agent}\n"                                    \
    "enrich:\n  - module: {name: useragent, config: {cache_size: " cache "}}\n"

static pixel_pipeline *load_real(const char *yaml)
{
    char dirs_buf[4096];
    const char *env = getenv("PIXEL_MODULE_BUILD_DIRS");
    ck_assert_msg(env != NULL, "PIXEL_MODULE_BUILD_DIRS is not set (run through meson test)");
    ck_assert_msg(access("/usr/share/uap-core/regexes.yaml", R_OK) == 0,
                  "/usr/share/uap-core/regexes.yaml is missing: tools/setup-debian.sh installs "
                  "uap-core");
    snprintf(dirs_buf, sizeof(dirs_buf), "%s", env);
    const char *dirs[16];
    size_t n = 0;
    for (char *save = NULL, *d = strtok_r(dirs_buf, ":", &save); d && n < 15;
         d = strtok_r(NULL, ":", &save)) {
        dirs[n++] = d;
    }
    dirs[n] = NULL;
    pixel_pipeline_options o = PIXEL_PIPELINE_OPTIONS_INIT;
    o.module_dirs = dirs;
    pixel_pipeline *p = NULL;
    pixel_error err;
    char buf[900];
    int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), "test.yaml", ".", &o, &err);
    ck_assert_msg(rc == 0, "load failed: %s", pixel_error_format(&err, buf, sizeof(buf)));
    return p;
}

/* The event of LINE, enriched once per agent, each client.ua moved to ua<k>; its JSON. */
static char *enrich_many(const pixel_pipeline *p, pixel_ctx *ctx, const char *const *agents,
                         int n)
{
    pixel_outcome oc;
    pixel_error err;
    char buf[900];
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_parse(p, ctx, LINE, strlen(LINE), &oc, &err), 0);
    ck_assert_int_eq(pixel_map(p, ctx, &oc, &err), 0);
    pixel_value *ev = pixel_ctx_event(ctx);
    for (int k = 0; k < n; k++) {
        pixel_value *ua = pixel_value_new_string(ctx, agents[k], strlen(agents[k]));
        ck_assert_int_eq(pixel_value_set_at(ctx, ev, "client.user_agent", ua), 0);
        ck_assert_msg(pixel_enrich(p, ctx, &oc, &err) == 0, "enrich: %s",
                      pixel_error_format(&err, buf, sizeof(buf)));
        ck_assert_int_eq(oc, PIXEL_OUTCOME_PENDING);
        pixel_value *res = pixel_value_at(ev, "client.ua");
        ck_assert_ptr_nonnull(res);
        ck_assert_int_eq(pixel_value_remove_at(ev, "client.ua"), 1);
        char key[16];
        snprintf(key, sizeof(key), "ua%d", k);
        ck_assert_int_eq(pixel_object_set(ctx, ev, key, res), 0);
    }
    ck_assert_int_eq(pixel_validate(p, ctx, &oc, &err), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
    size_t len = 0;
    const char *json = pixel_ctx_output(ctx, p, &len);
    ck_assert_ptr_nonnull(json);
    return strndup(json, len);
}

START_TEST(useragent_results_outlive_evictions_within_one_event)
{
    static const char *const agents[] = {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.6 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "curl/8.5.0",
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Wget/1.21.4",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "python-requests/2.32.3",
    };
    const int n = (int)(sizeof(agents) / sizeof(agents[0]));
    pixel_pipeline *cached = load_real(UA_PIPE("4")), *plain = load_real(UA_PIPE("0"));
    pixel_ctx *a = pixel_ctx_new(), *b = pixel_ctx_new();
    /* each event is checked against the same one made without a cache */
    for (int round = 0; round < 3; round++) {
        char *got = enrich_many(cached, a, agents, n);
        char *want = enrich_many(plain, b, agents, n);
        ck_assert_str_eq(got, want);
        ck_assert_ptr_nonnull(strstr(want, "\"ua11\":{\"browser\":{\"family\":\"Python Requests\""));
        free(got);
        free(want);
    }
    pixel_ctx_free(a);
    pixel_ctx_free(b);
    pixel_pipeline_free(cached);
    pixel_pipeline_free(plain);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("module_instances");
    TCase *tc = tcase_create("release");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, many_contexts_created_and_freed_keep_one_instance);
    tcase_add_test(tc, live_contexts_keep_their_own_instances_and_the_spare_is_reused);
    tcase_add_test(tc, a_context_is_released_from_every_pipeline_and_entry);
    tcase_add_test(tc, a_context_may_outlive_its_pipeline);
    tcase_add_test(tc, threads_creating_and_freeing_contexts_stay_bounded);
    tcase_add_test(tc, useragent_results_outlive_evictions_within_one_event);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
