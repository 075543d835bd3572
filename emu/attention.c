/* emu/attention.c — one query row of causal attention, in forward()'s order of operations, and its
 * AVX-512 form. The order (emu.h, emu_attention_row) is what transformers' eager bf16 attention rounds
 * and what cuda_kernels.cu's attention kernels reproduce; the fast kernel keeps it lane by lane:
 *   - scores: 16 positions per register, each lane summing q[i]·k_p[i] over i in index order (K read
 *     with a gather, or, in the _kt form, from a transposed copy: contiguous loads, four chains at once);
 *   - output: 16 components per register, each lane summing a[p]·v_p[i] over p in index order;
 *   - the max scan and the softmax sum stay scalar (their order is sequential over p); expf runs 8 lanes
 *     at a time with the C library's bits (emu/vexp.c).
 * So emu_attention_row and emu_attention_row_ref agree bit for bit (tests/test_emu_attention.c), and
 * the result does not depend on the thread count (a row is one thread's work). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fp8.h"
#include "emu/emu_internal.h"

static inline float round_bf16_if(int bf16, float x) { return bf16 ? emu_bf16_round(x) : x; }

void emu_attention_row_ref(float *q, const float *k, const float *v, size_t kvd, int npos, int hd, float scale,
                           int bf16, float *att) {
    float mx = -INFINITY;
    for (int p = 0; p < npos; p++) {
        const float *kp = k + (size_t)p * kvd;
        float dot = 0.0f;
        for (int i = 0; i < hd; i++) dot += q[i] * kp[i];
        att[p] = round_bf16_if(bf16, round_bf16_if(bf16, dot) * scale);
        if (att[p] > mx) mx = att[p];
    }
    float sum = 0.0f;
    for (int p = 0; p < npos; p++) { att[p] = expf(att[p] - mx); sum += att[p]; }
    float inv = 1.0f / sum;
    for (int p = 0; p < npos; p++) att[p] = round_bf16_if(bf16, att[p] * inv);
    for (int i = 0; i < hd; i++) q[i] = 0.0f;
    for (int p = 0; p < npos; p++) {
        const float *vp = v + (size_t)p * kvd;
        float a = att[p];
        for (int i = 0; i < hd; i++) q[i] += a * vp[i];
    }
    for (int i = 0; i < hd; i++) q[i] = round_bf16_if(bf16, q[i]);
}

/* The same with K transposed, kt[i * ldkt + p] = k_p[i]: only the addressing differs. */
void emu_attention_row_kt_ref(float *q, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale,
                              int bf16, float *att) {
    float mx = -INFINITY;
    for (int p = 0; p < npos; p++) {
        float dot = 0.0f;
        for (int i = 0; i < hd; i++) dot += q[i] * kt[(size_t)i * ldkt + p];
        att[p] = round_bf16_if(bf16, round_bf16_if(bf16, dot) * scale);
        if (att[p] > mx) mx = att[p];
    }
    float sum = 0.0f;
    for (int p = 0; p < npos; p++) { att[p] = expf(att[p] - mx); sum += att[p]; }
    float inv = 1.0f / sum;
    for (int p = 0; p < npos; p++) att[p] = round_bf16_if(bf16, att[p] * inv);
    for (int i = 0; i < hd; i++) q[i] = 0.0f;
    for (int p = 0; p < npos; p++) {
        const float *vp = v + (size_t)p * kvd;
        float a = att[p];
        for (int i = 0; i < hd; i++) q[i] += a * vp[i];
    }
    for (int i = 0; i < hd; i++) q[i] = round_bf16_if(bf16, q[i]);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

T_AVX512 static void softmax_output(float *q, const float *v, size_t kvd, int npos, int hd, int bf16, float *att);
T_AVX512 static void softmax_row(float *att, int npos, int bf16);
T_AVX512 static inline __m512 score16(__m512 acc, __m512 vscale, int bf16) {
    if (bf16) acc = emu_bf16_round16(acc);
    acc = _mm512_mul_ps(acc, vscale);
    return bf16 ? emu_bf16_round16(acc) : acc;
}

/* scores from transposed K, 64 positions (four independent chains) per pass, then 16, then one by one */
T_AVX512 static void attention_row_kt_avx512(float *q, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd,
                                             float scale, int bf16, float *att) {
    __m512 vscale = _mm512_set1_ps(scale);
    int p = 0;
    for (; p + 64 <= npos; p += 64) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd; i++) {
            const float *kr = kt + (size_t)i * ldkt + p;
            __m512 qi = _mm512_set1_ps(q[i]);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(qi, _mm512_loadu_ps(kr)));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(qi, _mm512_loadu_ps(kr + 16)));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(qi, _mm512_loadu_ps(kr + 32)));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(qi, _mm512_loadu_ps(kr + 48)));
        }
        _mm512_storeu_ps(att + p, score16(a0, vscale, bf16)); _mm512_storeu_ps(att + p + 16, score16(a1, vscale, bf16));
        _mm512_storeu_ps(att + p + 32, score16(a2, vscale, bf16)); _mm512_storeu_ps(att + p + 48, score16(a3, vscale, bf16));
    }
    for (; p + 16 <= npos; p += 16) {
        __m512 a0 = _mm512_setzero_ps();
        for (int i = 0; i < hd; i++) a0 = _mm512_add_ps(a0, _mm512_mul_ps(_mm512_set1_ps(q[i]), _mm512_loadu_ps(kt + (size_t)i * ldkt + p)));
        _mm512_storeu_ps(att + p, score16(a0, vscale, bf16));
    }
    for (; p < npos; p++) {
        float dot = 0.0f;
        for (int i = 0; i < hd; i++) dot += q[i] * kt[(size_t)i * ldkt + p];
        att[p] = round_bf16_if(bf16, round_bf16_if(bf16, dot) * scale);
    }
    softmax_output(q, v, kvd, npos, hd, bf16, att);
}

