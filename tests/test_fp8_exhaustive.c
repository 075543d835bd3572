/* test_fp8_exhaustive.c — every float bit pattern (all 2^32) through every conversion of fp8.h.
 *
 * For each conversion the 2^32 outputs are reduced, in input order, to a digest (tests/fp8_digest.h)
 * and compared with tests/golden/fp8_digests.txt, which tests/gen_fp8_digests.py made from the
 * real oracles:
 *   e4m3, e5m2 (both modes)   CUDA's host code __nv_cvt_float_to_fp8 (cuda_fp8.h compiled by g++)
 *   e4m3fnuz, e5m2fnuz, e8m0, e2m1 (both modes)   ml_dtypes astype (satfinite: of the clipped input)
 *   bf16                      ml_dtypes astype(bfloat16)
 *   fp16                      torch .to(float16), NaN -> 0x7E00|sign
 * Any single differing output byte changes the digest (fp8_digest.h explains why), so equal
 * digests mean equal outputs for all 2^32 inputs, up to a 2^-64 chance for several differences.
 * E4M3/E5M2 are checked twice: fp8_from_float (the generic encoder; fp8_encode_row_ref is a loop
 * of it) and the fast row encoder fp8_encode_row (scale 1, so x / scale = x exactly).
 * The 256 codes of every format are compared value by value with ml_dtypes' decoding
 * (tests/golden/fp8_decode.txt), and all 65536 halves with numpy's (as a digest).
 * The live oracles are compared directly by tests/test_fp8_oracles.sh where they are installed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <inttypes.h>
#include "fp8.h"
#include "tests/fp8_digest.h"

static int failures;

/* ---- the golden file ---- */
typedef struct { char name[32], mode[16]; uint64_t digest; char oracle[160]; } golden;
static golden gold[64];
static int ngold;

static void load_golden(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { printf("FAIL fp8_golden: cannot open %s\n", path); exit(1); }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        golden g;
        int off = 0;
        if (line[0] == '#' || sscanf(line, "%31s %15s %" SCNx64 " %n", g.name, g.mode, &g.digest, &off) < 3) continue;
        snprintf(g.oracle, sizeof g.oracle, "%s", line + off);
        g.oracle[strcspn(g.oracle, "\n")] = 0;
        if (ngold < 64) gold[ngold++] = g;
    }
    fclose(f);
}
static const golden *find_golden(const char *name, const char *mode) {
    for (int i = 0; i < ngold; i++)
        if (!strcmp(gold[i].name, name) && !strcmp(gold[i].mode, mode)) return &gold[i];
    return NULL;
}
static void check_digest(const char *what, const char *name, const char *mode, uint64_t d, double secs) {
    const golden *g = find_golden(name, mode);
    if (!g) { printf("skip fp8_exhaustive_%s: no golden digest for %s %s (no oracle when generated)\n", what, name, mode); return; }
    if (g->digest == d) printf("ok fp8_exhaustive_%s  (all 2^32 floats = %s; %.1fs)\n", what, g->oracle, secs);
    else { failures++; printf("FAIL fp8_exhaustive_%s: digest %016llx, expected %016llx from %s\n", what, (unsigned long long)d, (unsigned long long)g->digest, g->oracle); }
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/* ---- sweeps ---- */
static uint64_t chunk_hash[1 << 17];

static uint64_t combine_chunks(long long n) {
    uint64_t h = 0;
    for (long long c = 0; c < n; c++) h = fp8_digest_step(h, chunk_hash[c]);
    return h;
}

/* How an FP8 conversion is called. */
enum { VIA_SCALAR, VIA_ROW_FAST };

/* out[i] = fp8_from_float(float with bits base + i). The switch hands the compiler constant
 * format and mode, so it specialises fp8_from_float for each (twice as fast as a variable fmt). */
static void fill_scalar(uint8_t *out, uint32_t base, fp8_format fmt, fp8_saturation sat) {
#define CASE(F, S) if (fmt == F && sat == S) { \
        for (uint32_t i = 0; i < FP8_DIGEST_CHUNK; i++) out[i] = fp8_from_float(fp8_f32_from_bits(base + i), F, S); \
        return; }
    CASE(FP8_E4M3, FP8_NOSAT) CASE(FP8_E4M3, FP8_SATFINITE) CASE(FP8_E5M2, FP8_NOSAT) CASE(FP8_E5M2, FP8_SATFINITE)
    CASE(FP8_E4M3FNUZ, FP8_NOSAT) CASE(FP8_E4M3FNUZ, FP8_SATFINITE) CASE(FP8_E5M2FNUZ, FP8_NOSAT)
    CASE(FP8_E5M2FNUZ, FP8_SATFINITE) CASE(FP8_E8M0, FP8_NOSAT) CASE(FP8_E8M0, FP8_SATFINITE)
    CASE(FP4_E2M1, FP8_NOSAT) CASE(FP4_E2M1, FP8_SATFINITE)
#undef CASE
}

