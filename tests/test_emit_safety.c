/* test_emit_safety.c — a hostile model file cannot put code into the C
 * that dsc writes (and `dsc run` compiles and runs).
 *
 * One test per attack: weight keys, config keys and values, the model's
 * path, input and output names that clash with dsc's own names or are C
 * keywords and macros, float constants out of float32's range, the -o file
 * name; the same in a model that declares a loss, whose C also holds
 * NAME_train_step (dsc train, dsc compile --train); then a deterministic randomized run of the names harness
 * (tests/fuzz/fuzz_names.h, which `make fuzz` runs under libFuzzer).  Each
 * builds a small model, checks the C with emit_verify (compiles with tcc,
 * no preprocessor line, declaration or symbol dsc did not write) and then
 * that the injected words appear nowhere outside comments. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/emit_dot.h"
#include "backend/emit_train.h"
#include "fuzz/fuzz_names.h"
#include "io/fileio.h"
#include "util/ctext.h"
#include "util/rng.h"
#include "cli_test.h"

/* Field overrides for the harness's model: {field, text}, ended by -1. */
typedef struct field_set {
    int field;
    const char *text;
} field_set;


/* Build and check the harness model with these fields; the verdict. */
static void verify_fields(const field_set *set, emit_verdict *v)
{
    const char *field[F_COUNT];
    size_t len[F_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        field[i] = names_defaults[i];
    for (; set && set->field >= 0; set++)
        field[set->field] = set->text;
    for (int i = 0; i < F_COUNT; i++)
        len[i] = strlen(field[i]);
    names_verdict_of_fields(field, len, "fuzz.lua", v);
}


/* The verdict is OK and none of words is in any text outside comments. */
static void expect_clean(emit_verdict *v, const char *const *words)
{
    cr_assert_eq(v->status, VERDICT_OK, "%s%s", v->why,
                 v->status == VERDICT_REFUSED ? v->err.msg : "");
    const char *texts[3] = { v->source, v->header, v->jit };
    for (int t = 0; t < 3; t++) {
        char *code = names_strip_comments(texts[t]);
        for (int w = 0; words[w]; w++)
            cr_expect(!strstr(code, words[w]), "'%s' outside comments in:\n%s",
                      words[w], texts[t]);
        free(code);
    }
}


static void expect_clean_fields(const field_set *set, const char *const *words)
{
    emit_verdict v;
    verify_fields(set, &v);
    expect_clean(&v, words);
    verdict_free(&v);
}


/* ---- the attacks of issue 15 ---- */

Test(emit_safety, a_weight_key_cannot_end_its_comment)
{
    static const char *const keys[] = {
        "k */\nint system(const char *);\n#define rt_linear(...) "
        "system(\"id > /tmp/dsc-pwned\")\n/*",
        "k*/int system(const char*);/*",
        "k ?\?/\n#define W_K 0",         /* a trigraph backslash-newline */
        "k \\\n#define evil 1",          /* a backslash-newline */
        "*/", "/*", "*", "/", "?", "?\?=", "k*", "/k",
    };
    static const char *const words[] = { "system", "evil", "pwned",
                                         "#define rt_", NULL };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        for (int f = F_EMB; f <= F_BETA; f++) {
            field_set set[] = { { f, keys[i] }, { -1, NULL } };
            expect_clean_fields(set, words);
        }
}


Test(emit_safety, config_keys_and_values_cannot_end_the_header_comment)
{
    static const char *const texts[] = {
        "*/\n#include \"/etc/hostname\"\n/*",
        "*/ __attribute__((constructor)) static void evil(void) { } /*",
        "a */ int evil_global = 1; /* b",
        "\n#include </etc/hostname>\n",
    };
    static const char *const words[] = { "hostname", "evil", "constructor",
                                         NULL };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        field_set key[] = { { F_CONFIG_KEY, texts[i] }, { -1, NULL } };
        field_set value[] = { { F_CONFIG_VALUE, texts[i] }, { -1, NULL } };
        field_set define[] = { { F_CONFIG_VALUE, "v" }, { F_DEFINE, texts[i] },
                               { -1, NULL } };  /* -D d_model=TEXT */
        expect_clean_fields(key, words);
        expect_clean_fields(value, words);
        expect_clean_fields(define, words);
    }
    /* The -D value is the one the comment shows. */
    field_set define[] = { { F_CONFIG_VALUE, "v" }, { F_DEFINE, "from-D" },
                           { -1, NULL } };
    emit_verdict v;
    verify_fields(define, &v);
    cr_assert_eq(v.status, VERDICT_OK, "%s%s", v.why, v.err.msg);
    cr_expect(strstr(v.source, " * config: d_model=from-D\n"), "%s",
              v.source);
    verdict_free(&v);
}


Test(emit_safety, the_model_path_cannot_end_a_comment)
{
    static const char *const paths[] = {
        "models/x\n#include \"/etc/hostname\"\n*/m.lua",
        "m*/int evil;/*.lua",
        "/tmp/?\?/\nevil*/int evil;\n/*.lua",
        "dsc_runtime.lua",   /* its guard would hide the runtime's header */
        "rt_linear.lua", "9.lua", ".lua", "int.lua", "__attribute__.lua",
    };
    static const char *const words[] = { "hostname", "evil", NULL };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        field_set set[] = { { F_PATH, paths[i] }, { -1, NULL } };
        emit_verdict v;
        verify_fields(set, &v);
        expect_clean(&v, words);
        /* The functions are named after a safe identifier. */
        cr_expect(v.ident[0] >= 'a' && v.ident[0] <= 'z', "%s", v.ident);
        verdict_free(&v);
    }
}


