/* test_bench.c — dsc bench prints one JSON line with every figure, sane
 * values and the flop count worked out by hand.  No timing asserts: speed
 * is measured by make bench, not by tests. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *dsc(void)
{
    const char *path = getenv("DSC");
    return path && *path ? path : "build/dsc";
}


/* Run dsc with args; its stdout into out (NUL-terminated).  Returns the
 * exit status. */
static int run_dsc(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", dsc(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status), "did not exit: %s", cmd);
    return WEXITSTATUS(status);
}


/* Where "key": starts its value in the line, or NULL. */
static const char *value_of(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(json, pat);
    return at ? at + strlen(pat) : NULL;
}


static double number(const char *json, const char *key)
{
    const char *v = value_of(json, key);
    cr_assert_not_null(v, "no \"%s\" in %s", key, json);
    char *end;
    double x = strtod(v, &end);
    cr_assert(end != v && (*end == ',' || *end == '}'),
              "\"%s\" is not a number in %s", key, json);
    return x;
}


static void string_is(const char *json, const char *key, const char *want)
{
    const char *v = value_of(json, key);
    cr_assert_not_null(v, "no \"%s\" in %s", key, json);
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", want);
    cr_assert(strncmp(v, quoted, strlen(quoted)) == 0,
              "\"%s\" should be %s in %s", key, quoted, json);
}


/* seed_encoder with layers=1, seq=4, batch=2 (d_model 256, heads 4, d_ff
 * 2048, vocab 1000): M = 8 rows, counted as compiler/bench.c documents. */
static double hand_flop(void)
{
    double m = 8, d = 256, f = 2048, v = 1000;
    double qkv = 2 * m * (3 * d) * d + m * 3 * d;          /* + bias */
    double attn = 2 * 4.0 * 4 * (64 + 64) * 4 * 2;        /* seq² (dqk+dv) h b */
    double out = 2 * m * d * d + m * d + m * d;           /* + bias + residual */
    double norm = 8 * m * d;
    double ff1 = 2 * m * f * d + m * f + m * f;           /* + bias + relu */
    double ff2 = 2 * m * d * f + m * d + m * d;           /* + bias + residual */
    double fc = 2 * m * v * d + m * v;                    /* + bias */
    return qkv + attn + out + norm + ff1 + ff2 + norm + fc;
}


static void check_line(const char *out, const char *mode)
{
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1,
                 "expected exactly one line, got: %s", out);
    cr_assert_eq(out[0], '{');
    string_is(out, "model", "seed_encoder");
    string_is(out, "path", "models/seed_encoder.lua");
    string_is(out, "mode", mode);
    cr_assert_not_null(strstr(out, "\"config\":{"), "%s", out);
    cr_assert_not_null(strstr(out, "\"layers\":\"1\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"seq\":\"4\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"batch\":\"2\""), "%s", out);

    cr_assert_eq(number(out, "threads"), 1);
    cr_assert_eq(number(out, "runs"), 3);
    double med = number(out, "median_ms"), lo = number(out, "min_ms"),
           hi = number(out, "max_ms");
    cr_assert(lo > 0 && lo <= med && med <= hi, "min %g median %g max %g",
              lo, med, hi);
    /* Nearest rank of 3 runs: p50 is the 2nd, p90 and p99 the 3rd. */
    double p50 = number(out, "p50_ms"), p90 = number(out, "p90_ms"),
           p99 = number(out, "p99_ms");
    cr_assert(p50 == med && p90 == hi && p99 == hi,
              "p50 %g p90 %g p99 %g of min %g median %g max %g", p50, p90,
              p99, lo, med, hi);
    cr_assert_not_null(strstr(out, "\"cpu\":\""), "%s", out);
    const char *isa = strstr(out, "\"isa\":\"");
    cr_assert(isa && (strncmp(isa + 7, "avx512\"", 7) == 0 ||
                      strncmp(isa + 7, "avx2\"", 5) == 0 ||
                      strncmp(isa + 7, "generic\"", 8) == 0), "%s", out);
    cr_assert(strstr(out, "\"layout\":\"panel64\"") ||
              strstr(out, "\"layout\":\"panel32\""), "%s", out);

    double gflop = number(out, "gflop");
    cr_assert(gflop > 0);
    cr_assert(fabs(gflop * 1e9 - hand_flop()) < 0.5,
              "gflop %.9g, by hand %.0f flops", gflop, hand_flop());
    double gflops = number(out, "gflops");
    cr_assert(fabs(gflops - gflop / (med / 1e3)) <= 1e-3 + 1e-3 * gflops,
              "gflops %g is not gflop / median", gflops);

    double peak = number(out, "peak_gflops");
    cr_assert(peak > 0);
    cr_assert(fabs(number(out, "pct_peak") - 100 * gflops / peak) <
              1e-2 + 1e-3 * 100 * gflops / peak);

    double build = number(out, "build_ms"), load = number(out, "load_ms"),
           compile = number(out, "compile_ms");
    cr_assert(build > 0 && load > 0);
    cr_assert(fabs(compile - (build + load)) < 0.01, "compile_ms %g", compile);
    cr_assert(number(out, "peak_rss_kb") > 1000);
}


