/* emu/gemm_f32.c — the fast fp32-accumulating GEMM used by the fp32 and bf16 forward passes.
 *
 * "By far the most amount of time is spent inside this little function." Same contract and the same
 * bits as emu_gemm_f32_ref (emu/gemm_ref.c): every D[m][n] is the fmaf chain over k = 0..K-1.
 * How it stays bit-exact while being fast: the kernel vectorises over n, never over k. A register
 * holds 16 neighbouring columns of one row of D, and each lane performs its own fmaf chain in index
 * order. Cache blocking over k only pauses a chain (the fp32 partial sum is stored to D and loaded
 * again, which is exact); blocking over m and n, and the threads, only decide who computes which
 * element. So the result is independent of blocking and of OMP_NUM_THREADS.
 *
 * Blocking (BLIS-style): each thread takes blocks of NB columns of D (OpenMP over N). For every
 * KC-slice of K it packs the NB×KC block of B (256 KB), converted exactly to fp32, into panels of
 * [KC][64]; then for every MR rows of A it runs the MR×64 micro-kernel (24 zmm accumulators, 4 B loads +
 * 6 broadcasts from six rows of A read in place per 24 FMAs) over the panels. A long KC means few
 * reloads of the accumulators from D; the six rows' slice of A (12 KB) stays in L1, the block of B in L2.
 *
 * emu_gemm_f32_swapped is the same with the k order of every pair swapped (k+1 before k), which is the
 * VDPBF16PS chain of `--accum fast` run on fp32 FMAs: the caller passes A already in that order and B
 * is swapped as it is packed (emu/gemm_fp8.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emu/emu.h"
#include "emu/emu_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMU_X86 1
#include <immintrin.h>
#endif

int emu_have_avx512(void) {
#ifdef EMU_X86
    static int v = -1;
    if (v < 0) v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && !getenv("LLAMA_FP8_NO_SIMD");
    return v;
#else
    return 0;
#endif
}

int emu_have_avx512bf16(void) {
#ifdef EMU_X86
    return emu_have_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

void *emu_scratch(int slot, size_t bytes) {
    static _Thread_local struct { void *p; size_t n; } s[EMU_S_COUNT];
    if (bytes > s[slot].n) {
        size_t n = (bytes + 63) / 64 * 64 + 64;
        free(s[slot].p);
        s[slot].p = aligned_alloc(64, n);
        if (!s[slot].p) { fprintf(stderr, "llama_fp8: out of memory (%zu bytes in emu)\n", bytes); exit(1); }
        s[slot].n = n;
    }
    return s[slot].p;
}

/* Which unit multiplies bf16-valued operands: VDPBF16PS (32 products per instruction) or fp32 FMA on the
 * values widened to fp32 (16 per instruction). Both give the same bits; which is faster is the CPU's
 * business: Zen 4 issues VDPBF16PS as often as an FMA (twice the products), Sapphire/Emerald Rapids at a
 * quarter of the rate of its two FMA ports (half the products). Decided once by timing both on this thread
 * (~2 ms; emu/peak.c); LLAMA_FP8_BF16_DOT=1|0 forces it, and emu_set_bf16_dot overrides both (tests). */
static int bf16_dot = -1;
void emu_set_bf16_dot(int on) { bf16_dot = on < 0 ? -1 : on && emu_have_avx512bf16(); }
int emu_use_bf16_dot(void) {
    if (bf16_dot < 0) {
        const char *e = getenv("LLAMA_FP8_BF16_DOT");
        if (!emu_have_avx512bf16()) bf16_dot = 0;
        else if (e && *e) bf16_dot = atoi(e) != 0;
        else bf16_dot = emu_peak_probe_bf16_over_fma() > 1.25;
    }
    return bf16_dot;
}

#ifdef EMU_X86
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
enum { MR = 6, NR = 64, NB = 128, KC = 512 };

/* Bp[p][k][j] = fp32(B[n0 + 64p + j][k0 + k]), zero beyond nb. 16 rows × 16 k at a time are
 * converted and transposed in registers. */
T_AVX512 static inline __attribute__((always_inline)) __m512 load16(const void *B, emu_dtype t, size_t i, const float *tab) {
    switch (t) {
    case EMU_BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
                                  _mm256_loadu_si256((const __m256i *)((const uint16_t *)B + i))), 16));
    case EMU_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)B + i)));
    case EMU_I8: return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const int8_t *)B + i))));
    case EMU_E4M3: case EMU_E5M2: {   /* exact decode through a 256-entry table */
        return _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)((const uint8_t *)B + i))), tab, 4);
    }
    default: return _mm512_loadu_ps((const float *)B + i);
    }
}

