/* test_safetensors.c — the safetensors reader on good and hostile files.
 * Files are built in memory: 8-byte length, JSON (written here with ' for "
 * to stay readable), data. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli_test.h"
#include "io/safetensors.h"

#define NAME "w.safetensors"

static const unsigned char zeros[1 << 12];


/* The file bytes for json (with ' turned into ") followed by data. */
static unsigned char *build(const char *json, const void *data, size_t dlen,
                            size_t *len)
{
    size_t h = strlen(json);
    *len = 8 + h + dlen;
    unsigned char *b = malloc(*len);
    cr_assert_not_null(b);
    uint64_t hl = h;
    memcpy(b, &hl, 8);
    for (size_t i = 0; i < h; i++)
        b[8 + i] = json[i] == '\'' ? '"' : (unsigned char)json[i];
    if (dlen)
        memcpy(b + 8 + h, data, dlen);
    return b;
}


static st_file *open_json(const char *json, const void *data, size_t dlen,
                          dsc_err *err)
{
    size_t len;
    unsigned char *b = build(json, data, dlen, &len);
    st_file *f = st_open_memory(b, len, NAME, err);
    free(b);
    return f;
}


/* The message is one line for NAME that contains every fragment. */
static void check_msg(const char *msg, const char *what, const char *frag1,
                      const char *frag2)
{
    cr_assert(strncmp(msg, NAME ": error: ", strlen(NAME ": error: ")) == 0,
              "%s: message does not name the file: %s", what, msg);
    cr_assert(!strchr(msg, '\n'), "%s: message is not one line: %s", what, msg);
    cr_assert(strstr(msg, frag1), "%s: '%s' not in: %s", what, frag1, msg);
    if (frag2)
        cr_assert(strstr(msg, frag2), "%s: '%s' not in: %s", what, frag2, msg);
}


static void expect_fail_bytes(const void *bytes, size_t len, const char *what,
                              const char *frag1, const char *frag2)
{
    dsc_err err = {{0}};
    st_file *f = st_open_memory(bytes, len, NAME, &err);
    if (f) {
        st_close(f);
        cr_assert_fail("%s: accepted", what);
    }
    check_msg(err.msg, what, frag1, frag2);
}


/* json must fail to open (over dlen zero bytes of data). */
static void expect_fail(const char *json, size_t dlen, const char *frag1,
                        const char *frag2)
{
    size_t len;
    unsigned char *b = build(json, zeros, dlen, &len);
    expect_fail_bytes(b, len, json, frag1, frag2);
    free(b);
}


static st_file *expect_open(const char *json, const void *data, size_t dlen)
{
    dsc_err err = {{0}};
    st_file *f = open_json(json, data, dlen, &err);
    cr_assert_not_null(f, "rejected %s: %s", json, err.msg);
    return f;
}


static uint32_t bits_of(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return b;
}


Test(safetensors, reads_valid_file)
{
    float data[9] = {1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f, 100.f, 0.5f, 9.f};
    st_file *f = expect_open(
        "{'__metadata__': {'format': 'pt', 'note': 'x'},"
        " 'w': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]},\n"
        " 'b': {'data_offsets': [24, 36], 'shape': [3], 'dtype': 'F32'}}",
        data, sizeof data);
    cr_assert_str_eq(st_path(f), NAME);
    cr_assert_eq(st_count(f), 2);
    const st_tensor *w = st_at(f, 0), *b = st_at(f, 1);
    cr_assert_str_eq(w->name, "w");
    cr_assert_str_eq(b->name, "b");
    cr_assert_eq(w->dtype, ST_F32);
    cr_assert_eq(w->rank, 2);
    cr_assert_eq(w->shape[0], 2);
    cr_assert_eq(w->shape[1], 3);
    cr_assert_eq(w->count, 6);
    cr_assert_eq(w->nbytes, 24);
    cr_assert_eq(b->count, 3);
    cr_assert_null(st_at(f, 2));
    cr_assert_null(st_at(f, -1));
    cr_assert_eq(st_find(f, "w"), w);
    cr_assert_eq(st_find(f, "b"), b);
    cr_assert_null(st_find(f, "__metadata__"));
    cr_assert_null(st_find(f, "c"));

    float out[9];
    dsc_err err = {{0}};
    cr_assert_eq(st_read_f32(f, w, 0, 6, out, &err), 0, "%s", err.msg);
    cr_assert_eq(st_read_f32(f, b, 0, 3, out + 6, &err), 0, "%s", err.msg);
    for (int i = 0; i < 9; i++)
        cr_assert_eq(bits_of(out[i]), bits_of(data[i]), "element %d", i);
    /* A slice in the middle. */
    float mid[2] = {0, 0};
    cr_assert_eq(st_read_f32(f, w, 3, 2, mid, &err), 0);
    cr_assert_eq(mid[0], 0.f);
    cr_assert_eq(mid[1], 1e-30f);
    st_close(f);
}


Test(safetensors, keeps_json_order_not_offset_order)
{
    float data[3] = {10.f, 20.f, 30.f};
    st_file *f = expect_open(
        "{'z': {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 12]},"
        " 'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]},"
        " 'm': {'dtype': 'F32', 'shape': [], 'data_offsets': [0, 4]}}",
        data, sizeof data);
    const char *order[3] = {"z", "a", "m"};
    const float want[3] = {30.f, 20.f, 10.f};
    cr_assert_eq(st_count(f), 3);
    for (int i = 0; i < 3; i++) {
        const st_tensor *t = st_at(f, i);
        float v = 0;
        cr_assert_str_eq(t->name, order[i]);
        cr_assert_eq(st_find(f, order[i]), t);
        cr_assert_eq(st_read_f32(f, t, 0, 1, &v, NULL), 0);
        cr_assert_eq(v, want[i], "%s", order[i]);
    }
    /* Rank 0 is one element. */
    cr_assert_eq(st_at(f, 2)->rank, 0);
    cr_assert_eq(st_at(f, 2)->count, 1);
    st_close(f);
}


