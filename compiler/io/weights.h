/* weights.h — the packed weight blob the generated code reads.
 *
 * The blob starts with a 64-byte header naming its packed layout (see
 * rt_blob_header); then every weight tensor of the graph gets a 64-byte
 * aligned place in one float array; linear weights are stored in the runtime's packed layout
 * (rt_linear_pack), everything else as is.  The blob is filled from a
 * safetensors file or with seeded random values. */
#ifndef DSC_WEIGHTS_H
#define DSC_WEIGHTS_H

#include <stdint.h>
#include <stdio.h>

#include "util/diag.h"
#include "ir/graph.h"
#include "io/safetensors.h"

typedef struct weight_entry {
    int tensor;          /* the first graph tensor stored here */
    int64_t offset;      /* in floats from the blob's start */
    int64_t floats;      /* as stored (packed size for linear weights) */
    int packed_linear;   /* stored by rt_linear_pack */
    int packing;         /* packed_linear: the DSC_LAYOUT_* it is stored in
                            (the blob's, or for a routed expert that asks
                            for bfloat16 under float32, its bf16 variant) */
} weight_entry;

typedef struct weight_layout {
    weight_entry *entries;
    int n_entries;
    int *entry_of;       /* per graph tensor: its entry, or -1 */
    int64_t total_floats;  /* the blob header included */
    int packing;           /* DSC_LAYOUT_* of the linear weights */
} weight_layout;

/* Place every weight tensor that a node reads, after the blob header
 * (DSC_BLOB_HEADER_FLOATS), linear weights packed in `packing`
 * (DSC_LAYOUT_*).  Tensors viewing the same rows of the same key in the
 * same layout share one entry. */
int weights_plan_for(const graph *g, int packing, weight_layout *layout,
                     dsc_err *err);
/* The same in the layout of the host's ISA (rt_isa_native). */
int weights_plan(const graph *g, weight_layout *layout, dsc_err *err);
void weights_layout_free(weight_layout *layout);

/* Fill blob (layout->total_floats floats) from f: every key the graph
 * needs must be present, F32/F16/BF16/F64, with the declared shape; keys
 * the graph does not use are listed on notes (if not NULL; the first 20
 * per file, then how many more), as are NaN or Inf values. */
int weights_fill_from_file(const graph *g, const weight_layout *layout,
                           const st_file *f, float *blob, FILE *notes,
                           dsc_err *err);

/* The same from n_files files (the shards of one checkpoint; source, the
 * index, names it in messages): each key from the first file holding it.
 * A checkpoint with FP8 scales (weight_scale_inv) is refused. */
int weights_fill_from_files(const graph *g, const weight_layout *layout,
                            const st_file *const *files, int n_files,
                            const char *source, float *blob, FILE *notes,
                            dsc_err *err);

/* Fill blob with values drawn from a generator seeded by seed, per key (so
 * slices of one key agree), following each tensor's init rule. */
void weights_fill_random(const graph *g, const weight_layout *layout,
                         uint64_t seed, float *blob);

/* A blob for layout: from the safetensors file at path (or, for a path
 * ending in .json, the shards a model.safetensors.index.json lists, read
 * one at a time, a file listed under several names once), or
 * random from seed when path is NULL.  NULL with an error naming the file or key. */
float *weights_make_blob(const graph *g, const weight_layout *layout,
                         const char *path, uint64_t seed, FILE *notes,
                         dsc_err *err);

#endif
