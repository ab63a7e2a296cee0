/* train.c — build a model's train step beside its forward; save the
 * trained weights.
 *
 * The training graph comes from its own run of the model file: dropout
 * stays (those with p = 0 go, as identities), fuse-qkv and fuse-epilogue
 * run on the forward as for inference, then autodiff appends the backward,
 * dce and plan-memory run on the whole, and the weight layout is checked
 * against the forward's so one blob serves both entry points. */
#include "driver/train.h"

#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"
#include "backend/emit_train.h"
#include "dsc_runtime.h"
#include "frontend/frontend.h"

extern const char embedded_runtime_h[];


/* Dropout with p = 0 is the identity: its readers read its input. */
static void drop_identity_dropout(graph *g)
{
    char *dead = calloc((size_t)g->n_nodes + 1, 1);
    if (!dead)
        return;  /* keeping them is correct, only slower */
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op != GRAPH_OP_DROPOUT || n->attrs.p > 0 ||
            g->tensors[n->output].kind == GRAPH_OUTPUT)
            continue;
        for (int k = i + 1; k < g->n_nodes; k++)
            for (int j = 0; j < g->nodes[k].n_inputs; j++)
                if (g->nodes[k].inputs[j] == n->output)
                    g->nodes[k].inputs[j] = n->inputs[0];
        dead[i] = 1;
    }
    dsc_err ignored;
    graph_remove_nodes(g, dead, &ignored);
    free(dead);
}


static int same_key(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}


/* Do the two graphs' layouts hold the same weights at the same offsets,
 * under the same keys: the train step uses the W_ macros the forward's
 * part of the file defines (named after the keys), and the model file,
 * run twice, could have declared others the second time. */
static int same_layout(const graph *ga, const weight_layout *a,
                       const graph *gb, const weight_layout *b)
{
    if (a->n_entries != b->n_entries || a->total_floats != b->total_floats)
        return 0;
    for (int e = 0; e < a->n_entries; e++) {
        if (a->entries[e].offset != b->entries[e].offset ||
            a->entries[e].floats != b->entries[e].floats ||
            a->entries[e].packed_linear != b->entries[e].packed_linear ||
            a->entries[e].packing != b->entries[e].packing)
            return 0;
        const graph_weight *wa = &ga->tensors[a->entries[e].tensor].weight;
        const graph_weight *wb = &gb->tensors[b->entries[e].tensor].weight;
        if (wa->n_parts != wb->n_parts)
            return 0;
        for (int k = 0; k < wa->n_parts; k++)
            if (!same_key(wa->part[k].key, wb->part[k].key) ||
                wa->part[k].row_first != wb->part[k].row_first ||
                wa->part[k].rows != wb->part[k].rows ||
                wa->part[k].transposed != wb->part[k].transposed)
                return 0;
    }
    return 1;
}


static char *concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 1);
    if (p) {
        memcpy(p, a, na);
        memcpy(p + na, b, nb + 1);
    }
    return p;
}