Test(safetensors, f16_known_patterns)
{
    const uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001, 0x03FF,
                          0x8001, 0x8000, 0x3555, 0x7C00, 0xFC00, 0x7E00,
                          0x7C01};
    st_file *f = expect_open(
        "{'h': {'dtype': 'F16', 'shape': [13], 'data_offsets': [0, 26]}}",
        h, sizeof h);
    float v[13];
    dsc_err err = {{0}};
    cr_assert_eq(st_read_f32(f, st_find(f, "h"), 0, 13, v, &err), 4,
                 "inf, -inf and two NaNs: %s", err.msg);
    cr_assert_eq(v[0], 1.0f);
    cr_assert_eq(v[1], -2.0f);
    cr_assert_eq(v[2], 65504.0f);
    cr_assert_eq(v[3], 0x1p-14f);        /* smallest normal */
    cr_assert_eq(v[4], 0x1p-24f);        /* smallest subnormal */
    cr_assert_eq(v[5], 0x1.ff8p-15f);    /* largest subnormal, 1023 * 2^-24 */
    cr_assert_eq(v[6], -0x1p-24f);
    cr_assert_eq(bits_of(v[7]), 0x80000000u, "-0 keeps its sign");
    cr_assert_eq(v[8], 0.333251953125f);
    cr_assert_eq(bits_of(v[9]), 0x7F800000u);
    cr_assert_eq(bits_of(v[10]), 0xFF800000u);
    cr_assert(v[11] != v[11]);
    cr_assert(v[12] != v[12], "a signalling-pattern half is still NaN");
    st_close(f);
}


/* Reference half decoding by arithmetic, not bit shuffling. */
static double half_ref(uint16_t h)
{
    int e = h >> 10 & 0x1F, m = h & 0x3FF;
    double v = e ? 1024 + m : m;
    int p = (e ? e : 1) - 25;  /* value = v * 2^p */
    for (; p < 0; p++)
        v *= 0.5;
    for (; p > 0; p--)
        v *= 2;
    return h & 0x8000 ? -v : v;
}


Test(safetensors, f16_all_65536_patterns)
{
    uint16_t *h = malloc(65536 * 2);
    float *v = malloc(65536 * sizeof *v);
    for (int i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    st_file *f = expect_open(
        "{'all': {'dtype': 'F16', 'shape': [256, 256], 'data_offsets': [0, 131072]}}",
        h, 65536 * 2);
    int64_t bad = st_read_f32(f, st_at(f, 0), 0, 65536, v, NULL);
    cr_assert_eq(bad, 2 * 1024, "2 infs and 2046 NaNs");
    for (int i = 0; i < 65536; i++) {
        if ((i & 0x7C00) == 0x7C00) {
            int nan = (i & 0x3FF) != 0;
            cr_assert_eq(v[i] != v[i], nan, "%04x", i);
            if (!nan)
                cr_assert_eq(bits_of(v[i]), i & 0x8000 ? 0xFF800000u : 0x7F800000u);
            continue;
        }
        cr_assert_eq((double)v[i], half_ref((uint16_t)i), "%04x", i);
        cr_assert_eq(bits_of(v[i]) >> 31, (uint32_t)i >> 15, "sign of %04x", i);
    }
    st_close(f);
    free(h);
    free(v);
}


Test(safetensors, bf16_known_patterns)
{
    const uint16_t h[] = {0x3F80, 0xC040, 0x4049, 0x0001, 0x7F7F, 0x7F80,
                          0xFF80, 0x7FC0};
    st_file *f = expect_open(
        "{'g': {'dtype': 'BF16', 'shape': [2, 4], 'data_offsets': [0, 16]}}",
        h, sizeof h);
    float v[8];
    cr_assert_eq(st_read_f32(f, st_at(f, 0), 0, 8, v, NULL), 3);
    cr_assert_eq(v[0], 1.0f);
    cr_assert_eq(v[1], -3.0f);
    cr_assert_eq(v[2], 3.140625f);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(bits_of(v[i]), (uint32_t)h[i] << 16, "element %d", i);
    st_close(f);
}


Test(safetensors, f64_converts_and_saturates)
{
    const double d[] = {1.5, -2.25, 1e300, -1e300, 0.0 / 0.0, 0.1, DBL_MIN,
                        0x1.fffffe8p127, 0x1.ffffffp127};
    st_file *f = expect_open(
        "{'d': {'dtype': 'F64', 'shape': [9], 'data_offsets': [0, 72]}}",
        d, sizeof d);
    float v[9];
    cr_assert_eq(st_read_f32(f, st_at(f, 0), 0, 9, v, NULL), 4);
    cr_assert_eq(v[0], 1.5f);
    cr_assert_eq(v[1], -2.25f);
    cr_assert_eq(bits_of(v[2]), 0x7F800000u);
    cr_assert_eq(bits_of(v[3]), 0xFF800000u);
    cr_assert(v[4] != v[4]);
    cr_assert_eq(v[5], 0.1f);
    cr_assert_eq(v[6], 0.0f);
    cr_assert_eq(v[7], FLT_MAX, "below half an ulp over FLT_MAX rounds down");
    cr_assert_eq(bits_of(v[8]), 0x7F800000u, "half an ulp over rounds to inf");
    st_close(f);
}


Test(safetensors, unaligned_data_section_reads_right)
{
    /* Header of 61 bytes: the data section starts at byte 69. */
    double d[2] = {3.5, -0.125};
    const char *json =
        "{'x': {'dtype': 'F64', 'shape': [2], 'data_offsets': [0, 16]}}";
    cr_assert_eq(strlen(json) % 8 != 0, 1);
    st_file *f = expect_open(json, d, sizeof d);
    cr_assert_neq((uintptr_t)st_at(f, 0)->data % 8, 0, "data really is unaligned");
    float v[2];
    cr_assert_eq(st_read_f32(f, st_at(f, 0), 0, 2, v, NULL), 0);
    cr_assert_eq(v[0], 3.5f);
    cr_assert_eq(v[1], -0.125f);
    st_close(f);
}


/* A slice [first, first + count) of an F16, BF16 or F64 tensor is the
 * same elements as in a read of the whole tensor: every dtype honours the
 * offset, not only F32 (dsc reads row slices such as Q of in_proj_weight). */
Test(safetensors, slices_of_every_float_dtype_start_at_first)
{
    enum { N = 24 };
    uint16_t h[N], bf[N];
    double d[N];
    float fl[N];
    for (int i = 0; i < N; i++) {
        h[i] = (uint16_t)(0x3C00 + 37 * i);       /* 1.0 and up, all distinct */
        bf[i] = (uint16_t)(0x3F80 + 5 * i);       /* likewise in bf16 */
        d[i] = 0.25 * i - 2.0;
        fl[i] = (float)d[i];
    }
    unsigned char data[N * 2 + N * 2 + N * 8 + N * 4];
    memcpy(data, h, sizeof h);
    memcpy(data + 48, bf, sizeof bf);
    memcpy(data + 96, d, sizeof d);
    memcpy(data + 288, fl, sizeof fl);
    st_file *f = expect_open(
        "{'h': {'dtype': 'F16', 'shape': [6, 4], 'data_offsets': [0, 48]},"
        " 'b': {'dtype': 'BF16', 'shape': [6, 4], 'data_offsets': [48, 96]},"
        " 'd': {'dtype': 'F64', 'shape': [6, 4], 'data_offsets': [96, 288]},"
        " 'f': {'dtype': 'F32', 'shape': [6, 4], 'data_offsets': [288, 384]}}",
        data, sizeof data);
    for (int k = 0; k < 4; k++) {
        const st_tensor *t = st_at(f, k);
        float whole[N];
        cr_assert_eq(st_read_f32(f, t, 0, N, whole, NULL), 0);
        for (int i = 1; i < N; i++)
            cr_assert_neq(whole[i], whole[i - 1], "%s: distinct", t->name);
        /* Rows 2..4 (elements 8..19), a single last element, one from the
         * middle. */
        const int64_t cut[][2] = { {8, 12}, {N - 1, 1}, {13, 1}, {4, 20} };
        for (int c = 0; c < 4; c++) {
            float part[N];
            memset(part, 0, sizeof part);
            dsc_err err = {{0}};
            cr_assert_eq(st_read_f32(f, t, cut[c][0], cut[c][1], part, &err),
                         0, "%s: %s", t->name, err.msg);
            for (int64_t i = 0; i < cut[c][1]; i++)
                cr_assert_eq(part[i], whole[cut[c][0] + i],
                             "%s [%lld, +%lld): element %lld", t->name,
                             (long long)cut[c][0], (long long)cut[c][1],
                             (long long)i);
        }
    }
    st_close(f);
}


Test(safetensors, all_dtypes_parse_and_only_floats_convert)
{
    st_file *f = expect_open(
        "{'f32': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]},"
        " 'f16': {'dtype': 'F16', 'shape': [2], 'data_offsets': [4, 8]},"
        " 'bf16': {'dtype': 'BF16', 'shape': [2], 'data_offsets': [8, 12]},"
        " 'f64': {'dtype': 'F64', 'shape': [1], 'data_offsets': [16, 24]},"
        " 'i64': {'dtype': 'I64', 'shape': [1], 'data_offsets': [24, 32]},"
        " 'i32': {'dtype': 'I32', 'shape': [1], 'data_offsets': [32, 36]},"
        " 'i16': {'dtype': 'I16', 'shape': [1], 'data_offsets': [36, 38]},"
        " 'i8': {'dtype': 'I8', 'shape': [1], 'data_offsets': [38, 39]},"
        " 'u8': {'dtype': 'U8', 'shape': [1], 'data_offsets': [39, 40]},"
        " 'bool': {'dtype': 'BOOL', 'shape': [1, 1, 1, 1, 1, 1, 1, 1],"
        "          'data_offsets': [40, 41]}}",
        zeros, 48);
    const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16",
                           "I8", "U8", "BOOL"};
    const st_dtype types[] = {ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32,
                              ST_I16, ST_I8, ST_U8, ST_BOOL};
    cr_assert_eq(st_count(f), 10);
    for (int i = 0; i < 10; i++) {
        const st_tensor *t = st_at(f, i);
        cr_assert_eq(t->dtype, types[i]);
        cr_assert_str_eq(st_dtype_name(t->dtype), names[i]);
        float v[2] = {-1, -1};
        dsc_err err = {{0}};
        int64_t r = st_read_f32(f, t, 0, t->count, v, &err);
        if (i < 4) {
            cr_assert_eq(r, 0, "%s: %s", names[i], err.msg);
            cr_assert_eq(v[0], 0.0f);
        } else {
            cr_assert_eq(r, -1, "%s converted", names[i]);
            check_msg(err.msg, names[i], t->name, names[i]);
        }
    }
    cr_assert_eq(st_at(f, 9)->rank, 8);
    st_close(f);
}


