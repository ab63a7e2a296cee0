/* dsc.h — dsc as a library: compile a Lua model description and run it,
 * in this process.
 *
 *   char err[DSC_ERROR_SIZE];
 *   const char *opts[] = { "-D", "d_model=64", "--weights", "w.safetensors", NULL };
 *   dsc_model *m = dsc_compile_file("models/seed_encoder.lua", opts, err, sizeof err);
 *   dsc_context *c = m ? dsc_context_new(m, err, sizeof err) : NULL;
 *   const void *in[] = { tokens };  void *out[] = { logits };
 *   if (!c || dsc_run(c, in, out)) puts(c ? dsc_context_error(c) : err);
 *   dsc_context_free(c);
 *   dsc_model_free(m);
 *
 * Errors come back as text (the line dsc itself would print: "model.lua:12:
 * error: ...", "w.safetensors: error: ..."); the library never prints.
 *
 * Threads: a dsc_model is read-only once compiled, so any number of threads
 * may use one model at the same time, each through its own dsc_context.  A
 * dsc_context (the arena, the kernels' worker threads, a decoder's KV
 * cache) serves one call at a time: give each thread its own.  Compiling
 * and freeing are safe from any thread.  Link with pkg-config's dsc. */
#ifndef DSC_H
#define DSC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSC_ERROR_SIZE 1024  /* room for any error message */
#define DSC_MAX_RANK 8

typedef struct dsc_model dsc_model;      /* compiled code and its weights */
typedef struct dsc_context dsc_context;  /* what one running call needs */

/* Element types of inputs and outputs. */
typedef enum dsc_dtype { DSC_FLOAT32 = 0, DSC_INT32 = 1 } dsc_dtype;

/* One input or output of a model, in declaration order. */
typedef struct dsc_tensor_info {
    const char *name;
    dsc_dtype dtype;
    int rank;
    int64_t shape[DSC_MAX_RANK];
    int dynamic;   /* a decoder's tokens: dimension 0 may be 1..shape[0] */
} dsc_tensor_info;

/* "0.1" */
const char *dsc_version(void);

/* Compile the model file at path (Lua, see README "Writing a model") and
 * load it.  options: a NULL-terminated list of words as on dsc run's
 * command line (NULL for none):
 *   "-D", "KEY=VALUE" (or "-DKEY=VALUE")   override a config default
 *   "--weights", "W.safetensors"           else random weights from --seed
 *   "--seed", "N"                          random weights' seed (default 0)
 *   "--threads", "N"                       contexts' threads (default one per core)
 *   "--aot"                                build with $CC instead of libtcc
 *   "-fno-fuse-qkv", "-fno-fuse-epilogue", "-fno-dce", "-fno-plan-memory"
 *   "-fweights=bf16" (or "=q8", "=f32")     how the linear weights are
 *                                           stored (dsc --help)
 * NULL on failure, with the message in err (err_size bytes; may be NULL). */
dsc_model *dsc_compile_file(const char *path, const char *const *options,
                            char *err, size_t err_size);

/* The same for model text in memory; name stands for the file in messages
 * and gives the model its name (name "m.lua": generated entry m_forward). */
dsc_model *dsc_compile_string(const char *name, const char *text,
                              const char *const *options, char *err,
                              size_t err_size);

void dsc_model_free(dsc_model *m);

/* Inputs and outputs: counts, then each by index (NULL when out of range).
 * The pointers live as long as the model. */
int dsc_input_count(const dsc_model *m);
int dsc_output_count(const dsc_model *m);
const dsc_tensor_info *dsc_input(const dsc_model *m, int i);
const dsc_tensor_info *dsc_output(const dsc_model *m, int i);

/* A decoder step model (models/gpt2.lua)?  Then *context (may be NULL)
 * gets the most tokens a sequence may reach. */
int dsc_is_decoder(const dsc_model *m, int64_t *context);

/* What compiling said besides errors (weight keys the model does not use,
 * NaN values in a weight), one line each; "" when nothing. */
const char *dsc_model_notes(const dsc_model *m);

/* A context for m (which must outlive it), with the model's --threads.
 * NULL with a message in err. */
dsc_context *dsc_context_new(const dsc_model *m, char *err, size_t err_size);
void dsc_context_free(dsc_context *c);

/* Run the model once: inputs[i] points at dsc_input(m, i)'s elements (C
 * order, int32 or float32), outputs[i] at room for dsc_output(m, i)'s.  0,
 * or -1 with the reason in dsc_context_error (a token id outside the
 * vocabulary).  For a decoder this is a prefill of the full context. */
int dsc_run(dsc_context *c, const void *const *inputs, void *const *outputs);

/* Decoders (one token input, one logits output): dsc_prefill starts a new
 * sequence with n tokens at positions 0..n-1, dsc_decode appends one token
 * at the next position; both write the last token's logits (vocab floats).
 * 0, or -1 with the reason in dsc_context_error. */
int dsc_prefill(dsc_context *c, const int32_t *tokens, int64_t n,
                float *logits);
int dsc_decode(dsc_context *c, int32_t token, float *logits);
/* Tokens in the current sequence. */
int64_t dsc_position(const dsc_context *c);

/* Continue prompt (n_prompt ids) by n_new tokens into out, as dsc generate
 * does: greedy, or sampled with options "--temperature", "T", "--top-k",
 * "K", "--top-p", "P", "--seed", "N" (NULL-terminated; NULL for greedy).
 * Same options, same tokens as the command line.  0, or -1 with the reason
 * in dsc_context_error. */
int dsc_generate(dsc_context *c, const int32_t *prompt, int64_t n_prompt,
                 int64_t n_new, const char *const *options, int32_t *out);

/* The last failure of a call on c ("" when none). */
const char *dsc_context_error(const dsc_context *c);

#ifdef __cplusplus
}
#endif

#endif
