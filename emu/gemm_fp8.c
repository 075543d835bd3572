/* emu/gemm_fp8.c — the fast driver of the scaled FP8 / INT8 GEMM (emu_gemm; contract in emu/emu.h).
 *
 * Which kernel runs (all give the bits of emu_gemm_ref, the per-element model in emu/gemm_ref.c):
 *  fp32 (and fast with fp32 A): A decoded to fp32, then emu_gemm_f32 — the same fmaf chain.
 *  exact, E4M3×E4M3 or INT8×INT8: double-precision FMA accumulation. It is exact: every product is an
 *    integer multiple of 2^-18 (INT8: of 1) with |p| ≤ 448² < 2^17.7, so every partial sum is a multiple
 *    of 2^-18 below K·2^17.7 in magnitude; for K < 2^17 that is < 2^35 = 2^(53−18): representable in
 *    double. Exact partial sums make the order irrelevant; one cvtsd2ss (RNE) gives the fp32 result.
 *    E4M3 on AVX512-BF16 CPUs where VDPBF16PS is the faster unit, when few codes are small: "exact, split"
 *    (below) — the products of the big values in exact fp32 runs on VDPBF16PS, the small values as lists.
 *  fast (FP8/INT8 A and B, AVX512-BF16 CPUs): both operands decoded exactly to bf16; VDPBF16PS adds the
 *    odd product then the even product of each k pair to the fp32 lane, RNE, denormals flushed. The
 *    flush never fires: products and partial sums are multiples of 2^-32, far above 2^-126.
 *    Where fp32 FMA is the faster unit (emu_use_bf16_dot() == 0) or there is no AVX512-BF16: A decoded to
 *    fp32 with each pair swapped, emu_gemm_f32_swapped — the same chain (every product is exact in fp32,
 *    so fmaf(a, b, acc) is the instruction's acc + a·b).
 *  everything else (E5M2 exact, the tensor-core models, CPUs without AVX-512): emu_gemm_ref.
 * Block scales: each group of 128 k runs through the kernel, then the shared epilogue adds it in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "emu/emu.h"
#include "emu/emu_internal.h"

static size_t esize(emu_dtype t) { return t == EMU_F32 ? 4 : (t == EMU_BF16 || t == EMU_F16) ? 2 : 1; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define T_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,fma,avx512bf16")))
enum { MR = 6, NBD = 128, KCH = 512, NBH = 256 };

/* Exact decode tables for the 256 codes of an 8-bit type (E4M3, E5M2, INT8): as double and as bf16. */
typedef struct { double d[256]; uint16_t h[256]; } dec_tab;
static void make_tab(dec_tab *t, emu_dtype type) {
    for (int c = 0; c < 256; c++) {
        uint8_t b = (uint8_t)c;
        float f = emu_load(&b, type, 0);
        uint32_t u; memcpy(&u, &f, 4);
        t->d[c] = f; t->h[c] = (uint16_t)(u >> 16);   /* every FP8 and INT8 value is exact in bf16 */
    }
}

/* ---- exact: double accumulation, out[m][n] = (float) Σ_k a·b ---- */
T_AVX512 static void kernel_exact_6x32(int kc, const double *Ap, const double *Bp, double *C, size_t ldc, int first) {
    __m512d c[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) c[i][j] = first ? _mm512_setzero_pd() : _mm512_load_pd(C + (size_t)i * ldc + 8 * j);
    for (int k = 0; k < kc; k++) {
        __m512d b0 = _mm512_load_pd(Bp + (size_t)k * 32), b1 = _mm512_load_pd(Bp + (size_t)k * 32 + 8);
        __m512d b2 = _mm512_load_pd(Bp + (size_t)k * 32 + 16), b3 = _mm512_load_pd(Bp + (size_t)k * 32 + 24);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512d a = _mm512_set1_pd(Ap[(size_t)k * MR + i]);
            c[i][0] = _mm512_fmadd_pd(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_pd(a, b1, c[i][1]);
            c[i][2] = _mm512_fmadd_pd(a, b2, c[i][2]);
            c[i][3] = _mm512_fmadd_pd(a, b3, c[i][3]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm512_store_pd(C + (size_t)i * ldc + 8 * j, c[i][j]);
}

/* Bp[p][k][j] = b[n0 + 32p + j][k0 + k] as double, zero past the nb rows: 16 rows x 16 k at a time decoded
 * through the float table (a gather), transposed in registers and widened, the edges one by one. */
T_AVX512 static void pack_exact_b(double *Bp, const uint8_t *b8, size_t ldb, const float *tf, const __m512i *T16, const dec_tab *TB, int n0, int nb, int k0, int kc) {
    for (int p = 0; p < NBD / 32; p++)
        for (int h = 0; h < 32; h += 16) {
            int n = n0 + p * 32 + h, rows = nb - (p * 32 + h), k = 0;
            double *dst = Bp + (size_t)p * kc * 32 + h;
            if (rows >= 16)
                for (; k + 16 <= kc; k += 16) {
                    __m512 r[16];
                    if (T16)   /* no gather: emu/emu_internal.h */
                        for (int i = 0; i < 16; i += 2) emu_dec_rows2(T16, b8 + (size_t)(n + i) * ldb + k0 + k, b8 + (size_t)(n + i + 1) * ldb + k0 + k, &r[i], &r[i + 1]);
                    else
                        for (int i = 0; i < 16; i++)
                            r[i] = _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b8 + (size_t)(n + i) * ldb + k0 + k))), tf, 4);
                    emu_transpose16(r);
                    for (int i = 0; i < 16; i++) {
                        _mm512_store_pd(dst + (size_t)(k + i) * 32, _mm512_cvtps_pd(_mm512_castps512_ps256(r[i])));
                        _mm512_store_pd(dst + (size_t)(k + i) * 32 + 8, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r[i]), 1))));
                    }
                }
            for (int j = 0; j < 16; j++)
                for (int kk = k; kk < kc; kk++) dst[(size_t)kk * 32 + j] = j < rows ? TB->d[b8[(size_t)(n + j) * ldb + k0 + kk]] : 0.0;
        }
}

/* The loops are GotoBLAS's: per thread a panel of NC columns; per KC k (KC x 32 doubles of B, 32 KB, stay in
 * L1 while every 6-row group of A passes; A's KC-slice of all rows, at most 1536 x 128 doubles, stays in L2
 * while the panel's slivers pass); the C accumulators of the panel in memory between k steps. A is decoded
 * to double once per call, in chunks of at most 1536 rows and ~32 MB, k block by k block:
 * Ap[kb][g][kk][i] = a[mc + 6g + i][KC kb + kk]. */
