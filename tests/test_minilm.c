/* test_minilm.c — models/minilm.lua and the embedder (driver/embed.c):
 * a random small BERT against transformers + sentence-transformers'
 * pooling (tests/fixtures/bert_small, from tools/export_bert.py) in every
 * batch size, JIT and AOT; the new kernels against direct sums; and, when
 * tools/get-minilm.sh has fetched the real all-MiniLM-L6-v2 into
 * build/minilm/model (or $MINILM_DIR), `dsc embed` against
 * sentence-transformers' embeddings (tests/fixtures/minilm, from
 * tools/record_minilm.py). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_test.h"
#include "driver/embed.h"
#include "dsc_runtime.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "tokenizer/tokenizer.h"

#define MAX_DEFINES 16
#define FX "tests/fixtures/bert_small"

typedef struct config {
    char *text;
    frontend_define defines[MAX_DEFINES];
    int n_defines;
} config;


static void read_config(config *c, const char *path)
{
    size_t len;
    dsc_err err;
    memset(c, 0, sizeof *c);
    c->text = file_read_all(path, &len, &err);
    cr_assert_not_null(c->text, "%s", err.msg);
    for (char *tok = strtok(c->text, " \n"); tok; tok = strtok(NULL, " \n")) {
        if (strcmp(tok, "-D") == 0)
            continue;
        char *eq = strchr(tok, '=');
        cr_assert_not_null(eq, "config: %s", tok);
        cr_assert_lt(c->n_defines, MAX_DEFINES);
        *eq = '\0';
        c->defines[c->n_defines++] = (frontend_define){ .key = tok, .value = eq + 1 };
    }
}


/* ids.txt: one sentence per line, comma-separated ids. */
static void read_ids(tok_batch *b, const char *path)
{
    size_t len;
    dsc_err err;
    char *text = file_read_all(path, &len, &err);
    cr_assert_not_null(text, "%s", err.msg);
    memset(b, 0, sizeof *b);
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    b->start = calloc((size_t)lines + 1, sizeof *b->start);
    b->ids = malloc(len * sizeof *b->ids + 4);
    cr_assert(b->start && b->ids);
    char *p = text;
    for (int64_t l = 0; l < lines; l++) {
        while (*p != '\n') {
            char *end;
            b->ids[b->n_ids++] = (int32_t)strtol(p, &end, 10);
            cr_assert(end > p, "%s: line %lld", path, (long long)l + 1);
            p = *end == ',' ? end + 1 : end;
        }
        p++;
        b->start[++b->n] = b->n_ids;
    }
    free(text);
}


static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= m))
            m = fabs((double)a[i] - b[i]);
    return m;
}


