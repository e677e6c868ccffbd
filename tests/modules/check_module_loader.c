/*
 * The module loader: refusals at load (each naming the module, the file and
 * the reason, none crashing the host), drop/fail/error results, config
 * checking, per-thread and shared instances, module search, and reload of a
 * changed module file.  Uses only the public API, like a host.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pixel/module.h"
#include "pixel/pixel.h"
#include "pixel/schema.h"

#define PIPE_HEAD                                                                                  \
    "pipeline: {name: t, version: '1'}\n"                                                          \
    "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"                           \
    "fields: {a: query.a}\n"

#define LINE(q)                                                                                    \
    "203.0.113.9 - - [26/Nov/2026:05:24:46 +0000] \"GET /px.gif?" q                                \
    " HTTP/1.1\" 200 43 \"https://www.example.com/\" \"Mozilla/5.0 (X11)\""

static const char *mod_dir(const char *var)
{
    const char *d = getenv(var);
    ck_assert_msg(d != NULL, "%s is not set (run through meson test)", var);
    return d;
}

static int load(pixel_pipeline **p, const char *yaml, const char *base, pixel_error *err)
{
    const char *dirs[] = {mod_dir("PIXEL_TEST_MODULES_DIR"), NULL};
    pixel_pipeline_options o = PIXEL_PIPELINE_OPTIONS_INIT;
    o.module_dirs = dirs;
    pixel_error_clear(err);
    return pixel_pipeline_load_string(p, yaml, strlen(yaml), "test.yaml", base ? base : ".", &o,
                                      err);
}

static pixel_pipeline *load_ok(const char *yaml)
{
    pixel_pipeline *p = NULL;
    pixel_error err;
    char buf[900];
    int rc = load(&p, yaml, NULL, &err);
    ck_assert_msg(rc == 0, "load failed: %s", pixel_error_format(&err, buf, sizeof(buf)));
    return p;
}

/* The load must fail; returns the formatted error. */
static const char *load_fail(const char *yaml, pixel_error *err)
{
    static char buf[900];
    pixel_pipeline *p = NULL;
    int rc = load(&p, yaml, NULL, err);
    ck_assert_msg(rc < 0, "load unexpectedly succeeded");
    ck_assert_ptr_null(p);
    return pixel_error_format(err, buf, sizeof(buf));
}

#define ASSERT_HAS(s, sub) ck_assert_msg(strstr((s), (sub)) != NULL, "'%s' lacks '%s'", (s), (sub))

static long int_at(pixel_ctx *ctx, const char *path)
{
    pixel_value *v = pixel_value_at(pixel_ctx_event(ctx), path);
    ck_assert_msg(v != NULL, "no %s in the event", path);
    return (long)pixel_value_int(v);
}

static pixel_outcome run(const pixel_pipeline *p, pixel_ctx *ctx, const char *line)
{
    pixel_outcome oc = PIXEL_OUTCOME_PENDING;
    pixel_error err;
    pixel_error_clear(&err);
    char buf[900];
    ck_assert_msg(pixel_process(p, ctx, line, strlen(line), &oc, &err) == 0, "process: %s",
                  pixel_error_format(&err, buf, sizeof(buf)));
    return oc;
}

/* ---- refusals at load ---- */

START_TEST(missing_module_file_is_refused_with_the_directories_searched)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: nosuchmod}\n", &err);
    ck_assert_int_eq(err.code, PIXEL_ECONFIG);
    ASSERT_HAS(msg, "test.yaml:5:");
    ASSERT_HAS(msg, "module 'nosuchmod': no file nosuchmod.so in ");
    ASSERT_HAS(msg, mod_dir("PIXEL_TEST_MODULES_DIR"));
}
END_TEST

START_TEST(missing_path_is_refused)
{
    pixel_error err;
    const char *msg =
        load_fail(PIPE_HEAD "enrich:\n  - module: {path: /nonexistent/dir/gone.so}\n", &err);
    ASSERT_HAS(msg, "module 'gone' (/nonexistent/dir/gone.so): cannot open: No such file");
}
END_TEST

START_TEST(module_of_another_abi_major_is_refused)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: badabi}\n", &err);
    ASSERT_HAS(msg, "module 'badabi' (");
    ASSERT_HAS(msg, "badabi.so): built for module ABI 99.0, but this libpixel loads ABI 1.x");
    ck_assert_int_eq(err.line, 5);
}
END_TEST

START_TEST(too_small_description_is_refused)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: smallstruct}\n", &err);
    ASSERT_HAS(msg, "smallstruct.so): its description is 16 bytes, smaller than");
    ASSERT_HAS(msg, "not binary compatible");
}
END_TEST

START_TEST(name_must_match_the_file)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: wrongname}\n", &err);
    ASSERT_HAS(msg, "it calls itself 'rightname', but the file is wrongname.so");
}
END_TEST

START_TEST(missing_entry_symbol_is_refused)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: nosym}\n", &err);
    ASSERT_HAS(msg, "module 'nosym' (");
    ASSERT_HAS(msg, "nosym.so): no entry symbol pixel_module_entry() (not a libpixel module?)");
}
END_TEST

START_TEST(a_file_that_is_not_a_shared_object_is_refused)
{
    char dir[] = "/tmp/pixel-modtest-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], yaml[600];
    snprintf(path, sizeof(path), "%s/junk.so", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an ELF file\n", f);
    fclose(f);
    snprintf(yaml, sizeof(yaml), PIPE_HEAD "enrich:\n  - module: {path: %s}\n", path);
    pixel_error err;
    const char *msg = load_fail(yaml, &err);
    ASSERT_HAS(msg, "module 'junk' (");
    ASSERT_HAS(msg, "dlopen failed:");
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(bad_config_is_refused_at_the_option)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n"
                                          "  - module:\n"
                                          "      name: testmod\n"
                                          "      config: {colour: red}\n",
                                &err);
    ASSERT_HAS(msg, "test.yaml:7:16: module 'testmod': unknown option 'colour'");
    msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {count: many}}\n", &err);
    ASSERT_HAS(msg, "module 'testmod': option 'count' must be an integer");
    msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {flag: perhaps}}\n",
                    &err);
    ASSERT_HAS(msg, "option 'flag' must be a boolean");
    msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {tags: {a: 1}}}\n",
                    &err);
    ASSERT_HAS(msg, "option 'tags' must be a list of strings");
    msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: [1, 2]}\n", &err);
    ASSERT_HAS(msg, "config must be a mapping of options");
    msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: testmod, colour: red}\n", &err);
    ASSERT_HAS(msg, "colour");
}
END_TEST

