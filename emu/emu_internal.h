/* emu/emu_internal.h — shared between the reference and the fast drivers of emu/ (not a public API). */
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H
#include <string.h>
#include "emu/emu.h"

/* No contraction of a·b + c into one fma behind our back (GCC's default in GNU C mode on FMA targets,
 * clang's within an expression): every rounding written in emu/ is one the model performs. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
/* The per-element code shared with the GPU (clamps, scale formulas, encoder, loads, the GEMM epilogue),
 * after the pragma above so that it holds for them too. */
#include "emu/ops.h"
float emu_dot_model(const float *a, const float *b, int K, emu_accum acc, emu_dtype ta, emu_dtype tb);
const float *emu_fp8_table(emu_dtype fmt);   /* exact values of the 256 codes of E4M3 or E5M2 */
/* emu_gemm_f32 for bf16-valued A and BF16 B on VDPBF16PS, the same bits (emu/gemm_fp8.c); 0 = not applicable */
int emu_gemm_f32_bf16pairs(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *D, size_t ldd);
/* emu_gemm_f32 with every k pair's order swapped (A given swapped, B swapped here): `fast` on fp32 FMAs
 * (emu/gemm_f32.c); 0 = no AVX-512, nothing done */
int emu_gemm_f32_swapped(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                         size_t ldb, float *D, size_t ldd);
double emu_peak_probe_bf16_over_fma(void);
/* Scratch space of the GEMMs, one grow-only buffer per thread and slot, kept from call to call (allocating
 * and freeing megabytes every call had the kernel zero fresh pages every time: ~10 % of a run). 64-byte
 * aligned, contents undefined. Slots: */
enum { EMU_S_F32_B, EMU_S_PAIRS_B, EMU_S_PAIRS_A, EMU_S_EXACT_A, EMU_S_EXACT_B, EMU_S_EXACT_C, EMU_S_ACC, EMU_S_R, EMU_S_AF,
       EMU_S_SPLIT_BO, EMU_S_SPLIT_AO, EMU_S_SPLIT_BE, EMU_S_SPLIT_AE, EMU_S_SPLIT_KB, EMU_S_SPLIT_AF, EMU_S_SPLIT_WH, EMU_S_SPLIT_AH2, EMU_S_SPLIT_WH2,
       EMU_S_SPLIT_KL, EMU_S_SPLIT_EK, EMU_S_SPLIT_CT, EMU_S_COUNT };
void *emu_scratch(int slot, size_t bytes);
/* `fast` on fp32 FMA: the k whose value stands at chain position k — its pair partner k ^ 1 when swap is
 * set and both lie inside K and in one group of G, else k itself. */
static inline int emu_korder(int k, int K, int G, int swap) { return swap && (k ^ 1) < K && (k ^ 1) / G == k / G ? k ^ 1 : k; }   /* emu/peak.c: VDPBF16PS flop/s over fp32 FMA flop/s, one thread */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define EMU_T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
/* r[i][j] <- r[j][i]: a 16x16 transpose of 32-bit lanes in registers (the packers of emu/). */
EMU_T_AVX512 static inline __attribute__((always_inline)) void emu_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}
/* 8-bit codes (FP8, INT8) of two rows, 16 each, to fp32 without a gather (the packers of emu/): every FP8 value (and the table's NaN) is exact in bf16,
 * so the 256-entry table is held as bf16 in eight registers (T, 32 entries each) and looked up 64 entries at a time
 * with VPERMI2W (code bits 0-5), bits 6 and 7 choosing among the four; the bf16 results widen to fp32 exactly.
 * emu_tab16 returns 0 (the caller then gathers) if a table value is not exact in bf16. */
static inline int emu_tab16(const float *tab, uint16_t h[256]) {
    for (int c = 0; c < 256; c++) {
        uint32_t u;
        memcpy(&u, &tab[c], 4);
        if (u & 0xFFFF) return 0;
        h[c] = (uint16_t)(u >> 16);
    }
    return 1;
}
EMU_T_AVX512 static inline __attribute__((always_inline)) void emu_dec_rows2(const __m512i T[8], const uint8_t *p0, const uint8_t *p1, __m512 *r0, __m512 *r1) {
    __m256i codes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p0)), _mm_loadu_si128((const __m128i *)p1), 1);
    __m512i c = _mm512_cvtepu8_epi16(codes);
    __mmask32 b6 = _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x40)), b7 = _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x80));
    __m512i lo = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(T[0], c, T[1]), _mm512_permutex2var_epi16(T[2], c, T[3]));
    __m512i hi = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(T[4], c, T[5]), _mm512_permutex2var_epi16(T[6], c, T[7]));
    __m512i h = _mm512_mask_blend_epi16(b7, lo, hi);
    *r0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
    *r1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
}

/* The fp32 6 x 64 output tile of the fmaf-chain kernels (emu/gemm_f32.c kernel_6x64, emu/gemm_fp8.c
 * kernel_bf16_6x64): column masks for nr valid columns; c from D (rows < mr) or zero where first; stored back. */
EMU_T_AVX512 static inline __attribute__((always_inline)) void emu_tile_load(__m512 c[6][4], __mmask16 mk[4], const float *D, size_t ldd, int mr, int nr, int first) {
    for (int j = 0; j < 4; j++) {
        int n = nr - 16 * j;
        mk[j] = n >= 16 ? 0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1) : 0;
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            c[i][j] = (first || i >= mr) ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[j], D + (size_t)i * ldd + 16 * j);
}
EMU_T_AVX512 static inline __attribute__((always_inline)) void emu_tile_store(__m512 c[6][4], const __mmask16 mk[4], float *D, size_t ldd, int mr) {
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)
        if (i < mr)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) _mm512_mask_storeu_ps(D + (size_t)i * ldd + 16 * j, mk[j], c[i][j]);
}

/* bf16_from_float then back, on 16 lanes: RNE by the carry trick; a NaN becomes the quiet NaN 0x7FC0
 * with its sign (fp8.h bf16_from_float). */
EMU_T_AVX512 static inline __m512 emu_bf16_round16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), _mm512_set1_epi32((int)0xFFFF0000u));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    __m512i qn = _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u)), _mm512_set1_epi32(0x7FC00000));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(nan, r, qn));
}
#endif
#endif
