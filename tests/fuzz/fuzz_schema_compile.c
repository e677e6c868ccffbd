/*
 * libFuzzer target: a schema document from untrusted bytes.  Loads it into
 * a registry, compiles it (indexing, $ref resolution, regex translation,
 * metaschema validation, cycle check), and validates the document against
 * itself.  Nothing may crash, leak or hang.
 */
#include <stddef.h>
#include <stdint.h>

#include "pixel/schema.h"
#include "pixel_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pixel_schema_registry *reg = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    if (pixel_schema_registry_new(&reg, 0, &err) < 0) {
        return 0;
    }
    const pixel_schema *s = NULL;
    if (pixel_schema_registry_add_json(reg, "urn:fuzz:schema", (const char *)data, size, &err) == 0 &&
        pixel_schema_compile(&s, reg, "urn:fuzz:schema", &err) == 0) {
        pixel_arena a;
        pixel__arena_init(&a);
        pixel_value *v = pixel__json_parse(&a, (const char *)data, size, NULL);
        if (v) {
            pixel_schema_validate(s, v, PIXEL_SCHEMA_ASSERT_FORMAT, NULL, NULL);
        }
        pixel__arena_release(&a);
    }
    pixel_schema_registry_free(reg);
    return 0;
}
