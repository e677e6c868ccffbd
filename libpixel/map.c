/*
 * The map stage: a declarative list of target fields, each filled from a
 * source (query parameter, log field, syslog field or constant) through a
 * typed conversion.  Everything by name is resolved at load: at run time a
 * field is a slot index, a conversion and a parent-object index.
 *
 * Mapping collects every problem of a line before giving up, so that one
 * quarantine record tells the whole story.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "simd.h"

/* ---- loading ----------------------------------------------------------- */

int pixel__source_parse(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *at, const char *name,
                        pixel_src_kind *src, int *index)
{
    if (strncmp(name, "query.", 6) == 0 && name[6]) {
        *src = SRC_QUERY;
        *index = pixel__slot_for_param(p, name + 6);
        return *index < 0 ? PIXEL_ENOMEM : 0;
    }
    if (strncmp(name, "log.", 4) == 0 && name[4]) {
        *src = SRC_LOG;
        /* Only fields the log format produces (or derives from the request). */
        int slot = pixel__field_slot(p, name + 4, 0);
        int derived = slot == PIXEL_F_METHOD || slot == PIXEL_F_TARGET || slot == PIXEL_F_PATH ||
                      slot == PIXEL_F_QUERY || slot == PIXEL_F_PROTOCOL;
        int in_format = 0;
        for (size_t i = 0; slot >= 0 && i < p->logfmt.nfields; i++) {
            in_format |= p->logfmt.field[i] == slot;
        }
        if (p->logfmt.kind == LOGFMT_JSON) {
            slot = slot >= 0 ? slot : pixel__field_slot(p, name + 4, 1);
            in_format = slot >= 0;
        }
        if (slot < 0 || !(in_format || derived)) {
            return pixel__cfg_fail(c, at, "log field '%s' is not produced by the input format",
                                   name + 4);
        }
        *index = slot;
        return 0;
    }
    if (strncmp(name, "syslog.", 7) == 0) {
        int idx = pixel__syslog_index(name + 7);
        if (idx < 0) {
            return pixel__cfg_fail(c, at,
                                   "unknown syslog field '%s' (expected pri, facility, severity, "
                                   "timestamp, hostname, tag, procid, msgid or message)",
                                   name + 7);
        }
        if (p->framing == FRAMING_NONE) {
            return pixel__cfg_fail(c, at, "'%s' needs syslog framing, but input.framing is none",
                                   name);
        }
        *src = SRC_SYSLOG;
        *index = idx;
        return 0;
    }
    return pixel__cfg_fail(
        c, at, "unknown source '%s' (expected query.NAME, log.FIELD or syslog.FIELD)", name);
}

static int object_for_path(pixel_pipeline *p, const char *path, size_t len)
{
    int parent = 0;
    const char *s = path, *end = path + len;
    while (s < end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        const char *e = dot ? dot : end;
        size_t n = (size_t)(e - s);
        int found = -1;
        for (size_t i = 1; i < p->nobjects; i++) {
            if (p->objects[i].parent == parent && p->objects[i].keylen == n &&
                memcmp(p->objects[i].key, s, n) == 0) {
                found = (int)i;
            }
        }
        if (found < 0) {
            pixel_objnode *o = pixel__realloc(p->objects, (p->nobjects + 1) * sizeof(*o));
            if (!o) {
                return -1;
            }
            p->objects = o;
            o[p->nobjects] =
                (pixel_objnode){parent, pixel__strndup(s, n), n, PIXEL_VALUE_PLAIN_KEY};
            if (!o[p->nobjects].key) {
                return -1;
            }
            found = (int)p->nobjects++;
        }
        parent = found;
        s = e + 1;
    }
    return parent;
}

static int type_index(const pixel_pipeline *p, const char *s, size_t n)
{
    for (size_t i = 0; i < p->ntypes; i++) {
        if (p->type_len[i] == n && pixel__same_bytes(p->types[i], s, n)) {
            return (int)i;
        }
    }
    return -1;
}

static int type_mask(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *seq, uint64_t *mask)
{
    if (pixel__cfg_expect(c, seq, YAML_SEQUENCE_NODE, "a list of event types") < 0) {
        return PIXEL_ECONFIG;
    }
    if (p->ntypes == 0) {
        return pixel__cfg_fail(c, seq, "per-type rules need event_type.values to be set");
    }
    *mask = 0;
    PIXEL_CFG_ITEMS(c, seq, item)
    {
        yaml_node_t *n = pixel__cfg_node(c, *item);
        const char *s = pixel__cfg_scalar(n);
        int t = s ? type_index(p, s, strlen(s)) : -1;
        if (t < 0) {
            return pixel__cfg_fail(c, n, "'%s' is not one of event_type.values", s ? s : "?");
        }
        *mask |= 1ull << t;
    }
    return 0;
}

