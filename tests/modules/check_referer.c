/*
 * referer's cache: per-thread instances, each with a set-associative cache
 * that replaces its least recently used entries.
 *
 * The module's answer must not depend on the cache: a few thousand lines
 * of referers (search terms, paid landing pages, internal hosts, hosts in
 * capitals, userinfo and ports, strings too long to cache, repeats and
 * one-offs) give the same JSON with the cache off (cache_size 0), tiny (so
 * that nearly every new string evicts another), small and at its default;
 * the same as each line alone in a pipeline of its own (no state carried
 * from line to line); and the same on several threads at once.  And the
 * cache must follow the traffic: after more distinct referers than it
 * holds, a referer that then repeats is a hit (stats()).
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixel/module.h"
#include "pixel/pixel.h"

/* ---- pipelines ---- */

/* The colon-separated module directories in buf as a NULL-ended list of
 * at most 15 (buf is cut in place). */
static void split_dirs(char *buf, const char *dirs[16])
{
    size_t n = 0;
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d && n < 15;
         d = strtok_r(NULL, ":", &save)) {
        dirs[n++] = d;
    }
    dirs[n] = NULL;
}

/* Loads the pipeline of one referer entry with `config` appended to its
 * options (NULL: none); returns the status, the error in err. */
static int try_load(const char *config, pixel_pipeline **p, pixel_error *err)
{
    char dirs_buf[4096], yaml[2048];
    const char *env = getenv("PIXEL_MODULE_BUILD_DIRS"), *data = getenv("PIXEL_MODULE_TEST_DATA");
    ck_assert_msg(env && data, "PIXEL_MODULE_BUILD_DIRS or PIXEL_MODULE_TEST_DATA is not set "
                               "(run through meson test)");
    snprintf(dirs_buf, sizeof(dirs_buf), "%s", env);
    const char *dirs[16];
    split_dirs(dirs_buf, dirs);
    snprintf(yaml, sizeof(yaml),
             "pipeline: {name: t, version: '1'}\n"
             "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"
             "fields: {page.url: query.url, page.referrer: log.referer}\n"
             "enrich:\n"
             "  - module: {name: referer, config: {table: %s/referers-test.yaml, "
             "internal_hosts: [example.org]%s%s}}\n",
             data, config ? ", " : "", config ? config : "");
    pixel_pipeline_options o = PIXEL_PIPELINE_OPTIONS_INIT;
    o.module_dirs = dirs;
    *p = NULL;
    pixel_error_clear(err);
    return pixel_pipeline_load_string(p, yaml, strlen(yaml), "test.yaml", ".", &o, err);
}

static pixel_pipeline *load(const char *config)
{
    pixel_pipeline *p;
    pixel_error err;
    char buf[900];
    int rc = try_load(config, &p, &err);
    ck_assert_msg(rc == 0, "load failed: %s", pixel_error_format(&err, buf, sizeof(buf)));
    return p;
}

/* A counter of the stats() line of each referer instance of p, summed
 * (hits, misses, uncached); the number of instances in *instances. */
static unsigned long stat_sum(const pixel_pipeline *p, const char *name, int *instances)
{
    char stats[8192], key[32];
    pixel_pipeline_module_stats(p, stats, sizeof(stats));
    snprintf(key, sizeof(key), " %s=", name);
    unsigned long sum = 0;
    int lines = 0;
    for (const char *s = stats; *s;) {
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)len, s);
        const char *at = strstr(line, key);
        ck_assert_msg(strstr(line, " referer ") && at, "no %s in the stats line '%s'", name, line);
        sum += strtoul(at + strlen(key), NULL, 10);
        lines++;
        s += len + (eol ? 1 : 0);
    }
    if (instances) {
        *instances = lines;
    }
    return sum;
}

/* ---- lines ---- */

/* A pixel line whose page is `page` (percent-encoded into the query; NULL:
 * none) and whose referer field is `ref`. */
static char *line_of(const char *page, const char *ref)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t cap = 200 + strlen(ref) + (page ? 3 * strlen(page) : 0);
    char *l = malloc(cap), *w = l;
    ck_assert_ptr_nonnull(l);
    w += sprintf(w, "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?a=1");
    if (page) {
        w += sprintf(w, "&url=");
        for (const unsigned char *c = (const unsigned char *)page; *c; c++) {
            if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                *c == '-' || *c == '.' || *c == '_' || *c == '~') {
                *w++ = (char)*c;
            } else {
                *w++ = '%';
                *w++ = hex[*c >> 4];
                *w++ = hex[*c & 15];
            }
        }
    }
    sprintf(w, " HTTP/1.1\" 200 43 \"%s\" \"Mozilla/5.0 (X11)\"", ref);
    return l;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A few popular strings and many rare ones. */
