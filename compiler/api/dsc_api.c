/* dsc_api.c — the public C API (dsc.h) over the driver: build_model does
 * the pipeline, runner loads and calls the code.  This file only parses
 * options, keeps what a model and a context own, and turns every failure
 * into text. */
#define _POSIX_C_SOURCE 200809L
#include "api/dsc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"
#include "driver/build.h"
#include "driver/runner.h"
#include "driver/sample.h"
#include "dsc_runtime.h"

struct dsc_model {
    built_model built;
    runner code;            /* weights and code; no per-call state */
    int threads;            /* --threads for new contexts; 0: one per core */
    dsc_tensor_info *info;  /* inputs, then outputs */
    int n_inputs, n_outputs;
    char *notes;
};

struct dsc_context {
    const dsc_model *model;
    runner run;             /* shares the model's weights and code */
    int64_t position;       /* a decoder's tokens so far */
    char error[DSC_ERROR_SIZE];
};

/* Debian's libtcc (0.9.27, 2020) guards its global state with a semaphore
 * it initialises on first use without synchronisation, so two first
 * compiles racing could both initialise it.  Loading code (and freeing
 * it) therefore goes through this one lock; compiles are rare, calls are
 * not locked. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;


const char *dsc_version(void)
{
    return DSC_VERSION;
}


static void copy_error(char *dst, size_t size, const char *msg)
{
    if (dst && size)
        snprintf(dst, size, "%s", msg);
}


/* ---- options ------------------------------------------------------------ */

typedef struct parsed_options {
    frontend_define defines[64];
    int n_defines;
    char *define_text[64];   /* owned copies, split at '=' */
    build_options build;
    runner_options run;
    sample_options sample;
    uint64_t seed;
} parsed_options;


static int parse_count(const char *opt, const char *text, long long lo,
                       long long hi, long long *out, dsc_err *err)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < lo || v > hi)
        return err_set(err, "dsc: error: %s expects a whole number from %lld "
                       "to %lld, got '%s'", opt, lo, hi, text ? text : "");
    *out = v;
    return 0;
}


static int parse_real(const char *opt, const char *text, double lo,
                      double hi, int open_lo, double *out, dsc_err *err)
{
    char *end;
    double v = text ? strtod(text, &end) : -1;
    if (!text || !*text || *end || !(open_lo ? v > lo : v >= lo) || v > hi)
        return err_set(err, "dsc: error: %s expects a number in %c%g, %g], "
                       "got '%s'", opt, open_lo ? '(' : '[', lo, hi,
                       text ? text : "");
    *out = v;
    return 0;
}


static void free_options(parsed_options *p)
{
    for (int i = 0; i < p->n_defines; i++)
        free(p->define_text[i]);
    p->n_defines = 0;
}


/* Words as on the command line into p.  sampling: the generate options
 * (--temperature, --top-k, --top-p, --seed) instead of the compile ones. */
