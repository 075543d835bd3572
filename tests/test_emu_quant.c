/* emu row quantization (emu/quant.c) against PyTorch goldens (tests/emu_gen_quant_goldens.py, torch's
 * float8_e4m3fn / float8_e5m2 casts following vLLM and compressed-tensors semantics), bit for bit on
 * codes and scales; plus emu's FP8 decode against an independent formula over all 256 codes, and the
 * fp8.h encoder (used by emu) against an independent bisection RNE over many floats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emu/emu.h"
#include "emu/ops.h"

static int failures;
#define CHECK(name, cond, ...) do { if (cond) printf("ok emu_quant: %s\n", name); else { printf("FAIL emu_quant: %s: ", name); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

#include "tests/emu_quant_goldens.h"

static uint64_t fnv(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void gen(uint64_t s, float *x, size_t n) {   /* the xorshift64 inputs of the generator script */
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int mant = (int)((s >> 16) & 0xFFFFFF) - 0x800000;
        int ex = (int)((s >> 40) % 16) - 8;
        x[i] = ldexpf((float)mant / (float)0x800000, ex);
    }
}

static float decode_formula(uint8_t v, emu_dtype f) {   /* OCP FP8, written independently of fp8.h */
    int s = v >> 7, E = f == EMU_E4M3 ? 4 : 5, Mb = 7 - E, bias = f == EMU_E4M3 ? 7 : 15;
    int e = (v >> Mb) & ((1 << E) - 1), m = v & ((1 << Mb) - 1);
    double r;
    if (f == EMU_E4M3 && e == 15 && m == 7) return NAN;
    if (f == EMU_E5M2 && e == 31) return m ? NAN : (s ? -INFINITY : INFINITY);
    r = e ? ldexp(1.0 + m / (double)(1 << Mb), e - bias) : ldexp(m / (double)(1 << Mb), 1 - bias);
    return (float)(s ? -r : r);
}

static uint8_t encode_bisect(float x, emu_dtype f) {   /* RNE by bisection over the ordered codes, saturating */
    uint8_t top = f == EMU_E4M3 ? 0x7E : 0x7B, sign = signbit(x) ? 0x80 : 0;
    float ax = fabsf(x);
    if (ax >= emu_fmax(f)) return sign | top;
    int lo = 0, hi = top;
    while (hi - lo > 1) { int mid = (lo + hi) / 2; if (decode_formula((uint8_t)mid, f) <= ax) lo = mid; else hi = mid; }
    double a = decode_formula((uint8_t)lo, f), b = decode_formula((uint8_t)hi, f), mid = (a + b) / 2;
    return (uint8_t)(sign | (ax < mid ? lo : ax > mid ? hi : (lo & 1 ? hi : lo)));
}