/* (korder: emu_korder within one group, the caller passing one group at a time.) */
static inline size_t korder(int k, int K, int swap) { return (size_t)emu_korder(k, K, K, swap); }

/* (16 k at a time start at an even k and lie inside K, so swapping neighbours swaps whole pairs.) */
T_AVX512 static void pack_b(float *Bp, const void *B, emu_dtype t, size_t ldb, int n0, int nb, int k0, int kc, int K, int swap,
                            const float *tab, const __m512i *T16) {
    int np = (nb + NR - 1) / NR;
    for (int p = 0; p < np; p++) {
        float *dst = Bp + (size_t)p * kc * NR;
        for (int j0 = 0; j0 < NR; j0 += 16) {
            int n = n0 + p * NR + j0, rows = nb - (p * NR + j0);
            if (rows >= 16) {
                int k = 0;
                /* the next 16 rows' stretch of this k block is prefetched while these are packed: each row's
                 * stretch is only kc elements long, too short for the hardware prefetcher to learn */
                int pf = rows >= 32;
                size_t es = t == EMU_F32 ? 4 : t == EMU_BF16 || t == EMU_F16 ? 2 : 1;
                const char *nx = (const char *)B + ((size_t)(n + 16) * ldb + k0) * es;
                for (; k + 16 <= kc; k += 16) {
                    __m512 r[16];
                    if (pf && (k * es) % 64 == 0)
                        for (int i = 0; i < 16; i++) _mm_prefetch(nx + ((size_t)i * ldb + k) * es, _MM_HINT_T0);
                    if (T16)
                        for (int i = 0; i < 16; i += 2)
                            emu_dec_rows2(T16, (const uint8_t *)B + (size_t)(n + i) * ldb + k0 + k, (const uint8_t *)B + (size_t)(n + i + 1) * ldb + k0 + k, &r[i], &r[i + 1]);
                    else
                        for (int i = 0; i < 16; i++) r[i] = load16(B, t, (size_t)(n + i) * ldb + k0 + k, tab);
                    if (swap)
                        for (int i = 0; i < 16; i++) r[i] = _mm512_permute_ps(r[i], 0xB1);
                    emu_transpose16(r);
                    for (int i = 0; i < 16; i++) _mm512_store_ps(dst + (size_t)(k + i) * NR + j0, r[i]);
                }
                for (; k < kc; k++)
                    for (int i = 0; i < 16; i++) dst[(size_t)k * NR + j0 + i] = emu_load(B, t, (size_t)(n + i) * ldb + korder(k0 + k, K, swap));
            } else {
                for (int k = 0; k < kc; k++)
                    for (int i = 0; i < 16; i++)
                        dst[(size_t)k * NR + j0 + i] = i < rows ? emu_load(B, t, (size_t)(n + i) * ldb + korder(k0 + k, K, swap)) : 0.0f;
            }
        }
    }
}

/* D[0..mr)[0..nr) (+)= A[0..mr)[0..kc) · Bp[kc][64]: one fmaf chain per element, in k order. A is read in
 * place (six rows of stride lda); rows past mr repeat row 0 and are computed but never stored. */
T_AVX512 static void kernel_6x64(int kc, const float *A, size_t lda, const float *Bp, float *D, size_t ldd, int mr, int nr, int first) {
    const float *a[MR];
    for (int i = 0; i < MR; i++) a[i] = A + (size_t)(i < mr ? i : 0) * lda;
    __mmask16 mk[4];
    __m512 c[MR][4];
    emu_tile_load(c, mk, D, ldd, mr, nr, first);
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(Bp + (size_t)k * NR), b1 = _mm512_load_ps(Bp + (size_t)k * NR + 16);
        __m512 b2 = _mm512_load_ps(Bp + (size_t)k * NR + 32), b3 = _mm512_load_ps(Bp + (size_t)k * NR + 48);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512 av = _mm512_set1_ps(a[i][k]);
            c[i][0] = _mm512_fmadd_ps(av, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(av, b1, c[i][1]);
            c[i][2] = _mm512_fmadd_ps(av, b2, c[i][2]);
            c[i][3] = _mm512_fmadd_ps(av, b3, c[i][3]);
        }
    }
    emu_tile_store(c, mk, D, ldd, mr);
}

/* Few rows of A (decode-like, M ≤ 4): no packing. 16 rows of B × 16 k are loaded, converted and
 * transposed in registers and used at once; each lane still runs its own fmaf chain in k order.
 * (The body is its own function: clang does not give OpenMP's outlined region the target attribute.) */