Test(bench, jit_json_line)
{
    char out[4096];
    cr_assert_eq(run_dsc("bench models/seed_encoder.lua -D layers=1 -D seq=4 "
                         "-D batch=2 --runs 3 --threads 1", out, sizeof out), 0);
    check_line(out, "jit");
}


/* --target picks the layout and, where the CPU has it, the kernels. */
Test(bench, target_sets_isa_and_layout)
{
    char out[4096];
    cr_assert_eq(run_dsc("bench models/seed_encoder.lua -D layers=1 -D seq=4 "
                         "-D batch=2 --runs 3 --threads 1 --target generic",
                         out, sizeof out), 0);
    string_is(out, "isa", "generic");
    string_is(out, "layout", "panel32");
}


Test(bench, aot_json_line)
{
    char out[4096];
    cr_assert_eq(run_dsc("bench models/seed_encoder.lua -D layers=1 -D seq=4 "
                         "-D batch=2 --runs 3 --threads 1 --aot", out,
                         sizeof out), 0);
    check_line(out, "aot");
}


Test(bench, bad_weights_is_an_error)
{
    char out[4096];
    cr_assert_eq(run_dsc("bench models/seed_encoder.lua --runs 1 "
                         "--weights /nonexistent/w.safetensors", out,
                         sizeof out), 1);
    cr_assert_str_empty(out, "nothing on stdout after an error: %s", out);
}


/* The latency example (make builds it with its one-token model and blob):
 * percentiles in order, and at one thread a forward that takes no page
 * fault and never blocks (no voluntary context switch) once warm. */
Test(bench, latency_example_is_steady_in_kind)
{
    const char *prog = getenv("LATENCY");
    if (!prog || !*prog)
        prog = "build/latency_seed";
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof cmd, "%s build/example/seed_encoder.bin 300 1", prog);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s: %s", cmd, out);
    double p50, p90, p99, max;
    long faults, major, vol, invol;
    cr_assert_eq(sscanf(strstr(out, "p50"), "p50 %lf ms, p90 %lf ms, p99 %lf "
                        "ms, max %lf ms", &p50, &p90, &p99, &max), 4, "%s",
                 out);
    cr_assert(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max, "%s", out);
    cr_assert_eq(sscanf(strstr(out, "during"), "during the timed calls: %ld "
                        "page faults (%ld major), %ld voluntary and %ld",
                        &faults, &major, &vol, &invol), 4, "%s", out);
    cr_expect_eq(faults, 0, "%s", out);
    cr_expect_eq(vol, 0, "%s", out);
}


/* -fweights=q8: the format, the blob's size, the resident set, and the
 * comparison with float32 (same weights and inputs) in the JSON; f32 has
 * no comparison. */
