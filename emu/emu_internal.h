/* emu/emu_internal.h — shared between the reference and the fast drivers of emu/ (not a public API). */
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H
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
const float *emu_fp8_table(emu_dtype fmt);
/* emu_gemm_f32 for bf16-valued A and BF16 B on VDPBF16PS, the same bits (emu/gemm_fp8.c); 0 = not applicable */
int emu_gemm_f32_bf16pairs(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *D, size_t ldd);   /* exact values of the 256 codes of E4M3 or E5M2 */
#endif
