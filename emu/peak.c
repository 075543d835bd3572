/* emu/peak.c — measured peak of this CPU, for `llama_fp8 bench gemm` (% of peak per shape and mode).
 * Register-only loops with enough independent accumulators to hide latency, run on every OpenMP
 * thread at once: fp32 FMA (VFMADD231PS zmm), bf16 dot products (VDPBF16PS zmm, 64 flop each) and fp64 FMA
 * (VFMADD231PD zmm, 16 flop each: the unit of the exact FP8 GEMM). */
#include <omp.h>
#include "emu/emu.h"
#include "emu/emu_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NACC 12
__attribute__((target("avx512f,fma"))) static float peak_fma(long iters) {
    __m512 c[NACC], a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < NACC; i++) c[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) c[i] = _mm512_fmadd_ps(a, c[i], b);
        __asm__ volatile("" : "+v"(a));
    }
    float s = 0;
    for (int i = 0; i < NACC; i++) s += _mm512_reduce_add_ps(c[i]);
    return s;
}
__attribute__((target("avx512f,fma"))) static float peak_fma64(long iters) {
    __m512d c[NACC], a = _mm512_set1_pd(1.0000000001), b = _mm512_set1_pd(0.9999999999);
    for (int i = 0; i < NACC; i++) c[i] = _mm512_set1_pd((double)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) c[i] = _mm512_fmadd_pd(a, c[i], b);
        __asm__ volatile("" : "+v"(a));
    }
    double s = 0;
    for (int i = 0; i < NACC; i++) s += _mm512_reduce_add_pd(c[i]);
    return (float)s;
}
__attribute__((target("avx512f,avx512bf16"))) static float peak_bf16(long iters) {
    __m512 c[NACC];
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3F80), b = (__m512bh)_mm512_set1_epi16(0x3F80);
    for (int i = 0; i < NACC; i++) c[i] = _mm512_setzero_ps();
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) c[i] = _mm512_dpbf16_ps(c[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    float s = 0;
    for (int i = 0; i < NACC; i++) s += _mm512_reduce_add_ps(c[i]);
    return s;
}
#endif

/* VDPBF16PS flop/s over fp32 FMA flop/s on the calling thread: best of 3 short runs of each (~2 ms in
 * all); 0 without AVX512-BF16. emu_use_bf16_dot (emu/gemm_f32.c) picks the unit by it. */
double emu_peak_probe_bf16_over_fma(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!emu_have_avx512bf16()) return 0;
    const long iters = 40000;
    double best[2] = {1e30, 1e30};
    volatile float sink = 0;
    for (int rep = 0; rep < 3; rep++)
        for (int u = 0; u < 2; u++) {
            double t0 = omp_get_wtime();
            sink += u ? peak_fma(iters) : peak_bf16(iters);
            double t = omp_get_wtime() - t0;
            if (t < best[u]) best[u] = t;
        }
    return (64.0 / best[0]) / (32.0 / best[1]);
#else
    return 0;
#endif
}

double emu_peak_gflops(int kind) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (kind == 1 ? !emu_have_avx512bf16() : !emu_have_avx512()) return 0;
    const long iters = 4000000;   /* ~15-30 ms per repetition on one Zen 4 core */
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        volatile float sink = 0;
        double t0 = omp_get_wtime();
        #pragma omp parallel
        { float s = kind == 1 ? peak_bf16(iters) : kind == 2 ? peak_fma64(iters) : peak_fma(iters); sink += s * 0; }
        double t = omp_get_wtime() - t0, fl = (double)iters * NACC * (kind == 1 ? 64 : kind == 2 ? 16 : 32) * omp_get_max_threads();
        if (fl / t > best) best = fl / t;
    }
    return best / 1e9;
#else
    (void)kind;
    return 0;
#endif
}