Test(bench, reduced_format_reports_size_and_accuracy)
{
    char f32[4096], q8[4096];
    const char *args = "bench models/seed_encoder.lua -D layers=1 -D seq=4 "
                       "-D batch=2 --runs 3 --threads 1 --target avx2";
    char cmd[512];
    cr_assert_eq(run_dsc(args, f32, sizeof f32), 0);
    snprintf(cmd, sizeof cmd, "%s -fweights=q8", args);
    cr_assert_eq(run_dsc(cmd, q8, sizeof q8), 0);
    string_is(f32, "weight_format", "f32");
    string_is(q8, "weight_format", "q8");
    string_is(q8, "layout", "panel32-q8");
    cr_assert_null(value_of(f32, "max_abs_diff_vs_f32"), "%s", f32);
    /* The linear weights are most of the blob; q8 stores 36 bytes per 32
     * weights instead of 128. */
    double wf = number(f32, "weight_bytes"), wq = number(q8, "weight_bytes");
    cr_assert(wf > 1e6 && wq < 0.45 * wf, "f32 %g, q8 %g bytes", wf, wq);
    cr_assert(number(q8, "rss_kb") > 1000, "%s", q8);
    double diff = number(q8, "max_abs_diff_vs_f32");
    double agree = number(q8, "argmax_agree_vs_f32");
    cr_assert(diff > 1e-5 && diff < 0.05, "max |diff| %g", diff);
    cr_assert(agree >= 0.75 && agree <= 1, "argmax agreement %g", agree);
}


/* A decoder: the read bandwidth sets the bound, the copy bandwidth the
 * old one; a q8 step reads the bytes q8 stores. */
Test(bench, decoder_bounds_and_reduced_bytes)
{
    char f32[4096], q8[4096];
    const char *args = "bench models/gpt2.lua -D vocab=83 -D ctx=40 "
                       "-D d_model=32 -D heads=4 -D layers=2 --runs 2 -n 8 "
                       "--threads 1";
    char cmd[512];
    cr_assert_eq(run_dsc(args, f32, sizeof f32), 0);
    snprintf(cmd, sizeof cmd, "%s -fweights=q8", args);
    cr_assert_eq(run_dsc(cmd, q8, sizeof q8), 0);
    for (int i = 0; i < 2; i++) {
        const char *o = i ? q8 : f32;
        double bytes = number(o, "weight_bytes_per_token");
        double read = number(o, "read_gbps"), copy = number(o, "copy_gbps");
        double tok_s = number(o, "decode_tok_s");
        double bound = number(o, "bound_tok_s");
        cr_assert(read > 0 && copy > 0, "%s", o);
        /* read_gbps is printed to 0.01 GB/s */
        cr_assert(fabs(bound - read * 1e9 / bytes) <= 0.0051 / read * bound,
                  "bound %g is not read_gbps / bytes: %s", bound, o);
        cr_assert(fabs(number(o, "pct_bound") - 100 * tok_s / bound) <=
                  0.1 + 1e-3 * 100 * tok_s / bound, "%s", o);
        double copy_bound = copy * 1e9 / bytes;
        cr_assert(fabs(number(o, "pct_copy_bound") - 100 * tok_s /
                       copy_bound) <= 0.1 + 0.0051 / copy * 100 * tok_s /
                       copy_bound,
                  "%s", o);
        cr_assert(number(o, "rss_kb") > 1000, "%s", o);
    }
    cr_assert(number(q8, "weight_bytes_per_token") <
              0.45 * number(f32, "weight_bytes_per_token"), "%s\n%s", f32, q8);
    cr_assert(number(q8, "weight_bytes") < 0.45 * number(f32, "weight_bytes"));
    double diff = number(q8, "max_abs_diff_vs_f32");
    cr_assert(diff > 1e-5 && diff < 0.5, "max |diff| %g", diff);
    double agree = number(q8, "argmax_agree_vs_f32");
    cr_assert(agree >= 0 && agree <= 1, "%g", agree);
}
