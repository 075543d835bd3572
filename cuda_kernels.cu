/* cuda_kernels.cu — the GPU path of llama_fp8 (built by `make CUDA=1`, linked into the one binary).
 *
 * Every kernel here has a CPU twin in emu/ (GEMMs, quantization) or in llama_fp8.c's forward()
 * (elementwise ops, attention), and computes the same function:
 *   - quantization: the per-element formulas (scale rules, clamps, codes) are emu/ops.h's __host__
 *     __device__ functions, the very source emu/quant.c compiles, encoding with fp8.h's encoder — so
 *     bit-identical to emu/quant.c (max-reductions are order-free: the parallel reduction changes nothing);
 *   - GEMM "model": the accumulation models of emu/models.h (the same source the CPU compiles), one
 *     thread per output; exact E4M3 / INT8 by an int64 tile kernel; fp32 activations by the fmaf chain;
 *   - GEMM "mma": hand-written mma.sync.m16n8k32 E4M3/E5M2 kernel (sm_89; on sm_90a ptxas lowers it to
 *     fp16 HMMA); GEMM "wgmma": hand-written wgmma.mma_async.m64n128k32 kernel (sm_90a: Hopper's FP8
 *     tensor cores); both accumulate raw over K (compare with emu `hopper` / `ada`) or promote to fp32
 *     every 128 k (emu `cublaslt`); the epilogue is emu/ops.h's, as in emu/gemm_ref.c;
 *   - GEMM "cublaslt": cuBLASLt FP8 matmul, TN layout, fp32 scales, FAST_ACCUM on or off;
 *   - forward()'s other ops: RMSNorm, RoPE, causal GQA attention (tiled), SwiGLU, residual add, FP8 KV
 *     store, and ppl's per-row statistics, in the CPU's order of operations (sequential where the CPU
 *     sums sequentially), expf by a port of glibc's expf so that SiLU and softmax give the CPU's bits.
 * The file is compiled with --fmad=false (the C side uses -ffp-contract=off): a·b + c is two roundings
 * unless fmaf() is written.
 *
 * Interface (extern "C", declared in cuda_kernels.h, which llama_fp8.c includes too):
 *   - cud_*: ops on device pointers, the resident forward pass (weights, activations and KV cache stay
 *     on the GPU). After cud_twin(1) each runs its host twin instead: loops over the same __host__
 *     __device__ functions on host memory, so the whole GPU path is exercised on a machine without a GPU;
 *   - cu_*: the same ops on host memory (copy in, run, copy out) for tests/cuda_check.c --kernels, and
 *     cu_host_*: the shared per-element code compiled for the CPU (tests/cuda_check.c --host).
 * Errors: one line on stderr and exit(1). */
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fp8.h"
#include "emu/emu.h"
#include "emu/ops.h"        /* the per-element code shared with emu/: encoder, clamps, scales, loads, epilogue */
#include "cuda_kernels.h"   /* the extern "C" interface: prototypes and enums shared with llama_fp8.c */

#define HD EMU_HD
#define HD_NOINLINE EMU_HD_NOINLINE   /* big bodies: one copy, faster ptxas */

/* ---------------------------------------------------------------------------------------------
 * Errors and device selection
 * ------------------------------------------------------------------------------------------- */
static void cu_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "llama_fp8: error: CUDA: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}
#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) cu_fail("%s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); } while (0)
#define CK_LAUNCH(name) do { cudaError_t e_ = cudaGetLastError(); if (e_ == cudaSuccess) e_ = cudaDeviceSynchronize(); \
    if (e_ != cudaSuccess) cu_fail("kernel %s: %s", name, cudaGetErrorString(e_)); } while (0)

static int g_device = -1;        /* the device in use, -1 until cu_probe found one */
static cudaDeviceProp g_prop;

extern "C" {

/* Looks for a GPU of compute capability 8.9 (Ada) or 9.x (Hopper); the first one found is used.
 * Returns 1 and describes it ("NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)"), or returns 0 and writes
 * why not ("no CUDA device: ...", "NVIDIA A100 is sm_80; FP8 needs sm_89 or sm_90"). */
int cu_probe(char *desc, size_t len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(desc, len, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "count is 0");
        cudaGetLastError();
        return 0;
    }
    char first[160] = "";
    for (int d = 0; d < n; d++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
        int cc = p.major * 10 + p.minor;
        if (cc == 89 || p.major == 9) {
            CK(cudaSetDevice(d));
            g_device = d;
            g_prop = p;
            snprintf(desc, len, "%s (sm_%d%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
                     p.totalGlobalMem / 1073741824.0);
            return 1;
        }
        if (!first[0]) snprintf(first, sizeof first, "%s is sm_%d%d; the FP8 path needs sm_89 or sm_9x", p.name, p.major, p.minor);
    }
    snprintf(desc, len, "%s", first[0] ? first : "no usable CUDA device");
    return 0;
}

int cu_compute_capability(void) { return g_device < 0 ? 0 : g_prop.major * 10 + g_prop.minor; }

} /* extern "C" */

static void need_device(void) {
    if (g_device < 0) {
        char d[200];
        if (!cu_probe(d, sizeof d)) cu_fail("no usable GPU: %s", d);
    }
}

/* Device buffers for the host-memory interface. */
static void *dalloc(size_t n) { void *p; CK(cudaMalloc(&p, n ? n : 1)); return p; }
static void *dupload(const void *h, size_t n) { void *p = dalloc(n); if (n) CK(cudaMemcpy(p, h, n, cudaMemcpyHostToDevice)); return p; }
static void download(void *h, const void *d, size_t n) { if (n) CK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); }

/* ---------------------------------------------------------------------------------------------
 * Shared numerics (host and device): emu/ops.h — FP8 encode/decode through fp8.h, the clamps and scale
 * rules of row quantization (emu_quant_scale, emu_quant_code), loads, bf16 rounding, the GEMM epilogue
 * ------------------------------------------------------------------------------------------- */
HD float Bq(int bf16, float x) { return bf16 ? emu_bf16_round(x) : x; }   /* forward()'s B(q, x) */

/* ---------------------------------------------------------------------------------------------
 * Row quantization (emu/quant.c conventions). A "tile" is the set of elements sharing one scale:
 * a row (token, channel), a 1×G group, a BN×BK block. Its scale comes from its absmax by the rule
 * (EMU_Q_*: emu_quant_scale), each code from x / s under the rule's clamp (emu_quant_code).
 * ------------------------------------------------------------------------------------------- */
/* One CUDA block per tile: max-reduce |x| (fmaxf drops NaN, as emu's loop does; max is order-free),
 * compute the scale, encode q = fp8(clamp(x / s)). */
__global__ void k_quant_tiles(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K,
                              int TR, int TC, int rule, emu_dtype t, float param) {
    int nct = (K + TC - 1) / TC, tj = (int)(blockIdx.x % nct), ti = (int)(blockIdx.x / nct);   /* 1-D grid: no 65535 limit on rows */
    int r0 = ti * TR, c0 = tj * TC, nr = min(TR, M - r0), nc = min(TC, K - c0);
    __shared__ float red[32];
    float a = 0.0f;
    for (int i = threadIdx.x; i < nr * nc; i += blockDim.x) a = fmaxf(a, fabsf(x[(size_t)(r0 + i / nc) * ldx + c0 + i % nc]));
    for (int o = 16; o; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = a;
    __syncthreads();
    if (threadIdx.x < 32) {
        a = threadIdx.x < (blockDim.x + 31) / 32 ? red[threadIdx.x] : 0.0f;
        for (int o = 16; o; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
        if (threadIdx.x == 0) red[0] = a;
    }
    __syncthreads();
    float s = emu_quant_scale(rule, red[0], t, param);
    if (threadIdx.x == 0) scale[(size_t)ti * nct + tj] = s;
    for (int i = threadIdx.x; i < nr * nc; i += blockDim.x) {
        size_t r = r0 + i / nc, c = c0 + i % nc;
        q[r * ldq + c] = emu_quant_code(rule, x[r * ldx + c] / s, t);
    }
}

/* Static per-tensor: q = fp8(clamp(x · inv)), inv = 1.0f / s computed once on the host (as vLLM). */
__global__ void k_quant_mul(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype t, float inv, float *scale, float s) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (scale && i == 0) scale[0] = s;   /* the scale the GEMM epilogue reads (NULL: not wanted) */
    if (i >= (size_t)M * K) return;
    size_t r = i / K, c = i % K;
    q[r * ldq + c] = emu_quant_code(EMU_Q_TENSOR, x[r * ldx + c] * inv, t);
}
/* Nonnegative floats order like their bits: atomicMax on the bits is a float max (NaN already dropped). */
__global__ void k_absmax(unsigned *out, const float *x, size_t ldx, int M, int K) {
    float a = 0.0f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)M * K; i += (size_t)gridDim.x * blockDim.x)
        a = fmaxf(a, fabsf(x[(i / K) * ldx + i % K]));
    for (int o = 16; o; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(a));
}

static void quant_tiles(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int TR, int TC,
                        int rule, emu_dtype t, float param, int nscale) {
    need_device();
    if (M <= 0 || K <= 0) return;
    size_t xb = ((size_t)(M - 1) * ldx + K) * 4, qb = (size_t)(M - 1) * ldq + K;
    float *dx = (float *)dupload(x, xb), *ds = (float *)dalloc((size_t)nscale * 4);
    uint8_t *dq = (uint8_t *)dupload(q, qb);   /* keep bytes between rows (ldq > K) as they were */
    dim3 grid((K + TC - 1) / TC, (M + TR - 1) / TR);
    k_quant_tiles<<<grid.x * grid.y, 256>>>(dq, ldq, ds, dx, ldx, M, K, TR, TC, rule, t, param);
    CK_LAUNCH("quant_tiles");
    download(q, dq, qb); download(scale, ds, (size_t)nscale * 4);
    cudaFree(dx); cudaFree(ds); cudaFree(dq);
}

extern "C" {
/* Same signatures and bits as the emu/ twins (emu/emu.h). */
void cu_quant_token(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float scale_ub) {
    quant_tiles(q, ldq, scale, x, ldx, M, K, 1, K, EMU_Q_TOKEN, fmt, scale_ub, M);
}
void cu_quant_channel(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, emu_dtype fmt) {
    quant_tiles(q, ldq, scale, w, ldw, N, K, 1, K, EMU_Q_CHANNEL, fmt, 0, N);
}
void cu_quant_group(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int G, emu_dtype fmt) {
    quant_tiles(q, ldq, scale, x, ldx, M, K, 1, G, EMU_Q_GROUP, fmt, 0, M * ((K + G - 1) / G));
}
void cu_quant_block(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, int BN, int BK, emu_dtype fmt) {
    quant_tiles(q, ldq, scale, w, ldw, N, K, BN, BK, EMU_Q_BLOCK, fmt, 0, ((N + BN - 1) / BN) * ((K + BK - 1) / BK));
}
void cu_quant_tensor(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float s) {
    need_device();
    if (M <= 0 || K <= 0) return;
    size_t xb = ((size_t)(M - 1) * ldx + K) * 4, qb = (size_t)(M - 1) * ldq + K, n = (size_t)M * K;
    float *dx = (float *)dupload(x, xb);
    uint8_t *dq = (uint8_t *)dupload(q, qb);
    k_quant_mul<<<(unsigned)((n + 255) / 256), 256>>>(dq, ldq, dx, ldx, M, K, fmt, 1.0f / s, NULL, s);
    CK_LAUNCH("quant_tensor");
    download(q, dq, qb);
    cudaFree(dx); cudaFree(dq);
}
float cu_quant_tensor_dynamic(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt) {
    need_device();
    if (M <= 0 || K <= 0) return 0.0f;
    size_t xb = ((size_t)(M - 1) * ldx + K) * 4;
    float *dx = (float *)dupload(x, xb);
    unsigned *da = (unsigned *)dalloc(4), ha = 0;
    CK(cudaMemset(da, 0, 4));
    k_absmax<<<256, 256>>>(da, dx, ldx, M, K);
    CK_LAUNCH("absmax");
    download(&ha, da, 4);
    cudaFree(dx); cudaFree(da);
    float a; memcpy(&a, &ha, 4);
    float s = emu_quant_scale(EMU_Q_TENSOR, a, fmt, 0);
    cu_quant_tensor(q, ldq, x, ldx, M, K, fmt, s);
    return s;
}

/* Host loops over the same __host__ __device__ formulas (what the GPU computes, evaluated on the CPU):
 * compared with emu/ on machines without a GPU. rule: 0 token, 1 channel, 2 group (TR = 1, TC = G),
 * 3 block. */
void cu_host_quant_tiles(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int TR, int TC,
                         int rule, emu_dtype t, float param) {
    int nct = (K + TC - 1) / TC;
    for (int ti = 0; ti * TR < M; ti++)
        for (int tj = 0; tj < nct; tj++) {
            int r0 = ti * TR, c0 = tj * TC, nr = M - r0 < TR ? M - r0 : TR, nc = K - c0 < TC ? K - c0 : TC;
            float a = 0.0f;
            for (int i = nr * nc - 1; i >= 0; i--) a = fmaxf(a, fabsf(x[(size_t)(r0 + i / nc) * ldx + c0 + i % nc])); /* reversed: order-free */
            float s = emu_quant_scale(rule, a, t, param);
            scale[(size_t)ti * nct + tj] = s;
            for (int i = 0; i < nr * nc; i++) {
                size_t r = r0 + i / nc, c = c0 + i % nc;
                q[r * ldq + c] = emu_quant_code(rule, x[r * ldx + c] / s, t);
            }
        }
}
} /* extern "C" */

