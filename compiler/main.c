/* main.c — the dsc command line: compile, run. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "build.h"
#include "dsc_runtime.h"
#include "emit_c.h"
#include "emit_dot.h"
#include "fileio.h"
#include "runner.h"
#include "sample.h"
#include "timing.h"
#include "npy.h"
#include "safetensors.h"

#define MAX_DEFINES 64
#define MAX_BINDINGS 16
#define MAX_IO 64       /* graph inputs and outputs a run can feed */

static const char usage_text[] =
"usage: dsc <command> [options]\n"
"\n"
"dsc compiles a Transformer described in Lua into straight-line C.\n"
"\n"
"commands:\n"
"  compile MODEL.lua   write NAME.c and NAME.h (and a weight blob)\n"
"  run MODEL.lua       compile, load (libtcc JIT, or --aot) and run once\n"
"  graph MODEL.lua     draw the op graph for Graphviz (dot -Tsvg)\n"
"  bench MODEL.lua     time the forward; one JSON line of figures\n"
"  generate MODEL.lua  continue a prompt with a decoder (models/gpt2.lua)\n"
"  help [COMMAND]      show help for a command\n"
"\n"
"options for all:\n"
"  -D KEY=VALUE        override a config default of the model (repeatable)\n"
"  -fno-fuse-qkv       keep linears that read one tensor apart\n"
"  -fno-fuse-epilogue  keep activations and residual adds as their own ops\n"
"  -fno-dce            keep nodes no output needs\n"
"  -fno-plan-memory    give every tensor its own arena region\n"
"  -v                  print each pass and what it changed\n"
"\n"
"compile options:\n"
"  -o FILE.c           the C file to write (default NAME.c); NAME.h goes\n"
"                      beside it\n"
"  --weights W         also write the packed weight blob FILE.bin from the\n"
"                      safetensors file W\n"
"  --random-weights    write FILE.bin with random weights (see --seed)\n"
"  --stats-json FILE   write what the passes did and made as JSON\n"
"\n"
"  --argmax            print the most likely token per row of each output\n"
"\n"
"generate options:\n"
"  --prompt IDS        the prompt's token ids: 464,2068,318\n"
"  -n N                tokens to generate (default 32)\n"
"  --temperature T     sample at temperature T (default 0: greedy argmax)\n"
"  --top-k K           sample among the K most likely tokens only\n"
"  --top-p P           sample among the smallest set with mass P\n"
"  --weights, --seed, --threads, --aot as for run; ids go to stdout,\n"
"  prefill and decode speed to stderr\n"
"\n"
"bench options:\n"
"  --runs N            timed forwards after a warm-up (default 20)\n"
"  -n N                a decoder: one-token steps after an 8-token prompt\n"
"                      (default 64); reports tokens/s and the bandwidth bound\n"
"  --weights, --seed, --threads, --aot as for run\n"
"\n"
"graph options:\n"
"  -o FILE.dot         write there instead of to standard output\n"
"  --after-passes      draw the graph the passes leave\n"
"\n"
"run options:\n"
"  --weights W         weights from a safetensors file (default: random)\n"
"  --seed N            seed for random weights and inputs (default 0)\n"
"  --input NAME=F.npy  an input from a .npy file (default: random)\n"
"  --output NAME=F.npy write an output to a .npy file\n"
"  --aot               build with the system C compiler ($CC, default cc)\n"
"                      into a shared object instead of the JIT\n"
"  --threads N         threads for the kernels (default: $DSC_NUM_THREADS,\n"
"                      else one per core)\n"
"\n"
"  dsc --version       print the version\n";

typedef struct binding {
    const char *name;
    const char *path;
} binding;

