/* Event values, the JSON parser and serializer, and the arena. */
#include <errno.h>
#include <jansson.h>

#include "testutil.h"
#include "pixel/module.h"
#include "pixel_private.h"

unsigned long pixel_debug_alloc_count(void);

/* Strings are copied by the public constructor (the caller promises UTF-8; these are bytes). */
static pixel_value *bytes_value(pixel_ctx *ctx, const char *s, size_t n)
{
    return pixel_value_new_string(ctx, s, n);
}

START_TEST(json_round_trips_compactly)
{
    pixel_ctx *ctx = pixel_ctx_new();
    const char *in = " { \"a\" : [1, -2, 3.50, 1e400, true, false, null],\n \"b\": {\"c\": "
                     "\"x\\ty\\u00e9\\ud83d\\ude00\"} } ";
    pixel_value *v = pixel_json_parse(ctx, in, strlen(in), NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(pixel_value_type(v), PIXEL_TYPE_OBJECT);
    size_t n;
    const char *out = pixel_value_dump(ctx, v, &n);
    ck_assert_str_eq(out, "{\"a\":[1,-2,3.50,1e400,true,false,null],\"b\":{\"c\":"
                          "\"x\\ty\xc3\xa9\xf0\x9f\x98\x80\"}}");
    ck_assert_uint_eq(n, strlen(out));
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(json_rejects_bad_text_with_a_position)
{
    static const char *const bad[] = {"{\"a\":}",  "[1,]",  "\"\\x\"",  "01",
                                      "1.",        "[1] x", "\"\xff\"", "\"\\ud800\"",
                                      "{\"a\" 1}", "",      "nul",      "\"a\nb\""};
    pixel_ctx *ctx = pixel_ctx_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pixel_error err;
        pixel_error_clear(&err);
        ck_assert_msg(pixel_json_parse(ctx, bad[i], strlen(bad[i]), &err) == NULL, "accepted %s",
                      bad[i]);
        ck_assert_int_eq(err.code, PIXEL_EPARSE);
        ck_assert_int_gt(err.column, 0);
        ck_assert_ptr_nonnull(strstr(err.text, "offset"));
    }
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(json_limits_nesting)
{
    char deep[600];
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_error err;
    pixel_error_clear(&err);
    ck_assert_ptr_null(pixel_json_parse(ctx, deep, 600, &err));
    ck_assert_ptr_nonnull(strstr(err.text, "nesting"));
    ck_assert_ptr_nonnull(pixel_json_parse(ctx, deep + 100, 400, NULL)); /* 200 deep is fine */
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(big_integers_become_numbers_and_keep_their_text)
{
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *v = pixel_json_parse(ctx, "[9223372036854775807, 9223372036854775808]", 42, NULL);
    const pixel_value *a = pixel_value_first(v), *b = pixel_value_next(a);
    ck_assert_int_eq(pixel_value_type(a), PIXEL_TYPE_INT);
    ck_assert_int_eq(pixel_value_type(b), PIXEL_TYPE_NUMBER);
    ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), "[9223372036854775807,9223372036854775808]");
    /* Integers of every digit count read as strtoll reads them (up to 18
     * digits without it); -0 is the integer 0; past the range, a number. */
    const char *text = "[0,-0,7,-7,123456789012345678,-123456789012345678,999999999999999999,"
                       "1234567890123456789,-9223372036854775808,-9223372036854775809]";
    v = pixel_json_parse(ctx, text, strlen(text), NULL);
    static const long long want[] = {0,
                                     0,
                                     7,
                                     -7,
                                     123456789012345678LL,
                                     -123456789012345678LL,
                                     999999999999999999LL,
                                     1234567890123456789LL,
                                     INT64_MIN};
    const pixel_value *e = pixel_value_first(v);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++, e = pixel_value_next(e)) {
        ck_assert_int_eq(pixel_value_type(e), PIXEL_TYPE_INT);
        ck_assert_int_eq(pixel_value_int(e), want[i]);
    }
    ck_assert_int_eq(pixel_value_type(e), PIXEL_TYPE_NUMBER);
    ck_assert_str_eq(pixel_value_dump(ctx, v, NULL),
                     "[0,0,7,-7,123456789012345678,-123456789012345678,999999999999999999,"
                     "1234567890123456789,-9223372036854775808,-9223372036854775809]");
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(strings_escape_control_characters_and_quotes)
{
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *s = pixel_value_new_string(ctx, "a\"b\\c\x01\x7f\n", 8);
    ck_assert_str_eq(pixel_value_dump(ctx, s, NULL), "\"a\\\"b\\\\c\\u0001\\u007f\\n\"");
    pixel_ctx_free(ctx);
}
END_TEST

/* The word-at-a-time escaper against a byte-at-a-time reference, at every length and offset. */
static void reference_escape(const unsigned char *s, size_t n, char *out)
{
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            o += sprintf(o, "\\n");
        } else if (c == '\t') {
            o += sprintf(o, "\\t");
        } else if (c == '\r') {
            o += sprintf(o, "\\r");
        } else if (c == '\b') {
            o += sprintf(o, "\\b");
        } else if (c == '\f') {
            o += sprintf(o, "\\f");
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
}

START_TEST(escaping_matches_a_reference_at_every_length)
{
    static const unsigned char alphabet[] = {'a',  'Z',  '0',  ' ',  '"',  '\\', 0x01, 0x1f,
                                             0x7f, 0xc3, 0xa9, '\n', 0x20, 0x21, 0x5b, 0x5d};
    pixel_ctx *ctx = pixel_ctx_new();
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        unsigned char s[64];
        size_t n = (size_t)(round % 40);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly plain letters, so that the fast path gets exercised too */
            s[i] = (seed >> 16) % 4 ? (unsigned char)('a' + (seed >> 8) % 26)
                                    : alphabet[(seed >> 20) % sizeof(alphabet)];
        }
        char expect[400];
        reference_escape(s, n, expect);
        pixel_value *v = bytes_value(ctx, (const char *)s, n);
        ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), expect);
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Longer strings (the blocks of 32 and 64, and the overlapping last block;
 * as members, the check of up to 256 bytes in the member loop) against the
 * reference, with escapes from dense to none, so that blocks
 * that need nothing follow and precede blocks that do. */
