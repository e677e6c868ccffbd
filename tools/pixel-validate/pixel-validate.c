/*
 * pixel-validate: check JSON documents against a JSON Schema with libpixel's
 * validator (what ajv-cli or check-jsonschema are elsewhere).
 *
 *   pixel-validate -s SCHEMA [-r SCHEMA_DIR]... [--map URI_PREFIX=DIR]...
 *                  [--draft 7|2019-09|2020-12] [--assert-format] [--lines]
 *                  [--first] [--json] [--quiet] FILE...
 *
 * SCHEMA is a file, or a URI of a schema loaded with -r.  `-` reads stdin.
 * Exit status: 0 all valid, 1 some invalid, 2 bad schema, bad input or usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/version.h"

#include "pixel/pixel.h"
#include "pixel/schema.h"
#include "pixel/value.h"

typedef struct opts {
    unsigned flags;
    int json, quiet;
} opts;

typedef struct report {
    const opts *o;
    const char *file;
    long line;
    int nerr;
} report;

static void usage(FILE *f)
{
    fputs("usage: pixel-validate -s SCHEMA [-r SCHEMA_DIR]... [--map URI_PREFIX=DIR]...\n"
          "                      [--draft 7|2019-09|2020-12] [--assert-format] [--lines]\n"
          "                      [--first] [--json] [--quiet] FILE...\n"
          "Checks JSON files (JSON Lines with --lines; - is stdin) against SCHEMA.\n"
          "Exit status: 0 all valid, 1 some invalid, 2 bad schema or usage.\n"
          TOOL_VERSION_HELP,
          f);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static int print_error(const pixel_schema_error *e, void *payload)
{
    report *r = payload;
    if (r->o->quiet) {
        r->nerr++;
        return 0;
    }
    if (r->o->json) {
        printf("%s{\"instanceLocation\":", r->nerr ? "," : "");
        json_str(e->instance_location);
        printf(",\"keyword\":");
        json_str(e->keyword);
        printf(",\"keywordLocation\":");
        json_str(e->keyword_location);
        printf(",\"absoluteKeywordLocation\":");
        json_str(e->schema_location);
        printf(",\"message\":");
        json_str(e->message);
        printf("}");
    } else if (!e->keyword[0]) {
        /* not an error of the instance: the schema cannot be evaluated */
        printf("  %s\n", e->message);
    } else {
        printf("  %s: %s\n    keyword %s, schema %s\n",
               e->instance_location[0] ? e->instance_location : "(root)", e->message,
               e->keyword_location, e->schema_location);
    }
    r->nerr++;
    return 0;
}

