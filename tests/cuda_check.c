/* cuda_check.c — developer checks of cuda_kernels.cu against their CPU twins on random inputs.
 * Built by `make CUDA=1 build/cuda/cuda_check` (tests/test_cuda_host.sh, tests/test_cuda_gpu.sh and
 * tests/gpu_session.sh do it); it is llama_fp8.c without its main (LLAMA_FP8_NO_MAIN) plus these checks:
 *   cuda_check --host [--seed N]     the __host__ __device__ code of cuda_kernels.cu compiled for the CPU
 *                                    (quantization, GEMM models, expf, tiled attention, the GPU backend
 *                                    through forward() on host twins) against emu/ and forward(); no GPU needed
 *   cuda_check --kernels [--seed N]  every GPU kernel on the device against its CPU twin (needs an Ada/Hopper GPU)
 * Output: one line per check, "ok NAME: ..." / "FAIL NAME: ..." / "skip NAME: ..." (the test suite's format);
 * exit status 1 when a check failed. The model-level comparison a user runs stays `llama_fp8 verify -m MODEL`. */
#define LLAMA_FP8_NO_MAIN
#include "llama_fp8.c"
#ifndef GPU_BUILD
#error "tests/cuda_check.c needs the CUDA build: make CUDA=1 build/cuda/cuda_check"
#endif

/* random inputs: values over many binades, signs, a few zeros, huge and tiny values */
static void fill_random(float *x, size_t n, uint64_t *rng, float spread) {
    for (size_t i = 0; i < n; i++) {
        float u = rng_uniform(rng) * 2 - 1, e = (rng_uniform(rng) * 2 - 1) * spread;
        x[i] = (rng_next(rng) & 63) == 0 ? 0.0f : u * exp2f(e);
    }
}
static void fill_codes(uint8_t *q, size_t n, uint64_t *rng, emu_dtype t) {   /* finite FP8 codes */
    for (size_t i = 0; i < n; i++) {
        uint8_t c;
        do c = (uint8_t)rng_next(rng); while (t == EMU_E4M3 ? (c & 0x7F) == 0x7F : (c & 0x7F) >= 0x7C);
        q[i] = c;
    }
}

/* GEMM of a Linear through the emu_gemm_desc interface: fp32 activations × stored weights, fp32 fmaf
 * chain — the bits of forward()'s matmul() (emu_gemm_f32). */
static emu_gemm_desc linear_desc(float *out, const float *in, int T, const Tensor *W) {
    emu_gemm_desc g;
    memset(&g, 0, sizeof g);
    g.M = T; g.N = W->rows; g.K = W->cols;
    g.a_type = EMU_F32; g.A = in; g.lda = W->cols;
    g.b_type = W->dtype; g.B = W->data; g.ldb = W->cols;
    g.d_type = EMU_F32; g.D = out; g.ldd = W->rows;
    g.accum = EMU_ACC_FP32;
    return g;
}

