/* rt_pack.h — the packed linear weight, as the runtime's files see it
 * (pack.c writes it; gemm.c reads it).  Generated code never includes this.
 *
 * A packed weight starts with a header of RT_PACK_HEADER floats (64 bytes,
 * so what follows stays aligned):
 *   u32[0] RT_PACK_MAGIC, u32[1] the layout (DSC_LAYOUT(P, format)),
 *   u32[2] n_out, u32[3] n_in, the rest zero.
 * Then W stored transposed, cut into panels of P output columns: panel p
 * holds Wt[k][p*P + j] = W[p*P + j][k] for k < n_in, j < P, with zeros in
 * the columns past n_out of the last panel.  Panels follow each other.
 *
 *   f32   panel p is P * n_in floats: element (k, j) at [k * P + j].  A
 *         column-major P x n_in matrix with lda = P: libxsmm's A operand.
 *   bf16  the same order, each value a uint16 (a float's top half, rounded
 *         to nearest even): panel p is P * n_in uint16.
 *   q8    Q8_0: the k range cut into blocks of RT_Q8_BLOCK; per block and
 *         column one float scale s = max|w| / 127 over the block's values
 *         and int8 values q = round(w / s), so w ~ q * s.  Panel p is
 *         ceil(n_in / RT_Q8_BLOCK) blocks, each P scales then RT_Q8_BLOCK
 *         rows of P int8 (row k - k0 at [(k - k0) * P + j]), rows past
 *         n_in zero.  A block is 9 * P floats' worth of bytes.
 * Every k step reads P contiguous elements in all three. */
#ifndef DSC_RT_PACK_H
#define DSC_RT_PACK_H

#include "rt_internal.h"

#define RT_PACK_HEADER RT_LINEAR_HEADER_FLOATS
#define RT_PACK_MAGIC 0x50435344u  /* "DSCP" */
#define RT_PANEL_MAX 64
#define RT_Q8_BLOCK 32

static inline int64_t rt_panels(int64_t n_out, int64_t P)
{
    return (n_out + P - 1) / P;
}

static inline int64_t rt_q8_blocks(int64_t n_in)
{
    return (n_in + RT_Q8_BLOCK - 1) / RT_Q8_BLOCK;
}

/* Bytes of one panel of an [n_out, n_in] weight in layout (past the
 * header; panel p starts p times this far in). */
static inline int64_t rt_panel_bytes(int layout, int64_t n_in)
{
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    switch (DSC_LAYOUT_FORMAT_OF(layout)) {
    case DSC_WEIGHTS_BF16: return P * n_in * 2;
    case DSC_WEIGHTS_Q8: return rt_q8_blocks(n_in) * P * (4 + RT_Q8_BLOCK);
    default: return P * n_in * 4;
    }
}

/* A packed weight's layout, or 0 if the header does not describe an
 * [n_out, n_in] weight in a layout this runtime knows. */
int rt_packed_layout(const float *packed, int64_t n_out, int64_t n_in);
/* Write the header (for weights packed outside rt_linear_pack). */
void rt_linear_pack_header(float *dst, int layout, int64_t n_out,
                           int64_t n_in);

/* Rows [k0, k0 + kc) of a panel in a reduced format, as floats:
 * dst[(k - k0) * P + j].  panel points at the panel's first byte; k0 is a
 * multiple of RT_Q8_BLOCK.  Inline so each ISA's kernels get their own
 * vectorized copy. */
RT_INLINE void rt_panel_to_f32(float *dst, const void *panel, int layout,
                               int64_t k0, int64_t kc)
{
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    if (DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_BF16) {
        const uint16_t *src = (const uint16_t *)panel + k0 * P;
        for (int64_t i = 0; i < kc * P; i++) {
            uint32_t u = (uint32_t)src[i] << 16;
            memcpy(&dst[i], &u, sizeof u);
        }
        return;
    }
    const int64_t block = P * (4 + RT_Q8_BLOCK);
    for (int64_t k = 0; k < kc; k += RT_Q8_BLOCK) {
        const char *b = (const char *)panel + (k0 + k) / RT_Q8_BLOCK * block;
        float scale[RT_PANEL_MAX];
        memcpy(scale, b, (size_t)P * sizeof(float));
        const int8_t *q = (const int8_t *)(b + P * 4);
        int64_t rows = kc - k < RT_Q8_BLOCK ? kc - k : RT_Q8_BLOCK;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < P; j++)
                dst[(k + r) * P + j] = (float)q[r * P + j] * scale[j];
    }
}

#endif
