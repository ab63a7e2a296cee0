/* embed_runtime.c — a product built on dsc's output, linked against the
 * installed runtime through pkg-config: no dsc, no Lua, no libtcc.
 *
 *   dsc compile models/seed_encoder.lua --weights w.safetensors -o gen/seed_encoder.c
 *   cc -Igen gen/seed_encoder.c examples/embed_runtime.c \
 *       $(pkg-config --cflags --libs dscrt) -o embed            # or --static
 *   echo 1 2 3 ... | ./embed gen/seed_encoder.bin logits.f32
 *
 * Reads SEED_ENCODER_TOKENS_COUNT token ids (text) from standard input,
 * runs the forward, writes the logits as raw float32 to the second
 * argument and prints the predicted token (argmax) of each position. */
#include <stdio.h>
#include <stdlib.h>

#include "dsc_runtime.h"
#include "seed_encoder.h"


static float *read_weights(const char *path)
{
    float *w = malloc(SEED_ENCODER_WEIGHT_FLOATS * sizeof(float));
    FILE *fp = fopen(path, "rb");
    size_t got = w && fp ? fread(w, sizeof(float), SEED_ENCODER_WEIGHT_FLOATS,
                                 fp) : 0;
    if (fp)
        fclose(fp);
    if (got != SEED_ENCODER_WEIGHT_FLOATS) {
        fprintf(stderr, "%s: expected %d floats of packed weights\n", path,
                SEED_ENCODER_WEIGHT_FLOATS);
        free(w);
        return NULL;
    }
    return w;
}


int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: embed WEIGHTS.bin LOGITS.f32 < tokens\n");
        return 1;
    }
    static int32_t tokens[SEED_ENCODER_TOKENS_COUNT];
    for (int i = 0; i < SEED_ENCODER_TOKENS_COUNT; i++)
        if (scanf("%d", &tokens[i]) != 1) {
            fprintf(stderr, "expected %d token ids on standard input\n",
                    SEED_ENCODER_TOKENS_COUNT);
            return 1;
        }
    float *w = read_weights(argv[1]);
    float *logits = malloc(SEED_ENCODER_LOGITS_COUNT * sizeof(float));
    void *arena = aligned_alloc(DSC_ALIGN, (SEED_ENCODER_ARENA_BYTES +
                                            DSC_ALIGN - 1) / DSC_ALIGN *
                                           DSC_ALIGN);
    rt_ctx *ctx = rt_ctx_new(0);  /* one thread per core */
    int rc = 1;
    if (!w || !logits || !arena || !ctx) {
        fprintf(stderr, "cannot start (out of memory?)\n");
    } else if (seed_encoder_forward(ctx, w, tokens, logits, arena) != DSC_OK) {
        fprintf(stderr, "a token id is outside the vocabulary\n");
    } else {
        FILE *out = fopen(argv[2], "wb");
        rc = !out || fwrite(logits, sizeof(float), SEED_ENCODER_LOGITS_COUNT,
                            out) != SEED_ENCODER_LOGITS_COUNT;
        if (out && fclose(out) != 0)
            rc = 1;
        int vocab = SEED_ENCODER_LOGITS_COUNT / SEED_ENCODER_TOKENS_COUNT;
        for (int i = 0; i < SEED_ENCODER_TOKENS_COUNT; i++) {
            const float *row = logits + (size_t)i * vocab;
            int best = 0;
            for (int v = 1; v < vocab; v++)
                best = row[v] > row[best] ? v : best;
            printf("%d%c", best, i + 1 < SEED_ENCODER_TOKENS_COUNT ? ' ' : '\n');
        }
    }
    rt_ctx_free(ctx);
    free(arena);
    free(logits);
    free(w);
    return rc;
}