/* ---- verify --host: the GPU's formulas, compiled for the CPU, against their CPU twins ---- */
static void verify_host(uint64_t seed) {
    uint64_t rng = seed;
    emu_dtype fmts[2] = {EMU_E4M3, EMU_E5M2};
    /* quantization: every tile rule, both formats, a row stride wider than K, spreads that saturate */
    for (int f = 0; f < 2; f++) {
        emu_dtype t = fmts[f];
        int M = 37, K = 300, ldx = 311, ldq = 305, ng = (K + 127) / 128;
        float *x = xmalloc((size_t)M * ldx * 4), s1[64 * 4], s2[64 * 4];
        uint8_t *q1 = xcalloc((size_t)M * ldq, 1), *q2 = xcalloc((size_t)M * ldq, 1);
        fill_random(x, (size_t)M * ldx, &rng, f ? 40.0f : 20.0f);
        for (int k = 0; k < K; k++) x[5 * ldx + k] = 0.0f;            /* an all-zero row: the scale floors */
        x[7 * ldx + 3] = 1e30f; x[8 * ldx + 4] = -1e-30f;
        x[9 * ldx + 10] = NAN; x[10 * ldx + 200] = -NAN;            /* NaN inputs: each rule's clamp decides the code */
        struct { const char *name; int TR, TC, rule; float param; } r[] = {
            {"token", 1, K, 0, 0.0f}, {"token_ub", 1, K, 0, 1200.0f}, {"channel", 1, K, 1, 0.0f}, {"group128", 1, 128, 2, 0.0f}, {"block128", 128, 128, 3, 0.0f}};
        for (int i = 0; i < 5; i++) {
            memset(q1, 0, (size_t)M * ldq); memset(q2, 0, (size_t)M * ldq);
            cu_host_quant_tiles(q1, ldq, s1, x, ldx, M, K, r[i].TR, r[i].TC, r[i].rule, t, r[i].param);
            int nsc = M;
            switch (i) {
            case 0: case 1: emu_quant_token(q2, ldq, s2, x, ldx, M, K, t, r[i].param); break;
            case 2: emu_quant_channel(q2, ldq, s2, x, ldx, M, K, t); break;
            case 3: emu_quant_group(q2, ldq, s2, x, ldx, M, K, 128, t); nsc = M * ng; break;
            default: emu_quant_block(q2, ldq, s2, x, ldx, M, K, 128, 128, t); nsc = 1 * ng; break;
            }
            size_t dq = bits_diff(q1, q2, (size_t)M * ldq, 1), ds = bits_diff(s1, s2, nsc, 4);
            char name[64];
            snprintf(name, sizeof name, "cuda_host_quant_%s_%s", r[i].name, f ? "e5m2" : "e4m3");
            vreport(!dq && !ds, name, "%dx%d, ld %d: %zu code and %zu scale differences with emu_quant_*", M, K, ldx, dq, ds);
        }
        free(x); free(q1); free(q2);
    }
    /* GEMM models: the per-element code of k_gemm_model vs emu_gemm_ref, every model and scale layout */
    {
        int M = 9, N = 11, K = 333;
        for (int f = 0; f < 3; f++) {
            emu_dtype ta = f == 1 ? EMU_E5M2 : EMU_E4M3, tb = f == 0 ? EMU_E4M3 : EMU_E5M2;
            uint8_t *A = xmalloc((size_t)M * K), *Bm = xmalloc((size_t)N * K);
            fill_codes(A, (size_t)M * K, &rng, ta); fill_codes(Bm, (size_t)N * K, &rng, tb);
            float sa[9 * 3], sb[11 * 3], d1[9 * 11], d2[9 * 11];
            for (int i = 0; i < 27; i++) sa[i] = 0.001f + rng_uniform(&rng);
            for (int i = 0; i < 33; i++) sb[i] = 0.001f + rng_uniform(&rng);
            for (int acc = 0; acc < EMU_ACC_COUNT; acc++)
                for (int sk = 0; sk < 3; sk++) {
                    emu_gemm_desc g;
                    memset(&g, 0, sizeof g);
                    g.M = M; g.N = N; g.K = K; g.a_type = ta; g.A = A; g.lda = K; g.b_type = tb; g.B = Bm; g.ldb = K;
                    g.a_scale_kind = sk == 0 ? EMU_SCALE_ROW : sk == 1 ? EMU_SCALE_TENSOR : EMU_SCALE_BLOCK; g.a_scale = sa;
                    g.b_scale_kind = sk == 0 ? EMU_SCALE_ROW : sk == 1 ? EMU_SCALE_TENSOR : EMU_SCALE_BLOCK; g.b_scale = sb;
                    g.d_type = sk == 1 ? EMU_BF16 : EMU_F32; g.ldd = N; g.accum = (emu_accum)acc;
                    if (emu_gemm_check(&g)) continue;
                    g.D = d1; cu_host_gemm_model(&g);
                    g.D = d2; emu_gemm_ref(&g);
                    size_t n = (size_t)M * N, d = bits_diff(d1, d2, n, g.d_type == EMU_BF16 ? 2 : 4);
                    char name[96];
                    snprintf(name, sizeof name, "cuda_host_gemm_%s_%sx%s_%s", emu_accum_names[acc], ta == EMU_E4M3 ? "e4m3" : "e5m2",
                             tb == EMU_E4M3 ? "e4m3" : "e5m2", sk == 0 ? "row" : sk == 1 ? "tensor_bf16" : "block");
                    vreport(!d, name, "%dx%dx%d: %zu of %zu outputs differ from emu_gemm_ref", M, N, K, d, n);
                }
            free(A); free(Bm);
        }
    }
    /* expf: the device port of glibc's expf against this machine's libm (every 251st float) */
    {
        size_t n = 0, d = 0, ds = 0;
        uint32_t u = 0;
        do {
            float x, a, b;
            memcpy(&x, &u, 4);
            a = expf(x); b = cu_host_expf(x);
            if (memcmp(&a, &b, 4) && !(isnan(a) && isnan(b))) d++;
            float sa_ = x / (1.0f + expf(-x)), sb_ = cu_host_silu(x);
            if (memcmp(&sa_, &sb_, 4) && !(isnan(sa_) && isnan(sb_))) ds++;
            n++;
            u += 251;
        } while (u >= 251);
        vreport(!d, "cuda_host_expf", "%zu of %zu floats (every 251st bit pattern) differ from libm expf", d, n);
        vreport(!ds, "cuda_host_silu", "%zu of %zu floats differ from x / (1 + expf(-x))", ds, n);
    }
    /* attention through the GPU path (tiled kernel, simulated block by block) against forward()'s attention:
     * head layouts of Llama 3.1 8B (32/8, hd 128), MHA and 16 heads per kv head, a KV-cache offset */
    {
        int cfgs[4][5] = {{32, 8, 128, 37, 29}, {8, 8, 64, 21, 0}, {16, 1, 64, 9, 40}, {32, 8, 128, 5, 0}};   /* nh, nkv, hd, T, pos0 */
        cud_twin(1);
        for (int c = 0; c < 4; c++) {
            for (int bf16 = 0; bf16 < 2; bf16++) {
                int nh = cfgs[c][0], nkv = cfgs[c][1], hd = cfgs[c][2], T = cfgs[c][3], pos0 = cfgs[c][4], np = pos0 + T;
                float *q1 = xmalloc((size_t)T * nh * hd * 4), *q2 = xmalloc((size_t)T * nh * hd * 4);
                float *kc = xmalloc((size_t)np * nkv * hd * 4), *vc = xmalloc((size_t)np * nkv * hd * 4);
                fill_random(q1, (size_t)T * nh * hd, &rng, 3.0f); fill_random(kc, (size_t)np * nkv * hd, &rng, 3.0f); fill_random(vc, (size_t)np * nkv * hd, &rng, 3.0f);
                memcpy(q2, q1, (size_t)T * nh * hd * 4);
                Scheme q = scheme_by_name(bf16 ? "bf16" : "fp32");
                float sc = 1.0f / sqrtf((float)hd);
                cud_attention(bf16, q1, kc, vc, T, pos0, nh, nkv, hd, sc);
                RunState rs;
                memset(&rs, 0, sizeof rs);
                rs.max_pos = np;
                rs.att = xmalloc((size_t)omp_get_max_threads() * np * (nh / nkv) * sizeof(float));   /* as runstate_init */
                attention(&rs, &q, q2, kc, vc, T, pos0, nh, nkv, hd, sc);
                free(rs.kt);
                size_t d = bits_diff(q1, q2, (size_t)T * nh * hd, 4);
                char name[96];
                snprintf(name, sizeof name, "cuda_host_attention_tiled_%dx%d_hd%d_T%d_at%d_%s", nh, nkv, hd, T, pos0, bf16 ? "bf16" : "fp32");
                vreport(!d, name, "T %d at position %d: %zu of %zu outputs differ from forward()'s attention", T, pos0, d, (size_t)T * nh * hd);
                free(q1); free(q2); free(kc); free(vc); free(rs.att);
            }
        }
        cud_twin(0);
    }
    /* forward() op by op, every op also through the GPU path's host twins (verify_ops: the kernels'
     * formulas, the GPU's buffers and dispatch), and that sequence of ops against forward() itself */
    {
        Model *m = model_load("(synthetic)");
        int T = 24, *ids = xmalloc(T * sizeof(int));
        for (int t = 0; t < T; t++) ids[t] = (int)(rng_next(&rng) % m->c.vocab_size);
        const char *names[] = {"fp32", "bf16", "fp8-w", "w8a8", "w8a8-block", "int8"};
        cud_twin(1);
        for (int i = 0; i < 6; i++) {
            SchemeOptions so = {.kv = i == 3 ? "fp8-e4m3" : NULL, .quant_lm_head = i == 3};
            Scheme q = scheme_make(names[i], &so);
            const Model *mq = model_for_scheme(m, &q);
            OpStat st[OP_COUNT];
            memset(st, 0, sizeof st);
            float *lt = verify_ops(mq, &q, ids, T, st, 0);
            RunState s;
            runstate_init(&s, &m->c, T, T);
            forward(mq, &s, &q, ids, T, 0, 0);
            size_t n = (size_t)T * m->c.vocab_size, d = bits_diff(lt, s.logits, n, 4);
            char name[160];
            snprintf(name, sizeof name, "cuda_host_ops_sequence_%s", q.name);
            vreport(!d, name, "synthetic model, %d tokens, forward() op by op: %zu of %zu logits differ from forward()", T, d, n);
            snprintf(name, sizeof name, "cuda_host_op_%s ", q.name);
            report_ops(st, &q, name);
            free(lt);
            runstate_free(&s);
        }
        gpu_forward_release();
        cud_twin(0);
        free(ids);
        model_free(m);
    }
    /* the resident forward pass (gpu_forward) in twin mode: every cud_* op on host memory by the
     * kernels' own formulas, orchestrated exactly as on the GPU — logits and layer outputs vs forward() */
    {
        Model *m = model_load("(synthetic)");
        int L = m->c.n_layers, T = 20, *ids = xmalloc(T * sizeof(int));
        for (int t = 0; t < T; t++) ids[t] = (int)(rng_next(&rng) % m->c.vocab_size);
        ScaleSet ss = {0};                       /* static scales for w8a8-static and the FP8 KV cache */
        ss.n_layers = L; ss.source = "verify";
        ss.act = xcalloc(L, sizeof *ss.act); ss.k_amax = xcalloc(L, sizeof(float)); ss.v_amax = xcalloc(L, sizeof(float));
        for (int l = 0; l < L; l++) {
            for (int site = 0; site < N_SITES; site++) ss.act[l][site] = 0.5f + 0.25f * site + 0.1f * l;
            ss.k_amax[l] = 2.0f + l; ss.v_amax[l] = 0.75f + 0.5f * l;
        }
        ss.lm_head = 3.0f;
        struct { const char *scheme, *act, *wfmt, *kv, *accum; int lm_head, scales; } cfg[] = {
            {"fp32"}, {"bf16"}, {"fp8-w"}, {"w8a8"}, {"w8a8", NULL, NULL, "fp8-e4m3", NULL, 1, 1}, {"w8a8", "e5m2", "e5m2", NULL, "hopper"},
            {"w8a8", NULL, NULL, NULL, "cublaslt"}, {"w8a8-static", NULL, NULL, "fp8-e5m2", NULL, 1, 1}, {"w8a8-block"},
            {"w8a8-block", NULL, NULL, NULL, "ada"}, {"int8"}};
        cud_twin(1);
        for (int tied = 0; tied < 2; tied++) {
            if (tied) {   /* the same model with tied embeddings (stories260K, Llama 3.2 1B): lm_head is the embedding table */
                gpu_forward_release();
                model_free(m);
                m = model_load("(synthetic)");
                m->lm_head = m->tok_embeddings;
            }
            for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
                if (tied && i != 0 && i != 1 && i != 4) continue;   /* fp32, bf16, w8a8 with a quantized lm_head */
                SchemeOptions so = {.act_format = cfg[i].act, .weight_format = cfg[i].wfmt, .kv = cfg[i].kv, .accum = cfg[i].accum,
                                    .quant_lm_head = cfg[i].lm_head, .scales = cfg[i].scales ? &ss : NULL};
                Scheme q = scheme_make(cfg[i].scheme, &so);
                ResidentCmp r = resident_compare(model_for_scheme(m, &q), &q, ids, T);
                char name[160];
                snprintf(name, sizeof name, "cuda_host_resident_%s%s", q.name, tied ? "_tied" : "");
                vreport(!r.diff && !r.layer_diff, name, "gpu_forward (twin) vs forward(), %d tokens in 2 calls: %zu of %zu logits, %zu of %zu layer outputs differ",
                        T, r.diff, r.n, r.layer_diff, r.layer_n);
            }
        }
        gpu_forward_release();
        cud_twin(0);
        free(ss.act); free(ss.k_amax); free(ss.v_amax); free(ids);
        model_free(m);
    }
}

