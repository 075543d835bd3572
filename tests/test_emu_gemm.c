/* emu_gemm (scaled FP8 / INT8 GEMM, emu/emu.h):
 *  1. for every accumulation model, the fast driver gives the bits of emu_gemm_ref (the per-element
 *     model), for E4M3 and E5M2, per-token/per-channel, per-tensor and 128-block scales, fp32 and bf16
 *     output, INT8, weight-only fp32 A — exact equality, because every fast kernel performs the
 *     model's own sequence of roundings (see emu/gemm_fp8.c);
 *  2. identical bits for OMP_NUM_THREADS = 1, 2, 7;
 *  3. exact mode against goldens computed with Python fractions.Fraction from ml_dtypes-decoded FP8
 *     (tests/emu_gen_goldens.py -> tests/emu_goldens.h) and against a long-double sum;
 *  4. the tensor-core models against hand-derived cases (see the comments there). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emu/emu.h"

static int failures;
#define CHECK(name, cond, ...) do { if (cond) printf("ok emu_gemm: %s\n", name); else { printf("FAIL emu_gemm: %s: ", name); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 16); }
static uint8_t rcode(emu_dtype t) {   /* random finite code */
    for (;;) {
        uint8_t c = (uint8_t)rnd();
        if (isfinite(emu_fp8_decode(c, t))) return c;
    }
}

static int big_codes;   /* E4M3 fills: 15 in 16 codes of magnitude 8..448 (as quantized activations and weights) */
static void fill(void *p, emu_dtype t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (t == EMU_I8) ((int8_t *)p)[i] = (int8_t)(rnd() % 255 - 127);
        else if (t == EMU_E4M3 && big_codes && rnd() % 16) ((uint8_t *)p)[i] = (uint8_t)((rnd() & 0x80) | (0x50 + rnd() % 0x2F));
        else if (t == EMU_F32) ((float *)p)[i] = ((int)(rnd() % 2001) - 1000) / 137.0f;
        else ((uint8_t *)p)[i] = rcode(t);
    }
}

static size_t dsz(emu_dtype t) { return t == EMU_F32 ? 4 : 1; }

/* runs fast and ref (and 1/2/7 threads) on one configuration; returns "" or a reason */
static const char *run_case(int M, int N, int K, emu_dtype ta, emu_dtype tb, emu_scale sa, emu_scale sb, emu_dtype td, emu_accum acc, int *det) {
    static char why[200];
    size_t lda = K + 5, ldb = K + 3, ldd = N + 1;
    int nk = (K + 127) / 128, nbn = (N + 127) / 128;
    void *A = malloc(dsz(ta) * M * lda), *B = malloc(dsz(tb) * N * ldb);
    fill(A, ta, M * lda); fill(B, tb, N * ldb);
    float *as = malloc(sizeof(float) * M * nk + 4), *bs = malloc(sizeof(float) * nbn * (N + nk) * nk + 4);
    for (int i = 0; i < M * nk; i++) as[i] = ldexpf(1 + (rnd() % 1000) / 1000.0f, -(int)(rnd() % 8));
    for (int i = 0; i < nbn * (N + nk) * nk; i++) bs[i] = ldexpf(1 + (rnd() % 1000) / 1000.0f, -(int)(rnd() % 8));
    size_t ds = td == EMU_F32 ? 4 : 2;
    void *D1 = calloc(M * ldd, ds), *D2 = calloc(M * ldd, ds), *D3 = calloc(M * ldd, ds);
    emu_gemm_desc g = {M, N, K, ta, A, lda, tb, B, ldb, sa, as, sb, bs, td, D1, ldd, acc};
    emu_gemm_ref(&g);
    g.D = D2;
    emu_gemm(&g);
    why[0] = 0;
    if (memcmp(D1, D2, ds * M * ldd)) {
        for (size_t i = 0; i < M * ldd; i++)
            if (memcmp((char *)D1 + i * ds, (char *)D2 + i * ds, ds)) {
                snprintf(why, sizeof why, "M=%d N=%d K=%d element %zu: fast %a ref %a", M, N, K, i,
                         td == EMU_F32 ? ((float *)D2)[i] : 0.0, td == EMU_F32 ? ((float *)D1)[i] : 0.0);
                break;
            }
    }
    const int th[] = {1, 2, 7};
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(th[t]);
        g.D = D3; emu_gemm(&g);
        if (memcmp(D3, D2, ds * M * ldd)) *det = 0;
        g.D = D3; emu_gemm_ref(&g);
        if (memcmp(D3, D1, ds * M * ldd)) *det = 0;
    }
    omp_set_num_threads(2);
    free(A); free(B); free(as); free(bs); free(D1); free(D2); free(D3);
    return why;
}