static unsigned pick_k(uint64_t *s)
{
    return rng_next(s) % 2 ? (unsigned)(rng_next(s) % 4) : (unsigned)(rng_next(s) % 2000);
}

/* Referers and pages, most with a number (%u) that makes each one of a few
 * popular strings or one of many rare ones (the forms without one ignore
 * it). */
static const char *const ref_forms[] = {
    "https://www.google.com/search?q=term+%u&hl=en",
    "https://www.google.co.uk/",
    "https://yandex.ru/search/?text=%%D0%%B4%%D0%%BE%%D0%%BC%u",
    "https://m.facebook.com/story.php?id=%u",
    "https://mail.google.com/mail/u/%u/",
    "https://blog%u.example.org/post", /* internal_hosts */
    "https://www.example.com/p%u",     /* the page's host, on most pages */
    "https://news%u.example.net/item?id=1",
    "not-a-url-%u",
    "https://WWW.Google.com/search?q=Caps%u",
    "https://user@www.google.com:443/search?q=x%u",
    "https://www.google.com/search?q=%%FF%u", /* a term that is not UTF-8 */
    "https://www.googleadservices.com/pagead/aclk?sa=%u",
    "https://www.google.com/search?q=a#q=%u",
    "https://www.google.com",
    "", /* direct */
};
static const char *const page_forms[] = {
    "https://www.example.com/home/%u",
    "https://www.example.com/home/%u?gclid=abc",
    "https://www.example.com/s?utm_medium=cpc&utm_source=%u",
    "https://www.example.com/x#frag?gclid=%u",
    "https://m.example.com/home/%u",
    "https://www.example.com:8443/a%u",
    "https://www.example.com.evil.net/a%u",
    "https://u@www.google.com/a?gclid=%u",
    "https://www.google.com/maps/%u",
    "https://www.example.com",
    "https://www.example.com?msclkid=%u",
    "no-scheme-page-%u",
    "https://www.example.com/home/%u",
    NULL, /* no page */
};

static char *make_line(uint64_t *s)
{
    char ref[600], page[200];
    size_t nr = sizeof(ref_forms) / sizeof(ref_forms[0]);
    size_t np = sizeof(page_forms) / sizeof(page_forms[0]);
    size_t i = (size_t)(rng_next(s) % (nr + 1));
    if (i == nr) { /* too long to cache */
        char y[301];
        memset(y, 'y', 300);
        y[300] = '\0';
        snprintf(ref, sizeof(ref), "https://www.google.com/search?x=%s&q=long%u", y, pick_k(s));
    } else {
        snprintf(ref, sizeof(ref), ref_forms[i], pick_k(s));
    }
    const char *pf = page_forms[rng_next(s) % np];
    if (pf) {
        snprintf(page, sizeof(page), pf, pick_k(s));
    }
    return line_of(pf ? page : NULL, ref);
}

#define NLINES 6000

static char **make_lines(uint64_t seed)
{
    char **lines = calloc(NLINES, sizeof(char *));
    ck_assert_ptr_nonnull(lines);
    for (int i = 0; i < NLINES; i++) {
        lines[i] = make_line(&seed);
    }
    return lines;
}

static void free_lines(char **lines, int n)
{
    for (int i = 0; i < n; i++) {
        free(lines[i]);
    }
    free(lines);
}

/* The outcome and JSON of one line (malloc'd): "event {...}", or the outcome. */
static char *run_line(const pixel_pipeline *p, pixel_ctx *ctx, const char *line)
{
    pixel_outcome oc;
    pixel_error err;
    char buf[900];
    pixel_error_clear(&err);
    int rc = pixel_process(p, ctx, line, strlen(line), &oc, &err);
    if (rc != 0) {
        return strdup(pixel_error_format(&err, buf, sizeof(buf)));
    }
    if (oc != PIXEL_OUTCOME_EVENT) {
        snprintf(buf, sizeof(buf), "outcome %d", (int)oc);
        return strdup(buf);
    }
    size_t len = 0;
    const char *json = pixel_ctx_output(ctx, p, &len);
    return json ? strndup(json, len) : strdup("no output");
}

static char **run_all(const pixel_pipeline *p, char *const *lines, int n)
{
    char **out = calloc((size_t)n, sizeof(char *));
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(ctx);
    for (int i = 0; i < n; i++) {
        out[i] = run_line(p, ctx, lines[i]);
    }
    pixel_ctx_free(ctx);
    return out;
}

static void assert_same(char *const *got, char *const *want, int n, const char *what,
                        char *const *lines)
{
    for (int i = 0; i < n; i++) {
        ck_assert_msg(strcmp(got[i], want[i]) == 0, "%s, line %d (%s):\n  got  %s\n  want %s", what,
                      i, lines[i], got[i], want[i]);
    }
}

/* ---- tests ---- */

