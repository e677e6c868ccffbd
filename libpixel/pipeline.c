/*
 * Pipelines and contexts: loading the YAML file, running the stages, and
 * serializing the outcome of a line.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline.h"
#include "simd.h"

int pixel__map_run(const pixel_pipeline *p, pixel_ctx *ctx);

/* ---- loading ----------------------------------------------------------------- */

static int load_strings(pixel_cfg *c, const yaml_node_t *n, const char *what, char ***out,
                        size_t **lens, size_t *count)
{
    if (n->type == YAML_SCALAR_NODE) {
        *out = pixel__calloc(1, sizeof(char *));
        if (lens) {
            *lens = pixel__calloc(1, sizeof(size_t));
        }
        if (!*out || (lens && !*lens) || !((*out)[0] = pixel__strdup(pixel__cfg_scalar(n)))) {
            return PIXEL_ENOMEM;
        }
        if (lens) {
            (*lens)[0] = strlen((*out)[0]);
        }
        *count = 1;
        return 0;
    }
    if (pixel__cfg_expect(c, n, YAML_SEQUENCE_NODE, what) < 0) {
        return PIXEL_ECONFIG;
    }
    size_t k = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *out = pixel__calloc(k ? k : 1, sizeof(char *));
    if (lens) {
        *lens = pixel__calloc(k ? k : 1, sizeof(size_t));
    }
    if (!*out || (lens && !*lens)) {
        return PIXEL_ENOMEM;
    }
    *count = 0;
    PIXEL_CFG_ITEMS(c, n, item)
    {
        const char *s = pixel__cfg_scalar(pixel__cfg_node(c, *item));
        if (!s) {
            return pixel__cfg_fail(c, pixel__cfg_node(c, *item), "expected %s", what);
        }
        if (!((*out)[*count] = pixel__strdup(s))) {
            return PIXEL_ENOMEM;
        }
        if (lens) {
            (*lens)[*count] = strlen(s);
        }
        (*count)++;
    }
    return 0;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        pixel__free(v[i]);
    }
    pixel__free(v);
}

static int load_format(pixel_pipeline *p, pixel_cfg *c, yaml_node_t *fmt)
{
    if (!fmt) {
        return pixel__logfmt_compile(p, c, NULL, "combined", NULL, 0);
    }
    if (fmt->type == YAML_SCALAR_NODE) {
        return pixel__logfmt_compile(p, c, fmt, pixel__cfg_scalar(fmt), NULL, 0);
    }
    static const char *const known[] = {"nginx", "apache", NULL};
    if (pixel__cfg_expect(c, fmt, YAML_MAPPING_NODE,
                          "combined, common, nginx_json, {nginx: '...'} or {apache: '...'}") < 0 ||
        pixel__cfg_only_keys(c, fmt, known) < 0) {
        return PIXEL_ECONFIG;
    }
    const char *ng = NULL, *ap = NULL;
    if (pixel__cfg_string(c, fmt, "nginx", &ng) < 0 ||
        pixel__cfg_string(c, fmt, "apache", &ap) < 0) {
        return PIXEL_ECONFIG;
    }
    if (!!ng == !!ap) {
        return pixel__cfg_fail(c, fmt, "give exactly one of 'nginx' or 'apache'");
    }
    return pixel__logfmt_compile(p, c, fmt, "custom", ng ? ng : ap, ap != NULL);
}