/* Embed the fixture's sentences batch at a time; compare. */
static void check_bert_small(int64_t batch, int aot, int threads)
{
    config c;
    tok_batch ids;
    npy_array want;
    dsc_err err;
    read_config(&c, FX "/config");
    read_ids(&ids, FX "/ids.txt");
    cr_assert_eq(npy_read(FX "/embeddings.npy", &want, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(want.shape[0], ids.n);
    embed_options o = {
        .model_path = "models/minilm.lua",
        .build = { .defines = c.defines, .n_defines = c.n_defines },
        .weights_path = FX "/weights.safetensors", .threads = threads,
        .aot = aot, .batch = batch,
    };
    int64_t dim = 0;
    embed_stats st;
    float *got = embed_sentences(&o, &ids, &dim, &st, &err);
    cr_assert_not_null(got, "%s", err.msg);
    cr_assert_eq(dim, want.shape[1]);
    /* float32 end to end against float32 PyTorch: measured 6e-8. */
    double d = max_diff(got, want.data, ids.n * dim);
    cr_assert_lt(d, 5e-7, "batch %lld: max |diff| %g", (long long)batch, d);
    /* Packed: rows only round the tokens up to whole blocks. */
    cr_assert_geq(st.rows, st.real_tokens);
    cr_assert_lt(st.rows, st.real_tokens + st.forwards * EMBED_ROW_STEP);
    cr_assert_eq(st.forwards, (ids.n + batch - 1) / batch);
    free(got);
    npy_free(&want);
    tok_batch_free(&ids);
    free(c.text);
}

Test(minilm, bert_small_one_batch) { check_bert_small(7, 0, 1); }
Test(minilm, bert_small_batch_of_one) { check_bert_small(1, 0, 1); }
Test(minilm, bert_small_batch_of_three_two_threads) { check_bert_small(3, 0, 2); }
Test(minilm, bert_small_aot) { check_bert_small(4, 1, 1); }


/* A sentence's embedding does not depend on its batch: the same sentence
 * alone and among longer ones, bit for bit. */
Test(minilm, batch_independent)
{
    config c;
    tok_batch ids;
    dsc_err err;
    read_config(&c, FX "/config");
    read_ids(&ids, FX "/ids.txt");
    embed_options o = {
        .model_path = "models/minilm.lua",
        .build = { .defines = c.defines, .n_defines = c.n_defines },
        .weights_path = FX "/weights.safetensors", .threads = 1, .batch = 7,
    };
    int64_t dim;
    float *all = embed_sentences(&o, &ids, &dim, NULL, &err);
    cr_assert_not_null(all, "%s", err.msg);
    o.batch = 1;
    float *one = embed_sentences(&o, &ids, &dim, NULL, &err);
    cr_assert_not_null(one, "%s", err.msg);
    cr_assert_eq(memcmp(all, one, (size_t)(ids.n * dim) * sizeof *all), 0);
    free(all);
    free(one);
    tok_batch_free(&ids);
    free(c.text);
}


/* The passes apply to the BERT graph: Q/K/V become one GEMM per layer, the
 * GELU and residual adds fold into the linears. */
Test(minilm, passes_apply)
{
    built_model b;
    dsc_err err;
    cr_assert_eq(build_model("models/minilm.lua", NULL, &b, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(b.stats.fused_qkv, 6);
    cr_assert_eq(b.stats.fused_epilogue, 18);  /* 6 x (GELU + 2 residuals) */
    cr_assert_eq(b.stats.gemm_calls, 24);
    cr_assert_not_null(strstr(b.source, "rt_attention_packed("));
    built_model_free(&b);
}


/* ---- the kernels, against direct sums --------------------------------- */

Test(minilm, mean_pool_and_l2)
{
    enum { B = 3, S = 5, D = 4 };
    float x[B * S * D], y[B * D], z[B * D];
    int32_t lengths[B] = { 2, 5, 0 };
    for (int i = 0; i < B * S * D; i++)
        x[i] = (float)((i * 37) % 11) - 5.0f;
    rt_mean_pool(NULL, y, x, lengths, B, S, D);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            double sum = 0;
            for (int s = 0; s < lengths[b]; s++)
                sum += x[(b * S + s) * D + d];
            double want = lengths[b] ? sum / lengths[b] : 0;
            cr_assert_float_eq(y[b * D + d], want, 1e-6);
        }
    rt_l2_normalize(NULL, z, y, B, D);
    for (int b = 0; b < 2; b++) {
        double norm = 0;
        for (int d = 0; d < D; d++)
            norm += (double)y[b * D + d] * y[b * D + d];
        for (int d = 0; d < D; d++)
            cr_assert_float_eq(z[b * D + d], y[b * D + d] / sqrt(norm), 1e-6);
    }
    for (int d = 0; d < D; d++)  /* a zero row stays zero, not NaN */
        cr_assert_eq(z[2 * D + d], 0.0f);
}


/* Keys past a sequence's length get no weight; its padded query rows are
 * zero. */
Test(minilm, attention_lengths)
{
    enum { B = 2, S = 4, H = 2, DH = 3, W = H * DH };
    float q[B * S * W], k[B * S * W], v[B * S * W], out[B * S * W];
    int32_t lengths[B] = { 3, 1 };
    for (int i = 0; i < B * S * W; i++) {
        q[i] = (float)sin(i * 0.7);
        k[i] = (float)cos(i * 0.3);
        v[i] = (float)sin(i * 1.3 + 1);
    }
    memset(out, 0x7f, sizeof out);
    rt_attention_shape sh = { .seq = S, .batch = B, .heads = H,
                              .head_dim_qk = DH, .head_dim_v = DH,
                              .seq_step = 1, .batch_step = S, .ldq = W,
                              .ldk = W, .ldv = W, .ldo = W, .scale = 0.5f };
    rt_attention_lengths(NULL, out, q, k, v, lengths, &sh);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++)
            for (int h = 0; h < H; h++) {
                double p[S], sum = 0, mx = -1e30;
                int n = lengths[b];
                const float *qr = q + (b * S + s) * W + h * DH;
                for (int j = 0; j < n; j++) {
                    const float *kr = k + (b * S + j) * W + h * DH;
                    p[j] = 0;
                    for (int d = 0; d < DH; d++)
                        p[j] += 0.5 * qr[d] * kr[d];
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < n; j++)
                    sum += p[j] = exp(p[j] - mx);
                for (int d = 0; d < DH; d++) {
                    double want = 0;
                    for (int j = 0; s < n && j < n; j++)
                        want += p[j] / sum * v[(b * S + j) * W + h * DH + d];
                    cr_assert_float_eq(out[(b * S + s) * W + h * DH + d],
                                       want, 1e-5, "b %d s %d h %d", b, s,
                                       h);
                }
            }
}


/* ---- the real all-MiniLM-L6-v2, when fetched -------------------------- */

static const char *minilm_dir(void)
{
    const char *d = getenv("MINILM_DIR");
    return d && *d ? d : "build/minilm/model";
}


static int have_minilm(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", minilm_dir());
    return access(path, R_OK) == 0;
}


static void check_real(const char *extra)
{
    if (!have_minilm())
        cr_skip_test("the real model is not in %s (tools/get-minilm.sh "
                     "fetches it)", minilm_dir());
    const char *dsc = getenv("DSC") ? getenv("DSC") : "build/dsc";
    char out[] = "/tmp/dsc_minilm_XXXXXX", log[] = "/tmp/dsc_minilm_XXXXXX";
    int fd = mkstemp(out), fd_log = mkstemp(log);
    cr_assert(fd >= 0 && fd_log >= 0);
    close(fd);
    close(fd_log);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s embed models/minilm.lua --weights "
             "%s/model.safetensors --tokenizer %s/tokenizer.json --text "
             "tests/fixtures/minilm/sentences.txt --output %s %s "
             "2>%s", dsc, minilm_dir(), minilm_dir(), out, extra, log);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s", cmd);
    /* The parts of the time it reports are apart: together no more than
     * the total (compile once counted the 90 MB of weights again). */
    size_t len;
    char *text = file_read_all(log, &len, NULL);
    unlink(log);
    cr_assert_not_null(text);
    const char *line = strstr(text, "; tokenize ");
    double tok, compile, weights, fwd, total;
    cr_assert(line && sscanf(line, "; tokenize %lf ms, compile %lf ms, "
                             "weights %lf ms, forward %lf ms, total %lf ms",
                             &tok, &compile, &weights, &fwd, &total) == 5,
              "no times in: %s", text);
    /* 0.3 ms: the five figures are printed to 0.1 ms. */
    cr_assert_leq(tok + compile + weights + fwd, total + 0.3, "%s", line);
    free(text);
    npy_array got, want;
    dsc_err err;
    cr_assert_eq(npy_read(out, &got, &err), 0, "%s", err.msg);
    unlink(out);
    cr_assert_eq(npy_read("tests/fixtures/minilm/embeddings.npy", &want,
                          &err), 0, "%s", err.msg);
    cr_assert_eq(got.count, want.count);
    int64_t dim = want.shape[1];
    const float *a = got.data, *b = want.data;
    for (int64_t i = 0; i < want.shape[0]; i++) {
        double dot = 0, na = 0, nb = 0;
        for (int64_t d = 0; d < dim; d++) {
            dot += (double)a[i * dim + d] * b[i * dim + d];
            na += (double)a[i * dim + d] * a[i * dim + d];
            nb += (double)b[i * dim + d] * b[i * dim + d];
        }
        double cos = dot / sqrt(na * nb);
        cr_assert_geq(cos, 0.99999, "sentence %lld: cosine %.8f",
                      (long long)i + 1, cos);
    }
    double d = max_diff(a, b, want.count);
    cr_assert_leq(d, 2e-4, "max |diff| %g", d);
    npy_free(&got);
    npy_free(&want);
}

Test(minilm_real, embed_jit, .timeout = 300) { check_real("--batch 5"); }
Test(minilm_real, embed_aot, .timeout = 600) { check_real("--aot --batch 32"); }


/* Packed sequences give what padded ones give, row for row; rows after the
 * last sequence are zero. */
Test(minilm, packed_equals_padded)
{
    enum { B = 3, S = 5, H = 2, DH = 4, W = H * DH, T = 12 };
    int32_t lengths[B] = { 4, 1, 5 };  /* 10 of the 12 rows */
    float q[B * S * W], k[B * S * W], v[B * S * W], out[B * S * W];
    float pq[T * W], pk[T * W], pv[T * W], pout[T * W];
    for (int i = 0; i < B * S * W; i++) {
        q[i] = (float)sin(i * 0.37);
        k[i] = (float)cos(i * 0.91);
        v[i] = (float)sin(i * 0.53 + 2);
    }
    int row = 0;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < lengths[b]; s++, row++) {
            memcpy(pq + row * W, q + (b * S + s) * W, W * sizeof *q);
            memcpy(pk + row * W, k + (b * S + s) * W, W * sizeof *k);
            memcpy(pv + row * W, v + (b * S + s) * W, W * sizeof *v);
        }
    memset(pout, 0x7f, sizeof pout);
    rt_attention_shape sh = { .seq = S, .batch = B, .heads = H,
                              .head_dim_qk = DH, .head_dim_v = DH,
                              .seq_step = 1, .batch_step = S, .ldq = W,
                              .ldk = W, .ldv = W, .ldo = W, .scale = 0.35f };
    rt_attention_lengths(NULL, out, q, k, v, lengths, &sh);
    rt_attention_shape ps = sh;
    ps.seq = T;
    ps.batch = 1;
    ps.batch_step = T;
    rt_attention_packed(NULL, pout, pq, pk, pv, lengths, B, &ps);
    row = 0;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < lengths[b]; s++, row++)
            cr_assert_eq(memcmp(pout + row * W, out + (b * S + s) * W,
                                W * sizeof *out), 0, "b %d s %d", b, s);
    for (; row < T; row++)
        for (int j = 0; j < W; j++)
            cr_assert_eq(pout[row * W + j], 0.0f);
    float y[B * W], py[B * W];
    rt_mean_pool(NULL, y, out, lengths, B, S, W);
    rt_mean_pool_packed(NULL, py, pout, lengths, B, T, W);
    cr_assert_eq(memcmp(y, py, sizeof y), 0);
}