START_TEST(long_strings_escape_like_the_reference)
{
    static const unsigned char alphabet[] = {'"', '\\', 0x01, 0x1f, 0x7f, 0x80, 0xff, '\n', 0x00, 0x21};
    pixel_ctx *ctx = pixel_ctx_new();
    unsigned seed = 777;
    for (int round = 0; round < 6000; round++) {
        unsigned char s[336];
        size_t n = 30 + (size_t)(round % 300);
        unsigned rarity = 1u << (round / 300 % 10); /* one special in 1 .. 512 */
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = (seed >> 12) % rarity ? (unsigned char)(0x20 + (seed >> 20) % 0x60 % 0x5f)
                                         : alphabet[(seed >> 24) % sizeof(alphabet)];
            if (s[i] == '"' && (seed >> 12) % rarity) {
                s[i] = 'q'; /* the plain draw stays plain */
            }
            if (s[i] == '\\' && (seed >> 12) % rarity) {
                s[i] = 'b';
            }
        }
        char expect[336 * 6 + 3];
        reference_escape(s, n, expect);
        pixel_value *v = bytes_value(ctx, (const char *)s, n);
        ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), expect);
        /* the same string as a member, after other output */
        pixel_value *obj = pixel_value_new_object(ctx);
        ck_assert_int_eq(pixel_object_set(ctx, obj, "k", v), 0);
        char expect_obj[336 * 6 + 16];
        snprintf(expect_obj, sizeof(expect_obj), "{\"k\":%s}", expect);
        ck_assert_str_eq(pixel_value_dump(ctx, obj, NULL), expect_obj);
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Integers at every digit count, either side of each power of ten, and the
 * extremes, as printf writes them; alone and as members (two paths). */
START_TEST(integers_print_like_printf)
{
    pixel_ctx *ctx = pixel_ctx_new();
    int64_t tens = 1;
    for (int digits = 1; digits <= 19; digits++) {
        const int64_t around[] = {tens - 1, tens, tens + 1, tens * 5 + 3, -tens, -(tens + 1)};
        for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++) {
            char expect[64], expect_obj[80];
            snprintf(expect, sizeof(expect), "%lld", (long long)around[i]);
            ck_assert_str_eq(pixel_value_dump(ctx, pixel_value_new_int(ctx, around[i]), NULL),
                             expect);
            pixel_value *obj = pixel_value_new_object(ctx);
            ck_assert_int_eq(pixel_object_set(ctx, obj, "n", pixel_value_new_int(ctx, around[i])),
                             0);
            snprintf(expect_obj, sizeof(expect_obj), "{\"n\":%s}", expect);
            ck_assert_str_eq(pixel_value_dump(ctx, obj, NULL), expect_obj);
        }
        if (digits < 19) {
            tens *= 10;
        }
    }
    ck_assert_str_eq(pixel_value_dump(ctx, pixel_value_new_int(ctx, INT64_MAX), NULL),
                     "9223372036854775807");
    ck_assert_str_eq(pixel_value_dump(ctx, pixel_value_new_int(ctx, INT64_MIN), NULL),
                     "-9223372036854775808");
    unsigned seed = 99;
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t r = (uint64_t)seed << 32;
        seed = seed * 1103515245u + 12345u;
        r |= seed;
        int64_t i = (int64_t)(r >> (round % 64)); /* every magnitude, both signs */
        char expect[64];
        snprintf(expect, sizeof(expect), "%lld", (long long)i);
        ck_assert_str_eq(pixel_value_dump(ctx, pixel_value_new_int(ctx, i), NULL), expect);
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* The same inside containers (members take another path through the
 * serializer), with empty containers and keys that need escaping. */
