/* safetensors.h — a careful reader of Hugging Face's safetensors format.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *   "__metadata__": {...}}), then the data section; offsets are relative to
 * the start of the data section.  Every field is checked before use: the
 * file may come from anywhere.
 */
#ifndef DSC_SAFETENSORS_H
#define DSC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/diag.h"

#define ST_MAX_RANK 8

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8,
    ST_BOOL
} st_dtype;

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int rank;
    int64_t shape[ST_MAX_RANK];
    int64_t count;            /* product of shape (1 for rank 0) */
    const unsigned char *data; /* inside the file's buffer */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Read and validate path.  NULL with an error naming path (and the key, for
 * per-tensor problems) when anything is wrong. */
st_file *st_open(const char *path, dsc_err *err);

/* Same, over bytes already in memory (copied); path only names errors. */
st_file *st_open_memory(const void *bytes, size_t len, const char *path,
                        dsc_err *err);

void st_close(st_file *f);

const char *st_path(const st_file *f);
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);  /* in file order */
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype dtype);        /* "F32", ... */
/* t's own dims as "[2, 3]" (all of its up to ST_MAX_RANK) into out. */
const char *st_shape_str(const st_tensor *t, char *out, size_t cap);

/* Convert elements [first, first + count) of t to float32 into dst.
 * F32, F16, BF16 and F64 convert; other dtypes are an error naming the
 * key.  Returns the number of NaN/Inf values seen (>= 0), or -1. */
int64_t st_read_f32(const st_file *f, const st_tensor *t, int64_t first,
                    int64_t count, float *dst, dsc_err *err);

/* A tensor to write: nbytes of data in dtype, little-endian. */
typedef struct st_out_tensor {
    const char *name;
    st_dtype dtype;
    int rank;
    int64_t shape[ST_MAX_RANK];
    const void *data;
    size_t nbytes;
} st_out_tensor;

/* Write n tensors to path atomically (safetensors_write.c). */
int st_write(const char *path, const st_out_tensor *t, int n, dsc_err *err);

#endif