START_TEST(module_refusing_its_config_names_module_and_option)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n"
                                          "  - module: {name: testmod, config: {count: 7, "
                                          "fail_create: yes}}\n",
                                &err);
    ck_assert_int_eq(err.code, PIXEL_ECONFIG);
    ASSERT_HAS(msg, "test.yaml:5:");
    ASSERT_HAS(msg, "module 'testmod' (");
    ASSERT_HAS(msg, "testmod.so): refused as asked (count=7)");
    msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {action: dance}}\n",
                    &err);
    ASSERT_HAS(msg, "testmod.so): unknown action 'dance'");
}
END_TEST

START_TEST(module_of_a_newer_abi_minor_needing_a_missing_helper_is_refused)
{
    pixel_error err;
    const char *msg = load_fail(PIPE_HEAD "enrich:\n  - module: {name: futuremod}\n", &err);
    ASSERT_HAS(msg, "module 'futuremod' (");
    ASSERT_HAS(msg, "undefined symbol: pixel_module_helper_from_the_future");
    ASSERT_HAS(msg, "the module needs a newer libpixel: this one loads module ABI 1.");
}
END_TEST

/* ---- ABI 1.1 ---- */

START_TEST(module_built_for_abi_1_0_still_loads_and_runs)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: oldminor}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "testmod.calls"), 1);
    ck_assert_ptr_null(pixel_value_at(pixel_ctx_event(ctx), "testmod.tags"));
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

/* The `tags` testmod copied with pixel_module_config_strings(), as JSON. */
static const char *tags_of(const char *config)
{
    static char out[256];
    char yaml[600];
    snprintf(yaml, sizeof(yaml), PIPE_HEAD "enrich:\n  - module: {name: testmod%s}\n", config);
    pixel_pipeline *p = load_ok(yaml);
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    size_t n;
    const char *json =
        pixel_value_dump(ctx, pixel_value_at(pixel_ctx_event(ctx), "testmod.tags"), &n);
    ck_assert_ptr_nonnull(json);
    snprintf(out, sizeof(out), "%s", json);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    return out;
}

