/* test_deepseek.c — DeepSeek-V3 (models/deepseek_v3.lua) against Hugging
 * Face transformers' DeepseekV3ForCausalLM (fixtures from
 * tools/export_deepseek_v3.py, configured by their config.json and read
 * under the published weight names): every prompt position's logits, the
 * prefill and every decode step's logits, the greedy continuation token
 * for token, JIT and AOT, from one file and from shards; the latent
 * cache's size; dsc generate --config/--prompt-logits as a user runs it;
 * FP8 checkpoints refused. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver/build.h"
#include "driver/runner.h"
#include "driver/sample.h"
#include "dsc_runtime.h"
#include "io/config_json.h"
#include "io/npy.h"
#include "io/st_index.h"

/* The issue asks for 1e-4; measured: 8.1e-6 at worst (logits up to 6),
 * so 2.5e-5 — tight enough to catch the latent norms' eps taken from
 * rms_norm_eps (6e-5 off). */
#define TOL 2.5e-5

typedef struct fixture {
    char dir[128];
    frontend_define *defs;
    int n_defs;
    npy_array prompt, prompt_logits, decode, greedy;
    built_model built;
    runner run;
    int64_t vocab;
} fixture;


static void load_npy(const fixture *f, const char *name, npy_array *a)
{
    char path[256];
    dsc_err err;
    snprintf(path, sizeof path, "%s/%s.npy", f->dir, name);
    cr_assert_eq(npy_read(path, a, &err), 0, "%s", err.msg);
}


static void open_fixture(fixture *f, const char *name, int aot,
                         const char *config)
{
    char path[256];
    dsc_err err;
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "tests/fixtures/%s", name);
    snprintf(path, sizeof path, "%s/%s", f->dir, config);
    cr_assert_eq(config_json_read(path, &f->defs, &f->n_defs, &err), 0, "%s",
                 err.msg);
    load_npy(f, "prompt", &f->prompt);
    load_npy(f, "prompt_logits", &f->prompt_logits);
    load_npy(f, "decode_logits", &f->decode);
    load_npy(f, "greedy", &f->greedy);
    cr_assert_eq(f->prompt.dtype, NPY_I32);
    cr_assert_eq(f->greedy.dtype, NPY_I32);
    f->vocab = f->decode.shape[1];
    build_options opts = { .defines = f->defs, .n_defines = f->n_defs };
    cr_assert_eq(build_model("models/deepseek_v3.lua", &opts, &f->built, &err),
                 0, "%s", err.msg);
    /* deepseek_plain is sharded: its index names two files. */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", f->dir);
    if (access(path, R_OK) != 0)
        snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
    runner_options ro = { .weights_path = path, .threads = 1, .aot = aot };
    cr_assert_eq(runner_open(&f->run, &f->built, &ro, &err), 0, "%s", err.msg);
    cr_assert(f->run.decoder);
}


static void close_fixture(fixture *f)
{
    runner_close(&f->run);
    built_model_free(&f->built);
    npy_free(&f->prompt);
    npy_free(&f->prompt_logits);
    npy_free(&f->decode);
    npy_free(&f->greedy);
    config_json_free(f->defs, f->n_defs);
}


static int step(fixture *f, const int32_t *tokens, int64_t n, int64_t pos,
                float *out)
{
    void *io[3] = { (void *)tokens, out, NULL };
    return runner_call(&f->run, io, 2, n, pos);
}


static double max_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d))
            return INFINITY;
        worst = d > worst ? d : worst;
    }
    return worst;
}


/* Prompt logits one position at a time; then prefill and greedy decode,
 * every step's logits and token. */