Test(emit_safety, names_that_clash_with_dsc_or_c_still_compile)
{
    static const field_set sets[][7] = {
        { { F_TOKENS, "w" }, { F_X, "a" }, { F_OUT1, "relu_6_" },
          { F_OUT2, "int" }, { F_OUT3, "NULL" }, { -1, NULL } },
        { { F_TOKENS, "int32_t" }, { F_X, "ctx" }, { F_OUT1, "main" },
          { F_OUT2, "s" }, { F_OUT3, "rt_linear" }, { -1, NULL } },
        { { F_TOKENS, "arena" }, { F_X, "n" }, { F_OUT1, "DSC_OK" },
          { F_OUT2, "x" }, { F_OUT3, "X" }, { -1, NULL } },
        { { F_TOKENS, "in_x" }, { F_X, "x" }, { F_OUT1, "out_y" },
          { F_OUT2, "y" }, { F_OUT3, "return" }, { -1, NULL } },
        /* A decoder: its prefill and decode wrappers name the tokens. */
        { { F_MODE, "decoder" }, { F_TOKENS, "token" }, { F_OUT1, "n" },
          { -1, NULL } },
        { { F_MODE, "decoder" }, { F_TOKENS, "cache" }, { F_OUT1, "pos" },
          { -1, NULL } },
        /* Model "in": the parameter in_step must not hide in_step(). */
        { { F_MODE, "decoder" }, { F_PATH, "in.lua" }, { F_TOKENS, "step" },
          { F_OUT1, "decode" }, { -1, NULL } },
        { { F_PATH, "out.lua" }, { F_OUT1, "forward" }, { F_OUT2, "forward_io" },
          { -1, NULL } },
    };
    static const char *const none[] = { NULL };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        expect_clean_fields(sets[i], none);
}


Test(emit_safety, weight_keys_that_map_to_one_macro_get_distinct_ones)
{
    field_set set[] = { { F_W, "a.b" }, { F_B, "a_b" }, { F_G, "a_b_2" },
                        { F_BETA, "A-B" }, { F_EMB, "W_A_B" }, { -1, NULL } };
    emit_verdict v;
    verify_fields(set, &v);
    static const char *const none[] = { NULL };
    expect_clean(&v, none);  /* each #define once: emit_verify checks */
    cr_expect(strstr(v.source, "#define W_A_B "), "%s", v.source);
    cr_expect(strstr(v.source, "#define W_A_B_2 "), "%s", v.source);
    cr_expect(strstr(v.source, "#define W_A_B_3 "), "%s", v.source);
    verdict_free(&v);
}


/* The line of the model text that holds what. */
static int line_of(const char *lua, const char *what)
{
    const char *at = strstr(lua, what);
    cr_assert_not_null(at, "%s not in the model", what);
    int line = 1;
    for (const char *p = lua; p < at; p++)
        line += *p == '\n';
    return line;
}


