/* cuda_kernels.h — the interface between llama_fp8.c (C) and cuda_kernels.cu (CUDA, extern "C").
 * Both files include it: one copy of every prototype and enum. Host memory in and out for cu_*,
 * device pointers for cud_* (host pointers after cud_twin(1)); errors end the program with one line. */
#ifndef CUDA_KERNELS_H
#define CUDA_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include "emu/emu.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Which GEMM runs a scaled FP8 / baseline Linear on the GPU (--gemm). */
typedef enum { CU_GEMM_MODEL = 0, CU_GEMM_MMA = 1, CU_GEMM_CUBLASLT = 2, CU_GEMM_WGMMA = 3 } cu_gemm_impl;
/* How cud_quant quantizes an activation: forward()'s quantize_act modes, emu/quant.c's bits.
 * CUQ_TOKEN (param: scale_ub or 0), CUQ_GROUP (1x128), CUQ_TENSOR_STATIC (param: s, also written to
 * scale[0]), CUQ_TENSOR_DYNAMIC, CUQ_INT8_TOKEN. */
typedef enum { CUQ_TOKEN = 0, CUQ_GROUP = 1, CUQ_TENSOR_STATIC = 2, CUQ_TENSOR_DYNAMIC = 3, CUQ_INT8_TOKEN = 4 } cu_quant_mode;

/* device selection */
int cu_probe(char *desc, size_t len);   /* 1 and a description of the Ada / Hopper GPU found, or 0 and why none */
int cu_compute_capability(void);

/* ops on host memory (copy in, run, copy out): tests/cuda_check.c --kernels, and the GEMM benchmark */
void cu_quant_token(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float scale_ub);
void cu_quant_channel(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, emu_dtype fmt);
void cu_quant_group(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int G, emu_dtype fmt);
void cu_quant_block(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, int BN, int BK, emu_dtype fmt);
void cu_quant_tensor(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float s);
float cu_quant_tensor_dynamic(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt);
const char *cu_gemm(const emu_gemm_desc *g, int impl);   /* impl: cu_gemm_impl; NULL, or why it cannot run */
void cu_rmsnorm(int bf16, float *out, const float *x, const float *w, int T, int n, float eps);
void cu_rope(int bf16, float *x, int T, int nh, int hd, const float *cosv, const float *sinv);
void cu_attention(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale);
void cu_swiglu(int bf16, float *hb, const float *hb2, size_t n);
void cu_residual(int bf16, float *x, const float *xo, size_t n);
void cu_nll(double *nll, const float *logits, int T, int V, const int *targets);
void cu_bench_gemm(int M, int N, int K, int reps);

/* the resident forward pass: ops on device pointers (host memory after cud_twin(1)) */
void cud_twin(int on);
void *cud_try_alloc(size_t n);   /* NULL when the GPU is full */
void *cud_alloc(size_t n);
void cud_free(void *p);
void cud_upload(void *d, const void *h, size_t n);
void cud_download(void *h, const void *d, size_t n);
void cud_copy(void *d, const void *s, size_t n);
void cud_sync(void);
void cud_embed(float *x, const void *table, emu_dtype t, const int *ids, int T, int dim);
void cud_rmsnorm(int bf16, float *out, const float *x, const float *w, int T, int n, float eps);
void cud_rope(int bf16, float *x, int T, int nh, int hd, const float *cosv, const float *sinv);
void cud_kv_store(float *dst, const float *src, size_t n, emu_dtype kv, int bf16, float s);
void cud_attention(int bf16, float *q, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale);
void cud_swiglu(int bf16, float *hb, const float *hb2, size_t n);
void cud_residual(int bf16, float *x, const float *xo, size_t n);
void cud_round_bf16(float *x, size_t n);
void cud_quant(int mode, uint8_t *q, float *scale, const float *x, int T, int K, emu_dtype t, float param);   /* mode: cu_quant_mode */
void cud_act_qdq(int f, float *x, int T, int K, float g);   /* nvfp4 / mxfp4 / mxfp8 inputs, in place: f a wformat (emu/ops.h), g NVFP4's global scale */
const char *cud_gemm(const emu_gemm_desc *d, int impl);
int cu_lt_own_epilogue(void);   /* 1 once cuBLASLt refused our scale modes and the own-epilogue fallback runs */
void cud_ppl_rows(const float *lq, const float *lb, int rows, int V, const int *targets, double *lp, int *arg, double *kld);

/* the shared __host__ __device__ code compiled for the CPU (tests/cuda_check.c --host) */
void cu_host_quant_tiles(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int TR, int TC, int rule, emu_dtype t, float param);
void cu_host_gemm_model(const emu_gemm_desc *g);
float cu_host_expf(float x);
float cu_host_silu(float x);

#ifdef __cplusplus
}
#endif
#endif
