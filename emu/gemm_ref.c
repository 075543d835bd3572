/* emu/gemm_ref.c — plain reference kernels: the _ref twins every fast path is tested against, and the
 * accumulation models themselves. No processor-specific code here; one loop nest per kernel, in the
 * documented order (see emu/emu.h for the contract of every function). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fp8.h"
#include "emu/emu.h"
#include "emu/emu_internal.h"


/* ---- element decoding (all exact; emu/ops.h) ---- */
float emu_fp8_decode(uint8_t v, emu_dtype fmt) { return emu_fp8_value(v, fmt); }

/* 256-entry decode tables, filled once (thread-safe) before any kernel reads them. */
const float *emu_fp8_table(emu_dtype fmt) {
    static float tab[2][256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        #pragma omp critical(emu_fp8_table)
        if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
            for (int c = 0; c < 256; c++) { tab[0][c] = emu_fp8_decode((uint8_t)c, EMU_E4M3); tab[1][c] = emu_fp8_decode((uint8_t)c, EMU_E5M2); }
            __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
        }
    }
    return tab[fmt == EMU_E5M2];
}

float emu_load(const void *p, emu_dtype t, size_t i) { return emu_load_el(p, t, i); }

/* D[m][n] = fmaf-chain over k = 0..K-1 (see emu.h). */
void emu_gemm_f32_ref(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                      size_t ldb, float *D, size_t ldd) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        for (int m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc = fmaf(A[(size_t)m * lda + k], emu_load(B, btype, (size_t)n * ldb + k), acc);
            D[(size_t)m * ldd + n] = acc;
        }
    }
}

/* ---- accumulation models on one dot product of decoded values a[0..K), b[0..K) ---- */
const char *const emu_accum_names[EMU_ACC_COUNT] = {"exact", "fp32", "hopper", "ada", "cublaslt", "fast"};

int emu_accum_from_name(const char *name) {
    for (int i = 0; i < EMU_ACC_COUNT; i++)
        if (name && !strcmp(name, emu_accum_names[i])) return i;
    return -1;
}

/* exact: every E4M3 value is an integer multiple of 2^-9, every E5M2 value of 2^-16 (INT8: of 1). Scaled
 * to integers they fit 32 bits (57344·2^16 < 2^32), a product fits 64 bits (multiplied in 128), and the
 * sum of K < 2^31 products fits 128 bits. Integer addition is associative: the result cannot depend on
 * order. One conversion to fp32 (correctly rounded, RNE) and an exact power-of-two scaling finish it
 * (the smallest nonzero |sum| is 2^-32, far from fp32 subnormals). Non-finite inputs: IEEE sum. */
#include "emu/models.h"   /* fixed_shift, dot_exact, tc_block, dot_tc, dot_model */

/* ---- the scaled GEMM ---- */
const char *emu_gemm_check(const emu_gemm_desc *g) {
    int fp8a = g->a_type == EMU_E4M3 || g->a_type == EMU_E5M2, fp8b = g->b_type == EMU_E4M3 || g->b_type == EMU_E5M2;
    if (g->M < 0 || g->N < 0 || g->K < 0) return "negative GEMM dimension";
    if (g->d_type != EMU_F32 && g->d_type != EMU_BF16) return "output must be F32 or BF16";
    if (g->a_type == EMU_I8 || g->b_type == EMU_I8) {
        if (g->a_type != EMU_I8 || g->b_type != EMU_I8) return "INT8 GEMM needs INT8 A and B";
        if (g->a_scale_kind == EMU_SCALE_BLOCK || g->b_scale_kind == EMU_SCALE_BLOCK) return "INT8 GEMM has no block scales";
        return NULL;
    }
    if (g->a_type == EMU_F32) {
        if (g->accum != EMU_ACC_FP32 && g->accum != EMU_ACC_FAST) return "fp32 activations (weight-only) need --accum fp32 or fast";
        if (g->b_type == EMU_I8) return "unsupported B type";
        return NULL;
    }
    if (!fp8a || !fp8b) return "A and B must be E4M3/E5M2 (or A fp32 for weight-only, or both INT8)";
    if ((g->accum == EMU_ACC_HOPPER || g->accum == EMU_ACC_ADA || g->accum == EMU_ACC_CUBLASLT) && g->a_type != g->b_type)
        return "tensor-core models need A and B in the same FP8 format";
    if (g->accum < 0 || g->accum >= EMU_ACC_COUNT) return "unknown accumulation model";
    return NULL;
}

float emu_dot_model(const float *a, const float *b, int K, emu_accum acc, emu_dtype ta, emu_dtype tb) {
    return dot_model(a, b, K, acc, ta, tb);
}

void emu_gemm_ref(const emu_gemm_desc *g) {
    const char *why = emu_gemm_check(g);
    if (why) { fprintf(stderr, "llama_fp8: emu_gemm: %s\n", why); exit(1); }
    int M = g->M, N = g->N, K = g->K;
    emu_epi e = emu_epi_of(g);   /* the epilogue: emu/ops.h */
    int ng = emu_epi_groups(&e);
    float *Ad = malloc(sizeof(float) * ((size_t)M * K + 1));   /* A decoded once, exactly */
    if (!Ad) { fprintf(stderr, "llama_fp8: out of memory in emu_gemm_ref\n"); exit(1); }
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) Ad[(size_t)m * K + k] = emu_load(g->A, g->a_type, (size_t)m * g->lda + k);
    #pragma omp parallel
    {
        float *b = malloc(sizeof(float) * (K + 1));
        if (!b) { fprintf(stderr, "llama_fp8: out of memory in emu_gemm_ref\n"); exit(1); }
        #pragma omp for schedule(dynamic, 1)
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < K; k++) b[k] = emu_load(g->B, g->b_type, (size_t)n * g->ldb + k);
            for (int m = 0; m < M; m++) {
                const float *a = Ad + (size_t)m * K;
                float r = 0;
                if (!ng) r = emu_epi_plain(&e, m, n, dot_model(a, b, K, g->accum, g->a_type, g->b_type));
                for (int gi = 0; gi < ng; gi++) {   /* block scales: groups of 128 k, summed in order */
                    int k0 = gi * EMU_BLOCK, kn = K - k0 < EMU_BLOCK ? K - k0 : EMU_BLOCK;
                    r = r + emu_epi_group(&e, m, n, gi, dot_model(a + k0, b + k0, kn, g->accum, g->a_type, g->b_type));
                }
                emu_epi_store(g->D, g->d_type, g->ldd, m, n, r);
            }
        }
        free(b);
    }
    free(Ad);
}