typedef struct cli {
    const char *command;
    const char *model_path;
    frontend_define defines[MAX_DEFINES];
    int n_defines;
    const char *out_path;
    const char *weights_path;
    int random_weights;
    uint64_t seed;
    binding inputs[MAX_BINDINGS], outputs[MAX_BINDINGS];
    int n_inputs, n_outputs;
    int aot;
    int no_fuse_qkv, no_fuse_epilogue, no_dce, no_plan_memory;
    int verbose;
    int threads;       /* run: 0 = DSC_NUM_THREADS, else one per core */
    int argmax;        /* run: print the argmax of each output row */
    const char *prompt;       /* generate */
    long long new_tokens;
    int new_tokens_given;
    double temperature, top_p;
    long long top_k;
    int runs;          /* bench */
    const char *stats_path;
    int after_passes;  /* graph: draw the graph the passes leave */
} cli;


static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "dsc: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see dsc --help)\n");
    return 1;
}


/* "NAME=VALUE" split in place (the argument strings are ours). */
static int split_pair(char *arg, const char **name, const char **value)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return -1;
    *eq = '\0';
    *name = arg;
    *value = eq + 1;
    return 0;
}


/* A whole number in [lo, hi] for option opt; 1 with a message if not. */
static int parse_count(const char *opt, const char *text, long long lo,
                       long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "dsc: error: %s expects a whole number from %lld to "
                "%lld, got '%s'\n(see dsc --help)\n", opt, lo, hi,
                text ? text : "");
        return 1;
    }
    *out = v;
    return 0;
}


static int parse_args(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
    c->new_tokens = 32;
    c->top_p = 1.0;
    c->command = argv[1];
    for (int i = 2; i < argc; i++) {
        char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;  /* the option consumed the next argument */
        if (strcmp(a, "-D") == 0 || strncmp(a, "-D", 2) == 0) {
            char *pair = a[2] ? a + 2 : (char *)next;
            takes = a[2] ? 0 : 1;
            if (!pair)
                return usage_error("%s needs KEY=VALUE", a);
            if (c->n_defines == MAX_DEFINES)
                return usage_error("too many -D options (at most %s)", "64");
            frontend_define *d = &c->defines[c->n_defines++];
            if (split_pair(pair, &d->key, &d->value))
                return usage_error("-D expects KEY=VALUE, got '%s'", pair);
        } else if (strcmp(a, "-o") == 0) {
            c->out_path = next;
        } else if (strcmp(a, "--threads") == 0) {
            long long v;
            if (parse_count(a, next, 1, 1024, &v))
                return 1;
            c->threads = (int)v;
        } else if (strcmp(a, "--runs") == 0) {
            long long v;
            if (parse_count(a, next, 1, 1000000, &v))
                return 1;
            c->runs = (int)v;
        } else if (strcmp(a, "-n") == 0) {
            if (parse_count(a, next, 1, 100000000, &c->new_tokens))
                return 1;
            c->new_tokens_given = 1;
        } else if (strcmp(a, "--top-k") == 0) {
            if (parse_count(a, next, 0, 100000000, &c->top_k))
                return 1;
        } else if (strcmp(a, "--prompt") == 0) {
            c->prompt = next;
        } else if (strcmp(a, "--temperature") == 0 ||
                   strcmp(a, "--top-p") == 0) {
            char *end;
            double v = next ? strtod(next, &end) : -1;
            int top_p = strcmp(a, "--top-p") == 0;
            if (!next || !*next || *end || !(v >= 0) || v > 1000 ||
                (top_p && (v <= 0 || v > 1)))
                return usage_error(top_p ? "--top-p expects a number in "
                                   "(0, 1], got '%s'" : "--temperature "
                                   "expects a number >= 0, got '%s'",
                                   next ? next : "");
            *(top_p ? &c->top_p : &c->temperature) = v;
        } else if (strcmp(a, "--stats-json") == 0) {
            c->stats_path = next;
        } else if (strcmp(a, "--weights") == 0) {
            c->weights_path = next;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            if (!next)
                return usage_error("%s needs a value", a);
            errno = 0;
            c->seed = strtoull(next, &end, 10);
            if (!*next || *end || errno || next[0] == '-')
                return usage_error("--seed expects a non-negative integer, "
                                   "got '%s'", next);
        } else if (strcmp(a, "--input") == 0 || strcmp(a, "--output") == 0) {
            int in = a[2] == 'i';
            binding *b = in ? &c->inputs[c->n_inputs] : &c->outputs[c->n_outputs];
            if (!next)
                return usage_error("%s needs NAME=FILE.npy", a);
            if ((in ? c->n_inputs : c->n_outputs) == MAX_BINDINGS)
                return usage_error("too many %s options", a);
            if (split_pair((char *)next, &b->name, &b->path) || !*b->path)
                return usage_error("expected NAME=FILE.npy, got '%s'", next);
            *(in ? &c->n_inputs : &c->n_outputs) += 1;
        } else {
            takes = 0;
            if (strcmp(a, "--random-weights") == 0)
                c->random_weights = 1;
            else if (strcmp(a, "--aot") == 0)
                c->aot = 1;
            else if (strcmp(a, "-fno-plan-memory") == 0)
                c->no_plan_memory = 1;
            else if (strcmp(a, "-fno-fuse-qkv") == 0)
                c->no_fuse_qkv = 1;
            else if (strcmp(a, "-fno-fuse-epilogue") == 0)
                c->no_fuse_epilogue = 1;
            else if (strcmp(a, "-fno-dce") == 0)
                c->no_dce = 1;
            else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
                c->verbose = 1;
            else if (strcmp(a, "--after-passes") == 0)
                c->after_passes = 1;
            else if (strcmp(a, "--argmax") == 0)
                c->argmax = 1;
            else if (a[0] == '-' && a[1])
                return usage_error("unknown option '%s'", a);
            else if (c->model_path)
                return usage_error("unexpected argument '%s' (one model file "
                                   "at a time)", a);
            else
                c->model_path = a;
        }
        if (takes) {
            if (!next)
                return usage_error("%s needs a value", a);
            i++;
        }
    }
    if (!c->model_path)
        return usage_error("%s: no model file given", c->command);
    return 0;
}