Test(safetensors, read_range_is_checked)
{
    float data[4] = {1, 2, 3, 4};
    st_file *f = expect_open(
        "{'fc.weight': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]}}",
        data, sizeof data);
    const st_tensor *t = st_at(f, 0);
    float v[4] = {0};
    const int64_t bad[][2] = {{-1, 1}, {0, -1}, {5, 0}, {2, 3}, {1, INT64_MAX},
                              {INT64_MAX, 1}, {INT64_MIN, 2}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsc_err err = {{0}};
        cr_assert_eq(st_read_f32(f, t, bad[i][0], bad[i][1], v, &err), -1,
                     "[%lld, +%lld)", (long long)bad[i][0], (long long)bad[i][1]);
        check_msg(err.msg, "range", "'fc.weight'", "out of range");
    }
    cr_assert_eq(v[0], 0.f, "nothing written on error");
    cr_assert_eq(st_read_f32(f, t, 4, 0, v, NULL), 0, "empty read at the end");
    cr_assert_eq(st_read_f32(f, t, 3, 1, v, NULL), 0);
    cr_assert_eq(v[0], 4.f);
    st_close(f);
}


Test(safetensors, tensor_of_another_file_is_refused)
{
    const char *json =
        "{'t': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}";
    st_file *a = expect_open(json, zeros, 8), *b = expect_open(json, zeros, 8);
    float v[2] = {5, 5};
    dsc_err err = {{0}};
    cr_assert_eq(st_read_f32(b, st_at(a, 0), 0, 2, v, &err), -1);
    check_msg(err.msg, "foreign", "'t'", "does not belong");
    cr_assert_eq(v[0], 5.f);
    cr_assert_eq(st_read_f32(b, st_at(b, 0), 0, 2, v, &err), 0);
    cr_assert_eq(v[0], 0.f);
    st_close(a);
    st_close(b);
}