/* ---------------------------------------------------------------------------------------------
 * Accumulation models: emu/models.h, shared with the CPU reference
 * ------------------------------------------------------------------------------------------- */
#include "emu/models.h"   /* the accumulation models: the same source as the CPU reference */

/* One output element of the scaled GEMM under an accumulation model: the body of emu_gemm_ref. */
struct Gemm {
    int M, N, K; emu_dtype ta, tb, td; const void *A, *B; void *D; size_t lda, ldb, ldd; emu_accum acc; emu_epi epi;
};
HD_NOINLINE void gemm_element(const Gemm &g, int m, int n, float *a, float *b) {
    int K = g.K, ng = emu_epi_groups(&g.epi);
    for (int k = 0; k < K; k++) { a[k] = emu_load_el(g.A, g.ta, (size_t)m * g.lda + k); b[k] = emu_load_el(g.B, g.tb, (size_t)n * g.ldb + k); }
    float r = 0;
    if (!ng) r = emu_epi_plain(&g.epi, m, n, dot_model(a, b, K, g.acc, g.ta, g.tb));
    for (int gi = 0; gi < ng; gi++) {
        int k0 = gi * EMU_BLOCK, kn = K - k0 < EMU_BLOCK ? K - k0 : EMU_BLOCK;
        r = r + emu_epi_group(&g.epi, m, n, gi, dot_model(a + k0, b + k0, kn, g.acc, g.ta, g.tb));
    }
    emu_epi_store(g.D, g.td, g.ldd, m, n, r);
}

/* fp32 activations × stored weights (weight-only and the fp32/bf16 schemes): every output is the fmaf
 * chain over k in index order, exactly emu_gemm_f32's; 32×32 output tiles through shared memory only
 * change where the operands come from, not the order. */
__global__ void k_gemm_f32(Gemm g) {
    __shared__ float As[32][33], Bs[32][33];
    int m0 = blockIdx.y * 32, n0 = blockIdx.x * 32, tx = threadIdx.x, ty = threadIdx.y;
    float acc[4] = {0, 0, 0, 0};
    const float *A = (const float *)g.A;
    for (int k0 = 0; k0 < g.K; k0 += 32) {
        for (int j = ty; j < 32; j += 8) {
            int m = m0 + j, n = n0 + j, k = k0 + tx;
            As[j][tx] = m < g.M && k < g.K ? A[(size_t)m * g.lda + k] : 0.0f;
            Bs[j][tx] = n < g.N && k < g.K ? emu_load_el(g.B, g.tb, (size_t)n * g.ldb + k) : 0.0f;
        }
        __syncthreads();
        int kn = g.K - k0 < 32 ? g.K - k0 : 32;   /* no padded fmaf(0, 0, acc): -0 + 0 would change the sign of a -0 */
        for (int k = 0; k < kn; k++)
            for (int j = 0; j < 4; j++) acc[j] = fmaf(As[ty + 8 * j][k], Bs[tx][k], acc[j]);
        __syncthreads();
    }
    int n = n0 + tx;
    for (int j = 0; j < 4; j++) {
        int m = m0 + ty + 8 * j;
        if (m >= g.M || n >= g.N) continue;
        float v = emu_epi_plain(&g.epi, m, n, acc[j]);
        emu_epi_store(g.D, g.td, g.ldd, m, n, v);
    }
}

/* Exact E4M3×E4M3: products are integers × 2^-18 below 2^35.6; K < 2^26 of them fit int64 (INT8×INT8:
 * integers below 2^14). Shared tiles of 32×32 outputs, codes turned into integers (E4M3: value · 2^9)
 * through a 256-entry table; the sum is rounded once to fp32 at the end (per 128-group with block scales). */
__global__ void k_gemm_exact_int(Gemm g) {
    int i8 = g.ta == EMU_I8, shift = i8 ? 0 : 18;   /* INT8: the values are the integers themselves */
    __shared__ int32_t ti[256];
    __shared__ int32_t As[32][33], Bs[32][33];
    __shared__ int nanA[32], nanB[32];                 /* a NaN code in row m of A / row n of B: output NaN */
    for (int c = threadIdx.y * 32 + threadIdx.x; c < 256; c += 32 * 8)
        ti[c] = i8 ? (int32_t)(int8_t)c : (c & 0x7F) == 0x7F ? 0 : (int32_t)ldexpf(emu_fp8_value((uint8_t)c, EMU_E4M3), 9);
    if (threadIdx.y == 0) { nanA[threadIdx.x] = 0; nanB[threadIdx.x] = 0; }
    int m0 = blockIdx.y * 32, n0 = blockIdx.x * 32, tx = threadIdx.x, ty = threadIdx.y;
    long long acc[4] = {0, 0, 0, 0};
    const uint8_t *A = (const uint8_t *)g.A, *B = (const uint8_t *)g.B;
    int ng = emu_epi_groups(&g.epi);
    float r[4] = {0, 0, 0, 0};
    __syncthreads();
    for (int k0 = 0; k0 < g.K; k0 += 32) {
        for (int j = ty; j < 32; j += 8) {
            int m = m0 + j, n = n0 + j, k = k0 + tx;
            uint8_t ca = m < g.M && k < g.K ? A[(size_t)m * g.lda + k] : 0, cb = n < g.N && k < g.K ? B[(size_t)n * g.ldb + k] : 0;
            As[j][tx] = ti[ca];
            Bs[j][tx] = ti[cb];
            if (!i8 && (ca & 0x7F) == 0x7F) nanA[j] = 1;
            if (!i8 && (cb & 0x7F) == 0x7F) nanB[j] = 1;
        }
        __syncthreads();
        for (int k = 0; k < 32; k++)
            for (int j = 0; j < 4; j++) acc[j] += (long long)As[ty + 8 * j][k] * Bs[tx][k];
        __syncthreads();
        if (ng && ((k0 + 32) % EMU_BLOCK == 0 || k0 + 32 >= g.K)) {   /* end of a 128-group */
            int gi = k0 / EMU_BLOCK, n = n0 + tx;
            for (int j = 0; j < 4; j++) {
                int m = m0 + ty + 8 * j;
                if (m < g.M && n < g.N) r[j] = r[j] + emu_epi_group(&g.epi, m, n, gi, (float)ldexp((double)acc[j], -shift));
                acc[j] = 0;
            }
        }
    }
    int n = n0 + tx;
    for (int j = 0; j < 4; j++) {
        int m = m0 + ty + 8 * j;
        if (m >= g.M || n >= g.N) continue;
        /* |acc| < 2^62: (double) rounds only beyond 2^53 — convert via the exact path instead */
        float v;
        if (ng) v = r[j];
        else {
            long long s = acc[j];
            int neg = s < 0;
            unsigned long long u = neg ? -(unsigned long long)s : (unsigned long long)s;
            v = ldexpf(__ull2float_rn(u), -shift);
            v = emu_epi_plain(&g.epi, m, n, neg ? -v : v);
        }
        if (nanA[ty + 8 * j] || nanB[tx]) v = NAN;
        emu_epi_store(g.D, g.td, g.ldd, m, n, v);
    }
}

/* ---------------------------------------------------------------------------------------------
 * GEMM 1: SIMT emulation of every accumulation model (the emu/ reference, run on the GPU)
 * ------------------------------------------------------------------------------------------- */
__global__ void k_gemm_model(Gemm g, float *scratch, size_t i0, size_t count) {
    size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (j >= count) return;
    size_t i = i0 + j;
    float *a = scratch + j * 2 * (size_t)g.K, *b = a + g.K;
    gemm_element(g, (int)(i / g.N), (int)(i % g.N), a, b);
}

/* ---------------------------------------------------------------------------------------------
 * GEMM 2: hand-written tensor-core FP8 GEMM, mma.sync.m16n8k32 (sm_89 and later)
 * Block tile 128×128, k-tile 64, 8 warps as 2 (m) × 4 (n), warp tile 64×32 = 4×4 mma tiles;
 * two shared-memory stages filled by cp.async (16-byte chunks, zero-filled past the edges).
 * Accumulation: the hardware's, chained over all of K (raw: compare with emu `hopper` / `ada`), or
 * restarted from 0 every 128 k and added in fp32 (promote: emu `cublaslt`; also block scales).
 * Requires K, lda, ldb multiples of 16 and 16-byte aligned A, B.
 * ------------------------------------------------------------------------------------------- */
enum { MMA_BM = 128, MMA_BN = 128, MMA_BK = 64, MMA_LDS = 80, MMA_THREADS = 256 };
struct MmaArgs {
    const uint8_t *A, *B; int M, N, K; size_t lda, ldb;
    int promote, blockscale; emu_epi epi; emu_dtype td; void *D; size_t ldd;
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait1() { asm volatile("cp.async.wait_group 1;\n" ::); }

template <int E5>
__device__ __forceinline__ void mma_fp8(float *c, const unsigned *a, const unsigned *b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    if (E5)
        asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();   /* never launched below sm_89 (cu_probe refuses such devices) */
#endif
}

/* Epilogue pieces out of line: called at 64 unrolled sites, inlined they made the kernel 33k
 * instructions (and ptxas slow) for no speed that matters next to the K loop. */
__device__ __noinline__ float mma_group(const MmaArgs &g, int m, int n, int gi, float v) {
    return (m < g.M && n < g.N) ? emu_epi_group(&g.epi, m, n, gi, v) : 0.0f;
}
__device__ __noinline__ void mma_store(const MmaArgs &g, int m, int n, float v) {
    if (m >= g.M || n >= g.N) return;
    if (!g.blockscale) v = emu_epi_plain(&g.epi, m, n, v);
    emu_epi_store(g.D, g.td, g.ldd, m, n, v);
}

template <int E5, int GROUPED>
__global__ void __launch_bounds__(MMA_THREADS) k_gemm_mma(MmaArgs g) {
    __shared__ __align__(16) uint8_t smem[2][MMA_BM + MMA_BN][MMA_LDS];
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wm = warp >> 2, wn = warp & 3;
    int gid = lane >> 2, tig = lane & 3;
    int m0 = blockIdx.y * MMA_BM, n0 = blockIdx.x * MMA_BN;
    float acc[4][4][4], tot[GROUPED ? 4 : 1][GROUPED ? 4 : 1][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) { acc[i][j][c] = 0.0f; if (GROUPED) tot[GROUPED ? i : 0][GROUPED ? j : 0][c] = 0.0f; }
    int ktiles = (g.K + MMA_BK - 1) / MMA_BK;
    auto load = [&](int kt, int s) {
#pragma unroll
        for (int c = tid; c < MMA_BM * MMA_BK / 16; c += MMA_THREADS) {
            int row = c >> 2, col = (c & 3) * 16, k = kt * MMA_BK + col;
            int ok = k < g.K, kk = ok ? k : 0;
            int m = m0 + row, n = n0 + row;
            cp_async16(&smem[s][row][col], g.A + (size_t)(m < g.M ? m : 0) * g.lda + kk, ok && m < g.M ? 16 : 0);
            cp_async16(&smem[s][MMA_BM + row][col], g.B + (size_t)(n < g.N ? n : 0) * g.ldb + kk, ok && n < g.N ? 16 : 0);
        }
    };
    load(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < ktiles; kt++) {
        if (kt + 1 < ktiles) load(kt + 1, (kt + 1) & 1);
        cp_async_commit();
        cp_async_wait1();
        __syncthreads();
        const uint8_t(*S)[MMA_LDS] = smem[kt & 1];
#pragma unroll
        for (int kk = 0; kk < MMA_BK; kk += 32) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int r = wm * 64 + i * 16 + gid;
                af[i][0] = *(const unsigned *)&S[r][kk + tig * 4];
                af[i][1] = *(const unsigned *)&S[r + 8][kk + tig * 4];
                af[i][2] = *(const unsigned *)&S[r][kk + 16 + tig * 4];
                af[i][3] = *(const unsigned *)&S[r + 8][kk + 16 + tig * 4];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int r = MMA_BM + wn * 32 + j * 8 + gid;
                bf[j][0] = *(const unsigned *)&S[r][kk + tig * 4];
                bf[j][1] = *(const unsigned *)&S[r][kk + 16 + tig * 4];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_fp8<E5>(acc[i][j], af[i], bf[j]);
        }
        __syncthreads();
        if (GROUPED && (((kt + 1) * MMA_BK) % EMU_BLOCK == 0 || kt + 1 == ktiles)) {
            int gi = kt * MMA_BK / EMU_BLOCK;
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        int m = m0 + wm * 64 + i * 16 + gid + (c >= 2 ? 8 : 0), n = n0 + wn * 32 + j * 8 + tig * 2 + (c & 1);
                        float v = acc[i][j][c];
                        if (g.blockscale) v = mma_group(g, m, n, gi, v);
                        tot[GROUPED ? i : 0][GROUPED ? j : 0][c] = tot[GROUPED ? i : 0][GROUPED ? j : 0][c] + v;
                        acc[i][j][c] = 0.0f;
                    }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int m = m0 + wm * 64 + i * 16 + gid + (c >= 2 ? 8 : 0), n = n0 + wn * 32 + j * 8 + tig * 2 + (c & 1);
                mma_store(g, m, n, GROUPED ? tot[GROUPED ? i : 0][GROUPED ? j : 0][c] : acc[i][j][c]);
            }
}

