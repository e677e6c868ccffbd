/*
 * pixel_error handling.  The first error set wins: a failure deep down
 * describes the cause; callers further up must not overwrite it with a
 * vaguer one.
 */
#include <stdio.h>
#include <string.h>

#include "pixel_private.h"

void pixel_error_clear(pixel_error *err)
{
    if (err) {
        memset(err, 0, sizeof(*err));
    }
}

int pixel__error_vset(pixel_error *err, int code, int stage, const char *fmt, va_list ap)
{
    if (err && err->code == 0 && err->text[0] == '\0') {
        err->code = code;
        err->stage = stage;
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
    }
    return code;
}

int pixel__error_set(pixel_error *err, int code, int stage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pixel__error_vset(err, code, stage, fmt, ap);
    va_end(ap);
    return code;
}

void pixel__error_at(pixel_error *err, const char *source, long line, long column)
{
    if (!err) {
        return;
    }
    if (source && err->source[0] == '\0') {
        snprintf(err->source, sizeof(err->source), "%s", source);
    }
    if (line > 0 && err->line == 0) {
        err->line = line;
        err->column = column;
    }
}

const char *pixel_error_format(const pixel_error *err, char *buf, size_t size)
{
    if (!buf || size == 0) {
        return buf;
    }
    buf[0] = '\0';
    if (!err) {
        return buf;
    }
    size_t n = 0;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        int k_ = snprintf(buf + n, size - n, __VA_ARGS__);                                         \
        if (k_ > 0) {                                                                              \
            n = (size_t)k_ < size - n ? n + (size_t)k_ : size - 1;                                 \
        }                                                                                          \
    } while (0)
    if (err->source[0]) {
        APPEND("%s:", err->source);
    }
    if (err->line > 0) {
        APPEND("%ld:%ld:", err->line, err->column);
    }
    if (err->pointer[0]) {
        APPEND(" at %s:", err->pointer);
    }
    APPEND("%s%s", n ? " " : "", err->text[0] ? err->text : pixel_status_str(err->code));
#undef APPEND
    return buf;
}

const char *pixel_version(void)
{
    return PIXEL_VERSION_STRING;
}

const char *pixel_status_str(int status)
{
    switch (status) {
        case PIXEL_OK:
            return "success";
        case PIXEL_ERROR:
            return "error";
        case PIXEL_ENOMEM:
            return "out of memory";
        case PIXEL_ECONFIG:
            return "invalid configuration";
        case PIXEL_EIO:
            return "input/output error";
        case PIXEL_EVERSION:
            return "unsupported version";
        case PIXEL_ESCHEMA:
            return "invalid schema";
        case PIXEL_EINVAL:
            return "invalid argument";
        case PIXEL_EPARSE:
            return "parse error";
        default:
            return "unknown status";
    }
}

const char *pixel_stage_str(int stage)
{
    static const char *const names[] = {"none",     "parse",     "map", "enrich",
                                        "validate", "serialize", "load"};
    return stage >= 0 && (size_t)stage < PIXEL_ARRAY_LEN(names) ? names[stage] : "unknown";
}

const char *pixel_outcome_str(int outcome)
{
    static const char *const names[] = {"pending", "event", "quarantined", "skipped", "dropped"};
    return outcome >= 0 && (size_t)outcome < PIXEL_ARRAY_LEN(names) ? names[outcome] : "unknown";
}