static uint64_t digest_fp8(fp8_format fmt, fp8_saturation sat, int via) {
    #pragma omp parallel for schedule(dynamic, 16)
    for (long long c = 0; c < (long long)FP8_DIGEST_NCHUNKS; c++) {
        uint8_t out[FP8_DIGEST_CHUNK];
        float xs[FP8_DIGEST_CHUNK];
        uint32_t base = (uint32_t)c * FP8_DIGEST_CHUNK;
        if (via == VIA_SCALAR) {
            fill_scalar(out, base, fmt, sat);
        } else {
            for (uint32_t i = 0; i < FP8_DIGEST_CHUNK; i++) xs[i] = fp8_f32_from_bits(base + i);
            fp8_encode_row(out, xs, FP8_DIGEST_CHUNK, 1.0f, fmt, sat);
        }
        chunk_hash[c] = fp8_digest_bytes(out, FP8_DIGEST_CHUNK);
    }
    return combine_chunks(FP8_DIGEST_NCHUNKS);
}

/* 2-byte outputs: a chunk of 2^16 bytes holds 2^15 results. */
static uint64_t digest_16(int fp16) {
    const uint32_t per = FP8_DIGEST_CHUNK / 2;
    const long long n = (1LL << 32) / per;
    #pragma omp parallel for schedule(dynamic, 16)
    for (long long c = 0; c < n; c++) {
        uint16_t out[FP8_DIGEST_CHUNK / 2];
        uint32_t base = (uint32_t)(c * per);
        for (uint32_t i = 0; i < per; i++) {
            float x = fp8_f32_from_bits(base + i);
            out[i] = fp16 ? fp16_from_float(x) : bf16_from_float(x);
        }
        chunk_hash[c] = fp8_digest_bytes((const uint8_t *)out, FP8_DIGEST_CHUNK);
    }
    return combine_chunks(n);
}

/* ---- decoding ---- */
static void check_decode(void) {
    FILE *f = fopen("tests/golden/fp8_decode.txt", "r");
    if (!f) { failures++; printf("FAIL fp8_decode: cannot open tests/golden/fp8_decode.txt\n"); return; }
    static char line[4096];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        char name[32];
        int off;
        if (line[0] == '#' || sscanf(line, "%31s %n", name, &off) < 1) continue;
        if (!strcmp(name, "fp16")) { /* digest of fp16_to_float over all 65536 halves */
            uint64_t want = strtoull(line + off, NULL, 16);
            static uint32_t bits[65536];
            for (int h = 0; h < 65536; h++) bits[h] = fp8_f32_bits(fp16_to_float((uint16_t)h));
            uint64_t got = fp8_digest_bytes((const uint8_t *)bits, sizeof bits);
            if (got == want) printf("ok fp8_decode_fp16_all_65536  (= numpy astype(float32), NaN quieted)\n");
            else { failures++; printf("FAIL fp8_decode_fp16_all_65536: digest %016llx, expected %016llx\n", (unsigned long long)got, (unsigned long long)want); }
            checked++;
            continue;
        }
        fp8_format fmt;
        if (fp8_format_from_name(name, &fmt) != 0) continue;
        const float *table = fp8_decode_table(fmt);
        char *p = line + off;
        int bad = 0;
        for (int v = 0; v < 256; v++) {
            uint32_t want = (uint32_t)strtoul(p, &p, 16);
            float w = fp8_f32_from_bits(want), got = fp8_to_float((uint8_t)v, fmt);
            int same = (w != w) ? (got != got) : fp8_f32_bits(got) == want; /* NaN ≡ NaN, else bit-exact (so -0 ≠ +0) */
            same = same && fp8_f32_bits(table[v]) == fp8_f32_bits(got);  /* the table holds the same bits */
            if (!same && bad++ < 3) printf("  %s code 0x%02x: ours %g (0x%08x), ml_dtypes 0x%08x\n", name, v, got, fp8_f32_bits(got), want);
        }
        if (bad) { failures++; printf("FAIL fp8_decode_%s_256_codes: %d differ from ml_dtypes\n", name, bad); }
        else printf("ok fp8_decode_%s_256_codes  (= ml_dtypes, and fp8_decode_table)\n", name);
        checked++;
    }
    fclose(f);
    if (checked != 7) { failures++; printf("FAIL fp8_decode: expected 7 entries in fp8_decode.txt, found %d\n", checked); }
}

int main(int argc, char **argv) {
    load_golden("tests/golden/fp8_digests.txt");
    check_decode();
    static const fp8_format fmts[] = {FP8_E4M3, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_E8M0, FP4_E2M1};
    for (int f = 0; f < 6; f++) {
        for (int s = 0; s < 2; s++) {
            fp8_saturation sat = s ? FP8_SATFINITE : FP8_NOSAT;
            const char *name = fp8_format_name(fmts[f]), *mode = s ? "satfinite" : "nosat";
            int nvia = (fmts[f] == FP8_E4M3 || fmts[f] == FP8_E5M2) ? 2 : 1;
            for (int via = 0; via < nvia; via++) {
                char what[96];
                snprintf(what, sizeof what, "%s_%s%s", name, mode, via == VIA_SCALAR ? "" : "_encode_row");
                if (argc > 1 && !strstr(what, argv[1])) continue;
                double t = now();
                uint64_t d = digest_fp8(fmts[f], sat, via);
                check_digest(what, name, mode, d, now() - t);
            }
        }
    }
    for (int fp16 = 0; fp16 < 2; fp16++) {
        const char *name = fp16 ? "fp16" : "bf16";
        if (argc > 1 && !strstr(name, argv[1])) continue;
        double t = now();
        uint64_t d = digest_16(fp16);
        check_digest(name, name, "-", d, now() - t);
    }
    return failures != 0;
}