static build_options options_of(const cli *c)
{
    return (build_options){
        .defines = c->defines, .n_defines = c->n_defines,
        .no_fuse_qkv = c->no_fuse_qkv, .no_fuse_epilogue = c->no_fuse_epilogue,
        .no_dce = c->no_dce, .no_plan_memory = c->no_plan_memory,
        .verbose = c->verbose ? stderr : NULL,
    };
}


static void print_err(const dsc_err *e)
{
    fprintf(stderr, "%s\n", e->msg);
}


/* Replace a trailing ".c" (or append) with ext. */
static char *with_extension(const char *path, const char *ext)
{
    size_t n = strlen(path);
    if (n > 2 && strcmp(path + n - 2, ".c") == 0)
        n -= 2;
    char *p = malloc(n + strlen(ext) + 1);
    if (p) {
        memcpy(p, path, n);
        strcpy(p + n, ext);
    }
    return p;
}


/* --threads, else DSC_NUM_THREADS, else 0 (one per core); -1 if bad. */
static int thread_count(const cli *c)
{
    const char *env = getenv("DSC_NUM_THREADS");
    if (c->threads || !env || !*env)
        return c->threads;
    char *end;
    long v = strtol(env, &end, 10);
    if (*end || v < 1 || v > 1024) {
        fprintf(stderr, "dsc: error: DSC_NUM_THREADS must be a count from 1 "
                "to 1024, got '%s'\n", env);
        return -1;
    }
    return (int)v;
}


static int cmd_bench(const cli *c)
{
    build_options opts = options_of(c);
    built_model b;
    dsc_err err;
    int threads = thread_count(c);
    if (threads < 0)
        return 1;
    double t0 = timing_now_ms();
    if (build_model(c->model_path, &opts, &b, &err)) {
        print_err(&err);
        return 1;
    }
    bench_options bo = { .weights_path = c->weights_path, .seed = c->seed,
                         .runs = c->runs ? c->runs : 20, .threads = threads,
                         .aot = c->aot, .build_ms = timing_now_ms() - t0,
                         .new_tokens = c->new_tokens_given ? c->new_tokens
                                                           : 64 };
    int rc = bench_model(&b, &bo, stdout, &err);
    if (rc)
        print_err(&err);
    built_model_free(&b);
    return rc ? 1 : 0;
}