static int load_value_map(pixel_cfg *c, const yaml_node_t *n, pixel_field *f)
{
    if (pixel__cfg_expect(c, n, YAML_MAPPING_NODE, "a mapping of input value: output value") < 0) {
        return PIXEL_ECONFIG;
    }
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    f->map_from = pixel__calloc(count, sizeof(char *));
    f->map_to = pixel__calloc(count, sizeof(char *));
    f->map_from_len = pixel__calloc(count, sizeof(size_t));
    f->map_to_len = pixel__calloc(count, sizeof(size_t));
    if (!f->map_from || !f->map_to || !f->map_from_len || !f->map_to_len) {
        return PIXEL_ENOMEM;
    }
    PIXEL_CFG_PAIRS(c, n, pair)
    {
        const char *k = pixel__cfg_scalar(pixel__cfg_node(c, pair->key));
        const char *v = pixel__cfg_scalar(pixel__cfg_node(c, pair->value));
        if (!k || !v) {
            return pixel__cfg_fail(c, pixel__cfg_node(c, pair->key), "map entries must be strings");
        }
        f->map_from[f->nmap] = pixel__strdup(k);
        f->map_to[f->nmap] = pixel__strdup(v);
        if (!f->map_from[f->nmap] || !f->map_to[f->nmap]) {
            return PIXEL_ENOMEM;
        }
        f->map_from_len[f->nmap] = strlen(k);
        f->map_to_len[f->nmap] = strlen(v);
        f->nmap++;
    }
    return 0;
}

static int load_timestamp_opts(pixel_cfg *c, const yaml_node_t *spec, pixel_field *f)
{
    const char *fmt = NULL, *output = NULL;
    if (pixel__cfg_string(c, spec, "format", &fmt) < 0 ||
        pixel__cfg_string(c, spec, "output", &output) < 0) {
        return PIXEL_ECONFIG;
    }
    static const char *const names[] = {"auto", "epoch_s", "epoch_ms", "rfc3339", "clf", "syslog"};
    f->tsfmt = TS_AUTO;
    if (fmt && strchr(fmt, '%')) {
        f->tsfmt = TS_STRPTIME;
        f->strptime_fmt = pixel__strdup(fmt);
        if (!f->strptime_fmt) {
            return PIXEL_ENOMEM;
        }
    } else if (fmt) {
        size_t i = 0;
        while (i < PIXEL_ARRAY_LEN(names) && strcmp(names[i], fmt) != 0) {
            i++;
        }
        if (i == PIXEL_ARRAY_LEN(names)) {
            return pixel__cfg_fail(c, pixel__cfg_get(c, spec, "format"),
                                   "unknown timestamp format '%s' (expected auto, epoch_s, "
                                   "epoch_ms, rfc3339, clf, syslog, or a strptime format with %%)",
                                   fmt);
        }
        f->tsfmt = (pixel_tsfmt)i;
    }
    if (output && strcmp(output, "rfc3339_ms") == 0) {
        f->ts_output_ms = 1;
    } else if (output && strcmp(output, "rfc3339") != 0) {
        return pixel__cfg_fail(c, pixel__cfg_get(c, spec, "output"),
                               "unknown output '%s' (expected rfc3339 or rfc3339_ms)", output);
    }
    return 0;
}

static int load_char(pixel_cfg *c, const yaml_node_t *spec, const char *key, char dflt, char *out)
{
    const char *s = NULL;
    *out = dflt;
    if (pixel__cfg_string(c, spec, key, &s) < 0) {
        return PIXEL_ECONFIG;
    }
    if (s && strlen(s) != 1) {
        return pixel__cfg_fail(c, pixel__cfg_get(c, spec, key), "'%s' must be one character", key);
    }
    if (s) {
        *out = s[0];
    }
    return 0;
}

static int load_conv_opts(pixel_cfg *c, const yaml_node_t *spec, pixel_field *f)
{
    yaml_node_t *n;
    f->expect_type = -1;
    f->item_conv = CONV_STRING;
    if (load_char(c, spec, "separator", ',', &f->separator) < 0 ||
        load_char(c, spec, "kv_separator", ':', &f->kv_separator) < 0) {
        return PIXEL_ECONFIG;
    }
    if ((n = pixel__cfg_get(c, spec, "items"))) {
        if (pixel__conv_parse(c, n, &f->item_conv) < 0) {
            return PIXEL_ECONFIG;
        }
        if (f->item_conv != CONV_STRING && f->item_conv != CONV_INTEGER &&
            f->item_conv != CONV_NUMBER) {
            return pixel__cfg_fail(c, n, "list items are string, integer or number");
        }
    }
    if ((n = pixel__cfg_get(c, spec, "expect"))) {
        static const char *const names[] = {"null",   "boolean", "integer", "number",
                                            "string", "array",   "object"};
        const char *s = pixel__cfg_scalar(n);
        for (int i = 0; s && i < 7; i++) {
            if (strcmp(s, names[i]) == 0) {
                f->expect_type = i;
            }
        }
        if (f->expect_type < 0) {
            return pixel__cfg_fail(c, n, "expect must be a JSON type (object, array, ...)");
        }
    }
    return f->conv == CONV_TIMESTAMP ? load_timestamp_opts(c, spec, f) : 0;
}