Test(safetensors, empty_tensors_and_metadata_only)
{
    st_file *f = expect_open("{'__metadata__': {}}", NULL, 0);
    cr_assert_eq(st_count(f), 0);
    cr_assert_null(st_find(f, "x"));
    st_close(f);

    f = expect_open("{}", NULL, 0);
    cr_assert_eq(st_count(f), 0);
    st_close(f);

    /* Zero-size tensors hold no bytes, so they overlap nothing; a zero
     * dimension empties the tensor however large the others are. */
    f = expect_open(
        "{'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},"
        " 'e': {'dtype': 'F32', 'shape': [0, 5], 'data_offsets': [4, 4]},"
        " 'big': {'dtype': 'F32', 'shape': [9007199254740992, 0],"
        "         'data_offsets': [0, 0]}}",
        zeros, 8);
    cr_assert_eq(st_find(f, "e")->count, 0);
    cr_assert_eq(st_find(f, "e")->nbytes, 0);
    cr_assert_eq(st_find(f, "big")->count, 0);
    cr_assert_eq(st_find(f, "big")->shape[0], 9007199254740992LL);
    st_close(f);
}


Test(safetensors, string_escapes_and_utf8_names)
{
    st_file *f = expect_open(
        "{'caf\\u00e9': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0, 1]},"
        " '\\ud83d\\ude00': {'dtype': 'U8', 'shape': [1], 'data_offsets': [1, 2]},"
        " 'q\\\"b\\\\s\\/\\n\\t\\b\\f\\r': {'dtype': 'U8', 'shape': [1], 'data_offsets': [2, 3]},"
        " 'na\xc3\xafve \xe2\x82\xac': {'dtype': 'U8', 'shape': [1], 'data_offsets': [3, 4]},"
        " '\\u0041\\u00DF': {'dtype': 'U8', 'shape': [1], 'data_offsets': [4, 5]}}   ",
        zeros, 5);
    cr_assert_eq(st_count(f), 5);
    cr_assert_str_eq(st_at(f, 0)->name, "caf\xc3\xa9");
    cr_assert_str_eq(st_at(f, 1)->name, "\xf0\x9f\x98\x80");
    cr_assert_str_eq(st_at(f, 2)->name, "q\"b\\s/\n\t\b\f\r");
    cr_assert_str_eq(st_at(f, 3)->name, "na\xc3\xafve \xe2\x82\xac");
    cr_assert_str_eq(st_at(f, 4)->name, "A\xc3\x9f");
    cr_assert_eq(st_find(f, "caf\xc3\xa9"), st_at(f, 0));
    st_close(f);
}


Test(safetensors, unknown_fields_are_checked_and_skipped)
{
    st_file *f = expect_open(
        "{'a': {'dtype': 'F32', 'extra': {'x': [1, -2.5e3, 0.5E+2, true, false,"
        " null, 's', {}, []], 'y': -0}, 'shape': [1], 'data_offsets': [0, 4]}}",
        zeros, 4);
    cr_assert_eq(st_count(f), 1);
    cr_assert_eq(st_at(f, 0)->count, 1);
    st_close(f);
}


/* A tensor with an unknown field nested `levels` containers deep in all. */
static char *nested(int levels)
{
    size_t n = 2 * (size_t)levels + 200;
    char *s = malloc(n), *p = s;
    p += sprintf(p, "{'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4], 'x': ");
    for (int i = 2; i < levels; i++)
        *p++ = '[';
    for (int i = 2; i < levels; i++)
        *p++ = ']';
    strcpy(p, "}}");
    return s;
}


Test(safetensors, nesting_limit)
{
    char *ok = nested(16), *deep = nested(17), *hostile = nested(200000);
    st_close(expect_open(ok, zeros, 4));
    expect_fail(deep, 4, "deeper than 16", NULL);
    expect_fail(hostile, 4, "deeper than 16", NULL);
    free(ok);
    free(deep);
    free(hostile);
}


Test(safetensors, file_size_and_header_length)
{
    unsigned char b[16] = {0};
    for (size_t n = 0; n < 8; n++)
        expect_fail_bytes(b, n, "short", "too short", NULL);

    uint64_t hl = 100u * 1024 * 1024 + 1;
    memcpy(b, &hl, 8);
    expect_fail_bytes(b, 16, "over 100 MB", "104857601", "limit");
    hl = 100u * 1024 * 1024;  /* at the limit: only the file is too short */
    memcpy(b, &hl, 8);
    expect_fail_bytes(b, 16, "100 MB", "104857600", "exceeds the file");
    hl = UINT64_MAX;
    memcpy(b, &hl, 8);
    expect_fail_bytes(b, 16, "2^64-1", "limit", NULL);
    hl = 9;
    memcpy(b, &hl, 8);
    memcpy(b + 8, "{}      ", 8);
    expect_fail_bytes(b, 16, "9 of 8", "exceeds the file", "8 bytes");
    hl = 8;
    memcpy(b, &hl, 8);
    dsc_err err = {{0}};
    st_file *f = st_open_memory(b, 16, NAME, &err);
    cr_assert_not_null(f, "{} padded to 8: %s", err.msg);
    st_close(f);
}


Test(safetensors, header_must_be_an_object)
{
    expect_fail("", 0, "not a JSON object", NULL);
    expect_fail("   ", 0, "not a JSON object", NULL);
    expect_fail("[]", 0, "not a JSON object", NULL);
    expect_fail("'x'", 0, "not a JSON object", NULL);
    expect_fail("42", 0, "not a JSON object", NULL);
    expect_fail("null", 0, "not a JSON object", NULL);
}