static int cmd_graph(const cli *c)
{
    build_options opts = options_of(c);
    built_model b = {0};
    model *m = NULL;
    dsc_err err;
    if (c->after_passes ? build_model(c->model_path, &opts, &b, &err)
                        : !(m = frontend_load(c->model_path, c->defines,
                                              c->n_defines, NULL, &err))) {
        print_err(&err);
        return 1;
    }
    const model *shown = c->after_passes ? b.model : m;
    char *dot = emit_dot(shown, c->after_passes ? b.passes : "");
    int rc = 0;
    if (!dot) {
        fprintf(stderr, "dsc: error: out of memory drawing the graph\n");
        rc = 1;
    } else if (c->out_path) {
        if ((rc = file_write_atomic(c->out_path, dot, strlen(dot), &err) != 0))
            print_err(&err);
    } else {
        fputs(dot, stdout);
    }
    free(dot);
    model_free(m);
    if (c->after_passes)
        built_model_free(&b);
    return rc;
}


static int cmd_compile(const cli *c)
{
    build_options opts = options_of(c);
    built_model b;
    dsc_err err;
    if (c->n_inputs || c->n_outputs || c->aot)
        return usage_error("%s", "compile takes no --input, --output or "
                           "--aot (those are for run)");
    if (c->random_weights && c->weights_path)
        return usage_error("%s", "--weights and --random-weights exclude "
                           "each other");
    if (build_model(c->model_path, &opts, &b, &err)) {
        print_err(&err);
        return 1;
    }
    char *c_path = c->out_path ? with_extension(c->out_path, ".c")
                               : with_extension(b.model->name, ".c");
    char *h_path = with_extension(c_path, ".h");
    char *bin_path = with_extension(c_path, ".bin");
    int want_blob = c->weights_path || c->random_weights;
    float *blob = want_blob
        ? weights_make_blob(b.model->graph, &b.weights, c->weights_path,
                            c->seed, stderr, &err)
        : NULL;
    int rc = 1;
    char stats[1024];
    build_stats_json(&b, stats, sizeof stats - 1);
    strcat(stats, "\n");
    if (want_blob && !blob) {
        print_err(&err);
    } else if ((c->stats_path &&
                file_write_atomic(c->stats_path, stats, strlen(stats), &err)) ||
               file_write_atomic(h_path, b.header, strlen(b.header), &err) ||
               file_write_atomic(c_path, b.source, strlen(b.source), &err) ||
               (want_blob &&
                file_write_atomic(bin_path, blob, (size_t)b.weights.total_floats
                                  * sizeof(float), &err))) {
        print_err(&err);
        if (c->stats_path)  /* all or nothing */
            remove(c->stats_path);
        remove(h_path);
        remove(c_path);
    } else {
        fprintf(stderr, "dsc: wrote %s and %s%s%s\n", c_path, h_path,
                want_blob ? " and " : "", want_blob ? bin_path : "");
        rc = 0;
    }
    free(blob);
    free(c_path);
    free(h_path);
    free(bin_path);
    built_model_free(&b);
    return rc;
}


/* Copy a .npy array's elements into buf as the graph input's dtype.  Ids
 * beyond int32 become -1, so the forward reports them as bad tokens. */
static void convert_input(void *buf, const npy_array *a)
{
    for (int64_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case NPY_I32: ((int32_t *)buf)[i] = ((int32_t *)a->data)[i]; break;
        case NPY_I64: {
            int64_t v = ((int64_t *)a->data)[i];
            ((int32_t *)buf)[i] = v < INT32_MIN || v > INT32_MAX ? -1
                                                                 : (int32_t)v;
            break;
        }
        case NPY_F32: ((float *)buf)[i] = ((float *)a->data)[i]; break;
        case NPY_F64: ((float *)buf)[i] = (float)((double *)a->data)[i]; break;
        }
    }
}


