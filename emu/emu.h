/* emu/emu.h — the one GEMM interface of llama_fp8 (CPU emulation; cuda_kernels.cu implements it too).
 * Convention everywhere: D[M,N] = A[M,K] · B[N,K]^T, all row-major; B is a weight matrix as stored
 * in the checkpoint (one row per output feature). lda, ldb, ldd are row strides in elements.
 *
 * Every fast kernel X has a portable twin X_ref with the same signature (tests/test_emu*.c compare
 * them). The fast kernels pick AVX-512 code at run time (__builtin_cpu_supports) and fall back to
 * the _ref twin elsewhere, or when the environment has LLAMA_FP8_NO_SIMD set. */
#ifndef EMU_H
#define EMU_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EMU_F32 = 0, EMU_BF16 = 1, EMU_F16 = 2, EMU_E4M3 = 3, EMU_E5M2 = 4, EMU_I8 = 5 } emu_dtype;

/* Baseline GEMM: A is fp32 (values already rounded to bf16 by the caller in bf16 mode), B is
 * stored as F32, BF16 or F16 (or E4M3 / E5M2 / I8, for weight-only schemes) and converted exactly to
 * fp32 inside the kernel.
 * Summation order (fixed, documented, independent of blocking and thread count): every D[m][n] is
 *     acc = 0;  for k = 0 .. K-1:  acc = fmaf(A[m][k], B[n][k], acc);   D[m][n] = acc
 * i.e. one fp32 fused multiply-add per product, in index order — what a naive CUDA kernel does.
 * The fast kernel vectorises over n (16 columns per AVX-512 register), so it performs exactly this
 * sequence for every element: emu_gemm_f32 and emu_gemm_f32_ref agree bit for bit. */
void emu_gemm_f32(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                  size_t ldb, float *D, size_t ldd);
void emu_gemm_f32_ref(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                      size_t ldb, float *D, size_t ldd);

/* Exact conversion of one stored element (any emu_dtype) to fp32. */
float emu_load(const void *p, emu_dtype t, size_t i);

/* Causal attention of one query row q[0..hd) against npos cached positions (forward()'s attention for
 * one token and head; transformers' eager attention rounds the same way). k, v: npos rows of stride kvd.
 * B(x) = bf16 rounding (RNE) when bf16, else x; all arithmetic fp32, products rounded then added (no FMA):
 *   s[p] = B(B(Σ_i q[i]·k_p[i]) · scale)      the sum over i in index order
 *   m = max_p s[p] (a '>' scan: NaN is skipped); e[p] = expf(s[p] − m); sum = Σ_p e[p] in order
 *   a[p] = B(e[p] · (1 / sum));  q[i] ← B(Σ_p a[p]·v_p[i])   the sum over p in index order
 * att: npos floats of scratch. The fast kernel runs 16 positions (scores) or 16 components (output) per
 * AVX-512 register, each lane in this order: bit-identical to the _ref twin. */
void emu_attention_row(float *q, const float *k, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att);
void emu_attention_row_ref(float *q, const float *k, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att);
/* The same with K transposed, kt[i * ldkt + p] = k_p[i] (forward() builds it once per layer when many query
 * rows read the cache): the same bits. */
void emu_attention_row_kt(float *q, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att);
void emu_attention_row_kt_ref(float *q, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att);
/* G query heads sharing one K/V head (GQA), each exactly as emu_attention_row_kt: q holds the G rows at stride hd,
 * att is scratch of G·npos floats. The fast kernel runs four heads at once (their K and V loads shared). */
void emu_attention_group_kt(float *q, int G, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att);
void emu_attention_group_kt_ref(float *q, int G, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att);

/* y[i] = expf(x[i]), i < n (y may be x): the C library's expf, bit for bit, 8 lanes at a time where this CPU
 * and library allow (emu/vexp.c: glibc's algorithm replayed on AVX-512, checked against the library on first use;
 * otherwise the library itself). emu_vexp_active: 1 when the vector form runs. */
void emu_expf_n(float *y, const float *x, size_t n);
void emu_exp_n(double *y, const double *x, size_t n);   /* the same for exp (double) */
int emu_vexp_active(void);
/* emu_ppl_row (emu/ops.h: log p(target), argmax, KLD) on the CPU with emu_exp_n: the same bits. */
double emu_ppl_row_cpu(const float *lq, const float *lb, long V, int target, int *arg, double *kld);

/* 1 when this CPU runs the AVX-512 kernels (else the _ref twins run). */
int emu_have_avx512(void);
int emu_have_avx512bf16(void);
/* 1 when bf16 products run on VDPBF16PS, 0 on fp32 FMA (the same bits; the faster unit of this CPU, or
 * LLAMA_FP8_BF16_DOT=1|0); emu_set_bf16_dot(1|0) forces one (where the CPU has it), -1 decides again. */