/* ---------------------------------------------------------------------------------------------
 * GEMM 4: hand-written Hopper kernel, wgmma.mma_async m64n128k32 E4M3/E5M2 (sm_90a only): the FP8
 * tensor-core instruction of the H100/H200 (mma.sync E4M3 is lowered to fp16 HMMA steps on sm_90a,
 * so only this kernel and cuBLASLt show Hopper's own FP8 accumulation).
 * One warpgroup (128 threads) per 64×128 output tile; k-tiles of 64 bytes through two shared-memory
 * stages (cp.async, zero-filled past the edges), operands K-major without swizzle: 8-row × 16-byte
 * core matrices, row-group stride (SBO) 128 bytes, k-chunk stride (LBO) 8·128 (A) / 16·128 (B).
 * Accumulation: the hardware's, chained over all of K (raw: compare with emu `hopper`), or restarted
 * every 128 k and added in fp32 (promote: emu `cublaslt`; also block scales). Epilogue as k_gemm_mma.
 * Requires K, lda, ldb multiples of 16 and 16-byte aligned A, B. Written and compiled without a GPU.
 * ------------------------------------------------------------------------------------------- */
enum { WG_BM = 64, WG_BN = 128, WG_BK = 64, WG_THREADS = 128 };
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define HAVE_WGMMA 1
#endif
__device__ __forceinline__ uint64_t wg_desc(const void *smem, unsigned lbo, unsigned sbo) {
    uint64_t a = (unsigned)__cvta_generic_to_shared(smem);
    /* bits 0-13 start >> 4, 16-29 leading byte offset >> 4, 32-45 stride byte offset >> 4, 62-63 swizzle 0 */
    return ((a & 0x3FFFF) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) | ((uint64_t)((sbo >> 4) & 0x3FFF) << 32);
}
template <int E5>
__device__ __forceinline__ void wgmma_fp8(float *d, uint64_t da, uint64_t db) {
#ifdef HAVE_WGMMA
#define WG_REGS \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
    "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, " \
    "%47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define WG_OUTS \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), \
    "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), \
    "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
    "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), \
    "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), \
    "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), \
    "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
    if (E5)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k32.f32.e5m2.e5m2 " WG_REGS ", %64, %65, p, 1, 1;\n}\n"
                     : WG_OUTS : "l"(da), "l"(db));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 " WG_REGS ", %64, %65, p, 1, 1;\n}\n"
                     : WG_OUTS : "l"(da), "l"(db));
#undef WG_REGS
#undef WG_OUTS
#else
    __trap();   /* launched only on compute capability 9.0, which runs the sm_90a code */
#endif
}

template <int E5, int GROUPED>
__global__ void __launch_bounds__(WG_THREADS) k_gemm_wgmma(MmaArgs g) {
    /* stage s: A core matrices at [s][0 .. 64·64), B at [s][64·64 .. 64·64 + 128·64) */
    __shared__ __align__(128) uint8_t smem[2][(WG_BM + WG_BN) * WG_BK];
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
    int m0 = blockIdx.y * WG_BM, n0 = blockIdx.x * WG_BN;
    float acc[64], tot[GROUPED ? 64 : 1];
#pragma unroll
    for (int i = 0; i < 64; i++) { acc[i] = 0.0f; if (GROUPED) tot[GROUPED ? i : 0] = 0.0f; }
    int ktiles = (g.K + WG_BK - 1) / WG_BK;
    /* 16-byte chunk (row r, k-chunk c) of a tile with R rows goes to core matrix (r / 8, c) at
     * c·(R/8)·128 + (r/8)·128, row r % 8 at + (r % 8)·16 */
    auto load = [&](int kt, int s) {
        for (int c = tid; c < (WG_BM + WG_BN) * (WG_BK / 16); c += WG_THREADS) {
            int isb = c >= WG_BM * (WG_BK / 16), cc = isb ? c - WG_BM * (WG_BK / 16) : c;
            int rows = isb ? WG_BN : WG_BM, r = cc % rows, kc = cc / rows, k = kt * WG_BK + kc * 16;
            int grow = (isb ? n0 : m0) + r, lim = isb ? g.N : g.M, ok = k < g.K && grow < lim;
            const uint8_t *src = (isb ? g.B : g.A) + (size_t)(grow < lim ? grow : 0) * (isb ? g.ldb : g.lda) + (k < g.K ? k : 0);
            uint8_t *dst = &smem[s][(isb ? WG_BM * WG_BK : 0) + kc * (rows / 8) * 128 + (r / 8) * 128 + (r % 8) * 16];
            cp_async16(dst, src, ok ? 16 : 0);
        }
    };
    load(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < ktiles; kt++) {
        if (kt + 1 < ktiles) load(kt + 1, (kt + 1) & 1);
        cp_async_commit();
        cp_async_wait1();
#ifdef HAVE_WGMMA
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");   /* cp.async writes → wgmma's async-proxy reads */
#endif
        __syncthreads();
        const uint8_t *S = smem[kt & 1];
#ifdef HAVE_WGMMA
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
#pragma unroll
        for (int ks = 0; ks < WG_BK / 32; ks++)   /* k-chunks 2ks, 2ks+1 of 16 bytes */
            wgmma_fp8<E5>(acc, wg_desc(S + 2 * ks * (WG_BM / 8) * 128, (WG_BM / 8) * 128, 128),
                          wg_desc(S + WG_BM * WG_BK + 2 * ks * (WG_BN / 8) * 128, (WG_BN / 8) * 128, 128));
#ifdef HAVE_WGMMA
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
        __syncthreads();   /* the stage is read: the next load may overwrite it */
        if (GROUPED && (((kt + 1) * WG_BK) % EMU_BLOCK == 0 || kt + 1 == ktiles)) {
            int gi = kt * WG_BK / EMU_BLOCK;
#pragma unroll
            for (int i = 0; i < 64; i++) {
                /* accumulator fragment: 8-column chunk j = i / 4, rows warp·16 + gid (+8 for i % 4 ≥ 2) */
                int m = m0 + warp * 16 + gid + ((i & 2) ? 8 : 0), n = n0 + (i >> 2) * 8 + tig * 2 + (i & 1);
                float v = acc[i];
                if (g.blockscale) v = mma_group(g, m, n, gi, v);
                tot[GROUPED ? i : 0] = tot[GROUPED ? i : 0] + v;
                acc[i] = 0.0f;
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 64; i++) {
        int m = m0 + warp * 16 + gid + ((i & 2) ? 8 : 0), n = n0 + (i >> 2) * 8 + tig * 2 + (i & 1);
        mma_store(g, m, n, GROUPED ? tot[GROUPED ? i : 0] : acc[i]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * GEMM 3: cuBLASLt FP8 (TN: cuBLASLt is column-major, so D[M,N] row-major = (B · Aᵀ) column-major,
 * cuBLASLt's "A" is our B (K×N, transposed) and its "B" our A). Scales: fp32 scalars
 * (A/B_SCALE_POINTER) or per-row vectors (SCALE_MODE OUTER_VEC_32F). cuBLASLt applies them in its own
 * order: results are compared with a bound, not bit for bit.
 * ------------------------------------------------------------------------------------------- */
static cublasLtHandle_t g_lt;
static void *g_ws;
static const size_t g_ws_size = 64u << 20;

#define LT(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) { snprintf(err, sizeof err, "%s: status %d", #call, (int)s_); goto done; } } while (0)
/* own_epilogue = 1: cuBLASLt computes the unscaled fp32 accumulation into scratch and k_epilogue applies
 * the scales in emu's order (t = s_b·acc, r = s_a·t): used when this cuBLASLt has no kernel for the scale
 * mode, and it leaves the accumulation as the only difference from emu's model. */
__global__ void k_epilogue(Gemm g, const float *acc) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)g.M * g.N) return;
    int m = (int)(i / g.N), n = (int)(i % g.N);
    float v = emu_epi_plain(&g.epi, m, n, acc[i]);
    emu_epi_store(g.D, g.td, g.ldd, m, n, v);
}
static int g_lt_own_epilogue;   /* 1 once cuBLASLt refused our scale modes: the fallback is used from then on */
static const char *lt_gemm_mode(const Gemm &g, int fast_accum, cudaStream_t stream, int own_epilogue);
static const char *lt_gemm(const Gemm &g, int fast_accum, cudaStream_t stream) {
    const char *why = g_lt_own_epilogue ? "" : lt_gemm_mode(g, fast_accum, stream, 0);
    if (!why) return NULL;
    why = lt_gemm_mode(g, fast_accum, stream, 1);
    if (!why) g_lt_own_epilogue = 1;
    return why;
}
extern "C" int cu_lt_own_epilogue(void) { return g_lt_own_epilogue; }
static uint32_t lt_align(const void *p) {   /* the largest power of two ≤ 256 dividing the address */
    uint32_t a = 256;
    while (a > 1 && ((uintptr_t)p & (a - 1))) a >>= 1;
    return a;
}
/* One cuBLASLt matmul in our row-major TN convention (cuBLASLt is column-major: its A is our B, K×N
 * transposed, and its B our A): D = A·Bᵀ with A of type ta (row stride lda), B = g.B of type tb, fp32
 * compute; FAST_ACCUM set when fast_accum ≥ 0; g.epi's scales through the scale pointers when scales. */
static const char *lt_matmul(const Gemm &g, cudaDataType_t ta, const void *A, size_t lda, cudaDataType_t tb, int fast_accum, int scales,
                             void *D, size_t ldd, cudaDataType_t td, cudaStream_t stream) {
    static char err[200];
    const char *ret = NULL;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int nres = 0;
    cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    int8_t fa = (int8_t)fast_accum;
    float one = 1.0f, zero = 0.0f;
    err[0] = 0;
    if (!g_lt) { if (cublasLtCreate(&g_lt) != CUBLAS_STATUS_SUCCESS) return "cublasLtCreate failed"; g_ws = dalloc(g_ws_size); }
    LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
    if (fast_accum >= 0) LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fa, sizeof fa));
    if (scales && g.epi.b_kind != EMU_SCALE_ONE) {   /* our B is cuBLASLt's A */
        if (g.epi.b_kind == EMU_SCALE_ROW) {
            int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
            LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
        }
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.epi.b_scale, sizeof g.epi.b_scale));
    }
    if (scales && g.epi.a_kind != EMU_SCALE_ONE) {
        if (g.epi.a_kind == EMU_SCALE_ROW) {
            int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
            LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
        }
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.epi.a_scale, sizeof g.epi.a_scale));
    }
    LT(cublasLtMatrixLayoutCreate(&la, tb, g.K, g.N, g.ldb));   /* cuBLASLt's A = our B */
    LT(cublasLtMatrixLayoutCreate(&lb, ta, g.K, g.M, lda));     /* cuBLASLt's B = our A */
    LT(cublasLtMatrixLayoutCreate(&ld, td, g.N, g.M, ldd));
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g_ws_size, sizeof g_ws_size));
    {   /* the pointers' real alignment (cuBLASLt assumes 256 bytes unless told): an offset row block is fine */
        uint32_t al[3] = {lt_align(g.B), lt_align(A), lt_align(D)};
        LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]));
        LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]));
        LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]));
        LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2]));
    }
    LT(cublasLtMatmulAlgoGetHeuristic(g_lt, op, la, lb, ld, ld, pref, 1, &heur, &nres));
    if (nres == 0) { snprintf(err, sizeof err, "cuBLASLt found no algorithm for %dx%dx%d", g.M, g.N, g.K); goto done; }
    LT(cublasLtMatmul(g_lt, op, &one, g.B, la, A, lb, &zero, D, ld, D, ld, &heur.algo, g_ws, g_ws_size, stream));
