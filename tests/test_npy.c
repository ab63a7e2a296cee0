/* test_npy.c — .npy reading and writing, good files and bad. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fileio.h"
#include "io/npy.h"

#define NAME "x.npy"

static const unsigned char zeros[256];


/* A .npy file of the given major version with header text used as is. */
static unsigned char *mknpy(int major, const char *header, const void *data,
                            size_t dlen, size_t *len)
{
    size_t h = strlen(header), lsz = major == 1 ? 2 : 4;
    *len = 8 + lsz + h + dlen;
    unsigned char *b = malloc(*len);
    cr_assert_not_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < lsz; i++)
        b[8 + i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8 + lsz, header, h);
    if (dlen)
        memcpy(b + 8 + lsz + h, data, dlen);
    return b;
}


static void check_msg(const char *msg, const char *what, const char *name,
                      const char *frag1, const char *frag2)
{
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s: error: ", name);
    cr_assert(strncmp(msg, prefix, strlen(prefix)) == 0,
              "%s: message does not name the file: %s", what, msg);
    cr_assert(!strchr(msg, '\n'), "%s: message is not one line: %s", what, msg);
    cr_assert(strstr(msg, frag1), "%s: '%s' not in: %s", what, frag1, msg);
    if (frag2)
        cr_assert(strstr(msg, frag2), "%s: '%s' not in: %s", what, frag2, msg);
}


static void expect_fail_bytes(const void *b, size_t len, const char *what,
                              const char *frag1, const char *frag2)
{
    npy_array a;
    dsc_err err = {{0}};
    int rc = npy_read_memory(b, len, NAME, &a, &err);
    if (rc == 0) {
        npy_free(&a);
        cr_assert_fail("%s: accepted", what);
    }
    cr_assert_eq(rc, -1);
    cr_assert_null(a.data, "%s: no data after failure", what);
    check_msg(err.msg, what, NAME, frag1, frag2);
}


/* A version 1.0 file with this header and dlen zero bytes must fail. */
static void expect_fail(const char *header, size_t dlen, const char *frag1,
                        const char *frag2)
{
    size_t len;
    unsigned char *b = mknpy(1, header, zeros, dlen, &len);
    expect_fail_bytes(b, len, header, frag1, frag2);
    free(b);
}


static void expect_read(const unsigned char *b, size_t len, npy_array *a)
{
    dsc_err err = {{0}};
    cr_assert_eq(npy_read_memory(b, len, NAME, a, &err), 0, "%s", err.msg);
}


static char *tmpdir(void)
{
    static const char tmpl[] = "/tmp/npy_test_XXXXXX";
    char *d = malloc(sizeof tmpl);
    memcpy(d, tmpl, sizeof tmpl);
    cr_assert_not_null(mkdtemp(d));
    return d;
}


static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}


static unsigned char *slurp(const char *path, size_t *len)
{
    dsc_err err;
    unsigned char *b = (unsigned char *)file_read_all(path, len, &err);
    cr_assert_not_null(b, "%s", err.msg);
    return b;
}


