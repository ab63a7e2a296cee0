/* safetensors.c — reads safetensors files and trusts nothing in them.
 *
 * The JSON header goes through the strict reader of io/json.c: the
 * header may come from anywhere, so every string is checked UTF-8, nesting
 * is bounded, duplicate keys are errors and every size is range-checked
 * before it is used.
 *
 * Little-endian host assumed (x86-64): the header length and the tensor
 * elements are loaded with memcpy and no byte swapping.  memcpy also keeps
 * the loads legal where the data section is not aligned in the buffer.
 */
#include "io/safetensors.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "io/json.h"

/* Bounds from the reference implementation: a header over 100 MB is hostile. */
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

#define ST_STR_(x) #x
#define ST_STR(x) ST_STR_(x)

struct st_file {
    char *path;
    unsigned char *buf;          /* the whole file */
    size_t len;
    st_tensor *tensors;          /* file (JSON object) order */
    int count, cap;
    const st_tensor **by_name;   /* sorted by name, for st_find */
};

static const struct {
    const char *name;
    int size;
} st_dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},   [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))


/* JSON: io/json.c. */

/* ---- header ---------------------------------------------------------- */

static int tensor_fail(jparser *jp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tensor_fail(jparser *jp, const char *name, const char *fmt, ...)
{
    char msg[800], buf[80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(jp->err, "%s: error: tensor '%s': %s", jp->path,
                   json_show(name, buf), msg);
}


/* A size field (shape dims, offsets): an integer in [0, 2^53]. */
static int jp_size(jparser *jp, const char *name, const char *what,
                   uint64_t *out)
{
    jp_ws(jp);
    int c = jp_peek(jp);
    if (c != '-' && (c < '0' || c > '9'))
        return tensor_fail(jp, name, "%s must be a non-negative integer", what);
    jnum n;
    if (jp_number(jp, &n))
        return -1;
    const char *why = !n.integral ? "is not an integer"
                    : n.negative ? "is negative"
                    : n.big ? "is too large (limit 2^53)" : NULL;
    if (why)
        return tensor_fail(jp, name, "%s = %.*s %s", what, (int)n.len,
                           jp->s + n.at, why);
    *out = n.mag;
    return 0;
}


const char *st_shape_str(const st_tensor *t, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < t->rank && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%" PRId64, i ? ", " : "",
                              t->shape[i]);
    if (n < cap)
        snprintf(out + n, cap - n, "]");
    return out;
}


/* An array of at most max size fields, as in "shape": [2, 3]; *n gets
 * how many.  Too many is an error saying so ("shape has more than 8"). */
static int parse_sizes(jparser *jp, const char *name, const char *field,
                       uint64_t *out, int max, int *n, const char *too_many)
{
    int first = 1, r;
    *n = 0;
    jp_ws(jp);
    if (jp_peek(jp) != '[')
        return tensor_fail(jp, name, "%s must be an array", field);
    if (jp_open(jp, '[', 3))
        return -1;
    while ((r = jp_next(jp, ']', &first, NULL)) == 1) {
        char what[32];
        if (*n == max)
            return tensor_fail(jp, name, "%s", too_many);
        snprintf(what, sizeof what, "%s[%d]", field, *n);
        if (jp_size(jp, name, what, &out[*n]))
            return -1;
        ++*n;
    }
    return r;
}


static int parse_dtype(jparser *jp, const char *name, st_dtype *dtype)
{
    char *s, buf[80];
    jp_ws(jp);
    if (jp_peek(jp) != '"')
        return tensor_fail(jp, name, "dtype must be a string");
    if (jp_string(jp, &s))
        return -1;
    int d = 0;
    while (d < ST_NDTYPES && strcmp(s, st_dtypes[d].name))
        d++;
    int r = 0;
    if (d == ST_NDTYPES && strncmp(s, "F8_", 3) == 0)
        r = tensor_fail(jp, name, "unsupported dtype '%s': FP8 checkpoints "
                        "(with weight_scale_inv) are not supported; convert "
                        "them to BF16 first (DeepSeek-V3's "
                        "inference/fp8_cast_bf16.py)", json_show(s, buf));
    else if (d == ST_NDTYPES)
        r = tensor_fail(jp, name, "unsupported dtype '%s'", json_show(s, buf));
    else
        *dtype = (st_dtype)d;
    free(s);
    return r;
}


/* Count, size and byte range of a parsed entry, against the data section;
 * sets t->count, t->data and t->nbytes. */
static int check_tensor(jparser *jp, st_tensor *t, const uint64_t off[2],
                        const unsigned char *data, size_t dlen)
{
    const char *dname = st_dtypes[t->dtype].name;
    uint64_t esize = (uint64_t)st_dtypes[t->dtype].size;
    uint64_t count = 1, limit = (uint64_t)INT64_MAX / esize;
    char shp[ST_MAX_RANK * 20 + 4];
    st_shape_str(t, shp, sizeof shp);
    /* A zero dimension empties the tensor whatever the others are. */
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] == 0)
            count = 0;
    for (int i = 0; i < t->rank && count; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (d > limit / count)
            return tensor_fail(jp, t->name, "shape %s has too many elements",
                               shp);
        count *= d;
    }
    uint64_t nbytes = count * esize;

    if (off[0] > off[1] || off[1] > dlen)
        return tensor_fail(jp, t->name, "data_offsets [%" PRIu64 ", %" PRIu64
                           "] out of range (data section is %zu bytes)",
                           off[0], off[1], dlen);
    if (off[1] - off[0] != nbytes)
        return tensor_fail(jp, t->name, "data_offsets [%" PRIu64 ", %" PRIu64
                           "] hold %" PRIu64 " bytes but %s %s needs %" PRIu64,
                           off[0], off[1], off[1] - off[0], dname, shp, nbytes);
    if (off[0] % esize)
        return tensor_fail(jp, t->name, "data_offsets begin %" PRIu64 " is not "
                           "aligned to the %s element size (%d bytes)", off[0],
                           dname, (int)esize);
    t->count = (int64_t)count;
    t->data = data + off[0];
    t->nbytes = (size_t)nbytes;
    return 0;
}


