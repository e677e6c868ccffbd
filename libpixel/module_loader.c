/*
 * The interceptor module loader: `- module: {name: ..., path: ..., config: ...}`
 * entries of a pipeline's `enrich:` list.
 *
 * Loading a module entry:
 *
 *   1. find the file: `path:` (relative to the pipeline file), else
 *      <dir>/<name>.so in pixel_pipeline_options.module_dirs, the
 *      PIXEL_MODULE_PATH environment variable (colon-separated), the
 *      pipeline's `modules: {path: [...]}`, the module directory beside the
 *      running libpixel.so (an installation moved elsewhere) and the
 *      installed PIXEL_MODULE_DIR;
 *   2. open it with dlopen(RTLD_NOW | RTLD_LOCAL) -- through the process-wide
 *      library table below, so that a changed file really loads as new code;
 *   3. check the description before trusting it (entry symbol, ABI major,
 *      struct_size, name = file name, required callbacks);
 *   4. check the `config:` subtree against the module's option table, and
 *      keep it (owned here, independent of the YAML document) so that
 *      per-thread instances can be created later;
 *   5. create the first instance, so that a bad config fails the load.
 *
 * Every failure is a PIXEL_ECONFIG at the module entry's line and column,
 * whose text names the module, the file and the reason.  Nothing in a module
 * is called before its description passed the checks.
 *
 * Reload: glibc hands back the already-loaded object for a path it has
 * open, even when the file was replaced since.  The table below remembers
 * the identity (device, inode, size, mtime) of every file it opened; when a
 * pipeline asks for a path whose file changed while the old version is still
 * loaded (the old pipeline is alive during a reload), the new file is copied
 * to a unique temporary name and that copy is opened.  So a reload always
 * runs the file that is on disk at reload time.
 *
 * Per-thread instances (PIXEL_MODULE_PER_THREAD) are kept per pixel_ctx in
 * a registry in the enricher (a mutex-protected list of (context key,
 * instance)).  A context's key is a process-unique number given the first
 * time a module needs it (pixel_ctx.module_key), so a new context never
 * finds the instance of a freed one by accident, even at the same address.
 * A small cache in the context itself (pixel_ctx.module_inst, by enricher
 * id) in front of the registry makes the common path lock-free, without a
 * thread-local lookup: a context is used by one thread at a time.  Enricher
 * ids are never reused either, so the cache entry of a freed pipeline never
 * matches again.
 *
 * pixel_ctx_free() calls pixel__module_ctx_release(): every per-thread
 * enricher of every live pipeline (a process-wide list) gives up the
 * context's slot.  The instance becomes the enricher's spare (key 0, which
 * the next new context claims under the enricher's lock) when it has none
 * yet, and is destroyed otherwise; so a host that creates and frees
 * contexts keeps at most one idle instance per enricher.  The cache goes
 * with the context.  Lock order: reg_lock,
 * then an enricher's lock.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline.h"
#include "pixel/module.h"
#include "simd.h"
#include "../modules/common/cache_hash.h" /* the modules' cache hash (pixel_module_event_hash) */

#ifndef PIXEL_MODULE_DIR
#define PIXEL_MODULE_DIR "/usr/local/lib/libpixel/modules"
#endif

/* The ABI 1.0 part of pixel_module that every module must have. */
#define MIN_STRUCT_SIZE (offsetof(pixel_module, destroy) + sizeof(void (*)(void *)))

/* ---- the process-wide library table ------------------------------------------- */

typedef struct lib {
    struct lib *next;
    char *path;  /* the path asked for (resolved with realpath) */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    void *handle;
    int refs;
} lib;

static pthread_mutex_t libs_lock = PTHREAD_MUTEX_INITIALIZER;
static lib *libs;

static int same_file(const lib *l, const struct stat *st)
{
    return l->dev == st->st_dev && l->ino == st->st_ino && l->size == st->st_size &&
           l->mtime.tv_sec == st->st_mtim.tv_sec && l->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Copy src to a fresh file in $TMPDIR (or /tmp); the name is malloc'd into *out. */
static int copy_to_temp(const char *src, const char *name, char **out, char *why, size_t whylen)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) {
        tmp = "/tmp";
    }
    size_t n = strlen(tmp) + strlen(name) + 32;
    char *dst = pixel__malloc(n);
    if (!dst) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    snprintf(dst, n, "%s/pixel-%s-XXXXXX.so", tmp, name);
    int out_fd = mkstemps(dst, 3);
    int in_fd = out_fd < 0 ? -1 : open(src, O_RDONLY | O_CLOEXEC);
    int ok = in_fd >= 0;
    char buf[65536];
    ssize_t r = 0;
    while (ok && (r = read(in_fd, buf, sizeof(buf))) > 0) {
        ok = write(out_fd, buf, (size_t)r) == r;
    }
    ok = ok && r == 0;
    if (!ok) {
        snprintf(why, whylen, "cannot copy the changed module to %s: %s", dst, strerror(errno));
    }
    if (in_fd >= 0) {
        close(in_fd);
    }
    if (out_fd >= 0 && close(out_fd) < 0 && ok) {
        snprintf(why, whylen, "cannot write %s: %s", dst, strerror(errno));
        ok = 0;
    }
    if (!ok) {
        if (out_fd >= 0) {
            unlink(dst);
        }
        pixel__free(dst);
        return -1;
    }
    *out = dst;
    return 0;
}

/* Open path (a real path) through the table; NULL with `why` filled on failure. */
static lib *lib_open(const char *path, const char *name, char *why, size_t whylen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(why, whylen, "cannot stat: %s", strerror(errno));
        return NULL;
    }
    pthread_mutex_lock(&libs_lock);
    lib *l = libs;
    int changed = 0;
    for (; l; l = l->next) {
        if (strcmp(l->path, path) == 0) {
            if (same_file(l, &st)) {
                break;
            }
            changed = 1;
        }
    }
    if (l) {
        l->refs++;
        pthread_mutex_unlock(&libs_lock);
        return l;
    }
    char *temp = NULL;
    if (changed && copy_to_temp(path, name, &temp, why, whylen) < 0) {
        pthread_mutex_unlock(&libs_lock);
        return NULL;
    }
    dlerror();
    void *h = dlopen(temp ? temp : path, RTLD_NOW | RTLD_LOCAL);
    if (temp) {
        unlink(temp); /* the mapping stays; nothing is left behind on disk */
        pixel__free(temp);
    }
    if (!h) {
        const char *e = dlerror();
        char hint[96] = "";
        if (e && strstr(e, "undefined symbol: pixel_")) {
            /* A module built for a later ABI minor calls a helper this libpixel lacks. */
            snprintf(hint, sizeof(hint),
                     " (the module needs a newer libpixel: this one loads module ABI %d.%d)",
                     PIXEL_MODULE_ABI_MAJOR, PIXEL_MODULE_ABI_MINOR);
        }
        snprintf(why, whylen, "dlopen failed: %s%s", e ? e : "unknown error", hint);
        pthread_mutex_unlock(&libs_lock);
        return NULL;
    }
    l = pixel__calloc(1, sizeof(*l));
    if (!l || !(l->path = pixel__strdup(path))) {
        pixel__free(l);
        dlclose(h);
        snprintf(why, whylen, "out of memory");
        pthread_mutex_unlock(&libs_lock);
        return NULL;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->size = st.st_size;
    l->mtime = st.st_mtim;
    l->handle = h;
    l->refs = 1;
    l->next = libs;
    libs = l;
    pthread_mutex_unlock(&libs_lock);
    return l;
}

static void lib_close(lib *l)
{
    if (!l) {
        return;
    }
    pthread_mutex_lock(&libs_lock);
    if (--l->refs == 0) {
        lib **pp = &libs;
        while (*pp != l) {
            pp = &(*pp)->next;
        }
        *pp = l->next;
        dlclose(l->handle);
        pixel__free(l->path);
        pixel__free(l);
    }
    pthread_mutex_unlock(&libs_lock);
}

/* ---- the checked config ------------------------------------------------------------ */

typedef struct optval {
    const pixel_module_option *opt;
    int given, has; /* given in the pipeline; has a value (given or default) */
    long line, column;
    char *s; /* STRING, PATH */
    int64_t i;
    double d;
    int b;
    char **list;
    size_t nlist;
    pixel_value *v; /* the given subtree, any type */
} optval;

struct pixel_module_config {
    const char *module; /* borrowed from the enricher state */
    char *file;         /* the pipeline file */
    char *base_dir;
    long line, column; /* the module entry */
    optval *vals;
    size_t nvals;
    pixel_ctx *vctx; /* arena of the value trees */
    /* the entry's pipeline and place in its enrich list (event paths, ABI 1.3) */
    const pixel_pipeline *pipeline;
    const pixel_enricher *enricher;
};

static void config_free(pixel_module_config *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < cfg->nvals; i++) {
        pixel__free(cfg->vals[i].s);
        for (size_t k = 0; k < cfg->vals[i].nlist; k++) {
            pixel__free(cfg->vals[i].list[k]);
        }
        pixel__free(cfg->vals[i].list);
    }
    pixel__free(cfg->vals);
    pixel__free(cfg->file);
    pixel__free(cfg->base_dir);
    pixel_ctx_free(cfg->vctx);
    pixel__free(cfg);
}

static const optval *find_opt(const pixel_module_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->nvals; i++) {
        if (strcmp(cfg->vals[i].opt->name, name) == 0) {
            return &cfg->vals[i];
        }
    }
    return NULL;
}