/* Writes, checks the bytes on disk against the format, reads back. */
static void roundtrip(const char *dir, npy_dtype dt, int rank,
                      const int64_t *shape, const void *data, size_t nbytes,
                      const char *shape_text)
{
    char path[256], want[160];
    snprintf(path, sizeof path, "%s/%s_%d.npy", dir, npy_dtype_name(dt), rank);
    dsc_err err = {{0}};
    cr_assert_eq(npy_write(path, dt, rank, shape, data, &err), 0, "%s", err.msg);

    size_t len;
    unsigned char *b = slurp(path, &len);
    cr_assert(len >= 10 && !memcmp(b, "\x93NUMPY\x01\x00", 8), "magic, v1.0");
    size_t hlen = b[8] | (size_t)b[9] << 8;
    cr_assert_eq((10 + hlen) % 64, 0, "data aligned to 64 (header %zu)", hlen);
    cr_assert_eq(b[10 + hlen - 1], '\n');
    cr_assert_eq(len, 10 + hlen + nbytes);
    snprintf(want, sizeof want, "{'descr': '%s', 'fortran_order': False, "
             "'shape': %s, }", npy_dtype_name(dt), shape_text);
    cr_assert(!memcmp(b + 10, want, strlen(want)), "header %.*s", (int)hlen, b + 10);
    for (size_t i = 10 + strlen(want); i < 10 + hlen - 1; i++)
        cr_assert_eq(b[i], ' ', "padding at %zu", i);
    cr_assert(!nbytes || !memcmp(b + 10 + hlen, data, nbytes));
    free(b);

    npy_array a;
    cr_assert_eq(npy_read(path, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.dtype, dt);
    cr_assert_eq(a.rank, rank);
    int64_t count = 1;
    for (int i = 0; i < rank; i++) {
        cr_assert_eq(a.shape[i], shape[i]);
        count *= shape[i];
    }
    cr_assert_eq(a.count, count);
    cr_assert_not_null(a.data);
    cr_assert(!nbytes || !memcmp(a.data, data, nbytes), "data read back");
    npy_free(&a);
    cr_assert_null(a.data);
}


Test(npy, roundtrip_every_dtype)
{
    char *dir = tmpdir();
    const int64_t shape[2] = {3, 4};
    float f[12] = {1.5f, -0.0f, 1e-40f, 3.4028235e38f, -7.25f, 0.1f};
    double d[12] = {1e-310, -2.5, 0.1, 1e308, -0.0};
    int32_t i4[12] = {INT32_MIN, INT32_MAX, -1, 0, 7};
    int64_t i8[12] = {INT64_MIN, INT64_MAX, -1, 0, 1LL << 40};
    for (int i = 6; i < 12; i++) {
        f[i] = (float)i / 3;
        d[i] = (double)i / 7;
        i4[i] = -i * 1000003;
        i8[i] = -(int64_t)i * 1000000000007LL;
    }
    roundtrip(dir, NPY_F32, 2, shape, f, sizeof f, "(3, 4)");
    roundtrip(dir, NPY_F64, 2, shape, d, sizeof d, "(3, 4)");
    roundtrip(dir, NPY_I32, 2, shape, i4, sizeof i4, "(3, 4)");
    roundtrip(dir, NPY_I64, 2, shape, i8, sizeof i8, "(3, 4)");
    cr_assert_eq(dir_entries(dir), 4, "no temporary files left");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}


Test(npy, roundtrip_shapes)
{
    char *dir = tmpdir();
    const float one = 42.f;
    const int32_t five[5] = {1, 2, 3, 4, 5};
    const int64_t s1[1] = {5}, s0[2] = {0, 3}, s8[8] = {1, 1, 2, 1, 1, 1, 1, 1};
    const double two[2] = {1, 2};
    roundtrip(dir, NPY_F32, 0, NULL, &one, 4, "()");
    roundtrip(dir, NPY_I32, 1, s1, five, sizeof five, "(5,)");
    roundtrip(dir, NPY_I64, 2, s0, NULL, 0, "(0, 3)");
    roundtrip(dir, NPY_F64, 8, s8, two, sizeof two, "(1, 1, 2, 1, 1, 1, 1, 1)");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}


Test(npy, reads_header_variants_and_versions)
{
    const float v[6] = {1, 2, 3, 4, 5, 6};
    const char *headers[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }     \n",
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}\n",
        "{\"descr\": \"<f4\",\"fortran_order\":False,\"shape\":(2,3,)}",
        "  {  'descr' : '<f4' ,\t'fortran_order' : False , 'shape' : ( 2 , 3 ) }\r\n",
    };
    for (int major = 1; major <= 3; major++) {
        for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
            size_t len;
            unsigned char *b = mknpy(major, headers[h], v, sizeof v, &len);
            npy_array a;
            expect_read(b, len, &a);
            cr_assert_eq(a.dtype, NPY_F32);
            cr_assert_eq(a.rank, 2, "v%d %s", major, headers[h]);
            cr_assert_eq(a.shape[0], 2);
            cr_assert_eq(a.shape[1], 3);
            cr_assert_eq(a.count, 6);
            cr_assert(!memcmp(a.data, v, sizeof v), "v%d %s", major, headers[h]);
            npy_free(&a);
            free(b);
        }
    }
}


