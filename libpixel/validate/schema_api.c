/*
 * pixel_schema_compile(): compile a schema and everything it references,
 * then meta-validate every document that was loaded, check for reference
 * cycles that cannot terminate, and precompile what dynamic references may
 * reach at run time ($dynamicAnchor targets, $recursiveAnchor roots).
 */
#include <stdio.h>
#include <string.h>

#include "schema_private.h"

static const char *metaschema_uri(int draft)
{
    switch (draft) {
        case SDRAFT_7:
            return "http://json-schema.org/draft-07/schema";
        case SDRAFT_2019:
            return "https://json-schema.org/draft/2019-09/schema";
        default:
            return "https://json-schema.org/draft/2020-12/schema";
    }
}

typedef struct meta_err {
    char where[128];
    char text[256];
} meta_err;

static int meta_cb(const pixel_schema_error *e, void *payload)
{
    meta_err *m = payload;
    snprintf(m->where, sizeof(m->where), "%s", e->instance_location);
    snprintf(m->text, sizeof(m->text), "%s (%s)", e->message, e->keyword_location);
    return 1;
}

/* Checks one document against the metaschema named by its $schema (or its draft's). */
static int meta_validate(pixel_schema_registry *r, sdoc *d)
{
    d->checked = true;
    const sinfo *in = pixel__hmap_get(&r->info, d->root);
    if (!in) {
        return 0;
    }
    const char *uri = metaschema_uri(in->res->draft);
    if (d->root->type == PIXEL_TYPE_OBJECT) {
        const pixel_value *s = pixel__object_getn(d->root, "$schema", 7);
        if (s && s->type == PIXEL_TYPE_STRING) {
            uri = pixel__arena_strndup(&r->arena, s->u.str.s, s->u.str.len);
        }
    }
    sresource *res = NULL;
    const char *ptr;
    const pixel_value *mv = uri ? pixel__schema_lookup(r, uri, &res, &ptr) : NULL;
    snode *meta = mv ? pixel__schema_compile_node(r, mv) : NULL;
    if (!meta) {
        if (r->err && r->err->code) {
            return r->err->code;
        }
        return pixel__schema_fail(r, d->root, "/$schema", "cannot load the metaschema %s", uri);
    }
    pixel_schema ms = {meta, r, NULL};
    meta_err me = {"", ""};
    int rc = pixel_schema_validate(&ms, d->root, PIXEL_SCHEMA_FIRST_ERROR, meta_cb, &me);
    if (rc != 0) {
        pixel__error_set(r->err, PIXEL_ESCHEMA, PIXEL_STAGE_LOAD,
                         "invalid schema (per its metaschema %s): %s", uri, me.text);
        pixel__error_at(r->err, d->file, 0, 0);
        if (r->err) {
            snprintf(r->err->pointer, sizeof(r->err->pointer), "%s", me.where);
        }
        return PIXEL_ESCHEMA;
    }
    return 0;
}

/* Compile every dynamic-scope target; loops because compiling can load documents. */
static int compile_dynamic_targets(pixel_schema_registry *r)
{
    size_t before;
    do {
        before = r->compiled.n;
        for (size_t i = 0; i < r->dynanchors.cap; i++) {
            if (r->dynanchors.e[i].key && !pixel__schema_compile_node(r, r->dynanchors.e[i].val)) {
                return PIXEL_ESCHEMA;
            }
        }
        for (size_t i = 0; i < r->resources.cap; i++) {
            const sresource *res = r->resources.e[i].val;
            if (r->resources.e[i].key && res->recursive_anchor &&
                !pixel__schema_compile_node(r, res->root)) {
                return PIXEL_ESCHEMA;
            }
        }
    } while (r->compiled.n != before);
    return 0;
}

int pixel_schema_compile(const pixel_schema **out, pixel_schema_registry *r, const char *uri,
                         pixel_error *err)
{
    pixel_error_clear(err); /* err may be uninitialized: fill it from scratch */
    *out = NULL;
    pixel_error local;
    pixel_error_clear(&local);
    r->err = err ? err : &local;
    int rc = 0;
    sresource *res = NULL;
    const char *ptr = "";
    const pixel_value *v = pixel__schema_lookup(r, uri, &res, &ptr);
    snode *root = NULL;
    if (!v) {
        rc = r->err->code ? r->err->code
                          : pixel__error_set(r->err, PIXEL_ESCHEMA, PIXEL_STAGE_LOAD,
                                             "no schema is loaded at %s", uri);
        goto out;
    }
    root = pixel__schema_compile_node(r, v);
    if (!root || compile_dynamic_targets(r) < 0) {
        rc = r->err->code ? r->err->code : PIXEL_ESCHEMA;
        goto out;
    }
    for (bool again = true; again;) {
        again = false; /* meta-validation may load documents (metaschemas): loop */
        for (sdoc *d = r->docs; d; d = d->next) {
            if (!d->builtin && !d->checked) {
                rc = meta_validate(r, d);
                if (rc < 0) {
                    goto out;
                }
                again = true;
            }
        }
    }
    if (compile_dynamic_targets(r) < 0 || pixel__schema_check_cycles(r, root) < 0 ||
        pixel__schema_static_uneval(r) < 0) {
        rc = r->err->code ? r->err->code : PIXEL_ESCHEMA;
        goto out;
    }
    pixel__schema_mark_quick(r);
    pixel_schema *s = pixel__arena_alloc(&r->arena, sizeof(*s));
    if (!s) {
        rc = pixel__error_set(r->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
        goto out;
    }
    s->root = root;
    s->reg = r;
    s->next = NULL;
    *out = s;
out:
    r->err = NULL;
    return rc;
}

int pixel_schema_format_check(const char *format, const char *s, size_t len)
{
    int id = pixel__format_id(format);
    if (id < 0) {
        return -1;
    }
    return pixel__format_check(id, s, len);
}

int pixel_schema_registry_check(pixel_schema_registry *r, pixel_error *err)
{
    pixel_error local;
    pixel_error_clear(&local);
    r->err = err ? err : &local;
    /* Every indexed schema object of an added document, referenced or not. */
    size_t n = 0;
    const pixel_value **all = pixel__malloc((r->info.n + 1) * sizeof(*all));
    int rc = 0;
    if (!all) {
        rc = pixel__error_set(r->err, PIXEL_ENOMEM, PIXEL_STAGE_LOAD, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->info.cap; i++) {
        const sinfo *in = r->info.e[i].val;
        if (r->info.e[i].key && !in->res->doc->builtin) {
            all[n++] = r->info.e[i].key;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        snode *node = pixel__schema_compile_node(r, all[i]);
        if (!node) {
            rc = r->err->code ? r->err->code : PIXEL_ESCHEMA;
        } else if (node->src == all[i] && pixel__schema_check_cycles(r, node) < 0) {
            rc = r->err->code ? r->err->code : PIXEL_ESCHEMA;
        }
    }
    pixel__free(all);
    for (bool again = rc == 0; again && rc == 0;) {
        again = false;
        for (sdoc *d = r->docs; d && rc == 0; d = d->next) {
            if (!d->builtin && !d->checked) {
                rc = meta_validate(r, d);
                again = true;
            }
        }
    }
    if (rc == 0 && (compile_dynamic_targets(r) < 0 || pixel__schema_static_uneval(r) < 0)) {
        rc = r->err->code ? r->err->code : PIXEL_ESCHEMA;
    }
    if (rc == 0) {
        pixel__schema_mark_quick(r);
    }
out:
    r->err = NULL;
    return rc < 0 ? rc : 0;
}
