/* emu/ops.h — per-element code shared by the CPU (llama_fp8.c, emu/) and the GPU (cuda_kernels.cu):
 * compiled as C by the CPU side and as __host__ __device__ code by nvcc, so a kernel's host twin and the
 * CPU reference are one source, not copies. Include after fp8.h and emu/emu.h. */
#ifndef EMU_OPS_H
#define EMU_OPS_H
#include <math.h>
#ifdef __CUDACC__
#define EMU_HD __host__ __device__ static inline
#define EMU_HD_NOINLINE __host__ __device__ __noinline__ static
#else
#define EMU_HD static inline
#define EMU_HD_NOINLINE static
#endif

/* Perplexity statistics of one row of V logits (double, index order, libm exp / log — the CPU's ppl and
 * the GPU path's host twin; the GPU kernel sums in a tree order instead):
 *   returns log p(target) = l[target] − m − log Σ exp(l[i] − m), m the row's max;
 *   *arg = the first maximal index (from element 0 with l[i] > m: a NaN at index 0 stays the max);
 *   with a base row lb, *kld = KLD(base || row) = Σ p_b[i] (log p_b[i] − log p[i]) (else left as is). */
EMU_HD double emu_ppl_row(const float *lq, const float *lb, long V, int target, int *arg, double *kld) {
    float mq = lq[0];
    int aq = 0;
    for (long i = 1; i < V; i++) if (lq[i] > mq) { mq = lq[i]; aq = (int)i; }
    double zq = 0;
    for (long i = 0; i < V; i++) zq += exp((double)lq[i] - mq);
    double lzq = log(zq);
    *arg = aq;
    if (lb) {
        float mb = lb[0];
        for (long i = 1; i < V; i++) if (lb[i] > mb) mb = lb[i];
        double zb = 0;
        for (long i = 0; i < V; i++) zb += exp((double)lb[i] - mb);
        double lzb = log(zb), k = 0;
        for (long i = 0; i < V; i++) {
            double lpb_i = (double)lb[i] - mb - lzb, lpq_i = (double)lq[i] - mq - lzq;
            k += exp(lpb_i) * (lpb_i - lpq_i);
        }
        *kld = k;
    }
    return (double)lq[target] - mq - lzq;
}
#endif