static pixel_value *yaml_to_value(pixel_cfg *c, pixel_ctx *ctx, yaml_node_t *n, int depth)
{
    if (!n || depth > 64) {
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE) {
        return pixel_value_new_string(ctx, (const char *)n->data.scalar.value, n->data.scalar.length);
    }
    pixel_value *v;
    if (n->type == YAML_SEQUENCE_NODE) {
        v = pixel_value_new_array(ctx);
        PIXEL_CFG_ITEMS(c, n, item)
        {
            pixel_value *e = yaml_to_value(c, ctx, pixel__cfg_node(c, *item), depth + 1);
            if (!v || !e || pixel_array_append(v, e) < 0) {
                return NULL;
            }
        }
        return v;
    }
    v = pixel_value_new_object(ctx);
    PIXEL_CFG_PAIRS(c, n, pair)
    {
        const char *k = pixel__cfg_scalar(pixel__cfg_node(c, pair->key));
        pixel_value *e = yaml_to_value(c, ctx, pixel__cfg_node(c, pair->value), depth + 1);
        if (!v || !k || !e || pixel_object_set(ctx, v, k, e) < 0) {
            return NULL;
        }
    }
    return v;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

static char *resolve(const char *base_dir, const char *path)
{
    if (path[0] == '/' || !base_dir || !base_dir[0]) {
        return pixel__strdup(path);
    }
    size_t n = strlen(base_dir) + strlen(path) + 2;
    char *full = pixel__malloc(n);
    if (full) {
        snprintf(full, n, "%s/%s", base_dir, path);
    }
    return full;
}

static const char *type_name(int type)
{
    static const char *const names[] = {"?",      "a string", "a path",  "an integer",
                                        "a boolean", "a number", "a list of strings", "anything"};
    return type >= 1 && type <= 7 ? names[type] : "?";
}

/* Set one option from a scalar text (the YAML value or the default). */
static int set_scalar(optval *o, const char *s, const char *base_dir)
{
    char *end;
    errno = 0;
    switch (o->opt->type) {
        case PIXEL_OPT_STRING:
            return (o->s = pixel__strdup(s)) ? 0 : PIXEL_ENOMEM;
        case PIXEL_OPT_PATH:
            return (o->s = resolve(base_dir, s)) ? 0 : PIXEL_ENOMEM;
        case PIXEL_OPT_INT:
            o->i = strtoll(s, &end, 0);
            return *s && !*end && errno == 0 ? 0 : PIXEL_ECONFIG;
        case PIXEL_OPT_NUMBER:
            o->d = strtod(s, &end);
            return *s && !*end && errno == 0 ? 0 : PIXEL_ECONFIG;
        case PIXEL_OPT_BOOL:
            return parse_bool(s, &o->b) < 0 ? PIXEL_ECONFIG : 0;
        case PIXEL_OPT_LIST:
            o->list = pixel__calloc(1, sizeof(char *));
            if (!o->list || !(o->list[0] = pixel__strdup(s))) {
                return PIXEL_ENOMEM;
            }
            o->nlist = 1;
            return 0;
        default:
            return 0; /* ANY: the value tree only */
    }
}

static int set_from_yaml(pixel_cfg *c, pixel_module_config *cfg, optval *o, yaml_node_t *n)
{
    o->given = o->has = 1;
    o->line = (long)n->start_mark.line + 1;
    o->column = (long)n->start_mark.column + 1;
    if (!(o->v = yaml_to_value(c, cfg->vctx, n, 0))) {
        return pixel__cfg_fail(c, n, "module '%s': option '%s' nests too deep or out of memory",
                               cfg->module, o->opt->name);
    }
    int type = o->opt->type;
    if (type == PIXEL_OPT_ANY) {
        return 0;
    }
    if (type == PIXEL_OPT_LIST && n->type == YAML_SEQUENCE_NODE) {
        size_t k = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        o->list = pixel__calloc(k ? k : 1, sizeof(char *));
        if (!o->list) {
            return PIXEL_ENOMEM;
        }
        PIXEL_CFG_ITEMS(c, n, item)
        {
            yaml_node_t *in = pixel__cfg_node(c, *item);
            const char *s = pixel__cfg_scalar(in);
            if (!s) {
                return pixel__cfg_fail(c, in, "module '%s': option '%s' is a list of strings",
                                       cfg->module, o->opt->name);
            }
            if (!(o->list[o->nlist] = pixel__strdup(s))) {
                return PIXEL_ENOMEM;
            }
            o->nlist++;
        }
        return 0;
    }
    const char *s = pixel__cfg_scalar(n);
    int rc = s ? set_scalar(o, s, cfg->base_dir) : PIXEL_ECONFIG;
    if (rc == PIXEL_ECONFIG) {
        return pixel__cfg_fail(c, n, "module '%s': option '%s' must be %s", cfg->module,
                               o->opt->name, type_name(type));
    }
    return rc;
}

static int config_build(pixel_cfg *c, const pixel_module *m, const char *module,
                        yaml_node_t *entry, yaml_node_t *node, pixel_module_config **out)
{
    pixel_module_config *cfg = pixel__calloc(1, sizeof(*cfg));
    *out = cfg;
    if (!cfg) {
        return PIXEL_ENOMEM;
    }
    size_t n = 0;
    while (m->options && m->options[n].name) {
        n++;
    }
    cfg->module = module;
    cfg->line = (long)entry->start_mark.line + 1;
    cfg->column = (long)entry->start_mark.column + 1;
    cfg->file = pixel__strdup(c->file ? c->file : "<string>");
    cfg->base_dir = pixel__strdup(c->base_dir ? c->base_dir : "");
    cfg->vals = pixel__calloc(n ? n : 1, sizeof(optval));
    cfg->vctx = pixel_ctx_new();
    if (!cfg->file || !cfg->base_dir || !cfg->vals || !cfg->vctx) {
        return PIXEL_ENOMEM;
    }
    cfg->nvals = n;
    for (size_t i = 0; i < n; i++) {
        cfg->vals[i].opt = &m->options[i];
    }
    if (node && node->type == YAML_SCALAR_NODE && pixel__cfg_scalar(node)[0] == '\0') {
        node = NULL; /* "config:" with nothing after it */
    }
    if (node && node->type != YAML_MAPPING_NODE) {
        return pixel__cfg_fail(c, node, "module '%s': config must be a mapping of options",
                               module);
    }
    if (node) {
        PIXEL_CFG_PAIRS(c, node, pair)
        {
            yaml_node_t *kn = pixel__cfg_node(c, pair->key);
            const char *k = pixel__cfg_scalar(kn);
            optval *o = (optval *)find_opt(cfg, k);
            if (!o) {
                return pixel__cfg_fail(c, kn, "module '%s': unknown option '%s'", module,
                                       k ? k : "?");
            }
            int rc = set_from_yaml(c, cfg, o, pixel__cfg_node(c, pair->value));
            if (rc < 0) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        optval *o = &cfg->vals[i];
        if (o->given) {
            continue;
        }
        if (o->opt->flags & PIXEL_OPT_REQUIRED) {
            return pixel__cfg_fail(c, node ? node : entry,
                                   "module '%s': option '%s' is required (%s)", module,
                                   o->opt->name, o->opt->help ? o->opt->help : type_name(o->opt->type));
        }
        if (o->opt->default_value && o->opt->type != PIXEL_OPT_ANY) {
            int rc = set_scalar(o, o->opt->default_value, cfg->base_dir);
            if (rc < 0) {
                return rc == PIXEL_ECONFIG
                           ? pixel__cfg_fail(c, entry, "module '%s': the default of option '%s' "
                                                       "is not %s (a bug in the module)",
                                             module, o->opt->name, type_name(o->opt->type))
                           : rc;
            }
            o->has = 1;
        }
    }
    return 0;
}

const char *pixel_module_config_string(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o && o->has ? o->s : NULL;
}

int64_t pixel_module_config_int(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o && o->has ? o->i : 0;
}

int pixel_module_config_bool(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o && o->has ? o->b : 0;
}

double pixel_module_config_number(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o && o->has ? o->d : 0.0;
}

size_t pixel_module_config_list_size(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o && o->has ? o->nlist : 0;
}

const char *pixel_module_config_list_item(const pixel_module_config *cfg, const char *name,
                                          size_t i)
{
    const optval *o = find_opt(cfg, name);
    return o && o->has && i < o->nlist ? o->list[i] : NULL;
}

const pixel_value *pixel_module_config_value(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o ? o->v : NULL;
}

int pixel_module_config_isset(const pixel_module_config *cfg, const char *name)
{
    const optval *o = find_opt(cfg, name);
    return o ? o->given : 0;
}

char *pixel_module_config_resolve(const pixel_module_config *cfg, const char *path)
{
    return cfg && path ? resolve(cfg->base_dir, path) : NULL;
}

void pixel_module_strings_free(char **list)
{
    for (size_t i = 0; list && list[i]; i++) {
        pixel__free(list[i]);
    }
    pixel__free(list);
}

char **pixel_module_config_strings(const pixel_module_config *cfg, const char *name,
                                   const char *const *dflt, size_t *n)
{
    const optval *o = find_opt(cfg, name);
    int given = o && o->given;
    size_t k = 0;
    if (given || !dflt) {
        k = o && o->has && o->opt->type == PIXEL_OPT_LIST ? o->nlist : 0;
    } else {
        while (dflt[k]) {
            k++;
        }
    }
    if (n) {
        *n = 0;
    }
    char **out = pixel__calloc(k + 1, sizeof(char *));
    for (size_t i = 0; out && i < k; i++) {
        if (!(out[i] = pixel__strdup(given || !dflt ? o->list[i] : dflt[i]))) {
            pixel_module_strings_free(out);
            return NULL;
        }
    }
    if (out && n) {
        *n = k;
    }
    return out;
}

int pixel_module_config_error(const pixel_module_config *cfg, pixel_error *err, const char *option,
                              const char *fmt, ...)
{
    if (err && (err->code != 0 || err->text[0] != '\0')) {
        return PIXEL_ECONFIG;
    }
    va_list ap;
    va_start(ap, fmt);
    pixel__error_vset(err, PIXEL_ECONFIG, PIXEL_STAGE_LOAD, fmt, ap);
    va_end(ap);
    const optval *o = find_opt(cfg, option);
    if (cfg) {
        long line = o && o->given ? o->line : cfg->line;
        long col = o && o->given ? o->column : cfg->column;
        pixel__error_at(err, cfg->file, line, col);
    }
    return PIXEL_ECONFIG;
}

int pixel_module_error(pixel_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pixel__error_vset(err, code, PIXEL_STAGE_LOAD, fmt, ap);
    va_end(ap);
    return code;
}

pixel_value *pixel_module_string_ref(pixel_ctx *ctx, const char *s, size_t len)
{
    return ctx && (s || !len) ? pixel__value_string_view(&ctx->arena, s ? s : "", len) : NULL;
}

int pixel_module_object_append(pixel_value *obj, const char *key, size_t klen, pixel_value *val)
{
    if (PIXEL_UNLIKELY(!obj || obj->type != PIXEL_TYPE_OBJECT || !val || !key ||
                       klen > UINT32_MAX)) {
        return -1;
    }
    obj->flags |= PIXEL_VALUE_EDITED; /* the built-in enrichers look its keys up (enrich.c) */
    pixel__image_edit(obj, val);
    /* Module keys are mostly short literals: one check here spares the
     * serializer's escaping path for each of them on every line.  Keys of
     * 4 to 16 bytes (most) are one block, checked in line. */
    if (klen >= 4 && klen <= 16
            ? pixel__json_special_short((const unsigned char *)key, klen) == 0
            : pixel__plain_key(key, klen)) {
        return pixel__object_add_plain(obj, key, klen, val);
    }
    return pixel__object_add(obj, key, klen, val); /* escaped as needed when serialized */
}

/* ---- compiled names (ABI 1.2) ------------------------------------------------------ */

/* A module's path is the core's compiled path (pixel_path, what the built-in
 * enrichers use) under the ABI's opaque name. */
pixel_module_path *pixel_module_path_new(const char *dotted)
{
    if (!dotted || strlen(dotted) > UINT32_MAX) {
        return NULL;
    }
    return (pixel_module_path *)pixel__path_new(dotted);
}

pixel_value *pixel_module_path_get(const pixel_value *root, const pixel_module_path *path)
{
    return path ? pixel__path_get(root, (const pixel_path *)path) : NULL;
}

void pixel_module_path_free(pixel_module_path *path)
{
    pixel__path_free((pixel_path *)path);
}

enum { FIELD_LOG, FIELD_SYSLOG, FIELD_QUERY };

struct pixel_module_field {
    int kind;
    int index;       /* log: the standard slot, or -1 (a custom field, the pipeline's own);
                        syslog: the index */
    size_t len;
    char name[];     /* after the "log." / "syslog." / "query." */
};

pixel_module_field *pixel_module_field_new(const char *name)
{
    static const struct {
        const char *prefix;
        size_t len;
        int kind;
    } kinds[] = {{"log.", 4, FIELD_LOG}, {"syslog.", 7, FIELD_SYSLOG}, {"query.", 6, FIELD_QUERY}};
    for (size_t k = 0; name && k < PIXEL_ARRAY_LEN(kinds); k++) {
        if (strncmp(name, kinds[k].prefix, kinds[k].len) != 0) {
            continue;
        }
        const char *rest = name + kinds[k].len;
        int index = -1;
        if (kinds[k].kind == FIELD_SYSLOG && (index = pixel__syslog_index(rest)) < 0) {
            return NULL; /* no such syslog field: pixel_record_get() never finds it either */
        }
        for (int i = 0; kinds[k].kind == FIELD_LOG && index < 0 && i < PIXEL_F_STANDARD_COUNT;
             i++) {
            if (strcmp(pixel__field_name(NULL, i), rest) == 0) {
                index = i;
            }
        }
        size_t n = strlen(rest);
        pixel_module_field *f = pixel__malloc(sizeof(*f) + n + 1);
        if (f) {
            f->kind = kinds[k].kind;
            f->index = index;
            f->len = n;
            memcpy(f->name, rest, n + 1);
        }
        return f;
    }
    return NULL;
}

/* pixel_module_field_get() of a field that is not a standard log field. */
static __attribute__((noinline)) pixel_span field_get_other(const pixel_record *rec,
                                                            const pixel_module_field *f)
{
    pixel_span v = {NULL, 0};
    switch (f->kind) {
        case FIELD_LOG: {
            int slot = pixel__field_slot((pixel_pipeline *)rec->pipeline, f->name, 0);
            if (slot >= 0) {
                v = rec->fields[slot];
            }
            break;
        }
        case FIELD_SYSLOG:
            v = rec->syslog[f->index];
            break;
        default:
            for (size_t i = 0; i < rec->nparams; i++) {
                if (rec->params[i].name.n == f->len &&
                    memcmp(rec->params[i].name.p, f->name, f->len) == 0) {
                    v = rec->params[i].value;
                    break;
                }
            }
            break;
    }
    return v;
}

const char *pixel_module_field_get(const pixel_record *rec, const pixel_module_field *f,
                                   size_t *len)
{
    pixel_span v = {NULL, 0};
    if (PIXEL_LIKELY(rec && rec->pipeline && f)) {
        /* a standard log field (the common case) in line, the rest aside */
        v = f->kind == FIELD_LOG && f->index >= 0 ? rec->fields[f->index]
                                                  : field_get_other(rec, f);
    }
    if (len) {
        *len = v.n;
    }
    return v.p;
}

void pixel_module_field_free(pixel_module_field *field)
{
    pixel__free(field);
}

static int run_module(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err);

/* ---- event paths (ABI 1.3) ---------------------------------------------------------- */

/*
 * An event path bound to its module entry.  At load: `obj`, the deepest
 * object on the path (its first `depth` segments; 0: the root) that the map
 * stage makes and that no built-in enricher before the entry may replace
 * (its target a prefix of the object's path; the rule of enrich.c's
 * mapped_index), and `fresh`, true when nothing before the entry but
 * modules may set the path itself: no mapped field or object at it, no
 * built-in before whose source or target overlaps it, and its parent is
 * `obj`.  On a line, ctx->map_objs[obj] is that object while no object
 * above it was changed through the public setters (they mark what they
 * change PIXEL_VALUE_EDITED, as pixel_module_object_append does); and a
 * fresh path's member is absent while its parent was not changed either.
 */
struct pixel_module_event_path {
    pixel_path *path;
    char *dotted;
    const pixel_pipeline *pipeline;
    int obj;      /* pipeline->objects index, 0: none (the root) */
    size_t depth; /* segments of the path that obj stands for (at most all but the last) */
    int gobj;     /* the same for reading: the path's own object when mapped */
    size_t gdepth;
    int par, gpar; /* pipeline->objects parents of obj and gobj (0: the root; -1: none) */
    bool fresh;
    bool tail_first; /* reading: gobj is the parent and maps nothing at the leaf */
};

/* The mapped object under object j named seg, or 0. */
static int mapped_child(const pixel_pipeline *p, int j, const struct pixel_path_seg *seg)
{
    for (size_t i = 1; i < p->nobjects; i++) {
        const pixel_objnode *o = &p->objects[i];
        if (o->parent == j && o->keylen == seg->len && memcmp(o->key, seg->key, o->keylen) == 0) {
            return (int)i;
        }
    }
    return 0;
}

/* Do a and b agree segment for segment as far as the shorter goes? */
static bool paths_overlap(const pixel_path *a, const pixel_path *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t k = 0; k < n; k++) {
        if (a->seg[k].len != b->seg[k].len ||
            memcmp(a->seg[k].key, b->seg[k].key, a->seg[k].len) != 0) {
            return false;
        }
    }
    return true;
}

pixel_module_event_path *pixel_module_event_path_new(const pixel_module_config *cfg,
                                                     const char *dotted)
{
    if (!dotted || strlen(dotted) > UINT32_MAX) {
        return NULL;
    }
    pixel_module_event_path *ep = pixel__calloc(1, sizeof(*ep));
    if (!ep || !(ep->path = pixel__path_new(dotted)) || !(ep->dotted = pixel__strdup(dotted))) {
        pixel_module_event_path_free(ep);
        return NULL;
    }
    const pixel_pipeline *p = cfg ? cfg->pipeline : NULL;
    const pixel_path *path = ep->path;
    for (size_t k = 0; k < path->n; k++) {
        if (path->seg[k].len == 0) {
            return ep; /* an empty segment: found nowhere, looked up as always */
        }
    }
    /* (while the pipeline loads, the entry is the one past the last loaded) */
    if (!p || !cfg->enricher || cfg->enricher < p->enrichers ||
        cfg->enricher > p->enrichers + p->nenrichers) {
        return ep; /* not an entry of a pipeline: plain lookups */
    }
    ep->pipeline = p;
    /* The mapped objects along the path, above its last segment (and for
       reading, down to the path itself). */
    size_t depth = 0, gdepth = 0;
    for (int j = 0; gdepth < path->n && (j = mapped_child(p, j, &path->seg[gdepth])); ) {
        gdepth++;
    }
    depth = gdepth < path->n ? gdepth : path->n - 1;
    /* Built-ins before the entry: one whose target is a prefix of an
       object's path may replace that object (url only adds members to its
       target, an object it never replaces: what is below it); one whose
       target or source overlaps the path may set the path itself (a source
       is only read, or changed in place: anonymize_ip). */
    bool fresh = depth + 1 == path->n;
    for (const pixel_enricher *x = p->enrichers; x < cfg->enricher; x++) {
        if (x->fn == run_module) {
            continue; /* modules change the event through setters: seen on the line */
        }
        const pixel_path *w[2] = {x->into_path, x->from_path};
        for (int t = 0; t < 2; t++) {
            if (!w[t] || !paths_overlap(w[t], path)) {
                continue;
            }
            fresh = false;
            size_t keep = w[t]->n - (x->name && strcmp(x->name, "url") == 0 ? 0 : 1);
            if (t == 0 && w[t]->n <= depth && keep < depth) {
                depth = keep;
            }
            if (t == 0 && w[t]->n <= gdepth && keep < gdepth) {
                gdepth = keep;
            }
        }
    }
    int j = 0;
    for (size_t d = 0; d < gdepth; d++) {
        j = mapped_child(p, j, &path->seg[d]);
        if (d + 1 == depth) {
            ep->obj = j;
        }
    }
    ep->gobj = j;
    ep->gdepth = gdepth;
    ep->par = ep->obj ? p->objects[ep->obj].parent : -1;
    ep->gpar = ep->gobj ? p->objects[ep->gobj].parent : -1;
    /* Reading a member that only a setter (of an earlier module) can add to
       the mapped object gobj: a member added is appended, so look at its
       last member first.  The keys of an object are distinct (the setters
       replace a member of the same name, pixel_module_object_append takes
       new keys only), so a last member of that name is the one a walk from
       the first would find. */
    ep->tail_first = gdepth + 1 == path->n;
    for (size_t i = 0; ep->tail_first && i < p->nfields; i++) {
        const pixel_field *f = &p->fields[i];
        const struct pixel_path_seg *lf = &path->seg[path->n - 1];
        ep->tail_first = !(f->parent == j && f->leaflen == lf->len && memcmp(f->leaf, lf->key, lf->len) == 0);
    }
    j = ep->obj;
    /* Mapped fields and objects at the path itself. */
    const struct pixel_path_seg *leaf = &path->seg[path->n - 1];
    for (size_t i = 0; fresh && i < p->nfields; i++) {
        const pixel_field *f = &p->fields[i];
        fresh = !(f->parent == j && f->leaflen == leaf->len && memcmp(f->leaf, leaf->key, leaf->len) == 0);
    }
    for (size_t i = 1; fresh && i < p->nobjects; i++) {
        const pixel_objnode *o = &p->objects[i];
        fresh = !(o->parent == j && o->keylen == leaf->len && memcmp(o->key, leaf->key, leaf->len) == 0);
    }
    ep->depth = depth;
    ep->fresh = fresh;
    return ep;
}

void pixel_module_event_path_free(pixel_module_event_path *path)
{
    if (path) {
        pixel__path_free(path->path);
        pixel__free(path->dotted);
        pixel__free(path);
    }
}

/* The mapped object ep stands for on this line (or the root when it stands
 * for none), with *k the segments it covers; NULL when it cannot be used. */
static inline pixel_value *event_start(const pixel_module_event *ev,
                                       const pixel_module_event_path *ep, int obj, int parent,
                                       size_t depth, size_t *k)
{
    const pixel_ctx *ctx = ev->ctx;
    *k = 0;
    if (!ep->pipeline || !ctx || ctx->pipeline != ep->pipeline || ctx->event != ev->event ||
        !ctx->map_objs || ctx->map_objs[0] != ev->event) {
        return NULL;
    }
    if (obj == 0) {
        return ev->event;
    }
    pixel_value *o = ctx->map_objs[obj];
    if (!o) {
        return NULL;
    }
    if (parent == 0) {
        /* (known at load) an object of the root: ev->event, which is
           map_objs[0], never NULL (map.c sets map_objs with its root) */
        if (ev->event->flags & PIXEL_VALUE_EDITED) {
            return NULL;
        }
        *k = depth;
        return o;
    }
    const pixel_objnode *objs = ep->pipeline->objects;
    for (int a = parent;; a = objs[a].parent) {
        if (!ctx->map_objs[a] || (ctx->map_objs[a]->flags & PIXEL_VALUE_EDITED)) {
            return NULL;
        }
        if (a == 0) {
            break;
        }
    }
    *k = depth;
    return o;
}

/* The member at segments k..n-1 of path, from v. */
static inline pixel_value *path_from(const pixel_value *v, const pixel_path *path, size_t k,
                                     size_t n)
{
    for (; v && k < n; k++) {
        v = v->type == PIXEL_TYPE_OBJECT ? pixel__object_getn(v, path->seg[k].key, path->seg[k].len)
                                         : NULL;
    }
    return (pixel_value *)v;
}

/* pixel_module_event_get() of a tail_first path: the last member of the
 * object it starts at when that member is the leaf, else the walk. */
static __attribute__((noinline)) pixel_value *
event_get_last_first(const pixel_module_event *ev, const pixel_module_event_path *path)
{
    size_t k;
    const pixel_value *v = event_start(ev, path, path->gobj, path->gpar, path->gdepth, &k);
    if (v && v->type == PIXEL_TYPE_OBJECT && v->u.list.tail) {
        const struct pixel_path_seg *seg = &path->path->seg[k];
        pixel_value *t = v->u.list.tail;
        if (t->klen == seg->len &&
            (t->key == seg->key || pixel__same_bytes(t->key, seg->key, seg->len))) {
            return t;
        }
    }
    return path_from(v ? v : ev->event, path->path, k, path->path->n);
}

uint64_t pixel_module_event_serial(const pixel_module_event *ev)
{
    return ev && ev->ctx ? ev->ctx->serial : 0;
}

/* The hash is that of the in-tree modules' caches (modules/common). */
uint64_t pixel_module_event_hash(const pixel_module_event *ev, const char *s, size_t len)
{
    pixel_ctx *ctx = ev ? ev->ctx : NULL;
    if (PIXEL_UNLIKELY(!ctx || !s)) {
        return pixel_cache_hash(s ? s : "", s ? len : 0);
    }
    for (unsigned i = 0; i < PIXEL_ARRAY_LEN(ctx->hash_memo); i++) {
        if (ctx->hash_memo[i].s == s && ctx->hash_memo[i].len == len &&
            ctx->hash_memo[i].serial == ctx->serial) {
            return ctx->hash_memo[i].h;
        }
    }
    const uint64_t h = pixel_cache_hash(s, len);
    const unsigned at = ctx->hash_memo_next % PIXEL_ARRAY_LEN(ctx->hash_memo);
    ctx->hash_memo[at].serial = ctx->serial;
    ctx->hash_memo[at].s = s;
    ctx->hash_memo[at].len = len;
    ctx->hash_memo[at].h = h;
    ctx->hash_memo_next = at + 1;
    return h;
}

pixel_value *pixel_module_event_get(const pixel_module_event *ev,
                                    const pixel_module_event_path *path)
{
    if (PIXEL_UNLIKELY(!ev || !path)) {
        return NULL;
    }
    if (path->tail_first) {
        return event_get_last_first(ev, path);
    }
    size_t k;
    const pixel_value *v = event_start(ev, path, path->gobj, path->gpar, path->gdepth, &k);
    return path_from(v ? v : ev->event, path->path, k, path->path->n);
}

/* pixel_module_event_set() of checked arguments (also under
 * pixel_module_event_set_image()). */
static inline __attribute__((always_inline)) int
event_set_val(pixel_module_event *ev, const pixel_module_event_path *path, pixel_value *val)
{
    const pixel_path *pp = path->path;
    const struct pixel_path_seg *leaf = &pp->seg[pp->n - 1];
    size_t k;
    pixel_value *start = event_start(ev, path, path->obj, path->par, path->depth, &k);
    pixel_value *parent = NULL;
    if (start && path->fresh && !(start->flags & PIXEL_VALUE_EDITED)) {
        parent = start; /* the path's parent, which nobody changed: the member is new */
    } else {
        /* A new member of an existing parent is appended with the path's
           own key; anything else goes as pixel_value_set_at() does it. */
        parent = path_from(start ? start : ev->event, pp, k, pp->n - 1);
        if (!parent || parent->type != PIXEL_TYPE_OBJECT ||
            pixel__object_getn(parent, leaf->key, leaf->len)) {
            return pixel_value_set_at(ev->ctx, ev->event, path->dotted, val) < 0 ? -1 : 0;
        }
    }
    parent->flags |= PIXEL_VALUE_EDITED; /* as pixel_module_object_append() */
    pixel__image_edit(parent, val);
    if (leaf->plain) {
        return pixel__object_add_plain(parent, leaf->key, leaf->len, val);
    }
    return pixel__object_add(parent, leaf->key, leaf->len, val);
}

int pixel_module_event_set(pixel_module_event *ev, const pixel_module_event_path *path,
                           pixel_value *val)
{
    if (PIXEL_UNLIKELY(!ev || !path || !val || !ev->ctx || !ev->event)) {
        return -1;
    }
    return event_set_val(ev, path, val);
}

/* ---- result shapes (ABI 1.3) ------------------------------------------------------- */

/* A shape numbers the nodes of its result: 0 the result object, then the
 * other objects, then the leaves (building zeroes only the objects, which
 * are made when their first member is; a present leaf is written whole).
 * obj[k] and leaf[i] say where each goes. */
typedef struct shape_member {
    const char *key; /* in the shape's text */
    uint32_t klen;
    uint32_t node;   /* its index in the block */
    uint32_t parent; /* the block index of its object */
    uint16_t flags;  /* PIXEL_VALUE_PLAIN_KEY or 0 */
} shape_member;

struct pixel_module_shape {
    size_t nnodes, nobjs, nleaves;
    shape_member *obj;  /* nobjs; obj[0] is the result itself */
    shape_member *leaf; /* nleaves, in the order of the paths */
    char *text;
};

void pixel_module_shape_free(pixel_module_shape *shape)
{
    if (shape) {
        pixel__free(shape->obj);
        pixel__free(shape->leaf);
        pixel__free(shape->text);
        pixel__free(shape);
    }
}

pixel_module_shape *pixel_module_shape_new(const char *const *paths, size_t n)
{
    size_t total = 0, segs = 1;
    for (size_t i = 0; paths && i < n; i++) {
        if (!paths[i]) {
            return NULL;
        }
        size_t len = strlen(paths[i]);
        total += len + 1;
        for (size_t k = 0; k <= len; k++) {
            segs += paths[i][k] == '.' || paths[i][k] == '\0';
        }
    }
    if (!paths || n == 0 || segs > UINT32_MAX || total > UINT32_MAX) {
        return NULL;
    }
    /* First as a tree in creation order (tree[k].node: 1 for a leaf), then
       numbered objects first. */
    pixel_module_shape *sh = pixel__calloc(1, sizeof(*sh));
    shape_member *tree = pixel__calloc(segs, sizeof(shape_member));
    uint32_t *renum = pixel__calloc(segs, sizeof(uint32_t));
    if (!sh || !tree || !renum || !(sh->obj = pixel__calloc(segs, sizeof(shape_member))) ||
        !(sh->leaf = pixel__calloc(n, sizeof(shape_member))) || !(sh->text = pixel__malloc(total))) {
        goto fail;
    }
    size_t ntree = 1;
    char *t = sh->text;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(paths[i]);
        memcpy(t, paths[i], len + 1);
        uint32_t parent = 0;
        for (char *seg = t;;) {
            char *dot = strchr(seg, '.');
            size_t sl = dot ? (size_t)(dot - seg) : strlen(seg);
            uint32_t j = 0;
            for (uint32_t k = 1; k < ntree && !j; k++) {
                const shape_member *o = &tree[k];
                j = o->parent == parent && o->klen == sl && memcmp(o->key, seg, sl) == 0 ? k : 0;
            }
            /* an empty segment, a repeated path, a path through a leaf, or
               a leaf where another path has an object */
            if (sl == 0 || (j && (!dot || tree[j].node))) {
                goto fail;
            }
            if (!j) {
                j = (uint32_t)ntree++;
                tree[j] = (shape_member){seg, (uint32_t)sl, dot == NULL, parent,
                                         pixel__plain_key(seg, sl) ? PIXEL_VALUE_PLAIN_KEY : 0};
            }
            if (!dot) {
                sh->leaf[i] = tree[j];
                sh->leaf[i].node = j; /* a tree index for now */
                break;
            }
            *dot = '\0';
            parent = j;
            seg = dot + 1;
        }
        t += len + 1;
    }
    /* Objects first (the result stays 0), then leaves. */
    size_t nobjs = 0;
    for (size_t k = 0; k < ntree; k++) {
        if (k == 0 || !tree[k].node) {
            renum[k] = (uint32_t)nobjs++;
        }
    }
    size_t next = nobjs;
    for (size_t k = 1; k < ntree; k++) {
        if (tree[k].node) {
            renum[k] = (uint32_t)next++;
        }
    }
    for (size_t k = 0; k < ntree; k++) {
        if (k == 0 || !tree[k].node) {
            shape_member *o = &sh->obj[renum[k]];
            *o = tree[k];
            o->node = renum[k];
            o->parent = renum[tree[k].parent];
        }
    }
    for (size_t i = 0; i < n; i++) {
        sh->leaf[i].node = renum[sh->leaf[i].node];
        sh->leaf[i].parent = renum[sh->leaf[i].parent];
    }
    sh->nnodes = ntree;
    sh->nobjs = nobjs;
    sh->nleaves = n;
    pixel__free(tree);
    pixel__free(renum);
    return sh;
fail:
    pixel__free(tree);
    pixel__free(renum);
    pixel_module_shape_free(sh);
    return NULL;
}