Test(npy, reads_unaligned_data_and_each_dtype)
{
    /* Headers of odd length put the data at odd offsets. */
    const int64_t i8[2] = {-5, 1LL << 50};
    const double f8[2] = {0.3, -1e-300};
    const int32_t i4[2] = {-7, 1 << 30};
    struct { const char *h; const void *d; npy_dtype dt; } c[] = {
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2,)}", i8, NPY_I64},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,) }", f8, NPY_F64},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2)}", i4, NPY_I32},
    };
    for (int i = 0; i < 3; i++) {
        size_t sz = c[i].dt == NPY_I32 ? 8 : 16, len;
        unsigned char *b = mknpy(1, c[i].h, c[i].d, sz, &len);
        npy_array a;
        expect_read(b, len, &a);
        cr_assert_eq(a.dtype, c[i].dt);
        cr_assert_str_eq(npy_dtype_name(a.dtype), c[i].dt == NPY_I64 ? "<i8"
                         : c[i].dt == NPY_F64 ? "<f8" : "<i4");
        cr_assert_eq(a.count, 2);
        cr_assert(!memcmp(a.data, c[i].d, sz), "%s", c[i].h);
        npy_free(&a);
        free(b);
    }
    cr_assert_str_eq(npy_dtype_name(NPY_F32), "<f4");
}


Test(npy, magic_version_and_lengths)
{
    unsigned char b[16];
    memcpy(b, "\x93NUMPY\x01\x00\x00\x00", 10);
    for (size_t n = 0; n < 8; n++)
        expect_fail_bytes(b, n, "short", "bad magic", NULL);
    memcpy(b, "\x93NUMPX", 6);
    expect_fail_bytes(b, 10, "magic", "bad magic", NULL);
    memcpy(b, "PK\x03\x04", 4);
    expect_fail_bytes(b, 10, "zip", "bad magic", NULL);

    const unsigned char vers[][2] = {{0, 0}, {4, 0}, {1, 1}, {2, 5}, {255, 0}};
    for (size_t i = 0; i < sizeof vers / sizeof vers[0]; i++) {
        char want[32];
        memcpy(b, "\x93NUMPY", 6);
        b[6] = vers[i][0];
        b[7] = vers[i][1];
        snprintf(want, sizeof want, "version %d.%d", vers[i][0], vers[i][1]);
        expect_fail_bytes(b, 16, want, "unsupported .npy version", want);
    }

    memcpy(b, "\x93NUMPY\x02\x00\x00\x00", 10);
    expect_fail_bytes(b, 9, "v2 length", "header length", NULL);
    expect_fail_bytes(b, 11, "v2 length", "header length", NULL);

    size_t len;
    unsigned char *f = mknpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", zeros, 4, &len);
    expect_fail_bytes(f, 60, "cut header", "header length", NULL);
    f[8] = 0xff;
    f[9] = 0xff;
    expect_fail_bytes(f, len, "long header", "header length 65535", NULL);
    free(f);
    f = mknpy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", zeros, 4, &len);
    f[11] = 0x80;  /* 2^31 + ... */
    expect_fail_bytes(f, len, "v3 huge header", "header length", NULL);
    free(f);
}


Test(npy, dtypes)
{
    expect_fail("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}", 4,
                "big-endian dtype '>f4' is not supported", NULL);
    expect_fail("{'descr': '>i8', 'fortran_order': False, 'shape': (1,)}", 8,
                "big-endian", "'>i8'");
    expect_fail("{'descr': '<f2', 'fortran_order': False, 'shape': (1,)}", 2,
                "unsupported dtype '<f2'", NULL);
    expect_fail("{'descr': '|u1', 'fortran_order': False, 'shape': (1,)}", 1,
                "unsupported dtype '|u1'", NULL);
    expect_fail("{'descr': '=f4', 'fortran_order': False, 'shape': (1,)}", 4,
                "unsupported dtype '=f4'", NULL);
    expect_fail("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", 8,
                "unsupported dtype '<c8'", NULL);
    expect_fail("{'descr': 'f4', 'fortran_order': False, 'shape': (1,)}", 4,
                "unsupported dtype 'f4'", NULL);
    expect_fail("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
                4, "unsupported dtype", NULL);
}


Test(npy, fortran_order)
{
    expect_fail("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", 16,
                "Fortran order is not supported", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': Truex, 'shape': (2, 2)}", 16,
                "'fortran_order' must be True or False", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 2)}", 16,
                "'fortran_order' must be True or False", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': false, 'shape': (2, 2)}", 16,
                "'fortran_order' must be True or False", NULL);
}