static void check_fixture(const char *name, int aot, const char *config)
{
    fixture f;
    open_fixture(&f, name, aot, config);
    const int32_t *prompt = f.prompt.data, *greedy = f.greedy.data;
    int64_t n = f.prompt.count, g = f.greedy.count;
    float *logits = malloc((size_t)f.vocab * sizeof(float));
    cr_assert_not_null(logits);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(step(&f, &prompt[i], 1, i, logits), DSC_OK);
        double d = max_diff(logits, (float *)f.prompt_logits.data + i * f.vocab,
                            f.vocab);
        cr_expect_leq(d, TOL, "%s prompt position %lld: max |dsc - hf| = %g",
                      name, (long long)i, d);
    }
    runner_reset(&f.run);
    cr_assert_eq(step(&f, prompt, n, 0, logits), DSC_OK);
    for (int64_t j = 0; j < g; j++) {
        if (j > 0)
            cr_assert_eq(step(&f, &greedy[j - 1], 1, n + j - 1, logits), DSC_OK);
        double d = max_diff(logits, (float *)f.decode.data + j * f.vocab,
                            f.vocab);
        cr_expect_leq(d, TOL, "%s step %lld: max |dsc - hf| = %g", name,
                      (long long)j, d);
        int64_t token = sample_argmax(logits, f.vocab);
        cr_assert_eq(token, greedy[j], "%s step %lld: dsc picks %lld, "
                     "transformers %d", name, (long long)j, (long long)token,
                     greedy[j]);
    }
    free(logits);
    close_fixture(&f);
}


Test(deepseek, yarn_groups_qlora_matches_transformers_jit)
{
    check_fixture("deepseek_yarn", 0, "config.json");
}

Test(deepseek, plain_qproj_tied_matches_transformers_jit)
{
    check_fixture("deepseek_plain", 0, "config.json");
}

Test(deepseek, matches_transformers_aot)
{
    check_fixture("deepseek_yarn", 1, "config.json");
    check_fixture("deepseek_plain", 1, "config.json");
}


/* The config.json transformers 5 saves (rope_parameters with rope_theta
 * inside, no rope_scaling) configures the same model. */
Test(deepseek, transformers5_config_reads_alike)
{
    check_fixture("deepseek_yarn", 0, "config_transformers5.json");
    check_fixture("deepseek_plain", 0, "config_transformers5.json");
}


/* The cache holds kv_lora_rank + qk_rope_head_dim floats per token and
 * layer (each layer's block rounded up to DSC_ALIGN), not 2 x heads x
 * head_dim. */
Test(deepseek, latent_cache_size)
{
    fixture f;
    open_fixture(&f, "deepseek_yarn", 0, "config.json");
    int64_t ctx = 64, layers = 3, per = 16 + 8;  /* its config.json */
    int64_t block = (ctx * per + DSC_ALIGN / 4 - 1) / (DSC_ALIGN / 4) *
                    (DSC_ALIGN / 4);
    cr_assert_eq(f.run.cache_floats, layers * block,
                 "cache %lld floats, expected %lld",
                 (long long)f.run.cache_floats, (long long)(layers * block));
    close_fixture(&f);
}


static int run_cmd(const char *cmd)
{
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}


/* The dsc under test ($DSC: make check's sanitized build). */
static const char *dsc(void)
{
    const char *path = getenv("DSC");
    return path && *path ? path : "build/dsc";
}