static inline void shape_append(pixel_value *obj, pixel_value *v)
{
    pixel__list_link(obj, v, v, 1);
}

/* Make object k of the block (a member of its own object, made first if
 * need be). */
static void shape_make(const pixel_module_shape *sh, pixel_value *blk, uint32_t k)
{
    const shape_member *o = &sh->obj[k];
    pixel_value *v = &blk[k], *p = &blk[o->parent];
    v->type = PIXEL_TYPE_OBJECT;
    v->flags = o->flags;
    v->klen = o->klen;
    v->key = o->key;
    if (p->type != PIXEL_TYPE_OBJECT) {
        shape_make(sh, blk, o->parent);
    }
    shape_append(p, v);
}

/* Leaf lf of the block set to text val and linked into its object (made
 * first if need be). */
static inline void shape_put_leaf(const pixel_module_shape *sh, pixel_value *blk,
                                  const shape_member *lf, const pixel_module_str *val)
{
    pixel_value *v = &blk[lf->node], *p = &blk[lf->parent];
    v->type = PIXEL_TYPE_STRING;
    v->flags = lf->flags;
    v->klen = lf->klen;
    v->key = lf->key;
    v->next = NULL;
    v->u.str.s = val->s;
    v->u.str.len = val->len;
    if (PIXEL_UNLIKELY(p->type != PIXEL_TYPE_OBJECT)) {
        shape_make(sh, blk, lf->parent);
    }
    shape_append(p, v);
}

