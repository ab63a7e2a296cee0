#include "driver/build.h"

#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"

extern const char embedded_runtime_h[];


const char *build_runtime_header(void)
{
    return embedded_runtime_h;
}


typedef int (*graph_pass)(graph *g, pass_report *report, dsc_err *err);


/* Run one pass, check the graph it leaves, say what it did. */
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
        (opts->layout ? weights_plan_for(g, opts->layout, &out->weights, err)
                      : weights_plan(g, &out->weights, err))) {
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
