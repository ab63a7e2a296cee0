/* gemm_lowp.h — rt_linear's fused kernels for the reduced weight formats
 * (bfloat16, Q8_0): gemm.c calls them, gemm_lowp.c has them. */
#ifndef DSC_GEMM_LOWP_H
#define DSC_GEMM_LOWP_H

#include "rt_pack.h"

/* c[r * P + j] = sum_k x[r * ldx + k] * W[k][j] for r < mb, j < P, where
 * W is one panel of a reduced-format weight in layout (its first byte at
 * panel), converted in registers as it is read, so memory sees only the
 * small values.  Any mb works; they pay off for few rows (a decode step),
 * where the weights are read once and converting a block first would
 * cost a second pass over it. */
typedef void gemm_lowp_tile_fn(float *c, const float *x, int64_t ldx,
                               const char *panel, int layout, int64_t mb,
                               int64_t n_in);

#if RT_X86_DISPATCH
gemm_lowp_tile_fn gemm_lowp_tile_avx2, gemm_lowp_tile_avx512;
#endif

#endif