static int parse_options(const char *const *words, int sampling,
                         parsed_options *p, dsc_err *err)
{
    memset(p, 0, sizeof *p);
    p->sample.top_p = 1.0;
    for (int i = 0; words && words[i]; i++) {
        const char *a = words[i], *next = words[i + 1];
        long long v;
        if (!sampling && strncmp(a, "-D", 2) == 0) {
            const char *pair = a[2] ? a + 2 : next;
            if (!a[2])
                i++;
            if (!pair)
                return err_set(err, "dsc: error: -D needs KEY=VALUE");
            if (p->n_defines == 64)
                return err_set(err, "dsc: error: too many -D options (at "
                               "most 64)");
            char *eq = strchr(pair, '=');
            if (!eq || eq == pair)
                return err_set(err, "dsc: error: -D expects KEY=VALUE, got "
                               "'%s'", pair);
            char *copy = strdup(pair);
            if (!copy)
                return err_set(err, "dsc: error: out of memory");
            p->define_text[p->n_defines] = copy;
            copy[eq - pair] = '\0';
            p->defines[p->n_defines++] = (frontend_define){
                .key = copy, .value = copy + (eq - pair) + 1 };
            continue;
        }
        if (!sampling && strcmp(a, "--aot") == 0) {
            p->run.aot = 1;
            continue;
        }
        if (!sampling && strncmp(a, "-fweights", 9) == 0) {
            int f = a[9] == '=' ? rt_format_parse(a + 10) : -1;
            if (f < 0)
                return err_set(err, "dsc: error: -fweights expects =f32, "
                               "=bf16 or =q8, got '%s'", a);
            p->build.weight_format = f;
            continue;
        }
        int *flag = sampling ? NULL
            : strcmp(a, "-fno-fuse-qkv") == 0 ? &p->build.no_fuse_qkv
            : strcmp(a, "-fno-fuse-epilogue") == 0 ? &p->build.no_fuse_epilogue
            : strcmp(a, "-fno-dce") == 0 ? &p->build.no_dce
            : strcmp(a, "-fno-plan-memory") == 0 ? &p->build.no_plan_memory
            : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        int takes = strcmp(a, "--seed") == 0 ||
            (!sampling && (strcmp(a, "--weights") == 0 ||
                           strcmp(a, "--threads") == 0)) ||
            (sampling && (strcmp(a, "--temperature") == 0 ||
                          strcmp(a, "--top-k") == 0 ||
                          strcmp(a, "--top-p") == 0));
        if (!takes)
            return err_set(err, "dsc: error: unknown option '%s'", a);
        if (!next)
            return err_set(err, "dsc: error: %s needs a value", a);
        i++;
        if (strcmp(a, "--weights") == 0) {
            p->run.weights_path = next;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_count(a, next, 1, 1024, &v, err))
                return -1;
            p->run.threads = (int)v;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            p->seed = strtoull(next, &end, 10);
            if (!*next || *end || errno || next[0] == '-')
                return err_set(err, "dsc: error: --seed expects a "
                               "non-negative integer, got '%s'", next);
        } else if (strcmp(a, "--top-k") == 0) {
            if (parse_count(a, next, 0, 100000000, &v, err))
                return -1;
            p->sample.top_k = v;
        } else if (strcmp(a, "--temperature") == 0) {
            if (parse_real(a, next, 0, 1000, 0, &p->sample.temperature, err))
                return -1;
        } else if (parse_real(a, next, 0, 1, 1, &p->sample.top_p, err)) {
            return -1;
        }
    }
    p->build.defines = p->defines;
    p->build.n_defines = p->n_defines;
    p->run.seed = p->seed;
    return 0;
}


/* ---- models ------------------------------------------------------------- */

static int describe_io(dsc_model *m, dsc_err *err)
{
    const graph *g = m->built.model->graph;
    m->n_inputs = graph_count_kind(g, GRAPH_INPUT);
    m->n_outputs = graph_count_kind(g, GRAPH_OUTPUT);
    int n = m->n_inputs + m->n_outputs;
    if (!(m->info = calloc((size_t)(n ? n : 1), sizeof *m->info)))
        return err_set(err, "dsc: error: out of memory");
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind != (pass ? GRAPH_OUTPUT : GRAPH_INPUT))
                continue;
            dsc_tensor_info *d = &m->info[k++];
            d->name = x->name;
            d->dtype = x->dtype == GRAPH_I32 ? DSC_INT32 : DSC_FLOAT32;
            d->rank = x->shape.rank;
            for (int i = 0; i < x->shape.rank && i < DSC_MAX_RANK; i++)
                d->shape[i] = x->shape.dim[i];
            d->dynamic = x->dynamic;
        }
    return 0;
}


