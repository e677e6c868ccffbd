/*
 * libFuzzer target: the format checkers (date-time, email, hostname with
 * Punycode and IDNA rules, ipv6, uri, uri-template, regex, ...) on untrusted
 * strings.  The first byte picks the format; the rest is the string, made
 * valid UTF-8 first (instances always are).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pixel/schema.h"
#include "pixel_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const FORMATS[] = {
    "date-time", "date",         "time",          "duration",     "email",
    "idn-email", "hostname",     "idn-hostname",  "ipv4",         "ipv6",
    "uri",       "uri-reference", "iri",          "iri-reference", "uri-template",
    "uuid",      "json-pointer", "relative-json-pointer", "regex",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const char *fmt = FORMATS[data[0] % (sizeof(FORMATS) / sizeof(FORMATS[0]))];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    n = pixel__utf8_check(s, n); /* the valid UTF-8 prefix */
    pixel_schema_format_check(fmt, s, n);
    return 0;
}