static int load_field(pixel_pipeline *p, pixel_cfg *c, const char *target, yaml_node_t *kn,
                      yaml_node_t *spec, pixel_field *f)
{
    static const char *const known[] = {
        "from",      "const",        "type",  "format",  "output",
        "separator", "kv_separator", "items", "expect",  "max_length",
        "required",  "types",        "map",   "default", NULL};
    const char *from = NULL;
    memset(f, 0, sizeof(*f));
    f->target = pixel__strdup(target);
    if (!f->target) {
        return PIXEL_ENOMEM;
    }
    if (!target[0] || target[0] == '.' || target[strlen(target) - 1] == '.' ||
        strstr(target, "..")) {
        return pixel__cfg_fail(c, kn, "'%s' is not a valid field path (a.b.c)", target);
    }
    if (!pixel__plain_key(target, strlen(target))) {
        return pixel__cfg_fail(c, kn,
                               "field names may not contain quotes, backslashes or control "
                               "characters");
    }
    const char *dot = strrchr(target, '.');
    f->leaf = pixel__strdup(dot ? dot + 1 : target);
    if (!f->leaf) {
        return PIXEL_ENOMEM;
    }
    f->leaflen = strlen(f->leaf);
    f->key_flags = PIXEL_VALUE_PLAIN_KEY; /* checked above */
    f->parent = dot ? object_for_path(p, target, (size_t)(dot - target)) : 0;
    if (f->parent < 0) {
        return PIXEL_ENOMEM;
    }
    if (spec->type == YAML_SCALAR_NODE) {
        from = pixel__cfg_scalar(spec); /* shorthand: `user.id: query.uid` */
    } else if (spec->type == YAML_MAPPING_NODE) {
        if (pixel__cfg_only_keys(c, spec, known) < 0 ||
            pixel__cfg_string(c, spec, "from", &from) < 0) {
            return PIXEL_ECONFIG;
        }
    } else {
        return pixel__cfg_fail(c, spec, "field '%s': expected a source or a mapping", target);
    }
    yaml_node_t *n;
    const char *cval = NULL;
    if (spec->type == YAML_MAPPING_NODE && pixel__cfg_string(c, spec, "const", &cval) < 0) {
        return PIXEL_ECONFIG;
    }
    if (!!from == !!cval) {
        return pixel__cfg_fail(c, spec, "field '%s' needs exactly one of 'from' or 'const'",
                               target);
    }
    if (cval) {
        f->src = SRC_CONST;
        f->const_value = pixel__strdup(cval);
        f->const_len = strlen(cval);
        f->source_name = pixel__strdup("const");
    } else {
        if (pixel__source_parse(
                p, c, spec->type == YAML_MAPPING_NODE ? pixel__cfg_get(c, spec, "from") : spec,
                from, &f->src, &f->index) < 0) {
            return PIXEL_ECONFIG;
        }
        f->source_name = pixel__strdup(from);
    }
    if (!f->source_name || (cval && !f->const_value)) {
        return PIXEL_ENOMEM;
    }
    if (spec->type != YAML_MAPPING_NODE) {
        return 0;
    }
    if ((n = pixel__cfg_get(c, spec, "type")) && pixel__conv_parse(c, n, &f->conv) < 0) {
        return PIXEL_ECONFIG;
    }
    long long maxlen = 0;
    if (load_conv_opts(c, spec, f) < 0 ||
        pixel__cfg_int(c, spec, "max_length", 1, 1 << 30, &maxlen) < 0) {
        return PIXEL_ECONFIG;
    }
    f->max_length = (long)maxlen;
    if ((n = pixel__cfg_get(c, spec, "required"))) {
        if (n->type == YAML_SEQUENCE_NODE) {
            if (type_mask(p, c, n, &f->required_types) < 0) {
                return PIXEL_ECONFIG;
            }
            f->required = true;
        } else {
            if (pixel__cfg_bool(c, spec, "required", &f->required) < 0) {
                return PIXEL_ECONFIG;
            }
            f->required_types = ~0ull;
        }
    }
    if ((n = pixel__cfg_get(c, spec, "types")) && type_mask(p, c, n, &f->only_types) < 0) {
        return PIXEL_ECONFIG;
    }
    if ((n = pixel__cfg_get(c, spec, "map")) && load_value_map(c, n, f) < 0) {
        return PIXEL_ECONFIG;
    }
    const char *dflt = NULL;
    if (pixel__cfg_string(c, spec, "default", &dflt) < 0) {
        return PIXEL_ECONFIG;
    }
    if (dflt && !(f->default_value = pixel__strdup(dflt))) {
        return PIXEL_ENOMEM;
    }
    f->default_len = dflt ? strlen(dflt) : 0;
    return 0;
}

