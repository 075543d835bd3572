/* fp8.h — bit-exact FP8 (and FP4, bf16, fp16) conversions, header-only C99; also compiles as
 * CUDA device code under nvcc.
 *
 * Formats (parameters from ../shared/NUMERICS.md §1):
 *
 *   format        bits  exp  man  bias  max finite  min normal  min subnormal  inf       NaN
 *   FP8_E4M3        8    4    3     7   448         2^-6        2^-9           none      S.1111.111
 *   FP8_E5M2        8    5    2    15   57344       2^-14       2^-16          S.11111.00  S.11111.{01,10,11}
 *   FP8_E4M3FNUZ    8    4    3     8   240         2^-7        2^-10          none      0x80 only (no -0)
 *   FP8_E5M2FNUZ    8    5    2    16   57344       2^-15       2^-17          none      0x80 only (no -0)
 *   FP8_E8M0        8    8    0   127   2^127       2^-127      none           none      0xFF (unsigned, no zero)
 *   FP4_E2M1        4    2    1     1   6           1           0.5            none      none (code in the low nibble)
 *
 * Whose semantics:
 *   - E4M3 and E5M2 follow CUDA's __nv_cvt_float_to_fp8() (cuda_fp8.hpp host code, identical to
 *     the sm_89+ instruction cvt.rn.satfinite.e4m3x2.f32): one exact rounding to nearest, ties
 *     to even. FP8_SATFINITE = __NV_SATFINITE: finite overflow and ±inf give ±max. FP8_NOSAT =
 *     __NV_NOSAT: overflow and ±inf give S.1111.111 (NaN) in E4M3 and ±inf in E5M2. Every NaN
 *     input gives 0x7F (CUDA canonicalises NaN before converting; its sign is dropped).
 *   - E4M3FNUZ, E5M2FNUZ, E8M0 and E2M1 follow ml_dtypes' astype() (FP8_NOSAT), and FP8_SATFINITE
 *     is ml_dtypes' astype() of the input clipped to [lowest, max] — i.e. the same rule as CUDA's:
 *     finite overflow and ±inf give ±max, NaN stays NaN. E8M0 follows ml_dtypes >= 0.7.0, which
 *     rounds just above 2^-127 differently from 0.5.x/0.6.0 (see step 4 of fp8_round_magnitude).
 *   Both claims are checked over all 2^32 float inputs by tests/test_fp8_exhaustive.c.
 *
 * All conversions first unpack the input exactly into sign · m · 2^e and then round once, so
 * converting from double, bf16 or fp16 never rounds twice.
 */
#ifndef FP8_H
#define FP8_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#ifdef __CUDACC__
#define FP8_FN static inline __host__ __device__
#else
#define FP8_FN static inline
#endif

typedef enum { FP8_E4M3, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_E8M0, FP4_E2M1 } fp8_format;
#define FP8_NUM_FORMATS 6
typedef enum { FP8_NOSAT, FP8_SATFINITE } fp8_saturation;
typedef enum {
    FP8_RNE,        /* round to nearest, ties to even (the default everywhere) */
    FP8_RTZ,        /* round toward zero (truncate); finite inputs never overflow */
    FP8_STOCHASTIC  /* round away from zero iff rnd < the dropped fraction in units of 2^-32 of a
                       step: probability = that fraction truncated to 32 bits; rnd from the caller */
} fp8_rounding;

/* ---- Format parameters ------------------------------------------------------------------ */
typedef struct {
    int ebits, mbits, bias;  /* exponent bits, fraction (mantissa) bits, exponent bias */
    uint32_t max_code;       /* magnitude code of the largest finite value */
    uint32_t overflow_code;  /* what FP8_NOSAT overflow gives: inf, else the NaN code, else max (E2M1) */
    uint32_t nan_code;       /* what a NaN input gives */
    uint32_t sign_bit;       /* 0x80, 0x8 for 4-bit E2M1, 0x8000 for fp16, 0 for unsigned E8M0 */
    int neg_zero;            /* 1 if -0 exists (FNUZ formats have no -0: its code is the NaN) */
} fp8_params;