/* ---- verify --kernels: every GPU kernel against its CPU twin on random inputs ---- */
static void verify_kernels(uint64_t seed) {
    uint64_t rng = seed;
    emu_dtype fmts[2] = {EMU_E4M3, EMU_E5M2};
    for (int f = 0; f < 2; f++) {   /* quantization, bit for bit */
        emu_dtype t = fmts[f];
        int M = 200, K = 4096 + 64, ld = K + 16, ng = (K + 127) / 128, nb = ((M + 127) / 128) * ng;
        float *x = xmalloc((size_t)M * ld * 4), *s1 = xmalloc((size_t)M * ng * 4), *s2 = xmalloc((size_t)M * ng * 4);
        uint8_t *q1 = xcalloc((size_t)M * ld, 1), *q2 = xcalloc((size_t)M * ld, 1);
        fill_random(x, (size_t)M * ld, &rng, f ? 40.0f : 20.0f);
        for (int k = 0; k < K; k++) x[3 * ld + k] = 0.0f;
        const char *names[6] = {"token", "channel", "group128", "block128", "tensor", "tensor_dynamic"};
        for (int i = 0; i < 6; i++) {
            int nsc = i == 2 ? M * ng : i == 3 ? nb : i >= 4 ? 1 : M;
            float st = 0.37f, r1 = 0, r2 = 0;
            switch (i) {
            case 0: cu_quant_token(q1, ld, s1, x, ld, M, K, t, 0); emu_quant_token(q2, ld, s2, x, ld, M, K, t, 0); break;
            case 1: cu_quant_channel(q1, ld, s1, x, ld, M, K, t); emu_quant_channel(q2, ld, s2, x, ld, M, K, t); break;
            case 2: cu_quant_group(q1, ld, s1, x, ld, M, K, 128, t); emu_quant_group(q2, ld, s2, x, ld, M, K, 128, t); break;
            case 3: cu_quant_block(q1, ld, s1, x, ld, M, K, 128, 128, t); emu_quant_block(q2, ld, s2, x, ld, M, K, 128, 128, t); break;
            case 4: cu_quant_tensor(q1, ld, x, ld, M, K, t, st); emu_quant_tensor(q2, ld, x, ld, M, K, t, st); s1[0] = s2[0] = st; break;
            default: r1 = cu_quant_tensor_dynamic(q1, ld, x, ld, M, K, t); r2 = emu_quant_tensor_dynamic(q2, ld, x, ld, M, K, t); s1[0] = r1; s2[0] = r2; break;
            }
            size_t dq = bits_diff(q1, q2, (size_t)M * ld, 1), ds = bits_diff(s1, s2, nsc, 4);
            char name[64];
            snprintf(name, sizeof name, "cuda_quant_%s_%s", names[i], f ? "e5m2" : "e4m3");
            vreport(!dq && !ds, name, "%dx%d: %zu code and %zu scale differences with emu", M, K, dq, ds);
        }
        free(x); free(s1); free(s2); free(q1); free(q2);
    }
    /* GEMMs */
    int M = 96, N = 160, K = 1024;
    for (int f = 0; f < 2; f++) {
        emu_dtype t = fmts[f];
        uint8_t *A = xmalloc((size_t)M * K), *Bm = xmalloc((size_t)N * K);
        fill_codes(A, (size_t)M * K, &rng, t); fill_codes(Bm, (size_t)N * K, &rng, t);
        int nk = K / 128;
        float *sa = xmalloc((size_t)M * nk * 4), *sb = xmalloc((size_t)((N + 127) / 128) * nk * 4 + (size_t)N * 4);
        for (int i = 0; i < M * nk; i++) sa[i] = 0.01f + rng_uniform(&rng);
        for (int i = 0; i < ((N + 127) / 128) * nk + N; i++) sb[i] = 0.01f + rng_uniform(&rng);
        float *dg = xmalloc((size_t)M * N * 4), *dc = xmalloc((size_t)M * N * 4);
        for (int sk = 0; sk < 2; sk++)
            for (int acc = 0; acc < EMU_ACC_COUNT; acc++)
                for (int impl = 0; impl < 4; impl++) {
                    emu_gemm_desc g;
                    memset(&g, 0, sizeof g);
                    g.M = M; g.N = N; g.K = K; g.a_type = t; g.A = A; g.lda = K; g.b_type = t; g.B = Bm; g.ldb = K;
                    g.a_scale_kind = g.b_scale_kind = sk ? EMU_SCALE_BLOCK : EMU_SCALE_ROW; g.a_scale = sa; g.b_scale = sb;
                    g.d_type = EMU_F32; g.ldd = N; g.accum = (emu_accum)acc;
                    char name[96];
                    snprintf(name, sizeof name, "cuda_gemm_%s_%s_%s_%s", impl == 0 ? "model" : impl == 1 ? "mma" : impl == 2 ? "cublaslt" : "wgmma",
                             emu_accum_names[acc], f ? "e5m2" : "e4m3", sk ? "block" : "row");
                    if (emu_gemm_check(&g)) continue;
                    memset(dg, 0xFF, (size_t)M * N * 4);   /* poison: an unwritten output shows as NaN */
                    g.D = dg;
                    const char *why = cu_gemm(&g, impl);
                    if (why) { printf("skip %s: %s\n", name, why); continue; }
                    g.D = dc;
                    emu_gemm(&g);
                    size_t d = bits_diff(dg, dc, (size_t)M * N, 4);
                    double mu, mr;
                    err_stats(dg, dc, (size_t)M * N, &mu, &mr);
                    if (impl == 0) { vreport(!d, name, "%dx%dx%d: %zu of %d outputs differ from emu_gemm", M, N, K, d, M * N); continue; }
                    /* Tensor core (mma) and cuBLASLt: bit agreement with the emu model is the finding, reported;
                     * pass/fail is a bound against the exact result. Derivation: each block step of the
                     * tensor-core model (≤ K/16 steps, blocks of ≥ 16) truncates to 13 fraction bits below the
                     * largest exponent present, an error < 2^-12 · Σ|a_k b_k| (every partial sum and product is
                     * bounded by it); fp32 promotions and the epilogue add < 2^-22 relative each. So
                     * |D − exact| ≤ (K/16 + 2) · 2^-12 · Σ_k |s_a a_k · s_b b_k| (scales applied per group). */
                    size_t bad = 0;
                    double worst = 0;
                    for (int mm = 0; mm < M; mm++)
                        for (int nn = 0; nn < N; nn++) {
                            double ex = 0, ab = 0;
                            for (int k = 0; k < K; k++) {
                                int gi = k / 128;
                                double s_a = sk ? sa[mm * nk + gi] : sa[mm], s_b = sk ? sb[(nn / 128) * nk + gi] : sb[nn];
                                double p = (double)emu_fp8_decode(A[(size_t)mm * K + k], t) * emu_fp8_decode(Bm[(size_t)nn * K + k], t) * s_a * s_b;
                                ex += p; ab += fabs(p);
                            }
                            double e = fabs(dg[(size_t)mm * N + nn] - ex), bound = (K / 16.0 + 2) * ldexp(1, -12) * ab + 1e-30;
                            if (!(e <= bound)) bad++;
                            if (e / bound > worst) worst = e / bound;
                        }
                    printf("%s %s: %dx%dx%d: %zu of %d outputs bit-identical to emu '%s' (max %.3g ulp, max rel %.3g); "
                           "error vs exact within the bound: %s (worst %.2f of it)\n", bad ? "FAIL" : "ok", name, M, N, K, (size_t)M * N - d, M * N,
                           emu_accum_names[acc], mu, mr, bad ? "NO" : "yes", worst);
                    vfails += bad != 0;
                }
        free(A); free(Bm); free(sa); free(sb); free(dg); free(dc);
    }
    /* the integer kernel: INT8 × INT8 exact, and E4M3 with NaN codes (a NaN in row m of A / row n of B) */
    for (int it = 0; it < 2; it++) {
        int m_ = 70, n_ = 90, k_ = 1000;
        emu_dtype t = it ? EMU_E4M3 : EMU_I8;
        uint8_t *a = xmalloc((size_t)m_ * k_), *b = xmalloc((size_t)n_ * k_);
        float *sa = xmalloc(m_ * 4), *sb = xmalloc(n_ * 4), *o1 = xmalloc((size_t)m_ * n_ * 4), *o2 = xmalloc((size_t)m_ * n_ * 4);
        if (it) { fill_codes(a, (size_t)m_ * k_, &rng, t); fill_codes(b, (size_t)n_ * k_, &rng, t); a[5 * k_ + 17] = 0x7F; b[33 * k_ + 999] = 0xFF; }
        else for (size_t i = 0; i < (size_t)(m_ > n_ ? m_ : n_) * k_; i++) { if (i < (size_t)m_ * k_) a[i] = (uint8_t)rng_next(&rng); if (i < (size_t)n_ * k_) b[i] = (uint8_t)rng_next(&rng); }
        for (int i = 0; i < m_; i++) sa[i] = 0.01f + rng_uniform(&rng);
        for (int i = 0; i < n_; i++) sb[i] = 0.01f + rng_uniform(&rng);
        emu_gemm_desc g = {.M = m_, .N = n_, .K = k_, .a_type = t, .A = a, .lda = k_, .b_type = t, .B = b, .ldb = k_,
                           .a_scale_kind = EMU_SCALE_ROW, .a_scale = sa, .b_scale_kind = EMU_SCALE_ROW, .b_scale = sb,
                           .d_type = EMU_F32, .D = o1, .ldd = n_, .accum = EMU_ACC_EXACT};
        memset(o1, 0xFF, (size_t)m_ * n_ * 4);
        const char *why = cu_gemm(&g, 0);
        if (why) fatal("verify: %s", why);
        g.D = o2;
        emu_gemm(&g);
        size_t dd = bits_diff(o1, o2, (size_t)m_ * n_, 4), nans = 0;
        for (size_t i = 0; i < (size_t)m_ * n_; i++) nans += isnan(o1[i]);
        vreport(!dd && nans == (size_t)(it ? m_ + n_ - 1 : 0), it ? "cuda_gemm_exact_e4m3_nan_codes" : "cuda_gemm_exact_int8",
                "%dx%dx%d: %zu of %d outputs differ from emu_gemm exact (%zu NaN outputs)", m_, n_, k_, dd, m_ * n_, nans);
        free(a); free(b); free(sa); free(sb); free(o1); free(o2);
    }
    /* fp32 activations × bf16 / fp32 weights (the fp32 and bf16 schemes' Linear): emu_gemm_f32 bit for bit */
    for (int bt = 0; bt < 2; bt++) {
        int m_ = 70, n_ = 90, k_ = 1000;
        float *a = xmalloc((size_t)m_ * k_ * 4), *w = xmalloc((size_t)n_ * k_ * 4), *o1 = xmalloc((size_t)m_ * n_ * 4), *o2 = xmalloc((size_t)m_ * n_ * 4);
        fill_random(a, (size_t)m_ * k_, &rng, 6.0f); fill_random(w, (size_t)n_ * k_, &rng, 6.0f);
        uint16_t *wb = xmalloc((size_t)n_ * k_ * 2);
        for (size_t i = 0; i < (size_t)n_ * k_; i++) wb[i] = bf16_from_float(w[i]);
        Tensor W = {bt ? (const void *)w : (const void *)wb, bt ? EMU_F32 : EMU_BF16, n_, k_};
        emu_gemm_desc d = linear_desc(o1, a, m_, &W);
        memset(o1, 0xFF, (size_t)m_ * n_ * 4);
        const char *why = cu_gemm(&d, 0);
        if (why) fatal("verify: %s", why);
        emu_gemm_f32(m_, n_, k_, a, k_, W.data, W.dtype, k_, o2, n_);
        size_t dd = bits_diff(o1, o2, (size_t)m_ * n_, 4);
        vreport(!dd, bt ? "cuda_gemm_f32_f32" : "cuda_gemm_f32_bf16", "%dx%dx%d: %zu of %d outputs differ from emu_gemm_f32", m_, n_, k_, dd, m_ * n_);
        free(a); free(w); free(o1); free(o2); free(wb);
    }
    /* elementwise ops: GPU vs the host twin on the synthetic model's shapes is done by `verify -m`;
     * here the standalone kernels on random data */
    for (int bf16 = 0; bf16 < 2; bf16++) {
        int T = 33, n = 4096, hd = 128, nh = 8, nkv = 2;
        float *x = xmalloc((size_t)T * n * 4), *w = xmalloc(n * 4), *o1 = xmalloc((size_t)T * n * 4), *o2 = xmalloc((size_t)T * n * 4);
        fill_random(x, (size_t)T * n, &rng, 8.0f); fill_random(w, n, &rng, 2.0f);
        Scheme q_ = scheme_by_name(bf16 ? "bf16" : "fp32"); const Scheme *q = &q_;
        cu_rmsnorm(bf16, o1, x, w, T, n, 1e-5f);
        rmsnorm(q, o2, x, w, T, n, 1e-5f);
        size_t d = bits_diff(o1, o2, (size_t)T * n, 4);
        vreport(!d, bf16 ? "cuda_rmsnorm_bf16" : "cuda_rmsnorm_fp32", "%dx%d: %zu differ from rmsnorm()", T, n, d);
        float *cs = xmalloc((size_t)T * hd / 2 * 4), *sn = xmalloc((size_t)T * hd / 2 * 4);
        for (int i = 0; i < T * hd / 2; i++) { cs[i] = B(q, (float)cos(i * 0.01)); sn[i] = B(q, (float)sin(i * 0.01)); }
        memcpy(o1, x, (size_t)T * nh * hd * 4); memcpy(o2, x, (size_t)T * nh * hd * 4);
        cu_rope(bf16, o1, T, nh, hd, cs, sn);
        rope(NULL, q, o2, T, nh, hd, cs, sn);
        d = bits_diff(o1, o2, (size_t)T * nh * hd, 4);
        vreport(!d, bf16 ? "cuda_rope_bf16" : "cuda_rope_fp32", "%dx%dx%d: %zu differ from rope()", T, nh, hd, d);
        float *kc = xmalloc((size_t)T * nkv * hd * 4), *vc = xmalloc((size_t)T * nkv * hd * 4);
        fill_random(kc, (size_t)T * nkv * hd, &rng, 3.0f); fill_random(vc, (size_t)T * nkv * hd, &rng, 3.0f);
        memcpy(o1, x, (size_t)T * nh * hd * 4); memcpy(o2, x, (size_t)T * nh * hd * 4);
        /* attention: the tiled kernel, the one-block-per-row kernel, and that kernel's long-context form
         * (probabilities in global memory) at position 60000 */
        for (int v = 0; v < 3; v++) {
            int Tv = v == 2 ? 2 : T, p0 = v == 2 ? 60000 : 0, np = p0 + Tv;
            float *kv = v == 2 ? xmalloc((size_t)np * nkv * hd * 4) : kc, *vv = v == 2 ? xmalloc((size_t)np * nkv * hd * 4) : vc;
            if (v == 2) { fill_random(kv, (size_t)np * nkv * hd, &rng, 3.0f); fill_random(vv, (size_t)np * nkv * hd, &rng, 3.0f); }
            memcpy(o1, x, (size_t)Tv * nh * hd * 4); memcpy(o2, x, (size_t)Tv * nh * hd * 4);
            if (v) setenv("LLAMA_FP8_ATT_SIMPLE", "1", 1);
            cu_attention(bf16, o1, kv, vv, Tv, p0, nh, nkv, hd, 1.0f / sqrtf((float)hd));
            unsetenv("LLAMA_FP8_ATT_SIMPLE");
            RunState rs;
            memset(&rs, 0, sizeof rs);
            rs.max_pos = np;
            rs.att = xmalloc((size_t)omp_get_max_threads() * np * (nh / nkv) * sizeof(float));   /* as runstate_init */
            attention(&rs, q, o2, kv, vv, Tv, p0, nh, nkv, hd, 1.0f / sqrtf((float)hd));
            free(rs.att); free(rs.kt);
            d = bits_diff(o1, o2, (size_t)Tv * nh * hd, 4);
            char an[64];
            snprintf(an, sizeof an, "cuda_attention_%s_%s", v == 0 ? "tiled" : v == 1 ? "rows" : "long_context", bf16 ? "bf16" : "fp32");
            vreport(!d, an, "T %d at position %d, %d heads / %d kv heads, hd %d: %zu differ from forward()'s attention", Tv, p0, nh, nkv, hd, d);
            if (v == 2) { free(kv); free(vv); }
        }
        memcpy(o1, x, (size_t)T * n * 4); memcpy(o2, x, (size_t)T * n * 4);
        cu_swiglu(bf16, o1, w, n);
        for (int i = 0; i < n; i++) o2[i] = B(q, B(q, o2[i] / (1.0f + expf(-o2[i]))) * w[i]);
        d = bits_diff(o1, o2, n, 4);
        vreport(!d, bf16 ? "cuda_swiglu_bf16" : "cuda_swiglu_fp32", "%d: %zu differ from forward()'s formula", n, d);
        free(x); free(w); free(o1); free(o2); free(cs); free(sn); free(kc); free(vc);
    }
    {   /* NLL: not bit-exact (CUDA's exp/log in double); bound 1e-12 relative: both sides are double
         * sums of V ≤ 2^17 terms with ≤ 1 ulp (2^-52) functions, error ≤ V·2^-52 ≈ 3e-11 worst case */
        int T = 7, V = 32000, *tg = xmalloc(T * sizeof(int));
        float *lg = xmalloc((size_t)T * V * 4);
        double *nl = xmalloc(T * 8), worst = 0;
        fill_random(lg, (size_t)T * V, &rng, 4.0f);
        for (int t = 0; t < T; t++) tg[t] = (int)(rng_next(&rng) % V);
        cu_nll(nl, lg, T, V, tg);
        for (int t = 0; t < T; t++) {
            double ref = -log_prob(lg + (size_t)t * V, V, tg[t]), rel = fabs(nl[t] - ref) / fabs(ref);
            if (rel > worst) worst = rel;
        }
        vreport(worst < 1e-10, "cuda_nll", "%d rows of %d logits: max relative difference %.3g from log_prob()", T, V, worst);
        free(tg); free(lg); free(nl);
    }
}

int main(int argc, char **argv) {
    int host = 0, kernels = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host")) host = 1;
        else if (!strcmp(argv[i], "--kernels")) kernels = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = (uint64_t)parse_long_arg("--seed", argv[++i], 1, LONG_MAX);
        else fatal("cuda_check: usage: cuda_check --host | --kernels [--seed N] (unknown option '%s')", argv[i]);
    }
    if (host == kernels) fatal("cuda_check: give one of --host (no GPU needed) or --kernels (on the GPU)");
    if (host) {
        printf("cuda_check --host: the __host__ __device__ code of cuda_kernels.cu run on the CPU (device: %s)\n", device_description());
        verify_host(seed);
    } else {
        if (!gpu_active()) fatal("cuda_check --kernels: no GPU to check (%s)", gpu_why);
        printf("device: %s\n", device_description());
        verify_kernels(seed);
    }
    printf("cuda_check %s: %s\n", host ? "--host" : "--kernels", vfails ? "FAILED" : "all checks passed");
    return vfails ? 1 : 0;
}
