/*
 * The official JSON Schema Test Suite, run against libpixel's validator.
 *
 * Reads $PIXEL_SHARED_DIR/conformance/JSON-Schema-Test-Suite (exits 77 when
 * it is absent), serves remotes/ at http://localhost:1234/ from the files,
 * and runs draft2020-12, draft2019-09 and draft7: the required tests, the
 * optional ones, and optional/format with format assertion on.  Prints
 * passed/failed/skipped per file and per draft and bucket.  Fails when a
 * required test fails, or an optional one fails that is not listed in
 * known-failures.txt (next to this file; $PIXEL_SOURCE_DIR/tests/validate).
 *
 * Every test runs three ways: as callers do (with an error callback), through
 * the full evaluation alone, and through the boolean pass alone
 * (schema_eval.c); the three verdicts must agree, and an invalid verdict must
 * come with at least one error (a valid one with none).
 *
 * PIXEL_CONFORMANCE_VERBOSE=1 prints every failure; an argument filters
 * files by substring (e.g. `conformance draft2020-12/ref.json`).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/schema.h"
#include "pixel_private.h"
#include "validate/schema_private.h"

enum { REQUIRED, OPTIONAL, FORMAT, NBUCKETS };
static const char *const BUCKETS[] = {"required", "optional", "format"};

typedef struct counts {
    unsigned pass, fail, known, skip;
} counts;

static char **known;
static size_t nknown;
static int verbose;
static const char *filter;

static int count_error(const pixel_schema_error *e, void *payload)
{
    (void)e;
    ++*(unsigned *)payload;
    return 0;
}

/* 1 valid, 0 invalid, -1 error; -2 when the passes disagree with each other. */
static int verdict(const pixel_schema *s, const pixel_value *data, unsigned flags)
{
    unsigned nerr = 0;
    int vr = pixel_schema_validate(s, data, flags, count_error, &nerr);
    int full = pixel_schema_validate(s, data, flags | SFLAG_FULL_ONLY, NULL, NULL);
    int quick = pixel_schema_validate(s, data, flags | SFLAG_QUICK_ONLY, NULL, NULL);
    if (vr != full || vr != quick || (vr == 1) != (nerr > 0)) {
        return -2;
    }
    return vr == 0 ? 1 : vr == 1 ? 0 : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

static void load_known(const char *path)
{
    size_t len;
    char *text = slurp(path, &len);
    if (!text) {
        return;
    }
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        char *hash = strstr(line, "  #");
        if (hash) {
            *hash = '\0';
        }
        size_t l = strlen(line);
        while (l > 0 && line[l - 1] == ' ') {
            line[--l] = '\0';
        }
        known = realloc(known, (nknown + 1) * sizeof(*known));
        known[nknown++] = strdup(line);
    }
    free(text);
}

