/* tests/schemes_golden.h — reads the scheme goldens (tests/golden/scheme_*.safetensors, written by
 * tests/gen_scheme_goldens.py) and compares results with them. Include after llama_fp8.c (uses its
 * mfile, json and fatal). A golden file is a plain safetensors file: 8-byte little-endian header
 * length, JSON header {name: {dtype, shape, data_offsets}}, "__metadata__": {"cases": "<JSON list>"}. */
#ifndef SCHEMES_GOLDEN_H
#define SCHEMES_GOLDEN_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int sch_failures;
#define SCH_OK(...)   do { printf("ok sch: "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define SCH_FAIL(...) do { printf("FAIL sch: "); printf(__VA_ARGS__); printf("\n"); sch_failures++; } while (0)

typedef struct {
    mfile f;
    json hdr;          /* the safetensors header */
    json cases;        /* parsed metadata "cases" (J_ARR), or empty */
    char *cases_src;
    size_t base;       /* offset of the byte buffer */
} gold;

typedef struct {
    const void *data;
    emu_dtype dtype;   /* EMU_F32, EMU_BF16, EMU_I8, or EMU_E4M3 for U8 (raw codes) */
    int ndim, shape[4];
    size_t n;          /* element count */
} gtensor;

static void gold_open(gold *g, const char *path) {
    memset(g, 0, sizeof *g);
    mfile_open_or_die(&g->f, path);
    if (g->f.size < 8) fatal("%s: not a safetensors file", path);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | g->f.data[i];
    if (hl > g->f.size - 8) fatal("%s: header length %llu past the end", path, (unsigned long long)hl);
    if (json_parse(&g->hdr, (const char *)g->f.data + 8, hl) != 0) fatal("%s: header: %s", path, g->hdr.err);
    g->base = 8 + hl;
    int cs = json_get(&g->hdr, json_get(&g->hdr, 0, "__metadata__"), "cases");
    if (cs >= 0) {
        size_t n;
        g->cases_src = json_string_dup(&g->hdr, cs, &n);
        if (json_parse(&g->cases, g->cases_src, n) != 0) fatal("%s: metadata cases: %s", path, g->cases.err);
    }
}

static void gold_close(gold *g) {
    json_free(&g->hdr); json_free(&g->cases); free(g->cases_src); mfile_close(&g->f);
}

static gtensor gold_tensor(const gold *g, const char *name) {
    gtensor t = {0};
    int k = json_get(&g->hdr, 0, name);
    if (k < 0) fatal("%s: no tensor '%s'", g->f.path, name);
    int dt = json_get(&g->hdr, k, "dtype"), sh = json_get(&g->hdr, k, "shape"), off = json_get(&g->hdr, k, "data_offsets");
    size_t es;
    if (json_streq(&g->hdr, dt, "F32")) t.dtype = EMU_F32, es = 4;
    else if (json_streq(&g->hdr, dt, "BF16")) t.dtype = EMU_BF16, es = 2;
    else if (json_streq(&g->hdr, dt, "I8")) t.dtype = EMU_I8, es = 1;
    else if (json_streq(&g->hdr, dt, "U8")) t.dtype = EMU_E4M3, es = 1;
    else fatal("%s: tensor '%s': unexpected dtype", g->f.path, name);
    if (sh < 0 || g->hdr.t[sh].type != J_ARR || g->hdr.t[sh].n > 4) fatal("%s: tensor '%s': bad shape", g->f.path, name);
    t.ndim = g->hdr.t[sh].n; t.n = 1;
    for (int i = 0; i < t.ndim; i++) {
        long long d;
        if (json_integer(&g->hdr, json_at(&g->hdr, sh, i), 0, 1 << 30, &d) != 0) fatal("%s: '%s': bad shape", g->f.path, name);
        t.shape[i] = (int)d; t.n *= (size_t)d;
    }
    long long b, e;
    if (json_integer(&g->hdr, json_at(&g->hdr, off, 0), 0, (long long)g->f.size, &b) != 0 ||
        json_integer(&g->hdr, json_at(&g->hdr, off, 1), b, (long long)g->f.size, &e) != 0 ||
        (size_t)(e - b) != t.n * es || g->base + (size_t)e > g->f.size)
        fatal("%s: tensor '%s': bad data_offsets", g->f.path, name);
    /* the goldens' headers are not padded, so in the mapping a tensor sits at any byte offset: it is
     * handed out as an aligned copy (kept until the test exits) */
    void *al = xmalloc(t.n * es + 1);
    memcpy(al, g->f.data + g->base + b, t.n * es);
    t.data = al;
    return t;
}

