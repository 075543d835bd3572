/* Fuzz targets for every parser of untrusted bytes, one binary, one target per run (FUZZ_TARGET):
 *   json         json_parse + the accessors (config.json, index, tokenizer.json, scales, safetensors headers)
 *   safetensors  safetensors_parse (header length, JSON header, dtypes, shapes, data_offsets)
 *   tiktoken     tiktoken_load        (Meta's tokenizer.model: "base64 rank" lines)
 *   tokjson      hf_json_load         (Hugging Face tokenizer.json)
 *   tok512       llama2c_tok_load     (llama2.c tokenizer.bin / tok512.bin)
 *   tokenizer    tokenizer_try_load   (the file-kind dispatch, through a file on tmpfs)
 *   llama2c      model_load(X.bin)    (llama2.c checkpoint header and layout, through a file)
 *   config       model_load(DIR)      (config.json incl. quantization_config, beside a real model.safetensors)
 *   index        model_load(DIR)      (model.safetensors.index.json, beside a real config and shards)
 *   quant        load_quant_config    (a quantization_config object, in memory)
 *   scales       scales_load          (llama_fp8 scales v1 JSON against a tiny model; the first byte picks 1..4 layers)
 *   npy          npy_parse            (NumPy .npy 1.0/2.0/3.0 headers and data, in memory: cmp, quant, gemm read them)
 * Builds (tests/test_fuzz.sh does this, and seeds them; `make fuzz` runs every target 10^7 times):
 *   libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DTESTING tests/fuzz_parsers.c emu/[a-z]*.c -lm
 *   standalone: cc -DFUZZ_STANDALONE -fsanitize=address,undefined ... (a mutator of its own, no libFuzzer)
 * Environment: FUZZ_TARGET=NAME (required), FUZZ_WRITE_SEEDS=DIR (write synthesized seeds for every
 * target into DIR/NAME/ and exit), FUZZ_MODELS=DIR (default tests/models: real checkpoints the config and
 * index targets load beside the fuzzed file), FUZZ_MAX_ALLOC_MB (default 64), FUZZ_VERBOSE=1 (keep
 * llama_fp8's error messages on stderr), FUZZ_NO_KNOWN=1 (also run inputs that hit a known finding).
 *
 * llama_fp8.c is included unchanged. Errors that it reports through fatal() end in exit(1): exit is
 * redirected here to a longjmp back to the harness, and every allocation and mapping the parser made
 * during the input is tracked so that such an exit frees them (the fatal path leaks by design in the
 * program, which ends there). An input whose parse succeeds must free everything it allocated (checked:
 * a leak aborts). A single allocation above FUZZ_MAX_ALLOC_MB ends the input like an out-of-memory
 * fatal() and is counted as "oversize": the parsers accept vocabularies up to 2^24 ids and 2^20-wide
 * layers, so a small file can legitimately ask for hundreds of MiB; those are not memory-safety bugs.
 * Accepted inputs are then used: every tensor a model points at must lie inside its mapping or buffer,
 * and a loaded BPE tokenizer must round-trip (decode(encode(text)) == text). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- tracking of what one input allocates and maps ---- */
static jmp_buf fz_env;
static volatile int fz_armed;         /* inside a parser call */
static size_t fz_max_alloc = (size_t)64 << 20;
static void **fz_set;                 /* open addressing, NULL = empty, backward-shift deletion */
static size_t fz_cap, fz_n;
typedef struct { void *p; size_t n; } fz_map;
static fz_map *fz_maps;
static size_t fz_nmaps, fz_capmaps;

static size_t fz_hash(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33;
    return (size_t)x;
}
static void fz_set_put(void *p);
static void fz_set_grow(void) {
    void **old = fz_set;
    size_t oc = fz_cap;
    fz_cap = oc ? oc * 2 : 1024;
    fz_set = calloc(fz_cap, sizeof(void *));
    if (!fz_set) abort();
    fz_n = 0;
    for (size_t i = 0; i < oc; i++) if (old[i]) fz_set_put(old[i]);
    free(old);
}
static void fz_set_put(void *p) {
    if (2 * (fz_n + 1) > fz_cap) fz_set_grow();
    size_t m = fz_cap - 1, h = fz_hash(p) & m;
    while (fz_set[h]) { if (fz_set[h] == p) return; h = (h + 1) & m; }
    fz_set[h] = p;
    fz_n++;
}
static void fz_set_del(void *p) {
    if (!fz_cap) return;
    size_t m = fz_cap - 1, h = fz_hash(p) & m;
    while (fz_set[h] != p) { if (!fz_set[h]) return; h = (h + 1) & m; }
    fz_set[h] = NULL;
    fz_n--;
    for (size_t j = (h + 1) & m; fz_set[j]; j = (j + 1) & m) {   /* re-place the rest of the cluster */
        void *q = fz_set[j];
        fz_set[j] = NULL;
        size_t k = fz_hash(q) & m;
        while (fz_set[k]) k = (k + 1) & m;
        fz_set[k] = q;
    }
}
static unsigned long fz_oversize_hits;
static void fz_oversize(void) { longjmp(fz_env, 2); }
static void *fz_malloc(size_t n) {
    if (fz_armed && n > fz_max_alloc) fz_oversize();
    void *p = malloc(n);
    if (p && fz_armed) fz_set_put(p);
    return p;
}
static void *fz_calloc(size_t n, size_t s) {
    if (fz_armed && s && n > fz_max_alloc / s) fz_oversize();
    void *p = calloc(n, s);
    if (p && fz_armed) fz_set_put(p);
    return p;
}
static void *fz_realloc(void *p, size_t n) {
    if (fz_armed && n > fz_max_alloc) fz_oversize();
    size_t n0 = fz_n;
    if (p) fz_set_del(p);            /* before the call: realloc may free p */
    int had = fz_n != n0;
    void *q = realloc(p, n);
    if (!q) { if (had) fz_set_put(p); return NULL; }   /* failed: p is still live */
    if (fz_armed || had) fz_set_put(q);
    return q;
}
static void fz_free(void *p) {
    if (!p) return;
    fz_set_del(p);
    free(p);
}
static void *fz_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off) {
    void *p = mmap(a, n, prot, flags, fd, off);
    if (p != MAP_FAILED && fz_armed) {
        if (fz_nmaps == fz_capmaps) {
            fz_capmaps = fz_capmaps ? 2 * fz_capmaps : 16;
            fz_maps = realloc(fz_maps, fz_capmaps * sizeof *fz_maps);
            if (!fz_maps) abort();
        }
        fz_maps[fz_nmaps++] = (fz_map){p, n};
    }
    return p;
}
static int fz_munmap(void *p, size_t n) {
    for (size_t i = 0; i < fz_nmaps; i++)
        if (fz_maps[i].p == p) { fz_maps[i] = fz_maps[--fz_nmaps]; break; }
    return munmap(p, n);
}
static void fz_exit(int code) __attribute__((noreturn));
static void fz_exit(int code) {
    if (fz_armed) longjmp(fz_env, 1);
    exit(code);
}
/* After a fatal() or an oversize allocation: give back what the abandoned parse held. */
static void fz_release_all(void) {
    for (size_t i = 0; i < fz_cap; i++)
        if (fz_set[i]) { free(fz_set[i]); fz_set[i] = NULL; }
    fz_n = 0;
    for (size_t i = 0; i < fz_nmaps; i++) munmap(fz_maps[i].p, fz_maps[i].n);
    fz_nmaps = 0;
}