/* Fill one graph input: from its --input file (checked against the graph's
 * shape and dtype), or random.  For a decoder's token input the file may
 * hold 1..context tokens; *tokens gets how many (random: up to 16). */
static void *make_input(const graph *g, int t, const cli *c, uint64_t *rng,
                        int64_t *tokens, dsc_err *err)
{
    const graph_tensor *x = &g->tensors[t];
    int64_t n = graph_shape_count(&x->shape);
    void *buf = malloc((size_t)n * 4);
    if (!buf) {
        err_set(err, "error: out of memory for input '%s'", x->name);
        return NULL;
    }
    if (x->dynamic)
        *tokens = x->shape.dim[0] < 16 ? x->shape.dim[0] : 16;
    const char *path = NULL;
    for (int i = 0; i < c->n_inputs; i++)
        if (strcmp(c->inputs[i].name, x->name) == 0)
            path = c->inputs[i].path;
    if (!path) {
        runner_random_input(g, t, buf, n, rng);
        return buf;
    }
    npy_array a;
    char want[96], got[96];
    if (npy_read(path, &a, err)) {
        free(buf);
        return NULL;
    }
    graph_shape shape = { .rank = a.rank };
    for (int i = 0; i < a.rank && i < GRAPH_MAX_RANK; i++)
        shape.dim[i] = a.shape[i];
    /* A decoder's input may be shorter than the context along dim 0. */
    graph_shape full = shape;
    int shorter = x->dynamic && a.rank == x->shape.rank && a.shape[0] >= 1 &&
                  a.shape[0] <= x->shape.dim[0];
    if (shorter)
        full.dim[0] = x->shape.dim[0];
    int ok = x->dtype == GRAPH_I32
        ? (a.dtype == NPY_I32 || a.dtype == NPY_I64)
        : (a.dtype == NPY_F32 || a.dtype == NPY_F64);
    if (!ok)
        err_set(err, "%s: error: input '%s' must be %s, the file holds %s",
                path, x->name, x->dtype == GRAPH_I32 ? "int32 or int64"
                : "float32 or float64", npy_dtype_name(a.dtype));
    else if (a.rank > GRAPH_MAX_RANK ||
             !graph_shape_equal(&full, &x->shape)) {
        err_set(err, "%s: error: input '%s' is %s in the file but the model "
                "expects %s%s", path, x->name,
                graph_shape_str(&shape, got, sizeof got),
                graph_shape_str(&x->shape, want, sizeof want),
                x->dynamic ? " (or fewer tokens)" : "");
        ok = 0;
    }
    if (ok) {
        convert_input(buf, &a);
        if (x->dynamic)
            *tokens = a.shape[0];
    }
    npy_free(&a);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}


/* After DSC_EBADTOKEN: name the first bad id and where it is. */
static void report_bad_token(const graph *g, const cli *c, void *const *io,
                             int64_t tokens, const char *source)
{
    int k = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INPUT)
            continue;
        const int32_t *ids = io[k++];
        int64_t vocab = graph_token_vocab(g, t);
        if (x->dtype != GRAPH_I32 || !vocab)
            continue;
        int64_t count = graph_shape_count(&x->shape);
        if (x->dynamic)  /* only the first `tokens` rows were given */
            count = count / x->shape.dim[0] * tokens;
        for (int64_t i = 0; i < count; i++) {
            if (ids[i] >= 0 && ids[i] < vocab)
                continue;
            const char *path = source;
            for (int j = 0; j < c->n_inputs; j++)
                if (strcmp(c->inputs[j].name, x->name) == 0)
                    path = c->inputs[j].path;
            char pos[128];
            int at = 0;
            int64_t rest = i;
            int64_t idx[GRAPH_MAX_RANK];
            for (int d = x->shape.rank - 1; d >= 0; d--) {
                idx[d] = rest % x->shape.dim[d];
                rest /= x->shape.dim[d];
            }
            for (int d = 0; d < x->shape.rank; d++)
                at += snprintf(pos + at, sizeof pos - (size_t)at, "%s%lld",
                               d ? ", " : "", (long long)idx[d]);
            fprintf(stderr, "%s: error: %s[%s] = %d is not a token id in "
                    "[0, %lld)\n", path, x->name, pos, (int)ids[i],
                    (long long)vocab);
            return;
        }
    }
    fprintf(stderr, "dsc: error: the model rejected a token id\n");
}


