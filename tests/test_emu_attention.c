/* emu_attention_row and emu_attention_row_kt (forward()'s attention for one token and head, K by rows or transposed):
 *  1. the fast AVX-512 kernels equal the _ref twins bit for bit (each lane keeps the reference's order,
 *     see emu/emu.h), fp32 and bf16, on head sizes with and without a 16/64 tail, position counts
 *     around every multiple of 16, cache strides wider than the head (GQA), and rows holding NaN, ±Inf,
 *     -0 and values that overflow the scores;
 *  2. the reference itself against a double-precision softmax·V on finite inputs, with the bound derived
 *     below.
 * Bound for 2. (fp32 mode, u = 2^-24): each score s_p = fl(Σ_i q_i k_i) has |s_p − σ_p| ≤ γ_hd Σ|q_i k_i|
 * (recursive summation, hd roundings of products and sums: γ_n = n·u/(1−n·u), Higham §3.1) plus the scale
 * multiply (1 u), so |Δs_p| ≤ ε_s = (γ_2hd + u)·scale·max_p Σ_i |q_i k_pi| (computed from the inputs).
 * A score error ε_s changes each softmax weight by a relative factor ≤ e^(2ε_s) − 1; expf, the sum
 * (npos roundings), the reciprocal and the normalising product add ≤ (npos + 4)·u relative. The output
 * o_i = Σ_p a_p v_pi (npos products and sums) then differs from the exact value by at most
 * (e^(2ε_s) − 1 + (npos + 4)·u + γ_{2·npos})·Σ_p a_p |v_pi| ≤ that factor, since Σ a_p = 1 and |v| ≤ 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emu/emu.h"

static int failures;
#define CHECK(name, cond, ...) do { if (cond) printf("ok emu_attention: %s\n", name); else { printf("FAIL emu_attention: %s: ", name); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 16); }
static float frnd(void) { return ((int)(rnd() & 0xFFFFFF) - 0x800000) / (float)0x800000; }

int main(void) {
    printf("# avx512 kernels: %s\n", emu_have_avx512() ? "yes" : "no (fast path = ref, comparisons are trivial)");
    static const int hds[] = {8, 16, 64, 72, 128, 80};
    static const int nposs[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 257};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        for (int special = 0; special < 2; special++) {
            long runs = 0, diff = 0;
            char first[200] = "";
            for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
                for (size_t b = 0; b < sizeof nposs / sizeof nposs[0]; b++) {
                    int hd = hds[a], npos = nposs[b];
                    size_t kvd = (size_t)hd * (1 + (a % 3));   /* the head's rows inside wider cache rows */
                    float *k = malloc(sizeof(float) * kvd * npos), *v = malloc(sizeof(float) * kvd * npos);
                    float *q1 = malloc(sizeof(float) * hd), *q2 = malloc(sizeof(float) * hd);
                    float *att = malloc(sizeof(float) * npos);
                    float spread = 1.0f + (float)(rnd() % 8);   /* large spreads: softmax near one-hot */
                    for (size_t i = 0; i < kvd * npos; i++) { k[i] = frnd() * spread; v[i] = frnd(); }
                    for (int i = 0; i < hd; i++) q1[i] = frnd() * spread;
                    if (special) {   /* a NaN / Inf / -0 / huge value in some rows and lanes */
                        int p = (int)(rnd() % npos), i = (int)(rnd() % hd);
                        switch (rnd() % 4) {
                        case 0: k[(size_t)p * kvd + i] = NAN; break;
                        case 1: v[(size_t)p * kvd + i] = -INFINITY; break;
                        case 2: k[(size_t)p * kvd + i] = 3e38f; q1[i] = 3e38f; break;
                        default: for (int j = 0; j < hd; j++) v[(size_t)p * kvd + j] = -0.0f; break;
                        }
                    }
                    memcpy(q2, q1, sizeof(float) * hd);
                    float *q3 = malloc(sizeof(float) * hd), *q4 = malloc(sizeof(float) * hd);
                    memcpy(q3, q1, sizeof(float) * hd); memcpy(q4, q1, sizeof(float) * hd);
                    size_t ldkt = (size_t)npos + 3;   /* the _kt forms read K transposed: kt[i][p] */
                    float *kt = malloc(sizeof(float) * ldkt * hd);
                    for (int p = 0; p < npos; p++)
                        for (int i = 0; i < hd; i++) kt[(size_t)i * ldkt + p] = k[(size_t)p * kvd + i];
                    float scale = 1.0f / sqrtf((float)hd);
                    emu_attention_row(q1, k, v, kvd, npos, hd, scale, bf16, att);
                    emu_attention_row_ref(q2, k, v, kvd, npos, hd, scale, bf16, att);
                    emu_attention_row_kt(q3, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
                    emu_attention_row_kt_ref(q4, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
                    runs++;
                    if (memcmp(q1, q2, sizeof(float) * hd) || memcmp(q3, q2, sizeof(float) * hd) || memcmp(q4, q2, sizeof(float) * hd)) {
                        if (!memcmp(q1, q2, sizeof(float) * hd)) memcpy(q1, memcmp(q3, q2, sizeof(float) * hd) ? q3 : q4, sizeof(float) * hd);
                        if (!diff) {
                            int i = 0;
                            while (!memcmp(&q1[i], &q2[i], 4)) i++;
                            snprintf(first, sizeof first, "hd %d npos %d kvd %zu: q[%d] = %a vs ref %a", hd, npos, kvd, i, q1[i], q2[i]);
                        }
                        diff++;
                    }
                    free(k); free(v); free(q1); free(q2); free(q3); free(q4); free(kt); free(att);
                }
            char name[96];
            snprintf(name, sizeof name, "fast = ref (K by rows and transposed), %s, %s inputs", bf16 ? "bf16" : "fp32", special ? "NaN/Inf/-0/overflow" : "finite");
            CHECK(name, diff == 0, "%ld of %ld rows differ; first: %s", diff, runs, first);
        }
    }
    /* 1b. GQA groups: emu_attention_group_kt (four heads at once on AVX-512) == each head by emu_attention_row_ref,
     * for G = 1, 4, 5, 8 heads, head sizes with 64/16/scalar tails, positions around the 32/16 blocks, specials */
    {
        static const int Gs[] = {1, 4, 5, 8}, ghds[] = {8, 64, 72, 128, 80}, gnp[] = {1, 15, 16, 31, 32, 33, 47, 64, 100, 257};
        long gdiff = 0, gruns = 0;
        char gfirst[200] = "";
        for (int bf16 = 0; bf16 < 2; bf16++)
            for (size_t gi = 0; gi < sizeof Gs / sizeof Gs[0]; gi++)
                for (size_t a = 0; a < sizeof ghds / sizeof ghds[0]; a++)
                    for (size_t b = 0; b < sizeof gnp / sizeof gnp[0]; b++) {
                        int G = Gs[gi], hd = ghds[a], npos = gnp[b];
                        size_t kvd = (size_t)hd * (1 + (a % 2)), ldkt = (size_t)npos + 5;
                        float *k = malloc(sizeof(float) * kvd * npos), *v = malloc(sizeof(float) * kvd * npos), *kt = malloc(sizeof(float) * ldkt * hd);
                        float *q1 = malloc(sizeof(float) * G * hd), *q2 = malloc(sizeof(float) * G * hd), *q3 = malloc(sizeof(float) * G * hd);
                        float *att = malloc(sizeof(float) * G * npos);
                        for (size_t i = 0; i < kvd * npos; i++) { k[i] = frnd() * 3; v[i] = frnd(); }
                        for (int i = 0; i < G * hd; i++) q1[i] = frnd() * 3;
                        if (b % 3 == 1) {   /* a NaN, an Inf or an overflowing score in one head */
                            int p = (int)(rnd() % npos), i = (int)(rnd() % hd);
                            if (b % 2) k[(size_t)p * kvd + i] = NAN; else { v[(size_t)p * kvd + i] = INFINITY; q1[(G - 1) * hd + i] = 3e38f; k[(size_t)p * kvd + i] = 3e38f; }
                        }
                        for (int p = 0; p < npos; p++)
                            for (int i = 0; i < hd; i++) kt[(size_t)i * ldkt + p] = k[(size_t)p * kvd + i];
                        memcpy(q2, q1, sizeof(float) * G * hd); memcpy(q3, q1, sizeof(float) * G * hd);
                        float scale = 1.0f / sqrtf((float)hd);
                        emu_attention_group_kt(q1, G, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
                        emu_attention_group_kt_ref(q2, G, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
                        for (int h = 0; h < G; h++) emu_attention_row_ref(q3 + h * hd, k, v, kvd, npos, hd, scale, bf16, att);
                        gruns++;
                        if (memcmp(q1, q3, sizeof(float) * G * hd) || memcmp(q2, q3, sizeof(float) * G * hd)) {
                            if (!gdiff) snprintf(gfirst, sizeof gfirst, "G %d hd %d npos %d bf16 %d", G, hd, npos, bf16);
                            gdiff++;
                        }
                        free(k); free(v); free(kt); free(q1); free(q2); free(q3); free(att);
                    }
        CHECK("GQA group of heads (four at once) == each head by the reference (G 1/4/5/8, fp32 and bf16, NaN/Inf)", gdiff == 0,
              "%ld of %ld groups differ; first: %s", gdiff, gruns, gfirst);
    }
    /* 2. the reference against double precision (fp32 mode, finite inputs in [-1, 1]) */
    {
        int hd = 128, npos = 300, bad = 0;
        double worst = 0;
        for (int rep = 0; rep < 20; rep++) {
            float *k = malloc(sizeof(float) * hd * npos), *v = malloc(sizeof(float) * hd * npos), *q = malloc(sizeof(float) * hd), *att = malloc(sizeof(float) * npos);
            double *s = malloc(sizeof(double) * npos), o[128];
            for (int i = 0; i < hd * npos; i++) { k[i] = frnd(); v[i] = frnd(); }
            for (int i = 0; i < hd; i++) q[i] = frnd();
            double scale = 1.0f / sqrtf((float)hd), mx = -INFINITY, z = 0, ab = 0;
            for (int p = 0; p < npos; p++) {
                double d = 0, a = 0;
                for (int i = 0; i < hd; i++) { d += (double)q[i] * k[p * hd + i]; a += fabs((double)q[i] * k[p * hd + i]); }
                if (a > ab) ab = a;
                s[p] = d * scale;
                if (s[p] > mx) mx = s[p];
            }
            for (int p = 0; p < npos; p++) z += exp(s[p] - mx);
            for (int i = 0; i < hd; i++) { o[i] = 0; for (int p = 0; p < npos; p++) o[i] += exp(s[p] - mx) / z * v[p * hd + i]; }
            emu_attention_row_ref(q, k, v, hd, npos, hd, (float)scale, 0, att);
            double u = ldexp(1, -24), eps_s = (2.0 * hd * u / (1 - 2.0 * hd * u) * ab + u * ab) * scale, gamma = 2.0 * npos * u / (1 - 2.0 * npos * u);
            double bound = exp(2 * eps_s) - 1 + (npos + 4) * u + gamma;
            for (int i = 0; i < hd; i++) {
                double e = fabs(q[i] - o[i]);
                if (!(e <= bound)) bad++;
                if (e / bound > worst) worst = e / bound;
            }
            free(k); free(v); free(q); free(att); free(s);
        }
        CHECK("ref vs double softmax·V (hd 128, 300 positions, 20 rows)", bad == 0, "%d outputs exceed the bound (worst %.2f of it)", bad, worst);
        printf("# worst error: %.3g of the derived bound\n", worst);
    }
    return failures ? 1 : 0;
}
