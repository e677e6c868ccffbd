/*
 * The pipeline's validate stage: loads the `validate:` section, compiles the
 * schemas once, and checks each event against the schema its type selects.
 * Every error becomes a quarantine reason (family schema_violation, code =
 * the failing keyword) carrying the instance's JSON Pointer, the keyword
 * location and the absolute schema location.
 *
 *   validate:
 *     schemas: ../../schemas            # a directory (or a list), loaded recursively
 *     schema: https://…/event.schema.json   # default root: a URI ($id) or a file
 *     by_type: {page_view: https://…}   # per event type (URI or file)
 *     type_template: https://…/events/{type}.schema.json  # for each event_type.values
 *     map: {"https://x/": dir}          # URI prefix -> directory, loaded on use
 *     format_assertion: true            # default true here (governance)
 *     errors: all                       # or first
 *     default_draft: 2020-12            # for schemas without $schema
 *
 * An event whose type selects no schema (no by_type entry, no default) is
 * quarantined with code no_schema: an ungoverned event never goes out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "schema_private.h"

typedef struct type_ent {
    const char *type; /* arena */
    size_t len;
    const pixel_schema *schema;
} type_ent;

struct pixel_validator {
    pixel_schema_registry *reg;
    const pixel_schema *deflt;
    type_ent *types; /* open-addressed, cap a power of two */
    size_t cap, n;
    unsigned flags;
};

/* A config value naming a schema: a URI, or a file relative to the pipeline. */
static int schema_ref(pixel_validator *v, pixel_cfg *c, const yaml_node_t *node,
                      const pixel_schema **out)
{
    const char *s = pixel__cfg_scalar(node);
    if (!s || !*s) {
        return pixel__cfg_fail(c, node, "validate: expected a schema URI or file name");
    }
    char *uri = NULL;
    if (!strchr(s, ':')) {
        char *path = pixel__cfg_path(c, s);
        char *abs = path ? realpath(path, NULL) : NULL;
        if (!abs) {
            pixel__free(path);
            return pixel__cfg_fail(c, node, "validate: schema file %s not found", s);
        }
        /* already loaded with a schemas: directory?  then use its URI */
        for (sdoc *d = v->reg->docs; d && !uri; d = d->next) {
            char *da = realpath(d->file, NULL);
            if (da && strcmp(da, abs) == 0) {
                const sinfo *in = pixel__hmap_get(&v->reg->info, d->root);
                uri = pixel__arena_strndup(&v->reg->arena, in ? in->res->uri : d->uri,
                                           strlen(in ? in->res->uri : d->uri));
            }
            free(da);
        }
        int rc = 0;
        if (!uri) {
            rc = pixel_schema_registry_add_file(v->reg, path, NULL, c->err);
            uri = rc == 0 ? (char *)pixel_schema_registry_last_uri(v->reg) : NULL;
        }
        free(abs);
        pixel__free(path);
        if (rc < 0) {
            return rc;
        }
    } else {
        uri = (char *)s;
    }
    int rc = pixel_schema_compile(out, v->reg, uri, c->err);
    if (rc < 0 && c->err && c->err->line == 0 && c->err->source[0] == '\0') {
        /* not a schema file's error: point at the config line */
        pixel__error_at(c->err, c->file, (long)node->start_mark.line + 1,
                        (long)node->start_mark.column + 1);
    }
    return rc;
}

