/* calibrate internals: SHA-256 against the FIPS 180-2 / NIST example vectors; the four observers
 * against tests/calib_goldens.h (llm-compressor's observer code run with compressed-tensors' own
 * calculate_qparams / fake_quantize in torch float32, numpy for the percentile: see
 * tests/gen_calib_goldens.py); the window sampling rule; the 64-token overlap counter. */
#include "llama_fp8.c"
#include "tests/calib_goldens.h"

static int fails = 0;
static void check(int ok, const char *name, const char *fmt, ...) {
    if (ok) { printf("ok %s\n", name); return; }
    va_list ap; va_start(ap, fmt);
    printf("FAIL %s: ", name); vprintf(fmt, ap); printf("\n");
    va_end(ap);
    fails++;
}
static float run_obs(obs_kind k, double pct, int first, int last) {
    ObsState o = {0};
    for (int b = first; b <= last; b++) obs_update(&o, k, pct, EMU_E4M3, calib_batches[b], CALIB_ROWS * CALIB_COLS);
    return obs_absmax(&o);
}
/* float32 ulps between a and b */
static long ulps(float a, float b) { int32_t x, y; memcpy(&x, &a, 4); memcpy(&y, &b, 4); return labs((long)x - (long)y); }

int main(void) {
    /* SHA-256: FIPS 180-2 appendix B examples and the empty string */
    struct { const char *msg; long reps; const char *hex; } v[] = {
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(v[i].msg) * v[i].reps;
        char *buf = xmalloc(n + 1);
        for (long r = 0; r < v[i].reps; r++) memcpy(buf + r * strlen(v[i].msg), v[i].msg, strlen(v[i].msg));
        char hex[65];
        sha256_hex(buf, n, hex);
        char name[40]; snprintf(name, sizeof name, "calib_sha256_vector_%d", i);
        check(!strcmp(hex, v[i].hex), name, "got %s want %s", hex, v[i].hex);
        free(buf);
    }
    /* streaming in odd pieces (block boundaries at 55/56/64 bytes) equals one call */
    {
        char buf[300], h1[65], h2[65];
        for (int i = 0; i < 300; i++) buf[i] = (char)(i * 7 + 3);
        int ok = 1;
        for (int n = 0; n <= 300 && ok; n += 1) {
            sha256_hex(buf, n, h1);
            sha256_ctx c; uint8_t d[32]; sha256_init(&c);
            for (int p = 0; p < n; p += 13) sha256_update(&c, buf + p, n - p < 13 ? n - p : 13);
            sha256_final(&c, d);
            for (int i = 0; i < 32; i++) sprintf(h2 + 2 * i, "%02x", d[i]);
            ok = !strcmp(h1, h2);
        }
        check(ok, "calib_sha256_streaming", "piecewise update differs from one-shot");
    }

    /* the MSE observer's fast fake-quantization equals emu's encode + decode on every clamped input:
     * fp32 bit patterns with |y| <= fmax at a stride of 997 (every binade, odd mantissas), and the ties */
    for (int f = 0; f < 2; f++) {
        emu_dtype fmt = f ? EMU_E5M2 : EMU_E4M3;
        float fmax = emu_fmax(fmt);
        long bad = 0, n = 0;
        for (uint32_t b = 0; b < 0x7F800000u; b += 997) {
            float y; memcpy(&y, &b, 4);
            if (y > fmax) break;
            for (int sg = 0; sg < 2; sg++, n++) {
                float v = sg ? -y : y, want = emu_fp8_decode(emu_fp8_encode(v, fmt), fmt), got = fp8_round_fast(v, fmt);
                if (memcmp(&want, &got, 4) && !(want == 0 && got == 0)) { if (bad++ < 3) printf("  %s %a: fast %a emu %a\n", f ? "e5m2" : "e4m3", v, got, want); }
            }
        }
        /* every midpoint between neighbouring codes (the ties) and its two float neighbours */
        for (int c = 0; c < 127; c++) {
            float lo = emu_fp8_decode((uint8_t)c, fmt), hi = emu_fp8_decode((uint8_t)(c + 1), fmt);
            if (!(hi <= fmax)) break;
            float mid = (lo + hi) / 2, t3[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
            for (int k = 0; k < 3; k++, n++) {
                float want = emu_fp8_decode(emu_fp8_encode(t3[k], fmt), fmt), got = fp8_round_fast(t3[k], fmt);
                if (want != got) { if (bad++ < 3) printf("  tie %a: fast %a emu %a\n", t3[k], got, want); }
            }
        }
        char name[48]; snprintf(name, sizeof name, "calib_fast_fakeq_%s", f ? "e5m2" : "e4m3");
        check(bad == 0, name, "%ld of %ld values differ", bad, n);
    }

    /* observers, exact (bit-identical float32) against the torch / compressed-tensors reference */
    float g;
    g = run_obs(OBS_MINMAX, 0, 0, CALIB_NB - 1);
    check(g == calib_gold_minmax, "calib_observer_minmax", "%a want %a", g, calib_gold_minmax);
    g = run_obs(OBS_EMA_LEGACY, 0, 0, CALIB_NB - 1);   /* the golden: llm-compressor 05d780a1's formula, fp32 tensors */
    check(g == calib_gold_ema, "calib_observer_ema_legacy", "%a want %a", g, calib_gold_ema);
    int ok = 1;
    for (int b = 0; b < CALIB_NB; b++) {
        g = run_obs(OBS_MSE, 0, b, b);
        if (g != calib_gold_mse_each[b]) { printf("  mse batch %d: %a want %a\n", b, g, calib_gold_mse_each[b]); ok = 0; }
    }
    check(ok, "calib_observer_mse_grid_per_batch", "the shrink factor chosen differs from llm-compressor's");
    g = run_obs(OBS_MSE, 0, 0, CALIB_NB - 1);
    check(g == calib_gold_mse, "calib_observer_mse", "%a want %a", g, calib_gold_mse);
    /* percentile: numpy's linear interpolation (computed in float64 from float32 data, then rounded to
     * float32); ours interpolates in double too but with a different formula (numpy flips to
     * b − (b − a)(1 − t) for t ≥ 0.5): both are within 1 ulp of double of the exact value, so after
     * rounding to float32 they agree to 1 float32 ulp. */
    for (int i = 0; i < 3; i++) {
        g = run_obs(OBS_PERCENTILE, calib_pcts[i], 0, CALIB_NB - 1);
        char name[48]; snprintf(name, sizeof name, "calib_observer_percentile_%g", calib_pcts[i]);
        check(ulps(g, calib_gold_percentile[i]) <= 1, name, "%a want %a (±1 ulp)", g, calib_gold_percentile[i]);
    }
    /* the observer ignores nothing: an all-zero batch gives absmax 0, and the first batch initialises ema */
    {
        float z[16] = {0}, one[2] = {-3, 1};
        ObsState o = {0};
        obs_update(&o, OBS_EMA_LEGACY, 0, EMU_E4M3, one, 2);
        obs_update(&o, OBS_EMA_LEGACY, 0, EMU_E4M3, z, 16);
        /* min: −3 + 0.01·(0 − (−3)) = −2.97 (fp32), max: 1 + 0.01·(0 − 1) = 0.99 → absmax 2.97 */
        float want = -(-3.0f + 0.01f * (0.0f - -3.0f));
        check(obs_absmax(&o) == want, "calib_observer_ema_legacy_hand", "%a want %a", obs_absmax(&o), want);
        /* today's llm-compressor minmax (lerp) on bf16 tensors: min = B(B(−3·0.99f) + B(0·0.01f)); −2.97 lies
         * between the bf16 neighbours −2.96875 and −2.984375 (step 2^-6 in [2, 4)), nearer −2.96875; max =
         * B(B(1·0.99f) + 0) = 0.98828125 (step 2^-8 in [0.5, 1)): absmax 2.96875, not the fp32 2.97 */
        ObsState e = {0};
        obs_update(&e, OBS_EMA, 0, EMU_E4M3, one, 2);
        obs_update(&e, OBS_EMA, 0, EMU_E4M3, z, 16);
        check(obs_absmax(&e) == 2.96875f && e.mx == 0.98828125f, "calib_observer_ema_bf16_hand", "absmax %a max %a, want 2.96875, 0.98828125", obs_absmax(&e), e.mx);
        /* a step where the sum rounds: r = 100, cur = 228: B(99.0) = 99 + B(2.28) = 2.28125 → 101.28125 → bf16 101.5
         * (step 0.5 in [64, 128); 101.28125 is nearer 101.5 than 101.0) */
        float a1[1] = {100}, a2[1] = {228};
        ObsState f = {0};
        obs_update(&f, OBS_EMA, 0, EMU_E4M3, a1, 1);
        obs_update(&f, OBS_EMA, 0, EMU_E4M3, a2, 1);
        check(f.mx == 101.5f, "calib_observer_ema_bf16_sum_rounds", "max %a want 101.5", f.mx);
    }

    /* windows: distinct, non-overlapping, inside the text, on one grid, deterministic per seed */
    {
        int st[40], st2[40];
        int S = calib_windows(10000, 256, 39, 0, st);
        calib_windows(10000, 256, 39, 0, st2);
        int ok2 = S == 10000 / 255 && !memcmp(st, st2, sizeof st[0] * 39);
        for (int i = 0; i < 39 && ok2; i++) {
            if (st[i] < 0 || st[i] + 255 > 10000 || (st[i] - st[0]) % 255) ok2 = 0;
            for (int j = 0; j < i; j++) if (st[i] == st[j]) ok2 = 0;
        }
        check(ok2, "calib_windows_rule", "windows overlap, leave the text or differ between runs");
        calib_windows(10000, 256, 39, 1, st2);
        check(memcmp(st, st2, sizeof st[0] * 39) != 0, "calib_windows_seed", "seed 0 and seed 1 gave the same windows");
        /* splitmix64 reference values (Vigna's splitmix64.c, seed 0: first output 0xE220A8397B1DCDAF) */
        uint64_t r = 0;
        uint64_t x = splitmix64(&r);
        check(x == 0xE220A8397B1DCDAFull, "calib_splitmix64", "%llx", (unsigned long long)x);
    }

    /* overlap: a calibration window copied into the eval text is found; unrelated text is not */
    {
        int n = 4000, *text = xmalloc(n * sizeof(int)), *eval = xmalloc(n * sizeof(int));
        uint64_t r = 7;
        for (int i = 0; i < n; i++) { text[i] = (int)(splitmix64(&r) % 500); eval[i] = (int)(splitmix64(&r) % 500); }
        int starts[2] = {100, 1000};
        long long s0 = count_shared_windows(text, starts, 2, 200, eval, n);
        memcpy(eval + 3000, text + 1050, 80 * sizeof(int));  /* 80 shared tokens = 17 shared 64-token windows */
        long long s1 = count_shared_windows(text, starts, 2, 200, eval, n);
        check(s0 == 0 && s1 == 17, "calib_overlap_count", "got %lld and %lld, want 0 and 17", s0, s1);
        free(text); free(eval);
    }
    return fails ? 1 : 0;
}