FP8_FN fp8_params fp8_params_make(int e, int m, int bias, uint32_t max_code, uint32_t overflow_code,
                                  uint32_t nan_code, uint32_t sign_bit, int neg_zero) {
    fp8_params p;
    p.ebits = e; p.mbits = m; p.bias = bias; p.max_code = max_code; p.overflow_code = overflow_code;
    p.nan_code = nan_code; p.sign_bit = sign_bit; p.neg_zero = neg_zero;
    return p;
}

FP8_FN fp8_params fp8_params_of(fp8_format fmt) {
    switch (fmt) {
    /*                                          e  m  bias  max     overflow  NaN     sign    -0 */
    case FP8_E4M3:     return fp8_params_make(4, 3,   7,  0x7E,   0x7F,     0x7F,   0x80,   1);
    case FP8_E5M2:     return fp8_params_make(5, 2,  15,  0x7B,   0x7C,     0x7F,   0x80,   1);
    case FP8_E4M3FNUZ: return fp8_params_make(4, 3,   8,  0x7F,   0x80,     0x80,   0x80,   0);
    case FP8_E5M2FNUZ: return fp8_params_make(5, 2,  16,  0x7F,   0x80,     0x80,   0x80,   0);
    case FP8_E8M0:     return fp8_params_make(8, 0, 127,  0xFE,   0xFF,     0xFF,   0,      0);
    case FP4_E2M1:     return fp8_params_make(2, 1,   1,  0x7,    0x7,      0x8,    0x8,    1);
    }
    return fp8_params_make(4, 3, 7, 0x7E, 0x7F, 0x7F, 0x80, 1);
}
/* IEEE half, E5M10: the same machinery converts to it. */
FP8_FN fp8_params fp16_params(void) { return fp8_params_make(5, 10, 15, 0x7BFF, 0x7C00, 0x7E00, 0x8000, 1); }

/* ---- Bits of floats ----------------------------------------------------------------------- */
FP8_FN uint32_t fp8_f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
FP8_FN float fp8_f32_from_bits(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
FP8_FN uint64_t fp8_f64_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }

FP8_FN int fp8_clz64(uint64_t m) { /* m != 0 */
#ifdef __CUDA_ARCH__
    return __clzll((long long)m);
#else
    return __builtin_clzll(m);
#endif
}

/* ---- The one rounding routine ------------------------------------------------------------ */
/* Rounds the exact positive value m · 2^e (m != 0) to format p. Returns the magnitude code; a
 * result above p->max_code means overflow (the caller decides what that becomes). `rnd` is the
 * 32 random bits used by FP8_STOCHASTIC. */
