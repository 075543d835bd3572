/* tests/test_schemes.c — every activation / weight quantize step of emu/ (emu/emu.h) and the scaled
 * GEMM epilogue, bit for bit against goldens produced by the real tools (tests/gen_scheme_goldens.py):
 *   - vLLM activation quantizers (per-token with and without scale_ub, static and dynamic per-tensor,
 *     1x128 groups, INT8 per-token): a line-by-line PyTorch re-implementation of vLLM's CUDA kernels,
 *     cited per case in the golden's metadata ("oracle");
 *   - weight quantizers in fp32 arithmetic (per-channel, 128x128 blocks, INT8 per-channel): the installed
 *     compressed-tensors package itself (calculate_qparams + FloatQuantizationCompressor.compress);
 *   - emu_gemm with EMU_ACC_EXACT: torch float64 dot products (exact for E4M3, see the generator) rounded
 *     once to fp32, then the fp32 epilogue s_a[m] * fp32(s_b[n] * acc) (and the block-scaled order).
 * Every check is exact equality of bits. The quant_weight() checks of llama_fp8.c live in
 * tests/schemes_qw.c (run by tests/test_schemes_qw.sh once that function exists). */
#include "llama_fp8.c"
#include "tests/schemes_golden.h"

static emu_dtype fmt_of(const char *s) { return s && !strcmp(s, "e5m2") ? EMU_E5M2 : EMU_E4M3; }