Test(emit_safety, constants_out_of_float_range_are_errors_naming_the_line)
{
    static const struct {
        int mode_decoder, field;
        const char *value, *op, *call;
    } cases[] = {
        { 0, F_EPS, "1e300", "layernorm eps", "dsc.layernorm" },
        { 0, F_EPS, "1e39", "layernorm eps", "dsc.layernorm" },
        { 0, F_SCALE, "1e300", "attention scale", "dsc.attention" },
        { 0, F_SCALE, "0x1p200", "attention scale", "dsc.attention" },
        { 1, F_SCALE, "1e300", "kv_attention scale", "dsc.kv_attention" },
        { 1, F_EPS, "1e40", "layernorm eps", "dsc.layernorm" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        field_set set[] = { { cases[i].field, cases[i].value },
                            { F_MODE, cases[i].mode_decoder ? "d" : "" },
                            { -1, NULL } };
        emit_verdict v;
        verify_fields(set, &v);
        cr_expect_eq(v.status, VERDICT_REFUSED, "%s = %s compiled",
                     cases[i].op, cases[i].value);
        /* Which line: the model text's line with the call. */
        const char *field[F_COUNT];
        size_t len[F_COUNT];
        for (int f = 0; f < F_COUNT; f++) {
            field[f] = names_defaults[f];
            len[f] = strlen(field[f]);
        }
        field[cases[i].field] = cases[i].value;
        len[cases[i].field] = strlen(cases[i].value);
        field[F_MODE] = cases[i].mode_decoder ? "d" : "";
        len[F_MODE] = strlen(field[F_MODE]);
        char *lua = names_model_text(field, len);
        char want[200];
        snprintf(want, sizeof want, "fuzz.lua:%d: error: %s ",
                 line_of(lua, cases[i].call), cases[i].op);
        cr_expect(strstr(v.err.msg, want), "'%s' not in: %s", want,
                  v.err.msg);
        free(lua);
        verdict_free(&v);
    }
    /* The largest float and the smallest subnormal are fine. */
    field_set fine[] = { { F_EPS, "3.4028234e38" }, { F_SCALE, "1e-45" },
                         { -1, NULL } };
    static const char *const none[] = { NULL };
    expect_clean_fields(fine, none);
}


Test(emit_safety, the_emitter_itself_refuses_a_non_finite_constant)
{
    /* The frontend refuses eps <= 0 and NaN; the emitter must not rely on
     * it, whatever made the graph. */
    const char *lua =
        "local x = dsc.input(\"x\", {2, 4})\n"
        "local y = dsc.layernorm(x, dsc.weight(\"g\", {4}), "
        "dsc.weight(\"b\", {4}))\n"
        "dsc.output(\"y\", y)\n";
    dsc_err err;
    model *m = frontend_load_string("nan.lua", lua, strlen(lua), NULL, 0,
                                    NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    memory_plan plan = {0};
    weight_layout layout = {0};
    cr_assert_eq(pass_plan_memory(m->graph, 1, &plan, &err), 0);
    cr_assert_eq(weights_plan(m->graph, &layout, &err), 0);
    cr_assert_eq(emit_check(m, NULL, &err), 0, "%s", err.msg);
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m->graph->nodes[0].attrs.eps = bad[i];
        cr_expect_eq(emit_check(m, NULL, &err), -1);
        cr_expect(strstr(err.msg, "nan.lua:2: error: layernorm eps is "),
                  "%s", err.msg);
        cr_expect_null(emit_c_source(m, &plan, &layout, NULL));
        cr_expect_null(emit_c_header(m, &plan, &layout, NULL));
    }
    weights_layout_free(&layout);
    memory_plan_free(&plan);
    model_free(m);
}


Test(emit_safety, the_c_includes_the_header_by_the_name_it_is_written_under)
{
    field_set set[] = { { F_FILE, "other" }, { -1, NULL } };
    emit_verdict v;
    verify_fields(set, &v);
    static const char *const none[] = { NULL };
    expect_clean(&v, none);
    cr_expect(strstr(v.source, "#include \"other.h\"\n"), "%s", v.source);
    cr_expect(strstr(v.source, "/* other.c — generated"), "%s", v.source);
    cr_expect(strstr(v.header, "/* other.h — generated"), "%s", v.header);
    verdict_free(&v);
    static const char *const bad[] = { "we\"ird", "a\nb", "a\\b", ".hidden",
                                       "a b", "x*/y" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        field_set b[] = { { F_FILE, bad[i] }, { -1, NULL } };
        verify_fields(b, &v);
        cr_expect_eq(v.status, VERDICT_REFUSED, "'%s' was accepted", bad[i]);
        cr_expect(strstr(v.err.msg, "file's name"), "%s", v.err.msg);
        verdict_free(&v);
    }
}


/* ---- the same attacks on a model with a loss: NAME_train_step ---- */

/* As expect_clean_fields, on the model with a loss (mode "t"): the texts
 * checked are the train build's. */
static void expect_clean_trained(const field_set *set,
                                 const char *const *words)
{
    field_set all[F_COUNT + 2];
    int n = 0;
    all[n++] = (field_set){ F_MODE, "t" };
    for (; set && set->field >= 0; set++)
        all[n++] = *set;
    all[n] = (field_set){ -1, NULL };
    emit_verdict v;
    verify_fields(all, &v);
    expect_clean(&v, words);
    cr_expect(v.trained, "the train step was not built");
    cr_expect(strstr(v.source, "_train_step("), "%s", v.source);
    verdict_free(&v);
}


Test(emit_safety, the_train_step_holds_no_injected_key_config_or_path)
{
    static const char *const keys[] = {
        "k */\nint system(const char *);\n#define rt_adam(...) "
        "system(\"id > /tmp/dsc-pwned\")\n/*",
        "k ?\?/\n#define W_K 0", "k \\\n#define evil 1", "*/", "/*",
    };
    static const char *const words[] = { "system", "evil", "pwned",
                                         "hostname", "constructor",
                                         "#define rt_", NULL };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        for (int f = F_EMB; f <= F_BETA; f++) {
            field_set set[] = { { f, keys[i] }, { -1, NULL } };
            expect_clean_trained(set, words);
        }
    static const char *const config[] = {
        "*/\n#include \"/etc/hostname\"\n/*",
        "*/ __attribute__((constructor)) static void evil(void) { } /*",
    };
    for (size_t i = 0; i < sizeof config / sizeof config[0]; i++) {
        field_set key[] = { { F_CONFIG_KEY, config[i] }, { -1, NULL } };
        field_set value[] = { { F_CONFIG_VALUE, config[i] }, { -1, NULL } };
        field_set define[] = { { F_CONFIG_VALUE, "v" },
                               { F_DEFINE, config[i] }, { -1, NULL } };
        expect_clean_trained(key, words);
        expect_clean_trained(value, words);
        expect_clean_trained(define, words);
    }
    static const char *const paths[] = {
        "models/x\n#include \"/etc/hostname\"\n*/m.lua",
        "/tmp/?\?/\nevil*/int evil;\n/*.lua", "rt_adam.lua", "9.lua",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        field_set set[] = { { F_PATH, paths[i] }, { -1, NULL } };
        expect_clean_trained(set, words);
    }
}


Test(emit_safety, train_step_names_that_clash_with_dsc_or_c_still_compile)
{
    /* The step's own names (w, state, gw, scratch, io, the loss, its
     * functions) against inputs and outputs named like them. */
    static const field_set sets[][7] = {
        { { F_TOKENS, "w" }, { F_X, "a" }, { F_OUT1, "int" },
          { F_OUT2, "NULL" }, { F_OUT3, "state" }, { -1, NULL } },
        { { F_TOKENS, "loss" }, { F_X, "ctx" }, { F_OUT1, "train_step" },
          { F_OUT2, "out_loss" }, { F_OUT3, "gw" }, { -1, NULL } },
        { { F_TOKENS, "int" }, { F_X, "state" }, { F_OUT1, "scratch" },
          { F_OUT2, "io" }, { F_OUT3, "arena" }, { -1, NULL } },
        { { F_TOKENS, "NULL" }, { F_X, "in_loss" }, { F_OUT1, "w" },
          { F_OUT2, "a" }, { F_OUT3, "ctx" }, { -1, NULL } },
        /* Model "in": in_train_step is its function, not a parameter. */
        { { F_PATH, "in.lua" }, { F_TOKENS, "train_step" },
          { F_X, "train_step_io" }, { -1, NULL } },
        /* Model "w": the W_ macros and the model's own W_..._COUNT ones. */
        { { F_PATH, "w.lua" }, { F_EMB, "loss_count" }, { F_W, "y_count" },
          { F_B, "state_floats" }, { F_G, "train_arena_bytes" },
          { -1, NULL } },
        { { F_FILE, "other" }, { F_TOKENS, "x" }, { F_X, "X" }, { -1, NULL } },
    };
    static const char *const none[] = { NULL };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        expect_clean_trained(sets[i], none);
    /* The parameters follow the forward's scheme. */
    field_set loss[] = { { F_MODE, "t" }, { F_TOKENS, "loss" },
                         { F_X, "state" }, { -1, NULL } };
    emit_verdict v;
    verify_fields(loss, &v);
    cr_assert_eq(v.status, VERDICT_OK, "%s%s", v.why, v.err.msg);
    cr_expect(strstr(v.source, "int fuzz_train_step(rt_ctx *ctx, float *w, "
                     "float *state, const int32_t *in_loss, const float "
                     "*in_state, float *out_loss, void *arena)"), "%s",
              v.source);
    cr_expect(strstr(v.header, "#define FUZZ_STATE_FLOATS "), "%s", v.header);
    verdict_free(&v);
}


Test(emit_safety, train_step_constants_out_of_range_are_errors)
{
    static const struct {
        int field;
        const char *value, *op;
    } cases[] = {
        { F_EPS, "1e300", "layernorm eps" },
        { F_SCALE, "1e39", "attention scale" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        field_set set[] = { { F_MODE, "t" }, { cases[i].field, cases[i].value },
                            { -1, NULL } };
        emit_verdict v;
        verify_fields(set, &v);
        cr_expect_eq(v.status, VERDICT_REFUSED, "%s compiled", cases[i].value);
        cr_expect(strstr(v.err.msg, cases[i].op), "%s", v.err.msg);
        verdict_free(&v);
    }
}


/* The train step's own constants (dropout p, the backward's eps and
 * scale) are checked by the train emitter itself, whatever made them. */
Test(emit_safety, the_train_emitter_refuses_a_non_finite_constant)
{
    const char *field[F_COUNT];
    size_t len[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        field[f] = names_defaults[f];
        len[f] = strlen(field[f]);
    }
    field[F_MODE] = "t";
    len[F_MODE] = 1;
    char *lua = names_model_text(field, len);
    build_options opts = { .text = lua, .text_len = strlen(lua) };
    static const graph_op ops[] = {
        GRAPH_OP_DROPOUT, GRAPH_OP_DROPOUT_GRAD, GRAPH_OP_ATTENTION,
        GRAPH_OP_ATTENTION_GRAD, GRAPH_OP_LAYERNORM_GRAD_X,
        GRAPH_OP_LAYERNORM_GRAD_GAMMA,
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        built_train b;
        dsc_err err;
        cr_assert_eq(build_train("t.lua", &opts, &b, &err), 0, "%s", err.msg);
        graph *g = b.train.model->graph;
        graph_node *n = NULL;
        for (int k = 0; k < g->n_nodes && !n; k++)
            if (g->nodes[k].op == ops[i])
                n = &g->nodes[k];
        cr_assert_not_null(n, "no %s node", graph_op_name(ops[i]));
        cr_expect_eq(emit_train_check(b.train.model, &err), 0, "%s", err.msg);
        if (ops[i] == GRAPH_OP_LAYERNORM_GRAD_X ||
            ops[i] == GRAPH_OP_LAYERNORM_GRAD_GAMMA)
            n->attrs.eps = INFINITY;
        else if (ops[i] == GRAPH_OP_ATTENTION_GRAD)
            n->attrs.scale = NAN;
        else
            n->attrs.p = NAN;
        cr_expect_eq(emit_train_check(b.train.model, &err), -1, "%s",
                     graph_op_name(ops[i]));
        char want[64];
        snprintf(want, sizeof want, "t.lua:%d: error: %s ", n->user_loc.line,
                 graph_op_name(ops[i]));
        cr_expect(strstr(err.msg, want), "'%s' not in %s", want, err.msg);
        cr_expect_null(emit_train_source(b.train.model, &b.train.plan,
                                         &b.train.weights, &err));
        cr_expect_null(emit_train_header(b.train.model, &b.train.plan,
                                         &b.train.weights));
        built_train_free(&b);
    }
    free(lua);
}


/* ---- the same through the command line ---- */

TestSuite(emit_cli, .init = make_tmp, .fini = remove_tmp);

Test(emit_cli, compile_o_writes_a_pair_that_compiles)
{
    cr_assert_eq(run("mkdir -p %s/dir && %s compile models/seed_encoder.lua "
                     "-D layers=1 -o %s/dir/other.c", tmp, dsc(), tmp), 0,
                 "%s", slurp(tmp_file("stderr")));
    char *c = slurp(tmp_file("dir/other.c"));
    cr_expect(strstr(c, "#include \"other.h\"\n"), "%.300s", c);
    free(c);
    char *h = slurp(tmp_file("dir/other.h"));
    free(h);
    char stray[600];
    snprintf(stray, sizeof stray, "%s/dir/seed_encoder.h", tmp);
    cr_expect_eq(access(stray, F_OK), -1, "a header under another name");
    cr_assert_eq(run("cc -std=c11 -Wall -Wextra -Werror -Iruntime -c "
                     "%s/dir/other.c -o %s/other.o", tmp, tmp), 0, "%s",
                 slurp(tmp_file("stderr")));
    /* A name the C could not #include is refused, and nothing written. */
    cr_expect_eq(run("%s compile models/seed_encoder.lua -o '%s/we\"ird.c'",
                     dsc(), tmp), 1);
    char *err = slurp(tmp_file("stderr"));
    cr_expect(strstr(err, "dsc: error: -o"), "%s", err);
    free(err);
    cr_expect_eq(run("ls %s | grep -c ird", tmp), 1, "a file was written");
}


Test(emit_cli, run_of_a_hostile_model_runs_no_injected_code)
{
    /* The issue's attack, end to end: JIT and AOT run the model, and the
     * file the injected command would write never appears. */
    char model_path[600];
    snprintf(model_path, sizeof model_path, "%s/m.lua", tmp);
    FILE *fp = fopen(model_path, "w");
    cr_assert_not_null(fp);
    fprintf(fp,
            "dsc.config{['*/ #include \"/etc/hostname\" /*'] = "
            "'*/ __attribute__((constructor)) static void e(void) { "
            "system(\"touch %s/pwned\"); } /*'}\n"
            "local x = dsc.input('x', {2, 4})\n"
            "local w = dsc.weight('k */\\nint system(const char *);\\n"
            "#define rt_linear(...) system(\"touch %s/pwned\")\\n/*', {4, 4})\n"
            "dsc.output('y', dsc.linear(x, w))\n", tmp, tmp);
    fclose(fp);
    cr_expect_eq(run("%s run %s", dsc(), model_path), 0, "%s", slurp(tmp_file("stderr")));
    cr_expect_eq(run("%s run --aot %s", dsc(), model_path), 0, "%s", slurp(tmp_file("stderr")));
    cr_expect_eq(run("%s compile %s -o %s/m.c && cc -std=c11 -Wall -Werror "
                     "-Iruntime -c %s/m.c -o %s/m.o", dsc(), model_path, tmp, tmp,
                     tmp), 0, "%s", slurp(tmp_file("stderr")));
    char pwned[600];
    snprintf(pwned, sizeof pwned, "%s/pwned", tmp);
    cr_expect_eq(access(pwned, F_OK), -1, "the injected command ran");
}


Test(emit_cli, compile_train_o_writes_a_pair_that_compiles)
{
    cr_assert_eq(run("mkdir -p %s/o2 && %s compile --train "
                     "models/seed_encoder.lua -D layers=1 -D d_model=16 "
                     "-D d_ff=32 -D vocab=20 -o %s/o2/other.c", tmp, dsc(),
                     tmp), 0, "%s", slurp(tmp_file("stderr")));
    char *c = slurp(tmp_file("o2/other.c"));
    cr_expect(strstr(c, "#include \"other.h\"\n"), "%.300s", c);
    cr_expect(strstr(c, "int seed_encoder_train_step(rt_ctx *ctx, float *w, "
                     "float *state, const int32_t *in_tokens, float "
                     "*out_loss, void *arena)"), "no train step");
    free(c);
    char stray[600];
    snprintf(stray, sizeof stray, "%s/o2/seed_encoder.h", tmp);
    cr_expect_eq(access(stray, F_OK), -1, "a header under another name");
    cr_assert_eq(run("cc -std=c11 -Wall -Wextra -Werror -Iruntime -c "
                     "%s/o2/other.c -o %s/other.o", tmp, tmp), 0, "%s",
                 slurp(tmp_file("stderr")));
}


/* A model with a loss: config, a weight key, inputs and outputs named
 * like dsc's and C's own, in a file whose path breaks comments.  `dsc
 * train` (JIT and --aot) runs no injected code, and `dsc compile --train`
 * writes C that cc compiles without a warning and that holds none of it
 * outside comments. */
Test(emit_cli, train_of_a_hostile_model_runs_no_injected_code)
{
    char dir[600], model_path[800];
    snprintf(dir, sizeof dir, "%s/x*/\n#include \"/etc/hostname\"\n/*", tmp);
    snprintf(model_path, sizeof model_path, "%s/m\n*/int evil;/*.lua", dir);
    /* mkdir -p of its directory: one component at a time */
    for (char *p = strchr(model_path + strlen(tmp) + 1, '/'); p;
         p = strchr(p + 1, '/')) {
        *p = '\0';
        cr_assert(mkdir(model_path, 0700) == 0 || access(model_path, F_OK)
                  == 0, "%s", model_path);
        *p = '/';
    }
    FILE *fp = fopen(model_path, "w");
    cr_assert_not_null(fp, "%s", model_path);
    fprintf(fp,
            "dsc.config{['*/ #include \"/etc/hostname\" /*'] = "
            "'*/ __attribute__((constructor)) static void e(void) { "
            "system(\"touch %s/pwned\"); } /*'}\n"
            "local t = dsc.input('int', {3, 2}, 'int32')\n"
            "local x = dsc.input('loss', {3, 2, 4})\n"
            "local s = dsc.input('state', {3, 2, 4})\n"
            "local e = dsc.embedding(t, dsc.weight('k */\\nint system(const "
            "char *);\\n#define rt_adam(...) system(\"touch %s/pwned\")\\n"
            "/*', {4, 4}))\n"
            "local h = dsc.linear(e + x + s, dsc.weight('w', {4, 4}), "
            "dsc.weight('NULL', {4}))\n"
            "dsc.output('w', h)\n"
            "dsc.output('a', dsc.relu(h))\n"
            "dsc.output('ctx', dsc.softmax(h))\n"
            "dsc.loss(dsc.cross_entropy(h, t))\n", tmp, tmp);
    fclose(fp);
    /* The path, for the shell: from a file, as "$(cat ...)" keeps it. */
    char list[700];
    snprintf(list, sizeof list, "%s/path", tmp);
    fp = fopen(list, "w");
    cr_assert_not_null(fp);
    fputs(model_path, fp);
    fclose(fp);
    cr_expect_eq(run("%s train \"$(cat %s)\" --epochs 2", dsc(), list), 0,
                 "%s", slurp(tmp_file("stderr")));
    cr_expect_eq(run("%s train --aot \"$(cat %s)\" --epochs 2", dsc(), list),
                 0, "%s", slurp(tmp_file("stderr")));
    cr_expect_eq(run("%s compile --train \"$(cat %s)\" -o %s/m.c && "
                     "cc -std=c11 -Wall -Wextra -Werror -Iruntime -c %s/m.c "
                     "-o %s/m.o", dsc(), list, tmp, tmp, tmp), 0, "%s",
                 slurp(tmp_file("stderr")));
    char pwned[600];
    snprintf(pwned, sizeof pwned, "%s/pwned", tmp);
    cr_expect_eq(access(pwned, F_OK), -1, "the injected command ran");
    static const char *const words[] = { "system", "hostname", "evil",
                                         "constructor", NULL };
    static const char *const files[] = { "m.c", "m.h" };
    for (int f = 0; f < 2; f++) {
        char *text = slurp(tmp_file(files[f]));
        char *code = names_strip_comments(text);
        for (int w = 0; words[w]; w++)
            cr_expect(!strstr(code, words[w]), "'%s' outside comments in "
                      "%s:\n%s", words[w], files[f], text);
        if (f == 0)
            cr_expect(strstr(code, "_train_step(rt_ctx *ctx, float *w, float "
                             "*state, const int32_t *in_int, const float "
                             "*in_loss, const float *in_state, float "
                             "*out_loss, void *arena)"), "%s", text);
        free(code);
        free(text);
    }
}


/* Every line's quotes pair up once \\ and \" are taken out, and no
 * line starts with the injected node. */
static void expect_sound_dot(const char *text)
{
    char *dot = strdup(text);
    cr_assert_not_null(dot);
    for (char *line = strtok(dot, "\n"); line; line = strtok(NULL, "\n")) {
        int quotes = 0;
        for (const char *p = line; *p; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                continue;
            }
            cr_expect(*p >= 0x20 && *p <= 0x7e, "a raw byte in: %s", line);
            quotes += *p == '"';
        }
        cr_expect_eq(quotes % 2, 0, "unbalanced: %s", line);
        const char *first = line + strspn(line, " ");
        cr_expect(strncmp(first, "evil", 4) != 0, "%s", line);
    }
    free(dot);
}


Test(emit_cli, dot_labels_hold_a_hostile_path_as_text)
{
    char model_path[600];
    snprintf(model_path, sizeof model_path, "%s/g\"];\n evil [label=\"\\.lua",
             tmp);
    FILE *fp = fopen(model_path, "w");
    cr_assert_not_null(fp);
    fprintf(fp, "local x = dsc.input('x', {2, 4})\n"
            "dsc.output('y', dsc.relu(x))\n");
    fclose(fp);
    cr_assert_eq(run("%s graph \"$(ls -d %s/g*)\" -o %s/g.dot", dsc(), tmp,
                     tmp), 0, "%s", slurp(tmp_file("stderr")));
    char *dot = slurp(tmp_file("g.dot"));
    cr_expect(strstr(dot, "\\\"];\\n"), "%s", dot);
    expect_sound_dot(dot);
    free(dot);
}


/* Names the graph would refuse, put straight into a loaded model: the
 * emitter relies on no earlier check. */
Test(emit_safety, the_emitter_does_not_rely_on_the_graph_checking_names)
{
    const char *lua =
        "local x = dsc.input(\"x\", {2, 4})\n"
        "dsc.output(\"y\", dsc.relu(x))\n";
    static const char *const hostile[] = {
        "*/ int evil; /*", "a\nb", "\"];\n evil [", "x\\", "?\?/", "",
        "1x", "int", "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        dsc_err err;
        model *m = frontend_load_string("n.lua", lua, strlen(lua), NULL, 0,
                                        NULL, &err);
        cr_assert_not_null(m, "%s", err.msg);
        for (int t = 0; t < m->graph->n_tensors; t++)
            if (m->graph->tensors[t].kind == GRAPH_INPUT ||
                m->graph->tensors[t].kind == GRAPH_OUTPUT)
                m->graph->tensors[t].name = graph_intern(m->graph, hostile[i]);
        char *dot = emit_dot(m, "");
        expect_sound_dot(dot);
        free(dot);
        memory_plan plan = {0};
        weight_layout layout = {0};
        cr_assert_eq(pass_plan_memory(m->graph, 1, &plan, &err), 0);
        cr_assert_eq(weights_plan(m->graph, &layout, &err), 0);
        emit_options jit = { .inline_runtime_header = build_runtime_header() };
        emit_verdict v = { .status = VERDICT_OK };
        ctext_model_name(m->name, strlen(m->name), v.ident);
        v.source = emit_c_source(m, &plan, &layout, NULL);
        v.header = emit_c_header(m, &plan, &layout, NULL);
        v.jit = emit_c_source(m, &plan, &layout, &jit);
        names_check_texts(&v, NULL, NULL);
        static const char *const words[] = { "int evil", "evil;", NULL };
        expect_clean(&v, words);
        verdict_free(&v);
        weights_layout_free(&layout);
        memory_plan_free(&plan);
        model_free(m);
    }
}


/* ---- the helpers themselves ---- */

Test(ctext, comments_hold_no_end_start_trigraph_or_splice)
{
    static const char *const texts[] = {
        "*/", "/*", "**//", "a*/b", "a/*b", "?\?=", "?\??", "?", "*", "/",
        "x\\", "\\\n", "a\nb", "\x01\x7f\xff\x80", "*/*/*/", "/**/",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        strbuf sb = {0};
        sb_append(&sb, "/*");
        ctext_comment(&sb, texts[i]);
        sb_append(&sb, "*/");
        char *out = sb_take(&sb);
        const char *inner = out + 2;
        size_t n = strlen(inner) - 2;
        for (size_t k = 0; k + 1 < n; k++) {
            cr_expect(!(inner[k] == '*' && inner[k + 1] == '/') &&
                      !(inner[k] == '/' && inner[k + 1] == '*') &&
                      !(inner[k] == '?' && inner[k + 1] == '?'),
                      "'%s' -> '%s'", texts[i], out);
        }
        for (size_t k = 0; k < n; k++)
            cr_expect(inner[k] >= 0x20 && inner[k] <= 0x7e && (inner[k] !=
                      '\\' || inner[k + 1] == 'x'), "'%s' -> '%s'", texts[i],
                      out);
        /* Even against the comment's own ends. */
        cr_expect(inner[0] != '*' && inner[n - 1] != '/' &&
                  inner[n - 1] != '*', "'%s' -> '%s'", texts[i], out);
        free(out);
    }
    strbuf sb = {0};
    char long_text[1000];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    ctext_comment(&sb, long_text);
    char *out = sb_take(&sb);
    cr_expect_eq(strlen(out), CTEXT_TEXT_MAX + 3, "long text is cut");
    free(out);
    /* Ordinary text reads as itself. */
    ctext_comment(&sb, "models/seed_encoder.lua d_model=256 a.b-c");
    out = sb_take(&sb);
    cr_expect_str_eq(out, "models/seed_encoder.lua d_model=256 a.b-c");
    free(out);
}


Test(ctext, dot_strings_stay_strings)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "a\"b", "a\\\"b" }, { "a\\", "a\\\\" }, { "a\nb", "a\\nb" },
        { "\x01\xff", "\\\\x01\\\\xff" }, { "models/m.lua", "models/m.lua" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        strbuf sb = {0};
        ctext_dot(&sb, cases[i].in);
        char *out = sb_take(&sb);
        cr_expect_str_eq(out, cases[i].out);
        free(out);
    }
}


