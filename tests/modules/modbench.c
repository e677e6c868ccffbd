/*
 * modbench: one thread through a pipeline, for tests/bench/modules_bench.sh.
 *
 *   modbench PIPELINE.yaml BASE_DIR CORPUS [PASSES]
 *
 * The pipeline text is loaded with BASE_DIR as its directory (so a variant
 * written elsewhere still finds the example's schemas).  The corpus is read
 * into memory first; the best of PASSES timed passes is reported as
 * "lines=N seconds=S ns_per_line=X events=E quarantined=Q skipped=K
 * dropped=D", then the modules' counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pixel/module.h"
#include "pixel/pixel.h"

#include "benchutil.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: modbench PIPELINE.yaml BASE_DIR CORPUS [PASSES]\n");
        return 2;
    }
    int passes = argc > 4 ? atoi(argv[4]) : 3;
    size_t ylen, clen;
    char *yaml = slurp(argv[1], &ylen), *corpus = slurp(argv[3], &clen);
    if (!yaml || !corpus) {
        fprintf(stderr, "modbench: cannot read %s or %s\n", argv[1], argv[3]);
        return 1;
    }
    pixel_pipeline *p = NULL;
    pixel_error err;
    char ebuf[1024];
    pixel_error_clear(&err);
    if (pixel_pipeline_load_string(&p, yaml, ylen, argv[1], argv[2], NULL, &err) < 0) {
        fprintf(stderr, "modbench: %s\n", pixel_error_format(&err, ebuf, sizeof(ebuf)));
        return 1;
    }
    pixel_ctx *ctx = pixel_ctx_new();
    double best = 1e30;
    unsigned long counts[5] = {0}, lines = 0;
    for (int pass = 0; pass < passes; pass++) {
        memset(counts, 0, sizeof(counts));
        lines = 0;
        double t0 = clock_s(CLOCK_MONOTONIC);
        for (char *s = corpus, *end = corpus + clen; s < end;) {
            char *nl = memchr(s, '\n', (size_t)(end - s));
            size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
            pixel_outcome oc;
            if (pixel_process(p, ctx, s, n, &oc, &err) < 0) {
                fprintf(stderr, "modbench: %s\n", pixel_error_format(&err, ebuf, sizeof(ebuf)));
                return 1;
            }
            counts[oc]++;
            lines++;
            s += n + 1;
        }
        double dt = clock_s(CLOCK_MONOTONIC) - t0;
        best = dt < best ? dt : best;
    }
    printf("lines=%lu seconds=%.3f ns_per_line=%.0f events=%lu quarantined=%lu skipped=%lu "
           "dropped=%lu\n",
           lines, best, best * 1e9 / (double)lines, counts[PIXEL_OUTCOME_EVENT],
           counts[PIXEL_OUTCOME_QUARANTINED], counts[PIXEL_OUTCOME_SKIPPED],
           counts[PIXEL_OUTCOME_DROPPED]);
    char stats[4096];
    pixel_pipeline_module_stats(p, stats, sizeof(stats));
    fputs(stats, stdout);
    pixel_ctx_free(ctx);
    pixel_pipeline_free(p);
    free(yaml);
    free(corpus);
    return 0;
}
