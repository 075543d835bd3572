/* emu/models.h — the accumulation models on one dot product of decoded values a[0..K), b[0..K):
 * exact, fp32, fast, and the tensor-core models (hopper, ada, cublaslt). One copy, compiled as C by
 * emu/gemm_ref.c and as __host__ __device__ code by cuda_kernels.cu, so the GPU's model kernels and
 * the CPU reference are the same source. */
#ifndef EMU_MODELS_H
#define EMU_MODELS_H
#include "emu/ops.h"   /* EMU_HD, EMU_HD_NOINLINE */

EMU_HD int fixed_shift(emu_dtype t) { return t == EMU_E4M3 ? 9 : t == EMU_E5M2 ? 16 : 0; }

EMU_HD_NOINLINE float dot_exact(const float *a, const float *b, int K, emu_dtype ta, emu_dtype tb) {
    __int128 sum = 0;
    int sa = fixed_shift(ta), sb = fixed_shift(tb);
    for (int k = 0; k < K; k++) {
        if (!isfinite(a[k]) || !isfinite(b[k])) {
            double d = 0;
            for (int j = 0; j < K; j++) d += (double)a[j] * b[j];
            return (float)d;
        }
        int64_t ia = (int64_t)ldexpf(a[k], sa), ib = (int64_t)ldexpf(b[k], sb);  /* exact integers */
        sum += (__int128)ia * ib;
    }
    /* __int128 → float: split so that the one rounding is done by the hardware conversion of an
     * int64 carrying a sticky bit (correct RNE for any magnitude). */
    int neg = sum < 0;
    unsigned __int128 u = neg ? -(unsigned __int128)sum : (unsigned __int128)sum;
    int sh = 0;
    while ((u >> sh) >> 62) sh++;                      /* make it fit 62 bits, keep a sticky bit */
    uint64_t top = (uint64_t)(u >> sh) | (sh && (u & (((unsigned __int128)1 << sh) - 1)) ? 1 : 0);
    float f = ldexpf((float)top, sh - sa - sb);       /* 62 bits with sticky → float: single RNE */
    return neg ? -f : f;
}

/* NVIDIA FP8 tensor-core block FMA (Khattak & Mikaitis, arXiv:2512.07004; parameters of their
 * H100TC.m / AdaTC.m for FP8 input, fp32 output: neab = -10, truncation, no sticky bit, global
 * alignment of products and c, subnormals kept, final round toward zero to 23 + neab = 13 fraction
 * bits). Returns the new accumulator for d = c + Σ_{i<n} a_i b_i. Our reading of their model:
 *  1. zero products drop out; nothing left and c == 0 → +0.
 *  2. each product: exponents of a and b clamped below at the input format's emin (-6 E4M3, -14 E5M2),
 *     significands sa, sb in [0,2); product significand sa·sb in [0,4) at exponent ea+eb.
 *  3. carry bit: granted when the largest product exponent (before normalising) is ≥ c's exponent and
 *     that product's significand is ≥ 2. Products with significand ≥ 2 are then normalised (>>1, e+1).
 *  4. c (fp32): significand as a 24-bit integer, exponent (-126 for subnormals).
 *  5. all significands as integers with 23 fraction bits are shifted right by 10 (9 with the carry bit),
 *     then right by (maxexp − e_i), truncating — 13 (14) fraction bits survive relative to maxexp.
 *  6. exact signed integer sum; normalise; truncate to 13 fraction bits (subnormal below 2^-126). */