enum { KC = 128, NCMAX = 512 };
/* columns per panel of the exact GEMMs: a multiple of NBD, at least two panels per thread where N allows, at most NCMAX */
static int panel_cols(int N) {
    int nth = omp_get_max_threads(), NC = (N + 2 * nth - 1) / (2 * nth);
    NC = (NC + NBD - 1) / NBD * NBD;
    return NC > NCMAX ? NCMAX : NC;
}
T_AVX512 static void gemm_exact_avx512(int M, int N, int K, const void *A, emu_dtype ta, size_t lda, const void *B, emu_dtype tb,
                                       size_t ldb, float *out, size_t ldo) {
    dec_tab TA, TB;
    make_tab(&TA, ta); make_tab(&TB, tb);
    float tf[256];
    for (int c = 0; c < 256; c++) tf[c] = (float)TB.d[c];   /* exact: the values are floats */
    uint16_t h16[256];
    __m512i T16[8];
    int no_gather = emu_tab16(tf, h16);
    if (no_gather)
        for (int i = 0; i < 8; i++) T16[i] = _mm512_loadu_si512(h16 + 32 * i);
    const uint8_t *a8 = A, *b8 = B;
    int NC = panel_cols(N), npanels = (N + NC - 1) / NC;
    size_t per_row = (size_t)(K ? K : 1) * sizeof(double);
    int mch = (int)((32u << 20) / per_row) / MR * MR;
    if (mch < MR) mch = MR;
    if (mch > 1536) mch = 1536;   /* and the per-thread accumulators C under 6 MB */
    int mcap = M < mch ? (M + MR - 1) / MR * MR : mch;
    double *Ap = emu_scratch(EMU_S_EXACT_A, per_row * (size_t)mcap);
    for (int mc = 0; mc < M; mc += mch) {
        int mn = M - mc < mch ? M - mc : mch, ng = (mn + MR - 1) / MR;
        #pragma omp parallel for schedule(static)
        for (int g = 0; g < ng; g++)
            for (int k0 = 0; k0 < K; k0 += KC) {
                int kc = K - k0 < KC ? K - k0 : KC;
                double *dst = Ap + (size_t)k0 * ng * MR + (size_t)g * kc * MR;
                for (int kk = 0; kk < kc; kk++)
                    for (int i = 0; i < MR; i++) {
                        int m = g * MR + i;
                        dst[kk * MR + i] = m < mn ? TA.d[a8[(size_t)(mc + m) * lda + k0 + kk]] : 0.0;
                    }
            }
        #pragma omp parallel
        {
            double *Bp = emu_scratch(EMU_S_EXACT_B, sizeof(double) * NC * KC), *C = emu_scratch(EMU_S_EXACT_C, sizeof(double) * (size_t)ng * MR * NC);
            #pragma omp for schedule(dynamic, 1)
            for (int pan = 0; pan < npanels; pan++) {
                int n0 = pan * NC, nb = N - n0 < NC ? N - n0 : NC;
                for (int k0 = 0; k0 < K; k0 += KC) {
                    int kc = K - k0 < KC ? K - k0 : KC;
                    const double *Ab = Ap + (size_t)k0 * ng * MR;
                    for (int q = 0; q * NBD < nb; q++)
                        pack_exact_b(Bp + (size_t)q * (NBD / 32) * kc * 32, b8, ldb, tf, no_gather ? T16 : NULL, &TB, n0 + q * NBD,
                                     nb - q * NBD < NBD ? nb - q * NBD : NBD, k0, kc);
                    for (int p = 0; p * 32 < nb; p++)
                        for (int g = 0; g < ng; g++)
                            kernel_exact_6x32(kc, Ab + (size_t)g * kc * MR, Bp + (size_t)p * kc * 32, C + (size_t)g * MR * NC + p * 32, NC, k0 == 0);
                }
                for (int m = 0; m < mn; m++)
                    for (int j = 0; j < nb; j++) out[(size_t)(mc + m) * ldo + n0 + j] = K ? (float)C[(size_t)m * NC + j] : 0.0f;
            }
        }
    }
}

/* ---- fast: AVX512-BF16 pairs, out[m][n] = chain of (acc + p_odd) + p_even over k pairs ---- */

/* c[i][j] (16 fp32 lanes: columns 16j..16j+15 of row i) += VDPBF16PS over kp k pairs of six A rows (Ap, row
 * stride lda2, pairs) and a 64-column sliver of B pairs (Bp[k][64]): the bf16-pair GEMMs' and the split's loop */
T_BF16 static inline __attribute__((always_inline)) void dp_6x64(int kp, const uint32_t *Ap, size_t lda2, const uint32_t *Bp, __m512 c[MR][4]) {
    for (int k = 0; k < kp; k++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(Bp + (size_t)k * 64), b1 = (__m512bh)_mm512_load_si512(Bp + (size_t)k * 64 + 16);
        __m512bh b2 = (__m512bh)_mm512_load_si512(Bp + (size_t)k * 64 + 32), b3 = (__m512bh)_mm512_load_si512(Bp + (size_t)k * 64 + 48);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[(size_t)i * lda2 + k]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
            c[i][2] = _mm512_dpbf16_ps(c[i][2], a, b2);
            c[i][3] = _mm512_dpbf16_ps(c[i][3], a, b3);
        }
    }
}

T_BF16 static void kernel_bf16_6x64(int kp, const uint32_t *Ap, size_t lda2, const uint32_t *Bp, float *D, size_t ldd, int mr, int nr, int first) {
    __mmask16 mk[4];
    __m512 c[MR][4];
    emu_tile_load(c, mk, D, ldd, mr, nr, first);
    dp_6x64(kp, Ap, lda2, Bp, c);
    emu_tile_store(c, mk, D, ldd, mr);
}

/* B's pair j of row n as the kernel reads it (the first-added product in the high half):
 *   FP8 / INT8 codes (fast model): (decode(b[2j]) | decode(b[2j+1]) << 16), odd K ending with (b, 0);
 *   bf16 (the fmaf chain's order): (b[2j] << 16 | b[2j+1]), odd K ending with (b, 0). */
typedef struct { const void *B; size_t ldb; int K; const dec_tab *tab; } bsrc;
static inline uint32_t b_pair(const bsrc *b, int n, int j) {
    int k = 2 * j, two = k + 1 < b->K;
    if (b->tab) {
        const uint8_t *row = (const uint8_t *)b->B + (size_t)n * b->ldb;
        return b->tab->h[row[k]] | (two ? (uint32_t)b->tab->h[row[k + 1]] << 16 : 0);
    }
    const uint16_t *row = (const uint16_t *)b->B + (size_t)n * b->ldb;
    return (uint32_t)row[k] << 16 | (two ? row[k + 1] : 0);
}

/* VDPBF16PS keeps the fmaf chain's bits only where no input can be subnormal (see emu_gemm_f32 below):
 * bf16_exact_ok on one fp32 pattern, bf16_bad32 on 32 bf16 values at once (nonzero: some value fails). */
static int bf16_exact_ok(uint32_t u) {   /* an fp32 bit pattern: bf16-valued, finite, zero or >= 2^-56 */
    uint32_t e = (u >> 23) & 0xFF;
    return (u & 0xFFFF) == 0 && e != 0xFF && ((u & 0x7FFFFFFF) == 0 || e >= 127 - 56);
}
T_AVX512 static inline __mmask32 bf16_bad32(__m512i u) {
    __m512i e = _mm512_and_si512(_mm512_srli_epi16(u, 7), _mm512_set1_epi16(0xFF));   /* the exponent: bits 7-14 */
    return _mm512_cmpeq_epi16_mask(e, _mm512_set1_epi16(0xFF)) |
           (_mm512_test_epi16_mask(u, _mm512_set1_epi16(0x7FFF)) & _mm512_cmplt_epu16_mask(e, _mm512_set1_epi16(127 - 56)));
}