int main(void) {
    int dec_ok = 1;
    for (int f = EMU_E4M3; f <= EMU_E5M2; f++)
        for (int c = 0; c < 256; c++) {
            float a = emu_fp8_decode((uint8_t)c, f), b = decode_formula((uint8_t)c, f);
            if (!(a == b && signbit(a) == signbit(b)) && !(isnan(a) && isnan(b))) dec_ok = 0;
        }
    CHECK("FP8 decode of all 256 E4M3 and E5M2 codes == independent formula", dec_ok, "mismatch");
    int enc_ok = 1; char ewhy[128] = "";
    uint64_t s = 0x12345678ull;
    for (int i = 0; i < 2000000; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        uint32_t u = (uint32_t)(s >> 11);
        u = (u & 0x807FFFFFu) | ((100 + (u >> 23) % 50) << 23);   /* exponents 2^-27 .. 2^22 */
        float x; memcpy(&x, &u, 4);
        for (int f = EMU_E4M3; f <= EMU_E5M2; f++)
            if (emu_fp8_encode(x, f) != encode_bisect(x, f)) { enc_ok = 0; snprintf(ewhy, sizeof ewhy, "%a fmt %d: %02x vs %02x", x, f, emu_fp8_encode(x, f), encode_bisect(x, f)); }
    }
    /* ties: midpoints between neighbouring codes must go to the even code */
    for (int f = EMU_E4M3; f <= EMU_E5M2; f++)
        for (int c = 0; c < (f == EMU_E4M3 ? 0x7E : 0x7B); c++) {
            float mid = (float)(((double)decode_formula((uint8_t)c, f) + decode_formula((uint8_t)(c + 1), f)) / 2);
            if (emu_fp8_encode(mid, f) != (c & 1 ? c + 1 : c)) { enc_ok = 0; snprintf(ewhy, sizeof ewhy, "tie after code %02x fmt %d", c, f); }
        }
    CHECK("FP8 encode (fp8.h via emu) == independent bisection RNE on 2M floats and all ties", enc_ok, "%s", ewhy);
    CHECK("vLLM clamp: NaN -> +448, inf -> 448, -inf -> -448 (E4M3)",
          emu_fp8_encode(NAN, EMU_E4M3) == 0x7E && emu_fp8_encode(INFINITY, EMU_E4M3) == 0x7E && emu_fp8_encode(-INFINITY, EMU_E4M3) == 0xFE, "clamp");

    /* quant_weight's rule on non-finite inputs (reached with --allow-nonfinite): torch.clamp lets NaN through,
     * so NaN (and Inf / Inf) codes as NaN 0x7F — as compressed-tensors' channel rule (emu_quant_code
     * EMU_Q_CHANNEL) — not as -448 (the fmaxf-first clamp it used to have); ±Inf / finite s saturates to ±fmax.
     * Checked on 16-lane and scalar paths (n = 37: two vectors and a tail). */
    {
        float w[37]; uint8_t qf[37], qr[37];
        for (int i = 0; i < 37; i++) w[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? -INFINITY : INFINITY;
        int nan_ok = 1;
        for (int bf = 0; bf < 2; bf++)
            for (int f = EMU_E4M3; f <= EMU_E5M2; f++) {
                emu_quant_weight_row(qf, w, 37, 0.5f, f, bf);
                emu_quant_weight_row_ref(qr, w, 37, 0.5f, f, bf);
                uint8_t mx = f == EMU_E4M3 ? 0x7E : 0x7B;
                for (int i = 0; i < 37; i++) {
                    uint8_t want = i % 3 == 0 ? 0x7F : i % 3 == 1 ? (uint8_t)(0x80 | mx) : mx;
                    nan_ok &= qf[i] == want && qr[i] == want && emu_quant_code(EMU_Q_CHANNEL, w[i] / 0.5f, f) == want;
                }
                emu_quant_weight_row(qf, w, 37, INFINITY, f, bf);   /* an Inf scale (a block holding Inf): finite/Inf = 0, Inf/Inf = NaN */
                for (int i = 0; i < 37; i++) nan_ok &= qf[i] == 0x7F;
            }
        CHECK("quant_weight rule: NaN -> 0x7F (torch.clamp passes NaN), +-Inf -> +-fmax; Inf scale -> NaN codes; fast == ref == channel rule", nan_ok, "differs");
    }

    int n = sizeof emu_quant_goldens / sizeof emu_quant_goldens[0];
    for (int i = 0; i < n; i++) {
        const emu_quant_golden *g = &emu_quant_goldens[i];
        int M = g->M, K = g->K, ld = K + 3;
        float *x = calloc((size_t)M * ld, 4), *sc = calloc((size_t)M * K + 16, 4);
        float *xc = malloc(sizeof(float) * M * K);
        if (g->seed) {
            gen(g->seed, xc, (size_t)M * K);
            for (int k = 0; k < K; k++) xc[K + k] = 0;   /* row 1 is all zero, as in the script */
        } else {                                      /* seed 0: the midpoint row of ties() in the script */
            float s0 = 0.0123f;
            int j = 0, top = g->fmt == EMU_E4M3 ? 0x7E : 0x7B;
            xc[j++] = emu_fmax(g->fmt) * s0;
            for (int c = 0; c < top; c++) {
                float mid = (float)(((double)emu_fp8_decode((uint8_t)c, g->fmt) + emu_fp8_decode((uint8_t)(c + 1), g->fmt)) / 2);
                float v = mid * s0;
                int32_t b; memcpy(&b, &v, 4);
                for (int d = -2; d <= 2; d++) { int32_t bb = b + d; memcpy(&xc[j++], &bb, 4); }
            }
            if (j != K) { printf("FAIL emu_quant: ties row length %d != %d\n", j, K); return 1; }
        }
        for (int m = 0; m < M; m++) memcpy(x + (size_t)m * ld, xc + (size_t)m * K, 4 * K);
        uint8_t *q = calloc((size_t)M * K, 1);
        int ns = 0;
        const char *k = g->kind;
        if (!strcmp(k, "token")) { emu_quant_token(q, K, sc, x, ld, M, K, g->fmt, 0); ns = M; }
        else if (!strcmp(k, "tensor")) { emu_quant_tensor(q, K, x, ld, M, K, g->fmt, 0.0123f); sc[0] = 0.0123f; ns = 1; }
        else if (!strcmp(k, "tdyn")) { sc[0] = emu_quant_tensor_dynamic(q, K, x, ld, M, K, g->fmt); ns = 1; }
        else if (!strcmp(k, "channel")) { emu_quant_channel(q, K, sc, x, ld, M, K, g->fmt); ns = M; }
        else if (!strcmp(k, "group")) { emu_quant_group(q, K, sc, x, ld, M, K, 128, g->fmt); ns = M * ((K + 127) / 128); }
        else if (!strcmp(k, "block")) { emu_quant_block(q, K, sc, x, ld, M, K, 128, 128, g->fmt); ns = ((M + 127) / 128) * ((K + 127) / 128); }
        else if (!strcmp(k, "i8tok")) { emu_quant_int8_token((int8_t *)q, K, sc, x, ld, M, K); ns = M; }
        else if (!strcmp(k, "i8chan")) { emu_quant_int8_channel((int8_t *)q, K, sc, x, ld, M, K); ns = M; }
        char name[128];
        snprintf(name, sizeof name, "%s%s %s %dx%d: codes and scales == torch golden", k, g->seed ? "" : " (midpoint inputs)", g->fmt == EMU_E4M3 ? "E4M3" : g->fmt == EMU_E5M2 ? "E5M2" : "INT8", M, K);
        uint64_t hq = fnv(q, (size_t)M * K), hs = fnv(sc, 4 * (size_t)ns);
        CHECK(name, hq == g->q_fnv && hs == g->s_fnv, "codes %s, scales %s", hq == g->q_fnv ? "ok" : "differ", hs == g->s_fnv ? "ok" : "differ");
        free(x); free(sc); free(xc); free(q);
    }
    /* The AVX-512 quantizers against their scalar definitions, on every lane position: the per-token
     * encoder (emu_quant_token, against emu/ops.h's emu_quant_scale + emu_quant_code) and quant_weight's
     * rule (emu_quant_weight_row vs _ref, fp32 and bf16 division), over fp32 patterns that sweep the FP8
     * range in steps of 13 ulps, every midpoint between neighbouring codes and its fp32 neighbours, and
     * NaN, ±Inf, ±0, fp32 subnormals and huge values; emu_absmax and emu_load_row against scalar loops. */
    {
        size_t n = 0, cap = 40000000;   /* 2·(0x48000000 − 0x39000000)/13 ≈ 38.7M, plus midpoints and specials */
        float *x = malloc(cap * sizeof(float));
        for (int fi = 0; fi < 2; fi++)
            for (int c = 0; c < 0x7E; c++) {
                emu_dtype t = fi ? EMU_E5M2 : EMU_E4M3;
                float a = emu_fp8_decode((uint8_t)c, t), b = emu_fp8_decode((uint8_t)(c + 1), t);
                if (!isfinite(a) || !isfinite(b)) continue;
                float mid = (a + b) / 2;   /* exact: neighbouring FP8 values differ in few bits */
                x[n++] = mid; x[n++] = nextafterf(mid, 0); x[n++] = nextafterf(mid, INFINITY); x[n++] = -mid;
            }
        const float sp[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -1e-40f, 3e38f, -3e38f, 464.0f, 463.9f, 448.0f, 57344.0f, 61440.0f, -61439.0f};
        for (int r = 0; r < 4; r++)   /* before the sweep: the rows' tail past M·K is dropped */
            for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) x[n++] = sp[i];
        for (uint32_t u = 0x39000000u; u < 0x48000000u; u += 13) {
            float v; memcpy(&v, &u, 4);
            x[n++] = v; x[n++] = -v;
        }
        int M = 4096, K = (int)(n / M);   /* rows of K (K = 8·...+ a tail: not a multiple of 16) */
        if (K % 16 == 0) K--;
        uint8_t *q1 = malloc(n), *q2 = malloc(n);
        float *sc = malloc(M * sizeof(float));
        char why[200] = "";
        for (int fi = 0; fi < 2 && !why[0]; fi++) {
            emu_dtype t = fi ? EMU_E5M2 : EMU_E4M3;
            emu_quant_token(q1, K, sc, x, K, M, K, t, 0);
            for (int m = 0; m < M && !why[0]; m++) {
                float s = emu_quant_scale(EMU_Q_TOKEN, emu_absmax(x + (size_t)m * K, K), t, 0);
                for (int k = 0; k < K; k++) q2[(size_t)m * K + k] = emu_quant_code(EMU_Q_TOKEN, x[(size_t)m * K + k] / s, t);
                if (s != sc[m] || memcmp(q1 + (size_t)m * K, q2 + (size_t)m * K, K)) snprintf(why, sizeof why, "token %s row %d", fi ? "E5M2" : "E4M3", m);
            }
            for (int bf = 0; bf < 2 && !why[0]; bf++)
                for (int m = 0; m < M && !why[0]; m++) {
                    float s = m % 3 == 0 ? 1.0f : m % 3 == 1 ? 0.37f : 3.0f;
                    emu_quant_weight_row(q1, x + (size_t)m * K, K - m % 17, s, t, bf);
                    emu_quant_weight_row_ref(q2, x + (size_t)m * K, K - m % 17, s, t, bf);
                    if (memcmp(q1, q2, K - m % 17)) snprintf(why, sizeof why, "weight row %s bf16 %d row %d", fi ? "E5M2" : "E4M3", bf, m);
                }
        }
        CHECK("AVX-512 encoders == scalar definitions (per-token vLLM rule, quant_weight rule; sweeps, midpoints, specials)", !why[0], "%s", why);
        int am_ok = 1, ld_ok = 1;
        for (int len = 0; len < 70 && am_ok; len++)
            for (size_t off = 0; off + len < n && off < 3000000; off += off < 2000 ? 1 : 99991) {   /* the first 2000: specials, midpoints */
                float a = 0;
                for (int i = 0; i < len; i++) a = fmaxf(a, fabsf(x[off + i]));
                float b = emu_absmax(x + off, len);
                am_ok &= memcmp(&a, &b, 4) == 0;
            }
        uint16_t *h = malloc(2 * 4099);
        float *y = malloc(4 * 4099);
        for (int i = 0; i < 4099; i++) h[i] = (uint16_t)(i * 40503u);
        for (int ti = 0; ti < 3; ti++) {
            emu_dtype t = ti == 0 ? EMU_BF16 : ti == 1 ? EMU_F16 : EMU_F32;
            emu_load_row(y, t == EMU_F32 ? (const void *)x : h, t, 3, t == EMU_F32 ? 4096 : 4093);
            for (int i = 0; i < (t == EMU_F32 ? 4096 : 4093); i++) {
                float r = emu_load(t == EMU_F32 ? (const void *)x : h, t, 3 + i);
                ld_ok &= memcmp(&r, &y[i], 4) == 0;
            }
        }
        CHECK("emu_absmax == fmaxf chain (lengths 0..69, NaN/Inf rows); emu_load_row == emu_load (BF16, F16, F32)", am_ok && ld_ok, "absmax %d load %d", am_ok, ld_ok);
        /* emu_bf16_round_n (threads over chunks of 65536, AVX-512 inside) == emu_bf16_round on every element */
        size_t nr = 1000003 < n ? 1000003 : n;
        float *r1 = malloc(4 * nr);
        memcpy(r1, x, 4 * nr);
        emu_bf16_round_n(r1, nr);
        size_t rbad = 0;
        for (size_t i = 0; i < nr; i++) { float e = emu_bf16_round(x[i]); rbad += memcmp(&e, &r1[i], 4) != 0; }
        CHECK("emu_bf16_round_n == emu_bf16_round (1000003 values: specials, midpoints, sweep)", rbad == 0, "%zu differ", rbad);
        free(r1);
        free(x); free(q1); free(q2); free(sc); free(h); free(y);
    }
    return failures != 0;
}
