/* emu/ops.h — per-element code shared by the CPU (llama_fp8.c, emu/) and the GPU (cuda_kernels.cu):
 * compiled as C by the CPU side and as __host__ __device__ code by nvcc, so a kernel's host twin and the
 * CPU reference are one source, not copies. Includes fp8.h and emu/emu.h (emu/models.h includes this).
 * Contents: formats and the FP8 encoder; the clamps and scale formulas of vLLM and compressed-tensors
 * (NUMERICS.md §3); element loads and bf16 rounding; the scaled GEMM's epilogue; the FP8 KV cache
 * round trip; ppl's per-row statistics. */
#ifndef EMU_OPS_H
#define EMU_OPS_H
#include <float.h>
#include <math.h>
#include <stdint.h>
#include "fp8.h"
#include "emu/emu.h"
#ifdef __CUDACC__
#define EMU_HD __host__ __device__ static inline
#define EMU_HD_NOINLINE __host__ __device__ __noinline__ static
#else
#define EMU_HD static inline
#define EMU_HD_NOINLINE static
#endif

/* ---- formats and the FP8 encoder ---- */
EMU_HD fp8_format emu_fp8_format(emu_dtype t) { return t == EMU_E5M2 ? FP8_E5M2 : FP8_E4M3; }
/* largest finite value: 448 (E4M3), 57344 (E5M2); 127 for EMU_I8 (vLLM's int8 range ±127) */
EMU_HD float emu_dtype_max(emu_dtype t) { return t == EMU_E4M3 ? 448.0f : t == EMU_E5M2 ? 57344.0f : 127.0f; }

/* The one FP8 encoder of the project (fp8.h): RNE, SATFINITE, CUDA __nv_cvt_float_to_fp8 semantics
 * (NaN → 0x7F). The CPU runs the branch-free fp8_from_float_fast (it vectorises), nvcc the generic
 * fp8_from_float: fp8.h checks that the two agree on all 2^32 inputs, so the choice changes no bit. */
EMU_HD uint8_t emu_fp8_rne(float x, emu_dtype t) {
#ifdef __CUDACC__
    return fp8_from_float(x, emu_fp8_format(t), FP8_SATFINITE);
#else
    return fp8_from_float_fast(x, emu_fp8_format(t), FP8_SATFINITE);
#endif
}
EMU_HD float emu_fp8_value(uint8_t v, emu_dtype t) { return fp8_to_float(v, emu_fp8_format(t)); }   /* exact */

/* ---- the clamps (each tool's operand order decides where a NaN goes) ---- */
/* vLLM's clamp, operand order included: fmaxf(-max, fminf(x, max)), so NaN becomes +max (C and CUDA
 * fminf return the non-NaN operand). */
EMU_HD float emu_clamp_vllm(float v, float m) { return fmaxf(-m, fminf(v, m)); }
/* vLLM per_token_group_quant.cu (QuantizeGroup) clamps the other way round: fminf(fmaxf(x, -max), max),
 * so there a NaN becomes -max. */
EMU_HD float emu_clamp_vllm_group(float v, float m) { return fminf(fmaxf(v, -m), m); }
/* compressed-tensors 0.20 (calculate_qparams + _quantize + round_to_quantized_type_args): torch.clamp
 * lets NaN through. */