#define malloc(n) fz_malloc(n)
#define calloc(n, s) fz_calloc(n, s)
#define realloc(p, n) fz_realloc(p, n)
#define free(p) fz_free(p)
#define mmap(a, n, prot, flags, fd, off) fz_mmap(a, n, prot, flags, fd, off)
#define munmap(p, n) fz_munmap(p, n)
#define exit(c) fz_exit(c)
#include "llama_fp8.c"
/* The macros stay on below: what the targets free was allocated by llama_fp8.c (tracked), and outside
 * an input (fz_armed == 0) the wrappers only pass through. */

/* ---- the targets: each returns 1 when the input was accepted, 0 when rejected with an error, 2 when it
 * reaches a known finding (skipped) ---- */
static char fz_dir[512];                           /* private tmpfs directory of this process */
static char fz_tok_path[600], fz_bin_path[600], fz_scales_path[600];
static char fz_cfg_dir[600], fz_cfg_file[700], fz_idx_dir[600], fz_idx_file[700];

static void fz_cleanup(void);
static void fz_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fz_die(const char *fmt, ...) {
    fz_cleanup();
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_parsers: ", stdout);   /* stdout: llama_fp8's stderr may be silenced */
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
    abort();
}
static void fz_write(const char *path, const uint8_t *d, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fz_die("cannot write %s: %s", path, strerror(errno));
    while (n) {
        ssize_t w = write(fd, d, n);
        if (w <= 0) fz_die("writing %s failed: %s", path, strerror(errno));
        d += w; n -= (size_t)w;
    }
    close(fd);
}
static volatile uint8_t fz_sink;
static void fz_touch(const void *p, size_t n) {   /* first and last byte: ASan checks heap buffers */
    if (!p || !n) return;
    fz_sink ^= ((const uint8_t *)p)[0] ^ ((const uint8_t *)p)[n - 1];
}

static int t_json(const uint8_t *data, size_t size) {
    json j;
    int ok = json_parse(&j, (const char *)data, size) == 0;
    if (ok) {
        for (int k = 0; k < j.ntok; k++) {   /* walk every token through the accessors */
            double d; long long ll; size_t n;
            json_number(&j, k, &d);
            json_integer(&j, k, LLONG_MIN / 2, LLONG_MAX / 2, &ll);
            free(json_string_dup(&j, k, &n));
            if (j.t[k].type == J_OBJ) json_get(&j, k, "dtype");
            if (j.t[k].type == J_ARR) json_at(&j, k, j.t[k].n - 1);
            if (j.t[k].next <= k || j.t[k].next > j.ntok) fz_die("json token %d: next %d out of order", k, j.t[k].next);
        }
    } else if (!j.err[0]) fz_die("json_parse failed without a message");
    json_free(&j);
    return ok;
}

static int t_safetensors(const uint8_t *data, size_t size) {
    st_file f;
    char err[512];
    if (safetensors_parse(data, size, &f, err, sizeof err) != 0) {
        if (!err[0]) fz_die("safetensors_parse failed without a message");
        return 0;
    }
    for (int i = 0; i < f.n; i++) {          /* every byte a tensor claims must be inside the input */
        const st_tensor *t = &f.t[i];
        if (t->nbytes && (t->data < data || t->data + t->nbytes > data + size))
            fz_die("safetensors tensor '%s' [%p, +%zu) outside the file [%p, +%zu)", t->name, (const void *)t->data, t->nbytes, (const void *)data, size);
        fz_touch(t->data, t->nbytes);
        size_t want = dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) want *= (size_t)t->shape[d];
        if (want != t->nbytes) fz_die("safetensors tensor '%s': shape implies %zu bytes, nbytes %zu", t->name, want, t->nbytes);
    }
    st_free(&f);
    return 1;
}