static void print_summary(const graph_tensor *x, const float *v)
{
    int64_t n = graph_shape_count(&x->shape);
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        sq += (double)v[i] * v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    double mean = sum / (double)n;
    char shape[96];
    printf("%s %s: mean %.6g std %.6g min %.6g max %.6g\n  first:", x->name,
           graph_shape_str(&x->shape, shape, sizeof shape), mean,
           sqrt(fmax(sq / (double)n - mean * mean, 0)), lo, hi);
    for (int64_t i = 0; i < n && i < 8; i++)
        printf(" %.6g", v[i]);
    printf("%s\n", n > 8 ? " ..." : "");
}


/* Every graph input and output named on the command line exists. */
static int check_bindings(const graph *g, const cli *c)
{
    for (int i = 0; i < c->n_inputs + c->n_outputs; i++) {
        const binding *bd = i < c->n_inputs ? &c->inputs[i]
                                            : &c->outputs[i - c->n_inputs];
        graph_kind want = i < c->n_inputs ? GRAPH_INPUT : GRAPH_OUTPUT;
        int found = 0;
        for (int t = 0; t < g->n_tensors; t++)
            found |= g->tensors[t].kind == want &&
                     strcmp(g->tensors[t].name, bd->name) == 0;
        if (!found) {
            fprintf(stderr, "dsc: error: the model has no %s named '%s' (it "
                    "has:", want == GRAPH_INPUT ? "input" : "output",
                    bd->name);
            for (int t = 0; t < g->n_tensors; t++)
                if (g->tensors[t].kind == want)
                    fprintf(stderr, " %s", g->tensors[t].name);
            fprintf(stderr, ")\n");
            return -1;
        }
    }
    return 0;
}


/* The argmax over the last dimension of an output, one line per row of
 * its second-to-last dimension: the seed's predicted_tokens. */
static void print_argmax(const graph_tensor *x, const float *v)
{
    int64_t last = x->shape.dim[x->shape.rank - 1];
    int64_t per_line = x->shape.rank >= 3 ? x->shape.dim[x->shape.rank - 2] : 1;
    int64_t rows = graph_shape_count(&x->shape) / last;
    graph_shape s = x->shape;
    s.rank--;
    char shape[96];
    printf("argmax %s %s:\n", x->name, graph_shape_str(&s, shape, sizeof shape));
    for (int64_t r = 0; r < rows; r++)
        printf("%s%lld%s", r % per_line ? " " : "  ",
               (long long)sample_argmax(v + r * last, last),
               (r + 1) % per_line ? "" : "\n");
}


