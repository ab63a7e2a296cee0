/* test_e2e.c — dsc as a user runs it: the command line against PyTorch's
 * numbers (fixtures from tools/export_torch.py), JIT against AOT, byte-for-
 * byte determinism, generated/ up to date, and a product embedding the
 * generated C. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/fileio.h"
#include "io/npy.h"

static char tmp[256];


static void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/dsc-e2e-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}


static void remove_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}


static const char *dsc(void)
{
    const char *path = getenv("DSC");
    return path && *path ? path : "build/dsc";
}


/* Run a shell command (printf-style); stderr goes to tmp/stderr.
 * Returns the exit status. */
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert_lt(n, (int)sizeof cmd - 64);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " >%s/stdout 2>%s/stderr", tmp,
             tmp);
    int status = system(cmd);
    cr_assert(WIFEXITED(status), "command did not exit: %s", cmd);
    return WEXITSTATUS(status);
}


static char *slurp(const char *path)
{
    size_t len;
    dsc_err err;
    char *text = file_read_all(path, &len, &err);
    cr_assert_not_null(text, "%s", err.msg);
    return text;
}


/* A path in the test's directory; a few may be in use in one call. */
static char *tmp_file(const char *name)
{
    static char paths[4][512];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 512, "%s/%s", tmp, name);
    return path;
}


static char *stderr_text(void)
{
    return slurp(tmp_file("stderr"));
}