static dsc_model *compile(const char *path, const char *text,
                          const char *const *options, char *err_out,
                          size_t err_size)
{
    dsc_err err = {{0}};
    parsed_options p = {0};
    dsc_model *m = calloc(1, sizeof *m);
    char *notes = NULL;
    size_t notes_len = 0;
    FILE *notes_fp = NULL;
    int ok = 0;
    if (!m) {
        err_set(&err, "dsc: error: out of memory");
    } else if (parse_options(options, 0, &p, &err) == 0) {
        p.build.text = text;
        p.build.text_len = text ? strlen(text) : 0;
        m->threads = p.run.threads;
        /* Notes (the model's print(), unused weight keys, NaN warnings)
         * are kept, not printed. */
        notes_fp = open_memstream(&notes, &notes_len);
        p.build.print = p.run.notes = notes_fp;
        if (!notes_fp) {
            err_set(&err, "dsc: error: out of memory");
        } else if (build_model(path, &p.build, &m->built, &err) == 0) {
            pthread_mutex_lock(&load_lock);
            ok = runner_load(&m->code, &m->built, &p.run, &err) == 0;
            pthread_mutex_unlock(&load_lock);
            ok = ok && describe_io(m, &err) == 0;
        }
        if (notes_fp && fclose(notes_fp) == 0)
            m->notes = notes;
        else
            free(notes);
    }
    free_options(&p);
    if (!ok) {
        copy_error(err_out, err_size, err.msg);
        dsc_model_free(m);
        return NULL;
    }
    return m;
}


dsc_model *dsc_compile_file(const char *path, const char *const *options,
                            char *err, size_t err_size)
{
    if (!path) {
        copy_error(err, err_size, "dsc: error: no model file given");
        return NULL;
    }
    return compile(path, NULL, options, err, err_size);
}


dsc_model *dsc_compile_string(const char *name, const char *text,
                              const char *const *options, char *err,
                              size_t err_size)
{
    if (!name || !text) {
        copy_error(err, err_size, "dsc: error: dsc_compile_string needs a "
                   "name and the model's text");
        return NULL;
    }
    return compile(name, text, options, err, err_size);
}


void dsc_model_free(dsc_model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&load_lock);
    runner_close(&m->code);
    pthread_mutex_unlock(&load_lock);
    built_model_free(&m->built);
    free(m->info);
    free(m->notes);
    free(m);
}


int dsc_input_count(const dsc_model *m) { return m->n_inputs; }
int dsc_output_count(const dsc_model *m) { return m->n_outputs; }


const dsc_tensor_info *dsc_input(const dsc_model *m, int i)
{
    return i >= 0 && i < m->n_inputs ? &m->info[i] : NULL;
}


const dsc_tensor_info *dsc_output(const dsc_model *m, int i)
{
    return i >= 0 && i < m->n_outputs ? &m->info[m->n_inputs + i] : NULL;
}


int dsc_is_decoder(const dsc_model *m, int64_t *context)
{
    if (context)
        *context = m->code.decoder ? m->code.context : 0;
    return m->code.decoder;
}


const char *dsc_model_notes(const dsc_model *m)
{
    return m->notes ? m->notes : "";
}


/* ---- contexts ------------------------------------------------------------ */

dsc_context *dsc_context_new(const dsc_model *m, char *err_out,
                             size_t err_size)
{
    dsc_err err;
    dsc_context *c = calloc(1, sizeof *c);
    if (!c) {
        copy_error(err_out, err_size, "dsc: error: out of memory");
        return NULL;
    }
    c->model = m;
    if (runner_clone(&c->run, &m->code, m->threads, &err)) {
        copy_error(err_out, err_size, err.msg);
        free(c);
        return NULL;
    }
    return c;
}


void dsc_context_free(dsc_context *c)
{
    if (!c)
        return;
    runner_close(&c->run);
    free(c);
}


const char *dsc_context_error(const dsc_context *c)
{
    return c->error;
}


static int fail(dsc_context *c, const char *fmt, const char *a, long long x,
                long long y)
{
    snprintf(c->error, sizeof c->error, fmt, a, x, y);
    return -1;
}


/* One call of the generated code; io: inputs, outputs and a free slot. */
static int call(dsc_context *c, void **io, int64_t n, int64_t pos,
                const char *source)
{
    const dsc_model *m = c->model;
    int status = runner_call(&c->run, io, m->n_inputs + m->n_outputs, n, pos);
    if (status == DSC_OK) {
        c->position = pos + n;
        return 0;
    }
    if (status == DSC_EBADTOKEN) {
        dsc_err err;
        runner_bad_token(m->built.model->graph, io, n, NULL, source, &err);
        copy_error(c->error, sizeof c->error, err.msg);
        return -1;
    }
    return fail(c, "%s: error: the model returned status %lld", source,
                status, 0);
}