/* "draft/file.json | case | test" listed? A line may end in '*' to match a prefix. */
static int is_known(const char *id)
{
    for (size_t i = 0; i < nknown; i++) {
        size_t l = strlen(known[i]);
        if (l && known[i][l - 1] == '*' ? strncmp(known[i], id, l - 1) == 0
                                       : strcmp(known[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

static int str_len(const pixel_value *o, const char *k)
{
    size_t n = 0;
    pixel_value_string(pixel_object_get(o, k), &n);
    return (int)n;
}

static const char *str_member(const pixel_value *o, const char *k)
{
    size_t n;
    const char *s = pixel_value_string(pixel_object_get(o, k), &n);
    return s ? s : "";
}

static int draft_default(const char *draft)
{
    if (strcmp(draft, "draft7") == 0) {
        return PIXEL_SCHEMA_DRAFT_7;
    }
    return strcmp(draft, "draft2019-09") == 0 ? PIXEL_SCHEMA_DRAFT_2019_09
                                              : PIXEL_SCHEMA_DRAFT_2020_12;
}

static void run_file(const char *suite, const char *draft, const char *rel, int bucket,
                     counts *total)
{
    char path[2048], id[2048];
    snprintf(path, sizeof(path), "%s/tests/%s/%s", suite, draft, rel);
    size_t len;
    char *text = slurp(path, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        total->fail++;
        return;
    }
    pixel_arena arena;
    pixel__arena_init(&arena);
    pixel_error err;
    pixel_error_clear(&err);
    pixel_value *cases = pixel__json_parse(&arena, text, len, &err);
    counts c = {0};
    char remotes[2048];
    snprintf(remotes, sizeof(remotes), "%s/remotes", suite);
    for (const pixel_value *cs = pixel_value_first(cases); cs; cs = pixel_value_next(cs)) {
        const pixel_value *schema = pixel_object_get(cs, "schema");
        pixel_buf b = {0};
        pixel__json_dump(&b, schema);
        pixel_schema_registry *reg = NULL;
        const pixel_schema *s = NULL;
        pixel_error_clear(&err);
        int rc = pixel_schema_registry_new(&reg, draft_default(draft), &err);
        if (rc == 0) {
            rc = pixel_schema_registry_map(reg, "http://localhost:1234/", remotes, &err);
        }
        if (rc == 0) {
            rc = pixel_schema_registry_add_json(reg, NULL, b.data, b.len, &err);
        }
        if (rc == 0) {
            rc = pixel_schema_compile(&s, reg, pixel_schema_registry_last_uri(reg), &err);
        }
        pixel__buf_free(&b);
        unsigned flags = bucket == FORMAT ? PIXEL_SCHEMA_ASSERT_FORMAT : 0;
        const pixel_value *tests = pixel_object_get(cs, "tests");
        for (const pixel_value *t = pixel_value_first(tests); t; t = pixel_value_next(t)) {
            int want = pixel_value_bool(pixel_object_get(t, "valid"));
            int got = -1;
            if (rc == 0) {
                got = verdict(s, pixel_object_get(t, "data"), flags);
            }
            snprintf(id, sizeof(id), "%s/%s | %.*s | %.*s", draft, rel,
                     str_len(cs, "description"), str_member(cs, "description"),
                     str_len(t, "description"), str_member(t, "description"));
            if (got == want) {
                c.pass++;
            } else if (bucket != REQUIRED && is_known(id)) {
                c.known++;
            } else {
                c.fail++;
                if (verbose) {
                    char eb[800];
                    printf("  FAIL %s (expected %s, got %s%s%s)\n", id,
                           want ? "valid" : "invalid",
                           got == -2 ? "disagreeing passes" : got < 0 ? "error" : got ? "valid" : "invalid", rc ? ": " : "",
                           rc ? pixel_error_format(&err, eb, sizeof(eb)) : "");
                    if (rc) {
                        printf("       at pointer %s\n", err.pointer);
                    }
                }
            }
        }
        pixel_schema_registry_free(reg);
    }
    printf("%-14s %-8s %-45s %4u passed %3u failed %3u known %3u skipped\n", draft,
           BUCKETS[bucket], rel, c.pass, c.fail, c.known, c.skip);
    total->pass += c.pass;
    total->fail += c.fail;
    total->known += c.known;
    total->skip += c.skip;
    pixel__arena_release(&arena);
    free(text);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *suite, const char *draft, const char *sub, int bucket,
                    counts *total)
{
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s/tests/%s/%s", suite, draft, sub);
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0) {
            char rel[512];
            snprintf(rel, sizeof(rel), "%s%s", sub, de->d_name);
            names[n++] = strdup(rel);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    for (size_t i = 0; i < n; i++) {
        char full[2048];
        snprintf(full, sizeof(full), "%s/%s", draft, names[i]);
        if (!filter || strstr(full, filter)) {
            run_file(suite, draft, names[i], bucket, total);
        }
        free(names[i]);
    }
}

int main(int argc, char **argv)
{
    const char *shared = getenv("PIXEL_SHARED_DIR");
    char suite[1024];
    snprintf(suite, sizeof(suite), "%s/conformance/JSON-Schema-Test-Suite",
             shared ? shared : "../shared");
    char probe[2048];
    snprintf(probe, sizeof(probe), "%s/tests", suite);
    DIR *d = opendir(probe);
    if (!d) {
        printf("SKIP: the JSON Schema Test Suite is not at %s (set PIXEL_SHARED_DIR)\n", suite);
        return 77;
    }
    closedir(d);
    verbose = getenv("PIXEL_CONFORMANCE_VERBOSE") != NULL;
    filter = argc > 1 ? argv[1] : NULL;
    const char *src = getenv("PIXEL_SOURCE_DIR");
    char kpath[1024];
    snprintf(kpath, sizeof(kpath), "%s/tests/validate/known-failures.txt", src ? src : ".");
    load_known(kpath);

    static const char *const drafts[] = {"draft2020-12", "draft2019-09", "draft7"};
    counts all[3][NBUCKETS];
    memset(all, 0, sizeof(all));
    for (size_t i = 0; i < 3; i++) {
        run_dir(suite, drafts[i], "", REQUIRED, &all[i][REQUIRED]);
        run_dir(suite, drafts[i], "optional/", OPTIONAL, &all[i][OPTIONAL]);
        run_dir(suite, drafts[i], "optional/format/", FORMAT, &all[i][FORMAT]);
    }
    int bad = 0;
    printf("\nsummary (passed/failed/known/skipped):\n");
    for (size_t i = 0; i < 3; i++) {
        for (int b = 0; b < NBUCKETS; b++) {
            counts *c = &all[i][b];
            unsigned tot = c->pass + c->fail + c->known;
            printf("  %-13s %-9s %5u/%u/%u/%u  (%.1f%%)\n", drafts[i], BUCKETS[b], c->pass,
                   c->fail, c->known, c->skip, tot ? 100.0 * c->pass / tot : 100.0);
            bad |= c->fail != 0;
        }
    }
    for (size_t i = 0; i < nknown; i++) {
        free(known[i]);
    }
    free(known);
    return bad ? 1 : 0;
}