done:
    if (err[0]) ret = err;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (op) cublasLtMatmulDescDestroy(op);
    return ret;
}
static const char *lt_gemm_mode(const Gemm &g, int fast_accum, cudaStream_t stream, int own_epilogue) {
    static float *scratch; static size_t scratch_n;
    cudaDataType_t ta = g.ta == EMU_E5M2 ? CUDA_R_8F_E5M2 : CUDA_R_8F_E4M3, tb = g.tb == EMU_E5M2 ? CUDA_R_8F_E5M2 : CUDA_R_8F_E4M3;
    cudaDataType_t td = g.td == EMU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    void *D = g.D;
    size_t ldd = g.ldd;
    if (g.ta == EMU_E5M2 && g.tb == EMU_E5M2) return "cuBLASLt has no E5M2 x E5M2 FP8 GEMM";
    if (g.ta == EMU_I8 || g.tb == EMU_I8 || g.ta == EMU_F32) return "cuBLASLt is used here for FP8 x FP8 only";
    if (g.epi.a_kind == EMU_SCALE_BLOCK || g.epi.b_kind == EMU_SCALE_BLOCK) return "block scales are not wired to cuBLASLt here (use --gemm mma)";
    if (own_epilogue) {
        size_t n = (size_t)g.M * g.N;
        if (n > scratch_n) { if (scratch) cudaFree(scratch); scratch = (float *)dalloc(n * 4); scratch_n = n; }
        D = scratch; ldd = g.N; td = CUDA_R_32F;
    }
    const char *why = lt_matmul(g, ta, g.A, g.lda, tb, fast_accum, !own_epilogue, D, ldd, td, stream);
    if (!why && own_epilogue) {
        size_t n = (size_t)g.M * g.N;
        k_epilogue<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(g, scratch);
        if (cudaGetLastError() != cudaSuccess) return "cuBLASLt epilogue kernel failed to launch";
    }
    return why;
}

/* ---------------------------------------------------------------------------------------------
 * GEMM dispatch on device pointers
 * ------------------------------------------------------------------------------------------- */

static const char *mma_check(const Gemm &g) {
    if (g.ta != g.tb || (g.ta != EMU_E4M3 && g.ta != EMU_E5M2)) return "the mma kernel needs A and B both E4M3 or both E5M2";
    if (g.K % 16 || g.lda % 16 || g.ldb % 16) return "the mma kernel needs K, lda, ldb multiples of 16";
    if (((uintptr_t)g.A | (uintptr_t)g.B) & 15) return "the mma kernel needs 16-byte aligned A and B";
    if (g.acc == EMU_ACC_EXACT || g.acc == EMU_ACC_FP32) return "the mma kernel accumulates like the tensor core: use --accum hopper, ada, fast or cublaslt";
    return NULL;
}

static const char *gemm_dev(const Gemm &g, cu_gemm_impl impl, cudaStream_t stream) {
    if (g.M == 0 || g.N == 0) return NULL;
    if (impl == CU_GEMM_CUBLASLT) {
        if (g.acc == EMU_ACC_EXACT || g.acc == EMU_ACC_FP32) return "cuBLASLt: use --accum cublaslt (FAST_ACCUM off) or hopper/ada/fast (FAST_ACCUM on)";
        return lt_gemm(g, g.acc != EMU_ACC_CUBLASLT, stream);
    }
    if (impl == CU_GEMM_WGMMA || impl == CU_GEMM_MMA) {   /* the hand-written tensor-core kernels */
        const char *why = mma_check(g);
        if (why) return why;
        int wg = impl == CU_GEMM_WGMMA;
        if (wg && (g_prop.major != 9 || g_prop.minor != 0)) return "the wgmma kernel needs compute capability 9.0 (H100/H200: sm_90a code)";
        MmaArgs a;
        a.A = (const uint8_t *)g.A; a.B = (const uint8_t *)g.B; a.M = g.M; a.N = g.N; a.K = g.K; a.lda = g.lda; a.ldb = g.ldb;
        a.blockscale = g.epi.a_kind == EMU_SCALE_BLOCK || g.epi.b_kind == EMU_SCALE_BLOCK;
        a.promote = g.acc == EMU_ACC_CUBLASLT || a.blockscale;
        a.epi = g.epi; a.td = g.td; a.D = g.D; a.ldd = g.ldd;
        static void (*const mma[4])(MmaArgs) = {k_gemm_mma<0, 0>, k_gemm_mma<0, 1>, k_gemm_mma<1, 0>, k_gemm_mma<1, 1>};
        static void (*const wgmma[4])(MmaArgs) = {k_gemm_wgmma<0, 0>, k_gemm_wgmma<0, 1>, k_gemm_wgmma<1, 0>, k_gemm_wgmma<1, 1>};
        int k = (g.ta == EMU_E5M2) * 2 + a.promote;   /* <E5, GROUPED> */
        if (wg) wgmma[k]<<<dim3((g.N + WG_BN - 1) / WG_BN, (g.M + WG_BM - 1) / WG_BM), WG_THREADS, 0, stream>>>(a);
        else mma[k]<<<dim3((g.N + MMA_BN - 1) / MMA_BN, (g.M + MMA_BM - 1) / MMA_BM), MMA_THREADS, 0, stream>>>(a);
        return NULL;
    }
    /* models on SIMT cores: exact E4M3 by the integer-tile kernel when no operand is NaN (the caller checks) */
    size_t total = (size_t)g.M * g.N, chunk = ((size_t)64 << 20) / (2 * (size_t)(g.K ? g.K : 1));
    if (chunk > total) chunk = total;
    if (chunk < 1) chunk = 1;
    float *scratch = (float *)dalloc(chunk * 2 * (size_t)(g.K ? g.K : 1) * sizeof(float));
    for (size_t i0 = 0; i0 < total; i0 += chunk) {
        size_t cnt = total - i0 < chunk ? total - i0 : chunk;
        k_gemm_model<<<(unsigned)((cnt + 127) / 128), 128, 0, stream>>>(g, scratch, i0, cnt);
    }
    CK_LAUNCH("gemm_model");
    cudaFree(scratch);
    return NULL;
}

/* the integer kernel computes accum exact for E4M3 × E4M3 and INT8 × INT8 */
static int exact_int_ok(const Gemm &g) {
    return g.acc == EMU_ACC_EXACT && g.K < (1 << 26) && ((g.ta == EMU_E4M3 && g.tb == EMU_E4M3) || (g.ta == EMU_I8 && g.tb == EMU_I8));
}

static size_t esize(emu_dtype t) { return t == EMU_F32 ? 4 : (t == EMU_BF16 || t == EMU_F16) ? 2 : 1; }
static size_t nscales(emu_scale kind, int rows, int K) {
    return kind == EMU_SCALE_TENSOR ? 1 : kind == EMU_SCALE_ROW ? (size_t)rows : kind == EMU_SCALE_BLOCK ? 0 : 0;
}

extern "C" {
const char *cud_gemm(const emu_gemm_desc *d, int impl);
/* D = epilogue(A · Bᵀ) on the GPU, host memory in and out (emu_gemm_desc as for emu_gemm): copies in,
 * runs cud_gemm (impl: CU_GEMM_MODEL / MMA / CUBLASLT / WGMMA, see there), copies out. Returns NULL, or
 * why the combination is not supported (nothing is written). For cuda_check --kernels (tests/cuda_check.c). */
const char *cu_gemm(const emu_gemm_desc *d, int impl) {
    need_device();
    const char *why = emu_gemm_check(d);
    if (why) return why;
    if (d->M == 0 || d->N == 0) return NULL;
    int M = d->M, N = d->N, K = d->K, nk = (K + EMU_BLOCK - 1) / EMU_BLOCK;
    size_t ab = ((size_t)(M - 1) * d->lda + K) * esize(d->a_type), bb = ((size_t)(N - 1) * d->ldb + K) * esize(d->b_type);
    size_t db = ((size_t)(M - 1) * d->ldd + N) * esize(d->d_type);
    size_t sa = d->a_scale_kind == EMU_SCALE_BLOCK ? (size_t)M * nk : nscales(d->a_scale_kind, M, K);
    size_t sb = d->b_scale_kind == EMU_SCALE_BLOCK ? (size_t)((N + EMU_BLOCK - 1) / EMU_BLOCK) * nk : nscales(d->b_scale_kind, N, K);
    emu_gemm_desc g = *d;   /* the same GEMM on device copies, through the one dispatch (cud_gemm) */
    g.A = dupload(d->A, ab); g.B = dupload(d->B, bb); g.D = dupload(d->D, db);
    g.a_scale = sa ? (const float *)dupload(d->a_scale, sa * 4) : NULL;
    g.b_scale = sb ? (const float *)dupload(d->b_scale, sb * 4) : NULL;
    why = cud_gemm(&g, impl);
    if (!why) { CK_LAUNCH("gemm"); download(d->D, g.D, db); }
    cudaFree((void *)g.A); cudaFree((void *)g.B); cudaFree(g.D);
    if (g.a_scale) cudaFree((void *)g.a_scale);
    if (g.b_scale) cudaFree((void *)g.b_scale);
    return why;
}

/* The same per-element model code, compiled for the host: what k_gemm_model computes, on the CPU. */
void cu_host_gemm_model(const emu_gemm_desc *d) {
    Gemm g;
    g.M = d->M; g.N = d->N; g.K = d->K; g.ta = d->a_type; g.tb = d->b_type; g.td = d->d_type; g.lda = d->lda; g.ldb = d->ldb;
    g.ldd = d->ldd; g.acc = d->accum; g.A = d->A; g.B = d->B; g.D = d->D;
    g.epi = emu_epi_of(d);
    float *a = (float *)malloc(sizeof(float) * (2 * (size_t)d->K + 2)), *b = a + d->K + 1;
    for (int m = 0; m < d->M; m++)
        for (int n = 0; n < d->N; n++) gemm_element(g, m, n, a, b);
    free(a);
}
} /* extern "C" */

/* ---------------------------------------------------------------------------------------------
 * expf, bit for bit as the CPU forward gets it: glibc's expf (ARM optimized-routines algorithm,
 * glibc ≥ 2.27), in the form x86-64 glibc runs on CPUs with FMA (__expf_fma: the compiler fused
 * z·x + shift, z·x − kd and the three polynomial steps). Constants: glibc's __exp2f_data
 * (tab[i] = bits(2^(i/32)) − (i << 47)). CUDA's own expf differs in the last bit for some inputs;
 * this one is checked against the host libm by `cuda_check --host` (tests/cuda_check.c).
 * ------------------------------------------------------------------------------------------- */
__constant__ uint64_t c_exp2f_tab[32] = {
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull, 0x3fef72b83c7d517bull,
    0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull, 0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull,
    0x3feedea64c123422ull, 0x3feece086061892dull, 0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull,
    0x3feea47eb03a5585ull, 0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull, 0x3feee89f995ad3adull,
    0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull, 0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full,
    0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull};
[[maybe_unused]] static const uint64_t h_exp2f_tab[32] = {
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull, 0x3fef72b83c7d517bull,
    0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull, 0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull,
    0x3feedea64c123422ull, 0x3feece086061892dull, 0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull,
    0x3feea47eb03a5585ull, 0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull, 0x3feee89f995ad3adull,
    0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull, 0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full,
    0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull};

HD double d_from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
HD float glibc_expf(float x) {
    const double InvLn2N = d_from_bits(0x40471547652b82feull), SHIFT = d_from_bits(0x4338000000000000ull);
    const double C0 = d_from_bits(0x3ebc6af84b912394ull), C1 = d_from_bits(0x3f2ebfce50fac4f3ull), C2 = d_from_bits(0x3f962e42ff0c52d6ull);
    uint32_t ux = fp8_f32_bits(x), abstop = (ux >> 20) & 0x7ff;
    if (abstop >= 0x42b) {                             /* |x| >= 88 or NaN */
        if (ux == 0xff800000u) return 0.0f;            /* -inf */
        if (abstop >= 0x7f8) return x + x;             /* inf, NaN */
        if (x > fp8_f32_from_bits(0x42b17217u)) return INFINITY;                  /* overflow */
        if (x < fp8_f32_from_bits(0xc2cff1b4u)) return 0.0f;                      /* underflow */
        if (x < fp8_f32_from_bits(0xc2ce8ecfu)) return fp8_f32_from_bits(1u);     /* __math_may_uflowf: 2^-149 */
    }
    double xd = (double)x;
    double kd = fma(InvLn2N, xd, SHIFT);
    uint64_t ki; memcpy(&ki, &kd, 8);
    kd -= SHIFT;
    double r = fma(InvLn2N, xd, -kd);
#ifdef __CUDA_ARCH__
    uint64_t t = c_exp2f_tab[ki % 32];
#else
    uint64_t t = h_exp2f_tab[ki % 32];
#endif
    t += ki << 47;
    double s = d_from_bits(t);
    double z = fma(C0, r, C1), r2 = r * r, y = fma(C2, r, 1.0);
    y = fma(z, r2, y);
    y = y * s;
    return (float)y;
}
HD float silu_(float x) { return x / (1.0f + glibc_expf(-x)); }

