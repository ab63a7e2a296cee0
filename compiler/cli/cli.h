/* cli.h — what the dsc command line parsed, and the helpers its commands
 * share.  Each command lives in its own cmd_NAME.c; main.c only dispatches. */
#ifndef DSC_CLI_H
#define DSC_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "driver/build.h"
#include "frontend/frontend.h"
#include "util/diag.h"

#define CLI_MAX_DEFINES 64
#define CLI_MAX_BINDINGS 16

typedef struct binding {
    const char *name;
    const char *path;
} binding;

typedef struct cli {
    const char *command;
    const char *model_path;
    frontend_define defines[CLI_MAX_DEFINES];
    int n_defines;
    const char *out_path;
    const char *weights_path;
    int random_weights;
    uint64_t seed;
    binding inputs[CLI_MAX_BINDINGS], outputs[CLI_MAX_BINDINGS];
    int n_inputs, n_outputs;
    int aot;
    int no_fuse_qkv, no_fuse_epilogue, no_dce, no_plan_memory;
    int verbose;
    int threads;       /* run: 0 = DSC_NUM_THREADS, else one per core */
    int argmax;        /* run: print the argmax of each output row */
    const char *prompt;       /* generate */
    const char *prompt_logits_path;  /* generate: every prompt position's */
    const char *config_json;  /* --config: an HF config.json */
    frontend_define *json_defines;  /* its settings (n_json) */
    int n_json;
    frontend_define *all_defines;   /* those, then the -D ones */
    long long new_tokens;
    int new_tokens_given;
    double temperature, top_p;
    long long top_k;
    int runs;          /* bench */
    const char *stats_path;
    int after_passes;  /* graph: draw the graph the passes leave */
    long long epochs;  /* train */
    double lr, weight_decay;
    const char *save_path, *losses_path, *grads_path;
    int train;         /* bench --train */
    const char *tokenizer_path, *text_path;  /* tokenize, embed */
    long long max_length;   /* tokenize, embed: 0 = not given */
    long long batch;        /* embed: sentences per forward, 0 = default */
    int layout;        /* --target: DSC_LAYOUT_*, 0 = native */
    int weight_format; /* -fweights: DSC_WEIGHTS_*, 0 = f32 */
    int compare_f32;   /* run: also run a float32 build, print the diff */
    long long max_memory;  /* --max-memory bytes, 0: the default */
} cli;

/* Print the help of command (NULL: all of it) to out; -1 if dsc has no
 * such command. */
int cli_help(FILE *out, const char *command);

/* Parse argv[2..] for the command argv[1]; 1 after printing why not. */
int cli_parse_args(int argc, char **argv, cli *c);

/* Print "dsc: error: " fmt (with arg) and a pointer to --help; returns 1. */
int cli_usage_error(const char *fmt, const char *arg);

/* Free what cli_parse_args allocated (--config's settings). */
void cli_free(cli *c);

/* The pipeline options the command line asked for. */
build_options cli_build_options(const cli *c);

void cli_print_err(const dsc_err *e);

/* path with a trailing ".c" replaced by (or else followed by) ext. */
char *cli_with_extension(const char *path, const char *ext);

/* --threads, else $DSC_NUM_THREADS, else 0 (one per core); -1 if bad. */
int cli_thread_count(const cli *c);

/* After DSC_EBADTOKEN: name the first bad id and where it is. */
void cli_report_bad_token(const graph *g, const cli *c, void *const *io,
                          int64_t tokens, const char *source);

/* Graph input t from its --input file (checked against the graph's shape
 * and dtype) or random; *tokens gets a decoder's token count. */
void *cli_make_input(const graph *g, int t, const cli *c, uint64_t *rng,
                     int64_t *tokens, dsc_err *err);

int cmd_train(const cli *c);
int cmd_compile(const cli *c);
int cmd_run(const cli *c);
int cmd_generate(const cli *c);
int cmd_bench(const cli *c);
int cmd_graph(const cli *c);
int cmd_tokenize(const cli *c);
int cmd_embed(const cli *c);

#endif