static int load_event_type(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *et)
{
    static const char *const known[] = {"field", "values", NULL};
    if (pixel__cfg_expect(c, et, YAML_MAPPING_NODE, "a mapping with 'field' and 'values'") < 0 ||
        pixel__cfg_only_keys(c, et, known) < 0) {
        return PIXEL_ECONFIG;
    }
    yaml_node_t *vals = pixel__cfg_get(c, et, "values");
    if (!vals) {
        return pixel__cfg_fail(c, et, "event_type needs 'values': the list of event types");
    }
    if (pixel__cfg_expect(c, vals, YAML_SEQUENCE_NODE, "a list of event types") < 0) {
        return PIXEL_ECONFIG;
    }
    size_t count = (size_t)(vals->data.sequence.items.top - vals->data.sequence.items.start);
    if (count == 0 || count > 64) {
        return pixel__cfg_fail(c, vals, "event_type.values must list 1 to 64 types");
    }
    p->types = pixel__calloc(count, sizeof(char *));
    p->type_len = pixel__calloc(count, sizeof(size_t));
    if (!p->types || !p->type_len) {
        return PIXEL_ENOMEM;
    }
    PIXEL_CFG_ITEMS(c, vals, item)
    {
        const char *s = pixel__cfg_scalar(pixel__cfg_node(c, *item));
        if (!s) {
            return pixel__cfg_fail(c, pixel__cfg_node(c, *item), "event types are strings");
        }
        p->type_len[p->ntypes] = strlen(s);
        if (!(p->types[p->ntypes++] = pixel__strdup(s))) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

/* The first word of a value of type t that is the member of field f (pixel_map_step.head). */
static uint64_t member_head(const pixel_field *f, pixel_type t)
{
    pixel_value v;
    memset(&v, 0, sizeof(v));
    v.type = (uint8_t)t;
    v.flags = f->key_flags;
    v.klen = (uint32_t)f->leaflen;
    uint64_t head;
    memcpy(&head, &v, sizeof(head));
    return head;
}

/* The steps' member names and the first words of their values, from the
 * fields (again once the names are framed). */
static void plan_names(pixel_pipeline *p)
{
    for (size_t k = 0; p->plan && k < p->plan_start[p->ntypes + 1]; k++) {
        pixel_map_step *st = &p->plan[k];
        if (st->input == STEP_END) {
            continue;
        }
        const pixel_field *f = &p->fields[st->field];
        st->key = f->leaf;
        st->klen = (uint32_t)f->leaflen;
        st->key_flags = f->key_flags;
        st->head = member_head(f, st->kind == STEP_INTEGER ? PIXEL_TYPE_INT : PIXEL_TYPE_STRING);
    }
}

/* The per-type plans of the map stage (pixel_map_step), so that the loop over
 * a line's fields neither tests types nor skips fields, and finds what each
 * needs in its step. */
static int build_plan(pixel_pipeline *p)
{
    const size_t nt = p->ntypes;
    p->plan_start = pixel__calloc(nt + 2, sizeof(size_t));
    p->plan = pixel__calloc((nt + 1) * (p->nfields + 1), sizeof(pixel_map_step));
    if (!p->plan_start || !p->plan) {
        return PIXEL_ENOMEM;
    }
    size_t k = 0;
    p->plan_max = 0;
    for (size_t t = 0; t <= nt; t++) {
        const uint64_t tbit = t < nt ? 1ull << t : ~0ull;
        p->plan_start[t] = k;
        for (size_t i = 0; i < p->nfields; i++) {
            const pixel_field *f = &p->fields[i];
            if (f->only_types && !(f->only_types & tbit)) {
                continue;
            }
            /* a plain source: a query parameter or a span of the record */
            const bool plain = !f->default_value && f->nmap == 0;
            const bool record = f->src == SRC_LOG || f->src == SRC_SYSLOG;
            const bool list = f->src == SRC_QUERY && p->repeat == REPEAT_LIST;
            pixel_map_step st = {
                .max_bytes = f->max_length > 0 ? (size_t)f->max_length : SIZE_MAX,
                .conv = pixel__conv_fn(f),
                .index = f->index,
                .parent = f->parent,
                .field = (uint32_t)i,
                .input = STEP_OTHER,
                .kind = STEP_CONVERT,
                .required = f->required && (f->required_types & tbit),
            };
            if (f->conv == CONV_STRING && !list) {
                st.kind = record ? STEP_RECORD_STRING : STEP_STRING;
            } else if (list) {
                st.kind = STEP_LIST;
            } else if (record) {
                st.kind = STEP_RECORD_CONVERT;
            } else if (f->conv == CONV_INTEGER) {
                st.kind = STEP_INTEGER;
            }
            if (plain && f->src == SRC_QUERY) {
                st.input = STEP_QUERY;
            } else if (plain && f->src == SRC_LOG) {
                st.input = STEP_RECORD;
                st.index = (int32_t)(offsetof(pixel_record, fields) +
                                     (size_t)f->index * sizeof(pixel_span));
            } else if (plain && f->src == SRC_SYSLOG) {
                st.input = STEP_RECORD;
                st.index = (int32_t)(offsetof(pixel_record, syslog) +
                                     (size_t)f->index * sizeof(pixel_span));
            }
            p->plan[k++] = st;
        }
        if (k - p->plan_start[t] > p->plan_max) {
            p->plan_max = k - p->plan_start[t];
        }
        p->plan[k++] = (pixel_map_step){.input = STEP_END, .field = 0};
    }
    p->plan_start[nt + 1] = k;
    plan_names(p);
    return 0;
}

int pixel__map_load(pixel_pipeline *p, pixel_cfg *c, const yaml_node_t *root)
{
    p->type_field = -1;
    p->objects = pixel__calloc(1, sizeof(pixel_objnode)); /* [0] = the root */
    if (!p->objects) {
        return PIXEL_ENOMEM;
    }
    p->nobjects = 1;
    const char *type_target = NULL;
    yaml_node_t *et = pixel__cfg_get(c, root, "event_type");
    if (et) {
        if (load_event_type(p, c, et) < 0 || pixel__cfg_string(c, et, "field", &type_target) < 0) {
            return PIXEL_ECONFIG;
        }
        if (!type_target) {
            return pixel__cfg_fail(c, et,
                                   "event_type needs 'field': the event field naming the type");
        }
    }
    yaml_node_t *fields = pixel__cfg_get(c, root, "fields");
    if (!fields) {
        return pixel__cfg_fail(c, root, "the pipeline needs a 'fields' mapping (target: source)");
    }
    if (pixel__cfg_expect(c, fields, YAML_MAPPING_NODE, "a mapping of target field: source") < 0) {
        return PIXEL_ECONFIG;
    }
    size_t count = (size_t)(fields->data.mapping.pairs.top - fields->data.mapping.pairs.start);
    p->fields = pixel__calloc(count ? count : 1, sizeof(pixel_field));
    if (!p->fields) {
        return PIXEL_ENOMEM;
    }
    PIXEL_CFG_PAIRS(c, fields, pair)
    {
        yaml_node_t *kn = pixel__cfg_node(c, pair->key);
        const char *target = pixel__cfg_scalar(kn);
        if (!target) {
            return pixel__cfg_fail(c, kn, "field names are strings such as user.id");
        }
        for (size_t i = 0; i < p->nfields; i++) {
            if (strcmp(p->fields[i].target, target) == 0) {
                return pixel__cfg_fail(c, kn, "field '%s' is mapped twice", target);
            }
        }
        int rc =
            load_field(p, c, target, kn, pixel__cfg_node(c, pair->value), &p->fields[p->nfields]);
        p->nfields++;
        if (rc < 0) {
            return rc;
        }
        if (type_target && strcmp(type_target, target) == 0) {
            p->type_field = (int)p->nfields - 1;
        }
    }
    if (type_target && p->type_field < 0) {
        return pixel__cfg_fail(c, et, "event_type.field '%s' is not one of the mapped fields",
                               type_target);
    }
    if (p->type_field >= 0 && p->fields[p->type_field].conv != CONV_STRING) {
        return pixel__cfg_fail(c, et, "the event type field must be a string");
    }
    if (build_plan(p) < 0) {
        return PIXEL_ENOMEM;
    }
    for (size_t i = 0; i < p->nfields; i++) {
        for (size_t j = 1; j < p->nobjects; j++) {
            /* a field and an object of the same path would collide */
            pixel_field *f = &p->fields[i];
            if (p->objects[j].parent == f->parent && p->objects[j].keylen == f->leaflen &&
                memcmp(p->objects[j].key, f->leaf, f->leaflen) == 0) {
                return pixel__cfg_fail(c, fields, "'%s' is both a field and an object", f->target);
            }
        }
    }
    return 0;
}

/* The longest member name that is framed: the serializer copies its frame
 * (`,"name":"`, 5 bytes more than the name) as one block of 32. */
#define FRAME_MAX 27

/* Whether `key` (a name of this pipeline) is framed in p->keyframes. */
static bool in_frames(const pixel_pipeline *p, const char *key)
{
    return p->keyframes && (uintptr_t)key - (uintptr_t)p->keyframes < p->keyframes_len + 16;
}

/* The size of the frame of a name of n bytes. */
#define FRAME_SIZE(n) ((n) + 6)

/* The frame of name k (klen bytes, 1 to FRAME_MAX, plain) at o: its length,
 * `,"name":` and the opening quote of a string value (the serializer copies
 * them at once, json.c); its name's place in it. */
static char *put_frame(char *o, const char *k, size_t klen)
{
    o[0] = (char)klen;
    o[1] = ',';
    o[2] = '"';
    memcpy(o + 3, k, klen);
    o[3 + klen] = '"';
    o[4 + klen] = ':';
    o[5 + klen] = '"';
    return o + 3;
}

/* Name *key (klen bytes, allocated at load) moved into a frame at o: *key
 * then points into the frame, the allocation is freed and the member is
 * marked framed.  Returns where the next frame goes. */
static char *move_into_frame(char *o, char **key, size_t klen, uint16_t *key_flags)
{
    char *k = put_frame(o, *key, klen);
    pixel__free(*key);
    *key = k;
    *key_flags |= PIXEL_VALUE_FRAMED_KEY;
    return k - 3 + FRAME_SIZE(klen);
}

int pixel__map_frame_keys(pixel_pipeline *p)
{
    static const char *const lit[PIXEL_LK_COUNT] = {
        [PIXEL_LK_SCHEME] = "scheme",     [PIXEL_LK_HOST] = "host",
        [PIXEL_LK_PATH] = "path",         [PIXEL_LK_QUERY] = "query",
        [PIXEL_LK_FRAGMENT] = "fragment", [PIXEL_LK_CAMPAIGN] = "campaign",
        [PIXEL_LK_NAME] = "name",         [PIXEL_LK_VERSION] = "version",
    };
    /* the names: the fields' leaves, the objects' keys, the built-ins' targets
     * and their own names */
    size_t size = 32; /* a block of 32 may be read from the last frame on */
    for (size_t i = 0; i < PIXEL_LK_COUNT; i++) {
        size += FRAME_SIZE(strlen(lit[i]));
    }
#define FRAMEABLE(n) ((n) >= 1 && (n) <= FRAME_MAX)
    for (size_t i = 0; i < p->nfields; i++) {
        size += FRAMEABLE(p->fields[i].leaflen) ? FRAME_SIZE(p->fields[i].leaflen) : 0;
    }
    for (size_t i = 1; i < p->nobjects; i++) {
        size += FRAMEABLE(p->objects[i].keylen) ? FRAME_SIZE(p->objects[i].keylen) : 0;
    }
    for (size_t i = 0; i < p->nenrichers; i++) {
        const pixel_path *t = p->enrichers[i].into_path;
        for (size_t k = 0; t && k < t->n; k++) {
            size += t->seg[k].plain && FRAMEABLE(t->seg[k].len) ? FRAME_SIZE(t->seg[k].len) : 0;
        }
    }
    char *buf = pixel__calloc(1, size), *o = buf;
    if (!buf) {
        return -1;
    }
    for (size_t i = 0; i < PIXEL_LK_COUNT; i++) {
        p->lit_key[i] = put_frame(o, lit[i], strlen(lit[i]));
        o += FRAME_SIZE(strlen(lit[i]));
    }
    /* Map names were strdup'ed at load: each is moved into its frame. */
    for (size_t i = 0; i < p->nfields; i++) {
        pixel_field *f = &p->fields[i];
        if (FRAMEABLE(f->leaflen)) {
            o = move_into_frame(o, &f->leaf, f->leaflen, &f->key_flags);
        }
    }
    for (size_t i = 1; i < p->nobjects; i++) {
        pixel_objnode *ob = &p->objects[i];
        if (FRAMEABLE(ob->keylen)) {
            o = move_into_frame(o, &ob->key, ob->keylen, &ob->key_flags);
        }
    }
    /* Paths keep their own text; their segments point at the frame instead. */
    for (size_t i = 0; i < p->nenrichers; i++) {
        pixel_path *t = p->enrichers[i].into_path;
        for (size_t k = 0; t && k < t->n; k++) {
            if (t->seg[k].plain && FRAMEABLE(t->seg[k].len)) {
                t->seg[k].key = put_frame(o, t->seg[k].key, t->seg[k].len);
                o += FRAME_SIZE(t->seg[k].len);
                if (k == 0) {
                    p->enrichers[i].into_key_flags = PIXEL_VALUE_FRAMED_KEY;
                }
            }
        }
    }
#undef FRAMEABLE
    p->keyframes = buf;
    p->keyframes_len = (size_t)(o - buf); /* the frames, not the zeros after them */
    plan_names(p);
    return 0;
}

void pixel__map_free(pixel_pipeline *p)
{
    for (size_t i = 0; i < p->nfields; i++) {
        pixel_field *f = &p->fields[i];
        pixel__free(f->target);
        if (!in_frames(p, f->leaf)) {
            pixel__free(f->leaf);
        }
        pixel__free(f->source_name);
        pixel__free(f->const_value);
        pixel__free(f->strptime_fmt);
        pixel__free(f->default_value);
        for (size_t k = 0; k < f->nmap; k++) {
            pixel__free(f->map_from[k]);
            pixel__free(f->map_to[k]);
        }
        pixel__free(f->map_from);
        pixel__free(f->map_to);
        pixel__free(f->map_from_len);
        pixel__free(f->map_to_len);
    }
    pixel__free(p->fields);
    pixel__free(p->plan);
    pixel__free(p->plan_start);
    for (size_t i = 0; i < p->nobjects; i++) {
        if (!in_frames(p, p->objects[i].key)) {
            pixel__free(p->objects[i].key);
        }
    }
    pixel__free(p->keyframes);
    p->keyframes = NULL;
    pixel__free(p->objects);
    for (size_t i = 0; i < p->ntypes; i++) {
        pixel__free(p->types[i]);
    }
    pixel__free(p->types);
    pixel__free(p->type_len);
}

/* ---- running --------------------------------------------------------------- */

pixel_span pixel__source_value(const pixel_pipeline *p, pixel_ctx *ctx, pixel_src_kind src,
                               int index)
{
    pixel_record *r = &ctx->rec;
    switch (src) {
        case SRC_QUERY:
            if (r->slots && index < (int)r->nslots && r->slots[index].first >= 0) {
                return r->params[r->slots[index].first].value;
            }
            return (pixel_span){NULL, 0};
        case SRC_LOG:
            return r->fields[index];
        case SRC_SYSLOG:
            return r->syslog[index];
        default:
            PIXEL_UNUSED(p);
            return (pixel_span){NULL, 0};
    }
}

/* The field's input: its source (or constant), else its default, through its value map. */
__attribute__((always_inline)) static inline pixel_span
field_input(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f)
{
    const pixel_record *r = &ctx->rec;
    pixel_span in;
    switch (f->src) {
        case SRC_QUERY: {
            int32_t first = r->slots && f->index < (int)r->nslots ? r->slots[f->index].first : -1;
            in = first >= 0 ? r->params[first].value : (pixel_span){NULL, 0};
            break;
        }
        case SRC_LOG:
            in = r->fields[f->index];
            break;
        case SRC_SYSLOG:
            in = r->syslog[f->index];
            break;
        case SRC_CONST:
            in = (pixel_span){f->const_value, f->const_len};
            break;
        default:
            in = pixel__source_value(p, ctx, f->src, f->index);
            break;
    }
    if (PIXEL_UNLIKELY(!in.p) && f->default_value) {
        in = (pixel_span){f->default_value, f->default_len};
    }
    for (size_t k = 0; PIXEL_UNLIKELY(k < f->nmap) && in.p; k++) {
        if (f->map_from_len[k] == in.n && memcmp(f->map_from[k], in.p, in.n) == 0) {
            in = (pixel_span){f->map_to[k], f->map_to_len[k]};
            break;
        }
    }
    return in;
}

static int convert_field(const pixel_pipeline *p, pixel_ctx *ctx, const pixel_field *f,
                         pixel_span in, pixel_value **out)
{
    /* Log and syslog bytes are checked here (query values were at parse); most are ASCII. */
    if ((f->src == SRC_LOG || f->src == SRC_SYSLOG) && !pixel__all_ascii(in.p, in.n) &&
        pixel__utf8_check(in.p, in.n) != in.n) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_MAP, "invalid_utf8", f->source_name,
                                 "field \"%s\" (%s): the log bytes are not UTF-8", f->target,
                                 f->source_name) < 0
                   ? PIXEL_ENOMEM
                   : 1;
    }
    if (f->src != SRC_QUERY || p->repeat != REPEAT_LIST) {
        return pixel__convert(p, ctx, f, in, out);
    }
    const pixel_slot *sl = &ctx->rec.slots[f->index];
    if (sl->count <= 1) {
        return pixel__convert(p, ctx, f, in, out);
    }
    /* repeated_keys: list -> an array of every occurrence, in order */
    pixel_value *arr = pixel__value_new(&ctx->arena, PIXEL_TYPE_ARRAY);
    if (!arr) {
        return PIXEL_ENOMEM;
    }
    for (int32_t k = sl->first; k >= 0; k = ctx->rec.params[k].next_same) {
        pixel_value *v = NULL;
        int rc = pixel__convert(p, ctx, f, ctx->rec.params[k].value, &v);
        if (rc != 0) {
            return rc;
        }
        pixel__object_add(arr, NULL, 0, v);
    }
    *out = arr;
    return 0;
}