Test(npy, shapes)
{
#define H(s) "{'descr': '<f4', 'fortran_order': False, 'shape': " s "}"
    expect_fail(H("(5)"), 20, "not a tuple", "(n,)");
    expect_fail(H("[5]"), 20, "'shape' must be a tuple", NULL);
    expect_fail(H("5"), 20, "'shape' must be a tuple", NULL);
    expect_fail(H("(-1,)"), 0, "negative dimension", NULL);
    expect_fail(H("(2, -1)"), 0, "negative dimension", NULL);
    expect_fail(H("(3 4)"), 48, "expected ',' or ')'", NULL);
    expect_fail(H("(3.5,)"), 48, "expected ',' or ')'", NULL);
    expect_fail(H("(,)"), 0, "expected a dimension", NULL);
    expect_fail(H("(3,,)"), 0, "expected a dimension", NULL);
    expect_fail(H("(05,)"), 20, "leading zero", NULL);
    expect_fail(H("(3, 4"), 48, "expected", NULL);
    expect_fail(H("(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, "more than 8 dimensions", NULL);
    expect_fail(H("(99999999999999999999,)"), 0, "dimension too large", NULL);
    expect_fail(H("(4294967296, 4294967296)"), 0, "too many elements", NULL);
    expect_fail(H("(9223372036854775807,)"), 0, "too many elements", NULL);
    /* The largest shape that fits does not crash a short file either. */
    expect_fail(H("(2305843009213693951,)"), 0, "truncated", "got 0");
}


Test(npy, header_grammar)
{
    expect_fail("", 0, "expected '{'", NULL);
    expect_fail("descr", 0, "expected '{'", NULL);
    expect_fail("{'descr': '<f4', 'shape': (1,)}", 4, "no 'fortran_order'", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False}", 4, "no 'shape'", NULL);
    expect_fail("{'fortran_order': False, 'shape': (1,)}", 4, "no 'descr'", NULL);
    expect_fail("{}", 4, "no 'descr'", NULL);
    expect_fail("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                4, "duplicate key 'descr'", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'foo': 1}",
                4, "unexpected key 'foo'", NULL);
    expect_fail("{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", 4,
                "expected ',' or '}'", NULL);
    expect_fail("{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
                "expected ':'", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4,
                "unexpected text after", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,),, }", 4,
                "expected a quoted string", NULL);
    expect_fail("{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", 4,
                "expected", NULL);
    expect_fail("{'descr': '<f4\\', 'fortran_order': False, 'shape': (1,)}", 4,
                "unsupported character", NULL);
    expect_fail("{'descr': '<f4", 4, "unterminated string", NULL);
    expect_fail("{descr: '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
                "expected a quoted string", NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4,
                "expected ',' or '}'", NULL);
}


Test(npy, data_length_must_match)
{
    expect_fail(H("(3, 4)"), 40, "truncated", "expected 48 data bytes");
    expect_fail(H("(3, 4)"), 40, "got 40", NULL);
    expect_fail(H("(3, 4)"), 56, "trailing data", "got 56");
    expect_fail(H("()"), 0, "expected 4", "got 0");
    expect_fail(H("(0,)"), 1, "expected 0", "got 1");
    size_t len;
    unsigned char *b = mknpy(1, H("(0, 7)"), NULL, 0, &len);
    npy_array a;
    expect_read(b, len, &a);
    cr_assert_eq(a.count, 0);
    cr_assert_eq(a.shape[1], 7);
    npy_free(&a);
    free(b);
}


