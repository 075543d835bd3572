/* emu/emu.h — the one GEMM interface of llama_fp8 (CPU emulation; cuda_kernels.cu implements it too).
 * Convention everywhere: D[M,N] = A[M,K] · B[N,K]^T, all row-major; B is a weight matrix as stored
 * in the checkpoint (one row per output feature). lda, ldb, ldd are row strides in elements.
 *
 * Every fast kernel X has a portable twin X_ref with the same signature (tests/test_emu*.c compare
 * them). The fast kernels pick AVX-512 code at run time (__builtin_cpu_supports) and fall back to
 * the _ref twin elsewhere. */
#ifndef EMU_H
#define EMU_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EMU_F32 = 0, EMU_BF16 = 1, EMU_F16 = 2, EMU_E4M3 = 3, EMU_E5M2 = 4 } emu_dtype;

/* Baseline GEMM: A is fp32 (values already rounded to bf16 by the caller in bf16 mode), B is
 * stored as F32, BF16 or F16 and converted exactly to fp32 inside the kernel.
 * Summation order (fixed, documented, independent of blocking and thread count): every D[m][n] is
 *     acc = 0;  for k = 0 .. K-1:  acc = fmaf(A[m][k], B[n][k], acc);   D[m][n] = acc
 * i.e. one fp32 fused multiply-add per product, in index order — what a naive CUDA kernel does.
 * The fast kernel vectorises over n (16 columns per AVX-512 register), so it performs exactly this
 * sequence for every element: emu_gemm_f32 and emu_gemm_f32_ref agree bit for bit. */
void emu_gemm_f32(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                  size_t ldb, float *D, size_t ldd);
void emu_gemm_f32_ref(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                      size_t ldb, float *D, size_t ldd);

/* Exact conversion of one stored element (F32/BF16/F16; E4M3/E5M2 once fp8.h is merged) to fp32. */
float emu_load(const void *p, emu_dtype t, size_t i);

/* 1 when this CPU runs the AVX-512 kernels (else the _ref twins run). */
int emu_have_avx512(void);
int emu_have_avx512bf16(void);

#ifdef __cplusplus
}
#endif
#endif
