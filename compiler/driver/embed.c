/* embed.c — sentence embeddings in length-sorted, padded batches (see
 * embed.h). */
#define _POSIX_C_SOURCE 200809L
#include "driver/embed.h"

#include <stdlib.h>
#include <string.h>

#include "backend/load.h"
#include "driver/runner.h"
#include "dsc_runtime.h"
#include "io/weights.h"
#include "util/timing.h"

#define EMBED_MAX_SHAPES 128
#define EMBED_INPUTS 4

static const char *const input_names[EMBED_INPUTS] = {
    "input_ids", "token_type_ids", "position_ids", "lengths"
};
enum { IN_IDS, IN_TYPES, IN_POSITIONS, IN_LENGTHS };

/* One compiled row count. */
typedef struct embed_shape {
    int64_t tokens;
    built_model built;
    loaded_model *code;
    int slot[EMBED_INPUTS];   /* io index of each input by name */
    int64_t limit[EMBED_INPUTS];  /* rows of the embedding reading each
                                     input (ids must be below); 0: none */
    int64_t dim;
} embed_shape;

typedef struct embedder {
    const embed_options *o;
    const tok_batch *tokens;
    embed_shape shapes[EMBED_MAX_SHAPES];
    int n_shapes;
    float *weights;
    const weight_layout *layout;  /* of the first shape: all must agree */
    rt_ctx *ctx;
    void *arena;
    size_t arena_bytes;
    embed_stats *stats;
} embedder;


/* The io slots of the model's inputs and its one output; its width. */
static int check_io(embed_shape *s, const char *path, int64_t batch,
                    dsc_err *err)
{
    const graph *g = s->built.model->graph;
    int k = 0, outputs = 0;
    for (int i = 0; i < EMBED_INPUTS; i++)
        s->slot[i] = -1;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INPUT)
            continue;
        int which = -1;
        for (int i = 0; i < EMBED_INPUTS; i++)
            if (!strcmp(x->name, input_names[i]))
                which = i;
        if (which < 0 || x->dtype != GRAPH_I32)
            return err_set(err, "%s: error: embed: input '%s' is not one of "
                           "the int32 input_ids, token_type_ids, "
                           "position_ids, lengths", path, x->name);
        s->slot[which] = k++;
        s->limit[which] = graph_token_vocab(g, t);
    }
    for (int i = 0; i < EMBED_INPUTS; i++)
        if (s->slot[i] < 0)
            return err_set(err, "%s: error: embed: the model has no input "
                           "'%s'", path, input_names[i]);
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_OUTPUT)
            continue;
        outputs++;
        if (x->shape.rank != 2 || x->shape.dim[0] != batch)
            return err_set(err, "%s: error: embed: output '%s' must be "
                           "[sentences, dim]", path, x->name);
        s->dim = x->shape.dim[1];
    }
    if (outputs != 1)
        return err_set(err, "%s: error: embed: the model must have one "
                       "output, it has %d", path, outputs);
    return 0;
}


static int same_layout(const weight_layout *a, const weight_layout *b)
{
    if (a->n_entries != b->n_entries || a->total_floats != b->total_floats)
        return 0;
    for (int i = 0; i < a->n_entries; i++)
        if (a->entries[i].offset != b->entries[i].offset ||
            a->entries[i].floats != b->entries[i].floats)
            return 0;
    return 1;
}


static int64_t len_of(const tok_batch *t, int64_t i)
{
    return t->start[i + 1] - t->start[i];
}


/* sentences and tokens are embed's to set: -D or --config giving them is
 * an error naming the option, or the config file and its line. */
static int check_own_keys(const build_options *b, dsc_err *err)
{
    for (int i = 0; i < b->n_defines; i++) {
        const frontend_define *d = &b->defines[i];
        if (strcmp(d->key, "sentences") && strcmp(d->key, "tokens"))
            continue;
        const char *why = "dsc embed sets sentences (from --batch) and "
                          "tokens (from the sentences' lengths) itself";
        if (d->source)
            return err_set(err, "%s:%d: error: config key '%s': %s; remove "
                           "it", d->source, d->line, d->key, why);
        return err_set(err, "dsc: error: embed: -D %s: %s", d->key, why);
    }
    return 0;
}