/* Appends m (key, flags and next already set) to obj. */
static inline void append_member(pixel_value *obj, pixel_value *m)
{
    pixel__list_link(obj, m, m, 1);
}

/*
 * The values of a line's event: one block of the arena, laid out at load:
 * the event's objects by pipeline->objects index (the root first), then one
 * value for each step of the longest plan.  An object is linked into its
 * parent when its first member is (map_objs[i] is NULL until then); a step
 * that makes its value in the loop (a string or an integer) makes it in its
 * place, others (conversions) get theirs from the arena.
 */
typedef struct map_line {
    pixel_value **objs; /* ctx->map_objs */
    pixel_value *vals;  /* the objects' values, then the steps' */
} map_line;

static pixel_value *object_make(const pixel_pipeline *p, const map_line *l, int i);

/* The event's object for p->objects[i], made (with its parents) on first use.
 * The usual first use finds the parent made already (most often the root):
 * then the object is made here, without a call. */
static inline pixel_value *object_at(const pixel_pipeline *p, const map_line *l, int i)
{
    pixel_value *o = l->objs[i];
    if (PIXEL_LIKELY(o != NULL)) {
        return o;
    }
    const pixel_objnode *n = &p->objects[i];
    pixel_value *parent = l->objs[n->parent];
    if (PIXEL_UNLIKELY(parent == NULL)) {
        return object_make(p, l, i);
    }
    o = &l->vals[i];
    *o = (pixel_value){.type = PIXEL_TYPE_OBJECT,
                       .flags = n->key_flags,
                       .klen = (uint32_t)n->keylen,
                       .key = n->key};
    append_member(parent, o);
    return l->objs[i] = o;
}