/* ---------------------------------------------------------------------------------------------
 * Elementwise ops of forward() (llama_fp8.c section 6), same formulas and order of operations.
 * bf16 = 1 for the bf16 scheme (every B(x) rounds to bf16), 0 for fp32.
 * ------------------------------------------------------------------------------------------- */
/* RMSNorm: Σx² in double, sequential in index order (one thread: the order is the CPU's), var =
 * fp32(ss / n), rs = 1 / sqrtf(var + eps); out = B(w · B(x · rs)). */
HD float rms_factor(const float *xr, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
    float var = (float)(ss / n);
    return 1.0f / sqrtf(var + eps);
}
__global__ void k_rmsnorm(int bf16, float *out, const float *x, const float *w, int n, float eps) {
    __shared__ float rs;
    const float *xr = x + (size_t)blockIdx.x * n;
    if (threadIdx.x == 0) rs = rms_factor(xr, n, eps);
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[(size_t)blockIdx.x * n + i] = Bq(bf16, w[i] * Bq(bf16, xr[i] * rs));
}
/* RoPE (rotate-half) on every head of x (T, nh·hd) with tables (T, hd/2). */
HD void rope_pair(int bf16, float *x, int j, int h, float c, float s) {
    float a = x[j], b = x[j + h];
    x[j] = Bq(bf16, Bq(bf16, a * c) - Bq(bf16, b * s));
    x[j + h] = Bq(bf16, Bq(bf16, b * c) + Bq(bf16, a * s));
}
__global__ void k_rope(int bf16, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    int half = hd / 2;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)T * nh * half) return;
    int j = (int)(i % half), head = (int)(i / half % nh), t = (int)(i / half / nh);
    rope_pair(bf16, x + ((size_t)t * nh + head) * hd, j, half, cosv[(size_t)t * half + j], sinv[(size_t)t * half + j]);
}
/* Causal GQA attention, one block per (token, query head). Scores: fp32 dot in index order, then
 * B(B(dot) · scale); softmax: max, e = expf(s − max), sum in position order (one thread), times
 * 1/sum, B(); output: Σ_p a_p · v_p in position order per component, B(). Overwrites q. */
HD float att_score(int bf16, const float *q, const float *k, int hd, float scale) {
    float dot = 0.0f;
    for (int i = 0; i < hd; i++) dot += q[i] * k[i];
    return Bq(bf16, Bq(bf16, dot) * scale);
}
/* gatt: NULL, or (long contexts) global scratch of npos_max floats per block of this launch, which then
 * holds the probabilities instead of shared memory; blk0: the first (token · nh + head) of this launch. */
__global__ void k_attention(int bf16, float *q, const float *kc, const float *vc, int pos0, int nh, int nkv, int hd, float scale,
                            float *gatt, size_t gstride, int blk0) {
    extern __shared__ float sh[];                      /* hd query values, then npos probabilities */
    int b = blk0 + blockIdx.x, t = b / nh, h = b % nh, group = nh / nkv, kvd = nkv * hd, npos = pos0 + t + 1;
    float *qs = sh, *att = gatt ? gatt + blockIdx.x * gstride : sh + hd;
    float *qv = q + ((size_t)t * nh + h) * hd;
    const float *kh = kc + (h / group) * hd, *vh = vc + (h / group) * hd;
    __shared__ float red[32];
    __shared__ float bc;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = qv[i];
    __syncthreads();
    float mx = -INFINITY;
    for (int p = threadIdx.x; p < npos; p += blockDim.x) {
        att[p] = att_score(bf16, qs, kh + (size_t)p * kvd, hd, scale);
        mx = fmaxf(mx, att[p]);
    }
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = -INFINITY;
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) m = fmaxf(m, red[w]);
        bc = m;
    }
    __syncthreads();
    mx = bc;
    for (int p = threadIdx.x; p < npos; p += blockDim.x) att[p] = glibc_expf(att[p] - mx);
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int p = 0; p < npos; p++) sum += att[p];
        bc = 1.0f / sum;
    }
    __syncthreads();
    float inv = bc;
    for (int p = threadIdx.x; p < npos; p += blockDim.x) att[p] = Bq(bf16, att[p] * inv);
    __syncthreads();
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0.0f;
        for (int p = 0; p < npos; p++) acc += att[p] * vh[(size_t)p * kvd + i];
        qv[i] = Bq(bf16, acc);
    }
}
__global__ void k_swiglu(int bf16, float *hb, const float *hb2, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) hb[i] = Bq(bf16, Bq(bf16, silu_(hb[i])) * hb2[i]);
}
__global__ void k_residual(int bf16, float *x, const float *xo, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) x[i] = Bq(bf16, x[i] + xo[i]);
}
/* −log p(target) per row: max over the fp32 logits, Σ exp(l − max) in double (fixed tree order),
 * in double as the CPU's log_prob(); exp/log are CUDA's (≤ 1 ulp in double), so agreement with the
 * CPU is to ~1e-15 relative, not bit for bit. */
__global__ void k_nll(double *nll, const float *logits, int V, const int *targets) {
    const float *l = logits + (size_t)blockIdx.x * V;
    __shared__ float redf[32];
    __shared__ double redd[32];
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, l[i]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) redf[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = redf[0];
    for (int w = 1; w < (int)blockDim.x / 32; w++) mx = fmaxf(mx, redf[w]);
    double s = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)l[i] - mx);
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) redd[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double sum = 0;
        for (int w = 0; w < (int)blockDim.x / 32; w++) sum += redd[w];
        nll[blockIdx.x] = -((double)l[targets[blockIdx.x]] - mx - log(sum));
    }
}

extern "C" {
void cud_rmsnorm(int bf16, float *out, const float *x, const float *w, int T, int n, float eps);
void cud_rope(int bf16, float *x, int T, int nh, int hd, const float *cosv, const float *sinv);
void cud_attention(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale);
void cud_swiglu(int bf16, float *hb, const float *hb2, size_t n);
void cud_residual(int bf16, float *x, const float *xo, size_t n);
/* Host-memory wrappers of the cud_* ops below (tests/cuda_check.c --kernels): copy in, run, copy out. */
void cu_rmsnorm(int bf16, float *out, const float *x, const float *w, int T, int n, float eps) {
    need_device();
    size_t b = (size_t)T * n * 4;
    float *dx = (float *)dupload(x, b), *dw = (float *)dupload(w, (size_t)n * 4), *dout = (float *)dalloc(b);
    cud_rmsnorm(bf16, dout, dx, dw, T, n, eps);
    download(out, dout, b);
    cudaFree(dx); cudaFree(dw); cudaFree(dout);
}
void cu_rope(int bf16, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    need_device();
    size_t b = (size_t)T * nh * hd * 4, tb = (size_t)T * (hd / 2) * 4;
    float *dx = (float *)dupload(x, b), *dc = (float *)dupload(cosv, tb), *ds = (float *)dupload(sinv, tb);
    cud_rope(bf16, dx, T, nh, hd, dc, ds);
    download(x, dx, b);
    cudaFree(dx); cudaFree(dc); cudaFree(ds);
}
/* q (T, nh·hd) is overwritten with the attention output; kc, vc (pos0 + T, nkv·hd) hold the keys
 * and values of positions 0 .. pos0+T-1. */
void cu_attention(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    need_device();
    size_t qb = (size_t)T * nh * hd * 4, kb = (size_t)(pos0 + T) * nkv * hd * 4;
    float *dq = (float *)dupload(q, qb), *dk = (float *)dupload(kc, kb), *dv = (float *)dupload(vc, kb);
    cud_attention(bf16, dq, dk, dv, T, pos0, nh, nkv, hd, scale);
    download(q, dq, qb);
    cudaFree(dq); cudaFree(dk); cudaFree(dv);
}
void cu_swiglu(int bf16, float *hb, const float *hb2, size_t n) {
    need_device();
    float *da = (float *)dupload(hb, n * 4), *db = (float *)dupload(hb2, n * 4);
    cud_swiglu(bf16, da, db, n);
    download(hb, da, n * 4);
    cudaFree(da); cudaFree(db);
}
void cu_residual(int bf16, float *x, const float *xo, size_t n) {
    need_device();
    float *da = (float *)dupload(x, n * 4), *db = (float *)dupload(xo, n * 4);
    cud_residual(bf16, da, db, n);
    download(x, da, n * 4);
    cudaFree(da); cudaFree(db);
}
void cu_nll(double *nll, const float *logits, int T, int V, const int *targets) {
    need_device();
    float *dl = (float *)dupload(logits, (size_t)T * V * 4);
    int *dt = (int *)dupload(targets, (size_t)T * 4);
    double *dn = (double *)dalloc((size_t)T * 8);
    k_nll<<<T, 256>>>(dn, dl, V, dt);
    CK_LAUNCH("nll");
    download(nll, dn, (size_t)T * 8);
    cudaFree(dl); cudaFree(dt); cudaFree(dn);
}

/* Host builds of the shared per-element code, for checks on machines without a GPU. */
float cu_host_expf(float x) { return glibc_expf(x); }
float cu_host_silu(float x) { return silu_(x); }
} /* extern "C" */

/* ---------------------------------------------------------------------------------------------
 * Benchmark: D[M,N] (bf16) = A[M,K] · B[N,K]ᵀ in E4M3 with per-row scales, the shapes of Llama-3.1-8B.
 * Times (CUDA events, 2 warm-up runs, median of `reps`) the hand-written mma kernel (raw and promoted
 * every 128 k) and cuBLASLt (FAST_ACCUM on and off), against the 1979 TFLOP/s dense FP8 peak of an
 * H100/H200 SXM (the datasheet number; the issue's reference).
 * ------------------------------------------------------------------------------------------- */
__global__ void k_fill_codes(uint8_t *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (i + seed) * 0x9E3779B97F4A7C15ull;
        z ^= z >> 31; z *= 0xBF58476D1CE4E5B9ull; z ^= z >> 29;
        uint8_t c = (uint8_t)z;
        if ((c & 0x7F) == 0x7F) c ^= 0x01;   /* no NaN codes */
        p[i] = c;
    }
}
__global__ void k_fill_scales(float *p, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) p[i] = 0.001f * (1 + (i % 7));
}
static int cmp_float(const void *a, const void *b) { float x = *(const float *)a, y = *(const float *)b; return x < y ? -1 : x > y; }