/* Four query heads that share one K/V head (GQA), each in emu_attention_row_kt's order: the K and V loads
 * serve the four heads' chains at once (8 score chains per 32 positions, 16 output chains per 64
 * components). q: the four rows at stride hd; att: 4·npos. */
T_AVX512 static void attention_group4_kt(float *q, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd,
                                         float scale, int bf16, float *att) {
    __m512 vscale = _mm512_set1_ps(scale);
    int p = 0;
    for (; p + 32 <= npos; p += 32) {
        __m512 a[4][2];
        for (int h = 0; h < 4; h++) a[h][0] = a[h][1] = _mm512_setzero_ps();
        for (int i = 0; i < hd; i++) {
            const float *kr = kt + (size_t)i * ldkt + p;
            __m512 k0 = _mm512_loadu_ps(kr), k1 = _mm512_loadu_ps(kr + 16);
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                __m512 qh = _mm512_set1_ps(q[h * hd + i]);
                a[h][0] = _mm512_add_ps(a[h][0], _mm512_mul_ps(qh, k0));
                a[h][1] = _mm512_add_ps(a[h][1], _mm512_mul_ps(qh, k1));
            }
        }
        for (int h = 0; h < 4; h++) {
            _mm512_storeu_ps(att + (size_t)h * npos + p, score16(a[h][0], vscale, bf16));
            _mm512_storeu_ps(att + (size_t)h * npos + p + 16, score16(a[h][1], vscale, bf16));
        }
    }
    for (; p + 16 <= npos; p += 16) {
        __m512 a[4];
        for (int h = 0; h < 4; h++) a[h] = _mm512_setzero_ps();
        for (int i = 0; i < hd; i++) {
            __m512 k0 = _mm512_loadu_ps(kt + (size_t)i * ldkt + p);
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) a[h] = _mm512_add_ps(a[h], _mm512_mul_ps(_mm512_set1_ps(q[h * hd + i]), k0));
        }
        for (int h = 0; h < 4; h++) _mm512_storeu_ps(att + (size_t)h * npos + p, score16(a[h], vscale, bf16));
    }
    for (; p < npos; p++)
        for (int h = 0; h < 4; h++) {
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += q[h * hd + i] * kt[(size_t)i * ldkt + p];
            att[(size_t)h * npos + p] = round_bf16_if(bf16, round_bf16_if(bf16, dot) * scale);
        }
    for (int h = 0; h < 4; h++) softmax_row(att + (size_t)h * npos, npos, bf16);
    /* output: 64 components of the four heads per pass over p (16 chains), then 16, then one by one */
    int i0 = 0;
    for (; i0 + 64 <= hd; i0 += 64) {
        __m512 o[4][4];
        for (int h = 0; h < 4; h++) for (int j = 0; j < 4; j++) o[h][j] = _mm512_setzero_ps();
        for (p = 0; p < npos; p++) {
            const float *vp = v + (size_t)p * kvd + i0;
            __m512 v0 = _mm512_loadu_ps(vp), v1 = _mm512_loadu_ps(vp + 16), v2 = _mm512_loadu_ps(vp + 32), v3 = _mm512_loadu_ps(vp + 48);
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                __m512 w = _mm512_set1_ps(att[(size_t)h * npos + p]);
                o[h][0] = _mm512_add_ps(o[h][0], _mm512_mul_ps(w, v0));
                o[h][1] = _mm512_add_ps(o[h][1], _mm512_mul_ps(w, v1));
                o[h][2] = _mm512_add_ps(o[h][2], _mm512_mul_ps(w, v2));
                o[h][3] = _mm512_add_ps(o[h][3], _mm512_mul_ps(w, v3));
            }
        }
        for (int h = 0; h < 4; h++)
            for (int j = 0; j < 4; j++) _mm512_storeu_ps(q + h * hd + i0 + 16 * j, bf16 ? emu_bf16_round16(o[h][j]) : o[h][j]);
    }
    for (; i0 + 16 <= hd; i0 += 16) {
        __m512 o[4];
        for (int h = 0; h < 4; h++) o[h] = _mm512_setzero_ps();
        for (p = 0; p < npos; p++) {
            __m512 v0 = _mm512_loadu_ps(v + (size_t)p * kvd + i0);
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) o[h] = _mm512_add_ps(o[h], _mm512_mul_ps(_mm512_set1_ps(att[(size_t)h * npos + p]), v0));
        }
        for (int h = 0; h < 4; h++) _mm512_storeu_ps(q + h * hd + i0, bf16 ? emu_bf16_round16(o[h]) : o[h]);
    }
    for (; i0 < hd; i0++)
        for (int h = 0; h < 4; h++) {
            float o = 0.0f;
            for (p = 0; p < npos; p++) o += att[(size_t)h * npos + p] * v[(size_t)p * kvd + i0];
            q[h * hd + i0] = round_bf16_if(bf16, o);
        }
}