FP8_FN uint32_t fp8_round_magnitude(uint64_t m, int e, const fp8_params *p, fp8_rounding mode, uint32_t rnd) {
    /* 3. Normalise: move the leading 1 of m to bit 62, so that the value is 1.f × 2^E. */
    int lz = fp8_clz64(m) - 1;
    m <<= lz;
    int E = e - lz + 62;

    /* 4. Target exponent. A biased exponent below 1 means the value lies under the smallest
     *    normal: it is written as a subnormal, with exponent field 0 and the spacing of the
     *    smallest binade, 2^(1 - bias - mbits). In both cases we keep the leading 1 and mbits
     *    fraction bits of m and drop `shift` bits; a subnormal drops (1 - biased) more.
     *    E8M0 (the only format with mbits = 0) has no subnormals and no zero: code 0 is the
     *    normal 2^-127, so it never takes the subnormal path, and every value is rounded to the
     *    nearest power of two as in the rest of its range (step 6 clamps what lies below 2^-127
     *    to code 0). This is ml_dtypes >= 0.7.0: every positive x < 1.5 × 2^-127 gives code 0,
     *    [1.5 × 2^-127, 1.5 × 2^-126) code 1, and so on. ml_dtypes 0.5.x (and 0.6.0) ran E8M0
     *    through the subnormal path as if code 0 were zero, so that (2^-127, 1.5 × 2^-127) went
     *    up to code 1 (2^-126); fp8.h followed that rule until ml_dtypes 0.7.0 changed it. */
    int e8m0 = p->mbits == 0;
    int biased = E + p->bias;
    int shift = 62 - p->mbits + (biased < 1 && !e8m0 ? 1 - biased : 0);

    /* 5. Round. kept = the bits we keep (with the implicit 1 for normals); rest = what we drop.
     *    Ties go to even, judged on the last kept bit. For formats with fraction bits that is the
     *    code's last bit, i.e. ordinary round-half-even. E8M0 keeps no fraction bit: its last kept
     *    bit is the implicit 1 and every tie rounds up, as ml_dtypes does (1.5 → 2, 0.75 → 1). */
    uint64_t kept = shift < 64 ? m >> shift : 0;
    uint64_t rest = shift < 64 ? m & ((1ULL << shift) - 1) : m;
    int up = 0;
    if (mode == FP8_RNE) {
        if (shift < 64) {
            uint64_t half = 1ULL << (shift - 1);
            up = rest > half || (rest == half && (kept & 1));
        } /* shift >= 64: the value is below half the smallest step, it rounds to 0 */
    } else if (mode == FP8_STOCHASTIC) {
        /* top 32 bits of the dropped fraction (shift >= 52 always, so shift - 32 >= 20) */
        uint32_t frac = shift - 32 < 64 ? (uint32_t)(rest >> (shift - 32)) : 0;
        up = rnd < frac;
    }

    /* 6. Pack. For a normal, kept = 1.f (the 1 sits at bit mbits), so adding (biased - 1) << mbits
     *    writes exponent `biased` and fraction f. A rounding carry (1.11 → 10.00) flows into the
     *    exponent by itself, and a subnormal that rounds up to 1.000 becomes the smallest normal.
     *    E8M0: kept = 1, so the code is biased + up; below 2^-127 that is negative, and every
     *    rounding mode gives the smallest value, code 0 (there is nothing below it to go to). */
    if (e8m0) {
        int c = biased + (int)up;
        return c < 0 ? 0u : (uint32_t)c; /* above p->max_code: overflow, as below */
    }
    uint64_t code = (biased < 1 ? 0 : (uint64_t)(biased - 1) << p->mbits) + kept + (uint64_t)up;
    return code > 0xFFFFFFu ? 0xFFFFFFu : (uint32_t)code; /* anything that large is an overflow */
}

/* Converts sign · m · 2^e (m = 0 for zero), or a non-finite input, to format p.
 * kind: 0 finite, 1 infinite, 2 NaN. Steps numbered as in ml_dtypes' float8.h. */
FP8_FN uint32_t fp8_convert(int sign, uint64_t m, int e, int kind, const fp8_params *p, int is_e2m1,
                            fp8_saturation sat, fp8_rounding mode, uint32_t rnd) {
    uint32_t s = sign ? p->sign_bit : 0;
    /* 1. Non-finite inputs. NaN → the format's NaN. E2M1 has no NaN: ml_dtypes returns its
     *    "quiet_NaN" code 0x8 (= -0) negated by the input's sign, so NaN → 0x8 and -NaN → 0x0.
     *    ±inf → ±max with FP8_SATFINITE, else the overflow code (inf, or NaN where there is none). */
    if (kind == 2) return is_e2m1 ? (sign ? 0x0 : 0x8) : p->nan_code;
    /* E8M0 is unsigned and has no zero: zero and negative inputs are NaN, or with FP8_SATFINITE
     * the smallest value 2^-127 (code 0x00). */
    if (p->sign_bit == 0 && (sign || (kind == 0 && m == 0)))
        return sat == FP8_SATFINITE ? 0x00 : p->nan_code;
    if (kind == 1) return (sat == FP8_SATFINITE ? p->max_code : p->overflow_code) | s;
    /* 2. Zero keeps its sign where -0 exists. */
    if (m == 0) return p->neg_zero ? s : 0;
    /* 3.–6. */
    uint32_t code = fp8_round_magnitude(m, e, p, mode, rnd);
    /* 7. Overflow: saturate, or the overflow code. Round-toward-zero never overflows a finite input. */
    if (code > p->max_code)
        code = (sat == FP8_SATFINITE || mode == FP8_RTZ) ? p->max_code : p->overflow_code;
    /* 8. Sign: a result of 0 in a format without -0 stays +0; FNUZ's NaN 0x80 already has it. */
    if (code == 0 && !p->neg_zero) return 0;
    return code | s;
}

