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

static float absmax_ref(const float *x, int n) {
    float a = 0;
    for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

/* quant_weight's element rule (emu.h, emu_quant_weight_row) */
void emu_quant_weight_row_ref(uint8_t *q, const float *w, int n, float s, emu_dtype fmt, int bf16) {
    float m = emu_dtype_max(fmt);
    for (int i = 0; i < n; i++) {
        float x = w[i] / s;
        if (bf16) x = emu_bf16_round(x);
        x = x + 0.0f;
        q[i] = emu_fp8_rne(emu_clamp_ct(x, -m, m), fmt);   /* torch.clamp: NaN passes, and encodes as 0x7F */
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* fp8.h's fp8_from_float_ocp_fast with SATFINITE on 16 lanes: the same integer steps, masks for its
 * selects (so the same bytes for every input, NaN and Inf included; tests/test_emu_quant.c). */
EMU_T_AVX512 static inline __m128i enc16(__m512 x, int e4) {
    const __m512i one = _mm512_set1_epi32(1), ms = _mm512_set1_epi32(e4 ? 20 : 21);
    __m512i u = _mm512_castps_si512(x), a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
    __m512i half = _mm512_sub_epi32(_mm512_sllv_epi32(one, _mm512_sub_epi32(ms, one)), one);
    __m512i normal = _mm512_srlv_epi32(_mm512_add_epi32(_mm512_add_epi32(a, half), _mm512_and_si512(_mm512_srlv_epi32(a, ms), one)), ms);
    normal = _mm512_sub_epi32(normal, _mm512_set1_epi32(e4 ? (127 - 7) << 3 : (127 - 15) << 2));
    const float magic = e4 ? 16384.0f : 128.0f;
    __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(magic))), _mm512_castps_si512(_mm512_set1_ps(magic)));
    __mmask16 is_normal = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(e4 ? 0x3C800000 : 0x38800000));
    __mmask16 is_big = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(e4 ? 0x43E80001 : 0x47700000));
    __mmask16 is_nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
    __m512i code = _mm512_mask_blend_epi32(is_normal, sub, normal);
    code = _mm512_or_si512(_mm512_mask_blend_epi32(is_big, code, _mm512_set1_epi32(e4 ? 0x7E : 0x7B)), sign);
    return _mm512_cvtepi32_epi8(_mm512_mask_blend_epi32(is_nan, code, _mm512_set1_epi32(0x7F)));
}
EMU_T_AVX512 static float absmax_avx512(const float *x, int n) {
    __m512 a = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) a = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), a);   /* NaN: keeps a, as fmaxf */
    float r = _mm512_reduce_max_ps(a);
    for (; i < n; i++) r = fmaxf(r, fabsf(x[i]));
    return r;
}
/* rule 0: vLLM per token, rne(fmaxf(-m, fminf(x / s, m))); rule 1: quant_weight's (emu_quant_weight_row) */
EMU_T_AVX512 static void encode_avx512(uint8_t *q, const float *x, int n, float s, emu_dtype fmt, int rule, int bf16) {
    int e4 = fmt == EMU_E4M3, i = 0;
    __m512 vs = _mm512_set1_ps(s), M = _mm512_set1_ps(emu_dtype_max(fmt)), nM = _mm512_set1_ps(-emu_dtype_max(fmt));
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), vs);
        if (rule == 0) v = _mm512_max_ps(_mm512_min_ps(v, M), nM);      /* MINPS returns M for a NaN v, as fminf */
        else {
            if (bf16) v = emu_bf16_round16(v);
            v = _mm512_add_ps(v, _mm512_setzero_ps());
            v = _mm512_min_ps(M, _mm512_max_ps(nM, v));                  /* MAXPS/MINPS return their 2nd operand for a NaN: NaN passes, as torch.clamp */
        }
        _mm_storeu_si128((__m128i *)(q + i), enc16(v, e4));
    }
    if (rule == 0) for (; i < n; i++) q[i] = emu_quant_code(EMU_Q_TOKEN, x[i] / s, fmt);
    else emu_quant_weight_row_ref(q + i, x + i, n - i, s, fmt, bf16);
}
EMU_T_AVX512 static void load_row_avx512(float *dst, const void *src, emu_dtype t, size_t i0, int n) {
    int i = 0;
    if (t == EMU_BF16)
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + i0 + i))), 16)));
    else if (t == EMU_F16)
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + i0 + i))));
    for (; i < n; i++) dst[i] = emu_load_el(src, t, i0 + i);
}
EMU_T_AVX512 static void bf16_round_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, emu_bf16_round16(_mm512_loadu_ps(x + i)));
    for (; i < n; i++) x[i] = emu_bf16_round(x[i]);
}
#define HAVE_AVX512_QUANT 1
#endif

void emu_bf16_round_n(float *x, size_t n) {
    size_t chunk = 1 << 16, nc = (n + chunk - 1) / chunk;
    #pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        float *p = x + c * chunk;
        size_t m = n - c * chunk < chunk ? n - c * chunk : chunk;
#ifdef HAVE_AVX512_QUANT
        if (emu_have_avx512()) { bf16_round_avx512(p, m); continue; }
#endif
        for (size_t i = 0; i < m; i++) p[i] = emu_bf16_round(p[i]);
    }
}

static float absmax_row(const float *x, int n) {
#ifdef HAVE_AVX512_QUANT
    if (emu_have_avx512()) return absmax_avx512(x, n);
#endif
    return absmax_ref(x, n);
}
float emu_absmax(const float *x, int n) { return absmax_row(x, n); }

void emu_quant_weight_row(uint8_t *q, const float *w, int n, float s, emu_dtype fmt, int bf16) {
#ifdef HAVE_AVX512_QUANT
    if (emu_have_avx512() && (fmt == EMU_E4M3 || fmt == EMU_E5M2)) { encode_avx512(q, w, n, s, fmt, 1, bf16); return; }
#endif
    emu_quant_weight_row_ref(q, w, n, s, fmt, bf16);
}

void emu_load_row(float *dst, const void *src, emu_dtype t, size_t i0, int n) {
#ifdef HAVE_AVX512_QUANT
    if (emu_have_avx512()) { load_row_avx512(dst, src, t, i0, n); return; }
#endif
    for (int i = 0; i < n; i++) dst[i] = emu_load_el(src, t, i0 + i);
}

void emu_quant_token(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K,
                     emu_dtype fmt, float scale_ub) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * ldx;
        float s = emu_quant_scale(EMU_Q_TOKEN, absmax_row(xr, K), fmt, scale_ub);
        scale[m] = s;
#ifdef HAVE_AVX512_QUANT
        if (emu_have_avx512() && (fmt == EMU_E4M3 || fmt == EMU_E5M2)) { encode_avx512(q + (size_t)m * ldq, xr, K, s, fmt, 0, 0); continue; }
#endif
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