Test(safetensors, json_syntax_errors)
{
#define T1 "'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]"
    expect_fail("{'a': {" T1 "},}", 4, "expected a key string", NULL);
    expect_fail("{'a' {" T1 "}}", 4, "expected ':'", NULL);
    expect_fail("{'a': {" T1 "}", 4, "expected ',' or '}'", NULL);
    expect_fail("{'a': {" T1 "} 'b'", 4, "expected ',' or '}'", NULL);
    expect_fail("{'a': {" T1 "}} x", 4, "unexpected text after", NULL);
    expect_fail("{'a", 4, "unterminated string", NULL);
    expect_fail("{'a\\", 4, "unterminated string", NULL);
    expect_fail("{'a\\x': {" T1 "}}", 4, "bad escape", NULL);
    expect_fail("{'a\tb': {" T1 "}}", 4, "control character 0x09", NULL);
    expect_fail("{'a\\u12G4': {" T1 "}}", 4, "bad \\u escape", NULL);
    expect_fail("{'a\\u12': {" T1 "}}", 4, "bad \\u escape", NULL);
    expect_fail("{'\\ud800': {" T1 "}}", 4, "unpaired surrogate", NULL);
    expect_fail("{'\\ud800\\u0041': {" T1 "}}", 4, "unpaired surrogate", NULL);
    expect_fail("{'\\udc00': {" T1 "}}", 4, "unpaired surrogate", NULL);
    expect_fail("{'a\\u0000': {" T1 "}}", 4, "\\u0000 is not allowed", NULL);
    expect_fail("{'\xff': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'\xc0\xaf': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'\xed\xa0\x80': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'\xe0\x80\xaf': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'\xf0\x80\x80\xaf': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'\xe2\x82': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'\xf4\x90\x80\x80': {" T1 "}}", 4, "invalid UTF-8", NULL);
    expect_fail("{'a': {" T1 ", 'x': tru}}", 4, "unexpected character", NULL);
    expect_fail("{'a': {" T1 ", 'x': nul}}", 4, "unexpected character", NULL);
    expect_fail("{'a': {" T1 ", 'x': +1}}", 4, "unexpected character", NULL);
    expect_fail("{'a': {" T1 ", 'x': 1.}}", 4, "invalid number", NULL);
    expect_fail("{'a': {" T1 ", 'x': .5}}", 4, "unexpected character", NULL);
    expect_fail("{'a': {" T1 ", 'x': -}}", 4, "invalid number", NULL);
    expect_fail("{'a': {" T1 ", 'x': 1e}}", 4, "invalid number", NULL);
    expect_fail("{'a': {" T1 ", 'x': 007}}", 4, "leading zero", NULL);
    expect_fail("{'a': {" T1 ", 'x': [1,]}}", 4, "unexpected character", NULL);
    expect_fail("{'a': {" T1 ", 'x': [1 2]}}", 4, "expected ',' or ']'", NULL);
    expect_fail("{'a': {" T1 ", 'x': ", 4, "unexpected end", NULL);
    expect_fail("{'a': {'dtype': 'F32', 'shape': [01], 'data_offsets': [0, 4]}}",
                4, "leading zero", NULL);
}


Test(safetensors, duplicate_keys)
{
    expect_fail("{'a': {" T1 "}, 'a': {" T1 "}}", 4, "duplicate tensor 'a'", NULL);
    expect_fail("{'a': {" T1 ", 'dtype': 'F32'}}", 4, "tensor 'a'",
                "duplicate key 'dtype'");
    expect_fail("{'a': {" T1 ", 'shape': [1]}}", 4, "tensor 'a'",
                "duplicate key 'shape'");
    expect_fail("{'a': {" T1 ", 'x': {'k': 1, 'j': 2, 'k': 3}}}", 4,
                "duplicate key 'k'", NULL);
    expect_fail("{'__metadata__': {}, 'a': {" T1 "}, '__metadata__': {}}", 4,
                "duplicate key '__metadata__'", NULL);
    expect_fail("{'__metadata__': {'k': 'v', 'k': 'w'}}", 0, "__metadata__",
                "duplicate key 'k'");
}


Test(safetensors, metadata_is_strings_only)
{
    expect_fail("{'__metadata__': []}", 0, "__metadata__ must be an object", NULL);
    expect_fail("{'__metadata__': 'x'}", 0, "__metadata__ must be an object", NULL);
    expect_fail("{'__metadata__': {'ver': 2}}", 0, "__metadata__", "'ver' must be a string");
    expect_fail("{'__metadata__': {'m': {}}}", 0, "__metadata__", "'m' must be a string");
}


Test(safetensors, tensor_entry_fields)
{
    expect_fail("{'fc.weight': 5}", 0, "tensor 'fc.weight'", "expected an object");
    expect_fail("{'fc.weight': ['F32']}", 0, "tensor 'fc.weight'", "expected an object");
    expect_fail("{'fc.weight': {'dtype': 'F8_E4M3', 'shape': [1], 'data_offsets': [0, 1]}}",
                1, "tensor 'fc.weight'", "unsupported dtype 'F8_E4M3'");
    expect_fail("{'fc.weight': {'dtype': 'f32', 'shape': [1], 'data_offsets': [0, 4]}}",
                4, "tensor 'fc.weight'", "unsupported dtype 'f32'");
    expect_fail("{'fc.weight': {'dtype': 4, 'shape': [1], 'data_offsets': [0, 4]}}",
                4, "tensor 'fc.weight'", "dtype must be a string");
    expect_fail("{'fc.weight': {'shape': [1], 'data_offsets': [0, 4]}}",
                4, "tensor 'fc.weight'", "missing 'dtype'");
    expect_fail("{'fc.weight': {'dtype': 'F32', 'data_offsets': [0, 4]}}",
                4, "tensor 'fc.weight'", "missing 'shape'");
    expect_fail("{'fc.weight': {'dtype': 'F32', 'shape': [1]}}",
                4, "tensor 'fc.weight'", "missing 'data_offsets'");
    expect_fail("{'fc.weight': {}}", 4, "tensor 'fc.weight'", "missing 'dtype'");
}


Test(safetensors, shape_checks)
{
    expect_fail("{'s': {'dtype': 'F32', 'shape': 1, 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape must be an array");
    expect_fail("{'s': {'dtype': 'U8', 'shape': [1,1,1,1,1,1,1,1,1], 'data_offsets': [0, 1]}}",
                1, "tensor 's'", "more than 8 dimensions");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [-1], 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape[0] = -1 is negative");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [1, 2.5], 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape[1] = 2.5 is not an integer");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [1.0], 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape[0] = 1.0 is not an integer");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [1e0], 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape[0] = 1e0 is not an integer");
    expect_fail("{'s': {'dtype': 'F32', 'shape': ['1'], 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape[0] must be a non-negative integer");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [null], 'data_offsets': [0, 4]}}",
                4, "tensor 's'", "shape[0] must be a non-negative integer");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [9007199254740993, 0], 'data_offsets': [0, 0]}}",
                0, "tensor 's'", "too large");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [123456789012345678901234567890],"
                " 'data_offsets': [0, 0]}}", 0, "tensor 's'", "too large");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [2147483648, 2147483648, 2147483648],"
                " 'data_offsets': [0, 0]}}", 0, "tensor 's'", "too many elements");
    /* 2^61 four-byte elements would need 2^63 bytes. */
    expect_fail("{'s': {'dtype': 'F32', 'shape': [2305843009213693952],"
                " 'data_offsets': [0, 0]}}", 0, "tensor 's'", "too large");
    expect_fail("{'s': {'dtype': 'F32', 'shape': [4294967296, 536870912],"
                " 'data_offsets': [0, 0]}}", 0, "tensor 's'", "too many elements");
}