/* 16 pairs j..j+15 of row n, as b_pair makes them, from one load (needs 2j + 32 <= K): FP8 / INT8 codes
 * decoded through the bf16 table T (8 registers of 32 entries; VPERMI2W looks up 64 at a time, bits 6-7
 * of the code choose among the four), bf16 rotated so that k lands in the high half. */
T_BF16 static inline __m512i pairs16(const bsrc *b, const __m512i *T, int n, int j) {
    if (b->tab) {
        __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)((const uint8_t *)b->B + (size_t)n * b->ldb + 2 * (size_t)j)));
        __mmask32 b6 = _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x40)), b7 = _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x80));
        __m512i lo = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(T[0], c, T[1]), _mm512_permutex2var_epi16(T[2], c, T[3]));
        __m512i hi = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(T[4], c, T[5]), _mm512_permutex2var_epi16(T[6], c, T[7]));
        return _mm512_mask_blend_epi16(b7, lo, hi);
    }
    return _mm512_ror_epi32(_mm512_loadu_si512((const uint16_t *)b->B + (size_t)n * b->ldb + 2 * (size_t)j), 16);
}

/* Bp[p][j][c] = b_pair(row n0 + 64p + c, pair j0 + j) for the nb rows from n0, zero past them: 16 rows x 16
 * pairs at a time through pairs16 and a register transpose, the edges one by one. For bf16 B it also checks
 * every value it packs (bf16_exact_ok) and returns 1 when one fails. */
T_BF16 static int pack_pairs(uint32_t *Bp, const bsrc *b, const __m512i *T, int n0, int nb, int j0, int kp) {
    __mmask32 bad = 0;
    int bad1 = 0;
    for (int p = 0; p * 64 < nb; p++)
        for (int cg = 0; cg < 64; cg += 16) {
            int n = n0 + p * 64 + cg, rows = nb - (p * 64 + cg);
            uint32_t *dst = Bp + (size_t)p * kp * 64 + cg;
            /* B streams from memory in short runs per row (kp pairs): the rows that come next (the next 16, else the
             * first 16 at the next k chunk) are prefetched a block ahead */
            int last = p * 64 + cg + 16 >= nb, pn = last ? n0 : n + 16, pj = last ? j0 + kp : j0, pr = last ? (nb < 16 ? nb : 16) : nb - (p * 64 + cg + 16);
            size_t es = b->tab ? 1 : 2;
            if (pr > 16) pr = 16;
            if (2 * pj >= b->K) pr = 0;
            int j = 0;
            if (rows >= 16)
                for (; j + 16 <= kp && 2 * (j0 + j) + 32 <= b->K; j += 16) {
                    __m512 r[16];
                    if (2 * (pj + j) < b->K)
                        for (int i = 0; i < pr; i++) _mm_prefetch((const char *)b->B + ((size_t)(pn + i) * b->ldb + 2 * (size_t)(pj + j)) * es, _MM_HINT_T0);
                    for (int i = 0; i < 16; i++) {
                        __m512i x = pairs16(b, T, n + i, j0 + j);
                        if (!b->tab) bad |= bf16_bad32(x);   /* the same 32 values, swapped in pairs */
                        r[i] = _mm512_castsi512_ps(x);
                    }
                    emu_transpose16(r);
                    for (int i = 0; i < 16; i++) _mm512_store_si512(dst + (size_t)(j + i) * 64, _mm512_castps_si512(r[i]));
                }
            for (int c = 0; c < 16; c++)
                for (int jj = j; jj < kp; jj++) {
                    uint32_t x = c < rows ? b_pair(b, n + c, j0 + jj) : 0;
                    if (!b->tab) bad1 |= !bf16_exact_ok(x & 0xFFFF0000u) || !bf16_exact_ok(x << 16);
                    dst[(size_t)jj * 64 + c] = x;
                }
        }
    return bad != 0 || bad1;
}

/* Row m of A (8-bit codes) as pairs through tab: ah[j] = tab->h[a[2j]] | tab->h[a[2j+1]] << 16 (b_pair's form),
 * an odd K ending with (a, 0); zeros for a row m >= M (padding). 16 pairs at a time through pairs16. */
T_BF16 static void pairs_row(uint32_t *ah, const uint8_t *a8, size_t lda, int M, int K, const dec_tab *tab, int m) {
    int K2 = (K + 1) / 2, j = 0;
    if (m >= M) { memset(ah, 0, sizeof(uint32_t) * K2); return; }
    bsrc a = {a8, lda, K, tab};
    __m512i T[8];
    for (int i = 0; i < 8; i++) T[i] = _mm512_loadu_si512(tab->h + 32 * i);
    for (; 2 * j + 32 <= K; j += 16) _mm512_storeu_si512(ah + j, pairs16(&a, T, m, j));
    for (; j < K2; j++) ah[j] = b_pair(&a, m, j);
}
static void pairs_rows(uint32_t *Ah, const uint8_t *a8, size_t lda, int M, int Mp, int K, const dec_tab *tab) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < Mp; m++) pairs_row(Ah + (size_t)m * ((K + 1) / 2), a8, lda, M, K, tab, m);
}

/* out[M][N] = the VDPBF16PS chain over K2 pairs: A already as pairs Ah[Mp][K2] (rows past M zero), B packed
 * here panel by panel (pack_pairs). Blocks of NBH columns per thread, KCH k per pass. Returns 1 when bf16 B
 * held a value VDPBF16PS cannot take exactly (out is then not the chain's: the caller starts again). */
T_BF16 static int gemm_pairs_avx512(int M, int N, int K2, const uint32_t *Ah, const bsrc *b, float *out, size_t ldo) {
    int bad = 0;
    int nblocks = (N + NBH - 1) / NBH;
    __m512i T[8];
    if (b->tab)
        for (int i = 0; i < 8; i++) T[i] = _mm512_loadu_si512(b->tab->h + 32 * i);
    #pragma omp parallel reduction(| : bad)
    {
        uint32_t *Bp = emu_scratch(EMU_S_PAIRS_B, sizeof(uint32_t) * NBH * (KCH / 2));
        #pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < nblocks; blk++) {
            int n0 = blk * NBH, nb = N - n0 < NBH ? N - n0 : NBH;
            for (int j0 = 0; j0 < K2; j0 += KCH / 2) {
                int kp = K2 - j0 < KCH / 2 ? K2 - j0 : KCH / 2;
                bad |= pack_pairs(Bp, b, T, n0, nb, j0, kp);
                for (int m0 = 0; m0 < M; m0 += MR) {
                    int mr = M - m0 < MR ? M - m0 : MR;
                    for (int p = 0; p * 64 < nb; p++)
                        kernel_bf16_6x64(kp, Ah + (size_t)m0 * K2 + j0, K2, Bp + (size_t)p * kp * 64, out + (size_t)m0 * ldo + n0 + p * 64,
                                         ldo, mr, nb - p * 64 < 64 ? nb - p * 64 : 64, j0 == 0);
                }
            }
            if (K2 == 0)
                for (int m = 0; m < M; m++) memset(out + (size_t)m * ldo + n0, 0, sizeof(float) * nb);
        }
    }
    return bad;
}