START_TEST(the_same_results_with_the_cache_off_tiny_small_and_default)
{
    char **lines = make_lines(0x9e3779b97f4a7c15ull);
    pixel_pipeline *off = load("cache_size: 0"), *tiny = load("cache_size: 4"),
                   *small = load("cache_size: 64"), *dflt = load(NULL);
    char **want = run_all(off, lines, NLINES);
    char **t = run_all(tiny, lines, NLINES), **s = run_all(small, lines, NLINES),
         **d = run_all(dflt, lines, NLINES);
    assert_same(t, want, NLINES, "cache_size 4", lines);
    assert_same(s, want, NLINES, "cache_size 64", lines);
    assert_same(d, want, NLINES, "the default cache", lines);
    /* What the lines were: every medium, terms, paid with and without a
       source, and direct. */
    static const char *const expect[] = {
        "\"referer\":{\"medium\":\"search\",\"source\":\"Google\",\"host\":\"www.google.com\","
        "\"term\":\"term ",
        "\"referer\":{\"medium\":\"search\",\"source\":\"Yandex\",\"host\":\"yandex.ru\",\"term\":"
        "\"дом",
        "\"referer\":{\"medium\":\"social\",\"source\":\"Facebook\"",
        "\"referer\":{\"medium\":\"email\",\"source\":\"Gmail\"",
        "\"referer\":{\"medium\":\"internal\",\"host\":\"www.example.com\"}",
        "\"referer\":{\"medium\":\"internal\",\"host\":\"www.google.com\"}",
        "\"referer\":{\"medium\":\"internal\",\"host\":\"blog",
        "\"referer\":{\"medium\":\"unknown\",\"host\":\"news",
        "\"referer\":{\"medium\":\"unknown\"}",
        "\"referer\":{\"medium\":\"paid\",\"source\":\"Google\",\"host\":\"www.google.com\","
        "\"term\":\"term ",
        "\"referer\":{\"medium\":\"paid\",\"host\":\"news",
        "\"referer\":{\"medium\":\"paid\",\"source\":\"Google Ads\"",
        "\"referer\":{\"medium\":\"search\",\"source\":\"Google\",\"host\":\"WWW.Google.com\","
        "\"term\":\"Caps",
        "\"referer\":{\"medium\":\"search\",\"source\":\"Google\",\"host\":\"www.google.com\","
        "\"term\":\"long",
        "\"referer\":{\"medium\":\"search\",\"source\":\"Google\",\"host\":\"www.google.com\"}",
        "\"referer\":{\"medium\":\"direct\"}",
        "\"referer\":{\"medium\":\"paid\"}",
    };
    for (size_t k = 0; k < sizeof(expect) / sizeof(expect[0]); k++) {
        int found = 0;
        for (int i = 0; i < NLINES && !found; i++) {
            found = strstr(want[i], expect[k]) != NULL;
        }
        ck_assert_msg(found, "no line gave %s", expect[k]);
    }
    /* The tiny cache really evicted, and still hit; no cache: no lookups. */
    ck_assert_uint_gt(stat_sum(tiny, "misses", NULL), 2000);
    ck_assert_uint_gt(stat_sum(tiny, "hits", NULL), 20);
    ck_assert_uint_gt(stat_sum(dflt, "hits", NULL), stat_sum(tiny, "hits", NULL));
    ck_assert_uint_eq(stat_sum(off, "hits", NULL) + stat_sum(off, "misses", NULL), 0);
    ck_assert_uint_gt(stat_sum(off, "uncached", NULL), NLINES / 2);
    free_lines(want, NLINES);
    free_lines(t, NLINES);
    free_lines(s, NLINES);
    free_lines(d, NLINES);
    free_lines(lines, NLINES);
    pixel_pipeline_free(off);
    pixel_pipeline_free(tiny);
    pixel_pipeline_free(small);
    pixel_pipeline_free(dflt);
}
END_TEST

/* What a line gives after thousands of others (whose strings and pages the
 * instance remembers) is what it gives alone, in a pipeline of its own. */
START_TEST(a_line_after_many_gives_what_it_gives_alone)
{
    char **lines = make_lines(0x2545f4914f6cdd1dull);
    pixel_pipeline *tiny = load("cache_size: 4"), *dflt = load(NULL);
    char **t = run_all(tiny, lines, NLINES), **d = run_all(dflt, lines, NLINES);
    for (int i = 0; i < NLINES; i++) {
        pixel_pipeline *alone = load(i % 2 ? "cache_size: 0" : NULL);
        char **want = run_all(alone, &lines[i], 1);
        ck_assert_msg(strcmp(t[i], want[0]) == 0 && strcmp(d[i], want[0]) == 0,
                      "line %d (%s):\n  cache_size 4  %s\n  the default   %s\n  alone         %s",
                      i, lines[i], t[i], d[i], want[0]);
        free_lines(want, 1);
        pixel_pipeline_free(alone);
    }
    free_lines(t, NLINES);
    free_lines(d, NLINES);
    free_lines(lines, NLINES);
    pixel_pipeline_free(tiny);
    pixel_pipeline_free(dflt);
}
END_TEST