/* ---- Unpacking inputs exactly -------------------------------------------------------------- */
/* float: 1 + 8 + 23 bits */
FP8_FN uint32_t fp8_convert_f32(float x, const fp8_params *p, int is_e2m1, fp8_saturation sat,
                                fp8_rounding mode, uint32_t rnd) {
    uint32_t u = fp8_f32_bits(x);
    int sign = u >> 31, ex = (u >> 23) & 0xFF;
    uint64_t frac = u & 0x7FFFFF;
    if (ex == 0xFF) return fp8_convert(sign, 0, 0, frac ? 2 : 1, p, is_e2m1, sat, mode, rnd);
    if (ex == 0) return fp8_convert(sign, frac, -149, 0, p, is_e2m1, sat, mode, rnd); /* zero, subnormal */
    return fp8_convert(sign, frac | 0x800000, ex - 150, 0, p, is_e2m1, sat, mode, rnd);
}
/* double: 1 + 11 + 52 bits */
FP8_FN uint32_t fp8_convert_f64(double x, const fp8_params *p, int is_e2m1, fp8_saturation sat,
                                fp8_rounding mode, uint32_t rnd) {
    uint64_t u = fp8_f64_bits(x);
    int sign = (int)(u >> 63), ex = (int)((u >> 52) & 0x7FF);
    uint64_t frac = u & 0xFFFFFFFFFFFFFULL;
    if (ex == 0x7FF) return fp8_convert(sign, 0, 0, frac ? 2 : 1, p, is_e2m1, sat, mode, rnd);
    if (ex == 0) return fp8_convert(sign, frac, -1074, 0, p, is_e2m1, sat, mode, rnd);
    return fp8_convert(sign, frac | (1ULL << 52), ex - 1075, 0, p, is_e2m1, sat, mode, rnd);
}

/* ---- Public API: float → FP8 ----------------------------------------------------------------- */
/* Round to nearest, ties to even. E4M3/E5M2: CUDA __nv_cvt_float_to_fp8 semantics. */
FP8_FN uint8_t fp8_from_float(float x, fp8_format fmt, fp8_saturation sat) {
    fp8_params p = fp8_params_of(fmt);
    return (uint8_t)fp8_convert_f32(x, &p, fmt == FP4_E2M1, sat, FP8_RNE, 0);
}
/* Any rounding mode; rnd = 32 random bits for FP8_STOCHASTIC (ignored otherwise). */
FP8_FN uint8_t fp8_from_float_mode(float x, fp8_format fmt, fp8_saturation sat, fp8_rounding mode, uint32_t rnd) {
    fp8_params p = fp8_params_of(fmt);
    return (uint8_t)fp8_convert_f32(x, &p, fmt == FP4_E2M1, sat, mode, rnd);
}
FP8_FN uint8_t fp8_from_float_rtz(float x, fp8_format fmt, fp8_saturation sat) {
    return fp8_from_float_mode(x, fmt, sat, FP8_RTZ, 0);
}
FP8_FN uint8_t fp8_from_float_sr(float x, fp8_format fmt, fp8_saturation sat, uint32_t rnd) {
    return fp8_from_float_mode(x, fmt, sat, FP8_STOCHASTIC, rnd);
}
/* From double, one rounding (no f64 → f32 → f8 double rounding). Non-NaN results equal CUDA's
 * __nv_cvt_double_to_fp8; a NaN gives the canonical NaN code (CUDA keeps a double NaN's sign). */
FP8_FN uint8_t fp8_from_double(double x, fp8_format fmt, fp8_saturation sat) {
    fp8_params p = fp8_params_of(fmt);
    return (uint8_t)fp8_convert_f64(x, &p, fmt == FP4_E2M1, sat, FP8_RNE, 0);
}
/* From raw bf16 / fp16 bits: both are exact in float, so converting through float is one rounding. */
FP8_FN uint8_t fp8_from_bf16(uint16_t b, fp8_format fmt, fp8_saturation sat) {
    return fp8_from_float(fp8_f32_from_bits((uint32_t)b << 16), fmt, sat);
}

