/* tests/schemes_qw.c — llama_fp8.c's quant_weight() bit for bit against compressed-tensors.
 * Built and run by tests/test_schemes_qw.sh (it skips while llama_fp8.c has no quant_weight).
 *   static void quant_weight(uint8_t *q, float *scale, const Tensor *W, emu_dtype fmt, int granularity, int bf16_arith);
 * granularity 0 per output channel (scale[N]), 1 per tensor (scale[1]), 2 128x128 blocks.
 * Goldens (tests/gen_scheme_goldens.py, cases with "func": "quant_weight"):
 *   bf16 weight, bf16_arith = 1, E4M3:  the installed compressed-tensors package (calculate_qparams +
 *       FloatQuantizationCompressor.compress on CPU), i.e. llm-compressor's own bytes and bf16 scales;
 *   f32 weight, bf16_arith = 0, E4M3:   the same library on an fp32 weight (fp32 arithmetic);
 *   bf16 weight, bf16_arith = 0:        torch re-implementation of the same formula in fp32;
 *   bf16 weight, E5M2:                  the library's formula with fmax 57344 (the library itself only
 *       quantizes 8-bit floats to E4M3); the generator asserts the re-implementation equals the library
 *       for E4M3 on the same weights;
 *   INT8 (fmt "i8"):                    compressed-tensors IntQuantizationCompressor (f32 and bf16 weights).
 * Each check is exact equality of every code byte and every scale (as fp32 bits).
 * Also kv_quantize(q, x, n, s) (FP8 KV cache, vLLM scaled_convert: store cvt_satfinite(x / s), load
 * bf16(fp8 · s) in a bf16 scheme, fp8 · s in fp32) against the values vLLM's attention reads back. */
#include "llama_fp8.c"
#include "tests/schemes_golden.h"

static void run_bundle(const char *path) {
    gold g;
    gold_open(&g, path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (int c = json_at(&g.cases, 0, 0), i = 0; i < g.cases.t[0].n; c = json_next(&g.cases, c), i++) {
        char *func = case_str(&g, c, "func");
        if (strcmp(func, "quant_weight")) { free(func); continue; }
        char *name = case_str(&g, c, "name"), *xn = case_str(&g, c, "x"), *qn = case_str(&g, c, "q"), *sn = case_str(&g, c, "s");
        char *fs = case_str(&g, c, "fmt"), *dt = case_str(&g, c, "dtype"), *oracle = case_str(&g, c, "oracle");
        gtensor xt = gold_tensor(&g, xn), qt = gold_tensor(&g, qn), st = gold_tensor(&g, sn);
        int N = xt.shape[0], K = xt.shape[1], gran = (int)case_num(&g, c, "granularity", 0), bf = (int)case_num(&g, c, "bf16_arith", 0);
        emu_dtype fmt = !strcmp(fs, "e5m2") ? EMU_E5M2 : !strcmp(fs, "i8") ? EMU_I8 : EMU_E4M3;
        float *x = gold_f32(&xt), *s_exp = gold_f32(&st), *s = xcalloc(st.n, sizeof(float));
        uint8_t *q = xcalloc(qt.n, 1);
        Tensor W = {xt.data, xt.dtype, N, K};
        if (!strcmp(dt, "f32")) W.data = x, W.dtype = EMU_F32;      /* bf16-valued golden handed over as F32 */
        quant_weight(q, s, &W, fmt, gran, bf);
        char what[200];
        snprintf(what, sizeof what, "quant_weight(%s, %s, granularity %d, bf16_arith %d) %s/%s", dt, fs, gran, bf, base, name);
        gold_compare(what, oracle, &xt, x, K, qt.data, q, qt.n, s_exp, s, st.n);
        free(x); free(s_exp); free(s); free(q);
        free(func); free(name); free(xn); free(qn); free(sn); free(fs); free(dt); free(oracle);
    }
    gold_close(&g);
}

static void run_kv(const char *path) {
    gold g;
    gold_open(&g, path);
    for (int c = json_at(&g.cases, 0, 0), i = 0; i < g.cases.t[0].n; c = json_next(&g.cases, c), i++) {
        char *name = case_str(&g, c, "name"), *fs = case_str(&g, c, "fmt"), *sn = case_str(&g, c, "s");
        gtensor xt = gold_tensor(&g, "x"), st = gold_tensor(&g, sn);
        float s = emu_load(st.data, st.dtype, 0);
        for (int bf = 0; bf < 2; bf++) {
            char dn[160], what[200];
            snprintf(dn, sizeof dn, "deq_%s_%s", bf ? "bf16" : "f32", name);
            gtensor dt = gold_tensor(&g, dn);
            float *x = gold_f32(&xt), *exp = gold_f32(&dt);
            Scheme q = scheme_make(bf ? "bf16" : "fp32", NULL);
            q.kv = !strcmp(fs, "e5m2") ? EMU_E5M2 : EMU_E4M3;
            kv_quantize(&q, x, (int)xt.n, s);
            size_t bad = 0, first = 0;
            for (size_t k = 0; k < xt.n; k++) if (!bits_eq(x[k], exp[k])) { if (!bad) first = k; bad++; }
            snprintf(what, sizeof what, "kv_quantize(%s scheme, %s, s=%g) %s", bf ? "bf16" : "fp32", fs, s, name);
            if (!bad) SCH_OK("%s: %zu values read back bit-exact vs vLLM scaled_convert re-implementation", what, xt.n);
            else {
                float x0 = emu_load(xt.data, xt.dtype, first);
                SCH_FAIL("%s: %zu/%zu values differ, first [%zu] x=%a expected %a got %a", what, bad, xt.n, first, x0, exp[first], x[first]);
            }
            free(x); free(exp);
        }
        free(name); free(fs); free(sn);
    }
    gold_close(&g);
}

int main(void) {
    run_kv("tests/golden/scheme_kv.safetensors");
    run_bundle("tests/golden/scheme_weights_channel.safetensors");
    run_bundle("tests/golden/scheme_weights_block.safetensors");
    return sch_failures ? 1 : 0;
}
