/*
 * hello: the smallest useful interceptor module, built out of tree.
 *
 * Writes "<greeting>, <user id>" into the event (or "<greeting>, stranger"
 * when the event has no user id), and drops events whose user id is in
 * `ignore`.  It uses only <pixel/module.h>: the event API, the config
 * getters and the result codes.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <stdlib.h>
#include <string.h>

#include <pixel/module.h>

typedef struct hello_ctx {
    char *greeting, *into, *from;
    char **ignore;
    size_t nignore;
} hello_ctx;

static const pixel_module_option options[] = {
    {"greeting", PIXEL_OPT_STRING, "hello", "the word to greet with", 0},
    {"from", PIXEL_OPT_STRING, "user.id", "event field with the name to greet", 0},
    {"into", PIXEL_OPT_STRING, "hello", "event field to write the greeting to", 0},
    {"ignore", PIXEL_OPT_LIST, NULL, "user ids whose events are dropped", 0},
    {NULL, 0, NULL, NULL, 0},
};

static void destroy(void *instance)
{
    hello_ctx *h = instance;
    if (!h) {
        return;
    }
    for (size_t i = 0; i < h->nignore; i++) {
        free(h->ignore[i]);
    }
    free(h->ignore);
    free(h->greeting);
    free(h->into);
    free(h->from);
    free(h);
}

static int create(void **instance, const pixel_module_config *cfg, pixel_error *err)
{
    hello_ctx *h = calloc(1, sizeof(*h));
    if (!h) {
        return PIXEL_ENOMEM;
    }
    *instance = h; /* destroy() is called on it if we fail below */
    const char *greeting = pixel_module_config_string(cfg, "greeting");
    if (greeting[0] == '\0') {
        return pixel_module_config_error(cfg, err, "greeting", "the greeting is empty");
    }
    h->greeting = strdup(greeting);
    h->into = strdup(pixel_module_config_string(cfg, "into"));
    h->from = strdup(pixel_module_config_string(cfg, "from"));
    size_t n = pixel_module_config_list_size(cfg, "ignore");
    h->ignore = calloc(n ? n : 1, sizeof(char *));
    if (!h->greeting || !h->into || !h->from || !h->ignore) {
        return PIXEL_ENOMEM;
    }
    for (; h->nignore < n; h->nignore++) {
        if (!(h->ignore[h->nignore] = strdup(pixel_module_config_list_item(cfg, "ignore",
                                                                           h->nignore)))) {
            return PIXEL_ENOMEM;
        }
    }
    return 0;
}

static int process(void *instance, pixel_module_event *ev, pixel_error *err)
{
    hello_ctx *h = instance;
    (void)err;
    size_t n = 0;
    const char *who = pixel_value_string(pixel_value_at(ev->event, h->from), &n);
    for (size_t i = 0; who && i < h->nignore; i++) {
        if (strlen(h->ignore[i]) == n && memcmp(h->ignore[i], who, n) == 0) {
            ev->message = "an ignored user";
            return PIXEL_MODULE_DROP;
        }
    }
    /* Strings in events are not NUL-terminated: print with a length. */
    const char *text = who ? pixel_module_printf(ev->ctx, "%s, %.*s", h->greeting, (int)n, who)
                           : pixel_module_printf(ev->ctx, "%s, stranger", h->greeting);
    pixel_value *v = text ? pixel_value_new_string(ev->ctx, text, strlen(text)) : NULL;
    if (!v || pixel_value_set_at(ev->ctx, ev->event, h->into, v) < 0) {
        return PIXEL_ENOMEM;
    }
    return PIXEL_MODULE_CONTINUE;
}

/* Instances are not shared between threads: libpixel makes one per context. */
static const pixel_module hello_module = {
    PIXEL_MODULE_HEADER,
    .threading = PIXEL_MODULE_PER_THREAD,
    .name = "hello",
    .version = "1.0.0",
    .description = "greets the user of each event (an out-of-tree example)",
    .options = options,
    .create = create,
    .process = process,
    .destroy = destroy,
};

PIXEL_MODULE_DEFINE(hello_module)