/* ---- the command line ------------------------------------------------- */

static char *run_capture(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    *status = pclose(p);
    return buf;
}


/* --config config.json sets what -D would; a config for another model is
 * refused by the model file. */
Test(minilm_cli, config_json_as_defines)
{
    const char *dsc = getenv("DSC") ? getenv("DSC") : "build/dsc";
    char dir[] = "/tmp/dsc_cfg_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], cmd[2048];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/s.txt", dir);
    f = fopen(path, "w");
    fputs("Hello worlds\n\nhello\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    fputs("{\"architectures\": [\"BertModel\"], \"hidden_act\": \"gelu\",\n"
          " \"hidden_size\": 32, \"intermediate_size\": 64,\n"
          " \"num_attention_heads\": 4, \"num_hidden_layers\": 2,\n"
          " \"vocab_size\": 8, \"max_position_embeddings\": 16,\n"
          " \"layer_norm_eps\": 1e-12, \"position_embedding_type\": "
          "\"absolute\"}\n", f);
    fclose(f);
    int st;
    snprintf(cmd, sizeof cmd, "%s embed models/minilm.lua --tokenizer "
             "%s/vocab.txt --text %s/s.txt --config %s/config.json "
             "2>/dev/null", dsc, dir, dir, dir);
    char *a = strdup(run_capture(cmd, &st));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", cmd);
    cr_assert_not_null(strstr(a, "2:"), "%s", a);
    snprintf(cmd, sizeof cmd, "%s embed models/minilm.lua --tokenizer "
             "%s/vocab.txt --text %s/s.txt -D hidden_size=32 "
             "-D intermediate_size=64 -D num_attention_heads=4 "
             "-D num_hidden_layers=2 -D vocab_size=8 "
             "-D max_position_embeddings=16 2>/dev/null", dsc, dir, dir);
    char *b = run_capture(cmd, &st);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", cmd);
    cr_assert_str_eq(a, b);
    free(a);
    f = fopen(path, "w");
    fputs("{\"hidden_size\": 32,\n \"hidden_act\": \"relu\"}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s embed models/minilm.lua --tokenizer "
             "%s/vocab.txt --text %s/s.txt --config %s/config.json 2>&1",
             dsc, dir, dir, dir);
    /* models/minilm.lua refuses what it does not compute */
    cr_assert_not_null(strstr(run_capture(cmd, &st), "error: hidden_act is "
                              "'relu'"));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}