/* ---- Public API: FP8 → float ---------------------------------------------------------------- */
FP8_FN int fp8_is_nan(uint8_t v, fp8_format fmt) {
    switch (fmt) {
    case FP8_E4M3: return (v & 0x7F) == 0x7F;
    case FP8_E5M2: return (v & 0x7F) > 0x7C;
    case FP8_E4M3FNUZ: case FP8_E5M2FNUZ: return v == 0x80;
    case FP8_E8M0: return v == 0xFF;
    case FP4_E2M1: return 0;
    }
    return 0;
}
FP8_FN int fp8_is_inf(uint8_t v, fp8_format fmt) { return fmt == FP8_E5M2 && (v & 0x7F) == 0x7C; }

/* Exact. NaN codes give a quiet NaN with the code's sign bit; E2M1 reads the low 4 bits only. */
FP8_FN float fp8_to_float(uint8_t v, fp8_format fmt) {
    fp8_params p = fp8_params_of(fmt);
    if (fmt == FP4_E2M1) v &= 0xF;
    int sign = (v & p.sign_bit) != 0;
    if (fp8_is_nan(v, fmt)) return fp8_f32_from_bits(0x7FC00000u | (uint32_t)sign << 31);
    if (fp8_is_inf(v, fmt)) return fp8_f32_from_bits(0x7F800000u | (uint32_t)sign << 31);
    if (fmt == FP8_E8M0) return ldexpf(1.0f, (int)v - 127); /* 2^(code - 127); 2^-127 is a float subnormal */
    int ex = (v >> p.mbits) & ((1 << p.ebits) - 1);
    int man = v & ((1 << p.mbits) - 1);
    float mag = ex == 0 ? ldexpf((float)man, 1 - p.bias - p.mbits)                       /* subnormal: 0.f × 2^(1-bias) */
                        : ldexpf((float)(man + (1 << p.mbits)), ex - p.bias - p.mbits);  /* normal: 1.f × 2^(ex-bias) */
    return sign ? -mag : mag;
}

/* Largest finite value: 448, 57344, 240, 57344, 2^127, 6. */
FP8_FN float fp8_max(fp8_format fmt) {
    fp8_params p = fp8_params_of(fmt);
    return fp8_to_float((uint8_t)p.max_code, fmt);
}

/* ---- bf16 and fp16 ----------------------------------------------------------------------- */
/* float → bf16, round to nearest even (as torch .to(bfloat16) and ml_dtypes for every non-NaN
 * input); NaN → quiet NaN 0x7FC0 with the input's sign (ml_dtypes/Eigen; torch gives 0x7FC0 or
 * 0xFFFF depending on its code path — always a NaN). */
FP8_FN uint16_t bf16_from_float(float x) {
    uint32_t u = fp8_f32_bits(x);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)(((u >> 16) & 0x8000) | 0x7FC0);
    /* adding 0x7FFF + (last kept bit) carries into bit 16 exactly when rounding up (ties to even) */
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
FP8_FN float bf16_to_float(uint16_t b) { return fp8_f32_from_bits((uint32_t)b << 16); }

/* float → IEEE half, round to nearest even; NaN → 0x7E00 with the input's sign (torch c10). */
FP8_FN uint16_t fp16_from_float(float x) {
    uint32_t u = fp8_f32_bits(x);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)(((u >> 16) & 0x8000) | 0x7E00);
    fp8_params p = fp16_params();
    return (uint16_t)fp8_convert_f32(x, &p, 0, FP8_NOSAT, FP8_RNE, 0);
}
FP8_FN float fp16_to_float(uint16_t h) {
    int sign = h >> 15, ex = (h >> 10) & 0x1F, man = h & 0x3FF;
    float mag;
    if (ex == 0x1F) /* inf; NaN keeps its payload and becomes quiet (as x86 F16C vcvtph2ps does) */
        return fp8_f32_from_bits((uint32_t)sign << 31 | 0x7F800000u | (man ? 0x400000u : 0) | (uint32_t)man << 13);
    mag = ex == 0 ? ldexpf((float)man, -24) : ldexpf((float)(man + 1024), ex - 25);
    return sign ? -mag : mag;
}
FP8_FN uint8_t fp8_from_fp16(uint16_t h, fp8_format fmt, fp8_saturation sat) {
    return fp8_from_float(fp16_to_float(h), fmt, sat);
}