START_TEST(no_copy_helpers_append_and_point)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {into: "
                                          "t.info}}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    size_t n;
    const char *out = pixel_ctx_output(ctx, p, &n);
    ck_assert_ptr_nonnull(out);
    ASSERT_HAS(out, "\"live\":1,\"we\\\"ird\":\"t.info\",\"tags\":[");
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(config_strings_copies_a_list_or_its_default)
{
    ck_assert_str_eq(tags_of(""), "[\"alpha\",\"beta\"]");
    ck_assert_str_eq(tags_of(", config: {tags: [x, \"y z\", '']}"), "[\"x\",\"y z\",\"\"]");
    ck_assert_str_eq(tags_of(", config: {tags: one}"), "[\"one\"]");
    ck_assert_str_eq(tags_of(", config: {tags: []}"), "[]");
}
END_TEST

/* ---- ABI 1.3 ---- */

/* A shape builds what pixel_value_set_at() on a new object, path by path, builds. */
START_TEST(shapes_build_what_set_at_builds)
{
    static const char *const paths[] = {"a.x", "b", "a.y", "c.d.e", "c.f", "we\"ird.k"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 6);
    ck_assert_ptr_nonnull(sh);
    pixel_ctx *ctx = pixel_ctx_new();
    static const int masks[] = {0x3f, 0x00, 0x01, 0x3e, 0x14, 0x08, 0x20};
    for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
        pixel_module_str vals[6];
        pixel_value *want = pixel_value_new_object(ctx);
        for (int i = 0; i < 6; i++) {
            vals[i].s = (masks[m] >> i) & 1 ? "v\"al" + (i % 3) : NULL;
            vals[i].len = 3 - (size_t)(i % 3);
            if (vals[i].s) {
                ck_assert_int_eq(pixel_value_set_at(ctx, want, paths[i],
                                                    pixel_value_new_string(ctx, vals[i].s,
                                                                           vals[i].len)),
                                 0);
            }
        }
        pixel_value *got = pixel_module_shape_build(ctx, sh, vals);
        ck_assert_ptr_nonnull(got);
        size_t n1, n2, isize = pixel_module_shape_image_size(sh);
        char *a = strdup(pixel_value_dump(ctx, want, &n1));
        const char *b = pixel_value_dump(ctx, got, &n2);
        ck_assert_msg(n1 == n2 && strcmp(a, b) == 0, "mask %#x: %s against %s", masks[m], b, a);
        /* the same from an image, twice (each a fresh copy) */
        void *image = malloc(isize);
        ck_assert_int_eq(pixel_module_shape_image(sh, vals, image, isize - 1), -1);
        ck_assert_int_eq(pixel_module_shape_image(sh, vals, image, isize), 0);
        pixel_value *c1 = pixel_module_shape_emit(ctx, sh, image);
        pixel_value *c2 = pixel_module_shape_emit(ctx, sh, image);
        ck_assert_ptr_ne(c1, c2);
        ck_assert_int_eq(pixel_object_set(ctx, c1, "extra", pixel_value_null(ctx)), 0);
        b = pixel_value_dump(ctx, c2, &n2);
        ck_assert_msg(n1 == n2 && strcmp(a, b) == 0, "image, mask %#x: %s against %s", masks[m], b, a);
        free(image);
        free(a);
    }
    pixel_module_shape_free(sh);
    pixel_ctx_free(ctx);
    static const char *const bad[][2] = {{"a", "a"}, {"a", "a.b"}, {"a.b", "a"}, {"a.b", "a.b"},
                                         {"a..b", "c"}, {"", "c"}, {"a.", "c"}, {".a", "c"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(pixel_module_shape_new(bad[i], 2) == NULL, "%s, %s", bad[i][0], bad[i][1]);
    }
    ck_assert_ptr_null(pixel_module_shape_new(NULL, 1));
    ck_assert_ptr_null(pixel_module_shape_new(paths, 0));
    pixel_module_shape_free(NULL);
}
END_TEST

/* ---- ABI 1.4 ---- */

/* What the stages after a module reuse for a result emitted from an image
 * (its JSON text, and that it passed a schema) must follow every change
 * made to the emitted copy: each change below shows in the output and in
 * the verdict, exactly as for the same tree built member by member. */
static const char *dump_in(pixel_ctx *ctx, pixel_value *r)
{
    pixel_value *w = pixel_value_new_object(ctx);
    ck_assert_int_eq(pixel_object_set(ctx, w, "r", r), 0);
    size_t n;
    return pixel_value_dump(ctx, w, &n);
}

static int valid_in(pixel_ctx *ctx, const pixel_schema *s, pixel_value *r, unsigned flags)
{
    pixel_value *w = pixel_value_new_object(ctx);
    ck_assert_int_eq(pixel_object_set(ctx, w, "r", r), 0);
    return pixel_schema_validate(s, w, flags, NULL, NULL);
}

START_TEST(image_memos_follow_changes_to_the_emitted_copy)
{
    static const char *const paths[] = {"a.x", "a.y", "t", "b.z"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 4);
    ck_assert_ptr_nonnull(sh);
    const pixel_module_str vals[4] = {{"abc", 3}, {"q\"t", 3}, {"2026-11-27T00:00:00Z", 20},
                                      {"zz", 2}};
    size_t base = pixel_module_shape_image_size(sh), isize = pixel_module_shape_image_size_for(sh, vals);
    ck_assert_uint_gt(isize, base);
    void *image = malloc(isize);
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, isize), 0);
    pixel_ctx *ctx = pixel_ctx_new();
    char *want = strdup(dump_in(ctx, pixel_module_shape_build(ctx, sh, vals)));
    ck_assert_str_eq(want, "{\"r\":{\"a\":{\"x\":\"abc\",\"y\":\"q\\\"t\"},"
                           "\"t\":\"2026-11-27T00:00:00Z\",\"b\":{\"z\":\"zz\"}}}");
    ck_assert_str_eq(dump_in(ctx, pixel_module_shape_emit(ctx, sh, image)), want);

    /* Each change to a fresh copy, and the same change to a built tree. */
    for (int c = 0; c < 6; c++) {
        pixel_value *e = pixel_module_shape_emit(ctx, sh, image);
        pixel_value *t = pixel_module_shape_build(ctx, sh, vals);
        for (int k = 0; k < 2; k++) {
            pixel_value *v = k ? t : e;
            switch (c) {
                case 0: /* a leaf replaced */
                    ck_assert_int_eq(pixel_value_set_at(ctx, v, "a.x", pixel_value_new_string(ctx, "abcd", 4)), 0);
                    break;
                case 1: /* a member added to an inner object */
                    ck_assert_int_eq(pixel_value_set_at(ctx, v, "b.w", pixel_value_new_int(ctx, 7)), 0);
                    break;
                case 2: /* a member removed */
                    ck_assert_int_eq(pixel_value_remove_at(v, "a.y"), 1);
                    break;
                case 3: /* one added to the result itself */
                    ck_assert_int_eq(pixel_object_set(ctx, v, "n", pixel_value_null(ctx)), 0);
                    break;
                case 4: /* an inner object emptied */
                    ck_assert_int_eq(pixel_value_remove_at(v, "b.z"), 1);
                    break;
                default: /* removed and added back: the order changes */
                    ck_assert_int_eq(pixel_value_remove_at(v, "a"), 1);
                    ck_assert_int_eq(pixel_value_set_at(ctx, v, "a.x", pixel_value_new_string(ctx, "abc", 3)), 0);
                    break;
            }
        }
        char *built = strdup(dump_in(ctx, t));
        ck_assert_str_ne(built, want);
        ck_assert_str_eq(dump_in(ctx, e), built);
        free(built);
    }

    /* The verdict: kept per schema and per format assertion, and only for
       a copy nothing changed. */
    pixel_schema_registry *reg;
    pixel_error err;
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    static const char schema[] =
        "{\"$id\": \"urn:t\", \"type\": \"object\", \"properties\": {\"r\": {\"type\": \"object\","
        " \"properties\": {\"a\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"string\","
        " \"maxLength\": 3}}}, \"t\": {\"type\": \"string\", \"format\": \"date\"}}}}}";
    ck_assert_int_eq(pixel_schema_registry_add_json(reg, NULL, schema, strlen(schema), &err), 0);
    const pixel_schema *s;
    ck_assert_int_eq(pixel_schema_compile(&s, reg, "urn:t", &err), 0);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(valid_in(ctx, s, pixel_module_shape_emit(ctx, sh, image), 0), 0);
        /* t is no date: invalid once format asserts, though the copy passed without */
        ck_assert_int_eq(valid_in(ctx, s, pixel_module_shape_emit(ctx, sh, image),
                                  PIXEL_SCHEMA_ASSERT_FORMAT), 1);
        pixel_value *e = pixel_module_shape_emit(ctx, sh, image);
        ck_assert_int_eq(pixel_value_set_at(ctx, e, "a.x", pixel_value_new_string(ctx, "abcd", 4)), 0);
        ck_assert_int_eq(valid_in(ctx, s, e, 0), 1);
        e = pixel_module_shape_emit(ctx, sh, image);
        ck_assert_int_eq(pixel_value_set_at(ctx, e, "a.x", pixel_value_new_int(ctx, 1)), 0);
        ck_assert_int_eq(valid_in(ctx, s, e, 0), 1);
    }
    /* The image made anew with other values forgets what it knew, and a copy
       made before then keeps its own members. */
    pixel_value *before = pixel_module_shape_emit(ctx, sh, image);
    const pixel_module_str same_shape[4] = {{"abcdef", 6}, {"q", 1}, {"y", 1}, {"z", 1}};
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, same_shape, image, isize), 0);
    ck_assert_str_eq(dump_in(ctx, before), want);
    ck_assert_int_eq(valid_in(ctx, s, before, 0), 0);
    ck_assert_int_eq(valid_in(ctx, s, pixel_module_shape_emit(ctx, sh, image), 0), 1);
    const pixel_module_str long_x[4] = {{"abcde", 5}, {NULL, 0}, {"x", 1}, {NULL, 0}};
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, long_x, image, isize), 0);
    ck_assert_int_eq(valid_in(ctx, s, pixel_module_shape_emit(ctx, sh, image), 0), 1);
    ck_assert_str_eq(dump_in(ctx, pixel_module_shape_emit(ctx, sh, image)),
                     "{\"r\":{\"a\":{\"x\":\"abcde\"},\"t\":\"x\"}}");
    /* An image without room for its text still serializes member by member. */
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, base), 0);
    ck_assert_str_eq(dump_in(ctx, pixel_module_shape_emit(ctx, sh, image)), want);
    pixel_schema_registry_free(reg);
    free(want);
    free(image);
    pixel_ctx_free(ctx);
    pixel_module_shape_free(sh);
}
END_TEST

/* pixel_module_value_image: one number per making of a kept image, for its
 * copies while they are as emitted; 0 for a copy changed since (in any
 * node), and for everything else. */
