/* cli.c — parsing dsc's command line, and what its commands share. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const char cli_usage_text[] =
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
"  --max-memory BYTES  refuse a model whose arena, weights and cache need\n"
"                      more (suffix K, M, G or T; default half the RAM)\n"
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

int cli_usage_error(const char *fmt, const char *arg)
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


/* "4G", "512M", "1000000": bytes (K, M, G, T are powers of 1024). */
static int parse_bytes(const char *opt, const char *text, long long *out)
{
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : -1;
    static const char units[] = "KMGT";
    const char *u = text && *end ? strchr(units, end[0] & ~0x20) : NULL;
    if (u && end[0]) {
        v *= (double)(1LL << (10 * (u - units + 1)));
        end += 1 + ((end[1] & ~0x20) == 'B');
    }
    if (!text || !*text || *end || errno || !(v >= 1) || v > 9e18) {
        fprintf(stderr, "dsc: error: %s expects a size in bytes like 4G or "
                "512M, got '%s'\n(see dsc --help)\n", opt, text ? text : "");
        return 1;
    }
    *out = (long long)v;
    return 0;
}


int cli_parse_args(int argc, char **argv, cli *c)
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
                return cli_usage_error("%s needs KEY=VALUE", a);
            if (c->n_defines == CLI_MAX_DEFINES)
                return cli_usage_error("too many -D options (at most %s)", "64");
            frontend_define *d = &c->defines[c->n_defines++];
            if (split_pair(pair, &d->key, &d->value))
                return cli_usage_error("-D expects KEY=VALUE, got '%s'", pair);
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
                return cli_usage_error(top_p ? "--top-p expects a number in "
                                   "(0, 1], got '%s'" : "--temperature "
                                   "expects a number >= 0, got '%s'",
                                   next ? next : "");
            *(top_p ? &c->top_p : &c->temperature) = v;
        } else if (strcmp(a, "--max-memory") == 0) {
            if (parse_bytes(a, next, &c->max_memory))
                return 1;
        } else if (strcmp(a, "--stats-json") == 0) {
            c->stats_path = next;
        } else if (strcmp(a, "--weights") == 0) {
            c->weights_path = next;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            if (!next)
                return cli_usage_error("%s needs a value", a);
            errno = 0;
            c->seed = strtoull(next, &end, 10);
            if (!*next || *end || errno || next[0] == '-')
                return cli_usage_error("--seed expects a non-negative integer, "
                                   "got '%s'", next);
        } else if (strcmp(a, "--input") == 0 || strcmp(a, "--output") == 0) {
            int in = a[2] == 'i';
            binding *b = in ? &c->inputs[c->n_inputs] : &c->outputs[c->n_outputs];
            if (!next)
                return cli_usage_error("%s needs NAME=FILE.npy", a);
            if ((in ? c->n_inputs : c->n_outputs) == CLI_MAX_BINDINGS)
                return cli_usage_error("too many %s options", a);
            if (split_pair((char *)next, &b->name, &b->path) || !*b->path)
                return cli_usage_error("expected NAME=FILE.npy, got '%s'", next);
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
                return cli_usage_error("unknown option '%s'", a);
            else if (c->model_path)
                return cli_usage_error("unexpected argument '%s' (one model file "
                                   "at a time)", a);
            else
                c->model_path = a;
        }
        if (takes) {
            if (!next)
                return cli_usage_error("%s needs a value", a);
            i++;
        }
    }
    if (!c->model_path)
        return cli_usage_error("%s: no model file given", c->command);
    return 0;
}


build_options cli_build_options(const cli *c)
{
    return (build_options){
        .defines = c->defines, .n_defines = c->n_defines,
        .no_fuse_qkv = c->no_fuse_qkv, .no_fuse_epilogue = c->no_fuse_epilogue,
        .no_dce = c->no_dce, .no_plan_memory = c->no_plan_memory,
        .verbose = c->verbose ? stderr : NULL,
        .max_memory = c->max_memory,
    };
}


void cli_print_err(const dsc_err *e)
{
    fprintf(stderr, "%s\n", e->msg);
}


/* Replace a trailing ".c" (or append) with ext. */
char *cli_with_extension(const char *path, const char *ext)
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
int cli_thread_count(const cli *c)
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


/* After DSC_EBADTOKEN: name the first bad id and where it is. */
void cli_report_bad_token(const graph *g, const cli *c, void *const *io,
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