int emu_use_bf16_dot(void);
void emu_set_bf16_dot(int on);
/* exact E4M3 x E4M3 on VDPBF16PS where it pays (emu/gemm_fp8.c, "exact, split"; the same bits):
 * emu_set_exact_split(1|0) forces it on or off (where the CPU has AVX512-BF16 and uses it), -1 decides per
 * call; 2 and 3 force it on with and without its middle plane (tests). */
void emu_set_exact_split(int on);
/* Measured peak GFLOP/s of this CPU over all OpenMP threads: fp32 FMA (kind 0), VDPBF16PS (1), fp64 FMA (2); 0 if absent. */
double emu_peak_gflops(int kind);

/* ---------------------------------------------------------------------------------------------
 * FP8 / INT8 row quantization. x is [rows][cols] fp32 with row stride ldx, q the codes with row
 * stride ldq. fmt is EMU_E4M3 or EMU_E5M2; fmax = 448 or 57344. Every FP8 encode is vLLM's
 * clamp fmaxf(-fmax, fminf(v, fmax)) followed by fp8.h's RNE encoder (NaN inputs become +fmax, as in vLLM).
 * The division / reciprocal conventions are those of the tool named (NUMERICS.md §3): they change bits.
 * ------------------------------------------------------------------------------------------- */
float emu_fmax(emu_dtype fmt);                       /* 448, 57344 (E4M3, E5M2); 127 for EMU_I8 */
uint8_t emu_fp8_encode(float x, emu_dtype fmt);      /* fp8.h RNE of vLLM's clamp fmaxf(-fmax, fminf(x, fmax)): NaN → +fmax */
float emu_fp8_decode(uint8_t v, emu_dtype fmt);      /* exact (fp8.h fp8_to_float) */

/* vLLM dynamic_per_token_scaled_fp8_quant: per row absmax a (min(a, scale_ub) when scale_ub > 0),
 * s = max(a / fmax, 1 / (fmax·512)), q = fp8(clamp(x / s)) with the division in fp32. scale[M]. */
void emu_quant_token(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K,
                     emu_dtype fmt, float scale_ub);
/* vLLM static per-tensor (input_scale s from a checkpoint): inv = 1.0f / s, q = fp8(clamp(x · inv)). */
void emu_quant_tensor(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt, float s);
/* vLLM dynamic per-tensor: s = absmax / fmax over the whole matrix (no floor), then as above. Returns s. */
float emu_quant_tensor_dynamic(uint8_t *q, size_t ldq, const float *x, size_t ldx, int M, int K, emu_dtype fmt);
/* Per-channel weights, fp32 arithmetic, as compressed-tensors 0.20 on an fp32 model: per row n of
 * W[N][K] s[n] = absmax / fmax (a zero scale becomes FLT_EPSILON), q = fp8(torch.clamp(w / s + 0, ±fmax)):
 * the "+ 0" (its zero point) makes −0 encode as +0; torch.clamp lets NaN through. */
void emu_quant_channel(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, emu_dtype fmt);
/* 1×G groups (activations, DeepSeek-V3 / vLLM per_token_group_quant_fp8, G = 128):
 * s[m][g] = max(absmax_g, 1e-10) / fmax, q = fp8(clamp(x / s)). scale is [M][ceil(K/G)]. */
void emu_quant_group(uint8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K, int G, emu_dtype fmt);
/* BN×BK blocks (weights, 128×128), compressed-tensors "block": per block as emu_quant_channel per row.
 * scale is [ceil(N/BN)][ceil(K/BK)]. */
void emu_quant_block(uint8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K, int BN, int BK, emu_dtype fmt);
/* Symmetric INT8, RNE (ties to even). Per token (vLLM dynamic_scaled_int8_quant): s = absmax/127,
 * q = rne(x · (127 / absmax)) within ±127 (an all-zero row gets s = 0 and q = 0). Per channel
 * (compressed-tensors 0.20, int8 range [-128, 127]): s = absmax / 127.5 (zero → FLT_EPSILON),
 * q = rne(torch.clamp(w / s + 0, -128, 127)). */
/* The rule of llama_fp8.c's quant_weight for FP8 weights (compressed-tensors on an fp32 or bf16 model, as
 * the schemes prepare them): q[i] = rne(clamp(B(w[i] / s) + 0, -fmax, fmax)), B = bf16 rounding when
 * bf16, else none; the division in fp32; clamp is torch.clamp, which lets NaN through (code 0x7F). */