Test(ctext, model_names_are_safe_identifiers_and_stable)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "seed_encoder", "seed_encoder" }, { "seed-encoder", "seed_encoder" },
        { "9lives", "m_9lives" }, { "", "m_" }, { "_x", "m__x" },
        { "dsc_runtime", "m_dsc_runtime" }, { "DSC", "m_DSC" },
        { "rt", "m_rt" }, { "Rt_linear", "m_Rt_linear" }, { "rtx", "rtx" },
        { "dscnet", "dscnet" }, { "a*/b\n", "a__b_" }, { "int", "int" },
    };
    char out[CTEXT_MODEL_NAME_MAX + 1], again[CTEXT_MODEL_NAME_MAX + 1];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctext_model_name(cases[i].in, strlen(cases[i].in), out);
        cr_expect_str_eq(out, cases[i].out, "%s", cases[i].in);
    }
    uint64_t state = 15;
    for (int i = 0; i < 2000; i++) {
        char in[100];
        size_t n = rng_next(&state) % sizeof in;
        for (size_t k = 0; k < n; k++)
            in[k] = (char)(rng_next(&state) % 256);
        ctext_model_name(in, n, out);
        cr_assert_leq(strlen(out), CTEXT_MODEL_NAME_MAX);
        cr_assert((out[0] >= 'a' && out[0] <= 'z') ||
                  (out[0] >= 'A' && out[0] <= 'Z'));
        for (const char *p = out; *p; p++)
            cr_assert(names_is_ident_char(*p));
        ctext_model_name(out, strlen(out), again);
        cr_assert_str_eq(out, again, "not stable");
    }
}