/* A loaded tokenizer is used: BPE texts must round-trip exactly; every id must be in the vocabulary. */
static void use_tokenizer(const tokenizer *t, const uint8_t *extra, size_t extra_n) {
    static const char text[] = "Hello, world! It's 2024: 1234567 <|begin_of_text|>caf\xC3\xA9 \xE2\x80\x94 na\xC3\xAFve\r\n\n  x\t"
                               "<s></s> <0x41> \xF0\x9F\x98\x80 'LL 's \xC5\xBF \xFF\xFE end<|eot_id|>";
    const char *texts[2] = {text, (const char *)extra};
    size_t lens[2] = {sizeof text - 1, extra_n < 64 ? extra_n : 64};
    for (int k = 0; k < 2; k++) {
        int *ids;
        int n = tokenizer_encode(t, texts[k], lens[k], t->bos >= 0, t->kind == TOK_BPE, &ids);
        size_t cap = 64 + 16 * lens[k], o = 0;
        char *back = malloc(cap);
        int prev = -1;
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= t->n_vocab) fz_die("encode gave id %d outside [0, %d)", ids[i], t->n_vocab);
            size_t l;
            const char *p = tokenizer_decode(t, prev, ids[i], &l);
            fz_touch(p, l);
            if (o + l > cap) { cap = 2 * (o + l); back = realloc(back, cap); }
            memcpy(back + o, p, l);
            o += l;
            prev = ids[i];
        }
        if (t->kind == TOK_BPE) {   /* byte-level BPE is lossless: BOS decodes to its own text */
            size_t skip = t->bos >= 0 && n > 0 ? tok_len(t, t->bos) : 0;
            if (o < skip || o - skip != lens[k] || memcmp(back + skip, texts[k], lens[k]) != 0)
                fz_die("BPE round trip of text %d: %zu bytes in, %zu bytes out (after BOS)", k, lens[k], o - skip);
        }
        free(back);
        free(ids);
    }
}
static int t_tokloader(const uint8_t *data, size_t size, tokenizer *(*load)(const mfile *, char *, size_t)) {
    mfile f = {data, size, NULL};   /* libFuzzer's pointer is never NULL (an empty file maps to NULL, but the
                                       dispatch never hands one to these loaders: see the tokenizer target) */
    char err[400] = "";
    tokenizer *t = load(&f, err, sizeof err);
    if (!t) {
        if (!err[0]) fz_die("tokenizer loader failed without a message");
        return 0;
    }
    use_tokenizer(t, data, size);
    tokenizer_free(t);
    return 1;
}
static int t_tiktoken(const uint8_t *d, size_t n) { return t_tokloader(d, n, tiktoken_load); }
static int t_tokjson(const uint8_t *d, size_t n) { return t_tokloader(d, n, hf_json_load); }
static int t_tok512(const uint8_t *d, size_t n) { return t_tokloader(d, n, llama2c_tok_load); }
static int t_tokenizer(const uint8_t *d, size_t n) {
    fz_write(fz_tok_path, d, n);
    char err[600] = "";
    tokenizer *t = tokenizer_try_load(fz_tok_path, err, sizeof err);
    if (!t) {
        if (!err[0]) fz_die("tokenizer_try_load failed without a message");
        return 0;
    }
    use_tokenizer(t, d, n);
    tokenizer_free(t);
    return 1;
}