extern "C" void cu_bench_gemm(int M, int N, int K, int reps) {
    need_device();
    static int header;
    if (!header++) {
        printf("GEMM benchmark on %s: E4M3 x E4M3 -> bf16, per-row scales; TFLOP/s (%% of the 1979 TFLOP/s FP8 peak), median of %d runs\n",
               g_prop.name, reps);
        printf("%6s %7s %6s | %15s %15s | %15s %15s | %15s %15s | %s\n", "M", "N", "K", "mma raw", "mma promote128", "wgmma raw",
               "wgmma promote", "cuBLASLt fast", "cuBLASLt dflt", "best hand-written / cuBLASLt (same accumulation)");
    }
    Gemm g;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K; g.ta = g.tb = EMU_E4M3; g.td = EMU_BF16; g.lda = K; g.ldb = K; g.ldd = N;
    uint8_t *A = (uint8_t *)dalloc((size_t)M * K), *B = (uint8_t *)dalloc((size_t)N * K);
    float *sa = (float *)dalloc((size_t)M * 4), *sb = (float *)dalloc((size_t)N * 4);
    void *D = dalloc((size_t)M * N * 2);
    k_fill_codes<<<1024, 256>>>(A, (size_t)M * K, 1);
    k_fill_codes<<<1024, 256>>>(B, (size_t)N * K, 2);
    k_fill_scales<<<(M + 255) / 256, 256>>>(sa, M);
    k_fill_scales<<<(N + 255) / 256, 256>>>(sb, N);
    CK_LAUNCH("fill");
    g.A = A; g.B = B; g.D = D;
    g.epi.a_kind = g.epi.b_kind = EMU_SCALE_ROW; g.epi.a_scale = sa; g.epi.b_scale = sb; g.epi.K = K;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    enum { NV = 6 };
    double tf[NV];
    struct { cu_gemm_impl impl; emu_accum acc; } v[NV] = {
        {CU_GEMM_MMA, EMU_ACC_HOPPER}, {CU_GEMM_MMA, EMU_ACC_CUBLASLT}, {CU_GEMM_WGMMA, EMU_ACC_HOPPER}, {CU_GEMM_WGMMA, EMU_ACC_CUBLASLT},
        {CU_GEMM_CUBLASLT, EMU_ACC_HOPPER}, {CU_GEMM_CUBLASLT, EMU_ACC_CUBLASLT}};
    float *ms = (float *)malloc(sizeof(float) * reps);
    for (int j = 0; j < NV; j++) {
        g.acc = v[j].acc;
        const char *why = NULL;
        for (int w = 0; w < 2 && !why; w++) why = gemm_dev(g, v[j].impl, 0);
        if (why) { tf[j] = -1; fprintf(stderr, "bench %dx%dx%d: %s\n", M, N, K, why); continue; }
        CK_LAUNCH("bench warm-up");
        for (int r = 0; r < reps; r++) {
            CK(cudaEventRecord(e0));
            gemm_dev(g, v[j].impl, 0);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms[r], e0, e1));
        }
        CK_LAUNCH("bench");
        qsort(ms, reps, sizeof(float), cmp_float);
        tf[j] = 2.0 * M * N * K / (ms[reps / 2] * 1e-3) / 1e12;
    }
    char cell[NV][32];
    for (int j = 0; j < NV; j++)
        if (tf[j] < 0) snprintf(cell[j], 32, "n/a");
        else snprintf(cell[j], 32, "%6.1f (%4.1f%%)", tf[j], 100 * tf[j] / 1979.0);
    double raw = tf[0] > tf[2] ? tf[0] : tf[2], pro = tf[1] > tf[3] ? tf[1] : tf[3];
    printf("%6d %7d %6d | %15s %15s | %15s %15s | %15s %15s | raw/fast %.0f%%, promote/default %.0f%%\n", M, N, K, cell[0], cell[1], cell[2],
           cell[3], cell[4], cell[5], tf[4] > 0 ? 100 * raw / tf[4] : 0.0, tf[5] > 0 ? 100 * pro / tf[5] : 0.0);
    fflush(stdout);
    free(ms);
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    cudaFree(A); cudaFree(B); cudaFree(sa); cudaFree(sb); cudaFree(D);
}

/* ---------------------------------------------------------------------------------------------
 * The resident forward pass: ops on device pointers (cud_*). Weights are uploaded once (quantized
 * layers as FP8 codes + fp32 scales), activations and the KV cache stay on the GPU; llama_fp8.c's
 * forward() calls these through its GPU backend (gpu_backend) and downloads only the logits it is asked for.
 * Kernels are queued on the default stream; errors of a launch are caught at the next check.
 *
 * Host twin: after cud_twin(1), every cud_* function runs on host memory instead, by loops over the
 * same __host__ __device__ formulas the kernels run (cud_alloc is calloc). `cuda_check --host` runs
 * forward() on the GPU backend that way on a machine without a GPU and compares its logits with the CPU backend's bit for
 * bit — the orchestration (buffers, KV positions, quantization sites, scales) and the per-element
 * code are checked; only the launch geometry and the parallel reductions (max: order-free) are not.
 * ------------------------------------------------------------------------------------------- */
static int g_twin;
#define CK_ASYNC(name) do { cudaError_t e_ = cudaGetLastError(); if (e_ != cudaSuccess) cu_fail("kernel %s: %s", name, cudaGetErrorString(e_)); } while (0)
static unsigned blocks_for(size_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

__global__ void k_embed(float *x, const void *table, emu_dtype t, const int *ids, int dim, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) x[i] = emu_load_el(table, t, (size_t)ids[i / dim] * dim + i % dim);
}
/* FP8 KV cache (forward()'s kv_store): the cache holds B(fp8(x / s) · s). */
__global__ void k_kv_store(float *dst, const float *src, size_t n, emu_dtype kv, int bf16, float s) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) dst[i] = kv == EMU_F32 ? src[i] : Bq(bf16, emu_kv_roundtrip(src[i], kv, s));
}
__global__ void k_round_bf16(float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) x[i] = emu_bf16_round(x[i]);
}
__global__ void k_to_bf16(uint16_t *y, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) y[i] = emu_bf16_rne(x[i]);
}
/* vLLM dynamic_scaled_int8_quant (emu_quant_int8_token; emu/ops.h emu_i8_token_scale, emu_i8_code). */
__global__ void k_quant_int8_token(int8_t *q, float *scale, const float *x, int K) {
    const float *xr = x + (size_t)blockIdx.x * K;
    __shared__ float red[32];
    float a = 0.0f;
    for (int i = threadIdx.x; i < K; i += blockDim.x) a = fmaxf(a, fabsf(xr[i]));
    for (int o = 16; o; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = a;
    __syncthreads();
    a = 0.0f;
    for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) a = fmaxf(a, red[w]);
    if (threadIdx.x == 0) scale[blockIdx.x] = emu_i8_token_scale(a);
    float inv = emu_i8_token_inv(a);
    for (int i = threadIdx.x; i < K; i += blockDim.x) q[(size_t)blockIdx.x * K + i] = emu_i8_code(xr[i] * inv);
}
/* dynamic per tensor, second step: s = absmax / fmax from the first step's bits, on the device */
__global__ void k_quant_dyn(uint8_t *q, float *scale, const float *x, size_t n, emu_dtype t, const unsigned *amax_bits) {
    float s = emu_quant_scale(EMU_Q_TENSOR, __uint_as_float(*amax_bits), t, 0), inv = 1.0f / s;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i == 0) scale[0] = s;
    if (i < n) q[i] = emu_quant_code(EMU_Q_TENSOR, x[i] * inv, t);
}
/* Host twin of k_attention: the same steps in the same order for one (token, head). */
static void attention_host(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    int group = nh / nkv, kvd = nkv * hd;
    float *att = (float *)malloc(sizeof(float) * (pos0 + T + hd)), *qs = att + pos0 + T;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            int npos = pos0 + t + 1;
            float *qv = q + ((size_t)t * nh + h) * hd;
            const float *kh = kc + (h / group) * hd, *vh = vc + (h / group) * hd;
            memcpy(qs, qv, sizeof(float) * hd);
            float mx = -INFINITY, sum = 0.0f;
            for (int p = 0; p < npos; p++) { att[p] = att_score(bf16, qs, kh + (size_t)p * kvd, hd, scale); mx = fmaxf(mx, att[p]); }
            for (int p = 0; p < npos; p++) att[p] = glibc_expf(att[p] - mx);
            for (int p = 0; p < npos; p++) sum += att[p];
            float inv = 1.0f / sum;
            for (int p = 0; p < npos; p++) att[p] = Bq(bf16, att[p] * inv);
            for (int i = 0; i < hd; i++) {
                float acc = 0.0f;
                for (int p = 0; p < npos; p++) acc += att[p] * vh[(size_t)p * kvd + i];
                qv[i] = Bq(bf16, acc);
            }
        }
    free(att);
}

/* Tiled causal GQA attention: one block per (TT consecutive tokens, kv head), the R = TT·group query rows
 * that read that kv head together, so every K/V row is loaded once per R rows (k_attention loads it once
 * per row). Each output keeps forward()'s order exactly: every score a sequential dot over i, the row
 * max, exp, a sequential sum over positions, and every output component a sequential sum over positions
 * (tiles in increasing position order, positions in order within a tile); only which thread computes
 * what changes. The kernel is a sequence of phases separated by barriers, written as __host__ __device__
 * functions of (block, thread): the host twin runs the same phases for every thread in turn, so the
 * tiling and indexing are checked on the CPU (cuda_check --host, LLAMA_FP8_DEVICE=twin). */
enum { ATT_THREADS = 256, ATT_PT = 32, ATT_MAXACC = 16 };
struct AttBlock {
    int bf16, T, pos0, nh, nkv, hd, group, TT, R, ncols, t0, g;   /* this block: tokens t0.., kv head g */
    float scale;
    float *q; const float *kc, *vc;
    float *sq, *skv, *att, *rowv;      /* shared: R·hd, PT·(hd+1) (padded: no bank conflicts), R, R·ncols */
};
HD int att_rows(const AttBlock &b, int r) { return b.pos0 + b.t0 + r / b.group + 1; }   /* positions row r sees */
HD float *att_qrow(const AttBlock &b, int r) { return b.q + ((size_t)(b.t0 + r / b.group) * b.nh + b.g * b.group + r % b.group) * b.hd; }
HD int att_valid(const AttBlock &b, int r) { return b.t0 + r / b.group < b.T; }
HD void att_load_q(const AttBlock &b, int tid) {
    for (int x = tid; x < b.R * b.hd; x += ATT_THREADS) { int r = x / b.hd; b.sq[x] = att_valid(b, r) ? att_qrow(b, r)[x % b.hd] : 0.0f; }
}
HD void att_load_tile(const AttBlock &b, const float *cache, int p0, int tid) {
    int kvd = b.nkv * b.hd;
    for (int x = tid; x < ATT_PT * b.hd; x += ATT_THREADS) {
        int pp = x / b.hd, p = p0 + pp;
        b.skv[pp * (b.hd + 1) + x % b.hd] = p < b.ncols ? cache[(size_t)p * kvd + b.g * b.hd + x % b.hd] : 0.0f;
    }
}
HD void att_scores(const AttBlock &b, int p0, int tid) {
    for (int x = tid; x < b.R * ATT_PT; x += ATT_THREADS) {
        int r = x / ATT_PT, pp = x % ATT_PT, p = p0 + pp;
        if (!att_valid(b, r) || p >= att_rows(b, r)) continue;
        float dot = 0.0f;
        for (int i = 0; i < b.hd; i++) dot += b.sq[r * b.hd + i] * b.skv[pp * (b.hd + 1) + i];
        b.att[(size_t)r * b.ncols + p] = Bq(b.bf16, Bq(b.bf16, dot) * b.scale);
    }
}
HD void att_rowmax(const AttBlock &b, int tid) {
    for (int r = tid; r < b.R; r += ATT_THREADS) {
        if (!att_valid(b, r)) continue;
        float mx = -INFINITY, *a = b.att + (size_t)r * b.ncols;
        for (int p = 0; p < att_rows(b, r); p++) if (a[p] > mx) mx = a[p];
        b.rowv[r] = mx;
    }
}
HD void att_exp(const AttBlock &b, int tid) {
    for (int x = tid; x < b.R * b.ncols; x += ATT_THREADS) {
        int r = x / b.ncols, p = x % b.ncols;
        if (att_valid(b, r) && p < att_rows(b, r)) b.att[x] = glibc_expf(b.att[x] - b.rowv[r]);
    }
}
HD void att_rowsum(const AttBlock &b, int tid) {
    for (int r = tid; r < b.R; r += ATT_THREADS) {
        if (!att_valid(b, r)) continue;
        float sum = 0.0f, *a = b.att + (size_t)r * b.ncols;
        for (int p = 0; p < att_rows(b, r); p++) sum += a[p];
        b.rowv[r] = 1.0f / sum;
    }
}
HD void att_normalize(const AttBlock &b, int tid) {
    for (int x = tid; x < b.R * b.ncols; x += ATT_THREADS) {
        int r = x / b.ncols, p = x % b.ncols;
        if (att_valid(b, r) && p < att_rows(b, r)) b.att[x] = Bq(b.bf16, b.att[x] * b.rowv[r]);
    }
}
/* thread tid owns outputs o = tid + j·THREADS (row o / hd, component o % hd), j < ATT_MAXACC */
HD void att_pv(const AttBlock &b, int p0, int tid, float *acc) {
    for (int j = 0; j < ATT_MAXACC; j++) {
        int o = tid + j * ATT_THREADS, r = o / b.hd, i = o % b.hd;
        if (o >= b.R * b.hd || !att_valid(b, r)) continue;
        int np = att_rows(b, r) - p0;
        if (np > ATT_PT) np = ATT_PT;
        const float *a = b.att + (size_t)r * b.ncols + p0;
        for (int pp = 0; pp < np; pp++) acc[j] += a[pp] * b.skv[pp * (b.hd + 1) + i];
    }
}
HD void att_store(const AttBlock &b, int tid, const float *acc) {
    for (int j = 0; j < ATT_MAXACC; j++) {
        int o = tid + j * ATT_THREADS, r = o / b.hd, i = o % b.hd;
        if (o < b.R * b.hd && att_valid(b, r)) att_qrow(b, r)[i] = Bq(b.bf16, acc[j]);
    }
}
HD AttBlock att_block(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale, int bx, int by, float *smem) {
    AttBlock b;
    b.bf16 = bf16; b.T = T; b.pos0 = pos0; b.nh = nh; b.nkv = nkv; b.hd = hd; b.scale = scale; b.q = q; b.kc = kc; b.vc = vc;
    b.group = nh / nkv; b.TT = b.group >= 16 ? 1 : 16 / b.group; b.R = b.TT * b.group;
    b.t0 = bx * b.TT; b.g = by;
    int tl = T - b.t0 < b.TT ? T - b.t0 : b.TT;
    b.ncols = pos0 + b.t0 + tl;                     /* the last row of the block sees this many positions */
    b.sq = smem; b.skv = b.sq + b.R * hd; b.rowv = b.skv + ATT_PT * (hd + 1); b.att = b.rowv + b.R;
    return b;
}
/* bytes of shared memory a block needs; 0 when the tiled kernel does not apply */
static size_t att_tiled_smem(int T, int pos0, int nh, int nkv, int hd) {
    int group = nh / nkv, TT = group >= 16 ? 1 : 16 / group, R = TT * group;
    if (R * hd > ATT_MAXACC * ATT_THREADS) return 0;
    return ((size_t)R * hd + (size_t)ATT_PT * (hd + 1) + R + (size_t)R * (pos0 + T)) * sizeof(float);
}
__global__ void __launch_bounds__(ATT_THREADS) k_attention_tiled(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    extern __shared__ float smem[];
    AttBlock b = att_block(bf16, q, kc, vc, T, pos0, nh, nkv, hd, scale, blockIdx.x, blockIdx.y, smem);
    int tid = threadIdx.x;
    float acc[ATT_MAXACC];
    for (int j = 0; j < ATT_MAXACC; j++) acc[j] = 0.0f;
    att_load_q(b, tid);
    for (int p0 = 0; p0 < b.ncols; p0 += ATT_PT) {
        __syncthreads(); att_load_tile(b, kc, p0, tid);
        __syncthreads(); att_scores(b, p0, tid);
    }
    __syncthreads(); att_rowmax(b, tid);
    __syncthreads(); att_exp(b, tid);
    __syncthreads(); att_rowsum(b, tid);
    __syncthreads(); att_normalize(b, tid);
    for (int p0 = 0; p0 < b.ncols; p0 += ATT_PT) {
        __syncthreads(); att_load_tile(b, vc, p0, tid);
        __syncthreads(); att_pv(b, p0, tid, acc);
    }
    __syncthreads();   /* every thread has read its q rows (phase 1) before any is overwritten */
    att_store(b, tid, acc);
}
/* The host twin: every block, every phase, every thread in turn (the barriers become phase order). */
static void attention_tiled_host(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    int group = nh / nkv, TT = group >= 16 ? 1 : 16 / group;
    float *smem = (float *)malloc(att_tiled_smem(T, pos0, nh, nkv, hd)), *acc = (float *)malloc(sizeof(float) * ATT_THREADS * ATT_MAXACC);
    for (int bx = 0; bx < (T + TT - 1) / TT; bx++)
        for (int by = 0; by < nkv; by++) {
            AttBlock b = att_block(bf16, q, kc, vc, T, pos0, nh, nkv, hd, scale, bx, by, smem);
            for (int j = 0; j < ATT_THREADS * ATT_MAXACC; j++) acc[j] = 0.0f;
#define ALL(call) for (int tid = 0; tid < ATT_THREADS; tid++) call
            ALL(att_load_q(b, tid));
            for (int p0 = 0; p0 < b.ncols; p0 += ATT_PT) { ALL(att_load_tile(b, kc, p0, tid)); ALL(att_scores(b, p0, tid)); }
            ALL(att_rowmax(b, tid)); ALL(att_exp(b, tid)); ALL(att_rowsum(b, tid)); ALL(att_normalize(b, tid));
            for (int p0 = 0; p0 < b.ncols; p0 += ATT_PT) { ALL(att_load_tile(b, vc, p0, tid)); ALL(att_pv(b, p0, tid, acc + tid * ATT_MAXACC)); }
            ALL(att_store(b, tid, acc + tid * ATT_MAXACC));
#undef ALL
        }
    free(smem); free(acc);
}