pixel_value *pixel_module_shape_build(pixel_ctx *ctx, const pixel_module_shape *sh,
                                      const pixel_module_str *vals)
{
    if (PIXEL_UNLIKELY(!ctx || !sh || !vals)) {
        return NULL;
    }
    pixel_value *blk = pixel__arena_alloc(&ctx->arena, sh->nnodes * sizeof(pixel_value));
    if (PIXEL_UNLIKELY(!blk)) {
        return NULL;
    }
    /* The objects: zero (not made yet: PIXEL_TYPE_NULL) but the result. */
    memset(blk, 0, sh->nobjs * sizeof(pixel_value));
    blk[0].type = PIXEL_TYPE_OBJECT;
    const shape_member *lf = sh->leaf;
    for (size_t i = 0; i < sh->nleaves; i++, lf++) {
        if (!vals[i].s) {
            continue;
        }
        shape_put_leaf(sh, blk, lf, &vals[i]);
    }
    return blk;
}

/*
 * A shape's result kept as an image in the module's memory:
 *
 *   image_head | nodes | relocation table | JSON text (optional)
 *
 * The nodes are those pixel_module_shape_build() would make and link
 * (absent leaves and objects left out, so the image holds only what an
 * event gets), with every link (next, and an object's head and tail) stored
 * as the byte offset of its node among the nodes (0: none -- node 0, the
 * result, is nobody's member).  The table says where each link that is not
 * NULL is.  Emitting is one copy of the used nodes and an addition per link.
 *
 * An image made by pixel_module_shape_image_kept() with the room of
 * pixel_module_shape_image_size_for() (ABI 1.4) also remembers, for the
 * stages after the module, what does not change while the image does not:
 * the result serialized, and the object schema whose boolean pass it last
 * passed.  The module keeps such an image, unchanged, while events made from
 * it are in use; its copies carry PIXEL_VALUE_IMAGE on their root, with the
 * image and its making just before the root.
 * pixel__image_check() gives the image only while it is the same making and
 * the copy is still exactly what was emitted, so an event changed after the
 * module (a member set, removed or replaced anywhere in the result) is
 * validated and serialized member by member as always.  An image made by
 * pixel_module_shape_image() (ABI 1.3), of any size, is only copied, as
 * before: its module may free or remake it once it has emitted.
 */