#include "tests/emu_goldens.h"

/* the xorshift64 code generator of tests/emu_gen_goldens.py */
static uint64_t gold_codes(uint64_t s, int K, emu_dtype fmt, uint8_t *out) {
    for (int n = 0; n < K;) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        uint8_t c = (uint8_t)(s >> 16);
        if (isfinite(emu_fp8_decode(c, fmt))) out[n++] = c;
    }
    return s;
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
    printf("# avx512: %d, avx512bf16: %d\n", emu_have_avx512(), emu_have_avx512bf16());
    /* names */
    int names_ok = 1;
    for (int i = 0; i < EMU_ACC_COUNT; i++) names_ok &= emu_accum_from_name(emu_accum_names[i]) == i;
    CHECK("accumulation model names round-trip; unknown name gives -1", names_ok && emu_accum_from_name("fp16") == -1 && emu_accum_from_name(NULL) == -1, "names");

    static const int shapes[][3] = {{1, 1, 1}, {3, 70, 33}, {7, 130, 300}, {13, 257, 129}, {1, 64, 1000}};
    /* accum=fast runs on VDPBF16PS or on fp32 FMA with swapped pairs (emu_use_bf16_dot): both units are checked where the CPU has both */
    for (int acc = 0, unit = 0; acc < EMU_ACC_COUNT; unit = acc == EMU_ACC_FAST && unit == 0 && emu_have_avx512bf16() ? 1 : 0, acc += !unit) {
        emu_set_bf16_dot(unit);
        const char *uname = acc != EMU_ACC_FAST ? "" : emu_use_bf16_dot() ? " (VDPBF16PS)" : " (fp32 FMA)";
        for (int f = 0; f < 2; f++) {
            emu_dtype t = f ? EMU_E5M2 : EMU_E4M3;
            int det = 1;
            char why[256] = "";
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && !why[0]; s++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                const char *w;
                if ((w = run_case(M, N, K, t, t, EMU_SCALE_ROW, EMU_SCALE_ROW, EMU_F32, acc, &det))[0] ||
                    (w = run_case(M, N, K, t, t, EMU_SCALE_TENSOR, EMU_SCALE_TENSOR, EMU_BF16, acc, &det))[0] ||
                    (w = run_case(M, N, K, t, t, EMU_SCALE_BLOCK, EMU_SCALE_BLOCK, EMU_F32, acc, &det))[0] ||
                    (w = run_case(M, N, K, t, t, EMU_SCALE_ONE, EMU_SCALE_BLOCK, EMU_BF16, acc, &det))[0])
                    snprintf(why, sizeof why, "%s", w);
            }
            char name[128];
            snprintf(name, sizeof name, "accum=%s%s %s: fast == ref bit for bit (token/channel, tensor, block scales; f32/bf16 out)",
                     emu_accum_names[acc], uname, f ? "E5M2" : "E4M3");
            CHECK(name, !why[0], "%s", why);
            snprintf(name, sizeof name, "accum=%s%s %s: identical bits for 1, 2, 7 threads", emu_accum_names[acc], uname, f ? "E5M2" : "E4M3");
            CHECK(name, det, "results depend on the thread count");
        }
    }
    emu_set_bf16_dot(-1);
    { int det = 1; const char *w = run_case(9, 200, 300, EMU_I8, EMU_I8, EMU_SCALE_ROW, EMU_SCALE_ROW, EMU_F32, EMU_ACC_FAST, &det);
      CHECK("INT8 x INT8 (exact int accumulation) fast == ref, thread-independent", !w[0] && det, "%s", w); }
    { int det = 1; const char *w = run_case(9, 200, 300, EMU_F32, EMU_E4M3, EMU_SCALE_ONE, EMU_SCALE_ROW, EMU_BF16, EMU_ACC_FP32, &det);
      CHECK("weight-only (fp32 A x E4M3 B) fast == ref, thread-independent", !w[0] && det, "%s", w); }
    { int det = 1; const char *w = run_case(5, 90, 260, EMU_E4M3, EMU_E5M2, EMU_SCALE_ROW, EMU_SCALE_ROW, EMU_F32, EMU_ACC_EXACT, &det);
      CHECK("mixed E4M3 x E5M2 exact fast == ref", !w[0] && det, "%s", w); }
    /* the exact driver decodes A in chunks of at most 1536 rows: M = 1601 crosses two chunk boundaries */
    { int det = 1; const char *w = run_case(1601, 35, 70, EMU_E4M3, EMU_E4M3, EMU_SCALE_ROW, EMU_SCALE_ROW, EMU_BF16, EMU_ACC_EXACT, &det);
      CHECK("exact E4M3, M = 1601 (A decoded in row chunks) fast == ref, thread-independent", !w[0] && det, "%s", w); }
    /* and runs column panels of 128..512 (by thread count) in k steps of 128: N = 1100, K = 300 gives panels
     * 512/512/76 (1 thread), 384/384/332 (2), 128s and a last of 76 (7); k steps 128, 128, 44 */
    { int det = 1; const char *w = run_case(13, 1100, 300, EMU_E4M3, EMU_E4M3, EMU_SCALE_ROW, EMU_SCALE_ROW, EMU_F32, EMU_ACC_EXACT, &det);
      CHECK("exact E4M3, N = 1100, K = 300 (column panels with partial blocks) fast == ref, thread-independent", !w[0] && det, "%s", w); }

    /* exact E4M3 on the split path (emu/gemm_fp8.c, "exact, split": big x big in fp32 runs on VDPBF16PS, small
     * values as lists in double), forced on: uniform codes (half the values small: long lists), then mostly big
     * codes (long fp32 runs); M = 2100 runs as three chunks of 700 rows (at most 1024 a chunk). The same bits as the per-element reference,
     * for 1, 2 and 7 threads. */
    if (emu_have_avx512bf16()) {
        emu_set_bf16_dot(1);   /* the split runs on VDPBF16PS only; force it where the CPU has it but prefers fp32 FMA */
        for (int mode = 3; mode >= 2; mode--)   /* one plane (big values), then with the middle plane (1/8 ≤ |a| < 8) */
        for (big_codes = 0; big_codes < 2; big_codes++) {
            emu_set_exact_split(mode);
            int det = 1;
            char why[256] = "";
            static const int sh[][3] = {{1, 1, 1}, {3, 70, 33}, {7, 130, 300}, {13, 257, 129}, {1, 64, 1000}, {13, 1100, 300}, {601, 35, 70}, {50, 200, 1031}, {2100, 21, 40}};
            for (size_t i = 0; i < sizeof sh / sizeof sh[0] && !why[0]; i++) {
                const char *w;
                if ((w = run_case(sh[i][0], sh[i][1], sh[i][2], EMU_E4M3, EMU_E4M3, EMU_SCALE_ROW, EMU_SCALE_ROW, EMU_F32, EMU_ACC_EXACT, &det))[0] ||
                    (w = run_case(sh[i][0], sh[i][1], sh[i][2], EMU_E4M3, EMU_E4M3, EMU_SCALE_BLOCK, EMU_SCALE_BLOCK, EMU_BF16, EMU_ACC_EXACT, &det))[0])
                    snprintf(why, sizeof why, "%s", w);
            }
            char name[160];
            snprintf(name, sizeof name, "exact E4M3 split path (%s), %s codes: fast == ref bit for bit, thread-independent",
                     mode == 3 ? "one plane" : "with the middle plane", big_codes ? "mostly big" : "uniform");
            CHECK(name, !why[0] && det, "%s", why);
        }
        big_codes = 0;
        emu_set_exact_split(1);
        /* the fp32 runs end before 448·Σ|a| passes 2^22. A = 448 everywhere but k = 63 (9); B = 448 for k < 63,
         * 2.25 at k = 63, -448 for k = 64..126, 0 after: the exact sum is 63·200704 + 20.25 - 63·200704 = 20.25.
         * A run over k = 0..63 in fp32 holds 12644352 + 20.25 above 2^23 (ulp 1) and loses the quarter: 20. So
         * do runs of 64 k, or the bound 2^24 in place of 2^22 (80 k) — both checked by mutation. */
        {
            enum { K = 256, N = 64 };
            uint8_t a[6 * K], b[N * K];
            float d[6 * N], r[6 * N], one = 1.0f;
            for (int i = 0; i < 6 * K; i++) a[i] = i % K == 63 ? 0x51 : 0x7E;   /* 9, 448 */
            for (int i = 0; i < N * K; i++) {
                int k = i % K;
                b[i] = k < 63 ? 0x7E : k == 63 ? 0x41 : k < 127 ? 0xFE : 0x00;   /* 448, 2.25, -448, 0 */
            }
            emu_gemm_desc g = {6, N, K, EMU_E4M3, a, K, EMU_E4M3, b, K, EMU_SCALE_TENSOR, &one, EMU_SCALE_TENSOR, &one, EMU_F32, d, N, EMU_ACC_EXACT};
            emu_gemm(&g);
            g.D = r; emu_gemm_ref(&g);
            CHECK("exact split path: fp32 runs cut at the 2^22 bound (a quarter survives partial sums above 2^23)",
                  !memcmp(d, r, sizeof d) && d[0] == 20.25f && d[6 * N - 1] == 20.25f, "split %.2f ref %.2f want 20.25", d[0], r[0]);
        }
        /* the same bound on the middle plane (64·a for 1/8 ≤ |a| < 8): A = 7.5 (480 in the plane) but 9/64 (9) at
         * k = 63, B as above: exact sum 0.31640625 = (20.25)/64; a 64-k run would keep 13547520 + 20 (0.3125) */
        {
            enum { K = 256, N = 64 };
            uint8_t a[6 * K], b[N * K];
            float d[6 * N], r[6 * N], one = 1.0f;
            for (int i = 0; i < 6 * K; i++) a[i] = i % K == 63 ? 0x21 : 0x4F;   /* 9/64, 7.5 */
            for (int i = 0; i < N * K; i++) {
                int k = i % K;
                b[i] = k < 63 ? 0x7E : k == 63 ? 0x41 : k < 127 ? 0xFE : 0x00;
            }
            emu_set_exact_split(2);
            emu_gemm_desc g = {6, N, K, EMU_E4M3, a, K, EMU_E4M3, b, K, EMU_SCALE_TENSOR, &one, EMU_SCALE_TENSOR, &one, EMU_F32, d, N, EMU_ACC_EXACT};
            emu_gemm(&g);
            g.D = r; emu_gemm_ref(&g);
            emu_set_exact_split(1);
            CHECK("exact split path: the middle plane's runs cut at the same bound (0.31640625, not 0.3125)",
                  !memcmp(d, r, sizeof d) && d[0] == 0.31640625f && d[6 * N - 1] == 0.31640625f, "split %.8f ref %.8f", d[0], r[0]);
        }
        /* a NaN code sends the call the double way (it keeps the NaN's bits) */
        {
            enum { K = 40, N = 70 };
            uint8_t a[5 * K], b[N * K];
            float d[5 * N], r[5 * N], one = 1.0f;
            fill(a, EMU_E4M3, sizeof a); fill(b, EMU_E4M3, sizeof b);
            a[2 * K + 7] = 0x7F; b[9 * K + 3] = 0xFF;
            emu_gemm_desc g = {5, N, K, EMU_E4M3, a, K, EMU_E4M3, b, K, EMU_SCALE_TENSOR, &one, EMU_SCALE_TENSOR, &one, EMU_F32, d, N, EMU_ACC_EXACT};
            emu_gemm(&g);
            g.D = r; emu_gemm_ref(&g);
            int same = 1;   /* NaN where the reference has NaN (its sign where two NaNs meet is the CPU's business), else the same bits */
            for (int i = 0; i < 5 * N; i++) same &= isnan(r[i]) ? isnan(d[i]) : !memcmp(d + i, r + i, 4);
            CHECK("exact split path: NaN codes go the double way: NaN in their row and column, the reference's bits elsewhere",
                  same && isnan(d[2 * N]) && isnan(d[9]) && !isnan(d[0]), "d[2N] %g d[9] %g d[0] %g", d[2 * N], d[9], d[0]);
        }
        emu_set_exact_split(-1);
        emu_set_bf16_dot(-1);
    } else
        printf("skip emu_gemm: exact E4M3 split path: no AVX512-BF16 on this CPU\n");

    /* exact mode vs Fraction goldens */
    int gold_ok = 1; char gwhy[200] = "";
    for (int i = 0; i < EMU_NGOLD; i++) {
        const emu_golden_case *e = &emu_golden_cases[i];
        uint8_t *ga = malloc(e->K), *gb = malloc(e->K);
        gold_codes(gold_codes(e->seed, e->K, e->fmt_a, ga), e->K, e->fmt_b, gb);
        float d[2];
        emu_gemm_desc g = {1, 1, e->K, e->fmt_a, ga, e->K, e->fmt_b, gb, e->K, EMU_SCALE_ONE, NULL, EMU_SCALE_ONE, NULL, EMU_F32, d, 1, EMU_ACC_EXACT};
        emu_gemm(&g);
        g.D = d + 1; emu_gemm_ref(&g);
        uint32_t u, v; memcpy(&u, d, 4); memcpy(&v, d + 1, 4);
        if (u != e->bits || v != e->bits) { gold_ok = 0; snprintf(gwhy, sizeof gwhy, "case %d (K=%d): fast 0x%08x ref 0x%08x want 0x%08x", i, e->K, u, v, e->bits); }
        free(ga); free(gb);
    }
    CHECK("exact mode == Fraction-sum goldens (Python fractions + ml_dtypes decode, RNE to fp32)", gold_ok, "%s", gwhy);

    /* tensor-core models, hand-derived:
     * (a) 1 + 2^-14 + ... : products 1 (e=0) and 2^-14 (sixteen 2^-7·2^-7): aligned to maxexp 0 with 13
     *     fraction bits, 2^-14 is shifted out by truncation: hopper gives 1, exact gives 1 + 2^-14·16·... */
    uint8_t one = 0x38, small = 0x08;          /* E4M3: 0x38 = 1.0, 0x08 = 2^-6 */
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++) { a[i] = small; b[i] = 0x00 | 0x08; }
    a[0] = one; b[0] = one;                    /* 1·1 + 31 · 2^-12 */
    float dh, de, dd;
    emu_gemm_desc g = {1, 1, 32, EMU_E4M3, a, 32, EMU_E4M3, b, 32, EMU_SCALE_ONE, NULL, EMU_SCALE_ONE, NULL, EMU_F32, &dh, 1, EMU_ACC_HOPPER};
    emu_gemm(&g);
    g.D = &de; g.accum = EMU_ACC_EXACT; emu_gemm(&g);
    g.D = &dd; g.accum = EMU_ACC_ADA; emu_gemm(&g);
    /* products 2^-12 align to exponent 0 with 13 fraction bits: each keeps 2^-12 (bit 12 of 13) exactly,
     * so hopper = 1 + 31·2^-12 = exact; Ada (blocks of 16): block 1 = 1 + 15·2^-12 (14 sig. bits, exact),
     * block 2 adds 16·2^-12 to it: exact too. */
    CHECK("tensor-core model: products within 13 fraction bits of the block maximum are kept exactly",
          dh == 1 + 31 * 0x1p-12f && dd == dh && de == dh, "hopper %a ada %a exact %a", dh, dd, de);
    for (int i = 1; i < 32; i++) { a[i] = 0x01; b[i] = 0x08; }   /* 31 · 2^-9 · 2^-6 = 31·2^-15: below 2^-13 → truncated away */
    g.D = &dh; g.accum = EMU_ACC_HOPPER; emu_gemm(&g);
    g.D = &de; g.accum = EMU_ACC_EXACT; emu_gemm(&g);
    CHECK("tensor-core model: products below 2^-13 of the block maximum are truncated (exact keeps them)",
          dh == 1.0f && de == 1 + 31 * 0x1p-15f, "hopper %a exact %a", dh, de);
    /* (c) truncation of the running sum: 448·448 = 200704 = 2^17·1.53..; + 1 (=1·1): needs 17 fraction
     *     bits → hopper truncates to 13: result 200704 exactly (1 lost); with -1 it rounds toward zero. */
    memset(a, 0, 32); memset(b, 0, 32);
    a[0] = 0x7E; b[0] = 0x7E; a[1] = 0x38; b[1] = 0xB8;          /* 448² − 1 */
    g.D = &dh; g.accum = EMU_ACC_HOPPER; emu_gemm(&g);
    g.D = &de; g.accum = EMU_ACC_EXACT; emu_gemm(&g);
    /* aligned to maxexp 17 with 13 fraction bits, −1 (2^0, 17 below) is truncated to 0: 200704 */
    CHECK("tensor-core model: 448^2 - 1 -> 448^2 (hopper), 200703 (exact)", dh == 200704.0f && de == 200703.0f, "hopper %a exact %a", dh, de);

    /* fast: the order inside a VDPBF16PS pair is observable. a·b = [64, 0, 2^-18, 2^-18] (E4M3 8·8 and
     * 2^-9·2^-9): after pair 0 acc = 64; pair 1 adds 2^-18 = half an ulp of 64 twice, each a tie that
     * rounds to even (64): fast = 64. One rounding of both products would give 64 + 2^-17 = exact. */
    {
        uint8_t va[4] = {0x50, 0x00, 0x01, 0x01}, vb[4] = {0x50, 0x00, 0x01, 0x01};
        float df = -1, dr = -1, dx = -1;
        emu_gemm_desc q = {1, 1, 4, EMU_E4M3, va, 4, EMU_E4M3, vb, 4, EMU_SCALE_ONE, NULL, EMU_SCALE_ONE, NULL, EMU_F32, &df, 1, EMU_ACC_FAST};
        float dv = 64.0f;
        emu_set_bf16_dot(1);
        int have_dp = emu_use_bf16_dot();
        if (have_dp) { q.D = &dv; emu_gemm(&q); }    /* VDPBF16PS itself, where the CPU has it */
        emu_set_bf16_dot(0);
        q.D = &df; emu_gemm(&q);                     /* the fp32 FMA kernel */
        emu_set_bf16_dot(-1);
        q.D = &dr; emu_gemm_ref(&q);
        q.D = &dx; q.accum = EMU_ACC_EXACT; emu_gemm(&q);
        CHECK(have_dp ? "fast: the two products of a k pair are added one at a time (64 + 2^-18 + 2^-18 = 64; exact 64 + 2^-17), by VDPBF16PS and by the fp32 FMA kernel"
                      : "fast: the two products of a k pair are added one at a time (64 + 2^-18 + 2^-18 = 64; exact 64 + 2^-17), by the fp32 FMA kernel (no AVX512-BF16 here)",
              df == 64.0f && dv == 64.0f && dr == 64.0f && dx == 64.0f + 0x1p-17f, "fast %a VDPBF16PS %a ref %a exact %a", df, dv, dr, dx);
    }

    /* every model against the exact sum, within a bound derived from its arithmetic (E4M3, K = 1000,
     * unscaled, 40 dot products). S = Σ|a_k b_k|, u = 2^-24.
     *  fp32, fast: K roundings to nearest of partial sums each ≤ S in magnitude → |err| ≤ γ_K·S,
     *              γ_K = K·u/(1 − K·u) (Higham §3.1).
     *  hopper/ada (block n): in one block every one of the ≤ n+1 aligned terms loses < 2^(E−13) by
     *              truncation and the result loses < 2^(E'−13) more, where 2^E ≤ the largest term
     *              magnitude ≤ S' (S' = S plus the errors so far, ≤ 2S for these sizes) and
     *              E' ≤ E + log2(n+1) + 1. Per block < (n+1)·2^-13·2S + 2(n+1)·2^-13·2S; summed over
     *              ceil(K/n) blocks: |err| ≤ ceil(K/n)·6(n+1)·2^-13·S.
     *  cublaslt:   the hopper bound over chunks of 128 plus γ_{K/128} for the fp32 promotions. */
    {
        int K = 1000, worst = -1; char bwhy[200] = "";
        uint8_t *va = malloc(K), *vb = malloc(K);
        for (int t = 0; t < 40; t++) {
            fill(va, EMU_E4M3, K); fill(vb, EMU_E4M3, K);
            double S = 0;
            for (int k = 0; k < K; k++) S += fabs((double)emu_fp8_decode(va[k], EMU_E4M3) * emu_fp8_decode(vb[k], EMU_E4M3));
            float r[EMU_ACC_COUNT];
            for (int acc = 0; acc < EMU_ACC_COUNT; acc++) {
                emu_gemm_desc q = {1, 1, K, EMU_E4M3, va, K, EMU_E4M3, vb, K, EMU_SCALE_ONE, NULL, EMU_SCALE_ONE, NULL, EMU_F32, &r[acc], 1, acc};
                emu_gemm(&q);
            }
            double u = ldexp(1, -24), g = K * u / (1 - K * u);
            double bound[EMU_ACC_COUNT] = {0, g * S, ceil(K / 32.0) * 6 * 33 * ldexp(1, -13) * S, ceil(K / 16.0) * 6 * 17 * ldexp(1, -13) * S,
                                           ceil(K / 32.0) * 6 * 33 * ldexp(1, -13) * S + 8 * u * 2 * S, g * S};
            for (int acc = 1; acc < EMU_ACC_COUNT; acc++)
                if (fabs((double)r[acc] - r[EMU_ACC_EXACT]) > bound[acc] + 0.5 * u * fabs(r[EMU_ACC_EXACT]) * 2) {
                    worst = acc;
                    snprintf(bwhy, sizeof bwhy, "%s: |%a - exact %a| > bound %g", emu_accum_names[acc], r[acc], r[EMU_ACC_EXACT], bound[acc]);
                }
        }
        CHECK("fp32/fast/hopper/ada/cublaslt within their derived error bounds of exact (K=1000, 40 dots)", worst < 0, "%s", bwhy);
        free(va); free(vb);
    }
    return failures != 0;
}