static void run_bundle(const char *path) {
    gold g;
    gold_open(&g, path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (int c = json_at(&g.cases, 0, 0), i = 0; i < g.cases.t[0].n; c = json_next(&g.cases, c), i++) {
        char *func = case_str(&g, c, "func"), *name = case_str(&g, c, "name"), *xn = case_str(&g, c, "x");
        char *qn = case_str(&g, c, "q"), *sn = case_str(&g, c, "s"), *fs = case_str(&g, c, "fmt"), *oracle = case_str(&g, c, "oracle");
        char what[1200];
        snprintf(what, sizeof what, "%s %s/%s", func, base, name);
        if (!strcmp(func, "quant_weight")) goto next;         /* tests/schemes_qw.c */
        gtensor xt = gold_tensor(&g, xn), qt = gold_tensor(&g, qn), st = gold_tensor(&g, sn);
        int M = xt.shape[0], K = xt.shape[1];
        emu_dtype fmt = fmt_of(fs);
        float *x = gold_f32(&xt), *s_exp = gold_f32(&st), *s = xcalloc(st.n, sizeof(float));
        uint8_t *q = xcalloc(qt.n, 1);
        size_t ns = st.n;
        if (!strcmp(func, "emu_quant_token"))
            emu_quant_token(q, K, s, x, K, M, K, fmt, (float)case_num(&g, c, "scale_ub", 0));
        else if (!strcmp(func, "emu_quant_tensor"))
            emu_quant_tensor(q, K, x, K, M, K, fmt, s_exp[0]), s[0] = s_exp[0];
        else if (!strcmp(func, "emu_quant_tensor_dynamic"))
            s[0] = emu_quant_tensor_dynamic(q, K, x, K, M, K, fmt);
        else if (!strcmp(func, "emu_quant_channel"))
            emu_quant_channel(q, K, s, x, K, M, K, fmt);
        else if (!strcmp(func, "emu_quant_group"))
            emu_quant_group(q, K, s, x, K, M, K, (int)case_num(&g, c, "G", 128), fmt);
        else if (!strcmp(func, "emu_quant_block"))
            emu_quant_block(q, K, s, x, K, M, K, (int)case_num(&g, c, "BN", 128), (int)case_num(&g, c, "BK", 128), fmt);
        else if (!strcmp(func, "emu_quant_int8_token"))
            emu_quant_int8_token((int8_t *)q, K, s, x, K, M, K);
        else if (!strcmp(func, "emu_quant_int8_channel"))
            emu_quant_int8_channel((int8_t *)q, K, s, x, K, M, K);
        else { SCH_FAIL("%s: unknown function in the golden", what); goto done; }
        gold_compare(what, oracle, &xt, x, K, qt.data, q, qt.n, s_exp, s, ns);
    done:
        free(x); free(s_exp); free(s); free(q);
    next:
        free(func); free(name); free(xn); free(qn); free(sn); free(fs); free(oracle);
    }
    gold_close(&g);
}

/* D = epilogue(A·B^T) with exact accumulation, fp32 and bf16 output, fast driver and _ref twin. */
static void run_gemm(const char *path, emu_dtype ab, emu_scale kind) {
    gold g;
    gold_open(&g, path);
    const char *base = strrchr(path, '/') + 1;
    gtensor A = gold_tensor(&g, "A"), B = gold_tensor(&g, "B"), sa = gold_tensor(&g, "sa"), sb = gold_tensor(&g, "sb");
    gtensor D = gold_tensor(&g, "D"), Dh = gold_tensor(&g, "D_bf16");
    int M = A.shape[0], K = A.shape[1], N = B.shape[0];
    float *fsa = gold_f32(&sa), *fsb = gold_f32(&sb), *d = xcalloc((size_t)M * N, 4);
    uint16_t *dh = xcalloc((size_t)M * N, 2);
    for (int ref = 0; ref < 2; ref++)
        for (int out = 0; out < 2; out++) {
            emu_gemm_desc gd = {M, N, K, ab, A.data, K, ab, B.data, K, kind, fsa, kind, fsb,
                                out ? EMU_BF16 : EMU_F32, out ? (void *)dh : (void *)d, N, EMU_ACC_EXACT};
            const char *why = emu_gemm_check(&gd);
            char what[160];
            snprintf(what, sizeof what, "emu_gemm%s %s %s output", ref ? "_ref" : "", base, out ? "bf16" : "fp32");
            if (why) { SCH_FAIL("%s: unsupported: %s", what, why); continue; }
            if (ref) emu_gemm_ref(&gd); else emu_gemm(&gd);
            const void *exp = out ? Dh.data : D.data;
            size_t es = out ? 2 : 4, bad = 0, first = 0;
            for (size_t i = 0; i < (size_t)M * N; i++)
                if (memcmp((const char *)exp + i * es, (char *)(out ? (void *)dh : (void *)d) + i * es, es)) { if (!bad) first = i; bad++; }
            if (!bad) SCH_OK("%s: %d x %d bit-exact vs torch exact dot + fp32 epilogue", what, M, N);
            else {
                float e = emu_load(exp, out ? EMU_BF16 : EMU_F32, first), got = out ? emu_load(dh, EMU_BF16, first) : d[first];
                SCH_FAIL("%s: %zu/%d elements differ, first [%zu,%zu] expected %a got %a", what, bad, M * N, first / N, first % N, e, got);
            }
        }
    free(fsa); free(fsb); free(d); free(dh);
    gold_close(&g);
}

int main(void) {
    const char *dir = "tests/golden";
    char p[512];
    const char *bundles[] = {"act", "weights_channel", "weights_block", "vllm_edge"};
    for (size_t i = 0; i < sizeof bundles / sizeof *bundles; i++) {
        snprintf(p, sizeof p, "%s/scheme_%s.safetensors", dir, bundles[i]);
        run_bundle(p);
    }
    snprintf(p, sizeof p, "%s/scheme_gemm_e4m3_row.safetensors", dir);   run_gemm(p, EMU_E4M3, EMU_SCALE_ROW);
    snprintf(p, sizeof p, "%s/scheme_gemm_e4m3_block.safetensors", dir); run_gemm(p, EMU_E4M3, EMU_SCALE_BLOCK);
    snprintf(p, sizeof p, "%s/scheme_gemm_i8_row.safetensors", dir);     run_gemm(p, EMU_I8, EMU_SCALE_ROW);
    return sch_failures ? 1 : 0;
}