int dsc_run(dsc_context *c, const void *const *inputs, void *const *outputs)
{
    const dsc_model *m = c->model;
    int n_io = m->n_inputs + m->n_outputs;
    void **io = calloc((size_t)n_io + 1, sizeof *io);
    if (!io)
        return fail(c, "%s: error: out of memory", "dsc", 0, 0);
    c->error[0] = '\0';
    for (int i = 0; i < m->n_inputs; i++)
        io[i] = (void *)inputs[i];
    for (int i = 0; i < m->n_outputs; i++)
        io[m->n_inputs + i] = outputs[i];
    int64_t n = m->code.decoder ? m->code.context : 1;
    runner_reset(&c->run);
    int rc = call(c, io, n, 0, "input");
    free(io);
    return rc;
}


static int check_decoder(dsc_context *c)
{
    const dsc_model *m = c->model;
    if (!m->code.decoder || m->n_inputs != 1 || m->n_outputs != 1 ||
        m->info[0].dtype != DSC_INT32)
        return fail(c, "%s: error: prefill and decode need a decoder: one "
                    "token input with {dynamic = true} and one logits output",
                    m->built.model->path, 0, 0);
    return 0;
}


int dsc_prefill(dsc_context *c, const int32_t *tokens, int64_t n,
                float *logits)
{
    c->error[0] = '\0';
    if (check_decoder(c))
        return -1;
    if (n < 1 || n > c->model->code.context)
        return fail(c, "%s: error: a prompt of %lld tokens; the model takes "
                    "1 to %lld", "prompt", n, c->model->code.context);
    runner_reset(&c->run);
    c->position = 0;
    void *io[3] = { (void *)tokens, logits, NULL };
    return call(c, io, n, 0, "prompt");
}


int dsc_decode(dsc_context *c, int32_t token, float *logits)
{
    c->error[0] = '\0';
    if (check_decoder(c))
        return -1;
    if (c->position < 1 || c->position >= c->model->code.context)
        return fail(c, c->position < 1
                    ? "%s: error: decode before prefill (position %lld)"
                    : "%s: error: position %lld is past the model's context "
                      "of %lld tokens", "decode", c->position,
                    c->model->code.context);
    void *io[3] = { &token, logits, NULL };
    return call(c, io, 1, c->position, "decode");
}


int64_t dsc_position(const dsc_context *c)
{
    return c->position;
}


int dsc_generate(dsc_context *c, const int32_t *prompt, int64_t n_prompt,
                 int64_t n_new, const char *const *options, int32_t *out)
{
    parsed_options p;
    dsc_err err;
    c->error[0] = '\0';
    if (parse_options(options, 1, &p, &err)) {
        copy_error(c->error, sizeof c->error, err.msg);
        return -1;
    }
    if (check_decoder(c))
        return -1;
    int64_t context = c->model->code.context;
    if (n_prompt < 1 || n_new < 0)
        return fail(c, "%s: error: generate needs a prompt of 1 or more "
                    "tokens and 0 or more new ones (got %lld and %lld)",
                    "dsc", n_prompt, n_new);
    if (n_prompt + n_new > context) {
        snprintf(c->error, sizeof c->error, "dsc: error: the prompt's %lld "
                 "tokens and -n %lld exceed the model's context of %lld",
                 (long long)n_prompt, (long long)n_new, (long long)context);
        return -1;
    }
    int64_t vocab = c->model->info[1].shape[c->model->info[1].rank - 1];
    float *logits = malloc((size_t)vocab * sizeof(float));
    void *scratch = malloc(sample_scratch_bytes(vocab));
    int rc = -1;
    if (!logits || !scratch) {
        fail(c, "%s: error: out of memory", "dsc", 0, 0);
    } else if (dsc_prefill(c, prompt, n_prompt, logits) == 0) {
        uint64_t rng = p.seed;
        rc = 0;
        for (int64_t i = 0; rc == 0 && i < n_new; i++) {
            out[i] = (int32_t)sample_next(logits, vocab, &p.sample, &rng,
                                          scratch);
            if (i + 1 < n_new)
                rc = dsc_decode(c, out[i], logits);
        }
    }
    free(logits);
    free(scratch);
    return rc;
}