static int put_type(pixel_validator *v, const char *type, size_t len, const pixel_schema *s)
{
    if ((v->n + 1) * 2 > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        type_ent *t = pixel__calloc(cap, sizeof(*t));
        if (!t) {
            return -1;
        }
        for (size_t i = 0; i < v->cap; i++) {
            if (v->types[i].type) {
                size_t j = pixel__schema_hash(v->types[i].type, v->types[i].len) & (cap - 1);
                while (t[j].type) {
                    j = (j + 1) & (cap - 1);
                }
                t[j] = v->types[i];
            }
        }
        pixel__free(v->types);
        v->types = t;
        v->cap = cap;
    }
    size_t j = pixel__schema_hash(type, len) & (v->cap - 1);
    while (v->types[j].type) {
        if (v->types[j].len == len && memcmp(v->types[j].type, type, len) == 0) {
            v->types[j].schema = s;
            return 0;
        }
        j = (j + 1) & (v->cap - 1);
    }
    v->types[j].type = pixel__arena_strndup(&v->reg->arena, type, len);
    v->types[j].len = len;
    v->types[j].schema = s;
    v->n++;
    return v->types[j].type ? 0 : -1;
}

static const pixel_schema *get_type(const pixel_validator *v, const char *type, size_t len)
{
    if (!v->cap || !type) {
        return NULL;
    }
    size_t j = pixel__schema_hash(type, len) & (v->cap - 1);
    for (; v->types[j].type; j = (j + 1) & (v->cap - 1)) {
        if (v->types[j].len == len && memcmp(v->types[j].type, type, len) == 0) {
            return v->types[j].schema;
        }
    }
    return NULL;
}