int build_train(const char *path, const build_options *opts, built_train *out,
                dsc_err *err)
{
    build_options none = {0};
    if (!opts)
        opts = &none;
    memset(out, 0, sizeof *out);
    /* Adam updates the weights in place, in float32: a reduced format
     * would round every step's update away. */
    if (opts->weight_format != DSC_WEIGHTS_F32 ||
        DSC_LAYOUT_FORMAT_OF(opts->layout) != DSC_WEIGHTS_F32)
        return err_set(err, "%s: error: -fweights=%s: training keeps float32 "
                       "weights (bf16 and q8 are for compile, run, generate "
                       "and bench)", path, rt_format_name(
                           opts->weight_format ? opts->weight_format
                           : DSC_LAYOUT_FORMAT_OF(opts->layout)));
    if (build_model(path, opts, &out->fwd, err))
        return -1;
    built_model *t = &out->train;
    pass_report r;
    char *src = NULL, *hdr = NULL;
    /* Loaded again, as build_model loads it: the same text, the same
     * limits. */
    frontend_limits limits = frontend_default_limits();
    limits.print = opts->print;
    t->model = opts->text
        ? frontend_load_string(path, opts->text, opts->text_len,
                               opts->defines, opts->n_defines, &limits, err)
        : frontend_load(path, opts->defines, opts->n_defines, &limits, err);
    if (!t->model)
        goto fail;
    graph *g = t->model->graph;
    if (!g->loss_plus1) {
        err_set(err, "%s: error: the model declares no loss to train (add "
                "dsc.loss(dsc.cross_entropy(logits, targets)))", path);
        goto fail;
    }
    drop_identity_dropout(g);
    const graph_node *ce = &g->nodes[g->tensors[g->loss_plus1 - 1].producer];
    out->targets = ce->inputs[1];
    const graph_shape *ls = &g->tensors[ce->inputs[0]].shape;
    out->classes = ls->dim[ls->rank - 1];
    if ((!opts->no_fuse_qkv && pass_fuse_qkv(g, &r, err)) ||
        (!opts->no_fuse_epilogue && pass_fuse_epilogue(g, &r, err)) ||
        pass_autodiff(g, &r, err) || graph_verify(g, path, err) ||
        (!opts->no_dce && pass_dce(g, &r, err)) ||
        pass_plan_memory(g, !opts->no_plan_memory, &t->plan, err) ||
        weights_plan(g, &t->weights, err))
        goto fail;
    if (opts->verbose)
        fprintf(opts->verbose, "dsc: train step: %d nodes, arena %lld bytes "
                "(lower bound %lld, without reuse %lld)\n", g->n_nodes,
                (long long)t->plan.arena_bytes,
                (long long)t->plan.lower_bound_bytes,
                (long long)t->plan.no_reuse_bytes);
    if (!same_layout(out->fwd.model->graph, &out->fwd.weights, g,
                     &t->weights)) {
        err_set(err, "%s: error: the train step reads weights the forward "
                "does not (or the reverse); dsc trains models whose every "
                "weight reaches both the outputs and the loss", path);
        goto fail;
    }
    if (!(src = emit_train_source(t->model, &t->plan, &t->weights, err)))
        goto fail;
    if (!(hdr = emit_train_header(t->model, &t->plan, &t->weights))) {
        err_set(err, "%s: error: out of memory", path);
        goto fail;
    }
    /* The header's #endif stays last. */
    const char *fh = out->fwd.header;
    const char *endif = NULL;
    for (const char *at = strstr(fh, "\n#endif"); at;
         at = strstr(at + 1, "\n#endif"))
        endif = at;
    size_t cut = endif ? (size_t)(endif - fh) + 1 : strlen(fh);
    char *head = malloc(cut + 1);
    if (head) {
        memcpy(head, fh, cut);
        head[cut] = '\0';
    }
    char *h1 = head ? concat(head, hdr) : NULL;
    free(head);
    t->source = concat(out->fwd.source, src);
    t->jit_source = concat(out->fwd.jit_source, src);
    t->header = h1 ? concat(h1, "\n#endif\n") : NULL;
    free(h1);
    if (!t->source || !t->jit_source || !t->header) {
        err_set(err, "%s: error: out of memory", path);
        goto fail;
    }
    emit_train_entry_name(t->model, t->entry, sizeof t->entry);
    snprintf(t->passes, sizeof t->passes, "%.100s autodiff", out->fwd.passes);
    t->plan.arena_bytes = emit_train_arena_bytes(g, &t->plan);
    out->state_floats = rt_train_state_floats(t->weights.total_floats);
    free(src);
    free(hdr);
    return 0;
fail:
    free(src);
    free(hdr);
    built_train_free(out);
    return -1;
}


void built_train_free(built_train *b)
{
    built_model_free(&b->fwd);
    built_model_free(&b->train);
    memset(b, 0, sizeof *b);
}


/* ---- saving ------------------------------------------------------------- */

typedef struct saved_key {
    const char *key;
    int first;           /* the order the model first names it in */
    graph_shape shape;
    float *data;
} saved_key;


/* By key, then first mention: the first of equal keys is the earliest. */
static int cmp_saved(const void *a, const void *b)
{
    const saved_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->first > y->first) - (x->first < y->first);
}


static int cmp_first(const void *a, const void *b)
{
    const saved_key *x = *(const saved_key *const *)a;
    const saved_key *y = *(const saved_key *const *)b;
    return (x->first > y->first) - (x->first < y->first);
}


/* keys is sorted by key: a search, not a scan per key (a checkpoint may
 * hold many thousands). */
static saved_key *find_key(saved_key *keys, int n, const char *key)
{
    size_t lo = 0, hi = (size_t)n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, keys[mid].key);
        if (!c)
            return &keys[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}