START_TEST(members_escape_like_the_reference_in_containers)
{
    static const unsigned char alphabet[] = {'a', '"', '\\', 0x01, 0x7f, 0xc3, 0xa9, '\n'};
    pixel_ctx *ctx = pixel_ctx_new();
    unsigned seed = 777;
    for (int round = 0; round < 400; round++) {
        pixel_value *obj = pixel_value_new_object(ctx);
        pixel_value *arr = pixel_value_new_array(ctx);
        char expect_obj[4096] = "{", expect_arr[4096] = "[";
        size_t members = (size_t)(round % 7);
        for (size_t m = 0; m < members; m++) {
            unsigned char s[64];
            size_t n = (size_t)((round * 7 + m * 13) % 40);
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                s[i] = (seed >> 16) % 5 ? (unsigned char)('a' + (seed >> 8) % 26)
                                        : alphabet[(seed >> 20) % sizeof(alphabet)];
            }
            char key[16], text[400];
            snprintf(key, sizeof(key), m == 3 ? "k\"%zu" : "key%zu", m);
            ck_assert_int_eq(pixel_object_set(ctx, obj, key, bytes_value(ctx, (const char *)s, n)),
                             0);
            ck_assert_int_eq(pixel_array_append(arr, bytes_value(ctx, (const char *)s, n)), 0);
            if (m > 0) {
                strcat(expect_obj, ",");
                strcat(expect_arr, ",");
            }
            reference_escape((const unsigned char *)key, strlen(key), text);
            strcat(expect_obj, text);
            strcat(expect_obj, ":");
            reference_escape(s, n, text);
            strcat(expect_obj, text);
            strcat(expect_arr, text);
        }
        strcat(expect_obj, "}");
        strcat(expect_arr, "]");
        ck_assert_str_eq(pixel_value_dump(ctx, obj, NULL), expect_obj);
        ck_assert_str_eq(pixel_value_dump(ctx, arr, NULL), expect_arr);
    }
    pixel_value *outer = pixel_value_new_object(ctx);
    pixel_value *inner = pixel_value_new_array(ctx);
    ck_assert_int_eq(pixel_array_append(inner, pixel_value_new_object(ctx)), 0);
    ck_assert_int_eq(pixel_array_append(inner, pixel_value_new_array(ctx)), 0);
    ck_assert_int_eq(pixel_object_set(ctx, outer, "a", inner), 0);
    ck_assert_int_eq(pixel_object_set(ctx, outer, "b", pixel_value_new_object(ctx)), 0);
    ck_assert_str_eq(pixel_value_dump(ctx, outer, NULL), "{\"a\":[{},[]],\"b\":{}}");
    pixel_ctx_free(ctx);
}
END_TEST

/* A large event grows the output buffer in the middle of members and of
 * nested containers; what comes out matches the reference all the same. */
START_TEST(large_events_serialize_across_buffer_growth)
{
    pixel_ctx *ctx = pixel_ctx_new();
    size_t cap = 1 << 20, len = 0;
    char *expect = malloc(cap), text[800];
    ck_assert_ptr_nonnull(expect);
    pixel_value *obj = pixel_value_new_object(ctx);
    expect[len++] = '{';
    unsigned seed = 31337;
    for (int i = 0; i < 3000; i++) {
        char key[128];
        snprintf(key, sizeof(key), i % 11 ? "k%d" : "a longer key with \"quotes\" %d", i);
        if (i % 7 == 3) {
            /* plain keys past the serializer's unchecked room (32 bytes) */
            snprintf(key, sizeof(key), "%d_%.*s", i, 28 + i % 70,
                     "plain_and_long_key_plain_and_long_key_plain_and_long_key_plain_and_long_key_"
                     "plain_and_long_key");
        }
        if (i) {
            expect[len++] = ',';
        }
        reference_escape((const unsigned char *)key, strlen(key), text);
        len += (size_t)sprintf(expect + len, "%s:", text);
        pixel_value *v;
        if (i % 3 == 1) {
            v = pixel_value_new_int(ctx, (int64_t)i * 1000003 - 7);
            len += (size_t)sprintf(expect + len, "%lld", (long long)((int64_t)i * 1000003 - 7));
        } else if (i % 5 == 2) {
            v = pixel_value_new_array(ctx);
            ck_assert_int_eq(pixel_array_append(v, pixel_value_new_string(ctx, "x\ty", 3)), 0);
            ck_assert_int_eq(pixel_array_append(v, pixel_value_new_int(ctx, i)), 0);
            len += (size_t)sprintf(expect + len, "[\"x\\ty\",%d]", i);
        } else {
            unsigned char str[120];
            size_t n = (size_t)(i * 7) % 120;
            for (size_t k = 0; k < n; k++) {
                seed = seed * 1103515245u + 12345u;
                str[k] = (seed >> 16) % 9 ? (unsigned char)('a' + (seed >> 8) % 26)
                                          : (unsigned char)"\"\\\n\x01"[(seed >> 20) % 4];
            }
            v = bytes_value(ctx, (const char *)str, n);
            reference_escape(str, n, text);
            len += (size_t)sprintf(expect + len, "%s", text);
        }
        ck_assert_int_eq(pixel_object_set(ctx, obj, key, v), 0);
        ck_assert_uint_lt(len, cap - 2000);
    }
    expect[len++] = '}';
    expect[len] = '\0';
    size_t n;
    const char *out = pixel_value_dump(ctx, obj, &n);
    ck_assert_uint_eq(n, len);
    ck_assert_str_eq(out, expect);
    free(expect);
    pixel_ctx_free(ctx);
}
END_TEST

/* Objects in objects at every depth (past the serializer's own stack of
 * them), next to empty ones and arrays of objects, with padding that moves
 * the closing brackets across the output buffer's growth. */
