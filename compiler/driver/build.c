#define _POSIX_C_SOURCE 200809L
#include "driver/build.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/emit_c.h"
#include "dsc_runtime.h"

extern const char embedded_runtime_h[];


const char *build_runtime_header(void)
{
    return embedded_runtime_h;
}


typedef int (*graph_pass)(graph *g, pass_report *report, dsc_err *err);


int64_t build_default_max_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || size <= 0)
        return (int64_t)4 << 30;
    return (int64_t)pages / 2 * size;
}


static int loc_in(const graph_loc *at, const char *path)
{
    return at->file && strcmp(at->file, path) == 0;
}


/* A model file declares how much memory running it takes: refuse one that
 * needs more than the limit before the arena or the weights are allocated
 * (a hostile or mistyped shape would otherwise take the machine's memory).
 * The error names the line of the largest tensor. */
static int check_memory(const built_model *b, int64_t limit, dsc_err *err)
{
    const graph *g = b->model->graph;
    double weights = (double)b->weights.total_floats * sizeof(float);
    double cache = (double)emit_cache_floats(g) * sizeof(float);
    double need = (double)b->plan.arena_bytes + weights + cache;
    if (limit <= 0)
        limit = build_default_max_memory();
    if (need <= (double)limit)
        return 0;
    /* The largest tensor still in use: a pass's leftovers (the linear a
     * fused ReLU used to read) have no producer and take no memory. */
    int big = -1;
    for (int i = 0; i < g->n_tensors; i++) {
        const graph_tensor *x = &g->tensors[i];
        if (x->producer < 0 && x->kind != GRAPH_INPUT &&
            x->kind != GRAPH_WEIGHT && x->kind != GRAPH_STATE)
            continue;
        if (big < 0 || graph_tensor_bytes(x) >
                           graph_tensor_bytes(&g->tensors[big]))
            big = i;
    }
    const char *model_path = b->model->path;
    if (big < 0)  /* need > 0: some tensor in use holds it */
        return err_set(err, "%s: error: the model needs %.0f bytes, more "
                       "than the memory limit of %lld bytes (--max-memory)",
                       model_path, need, (long long)limit);
    const graph_tensor *t = &g->tensors[big];
    /* The model file's line for it: its producer's; a weight's or input's
     * own, or where the block library declared it, its first reader's. */
    graph_loc at = { model_path, 0 };
    int node = t->producer;
    if (node < 0 && !loc_in(&t->loc, model_path))
        for (int n = 0; node < 0 && n < g->n_nodes; n++)
            for (int k = 0; k < g->nodes[n].n_inputs; k++)
                if (g->nodes[n].inputs[k] == big)
                    node = n;
    if (node >= 0 && node < g->n_nodes &&
        loc_in(&g->nodes[node].user_loc, model_path))
        at = g->nodes[node].user_loc;
    else if (loc_in(&t->loc, model_path))
        at = t->loc;
    char shape[96];
    char place[1100];
    snprintf(place, sizeof place, at.line > 0 ? "%s:%d" : "%s", at.file,
             at.line);
    return err_set(err, "%s: error: the model needs %.0f bytes (arena "
                   "%lld, weights %.0f, cache %.0f), more than the memory "
                   "limit of %lld bytes (--max-memory); its largest tensor, "
                   "'%.64s' %s, is declared here", place, need,
                   (long long)b->plan.arena_bytes, weights, cache,
                   (long long)limit,
                   t->name ? t->name : "?",
                   graph_shape_str(&t->shape, shape, sizeof shape));
}


/* Run one pass, check the graph it leaves, say what it did. */
int build_layout(const build_options *opts)
{
    int layout = opts->layout ? opts->layout
                              : rt_isa_layout(rt_isa_native());
    if (opts->weight_format)  /* the panel of --target, -fweights' format */
        layout = DSC_LAYOUT(DSC_LAYOUT_PANEL_OF(layout), opts->weight_format);
    return layout;
}


static int run_pass(built_model *b, const build_options *opts,
                    const char *name, graph_pass pass, int *changed,
                    dsc_err *err)
{
    graph *g = b->model->graph;
    int before = g->n_nodes;
    pass_report report = {0};
    if (pass(g, &report, err) || graph_verify(g, b->model->path, err))
        return -1;
    *changed = report.changed;
    if (opts->verbose)
        fprintf(opts->verbose, "dsc: %-14s %d changed, nodes %d -> %d\n",
                name, report.changed, before, g->n_nodes);
    size_t at = strlen(b->passes);
    snprintf(b->passes + at, sizeof b->passes - at, "%s%s", at ? " " : "",
             name);
    return 0;
}