Test(npy, write_failures_leave_nothing, .timeout = 20)
{
    char *dir = tmpdir();
    char path[300];
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape[2] = {2, 2};
    dsc_err err = {{0}};

    /* A directory that cannot exist: its parent is a regular file.
     * (Missing directories are made, like mkdir -p.) */
    snprintf(path, sizeof path, "%s/plain", dir);
    FILE *plain = fopen(path, "w");
    cr_assert_not_null(plain);
    fclose(plain);
    snprintf(path, sizeof path, "%s/plain/dir/out.npy", dir);
    cr_assert_eq(npy_write(path, NPY_F32, 2, shape, v, &err), -1);
    check_msg(err.msg, "missing dir", path, "cannot create", NULL);

    /* The target is a directory, or a FIFO the rename would replace by a
     * regular file: refused before anything is written. */
    snprintf(path, sizeof path, "%s/sub", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(npy_write(path, NPY_F32, 2, shape, v, &err), -1);
    check_msg(err.msg, "directory", path, "not a regular file", NULL);
    cr_assert_eq(dir_entries(path), 0);
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(npy_write(fifo, NPY_F32, 2, shape, v, &err), -1);
    check_msg(err.msg, "fifo", fifo, "not a regular file", NULL);
    struct stat st;
    cr_assert_eq(stat(fifo, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode), "the FIFO is still a FIFO");
    /* Reading one with no writer is refused, not waited on. */
    size_t len;
    cr_assert_null(file_read_all(fifo, &len, &err));
    check_msg(err.msg, "fifo read", fifo, "not a regular file", NULL);
    cr_assert_eq(dir_entries(dir), 3, "only plain, sub/ and fifo remain");

    /* Bad arguments write nothing. */
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    const int64_t neg[2] = {2, -2}, big[2] = {INT64_MAX, 2};
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    cr_assert_eq(npy_write(path, NPY_F32, 2, neg, v, &err), -1);
    check_msg(err.msg, "negative", path, "negative dimension -2", NULL);
    cr_assert_eq(npy_write(path, NPY_F32, 9, nine, v, &err), -1);
    check_msg(err.msg, "rank", path, "rank 9", NULL);
    cr_assert_eq(npy_write(path, NPY_F32, -1, nine, v, &err), -1);
    check_msg(err.msg, "rank", path, "rank -1", NULL);
    cr_assert_eq(npy_write(path, NPY_F64, 2, big, v, &err), -1);
    check_msg(err.msg, "big", path, "too many elements", NULL);
    cr_assert_eq(npy_write(path, NPY_F32, 2, shape, NULL, &err), -1);
    check_msg(err.msg, "no data", path, "no data", NULL);
    cr_assert_eq(npy_write(path, (npy_dtype)7, 2, shape, v, &err), -1);
    check_msg(err.msg, "dtype", path, "unknown dtype", NULL);
    cr_assert_eq(dir_entries(dir), 3, "nothing written");

    /* Overwriting replaces the old file whole. */
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    fputs("old contents, much longer than nothing at all ...", fp);
    fclose(fp);
    const int64_t s1[1] = {1};
    cr_assert_eq(npy_write(path, NPY_F32, 1, s1, v, &err), 0, "%s", err.msg);
    npy_array a;
    cr_assert_eq(npy_read(path, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.count, 1);
    cr_assert_eq(((float *)a.data)[0], 1.f);
    npy_free(&a);
    cr_assert_eq(dir_entries(dir), 4);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}


Test(npy, read_from_file_errors_name_it)
{
    char *dir = tmpdir();
    char path[300];
    dsc_err err = {{0}};
    npy_array a;
    snprintf(path, sizeof path, "%s/missing.npy", dir);
    cr_assert_eq(npy_read(path, &a, &err), -1);
    cr_assert_null(a.data);
    npy_free(&a);
    check_msg(err.msg, "missing", path, "cannot open", NULL);

    snprintf(path, sizeof path, "%s/f.npy", dir);
    size_t len;
    unsigned char *b = mknpy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}",
                             zeros, 4, &len);
    cr_assert_eq(file_write_atomic(path, b, len, &err), 0);
    cr_assert_eq(npy_read(path, &a, &err), -1);
    check_msg(err.msg, "fortran", path, "Fortran order is not supported", NULL);
    free(b);
    remove(path);
    rmdir(dir);
    free(dir);
}


Test(npy, mutated_files_fail_cleanly)
{
    const int32_t v[6] = {1, 2, 3, 4, 5, 6};
    size_t len;
    unsigned char *good = mknpy(1, "{'descr': '<i4', 'fortran_order': False, "
                                "'shape': (2, 3), }   \n", v, sizeof v, &len);
    unsigned char *b = malloc(len);
    const unsigned char vals[] = {0, '\'', '{', '}', '(', ')', ',', ':', '\\',
                                  '-', '9', ' ', 0x80, 0xff, 'T', '>'};
    int opened = 0, failed = 0;
    for (size_t at = 0; at < len; at++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(b, good, len);
            b[at] = vals[k];
            npy_array a;
            dsc_err err = {{0}};
            if (npy_read_memory(b, len, NAME, &a, &err) == 0) {
                opened++;
                /* Whatever still opens must still describe the data. */
                cr_assert_eq(a.count * 4, (int64_t)sizeof v);
                cr_assert(!memcmp(a.data, b + len - sizeof v, sizeof v));
                npy_free(&a);
            } else {
                failed++;
                check_msg(err.msg, "mutation", NAME, ": ", NULL);
            }
        }
    }
    for (size_t n = 0; n < len; n++)
        expect_fail_bytes(good, n, "truncated", ": error: ", NULL);
    cr_assert_gt(failed, 100);
    cr_assert_gt(opened, 0);
    free(b);
    free(good);
}
