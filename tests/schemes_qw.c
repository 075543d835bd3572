/* tests/schemes_qw.c — llama_fp8.c's quant_weight() bit for bit against compressed-tensors.
 * Built and run by tests/test_schemes_qw.sh.
 *   static void quant_weight(uint8_t *q, float *scale, const Tensor *W, emu_dtype fmt, weight_gran granularity, int bf16_arith);
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
 * Also kv_store(s, q, dst, src, n, scale) (FP8 KV cache, vLLM scaled_convert: store cvt_satfinite(x / s), load
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
            kv_store(NULL, &q, x, x, xt.n, s);   /* in place: what attention reads back */
            size_t bad = 0, first = 0;
            for (size_t k = 0; k < xt.n; k++) if (!bits_eq(x[k], exp[k])) { if (!bad) first = k; bad++; }
            snprintf(what, sizeof what, "kv_store(%s scheme, %s, s=%g) %s", bf ? "bf16" : "fp32", fs, s, name);
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

/* Every Linear of the real stories260K model (read through llama_fp8's own loader), quantized by
 * quant_weight at every granularity in bf16 and fp32 arithmetic, against FNV-1a digests of what
 * compressed-tensors makes of the same weights (tests/golden/scheme_stories260K.txt). */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}
static void run_model(void) {
    const char *data = getenv("LLAMA_FP8_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", data ? data : "../shared/data");
    if (!file_exists(path)) { printf("skip sch: quant_weight on stories260K: no %s\n", path); return; }
    FILE *f = fopen("tests/golden/scheme_stories260K.txt", "r");
    if (!f) { SCH_FAIL("quant_weight on stories260K: tests/golden/scheme_stories260K.txt missing"); return; }
    Model *m = model_load(path);
    char line[256], name[32];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        int l, gran, arith, rows, cols;
        unsigned long long hq, hs;
        if (line[0] == '#') continue;
        if (sscanf(line, "%d %31s %d %d %d %d %llx %llx", &l, name, &gran, &arith, &rows, &cols, &hq, &hs) != 8 ||
            l < 0 || l >= m->c.n_layers) { SCH_FAIL("scheme_stories260K.txt: bad line: %s", line); bad++; continue; }
        Layer *Ly = &m->layers[l];
        const Tensor *W = !strcmp(name, "wq") ? &Ly->wq : !strcmp(name, "wk") ? &Ly->wk : !strcmp(name, "wv") ? &Ly->wv :
                          !strcmp(name, "wo") ? &Ly->wo : !strcmp(name, "w_gate") ? &Ly->w_gate :
                          !strcmp(name, "w_down") ? &Ly->w_down : &Ly->w_up;
        if (W->rows != rows || W->cols != cols) { SCH_FAIL("stories260K layer %d %s: %dx%d, golden %dx%d", l, name, W->rows, W->cols, rows, cols); bad++; continue; }
        size_t nn = (size_t)rows * cols, ns = gran == 0 ? (size_t)rows : gran == 1 ? 1 : (size_t)((rows + 127) / 128) * ((cols + 127) / 128);
        uint16_t *wb = NULL;
        Tensor Wt = *W;
        if (arith) {                                   /* the bf16 model: every weight B(w), as model.to(bfloat16) */
            wb = xmalloc(nn * 2);
            for (size_t i = 0; i < nn; i++) wb[i] = bf16_from_float(emu_load(W->data, W->dtype, i));
            Wt = (Tensor){wb, EMU_BF16, rows, cols};
        }
        uint8_t *q = xmalloc(nn);
        float *sc = xmalloc(ns * sizeof(float));
        quant_weight(q, sc, &Wt, EMU_E4M3, gran, arith);
        uint64_t gq = fnv(0xcbf29ce484222325ull, q, nn), gs = fnv(0xcbf29ce484222325ull, sc, ns * sizeof(float));
        if (gq != hq || gs != hs) {
            if (bad < 5) SCH_FAIL("quant_weight on stories260K layer %d %s granularity %d bf16_arith %d: %s%s differ from compressed-tensors",
                                  l, name, gran, arith, gq != hq ? "codes " : "", gs != hs ? "scales " : "");
            bad++;
        }
        n++;
        free(q); free(sc); free(wb);
    }
    fclose(f);
    model_free(m);
    if (!bad && n) SCH_OK("quant_weight on stories260K: all %d (layer, Linear, granularity, arithmetic) cases have the codes and scales of compressed-tensors (FNV-1a digests)", n);
    else if (bad > 5) SCH_FAIL("quant_weight on stories260K: %d of %d cases differ in all", bad, n);
}

int main(void) {
    run_model();
    run_kv("tests/golden/scheme_kv.safetensors");
    run_bundle("tests/golden/scheme_weights_channel.safetensors");
    run_bundle("tests/golden/scheme_weights_block.safetensors");
    return sch_failures ? 1 : 0;
}