START_TEST(value_image_names_the_making_of_an_unchanged_copy)
{
    static const char *const paths[] = {"a.x", "a.y", "b.z"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 3);
    ck_assert_ptr_nonnull(sh);
    const pixel_module_str vals[3] = {{"abc", 3}, {"de", 2}, {"f", 1}};
    size_t isize = pixel_module_shape_image_size_for(sh, vals);
    void *image = malloc(isize), *other = malloc(isize), *plain = malloc(isize);
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, isize), 0);
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, other, isize), 0);
    ck_assert_int_eq(pixel_module_shape_image(sh, vals, plain, isize), 0);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *w = pixel_value_new_object(ctx);
    pixel_value *c1 = pixel_module_shape_emit(ctx, sh, image);
    pixel_value *c2 = pixel_module_shape_emit(ctx, sh, image);
    ck_assert_int_eq(pixel_object_set(ctx, w, "c1", c1), 0); /* placed: still as emitted */
    const uint64_t id = pixel_module_value_image(c1);
    ck_assert_uint_ne(id, 0);
    ck_assert_uint_eq(pixel_module_value_image(c2), id);
    ck_assert_uint_ne(pixel_module_value_image(pixel_module_shape_emit(ctx, sh, other)), 0);
    ck_assert_uint_ne(pixel_module_value_image(pixel_module_shape_emit(ctx, sh, other)), id);
    /* not from a kept image, or not a result at all */
    ck_assert_uint_eq(pixel_module_value_image(pixel_module_shape_emit(ctx, sh, plain)), 0);
    ck_assert_uint_eq(pixel_module_value_image(pixel_module_shape_build(ctx, sh, vals)), 0);
    ck_assert_uint_eq(pixel_module_value_image(pixel_value_at(c1, "a")), 0);
    ck_assert_uint_eq(pixel_module_value_image(w), 0);
    ck_assert_uint_eq(pixel_module_value_image(NULL), 0);
    /* a change deep inside one copy: that copy only */
    ck_assert_int_eq(pixel_value_set_at(ctx, c2, "b.z", pixel_value_new_string(ctx, "g", 1)), 0);
    ck_assert_uint_eq(pixel_module_value_image(c2), 0);
    ck_assert_uint_eq(pixel_module_value_image(c1), id);
    pixel_value *c3 = pixel_module_shape_emit(ctx, sh, image);
    ck_assert_int_eq(pixel_value_remove_at(c3, "a.y"), 1);
    ck_assert_uint_eq(pixel_module_value_image(c3), 0);
    ck_assert_uint_eq(pixel_module_value_image(c1), id);
    /* the image made anew: a new number, and the old copies have none */
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, isize), 0);
    ck_assert_uint_eq(pixel_module_value_image(c1), 0);
    const uint64_t again = pixel_module_value_image(pixel_module_shape_emit(ctx, sh, image));
    ck_assert_uint_ne(again, 0);
    ck_assert_uint_ne(again, id);
    pixel_ctx_free(ctx);
    free(image);
    free(other);
    free(plain);
    pixel_module_shape_free(sh);
}
END_TEST

/* pixel_module_event_set_image: what pixel_module_shape_emit() and then
 * pixel_module_event_set() make, with the copy still as emitted; -1 for
 * an argument missing, the event left as it was. */
START_TEST(event_set_image_is_emit_then_set)
{
    static const char *const paths[] = {"a.x", "b"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 2);
    ck_assert_ptr_nonnull(sh);
    const pixel_module_str vals[2] = {{"abc", 3}, {"d", 1}};
    size_t isize = pixel_module_shape_image_size_for(sh, vals);
    void *image = malloc(isize);
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, isize), 0);
    pixel_module_event_path *into = pixel_module_event_path_new(NULL, "r.s");
    ck_assert_ptr_nonnull(into);
    pixel_ctx *ctx = pixel_ctx_new();
    char *want[2];
    for (int k = 0; k < 2; k++) {
        pixel_value *e = pixel_value_new_object(ctx);
        ck_assert_int_eq(pixel_object_set(ctx, e, "z", pixel_value_new_int(ctx, 1)), 0);
        pixel_module_event ev = {.struct_size = (uint32_t)sizeof(ev), .ctx = ctx, .event = e};
        if (k == 0) {
            ck_assert_int_eq(pixel_module_event_set(&ev, into, pixel_module_shape_emit(ctx, sh, image)), 0);
        } else {
            ck_assert_int_eq(pixel_module_event_set_image(&ev, into, sh, image), 0);
        }
        ck_assert_uint_ne(pixel_module_value_image(pixel_value_at(e, "r.s")), 0);
        want[k] = strdup(pixel_value_dump(ctx, e, NULL));
        /* and set again: the member replaced, as pixel_module_event_set() does */
        ck_assert_int_eq(pixel_module_event_set_image(&ev, into, sh, image), 0);
        ck_assert_str_eq(pixel_value_dump(ctx, e, NULL), want[k]);
        ck_assert_int_eq(pixel_module_event_set_image(&ev, into, NULL, image), -1);
        ck_assert_int_eq(pixel_module_event_set_image(&ev, into, sh, NULL), -1);
        ck_assert_int_eq(pixel_module_event_set_image(&ev, NULL, sh, image), -1);
        ck_assert_int_eq(pixel_module_event_set_image(NULL, into, sh, image), -1);
        ck_assert_str_eq(pixel_value_dump(ctx, e, NULL), want[k]);
    }
    ck_assert_str_eq(want[1], want[0]);
    ck_assert_str_eq(want[1], "{\"z\":1,\"r\":{\"s\":{\"a\":{\"x\":\"abc\"},\"b\":\"d\"}}}");
    free(want[0]);
    free(want[1]);
    pixel_ctx_free(ctx);
    pixel_module_event_path_free(into);
    free(image);
    pixel_module_shape_free(sh);
}
END_TEST

/* pixel_module_event_hash: the same answer for the same bytes, wherever they
 * are and whether or not the context remembered it; the bytes and their
 * length decide it; what the context remembers lasts for one event. */
START_TEST(event_hash_follows_the_bytes_and_the_event)
{
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_module_event ev = {.struct_size = (uint32_t)sizeof(ev), .ctx = ctx};
    pixel_module_event bare = {.struct_size = (uint32_t)sizeof(bare)};
    char a[] = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    char b[sizeof(a)], c[sizeof(a)];
    memcpy(b, a, sizeof(a));
    memcpy(c, a, sizeof(a));
    c[20] = 'Y';
    size_t n = strlen(a);
    uint64_t h = pixel_module_event_hash(&ev, a, n);
    ck_assert_uint_eq(pixel_module_event_hash(&ev, a, n), h); /* remembered */
    ck_assert_uint_eq(pixel_module_event_hash(&ev, b, n), h); /* the same bytes elsewhere */
    ck_assert_uint_eq(pixel_module_event_hash(&bare, a, n), h); /* no context */
    ck_assert_uint_eq(pixel_module_event_hash(NULL, b, n), h);
    ck_assert_uint_ne(pixel_module_event_hash(&ev, a, n - 1), h); /* the length counts */
    ck_assert_uint_ne(pixel_module_event_hash(&ev, c, n), h);     /* so does every byte */
    ck_assert_uint_eq(pixel_module_event_hash(&ev, c, n), pixel_module_event_hash(NULL, c, n));
    ck_assert_uint_eq(pixel_module_event_hash(&ev, "", 0), pixel_module_event_hash(NULL, NULL, 0));
    /* On the next event the same address may hold other bytes. */
    ck_assert_uint_eq(pixel_module_event_hash(&ev, b, n), h);
    pixel_ctx_reset(ctx);
    b[20] = 'Y';
    ck_assert_uint_eq(pixel_module_event_hash(&ev, b, n), pixel_module_event_hash(NULL, c, n));
    pixel_ctx_free(ctx);
}
END_TEST