/* The image's head (struct pixel__image) and the link before a copy's root
 * (pixel__image_link) are in pixel_private.h. */
typedef pixel__image_link image_link_t;
#define IMAGE_LINK sizeof(image_link_t)

/* Makings of images in the process, so that an image made anew in the same
 * memory is told from the one a copy came from. */
static _Atomic uint64_t image_gen;

/* Changes made to nodes of image copies (PIXEL_VALUE_IMAGE_NODE) in the
 * whole process, counted by everything that changes an event's nodes after
 * the map stage (pixel__image_edit): a stamp is good only while this has
 * not moved since.  Kept process-wide, as the public removers are not told
 * the context; it moves only on a change to a copy (rare: a pipeline that
 * changes a module's result).  Read at every check on every thread: a line
 * of its own, apart from image_gen's and others' writes. */
struct pixel__image_edit_count pixel__image_edits;

void pixel__image_edited(void)
{
    atomic_fetch_add_explicit(&pixel__image_edits.n, 1, memory_order_relaxed);
}

static pixel_value *image_nodes(const pixel__image *im)
{
    return (pixel_value *)(void *)((char *)(uintptr_t)im + sizeof(*im));
}

/* The most links a result can have: a next for every node, a head and a
 * tail for every object. */
static size_t shape_max_links(const pixel_module_shape *shape)
{
    return shape->nnodes + 2 * shape->nobjs;
}

size_t pixel_module_shape_image_size(const pixel_module_shape *shape)
{
    return shape ? sizeof(pixel__image) + shape->nnodes * sizeof(pixel_value) +
                       shape_max_links(shape) * sizeof(uint32_t)
                 : 0;
}

/* The result of vals built in blk (shape->nnodes nodes), as
 * pixel_module_shape_build() makes it. */
static void shape_fill(const pixel_module_shape *shape, const pixel_module_str *vals,
                       pixel_value *blk)
{
    memset(blk, 0, shape->nnodes * sizeof(pixel_value));
    blk[0].type = PIXEL_TYPE_OBJECT;
    for (size_t i = 0; i < shape->nleaves; i++) {
        if (vals[i].s) {
            shape_put_leaf(shape, blk, &shape->leaf[i], &vals[i]);
        }
    }
}

/* The result of vals serialized into *b (NUL-terminated); 0 or -1. */
static int shape_json(const pixel_module_shape *shape, const pixel_module_str *vals, pixel_buf *b)
{
    pixel_value *blk = pixel__malloc(shape->nnodes * sizeof(pixel_value));
    if (!blk) {
        return -1;
    }
    shape_fill(shape, vals, blk);
    int rc = pixel__json_dump(b, blk);
    pixel__free(blk);
    return rc;
}

size_t pixel_module_shape_image_size_for(const pixel_module_shape *shape,
                                         const pixel_module_str *vals)
{
    size_t base = pixel_module_shape_image_size(shape);
    pixel_buf b = {0};
    if (!shape || !vals || shape_json(shape, vals, &b) < 0) {
        pixel__buf_free(&b);
        return base; /* the image still works, without its text */
    }
    size_t n = b.len;
    pixel__buf_free(&b);
    return base + n + 1;
}

/* Link word `field` of the node at byte offset `at`: target's new offset
 * (renum[] node numbers), recorded for relocation when not NULL. */
static void image_link(pixel__image *im, uint32_t *at_tab, const uint32_t *renum,
                       const pixel_value *blk, pixel_value **field, size_t at)
{
    const pixel_value *t = *field;
    if (!t) {
        return;
    }
    *field = (pixel_value *)(uintptr_t)((size_t)renum[t - blk] * sizeof(pixel_value));
    at_tab[im->nrel++] = (uint32_t)at;
}

/* The image of vals in image (size bytes).  keep: made by
 * pixel_module_shape_image_kept() (ABI 1.4), whose module keeps it as it is
 * while events made from it are in use, so that its copies may refer to it;
 * a module of ABI 1.3 may free or reuse its image once it has emitted,
 * whatever room it gave. */
static int shape_image(const pixel_module_shape *shape, const pixel_module_str *vals,
                       void *image, size_t size, bool keep)
{
    size_t base = pixel_module_shape_image_size(shape);
    if (!shape || !vals || !image || size < base || base > UINT32_MAX) {
        return -1;
    }
    uint32_t *renum = pixel__malloc(shape->nnodes * sizeof(uint32_t));
    if (!renum) {
        return -1;
    }
    pixel__image *im = image;
    pixel_value *blk = image_nodes(im);
    uint32_t *at_tab = (uint32_t *)(void *)(blk + shape->nnodes);
    im->nrel = 0;
    im->rel_off = (uint32_t)((char *)at_tab - (char *)image);
    im->json_off = im->json_len = 0;
    im->pad = 0;
    im->gen = atomic_fetch_add_explicit(&image_gen, 1, memory_order_relaxed) + 1;
    atomic_store_explicit(&im->valid, 0, memory_order_relaxed);
    /* The text first, from the tree as built, when there is room for it. */
    shape_fill(shape, vals, blk);
    if (keep && size > base) {
        pixel_buf b = {0};
        if (pixel__json_dump(&b, blk) == 0 && b.len < size - base &&
            b.len <= UINT32_MAX - base) {
            memcpy((char *)image + base, b.data, b.len);
            im->json_off = (uint32_t)base;
            im->json_len = (uint32_t)b.len;
        }
        pixel__buf_free(&b);
    }
    if (im->json_len) {
        /* kept (ABI 1.4), with its text: the module keeps the image as it is
           while events made from it are in use, so copies may refer to it;
           every node of a copy says so to the public setters */
        blk[0].flags |= PIXEL_VALUE_IMAGE;
        for (size_t k = 0; k < shape->nnodes; k++) {
            if (blk[k].type != PIXEL_TYPE_NULL) {
                blk[k].flags |= PIXEL_VALUE_IMAGE_NODE;
            }
        }
    }
    /* The nodes made (an object or a string; the others are still NULL),
       numbered in order, moved down to their numbers with their links made
       offsets: a node moves to a number no greater than its own, so the
       nodes not moved yet are intact. */
    uint32_t used = 0;
    for (size_t k = 0; k < shape->nnodes; k++) {
        renum[k] = blk[k].type != PIXEL_TYPE_NULL ? used++ : UINT32_MAX;
    }
    for (size_t k = 0; k < shape->nnodes; k++) {
        if (renum[k] == UINT32_MAX) {
            continue;
        }
        pixel_value v = blk[k];
        size_t at = (size_t)renum[k] * sizeof(pixel_value);
        image_link(im, at_tab, renum, blk, &v.next, at + offsetof(pixel_value, next));
        if (v.type == PIXEL_TYPE_OBJECT) {
            image_link(im, at_tab, renum, blk, &v.u.list.head,
                       at + offsetof(pixel_value, u.list.head));
            image_link(im, at_tab, renum, blk, &v.u.list.tail,
                       at + offsetof(pixel_value, u.list.tail));
        }
        blk[renum[k]] = v;
    }
    memset(blk + used, 0, (shape->nnodes - used) * sizeof(pixel_value));
    im->bytes = used * (uint32_t)sizeof(pixel_value);
    pixel__free(renum);
    return 0;
}