/* Every tensor of a loaded model lies inside one of its file mappings, or is a heap buffer (touched). */
static void check_span(const Model *m, const char *what, int l, const void *p, size_t bytes) {
    if (!p || !bytes) return;
    const uint8_t *b = p;
    for (int i = 0; i < m->n_files; i++) {
        const uint8_t *f = m->files[i].data;
        if (f && b >= f && b < f + m->files[i].size) {
            if (bytes > m->files[i].size - (size_t)(b - f))
                fz_die("%s (layer %d): %zu bytes at offset %zu of a %zu-byte mapping", what, l, bytes, (size_t)(b - f), m->files[i].size);
            return;
        }
    }
    fz_touch(p, bytes);
}
static void check_tensor(const Model *m, const char *what, int l, const Tensor *t) {
    if (!t->data) return;
    if (t->rows <= 0 || t->cols <= 0) fz_die("%s (layer %d): shape %d x %d", what, l, t->rows, t->cols);
    check_span(m, what, l, t->data, (size_t)t->rows * t->cols * dtype_size(t->dtype));
}
static void check_model(const Model *m) {
    const Config *c = &m->c;
    if (c->dim <= 0 || c->n_layers <= 0 || c->vocab_size <= 0 || c->head_dim <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0)
        fz_die("accepted config: dim %d layers %d vocab %d head_dim %d heads %d/%d", c->dim, c->n_layers, c->vocab_size, c->head_dim, c->n_heads, c->n_kv_heads);
    check_tensor(m, "tok_embeddings", -1, &m->tok_embeddings);
    check_tensor(m, "lm_head", -1, &m->lm_head);
    check_span(m, "final_norm", -1, m->final_norm, (size_t)c->dim * sizeof(float));
    fz_touch(m->inv_freq, (size_t)(c->head_dim / 2) * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
        check_span(m, "attn_norm", l, L->attn_norm, (size_t)c->dim * sizeof(float));
        check_span(m, "ffn_norm", l, L->ffn_norm, (size_t)c->dim * sizeof(float));
        const Tensor *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        static const char *const nm[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
        for (int i = 0; i < 7; i++) check_tensor(m, nm[i], l, w[i]);
    }
}
static int t_model(const char *path) {
    Model *m = model_load(path);
    check_model(m);
    model_free(m);
    return 1;
}
static int t_llama2c(const uint8_t *d, size_t n) { fz_write(fz_bin_path, d, n); return t_model(fz_bin_path); }
static int fz_no_known;
static int t_config(const uint8_t *d, size_t n) {
    fz_write(fz_cfg_file, d, n);
    return t_model(fz_cfg_dir);
}
static int t_index(const uint8_t *d, size_t n) { fz_write(fz_idx_file, d, n); return t_model(fz_idx_dir); }

static int t_quant(const uint8_t *d, size_t n) {
    json j;
    if (json_parse(&j, (const char *)d, n) != 0) { json_free(&j); return 0; }
    CkptQuant cq;
    load_quant_config(&cq, &j, 0, "quantization_config");
    json_free(&j);
    return 1;
}

/* scales_load checks the file against a model (layer count, fingerprint): four tiny llama2.c models
 * with 1..4 layers are loaded once; the first input byte picks one, the rest is the file. */
static Model *fz_scale_models[4];
static int t_scales(const uint8_t *d, size_t n) {
    if (n < 1) return 0;
    const Model *m = fz_scale_models[d[0] % 4];
    int n_layers = m->c.n_layers;
    fz_write(fz_scales_path, d + 1, n - 1);
    ScaleSet *s = scales_load(fz_scales_path, m);
    if (s->n_layers != n_layers) fz_die("scales: %d layers, the model has %d", s->n_layers, n_layers);
    for (int l = 0; l < n_layers; l++) {
        for (int site = 0; site < N_SITES; site++)
            if (!(s->act[l][site] > 0) || !isfinite(s->act[l][site])) fz_die("scales: layer %d site %d = %g accepted", l, site, s->act[l][site]);
        if (!(s->k_amax[l] > 0) || !(s->v_amax[l] > 0) || !isfinite(s->k_amax[l]) || !isfinite(s->v_amax[l]))
            fz_die("scales: kv of layer %d not positive and finite", l);
    }
    free(s->act); free(s->act_scale); free(s->k_amax); free(s->v_amax); free(s->k_scale); free(s->v_scale); free(s->source); free(s);
    return 1;
}

/* An accepted .npy must be self-consistent: at most 4 dimensions, n = the product of the shape, the element
 * size of its kind, and a buffer of n elements (touched, and every element read as cmp reads it). */
static int t_npy(const uint8_t *d, size_t n) {
    npy a;
    char err[256] = "";
    if (npy_parse(d, n, &a, err, sizeof err) != 0) {
        if (!err[0]) fz_die("npy_parse failed without a message");
        if (a.data) fz_die("npy_parse failed but left data allocated");
        return 0;
    }
    static const size_t es[] = {4, 2, 2, 1, 1};   /* NPY_F32, NPY_F16, NPY_BF16, NPY_U8, NPY_I8 */
    if ((unsigned)a.kind > NPY_I8 || a.esize != es[a.kind]) fz_die("npy: kind %d with element size %zu", (int)a.kind, a.esize);
    if (a.ndim < 0 || a.ndim > 4) fz_die("npy: %d dimensions accepted", a.ndim);
    uint64_t want = 1;
    for (int i = 0; i < a.ndim; i++) {
        if (a.shape[i] < 0 || a.shape[i] > INT_MAX) fz_die("npy: dimension %d = %lld accepted", i, (long long)a.shape[i]);
        want *= (uint64_t)a.shape[i];
    }
    if (want != a.n) fz_die("npy: shape product %llu, n %zu", (unsigned long long)want, a.n);
    size_t bytes = a.n * a.esize;
    if (bytes > n || n - bytes < 10) fz_die("npy: %zu data bytes accepted from a %zu-byte input", bytes, n);
    if (!a.data) fz_die("npy: accepted without a data buffer");
    if (bytes && memcmp(a.data, d + (n - bytes), bytes)) fz_die("npy: the data are not the input's last %zu bytes", bytes);
    fz_touch(a.data, bytes);
    double acc = 0;
    for (size_t i = 0; i < a.n; i++) acc += npy_is_nan(&a, i) ? 0 : npy_value(&a, i) + (double)npy_ord(&a, i);
    fz_sink ^= (uint8_t)(acc != acc);
    (void)npy_kind_name(a.kind);
    free(a.data);
    return 1;
}

/* Known findings (reported, not yet fixed in llama_fp8.c): inputs that reach them are skipped and
 * counted as "known" so the rest of the input space keeps being explored; FUZZ_NO_KNOWN=1 runs them.
 * Here the ones recognisable from the raw bytes; t_config checks its own. */
static int fz_known(const char *target, const uint8_t *d, size_t n) {
    (void)target; (void)d; (void)n;   /* none open: the INT_MIN vocab field and n_heads x head_dim are fixed */
    return 0;
}

typedef struct { const char *name; int (*fn)(const uint8_t *, size_t); } fz_target;
static const fz_target fz_targets[] = {
    {"json", t_json}, {"safetensors", t_safetensors}, {"tiktoken", t_tiktoken}, {"tokjson", t_tokjson},
    {"tok512", t_tok512}, {"tokenizer", t_tokenizer}, {"llama2c", t_llama2c}, {"config", t_config},
    {"index", t_index}, {"quant", t_quant}, {"scales", t_scales}, {"npy", t_npy},
};
enum { N_TARGETS = sizeof fz_targets / sizeof fz_targets[0] };
static const fz_target *fz_cur;
static unsigned long fz_count[5];   /* accepted, rejected, fatal, oversize, known */

static void fz_stats(void) {
    if (!fz_cur) return;
    unsigned long n = fz_count[0] + fz_count[1] + fz_count[2] + fz_count[3] + fz_count[4];
    printf("fuzz_stats: target=%s execs=%lu accepted=%lu rejected=%lu fatal=%lu oversize=%lu known=%lu\n", fz_cur->name, n,
           fz_count[0], fz_count[1], fz_count[2], fz_count[3], fz_count[4]);
    fflush(stdout);
}
static void fz_cleanup(void) {   /* the private tmpfs directory */
    if (fz_dir[0] && getpid() > 0) {
        const char *names[] = {fz_tok_path, fz_bin_path, fz_scales_path, fz_cfg_file, fz_idx_file};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) if (names[i][0]) unlink(names[i]);
        DIR *dd;
        const char *dirs[] = {fz_cfg_dir, fz_idx_dir};
        char p[1400];
        for (int k = 0; k < 2; k++) {
            if (!dirs[k][0] || !(dd = opendir(dirs[k]))) continue;
            struct dirent *e;
            while ((e = readdir(dd))) if (e->d_name[0] != '.') { snprintf(p, sizeof p, "%s/%s", dirs[k], e->d_name); unlink(p); }
            closedir(dd);
            rmdir(dirs[k]);
        }
        rmdir(fz_dir);
        fz_dir[0] = 0;
    }
}

extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* Links every file of a model directory into dst (a real checkpoint to load the fuzzed file against). */
static void link_model(const char *src, const char *dst, const char *skip) {
    char abs[PATH_MAX];
    if (!realpath(src, abs)) fz_die("FUZZ_MODELS: %s: %s (run from the repository root, or set FUZZ_MODELS)", src, strerror(errno));
    DIR *dd = opendir(abs);
    if (!dd) fz_die("cannot list %s", abs);
    struct dirent *e;
    char a[PATH_MAX + 300], b[1000];
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, skip)) continue;
        snprintf(a, sizeof a, "%s/%s", abs, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (symlink(a, b) != 0 && errno != EEXIST) fz_die("symlink %s: %s", b, strerror(errno));
    }
    closedir(dd);
}

static void write_seeds(const char *dir);
static Model *tiny_model(const char *dir, int L);

static void fz_init(void) {
    const char *s = getenv("FUZZ_WRITE_SEEDS");
    if (s && *s) { write_seeds(s); exit(0); }
    const char *name = getenv("FUZZ_TARGET");
    for (int i = 0; name && i < N_TARGETS; i++) if (!strcmp(name, fz_targets[i].name)) fz_cur = &fz_targets[i];
    if (!fz_cur) {
        fprintf(stdout, "fuzz_parsers: set FUZZ_TARGET to one of:");
        for (int i = 0; i < N_TARGETS; i++) fprintf(stdout, " %s", fz_targets[i].name);
        fprintf(stdout, "\n");
        exit(2);
    }
    fz_no_known = getenv("FUZZ_NO_KNOWN") && atoi(getenv("FUZZ_NO_KNOWN"));
    if ((s = getenv("FUZZ_MAX_ALLOC_MB")) && atol(s) > 0) fz_max_alloc = (size_t)atol(s) << 20;
    if (!getenv("FUZZ_VERBOSE")) {   /* llama_fp8's messages off; sanitizer reports use fd 2 directly */
        FILE *null = fopen("/dev/null", "w");
        if (null) stderr = null;
    }
    const char *shm = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(fz_dir, sizeof fz_dir, "%s/llama_fp8_fuzz.%d", shm, (int)getpid());
    if (mkdir(fz_dir, 0700) != 0 && errno != EEXIST) fz_die("cannot create %s: %s", fz_dir, strerror(errno));
    atexit(fz_cleanup);
    atexit(fz_stats);
    /* a sanitizer report exits without atexit: clean up from the death callback where the runtime calls it (not
     * GCC's UBSan, and libFuzzer replaces it with its own), else a crashing run leaves its small directory
     * behind (tests/test_fuzz.sh removes it) */
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(fz_cleanup);
    snprintf(fz_tok_path, sizeof fz_tok_path, "%s/tokenizer.in", fz_dir);
    snprintf(fz_bin_path, sizeof fz_bin_path, "%s/model.bin", fz_dir);
    snprintf(fz_scales_path, sizeof fz_scales_path, "%s/scales.json", fz_dir);
    if (!strcmp(fz_cur->name, "scales"))
        for (int L = 1; L <= 4; L++) fz_scale_models[L % 4] = tiny_model(fz_dir, L);   /* byte b: b % 4 layers, 0 -> 4 */
    const char *models = getenv("FUZZ_MODELS") ? getenv("FUZZ_MODELS") : "tests/models";
    char src[PATH_MAX];
    if (!strcmp(fz_cur->name, "config")) {
        snprintf(fz_cfg_dir, sizeof fz_cfg_dir, "%s/hf", fz_dir);
        snprintf(fz_cfg_file, sizeof fz_cfg_file, "%s/config.json", fz_cfg_dir);
        mkdir(fz_cfg_dir, 0700);
        snprintf(src, sizeof src, "%s/hf_mha_f16_untied", models);
        link_model(src, fz_cfg_dir, "config.json");
    }
    if (!strcmp(fz_cur->name, "index")) {
        snprintf(fz_idx_dir, sizeof fz_idx_dir, "%s/hfi", fz_dir);
        snprintf(fz_idx_file, sizeof fz_idx_file, "%s/model.safetensors.index.json", fz_idx_dir);
        mkdir(fz_idx_dir, 0700);
        snprintf(src, sizeof src, "%s/hf_gqa3_bf16_tied_sharded", models);
        link_model(src, fz_idx_dir, "model.safetensors.index.json");
    }
}