/* Largest |a - b| over two float32 .npy files of one shape. */
static double max_abs_diff(const char *a_path, const char *b_path)
{
    npy_array a, b;
    dsc_err err;
    cr_assert_eq(npy_read(a_path, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(npy_read(b_path, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(a.dtype, NPY_F32);
    cr_assert_eq(b.dtype, NPY_F32);
    cr_assert_eq(a.rank, b.rank);
    for (int i = 0; i < a.rank; i++)
        cr_assert_eq(a.shape[i], b.shape[i]);
    double worst = 0;
    for (int64_t i = 0; i < a.count; i++) {
        double d = fabs((double)((float *)a.data)[i] - ((float *)b.data)[i]);
        if (!(d <= worst))  /* NaN counts as worst */
            worst = isnan(d) ? INFINITY : d;
    }
    npy_free(&a);
    npy_free(&b);
    return worst;
}


static char *fixture_config(const char *fixture)
{
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/config", fixture);
    char *text = slurp(path);
    text[strcspn(text, "\n")] = '\0';
    return text;
}


/* dsc run on a fixture against PyTorch's output. */
static void check_fixture(const char *model, const char *fixture,
                          const char *input, const char *output,
                          const char *mode)
{
    char *config = fixture_config(fixture);
    const char *dir = "tests/fixtures";
    int rc = run("%s run models/%s.lua %s %s --weights %s/%s/weights.safetensors"
                 " --input %s=%s/%s/%s.npy --output %s=%s", dsc(), model,
                 config, mode, dir, fixture, input, dir, fixture, input,
                 output, tmp_file("out.npy"));
    char *err = stderr_text();
    cr_assert_eq(rc, 0, "dsc run failed: %s", err);
    char ref[256];
    snprintf(ref, sizeof ref, "%s/%s/%s.npy", dir, fixture, output);
    double d = max_abs_diff(tmp_file("out.npy"), ref);
    cr_expect_leq(d, 1e-4, "%s %s: max |dsc - torch| = %g", fixture, mode, d);
    free(config);
    free(err);
}


TestSuite(e2e, .init = make_tmp, .fini = remove_tmp);

Test(e2e, seed_encoder_matches_pytorch_jit)
{
    check_fixture("seed_encoder", "seed_encoder_small", "tokens", "logits", "");
    check_fixture("seed_encoder", "seed_encoder_odd", "tokens", "logits", "");
    check_fixture("seed_encoder", "seed_encoder_one", "tokens", "logits", "");
}

Test(e2e, seed_encoder_matches_pytorch_aot)
{
    check_fixture("seed_encoder", "seed_encoder_small", "tokens", "logits",
                  "--aot");
    check_fixture("seed_encoder", "seed_encoder_odd", "tokens", "logits",
                  "--aot");
}

Test(e2e, seed_attention_matches_pytorch)
{
    check_fixture("seed_attention", "seed_attention_small", "x", "y", "");
    check_fixture("seed_attention", "seed_attention_small", "x", "y", "--aot");
}

Test(e2e, unused_state_dict_keys_are_listed_and_ignored)
{
    check_fixture("seed_encoder", "seed_encoder_small", "tokens", "logits", "");
    char *err = stderr_text();
    cr_expect(strstr(err, "does not use"), "%s", err);
    cr_expect(strstr(err, "transformer_layer.self_attn.in_proj_weight"), "%s",
              err);
    cr_expect(!strstr(err, "transformer_encoder.layers.0"), "%s", err);
    free(err);
}

Test(e2e, jit_and_aot_agree_at_default_config)
{
    cr_assert_eq(run("%s run models/seed_encoder.lua --seed 5 --output "
                     "logits=%s", dsc(), tmp_file("jit.npy")), 0);
    cr_assert_eq(run("%s run models/seed_encoder.lua --seed 5 --aot --output "
                     "logits=%s", dsc(), tmp_file("aot.npy")), 0);
    double d = max_abs_diff(tmp_file("jit.npy"), tmp_file("aot.npy"));
    cr_expect_leq(d, 1e-5, "JIT and AOT differ by %g", d);
}

Test(e2e, runs_are_deterministic)
{
    const char *args = "models/seed_encoder.lua -D layers=1 -D seq=3 --seed 9";
    cr_assert_eq(run("%s run %s --output logits=%s", dsc(), args,
                     tmp_file("a.npy")), 0);
    cr_assert_eq(run("%s run %s --output logits=%s", dsc(), args,
                     tmp_file("b.npy")), 0);
    char *a = slurp(tmp_file("a.npy")), *b = slurp(tmp_file("b.npy"));
    cr_expect_str_eq(a, b);
    cr_expect_eq(max_abs_diff(tmp_file("a.npy"), tmp_file("b.npy")), 0.0);
    free(a);
    free(b);
}

Test(e2e, compile_is_byte_identical_and_warning_free)
{
    for (int i = 0; i < 2; i++)
        cr_assert_eq(run("%s compile models/seed_encoder.lua -D d_model=64 "
                         "-o %s/m%d.c", dsc(), tmp, i), 0);
    char *a = slurp(tmp_file("m0.c")), *b = slurp(tmp_file("m1.c"));
    cr_expect_str_eq(a, b);
    cr_expect(strstr(a, "d_model=64"), "the header names the config");
    cr_expect(strstr(a, "models/seed_encoder.lua"), "the header names the model");
    free(a);
    free(b);
    /* The shippable file compiles on its own against runtime/. */
    cr_assert_eq(run("cp %s/m0.h %s/seed_encoder.h && cc -std=c11 -Wall -Wextra "
                     "-Werror -Iruntime -I%s -c %s/m0.c -o %s/m0.o",
                     tmp, tmp, tmp, tmp, tmp), 0, "%s", stderr_text());
}

Test(e2e, generated_files_are_up_to_date)
{
    /* Every models/NAME.lua that compiles with its defaults has its C in
     * generated/, exactly as dsc emits it now; no stale files there. */
    cr_assert_eq(run("ls models/*.lua generated/*.c"), 0);
    char *list = slurp(tmp_file("stdout"));
    int models = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        char name[200];
        if (sscanf(line, "models/%199[^.].lua", name) == 1) {
            models++;
            int ok = run("%s compile %s --target avx2 -o %s/%s.c", dsc(), line,
                         tmp, name) == 0;
            char shipped[512];
            snprintf(shipped, sizeof shipped, "generated/%s.c", name);
            if (!ok) {
                cr_expect(access(shipped, F_OK) != 0,
                          "%s is stale: %s no longer compiles", shipped, line);
                continue;
            }
            for (int h = 0; h < 2; h++) {
                char ours[512], theirs[512];
                snprintf(ours, sizeof ours, "%s/%s.%s", tmp, name, h ? "h" : "c");
                snprintf(theirs, sizeof theirs, "generated/%s.%s", name,
                         h ? "h" : "c");
                cr_assert(access(theirs, F_OK) == 0,
                          "%s is missing: run make generated", theirs);
                char *a = slurp(ours), *b = slurp(theirs);
                cr_expect_str_eq(a, b, "%s is out of date: run make generated",
                                 theirs);
                free(a);
                free(b);
            }
        } else if (sscanf(line, "generated/%199[^.].c", name) == 1) {
            char model[512];
            snprintf(model, sizeof model, "models/%s.lua", name);
            cr_expect(access(model, F_OK) == 0, "%s has no model", line);
        }
    }
    cr_expect_geq(models, 2);
    free(list);
}

/* The product make builds beside dsc: generated/seed_encoder.c +
 * libdscrt.a. */
static const char *example(void)
{
    const char *path = getenv("EXAMPLE");
    return path && *path ? path : "build/example_seed";
}

Test(e2e, a_product_links_the_generated_code)
{
    cr_assert_eq(access(example(), X_OK), 0, "make builds %s", example());
    /* generated/ is made with --target avx2 (panel32): so is the blob. */
    cr_assert_eq(run("%s compile models/seed_encoder.lua --random-weights "
                     "--target avx2 --seed 3 -o %s", dsc(), tmp_file("se.c")),
                 0);
    int32_t tokens[16 * 20];
    for (int i = 0; i < 320; i++)
        tokens[i] = (i * 37 + 11) % 1000;
    dsc_err err;
    int64_t shape[2] = { 16, 20 };
    cr_assert_eq(npy_write(tmp_file("tokens.npy"), NPY_I32, 2, shape, tokens,
                           &err), 0);
    cr_assert_eq(file_write_atomic(tmp_file("tokens.i32"), tokens,
                                   sizeof tokens, &err), 0);
    cr_assert_eq(run("%s %s %s %s", example(), tmp_file("se.bin"),
                     tmp_file("tokens.i32"), tmp_file("logits.f32")), 0,
                 "%s", stderr_text());
    cr_assert_eq(run("%s run models/seed_encoder.lua --seed 3 --input "
                     "tokens=%s --output logits=%s", dsc(),
                     tmp_file("tokens.npy"), tmp_file("ref.npy")), 0);
    size_t len;
    float *product = (float *)file_read_all(tmp_file("logits.f32"), &len, &err);
    cr_assert_not_null(product);
    cr_assert_eq(len, 16 * 20 * 1000 * sizeof(float));
    npy_array ref;
    cr_assert_eq(npy_read(tmp_file("ref.npy"), &ref, &err), 0);
    double worst = 0;
    for (int64_t i = 0; i < ref.count; i++)
        worst = fmax(worst, fabs(product[i] - ((float *)ref.data)[i]));
    cr_expect_leq(worst, 1e-5, "product and dsc run differ by %g", worst);
    npy_free(&ref);
    free(product);

    /* A bad token is a status code, not a crash. */
    tokens[7] = 1000;
    cr_assert_eq(file_write_atomic(tmp_file("tokens.i32"), tokens,
                                   sizeof tokens, &err), 0);
    cr_expect_eq(run("%s %s %s %s", example(), tmp_file("se.bin"),
                     tmp_file("tokens.i32"), tmp_file("logits.f32")), 2);

    /* A blob packed for another layout is refused, naming both. */
    cr_assert_eq(run("%s compile models/seed_encoder.lua --random-weights "
                     "--target avx512 -o %s", dsc(), tmp_file("wide.c")), 0);
    cr_expect_eq(run("%s %s %s %s", example(), tmp_file("wide.bin"),
                     tmp_file("tokens.i32"), tmp_file("logits.f32")), 3);
    char *why = stderr_text();
    cr_expect(strstr(why, "layout panel64") && strstr(why, "layout panel32"),
              "%s", why);
    free(why);
}

Test(e2e, bad_token_is_reported_with_its_position)
{
    int64_t tokens[5 * 3];
    for (int i = 0; i < 15; i++)
        tokens[i] = i;
    tokens[4] = 37;  /* vocab is 37: position [1, 1] */
    dsc_err err;
    int64_t shape[2] = { 5, 3 };
    cr_assert_eq(npy_write(tmp_file("bad.npy"), NPY_I64, 2, shape, tokens,
                           &err), 0);
    char *config = fixture_config("seed_encoder_small");
    int rc = run("%s run models/seed_encoder.lua %s --input tokens=%s "
                 "--output logits=%s", dsc(), config, tmp_file("bad.npy"),
                 tmp_file("never.npy"));
    char *text = stderr_text();
    cr_expect_eq(rc, 1);
    cr_expect(strstr(text, "bad.npy: error:"), "%s", text);
    cr_expect(strstr(text, "tokens[1, 1]"), "%s", text);
    cr_expect(access(tmp_file("never.npy"), F_OK) != 0, "no output written");
    free(text);
    free(config);
}

Test(e2e, weight_file_problems_name_the_key)
{
    const char *w = "tests/fixtures/seed_encoder_small/weights.safetensors";
    /* Wrong shape: the fixture's d_model is 32. */
    int rc = run("%s run models/seed_encoder.lua -D vocab=37 -D d_model=16 "
                 "-D d_ff=48 -D seq=5 -D batch=3 --weights %s", dsc(), w);
    char *text = stderr_text();
    cr_expect_eq(rc, 1);
    cr_expect(strstr(text, "weights.safetensors: error: key 'embedding.weight'"
                     " is F32 [37, 32] but the model expects [37, 16]"), "%s",
              text);
    free(text);
    /* Missing key: the fixture has 2 layers. */
    rc = run("%s run models/seed_encoder.lua -D vocab=37 -D d_model=32 "
             "-D d_ff=48 -D layers=3 --weights %s", dsc(), w);
    text = stderr_text();
    cr_expect_eq(rc, 1);
    cr_expect(strstr(text, "missing key 'transformer_encoder.layers.2."),
              "%s", text);
    free(text);
}

Test(e2e, input_and_output_names_are_checked)
{
    int rc = run("%s run models/seed_encoder.lua -D layers=1 --output "
                 "probs=%s", dsc(), tmp_file("x.npy"));
    char *text = stderr_text();
    cr_expect_eq(rc, 1);
    cr_expect(strstr(text, "no output named 'probs'"), "%s", text);
    cr_expect(strstr(text, "logits"), "%s", text);
    free(text);
    rc = run("%s run models/seed_encoder.lua --input tokens=%s", dsc(),
             "tests/fixtures/seed_encoder_small/tokens.npy");
    text = stderr_text();
    cr_expect_eq(rc, 1);
    cr_expect(strstr(text, "tokens.npy: error: input 'tokens' is [5, 3] in "
                     "the file but the model expects [16, 20]"), "%s", text);
    free(text);
}

Test(e2e, command_line_errors)
{
    cr_expect_eq(run("%s run models/seed_encoder.lua -D nope=1", dsc()), 1);
    char *text = stderr_text();
    cr_expect(strstr(text, "unknown config key 'nope'"), "%s", text);
    free(text);
    cr_expect_eq(run("%s run models/missing.lua", dsc()), 1);
    text = stderr_text();
    cr_expect(strstr(text, "models/missing.lua: error:"), "%s", text);
    free(text);
    cr_expect_eq(run("%s frobnicate", dsc()), 1);
    cr_expect_eq(run("%s run models/seed_encoder.lua --bogus", dsc()), 1);
    cr_expect_eq(run("%s --help", dsc()), 0);
    text = slurp(tmp_file("stdout"));
    cr_expect(strstr(text, "compile") && strstr(text, "--aot"), "%s", text);
    free(text);
    /* An unwritable output leaves nothing behind. */
    cr_expect_eq(run("%s compile models/seed_encoder.lua -o /dev/null/x.c",
                     dsc()), 1);
    text = stderr_text();
    cr_expect(strstr(text, "/dev/null/x.h: error:"), "%s", text);
    free(text);
    /* A missing directory is made, as the README's example expects. */
    cr_expect_eq(run("%s compile models/seed_encoder.lua -o %s/new/dir/m.c",
                     dsc(), tmp), 0);
    cr_expect_eq(access(tmp_file("new/dir/m.h"), F_OK), 0);
}

/* A safetensors file holding one F32 tensor "w" [4, 3]. */
static void write_weights(const char *path, const float *w)
{
    const char *json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,3],"
                       "\"data_offsets\":[0,48]}}";
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    unsigned char buf[256] = {0};
    uint64_t len = padded;
    memcpy(buf, &len, 8);  /* little-endian host */
    memcpy(buf + 8, json, n);
    memset(buf + 8 + n, ' ', padded - n);
    memcpy(buf + 8 + padded, w, 48);
    dsc_err err;
    cr_assert_eq(file_write_atomic(path, buf, 8 + padded + 48, &err), 0,
                 "%s", err.msg);
}

Test(e2e, nan_weights_are_a_warning_naming_the_key)
{
    const char *model = "local x = dsc.input(\"x\", {2, 3})\n"
                        "dsc.output(\"y\", dsc.linear(x, dsc.weight(\"w\", "
                        "{4, 3})))\n";
    dsc_err err;
    cr_assert_eq(file_write_atomic(tmp_file("m.lua"), model, strlen(model),
                                   &err), 0);
    float w[12] = {0};
    w[5] = NAN;
    w[7] = INFINITY;
    write_weights(tmp_file("w.safetensors"), w);
    int rc = run("%s run %s --weights %s", dsc(), tmp_file("m.lua"),
                 tmp_file("w.safetensors"));
    char *text = stderr_text();
    cr_expect_eq(rc, 0, "a warning, not an error: %s", text);
    cr_expect(strstr(text, "w.safetensors: warning: key 'w' holds 2 NaN or "
                     "Inf values"), "%s", text);
    free(text);
}
