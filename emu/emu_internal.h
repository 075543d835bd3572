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
/* Epilogue: plain (no block scales): t = fp32(s_b·acc), return fp32(s_a·t).
 * With block scales (emu_gemm_groups(g) = number of 128-groups, else 0): r = 0; for each group in order
 * r = fp32(r + emu_epi_group(...)), where emu_epi_group = fp32(fp32(acc_g·s_a)·s_b). Then emu_epi_store. */
float emu_epi_plain(const emu_gemm_desc *g, int m, int n, float acc);
float emu_epi_group(const emu_gemm_desc *g, int m, int n, int gi, float acc);
void emu_epi_store(const emu_gemm_desc *g, int m, int n, float r);
int emu_gemm_groups(const emu_gemm_desc *g);
float emu_dot_model(const float *a, const float *b, int K, emu_accum acc, emu_dtype ta, emu_dtype tb);
const float *emu_fp8_table(emu_dtype fmt);   /* exact values of the 256 codes of E4M3 or E5M2 */
#endif