Test(ctext, claimed_names_are_unique)
{
    ctext_names used = {0};
    char first[64] = "W_A", second[64] = "W_A", third[64] = "W_A_2";
    cr_assert_eq(ctext_names_claim(&used, first, sizeof first), 0);
    cr_assert_eq(ctext_names_claim(&used, second, sizeof second), 0);
    cr_assert_eq(ctext_names_claim(&used, third, sizeof third), 0);
    cr_expect_str_eq(first, "W_A");
    cr_expect_str_eq(second, "W_A_2");
    cr_expect_str_eq(third, "W_A_2_2");
    /* A full buffer is cut to make room for the suffix. */
    char full[16] = "ABCDEFGHIJKLMNO", again[16] = "ABCDEFGHIJKLMNO";
    ctext_names_claim(&used, full, sizeof full);
    ctext_names_claim(&used, again, sizeof again);
    cr_expect_str_eq(again, "ABCDEFGHIJKLM_2");
    for (int i = 0; i < 3000; i++) {  /* grows */
        char name[16] = "N";
        cr_assert_eq(ctext_names_claim(&used, name, sizeof name), 0);
    }
    cr_expect(ctext_names_has(&used, "N_3000"));
    cr_expect(!ctext_names_has(&used, "N_3001"));
    ctext_names_free(&used);
}