T_BF16 static void gemm_bf16_avx512(int M, int N, int K, const void *A, emu_dtype ta, size_t lda, const void *B, emu_dtype tb,
                                    size_t ldb, float *out, size_t ldo) {
    int K2 = (K + 1) / 2, Mp = (M + MR - 1) / MR * MR;
    dec_tab TA, TB;
    make_tab(&TA, ta); make_tab(&TB, tb);
    /* A as bf16 pairs: Ah[m][j] = (bf16(a[m][2j]) | bf16(a[m][2j+1]) << 16), rows padded to Mp with zeros */
    uint32_t *Ah = emu_scratch(EMU_S_PAIRS_A, sizeof(uint32_t) * (size_t)Mp * (K2 ? K2 : 1));
    pairs_rows(Ah, A, lda, M, Mp, K, &TA);
    bsrc b = {B, ldb, K, &TB};
    gemm_pairs_avx512(M, N, K2, Ah, &b, out, ldo);
}

/* ---- exact, split: the same exact sums with most products on VDPBF16PS ----
 * Each E4M3 operand is split by magnitude into a "big" part and a few "small" values:
 *   A (activations): big |a| >= 8 (exponent field >= 10): integers 8..448; small: the other nonzero codes;
 *   B (weights):     big |b| >= 2 (exponent field >= 8): multiples of 1/4 up to 448; small: the others.
 * Σ_k a·b = Σ a_big·b_big + Σ a_small·b + Σ a_big·b_small, and
 *  - big × big runs on VDPBF16PS in fp32 lanes from zero, in runs of k: every product is a multiple of 1/4,
 *    and every partial sum of lane (i, j) within a run is at most Σ_k |a_ik|·|b_kj| ≤ 448·Σ_k |a_ik| in
 *    magnitude. A run is cut (the lane added into the double accumulators) before that bound passes 2^22:
 *    then every partial sum is a multiple of 1/4 of at most 2^22 = 2^24 quarters, exact in fp32 whatever the
 *    order and however VDPBF16PS rounds (there is nothing to round). Runs grow in units of 16 k (16 products
 *    ≤ 448·448·16 < 2^22 always fit), so they adapt to the data: ~64-256 k on real activations.
 *  - where many of A's codes are small (SwiGLU outputs: the down projections), a second plane takes the middle
 *    ones, 1/8 ≤ |a| < 8, as 64·a: integers 8..480, the same runs and bound on VDPBF16PS, each lane multiplied
 *    by 2^-6 (exact) as it goes into double; A's lists then hold only |a| < 1/8.
 *  - the small values run as lists, (k, a) per row of A against B in double and (k, b) per column of B
 *    against A's other values in double, on double FMA.
 * All double partial sums are sums of distinct products: multiples of 2^-18 below 2^35, exact (as for the
 * exact kernel above), so the result is the exact sum rounded once: emu_gemm_ref's bits, whatever the split.
 * It runs where the lists are short enough to pay (estimated below) and no code is NaN (NaNs go the double
 * way, which keeps their bits); emu_set_exact_split(1|0) or LLAMA_FP8_EXACT_SPLIT=1|0 force it on or off (2: on
 * with the middle plane, 3: on without it; 1 picks by the estimate). */
static int exact_split = -1;
void emu_set_exact_split(int on) { exact_split = on < 0 ? -1 : on > 3 ? 1 : on; }
typedef struct { int k; float v; } lo_ent;
enum { SMALL_A = 0x50, SMALL_A2 = 0x20, SMALL_B = 0x40 };   /* code & 0x7F below these (and nonzero): small (A2: with the middle plane) */
enum { KU = 16, KB = 256 };                /* run unit and B packing block, in k */
enum { SPLIT_MC = 1024 };   /* rows per call at most, in equal chunks: the panel's C (rows x 512 doubles) in L2/L3 (at M 2048 in one
                               * call, 8 MB a thread: 262-308 GFLOP/s against 378-398 in two or four chunks, Zen 5); memory */

/* small: nonzero and code & 0x7F < lim; nan: code & 0x7F == 0x7F. 64 codes at a time. */
T_AVX512 static inline __mmask64 small_mask64(__m512i c, int lim, __mmask64 *nan) {
    __m512i m = _mm512_and_si512(c, _mm512_set1_epi8(0x7F));
    *nan |= _mm512_cmpeq_epi8_mask(m, _mm512_set1_epi8(0x7F));
    return _mm512_cmplt_epu8_mask(_mm512_sub_epi8(m, _mm512_set1_epi8(1)), _mm512_set1_epi8((char)(lim - 1)));
}
static inline int code_small(uint8_t c, int lim) { return (c & 0x7F) != 0 && (c & 0x7F) < lim; }

/* Counts the small codes of a row of K codes; *nan set when a NaN code is seen. */
T_AVX512 static size_t count_small_row(const uint8_t *row, int K, int lim, int *nan_seen) {
    size_t c = 0;
    __mmask64 nan = 0;
    int k = 0;
    for (; k + 64 <= K; k += 64) c += (size_t)__builtin_popcountll(small_mask64(_mm512_loadu_si512(row + k), lim, &nan));
    for (; k < K; k++) { c += code_small(row[k], lim); nan |= (row[k] & 0x7F) == 0x7F; }
    *nan_seen = nan != 0;
    return c;
}
/* Writes the small entries of a row (k ascending) to e. */
T_AVX512 static void fill_small_row(const uint8_t *row, int K, int lim, const float *val, lo_ent *e) {
    __mmask64 nan = 0;
    int k = 0;
    for (; k + 64 <= K; k += 64)
        for (uint64_t m = small_mask64(_mm512_loadu_si512(row + k), lim, &nan); m; m &= m - 1) {
            int kk = k + __builtin_ctzll(m);
            *e++ = (lo_ent){kk, val[row[kk]]};
        }
    for (; k < K; k++)
        if (code_small(row[k], lim)) *e++ = (lo_ent){k, val[row[k]]};
}
/* (The OpenMP loops are functions of their own, without intrinsics: clang does not give an outlined region the
 * target attribute.) cnt[r] = the small codes of row r; returns nonzero when a NaN code is seen. */
static int count_small_rows(const uint8_t *x, size_t ld, int n, int K, int lim, size_t *cnt) {
    int nan_any = 0;
    #pragma omp parallel for schedule(static) reduction(| : nan_any)
    for (int r = 0; r < n; r++) {
        int nan;
        cnt[r] = count_small_row(x + (size_t)r * ld, K, lim, &nan);
        nan_any |= nan;
    }
    return nan_any;
}
static void fill_small_rows(const uint8_t *x, size_t ld, int n, int K, int lim, const size_t *off, const float *val, lo_ent *ent) {
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) fill_small_row(x + (size_t)r * ld, K, lim, val, ent + off[r]);
}

