/* npy.h — NumPy .npy files (format versions 1.0, 2.0 and 3.0), the way
 * dsc run takes inputs and gives outputs.  Little-endian, C order only. */
#ifndef DSC_NPY_H
#define DSC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "util/diag.h"

#define NPY_MAX_RANK 8

typedef enum npy_dtype { NPY_F32, NPY_F64, NPY_I32, NPY_I64 } npy_dtype;

typedef struct npy_array {
    npy_dtype dtype;
    int rank;
    int64_t shape[NPY_MAX_RANK];
    int64_t count;   /* product of shape */
    void *data;      /* count elements of dtype, malloc'd */
} npy_array;

/* Read path into *out.  Errors (naming path) for bad magic or version,
 * a malformed header, big-endian or unsupported dtypes, Fortran order,
 * and data shorter or longer than the shape says. */
int npy_read(const char *path, npy_array *out, dsc_err *err);

/* Same, over bytes in memory; path only names errors. */
int npy_read_memory(const void *bytes, size_t len, const char *path,
                    npy_array *out, dsc_err *err);

/* Write a C-order array atomically (temporary file, then rename). */
int npy_write(const char *path, npy_dtype dtype, int rank,
              const int64_t *shape, const void *data, dsc_err *err);

void npy_free(npy_array *a);

const char *npy_dtype_name(npy_dtype dtype);  /* "<f4", ... */

#endif