/* "TEXT:LINE: error: " for sentence i, or without a text file
 * "dsc: error: embed: sentence N: ". */
static void sentence_place(const embed_options *o, int64_t i, char *buf,
                           size_t size)
{
    if (o->text_path)
        snprintf(buf, size, "%s:%lld: error: ", o->text_path,
                 (long long)i + 1);
    else
        snprintf(buf, size, "dsc: error: embed: sentence %lld: ",
                 (long long)i + 1);
}


/* Sentence i's ids in the vocabulary, its length within the positions
 * (limits from s, 0: none). */
static int check_sentence(const embed_options *o, const embed_shape *s,
                          const tok_batch *t, int64_t i, dsc_err *err)
{
    int64_t vocab = s->limit[IN_IDS], positions = s->limit[IN_POSITIONS];
    int64_t len = len_of(t, i);
    const int32_t *ids = t->ids + t->start[i];
    char at[512];
    if (positions && len > positions) {
        sentence_place(o, i, at, sizeof at);
        return err_set(err, "%sthe sentence is %lld tokens, more than the "
                       "model's %lld positions (--max-length %lld would cut "
                       "it there)", at, (long long)len, (long long)positions,
                       (long long)positions);
    }
    for (int64_t k = 0; vocab && k < len; k++) {
        if (ids[k] >= 0 && ids[k] < vocab)
            continue;
        char tok[600] = "";
        if (o->tokenizer_path && o->tokenizer_vocab)
            snprintf(tok, sizeof tok, " (%s's ids go up to %lld: is it "
                     "this model's tokenizer?)", o->tokenizer_path,
                     (long long)o->tokenizer_vocab - 1);
        sentence_place(o, i, at, sizeof at);
        return err_set(err, "%stoken id %d is outside the model's vocabulary "
                       "of %lld ids%s", at, (int)ids[k], (long long)vocab,
                       tok);
    }
    return 0;
}


/* What the generated code would reject at run time (DSC_EBADTOKEN), found
 * before weights are read or code loaded, and named: the padding id, then
 * the first bad sentence.  A --max-length past the positions is no error
 * in itself (sentence-transformers takes it too): only a sentence that
 * reaches past them is. */
static int check_tokens(const embed_options *o, const embed_shape *s,
                        const tok_batch *t, dsc_err *err)
{
    int64_t vocab = s->limit[IN_IDS];
    if (vocab && (o->pad_id < 0 || o->pad_id >= vocab)) {
        char at[512] = "dsc: error: embed: ";
        if (o->tokenizer_path)
            snprintf(at, sizeof at, "%s: error: ", o->tokenizer_path);
        return err_set(err, "%sthe padding id %d is outside the model's "
                       "vocabulary of %lld ids", at, (int)o->pad_id,
                       (long long)vocab);
    }
    for (int64_t i = 0; i < t->n; i++)
        if (check_sentence(o, s, t, i, err))
            return -1;
    return 0;
}


