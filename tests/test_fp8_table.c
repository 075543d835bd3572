/* test_fp8_table.c — the cases people get wrong, one readable line each, plus the extra
 * conversions of fp8.h (double, bf16/fp16 bits, round-toward-zero, stochastic rounding, rows).
 *
 * Every expected code below is written from the format's definition (NUMERICS.md §1–2) and agrees
 * with CUDA's __nv_cvt_float_to_fp8 (E4M3/E5M2) or ml_dtypes (the other formats): the exhaustive
 * test proves fp8_from_float equals those oracles for every float, so these lines document the
 * rules rather than re-prove them — and they still fail loudly if fp8.h changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "fp8.h"

static int failures;
#define CHECK(name, cond) do { if (cond) printf("ok fp8_%s\n", name); else { printf("FAIL fp8_%s\n", name); failures++; } } while (0)

#define NOSAT FP8_NOSAT
#define SAT FP8_SATFINITE
#define E4M3 FP8_E4M3
#define E5M2 FP8_E5M2
#define FNUZ4 FP8_E4M3FNUZ
#define FNUZ5 FP8_E5M2FNUZ
#define E8M0 FP8_E8M0
#define E2M1 FP4_E2M1

static const struct {
    const char *why;
    double x; /* every x here is a float (exactly representable), except where noted */
    fp8_format fmt;
    uint8_t nosat, satfinite; /* expected codes */
} cases[] = {
    /* E4M3 (OCP E4M3FN): max 448 = 0x7E; there is no inf; S.1111.111 is NaN */
    {"e4m3 448 is the largest finite value", 448, E4M3, 0x7E, 0x7E},
    {"e4m3 464 is the tie between 448 and 480 (=0x7F would be 480): even 448 wins", 464, E4M3, 0x7E, 0x7E},
    {"e4m3 just above 464 rounds to 480: nosat NaN, satfinite 448", 0x1.d00002p+8, E4M3, 0x7F, 0x7E},
    {"e4m3 480 overflows", 480, E4M3, 0x7F, 0x7E},
    {"e4m3 -500 overflows, sign kept on the NaN", -500, E4M3, 0xFF, 0xFE},
    {"e4m3 +inf: nosat NaN, satfinite max", INFINITY, E4M3, 0x7F, 0x7E},
    {"e4m3 -inf", -INFINITY, E4M3, 0xFF, 0xFE},
    {"e4m3 NaN -> 0x7F", NAN, E4M3, 0x7F, 0x7F},
    {"e4m3 -NaN -> 0x7F too (CUDA drops a NaN's sign)", -NAN, E4M3, 0x7F, 0x7F},
    {"e4m3 +0", 0.0, E4M3, 0x00, 0x00},
    {"e4m3 -0 keeps its sign", -0.0, E4M3, 0x80, 0x80},
    {"e4m3 2^-6 is the smallest normal", 0x1p-6, E4M3, 0x08, 0x08},
    {"e4m3 7 x 2^-9 is the largest subnormal", 0x1.cp-7, E4M3, 0x07, 0x07},
    {"e4m3 7.5 x 2^-9: tie between largest subnormal and smallest normal -> even 0x08", 0x1.ep-7, E4M3, 0x08, 0x08},
    {"e4m3 2^-9 is the smallest subnormal", 0x1p-9, E4M3, 0x01, 0x01},
    {"e4m3 2^-10 = half the smallest subnormal: tie -> even 0 (underflow)", 0x1p-10, E4M3, 0x00, 0x00},
    {"e4m3 just above 2^-10 rounds up to 2^-9", 0x1.000002p-10, E4M3, 0x01, 0x01},
    {"e4m3 -2^-10 underflows to -0", -0x1p-10, E4M3, 0x80, 0x80},
    {"e4m3 1e-9 underflows", 1e-9, E4M3, 0x00, 0x00},
    {"e4m3 1.0625 = tie between 1 and 1.125 -> even 1", 1.0625, E4M3, 0x38, 0x38},
    {"e4m3 1.1875 = tie between 1.125 and 1.25 -> even 1.25", 1.1875, E4M3, 0x3A, 0x3A},
    {"e4m3 1.9375 = tie between 1.875 and 2: carry into the exponent", 1.9375, E4M3, 0x40, 0x40},
    /* E5M2: max 57344 = 0x7B; inf 0x7C; NaN 0x7D..0x7F */
    {"e5m2 57344 is the largest finite value", 57344, E5M2, 0x7B, 0x7B},
    {"e5m2 just below 61440 rounds down to 57344", 61439.99609375, E5M2, 0x7B, 0x7B},
    {"e5m2 61440 is the tie between 57344 and 65536 -> odd 57344 loses: overflow", 61440, E5M2, 0x7C, 0x7B},
    {"e5m2 -61440", -61440, E5M2, 0xFC, 0xFB},
    {"e5m2 +inf: nosat inf, satfinite max", INFINITY, E5M2, 0x7C, 0x7B},
    {"e5m2 NaN -> 0x7F", NAN, E5M2, 0x7F, 0x7F},
    {"e5m2 2^-14 is the smallest normal", 0x1p-14, E5M2, 0x04, 0x04},
    {"e5m2 2^-16 is the smallest subnormal", 0x1p-16, E5M2, 0x01, 0x01},
    {"e5m2 2^-17: tie -> even 0", 0x1p-17, E5M2, 0x00, 0x00},
    {"e5m2 3 x 2^-17: tie between 2^-16 and 2^-15 -> even 2^-15", 0x1.8p-16, E5M2, 0x02, 0x02},
    {"e5m2 1.125 = tie between 1 and 1.25 -> even 1", 1.125, E5M2, 0x3C, 0x3C},
    /* E4M3FNUZ: bias 8, max 240 = 0x7F, NaN = 0x80, no -0 */
    {"e4m3fnuz 240 is the largest finite value", 240, FNUZ4, 0x7F, 0x7F},
    {"e4m3fnuz 248 is the tie between 240 and 256 -> overflow", 248, FNUZ4, 0x80, 0x7F},
    {"e4m3fnuz -1000: nosat NaN (no sign), satfinite -max", -1000, FNUZ4, 0x80, 0xFF},
    {"e4m3fnuz -0 becomes +0 (0x80 is the NaN)", -0.0, FNUZ4, 0x00, 0x00},
    {"e4m3fnuz -2^-12 underflows to +0", -0x1p-12, FNUZ4, 0x00, 0x00},
    {"e4m3fnuz +inf", INFINITY, FNUZ4, 0x80, 0x7F},
    {"e4m3fnuz NaN", NAN, FNUZ4, 0x80, 0x80},
    {"e4m3fnuz 2^-10 is the smallest subnormal", 0x1p-10, FNUZ4, 0x01, 0x01},
    {"e4m3fnuz 1 = 2^0 has exponent field 8", 1, FNUZ4, 0x40, 0x40},
    /* E5M2FNUZ: bias 16, max 57344 = 0x7F */
    {"e5m2fnuz 57344 is the largest finite value", 57344, FNUZ5, 0x7F, 0x7F},
    {"e5m2fnuz 61440 overflows", 61440, FNUZ5, 0x80, 0x7F},
    {"e5m2fnuz 2^-17 is the smallest subnormal", 0x1p-17, FNUZ5, 0x01, 0x01},
    /* E8M0: 2^(code-127), unsigned, no zero, NaN 0xFF; ml_dtypes rounds ties up */
    {"e8m0 1 = 2^0", 1, E8M0, 0x7F, 0x7F},
    {"e8m0 1.5 = tie between 1 and 2 -> up", 1.5, E8M0, 0x80, 0x80},
    {"e8m0 0.75 = tie between 0.5 and 1 -> up (not to the even code 0x7E)", 0.75, E8M0, 0x7F, 0x7F},
    {"e8m0 1.4999999 -> 1", 1.49999988079071044921875, E8M0, 0x7F, 0x7F},
    {"e8m0 2^127 is the largest value", 0x1p127, E8M0, 0xFE, 0xFE},
    {"e8m0 1.5 x 2^127 overflows", 0x1.8p127, E8M0, 0xFF, 0xFE},
    {"e8m0 0 (no zero): nosat NaN, satfinite smallest 2^-127", 0.0, E8M0, 0xFF, 0x00},
    {"e8m0 -1 (no sign): nosat NaN, satfinite smallest", -1, E8M0, 0xFF, 0x00},
    {"e8m0 -inf", -INFINITY, E8M0, 0xFF, 0x00},
    {"e8m0 +inf", INFINITY, E8M0, 0xFF, 0xFE},
    {"e8m0 2^-127 is the smallest value", 0x1p-127, E8M0, 0x00, 0x00},
    /* Near 2^-127 the rule is the same nearest power of two, ties up (ml_dtypes >= 0.7.0; 0.5.x
     * and 0.6.0 rounded (2^-127, 1.5 x 2^-127) up to 2^-126, as if code 0 were zero). */
    {"e8m0 1.01 x 2^-127 -> 2^-127 (nearest; ml_dtypes < 0.7.0 gave 2^-126)", 0x1.028f5cp-127, E8M0, 0x00, 0x00},
    {"e8m0 just below 1.5 x 2^-127 -> 2^-127", 0x1.7ffffcp-127, E8M0, 0x00, 0x00},
    {"e8m0 1.5 x 2^-127 = tie between 2^-127 and 2^-126 -> up", 0x1.8p-127, E8M0, 0x01, 0x01},
    {"e8m0 0.75 x 2^-127 (below the smallest value) -> 2^-127", 0x1.8p-128, E8M0, 0x00, 0x00},
    {"e8m0 2^-140 -> code 0 = 2^-127", 0x1p-140, E8M0, 0x00, 0x00},
    {"e8m0 2^-149 (smallest float) -> code 0 = 2^-127", 0x1p-149, E8M0, 0x00, 0x00},
    /* E2M1 (FP4): 0 0.5 1 1.5 2 3 4 6; no inf, no NaN; overflow saturates even without satfinite */
    {"e2m1 6 is the largest value", 6, E2M1, 0x7, 0x7},
    {"e2m1 7 = tie between 6 and 8 -> saturates to 6", 7, E2M1, 0x7, 0x7},
    {"e2m1 -100 saturates", -100, E2M1, 0xF, 0xF},
    {"e2m1 +inf saturates", INFINITY, E2M1, 0x7, 0x7},
    {"e2m1 5 = tie between 4 and 6 -> even 4", 5, E2M1, 0x6, 0x6},
    {"e2m1 2.5 = tie between 2 and 3 -> even 2", 2.5, E2M1, 0x4, 0x4},
    {"e2m1 0.75 = tie between 0.5 and 1 -> even 1", 0.75, E2M1, 0x2, 0x2},
    {"e2m1 0.25 = half the smallest subnormal -> 0", 0.25, E2M1, 0x0, 0x0},
    {"e2m1 -0.25 -> -0", -0.25, E2M1, 0x8, 0x8},
    {"e2m1 NaN -> 0x8 (ml_dtypes: its NaN stand-in is -0)", NAN, E2M1, 0x8, 0x8},
    {"e2m1 -NaN -> 0x0", -NAN, E2M1, 0x0, 0x0},
};