/* 6 x 64 tile over one run of kp pairs: fp32 lanes from zero (exact, see above); then, row by row, widened to
 * double and multiplied by sc (1, or 2^-6 for the middle plane: exact), the row's small-A entries of the run added (a_small times B's row k in double: Bd0 and Bd1, the
 * tile's two 32-column slivers of pack_exact_b from k0), and added into C (stored where first). */
T_BF16 static void kernel_split_6x64(int kp, const uint32_t *Ap, size_t lda2, const uint32_t *Bp, double *C, size_t ldc, int first, double sc,
                                     const lo_ent *const *es, const lo_ent *const *ee, int k0, const double *Bd0, const double *Bd1) {
    __m512 c[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) c[i][j] = _mm512_setzero_ps();
    dp_6x64(kp, Ap, lda2, Bp, c);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        __m512d d[8];
        double *row = C + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {   /* columns 16j..16j+7 and 16j+8..16j+15 */
            d[2 * j] = _mm512_cvtps_pd(_mm512_castps512_ps256(c[i][j]));
            d[2 * j + 1] = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c[i][j]), 1)));
            if (sc != 1.0) d[2 * j] = _mm512_mul_pd(d[2 * j], _mm512_set1_pd(sc)), d[2 * j + 1] = _mm512_mul_pd(d[2 * j + 1], _mm512_set1_pd(sc));
        }
        for (const lo_ent *e = es[i]; e < ee[i]; e++) {
            __m512d a = _mm512_set1_pd(e->v);
            const double *b0 = Bd0 + (size_t)(e->k - k0) * 32, *b1 = Bd1 + (size_t)(e->k - k0) * 32;
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                d[q] = _mm512_fmadd_pd(a, _mm512_load_pd(b0 + 8 * q), d[q]);
                d[4 + q] = _mm512_fmadd_pd(a, _mm512_load_pd(b1 + 8 * q), d[4 + q]);
            }
        }
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            if (!first) d[q] = _mm512_add_pd(d[q], _mm512_load_pd(row + 8 * q));
            _mm512_store_pd(row + 8 * q, d[q]);
        }
    }
}

/* The small-B entries of one panel in k order: ek[kl[k] .. kl[k+1]) = (column j - n0, b) for every small b at
 * k of the panel's nb columns (columns' entries are in k order, a counting sort keeps them so). */
static void small_b_by_k(const lo_ent *entB, const size_t *offB, int n0, int nb, int K, int *kl, lo_ent *ek) {
    memset(kl, 0, sizeof(int) * ((size_t)K + 2));
    for (size_t e = offB[n0]; e < offB[n0 + nb]; e++) kl[entB[e].k + 2]++;
    for (int k = 0; k < K; k++) kl[k + 2] += kl[k + 1];
    for (int j = 0; j < nb; j++)
        for (size_t e = offB[n0 + j]; e < offB[n0 + j + 1]; e++) ek[kl[entB[e].k + 1]++] = (lo_ent){j, entB[e].v};
}
/* Ct[j][16] += Σ over the panel's small-B entries (k, j, b) of b · A16[k][0..15]: 16 rows of A's values as bf16
 * (E4M3 values are exact in bf16; 32 bytes a k, so that every panel's pass over A streams little), walked once
 * in k order (each A row k loaded once, then axpys in double into Ct, in L1/L2). */
T_AVX512 static void add_small_b(const lo_ent *ek, const int *kl, int K, const uint16_t *A16, double *Ct) {
    for (int k = 0; k < K; k++) {
        int e = kl[k], end = kl[k + 1];
        if (e == end) continue;
        __m512 f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_load_si256((const __m256i *)(A16 + (size_t)k * 16))), 16));
        __m512d a0 = _mm512_cvtps_pd(_mm512_castps512_ps256(f)), a1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
        for (; e < end; e++) {
            __m512d b = _mm512_set1_pd(ek[e].v);
            double *c = Ct + (size_t)ek[e].k * 16;
            _mm512_store_pd(c, _mm512_fmadd_pd(b, a0, _mm512_load_pd(c)));
            _mm512_store_pd(c + 8, _mm512_fmadd_pd(b, a1, _mm512_load_pd(c + 8)));
        }
    }
}

/* out[m][j] = (float) C[m][j] (RNE), m < M, j < nb */
T_AVX512 static void store_rows(float *out, size_t ldo, const double *C, size_t ldc, int M, int nb) {
    for (int m = 0; m < M; m++) {
        int j = 0;
        for (; j + 8 <= nb; j += 8) _mm256_storeu_ps(out + (size_t)m * ldo + j, _mm512_cvtpd_ps(_mm512_load_pd(C + (size_t)m * ldc + j)));
        for (; j < nb; j++) out[(size_t)m * ldo + j] = (float)C[(size_t)m * ldc + j];
    }
}

/* One plane of A for the VDPBF16PS runs: Ah[m][j] = pairs of tab->h (rows past M zero, ng·6 rows), and
 * cut[g][u] = 1 where a run of group g ends after k unit u: before 448·Σ|a| (tab->d) passes 2^22, and at
 * every block end (see "exact, split" above). */
static void split_plane(const uint8_t *a8, size_t lda, int M, int K, int ng, const dec_tab *tab, uint32_t *Ah, unsigned char *cut) {
    int nu = (K + KU - 1) / KU;
    pairs_rows(Ah, a8, lda, M, ng * MR, K, tab);
    #pragma omp parallel for schedule(static)
    for (int g = 0; g < ng; g++) {
        double run = 0;
        for (int u = 0; u < nu; u++) {
            double mx = 0;   /* max over the group's rows of Σ |a| over the unit */
            for (int i = 0; i < MR && g * MR + i < M; i++) {
                const uint8_t *row = a8 + (size_t)(g * MR + i) * lda;
                double sum = 0;
                for (int k = u * KU; k < K && k < (u + 1) * KU; k++) sum += tab->d[row[k] & 0x7F];
                if (sum > mx) mx = sum;
            }
            if (u % (KB / KU) == 0) run = 0;   /* a block starts a run */
            else if (448.0 * (run + mx) > 4194304.0) cut[(size_t)g * nu + u - 1] = 1, run = 0;   /* 2^22 */
            run += mx;
            cut[(size_t)g * nu + u] = u + 1 == nu || (u + 1) % (KB / KU) == 0;
        }
    }
}