START_TEST(nested_objects_at_every_depth)
{
    char text[4096];
    for (int depth = 0; depth <= 20; depth++) {
        for (int pad = 0; pad < 300; pad += 7) {
            pixel_ctx *ctx = pixel_ctx_new();
            size_t len = 0;
            len += (size_t)sprintf(text + len, "{\"p\":\"%.*s\"", pad,
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            for (int d = 0; d < depth; d++) {
                len += (size_t)sprintf(text + len, ",\"n%d\":{\"e\":{},\"a\":[{\"o\":{\"i\":%d}},[]]", d, d);
            }
            for (int d = 0; d < depth; d++) {
                len += (size_t)sprintf(text + len, "%s}", d % 3 ? ",\"z\":\"q\\\"\"" : "");
            }
            text[len++] = '}';
            text[len] = '\0';
            pixel_value *v = pixel_json_parse(ctx, text, len, NULL);
            ck_assert_ptr_nonnull(v);
            size_t n;
            const char *out = pixel_value_dump(ctx, v, &n);
            ck_assert_str_eq(out, text);
            ck_assert_uint_eq(n, len);
            pixel_ctx_free(ctx);
        }
    }
}
END_TEST

START_TEST(integers_serialize_at_every_digit_count)
{
    pixel_ctx *ctx = pixel_ctx_new();
    char in[2048] = "[", one[32];
    int64_t x = 1;
    for (int d = 0; d < 18; d++, x *= 10) { /* up to 10^17 */
        const int64_t vals[] = {x - 1, x, x + 1, -x, -(x - 1), x * 9 + (x - 1)};
        for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
            snprintf(one, sizeof(one), "%s%lld", strlen(in) > 1 ? "," : "", (long long)vals[k]);
            strcat(in, one);
            pixel_value *v = pixel_value_new_int(ctx, vals[k]);
            snprintf(one, sizeof(one), "%lld", (long long)vals[k]);
            ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), one);
        }
    }
    strcat(in, ",999999999999999999,1000000000000000000,-1000000000000000001,"
               "9223372036854775807,-9223372036854775808]");
    pixel_value *arr = pixel_json_parse(ctx, in, strlen(in), NULL);
    ck_assert_ptr_nonnull(arr);
    ck_assert_str_eq(pixel_value_dump(ctx, arr, NULL), in);
    pixel_value *obj = pixel_value_new_object(ctx);
    ck_assert_int_eq(pixel_object_set(ctx, obj, "min", pixel_value_new_int(ctx, INT64_MIN)), 0);
    ck_assert_int_eq(pixel_object_set(ctx, obj, "z", pixel_value_new_int(ctx, 0)), 0);
    ck_assert_str_eq(pixel_value_dump(ctx, obj, NULL), "{\"min\":-9223372036854775808,\"z\":0}");
    pixel_ctx_free(ctx);
}
END_TEST

/* Keys known plain (module keys are checked on append) are written in
 * place for every length; the member text is exactly ,"key":value. */
