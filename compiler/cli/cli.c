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
"  train MODEL.lua     train with the model's loss and Adam, as the seed\n"
"  tokenize            print the WordPiece ids of each line of a text file\n"
"  embed MODEL.lua     sentence embeddings of each line (models/minilm.lua)\n"
"  help [COMMAND]      show help for a command\n"
"\n"
"options for all:\n"
"  -D KEY=VALUE        override a config default of the model (repeatable)\n"
"  --config FILE.json  set the model's config keys from a Hugging Face\n"
"                      config.json (nested objects as KEY.SUB; keys the\n"
"                      model does not declare ignored; -D still overrides)\n"
"  -fno-fuse-qkv       keep linears that read one tensor apart\n"
"  -fno-fuse-epilogue  keep activations and residual adds as their own ops\n"
"  -fno-dce            keep nodes no output needs\n"
"  -fno-plan-memory    give every tensor its own arena region\n"
"  -v                  print each pass and what it changed\n"
"  --target T          native (default), avx2, avx512 or generic: the packed\n"
"                      weight layout (and, for run and bench, the kernels;\n"
"                      native honours $DSC_ISA)\n"
"  -fweights=FORMAT    f32 (default), bf16 or q8: how the linear layers'\n"
"                      packed weights are stored (bf16: a float's top half,\n"
"                      rounded to nearest even; q8: int8 in blocks of 32\n"
"                      inputs with one scale each, as llama.cpp's Q8_0);\n"
"                      embeddings, norms and biases stay f32.  compile, run,\n"
"                      generate, bench, embed; not train\n"
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
"  --train             also write NAME_train_step (the model's loss, Adam)\n"
"\n"
"  --argmax            print the most likely token per row of each output\n"
"\n"
"generate options:\n"
"  --prompt IDS        the prompt's token ids: 464,2068,318\n"
"  -n N                tokens to generate (default 32)\n"
"  --prompt-logits F.npy  write the float32 [n_prompt, vocab] logits of\n"
"                      every prompt position\n"
"  --temperature T     sample at temperature T (default 0: greedy argmax)\n"
"  --top-k K           sample among the K most likely tokens only\n"
"  --top-p P           sample among the smallest set with mass P\n"
"  --weights, --seed, --threads, --aot as for run; ids go to stdout,\n"
"  prefill and decode speed to stderr\n"
"\n"
"train options:\n"
"  --epochs N          steps over the input batch (default 10)\n"
"  --lr LR             Adam's learning rate (default 0.001)\n"
"  --weight-decay WD   Adam's L2 penalty, as torch.optim.Adam's (default 0)\n"
"  --save OUT          write the trained weights (safetensors; every key of\n"
"                      --weights, untrained ones as they were)\n"
"  --losses L.npy      write each epoch's loss (float32 [N])\n"
"  --save-grads G      write the last step's gradients (safetensors)\n"
"  --weights, --input, --seed (random weights, dropout masks), --threads,\n"
"  --aot as for run; -D dropout=0 turns dropout off\n"
"\n"
"bench options:\n"
"  --train             time one training step (forward, backward, Adam)\n"
"  --runs N            timed forwards after a warm-up (default 20)\n"
"  -n N                a decoder: one-token steps after an 8-token prompt\n"
"                      (default 64); reports tokens/s and the bandwidth bound\n"
"  -fweights=bf16|q8   also reports the blob size and, after the timed runs,\n"
"                      max |diff| and argmax agreement against float32\n"
"  --weights, --seed, --threads, --aot as for run\n"
"\n"
"graph options:\n"
"  -o FILE.dot         write there instead of to standard output\n"
"  --after-passes      draw the graph the passes leave\n"
"\n"
"tokenize options:\n"
"  --tokenizer FILE    a BERT tokenizer.json (or vocab.txt)\n"
"  --text FILE         UTF-8, one sentence per line; prints one line of\n"
"                      comma-separated ids per sentence\n"
"  --max-length N      truncate to N ids, [CLS] and [SEP] included\n"
"\n"
"embed options:\n"
"  --weights W, --tokenizer FILE, --text FILE as above; --threads, --aot\n"
"  --output E.npy      float32 [sentences, hidden]; without it, print the\n"
"                      first values of each embedding\n"
"  --batch B           most sentences per forward (default 256); they are\n"
"                      packed without padding, ~1024 tokens per forward\n"
"  --max-length N      truncate to N ids (default 256)\n"
"  --config FILE       a BERT's transformers config.json: its sizes become\n"
"                      -D vocab_size=... (explicit -D still win)\n"
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
"  --compare-f32       with -fweights=bf16 or q8: run the same inputs through\n"
"                      a float32 build too and print, per output, the max\n"
"                      |diff| and the rows whose argmax agrees (stderr)\n"
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