/* The checks themselves: each injection, spliced into clean C, is found. */
Test(emit_safety, the_checks_find_each_kind_of_injection)
{
    static const struct {
        const char *text;   /* put after the first weight #define line */
        int header;         /* into the .h instead of the .c */
    } injected[] = {
        { "#define rt_linear(...) rt_add(0, 0, 0, 0, 0)\n", 0 },
        { "#include \"/etc/hostname\"\n", 0 },
        { "#include <stdlib.h>\n", 1 },
        { "  #  define W_EVIL 1\n", 0 },
        { "int evil(void) { return 0; }\n", 0 },
        { "static int evil(void) { return 0; }\n", 0 },
        { "int evil_global = 1;\n", 0 },
        { "__attribute__((constructor)) static void e(void) { }\n", 0 },
        { "static void e(void) <% %>\n", 0 },
        { "%:define X 1\n", 0 },
        { "int system(const char *);\n", 1 },
        { "/* ?\?/\n */\n", 0 },
        { "/* \\\n */\n", 0 },
        { "/* \xff */\n", 0 },
        { "static const char *s = \"x\";\n", 0 },
        { "#define W_FC_WEIGHT 0\n", 0 },   /* defined twice */
        { "#pragma once\n", 1 },
    };
    for (size_t i = 0; i < sizeof injected / sizeof injected[0]; i++) {
        emit_verdict v;
        verify_fields(NULL, &v);
        cr_assert_eq(v.status, VERDICT_OK, "%s", v.why);
        char **text = injected[i].header ? &v.header : &v.source;
        const char *at = strstr(*text, injected[i].header ? "#define "
                                : "#define W_");
        cr_assert_not_null(at);
        at = strchr(at, '\n') + 1;
        strbuf sb = {0};
        char *head = strndup(*text, (size_t)(at - *text));
        sb_append(&sb, head);
        sb_append(&sb, injected[i].text);
        sb_append(&sb, at);
        free(head);
        free(*text);
        *text = sb_take(&sb);
        names_check_texts(&v, NULL, NULL);
        cr_expect_eq(v.status, VERDICT_BROKEN, "not found: %s",
                     injected[i].text);
        verdict_free(&v);
    }
}


