/* npy.c — NumPy .npy reading and writing.
 *
 * The header is a Python dict literal, parsed here by a strict little
 * grammar rather than evaluated:
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * Little-endian host assumed (x86-64): '<' data is copied as is.
 */
#include "io/npy.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* numpy aligns the data to 64 bytes so it can be mapped and used in place. */
#define NPY_ALIGN 64

static const struct {
    const char *descr;
    int size;
} npy_dtypes[] = {
    [NPY_F32] = {"<f4", 4}, [NPY_F64] = {"<f8", 8},
    [NPY_I32] = {"<i4", 4}, [NPY_I64] = {"<i8", 8},
};

#define NPY_NDTYPES ((int)(sizeof npy_dtypes / sizeof npy_dtypes[0]))

typedef struct hparser {
    const char *s;       /* header text */
    size_t len, pos;
    const char *path;
    dsc_err *err;
} hparser;


static int hp_fail(hparser *hp, const char *what)
{
    return err_set(hp->err, "%s: error: malformed header: %s at byte %zu",
                   hp->path, what, hp->pos);
}


static int hp_peek(const hparser *hp)
{
    return hp->pos < hp->len ? (unsigned char)hp->s[hp->pos] : -1;
}


static void hp_ws(hparser *hp)
{
    int c;
    while ((c = hp_peek(hp)) == ' ' || c == '\t' || c == '\n' || c == '\r')
        hp->pos++;
}


/* A quoted string without escapes into out (NUL-terminated). */
static int hp_string(hparser *hp, char *out, size_t cap)
{
    hp_ws(hp);
    int q = hp_peek(hp);
    if (q != '\'' && q != '"')
        return hp_fail(hp, "expected a quoted string");
    size_t start = ++hp->pos, n = 0;
    int c;
    while ((c = hp_peek(hp)) != q) {
        if (c < 0x20 || c >= 0x7f || c == '\\')
            return hp_fail(hp, c < 0 ? "unterminated string"
                               : "unsupported character in string");
        if (++n >= cap)
            return hp_fail(hp, "string too long");
        hp->pos++;
    }
    memcpy(out, hp->s + start, n);
    out[n] = '\0';
    hp->pos++;
    return 0;
}


/* A Python literal word (True, False) not running into a longer name. */
static int hp_word(hparser *hp, const char *w)
{
    size_t n = strlen(w);
    if (hp->len - hp->pos < n || memcmp(hp->s + hp->pos, w, n))
        return 0;
    if (hp->pos + n < hp->len) {
        char c = hp->s[hp->pos + n];
        if (c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
            || (c >= 'A' && c <= 'Z'))
            return 0;
    }
    hp->pos += n;
    return 1;
}


/* A shape tuple: (), (5,), (3, 4) or (3, 4,). */
static int hp_shape(hparser *hp, npy_array *a)
{
    hp_ws(hp);
    if (hp_peek(hp) != '(')
        return hp_fail(hp, "'shape' must be a tuple");
    hp->pos++;
    int comma = 0, c;
    a->rank = 0;
    for (;;) {
        hp_ws(hp);
        if (hp_peek(hp) == ')')
            break;
        if (a->rank > 0 && !comma)
            return hp_fail(hp, "expected ',' or ')' in shape");
        c = hp_peek(hp);
        if (c == '-')
            return hp_fail(hp, "negative dimension in shape");
        if (c < '0' || c > '9')
            return hp_fail(hp, "expected a dimension in shape");
        if (a->rank == NPY_MAX_RANK)
            return hp_fail(hp, "shape has more than 8 dimensions");
        if (c == '0' && hp->pos + 1 < hp->len && hp->s[hp->pos + 1] >= '0'
            && hp->s[hp->pos + 1] <= '9')
            return hp_fail(hp, "dimension with a leading zero");
        int64_t d = 0;
        while ((c = hp_peek(hp)) >= '0' && c <= '9') {
            if (d > (INT64_MAX - (c - '0')) / 10)
                return hp_fail(hp, "dimension too large");
            d = d * 10 + (c - '0');
            hp->pos++;
        }
        a->shape[a->rank++] = d;
        hp_ws(hp);
        comma = hp_peek(hp) == ',';
        if (comma)
            hp->pos++;
    }
    /* (5) is the number 5 in Python, not a tuple. */
    if (a->rank == 1 && !comma)
        return hp_fail(hp, "'shape' (n) is not a tuple; expected (n,)");
    hp->pos++;
    return 0;
}