static int cmd_run(const cli *c)
{
    build_options opts = options_of(c);
    built_model b;
    runner r = {0};
    dsc_err err;
    int rc = 1;
    if (c->random_weights || c->out_path)
        return usage_error("%s", "run takes no -o or --random-weights (those "
                           "are for compile)");
    int threads = thread_count(c);
    if (threads < 0)
        return 1;
    double t0 = timing_now_ms();
    if (build_model(c->model_path, &opts, &b, &err)) {
        print_err(&err);
        return 1;
    }
    const graph *g = b.model->graph;
    void *io[MAX_IO + 1] = {0};
    int n_io = 0, first_output = 0;
    int64_t tokens = 1;
    if (check_bindings(g, c))
        goto done;
    if (graph_count_kind(g, GRAPH_INPUT) + graph_count_kind(g, GRAPH_OUTPUT) >
        MAX_IO) {
        fprintf(stderr, "%s: error: more than %d inputs and outputs\n",
                c->model_path, MAX_IO);
        goto done;
    }
    uint64_t rng = c->seed ^ 0x5eedULL;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT &&
            !(io[n_io++] = make_input(g, t, c, &rng, &tokens, &err))) {
            print_err(&err);
            goto done;
        }
    first_output = n_io;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT &&
            !(io[n_io++] = calloc((size_t)graph_shape_count(
                 &g->tensors[t].shape), sizeof(float)))) {
            fprintf(stderr, "dsc: error: out of memory for outputs\n");
            goto done;
        }
    runner_options ro = { .weights_path = c->weights_path, .seed = c->seed,
                          .threads = threads, .aot = c->aot,
                          .notes = stderr };
    double t1 = timing_now_ms();
    if (runner_open(&r, &b, &ro, &err)) {
        print_err(&err);
        goto done;
    }
    double t2 = timing_now_ms();
    int status = runner_call(&r, io, n_io, tokens, 0);
    double t3 = timing_now_ms();
    if (status == DSC_EBADTOKEN) {
        report_bad_token(g, c, io, tokens, "input");
        goto done;
    } else if (status != DSC_OK) {
        fprintf(stderr, "dsc: error: the model returned status %d\n", status);
        goto done;
    }

    for (int i = 0; i < c->n_outputs; i++) {
        int k = first_output;
        for (int t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind != GRAPH_OUTPUT)
                continue;
            if (strcmp(x->name, c->outputs[i].name) == 0 &&
                npy_write(c->outputs[i].path, NPY_F32, x->shape.rank,
                          x->shape.dim, io[k], &err)) {
                print_err(&err);
                goto done;
            }
            k++;
        }
    }
    printf("%s (%s): %s weights, %s inputs", b.model->path,
           c->aot ? "aot" : "jit", c->weights_path ? c->weights_path : "random",
           c->n_inputs ? "given" : "random");
    if (r.decoder)
        printf(", %lld tokens", (long long)tokens);
    printf("\n");
    int k = first_output;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT) {
            if (c->argmax)
                print_argmax(&g->tensors[t], io[k]);
            else
                print_summary(&g->tensors[t], io[k]);
            k++;
        }
    printf("build %.1f ms, %s %.1f ms, forward %.3f ms on %d thread%s\n",
           t1 - t0, c->aot ? "cc" : "tcc", r.load_ms, t3 - t2,
           rt_ctx_threads(r.ctx), rt_ctx_threads(r.ctx) > 1 ? "s" : "");
    rc = 0;
done:
    for (int i = 0; i < n_io; i++)
        free(io[i]);
    runner_close(&r);
    built_model_free(&b);
    return rc;
}


/* "464,2068,318" into ids; -1 with a message when malformed. */
static int parse_prompt(const char *text, int32_t **ids, int64_t *n)
{
    int64_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    if (!(*ids = malloc((size_t)count * sizeof(int32_t))))
        return -1;
    const char *p = text;
    for (int64_t i = 0; i < count; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end != ',' && *end != '\0')) {
            fprintf(stderr, "dsc: error: --prompt expects token ids like "
                    "464,2068,318; got '%s'\n", text);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[i] = (int32_t)v;
        p = end + 1;
    }
    *n = count;
    return 0;
}


