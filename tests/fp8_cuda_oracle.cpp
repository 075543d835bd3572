/* fp8_cuda_oracle.cpp — CUDA's own host code as the oracle for fp8.h's E4M3 and E5M2.
 *
 * cuda_fp8.h (CUDA toolkit include directory) compiles as plain host C++ with g++: no GPU and no
 * nvcc needed. Its host path of __nv_cvt_float_to_fp8 is the reference implementation of the
 * sm_89+ instruction cvt.rn.satfinite.e{4m3,5m2}x2.f32.
 *
 *   fp8_cuda_oracle compare   every float bit pattern (2^32), both formats, both saturation modes:
 *                             fp8_from_float == __nv_cvt_float_to_fp8, byte for byte; all 256
 *                             codes: fp8_to_float == __nv_cvt_fp8_to_halfraw (as values, NaN ≡ NaN);
 *                             2^24 random doubles: fp8_from_double == __nv_cvt_double_to_fp8.
 *                             Prints "ok fp8_cuda_..." / "FAIL fp8_cuda_...: first mismatches".
 *   fp8_cuda_oracle digest    prints the digest (tests/fp8_digest.h) of CUDA's 2^32 outputs for
 *                             each format and mode: the committed tests/golden/fp8_digests.txt lines.
 *
 * Build: g++ -O2 -fopenmp -I. -I/usr/local/cuda/include tests/fp8_cuda_oracle.cpp -o fp8_cuda_oracle
 */
#include <cuda_fp8.h>
#include <cstdio>
#include <cstring>
#include <cmath>
#include "fp8.h"
#include "tests/fp8_digest.h"

static int fails;

static unsigned char cuda_f32(float x, fp8_format fmt, fp8_saturation sat) {
    return __nv_cvt_float_to_fp8(x, sat == FP8_SATFINITE ? __NV_SATFINITE : __NV_NOSAT,
                                 fmt == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
}

/* A template, so that fmt and sat are constants and both sides compile to specialised code. */
template <fp8_format fmt, fp8_saturation sat> static void compare_all_floats() {
    const char *name = fmt == FP8_E4M3 ? "e4m3" : "e5m2";
    const char *mode = sat == FP8_SATFINITE ? "satfinite" : "nosat";
    long long bad = 0;
    unsigned first[10];
    int nfirst = 0;
    #pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad)
    for (long long chunk = 0; chunk < FP8_DIGEST_NCHUNKS; chunk++) {
        for (uint32_t i = 0; i < FP8_DIGEST_CHUNK; i++) {
            uint32_t u = (uint32_t)(chunk * FP8_DIGEST_CHUNK + i);
            float x = fp8_f32_from_bits(u);
            if (fp8_from_float(x, fmt, sat) != cuda_f32(x, fmt, sat)) {
                bad++;
                #pragma omp critical
                if (nfirst < 10) first[nfirst++] = u;
            }
        }
    }
    if (!bad) { printf("ok fp8_cuda_%s_%s_all_2^32_floats\n", name, mode); return; }
    fails++;
    printf("FAIL fp8_cuda_%s_%s_all_2^32_floats: %lld mismatches, e.g.", name, mode, bad);
    for (int k = 0; k < nfirst; k++) {
        float x = fp8_f32_from_bits(first[k]);
        printf(" [0x%08x %g: ours 0x%02x cuda 0x%02x]", first[k], x, fp8_from_float(x, fmt, sat), cuda_f32(x, fmt, sat));
    }
    printf("\n");
}

static void compare_decode(fp8_format fmt) {
    const char *name = fmt == FP8_E4M3 ? "e4m3" : "e5m2";
    int bad = 0;
    for (int v = 0; v < 256; v++) {
        __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)v, fmt == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
        float theirs = fp16_to_float(h.x), ours = fp8_to_float((uint8_t)v, fmt);
        int same = (std::isnan(theirs) && std::isnan(ours)) || (theirs == ours && std::signbit(theirs) == std::signbit(ours));
        if (!same) {
            if (bad++ < 5) printf("  code 0x%02x: ours %g, cuda halfraw 0x%04x = %g\n", v, ours, h.x, theirs);
        }
    }
    if (bad) { fails++; printf("FAIL fp8_cuda_%s_decode_256_codes: %d mismatches\n", name, bad); }
    else printf("ok fp8_cuda_%s_decode_256_codes\n", name);
}