START_TEST(plain_keys_of_every_length)
{
    pixel_ctx *ctx = pixel_ctx_new();
    for (size_t kl = 1; kl <= 40; kl++) {
        pixel_value *obj = pixel_value_new_object(ctx);
        char keys[3][48], expect[512] = "{";
        for (int m = 0; m < 3; m++) {
            for (size_t i = 0; i < kl; i++) {
                keys[m][i] = (char)('a' + (i * 5 + (size_t)m * 11 + kl) % 26);
            }
            keys[m][kl] = '\0';
            pixel_value *v = m == 1 ? pixel_value_new_int(ctx, (int64_t)kl * 1000 + m)
                                    : pixel_value_new_string(ctx, keys[m] + kl / 2, kl - kl / 2);
            ck_assert_int_eq(pixel_module_object_append(obj, keys[m], kl, v), 0);
            char one[256];
            if (m == 1) {
                snprintf(one, sizeof(one), "%s\"%s\":%zu", m ? "," : "", keys[m], kl * 1000 + 1);
            } else {
                snprintf(one, sizeof(one), "%s\"%s\":\"%s\"", m ? "," : "", keys[m],
                         keys[m] + kl / 2);
            }
            strcat(expect, one);
        }
        strcat(expect, "}");
        ck_assert_str_eq(pixel_value_dump(ctx, obj, NULL), expect);
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Member values of every length up to past two blocks, with one byte that
 * needs an escape at every position (or none): the serializer checks and
 * copies short values from the same loads, and must see every byte. */
START_TEST(member_values_escape_at_every_position)
{
    static const unsigned char bad[] = {'"', '\\', 0x01, 0x1f, 0x7f, '\n'};
    pixel_ctx *ctx = pixel_ctx_new();
    for (size_t n = 0; n <= 40; n++) {
        for (size_t at = 0; at <= n; at++) {
            unsigned char s[48];
            for (size_t i = 0; i < n; i++) {
                s[i] = (unsigned char)('a' + (i * 7 + n) % 26);
            }
            if (at < n) {
                s[at] = bad[(n + at) % sizeof(bad)];
            }
            pixel_value *obj = pixel_value_new_object(ctx);
            ck_assert_int_eq(pixel_object_set(ctx, obj, "k", bytes_value(ctx, (const char *)s, n)),
                             0);
            char text[400], expect[420];
            reference_escape(s, n, text);
            snprintf(expect, sizeof(expect), "{\"k\":%s}", text);
            ck_assert_str_eq(pixel_value_dump(ctx, obj, NULL), expect);
        }
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Strings flagged as needing no escape (PIXEL_VALUE_PLAIN_STR, as times, ids
 * and URL parts are) are copied without a look, at every length, as members,
 * elements and a root, and across the output buffer's growth. */
START_TEST(plain_flagged_strings_of_every_length)
{
    pixel_ctx *ctx = pixel_ctx_new();
    static char text[300];
    for (size_t i = 0; i < sizeof(text); i++) {
        text[i] = (char)('a' + (i * 11) % 26);
    }
    for (size_t pad = 0; pad < 1200; pad += 97) {
        pixel_value *obj = pixel_value_new_object(ctx);
        pixel_value *arr = pixel_value_new_array(ctx);
        size_t cap = 200000, len = 0;
        char *expect = malloc(cap);
        ck_assert_ptr_nonnull(expect);
        expect[len++] = '{';
        /* a first member of `pad` bytes moves the rest along the buffer */
        ck_assert_int_eq(pixel__object_add_plain(
                             obj, "p", 1, pixel__value_plain_view(&ctx->arena, text, pad % 300)),
                         0);
        len += (size_t)sprintf(expect + len, "\"p\":\"%.*s\"", (int)(pad % 300), text);
        for (size_t n = 0; n <= 260; n++) {
            pixel_value *m = pixel__value_plain_view(&ctx->arena, text + n % 7, n);
            ck_assert_int_eq(pixel__object_add_plain(obj, "key", 3, m), 0);
            len += (size_t)sprintf(expect + len, ",\"key\":\"%.*s\"", (int)n, text + n % 7);
            ck_assert_int_eq(
                pixel__object_add(arr, NULL, 0, pixel__value_plain_view(&ctx->arena, text, n)), 0);
            if (n == 17) {
                /* and once in a nested object */
                pixel_value *in = pixel_value_new_object(ctx);
                ck_assert_int_eq(pixel__object_add_plain(
                                     in, "i", 1, pixel__value_plain_view(&ctx->arena, text, 40)),
                                 0);
                ck_assert_int_eq(pixel__object_add_plain(obj, "in", 2, in), 0);
                len += (size_t)sprintf(expect + len, ",\"in\":{\"i\":\"%.40s\"}", text);
            }
        }
        expect[len++] = '}';
        expect[len] = '\0';
        size_t n;
        ck_assert_str_eq(pixel_value_dump(ctx, obj, &n), expect);
        ck_assert_uint_eq(n, len);
        len = 0;
        expect[len++] = '[';
        for (size_t k = 0; k <= 260; k++) {
            len += (size_t)sprintf(expect + len, "%s\"%.*s\"", k ? "," : "", (int)k, text);
        }
        expect[len++] = ']';
        expect[len] = '\0';
        ck_assert_str_eq(pixel_value_dump(ctx, arr, NULL), expect);
        for (size_t k = 0; k <= 260; k += 13) {
            pixel_value *root = pixel__value_plain_view(&ctx->arena, text, k);
            snprintf(expect, cap, "\"%.*s\"", (int)k, text);
            ck_assert_str_eq(pixel_value_dump(ctx, root, NULL), expect);
        }
        free(expect);
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Strings and JSON texts whose last byte is the last of mapped memory
 * (guard_page.h): the serializer's and the parser's block loads must stop at
 * the end.  Each output is compared with the one of a copy that has room
 * after it. */
START_TEST(strings_and_json_texts_at_a_page_end)
{
    pixel_ctx *ctx = pixel_ctx_new();
    enum { TEXT = 300 };
    char text[TEXT];
    for (int kind = 0; kind < 4; kind++) {
        for (size_t i = 0; i < TEXT; i++) {
            text[i] = (char)('a' + (i * 7) % 26);
        }
        if (kind == 1) {
            text[TEXT - 1] = '"'; /* an escape in the last byte */
        } else if (kind == 2) {
            for (size_t i = 0; i < TEXT; i += 37) {
                text[i] = '\n'; /* escapes scattered */
            }
        } else if (kind == 3) {
            memcpy(text + TEXT - 2, "\xc3\xa9", 2); /* UTF-8 at the end */
        }
        for (size_t n = 0; n <= TEXT; n++) {
            const char *tail = text + TEXT - n;
            if (kind == 3 && n == 1) {
                continue; /* half a character: not UTF-8 */
            }
            for (int plain = 0; plain < 2; plain++) {
                if (plain && kind != 0) {
                    continue; /* only text that needs no escape may be flagged */
                }
                pixel_value *vals[2];
                char *dumps[2];
                for (int g = 0; g < 2; g++) {
                    const char *s = g ? guard_copy(tail, n) : tail;
                    pixel_value *obj = pixel_value_new_object(ctx);
                    pixel_value *v = plain ? pixel__value_plain_view(&ctx->arena, s, n)
                                           : pixel__value_string_view(&ctx->arena, s, n);
                    pixel_value *w = plain ? pixel__value_plain_view(&ctx->arena, s, n)
                                           : pixel__value_string_view(&ctx->arena, s, n);
                    ck_assert_int_eq(pixel__object_add_plain(obj, "k", 1, v), 0);
                    ck_assert_int_eq(pixel__object_add_plain(obj, "z", 1, w), 0);
                    vals[g] = obj;
                    dumps[g] = strdup(pixel_value_dump(ctx, obj, NULL));
                    /* the string as the root */
                    pixel_value *r = plain ? pixel__value_plain_view(&ctx->arena, s, n)
                                           : pixel__value_string_view(&ctx->arena, s, n);
                    ck_assert_ptr_nonnull(pixel_value_dump(ctx, r, NULL));
                }
                ck_assert_str_eq(dumps[1], dumps[0]);
                (void)vals;
                /* the dump parsed back from the end of mapped memory */
                size_t dn = strlen(dumps[0]);
                pixel_value *back = pixel_json_parse(ctx, guard_copy(dumps[0], dn), dn, NULL);
                ck_assert_ptr_nonnull(back);
                ck_assert_str_eq(pixel_value_dump(ctx, back, NULL), dumps[0]);
                if (n % 17 == 0) {
                    /* cut anywhere (inside a string, an escape, a key): refused */
                    for (size_t cut = 0; cut < dn; cut++) {
                        ck_assert_ptr_null(
                            pixel_json_parse(ctx, guard_copy(dumps[0], cut), cut, NULL));
                    }
                }
                /* and the string alone as the text (its closing quote the last byte) */
                const char *sv = strchr(dumps[0], ':') + 1;
                size_t sn = (size_t)(strchr(dumps[0], ',') - sv);
                pixel_value *one = pixel_json_parse(ctx, guard_copy(sv, sn), sn, NULL);
                ck_assert_ptr_nonnull(one);
                char *want = strndup(sv, sn);
                ck_assert_str_eq(pixel_value_dump(ctx, one, NULL), want);
                free(want);
                free(dumps[0]);
                free(dumps[1]);
            }
            pixel_ctx_reset(ctx);
        }
    }
    /* numbers and literals that end the text */
    static const char *const ends[] = {"0", "-1", "1234567890123", "9223372036854775807",
                                       "9223372036854775808", "3.14159", "1e400", "-0.5e-3",
                                       "true", "false", "null", "[1,2,3]", "{\"a\":{\"b\":[]}}"};
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(ends); i++) {
        size_t n = strlen(ends[i]);
        pixel_value *v = pixel_json_parse(ctx, guard_copy(ends[i], n), n, NULL);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), ends[i]);
        /* cut short: refused, never read past the end */
        for (size_t cut = 0; cut < n; cut++) {
            pixel_json_parse(ctx, guard_copy(ends[i], cut), cut, NULL);
        }
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Strings of 0 to 40 bytes with one special byte at every position, as the
 * last value of a text that ends at the end of mapped memory: escapes are
 * decoded, UTF-8 and DEL kept, raw control characters, bad UTF-8 and a
 * missing closing quote refused, and plain text is a view of the input. */
START_TEST(parsed_strings_with_a_special_byte_at_every_position)
{
    pixel_ctx *ctx = pixel_ctx_new();
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } sp[] = {
        {"", ""},           {"\\n", "\n"},  {"\\\"", "\""},      {"\\u00e9", "\xc3\xa9"},
        {"\xc3\xa9", "\xc3\xa9"}, {"\x7f", "\x7f"}, {"\x01", NULL}, {"\xff", NULL},
        {"\xc3", NULL},
    };
    char text[128], want[128];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t k = 0; k < sizeof(sp) / sizeof(sp[0]); k++) {
            for (size_t at = 0; at <= n; at++) {
                /* {"key":"<at bytes><special><n - at bytes>"} */
                size_t t = 0, w = 0;
                t += (size_t)sprintf(text, "{\"key\":\"");
                for (size_t i = 0; i < n; i++) {
                    if (i == at) {
                        t += (size_t)sprintf(text + t, "%s", sp[k].in);
                        w += (size_t)sprintf(want + w, "%s", sp[k].out ? sp[k].out : "");
                    }
                    text[t++] = want[w++] = (char)('a' + i % 26);
                }
                if (at == n) {
                    t += (size_t)sprintf(text + t, "%s", sp[k].in);
                    w += (size_t)sprintf(want + w, "%s", sp[k].out ? sp[k].out : "");
                }
                memcpy(text + t, "\"}", 2);
                t += 2;
                const char *g = guard_copy(text, t);
                pixel_error err = {0};
                pixel_value *v = pixel_json_parse(ctx, g, t, &err);
                if (!sp[k].out) {
                    ck_assert_msg(v == NULL, "accepted %.*s", (int)t, text);
                    ck_assert_int_eq(err.code, PIXEL_EPARSE);
                    continue;
                }
                ck_assert_msg(v != NULL, "refused %.*s", (int)t, text);
                size_t len = 0;
                const char *s = pixel_value_string(pixel_object_get(v, "key"), &len);
                ck_assert_uint_eq(len, w);
                ck_assert(memcmp(s, want, w) == 0);
                if (sp[k].in == sp[k].out || !strchr(sp[k].in, '\\')) {
                    ck_assert_ptr_eq(s, g + 8); /* no escape: a view of the input */
                }
                /* without its closing quote */
                ck_assert_ptr_null(pixel_json_parse(ctx, guard_copy(text, t - 2), t - 2, NULL));
            }
        }
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Numbers of 1 to 20 digits, both signs, with and without a fraction or an
 * exponent, as the last bytes of mapped memory: integers that fit int64 are
 * INT with strtoll's value, the rest NUMBER with their text; leading zeros
 * and bare signs are refused. */
START_TEST(parsed_numbers_of_every_digit_count)
{
    pixel_ctx *ctx = pixel_ctx_new();
    static const char *const tails[] = {"", ".5", "e3", "E-2", ".25e+1"};
    char text[64];
    for (size_t n = 1; n <= 20; n++) {
        for (int neg = 0; neg <= 1; neg++) {
            for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
                for (int first = 1; first <= 9; first += 8) {
                    size_t len = 0;
                    if (neg) {
                        text[len++] = '-';
                    }
                    for (size_t i = 0; i < n; i++) {
                        text[len++] = (char)('0' + (i == 0 ? first : (int)((i * 7) % 10)));
                    }
                    len += (size_t)sprintf(text + len, "%s", tails[t]);
                    pixel_value *v = pixel_json_parse(ctx, guard_copy(text, len), len, NULL);
                    ck_assert_msg(v != NULL, "refused %.*s", (int)len, text);
                    text[len] = '\0';
                    errno = 0;
                    long long want = strtoll(text, NULL, 10);
                    if (t == 0 && errno == 0) {
                        ck_assert_int_eq(pixel_value_type(v), PIXEL_TYPE_INT);
                        ck_assert_int_eq(pixel_value_int(v), want);
                    } else {
                        ck_assert_int_eq(pixel_value_type(v), PIXEL_TYPE_NUMBER);
                        ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), text);
                    }
                    /* in an array, followed by more */
                    char arr[80];
                    int an = snprintf(arr, sizeof(arr), "[%s,1]", text);
                    v = pixel_json_parse(ctx, guard_copy(arr, (size_t)an), (size_t)an, NULL);
                    ck_assert_ptr_nonnull(v);
                    ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), arr);
                }
            }
        }
    }
    static const char *const bad[] = {"01", "-01", "-", "00", "1.", "1e", "-a", "1.e3", "[01]", "[1x]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]);
        ck_assert_msg(pixel_json_parse(ctx, guard_copy(bad[i], len), len, NULL) == NULL,
                      "accepted %s", bad[i]);
    }
    pixel_value *z = pixel_json_parse(ctx, "[0,-0,7]", 8, NULL);
    ck_assert_ptr_nonnull(z);
    ck_assert_str_eq(pixel_value_dump(ctx, z, NULL), "[0,0,7]");
    pixel_ctx_free(ctx);
}
END_TEST