T_AVX512 static void attention_row_avx512(float *q, const float *k, const float *v, size_t kvd, int npos, int hd,
                                          float scale, int bf16, float *att) {
    /* scores, 16 positions at a time: lane j holds position p0 + j, k read with stride kvd */
    __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)kvd));
    __m512 vscale = _mm512_set1_ps(scale);
    int p = 0;
    for (; p + 16 <= npos; p += 16) {
        const float *kb = k + (size_t)p * kvd;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < hd; i++)
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(q[i]), _mm512_i32gather_ps(idx, kb + i, 4)));
        if (bf16) acc = emu_bf16_round16(acc);
        acc = _mm512_mul_ps(acc, vscale);
        if (bf16) acc = emu_bf16_round16(acc);
        _mm512_storeu_ps(att + p, acc);
    }
    for (; p < npos; p++) {
        const float *kp = k + (size_t)p * kvd;
        float dot = 0.0f;
        for (int i = 0; i < hd; i++) dot += q[i] * kp[i];
        att[p] = round_bf16_if(bf16, round_bf16_if(bf16, dot) * scale);
    }
    softmax_output(q, v, kvd, npos, hd, bf16, att);
}

/* softmax over att[0..npos) and the output row, in the reference's order */
/* softmax: the max scan ('>' skips NaN), expf and the sum in position order, as the reference */
T_AVX512 static void softmax_row(float *att, int npos, int bf16) {
    int p = 0;
    /* the max, 16 lanes at a time: VMAXPS(x, m) keeps m when x is NaN, like the '>' scan; it may pick +0 where the
     * scan keeps -0 (or the reverse), which changes no att[p] − mx below */
    __m512 m16 = _mm512_set1_ps(-INFINITY);
    for (; p + 16 <= npos; p += 16) m16 = _mm512_max_ps(_mm512_loadu_ps(att + p), m16);
    float mx = _mm512_reduce_max_ps(m16);
    for (; p < npos; p++) if (att[p] > mx) mx = att[p];
    float sum = 0.0f;
    for (p = 0; p < npos; p++) att[p] -= mx;
    emu_expf_n(att, att, (size_t)npos);   /* the library's expf, 16 at a time (emu/vexp.c) */
    for (p = 0; p < npos; p++) sum += att[p];
    float inv = 1.0f / sum;
    for (p = 0; p < npos; p++) att[p] = att[p] * inv;
    if (bf16) emu_bf16_round_n(att, (size_t)npos);
}
T_AVX512 static void softmax_output(float *q, const float *v, size_t kvd, int npos, int hd, int bf16, float *att) {
    int p;
    softmax_row(att, npos, bf16);
    /* output, 16 components at a time, each summed over p in order (product rounded, then added) */
    int i0 = 0;
    for (; i0 + 64 <= hd; i0 += 64) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (p = 0; p < npos; p++) {
            const float *vp = v + (size_t)p * kvd + i0;
            __m512 w = _mm512_set1_ps(att[p]);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(w, _mm512_loadu_ps(vp)));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(w, _mm512_loadu_ps(vp + 16)));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(w, _mm512_loadu_ps(vp + 32)));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(w, _mm512_loadu_ps(vp + 48)));
        }
        if (bf16) { a0 = emu_bf16_round16(a0); a1 = emu_bf16_round16(a1); a2 = emu_bf16_round16(a2); a3 = emu_bf16_round16(a3); }
        _mm512_storeu_ps(q + i0, a0); _mm512_storeu_ps(q + i0 + 16, a1);
        _mm512_storeu_ps(q + i0 + 32, a2); _mm512_storeu_ps(q + i0 + 48, a3);
    }
    for (; i0 + 16 <= hd; i0 += 16) {
        __m512 a0 = _mm512_setzero_ps();
        for (p = 0; p < npos; p++) a0 = _mm512_add_ps(a0, _mm512_mul_ps(_mm512_set1_ps(att[p]), _mm512_loadu_ps(v + (size_t)p * kvd + i0)));
        if (bf16) a0 = emu_bf16_round16(a0);
        _mm512_storeu_ps(q + i0, a0);
    }
    for (; i0 < hd; i0++) {
        float o = 0.0f;
        for (p = 0; p < npos; p++) o += att[p] * v[(size_t)p * kvd + i0];
        q[i0] = round_bf16_if(bf16, o);
    }
}
#endif