static int parse_header(hparser *hp, npy_array *a)
{
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    char key[32], descr[32];
    hp_ws(hp);
    if (hp_peek(hp) != '{')
        return hp_fail(hp, "expected '{'");
    hp->pos++;
    for (;;) {
        hp_ws(hp);
        if (hp_peek(hp) == '}') {
            hp->pos++;
            break;
        }
        if (hp_string(hp, key, sizeof key))
            return -1;
        hp_ws(hp);
        if (hp_peek(hp) != ':')
            return hp_fail(hp, "expected ':'");
        hp->pos++;
        hp_ws(hp);
        int *seen = !strcmp(key, "descr") ? &have_descr
                  : !strcmp(key, "fortran_order") ? &have_fortran
                  : !strcmp(key, "shape") ? &have_shape : NULL;
        if (!seen)
            return err_file(hp->err, hp->path, "malformed header: unexpected "
                            "key '%s'", key);
        if (*seen)
            return err_file(hp->err, hp->path, "malformed header: duplicate "
                            "key '%s'", key);
        *seen = 1;
        if (seen == &have_descr) {
            if (hp_peek(hp) != '\'' && hp_peek(hp) != '"')
                return err_file(hp->err, hp->path, "unsupported dtype: 'descr' "
                                "is not a simple type string");
            if (hp_string(hp, descr, sizeof descr))
                return -1;
        } else if (seen == &have_fortran) {
            if (hp_word(hp, "True"))
                return err_file(hp->err, hp->path, "Fortran order is not "
                                "supported");
            if (!hp_word(hp, "False"))
                return hp_fail(hp, "'fortran_order' must be True or False");
        } else if (hp_shape(hp, a)) {
            return -1;
        }
        hp_ws(hp);
        if (hp_peek(hp) == ',') {
            hp->pos++;
        } else if (hp_peek(hp) == '}') {
            hp->pos++;
            break;
        } else {
            return hp_fail(hp, "expected ',' or '}'");
        }
    }
    hp_ws(hp);  /* numpy pads with spaces and ends with '\n' */
    if (hp->pos != hp->len)
        return hp_fail(hp, "unexpected text after the dict");
    if (!have_descr || !have_fortran || !have_shape)
        return err_file(hp->err, hp->path, "malformed header: no '%s'",
                        !have_descr ? "descr" : !have_fortran ? "fortran_order"
                        : "shape");

    int d = 0;
    while (d < NPY_NDTYPES && strcmp(descr, npy_dtypes[d].descr))
        d++;
    if (d == NPY_NDTYPES) {
        if (descr[0] == '>')
            return err_file(hp->err, hp->path, "big-endian dtype '%s' is not "
                            "supported (save little-endian, e.g. with "
                            "a.astype('<%s'))", descr, descr + 1);
        return err_file(hp->err, hp->path, "unsupported dtype '%s' (expected "
                        "<f4, <f8, <i4 or <i8)", descr);
    }
    a->dtype = (npy_dtype)d;
    return 0;
}


/* Product of shape, or -1 when the bytes would not fit an int64. */
static int64_t shape_count(int rank, const int64_t *shape, int esize)
{
    int64_t count = 1, limit = INT64_MAX / esize;
    for (int i = 0; i < rank; i++)
        if (shape[i] == 0)
            return 0;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0 || shape[i] > limit / count)
            return -1;
        count *= shape[i];
    }
    return count;
}