int pixel_module_shape_image(const pixel_module_shape *shape, const pixel_module_str *vals,
                             void *image, size_t size)
{
    return shape_image(shape, vals, image, size, false);
}

int pixel_module_shape_image_kept(const pixel_module_shape *shape, const pixel_module_str *vals,
                                  void *image, size_t size)
{
    return shape_image(shape, vals, image, size, true);
}

/* The link at byte offset off of a copy at blk: the image's offset made
 * the copy's address. */
static inline __attribute__((always_inline)) void image_relocate(char *blk, uint32_t off,
                                                                 uintptr_t base)
{
    uintptr_t link;
    memcpy(&link, blk + off, sizeof(link));
    link += base;
    memcpy(blk + off, &link, sizeof(link));
}

/* pixel_module_shape_emit() of checked arguments (also under
 * pixel_module_event_set_image()). */
static inline __attribute__((always_inline)) pixel_value *image_emit(pixel_ctx *ctx,
                                                                     const void *image)
{
    /* the image and the copy; an image that copies refer to (kept) is what
       pixel__image_check compares the copy with */
    const pixel__image *im = image;
    const uint32_t bytes = im->bytes, nrel = im->nrel;
    const bool kept = im->json_len != 0;
    char *blk = pixel__arena_alloc(&ctx->arena, IMAGE_LINK + (size_t)bytes);
    if (PIXEL_UNLIKELY(!blk)) {
        return NULL;
    }
    /* the link's words stored one by one (no copy of it on the stack) */
    const uint64_t gen = im->gen,
                   stamp = kept ? atomic_load_explicit(&pixel__image_edits.n, memory_order_relaxed) + 1 : 0;
    memcpy(blk + offsetof(image_link_t, im), &im, sizeof(im));
    memcpy(blk + offsetof(image_link_t, gen), &gen, sizeof(gen));
    memcpy(blk + offsetof(image_link_t, stamp), &stamp, sizeof(stamp));
    blk += IMAGE_LINK;
    memcpy(blk, image_nodes(im), bytes);
    const uint32_t *at = (const uint32_t *)(const void *)((const char *)image + im->rel_off);
    const uintptr_t base = (uintptr_t)blk;
    /* eight links a step (a load and an add to memory each), then 4, 2, 1 */
    const uint32_t *const end8 = at + (nrel & ~7u);
    for (; at < end8; at += 8) {
        image_relocate(blk, at[0], base);
        image_relocate(blk, at[1], base);
        image_relocate(blk, at[2], base);
        image_relocate(blk, at[3], base);
        image_relocate(blk, at[4], base);
        image_relocate(blk, at[5], base);
        image_relocate(blk, at[6], base);
        image_relocate(blk, at[7], base);
    }
    if (nrel & 4) {
        image_relocate(blk, at[0], base);
        image_relocate(blk, at[1], base);
        image_relocate(blk, at[2], base);
        image_relocate(blk, at[3], base);
        at += 4;
    }
    if (nrel & 2) {
        image_relocate(blk, at[0], base);
        image_relocate(blk, at[1], base);
        at += 2;
    }
    if (nrel & 1) {
        image_relocate(blk, at[0], base);
    }
    return (pixel_value *)(void *)blk;
}

pixel_value *pixel_module_shape_emit(pixel_ctx *ctx, const pixel_module_shape *shape,
                                     const void *image)
{
    if (PIXEL_UNLIKELY(!ctx || !shape || !image)) {
        return NULL;
    }
    return image_emit(ctx, image);
}

int pixel_module_event_set_image(pixel_module_event *ev, const pixel_module_event_path *path,
                                 const pixel_module_shape *shape, const void *image)
{
    if (PIXEL_UNLIKELY(!ev || !path || !shape || !image || !ev->ctx || !ev->event)) {
        return -1;
    }
    pixel_value *val = image_emit(ev->ctx, image);
    return PIXEL_LIKELY(val) ? event_set_val(ev, path, val) : -1;
}

/* The image a copy came from, as it was then, and the copy compared with
 * the image's nodes, each link of the image taken as its offset from the
 * copy's start: the root's members, and every other node whole (the root's
 * name, flags and next are the event's).  The links are in the table in
 * the order of their offsets. */
const pixel__image *pixel__image_check(const pixel_value *root)
{
    image_link_t link;
    memcpy(&link, (const char *)root - IMAGE_LINK, IMAGE_LINK);
    const pixel__image *im = link.im;
    if (im->gen != link.gen) {
        return NULL; /* the image was made anew since */
    }
    const char *copy = (const char *)root;
    const char *orig = (const char *)image_nodes(im);
    const uint32_t *at = (const uint32_t *)(const void *)((const char *)im + im->rel_off);
    const uint32_t *end = at + im->nrel;
    size_t pos = offsetof(pixel_value, u.list);
    for (; at < end; at++) {
        if (*at < pos) {
            continue; /* the root's own words before its members (none are links) */
        }
        uintptr_t c, o;
        memcpy(&c, copy + *at, sizeof(c));
        memcpy(&o, orig + *at, sizeof(o));
        if (memcmp(copy + pos, orig + pos, *at - pos) != 0 || c != o + (uintptr_t)root) {
            return NULL;
        }
        pos = *at + sizeof(uintptr_t);
    }
    if (memcmp(copy + pos, orig + pos, im->bytes - pos) != 0) {
        return NULL;
    }
    return im;
}

uint64_t pixel_module_value_image(const pixel_value *v)
{
    if (!v || v->type != PIXEL_TYPE_OBJECT || !(v->flags & PIXEL_VALUE_IMAGE)) {
        return 0;
    }
    const pixel__image *im = pixel__image_check_stamped(v);
    return im ? im->gen : 0; /* makings are numbered from 1 */
}

/* The link's stamp slot: the word after the making, just before the root. */
static inline uint64_t *image_stamp_at(const pixel_value *root)
{
    return (uint64_t *)(void *)((char *)(uintptr_t)root - IMAGE_LINK +
                                offsetof(image_link_t, stamp));
}

/* The full check of a copy whose stamp is stale; stamped again when found
 * as emitted (now: the count, plus one, read before the check).  The test
 * of the stamp is pixel__image_check_stamped(), in line (pixel_private.h). */
const pixel__image *pixel__image_restamp(const pixel_value *root, uint64_t now)
{
    const pixel__image *im = pixel__image_check(root);
    if (im) {
        memcpy(image_stamp_at(root), &now, sizeof(now));
    }
    return im;
}

