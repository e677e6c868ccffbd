/* The pipeline's validate stage (placeholder while the validator lands). */
#include "schema_private.h"

struct pixel_validator {
    int unused;
};

int pixel__validator_load(pixel_validator **out, pixel_cfg *c, const yaml_node_t *section)
{
    PIXEL_UNUSED(section);
    *out = NULL;
    return pixel__cfg_fail(c, NULL, "validate: not implemented yet");
}

void pixel__validator_free(pixel_validator *v)
{
    pixel__free(v);
}

int pixel__validator_check(const pixel_validator *v, pixel_ctx *ctx, const pixel_value *event,
                           const char *event_type, size_t event_type_len, pixel_error *err)
{
    PIXEL_UNUSED(v);
    PIXEL_UNUSED(ctx);
    PIXEL_UNUSED(event);
    PIXEL_UNUSED(event_type);
    PIXEL_UNUSED(event_type_len);
    PIXEL_UNUSED(err);
    return 0;
}