/* ---- Hot paths: decode table, row encoder ------------------------------------------------ */
/* 256 exact values per format (E2M1: entry i is the value of i & 0xF). Filled on first use,
 * thread-safe: one thread fills, others wait for it. Host only (plain static inline). */
static inline const float *fp8_decode_table(fp8_format fmt) {
    static float table[FP8_NUM_FORMATS][256];
    static int state[FP8_NUM_FORMATS]; /* 0 empty, 1 being filled, 2 ready */
    int f = (int)fmt, expect = 0;
    if (__atomic_load_n(&state[f], __ATOMIC_ACQUIRE) != 2) {
        if (__atomic_compare_exchange_n(&state[f], &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            for (int v = 0; v < 256; v++) table[f][v] = fp8_to_float((uint8_t)v, fmt);
            __atomic_store_n(&state[f], 2, __ATOMIC_RELEASE);
        } else {
            while (__atomic_load_n(&state[f], __ATOMIC_ACQUIRE) != 2) { /* another thread fills it */ }
        }
    }
    return table[f];
}

/* Fast float → E4M3/E5M2 on the float's bits, the same results as fp8_from_float (checked over
 * all 2^32 inputs), written without branches so that a loop of it vectorises:
 *   normal:    round the float's 23-bit fraction to mbits by the carry trick (add 0.5 ulp - 1
 *              plus the last kept bit, then shift), and rebias the exponent;
 *   subnormal: add the magic number 2^(23 + log2 step): the FPU then rounds |x| to a multiple of
 *              the fp8 subnormal step (to nearest even, its default mode), and the difference of
 *              the float bits is the code;
 *   then overflow (> 464 for E4M3, where 464 itself ties down to 448; >= 61440 for E5M2), NaN.
 * (fp8_from_float_fast sends the other formats to the generic routine.) */
FP8_FN uint8_t fp8_from_float_ocp_fast(float x, int e4, int satfinite) {
    const uint32_t mshift = e4 ? 20 : 21;                        /* 23 - mbits */
    const uint32_t rebias = (uint32_t)(e4 ? 127 - 7 : 127 - 15) << (23 - mshift);
    const uint32_t overflow_at = e4 ? 0x43E80001u : 0x47700000u; /* 464 + 1 float ulp, 61440 */
    const uint32_t min_normal = e4 ? 0x3C800000u : 0x38800000u;  /* 2^-6, 2^-14 */
    const float magic = e4 ? 16384.0f : 128.0f;                  /* 2^-9 · 2^23, 2^-16 · 2^23 */
    const uint32_t big = satfinite ? (e4 ? 0x7Eu : 0x7Bu) : (e4 ? 0x7Fu : 0x7Cu);
    uint32_t u = fp8_f32_bits(x), a = u & 0x7FFFFFFFu, sign = (u >> 24) & 0x80u;
    uint32_t normal = ((a + ((1u << (mshift - 1)) - 1) + ((a >> mshift) & 1)) >> mshift) - rebias;
    uint32_t subnormal = fp8_f32_bits(fp8_f32_from_bits(a) + magic) - fp8_f32_bits(magic);
    /* select with masks (all ones or zero), not branches */
    uint32_t is_normal = 0u - (uint32_t)(a >= min_normal), is_big = 0u - (uint32_t)(a >= overflow_at);
    uint32_t is_nan = 0u - (uint32_t)(a > 0x7F800000u);
    uint32_t code = (normal & is_normal) | (subnormal & ~is_normal);
    code = ((big & is_big) | (code & ~is_big)) | sign;
    return (uint8_t)((0x7Fu & is_nan) | (code & ~is_nan));
}
FP8_FN uint8_t fp8_from_float_fast(float x, fp8_format fmt, fp8_saturation sat) {
    if (fmt != FP8_E4M3 && fmt != FP8_E5M2) return fp8_from_float(x, fmt, sat);
    return fp8_from_float_ocp_fast(x, fmt == FP8_E4M3, sat == FP8_SATFINITE);
}

#if defined(_OPENMP) && !defined(__CUDACC__)
#define FP8_SIMD _Pragma("omp simd")
#else
#define FP8_SIMD
#endif

/* q[i] = fp8(x[i] / scale): the division in fp32 (correctly rounded), then one RNE encoding —
 * vLLM's dynamic per-token quantization. scale must be > 0 (0 turns every x into ±inf/NaN).
 * The _ref twin is the definition; the fast one gives the same bytes (tests/test_fp8_*). */
FP8_FN void fp8_encode_row_ref(uint8_t *q, const float *x, int n, float scale, fp8_format fmt, fp8_saturation sat) {
    for (int i = 0; i < n; i++) q[i] = fp8_from_float(x[i] / scale, fmt, sat);
}
FP8_FN void fp8_encode_row(uint8_t *q, const float *x, int n, float scale, fp8_format fmt, fp8_saturation sat) {
    /* one loop per case, so that the format is a constant and the loop vectorises */
#define FP8_ROW_LOOP(E4, SAT) do { FP8_SIMD for (int i = 0; i < n; i++) q[i] = fp8_from_float_ocp_fast(x[i] / scale, E4, SAT); } while (0)
    if (fmt == FP8_E4M3 && sat == FP8_SATFINITE) FP8_ROW_LOOP(1, 1);
    else if (fmt == FP8_E4M3) FP8_ROW_LOOP(1, 0);
    else if (fmt == FP8_E5M2 && sat == FP8_SATFINITE) FP8_ROW_LOOP(0, 1);
    else if (fmt == FP8_E5M2) FP8_ROW_LOOP(0, 0);
    else fp8_encode_row_ref(q, x, n, scale, fmt, sat);
#undef FP8_ROW_LOOP
}

/* y[i] = float(q[i]) * scale (dequantization; the product is one fp32 rounding). The fast one
 * reads the decode table (host only); the _ref twin decodes each code. */
FP8_FN void fp8_decode_row_ref(float *y, const uint8_t *q, int n, float scale, fp8_format fmt) {
    for (int i = 0; i < n; i++) y[i] = fp8_to_float(q[i], fmt) * scale;
}
static inline void fp8_decode_row(float *y, const uint8_t *q, int n, float scale, fp8_format fmt) {
    const float *t = fp8_decode_table(fmt);
    for (int i = 0; i < n; i++) y[i] = t[q[i]] * scale;
}

/* ---- Names ----------------------------------------------------------------------------------- */
FP8_FN const char *fp8_format_name(fp8_format fmt) {
    switch (fmt) {
    case FP8_E4M3: return "e4m3";
    case FP8_E5M2: return "e5m2";
    case FP8_E4M3FNUZ: return "e4m3fnuz";
    case FP8_E5M2FNUZ: return "e5m2fnuz";
    case FP8_E8M0: return "e8m0";
    case FP4_E2M1: return "e2m1";
    }
    return "?";
}
/* Host only. "e4m3" (also "e4m3fn"), "e5m2", "e4m3fnuz", "e5m2fnuz", "e8m0" (also "e8m0fnu"), "e2m1" (also
 * "fp4", "e2m1fn"), case-insensitive. Returns 0 and sets *out, or -1. */
static inline int fp8_format_from_name(const char *s, fp8_format *out) {
    static const struct { const char *name; fp8_format fmt; } names[] = {
        {"e4m3", FP8_E4M3}, {"e4m3fn", FP8_E4M3}, {"e5m2", FP8_E5M2}, {"e4m3fnuz", FP8_E4M3FNUZ},
        {"e5m2fnuz", FP8_E5M2FNUZ}, {"e8m0", FP8_E8M0}, {"e8m0fnu", FP8_E8M0}, {"e2m1", FP4_E2M1},
        {"e2m1fn", FP4_E2M1}, {"fp4", FP4_E2M1}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *a = names[i].name, *b = s;
        while (*a && (*b | 0x20) == *a) a++, b++;
        if (!*a && !*b) { *out = names[i].fmt; return 0; }
    }
    return -1;
}

#endif /* FP8_H */