const char *pixel_module_printf(pixel_ctx *ctx, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 && ctx ? pixel__arena_alloc(&ctx->arena, (size_t)n + 1) : NULL;
    if (s) {
        vsnprintf(s, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    return s;
}

/* ---- instances ---------------------------------------------------------------------- */

typedef struct inst_slot {
    uint64_t key; /* the context's module_key; 0: not claimed yet (the instance made at load) */
    void *inst;
} inst_slot;

typedef struct modstate {
    struct modstate *reg_prev, *reg_next; /* in `registered` (PER_THREAD, under reg_lock) */
    int in_registry;
    char *name, *file; /* module name, the file opened */
    lib *lib;
    pixel_module m;    /* the description, zero-extended to this host's size */
    uint64_t id;       /* unique for the process lifetime */
    pixel_module_config *cfg;
    pthread_mutex_t lock;
    inst_slot *slots;  /* SHARED: exactly one, ctx unused */
    size_t nslots, cap;
    const pixel_pipeline *pipeline; /* for the config (event paths) */
    const pixel_enricher *enricher;
} modstate;

static uint64_t next_id = 1; /* under libs_lock */

/* The per-thread enrichers of every live pipeline, for pixel__module_ctx_release(). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static modstate *registered;

static void registry_add(modstate *ms)
{
    pthread_mutex_lock(&reg_lock);
    ms->reg_prev = NULL;
    ms->reg_next = registered;
    if (registered) {
        registered->reg_prev = ms;
    }
    registered = ms;
    ms->in_registry = 1;
    pthread_mutex_unlock(&reg_lock);
}

static void registry_remove(modstate *ms)
{
    pthread_mutex_lock(&reg_lock);
    if (ms->in_registry) {
        if (ms->reg_prev) {
            ms->reg_prev->reg_next = ms->reg_next;
        } else {
            registered = ms->reg_next;
        }
        if (ms->reg_next) {
            ms->reg_next->reg_prev = ms->reg_prev;
        }
        ms->in_registry = 0;
    }
    pthread_mutex_unlock(&reg_lock);
}

/* pixel_ctx_free() calls this before the context goes (pipeline.c). */
void pixel__module_ctx_release(pixel_ctx *ctx)
{
    if (!ctx || !ctx->module_key) {
        return; /* never ran a per-thread module: nothing to give back */
    }
    uint64_t key = ctx->module_key;
    pthread_mutex_lock(&reg_lock);
    for (modstate *ms = registered; ms; ms = ms->reg_next) {
        void *gone = NULL;
        pthread_mutex_lock(&ms->lock);
        size_t i = 0, spare = 0;
        while (i < ms->nslots && ms->slots[i].key != key) {
            i++;
        }
        while (spare < ms->nslots && ms->slots[spare].key != 0) {
            spare++;
        }
        if (i < ms->nslots && spare == ms->nslots) {
            ms->slots[i].key = 0; /* the spare: the next new context takes it */
        } else if (i < ms->nslots) {
            gone = ms->slots[i].inst;
            memmove(&ms->slots[i], &ms->slots[i + 1], (ms->nslots - i - 1) * sizeof(inst_slot));
            ms->nslots--;
        }
        pthread_mutex_unlock(&ms->lock);
        if (gone && ms->m.destroy) {
            ms->m.destroy(gone); /* its context is gone: nobody else can call it */
        }
    }
    pthread_mutex_unlock(&reg_lock);
}
static _Atomic uint64_t next_ctx_key = 1;

#if defined(__GNUC__)
#define MODULE_COLD __attribute__((noinline, cold)) /* off the per-line path */
#else
#define MODULE_COLD
#endif

/* A context remembers the instances it was given (pixel_ctx.module_inst,
 * by entry id): a context is used by one thread at a time, so this needs
 * no lock, and ids are never reused, so an entry of a freed pipeline is
 * never taken for another. */
#define ICACHE_SIZE (sizeof(((pixel_ctx *)0)->module_inst) / sizeof(((pixel_ctx *)0)->module_inst[0]))

static int add_slot(modstate *ms, uint64_t key, void *inst)
{
    if (ms->nslots == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 4;
        inst_slot *s = pixel__realloc(ms->slots, cap * sizeof(*s));
        if (!s) {
            return PIXEL_ENOMEM;
        }
        ms->slots = s;
        ms->cap = cap;
    }
    ms->slots[ms->nslots++] = (inst_slot){key, inst};
    return 0;
}

static int create_instance(modstate *ms, void **out, pixel_error *err)
{
    *out = NULL;
    int rc = ms->m.create(out, ms->cfg, err);
    if (rc < 0 && *out && ms->m.destroy) {
        ms->m.destroy(*out); /* a half-built instance */
    }
    if (rc < 0) {
        *out = NULL;
    }
    return rc;
}

/* The instance of ms that belongs to ctx, created on first use: the
 * context's cache, else instance_claim(). */
static int instance_claim(modstate *ms, pixel_ctx *ctx, size_t h, void **out, pixel_error *err);

static inline int instance_for(modstate *ms, pixel_ctx *ctx, void **out, pixel_error *err)
{
    size_t h = (size_t)(ms->id % ICACHE_SIZE);
    if (PIXEL_LIKELY(ctx->module_inst[h].id == ms->id)) {
        *out = ctx->module_inst[h].inst;
        return 0;
    }
    return instance_claim(ms, ctx, h, out, err);
}

/* The instance of ms for ctx (from its slots, or made now), remembered in
 * the context at h. */
static MODULE_COLD int instance_claim(modstate *ms, pixel_ctx *ctx, size_t h, void **out,
                                      pixel_error *err)
{
    if (!ctx->module_key) {
        ctx->module_key = atomic_fetch_add(&next_ctx_key, 1);
    }
    uint64_t key = ctx->module_key;
    int rc = 0;
    void *inst = NULL;
    size_t i;
    pthread_mutex_lock(&ms->lock);
    for (i = 0; i < ms->nslots && ms->slots[i].key != key; i++) {
    }
    if (i == ms->nslots) {
        for (i = 0; i < ms->nslots && ms->slots[i].key; i++) {
        }
    }
    if (i < ms->nslots) {
        ms->slots[i].key = key;
        inst = ms->slots[i].inst;
    } else {
        pixel_error local = {0};
        rc = create_instance(ms, &inst, &local);
        if (rc >= 0 && (rc = add_slot(ms, key, inst)) < 0 && ms->m.destroy) {
            ms->m.destroy(inst);
        }
        if (rc < 0) {
            pixel__error_set(err, rc, PIXEL_STAGE_ENRICH, "module '%s': cannot create an instance: %s",
                             ms->name, local.text[0] ? local.text : pixel_status_str(rc));
            pixel__error_at(err, ms->name, 0, 0);
        }
    }
    pthread_mutex_unlock(&ms->lock);
    if (rc < 0) {
        return rc;
    }
    ctx->module_inst[h].id = ms->id;
    ctx->module_inst[h].inst = inst;
    *out = inst;
    return 0;
}

static MODULE_COLD int module_verdict(const modstate *ms, pixel_ctx *ctx,
                                      const pixel_module_event *evp, int rc, pixel_error *err);

static int run_module(const pixel_enricher *e, pixel_ctx *ctx, pixel_error *err)
{
    modstate *ms = e->state;
    void *inst;
    if (ms->m.threading == PIXEL_MODULE_SHARED) {
        inst = ms->slots[0].inst;
    } else {
        int rc = instance_for(ms, ctx, &inst, err);
        if (rc < 0) {
            return rc;
        }
    }
    pixel_module_event ev = {
        .struct_size = (uint32_t)sizeof(ev),
        .ctx = ctx,
        .event = ctx->event,
        .record = ctx->parsed ? &ctx->rec : NULL, /* pixel_ctx_record(), in line */
    };
    int rc = ms->m.process(inst, &ev, err);
    if (PIXEL_LIKELY(rc == PIXEL_MODULE_CONTINUE)) {
        return 0;
    }
    return module_verdict(ms, ctx, &ev, rc, err);
}

/* What a process() result other than CONTINUE does to the line (out of
 * run_module, which every line goes through: it stays small). */
static MODULE_COLD int module_verdict(const modstate *ms, pixel_ctx *ctx,
                                      const pixel_module_event *evp, int rc, pixel_error *err)
{
    const pixel_module_event ev = *evp;
    if (rc == PIXEL_MODULE_DROP) {
        return pixel__ctx_drop(ctx, ms->name, ev.message ? ev.message : "dropped by the module");
    }
    if (rc < 0) {
        pixel__error_set(err, rc, PIXEL_STAGE_ENRICH, "module '%s' failed: %s", ms->name,
                         pixel_status_str(rc));
        pixel__error_at(err, ms->name, 0, 0);
        return rc;
    }
    const char *msg = rc == PIXEL_MODULE_FAIL
                          ? (ev.message ? ev.message : "the module rejected the event")
                          : "the module returned an unknown result";
    pixel_reason r = {
        .stage = PIXEL_STAGE_ENRICH,
        .family = pixel__code_family("module_failed"),
        .code = "module_failed",
        .message = pixel__arena_printf(&ctx->arena, "%s: %s", ms->name, msg),
        .location = ev.location ? pixel__arena_strndup(&ctx->arena, ev.location,
                                                       strlen(ev.location))
                                : NULL,
        .source = ms->name,
    };
    if (!r.message) {
        return PIXEL_ENOMEM;
    }
    pixel__ctx_add_reason(ctx, &r);
    return 1;
}

static void free_module(pixel_enricher *e)
{
    modstate *ms = e->state;
    if (!ms) {
        return;
    }
    registry_remove(ms); /* no context release can reach it after this */
    for (size_t i = 0; i < ms->nslots; i++) {
        if (ms->m.destroy) {
            ms->m.destroy(ms->slots[i].inst);
        }
    }
    pixel__free(ms->slots);
    config_free(ms->cfg);
    pthread_mutex_destroy(&ms->lock);
    lib_close(ms->lib); /* last: the callbacks above live in it */
    pixel__free(ms->name);
    pixel__free(ms->file);
    pixel__free(ms);
    e->state = NULL;
    e->name = "module";
}

/* ---- finding and checking -------------------------------------------------------------- */

static int valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64) {
        return 0;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-')) {
            return 0;
        }
    }
    return 1;
}

/* Try dir/name.so; on success *out is malloc'd. */
static int try_dir(const char *dir, const char *name, pixel_buf *tried, char **out)
{
    size_t n = strlen(dir) + strlen(name) + 5;
    char *path = pixel__malloc(n);
    if (!path) {
        return PIXEL_ENOMEM;
    }
    snprintf(path, n, "%s/%s.so", dir, name);
    if (access(path, F_OK) == 0) {
        *out = path;
        return 1;
    }
    pixel__free(path);
    if ((tried->len && pixel__buf_append(tried, ", ", 2) < 0) ||
        pixel__buf_append(tried, dir, strlen(dir)) < 0) {
        return PIXEL_ENOMEM;
    }
    return 0;
}

/* libpixel/modules beside the libpixel.so that is running -- where an
 * installation keeps its modules (<libdir>/libpixel/modules), wherever the
 * installation was moved after it was built (DESTDIR, a relocated prefix, a
 * container image).  NULL when libpixel is not a shared library, when out
 * of memory, or when that is PIXEL_MODULE_DIR itself. */
static char *dir_beside_library(void)
{
    static const char anchor = 0; /* an address inside this library */
    Dl_info info;
    if (!dladdr(&anchor, &info) || !info.dli_fname) {
        return NULL;
    }
    /* the file's real path: dli_fname may be a RUNPATH's "$ORIGIN/../x" */
    char *file = realpath(info.dli_fname, NULL);
    const char *slash = file ? strrchr(file, '/') : NULL;
    char *dir = NULL;
    static const char rest[] = "/libpixel/modules";
    if (slash && strncmp(slash + 1, "libpixel.so", 11) == 0 && /* not linked statically */
        (dir = pixel__malloc((size_t)(slash - file) + sizeof(rest)))) {
        memcpy(dir, file, (size_t)(slash - file));
        memcpy(dir + (slash - file), rest, sizeof(rest));
        if (strcmp(dir, PIXEL_MODULE_DIR) == 0) {
            pixel__free(dir);
            dir = NULL;
        }
    }
    free(file);
    return dir;
}

/* Search the module directories in order; 1 found, 0 not found, <0 failure. */
static int search(pixel_pipeline *p, pixel_cfg *c, const char *name, pixel_buf *tried, char **out)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->nmodule_dirs; i++) {
        rc = try_dir(p->module_dirs[i], name, tried, out);
    }
    const char *env = getenv("PIXEL_MODULE_PATH");
    char *copy = env && *env && rc == 0 ? pixel__strdup(env) : NULL;
    for (char *s = copy, *next; rc == 0 && s; s = next) {
        next = strchr(s, ':');
        if (next) {
            *next++ = '\0';
        }
        if (*s) {
            rc = try_dir(s, name, tried, out);
        }
    }
    pixel__free(copy);
    yaml_node_t *mods = pixel__cfg_get(c, pixel__cfg_root(c), "modules");
    yaml_node_t *dirs = pixel__cfg_get(c, mods, "path");
    if (rc == 0 && dirs) {
        const char *one = pixel__cfg_scalar(dirs);
        if (one) {
            char *full = pixel__cfg_path(c, one);
            rc = full ? try_dir(full, name, tried, out) : PIXEL_ENOMEM;
            pixel__free(full);
        } else if (dirs->type == YAML_SEQUENCE_NODE) {
            PIXEL_CFG_ITEMS(c, dirs, item)
            {
                const char *d = pixel__cfg_scalar(pixel__cfg_node(c, *item));
                if (rc != 0 || !d) {
                    continue;
                }
                char *full = pixel__cfg_path(c, d);
                rc = full ? try_dir(full, name, tried, out) : PIXEL_ENOMEM;
                pixel__free(full);
            }
        }
    }
    char *beside = rc == 0 ? dir_beside_library() : NULL;
    if (beside) {
        rc = try_dir(beside, name, tried, out);
        pixel__free(beside);
    }
    if (rc == 0) {
        rc = try_dir(PIXEL_MODULE_DIR, name, tried, out);
    }
    return rc;
}