/* Returns 0 (nothing done) where the split does not pay or a code is NaN; else out = the exact sums. */
T_BF16 static int gemm_exact_split(int M, int N, int K, const uint8_t *a8, size_t lda, const uint8_t *b8, size_t ldb, float *out, size_t ldo) {
    if (exact_split == -1) {
        const char *e = getenv("LLAMA_FP8_EXACT_SPLIT");
        exact_split = e && *e ? (atoi(e) >= 0 && atoi(e) <= 3 ? atoi(e) : 1) : -2;   /* -2: decide per call */
    }
    if (exact_split == 0 || M < 1 || N < 1 || K < 1) return 0;
    /* few rows, or a small weight: the lists and packing cost more than the split saves (Zen 5: even at M 28;
     * stories260K's 64 x 64 .. 172 x 64 weights 5 % slower) */
    if (exact_split < 0 && (M < 32 || (size_t)N * K < (1u << 18))) return 0;
    dec_tab TB, TA_big, TA_mid, TA_d, TB_big;
    make_tab(&TB, EMU_E4M3);
    float val[256], tf[256];
    for (int c = 0; c < 256; c++) val[c] = tf[c] = (float)TB.d[c];
    int nu = (K + KU - 1) / KU, ng = (M + MR - 1) / MR, K2 = (K + 1) / 2;
    /* how many codes are small: B's (|b| < 2), A's below 8 and below 1/8 */
    size_t *offB = emu_scratch(EMU_S_SPLIT_BO, sizeof(size_t) * ((size_t)N + 1)), *offA = emu_scratch(EMU_S_SPLIT_AO, sizeof(size_t) * 2 * ((size_t)M + 1));
    size_t *offA2 = offA + M + 1;   /* the same below 1/8, counted where the middle plane may pay */
    if (count_small_rows(b8, ldb, N, K, SMALL_B, offB + 1) || count_small_rows(a8, lda, M, K, SMALL_A, offA + 1)) return 0;
    offB[0] = offA[0] = offA2[0] = 0;
    for (int n = 0; n < N; n++) offB[n + 1] += offB[n];
    for (int m = 0; m < M; m++) offA[m + 1] += offA[m];
    double dA = (double)offA[M] / ((double)M * K), dB = (double)offB[N] / ((double)N * K), dA2 = 1;
    if (dA > 0.1 || exact_split == 2) {
        count_small_rows(a8, lda, M, K, SMALL_A2, offA2 + 1);
        for (int m = 0; m < M; m++) offA2[m + 1] += offA2[m];
        dA2 = (double)offA2[M] / ((double)M * K);
    }
    /* time against the double kernel, fitted on Zen 5 (tests/README, "exact split"): one plane 0.45 + 2 dA + 6 dB,
     * two planes 0.8 + 2 dA2 + 6 dB, dA, dA2, dB the fractions of small values; it pays below 0.9 */
    double t1 = 0.45 + 2.0 * dA + 6.0 * dB, t2 = 0.8 + 2.0 * dA2 + 6.0 * dB;
    int mid = exact_split == 2 || (exact_split != 3 && t2 < t1);
    if (exact_split < 0 && (mid ? t2 : t1) > 0.9) return 0;
    int lim = mid ? SMALL_A2 : SMALL_A;
    if (mid) offA = offA2;
    /* the planes: TA_big the big values (≥ 8), TA_mid 64 times the middle ones (1/8 ≤ |a| < 8: integers 8..480),
     * TA_d every value not in A's lists (for a_big · b_small); TB_big B's big values */
    TA_big = TA_mid = TA_d = TB_big = TB;
    for (int c = 0; c < 256; c++) {
        int small = code_small((uint8_t)c, SMALL_A), tiny = code_small((uint8_t)c, SMALL_A2);
        if (small) TA_big.h[c] = 0, TA_big.d[c] = 0.0;
        float v = small && !tiny ? val[c] * 64.0f : 0.0f;
        uint32_t u; memcpy(&u, &v, 4);
        TA_mid.h[c] = (uint16_t)(u >> 16); TA_mid.d[c] = v;
        if (code_small((uint8_t)c, lim)) TA_d.h[c] = 0;
        if (code_small((uint8_t)c, SMALL_B)) TB_big.h[c] = 0, TB_big.d[c] = 0.0;
    }
    lo_ent *entB = emu_scratch(EMU_S_SPLIT_BE, sizeof(lo_ent) * (offB[N] + 1)), *entA = emu_scratch(EMU_S_SPLIT_AE, sizeof(lo_ent) * (offA[M] + 1));
    fill_small_rows(b8, ldb, N, K, SMALL_B, offB, val, entB);
    fill_small_rows(a8, lda, M, K, lim, offA, val, entA);
    /* uA[u][m]: where row m's entries of k unit u start (u = 0..nu; a group's rows side by side) */
    size_t *uA = emu_scratch(EMU_S_SPLIT_KB, sizeof(size_t) * (size_t)M * (nu + 1));
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        size_t e = offA[m];
        for (int u = 0; u <= nu; u++) {
            while (e < offA[m + 1] && entA[e].k < u * KU) e++;
            uA[(size_t)u * M + m] = e;
        }
    }
    /* the planes as bf16 pairs Ah (and Ah2) with their runs cut (cut2); A's values not in its lists as bf16
     * Ad[h][k][16] (16-row groups h, for add_small_b) */
    int nh = ((M + 7) / 8 + 1) / 2 * 2, crows = nh * 8 > ng * MR ? nh * 8 : ng * MR;
    uint32_t *Ah = emu_scratch(EMU_S_PAIRS_A, sizeof(uint32_t) * (size_t)ng * MR * K2), *Ah2 = NULL;
    unsigned char *cut = emu_scratch(EMU_S_SPLIT_WH, (size_t)ng * nu), *cut2 = NULL;
    split_plane(a8, lda, M, K, ng, &TA_big, Ah, cut);
    if (mid) {
        Ah2 = emu_scratch(EMU_S_SPLIT_AH2, sizeof(uint32_t) * (size_t)ng * MR * K2);
        cut2 = emu_scratch(EMU_S_SPLIT_WH2, (size_t)ng * nu);
        split_plane(a8, lda, M, K, ng, &TA_mid, Ah2, cut2);
    }
    uint16_t *Ad = emu_scratch(EMU_S_SPLIT_AF, sizeof(uint16_t) * (size_t)nh * 8 * K);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < nh * 8; m++) {
        const uint8_t *row = a8 + (size_t)m * lda;
        uint16_t *ad = Ad + (size_t)(m / 16) * K * 16 + m % 16;
        for (int k = 0; k < K; k++) ad[(size_t)k * 16] = m < M ? TA_d.h[row[k]] : 0;
    }
    __m512i T[8], T16[8];
    for (int i = 0; i < 8; i++) T[i] = _mm512_loadu_si512(TB_big.h + 32 * i);
    uint16_t h16[256];
    int no_gather = emu_tab16(tf, h16);
    if (no_gather)
        for (int i = 0; i < 8; i++) T16[i] = _mm512_loadu_si512(h16 + 32 * i);
    bsrc bb = {b8, ldb, K, &TB_big};
    int NC = panel_cols(N), npanels = (N + NC - 1) / NC;
    size_t most = 0;   /* the most small-B entries of a panel */
    for (int n0 = 0; n0 < N; n0 += NC) {
        size_t c = offB[n0 + (N - n0 < NC ? N - n0 : NC)] - offB[n0];
        if (c > most) most = c;
    }
    #pragma omp parallel
    {
        uint32_t *Bp = emu_scratch(EMU_S_PAIRS_B, sizeof(uint32_t) * NC * (KB / 2));
        double *Bd = emu_scratch(EMU_S_EXACT_B, sizeof(double) * NC * KB), *C = emu_scratch(EMU_S_EXACT_C, sizeof(double) * (size_t)crows * NC);
        double *Ct = emu_scratch(EMU_S_SPLIT_CT, sizeof(double) * 16 * NC);
        int *kl = emu_scratch(EMU_S_SPLIT_KL, sizeof(int) * ((size_t)K + 2));
        lo_ent *ek = emu_scratch(EMU_S_SPLIT_EK, sizeof(lo_ent) * (most + 1));
        #pragma omp for schedule(dynamic, 1)
        for (int pan = 0; pan < npanels; pan++) {
            int n0 = pan * NC, nb = N - n0 < NC ? N - n0 : NC;
            for (int k0 = 0; k0 < K; k0 += KB) {   /* B packed KB k at a time */
                int kc = K - k0 < KB ? K - k0 : KB, kp = (kc + 1) / 2, u0 = k0 / KU, u1 = (k0 + kc + KU - 1) / KU;
                pack_pairs(Bp, &bb, T, n0, nb, k0 / 2, kp);
                size_t any = 0;
                for (int m = 0; m < M && !any; m++) any = uA[(size_t)u1 * M + m] - uA[(size_t)u0 * M + m];
                if (any)
                    for (int q = 0; q * NBD < nb; q++)
                        pack_exact_b(Bd + (size_t)q * (NBD / 32) * kc * 32, b8, ldb, tf, no_gather ? T16 : NULL, &TB, n0 + q * NBD,
                                     nb - q * NBD < NBD ? nb - q * NBD : NBD, k0, kc);
                for (int p = 0; p * 64 < nb; p++)
                    for (int g = 0; g < ng; g++)
                        for (int pl = 0; pl < 1 + mid; pl++) {   /* the big plane (with A's lists), then the middle one */
                            const unsigned char *ct = pl ? cut2 : cut;
                            for (int ua = u0; ua < u1;) {   /* one run: units ua..ub-1 */
                                int ub = ua;
                                while (!ct[(size_t)g * nu + ub]) ub++;
                                ub++;
                                int j0 = (ua * KU - k0) / 2, j1 = ub * KU - k0 < kc ? (ub * KU - k0) / 2 : kp;
                                const lo_ent *es[MR], *ee[MR];
                                for (int i = 0; i < MR; i++) {
                                    es[i] = ee[i] = entA;
                                    if (g * MR + i < M && !pl) es[i] = entA + uA[(size_t)ua * M + g * MR + i], ee[i] = entA + uA[(size_t)ub * M + g * MR + i];
                                }
                                kernel_split_6x64(j1 - j0, (pl ? Ah2 : Ah) + (size_t)g * MR * K2 + k0 / 2 + j0, K2, Bp + (size_t)p * kp * 64 + (size_t)j0 * 64,
                                                  C + (size_t)g * MR * NC + p * 64, NC, ua == 0 && !pl, pl ? 0x1p-6 : 1.0, es, ee, k0,
                                                  Bd + (size_t)(2 * p) * kc * 32, Bd + (size_t)(2 * p + 1) * kc * 32);
                                ua = ub;
                            }
                        }
            }
            if (offB[n0 + nb] > offB[n0]) {   /* a_big · b_small, 16 rows at a time: Ct[j][16], then added into C */
                small_b_by_k(entB, offB, n0, nb, K, kl, ek);
                for (int h = 0; h < nh; h += 2) {
                    memset(Ct, 0, sizeof(double) * 16 * nb);
                    add_small_b(ek, kl, K, Ad + (size_t)h * K * 8, Ct);
                    for (int i = 0; i < 16; i++)
                        for (int j = 0; j < nb; j++) C[(size_t)(h * 8 + i) * NC + j] += Ct[(size_t)j * 16 + i];
                }
            }
            store_rows(out + n0, ldo, C, NC, M, nb);
        }
    }
    return 1;
}

