/* emu/emu.h — the one GEMM interface of llama_fp8 (CPU emulation; cuda_kernels.cu implements it too).
 * Convention everywhere: D[M,N] = A[M,K] · B[N,K]^T, all row-major; B is a weight matrix as stored
 * in the checkpoint (one row per output feature). */
#ifndef EMU_H
#define EMU_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EMU_F32 = 0, EMU_BF16 = 1, EMU_F16 = 2, EMU_E4M3 = 3, EMU_E5M2 = 4 } emu_dtype;

/* Baseline GEMM: A is fp32 (values already rounded to bf16 by the caller in bf16 mode), B is
 * stored as F32, BF16 or F16 and converted exactly to fp32 inside the kernel; fp32 accumulation.
 * lda, ldb, ldd are row strides in elements. */
void emu_gemm_f32(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                  size_t ldb, float *D, size_t ldd);

#ifdef __cplusplus
}
#endif
#endif
