#include "build.h"

#include <stdlib.h>
#include <string.h>

#include "emit_c.h"

extern const char embedded_runtime_h[];


const char *build_runtime_header(void)
{
    return embedded_runtime_h;
}


int build_model(const char *path, const build_options *opts,
                built_model *out, dsc_err *err)
{
    build_options none = {0};
    if (!opts)
        opts = &none;
    memset(out, 0, sizeof *out);
    out->model = frontend_load(path, opts->defines, opts->n_defines, NULL,
                               err);
    if (!out->model)
        return -1;
    const char *passes = opts->no_plan_memory ? "" : "plan-memory";
    if (pass_plan_memory(out->model->graph, !opts->no_plan_memory, &out->plan,
                         err) ||
        weights_plan(out->model->graph, &out->weights, err)) {
        built_model_free(out);
        return -1;
    }
    emit_options shipped = { .passes = passes };
    emit_options jit = { .passes = passes,
                         .inline_runtime_header = embedded_runtime_h };
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