static int load_input(pixel_pipeline *p, pixel_cfg *c, yaml_node_t *in)
{
    static const char *const known[] = {"framing",         "format",         "pixel_paths",
                                        "methods",         "repeated_keys",  "plus_as_space",
                                        "max_line_length", "max_parameters", NULL};
    p->framing = FRAMING_AUTO;
    p->repeat = REPEAT_REJECT;
    p->plus_as_space = true;
    p->max_line_length = 64 * 1024;
    p->max_params = 128;
    if (in && (pixel__cfg_expect(c, in, YAML_MAPPING_NODE, "a mapping") < 0 ||
               pixel__cfg_only_keys(c, in, known) < 0)) {
        return PIXEL_ECONFIG;
    }
    const char *framing = NULL, *repeat = NULL;
    long long maxlen = (long long)p->max_line_length, maxp = (long long)p->max_params;
    if (pixel__cfg_string(c, in, "framing", &framing) < 0 ||
        pixel__cfg_string(c, in, "repeated_keys", &repeat) < 0 ||
        pixel__cfg_bool(c, in, "plus_as_space", &p->plus_as_space) < 0 ||
        pixel__cfg_int(c, in, "max_line_length", 64, 16 << 20, &maxlen) < 0 ||
        pixel__cfg_int(c, in, "max_parameters", 1, 4096, &maxp) < 0) {
        return PIXEL_ECONFIG;
    }
    p->max_line_length = (size_t)maxlen;
    p->max_params = (size_t)maxp;
    if (framing) {
        static const char *const names[] = {"none", "rfc3164", "rfc5424", "auto"};
        size_t i = 0;
        while (i < 4 && strcmp(names[i], framing) != 0) {
            i++;
        }
        if (i == 4) {
            return pixel__cfg_fail(c, pixel__cfg_get(c, in, "framing"),
                                   "unknown framing '%s' (expected none, rfc3164, rfc5424 or auto)",
                                   framing);
        }
        p->framing = (pixel_framing)i;
    }
    if (repeat) {
        static const char *const names[] = {"first", "last", "list", "reject"};
        size_t i = 0;
        while (i < 4 && strcmp(names[i], repeat) != 0) {
            i++;
        }
        if (i == 4) {
            return pixel__cfg_fail(c, pixel__cfg_get(c, in, "repeated_keys"),
                                   "unknown repeated_keys '%s' (expected first, last, list or "
                                   "reject)",
                                   repeat);
        }
        p->repeat = (pixel_repeat)i;
    }
    int rc = load_format(p, c, pixel__cfg_get(c, in, "format"));
    if (rc < 0) {
        return rc;
    }
    yaml_node_t *n = pixel__cfg_get(c, in, "pixel_paths");
    if (!n) {
        return pixel__cfg_fail(c, in ? in : pixel__cfg_root(c),
                               "input.pixel_paths is required: the path(s) of the pixel, e.g. "
                               "[/px.gif]");
    }
    if ((rc = load_strings(c, n, "a list of paths", &p->pixel_paths, &p->pixel_path_len,
                           &p->npixel_paths)) < 0) {
        return rc;
    }
    n = pixel__cfg_get(c, in, "methods");
    if (n) {
        return load_strings(c, n, "a list of HTTP methods", &p->methods, &p->method_len,
                            &p->nmethods);
    }
    p->methods = pixel__calloc(1, sizeof(char *));
    p->method_len = pixel__calloc(1, sizeof(size_t));
    if (!p->methods || !p->method_len || !(p->methods[0] = pixel__strdup("GET"))) {
        return PIXEL_ENOMEM;
    }
    p->method_len[0] = 3;
    p->nmethods = 1;
    return 0;
}

static int load_meta(pixel_pipeline *p, pixel_cfg *c, yaml_node_t *meta)
{
    static const char *const known[] = {"name", "version", NULL};
    const char *name = "pipeline", *version = "0";
    if (meta &&
        (pixel__cfg_expect(c, meta, YAML_MAPPING_NODE, "a mapping with name and version") < 0 ||
         pixel__cfg_only_keys(c, meta, known) < 0 ||
         pixel__cfg_string(c, meta, "name", &name) < 0 ||
         pixel__cfg_string(c, meta, "version", &version) < 0)) {
        return PIXEL_ECONFIG;
    }
    p->name = pixel__strdup(name);
    p->version = pixel__strdup(version);
    return p->name && p->version ? 0 : PIXEL_ENOMEM;
}

