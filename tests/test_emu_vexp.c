/* emu_expf_n (emu/vexp.c, glibc's expf replayed on AVX-512) against the C library's expf on all 2^32 floats:
 * the bits must be equal (NaN: both NaN); emu_exp_n (exp, double) on 2^27 arguments; emu_ppl_row_cpu against
 * emu_ppl_row. The oracle is the libm this test links — the one llama_fp8 uses.
 * Where the vector form is not active (no AVX-512, or a library whose expf is another algorithm) emu_expf_n
 * is the library's expf itself and the comparison is trivial: the test says so. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include "emu/emu_internal.h"

int main(void) {
    int active = emu_vexp_active();
    printf("# vector expf: %s\n", active ? "active (AVX-512, matches this libm on the first-use check)" : "not active: emu_expf_n is libm's expf, the comparison is trivial");
#if defined(__GLIBC__) && defined(__x86_64__)
    if (emu_have_avx512() && !active) { printf("FAIL emu_vexp: glibc on x86-64 with AVX-512, yet the vector expf disagreed with libm on its first-use check\n"); return 1; }
#endif
    long long bad = 0;
    uint32_t first = 0;
    #pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad)
    for (uint32_t hi = 0; hi < 65536; hi++) {
        float x[65536], y[65536];
        for (uint32_t lo = 0; lo < 65536; lo++) { uint32_t u = hi << 16 | lo; memcpy(&x[lo], &u, 4); }
        emu_expf_n(y, x, 65536);
        for (uint32_t lo = 0; lo < 65536; lo++) {
            float r = expf(x[lo]);
            if (memcmp(&r, &y[lo], 4) != 0 && !(isnan(r) && isnan(y[lo]))) {
                if (!bad) { uint32_t u = hi << 16 | lo; 
                    #pragma omp critical
                    if (!first) first = u; }
                bad++;
            }
        }
    }
    if (bad) printf("FAIL emu_vexp: all 2^32 floats: %lld differ from libm expf (first 0x%08x)\n", bad, first);
    else printf("ok emu_vexp: all 2^32 floats: emu_expf_n == libm expf bit for bit (NaN as NaN)\n");
    /* in place, odd lengths and tails (y == x, n not a multiple of 8) */
    float a[37], b[37];
    for (int i = 0; i < 37; i++) { a[i] = (float)(i - 18) * 0.7f; b[i] = expf(a[i]); }
    emu_expf_n(a, a, 37);
    int ok = !memcmp(a, b, sizeof a);
    printf("%s emu_vexp: in place, n = 37 (a tail of 5)\n", ok ? "ok" : "FAIL");
    /* exp (double): 2^27 arguments, random bit patterns over the main range 2^-54 <= |x| < 512 and beyond
     * (uniform in the exponent field, so every binade is covered), plus uniform values in (-745, 710) */
    long long badd = 0;
    #pragma omp parallel for schedule(dynamic, 1) reduction(+ : badd)
    for (int blk = 0; blk < 2048; blk++) {
        double x[65536], y[65536];
        uint64_t r = 0x9E3779B97F4A7C15ull * (uint64_t)(blk + 1);
        for (int j = 0; j < 65536; j++) {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            if (j & 1) x[j] = -745.0 + 1455.0 * (double)(r >> 11) * 0x1p-53;
            else {
                uint64_t e = 0x3b0 + (r >> 53) % (0x40a - 0x3b0);   /* 2^-79 .. 2^11 */
                uint64_t u = (r & 0x8000000000000000ull) | e << 52 | (r & 0xFFFFFFFFFFFFFull);
                memcpy(&x[j], &u, 8);
            }
        }
        emu_exp_n(y, x, 65536);
        for (int j = 0; j < 65536; j++) { double e = exp(x[j]); badd += memcmp(&e, &y[j], 8) != 0; }
    }
    printf("%s emu_vexp: exp (double) on 2^27 arguments (every binade of 2^-79 .. 2^11, and uniform in (-745, 710)): %lld differ from libm exp\n",
           badd ? "FAIL" : "ok", badd);
    /* emu_ppl_row_cpu == emu_ppl_row (emu/ops.h), with and without the KLD, on logit rows of the vocabulary sizes
     * of Llama 3 and of odd lengths, values spread like logits (and a repeated maximum) */
    static const long Vs[] = {128256, 32000, 1001, 7, 1};
    int pbad = 0;
    for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
        long V = Vs[vi];
        float *lq = malloc(sizeof(float) * V), *lb = malloc(sizeof(float) * V);
        uint64_t r = 0x2545F4914F6CDD1Dull + (uint64_t)V;
        for (long i = 0; i < V; i++) {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            lq[i] = (float)((int)(r >> 40 & 0xFFFFF) - 0x80000) / 16384.0f;
            lb[i] = lq[i] + (float)((int)(r & 0xFFF) - 0x800) / 8192.0f;
        }
        if (V > 10) lq[V / 2] = lq[V / 3] = 40.0f;
        for (int with_kld = 0; with_kld < 2; with_kld++) {
            int a1, a2; double k1 = 0, k2 = 0;
            double l1 = emu_ppl_row(lq, with_kld ? lb : NULL, V, (int)(V / 5), &a1, &k1);
            double l2 = emu_ppl_row_cpu(lq, with_kld ? lb : NULL, V, (int)(V / 5), &a2, &k2);
            if (memcmp(&l1, &l2, 8) || a1 != a2 || memcmp(&k1, &k2, 8)) {
                printf("FAIL emu_vexp: emu_ppl_row_cpu V=%ld kld=%d: %.17g/%d/%.17g vs %.17g/%d/%.17g\n", V, with_kld, l2, a2, k2, l1, a1, k1);
                pbad++;
            }
        }
        free(lq); free(lb);
    }
    printf("%s emu_vexp: emu_ppl_row_cpu == emu_ppl_row bit for bit (V = 128256, 32000, 1001, 7, 1; with and without KLD)\n", pbad ? "FAIL" : "ok");
    return bad || !ok || badd || pbad;
}