__attribute__((noinline)) static pixel_value *object_make(const pixel_pipeline *p,
                                                         const map_line *l, int i)
{
    const pixel_objnode *n = &p->objects[i];
    pixel_value *parent = object_at(p, l, n->parent);
    pixel_value *o = &l->vals[i];
    /* the whole value in one store, appended to its parent */
    *o = (pixel_value){.type = PIXEL_TYPE_OBJECT,
                       .flags = n->key_flags,
                       .klen = (uint32_t)n->keylen,
                       .key = n->key};
    append_member(parent, o);
    return l->objs[i] = o;
}

/* Decide the event type first: the per-type rules of every other field depend on it. */
static int event_type(const pixel_pipeline *p, pixel_ctx *ctx, int *type)
{
    const pixel_field *f = &p->fields[p->type_field];
    pixel_span in = field_input(p, ctx, f);
    if (!in.p) {
        return pixel__ctx_reason(ctx, PIXEL_STAGE_MAP, "missing_event_type", f->source_name,
                                 "the event type (%s) is missing", f->source_name) < 0
                   ? PIXEL_ENOMEM
                   : 1;
    }
    *type = type_index(p, in.p, in.n);
    if (*type < 0) {
        int shown = in.n > 64 ? 64 : (int)in.n;
        return pixel__ctx_reason(ctx, PIXEL_STAGE_MAP, "unknown_event_type", f->source_name,
                                 "\"%.*s\" is not a known event type (%s)", shown, in.p,
                                 f->source_name) < 0
                   ? PIXEL_ENOMEM
                   : 1;
    }
    ctx->event_type = p->types[*type];
    ctx->event_type_len = p->type_len[*type];
    return 0;
}