/* A verdict an image keeps belongs to the schema it was found for: a
 * registry freed and another compiled (a pipeline reload) may put an
 * object schema of other rules at the same address, and the copy must be
 * checked against those rules. */
START_TEST(image_verdicts_do_not_outlive_their_registry)
{
    static const char *const paths[] = {"a.x"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 1);
    ck_assert_ptr_nonnull(sh);
    const pixel_module_str vals[1] = {{"abcd", 4}};
    size_t isize = pixel_module_shape_image_size_for(sh, vals);
    void *image = malloc(isize);
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, isize), 0);
    pixel_ctx *ctx = pixel_ctx_new();
    for (int round = 0; round < 8; round++) {
        /* the same text but for one digit: the same allocations */
        char schema[256];
        snprintf(schema, sizeof(schema),
                 "{\"$id\": \"urn:t\", \"type\": \"object\", \"properties\": {\"r\":"
                 " {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"object\","
                 " \"properties\": {\"x\": {\"type\": \"string\", \"maxLength\": %d}}}}}}}",
                 round % 2 ? 2 : 9);
        pixel_schema_registry *reg;
        pixel_error err;
        ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
        ck_assert_int_eq(pixel_schema_registry_add_json(reg, NULL, schema, strlen(schema), &err), 0);
        const pixel_schema *s;
        ck_assert_int_eq(pixel_schema_compile(&s, reg, "urn:t", &err), 0);
        pixel_value *built = pixel_module_shape_build(ctx, sh, vals);
        int want = valid_in(ctx, s, built, 0);
        ck_assert_int_eq(want, round % 2);
        ck_assert_msg(valid_in(ctx, s, pixel_module_shape_emit(ctx, sh, image), 0) == want,
                      "round %d: the copy's verdict is not the built tree's (%d)", round, want);
        pixel_schema_registry_free(reg);
        pixel_ctx_reset(ctx);
    }
    pixel_ctx_free(ctx);
    free(image);
    pixel_module_shape_free(sh);
}
END_TEST

/* leaf at `depth` objects down a chain of "c" members, as member "r" */
static pixel_value *nest(pixel_ctx *ctx, pixel_value *leaf, int depth)
{
    pixel_value *top = pixel_value_new_object(ctx), *o = top;
    for (int k = 1; k < depth; k++) {
        pixel_value *c = pixel_value_new_object(ctx);
        ck_assert_int_eq(pixel_object_set(ctx, o, "c", c), 0);
        o = c;
    }
    ck_assert_int_eq(pixel_object_set(ctx, o, "r", leaf), 0);
    return top;
}

/* A copy deep in the event is checked down to the depth limit like a tree
 * built member by member, though its image passed the same object schema
 * near the top: the remembered verdict does not skip the limit.  The walk
 * counts schema levels, not only objects: an image's member whose schema
 * nests (anyOf, allOf, a $ref to a node with more keywords) takes more of
 * the limit than its objects alone. */
static const char *const deep_schemas[] = {
    /* objects only: the image primed near the top, then nested 480 to 520 deep */
    "{\"$id\": \"urn:e\", \"$ref\": \"#/$defs/n\", \"$defs\": {\"n\": {\"type\": \"object\","
    " \"properties\": {\"c\": {\"$ref\": \"#/$defs/n\"}, \"r\": {\"type\": \"object\","
    " \"properties\": {\"a\": {\"type\": \"object\", \"properties\": {\"b\": {\"type\":"
    " \"object\", \"properties\": {\"x\": {\"type\": \"string\"}}}}}}}}}}}",
    /* the image's root behind an anyOf */
    "{\"$id\": \"urn:e\", \"$ref\": \"#/$defs/n\", \"$defs\": {\"n\": {\"type\": \"object\","
    " \"properties\": {\"c\": {\"$ref\": \"#/$defs/n\"}, \"r\": {\"$ref\": \"#/$defs/img\"}}},"
    " \"img\": {\"type\": \"object\", \"properties\": {\"a\": {\"anyOf\": [{\"type\": \"null\"},"
    " {\"type\": \"object\", \"properties\": {\"b\": {\"type\": \"object\", \"properties\":"
    " {\"x\": {\"type\": \"string\"}}}}}]}}}}}",
    /* the leaf checked by a node of its own */
    "{\"$id\": \"urn:e\", \"$ref\": \"#/$defs/n\", \"$defs\": {\"n\": {\"type\": \"object\","
    " \"properties\": {\"c\": {\"$ref\": \"#/$defs/n\"}, \"r\": {\"$ref\": \"#/$defs/img\"}}},"
    " \"img\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"object\", \"properties\":"
    " {\"b\": {\"type\": \"object\", \"properties\": {\"x\": {\"anyOf\": [{\"type\": \"string\","
    " \"minLength\": 1}, {\"type\": \"integer\"}]}}}}}}}}}",
    /* nested allOf with a $ref */
    "{\"$id\": \"urn:e\", \"$ref\": \"#/$defs/n\", \"$defs\": {\"n\": {\"type\": \"object\","
    " \"properties\": {\"c\": {\"$ref\": \"#/$defs/n\"}, \"r\": {\"$ref\": \"#/$defs/img\"}}},"
    " \"img\": {\"type\": \"object\", \"properties\": {\"a\": {\"allOf\": [{\"$ref\": \"#/$defs/a\"},"
    " {\"required\": [\"b\"]}]}}}, \"a\": {\"type\": \"object\", \"properties\": {\"b\": {\"allOf\":"
    " [{\"type\": \"object\"}, {\"properties\": {\"x\": {\"type\": \"string\"}}}]}}}}}",
};

