/* st_index.h — a sharded safetensors checkpoint's index
 * (model.safetensors.index.json). */
#ifndef DSC_ST_INDEX_H
#define DSC_ST_INDEX_H

#include "util/diag.h"

/* The distinct shard files the index's weight_map names, as paths beside
 * the index, in first-mention order; each and the array malloc'd.  A shard
 * name must be a plain file name (no '/', not "." or ".."). */
int st_index_shards(const char *index_path, char ***paths, int *n,
                    dsc_err *err);
/* The same for text in memory (tests, fuzzing). */
int st_index_shards_memory(const char *text, size_t len,
                           const char *index_path, char ***paths, int *n,
                           dsc_err *err);

#endif