/* ---- the fuzzer's property: its seeds, then a fixed random sample ---- */

Test(emit_safety, the_fuzzer_seeds_keep_their_purpose)
{
    static const struct {
        const char *name;
        int status;
    } seeds[] = {
        { "plain", VERDICT_OK }, { "decoder", VERDICT_OK },
        { "decoder_clashes", VERDICT_OK }, { "define", VERDICT_OK },
        { "injection", VERDICT_OK }, { "clashes", VERDICT_OK },
        { "bytes", VERDICT_OK }, { "eps_inf", VERDICT_REFUSED },
        { "scale_inf", VERDICT_REFUSED }, { "train", VERDICT_OK },
        { "train_clashes", VERDICT_OK }, { "train_eps_inf", VERDICT_REFUSED },
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "tests/fuzz/corpus/names/%s",
                 seeds[i].name);
        size_t len;
        dsc_err err;
        char *bytes = file_read_all(path, &len, &err);
        cr_assert_not_null(bytes, "%s", err.msg);
        emit_verdict v;
        fuzz_names_verdict((const uint8_t *)bytes, len, path, &v);
        cr_expect_eq(v.status, seeds[i].status, "%s: %s%s", path, v.why,
                     v.err.msg);
        /* A trained seed's texts are the train step's. */
        cr_expect_eq(v.trained, strncmp(seeds[i].name, "train", 5) == 0 &&
                     seeds[i].status == VERDICT_OK, "%s", path);
        verdict_free(&v);
        free(bytes);
    }
}