/* The compiled model for seq, building it on first use. */
static embed_shape *shape_for(embedder *e, int64_t tokens, dsc_err *err)
{
    const embed_options *o = e->o;
    int64_t batch = o->batch;
    for (int i = 0; i < e->n_shapes; i++)
        if (e->shapes[i].tokens == tokens)
            return &e->shapes[i];
    if (e->n_shapes == EMBED_MAX_SHAPES) {
        err_set(err, "dsc: error: embed: more than %d shapes",
                EMBED_MAX_SHAPES);
        return NULL;
    }
    double t0 = timing_now_ms();
    int n = o->build.n_defines;
    frontend_define *defs = malloc((size_t)(n + 2) * sizeof *defs);
    char batchs[32], seqs[32];
    if (!defs) {
        err_set(err, "dsc: error: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        defs[i] = o->build.defines[i];
    snprintf(batchs, sizeof batchs, "%lld", (long long)batch);
    snprintf(seqs, sizeof seqs, "%lld", (long long)tokens);
    defs[n] = (frontend_define){ .key = "sentences", .value = batchs };
    defs[n + 1] = (frontend_define){ .key = "tokens", .value = seqs };
    build_options bo = o->build;
    bo.defines = defs;
    bo.n_defines = n + 2;
    embed_shape *s = &e->shapes[e->n_shapes];
    memset(s, 0, sizeof *s);
    s->tokens = tokens;
    int rc = build_model(o->model_path, &bo, &s->built, err);
    free(defs);
    if (rc)
        return NULL;
    if (check_io(s, o->model_path, batch, err))
        goto fail;
    double built_ms = timing_now_ms() - t0;  /* Lua, passes, C text */
    if (!e->weights) {  /* the first shape: the model's limits are known */
        if (check_tokens(o, s, e->tokens, err))
            goto fail;
        double w0 = timing_now_ms();
        e->weights = weights_make_blob(s->built.model->graph,
                                       &s->built.weights, o->weights_path,
                                       o->seed, o->notes, err);
        e->stats->weights_ms += timing_now_ms() - w0;
        if (!e->weights)
            goto fail;
        e->layout = &s->built.weights;
    } else if (!same_layout(e->layout, &s->built.weights)) {
        err_set(err, "%s: error: embed: the weights are laid out differently "
                "for %lld tokens (a weight's shape depends on them)",
                o->model_path, (long long)tokens);
        goto fail;
    }
    size_t arena = ((size_t)s->built.plan.arena_bytes + DSC_ALIGN - 1) /
                   DSC_ALIGN * DSC_ALIGN;
    if (arena > e->arena_bytes) {
        free(e->arena);
        e->arena_bytes = 0;
        if (!(e->arena = aligned_alloc(DSC_ALIGN, arena))) {
            err_set(err, "dsc: error: out of memory for the arena (%zu bytes)",
                    arena);
            goto fail;
        }
        e->arena_bytes = arena;
    }
    double t1 = timing_now_ms();
    s->code = o->aot ? aot_load(s->built.source, s->built.header,
                                build_runtime_header(), s->built.model->name,
                                s->built.entry, err)
                     : jit_load(s->built.jit_source, s->built.model->name,
                                s->built.entry, err);
    if (!s->code)
        goto fail;
    e->n_shapes++;
    e->stats->shapes++;
    e->stats->compile_ms += built_ms + (timing_now_ms() - t1);
    return s;
fail:
    if (e->layout == &s->built.weights) {  /* keep the blob, drop its owner */
        free(e->weights);
        e->weights = NULL;
        e->layout = NULL;
    }
    built_model_free(&s->built);
    return NULL;
}


/* Why a forward of sentences order[0 .. count) failed.  check_tokens
 * should have caught a bad id; if the model still rejects one, its
 * sentence is named, else the input, row and id. */
static void forward_error(const embedder *e, const embed_shape *s,
                          int status, void *const *io, const int64_t *order,
                          int64_t count, int64_t rows, dsc_err *err)
{
    if (status == DSC_EBADTOKEN) {
        for (int64_t b = 0; b < count; b++)
            if (check_sentence(e->o, s, e->tokens, order[b], err))
                return;
        runner_bad_token(s->built.model->graph, io, rows, NULL,
                         e->o->text_path ? e->o->text_path : "dsc", err);
        return;
    }
    const char *why = rt_ctx_error(e->ctx);
    if (why && *why)
        err_set(err, "dsc: error: embed: the model failed: %s", why);
    else if (status == DSC_ENOMEM)
        err_set(err, "dsc: error: embed: out of memory in the model's "
                "kernels");
    else
        err_set(err, "dsc: error: embed: the model returned status %d",
                status);
}


static void embedder_free(embedder *e)
{
    for (int i = 0; i < e->n_shapes; i++) {
        loaded_free(e->shapes[i].code);
        built_model_free(&e->shapes[i].built);
    }
    free(e->weights);
    free(e->arena);
    rt_ctx_free(e->ctx);
}


/* Longest first, then in text order: a stable sort by merging. */
static void sort_by_length(const tok_batch *t, int64_t *v, int64_t *tmp,
                           int64_t n)
{
    if (n < 2)
        return;
    int64_t h = n / 2;
    sort_by_length(t, v, tmp, h);
    sort_by_length(t, v + h, tmp, n - h);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = len_of(t, v[j]) > len_of(t, v[i]) ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}


/* Rows for a forward of `real` tokens. */
static int64_t round_rows(int64_t real)
{
    int64_t r = (real + EMBED_ROW_STEP - 1) / EMBED_ROW_STEP * EMBED_ROW_STEP;
    return r ? r : EMBED_ROW_STEP;
}


float *embed_sentences(const embed_options *o, const tok_batch *tokens,
                       int64_t *dim, embed_stats *stats, dsc_err *err)
{
    embed_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    embedder e = { .o = o, .tokens = tokens, .stats = stats };
    int64_t n = tokens->n, B = o->batch;
    int64_t budget = o->tokens > 0 ? o->tokens : EMBED_TOKENS;
    float *result = NULL, *out = NULL;
    int32_t *in[EMBED_INPUTS] = {0};
    int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int64_t *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    for (int64_t i = 0; i < n; i++)
        if (len_of(tokens, i) > budget)
            budget = len_of(tokens, i);  /* a sentence always fits alone */
    int64_t max_rows = round_rows(budget);
    for (int i = 0; i < EMBED_INPUTS; i++)
        in[i] = malloc((size_t)(i == 3 ? B : max_rows) * sizeof(int32_t));
    if (check_own_keys(&o->build, err))
        goto done;
    if (B < 1) {
        err_set(err, "dsc: error: embed: a batch of %lld sentences",
                (long long)B);
        goto done;
    }
    if (!order || !tmp || !in[0] || !in[1] || !in[2] || !in[3] ||
        !(e.ctx = rt_ctx_new(o->threads))) {
        err_set(err, "dsc: error: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    sort_by_length(tokens, order, tmp, n);
    int64_t b0 = 0;
    do {
        /* The next sentences, in order, while they fit. */
        int64_t count = 0, real = 0;
        while (b0 + count < n && count < B &&
               (count == 0 ||
                real + len_of(tokens, order[b0 + count]) <= budget))
            real += len_of(tokens, order[b0 + count++]);
        int64_t rows = round_rows(real);
        embed_shape *s = shape_for(&e, rows, err);
        if (!s)
            goto done;
        if (!out) {
            *dim = s->dim;
            if (!(result = malloc((size_t)(n * s->dim + 1) * sizeof *result))
                || !(out = malloc((size_t)(B * s->dim) * sizeof *out))) {
                err_set(err, "dsc: error: out of memory");
                goto done;
            }
        }
        int32_t *ids = in[0], *types = in[1], *pos = in[2], *lens = in[3];
        int64_t row = 0;
        for (int64_t b = 0; b < B; b++) {
            int64_t len = b < count ? len_of(tokens, order[b0 + b]) : 0;
            const int32_t *src = len ? tokens->ids +
                                       tokens->start[order[b0 + b]] : NULL;
            for (int64_t i = 0; i < len; i++, row++) {
                ids[row] = src[i];
                types[row] = 0;
                pos[row] = (int32_t)i;
            }
            lens[b] = (int32_t)len;
        }
        for (; row < rows; row++) {  /* rows of no sentence */
            ids[row] = o->pad_id;
            types[row] = pos[row] = 0;
        }
        stats->real_tokens += real;
        stats->rows += rows;
        stats->forwards++;
        void *io[EMBED_INPUTS + 1];
        for (int i = 0; i < EMBED_INPUTS; i++)
            io[s->slot[i]] = in[i];
        io[EMBED_INPUTS] = out;
        double t0 = timing_now_ms();
        int status = loaded_entry(s->code)(e.ctx, e.weights, io, e.arena);
        stats->forward_ms += timing_now_ms() - t0;
        if (status != DSC_OK) {
            forward_error(&e, s, status, io, order + b0, count, rows, err);
            goto done;
        }
        for (int64_t b = 0; b < count; b++)
            memcpy(result + order[b0 + b] * s->dim, out + b * s->dim,
                   (size_t)s->dim * sizeof *out);
        b0 += count;
    } while (b0 < n);
    free(order);
    free(tmp);
    free(out);
    for (int i = 0; i < EMBED_INPUTS; i++)
        free(in[i]);
    embedder_free(&e);
    return result;
done:
    free(result);
    free(order);
    free(tmp);
    free(out);
    for (int i = 0; i < EMBED_INPUTS; i++)
        free(in[i]);
    embedder_free(&e);
    return NULL;
}
