/* emu_gemm_f32 (the GEMM of the fp32 and bf16 forward passes):
 *  1. the fast AVX-512 kernel equals its _ref twin bit for bit (same fmaf chain per element, see
 *     emu/emu.h), on shapes that hit every tail of the blocking, for B in F32, BF16 and F16;
 *  2. identical bits for OMP_NUM_THREADS = 1, 2, 7;
 *  3. the _ref kernel itself is checked against a double-precision sum with the classical bound for
 *     recursive summation with FMA: |fl(Σ a_k b_k) − Σ a_k b_k| ≤ γ_K Σ|a_k b_k|, γ_K = K·u/(1−K·u),
 *     u = 2^-24 (Higham, Accuracy and Stability, §3.1; each fmaf step has one rounding, so K roundings).
 *     The double reference is exact enough: its own error ≤ γ_K(2^-53)·Σ|ab|, far below the bound. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emu/emu.h"

static int failures;
#define CHECK(name, cond, ...) do { if (cond) printf("ok emu_f32: %s\n", name); else { printf("FAIL emu_f32: %s: ", name); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 16); }
static float frnd(void) { return ((int)(rnd() & 0xFFFFFF) - 0x800000) / (float)0x800000; }

/* random B of a given storage type: finite values of mixed magnitude, including subnormals for F16 */
static void *make_b(emu_dtype t, size_t n) {
    if (t == EMU_F32) { float *b = malloc(4 * n); for (size_t i = 0; i < n; i++) b[i] = frnd() * ldexpf(1, (int)(rnd() % 8) - 4); return b; }
    uint16_t *b = malloc(2 * n);
    for (size_t i = 0; i < n; i++) {
        uint16_t v;
        do v = (uint16_t)rnd(); while (t == EMU_F16 ? ((v >> 10) & 31) == 31 || ((v >> 10) & 31) > 20 : ((v >> 7) & 255) > 130 || ((v >> 7) & 255) < 100);
        b[i] = v;
    }
    return b;
}

/* The test runs 7 threads on a 2-core machine; libgomp's default active spinning then costs far more
 * than the work (6x wall time here). Re-run ourselves once with passive waiting, before OpenMP starts. */
static void passive_wait(char **argv) {
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);             /* on failure just continue as we are */
    }
}