static int load_dirs(pixel_validator *v, pixel_cfg *c, const yaml_node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE) {
        PIXEL_CFG_ITEMS(c, n, it)
        {
            int rc = load_dirs(v, c, pixel__cfg_node(c, *it));
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    const char *s = pixel__cfg_scalar(n);
    if (!s) {
        return pixel__cfg_fail(c, n, "validate.schemas: expected a directory or a list of them");
    }
    char *dir = pixel__cfg_path(c, s);
    if (!dir) {
        return pixel__error_set(c->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    int rc = pixel_schema_registry_add_dir(v->reg, dir, c->err);
    pixel__free(dir);
    if (rc < 0 && c->err && c->err->source[0] == '\0') {
        pixel__error_at(c->err, c->file, (long)n->start_mark.line + 1,
                        (long)n->start_mark.column + 1);
    }
    return rc;
}

static int load_maps(pixel_validator *v, pixel_cfg *c, const yaml_node_t *n)
{
    if (pixel__cfg_expect(c, n, YAML_MAPPING_NODE, "a mapping of URI prefix to directory") < 0) {
        return PIXEL_ECONFIG;
    }
    PIXEL_CFG_PAIRS(c, n, pair)
    {
        const char *prefix = pixel__cfg_scalar(pixel__cfg_node(c, pair->key));
        const char *d = pixel__cfg_scalar(pixel__cfg_node(c, pair->value));
        if (!prefix || !d) {
            return pixel__cfg_fail(c, pixel__cfg_node(c, pair->key),
                                   "validate.map: expected URI_PREFIX: DIRECTORY");
        }
        char *dir = pixel__cfg_path(c, d);
        int rc = dir ? pixel_schema_registry_map(v->reg, prefix, dir, c->err) : PIXEL_ENOMEM;
        pixel__free(dir);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int load_by_type(pixel_validator *v, pixel_cfg *c, const yaml_node_t *n)
{
    if (pixel__cfg_expect(c, n, YAML_MAPPING_NODE, "a mapping of event type to schema") < 0) {
        return PIXEL_ECONFIG;
    }
    PIXEL_CFG_PAIRS(c, n, pair)
    {
        const char *type = pixel__cfg_scalar(pixel__cfg_node(c, pair->key));
        const pixel_schema *s;
        if (!type) {
            return pixel__cfg_fail(c, pixel__cfg_node(c, pair->key),
                                   "validate.by_type: expected an event type");
        }
        int rc = schema_ref(v, c, pixel__cfg_node(c, pair->value), &s);
        if (rc < 0) {
            return rc;
        }
        if (put_type(v, type, strlen(type), s) < 0) {
            return pixel__error_set(c->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
        }
    }
    return 0;
}

/* type_template: one schema per value of the pipeline's event_type.values. */
static int load_template(pixel_validator *v, pixel_cfg *c, const yaml_node_t *n)
{
    const char *tpl = pixel__cfg_scalar(n);
    const char *at = tpl ? strstr(tpl, "{type}") : NULL;
    if (!at) {
        return pixel__cfg_fail(c, n, "validate.type_template: expected a URI containing {type}");
    }
    yaml_node_t *et = pixel__cfg_get(c, pixel__cfg_root(c), "event_type");
    yaml_node_t *vals = et ? pixel__cfg_get(c, et, "values") : NULL;
    if (!vals || vals->type != YAML_SEQUENCE_NODE) {
        return pixel__cfg_fail(c, n, "validate.type_template needs event_type.values to expand");
    }
    PIXEL_CFG_ITEMS(c, vals, it)
    {
        const char *type = pixel__cfg_scalar(pixel__cfg_node(c, *it));
        if (!type || get_type(v, type, strlen(type))) {
            continue; /* by_type wins */
        }
        char uri[1024];
        snprintf(uri, sizeof(uri), "%.*s%s%s", (int)(at - tpl), tpl, type, at + 6);
        const pixel_schema *s;
        int rc = pixel_schema_compile(&s, v->reg, uri, c->err);
        if (rc < 0) {
            pixel__error_at(c->err, c->file, (long)n->start_mark.line + 1,
                            (long)n->start_mark.column + 1);
            return rc;
        }
        if (put_type(v, type, strlen(type), s) < 0) {
            return pixel__error_set(c->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
        }
    }
    return 0;
}

static int load_options(pixel_validator *v, pixel_cfg *c, const yaml_node_t *section, int *draft)
{
    bool fmt = true;
    const char *errors = NULL, *d = NULL;
    if (pixel__cfg_bool(c, section, "format_assertion", &fmt) < 0 ||
        pixel__cfg_string(c, section, "errors", &errors) < 0 ||
        pixel__cfg_string(c, section, "default_draft", &d) < 0) {
        return PIXEL_ECONFIG;
    }
    v->flags = fmt ? PIXEL_SCHEMA_ASSERT_FORMAT : 0;
    if (errors && strcmp(errors, "first") == 0) {
        v->flags |= PIXEL_SCHEMA_FIRST_ERROR;
    } else if (errors && strcmp(errors, "all") != 0) {
        return pixel__cfg_fail(c, pixel__cfg_get(c, section, "errors"),
                               "validate.errors: expected all or first");
    }
    *draft = PIXEL_SCHEMA_DRAFT_2020_12;
    if (d && !(*draft = pixel_schema_draft_parse(d))) {
        return pixel__cfg_fail(c, pixel__cfg_get(c, section, "default_draft"),
                               "validate.default_draft: expected 7, 2019-09 or 2020-12");
    }
    return 0;
}

int pixel__validator_load(pixel_validator **out, pixel_cfg *c, const yaml_node_t *section)
{
    static const char *const known[] = {"schemas", "schema", "by_type", "type_template", "map",
                                        "format_assertion", "errors", "default_draft", NULL};
    *out = NULL;
    if (pixel__cfg_expect(c, section, YAML_MAPPING_NODE, "a mapping") < 0 ||
        pixel__cfg_only_keys(c, section, known) < 0) {
        return PIXEL_ECONFIG;
    }
    pixel_validator *v = pixel__calloc(1, sizeof(*v));
    if (!v) {
        return pixel__error_set(c->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
    }
    int draft, rc = load_options(v, c, section, &draft);
    if (rc == 0) {
        rc = pixel_schema_registry_new(&v->reg, draft, c->err);
    }
    const yaml_node_t *n;
    if (rc == 0 && (n = pixel__cfg_get(c, section, "map")) != NULL) {
        rc = load_maps(v, c, n);
    }
    if (rc == 0 && (n = pixel__cfg_get(c, section, "schemas")) != NULL) {
        rc = load_dirs(v, c, n);
        if (rc == 0) {
            /* every file of the model must be sound, referenced or not */
            rc = pixel_schema_registry_check(v->reg, c->err);
        }
    }
    if (rc == 0 && (n = pixel__cfg_get(c, section, "schema")) != NULL) {
        rc = schema_ref(v, c, n, &v->deflt);
    }
    if (rc == 0 && (n = pixel__cfg_get(c, section, "by_type")) != NULL) {
        rc = load_by_type(v, c, n);
    }
    if (rc == 0 && (n = pixel__cfg_get(c, section, "type_template")) != NULL) {
        rc = load_template(v, c, n);
    }
    if (rc == 0 && !v->deflt && v->n == 0) {
        rc = pixel__cfg_fail(c, section, "validate: name a schema (schema, by_type or "
                                         "type_template)");
    }
    if (rc < 0) {
        pixel__validator_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void pixel__validator_free(pixel_validator *v)
{
    if (!v) {
        return;
    }
    pixel_schema_registry_free(v->reg);
    pixel__free(v->types);
    pixel__free(v);
}

typedef struct reason_cb {
    pixel_ctx *ctx;
    bool oom;
} reason_cb;

static const char *dup(pixel_ctx *ctx, const char *s)
{
    return pixel__arena_strndup(&ctx->arena, s, strlen(s));
}

static int add_reason(const pixel_schema_error *e, void *payload)
{
    reason_cb *p = payload;
    pixel_ctx *ctx = p->ctx;
    pixel_reason r = {
        .stage = PIXEL_STAGE_VALIDATE,
        .family = "schema_violation",
        .code = dup(ctx, e->keyword),
        .message = dup(ctx, e->message),
        .location = dup(ctx, e->instance_location),
        .keyword_location = dup(ctx, e->keyword_location),
        .schema_location = dup(ctx, e->schema_location),
    };
    if (!r.code || !r.message || !r.location || !r.keyword_location || !r.schema_location) {
        p->oom = true;
        return 1;
    }
    pixel__ctx_add_reason(ctx, &r);
    return 0;
}

/* A schema_violation that is not a keyword's: the whole event, at the root. */
static int stage_reason(pixel_ctx *ctx, const char *code, const char *message)
{
    pixel_reason r = {
        .stage = PIXEL_STAGE_VALIDATE,
        .family = "schema_violation",
        .code = code,
        .message = message ? message : code,
        .location = "",
    };
    pixel__ctx_add_reason(ctx, &r);
    return 1;
}

int pixel__validator_check(const pixel_validator *v, pixel_ctx *ctx, const pixel_value *event,
                           const char *event_type, size_t event_type_len, pixel_error *err)
{
    const pixel_schema *s = get_type(v, event_type, event_type_len);
    if (!s) {
        s = v->deflt;
    }
    if (!s) {
        return stage_reason(ctx, "no_schema",
                            pixel__arena_printf(&ctx->arena, "no schema for event type \"%.*s\"",
                                                (int)event_type_len, event_type ? event_type : ""));
    }
    reason_cb p = {ctx, false};
    /* the validator lives and dies with the pipeline, and so do its key frames */
    const pixel_pipeline *pl = ctx->pipeline;
    int rc = pl ? pixel__schema_validate_framed(s, event, v->flags, add_reason, &p, pl->keyframes,
                                                pl->keyframes_len)
                : pixel_schema_validate(s, event, v->flags, add_reason, &p);
    if (p.oom) {
        return pixel__error_set(err, PIXEL_ENOMEM, PIXEL_STAGE_VALIDATE, "out of memory");
    }
    if (rc == PIXEL_ESCHEMA) {
        /* a schema that re-enters itself on this event through dynamic references */
        return stage_reason(ctx, "too_deep",
                            "the schema re-enters itself on this event and cannot be evaluated");
    }
    if (rc < 0) {
        /* nesting beyond the evaluator's limit: the event's fault, not ours */
        return stage_reason(ctx, "too_deep", "the event is nested too deeply to validate");
    }
    return rc;
}