static int load_document(pixel_pipeline *p, pixel_cfg *c, unsigned flags)
{
    yaml_node_t *root = pixel__cfg_root(c);
    if (!root) {
        return pixel__cfg_fail(c, NULL, "the pipeline file is empty");
    }
    static const char *const known[] = {"pipeline", "input",    "event_type", "fields", "enrich",
                                        "validate", "delivery", "modules",    NULL};
    if (pixel__cfg_expect(c, root, YAML_MAPPING_NODE, "a mapping at the top level") < 0 ||
        pixel__cfg_check_duplicates(c, root, 0) < 0 || pixel__cfg_only_keys(c, root, known) < 0) {
        return PIXEL_ECONFIG;
    }
    int rc;
    if ((rc = load_meta(p, c, pixel__cfg_get(c, root, "pipeline"))) < 0 ||
        (rc = load_input(p, c, pixel__cfg_get(c, root, "input"))) < 0 ||
        (rc = pixel__map_load(p, c, root)) < 0 ||
        (rc = pixel__enrich_load(p, c, pixel__cfg_get(c, root, "enrich"))) < 0) {
        return rc;
    }
    if (pixel__map_frame_keys(p) < 0) {
        return PIXEL_ENOMEM;
    }
    yaml_node_t *v = pixel__cfg_get(c, root, "validate");
    if (v && !(flags & PIXEL_PIPELINE_NO_VALIDATE)) {
        rc = pixel__validator_load(&p->validator, c, v);
    }
    return rc;
}

static int yaml_error(pixel_cfg *c, yaml_parser_t *y)
{
    const yaml_mark_t *m = y->problem ? &y->problem_mark : &y->context_mark;
    pixel__error_set(c->err, PIXEL_ECONFIG, PIXEL_STAGE_LOAD, "YAML syntax: %s%s%s",
                     y->problem ? y->problem : "error", y->context ? " " : "",
                     y->context ? y->context : "");
    pixel__error_at(c->err, c->file, (long)m->line + 1, (long)m->column + 1);
    return PIXEL_ECONFIG;
}