/* The first cache kept its first 1,024 strings for good: a string that came
 * later was classified on every line.  Now a repeat after more distinct
 * strings than the cache holds is a hit. */
static void repeats_hit_after(const char *config, int distinct)
{
    pixel_pipeline *p = load(config);
    pixel_ctx *ctx = pixel_ctx_new();
    for (int i = 0; i < distinct; i++) {
        char ref[128];
        snprintf(ref, sizeof(ref), "https://site%d.example.net/page?id=%d", i, i);
        char *l = line_of("https://www.example.com/a", ref);
        free(run_line(p, ctx, l));
        free(l);
    }
    unsigned long hits = stat_sum(p, "hits", NULL), misses = stat_sum(p, "misses", NULL);
    ck_assert_uint_ge(misses, (unsigned long)distinct);
    char *l = line_of("https://www.example.com/b", "https://www.google.com/search?q=again");
    for (int i = 0; i < 100; i++) {
        char *out = run_line(p, ctx, l);
        ck_assert_msg(strstr(out, "\"referer\":{\"medium\":\"search\",\"source\":\"Google\","
                                  "\"host\":\"www.google.com\",\"term\":\"again\"}"),
                      "%s", out);
        free(out);
    }
    free(l);
    ck_assert_uint_eq(stat_sum(p, "misses", NULL), misses + 1);
    ck_assert_uint_eq(stat_sum(p, "hits", NULL), hits + 99);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}

START_TEST(a_repeat_after_more_strings_than_the_cache_holds_is_a_hit)
{
    repeats_hit_after(NULL, 3000); /* the default: 1,024 */
    repeats_hit_after("cache_size: 16", 500);
}
END_TEST

START_TEST(cache_size_is_checked)
{
    static const char *const bad[] = {"cache_size: -1", "cache_size: 16777217", "cache_size: x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pixel_pipeline *p;
        pixel_error err;
        char buf[900];
        ck_assert_int_eq(try_load(bad[i], &p, &err), PIXEL_ECONFIG);
        ck_assert_ptr_null(p);
        ck_assert_msg(strstr(pixel_error_format(&err, buf, sizeof(buf)), "cache_size"), "%s: %s",
                      bad[i], buf);
    }
}
END_TEST

/* Threads, each with its own context (so its own instance and cache), all
 * on one pipeline: each gives the single-threaded answer. */
#define NTHREADS 4

typedef struct job {
    const pixel_pipeline *p;
    char **lines;
    char **want;
    int bad;        /* the first line that differed, + 1 */
    pixel_ctx *ctx; /* freed once the stats are read */
} job;

static void *worker(void *arg)
{
    job *j = arg;
    pixel_ctx *ctx = pixel_ctx_new();
    for (int i = 0; ctx && i < NLINES && !j->bad; i++) {
        char *got = run_line(j->p, ctx, j->lines[i]);
        if (strcmp(got, j->want[i]) != 0) {
            j->bad = i + 1;
        }
        free(got);
    }
    if (!ctx) {
        j->bad = -1;
    }
    j->ctx = ctx;
    return NULL;
}

static void threads_agree(const char *config)
{
    char **lines = make_lines(0xc4ceb9fe1a85ec53ull);
    pixel_pipeline *p = load(config), *off = load("cache_size: 0");
    char **want = run_all(off, lines, NLINES);
    job jobs[NTHREADS];
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        jobs[i] = (job){p, lines, want, 0, NULL};
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
    }
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert_msg(jobs[i].bad == 0, "thread %d differs at line %d (%s)", i, jobs[i].bad - 1,
                      jobs[i].bad > 0 ? lines[jobs[i].bad - 1] : "no context");
    }
    /* Each thread had its own instance (while its context lives), and their
       caches were used. */
    int instances = 0;
    ck_assert_uint_gt(stat_sum(p, "hits", &instances), (unsigned long)NTHREADS * 50);
    ck_assert_int_ge(instances, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        pixel_ctx_free(jobs[i].ctx);
    }
    free_lines(want, NLINES);
    free_lines(lines, NLINES);
    pixel_pipeline_free(p);
    pixel_pipeline_free(off);
}

START_TEST(threads_give_the_single_threaded_results)
{
    threads_agree(NULL);
    threads_agree("cache_size: 4");
}
END_TEST

/*
 * An entry evicted while the event that got its result is still in use:
 * one event enriched again and again with a new referer each time, each
 * result moved aside, through a cache of one set.  Every result must still
 * read as its own referer's (an evicted entry is freed only once a later
 * event comes; ASan sees a read after free otherwise).
 */