/* Pieces a hostile string is made of (the fuzzer's dictionary). */
static const char *const pieces[] = {
    "*/", "/*", "\n", "\r", "\"", "'", "#", "\\", "\\\n", "?\?=", "?\?/", "?",
    "#define ", "#include ", "\"/etc/hostname\"", "__attribute__((constructor))",
    "static void f(void) { }", "int x;", "system(\"id\")", "rt_linear",
    "w", "a", "n", "s", "int", "NULL", "main", "relu_3_", "_COUNT", "W_",
    "\xff", "\xc3\x28", "\xe2\x80\x94", "\x01", ".", "_", "A", "z", "0", "9",
    "1e300", "-1e39", "0x1p128", "1e-5", "d",
};


/* Pieces of a name that is an identifier, chosen to clash. */
static const char *const ident_pieces[] = {
    "w", "a", "n", "s", "int", "NULL", "main", "relu_3_", "_COUNT", "W_",
    "A", "z", "_", "0", "in_", "out_", "x", "X", "DSC_OK", "token",
};


/* A random string for field f: mostly pieces of an identifier for input
 * and output names (else the model is refused before the emitter runs),
 * any pieces and bytes elsewhere. */
static void random_field(uint64_t *state, int f, char *out, size_t cap)
{
    int io = f >= F_TOKENS && f <= F_OUT3;
    int ident = io && rng_next(state) % 4 != 0;
    size_t at = 0;
    int parts = 1 + (int)(rng_next(state) % 5);
    for (int i = 0; i < parts; i++) {
        const char *p;
        char byte[2] = { 0, 0 };
        if (ident) {
            p = ident_pieces[rng_next(state) % (sizeof ident_pieces /
                                                sizeof ident_pieces[0])];
            if (at == 0 && p[0] == '0')
                p = "q";
        } else if (rng_next(state) % 4 == 0) {
            byte[0] = (char)(1 + rng_next(state) % 255);
            p = byte;
        } else {
            p = pieces[rng_next(state) % (sizeof pieces / sizeof pieces[0])];
        }
        size_t n = strlen(p);
        if (at + n + 1 > cap)
            break;
        memcpy(out + at, p, n);
        at += n;
    }
    out[at] = '\0';
}


Test(emit_safety, random_strings_in_every_position, .timeout = 300)
{
    uint64_t state = 20260212;
    int ok = 0, refused = 0;
    for (int round = 0; round < 400; round++) {
        char text[F_COUNT][120];
        field_set set[F_COUNT + 1];
        int n = 0;
        for (int f = 0; f < F_COUNT; f++) {
            /* Most fields keep their default, so that most models load. */
            if (rng_next(&state) % 3)
                continue;
            random_field(&state, f, text[f], sizeof text[f]);
            set[n++] = (field_set){ f, text[f] };
        }
        set[n] = (field_set){ -1, NULL };
        emit_verdict v;
        verify_fields(set, &v);
        cr_assert_neq(v.status, VERDICT_BROKEN, "round %d: %s", round, v.why);
        ok += v.status == VERDICT_OK;
        refused += v.status == VERDICT_REFUSED;
        verdict_free(&v);
    }
    /* The sample exercises the emitter, not only the frontend's refusals. */
    cr_expect_gt(ok, 100, "only %d of 400 compiled", ok);
    cr_expect_gt(refused, 10, "only %d of 400 refused", refused);
}


Test(emit_safety, random_strings_in_a_trained_model, .timeout = 300)
{
    uint64_t state = 20261202;
    int trained = 0, refused = 0;
    for (int round = 0; round < 120; round++) {
        char text[F_COUNT][120];
        field_set set[F_COUNT + 2];
        int n = 0;
        for (int f = 0; f < F_COUNT; f++) {
            if (f == F_MODE || rng_next(&state) % 3)
                continue;
            random_field(&state, f, text[f], sizeof text[f]);
            set[n++] = (field_set){ f, text[f] };
        }
        set[n++] = (field_set){ F_MODE, "train" };
        set[n] = (field_set){ -1, NULL };
        emit_verdict v;
        verify_fields(set, &v);
        cr_assert_neq(v.status, VERDICT_BROKEN, "round %d: %s", round, v.why);
        trained += v.status == VERDICT_OK && v.trained;
        refused += v.status == VERDICT_REFUSED;
        verdict_free(&v);
    }
    cr_expect_gt(trained, 30, "only %d of 120 trained", trained);
    cr_expect_gt(refused, 3, "only %d of 120 refused", refused);
}