EMU_HD float emu_clamp_ct(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* emu_fp8_encode: fp8.h RNE of vLLM's clamp fmaxf(-fmax, fminf(x, fmax)): NaN → +fmax. */
EMU_HD uint8_t emu_fp8_encode_vllm(float x, emu_dtype t) { return emu_fp8_rne(emu_clamp_vllm(x, emu_dtype_max(t)), t); }

/* ---- row quantization (emu/quant.c, the GPU's quantization kernels and their host twins) ----
 * A "tile" is the set of elements sharing one scale: a row (token, channel), a 1×G group, a BN×BK block,
 * the whole matrix. Its scale comes from its absmax by the rule, and each element's code from v = x / s
 * (per tensor: x · (1.0f / s), as vLLM) under the rule's clamp. */
enum { EMU_Q_TOKEN, EMU_Q_CHANNEL, EMU_Q_GROUP, EMU_Q_BLOCK, EMU_Q_TENSOR };

/* compressed-tensors: the scale of a group whose absmax is a: a / (range / 2), and a zero scale becomes
 * fp32 eps. half_range: fmax for FP8, 127.5 for INT8 (range [-128, 127]: (127 - (-128)) / 2). */
EMU_HD float emu_ct_scale(float a, float half_range) {
    float s = a / half_range;
    return s == 0 ? FLT_EPSILON : s;
}
/* param: the per-token scale_ub (> 0: used), else unused. */
EMU_HD float emu_quant_scale(int rule, float absmax, emu_dtype t, float param) {
    float fmax = emu_dtype_max(t);
    switch (rule) {
    case EMU_Q_TOKEN: {   /* vLLM dynamic per token: s = max(min(a, ub) / fmax, 1 / (fmax·512)) */
        float smin = 1.0f / (fmax * 512.0f), a = absmax;
        if (param > 0) a = fminf(a, param);
        return fmaxf(a / fmax, smin);
    }
    case EMU_Q_GROUP: return fmaxf(absmax, 1e-10f) / fmax;    /* vLLM per_token_group_quant_fp8 */
    case EMU_Q_TENSOR: return absmax / fmax;                   /* vLLM dynamic per tensor: no floor */
    default: return emu_ct_scale(absmax, fmax);                /* channel, block (compressed-tensors 0.20) */
    }
}
/* The code of v = x / s under each rule's clamp: vLLM per token and per tensor fmaxf(-m, fminf(v, m))
 * (NaN → +max); vLLM groups fminf(fmaxf(v, -m), m) (NaN → −max); compressed-tensors torch.clamp of
 * v + 0 (`scaled += zero_point`, a zero, turns −0 into +0 before the cast; NaN stays NaN → 0x7F). */
EMU_HD uint8_t emu_quant_code(int rule, float v, emu_dtype t) {
    float m = emu_dtype_max(t);
    switch (rule) {
    case EMU_Q_CHANNEL: case EMU_Q_BLOCK: return emu_fp8_rne(emu_clamp_ct(v + 0.0f, -m, m), t);
    case EMU_Q_GROUP: return emu_fp8_rne(emu_clamp_vllm_group(v, m), t);
    default: return emu_fp8_rne(emu_clamp_vllm(v, m), t);
    }
}

/* vLLM dynamic_scaled_int8_quant (emu_quant_int8_token): s = a / 127, q = rne(x · (127 / a)) within
 * ±127, a zero row gives s = 0 and q = 0. */
EMU_HD float emu_i8_token_scale(float absmax) { return absmax / 127.0f; }
EMU_HD float emu_i8_token_inv(float absmax) { return absmax > 0 ? 127.0f / absmax : 0.0f; }
/* nearbyintf rounds half to even in the default mode; a NaN product gives 0 (what x86's conversion of
 * the C cast gave before: undefined in C). */
EMU_HD int8_t emu_i8_code(float v) {
    if (v != v) return 0;
    v = nearbyintf(v);
    return (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
}
/* compressed-tensors INT8 channel weights: rne(torch.clamp(v + 0, -128, 127)) */
EMU_HD int8_t emu_i8_code_ct(float v) { return (int8_t)nearbyintf(emu_clamp_ct(v + 0.0f, -128.0f, 127.0f)); }

/* FP8 KV cache (forward()'s kv_store, vLLM --kv-cache-dtype fp8): the value attention reads back,
 * fp8(x / s) · s in fp32 (before the activation dtype's rounding). */
EMU_HD float emu_kv_roundtrip(float x, emu_dtype kv, float s) { return emu_fp8_value(emu_fp8_encode_vllm(x / s, kv), kv) * s; }

/* ---- element loads and bf16 ---- */
/* Exact conversion of one stored element (any emu_dtype) to fp32 (emu_load). */
EMU_HD float emu_load_el(const void *p, emu_dtype t, size_t i) {
    switch (t) {
    case EMU_BF16: return bf16_to_float(((const uint16_t *)p)[i]);
    case EMU_F16: return fp16_to_float(((const uint16_t *)p)[i]);
    case EMU_E4M3: case EMU_E5M2: return emu_fp8_value(((const uint8_t *)p)[i], t);
    case EMU_I8: return (float)((const int8_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}
/* x rounded to bf16 and back (fp8.h bf16_from_float: RNE; the activation rounding of bf16 schemes) */
EMU_HD float emu_bf16_round(float x) { return bf16_to_float(bf16_from_float(x)); }
/* The GEMM's BF16 output, as torch .to(bfloat16): RNE, NaN stays a quiet NaN: (bits >> 16) | 0x40. */
EMU_HD uint16_t emu_bf16_rne(float f) {
    uint32_t u = fp8_f32_bits(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/* ---- 4-bit and microscaling groups: llm-compressor's W4A16, NVFP4, MXFP4, MXFP8 presets (llama_fp8.c's header
 * comment of wf_quant_row has the rules and their sources). The weights' codes and scales (llama_fp8.c), and the
 * quantize-dequantize of the nvfp4 / mxfp4 / mxfp8 activations on the CPU (act_qdq) and the GPU (k_act_qdq). ---- */
typedef enum { WF_INT4, WF_NVFP4, WF_MXFP4, WF_MXFP8, N_WF } wformat;
EMU_HD int emu_wf_group(wformat f) { return f == WF_INT4 ? 128 : f == WF_NVFP4 ? 16 : 32; }
/* The E8M0 code of an MX group with absmax a (a bf16 value), for elements whose largest power of two is 2^offset. */
EMU_HD int emu_mx_scale_code(float a, int offset) {
    uint16_t b = (uint16_t)((bf16_from_float(a) + 0x20) & 0xFF80);   /* round_to_power_2: bf16 bits + 2^5, sign|exponent */
    if ((b & 0x7F80) == 0) return 0;                                  /* 0 (or a subnormal power): log2 -> very negative */
    int e = ((b >> 7) & 0xFF) - 127 - offset + 127;
    return e < 0 ? 0 : e > 255 ? 255 : e;
}
EMU_HD float emu_int4_scale(float mn, float mx) {   /* calculate_qparams, symmetric INT4, bf16 */
    float s = emu_bf16_round(fmaxf(-fminf(mn, 0.0f), fmaxf(mx, 0.0f)) / 7.5f);
    return s == 0 ? 0.0078125f : s;
}
EMU_HD void emu_int4_codes(const float *x, int n, float s, uint8_t *o) {
    for (int k = 0; k < n; k++) o[k] = (uint8_t)(int8_t)rintf(fminf(fmaxf(emu_bf16_round(x[k] / s) + 0.0f, -8.0f), 7.0f));
}
/* One group of emu_wf_group(f) values (bf16 values as floats) into codes o (one per byte: INT4 as int8, E2M1 in the low
 * nibble with sign bit 0x8, E4M3); returns the group's scale (its float value); g: NVFP4's global scale. */
EMU_HD float emu_wf_quant_group(wformat f, const float *x, float g, uint8_t *o) {
    int G = emu_wf_group(f);
    float a = 0;
    for (int k = 0; k < G; k++) a = fmaxf(a, fabsf(x[k]));
    if (f == WF_INT4) {
        float s = emu_int4_scale(-a, a);
        emu_int4_codes(x, G, s, o);
        return s;
    }
    if (f == WF_NVFP4) {
        float v = g * emu_bf16_round(a / 6.0f);
        float s = fp8_to_float(fp8_from_float(fminf(fmaxf(v, -448.0f), 448.0f), FP8_E4M3, FP8_SATFINITE), FP8_E4M3);
        if (s == 0) s = 0.125f;
        float e = s / g;
        for (int k = 0; k < G; k++) o[k] = fp8_from_float(fminf(fmaxf(x[k] / e + 0.0f, -6.0f), 6.0f), FP4_E2M1, FP8_SATFINITE);
        return s;
    }
    int mx8 = f == WF_MXFP8;
    float s = ldexpf(1.0f, emu_mx_scale_code(a, mx8 ? 8 : 2) - 127), lim = mx8 ? 448.0f : 6.0f;
    for (int k = 0; k < G; k++)
        o[k] = fp8_from_float(fminf(fmaxf(emu_bf16_round(x[k] / s) + 0.0f, -lim), lim), mx8 ? FP8_E4M3 : FP4_E2M1, FP8_SATFINITE);
    return s;
}
EMU_HD float emu_wf_code_value(wformat f, uint8_t c) {
    return f == WF_INT4 ? (float)(int8_t)c : fp8_to_float(c, f == WF_MXFP8 ? FP8_E4M3 : FP4_E2M1);
}
/* dequantized into bf16 as compressed-tensors' decompression and vLLM's emulation do: B(q * s), B(q * (s / g)) (NVFP4) */
EMU_HD uint16_t emu_wf_dequant(wformat f, uint8_t c, float s, float g) {
    return bf16_from_float(f == WF_NVFP4 ? emu_wf_code_value(f, c) * (s / g) : emu_wf_code_value(f, c) * s);
}
/* The activations' quantize-dequantize of one group, in place (nvfp4, mxfp4, mxfp8: G <= 32). */
EMU_HD void emu_wf_qdq_group(wformat f, float *x, float g) {
    uint8_t c[32];
    if (emu_wf_group(f) > 32) return;   /* not an activation format */
    float s = emu_wf_quant_group(f, x, g, c);
    for (int k = 0; k < emu_wf_group(f); k++) x[k] = bf16_to_float(emu_wf_dequant(f, c[k], s, g));
}

/* ---- the scaled GEMM's epilogue (emu_gemm_ref, emu_gemm's fast driver, every GPU GEMM kernel) ----
 * plain (no block scales): t = fp32(s_b·acc), r = fp32(s_a·t).
 * block scales (emu_epi_groups = number of 128-groups of k, else 0): r = 0; for each group in order
 * r = fp32(r + emu_epi_group(...)), where emu_epi_group = fp32(fp32(acc_g·s_a)·s_b). Then emu_epi_store. */
typedef struct { emu_scale a_kind, b_kind; const float *a_scale, *b_scale; int K; } emu_epi;
EMU_HD emu_epi emu_epi_of(const emu_gemm_desc *g) {
    emu_epi e = {g->a_scale_kind, g->b_scale_kind, g->a_scale, g->b_scale, g->K};
    return e;
}
EMU_HD int emu_epi_groups(const emu_epi *e) {
    return (e->a_kind == EMU_SCALE_BLOCK || e->b_kind == EMU_SCALE_BLOCK) ? (e->K + EMU_BLOCK - 1) / EMU_BLOCK : 0;
}
/* scale of row i (group g of nk for BLOCK); kind ONE is 1, pointer unused */
EMU_HD float emu_scale_at(emu_scale kind, const float *s, int i, int nk, int g) {
    switch (kind) {
    case EMU_SCALE_TENSOR: return s[0];
    case EMU_SCALE_ROW: return s[i];
    case EMU_SCALE_BLOCK: return s[(size_t)i * nk + g];
    default: return 1.0f;
    }
}
EMU_HD float emu_epi_plain(const emu_epi *e, int m, int n, float acc) {
    float t = emu_scale_at(e->b_kind, e->b_scale, n, 0, 0) * acc;
    return emu_scale_at(e->a_kind, e->a_scale, m, 0, 0) * t;
}
EMU_HD float emu_epi_group(const emu_epi *e, int m, int n, int gi, float acc) {
    int nk = (e->K + EMU_BLOCK - 1) / EMU_BLOCK;
    float t = acc * emu_scale_at(e->a_kind, e->a_scale, m, nk, gi);
    return t * emu_scale_at(e->b_kind, e->b_scale, e->b_kind == EMU_SCALE_BLOCK ? n / EMU_BLOCK : n, nk, gi);
}
/* D[m][n] = r: fp32, or BF16 by emu_bf16_rne */
EMU_HD void emu_epi_store(void *D, emu_dtype td, size_t ldd, int m, int n, float r) {
    if (td == EMU_BF16) ((uint16_t *)D)[(size_t)m * ldd + n] = emu_bf16_rne(r);
    else ((float *)D)[(size_t)m * ldd + n] = r;
}

/* ---- ppl ----
 * Perplexity statistics of one row of V logits (double, index order, libm exp / log — the CPU's ppl and
 * the GPU path's host twin; the GPU kernel sums in a tree order instead):
 *   returns log p(target) = l[target] − m − log Σ exp(l[i] − m), m the row's max;
 *   *arg = the first maximal index (from element 0 with l[i] > m: a NaN at index 0 stays the max);
 *   with a base row lb, *kld = KLD(base || row) = Σ p_b[i] (log p_b[i] − log p[i]) (else left as is). */
EMU_HD double emu_ppl_row(const float *lq, const float *lb, long V, int target, int *arg, double *kld) {
    float mq = lq[0];
    int aq = 0;
    for (long i = 1; i < V; i++) if (lq[i] > mq) { mq = lq[i]; aq = (int)i; }
    double zq = 0;
    for (long i = 0; i < V; i++) zq += exp((double)lq[i] - mq);
    double lzq = log(zq);
    *arg = aq;
    if (lb) {
        float mb = lb[0];
        for (long i = 1; i < V; i++) if (lb[i] > mb) mb = lb[i];
        double zb = 0;
        for (long i = 0; i < V; i++) zb += exp((double)lb[i] - mb);
        double lzb = log(zb), k = 0;
        for (long i = 0; i < V; i++) {
            double lpb_i = (double)lb[i] - mb - lzb, lpq_i = (double)lq[i] - mq - lzq;
            k += exp(lpb_i) * (lpb_i - lpq_i);
        }
        *kld = k;
    }
    return (double)lq[target] - mq - lzq;
}
#endif