static char *enrich_many(const pixel_pipeline *p, pixel_ctx *ctx, const char *const *refs, int n)
{
    pixel_outcome oc;
    pixel_error err;
    char buf[900];
    char *l = line_of("https://www.example.com/a", "https://start.example.net/");
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_parse(p, ctx, l, strlen(l), &oc, &err), 0);
    ck_assert_int_eq(pixel_map(p, ctx, &oc, &err), 0);
    pixel_value *ev = pixel_ctx_event(ctx);
    for (int k = 0; k < n; k++) {
        pixel_value *ref = pixel_value_new_string(ctx, refs[k], strlen(refs[k]));
        ck_assert_int_eq(pixel_value_set_at(ctx, ev, "page.referrer", ref), 0);
        ck_assert_msg(pixel_enrich(p, ctx, &oc, &err) == 0, "enrich: %s",
                      pixel_error_format(&err, buf, sizeof(buf)));
        pixel_value *res = pixel_value_at(ev, "referer");
        ck_assert_ptr_nonnull(res);
        ck_assert_int_eq(pixel_value_remove_at(ev, "referer"), 1);
        char key[16];
        snprintf(key, sizeof(key), "r%d", k);
        ck_assert_int_eq(pixel_object_set(ctx, ev, key, res), 0);
    }
    ck_assert_int_eq(pixel_validate(p, ctx, &oc, &err), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
    size_t len = 0;
    const char *json = pixel_ctx_output(ctx, p, &len);
    ck_assert_ptr_nonnull(json);
    char *copy = strndup(json, len);
    free(l); /* the record pointed into it until now */
    return copy;
}

START_TEST(results_outlive_evictions_within_one_event)
{
    static const char *const refs[] = {
        "https://www.google.com/",       "https://m.facebook.com/a",
        "https://mail.google.com/mail/", "https://blog.example.org/x",
        "https://one.example.net/",      "https://www.google.co.uk/",
        "https://two.example.net/",      "https://yandex.ru/",
        "https://three.example.net/",    "https://www.googleadservices.com/",
        "https://four.example.net/",     "https://five.example.net/",
    };
    const int n = (int)(sizeof(refs) / sizeof(refs[0]));
    pixel_pipeline *cached = load("cache_size: 4"), *plain = load("cache_size: 0");
    pixel_ctx *a = pixel_ctx_new(), *b = pixel_ctx_new();
    for (int round = 0; round < 3; round++) {
        char *got = enrich_many(cached, a, refs, n);
        char *want = enrich_many(plain, b, refs, n);
        ck_assert_str_eq(got, want);
        ck_assert_ptr_nonnull(
            strstr(want, "\"r11\":{\"medium\":\"unknown\",\"host\":\"five.example.net\"}"));
        free(got);
        free(want);
    }
    ck_assert_uint_gt(stat_sum(cached, "misses", NULL), (unsigned long)n);
    pixel_ctx_free(a);
    pixel_ctx_free(b);
    pixel_pipeline_free(cached);
    pixel_pipeline_free(plain);
}
END_TEST

/* ---- results reused after validation ---- */

/* The referer pipeline with a schema for its result; the schema's
 * directory (made here) in dir. */
static pixel_pipeline *load_validated_with(char *dir, const char *after)
{
    char dirs_buf[4096], yaml[4096], path[600];
    const char *env = getenv("PIXEL_MODULE_BUILD_DIRS"), *data = getenv("PIXEL_MODULE_TEST_DATA");
    ck_assert_msg(env && data, "PIXEL_MODULE_BUILD_DIRS or PIXEL_MODULE_TEST_DATA is not set");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/event.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"$id\": \"https://t.test/event.json\", \"type\": \"object\",\n"
          " \"properties\": {\"referer\": {\"type\": \"object\",\n"
          "   \"properties\": {\"medium\": {\"type\": \"string\", \"maxLength\": 8},\n"
          "                  \"source\": {\"type\": \"string\"},\n"
          "                  \"host\": {\"type\": \"string\"}}}}}\n",
          f);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(dirs_buf, sizeof(dirs_buf), "%s", env);
    const char *dirs[16];
    split_dirs(dirs_buf, dirs);
    snprintf(yaml, sizeof(yaml),
             "pipeline: {name: t, version: '1'}\n"
             "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"
             "fields: {page.url: query.url, page.referrer: log.referer}\n"
             "enrich:\n"
             "  - module: {name: referer, config: {table: %s/referers-test.yaml}}\n"
             "%s"
             "validate: {schemas: %s, schema: 'https://t.test/event.json'}\n",
             data, after, dir);
    pixel_pipeline_options o = PIXEL_PIPELINE_OPTIONS_INIT;
    o.module_dirs = dirs;
    pixel_pipeline *p = NULL;
    pixel_error err;
    char buf[900];
    pixel_error_clear(&err);
    int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), "test.yaml", ".", &o, &err);
    ck_assert_msg(rc == 0, "load failed: %s", pixel_error_format(&err, buf, sizeof(buf)));
    unlink(path);
    rmdir(dir);
    return p;
}