/* A fresh directory for a test's files, in tmp[64]. */
static void make_tmp(char *tmp)
{
    strcpy(tmp, "/tmp/dsc_deepseek_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}


static void remove_tmp(const char *tmp)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}


/* As a user runs it: --config, the published weights, --prompt-logits. */
Test(deepseek, cli_generate_prompt_logits)
{
    const char *dir = "tests/fixtures/deepseek_yarn";
    char tmp[64], cmd[1024], path[128];
    make_tmp(tmp);
    snprintf(cmd, sizeof cmd, "%s generate models/deepseek_v3.lua "
             "--config %s/config.json --weights %s/model.safetensors "
             "--prompt 5,17,3 -n 2 --threads 1 --prompt-logits "
             "%s/logits.npy > %s/ids.txt 2>/dev/null", dsc(), dir, dir, tmp,
             tmp);
    cr_assert_eq(run_cmd(cmd), 0);
    npy_array a;
    dsc_err err;
    snprintf(path, sizeof path, "%s/logits.npy", tmp);
    cr_assert_eq(npy_read(path, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.dtype, NPY_F32);
    cr_assert_eq(a.rank, 2);
    cr_assert_eq(a.shape[0], 3);
    cr_assert_eq(a.shape[1], 96);
    npy_free(&a);
    /* A declared key of the wrong type is an error naming it. */
    snprintf(path, sizeof path, "%s/bad.json", tmp);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs("{\n  \"architectures\": [\"x\"],\n  \"hidden_size\": \"big\"\n}\n",
          fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s compile models/deepseek_v3.lua --config %s "
             "-o %s/bad.c 2> %s/err.txt", dsc(), path, tmp, tmp);
    cr_assert_eq(run_cmd(cmd), 1);
    snprintf(cmd, sizeof cmd, "grep -q \"%s:3: error: config key "
             "'hidden_size' must be an integer\" %s/err.txt", path, tmp);
    cr_assert_eq(run_cmd(cmd), 0);
    remove_tmp(tmp);
}


/* An FP8 checkpoint (F8_E4M3 weights with weight_scale_inv) is refused
 * with an error saying so, not read as garbage. */
Test(deepseek, fp8_checkpoint_refused)
{
    const char *header = "{\"w.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":"
                         "[2,2],\"data_offsets\":[0,4]},\"w.weight_scale_inv"
                         "\":{\"dtype\":\"F32\",\"shape\":[1],"
                         "\"data_offsets\":[4,8]}}";
    uint64_t len = strlen(header);
    char tmp[64], path[128], cmd[512];
    make_tmp(tmp);
    snprintf(path, sizeof path, "%s/fp8.safetensors", tmp);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    unsigned char n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)(len >> (8 * i));
    fwrite(n, 1, 8, fp);
    fwrite(header, 1, len, fp);
    fwrite("\1\2\3\4\0\0\200\77", 1, 8, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s generate models/deepseek_v3.lua --weights "
             "%s --prompt 1 -n 1 2> %s/err.txt", dsc(), path, tmp);
    cr_assert_eq(run_cmd(cmd), 1);
    snprintf(cmd, sizeof cmd, "grep -q \"%s: error: .*FP8 checkpoints (with "
             "weight_scale_inv) are not supported\" %s/err.txt", path, tmp);
    cr_assert_eq(run_cmd(cmd), 0);
    remove_tmp(tmp);
}


/* config.json: nested objects flatten to KEY.SUB, each value keeps its JSON
 * type; duplicate keys and trailing text are errors naming the line. */
Test(deepseek, config_json_reader)
{
    const char *text = "{\n \"a\": 1,\n \"rope_scaling\": {\"type\": \"yarn\", "
                       "\"factor\": 40.0, \"deep\": {\"x\": null}},\n"
                       " \"l\": [1, {\"y\": 2}], \"t\": true\n}\n";
    frontend_define *d;
    int n;
    dsc_err err;
    cr_assert_eq(config_json_read_memory(text, strlen(text), "c.json", &d, &n,
                                         &err), 0, "%s", err.msg);
    cr_assert_eq(n, 6);
    const char *keys[] = { "a", "rope_scaling.type", "rope_scaling.factor",
                           "rope_scaling.deep.x", "l", "t" };
    const char kinds[] = "isfzxb";
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(d[i].key, keys[i]);
        cr_expect_eq(d[i].kind, kinds[i], "%s", keys[i]);
        cr_expect_str_eq(d[i].source, "c.json");
    }
    cr_expect_str_eq(d[2].value, "40.0");
    cr_expect_eq(d[2].line, 3);
    config_json_free(d, n);
    const char *dup = "{\"a\": 1,\n \"a\": 2}";
    cr_assert_eq(config_json_read_memory(dup, strlen(dup), "c.json", &d, &n,
                                         &err), -1);
    cr_expect(strstr(err.msg, "c.json: error: key 'a' appears twice"), "%s",
              err.msg);
    /* An empty object is a setting of its own (kind 'o'): nothing to
     * flatten, but the model must hear that the key is an object. */
    const char *empty = "{\"a\": {\"b\": {}}, \"c\": {\"d\": 1}}";
    cr_assert_eq(config_json_read_memory(empty, strlen(empty), "c.json", &d,
                                         &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(d[0].key, "a.b");
    cr_expect_eq(d[0].kind, 'o');
    cr_expect_str_eq(d[1].key, "c.d");
    config_json_free(d, n);
    const char *trail = "{}\n{}";
    cr_assert_eq(config_json_read_memory(trail, strlen(trail), "c.json", &d,
                                         &n, &err), -1);
    cr_expect(strstr(err.msg, "c.json:2: error: text after"), "%s", err.msg);
}


/* Each setting's line is found in one pass over the file: a line count
 * from the start per key took minutes on a few MB of keys (the timeout
 * catches that), and the lines must still be right. */
Test(deepseek, config_json_many_keys, .timeout = 30)
{
    enum { KEYS = 300000 };
    size_t cap = (size_t)KEYS * 24 + 16, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)snprintf(text + len, cap - len, "{\n");
    for (int i = 0; i < KEYS; i++)
        len += (size_t)snprintf(text + len, cap - len, "\"k%d\": %d%s\n", i, i,
                                i + 1 < KEYS ? "," : "");
    len += (size_t)snprintf(text + len, cap - len, "}\n");
    frontend_define *d;
    int n;
    dsc_err err;
    cr_assert_eq(config_json_read_memory(text, len, "c.json", &d, &n, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(n, KEYS);
    cr_expect_eq(d[0].line, 2);
    cr_expect_eq(d[KEYS / 2].line, KEYS / 2 + 2);
    cr_expect_eq(d[KEYS - 1].line, KEYS + 1);
    config_json_free(d, n);
    /* An error after the memo has moved on still names its own line. */
    memcpy(text + len - 3, "\n}x", 3);
    cr_assert_eq(config_json_read_memory(text, len, "c.json", &d, &n, &err),
                 -1);
    cr_expect(strstr(err.msg, "c.json:300002: error: text after"), "%s", err.msg);
    free(text);
}


/* A sharded checkpoint's index: distinct shards beside the index, in
 * order; a shard outside its directory refused. */
Test(deepseek, st_index_reader)
{
    const char *text = "{\"metadata\": {\"total_size\": 8}, \"weight_map\": "
                       "{\"a\": \"m-1.safetensors\", \"b\": \"m-2.safetensors\","
                       " \"c\": \"m-1.safetensors\"}}";
    char **paths;
    int n;
    dsc_err err;
    cr_assert_eq(st_index_shards_memory(text, strlen(text), "dir/x.index.json",
                                        &paths, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(paths[0], "dir/m-1.safetensors");
    cr_expect_str_eq(paths[1], "dir/m-2.safetensors");
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    const char *bad = "{\"weight_map\": {\"a\": \"../secret.safetensors\"}}";
    cr_assert_eq(st_index_shards_memory(bad, strlen(bad), "x.json", &paths, &n,
                                        &err), -1);
    cr_expect(strstr(err.msg, "must be a file name beside the index"), "%s",
              err.msg);
    const char *none = "{\"metadata\": {}}";
    cr_assert_eq(st_index_shards_memory(none, strlen(none), "x.json", &paths,
                                        &n, &err), -1);
    cr_expect(strstr(err.msg, "weight_map"), "%s", err.msg);
}


/* An index naming 200,000 shards, each twice, far apart: the repeats go
 * and the order of first appearance stays, in n log n (comparing each
 * new name with every one before took a minute; the timeout catches
 * that). */
Test(deepseek, st_index_many_shards, .timeout = 20)
{
    enum { SHARDS = 200000 };
    size_t cap = (size_t)SHARDS * 2 * 48 + 64, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)snprintf(text, cap, "{\"weight_map\": {");
    for (int i = 0; i < 2 * SHARDS; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "%s\"k%d\": \"s%d.safetensors\"", i ? ", " : "",
                                i, (int)((int64_t)i * 7919 % SHARDS));
    len += (size_t)snprintf(text + len, cap - len, "}}");
    char **paths;
    int n;
    dsc_err err;
    cr_assert_eq(st_index_shards_memory(text, len, "d/x.json", &paths, &n,
                                        &err), 0, "%s", err.msg);
    cr_assert_eq(n, SHARDS);
    char want[40];
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof want, "d/s%d.safetensors",
                 (int)((int64_t)i * 7919 % SHARDS));
        cr_assert_str_eq(paths[i], want);
        free(paths[i]);
    }
    free(paths);
    free(text);
}