/* cuBLASLt for the baselines: D (fp32) = A · Bᵀ with B stored BF16 (A rounded to bf16 on the way: exact
 * in the bf16 scheme, whose activations are bf16 values) or F32 (CUBLAS_COMPUTE_32F, no TF32). Fast, but
 * not forward()'s fmaf chain: results agree within the fp32 summation bound, not bit for bit. */
static const char *lt_gemm_float(const Gemm &g) {
    static uint16_t *abf; static size_t abf_n;
    const void *A = g.A;
    cudaDataType_t t = g.tb == EMU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    if (g.ta != EMU_F32 || (g.tb != EMU_BF16 && g.tb != EMU_F32) || g.td != EMU_F32 || g.epi.a_kind != EMU_SCALE_ONE || g.epi.b_kind != EMU_SCALE_ONE)
        return "cuBLASLt baseline GEMM: needs fp32 activations, BF16 or F32 weights, no scales";
    if (g.tb == EMU_BF16) {
        size_t n = (size_t)g.M * g.K;
        if (g.lda != (size_t)g.K) return "cuBLASLt baseline GEMM: needs lda = K";
        if (n > abf_n) { if (abf) cudaFree(abf); abf = (uint16_t *)dalloc(n * 2); abf_n = n; }
        k_to_bf16<<<blocks_for(n, 256), 256>>>(abf, (const float *)g.A, n);
        CK_ASYNC("to_bf16");
        A = abf;
    }
    return lt_matmul(g, t, A, g.lda, t, -1, 0, g.D, g.ldd, CUDA_R_32F, 0);
}

extern "C" {
/* on = 1: every cud_* call below runs its host twin on host memory (no GPU needed). */
void cud_twin(int on) { g_twin = on; }

/* Memory. cud_try_alloc returns NULL when the GPU is full (the caller may free and retry). */
/* Twin mode keeps a size header before each block; LLAMA_FP8_TWIN_MEM=BYTES caps the total, as a GPU's
 * memory would (tests use it to exercise gpu_forward's eviction of unused weights). */
static size_t g_twin_used, g_twin_cap = (size_t)-1;
static int g_twin_cap_read;
void *cud_try_alloc(size_t n) {
    void *p;
    if (g_twin) {
        if (!g_twin_cap_read) { const char *e = getenv("LLAMA_FP8_TWIN_MEM"); if (e) g_twin_cap = strtoull(e, NULL, 10); g_twin_cap_read = 1; }
        if (g_twin_used + n > g_twin_cap) return NULL;
        char *b = (char *)calloc(n + 16, 1);
        if (!b) return NULL;
        memcpy(b, &n, sizeof n);
        g_twin_used += n;
        return b + 16;
    }
    need_device();
    if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) { cudaGetLastError(); return NULL; }
    CK(cudaMemset(p, 0, n ? n : 1));
    return p;
}
void *cud_alloc(size_t n) {
    void *p = cud_try_alloc(n);
    if (!p) {
        size_t fr = 0, tot = 0;
        if (!g_twin) cudaMemGetInfo(&fr, &tot);
        cu_fail("cannot allocate %zu bytes of %s memory (%.2f of %.2f GiB free)", n, g_twin ? "host" : "GPU", fr / 1073741824.0, tot / 1073741824.0);
    }
    return p;
}
void cud_free(void *p) {
    if (!p) return;
    if (g_twin) { size_t n; memcpy(&n, (char *)p - 16, sizeof n); g_twin_used -= n; free((char *)p - 16); }
    else cudaFree(p);
}
void cud_upload(void *d, const void *h, size_t n) { if (n) { if (g_twin) memcpy(d, h, n); else CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice)); } }
void cud_download(void *h, const void *d, size_t n) { if (n) { if (g_twin) memcpy(h, d, n); else CK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); } }
void cud_copy(void *d, const void *s, size_t n) { if (n) { if (g_twin) memcpy(d, s, n); else CK(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice, 0)); } }
/* Waits for the queued kernels and reports the first error. */
void cud_sync(void) { if (!g_twin) { CK(cudaGetLastError()); CK(cudaDeviceSynchronize()); } }

/* x[t] = row ids[t] of the embedding table (stored dtype, converted exactly); ids on the device. */
void cud_embed(float *x, const void *table, emu_dtype t, const int *ids, int T, int dim) {
    size_t n = (size_t)T * dim;
    if (g_twin) { for (size_t i = 0; i < n; i++) x[i] = emu_load_el(table, t, (size_t)ids[i / dim] * dim + i % dim); return; }
    if (n) k_embed<<<blocks_for(n, 256), 256>>>(x, table, t, ids, dim, n);
    CK_ASYNC("embed");
}
void cud_rmsnorm(int bf16, float *out, const float *x, const float *w, int T, int n, float eps) {
    if (g_twin) {
        for (int t = 0; t < T; t++) {
            float rs = rms_factor(x + (size_t)t * n, n, eps);
            for (int i = 0; i < n; i++) out[(size_t)t * n + i] = Bq(bf16, w[i] * Bq(bf16, x[(size_t)t * n + i] * rs));
        }
        return;
    }
    if (T) k_rmsnorm<<<T, 256>>>(bf16, out, x, w, n, eps);
    CK_ASYNC("rmsnorm");
}
void cud_rope(int bf16, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    int half = hd / 2;
    size_t n = (size_t)T * nh * half;
    if (g_twin) {
        for (size_t i = 0; i < n; i++) {
            int j = (int)(i % half), head = (int)(i / half % nh), t = (int)(i / half / nh);
            rope_pair(bf16, x + ((size_t)t * nh + head) * hd, j, half, cosv[(size_t)t * half + j], sinv[(size_t)t * half + j]);
        }
        return;
    }
    if (n) k_rope<<<blocks_for(n, 256), 256>>>(bf16, x, T, nh, hd, cosv, sinv);
    CK_ASYNC("rope");
}
/* dst[i] = src[i] (kv = EMU_F32) or B(fp8(src[i] / s) · s) (FP8 KV cache). */
void cud_kv_store(float *dst, const float *src, size_t n, emu_dtype kv, int bf16, float s) {
    if (g_twin) { for (size_t i = 0; i < n; i++) dst[i] = kv == EMU_F32 ? src[i] : Bq(bf16, emu_kv_roundtrip(src[i], kv, s)); return; }
    if (n) k_kv_store<<<blocks_for(n, 256), 256>>>(dst, src, n, kv, bf16, s);
    CK_ASYNC("kv_store");
}
/* The tiled kernel where its shared memory fits (ctx up to ~3000 for Llama 3 8B's 4 heads per kv head),
 * else one block per (token, head). Both give forward()'s bits. */