/* The tensor as a new fp32 array (exact for F32 / BF16). */
static float *gold_f32(const gtensor *t) {
    float *x = xmalloc(t->n * sizeof(float));
    for (size_t i = 0; i < t->n; i++) x[i] = emu_load(t->data, t->dtype, i);
    return x;
}

/* String / number fields of case c. */
static char *case_str(const gold *g, int c, const char *key) {
    return json_string_dup(&g->cases, json_get(&g->cases, c, key), NULL);
}
static double case_num(const gold *g, int c, const char *key, double dflt) {
    double v;
    return json_number(&g->cases, json_get(&g->cases, c, key), &v) == 0 ? v : dflt;
}

static int bits_eq(float a, float b) { return memcmp(&a, &b, 4) == 0; }

/* Compares codes (n elements, row length cols) and scales with the golden. Prints two lines:
 *  1. codes and scales, where a code that differs only in the sign of a zero (0x00 vs 0x80) is not
 *     counted — so that line says whether every rounding matches;
 *  2. (only when the input holds zeros) the sign of zero itself, bit for bit: compressed-tensors adds
 *     its (zero) weight_zero_point after the division, which turns -0.0 into +0.0 (code 0x00), while
 *     vLLM's kernels keep -0.0 (0x80).
 * A FAIL line gives the count and the first mismatching element with its input, expected and obtained bits. */
static void gold_compare(const char *what, const char *oracle, const gtensor *x, const float *xf, int cols,
                         const uint8_t *q_exp, const uint8_t *q_got, size_t n,
                         const float *s_exp, const float *s_got, size_t ns) {
    size_t bad = 0, zsign = 0, first = (size_t)-1, zfirst = 0, sbad = 0, sfirst = 0, zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (xf[i] == 0) zeros++;
        if (q_exp[i] == q_got[i]) continue;
        if ((q_exp[i] & 0x7F) == 0 && (q_got[i] & 0x7F) == 0) { if (!zsign) zfirst = i; zsign++; continue; }
        if (first == (size_t)-1) first = i;
        bad++;
    }
    for (size_t i = 0; i < ns; i++)
        if (!bits_eq(s_exp[i], s_got[i])) { if (!sbad) sfirst = i; sbad++; }
    if (!bad && !sbad) SCH_OK("%s: %zu codes (sign of zero aside), %zu scales bit-exact vs %s", what, n, ns, oracle);
    else {
        char msg[600] = "";
        size_t o = 0;
        if (sbad)
            o += snprintf(msg + o, sizeof msg - o, "%zu/%zu scales differ, first [%zu] expected %a got %a; ",
                          sbad, ns, sfirst, s_exp[sfirst], s_got[sfirst]);
        if (bad)
            o += snprintf(msg + o, sizeof msg - o, "%zu/%zu codes differ, first [%zu,%zu] x=%a (%.9g) expected 0x%02x got 0x%02x",
                          bad, n, first / cols, first % cols, xf[first], xf[first], q_exp[first], q_got[first]);
        SCH_FAIL("%s: %s (oracle: %s)", what, msg, oracle);
    }
    if (!zeros) return;
    if (!zsign) SCH_OK("%s: sign of zero: %zu zero inputs, codes bit-exact", what, zeros);
    else SCH_FAIL("%s: sign of zero: %zu/%zu zero inputs give 0x%02x, expected 0x%02x (first [%zu,%zu], x=%a; oracle: %s)",
                  what, zsign, zeros, q_got[zfirst], q_exp[zfirst], zfirst / cols, zfirst % cols, xf[zfirst], oracle);
    (void)x;
}
#endif