/* Doubles: random bit patterns (all exponents) and random values near the format's grid. */
static void compare_doubles(fp8_format fmt, fp8_saturation sat) {
    const char *name = fmt == FP8_E4M3 ? "e4m3" : "e5m2";
    const char *mode = sat == FP8_SATFINITE ? "satfinite" : "nosat";
    long long bad = 0;
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < (1 << 24); i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17; /* xorshift64 */
        uint64_t u = s;
        if (i & 1) { /* exponent in [2^-20, 2^17): where the formats live */
            u = (u & 0x800FFFFFFFFFFFFFULL) | (uint64_t)(1023 - 20 + (int)((s >> 52) % 37)) << 52;
        }
        double x;
        memcpy(&x, &u, 8);
        if (std::isnan(x)) continue; /* CUDA's double path keeps a NaN's sign/payload; we give the canonical NaN */
        unsigned char theirs = __nv_cvt_double_to_fp8(x, sat == FP8_SATFINITE ? __NV_SATFINITE : __NV_NOSAT,
                                                      fmt == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
        if (fp8_from_double(x, fmt, sat) != theirs) {
            if (bad++ < 5) printf("  double %.17g: ours 0x%02x cuda 0x%02x\n", x, fp8_from_double(x, fmt, sat), theirs);
        }
    }
    if (bad) { fails++; printf("FAIL fp8_cuda_%s_%s_2^24_doubles: %lld mismatches\n", name, mode, bad); }
    else printf("ok fp8_cuda_%s_%s_2^24_doubles\n", name, mode);
}

static unsigned char digest_e4m3_nosat(uint32_t u) { return cuda_f32(fp8_f32_from_bits(u), FP8_E4M3, FP8_NOSAT); }
static unsigned char digest_e4m3_sat(uint32_t u) { return cuda_f32(fp8_f32_from_bits(u), FP8_E4M3, FP8_SATFINITE); }
static unsigned char digest_e5m2_nosat(uint32_t u) { return cuda_f32(fp8_f32_from_bits(u), FP8_E5M2, FP8_NOSAT); }
static unsigned char digest_e5m2_sat(uint32_t u) { return cuda_f32(fp8_f32_from_bits(u), FP8_E5M2, FP8_SATFINITE); }

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "digest")) {
        printf("e4m3 nosat %016llx cuda_fp8.h __nv_cvt_float_to_fp8\n", (unsigned long long)fp8_digest_all(digest_e4m3_nosat));
        printf("e4m3 satfinite %016llx cuda_fp8.h __nv_cvt_float_to_fp8\n", (unsigned long long)fp8_digest_all(digest_e4m3_sat));
        printf("e5m2 nosat %016llx cuda_fp8.h __nv_cvt_float_to_fp8\n", (unsigned long long)fp8_digest_all(digest_e5m2_nosat));
        printf("e5m2 satfinite %016llx cuda_fp8.h __nv_cvt_float_to_fp8\n", (unsigned long long)fp8_digest_all(digest_e5m2_sat));
        return 0;
    }
    if (argc != 2 || strcmp(argv[1], "compare")) { fprintf(stderr, "usage: fp8_cuda_oracle compare|digest\n"); return 2; }
    for (int f = 0; f < 2; f++) {
        fp8_format fmt = f ? FP8_E5M2 : FP8_E4M3;
        compare_decode(fmt);
        for (int s = 0; s < 2; s++) compare_doubles(fmt, s ? FP8_SATFINITE : FP8_NOSAT);
    }
    compare_all_floats<FP8_E4M3, FP8_NOSAT>();
    compare_all_floats<FP8_E4M3, FP8_SATFINITE>();
    compare_all_floats<FP8_E5M2, FP8_NOSAT>();
    compare_all_floats<FP8_E5M2, FP8_SATFINITE>();
    return fails != 0;
}