static int load(pixel_pipeline **out, const char *yaml, size_t len, const char *name,
                const char *base_dir, const pixel_pipeline_options *opts, pixel_error *err)
{
    *out = NULL;
    if (opts && opts->version != PIXEL_PIPELINE_OPTIONS_VERSION) {
        return pixel__error_set(err, PIXEL_EVERSION, PIXEL_STAGE_LOAD,
                                "invalid version %u of pixel_pipeline_options", opts->version);
    }
    pixel_pipeline *p = pixel__calloc(1, sizeof(*p));
    if (!p) {
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    p->file = pixel__strdup(name ? name : "<string>");
    p->dir = pixel__strdup(base_dir ? base_dir : ".");
    if (!p->file || !p->dir) {
        pixel_pipeline_free(p);
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    for (size_t i = 0; opts && opts->module_dirs && opts->module_dirs[i]; i++) {
        char **dirs = pixel__realloc(p->module_dirs, (p->nmodule_dirs + 1) * sizeof(char *));
        if (dirs) {
            p->module_dirs = dirs;
            dirs[p->nmodule_dirs] = pixel__strdup(opts->module_dirs[i]);
        }
        if (!dirs || !dirs[p->nmodule_dirs++]) {
            pixel_pipeline_free(p);
            return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
        }
    }
    pixel_cfg c = {.file = p->file, .base_dir = p->dir, .err = err};
    yaml_parser_t y;
    int rc;
    if (!yaml_parser_initialize(&y)) {
        pixel_pipeline_free(p);
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    yaml_parser_set_input_string(&y, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&y, &c.doc)) {
        rc = yaml_error(&c, &y);
        yaml_parser_delete(&y);
        pixel_pipeline_free(p);
        return rc;
    }
    yaml_parser_delete(&y);
    rc = load_document(p, &c, opts ? opts->flags : 0);
    yaml_document_delete(&c.doc);
    if (rc < 0) {
        if (err && err->code == 0) {
            pixel__error_set(err, rc, PIXEL_STAGE_LOAD, "%s", pixel_status_str(rc));
        }
        pixel_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int pixel_pipeline_load_string(pixel_pipeline **out, const char *yaml, size_t len, const char *name,
                               const char *base_dir, const pixel_pipeline_options *opts,
                               pixel_error *err)
{
    pixel_error_clear(err); /* err may be uninitialized: fill it from scratch */
    if (!out || !yaml) {
        return pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_LOAD, "no output or no text");
    }
    return load(out, yaml, len, name, base_dir, opts, err);
}

int pixel_pipeline_load_file(pixel_pipeline **out, const char *path,
                             const pixel_pipeline_options *opts, pixel_error *err)
{
    pixel_error_clear(err); /* err may be uninitialized: fill it from scratch */
    if (!out || !path) {
        return pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_LOAD, "no output or no path");
    }
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        pixel__error_set(err, PIXEL_EIO, PIXEL_STAGE_LOAD, "cannot open: %s", strerror(errno));
        pixel__error_at(err, path, 0, 0);
        return PIXEL_EIO;
    }
    pixel_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (pixel__buf_append(&b, chunk, n) < 0) {
            fclose(f);
            pixel__buf_free(&b);
            return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        pixel__buf_free(&b);
        pixel__error_set(err, PIXEL_EIO, PIXEL_STAGE_LOAD, "cannot read: %s", strerror(errno));
        pixel__error_at(err, path, 0, 0);
        return PIXEL_EIO;
    }
    char *copy = pixel__strdup(path);
    if (!copy) {
        pixel__buf_free(&b);
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    int rc = load(out, b.data ? b.data : "", b.len, path, dirname(copy), opts, err);
    pixel__free(copy);
    pixel__buf_free(&b);
    return rc;
}

void pixel_pipeline_free(pixel_pipeline *p)
{
    if (!p) {
        return;
    }
    pixel__enrich_free(p);
    pixel__validator_free(p->validator);
    pixel__map_free(p);
    pixel__logfmt_free(&p->logfmt);
    free_strings(p->custom_fields, p->ncustom);
    free_strings(p->module_dirs, p->nmodule_dirs);
    free_strings(p->pixel_paths, p->npixel_paths);
    pixel__free(p->pixel_path_len);
    free_strings(p->methods, p->nmethods);
    pixel__free(p->method_len);
    free_strings(p->slot_names, p->nslots);
    pixel__free(p->slot_name_len);
    pixel__free(p->slot_hash);
    pixel__free(p->name);
    pixel__free(p->version);
    pixel__free(p->file);
    pixel__free(p->dir);
    pixel__free(p);
}

const char *pixel_pipeline_name(const pixel_pipeline *p)
{
    return p ? p->name : "";
}

const char *pixel_pipeline_version(const pixel_pipeline *p)
{
    return p ? p->version : "";
}

/* ---- contexts ------------------------------------------------------------------ */

pixel_ctx *pixel_ctx_new(void)
{
    pixel_ctx *ctx = pixel__calloc(1, sizeof(*ctx));
    if (ctx) {
        pixel__arena_init(&ctx->arena);
    }
    return ctx;
}

void pixel_ctx_free(pixel_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    pixel__module_ctx_release(ctx); /* its per-thread module instances */
    pixel__arena_release(&ctx->arena);
    pixel__buf_free(&ctx->out);
    pixel__buf_free(&ctx->scratch);
    pixel__free(ctx);
}

void pixel_ctx_reset(pixel_ctx *ctx)
{
    pixel__arena_reset(&ctx->arena);
    ctx->serial++; /* the event that was is gone */
    ctx->outcome = PIXEL_OUTCOME_PENDING;
    ctx->pipeline = NULL;
    ctx->line = NULL;
    ctx->line_len = 0;
    /* The record: only the field slots a parse may have set (a whole clear of
     * its 48 slots costs more than the rest of the reset). */
    pixel_record *r = &ctx->rec;
    uint64_t d = r->fields_dirty;
    if (PIXEL_LIKELY(!(d >> PIXEL_F_STANDARD_COUNT))) {
        pixel__zero16n(r->fields, PIXEL_F_STANDARD_COUNT * sizeof(pixel_span) / 16);
    } else {
        memset(r->fields, 0, sizeof(r->fields));
    }
    r->fields_dirty = 0;
    if (sizeof(r->syslog) % 16 == 0) {
        pixel__zero16n(r->syslog, sizeof(r->syslog) / 16);
    } else {
        memset(r->syslog, 0, sizeof(r->syslog));
    }
    r->params = NULL;
    r->nparams = 0;
    r->slots = NULL;
    r->nslots = 0;
    r->pipeline = NULL;
    ctx->parsed = false;
    ctx->event = NULL;
    ctx->event_type = NULL;
    ctx->event_type_len = 0;
    ctx->nreasons = 0;
    ctx->reasons_lost = 0;
}

void pixel_ctx_set_clock(pixel_ctx *ctx, int64_t epoch_ms)
{
    ctx->fixed_clock_ms = epoch_ms;
}

int pixel_time_parse(const char *text, size_t len, int64_t *epoch_ms)
{
    if (!text || !epoch_ms) {
        return PIXEL_EINVAL;
    }
    return pixel__parse_rfc3339(text, len, epoch_ms) == 0 ? PIXEL_OK : PIXEL_EPARSE;
}

int64_t pixel__now_ms(pixel_ctx *ctx)
{
    if (ctx->fixed_clock_ms) {
        return ctx->fixed_clock_ms;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pixel_outcome pixel_ctx_outcome(const pixel_ctx *ctx)
{
    return ctx ? ctx->outcome : PIXEL_OUTCOME_PENDING;
}

pixel_value *pixel_ctx_event(pixel_ctx *ctx)
{
    return ctx ? ctx->event : NULL;
}

/* ---- stages --------------------------------------------------------------------- */

static int finish(pixel_ctx *ctx, pixel_outcome *outcome, int rc, pixel_error *err)
{
    if (rc < 0) {
        pixel__error_set(err, rc, PIXEL_STAGE_NONE, "%s", pixel_status_str(rc));
    }
    if (outcome) {
        /* A failed call decides nothing (and ctx may be the NULL it refused). */
        *outcome = rc < 0 || !ctx ? PIXEL_OUTCOME_PENDING : ctx->outcome;
    }
    return rc < 0 ? rc : 0;
}

/* A call refused before it could look at a line: no verdict. */
static int refused(pixel_outcome *outcome, int rc)
{
    if (outcome) {
        *outcome = PIXEL_OUTCOME_PENDING;
    }
    return rc;
}

static int check_args(const pixel_pipeline *p, pixel_ctx *ctx, pixel_error *err)
{
    if (!p || !ctx) {
        return pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_NONE, "no pipeline or context");
    }
    if (ctx->pipeline && ctx->pipeline != p) {
        return pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_NONE,
                                "the context holds a line of another pipeline");
    }
    return 0;
}

int pixel_parse(const pixel_pipeline *p, pixel_ctx *ctx, const char *line, size_t len,
                pixel_outcome *outcome, pixel_error *err)
{
    if (!p || !ctx || !line) {
        return refused(outcome, pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_PARSE,
                                                 "no pipeline, context or line"));
    }
    pixel_ctx_reset(ctx);
    if (len && line[len - 1] == '\n') {
        len--;
    }
    if (len && line[len - 1] == '\r') {
        len--;
    }
    ctx->pipeline = p;
    ctx->line = line;
    ctx->line_len = len;
    ctx->rec.pipeline = p;
    ctx->parsed = true;
    ctx->ingest_ms = pixel__now_ms(ctx);
    int rc = 0;
    if (len > p->max_line_length) {
        rc = pixel__ctx_reason(ctx, PIXEL_STAGE_PARSE, "line_too_long", NULL,
                               "the line is %zu bytes long, more than input.max_line_length (%zu)",
                               len, p->max_line_length);
        return finish(ctx, outcome, rc, err);
    }
    pixel_span msg;
    rc = pixel__parse_syslog(p, ctx, &msg);
    if (rc == 0 && ctx->outcome == PIXEL_OUTCOME_PENDING) {
        rc = pixel__parse_log(p, ctx, msg);
    }
    return finish(ctx, outcome, rc, err);
}

/* The stages past parse, for a context whose checks passed (the public
 * functions below check; pixel_process() knows the parse left it so):
 * their status, which finish() turns into the public one. */
static inline int run_map(const pixel_pipeline *p, pixel_ctx *ctx)
{
    return pixel__map_run(p, ctx);
}

static int run_enrich(const pixel_pipeline *p, pixel_ctx *ctx, pixel_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < p->nenrichers && ctx->outcome == PIXEL_OUTCOME_PENDING; i++) {
        const pixel_enricher *e = &p->enrichers[i];
        rc = e->fn(e, ctx, err);
        if (rc < 0) {
            break;
        }
    }
    return rc;
}

