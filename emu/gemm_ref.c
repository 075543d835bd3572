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

/* No contraction of a·b + c into fma behind our back (GCC's default in GNU C mode with FMA targets):
 * every rounding written here is one the model performs. */
#pragma GCC optimize("fp-contract=off")

/* ---- element decoding (all exact) ---- */
float emu_fp8_decode(uint8_t v, emu_dtype fmt) { return fp8_to_float(v, fmt == EMU_E5M2 ? FP8_E5M2 : FP8_E4M3); }

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

float emu_load(const void *p, emu_dtype t, size_t i) {
    switch (t) {
    case EMU_BF16: return bf16_to_float(((const uint16_t *)p)[i]);
    case EMU_F16: return fp16_to_float(((const uint16_t *)p)[i]);
    case EMU_E4M3: case EMU_E5M2: return emu_fp8_decode(((const uint8_t *)p)[i], t);
    case EMU_I8: return (float)((const int8_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}

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
static int fixed_shift(emu_dtype t) { return t == EMU_E4M3 ? 9 : t == EMU_E5M2 ? 16 : 0; }

static float dot_exact(const float *a, const float *b, int K, emu_dtype ta, emu_dtype tb) {
    __int128 sum = 0;
    int sa = fixed_shift(ta), sb = fixed_shift(tb);
    for (int k = 0; k < K; k++) {
        if (!isfinite(a[k]) || !isfinite(b[k])) {
            double d = 0;
            for (int j = 0; j < K; j++) d += (double)a[j] * b[j];
            return (float)d;
        }
        int64_t ia = (int64_t)ldexpf(a[k], sa), ib = (int64_t)ldexpf(b[k], sb);  /* exact integers */
        sum += (__int128)ia * ib;
    }
    /* __int128 → float: split so that the one rounding is done by the hardware conversion of an
     * int64 carrying a sticky bit (correct RNE for any magnitude). */
    int neg = sum < 0;
    unsigned __int128 u = neg ? -(unsigned __int128)sum : (unsigned __int128)sum;
    int sh = 0;
    while ((u >> sh) >> 62) sh++;                      /* make it fit 62 bits, keep a sticky bit */
    uint64_t top = (uint64_t)(u >> sh) | (sh && (u & (((unsigned __int128)1 << sh) - 1)) ? 1 : 0);
    float f = ldexpf((float)top, sh - sa - sb);       /* 62 bits with sticky → float: single RNE */
    return neg ? -f : f;
}

/* NVIDIA FP8 tensor-core block FMA (Khattak & Mikaitis, arXiv:2512.07004; parameters of their
 * H100TC.m / AdaTC.m for FP8 input, fp32 output: neab = -10, truncation, no sticky bit, global
 * alignment of products and c, subnormals kept, final round toward zero to 23 + neab = 13 fraction
 * bits). Returns the new accumulator for d = c + Σ_{i<n} a_i b_i. Our reading of their model:
 *  1. zero products drop out; nothing left and c == 0 → +0.
 *  2. each product: exponents of a and b clamped below at the input format's emin (-6 E4M3, -14 E5M2),
 *     significands sa, sb in [0,2); product significand sa·sb in [0,4) at exponent ea+eb.
 *  3. carry bit: granted when the largest product exponent (before normalising) is ≥ c's exponent and
 *     that product's significand is ≥ 2. Products with significand ≥ 2 are then normalised (>>1, e+1).
 *  4. c (fp32): significand as a 24-bit integer, exponent (-126 for subnormals).
 *  5. all significands as integers with 23 fraction bits are shifted right by 10 (9 with the carry bit),
 *     then right by (maxexp − e_i), truncating — 13 (14) fraction bits survive relative to maxexp.
 *  6. exact signed integer sum; normalise; truncate to 13 fraction bits (subnormal below 2^-126). */
static float tc_block(const float *a, const float *b, int n, float c, int emin_in) {
    enum { NONE = -100000 };                        /* exponent of a zero product: never the maximum */
    int e[65], epre[65], two[65], sg[65], cnt = n, maxpre = NONE, carry_sig = 0, any = 0;
    uint32_t sig[65];
    for (int i = 0; i < n; i++) {                   /* written without branches: it is the hot loop */
        uint32_t ua, ub;
        memcpy(&ua, &a[i], 4); memcpy(&ub, &b[i], 4);
        int zero = (ua & 0x7FFFFFFF) == 0 || (ub & 0x7FFFFFFF) == 0;
        /* FP8 values are normal fp32 numbers: exponent and 24-bit significand straight from the bits;
         * below the input format's emin the significand is shifted instead (exact: FP8 has 3 bits). */
        int ea = (int)((ua >> 23) & 255) - 127, eb = (int)((ub >> 23) & 255) - 127;
        uint64_t ma = (ua & 0x7FFFFF) | 0x800000, mb = (ub & 0x7FFFFF) | 0x800000;
        int da = ea < emin_in ? emin_in - ea : 0, db = eb < emin_in ? emin_in - eb : 0;
        ma >>= da; mb >>= db;
        uint64_t p = ma * mb;                       /* significand product, 46 fraction bits, in (0, 4) */
        int t = (int)(p >> 47) & 1;
        epre[i] = zero ? NONE : ea + da + eb + db;
        two[i] = t;
        sig[i] = zero ? 0 : (uint32_t)(p >> (23 + t));   /* normalised to [1,2), 23 fraction bits, exact */
        e[i] = epre[i] + t;
        sg[i] = (ua ^ ub) >> 31;
        any |= !zero;
    }
    for (int i = 0; i < n; i++) maxpre = epre[i] > maxpre ? epre[i] : maxpre;
    for (int i = 0; i < n; i++) carry_sig |= two[i] & (epre[i] == maxpre) & (epre[i] != NONE);
    if (!any && c == 0) return 0.0f;
    int ec = 0, carry;
    if (c != 0) {
        uint32_t u; memcpy(&u, &c, 4);
        int be = (u >> 23) & 255;
        ec = be ? be - 127 : -126;
        sig[cnt] = (u & 0x7FFFFF) | (be ? 0x800000u : 0);
        e[cnt] = ec; sg[cnt] = u >> 31; cnt++;
        carry = any && maxpre >= ec && carry_sig;
    } else carry = any && carry_sig;
    int maxe = INT32_MIN;
    for (int i = 0; i < cnt; i++) if (e[i] > maxe) maxe = e[i];
    int64_t sum = 0;
    for (int i = 0; i < cnt; i++) {
        uint32_t v = sig[i] >> (10 - carry);
        int sh = maxe - e[i];
        v = sh > 31 ? 0 : v >> sh;
        sum += sg[i] ? -(int64_t)v : (int64_t)v;
    }
    if (sum == 0) return 0.0f;
    /* value = sum · 2^(maxe − 13 − carry); truncate to 13 fraction bits (quantum ≥ 2^(−126−13)) */
    int neg = sum < 0;
    uint64_t mag = neg ? (uint64_t)-sum : (uint64_t)sum;
    int scale = maxe - 13 - carry, top = 63 - __builtin_clzll(mag);   /* value exponent = top + scale */
    int vexp = top + scale, qexp = (vexp < -126 ? -126 : vexp) - 13;  /* exponent of the last kept bit */
    if (qexp > scale) mag = (mag >> (qexp - scale)) << (qexp - scale);
    float f = vexp > 127 ? INFINITY : ldexpf((float)mag, scale);      /* ≤ 14 significant bits: exact */
    return neg ? -f : f;
}

static float dot_tc(const float *a, const float *b, int K, int blk, int emin_in, float c) {
    for (int k0 = 0; k0 < K; k0 += blk)               /* the last block is padded with zeros */
        c = tc_block(a + k0, b + k0, K - k0 < blk ? K - k0 : blk, c, emin_in);
    return c;
}

static float dot_model(const float *a, const float *b, int K, emu_accum acc, emu_dtype ta, emu_dtype tb) {
    int nonfinite = 0;
    if (ta == EMU_I8) acc = EMU_ACC_EXACT;   /* INT8 GEMMs accumulate exactly in int32 on every device */
    for (int k = 0; k < K; k++) nonfinite |= !isfinite(a[k]) || !isfinite(b[k]);
    switch (acc) {
    case EMU_ACC_EXACT: return dot_exact(a, b, K, ta, tb);
    case EMU_ACC_FP32: { float s = 0; for (int k = 0; k < K; k++) s = fmaf(a[k], b[k], s); return s; }
    case EMU_ACC_FAST: {
        if (ta == EMU_F32) { float s = 0; for (int k = 0; k < K; k++) s = fmaf(a[k], b[k], s); return s; }
        float s = 0;
        for (int k = 0; k < K; k += 2) {
            if (k + 1 < K) s += a[k + 1] * b[k + 1];
            s += a[k] * b[k];
        }
        return s;
    }
    default: break;
    }
    /* tensor-core models; non-finite inputs follow IEEE (NaN wins, +inf and -inf give NaN) */
    if (nonfinite) { double d = 0; for (int k = 0; k < K; k++) d += (double)a[k] * b[k]; return (float)d; }
    int emin = ta == EMU_E4M3 ? -6 : -14;
    if (acc == EMU_ACC_HOPPER) return dot_tc(a, b, K, 32, emin, 0.0f);
    if (acc == EMU_ACC_ADA) return dot_tc(a, b, K, 16, emin, 0.0f);
    float s = 0;                                      /* cublaslt: promote every 128 k */
    for (int k0 = 0; k0 < K; k0 += 128) s += dot_tc(a + k0, b + k0, K - k0 < 128 ? K - k0 : 128, 32, emin, 0.0f);
    return s;
}

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

static uint16_t bf16_rne(float f) {   /* as torch .to(bfloat16): RNE, NaN stays a quiet NaN */
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

static float scale_of(emu_scale kind, const float *s, int i, int nk, int g) {
    switch (kind) {
    case EMU_SCALE_TENSOR: return s[0];
    case EMU_SCALE_ROW: return s[i];
    case EMU_SCALE_BLOCK: return s[(size_t)i * nk + g];
    default: return 1.0f;
    }
}

/* Epilogue pieces, shared with the fast driver so both round identically (emu/emu_internal.h). */
float emu_epi_plain(const emu_gemm_desc *g, int m, int n, float acc) {
    float t = scale_of(g->b_scale_kind, g->b_scale, n, 0, 0) * acc;
    return scale_of(g->a_scale_kind, g->a_scale, m, 0, 0) * t;
}

float emu_epi_group(const emu_gemm_desc *g, int m, int n, int gi, float acc) {
    int nk = (g->K + EMU_BLOCK - 1) / EMU_BLOCK;
    float t = acc * scale_of(g->a_scale_kind, g->a_scale, m, nk, gi);
    return t * scale_of(g->b_scale_kind, g->b_scale, g->b_scale_kind == EMU_SCALE_BLOCK ? n / EMU_BLOCK : n, nk, gi);
}

void emu_epi_store(const emu_gemm_desc *g, int m, int n, float r) {
    if (g->d_type == EMU_BF16) ((uint16_t *)g->D)[(size_t)m * g->ldd + n] = bf16_rne(r);
    else ((float *)g->D)[(size_t)m * g->ldd + n] = r;
}

int emu_gemm_groups(const emu_gemm_desc *g) {
    return (g->a_scale_kind == EMU_SCALE_BLOCK || g->b_scale_kind == EMU_SCALE_BLOCK) ? (g->K + EMU_BLOCK - 1) / EMU_BLOCK : 0;
}

float emu_dot_model(const float *a, const float *b, int K, emu_accum acc, emu_dtype ta, emu_dtype tb) {
    return dot_model(a, b, K, acc, ta, tb);
}

void emu_gemm_ref(const emu_gemm_desc *g) {
    const char *why = emu_gemm_check(g);
    if (why) { fprintf(stderr, "llama_fp8: emu_gemm: %s\n", why); exit(1); }
    int M = g->M, N = g->N, K = g->K, ng = emu_gemm_groups(g);
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
                if (!ng) r = emu_epi_plain(g, m, n, dot_model(a, b, K, g->accum, g->a_type, g->b_type));
                for (int gi = 0; gi < ng; gi++) {   /* block scales: groups of 128 k, summed in order */
                    int k0 = gi * EMU_BLOCK, kn = K - k0 < EMU_BLOCK ? K - k0 : EMU_BLOCK;
                    r = r + emu_epi_group(g, m, n, gi, dot_model(a + k0, b + k0, kn, g->accum, g->a_type, g->b_type));
                }
                emu_epi_store(g, m, n, r);
            }
        }
        free(b);
    }
    free(Ad);
}