/* Validates one document; 0 valid, 1 invalid, 2 unusable. */
static int check_doc(const pixel_schema *s, pixel_ctx *ctx, const opts *o, const char *file,
                     long line, const char *text, size_t len)
{
    pixel_error err;
    pixel_error_clear(&err);
    pixel_ctx_reset(ctx);
    pixel_value *v = pixel_json_parse(ctx, text, len, &err);
    char where[64] = "";
    if (line > 0) {
        snprintf(where, sizeof(where), ":%ld", line);
    }
    if (!v) {
        /* file:line:column, as editors take it; with --lines the line is the
         * document's line in the file (the parser saw that line alone) */
        char at[64] = "";
        long at_line = line > 0 ? line : err.line;
        if (at_line > 0 && err.column > 0) {
            snprintf(at, sizeof(at), ":%ld:%ld", at_line, err.column);
        } else if (at_line > 0) {
            snprintf(at, sizeof(at), ":%ld", at_line);
        }
        fprintf(stderr, "pixel-validate: %s%s: %s\n", file, at, err.text);
        if (o->json && !o->quiet) {
            /* one object per document, whatever it is */
            printf("{\"file\":");
            json_str(file);
            if (line > 0) {
                printf(",\"line\":%ld", line);
            }
            printf(",\"errors\":[{\"instanceLocation\":\"\",\"keyword\":\"\",\"message\":");
            json_str(err.text);
            printf("}],\"valid\":false}\n");
        }
        return 1;
    }
    report r = {o, file, line, 0};
    if (o->json && !o->quiet) {
        printf("{\"file\":");
        json_str(file);
        if (line > 0) {
            printf(",\"line\":%ld", line);
        }
        printf(",\"errors\":[");
    }
    int rc;
    if (!o->json && !o->quiet) {
        /* Text: the heading comes first, so count the errors before printing them. */
        opts counting = *o;
        counting.quiet = 1;
        report c = {&counting, file, line, 0};
        rc = pixel_schema_validate(s, v, o->flags, print_error, &c);
        if (rc > 0) {
            printf("%s%s: invalid (%d error%s)\n", file, where, c.nerr, c.nerr == 1 ? "" : "s");
            rc = pixel_schema_validate(s, v, o->flags, print_error, &r);
        } else if (rc < 0 && c.nerr) {
            /* a schema that re-enters itself says where: print that */
            printf("%s%s: cannot be validated\n", file, where);
            rc = pixel_schema_validate(s, v, o->flags, print_error, &r);
        }
    } else {
        rc = pixel_schema_validate(s, v, o->flags, print_error, &r);
    }
    if (o->json && !o->quiet) {
        printf("],\"valid\":%s}\n", rc == 0 ? "true" : "false");
    }
    if (rc < 0) {
        fprintf(stderr, "pixel-validate: %s%s: validation could not finish (%s)\n", file, where,
                pixel_status_str(rc));
        return 2;
    }
    return rc;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) {
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
        cap *= 2;
    }
    *len = n;
    return buf;
}

static int check_file(const pixel_schema *s, pixel_ctx *ctx, const opts *o, const char *path,
                      int lines)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    if (!f) {
        fprintf(stderr, "pixel-validate: %s: %s\n", path, strerror(errno));
        return 2;
    }
    int worst = 0;
    if (lines) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long no = 0;
        while ((n = getline(&line, &cap, f)) >= 0) {
            no++;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
                n--;
            }
            if (n == 0) {
                continue;
            }
            int rc = check_doc(s, ctx, o, name, no, line, (size_t)n);
            worst = rc > worst ? rc : worst;
        }
        free(line);
    } else {
        size_t len;
        char *text = read_all(f, &len);
        worst = text ? check_doc(s, ctx, o, name, 0, text, len) : 2;
        free(text);
    }
    if (f != stdin) {
        fclose(f);
    }
    return worst;
}

