/*
 * Event values: arena nodes linked as lists.  Objects are small (an event
 * has a few dozen members), so a linear member search beats a hash table
 * that would have to be built per event.
 */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "pixel_private.h"
#include "simd.h"

bool pixel__plain_key(const char *key, size_t klen)
{
    const unsigned char *p = (const unsigned char *)key;
    for (; klen >= 16; p += 16, klen -= 16) {
        if (pixel__json_special16(p)) {
            return false;
        }
    }
    if (klen >= 4) {
        return pixel__json_special_short(p, klen) == 0;
    }
    for (size_t i = 0; i < klen; i++) {
        if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || p[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

pixel_value *pixel__object_getn(const pixel_value *obj, const char *key, size_t klen)
{
    if (!obj || obj->type != PIXEL_TYPE_OBJECT) {
        return NULL;
    }
    for (pixel_value *m = obj->u.list.head; m; m = m->next) {
        if (m->klen == klen && pixel__same_bytes(m->key, key, klen)) {
            return m;
        }
    }
    return NULL;
}

pixel_type pixel_value_type(const pixel_value *v)
{
    return v ? (pixel_type)v->type : PIXEL_TYPE_NULL;
}

int pixel_value_bool(const pixel_value *v)
{
    return v && v->type == PIXEL_TYPE_BOOL && v->u.b;
}

int64_t pixel_value_int(const pixel_value *v)
{
    if (!v) {
        return 0;
    }
    if (v->type == PIXEL_TYPE_INT) {
        return v->u.i;
    }
    if (v->type == PIXEL_TYPE_NUMBER && isfinite(v->u.num.d) && fabs(v->u.num.d) < 9.2e18) {
        return (int64_t)v->u.num.d;
    }
    return 0;
}

double pixel_value_number(const pixel_value *v)
{
    if (!v) {
        return 0.0;
    }
    if (v->type == PIXEL_TYPE_INT) {
        return (double)v->u.i;
    }
    return v->type == PIXEL_TYPE_NUMBER ? v->u.num.d : 0.0;
}

const char *pixel_value_string(const pixel_value *v, size_t *len)
{
    if (!v || v->type != PIXEL_TYPE_STRING) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }
    if (len) {
        *len = v->u.str.len;
    }
    return v->u.str.s;
}

size_t pixel_value_size(const pixel_value *v)
{
    return v && (v->type == PIXEL_TYPE_OBJECT || v->type == PIXEL_TYPE_ARRAY) ? v->u.list.count : 0;
}

const pixel_value *pixel_value_first(const pixel_value *c)
{
    return c && (c->type == PIXEL_TYPE_OBJECT || c->type == PIXEL_TYPE_ARRAY) ? c->u.list.head
                                                                              : NULL;
}

const pixel_value *pixel_value_next(const pixel_value *v)
{
    return v ? v->next : NULL;
}

const char *pixel_value_key(const pixel_value *m, size_t *len)
{
    if (len) {
        *len = m && m->key ? m->klen : 0;
    }
    return m ? m->key : NULL;
}

pixel_value *pixel_object_get(const pixel_value *obj, const char *key)
{
    return key ? pixel__object_getn(obj, key, strlen(key)) : NULL;
}

pixel_value *pixel_value_at(const pixel_value *root, const char *path)
{
    const pixel_value *v = root;
    while (v && path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        v = pixel__object_getn(v, path, n);
        path = dot ? dot + 1 : NULL;
    }
    return (pixel_value *)v;
}

/* Replace member `old` of obj by val, keeping its position. */
static void replace_member(pixel_value *obj, pixel_value *old, pixel_value *val)
{
    val->key = old->key;
    val->klen = old->klen;
    val->next = old->next;
    const uint16_t keyf = PIXEL_VALUE_PLAIN_KEY | PIXEL_VALUE_FRAMED_KEY;
    val->flags = (uint16_t)((val->flags & ~keyf) | (old->flags & keyf));
    pixel_value **pp = &obj->u.list.head;
    while (*pp != old) {
        pp = &(*pp)->next;
    }
    *pp = val;
    if (obj->u.list.tail == old) {
        obj->u.list.tail = val;
    }
}

/* ---- compiled paths ------------------------------------------------------ */

pixel_path *pixel__path_new(const char *dotted)
{
    size_t len = strlen(dotted), n = 1;
    for (size_t i = 0; i < len; i++) {
        n += dotted[i] == '.';
    }
    pixel_path *p = pixel__malloc(sizeof(*p) + n * sizeof(p->seg[0]) + len + 1);
    if (!p) {
        return NULL;
    }
    char *text = (char *)&p->seg[n];
    memcpy(text, dotted, len + 1);
    p->n = n;
    for (size_t k = 0; k < n; k++) {
        char *dot = strchr(text, '.');
        size_t sl = dot ? (size_t)(dot - text) : strlen(text);
        p->seg[k].key = text;
        p->seg[k].len = (uint32_t)sl;
        p->seg[k].plain = pixel__plain_key(text, sl);
        if (dot) {
            *dot = '\0';
            text = dot + 1;
        }
    }
    return p;
}

void pixel__path_free(pixel_path *p)
{
    pixel__free(p);
}

/* pixel__same_bytes without its call to memcmp past 16 bytes: the walks
 * below then call nothing, and keep what they need in the registers a call
 * would clobber. */
static inline bool same_key(const char *a, const char *b, uint32_t n)
{
    return n <= 16 ? pixel__same_bytes(a, b, n) : pixel__key_eq(a, b, n);
}

static inline pixel_value *member(const pixel_value *obj, const char *key, uint32_t len)
{
    for (pixel_value *m = obj->u.list.head; m; m = m->next) {
        if (m->klen == len && (m->key == key || same_key(m->key, key, len))) {
            return m;
        }
    }
    return NULL;
}

pixel_value *pixel__path_get(const pixel_value *root, const pixel_path *path)
{
    const pixel_value *v = root;
    for (size_t k = 0; v && k < path->n; k++) {
        v = v->type == PIXEL_TYPE_OBJECT ? member(v, path->seg[k].key, path->seg[k].len) : NULL;
    }
    return (pixel_value *)v;
}

/* Sets a member whose key outlives the event; replaces one of the same name. */
static void set_member(pixel_value *obj, const char *key, uint32_t len, bool plain,
                       pixel_value *val)
{
    pixel__image_edit(obj, val);
    pixel_value *old = member(obj, key, len);
    if (old) {
        replace_member(obj, old, val);
    } else if (plain) {
        pixel__object_add_plain(obj, key, len, val);
    } else {
        pixel__object_add(obj, key, len, val);
    }
}

int pixel__object_set_plain(pixel_value *obj, const char *key, size_t klen, pixel_value *val)
{
    if (!obj || obj->type != PIXEL_TYPE_OBJECT || !val) {
        return -1;
    }
    set_member(obj, key, (uint32_t)klen, true, val);
    return 0;
}

int pixel__path_set(pixel_ctx *ctx, pixel_value *root, const pixel_path *path, pixel_value *val)
{
    if (!root || root->type != PIXEL_TYPE_OBJECT || !val) {
        return -1;
    }
    pixel_value *obj = root;
    for (size_t k = 0; k + 1 < path->n; k++) {
        const struct pixel_path_seg *sg = &path->seg[k];
        pixel_value *child = member(obj, sg->key, sg->len);
        if (!child || child->type != PIXEL_TYPE_OBJECT) {
            pixel_value *fresh = pixel_value_new_object(ctx);
            if (!fresh) {
                return -1;
            }
            set_member(obj, sg->key, sg->len, sg->plain, fresh);
            child = fresh;
        }
        obj = child;
    }
    const struct pixel_path_seg *last = &path->seg[path->n - 1];
    set_member(obj, last->key, last->len, last->plain, val);
    return 0;
}

pixel_value *pixel_value_null(pixel_ctx *ctx)
{
    return pixel__value_new(&ctx->arena, PIXEL_TYPE_NULL);
}

pixel_value *pixel_value_new_bool(pixel_ctx *ctx, int b)
{
    pixel_value *v = pixel__value_new(&ctx->arena, PIXEL_TYPE_BOOL);
    if (v) {
        v->u.b = b != 0;
    }
    return v;
}

pixel_value *pixel_value_new_int(pixel_ctx *ctx, int64_t i)
{
    pixel_value *v = pixel__value_new(&ctx->arena, PIXEL_TYPE_INT);
    if (v) {
        v->u.i = i;
    }
    return v;
}

pixel_value *pixel_value_new_number(pixel_ctx *ctx, double d)
{
    pixel_value *v = pixel__value_new(&ctx->arena, PIXEL_TYPE_NUMBER);
    if (v) {
        v->u.num.d = d;
    }
    return v;
}

pixel_value *pixel_value_new_string(pixel_ctx *ctx, const char *s, size_t len)
{
    char *copy = pixel__arena_strndup(&ctx->arena, s ? s : "", s ? len : 0);
    return copy ? pixel__value_string_view(&ctx->arena, copy, s ? len : 0) : NULL;
}

pixel_value *pixel_value_new_object(pixel_ctx *ctx)
{
    return pixel__value_new(&ctx->arena, PIXEL_TYPE_OBJECT);
}

pixel_value *pixel_value_new_array(pixel_ctx *ctx)
{
    return pixel__value_new(&ctx->arena, PIXEL_TYPE_ARRAY);
}

/* Sets key in obj, with a copy of the key in the arena (keys that outlive
 * the event go through pixel__object_set_plain or pixel__path_set). */
static int object_setn(pixel_ctx *ctx, pixel_value *obj, const char *key, size_t klen,
                       pixel_value *val)
{
    if (!obj || obj->type != PIXEL_TYPE_OBJECT || !val) {
        return -1;
    }
    obj->flags |= PIXEL_VALUE_EDITED;
    pixel__image_edit(obj, val);
    pixel_value *old = pixel__object_getn(obj, key, klen);
    if (old) {
        replace_member(obj, old, val);
        return 0;
    }
    const char *k = pixel__arena_strndup(&ctx->arena, key, klen);
    if (!k) {
        return -1;
    }
    return pixel__object_add(obj, k, klen, val);
}

int pixel_object_set(pixel_ctx *ctx, pixel_value *obj, const char *key, pixel_value *val)
{
    return key ? object_setn(ctx, obj, key, strlen(key), val) : -1;
}

int pixel_value_set_at(pixel_ctx *ctx, pixel_value *root, const char *path, pixel_value *val)
{
    pixel_value *obj = root;
    if (root && root->type == PIXEL_TYPE_OBJECT) {
        root->flags |= PIXEL_VALUE_EDITED;
        pixel__image_edit(root, val);
    }
    for (;;) {
        const char *dot = strchr(path, '.');
        if (!dot) {
            return object_setn(ctx, obj, path, strlen(path), val);
        }
        size_t n = (size_t)(dot - path);
        pixel_value *child = pixel__object_getn(obj, path, n);
        if (!child || child->type != PIXEL_TYPE_OBJECT) {
            pixel_value *fresh = pixel_value_new_object(ctx);
            if (!fresh || object_setn(ctx, obj, path, n, fresh) < 0) {
                return -1;
            }
            child = fresh;
        }
        obj = child;
        path = dot + 1;
    }
}

static int object_removen(pixel_value *obj, const char *key, size_t klen)
{
    if (!obj || obj->type != PIXEL_TYPE_OBJECT) {
        return 0;
    }
    obj->flags |= PIXEL_VALUE_EDITED;
    pixel__image_edit(obj, NULL);
    pixel_value *prev = NULL;
    for (pixel_value *m = obj->u.list.head; m; prev = m, m = m->next) {
        if (m->klen == klen && pixel__same_bytes(m->key, key, klen)) {
            if (prev) {
                prev->next = m->next;
            } else {
                obj->u.list.head = m->next;
            }
            if (obj->u.list.tail == m) {
                obj->u.list.tail = prev;
            }
            obj->u.list.count--;
            m->next = NULL;
            return 1;
        }
    }
    return 0;
}

int pixel_object_remove(pixel_value *obj, const char *key)
{
    return key ? object_removen(obj, key, strlen(key)) : 0;
}

int pixel_value_remove_at(pixel_value *root, const char *path)
{
    if (root && root->type == PIXEL_TYPE_OBJECT) {
        root->flags |= PIXEL_VALUE_EDITED;
        pixel__image_edit(root, NULL);
    }
    const char *dot = strrchr(path, '.');
    if (!dot) {
        return pixel_object_remove(root, path);
    }
    pixel_value *parent = root;
    const char *p = path;
    while (parent && p < dot) {
        const char *d = strchr(p, '.');
        parent = pixel__object_getn(parent, p, (size_t)(d - p));
        p = d + 1;
    }
    return parent ? object_removen(parent, dot + 1, strlen(dot + 1)) : 0;
}

int pixel_array_append(pixel_value *arr, pixel_value *val)
{
    if (!arr || arr->type != PIXEL_TYPE_ARRAY || !val) {
        return -1;
    }
    pixel__image_edit(arr, val);
    return pixel__object_add(arr, NULL, 0, val);
}

static int numbers_equal(const pixel_value *a, const pixel_value *b)
{
    if (a->type == PIXEL_TYPE_INT && b->type == PIXEL_TYPE_INT) {
        return a->u.i == b->u.i;
    }
    return pixel_value_number(a) == pixel_value_number(b);
}

int pixel_value_equal(const pixel_value *a, const pixel_value *b)
{
    if (!a || !b) {
        return a == b;
    }
    int an = a->type == PIXEL_TYPE_INT || a->type == PIXEL_TYPE_NUMBER;
    int bn = b->type == PIXEL_TYPE_INT || b->type == PIXEL_TYPE_NUMBER;
    if (an && bn) {
        return numbers_equal(a, b);
    }
    if (a->type != b->type) {
        return 0;
    }
    switch (a->type) {
        case PIXEL_TYPE_NULL:
            return 1;
        case PIXEL_TYPE_BOOL:
            return a->u.b == b->u.b;
        case PIXEL_TYPE_STRING:
            return a->u.str.len == b->u.str.len &&
                   memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
        case PIXEL_TYPE_ARRAY: {
            if (a->u.list.count != b->u.list.count) {
                return 0;
            }
            const pixel_value *x = a->u.list.head, *y = b->u.list.head;
            for (; x && y; x = x->next, y = y->next) {
                if (!pixel_value_equal(x, y)) {
                    return 0;
                }
            }
            return 1;
        }
        case PIXEL_TYPE_OBJECT: {
            if (a->u.list.count != b->u.list.count) {
                return 0;
            }
            for (const pixel_value *m = a->u.list.head; m; m = m->next) {
                const pixel_value *o = pixel__object_getn(b, m->key, m->klen);
                if (!o || !pixel_value_equal(m, o)) {
                    return 0;
                }
            }
            return 1;
        }
        default:
            return 0;
    }
}

void *pixel_value_to_jansson(const pixel_value *v)
{
    if (!v) {
        return NULL;
    }
    switch (v->type) {
        case PIXEL_TYPE_NULL:
            return json_null();
        case PIXEL_TYPE_BOOL:
            return json_boolean(v->u.b);
        case PIXEL_TYPE_INT:
            return json_integer((json_int_t)v->u.i);
        case PIXEL_TYPE_NUMBER:
            return json_real(v->u.num.d);
        case PIXEL_TYPE_STRING:
            return json_stringn_nocheck(v->u.str.s, v->u.str.len);
        case PIXEL_TYPE_ARRAY: {
            json_t *a = json_array();
            for (const pixel_value *e = v->u.list.head; a && e; e = e->next) {
                if (json_array_append_new(a, pixel_value_to_jansson(e)) < 0) {
                    json_decref(a);
                    return NULL;
                }
            }
            return a;
        }
        case PIXEL_TYPE_OBJECT: {
            json_t *o = json_object();
            for (const pixel_value *m = v->u.list.head; o && m; m = m->next) {
                if (json_object_setn_new_nocheck(o, m->key, m->klen, pixel_value_to_jansson(m)) <
                    0) {
                    json_decref(o);
                    return NULL;
                }
            }
            return o;
        }
        default:
            return NULL;
    }
}
