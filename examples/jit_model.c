/* jit_model.c — the C API (dsc.h): compile a Lua model file in-process
 * with libtcc and run it, as `dsc run` does.
 *
 *   cc examples/jit_model.c $(pkg-config --cflags --libs dsc) -o jit_model
 *   ./jit_model models/seed_encoder.lua -D d_model=64 --weights w.safetensors \
 *       < tokens.txt > logits.txt
 *
 * Every argument after the model file is a dsc option (-D, --weights,
 * --threads, --aot, -fno-...).  Reads the first input's elements as text
 * from standard input and prints every output, one number a line. */
#include <stdio.h>
#include <stdlib.h>

#include "dsc.h"


static int64_t count_of(const dsc_tensor_info *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}


int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: jit_model MODEL.lua [dsc options] < input\n");
        return 1;
    }
    char err[DSC_ERROR_SIZE];
    /* argv ends with NULL: exactly the options list dsc_compile_file takes. */
    dsc_model *m = dsc_compile_file(argv[1], (const char *const *)argv + 2,
                                    err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    fputs(dsc_model_notes(m), stderr);
    if (dsc_input_count(m) != 1 || dsc_output_count(m) < 1) {
        fprintf(stderr, "jit_model: one input, please\n");
        dsc_model_free(m);
        return 1;
    }
    const dsc_tensor_info *in = dsc_input(m, 0);
    int n_out = dsc_output_count(m);
    int64_t n_in = count_of(in);
    void *input = malloc((size_t)n_in * 4);
    void **outputs = calloc((size_t)n_out, sizeof *outputs);
    int rc = 1;
    for (int64_t i = 0; input && i < n_in; i++) {
        int ok = in->dtype == DSC_INT32
            ? scanf("%d", (int32_t *)input + i) == 1
            : scanf("%f", (float *)input + i) == 1;
        if (!ok) {
            fprintf(stderr, "jit_model: expected %lld values of input '%s'\n",
                    (long long)n_in, in->name);
            goto done;
        }
    }
    for (int k = 0; outputs && k < n_out; k++)
        if (!(outputs[k] = malloc((size_t)count_of(dsc_output(m, k)) * 4)))
            goto done;
    dsc_context *c = dsc_context_new(m, err, sizeof err);
    const void *inputs[] = { input };
    if (!c) {
        fprintf(stderr, "%s\n", err);
    } else if (dsc_run(c, inputs, outputs) != 0) {
        fprintf(stderr, "%s\n", dsc_context_error(c));
    } else {
        for (int k = 0; k < n_out; k++)
            for (int64_t i = 0; i < count_of(dsc_output(m, k)); i++)
                printf("%.9g\n", ((float *)outputs[k])[i]);
        rc = 0;
    }
    dsc_context_free(c);
done:
    for (int k = 0; outputs && k < n_out; k++)
        free(outputs[k]);
    free(outputs);
    free(input);
    dsc_model_free(m);
    return rc;
}