/* The slots of a line without a query string: every parameter absent. */
__attribute__((noinline)) static pixel_slot *no_query(pixel_ctx *ctx, size_t nslots)
{
    pixel_slot *sl = pixel__arena_alloc(&ctx->arena, (nslots ? nslots : 1) * sizeof(*sl));
    for (size_t i = 0; sl && i < nslots; i++) {
        sl[i] = (pixel_slot){-1, 0};
    }
    return sl;
}

/* A required field without input. */
__attribute__((noinline)) static int missing(pixel_ctx *ctx, const pixel_field *f)
{
    return pixel__ctx_reason(ctx, PIXEL_STAGE_MAP, "missing_required", f->source_name,
                             "required field \"%s\" (%s) is missing", f->target, f->source_name) < 0
               ? PIXEL_ENOMEM
               : 0;
}

int pixel__map_run(const pixel_pipeline *p, pixel_ctx *ctx);
int pixel__map_run(const pixel_pipeline *p, pixel_ctx *ctx)
{
    const size_t nobj = p->nobjects;
    char *block = pixel__arena_alloc(&ctx->arena, nobj * sizeof(pixel_value *) +
                                                      (nobj + p->plan_max) * sizeof(pixel_value));
    if (!block) {
        return PIXEL_ENOMEM;
    }
    const map_line l = {(pixel_value **)(void *)block,
                        (pixel_value *)(void *)(block + nobj * sizeof(pixel_value *))};
    memset(l.objs, 0, nobj * sizeof(pixel_value *));
    l.vals[0] = (pixel_value){.type = PIXEL_TYPE_OBJECT};
    l.objs[0] = ctx->event = &l.vals[0];
    ctx->map_objs = l.objs; /* enrich.c finds the mapped objects here */
    int type = -1;
    if (p->type_field >= 0) {
        int rc = event_type(p, ctx, &type);
        if (rc != 0) {
            return rc < 0 ? rc : 0; /* nothing else can be judged without a type */
        }
    }
    /* what the conversions cannot change, kept out of memory across their calls */
    const pixel_record *r = &ctx->rec;
    /* r->slots: p->nslots of them (the query was parsed for p), or none */
    const pixel_slot *const slots =
        PIXEL_LIKELY(r->slots != NULL) ? r->slots : no_query(ctx, p->nslots);
    const pixel_param *const params = r->params;
    if (!slots) {
        return PIXEL_ENOMEM;
    }
    const size_t t = type >= 0 ? (size_t)type : p->ntypes;
    /* the type's steps, to the one that ends them */
    const pixel_map_step *step = p->plan + p->plan_start[t];
    for (pixel_value *slot = l.vals + nobj;; step++, slot++) {
        pixel_value *s = slot;
        pixel_span in;
        if (PIXEL_LIKELY(step->input == STEP_QUERY)) {
            int32_t first = slots[step->index].first;
            in = first >= 0 ? params[first].value : (pixel_span){NULL, 0};
        } else if (step->input == STEP_RECORD) {
            in = *(const pixel_span *)(const void *)((const char *)r + step->index);
        } else if (step->input == STEP_OTHER) {
            in = field_input(p, ctx, &p->fields[step->field]);
        } else {
            break; /* STEP_END */
        }
        if (!in.p) {
            if (step->required && missing(ctx, &p->fields[step->field]) < 0) {
                return PIXEL_ENOMEM;
            }
            continue;
        }
        int64_t iv;
        if ((step->kind == STEP_STRING ||
             (step->kind == STEP_RECORD_STRING && pixel__all_ascii(in.p, in.n))) &&
            in.n <= step->max_bytes) {
            /* most fields: a view of the input, as a member of its parent */
            memcpy(s, &step->head, sizeof(step->head)); /* type, key flags, key length */
            s->key = step->key;
            s->next = NULL;
            s->u.num.rawlen = 0; /* the rest of the value, as for a new one */
            s->u.str.s = in.p;
            s->u.str.len = in.n;
        } else if (step->kind == STEP_INTEGER && pixel__parse_int64(in.p, in.n, &iv) == 0) {
            memcpy(s, &step->head, sizeof(step->head));
            s->key = step->key;
            s->next = NULL;
            s->u.num.rawlen = 0;
            s->u.num.raw = NULL;
            s->u.i = iv;
        } else {
            const pixel_field *f = &p->fields[step->field];
            pixel_value *v = NULL;
            int rc = step->kind == STEP_INTEGER || step->kind == STEP_STRING ||
                             step->kind == STEP_CONVERT ||
                             (step->kind == STEP_RECORD_CONVERT && pixel__all_ascii(in.p, in.n))
                         ? step->conv(p, ctx, f, in, &v)
                         : convert_field(p, ctx, f, in, &v);
            if (rc < 0) {
                return rc;
            }
            if (rc > 0) {
                continue; /* reason recorded; keep collecting */
            }
            /* as pixel__object_add_plain, with the field's key flags */
            v->flags = (uint16_t)((v->flags & ~(PIXEL_VALUE_PLAIN_KEY | PIXEL_VALUE_FRAMED_KEY)) |
                                  PIXEL_VALUE_PLAIN_KEY | step->key_flags);
            v->key = step->key;
            v->klen = step->klen;
            v->next = NULL;
            s = v;
        }
        append_member(object_at(p, &l, step->parent), s);
    }
    return 0;
}