START_TEST(image_verdicts_keep_the_depth_limit_through_schema_levels)
{
    static const char *const paths[] = {"a.b.x"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 1);
    ck_assert_ptr_nonnull(sh);
    const pixel_module_str vals[1] = {{"abc", 3}};
    size_t isize = pixel_module_shape_image_size_for(sh, vals);
    void *image = malloc(isize);
    ck_assert_int_eq(pixel_module_shape_image_kept(sh, vals, image, isize), 0);
    const char *schema = deep_schemas[_i];
    pixel_schema_registry *reg;
    pixel_error err;
    char buf[900];
    ck_assert_int_eq(pixel_schema_registry_new(&reg, 0, &err), 0);
    ck_assert_msg(pixel_schema_registry_add_json(reg, NULL, schema, strlen(schema), &err) == 0,
                  "%s", pixel_error_format(&err, buf, sizeof(buf)));
    const pixel_schema *s;
    ck_assert_msg(pixel_schema_compile(&s, reg, "urn:e", &err) == 0, "%s",
                  pixel_error_format(&err, buf, sizeof(buf)));
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(pixel_schema_validate(s, nest(ctx, pixel_module_shape_emit(ctx, sh, image), 3),
                                           0, NULL, NULL),
                     0);
    int passed = 0, refused = 0;
    for (int depth = 480; depth <= 520; depth++) {
        pixel_ctx_reset(ctx);
        int want = pixel_schema_validate(s, nest(ctx, pixel_module_shape_build(ctx, sh, vals), depth),
                                         0, NULL, NULL);
        int got = pixel_schema_validate(s, nest(ctx, pixel_module_shape_emit(ctx, sh, image), depth),
                                        0, NULL, NULL);
        ck_assert_msg(got == want, "schema %d, %d levels: the copy gives %d, the built tree %d",
                      _i, depth, got, want);
        passed += want == 0;
        refused += want < 0;
    }
    ck_assert_int_gt(passed, 0);
    ck_assert_int_gt(refused, 0);
    pixel_ctx_free(ctx);
    pixel_schema_registry_free(reg);
    free(image);
    pixel_module_shape_free(sh);
}
END_TEST

/* ABI 1.3 asks only that an image have at least
 * pixel_module_shape_image_size() bytes, and lets the module free or reuse
 * it once a copy is emitted: here a module that keeps its image in a page
 * of its own unmaps the page after the emit.  The copy must still be
 * written and checked from its own nodes. */
START_TEST(abi_1_3_image_in_a_larger_buffer_may_go_once_emitted)
{
    static const char *const paths[] = {"a.x", "b"};
    pixel_module_shape *sh = pixel_module_shape_new(paths, 2);
    ck_assert_ptr_nonnull(sh);
    const pixel_module_str vals[2] = {{"abc", 3}, {"d", 1}};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_le(pixel_module_shape_image_size(sh), page);
    void *image = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(image, MAP_FAILED);
    ck_assert_int_eq(pixel_module_shape_image(sh, vals, image, page), 0);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *copy = pixel_module_shape_emit(ctx, sh, image);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(munmap(image, page), 0);
    ck_assert_str_eq(dump_in(ctx, copy), "{\"r\":{\"a\":{\"x\":\"abc\"},\"b\":\"d\"}}");
    pixel_ctx_free(ctx);
    pixel_module_shape_free(sh);
}
END_TEST

/* ---- ABI 1.2 ---- */