static int schema_fail(const pixel_error *err)
{
    char buf[1024];
    fprintf(stderr, "pixel-validate: %s", pixel_error_format(err, buf, sizeof(buf)));
    if (err->pointer[0] && !strstr(buf, err->pointer)) {
        fprintf(stderr, " (at %s)", err->pointer);
    }
    fputc('\n', stderr);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"schema", required_argument, NULL, 's'}, {"refs", required_argument, NULL, 'r'},
        {"map", required_argument, NULL, 'm'},    {"draft", required_argument, NULL, 'd'},
        {"assert-format", no_argument, NULL, 'f'}, {"lines", no_argument, NULL, 'l'},
        {"first", no_argument, NULL, '1'},        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *schema = NULL;
    const char *dirs[64], *maps[64];
    size_t ndirs = 0, nmaps = 0;
    int draft = 0, lines = 0, c;
    opts o = {0, 0, 0};
    if (tool_version_asked(argc, argv, "pixel-validate")) {
        return 0;
    }
    while ((c = getopt_long(argc, argv, "s:r:m:d:fl1jqh", longopts, NULL)) != -1) {
        switch (c) {
            case 's':
                schema = optarg;
                break;
            case 'r':
                if (ndirs < 64) {
                    dirs[ndirs++] = optarg;
                }
                break;
            case 'm':
                if (nmaps < 64 && strchr(optarg, '=')) {
                    maps[nmaps++] = optarg;
                } else {
                    fprintf(stderr, "pixel-validate: --map wants URI_PREFIX=DIR\n");
                    return 2;
                }
                break;
            case 'd':
                draft = pixel_schema_draft_parse(optarg);
                if (!draft) {
                    fprintf(stderr, "pixel-validate: unknown draft \"%s\"\n", optarg);
                    return 2;
                }
                break;
            case 'f':
                o.flags |= PIXEL_SCHEMA_ASSERT_FORMAT;
                break;
            case 'l':
                lines = 1;
                break;
            case '1':
                o.flags |= PIXEL_SCHEMA_FIRST_ERROR;
                break;
            case 'j':
                o.json = 1;
                break;
            case 'q':
                o.quiet = 1;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (!schema || optind >= argc) {
        usage(stderr);
        return 2;
    }
    pixel_error err;
    pixel_error_clear(&err);
    pixel_schema_registry *reg = NULL;
    const pixel_schema *s = NULL;
    int rc = pixel_schema_registry_new(&reg, draft, &err);
    for (size_t i = 0; rc == 0 && i < nmaps; i++) {
        char *eq = strchr(maps[i], '=');
        *eq = '\0';
        rc = pixel_schema_registry_map(reg, maps[i], eq + 1, &err);
    }
    for (size_t i = 0; rc == 0 && i < ndirs; i++) {
        rc = pixel_schema_registry_add_dir(reg, dirs[i], &err);
    }
    if (rc == 0 && ndirs > 0) {
        rc = pixel_schema_registry_check(reg, &err);
    }
    const char *uri = schema;
    char *loaded_uri = NULL;
    struct stat st;
    int stat_rc = rc == 0 ? stat(schema, &st) : 0;
    int stat_errno = errno;
    if (rc == 0 && stat_rc == 0 && S_ISREG(st.st_mode)) {
        rc = pixel_schema_registry_add_file(reg, schema, NULL, &err);
        if (rc == 0) {
            uri = pixel_schema_registry_last_uri(reg);
        } else if (rc == PIXEL_ESCHEMA && strstr(err.text, "already loaded")) {
            /* The file is also under a -r directory, so reg holds it already:
             * load it alone into a scratch registry to learn its URI, then
             * compile that URI from reg, where its references resolve. */
            pixel_schema_registry *scratch = NULL;
            pixel_error_clear(&err);
            rc = pixel_schema_registry_new(&scratch, draft, &err);
            if (rc == 0) {
                rc = pixel_schema_registry_add_file(scratch, schema, NULL, &err);
            }
            if (rc == 0) {
                loaded_uri = strdup(pixel_schema_registry_last_uri(scratch));
                if (!loaded_uri) {
                    fprintf(stderr, "pixel-validate: out of memory\n");
                    pixel_schema_registry_free(scratch);
                    pixel_schema_registry_free(reg);
                    return 2;
                }
                uri = loaded_uri;
            }
            pixel_schema_registry_free(scratch);
        }
    } else if (rc == 0 && !strchr(schema, ':')) {
        /* Not a URI (those have a scheme), so it was meant as a file. */
        fprintf(stderr, "pixel-validate: schema %s: %s\n", schema,
                stat_rc != 0 ? strerror(stat_errno) : "not a regular file");
        pixel_schema_registry_free(reg);
        return 2;
    }
    if (rc == 0) {
        rc = pixel_schema_compile(&s, reg, uri, &err);
    }
    free(loaded_uri);
    if (rc != 0) {
        schema_fail(&err);
        pixel_schema_registry_free(reg);
        return 2;
    }
    pixel_ctx *ctx = pixel_ctx_new();
    if (!ctx) {
        fprintf(stderr, "pixel-validate: out of memory\n");
        pixel_schema_registry_free(reg);
        return 2;
    }
    int worst = 0;
    for (int i = optind; i < argc; i++) {
        int r = check_file(s, ctx, &o, argv[i], lines);
        worst = r > worst ? r : worst;
    }
    pixel_ctx_free(ctx);
    pixel_schema_registry_free(reg);
    return worst;
}