/* One input through the current target. */
static void fz_one(const uint8_t *data, size_t size) {
    volatile int outcome;
    if (!fz_no_known && fz_known(fz_cur->name, data, size)) { fz_count[4]++; return; }
    if (fz_n || fz_nmaps) fz_die("internal: tracked state not empty before an input");
    fz_armed = 1;
    int r = setjmp(fz_env);
    if (r == 0) {
        int r1 = fz_cur->fn(data, size);
        outcome = r1 == 2 ? 4 : r1 ? 0 : 1;
        fz_armed = 0;
        if (fz_n || fz_nmaps)
            fz_die("target %s: %zu allocations and %zu mappings still held after an input was %s (a leak)", fz_cur->name,
                   fz_n, fz_nmaps, outcome == 0 ? "accepted" : "rejected");
    } else {
        fz_armed = 0;
        fz_release_all();
        outcome = r == 1 ? 2 : 3;
        if (r == 2) fz_oversize_hits++;
    }
    fz_count[outcome]++;
}

#ifndef FUZZ_STANDALONE
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fz_init();
    return 0;
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_one(data, size);
    return 0;
}
#endif

/* ---- synthesized seeds (FUZZ_WRITE_SEEDS=DIR); tests/test_fuzz.sh adds real files when present ---- */
typedef struct { char *p; size_t n, cap; } fz_buf;
static void bput(fz_buf *b, const void *p, size_t n) {
    if (b->n + n + 1 > b->cap) { b->cap = 2 * (b->n + n + 1) + 4096; b->p = realloc(b->p, b->cap); if (!b->p) abort(); }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void bprintf(fz_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(fz_buf *b, const char *fmt, ...) {
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    bput(b, tmp, (size_t)n);
}
static void bu32(fz_buf *b, uint32_t v) { bput(b, &v, 4); }
static void bf32(fz_buf *b, float v) { bput(b, &v, 4); }
static void seed_out(const char *dir, const char *target, const char *name, const fz_buf *b) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, target);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", dir, target, name);
    fz_write(p, (const uint8_t *)b->p, b->n);
}
static void b64(fz_buf *b, const uint8_t *s, size_t n) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        char o[4] = {a[v >> 18], a[(v >> 12) & 63], i + 1 < n ? a[(v >> 6) & 63] : '=', i + 2 < n ? a[v & 63] : '='};
        bput(b, o, 4);
    }
}
/* A llama2.c checkpoint: dim 8, ffn 16, L layers, 2 heads / 1 kv head, vocab 6 (shared; -6 untied), seq 4. */
static void tiny_llama2c(fz_buf *b, int L, int untied) {
    int D = 8, H = 16, nh = 2, nkv = 1, V = 6, S = 4, hd = D / nh, kv = nkv * hd;
    int32_t h[7] = {D, H, L, nh, nkv, untied ? -V : V, S};
    bput(b, h, sizeof h);
    size_t nf = (size_t)V * D + L * D + L * D * D + 2 * L * D * kv + L * D * D + L * D + 3 * L * D * H + D + S * hd + (untied ? V * D : 0);
    for (size_t i = 0; i < nf; i++) bf32(b, (float)((int)(i % 17) - 8) / 16);
}
static Model *tiny_model(const char *dir, int L) {   /* loaded outside any input: not tracked */
    fz_buf b = {0};
    tiny_llama2c(&b, L, 0);
    char p[2048];
    snprintf(p, sizeof p, "%s/tiny_%d.bin", dir, L);
    fz_write(p, (const uint8_t *)b.p, b.n);
    free(b.p);
    Model *m = model_load(p);
    unlink(p);
    return m;
}
static void write_seeds(const char *dir) {
    mkdir(dir, 0755);
    fz_buf b = {0};
    /* safetensors: two tensors, metadata */
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]},\"c\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],\"data_offsets\":[28,32]}}";
    uint64_t hl = strlen(hdr);
    bput(&b, &hl, 8); bput(&b, hdr, hl);
    for (int i = 0; i < 32; i++) bput(&b, &(uint8_t){(uint8_t)(i * 7)}, 1);
    seed_out(dir, "safetensors", "two_tensors.safetensors", &b);
    seed_out(dir, "json", "safetensors_header.json", &(fz_buf){(char *)hdr, hl, 0});
    b.n = 0;
    /* json */
    bprintf(&b, "{\"hidden_size\": 64, \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"llama3\"}, \"eos_token_id\": [1, 2],"
                " \"s\": \"\\u00e9\\ud83d\\ude00\\n\\\"\", \"n\": null, \"t\": true, \"f\": false, \"x\": -1.5e-3, \"a\": [[], {}, [0, [1]]]}");
    seed_out(dir, "json", "config_like.json", &b);
    b.n = 0;
    /* quant: compressed-tensors and AutoFP8 quantization_config objects */
    bprintf(&b, "{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", \"config_groups\": {\"group_0\": {"
                "\"weights\": {\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"channel\", \"dynamic\": false},"
                " \"input_activations\": {\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"token\", \"dynamic\": true}, \"targets\": [\"Linear\"]}},"
                " \"ignore\": [\"lm_head\"], \"kv_cache_scheme\": {\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"tensor\"}}");
    seed_out(dir, "quant", "compressed_tensors.json", &b);
    b.n = 0;
    bprintf(&b, "{\"quant_method\": \"fp8\", \"activation_scheme\": \"static\", \"ignored_layers\": [\"lm_head\"]}");
    seed_out(dir, "quant", "autofp8.json", &b);
    b.n = 0;
    bprintf(&b, "{\"quant_method\": \"compressed-tensors\", \"config_groups\": {\"g\": {\"weights\": {\"num_bits\": 8, \"type\": \"float\"},"
                " \"input_activations\": {\"strategy\": \"tensor\", \"dynamic\": false}}}}");
    seed_out(dir, "quant", "ct_static.json", &b);
    b.n = 0;
    /* tiktoken: 256 single bytes, then a few merges (rank = line) */
    static const char *const merges[] = {" t", "he", " the", "in", "ing", " a", "  ", "\n\n", "12", "123"};
    fz_buf tk = {0};
    for (int i = 0; i < 256; i++) { uint8_t c = (uint8_t)i; b64(&tk, &c, 1); bprintf(&tk, " %d\n", i); }
    for (int i = 0; i < 10; i++) { b64(&tk, (const uint8_t *)merges[i], strlen(merges[i])); bprintf(&tk, " %d\n", 256 + i); }
    seed_out(dir, "tiktoken", "small.model", &tk);
    seed_out(dir, "tokenizer", "small.model", &tk);
    /* tokenizer.json: the same vocabulary in GPT-2's byte alphabet, with the Llama 3 pre-tokenizer */
    fz_buf tj = {0};
    bprintf(&tj, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 262, \"content\": \"<|begin_of_text|>\", \"special\": true},"
                 " {\"id\": 263, \"content\": \"<|end_of_text|>\", \"special\": true}], \"normalizer\": null,"
                 " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"");
    for (const char *c = LLAMA3_PATTERN; *c; c++) { if (*c == '\\' || *c == '"') bput(&tj, "\\", 1); bput(&tj, c, 1); }
    bprintf(&tj, "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
                 " \"trim_offsets\": true, \"use_regex\": false}]}, \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {");
    for (int c = 0; c < 256; c++) {
        char u[8], *o = u;
        utf8_put(&o, byte_char(c));
        bprintf(&tj, "%s\"%s%.*s\": %d", c ? ", " : "", (c == '"' || c == '\\') ? "\\" : "", (int)(o - u), u, c);
    }
    bprintf(&tj, ", \"\xC4\xA0t\": 256, \"he\": 257, \"\xC4\xA0the\": 258, \"in\": 259, \"ing\": 260, \"\xC4\xA0" "a\": 261},"
                 " \"merges\": [\"\xC4\xA0 t\", [\"h\", \"e\"], \"\xC4\xA0t he\", \"i n\", [\"in\", \"g\"], \"\xC4\xA0 a\"]}}");
    seed_out(dir, "tokjson", "small_tokenizer.json", &tj);
    seed_out(dir, "tokenizer", "small_tokenizer.json", &tj);
    seed_out(dir, "json", "small_tokenizer.json", &tj);
    /* llama2.c tokenizer.bin: <unk> <s> </s>, 256 byte tokens <0xXX>, then " " and a few words */
    fz_buf tb = {0};
    bu32(&tb, 7);
    static const char *const words[] = {"<unk>", "\n<s>\n", "\n</s>\n"};
    for (int i = 0; i < 3; i++) { bf32(&tb, 0); bu32(&tb, (uint32_t)strlen(words[i])); bput(&tb, words[i], strlen(words[i])); }
    for (int i = 0; i < 256; i++) { char w[8]; snprintf(w, sizeof w, "<0x%02X>", i); bf32(&tb, 0); bu32(&tb, 6); bput(&tb, w, 6); }
    static const char *const more[] = {" ", "e", "t", " t", "he", " the", "a", " a", "in", "ing", "Once"};
    for (int i = 0; i < 11; i++) { bf32(&tb, -(float)i); bu32(&tb, (uint32_t)strlen(more[i])); bput(&tb, more[i], strlen(more[i])); }
    seed_out(dir, "tok512", "small_tokenizer.bin", &tb);
    seed_out(dir, "tokenizer", "small_tokenizer.bin", &tb);
    /* llama2.c checkpoints: tiny, shared and untied classifier */
    for (int untied = 0; untied < 2; untied++) {
        b.n = 0;
        tiny_llama2c(&b, 2, untied);
        seed_out(dir, "llama2c", untied ? "tiny_untied.bin" : "tiny_shared.bin", &b);
    }
    /* scales: files for the 2-layer model (first byte 1), with and without its fingerprint */
    Model *m2 = tiny_model(dir, 2);
    char fp[65];
    model_fingerprint(m2, fp);
    for (int with_fp = 0; with_fp < 2; with_fp++) {
        b.n = 0;
        bput(&b, "\x02", 1);   /* byte 2: the 2-layer model */
        bprintf(&b, "{\n  \"format\": \"llama_fp8 scales v1\",\n  \"model\": \"m\",\n");
        if (with_fp) bprintf(&b, "  \"model_fingerprint\": \"%s\",\n", fp);
        bprintf(&b, "  \"activations\": {\"layers\": [\n"
                    "    {\"qkv\": 1.5, \"o\": 0.25, \"gate_up\": 3, \"down\": 12.5},\n    {\"qkv\": 2.5, \"o\": 0.5, \"gate_up\": 4e0, \"down\": 1e2}],\n"
                    "    \"lm_head\": 7.0},\n  \"kv\": {\"k\": [1.0, 2.0], \"v\": [0.5, 0.75]}\n}\n");
        seed_out(dir, "scales", with_fp ? "two_layers_fingerprint.json" : "two_layers.json", &b);
    }
    model_free(m2);
    free(b.p); free(tk.p); free(tj.p); free(tb.p);
}