static pixel_pipeline *load_validated(char *dir)
{
    return load_validated_with(dir, "");
}

/* The line through the stages up to validation (or up to enrichment). */
static void stages(const pixel_pipeline *p, pixel_ctx *ctx, const char *line, bool validate)
{
    pixel_outcome oc;
    pixel_error err;
    pixel_error_clear(&err);
    pixel_ctx_reset(ctx);
    ck_assert_int_eq(pixel_parse(p, ctx, line, strlen(line), &oc, &err), 0);
    ck_assert_int_eq(pixel_map(p, ctx, &oc, &err), 0);
    ck_assert_int_eq(pixel_enrich(p, ctx, &oc, &err), 0);
    if (validate) {
        ck_assert_int_eq(pixel_validate(p, ctx, &oc, &err), 0);
        ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
    }
}

static char *output_of(const pixel_pipeline *p, pixel_ctx *ctx)
{
    size_t n;
    const char *out = pixel_ctx_output(ctx, p, &n);
    ck_assert_ptr_nonnull(out);
    return strndup(out, n);
}

enum {
    EDIT_SET,
    EDIT_ADD,
    EDIT_SET_AT,
    EDIT_REMOVE,
    EDIT_REMOVE_AT,
    EDIT_MOVE_OUT,
    EDIT_APPEND_MOVED,
    EDIT_MODULE_APPEND,
    EDIT_COUNT
};

/* Edit e of the event's referer result; what the output must then hold. */
static const char *edit(pixel_ctx *ctx, int e)
{
    pixel_value *ev = pixel_ctx_event(ctx);
    pixel_value *ref = pixel_object_get(ev, "referer");
    ck_assert_ptr_nonnull(ref);
    switch (e) {
        case EDIT_SET:
            ck_assert_int_eq(
                pixel_object_set(ctx, ref, "medium", pixel_value_new_string(ctx, "changed", 7)), 0);
            return "\"referer\":{\"medium\":\"changed\",\"source\":\"Facebook\"";
        case EDIT_ADD:
            ck_assert_int_eq(pixel_object_set(ctx, ref, "extra", pixel_value_new_int(ctx, 7)), 0);
            return "\"host\":\"m.facebook.com\",\"extra\":7}";
        case EDIT_SET_AT:
            ck_assert_int_eq(pixel_value_set_at(ctx, ev, "referer.source",
                                                pixel_value_new_string(ctx, "Other", 5)),
                             0);
            return "\"medium\":\"social\",\"source\":\"Other\",\"host\"";
        case EDIT_REMOVE:
            ck_assert_int_eq(pixel_object_remove(ref, "host"), 1);
            return "\"referer\":{\"medium\":\"social\",\"source\":\"Facebook\"}";
        case EDIT_REMOVE_AT:
            ck_assert_int_eq(pixel_value_remove_at(ev, "referer.source"), 1);
            return "\"referer\":{\"medium\":\"social\",\"host\":\"m.facebook.com\"}";
        case EDIT_MOVE_OUT: /* a member of the result placed elsewhere */
            ck_assert_int_eq(pixel_object_set(ctx, ev, "moved", pixel_object_get(ref, "host")), 0);
            return "\"source\":\"Facebook\",\"moved\":\"m.facebook.com\"}";
        case EDIT_APPEND_MOVED: {
            pixel_value *arr = pixel_value_new_array(ctx);
            ck_assert_int_eq(pixel_object_set(ctx, ev, "list", arr), 0);
            ck_assert_int_eq(pixel_array_append(arr, pixel_object_get(ref, "source")), 0);
            return "\"referer\":{\"medium\":\"social\",\"\":\"Facebook\"}";
        }
        default:
            ck_assert_int_eq(pixel_module_object_append(ref, "k", 1, pixel_value_new_int(ctx, 1)),
                             0);
            return "\"host\":\"m.facebook.com\",\"k\":1}";
    }
}

/* A result emitted from the module's image is validated and serialized
 * from what the image remembers; any change to it through the public API
 * between validation and output, or between enrichment and validation, is
 * seen: the output has the change, and an invalid change quarantines. */
