/* config_json.h — a Hugging Face config.json as model config settings:
 * every scalar, nested objects flattened to "outer.inner" keys, each with
 * the JSON type it had, for the frontend to check against the model's
 * declared keys (dsc --config). */
#ifndef DSC_CONFIG_JSON_H
#define DSC_CONFIG_JSON_H

#include "frontend/frontend.h"
#include "util/diag.h"

/* The settings of the JSON object in path, in file order, each with
 * source = path (an error names the file and line).  Their key and value
 * strings are malloc'd; config_json_free releases them and the array. */
int config_json_read(const char *path, frontend_define **defs, int *n,
                     dsc_err *err);
/* The same for text already in memory (len bytes; tests, fuzzing).  The
 * settings' source is path, which must outlive them. */
int config_json_read_memory(const char *text, size_t len, const char *path,
                            frontend_define **defs, int *n, dsc_err *err);
void config_json_free(frontend_define *defs, int n);

#endif
