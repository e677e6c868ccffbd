/*
 * Fuzz target: untrusted YAML through pixel_delivery_config_load_string()
 * (the delivery section's reader and its checks, librdkafka's property
 * check included).  It must load or refuse with an error that says where.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pixel/delivery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pixel_delivery_config *cfg = NULL;
    pixel_error err;
    memset(&err, 0, sizeof(err));
    if (pixel_delivery_config_load_string(&cfg, (const char *)data, size, "fuzz.yaml", &err) != 0) {
        if (cfg != NULL || err.text[0] == '\0') {
            abort();
        }
        return 0;
    }
    /* what loaded reads back */
    (void)pixel_delivery_config_get(cfg, "kafka.brokers");
    (void)pixel_delivery_config_get(cfg, "spool.dir");
    pixel_delivery_config_free(cfg);
    return 0;
}