EMU_HD_NOINLINE float tc_block(const float *a, const float *b, int n, float c, int emin_in) {
    enum { NONE = -100000 };                        /* exponent of a zero product: never the maximum */
    int e[65], epre[65], two[65], sg[65], cnt = n, maxpre = NONE, carry_sig = 0, any = 0;
    uint32_t sig[65];
    for (int i = 0; i < n; i++) {                   /* written without branches: it is the hot loop */
        uint32_t ua, ub;
        ua = fp8_f32_bits(a[i]); ub = fp8_f32_bits(b[i]);
        int zero = (ua & 0x7FFFFFFF) == 0 || (ub & 0x7FFFFFFF) == 0;
        /* FP8 values are normal fp32 numbers: exponent and 24-bit significand straight from the bits;
         * below the input format's emin the significand is shifted instead (exact: FP8 has 3 bits). */
        int ea = (int)((ua >> 23) & 255) - 127, eb = (int)((ub >> 23) & 255) - 127;
        uint64_t ma = (ua & 0x7FFFFF) | 0x800000, mb = (ub & 0x7FFFFF) | 0x800000;
        int da = ea < emin_in ? emin_in - ea : 0, db = eb < emin_in ? emin_in - eb : 0;
        da = da < 63 ? da : 63; db = db < 63 ? db : 63;   /* a zero (exponent -127) would shift by 121: bounded (its product is dropped) */
        ma >>= da; mb >>= db;
        uint64_t p = ma * mb;                       /* significand product, 46 fraction bits, in (0, 4) */
        int t = (int)(p >> 47) & 1;
        epre[i] = zero ? NONE : ea + da + eb + db;
        two[i] = t;
        sig[i] = zero ? 0 : (uint32_t)(p >> (23 + t));   /* normalised to [1,2), 23 fraction bits, exact */
        e[i] = epre[i] + t;
        sg[i] = (ua ^ ub) >> 31;
        any |= !zero;
    }
    for (int i = 0; i < n; i++) maxpre = epre[i] > maxpre ? epre[i] : maxpre;
    for (int i = 0; i < n; i++) carry_sig |= two[i] & (epre[i] == maxpre) & (epre[i] != NONE);
    if (!any && c == 0) return 0.0f;
    int ec = 0, carry;
    if (c != 0) {
        uint32_t u = fp8_f32_bits(c);
        int be = (u >> 23) & 255;
        ec = be ? be - 127 : -126;
        sig[cnt] = (u & 0x7FFFFF) | (be ? 0x800000u : 0);
        e[cnt] = ec; sg[cnt] = u >> 31; cnt++;
        carry = any && maxpre >= ec && carry_sig;
    } else carry = any && carry_sig;
    int maxe = -2147483647 - 1;
    for (int i = 0; i < cnt; i++) if (e[i] > maxe) maxe = e[i];
    int64_t sum = 0;
    for (int i = 0; i < cnt; i++) {
        uint32_t v = sig[i] >> (10 - carry);
        int sh = maxe - e[i];
        v = sh > 31 ? 0 : v >> sh;
        sum += sg[i] ? -(int64_t)v : (int64_t)v;
    }
    if (sum == 0) return 0.0f;
    /* value = sum · 2^(maxe − 13 − carry); truncate to 13 fraction bits (quantum ≥ 2^(−126−13)) */
    int neg = sum < 0;
    uint64_t mag = neg ? (uint64_t)-sum : (uint64_t)sum;
    int scale = maxe - 13 - carry, top = 63 - fp8_clz64(mag);   /* value exponent = top + scale */
    int vexp = top + scale, qexp = (vexp < -126 ? -126 : vexp) - 13;  /* exponent of the last kept bit */
    if (qexp > scale) mag = (mag >> (qexp - scale)) << (qexp - scale);
    float f = vexp > 127 ? INFINITY : ldexpf((float)mag, scale);      /* ≤ 14 significant bits: exact */
    return neg ? -f : f;
}

EMU_HD float dot_tc(const float *a, const float *b, int K, int blk, int emin_in, float c) {
    for (int k0 = 0; k0 < K; k0 += blk)               /* the last block is padded with zeros */
        c = tc_block(a + k0, b + k0, K - k0 < blk ? K - k0 : blk, c, emin_in);
    return c;
}

EMU_HD_NOINLINE float dot_model(const float *a, const float *b, int K, emu_accum acc, emu_dtype ta, emu_dtype tb) {
    int nonfinite = 0;
    if (ta == EMU_I8) acc = EMU_ACC_EXACT;   /* INT8 GEMMs accumulate exactly in int32 on every device */
    for (int k = 0; k < K; k++) nonfinite |= !isfinite(a[k]) || !isfinite(b[k]);
    switch (acc) {
    case EMU_ACC_EXACT: return dot_exact(a, b, K, ta, tb);
    case EMU_ACC_FP32: { float s = 0; for (int k = 0; k < K; k++) s = fmaf(a[k], b[k], s); return s; }
    case EMU_ACC_FAST: {
        if (ta == EMU_F32) { float s = 0; for (int k = 0; k < K; k++) s = fmaf(a[k], b[k], s); return s; }
        float s = 0;
        for (int k = 0; k < K; k += 2) {
            if (k + 1 < K) s += a[k + 1] * b[k + 1];
            s += a[k] * b[k];
        }
        return s;
    }
    default: break;
    }
    /* tensor-core models; non-finite inputs follow IEEE (NaN wins, +inf and -inf give NaN) */
    if (nonfinite) { double d = 0; for (int k = 0; k < K; k++) d += (double)a[k] * b[k]; return (float)d; }
    int emin = ta == EMU_E4M3 ? -6 : -14;
    if (acc == EMU_ACC_HOPPER) return dot_tc(a, b, K, 32, emin, 0.0f);
    if (acc == EMU_ACC_ADA) return dot_tc(a, b, K, 16, emin, 0.0f);
    float s = 0;                                      /* cublaslt: promote every 128 k */
    for (int k0 = 0; k0 < K; k0 += 128) s += dot_tc(a + k0, b + k0, K - k0 < 128 ? K - k0 : 128, 32, emin, 0.0f);
    return s;
}

#endif