Test(safetensors, data_offsets_checks)
{
    expect_fail("{'fc.weight': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 12]}}",
                8, "tensor 'fc.weight'",
                "data_offsets [0, 12] out of range (data section is 8 bytes)");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [0], 'data_offsets': [8, 4]}}",
                8, "tensor 'o'", "out of range");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [0], 'data_offsets': [12, 12]}}",
                8, "tensor 'o'", "out of range");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 8]}}",
                8, "tensor 'o'", "hold 8 bytes but F32 [1] needs 4");
    expect_fail("{'o': {'dtype': 'F16', 'shape': [2, 3], 'data_offsets': [0, 8]}}",
                16, "tensor 'o'", "F16 [2, 3] needs 12");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [2, 6]}}",
                8, "tensor 'o'", "not aligned");
    expect_fail("{'o': {'dtype': 'F64', 'shape': [1], 'data_offsets': [4, 12]}}",
                16, "tensor 'o'", "not aligned");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [-4, 0]}}",
                8, "tensor 'o'", "data_offsets[0] = -4 is negative");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4.0]}}",
                8, "tensor 'o'", "data_offsets[1] = 4.0 is not an integer");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 18446744073709551620]}}",
                8, "tensor 'o'", "too large");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0]}}",
                8, "tensor 'o'", "data_offsets must be [begin, end]");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4, 8]}}",
                8, "tensor 'o'", "data_offsets must be [begin, end]");
    expect_fail("{'o': {'dtype': 'F32', 'shape': [1], 'data_offsets': {'b': 0}}}",
                8, "tensor 'o'", "data_offsets must be an array");
}


Test(safetensors, overlapping_tensors)
{
    expect_fail("{'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},"
                " 'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [4, 12]}}",
                12, "'a' [0, 8] and 'b' [4, 12] overlap", NULL);
    /* Reported even when the overlap is not with the neighbour by begin. */
    expect_fail("{'c': {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 12]},"
                " 'a': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]},"
                " 'b': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]}}",
                16, "'a'", "overlap");
    expect_fail("{'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]},"
                " 'b': {'dtype': 'I32', 'shape': [1], 'data_offsets': [4, 8]}}",
                8, "overlap", NULL);
    /* Touching is fine. */
    st_close(expect_open(
        "{'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]},"
        " 'b': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]}}",
        zeros, 8));
}


Test(safetensors, hostile_names_stay_on_one_line)
{
    char json[600];
    char longname[400];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    snprintf(json, sizeof json, "{'%s': {'dtype': 'X'}}", longname);
    expect_fail(json, 0, "unsupported dtype 'X'", "nnnn...");
    expect_fail("{'a\\nb': {'dtype': 'X'}}", 0, "tensor 'a?b'", "unsupported dtype");
}


Test(safetensors, mutated_files_fail_cleanly)
{
    /* Every single-byte change and every truncation of a valid file either
     * opens or fails with a proper message; the sanitizers watch reads. */
    float data[6] = {1, 2, 3, 4, 5, 6};
    size_t len;
    unsigned char *good = build(
        "{'__metadata__': {'k': 'v'}, 'a': {'dtype': 'F32', 'shape': [2, 2],"
        " 'data_offsets': [0, 16]}, 'b': {'dtype': 'BF16', 'shape': [4],"
        " 'data_offsets': [16, 24]}}", data, sizeof data, &len);
    unsigned char *b = malloc(len);
    const unsigned char vals[] = {0, '"', '{', '}', '[', ']', ',', ':', '\\',
                                  '-', '9', 'e', '.', 0x80, 0xff, ' '};
    int opened = 0, failed = 0;
    for (size_t at = 0; at < len; at++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(b, good, len);
            b[at] = vals[v];
            dsc_err err = {{0}};
            st_file *f = st_open_memory(b, len, NAME, &err);
            if (f) {
                opened++;
                float out[4];
                for (int i = 0; i < st_count(f); i++) {
                    const st_tensor *t = st_at(f, i);
                    if (t->count <= 4 && st_read_f32(f, t, 0, t->count, out, &err) < 0)
                        check_msg(err.msg, "read", t->name, NULL);
                }
                st_close(f);
            } else {
                failed++;
                check_msg(err.msg, "mutation", ": ", NULL);
            }
        }
    }
    for (size_t n = 0; n < len; n++) {
        expect_fail_bytes(good, n, "truncated", ": error: ", NULL);
    }
    cr_assert_gt(failed, 100);
    cr_assert_gt(opened, 0);
    free(b);
    free(good);
}


Test(safetensors, open_from_file)
{
    char dir[] = "/tmp/st_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float data[2] = {0.25f, -8.f};
    size_t len;
    unsigned char *b = build(
        "{'p': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}",
        data, sizeof data, &len);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(b, 1, len, fp), len);
    fclose(fp);

    dsc_err err = {{0}};
    st_file *f = st_open(path, &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_str_eq(st_path(f), path);
    float v[2];
    cr_assert_eq(st_read_f32(f, st_find(f, "p"), 0, 2, v, &err), 0);
    cr_assert_eq(v[0], 0.25f);
    cr_assert_eq(v[1], -8.f);
    st_close(f);

    /* Errors from a file name that file. */
    fp = fopen(path, "wb");
    cr_assert_eq(fwrite(b, 1, len - 1, fp), len - 1);
    fclose(fp);
    cr_assert_null(st_open(path, &err));
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "tensor 'p'"), "%s", err.msg);

    char missing[80];
    snprintf(missing, sizeof missing, "%s/none.safetensors", dir);
    cr_assert_null(st_open(missing, &err));
    cr_assert(strstr(err.msg, missing), "%s", err.msg);
    cr_assert_null(st_open(dir, &err));
    cr_assert(strstr(err.msg, dir), "%s", err.msg);

    remove(path);
    rmdir(dir);
    free(b);
}