/* Numbers kept as their literal (fractions, exponents, big integers) of 3
 * to 60 bytes, as members of objects and elements of arrays at every
 * offset of a growing buffer: written back exactly as they came. */
START_TEST(raw_numbers_of_every_length_serialize_as_they_came)
{
    pixel_ctx *ctx = pixel_ctx_new();
    char num[64], text[512];
    for (size_t n = 3; n <= 60; n++) {
        /* 1.<digits>, -<digits>e<exp> and 2^64-like integers */
        for (int form = 0; form < 3; form++) {
            if (form == 1 && n < 4) {
                continue; /* no digit before the exponent */
            }
            size_t k = 0;
            if (form == 0) {
                num[k++] = '1';
                num[k++] = '.';
            } else if (form == 1) {
                num[k++] = '-';
            }
            while (k < n - (form == 1 ? 2 : 0)) {
                num[k] = (char)('1' + k % 9);
                k++;
            }
            if (form == 1) {
                num[k++] = 'e';
                num[k++] = '7';
            }
            num[k] = '\0';
            if (form == 2 && n < 20) {
                continue; /* an INT, not a literal */
            }
            for (size_t pad = 0; pad < 40; pad += 13) {
                int t = snprintf(text, sizeof(text), "{\"%.*s\":%s,\"b\":[%s,%s],\"c\":{\"d\":%s}}",
                                 (int)pad + 1, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", num,
                                 num, num, num);
                pixel_value *v = pixel_json_parse(ctx, text, (size_t)t, NULL);
                ck_assert_msg(v != NULL, "refused %s", text);
                ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), text);
            }
        }
    }
    pixel_ctx_free(ctx);
}
END_TEST