T_AVX512 static void smallm_block(int M, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                                  size_t ldb, float *D, size_t ldd, int n0, int rows, int swap, const float *tab) {
    __mmask16 mk = rows == 16 ? 0xFFFF : (__mmask16)((1u << rows) - 1);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
            r[i] = i < rows ? load16(B, btype, (size_t)(n0 + i) * ldb + k, tab) : _mm512_setzero_ps();
            if (swap) r[i] = _mm512_permute_ps(r[i], 0xB1);
        }
        emu_transpose16(r);                             /* r[j] = B[n0 .. n0+15][k + j] */
        for (int j = 0; j < 16; j++)
            for (int m = 0; m < M; m++) acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(A[(size_t)m * lda + k + j]), r[j], acc[m]);
    }
    for (; k < K; k++) {
        float col[16];
        for (int i = 0; i < 16; i++) col[i] = i < rows ? emu_load(B, btype, (size_t)(n0 + i) * ldb + korder(k, K, swap)) : 0.0f;
        __m512 b = _mm512_loadu_ps(col);
        for (int m = 0; m < M; m++) acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(A[(size_t)m * lda + k]), b, acc[m]);
    }
    for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(D + (size_t)m * ldd + n0, mk, acc[m]);
}

static void gemm_f32_smallm(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                            size_t ldb, float *D, size_t ldd, int swap) {
    int nblk = (N + 15) / 16;
    const float *tab = btype == EMU_E4M3 || btype == EMU_E5M2 ? emu_fp8_table(btype) : NULL;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++)
        smallm_block(M, K, A, lda, B, btype, ldb, D, ldd, blk * 16, N - blk * 16 < 16 ? N - blk * 16 : 16, swap, tab);
}

T_AVX512 static void gemm_f32_avx512(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                                     size_t ldb, float *D, size_t ldd, int swap) {
    int nblocks = (N + NB - 1) / NB;
    const float *tab = btype == EMU_E4M3 || btype == EMU_E5M2 ? emu_fp8_table(btype) : NULL;
    uint16_t h[256];
    __m512i T16[8];
    int fast_fp8 = tab && emu_tab16(tab, h);
    if (fast_fp8)
        for (int i = 0; i < 8; i++) T16[i] = _mm512_loadu_si512(h + 32 * i);
    #pragma omp parallel
    {
        float *Bp = emu_scratch(EMU_S_F32_B, sizeof(float) * NB * KC);
        #pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < nblocks; blk++) {
            int n0 = blk * NB, nb = N - n0 < NB ? N - n0 : NB;
            for (int k0 = 0; k0 < K; k0 += KC) {
                int kc = K - k0 < KC ? K - k0 : KC;
                pack_b(Bp, B, btype, ldb, n0, nb, k0, kc, K, swap, tab, fast_fp8 ? T16 : NULL);
                for (int m0 = 0; m0 < M; m0 += MR)
                    for (int p = 0; p * NR < nb; p++)
                        kernel_6x64(kc, A + (size_t)m0 * lda + k0, lda, Bp + (size_t)p * kc * NR, D + (size_t)m0 * ldd + n0 + p * NR,
                                    ldd, M - m0 < MR ? M - m0 : MR, nb - p * NR < NR ? nb - p * NR : NR, k0 == 0);
            }
            if (K == 0)
                for (int m = 0; m < M; m++) memset(D + (size_t)m * ldd + n0, 0, sizeof(float) * nb);
        }
    }
}
#endif

void emu_gemm_f32(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                  size_t ldb, float *D, size_t ldd) {
#ifdef EMU_X86
    if (emu_have_avx512()) {
        if (M > 4 && btype == EMU_BF16 && emu_use_bf16_dot() && emu_gemm_f32_bf16pairs(M, N, K, A, lda, B, ldb, D, ldd)) return;   /* same bits */
        if (M <= 4) gemm_f32_smallm(M, N, K, A, lda, B, btype, ldb, D, ldd, 0);
        else gemm_f32_avx512(M, N, K, A, lda, B, btype, ldb, D, ldd, 0);
        return;
    }
#endif
    emu_gemm_f32_ref(M, N, K, A, lda, B, btype, ldb, D, ldd);
}

int emu_gemm_f32_swapped(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                         size_t ldb, float *D, size_t ldd) {
#ifdef EMU_X86
    if (emu_have_avx512()) {
        if (M <= 4) gemm_f32_smallm(M, N, K, A, lda, B, btype, ldb, D, ldd, 1);
        else gemm_f32_avx512(M, N, K, A, lda, B, btype, ldb, D, ldd, 1);
        return 1;
    }
#endif
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)btype; (void)ldb; (void)D; (void)ldd;
    return 0;
}