/* ---- dsc's weights reader (io/weights.c) on hostile files ---------------- */

TestSuite(weights, .init = make_tmp, .fini = remove_tmp);


/* Write text to the scratch file name; its path. */
static char *write_text(const char *name, const char *text)
{
    char *path = tmp_file(name);
    dsc_err err = {{0}};
    cr_assert_eq(file_write_atomic(path, text, strlen(text), &err), 0, "%s",
                 err.msg);
    return path;
}


/* Write the safetensors file for json (' for ") and data to name. */
static char *write_st(const char *name, const char *json, const void *data,
                      size_t dlen)
{
    size_t len;
    unsigned char *b = build(json, data, dlen, &len);
    char *path = tmp_file(name);
    dsc_err err = {{0}};
    cr_assert_eq(file_write_atomic(path, b, len, &err), 0, "%s", err.msg);
    free(b);
    return path;
}


static const char lin_lua[] =
    "local x = dsc.input('x', {2, 4})\n"
    "dsc.output('y', dsc.linear(x, dsc.weight('w', {4, 4})))\n";


/* A key of rank 7 or 8 (safetensors allows 8, dsc's shapes hold 6) is
 * named with its real dims; reading it used to run past a 6-dim array. */
Test(weights, key_of_rank_over_six_is_named_not_overrun)
{
    const char *json[] = {
        "{'w': {'dtype': 'F32', 'shape': [1, 1, 1, 1, 1, 1, 1], "
        "'data_offsets': [0, 4]}}",
        "{'w': {'dtype': 'F32', 'shape': [1, 2, 1, 1, 1, 1, 1, 3], "
        "'data_offsets': [0, 24]}}" };
    const char *want[] = {
        "w.safetensors: error: key 'w' is F32 [1, 1, 1, 1, 1, 1, 1], rank 7: "
        "more than dsc supports (6); the model expects [4, 4]",
        "w.safetensors: error: key 'w' is F32 [1, 2, 1, 1, 1, 1, 1, 3], rank "
        "8: more than dsc supports (6); the model expects [4, 4]" };
    char *model = write_text("lin.lua", lin_lua);
    for (int i = 0; i < 2; i++) {
        char *st = write_st("w.safetensors", json[i], zeros, 24 * (size_t)i + 4);
        cr_assert_eq(run("%s run %s --weights %s", dsc(), model, st), 1);
        char *err = stderr_text();
        cr_expect(strstr(err, want[i]), "%s", err);
        free(err);
    }
}


/* The peak resident size, in MB, of the largest process this test has
 * waited for (run()'s shell and what it ran). */
static long children_peak_mb(void)
{
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
    return ru.ru_maxrss / 1024;
}


/* Random weights for slices of a transposed key take memory and work for
 * the slice: the old code drew the whole 1 GB key once per slice. */
Test(weights, random_transposed_slices_cost_the_slice, .timeout = 60)
{
    char *model = write_text("tr.lua",
        "local x = dsc.input('x', {1, 16384})\n"
        "local y = nil\n"
        "for i = 0, 3 do\n"
        "  local w = dsc.weight('w', {16384, 16384},\n"
        "                       {transpose = true, rows = {i * 4000, 1}})\n"
        "  local z = dsc.linear(x, w)\n"
        "  y = y and dsc.add(y, z) or z\n"
        "end\n"
        "dsc.output('y', y)\n");
    cr_assert_eq(run("%s run %s --max-memory 100M --seed 4", dsc(), model), 0,
                 "%s", stderr_text());
    long peak = children_peak_mb();
    cr_expect_lt(peak, 300, "peak RSS %ld MB for 4 rows of a 1 GB key", peak);
}


/* Open path for writing as a safetensors file whose header is the text
 * written to header so far (a tmpfile, closed here): its length, then
 * the text.  The caller writes the data after it and closes the file. */
static FILE *start_st_file(FILE *header, const char *path, uint64_t *hlen)
{
    *hlen = (uint64_t)ftell(header);
    rewind(header);
    FILE *out = fopen(path, "wb");
    cr_assert_not_null(out);
    fwrite(hlen, 8, 1, out);
    for (int c; (c = fgetc(header)) != EOF;)
        fputc(c, out);
    fclose(header);
    return out;
}


/* A safetensors file at path: w, F32 [4, 4] (zeros), then n_extra empty
 * tensors extra0, extra1, ... the model does not use, then big_bytes of
 * an F32 tensor 'junk' (a sparse tail: no disk taken). */
static void write_st_with(const char *path, const char *w, int n_extra,
                          size_t big_bytes)
{
    FILE *fp = tmpfile();
    cr_assert_not_null(fp);
    fprintf(fp, "{\"%s\": {\"dtype\": \"F32\", \"shape\": [4, 4], "
            "\"data_offsets\": [0, 64]}, \"junk\": {\"dtype\": \"F32\", "
            "\"shape\": [%zu], \"data_offsets\": [64, %zu]}", w,
            big_bytes / 4, 64 + big_bytes / 4 * 4);
    for (int i = 0; i < n_extra; i++)
        fprintf(fp, ", \"extra%d\": {\"dtype\": \"F32\", \"shape\": [0], "
                "\"data_offsets\": [0, 0]}", i);
    fputc('}', fp);
    uint64_t hlen;
    FILE *out = start_st_file(fp, path, &hlen);
    fwrite(zeros, 1, 64, out);
    cr_assert_eq(fflush(out), 0);
    cr_assert_eq(ftruncate(fileno(out), (off_t)(8 + hlen + 64 +
                                                 big_bytes / 4 * 4)), 0);
    fclose(out);
}


/* Keys the model does not use are found by a sorted search (the old scan
 * of the model per key took minutes here: 400 000 keys, 4000 weights),
 * and only the first 20 are listed. */
