/*
 * Runs a fuzz target without libFuzzer: every file of the seed corpus, then
 * deterministic mutations of each (byte flips, truncations, insertions of
 * bytes that matter to the parsers).  A crash or sanitizer report fails it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t interesting[] = {'%', '"',  '&', '=',  '+',  '[',  ']', ' ', '\\', '<',
                                      '>', '\n', 0,   0x80, 0xC3, 0xFF, '{', '}', ':',  '-'};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CORPUS_DIR MUTATIONS_PER_SEED\n", argv[0]);
        return 2;
    }
    long rounds = strtol(argv[2], NULL, 10);
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    struct dirent *e;
    unsigned long runs = 0, seeds = 0;
    uint32_t rng = 2463534242u;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            continue;
        }
        uint8_t seed[8192], buf[8192 + 64];
        size_t n = fread(seed, 1, sizeof(seed), f);
        fclose(f);
        seeds++;
        LLVMFuzzerTestOneInput(seed, n);
        runs++;
        for (long r = 0; r < rounds; r++) {
            memcpy(buf, seed, n);
            size_t m = n;
            int edits = 1 + (int)(rng % 4);
            for (int k = 0; k < edits && m > 0; k++) {
                rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
                size_t at = rng % m;
                switch ((rng >> 8) % 4) {
                    case 0: /* flip */
                        buf[at] ^= (uint8_t)(1u << ((rng >> 12) % 8));
                        break;
                    case 1: /* truncate */
                        m = at;
                        break;
                    case 2: /* replace with a byte that matters */
                        buf[at] = interesting[(rng >> 12) % sizeof(interesting)];
                        break;
                    default: /* insert */
                        if (m < sizeof(buf) - 1) {
                            memmove(buf + at + 1, buf + at, m - at);
                            buf[at] = interesting[(rng >> 12) % sizeof(interesting)];
                            m++;
                        }
                        break;
                }
            }
            LLVMFuzzerTestOneInput(buf, m);
            runs++;
        }
    }
    closedir(d);
    printf("%lu inputs from %lu seeds\n", runs, seeds);
    return seeds ? 0 : 1;
}