/* A compiled path must give what pixel_value_at() gives, member for member. */
START_TEST(compiled_paths_find_what_value_at_finds)
{
    pixel_pipeline *p = load_ok("pipeline: {name: t, version: '1'}\n"
                                "input: {framing: rfc3164, format: combined, pixel_paths: "
                                "[/px.gif]}\n"
                                "fields:\n  a: query.a\n  b.c: query.c\n  b.d.e: query.e\n"
                                "  b.dd: query.f\n  host: syslog.hostname\n");
    pixel_ctx *ctx = pixel_ctx_new();
    const char *line = "<190>Nov 26 05:24:46 web7 nginx: " LINE("a=1&c=2&e=3&f=4&x=y&x=z");
    ck_assert_int_eq(run(p, ctx, line), PIXEL_OUTCOME_EVENT);
    const pixel_value *ev = pixel_ctx_event(ctx);
    static const char *const paths[] = {"a", "b", "b.c", "b.d", "b.d.e", "b.dd", "b.d.e.f",
                                        "b.x", "bb", "", "a.b", "b..c", "host", "b.d.", NULL};
    for (int i = 0; paths[i]; i++) {
        pixel_module_path *mp = pixel_module_path_new(paths[i]);
        ck_assert_ptr_nonnull(mp);
        ck_assert_msg(pixel_module_path_get(ev, mp) == pixel_value_at(ev, paths[i]), "path '%s'",
                      paths[i]);
        pixel_module_path_free(mp);
    }
    /* from an inner object: the rest of a path */
    pixel_module_path *rest = pixel_module_path_new("d.e");
    ck_assert_ptr_eq(pixel_module_path_get(pixel_value_at(ev, "b"), rest),
                     pixel_value_at(ev, "b.d.e"));
    ck_assert_ptr_null(pixel_module_path_get(pixel_value_at(ev, "a"), rest)); /* not an object */
    ck_assert_ptr_null(pixel_module_path_get(NULL, rest));
    pixel_module_path_free(rest);

    const pixel_record *rec = pixel_ctx_record(ctx);
    static const char *const fields[] = {"log.user_agent", "log.client", "log.referer",
                                         "log.status", "log.host", "syslog.hostname",
                                         "syslog.tag", "syslog.pri", "query.a", "query.e",
                                         "query.x", "query.none", NULL};
    for (int i = 0; fields[i]; i++) {
        pixel_module_field *f = pixel_module_field_new(fields[i]);
        ck_assert_msg(f != NULL, "field '%s'", fields[i]);
        size_t n1 = 99, n2 = 77;
        const char *a = pixel_module_field_get(rec, f, &n1), *b = pixel_record_get(rec, fields[i], &n2);
        ck_assert_msg(a == b && n1 == n2, "field '%s': %p/%zu against %p/%zu", fields[i],
                      (const void *)a, n1, (const void *)b, n2);
        ck_assert_ptr_null(pixel_module_field_get(NULL, f, NULL));
        pixel_module_field_free(f);
    }
    size_t n;
    pixel_module_field *ua = pixel_module_field_new("log.user_agent");
    ck_assert_str_eq(pixel_module_field_get(rec, ua, &n), "Mozilla/5.0 (X11)\"");
    ck_assert_uint_eq(n, strlen("Mozilla/5.0 (X11)"));
    pixel_module_field_free(ua);
    pixel_module_field *a = pixel_module_field_new("query.a");
    ck_assert_int_eq(strncmp(pixel_module_field_get(rec, a, &n), "1", 1), 0);
    ck_assert_uint_eq(n, 1);
    pixel_module_field_free(a);
    ck_assert_ptr_null(pixel_module_field_new("client.ip"));
    ck_assert_ptr_null(pixel_module_field_new("syslog.nosuch"));
    ck_assert_ptr_null(pixel_module_field_new(NULL));
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

/* ---- results ---- */

START_TEST(module_changes_the_event)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {into: "
                                          "t.info}}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "t.info.calls"), 1);
    ck_assert_int_eq(int_at(ctx, "t.info.version"), 1);
    ck_assert_int_eq(run(p, ctx, LINE("a=2")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "t.info.calls"), 2);
    char stats[256];
    ck_assert_uint_gt(pixel_pipeline_module_stats(p, stats, sizeof(stats)), 0);
    ck_assert_str_eq(stats, "0 testmod calls=2\n");
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

/* Built-ins after a module: what the module set where a built-in writes is
 * replaced in place, an object it replaced is the one the built-in reads. */
START_TEST(builtins_after_a_module_see_its_changes)
{
    pixel_pipeline *p = load_ok("pipeline: {name: t, version: '1'}\n"
                                "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"
                                "fields: {page.url: query.u}\n"
                                "enrich:\n"
                                "  - module: {name: testmod, config: {into: stamp}}\n"
                                "  - ingest_time: {into: stamp}\n"
                                "  - module: {name: testmod, config: {into: page}}\n"
                                "  - url: {from: page.url, into: page}\n"
                                "  - pipeline: {into: pipeline}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    for (int line = 0; line < 2; line++) {
        ck_assert_int_eq(run(p, ctx, LINE("u=https%3A%2F%2Fexample.com%2Fa")), PIXEL_OUTCOME_EVENT);
        const char *out = pixel_ctx_output(ctx, p, NULL);
        ck_assert_ptr_nonnull(out);
        ck_assert_msg(strncmp(out, "{\"page\":{\"instance\":", 20) == 0, "%s", out);
        ck_assert_msg(!strstr(out, "\"url\"") && !strstr(out, "\"scheme\""), "%s", out);
        ck_assert_msg(strstr(out, "},\"stamp\":\"20"), "%s", out);
        const char *tail = ",\"pipeline\":{\"name\":\"t\",\"version\":\"1\"}}";
        ck_assert_msg(strcmp(out + strlen(out) - strlen(tail), tail) == 0, "%s", out);
        ck_assert_uint_eq(pixel_value_size(pixel_ctx_event(ctx)), 3);
    }
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(module_drop_is_recorded_with_the_module_name)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {action: "
                                          "drop}}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_DROPPED);
    ck_assert_uint_eq(pixel_ctx_reason_count(ctx), 1);
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->source, "testmod");
    ck_assert_str_eq(pixel_ctx_reason(ctx, 0)->message, "dropped as asked");
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(module_failure_quarantines_naming_the_module)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {action: "
                                          "fail}}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    ck_assert_int_eq(run(p, ctx, LINE("a=1")), PIXEL_OUTCOME_QUARANTINED);
    const pixel_reason *r = pixel_ctx_reason(ctx, 0);
    ck_assert_str_eq(r->code, "module_failed");
    ck_assert_str_eq(r->family, "enrichment_failure");
    ck_assert_str_eq(r->source, "testmod");
    ck_assert_str_eq(r->location, "testmod");
    ck_assert_int_eq(r->stage, PIXEL_STAGE_ENRICH);
    ck_assert_str_eq(r->message, "testmod: failed as asked (call 1)");
    size_t n;
    const char *out = pixel_ctx_output(ctx, p, &n);
    ck_assert_ptr_nonnull(out);
    ASSERT_HAS(out, "\"code\":\"module_failed\"");
    ASSERT_HAS(out, "\"source\":\"testmod\"");
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(module_infrastructure_error_fails_the_call)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod, config: {action: "
                                          "error}}\n");
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_error err;
    pixel_error_clear(&err);
    pixel_outcome oc;
    const char *line = LINE("a=1");
    ck_assert_int_lt(pixel_process(p, ctx, line, strlen(line), &oc, &err), 0);
    ck_assert_str_eq(err.source, "testmod");
    ASSERT_HAS(err.text, "module 'testmod' failed");
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
}
END_TEST

/* ---- instances ---- */

START_TEST(per_thread_module_gets_one_instance_per_context)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod}\n");
    pixel_ctx *a = pixel_ctx_new(), *b = pixel_ctx_new();
    run(p, a, LINE("a=1"));
    long ia = int_at(a, "testmod.instance");
    run(p, b, LINE("a=1"));
    long ib = int_at(b, "testmod.instance");
    ck_assert_int_ne(ia, ib);
    run(p, a, LINE("a=1"));
    ck_assert_int_eq(int_at(a, "testmod.instance"), ia);
    ck_assert_int_eq(int_at(a, "testmod.calls"), 2);
    run(p, b, LINE("a=1"));
    ck_assert_int_eq(int_at(b, "testmod.calls"), 2);
    pixel_ctx_free(a);
    pixel_ctx_free(b);
    pixel_pipeline_free(p);
}
END_TEST

START_TEST(shared_module_has_one_instance)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: sharedmod}\n");
    pixel_ctx *a = pixel_ctx_new(), *b = pixel_ctx_new();
    run(p, a, LINE("a=1"));
    run(p, b, LINE("a=1"));
    ck_assert_int_eq(int_at(a, "testmod.instance"), int_at(b, "testmod.instance"));
    ck_assert_int_eq(int_at(b, "testmod.calls"), 2);
    pixel_ctx_free(a);
    pixel_ctx_free(b);
    pixel_pipeline_free(p);
}
END_TEST

#define NTHREADS 8
#define NLINES 500

typedef struct worker {
    const pixel_pipeline *p;
    pthread_barrier_t *all_done; /* contexts are freed only when all threads are done */
    long instance, calls;
    int ok;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    pixel_ctx *ctx = pixel_ctx_new();
    const char *line = LINE("a=1");
    w->ok = 1;
    for (int i = 0; i < NLINES; i++) {
        pixel_outcome oc;
        if (pixel_process(w->p, ctx, line, strlen(line), &oc, NULL) != 0 ||
            oc != PIXEL_OUTCOME_EVENT) {
            w->ok = 0;
        }
        long inst = (long)pixel_value_int(pixel_value_at(pixel_ctx_event(ctx), "testmod.instance"));
        if (i > 0 && inst != w->instance) {
            w->ok = 0;
        }
        w->instance = inst;
        w->calls = (long)pixel_value_int(pixel_value_at(pixel_ctx_event(ctx), "testmod.calls"));
    }
    /* A freed context's instance may go to a later context: keep all alive. */
    pthread_barrier_wait(w->all_done);
    pixel_ctx_free(ctx);
    return NULL;
}