/* ---- emu_gemm_f32 with bf16 values on both sides: the same fmaf chain on VDPBF16PS ----
 * A product of two bf16 values is exact in fp32, so fmaf(a, b, acc) = fp32(acc + a·b). VDPBF16PS adds the
 * odd element's product of a pair first, then the even one's, each rounded to nearest even: packing every
 * pair swapped (k in the high half, k + 1 in the low half) performs acc + p_k, then + p_(k+1) — the
 * index-order chain of emu_gemm_f32_ref. The instruction flushes subnormal inputs and results, so it
 * is used only when nothing can be subnormal: every input finite, and every nonzero one of magnitude
 * >= 2^-56. Then each input is a multiple of 2^-63, each product a multiple of 2^-126, and so is every
 * partial sum (fp32 rounding keeps multiples of 2^-126 at and above that size): nonzero means normal.
 * An odd K ends with the pair (a_(K-1), 0): adding the +0 product changes nothing (acc starts at +0 and
 * is never -0). Returns 0, having done nothing, when the inputs do not qualify. */
T_BF16 static int gemm_f32_bf16pairs(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *D, size_t ldd) {
    int K2 = (K + 1) / 2, Mp = (M + MR - 1) / MR * MR;
    uint32_t *Ah = emu_scratch(EMU_S_PAIRS_A, sizeof(uint32_t) * (size_t)Mp * (K2 ? K2 : 1));
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < Mp; m++)
        for (int j = 0; j < K2; j++) {
            uint32_t first = 0, second = 0;
            if (m < M) {
                memcpy(&first, A + (size_t)m * lda + 2 * j, 4);
                if (2 * j + 1 < K) memcpy(&second, A + (size_t)m * lda + 2 * j + 1, 4);
            }
            Ah[(size_t)m * K2 + j] = (first & 0xFFFF0000u) | second >> 16;   /* k in the high (first-added) half */
        }
    bsrc b = {B, ldb, K, NULL};
    int bad = gemm_pairs_avx512(M, N, K2, Ah, &b, D, ldd);
    return !bad;
}

/* bf16_exact_ok over one row of fp32 A, 16 lanes at a time */
T_AVX512 static int row_ok(const float *A, size_t lda, int r, int K) {
    const float *x = A + (size_t)r * lda;
    int k = 0, bad = 0;
    for (; k + 16 <= K; k += 16) {
        __m512i u = _mm512_loadu_si512(x + k), e = _mm512_and_si512(_mm512_srli_epi32(u, 23), _mm512_set1_epi32(0xFF));
        bad |= _mm512_test_epi32_mask(u, _mm512_set1_epi32(0xFFFF)) || _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(0xFF)) ||
               (_mm512_test_epi32_mask(u, _mm512_set1_epi32(0x7FFFFFFF)) & _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(127 - 56)));
    }
    for (; k < K; k++) { uint32_t u; memcpy(&u, x + k, 4); bad |= !bf16_exact_ok(u); }
    return !bad;
}
/* (The OpenMP loop is its own function: clang does not give an outlined region the target attribute.) */
static int rows_ok(const float *A, size_t lda, int M, int K) {
    int ok = 1;
    #pragma omp parallel for reduction(&& : ok) schedule(static)
    for (int r = 0; r < M; r++) ok = ok && row_ok(A, lda, r, K);
    return ok;
}
#endif

int emu_gemm_f32_bf16pairs(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *D, size_t ldd) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!emu_have_avx512bf16() || M < 1 || N < 1) return 0;
    if (!rows_ok(A, lda, M, K)) return 0;
    return gemm_f32_bf16pairs(M, N, K, A, lda, B, ldb, D, ldd);   /* B is checked as it is packed */
#else
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)D; (void)ldd;
    return 0;
#endif
}