static int cmd_generate(const cli *c)
{
    build_options opts = options_of(c);
    built_model b;
    runner r = {0};
    dsc_err err;
    int32_t *prompt = NULL;
    int64_t n_prompt = 0;
    float *logits = NULL;
    void *scratch = NULL;
    int rc = 1;
    int threads = thread_count(c);
    if (threads < 0)
        return 1;
    if (!c->prompt)
        return usage_error("%s", "generate needs --prompt IDS (e.g. "
                           "--prompt 464,2068,318)");
    if (parse_prompt(c->prompt, &prompt, &n_prompt))
        return 1;
    if (build_model(c->model_path, &opts, &b, &err)) {
        print_err(&err);
        free(prompt);
        return 1;
    }
    const graph *g = b.model->graph;
    int64_t context = 0, vocab = 0;
    int out = -1;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT)
            out = t;
    if (!emit_is_decoder(g, &context) || graph_count_kind(g, GRAPH_INPUT) != 1 ||
        graph_count_kind(g, GRAPH_OUTPUT) != 1) {
        fprintf(stderr, "%s: error: generate needs a decoder: one token input "
                "with {dynamic = true} and one logits output\n", b.model->path);
        goto done;
    }
    vocab = g->tensors[out].shape.dim[g->tensors[out].shape.rank - 1];
    if (n_prompt + c->new_tokens > context) {
        fprintf(stderr, "dsc: error: the prompt's %lld tokens and -n %lld "
                "exceed the model's context of %lld\n", (long long)n_prompt,
                (long long)c->new_tokens, (long long)context);
        goto done;
    }
    runner_options ro = { .weights_path = c->weights_path, .seed = c->seed,
                          .threads = threads, .aot = c->aot,
                          .notes = stderr };
    if (!(logits = malloc((size_t)vocab * sizeof(float))) ||
        !(scratch = malloc(sample_scratch_bytes(vocab)))) {
        fprintf(stderr, "dsc: error: out of memory\n");
        goto done;
    }
    if (runner_open(&r, &b, &ro, &err)) {
        print_err(&err);
        goto done;
    }
    sample_options so = { .temperature = c->temperature, .top_k = c->top_k,
                          .top_p = c->top_p };
    uint64_t rng = c->seed;
    void *io[3] = { prompt, logits, NULL };
    double t0 = timing_now_ms();
    int status = runner_call(&r, io, 2, n_prompt, 0);
    double t1 = timing_now_ms(), t2 = t1;
    for (int64_t i = 0; status == DSC_OK && i < c->new_tokens; i++) {
        int32_t next = (int32_t)sample_next(logits, vocab, &so, &rng, scratch);
        printf("%s%d", i ? "," : "", next);
        fflush(stdout);
        if (i + 1 == c->new_tokens)
            break;
        io[0] = &next;
        status = runner_call(&r, io, 2, 1, n_prompt + i);
        t2 = timing_now_ms();
    }
    printf("\n");
    if (status == DSC_EBADTOKEN) {
        io[0] = prompt;
        report_bad_token(g, c, io, n_prompt, "--prompt");
        goto done;
    } else if (status != DSC_OK) {
        fprintf(stderr, "dsc: error: the model returned status %d\n", status);
        goto done;
    }
    int64_t decoded = c->new_tokens > 1 ? c->new_tokens - 1 : 0;
    fprintf(stderr, "prefill: %lld tokens in %.2f ms (%.1f tokens/s); "
            "decode: %lld tokens in %.2f ms (%.1f tokens/s); %d thread%s, %s\n",
            (long long)n_prompt, t1 - t0, n_prompt / ((t1 - t0) / 1e3),
            (long long)decoded, t2 - t1,
            decoded ? decoded / ((t2 - t1) / 1e3) : 0.0,
            rt_ctx_threads(r.ctx), rt_ctx_threads(r.ctx) > 1 ? "s" : "",
            c->aot ? "aot" : "jit");
    rc = 0;
done:
    free(prompt);
    free(logits);
    free(scratch);
    runner_close(&r);
    built_model_free(&b);
    return rc;
}


int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dsc %s\n", DSC_VERSION);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
    if (strcmp(argv[1], "compile") && strcmp(argv[1], "run") &&
        strcmp(argv[1], "graph") && strcmp(argv[1], "bench") &&
        strcmp(argv[1], "generate"))
        return usage_error("unknown command '%s'", argv[1]);
    cli c;
    if (parse_args(argc, argv, &c))
        return 1;
    if (strcmp(c.command, "graph") == 0)
        return cmd_graph(&c);
    if (strcmp(c.command, "bench") == 0)
        return cmd_bench(&c);
    if (strcmp(c.command, "generate") == 0)
        return cmd_generate(&c);
    return strcmp(c.command, "compile") == 0 ? cmd_compile(&c) : cmd_run(&c);
}