START_TEST(threads_never_share_a_per_thread_instance)
{
    pixel_pipeline *p = load_ok(PIPE_HEAD "enrich:\n  - module: {name: testmod}\n");
    pthread_t t[NTHREADS];
    worker w[NTHREADS];
    pthread_barrier_t all_done;
    ck_assert_int_eq(pthread_barrier_init(&all_done, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){.p = p, .all_done = &all_done};
        ck_assert_int_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&all_done);
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert(w[i].ok);
        /* Each instance saw exactly its own thread's lines. */
        ck_assert_int_eq(w[i].calls, NLINES);
        for (int k = 0; k < i; k++) {
            ck_assert_int_ne(w[i].instance, w[k].instance);
        }
    }
    pixel_pipeline_free(p);
}
END_TEST

/* ---- finding ---- */

START_TEST(modules_path_in_the_pipeline_is_relative_to_its_file)
{
    const char *dir = mod_dir("PIXEL_TEST_MODULES_DIR");
    char yaml[800];
    /* No module_dirs option here: only the pipeline's modules.path finds it. */
    snprintf(yaml, sizeof(yaml), PIPE_HEAD "modules: {path: [nowhere, .]}\n"
                                           "enrich:\n  - module: {name: testmod}\n");
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    char buf[900];
    int rc = pixel_pipeline_load_string(&p, yaml, strlen(yaml), "x.yaml", dir, NULL, &err);
    ck_assert_msg(rc == 0, "%s", pixel_error_format(&err, buf, sizeof(buf)));
    pixel_pipeline_free(p);
    snprintf(yaml, sizeof(yaml), PIPE_HEAD "modules: {paths: [.]}\n"
                                           "enrich:\n  - module: {name: testmod}\n");
    pixel_error_clear(&err);
    ck_assert_int_lt(pixel_pipeline_load_string(&p, yaml, strlen(yaml), "x.yaml", dir, NULL, &err),
                     0);
    ck_assert_msg(strstr(err.text, "paths") != NULL, "%s", err.text);
}
END_TEST

/* ---- reload ---- */

static void install(const char *from_dir, const char *to)
{
    char cmd[1200];
    /* Like install(1): a new file renamed over the old one. */
    snprintf(cmd, sizeof(cmd), "cp '%s/hot.so' '%s.new' && mv -f '%s.new' '%s'", from_dir, to, to,
             to);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(reload_runs_the_new_module_version)
{
    char dir[] = "/tmp/pixel-modtest-XXXXXX", so[300], yaml[800];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(so, sizeof(so), "%s/hot.so", dir);
    install(mod_dir("PIXEL_TEST_HOT1_DIR"), so);
    snprintf(yaml, sizeof(yaml), PIPE_HEAD "enrich:\n  - module: {path: %s}\n", so);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_pipeline *old = load_ok(yaml);
    ck_assert_int_eq(run(old, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "testmod.version"), 1);

    /* A new version is installed while the old pipeline still runs. */
    install(mod_dir("PIXEL_TEST_HOT2_DIR"), so);
    pixel_pipeline *cur = load_ok(yaml);
    ck_assert_int_eq(run(cur, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "testmod.version"), 2);
    ck_assert_int_eq(run(old, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "testmod.version"), 1);
    pixel_pipeline_free(old);

    /* Back to version 1 after the old pipeline is gone, and again to 2. */
    install(mod_dir("PIXEL_TEST_HOT1_DIR"), so);
    pixel_pipeline *again = load_ok(yaml);
    ck_assert_int_eq(run(again, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "testmod.version"), 1);
    ck_assert_int_eq(run(cur, ctx, LINE("a=1")), PIXEL_OUTCOME_EVENT);
    ck_assert_int_eq(int_at(ctx, "testmod.version"), 2);
    pixel_pipeline_free(cur);
    pixel_pipeline_free(again);
    pixel_ctx_free(ctx);
    unlink(so);
    rmdir(dir);
}
END_TEST

static Suite *module_loader_suite(void)
{
    Suite *s = suite_create("module_loader");
    TCase *tc = tcase_create("refusals");
    tcase_add_test(tc, missing_module_file_is_refused_with_the_directories_searched);
    tcase_add_test(tc, missing_path_is_refused);
    tcase_add_test(tc, module_of_another_abi_major_is_refused);
    tcase_add_test(tc, too_small_description_is_refused);
    tcase_add_test(tc, name_must_match_the_file);
    tcase_add_test(tc, missing_entry_symbol_is_refused);
    tcase_add_test(tc, a_file_that_is_not_a_shared_object_is_refused);
    tcase_add_test(tc, bad_config_is_refused_at_the_option);
    tcase_add_test(tc, module_refusing_its_config_names_module_and_option);
    tcase_add_test(tc, module_of_a_newer_abi_minor_needing_a_missing_helper_is_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("abi_1_1");
    tcase_add_test(tc, module_built_for_abi_1_0_still_loads_and_runs);
    tcase_add_test(tc, config_strings_copies_a_list_or_its_default);
    tcase_add_test(tc, no_copy_helpers_append_and_point);
    suite_add_tcase(s, tc);
    tc = tcase_create("abi_1_2");
    tcase_add_test(tc, compiled_paths_find_what_value_at_finds);
    tcase_add_test(tc, shapes_build_what_set_at_builds);
    tcase_add_test(tc, image_memos_follow_changes_to_the_emitted_copy);
    tcase_add_test(tc, image_verdicts_do_not_outlive_their_registry);
    tcase_add_test(tc, event_hash_follows_the_bytes_and_the_event);
    tcase_add_test(tc, value_image_names_the_making_of_an_unchanged_copy);
    tcase_add_test(tc, event_set_image_is_emit_then_set);
    tcase_add_loop_test(tc, image_verdicts_keep_the_depth_limit_through_schema_levels, 0,
                        (int)(sizeof(deep_schemas) / sizeof(deep_schemas[0])));
    tcase_add_test(tc, abi_1_3_image_in_a_larger_buffer_may_go_once_emitted);
    suite_add_tcase(s, tc);
    tc = tcase_create("results");
    tcase_add_test(tc, module_changes_the_event);
    tcase_add_test(tc, builtins_after_a_module_see_its_changes);
    tcase_add_test(tc, module_drop_is_recorded_with_the_module_name);
    tcase_add_test(tc, module_failure_quarantines_naming_the_module);
    tcase_add_test(tc, module_infrastructure_error_fails_the_call);
    suite_add_tcase(s, tc);
    tc = tcase_create("instances");
    tcase_add_test(tc, per_thread_module_gets_one_instance_per_context);
    tcase_add_test(tc, shared_module_has_one_instance);
    tcase_add_test(tc, threads_never_share_a_per_thread_instance);
    suite_add_tcase(s, tc);
    tc = tcase_create("finding");
    tcase_add_test(tc, modules_path_in_the_pipeline_is_relative_to_its_file);
    tcase_add_test(tc, reload_runs_the_new_module_version);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(module_loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
