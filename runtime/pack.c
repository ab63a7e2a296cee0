/* pack.c — linear weights into the runtime's packed layouts and back: the
 * panel widths, the three formats (float32, bfloat16, Q8_0) and the
 * header that travels with every weight (rt_pack.h documents them). */
#include "rt_pack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const layout_names[3][2] = {
    {"panel32", "panel64"},
    {"panel32-bf16", "panel64-bf16"},
    {"panel32-q8", "panel64-q8"},
};


int rt_layout_valid(int layout)
{
    int P = DSC_LAYOUT_PANEL_OF(layout), f = DSC_LAYOUT_FORMAT_OF(layout);
    return layout > 0 && (P == 32 || P == 64) && f >= DSC_WEIGHTS_F32 &&
           f <= DSC_WEIGHTS_Q8;
}


const char *rt_layout_name(int layout)
{
    if (!rt_layout_valid(layout))
        return "unknown";
    return layout_names[DSC_LAYOUT_FORMAT_OF(layout)]
                       [DSC_LAYOUT_PANEL_OF(layout) == 64];
}


const char *rt_format_name(int format)
{
    switch (format) {
    case DSC_WEIGHTS_F32: return "f32";
    case DSC_WEIGHTS_BF16: return "bf16";
    case DSC_WEIGHTS_Q8: return "q8";
    default: return "unknown";
    }
}


int rt_format_parse(const char *name)
{
    for (int f = DSC_WEIGHTS_F32; name && f <= DSC_WEIGHTS_Q8; f++)
        if (strcmp(name, rt_format_name(f)) == 0)
            return f;
    return -1;
}


int rt_isa_layout(int isa)
{
    return isa == DSC_ISA_AVX512 ? DSC_LAYOUT_PANEL64 : DSC_LAYOUT_PANEL32;
}


int64_t rt_linear_packed_floats(int64_t n_out, int64_t n_in, int layout)
{
    if (!rt_layout_valid(layout))
        layout = DSC_LAYOUT_PANEL64;
    int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    int64_t bytes = rt_panels(n_out, P) * rt_panel_bytes(layout, n_in);
    return RT_PACK_HEADER + (bytes + 63) / 64 * 16;
}


void rt_linear_pack_header(float *dst, int layout, int64_t n_out,
                           int64_t n_in)
{
    uint32_t hdr[RT_PACK_HEADER] = {RT_PACK_MAGIC, (uint32_t)layout,
                                    (uint32_t)n_out, (uint32_t)n_in};
    memcpy(dst, hdr, sizeof hdr);
}


int rt_packed_layout(const float *packed, int64_t n_out, int64_t n_in)
{
    uint32_t hdr[4];
    memcpy(hdr, packed, sizeof hdr);
    if (hdr[0] != RT_PACK_MAGIC || !rt_layout_valid((int)hdr[1]) ||
        hdr[2] != (uint32_t)n_out || hdr[3] != (uint32_t)n_in)
        return 0;
    return (int)hdr[1];
}


void rt_to_bf16(uint16_t *dst, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            dst[i] = (uint16_t)((u >> 16) | 0x40);  /* a quiet NaN */
        else
            dst[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}


/* W[n][k], or 0 past the matrix. */
static float w_at(const float *w, int64_t n_out, int64_t n_in, int64_t n,
                  int64_t k)
{
    return n < n_out && k < n_in ? w[n * n_in + k] : 0.0f;
}


/* One Q8_0 block of a panel: rows [k0, k0 + RT_Q8_BLOCK) of columns
 * [n0, n0 + P). */
static void pack_q8_block(char *dst, const float *w, int64_t n_out,
                          int64_t n_in, int64_t n0, int64_t k0, int64_t P)
{
    float *scale = (float *)dst;
    int8_t *q = (int8_t *)(dst + P * 4);
    for (int64_t j = 0; j < P; j++) {
        float amax = 0.0f;
        for (int64_t r = 0; r < RT_Q8_BLOCK; r++)
            amax = fmaxf(amax, fabsf(w_at(w, n_out, n_in, n0 + j, k0 + r)));
        float s = amax / 127.0f;
        scale[j] = s;
        for (int64_t r = 0; r < RT_Q8_BLOCK; r++) {
            float v = s > 0.0f ? w_at(w, n_out, n_in, n0 + j, k0 + r) / s
                               : 0.0f;
            /* |v| <= 127 up to rounding; NaN and Inf weights become 0. */
            v = isfinite(v) ? fminf(fmaxf(nearbyintf(v), -127.0f), 127.0f)
                            : 0.0f;
            q[r * P + j] = (int8_t)v;
        }
    }
}


void rt_linear_pack(float *dst, const float *w, int64_t n_out, int64_t n_in,
                    int layout)
{
    if (!rt_layout_valid(layout))
        layout = DSC_LAYOUT_PANEL64;
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    const int64_t panel_bytes = rt_panel_bytes(layout, n_in);
    const int format = DSC_LAYOUT_FORMAT_OF(layout);
    rt_linear_pack_header(dst, layout, n_out, n_in);
    char *body = (char *)(dst + RT_PACK_HEADER);
    for (int64_t p = 0; p < rt_panels(n_out, P); p++) {
        char *panel = body + p * panel_bytes;
        if (format == DSC_WEIGHTS_Q8) {
            for (int64_t b = 0; b < rt_q8_blocks(n_in); b++)
                pack_q8_block(panel + b * P * (4 + RT_Q8_BLOCK), w, n_out,
                              n_in, p * P, b * RT_Q8_BLOCK, P);
            continue;
        }
        for (int64_t k = 0; k < n_in; k++)
            for (int64_t j = 0; j < P; j++) {
                float v = w_at(w, n_out, n_in, p * P + j, k);
                if (format == DSC_WEIGHTS_BF16)
                    rt_to_bf16((uint16_t *)panel + k * P + j, &v, 1);
                else
                    ((float *)panel)[k * P + j] = v;
            }
    }
    /* The padding up to a whole cache line is zero, never garbage. */
    char *end = (char *)(dst + rt_linear_packed_floats(n_out, n_in, layout));
    char *used = body + rt_panels(n_out, P) * panel_bytes;
    memset(used, 0, (size_t)(end - used));
}


int rt_linear_unpack(float *w, const float *packed, int64_t n_out,
                     int64_t n_in)
{
    const int layout = rt_packed_layout(packed, n_out, n_in);
    if (!layout)
        return -1;
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    const int64_t panel_bytes = rt_panel_bytes(layout, n_in);
    const char *body = (const char *)(packed + RT_PACK_HEADER);
    float *rows = DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_F32
                      ? NULL : malloc((size_t)(n_in * P) * sizeof(float));
    if (DSC_LAYOUT_FORMAT_OF(layout) != DSC_WEIGHTS_F32 && !rows)
        return -1;
    for (int64_t p = 0; p < rt_panels(n_out, P); p++) {
        const char *panel = body + p * panel_bytes;
        const float *f = (const float *)panel;
        if (rows) {
            rt_panel_to_f32(rows, panel, layout, 0, n_in);
            f = rows;
        }
        for (int64_t j = 0; j < P && p * P + j < n_out; j++)
            for (int64_t k = 0; k < n_in; k++)
                w[(p * P + j) * n_in + k] = f[k * P + j];
    }
    free(rows);
    return 0;
}