int build_model(const char *path, const build_options *opts,
                built_model *out, dsc_err *err)
{
    build_options none = {0};
    if (!opts)
        opts = &none;
    memset(out, 0, sizeof *out);
    frontend_limits limits = frontend_default_limits();
    limits.print = opts->print;
    out->model = opts->text
        ? frontend_load_string(path, opts->text, opts->text_len,
                               opts->defines, opts->n_defines, &limits, err)
        : frontend_load(path, opts->defines, opts->n_defines, &limits, err);
    if (!out->model)
        return -1;
    build_stats *st = &out->stats;
    graph *g = out->model->graph;
    pass_report eval_mode;
    if (pass_eval_mode(g, &eval_mode, err)) {
        built_model_free(out);
        return -1;
    }
    st->nodes_before = g->n_nodes;
    if ((!opts->no_fuse_qkv &&
         run_pass(out, opts, "fuse-qkv", pass_fuse_qkv, &st->fused_qkv,
                  err)) ||
        (!opts->no_fuse_epilogue &&
         run_pass(out, opts, "fuse-epilogue", pass_fuse_epilogue,
                  &st->fused_epilogue, err)) ||
        (!opts->no_dce &&
         run_pass(out, opts, "dce", pass_dce, &st->dce_removed, err)) ||
        pass_plan_memory(g, !opts->no_plan_memory, &out->plan, err) ||
        weights_plan_for(g, build_layout(opts), &out->weights, err) ||
        check_memory(out, opts->max_memory, err)) {
        built_model_free(out);
        return -1;
    }
    if (!opts->no_plan_memory) {
        size_t at = strlen(out->passes);
        snprintf(out->passes + at, sizeof out->passes - at, "%splan-memory",
                 at ? " " : "");
    }
    if (opts->verbose)
        fprintf(opts->verbose, "dsc: %-14s arena %lld bytes (lower bound "
                "%lld, without reuse %lld)\n", opts->no_plan_memory ?
                "no-plan-memory" : "plan-memory",
                (long long)out->plan.arena_bytes,
                (long long)out->plan.lower_bound_bytes,
                (long long)out->plan.no_reuse_bytes);
    st->nodes_after = g->n_nodes;
    for (int i = 0; i < g->n_nodes; i++)
        st->gemm_calls += g->nodes[i].op == GRAPH_OP_LINEAR;
    st->arena_bytes = out->plan.arena_bytes;
    st->arena_lower_bound_bytes = out->plan.lower_bound_bytes;
    st->no_reuse_bytes = out->plan.no_reuse_bytes;
    st->weight_bytes = out->weights.total_floats * (int64_t)sizeof(float);

    emit_options shipped = { .passes = out->passes,
                             .source_name = opts->source_name,
                             .header_name = opts->header_name };
    emit_options jit = shipped;
    jit.inline_runtime_header = embedded_runtime_h;
    if (emit_check(out->model, &shipped, err)) {
        built_model_free(out);
        return -1;
    }
    out->source = emit_c_source(out->model, &out->plan, &out->weights,
                                &shipped);
    out->header = emit_c_header(out->model, &out->plan, &out->weights,
                                &shipped);
    out->jit_source = emit_c_source(out->model, &out->plan, &out->weights,
                                    &jit);
    emit_entry_name(out->model, out->entry, sizeof out->entry);
    if (!out->source || !out->header || !out->jit_source) {
        built_model_free(out);
        return err_set(err, "%s: error: out of memory generating C", path);
    }
    return 0;
}


void build_stats_json(const built_model *b, char *buf, int len)
{
    const build_stats *s = &b->stats;
    snprintf(buf, (size_t)len,
             "{\"model\": \"%s\", \"passes\": \"%s\", \"nodes_before\": %d, "
             "\"nodes_after\": %d, \"gemm_calls\": %d, \"fused_qkv\": %d, "
             "\"fused_epilogue\": %d, \"dce_removed\": %d, "
             "\"arena_bytes\": %lld, \"arena_lower_bound_bytes\": %lld, "
             "\"no_reuse_bytes\": %lld, \"weight_bytes\": %lld}",
             b->model->name, b->passes, s->nodes_before, s->nodes_after,
             s->gemm_calls, s->fused_qkv, s->fused_epilogue, s->dce_removed,
             (long long)s->arena_bytes, (long long)s->arena_lower_bound_bytes,
             (long long)s->no_reuse_bytes, (long long)s->weight_bytes);
}


void built_model_free(built_model *b)
{
    model_free(b->model);
    memory_plan_free(&b->plan);
    weights_layout_free(&b->weights);
    free(b->source);
    free(b->header);
    free(b->jit_source);
    memset(b, 0, sizeof *b);
}