/* Member names not known plain (parsed ones) of 0 to 40 bytes with an
 * escape at every position, or none: written back as they came, whatever
 * the buffer offset. */
START_TEST(parsed_names_escape_at_every_position)
{
    pixel_ctx *ctx = pixel_ctx_new();
    static const char *const esc[] = {"", "\\\"", "\\\\", "\\n", "\\u0001", "\\u007f", "\xc3\xa9"};
    char name[128], text[512];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t e = 0; e < sizeof(esc) / sizeof(esc[0]); e++) {
            for (size_t at = 0; at <= n; at++) {
                size_t k = 0;
                for (size_t i = 0; i <= n; i++) {
                    if (i == at) {
                        k += (size_t)sprintf(name + k, "%s", esc[e]);
                    }
                    if (i < n) {
                        name[k++] = (char)('a' + i % 26);
                    }
                }
                name[k] = '\0';
                int t = snprintf(text, sizeof(text), "{\"%s\":\"v\",\"x\":{\"%s\":1,\"y\":[]}}", name,
                                 name);
                pixel_value *v = pixel_json_parse(ctx, text, (size_t)t, NULL);
                ck_assert_msg(v != NULL, "refused %s", text);
                ck_assert_str_eq(pixel_value_dump(ctx, v, NULL), text);
            }
        }
    }
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(paths_set_get_and_remove_keep_order)
{
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *root = pixel_value_new_object(ctx);
    ck_assert_int_eq(pixel_value_set_at(ctx, root, "a.b", pixel_value_new_int(ctx, 1)), 0);
    ck_assert_int_eq(pixel_value_set_at(ctx, root, "c", pixel_value_new_bool(ctx, 1)), 0);
    ck_assert_int_eq(pixel_value_set_at(ctx, root, "a.d", pixel_value_new_string(ctx, "x", 1)), 0);
    ck_assert_int_eq(pixel_value_set_at(ctx, root, "a.b", pixel_value_new_number(ctx, 2.5)), 0);
    ck_assert_str_eq(pixel_value_dump(ctx, root, NULL),
                     "{\"a\":{\"b\":2.5,\"d\":\"x\"},\"c\":true}");
    ck_assert_double_eq(pixel_value_number(pixel_value_at(root, "a.b")), 2.5);
    ck_assert_int_eq(pixel_value_remove_at(root, "a.b"), 1);
    ck_assert_int_eq(pixel_value_remove_at(root, "a.b"), 0);
    ck_assert_int_eq(pixel_value_remove_at(root, "c"), 1);
    ck_assert_str_eq(pixel_value_dump(ctx, root, NULL), "{\"a\":{\"d\":\"x\"}}");
    ck_assert_uint_eq(pixel_value_size(root), 1);
    pixel_ctx_free(ctx);
}
END_TEST