/* One tensor entry {"dtype":..., "shape":..., "data_offsets":...}; the
 * cursor is at its value.  Unknown fields are checked and ignored. */
static int parse_tensor(jparser *jp, st_tensor *t, const unsigned char *data,
                        size_t dlen)
{
    const char *name = t->name;
    jp_ws(jp);
    if (jp_peek(jp) != '{')
        return tensor_fail(jp, name, "expected an object with dtype, shape "
                           "and data_offsets");
    keyset ks = {0};
    int first = 1, r, have_dtype = 0, have_shape = 0, have_off = 0, n;
    uint64_t off[2] = {0, 0}, shape[ST_MAX_RANK];
    char *key, buf[80];
    if (jp_open(jp, '{', 2))
        return -1;
    while ((r = jp_next(jp, '}', &first, &key)) == 1) {
        if (keyset_add(&ks, key)) {
            r = jp_syntax(jp, "out of memory");
        } else if (!strcmp(key, "dtype")) {
            r = parse_dtype(jp, name, &t->dtype);
            have_dtype = 1;
        } else if (!strcmp(key, "shape")) {
            r = parse_sizes(jp, name, "shape", shape, ST_MAX_RANK, &n,
                            "shape has more than " ST_STR(ST_MAX_RANK)
                            " dimensions");
            t->rank = r ? 0 : n;
            for (int i = 0; i < t->rank; i++)
                t->shape[i] = (int64_t)shape[i];
            have_shape = 1;
        } else if (!strcmp(key, "data_offsets")) {
            const char *want = "data_offsets must be [begin, end]";
            r = parse_sizes(jp, name, "data_offsets", off, 2, &n, want);
            if (!r && n != 2)
                r = tensor_fail(jp, name, "%s", want);
            have_off = 1;
        } else {
            r = jp_skip(jp, 3);
        }
        if (r)
            break;
    }
    const char *dup = r ? NULL : keyset_dup(&ks);
    if (dup)
        r = tensor_fail(jp, name, "duplicate key '%s'", json_show(dup, buf));
    keyset_free(&ks);
    if (r)
        return -1;
    if (!have_dtype || !have_shape || !have_off)
        return tensor_fail(jp, name, "missing '%s'", !have_dtype ? "dtype"
                           : !have_shape ? "shape" : "data_offsets");
    return check_tensor(jp, t, off, data, dlen);
}


/* "__metadata__": an object of string values, read and dropped. */
static int parse_metadata(jparser *jp)
{
    keyset ks = {0};
    int first = 1, r;
    char *key, *val, buf[80];
    jp_ws(jp);
    if (jp_peek(jp) != '{')
        return err_set(jp->err, "%s: error: __metadata__ must be an object",
                       jp->path);
    if (jp_open(jp, '{', 2))
        return -1;
    while ((r = jp_next(jp, '}', &first, &key)) == 1) {
        if (keyset_add(&ks, key)) {
            r = jp_syntax(jp, "out of memory");
            break;
        }
        jp_ws(jp);
        if (jp_peek(jp) != '"') {
            r = err_set(jp->err, "%s: error: __metadata__ value for '%s' must "
                        "be a string", jp->path, json_show(key, buf));
            break;
        }
        if ((r = jp_string(jp, &val)))
            break;
        free(val);
    }
    const char *dup = r ? NULL : keyset_dup(&ks);
    if (dup)
        r = err_set(jp->err, "%s: error: __metadata__: duplicate key '%s'",
                    jp->path, json_show(dup, buf));
    keyset_free(&ks);
    return r ? -1 : 0;
}