int main(void) {
    /* 1. The table. */
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x = (float)cases[i].x;
        uint8_t n = fp8_from_float(x, cases[i].fmt, NOSAT), s = fp8_from_float(x, cases[i].fmt, SAT);
        if ((double)x != cases[i].x && cases[i].x == cases[i].x && cases[i].x != 1e-9) {
            printf("  table bug: %s: %.17g is not a float\n", cases[i].why, cases[i].x);
            bad++;
        }
        if (n != cases[i].nosat || s != cases[i].satfinite) {
            printf("  %s: got nosat 0x%02x satfinite 0x%02x, expected 0x%02x 0x%02x\n", cases[i].why, n, s,
                   cases[i].nosat, cases[i].satfinite);
            bad++;
        }
    }
    CHECK("table_of_hard_cases", bad == 0);

    /* 2. Ties at every binade, generated: the midpoint of two neighbouring codes goes to the
     *    even code, and the midpoint plus or minus a float ulp goes to the nearer code. */
    static const fp8_format fmts[] = {E4M3, E5M2, FNUZ4, FNUZ5, E2M1};
    bad = 0;
    int nties = 0;
    for (int f = 0; f < 5; f++) {
        fp8_params p = fp8_params_of(fmts[f]);
        for (uint32_t c = 0; c < p.max_code; c++) {
            float lo = fp8_to_float((uint8_t)c, fmts[f]), hi = fp8_to_float((uint8_t)(c + 1), fmts[f]);
            float mid = (lo + hi) / 2; /* exact: both are short binary fractions */
            uint8_t even = (c & 1) ? (uint8_t)(c + 1) : (uint8_t)c;
            uint8_t neg_even = (even == 0 && !p.neg_zero) ? 0 : (uint8_t)(even | p.sign_bit); /* FNUZ: no -0 */
            if (fp8_from_float(mid, fmts[f], SAT) != even || fp8_from_float(-mid, fmts[f], SAT) != neg_even) bad++;
            if (mid > 0 && fp8_from_float(nextafterf(mid, 0), fmts[f], SAT) != c) bad++;
            if (fp8_from_float(nextafterf(mid, INFINITY), fmts[f], SAT) != c + 1) bad++;
            nties++;
        }
    }
    /* E8M0: every midpoint 1.5 x 2^k rounds up, down to the lowest one, 1.5 x 2^-127. */
    for (int k = -127; k < 127; k++)
        if (fp8_from_float(ldexpf(1.5f, k), E8M0, SAT) != (uint8_t)(k + 128)) bad++;
    printf("  (%d ties between neighbouring codes checked)\n", nties);
    CHECK("ties_at_every_binade", bad == 0);

    /* 3. Decoding: the values people look up. */
    CHECK("decode_e4m3", fp8_to_float(0x7E, E4M3) == 448 && isnan(fp8_to_float(0x7F, E4M3)) && isnan(fp8_to_float(0xFF, E4M3)) &&
                             fp8_to_float(0x80, E4M3) == 0 && signbit(fp8_to_float(0x80, E4M3)) && fp8_to_float(0x01, E4M3) == 0x1p-9f &&
                             fp8_to_float(0x38, E4M3) == 1);
    CHECK("decode_e5m2", fp8_to_float(0x7B, E5M2) == 57344 && fp8_to_float(0x7C, E5M2) == INFINITY && fp8_to_float(0xFC, E5M2) == -INFINITY &&
                             isnan(fp8_to_float(0x7D, E5M2)) && fp8_to_float(0x01, E5M2) == 0x1p-16f);
    CHECK("decode_fnuz", isnan(fp8_to_float(0x80, FNUZ4)) && isnan(fp8_to_float(0x80, FNUZ5)) && fp8_to_float(0x7F, FNUZ4) == 240 &&
                             fp8_to_float(0xFF, FNUZ4) == -240 && fp8_to_float(0x7F, FNUZ5) == 57344 && fp8_to_float(0x01, FNUZ4) == 0x1p-10f);
    CHECK("decode_e8m0", fp8_to_float(0x00, E8M0) == 0x1p-127f && fp8_to_float(0x7F, E8M0) == 1 && fp8_to_float(0xFE, E8M0) == 0x1p127f &&
                             isnan(fp8_to_float(0xFF, E8M0)));
    CHECK("decode_e2m1", fp8_to_float(0x1, E2M1) == 0.5f && fp8_to_float(0x5, E2M1) == 3 && fp8_to_float(0x7, E2M1) == 6 &&
                             fp8_to_float(0xF, E2M1) == -6 && signbit(fp8_to_float(0x8, E2M1)) && fp8_to_float(0x8, E2M1) == 0 &&
                             fp8_to_float(0x75, E2M1) == 3 /* high nibble ignored */);
    CHECK("fp8_max", fp8_max(E4M3) == 448 && fp8_max(E5M2) == 57344 && fp8_max(FNUZ4) == 240 && fp8_max(FNUZ5) == 57344 &&
                         fp8_max(E8M0) == 0x1p127f && fp8_max(E2M1) == 6);
    bad = 0;
    for (int f = 0; f < FP8_NUM_FORMATS; f++)
        for (int v = 0; v < 256; v++) {
            float a = fp8_decode_table((fp8_format)f)[v], b = fp8_to_float((uint8_t)v, (fp8_format)f);
            if (memcmp(&a, &b, 4) != 0) bad++;
            /* every non-NaN code survives encode(decode(code)) in both modes */
            if (!isnan(b) && !(f == FP4_E2M1 && v > 15) && fp8_from_float(b, (fp8_format)f, NOSAT) != v) bad++;
        }
    CHECK("decode_table_and_roundtrip_all_codes", bad == 0);

    /* 4. Double rounding. x = 1 + 2^-4 + 2^-30 lies just above the E4M3 tie 1.0625. Straight from
     *    double it rounds up to 1.125 (0x39). Through float it first becomes 1.0625 exactly (the
     *    2^-30 is below half a float ulp), a tie, which then goes to the even 1.0 (0x38). */
    double dr = 1.0 + 0x1p-4 + 0x1p-30;
    CHECK("double_rounding_f64_direct", fp8_from_double(dr, E4M3, SAT) == 0x39);
    CHECK("double_rounding_f64_via_f32", fp8_from_float((float)dr, E4M3, SAT) == 0x38);
    /* The same in E5M2 (tie 1.125 between 1 and 1.25), and below: 1 + 2^-3 - 2^-30 goes down. */
    CHECK("double_rounding_e5m2", fp8_from_double(1.125 + 0x1p-30, E5M2, SAT) == 0x3D && fp8_from_float((float)(1.125 + 0x1p-30), E5M2, SAT) == 0x3C &&
                                      fp8_from_double(1.125 - 0x1p-30, E5M2, SAT) == 0x3C);
    /* and from double for values that are not floats at all (beyond float range) */
    CHECK("double_beyond_float_range", fp8_from_double(1e300, E5M2, NOSAT) == 0x7C && fp8_from_double(1e-300, E4M3, NOSAT) == 0 &&
                                           fp8_from_double(-1e-300, E4M3, NOSAT) == 0x80 && fp8_from_double(1e300, E8M0, SAT) == 0xFE);
    /* E8M0 from double: below 1.5 x 2^-127 everything is the smallest value 2^-127, even far
     * below float range; from 1.5 x 2^-127 on, 2^-126. */
    CHECK("double_e8m0_below_smallest", fp8_from_double(0x1p-1074, E8M0, NOSAT) == 0x00 && fp8_from_double(1e-300, E8M0, SAT) == 0x00 &&
                                            fp8_from_double(0x1.7ffffffffffffp-127, E8M0, NOSAT) == 0x00 &&
                                            fp8_from_double(0x1.8p-127, E8M0, NOSAT) == 0x01 && fp8_from_double(0x1p-127, E8M0, NOSAT) == 0x00);
    /* double and float agree on every float (2^24 of them, spread over all exponents) */
    bad = 0;
    for (uint32_t i = 0; i < (1u << 24); i++) {
        float x;
        uint32_t u = i * 256u + (i % 251u);
        memcpy(&x, &u, 4);
        for (int f = 0; f < FP8_NUM_FORMATS; f++)
            if (fp8_from_double(x, (fp8_format)f, NOSAT) != fp8_from_float(x, (fp8_format)f, NOSAT) && !isnan(x)) bad++;
    }
    CHECK("double_equals_float_on_floats", bad == 0);

    /* 5. bf16 and fp16 raw-bit inputs: exact in float, so one rounding. */
    bad = 0;
    for (int b = 0; b < 65536; b++)
        for (int f = 0; f < FP8_NUM_FORMATS; f++) {
            if (fp8_from_bf16((uint16_t)b, (fp8_format)f, SAT) != fp8_from_double(bf16_to_float((uint16_t)b), (fp8_format)f, SAT)) bad++;
            if (fp8_from_fp16((uint16_t)b, (fp8_format)f, SAT) != fp8_from_double(fp16_to_float((uint16_t)b), (fp8_format)f, SAT)) bad++;
        }
    CHECK("from_bf16_fp16_bits_all_65536", bad == 0);
    CHECK("bf16_cases", bf16_from_float(1.0f + 0x1p-8f) == 0x3F80 /* tie -> even */ && bf16_from_float(1.0f + 0x3p-8f) == 0x3F82 &&
                            bf16_from_float(0x1.fffffep127f) == 0x7F80 /* rounds up to inf */ && bf16_from_float(-NAN) == 0xFFC0 &&
                            bf16_from_float(NAN) == 0x7FC0 && bf16_from_float(-0.0f) == 0x8000 && bf16_to_float(0x3F80) == 1);
    CHECK("fp16_cases", fp16_from_float(65504) == 0x7BFF && fp16_from_float(65519.996f) == 0x7BFF && fp16_from_float(65520) == 0x7C00 &&
                            fp16_from_float(0x1p-24f) == 0x0001 && fp16_from_float(0x1p-25f) == 0x0000 /* tie -> even 0 */ &&
                            fp16_from_float(0x1.000002p-25f) == 0x0001 && fp16_from_float(-NAN) == 0xFE00 && fp16_from_float(-0.0f) == 0x8000 &&
                            fp16_to_float(0x3C00) == 1 && fp16_to_float(0x0001) == 0x1p-24f && isnan(fp16_to_float(0x7C01)));

    /* 6. Round toward zero: truncation; a finite input never overflows, inf still follows sat. */
    CHECK("rtz_cases", fp8_from_float_rtz(1.99f, E4M3, NOSAT) == 0x3F /* 1.875 */ && fp8_from_float_rtz(-1.99f, E4M3, NOSAT) == 0xBF &&
                           fp8_from_float_rtz(500, E4M3, NOSAT) == 0x7E && fp8_from_float_rtz(1e6f, E5M2, NOSAT) == 0x7B &&
                           fp8_from_float_rtz(INFINITY, E5M2, NOSAT) == 0x7C && fp8_from_float_rtz(0x1.fp-10f, E4M3, NOSAT) == 0x00 &&
                           fp8_from_float_rtz(1.99f, E8M0, NOSAT) == 0x7F && fp8_from_float_rtz(5.9f, E2M1, NOSAT) == 0x6 &&
                           /* E8M0 has nothing below 2^-127: toward zero stops there */
                           fp8_from_float_rtz(0x1.fp-127f, E8M0, NOSAT) == 0x00 && fp8_from_float_rtz(0x1p-140f, E8M0, NOSAT) == 0x00);
    bad = 0; /* RTZ never exceeds |x|, and the next code up does */
    for (uint32_t i = 0; i < (1u << 20); i++) {
        float x = ldexpf(1.0f + (float)i / (1 << 20), (int)(i % 24) - 12);
        for (int f = 0; f < 4; f++) {
            float t = fp8_to_float(fp8_from_float_rtz(x, (fp8_format)f, SAT), (fp8_format)f);
            uint8_t c = fp8_from_float_rtz(x, (fp8_format)f, SAT);
            float next = fp8_to_float((uint8_t)(c + 1), (fp8_format)f);
            if (t > x || (c < fp8_params_of((fp8_format)f).max_code && next <= x)) bad++;
        }
    }
    CHECK("rtz_brackets", bad == 0);

    /* 7. Stochastic rounding with caller-supplied random bits r: round up iff r < the dropped
     *    fraction in units of 2^-32. So for x = 1 + 1/4 ulp exactly 1/4 of all r values round up:
     *    with r = k·2^24, k = 0..255, exactly 64 do. */
    float x = 1.0f + 0.125f / 4; /* E4M3 ulp at 1 is 0.125 */
    int ups = 0;
    for (uint32_t k = 0; k < 256; k++) ups += fp8_from_float_sr(x, E4M3, SAT, k << 24) == 0x39;
    CHECK("stochastic_quarter_ulp_rounds_up_1_in_4", ups == 64);
    CHECK("stochastic_exact_values_never_move", fp8_from_float_sr(1.125f, E4M3, SAT, 0) == 0x39 && fp8_from_float_sr(1.125f, E4M3, SAT, 0xFFFFFFFF) == 0x39);
    CHECK("stochastic_extremes", fp8_from_float_sr(1.0001f, E4M3, SAT, 0) == 0x39 && fp8_from_float_sr(1.0001f, E4M3, SAT, 0xFFFFFFFF) == 0x38 &&
                                     fp8_from_float_sr(440, E4M3, NOSAT, 0) == 0x7E && fp8_from_float_sr(447, E4M3, NOSAT, 0) == 0x7E &&
                                     fp8_from_float_sr(449, E4M3, NOSAT, 0) == 0x7F /* rounds up past max: overflow */ &&
                                     fp8_from_float_sr(449, E4M3, SAT, 0) == 0x7E &&
                                     /* E8M0: [2^-127, 2^-126) goes to one of its two neighbours; below 2^-127 always 2^-127 */
                                     fp8_from_float_sr(0x1.4p-127f, E8M0, NOSAT, 0) == 0x01 && fp8_from_float_sr(0x1.4p-127f, E8M0, NOSAT, 0xFFFFFFFF) == 0x00 &&
                                     fp8_from_float_sr(0x1.fp-128f, E8M0, NOSAT, 0) == 0x00);
    /* Unbiased: the mean of SR over r = k·2^20 (k = 0..4095) equals x exactly when the fraction
     * is a multiple of 2^-12 — here x = 1 + 1000/4096 ulp. */
    double sum = 0;
    float xs = 1.0f + 0.125f * 1000.0f / 4096.0f;
    for (uint32_t k = 0; k < 4096; k++) sum += fp8_to_float(fp8_from_float_sr(xs, E4M3, SAT, k << 20), E4M3);
    CHECK("stochastic_mean_is_exact", sum / 4096 == (double)xs);
    bad = 0; /* SR always lands on one of the two neighbours of x */
    uint32_t r = 12345;
    for (uint32_t i = 0; i < (1u << 20); i++) {
        r = r * 1664525u + 1013904223u;
        float y = ldexpf(1.0f + (float)(r >> 12) / (1 << 20), (int)(r % 20) - 8) * ((r & 1) ? -1 : 1);
        for (int f = 0; f < FP8_NUM_FORMATS; f++) {
            uint8_t down = fp8_from_float_rtz(y, (fp8_format)f, SAT), s = fp8_from_float_sr(y, (fp8_format)f, SAT, r * 2654435761u);
            fp8_params p = fp8_params_of((fp8_format)f);
            uint32_t mag_d = down & ~p.sign_bit, mag_s = s & ~p.sign_bit;
            if (f == FP8_E8M0 && y < 0) continue;
            if (!(mag_s == mag_d || (mag_s == mag_d + 1 && mag_s <= p.max_code) || (mag_s == mag_d && mag_d == p.max_code))) bad++;
        }
    }
    CHECK("stochastic_lands_on_a_neighbour", bad == 0);

    /* 8. Row encoders: fast == ref on deterministic rows, with vLLM's dynamic per-token scale
     *    s = max(absmax / 448, 1 / (448 · 512)), and q[i] = fp8(x[i] / s) with a real division. */
    enum { N = 4096 };
    static float row[N];
    static uint8_t qf[N], qr[N];
    bad = 0;
    r = 7;
    for (int t = 0; t < 200; t++) {
        float amax = 0;
        for (int i = 0; i < N; i++) {
            r = r * 1664525u + 1013904223u;
            float g = ((float)(r >> 8) / (1 << 24) - 0.5f) * ldexpf(1.0f, t % 40 - 20);
            row[i] = (i % 97 == 0) ? g * 1000 : g; /* outliers */
            if (fabsf(row[i]) > amax) amax = fabsf(row[i]);
        }
        float s = amax / 448.0f;
        if (s < 1.0f / (448.0f * 512.0f)) s = 1.0f / (448.0f * 512.0f);
        for (int f = 0; f < FP8_NUM_FORMATS; f++)
            for (int sm = 0; sm < 2; sm++) {
                fp8_encode_row(qf, row, N, s, (fp8_format)f, (fp8_saturation)sm);
                fp8_encode_row_ref(qr, row, N, s, (fp8_format)f, (fp8_saturation)sm);
                if (memcmp(qf, qr, N)) bad++;
                for (int i = 0; i < N; i += 61)
                    if (qr[i] != fp8_from_float(row[i] / s, (fp8_format)f, (fp8_saturation)sm)) bad++;
            }
    }
    CHECK("encode_row_fast_equals_ref", bad == 0);

    /* 9. Decoding rows: table path == scalar path, every code, several scales. */
    static uint8_t codes[256];
    static float y1[256], y2[256];
    for (int v = 0; v < 256; v++) codes[v] = (uint8_t)v;
    bad = 0;
    static const float scales[] = {1.0f, 0.0123f, 3.0e-3f, 1200.0f / 448.0f, 0x1p-130f};
    for (int f = 0; f < FP8_NUM_FORMATS; f++)
        for (int k = 0; k < 5; k++) {
            fp8_decode_row(y1, codes, 256, scales[k], (fp8_format)f);
            fp8_decode_row_ref(y2, codes, 256, scales[k], (fp8_format)f);
            if (memcmp(y1, y2, sizeof y1)) bad++;
        }
    CHECK("decode_row_table_equals_ref", bad == 0);

    /* 10. Names. */
    fp8_format g;
    CHECK("format_names", fp8_format_from_name("E4M3", &g) == 0 && g == E4M3 && fp8_format_from_name("e4m3fnuz", &g) == 0 && g == FNUZ4 &&
                              fp8_format_from_name("fp4", &g) == 0 && g == E2M1 && fp8_format_from_name("e4m", &g) == -1 &&
                              fp8_format_from_name("e4m3x", &g) == -1 && !strcmp(fp8_format_name(E8M0), "e8m0"));
    return failures != 0;
}