/* A compiled path finds members by name at every length: names past
 * sixteen bytes are compared a word at a time, the last word overlapping;
 * names that differ only in their middle word or their last byte are other
 * members. */
START_TEST(compiled_paths_find_long_member_names)
{
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *root = pixel_value_new_object(ctx);
    static const char *const names[] = {"abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyZ",
                                        "abcdefghiJklmnopqrstuvwxyz", "abcdefghijklmnopq",
                                        "abcdefghijklmnop"};
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(names); i++) {
        char path[64];
        snprintf(path, sizeof(path), "%s.leaf_name_of_twenty_four", names[i]);
        ck_assert_int_eq(pixel_value_set_at(ctx, root, path, pixel_value_new_int(ctx, (int64_t)i)),
                         0);
    }
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(names); i++) {
        char path[64];
        snprintf(path, sizeof(path), "%s.leaf_name_of_twenty_four", names[i]);
        pixel_module_path *mp = pixel_module_path_new(path);
        ck_assert_ptr_nonnull(mp);
        pixel_value *v = pixel_module_path_get(root, mp);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(pixel_value_int(v), (int64_t)i);
        pixel_module_path_free(mp);
        snprintf(path, sizeof(path), "%s.leaf_name_of_twenty_fouR", names[i]);
        mp = pixel_module_path_new(path);
        ck_assert_ptr_null(pixel_module_path_get(root, mp));
        pixel_module_path_free(mp);
    }
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(equality_follows_json_schema)
{
    pixel_ctx *ctx = pixel_ctx_new();
    pixel_value *a = pixel_json_parse(ctx, "{\"x\":1,\"y\":[1.0,\"s\"]}", 21, NULL);
    pixel_value *b = pixel_json_parse(ctx, "{\"y\":[1,\"s\"],\"x\":1.0}", 21, NULL);
    pixel_value *c = pixel_json_parse(ctx, "{\"y\":[1,\"t\"],\"x\":1}", 19, NULL);
    ck_assert(pixel_value_equal(a, b));
    ck_assert(!pixel_value_equal(a, c));
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(jansson_copy_matches)
{
    pixel_ctx *ctx = pixel_ctx_new();
    const char *in = "{\"a\":[1,2.5,\"x\",null,true],\"b\":{}}";
    pixel_value *v = pixel_json_parse(ctx, in, strlen(in), NULL);
    json_t *j = pixel_value_to_jansson(v);
    ck_assert_ptr_nonnull(j);
    char *dumped = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_str_eq(dumped, "{\"a\":[1,2.5,\"x\",null,true],\"b\":{}}");
    free(dumped);
    json_decref(j);
    pixel_ctx_free(ctx);
}
END_TEST

START_TEST(arena_reuse_allocates_nothing_in_steady_state)
{
    pixel_ctx *ctx = pixel_ctx_new();
    for (int round = 0; round < 3; round++) {
        unsigned long before = pixel_debug_alloc_count();
        for (int i = 0; i < 1000; i++) {
            pixel_ctx_reset(ctx);
            pixel_value *o = pixel_value_new_object(ctx);
            for (int k = 0; k < 50; k++) {
                char key[16];
                snprintf(key, sizeof(key), "k%d", k);
                pixel_object_set(ctx, o, key, pixel_value_new_string(ctx, "value", 5));
            }
            ck_assert_ptr_nonnull(pixel_value_dump(ctx, o, NULL));
        }
        if (round > 0) {
            ck_assert_uint_eq(pixel_debug_alloc_count(), before);
        }
    }
    pixel_ctx_free(ctx);
}
END_TEST

static Suite *value_suite(void)
{
    Suite *s = suite_create("value");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, json_round_trips_compactly);
    tcase_add_test(tc, nested_objects_at_every_depth);
    tcase_add_test(tc, json_rejects_bad_text_with_a_position);
    tcase_add_test(tc, json_limits_nesting);
    tcase_add_test(tc, big_integers_become_numbers_and_keep_their_text);
    tcase_add_test(tc, strings_escape_control_characters_and_quotes);
    tcase_add_test(tc, escaping_matches_a_reference_at_every_length);
    tcase_add_test(tc, long_strings_escape_like_the_reference);
    tcase_add_test(tc, integers_print_like_printf);
    tcase_add_test(tc, members_escape_like_the_reference_in_containers);
    tcase_add_test(tc, integers_serialize_at_every_digit_count);
    tcase_add_test(tc, large_events_serialize_across_buffer_growth);
    suite_add_tcase(s, tc);
    tc = tcase_create("tree");
    tcase_add_test(tc, plain_keys_of_every_length);
    tcase_add_test(tc, member_values_escape_at_every_position);
    tcase_add_test(tc, plain_flagged_strings_of_every_length);
    tcase_add_test(tc, parsed_strings_with_a_special_byte_at_every_position);
    tcase_add_test(tc, parsed_numbers_of_every_digit_count);
    tcase_add_test(tc, raw_numbers_of_every_length_serialize_as_they_came);
    tcase_add_test(tc, parsed_names_escape_at_every_position);
    tcase_add_test(tc, paths_set_get_and_remove_keep_order);
    tcase_add_test(tc, compiled_paths_find_long_member_names);
    tcase_add_test(tc, strings_and_json_texts_at_a_page_end);
    tcase_add_test(tc, equality_follows_json_schema);
    tcase_add_test(tc, jansson_copy_matches);
    tcase_add_test(tc, arena_reuse_allocates_nothing_in_steady_state);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(value_suite());
}