static int parse_header(st_file *f, jparser *jp, const unsigned char *data,
                        size_t dlen)
{
    int first = 1, r, seen_meta = 0;
    char *key;
    jp_ws(jp);
    if (jp_peek(jp) != '{')
        return err_file(jp->err, f->path, "header is not a JSON object");
    if (jp_open(jp, '{', 1))
        return -1;
    while ((r = jp_next(jp, '}', &first, &key)) == 1) {
        if (!strcmp(key, "__metadata__")) {
            free(key);
            if (seen_meta)
                return err_file(jp->err, f->path,
                               "duplicate key '__metadata__'");
            seen_meta = 1;
            if (parse_metadata(jp))
                return -1;
            continue;
        }
        if (f->count == f->cap) {
            int cap = f->cap > INT_MAX / 2 ? 0 : f->cap ? f->cap * 2 : 16;
            st_tensor *t = cap ? realloc(f->tensors, (size_t)cap * sizeof *t)
                               : NULL;
            if (!t) {
                free(key);
                return err_file(jp->err, f->path, "out of memory");
            }
            f->tensors = t;
            f->cap = cap;
        }
        st_tensor *t = &f->tensors[f->count++];
        memset(t, 0, sizeof *t);
        t->name = key;  /* owned by f from here */
        if (parse_tensor(jp, t, data, dlen))
            return -1;
    }
    if (r)
        return -1;
    jp_ws(jp);  /* writers pad the header with spaces */
    if (jp->pos != jp->len)
        return jp_syntax(jp, "unexpected text after the header object");
    return 0;
}


static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name,
                  (*(const st_tensor *const *)b)->name);
}


static int cmp_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a;
    const st_tensor *y = *(const st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}


/* Names unique, byte ranges disjoint; builds f->by_name. */
static int check_tensors(st_file *f, dsc_err *err, const unsigned char *data)
{
    char b1[80], b2[80];
    size_t n = (size_t)f->count;
    const st_tensor **ix = malloc((n ? n : 1) * sizeof *ix);
    if (!ix)
        return err_file(err, f->path, "out of memory");
    for (size_t i = 0; i < n; i++)
        ix[i] = &f->tensors[i];
    qsort(ix, n, sizeof *ix, cmp_name);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(ix[i - 1]->name, ix[i]->name)) {
            err_file(err, f->path, "duplicate tensor '%s'",
                    json_show(ix[i]->name, b1));
            free(ix);
            return -1;
        }
    }
    f->by_name = ix;

    const st_tensor **by_begin = malloc((n ? n : 1) * sizeof *by_begin);
    if (!by_begin)
        return err_file(err, f->path, "out of memory");
    memcpy(by_begin, ix, n * sizeof *ix);
    qsort(by_begin, n, sizeof *by_begin, cmp_begin);
    /* Sorted by begin, a range overlaps an earlier one exactly when it
     * starts before the furthest end so far.  Empty ranges hold nothing. */
    const st_tensor *far = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const st_tensor *t = by_begin[i];
        if (!t->nbytes)
            continue;
        if (far && t->data < far->data + far->nbytes) {
            rc = err_file(err, f->path, "tensors '%s' [%td, %td] and '%s' "
                         "[%td, %td] overlap in the data section",
                         json_show(far->name, b1), far->data - data,
                         far->data + far->nbytes - data, json_show(t->name, b2),
                         t->data - data, t->data + t->nbytes - data);
        } else if (!far || t->data + t->nbytes > far->data + far->nbytes) {
            far = t;
        }
    }
    free(by_begin);
    return rc;
}


