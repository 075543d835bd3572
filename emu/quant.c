/* emu/quant.c — FP8 / INT8 row quantization with the exact conventions of vLLM and
 * compressed-tensors (NUMERICS.md §3; contracts in emu/emu.h). Rows (or blocks) are independent, so
 * OpenMP over them cannot change a bit. */
#include <float.h>
#include <math.h>
#include "fp8.h"
#include "emu/emu.h"
#include "emu/emu_internal.h"

float emu_fmax(emu_dtype fmt) { return fmt == EMU_E4M3 ? 448.0f : fmt == EMU_E5M2 ? 57344.0f : 127.0f; }

/* The one FP8 encoder of the project (fp8.h): RNE, CUDA __nv_cvt_float_to_fp8 semantics. */
uint8_t emu_fp8_encode(float x, emu_dtype fmt) {
    float m = emu_fmax(fmt);
    return fp8_from_float_fast(fmaxf(-m, fminf(x, m)), fmt == EMU_E5M2 ? FP8_E5M2 : FP8_E4M3, FP8_SATFINITE);
}

/* vLLM's clamp, operand order included: fmaxf(-max, fminf(x, max)), so NaN becomes +max (C and CUDA
 * fminf return the non-NaN operand). The encoders below see only finite values. */
static float clampf(float v, float m) { return fmaxf(-m, fminf(v, m)); }
/* vLLM per_token_group_quant.cu (QuantizeGroup) clamps the other way round: fminf(fmaxf(x, -max), max),
 * so there a NaN becomes -max. */
static float clampf_group(float v, float m) { return fminf(fmaxf(v, -m), m); }

/* compressed-tensors 0.20 (calculate_qparams + _quantize + round_to_quantized_type_args): torch.clamp
 * lets NaN through, and `scaled += zero_point` (a zero) turns −0 into +0 before the cast. */
static float ct_clamp(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static uint8_t ct_fp8(float scaled, emu_dtype fmt) {
    float m = emu_fmax(fmt);
    return fp8_from_float_fast(ct_clamp(scaled + 0.0f, -m, m), fmt == EMU_E5M2 ? FP8_E5M2 : FP8_E4M3, FP8_SATFINITE);
}
/* the scale of a group whose absmax is a: a / (range / 2), and a zero scale becomes fp32 eps */
static float ct_scale(float a, float half_range) {
    float s = a / half_range;
    return s == 0 ? FLT_EPSILON : s;
}

static float absmax_row(const float *x, int n) {
    float a = 0;
    for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

void emu_quant_token(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K,
                     emu_dtype fmt, float scale_ub) {
    float fmax = emu_fmax(fmt), smin = 1.0f / (fmax * 512.0f);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * ldx;
        float a = absmax_row(xr, K);
        if (scale_ub > 0) a = fminf(a, scale_ub);
        float s = fmaxf(a / fmax, smin);
        scale[m] = s;
        for (int k = 0; k < K; k++) q[(size_t)m * ldq + k] = emu_fp8_encode(clampf(xr[k] / s, fmax), fmt);
    }
}

void emu_quant_tensor(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float s) {
    float fmax = emu_fmax(fmt), inv = 1.0f / s;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) q[(size_t)m * ldq + k] = emu_fp8_encode(clampf(x[(size_t)m * ldx + k] * inv, fmax), fmt);
}

float emu_quant_tensor_dynamic(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt) {
    float a = 0;                                     /* max is exact and order-free */
    #pragma omp parallel for schedule(static) reduction(max : a)
    for (int m = 0; m < M; m++) a = fmaxf(a, absmax_row(x + (size_t)m * ldx, K));
    float s = a / emu_fmax(fmt);
    emu_quant_tensor(q, ldq, x, ldx, M, K, fmt, s);
    return s;
}

void emu_quant_channel(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, emu_dtype fmt) {
    float fmax = emu_fmax(fmt);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *wr = w + (size_t)n * ldw;
        float s = ct_scale(absmax_row(wr, K), fmax);
        scale[n] = s;
        for (int k = 0; k < K; k++) q[(size_t)n * ldq + k] = ct_fp8(wr[k] / s, fmt);
    }
}

void emu_quant_group(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int G, emu_dtype fmt) {
    float fmax = emu_fmax(fmt);
    int ng = (K + G - 1) / G;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int g = 0; g < ng; g++) {
            const float *xr = x + (size_t)m * ldx + (size_t)g * G;
            int n = K - g * G < G ? K - g * G : G;
            float s = fmaxf(absmax_row(xr, n), 1e-10f) / fmax;
            scale[(size_t)m * ng + g] = s;
            for (int k = 0; k < n; k++) q[(size_t)m * ldq + (size_t)g * G + k] = emu_fp8_encode(clampf_group(xr[k] / s, fmax), fmt);
        }
}

void emu_quant_block(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, int BN, int BK, emu_dtype fmt) {
    float fmax = emu_fmax(fmt);
    int nbn = (N + BN - 1) / BN, nbk = (K + BK - 1) / BK;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < nbn; i++)
        for (int j = 0; j < nbk; j++) {
            int n0 = i * BN, n1 = n0 + BN < N ? n0 + BN : N, k0 = j * BK, k1 = k0 + BK < K ? k0 + BK : K;
            float a = 0;
            for (int n = n0; n < n1; n++) a = fmaxf(a, absmax_row(w + (size_t)n * ldw + k0, k1 - k0));
            float s = ct_scale(a, fmax);
            scale[(size_t)i * nbk + j] = s;
            for (int n = n0; n < n1; n++)
                for (int k = k0; k < k1; k++) q[(size_t)n * ldq + k] = ct_fp8(w[(size_t)n * ldw + k] / s, fmt);
        }
}

static int8_t i8_rne(float v) {       /* nearbyintf rounds half to even in the default mode */
    v = nearbyintf(v);
    return (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
}

void emu_quant_int8_token(int8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * ldx;
        float a = absmax_row(xr, K);
        scale[m] = a / 127.0f;
        float inv = a > 0 ? 127.0f / a : 0.0f;
        for (int k = 0; k < K; k++) q[(size_t)m * ldq + k] = i8_rne(xr[k] * inv);
    }
}

void emu_quant_int8_channel(int8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *wr = w + (size_t)n * ldw;
        float s = ct_scale(absmax_row(wr, K), 127.5f);   /* range [-128, 127]: (127 - (-128)) / 2 */
        scale[n] = s;
        for (int k = 0; k < K; k++) q[(size_t)n * ldq + k] = (int8_t)nearbyintf(ct_clamp(wr[k] / s + 0.0f, -128.0f, 127.0f));
    }
}
