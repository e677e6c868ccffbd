/*
 * The smallest complete use of libpixel: load a pipeline, convert the lines
 * of stdin, print events and quarantine records, check every return code.
 *
 *   convert_line PIPELINE.yaml < access.log
 *
 * Built against an installed libpixel:
 *
 *   cc -std=c11 -o convert_line convert_line.c $(pkg-config --cflags --libs libpixel)
 *   convert_line "$(pkg-config --variable=pkgdatadir libpixel)/examples/realestate/pipeline.yaml" \
 *       < examples/realestate/sample.log
 */
#define _POSIX_C_SOURCE 200809L /* getline(), ssize_t */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixel/pixel.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PIPELINE.yaml < LOG\n", argv[0]);
        return 2;
    }
    pixel_pipeline *p = NULL;
    pixel_error err;
    pixel_error_clear(&err);
    if (pixel_pipeline_load_file(&p, argv[1], NULL, &err) != PIXEL_OK) {
        char msg[1024];
        fprintf(stderr, "%s\n", pixel_error_format(&err, msg, sizeof(msg)));
        return 2;
    }
    pixel_ctx *ctx = pixel_ctx_new(); /* one per thread; reused for every line */
    if (!ctx) {
        pixel_pipeline_free(p);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        pixel_outcome outcome;
        if (pixel_process(p, ctx, line, (size_t)n, &outcome, &err) != PIXEL_OK) {
            char msg[1024];
            fprintf(stderr, "cannot process a line: %s\n",
                    pixel_error_format(&err, msg, sizeof(msg)));
            rc = 1;
            break;
        }
        size_t len;
        const char *json = pixel_ctx_output(ctx, p, &len); /* NULL for skipped/dropped */
        if (json) {
            printf("%s %.*s\n", pixel_outcome_str(outcome), (int)len, json);
        }
    }
    free(line);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    return rc;
}
