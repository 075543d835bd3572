/* emu/quant.c — FP8 / INT8 row quantization with the exact conventions of vLLM and
 * compressed-tensors (NUMERICS.md §3; contracts in emu/emu.h). Rows (or blocks) are independent, so
 * OpenMP over them cannot change a bit. */
#include <math.h>
#include "fp8.h"
#include "emu/emu.h"
#include "emu/emu_internal.h"

/* The formulas (scales, clamps, codes, the encoder) are emu/ops.h's, shared with the GPU kernels; the
 * loops here run them with the CPU's fast encoder (fp8_from_float_fast, vectorisable). */
float emu_fmax(emu_dtype fmt) { return emu_dtype_max(fmt); }
uint8_t emu_fp8_encode(float x, emu_dtype fmt) { return emu_fp8_encode_vllm(x, fmt); }

static float absmax_row(const float *x, int n) {
    float a = 0;
    for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

void emu_quant_token(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K,
                     emu_dtype fmt, float scale_ub) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * ldx;
        float s = emu_quant_scale(EMU_Q_TOKEN, absmax_row(xr, K), fmt, scale_ub);
        scale[m] = s;
        for (int k = 0; k < K; k++) q[(size_t)m * ldq + k] = emu_quant_code(EMU_Q_TOKEN, xr[k] / s, fmt);
    }
}

void emu_quant_tensor(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float s) {
    float inv = 1.0f / s;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) q[(size_t)m * ldq + k] = emu_quant_code(EMU_Q_TENSOR, x[(size_t)m * ldx + k] * inv, fmt);
}

float emu_quant_tensor_dynamic(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt) {
    float a = 0;                                     /* max is exact and order-free */
    #pragma omp parallel for schedule(static) reduction(max : a)
    for (int m = 0; m < M; m++) a = fmaxf(a, absmax_row(x + (size_t)m * ldx, K));
    float s = emu_quant_scale(EMU_Q_TENSOR, a, fmt, 0);
    emu_quant_tensor(q, ldq, x, ldx, M, K, fmt, s);
    return s;
}

void emu_quant_channel(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, emu_dtype fmt) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *wr = w + (size_t)n * ldw;
        float s = emu_quant_scale(EMU_Q_CHANNEL, absmax_row(wr, K), fmt, 0);
        scale[n] = s;
        for (int k = 0; k < K; k++) q[(size_t)n * ldq + k] = emu_quant_code(EMU_Q_CHANNEL, wr[k] / s, fmt);
    }
}

void emu_quant_group(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int G, emu_dtype fmt) {
    int ng = (K + G - 1) / G;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int g = 0; g < ng; g++) {
            const float *xr = x + (size_t)m * ldx + (size_t)g * G;
            int n = K - g * G < G ? K - g * G : G;
            float s = emu_quant_scale(EMU_Q_GROUP, absmax_row(xr, n), fmt, 0);
            scale[(size_t)m * ng + g] = s;
            for (int k = 0; k < n; k++) q[(size_t)m * ldq + (size_t)g * G + k] = emu_quant_code(EMU_Q_GROUP, xr[k] / s, fmt);
        }
}

void emu_quant_block(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, int BN, int BK, emu_dtype fmt) {
    int nbn = (N + BN - 1) / BN, nbk = (K + BK - 1) / BK;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < nbn; i++)
        for (int j = 0; j < nbk; j++) {
            int n0 = i * BN, n1 = n0 + BN < N ? n0 + BN : N, k0 = j * BK, k1 = k0 + BK < K ? k0 + BK : K;
            float a = 0;
            for (int n = n0; n < n1; n++) a = fmaxf(a, absmax_row(w + (size_t)n * ldw + k0, k1 - k0));
            float s = emu_quant_scale(EMU_Q_BLOCK, a, fmt, 0);
            scale[(size_t)i * nbk + j] = s;
            for (int n = n0; n < n1; n++)
                for (int k = k0; k < k1; k++) q[(size_t)n * ldq + k] = emu_quant_code(EMU_Q_BLOCK, w[(size_t)n * ldw + k] / s, fmt);
        }
}

void emu_quant_int8_token(int8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * ldx;
        float a = absmax_row(xr, K), inv = emu_i8_token_inv(a);
        scale[m] = emu_i8_token_scale(a);
        for (int k = 0; k < K; k++) q[(size_t)m * ldq + k] = emu_i8_code(xr[k] * inv);
    }
}

void emu_quant_int8_channel(int8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *wr = w + (size_t)n * ldw;
        float s = emu_ct_scale(absmax_row(wr, K), 127.5f);   /* range [-128, 127]: (127 - (-128)) / 2 */
        scale[n] = s;
        for (int k = 0; k < K; k++) q[(size_t)n * ldq + k] = emu_i8_code_ct(wr[k] / s);
    }
}