/* Takes buf (len bytes, malloc'd) whatever happens. */
static st_file *st_parse(unsigned char *buf, size_t len, const char *path,
                         dsc_err *err)
{
    st_file *f = calloc(1, sizeof *f);
    size_t plen = strlen(path);
    if (!f || !(f->path = malloc(plen + 1))) {
        err_set(err, "%s: error: out of memory", path);
        free(buf);
        st_close(f);
        return NULL;
    }
    memcpy(f->path, path, plen + 1);
    f->buf = buf;
    f->len = len;

    if (len < 8) {
        err_file(err, path, "file is %zu bytes, too short for a safetensors "
                "header (at least 8)", len);
        goto fail;
    }
    uint64_t hlen;
    memcpy(&hlen, buf, 8);  /* little-endian host */
    if (hlen > ST_MAX_HEADER) {
        err_file(err, path, "header length %" PRIu64 " exceeds the limit of "
                "%" PRIu64 " bytes (100 MB)", hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > len - 8) {
        err_file(err, path, "header length %" PRIu64 " exceeds the file "
                "(%zu bytes after the length field)", hlen, len - 8);
        goto fail;
    }
    jparser jp = { .s = (const char *)buf + 8, .len = (size_t)hlen,
                   .path = path, .err = err };
    const unsigned char *data = buf + 8 + hlen;
    if (parse_header(f, &jp, data, len - 8 - (size_t)hlen)
        || check_tensors(f, err, data))
        goto fail;
    return f;
fail:
    st_close(f);
    return NULL;
}


/* ---- public ---------------------------------------------------------- */

st_file *st_open(const char *path, dsc_err *err)
{
    size_t len;
    char *buf = file_read_all(path, &len, err);
    if (!buf)
        return NULL;
    return st_parse((unsigned char *)buf, len, path, err);
}


st_file *st_open_memory(const void *bytes, size_t len, const char *path,
                        dsc_err *err)
{
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        err_set(err, "%s: error: out of memory copying %zu bytes", path, len);
        return NULL;
    }
    if (len)
        memcpy(buf, bytes, len);
    return st_parse(buf, len, path, err);
}


void st_close(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    free(f->buf);
    free(f->path);
    free(f);
}


const char *st_path(const st_file *f)
{
    return f->path;
}


int st_count(const st_file *f)
{
    return f->count;
}


const st_tensor *st_at(const st_file *f, int i)
{
    return i >= 0 && i < f->count ? &f->tensors[i] : NULL;
}


const st_tensor *st_find(const st_file *f, const char *name)
{
    size_t lo = 0, hi = (size_t)f->count;
    if (!name)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->name);
        if (!c)
            return f->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}


const char *st_dtype_name(st_dtype dtype)
{
    return (int)dtype >= 0 && (int)dtype < ST_NDTYPES ? st_dtypes[dtype].name
                                                     : "?";
}


/* IEEE half to float, exactly: every half is a float. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = h >> 10 & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | man << 13;  /* inf; NaN keeps payload */
    } else if (exp) {
        bits = sign | (exp + 112) << 23 | man << 13;  /* rebias 15 -> 127 */
    } else {
        float v = (float)man / 16777216.0f;     /* subnormal: man * 2^-24 */
        return sign ? -v : v;
    }
    float v;
    memcpy(&v, &bits, 4);
    return v;
}


int64_t st_read_f32(const st_file *f, const st_tensor *t, int64_t first,
                    int64_t count, float *dst, dsc_err *err)
{
    char buf[80];
    if (!f || !t)
        return err_set(err, "%s: error: no tensor to read",
                       f ? f->path : "safetensors");
    /* A tensor from another file would point outside f's buffer. */
    uintptr_t lo = (uintptr_t)f->buf, at = (uintptr_t)t->data;
    if (at < lo || at > lo + f->len || t->nbytes > lo + f->len - at
        || (int)t->dtype < 0 || (int)t->dtype >= ST_NDTYPES
        || t->count < 0
        || (uint64_t)t->count * (uint64_t)st_dtypes[t->dtype].size != t->nbytes)
        return err_set(err, "%s: error: tensor '%s' does not belong to this "
                       "file", f->path, t->name ? json_show(t->name, buf) : "?");
    if (first < 0 || count < 0 || first > t->count || count > t->count - first)
        return err_set(err, "%s: error: tensor '%s': elements [%" PRId64
                       ", %" PRId64 " + %" PRId64 ") out of range (it has %"
                       PRId64 ")", f->path, json_show(t->name, buf), first, first,
                       count, t->count);
    if (count && !dst)
        return err_set(err, "%s: error: tensor '%s': no destination buffer",
                       f->path, json_show(t->name, buf));
    const unsigned char *p = t->data;
    size_t n = (size_t)count;
    switch (t->dtype) {
    case ST_F32:
        if (n)
            memcpy(dst, p + (size_t)first * 4, n * 4);
        break;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + ((size_t)first + i) * 2, 2);
            if (t->dtype == ST_F16) {
                dst[i] = f16_to_f32(h);
            } else {
                /* bf16 is the top half of a float */
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            }
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + ((size_t)first + i) * 8, 8);
            /* Out-of-range conversion is undefined in C, so what would round
             * to inf (from FLT_MAX + half an ulp up) is made inf here. */
            dst[i] = d >= 0x1.ffffffp127 ? HUGE_VALF
                   : d <= -0x1.ffffffp127 ? -HUGE_VALF : (float)d;
        }
        break;
    default:
        return err_set(err, "%s: error: tensor '%s': dtype %s cannot be read "
                       "as float32", f->path, json_show(t->name, buf),
                       st_dtype_name(t->dtype));
    }
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(dst[i]);
    return bad;
}