static int run_validate(const pixel_pipeline *p, pixel_ctx *ctx, pixel_error *err)
{
    int rc = 0;
    if (p->validator) {
        rc = pixel__validator_check(p->validator, ctx, ctx->event, ctx->event_type,
                                    ctx->event_type_len, err);
    }
    if (rc >= 0 && ctx->outcome == PIXEL_OUTCOME_PENDING) {
        ctx->outcome = PIXEL_OUTCOME_EVENT;
    }
    return rc;
}

int pixel_map(const pixel_pipeline *p, pixel_ctx *ctx, pixel_outcome *outcome, pixel_error *err)
{
    int rc = check_args(p, ctx, err);
    if (rc < 0 || ctx->outcome != PIXEL_OUTCOME_PENDING || ctx->event) {
        return finish(ctx, outcome, rc, err);
    }
    if (!ctx->parsed) {
        return refused(
            outcome, pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_MAP, "no parsed line to map"));
    }
    return finish(ctx, outcome, run_map(p, ctx), err);
}

int pixel_enrich(const pixel_pipeline *p, pixel_ctx *ctx, pixel_outcome *outcome, pixel_error *err)
{
    int rc = check_args(p, ctx, err);
    if (rc < 0 || ctx->outcome != PIXEL_OUTCOME_PENDING) {
        return finish(ctx, outcome, rc, err);
    }
    if (!ctx->event) {
        return refused(outcome, pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_ENRICH,
                                                 "no mapped event to enrich"));
    }
    return finish(ctx, outcome, run_enrich(p, ctx, err), err);
}