int main(int argc, char **argv) {
    (void)argc;
    passive_wait(argv);
    static const int shapes[][3] = {{1, 1, 1}, {1, 17, 3}, {7, 301, 517}, {6, 64, 256}, {13, 257, 255}, {37, 130, 1000}, {64, 513, 300}, {3, 1000, 16}};
    const emu_dtype types[] = {EMU_F32, EMU_BF16, EMU_F16};
    const char *tname[] = {"F32", "BF16", "F16"};
    printf("# avx512 kernels: %s\n", emu_have_avx512() ? "yes" : "no (fast path = ref, comparisons are trivial)");
    for (int ti = 0; ti < 3; ti++) {
        int same = 1, det = 1, bound = 1;
        char why[256] = "";
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            size_t lda = K + 3, ldb = K + (ti == 0 ? 1 : 5), ldd = N + 2;  /* strides ≠ widths on purpose */
            float *A = malloc(4 * M * lda);
            for (size_t i = 0; i < M * lda; i++) A[i] = frnd();
            void *B = make_b(types[ti], N * ldb);
            float *D = malloc(4 * M * ldd), *R = malloc(4 * M * ldd), *T = malloc(4 * M * ldd);
            for (size_t i = 0; i < M * ldd; i++) D[i] = R[i] = T[i] = -7.0f;  /* padding must survive */
            emu_gemm_f32_ref(M, N, K, A, lda, B, types[ti], ldb, R, ldd);
            emu_gemm_f32(M, N, K, A, lda, B, types[ti], ldb, D, ldd);
            if (memcmp(D, R, 4 * M * ldd)) {
                same = 0;
                for (size_t i = 0; i < M * ldd; i++) if (memcmp(D + i, R + i, 4)) {
                    snprintf(why, sizeof why, "M=%d N=%d K=%d first difference at %zu: %a vs ref %a", M, N, K, i, D[i], R[i]); break; }
            }
            const int threads[] = {1, 2, 7};
            for (int th = 0; th < 3; th++) {
                omp_set_num_threads(threads[th]);
                emu_gemm_f32(M, N, K, A, lda, B, types[ti], ldb, T, ldd);
                if (memcmp(T, D, 4 * M * ldd)) det = 0;
            }
            omp_set_num_threads(2);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double sum = 0, abs = 0;
                    for (int k = 0; k < K; k++) {
                        double p = (double)A[m * lda + k] * emu_load(B, types[ti], n * ldb + k);
                        sum += p; abs += fabs(p);
                    }
                    double u = ldexp(1, -24), g = K * u / (1 - K * u);
                    if (fabs(R[m * ldd + n] - sum) > g * abs) {
                        if (bound) snprintf(why + strlen(why), sizeof why - strlen(why), " ref off by %g > bound %g", fabs(R[m * ldd + n] - sum), g * abs);
                        bound = 0;
                    }
                }
            free(A); free(B); free(D); free(R); free(T);
        }
        char name[96];
        snprintf(name, sizeof name, "B=%s fast == ref bit for bit (8 shapes, all blocking tails)", tname[ti]);
        CHECK(name, same, "%s", why);
        snprintf(name, sizeof name, "B=%s identical bits for 1, 2, 7 threads", tname[ti]);
        CHECK(name, det, "results depend on the thread count");
        snprintf(name, sizeof name, "B=%s ref within gamma_K * sum|ab| of the exact sum", tname[ti]);
        CHECK(name, bound, "%s", why);
    }
    /* bf16-valued A × BF16 B (the bf16 scheme's GEMMs): on AVX512-BF16 CPUs emu_gemm_f32 runs VDPBF16PS
     * with swapped pairs (emu/gemm_fp8.c) when nothing can be subnormal, else the fmaf kernel; both must
     * give the reference's bits. Cases: odd K, K over one 512-k block, zeros, then values that force the
     * fallback (2^-60, a subnormal, an inf; then inside the vectorised scans: -2^-57 in A, a normal B of
     * 2^-120, an A value that is not bf16-valued, a B inf; and B = 2^-80 against A = 2^-56 alone in its row, where
     * the instruction's flush would give 0 for the fmaf chain's 2^-136). */
    {
        static const int sh[][3] = {{6, 64, 2}, {7, 65, 3}, {13, 130, 1101}, {30, 257, 514}, {5, 1, 7}};
        int same = 1, fb = 1;
        char why[200] = "";
        for (int unit = 0; unit < 2; unit++)   /* fp32 FMA, then VDPBF16PS where the CPU has it (emu_use_bf16_dot) */
        for (int force = 0; force < 11 && (emu_set_bf16_dot(unit), emu_use_bf16_dot() == unit); force++)
            for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
                int M = sh[s][0], N = sh[s][1], K = sh[s][2];
                size_t lda = K + 1, ldb = K + 3, ldd = N + 1;
                float *A = malloc(4 * M * lda), *D = malloc(4 * M * ldd), *R = malloc(4 * M * ldd);
                uint16_t *B = make_b(EMU_BF16, N * ldb);
                for (size_t i = 0; i < M * lda; i++) {
                    float v = (rnd() % 11 == 0) ? 0.0f : frnd() * ldexpf(1, (int)(rnd() % 16) - 8);
                    uint32_t u; memcpy(&u, &v, 4); u &= 0xFFFF0000u; memcpy(&v, &u, 4);   /* bf16-valued */
                    A[i] = v;
                }
                if (force == 1) A[(M - 1) * lda + K - 1] = ldexpf(1, -60);
                if (force == 2) B[(N - 1) * ldb + K / 2] = 0x0001;           /* a bf16 subnormal */
                if (force == 3) A[0] = INFINITY;
                if (force == 4) A[(M - 1) * lda + K / 2] = -ldexpf(1, -57);
                if (force == 5) B[K / 2] = 0x8380;                             /* -2^-120: normal, below 2^-56 */
                if (force == 6) { uint32_t u; memcpy(&u, &A[K / 2], 4); u |= 1; memcpy(&A[K / 2], &u, 4); }
                if (force == 7) B[(N / 2) * ldb + K / 2] = 0x7F80;
                if (force >= 8) {   /* a value the flush changes: row 0 of A is 2^-56 at k only, B = 2^-80 there: 2^-136 */
                    int n = force == 9 ? N - 1 : N / 2, k = force == 9 ? K - 1 : K / 2;
                    for (int kk = 0; kk < K; kk++) A[kk] = 0;
                    A[k] = ldexpf(1, force == 10 ? -80 : -56);
                    B[(size_t)n * ldb + k] = force == 10 ? 0x2380 : 0x1780;   /* (case 10: A = 2^-80, B = 2^-56) */
                }
                emu_gemm_f32(M, N, K, A, lda, B, EMU_BF16, ldb, D, ldd);
                emu_gemm_f32_ref(M, N, K, A, lda, B, EMU_BF16, ldb, R, ldd);
                for (int m = 0; m < M; m++)
                    if (memcmp(D + m * ldd, R + m * ldd, 4 * N)) {
                        if (same) snprintf(why, sizeof why, "unit %d case %d, %dx%dx%d row %d", unit, force, M, N, K, m);
                        same = 0; if (force) fb = 0;
                        break;
                    }
                free(A); free(B); free(D); free(R);
            }
        emu_set_bf16_dot(-1);
        CHECK("bf16-valued A x BF16 B: fast (fp32 FMA; VDPBF16PS pairs where the CPU has them and they apply) == ref bit for bit", same, "%s", why);
        CHECK("bf16-valued A x BF16 B with values the instruction would flush (2^-60, subnormals, inf, 2^-136 products): the fallback keeps the ref's bits", fb, "%s", why);
    }
    /* exact conversion of special values: F16 inf and subnormal, BF16 denormal */
    uint16_t h[3] = {0x7C00, 0x0001, 0x8000}, bf[2] = {0x0001, 0xFF80};
    CHECK("F16 inf / smallest subnormal / -0 decode exactly", isinf(emu_load(h, EMU_F16, 0)) && emu_load(h, EMU_F16, 1) == ldexpf(1, -24) && signbit(emu_load(h, EMU_F16, 2)), "decode");
    CHECK("BF16 denormal / -inf decode exactly", emu_load(bf, EMU_BF16, 0) == ldexpf(1, -133) && emu_load(bf, EMU_BF16, 1) == -INFINITY, "decode");
    return failures != 0;
}