void emu_attention_row(float *q, const float *k, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* the gather's 32-bit offsets reach 15·kvd floats past a block's first row */
    if (emu_have_avx512() && kvd <= (size_t)INT32_MAX / 16) { attention_row_avx512(q, k, v, kvd, npos, hd, scale, bf16, att); return; }
#endif
    emu_attention_row_ref(q, k, v, kvd, npos, hd, scale, bf16, att);
}

void emu_attention_row_kt(float *q, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale, int bf16, float *att) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (emu_have_avx512()) { attention_row_kt_avx512(q, kt, ldkt, v, kvd, npos, hd, scale, bf16, att); return; }
#endif
    emu_attention_row_kt_ref(q, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
}

void emu_attention_group_kt(float *q, int G, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale,
                            int bf16, float *att) {
    int g = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (emu_have_avx512())
        for (; g + 4 <= G; g += 4) attention_group4_kt(q + (size_t)g * hd, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
#endif
    for (; g < G; g++) emu_attention_row_kt(q + (size_t)g * hd, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
}
void emu_attention_group_kt_ref(float *q, int G, const float *kt, size_t ldkt, const float *v, size_t kvd, int npos, int hd, float scale,
                                int bf16, float *att) {
    for (int g = 0; g < G; g++) emu_attention_row_kt_ref(q + (size_t)g * hd, kt, ldkt, v, kvd, npos, hd, scale, bf16, att);
}