#ifdef FUZZ_STANDALONE
/* Without libFuzzer: `FUZZ_TARGET=T fuzz_parsers [-runs=N] [-max_total_time=S] [-seed=S] [-max_len=N] DIR|FILE...`. With -runs,
 * mutates the inputs (files, or every file in each DIR) N times; without, runs each file once (a
 * reproducer). Mutations: bit flips, interesting bytes and numbers, truncation, insertion, deletion,
 * copies within the input, splices with another seed. xorshift64, fixed seed: reproducible. */
static uint64_t fz_rng = 88172645463325252ull;
static uint64_t fz_next(void) { fz_rng ^= fz_rng << 13; fz_rng ^= fz_rng >> 7; fz_rng ^= fz_rng << 17; return fz_rng; }
typedef struct { uint8_t *p; size_t n; } fz_input;
static fz_input *fz_seeds;
static size_t fz_nseeds;
static void add_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return;
    fz_input in = {NULL, 0};
    size_t cap = 0;
    for (;;) {
        if (in.n == cap) { cap = cap ? 2 * cap : 4096; in.p = realloc(in.p, cap); }
        size_t r = fread(in.p + in.n, 1, cap - in.n, fp);
        if (!r) break;
        in.n += r;
    }
    fclose(fp);
    fz_seeds = realloc(fz_seeds, (fz_nseeds + 1) * sizeof *fz_seeds);
    fz_seeds[fz_nseeds++] = in;
}
int main(int argc, char **argv) {
    fz_init();
    long runs = -1;
    double max_time = 0;
    size_t max_len = 8192;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "-runs=", 6)) runs = atol(argv[i] + 6);
        else if (!strncmp(argv[i], "-seed=", 6)) fz_rng ^= (uint64_t)atoll(argv[i] + 6) * 0x9E3779B97F4A7C15ull;
        else if (!strncmp(argv[i], "-max_len=", 9)) max_len = (size_t)atol(argv[i] + 9);
        else if (!strncmp(argv[i], "-max_total_time=", 16)) { max_time = atof(argv[i] + 16); if (runs < 0) runs = LONG_MAX; }
        else if (argv[i][0] == '-') continue;   /* other libFuzzer flags: ignored */
        else {
            struct stat st;
            if (stat(argv[i], &st) != 0) continue;
            if (!S_ISDIR(st.st_mode)) { add_file(argv[i]); continue; }
            DIR *dd = opendir(argv[i]);
            struct dirent *e;
            char p[4096];
            while (dd && (e = readdir(dd))) if (e->d_name[0] != '.') { snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name); add_file(p); }
            if (dd) closedir(dd);
        }
    }
    double t0 = now_seconds();
    if (runs < 0) {   /* replay */
        for (size_t i = 0; i < fz_nseeds; i++) {
            uint8_t *exact = malloc(fz_seeds[i].n ? fz_seeds[i].n : 1);
            memcpy(exact, fz_seeds[i].p, fz_seeds[i].n);
            fz_one(exact, fz_seeds[i].n);
            free(exact);
        }
        printf("Done %zu runs in %.0f second(s)\n", fz_nseeds, now_seconds() - t0);
        return 0;
    }
    if (!fz_nseeds) { fz_seeds = calloc(1, sizeof *fz_seeds); fz_seeds[0].p = calloc(1, 1); fz_nseeds = 1; }
    uint8_t *buf = malloc(2 * max_len + 64);
    long it;
    for (it = 0; it < runs; it++) {
        if (max_time > 0 && (it & 1023) == 0 && now_seconds() - t0 > max_time) break;
        const fz_input *s = &fz_seeds[fz_next() % fz_nseeds];
        size_t n = s->n < max_len ? s->n : max_len;
        memcpy(buf, s->p, n);
        int muts = it < (long)fz_nseeds ? 0 : 1 + (int)(fz_next() % 6);
        for (int m = 0; m < muts; m++) {
            uint64_t r = fz_next();
            size_t pos = n ? (size_t)(r >> 8) % n : 0;
            switch (r % 9) {
            case 0: if (n) buf[pos] ^= (uint8_t)(1u << (r >> 40) % 8); break;
            case 1: if (n) buf[pos] = (uint8_t)(r >> 32); break;
            case 2: n = pos; break;   /* truncate */
            case 3: { static const char *big[] = {"99999999999999999999", "-1", "4294967296", "1e308", "0", "2147483647", "16777216", "-0", "1.5", "nan"};
                      const char *bg = big[(r >> 20) % 10];
                      size_t bl = strlen(bg);
                      if (pos + bl <= n) memcpy(buf + pos, bg, bl);
                      break; }
            case 4: if (n) buf[pos] = (uint8_t)"{}[]\",:0\\ \n=u-e"[(r >> 30) % 15]; break;
            case 5: { size_t k = 1 + (r >> 36) % 8; if (n + k <= max_len) { memmove(buf + pos + k, buf + pos, n - pos); memset(buf + pos, (int)(r >> 50), k); n += k; } break; }
            case 6: { size_t k = 1 + (r >> 36) % 16; if (pos + k <= n) { memmove(buf + pos, buf + pos + k, n - pos - k); n -= k; } break; }
            case 7: { size_t from = n ? (size_t)(r >> 36) % n : 0, k = 1 + (r >> 20) % 16; if (from + k <= n && pos + k <= n) memmove(buf + pos, buf + from, k); break; }
            case 8: { const fz_input *o = &fz_seeds[(r >> 33) % fz_nseeds];   /* splice: our head, its tail */
                      size_t from = o->n ? (size_t)(r >> 12) % o->n : 0, k = o->n - from;
                      if (k > max_len - pos) k = max_len - pos;
                      if (n) { memcpy(buf + pos, o->p + from, k); n = pos + k; }
                      break; }
            }
            if (n > 8 && !strcmp(fz_cur->name, "safetensors") && (r >> 60) == 0) { uint64_t v = fz_next() % (n + 16); memcpy(buf, &v, 8); }
        }
        uint8_t *exact = malloc(n ? n : 1);   /* exact-size copy so ASan sees any overread */
        memcpy(exact, buf, n);
        fz_one(exact, n);
        free(exact);
    }
    printf("Done %ld runs in %.0f second(s)\n", it, now_seconds() - t0);
    return 0;
}
#endif
