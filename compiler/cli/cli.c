/* cli.c — parsing dsc's command line, and what its commands share. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "driver/runner.h"
#include "io/config_json.h"
#include "dsc_runtime.h"

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
    /* strtod also reads hexadecimal ("0x10" would be 16 bytes). */
    if (!text || !*text || *end || errno || strpbrk(text, "xX") ||
        !(v >= 1) || v > 9e18) {
        fprintf(stderr, "dsc: error: %s expects a size in bytes like 4G or "
                "512M, got '%s'\n(see dsc --help)\n", opt, text ? text : "");
        return 1;
    }
    *out = (long long)v;
    return 0;
}
static int merge_config_json(cli *c);


int cli_parse_args(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 10;    /* the seed's num_epochs and lr */
    c->lr = 0.001;
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
        } else if (strcmp(a, "--prompt-logits") == 0) {
            c->prompt_logits_path = next;
        } else if (strcmp(a, "--config") == 0) {
            c->config_json = next;
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
        } else if (strcmp(a, "--epochs") == 0) {
            if (parse_count(a, next, 1, 100000000, &c->epochs))
                return 1;
        } else if (strcmp(a, "--lr") == 0) {
            char *end;
            double v = next ? strtod(next, &end) : -1;
            if (!next || !*next || *end || !(v > 0) || v > 1e6)
                return cli_usage_error("--lr expects a number > 0, got '%s'",
                                       next ? next : "");
            c->lr = v;
        } else if (strcmp(a, "--weight-decay") == 0) {
            char *end;
            double v = next ? strtod(next, &end) : -1;
            if (!next || !*next || *end || !(v >= 0) || v > 1e6)
                return cli_usage_error("--weight-decay expects a number >= 0, "
                                       "got '%s'", next ? next : "");
            c->weight_decay = v;
        } else if (strcmp(a, "--save") == 0) {
            c->save_path = next;
        } else if (strcmp(a, "--losses") == 0) {
            c->losses_path = next;
        } else if (strcmp(a, "--save-grads") == 0) {
            c->grads_path = next;
        } else if (strcmp(a, "--tokenizer") == 0) {
            c->tokenizer_path = next;
        } else if (strcmp(a, "--text") == 0) {
            c->text_path = next;
        } else if (strcmp(a, "--max-length") == 0) {
            if (parse_count(a, next, 2, 1000000, &c->max_length))
                return 1;
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_count(a, next, 1, 100000, &c->batch))
                return 1;
        } else if (strcmp(a, "--output") == 0 &&
                   strcmp(c->command, "embed") == 0) {
            c->out_path = next;  /* embed writes one array: no NAME= */
        } else if (strcmp(a, "--target") == 0) {
            int isa = next && strcmp(next, "native") == 0
                ? rt_isa_native() : rt_isa_parse(next);
            if (isa < 0)
                return cli_usage_error("--target expects native, avx2, avx512 "
                                       "or generic, got '%s'", next ? next : "");
            c->layout = rt_isa_layout(isa);
            /* run and bench: the kernels follow, where the CPU has them. */
            if (rt_isa_supported(isa))
                setenv("DSC_ISA", rt_isa_name(isa), 1);
        } else if (strncmp(a, "-fweights", 9) == 0) {
            takes = 0;
            int f = a[9] == '=' ? rt_format_parse(a + 10) : -1;
            if (f < 0)
                return cli_usage_error("-fweights expects =f32, =bf16 or =q8, "
                                       "got '%s'", a);
            c->weight_format = f;
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
            else if (strcmp(a, "--train") == 0)
                c->train = 1;
            else if (strcmp(a, "--compare-f32") == 0)
                c->compare_f32 = 1;
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
    if (c->compare_f32 && strcmp(c->command, "run") != 0)
        return cli_usage_error("--compare-f32 is for run (bench compares "
                               "with f32 by itself), not %s", c->command);
    if (c->compare_f32 && c->weight_format == DSC_WEIGHTS_F32)
        return cli_usage_error("%s", "--compare-f32 needs -fweights=bf16 or "
                               "-fweights=q8 (a float32 build has nothing to "
                               "compare with)");
    if (!c->model_path && strcmp(c->command, "tokenize") != 0)
        return cli_usage_error("%s: no model file given", c->command);
    return c->config_json ? merge_config_json(c) : 0;
}


/* --config: the file's settings first, so -D overrides them. */
static int merge_config_json(cli *c)
{
    dsc_err err;
    frontend_define *json;
    int n;
    if (config_json_read(c->config_json, &json, &n, &err)) {
        cli_print_err(&err);
        return 1;
    }
    c->json_defines = json;
    c->n_json = n;
    c->all_defines = malloc(((size_t)n + (size_t)c->n_defines + 1) *
                            sizeof *c->all_defines);
    if (!c->all_defines) {
        fprintf(stderr, "dsc: error: out of memory\n");
        return 1;
    }
    memcpy(c->all_defines, json, (size_t)n * sizeof *json);
    memcpy(c->all_defines + n, c->defines,
           (size_t)c->n_defines * sizeof *c->defines);
    return 0;
}


void cli_free(cli *c)
{
    config_json_free(c->json_defines, c->n_json);
    free(c->all_defines);
    c->json_defines = c->all_defines = NULL;
}


build_options cli_build_options(const cli *c)
{
    return (build_options){
        .defines = c->all_defines ? c->all_defines : c->defines,
        .n_defines = c->n_defines + c->n_json,
        .no_fuse_qkv = c->no_fuse_qkv, .no_fuse_epilogue = c->no_fuse_epilogue,
        .no_dce = c->no_dce, .no_plan_memory = c->no_plan_memory,
        .verbose = c->verbose ? stderr : NULL, .layout = c->layout,
        .weight_format = c->weight_format,
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
    const char **sources = calloc((size_t)g->n_tensors, sizeof *sources);
    int k = 0;
    for (int t = 0; sources && t < g->n_tensors; t++) {
        if (g->tensors[t].kind != GRAPH_INPUT)
            continue;
        for (int j = 0; j < c->n_inputs; j++)
            if (strcmp(c->inputs[j].name, g->tensors[t].name) == 0)
                sources[k] = c->inputs[j].path;
        k++;
    }
    dsc_err err;
    runner_bad_token(g, io, tokens, sources, source, &err);
    cli_print_err(&err);
    free(sources);
}