static int check_modules_section(pixel_cfg *c)
{
    yaml_node_t *mods = pixel__cfg_get(c, pixel__cfg_root(c), "modules");
    static const char *const known[] = {"path", NULL};
    if (!mods) {
        return 0;
    }
    if (pixel__cfg_expect(c, mods, YAML_MAPPING_NODE, "a mapping, e.g. {path: [modules]}") < 0 ||
        pixel__cfg_only_keys(c, mods, known) < 0) {
        return PIXEL_ECONFIG;
    }
    yaml_node_t *dirs = pixel__cfg_get(c, mods, "path");
    if (dirs && !pixel__cfg_scalar(dirs) &&
        pixel__cfg_expect(c, dirs, YAML_SEQUENCE_NODE, "a directory or a list of directories") < 0) {
        return PIXEL_ECONFIG;
    }
    return 0;
}

static const char *base_name(const char *path, size_t *len)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 3 && strcmp(b + n - 3, ".so") == 0) {
        n -= 3;
    }
    *len = n;
    return b;
}

/* Check the description; 0, or a reason in why. */
static int check_desc(const pixel_module *d, const char *name, pixel_module *out, char *why,
                      size_t whylen)
{
    if (!d) {
        snprintf(why, whylen, "%s() returned NULL", PIXEL_MODULE_ENTRY_SYMBOL);
        return -1;
    }
    if (d->abi_major != PIXEL_MODULE_ABI_MAJOR) {
        snprintf(why, whylen,
                 "built for module ABI %u.%u, but this libpixel loads ABI %d.x (rebuild the "
                 "module against this libpixel)",
                 d->abi_major, d->abi_minor, PIXEL_MODULE_ABI_MAJOR);
        return -1;
    }
    if (d->struct_size < MIN_STRUCT_SIZE) {
        snprintf(why, whylen,
                 "its description is %u bytes, smaller than the %zu of ABI %d.0 (not binary "
                 "compatible)",
                 d->struct_size, (size_t)MIN_STRUCT_SIZE, PIXEL_MODULE_ABI_MAJOR);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out, d, d->struct_size < sizeof(*out) ? d->struct_size : sizeof(*out));
    if (!out->name || strcmp(out->name, name) != 0) {
        snprintf(why, whylen, "it calls itself '%s', but the file is %s.so (names must match)",
                 out->name ? out->name : "(null)", name);
        return -1;
    }
    if (!out->create || !out->process) {
        snprintf(why, whylen, "it has no %s callback", out->create ? "process" : "create");
        return -1;
    }
    if (out->threading != PIXEL_MODULE_PER_THREAD && out->threading != PIXEL_MODULE_SHARED) {
        snprintf(why, whylen, "unknown threading mode %u", out->threading);
        return -1;
    }
    for (const pixel_module_option *o = out->options; o && o->name; o++) {
        if (o->type < PIXEL_OPT_STRING || o->type > PIXEL_OPT_ANY) {
            snprintf(why, whylen, "option '%s' has an unknown type %d", o->name, o->type);
            return -1;
        }
    }
    return 0;
}

/* Open, check, configure and instantiate; fills ms. */
static int open_module(pixel_cfg *c, yaml_node_t *at, yaml_node_t *config, modstate *ms)
{
    char why[512];
    char *real = realpath(ms->file, NULL);
    if (!real) {
        return pixel__cfg_fail(c, at, "module '%s' (%s): cannot open: %s", ms->name, ms->file,
                               strerror(errno));
    }
    ms->lib = lib_open(real, ms->name, why, sizeof(why));
    free(real);
    if (!ms->lib) {
        return pixel__cfg_fail(c, at, "module '%s' (%s): %s", ms->name, ms->file, why);
    }
    pixel_module_entry_fn entry;
    void *sym = dlsym(ms->lib->handle, PIXEL_MODULE_ENTRY_SYMBOL);
    if (!sym) {
        return pixel__cfg_fail(c, at,
                               "module '%s' (%s): no entry symbol %s() (not a libpixel module?)",
                               ms->name, ms->file, PIXEL_MODULE_ENTRY_SYMBOL);
    }
    memcpy(&entry, &sym, sizeof(entry)); /* object to function pointer, POSIX-style */
    if (check_desc(entry(), ms->name, &ms->m, why, sizeof(why)) < 0) {
        return pixel__cfg_fail(c, at, "module '%s' (%s): %s", ms->name, ms->file, why);
    }
    int rc = config_build(c, &ms->m, ms->name, at, config, &ms->cfg);
    if (rc < 0) {
        return rc == PIXEL_ENOMEM ? pixel__cfg_fail(c, at, "out of memory") : rc;
    }
    ms->cfg->pipeline = ms->pipeline;
    ms->cfg->enricher = ms->enricher;
    pixel_error local = {0};
    void *inst = NULL;
    rc = create_instance(ms, &inst, &local);
    if (rc >= 0 && (rc = add_slot(ms, 0, inst)) < 0 && ms->m.destroy) {
        ms->m.destroy(inst);
    }
    if (rc < 0) {
        pixel__error_set(c->err, rc < -8 ? PIXEL_ERROR : rc, PIXEL_STAGE_LOAD,
                         "module '%s' (%s): %s", ms->name, ms->file,
                         local.text[0] ? local.text : pixel_status_str(rc));
        pixel__error_at(c->err, c->file, local.line ? local.line : (long)at->start_mark.line + 1,
                        local.line ? local.column : (long)at->start_mark.column + 1);
        return rc < -8 ? PIXEL_ERROR : rc;
    }
    return 0;
}

int pixel__module_enricher_load(pixel_pipeline *p, pixel_cfg *c, yaml_node_t *opts,
                                pixel_enricher *e)
{
    static const char *const known[] = {"name", "path", "config", NULL};
    if (!opts || pixel__cfg_expect(c, opts, YAML_MAPPING_NODE,
                                   "a mapping, e.g. {name: useragent, config: {...}}") < 0 ||
        pixel__cfg_only_keys(c, opts, known) < 0 || check_modules_section(c) < 0) {
        return opts ? PIXEL_ECONFIG
                    : pixel__cfg_fail(c, NULL, "a module entry needs at least {name: ...}");
    }
    const char *name = NULL, *path = NULL;
    if (pixel__cfg_string(c, opts, "name", &name) < 0 ||
        pixel__cfg_string(c, opts, "path", &path) < 0) {
        return PIXEL_ECONFIG;
    }
    if (!name && !path) {
        return pixel__cfg_fail(c, opts, "a module entry needs a name (or a path)");
    }
    modstate *ms = pixel__calloc(1, sizeof(*ms));
    if (!ms) {
        return pixel__cfg_fail(c, opts, "out of memory");
    }
    pthread_mutex_init(&ms->lock, NULL);
    ms->pipeline = p;
    ms->enricher = e;
    e->state = ms;
    e->free_fn = free_module;
    e->fn = run_module;
    e->name = "module";
    size_t blen = 0;
    const char *b = path ? base_name(path, &blen) : name;
    ms->name = name ? pixel__strdup(name) : pixel__strndup(b, blen);
    if (!ms->name) {
        return pixel__cfg_fail(c, opts, "out of memory");
    }
    e->name = ms->name;
    yaml_node_t *at = pixel__cfg_get(c, opts, name ? "name" : "path");
    if (!valid_name(ms->name)) {
        return pixel__cfg_fail(c, at, "module '%s': a module name is letters, digits, '_' and '-'",
                               ms->name);
    }
    if (path) {
        if (!(ms->file = pixel__cfg_path(c, path))) {
            return pixel__cfg_fail(c, opts, "out of memory");
        }
    } else {
        pixel_buf tried = {0};
        int rc = search(p, c, ms->name, &tried, &ms->file);
        if (rc <= 0) {
            if (rc == 0) {
                pixel__cfg_fail(c, at,
                                "module '%s': no file %s.so in %.*s (set the pipeline's "
                                "modules.path, PIXEL_MODULE_PATH, or pixel-mmexternal's "
                                "--module-path; run uninstalled tools with `meson devenv`)",
                                ms->name, ms->name, (int)tried.len, tried.data ? tried.data : "");
            }
            pixel__buf_free(&tried);
            return rc < 0 ? pixel__cfg_fail(c, at, "out of memory") : PIXEL_ECONFIG;
        }
        pixel__buf_free(&tried);
    }
    pthread_mutex_lock(&libs_lock);
    ms->id = next_id++;
    pthread_mutex_unlock(&libs_lock);
    int rc = open_module(c, at, pixel__cfg_get(c, opts, "config"), ms);
    if (rc == 0 && ms->m.threading == PIXEL_MODULE_PER_THREAD) {
        registry_add(ms);
    }
    return rc;
}

/* ---- stats -------------------------------------------------------------------------------- */

size_t pixel_pipeline_module_stats(const pixel_pipeline *p, char *buf, size_t size)
{
    pixel_buf b = {0};
    for (size_t i = 0; p && i < p->nenrichers; i++) {
        const pixel_enricher *e = &p->enrichers[i];
        modstate *ms = e->fn == run_module ? e->state : NULL;
        if (!ms || !ms->m.stats) {
            continue;
        }
        pthread_mutex_lock(&ms->lock);
        for (size_t k = 0; k < ms->nslots; k++) {
            char line[512];
            if (ms->m.stats(ms->slots[k].inst, line, sizeof(line)) == 0) {
                line[sizeof(line) - 1] = '\0';
                pixel__buf_printf(&b, "%zu %s %s\n", i, ms->name, line);
            }
        }
        pthread_mutex_unlock(&ms->lock);
    }
    size_t need = b.len;
    if (buf && size) {
        size_t n = need < size ? need : size - 1;
        if (n) {
            memcpy(buf, b.data, n);
        }
        buf[n] = '\0';
    }
    pixel__buf_free(&b);
    return need;
}
