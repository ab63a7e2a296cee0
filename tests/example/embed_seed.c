/* embed_seed — a product that ships dsc's output: generated/seed_encoder.c
 * linked with libdscrt.a, and nothing else of dsc.
 *
 * usage: embed_seed WEIGHTS.bin TOKENS.i32 LOGITS.f32
 *   WEIGHTS.bin  the packed blob `dsc compile --weights` (or
 *                --random-weights) writes beside the C file
 *   TOKENS.i32   SEED_ENCODER_TOKENS_COUNT raw int32 token ids
 *   LOGITS.f32   where the raw float32 logits go
 * Exit status: 0, 1 for bad files, 2 when the model rejects a token, 3
 * when the weights were packed in another layout than the code expects. */
#include <stdio.h>
#include <stdlib.h>

#include "dsc_runtime.h"
#include "seed_encoder.h"


static int read_exact(const char *path, void *buf, size_t bytes)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        return -1;
    }
    size_t got = fread(buf, 1, bytes, fp);
    int extra = fgetc(fp) != EOF;
    fclose(fp);
    if (got != bytes || extra) {
        fprintf(stderr, "%s: expected exactly %zu bytes\n", path, bytes);
        return -1;
    }
    return 0;
}


int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: embed_seed WEIGHTS.bin TOKENS.i32 LOGITS.f32\n");
        return 1;
    }
    float *weights = malloc(SEED_ENCODER_WEIGHT_FLOATS * sizeof(float));
    int32_t tokens[SEED_ENCODER_TOKENS_COUNT];
    float *logits = malloc(SEED_ENCODER_LOGITS_COUNT * sizeof(float));
    void *arena = aligned_alloc(DSC_ALIGN, SEED_ENCODER_ARENA_BYTES);
    rt_ctx *ctx = rt_ctx_new(0);  /* one thread per core */
    int rc = 1;
    if (!weights || !logits || !arena || !ctx) {
        fprintf(stderr, "out of memory\n");
    } else if (read_exact(argv[1], weights,
                          SEED_ENCODER_WEIGHT_FLOATS * sizeof(float)) == 0 &&
               read_exact(argv[2], tokens, sizeof tokens) == 0) {
        int status = seed_encoder_forward(ctx, weights, tokens, logits, arena);
        if (status == DSC_EBADLAYOUT) {
            fprintf(stderr, "%s: %s\n", argv[1], rt_ctx_error(ctx));
            rc = 3;
        } else if (status != DSC_OK) {
            fprintf(stderr, "a token id is outside the vocabulary\n");
            rc = 2;
        } else {
            FILE *out = fopen(argv[3], "wb");
            rc = !out || fwrite(logits, sizeof(float), SEED_ENCODER_LOGITS_COUNT,
                                out) != SEED_ENCODER_LOGITS_COUNT;
            if (out && fclose(out) != 0)
                rc = 1;
        }
    }
    free(weights);
    free(logits);
    free(arena);
    rt_ctx_free(ctx);
    return rc;
}