/* ---- dsc embed's errors --------------------------------------------- */

TestSuite(embed_errors, .init = make_tmp, .fini = remove_tmp);


/* A vocab.txt in the scratch directory: head's tokens (one per line), then
 * fillers up to id `upto`, then tail's tokens from there. */
static const char *write_vocab(const char *head, int upto, const char *tail)
{
    const char *path = tmp_file("vocab.txt");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(head, f);
    int id = 0;
    for (const char *p = head; *p; p++)
        id += *p == '\n';
    for (; id < upto; id++)
        fprintf(f, "filler%d\n", id);
    fputs(tail, f);
    fclose(f);
    return path;
}


static const char *write_text(const char *name, const char *text)
{
    const char *path = tmp_file(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}


/* dsc embed on the bert_small fixture (vocabulary 61, 40 positions) with
 * the scratch vocab.txt and text.txt; its exit status, stderr in tmp. */
static int embed_small(const char *extra)
{
    char *flags = fixture_config("bert_small");
    int rc = run("%s embed models/minilm.lua %s --weights "
                 "%s/weights.safetensors --tokenizer %s --text %s %s", dsc(),
                 flags, FX,
                 tmp_file("vocab.txt"), tmp_file("text.txt"), extra);
    free(flags);
    return rc;
}


static void expect_error(int rc, const char *want)
{
    char *text = stderr_text();
    cr_expect_eq(rc, 1, "%s", text);
    cr_expect(strstr(text, want), "want '%s' in: %s", want, text);
    cr_expect(!strstr(text, "sentences,"), "a success line: %s", text);
    free(text);
}


/* dsc embed of text with write_vocab(head, upto, tail) fails, saying
 * the scratch path of `file` followed by want. */
static void expect_vocab_error(const char *head, int upto, const char *tail,
                               const char *text, const char *file,
                               const char *want)
{
    write_vocab(head, upto, tail);
    write_text("text.txt", text);
    char full[600];
    snprintf(full, sizeof full, "%s%s", tmp_file(file), want);
    expect_error(embed_small(""), full);
}


/* Every sentence's ids are the model's; only the padding id is not. */
Test(embed_errors, pad_id_outside_the_vocabulary)
{
    expect_vocab_error("[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n", 69,
                       "[PAD]\n", "hello world\n", "vocab.txt",
                       ": error: the padding id 69 is outside the model's "
                       "vocabulary of 61 ids");
}


/* A token past the model's vocabulary is named with its id and the line
 * of the text it is on. */
Test(embed_errors, token_id_outside_the_vocabulary_names_the_line)
{
    expect_vocab_error("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", 70,
                       "zebra\n", "hello\n\nhello zebra hello\n", "text.txt",
                       ":3: error: token id 70 is outside the model's "
                       "vocabulary of 61 ids");
}


/* A sentence longer than the positions is named, with the --max-length
 * that would cut it; a generous --max-length alone is no error. */
Test(embed_errors, longer_than_the_positions)
{
    write_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", 6, "");
    write_text("text.txt", "hello\n");
    cr_expect_eq(embed_small("--max-length 100"), 0);
    char line[300] = "hello\n";
    for (int i = 0; i < 39; i++)
        strcat(line, "hello ");
    const char *text = write_text("text.txt", line);
    char want[600];
    snprintf(want, sizeof want, "%s:2: error: the sentence is 41 tokens, "
             "more than the model's 40 positions (--max-length 40 would cut "
             "it there)", text);
    expect_error(embed_small(""), want);
    expect_error(embed_small("--max-length 100"), want);
    cr_expect_eq(embed_small("--max-length 40"), 0);  /* cut to fit: fine */
}


/* sentences and tokens are embed's own: from --config the file and line
 * are named, from -D the option. */
Test(embed_errors, own_keys_name_where_they_came_from)
{
    write_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", 6, "");
    write_text("text.txt", "hello\n");
    const char *cfg = write_text("config.json", "{\"hidden_size\": 32,\n"
                                 " \"tokens\": 64}\n");
    char want[600];
    snprintf(want, sizeof want, "%s:2: error: config key 'tokens'", cfg);
    char extra[600];
    snprintf(extra, sizeof extra, "--config %s", cfg);
    expect_error(embed_small(extra), want);
    expect_error(embed_small("-D sentences=4"),
                 "dsc: error: embed: -D sentences:");
}


/* A failed --output is the last word: no success line after it. */
Test(embed_errors, no_success_line_after_a_failed_output)
{
    write_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", 6, "");
    const char *text = write_text("text.txt", "hello\n");
    char extra[600];
    /* the text file is no directory */
    snprintf(extra, sizeof extra, "--output %s/out.npy", text);
    expect_error(embed_small(extra), "out.npy: error:");
}