void emu_quant_weight_row(uint8_t *q, const float *w, int n, float s, emu_dtype fmt, int bf16);
void emu_quant_weight_row_ref(uint8_t *q, const float *w, int n, float s, emu_dtype fmt, int bf16);
/* max |x[i]| over n floats (NaN skipped, as fmaxf; 0 for n = 0): exact, so any order gives it. */
float emu_absmax(const float *x, int n);
/* x[i] rounded to bf16 (RNE, fp8.h bf16_from_float: a NaN becomes the quiet NaN of its sign) and back, in place. */
void emu_bf16_round_n(float *x, size_t n);
/* dst[j] = emu_load(src, t, i0 + j) for j < n (16 lanes at a time where AVX-512 is there). */
void emu_load_row(float *dst, const void *src, emu_dtype t, size_t i0, int n);
void emu_quant_int8_token(int8_t *q, size_t ldq, float *scale, const float *x, size_t ldx, int M, int K);
void emu_quant_int8_channel(int8_t *q, size_t ldq, float *scale, const float *w, size_t ldw, int N, int K);

/* ---------------------------------------------------------------------------------------------
 * Scaled GEMM   D[M,N] = epilogue(A[M,K] · B[N,K]^T)
 * A, B: EMU_E4M3 / EMU_E5M2 codes (uint8), EMU_I8 (int8), or A = EMU_F32 with B of any type (weight-only).
 * Epilogue (vLLM CUTLASS ScaledEpilogue): t = fp32(s_b[n] · acc); D = round_out(s_a[m] · t), where acc is
 * the fp32 result of the accumulation model and round_out is exact for F32 and RNE for BF16 output.
 * Block scales (A: 1×128 groups, B: 128×128 blocks; either one BLOCK makes K go in groups of 128):
 * acc_g per group of 128 k (each from the model, starting at 0), then in group order
 * D_acc = fp32(D_acc + fp32(fp32(acc_g · s_a[m][g]) · s_b[n/128][g]))  (vLLM's Triton block kernel),
 * D = round_out(D_acc). Scales of kind ONE are 1 (pointer unused).
 * ------------------------------------------------------------------------------------------- */
enum { EMU_BLOCK = 128 };
typedef enum { EMU_SCALE_ONE = 0, EMU_SCALE_TENSOR, EMU_SCALE_ROW, EMU_SCALE_BLOCK } emu_scale;

/* Accumulation models (emu_accum_names[i] is the --accum name of model i):
 *  exact    the exact sum of the products, rounded once to fp32 (RNE). Order-free: the reference.
 *  fp32     acc = fmaf(a_k, b_k, acc) for k = 0..K-1 (a naive CUDA kernel; products are exact).
 *  hopper   H100 FP8 tensor-core model (Khattak & Mikaitis 2025): blocks of 32 products aligned with the
 *           running sum to the largest exponent, 13 fraction bits kept (+1 carry bit) by truncation,
 *           exact addition, result truncated (round toward zero) to 13 fraction bits; recursive over blocks.
 *  ada      the same with blocks of 16 (Ada / L40S).
 *  cublaslt hopper within chunks of 128 k (4 wgmma k-steps) starting from 0, each chunk promoted by an
 *           fp32 RNE addition: acc = fp32(acc + chunk) (CUTLASS/cuBLASLt default, FAST_ACCUM off).
 *  fast     fastest path of this CPU, fixed order: for j = 0..ceil(K/2)-1 (pairs, odd K padded with 0)
 *           acc = fp32(fp32(acc + p[2j+1]) + p[2j]) — the order of AVX512-BF16 VDPBF16PS; RNE each add.
 *           For A = F32 (weight-only) fast means fp32. */
typedef enum { EMU_ACC_EXACT = 0, EMU_ACC_FP32, EMU_ACC_HOPPER, EMU_ACC_ADA, EMU_ACC_CUBLASLT, EMU_ACC_FAST, EMU_ACC_COUNT } emu_accum;
extern const char *const emu_accum_names[EMU_ACC_COUNT];
int emu_accum_from_name(const char *name);           /* index, or -1 when unknown */

typedef struct {
    int M, N, K;
    emu_dtype a_type; const void *A; size_t lda;     /* row strides in elements */
    emu_dtype b_type; const void *B; size_t ldb;
    emu_scale a_scale_kind; const float *a_scale;    /* TENSOR [1], ROW [M], BLOCK [M][ceil(K/128)] */
    emu_scale b_scale_kind; const float *b_scale;    /* TENSOR [1], ROW [N], BLOCK [ceil(N/128)][ceil(K/128)] */
    emu_dtype d_type; void *D; size_t ldd;           /* EMU_F32 (float) or EMU_BF16 (uint16_t) */
    emu_accum accum;
} emu_gemm_desc;

/* NULL when the combination is supported, else a one-line reason. */
const char *emu_gemm_check(const emu_gemm_desc *g);
/* Both exit with a message on an unsupported combination. Identical bits for every thread count. */
void emu_gemm(const emu_gemm_desc *g);
void emu_gemm_ref(const emu_gemm_desc *g);

#ifdef __cplusplus
}
#endif
#endif