void cud_attention(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    size_t tiled = att_tiled_smem(T, pos0, nh, nkv, hd);
    size_t limit = g_twin ? (size_t)227 * 1024 : (size_t)g_prop.sharedMemPerBlockOptin;
    if (tiled && tiled <= limit && getenv("LLAMA_FP8_ATT_SIMPLE") == NULL) {
        if (g_twin) { attention_tiled_host(bf16, q, kc, vc, T, pos0, nh, nkv, hd, scale); return; }
        static size_t tiled_set = 48 * 1024;
        if (tiled > tiled_set) { CK(cudaFuncSetAttribute(k_attention_tiled, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tiled)); tiled_set = tiled; }
        int group = nh / nkv, TT = group >= 16 ? 1 : 16 / group;
        if (T) k_attention_tiled<<<dim3((T + TT - 1) / TT, nkv), ATT_THREADS, tiled>>>(bf16, q, kc, vc, T, pos0, nh, nkv, hd, scale);
        CK_ASYNC("attention_tiled");
        return;
    }
    if (g_twin) { attention_host(bf16, q, kc, vc, T, pos0, nh, nkv, hd, scale); return; }
    if (!T) return;
    size_t npos = (size_t)pos0 + T, smem = (hd + npos) * 4;
    static cudaFuncAttributes fa;            /* the kernel's static shared memory counts against the limit too */
    static int fa_read;
    if (!fa_read) { CK(cudaFuncGetAttributes(&fa, k_attention)); fa_read = 1; }
    if (smem + fa.sharedSizeBytes <= (size_t)g_prop.sharedMemPerBlockOptin) {
        if (smem > (size_t)fa.maxDynamicSharedSizeBytes) {
            CK(cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            fa.maxDynamicSharedSizeBytes = (int)smem;
        }
        k_attention<<<T * nh, 128, smem>>>(bf16, q, kc, vc, pos0, nh, nkv, hd, scale, NULL, 0, 0);
    } else {   /* a context too long for shared memory: the probabilities in global scratch, 256 MiB per launch */
        size_t per = ((size_t)256 << 20) / (npos * 4), total = (size_t)T * nh;
        if (per < 1) per = 1;
        if (per > total) per = total;
        float *gatt = NULL;
        while (cudaMalloc(&gatt, per * npos * 4) != cudaSuccess) {   /* less scratch, more launches */
            cudaGetLastError();
            if (per == 1) cu_fail("attention over %zu positions: no GPU memory for %zu bytes of scratch", npos, npos * 4);
            per /= 2;
        }
        for (size_t b0 = 0; b0 < total; b0 += per) {
            size_t nb = total - b0 < per ? total - b0 : per;
            k_attention<<<(unsigned)nb, 128, hd * 4>>>(bf16, q, kc, vc, pos0, nh, nkv, hd, scale, gatt, npos, (int)b0);
        }
        CK_LAUNCH("attention (long context)");
        cudaFree(gatt);
    }
    CK_ASYNC("attention");
}
void cud_swiglu(int bf16, float *hb, const float *hb2, size_t n) {
    if (g_twin) { for (size_t i = 0; i < n; i++) hb[i] = Bq(bf16, Bq(bf16, silu_(hb[i])) * hb2[i]); return; }
    if (n) k_swiglu<<<blocks_for(n, 256), 256>>>(bf16, hb, hb2, n);
    CK_ASYNC("swiglu");
}
void cud_residual(int bf16, float *x, const float *xo, size_t n) {
    if (g_twin) { for (size_t i = 0; i < n; i++) x[i] = Bq(bf16, x[i] + xo[i]); return; }
    if (n) k_residual<<<blocks_for(n, 256), 256>>>(bf16, x, xo, n);
    CK_ASYNC("residual");
}
/* forward()'s B_rows: x = bf16(x), RNE. */
void cud_round_bf16(float *x, size_t n) {
    if (g_twin) { for (size_t i = 0; i < n; i++) x[i] = emu_bf16_round(x[i]); return; }
    if (n) k_round_bf16<<<blocks_for(n, 256), 256>>>(x, n);
    CK_ASYNC("round_bf16");
}

/* Activation quantization of x[T][K] (row stride K) into q[T][K], scales on the device:
 * CUQ_TOKEN (param: scale_ub or 0), CUQ_GROUP (1×128), CUQ_TENSOR_STATIC (param: s, also written to
 * scale[0]), CUQ_TENSOR_DYNAMIC, CUQ_INT8_TOKEN — forward()'s quantize_act, emu/quant.c's bits. */
void cud_quant(int mode, uint8_t *q, float *scale, const float *x, int T, int K, emu_dtype t, float param) {
    size_t n = (size_t)T * K;
    if (!n) return;
    if (g_twin) {
        switch (mode) {
        case CUQ_TOKEN: cu_host_quant_tiles(q, K, scale, x, K, T, K, 1, K, EMU_Q_TOKEN, t, param); break;
        case CUQ_GROUP: cu_host_quant_tiles(q, K, scale, x, K, T, K, 1, EMU_BLOCK, EMU_Q_GROUP, t, 0); break;
        case CUQ_TENSOR_STATIC: case CUQ_TENSOR_DYNAMIC: {
            float s = param;
            if (mode == CUQ_TENSOR_DYNAMIC) { float a = 0.0f; for (size_t i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i])); s = emu_quant_scale(EMU_Q_TENSOR, a, t, 0); }
            float inv = 1.0f / s;
            scale[0] = s;
            for (size_t i = 0; i < n; i++) q[i] = emu_quant_code(EMU_Q_TENSOR, x[i] * inv, t);
            break;
        }
        default:
            for (int r = 0; r < T; r++) {
                const float *xr = x + (size_t)r * K;
                float a = 0.0f;
                for (int i = 0; i < K; i++) a = fmaxf(a, fabsf(xr[i]));
                scale[r] = emu_i8_token_scale(a);
                float inv = emu_i8_token_inv(a);
                for (int i = 0; i < K; i++) ((int8_t *)q)[(size_t)r * K + i] = emu_i8_code(xr[i] * inv);
            }
        }
        return;
    }
    static unsigned *amax;
    switch (mode) {
    case CUQ_TOKEN: k_quant_tiles<<<T, 256>>>(q, K, scale, x, K, T, K, 1, K, EMU_Q_TOKEN, t, param); break;
    case CUQ_GROUP: k_quant_tiles<<<(unsigned)T * ((K + EMU_BLOCK - 1) / EMU_BLOCK), 128>>>(q, K, scale, x, K, T, K, 1, EMU_BLOCK, EMU_Q_GROUP, t, 0); break;
    case CUQ_TENSOR_STATIC:
        k_quant_mul<<<blocks_for(n, 256), 256>>>(q, K, x, K, T, K, t, 1.0f / param, scale, param);
        break;
    case CUQ_TENSOR_DYNAMIC:
        if (!amax) amax = (unsigned *)dalloc(4);
        CK(cudaMemsetAsync(amax, 0, 4, 0));
        k_absmax<<<256, 256>>>(amax, x, K, T, K);
        k_quant_dyn<<<blocks_for(n, 256), 256>>>(q, scale, x, n, t, amax);
        break;
    default: k_quant_int8_token<<<T, 256>>>((int8_t *)q, scale, x, K); break;
    }
    CK_ASYNC("quant");
}

/* The nvfp4 / mxfp4 / mxfp8 activations: every group of a Linear input quantized and dequantized in place by
 * emu_wf_qdq_group (emu/ops.h: the CPU's act_qdq runs the same function), one thread per group; the bf16 GEMM then
 * reads x (vLLM's emulation path). */
__global__ void k_act_qdq(int f, float *x, size_t ngroups, float g) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < ngroups) emu_wf_qdq_group((wformat)f, x + i * emu_wf_group((wformat)f), g);
}
void cud_act_qdq(int f, float *x, int T, int K, float g) {
    size_t G = (size_t)emu_wf_group((wformat)f), n = (size_t)T * ((size_t)K / G);
    if (!n) return;
    if (g_twin) { for (size_t i = 0; i < n; i++) emu_wf_qdq_group((wformat)f, x + i * G, g); return; }
    k_act_qdq<<<blocks_for(n, 256), 256>>>(f, x, n, g);
    CK_ASYNC("act_qdq");
}

/* D = epilogue(A · Bᵀ) on device pointers (emu_gemm_desc as for emu_gemm). impl:
 *   CU_GEMM_MODEL: bit-identical to emu_gemm — fmaf chain for fp32 activations (k_gemm_f32), the
 *     integer kernel for exact E4M3, else the accumulation model per output (slow, SIMT);
 *   CU_GEMM_MMA: the hand-written mma.sync kernel (FP8 × FP8);
 *   CU_GEMM_CUBLASLT: cuBLASLt (FP8 × FP8, FAST_ACCUM unless accum is cublaslt; baselines in BF16/F32).
 * Twin mode: the model, on the host, whatever impl says. Returns NULL or why not (nothing written). */
const char *cud_gemm(const emu_gemm_desc *d, int impl) {
    const char *why = emu_gemm_check(d);
    if (why) return why;
    if (d->M == 0 || d->N == 0) return NULL;
    if (g_twin) { cu_host_gemm_model(d); return NULL; }
    Gemm g;
    g.M = d->M; g.N = d->N; g.K = d->K; g.ta = d->a_type; g.tb = d->b_type; g.td = d->d_type; g.lda = d->lda; g.ldb = d->ldb; g.ldd = d->ldd;
    g.acc = d->accum; g.A = d->A; g.B = d->B; g.D = d->D;
    g.epi = emu_epi_of(d);
    int blockscale = g.epi.a_kind == EMU_SCALE_BLOCK || g.epi.b_kind == EMU_SCALE_BLOCK;
    if (impl == CU_GEMM_CUBLASLT && g.ta == EMU_F32) {
        if (g.tb == EMU_BF16 || g.tb == EMU_F32) return lt_gemm_float(g);
        impl = CU_GEMM_MODEL;   /* weight-only FP8: no cuBLASLt kernel takes fp32 × FP8; the fmaf chain */
    }
    if (impl == CU_GEMM_MODEL && g.ta == EMU_F32 && (g.acc == EMU_ACC_FP32 || g.acc == EMU_ACC_FAST) && !blockscale) {
        k_gemm_f32<<<dim3((g.N + 31) / 32, (g.M + 31) / 32), dim3(32, 8)>>>(g);
        CK_ASYNC("gemm_f32");
        return NULL;
    }
    if (impl == CU_GEMM_MODEL && exact_int_ok(g)) {
        k_gemm_exact_int<<<dim3((g.N + 31) / 32, (g.M + 31) / 32), dim3(32, 8)>>>(g);
        CK_ASYNC("gemm_exact_e4m3");
        return NULL;
    }
    why = gemm_dev(g, (cu_gemm_impl)impl, 0);
    if (!why) CK_ASYNC("gemm");
    return why;
}
} /* extern "C" */

/* ---------------------------------------------------------------------------------------------
 * Perplexity statistics of a chunk on the device (ppl without downloading the logits): per row
 * lp = log p(target), the argmax (first maximum, as the CPU's loop), and with a base row
 * KLD(base || q) = Σ p_b (log p_b − log p_q); all in double, as cmd_ppl does on the CPU. The sums
 * run in a tree order with CUDA's exp/log (the host twin: the CPU's order and libm), so the GPU's
 * values agree with the CPU's to ~1e-15 relative, not bit for bit.
 * ------------------------------------------------------------------------------------------- */
HD void row_max(const float *l, int V, int i0, int step, float *m, int *a) {
    for (int i = i0; i < V; i += step)
        if (l[i] > *m || (l[i] == *m && i < *a)) { *m = l[i]; *a = i; }
}
__device__ void block_max(float *m, int *a, float *sm, int *sa) {
    for (int o = 16; o; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, *m, o); int a2 = __shfl_xor_sync(0xffffffffu, *a, o);
        if (m2 > *m || (m2 == *m && a2 < *a)) { *m = m2; *a = a2; }
    }
    if ((threadIdx.x & 31) == 0) { sm[threadIdx.x >> 5] = *m; sa[threadIdx.x >> 5] = *a; }
    __syncthreads();
    *m = sm[0]; *a = sa[0];
    for (int w = 1; w < (int)blockDim.x / 32; w++)
        if (sm[w] > *m || (sm[w] == *m && sa[w] < *a)) { *m = sm[w]; *a = sa[w]; }
    __syncthreads();
}
__device__ double block_sum(double v, double *sd) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) sd[threadIdx.x >> 5] = v;
    __syncthreads();
    double s = 0;
    for (int w = 0; w < (int)blockDim.x / 32; w++) s += sd[w];
    __syncthreads();
    return s;
}
__global__ void k_ppl_rows(const float *lq_all, const float *lb_all, int V, const int *targets, double *lp, int *arg, double *kld) {
    __shared__ float sm[32]; __shared__ int sa[32]; __shared__ double sd[32];
    const float *lq = lq_all + (size_t)blockIdx.x * V, *lb = lb_all ? lb_all + (size_t)blockIdx.x * V : NULL;
    float mq = -INFINITY, mb = -INFINITY; int aq = V, ab = V;
    row_max(lq, V, threadIdx.x, blockDim.x, &mq, &aq);
    block_max(&mq, &aq, sm, sa);
    if (lb) { row_max(lb, V, threadIdx.x, blockDim.x, &mb, &ab); block_max(&mb, &ab, sm, sa); }
    /* the CPU starts from element 0 (m = l[0], then l[i] > m): a NaN there stays the max, index 0 */
    if (lq[0] != lq[0]) { mq = lq[0]; aq = 0; }
    if (lb && lb[0] != lb[0]) mb = lb[0];
    double zq = 0, zb = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) { zq += exp((double)lq[i] - mq); if (lb) zb += exp((double)lb[i] - mb); }
    zq = block_sum(zq, sd);
    double lzq = log(zq), lzb = 0, k = 0;
    if (lb) {
        zb = block_sum(zb, sd);
        lzb = log(zb);
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            double lpb_i = (double)lb[i] - mb - lzb, lpq_i = (double)lq[i] - mq - lzq;
            k += exp(lpb_i) * (lpb_i - lpq_i);
        }
        k = block_sum(k, sd);
    }
    if (threadIdx.x == 0) {
        lp[blockIdx.x] = (double)lq[targets[blockIdx.x]] - mq - lzq;
        arg[blockIdx.x] = aq < V ? aq : 0;
        if (kld) kld[blockIdx.x] = k;
    }
}
extern "C" void cud_ppl_rows(const float *lq, const float *lb, int rows, int V, const int *targets, double *lp, int *arg, double *kld) {
    if (!rows) return;
    if (g_twin) {   /* the CPU's loop (emu/ops.h): index order, libm exp / log */
        for (int r = 0; r < rows; r++) {
            double k = 0;
            lp[r] = emu_ppl_row(lq + (size_t)r * V, lb ? lb + (size_t)r * V : NULL, V, targets[r], &arg[r], &k);
            if (kld) kld[r] = k;
        }
        return;
    }
    k_ppl_rows<<<rows, 256>>>(lq, lb, V, targets, lp, arg, kld);
    CK_ASYNC("ppl_rows");
}
