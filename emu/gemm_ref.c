/* emu/gemm_ref.c — plain reference kernels: the _ref twins every fast path is tested against.
 * No processor-specific code here; one loop nest per kernel, in the documented summation order. */
#include <math.h>
#include <string.h>
#include "emu/emu.h"

float emu_load(const void *p, emu_dtype t, size_t i) {
    uint32_t u;
    float f;
    switch (t) {
    case EMU_BF16: u = (uint32_t)((const uint16_t *)p)[i] << 16; memcpy(&f, &u, 4); return f;
    case EMU_F16: {   /* IEEE half → fp32, exact: rebias the exponent, normalise subnormals */
        uint16_t h = ((const uint16_t *)p)[i];
        uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
        if (e == 0) {
            if (!m) u = s;
            else { e = 113; while (!(m & 1024)) { m <<= 1; e--; } u = s | e << 23 | (m & 1023) << 13; }
        } else if (e == 31) u = s | 0x7F800000u | m << 13;
        else u = s | (e + 112) << 23 | m << 13;
        memcpy(&f, &u, 4); return f;
    }
    default: return ((const float *)p)[i];
    }
}

/* D[m][n] = fmaf-chain over k = 0..K-1 (see emu.h). */
void emu_gemm_f32_ref(int M, int N, int K, const float *A, size_t lda, const void *B, emu_dtype btype,
                      size_t ldb, float *D, size_t ldd) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        for (int m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc = fmaf(A[(size_t)m * lda + k], emu_load(B, btype, (size_t)n * ldb + k), acc);
            D[(size_t)m * ldd + n] = acc;
        }
    }
}