int train_save(const built_train *b, const float *blob, const st_file *orig,
               const char *out_path, dsc_err *err)
{
    const graph *g = b->train.model->graph;
    const weight_layout *w = &b->train.weights;
    int n = 0, rc = -1, parts = 0;
    saved_key *keys = NULL;
    const saved_key **order = NULL;
    float *rows = NULL;
    st_out_tensor *out = NULL;
    /* The keys the model names, each once (its first part's shape),
     * sorted for find_key. */
    for (int e = 0; e < w->n_entries; e++)
        parts += g->tensors[w->entries[e].tensor].weight.n_parts;
    if (!(keys = calloc((size_t)parts + 1, sizeof *keys)))
        goto oom;
    for (int e = 0; e < w->n_entries; e++) {
        const graph_weight *gw = &g->tensors[w->entries[e].tensor].weight;
        for (int k = 0; k < gw->n_parts; k++)
            if (gw->part[k].key) {
                keys[n] = (saved_key){ .key = gw->part[k].key, .first = n,
                                       .shape = gw->part[k].key_shape };
                n++;
            }
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_saved);
    int distinct = 0;
    for (int i = 0; i < n; i++)
        if (!distinct || strcmp(keys[distinct - 1].key, keys[i].key))
            keys[distinct++] = keys[i];
    n = distinct;
    for (int i = 0; i < n; i++)
        if (!(keys[i].data = calloc((size_t)graph_shape_count(&keys[i].shape),
                                    sizeof(float))))
            goto oom;
    for (int e = 0; e < w->n_entries; e++) {
        const weight_entry *we = &w->entries[e];
        const graph_tensor *t = &g->tensors[we->tensor];
        int64_t count = graph_shape_count(&t->shape);
        int64_t row = count / t->shape.dim[0];
        free(rows);
        if (!(rows = malloc((size_t)count * sizeof *rows)))
            goto oom;
        if (we->packed_linear) {
            if (rt_linear_unpack(rows, blob + we->offset, t->shape.dim[0],
                                 t->shape.dim[1])) {
                err_set(err, "%s: error: weight '%s' is not packed in a "
                        "layout this runtime knows", out_path, t->name);
                goto done;
            }
        } else
            memcpy(rows, blob + we->offset, (size_t)count * sizeof *rows);
        const float *at = rows;
        for (int k = 0; k < t->weight.n_parts; k++) {
            const graph_weight_part *p = &t->weight.part[k];
            saved_key *s = p->key ? find_key(keys, n, p->key) : NULL;
            if (s && p->transposed) {  /* the file's [in, out] */
                int64_t in = p->key_shape.dim[0], o = p->key_shape.dim[1];
                for (int64_t r = 0; r < p->rows; r++)
                    for (int64_t c = 0; c < in; c++)
                        s->data[c * o + p->row_first + r] = at[r * in + c];
            } else if (s) {
                memcpy(s->data + p->row_first * row, at,
                       (size_t)(p->rows * row) * sizeof(float));
            }
            at += p->rows * row;
        }
    }
    /* Without the original, the keys go out in the order the model
     * names them. */
    if (!(order = malloc(((size_t)n + 1) * sizeof *order)))
        goto oom;
    for (int i = 0; i < n; i++)
        order[i] = &keys[i];
    qsort(order, (size_t)n, sizeof *order, cmp_first);
    int n_out = orig ? st_count(orig) : n;
    if (!(out = calloc((size_t)n_out + 1, sizeof *out)))
        goto oom;
    for (int i = 0; i < n_out; i++) {
        const st_tensor *o = orig ? st_at(orig, i) : NULL;
        const saved_key *s = o ? find_key(keys, n, o->name) : order[i];
        if (s) {
            out[i] = (st_out_tensor){ .name = s->key, .dtype = ST_F32,
                                      .rank = s->shape.rank, .data = s->data,
                                      .nbytes = (size_t)graph_shape_count(
                                          &s->shape) * sizeof(float) };
            for (int d = 0; d < s->shape.rank; d++)
                out[i].shape[d] = s->shape.dim[d];
        } else {  /* a key the model does not train: as it was */
            out[i] = (st_out_tensor){ .name = o->name, .dtype = o->dtype,
                                      .rank = o->rank, .data = o->data,
                                      .nbytes = o->nbytes };
            memcpy(out[i].shape, o->shape, sizeof o->shape);
        }
    }
    rc = st_write(out_path, out, n_out, err);
    goto done;
oom:
    err_set(err, "%s: error: out of memory", out_path);
done:
    for (int i = 0; i < n; i++)
        free(keys[i].data);
    free(keys);
    free(order);
    free(rows);
    free(out);
    return rc;
}
