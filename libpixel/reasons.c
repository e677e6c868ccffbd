/*
 * Quarantine reasons and their stable codes.  Each code belongs to one
 * family; the families follow the categories users of other log pipelines
 * already know.  docs/quarantine-codes.md lists them all; a test checks that
 * the table and the document agree.
 */
#include <stdio.h>
#include <string.h>

#include "pixel_private.h"

static const struct {
    const char *code, *family;
} codes[] = {
    {"line_too_long", "size_violation"},         {"too_long", "size_violation"},
    {"too_many_parameters", "size_violation"},   {"bad_syslog_header", "parse_violation"},
    {"truncated_line", "parse_violation"},       {"malformed_log_record", "parse_violation"},
    {"bad_request_line", "parse_violation"},     {"bad_percent_escape", "parse_violation"},
    {"invalid_utf8", "parse_violation"},         {"repeated_parameter", "parse_violation"},
    {"missing_required", "mapping_violation"},   {"missing_event_type", "mapping_violation"},
    {"unknown_event_type", "mapping_violation"}, {"bad_integer", "mapping_violation"},
    {"bad_number", "mapping_violation"},         {"bad_boolean", "mapping_violation"},
    {"bad_timestamp", "mapping_violation"},      {"bad_base64url_json", "mapping_violation"},
    {"bad_json", "mapping_violation"},           {"bad_list", "mapping_violation"},
    {"bad_kv_list", "mapping_violation"},        {"no_schema", "schema_violation"},
    {"too_deep", "schema_violation"},
    {"enrichment_failed", "enrichment_failure"}, {"module_failed", "enrichment_failure"},
};

const char *pixel__code_family(const char *code)
{
    for (size_t i = 0; i < PIXEL_ARRAY_LEN(codes); i++) {
        if (strcmp(codes[i].code, code) == 0) {
            return codes[i].family;
        }
    }
    return "unknown";
}

/* For docs and tests: the i-th known code, NULL past the end. */
PIXEL_API const char *pixel_reason_code_at(size_t i, const char **family);
const char *pixel_reason_code_at(size_t i, const char **family)
{
    if (i >= PIXEL_ARRAY_LEN(codes)) {
        return NULL;
    }
    if (family) {
        *family = codes[i].family;
    }
    return codes[i].code;
}

int pixel__ctx_add_reason(pixel_ctx *ctx, const pixel_reason *r)
{
    ctx->outcome = PIXEL_OUTCOME_QUARANTINED;
    if (ctx->nreasons >= PIXEL_MAX_REASONS) {
        ctx->reasons_lost++;
        return 0;
    }
    ctx->reasons[ctx->nreasons++] = *r;
    return 0;
}

int pixel__ctx_reason(pixel_ctx *ctx, int stage, const char *code, const char *location,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pixel_reason r = {
        .stage = stage,
        .family = pixel__code_family(code),
        .code = code,
        .message = pixel__arena_strndup(&ctx->arena, msg, strlen(msg)),
        .location = location ? pixel__arena_strndup(&ctx->arena, location, strlen(location)) : NULL,
    };
    if (!r.message) {
        r.message = "out of memory while formatting the reason";
    }
    return pixel__ctx_add_reason(ctx, &r);
}

int pixel__ctx_drop(pixel_ctx *ctx, const char *source, const char *why)
{
    /* Not a quarantine: the reason only records who dropped the line, for counters. */
    pixel_reason r = {
        .stage = PIXEL_STAGE_ENRICH,
        .family = "dropped",
        .code = "dropped",
        .message = why ? pixel__arena_strndup(&ctx->arena, why, strlen(why)) : "dropped",
        .source = source ? pixel__arena_strndup(&ctx->arena, source, strlen(source)) : NULL,
    };
    if (!r.message) {
        r.message = "dropped";
    }
    ctx->nreasons = 0;
    ctx->reasons[ctx->nreasons++] = r;
    ctx->outcome = PIXEL_OUTCOME_DROPPED;
    return 1;
}

size_t pixel_ctx_reason_count(const pixel_ctx *ctx)
{
    return ctx ? ctx->nreasons : 0;
}

const pixel_reason *pixel_ctx_reason(const pixel_ctx *ctx, size_t i)
{
    return ctx && i < ctx->nreasons ? &ctx->reasons[i] : NULL;
}