START_TEST(changes_after_validation_reach_the_output)
{
    char dir[] = "/tmp/pixel-referer-XXXXXX";
    pixel_pipeline *p = load_validated(dir);
    pixel_ctx *ctx = pixel_ctx_new();
    char *line = line_of(NULL, "https://m.facebook.com/a");
    const char *whole = "\"referer\":{\"medium\":\"social\",\"source\":\"Facebook\","
                        "\"host\":\"m.facebook.com\"}";
    for (int round = 0; round < 3; round++) { /* the first ones fill the cache */
        stages(p, ctx, line, true);
        char *out = output_of(p, ctx);
        ck_assert_msg(strstr(out, whole), "%s", out);
        free(out);
    }
    for (int e = 0; e < EDIT_COUNT; e++) {
        for (int twice = 0; twice < 2; twice++) { /* output taken before the edit, or not */
            stages(p, ctx, line, true);
            if (twice) {
                free(output_of(p, ctx));
            }
            const char *want = edit(ctx, e);
            char *out = output_of(p, ctx);
            ck_assert_msg(strstr(out, want) && !strstr(out, whole), "edit %d: %s", e, out);
            free(out);
        }
    }
    /* changed before validation: checked member by member */
    stages(p, ctx, line, false);
    pixel_value *ref = pixel_object_get(pixel_ctx_event(ctx), "referer");
    ck_assert_int_eq(
        pixel_object_set(ctx, ref, "medium", pixel_value_new_string(ctx, "far too long", 12)), 0);
    pixel_outcome oc;
    pixel_error err;
    pixel_error_clear(&err);
    ck_assert_int_eq(pixel_validate(p, ctx, &oc, &err), 0);
    ck_assert_int_eq(oc, PIXEL_OUTCOME_QUARANTINED);
    /* and unchanged again on the next line */
    stages(p, ctx, line, true);
    char *out = output_of(p, ctx);
    ck_assert_msg(strstr(out, whole), "%s", out);
    free(out);
    free(line);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

/* The stages after the module that change its result (a built-in enricher
 * changing a member in place, adding members to it, setting a member under
 * it, another module setting one): the event is validated and serialized
 * as changed, never from what the image remembers. */
/* pixel_enrich() twice on one event: the module's second run reads the event
 * as the first run's later built-ins left it, not the object the map stage
 * made (which a built-in after the module replaced: here `page`, read through
 * the map stage's objects, by a string). */
START_TEST(a_second_enrich_reads_what_the_later_builtins_left)
{
    char dir[] = "/tmp/pixel-referer-XXXXXX";
    pixel_pipeline *p = load_validated_with(dir, "  - event_id: {into: page}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    char *line = line_of("https://www.example.com/home", "https://www.google.com/");
    for (int twice = 0; twice < 2; twice++) {
        stages(p, ctx, line, false);
        pixel_outcome oc;
        pixel_error err;
        pixel_error_clear(&err);
        if (twice) {
            ck_assert_int_eq(pixel_enrich(p, ctx, &oc, &err), 0);
        }
        ck_assert_int_eq(pixel_validate(p, ctx, &oc, &err), 0);
        ck_assert_int_eq(oc, PIXEL_OUTCOME_EVENT);
        char *out = output_of(p, ctx);
        ck_assert_msg(strstr(out, "\"page\":\"") != NULL, "%s", out);
        /* once: the referrer of the mapped page; twice: none left, so direct */
        const char *want = twice ? "\"referer\":{\"medium\":\"direct\"}"
                                 : "\"referer\":{\"medium\":\"search\"";
        ck_assert_msg(strstr(out, want) != NULL, "%s lacks %s", out, want);
        free(out);
    }
    free(line);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(changes_by_later_stages_reach_the_output)
{
    static const char *const after[] = {
        "  - anonymize_ip: {field: referer.host, ipv4_prefix: 24}\n",
        "  - url: {from: page.url, into: referer}\n",
        "  - event_id: {into: referer.id}\n",
        "  - module: {name: referer, config: {table: %s/referers-test.yaml, into: referer.r2}}\n",
    };
    static const char *const want[] = {
        "\"host\":\"10.1.2.0\"",
        "\"host\":\"www.example.com\",\"scheme\":\"https\",\"path\":\"/home\"",
        "\"host\":\"10.1.2.3\",\"id\":\"",
        "\"host\":\"10.1.2.3\",\"r2\":{",
    };
    char *line = line_of("https://www.example.com/home", "https://10.1.2.3/x");
    /* the result as the module alone gives it, from its image */
    char dir[] = "/tmp/pixel-referer-XXXXXX";
    pixel_pipeline *p = load_validated(dir);
    pixel_ctx *ctx = pixel_ctx_new();
    char *whole = NULL;
    for (int round = 0; round < 3; round++) {
        stages(p, ctx, line, true);
        free(whole);
        whole = output_of(p, ctx);
    }
    char *at = strstr(whole, "\"referer\":{");
    ck_assert_ptr_nonnull(at);
    at[strcspn(at, "}") + 1] = '\0';
    ck_assert_ptr_nonnull(strstr(at, "\"host\":\"10.1.2.3\""));
    pixel_pipeline_free(p);
    for (size_t k = 0; k < sizeof(after) / sizeof(after[0]); k++) {
        char extra[600];
        snprintf(extra, sizeof(extra), after[k], getenv("PIXEL_MODULE_TEST_DATA"));
        char d[] = "/tmp/pixel-referer-XXXXXX";
        p = load_validated_with(d, extra);
        for (int round = 0; round < 3; round++) {
            stages(p, ctx, line, true);
            char *out = output_of(p, ctx);
            ck_assert_msg(strstr(out, want[k]) && !strstr(out, at), "%s: %s", extra, out);
            free(out);
        }
        pixel_pipeline_free(p);
    }
    /* the parts of a URL appended to a result that has none (direct) */
    char *direct = line_of("https://www.example.com/home", "");
    char d[] = "/tmp/pixel-referer-XXXXXX";
    p = load_validated_with(d, after[1]);
    for (int round = 0; round < 3; round++) {
        stages(p, ctx, direct, true);
        char *out = output_of(p, ctx);
        ck_assert_msg(strstr(out, "\"referer\":{\"medium\":\"direct\",\"scheme\":\"https\","
                                  "\"host\":\"www.example.com\",\"path\":\"/home\"}"),
                      "%s", out);
        free(out);
    }
    pixel_pipeline_free(p);
    free(direct);
    free(whole);
    free(line);
    pixel_ctx_free(ctx);
}
END_TEST

/* A result placed as deep as the serializer follows objects in one loop
 * (NEST_MAX, json.c) and deeper: written from its image, or walked when a
 * later stage changed it, the same text as where it is shallow. */
START_TEST(deep_results_are_written_as_shallow_ones)
{
    static const char *const paths[] = {"a.b.c.d.e.f.g.h.i", "a.b.c.d.e.f.g.h.i.j.k"};
    char *line = line_of("https://www.example.com/home", "https://10.1.2.3/x");
    char dir[] = "/tmp/pixel-referer-XXXXXX";
    pixel_pipeline *p = load_validated(dir);
    pixel_ctx *ctx = pixel_ctx_new();
    stages(p, ctx, line, true);
    char *whole = output_of(p, ctx);
    char *at = strstr(whole, "\"referer\":{");
    ck_assert_ptr_nonnull(at);
    at += strlen("\"referer\":");
    at[strcspn(at, "}") + 1] = '\0'; /* the result: {...} */
    pixel_pipeline_free(p);
    for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
        for (int edited = 0; edited < 2; edited++) {
            char extra[800], want[600];
            int n = snprintf(extra, sizeof(extra),
                             "  - module: {name: referer, config: {table: %s/referers-test.yaml, "
                             "into: %s}}\n",
                             getenv("PIXEL_MODULE_TEST_DATA"), paths[k]);
            if (edited) {
                snprintf(extra + n, sizeof(extra) - (size_t)n,
                         "  - anonymize_ip: {field: %s.host, ipv4_prefix: 24}\n", paths[k]);
            }
            snprintf(want, sizeof(want), "%s", at);
            if (edited) {
                char *h = strstr(want, "\"host\":\"10.1.2.3\"");
                ck_assert_ptr_nonnull(h);
                memcpy(h + strlen("\"host\":\"10.1.2."), "0\"", 2);
                memmove(h + strlen("\"host\":\"10.1.2.0\""), h + strlen("\"host\":\"10.1.2.3\""),
                        strlen(h + strlen("\"host\":\"10.1.2.3\"")) + 1);
            }
            char d[] = "/tmp/pixel-referer-XXXXXX";
            p = load_validated_with(d, extra);
            for (int round = 0; round < 3; round++) {
                stages(p, ctx, line, true);
                char *out = output_of(p, ctx);
                const char *last = strrchr(paths[k], '.') + 1;
                char key[16];
                snprintf(key, sizeof(key), "\"%s\":", last);
                const char *v = strstr(out, key);
                ck_assert_msg(v != NULL, "%s", out);
                v += strlen(key);
                ck_assert_msg(strncmp(v, want, strlen(want)) == 0, "%s: %s, not %s", extra, out,
                              want);
                free(out);
            }
            pixel_pipeline_free(p);
        }
    }
    free(whole);
    free(line);
    pixel_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("referer");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, the_same_results_with_the_cache_off_tiny_small_and_default);
    tcase_add_test(tc, a_line_after_many_gives_what_it_gives_alone);
    tcase_add_test(tc, a_repeat_after_more_strings_than_the_cache_holds_is_a_hit);
    tcase_add_test(tc, cache_size_is_checked);
    tcase_add_test(tc, threads_give_the_single_threaded_results);
    tcase_add_test(tc, results_outlive_evictions_within_one_event);
    tcase_add_test(tc, changes_after_validation_reach_the_output);
    tcase_add_test(tc, changes_by_later_stages_reach_the_output);
    tcase_add_test(tc, a_second_enrich_reads_what_the_later_builtins_left);
    tcase_add_test(tc, deep_results_are_written_as_shallow_ones);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
