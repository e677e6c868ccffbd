/*
 * YAML configuration helpers.  libyaml's marks are 0-based; every message
 * carries them 1-based, in the form editors jump to: file:line:column.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pixel_private.h"

int pixel__cfg_fail(pixel_cfg *c, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pixel__error_vset(c->err, PIXEL_ECONFIG, PIXEL_STAGE_LOAD, fmt, ap);
    va_end(ap);
    pixel__error_at(c->err, c->file, at ? (long)at->start_mark.line + 1 : 0,
                    at ? (long)at->start_mark.column + 1 : 0);
    return PIXEL_ECONFIG;
}

yaml_node_t *pixel__cfg_root(pixel_cfg *c)
{
    return yaml_document_get_root_node(&c->doc);
}

const char *pixel__cfg_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

yaml_node_t *pixel__cfg_get(pixel_cfg *c, const yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    PIXEL_CFG_PAIRS(c, map, pair)
    {
        const char *k = pixel__cfg_scalar(pixel__cfg_node(c, pair->key));
        if (k && strcmp(k, key) == 0) {
            return pixel__cfg_node(c, pair->value);
        }
    }
    return NULL;
}

int pixel__cfg_expect(pixel_cfg *c, const yaml_node_t *n, yaml_node_type_t type, const char *what)
{
    if (n && n->type == type) {
        return 0;
    }
    static const char *const kinds[] = {"nothing", "a scalar", "a list", "a mapping"};
    return pixel__cfg_fail(c, n, "expected %s, found %s", what,
                           n ? kinds[n->type < 4 ? n->type : 0] : "nothing");
}

int pixel__cfg_string(pixel_cfg *c, const yaml_node_t *map, const char *key, const char **out)
{
    yaml_node_t *n = pixel__cfg_get(c, map, key);
    if (!n) {
        return 0;
    }
    if (n->type != YAML_SCALAR_NODE) {
        return pixel__cfg_fail(c, n, "'%s' must be a string", key);
    }
    *out = pixel__cfg_scalar(n);
    return 0;
}

int pixel__cfg_bool(pixel_cfg *c, const yaml_node_t *map, const char *key, bool *out)
{
    yaml_node_t *n = pixel__cfg_get(c, map, key);
    if (!n) {
        return 0;
    }
    const char *s = pixel__cfg_scalar(n);
    if (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 || strcmp(s, "on") == 0)) {
        *out = true;
    } else if (s &&
               (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 || strcmp(s, "off") == 0)) {
        *out = false;
    } else {
        return pixel__cfg_fail(c, n, "'%s' must be true or false", key);
    }
    return 0;
}

int pixel__cfg_int(pixel_cfg *c, const yaml_node_t *map, const char *key, long long min,
                   long long max, long long *out)
{
    yaml_node_t *n = pixel__cfg_get(c, map, key);
    if (!n) {
        return 0;
    }
    const char *s = pixel__cfg_scalar(n);
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end) {
        return pixel__cfg_fail(c, n, "'%s' must be an integer", key);
    }
    if (v < min || v > max) {
        return pixel__cfg_fail(c, n, "'%s' must be between %lld and %lld", key, min, max);
    }
    *out = v;
    return 0;
}

int pixel__cfg_only_keys(pixel_cfg *c, const yaml_node_t *map, const char *const *known)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        return 0;
    }
    PIXEL_CFG_PAIRS(c, map, pair)
    {
        yaml_node_t *kn = pixel__cfg_node(c, pair->key);
        const char *k = pixel__cfg_scalar(kn);
        size_t i = 0;
        while (k && known[i] && strcmp(known[i], k) != 0) {
            i++;
        }
        if (!k || !known[i]) {
            char list[256] = "";
            size_t n = 0;
            for (size_t j = 0; known[j] && n < sizeof(list); j++) {
                int w = snprintf(list + n, sizeof(list) - n, "%s%s", j ? ", " : "", known[j]);
                n += w > 0 ? (size_t)w : 0;
            }
            return pixel__cfg_fail(c, kn, "unknown key '%s' (expected one of: %s)", k ? k : "?",
                                   list);
        }
    }
    return 0;
}

char *pixel__cfg_path(pixel_cfg *c, const char *path)
{
    if (!path) {
        return NULL;
    }
    if (path[0] == '/' || !c->base_dir || !c->base_dir[0]) {
        return pixel__strdup(path);
    }
    size_t n = strlen(c->base_dir) + strlen(path) + 2;
    char *full = pixel__malloc(n);
    if (full) {
        snprintf(full, n, "%s/%s", c->base_dir, path);
    }
    return full;
}

/*
 * YAML allows nothing to stop a mapping from holding one key twice, and a
 * reader would silently take one of them.  Refuse it everywhere in the file.
 */
int pixel__cfg_check_duplicates(pixel_cfg *c, const yaml_node_t *n, int depth)
{
    if (!n || depth > 64) {
        return 0;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        PIXEL_CFG_ITEMS(c, n, item)
        {
            int rc = pixel__cfg_check_duplicates(c, pixel__cfg_node(c, *item), depth + 1);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return 0;
    }
    PIXEL_CFG_PAIRS(c, n, pair)
    {
        yaml_node_t *kn = pixel__cfg_node(c, pair->key);
        const char *k = pixel__cfg_scalar(kn);
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; k && q < pair; q++) {
            yaml_node_t *qk = pixel__cfg_node(c, q->key);
            const char *other = pixel__cfg_scalar(qk);
            if (other && strcmp(other, k) == 0) {
                return pixel__cfg_fail(c, kn, "duplicate key '%s' (first at line %lu)", k,
                                       (unsigned long)qk->start_mark.line + 1);
            }
        }
        int rc = pixel__cfg_check_duplicates(c, pixel__cfg_node(c, pair->value), depth + 1);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}