int pixel_validate(const pixel_pipeline *p, pixel_ctx *ctx, pixel_outcome *outcome,
                   pixel_error *err)
{
    int rc = check_args(p, ctx, err);
    if (rc < 0 || ctx->outcome != PIXEL_OUTCOME_PENDING) {
        return finish(ctx, outcome, rc, err);
    }
    if (!ctx->event) {
        return refused(outcome, pixel__error_set(err, PIXEL_EINVAL, PIXEL_STAGE_VALIDATE,
                                                 "no event to validate"));
    }
    return finish(ctx, outcome, run_validate(p, ctx, err), err);
}

int pixel_process(const pixel_pipeline *p, pixel_ctx *ctx, const char *line, size_t len,
                  pixel_outcome *outcome, pixel_error *err)
{
    int rc = pixel_parse(p, ctx, line, len, NULL, err);
    /* A successful parse leaves ctx holding a parsed line of p, with no event
     * yet: the checks of pixel_map() and the rest hold, so the stages run
     * directly (a stage past a decided outcome does nothing anyway).  Without
     * an event, the checked function says what is wrong. */
    if (rc == 0 && ctx->outcome == PIXEL_OUTCOME_PENDING) {
        rc = finish(ctx, NULL, run_map(p, ctx), err);
    }
    if (rc == 0 && ctx->outcome == PIXEL_OUTCOME_PENDING) {
        rc = PIXEL_LIKELY(ctx->event != NULL) ? finish(ctx, NULL, run_enrich(p, ctx, err), err)
                                              : pixel_enrich(p, ctx, NULL, err);
    }
    if (rc == 0 && ctx->outcome == PIXEL_OUTCOME_PENDING) {
        rc = PIXEL_LIKELY(ctx->event != NULL) ? finish(ctx, NULL, run_validate(p, ctx, err), err)
                                              : pixel_validate(p, ctx, NULL, err);
    }
    if (outcome) {
        *outcome = rc < 0 || !ctx ? PIXEL_OUTCOME_PENDING : ctx->outcome;
    }
    return rc;
}

/* ---- output ----------------------------------------------------------------------- */

/* A member name with its punctuation (`,"key":`, a literal), then v as a
 * JSON string; nothing when v is NULL. */
static inline int put_str_member(pixel_buf *b, const char *name, size_t nlen, const char *v)
{
    if (!v) {
        return 0;
    }
    if (PIXEL_UNLIKELY(b->cap - b->len <= nlen) && pixel__buf_reserve(b, nlen) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, name, nlen);
    b->len += nlen;
    return pixel__json_escape(b, v, strlen(v));
}
#define PUT_STR(b, lit, v) put_str_member(b, lit, sizeof(lit) - 1, v)