/* out[k] = a[off + k] decoded exactly, k < K; with swap, position k holds element k ^ 1 when both lie in one
 * group of G (and inside K). FP8 codes 16 at a time through the value table (a chunk of 16 from an even k
 * never straddles a group, G being a multiple of 16, or K when it ends inside K), the rest one by one. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
T_AVX512 static void decode_row_avx512(const uint8_t *a, const float *tf, int K, int G, int swap, float *out) {
    const __m128i sw = _mm_setr_epi8(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m128i c = _mm_loadu_si128((const __m128i *)(a + k));
        if (swap) c = _mm_shuffle_epi8(c, sw);
        _mm512_storeu_ps(out + k, _mm512_i32gather_ps(_mm512_cvtepu8_epi32(c), tf, 4));
    }
    for (; k < K; k++) out[k] = tf[a[emu_korder(k, K, G, swap)]];
}
#endif
static void decode_row(const void *A, emu_dtype t, size_t off, int K, int G, int swap, float *out) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (emu_have_avx512() && (t == EMU_E4M3 || t == EMU_E5M2)) { decode_row_avx512((const uint8_t *)A + off, emu_fp8_table(t), K, G, swap, out); return; }
#endif
    for (int k = 0; k < K; k++) out[k] = emu_load(A, t, off + emu_korder(k, K, G, swap));
}

void emu_gemm(const emu_gemm_desc *g) {
    const char *why = emu_gemm_check(g);
    if (why) { fprintf(stderr, "llama_fp8: emu_gemm: %s\n", why); exit(1); }
    int M = g->M, N = g->N, K = g->K, path = 0;   /* 1 fp32, 2 exact-double, 3 bf16 pairs, 4 the pairs on fp32 FMA */
    emu_accum accum = g->a_type == EMU_I8 ? EMU_ACC_EXACT : g->accum;   /* INT8: always exact (int32) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (accum == EMU_ACC_FP32 || (accum == EMU_ACC_FAST && g->a_type == EMU_F32)) path = 1;
    else if (emu_have_avx512() && accum == EMU_ACC_EXACT && g->a_type == g->b_type &&
             (g->a_type == EMU_E4M3 || g->a_type == EMU_I8) && K < (1 << 17)) path = 2;
    else if (emu_have_avx512bf16() && emu_use_bf16_dot() && accum == EMU_ACC_FAST) path = 3;
    else if (emu_have_avx512() && accum == EMU_ACC_FAST) path = 4;
#else
    if (accum == EMU_ACC_FP32 || (accum == EMU_ACC_FAST && g->a_type == EMU_F32)) path = 1;
#endif
    if (!path) { emu_gemm_ref(g); return; }
    emu_fp8_table(EMU_E4M3);
    emu_epi e = emu_epi_of(g);   /* the epilogue: emu/ops.h, as emu_gemm_ref's */
    int ng = emu_epi_groups(&e), rounds = ng ? ng : 1;
    /* fp32 output without block scales: the kernels accumulate straight into D, the epilogue runs in place */
    int in_place = !ng && g->d_type == EMU_F32;
    size_t lacc = in_place ? g->ldd : (size_t)N;
    float *acc = in_place ? (float *)g->D : emu_scratch(EMU_S_ACC, sizeof(float) * ((size_t)M * N + 1));
    float *r = ng ? emu_scratch(EMU_S_R, sizeof(float) * ((size_t)M * N + 1)) : NULL;
    float *Af = NULL;
    if ((path == 1 && g->a_type != EMU_F32) || path == 4) {   /* decode A once, exactly (path 4: pairs swapped within each group) */
        Af = emu_scratch(EMU_S_AF, sizeof(float) * ((size_t)M * K + 1));
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) decode_row(g->A, g->a_type, (size_t)m * g->lda, K, ng ? EMU_BLOCK : K, path == 4, Af + (size_t)m * K);
    }
    for (int gi = 0; gi < rounds; gi++) {
        int k0 = ng ? gi * EMU_BLOCK : 0, kn = ng ? (K - k0 < EMU_BLOCK ? K - k0 : EMU_BLOCK) : K;
        const char *Ak = (const char *)g->A + (size_t)k0 * esize(g->a_type), *Bk = (const char *)g->B + (size_t)k0 * esize(g->b_type);
        if (path == 1) {
            if (Af) emu_gemm_f32(M, N, kn, Af + k0, K, Bk, g->b_type, g->ldb, acc, lacc);
            else emu_gemm_f32(M, N, kn, (const float *)Ak, g->lda, Bk, g->b_type, g->ldb, acc, lacc);
        } else if (path == 4) emu_gemm_f32_swapped(M, N, kn, Af + k0, K, Bk, g->b_type, g->ldb, acc, lacc);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        else if (path == 2) {
            if (g->a_type == EMU_E4M3 && emu_have_avx512bf16() && emu_use_bf16_dot())
                for (int m0 = 0, step = (M + (M + SPLIT_MC - 1) / SPLIT_MC - 1) / ((M + SPLIT_MC - 1) / SPLIT_MC); m0 < M; m0 += step) {
                    int mc = M - m0 < step ? M - m0 : step;   /* the split in equal chunks of rows; where it declines, the double kernel */
                    const uint8_t *Am = (const uint8_t *)Ak + (size_t)m0 * g->lda;
                    if (!gemm_exact_split(mc, N, kn, Am, g->lda, (const uint8_t *)Bk, g->ldb, acc + (size_t)m0 * lacc, lacc))
                        gemm_exact_avx512(mc, N, kn, Am, g->a_type, g->lda, Bk, g->b_type, g->ldb, acc + (size_t)m0 * lacc, lacc);
                }
            else gemm_exact_avx512(M, N, kn, Ak, g->a_type, g->lda, Bk, g->b_type, g->ldb, acc, lacc);
        }
        else gemm_bf16_avx512(M, N, kn, Ak, g->a_type, g->lda, Bk, g->b_type, g->ldb, acc, lacc);
#endif
        if (in_place) {   /* emu_epi_plain on fp32 D in place, written as loops the compiler vectorises: the same two products */
            #pragma omp parallel for schedule(static)
            for (int m = 0; m < M; m++) {
                float sa = emu_scale_at(e.a_kind, e.a_scale, m, 0, 0), *d = acc + (size_t)m * lacc;
                if (e.b_kind == EMU_SCALE_ROW)
                    for (int n = 0; n < N; n++) d[n] = sa * (e.b_scale[n] * d[n]);
                else {
                    float sb = emu_scale_at(e.b_kind, e.b_scale, 0, 0, 0);
                    for (int n = 0; n < N; n++) d[n] = sa * (sb * d[n]);
                }
            }
            continue;
        }
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                size_t i = (size_t)m * N + n;
                if (!ng) emu_epi_store(g->D, g->d_type, g->ldd, m, n, emu_epi_plain(&e, m, n, acc[(size_t)m * lacc + n]));
                else r[i] = (gi ? r[i] : 0.0f) + emu_epi_group(&e, m, n, gi, acc[i]);
            }
    }
    if (ng) {
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) emu_epi_store(g->D, g->d_type, g->ldd, m, n, r[(size_t)m * N + n]);
    }
}
