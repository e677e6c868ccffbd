/*
 * libFuzzer target: the ECMA-262 -> PCRE2 pattern translation, the simple
 * matcher and PCRE2 on untrusted patterns and subjects.  Input: pattern,
 * a NUL byte, subject.  Where the one-pass matcher (or its DFA) applies,
 * its verdict must be PCRE2's, on the subject and on its last 47 prefixes (valid
 * UTF-8 ones), both as this CPU runs it and with the portable table steps:
 * a difference aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <stdlib.h>

#include "pixel/schema.h"
#include "pixel_private.h"
#include "validate/schema_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nul = memchr(in, 0, size);
    size_t plen = nul ? (size_t)(nul - in) : size;
    const char *subj = nul ? nul + 1 : "";
    size_t slen = nul ? size - plen - 1 : 0;
    plen = pixel__utf8_check(in, plen);
    slen = pixel__utf8_check(subj, slen);
    pixel_buf b = {0};
    /* {"pattern": "<pattern>"} */
    if (pixel__buf_append(&b, "{\"pattern\":", 11) < 0 || pixel__json_escape(&b, in, plen) < 0 ||
        pixel__buf_append(&b, "}", 1) < 0) {
        pixel__buf_free(&b);
        return 0;
    }
    pixel_arena a;
    pixel__arena_init(&a);
    sregex re;
    char why[160];
    /* the same pattern for the table steps that every CPU runs (where this
       one steps small DFAs by byte shuffles, re uses those) */
    sregex flat;
    pixel__regex_portable = true;
    int flat_ok = pixel__regex_compile(&flat, &a, in, plen, why, sizeof(why)) == 0;
    pixel__regex_portable = false;
    if (pixel__regex_compile(&re, &a, in, plen, why, sizeof(why)) == 0) {
        if (re.prog) {
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(re.code, NULL);
            if (md) {
                /* the subject and its shorter valid prefixes (the vector run test's
                   blocks end at every length) */
                for (size_t n = slen, k = 0; k < 48; n--, k++) {
                    if (pixel__utf8_check(subj, n) == n) {
                        int want = pixel__regex_search_pcre2(&re, md, subj, n);
                        if (want >= 0 && pixel__regex_onepass(re.prog, subj, n) != want) {
                            abort(); /* the one-pass matcher disagrees with PCRE2 */
                        }
                        if (want >= 0 && flat_ok && flat.prog &&
                            pixel__regex_onepass(flat.prog, subj, n) != want) {
                            abort(); /* so do its table steps */
                        }
                    }
                    if (n == 0) {
                        break;
                    }
                }
                pcre2_match_data_free(md);
            }
        }
        pcre2_code_free(re.code);
    }
    if (flat_ok) {
        pcre2_code_free(flat.code);
    }
    pixel__arena_release(&a);
    pixel_schema_registry *reg = NULL;
    const pixel_schema *s = NULL;
    if (pixel_schema_registry_new(&reg, 0, NULL) == 0 &&
        pixel_schema_registry_add_json(reg, "urn:fuzz:p", b.data, b.len, NULL) == 0 &&
        pixel_schema_compile(&s, reg, "urn:fuzz:p", NULL) == 0) {
        pixel_value v;
        memset(&v, 0, sizeof(v));
        v.type = PIXEL_TYPE_STRING;
        v.u.str.s = subj;
        v.u.str.len = slen;
        pixel_schema_validate(s, &v, 0, NULL, NULL);
    }
    pixel_schema_registry_free(reg);
    pixel__buf_free(&b);
    return 0;
}