Test(weights, unused_keys_are_searched_and_listed_briefly, .timeout = 20)
{
    char lua[200];
    snprintf(lua, sizeof lua,
             "local y = dsc.input('x', {1, 4})\n"
             "for i = 1, 4000 do y = dsc.add(y, dsc.weight('w', {4, 4}, "
             "{rows = {0, 1}})) end\n"
             "dsc.output('y', dsc.linear(y, dsc.weight('w', {4, 4})))\n");
    char *model = write_text("many.lua", lua);
    char *st = tmp_file("w.safetensors");
    write_st_with(st, "w", 400000, 0);
    cr_assert_eq(run("%s run %s --weights %s", dsc(), model, st), 0, "%s",
                 stderr_text());
    char *err = stderr_text();
    cr_expect(strstr(err, "w.safetensors: note: keys the model does not use "
                     "(ignored):\n  junk\n  extra0\n"), "%s", err);
    cr_expect(strstr(err, "\n  extra18\n  ... and 399981 more\n"), "%s", err);
    cr_expect(!strstr(err, "extra19\n"), "%s", err);
    free(err);
}



/* A missing key is named before the problems of keys that are there (the
 * first the model needs), as before the fill went file by file. */
Test(weights, missing_key_is_named_first)
{
    char *model = write_text("two.lua",
        "local x = dsc.input('x', {1, 4})\n"
        "local y = dsc.linear(x, dsc.weight('a', {4, 4}))\n"
        "dsc.output('y', dsc.linear(y, dsc.weight('w', {2, 4})))\n");
    char *st = tmp_file("w.safetensors");
    write_st_with(st, "w", 0, 0);  /* w is [4, 4]: the wrong shape */
    cr_assert_eq(run("%s run %s --weights %s", dsc(), model, st), 1);
    char *err = stderr_text();
    cr_expect(strstr(err, "w.safetensors: error: missing key 'a'"), "%s",
              err);
    free(err);
}

/* A sharded checkpoint is read a shard at a time, and a file listed under
 * several names (symlinks) once: here 7 names of 2 files of 64 MB each
 * took 450 MB at once. */
Test(weights, shards_are_read_one_at_a_time_and_once, .timeout = 60)
{
    size_t mb64 = (size_t)64 << 20;
    write_st_with(tmp_file("a.safetensors"), "w", 0, mb64);
    write_st_with(tmp_file("big.safetensors"), "v", 3, mb64);
    char map[400] = "{\"weight_map\": {\"w\": \"a.safetensors\"";
    for (int i = 0; i < 6; i++) {
        char name[32], key[16] = "v";
        snprintf(name, sizeof name, "l%d.safetensors", i);
        if (i)
            snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(symlink("big.safetensors", tmp_file(name)), 0);
        snprintf(map + strlen(map), sizeof map - strlen(map),
                 ", \"%s\": \"%s\"", key, name);
    }
    strcat(map, "}}");
    char *index = write_text("model.safetensors.index.json", map);
    char *model = write_text("two.lua",
        "local x = dsc.input('x', {2, 4})\n"
        "local h = dsc.linear(x, dsc.weight('w', {4, 4}))\n"
        "dsc.output('y', dsc.linear(h, dsc.weight('v', {4, 4})))\n");
    cr_assert_eq(run("%s run %s --weights %s", dsc(), model, index), 0, "%s",
                 stderr_text());
    long peak = children_peak_mb();
    cr_expect_lt(peak, 200, "peak RSS %ld MB for shards of 64 MB", peak);
    char *err = stderr_text();
    /* big.safetensors's unused keys are noted once, under its first name. */
    cr_expect(strstr(err, "l0.safetensors: note: keys the model does not use "
                     "(ignored):\n  junk\n  extra0\n  extra1\n  extra2\n"),
              "%s", err);
    cr_expect(!strstr(err, "l1.safetensors"), "%s", err);
    free(err);
    /* A key no shard holds is missing, named under the index. */
    model = write_text("three.lua",
        "local x = dsc.input('x', {2, 4})\n"
        "local h = dsc.linear(x, dsc.weight('w', {4, 4}))\n"
        "dsc.output('y', dsc.linear(h, dsc.weight('k3', {4, 4})))\n");
    cr_assert_eq(run("%s run %s --weights %s", dsc(), model, index), 1);
    err = stderr_text();
    cr_expect(strstr(err, "model.safetensors.index.json: error: missing key "
                     "'k3' (the model expects [4, 4], "), "%s", err);
    free(err);
}


/* train --save finds each key of the original by a search: 300 000 keys
 * against a model of 3000 took the old linear scan over half a minute.
 * Every key is written back, the trained ones first in the file. */
Test(weights, train_save_searches_the_original_keys, .timeout = 20)
{
    char *model = write_text("chain.lua",
        "local tokens = dsc.input('tokens', {2}, 'int32')\n"
        "local y = dsc.input('x', {2, 4})\n"
        "for i = 1, 3000 do y = dsc.linear(y, dsc.weight('w' .. i, {4, 4})) "
        "end\n"
        "dsc.output('y', y)\n"
        "dsc.loss(dsc.cross_entropy(y, tokens))\n");
    char *st = tmp_file("in.safetensors");
    FILE *fp = tmpfile();
    cr_assert_not_null(fp);
    fputc('{', fp);
    for (int i = 1; i <= 3000; i++)
        fprintf(fp, "\"w%d\": {\"dtype\": \"F32\", \"shape\": [4, 4], "
                "\"data_offsets\": [%d, %d]}, ", i, 64 * (i - 1), 64 * i);
    for (int i = 0; i < 300000; i++)
        fprintf(fp, "%s\"x%d\": {\"dtype\": \"F32\", \"shape\": [0], "
                "\"data_offsets\": [0, 0]}", i ? ", " : "", i);
    fputc('}', fp);
    uint64_t hlen;
    FILE *out = start_st_file(fp, st, &hlen);
    for (int i = 0; i < 3000; i++)
        fwrite(zeros, 1, 64, out);
    cr_assert_eq(fclose(out), 0);
    char *saved = tmp_file("out.safetensors");
    cr_assert_eq(run("%s train %s --epochs 1 --weights %s --save %s", dsc(),
                     model, st, saved), 0, "%s", stderr_text());
    dsc_err err = {{0}};
    st_file *f = st_open(saved, &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_expect_eq(st_count(f), 303000);
    cr_expect_str_eq(st_at(f, 2999)->name, "w3000");
    cr_expect_str_eq(st_at(f, 3000)->name, "x0");
    st_close(f);
}