static int put_base64(pixel_buf *b, const unsigned char *s, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (pixel__buf_reserve(b, n / 3 * 4 + 8) < 0) {
        return -1;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = tbl[v >> 18], *o++ = tbl[v >> 12 & 63], *o++ = tbl[v >> 6 & 63], *o++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18], *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* The quarantine record: schemas/quarantine.schema.json. */
static int quarantine_record(pixel_ctx *ctx, const pixel_pipeline *p, pixel_buf *b)
{
    size_t tslen;
    const char *ts = pixel__ingest_text(ctx, &tslen); /* NUL-terminated */
    PIXEL_UNUSED(tslen);
    int stage = ctx->nreasons ? ctx->reasons[0].stage : PIXEL_STAGE_NONE;
    if (pixel__buf_append(b, "{\"quarantine\":1", 15) < 0 ||
        PUT_STR(b, ",\"received_at\":", ts) < 0 ||
        pixel__buf_append(b, ",\"pipeline\":{", 13) < 0 || PUT_STR(b, "\"name\":", p->name) < 0 ||
        PUT_STR(b, ",\"version\":", p->version) < 0 || pixel__buf_putc(b, '}') < 0 ||
        PUT_STR(b, ",\"stage\":", pixel_stage_str(stage)) < 0 ||
        pixel__buf_append(b, ",\"reasons\":[", 12) < 0) {
        return -1;
    }
    for (size_t i = 0; i < ctx->nreasons; i++) {
        const pixel_reason *r = &ctx->reasons[i];
        if ((i && pixel__buf_putc(b, ',') < 0) || pixel__buf_putc(b, '{') < 0 ||
            PUT_STR(b, "\"stage\":", pixel_stage_str(r->stage)) < 0 ||
            PUT_STR(b, ",\"family\":", r->family) < 0 || PUT_STR(b, ",\"code\":", r->code) < 0 ||
            PUT_STR(b, ",\"message\":", r->message) < 0 ||
            PUT_STR(b, ",\"location\":", r->location) < 0 ||
            PUT_STR(b, ",\"keyword_location\":", r->keyword_location) < 0 ||
            PUT_STR(b, ",\"schema_location\":", r->schema_location) < 0 ||
            PUT_STR(b, ",\"source\":", r->source) < 0 || pixel__buf_putc(b, '}') < 0) {
            return -1;
        }
    }
    if (pixel__buf_putc(b, ']') < 0 ||
        (ctx->reasons_lost &&
         pixel__buf_printf(b, ",\"reasons_omitted\":%zu", ctx->reasons_lost) < 0)) {
        return -1;
    }
    /* The raw line, losslessly: as a string when it is UTF-8, else as base64. */
    int utf8 = pixel__utf8_check(ctx->line, ctx->line_len) == ctx->line_len;
    if (pixel__buf_append(b, utf8 ? ",\"raw\":" : ",\"raw_base64\":", utf8 ? 7 : 14) < 0 ||
        (utf8 ? pixel__json_escape(b, ctx->line, ctx->line_len)
              : put_base64(b, (const unsigned char *)ctx->line, ctx->line_len)) < 0) {
        return -1;
    }
    if (ctx->event && ctx->event->u.list.count > 0 &&
        (pixel__buf_append(b, ",\"event\":", 9) < 0 || pixel__json_dump(b, ctx->event) < 0)) {
        return -1;
    }
    return pixel__buf_putc(b, '}');
}

const char *pixel_ctx_output(pixel_ctx *ctx, const pixel_pipeline *p, size_t *len)
{
    if (len) {
        *len = 0;
    }
    if (!ctx || !p) {
        return NULL;
    }
    pixel_buf *b = &ctx->out;
    b->len = 0;
    int rc;
    if (ctx->outcome == PIXEL_OUTCOME_EVENT && ctx->event) {
        rc = pixel__json_dump(b, ctx->event);
    } else if (ctx->outcome == PIXEL_OUTCOME_QUARANTINED) {
        rc = quarantine_record(ctx, p, b);
    } else {
        return NULL;
    }
    if (rc < 0 || (PIXEL_UNLIKELY(b->len + 1 >= b->cap) && pixel__buf_reserve(b, 1) < 0)) {
        return NULL;
    }
    b->data[b->len] = '\0';
    if (len) {
        *len = b->len;
    }
    return b->data;
}
