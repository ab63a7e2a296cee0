/* emit_c.h — the backend: a planned graph becomes C11 source and header.
 *
 * Output is deterministic (same input, byte-identical text): every shape a
 * constant, every buffer an arena offset or a weight offset, every loop a
 * call into the runtime.  Knows nothing of Lua. */
#ifndef DSC_EMIT_C_H
#define DSC_EMIT_C_H

#include "ir/model.h"
#include "passes/passes.h"
#include "io/weights.h"
#include "util/strbuf.h"

#define DSC_VERSION "0.1"

typedef struct emit_options {
    /* NULL: `#include "dsc_runtime.h"` and the model header, for shipping.
     * Else the runtime header's text, pasted in place of both includes so
     * the source compiles on its own (the JIT has no files). */
    const char *inline_runtime_header;
    const char *passes;  /* named in the header comment: "plan-memory" */
    /* The files' names, as `dsc compile -o out/other.c` writes them: the .c
     * #includes header_name.  NULL: NAME.c and NAME.h. */
    const char *source_name, *header_name;
} emit_options;

/* Can the model be written as C: every float constant (layernorm eps,
 * attention scale) finite, the file names in opts (may be NULL) fit for an
 * #include.  0, or -1 with an error naming the model line or the file. */
int emit_check(const model *m, const emit_options *opts, dsc_err *err);

/* The .c file's text, or NULL when out of memory or emit_check refuses the
 * model (call it first for the message).  Text from outside (names, keys,
 * config, paths) reaches it only through util/ctext.  Defines
 *   int NAME_forward(const float *weights, <inputs>, <outputs>, void *arena)
 *   int NAME_forward_io(const float *weights, void *const *io, void *arena)
 * the second taking inputs then outputs in declaration order. */
char *emit_c_source(const model *m, const memory_plan *plan,
                    const weight_layout *weights, const emit_options *opts);

/* The .h file's text: sizes as #defines and the forward's prototype
 * (NULL as emit_c_source). */
char *emit_c_header(const model *m, const memory_plan *plan,
                    const weight_layout *weights, const emit_options *opts);

/* Is g a decoder step (an input whose dimension 0 is the runtime token
 * count)?  If so, *context gets the most tokens it may reach. */
int emit_is_decoder(const graph *g, int64_t *context);

/* Floats of state (KV caches) the generated code keeps in caller memory. */
int64_t emit_cache_floats(const graph *g);

/* The name of the uniform entry point (NAME_forward_io, or NAME_step_io for
 * a decoder) into buf. */
const char *emit_entry_name(const model *m, char *buf, int len);

/* One forward node's runtime call, tensors named by tensor_names (a C
 * expression per tensor): emit_train.c writes a train step's forward
 * half through this. */
void emit_c_node(strbuf *sb, const graph *g, const graph_node *n,
                 char *const *tensor_names);

#endif