int npy_read_memory(const void *bytes, size_t len, const char *path,
                    npy_array *out, dsc_err *err)
{
    const unsigned char *b = bytes;
    npy_array a;
    memset(&a, 0, sizeof a);
    memset(out, 0, sizeof *out);
    if (len < NPY_MAGIC_LEN + 2 || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN))
        return err_file(err, path, "not a .npy file (bad magic)");
    int major = b[6], minor = b[7];
    if (minor != 0 || major < 1 || major > 3)
        return err_file(err, path, "unsupported .npy version %d.%d", major,
                        minor);
    size_t lensz = major == 1 ? 2 : 4, start = 8 + lensz;
    if (len < start)
        return err_file(err, path, "truncated: file ends inside the header "
                        "length");
    size_t hlen = (size_t)b[8] | (size_t)b[9] << 8;
    if (lensz == 4)
        hlen |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hlen > len - start)
        return err_file(err, path, "truncated: header length %zu exceeds the "
                        "file (%zu bytes after it)", hlen, len - start);
    hparser hp = {(const char *)b + start, hlen, 0, path, err};
    if (parse_header(&hp, &a))
        return -1;

    int esize = npy_dtypes[a.dtype].size;
    a.count = shape_count(a.rank, a.shape, esize);
    if (a.count < 0)
        return err_file(err, path, "shape has too many elements");
    uint64_t want = (uint64_t)a.count * (uint64_t)esize;
    size_t got = len - start - hlen;
    if (got != want)
        return err_file(err, path, "%s: expected %" PRIu64 " data bytes for "
                        "%" PRId64 " elements of %s, got %zu",
                        got < want ? "truncated" : "trailing data", want,
                        a.count, npy_dtypes[a.dtype].descr, got);
    a.data = malloc(want ? (size_t)want : 1);
    if (!a.data)
        return err_file(err, path, "out of memory for %" PRIu64 " bytes", want);
    if (want)
        memcpy(a.data, b + start + hlen, (size_t)want);  /* may be unaligned */
    *out = a;
    return 0;
}


int npy_read(const char *path, npy_array *out, dsc_err *err)
{
    size_t len;
    memset(out, 0, sizeof *out);
    char *buf = file_read_all(path, &len, err);
    if (!buf)
        return -1;
    int rc = npy_read_memory(buf, len, path, out, err);
    free(buf);
    return rc;
}


int npy_write(const char *path, npy_dtype dtype, int rank,
              const int64_t *shape, const void *data, dsc_err *err)
{
    if ((int)dtype < 0 || (int)dtype >= NPY_NDTYPES)
        return err_file(err, path, "cannot write: unknown dtype %d",
                        (int)dtype);
    if (rank < 0 || rank > NPY_MAX_RANK || (rank && !shape))
        return err_file(err, path, "cannot write: rank %d (0 to %d)", rank,
                        NPY_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (shape[i] < 0)
            return err_file(err, path, "cannot write: negative dimension %"
                            PRId64, shape[i]);
    int esize = npy_dtypes[dtype].size;
    int64_t count = shape_count(rank, shape, esize);
    if (count < 0)
        return err_file(err, path, "cannot write: shape has too many elements");
    size_t nbytes = (size_t)count * (size_t)esize;
    if (nbytes && !data)
        return err_file(err, path, "cannot write: no data");

    /* Magic, version 1.0, 2-byte length, dict, spaces, '\n': the data
     * starts at a multiple of NPY_ALIGN.  Rank <= 8 keeps this small. */
    char h[512];
    size_t n = 10;
    n += (size_t)snprintf(h + n, sizeof h - n, "{'descr': '%s', "
                          "'fortran_order': False, 'shape': (",
                          npy_dtypes[dtype].descr);
    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(h + n, sizeof h - n, "%s%" PRId64,
                              i ? ", " : "", shape[i]);
    n += (size_t)snprintf(h + n, sizeof h - n, "%s), }", rank == 1 ? "," : "");
    size_t total = (n + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    memset(h + n, ' ', total - 1 - n);
    h[total - 1] = '\n';
    memcpy(h, NPY_MAGIC, NPY_MAGIC_LEN);
    h[6] = 1;
    h[7] = 0;
    h[8] = (char)((total - 10) & 0xFF);
    h[9] = (char)((total - 10) >> 8);

    file_out *f = file_out_open(path, err);
    if (!f)
        return -1;
    file_out_write(f, h, total);
    file_out_write(f, data, nbytes);
    return file_out_commit(f, err);
}


void npy_free(npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    a->data = NULL;
}


const char *npy_dtype_name(npy_dtype dtype)
{
    return (int)dtype >= 0 && (int)dtype < NPY_NDTYPES
         ? npy_dtypes[dtype].descr : "?";
}
