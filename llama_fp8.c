/* llama_fp8.c — Llama 3.1 inference with FP8 numerics, in one readable C file.
 *
 * Reads top to bottom:
 *   1. utilities: errors, memory, files (read-only mmap), atomic writes, arguments, random numbers
 *   2. types: Config, Tensor, Layer, Model, Scheme (what each scheme quantizes), with shapes
 *   3. schemes: making a scheme, the bf16 view of a model, weights quantized once per scheme
 *   4. forward(): the Llama layer sequence, written once; it calls its ops through a backend
 *   5. backends: the CPU (these ops, emu/ GEMMs), the GPU (cuda_kernels.cu, make CUDA=1), verify
 *   6. commands: ppl, dump, generate, export, calibrate, stats, verify, tokenize, fp8, bench
 *   7. main: command dispatch
 *   appendix: A1 JSON parser, A2 loaders (safetensors, llama2.c, synthetic) and the safetensors
 *             writer, A3 tokenizers (Llama 3 BPE, llama2.c), A4 SHA-256, SVG, synth
 * The numerics live in fp8.h (formats), emu/ (GEMMs, quantization, shared per-element code) and
 * cuda_kernels.cu (their GPU twins); this file decides where they are applied.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
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
#ifdef __GLIBC__
#include <malloc.h>   /* mallopt (main) */
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fp8.h"
#include "emu/emu.h"
#include "emu/ops.h"

/* ------------------------------------------------------------------------------------------ */
/* 1. Utilities: errors, memory, files (read-only mmap), atomic writes, arguments, random numbers */
/* ------------------------------------------------------------------------------------------ */
/* User-facing errors: one line naming the problem, exit status 1. Never used for our own bugs. */
static void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void live_tmp_remove(void);
static void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("llama_fp8: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    live_tmp_remove();
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal("out of memory allocating %zu bytes", n);
    return p;
}
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}
static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) fatal("out of memory allocating %zu bytes", n);
    return p;
}
static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}
/* A progress line on stderr: rewritten in place (\r) on a terminal, one line per update elsewhere (logs). */
static void progress(const char *fmt, ...) {
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (isatty(2)) { fprintf(stderr, "\r%s", b); return; }
    size_t n = strlen(b);
    while (n && b[n - 1] == ' ') b[--n] = 0;   /* the padding only serves the overwrite */
    fprintf(stderr, "%s\n", b);
}
/* after the last progress line: end it on a terminal */
static void progress_done(void) { if (isatty(2)) fputc('\n', stderr); }
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A read-only memory-mapped file. Every read through it is bounds-checked by the caller. */
typedef struct {
    const uint8_t *data; /* (size) bytes, or NULL for an empty file */
    size_t size;
    char *path;
} mfile;

/* Returns 0, or -1 with a message in err. */
static int mfile_open(mfile *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            snprintf(err, errlen, "%s: mmap failed: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        f->data = p;
    }
    close(fd);
    f->path = xstrdup(path);
    return 0;
}
static void mfile_open_or_die(mfile *f, const char *path) {
    char err[512];
    if (mfile_open(f, path, err, sizeof err) != 0) fatal("%s", err);
}
static void mfile_close(mfile *f) {
    if (f->data) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Whole file into a NUL-terminated heap buffer (for small text files). NULL if unreadable. */
static char *read_text_file(const char *path, size_t *len_out) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (cap - len - 1 == 0) buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) { free(buf); return NULL; }
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Files we write are written atomically: to PATH.tmp.PID, then renamed over PATH. */
/* Files are written atomically: into PATH.tmp.PID, renamed over PATH when complete. The temporary
 * files being written are listed, and removed by fatal() and on SIGINT / SIGTERM / SIGHUP, so a failed
 * or interrupted write leaves nothing behind (an export of an 8B model is gigabytes). */
typedef struct { FILE *fp; char *path, *tmp; } atomic_file;
#define MAX_LIVE_TMP 16
static char *volatile live_tmp[MAX_LIVE_TMP];
static void live_tmp_remove(void) {
    for (int i = 0; i < MAX_LIVE_TMP; i++) { char *t = live_tmp[i]; if (t) { live_tmp[i] = NULL; unlink(t); } }
}
static void live_tmp_on_signal(int sig) { live_tmp_remove(); signal(sig, SIG_DFL); raise(sig); }
static void atomic_open(atomic_file *a, const char *path) {
    static int handlers;
    if (!handlers++) {
        signal(SIGINT, live_tmp_on_signal); signal(SIGTERM, live_tmp_on_signal); signal(SIGHUP, live_tmp_on_signal);
        signal(SIGXFSZ, SIG_IGN);   /* over a file size limit, write() fails with EFBIG and we say so */
    }
    a->path = xstrdup(path);
    a->tmp = xmalloc(strlen(path) + 32);
    sprintf(a->tmp, "%s.tmp.%d", path, (int)getpid());
    a->fp = fopen(a->tmp, "wb");
    if (!a->fp) fatal("cannot write %s: %s", a->tmp, strerror(errno));
    int i = 0;
    while (i < MAX_LIVE_TMP && live_tmp[i]) i++;
    if (i < MAX_LIVE_TMP) live_tmp[i] = a->tmp;
}
static void atomic_forget(atomic_file *a) {
    for (int i = 0; i < MAX_LIVE_TMP; i++) if (live_tmp[i] == a->tmp) live_tmp[i] = NULL;
}
static void atomic_commit(atomic_file *a) {
    int bad = ferror(a->fp), err = 0;
    if (fflush(a->fp) != 0) bad = 1;
    if (!bad && fsync(fileno(a->fp)) != 0) bad = 1;
    if (bad) err = errno;
    if (fclose(a->fp) != 0 && !bad) { bad = 1; err = errno; }
    if (bad) fatal("writing %s failed: %s", a->path, strerror(err ? err : EIO));   /* fatal removes the temporary file */
    if (rename(a->tmp, a->path) != 0) fatal("cannot rename %s to %s: %s", a->tmp, a->path, strerror(errno));
    atomic_forget(a);
    free(a->path); free(a->tmp);
}
/* JSON output: one small writer for every JSON file the program writes. Strings are escaped (", \\,
 * control characters; bytes >= 0x80 pass as they are, UTF-8 in, UTF-8 out); a non-finite number is
 * written as null and its key is listed in a "nonfinite" array closing the top-level object, so the
 * file parses with any strict parser and no NaN hides in it. Members go one per line, except inside
 * arrays and objects opened "inline" (on one line). */
typedef struct { FILE *fp; int depth, n[16], inl[16], arr[16]; const char *key[16]; char nonfinite[1024]; } jw;
static void jw_str_raw(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(fp, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", fp);
        else if (ch == '\t') fputs("\\t", fp);
        else if (ch < 0x20 || ch == 0x7F) fprintf(fp, "\\u%04x", ch);
        else fputc(ch, fp);
    }
    fputc('"', fp);
}
static void jw_key(jw *w, const char *key) {   /* the separator, indentation and "key": of the next member */
    int d = w->depth;
    if (w->n[d]++) fputc(',', w->fp);
    if (w->inl[d]) { if (w->n[d] > 1) fputc(' ', w->fp); }
    else fprintf(w->fp, "\n%*s", 2 * (d + 1), "");
    if (key) { jw_str_raw(w->fp, key); fputs(": ", w->fp); }
}
static void jw_open(jw *w, const char *key, char c, int inl) {
    if (w->depth >= 0) jw_key(w, key);
    if (w->depth >= 15) fatal("internal: JSON nesting too deep");
    fputc(c, w->fp);
    w->depth++;
    w->n[w->depth] = 0;
    w->arr[w->depth] = c == '[';
    w->key[w->depth] = key;
    w->inl[w->depth] = inl || (w->depth > 0 && w->inl[w->depth - 1]);
}
static void jw_close(jw *w, char c) {
    int d = w->depth--;
    if (!w->inl[d] && w->n[d]) fprintf(w->fp, "\n%*s", 2 * d, "");
    fputc(c, w->fp);
}
static void jw_begin(jw *w, FILE *fp) { memset(w, 0, sizeof *w); w->fp = fp; w->depth = -1; jw_open(w, NULL, '{', 0); }
static void jw_end(jw *w) {
    if (w->nonfinite[0]) {   /* the keys written as null because their value was NaN or ±Inf */
        jw_key(w, "nonfinite");
        fprintf(w->fp, "[%s]", w->nonfinite);
    }
    jw_close(w, '}');
    fputc('\n', w->fp);
}
static void jw_obj(jw *w, const char *key, int inl) { jw_open(w, key, '{', inl); }
static void jw_arr(jw *w, const char *key, int inl) { jw_open(w, key, '[', inl); }
static void jw_end_obj(jw *w) { jw_close(w, '}'); }
static void jw_end_arr(jw *w) { jw_close(w, ']'); }
static void jw_str(jw *w, const char *key, const char *v) { jw_key(w, key); if (v) jw_str_raw(w->fp, v); else fputs("null", w->fp); }
static void jw_int(jw *w, const char *key, long long v) { jw_key(w, key); fprintf(w->fp, "%lld", v); }
static void jw_bool(jw *w, const char *key, int v) { jw_key(w, key); fputs(v ? "true" : "false", w->fp); }
/* A number with printf format fmt (%.17g round-trips a double; %.9g a float); NaN / ±Inf → null. */
static void jw_num(jw *w, const char *key, double v, const char *fmt) {
    jw_key(w, key);
    if (isfinite(v)) { fprintf(w->fp, fmt, v); return; }
    fputs("null", w->fp);
    char path[256] = "";   /* where the null is, e.g. schemes[1].kld_se */
    for (int d = 1; d <= w->depth + 1; d++) {
        size_t l = strlen(path);
        const char *k = d <= w->depth ? w->key[d] : key;
        if (w->arr[d - 1]) snprintf(path + l, sizeof path - l, "[%d]", w->n[d - 1] - 1);
        else if (k) snprintf(path + l, sizeof path - l, "%s%s", l ? "." : "", k);
    }
    size_t len = strlen(w->nonfinite);
    snprintf(w->nonfinite + len, sizeof w->nonfinite - len, "%s\"%s\"", len ? ", " : "", path);
}

/* Fails now, before a long run, when a file cannot be created at PATH or in DIR (missing, read-only):
 * creates and removes PATH.tmp.PID (or DIR/.llama_fp8_probe.PID). */
static void probe_write(const char *name, const char *fmt, const char *what, const char *why) {
    char *p = xmalloc(strlen(name) + 48);
    sprintf(p, fmt, name, (int)getpid());
    FILE *fp = fopen(p, "wb");
    if (!fp) fatal("%s %s: %s: %s", what, name, why, strerror(errno));
    fclose(fp);
    unlink(p);
    free(p);
}
static void check_writable(const char *path, const char *what) { probe_write(path, "%s.tmp.%d", what, "cannot write there"); }
static void check_dir_writable(const char *dir, const char *what) { probe_write(dir, "%s/.llama_fp8_probe.%d", what, "cannot write into this directory"); }

/* Strict number parsing for command-line options. */
static long parse_long_arg(const char *opt, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        fatal("option %s: expected an integer in [%ld, %ld], got '%s'", opt, lo, hi, s);
    return v;
}
static double parse_double_arg(const char *opt, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) fatal("option %s: expected a number, got '%s'", opt, s);
    return v;
}

/* xorshift64: deterministic random numbers (synthetic model, sampling, tests) */
static uint64_t rng_next(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }
static float rng_uniform(uint64_t *s) { return (rng_next(s) >> 40) * (1.0f / 16777216.0f); } /* [0,1) */

/* ------------------------------------------------------------------------------------------ */
/* 2. Types: the model, its tensors, schemes; shapes in the comments                          */
/* ------------------------------------------------------------------------------------------ */
/* The model's hyperparameters, from config.json (Hugging Face) or the llama2.c header. */
typedef struct {
    int dim;            /* hidden_size */
    int hidden_dim;     /* intermediate_size (SwiGLU width) */
    int n_layers;       /* num_hidden_layers */
    int n_heads;        /* num_attention_heads */
    int n_kv_heads;     /* num_key_value_heads (GQA: n_heads is a multiple of it) */
    int head_dim;       /* head_dim (defaults to dim / n_heads) */
    int vocab_size;
    int max_seq_len;    /* max_position_embeddings */
    float norm_eps;     /* rms_norm_eps */
    float rope_theta;
    int rope_llama3;    /* rope_scaling.rope_type == "llama3" */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos; /* original_max_position_embeddings */
    int tied_embeddings;
    int bos_id, eos_id;
    int eos_ids[8], n_eos; /* every eos_token_id config.json lists (Llama 3.1 Instruct: three); generate stops at any */
} Config;

/* How a quantized weight's scales are laid out: one per output channel (scale[rows]), one for the
 * whole tensor (scale[1]), or one per 128x128 block (scale[ceil(rows/128)][ceil(cols/128)]). */
typedef enum { GRAN_CHANNEL = 0, GRAN_TENSOR = 1, GRAN_BLOCK = 2 } weight_gran;
/* How a scheme quantizes a Linear's input: not at all (weight-only), FP8 dynamic per token, FP8 static per
 * tensor (calibrated scale), FP8 dynamic per tensor, FP8 dynamic 1x128 groups, INT8 dynamic per token. */
typedef enum { AMODE_NONE, AMODE_TOKEN, AMODE_TENSOR_STATIC, AMODE_TENSOR_DYNAMIC, AMODE_GROUP, AMODE_INT8_TOKEN,
               AMODE_QDQ_NVFP4, AMODE_QDQ_MXFP4, AMODE_QDQ_MXFP8 } act_mode;   /* QDQ: quantized and dequantized in place (bf16 GEMM) */

/* A weight matrix as stored: row-major [rows, cols], one row per output feature (HF / PyTorch
 * nn.Linear layout), data pointing into the read-only mapping (or owned when converted at load). */
typedef struct {
    const void *data;
    emu_dtype dtype;    /* EMU_F32, EMU_BF16 or EMU_F16; EMU_E4M3 / EMU_E5M2 in a quantized checkpoint */
    int rows, cols;
    const float *scale; /* quantized checkpoints: weight_scale, (rows) per channel, (1) per tensor, or
                           (ceil(rows/128), ceil(cols/128)) per block, converted to fp32; else NULL */
    weight_gran scale_gran;
} Tensor;

/* What a quantized checkpoint (compressed-tensors "float-quantized", or AutoFP8 "fp8") says about
 * how it is to be run, read from config.json's quantization_config. */
typedef struct {
    int present;         /* the Linears are stored quantized */
    char method[32];     /* "compressed-tensors" or "fp8" */
    act_mode act;        /* activations: AMODE_TOKEN, _TENSOR_STATIC, _TENSOR_DYNAMIC, _GROUP or _NONE (weight-only) */
    int lm_head;         /* lm_head quantized too (not in "ignore") */
    int kv;              /* k_scale / v_scale present (FP8 KV cache) */
    int wf;              /* 1 + the weight format (wformat) of a pack-quantized / nvfp4 / mxfp4 / mxfp8 checkpoint, else 0 */
} CkptQuant;

typedef struct {
    float *attn_norm;   /* (dim) input_layernorm, converted to fp32 at load */
    Tensor wq;          /* (n_heads * head_dim, dim)    q_proj, rotate-half RoPE row order */
    Tensor wk;          /* (n_kv_heads * head_dim, dim) k_proj, rotate-half RoPE row order */
    Tensor wv;          /* (n_kv_heads * head_dim, dim) v_proj */
    Tensor wo;          /* (dim, n_heads * head_dim)    o_proj */
    float *ffn_norm;    /* (dim) post_attention_layernorm */
    float in_scale[4];  /* quantized checkpoints with static activations: input_scale of the q/k/v
                           (the largest of the three, as vLLM fuses them), o, gate/up, down inputs */
    float k_scale, v_scale; /* FP8 KV cache scales of a checkpoint (0 = none) */
    Tensor w_gate;      /* (hidden_dim, dim) gate_proj (llama2.c w1) */
    Tensor w_up;        /* (hidden_dim, dim) up_proj   (llama2.c w3) */
    Tensor w_down;      /* (dim, hidden_dim) down_proj (llama2.c w2) */
} Layer;
/* A layer's seven Linears in forward()'s order, as an array initializer: const Tensor *ts[7] = LAYER_LINEARS(L); */
#define LAYER_LINEARS(L) {&(L)->wq, &(L)->wk, &(L)->wv, &(L)->wo, &(L)->w_gate, &(L)->w_up, &(L)->w_down}

typedef struct Model {
    Config c;
    Tensor tok_embeddings; /* (vocab, dim) embed_tokens */
    Layer *layers;         /* (n_layers) */
    float *final_norm;     /* (dim) model.norm */
    Tensor lm_head;        /* (vocab, dim); the embedding matrix when tied */
    float *inv_freq;       /* (head_dim / 2) RoPE inverse frequencies, llama3-scaled when configured */
    CkptQuant quant;       /* set when the checkpoint is FP8-quantized */
    float lm_head_in_scale; /* static input_scale of a quantized lm_head */
    char *path;            /* where it was loaded from ("(synthetic)" for the built-in model) */
    const char *format;    /* "hf-safetensors", "llama2.c", "synthetic" */
    mfile *files; int n_files;   /* the mappings the tensors point into */
    void **owned; int n_owned;   /* buffers the model owns (converted / permuted tensors) */
    struct Model *bf16_view;     /* the model with bf16-rounded weights (bf16-based schemes), made once */
    struct Model *wf_views[5];   /* w4a16, nvfp4a16, mxfp4a16, mxfp8a16, w4a16-mse: the bf16 view with each Linear's weight dequantized (wf_view) */
    int release_pages;           /* large checkpoints: drop each layer's mapped pages after use, so the
                                    resident set stays near one layer's weights (the page cache keeps them) */
} Model;

/* Storage-only dtypes of the safetensors writer (export of packed formats): */
#define ST_U8  ((emu_dtype)17)
#define ST_I32 ((emu_dtype)18)
#define ST_I64 ((emu_dtype)19)
static size_t dtype_size(emu_dtype t) { return t == ST_I64 ? 8 : t == EMU_F32 || t == ST_I32 ? 4 : t == EMU_BF16 || t == EMU_F16 ? 2 : 1; }
static const char *dtype_name(emu_dtype t) {
    if (t == ST_U8) return "U8";
    if (t == ST_I32) return "I32";
    if (t == ST_I64) return "I64";
    switch (t) { case EMU_F32: return "F32"; case EMU_BF16: return "BF16"; case EMU_F16: return "F16";
                 case EMU_E4M3: return "F8_E4M3"; case EMU_E5M2: return "F8_E5M2"; case EMU_I8: return "I8"; }
    return "?";
}
static void *model_own(Model *m, size_t bytes) {
    m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(void *));
    return m->owned[m->n_owned++] = xmalloc(bytes);
}
/* Element i of a stored tensor, converted exactly to fp32. */
static inline float tensor_get(const Tensor *t, size_t i) {
    switch (t->dtype) {
    case EMU_BF16: return bf16_to_float(((const uint16_t *)t->data)[i]);
    case EMU_F16: return fp16_to_float(((const uint16_t *)t->data)[i]);
    default: return ((const float *)t->data)[i];
    }
}
static float *tensor_to_f32(Model *m, const Tensor *t) {
    size_t n = (size_t)t->rows * t->cols;
    float *out = model_own(m, n * sizeof(float));
    for (size_t i = 0; i < n; i++) out[i] = tensor_get(t, i);
    return out;
}

/* RoPE inverse frequencies exactly as transformers computes them (fp32 tensor arithmetic):
 * inv_freq[j] = 1 / theta^(2j / head_dim), then Llama 3.1 "llama3" scaling
 * (modeling_rope_utils._compute_llama3_parameters): wavelengths longer than
 * original_max_pos / low_freq_factor are divided by factor, shorter than
 * original_max_pos / high_freq_factor kept, and those between interpolated smoothly.
 * PyTorch evaluates `scalar / tensor` as reciprocal(tensor) * scalar; we do the same. */
static void rope_init(Model *m) {
    const Config *c = &m->c;
    int half = c->head_dim / 2;
    m->inv_freq = model_own(m, half * sizeof(float));
    for (int j = 0; j < half; j++) {
        float e = (float)(2 * j) / (float)c->head_dim;
        float inv = 1.0f / powf(c->rope_theta, e);
        if (c->rope_llama3) {
            float factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            float old_ctx = (float)c->rope_orig_max_pos;
            float low_freq_wavelen = (float)((double)c->rope_orig_max_pos / lo);
            float high_freq_wavelen = (float)((double)c->rope_orig_max_pos / hi);
            float wavelen = (1.0f / inv) * (float)(2 * M_PI);
            float scaled = wavelen > low_freq_wavelen ? inv / factor : inv;
            if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
                float smooth = ((1.0f / wavelen) * old_ctx - lo) / (float)((double)hi - lo);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            inv = scaled;
        }
        m->inv_freq[j] = inv;
    }
}

/* Numerics of one run (a "scheme", -q NAME). Every scheme but fp32 is the bf16 baseline with some
 * Linears quantized, as vLLM runs an FP8 checkpoint of a bf16 model:
 *   fp32         weights upcast exactly, fp32 everywhere (the reference).
 *   bf16         Hugging Face bf16 inference (model.to(torch.bfloat16), eager attention): every op
 *                computes in fp32 on bf16 inputs and rounds its output once to bf16 (B(x) below, RNE);
 *                GEMMs accumulate in fp32 and round the output. Rounding points read from transformers
 *                5.23 modeling_llama.py, confirmed bit for bit by tests/hf_rounding_check.py.
 *   fp8-w        weight-only: W quantized (per channel, or per tensor with --weight-scale tensor),
 *                bf16 activations; D = B(s_w[n] · Σ a·w_fp8).
 *   w8a8         per-channel static weights + dynamic per-token activations (vLLM
 *                dynamic_per_token_scaled_fp8_quant, llm-compressor FP8_DYNAMIC).
 *   w8a8-static  per-tensor weights + per-tensor static activation scales from `calibrate` (vLLM
 *                static path: x · (1/s)).
 *   w8a8-block   128×128 weight blocks, 1×128 activation groups (DeepSeek-V3, FP8_BLOCK).
 *   int8         W8A8 INT8: per-channel weights, per-token activations, symmetric, RNE to ±127.
 * Weights of the bf16 model are quantized as llm-compressor does by default (scale = B(absmax/fmax),
 * q = fp8(clamp(B(w / scale)))); --weight-arith fp32 selects fp32 arithmetic. The scaled GEMM is
 * emu_gemm (vLLM CUTLASS epilogue D = B(s_a[m] · fp32(s_w[n] · acc))) with --accum choosing how acc is
 * summed (default exact). --kv fp8-e4m3|fp8-e5m2 adds an FP8 KV cache (vLLM: stored fp8(x / s) with
 * saturation, loaded fp8 · s). Embeddings and lm_head stay bf16 unless --quant-lm-head. */
/* w4a16 sits with the baselines: its GEMMs are bf16 GEMMs on the dequantized INT4 weights (model_for_scheme) */
typedef enum { SCHEME_FP32, SCHEME_BF16, SCHEME_W4A16, SCHEME_W4A16_MSE, SCHEME_NVFP4A16, SCHEME_MXFP4A16, SCHEME_MXFP8A16, SCHEME_NVFP4, SCHEME_MXFP4, SCHEME_MXFP8,
               SCHEME_FP8_W, SCHEME_W8A8, SCHEME_W8A8_STATIC, SCHEME_W8A8_BLOCK, SCHEME_INT8, SCHEME_W4A8_FP4_M1, SCHEME_W4A8_FP4_M2 } scheme_kind;
static const char *const scheme_names[] = {"fp32", "bf16", "w4a16", "w4a16-mse", "nvfp4a16", "mxfp4a16", "mxfp8a16", "nvfp4", "mxfp4", "mxfp8",
                                           "fp8-w", "w8a8", "w8a8-static", "w8a8-block", "int8", "w4a8-fp4-m1", "w4a8-fp4-m2"};
#define N_SCHEMES ((int)(sizeof scheme_names / sizeof scheme_names[0]))
/* Where activations are quantized: the inputs of q/k/v (one shared input), o, gate/up, down. */
enum { SITE_QKV, SITE_O, SITE_GATEUP, SITE_DOWN, N_SITES };
/* Observers (calibrate, stats) also see the lm_head input (layer -1) and the K / V cache entries. */
enum { SITE_LMHEAD = N_SITES, SITE_K, SITE_V, N_OBS_SITES };
static const char *const site_names[N_OBS_SITES] = {"qkv", "o", "gate_up", "down", "lm_head", "k", "v"};
typedef void (*act_observer)(void *ctx, int layer, int site, const float *x, int rows, int cols);

/* Static scales from `llama_fp8 calibrate`: the observed absmax of every activation site and of K / V. */
typedef struct {
    int n_layers;
    float (*act)[N_SITES];  /* (n_layers, N_SITES) activation absmax (scale = absmax / fmax) */
    float (*act_scale)[N_SITES]; /* or the scales themselves (a checkpoint's input_scale), else NULL */
    float lm_head_scale;    /* likewise for the lm_head input */
    float lm_head;          /* absmax of the lm_head input (0 = none) */
    float *k_amax, *v_amax;  /* (n_layers) K / V cache absmax (scale = absmax / fmax) */
    float *k_scale, *v_scale; /* or the scales themselves (a checkpoint's k_scale / v_scale), else NULL */
    char *source;
} ScaleSet;

typedef struct {
    scheme_kind kind;
    char name[80];          /* as printed, with modifiers: "w8a8(e5m2 act)" */
    emu_dtype wfmt, afmt;   /* E4M3 / E5M2 (EMU_I8 for int8) */
    weight_gran wgran;
    act_mode amode;         /* how activations are quantized */
    int bf16_arith;         /* weight scales and w / s in bf16, as llm-compressor on a bf16 model */
    emu_dtype kv;           /* EMU_F32 = full-precision cache, else E4M3 / E5M2 */
    int quant_lm_head;
    emu_accum accum;
    float scale_ub;         /* per-token absmax upper bound (0 = none; Meta's fbgemm configs use 1200) */
    const ScaleSet *scales; /* static activation / KV scales */
} Scheme;

/* Modifiers shared by every scheme of a run (command-line options). */
typedef struct {
    const char *act_format, *weight_format, *kv, *accum, *weight_scale, *weight_arith;
    int quant_lm_head;
    float scale_ub;
    const ScaleSet *scales;
} SchemeOptions;

/* A strict RFC 8259 parser into a flat token array (jsmn-style). Each token records its type,
 * its source span and the index just past its subtree, so objects and arrays are walked without
 * recursion at lookup time. Parsing recurses, with a depth limit, so crafted input cannot
 * overflow the stack. Errors are returned (never fatal): the fuzz target drives this directly. */
typedef enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct {
    jtype type;
    int start, end; /* source span; for strings, inside the quotes */
    int n;          /* number of children (array elements, or object keys; a key's value follows it) */
    int next;       /* index of the token after this subtree */
} jtok;
typedef struct {
    const char *src;
    size_t len;
    jtok *t;
    int ntok, cap;
    char err[160];
} json;

#define JSON_MAX_DEPTH 256

/* ---- writing safetensors (synth, export) ---- */
/* Tensors are described first (so the header with every offset can be written), then their bytes
 * are produced one tensor at a time by fill(), so an 8B checkpoint streams through a small buffer.
 * The file is written atomically (PATH.tmp.PID, then renamed). */
typedef struct {
    char name[160];
    emu_dtype dtype;
    int ndim;
    int64_t shape[4];
} st_entry;

/* Tokenizers (appendix A3): Llama 3 byte-level BPE and llama2.c tokenizer.bin behind one interface. */
typedef struct tokenizer tokenizer;

/* Defined in the appendix, used above: JSON (A1), loaders and the safetensors writer (A2), tokenizers
 * (A3), SHA-256 and synth (A4). */
static int json_parse(json *j, const char *src, size_t len);
static void json_free(json *j);
static int json_get(const json *j, int obj, const char *key);
static int json_next(const json *j, int k);
static int json_number(const json *j, int k, double *out);
static int json_streq(const json *j, int k, const char *s);
static char *json_string_dup(const json *j, int k, size_t *len);
static void safetensors_write(const char *path, const st_entry *e, int n, const char *metadata_json,
                              void (*fill)(void *ctx, int i, void *buf, size_t nbytes), void *ctx);
static Model *model_load(const char *path);
static void model_free(Model *m);
static void tensor_release(const Model *m, const Tensor *t);
static void layer_release(const Model *m, const Layer *L);
static void model_check_finite(const Model *m);
static int allow_nonfinite;   /* --allow-nonfinite: see model_check_finite */
static void model_describe(const Model *m, FILE *fp);
static void write_hf_config(const char *path, const Config *c, const char *extra);
void tokenizer_free(tokenizer *t);
static tokenizer *tokenizer_try_load(const char *path, char *err, size_t errlen);
tokenizer *tokenizer_load(const char *path);
tokenizer *tokenizer_for_model(const char *model_path);
int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_bos(const tokenizer *t);
int tokenizer_eos(const tokenizer *t);
static tokenizer *run_tokenizer(const char *tok_path, const char *model_path, const Config *c);
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int bos, int special, int **ids);
const char *tokenizer_decode(const tokenizer *t, int prev, int id, size_t *len);
static void sha256_hex(const void *data, size_t n, char hex[65]);
static int cmd_synth(int argc, char **argv);

/* ------------------------------------------------------------------------------------------ */
/* 3. Schemes: where each one rounds; weights quantized once per scheme                       */
/* ------------------------------------------------------------------------------------------ */
static emu_dtype fp8_fmt_arg(const char *opt, const char *v) {
    if (!strcmp(v, "e4m3")) return EMU_E4M3;
    if (!strcmp(v, "e5m2")) return EMU_E5M2;
    fatal("%s: expected e4m3 or e5m2, got '%s'", opt, v);
}
static Scheme scheme_make(const char *name, const SchemeOptions *o) {
    static const SchemeOptions none = {0};
    if (!o) o = &none;
    Scheme q;
    memset(&q, 0, sizeof q);
    int k = -1;
    for (int i = 0; i < (int)(sizeof scheme_names / sizeof scheme_names[0]); i++) if (!strcmp(name, scheme_names[i])) k = i;
    if (k < 0) {
        char known[512] = "";
        for (int i = 0; i < N_SCHEMES; i++) snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", scheme_names[i]);
        fatal("unknown scheme '%s' (known: %s)", name, known);
    }
    q.kind = (scheme_kind)k;
    q.wfmt = q.afmt = EMU_E4M3;
    q.wgran = q.kind == SCHEME_W8A8_STATIC ? GRAN_TENSOR : q.kind == SCHEME_W8A8_BLOCK ? GRAN_BLOCK : GRAN_CHANNEL;
    static const int amodes[N_SCHEMES] = {[SCHEME_NVFP4] = AMODE_QDQ_NVFP4, [SCHEME_MXFP4] = AMODE_QDQ_MXFP4, [SCHEME_MXFP8] = AMODE_QDQ_MXFP8,
                                          [SCHEME_W8A8] = AMODE_TOKEN, [SCHEME_W8A8_STATIC] = AMODE_TENSOR_STATIC, [SCHEME_W8A8_BLOCK] = AMODE_GROUP,
                                          [SCHEME_INT8] = AMODE_INT8_TOKEN, [SCHEME_W4A8_FP4_M1] = AMODE_TOKEN, [SCHEME_W4A8_FP4_M2] = AMODE_TOKEN};   /* others AMODE_NONE */
    q.amode = amodes[q.kind];
    q.bf16_arith = 1;
    q.kv = EMU_F32;
    /* exact accumulation by default; weight-only GEMMs (bf16 × fp8 products) accumulate with fp32 FMAs */
    q.accum = q.kind == SCHEME_FP8_W ? EMU_ACC_FP32 : EMU_ACC_EXACT;
    emu_accum default_accum = q.accum;
    q.scale_ub = o->scale_ub;
    q.scales = o->scales;
    q.quant_lm_head = o->quant_lm_head;
    int quant = q.kind >= SCHEME_FP8_W;
    if (q.kind == SCHEME_INT8) q.wfmt = q.afmt = EMU_I8;
    if (o->act_format && quant && q.kind != SCHEME_INT8 && q.kind != SCHEME_FP8_W) q.afmt = fp8_fmt_arg("--act-format", o->act_format);
    if (o->weight_format && quant && q.kind != SCHEME_INT8 && q.kind < SCHEME_W4A8_FP4_M1) q.wfmt = fp8_fmt_arg("--weight-format", o->weight_format);
    if (o->weight_scale && q.kind == SCHEME_FP8_W) {
        if (!strcmp(o->weight_scale, "tensor")) q.wgran = GRAN_TENSOR;
        else if (strcmp(o->weight_scale, "channel")) fatal("--weight-scale: expected channel or tensor");
    }
    if (o->weight_arith) {
        if (!strcmp(o->weight_arith, "fp32")) q.bf16_arith = 0;
        else if (strcmp(o->weight_arith, "bf16")) fatal("--weight-arith: expected bf16 or fp32");
    }
    if (o->kv && q.kind != SCHEME_FP32) {
        if (!strcmp(o->kv, "fp8-e4m3")) q.kv = EMU_E4M3;
        else if (!strcmp(o->kv, "fp8-e5m2")) q.kv = EMU_E5M2;
        else if (strcmp(o->kv, "none")) fatal("--kv: expected fp8-e4m3, fp8-e5m2 or none, got '%s'", o->kv);
    }
    if (o->accum) {
        int a = emu_accum_from_name(o->accum);
        if (a < 0) fatal("--accum: unknown model '%s' (exact, fp32, hopper, ada, cublaslt, fast)", o->accum);
        q.accum = (emu_accum)a;
    }
    if (q.kind == SCHEME_W8A8_STATIC && !q.scales)
        fatal("scheme w8a8-static needs static activation scales: --scales FILE (written by llama_fp8 calibrate)");
    if (q.kind == SCHEME_NVFP4 && !q.scales)
        fatal("scheme nvfp4 needs the activations' calibrated absmax for its input global scales: --scales FILE (written by llama_fp8 calibrate)");
    if (q.kind >= SCHEME_W4A16 && q.kind < SCHEME_FP8_W) q.quant_lm_head = 0;   /* the presets leave lm_head in bf16; the FP8 options do not apply */
    snprintf(q.name, sizeof q.name, "%s", name);
    char mods[64] = "";
    if (quant && q.kind != SCHEME_INT8 && q.wfmt == EMU_E5M2) strcat(mods, " w:e5m2");
    if (quant && q.kind != SCHEME_INT8 && q.kind != SCHEME_FP8_W && q.afmt == EMU_E5M2) strcat(mods, " a:e5m2");
    if (q.kind == SCHEME_FP8_W && q.wgran == GRAN_TENSOR) strcat(mods, " tensor");
    if (quant && !q.bf16_arith) strcat(mods, " fp32-arith");
    if (q.kv != EMU_F32) strcat(mods, q.kv == EMU_E4M3 ? " kv:e4m3" : " kv:e5m2");
    if (quant && q.quant_lm_head) strcat(mods, " +lm_head");
    if (quant && q.accum != default_accum) { strcat(mods, " "); strcat(mods, emu_accum_names[q.accum]); }
    if (mods[0]) snprintf(q.name + strlen(q.name), sizeof q.name - strlen(q.name), "(%s)", mods + 1);
    return q;
}
static Scheme scheme_by_name(const char *name) { return scheme_make(name, NULL); }

/* The scheme a quantized checkpoint prescribes (-q checkpoint, the default for such models): its
 * stored FP8 weights and scales, its activation scheme, its static input / KV scales — run as vLLM
 * runs it. Other models: the named scheme (default `dflt`). */
static const char *const ckpt_wf_formats[] = {"pack-quantized", "nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp8-quantized"};   /* CkptQuant.wf - 1 */
static Scheme scheme_for_model(const Model *m, const char *name, const char *dflt, const SchemeOptions *o) {
    if (!m->quant.present) {
        if (name && !strcmp(name, "checkpoint")) fatal("-q checkpoint: %s is not a quantized checkpoint", m->path);
        return scheme_make(name ? name : dflt, o);
    }
    if (name && strcmp(name, "checkpoint"))
        fatal("%s is %s checkpoint (%s%s%s): it runs as stored (-q checkpoint), not as '%s'", m->path, m->quant.wf || m->quant.act == AMODE_INT8_TOKEN ? "a quantized" : "an FP8",
              m->quant.method, m->quant.wf ? ", " : "", m->quant.wf ? ckpt_wf_formats[m->quant.wf - 1] : "", name);
    const CkptQuant *cq = &m->quant;
    if (cq->wf) {   /* weights dequantized at load (st_wf_linear): the weight-only scheme's forward pass on them */
        SchemeOptions so = o ? *o : (SchemeOptions){0};
        if (so.kv) fatal("%s: --kv on a %s checkpoint is not supported", m->path, ckpt_wf_formats[cq->wf - 1]);
        static const char *const sn[] = {"w4a16", "nvfp4a16", "mxfp4a16", "mxfp8a16"};
        const char *nm0 = cq->act == AMODE_QDQ_NVFP4 ? "nvfp4" : cq->act == AMODE_QDQ_MXFP4 ? "mxfp4" : cq->act == AMODE_QDQ_MXFP8 ? "mxfp8" : sn[cq->wf - 1];
        so.scales = NULL;
        if (cq->act == AMODE_QDQ_NVFP4) {   /* the stored input_global_scale of each site */
            int L = m->c.n_layers;
            ScaleSet *ss = xcalloc(1, sizeof *ss);
            ss->n_layers = L;
            ss->act = xcalloc(L, sizeof *ss->act);
            ss->act_scale = xcalloc(L, sizeof *ss->act_scale);
            for (int l = 0; l < L; l++)
                for (int site = 0; site < N_SITES; site++) ss->act_scale[l][site] = m->layers[l].in_scale[site];
            ss->source = m->path;
            so.scales = ss;
        }
        Scheme q = scheme_make(nm0, &so);
        char nm[sizeof q.name];
        snprintf(nm, sizeof nm, "checkpoint:%.66s", q.name);
        memcpy(q.name, nm, sizeof nm);
        return q;
    }
    static const char *const kinds[] = {[AMODE_NONE] = "fp8-w", [AMODE_TOKEN] = "w8a8", [AMODE_TENSOR_STATIC] = "w8a8-static",
                                        [AMODE_TENSOR_DYNAMIC] = "w8a8", [AMODE_GROUP] = "w8a8-block", [AMODE_INT8_TOKEN] = "int8"};
    SchemeOptions so = o ? *o : (SchemeOptions){0};
    so.scales = NULL;
    so.quant_lm_head = cq->lm_head;
    if (cq->kv && !so.kv) so.kv = "fp8-e4m3";
    int L = m->c.n_layers;
    ScaleSet *ss = xcalloc(1, sizeof *ss);
    ss->n_layers = L;
    ss->act = xcalloc(L, sizeof *ss->act);
    ss->act_scale = xcalloc(L, sizeof *ss->act_scale);
    ss->k_amax = xcalloc(L, sizeof(float)); ss->v_amax = xcalloc(L, sizeof(float));
    ss->k_scale = xcalloc(L, sizeof(float)); ss->v_scale = xcalloc(L, sizeof(float));
    for (int l = 0; l < L; l++) {
        for (int site = 0; site < N_SITES; site++) ss->act_scale[l][site] = m->layers[l].in_scale[site];
        ss->k_scale[l] = m->layers[l].k_scale > 0 ? m->layers[l].k_scale : 1.0f;
        ss->v_scale[l] = m->layers[l].v_scale > 0 ? m->layers[l].v_scale : 1.0f;
    }
    ss->lm_head_scale = m->lm_head_in_scale;
    ss->source = m->path;
    so.scales = ss;
    Scheme q = scheme_make(kinds[cq->act], &so);
    if (cq->act == AMODE_TENSOR_DYNAMIC) q.amode = AMODE_TENSOR_DYNAMIC;
    q.wfmt = m->layers[0].wq.dtype;
    char nm[sizeof q.name];
    snprintf(nm, sizeof nm, "checkpoint:%.66s", q.name);
    memcpy(q.name, nm, sizeof nm);
    return q;
}
static int scheme_quantizes(const Scheme *q) { return q->kind >= SCHEME_FP8_W; }
/* How quant_weight makes a scheme's weights: 1 llm-compressor in bf16 arithmetic, 0 the same in fp32, WRULE_FP4_M1 / _M2
 * the FP4 weights of w4a8-fp4-m1 / -m2 (fp4_pow2_weight), as E4M3 codes with a per-channel scale. */
enum { WRULE_FP4_M1 = 2, WRULE_FP4_M2 = 3 };
static int weight_rule(const Scheme *q) {
    return q->kind == SCHEME_W4A8_FP4_M1 ? WRULE_FP4_M1 : q->kind == SCHEME_W4A8_FP4_M2 ? WRULE_FP4_M2 : q->bf16_arith;
}

/* B(x): round to the nearest bf16 value (ties to even) in bf16-based schemes; identity in fp32. */
static inline float B(const Scheme *q, float x) { return q->kind != SCHEME_FP32 ? bf16_to_float(bf16_from_float(x)) : x; }
static void B_rows(const Scheme *q, float *x, size_t n) {
    if (q->kind == SCHEME_FP32) return;
    emu_bf16_round_n(x, n);   /* bf16_to_float(bf16_from_float(x[i])) for every i */
}

/* bf16-based schemes run on bf16 weights: a model stored as F32/F16 is rounded once, like
 * model.to(torch.bfloat16) (weights and norm vectors), into a second view of the model that
 * shares everything else; BF16 checkpoints are used in place. fp32 keeps the stored weights. */
static void tensor_to_bf16(Model *m, Tensor *t) {
    if (t->dtype == EMU_BF16 || t->scale) return;
    size_t n = (size_t)t->rows * t->cols;
    uint16_t *d = model_own(m, n * 2);
    for (size_t i = 0; i < n; i++) d[i] = bf16_from_float(tensor_get(t, i));
    t->data = d;
    t->dtype = EMU_BF16;
}
static float *norm_to_bf16(Model *m, const float *w, int n) {
    float *d = model_own(m, n * sizeof(float));
    for (int i = 0; i < n; i++) d[i] = bf16_to_float(bf16_from_float(w[i]));
    return d;
}
static const Model *scheme_wf_view(Model *m, const Scheme *q);
static const Model *model_for_scheme(Model *m, const Scheme *q) {
    if (q->kind == SCHEME_FP32) return m;
    if (q->kind >= SCHEME_W4A16 && q->kind < SCHEME_FP8_W && !m->quant.wf) return scheme_wf_view(m, q);   /* a checkpoint's are dequantized at load */
    if (m->bf16_view) return m->bf16_view;
    Model *v = model_own(m, sizeof(Model));
    *v = *m;
    v->layers = model_own(m, m->c.n_layers * sizeof(Layer));
    memcpy(v->layers, m->layers, m->c.n_layers * sizeof(Layer));
    int tied = m->lm_head.data == m->tok_embeddings.data;
    tensor_to_bf16(m, &v->tok_embeddings);
    if (tied) v->lm_head = v->tok_embeddings; else tensor_to_bf16(m, &v->lm_head);
    for (int l = 0; l < m->c.n_layers; l++) {
        Layer *L = &v->layers[l];
        Tensor *ts[] = LAYER_LINEARS(L);
        for (int i = 0; i < 7; i++) tensor_to_bf16(m, ts[i]);
        L->attn_norm = norm_to_bf16(m, L->attn_norm, m->c.dim);
        L->ffn_norm = norm_to_bf16(m, L->ffn_norm, m->c.dim);
    }
    v->final_norm = norm_to_bf16(m, m->final_norm, m->c.dim);
    v->bf16_view = v;
    m->bf16_view = v;
    return v;
}

/* In place: the model's weights become those of its view for scheme q (verify works on one view). */
static void model_prepare(Model *m, const Scheme *q) {
    const Model *v = model_for_scheme(m, q);
    if (v == m) return;
    m->tok_embeddings = v->tok_embeddings; m->lm_head = v->lm_head;
    m->layers = v->layers; m->final_norm = v->final_norm;
}

/* INT4 (symmetric, [-8, 7], one code per int8 byte): a format of quant_blocks only (w4a16, llama_fp8 quant --format int4) */
#define FMT_INT4 ((emu_dtype)16)
/* Weight quantization as llm-compressor / compressed-tensors 0.20 does it (memoryless min-max
 * observer, symmetric; calculate_qparams + the float/int compressors): per output channel
 * (scale[N]), per tensor (scale[1]) or per 128×128 block (scale[ceil(N/128)][ceil(K/128)]).
 *   scale = absmax / (range / 2): range/2 = fmax (448, 57344) for FP8, 127.5 for INT8 (255 / 2);
 *   a zero scale becomes the scale dtype's eps (bf16: 2^-7, fp32: 2^-23);
 *   q = cast(clamp(w / scale + 0, qmin, qmax)) — the + 0 is the zero point, which turns −0 into +0;
 *   FP8 casts round to nearest even, INT8 uses torch.round (RNE) into [−128, 127].
 * With bf16_arith (a bf16 model, the default) the scale and w / scale are each rounded to bf16 —
 * double rounding, exactly as the tool does it on a bf16 model. Without it, all in fp32.
 * Non-finite weights (--allow-nonfinite only; refused at load otherwise) go as in torch: a block holding
 * NaN gets a NaN scale (torch.amax propagates it) and NaN codes, one holding ±Inf an Inf scale, its
 * finite elements code 0 and the Inf ones NaN (Inf / Inf). FP8 NaN codes are 0x7F (torch's cast would
 * keep the NaN's sign bit: 0xFF for a negative NaN — a difference in the NaN's sign only). */
static void quant_blocks(uint8_t *q, float *scale, const Tensor *W, emu_dtype fmt, int bn, int bk, int bf16_arith);
static void fp4_pow2_weight(uint8_t *q, float *scale, const Tensor *W, int m2);
static void quant_weight(uint8_t *q, float *scale, const Tensor *W, emu_dtype fmt, weight_gran granularity, int bf16_arith) {
    int N = W->rows, K = W->cols;
    if (bf16_arith >= 2) { fp4_pow2_weight(q, scale, W, bf16_arith == 3); return; }   /* weight_rule: the FP4 W4A8 schemes */
    int bn = granularity == GRAN_BLOCK ? EMU_BLOCK : granularity == GRAN_TENSOR ? N : 1;
    int bk = granularity == GRAN_BLOCK ? EMU_BLOCK : K;
    quant_blocks(q, scale, W, fmt, bn, bk, bf16_arith);
}
/* The same rule over bn x bk blocks of W (scale[ceil(N/bn)][ceil(K/bk)]): 1 x K per channel, N x K per tensor,
 * 128 x 128 blocks, 1 x G groups (compressed-tensors "group"; llama_fp8 quant). */
static void quant_blocks(uint8_t *q, float *scale, const Tensor *W, emu_dtype fmt, int bn, int bk, int bf16_arith) {
    int N = W->rows, K = W->cols;
    int nbn = (N + bn - 1) / bn, nbk = (K + bk - 1) / bk;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int i = 0; i < nbn; i++) {
        for (int j = 0; j < nbk; j++) {
            int n0 = i * bn, n1 = n0 + bn < N ? n0 + bn : N, k0 = j * bk, k1 = k0 + bk < K ? k0 + bk : K;
            float *row = xmalloc((size_t)(k1 - k0) * sizeof(float)), amax = 0;   /* one row of the block, as fp32 */
            for (int n = n0; n < n1; n++) {
                emu_load_row(row, W->data, W->dtype, (size_t)n * K + k0, k1 - k0);
                amax = fmaxf(amax, emu_absmax(row, k1 - k0));
                if (allow_nonfinite)   /* torch.amax propagates NaN: the block's scale becomes NaN (only reachable with --allow-nonfinite) */
                    for (int k = 0; k < k1 - k0; k++) if (isnan(row[k])) { amax = NAN; n = n1; break; }
            }
            float half_range = fmt == FMT_INT4 ? 7.5f : fmt == EMU_I8 ? 127.5f : emu_fmax(fmt);
            float s = amax / half_range;
            if (bf16_arith) s = bf16_to_float(bf16_from_float(s));
            if (s == 0) s = bf16_arith ? 0.0078125f : FLT_EPSILON;
            scale[(size_t)i * nbk + j] = s;
            for (int n = n0; n < n1; n++) {
                uint8_t *out = &q[(size_t)n * K + k0];
                if (n1 - n0 > 1) emu_load_row(row, W->data, W->dtype, (size_t)n * K + k0, k1 - k0);   /* one row: still in `row` */
                if (fmt != EMU_I8 && fmt != FMT_INT4) { emu_quant_weight_row(out, row, k1 - k0, s, fmt, bf16_arith); continue; }
                float lo = fmt == FMT_INT4 ? -8.0f : -128.0f, hi = fmt == FMT_INT4 ? 7.0f : 127.0f;
                for (int k = 0; k < k1 - k0; k++) {
                    float x = row[k] / s;
                    if (bf16_arith) x = bf16_to_float(bf16_from_float(x));
                    x = x + 0.0f;
                    out[k] = (uint8_t)(int8_t)rintf(fminf(fmaxf(x, lo), hi));
                }
            }
            free(row);
        }
    }
}

/* w4a8-fp4-m1, w4a8-fp4-m2: FP4 (E2M1) weights × FP8 (E4M3) activations, ZeroQuant-FP's W4A8 (Wu, Yao, He 2023,
 * arXiv 2307.09782, section 4: scales constrained so that the FP4 -> FP8 cast before an FP8 GEMM is an exponent shift).
 * Per row n of W and group g of 128 along K, in fp32 on the bf16 weights: S_g = absmax_g / 6 (0 for an all-zero group);
 *   M1: every group scale rounded up to a power of two, T_g = 2^ceil(log2 S_g); the row's scale R = max_g T_g;
 *   M2: the row keeps its largest scale R = S_max = max_g S_g, and each group's ratio to it is a power of two,
 *       T_g = S_max * 2^-k_g with k_g = floor(log2(S_max / S_g)) (the largest k with S_max * 2^-k >= S_g);
 * both round a scale up, never down, so no weight is clipped by the constraint (our reading of the definitions; no
 * reference implementation was available to compare with). q = e2m1(clamp(w / T_g, +-6)) (nearest even), and the GEMM
 * reads the E4M3 code of q * (T_g / R) = q * 2^-j_g (an exponent shift; exact while j_g <= 8, below that the E4M3
 * subnormals round it) with the per-channel scale R: from there the scheme is w8a8's (E4M3 per-token activations,
 * vLLM's epilogue, --accum). K must be a multiple of 128. */
enum { FP4_GROUP = 128 };
static void fp4_pow2_weight(uint8_t *q, float *scale, const Tensor *W, int m2) {
    int N = W->rows, K = W->cols, ng = K / FP4_GROUP;
    if (K % FP4_GROUP) fatal("w4a8-fp4: a weight has %d input features, not a multiple of the group size %d", K, FP4_GROUP);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = xmalloc((size_t)K * sizeof(float)), *S = xmalloc((size_t)ng * sizeof(float)), *T = xmalloc((size_t)ng * sizeof(float));
        emu_load_row(row, W->data, W->dtype, (size_t)n * K, K);
        float R = 0;
        for (int g = 0; g < ng; g++) {
            S[g] = emu_absmax(row + (size_t)g * FP4_GROUP, FP4_GROUP) / 6.0f;
            if (!m2 && S[g] > 0) {
                int e;
                float f = frexpf(S[g], &e);             /* S = f * 2^e, f in [0.5, 1) */
                T[g] = f == 0.5f ? S[g] : ldexpf(1.0f, e);   /* the smallest power of two >= S */
            } else T[g] = S[g];
            R = fmaxf(R, T[g]);
        }
        if (m2)
            for (int g = 0; g < ng; g++) {
                if (S[g] == 0) { T[g] = 0; continue; }
                int k = 0;
                while (k < 300 && ldexpf(R, -(k + 1)) >= S[g]) k++;   /* exact comparisons: ldexp is exact until underflow */
                T[g] = ldexpf(R, -k);
            }
        for (int g = 0; g < ng; g++)
            for (int k = 0; k < FP4_GROUP; k++) {
                size_t i = (size_t)g * FP4_GROUP + k;
                float v = T[g] > 0 ? fp8_to_float(fp8_from_float(fminf(fmaxf(row[i] / T[g], -6.0f), 6.0f), FP4_E2M1, FP8_SATFINITE), FP4_E2M1) : 0.0f;
                q[(size_t)n * K + i] = fp8_from_float(v * (T[g] / R) + 0.0f, FP8_E4M3, FP8_SATFINITE);   /* T / R: a power of two */
            }
        scale[n] = R > 0 ? R : 1.0f;
        free(row); free(S); free(T);
    }
}

/* ---- The weight-only formats of the decision table (compressed-tensors 0.20 presets as llm-compressor 0.14 writes them) ----
 * Each quantizes every Linear weight of the layers (lm_head and embeddings stay bf16, as the presets ignore lm_head) in
 * groups of G along K, from the bf16 weights, with the library's arithmetic (bf16 where it computes in the weight dtype):
 *   w4a16     INT4, G = 128: s = B(absmax / 7.5) (0 -> 2^-7); q = rne(clamp(B(w / s), -8, 7)) (quant_blocks).
 *   w4a16-mse the same codes under the scales of the mse observer (int4_mse_scales: MSE-optimal clipping).
 *   nvfp4a16  E2M1, G = 16, E4M3 group scales under an fp32 global scale g:
 *               g = B(B(1 / A) * 2688) (torch's 2688 / A on a bf16 tensor), A = absmax over the tensor, or over q/k/v and over gate/up together (llm-compressor fuses
 *                 their global scales, as vLLM needs one per fused GEMM); A = 0 gives g = 1 (torch.nan_to_num of inf);
 *               s = e4m3(clamp(g * B(absmax_group / 6), +-448)) (0 -> 0.125, the E4M3 eps); stored: s (E4M3 byte), g;
 *               q = e2m1(clamp(w / (s / g) + 0, +-6)), ties to even, fp32 arithmetic. The + 0 (a zero point in MXFP8, torch.sign(0) = 0
 *               in the E2M1 cast) makes a -0 weight code +0; a negative weight that rounds to zero keeps its sign (E2M1 code 0x8).
 *   mxfp4a16  E2M1, G = 32, E8M0 scales (OCP MX): p = absmax_group with its bf16 bits + 0x20 masked to sign and exponent
 *             (rounds the absmax up to the next power of two from 1.75 * 2^e on), s = 2^(log2 p - 2) (code 127 + log2 p - 2,
 *             clamped to [0, 255]; absmax 0 -> code 0); q = e2m1(clamp(B(w / s) + 0, +-6)).
 *   mxfp8a16  E4M3, G = 32, E8M0 scales: as mxfp4a16 with s = 2^(log2 p - 8), q = e4m3(clamp(B(w / s) + 0, +-448)).
 * Dequantized as vLLM's emulation and compressed-tensors' decompression do, into bf16: w' = B(q * s) (INT4, MX: exact
 * product), B(q * (s / g)) in fp32 (NVFP4). The schemes run bf16's forward pass on those weights (a view made once
 * per model: a bf16 copy of the Linear weights), on every backend. */
static const struct { const char *name, *ct_format; } wf_info[N_WF] = {   /* wformat and the group sizes: emu/ops.h */
    {"w4a16", "pack-quantized"}, {"nvfp4a16", "nvfp4-pack-quantized"}, {"mxfp4a16", "mxfp4-pack-quantized"}, {"mxfp8a16", "mxfp8-quantized"}};
static inline float Bf(float x) { return bf16_to_float(bf16_from_float(x)); }
/* NVFP4's global scale from the absmax A of the (fused) tensor(s): generate_gparam in the weight dtype. */
static float nvfp4_global_scale(float A) {
    float g = Bf(Bf(1.0f / fmaxf(A, FLT_MIN)) * 2688.0f);   /* 448 * 6 / max(A, tiny): torch's scalar / tensor is reciprocal(t) * scalar, in bf16 */
    return isfinite(g) ? g : 1.0f;
}
/* One row of K weights (bf16 values as floats) into codes (one per byte: INT4 as int8, E2M1 in the low nibble with
 * sign bit 0x8, E4M3) and K / G group scales (their float values); g: NVFP4's global scale. */
static void wf_quant_row(wformat f, const float *w, int K, float g, uint8_t *q, float *scales) {
    int G = emu_wf_group(f);
    for (int j = 0; j < K / G; j++) scales[j] = emu_wf_quant_group(f, w + (size_t)j * G, g, q + (size_t)j * G);
}
/* llm-compressor's "mse" weight observer on INT4 groups (`-q w4a16-mse`, `gptq --observer mse`): observers/mse.py
 * MovingAverageMSEObserver and mse_quant.py _grid_search_mse, the eager (CPU) path, defaults maxshrink 0.2, grid 100,
 * patience 5, norm 2.4 (a weight is observed once: the moving average does not enter). On each group of 128, in bf16 as
 * the tool runs on a bf16 weight: mn, mx = the group's min and max; for step i = 0..19, p = fp32(1 - i/100):
 *   s_i = calculate_qparams(B(mn * p), B(mx * p)) = B(max(-min(., 0), max(., 0)) / 7.5) (0 -> 2^-7);
 *   err_i = B(sum_k B(d_k ^ 2.40625)), d_k = |B(B(c_k * s_i) - w_k)|, c_k = rne(clamp(B(w_k / s_i) + 0, -8, 7))
 *   (fake_quantize; torch's pow on a bf16 tensor rounds the exponent 2.4 to bf16, and |d|^e is powf's rounded to bf16:
 *   mse_pow, all 32640 finite values checked against torch; the sum is fp32 in torch's order for a bf16 row of 128,
 *   mse_sum128, 0 of 720,000 random rows differ).
 * A group keeps the first step with the strictly smallest err (the tool's `err < best_error`, best starting at the
 * largest bf16). The search stops after 5 steps in a row in which no group of the whole tensor improved: the steps a
 * group sees depend on the tensor, so the errors of every group are computed first (int4_mse_scales). */
enum { MSE_STEPS = 20, MSE_PATIENCE = 5 };
static float mse_pow[32768];   /* B(x ^ 2.40625) for the non-negative bf16 x of bits b */
static void mse_pow_init(void) {
    static int done;
    if (done) return;
    for (int b = 0; b < 32768; b++) mse_pow[b] = Bf(powf(bf16_to_float((uint16_t)b), 2.40625f));
    done = 1;
}
static float mse_sum128(const float *e) {   /* torch.sum of 128 bf16 (CPU): 16 bf16 loaded as two 8-float halves, added */
    float v[8][8], a[8], r = 0;
    for (int i = 0; i < 8; i++)
        for (int l = 0; l < 8; l++) v[i][l] = e[16 * i + l] + e[16 * i + 8 + l];
    for (int l = 0; l < 8; l++) a[l] = (((v[0][l] + v[4][l]) + (v[1][l] + v[5][l])) + (v[2][l] + v[6][l])) + (v[3][l] + v[7][l]);
    for (int l = 0; l < 8; l++) r += a[l];
    return r;
}
/* The candidates' errors of one group of 128. The weights are finite (non-finite ones are refused at load), so the
 * bf16 rounding needs no NaN case and the clamps are plain comparisons: the same values as emu_int4_codes' (which
 * make the stored codes), in a loop the compiler vectorizes (2.5x faster with AVX-512). */
static inline __attribute__((always_inline)) float bf_finite(float x) {
    uint32_t u; memcpy(&u, &x, 4); u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000u; memcpy(&x, &u, 4); return x;
}
/* |B(B(c * s) - x)| of one candidate scale s, as bf16 bits (the index into mse_pow); compiled twice (AVX-512, generic) */
static inline __attribute__((always_inline)) void mse_diffs(const float *x, float s, uint16_t *d) {
    for (int k = 0; k < 128; k++) {
        float v = bf_finite(x[k] / s) + 0.0f;
        v = v < -8.0f ? -8.0f : v > 7.0f ? 7.0f : v;
        float r = bf_finite(bf_finite(__builtin_rintf(v) * s) - x[k]);
        uint32_t u; memcpy(&u, &r, 4);
        d[k] = (uint16_t)((u >> 16) & 0x7FFF);
    }
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void mse_diffs_avx512(const float *x, float s, uint16_t *d) { mse_diffs(x, s, d); }
static void mse_diffs_generic(const float *x, float s, uint16_t *d) { mse_diffs(x, s, d); }
static void int4_mse_errs(const float *x, float err[MSE_STEPS]) {
    float mn = x[0], mx = x[0], e[128];
    uint16_t d[128];
    int simd = emu_have_avx512();
    for (int k = 1; k < 128; k++) { mn = x[k] < mn ? x[k] : mn; mx = x[k] > mx ? x[k] : mx; }
    for (int i = 0; i < MSE_STEPS; i++) {
        float p = (float)(1.0 - i / 100.0), s = emu_int4_scale(Bf(mn * p), Bf(mx * p));
        if (simd) mse_diffs_avx512(x, s, d); else mse_diffs_generic(x, s, d);
        for (int k = 0; k < 128; k++) e[k] = mse_pow[d[k]];
        err[i] = Bf(mse_sum128(e));
    }
}
/* The observer's scales of one N x K weight (K a multiple of 128), row n's groups at scales[n * K/128 ...]. */
static void int4_mse_scales(const Tensor *t, float *scales) {
    int N = t->rows, K = t->cols, ng = K / 128;
    size_t NG = (size_t)N * ng;
    float *err = xmalloc(NG * MSE_STEPS * sizeof(float)), *best = xmalloc(NG * sizeof(float));
    unsigned char *bi = xcalloc(NG, 1);
    mse_pow_init();
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = xmalloc((size_t)K * sizeof(float));
        emu_load_row(row, t->data, t->dtype, (size_t)n * K, K);
        for (int j = 0; j < ng; j++) int4_mse_errs(row + (size_t)j * 128, err + ((size_t)n * ng + j) * MSE_STEPS);
        free(row);
    }
    for (size_t g = 0; g < NG; g++) best[g] = 0x1.fep127f;   /* torch.finfo(bfloat16).max */
    for (int i = 0, idle = 0; i < MSE_STEPS; i++) {
        int any = 0;
        for (size_t g = 0; g < NG; g++)
            if (err[g * MSE_STEPS + i] < best[g]) { best[g] = err[g * MSE_STEPS + i]; bi[g] = (unsigned char)i; any = 1; }
        if (any) idle = 0;
        else if (++idle >= MSE_PATIENCE) break;
    }
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = xmalloc((size_t)K * sizeof(float));
        emu_load_row(row, t->data, t->dtype, (size_t)n * K, K);
        for (int j = 0; j < ng; j++) {
            const float *x = row + (size_t)j * 128;
            float mn = x[0], mx = x[0], p = (float)(1.0 - bi[(size_t)n * ng + j] / 100.0);
            for (int k = 1; k < 128; k++) { mn = fminf(mn, x[k]); mx = fmaxf(mx, x[k]); }
            scales[(size_t)n * ng + j] = emu_int4_scale(Bf(mn * p), Bf(mx * p));
        }
        free(row);
    }
    free(err); free(best); free(bi);
}
/* NVFP4 global scales of one layer's seven Linears (q, k, v, o, gate, up, down): q/k/v share one, gate/up another. */
static void nvfp4_layer_globals(Tensor *const ts[7], float g[7]) {
    float a[7];
    for (int i = 0; i < 7; i++) {
        size_t n = (size_t)ts[i]->rows * ts[i]->cols;
        float m = 0;
        #pragma omp parallel for reduction(max: m) schedule(static)
        for (size_t k = 0; k < n; k++) m = fmaxf(m, fabsf(tensor_get(ts[i], k)));
        a[i] = m;
    }
    float qkv = fmaxf(fmaxf(a[0], a[1]), a[2]), gu = fmaxf(a[4], a[5]);
    float A[7] = {qkv, qkv, qkv, a[3], gu, gu, a[6]};
    for (int i = 0; i < 7; i++) g[i] = nvfp4_global_scale(A[i]);
}
static const char *const linear_names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
static const int linear_sites[7] = {SITE_QKV, SITE_QKV, SITE_QKV, SITE_O, SITE_GATEUP, SITE_GATEUP, SITE_DOWN};   /* the activation site each reads */
/* Codes and scales of one weight (N x K) in format f (K a multiple of the group size); mse: INT4's scales by the mse
 * observer (int4_mse_scales) instead of the groups' absmax. */
static void wf_quant_tensor(wformat f, int mse, const Tensor *t, float g, uint8_t *codes, float *scales) {
    int N = t->rows, K = t->cols, G = emu_wf_group(f);
    if (mse) int4_mse_scales(t, scales);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = xmalloc((size_t)K * sizeof(float));
        emu_load_row(row, t->data, t->dtype, (size_t)n * K, K);
        if (mse)
            for (int j = 0; j < K / G; j++) emu_int4_codes(row + (size_t)j * G, G, scales[(size_t)n * (K / G) + j], codes + (size_t)n * K + (size_t)j * G);
        else wf_quant_row(f, row, K, g, codes + (size_t)n * K, scales + (size_t)n * (K / G));
        free(row);
    }
}
static const Model *wf_view(Model *m, wformat f, int mse) {
    int slot = mse ? N_WF : f;
    if (m->wf_views[slot]) return m->wf_views[slot];
    Scheme bq = scheme_by_name("bf16");
    const Model *b = model_for_scheme(m, &bq);
    Model *v = model_own(m, sizeof(Model));
    *v = *b;
    v->layers = model_own(m, m->c.n_layers * sizeof(Layer));
    memcpy(v->layers, b->layers, m->c.n_layers * sizeof(Layer));
    int G = emu_wf_group(f);
    for (int l = 0; l < m->c.n_layers; l++) {
        Layer *L = &v->layers[l];
        Tensor *ts[7] = LAYER_LINEARS(L);
        for (int i = 0; i < 7; i++)
            if (ts[i]->cols % G)
                fatal("%s: model.layers.%d.%s has %d input features, not a multiple of the group size %d (llm-compressor refuses such a layer too)",
                      wf_info[f].name, l, linear_names[i], ts[i]->cols, G);
        float g[7] = {1, 1, 1, 1, 1, 1, 1};
        if (f == WF_NVFP4) nvfp4_layer_globals(ts, g);
        for (int i = 0; i < 7; i++) {
            Tensor *t = ts[i];
            int N = t->rows, K = t->cols, nk = K / G;
            uint8_t *codes = xmalloc((size_t)N * K);
            float *sc = xmalloc((size_t)N * nk * sizeof(float));
            wf_quant_tensor(f, mse, t, g[i], codes, sc);
            uint16_t *d = model_own(m, (size_t)N * K * 2);
            #pragma omp parallel for schedule(static)
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++) d[(size_t)n * K + k] = emu_wf_dequant(f, codes[(size_t)n * K + k], sc[(size_t)n * nk + k / G], g[i]);
            t->data = d; t->dtype = EMU_BF16;
            free(codes); free(sc);
        }
    }
    m->wf_views[slot] = v;
    return v;
}
static wformat scheme_wformat(const Scheme *q) {
    switch (q->kind) {
    case SCHEME_NVFP4A16: case SCHEME_NVFP4: return WF_NVFP4;
    case SCHEME_MXFP4A16: case SCHEME_MXFP4: return WF_MXFP4;
    case SCHEME_MXFP8A16: case SCHEME_MXFP8: return WF_MXFP8;
    default: return WF_INT4;
    }
}
static const Model *scheme_wf_view(Model *m, const Scheme *q) { return wf_view(m, scheme_wformat(q), q->kind == SCHEME_W4A16_MSE); }

/* Scales per weight matrix of N rows, K columns at a granularity. */
static size_t n_weight_scales(weight_gran gran, int N, int K) {
    return gran == GRAN_BLOCK ? (size_t)((N + EMU_BLOCK - 1) / EMU_BLOCK) * ((K + EMU_BLOCK - 1) / EMU_BLOCK) : gran == GRAN_TENSOR ? 1 : (size_t)N;
}

/* ---- the values passed between forward()'s ops ---- */
/* A quantized activation: what quantize_act made of a Linear's input, handed to linear() (in the
 * memory of the backend that made it). fmt EMU_F32: not quantized, the Linear reads its fp32 input. */
typedef struct {
    emu_dtype fmt;          /* E4M3 / E5M2 / I8, or EMU_F32 */
    const uint8_t *codes;   /* (T, K) codes, row-major */
    const float *scales;    /* per token (T), per tensor (1) or per 1x128 group (T, ceil(K/128)) */
    emu_scale kind;         /* EMU_SCALE_ROW / EMU_SCALE_TENSOR / EMU_SCALE_BLOCK */
} QAct;
static const QAct QACT_NONE = {EMU_F32, NULL, NULL, EMU_SCALE_ONE};

/* A Linear's weight as the GEMM reads it: the stored tensor (a quantized checkpoint's codes and
 * scales), or the codes and scales prepared once for a scheme (prepared_weight). */
typedef struct {
    const void *data; emu_dtype dtype;   /* (N, K) */
    const float *scale; weight_gran gran;
} QWeight;

/* ---- weights prepared once ----
 * A quantized Linear's codes and scales are made by quant_weight once per (tensor, format,
 * granularity, arithmetic) and reused by every later call: every chunk, and every scheme of a
 * --compare run that quantizes the same way (fp8-w and w8a8 share per-channel E4M3). The prepared
 * copies stay within a budget — half the machine's memory, or LLAMA_FP8_PREP_MEM MiB — past which
 * the least recently used are dropped and made again when needed (the same bytes, more time). With
 * large checkpoints forward() drops each layer's mapped source pages after use, so what stays
 * resident is the prepared copy: 1 byte per parameter for FP8 / INT8. */
typedef struct {
    const void *key; int rows, cols; emu_dtype fmt; weight_gran gran; int arith;
    uint8_t *codes; float *scale; size_t bytes; unsigned long long used;
} Prepared;
static Prepared *prepared;
static int n_prepared, cap_prepared;
static size_t prepared_bytes, prepared_peak;   /* now, and the most held at once (reported by ppl) */
static unsigned long long prepared_clock;

static size_t prepared_budget(void) {
    static size_t budget;
    if (budget) return budget;
    const char *e = getenv("LLAMA_FP8_PREP_MEM");
    if (e && *e) {
        char *end;
        double mib = strtod(e, &end);
        if (*end || !(mib >= 0) || mib > 1e12) fatal("LLAMA_FP8_PREP_MEM: expected a size in MiB, got '%s'", e);
        budget = (size_t)(mib * 1048576.0);
    } else {
        long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
        budget = pages > 0 && ps > 0 ? (size_t)pages * (size_t)ps / 2 : (size_t)4 << 30;
    }
    if (!budget) budget = 1;
    return budget;
}
static void prepared_drop(int i) {
    free(prepared[i].codes); free(prepared[i].scale);
    prepared_bytes -= prepared[i].bytes;
    prepared[i] = prepared[--n_prepared];
}
/* Frees every prepared weight (the model they were made from is being freed). */
static void prepared_release(void) {
    while (n_prepared) prepared_drop(n_prepared - 1);
    free(prepared); prepared = NULL; cap_prepared = 0;
}
/* For ppl's summary line: ", prepared weights 123 MB (peak)" when this run quantized weights. */
static const char *prepared_note(void) {
    static char b[64];
    if (!prepared_peak) return "";
    snprintf(b, sizeof b, ", prepared weights %.1f MB", prepared_peak / 1048576.0);
    return b;
}
static QWeight prepared_weight(const Tensor *W, emu_dtype fmt, weight_gran gran, int arith) {
    int N = W->rows, K = W->cols;
    for (int i = 0; i < n_prepared; i++) {
        Prepared *p = &prepared[i];
        if (p->key == W->data && p->rows == N && p->cols == K && p->fmt == fmt && p->gran == gran && p->arith == arith) {
            p->used = ++prepared_clock;
            return (QWeight){p->codes, fmt, p->scale, gran};
        }
    }
    size_t n = (size_t)N * K, ns = n_weight_scales(gran, N, K), bytes = n + ns * sizeof(float);
    while (n_prepared && prepared_bytes + bytes > prepared_budget()) {   /* drop the least recently used */
        int lru = 0;
        for (int i = 1; i < n_prepared; i++) if (prepared[i].used < prepared[lru].used) lru = i;
        static int told;
        if (!told++) fprintf(stderr, "llama_fp8: note: prepared weights exceed %.0f MiB (LLAMA_FP8_PREP_MEM): the least recently used are made again when needed (slower)\n",
                             prepared_budget() / 1048576.0);
        prepared_drop(lru);
    }
    if (n_prepared == cap_prepared) { cap_prepared = cap_prepared ? 2 * cap_prepared : 64; prepared = xrealloc(prepared, cap_prepared * sizeof *prepared); }
    Prepared *p = &prepared[n_prepared++];
    *p = (Prepared){W->data, N, K, fmt, gran, arith, xmalloc(n), xmalloc(ns * sizeof(float)), bytes, ++prepared_clock};
    quant_weight(p->codes, p->scale, W, fmt, gran, arith);
    prepared_bytes += bytes;
    if (prepared_bytes > prepared_peak) prepared_peak = prepared_bytes;
    return (QWeight){p->codes, fmt, p->scale, gran};
}
/* The weight a quantized Linear of scheme q multiplies by: a quantized checkpoint's as stored, else prepared. */
static QWeight scheme_weight(const Scheme *q, const Tensor *W) {
    if (W->scale) return (QWeight){W->data, W->dtype, W->scale, W->scale_gran};
    return prepared_weight(W, q->wfmt, q->wgran, weight_rule(q));
}

/* A static scale from an observed absmax: absmax / fmax, rounded to bf16 for a bf16 model (the
 * dtype llm-compressor stores input_scale / k_scale in, and the value vLLM then runs with). */
static float static_scale(const Scheme *q, float amax, emu_dtype fmt) {
    float s = amax / emu_fmax(fmt);
    return q->bf16_arith ? bf16_to_float(bf16_from_float(s)) : s;
}

/* The static activation scale of a site (layer -1: the lm_head input): the checkpoint's or calibrated one. */
static float act_static_scale(const Scheme *q, int layer, int site) {
    const ScaleSet *ss = q->scales;
    float sc = layer < 0 ? (ss->lm_head_scale > 0 ? ss->lm_head_scale : static_scale(q, ss->lm_head, q->afmt))
                         : (ss->act_scale ? ss->act_scale[layer][site] : static_scale(q, ss->act[layer][site], q->afmt));
    if (!(sc > 0)) fatal("%s: no static scale for layer %d site %s", ss->source, layer, site_names[site]);
    return sc;
}
/* The FP8 KV cache scales of layer l: calibrated or from the checkpoint, else 1. */
static void kv_scales(const Scheme *q, int l, float *ks, float *vs) {
    const ScaleSet *ss = q->scales;
    *ks = !ss ? 1.0f : ss->k_scale ? ss->k_scale[l] : static_scale(q, ss->k_amax[l], q->kv);
    *vs = !ss ? 1.0f : ss->v_scale ? ss->v_scale[l] : static_scale(q, ss->v_amax[l], q->kv);
}

/* ------------------------------------------------------------------------------------------ */
/* 4. The forward pass: the only walk over the layers, on a backend                           */
/* ------------------------------------------------------------------------------------------ */
/* forward()'s buffers, in the memory of the backend that runs it (the host's, or the GPU's). */
typedef struct {
    float *x;           /* (cap, dim) residual stream */
    float *xb;          /* (cap, dim) normalized input of a block */
    float *q;           /* (cap, n_heads * head_dim) queries, then attention output */
    float *k, *v;       /* (cap, n_kv_heads * head_dim) this call's keys and values */
    float *hb, *hb2;    /* (cap, hidden_dim) MLP gate and up */
    float *xo;          /* (cap, dim) output of a block before the residual add */
    float *kc, *vc;     /* (n_layers, max_pos, n_kv_heads * head_dim) the KV cache */
    float *logits;      /* (cap, vocab) */
    float *cosv, *sinv; /* (cap, head_dim / 2) RoPE tables of this call */
    uint8_t *qa;        /* (cap, max(dim, qd, hidden_dim)) quantized activation codes (QAct) */
    float *sa;          /* (cap, ceil(max K / 128)) their scales */
} Acts;

struct Backend;
/* Activations and the KV cache for up to `cap` tokens per forward() call, `max_pos` positions, on
 * the host; the backend (CPU by default) may keep its own copies (the GPU's: dev). */
typedef struct {
    int cap, max_pos;
    float *x, *xb, *q, *k, *v, *hb, *hb2, *xo, *logits, *cosv, *sinv, *sa;   /* as in Acts */
    uint8_t *qa;
    float *key_cache;   /* (n_layers, max_pos, n_kv_heads * head_dim) */
    float *value_cache; /* (n_layers, max_pos, n_kv_heads * head_dim) */
    float *att;         /* (threads, GQA group · max_pos) attention probabilities, one block per thread */
    float *kt; size_t kt_cap; /* attention's transposed K of one layer (grown on demand) */
    float **layer_out;  /* optional: (n_layers) buffers of (cap, dim) receiving x after each layer */
    act_observer observe; void *observe_ctx; /* optional: sees every activation site (calibrate, stats) */
    const struct Backend *be; /* where forward() runs its ops (runstate_init: the CPU) */
    int layer;          /* the layer forward() is in (n_layers: final norm and lm_head), for backends' reports */
    void *dev;          /* the GPU's activations and KV cache for this state, else NULL */
    int logits_on_device; /* the GPU backend leaves the logits on the GPU (ppl takes its statistics there) */
} RunState;
static void gpu_run_free(void *dev);   /* section 5, the GPU backend */
static const struct Backend cpu_backend;

static void runstate_init(RunState *s, const Config *c, int cap, int max_pos) {
    memset(s, 0, sizeof *s);
    size_t qd = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    s->cap = cap; s->max_pos = max_pos;
    s->be = &cpu_backend;
    s->x = xcalloc((size_t)cap * c->dim, sizeof(float));
    s->xb = xcalloc((size_t)cap * c->dim, sizeof(float));
    s->xo = xcalloc((size_t)cap * c->dim, sizeof(float));
    s->q = xcalloc((size_t)cap * qd, sizeof(float));
    s->k = xcalloc((size_t)cap * kv, sizeof(float));
    s->v = xcalloc((size_t)cap * kv, sizeof(float));
#ifdef _OPENMP
    s->att = xcalloc((size_t)omp_get_max_threads() * max_pos * (c->n_heads / c->n_kv_heads), sizeof(float));
#else
    s->att = xcalloc((size_t)max_pos * (c->n_heads / c->n_kv_heads), sizeof(float));
#endif
    s->hb = xcalloc((size_t)cap * c->hidden_dim, sizeof(float));
    s->hb2 = xcalloc((size_t)cap * c->hidden_dim, sizeof(float));
    s->key_cache = xcalloc((size_t)c->n_layers * max_pos * kv, sizeof(float));
    s->value_cache = xcalloc((size_t)c->n_layers * max_pos * kv, sizeof(float));
    s->logits = xcalloc((size_t)cap * c->vocab_size, sizeof(float));
    s->cosv = xcalloc((size_t)cap * (c->head_dim / 2), sizeof(float));
    s->sinv = xcalloc((size_t)cap * (c->head_dim / 2), sizeof(float));
    size_t kmax = (size_t)c->dim > qd ? (size_t)c->dim : qd;
    if ((size_t)c->hidden_dim > kmax) kmax = c->hidden_dim;
    s->qa = xcalloc((size_t)cap * kmax, 1);
    s->sa = xcalloc((size_t)cap * ((kmax + EMU_BLOCK - 1) / EMU_BLOCK), sizeof(float));
}
static void runstate_free(RunState *s) {
    free(s->x); free(s->xb); free(s->xo); free(s->q); free(s->k); free(s->v); free(s->att); free(s->kt);
    free(s->hb); free(s->hb2); free(s->key_cache); free(s->value_cache); free(s->logits);
    free(s->cosv); free(s->sinv); free(s->qa); free(s->sa);
    gpu_run_free(s->dev);
}

/* ---- backends ----
 * forward() walks the layers once and calls each op through a backend: the CPU's (section 5: the ops
 * on host memory, GEMMs by emu/), the GPU's (cud_* kernels on device memory) or verify's (each op
 * on both, compared, continuing with the CPU's result). Pointers an op receives are in the backend's
 * memory (its Acts); model weights and norm vectors come as the host's, and the backend finds its
 * copy. */
typedef struct Backend {
    const char *name;
    Acts (*begin)(RunState *s, const Model *m, const Scheme *q);            /* this call's buffers */
    void (*put)(void *dst, const void *src, size_t n);                       /* host → backend */
    void (*get)(void *dst, const void *src, size_t n);                       /* backend → host */
    void (*embed)(RunState *s, const Model *m, const Scheme *q, float *x, const int *ids, int T);
    void (*rmsnorm)(RunState *s, const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps);
    QAct (*quantize_act)(RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site);
    void (*linear)(RunState *s, const Scheme *q, float *out, const float *in, int T, const Tensor *W, int quantized, const QAct *a);
    void (*rope)(RunState *s, const Scheme *q, float *x, int T, int nh, int hd, const float *cosv, const float *sinv);
    void (*kv_store)(RunState *s, const Scheme *q, float *dst, const float *src, size_t n, float scale);
    void (*attention)(RunState *s, const Scheme *q, float *qbuf, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale);
    void (*swiglu)(RunState *s, const Scheme *q, float *hb, const float *hb2, size_t n);
    void (*residual)(RunState *s, const Scheme *q, float *x, const float *xo, size_t n);
    void (*end)(RunState *s);                                                /* the call is complete */
} Backend;

/* Observers (calibrate, stats) see each Linear's full-precision input right before it is quantized. */
static QAct quantize_input(const Backend *be, RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site) {
    if (s->observe) s->observe(s->observe_ctx, layer, site, x, T, K);
    return be->quantize_act(s, q, x, T, K, layer, site);
}

/* RoPE tables for positions pos0 .. pos0+T-1: (T, head_dim/2) cos and sin of the fp32 angle
 * pos · inv_freq (as transformers), computed in double, rounded to fp32 (and to bf16 in bf16-based
 * schemes). */
static void rope_tables(const Model *m, const Scheme *q, int pos0, int T, float *cosv, float *sinv) {
    int half = m->c.head_dim / 2;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < half; j++) {
            float angle = (float)(pos0 + t) * m->inv_freq[j];
            cosv[(size_t)t * half + j] = B(q, (float)cos((double)angle));
            sinv[(size_t)t * half + j] = B(q, (float)sin((double)angle));
        }
}

/* The forward pass over T tokens at positions pos0 .. pos0+T-1 (the KV cache holds the earlier
 * ones), on the backend s->be. Writes logits for rows logits_from .. T-1 into s->logits (row t at
 * (t-logits_from)*vocab; the GPU's stay on the device with s->logits_on_device), and x after each
 * layer into s->layer_out when set. This is the only walk over the layers in the program. */
static void forward(const Model *m, RunState *s, const Scheme *q, const int *ids, int T, int pos0, int logits_from) {
    const Backend *be = s->be;
    const Config *c = &m->c;
    int dim = c->dim, hd = c->head_dim, hid = c->hidden_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    int qd = nh * hd, kvd = nkv * hd;
    if (T > s->cap || pos0 + T > s->max_pos) fatal("internal: forward over %d tokens at %d exceeds the run state", T, pos0);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size) fatal("token id %d outside the vocabulary (%d)", ids[t], c->vocab_size);
    Acts a = be->begin(s, m, q);

    /* token embeddings (rows of a bf16/f16/f32 matrix, converted exactly); RoPE tables (T, hd/2) */
    be->embed(s, m, q, a.x, ids, T);
    rope_tables(m, q, pos0, T, s->cosv, s->sinv);
    be->put(a.cosv, s->cosv, (size_t)T * (hd / 2) * sizeof(float));
    be->put(a.sinv, s->sinv, (size_t)T * (hd / 2) * sizeof(float));
    float scale = (float)(1.0 / sqrt((double)hd));

    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
        float *kc = a.kc + (size_t)l * s->max_pos * kvd, *vc = a.vc + (size_t)l * s->max_pos * kvd;
        s->layer = l;

        /* ---- attention: x = B(x + o_proj(attention(rope(q), rope(k), v))) ---- */
        be->rmsnorm(s, q, a.xb, a.x, L->attn_norm, T, dim, c->norm_eps);
        QAct in = quantize_input(be, s, q, a.xb, T, dim, l, SITE_QKV);
        be->linear(s, q, a.q, a.xb, T, &L->wq, 1, &in);
        be->linear(s, q, a.k, a.xb, T, &L->wk, 1, &in);
        be->linear(s, q, a.v, a.xb, T, &L->wv, 1, &in);
        be->rope(s, q, a.q, T, nh, hd, a.cosv, a.sinv);
        be->rope(s, q, a.k, T, nkv, hd, a.cosv, a.sinv);
        if (s->observe) { s->observe(s->observe_ctx, l, SITE_K, a.k, T, kvd); s->observe(s->observe_ctx, l, SITE_V, a.v, T, kvd); }
        float ks = 1, vs = 1;
        if (q->kv != EMU_F32) kv_scales(q, l, &ks, &vs);   /* FP8 KV cache: what attention reads back is fp8(x / s) · s */
        be->kv_store(s, q, kc + (size_t)pos0 * kvd, a.k, (size_t)T * kvd, ks);
        be->kv_store(s, q, vc + (size_t)pos0 * kvd, a.v, (size_t)T * kvd, vs);
        be->attention(s, q, a.q, kc, vc, T, pos0, nh, nkv, hd, scale);
        in = quantize_input(be, s, q, a.q, T, qd, l, SITE_O);
        be->linear(s, q, a.xo, a.q, T, &L->wo, 1, &in);
        be->residual(s, q, a.x, a.xo, (size_t)T * dim);

        /* ---- MLP: x = B(x + down(B(B(silu(gate(h))) · up(h)))) ---- */
        be->rmsnorm(s, q, a.xb, a.x, L->ffn_norm, T, dim, c->norm_eps);
        in = quantize_input(be, s, q, a.xb, T, dim, l, SITE_GATEUP);
        be->linear(s, q, a.hb, a.xb, T, &L->w_gate, 1, &in);
        be->linear(s, q, a.hb2, a.xb, T, &L->w_up, 1, &in);
        be->swiglu(s, q, a.hb, a.hb2, (size_t)T * hid);
        in = quantize_input(be, s, q, a.hb, T, hid, l, SITE_DOWN);
        be->linear(s, q, a.xo, a.hb, T, &L->w_down, 1, &in);
        be->residual(s, q, a.x, a.xo, (size_t)T * dim);

        if (s->layer_out) be->get(s->layer_out[l], a.x, (size_t)T * dim * sizeof(float));
        if (m->release_pages) layer_release(m, L);
    }

    /* final norm and the classifier, for the rows the caller needs */
    s->layer = c->n_layers;
    be->rmsnorm(s, q, a.xb, a.x, m->final_norm, T, dim, c->norm_eps);
    if (logits_from < T) {
        int n = T - logits_from;
        const float *h = a.xb + (size_t)logits_from * dim;
        QAct in = QACT_NONE;
        if (q->quant_lm_head) in = quantize_input(be, s, q, h, n, dim, -1, SITE_LMHEAD);
        else if (s->observe) s->observe(s->observe_ctx, -1, SITE_LMHEAD, h, n, dim);
        be->linear(s, q, a.logits, h, n, &m->lm_head, q->quant_lm_head, &in);
        if (!s->logits_on_device) be->get(s->logits, a.logits, (size_t)n * c->vocab_size * sizeof(float));
        if (m->release_pages) tensor_release(m, &m->lm_head);
    }
    if (be->end) be->end(s);
}

/* ------------------------------------------------------------------------------------------ */
/* 5. Backends: the CPU (emu/ and the ops below), the GPU (cuda_kernels.cu), verify (both, compared) */
/* ------------------------------------------------------------------------------------------ */
/* out = B(w · B(x · rsqrt(mean(x²) + eps))) per row: Hugging Face LlamaRMSNorm. The mean of
 * squares is summed in double and rounded once to fp32 (the correctly rounded value, which any
 * fp32 summation order approximates). */
static void rmsnorm(const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps) {
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float var = (float)(ss / n);
        float rs = 1.0f / sqrtf(var + eps), *o = out + (size_t)t * n;
        for (int i = 0; i < n; i++) o[i] = xr[i] * rs;   /* B(w · B(x · rs)), one vectorisable loop per step */
        B_rows(q, o, (size_t)n);
        for (int i = 0; i < n; i++) o[i] = w[i] * o[i];
        B_rows(q, o, (size_t)n);
    }
}

/* How quantize_act's scales are laid out for scheme q: per token, per tensor or per 1x128 group. */
static emu_scale act_scale_kind(const Scheme *q) {
    return q->amode == AMODE_TENSOR_STATIC || q->amode == AMODE_TENSOR_DYNAMIC ? EMU_SCALE_TENSOR : q->amode == AMODE_GROUP ? EMU_SCALE_BLOCK : EMU_SCALE_ROW;
}
static size_t act_scale_count(const Scheme *q, int T, int K) {
    return q->amode == AMODE_GROUP ? (size_t)T * ((K + EMU_BLOCK - 1) / EMU_BLOCK) : q->amode == AMODE_TOKEN || q->amode == AMODE_INT8_TOKEN ? (size_t)T : 1;
}

/* ---- the CPU backend: forward()'s ops on host memory, through emu/ ---- */

/* nvfp4, mxfp4, mxfp8 (llm-compressor's NVFP4, MXFP4, MXFP8 presets): each Linear input x (bf16 values, [T, K]) is quantized
 * and dequantized in groups along K as compressed-tensors' forward does it (the model llm-compressor calibrates and saves,
 * run in transformers), and the bf16 GEMM reads the result (vLLM's emulation path: dequantize, then a bf16 matmul):
 *   nvfp4  groups of 16, the site's static global scale g = B(B(1 / A) * 2688) from the calibrated absmax A (llm-compressor's
 *          static_minmax observer = calibrate's minmax); s = e4m3(clamp(g * B(absmax / 6), +-448)) (0 -> 0.125), e = s / g,
 *          x' = B(e2m1(clamp(x / e + 0, +-6)) * e), fp32 arithmetic;
 *   mxfp4  groups of 32, s = 2^(E8M0 code - 127) as for the weights (emu_mx_scale_code), x' = B(e2m1(clamp(B(x / s) + 0, +-6)) * s);
 *   mxfp8  the same with E4M3 elements: s from the offset 8, x' = B(e4m3(clamp(B(x / s) + 0, +-448)) * s).
 * vLLM's own NVFP4 emulation (ref_nvfp4_quant) computes B(absmax / 6) as absmax * fp32(1/6) and x / e as x * (1 / e): it can
 * differ from this in the last bit of a scale or a rounding tie (not modelled here). */
/* The input global scale g of an nvfp4 site (1 for mxfp4 / mxfp8), for act_qdq and the GPU's cud_act_qdq. */
static float act_qdq_global(const Scheme *q, int K, int layer, int site) {
    wformat f = scheme_wformat(q);
    int G = emu_wf_group(f);
    if (K % G) fatal("scheme %s: a Linear input of %d features is not a multiple of the group size %d", q->name, K, G);
    if (f != WF_NVFP4) return 1.0f;
    const ScaleSet *ss = q->scales;
    float g = ss->act_scale ? ss->act_scale[layer][site] : nvfp4_global_scale(ss->act[layer][site]);   /* a checkpoint's input_global_scale, as stored */
    if (!(g > 0) || !isfinite(g)) fatal("%s: no NVFP4 input global scale for layer %d site %s", ss->source, layer, site_names[site]);
    return g;
}
static void act_qdq(const Scheme *q, float *x, int T, int K, int layer, int site) {
    wformat f = scheme_wformat(q);
    int G = emu_wf_group(f);
    float g = act_qdq_global(q, K, layer, site);
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)   /* the weights' rules on each group, dequantized as the weights are (emu/ops.h; the GPU's k_act_qdq) */
        for (int j = 0; j < K / G; j++) emu_wf_qdq_group(f, x + (size_t)t * K + (size_t)j * G, g);
}

/* The input of one or more Linears, quantized once for all of them (FP8 / INT8 schemes), right
 * before the GEMMs it feeds: per token (w8a8: vLLM dynamic_per_token_scaled_fp8_quant; int8),
 * per tensor with the calibrated static scale (w8a8-static: x · (1/s)), or in 1×128 groups
 * (w8a8-block). The codes and scales go to s->qa, s->sa. */
static QAct quantize_act(RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site) {
    switch (q->amode) {
    case AMODE_TOKEN: emu_quant_token(s->qa, K, s->sa, x, K, T, K, q->afmt, q->scale_ub); break;
    case AMODE_INT8_TOKEN: emu_quant_int8_token((int8_t *)s->qa, K, s->sa, x, K, T, K); break;
    case AMODE_GROUP: emu_quant_group(s->qa, K, s->sa, x, K, T, K, EMU_BLOCK, q->afmt); break;
    case AMODE_TENSOR_DYNAMIC: s->sa[0] = emu_quant_tensor_dynamic(s->qa, K, x, K, T, K, q->afmt); break;
    case AMODE_TENSOR_STATIC: {
        float sc = act_static_scale(q, layer, site);
        s->sa[0] = sc;
        emu_quant_tensor(s->qa, K, x, K, T, K, q->afmt, sc);
        break;
    }
    case AMODE_QDQ_NVFP4: case AMODE_QDQ_MXFP4: case AMODE_QDQ_MXFP8:
        act_qdq(q, (float *)x, T, K, layer, site);   /* in place: forward()'s buffer, read next by this site's Linears only */
        return QACT_NONE;
    default: return QACT_NONE; /* fp32, bf16, fp8-w: activations stay as they are */
    }
    return (QAct){q->afmt, s->qa, s->sa, act_scale_kind(q)};
}

/* out[T, W.rows] = in[T, W.cols] · Wᵀ — every Linear of the model goes through here, and from
 * here through the one GEMM interface of emu/. Baselines: fp32 GEMM on the stored weights (bf16
 * schemes round the output). Quantized: the weight prepared once for the scheme (scheme_weight),
 * the activation a as quantize_act made it (or fp32 `in` for weight-only schemes), and emu_gemm
 * applies the scaled epilogue with the chosen accumulation model. */
static void matmul(const Scheme *q, float *out, const float *in, int T, const Tensor *W) { /* the baseline GEMM */
    if (W->scale) fatal("scheme %s cannot run the FP8 weights of a quantized checkpoint", q->name);
    emu_gemm_f32(T, W->rows, W->cols, in, W->cols, W->data, W->dtype, W->cols, out, W->rows);
    B_rows(q, out, (size_t)T * W->rows);
}
static emu_scale weight_scale_kind(weight_gran g) { return g == GRAN_BLOCK ? EMU_SCALE_BLOCK : g == GRAN_TENSOR ? EMU_SCALE_TENSOR : EMU_SCALE_ROW; }
static void linear(RunState *s, const Scheme *q, float *out, const float *in, int T, const Tensor *W, int quantized, const QAct *a) {
    (void)s;
    int N = W->rows, K = W->cols;
    if (!scheme_quantizes(q) || !quantized) { matmul(q, out, in, T, W); return; }
    QWeight w = scheme_weight(q, W);
    emu_gemm_desc g = {.M = T, .N = N, .K = K,
                       .b_type = w.dtype, .B = w.data, .ldb = K, .b_scale_kind = weight_scale_kind(w.gran), .b_scale = w.scale,
                       .d_type = EMU_F32, .D = out, .ldd = N, .accum = q->accum};
    if (a->fmt == EMU_F32) { g.a_type = EMU_F32; g.A = in; g.lda = K; g.a_scale_kind = EMU_SCALE_ONE; }
    else { g.a_type = a->fmt; g.A = a->codes; g.lda = K; g.a_scale = a->scales; g.a_scale_kind = a->kind; }
    const char *why = emu_gemm_check(&g);
    if (why) fatal("scheme %s: %s", q->name, why);
    emu_gemm(&g);
    B_rows(q, out, (size_t)T * N);
}

/* FP8 KV cache (vLLM --kv-cache-dtype fp8): the cache stores fp8(x / s) with saturation; attention
 * loads fp8 · s (fp32), in the activation dtype. s = calibrated absmax / fmax, or 1.0. Without
 * one (--kv none) the cache stores x. */
static void kv_store(RunState *s, const Scheme *q, float *dst, const float *src, size_t n, float sc) {
    (void)s;
    if (q->kv == EMU_F32) { memcpy(dst, src, n * sizeof(float)); return; }
    for (size_t i = 0; i < n; i++) dst[i] = B(q, emu_kv_roundtrip(src[i], q->kv, sc));   /* emu/ops.h, the GPU's too */
}

/* RoPE, Hugging Face rotate-half layout, on one head vector at position pos:
 * out[j] = B(B(x[j]·cos) − B(x[j+h]·sin)), out[j+h] = B(B(x[j+h]·cos) + B(x[j]·sin)), j < h = hd/2,
 * angle = fp32(pos · inv_freq[j]), cos/sin computed in double, rounded to fp32 (and to bf16 in bf16
 * schemes: HF casts the tables to the activation dtype). */
static void rope_head(const Scheme *q, float *x, int hd, const float *cosv, const float *sinv) {
    int h = hd / 2;
    for (int j = 0; j < h; j++) {
        float a = x[j], b = x[j + h];
        x[j] = B(q, B(q, a * cosv[j]) - B(q, b * sinv[j]));
        x[j + h] = B(q, B(q, b * cosv[j]) + B(q, a * sinv[j]));
    }
}
/* x: (T, nh * hd), row t at position pos0 + t, tables (T, hd / 2). */
static void rope(RunState *s, const Scheme *q, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    (void)s;
    int half = hd / 2;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) rope_head(q, x + ((size_t)t * nh + h) * hd, hd, cosv + (size_t)t * half, sinv + (size_t)t * half);
}

/* The MLP's gate: hb = B(B(silu(hb)) · hb2), silu(x) = x / (1 + expf(−x)) in fp32. */
static void swiglu(RunState *s, const Scheme *q, float *hb, const float *hb2, size_t n) {
    (void)s;
    /* expf 8 lanes at a time (emu_expf_n: the library's bits), in blocks of 1024 */
    size_t nb = (n + 1023) / 1024;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        float e[1024];
        size_t i0 = b * 1024, m = n - i0 < 1024 ? n - i0 : 1024;
        for (size_t j = 0; j < m; j++) e[j] = -hb[i0 + j];
        emu_expf_n(e, e, m);
        float *h = hb + i0;   /* the same operations as one loop each, so that they vectorise: silu, B, · up, B */
        for (size_t j = 0; j < m; j++) e[j] = h[j] / (1.0f + e[j]);
        B_rows(q, e, m);
        for (size_t j = 0; j < m; j++) h[j] = e[j] * hb2[i0 + j];
        B_rows(q, h, m);
    }
}
/* The residual stream: x = B(x + xo). */
static void residual(RunState *s, const Scheme *q, float *x, const float *xo, size_t n) {
    (void)s;
    for (size_t i = 0; i < n; i++) x[i] = x[i] + xo[i];
    B_rows(q, x, n);
}

/* x[t] = the embedding row of ids[t] (bf16/f16/f32, converted exactly). */
static void embed_tokens(RunState *s, const Model *m, const Scheme *q, float *x, const int *ids, int T) {
    (void)s; (void)q;
    int dim = m->c.dim;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < dim; i++) x[(size_t)t * dim + i] = tensor_get(&m->tok_embeddings, (size_t)ids[t] * dim + i);
}

/* Causal GQA attention over T queries at positions pos0.. (query head h reads kv head h / group).
 * Scores q·k in fp32 (bf16 schemes: rounded, scaled by 1/sqrt(hd), rounded again), softmax in fp32
 * (exp(x - max), times the reciprocal of the sum, as torch's CPU softmax), P·V; the output
 * overwrites qbuf. kc, vc: the cache of this layer, rows of kvd = n_kv_heads · hd. */
static void attention(RunState *s, const Scheme *q, float *qbuf, const float *kc, const float *vc, int T, int pos0, int n_heads, int n_kv_heads, int hd, float scale) {
    int qd = n_heads * hd, kvd = n_kv_heads * hd, group = n_heads / n_kv_heads, npos_all = pos0 + T;
    /* Many query rows (a prompt, a ppl chunk) read the same cache: K is transposed once per layer,
     * kt[h][i][p] = k_p[h*hd + i], and the scores load 16 positions contiguously (same bits, emu.h).
     * Its rows are an odd multiple of 16 floats long (64 bytes times an odd number), so the hd rows one
     * pass of the scores reads fall in different L1 sets (at 512 positions, 2 KB rows fell in two). */
    size_t ldkt = ((size_t)npos_all + 15) / 16 * 16 | 16;
    int use_kt = T >= 16;
    if (use_kt) {
        size_t need = ldkt * kvd;
        if (need > s->kt_cap) { free(s->kt); s->kt = xmalloc(need * sizeof(float)); s->kt_cap = need; }
        #pragma omp parallel for schedule(static)
        for (int p0 = 0; p0 < npos_all; p0 += 64)
            for (int j = 0; j < kvd; j++)
                for (int p = p0; p < npos_all && p < p0 + 64; p++) s->kt[(size_t)j * ldkt + p] = kc[(size_t)p * kvd + j];
    }
    if (use_kt) {   /* a task: one row, the heads of one KV group together (their K and V loads shared);
                     * rows of one group after another (that group's K and V stay in cache) */
        #pragma omp parallel for collapse(2) schedule(dynamic, 4)
        for (int g = 0; g < n_kv_heads; g++)
            for (int t = 0; t < T; t++) {
#ifdef _OPENMP
                float *att = s->att + (size_t)omp_get_thread_num() * s->max_pos * group;
#else
                float *att = s->att;
#endif
                emu_attention_group_kt(qbuf + (size_t)t * qd + (size_t)g * group * hd, group, s->kt + (size_t)g * hd * ldkt, ldkt,
                                       vc + g * hd, (size_t)kvd, pos0 + t + 1, hd, scale, q->kind != SCHEME_FP32, att);
            }
        return;
    }
    #pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < n_heads; h++) {
            int npos = pos0 + t + 1;
            float *qv = qbuf + (size_t)t * qd + h * hd;
            const float *kh = kc + (h / group) * hd, *vh = vc + (h / group) * hd;
#ifdef _OPENMP
            float *att = s->att + (size_t)omp_get_thread_num() * s->max_pos * group;
#else
            float *att = s->att;
#endif
            emu_attention_row(qv, kh, vh, (size_t)kvd, npos, hd, scale, q->kind != SCHEME_FP32, att);   /* order: emu.h */
        }
    }
}

static Acts host_acts(RunState *s, const Model *m, const Scheme *q) {
    (void)m; (void)q;
    return (Acts){.x = s->x, .xb = s->xb, .q = s->q, .k = s->k, .v = s->v, .hb = s->hb, .hb2 = s->hb2, .xo = s->xo,
                  .kc = s->key_cache, .vc = s->value_cache, .logits = s->logits, .cosv = s->cosv, .sinv = s->sinv, .qa = s->qa, .sa = s->sa};
}
static void host_copy(void *dst, const void *src, size_t n) { if (dst != src && n) memcpy(dst, src, n); }
static void cpu_rmsnorm(RunState *s, const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps) { (void)s; rmsnorm(q, out, x, w, T, n, eps); }
static const Backend cpu_backend = {"cpu", host_acts, host_copy, host_copy, embed_tokens, cpu_rmsnorm, quantize_act, linear, rope, kv_store, attention, swiglu, residual, NULL};

/* The finite check: the CPU backend, each op's output scanned for NaN / ±Inf; the first one found is
 * kept (layer, op, element). ppl and generate re-run a failing chunk on it to say where a non-finite
 * value was born. */
static long long first_nonfinite(const void *data, emu_dtype t, size_t n);
static struct { const Model *m; int layer, cols; const char *op; long long at; float v; } nf;
static void nf_check(RunState *s, const char *op, const float *x, size_t n, int cols) {
    if (nf.op) return;
    long long i = first_nonfinite(x, EMU_F32, n);
    if (i >= 0) { nf.layer = s->layer; nf.op = op; nf.at = i; nf.cols = cols; nf.v = x[i]; }
}
static Acts nf_begin(RunState *s, const Model *m, const Scheme *q) { nf.m = m; return host_acts(s, m, q); }
static void nf_embed(RunState *s, const Model *m, const Scheme *q, float *x, const int *ids, int T) {
    embed_tokens(s, m, q, x, ids, T);
    nf_check(s, "token embedding", x, (size_t)T * m->c.dim, m->c.dim);
}
static void nf_rmsnorm(RunState *s, const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps) {
    rmsnorm(q, out, x, w, T, n, eps);
    nf_check(s, "rmsnorm", out, (size_t)T * n, n);
}
static QAct nf_quantize_act(RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site) {
    QAct a = quantize_act(s, q, x, T, K, layer, site);
    if (a.fmt != EMU_F32) nf_check(s, "activation quantization scales", a.scales, act_scale_count(q, T, K), 0);
    return a;
}
static void nf_linear(RunState *s, const Scheme *q, float *out, const float *in, int T, const Tensor *W, int quantized, const QAct *a) {
    linear(s, q, out, in, T, W, quantized, a);
    static char names[7][40];   /* "self_attn.q_proj output", ...: nf keeps the pointer of the first failing op */
    if (!names[0][0])
        for (int i = 0; i < 7; i++) snprintf(names[i], sizeof names[i], "%s output", linear_names[i]);
    const char *name = "lm_head output (logits)";
    if (s->layer < nf.m->c.n_layers) {
        const Layer *L = &nf.m->layers[s->layer];
        const Tensor *ts[7] = LAYER_LINEARS(L);
        for (int i = 0; i < 7; i++) if (W == ts[i]) name = names[i];
    }
    nf_check(s, name, out, (size_t)T * W->rows, W->rows);
}
static void nf_rope(RunState *s, const Scheme *q, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    rope(s, q, x, T, nh, hd, cosv, sinv);
    nf_check(s, "rope", x, (size_t)T * nh * hd, nh * hd);
}
static void nf_kv_store(RunState *s, const Scheme *q, float *dst, const float *src, size_t n, float sc) {
    kv_store(s, q, dst, src, n, sc);
    nf_check(s, "KV cache store", dst, n, 0);
}
static void nf_attention(RunState *s, const Scheme *q, float *qbuf, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    attention(s, q, qbuf, kc, vc, T, pos0, nh, nkv, hd, scale);
    nf_check(s, "attention output", qbuf, (size_t)T * nh * hd, nh * hd);
}
static void nf_swiglu(RunState *s, const Scheme *q, float *hb, const float *hb2, size_t n) {
    swiglu(s, q, hb, hb2, n);
    nf_check(s, "swiglu", hb, n, nf.m->c.hidden_dim);
}
static void nf_residual(RunState *s, const Scheme *q, float *x, const float *xo, size_t n) {
    residual(s, q, x, xo, n);
    nf_check(s, "residual add", x, n, nf.m->c.dim);
}
static const Backend finite_backend = {"finite-check", nf_begin, host_copy, host_copy, nf_embed, nf_rmsnorm, nf_quantize_act, nf_linear,
                                       nf_rope, nf_kv_store, nf_attention, nf_swiglu, nf_residual, NULL};
/* Where the first non-finite value of forward(ids[0..T)) is born, on the CPU: "layer 3, mlp.down_proj
 * output, NaN at token 17, column 5" (or a note that none was found). */
static const char *nonfinite_origin(const Model *m, const Scheme *q, const int *ids, int T, int logits_from) {
    static char b[256];
    RunState d;
    runstate_init(&d, &m->c, T, T);
    d.be = &finite_backend;
    memset(&nf, 0, sizeof nf);
    forward(m, &d, q, ids, T, 0, logits_from);
    runstate_free(&d);
    if (nf.op && !strncmp(nf.op, "lm_head", 7)) nf.at += (long long)logits_from * nf.cols;   /* logits row r is token logits_from + r */
    if (!nf.op) snprintf(b, sizeof b, "no op output was non-finite when the chunk was re-run on the CPU");
    else {
        char where[64] = "final norm / lm_head";
        if (nf.layer < m->c.n_layers) snprintf(where, sizeof where, "layer %d", nf.layer);
        char at[64];
        if (nf.cols > 0) snprintf(at, sizeof at, "token %lld, column %lld", nf.at / nf.cols, nf.at % nf.cols);
        else snprintf(at, sizeof at, "element %lld", nf.at);
        snprintf(b, sizeof b, "first non-finite value: %s, %s, %s at %s", where, nf.op, isnan(nf.v) ? "NaN" : nf.v > 0 ? "+Inf" : "-Inf", at);
    }
    return b;
}

/* The op dump (dump --ops): the CPU backend, every op's output written to DIR as .npy, named by layer and
 * site (L03.q_proj.npy), with the files each op read, in an index (DIR/ops.json). Inputs are the outputs
 * of the op before, found by the buffer they were written to. */
static void write_npy_nd(const char *path, const void *data, const char *descr, int ndim, const int64_t *shape);
static const char *kc_format_name(emu_dtype t) { return t == EMU_E4M3 ? "E4M3" : t == EMU_E5M2 ? "E5M2" : t == EMU_I8 ? "INT8" : t == FMT_INT4 ? "INT4" : "fp32"; }
typedef struct { char file[48], op[16], in[4][48], desc[192]; int layer, ndim; int64_t shape[3]; const char *dtype; } OpRec;
static struct {
    const Model *m; const Scheme *q; const char *dir; int weights, layer, seen[4];   /* seen: rmsnorm, rope, kv_store, residual calls in this layer */
    const void *buf[16]; char name[16][48];                         /* which file holds each buffer's current value */
    OpRec *rec; int n, cap;
} od;
static const char *od_name_of(const void *p) {
    for (int i = 0; i < 16; i++) if (od.buf[i] == p) return od.name[i];
    return "";
}
static void od_set(const void *p, const char *file) {
    int i = 0;
    while (i < 15 && od.buf[i] && od.buf[i] != p) i++;
    od.buf[i] = p;
    snprintf(od.name[i], sizeof od.name[i], "%s", file);
}
static int od_count(RunState *s, int k) {   /* the k-th kind of op: how many times it ran before in this layer */
    if (s->layer != od.layer) { od.layer = s->layer; memset(od.seen, 0, sizeof od.seen); }
    return od.seen[k]++;
}
/* Writes DIR/<prefix><name>.npy and records it; in: up to 4 input files (NULL ends). Returns the file name. */
static const char *od_write3(RunState *s, const char *name, const char *op, const void *data, const char *descr, int ndim, int64_t r, int64_t c, int64_t c2,
                            const char *desc, const char *in0, const char *in1, const char *in2, const char *in3) {
    if (od.n == od.cap) { od.cap = od.cap ? 2 * od.cap : 256; od.rec = xrealloc(od.rec, od.cap * sizeof *od.rec); }
    OpRec *e = &od.rec[od.n++];
    memset(e, 0, sizeof *e);
    e->layer = s->layer < od.m->c.n_layers ? s->layer : -1;
    if (e->layer >= 0) snprintf(e->file, sizeof e->file, "L%02d.%s.npy", e->layer, name);
    else snprintf(e->file, sizeof e->file, "%s.npy", name);
    snprintf(e->op, sizeof e->op, "%s", op);
    snprintf(e->desc, sizeof e->desc, "%s", desc);
    const char *ins[4] = {in0, in1, in2, in3};
    for (int i = 0; i < 4; i++) if (ins[i]) snprintf(e->in[i], sizeof e->in[i], "%s", ins[i]);
    e->ndim = ndim; e->shape[0] = r; e->shape[1] = c; e->shape[2] = c2;
    uint16_t *h = NULL;
    if (!strcmp(descr, "act")) {   /* an activation: bf16 bits in bf16 schemes (every op rounds to bf16 there), else float32 */
        size_t n = (size_t)r * (ndim == 2 ? c : 1);
        const float *f = data;
        descr = "<f4";
        if (od.q->kind != SCHEME_FP32) {
            h = xmalloc(2 * n + 2);
            for (size_t i = 0; i < n && h; i++) {
                h[i] = bf16_from_float(f[i]);
                if (!isnan(f[i]) && bf16_to_float(h[i]) != f[i]) { free(h); h = NULL; }   /* not a bf16 value: kept as float32 */
            }
            if (h) { data = h; descr = "<u2"; }
        }
    }
    e->dtype = !strcmp(descr, "<f4") ? "float32" : !strcmp(descr, "<u2") ? "bfloat16 (uint16 bits)" : !strcmp(descr, "|u1") ? "uint8" : "int8";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", od.dir, e->file);
    write_npy_nd(path, data, descr, ndim, e->shape);
    free(h);
    return e->file;
}
static const char *od_write(RunState *s, const char *name, const char *op, const void *data, const char *descr, int ndim, int64_t r, int64_t c,
                           const char *desc, const char *in0, const char *in1, const char *in2, const char *in3) {
    return od_write3(s, name, op, data, descr, ndim, r, c, 0, desc, in0, in1, in2, in3);
}
static const char *od_linear_name(const Tensor *W, const char **hf) {
    static char b[96];
    for (int l = 0; l < od.m->c.n_layers; l++) {
        const Layer *L = &od.m->layers[l];
        const Tensor *ts[7] = LAYER_LINEARS(L);
        for (int i = 0; i < 7; i++)
            if (W == ts[i]) { snprintf(b, sizeof b, "model.layers.%d.%s.weight", l, linear_names[i]); *hf = b; return strchr(linear_names[i], '.') + 1; }
    }
    *hf = "lm_head.weight";
    return "lm_head";
}
static void od_embed(RunState *s, const Model *m, const Scheme *q, float *x, const int *ids, int T) {
    embed_tokens(s, m, q, x, ids, T);
    od_set(x, od_write(s, "embed", "embed", x, "act", 2, T, m->c.dim, "token embeddings (rows of embed_tokens, exact)", NULL, NULL, NULL, NULL));
}
static void od_rmsnorm(RunState *s, const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps) {
    rmsnorm(q, out, x, w, T, n, eps);
    int k = od_count(s, 0);
    const char *nm = s->layer >= od.m->c.n_layers ? "final_norm" : k ? "ffn_norm" : "attn_norm";
    od_set(out, od_write(s, nm, "rmsnorm", out, "act", 2, T, n, "RMSNorm output (LlamaRMSNorm, weight applied)", od_name_of(x), NULL, NULL, NULL));
}
static QAct od_quantize_act(RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site) {
    QAct a = quantize_act(s, q, x, T, K, layer, site);
    if (a.fmt == EMU_F32) return a;
    char nq[32], ns[32], d[192];
    snprintf(nq, sizeof nq, "%s.act.q", site_names[site]);
    snprintf(ns, sizeof ns, "%s.act.scale", site_names[site]);
    int ng = (K + EMU_BLOCK - 1) / EMU_BLOCK;
    snprintf(d, sizeof d, "%s input quantized (%s codes, scheme %s)", site_names[site], kc_format_name(a.fmt), q->name);
    const char *fq = od_write(s, nq, "quantize", a.codes, a.fmt == EMU_I8 ? "|i1" : "|u1", 2, T, K, d, od_name_of(x), NULL, NULL, NULL);
    char fqc[48];
    snprintf(fqc, sizeof fqc, "%s", fq);
    const char *fs = a.kind == EMU_SCALE_TENSOR ? od_write(s, ns, "quantize", a.scales, "<f4", 1, 1, 0, "its scale [1] (per tensor)", od_name_of(x), NULL, NULL, NULL)
                   : a.kind == EMU_SCALE_BLOCK ? od_write(s, ns, "quantize", a.scales, "<f4", 2, T, ng, "its scales [T, ceil(K/128)] (1x128 groups)", od_name_of(x), NULL, NULL, NULL)
                                               : od_write(s, ns, "quantize", a.scales, "<f4", 2, T, 1, "its scales [T, 1] (per token)", od_name_of(x), NULL, NULL, NULL);
    od_set(a.codes, fqc);
    od_set(a.scales, fs);
    return a;
}
static void od_linear(RunState *s, const Scheme *q, float *out, const float *in, int T, const Tensor *W, int quantized, const QAct *a) {
    linear(s, q, out, in, T, W, quantized, a);
    const char *hf, *nm = od_linear_name(W, &hf);
    int N = W->rows, K = W->cols, quant = scheme_quantizes(q) && quantized;
    char wq[48] = "", ws[48] = "", acc[48] = "", d[192];
    char ain[48], ascale[48];
    snprintf(ain, sizeof ain, "%s", a->fmt != EMU_F32 ? od_name_of(a->codes) : od_name_of(in));
    snprintf(ascale, sizeof ascale, "%s", a->fmt != EMU_F32 ? od_name_of(a->scales) : "");
    if (quant) {
        QWeight w = scheme_weight(q, W);
        if (od.weights) {
            char n1[48], n2[48];
            snprintf(n1, sizeof n1, "%s.w.q", nm); snprintf(n2, sizeof n2, "%s.w.scale", nm);
            snprintf(d, sizeof d, "%s as the GEMM reads it (%s codes)", hf, kc_format_name(w.dtype));
            snprintf(wq, sizeof wq, "%s", od_write(s, n1, "weight", w.data, w.dtype == EMU_I8 ? "|i1" : "|u1", 2, N, K, d, NULL, NULL, NULL, NULL));
            int nb = (N + EMU_BLOCK - 1) / EMU_BLOCK, kb = (K + EMU_BLOCK - 1) / EMU_BLOCK;
            if (w.gran == GRAN_TENSOR) snprintf(ws, sizeof ws, "%s", od_write(s, n2, "weight", w.scale, "<f4", 1, 1, 0, "its scale [1]", NULL, NULL, NULL, NULL));
            else if (w.gran == GRAN_BLOCK) snprintf(ws, sizeof ws, "%s", od_write(s, n2, "weight", w.scale, "<f4", 2, nb, kb, "its scales [ceil(N/128), ceil(K/128)]", NULL, NULL, NULL, NULL));
            else snprintf(ws, sizeof ws, "%s", od_write(s, n2, "weight", w.scale, "<f4", 2, N, 1, "its scales [N, 1] (per channel)", NULL, NULL, NULL, NULL));
        }
        {   /* the accumulator before the epilogue: one [T, N] matrix, or with block scales one per group of 128 k, [ceil(K/128), T, N] */
            int blk = a->kind == EMU_SCALE_BLOCK || w.gran == GRAN_BLOCK, ng = blk ? (K + EMU_BLOCK - 1) / EMU_BLOCK : 1;
            float *r = xmalloc((size_t)ng * T * N * sizeof(float));
            for (int gi = 0; gi < ng; gi++) {
                int k0 = gi * EMU_BLOCK, kn = blk ? (K - k0 < EMU_BLOCK ? K - k0 : EMU_BLOCK) : K;
                const uint8_t *Bk = (const uint8_t *)w.data + (size_t)k0 * dtype_size(w.dtype);
                emu_gemm_desc g = {.M = T, .N = N, .K = kn, .b_type = w.dtype, .B = Bk, .ldb = K, .d_type = EMU_F32, .D = r + (size_t)gi * T * N, .ldd = N, .accum = q->accum};
                if (a->fmt == EMU_F32) { g.a_type = EMU_F32; g.A = in + k0; g.lda = K; }
                else { g.a_type = a->fmt; g.A = a->codes + (size_t)k0 * dtype_size(a->fmt); g.lda = K; }
                emu_gemm(&g);
            }
            char n1[48];
            snprintf(n1, sizeof n1, "%s.acc", nm);
            snprintf(d, sizeof d, "%s accumulator%s before the epilogue (--accum %s, scales not applied)", nm, blk ? "s of each group of 128 k," : "",
                     emu_accum_names[a->fmt == EMU_I8 ? EMU_ACC_EXACT : q->accum]);
            snprintf(acc, sizeof acc, "%s", blk ? od_write3(s, n1, "gemm", r, "<f4", 3, ng, T, N, d, ain, wq[0] ? wq : NULL, NULL, NULL)
                                                : od_write(s, n1, "gemm", r, "<f4", 2, T, N, d, ain, wq[0] ? wq : NULL, NULL, NULL));
            free(r);
        }
        snprintf(d, sizeof d, "%s output after the epilogue (scales applied, rounded to the activation dtype)", nm);
    } else snprintf(d, sizeof d, "%s output (%s GEMM on %s, rounded to the activation dtype)", nm, "fp32 fmaf", hf);
    od_set(out, od_write(s, nm, "linear", out, "act", 2, T, N, d, ain, ascale[0] ? ascale : NULL, wq[0] ? wq : NULL, ws[0] ? ws : NULL));
}
static void od_rope(RunState *s, const Scheme *q, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    char in[48];
    snprintf(in, sizeof in, "%s", od_name_of(x));
    rope(s, q, x, T, nh, hd, cosv, sinv);
    int k = od_count(s, 1);
    od_set(x, od_write(s, k ? "k_rope" : "q_rope", "rope", x, "act", 2, T, (int64_t)nh * hd, k ? "keys after RoPE" : "queries after RoPE", in, NULL, NULL, NULL));
}
static void od_kv_store(RunState *s, const Scheme *q, float *dst, const float *src, size_t n, float sc) {
    kv_store(s, q, dst, src, n, sc);
    int k = od_count(s, 2), kvd = od.m->c.n_kv_heads * od.m->c.head_dim;
    int64_t T = (int64_t)(n / kvd);
    const char *in = od_name_of(src);
    char in_c[48];
    snprintf(in_c, sizeof in_c, "%s", in);
    if (q->kv != EMU_F32) {
        uint8_t *codes = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) codes[i] = emu_fp8_encode_vllm(src[i] / sc, q->kv);
        char nm[32], d[192];
        snprintf(nm, sizeof nm, "%s_cache.q", k ? "v" : "k");
        snprintf(d, sizeof d, "%s cache as stored: %s codes of x / s (vLLM fp8 KV cache), s in %s_cache.scale", k ? "V" : "K", kc_format_name(q->kv), k ? "v" : "k");
        od_write(s, nm, "kv_store", codes, "|u1", 2, T, kvd, d, in_c, NULL, NULL, NULL);
        snprintf(nm, sizeof nm, "%s_cache.scale", k ? "v" : "k");
        od_write(s, nm, "kv_store", &sc, "<f4", 1, 1, 0, "the KV scale s [1]", NULL, NULL, NULL, NULL);
        free(codes);
    }
    od_write(s, k ? "v_cache" : "k_cache", "kv_store", dst, "act", 2, T, kvd, "the cache as attention reads it (this call's positions)", in_c, NULL, NULL, NULL);
}
static void od_attention(RunState *s, const Scheme *q, float *qbuf, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    char in[48];
    snprintf(in, sizeof in, "%s", od_name_of(qbuf));
    attention(s, q, qbuf, kc, vc, T, pos0, nh, nkv, hd, scale);
    char kf[48], vf[48];
    snprintf(kf, sizeof kf, "L%02d.k_cache.npy", s->layer); snprintf(vf, sizeof vf, "L%02d.v_cache.npy", s->layer);
    od_set(qbuf, od_write(s, "attn", "attention", qbuf, "act", 2, T, (int64_t)nh * hd, "causal GQA attention output (heads concatenated)", in, kf, vf, NULL));
}
static void od_swiglu(RunState *s, const Scheme *q, float *hb, const float *hb2, size_t n) {
    char in[48];
    snprintf(in, sizeof in, "%s", od_name_of(hb));
    swiglu(s, q, hb, hb2, n);
    int hid = od.m->c.hidden_dim;
    od_set(hb, od_write(s, "swiglu", "swiglu", hb, "act", 2, (int64_t)(n / hid), hid, "silu(gate) * up", in, od_name_of(hb2), NULL, NULL));
}
static void od_residual(RunState *s, const Scheme *q, float *x, const float *xo, size_t n) {
    char in[48];
    snprintf(in, sizeof in, "%s", od_name_of(x));
    residual(s, q, x, xo, n);
    int k = od_count(s, 3), dim = od.m->c.dim;
    od_set(x, od_write(s, k ? "mlp_residual" : "attn_residual", "residual", x, "act", 2, (int64_t)(n / dim), dim, "the residual stream after the add", in, od_name_of(xo), NULL, NULL));
}
static Acts od_begin(RunState *s, const Model *m, const Scheme *q) { od.m = m; od.q = q; od.layer = -2; s->layer = -1; return host_acts(s, m, q); }
static const Backend ops_backend = {"op-dump", od_begin, host_copy, host_copy, od_embed, od_rmsnorm, od_quantize_act, od_linear,
                                    od_rope, od_kv_store, od_attention, od_swiglu, od_residual, NULL};

/* The GPU path. `make CUDA=1` compiles cuda_kernels.cu with nvcc and defines LLAMA_FP8_CUDA; the
 * kernels there are the GPU twins of emu/ (quantization, GEMMs) and of forward()'s elementwise ops.
 * At run time a CUDA build uses a GPU of compute capability 8.9 (Ada) or 9.x (Hopper) when one is
 * present and --cpu (or LLAMA_FP8_DEVICE=cpu) is not given; otherwise everything runs on the CPU.
 * `llama_fp8 verify` checks the GPU against the CPU (see cmd_verify). Test programs (TESTING) see the
 * CPU-only variant: they are linked without cuda_kernels.o. */
#if defined(LLAMA_FP8_CUDA) && !defined(TESTING)
#define GPU_BUILD 1
#endif
#ifdef GPU_BUILD
#include "cuda_kernels.h"
#endif

static int parse_ids(const char *s, int vocab, int **out);     /* section 6 */
static double log_prob(const float *logits, int n, int target);

static int gpu_state = -1;   /* -1: not probed yet, 0: this run uses the CPU, 1: the GPU */
static int gpu_force_cpu;    /* --cpu */
static char gpu_why[256];    /* the GPU's description, or why there is none */
static int gpu_twin_mode __attribute__((unused));    /* LLAMA_FP8_DEVICE=twin: the GPU path runs on host twins (GEMMs: the models) */

/* Called by commands that take --cpu. */
static void gpu_set_force_cpu(int on) { gpu_force_cpu = on; gpu_state = -1; }

/* 1 when this run computes on the GPU. */
static int gpu_active(void) {
    if (gpu_state >= 0) return gpu_state;
    const char *env = getenv("LLAMA_FP8_DEVICE");
    if (env && !strcmp(env, "cpu")) gpu_force_cpu = 1;
    if (env && !strcmp(env, "twin") && !gpu_force_cpu) {
        /* the GPU path with every kernel replaced by its host twin (checks without a GPU) */
#ifdef GPU_BUILD
        cud_twin(1);
        gpu_twin_mode = 1;
        snprintf(gpu_why, sizeof gpu_why, "GPU path on the CPU (LLAMA_FP8_DEVICE=twin: host twins of the kernels)");
        return gpu_state = 1;
#else
        fatal("LLAMA_FP8_DEVICE=twin needs a CUDA build (make CUDA=1)");
#endif
    }
#ifdef GPU_BUILD
    int found = cu_probe(gpu_why, sizeof gpu_why);
    gpu_state = found && !gpu_force_cpu;
    if (found && gpu_force_cpu) {
        char d[200];
        snprintf(d, sizeof d, "%.199s", gpu_why);
        snprintf(gpu_why, sizeof gpu_why, "--cpu given, %s not used", d);
    }
#else
    snprintf(gpu_why, sizeof gpu_why, "built without CUDA");
    gpu_state = 0;
#endif
    return gpu_state;
}

/* For the header line of every run: "cpu (16 threads)", "cpu (16 threads; no CUDA device (...))"
 * in a CUDA build that found none, or "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)". */
static const char *device_description(void) {
    static char d[384];
#ifdef _OPENMP
    int threads = omp_get_max_threads();
#else
    int threads = 1;
#endif
    if (gpu_active()) snprintf(d, sizeof d, "%s", gpu_why);
#ifdef GPU_BUILD
    else snprintf(d, sizeof d, "cpu (%d threads; CUDA build: %s)", threads, gpu_why);
#else
    else snprintf(d, sizeof d, "cpu (%d threads)", threads);
#endif
    return d;
}

#ifdef GPU_BUILD
/* ---- checks: one line each, "ok NAME …" / "FAIL NAME: …" (the test suite's format) ---- */
static int vfails;
static void vreport(int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void vreport(int ok, const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s %s: ", ok ? "ok" : "FAIL", name);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    if (!ok) vfails++;
    fflush(stdout);
}
/* number of positions where a and b differ in their bits (NaN = NaN) */
static size_t bits_diff(const void *a, const void *b, size_t n, size_t elsize) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        const char *x = (const char *)a + i * elsize, *y = (const char *)b + i * elsize;
        if (memcmp(x, y, elsize)) {
            if (elsize == 4) { float fx, fy; memcpy(&fx, x, 4); memcpy(&fy, y, 4); if (isnan(fx) && isnan(fy)) continue; }
            d++;
        }
    }
    return d;
}
/* max |a-b| in units of b's last place, and max relative error */
static void err_stats(const float *a, const float *b, size_t n, double *max_ulp, double *max_rel) {
    *max_ulp = 0; *max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), u = b[i] != 0 ? fabs(nextafterf(fabsf(b[i]), INFINITY) - fabsf(b[i])) : FLT_MIN;
        if (isnan(a[i]) != isnan(b[i])) { *max_ulp = INFINITY; *max_rel = INFINITY; return; }
        if (isnan(a[i])) continue;
        if (d / u > *max_ulp) *max_ulp = d / u;
        if (b[i] != 0 && d / fabs(b[i]) > *max_rel) *max_rel = d / fabs(b[i]);
    }
}
/* ---- the resident forward pass ----
 * forward() on the GPU: the same contract (T tokens at positions pos0.., logits of rows
 * logits_from..T-1 into s->logits, x after each layer into s->layer_out when set) and, op for op, the
 * same formulas. Weights are uploaded on first use and stay (quantized Linears as FP8 codes + scales,
 * quantized once on the host by quant_weight, the CPU's own code); activations and the KV cache live
 * on the GPU (s->dev); per call only the token ids and RoPE tables go up and the logits come down.
 * GEMMs (gpu_gemm): "model" kernels are bit-identical to the CPU (fmaf chain, exact integer E4M3, or
 * the accumulation model per output); "cublaslt" / "mma" run on the tensor cores (the hardware's
 * accumulation: compare with emu's hopper / ada / cublaslt models, not bit for bit). */
static int gpu_gemm_choice = -1;   /* --gemm: -1 auto, else CU_GEMM_MODEL / CU_GEMM_MMA / CU_GEMM_CUBLASLT */
static void gpu_set_gemm(const char *name) {
    if (!strcmp(name, "auto")) gpu_gemm_choice = -1;
    else if (!strcmp(name, "model")) gpu_gemm_choice = CU_GEMM_MODEL;
    else if (!strcmp(name, "mma")) gpu_gemm_choice = CU_GEMM_MMA;
    else if (!strcmp(name, "cublaslt")) gpu_gemm_choice = CU_GEMM_CUBLASLT;
    else if (!strcmp(name, "wgmma")) gpu_gemm_choice = CU_GEMM_WGMMA;
    else fatal("--gemm: expected auto, model, mma, wgmma or cublaslt, got '%s'", name);
}
/* The GEMM implementation for a Linear of scheme q. auto: the bit-exact model kernels for the
 * baselines and for --accum exact / fp32; the tensor cores for the tensor-core models (hopper, ada,
 * cublaslt, fast): cuBLASLt, or our own kernel where cuBLASLt has none here (block scales, E5M2 × E5M2):
 * wgmma on compute capability 9.0, mma.sync elsewhere. */
static int gpu_gemm(const Scheme *q, int quantized, int K) {   /* K: the GEMM's depth, 0 when not known */
    int fp8 = scheme_quantizes(q) && quantized && q->amode != AMODE_NONE && q->afmt != EMU_I8 && q->wfmt != EMU_I8;
    if (gpu_gemm_choice >= 0) {
        if ((gpu_gemm_choice == CU_GEMM_MMA || gpu_gemm_choice == CU_GEMM_WGMMA) && !fp8) return CU_GEMM_MODEL;
        return gpu_gemm_choice;
    }
    if (!fp8 || q->accum == EMU_ACC_EXACT || q->accum == EMU_ACC_FP32) return CU_GEMM_MODEL;
    if (K % 16) return CU_GEMM_MODEL;   /* FP8 tensor-core kernels need K a multiple of 16 (16-byte rows) */
    int own = cu_compute_capability() == 90 ? CU_GEMM_WGMMA : CU_GEMM_MMA;   /* Hopper's FP8 tensor cores: wgmma only */
    if (q->afmt == EMU_E5M2 && q->wfmt == EMU_E5M2) return own;
    return q->wgran == GRAN_BLOCK || q->amode == AMODE_GROUP ? own : CU_GEMM_CUBLASLT;
}
static const char *gpu_gemm_name(int impl) {
    if (gpu_twin_mode && impl != CU_GEMM_MODEL) return "host twin: the accumulation model stands in for the tensor cores";
    if (impl == CU_GEMM_CUBLASLT && cu_lt_own_epilogue()) return "cuBLASLt (unscaled; the scales applied by our epilogue kernel)";
    return impl == CU_GEMM_MMA ? "mma.sync kernel" : impl == CU_GEMM_WGMMA ? "wgmma kernel" : impl == CU_GEMM_CUBLASLT ? "cuBLASLt" : "bit-exact model kernels";
}
/* For run headers: " [GPU GEMMs: cuBLASLt]" on the GPU, "" on the CPU. */
static const char *gpu_gemm_note(const Scheme *q) {
    static char b[4][128];
    static int k;
    if (!gpu_active()) return "";
    char *s = b[k++ & 3];
    snprintf(s, 128, " [GPU GEMMs: %s]", gpu_gemm_name(gpu_gemm(q, 1, 0)));
    return s;
}

/* Device copies of weights, found again by host address and how they were made. */
typedef enum {
    DEVW_STORED,     /* a Linear's weight as stored (baselines, quantized checkpoints' codes and scales) */
    DEVW_F32,        /* converted to F32 (the cuBLASLt fp32 baseline) */
    DEVW_QUANTIZED,  /* quantized as the scheme quantizes it (fmt, gran, arith) */
    DEVW_ARRAY       /* a norm vector or any host array */
} devw_how;
typedef struct {
    const void *key; devw_how how;
    emu_dtype fmt; weight_gran gran; int arith;
    void *data; float *scale; emu_dtype dtype; weight_gran scale_gran;
    size_t bytes; long used;       /* generation of the last forward call that used it */
} DevW;
static DevW **devw;              /* one allocation per entry: eviction never moves an entry in use */
static int ndevw, capdevw;
static long dev_generation;

/* An allocation that first makes room by dropping weights the current forward call has not used. */
static void *dev_alloc_evict(size_t n) {
    void *p = cud_try_alloc(n);
    for (int i = 0; !p && i < ndevw; i++)
        if (devw[i]->used != dev_generation) {
            static int told;
            if (!told++) fprintf(stderr, "llama_fp8: note: GPU memory is full: weights the current pass does not use are freed, and uploaded again when needed (slower)\n");
            cud_free(devw[i]->data); cud_free(devw[i]->scale); free(devw[i]);
            devw[i--] = devw[--ndevw];
            p = cud_try_alloc(n);
        }
    return p ? p : cud_alloc(n);   /* cud_alloc ends the run with the GPU's free memory in the message */
}
static DevW *devw_find(const void *key, devw_how how, emu_dtype fmt, weight_gran gran, int arith) {
    for (int i = 0; i < ndevw; i++) {
        DevW *w = devw[i];
        if (w->key == key && w->how == how && (how != DEVW_QUANTIZED || (w->fmt == fmt && w->gran == gran && w->arith == arith))) {
            w->used = dev_generation;
            return w;
        }
    }
    if (ndevw == capdevw) { capdevw = capdevw ? 2 * capdevw : 64; devw = xrealloc(devw, capdevw * sizeof(DevW *)); }
    DevW *w = devw[ndevw++] = xcalloc(1, sizeof(DevW));
    w->key = key; w->how = how; w->fmt = fmt; w->gran = gran; w->arith = arith; w->used = dev_generation;
    return w;
}
/* A norm vector or any host array, uploaded once. */
static void *dev_array(const void *host, size_t bytes) {
    DevW *w = devw_find(host, DEVW_ARRAY, EMU_F32, 0, 0);
    if (!w->data) { w->data = dev_alloc_evict(bytes); cud_upload(w->data, host, bytes); w->bytes = bytes; }
    return w->data;
}
/* A Linear's weight on the device: as stored (baselines, quantized checkpoints), converted to F32
 * (as_f32: the cuBLASLt fp32 baseline), or quantized as scheme q quantizes it (quant_weight). */
static DevW *dev_weight(const Tensor *W, const Scheme *q, int quantize, int as_f32) {
    int N = W->rows, K = W->cols;
    size_t n = (size_t)N * K;
    devw_how how = quantize && !W->scale ? DEVW_QUANTIZED : as_f32 && W->dtype != EMU_F32 ? DEVW_F32 : DEVW_STORED;
    DevW *w = devw_find(W->data, how, q->wfmt, q->wgran, weight_rule(q));
    if (w->data) return w;
    if (how == DEVW_QUANTIZED) {
        size_t ns = n_weight_scales(q->wgran, N, K);
        uint8_t *codes = xmalloc(n);
        float *sc = xmalloc(ns * sizeof(float));
        quant_weight(codes, sc, W, q->wfmt, q->wgran, weight_rule(q));
        w->data = dev_alloc_evict(n); cud_upload(w->data, codes, n);
        w->scale = dev_alloc_evict(ns * 4); cud_upload(w->scale, sc, ns * 4);
        w->dtype = q->wfmt; w->scale_gran = q->wgran; w->bytes = n + ns * 4;
        free(codes); free(sc);
    } else if (how == DEVW_F32) {
        float *f = xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) f[i] = tensor_get(W, i);
        w->data = dev_alloc_evict(n * 4); cud_upload(w->data, f, n * 4);
        w->dtype = EMU_F32; w->bytes = n * 4;
        free(f);
    } else {
        size_t b = n * dtype_size(W->dtype);
        w->data = dev_alloc_evict(b); cud_upload(w->data, W->data, b);
        w->dtype = W->dtype; w->bytes = b;
        if (W->scale) {
            size_t ns = n_weight_scales(W->scale_gran, N, K);
            w->scale = dev_alloc_evict(ns * 4); cud_upload(w->scale, W->scale, ns * 4);
            w->scale_gran = W->scale_gran; w->bytes += ns * 4;
        }
    }
    return w;
}
/* Frees every weight on the device (call when the model is freed). */
static void gpu_forward_release(void) {
    for (int i = 0; i < ndevw; i++) { cud_free(devw[i]->data); cud_free(devw[i]->scale); free(devw[i]); }
    free(devw); devw = NULL; ndevw = capdevw = 0;
}

/* The GPU buffers of one RunState: forward()'s activations and KV cache. */
typedef struct {
    int cap, max_pos, half;
    float *x, *xb, *xo, *q, *k, *v, *hb, *hb2, *logits, *kc, *vc, *cosv, *sinv, *sa;
    uint8_t *qa; int *ids;
    float *base; double *lp, *kld; int *arg, *tgt;   /* ppl statistics on the device (gpu_ppl_rows) */
} DevRun;
static void gpu_run_free(void *p) {
    DevRun *d = p;
    if (!d) return;
    void *bufs[] = {d->x, d->xb, d->xo, d->q, d->k, d->v, d->hb, d->hb2, d->logits, d->kc, d->vc, d->cosv, d->sinv, d->sa, d->qa, d->ids,
                    d->base, d->lp, d->kld, d->arg, d->tgt};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cud_free(bufs[i]);
    free(d);
}
static DevRun *dev_run(RunState *s, const Config *c) {
    if (s->dev) return s->dev;
    DevRun *d = xcalloc(1, sizeof *d);
    size_t cap = s->cap, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t kmax = (size_t)c->dim > qd ? (size_t)c->dim : qd;
    if ((size_t)c->hidden_dim > kmax) kmax = c->hidden_dim;
    d->cap = s->cap; d->max_pos = s->max_pos; d->half = c->head_dim / 2;
    d->x = dev_alloc_evict(cap * c->dim * 4); d->xb = dev_alloc_evict(cap * c->dim * 4); d->xo = dev_alloc_evict(cap * c->dim * 4);
    d->q = dev_alloc_evict(cap * qd * 4); d->k = dev_alloc_evict(cap * kvd * 4); d->v = dev_alloc_evict(cap * kvd * 4);
    d->hb = dev_alloc_evict(cap * c->hidden_dim * 4); d->hb2 = dev_alloc_evict(cap * c->hidden_dim * 4);
    d->logits = dev_alloc_evict(cap * c->vocab_size * 4);
    d->kc = dev_alloc_evict((size_t)c->n_layers * s->max_pos * kvd * 4); d->vc = dev_alloc_evict((size_t)c->n_layers * s->max_pos * kvd * 4);
    d->cosv = dev_alloc_evict(cap * d->half * 4); d->sinv = dev_alloc_evict(cap * d->half * 4);
    d->qa = dev_alloc_evict(cap * kmax); d->sa = dev_alloc_evict(cap * ((kmax + EMU_BLOCK - 1) / EMU_BLOCK) * 4 + 4);
    d->ids = dev_alloc_evict(cap * sizeof(int));
    s->dev = d;
    return d;
}

/* ---- the GPU backend: forward()'s ops as cud_* kernels on device memory ---- */
/* activation quantization into device buffers qa, sa (observers are not supported here: calibrate and
 * stats run on the CPU) */
static QAct gpu_quantize_into(const Scheme *q, uint8_t *qa, float *sa, const float *x, int T, int K, int layer, int site) {
    switch (q->amode) {
    case AMODE_TOKEN: cud_quant(CUQ_TOKEN, qa, sa, x, T, K, q->afmt, q->scale_ub); break;
    case AMODE_INT8_TOKEN: cud_quant(CUQ_INT8_TOKEN, qa, sa, x, T, K, EMU_I8, 0); break;
    case AMODE_GROUP: cud_quant(CUQ_GROUP, qa, sa, x, T, K, q->afmt, 0); break;
    case AMODE_TENSOR_DYNAMIC: cud_quant(CUQ_TENSOR_DYNAMIC, qa, sa, x, T, K, q->afmt, 0); break;
    case AMODE_TENSOR_STATIC: cud_quant(CUQ_TENSOR_STATIC, qa, sa, x, T, K, q->afmt, act_static_scale(q, layer, site)); break;
    default: return QACT_NONE;
    }
    return (QAct){q->afmt, qa, sa, act_scale_kind(q)};
}
static QAct gpu_quantize_act(RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site) {
    DevRun *d = s->dev;
    if (q->amode >= AMODE_QDQ_NVFP4) {   /* in place, as the CPU's act_qdq: the bf16 GEMMs of this site read x */
        cud_act_qdq(scheme_wformat(q), (float *)x, T, K, act_qdq_global(q, K, layer, site));
        return QACT_NONE;
    }
    return gpu_quantize_into(q, d->qa, d->sa, x, T, K, layer, site);
}
/* linear() on the device; a: the quantized input as gpu_quantize_act made it (device memory). */
static void gpu_linear(RunState *s, const Scheme *q, float *out, const float *in, int T, const Tensor *W, int quantized, const QAct *a) {
    (void)s;
    int N = W->rows, K = W->cols, impl = gpu_gemm(q, quantized, K);
    emu_gemm_desc g = {.M = T, .N = N, .K = K, .d_type = EMU_F32, .D = out, .ldd = N};
    if (!scheme_quantizes(q) || !quantized) {
        if (W->scale) fatal("scheme %s cannot run the FP8 weights of a quantized checkpoint", q->name);
        DevW *w = dev_weight(W, q, 0, impl == CU_GEMM_CUBLASLT && W->dtype != EMU_BF16);
        g.a_type = EMU_F32; g.A = in; g.lda = K; g.b_type = w->dtype; g.B = w->data; g.ldb = K; g.accum = EMU_ACC_FP32;
    } else {
        DevW *w = dev_weight(W, q, 1, 0);
        g.b_type = w->dtype; g.B = w->data; g.ldb = K; g.b_scale = w->scale; g.accum = q->accum;
        g.b_scale_kind = weight_scale_kind(w->scale_gran);
        if (a->fmt == EMU_F32) { g.a_type = EMU_F32; g.A = in; g.lda = K; g.a_scale_kind = EMU_SCALE_ONE; }
        else { g.a_type = a->fmt; g.A = a->codes; g.lda = K; g.a_scale = a->scales; g.a_scale_kind = a->kind; }
    }
    const char *why = cud_gemm(&g, impl);
    if (why) fatal("scheme %s on the GPU (%s): %s", q->name, gpu_gemm_name(impl), why);
    if (q->kind != SCHEME_FP32) cud_round_bf16(out, (size_t)T * N);
}
static Acts gpu_begin(RunState *s, const Model *m, const Scheme *q) {
    (void)q;
    if (s->observe) fatal("internal: observers run on the CPU backend");
    dev_generation++;
    DevRun *d = dev_run(s, &m->c);
    return (Acts){.x = d->x, .xb = d->xb, .q = d->q, .k = d->k, .v = d->v, .hb = d->hb, .hb2 = d->hb2, .xo = d->xo,
                  .kc = d->kc, .vc = d->vc, .logits = d->logits, .cosv = d->cosv, .sinv = d->sinv, .qa = d->qa, .sa = d->sa};
}
static void gpu_embed(RunState *s, const Model *m, const Scheme *q, float *x, const int *ids, int T) {
    DevRun *d = s->dev;
    cud_upload(d->ids, ids, (size_t)T * sizeof(int));
    const DevW *E = dev_weight(&m->tok_embeddings, q, 0, 0);   /* shared with a tied lm_head */
    cud_embed(x, E->data, E->dtype, d->ids, T, m->c.dim);
}
static int bf16_of(const Scheme *q) { return q->kind != SCHEME_FP32; }
static void gpu_rmsnorm(RunState *s, const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps) {
    (void)s; cud_rmsnorm(bf16_of(q), out, x, dev_array(w, (size_t)n * sizeof(float)), T, n, eps);
}
static void gpu_rope(RunState *s, const Scheme *q, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    (void)s; cud_rope(bf16_of(q), x, T, nh, hd, cosv, sinv);
}
static void gpu_kv_store(RunState *s, const Scheme *q, float *dst, const float *src, size_t n, float sc) {
    (void)s; cud_kv_store(dst, src, n, q->kv, bf16_of(q), sc);
}
static void gpu_attention(RunState *s, const Scheme *q, float *qbuf, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    (void)s; cud_attention(bf16_of(q), qbuf, kc, vc, T, pos0, nh, nkv, hd, scale);
}
static void gpu_swiglu(RunState *s, const Scheme *q, float *hb, const float *hb2, size_t n) { (void)s; cud_swiglu(bf16_of(q), hb, hb2, n); }
static void gpu_residual(RunState *s, const Scheme *q, float *x, const float *xo, size_t n) { (void)s; cud_residual(bf16_of(q), x, xo, n); }
static void gpu_end(RunState *s) { (void)s; cud_sync(); }
static const Backend gpu_backend = {"gpu", gpu_begin, cud_upload, cud_download, gpu_embed, gpu_rmsnorm, gpu_quantize_act, gpu_linear,
                                    gpu_rope, gpu_kv_store, gpu_attention, gpu_swiglu, gpu_residual, gpu_end};

/* ---- the verify backend: forward() op by op, every op also run through the GPU path (cud_*) on the same input ----
 * The CPU's output goes on, so a difference never propagates; each GPU output is compared with it.
 * GEMMs get the CPU's quantized activations as input, so each op is judged alone. Under
 * LLAMA_FP8_DEVICE=twin the GPU ops are their host twins. */
enum { OP_EMBED, OP_NORM, OP_QUANT, OP_GEMM, OP_ROPE, OP_KV, OP_ATTN, OP_RESID, OP_SWIGLU, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"embedding", "rmsnorm", "activation quantization", "gemm", "rope", "kv cache store", "attention",
                                               "residual add", "swiglu"};
enum { OP_MAX_LAYERS = 256 };
typedef struct {
    long runs, exact; size_t n, diff; double max_ulp, max_rel; int worst_layer;
    double layer_ulp[OP_MAX_LAYERS + 1], layer_rel[OP_MAX_LAYERS + 1];   /* per layer (the last: lm_head) */
    int layers;
} OpStat;
static OpStat *verify_stats;   /* where the verify backend counts (OP_COUNT entries) */
static int verify_verbose;     /* print each differing op */
static void *dput(const void *h, size_t n) { void *d = cud_alloc(n); cud_upload(d, h, n); return d; }
/* compares the device buffer dev (n elements of elsize bytes) with the CPU's values, then frees dev */
static void op_compare(OpStat *st, int layer, const void *cpu, void *dev, size_t n, int elsize, int verbose, const char *what) {
    void *g = xmalloc(n * elsize + 1);
    cud_download(g, dev, n * elsize);
    cud_free(dev);
    size_t d = bits_diff(g, cpu, n, elsize);
    st->runs++; st->exact += d == 0; st->n += n; st->diff += d;
    if (elsize == 4 && d) {
        double u, r;
        err_stats(g, cpu, n, &u, &r);
        if (u > st->max_ulp) { st->max_ulp = u; st->worst_layer = layer; }
        if (r > st->max_rel) st->max_rel = r;
        int li = layer < 0 || layer > OP_MAX_LAYERS ? OP_MAX_LAYERS : layer;
        if (u > st->layer_ulp[li]) st->layer_ulp[li] = u;
        if (r > st->layer_rel[li]) st->layer_rel[li] = r;
    }
    if (layer + 1 > st->layers) st->layers = layer + 1 <= OP_MAX_LAYERS + 1 ? layer + 1 : OP_MAX_LAYERS + 1;
    if (d && verbose) printf("  layer %d %s: %zu of %zu values differ\n", layer, what, d, n);
    free(g);
}
static void vcmp(RunState *s, int op, const void *cpu, void *dev, size_t n, int elsize, const char *what) {
    op_compare(&verify_stats[op], s->layer, cpu, dev, n, elsize, verify_verbose, what ? what : op_names[op]);
}
static void vfy_embed(RunState *s, const Model *m, const Scheme *q, float *x, const int *ids, int T) {
    size_t n = (size_t)T * m->c.dim;
    int *di = dput(ids, (size_t)T * sizeof(int));
    float *dx = cud_alloc(n * sizeof(float));
    const DevW *E = dev_weight(&m->tok_embeddings, q, 0, 0);
    cud_embed(dx, E->data, E->dtype, di, T, m->c.dim);
    cud_free(di);
    embed_tokens(s, m, q, x, ids, T);
    vcmp(s, OP_EMBED, x, dx, n, 4, NULL);
}
static void vfy_rmsnorm(RunState *s, const Scheme *q, float *out, const float *x, const float *w, int T, int n, float eps) {
    float *dx = dput(x, (size_t)T * n * 4), *dw = dput(w, (size_t)n * 4), *dout = cud_alloc((size_t)T * n * 4);
    cud_rmsnorm(bf16_of(q), dout, dx, dw, T, n, eps);
    rmsnorm(q, out, x, w, T, n, eps);
    vcmp(s, OP_NORM, out, dout, (size_t)T * n, 4, NULL);
    cud_free(dx); cud_free(dw);
}
static QAct vfy_quantize_act(RunState *s, const Scheme *q, const float *x, int T, int K, int layer, int site) {
    if (q->amode == AMODE_NONE) return QACT_NONE;
    if (q->amode >= AMODE_QDQ_NVFP4) {   /* quantized and dequantized in place: the kernel's x against act_qdq's */
        float *dx = dput(x, (size_t)T * K * 4);
        cud_act_qdq(scheme_wformat(q), dx, T, K, act_qdq_global(q, K, layer, site));
        QAct a = quantize_act(s, q, x, T, K, layer, site);
        vcmp(s, OP_QUANT, x, dx, (size_t)T * K, 4, "activations quantized-dequantized");
        return a;
    }
    size_t ns = act_scale_count(q, T, K);
    float *dx = dput(x, (size_t)T * K * 4), *ds = cud_alloc(ns * 4 + 4);
    uint8_t *dq = cud_alloc((size_t)T * K);
    gpu_quantize_into(q, dq, ds, dx, T, K, layer, site);
    QAct a = quantize_act(s, q, x, T, K, layer, site);
    vcmp(s, OP_QUANT, a.codes, dq, (size_t)T * K, 1, "quantized codes");
    vcmp(s, OP_QUANT, a.scales, ds, ns, 4, "quantization scales");
    cud_free(dx);
    return a;
}
static void vfy_linear(RunState *s, const Scheme *q, float *out, const float *in, int T, const Tensor *W, int quantized, const QAct *a) {
    int K = W->cols, N = W->rows;
    float *din = dput(in, (size_t)T * K * 4), *dout = cud_alloc((size_t)T * N * 4);
    QAct da = *a;
    if (a->fmt != EMU_F32) { da.codes = dput(a->codes, (size_t)T * K); da.scales = dput(a->scales, act_scale_count(q, T, K) * 4 + 4); }
    gpu_linear(s, q, dout, din, T, W, quantized, &da);
    linear(s, q, out, in, T, W, quantized, a);
    op_compare(&verify_stats[OP_GEMM], s->layer, out, dout, (size_t)T * N, 4, verify_verbose && gpu_gemm(q, quantized, K) == CU_GEMM_MODEL, "gemm");
    cud_free(din);
    if (a->fmt != EMU_F32) { cud_free((void *)da.codes); cud_free((void *)da.scales); }
}
static void vfy_rope(RunState *s, const Scheme *q, float *x, int T, int nh, int hd, const float *cosv, const float *sinv) {
    size_t n = (size_t)T * nh * hd, nt = (size_t)T * (hd / 2) * 4;
    float *dx = dput(x, n * 4), *dc = dput(cosv, nt), *dsn = dput(sinv, nt);
    cud_rope(bf16_of(q), dx, T, nh, hd, dc, dsn);
    rope(s, q, x, T, nh, hd, cosv, sinv);
    vcmp(s, OP_ROPE, x, dx, n, 4, NULL);
    cud_free(dc); cud_free(dsn);
}
static void vfy_kv_store(RunState *s, const Scheme *q, float *dst, const float *src, size_t n, float sc) {
    kv_store(s, q, dst, src, n, sc);
    if (q->kv == EMU_F32) return;   /* a copy */
    float *d = dput(src, n * 4);
    cud_kv_store(d, d, n, q->kv, bf16_of(q), sc);
    vcmp(s, OP_KV, dst, d, n, 4, NULL);
}
static void vfy_attention(RunState *s, const Scheme *q, float *qbuf, const float *kc, const float *vc, int T, int pos0, int nh, int nkv, int hd, float scale) {
    size_t nq = (size_t)T * nh * hd, nkvb = (size_t)(pos0 + T) * nkv * hd * 4;
    float *dq = dput(qbuf, nq * 4), *dk = dput(kc, nkvb), *dv = dput(vc, nkvb);
    cud_attention(bf16_of(q), dq, dk, dv, T, pos0, nh, nkv, hd, scale);
    attention(s, q, qbuf, kc, vc, T, pos0, nh, nkv, hd, scale);
    vcmp(s, OP_ATTN, qbuf, dq, nq, 4, NULL);
    cud_free(dk); cud_free(dv);
}
/* The elementwise ops x = f(x, y), OP_SWIGLU and OP_RESID: both sides on the same input, compared. */
static void vfy_elementwise(RunState *s, const Scheme *q, int op, float *x, const float *y, size_t n) {
    float *dx = dput(x, n * 4), *dy = dput(y, n * 4);
    if (op == OP_SWIGLU) { cud_swiglu(bf16_of(q), dx, dy, n); swiglu(s, q, x, y, n); }
    else { cud_residual(bf16_of(q), dx, dy, n); residual(s, q, x, y, n); }
    vcmp(s, op, x, dx, n, 4, NULL);
    cud_free(dy);
}
static void vfy_swiglu(RunState *s, const Scheme *q, float *hb, const float *hb2, size_t n) { vfy_elementwise(s, q, OP_SWIGLU, hb, hb2, n); }
static void vfy_residual(RunState *s, const Scheme *q, float *x, const float *xo, size_t n) { vfy_elementwise(s, q, OP_RESID, x, xo, n); }
static const Backend verify_backend = {"verify", host_acts, host_copy, host_copy, vfy_embed, vfy_rmsnorm, vfy_quantize_act, vfy_linear,
                                       vfy_rope, vfy_kv_store, vfy_attention, vfy_swiglu, vfy_residual, NULL};

/* forward() on the verify backend over T tokens from position 0: fills st (OP_COUNT entries) and
 * returns the logits of all T rows (the caller frees). */
static float *verify_ops(const Model *m, const Scheme *q, const int *ids, int T, OpStat *st, int verbose) {
    RunState s;
    runstate_init(&s, &m->c, T, T);
    s.be = &verify_backend;
    verify_stats = st; verify_verbose = verbose;
    forward(m, &s, q, ids, T, 0, 0);
    verify_stats = NULL;
    float *logits = s.logits;
    s.logits = NULL;
    runstate_free(&s);
    return logits;
}
/* Prints one line per op kind (ok/FAIL: bit-exact, or info for tensor-core GEMMs); returns the failures. */
static void report_ops(const OpStat *st, const Scheme *q, const char *prefix) {
    for (int op = 0; op < OP_COUNT; op++) {
        const OpStat *o = &st[op];
        if (!o->runs) continue;
        char name[224];
        snprintf(name, sizeof name, "%s%s", prefix, op_names[op]);
        if (op == OP_GEMM && (gpu_gemm(q, 1, 0) != CU_GEMM_MODEL || gpu_gemm(q, 0, 0) != CU_GEMM_MODEL)) {
            printf("info %s (%s): %ld of %ld runs bit-exact; %zu of %zu values differ from the CPU's --accum %s, max %.3g ulp (layer %d), max rel %.3g\n",
                   name, gpu_gemm_name(gpu_gemm(q, 1, 0)), o->exact, o->runs, o->diff, o->n, emu_accum_names[q->accum], o->max_ulp, o->worst_layer, o->max_rel);
            for (int l = 0; l < o->layers; l++)   /* per layer; the last index is the lm_head */
                if (o->layer_ulp[l] > 0) printf("  %s %d: max %.3g ulp, max rel %.3g\n", l == o->layers - 1 ? "lm_head, index" : "layer", l, o->layer_ulp[l], o->layer_rel[l]);
        }
        else if (o->exact == o->runs)
            vreport(1, name, "%ld of %ld runs bit-exact (%zu values)", o->exact, o->runs, o->n);
        else
            vreport(0, name, "%ld of %ld runs bit-exact; %zu of %zu values differ (max %.3g ulp, in layer %d)", o->exact, o->runs, o->diff, o->n,
                    o->max_ulp, o->worst_layer);
    }
}

/* ppl's statistics of the rows of the last forward() on the GPU backend with s->logits_on_device, computed where the
 * logits are: lp[r] = log p(targets[r]), arg[r] = argmax, and with compare kld[r] = KLD(base || this)
 * against the rows saved by an earlier call with save_base. Only these come back to the host. */
static void gpu_ppl_rows(RunState *s, int rows, int V, const int *targets, int save_base, int compare, double *lp, int *arg, double *kld) {
    DevRun *d = s->dev;
    if (!d) fatal("internal: gpu_ppl_rows before gpu_forward");
    if (!d->tgt) {
        d->tgt = dev_alloc_evict((size_t)d->cap * sizeof(int)); d->arg = dev_alloc_evict((size_t)d->cap * sizeof(int));
        d->lp = dev_alloc_evict((size_t)d->cap * sizeof(double)); d->kld = dev_alloc_evict((size_t)d->cap * sizeof(double));
    }
    if ((save_base || compare) && !d->base) d->base = dev_alloc_evict((size_t)d->cap * V * sizeof(float));
    cud_upload(d->tgt, targets, (size_t)rows * sizeof(int));
    cud_ppl_rows(d->logits, compare ? d->base : NULL, rows, V, d->tgt, d->lp, d->arg, compare ? d->kld : NULL);
    if (save_base) cud_copy(d->base, d->logits, (size_t)rows * V * sizeof(float));
    cud_download(lp, d->lp, (size_t)rows * sizeof(double));
    cud_download(arg, d->arg, (size_t)rows * sizeof(int));
    if (compare) cud_download(kld, d->kld, (size_t)rows * sizeof(double));
}

/* forward() on the GPU backend. */
static void gpu_forward(const Model *m, RunState *s, const Scheme *q, const int *ids, int T, int pos0, int logits_from) {
    s->be = &gpu_backend;
    forward(m, s, q, ids, T, pos0, logits_from);
}

/* gpu_forward() against forward() on the same tokens, fed in two calls (the second reads the KV cache
 * of the first): counts the logits (both calls) and layer outputs (first call) whose bits differ, and
 * the worst relative error of the logits (max |gpu - cpu| / max |cpu| per row). */
typedef struct { size_t n, diff, layer_n, layer_diff; double rel; } ResidentCmp;
static ResidentCmp resident_compare(const Model *m, const Scheme *q, const int *ids, int T) {
    ResidentCmp r = {0};
    const Config *c = &m->c;
    RunState s1, s2;
    runstate_init(&s1, c, T, T);
    runstate_init(&s2, c, T, T);
    float **lo1 = xmalloc(c->n_layers * sizeof(float *)), **lo2 = xmalloc(c->n_layers * sizeof(float *));
    for (int l = 0; l < c->n_layers; l++) { lo1[l] = xmalloc((size_t)T * c->dim * 4); lo2[l] = xmalloc((size_t)T * c->dim * 4); }
    s1.layer_out = lo1; s2.layer_out = lo2;
    int T1 = T / 2;
    for (int call = 0; call < 2; call++) {
        int p0 = call ? T1 : 0, n = call ? T - T1 : T1;
        forward(m, &s1, q, ids + p0, n, p0, 0);
        gpu_forward(m, &s2, q, ids + p0, n, p0, 0);
        size_t nl = (size_t)n * c->vocab_size;
        r.n += nl;
        r.diff += bits_diff(s1.logits, s2.logits, nl, 4);
        for (int t = 0; t < n; t++) {
            const float *a = s2.logits + (size_t)t * c->vocab_size, *b = s1.logits + (size_t)t * c->vocab_size;
            double mx = 0, md = 0;
            for (int i = 0; i < c->vocab_size; i++) { mx = fmax(mx, fabs(b[i])); md = fmax(md, fabs((double)a[i] - b[i])); }
            if (isnan(md) || (mx > 0 && md / mx > r.rel)) r.rel = isnan(md) ? INFINITY : md / mx;
        }
        if (call == 0)
            for (int l = 0; l < c->n_layers; l++) { r.layer_n += (size_t)n * c->dim; r.layer_diff += bits_diff(lo1[l], lo2[l], (size_t)n * c->dim, 4); }
        s1.layer_out = s2.layer_out = NULL;
    }
    for (int l = 0; l < c->n_layers; l++) { free(lo1[l]); free(lo2[l]); }
    free(lo1); free(lo2);
    runstate_free(&s1); runstate_free(&s2);
    return r;
}

#else
/* CPU-only builds: gpu_active() is 0, and these keep callers free of #ifdefs. */
static void gpu_forward_release(void) {}
static void gpu_run_free(void *dev) { (void)dev; }
static const char *gpu_gemm_note(const Scheme *q) { (void)q; return ""; }
static void gpu_ppl_rows(RunState *s, int rows, int V, const int *targets, int save_base, int compare, double *lp, int *arg, double *kld) {
    (void)s; (void)rows; (void)V; (void)targets; (void)save_base; (void)compare; (void)lp; (void)arg; (void)kld;
    fatal("internal: gpu_ppl_rows in a build without CUDA");
}
static void gpu_set_gemm(const char *name) {
    if (strcmp(name, "auto") && strcmp(name, "model") && strcmp(name, "mma") && strcmp(name, "wgmma") && strcmp(name, "cublaslt"))
        fatal("--gemm: expected auto, model, mma, wgmma or cublaslt, got '%s'", name);
}
#endif /* GPU_BUILD */

/* ------------------------------------------------------------------------------------------ */
/* 6. Commands: ppl, dump, generate, export, calibrate, stats, verify, tokenize, fp8, bench   */
/* ------------------------------------------------------------------------------------------ */
/* The backend of a run's forward passes: the GPU (CUDA build, Ada/Hopper GPU found, no --cpu), or
 * the CPU emulation (runstate_init's default). */
static void runstate_use_device(RunState *s) {
#ifdef GPU_BUILD
    if (gpu_active()) s->be = &gpu_backend;
#endif
    (void)s;
}

/* Common options of the commands that run a model. */
typedef struct {
    const char *model, *tokenizer, *text_file, *scheme, *protocol, *ids, *prompt, *out, *compare, *json, *scales_file;
    int ctx, chunks, progress, synthetic, n_new, bos, special, ops, ops_weights;
    float temp;
    unsigned long long seed;
    SchemeOptions so;
    /* calibrate */
    int samples, seq;
    const char *observer;
    double percentile;
} Options;

static void options_parse(Options *o, int argc, char **argv, const char *cmd, const char *allowed, const char *usage_text) {
    memset(o, 0, sizeof *o);
    o->chunks = -1; o->n_new = 64; o->seed = 1; o->samples = 128; o->seq = 0; o->percentile = 99.99;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { printf("usage: llama_fp8 %s %s\n", cmd, usage_text); exit(0); }
        char pat[48];
        snprintf(pat, sizeof pat, "%s ", a);
        if (a[0] != '-' || !strstr(allowed, pat)) fatal("%s: unknown option '%s' (see llama_fp8 %s --help)", cmd, a, cmd);
        /* flags without a value */
        if (!strcmp(a, "--progress")) { o->progress = 1; continue; }
        if (!strcmp(a, "--synthetic")) { o->synthetic = 1; continue; }
        if (!strcmp(a, "--bos")) { o->bos = 1; continue; }
        if (!strcmp(a, "--special")) { o->special = 1; continue; }
        if (!strcmp(a, "--ops")) { o->ops = 1; continue; }
        if (!strcmp(a, "--ops-weights")) { o->ops = o->ops_weights = 1; continue; }
        if (!strcmp(a, "--quant-lm-head")) { o->so.quant_lm_head = 1; continue; }
        if (!strcmp(a, "--cpu")) { gpu_set_force_cpu(1); continue; }
        if (!strcmp(a, "--allow-nonfinite")) { allow_nonfinite = 1; continue; }
        if (i + 1 >= argc) fatal("%s: option %s needs a value", cmd, a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "-f")) o->text_file = v;
        else if (!strcmp(a, "-q")) o->scheme = v;
        else if (!strcmp(a, "--compare")) o->compare = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--scales")) o->scales_file = v;
        else if (!strcmp(a, "--protocol")) o->protocol = v;
        else if (!strcmp(a, "--ids")) o->ids = v;
        else if (!strcmp(a, "-p")) o->prompt = v;
        else if (!strcmp(a, "-o")) o->out = v;
        else if (!strcmp(a, "--act-format")) o->so.act_format = v;
        else if (!strcmp(a, "--weight-format")) o->so.weight_format = v;
        else if (!strcmp(a, "--weight-scale")) o->so.weight_scale = v;
        else if (!strcmp(a, "--weight-arith")) o->so.weight_arith = v;
        else if (!strcmp(a, "--kv")) o->so.kv = v;
        else if (!strcmp(a, "--accum")) o->so.accum = v;
        else if (!strcmp(a, "--gemm")) gpu_set_gemm(v);
        else if (!strcmp(a, "--scale-ub")) { o->so.scale_ub = (float)parse_double_arg(a, v); if (!(o->so.scale_ub > 0)) fatal("--scale-ub must be > 0"); }
        else if (!strcmp(a, "--ctx")) o->ctx = (int)parse_long_arg(a, v, 2, 1 << 20);
        else if (!strcmp(a, "--chunks")) o->chunks = (int)parse_long_arg(a, v, 1, INT_MAX);
        else if (!strcmp(a, "-n")) o->n_new = (int)parse_long_arg(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--temp")) { o->temp = (float)parse_double_arg(a, v); if (!(o->temp >= 0)) fatal("--temp must be >= 0"); }
        else if (!strcmp(a, "--seed")) o->seed = (unsigned long long)parse_long_arg(a, v, 0, LONG_MAX);
        else if (!strcmp(a, "--samples")) o->samples = (int)parse_long_arg(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--seq")) o->seq = (int)parse_long_arg(a, v, 2, 1 << 20);
        else if (!strcmp(a, "--observer")) o->observer = v;
        else if (!strcmp(a, "--percentile")) { o->percentile = parse_double_arg(a, v); if (!(o->percentile > 0 && o->percentile <= 100)) fatal("--percentile must be in (0, 100]"); }
    }
}
#define SCHEME_OPTS "--allow-nonfinite --cpu --gemm -q --act-format --weight-format --weight-scale --weight-arith --kv --accum --scale-ub --scales --quant-lm-head "
#define SCHEME_HELP "  schemes (-q): fp32, bf16, fp8-w, w8a8, w8a8-static (needs --scales), w8a8-block, int8;\n" \
    "    4-bit and microscaling (llm-compressor presets; K a multiple of the group): w4a16 (INT4 g128), w4a16-mse (its scales\n" \
    "    by the mse observer: MSE-optimal clipping), nvfp4a16, mxfp4a16, mxfp8a16,\n" \
    "    nvfp4 (needs --scales), mxfp4, mxfp8 (activations quantized and dequantized too); w4a8-fp4-m1, w4a8-fp4-m2\n" \
    "  --act-format e4m3|e5m2  --weight-format e4m3|e5m2  --weight-scale channel|tensor (fp8-w)  --weight-arith bf16|fp32\n" \
    "  --kv fp8-e4m3|fp8-e5m2  --accum exact|fp32|hopper|ada|cublaslt|fast  --scale-ub X  --scales FILE  --quant-lm-head\n" \
    "  --allow-nonfinite: run a model holding NaN/Inf weights (refused by default); NaN then propagates and the run stops where it reaches a result\n" \
    "  --cpu: run on the CPU emulation even when a CUDA build finds an Ada/Hopper GPU\n" \
    "  --gemm auto|model|mma|wgmma|cublaslt: GPU GEMMs (auto: bit-exact model kernels, tensor cores for --accum hopper|ada|cublaslt|fast)"

/* ---- static scales (written by calibrate) ---- */
/* What ties a scales file to its model: SHA-256 of the shape (config) and of samples of every tensor
 * as stored (each weight's first and last 512 bytes, every norm vector whole); cheap on any size. */
static void model_fingerprint(const Model *m, char hex[65]) {
    const Config *c = &m->c;
    size_t cap = 4096 + (size_t)(7 * c->n_layers + 2) * 1056 + (size_t)(2 * c->n_layers + 1) * c->dim * 4, n = 0;
    uint8_t *b = xmalloc(cap);
    int32_t shape[8] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq_len};
    memcpy(b, shape, sizeof shape); n += sizeof shape;
#define FP_TENSOR(t) do { size_t nb = (size_t)(t)->rows * (t)->cols * dtype_size((t)->dtype), k = nb < 512 ? nb : 512; \
        int32_t d[3] = {(int32_t)(t)->dtype, (t)->rows, (t)->cols}; memcpy(b + n, d, 12); n += 12; \
        memcpy(b + n, (t)->data, k); n += k; memcpy(b + n, (const uint8_t *)(t)->data + nb - k, k); n += k; } while (0)
    FP_TENSOR(&m->tok_embeddings);
    FP_TENSOR(&m->lm_head);
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
        const Tensor *ts[7] = LAYER_LINEARS(L);
        for (int i = 0; i < 7; i++) FP_TENSOR(ts[i]);
        memcpy(b + n, L->attn_norm, c->dim * 4); n += c->dim * 4;
        memcpy(b + n, L->ffn_norm, c->dim * 4); n += c->dim * 4;
    }
#undef FP_TENSOR
    memcpy(b + n, m->final_norm, c->dim * 4); n += c->dim * 4;
    sha256_hex(b, n, hex);
    free(b);
}
/* An absmax of a scales file as fp32: it must stay finite in fp32 and give a normal fp32 scale
 * (absmax / fmax, fmax up to E5M2's 57344), else the file is refused (1e300 would become inf). */
static float scale_amax_f32(const char *path, double v, const char *part, int layer, const char *site) {
    float f = (float)v;
    if (!isfinite(f) || !(f / 57344.0f >= FLT_MIN)) {
        char where[48] = "";
        if (layer >= 0) snprintf(where, sizeof where, "layer %d: ", layer);
        fatal("%s: %s: %s\"%s\" = %g is outside what an fp32 scale can hold (absmax / fmax must be a finite, normal fp32)", path, part, where, site, v);
    }
    return f;
}
static ScaleSet *scales_load(const char *path, const Model *m) {
    int n_layers = m->c.n_layers;
    size_t len;
    char *text = read_text_file(path, &len);
    if (!text) fatal("%s: cannot read: %s", path, strerror(errno));
    json j;
    if (json_parse(&j, text, len) != 0) fatal("%s: invalid JSON: %s", path, j.err);
    int fmt = json_get(&j, 0, "format");
    if (fmt < 0 || !json_streq(&j, fmt, "llama_fp8 scales v1")) fatal("%s: not a llama_fp8 scales file (\"format\": \"llama_fp8 scales v1\")", path);
    int fpk = json_get(&j, 0, "model_fingerprint");
    char want[65], *got = fpk >= 0 ? json_string_dup(&j, fpk, NULL) : NULL;
    model_fingerprint(m, want);
    if (!got) fprintf(stderr, "llama_fp8: warning: %s has no model_fingerprint (written before scales were tied to a model): not checked against %s\n", path, m->path);
    else if (strcmp(got, want)) {
        int mk = json_get(&j, 0, "model");
        char *made = mk >= 0 ? json_string_dup(&j, mk, NULL) : NULL;
        fatal("%s: made for another model (%s, fingerprint %.12s...), not %s (%.12s...)", path, made ? made : "?", got, m->path, want);
    }
    free(got);
    int acts = json_get(&j, 0, "activations"), layers = json_get(&j, acts, "layers"), kv = json_get(&j, 0, "kv");
    if (layers < 0 || j.t[layers].type != J_ARR || j.t[layers].n != n_layers)
        fatal("%s: activations.layers must list %d layers (the model's)", path, n_layers);
    ScaleSet *s = xcalloc(1, sizeof *s);
    s->n_layers = n_layers;
    s->act = xcalloc(n_layers, sizeof *s->act);
    s->k_amax = xcalloc(n_layers, sizeof(float));
    s->v_amax = xcalloc(n_layers, sizeof(float));
    s->source = xstrdup(path);
    double v;
    for (int l = 0, k = layers + 1; l < n_layers; l++, k = json_next(&j, k))
        for (int site = 0; site < N_SITES; site++) {
            if (json_number(&j, json_get(&j, k, site_names[site]), &v) != 0 || !(v > 0) || !isfinite(v))
                fatal("%s: layer %d: \"%s\" must be a positive number", path, l, site_names[site]);
            s->act[l][site] = scale_amax_f32(path, v, "activations", l, site_names[site]);
        }
    if (json_number(&j, json_get(&j, acts, "lm_head"), &v) == 0 && v > 0 && isfinite(v)) s->lm_head = scale_amax_f32(path, v, "activations", -1, "lm_head");
    int ks = json_get(&j, kv, "k"), vs = json_get(&j, kv, "v");
    if (ks < 0 || vs < 0 || j.t[ks].type != J_ARR || j.t[vs].type != J_ARR || j.t[ks].n != n_layers || j.t[vs].n != n_layers)
        fatal("%s: kv.k and kv.v must list %d layers", path, n_layers);
    for (int l = 0, a = ks + 1, b = vs + 1; l < n_layers; l++, a = json_next(&j, a), b = json_next(&j, b)) {
        double x, y;
        if (json_number(&j, a, &x) != 0 || json_number(&j, b, &y) != 0 || !(x > 0) || !(y > 0) || !isfinite(x) || !isfinite(y))
            fatal("%s: kv scales of layer %d must be positive numbers", path, l);
        s->k_amax[l] = scale_amax_f32(path, x, "kv", l, "k"); s->v_amax[l] = scale_amax_f32(path, y, "kv", l, "v");
    }
    json_free(&j);
    free(text);
    return s;
}

static Model *open_model(const Options *o, const char *cmd) {
    if (o->synthetic) return model_load("(synthetic)");
    if (!o->model) fatal("%s: -m MODEL is required (a Hugging Face directory or a llama2.c .bin)", cmd);
    return model_load(o->model);
}

/* The token ids of the text file -f (BOS first), with the run's tokenizer checked against the model's
 * vocabulary; *bytes = the file's size. Returns the number of ids. */
static int encode_text_file(const Options *o, const Config *c, size_t *bytes, int **ids) {
    char *text = read_text_file(o->text_file, bytes);
    if (!text) fatal("%s: cannot read: %s", o->text_file, strerror(errno));
    tokenizer *tk = run_tokenizer(o->tokenizer, o->model, c);
    int n = tokenizer_encode(tk, text, *bytes, 1, 0, ids);
    tokenizer_free(tk);
    free(text);
    return n;
}

/* Parses "1,2,3" into ids checked against the vocabulary. */
static int parse_ids(const char *s, int vocab, int **out) {
    int n = 0, cap = 16;
    int *ids = xmalloc(cap * sizeof(int));
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= vocab) fatal("--ids: bad token id near '%.20s' (ids are integers in [0, %d))", p, vocab);
        if (n == cap) ids = xrealloc(ids, (cap *= 2) * sizeof(int));
        ids[n++] = (int)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (!n) fatal("--ids: no token ids given");
    *out = ids;
    return n;
}

/* log p(target | row) in double: the row's log-softmax at target. */
static double log_prob(const float *logits, int n, int target) {
    int arg;
    return emu_ppl_row_cpu(logits, NULL, n, target, &arg, NULL);
}

/* The synthetic run's "text": n_seq sequences of seq_len tokens, each BOS followed by tokens sampled
 * from the synthetic model itself (temperature 1). Scored in chunks of seq_len, its perplexity is
 * the model's own entropy rate — a self-contained smoke test that needs no data. */
static int synthetic_tokens(const Model *m, int n_seq, int seq_len, int **out) {
    Scheme qs = scheme_by_name("fp32");
    const Scheme *q = &qs;
    RunState s;
    runstate_init(&s, &m->c, 1, seq_len);
    int *ids = xmalloc((size_t)n_seq * seq_len * sizeof(int)), V = m->c.vocab_size;
    uint64_t rng = 0x5DEECE66Dull;
    for (int sq = 0; sq < n_seq; sq++) {
        int *seq = ids + (size_t)sq * seq_len;
        seq[0] = m->c.bos_id;
        for (int t = 0; t + 1 < seq_len; t++) {
            forward(m, &s, q, &seq[t], 1, t, 0);
            float mx = s.logits[0];
            for (int i = 1; i < V; i++) if (s.logits[i] > mx) mx = s.logits[i];
            double sum = 0;
            for (int i = 0; i < V; i++) sum += exp((double)s.logits[i] - mx);
            double r = rng_uniform(&rng) * sum, acc = 0;
            int next = V - 1;
            for (int i = 0; i < V; i++) { acc += exp((double)s.logits[i] - mx); if (acc > r) { next = i; break; } }
            seq[t + 1] = next;
        }
    }
    runstate_free(&s);
    *out = ids;
    return n_seq * seq_len;
}

/* Per-scheme accumulators of a perplexity run. With --compare, every scheme after the first is
 * also compared token by token with the first (llama.cpp --kl-divergence definitions). */
typedef struct {
    Scheme q;
    Model *m;                         /* a row of another checkpoint (--compare @DIR[=SCHEME]), else NULL: the run's model */
    double nll, nll2;                 /* Σ −log p(target), Σ (log p)² */
    double dn, dn2, bn_dn;            /* paired with the base: Σ d, Σ d², Σ nll_base·d (d = nll − nll_base) */
    double kld, kld2, dp2, dp, top1;  /* Σ KLD, Σ KLD², Σ Δp², Σ Δp, agreements of the argmax */
    float *klds;                      /* per-token KLD, for percentiles */
} PplStat;

static int cmp_float(const void *a, const void *b) { float x = *(const float *)a, y = *(const float *)b; return (x > y) - (x < y); }
static double percentile_sorted(const float *v, long long n, double p) {
    double r = p / 100.0 * (double)(n - 1);
    long long i = (long long)r;
    return i + 1 < n ? v[i] + (r - i) * (v[i + 1] - v[i]) : v[n - 1];
}

/* The numbers of one scheme's table row. PPL = exp(mean nll), ± = PPL·sqrt(var(nll)/(N−1)) (llama.cpp).
 * Against the base (row 0): ΔPPL = exp(mean nll_q) − exp(mean nll_b), ± from the paired covariance (delta
 * method); KLD mean ± sd/sqrt(N−1); top-1 agreement p ± sqrt(p(1−p)/(N−1)); RMS Δp ± (delta method). */
typedef struct {
    double ppl, se, nll_mean;
    double dppl, dppl_se, kld, kld_se, kld_p99, kld_max, kld_median, top1, top1_se, rms_dp, rms_dp_se;   /* rows > 0 */
} PplRow;
static PplRow ppl_row_summary(PplStat *st, int i, long long N) {
    PplStat *S = &st[i];
    PplRow r = {0};
    double mq = S->nll / N, vq = S->nll2 / N - mq * mq, pq = exp(mq);
    r.nll_mean = mq; r.ppl = pq;
    r.se = N < 2 ? NAN : vq > 0 ? pq * sqrt(vq / (N - 1)) : 0;
    if (i == 0) return r;
    double mb = st[0].nll / N, vb = st[0].nll2 / N - mb * mb, pb = exp(mb);
    /* cov(nll_q, nll_b) = cov(nll_b + d, nll_b) = var_b + cov(nll_b, d) */
    double md = S->dn / N, cov_bd = S->bn_dn / N - mb * md, cov_qb = vb + cov_bd;
    double vdiff = (pq * pq * vq + pb * pb * vb - 2 * pq * pb * cov_qb) / (N - 1);
    r.dppl = pq - pb; r.dppl_se = vdiff > 0 ? sqrt(vdiff) : 0;
    double km = S->kld / N, kv = S->kld2 / N - km * km;
    r.kld = km; r.kld_se = kv > 0 ? sqrt(kv / (N - 1)) : 0;
    r.top1 = S->top1 / N; r.top1_se = sqrt(r.top1 * (1 - r.top1) / (N - 1));
    double dpm = S->dp / N, dpv = S->dp2 / N - dpm * dpm;
    r.rms_dp = sqrt(S->dp2 / N);
    r.rms_dp_se = r.rms_dp > 0 && dpv > 0 ? sqrt(dpv / (N - 1)) : 0; /* first-order: sd(Δp)/sqrt(N-1) bounds it when mean Δp ≈ 0 */
    qsort(S->klds, N, sizeof(float), cmp_float);
    r.kld_p99 = percentile_sorted(S->klds, N, 99.0); r.kld_max = S->klds[N - 1]; r.kld_median = percentile_sorted(S->klds, N, 50.0);
    if (N < 2) r.se = r.dppl_se = r.kld_se = r.top1_se = r.rms_dp_se = NAN;   /* undefined from one token: nan in the table, null in JSON */
    return r;
}
/* ppl --json: the run and every scheme's row (written atomically). */
static void ppl_write_json(const char *path, const char *model, const char *protocol, int ctx, int n_chunks, long long N,
                           const PplStat *st, const PplRow *r, int ns) {
    atomic_file af;
    atomic_open(&af, path);
    jw w;
    jw_begin(&w, af.fp);
    jw_str(&w, "model", model); jw_str(&w, "protocol", protocol);
    jw_int(&w, "ctx", ctx); jw_int(&w, "chunks", n_chunks); jw_int(&w, "tokens_scored", N);
    jw_arr(&w, "schemes", 0);
    for (int i = 0; i < ns; i++) {
        jw_obj(&w, NULL, 1);
        jw_str(&w, "scheme", st[i].q.name);
        jw_num(&w, "ppl", r[i].ppl, "%.6f"); jw_num(&w, "ppl_se", r[i].se, "%.6f"); jw_num(&w, "nll_mean", r[i].nll_mean, "%.17g");
        if (i) {
            jw_num(&w, "dppl", r[i].dppl, "%.6f"); jw_num(&w, "dppl_se", r[i].dppl_se, "%.6f");
            jw_num(&w, "kld_mean", r[i].kld, "%.8f"); jw_num(&w, "kld_se", r[i].kld_se, "%.8f");
            jw_num(&w, "kld_p99", r[i].kld_p99, "%.8f"); jw_num(&w, "kld_max", r[i].kld_max, "%.8f"); jw_num(&w, "kld_median", r[i].kld_median, "%.8f");
            jw_num(&w, "top1_agree", r[i].top1, "%.6f"); jw_num(&w, "top1_se", r[i].top1_se, "%.6f");
            jw_num(&w, "rms_dp", r[i].rms_dp, "%.8f"); jw_num(&w, "rms_dp_se", r[i].rms_dp_se, "%.8f");
        }
        jw_end_obj(&w);
    }
    jw_end_arr(&w);
    jw_end(&w);
    atomic_commit(&af);
}

static int cmd_ppl(int argc, char **argv) {
    Options o;
    options_parse(&o, argc, argv, "ppl", "-m --tokenizer -f --protocol --ctx --chunks --progress --synthetic --compare --json " SCHEME_OPTS,
                  "-m MODEL -f TEXT [--tokenizer FILE] [-q SCHEME | --compare S1,S2,...] [--protocol gptq|llamacpp] [--ctx N] [--chunks N] [--json FILE] [--progress]\n"
                  "       llama_fp8 ppl --synthetic   (a built-in random model scoring text sampled from itself)\n"
                  "  gptq (default): one BOS, non-overlapping chunks of --ctx (default 2048 or the model's maximum), every token scored.\n"
                  "  llamacpp: llama.cpp's llama-perplexity: ctx 512, BOS overwrites each chunk's first token, second half scored.\n"
                  "  --compare: every scheme on identical tokens; the first is the base of dPPL, KLD, top-1 agreement, RMS dp.\n"
                  "    An entry @DIR[=SCHEME] runs another checkpoint of the same shapes (e.g. a gptq or smooth output) as stored, or as SCHEME.\n" SCHEME_HELP);
    const char *protocol = o.protocol ? o.protocol : "gptq";
    int llamacpp = !strcmp(protocol, "llamacpp");
    if (!llamacpp && strcmp(protocol, "gptq")) fatal("ppl: unknown --protocol '%s' (gptq or llamacpp)", protocol);
    if (o.compare && o.scheme) fatal("ppl: give -q SCHEME or --compare LIST, not both");
    if (!o.synthetic && !o.text_file) fatal("ppl: -f TEXT is required");
    if (o.json) check_writable(o.json, "ppl: --json");
    Model *m = open_model(&o, "ppl");
    const Config *c = &m->c;
    if (o.scales_file) o.so.scales = scales_load(o.scales_file, m);

    /* the schemes */
    char *list = xstrdup(o.compare ? o.compare : o.scheme ? o.scheme : m->quant.present ? "checkpoint" : "bf16");
    int ns = 0;
    PplStat *st = NULL;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        st = xrealloc(st, (ns + 1) * sizeof *st);
        memset(&st[ns], 0, sizeof *st);
        if (tok[0] == '@') {   /* another checkpoint of the same shapes (a gptq or smooth output, an llm-compressor export) on the same tokens */
            char *eq = strchr(tok, '=');
            if (eq) *eq = 0;
            if (!tok[1]) fatal("ppl: --compare @DIR[=SCHEME]: give a model directory after @");
            Model *m2 = model_load(tok + 1);
            const Config *c2 = &m2->c;
            if (c2->dim != c->dim || c2->hidden_dim != c->hidden_dim || c2->n_layers != c->n_layers || c2->n_heads != c->n_heads ||
                c2->n_kv_heads != c->n_kv_heads || c2->head_dim != c->head_dim || c2->vocab_size != c->vocab_size || c2->max_seq_len < c->max_seq_len)
                fatal("ppl: --compare %s: its shapes (dim, layers, heads, vocabulary, context) differ from %s's: not the same model", tok + 1, m->path);
            SchemeOptions so2 = o.so;
            so2.scales = NULL;   /* --scales belong to the run's model (their fingerprint) */
            Scheme q2 = scheme_for_model(m2, eq ? eq + 1 : NULL, "bf16", &so2);
            st[ns].q = q2;
            const char *base = strrchr(tok + 1, '/');
            base = base && base[1] ? base + 1 : tok + 1;
            snprintf(st[ns].q.name, sizeof st[ns].q.name, "@%.30s:%.40s", base, q2.name);
            st[ns++].m = m2;
            continue;
        }
        st[ns++].q = scheme_for_model(m, tok, "bf16", &o.so);
    }
    if (!ns) fatal("ppl: --compare needs at least one scheme");

    int ctx = o.ctx ? o.ctx : o.synthetic ? 256 : llamacpp ? 512 : 2048;
    const char *ctx_note = o.ctx ? "" : o.synthetic ? " (synthetic default)" : llamacpp ? " (llama.cpp default)" : " (default)";
    if (!o.ctx && ctx > c->max_seq_len) { ctx = c->max_seq_len; ctx_note = " (the model's maximum context)"; }
    if (ctx > c->max_seq_len) fatal("ppl: --ctx %d exceeds the model's maximum context %d", ctx, c->max_seq_len);

    /* tokens */
    int *ids = NULL, n_tok;
    size_t text_bytes = 0;
    if (o.synthetic) {
        printf("synthetic run: a random tiny Llama built in (no model file), scoring 4 x %d tokens it sampled itself\n", ctx);
        n_tok = synthetic_tokens(m, 4, ctx, &ids);
    } else {
        n_tok = encode_text_file(&o, c, &text_bytes, &ids);
    }
    int n_chunks = n_tok / ctx;
    if (n_chunks < 1) fatal("ppl: the text has %d tokens, fewer than one chunk of %d (use a longer text or a smaller --ctx)", n_tok, ctx);
    if (o.chunks > 0 && o.chunks < n_chunks) n_chunks = o.chunks;
    int first = llamacpp ? ctx / 2 : 0;            /* first logit row scored in each chunk */
    int per_chunk = ctx - 1 - first;
    long long n_scored = (long long)n_chunks * per_chunk;

    model_describe(m, stdout);
    printf("ppl: protocol %s, ctx %d%s, device %s, scheme%s", protocol, ctx, ctx_note, device_description(), ns > 1 ? "s" : "");
    for (int i = 0; i < ns; i++) printf("%s%s%s", i ? ", " : " ", st[i].q.name, gpu_gemm_note(&st[i].q));
    printf("\n");
    if (o.synthetic) printf("text: (sampled) %d tokens\n", n_tok);
    else printf("text: %s, %zu bytes, %d tokens with BOS\n", o.text_file, text_bytes, n_tok);
    printf("scoring %d chunks x %d tokens = %lld predictions\n", n_chunks, per_chunk, n_scored);
    fflush(stdout);

    RunState s;
    runstate_init(&s, c, ctx, ctx);
    runstate_use_device(&s);
    for (int i = 1; i < ns; i++) st[i].klds = xmalloc(n_scored * sizeof(float));
    size_t V = c->vocab_size;
    int dev_stats = gpu_active();   /* on the GPU the logits stay there: per-row log p, argmax, KLD come back */
    float *base = ns > 1 && !dev_stats ? xmalloc((size_t)per_chunk * V * sizeof(float)) : NULL;  /* the base scheme's logits of one chunk */
    double *base_nll = xmalloc(per_chunk * sizeof(double));
    int *base_arg = xmalloc(per_chunk * sizeof(int));
    double *dlp = xmalloc(per_chunk * sizeof(double)), *dkl = xmalloc(per_chunk * sizeof(double));
    int *darg = xmalloc(per_chunk * sizeof(int));
    s.logits_on_device = dev_stats;
    int *chunk = xmalloc(ctx * sizeof(int));
    int show = o.progress || isatty(2);
    double t0 = now_seconds();
    for (int ch = 0; ch < n_chunks; ch++) {
        memcpy(chunk, ids + (size_t)ch * ctx, ctx * sizeof(int));
        if (llamacpp) chunk[0] = c->bos_id;      /* llama.cpp overwrites each chunk's first token */
        const int *target = ids + (size_t)ch * ctx + 1;
        for (int si = 0; si < ns; si++) {
            PplStat *S = &st[si];
            Model *Sm = S->m ? S->m : m;
            forward(model_for_scheme(Sm, &S->q), &s, &S->q, chunk, ctx, 0, first);
            /* per row: log p(target), the argmax, KLD(base || this scheme) — where the logits are */
            if (dev_stats) gpu_ppl_rows(&s, per_chunk, (int)V, target + first, si == 0 && ns > 1, si > 0, dlp, darg, dkl);
            else {
                #pragma omp parallel for schedule(static)
                for (int j = 0; j < per_chunk; j++)
                    dlp[j] = emu_ppl_row_cpu(s.logits + (size_t)j * V, si ? base + (size_t)j * V : NULL, (long)V, target[first + j], &darg[j], &dkl[j]);
            }
            /* a non-finite log p or KLD is an error: where it was born is found by re-running the chunk on the CPU */
            for (int j = 0; j < per_chunk; j++)
                if (!isfinite(dlp[j]) || (si > 0 && !isfinite(dkl[j]))) {
                    double bad = isfinite(dlp[j]) ? dkl[j] : dlp[j];
                    runstate_free(&s);
                    gpu_forward_release();
                    fatal("ppl: scheme %s: chunk %d, token %d: %s is %s; %s", S->q.name, ch + 1, first + j + 1, isfinite(dlp[j]) ? "KLD vs the base" : "log p(target)",
                          isnan(bad) ? "NaN" : bad > 0 ? "+Inf" : "-Inf", nonfinite_origin(model_for_scheme(Sm, &S->q), &S->q, chunk, ctx, first));
                }
            /* the sums in row order: the same bits for any thread count */
            double nll = 0, nll2 = 0, dn = 0, dn2 = 0, bn_dn = 0, kld = 0, kld2 = 0, dp = 0, dp2 = 0, top1 = 0;
            long long off = (long long)ch * per_chunk;
            for (int j = 0; j < per_chunk; j++) {
                double lpq = dlp[j];
                nll += -lpq; nll2 += lpq * lpq;
                if (si == 0) { base_nll[j] = -lpq; base_arg[j] = darg[j]; continue; }
                double k = dkl[j], d = -lpq - base_nll[j], dpi = exp(lpq) - exp(-base_nll[j]);
                dn += d; dn2 += d * d; bn_dn += base_nll[j] * d;
                kld += k; kld2 += k * k; dp += dpi; dp2 += dpi * dpi; top1 += darg[j] == base_arg[j];
                S->klds[off + j] = (float)k;
            }
            S->nll += nll; S->nll2 += nll2; S->dn += dn; S->dn2 += dn2; S->bn_dn += bn_dn;
            S->kld += kld; S->kld2 += kld2; S->dp += dp; S->dp2 += dp2; S->top1 += top1;
            if (si == 0 && base && !dev_stats) memcpy(base, s.logits, (size_t)per_chunk * V * sizeof(float));
        }
        long long count = (long long)(ch + 1) * per_chunk;
        double el = now_seconds() - t0, tps = (double)(ch + 1) * ctx * ns / el;
        if (llamacpp && ns == 1) { printf("[%d]%.4f,", ch + 1, exp(st[0].nll / count)); fflush(stdout); }
        if (show) progress("chunk %d/%d  %.1f tok/s  ETA %.0f s   ", ch + 1, n_chunks, tps, (n_chunks - ch - 1) * (double)ctx * ns / tps);
    }
    double el = now_seconds() - t0;
    if (show) progress_done();
    if (llamacpp && ns == 1) printf("\n");
    long long N = n_scored;
    PplRow *r = xmalloc(ns * sizeof *r);
    for (int i = 0; i < ns; i++) r[i] = ppl_row_summary(st, i, N);
    if (llamacpp) printf("Final estimate: PPL = %.4f +/- %.5f\n", r[0].ppl, r[0].se);
    if (ns == 1)
        printf("PPL = %.4f +/- %.4f  (%s, %lld tokens scored in %d chunks of %d; %.1f tok/s, %.2f s, peak RSS %.0f MB%s)\n",
               r[0].ppl, r[0].se, st[0].q.name, N, n_chunks, ctx, (double)n_chunks * ctx / el, el, peak_rss_mb(), prepared_note());
    else {
        /* the table: every cell formatted first, each column as wide as its widest cell */
        enum { NCOL = 8 };
        char (*cell)[NCOL][48] = xcalloc(ns + 1, sizeof *cell);
        static const char *const head[NCOL] = {"scheme", "PPL", "dPPL vs base", "mean KLD", "KLD p99", "KLD max", "top-1 agree %", "RMS dp %"};
        for (int k = 0; k < NCOL; k++) snprintf(cell[0][k], 48, "%s", head[k]);
        for (int i = 0; i < ns; i++) {
            char (*row)[48] = cell[i + 1];
            snprintf(row[0], 48, "%s", st[i].q.name);
            snprintf(row[1], 48, "%.4f +/- %.4f", r[i].ppl, r[i].se);
            if (i == 0) { snprintf(row[2], 48, "(base)"); for (int k = 3; k < NCOL; k++) snprintf(row[k], 48, "-"); continue; }
            snprintf(row[2], 48, "%+.4f +/- %.4f", r[i].dppl, r[i].dppl_se);
            snprintf(row[3], 48, "%.6f +/- %.6f", r[i].kld, r[i].kld_se);
            snprintf(row[4], 48, "%.6f", r[i].kld_p99);
            snprintf(row[5], 48, "%.6f", r[i].kld_max);
            snprintf(row[6], 48, "%.3f +/- %.3f", 100 * r[i].top1, 100 * r[i].top1_se);
            snprintf(row[7], 48, "%.3f +/- %.3f", 100 * r[i].rms_dp, 100 * r[i].rms_dp_se);
        }
        int wid[NCOL] = {0};
        for (int i = 0; i <= ns; i++) for (int k = 0; k < NCOL; k++) { int n = (int)strlen(cell[i][k]); if (n > wid[k]) wid[k] = n; }
        printf("\n");
        for (int i = 0; i <= ns; i++) {
            for (int k = 0; k + 1 < NCOL; k++) printf("%-*s  ", wid[k], cell[i][k]);
            printf("%s\n", cell[i][NCOL - 1]);
        }
        free(cell);
        printf("(%lld tokens scored per scheme in %d chunks of %d; %d schemes in %.2f s, %.1f tok/s, peak RSS %.0f MB%s)\n", N, n_chunks, ctx, ns, el, (double)n_chunks * ctx * ns / el, peak_rss_mb(), prepared_note());
    }
    if (o.json) {
        ppl_write_json(o.json, m->path, protocol, ctx, n_chunks, N, st, r, ns);
        printf("wrote %s\n", o.json);
    }
    free(r);
    for (int i = 0; i < ns; i++) { free(st[i].klds); if (st[i].m) model_free(st[i].m); }
    free(st); free(list); free(base); free(base_nll); free(base_arg); free(dlp); free(dkl); free(darg); free(chunk); free(ids);
    runstate_free(&s);
    gpu_forward_release();
    model_free(m);
    return 0;
}

/* NumPy .npy (format 1.0), C order, written atomically: descr '<f4' (float32), '<u2' (bfloat16 bits: numpy loads
 * uint16, .view(ml_dtypes.bfloat16) gives the values), '|u1' (FP8 codes), '|i1' (int8); ndim 0..4. */
static void write_npy_nd(const char *path, const void *data, const char *descr, int ndim, const int64_t *shape) {
    char hdr[256], dims[160] = "";
    size_t n = 1, es = descr[2] - '0';
    for (int d = 0; d < ndim; d++) {
        snprintf(dims + strlen(dims), sizeof dims - strlen(dims), d ? " %lld," : "%lld,", (long long)shape[d]);
        n *= (size_t)shape[d];
    }
    if (ndim > 1) dims[strlen(dims) - 1] = 0;   /* (3,) for one dimension, (3, 4) for two */
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    int total = (10 + len + 1 + 63) / 64 * 64;
    int hlen = total - 10;
    atomic_file a;
    atomic_open(&a, path);
    fwrite("\x93NUMPY\x01\x00", 1, 8, a.fp);
    fputc(hlen & 255, a.fp); fputc(hlen >> 8, a.fp);
    fwrite(hdr, 1, len, a.fp);
    for (int i = len; i < hlen - 1; i++) fputc(' ', a.fp);
    fputc('\n', a.fp);
    fwrite(data, es, n, a.fp);
    atomic_commit(&a);
}
static void write_npy(const char *path, const float *data, int rows, int cols) {
    write_npy_nd(path, data, "<f4", 2, (int64_t[]){rows, cols});
}

/* NumPy .npy reading (format 1.0, 2.0, 3.0), strict: little-endian '<f4', '<f2', '<u2' / '<V2' (bf16, as
 * ml_dtypes writes it), '|u1' / '<V1' (FP8 codes), '|i1'; C order only; up to 4 dimensions; the data
 * exactly as long as the shape says. Anything else is an error naming the problem. */
typedef enum { NPY_F32, NPY_F16, NPY_BF16, NPY_U8, NPY_I8 } npy_kind;
typedef struct { npy_kind kind; int ndim; int64_t shape[4]; size_t n, esize; uint8_t *data; } npy;
static const char *npy_kind_name(npy_kind k) {
    static const char *const nm[] = {"float32", "float16", "bfloat16 (uint16 bits)", "uint8 (FP8 codes)", "int8"};
    return nm[k];
}
static int npy_parse(const uint8_t *b, size_t size, npy *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(b, "\x93NUMPY", 6)) { snprintf(err, errlen, "not a .npy file (no \\x93NUMPY magic)"); return -1; }
    int major = b[6];
    size_t hl, off;
    if (major == 1) { hl = b[8] | (size_t)b[9] << 8; off = 10; }
    else if (major == 2 || major == 3) {
        if (size < 12) { snprintf(err, errlen, "truncated header"); return -1; }
        hl = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24; off = 12;
    } else { snprintf(err, errlen, "unsupported .npy format version %d", major); return -1; }
    if (hl > size - off || hl > 1 << 20) { snprintf(err, errlen, "header length %zu does not fit the file (%zu bytes)", hl, size); return -1; }
    char h[4096];
    if (hl >= sizeof h) { snprintf(err, errlen, "header longer than %zu bytes", sizeof h); return -1; }
    memcpy(h, b + off, hl); h[hl] = 0;
    if (memchr(h, 0, hl)) { snprintf(err, errlen, "NUL byte in the header"); return -1; }
    const char *d = strstr(h, "'descr':"), *fo = strstr(h, "'fortran_order':"), *sh = strstr(h, "'shape':");
    if (!d || !fo || !sh) { snprintf(err, errlen, "header lacks 'descr', 'fortran_order' or 'shape'"); return -1; }
    d += 8; while (*d == ' ') d++;
    static const struct { const char *descr; npy_kind k; size_t es; } kinds[] = {
        {"'<f4'", NPY_F32, 4}, {"'<f2'", NPY_F16, 2}, {"'<u2'", NPY_BF16, 2}, {"'<V2'", NPY_BF16, 2}, {"'|V2'", NPY_BF16, 2},
        {"'|u1'", NPY_U8, 1}, {"'<V1'", NPY_U8, 1}, {"'|V1'", NPY_U8, 1}, {"'|i1'", NPY_I8, 1}};
    int found = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strncmp(d, kinds[i].descr, strlen(kinds[i].descr))) { out->kind = kinds[i].k; out->esize = kinds[i].es; found = 1; }
    if (!found) {
        char got[24]; size_t k = strcspn(d, ",}"); snprintf(got, sizeof got, "%.*s", (int)(k < 20 ? k : 20), d);
        snprintf(err, errlen, "dtype %s not supported (float32 <f4, float16 <f2, bfloat16 <u2 or <V2, FP8 codes |u1 or <V1, int8 |i1; little-endian)", got);
        return -1;
    }
    fo += 16; while (*fo == ' ') fo++;
    if (strncmp(fo, "False", 5)) { snprintf(err, errlen, "Fortran order is not supported (save a C-contiguous array: numpy.ascontiguousarray)"); return -1; }
    sh += 8; while (*sh == ' ') sh++;
    if (*sh++ != '(') { snprintf(err, errlen, "bad shape in the header"); return -1; }
    uint64_t n = 1;
    for (;;) {
        while (*sh == ' ') sh++;
        if (*sh == ')') break;
        if (out->ndim == 4) { snprintf(err, errlen, "more than 4 dimensions"); return -1; }
        char *e;
        errno = 0;
        long long v = strtoll(sh, &e, 10);
        if (e == sh || errno || v < 0 || v > INT_MAX) { snprintf(err, errlen, "bad shape in the header"); return -1; }
        if (v && n > ((uint64_t)1 << 40) / (uint64_t)v) { snprintf(err, errlen, "shape too large (over 2^40 elements)"); return -1; }
        n *= (uint64_t)v;
        out->shape[out->ndim++] = v;
        sh = e;
        while (*sh == ' ') sh++;
        if (*sh == ',') sh++;
        else if (*sh != ')') { snprintf(err, errlen, "bad shape in the header"); return -1; }
    }
    out->n = (size_t)n;
    size_t need = out->n * out->esize, have = size - off - hl;
    if (have != need) { snprintf(err, errlen, "data is %zu bytes, the shape and dtype need %zu%s", have, need, have < need ? " (truncated)" : ""); return -1; }
    out->data = xmalloc(need ? need : 1);   /* copied: aligned, whatever the header length */
    memcpy(out->data, b + off + hl, need);
    return 0;
}
static npy npy_load(const char *path) {
    mfile f;
    mfile_open_or_die(&f, path);
    npy a;
    char err[256];
    if (npy_parse(f.data, f.size, &a, err, sizeof err) != 0) fatal("%s: %s", path, err);
    mfile_close(&f);
    return a;
}
/* Element i as a double (FP8 codes as their code value: cmp orders them, it does not decode them). */
static double npy_value(const npy *a, size_t i) {
    switch (a->kind) {
    case NPY_F32: { float v; memcpy(&v, a->data + 4 * i, 4); return v; }
    case NPY_F16: { uint16_t v; memcpy(&v, a->data + 2 * i, 2); return fp16_to_float(v); }
    case NPY_BF16: { uint16_t v; memcpy(&v, a->data + 2 * i, 2); return bf16_to_float(v); }
    case NPY_I8: return (int8_t)a->data[i];
    default: return a->data[i];
    }
}
/* A position on the format's number line: sign-magnitude bits mapped to a monotone integer, so the ulp
 * distance of two values is the difference (+0 and −0 are 0 apart; FP8 codes too are sign-magnitude). */
static int64_t npy_ord(const npy *a, size_t i) {
    uint64_t bits = 0, sign;
    int w = (int)a->esize * 8;
    if (a->kind == NPY_I8) return (int8_t)a->data[i];
    memcpy(&bits, a->data + a->esize * i, a->esize);
    sign = bits >> (w - 1);
    int64_t mag = (int64_t)(bits & ((1ull << (w - 1)) - 1));
    return sign ? -mag : mag;
}
/* NaN for the float kinds; FP8 codes and int8 are compared as codes (no format is known here). */
static int npy_is_nan(const npy *a, size_t i) { return a->kind != NPY_U8 && a->kind != NPY_I8 && isnan(npy_value(a, i)); }

static int cmd_cmp(int argc, char **argv) {
    long max_ulp = -1;   /* without --ulp: identical bytes (NaN: any NaN) required */
    int show = 10;
    const char *files[2] = {NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llama_fp8 cmp MINE.npy REF.npy [--ulp N] [--show N]\n"
                   "  compares two arrays of the same shape and dtype (float32, float16, bfloat16, FP8 codes, int8) element by element:\n"
                   "  bit-identical count, a histogram of ulp distances (in the arrays' own format; FP8 codes: code steps), the largest\n"
                   "  ulp and relative error with their indices, NaN mismatches, the first --show (10) differing elements.\n"
                   "  exit 0 when identical (or every difference within --ulp N and no NaN mismatch), 1 otherwise.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--ulp") && i + 1 < argc) { max_ulp = parse_long_arg("--ulp", argv[++i], 0, LONG_MAX); continue; }
        if (!strcmp(argv[i], "--show") && i + 1 < argc) { show = (int)parse_long_arg("--show", argv[++i], 0, 1 << 20); continue; }
        if (argv[i][0] == '-' && argv[i][1]) fatal("cmp: unknown option '%s' (see llama_fp8 cmp --help)", argv[i]);
        if (files[1]) fatal("cmp: give exactly two .npy files");
        files[files[0] ? 1 : 0] = argv[i];
    }
    if (!files[1]) fatal("cmp: give two .npy files: MINE.npy REF.npy");
    npy a = npy_load(files[0]), b = npy_load(files[1]);
    if (a.kind != b.kind) fatal("cmp: dtypes differ (%s: %s, %s: %s)", files[0], npy_kind_name(a.kind), files[1], npy_kind_name(b.kind));
    int same_shape = a.ndim == b.ndim;
    for (int d = 0; d < a.ndim && same_shape; d++) same_shape = a.shape[d] == b.shape[d];
    if (!same_shape) fatal("cmp: shapes differ (%zu and %zu elements)", a.n, b.n);
    size_t same = 0, nan_mis = 0, over = 0, arg_ulp = 0, arg_rel = 0;
    int64_t worst = 0;
    double worst_rel = 0;
    static const char *const bucket[] = {"0", "1", "2", "3-4", "5-8", "9-16", "17-256", ">256"};
    size_t hist[8] = {0};
    int shown = 0;
    size_t *first = xmalloc((size_t)(show + 1) * sizeof(size_t));
    int64_t *first_u = xmalloc((size_t)(show + 1) * sizeof(int64_t));
    for (size_t i = 0; i < a.n; i++) {
        if (!memcmp(a.data + i * a.esize, b.data + i * b.esize, a.esize)) { same++; hist[0]++; continue; }
        int an = npy_is_nan(&a, i), bn = npy_is_nan(&b, i);
        int64_t u;
        if (an || bn) {
            if (an && bn) { same++; hist[0]++; continue; }   /* NaN payloads / signs are not compared */
            nan_mis++; u = INT64_MAX;
        } else {
            u = npy_ord(&a, i) - npy_ord(&b, i);
            if (u < 0) u = -u;
            double x = npy_value(&a, i), y = npy_value(&b, i), rel = y != 0 ? fabs(x - y) / fabs(y) : INFINITY;
            if (a.kind == NPY_U8 || a.kind == NPY_I8) rel = 0;   /* codes: no relative error without a format */
            if (rel > worst_rel) { worst_rel = rel; arg_rel = i; }
        }
        if (u > worst && u != INT64_MAX) { worst = u; arg_ulp = i; }
        if (max_ulp < 0 || u > max_ulp) over++;
        int k = u == 0 ? 0 : u == 1 ? 1 : u == 2 ? 2 : u <= 4 ? 3 : u <= 8 ? 4 : u <= 16 ? 5 : u <= 256 ? 6 : 7;
        hist[k]++;
        if (shown < show) { first[shown] = i; first_u[shown++] = u; }
    }
    char dims[80] = "";
    for (int d = 0; d < a.ndim; d++) snprintf(dims + strlen(dims), sizeof dims - strlen(dims), d ? ", %lld" : "%lld", (long long)a.shape[d]);
    printf("%s vs %s: %s [%s], %zu elements\n", files[0], files[1], npy_kind_name(a.kind), dims, a.n);
    printf("bit-identical: %zu (%.4f %%)\n", same, a.n ? 100.0 * same / a.n : 100.0);
    printf("ulp distance histogram:");
    for (int k = 0; k < 8; k++) if (hist[k]) printf("  %s: %zu", bucket[k], hist[k]);
    printf("\n");
    if (same < a.n) {
        if (nan_mis < a.n - same) printf("max ulp: %lld at [%zu]; max relative error: %.3g at [%zu]\n", (long long)worst, arg_ulp, worst_rel, arg_rel);
        printf("NaN mismatches: %zu\n", nan_mis);
    }
    if (shown) printf("first differing elements (flat index: mine, ref, ulps):\n");
    for (int k = 0; k < shown; k++) {
        size_t i = first[k];
        if (first_u[k] == INT64_MAX) printf("  [%zu]  %.9g  %.9g  NaN mismatch\n", i, npy_value(&a, i), npy_value(&b, i));
        else printf("  [%zu]  %.9g  %.9g  %lld\n", i, npy_value(&a, i), npy_value(&b, i), (long long)first_u[k]);
    }
    int ok = same == a.n || (max_ulp >= 0 && over == 0 && nan_mis == 0);
    printf("%s\n", same == a.n ? "identical" : ok ? "within --ulp" : "DIFFERENT");
    free(first); free(first_u); free(a.data); free(b.data);
    return ok ? 0 : 1;
}

/* ---- kernel checking on .npy files: quant, gemm (--explain); cmp above ---- */
static emu_dtype parse_kc_format(const char *opt, const char *v) {
    if (!strcmp(v, "int4") && !strcmp(opt, "--format")) return FMT_INT4;
    if (!strcmp(v, "e4m3")) return EMU_E4M3;
    if (!strcmp(v, "e5m2")) return EMU_E5M2;
    if (!strcmp(v, "int8")) return EMU_I8;
    fatal("option %s: expected e4m3, e5m2 or int8, got '%s'", opt, v);
}
static void npy_dims(const npy *a, char *b, size_t n) {
    b[0] = 0;
    for (int d = 0; d < a->ndim; d++) snprintf(b + strlen(b), n - strlen(b), d ? ", %lld" : "%lld", (long long)a->shape[d]);
}
/* A float32 / bfloat16 / float16 array's elements as fp32 (exact). */
static float *npy_to_f32(const npy *a) {
    float *f = xmalloc((a->n ? a->n : 1) * sizeof(float));
    for (size_t i = 0; i < a->n; i++) f[i] = (float)npy_value(a, i);
    return f;
}
/* Rows and columns of a matrix argument: 2-D only. */
static void npy_matrix(const npy *a, const char *path, const char *cmd, int *rows, int *cols) {
    char d[80];
    npy_dims(a, d, sizeof d);
    if (a->ndim != 2) fatal("%s: %s has shape [%s]; a 2-D matrix [rows, cols] is needed", cmd, path, d);
    if (!a->shape[0] || !a->shape[1]) fatal("%s: %s is empty (shape [%s])", cmd, path, d);
    *rows = (int)a->shape[0]; *cols = (int)a->shape[1];
}

/* quant --format nvfp4|mxfp4|mxfp8: one bf16 weight through wf_quant_tensor (the schemes' and export's rules). */
static int quant_wformat(wformat f, npy *x, const char *in, const char *prefix, int M, int K, int have_gs, double GS) {
    int G = emu_wf_group(f);
    if (x->kind != NPY_BF16) fatal("quant: %s is %s; --format %s quantizes a bfloat16 weight (the presets compute in bf16)", in, npy_kind_name(x->kind), f == WF_NVFP4 ? "nvfp4" : f == WF_MXFP4 ? "mxfp4" : "mxfp8");
    if (K % G) fatal("quant: %d columns are not a multiple of the group size %d", K, G);
    if (have_gs && f != WF_NVFP4) fatal("quant: --global-scale is NVFP4's (--format nvfp4)");
    if (have_gs && !(GS > 0 && GS <= FLT_MAX && (float)GS >= FLT_MIN)) fatal("quant: --global-scale must be a positive normal float32, got %g", GS);
    Tensor W = {.data = x->data, .dtype = EMU_BF16, .rows = M, .cols = K};
    size_t n = (size_t)M * K;
    for (size_t i = 0; i < n; i++) if (!isfinite(tensor_get(&W, i))) fatal("quant: %s holds a non-finite value at element %zu (the FP4 / MX rules are defined for finite weights)", in, i);
    float g = 1;
    if (f == WF_NVFP4) {
        float a = 0;
        for (size_t i = 0; i < n; i++) a = fmaxf(a, fabsf(tensor_get(&W, i)));
        g = have_gs ? (float)GS : nvfp4_global_scale(a);
    }
    uint8_t *q = xmalloc(n);
    float *sc = xmalloc(n / G * sizeof(float));
    wf_quant_tensor(f, 0, &W, g, q, sc);
    char qp[4096], sp[4096], gp[4096];
    snprintf(qp, sizeof qp, "%s.q.npy", prefix);
    snprintf(sp, sizeof sp, "%s.scale.npy", prefix);
    snprintf(gp, sizeof gp, "%s.global_scale.npy", prefix);
    write_npy_nd(qp, q, "|u1", 2, (int64_t[]){M, K});
    write_npy_nd(sp, sc, "<f4", 2, (int64_t[]){M, K / G});
    if (f == WF_NVFP4) write_npy_nd(gp, &g, "<f4", 1, (int64_t[]){1});
    static const char *const fn[N_WF] = {"int4", "nvfp4", "mxfp4", "mxfp8"};
    printf("quant: %s bfloat16 [%d, %d], %s (groups of %d): %s uint8 [%d, %d], %s float32 [%d, %d]", in, M, K, fn[f], G, qp, M, K, sp, M, K / G);
    if (f == WF_NVFP4) printf(", %s float32 [1] = %.9g%s", gp, g, have_gs ? " (given)" : "");
    printf("\n");
    free(q); free(sc); free(x->data);
    return 0;
}
static int cmd_quant(int argc, char **argv) {
    const char *in = NULL, *prefix = NULL, *gran = "token", *conv = NULL, *observer = NULL;
    int G = 128;
    emu_dtype fmt = EMU_E4M3;
    double S = 0, ub = 0, GS = 0;
    int have_s = 0, have_gs = 0, wf = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: llama_fp8 quant IN.npy -o PREFIX [--granularity token|tensor|channel|group|block] [--group G (128)]\n"
                   "                      [--format e4m3|e5m2|int8|int4] [--static-scale S] [--scale-ub U] [--convention vllm|compressed-tensors]\n"
                   "       llama_fp8 quant IN.npy -o PREFIX --format nvfp4|mxfp4|mxfp8 [--global-scale G]\n"
                   "  nvfp4, mxfp4, mxfp8: a bfloat16 weight [M, K] as llm-compressor's NVFP4 / MXFP4 / MXFP8 presets quantize it (rules: README,\n"
                   "    'Formats at a glance'); PREFIX.q.npy uint8 codes [M, K] (E2M1 in the low nibble, sign 0x8; E4M3),\n"
                   "    PREFIX.scale.npy float32 group scales [M, K/16] (E4M3 values) or [M, K/32] (powers of two); nvfp4 also\n"
                   "    PREFIX.global_scale.npy float32 [1] (default: from the matrix's absmax; --global-scale G: a fused group's)\n"
                   "  quantizes a 2-D float32 / bfloat16 (uint16 bits or ml_dtypes V2) / float16 matrix [M, K] exactly as the schemes do;\n"
                   "  writes PREFIX.q.npy (uint8 FP8 codes, or int8) [M, K] and PREFIX.scale.npy (float32): token and channel [M, 1],\n"
                   "  tensor [1], group [M, ceil(K/G)], block [ceil(M/128), ceil(K/128)].\n"
                   "  vllm (default for token, tensor, group): fp32 arithmetic on the exactly converted input; FP8 encode =\n"
                   "    clamp fmaxf(-fmax, fminf(v, fmax)), round to nearest even (NaN -> +fmax; in groups vLLM clamps\n"
                   "    fminf(fmaxf(v, -fmax), fmax): NaN -> -fmax)\n"
                   "    token: s = max(min(absmax, U) / fmax, 1 / (fmax * 512)), q = fp8(x / s)   (dynamic_per_token_scaled_fp8_quant)\n"
                   "    tensor: --static-scale S: q = fp8(x * (1 / S)); else s = absmax / fmax, q = fp8(x * (1 / s))\n"
                   "    group: per row and G columns, s = max(absmax, 1e-10) / fmax, q = fp8(x / s)   (per_token_group_quant_fp8)\n"
                   "    channel: the token rule on rows (scaled_fp8_quant per channel)\n"
                   "    int8 (token, channel): s = absmax / 127, q = rne(x * (127 / absmax))   (dynamic_scaled_int8_quant)\n"
                   "  compressed-tensors (default for channel, block; llm-compressor's min-max observer, symmetric):\n"
                   "    per row, tensor, 1 x G group or 128 x 128 block: s = absmax / fmax (int8: / 127.5, int4: / 7.5), a zero s -> eps,\n"
                   "    q = rne(torch.clamp(x / s + 0, -fmax, fmax)) (int8: [-128, 127], int4: [-8, 7], one per int8 byte); a bfloat16 input is quantized in bf16\n"
                   "    arithmetic (s and x / s rounded to bf16: the tool on a bf16 model), float32 in fp32; NaN -> NaN scale, code 0x7F\n"
                   "    --observer mse (int4, group 128, bfloat16 input): the scales of llm-compressor's mse observer (MSE-optimal\n"
                   "    clipping, -q w4a16-mse's: README, 'Weights'), the codes as above under them\n");
            return 0;
        }
        int more = i + 1 < argc;
        if (!strcmp(a, "-o") && more) prefix = argv[++i];
        else if (!strcmp(a, "--granularity") && more) gran = argv[++i];
        else if (!strcmp(a, "--group") && more) G = (int)parse_long_arg(a, argv[++i], 1, 1 << 24);
        else if (!strcmp(a, "--format") && more) {
            const char *v = argv[++i];
            if (!strcmp(v, "nvfp4")) wf = WF_NVFP4;
            else if (!strcmp(v, "mxfp4")) wf = WF_MXFP4;
            else if (!strcmp(v, "mxfp8")) wf = WF_MXFP8;
            else fmt = parse_kc_format(a, v);
        }
        else if (!strcmp(a, "--global-scale") && more) { GS = parse_double_arg(a, argv[++i]); have_gs = 1; }
        else if (!strcmp(a, "--static-scale") && more) { S = parse_double_arg(a, argv[++i]); have_s = 1; }
        else if (!strcmp(a, "--scale-ub") && more) ub = parse_double_arg(a, argv[++i]);
        else if (!strcmp(a, "--convention") && more) conv = argv[++i];
        else if (!strcmp(a, "--observer") && more) observer = argv[++i];
        else if (a[0] == '-' && a[1]) fatal("quant: unknown option '%s'%s (see llama_fp8 quant --help)", a, more ? "" : " or missing value");
        else if (in) fatal("quant: give one input .npy file (got '%s' and '%s')", in, a);
        else in = a;
    }
    if (!in) fatal("quant: give an input .npy file (llama_fp8 quant IN.npy -o PREFIX)");
    if (!prefix) fatal("quant: -o PREFIX is required (writes PREFIX.q.npy and PREFIX.scale.npy)");
    static const char *const grans[] = {"token", "tensor", "channel", "group", "block"};
    int g = -1;
    for (int k = 0; k < 5; k++) if (!strcmp(gran, grans[k])) g = k;
    if (g < 0) fatal("quant: --granularity expects token, tensor, channel, group or block, got '%s'", gran);
    enum { G_TOKEN, G_TENSOR, G_CHANNEL, G_GROUP, G_BLOCK };
    int ct;
    if (!conv) ct = g == G_CHANNEL || g == G_BLOCK;
    else if (!strcmp(conv, "vllm")) ct = 0;
    else if (!strcmp(conv, "compressed-tensors")) ct = 1;
    else fatal("quant: --convention expects vllm or compressed-tensors, got '%s'", conv);
    if (have_s && !(S > 0 && S <= FLT_MAX && (float)S >= FLT_MIN)) fatal("quant: --static-scale must be a positive normal float32, got %g", S);
    if (have_s && (ct || g != G_TENSOR)) fatal("quant: --static-scale is vLLM's static per-tensor quantization (--granularity tensor --convention vllm)");
    if (!(ub >= 0 && ub <= FLT_MAX)) fatal("quant: --scale-ub must be a finite number >= 0, got %g", ub);
    if (ub > 0 && (ct || fmt == EMU_I8 || (g != G_TOKEN && g != G_CHANNEL))) fatal("quant: --scale-ub applies to vLLM's FP8 per-token quantization only");
    if (!ct && g == G_BLOCK) fatal("quant: vLLM quantizes no 128x128 blocks itself (block weights come from compressed-tensors: --convention compressed-tensors)");
    if (!ct && fmt == FMT_INT4) fatal("quant: int4 is compressed-tensors' weight format (--convention compressed-tensors)");
    if (!ct && fmt == EMU_I8 && g != G_TOKEN && g != G_CHANNEL) fatal("quant: vLLM's INT8 activation quantization is per token (--granularity token); use --convention compressed-tensors for int8 %s", gran);
    check_writable(prefix, "quant: -o");
    npy x = npy_load(in);
    if (x.kind == NPY_U8 || x.kind == NPY_I8) fatal("quant: %s holds %s; give float32, bfloat16 or float16 values", in, npy_kind_name(x.kind));
    if (ct && x.kind == NPY_F16) fatal("quant: %s is float16; compressed-tensors would compute in float16, which is not modelled: give float32 or bfloat16", in);
    int M, K;
    npy_matrix(&x, in, "quant", &M, &K);
    if (wf < 0 && have_gs) fatal("quant: --global-scale is NVFP4's (--format nvfp4)");
    int mse = observer && !strcmp(observer, "mse");
    if (observer && !mse && strcmp(observer, "minmax")) fatal("quant: --observer expects minmax or mse, got '%s'", observer);
    if (mse && (wf >= 0 || fmt != FMT_INT4 || !ct || g != G_GROUP || G != 128))
        fatal("quant: --observer mse is llm-compressor's INT4 weight observer: --format int4 --granularity group --group 128 --convention compressed-tensors");
    if (mse && x.kind != NPY_BF16) fatal("quant: --observer mse models the tool on a bf16 weight; %s is %s (give bfloat16 values)", in, npy_kind_name(x.kind));
    if (wf >= 0) return quant_wformat((wformat)wf, &x, in, prefix, M, K, have_gs, GS);
    size_t n = (size_t)M * K;
    uint8_t *q = xmalloc(n);
    int64_t sshape[2] = {M, 1};
    int sdim = 2;
    const char *rule;
    float *sc;
    if (ct) {
        if (g == G_GROUP && K % G) fatal("quant: %d columns are not a multiple of --group %d (compressed-tensors refuses such a group strategy)", K, G);
        int bn = g == G_TENSOR ? M : g == G_BLOCK ? EMU_BLOCK : 1, bk = g == G_GROUP ? G : g == G_BLOCK ? EMU_BLOCK : K;
        int nbn = (M + bn - 1) / bn, nbk = (K + bk - 1) / bk;
        sc = xmalloc((size_t)nbn * nbk * sizeof(float));
        Tensor W = {.data = x.data, .dtype = x.kind == NPY_BF16 ? EMU_BF16 : EMU_F32, .rows = M, .cols = K};
        int keep = allow_nonfinite;
        allow_nonfinite = 1;   /* torch semantics for NaN (a NaN scale): the user's data, quantized as the tool would */
        if (mse) {
            for (size_t i = 0; i < n; i++)
                if (!isfinite(tensor_get(&W, i))) fatal("quant: %s holds a non-finite value at %zu (the mse observer's search is defined on finite weights)", in, i);
            wf_quant_tensor(WF_INT4, 1, &W, 1.0f, q, sc);
        } else quant_blocks(q, sc, &W, fmt, bn, bk, x.kind == NPY_BF16);
        allow_nonfinite = keep;
        if (g == G_TENSOR) sdim = 1, sshape[0] = 1;
        else sshape[0] = nbn, sshape[1] = nbk;
        rule = mse ? "compressed-tensors, bf16 arithmetic, mse observer" : x.kind == NPY_BF16 ? "compressed-tensors, bf16 arithmetic" : "compressed-tensors, fp32 arithmetic";
    } else {
        float *xf = npy_to_f32(&x);
        int ng = (K + G - 1) / G;
        sc = xmalloc((size_t)M * (g == G_GROUP ? ng : 1) * sizeof(float));
        if (fmt == EMU_I8) emu_quant_int8_token((int8_t *)q, K, sc, xf, K, M, K);
        else if (g == G_TOKEN || g == G_CHANNEL) emu_quant_token(q, K, sc, xf, K, M, K, fmt, (float)ub);
        else if (g == G_GROUP) { emu_quant_group(q, K, sc, xf, K, M, K, G, fmt); sshape[1] = ng; }
        else if (have_s) { sc[0] = (float)S; emu_quant_tensor(q, K, xf, K, M, K, fmt, sc[0]); }
        else sc[0] = emu_quant_tensor_dynamic(q, K, xf, K, M, K, fmt);
        if (g == G_TENSOR) sdim = 1, sshape[0] = 1;
        rule = g == G_TENSOR ? (have_s ? "vllm static per-tensor" : "vllm dynamic per-tensor") : "vllm";
        free(xf);
    }
    char qp[4096], sp[4096], d[80];
    snprintf(qp, sizeof qp, "%s.q.npy", prefix);
    snprintf(sp, sizeof sp, "%s.scale.npy", prefix);
    write_npy_nd(qp, q, fmt == EMU_I8 || fmt == FMT_INT4 ? "|i1" : "|u1", 2, (int64_t[]){M, K});
    write_npy_nd(sp, sc, "<f4", sdim, sshape);
    npy_dims(&x, d, sizeof d);
    char sd[48];
    if (sdim == 1) snprintf(sd, sizeof sd, "1");
    else snprintf(sd, sizeof sd, "%lld, %lld", (long long)sshape[0], (long long)sshape[1]);
    printf("quant: %s %s [%s], %s %s (%s): %s %s [%d, %d], %s float32 [%s]\n", in, npy_kind_name(x.kind), d, gran, kc_format_name(fmt), rule,
           qp, fmt == EMU_I8 || fmt == FMT_INT4 ? "int8" : "uint8", M, K, sp, sd);
    free(q); free(sc); free(x.data);
    return 0;
}

/* A scale array's kind for a GEMM operand of `rows` rows (A: M, B: N): tensor [1] (or a scalar, or [1, 1]),
 * per row [rows, 1] or [rows], block [ceil(rows/bs), ceil(K/128)] (bs = 1 for A's 1x128 groups, 128 for B's
 * blocks). A shape that fits both per-row and block (K <= 128) is per row unless `block`. */
static emu_scale kc_scale_kind(const npy *s, const char *path, const char *which, int rows, int K, int bs, int block) {
    char d[80];
    npy_dims(s, d, sizeof d);
    if (s->kind != NPY_F32) fatal("gemm: %s scale %s is %s; scales are float32", which, path, npy_kind_name(s->kind));
    for (size_t i = 0; i < s->n; i++) {
        float v;
        memcpy(&v, s->data + 4 * i, 4);
        if (!isfinite(v)) fatal("gemm: %s scale %s holds %s at flat index %zu; scales must be finite", which, path, isnan(v) ? "NaN" : "Inf", i);
    }
    int br = (rows + bs - 1) / bs, bk = (K + EMU_BLOCK - 1) / EMU_BLOCK;
    int is_block = s->ndim == 2 && s->shape[0] == br && s->shape[1] == bk;
    int is_tensor = s->n == 1 && s->ndim <= 2;
    int is_row = (s->ndim == 1 && s->shape[0] == rows) || (s->ndim == 2 && s->shape[0] == rows && s->shape[1] == 1);
    if (block && is_block) return EMU_SCALE_BLOCK;
    if (is_tensor) return EMU_SCALE_TENSOR;
    if (is_row) return EMU_SCALE_ROW;
    if (is_block) return EMU_SCALE_BLOCK;
    fatal("gemm: %s scale %s has shape [%s]; expected [1] (per tensor), [%d, 1] (per %s) or [%d, %d] (%s)", which, path, d, rows,
          bs == 1 ? "token" : "channel", br, bk, bs == 1 ? "1x128 groups" : "128x128 blocks");
}
/* An operand's element type from its .npy dtype and the --X-format given (NULL: the default). */
static emu_dtype kc_operand(const npy *a, const char *path, const char *which, const char *format) {
    emu_dtype f = format ? parse_kc_format(which[0] == 'A' ? "--a-format" : "--b-format", format) : (emu_dtype)-1;
    switch (a->kind) {
    case NPY_U8:
        if (f == EMU_I8) fatal("gemm: %s %s holds uint8 (FP8 codes); int8 operands are saved as int8 (|i1)", which, path);
        return (int)f < 0 ? EMU_E4M3 : f;
    case NPY_I8:
        if ((int)f >= 0 && f != EMU_I8) fatal("gemm: %s %s holds int8; FP8 codes are saved as uint8 (|u1)", which, path);
        return EMU_I8;
    default:
        if (format) fatal("gemm: %s %s holds %s values, not codes: --%c-format does not apply", which, path, npy_kind_name(a->kind), which[0] == 'A' ? 'a' : 'b');
        return a->kind == NPY_F32 ? EMU_F32 : a->kind == NPY_BF16 ? EMU_BF16 : EMU_F16;
    }
}
/* D (float32 or bf16 bits, MINE's dtype) against MINE: bit-identical elements (any NaN matches any NaN, as cmp) and
 * those within 1 ulp (cmp's npy_ord). */
static void kc_agree(const void *D, const npy *mine, size_t *same, size_t *near) {
    npy d = *mine;
    d.data = (uint8_t *)D;
    *same = *near = 0;
    for (size_t i = 0; i < mine->n; i++) {
        int dn = npy_is_nan(&d, i), mn = npy_is_nan(mine, i);
        if (dn || mn) { if (dn && mn) { (*same)++; (*near)++; } continue; }
        int64_t u = npy_ord(&d, i) - npy_ord(mine, i);
        *same += u == 0;
        *near += u >= -1 && u <= 1;
    }
}

static int cmd_gemm(int argc, char **argv) {
    const char *files[2] = {NULL, NULL}, *out = NULL, *sa_path = NULL, *sb_path = NULL, *afmt = NULL, *bfmt = NULL, *explain = NULL, *dout = NULL;
    int accum = -1, block = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: llama_fp8 gemm A.npy B.npy -o D.npy [--a-scale SA.npy] [--b-scale SB.npy] [--a-format e4m3|e5m2|int8] [--b-format ...]\n"
                   "                     [--accum exact|fp32|hopper|ada|cublaslt|fast] [--out f32|bf16] [--block] [--explain MINE.npy]\n"
                   "  D = A . B^T with the scaled epilogue of the schemes (emu/emu.h), A [M, K], B [N, K] (one row per output feature).\n"
                   "  A, B: uint8 FP8 codes (--X-format e4m3, the default, or e5m2) or int8 (|i1; int32 accumulation, exact);\n"
                   "    A may hold float32 / bfloat16 / float16 values (weight-only: converted exactly, --accum fp32 or fast).\n"
                   "  scales (float32): A [1] per tensor, [M, 1] per token, [M, ceil(K/128)] per 1x128 group;\n"
                   "    B [1], [N, 1] per channel, [ceil(N/128), ceil(K/128)] per 128x128 block; absent = 1.\n"
                   "    per row and block read alike when K <= 128: per row unless --block.\n"
                   "  epilogue: t = fp32(s_b . acc), D = round_out(s_a . t); block scales: per group of 128 k,\n"
                   "    D_acc = fp32(D_acc + fp32(fp32(acc_g . s_a) . s_b)) in group order; round_out: exact (f32) or RNE (bf16).\n"
                   "  --accum (default exact; fp32 for float A): exact = the exact sum rounded once; fp32 = fmaf in k order;\n"
                   "    hopper / ada = tensor-core block FMA (32 / 16 products, 13 fraction bits, truncation); cublaslt = hopper\n"
                   "    promoted to fp32 every 128 k; fast = pairs in VDPBF16PS order.\n"
                   "  D.npy: float32 [M, N], or with --out bf16 uint16 bf16 bits (numpy: .view(ml_dtypes.bfloat16)).\n"
                   "  --explain MINE.npy: run every accumulation model on these inputs and report the share of MINE's elements\n"
                   "    (float32 or bf16 bits [M, N]) each reproduces bit for bit; exit 0 when one reproduces all of them.\n"
                   "    The tensor-core models are scalar C (about 20 ns per product): keep M x N x K to a few 10^8 for them.\n");
            return 0;
        }
        int more = i + 1 < argc;
        if (!strcmp(a, "-o") && more) out = argv[++i];
        else if (!strcmp(a, "--a-scale") && more) sa_path = argv[++i];
        else if (!strcmp(a, "--b-scale") && more) sb_path = argv[++i];
        else if (!strcmp(a, "--a-format") && more) afmt = argv[++i];
        else if (!strcmp(a, "--b-format") && more) bfmt = argv[++i];
        else if (!strcmp(a, "--out") && more) dout = argv[++i];
        else if (!strcmp(a, "--explain") && more) explain = argv[++i];
        else if (!strcmp(a, "--block")) block = 1;
        else if (!strcmp(a, "--accum") && more) {
            accum = emu_accum_from_name(argv[++i]);
            if (accum < 0) fatal("gemm: --accum expects exact, fp32, hopper, ada, cublaslt or fast, got '%s'", argv[i]);
        } else if (a[0] == '-' && a[1]) fatal("gemm: unknown option '%s'%s (see llama_fp8 gemm --help)", a, more ? "" : " or missing value");
        else if (files[1]) fatal("gemm: give two operand files A.npy B.npy (got a third, '%s')", a);
        else files[files[0] ? 1 : 0] = a;
    }
    if (!files[1]) fatal("gemm: give two operand files: llama_fp8 gemm A.npy B.npy -o D.npy");
    if (!out && !explain) fatal("gemm: -o D.npy is required (or --explain MINE.npy)");
    if (dout && strcmp(dout, "f32") && strcmp(dout, "bf16")) fatal("gemm: --out expects f32 or bf16, got '%s'", dout);
    if (out) check_writable(out, "gemm: -o");
    npy A = npy_load(files[0]), Bm = npy_load(files[1]);
    int M, K, N, KB;
    npy_matrix(&A, files[0], "gemm", &M, &K);
    npy_matrix(&Bm, files[1], "gemm", &N, &KB);
    if (K != KB) fatal("gemm: A is [%d, %d] and B [%d, %d]: K differs (B is stored [N, K], one row per output feature)", M, K, N, KB);
    emu_dtype at = kc_operand(&A, files[0], "A", afmt), bt = kc_operand(&Bm, files[1], "B", bfmt);
    float *Af = NULL;
    if (at == EMU_BF16 || at == EMU_F16) { Af = npy_to_f32(&A); at = EMU_F32; }   /* weight-only activations: exactly fp32 */
    if (at == EMU_F32 && sa_path) fatal("gemm: A holds values (weight-only GEMM): --a-scale does not apply");
    if ((bt == EMU_F32 || bt == EMU_BF16 || bt == EMU_F16) && sb_path) fatal("gemm: B holds values, not codes: --b-scale does not apply");
    if (accum < 0) accum = at == EMU_F32 ? EMU_ACC_FP32 : EMU_ACC_EXACT;
    npy SA = {0}, SB = {0};
    emu_gemm_desc g = {.M = M, .N = N, .K = K, .a_type = at, .A = Af ? (const void *)Af : A.data, .lda = K,
                       .b_type = bt, .B = Bm.data, .ldb = K, .d_type = EMU_F32, .ldd = N, .accum = (emu_accum)accum};
    if (sa_path) { SA = npy_load(sa_path); g.a_scale_kind = kc_scale_kind(&SA, sa_path, "A", M, K, 1, block); g.a_scale = (const float *)SA.data; }
    if (sb_path) { SB = npy_load(sb_path); g.b_scale_kind = kc_scale_kind(&SB, sb_path, "B", N, K, EMU_BLOCK, block); g.b_scale = (const float *)SB.data; }
    npy mine = {0};
    if (explain) {
        mine = npy_load(explain);
        char d[80];
        npy_dims(&mine, d, sizeof d);
        if (mine.kind != NPY_F32 && mine.kind != NPY_BF16) fatal("gemm: --explain %s is %s; a GEMM output is float32 or bf16 bits (uint16)", explain, npy_kind_name(mine.kind));
        if (mine.ndim != 2 || mine.shape[0] != M || mine.shape[1] != N) fatal("gemm: --explain %s has shape [%s]; this GEMM gives [%d, %d]", explain, d, M, N);
        if (dout && (mine.kind == NPY_BF16) != !strcmp(dout, "bf16")) fatal("gemm: --out %s, but --explain %s holds %s", dout, explain, npy_kind_name(mine.kind));
        if (mine.kind == NPY_BF16) dout = "bf16";
    }
    if (dout && !strcmp(dout, "bf16")) g.d_type = EMU_BF16;
    size_t es = g.d_type == EMU_F32 ? 4 : 2, n = (size_t)M * N;
    void *D = xmalloc(n * es + 4);
    g.D = D;
    const char *why = emu_gemm_check(&g);
    if (why && !(explain && !out)) fatal("gemm: %s (A %s, B %s, --accum %s)", why, kc_format_name(at), bt == EMU_F32 || bt == EMU_BF16 || bt == EMU_F16 ? dtype_name(bt) : kc_format_name(bt), emu_accum_names[accum]);
    static const char *const kna[] = {"none", "per tensor", "per token", "1x128 groups"}, *const knb[] = {"none", "per tensor", "per channel", "128x128 blocks"};
    if (out) {
        emu_gemm(&g);
        write_npy_nd(out, D, g.d_type == EMU_F32 ? "<f4" : "<u2", 2, (int64_t[]){M, N});
        printf("gemm: [%d, %d] x [%d, %d]^T, A %s (scale %s), B %s (scale %s), --accum %s%s: %s %s [%d, %d]\n", M, K, N, K, kc_format_name(at),
               kna[g.a_scale_kind], bt == EMU_F32 || bt == EMU_BF16 || bt == EMU_F16 ? dtype_name(bt) : kc_format_name(bt), knb[g.b_scale_kind],
               emu_accum_names[accum], at == EMU_I8 ? " (INT8: int32, exact)" : "", out, g.d_type == EMU_F32 ? "float32" : "bf16 (uint16 bits)", M, N);
    }
    int rc = 0;
    if (explain) {
        printf("explain: %s, %s [%d, %d], against every accumulation model on %s . %s^T\n", explain, g.d_type == EMU_F32 ? "float32" : "bf16", M, N, files[0], files[1]);
        printf("  %-9s %22s %22s\n", "model", "bit-identical", "within 1 ulp");
        int best = -1;
        size_t best_same = 0, all_same[EMU_ACC_COUNT] = {0};
        for (int m = 0; m < EMU_ACC_COUNT; m++) {
            g.accum = (emu_accum)m;
            const char *w = emu_gemm_check(&g);
            if (w) { printf("  %-9s   n/a: %s\n", emu_accum_names[m], w); continue; }
            emu_gemm(&g);
            size_t same, near;
            kc_agree(D, &mine, &same, &near);
            printf("  %-9s %12zu %8.3f %% %12zu %8.3f %%\n", emu_accum_names[m], same, 100.0 * same / n, near, 100.0 * near / n);
            all_same[m] = same;
            if (best < 0 || same > best_same) { best = m; best_same = same; }
        }
        if (at == EMU_I8) printf("  (INT8 accumulates in int32: every model is exact)\n");
        if (best >= 0 && best_same == n) {
            int ties = 0;
            for (int m = 0; m < EMU_ACC_COUNT; m++) ties += all_same[m] == n;
            printf("best: ");
            for (int m = 0, k = 0; m < EMU_ACC_COUNT; m++) if (all_same[m] == n) printf("%s%s", k++ ? ", " : "", emu_accum_names[m]);
            printf(ties > 1 ? " reproduce every element (they agree on these inputs: inputs where they differ tell them apart)\n" : " reproduces every element\n");
        } else {
            printf("best: %s, %.3f %% of the elements; no model reproduces them all\n", best < 0 ? "none" : emu_accum_names[best], best < 0 ? 0.0 : 100.0 * best_same / n);
            rc = 1;
        }
    }
    free(D); free(Af); free(A.data); free(Bm.data); free(SA.data); free(SB.data); free(mine.data);
    return rc;
}

static int cmd_dump(int argc, char **argv) {
    Options o;
    options_parse(&o, argc, argv, "dump", "-m --tokenizer --ids -p -o --synthetic --ops --ops-weights " SCHEME_OPTS,
                  "-m MODEL (--ids \"128000,9906,1917\" | -p TEXT) -o DIR [-q SCHEME (bf16, as ppl)] [--tokenizer FILE] [--ops] [--ops-weights]\n"
                  "  writes DIR/logits.npy (float32 [tokens, vocab]) and DIR/layer_XX.npy (residual stream after layer XX, [tokens, dim])\n"
                  "  --ops: also every op of forward() on the CPU, as .npy named by layer and site (L00.attn_norm, L00.qkv.act.q / .scale,\n"
                  "    L00.q_proj.acc (accumulator before the epilogue), L00.q_proj, L00.q_rope, L00.k_cache(.q / .scale), L00.attn, ...,\n"
                  "    L00.mlp_residual, final_norm, lm_head) and DIR/ops.json: each file's op, layer, shape, dtype and input files\n"
                  "  --ops-weights: --ops and each quantized Linear's weight codes and scales as the GEMM reads them (L00.q_proj.w.q / .w.scale)\n" SCHEME_HELP);
    if (!o.out) fatal("dump: -o DIR is required");
    if (!o.ids == !o.prompt) fatal("dump: give exactly one of --ids and -p");
    Model *m = open_model(&o, "dump");
    const Config *c = &m->c;
    if (o.scales_file) o.so.scales = scales_load(o.scales_file, m);
    Scheme qs = scheme_for_model(m, o.scheme, "bf16", &o.so);
    const Scheme *q = &qs;
    int *ids, T;
    if (o.ids) T = parse_ids(o.ids, c->vocab_size, &ids);
    else {
        tokenizer *tk = run_tokenizer(o.tokenizer, o.model, c);
        T = tokenizer_encode(tk, o.prompt, strlen(o.prompt), 1, 0, &ids);
        tokenizer_free(tk);
    }
    if (T > c->max_seq_len) fatal("dump: %d tokens exceed the model's maximum context %d", T, c->max_seq_len);
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) fatal("dump: cannot create %s: %s", o.out, strerror(errno));
    check_dir_writable(o.out, "dump: -o");
    const Model *mq = model_for_scheme(m, q);
    RunState s;
    runstate_init(&s, c, T, T);
    runstate_use_device(&s);
    if (o.ops) { s.be = &ops_backend; memset(&od, 0, sizeof od); od.dir = o.out; od.weights = o.ops_weights; }   /* the CPU reference, op by op */
    s.layer_out = xmalloc(c->n_layers * sizeof(float *));
    for (int l = 0; l < c->n_layers; l++) s.layer_out[l] = xmalloc((size_t)T * c->dim * sizeof(float));
    forward(mq, &s, q, ids, T, 0, 0);
    char path[4096];
    if (o.ops) {
        snprintf(path, sizeof path, "%s/ops.json", o.out);
        atomic_file af;
        atomic_open(&af, path);
        jw w;
        jw_begin(&w, af.fp);
        jw_str(&w, "model", m->path);
        jw_str(&w, "scheme", q->name);
        jw_str(&w, "accum", scheme_quantizes(q) ? emu_accum_names[q->accum] : "fp32 (baseline GEMM)");
        jw_arr(&w, "tokens", 1);
        for (int t = 0; t < T; t++) jw_int(&w, NULL, ids[t]);
        jw_end_arr(&w);
        jw_arr(&w, "ops", 0);
        for (int i = 0; i < od.n; i++) {
            const OpRec *e = &od.rec[i];
            jw_obj(&w, NULL, 1);
            jw_str(&w, "file", e->file);
            jw_str(&w, "op", e->op);
            jw_int(&w, "layer", e->layer);
            jw_str(&w, "dtype", e->dtype);
            jw_arr(&w, "shape", 1);
            for (int d = 0; d < e->ndim; d++) jw_int(&w, NULL, e->shape[d]);
            jw_end_arr(&w);
            jw_arr(&w, "inputs", 1);
            for (int k = 0; k < 4; k++) if (e->in[k][0]) jw_str(&w, NULL, e->in[k]);
            jw_end_arr(&w);
            jw_str(&w, "what", e->desc);
            jw_end_obj(&w);
        }
        jw_end_arr(&w);
        jw_end(&w);
        atomic_commit(&af);
        printf("dump --ops: %d op files and %s (CPU reference, op by op)\n", od.n, path);
        free(od.rec);
    }
    snprintf(path, sizeof path, "%s/logits.npy", o.out);
    write_npy(path, s.logits, T, c->vocab_size);
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(path, sizeof path, "%s/layer_%02d.npy", o.out, l);
        write_npy(path, s.layer_out[l], T, c->dim);
        free(s.layer_out[l]);
    }
    free(s.layer_out);
    printf("dump: %d tokens, scheme %s: %s/logits.npy [%d, %d] and %d layer_XX.npy [%d, %d]\n", T, q->name, o.out, T, c->vocab_size, c->n_layers, T, c->dim);
    long long bad = first_nonfinite(s.logits, EMU_F32, (size_t)T * c->vocab_size);
    if (bad >= 0)   /* the files are what the model computed; the user is told where NaN / Inf begins */
        fprintf(stderr, "llama_fp8: warning: dump: the logits hold non-finite values (first: %s at token %lld, id %lld); %s\n",
                isnan(s.logits[bad]) ? "NaN" : s.logits[bad] > 0 ? "+Inf" : "-Inf", bad / c->vocab_size, bad % c->vocab_size, nonfinite_origin(mq, q, ids, T, 0));
    free(ids);
    runstate_free(&s);
    gpu_forward_release();
    model_free(m);
    return 0;
}

static int cmd_generate(int argc, char **argv) {
    Options o;
    options_parse(&o, argc, argv, "generate", "-m --tokenizer -p -n --temp --seed " SCHEME_OPTS,
                  "-m MODEL [--tokenizer FILE] [-p PROMPT] [-n NEW_TOKENS (64)] [--temp T (0 = greedy)] [--seed S] [-q SCHEME (bf16, as ppl)]\n"
                  "  starts from BOS + PROMPT; greedy decoding takes the first maximal logit, as llama2.c does\n" SCHEME_HELP);
    Model *m = open_model(&o, "generate");
    const Config *c = &m->c;
    if (o.scales_file) o.so.scales = scales_load(o.scales_file, m);
    Scheme qs = scheme_for_model(m, o.scheme, "bf16", &o.so);
    const Scheme *q = &qs;
    tokenizer *tk = run_tokenizer(o.tokenizer, o.model, c);
    int *ids;
    const char *prompt = o.prompt ? o.prompt : "";
    int np = tokenizer_encode(tk, prompt, strlen(prompt), 1, 0, &ids);
    int total = np + o.n_new;
    if (total > c->max_seq_len) total = c->max_seq_len;
    if (np >= total && o.n_new > 0) fatal("generate: the prompt (%d tokens) fills the model's context %d", np, c->max_seq_len);
    ids = xrealloc(ids, (size_t)(total + 1) * sizeof(int));
    const Model *mq = model_for_scheme(m, q);
    RunState s;
    runstate_init(&s, c, np, total);
    runstate_use_device(&s);
    /* llama2.c models delimit stories with BOS; Hugging Face models stop at eos_token_id */
    int stop = !strcmp(m->format, "llama2.c") ? c->bos_id : c->eos_id;   /* and any other eos id config.json lists (below) */
    uint64_t rng = o.seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < np; i++) {  /* echo the prompt */
        size_t len;
        const char *p = tokenizer_decode(tk, i ? ids[i - 1] : -1, ids[i], &len);
        if (i) fwrite(p, 1, len, stdout);
    }
    double t0 = now_seconds();
    int pos = 0, n_gen = 0;
    forward(mq, &s, q, ids, np, 0, np - 1);
    pos = np;
    while (pos < total) {
        const float *lg = s.logits;
        long long bad = first_nonfinite(lg, EMU_F32, (size_t)c->vocab_size);   /* no token is sampled from NaN */
        if (bad >= 0) {
            float v = lg[bad];   /* read before the state (and the logits) are freed */
            runstate_free(&s);
            gpu_forward_release();
            fatal("generate: the logits at position %d hold %s (vocabulary id %lld); %s", pos - 1, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf",
                  bad, nonfinite_origin(mq, q, ids, pos, pos - 1));
        }
        int next = 0;
        if (o.temp == 0) {
            for (int i = 1; i < c->vocab_size; i++) if (lg[i] > lg[next]) next = i;
        } else {
            float mx = lg[0];
            for (int i = 1; i < c->vocab_size; i++) if (lg[i] > mx) mx = lg[i];
            double sum = 0;
            for (int i = 0; i < c->vocab_size; i++) sum += exp(((double)lg[i] - mx) / o.temp);
            double r = rng_uniform(&rng) * sum, acc = 0;
            next = c->vocab_size - 1;
            for (int i = 0; i < c->vocab_size; i++) { acc += exp(((double)lg[i] - mx) / o.temp); if (acc > r) { next = i; break; } }
        }
        int is_eos = next == stop;
        for (int e = 0; e < c->n_eos && strcmp(m->format, "llama2.c"); e++) is_eos |= next == c->eos_ids[e];
        if (is_eos) break;
        size_t len;
        const char *p = tokenizer_decode(tk, ids[pos - 1], next, &len);
        fwrite(p, 1, len, stdout);
        fflush(stdout);
        ids[pos] = next;
        n_gen++;
        if (pos + 1 >= total) break;
        forward(mq, &s, q, &ids[pos], 1, pos, 0);
        pos++;
    }
    printf("\n");
    double el = now_seconds() - t0;
    fprintf(stderr, "generate: %d tokens, %.1f tok/s (scheme %s)\n", n_gen, el > 0 ? n_gen / el : 0.0, q->name);
    free(ids);
    runstate_free(&s);
    tokenizer_free(tk);
    model_free(m);
    return 0;
}
/* ---- llama_fp8 export: a compressed-tensors FP8 checkpoint that vLLM loads ---- */
/* From a Hugging Face source directory: DIR/config.json is the source's, every key kept as written
 * (eos_token_id lists, rope_scaling, ...), with "quantization_config" (qc: `  "quantization_config": {...}`)
 * added as its last member; generation_config.json and the tokenizer files found beside the source are
 * copied, so the export loads in vLLM and transformers as it is. Returns the number of files copied
 * besides config.json, or -1 when the source is not a directory (a llama2.c file). Atomic writes. */
static int export_hf_files(const char *src, const char *dst, const char *qc) {
    if (!is_directory(src)) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", src);
    size_t len;
    char *text = read_text_file(path, &len);
    if (!text) fatal("%s: cannot read: %s", path, strerror(errno));
    json j;
    if (json_parse(&j, text, len) != 0 || j.t[0].type != J_OBJ) fatal("%s: invalid JSON or not an object", path);
    if (json_get(&j, 0, "quantization_config") >= 0) fatal("%s: the source already has a quantization_config (export a bf16/fp16/fp32 model)", path);
    /* the unquantized tensors are written as BF16: a "torch_dtype" / "dtype" saying otherwise becomes "bfloat16" */
    for (int pass = 0; pass < 2; pass++) {
        int k = json_get(&j, 0, pass ? "dtype" : "torch_dtype");
        if (k < 0 || j.t[k].type != J_STR || json_streq(&j, k, "bfloat16")) continue;
        size_t a0 = (size_t)j.t[k].start, a1 = (size_t)j.t[k].end, nl = len - (a1 - a0) + 8;
        char *t2 = xmalloc(nl + 1);
        memcpy(t2, text, a0); memcpy(t2 + a0, "bfloat16", 8); memcpy(t2 + a0 + 8, text + a1, len - a1);
        t2[nl] = 0;
        free(text); text = t2; len = nl;
        json_free(&j);
        if (json_parse(&j, text, len) != 0) fatal("internal: config.json rewrite");
    }
    json_free(&j);
    size_t end = len;
    while (end > 0 && text[end - 1] != '}') end--;   /* the object's closing brace (the parser accepted the text) */
    size_t body = end - 1;
    while (body > 0 && isspace((unsigned char)text[body - 1])) body--;
    int empty = body > 0 && text[body - 1] == '{';
    snprintf(path, sizeof path, "%s/config.json", dst);
    atomic_file a;
    atomic_open(&a, path);
    fwrite(text, 1, body, a.fp);
    if (qc) fprintf(a.fp, "%s\n%s\n}\n", empty ? "" : ",", qc);
    else fputs("\n}\n", a.fp);   /* smooth: the config as it is */
    atomic_commit(&a);
    free(text);
    static const char *const extra[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "tokenizer.model", "original/tokenizer.model", "chat_template.jinja"};
    int copied = 0;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", src, extra[i]);
        char *data = read_text_file(path, &len);
        if (!data) continue;
        snprintf(path, sizeof path, "%s/%s", dst, extra[i]);
        if (strchr(extra[i], '/')) {
            char d[4096];
            snprintf(d, sizeof d, "%s/original", dst);
            if (mkdir(d, 0777) != 0 && errno != EEXIST) fatal("export: cannot create %s: %s", d, strerror(errno));
        }
        atomic_open(&a, path);
        if (fwrite(data, 1, len, a.fp) != len) fatal("writing %s failed: %s", path, strerror(errno));
        atomic_commit(&a);
        free(data);
        copied++;
    }
    return copied;
}
/* Writes DIR/config.json (the model's config + quantization_config) and DIR/model.safetensors with,
 * per quantized Linear X: X.weight F8_E4M3 [N, K], X.weight_scale [N, 1] (channel) or [1] (tensor)
 * in BF16 (the bf16 model's scales are bf16 values), X.input_scale [1] BF16 for static activations,
 * self_attn.k_scale / v_scale [1] BF16 with --kv; everything else BF16. The
 * bytes are exactly those the scheme runs with, so export → load → run gives identical logits. */
/* ---- The tensor list of a checkpoint written here (export, gptq, smooth): one order, Hugging Face names ----
 * embed_tokens; per layer input_layernorm, post_attention_layernorm, the seven Linears (the writer's lin() appends each
 * one's entries) and the writer's layer_tail() (FP8 KV scales); model.norm; lm_head unless tied (the writer's head() when
 * it returns 1, else a bf16 copy). Per entry the writer keeps a kind `what` (CK_BF16: a bf16 copy of t, CK_VEC: of the
 * vector vec, both written by ck_fill_plain; its own kinds otherwise), t, layer, site, a float gs and a pointer aux. */
enum { CK_BF16 = 0, CK_VEC = 6 };
typedef struct {
    st_entry *e;
    int n, cap;
    int *what, *layer, *site;
    const Tensor **t;
    const float **vec;
    float *gs;
    const void **aux;
    size_t maxnk;   /* the largest N * K among entries of a tensor in a kind other than CK_BF16 (the writers' scratch) */
} CkList;
static int ck_add(CkList *L, int what, const Tensor *t, emu_dtype dt, int nd, int64_t s0, int64_t s1, const char *fmt, ...) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->e = xrealloc(L->e, L->cap * sizeof *L->e); L->what = xrealloc(L->what, L->cap * sizeof(int));
        L->layer = xrealloc(L->layer, L->cap * sizeof(int)); L->site = xrealloc(L->site, L->cap * sizeof(int));
        L->t = xrealloc(L->t, L->cap * sizeof *L->t); L->vec = xrealloc(L->vec, L->cap * sizeof *L->vec);
        L->gs = xrealloc(L->gs, L->cap * sizeof(float)); L->aux = xrealloc(L->aux, L->cap * sizeof *L->aux);
    }
    int i = L->n++;
    st_entry *e = &L->e[i];
    memset(e, 0, sizeof *e);
    va_list ap;
    va_start(ap, fmt); vsnprintf(e->name, sizeof e->name, fmt, ap); va_end(ap);
    e->dtype = dt; e->ndim = nd; e->shape[0] = s0; e->shape[1] = s1;
    L->what[i] = what; L->t[i] = t; L->vec[i] = NULL; L->layer[i] = L->site[i] = 0; L->gs[i] = 1; L->aux[i] = NULL;
    if (t && what != CK_BF16 && (size_t)t->rows * t->cols > L->maxnk) L->maxnk = (size_t)t->rows * t->cols;
    return i;
}
typedef struct {
    void (*lin)(CkList *L, int l, const Layer *Ly, int w, const Tensor *W, void *ctx);   /* the entries of Linear w (linear_names) of layer l */
    void (*layer_tail)(CkList *L, int l, void *ctx);                     /* optional */
    int (*head)(CkList *L, const Tensor *lm_head, void *ctx);            /* optional: 1 when it added lm_head's entries */
} CkWriter;
static void ck_build(CkList *L, const Model *mb, const CkWriter *w, void *ctx) {
    const Config *c = &mb->c;
    ck_add(L, CK_BF16, &mb->tok_embeddings, EMU_BF16, 2, c->vocab_size, c->dim, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *Ly = &mb->layers[l];
        const Tensor *ws[7] = {&Ly->wq, &Ly->wk, &Ly->wv, &Ly->wo, &Ly->w_gate, &Ly->w_up, &Ly->w_down};
        L->vec[ck_add(L, CK_VEC, NULL, EMU_BF16, 1, c->dim, 0, "model.layers.%d.input_layernorm.weight", l)] = Ly->attn_norm;
        L->vec[ck_add(L, CK_VEC, NULL, EMU_BF16, 1, c->dim, 0, "model.layers.%d.post_attention_layernorm.weight", l)] = Ly->ffn_norm;
        for (int i = 0; i < 7; i++) w->lin(L, l, Ly, i, ws[i], ctx);
        if (w->layer_tail) w->layer_tail(L, l, ctx);
    }
    L->vec[ck_add(L, CK_VEC, NULL, EMU_BF16, 1, c->dim, 0, "model.norm.weight")] = mb->final_norm;
    if (!c->tied_embeddings && !(w->head && w->head(L, &mb->lm_head, ctx)))
        ck_add(L, CK_BF16, &mb->lm_head, EMU_BF16, 2, c->vocab_size, c->dim, "lm_head.weight");
}
static int ck_fill_plain(const CkList *L, int i, void *buf, size_t nbytes) {   /* CK_BF16, CK_VEC entries; 0 for others */
    uint16_t *d = buf;
    if (L->what[i] == CK_BF16) for (size_t k = 0; k < nbytes / 2; k++) d[k] = bf16_from_float(tensor_get(L->t[i], k));
    else if (L->what[i] == CK_VEC) for (size_t k = 0; k < nbytes / 2; k++) d[k] = bf16_from_float(L->vec[i][k]);
    else return 0;
    return 1;
}
static void ck_write(const CkList *L, const char *dir, void (*fill)(void *ctx, int i, void *buf, size_t nbytes), void *ctx) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    safetensors_write(path, L->e, L->n, "{\"format\":\"pt\"}", fill, ctx);
}
static void ck_free(CkList *L) {
    free(L->e); free(L->what); free(L->layer); free(L->site); free(L->t); free(L->vec); free(L->gs); free(L->aux);
}

typedef struct {
    CkList L;      /* what: CK_BF16, CK_VEC, 1 fp8 / int8 weight, 2 weight scale, 3 input scale, 4 k scale, 5 v scale */
    const Scheme *q;
    uint8_t *qbuf;
    float *sbuf;
} export_ctx;
static void export_fill(void *vctx, int i, void *buf, size_t nbytes) {
    export_ctx *x = vctx;
    const Scheme *q = x->q;
    const Tensor *t = x->L.t[i];
    if (ck_fill_plain(&x->L, i, buf, nbytes)) return;
    switch (x->L.what[i]) {
    case 1: quant_weight(buf, x->sbuf, t, q->wfmt, q->wgran, q->bf16_arith); break;
    case 2: {
        quant_weight(x->qbuf, x->sbuf, t, q->wfmt, q->wgran, q->bf16_arith);
        size_t n = q->wgran == GRAN_TENSOR ? 1 : (size_t)t->rows;
        if (q->bf16_arith) for (size_t k = 0; k < n; k++) ((uint16_t *)buf)[k] = bf16_from_float(x->sbuf[k]);
        else memcpy(buf, x->sbuf, n * sizeof(float));
        break;
    }
    case 3: case 4: case 5: { /* bf16 values (static_scale), stored as BF16 [1] */
        int l = x->L.layer[i], site = x->L.site[i];
        float v = x->L.what[i] == 4 ? static_scale(q, q->scales->k_amax[l], q->kv)
                : x->L.what[i] == 5 ? static_scale(q, q->scales->v_amax[l], q->kv)
                : static_scale(q, l < 0 ? q->scales->lm_head : q->scales->act[l][site], q->afmt);
        ((uint16_t *)buf)[0] = bf16_from_float(v);
        break;
    }
    }
}

/* The entries of one Linear of an FP8 (or INT8) export: weight, weight_scale, input_scale of a static scheme. */
static void export_linear(CkList *L, int l, const Layer *Ly, int w, const Tensor *W, void *ctx) {
    const Scheme *q = ((export_ctx *)ctx)->q;
    int8_t i8 = q->kind == SCHEME_INT8;
    (void)Ly;
    ck_add(L, 1, W, i8 ? EMU_I8 : EMU_E4M3, 2, W->rows, W->cols, "model.layers.%d.%s.weight", l, linear_names[w]);
    if (q->wgran == GRAN_TENSOR) ck_add(L, 2, W, EMU_BF16, 1, 1, 0, "model.layers.%d.%s.weight_scale", l, linear_names[w]);
    else ck_add(L, 2, W, EMU_BF16, 2, W->rows, 1, "model.layers.%d.%s.weight_scale", l, linear_names[w]);
    if (q->amode == AMODE_TENSOR_STATIC) {
        int i = ck_add(L, 3, NULL, EMU_BF16, 1, 1, 0, "model.layers.%d.%s.input_scale", l, linear_names[w]);
        L->layer[i] = l; L->site[i] = linear_sites[w];
    }
}
static void export_kv_scales(CkList *L, int l, void *ctx) {
    if (((export_ctx *)ctx)->q->kv == EMU_F32) return;
    L->layer[ck_add(L, 4, NULL, EMU_BF16, 1, 1, 0, "model.layers.%d.self_attn.k_scale", l)] = l;
    L->layer[ck_add(L, 5, NULL, EMU_BF16, 1, 1, 0, "model.layers.%d.self_attn.v_scale", l)] = l;
}
static int export_lm_head(CkList *L, const Tensor *W, void *ctx) {   /* --quant-lm-head */
    const Scheme *q = ((export_ctx *)ctx)->q;
    if (!q->quant_lm_head) return 0;
    ck_add(L, 1, W, EMU_E4M3, 2, W->rows, W->cols, "lm_head.weight");
    if (q->wgran == GRAN_TENSOR) ck_add(L, 2, W, EMU_BF16, 1, 1, 0, "lm_head.weight_scale");
    else ck_add(L, 2, W, EMU_BF16, 2, W->rows, 1, "lm_head.weight_scale");
    if (q->amode == AMODE_TENSOR_STATIC) L->layer[ck_add(L, 3, NULL, EMU_BF16, 1, 1, 0, "lm_head.input_scale")] = -1;
    return 1;
}

/* export -q w4a16|nvfp4a16|mxfp4a16|mxfp8a16: the checkpoint llm-compressor 0.14 writes for the preset (save_compressed):
 *   pack-quantized        weight_packed I32 [N, K/8] (code + 8 in 4 bits, element 8j + i at bits 4i of word j),
 *                         weight_scale BF16 [N, K/128], weight_shape I64 [2]
 *   nvfp4-pack-quantized  weight_packed U8 [N, K/2] (element 2j in the low nibble), weight_scale F8_E4M3 [N, K/16],
 *                         weight_global_scale F32 [1]
 *   mxfp4-pack-quantized  weight_packed U8 [N, K/2], weight_scale U8 [N, K/32] (E8M0 codes)
 *   mxfp8-quantized       weight F8_E4M3 [N, K], weight_scale U8 [N, K/32]
 * Codes and scales are wf_quant_tensor's (the schemes' own). */
typedef struct {
    CkList L;        /* what: CK_BF16, CK_VEC, 10 packed / codes, 11 scales, 12 global scale, 13 weight_shape, 14 input global
                        scale; gs: the NVFP4 global scale (14: the input's); aux: gptq's codes (10) and scales (11) */
    wformat f;
    int mse;         /* INT4 scales by the mse observer */
    const Scheme *q;
    float g[7];      /* NVFP4: the current layer's weight global scales */
    uint8_t *qbuf;
    float *sbuf;
} wexport_ctx;
static void wexport_fill(void *vctx, int i, void *buf, size_t nbytes) {
    wexport_ctx *x = vctx;
    const Tensor *t = x->L.t[i];
    wformat f = x->f;
    int G = emu_wf_group(f);
    if (ck_fill_plain(&x->L, i, buf, nbytes)) return;
    switch (x->L.what[i]) {
    case 10: case 11: {
        size_t n = (size_t)t->rows * t->cols;
        wf_quant_tensor(f, x->mse, t, x->L.gs[i], x->qbuf, x->sbuf);
        if (x->L.what[i] == 11) {
            for (size_t k = 0; k < n / G; k++) {
                if (f == WF_INT4) ((uint16_t *)buf)[k] = bf16_from_float(x->sbuf[k]);
                else if (f == WF_NVFP4) ((uint8_t *)buf)[k] = fp8_from_float(x->sbuf[k], FP8_E4M3, FP8_SATFINITE);
                else ((uint8_t *)buf)[k] = (uint8_t)(ilogbf(x->sbuf[k]) + 127);   /* s = 2^(code - 127), code 0 included */
            }
        } else if (f == WF_INT4) {
            uint32_t *d = buf;
            for (size_t j = 0; j < n / 8; j++) {
                uint32_t w = 0;
                for (int k = 0; k < 8; k++) w |= (uint32_t)(((int8_t)x->qbuf[8 * j + k] + 8) & 0xF) << (4 * k);
                d[j] = w;
            }
        } else if (f == WF_MXFP8) memcpy(buf, x->qbuf, n);
        else for (size_t j = 0; j < n / 2; j++) ((uint8_t *)buf)[j] = (uint8_t)((x->qbuf[2 * j] & 0xF) | (x->qbuf[2 * j + 1] & 0xF) << 4);
        break;
    }
    case 12: case 14: memcpy(buf, &x->L.gs[i], 4); break;   /* 14: gs holds the input global scale */
    case 13: { int64_t sh[2] = {t->rows, t->cols}; memcpy(buf, sh, 16); break; }
    }
}
/* The entries of one Linear in the 4-bit / MX layouts (NVFP4: the layer's global scales, fused as llm-compressor fuses them). */
static void wexport_linear(CkList *L, int l, const Layer *Ly, int w, const Tensor *W, void *ctx) {
    wexport_ctx *x = ctx;
    wformat f = x->f;
    int N = W->rows, K = W->cols, G = emu_wf_group(f);
    const char *ln = linear_names[w];
    if (w == 0) {
        for (int i = 0; i < 7; i++) x->g[i] = 1;
        if (f == WF_NVFP4) {
            Tensor *ws[7] = {(Tensor *)&Ly->wq, (Tensor *)&Ly->wk, (Tensor *)&Ly->wv, (Tensor *)&Ly->wo, (Tensor *)&Ly->w_gate, (Tensor *)&Ly->w_up, (Tensor *)&Ly->w_down};
            nvfp4_layer_globals(ws, x->g);
        }
    }
    float g = x->g[w];
    if (f == WF_MXFP8) L->gs[ck_add(L, 10, W, EMU_E4M3, 2, N, K, "model.layers.%d.%s.weight", l, ln)] = g;
    else if (f == WF_INT4) L->gs[ck_add(L, 10, W, ST_I32, 2, N, K / 8, "model.layers.%d.%s.weight_packed", l, ln)] = g;
    else L->gs[ck_add(L, 10, W, ST_U8, 2, N, K / 2, "model.layers.%d.%s.weight_packed", l, ln)] = g;
    L->gs[ck_add(L, 11, W, f == WF_INT4 ? EMU_BF16 : f == WF_NVFP4 ? EMU_E4M3 : ST_U8, 2, N, K / G, "model.layers.%d.%s.weight_scale", l, ln)] = g;
    if (f == WF_NVFP4) L->gs[ck_add(L, 12, W, EMU_F32, 1, 1, 0, "model.layers.%d.%s.weight_global_scale", l, ln)] = g;
    if (f == WF_INT4) ck_add(L, 13, W, ST_I64, 1, 2, 0, "model.layers.%d.%s.weight_shape", l, ln);
    if (x->q && x->q->amode == AMODE_QDQ_NVFP4) {
        const ScaleSet *ss = x->q->scales;
        L->gs[ck_add(L, 14, W, EMU_F32, 1, 1, 0, "model.layers.%d.%s.input_global_scale", l, ln)] =
            ss->act_scale ? ss->act_scale[l][linear_sites[w]] : nvfp4_global_scale(ss->act[l][linear_sites[w]]);
    }
}
static int export_wformat(const Options *o, Model *m, const Scheme *q) {
    const Config *c = &m->c;
    wformat f = scheme_wformat(q);
    if (q->kv != EMU_F32) fatal("export: %s has no FP8 KV cache in its preset (drop --kv)", q->name);
    if (q->quant_lm_head) fatal("export: the %s preset leaves lm_head in bf16 (drop --quant-lm-head)", q->name);
    Scheme bq = scheme_by_name("bf16");
    const Model *mb = model_for_scheme(m, &bq);
    int mse = q->kind == SCHEME_W4A16_MSE;
    wf_view(m, f, mse);   /* refuses a K that is not a multiple of the group size */
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) fatal("export: cannot create %s: %s", o->out, strerror(errno));
    check_dir_writable(o->out, "export: -o");
    wexport_ctx x = {.f = f, .mse = mse, .q = q};
    ck_build(&x.L, mb, &(CkWriter){wexport_linear, NULL, NULL}, &x);
    int G = emu_wf_group(f);
    x.qbuf = xmalloc(x.L.maxnk);
    x.sbuf = xmalloc(x.L.maxnk / G * sizeof(float) + 16);
    char path[4096], qc[3072];
    double t0 = now_seconds();
    ck_write(&x.L, o->out, wexport_fill, &x);
    static const char *const wargs[N_WF] = {
        "\"num_bits\": 4, \"type\": \"int\", \"strategy\": \"group\", \"group_size\": 128, \"symmetric\": true, \"dynamic\": false, \"observer\": \"memoryless_minmax\"",
        "\"num_bits\": 4, \"type\": \"float\", \"strategy\": \"tensor_group\", \"group_size\": 16, \"symmetric\": true, \"dynamic\": false, \"observer\": \"memoryless_minmax\", \"scale_dtype\": \"torch.float8_e4m3fn\"",
        "\"num_bits\": 4, \"type\": \"float\", \"strategy\": \"group\", \"group_size\": 32, \"symmetric\": true, \"dynamic\": false, \"observer\": \"memoryless_minmax\", \"scale_dtype\": \"torch.uint8\"",
        "\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"group\", \"group_size\": 32, \"symmetric\": true, \"dynamic\": false, \"observer\": \"memoryless_minmax\", \"scale_dtype\": \"torch.uint8\""};
    snprintf(qc, sizeof qc,
             "  \"quantization_config\": {\n    \"quant_method\": \"compressed-tensors\",\n    \"format\": \"%s\",\n"
             "    \"quantization_status\": \"compressed\",\n    \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"format\": \"%s\",\n"
             "      \"weights\": {%s},\n      \"input_activations\": %s}},\n    \"ignore\": [\"lm_head\"],\n    \"kv_cache_scheme\": null\n  }",
             wf_info[f].ct_format, wf_info[f].ct_format, mse ? "\"num_bits\": 4, \"type\": \"int\", \"strategy\": \"group\", \"group_size\": 128, \"symmetric\": true, \"dynamic\": false, \"observer\": \"mse\"" : wargs[f],
             q->amode == AMODE_QDQ_NVFP4 ? "{\"num_bits\": 4, \"type\": \"float\", \"strategy\": \"tensor_group\", \"group_size\": 16, \"symmetric\": true, \"dynamic\": \"local\", \"observer\": \"static_minmax\", \"scale_dtype\": \"torch.float8_e4m3fn\"}"
             : q->amode == AMODE_QDQ_MXFP4 ? "{\"num_bits\": 4, \"type\": \"float\", \"strategy\": \"group\", \"group_size\": 32, \"symmetric\": true, \"dynamic\": true, \"scale_dtype\": \"torch.uint8\"}"
             : q->amode == AMODE_QDQ_MXFP8 ? "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"group\", \"group_size\": 32, \"symmetric\": true, \"dynamic\": true, \"scale_dtype\": \"torch.uint8\"}"
             : "null");
    snprintf(path, sizeof path, "%s/config.json", o->out);
    int copied = export_hf_files(o->model, o->out, qc);
    if (copied < 0) write_hf_config(path, c, qc);
    printf("export: %s: %s as compressed-tensors %s (%d tensors, %.1f s)\n", o->out, q->name, wf_info[f].ct_format, x.L.n, now_seconds() - t0);
    ck_free(&x.L); free(x.qbuf); free(x.sbuf);
    model_free(m);
    return 0;
}
/* export -q int8: the compressed-tensors "int-quantized" checkpoint llm-compressor 0.14 writes for the W8A8 INT8 scheme
 * (QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]), save_compressed): per Linear X of the layers
 * X.weight I8 [N, K] and X.weight_scale BF16 [N, 1] (quant_weight's INT8 rule: s = B(absmax / 127.5), q = rne(clamp(B(w / s),
 * -128, 127))), everything else BF16; input_activations: 8-bit int, per token, dynamic, symmetric. Export -> load ->
 * -q checkpoint runs the int8 scheme on the same codes and scales as -q int8 on the source. */
static int export_int8(const Options *o, Model *m, const Scheme *q) {
    const Config *c = &m->c;
    if (q->kv != EMU_F32) fatal("export: llm-compressor's W8A8 INT8 scheme has no FP8 KV cache (drop --kv)");
    if (q->quant_lm_head) fatal("export: llm-compressor's W8A8 INT8 recipe leaves lm_head in bf16 (drop --quant-lm-head)");
    if (!q->bf16_arith) fatal("export: a compressed-tensors checkpoint of a bf16 model holds bf16 scales: --weight-arith fp32 cannot be exported faithfully");
    if (q->scale_ub > 0) fatal("export: --scale-ub is not part of a compressed-tensors INT8 checkpoint");
    const Model *mb = model_for_scheme(m, q);
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) fatal("export: cannot create %s: %s", o->out, strerror(errno));
    check_dir_writable(o->out, "export: -o");
    export_ctx x = {.q = q};
    ck_build(&x.L, mb, &(CkWriter){export_linear, NULL, NULL}, &x);
    x.qbuf = xmalloc(x.L.maxnk);
    x.sbuf = xmalloc((x.L.maxnk + 1) * sizeof(float));
    char path[4096];
    double t0 = now_seconds();
    ck_write(&x.L, o->out, export_fill, &x);
    const char *qc =
        "  \"quantization_config\": {\n    \"quant_method\": \"compressed-tensors\",\n    \"format\": \"int-quantized\",\n"
        "    \"quantization_status\": \"compressed\",\n    \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"format\": \"int-quantized\",\n"
        "      \"weights\": {\"num_bits\": 8, \"type\": \"int\", \"strategy\": \"channel\", \"symmetric\": true, \"dynamic\": false, \"observer\": \"memoryless_minmax\"},\n"
        "      \"input_activations\": {\"num_bits\": 8, \"type\": \"int\", \"strategy\": \"token\", \"symmetric\": true, \"dynamic\": true}}},\n"
        "    \"ignore\": [\"lm_head\"],\n    \"kv_cache_scheme\": null\n  }";
    snprintf(path, sizeof path, "%s/config.json", o->out);
    int copied = export_hf_files(o->model, o->out, qc);
    if (copied < 0) write_hf_config(path, c, qc);
    printf("export: %s: %s as compressed-tensors int-quantized (%d tensors, %.1f s)\n", o->out, q->name, x.L.n, now_seconds() - t0);
    ck_free(&x.L); free(x.qbuf); free(x.sbuf);
    model_free(m);
    return 0;
}
static int cmd_export(int argc, char **argv) {
    Options o;
    options_parse(&o, argc, argv, "export", "-m -o " SCHEME_OPTS,
                  "-m MODEL -q w8a8|w8a8-static|fp8-w|int8 [--scales FILE] [--kv fp8-e4m3] [--weight-arith bf16|fp32] [--quant-lm-head] -o DIR\n"
                  "       -m MODEL -q w4a16|w4a16-mse|nvfp4a16|mxfp4a16|mxfp8a16|nvfp4 (with --scales)|mxfp4|mxfp8 -o DIR\n"
                  "  writes a compressed-tensors (llm-compressor format) checkpoint that vLLM loads: float-quantized (FP8), pack-quantized,\n"
                  "  nvfp4-pack-quantized, mxfp4-pack-quantized, mxfp8-quantized or int-quantized (int8: W8A8 INT8), as llm-compressor writes it for the scheme's preset");
    if (!o.out) fatal("export: -o DIR is required");
    if (!o.scheme) fatal("export: -q SCHEME is required (w8a8, w8a8-static, fp8-w, int8, w4a16, nvfp4a16, mxfp4a16, mxfp8a16, nvfp4, mxfp4 or mxfp8)");
    Model *m = open_model(&o, "export");
    const Config *c = &m->c;
    if (m->quant.present) fatal("export: %s is already quantized", m->path);
    if (o.scales_file) o.so.scales = scales_load(o.scales_file, m);
    Scheme q = scheme_make(o.scheme, &o.so);
    if (q.kind >= SCHEME_W4A16 && q.kind < SCHEME_FP8_W) return export_wformat(&o, m, &q);
    if (q.kind == SCHEME_INT8) return export_int8(&o, m, &q);
    if (q.kind != SCHEME_W8A8 && q.kind != SCHEME_W8A8_STATIC && q.kind != SCHEME_FP8_W)
        fatal("export: scheme %s has no compressed-tensors export here (w4a16, nvfp4a16, mxfp4a16, mxfp8a16, w8a8, w8a8-static, fp8-w, int8)", q.name);
    if (q.wfmt != EMU_E4M3 || q.afmt != EMU_E4M3) fatal("export: compressed-tensors FP8 checkpoints hold E4M3 only");
    if (q.kv != EMU_F32 && q.kv != EMU_E4M3) fatal("export: the KV cache scheme must be fp8-e4m3");
    if (q.kv != EMU_F32 && !q.scales) fatal("export: --kv needs calibrated K/V scales (--scales)");
    if (!q.bf16_arith) fatal("export: a compressed-tensors checkpoint of a bf16 model holds bf16 scales: --weight-arith fp32 cannot be exported faithfully");
    const Model *mb = model_for_scheme(m, &q);
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) fatal("export: cannot create %s: %s", o.out, strerror(errno));
    check_dir_writable(o.out, "export: -o");

    if (c->tied_embeddings && q.quant_lm_head) fatal("export: --quant-lm-head with tied embeddings is not supported");
    export_ctx x = {.q = &q};
    ck_build(&x.L, mb, &(CkWriter){export_linear, export_kv_scales, export_lm_head}, &x);
    x.qbuf = xmalloc(x.L.maxnk);
    x.sbuf = xmalloc(((size_t)c->vocab_size + x.L.maxnk / EMU_BLOCK + 1) * sizeof(float));
    char path[4096];
    double t0 = now_seconds();
    ck_write(&x.L, o.out, export_fill, &x);

    /* quantization_config, as llm-compressor writes it */
    char qc[2048];
    const char *wstrat = q.wgran == GRAN_TENSOR ? "tensor" : "channel";
    char acts[256] = "null";
    if (q.amode == AMODE_TOKEN) snprintf(acts, sizeof acts, "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"token\", \"symmetric\": true, \"dynamic\": true}");
    if (q.amode == AMODE_TENSOR_STATIC) snprintf(acts, sizeof acts, "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"tensor\", \"symmetric\": true, \"dynamic\": false, \"observer\": \"minmax\"}");
    snprintf(qc, sizeof qc,
             "  \"quantization_config\": {\n    \"quant_method\": \"compressed-tensors\",\n    \"format\": \"float-quantized\",\n"
             "    \"quantization_status\": \"compressed\",\n    \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"],\n"
             "      \"weights\": {\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"%s\", \"symmetric\": true, \"dynamic\": false, \"observer\": \"minmax\"},\n"
             "      \"input_activations\": %s}},\n    \"ignore\": [%s],\n    \"kv_cache_scheme\": %s\n  }",
             wstrat, acts, q.quant_lm_head ? "" : "\"lm_head\"",
             q.kv != EMU_F32 ? "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"tensor\", \"symmetric\": true, \"dynamic\": false}" : "null");
    snprintf(path, sizeof path, "%s/config.json", o.out);
    int copied = export_hf_files(o.model, o.out, qc);
    if (copied < 0) write_hf_config(path, c, qc);   /* a llama2.c source: a config.json made from its header */
    printf("export: %s: %s as compressed-tensors (%d tensors, %.1f s%s)\n", o.out, q.name, x.L.n, now_seconds() - t0,
           copied > 0 ? "; config.json kept with quantization_config added, generation and tokenizer files copied" : copied == 0 ? "; config.json kept with quantization_config added" : "");
    ck_free(&x.L); free(x.qbuf); free(x.sbuf);
    model_free(m);
    return 0;
}

/* ---- Activation observers (static scales), as llm-compressor computes them ----
 * Every (layer, site) has one observer; one calibration window = one batch. Per batch the observer
 * sees the full-precision input of the Linear(s) (quantize_act) and updates its state; the scale
 * written is absmax / fmax, absmax = max(−min, max) of the final state (min clamped ≤ 0, max ≥ 0, as
 * compressed_tensors.calculate_qparams does for symmetric scales). Sources: vllm-project/llm-compressor
 * src/llmcompressor/observers/min_max.py @ 05d780a1 and mse.py @ 04a18de6.
 *   minmax      running min / max over all batches (compressed-tensors "static_minmax"): absmax is
 *               the running max of the per-batch absmax.
 *   ema         llm-compressor "minmax": min and max each a moving average, first batch initialises,
 *               r ← r + 0.01·(cur − r), in fp32.
 *   mse         llm-compressor "mse" (MovingAverageMSEObserver): per batch, grid over shrink factors
 *               p = 1 − i/100, i = 0..19 (1.00 .. 0.81); candidate scale s = fp32(p)·absmax / 448;
 *               err = Σ |fakeq(x) − x|^2.4 with fakeq(x) = fp8(clamp(x / s, ±448))·s; the first
 *               strictly smaller err wins; stop after 5 candidates without improvement. The chosen
 *               p·min / p·max then enter the same moving average as ema.
 *   percentile  not in llm-compressor: the q-th percentile of |x| of each batch (linear interpolation
 *               between order statistics, numpy's default), running max over batches.
 * Arithmetic: fp32 as in the tool on an fp32 tensor (it runs in the model dtype, bf16 for a bf16
 * model: our observer state is fp32, a documented difference); |d|^2.4 in fp32, Σ err in double (the tool
 * sums fp32). */
typedef enum { OBS_MINMAX, OBS_EMA_LEGACY, OBS_MSE, OBS_PERCENTILE, OBS_EMA, N_OBS_KINDS } obs_kind;
static const char *const obs_names[] = {"minmax", "ema-legacy", "mse", "percentile", "ema"};
typedef struct { float mn, mx; int seen; } ObsState;

static float obs_percentile_abs(const float *x, size_t n, double pct) {
    float *a = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = fabsf(x[i]);
    qsort(a, n, sizeof(float), cmp_float);
    float r = (float)percentile_sorted(a, (long long)n, pct);
    free(a);
    return r;
}
/* fp8(y) decoded, for |y| ≤ fmax (already clamped): round to the FP8 grid near y, ties to even. The
 * grid step is 2^(e − m) for e = the exponent of y (2^(emin − m) in the subnormal range); y / step
 * and back are exact power-of-two scalings, so rintf (RNE) is the only rounding — the same value as
 * emu_fp8_decode(emu_fp8_encode(y)), ~10x faster (tests/test_calib_observers.c compares them). */
static inline float fp8_round_fast(float y, emu_dtype fmt) {
    int m = fmt == EMU_E4M3 ? 3 : 2, emin = fmt == EMU_E4M3 ? -6 : -14, e;
    if (y == 0) return y;
    frexpf(y, &e);
    e -= 1;                          /* |y| in [2^e, 2^(e+1)) */
    if (e < emin) e = emin;
    return ldexpf(rintf(ldexpf(y, m - e)), e - m);
}
/* Σ |fakeq(x) − x|^2.4 for the candidate scale s (E4M3 or E5M2 per fmt). |d|^2.4 in fp32 (powf, as
 * torch's pow_ on an fp32 tensor); the sum in double over 64 fixed slices added in order, so the
 * result does not depend on the number of threads. */
static double obs_fakeq_err(const float *x, size_t n, float s, emu_dtype fmt) {
    enum { SLICES = 64 };
    float fmax = emu_fmax(fmt);
    double part[SLICES];
    #pragma omp parallel for schedule(static)
    for (int sl = 0; sl < SLICES; sl++) {
        size_t i0 = n * sl / SLICES, i1 = n * (sl + 1) / SLICES;
        double e = 0;
        for (size_t i = i0; i < i1; i++) {
            float y = fminf(fmaxf(x[i] / s, -fmax), fmax);
            float d = fp8_round_fast(y, fmt) * s - x[i];
            e += powf(fabsf(d), 2.4f);
        }
        part[sl] = e;
    }
    double err = 0;
    for (int sl = 0; sl < SLICES; sl++) err += part[sl];
    return err;
}
/* One batch (rows × cols values) into an observer. */
/* One step of llm-compressor's moving average (observers/helpers.py lerp: (start * (1.0 - w)) + (end * w),
 * w = 0.01) on the model's bf16 tensors, as torch's CPU kernels compute a bf16 op: in fp32 (the Python
 * scalars become fp32 0.99f and 0.01f), rounded to bf16 — three roundings: B(F(B(F(r·0.99f)) + B(F(cur·0.01f)))). */
static float obs_lerp_bf16(float r, float cur) {
    float a = bf16_to_float(bf16_from_float(r * (float)(1.0 - 0.01)));
    float b = bf16_to_float(bf16_from_float(cur * (float)0.01));
    return bf16_to_float(bf16_from_float(a + b));
}
static void obs_update(ObsState *o, obs_kind kind, double pct, emu_dtype fmt, const float *x, size_t n) {
    float mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) { mn = fminf(mn, x[i]); mx = fmaxf(mx, x[i]); }
    if (n == 0) return;
    if (kind == OBS_PERCENTILE) {
        float p = obs_percentile_abs(x, n, pct);
        mn = -p; mx = p;
    }
    if (kind == OBS_MSE) {
        float amax = fmaxf(fabsf(fminf(mn, 0)), fmaxf(mx, 0));
        double best = DBL_MAX;
        float bmn = 1, bmx = 0;  /* the tool's initial values (kept only if no candidate is finite) */
        int no_improve = 0;
        for (int i = 0; i < 20; i++) {
            float p = (float)(1.0 - i / 100.0);
            float smn = p * mn, smx = p * mx;
            float s = fmaxf(fabsf(fminf(smn, 0)), fmaxf(smx, 0)) / emu_fmax(fmt);
            if (s == 0) s = FLT_EPSILON;  /* calculate_qparams: zero scale → dtype eps */
            (void)amax;
            double err = obs_fakeq_err(x, n, s, fmt);
            if (err < best) { best = err; bmn = smn; bmx = smx; no_improve = 0; }
            else if (++no_improve >= 5) break;
        }
        mn = bmn; mx = bmx;
    }
    if (!o->seen) { o->mn = mn; o->mx = mx; o->seen = 1; return; }
    if (kind == OBS_EMA) {   /* llm-compressor's minmax today: lerp(r, cur, 0.01) = r·(1 − 0.01) + cur·0.01 on bf16 tensors */
        o->mn = obs_lerp_bf16(o->mn, mn);
        o->mx = obs_lerp_bf16(o->mx, mx);
    } else if (kind == OBS_EMA_LEGACY || kind == OBS_MSE) {
        o->mn = o->mn + 0.01f * (mn - o->mn);
        o->mx = o->mx + 0.01f * (mx - o->mx);
    } else {
        o->mn = fminf(o->mn, mn); o->mx = fmaxf(o->mx, mx);
    }
}
static float obs_absmax(const ObsState *o) { return o->seen ? fmaxf(-fminf(o->mn, 0), fmaxf(o->mx, 0)) : 0.0f; }

typedef struct {
    int n_layers;
    obs_kind kind, kv_kind; double pct; emu_dtype fmt;   /* the observer of the Linear inputs, of K and V */
    ObsState *st;  /* (n_layers + 1, N_OBS_SITES); row n_layers = the lm_head input (layer −1) */
    int sample;    /* the window being run (for error messages) */
} Calib;
/* Observers refuse non-finite activations: a NaN would be skipped by the min/max and leave a plausible
 * scale. The message names the pass, layer, site, token and channel. */
static void observe_finite(const char *cmd, const char *pass, int pass_no, int layer, int site, const float *x, int rows, int cols) {
    long long i = first_nonfinite(x, EMU_F32, (size_t)rows * cols);
    if (i < 0) return;
    char where[32] = "";
    if (layer >= 0) snprintf(where, sizeof where, "layer %d, ", layer);
    char what[32];
    snprintf(what, sizeof what, "%s", site == SITE_K ? "keys (after RoPE)" : site == SITE_V ? "values" : site_names[site]);
    if (site != SITE_K && site != SITE_V) strcat(what, " input");
    fatal("%s: %s %d: %s%s holds %s at token %lld, channel %lld", cmd, pass, pass_no, where, what,
          isnan(x[i]) ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf", i / cols, i % cols);
}
static void calib_observe(void *ctx, int layer, int site, const float *x, int rows, int cols) {
    Calib *c = ctx;
    observe_finite("calibrate", "sample", c->sample + 1, layer, site, x, rows, cols);
    int l = layer < 0 ? c->n_layers : layer;
    obs_update(&c->st[(size_t)l * N_OBS_SITES + site], site == SITE_K || site == SITE_V ? c->kv_kind : c->kind, c->pct, c->fmt, x, (size_t)rows * cols);
}

/* ---- Sampling the calibration windows ----
 * The text is tokenized once without BOS (n tokens). A window is BOS followed by seq − 1 consecutive
 * text tokens, as an llm-compressor calibration sample starts with BOS. Windows never overlap: with
 * L = seq − 1, the text holds S = n / L slots; an offset o = r0 mod (n − S·L + 1) shifts the grid,
 * slot j covers text tokens o + j·L .. o + j·L + L − 1, and a seeded Fisher–Yates shuffle of 0..S−1
 * (for i = S−1 down to 1: swap(i, r mod (i + 1))) takes its first `samples` slots in order. r0, r, ...
 * are successive splitmix64 outputs seeded with --seed. samples > S is an error. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Start offsets (in text tokens) of the windows; returns the number of slots S. */
static int calib_windows(int n_text, int seq, int samples, uint64_t seed, int *starts) {
    int L = seq - 1, S = n_text / L;
    if (S < 1) fatal("calibrate: the text has %d tokens, fewer than one window of --seq %d (BOS + %d tokens)", n_text, seq, L);
    if (samples > S) fatal("calibrate: --samples %d non-overlapping windows of %d tokens need %lld text tokens, the text has %d (at most %d samples)",
                           samples, L, (long long)samples * L, n_text, S);
    uint64_t r = seed;
    int off = (int)(splitmix64(&r) % (uint64_t)(n_text - (long long)S * L + 1));
    int *slot = xmalloc(S * sizeof(int));
    for (int i = 0; i < S; i++) slot[i] = i;
    for (int i = S - 1; i > 0; i--) { int j = (int)(splitmix64(&r) % (uint64_t)(i + 1)), t = slot[i]; slot[i] = slot[j]; slot[j] = t; }
    for (int i = 0; i < samples; i++) starts[i] = off + slot[i] * L;
    free(slot);
    return S;
}

/* ---- Overlap of calibration and evaluation text: shared windows of 64 tokens ---- */
#define OVERLAP_W 64
static uint64_t window_hash(const int *ids) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < OVERLAP_W; i++) { h ^= (uint32_t)ids[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}
/* How many of the calibration windows' 64-token windows (text tokens only) occur in eval[0..ne). */
static long long count_shared_windows(const int *text, const int *starts, int samples, int L, const int *eval, int ne) {
    if (ne < OVERLAP_W || L < OVERLAP_W) return 0;
    int nw = ne - OVERLAP_W + 1;
    size_t cap = 1;
    while (cap < (size_t)nw * 2) cap <<= 1;
    int *tab = xmalloc(cap * sizeof(int));  /* open addressing: start position in eval, −1 = empty */
    for (size_t i = 0; i < cap; i++) tab[i] = -1;
    for (int p = 0; p < nw; p++) {
        size_t h = window_hash(eval + p) & (cap - 1);
        while (tab[h] >= 0) h = (h + 1) & (cap - 1);
        tab[h] = p;
    }
    long long shared = 0;
    for (int w = 0; w < samples; w++)
        for (int p = starts[w]; p + OVERLAP_W <= starts[w] + L; p++) {
            for (size_t h = window_hash(text + p) & (cap - 1); tab[h] >= 0; h = (h + 1) & (cap - 1))
                if (!memcmp(eval + tab[h], text + p, OVERLAP_W * sizeof(int))) { shared++; break; }
        }
    free(tab);
    return shared;
}

/* Removes "--name VALUE" from argv (options of this section that options_parse does not know). */
static const char *take_option(int *argc, char **argv, const char *name) {
    const char *v = NULL;
    for (int i = 1; i < *argc; i++)
        if (!strcmp(argv[i], name)) {
            if (i + 1 >= *argc) fatal("option %s needs a value", name);
            v = argv[i + 1];
            memmove(argv + i, argv + i + 2, (*argc - i - 2) * sizeof(char *));
            *argc -= 2; i--;
        }
    return v;
}


static int cmd_calibrate(int argc, char **argv) {
    char **av = xmalloc((argc + 1) * sizeof(char *));
    memcpy(av, argv, (argc + 1) * sizeof(char *));
    const char *eval_file = take_option(&argc, av, "--eval");
    const char *act_format = take_option(&argc, av, "--act-format");
    const char *kv_observer = take_option(&argc, av, "--kv-observer");
    Options o;
    options_parse(&o, argc, av, "calibrate", "-m --tokenizer -f --samples --seq --seed --observer --percentile -o --allow-nonfinite ",
                  "-m MODEL -f CALIB_TEXT -o scales.json [--samples 128] [--seq N (min(2048, the model's context))] [--seed 1] [--observer O (minmax)] [--kv-observer O (ema)]\n"
                  "       [--percentile 99.99] [--eval EVAL_TEXT] [--act-format e4m3|e5m2] [--tokenizer FILE]\n"
                  "  observers: minmax (running max, compressed-tensors static_minmax), ema (llm-compressor's minmax today: moving\n"
                  "  average lerp(r, cur, 0.01) in bf16, its default for the KV cache), ema-legacy (r + 0.01 (cur - r) in fp32, older\n"
                  "  llm-compressor), mse (llm-compressor mse), percentile (--percentile of |x|, running max).\n"
                  "  runs the bf16 baseline on --samples seeded non-overlapping windows (BOS + seq-1 text tokens) and writes the\n"
                  "  per-layer activation absmax of each Linear input, the lm_head input and K / V (scale = absmax / fmax).\n"
                  "  --eval: warns when 64-token windows of the calibration samples also occur in the evaluation text.\n"
                  "  --act-format: the FP8 format of the mse observer's fake quantization (default e4m3).");
    if (!o.model) fatal("calibrate: -m MODEL is required");
    if (!o.text_file) fatal("calibrate: -f CALIB_TEXT is required");
    if (!o.out) fatal("calibrate: -o scales.json is required");
    check_writable(o.out, "calibrate: -o");
    int kind = -1, kv_kind = -1;
    const char *obs = o.observer ? o.observer : "minmax", *kv_obs = kv_observer ? kv_observer : "ema";
    for (int i = 0; i < N_OBS_KINDS; i++) { if (!strcmp(obs, obs_names[i])) kind = i; if (!strcmp(kv_obs, obs_names[i])) kv_kind = i; }
    if (kind < 0) fatal("calibrate: unknown --observer '%s' (minmax, ema, ema-legacy, mse, percentile)", obs);
    if (kv_kind < 0) fatal("calibrate: unknown --kv-observer '%s' (ema, minmax, ema-legacy, mse, percentile)", kv_obs);
    emu_dtype fmt = act_format ? fp8_fmt_arg("--act-format", act_format) : EMU_E4M3;

    Model *m = model_load(o.model);
    const Config *c = &m->c;
    if (!o.seq) o.seq = c->max_seq_len < 2048 ? c->max_seq_len : 2048;   /* default: min(2048, the model's context) */
    if (o.seq > c->max_seq_len) fatal("calibrate: --seq %d exceeds the model's maximum context %d", o.seq, c->max_seq_len);
    size_t text_bytes;
    char *text = read_text_file(o.text_file, &text_bytes);
    if (!text) fatal("%s: cannot read: %s", o.text_file, strerror(errno));
    char sha[65];
    sha256_hex(text, text_bytes, sha);
    tokenizer *tk = run_tokenizer(o.tokenizer, o.model, c);
    int *ids;
    int n_text = tokenizer_encode(tk, text, text_bytes, 0, 0, &ids);
    int L = o.seq - 1;
    int *starts = xmalloc(o.samples * sizeof(int));
    int slots = calib_windows(n_text, o.seq, o.samples, o.seed, starts);

    if (eval_file) {
        size_t eb;
        char *et = read_text_file(eval_file, &eb);
        if (!et) fatal("%s: cannot read: %s", eval_file, strerror(errno));
        int *eids, ne = tokenizer_encode(tk, et, eb, 0, 0, &eids);
        long long shared = count_shared_windows(ids, starts, o.samples, L, eids, ne);
        long long total = L >= OVERLAP_W ? (long long)o.samples * (L - OVERLAP_W + 1) : 0;
        if (L < OVERLAP_W)
            fprintf(stderr, "llama_fp8: warning: --eval: windows of %d text tokens are shorter than %d: overlap not checked (use --seq > %d)\n", L, OVERLAP_W, OVERLAP_W);
        else if (shared)
            fprintf(stderr, "llama_fp8: WARNING: calibration text overlaps the evaluation text %s: %lld of %lld calibration windows of %d tokens "
                    "also occur in it. Deltas measured on %s with these scales are not reportable.\n", eval_file, shared, total, OVERLAP_W, eval_file);
        else printf("overlap check: none of the %lld %d-token windows of the calibration samples occurs in %s\n", total, OVERLAP_W, eval_file);
        free(eids); free(et);
    }

    Scheme qs = scheme_make("bf16", NULL);
    const Model *mb = model_for_scheme(m, &qs);
    Calib cal = {.n_layers = c->n_layers, .kind = (obs_kind)kind, .kv_kind = (obs_kind)kv_kind, .pct = o.percentile, .fmt = fmt};
    cal.st = xcalloc((size_t)(c->n_layers + 1) * N_OBS_SITES, sizeof(ObsState));
    RunState s;
    runstate_init(&s, c, o.seq, o.seq);
    s.observe = calib_observe; s.observe_ctx = &cal;
    int *win = xmalloc(o.seq * sizeof(int));
    printf("calibrate: %s, %d text tokens (%d windows fit), %d samples x %d tokens (BOS + %d), seed %llu, observer %s, KV %s\n",
           o.text_file, n_text, slots, o.samples, o.seq, L, o.seed, obs, kv_obs);
    fflush(stdout);
    int show = isatty(2);
    double t0 = now_seconds();
    for (int w = 0; w < o.samples; w++) {
        win[0] = c->bos_id;
        memcpy(win + 1, ids + starts[w], L * sizeof(int));
        cal.sample = w;
        forward(mb, &s, &qs, win, o.seq, 0, 0);
        if (show) progress("sample %d/%d  %.1f tok/s   ", w + 1, o.samples, (double)(w + 1) * o.seq / (now_seconds() - t0));
    }
    if (show) progress_done();

    atomic_file af;
    atomic_open(&af, o.out);
    jw w;
    jw_begin(&w, af.fp);
    char fp_hex[65];
    model_fingerprint(m, fp_hex);
    jw_str(&w, "format", "llama_fp8 scales v1");
    jw_str(&w, "model", o.model);
    jw_str(&w, "model_fingerprint", fp_hex);
    jw_str(&w, "calibration_file", o.text_file);
    jw_str(&w, "calibration_sha256", sha);
    jw_int(&w, "samples", o.samples); jw_int(&w, "seq", o.seq); jw_int(&w, "seed", (long long)o.seed); jw_str(&w, "observer", obs); jw_str(&w, "kv_observer", kv_obs);
    if (kind == OBS_PERCENTILE || kv_kind == OBS_PERCENTILE) jw_num(&w, "percentile", o.percentile, "%.17g");
    if (kind == OBS_MSE || kv_kind == OBS_MSE) jw_str(&w, "mse_format", fmt == EMU_E4M3 ? "e4m3" : "e5m2");
    char wdesc[64];
    snprintf(wdesc, sizeof wdesc, "BOS + %d text tokens from each start", L);
    jw_str(&w, "windows", wdesc);
    jw_arr(&w, "window_starts", 1);
    for (int i = 0; i < o.samples; i++) jw_int(&w, NULL, starts[i]);
    jw_end_arr(&w);
    jw_obj(&w, "activations", 0);
    jw_arr(&w, "layers", 0);
    int zero = 0;
    for (int l = 0; l < c->n_layers; l++) {
        jw_obj(&w, NULL, 1);
        for (int site = 0; site < N_SITES; site++) {
            float a = obs_absmax(&cal.st[(size_t)l * N_OBS_SITES + site]);
            zero += !(a > 0);
            jw_num(&w, site_names[site], a, "%.9g");
        }
        jw_end_obj(&w);
    }
    jw_end_arr(&w);
    jw_num(&w, "lm_head", obs_absmax(&cal.st[(size_t)c->n_layers * N_OBS_SITES + SITE_LMHEAD]), "%.9g");
    jw_end_obj(&w);
    jw_obj(&w, "kv", 0);
    for (int kvs = 0; kvs < 2; kvs++) {
        jw_arr(&w, kvs ? "v" : "k", 1);
        for (int l = 0; l < c->n_layers; l++) jw_num(&w, NULL, obs_absmax(&cal.st[(size_t)l * N_OBS_SITES + (kvs ? SITE_V : SITE_K)]), "%.9g");
        jw_end_arr(&w);
    }
    jw_end_obj(&w);
    jw_end(&w);
    atomic_commit(&af);
    if (zero) fprintf(stderr, "llama_fp8: warning: %d activation sites observed only zeros (absmax 0): ppl --scales will reject the file\n", zero);
    printf("wrote %s (%d layers; %.2f s)\n", o.out, c->n_layers, now_seconds() - t0);
    free(win); free(cal.st); free(starts); free(ids); free(text); free(av);
    tokenizer_free(tk);
    runstate_free(&s);
    model_free(m);
    return 0;
}

/* ---- llama_fp8 smooth: SmoothQuant as llm-compressor 0.14.0.1's SmoothQuantModifier computes it ----
 * The recipe [SmoothQuantModifier(smoothing_strength=alpha), QuantizationModifier(targets="Linear", scheme="W8A8",
 * ignore=["lm_head"])] on a bf16 model, its default Llama mappings: input_layernorm -> q/k/v_proj and
 * post_attention_layernorm -> gate/up_proj (src/llmcompressor/modifiers/transform/smoothquant/{base,utils}.py).
 * Order (llm-compressor's sequential pipeline, checked by hooking it: tests/smoothquant_check.py): layer by layer, every
 * calibration window goes through layer l with layer l as loaded and every earlier layer already smoothed (bf16 weights,
 * nothing quantized: the pipeline runs under DisableQuantization, and the QuantizationModifier gets its own data-free
 * pass after all smoothing); a forward hook on each norm keeps the per-channel min and max of its OUTPUT over all tokens
 * of all windows; then layer l is smoothed and the windows run through it again (propagate_error) to feed layer l + 1.
 * Per mapping, with torch's dtypes on a bf16 model (B: round to bf16; F: one fp32 operation):
 *   act[j] = B(max[j] - min[j])                                   bf16 tensors
 *   w[j]   = 2 * max over the balance weights W of |W[:, j]|      bf16, exact
 *   s[j]   = B(B(act^a) / B(w^(1-a))), act[j] where w[j] == 0     torch's pow on a bf16 tensor rounds the Python exponent to
 *                                                                 bf16 first: a = B(0.8) = 0.80078125, 1 - a = B(0.2) = 0.2001953125
 *   s[j]   = max(s[j], 1e-5f)                                     torch.maximum with torch.Tensor([1e-5]), a 1-d fp32 tensor:
 *                                                                 the result is promoted to fp32
 *   W'     = B(F(W[:, j] * s[j])), norm' = B(F(norm[j] / s[j]))  bf16 x fp32 -> fp32, copied into the bf16 parameter
 * The windows are calibrate's (the same seeded choice: BOS + seq - 1 text tokens from each start). Layer l's forward is
 * forward() on a one-layer view of the model whose "embedding" rows are the windows' residual stream (bf16 values). */
typedef struct {
    int dim, layer, sample;
    float *mn, *mx;     /* (2, dim): per channel min / max of the input_layernorm (0) and post_attention_layernorm (1) outputs */
    int seen[2];
} SqObs;
static void sq_observe(void *ctx, int layer, int site, const float *x, int rows, int cols) {
    SqObs *o = ctx;
    (void)layer;
    if (site != SITE_QKV && site != SITE_GATEUP) return;
    observe_finite("smooth", "sample", o->sample + 1, o->layer, site, x, rows, cols);
    int k = site == SITE_GATEUP;
    float *mn = o->mn + (size_t)k * o->dim, *mx = o->mx + (size_t)k * o->dim;
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < cols; j++) {
            float v = x[(size_t)t * cols + j];
            if (!o->seen[k] && t == 0) { mn[j] = mx[j] = v; continue; }
            mn[j] = fminf(mn[j], v); mx[j] = fmaxf(mx[j], v);
        }
    o->seen[k] = 1;
}
/* The smoothing scales of one mapping (see above): s[dim] from the observed range and the balance weights (bf16). */
static void sq_scales(float *s, const float *mn, const float *mx, const Tensor *const *bal, int nbal, int dim, double alpha) {
    float e1 = Bf((float)alpha), e2 = Bf((float)(1.0 - alpha));   /* the exponents as torch's bf16 pow uses them */
    float *w = xcalloc(dim, sizeof(float));
    for (int b = 0; b < nbal; b++)
        for (int n = 0; n < bal[b]->rows; n++)
            for (int j = 0; j < dim; j++) w[j] = fmaxf(w[j], fabsf(tensor_get(bal[b], (size_t)n * dim + j)));
    for (int j = 0; j < dim; j++) {
        float act = Bf(mx[j] - mn[j]), ws = Bf(2.0f * w[j]);
        float v = ws > 0 ? Bf(Bf(powf(act, e1)) / Bf(powf(ws, e2))) : act;
        s[j] = fmaxf(v, 1e-5f);   /* torch.maximum(bf16, fp32 tensor): fp32 */
    }
    free(w);
}
/* W' = B(F(W * s)) column-wise, into a new bf16 tensor owned by m. */
static Tensor sq_balance(Model *m, const Tensor *W, const float *s) {
    int N = W->rows, K = W->cols;
    uint16_t *d = model_own(m, (size_t)N * K * 2);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) d[(size_t)n * K + k] = bf16_from_float(tensor_get(W, (size_t)n * K + k) * s[k]);
    return (Tensor){d, EMU_BF16, N, K, NULL, GRAN_CHANNEL};
}
/* One pass of every window through layer l of sm (bf16 scheme): H[w] (seq, dim bf16 bits) is the residual stream in;
 * with obs, the norm outputs are observed; with update, H[w] becomes the stream after the layer. */
static void sq_layer_pass(const Model *sm, int l, RunState *s, const Scheme *qs, uint16_t *H, int n_win, int seq, const int *iota,
                          SqObs *obs, int update, float *out) {
    int dim = sm->c.dim;
    Model lv = *sm;
    lv.c.n_layers = 1; lv.c.vocab_size = seq;
    lv.layers = &sm->layers[l];
    lv.release_pages = 0;
    s->observe = obs ? sq_observe : NULL; s->observe_ctx = obs;
    float *lo[1] = {out};
    s->layer_out = update ? lo : NULL;
    for (int w = 0; w < n_win; w++) {
        uint16_t *h = H + (size_t)w * seq * dim;
        lv.tok_embeddings = (Tensor){h, EMU_BF16, seq, dim, NULL, GRAN_CHANNEL};
        if (obs) obs->sample = w;
        forward(&lv, s, qs, iota, seq, 0, seq);
        if (update) for (size_t i = 0; i < (size_t)seq * dim; i++) h[i] = bf16_from_float(out[i]);   /* bf16 values: exact */
    }
    s->observe = NULL; s->layer_out = NULL;
}
/* model.safetensors of the smoothed model: every tensor BF16, Hugging Face names. */
static void sq_fill(void *vctx, int i, void *buf, size_t nbytes) { ck_fill_plain(vctx, i, buf, nbytes); }
static void sq_linear(CkList *L, int l, const Layer *Ly, int w, const Tensor *W, void *ctx) {
    (void)Ly; (void)ctx;
    ck_add(L, CK_BF16, W, EMU_BF16, 2, W->rows, W->cols, "model.layers.%d.%s.weight", l, linear_names[w]);
}
static int export_hf_files(const char *src, const char *dst, const char *qc);
static int cmd_smooth(int argc, char **argv) {
    char **av = xmalloc((argc + 1) * sizeof(char *));
    memcpy(av, argv, (argc + 1) * sizeof(char *));
    const char *alpha_s = take_option(&argc, av, "--alpha");
    Options o;
    options_parse(&o, argc, av, "smooth", "-m --tokenizer -f --samples --seq --seed -o --allow-nonfinite ",
                  "-m MODEL -f CALIB_TEXT -o DIR [--samples 128] [--seq N (min(2048, the model's context))] [--seed 1] [--alpha 0.8] [--tokenizer FILE]\n"
                  "  SmoothQuant as llm-compressor 0.14's SmoothQuantModifier(smoothing_strength=alpha) computes it (default Llama mappings:\n"
                  "  input_layernorm -> q/k/v_proj, post_attention_layernorm -> gate/up_proj), on calibrate's windows (the same seeded\n"
                  "  choice: BOS + seq-1 text tokens each), layer by layer on the already smoothed earlier layers, in bf16 as torch does.\n"
                  "  Writes DIR: a bf16 Hugging Face checkpoint (model.safetensors, config.json, tokenizer files copied) and smoothquant.json\n"
                  "  (windows, alpha, per channel: observed min / max and the scale). Then: export -m DIR -q int8 (llm-compressor's W8A8 INT8).");
    if (!o.model) fatal("smooth: -m MODEL is required");
    if (!o.text_file) fatal("smooth: -f CALIB_TEXT is required");
    if (!o.out) fatal("smooth: -o DIR is required");
    double alpha = alpha_s ? parse_double_arg("--alpha", alpha_s) : 0.8;
    if (!(alpha >= 0 && alpha <= 1)) fatal("smooth: --alpha must be in [0, 1], got %s", alpha_s);
    char rp1[PATH_MAX], rp2[PATH_MAX];
    if (realpath(o.model, rp1) && realpath(o.out, rp2) && !strcmp(rp1, rp2)) fatal("smooth: -o %s is the source model's directory; write the smoothed model elsewhere", o.out);
    Model *m = model_load(o.model);
    const Config *c = &m->c;
    if (m->quant.present) fatal("smooth: %s is already quantized (smooth a bf16/fp16/fp32 model)", m->path);
    if (!o.seq) o.seq = c->max_seq_len < 2048 ? c->max_seq_len : 2048;
    if (o.seq > c->max_seq_len) fatal("smooth: --seq %d exceeds the model's maximum context %d", o.seq, c->max_seq_len);
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) fatal("smooth: cannot create %s: %s", o.out, strerror(errno));
    check_dir_writable(o.out, "smooth: -o");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", o.out);
    if (file_exists(path)) fatal("smooth: %s exists and would shadow the model.safetensors written here (remove it or use another -o)", path);
    size_t text_bytes;
    char *text = read_text_file(o.text_file, &text_bytes);
    if (!text) fatal("%s: cannot read: %s", o.text_file, strerror(errno));
    char sha[65];
    sha256_hex(text, text_bytes, sha);
    tokenizer *tk = run_tokenizer(o.tokenizer, o.model, c);
    int *ids, n_text = tokenizer_encode(tk, text, text_bytes, 0, 0, &ids), L = o.seq - 1, seq = o.seq, dim = c->dim;
    int *starts = xmalloc(o.samples * sizeof(int));
    int slots = calib_windows(n_text, seq, o.samples, o.seed, starts);
    printf("smooth: %s, %d text tokens (%d windows fit), %d samples x %d tokens (BOS + %d), seed %llu, alpha %g\n",
           o.text_file, n_text, slots, o.samples, seq, L, o.seed, alpha);
    fflush(stdout);

    /* the smoothed model: a copy of the bf16 view whose layers are replaced as they are smoothed */
    Scheme qs = scheme_make("bf16", NULL);
    const Model *mb = model_for_scheme(m, &qs);
    Model *sm = model_own(m, sizeof(Model));
    *sm = *mb;
    sm->layers = model_own(m, c->n_layers * sizeof(Layer));
    memcpy(sm->layers, mb->layers, c->n_layers * sizeof(Layer));
    uint16_t *H = xmalloc((size_t)o.samples * seq * dim * 2);   /* the windows' residual stream, bf16 */
    for (int w = 0; w < o.samples; w++)
        for (int t = 0; t < seq; t++) {
            int id = t ? ids[starts[w] + t - 1] : c->bos_id;
            for (int j = 0; j < dim; j++) H[((size_t)w * seq + t) * dim + j] = bf16_from_float(tensor_get(&mb->tok_embeddings, (size_t)id * dim + j));
        }
    int *iota = xmalloc(seq * sizeof(int));
    for (int t = 0; t < seq; t++) iota[t] = t;
    Config cs = *c;
    cs.vocab_size = 1;   /* the passes compute no logits */
    RunState s;
    runstate_init(&s, &cs, seq, seq);
    float *out = xmalloc((size_t)seq * dim * sizeof(float));
    float *rec_mn = xmalloc((size_t)c->n_layers * 2 * dim * sizeof(float)), *rec_mx = xmalloc((size_t)c->n_layers * 2 * dim * sizeof(float));
    float *rec_s = xmalloc((size_t)c->n_layers * 2 * dim * sizeof(float));
    double t0 = now_seconds();
    for (int l = 0; l < c->n_layers; l++) {
        SqObs obs = {.dim = dim, .layer = l, .mn = rec_mn + (size_t)l * 2 * dim, .mx = rec_mx + (size_t)l * 2 * dim};
        sq_layer_pass(sm, l, &s, &qs, H, o.samples, seq, iota, &obs, 0, out);
        Layer *Ly = &sm->layers[l];
        for (int k = 0; k < 2; k++) {
            Tensor *bal[3] = {&Ly->wq, &Ly->wk, &Ly->wv};
            if (k) { bal[0] = &Ly->w_gate; bal[1] = &Ly->w_up; }
            int nb = k ? 2 : 3;
            float *sc = rec_s + ((size_t)l * 2 + k) * dim;
            sq_scales(sc, obs.mn + (size_t)k * dim, obs.mx + (size_t)k * dim, (const Tensor *const *)bal, nb, dim, alpha);
            for (int b = 0; b < nb; b++) *bal[b] = sq_balance(m, bal[b], sc);
            const float *nw = k ? Ly->ffn_norm : Ly->attn_norm;
            float *nn = model_own(m, dim * sizeof(float));
            for (int j = 0; j < dim; j++) nn[j] = Bf(nw[j] / sc[j]);
            if (k) Ly->ffn_norm = nn; else Ly->attn_norm = nn;
        }
        if (l + 1 < c->n_layers) sq_layer_pass(sm, l, &s, &qs, H, o.samples, seq, iota, NULL, 1, out);
        if (isatty(2)) progress("layer %d/%d smoothed  %.1f s   ", l + 1, c->n_layers, now_seconds() - t0);
    }
    if (isatty(2)) progress_done();

    /* DIR/model.safetensors, config.json (+ tokenizer files), smoothquant.json */
    CkList x = {0};
    ck_build(&x, sm, &(CkWriter){sq_linear, NULL, NULL}, NULL);
    ck_write(&x, o.out, sq_fill, &x);
    snprintf(path, sizeof path, "%s/config.json", o.out);
    int copied = export_hf_files(o.model, o.out, NULL);
    if (copied < 0) write_hf_config(path, c, NULL);
    snprintf(path, sizeof path, "%s/smoothquant.json", o.out);
    atomic_file af;
    atomic_open(&af, path);
    jw w;
    jw_begin(&w, af.fp);
    char fp_hex[65];
    model_fingerprint(m, fp_hex);
    jw_str(&w, "format", "llama_fp8 smoothquant v1");
    jw_str(&w, "recipe", "llm-compressor 0.14 SmoothQuantModifier(smoothing_strength=alpha), default Llama mappings, sequential pipeline");
    jw_str(&w, "model", o.model);
    jw_str(&w, "model_fingerprint", fp_hex);
    jw_str(&w, "calibration_file", o.text_file);
    jw_str(&w, "calibration_sha256", sha);
    jw_int(&w, "samples", o.samples); jw_int(&w, "seq", seq); jw_int(&w, "seed", (long long)o.seed);
    jw_num(&w, "alpha", alpha, "%.17g");
    char wdesc[64];
    snprintf(wdesc, sizeof wdesc, "BOS + %d text tokens from each start", L);
    jw_str(&w, "windows", wdesc);
    jw_arr(&w, "window_starts", 1);
    for (int i = 0; i < o.samples; i++) jw_int(&w, NULL, starts[i]);
    jw_end_arr(&w);
    jw_arr(&w, "layers", 0);
    for (int l = 0; l < c->n_layers; l++) {
        jw_obj(&w, NULL, 0);
        for (int k = 0; k < 2; k++) {
            jw_obj(&w, k ? "post_attention_layernorm" : "input_layernorm", 0);
            const float *arrs[3] = {rec_mn + ((size_t)l * 2 + k) * dim, rec_mx + ((size_t)l * 2 + k) * dim, rec_s + ((size_t)l * 2 + k) * dim};
            static const char *const an[3] = {"min", "max", "scale"};
            for (int a = 0; a < 3; a++) {
                jw_arr(&w, an[a], 1);
                for (int j = 0; j < dim; j++) jw_num(&w, NULL, arrs[a][j], "%.9g");
                jw_end_arr(&w);
            }
            jw_end_obj(&w);
        }
        jw_end_obj(&w);
    }
    jw_end_arr(&w);
    jw_end(&w);
    atomic_commit(&af);
    printf("smooth: %s: %d layers smoothed (alpha %g), %d bf16 tensors and smoothquant.json (%.2f s)\n", o.out, c->n_layers, alpha, x.n, now_seconds() - t0);
    ck_free(&x); free(out); free(rec_mn); free(rec_mx); free(rec_s); free(H); free(iota); free(starts); free(ids); free(text); free(av);
    tokenizer_free(tk);
    runstate_free(&s);
    model_free(m);
    return 0;
}

/* ---- llama_fp8 gptq: GPTQ for W4A16 (INT4, symmetric, group 128), as llm-compressor 0.14's GPTQModifier ----
 * What llm-compressor 0.14.0.1 does for oneshot(GPTQModifier(scheme="W4A16")) on a Llama (its sequential pipeline, one
 * decoder layer per subgraph, propagate_error on), and what this section does the same way:
 *   - layer l is calibrated on the calibration windows with layers 0..l-1 already GPTQ-quantized (their bf16 weights
 *     B(code * s)) and layer l itself unquantized; the 7 Linears of layer l see the inputs of that one pass (q/k/v one
 *     input, gate/up one), then all 7 are quantized, then layer l+1 is calibrated on the quantized layer l's output.
 *     Here each layer's pass is a forward over layers 0..l (the layers' outputs are not cached: L(L+1)/2 layer passes).
 *   - Hessian: H = (1 / n) sum over the n windows of (sqrt2 X)(sqrt2 X)^T in fp32, X the window's bf16 Linear input
 *     (tokens x K); per window the K x K product is summed in double and rounded to fp32 (torch: an fp32 GEMM), added in fp32.
 *   - scales: memoryless_minmax on the ORIGINAL bf16 weights, before GPTQ (the observer runs at the start of the layer's
 *     compression): s = B(absmax_group / 7.5) (0 -> 2^-7), exactly `export -q w4a16`'s; GPTQ changes codes, not scales.
 *   - actorder static (the default; "none" switches it off): columns (and H's rows / columns) permuted by H's diagonal,
 *     descending (ties: lower column first; torch.argsort is not stable); each column keeps the scale of its own group
 *     (compressed-tensors' "static" is an alias of "weight": g_idx = (arange(K) // 128) gathered by the permutation);
 *   - dead columns (H_ii = 0): H_ii = 1, the weights of that column 0; damp = --damp (0.01) * mean(diag H), H_ii += damp;
 *     U = upper Cholesky factor of H^-1 (H^-1 = U^T U), computed in double from the fp32 H, rounded to fp32. A Cholesky
 *     pivot <= K * 2^-24 * max(diag H) is refused (llm-compressor falls back to RTN when fp32 Cholesky fails; here an error).
 *   - the block loop (blocks of --block columns), in fp32 per row, as gptq_block_update's eager torch code:
 *       x = w / s; c = rint(clamp(x, -8, 7)); q = B(c * s); e = (w - q) / U_ii; w_j -= e * U_ij (j >= i in the block,
 *       the product rounded, then the difference); after the block: w_j -= sum_i e_i U_ij (j beyond the block; the sum in
 *       double, rounded once). Rows are independent: one OpenMP task per row, the result does not depend on the threads.
 *   - the stored weight is B(q) in original column order; the checkpoint's codes are compressed-tensors' re-quantization
 *     of it with the stored scales, rint(clamp(B(q / s), -8, 7)), which gives c back. */
typedef struct {
    int layer, n;            /* the layer being calibrated; windows seen */
    int K[4];                /* input features of sites QKV, O, GATEUP, DOWN */
    float *H[4];             /* their Hessian sums (K x K, fp32) */
    double *G;               /* one window's product (largest K squared) */
    float *xs;               /* sqrt2 * X */
} GptqCal;
static const int gptq_sites[4] = {SITE_QKV, SITE_O, SITE_GATEUP, SITE_DOWN};
static const int gptq_linear_site[7] = {0, 0, 0, 1, 2, 2, 3};
static void gptq_observe(void *ctx, int layer, int site, const float *x, int rows, int cols) {
    GptqCal *g = ctx;
    if (layer != g->layer) return;
    int si = -1;
    for (int i = 0; i < 4; i++) if (gptq_sites[i] == site) si = i;
    if (si < 0) return;
    observe_finite("gptq", "window", g->n + 1, layer, site, x, rows, cols);
    int K = cols;
    float *xs = g->xs;
    const float r2 = (float)sqrt(2.0);   /* math.sqrt(2) times an fp32 tensor: the product in fp32 */
    for (size_t i = 0; i < (size_t)rows * K; i++) xs[i] = r2 * x[i];
    double *G = g->G;
    float *H = g->H[si];
    #pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < K; i++)
        for (int j = 0; j <= i; j++) {
            double acc = 0;
            for (int t = 0; t < rows; t++) acc += (double)xs[(size_t)t * K + i] * xs[(size_t)t * K + j];
            G[(size_t)i * K + j] = acc;
        }
    for (int i = 0; i < K; i++)
        for (int j = 0; j <= i; j++) {
            float v = H[(size_t)i * K + j] + (float)G[(size_t)i * K + j];
            H[(size_t)i * K + j] = v; H[(size_t)j * K + i] = v;
        }
}
/* U (K x K fp32, upper) with H^-1 = U^T U from the dampened H (modified in place: dead columns, damping). Returns the
 * column of a failing pivot, or -1. */
static int gptq_factor(float *H, int K, float damp_frac, float *U, double *pivot) {
    double sum = 0, dmax = 0;
    for (int i = 0; i < K; i++) { if (H[(size_t)i * K + i] == 0) H[(size_t)i * K + i] = 1; sum += H[(size_t)i * K + i]; }
    float damp = damp_frac * (float)(sum / K);
    for (int i = 0; i < K; i++) { H[(size_t)i * K + i] += damp; if (H[(size_t)i * K + i] > dmax) dmax = H[(size_t)i * K + i]; }
    double *A = xmalloc((size_t)K * K * sizeof(double));
    for (size_t i = 0; i < (size_t)K * K; i++) A[i] = H[i];
    double tol = K * ldexp(1.0, -24) * dmax;
    /* A = L L^T (lower, in place) */
    for (int j = 0; j < K; j++) {
        double d = A[(size_t)j * K + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * K + k] * A[(size_t)j * K + k];
        if (!(d > tol)) { *pivot = d; free(A); return j; }
        d = sqrt(d);
        A[(size_t)j * K + j] = d;
        #pragma omp parallel for schedule(static)
        for (int i = j + 1; i < K; i++) {
            double v = A[(size_t)i * K + j];
            for (int k = 0; k < j; k++) v -= A[(size_t)i * K + k] * A[(size_t)j * K + k];
            A[(size_t)i * K + j] = v / d;
        }
    }
    /* Li = L^-1 (lower) */
    double *Li = xcalloc((size_t)K * K, sizeof(double));
    #pragma omp parallel for schedule(dynamic, 8)
    for (int c = 0; c < K; c++) {
        Li[(size_t)c * K + c] = 1.0 / A[(size_t)c * K + c];
        for (int i = c + 1; i < K; i++) {
            double v = 0;
            for (int k = c; k < i; k++) v -= A[(size_t)i * K + k] * Li[(size_t)k * K + c];
            Li[(size_t)i * K + c] = v / A[(size_t)i * K + i];
        }
    }
    /* Hi = H^-1 = Li^T Li */
    #pragma omp parallel for schedule(dynamic, 8)
    for (int i = 0; i < K; i++)
        for (int j = i; j < K; j++) {
            double v = 0;
            for (int k = j; k < K; k++) v += Li[(size_t)k * K + i] * Li[(size_t)k * K + j];
            A[(size_t)i * K + j] = v; A[(size_t)j * K + i] = v;
        }
    /* Hi = U^T U, U upper: the lower Cholesky factor of Hi, transposed */
    for (int j = 0; j < K; j++) {
        double d = A[(size_t)j * K + j];
        for (int k = 0; k < j; k++) d -= Li[(size_t)j * K + k] * Li[(size_t)j * K + k];
        if (!(d > 0)) { *pivot = d; free(A); free(Li); return j; }
        d = sqrt(d);
        Li[(size_t)j * K + j] = d;
        #pragma omp parallel for schedule(static)
        for (int i = j + 1; i < K; i++) {
            double v = A[(size_t)i * K + j];
            for (int k = 0; k < j; k++) v -= Li[(size_t)i * K + k] * Li[(size_t)j * K + k];
            Li[(size_t)i * K + j] = v / d;
        }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) U[(size_t)i * K + j] = j >= i ? (float)Li[(size_t)j * K + i] : 0.0f;
    free(A); free(Li);
    return -1;
}
typedef struct { int block, actorder, mse; float damp; } GptqOpts;
/* GPTQ of one Linear: W (N x K bf16 values), H (K x K, the window-averaged Hessian, consumed) -> codes (N x K, int8),
 * scales (N x K/128) and the dequantized bf16 weights deq (N x K). */
static void gptq_linear(const char *name, const float *W0, int N, int K, float *H, const GptqOpts *go,
                        int8_t *codes, float *scales, uint16_t *deq) {
    enum { G = 128 };
    int ng = K / G;
    uint8_t *tmp = xmalloc(K);
    if (go->mse) {   /* the observer on the original weights: mse (int4_mse_scales) or memoryless_minmax (wf_quant_row's) */
        Tensor Wt = {.data = (void *)W0, .dtype = EMU_F32, .rows = N, .cols = K};
        int4_mse_scales(&Wt, scales);
    } else
        for (int n = 0; n < N; n++) wf_quant_row(WF_INT4, W0 + (size_t)n * K, K, 1.0f, tmp, scales + (size_t)n * ng);
    free(tmp);
    int *perm = xmalloc(K * sizeof(int));
    for (int i = 0; i < K; i++) perm[i] = i;
    if (go->actorder)   /* descending diag(H), ties by column (insertion sort on a merge-free key: K log K not needed here) */
        for (int i = 1; i < K; i++) {
            int p = perm[i], j = i;
            float d = H[(size_t)p * K + p];
            while (j > 0 && H[(size_t)perm[j - 1] * K + perm[j - 1]] < d) { perm[j] = perm[j - 1]; j--; }
            perm[j] = p;
        }
    float *Hp = xmalloc((size_t)K * K * sizeof(float));
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) Hp[(size_t)i * K + j] = H[(size_t)perm[i] * K + perm[j]];
    int *dead = xcalloc(K, sizeof(int));
    for (int i = 0; i < K; i++) dead[i] = Hp[(size_t)i * K + i] == 0;
    float *U = xmalloc((size_t)K * K * sizeof(float));
    double piv = 0;
    int bad = gptq_factor(Hp, K, go->damp, U, &piv);
    if (bad >= 0)
        fatal("gptq: %s: the Hessian is not positive definite after dampening (Cholesky pivot %.3g at column %d of %d, at or below "
              "K * 2^-24 * max diag: fp32 rounding noise; raise --damp or calibrate on more tokens)", name, piv, bad, K);
    int B = go->block;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int n = 0; n < N; n++) {
        float *w = xmalloc((size_t)K * sizeof(float)), *q = xmalloc((size_t)K * sizeof(float)), *e = xmalloc((size_t)B * sizeof(float));
        const float *s = scales + (size_t)n * ng;
        for (int j = 0; j < K; j++) w[j] = dead[j] ? 0.0f : W0[(size_t)n * K + perm[j]];
        for (int i1 = 0; i1 < K; i1 += B) {
            int i2 = i1 + B < K ? i1 + B : K;
            for (int i = i1; i < i2; i++) {
                float sc = s[perm[i] / G];
                float x = w[i] / sc;
                float c = rintf(fminf(fmaxf(x, -8.0f), 7.0f));
                float qv = Bf(c * sc);
                float err = (w[i] - qv) / U[(size_t)i * K + i];
                q[i] = qv; e[i - i1] = err;
                for (int j = i; j < i2; j++) { float p = err * U[(size_t)i * K + j]; w[j] = w[j] - p; }
            }
            for (int j = i2; j < K; j++) {
                double acc = 0;
                for (int i = i1; i < i2; i++) acc += (double)e[i - i1] * U[(size_t)i * K + j];
                w[j] = w[j] - (float)acc;
            }
        }
        for (int j = 0; j < K; j++) {
            int c0 = perm[j];
            float qv = q[j], sg = s[c0 / G];
            deq[(size_t)n * K + c0] = bf16_from_float(qv);
            codes[(size_t)n * K + c0] = (int8_t)rintf(fminf(fmaxf(Bf(qv / sg) + 0.0f, -8.0f), 7.0f));
        }
        free(w); free(q); free(e);
    }
    free(perm); free(Hp); free(dead); free(U);
}
/* The checkpoint: export -q w4a16's layout (wexport_ctx), GPTQ's codes and scales (aux of the entries 10, 11). */
static void gptq_fill(void *vctx, int i, void *buf, size_t nbytes) {
    wexport_ctx *x = vctx;
    int wh = x->L.what[i];
    if (wh != 10 && wh != 11) { wexport_fill(x, i, buf, nbytes); return; }
    const Tensor *t = x->L.t[i];
    size_t n = (size_t)t->rows * t->cols;
    if (wh == 11) { const float *sc = x->L.aux[i]; for (size_t k = 0; k < n / 128; k++) ((uint16_t *)buf)[k] = bf16_from_float(sc[k]); return; }
    const int8_t *codes = x->L.aux[i];
    uint32_t *d = buf;
    for (size_t j = 0; j < n / 8; j++) {
        uint32_t w = 0;
        for (int k = 0; k < 8; k++) w |= (uint32_t)((codes[8 * j + k] + 8) & 0xF) << (4 * k);
        d[j] = w;
    }
}
typedef struct { int8_t **codes; float **scales; } gptq_out;   /* per Linear, l * 7 + w */
static void gptq_linear_entries(CkList *L, int l, const Layer *Ly, int w, const Tensor *W, void *ctx) {
    const gptq_out *g = ctx;
    (void)Ly;
    L->aux[ck_add(L, 10, W, ST_I32, 2, W->rows, W->cols / 8, "model.layers.%d.%s.weight_packed", l, linear_names[w])] = g->codes[l * 7 + w];
    L->aux[ck_add(L, 11, W, EMU_BF16, 2, W->rows, W->cols / 128, "model.layers.%d.%s.weight_scale", l, linear_names[w])] = g->scales[l * 7 + w];
    ck_add(L, 13, W, ST_I64, 1, 2, 0, "model.layers.%d.%s.weight_shape", l, linear_names[w]);
}
static int cmd_gptq(int argc, char **argv) {
    char **av = xmalloc((argc + 1) * sizeof(char *));
    memcpy(av, argv, (argc + 1) * sizeof(char *));
    const char *block_s = take_option(&argc, av, "--block"), *damp_s = take_option(&argc, av, "--damp"), *order_s = take_option(&argc, av, "--actorder");
    const char *hess_dir = take_option(&argc, av, "--hessians"), *hess_in = take_option(&argc, av, "--hessians-in");
    Options o;
    options_parse(&o, argc, av, "gptq", "-m --tokenizer -f --samples --seq --seed -o --observer --allow-nonfinite ",
                  "-m MODEL -f CALIB_TEXT -o DIR [--samples 128] [--seq N (min(2048, the model's context))] [--seed 1] [--tokenizer FILE]\n"
                  "       [--block 128] [--damp 0.01] [--actorder static|none] [--observer minmax|mse] [--hessians DIR] [--hessians-in DIR]\n"
                  "  GPTQ W4A16 (INT4, symmetric, group 128) as llm-compressor 0.14's GPTQModifier(scheme=\"W4A16\", ignore=[\"lm_head\"]):\n"
                  "  calibrates layer by layer on --samples seeded windows (calibrate's: BOS + seq-1 text tokens), each layer on the\n"
                  "  output of the already-quantized layers before it; fp32 GPTQ (blocks of --block columns, dampening --damp * mean\n"
                  "  diag H, static activation order); writes the compressed-tensors pack-quantized checkpoint of export -q w4a16.\n"
                  "  --observer mse: the group scales by llm-compressor's mse observer (MSE-optimal clipping; -q w4a16-mse's scales)\n"
                  "  instead of the groups' absmax (memoryless_minmax).\n"
                  "  --hessians DIR: also writes each layer's Hessians H = 2/n sum X X^T (fp32, before dampening) as DIR/h_LL_SITE.npy,\n"
                  "  SITE qkv, o, gateup, down (the input of q/k/v, o_proj, gate/up, down_proj). --hessians-in DIR: GPTQ from those files\n"
                  "  (e.g. llm-compressor's own Hessians, tests/gptq_check.py) instead of calibrating: no -f, no forward passes.");
    if (!o.model) fatal("gptq: -m MODEL is required");
    if (!o.text_file && !hess_in) fatal("gptq: -f CALIB_TEXT is required");
    if (o.text_file && hess_in) fatal("gptq: -f and --hessians-in exclude each other (the Hessians come from one or the other)");
    if (hess_dir && hess_in) fatal("gptq: --hessians and --hessians-in exclude each other");
    if (!o.out) fatal("gptq: -o DIR is required");
    GptqOpts go = {128, 1, 0, 0.01f};
    if (o.observer) {
        if (!strcmp(o.observer, "mse")) go.mse = 1;
        else if (strcmp(o.observer, "minmax")) fatal("gptq: --observer must be minmax or mse, got '%s'", o.observer);
    }
    if (block_s) go.block = (int)parse_long_arg("--block", block_s, 1, 1 << 20);
    if (damp_s) { double d = parse_double_arg("--damp", damp_s); if (!(d >= 0 && d <= 1e6)) fatal("gptq: --damp must be a finite number >= 0, got '%s'", damp_s); go.damp = (float)d; }
    if (order_s) {
        if (!strcmp(order_s, "static")) go.actorder = 1;
        else if (!strcmp(order_s, "none")) go.actorder = 0;
        else fatal("gptq: --actorder must be static or none, got '%s' (group / weight orders are not implemented)", order_s);
    }
    Model *m = model_load(o.model);
    const Config *c = &m->c;
    if (m->quant.present) fatal("gptq: %s is already quantized (GPTQ starts from a bf16 / fp16 / fp32 model)", m->path);
    for (int l = 0; l < c->n_layers; l++) {
        Layer *L = &m->layers[l];
        Tensor *ts[7] = LAYER_LINEARS(L);
        for (int i = 0; i < 7; i++)
            if (ts[i]->cols % 128)
                fatal("gptq: model.layers.%d.%s has %d input features, not a multiple of the group size 128 (llm-compressor refuses such a layer too)",
                      l, linear_names[i], ts[i]->cols);
    }
    if (!o.seq) o.seq = c->max_seq_len < 2048 ? c->max_seq_len : 2048;
    if (o.seq > c->max_seq_len) fatal("gptq: --seq %d exceeds the model's maximum context %d", o.seq, c->max_seq_len);
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) fatal("gptq: cannot create %s: %s", o.out, strerror(errno));
    check_dir_writable(o.out, "gptq: -o");
    if (hess_dir) {
        if (mkdir(hess_dir, 0777) != 0 && errno != EEXIST) fatal("gptq: cannot create %s: %s", hess_dir, strerror(errno));
        check_dir_writable(hess_dir, "gptq: --hessians");
    }
    size_t text_bytes = 0;
    char *text = NULL;
    tokenizer *tk = NULL;
    int *ids = NULL, n_text = 0, Lw = o.seq - 1;
    int *starts = xmalloc(o.samples * sizeof(int));
    if (!hess_in) {
        text = read_text_file(o.text_file, &text_bytes);
        if (!text) fatal("%s: cannot read: %s", o.text_file, strerror(errno));
        tk = run_tokenizer(o.tokenizer, o.model, c);
        n_text = tokenizer_encode(tk, text, text_bytes, 0, 0, &ids);
        if (n_text / Lw < o.samples)
            fatal("gptq: too few calibration tokens: --samples %d windows of BOS + %d text tokens need %lld text tokens, %s has %d",
                  o.samples, Lw, (long long)o.samples * Lw, o.text_file, n_text);
        calib_windows(n_text, o.seq, o.samples, o.seed, starts);
    }
    long long ntok = (long long)o.samples * o.seq;
    if (!hess_in && go.damp > 0 && ntok < c->hidden_dim)   /* with --damp 0 such a Hessian is refused below */
        fprintf(stderr, "llama_fp8: warning: gptq: %lld calibration tokens, fewer than the %d input features of down_proj: its Hessian is singular "
                "before dampening (results depend on --damp)\n", ntok, c->hidden_dim);

    Scheme qs = scheme_make("bf16", NULL);
    const Model *mb = model_for_scheme(m, &qs);
    Model *v = model_own(m, sizeof(Model));   /* layers < l quantized (their bf16 weights), layer l and later the originals */
    *v = *mb;
    v->layers = model_own(m, c->n_layers * sizeof(Layer));
    memcpy(v->layers, mb->layers, c->n_layers * sizeof(Layer));
    int qd = c->n_heads * c->head_dim;
    GptqCal cal = {.K = {c->dim, qd, c->dim, c->hidden_dim}};
    int kmax = c->hidden_dim > qd ? c->hidden_dim : qd;
    if (c->dim > kmax) kmax = c->dim;
    for (int i = 0; i < 4; i++) cal.H[i] = xmalloc((size_t)cal.K[i] * cal.K[i] * sizeof(float));
    cal.G = xmalloc((size_t)kmax * kmax * sizeof(double));
    cal.xs = xmalloc((size_t)o.seq * kmax * sizeof(float));
    int nlin = c->n_layers * 7;
    int8_t **codes = xcalloc(nlin, sizeof(int8_t *));
    float **scales = xcalloc(nlin, sizeof(float *));
    RunState s;
    runstate_init(&s, c, o.seq, o.seq);
    s.observe = gptq_observe; s.observe_ctx = &cal;
    int *win = xmalloc(o.seq * sizeof(int));
    if (hess_in) printf("gptq: Hessians from %s; block %d, damp %g, actorder %s\n", hess_in, go.block, go.damp, go.actorder ? "static" : "none");
    else printf("gptq: %s, %d text tokens, %d samples x %d tokens (BOS + %d), seed %llu; block %d, damp %g, actorder %s\n",
                o.text_file, n_text, o.samples, o.seq, Lw, o.seed, go.block, go.damp, go.actorder ? "static" : "none");
    fflush(stdout);
    double t0 = now_seconds();
    for (int l = 0; l < c->n_layers; l++) {
        for (int i = 0; i < 4; i++) memset(cal.H[i], 0, (size_t)cal.K[i] * cal.K[i] * sizeof(float));
        cal.layer = l;
        Model vl = *v;
        vl.c.n_layers = l + 1;   /* the pass stops after layer l */
        for (int w = 0; w < (hess_in ? 0 : o.samples); w++) {
            win[0] = c->bos_id;
            memcpy(win + 1, ids + starts[w], Lw * sizeof(int));
            cal.n = w;
            forward(&vl, &s, &qs, win, o.seq, 0, o.seq);
        }
        for (int i = 0; i < 4; i++) {   /* H / n, fp32 */
            size_t nn = (size_t)cal.K[i] * cal.K[i];
            static const char *const hn[4] = {"qkv", "o", "gateup", "down"};
            char hp[4096];
            if (hess_in) {
                snprintf(hp, sizeof hp, "%s/h_%02d_%s.npy", hess_in, l, hn[i]);
                npy a = npy_load(hp);
                if (a.kind != NPY_F32 || a.ndim != 2 || a.shape[0] != cal.K[i] || a.shape[1] != cal.K[i])
                    fatal("gptq: %s must be a float32 [%d, %d] matrix (the Hessian of layer %d's %s input)", hp, cal.K[i], cal.K[i], l, hn[i]);
                memcpy(cal.H[i], a.data, nn * sizeof(float));
                free(a.data);
                for (size_t k = 0; k < nn; k++)
                    if (!isfinite(cal.H[i][k])) fatal("gptq: %s holds a non-finite value at [%zu, %zu]", hp, k / cal.K[i], k % cal.K[i]);
                continue;
            }
            for (size_t k = 0; k < nn; k++) cal.H[i][k] = cal.H[i][k] / (float)o.samples;
            if (hess_dir) {
                snprintf(hp, sizeof hp, "%s/h_%02d_%s.npy", hess_dir, l, hn[i]);
                write_npy(hp, cal.H[i], cal.K[i], cal.K[i]);
            }
        }
        Layer *L = &v->layers[l];
        Tensor *ts[7] = LAYER_LINEARS(L);
        uint16_t *deqs[7];
        for (int i = 0; i < 7; i++) {
            int N = ts[i]->rows, K = ts[i]->cols, si = gptq_linear_site[i];
            float *W0 = xmalloc((size_t)N * K * sizeof(float));
            for (size_t k = 0; k < (size_t)N * K; k++) W0[k] = Bf(tensor_get(ts[i], k));
            float *Hc = xmalloc((size_t)K * K * sizeof(float));
            memcpy(Hc, cal.H[si], (size_t)K * K * sizeof(float));
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, linear_names[i]);
            codes[l * 7 + i] = xmalloc((size_t)N * K);
            scales[l * 7 + i] = xmalloc((size_t)N * (K / 128) * sizeof(float));
            deqs[i] = model_own(m, (size_t)N * K * 2);
            gptq_linear(name, W0, N, K, Hc, &go, codes[l * 7 + i], scales[l * 7 + i], deqs[i]);
            free(W0); free(Hc);
        }
        for (int i = 0; i < 7; i++) { ts[i]->data = deqs[i]; ts[i]->dtype = EMU_BF16; }
        if (isatty(2)) progress("layer %d/%d  %.1f s   ", l + 1, c->n_layers, now_seconds() - t0);
    }
    if (isatty(2)) progress_done();

    /* the checkpoint: export -q w4a16's layout, GPTQ's codes */
    wexport_ctx x = {.f = WF_INT4};
    ck_build(&x.L, mb, &(CkWriter){gptq_linear_entries, NULL, NULL}, &(gptq_out){codes, scales});
    char path[4096], qc[2048];
    ck_write(&x.L, o.out, gptq_fill, &x);
    snprintf(qc, sizeof qc,
             "  \"quantization_config\": {\n    \"quant_method\": \"compressed-tensors\",\n    \"format\": \"pack-quantized\",\n"
             "    \"quantization_status\": \"compressed\",\n    \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"format\": \"pack-quantized\",\n"
             "      \"weights\": {\"num_bits\": 4, \"type\": \"int\", \"strategy\": \"group\", \"group_size\": 128, \"symmetric\": true, \"dynamic\": false, "
             "\"observer\": \"%s\", \"actorder\": %s},\n      \"input_activations\": null}},\n    \"ignore\": [\"lm_head\"],\n    \"kv_cache_scheme\": null\n  }",
             go.mse ? "mse" : "memoryless_minmax", go.actorder ? "\"static\"" : "null");
    snprintf(path, sizeof path, "%s/config.json", o.out);
    if (export_hf_files(o.model, o.out, qc) < 0) write_hf_config(path, c, qc);
    printf("gptq: %s: W4A16 GPTQ as compressed-tensors pack-quantized (%d tensors, %d Linears, %.1f s)\n", o.out, x.L.n, nlin, now_seconds() - t0);
    for (int i = 0; i < nlin; i++) { free(codes[i]); free(scales[i]); }
    free(codes); free(scales); ck_free(&x.L);
    for (int i = 0; i < 4; i++) free(cal.H[i]);
    free(cal.G); free(cal.xs); free(win); free(starts); free(ids); free(text); free(av);
    if (tk) tokenizer_free(tk);
    runstate_free(&s);
    model_free(m);
    return 0;
}

/* ---- llama_fp8 stats: the outlier report ----
 * The bf16 baseline runs over --chunks chunks of --ctx tokens (the ppl gptq split: BOS, then
 * non-overlapping chunks); at every Linear input (and the lm_head input) it records:
 *   absmax and the per-channel absmax (top outlier channels: the input channels of largest |x|);
 *   per-tensor static E4M3 scaling with s = absmax / 448 calibrated on the FIRST chunk (or the
 *   calibrated absmax of --scales FILE), applied as vLLM does (q = fp8(clamp(x · (1/s), ±448))) to
 *   every chunk: "sat %" = share of values beyond the calibrated absmax (|x| > absmax: clamped to ±448;
 *   the absmax itself may land a rounding error above 448 and is clamped back harmlessly), "ftz %" = share of
 *   nonzero values that encode to ±0 (|x · (1/s)| ≤ 2^-10);
 *   quantization SNR = 10·log10(Σ x² / Σ (x − deq(x))²) in dB for three E4M3 granularities: that
 *   per-tensor static scale; per token (vLLM dynamic: s = max(row absmax / 448, 1/(448·512)),
 *   q = fp8(clamp(x / s))); per input channel (s = channel absmax over the chunk's tokens / 448).
 * Weights: absmax of every Linear (q, k, v, o, gate, up, down). */
typedef struct {
    double absmax, scale;     /* running absmax; the per-tensor scale used for sat / ftz / SNR */
    float cal_amax;           /* the absmax that scale came from: |x| above it is clamped ("saturated") */
    float *chan;              /* (cols) per-channel absmax */
    int cols;
    long long n, sat, ftz;
    double sig, e_tensor, e_token, e_chan;
} SiteStats;
typedef struct {
    int n_layers, chunk;
    SiteStats *st;            /* (n_layers + 1, N_SITES); row n_layers, site 0 = lm_head input */
    const ScaleSet *scales;
} StatsRun;
static inline float fq_e4m3(float x, float s, float inv) {  /* vLLM: fp8(clamp(x · inv, ±448)) · s */
    float y = fminf(fmaxf(x * inv, -448.0f), 448.0f);
    return fp8_round_fast(y, EMU_E4M3) * s;
}
static void stats_observe(void *ctx, int layer, int site, const float *x, int rows, int cols) {
    StatsRun *r = ctx;
    observe_finite("stats", "chunk", r->chunk + 1, layer, site, x, rows, cols);
    if (site == SITE_K || site == SITE_V) return;
    int l = layer < 0 ? r->n_layers : layer, si = layer < 0 ? 0 : site;
    SiteStats *S = &r->st[(size_t)l * N_SITES + si];
    if (!S->chan) { S->chan = xcalloc(cols, sizeof(float)); S->cols = cols; }
    float amax = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++) amax = fmaxf(amax, fabsf(x[i]));
    if (amax > S->absmax) S->absmax = amax;
    if (r->chunk == 0 && S->scale == 0) {
        double a = amax;
        if (r->scales) { double c = layer < 0 ? r->scales->lm_head : r->scales->act[layer][site]; if (c > 0) a = c; }  /* no lm_head entry: chunk 1 */
        S->cal_amax = (float)a;
        S->scale = a > 0 ? (float)a / 448.0f : 1.0f;
    }
    float s = (float)S->scale, inv = 1.0f / s;
    float *cmax = xcalloc(cols, sizeof(float));
    for (int t = 0; t < rows; t++)
        for (int k = 0; k < cols; k++) cmax[k] = fmaxf(cmax[k], fabsf(x[(size_t)t * cols + k]));
    for (int k = 0; k < cols; k++) S->chan[k] = fmaxf(S->chan[k], cmax[k]);
    for (int t = 0; t < rows; t++) {
        const float *xr = x + (size_t)t * cols;
        float ra = 0;
        for (int k = 0; k < cols; k++) ra = fmaxf(ra, fabsf(xr[k]));
        float st = fmaxf(ra / 448.0f, 1.0f / (448.0f * 512.0f));
        for (int k = 0; k < cols; k++) {
            float v = xr[k];
            S->n++;
            if (fabsf(v) > S->cal_amax) S->sat++;
            float dq = fq_e4m3(v, s, inv);
            if (v != 0 && dq == 0) S->ftz++;
            S->sig += (double)v * v;
            S->e_tensor += ((double)dq - v) * ((double)dq - v);
            float dt = fp8_round_fast(fminf(fmaxf(v / st, -448.0f), 448.0f), EMU_E4M3) * st;
            S->e_token += ((double)dt - v) * ((double)dt - v);
            float sc = cmax[k] / 448.0f;
            float dc = sc > 0 ? fp8_round_fast(fminf(fmaxf(v / sc, -448.0f), 448.0f), EMU_E4M3) * sc : 0.0f;
            S->e_chan += ((double)dc - v) * ((double)dc - v);
        }
    }
    free(cmax);
}
static double snr_db(double sig, double err) { return err > 0 ? 10.0 * log10(sig / err) : INFINITY; }
static float weight_absmax(const Tensor *W) {
    float a = 0;
    for (size_t i = 0; i < (size_t)W->rows * W->cols; i++) a = fmaxf(a, fabsf(tensor_get(W, i)));
    return a;
}

static void stats_svg(const char *path, const StatsRun *r, const char *title);   /* appendix A4 */
static int cmd_stats(int argc, char **argv) {
    Options o;
    options_parse(&o, argc, argv, "stats", "-m --tokenizer -f --ctx --chunks -o --scales --synthetic --allow-nonfinite ",
                  "-m MODEL -f TEXT [--ctx N (512)] [--chunks N (all)] [--scales scales.json] [-o report.svg] [--tokenizer FILE]\n"
                  "  per layer and Linear input: activation absmax, top outlier channels, % saturated / flushed to zero by a\n"
                  "  per-tensor E4M3 scale (absmax of the first chunk / 448, or --scales), E4M3 SNR per tensor / token / channel;\n"
                  "  weight absmax of every Linear. -o writes an SVG chart.");
    if (!o.synthetic && !o.text_file) fatal("stats: -f TEXT is required");
    if (o.out) check_writable(o.out, "stats: -o");
    Model *m = open_model(&o, "stats");
    const Config *c = &m->c;
    const ScaleSet *scales = o.scales_file ? scales_load(o.scales_file, m) : NULL;
    int ctx = o.ctx ? o.ctx : (c->max_seq_len < 512 ? c->max_seq_len : 512);
    if (ctx > c->max_seq_len) fatal("stats: --ctx %d exceeds the model's maximum context %d", ctx, c->max_seq_len);
    int *ids, n_tok;
    if (o.synthetic) n_tok = synthetic_tokens(m, 2, ctx, &ids);
    else {
        size_t nb;
        n_tok = encode_text_file(&o, c, &nb, &ids);
    }
    int n_chunks = n_tok / ctx;
    if (n_chunks < 1) fatal("stats: the text has %d tokens, fewer than one chunk of %d (use a longer text or a smaller --ctx)", n_tok, ctx);
    if (o.chunks > 0 && o.chunks < n_chunks) n_chunks = o.chunks;

    Scheme qs = scheme_make("bf16", NULL);
    const Model *mb = model_for_scheme(m, &qs);
    StatsRun r = {.n_layers = c->n_layers, .scales = scales};
    r.st = xcalloc((size_t)(c->n_layers + 1) * N_SITES, sizeof(SiteStats));
    RunState s;
    runstate_init(&s, c, ctx, ctx);
    s.observe = stats_observe; s.observe_ctx = &r;
    for (int ch = 0; ch < n_chunks; ch++) {
        r.chunk = ch;
        forward(mb, &s, &qs, ids + (size_t)ch * ctx, ctx, 0, 0);
    }
    model_describe(m, stdout);
    printf("stats: bf16 baseline, %d chunks x %d tokens; per-tensor E4M3 scale = %s / 448\n", n_chunks, ctx,
           scales ? "calibrated absmax (--scales)" : "absmax of chunk 1");
    printf("\n%-5s %-8s %10s %-34s %8s %8s %9s %9s %9s\n", "layer", "input", "absmax", "top channels (index:absmax)", "sat %", "ftz %", "SNR tens", "SNR tok", "SNR chan");
    for (int l = 0; l <= c->n_layers; l++)
        for (int si = 0; si < (l == c->n_layers ? 1 : N_SITES); si++) {
            SiteStats *S = &r.st[(size_t)l * N_SITES + si];
            if (!S->n) continue;
            char top[80] = "", *p = top;
            int used[3] = {-1, -1, -1};
            for (int t = 0; t < 3 && t < S->cols; t++) {
                int best = -1;
                for (int k = 0; k < S->cols; k++) {
                    if (k == used[0] || k == used[1]) continue;
                    if (best < 0 || S->chan[k] > S->chan[best]) best = k;
                }
                used[t] = best;
                p += snprintf(p, top + sizeof top - p, "%s%d:%.3g", t ? " " : "", best, S->chan[best]);
            }
            char lname[16];
            if (l == c->n_layers) snprintf(lname, sizeof lname, "-"); else snprintf(lname, sizeof lname, "%d", l);
            printf("%-5s %-8s %10.4g %-34s %8.4f %8.4f %9.2f %9.2f %9.2f\n", lname, l == c->n_layers ? "lm_head" : site_names[si], S->absmax, top,
                   100.0 * S->sat / S->n, 100.0 * S->ftz / S->n, snr_db(S->sig, S->e_tensor), snr_db(S->sig, S->e_token), snr_db(S->sig, S->e_chan));
        }
    printf("\nweight absmax per Linear\n%-5s %9s %9s %9s %9s %9s %9s %9s\n", "layer", "q", "k", "v", "o", "gate", "up", "down");
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
        printf("%-5d %9.4g %9.4g %9.4g %9.4g %9.4g %9.4g %9.4g\n", l, weight_absmax(&L->wq), weight_absmax(&L->wk), weight_absmax(&L->wv),
               weight_absmax(&L->wo), weight_absmax(&L->w_gate), weight_absmax(&L->w_up), weight_absmax(&L->w_down));
    }
    if (o.out) {
        char title[512];
        snprintf(title, sizeof title, "llama_fp8 stats: %s, %d x %d tokens", m->path, n_chunks, ctx);
        stats_svg(o.out, &r, title);
        printf("wrote %s\n", o.out);
    }
    for (int i = 0; i < (c->n_layers + 1) * N_SITES; i++) free(r.st[i].chan);
    free(r.st); free(ids);
    runstate_free(&s);
    model_free(m);
    return 0;
}

/* llama_fp8 verify: see the usage text. */
static int cmd_verify(int argc, char **argv) {
    const char *usage_text =
        "usage: llama_fp8 verify -m MODEL [-q SCHEME] [--accum A] [--kv K] [--act-format F] [--scales FILE] [--gemm auto|model|mma|wgmma|cublaslt]\n"
        "                        (--ids 1,2,3 | -f TEXT [--tokenizer FILE]) [--chunks 1] [--ctx N]\n"
        "       llama_fp8 verify --synthetic [-q SCHEME ...]   the built-in random model\n"
        "       llama_fp8 verify --bench               GEMM TFLOP/s: hand-written mma vs cuBLASLt vs the 1979 TFLOP/s FP8 peak\n"
        "       llama_fp8 verify --device              print the device this build would use\n"
        "Runs the same tokens through the forward pass on the GPU and on the CPU: per op (fp32, bf16) and end to\n"
        "end (every scheme; bit for bit with the model GEMM kernels, reported with the tensor cores). CUDA builds.\n"
        "(Kernel-by-kernel checks on random inputs are a test program: build/cuda/cuda_check --kernels | --host.)";
    const char *model = NULL, *scheme = NULL, *idstr = NULL, *text = NULL, *tok = NULL, *scales_file = NULL;
    SchemeOptions so = {0};
    enum { VERIFY_MODEL, VERIFY_BENCH, VERIFY_DEVICE } mode = VERIFY_MODEL;
    int ctx = 0, synthetic = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        char pat[48];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { puts(usage_text); return 0; }
        else if (!strcmp(a, "--cpu")) gpu_set_force_cpu(1);
        else if (!strcmp(a, "--bench")) mode = VERIFY_BENCH;
        else if (!strcmp(a, "--device")) mode = VERIFY_DEVICE;
        else if (!strcmp(a, "--synthetic")) synthetic = 1;
        else if (snprintf(pat, sizeof pat, " %s ", a), !strstr(" -m -q --ids -f --tokenizer --chunks --ctx --accum --kv --act-format --gemm --scales ", pat))
            fatal("verify: unknown option '%s' (see llama_fp8 verify --help)", a);
        else if (!more) fatal("verify: option %s needs a value", a);
        else if (!strcmp(a, "-m")) model = argv[++i];
        else if (!strcmp(a, "-q")) scheme = argv[++i];
        else if (!strcmp(a, "--ids")) idstr = argv[++i];
        else if (!strcmp(a, "-f")) text = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tok = argv[++i];
        else if (!strcmp(a, "--chunks")) { if (parse_long_arg(a, argv[++i], 1, INT_MAX) != 1) fatal("verify: --chunks must be 1 (one chunk is compared)"); }
        else if (!strcmp(a, "--ctx")) ctx = (int)parse_long_arg(a, argv[++i], 2, 1 << 20);
        else if (!strcmp(a, "--accum")) so.accum = argv[++i];
        else if (!strcmp(a, "--kv")) so.kv = argv[++i];
        else if (!strcmp(a, "--act-format")) so.act_format = argv[++i];
        else if (!strcmp(a, "--gemm")) gpu_set_gemm(argv[++i]);
        else if (!strcmp(a, "--scales")) scales_file = argv[++i];
        else fatal("verify: unknown option '%s' (see llama_fp8 verify --help)", a);
    }
    if (mode == VERIFY_DEVICE) { printf("device: %s\n", device_description()); return 0; }
#ifndef GPU_BUILD
    (void)model; (void)scheme; (void)idstr; (void)text; (void)tok; (void)ctx; (void)synthetic; (void)so; (void)scales_file;
    fatal("verify: this binary was built without CUDA; build it with `make CUDA=1` (device: %s)", device_description());
#else
    if (!gpu_active())
        fatal("verify: no GPU to verify (%s); nothing was compared (tests/cuda_check.c --host checks the GPU formulas on the CPU)", gpu_why);
    printf("device: %s\n", device_description());
    if (mode == VERIFY_BENCH) {
        int Ms[3] = {4096, 8192, 16384}, shapes[5][2] = {{6144, 4096}, {4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
        for (int i = 0; i < 3; i++)
            for (int s = 0; s < 5; s++) cu_bench_gemm(Ms[i], shapes[s][0], shapes[s][1], 10);
        return 0;
    }
    /* model mode */
    Model *m = synthetic ? model_load("(synthetic)") : NULL;
    if (!m) { if (!model) fatal("verify: -m MODEL (or --synthetic, --bench, --device) is required"); m = model_load(model); }
    int *ids = NULL, n;
    if (idstr) n = parse_ids(idstr, m->c.vocab_size, &ids);
    else if (text) {
        size_t len;
        char *buf = read_text_file(text, &len);
        if (!buf) fatal("%s: cannot read: %s", text, strerror(errno));
        tokenizer *tk = run_tokenizer(tok, model, &m->c);
        n = tokenizer_encode(tk, buf, len, 1, 0, &ids);
        tokenizer_free(tk);
        free(buf);
    } else if (synthetic) {
        n = 32; ids = xmalloc(n * sizeof(int));
        for (int t = 0; t < n; t++) ids[t] = (int)((t * 7919u + 13) % (unsigned)m->c.vocab_size);
    } else fatal("verify: give the tokens with --ids 1,2,3 or -f TEXT");
    int T = ctx ? ctx : n < 512 ? n : 512;
    if (T > n) T = n;
    if (T > m->c.max_seq_len) T = m->c.max_seq_len;
    model_describe(m, stdout);
    if (scales_file) so.scales = scales_load(scales_file, m);
    Scheme q_ = scheme_for_model(m, scheme, "fp32", &so); const Scheme *q = &q_;
    const Model *mq = model_for_scheme(m, q);
    int exact = gpu_gemm(q, 1, 0) == CU_GEMM_MODEL && gpu_gemm(q, 0, 0) == CU_GEMM_MODEL;
    printf("verify: scheme %s, %d tokens; GEMMs on the GPU: %s\n", q->name, T, exact ? gpu_gemm_name(CU_GEMM_MODEL) : gpu_gemm_name(gpu_gemm(q, 1, 0)));
    /* op by op: each GPU op on the CPU's input, per op kind; the layers where values differ are listed */
    OpStat st[OP_COUNT];
    memset(st, 0, sizeof st);
    float *logits = verify_ops(mq, q, ids, T, st, 1);
    report_ops(st, q, "");
    /* the loss: NLL of every next token, GPU kernel vs log_prob() */
    if (T > 1) {
        /* ppl's statistics kernel (log p of the target, as ppl runs it on the GPU) against log_prob() */
        size_t V = m->c.vocab_size;
        double *lp = xmalloc((size_t)T * 8), worst = 0, sum = 0;
        int *arg = xmalloc((size_t)T * sizeof(int));
        float *dl = dput(logits, (size_t)(T - 1) * V * 4);
        int *dt = dput(ids + 1, (size_t)(T - 1) * sizeof(int)), *da = cud_alloc((size_t)T * sizeof(int));
        double *dlp = cud_alloc((size_t)T * 8);
        cud_ppl_rows(dl, NULL, T - 1, (int)V, dt, dlp, da, NULL);
        cud_download(lp, dlp, (size_t)(T - 1) * 8);
        cud_free(dl); cud_free(dt); cud_free(da); cud_free(dlp);
        for (int t = 0; t + 1 < T; t++) {
            double ref = -log_prob(logits + (size_t)t * V, (int)V, ids[t + 1]);
            double rel = fabs(-lp[t] - ref) / (fabs(ref) > 1e-300 ? fabs(ref) : 1);
            if (!(rel <= worst)) worst = rel;
            sum += ref;
        }
        /* bound: both sum ≤ 128k terms in double (relative error ≤ V·2^-53 ≈ 1.4e-11 each way) */
        vreport(worst < 1e-10, "nll", "%d predictions, mean NLL %.6f (PPL %.4f), max relative GPU-CPU difference %.3g", T - 1, sum / (T - 1), exp(sum / (T - 1)), worst);
        free(lp); free(arg);
    }
    /* end to end: the resident gpu_forward() against forward(), fed in two calls (the KV cache) */
    {
        ResidentCmp r = resident_compare(mq, q, ids, T);
        if (exact)
            vreport(!r.diff && !r.layer_diff, "gpu_forward", "tokens 0..%d then %d..%d (KV cache): %zu of %zu logits, %zu of %zu layer outputs differ from forward()",
                    T / 2 - 1, T / 2, T - 1, r.diff, r.n, r.layer_diff, r.layer_n);
        else   /* tensor-core GEMMs: the hardware's accumulation, not the CPU's; reported, not judged */
            printf("info gpu_forward: %s GEMMs: %zu of %zu logits differ from forward() (--accum %s on the CPU); worst row max|diff| / max|logit| %.3g\n",
                   gpu_gemm_name(gpu_gemm(q, 1, 0)), r.diff, r.n, emu_accum_names[q->accum], r.rel);
        gpu_forward_release();
    }
    free(logits); free(ids);
    model_free(m);
    printf("%s\n", vfails ? "verify: GPU and CPU DIFFER" : "verify: GPU and CPU agree");
    return vfails ? 1 : 0;
#endif
}

/* ---- llama_fp8 tokenize ---- */
static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *file = NULL;
    int bos = 0, special = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: llama_fp8 tokenize -m MODEL_OR_TOKENIZER -f FILE [--bos] [--special] [--tokenizer FILE]\n"
                   "  prints the token ids of FILE separated by spaces (no BOS unless --bos;\n"
                   "  special-token strings such as <|eot_id|> are parsed only with --special)\n");
            return 0;
        }
        if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--special")) special = 1;
        else if ((!strcmp(a, "-m") || !strcmp(a, "-f") || !strcmp(a, "--tokenizer")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (a[1] == 'm') model = v; else if (a[1] == 'f') file = v; else tok_path = v;
        } else fatal("tokenize: unknown or incomplete option '%s' (see llama_fp8 tokenize --help)", a);
    }
    if (!file || (!model && !tok_path)) fatal("tokenize: need -m MODEL_OR_TOKENIZER (or --tokenizer FILE) and -f FILE");
    tokenizer *t;
    if (tok_path) t = tokenizer_load(tok_path);
    else if (is_directory(model)) t = tokenizer_load(model);
    else {
        /* A file: a tokenizer itself, or a llama2.c model with tokenizer.bin beside it. */
        char err[600];
        t = tokenizer_try_load(model, err, sizeof err);
        if (!t) {
            const char *slash = strrchr(model, '/');
            char beside[4096];
            snprintf(beside, sizeof beside, "%.*stokenizer.bin", slash ? (int)(slash - model + 1) : 0, model);
            size_t ml = strlen(model);
            if (ml < 4 || strcmp(model + ml - 4, ".bin") != 0) fatal("%s", err);
            if (!file_exists(beside) || !strcmp(beside, model))
                fatal("%s (not a tokenizer, and no %s beside it: name one with --tokenizer FILE)", err, beside);
            t = tokenizer_load(beside);
        }
    }
    mfile f;
    mfile_open_or_die(&f, file);
    int *ids;
    int n = tokenizer_encode(t, (const char *)f.data, f.size, bos, special, &ids);
    char *out = xmalloc(16 * (size_t)n + 2), *o = out;
    for (int i = 0; i < n; i++) o += sprintf(o, i ? " %d" : "%d", ids[i]);
    *o++ = '\n';
    if (fwrite(out, 1, (size_t)(o - out), stdout) != (size_t)(o - out) || fflush(stdout) != 0) fatal("tokenize: writing the ids failed");
    free(out); free(ids);
    mfile_close(&f);
    tokenizer_free(t);
    return 0;
}

/* `llama_fp8 fp8`: what FP8 does to a number. Everything printed comes from fp8.h. */
static const char *fp8_cli_long_name(fp8_format fmt) {
    switch (fmt) {
    case FP8_E4M3: return "E4M3 (OCP E4M3FN, torch.float8_e4m3fn)";
    case FP8_E5M2: return "E5M2 (OCP, torch.float8_e5m2)";
    case FP8_E4M3FNUZ: return "E4M3FNUZ (AMD MI300, torch.float8_e4m3fnuz)";
    case FP8_E5M2FNUZ: return "E5M2FNUZ (torch.float8_e5m2fnuz)";
    case FP8_E8M0: return "E8M0 (OCP MX scale, ml_dtypes float8_e8m0fnu)";
    case FP4_E2M1: return "E2M1 (FP4, OCP MXFP4 element, ml_dtypes float4_e2m1fn)";
    }
    return "?";
}

/* The code as sign|exponent|mantissa bits, e.g. "0|1001|010"; E8M0 has only exponent bits. */
static void fp8_cli_bits(char *buf, uint8_t v, fp8_format fmt) {
    fp8_params p = fp8_params_of(fmt);
    int nbits = (p.sign_bit ? 1 : 0) + p.ebits + p.mbits, k = 0;
    for (int i = nbits - 1; i >= 0; i--) {
        buf[k++] = (v >> i) & 1 ? '1' : '0';
        if ((p.sign_bit && i == nbits - 1) || (i == p.mbits && p.mbits > 0)) buf[k++] = '|';
    }
    buf[k] = 0;
}

/* Prints a value exactly where it is short, and as a power of two where it is one. */
static void fp8_cli_value(char *buf, size_t n, double v) {
    int e;
    if (v != v) { snprintf(buf, n, "NaN"); return; }
    if (isinf(v)) { snprintf(buf, n, v > 0 ? "inf" : "-inf"); return; }
    if (v == 0) { snprintf(buf, n, signbit(v) ? "-0" : "0"); return; }
    double m = frexp(fabs(v), &e);
    if (m == 0.5 && (e - 1 < -12 || e - 1 > 16)) snprintf(buf, n, "%s2^%d", v < 0 ? "-" : "", e - 1);
    else snprintf(buf, n, "%.10g", v);
}

/* Would round-to-nearest take |x| above the largest finite value? (Asks fp8.h's rounding step
 * directly, before any saturation is applied.) */
static int fp8_cli_overflows(float x, fp8_format fmt) {
    uint32_t u = fp8_f32_bits(x), ex = (u >> 23) & 0xFF, frac = u & 0x7FFFFF;
    if (ex == 0xFF || (ex == 0 && frac == 0)) return 0;
    fp8_params p = fp8_params_of(fmt);
    uint64_t m = ex ? (frac | 0x800000) : frac;
    int e = ex ? (int)ex - 150 : -149;
    return fp8_round_magnitude(m, e, &p, FP8_RNE, 0) > p.max_code;
}

/* Is finite x exactly halfway between two neighbouring values of the format? (Then round to
 * nearest even decides.) The neighbour above the largest finite value is one more step. */
static int fp8_cli_is_tie(float x, fp8_format fmt) {
    if (!isfinite(x) || x == 0 || (fmt == FP8_E8M0 && x < 0)) return 0;
    uint8_t lo = fp8_from_float_rtz(fabsf(x), fmt, FP8_SATFINITE);
    double a = fp8_to_float(lo, fmt), b;
    if (fmt == FP8_E8M0) b = 2 * a;
    else if (lo < fp8_params_of(fmt).max_code) b = fp8_to_float((uint8_t)(lo + 1), fmt);
    else b = 2 * a - fp8_to_float((uint8_t)(lo - 1), fmt);
    return (double)fabsf(x) * 2 == a + b;
}

static fp8_format fp8_cli_format(const char *s) {
    fp8_format fmt;
    if (fp8_format_from_name(s, &fmt) != 0)
        fatal("fp8: unknown format '%s' (expected e4m3, e5m2, e4m3fnuz, e5m2fnuz, e8m0 or e2m1)", s);
    return fmt;
}

static void fp8_cli_encode(double x, const fp8_format *fmts, int nfmt, fp8_saturation sat) {
    float xf = (float)x;
    printf("  (float32 0x%08x = %.9g)\n", fp8_f32_bits(xf), xf);
    printf("  %-9s %-5s %-12s %-14s %-12s %-10s %s\n", "format", "code", "s|exp|man", "decoded", "abs error", "rel error", "what happened");
    for (int i = 0; i < nfmt; i++) {
        fp8_format fmt = fmts[i];
        fp8_params p = fp8_params_of(fmt);
        uint8_t q = fp8_from_float(xf, fmt, sat);
        float d = fp8_to_float(q, fmt);
        char bits[16], val[32], ae[24] = "-", re[24] = "-", what[96] = "";
        fp8_cli_bits(bits, q, fmt);
        fp8_cli_value(val, sizeof val, d);
        uint32_t mag = q & ~p.sign_bit & (fmt == FP4_E2M1 ? 0xF : 0xFF);
        float mx = fp8_max(fmt);
        if (isfinite(d) && isfinite(x)) {
            double err = fabs((double)d - x);
            snprintf(ae, sizeof ae, "%.4g", err);
            if (x != 0) snprintf(re, sizeof re, "%.3g", err / fabs(x));
        }
        if (x != x) snprintf(what, sizeof what, "NaN in, %s out", d != d ? "NaN" : "a number");
        else if (fmt == FP8_E8M0 && x <= 0) snprintf(what, sizeof what, "E8M0 has no zero and no sign: %s", d != d ? "NaN" : "smallest value");
        else if (isinf(x)) snprintf(what, sizeof what, "inf in: %s", d != d ? "NaN (no inf in this format)" : isinf(d) ? "inf" : "saturated to max");
        else if (d != d) snprintf(what, sizeof what, "overflow to NaN (|x| rounds above max %g)", mx);
        else if (isinf(d)) snprintf(what, sizeof what, "overflow to inf (|x| rounds above max %g)", mx);
        else if (fp8_cli_overflows(xf, fmt)) snprintf(what, sizeof what, "saturated to %smax (|x| rounds above %g)", d < 0 ? "-" : "", mx);
        else if (d == 0 && x != 0) snprintf(what, sizeof what, "underflow: flushed to %s0%s", signbit(d) ? "-" : "+",
                                            fp8_cli_is_tie(xf, fmt) ? " (a tie: to the even code)" : "");
        else if (d == 0) snprintf(what, sizeof what, "zero%s", signbit(x) && !signbit(d) ? " (no -0 in this format: +0)" : "");
        else {
            const char *how = (double)d == x ? "exact" : fabs(d) > fabs(x) ? "rounded away from 0" : "rounded toward 0";
            int sub = fmt != FP8_E8M0 && mag < (1u << p.mbits);
            snprintf(what, sizeof what, "%s%s%s", sub ? "subnormal, " : "", how,
                     fp8_cli_is_tie(xf, fmt) ? (fmt == FP8_E8M0 ? " (a tie: E8M0 rounds ties up)" : " (a tie: to the even code)") : "");
        }
        uint8_t qd = fp8_from_double(x, fmt, sat);
        if (qd != q && !(x != x)) {
            size_t l = strlen(what);
            snprintf(what + l, sizeof what - l, "; from the double directly: 0x%02x (double rounding)", qd);
        }
        printf("  %-9s 0x%02x  %-12s %-14s %-12s %-10s %s\n", fp8_format_name(fmt), q, bits, val, ae, re, what);
    }
}

static void fp8_cli_table(fp8_format fmt) {
    const float *t = fp8_decode_table(fmt);
    int n = fmt == FP4_E2M1 ? 16 : 256;
    printf("%s: %d codes\n", fp8_cli_long_name(fmt), n);
    printf("%-5s %-12s %s\n", "code", "s|exp|man", "value");
    for (int v = 0; v < n; v++) {
        char bits[16], val[32];
        fp8_cli_bits(bits, (uint8_t)v, fmt);
        fp8_cli_value(val, sizeof val, t[v]);
        printf("0x%02x  %-12s %s\n", v, bits, val);
    }
}

static void fp8_cli_info(fp8_format fmt) {
    fp8_params p = fp8_params_of(fmt);
    const float *t = fp8_decode_table(fmt);
    int n = fmt == FP4_E2M1 ? 16 : 256, finite = 0, nan = 0, inf = 0;
    for (int v = 0; v < n; v++) {
        if (t[v] != t[v]) nan++;
        else if (isinf(t[v])) inf++;
        else finite++;
    }
    double mx = fp8_max(fmt);
    double min_normal = fmt == FP8_E8M0 ? ldexp(1, -127) : t[1u << p.mbits];
    double min_sub = fmt == FP8_E8M0 ? 0 : t[1];
    char a[32];
    printf("%s\n", fp8_cli_long_name(fmt));
    printf("  bits            %s%d exponent, %d mantissa (%d bits)\n", p.sign_bit ? "1 sign, " : "no sign, ", p.ebits, p.mbits,
           (p.sign_bit ? 1 : 0) + p.ebits + p.mbits);
    printf("  bias            %d\n", p.bias);
    fp8_cli_value(a, sizeof a, mx);
    printf("  max finite      %s (0x%02x)\n", a, p.max_code);
    printf("  min normal      %.10g = 2^%d (0x%02x)\n", min_normal, ilogb(min_normal), fmt == FP8_E8M0 ? 0 : 1u << p.mbits);
    if (min_sub > 0) printf("  min subnormal   %.10g = 2^%d (0x01)\n", min_sub, ilogb(min_sub));
    else printf("  min subnormal   none (no subnormals)\n");
    printf("  finite values   %d of %d codes%s\n", finite, n,
           fmt == FP8_E8M0 ? " (powers of two 2^-127 .. 2^127; no zero)" : p.neg_zero ? " (+0 and -0 both counted)" : " (one zero: no -0)");
    printf("  ulp at 1        %g = 2^%d (the relative step shrinks from 2^%d to 2^%d across a binade)\n",
           ldexp(1, -p.mbits), -p.mbits, -p.mbits, -p.mbits - 1);
    double lo = min_sub > 0 ? min_sub : min_normal;
    printf("  dynamic range   %.2f binades (log2(max / min %s)), %.2f normal (log2(max / min normal))\n",
           log2(mx / lo), min_sub > 0 ? "subnormal" : "value", log2(mx / min_normal));
    printf("  inf             %s\n", inf ? (fmt == FP8_E5M2 ? "0x7c, 0xfc" : "?") : "none");
    printf("  NaN             %s (%d code%s)\n",
           fmt == FP8_E4M3 ? "0x7f, 0xff (S.1111.111)" : fmt == FP8_E5M2 ? "0x7d-0x7f, 0xfd-0xff (S.11111.{01,10,11})"
           : fmt == FP8_E8M0 ? "0xff" : fmt == FP4_E2M1 ? "none (ml_dtypes casts NaN to 0x8 = -0)" : "0x80 (the code -0 would have)", nan, nan == 1 ? "" : "s");
    printf("  overflow        satfinite: %smax; nosat: %s\n", p.sign_bit ? "±" : "",
           fmt == FP8_E5M2 ? "±inf" : fmt == FP4_E2M1 ? "±max too (no inf or NaN to go to)" : "NaN");
}

static void fp8_cli_usage(FILE *fp) {
    fprintf(fp,
            "usage: llama_fp8 fp8 [--format F[,F...]] [--sat satfinite|nosat] VALUE...\n"
            "       llama_fp8 fp8 --table F\n"
            "       llama_fp8 fp8 --info F\n"
            "Encodes each VALUE (read as a double, rounded to float32 like a tensor element, then\n"
            "converted with fp8_from_float: round to nearest even) and prints the code, its bits, the\n"
            "decoded value, the errors and what happened (saturated, overflow, subnormal, flushed).\n"
            "  --format F   e4m3, e5m2, e4m3fnuz, e5m2fnuz, e8m0, e2m1, or a comma list (default: all)\n"
            "  --sat S      satfinite (default; CUDA __NV_SATFINITE: overflow -> ±max) or nosat\n"
            "               (CUDA __NV_NOSAT, torch/ml_dtypes casts: overflow -> NaN, or inf in e5m2)\n"
            "  --table F    all codes of format F and their values\n"
            "  --info F     bias, max, min normal, min subnormal, number of finite values, ulp at 1, range\n");
}

static int cmd_fp8(int argc, char **argv) {
    fp8_format fmts[FP8_NUM_FORMATS] = {FP8_E4M3, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_E8M0, FP4_E2M1};
    int nfmt = FP8_NUM_FORMATS, nvalues = 0;
    fp8_saturation sat = FP8_SATFINITE;
    const char *table = NULL, *info = NULL;
    double *values = xmalloc(sizeof(double) * (size_t)(argc > 0 ? argc : 1));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fp8_cli_usage(stdout); free(values); return 0; }
        if (a[0] == '-' && a[1] == '-') {
            if (i + 1 >= argc) fatal("fp8: option %s needs a value (llama_fp8 fp8 --help)", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--format")) {
                char buf[256];
                snprintf(buf, sizeof buf, "%s", v);
                nfmt = 0;
                for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                    if (nfmt == FP8_NUM_FORMATS) fatal("fp8: --format: too many formats in '%s'", v);
                    fmts[nfmt++] = fp8_cli_format(tok);
                }
                if (nfmt == 0) fatal("fp8: --format: no format given");
            } else if (!strcmp(a, "--sat")) {
                if (!strcmp(v, "satfinite")) sat = FP8_SATFINITE;
                else if (!strcmp(v, "nosat")) sat = FP8_NOSAT;
                else fatal("fp8: --sat: expected satfinite or nosat, got '%s'", v);
            } else if (!strcmp(a, "--table")) table = v;
            else if (!strcmp(a, "--info")) info = v;
            else fatal("fp8: unknown option '%s' (llama_fp8 fp8 --help)", a);
        } else {
            char *end;
            errno = 0;
            double x = strtod(a, &end);
            if (end == a || *end) fatal("fp8: '%s' is not a number", a);
            values[nvalues++] = x;
        }
    }
    if (table) fp8_cli_table(fp8_cli_format(table));
    if (info) fp8_cli_info(fp8_cli_format(info));
    if (!table && !info && nvalues == 0) { fp8_cli_usage(stderr); free(values); return 2; }
    if (nvalues) printf("rounding: nearest even; saturation: %s\n", sat == FP8_SATFINITE ? "satfinite" : "nosat");
    for (int i = 0; i < nvalues; i++) {
        char buf[32];
        fp8_cli_value(buf, sizeof buf, values[i]);
        printf("\n%s", buf);
        fp8_cli_encode(values[i], fmts, nfmt, sat);
    }
    free(values);
    return 0;
}

/* `llama_fp8 bench gemm`: GFLOP/s of emu's kernels on the Llama-3.1-8B GEMM shapes, next to this CPU's
 * peak measured in the same run by register-only micro-kernels (emu_peak_gflops). Modes:
 *   bf16      emu_gemm_f32, bf16-valued A x BF16 weights (the GEMM of the bf16 forward pass: the fmaf chain,
 *             on VDPBF16PS where the CPU has it)
 *   exact|fp32|fast|hopper|ada|cublaslt   emu_gemm, W8A8 E4M3: per-token A scales, per-channel B
 *             scales, bf16 output, with that accumulation model.
 * Inputs are random (finite FP8 codes, bf16 values in [-1,1]); the time of a call includes decoding,
 * packing and the epilogue. The tensor-core models are scalar C (reference, not speed): ask for them
 * with a small M. */
static double bench_now(void) { return omp_get_wtime(); }

/* `llama_fp8 bench e2e`: whole forward passes per scheme, as ppl runs them (chunks of --ctx tokens, the
 * lm_head on the second half of each chunk, llama.cpp's protocol) without the statistics, on random token
 * ids (the time does not depend on them). Per scheme: wall time (preparing the weights included), tok/s,
 * and the share of the arithmetic floor: each GEMM's flops at the peak of the unit its kernel runs on,
 * measured in the same run — VDPBF16PS for bf16 weights × bf16 activations and for --accum fast, double
 * FMA for exact INT8 and for exact E4M3 (VDPBF16PS where the split path runs: emu/gemm_fp8.c), fp32 FMA otherwise — plus attention's separate multiplies and adds at half the
 * fp32 FMA rate. */
static double bench_unit_peak(const Scheme *q, int quantized, const double pk[3]) {
    double pairs = pk[1] > pk[0] ? pk[1] : pk[0];   /* bf16 products: the faster of VDPBF16PS and fp32 FMA (emu_use_bf16_dot) */
    if (!scheme_quantizes(q) || !quantized) return q->kind == SCHEME_FP32 ? pk[0] : pairs;
    if (q->kind == SCHEME_INT8) return pk[2];                                                  /* exact, double FMA */
    if (q->kind != SCHEME_FP8_W && q->accum == EMU_ACC_EXACT && q->afmt == EMU_E4M3 && q->wfmt == EMU_E4M3)
        return emu_have_avx512bf16() && emu_use_bf16_dot() ? pairs : pk[2];   /* the split path's big products: VDPBF16PS */
    if (q->kind != SCHEME_FP8_W && q->accum == EMU_ACC_FAST) return pairs;
    return pk[0];   /* weight-only and --accum fp32: fp32 FMA (the tensor-core models are scalar C: no floor) */
}
static int bench_e2e(int argc, char **argv) {
    const char *usage_s = "usage: llama_fp8 bench e2e -m MODEL [--ctx N] [--chunks N] [--schemes LIST]\n"
        "  --schemes  comma-separated SCHEME or SCHEME:ACCUM, default bf16,w8a8:fast,w8a8,fp32\n"
        "  Random token ids, ppl's chunks (lm_head on the second half). floor = each GEMM's flops at the peak, measured in\n"
        "  this run, of the unit its kernel uses (bf16 x bf16 and --accum fast: the faster of VDPBF16PS and fp32 FMA, the\n"
        "  one they run on; fp64 FMA: exact INT8, and exact E4M3 where VDPBF16PS is not\n"
        "  the faster unit (else exact E4M3 runs most products there and its floor is VDPBF16PS's);\n"
        "  fp32 FMA: the rest), attention (multiplies and adds apart) at half the fp32 FMA peak; % floor = floor / time.\n"
        "  prep s: the scheme's own FP8 / INT8 weights made before the clock starts (ppl makes them in its first chunk;\n"
        "  each scheme starts with none), '-' where it multiplies by the stored weights.";
    const char *model = NULL, *list = "bf16,w8a8:fast,w8a8,fp32";
    int ctx = 512, chunks = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { printf("%s\n", usage_s); return 0; }
        if (i + 1 >= argc) fatal("bench e2e: option %s needs a value (or is unknown)\n%s", a, usage_s);
        if (!strcmp(a, "-m")) model = argv[++i];
        else if (!strcmp(a, "--ctx")) ctx = (int)parse_long_arg("--ctx", argv[++i], 2, 1 << 20);
        else if (!strcmp(a, "--chunks")) chunks = (int)parse_long_arg("--chunks", argv[++i], 1, 100000);
        else if (!strcmp(a, "--schemes")) list = argv[++i];
        else fatal("bench e2e: unknown option '%s'\n%s", a, usage_s);
    }
    if (!model) fatal("bench e2e: -m MODEL is required\n%s", usage_s);
    enum { MAXS = 16 };
    Scheme qs[MAXS];
    char acc_names[MAXS][16];
    int ns = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        if (ns == MAXS) fatal("bench e2e: at most %d schemes", MAXS);
        SchemeOptions so = {0};
        char *colon = strchr(tok, ':');
        if (colon) { *colon = 0; snprintf(acc_names[ns], sizeof acc_names[ns], "%s", colon + 1); so.accum = acc_names[ns]; }
        qs[ns++] = scheme_make(tok, &so);
    }
    Model *m = model_load(model);
    const Config *c = &m->c;
    if (ctx > c->max_seq_len) fatal("bench e2e: --ctx %d exceeds the model's context %d", ctx, c->max_seq_len);
    int first = ctx / 2, *ids = xmalloc((size_t)ctx * chunks * sizeof(int));
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)ctx * chunks; i++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        ids[i] = i % ctx == 0 ? c->bos_id : (int)(r % (uint64_t)c->vocab_size);
    }
    /* the peaks: measured before and after the runs, the better of the two (the machine may be busy at one of them) */
    double pk[3] = {emu_peak_gflops(0), emu_peak_gflops(1), emu_peak_gflops(2)};   /* fp32 FMA, VDPBF16PS, fp64 FMA */
    /* flops of one chunk: the Linears on ctx rows, the lm_head on ctx - first, attention's QK and PV */
    double qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
    double lin = 2.0 * ctx * c->n_layers * ((double)c->dim * (qd + 2 * kvd) + qd * c->dim + 3.0 * c->dim * c->hidden_dim);
    double head = 2.0 * (ctx - first) * (double)c->vocab_size * c->dim;
    double att = 4.0 * c->n_layers * qd * ((double)ctx * (ctx + 1) / 2);
    double secs[MAXS], prep[MAXS];
    for (int i = 0; i < ns; i++) {
        const Model *v = model_for_scheme(m, &qs[i]);
        prepared_release();   /* each scheme makes its own weights, timed apart from the forward passes */
        prep[i] = -1;
        if (scheme_quantizes(&qs[i])) {
            double t = now_seconds();
            for (int l = 0; l < c->n_layers; l++) {
                const Layer *L = &v->layers[l];
                const Tensor *w[7] = LAYER_LINEARS(L);
                for (int j = 0; j < 7; j++) scheme_weight(&qs[i], w[j]);
            }
            if (qs[i].quant_lm_head) scheme_weight(&qs[i], &v->lm_head);
            prep[i] = now_seconds() - t;
        }
        RunState s;
        runstate_init(&s, c, ctx, ctx);
        double t0 = now_seconds();
        for (int ch = 0; ch < chunks; ch++) forward(v, &s, &qs[i], ids + (size_t)ch * ctx, ctx, 0, first);
        secs[i] = now_seconds() - t0;
        runstate_free(&s);
        fprintf(stderr, "bench e2e: %s %.2f s\n", qs[i].name, secs[i]);
    }
    for (int k = 0; k < 3; k++) { double p = emu_peak_gflops(k); if (p > pk[k]) pk[k] = p; }
    model_describe(m, stdout);
    printf("# bench e2e: %d chunk%s of %d random tokens (lm_head on the last %d of each), %d OpenMP threads\n",
           chunks, chunks > 1 ? "s" : "", ctx, ctx - first, omp_get_max_threads());
    printf("# peaks (better of before and after the runs): fp32 FMA %.1f, VDPBF16PS %.1f, fp64 FMA %.1f GFLOP/s\n", pk[0], pk[1], pk[2]);
    printf("# GFLOP per chunk: Linears %.4f, lm_head %.4f, attention %.4f; floor = each at its unit's peak (see `bench e2e --help`)\n",
           lin / 1e9, head / 1e9, att / 1e9);
    printf("%-26s %9s %9s %9s %9s %9s %8s\n", "scheme", "prep s", "s", "tok/s", "GFLOP/s", "floor s", "% floor");
    for (int i = 0; i < ns; i++) {
        const Scheme *q = &qs[i];
        double pl = bench_unit_peak(q, 1, pk), ph = bench_unit_peak(q, q->quant_lm_head, pk), t = secs[i];
        if (!(pl > 0 && ph > 0 && pk[0] > 0)) fatal("bench e2e: no peak measured for this CPU (needs AVX-512%s)", pl > 0 ? "" : " and AVX512-BF16");
        double floor_s = chunks * (lin / (pl * 1e9) + head / (ph * 1e9) + att / (pk[0] * 0.5e9));
        char pb[32];
        if (prep[i] < 0) snprintf(pb, sizeof pb, "-"); else snprintf(pb, sizeof pb, "%.2f", prep[i]);
        printf("%-26s %9s %9.2f %9.1f %9.1f %9.2f %7.1f%%\n", q->name, pb, t, (double)ctx * chunks / t, chunks * (lin + head + att) / t / 1e9,
               floor_s, 100 * floor_s / t);
    }
    free(ids);
    model_free(m);
    return 0;
}

/* rows x K E4M3 codes: each row near-Gaussian values (a sum of 8 uniform bytes, scaled to variance 1)
 * quantized with its own scale (absmax / 448: emu_quant_channel); tmp holds K floats */
static void bench_codes(uint8_t *q, float *scale, int rows, int K, uint64_t *rs, float *tmp) {
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < K; k++) {
            uint64_t x = rng_next(rs), s = 0;
            for (int b = 0; b < 8; b++) s += (x >> (8 * b)) & 0xFF;
            tmp[k] = (float)(((double)s - 1020.0) / 209.0);
        }
        emu_quant_channel(q + (size_t)r * K, K, scale + r, tmp, K, 1, K, EMU_E4M3);
    }
}

static int cmd_bench(int argc, char **argv) {
    const char *usage_s = "usage: llama_fp8 bench gemm [--m LIST] [--modes LIST] [--shapes NxK,...] [--reps R] [--full]\n"
        "       llama_fp8 bench e2e -m MODEL [--ctx N] [--chunks N] [--schemes LIST]   (whole forward passes per scheme)\n"
        "  --m        rows of A (tokens), default 256,1; --full: 2048,256,1\n"
        "  --modes    bf16,exact,fp32,fast,hopper,ada,cublaslt (default bf16,fast,fp32,exact)\n"
        "  --shapes   N x K of the weight, default the Llama-3.1-8B set 6144x4096,4096x4096,14336x4096,4096x14336,128256x4096\n"
        "  --reps     timed repetitions after one warm-up, best is reported (default 2)\n"
        "  --peak     row (measure the peak before and after every row, default) or once";
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) { puts(usage_s); return 0; }
    if (argc >= 2 && !strcmp(argv[1], "e2e")) return bench_e2e(argc, argv);
    if (argc < 2 || strcmp(argv[1], "gemm")) fatal("%s", usage_s);
    const char *ms = "256,1", *modes = "bf16,fast,fp32,exact";
    const char *shapes = "6144x4096,4096x4096,14336x4096,4096x14336,128256x4096";
    int reps = 2, peak_each_row = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) ms = "2048,256,1";
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { puts(usage_s); return 0; }
        else if (i + 1 >= argc) fatal("bench gemm: option %s needs a value (or is unknown)\n%s", argv[i], usage_s);
        else if (!strcmp(argv[i], "--m")) ms = argv[++i];
        else if (!strcmp(argv[i], "--modes")) modes = argv[++i];
        else if (!strcmp(argv[i], "--shapes")) shapes = argv[++i];
        else if (!strcmp(argv[i], "--reps")) reps = (int)parse_long_arg("--reps", argv[++i], 1, 1000);
        else if (!strcmp(argv[i], "--peak")) {
            i++;
            if (strcmp(argv[i], "row") && strcmp(argv[i], "once")) fatal("bench gemm: --peak takes row or once, not '%s'", argv[i]);
            peak_each_row = !strcmp(argv[i], "row");
        }
        else fatal("bench gemm: unknown option %s\n%s", argv[i], usage_s);
    }
    int Ms[16], nm = 0, NK[16][2], ns = 0, md[16], nmd = 0;
    char buf[1024], *tok, *save;
    snprintf(buf, sizeof buf, "%s", ms);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (nm == 16) fatal("bench gemm: at most 16 values of --m");
        Ms[nm++] = (int)parse_long_arg("--m", tok, 1, 1 << 16);
    }
    snprintf(buf, sizeof buf, "%s", shapes);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long n, k;
        char x;
        if (ns == 16 || sscanf(tok, "%ld%c%ld", &n, &x, &k) != 3 || x != 'x' || n < 1 || k < 1 || n > 1 << 20 || k > 1 << 20)
            fatal("bench gemm: bad shape '%s' (expected NxK, at most 16 shapes)", tok);
        NK[ns][0] = (int)n; NK[ns][1] = (int)k; ns++;
    }
    snprintf(buf, sizeof buf, "%s", modes);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int a = strcmp(tok, "bf16") ? emu_accum_from_name(tok) : EMU_ACC_COUNT;
        if (a < 0 || nmd == 16) fatal("bench gemm: unknown mode '%s' (bf16, exact, fp32, fast, hopper, ada, cublaslt)", tok);
        md[nmd++] = a;
    }
    char cpu[256] = "unknown CPU";
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (fp) {
        char line[512];
        while (fgets(line, sizeof line, fp))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(fp);
    }
    /* The peak is measured right before and right after every row: on a machine shared with other work
     * the available peak changes by the second, so each row is compared with the better of the two
     * measurements beside it (the least disturbed one); the best over the run is printed too. */
    double pk32 = 0, pk16 = 0, prev32 = emu_peak_gflops(0), prev16 = emu_peak_gflops(1);
    struct { int M, N, K, mode; double ms, gf, p32, p16; } *row = xmalloc(sizeof(*row) * (size_t)ns * nm * nmd);
    int nrow = 0;
    uint64_t rs = 0x853C49E6748FEA9Bull;
    pk32 = prev32; pk16 = prev16;
    for (int si = 0; si < ns; si++) {
        int N = NK[si][0], K = NK[si][1], Mmax = 0;
        for (int i = 0; i < nm; i++) if (Ms[i] > Mmax) Mmax = Ms[i];
        uint8_t *A8 = xmalloc((size_t)Mmax * K), *B8 = xmalloc((size_t)N * K);
        uint16_t *Bh = NULL;
        float *Af = xmalloc(sizeof(float) * Mmax * K), *sa = xmalloc(sizeof(float) * Mmax), *sb = xmalloc(sizeof(float) * N);
        float *D = xmalloc(sizeof(float) * Mmax * N);
        /* the codes: FP8 of near-Gaussian values with a scale per row (absmax -> 448), as activations and weights
         * are: the exact kernel's speed depends on how many codes are small (emu/gemm_fp8.c, "exact, split") */
        bench_codes(A8, sa, Mmax, K, &rs, Af);
        bench_codes(B8, sb, N, K, &rs, Af);
        for (size_t i = 0; i < (size_t)Mmax * K; i++)
            Af[i] = bf16_to_float(bf16_from_float(emu_fp8_decode(A8[i], EMU_E4M3) / 448.0f));   /* bf16-valued, as in the forward pass */
        for (int mi = 0; mi < nm; mi++) {
            int M = Ms[mi];
            for (int di = 0; di < nmd; di++) {
                if (md[di] == EMU_ACC_COUNT && !Bh) {
                    Bh = xmalloc(sizeof(uint16_t) * N * K);
                    for (size_t i = 0; i < (size_t)N * K; i++) {
                        float f = emu_fp8_decode(B8[i], EMU_E4M3) / 448.0f;
                        uint32_t u; memcpy(&u, &f, 4); Bh[i] = (uint16_t)(u >> 16);   /* exact: FP8/448 fits bf16 */
                    }
                }
                emu_gemm_desc g = {M, N, K, EMU_E4M3, A8, K, EMU_E4M3, B8, K, EMU_SCALE_ROW, sa, EMU_SCALE_ROW, sb, EMU_BF16, D, N,
                                   md[di] == EMU_ACC_COUNT ? EMU_ACC_FP32 : (emu_accum)md[di]};
                double best = 1e30;
                for (int r = 0; r <= reps; r++) {
                    double t0 = bench_now();
                    if (md[di] == EMU_ACC_COUNT) emu_gemm_f32(M, N, K, Af, K, Bh, EMU_BF16, K, D, N);
                    else emu_gemm(&g);
                    double t = bench_now() - t0;
                    if (r > 0 && t < best) best = t;      /* r = 0 is the warm-up */
                }
                row[nrow].M = M; row[nrow].N = N; row[nrow].K = K; row[nrow].mode = md[di];
                row[nrow].ms = best * 1e3; row[nrow].gf = 2.0 * M * N * K / best / 1e9;
                double p32 = peak_each_row ? emu_peak_gflops(0) : prev32, p16 = peak_each_row ? emu_peak_gflops(1) : prev16;
                row[nrow].p32 = p32 > prev32 ? p32 : prev32; row[nrow].p16 = p16 > prev16 ? p16 : prev16;
                prev32 = p32; prev16 = p16;
                if (p32 > pk32) pk32 = p32;
                if (p16 > pk16) pk16 = p16;
                nrow++;
                progress("bench gemm: %d/%d", nrow, ns * nm * nmd);
            }
        }
        free(A8); free(B8); free(Bh); free(Af); free(sa); free(sb); free(D);
    }
    progress_done();
    printf("# bench gemm on %s, %d OpenMP threads, AVX-512 %s, AVX512-BF16 %s\n", cpu, omp_get_max_threads(),
           emu_have_avx512() ? "yes" : "no", emu_have_avx512bf16() ? "yes" : "no");
    printf("# best peak measured in this run: fp32 FMA %.1f GFLOP/s, bf16 dot (VDPBF16PS) %.1f GFLOP/s\n", pk32, pk16);
    printf("# pk16/pk32: %s; %% columns are relative to it\n",
           peak_each_row ? "the peak measured beside the row (better of before/after)" : "the peak measured once, at the start");
    printf("# modes: bf16 = emu_gemm_f32, bf16-valued A x BF16 weights (the bf16 forward pass); others = emu_gemm W8A8 E4M3 (per-token x per-channel scales, bf16 out)\n");
    printf("%6s %7s %6s  %-9s %10s %9s %7s %7s %7s %7s\n", "M", "N", "K", "mode", "ms", "GFLOP/s", "pk16", "%pk16", "pk32", "%pk32");
    for (int i = 0; i < nrow; i++)
        printf("%6d %7d %6d  %-9s %10.2f %9.1f %7.1f %6.1f%% %7.1f %6.1f%%\n", row[i].M, row[i].N, row[i].K,
               row[i].mode == EMU_ACC_COUNT ? "bf16" : emu_accum_names[row[i].mode], row[i].ms, row[i].gf,
               row[i].p16, row[i].p16 > 0 ? 100 * row[i].gf / row[i].p16 : 0.0,
               row[i].p32, row[i].p32 > 0 ? 100 * row[i].gf / row[i].p32 : 0.0);
    free(row);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* 7. main                                                                                    */
/* ------------------------------------------------------------------------------------------ */
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"fp8", cmd_fp8, "encode/decode values, print format tables and facts (teaching)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text file"},
    {"ppl", cmd_ppl, "perplexity of a model on a text file"},
    {"dump", cmd_dump, "write logits and per-layer residuals as .npy files"},
    {"cmp", cmd_cmp, "compare two .npy arrays: bit-identical share, ulp histogram, worst elements (kernel checking)"},
    {"quant", cmd_quant, "quantize a .npy matrix as the schemes do: FP8 / INT8 codes and scales (kernel checking)"},
    {"gemm", cmd_gemm, "scaled FP8 / INT8 GEMM of .npy codes with any accumulation model; --explain names your kernel's"},
    {"generate", cmd_generate, "greedy / sampled text generation"},
    {"export", cmd_export, "write a compressed-tensors FP8 checkpoint (what llm-compressor writes, vLLM loads)"},
    {"calibrate", cmd_calibrate, "static activation and KV scales from calibration text (scales.json)"},
    {"smooth", cmd_smooth, "SmoothQuant a model as llm-compressor does (bf16 checkpoint; then export -q int8)"},
    {"gptq", cmd_gptq, "GPTQ W4A16 (INT4 g128) as llm-compressor's GPTQModifier: a pack-quantized checkpoint"},
    {"stats", cmd_stats, "outlier report: per-layer absmax, saturation / flush-to-zero, quantization SNR (+ SVG)"},
    {"synth", cmd_synth, "write a random checkpoint with real Llama shapes (llama3.1-8b, ...) for benchmarks"},
    {"verify", cmd_verify, "run the same tokens on GPU and CPU, compare per layer and op (CUDA builds)"},
    {"bench", cmd_bench, "benchmarks (bench gemm, bench e2e)"},
};

static void usage(FILE *fp) {
    fprintf(fp, "usage: llama_fp8 COMMAND [options]   (llama_fp8 COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].help);
}

#if !defined(TESTING) && !defined(LLAMA_FP8_NO_MAIN)
int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
#ifdef __GLIBC__
    /* The forward pass frees and reallocates the same buffers of up to tens of MB every layer; glibc would
     * mmap and unmap each (and the kernel zero every page again). Kept in the heap instead (up to 32 MB,
     * glibc's limit), and the heap's top not given back. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "llama_fp8: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* A1. Appendix: JSON, a small strict parser (config.json, safetensors headers, tokenizer.json) */
/* ------------------------------------------------------------------------------------------ */
static int json_fail(json *j, size_t pos, const char *what) {
    if (!j->err[0]) snprintf(j->err, sizeof j->err, "%s at byte %zu", what, pos);
    return -1;
}
static void json_ws(const json *j, size_t *p) {
    while (*p < j->len && (j->src[*p] == ' ' || j->src[*p] == '\t' || j->src[*p] == '\n' || j->src[*p] == '\r')) (*p)++;
}
static int json_new(json *j, jtype type, size_t start) {
    if (j->ntok == j->cap) {
        if (j->cap > INT_MAX / 2) return -1;
        j->cap = j->cap ? j->cap * 2 : 256;
        j->t = xrealloc(j->t, (size_t)j->cap * sizeof(jtok));
    }
    jtok *t = &j->t[j->ntok];
    t->type = type; t->start = (int)start; t->end = (int)start; t->n = 0; t->next = j->ntok + 1;
    return j->ntok++;
}
static int json_value(json *j, size_t *p, int depth);
static int json_string(json *j, size_t *p) { /* *p at the opening quote */
    size_t s = ++(*p);
    while (*p < j->len) {
        unsigned char c = (unsigned char)j->src[*p];
        if (c == '"') {
            int k = json_new(j, J_STR, s);
            j->t[k].end = (int)*p;
            (*p)++;
            return k;
        }
        if (c < 0x20) return json_fail(j, *p, "control character in string");
        if (c == '\\') {
            (*p)++;
            if (*p >= j->len) break;
            c = (unsigned char)j->src[*p];
            if (c == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (*p + i >= j->len || !isxdigit((unsigned char)j->src[*p + i])) return json_fail(j, *p, "bad \\u escape");
                *p += 4;
            } else if (!strchr("\"\\/bfnrt", c)) return json_fail(j, *p, "bad escape");
        }
        (*p)++;
    }
    return json_fail(j, s, "unterminated string");
}
static int json_value(json *j, size_t *p, int depth) {
    if (depth > JSON_MAX_DEPTH) return json_fail(j, *p, "nesting too deep");
    json_ws(j, p);
    if (*p >= j->len) return json_fail(j, *p, "unexpected end of input");
    char c = j->src[*p];
    if (c == '{' || c == '[') {
        int k = json_new(j, c == '{' ? J_OBJ : J_ARR, *p);
        if (k < 0) return json_fail(j, *p, "too many tokens");
        char close = c == '{' ? '}' : ']';
        (*p)++;
        json_ws(j, p);
        if (*p < j->len && j->src[*p] == close) {
            (*p)++;
        } else {
            for (;;) {
                if (c == '{') {
                    json_ws(j, p);
                    if (*p >= j->len || j->src[*p] != '"') return json_fail(j, *p, "expected a key string");
                    if (json_string(j, p) < 0) return -1;
                    json_ws(j, p);
                    if (*p >= j->len || j->src[*p] != ':') return json_fail(j, *p, "expected ':'");
                    (*p)++;
                }
                if (json_value(j, p, depth + 1) < 0) return -1;
                if (j->t[k].n == INT_MAX) return json_fail(j, *p, "too many members");
                j->t[k].n++;
                json_ws(j, p);
                if (*p < j->len && j->src[*p] == ',') { (*p)++; continue; }
                if (*p < j->len && j->src[*p] == close) { (*p)++; break; }
                return json_fail(j, *p, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
        j->t[k].end = (int)*p;
        j->t[k].next = j->ntok;
        return k;
    }
    if (c == '"') return json_string(j, p);
    size_t s = *p;
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (j->src[*p] == '-') (*p)++;
        if (*p >= j->len || !isdigit((unsigned char)j->src[*p])) return json_fail(j, s, "bad number");
        if (j->src[*p] == '0') (*p)++;
        else while (*p < j->len && isdigit((unsigned char)j->src[*p])) (*p)++;
        if (*p < j->len && j->src[*p] == '.') {
            (*p)++;
            if (*p >= j->len || !isdigit((unsigned char)j->src[*p])) return json_fail(j, s, "bad number");
            while (*p < j->len && isdigit((unsigned char)j->src[*p])) (*p)++;
        }
        if (*p < j->len && (j->src[*p] == 'e' || j->src[*p] == 'E')) {
            (*p)++;
            if (*p < j->len && (j->src[*p] == '+' || j->src[*p] == '-')) (*p)++;
            if (*p >= j->len || !isdigit((unsigned char)j->src[*p])) return json_fail(j, s, "bad number");
            while (*p < j->len && isdigit((unsigned char)j->src[*p])) (*p)++;
        }
        int k = json_new(j, J_NUM, s);
        j->t[k].end = (int)*p;
        return k;
    }
    static const struct { const char *word; jtype type; } lit[] = {{"null", J_NULL}, {"false", J_FALSE}, {"true", J_TRUE}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lit[i].word);
        if (j->len - *p >= n && memcmp(j->src + *p, lit[i].word, n) == 0) {
            *p += n;
            int k = json_new(j, lit[i].type, s);
            j->t[k].end = (int)*p;
            return k;
        }
    }
    return json_fail(j, s, "unexpected character");
}
/* Parses src[0..len). Returns 0, or -1 with j->err set. The root is token 0. */
static int json_parse(json *j, const char *src, size_t len) {
    memset(j, 0, sizeof *j);
    j->src = src; j->len = len;
    if (len > (size_t)INT_MAX - 1) return json_fail(j, 0, "document larger than 2 GiB");
    size_t p = 0;
    if (json_value(j, &p, 0) < 0) return -1;
    json_ws(j, &p);
    if (p != len) return json_fail(j, p, "trailing characters after the JSON value");
    return 0;
}
static void json_free(json *j) { free(j->t); j->t = NULL; j->ntok = j->cap = 0; }

/* The value of key in object token obj, or -1. (Keys compared as raw source bytes.) */
static int json_get(const json *j, int obj, const char *key) {
    if (obj < 0 || j->t[obj].type != J_OBJ) return -1;
    size_t klen = strlen(key);
    int k = obj + 1;
    for (int i = 0; i < j->t[obj].n; i++) {
        const jtok *kt = &j->t[k];
        int v = k + 1;
        if ((size_t)(kt->end - kt->start) == klen && memcmp(j->src + kt->start, key, klen) == 0) return v;
        k = j->t[v].next;
    }
    return -1;
}
/* Element i of array token arr, or -1. O(i): walk with json_next() for loops. */
static int json_at(const json *j, int arr, int i) {
    if (arr < 0 || j->t[arr].type != J_ARR || i < 0 || i >= j->t[arr].n) return -1;
    int k = arr + 1;
    while (i--) k = j->t[k].next;
    return k;
}
static int json_next(const json *j, int k) { return j->t[k].next; }

/* Number token → double; returns 0 or -1 if the token is not a number. */
static int json_number(const json *j, int k, double *out) {
    if (k < 0 || j->t[k].type != J_NUM) return -1;
    char buf[64];
    int n = j->t[k].end - j->t[k].start;
    if (n <= 0 || n >= (int)sizeof buf) return -1;
    memcpy(buf, j->src + j->t[k].start, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return 0;
}
/* Integer-valued number token → long long in [lo, hi]; returns 0 or -1. */
static int json_integer(const json *j, int k, long long lo, long long hi, long long *out) {
    double d;
    if (json_number(j, k, &d) != 0 || d != floor(d) || d < (double)lo || d > (double)hi) return -1;
    *out = (long long)d;
    return 0;
}
static void utf8_put(char **o, uint32_t cp) {
    unsigned char *u = (unsigned char *)*o;
    if (cp < 0x80) { *u++ = cp; }
    else if (cp < 0x800) { *u++ = 0xC0 | (cp >> 6); *u++ = 0x80 | (cp & 63); }
    else if (cp < 0x10000) { *u++ = 0xE0 | (cp >> 12); *u++ = 0x80 | ((cp >> 6) & 63); *u++ = 0x80 | (cp & 63); }
    else { *u++ = 0xF0 | (cp >> 18); *u++ = 0x80 | ((cp >> 12) & 63); *u++ = 0x80 | ((cp >> 6) & 63); *u++ = 0x80 | (cp & 63); }
    *o = (char *)u;
}
/* String token → unescaped UTF-8 in a new heap buffer (NUL-terminated; *len_out = bytes, may
 * contain NUL from \u0000). NULL if not a string. Lone surrogates become U+FFFD. */
static char *json_string_dup(const json *j, int k, size_t *len_out) {
    if (k < 0 || j->t[k].type != J_STR) return NULL;
    const char *s = j->src + j->t[k].start, *e = j->src + j->t[k].end;
    char *out = xmalloc((size_t)(e - s) + 1), *o = out;
    while (s < e) {
        if (*s != '\\') { *o++ = *s++; continue; }
        s++;
        char c = *s++;
        switch (c) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp = (uint32_t)strtoul((char[5]){s[0], s[1], s[2], s[3], 0}, NULL, 16);
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && e - s >= 6 && s[0] == '\\' && s[1] == 'u') {
                uint32_t lo = (uint32_t)strtoul((char[5]){s[2], s[3], s[4], s[5], 0}, NULL, 16);
                if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); s += 6; }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            utf8_put(&o, cp);
            break;
        }
        default: *o++ = c; /* \" \\ \/ */
        }
    }
    *o = 0;
    if (len_out) *len_out = (size_t)(o - out);
    return out;
}
/* Compares a string token with a C string (after unescaping). */
static int json_streq(const json *j, int k, const char *s) {
    size_t n;
    char *v = json_string_dup(j, k, &n);
    int eq = v && n == strlen(s) && memcmp(v, s, n) == 0;
    free(v);
    return eq;
}

/* ------------------------------------------------------------------------------------------ */
/* A2. Appendix: loaders (Hugging Face safetensors, llama2.c .bin, the built-in synthetic model), safetensors writer */
/* ------------------------------------------------------------------------------------------ */
/* ---- Hugging Face config.json ---- */
static int cfg_int(const json *j, int obj, const char *key, int dflt, int required, const char *path) {
    int k = json_get(j, obj, key);
    long long v;
    if (k < 0 || j->t[k].type == J_NULL) {
        if (required) fatal("%s: missing \"%s\"", path, key);
        return dflt;
    }
    if (json_integer(j, k, 1, INT_MAX / 4, &v) != 0) fatal("%s: \"%s\" must be a positive integer", path, key);
    return (int)v;
}
static double cfg_num(const json *j, int obj, const char *key, double dflt, const char *path) {
    int k = json_get(j, obj, key);
    double v;
    if (k < 0 || j->t[k].type == J_NULL) return dflt;
    if (json_number(j, k, &v) != 0 || !isfinite(v) || v <= 0) fatal("%s: \"%s\" must be a positive number", path, key);
    return v;
}
static int cfg_bool(const json *j, int obj, const char *key, int dflt, const char *path) {
    int k = json_get(j, obj, key);
    if (k < 0 || j->t[k].type == J_NULL) return dflt;
    if (j->t[k].type != J_TRUE && j->t[k].type != J_FALSE) fatal("%s: \"%s\" must be true or false", path, key);
    return j->t[k].type == J_TRUE;
}

static int json_list_has(const json *j, int arr, const char *s) {
    if (arr < 0 || j->t[arr].type != J_ARR) return 0;
    for (int i = 0, k = arr + 1; i < j->t[arr].n; i++, k = json_next(j, k)) if (json_streq(j, k, s)) return 1;
    return 0;
}
/* An "int-quantized" quantization_config (export_int8, llm-compressor's W8A8 INT8): one group of per-channel symmetric
 * 8-bit int weights with dynamic per-token symmetric 8-bit int input activations, lm_head ignored, no KV cache scheme.
 * Run as the int8 scheme on the stored codes and scales. */
static void ct_int8_quant_config(CkptQuant *cq, const json *j, int qc, const char *path) {
    int groups = json_get(j, qc, "config_groups");
    if (groups < 0 || j->t[groups].type != J_OBJ || j->t[groups].n != 1)
        fatal("%s: quantization_config.config_groups must hold exactly one group", path);
    int g = groups + 2, w = json_get(j, g, "weights"), a = json_get(j, g, "input_activations");
    long long bits;
    int wok = w >= 0 && j->t[w].type == J_OBJ && json_integer(j, json_get(j, w, "num_bits"), 8, 8, &bits) == 0 &&
              json_streq(j, json_get(j, w, "type"), "int") && json_streq(j, json_get(j, w, "strategy"), "channel") &&
              json_get(j, w, "symmetric") >= 0 && j->t[json_get(j, w, "symmetric")].type == J_TRUE;
    int aok = a >= 0 && j->t[a].type == J_OBJ && json_integer(j, json_get(j, a, "num_bits"), 8, 8, &bits) == 0 &&
              json_streq(j, json_get(j, a, "type"), "int") && json_streq(j, json_get(j, a, "strategy"), "token") &&
              json_get(j, a, "dynamic") >= 0 && j->t[json_get(j, a, "dynamic")].type == J_TRUE &&
              json_get(j, a, "symmetric") >= 0 && j->t[json_get(j, a, "symmetric")].type == J_TRUE;
    if (!wok || !aok)
        fatal("%s: an int-quantized checkpoint is run as W8A8 INT8 (llm-compressor's scheme): weights 8-bit int, symmetric, per channel; "
              "input_activations 8-bit int, symmetric, per token, dynamic (this one's %s differ)", path, !wok ? "weights" : "input_activations");
    if (!json_list_has(j, json_get(j, qc, "ignore"), "lm_head")) fatal("%s: a quantized lm_head in an int-quantized checkpoint is not supported", path);
    int kv = json_get(j, qc, "kv_cache_scheme");
    if (kv >= 0 && j->t[kv].type == J_OBJ) fatal("%s: kv_cache_scheme with int-quantized weights is not supported", path);
    cq->act = AMODE_INT8_TOKEN;
    cq->lm_head = 0; cq->kv = 0;
}
/* quantization_config of an FP8 checkpoint: compressed-tensors (llm-compressor) or AutoFP8 "fp8". */
static void load_quant_config(CkptQuant *cq, const json *j, int qc, const char *path) {
    memset(cq, 0, sizeof *cq);
    if (qc < 0 || j->t[qc].type == J_NULL) return;
    if (j->t[qc].type != J_OBJ) fatal("%s: quantization_config must be an object", path);
    int qm = json_get(j, qc, "quant_method");
    cq->present = 1;
    cq->lm_head = 0;
    if (json_streq(j, qm, "compressed-tensors")) {
        snprintf(cq->method, sizeof cq->method, "compressed-tensors");
        int f = json_get(j, qc, "format");
        static const char *const wff[N_WF] = {"pack-quantized", "nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp8-quantized"};
        for (int k = 0; k < N_WF; k++) if (f >= 0 && json_streq(j, f, wff[k])) cq->wf = 1 + k;
        if (f >= 0 && json_streq(j, f, "int-quantized")) { ct_int8_quant_config(cq, j, qc, path); return; }   /* W8A8 INT8 (export_int8) */
        if (f >= 0 && !cq->wf && !json_streq(j, f, "float-quantized") && !json_streq(j, f, "naive-quantized"))
            fatal("%s: unsupported compressed-tensors format (float-quantized, naive-quantized, int-quantized, pack-quantized, nvfp4-pack-quantized, mxfp4-pack-quantized, mxfp8-quantized)", path);
        int groups = json_get(j, qc, "config_groups");
        if (groups < 0 || j->t[groups].type != J_OBJ || j->t[groups].n != 1)
            fatal("%s: quantization_config.config_groups must hold exactly one group", path);
        int g = groups + 2; /* the first group's value */
        int w = json_get(j, g, "weights"), a = json_get(j, g, "input_activations");
        long long bits, gs;
        if (cq->wf) {   /* the presets of wf_info: weights as llm-compressor writes them, bf16 activations */
            wformat wf = (wformat)(cq->wf - 1);
            static const int nb[N_WF] = {4, 4, 4, 8};
            if (w < 0 || json_integer(j, json_get(j, w, "num_bits"), nb[wf], nb[wf], &bits) != 0 ||
                !json_streq(j, json_get(j, w, "type"), wf == WF_INT4 ? "int" : "float") ||
                json_integer(j, json_get(j, w, "group_size"), emu_wf_group(wf), emu_wf_group(wf), &gs) != 0 ||
                j->t[json_get(j, w, "symmetric")].type != J_TRUE)
                fatal("%s: a %s checkpoint must hold symmetric %d-bit %s weights in groups of %d (llm-compressor's preset)", path,
                      wff[wf], nb[wf], wf == WF_INT4 ? "int" : "float", emu_wf_group(wf));
            cq->act = AMODE_NONE;
            if (a >= 0 && j->t[a].type != J_NULL) {   /* W4A4 / W8A8 presets: NVFP4 (static global scale, local dynamic), MXFP4, MXFP8 */
                int dyn = json_get(j, a, "dynamic"), st = json_get(j, a, "strategy");
                int ok = wf != WF_INT4 && json_integer(j, json_get(j, a, "num_bits"), nb[wf], nb[wf], &bits) == 0 &&
                         json_streq(j, json_get(j, a, "type"), "float") && json_integer(j, json_get(j, a, "group_size"), emu_wf_group(wf), emu_wf_group(wf), &gs) == 0 &&
                         (wf == WF_NVFP4 ? json_streq(j, st, "tensor_group") && json_streq(j, dyn, "local")
                                         : json_streq(j, st, "group") && dyn >= 0 && j->t[dyn].type == J_TRUE);
                if (!ok) fatal("%s: %s weights with these input_activations are not supported (the NVFP4, MXFP4 and MXFP8 presets and the weight-only ones are)", path, wff[wf]);
                cq->act = wf == WF_NVFP4 ? AMODE_QDQ_NVFP4 : wf == WF_MXFP4 ? AMODE_QDQ_MXFP4 : AMODE_QDQ_MXFP8;
            }
            cq->lm_head = !json_list_has(j, json_get(j, qc, "ignore"), "lm_head");
            if (cq->lm_head) fatal("%s: a quantized lm_head in a %s checkpoint is not supported", path, wff[wf]);
            int kv = json_get(j, qc, "kv_cache_scheme");
            if (kv >= 0 && j->t[kv].type == J_OBJ) fatal("%s: kv_cache_scheme with %s weights is not supported", path, wff[wf]);
            return;
        }
        if (w < 0 || json_integer(j, json_get(j, w, "num_bits"), 8, 8, &bits) != 0 || !json_streq(j, json_get(j, w, "type"), "float"))
            fatal("%s: only 8-bit float weights are supported (weights.num_bits 8, type float)", path);
        if (a < 0 || j->t[a].type == J_NULL) cq->act = AMODE_NONE;
        else {
            int strat = json_get(j, a, "strategy"), dyn = json_get(j, a, "dynamic");
            if (json_streq(j, strat, "token")) cq->act = AMODE_TOKEN;
            else if (json_streq(j, strat, "tensor")) cq->act = dyn >= 0 && j->t[dyn].type == J_TRUE ? AMODE_TENSOR_DYNAMIC : AMODE_TENSOR_STATIC;
            else if (json_streq(j, strat, "group")) cq->act = AMODE_GROUP;
            else fatal("%s: unsupported input_activations.strategy (token, tensor or group)", path);
        }
        cq->lm_head = !json_list_has(j, json_get(j, qc, "ignore"), "lm_head");
        int kv = json_get(j, qc, "kv_cache_scheme");
        cq->kv = kv >= 0 && j->t[kv].type == J_OBJ;
    } else if (json_streq(j, qm, "fp8")) {
        snprintf(cq->method, sizeof cq->method, "fp8");
        int as = json_get(j, qc, "activation_scheme");
        cq->act = json_streq(j, as, "static") ? AMODE_TENSOR_STATIC : AMODE_TENSOR_DYNAMIC;
        int ig = json_get(j, qc, "ignored_layers");
        cq->lm_head = ig >= 0 && !json_list_has(j, ig, "lm_head");
    } else {
        fatal("%s: unsupported quantization_config.quant_method (compressed-tensors and fp8 are supported)", path);
    }
}

static void load_hf_config(Config *c, CkptQuant *cq, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = read_text_file(path, &len);
    if (!text) fatal("%s: cannot read (a Hugging Face model directory needs config.json)", path);
    json j;
    if (json_parse(&j, text, len) != 0) fatal("%s: invalid JSON: %s", path, j.err);
    if (j.t[0].type != J_OBJ) fatal("%s: not a JSON object", path);
    int mt = json_get(&j, 0, "model_type");
    if (mt >= 0 && !json_streq(&j, mt, "llama")) fatal("%s: model_type is not \"llama\" (only LlamaForCausalLM is supported)", path);
    memset(c, 0, sizeof *c);
    c->dim = cfg_int(&j, 0, "hidden_size", 0, 1, path);
    c->hidden_dim = cfg_int(&j, 0, "intermediate_size", 0, 1, path);
    c->n_layers = cfg_int(&j, 0, "num_hidden_layers", 0, 1, path);
    c->n_heads = cfg_int(&j, 0, "num_attention_heads", 0, 1, path);
    c->n_kv_heads = cfg_int(&j, 0, "num_key_value_heads", c->n_heads, 0, path);
    c->head_dim = cfg_int(&j, 0, "head_dim", c->dim / c->n_heads, 0, path);
    c->vocab_size = cfg_int(&j, 0, "vocab_size", 0, 1, path);
    c->max_seq_len = cfg_int(&j, 0, "max_position_embeddings", 2048, 0, path);
    c->norm_eps = (float)cfg_num(&j, 0, "rms_norm_eps", 1e-6, path);
    c->tied_embeddings = cfg_bool(&j, 0, "tie_word_embeddings", 0, path);
    if (cfg_bool(&j, 0, "attention_bias", 0, path)) fatal("%s: attention_bias = true is not supported", path);
    if (cfg_bool(&j, 0, "mlp_bias", 0, path)) fatal("%s: mlp_bias = true is not supported", path);
    int hk = json_get(&j, 0, "hidden_act");
    if (hk >= 0 && !json_streq(&j, hk, "silu")) fatal("%s: hidden_act must be \"silu\"", path);
    /* RoPE: transformers < 5 writes rope_theta + rope_scaling; 5.x may write rope_parameters. */
    int rp = json_get(&j, 0, "rope_parameters");
    int rs = json_get(&j, 0, "rope_scaling");
    c->rope_theta = (float)cfg_num(&j, 0, "rope_theta", 10000.0, path);
    if (rp >= 0 && j.t[rp].type == J_OBJ) c->rope_theta = (float)cfg_num(&j, rp, "rope_theta", c->rope_theta, path);
    int sc = rs >= 0 && j.t[rs].type == J_OBJ ? rs : rp >= 0 && j.t[rp].type == J_OBJ ? rp : -1;
    if (rs >= 0 && j.t[rs].type != J_OBJ && j.t[rs].type != J_NULL) fatal("%s: rope_scaling must be an object or null", path);
    if (sc >= 0) {
        int ty = json_get(&j, sc, "rope_type");
        if (ty < 0) ty = json_get(&j, sc, "type");
        if (ty >= 0 && json_streq(&j, ty, "llama3")) {
            c->rope_llama3 = 1;
            c->rope_factor = (float)cfg_num(&j, sc, "factor", 0, path);
            c->rope_low_freq_factor = (float)cfg_num(&j, sc, "low_freq_factor", 0, path);
            c->rope_high_freq_factor = (float)cfg_num(&j, sc, "high_freq_factor", 0, path);
            c->rope_orig_max_pos = cfg_int(&j, sc, "original_max_position_embeddings", c->max_seq_len, 0, path);
            if (!(c->rope_factor > 0) || !(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor))
                fatal("%s: llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0", path);
        } else if (ty >= 0 && !json_streq(&j, ty, "default")) {
            fatal("%s: unsupported rope type (only \"llama3\" and \"default\")", path);
        }
    }
    /* bos/eos: integers, or lists (Llama 3.1 Instruct lists several eos ids: the first is used). */
    c->bos_id = 128000; c->eos_id = 128001;
    long long v;
    int b = json_get(&j, 0, "bos_token_id"), e = json_get(&j, 0, "eos_token_id");
    if (b >= 0 && json_integer(&j, b, 0, INT_MAX, &v) == 0) c->bos_id = (int)v;
    if (b >= 0 && c->bos_id >= c->vocab_size) fatal("%s: bos_token_id %d is outside the vocabulary (vocab_size %d)", path, c->bos_id, c->vocab_size);
    if (e >= 0 && j.t[e].type == J_ARR)   /* every listed eos id must be a token of the model */
        for (int i = 0; i < j.t[e].n; i++) {
            int ei = json_at(&j, e, i);
            if (json_integer(&j, ei, 0, INT_MAX, &v) == 0 && v >= c->vocab_size)
                fatal("%s: eos_token_id %lld is outside the vocabulary (vocab_size %d)", path, v, c->vocab_size);
        }
    if (e >= 0 && j.t[e].type == J_ARR)
        for (int i = 0; i < j.t[e].n && c->n_eos < 8; i++)
            if (json_integer(&j, json_at(&j, e, i), 0, INT_MAX, &v) == 0) c->eos_ids[c->n_eos++] = (int)v;
    if (e >= 0 && j.t[e].type == J_ARR && j.t[e].n > 8) fatal("%s: eos_token_id lists %d ids (at most 8 are supported)", path, j.t[e].n);
    if (e >= 0 && j.t[e].type == J_ARR && j.t[e].n > 0) e = json_at(&j, e, 0);
    if (e >= 0 && json_integer(&j, e, 0, INT_MAX, &v) == 0) c->eos_id = (int)v;
    if (c->n_eos == 0) c->eos_ids[c->n_eos++] = c->eos_id;
    if (e >= 0 && c->eos_id >= c->vocab_size) fatal("%s: eos_token_id %d is outside the vocabulary (vocab_size %d)", path, c->eos_id, c->vocab_size);
    if (c->n_heads % c->n_kv_heads) fatal("%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", path, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) fatal("%s: head_dim (%d) must be even for RoPE", path, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > INT_MAX / 4)   /* kv heads ≤ heads (they divide it): bounds both products */
        fatal("%s: num_attention_heads x head_dim (%d x %d) is too large", path, c->n_heads, c->head_dim);
    load_quant_config(cq, &j, json_get(&j, 0, "quantization_config"), path);
    json_free(&j);
    free(text);
}

/* ---- safetensors ---- */
/* One file: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then the data buffer. Every offset and shape is checked against the file size before use. */
typedef struct {
    char *name;
    emu_dtype dtype;
    int ndim;
    int64_t shape[4];
    const uint8_t *data;
    size_t nbytes;
} st_tensor;
typedef struct {
    st_tensor *t;
    int n;
} st_file;

/* Parses the header of a mapped safetensors file. Returns 0, or -1 with a message. */
static int safetensors_parse(const uint8_t *buf, size_t size, st_file *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (size < 8) { snprintf(err, errlen, "file too small for a safetensors header (%zu bytes)", size); return -1; }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen < 2 || hlen > 100000000 || hlen > size - 8) {
        snprintf(err, errlen, "header length %" PRIu64 " does not fit the file (%zu bytes)", hlen, size);
        return -1;
    }
    const uint8_t *data = buf + 8 + hlen;
    size_t dsize = size - 8 - (size_t)hlen;
    json j;
    if (json_parse(&j, (const char *)buf + 8, (size_t)hlen) != 0) {
        snprintf(err, errlen, "invalid JSON header: %s", j.err);
        json_free(&j);
        return -1;
    }
    if (j.t[0].type != J_OBJ) { snprintf(err, errlen, "header is not a JSON object"); json_free(&j); return -1; }
    out->t = xcalloc(j.t[0].n, sizeof(st_tensor));
    int k = 1, rc = -1;
    for (int i = 0; i < j.t[0].n; i++, k = json_next(&j, k + 1)) {
        char *name = json_string_dup(&j, k, NULL);
        int v = k + 1;
        if (!strcmp(name, "__metadata__")) { free(name); continue; }
        st_tensor *t = &out->t[out->n++];
        t->name = name;
        int dt = json_get(&j, v, "dtype"), sh = json_get(&j, v, "shape"), of = json_get(&j, v, "data_offsets");
        if (dt < 0 || sh < 0 || of < 0 || j.t[sh].type != J_ARR || j.t[of].type != J_ARR || j.t[of].n != 2) {
            snprintf(err, errlen, "tensor '%s': needs dtype, shape and data_offsets [begin, end]", name);
            goto done;
        }
        static const struct { const char *name; emu_dtype t; size_t size; } dts[] = {
            {"F32", EMU_F32, 4}, {"BF16", EMU_BF16, 2}, {"F16", EMU_F16, 2}, {"F8_E4M3", EMU_E4M3, 1}, {"F8_E5M2", EMU_E5M2, 1},
            {"U8", ST_U8, 1}, {"I32", ST_I32, 4}, {"I64", ST_I64, 8}, {"I8", EMU_I8, 1}};
        size_t esize = 0;
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            if (json_streq(&j, dt, dts[d].name)) { t->dtype = dts[d].t; esize = dts[d].size; }
        if (!esize) {
            char *s = json_string_dup(&j, dt, NULL);
            snprintf(err, errlen, "tensor '%s': unsupported dtype %s", name, s ? s : "(not a string)");
            free(s);
            goto done;
        }
        if (j.t[sh].n > 4) { snprintf(err, errlen, "tensor '%s': more than 4 dimensions", name); goto done; }
        t->ndim = j.t[sh].n;
        uint64_t count = 1;
        for (int d = 0, e = sh + 1; d < t->ndim; d++, e = json_next(&j, e)) {
            long long x;
            if (json_integer(&j, e, 0, INT_MAX, &x) != 0) { snprintf(err, errlen, "tensor '%s': bad shape", name); goto done; }
            t->shape[d] = x;
            if (x && count > ((uint64_t)1 << 48) / (uint64_t)x) { snprintf(err, errlen, "tensor '%s': shape too large (over 2^48 elements)", name); goto done; }
            count *= (uint64_t)x;   /* checked before the product: it cannot wrap */
        }
        long long b, e;
        if (json_integer(&j, json_at(&j, of, 0), 0, LLONG_MAX / 2, &b) != 0 || json_integer(&j, json_at(&j, of, 1), 0, LLONG_MAX / 2, &e) != 0 ||
            e < b || (uint64_t)e > dsize) {
            snprintf(err, errlen, "tensor '%s': data_offsets outside the %zu-byte data buffer", name, dsize);
            goto done;
        }
        if ((uint64_t)(e - b) != count * esize) {
            snprintf(err, errlen, "tensor '%s': data_offsets span %lld bytes but shape x dtype needs %" PRIu64, name, e - b, count * esize);
            goto done;
        }
        t->data = data + b;
        t->nbytes = (size_t)(e - b);
    }
    rc = 0;
done:
    json_free(&j);
    if (rc != 0) {
        for (int i = 0; i < out->n; i++) free(out->t[i].name);
        free(out->t);
        memset(out, 0, sizeof *out);
    }
    return rc;
}
static void st_free(st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
}

/* All tensors of a checkpoint (one file or shards), by name. */
typedef struct {
    st_file *files;
    char **paths;
    int n;
} st_set;
static const st_tensor *st_find(const st_set *s, const char *name, const char **path) {
    for (int f = 0; f < s->n; f++)
        for (int i = 0; i < s->files[f].n; i++)
            if (!strcmp(s->files[f].t[i].name, name)) { if (path) *path = s->paths[f]; return &s->files[f].t[i]; }
    return NULL;
}

/* Looks up a 2-D tensor [rows, cols] and checks it against the config. 1-D tensors: cols = 0. */
static Tensor st_tensor2d(const st_set *s, const char *dir, const char *name, int rows, int cols) {
    const char *path = NULL;
    const st_tensor *t = st_find(s, name, &path);
    if (!t) fatal("%s: tensor '%s' not found in the checkpoint", dir, name);
    if (t->dtype != EMU_F32 && t->dtype != EMU_BF16 && t->dtype != EMU_F16)
        fatal("%s: tensor '%s' has dtype %s; only BF16, F16 and F32 checkpoints are supported here", path, name, dtype_name(t->dtype));
    int ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols) : (t->ndim == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[96] = "";
        for (int d = 0; d < t->ndim; d++) snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
        if (cols) fatal("%s: tensor '%s' has shape [%s], config.json implies [%d, %d]", path, name, got, rows, cols);
        fatal("%s: tensor '%s' has shape [%s], config.json implies [%d]", path, name, got, rows);
    }
    return (Tensor){t->data, t->dtype, rows, cols ? cols : 1};
}

/* A scalar or small vector tensor as fp32 (scales). Returns its element count, or -1 if absent. */
static int st_small_f32(Model *m, const st_set *s, const char *name, float **out) {
    const char *path;
    const st_tensor *t = st_find(s, name, &path);
    if (!t) return -1;
    if (t->dtype != EMU_F32 && t->dtype != EMU_BF16 && t->dtype != EMU_F16) fatal("%s: tensor '%s' must be F32, BF16 or F16", path, name);
    size_t n = t->nbytes / dtype_size(t->dtype);
    float *v = model_own(m, (n ? n : 1) * sizeof(float));
    Tensor tt = {t->data, t->dtype, 1, (int)n, NULL, 0};
    for (size_t i = 0; i < n; i++) {
        v[i] = tensor_get(&tt, i);
        if (!(v[i] > 0) || !isfinite(v[i])) fatal("%s: tensor '%s' holds a non-positive or non-finite scale (%g at %zu)", path, name, v[i], i);
    }
    *out = v;
    return (int)n;
}
/* A Linear's weight: as stored (BF16/F16/F32), or FP8 with its weight_scale in a quantized checkpoint. */
/* One tensor of a packed Linear: present, of the dtype and shape the format prescribes. */
static const st_tensor *st_need(const st_set *s, const char *dir, const char *base, const char *suffix, emu_dtype dt, int ndim, int64_t s0, int64_t s1) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    const char *path;
    const st_tensor *t = st_find(s, name, &path);
    if (!t) fatal("%s: tensor '%s' is missing (the format stores one for every Linear)", dir, name);
    if (t->dtype != dt || t->ndim != ndim || t->shape[0] != s0 || (ndim == 2 && t->shape[1] != s1))
        fatal("%s: tensor '%s' must be %s [%lld%s%lld]", path, name, dtype_name(dt), (long long)s0, ndim == 2 ? ", " : "", ndim == 2 ? (long long)s1 : 0LL);
    return t;
}
/* A Linear of a weight-format checkpoint (export_wformat's layouts), dequantized at load into bf16 as vLLM's emulation and
 * compressed-tensors' decompression do (emu_wf_dequant): the model then runs bf16's forward pass on those weights. */
static Tensor st_wf_linear(Model *m, const st_set *s, const char *dir, const char *base, int rows, int cols) {
    wformat f = (wformat)(m->quant.wf - 1);
    int G = emu_wf_group(f);
    if (cols % G) fatal("%s: '%s' has %d input features, not a multiple of the group size %d", dir, base, cols, G);
    const st_tensor *tq, *ts, *tg = NULL;
    if (f == WF_INT4) tq = st_need(s, dir, base, "weight_packed", ST_I32, 2, rows, cols / 8);
    else if (f == WF_MXFP8) tq = st_need(s, dir, base, "weight", EMU_E4M3, 2, rows, cols);
    else tq = st_need(s, dir, base, "weight_packed", ST_U8, 2, rows, cols / 2);
    ts = st_need(s, dir, base, "weight_scale", f == WF_INT4 ? EMU_BF16 : f == WF_NVFP4 ? EMU_E4M3 : ST_U8, 2, rows, cols / G);
    if (f == WF_INT4) {
        const st_tensor *sh = st_need(s, dir, base, "weight_shape", ST_I64, 1, 2, 0);
        int64_t v[2];
        memcpy(v, sh->data, 16);
        if (v[0] != rows || v[1] != cols) fatal("%s: '%s.weight_shape' is [%lld, %lld], config.json implies [%d, %d]", dir, base, (long long)v[0], (long long)v[1], rows, cols);
    }
    float g = 1;
    if (f == WF_NVFP4) {
        tg = st_need(s, dir, base, "weight_global_scale", EMU_F32, 1, 1, 0);
        memcpy(&g, tg->data, 4);
        if (!(g > 0) || !isfinite(g)) fatal("%s: '%s.weight_global_scale' is %g, not a positive finite scale", dir, base, g);
    }
    size_t ns = (size_t)rows * (cols / G);
    float *sc = xmalloc(ns * sizeof(float));
    for (size_t i = 0; i < ns; i++) {
        float v = f == WF_INT4 ? bf16_to_float(((const uint16_t *)ts->data)[i]) : f == WF_NVFP4 ? fp8_to_float(ts->data[i], FP8_E4M3)
                : ts->data[i] == 0xFF ? NAN : ldexpf(1.0f, (int)ts->data[i] - 127);
        if (!isfinite(v) || (f == WF_INT4 && !(v > 0)) || v < 0)
            fatal("%s: '%s.weight_scale' element %zu is %g, not a usable scale", dir, base, i, v);
        sc[i] = v;
    }
    uint16_t *d = model_own(m, (size_t)rows * cols * 2);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < rows; n++)
        for (int k = 0; k < cols; k++) {
            size_t i = (size_t)n * cols + k;
            uint8_t c;
            if (f == WF_INT4) { uint32_t w; memcpy(&w, tq->data + 4 * (i / 8), 4); c = (uint8_t)(int8_t)((int)((w >> (4 * (i % 8))) & 0xF) - 8); }
            else if (f == WF_MXFP8) c = tq->data[i];
            else c = (tq->data[i / 2] >> (4 * (i % 2))) & 0xF;
            d[i] = emu_wf_dequant(f, c, sc[(size_t)n * (cols / G) + k / G], g);
        }
    free(sc);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!isfinite(bf16_to_float(d[i]))) fatal("%s: '%s' dequantizes to a non-finite weight at element %zu (a NaN E4M3 code?)", dir, base, i);
    return (Tensor){d, EMU_BF16, rows, cols, NULL, GRAN_CHANNEL};
}
/* A Linear of an int-quantized checkpoint: weight I8 [rows, cols], weight_scale [rows, 1] (BF16, F16 or F32; positive, finite). */
static Tensor st_int8_linear(Model *m, const st_set *s, const char *dir, const char *base, int rows, int cols) {
    const st_tensor *tq = st_need(s, dir, base, "weight", EMU_I8, 2, rows, cols);
    char name[256];
    snprintf(name, sizeof name, "%s.weight_scale", base);
    const char *path;
    const st_tensor *ts = st_find(s, name, &path);
    if (!ts) fatal("%s: tensor '%s' is missing (an int-quantized checkpoint stores one for every Linear)", dir, name);
    if (ts->ndim != 2 || ts->shape[0] != rows || ts->shape[1] != 1) fatal("%s: tensor '%s' must have the shape [%d, 1] (one scale per output channel)", path, name, rows);
    float *sc;
    st_small_f32(m, s, name, &sc);   /* refuses other dtypes and non-positive or non-finite scales */
    return (Tensor){tq->data, EMU_I8, rows, cols, sc, GRAN_CHANNEL};
}
static Tensor st_linear(Model *m, const st_set *s, const char *dir, const char *base, int rows, int cols) {
    char name[256];
    if (m->quant.wf && strstr(base, ".layers.")) return st_wf_linear(m, s, dir, base, rows, cols);   /* lm_head stays bf16 (load_quant_config) */
    if (m->quant.act == AMODE_INT8_TOKEN && strstr(base, ".layers.")) return st_int8_linear(m, s, dir, base, rows, cols);   /* int-quantized */
    snprintf(name, sizeof name, "%s.weight", base);
    const char *path;
    const st_tensor *t = st_find(s, name, &path);
    if (!t || !m->quant.present || (t->dtype != EMU_E4M3 && t->dtype != EMU_E5M2)) return st_tensor2d(s, dir, name, rows, cols);
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        fatal("%s: tensor '%s' does not have the shape [%d, %d] config.json implies", path, name, rows, cols);
    Tensor w = {t->data, t->dtype, rows, cols, NULL, GRAN_CHANNEL};
    float *sc;
    snprintf(name, sizeof name, "%s.weight_scale", base);
    int n = st_small_f32(m, s, name, &sc);
    int nb = ((rows + 127) / 128) * ((cols + 127) / 128);
    if (n < 0) fatal("%s: FP8 weight '%s.weight' has no weight_scale", dir, base);
    if (n == 1) w.scale_gran = GRAN_TENSOR;
    else if (n == rows) w.scale_gran = GRAN_CHANNEL;
    else if (n == nb) w.scale_gran = GRAN_BLOCK;
    else fatal("%s: '%s' has %d elements: expected 1 (tensor), %d (channel) or %d (128x128 blocks)", dir, name, n, rows, nb);
    w.scale = sc;
    return w;
}

static int safe_shard_name(const char *s) {
    return s[0] && s[0] != '/' && !strstr(s, "..") && strlen(s) < 1024;
}

static void load_hf(Model *m, const char *dir) {
    Config *c = &m->c;
    load_hf_config(c, &m->quant, dir);
    char path[4096];
    st_set s = {0};
    /* The shard list: model.safetensors.index.json's weight_map, or a single model.safetensors. */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    size_t len;
    char *idx = read_text_file(path, &len);
    char **names = NULL;
    int n_names = 0;
    if (idx) {
        json j;
        if (json_parse(&j, idx, len) != 0) fatal("%s: invalid JSON: %s", path, j.err);
        int wm = json_get(&j, 0, "weight_map");
        if (wm < 0 || j.t[wm].type != J_OBJ) fatal("%s: missing \"weight_map\" object", path);
        for (int i = 0, k = wm + 1; i < j.t[wm].n; i++, k = json_next(&j, k + 1)) {
            char *f = json_string_dup(&j, k + 1, NULL);
            if (!f || !safe_shard_name(f)) fatal("%s: bad shard file name in weight_map", path);
            int seen = 0;
            for (int q = 0; q < n_names; q++) seen |= !strcmp(names[q], f);
            if (seen) { free(f); continue; }
            names = xrealloc(names, (n_names + 1) * sizeof *names);
            names[n_names++] = f;
        }
        json_free(&j);
        free(idx);
        if (!n_names) fatal("%s: weight_map is empty", path);
    } else {
        names = xmalloc(sizeof *names);
        names[n_names++] = xstrdup("model.safetensors");
    }
    m->files = xcalloc(n_names, sizeof(mfile));
    s.files = xcalloc(n_names, sizeof(st_file));
    s.paths = xcalloc(n_names, sizeof(char *));
    for (int i = 0; i < n_names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!file_exists(path) && !idx && i == 0)
            fatal("%s: no model.safetensors or model.safetensors.index.json (a Hugging Face model directory as downloaded is expected)", dir);
        mfile_open_or_die(&m->files[i], path);
        m->n_files++;
        char err[512];
        if (safetensors_parse(m->files[i].data, m->files[i].size, &s.files[i], err, sizeof err) != 0) fatal("%s: %s", path, err);
        s.paths[i] = m->files[i].path;
        s.n++;
        free(names[i]);
        /* a header length that is not a multiple of 8 (the format allows it) leaves tensors unaligned in the
         * mapping: those are copied to aligned memory, so no load is misaligned */
        for (int k = 0; k < s.files[i].n; k++) {
            st_tensor *t = &s.files[i].t[k];
            if ((uintptr_t)t->data % dtype_size(t->dtype)) { void *d = model_own(m, t->nbytes); memcpy(d, t->data, t->nbytes); t->data = d; }
        }
    }
    free(names);

    /* config.json's layer count against the tensors actually present, before anything is sized by it */
    long long n_tensors = 0;
    for (int i = 0; i < s.n; i++) n_tensors += s.files[i].n;
    if ((long long)c->n_layers * 9 > n_tensors)
        fatal("%s: config.json says num_hidden_layers %d, but the checkpoint holds %lld tensors (9 per layer: at most %lld layers)", dir, c->n_layers, n_tensors, n_tensors / 9);
    char name[256];
    snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.%s", c->n_layers - 1,
             m->quant.wf == 0 || m->quant.wf - 1 == WF_MXFP8 ? "weight" : "weight_packed");
    if (!st_find(&s, name, NULL)) fatal("%s: config.json says num_hidden_layers %d, but tensor '%s' is not in the checkpoint", dir, c->n_layers, name);
    int kv = c->n_kv_heads * c->head_dim, qd = c->n_heads * c->head_dim;
    m->tok_embeddings = st_tensor2d(&s, dir, "model.embed_tokens.weight", c->vocab_size, c->dim);
    m->layers = memset(model_own(m, c->n_layers * sizeof(Layer)), 0, c->n_layers * sizeof(Layer));
    for (int l = 0; l < c->n_layers; l++) {
        Layer *L = &m->layers[l];
#define W(field, suffix, r, cc) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), L->field = st_linear(m, &s, dir, name, r, cc))
        Tensor an, fn;
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        an = st_tensor2d(&s, dir, name, c->dim, 0);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        fn = st_tensor2d(&s, dir, name, c->dim, 0);
        L->attn_norm = tensor_to_f32(m, &an);
        L->ffn_norm = tensor_to_f32(m, &fn);
        W(wq, "self_attn.q_proj", qd, c->dim);
        W(wk, "self_attn.k_proj", kv, c->dim);
        W(wv, "self_attn.v_proj", kv, c->dim);
        W(wo, "self_attn.o_proj", c->dim, qd);
        W(w_gate, "mlp.gate_proj", c->hidden_dim, c->dim);
        W(w_up, "mlp.up_proj", c->hidden_dim, c->dim);
        W(w_down, "mlp.down_proj", c->dim, c->hidden_dim);
#undef W
        if (m->quant.act == AMODE_QDQ_NVFP4) {   /* NVFP4 input global scales: one per site (llm-compressor writes equal ones for q/k/v, gate/up) */
            static const char *const site_lin[4][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, {"self_attn.o_proj"},
                                                       {"mlp.gate_proj", "mlp.up_proj"}, {"mlp.down_proj"}};
            for (int site = 0; site < 4; site++)
                for (int i = 0; i < 3 && site_lin[site][i]; i++) {
                    char base[160];
                    snprintf(base, sizeof base, "model.layers.%d.%s", l, site_lin[site][i]);
                    const st_tensor *t = st_need(&s, dir, base, "input_global_scale", EMU_F32, 1, 1, 0);
                    float g;
                    memcpy(&g, t->data, 4);
                    if (!(g > 0) || !isfinite(g)) fatal("%s: '%s.input_global_scale' is %g, not a positive finite scale", dir, base, g);
                    if (i && g != L->in_scale[site])
                        fatal("%s: '%s.input_global_scale' (%g) differs from %s's (%g): the Linears share one input, quantized once", dir, base, g, site_lin[site][0], L->in_scale[site]);
                    L->in_scale[site] = g;
                }
        } else if (m->quant.present && !m->quant.wf) { /* static input scales (q/k/v fused as in vLLM: the largest) and KV scales */
            static const char *const site_lin[4][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, {"self_attn.o_proj"},
                                                       {"mlp.gate_proj", "mlp.up_proj"}, {"mlp.down_proj"}};
            for (int site = 0; site < 4; site++)
                for (int i = 0; i < 3 && site_lin[site][i]; i++) {
                    float *v;
                    snprintf(name, sizeof name, "model.layers.%d.%s.input_scale", l, site_lin[site][i]);
                    if (st_small_f32(m, &s, name, &v) >= 1) L->in_scale[site] = fmaxf(L->in_scale[site], v[0]);
                }
            if (m->quant.act == AMODE_TENSOR_STATIC && !(L->in_scale[0] > 0 && L->in_scale[1] > 0 && L->in_scale[2] > 0 && L->in_scale[3] > 0))
                fatal("%s: static activation scheme but layer %d lacks input_scale tensors", dir, l);
            float *v;
            snprintf(name, sizeof name, "model.layers.%d.self_attn.k_scale", l);
            if (st_small_f32(m, &s, name, &v) >= 1) L->k_scale = v[0];
            snprintf(name, sizeof name, "model.layers.%d.self_attn.v_scale", l);
            if (st_small_f32(m, &s, name, &v) >= 1) L->v_scale = v[0];
            if (m->quant.kv && !(L->k_scale > 0 && L->v_scale > 0)) fatal("%s: kv_cache_scheme set but layer %d lacks k_scale / v_scale", dir, l);
        }
    }
    Tensor fnorm = st_tensor2d(&s, dir, "model.norm.weight", c->dim, 0);
    m->final_norm = tensor_to_f32(m, &fnorm);
    if (c->tied_embeddings) {
        m->lm_head = m->tok_embeddings;
    } else if (st_find(&s, "lm_head.weight", NULL)) {
        m->lm_head = st_linear(m, &s, dir, "lm_head", c->vocab_size, c->dim);
        float *v;
        if (m->lm_head.scale && st_small_f32(m, &s, "lm_head.input_scale", &v) >= 1) m->lm_head_in_scale = v[0];
    } else {
        fatal("%s: no lm_head.weight and tie_word_embeddings is false", dir);
    }
    for (int i = 0; i < s.n; i++) st_free(&s.files[i]);
    free(s.files);
    free(s.paths);
    m->format = "hf-safetensors";
}

/* ---- llama2.c model.bin ---- */
/* Header: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 * vocab_size means an untied classifier follows), then fp32 tensors in a fixed order. llama2.c
 * applies RoPE to interleaved pairs (2i, 2i+1) of each head, Hugging Face to (i, i + head_dim/2):
 * permuting the rows of wq and wk within each head (new row i = old row 2i, new row i + hd/2 =
 * old row 2i+1) turns one into the other, so there is a single forward pass. */
/* The 7 header fields of a llama2.c checkpoint: 0 when plausible (every field nonzero, |field| ≤ 2^20,
 * only vocab_size negative, dim a multiple of the heads), else the index of the first bad field + 1
 * (8: the head counts do not divide). Checked before any field is used: INT_MIN is never negated. */
static int llama2c_header_bad(const int32_t h[7]) {
    for (int i = 0; i < 7; i++)
        if (h[i] == 0 || h[i] == INT_MIN || (i != 5 && h[i] < 0) || h[i] > 1 << 20 || h[i] < -(1 << 20)) return i + 1;
    if (h[0] % h[3] || h[3] % h[4] || (h[0] / h[3]) % 2) return 8;
    return 0;
}
static void load_llama2c(Model *m, const char *path) {
    m->files = xcalloc(1, sizeof(mfile));
    mfile_open_or_die(&m->files[0], path);
    m->n_files = 1;
    const mfile *f = &m->files[0];
    if (f->size < 28) fatal("%s: too small for a llama2.c header (%zu bytes)", path, f->size);
    int32_t h[7];
    memcpy(h, f->data, sizeof h);
    int bad = llama2c_header_bad(h);
    if (bad == 8) fatal("%s: inconsistent llama2.c header (dim %d, heads %d, kv heads %d)", path, h[0], h[3], h[4]);
    if (bad) fatal("%s: not a llama2.c checkpoint (header field %d = %d)", path, bad - 1, h[bad - 1]);
    Config *c = &m->c;
    memset(c, 0, sizeof *c);
    int shared = h[5] > 0;
    c->dim = h[0]; c->hidden_dim = h[1]; c->n_layers = h[2]; c->n_heads = h[3]; c->n_kv_heads = h[4];
    c->vocab_size = h[5] < 0 ? -h[5] : h[5]; c->max_seq_len = h[6];
    c->head_dim = c->dim / c->n_heads;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->tied_embeddings = shared;
    c->bos_id = 1; c->eos_id = 2;
    int hd = c->head_dim, kv = c->n_kv_heads * hd, L = c->n_layers;
    /* Expected size, in floats, checked before any pointer is formed. */
    uint64_t D = c->dim, H = c->hidden_dim, V = c->vocab_size, S = c->max_seq_len;
    uint64_t need = V * D + L * D + L * D * D + 2 * (uint64_t)L * D * kv + L * D * D + L * D + 3 * (uint64_t)L * D * H + D + S * hd;
    if (!shared) need += V * D;
    if ((f->size - 28) / 4 < need)
        fatal("%s: truncated: the header implies %" PRIu64 " bytes of weights, the file has %zu", path, need * 4, f->size - 28);
    const float *p = (const float *)(f->data + 28);
    Tensor t;
#define TAKE(rows, cols) (t = (Tensor){p, EMU_F32, (int)(rows), (int)(cols)}, p += (uint64_t)(rows) * (cols), t)
    m->tok_embeddings = TAKE(V, D);
    Tensor att = TAKE((uint64_t)L, D);
    Tensor wq = TAKE((uint64_t)L * D, D), wk = TAKE((uint64_t)L * kv, D), wv = TAKE((uint64_t)L * kv, D), wo = TAKE((uint64_t)L * D, D);
    Tensor ffn = TAKE((uint64_t)L, D);
    Tensor w1 = TAKE((uint64_t)L * H, D), w2 = TAKE((uint64_t)L * D, H), w3 = TAKE((uint64_t)L * H, D);
    Tensor fin = TAKE(1, D);
    p += S * hd; /* freq_cis_real, freq_cis_imag: recomputed, not read */
    m->lm_head = shared ? m->tok_embeddings : TAKE(V, D);
#undef TAKE
    m->layers = memset(model_own(m, L * sizeof(Layer)), 0, L * sizeof(Layer));
    for (int l = 0; l < L; l++) {
        Layer *Ly = &m->layers[l];
        Ly->attn_norm = (float *)att.data + (size_t)l * D;
        Ly->ffn_norm = (float *)ffn.data + (size_t)l * D;
        const float *src[2] = {(const float *)wq.data + (size_t)l * D * D, (const float *)wk.data + (size_t)l * kv * D};
        int rows[2] = {(int)D, kv};
        float *dst[2];
        for (int w = 0; w < 2; w++) { /* interleaved → rotate-half row order */
            dst[w] = model_own(m, (size_t)rows[w] * D * sizeof(float));
            for (int r = 0; r < rows[w]; r++) {
                int head = r / hd, i = r % hd;
                int old = head * hd + (i < hd / 2 ? 2 * i : 2 * (i - hd / 2) + 1);
                memcpy(dst[w] + (size_t)r * D, src[w] + (size_t)old * D, D * sizeof(float));
            }
        }
        Ly->wq = (Tensor){dst[0], EMU_F32, (int)D, (int)D};
        Ly->wk = (Tensor){dst[1], EMU_F32, kv, (int)D};
        Ly->wv = (Tensor){(const float *)wv.data + (size_t)l * kv * D, EMU_F32, kv, (int)D};
        Ly->wo = (Tensor){(const float *)wo.data + (size_t)l * D * D, EMU_F32, (int)D, (int)D};
        Ly->w_gate = (Tensor){(const float *)w1.data + (size_t)l * H * D, EMU_F32, (int)H, (int)D};
        Ly->w_down = (Tensor){(const float *)w2.data + (size_t)l * D * H, EMU_F32, (int)D, (int)H};
        Ly->w_up = (Tensor){(const float *)w3.data + (size_t)l * H * D, EMU_F32, (int)H, (int)D};
    }
    m->final_norm = (float *)fin.data;
    m->format = "llama2.c";
}

/* ---- the built-in synthetic model (make run without data; tests) ---- */
/* Deterministic random bf16 weights (xorshift64, uniform with the given standard deviation), shaped
 * like a tiny Llama 3: GQA 4/2, llama3 RoPE scaling, untied classifier. */

static void build_synthetic(Model *m, uint64_t seed) {
    Config *c = &m->c;
    *c = (Config){.dim = 64, .hidden_dim = 176, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                  .vocab_size = 256, .max_seq_len = 512, .norm_eps = 1e-5f, .rope_theta = 500000.0f, .rope_llama3 = 1,
                  .rope_factor = 8, .rope_low_freq_factor = 1, .rope_high_freq_factor = 4, .rope_orig_max_pos = 64,
                  .tied_embeddings = 0, .bos_id = 1, .eos_id = 2};
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
#define RAND(rows, cols, std) do { size_t n_ = (size_t)(rows) * (cols); uint16_t *d_ = model_own(m, n_ * 2); \
        for (size_t i_ = 0; i_ < n_; i_++) d_[i_] = bf16_from_float((rng_uniform(&s) * 2 - 1) * (std) * 1.7320508f); \
        t_ = (Tensor){d_, EMU_BF16, (int)(rows), (int)(cols)}; } while (0)
    Tensor t_;
    int D = c->dim, H = c->hidden_dim, qd = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    RAND(c->vocab_size, D, 1.0f); m->tok_embeddings = t_;
    m->layers = memset(model_own(m, c->n_layers * sizeof(Layer)), 0, c->n_layers * sizeof(Layer));
    for (int l = 0; l < c->n_layers; l++) {
        Layer *L = &m->layers[l];
        L->attn_norm = model_own(m, D * sizeof(float));
        L->ffn_norm = model_own(m, D * sizeof(float));
        for (int i = 0; i < D; i++) { L->attn_norm[i] = 0.5f + rng_uniform(&s); L->ffn_norm[i] = 0.5f + rng_uniform(&s); }
        RAND(qd, D, 0.25f); L->wq = t_;
        RAND(kv, D, 0.25f); L->wk = t_;
        RAND(kv, D, 0.25f); L->wv = t_;
        RAND(D, qd, 0.25f); L->wo = t_;
        RAND(H, D, 0.25f); L->w_gate = t_;
        RAND(H, D, 0.25f); L->w_up = t_;
        RAND(D, H, 0.15f); L->w_down = t_;
    }
    m->final_norm = model_own(m, D * sizeof(float));
    for (int i = 0; i < D; i++) m->final_norm[i] = 1.0f;
    RAND(c->vocab_size, D, 0.5f); m->lm_head = t_;
#undef RAND
    m->format = "synthetic";
}

static size_t st_entry_bytes(const st_entry *e) {
    size_t n = dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}
static void safetensors_write(const char *path, const st_entry *e, int n, const char *metadata_json,
                              void (*fill)(void *ctx, int i, void *buf, size_t nbytes), void *ctx) {
    size_t cap = 4096 + (size_t)n * 256 + (metadata_json ? strlen(metadata_json) : 0), len = 0, off = 0, maxb = 0;
    char *h = xmalloc(cap);
    len += sprintf(h + len, "{");
    if (metadata_json) len += sprintf(h + len, "\"__metadata__\":%s", metadata_json);
    for (int i = 0; i < n; i++) {
        size_t b = st_entry_bytes(&e[i]);
        len += sprintf(h + len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (i || metadata_json) ? "," : "", e[i].name, dtype_name(e[i].dtype));
        for (int d = 0; d < e[i].ndim; d++) len += sprintf(h + len, d ? ",%" PRId64 : "%" PRId64, e[i].shape[d]);
        len += sprintf(h + len, "],\"data_offsets\":[%zu,%zu]}", off, off + b);
        off += b;
        if (b > maxb) maxb = b;
    }
    len += sprintf(h + len, "}");
    while ((8 + len) % 8) h[len++] = ' '; /* pad so the data buffer starts 8-byte aligned */
    atomic_file a;
    atomic_open(&a, path);
    uint8_t lenbytes[8];
    for (int i = 0; i < 8; i++) lenbytes[i] = (uint8_t)((uint64_t)len >> (8 * i));
    fwrite(lenbytes, 1, 8, a.fp);
    fwrite(h, 1, len, a.fp);
    void *buf = xmalloc(maxb);
    for (int i = 0; i < n; i++) {
        size_t b = st_entry_bytes(&e[i]);
        fill(ctx, i, buf, b);
        if (fwrite(buf, 1, b, a.fp) != b) fatal("writing %s failed: %s", path, strerror(errno));
    }
    free(buf);
    free(h);
    atomic_commit(&a);
}

/* Loads a model: a Hugging Face directory, a llama2.c .bin, or "(synthetic)". */
static Model *model_load(const char *path) {
    Model *m = xcalloc(1, sizeof(Model));
    if (!strcmp(path, "(synthetic)")) build_synthetic(m, 1);
    else if (is_directory(path)) load_hf(m, path);
    else if (file_exists(path)) {
        size_t n = strlen(path);
        if (n > 12 && !strcmp(path + n - 12, ".safetensors"))
            fatal("%s: pass the model directory (with config.json), not a .safetensors file", path);
        load_llama2c(m, path);
    } else fatal("%s: no such model (expected a Hugging Face directory or a llama2.c .bin)", path);
    m->path = xstrdup(path);
    const Config *c = &m->c;
    size_t mapped = 0;
    for (int i = 0; i < m->n_files; i++) mapped += m->files[i].size;
    m->release_pages = mapped > ((size_t)2 << 30);
    if (c->dim <= 0 || c->n_layers <= 0 || c->vocab_size <= 0 || c->head_dim <= 0) fatal("%s: bad config", path);
    rope_init(m);
    if (!allow_nonfinite) model_check_finite(m);
    return m;
}

/* ---- non-finite weights ----
 * Policy: every weight, norm vector and checkpoint scale is scanned once when the model loads; a NaN
 * or ±Inf is an error naming the tensor and the element. --allow-nonfinite skips the scan: NaN then
 * propagates as torch propagates it (weight quantization: a block holding NaN gets a NaN scale, one
 * holding ±Inf an Inf scale, see quant_weight), and ppl / calibrate / stats / generate stop at the
 * first non-finite log-probability, logit or scale they meet, naming chunk, token, layer and op. */
/* Whether element i of a tensor of type t is Inf or NaN: the exponent field all ones (E4M3 (fn): NaN only). */
static inline int nonfinite_at(const void *data, emu_dtype t, size_t i) {
    switch (t) {
    case EMU_F32:  return (((const uint32_t *)data)[i] & 0x7F800000u) == 0x7F800000u;
    case EMU_BF16: return (((const uint16_t *)data)[i] & 0x7F80u) == 0x7F80u;
    case EMU_F16:  return (((const uint16_t *)data)[i] & 0x7C00u) == 0x7C00u;
    case EMU_E4M3: return (((const uint8_t *)data)[i] & 0x7Fu) == 0x7Fu;
    case EMU_E5M2: return (((const uint8_t *)data)[i] & 0x7Cu) == 0x7Cu;
    default: return 0;
    }
}
/* Any Inf or NaN in [i0, i1)? One type per loop, so that the compiler vectorises it. */
#define NF_ANY(T, mask, want) { const T *p = data; _Pragma("omp simd reduction(| : any)") for (size_t i = i0; i < i1; i++) any |= (p[i] & (mask)) == (want); }
static int nonfinite_any(const void *data, emu_dtype t, size_t i0, size_t i1) {
    int any = 0;
    switch (t) {
    case EMU_F32:  NF_ANY(uint32_t, 0x7F800000u, 0x7F800000u) break;
    case EMU_BF16: NF_ANY(uint16_t, 0x7F80u, 0x7F80u) break;
    case EMU_F16:  NF_ANY(uint16_t, 0x7C00u, 0x7C00u) break;
    case EMU_E4M3: NF_ANY(uint8_t, 0x7Fu, 0x7Fu) break;
    case EMU_E5M2: NF_ANY(uint8_t, 0x7Cu, 0x7Cu) break;
    default: break;
    }
    return any;
}
static long long first_nonfinite(const void *data, emu_dtype t, size_t n) {
    size_t chunk = 1 << 20, nc = (n + chunk - 1) / chunk;
    long long first = -1;
    #pragma omp parallel for schedule(dynamic, 1)
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        long long hit = -1;
        if (nonfinite_any(data, t, i0, i1))
            for (size_t i = i0; i < i1 && hit < 0; i++)
                if (nonfinite_at(data, t, i)) hit = (long long)i;
        if (hit >= 0) {
            #pragma omp critical(first_nonfinite)
            if (first < 0 || hit < first) first = hit;
        }
    }
    return first;
}
static void check_tensor_finite(const Model *m, const Tensor *t, const char *name) {
    size_t n = (size_t)t->rows * t->cols;
    long long i = first_nonfinite(t->data, t->dtype, n);
    if (i >= 0) {
        float v = emu_load_el(t->data, t->dtype, (size_t)i);
        fatal("%s: weight %s holds %s at [%lld, %lld] (non-finite weights are refused; --allow-nonfinite runs on and lets NaN propagate)",
              m->path, name, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", i / t->cols, i % t->cols);
    }
    if (t->scale) {
        size_t ns = n_weight_scales(t->scale_gran, t->rows, t->cols);
        long long k = first_nonfinite(t->scale, EMU_F32, ns);
        if (k >= 0) fatal("%s: %s_scale holds %g at %lld (non-finite scales are refused)", m->path, name, t->scale[k], k);
    }
    if (m->release_pages) tensor_release(m, t);
}
static void check_vector_finite(const Model *m, const float *v, int n, const char *name) {
    long long i = first_nonfinite(v, EMU_F32, (size_t)n);
    if (i >= 0) fatal("%s: weight %s holds %s at [%lld] (non-finite weights are refused; --allow-nonfinite runs on and lets NaN propagate)",
                      m->path, name, isnan(v[i]) ? "NaN" : v[i] > 0 ? "+Inf" : "-Inf", i);
}
static void model_check_finite(const Model *m) {
    const Config *c = &m->c;
    char name[128];
    check_tensor_finite(m, &m->tok_embeddings, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
        const Tensor *ts[7] = LAYER_LINEARS(L);
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        check_vector_finite(m, L->attn_norm, c->dim, name);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        check_vector_finite(m, L->ffn_norm, c->dim, name);
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, linear_names[i]);
            check_tensor_finite(m, ts[i], name);
        }
    }
    check_vector_finite(m, m->final_norm, c->dim, "model.norm.weight");
    if (m->lm_head.data != m->tok_embeddings.data) check_tensor_finite(m, &m->lm_head, "lm_head.weight");
}
static void prepared_release(void);   /* section 3: the weights prepared for the schemes */
static void model_free(Model *m) {
    if (!m) return;
    prepared_release();
    for (int i = 0; i < m->n_files; i++) mfile_close(&m->files[i]);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->files); free(m->owned); free(m->path); free(m); /* layers are among the owned buffers */
}
/* Drops the resident pages of a tensor that lives in a read-only file mapping (a no-op for owned
 * buffers). The next access faults them back in from the page cache. */
static void tensor_release(const Model *m, const Tensor *t) {
    const uint8_t *p = t->data;
    size_t bytes = (size_t)t->rows * t->cols * dtype_size(t->dtype);
    for (int i = 0; i < m->n_files; i++) {
        const mfile *f = &m->files[i];
        if (p < f->data || p + bytes > f->data + f->size) continue;
        uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + ps - 1) & ~(ps - 1), b = ((uintptr_t)p + bytes) & ~(ps - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
        return;
    }
}
static void layer_release(const Model *m, const Layer *L) {
    const Tensor *ts[] = LAYER_LINEARS(L);
    for (int i = 0; i < 7; i++) tensor_release(m, ts[i]);
}

static void model_describe(const Model *m, FILE *fp) {
    const Config *c = &m->c;
    if (!strcmp(m->format, "synthetic")) fprintf(fp, "model: built-in synthetic,");
    else fprintf(fp, "model: %s (%s)", m->path, m->format);
    fprintf(fp, " dim %d, ffn %d, layers %d, heads %d/%d kv, head_dim %d, vocab %d, max ctx %d, rope theta %g%s, %s embeddings, weights %s\n",
            c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq_len,
            c->rope_theta, c->rope_llama3 ? " llama3-scaled" : "", c->tied_embeddings ? "tied" : "untied", dtype_name(m->layers[0].wq.dtype));
}

/* config.json for a Llama model, as transformers writes it; extra (a JSON member list) is appended. */
static void write_hf_config(const char *path, const Config *c, const char *extra) {
    atomic_file a;
    atomic_open(&a, path);
    fprintf(a.fp, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
            "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %g,\n  \"rope_theta\": %.1f,\n",
            c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq_len, c->norm_eps, c->rope_theta);
    if (c->rope_llama3)
        fprintf(a.fp, "  \"rope_scaling\": {\"factor\": %.1f, \"low_freq_factor\": %.1f, \"high_freq_factor\": %.1f, \"original_max_position_embeddings\": %d, \"rope_type\": \"llama3\"},\n",
                c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_orig_max_pos);
    else
        fprintf(a.fp, "  \"rope_scaling\": null,\n");
    fprintf(a.fp, "  \"tie_word_embeddings\": %s,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"torch_dtype\": \"bfloat16\"%s%s\n}\n",
            c->tied_embeddings ? "true" : "false", c->bos_id, c->eos_id, extra ? ",\n" : "", extra ? extra : "");
    atomic_commit(&a);
}

/* ------------------------------------------------------------------------------------------ */
/* A3. Appendix: tokenizers                                                                   */
/* ------------------------------------------------------------------------------------------ */
/* Two tokenizers behind one interface:
 *   - Llama 3 byte-level BPE, from Meta's tiktoken `tokenizer.model` (base64 token, rank per line)
 *     or a Hugging Face `tokenizer.json`. Text is split by the Llama 3 pre-tokenizer regex
 *     (hand-written below, Unicode classes from data/unicode_tables.h), then each piece is merged
 *     byte pair by byte pair, lowest rank first, as tiktoken's byte_pair_merge does.
 *   - llama2.c `tokenizer.bin` (SentencePiece-style vocabulary with scores): run.c's encode(),
 *     highest-scoring pair first, byte fallback <0xXX> = id byte + 3.
 * Both merge loops run on one min-heap of candidate pairs, O(n log n) in the piece length, so a
 * whole text file is one call. Token ids are ints; a token's bytes live in one arena. */
#include "data/unicode_tables.h"

enum { TOK_BPE = 1, TOK_SPM = 2 };

typedef struct tokenizer tokenizer;
struct tokenizer {
    int kind;             /* TOK_BPE (Llama 3) or TOK_SPM (llama2.c) */
    int n_vocab;          /* ids are 0..n_vocab-1 (a few may be unused: len 0, not in the map) */
    uint8_t *arena;       /* all token bytes, back to back */
    size_t *off;          /* (n_vocab + 1) token i is arena[off[i] .. off[i+1]) */
    float *score;         /* (n_vocab) llama2.c merge scores; NULL for BPE */
    int *map;             /* open-addressing hash: token bytes -> id, -1 = empty slot */
    size_t map_mask;
    uint64_t *pair_key;   /* BPE merge table: (left id << 32 | right id) -> rank, merged id */
    int *pair_rank, *pair_id;
    size_t pair_mask;     /* pair_key slots are UINT64_MAX when empty */
    int byte_id[256];     /* BPE: the token of each single byte */
    int ignore_merges;    /* BPE: a piece that is itself a token is emitted whole (tiktoken; HF ignore_merges) */
    int *special;         /* (n_special) ids of special tokens, parsed in text only on request */
    uint8_t *is_special;  /* (n_vocab) 1 for those: never the result of a merge or a piece lookup */
    uint8_t special_first[256]; /* 1 for a byte that starts some special token (fast scan) */
    int n_special;
    int bos, eos;         /* -1 when the vocabulary has none */
    int space_id;         /* llama2.c: the " " token prepended as dummy prefix (required at load) */
    uint8_t all_bytes[256]; /* all_bytes[b] == b: what a llama2.c <0xXX> token decodes to */
};

/* ---- Unicode: UTF-8 decoding and the three character classes of the pre-tokenizer regex ---- */
enum { U_L = 1, U_N = 2, U_S = 4 }; /* \p{L} letter, \p{N} number, \s white space */

static int unicode_in(const uint32_t (*r)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}
#define UNICODE_IN(tab, cp) unicode_in(tab, (int)(sizeof tab / sizeof tab[0]), cp)
static int unicode_class(uint32_t cp) {
    if (cp < 0x80) { /* ASCII: identical to the tables (a test checks), but no search */
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return U_L;
        if (cp >= '0' && cp <= '9') return U_N;
        return (cp == ' ' || (cp >= '\t' && cp <= '\r')) ? U_S : 0;
    }
    if (cp == UINT32_MAX) return 0; /* an invalid UTF-8 byte: "other", like punctuation */
    return (UNICODE_IN(unicode_class_L, cp) ? U_L : 0) | (UNICODE_IN(unicode_class_N, cp) ? U_N : 0) |
           (UNICODE_IN(unicode_class_S, cp) ? U_S : 0);
}
/* Decodes the code point at s[0..n), n >= 1. Returns its length in bytes. Anything that is not
 * well-formed UTF-8 (stray continuation, overlong form, surrogate, > U+10FFFF, cut short) is one
 * byte with *cp = UINT32_MAX, so arbitrary bytes tokenize (tiktoken only ever sees valid text). */
static int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (len == 0 || c >= 0xF5 || (size_t)len > n) { *cp = UINT32_MAX; return 1; }
    uint32_t v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = UINT32_MAX; return 1; }
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min_cp[len] || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) { *cp = UINT32_MAX; return 1; }
    *cp = v;
    return len;
}
static int class_at(const uint8_t *s, size_t n, size_t i, int *len) {
    uint32_t cp;
    *len = utf8_decode(s + i, n - i, &cp);
    return unicode_class(cp);
}

/* ---- The Llama 3 pre-tokenizer, by hand ----
 * Pattern (tiktoken / fancy-regex semantics: alternatives tried left to right, backtracking):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)      1. contractions, any case; (?i) folds s to U+017F 'ſ' too
 *   |[^\r\n\p{L}\p{N}]?\p{L}+          2. a word, with at most one leading non-letter-digit-newline
 *   |\p{N}{1,3}                        3. up to three digits
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*         4. punctuation run, optional leading space, trailing newlines
 *   |\s*[\r\n]+                        5. white space up to and including its last newline
 *   |\s+(?!\S)                         6. white space, leaving its last char to the next word
 *   |\s+                               7. white space
 * llama3_piece() returns the end of the match that starts at i (always > i). */
static int contraction_letter(const uint8_t *s, size_t n, size_t i, char lower) {
    if (i >= n) return 0;
    if ((s[i] | 0x20) == lower) return 1;
    if (lower == 's' && i + 1 < n && s[i] == 0xC5 && s[i + 1] == 0xBF) return 2; /* U+017F */
    return 0;
}
static size_t llama3_piece(const uint8_t *s, size_t n, size_t i) {
    int l0, c0 = class_at(s, n, i, &l0);
    /* 1. 's 't 're 've 'm 'll 'd */
    if (s[i] == '\'' && i + 1 < n) {
        static const char *const suffix[] = {"s", "t", "re", "ve", "m", "ll", "d"};
        for (int k = 0; k < 7; k++) {
            size_t j = i + 1;
            const char *x = suffix[k];
            for (; *x; x++) {
                int m = contraction_letter(s, n, j, *x);
                if (!m) break;
                j += m;
            }
            if (!*x) return j;
        }
    }
    /* 2. [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t j = i;
    if (!(c0 & U_L) && !(c0 & U_N) && s[i] != '\r' && s[i] != '\n') j = i + l0; /* the optional char */
    if (j < n) {
        int l, c = class_at(s, n, j, &l);
        if (c & U_L) {
            for (j += l; j < n && (class_at(s, n, j, &l) & U_L); j += l) {}
            return j;
        }
    }
    /* 3. \p{N}{1,3} */
    if (c0 & U_N) {
        int l, k = 0;
        for (j = i; k < 3 && j < n && (class_at(s, n, j, &l) & U_N); j += l, k++) {}
        return j;
    }
    /* 4.  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = i + (s[i] == ' ');
    if (j < n) {
        int l, c = class_at(s, n, j, &l);
        if (!(c & (U_S | U_L | U_N))) {
            for (j += l; j < n && !(class_at(s, n, j, &l) & (U_S | U_L | U_N)); j += l) {}
            while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
            return j;
        }
    }
    /* c0 is white space here: every other character was taken by 2, 3 or 4. */
    size_t end = i, last_nl = 0, last_start = i;
    int count = 0, l;
    while (end < n && (class_at(s, n, end, &l) & U_S)) {
        if (s[end] == '\r' || s[end] == '\n') last_nl = end + 1;
        last_start = end;
        end += l;
        count++;
    }
    if (last_nl) return last_nl;                   /* 5. \s*[\r\n]+ */
    if (end < n && count >= 2) return last_start;  /* 6. \s+(?!\S): give back the last one */
    return end;                                    /* 6 at end of text, or 7. \s+ */
}

/* ---- Hash maps ---- */
static uint64_t tok_hash(const uint8_t *p, size_t n) { /* FNV-1a */
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
static size_t tok_len(const tokenizer *t, int id) { return t->off[id + 1] - t->off[id]; }
static const uint8_t *tok_bytes(const tokenizer *t, int id) { return t->arena + t->off[id]; }
/* The id of the token with bytes p[0..n), or -1. */
static int tok_lookup(const tokenizer *t, const void *p, size_t n) {
    for (size_t h = tok_hash(p, n) & t->map_mask;; h = (h + 1) & t->map_mask) {
        int id = t->map[h];
        if (id < 0) return -1;
        if (tok_len(t, id) == n && memcmp(tok_bytes(t, id), p, n) == 0) return id;
    }
}
/* Builds the bytes -> id map over ids [0, n_vocab) with nonempty bytes; on duplicate bytes the
 * lowest ordinary id wins (special tokens go in last). Also fills is_special from special[]. */
static void tok_build_map(tokenizer *t) {
    size_t cap = 16;
    while (cap < 2 * (size_t)t->n_vocab) cap *= 2;
    t->map = xmalloc(cap * sizeof(int));
    memset(t->map, 0xFF, cap * sizeof(int));
    t->map_mask = cap - 1;
    t->is_special = xcalloc((size_t)t->n_vocab, 1);
    for (int k = 0; k < t->n_special; k++) {
        t->is_special[t->special[k]] = 1;
        if (tok_len(t, t->special[k])) t->special_first[*tok_bytes(t, t->special[k])] = 1;
    }
    for (int pass = 0; pass < 2; pass++)
    for (int id = 0; id < t->n_vocab; id++) {
        size_t n = tok_len(t, id);
        if (n == 0 || t->is_special[id] != pass) continue;
        if (tok_lookup(t, tok_bytes(t, id), n) >= 0) continue;
        size_t h = tok_hash(tok_bytes(t, id), n) & t->map_mask;
        while (t->map[h] >= 0) h = (h + 1) & t->map_mask;
        t->map[h] = id;
    }
}
static uint64_t pair_hash(uint64_t k) { k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33; return k; }
static void pair_put(tokenizer *t, int a, int b, int rank, int merged) { /* a later put replaces (as HF) */
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t h = pair_hash(key) & t->pair_mask;
    while (t->pair_key[h] != UINT64_MAX && t->pair_key[h] != key) h = (h + 1) & t->pair_mask;
    t->pair_key[h] = key; t->pair_rank[h] = rank; t->pair_id[h] = merged;
}
static int pair_get(const tokenizer *t, int a, int b, int *merged) { /* rank, or -1 */
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t h = pair_hash(key) & t->pair_mask;; h = (h + 1) & t->pair_mask) {
        if (t->pair_key[h] == UINT64_MAX) return -1;
        if (t->pair_key[h] == key) { *merged = t->pair_id[h]; return t->pair_rank[h]; }
    }
}
static void pair_alloc(tokenizer *t, size_t n_pairs) {
    size_t cap = 16;
    while (cap < 2 * n_pairs) cap *= 2;
    t->pair_key = xmalloc(cap * sizeof(uint64_t));
    memset(t->pair_key, 0xFF, cap * sizeof(uint64_t));
    t->pair_rank = xmalloc(cap * sizeof(int));
    t->pair_id = xmalloc(cap * sizeof(int));
    t->pair_mask = cap - 1;
}

/* ---- Loading ---- */
#define TOK_ERR(...) do { snprintf(err, errlen, __VA_ARGS__); goto fail; } while (0)

static tokenizer *tok_new(int kind, int n_vocab, size_t arena_bytes) {
    tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->arena = xmalloc(arena_bytes);
    t->off = xcalloc((size_t)n_vocab + 1, sizeof(size_t));
    t->bos = t->eos = t->space_id = -1;
    for (int b = 0; b < 256; b++) t->all_bytes[b] = (uint8_t)b;
    return t;
}
void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->arena); free(t->off); free(t->score); free(t->map);
    free(t->pair_key); free(t->pair_rank); free(t->pair_id); free(t->special); free(t->is_special);
    free(t);
}
/* Shared by both BPE loaders once ids and bytes are in: every byte must be an ordinary token,
 * since a piece starts as one symbol per byte. Returns 0 or -1 with err. */
static int bpe_finish(tokenizer *t, char *err, size_t errlen) {
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        if ((t->byte_id[b] = tok_lookup(t, &c, 1)) < 0 || t->is_special[t->byte_id[b]]) {
            snprintf(err, errlen, "byte 0x%02X has no token (byte-level BPE needs all 256)", b);
            return -1;
        }
    }
    return 0;
}

/* Meta's Llama 3 special tokens, ids n_base + i (as in Meta's tokenizer.py and HF's tokenizer.json). */
static const char *const llama3_specials[11] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
#define LLAMA3_N_SPECIAL 256

static int b64_value(uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}
/* Strict base64 of s[0..n) into out; returns the byte count or -1. */
static long b64_decode(const uint8_t *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4) return -1;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = (i + k >= n - pad) ? 0 : b64_value(s[i + k]);
            if (d < 0) return -1;
            v = v << 6 | (uint32_t)d;
        }
        out[o++] = v >> 16;
        if (i + 4 < n || pad < 2) out[o++] = (v >> 8) & 0xFF;
        if (i + 4 < n || pad < 1) out[o++] = v & 0xFF;
    }
    return o;
}

/* Meta's tiktoken file: lines "base64(token bytes) rank". Ranks must be 0..n-1, each once. */
static tokenizer *tiktoken_load(const mfile *f, char *err, size_t errlen) {
    const uint8_t *s = f->data, *end = f->data + f->size;
    int n = 0;
    for (const uint8_t *p = s; p < end; p++) n += *p == '\n';
    if (f->size && end[-1] != '\n') n++;
    if (n == 0 || n > (1 << 24)) { snprintf(err, errlen, "%d lines (expected 1 to 16M lines 'base64 rank')", n); return NULL; }
    tokenizer *t = tok_new(TOK_BPE, n + LLAMA3_N_SPECIAL, f->size + 64 * LLAMA3_N_SPECIAL);
    size_t *start = xmalloc((size_t)n * sizeof(size_t)), *len = xcalloc((size_t)n, sizeof(size_t));
    for (int i = 0; i < n; i++) start[i] = SIZE_MAX;
    size_t a = 0;
    const uint8_t *p = s;
    for (int line = 1; line <= n; line++) {
        const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        const uint8_t *sp = memchr(p, ' ', (size_t)(e - p));
        if (!sp || sp == p || sp + 1 == e) TOK_ERR("line %d: expected 'base64 rank'", line);
        long long rank = 0;
        for (const uint8_t *q = sp + 1; q < e; q++) {
            if (*q < '0' || *q > '9' || rank > n) TOK_ERR("line %d: bad rank '%.*s'", line, (int)(e - sp - 1 > 20 ? 20 : e - sp - 1), (const char *)sp + 1);
            rank = rank * 10 + (*q - '0');
        }
        if (rank >= n) TOK_ERR("line %d: rank %lld out of range (the file has %d tokens)", line, rank, n);
        if (start[rank] != SIZE_MAX) TOK_ERR("line %d: rank %lld appears twice", line, rank);
        long m = b64_decode(p, (size_t)(sp - p), t->arena + a);
        if (m <= 0) TOK_ERR("line %d: bad base64 '%.*s'", line, (int)(sp - p > 40 ? 40 : sp - p), (const char *)p);
        start[rank] = a; len[rank] = (size_t)m;
        a += (size_t)m;
        p = e + 1;
    }
    /* Arena holds tokens in file order; lay the offsets out in id order. */
    uint8_t *arena = xmalloc(a + 64 * LLAMA3_N_SPECIAL);
    size_t o = 0;
    for (int id = 0; id < n; id++) {
        t->off[id] = o;
        memcpy(arena + o, t->arena + start[id], len[id]);
        o += len[id];
    }
    free(t->arena);
    t->arena = arena;
    t->n_special = LLAMA3_N_SPECIAL;
    t->special = xmalloc(LLAMA3_N_SPECIAL * sizeof(int));
    for (int i = 0; i < LLAMA3_N_SPECIAL; i++) {
        char name[64];
        if (i < 11) snprintf(name, sizeof name, "%s", llama3_specials[i]);
        else snprintf(name, sizeof name, "<|reserved_special_token_%d|>", i - 8);
        t->off[n + i] = o;
        memcpy(arena + o, name, strlen(name));
        o += strlen(name);
        t->special[i] = n + i;
    }
    t->off[n + LLAMA3_N_SPECIAL] = o;
    free(start); free(len);
    t->bos = n; t->eos = n + 1;
    t->ignore_merges = 1;
    tok_build_map(t);
    if (bpe_finish(t, err, errlen) != 0) { tokenizer_free(t); return NULL; }
    /* The merge table: a pair of tokens merges when their concatenation is a token, at that
     * token's rank (tiktoken's rule). Enumerate every split of every token. */
    size_t pairs = 0;
    for (int id = 0; id < n; id++) pairs += tok_len(t, id) ? tok_len(t, id) - 1 : 0;
    pair_alloc(t, pairs);
    for (int id = 0; id < n; id++) {
        size_t m = tok_len(t, id);
        const uint8_t *b = tok_bytes(t, id);
        for (size_t k = 1; k < m; k++) {
            int l = tok_lookup(t, b, k), r = tok_lookup(t, b + k, m - k);
            if (l >= 0 && r >= 0 && !t->is_special[l] && !t->is_special[r]) pair_put(t, l, r, id, id);
        }
    }
    return t;
fail:
    free(start); free(len);
    tokenizer_free(t);
    return NULL;
}

/* GPT-2's byte-level alphabet: byte b is shown as code point byte_char(b) in tokenizer.json. */
static uint32_t byte_char(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int k = 0; /* the k-th byte outside those ranges maps to U+0100 + k */
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) k++;
    return 256 + (uint32_t)k;
}
/* Byte-level string s[0..n) -> raw bytes in out; returns the count or -1. */
static long byte_level_decode(const uint8_t *s, size_t n, uint8_t *out, const int16_t *inv) {
    long o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)utf8_decode(s + i, n - i, &cp);
        if (cp >= 324 || inv[cp] < 0) return -1;
        out[o++] = (uint8_t)inv[cp];
    }
    return o;
}

static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Checks that a tokenizer.json pre_tokenizer is the Llama 3 one: a Split on LLAMA3_PATTERN
 * followed by ByteLevel without its own regex (possibly nested in a Sequence). */
static int hf_check_pretok(const json *j, int pt, int *saw_split, int *saw_bytelevel) {
    if (pt < 0 || j->t[pt].type != J_OBJ) return -1;
    int type = json_get(j, pt, "type");
    if (json_streq(j, type, "Sequence")) {
        int arr = json_get(j, pt, "pretokenizers");
        if (arr < 0 || j->t[arr].type != J_ARR) return -1;
        for (int i = 0, k = arr + 1; i < j->t[arr].n; i++, k = json_next(j, k))
            if (hf_check_pretok(j, k, saw_split, saw_bytelevel) != 0) return -1;
        return 0;
    }
    if (json_streq(j, type, "Split")) {
        int pat = json_get(j, json_get(j, pt, "pattern"), "Regex");
        if (*saw_split || !json_streq(j, pat, LLAMA3_PATTERN) || !json_streq(j, json_get(j, pt, "behavior"), "Isolated")) return -1;
        int inv = json_get(j, pt, "invert");
        if (inv >= 0 && j->t[inv].type != J_FALSE) return -1;
        *saw_split = 1;
        return 0;
    }
    if (json_streq(j, type, "ByteLevel")) {
        int re = json_get(j, pt, "use_regex"), ap = json_get(j, pt, "add_prefix_space");
        if (!*saw_split || (re >= 0 && j->t[re].type != J_FALSE) || (ap >= 0 && j->t[ap].type != J_FALSE)) return -1;
        *saw_bytelevel = 1;
        return 0;
    }
    return -1;
}

/* Hugging Face tokenizer.json with a byte-level BPE model and the Llama 3 pre-tokenizer. */
static tokenizer *hf_json_load(const mfile *f, char *err, size_t errlen) {
    json j;
    tokenizer *t = NULL;
    uint8_t *buf = NULL;
    if (json_parse(&j, (const char *)f->data, f->size) != 0) { snprintf(err, errlen, "bad JSON: %s", j.err); json_free(&j); return NULL; }
    int model = json_get(&j, 0, "model");
    int vocab = json_get(&j, model, "vocab"), merges = json_get(&j, model, "merges");
    int added = json_get(&j, 0, "added_tokens");
    int sp = 0, bl = 0;
    if (model < 0 || (json_get(&j, model, "type") >= 0 && !json_streq(&j, json_get(&j, model, "type"), "BPE")))
        TOK_ERR("\"model\" is not a BPE model (only byte-level BPE tokenizer.json files are supported)");
    if (vocab < 0 || j.t[vocab].type != J_OBJ || merges < 0 || j.t[merges].type != J_ARR)
        TOK_ERR("\"model\" needs a \"vocab\" object and a \"merges\" array");
    int norm = json_get(&j, 0, "normalizer");
    if (norm >= 0 && j.t[norm].type != J_NULL) TOK_ERR("a \"normalizer\" is not supported (Llama 3 has none)");
    if (hf_check_pretok(&j, json_get(&j, 0, "pre_tokenizer"), &sp, &bl) != 0 || !sp || !bl)
        TOK_ERR("\"pre_tokenizer\" is not Llama 3's (Split on its regex, then ByteLevel)");
    /* Ids: vocab values and added token ids, all below 1<<24. */
    int16_t inv[324];
    for (int c = 0; c < 324; c++) inv[c] = -1;
    for (int b = 0; b < 256; b++) inv[byte_char(b)] = (int16_t)b;
    long long max_id = -1, id;
    size_t arena = 0;
    for (int i = 0, k = vocab + 1; i < j.t[vocab].n; i++, k = json_next(&j, k + 1)) {
        if (json_integer(&j, k + 1, 0, (1 << 24) - 1, &id) != 0) TOK_ERR("vocab entry %d: id is not an integer in [0, 2^24)", i);
        if (id > max_id) max_id = id;
        arena += (size_t)(j.t[k].end - j.t[k].start);
    }
    if (added >= 0 && j.t[added].type != J_ARR) TOK_ERR("\"added_tokens\" is not an array");
    int n_added = added >= 0 ? j.t[added].n : 0;
    for (int i = 0, k = added + 1; i < n_added; i++, k = json_next(&j, k)) {
        int c = json_get(&j, k, "content");
        if (json_integer(&j, json_get(&j, k, "id"), 0, (1 << 24) - 1, &id) != 0 || c < 0 || j.t[c].type != J_STR)
            TOK_ERR("added_tokens[%d]: needs an integer \"id\" and a string \"content\"", i);
        if (id > max_id) max_id = id;
        arena += (size_t)(j.t[c].end - j.t[c].start);
    }
    if (max_id < 0) TOK_ERR("empty vocabulary");
    t = tok_new(TOK_BPE, (int)max_id + 1, arena + 1);
    /* Fill token bytes: first collect (id, bytes) into a temporary array, then lay out by id. */
    size_t *len = xcalloc((size_t)t->n_vocab, sizeof(size_t)), *pos = xcalloc((size_t)t->n_vocab, sizeof(size_t));
    uint8_t *tmp = xmalloc(arena + 1);
    char *seen = xcalloc((size_t)t->n_vocab, 1);
    size_t a = 0;
    for (int i = 0, k = vocab + 1; i < j.t[vocab].n; i++, k = json_next(&j, k + 1)) {
        size_t n;
        char *s = json_string_dup(&j, k, &n);
        json_integer(&j, k + 1, 0, (1 << 24) - 1, &id);
        long m = byte_level_decode((const uint8_t *)s, n, tmp + a, inv);
        free(s);
        if (m <= 0) { free(len); free(pos); free(tmp); free(seen); TOK_ERR("vocab entry %d is not a byte-level token", i); }
        if (seen[id]) { free(len); free(pos); free(tmp); free(seen); TOK_ERR("vocab id %lld appears twice", id); }
        seen[id] = 1; pos[id] = a; len[id] = (size_t)m; a += (size_t)m;
    }
    t->special = xmalloc((size_t)(n_added ? n_added : 1) * sizeof(int));
    for (int i = 0, k = added + 1; i < n_added; i++, k = json_next(&j, k)) {
        size_t n;
        char *s = json_string_dup(&j, json_get(&j, k, "content"), &n);
        json_integer(&j, json_get(&j, k, "id"), 0, (1 << 24) - 1, &id);
        if (n == 0) { free(s); free(len); free(pos); free(tmp); free(seen); TOK_ERR("added_tokens[%d] is empty", i); }
        memcpy(tmp + a, s, n);
        free(s);
        pos[id] = a; len[id] = n; a += n; seen[id] = 1;
        t->special[t->n_special++] = (int)id;
    }
    size_t o = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        t->off[i] = o;
        memcpy(t->arena + o, tmp + pos[i], len[i]);
        o += len[i];
    }
    t->off[t->n_vocab] = o;
    free(len); free(pos); free(tmp); free(seen);
    tok_build_map(t);
    if (bpe_finish(t, err, errlen) != 0) goto fail;
    int im = json_get(&j, model, "ignore_merges");
    t->ignore_merges = im >= 0 && j.t[im].type == J_TRUE;
    /* Merges: "left right" strings (older files) or ["left", "right"] pairs; rank = position. */
    pair_alloc(t, (size_t)j.t[merges].n);
    buf = xmalloc(2 * (size_t)f->size + 8);
    for (int i = 0, k = merges + 1; i < j.t[merges].n; i++, k = json_next(&j, k)) {
        size_t n1 = 0, n2 = 0;
        char *s1 = NULL, *s2 = NULL;
        if (j.t[k].type == J_STR) {
            s1 = json_string_dup(&j, k, &n1);
            char *spc = memchr(s1, ' ', n1);
            if (spc) { s2 = xstrdup(spc + 1); n2 = n1 - (size_t)(spc - s1) - 1; n1 = (size_t)(spc - s1); }
        } else if (j.t[k].type == J_ARR && j.t[k].n == 2) {
            s1 = json_string_dup(&j, k + 1, &n1);
            s2 = json_string_dup(&j, json_next(&j, k + 1), &n2);
        }
        long m1 = s1 && s2 ? byte_level_decode((const uint8_t *)s1, n1, buf, inv) : -1;
        long m2 = m1 > 0 ? byte_level_decode((const uint8_t *)s2, n2, buf + m1, inv) : -1;
        free(s1); free(s2);
        if (m2 <= 0) TOK_ERR("merges[%d] is not a pair of byte-level tokens", i);
        int l = tok_lookup(t, buf, (size_t)m1), r = tok_lookup(t, buf + m1, (size_t)m2), lr = tok_lookup(t, buf, (size_t)(m1 + m2));
        if (l < 0 || r < 0 || lr < 0 || t->is_special[l] || t->is_special[r] || t->is_special[lr])
            TOK_ERR("merges[%d]: a token of the merge is not in the vocab", i);
        pair_put(t, l, r, i, lr);
    }
    free(buf); buf = NULL;
    /* BOS/EOS by name. */
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>"}, *const eos_names[] = {"<|end_of_text|>", "</s>"};
    for (int i = 1; i >= 0; i--) {
        int b = tok_lookup(t, bos_names[i], strlen(bos_names[i])), e = tok_lookup(t, eos_names[i], strlen(eos_names[i]));
        if (b >= 0) t->bos = b;
        if (e >= 0) t->eos = e;
    }
    json_free(&j);
    return t;
fail:
    free(buf);
    json_free(&j);
    tokenizer_free(t);
    return NULL;
}

/* llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 len, bytes.
 * The token count is not stored: records run to the end of the file. */
static tokenizer *llama2c_tok_load(const mfile *f, char *err, size_t errlen) {
    const uint8_t *s = f->data;
    size_t size = f->size, p = 4;
    int32_t max_len, len;
    if (size < 4) { snprintf(err, errlen, "too short for a llama2.c tokenizer.bin (%zu bytes)", size); return NULL; }
    memcpy(&max_len, s, 4);
    if (max_len < 1 || max_len > 65536) { snprintf(err, errlen, "max_token_length %d is not in [1, 65536] (not a llama2.c tokenizer.bin?)", max_len); return NULL; }
    int n = 0;
    while (p < size) {
        if (size - p < 8) { snprintf(err, errlen, "truncated in token %d's header (llama2.c tokenizer.bin)", n); return NULL; }
        memcpy(&len, s + p + 4, 4);
        if (len < 0 || len > max_len) { snprintf(err, errlen, "token %d: length %d not in [0, max_token_length %d]", n, len, max_len); return NULL; }
        if (size - p - 8 < (size_t)len) { snprintf(err, errlen, "truncated in token %d's %d bytes (llama2.c tokenizer.bin)", n, len); return NULL; }
        p += 8 + (size_t)len;
        if (++n > (1 << 24)) { snprintf(err, errlen, "more than 2^24 tokens"); return NULL; }
    }
    if (n < 259) { snprintf(err, errlen, "%d tokens: a llama2.c vocabulary has <unk>, <s>, </s> and 256 byte tokens", n); return NULL; }
    tokenizer *t = tok_new(TOK_SPM, n, size);
    t->score = xmalloc((size_t)n * sizeof(float));
    size_t o = 0;
    p = 4;
    for (int i = 0; i < n; i++) {
        memcpy(&t->score[i], s + p, 4);
        memcpy(&len, s + p + 4, 4);
        t->off[i] = o;
        memcpy(t->arena + o, s + p + 8, (size_t)len);
        o += (size_t)len;
        p += 8 + (size_t)len;
    }
    t->off[n] = o;
    tok_build_map(t);
    t->bos = 1; t->eos = 2;
    if ((t->space_id = tok_lookup(t, " ", 1)) < 0) {
        snprintf(err, errlen, "no \" \" token (run.c's encode() prepends one as a dummy prefix)");
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

/* Loads a tokenizer file or model directory; NULL with a message in err on failure. */
static tokenizer *tokenizer_try_load(const char *path, char *err, size_t errlen) {
    if (is_directory(path)) {
        static const char *const names[] = {"tokenizer.json", "original/tokenizer.model", "tokenizer.model"};
        char buf[4096];
        for (int i = 0; i < 3; i++) {
            snprintf(buf, sizeof buf, "%s/%s", path, names[i]);
            if (file_exists(buf)) return tokenizer_try_load(buf, err, errlen);
        }
        snprintf(err, errlen, "%s: no tokenizer.json, original/tokenizer.model or tokenizer.model in this directory", path);
        return NULL;
    }
    mfile f;
    char msg[400];
    if (mfile_open(&f, path, err, errlen) != 0) return NULL;
    tokenizer *t = NULL;
    size_t i = 0;
    while (i < f.size && (f.data[i] == ' ' || f.data[i] == '\n' || f.data[i] == '\r' || f.data[i] == '\t')) i++;
    /* A tiktoken file starts with a line "base64 digits". */
    size_t k = 0;
    while (k < f.size && b64_value(f.data[k]) >= 0) k++;
    while (k < f.size && f.data[k] == '=') k++;
    int tiktoken_like = k > 0 && k < f.size && f.data[k] == ' ' && k + 1 < f.size && isdigit(f.data[k + 1]);
    if (i < f.size && f.data[i] == '{') t = hf_json_load(&f, msg, sizeof msg);
    else if (tiktoken_like) t = tiktoken_load(&f, msg, sizeof msg);
    else t = llama2c_tok_load(&f, msg, sizeof msg);
    if (!t) snprintf(err, errlen, "%s: %s", path, msg);
    mfile_close(&f);
    return t;
}
/* path: Meta tiktoken `tokenizer.model`, Hugging Face `tokenizer.json`, llama2.c `tokenizer.bin`
 * (format detected from content), or a directory (HF model dir: tokenizer.json, else
 * original/tokenizer.model, else tokenizer.model). fatal() with a one-line message on any error. */
/* Whether a file has a plausible llama2.c checkpoint header whose weights fit in it (to tell a user
 * who passed a model where a tokenizer belongs). */
static int looks_like_llama2c(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    int32_t h[7];
    int ok = fread(h, 4, 7, fp) == 7 && fseek(fp, 0, SEEK_END) == 0;
    long size = ok ? ftell(fp) : -1;
    fclose(fp);
    if (!ok || size < 28 || llama2c_header_bad(h)) return 0;
    uint64_t D = (uint64_t)h[0], L = (uint64_t)h[2], V = (uint64_t)(h[5] < 0 ? -h[5] : h[5]);
    return (uint64_t)(size - 28) / 4 >= V * D + L * D * D;
}
tokenizer *tokenizer_load(const char *path) {
    char err[600];
    tokenizer *t = tokenizer_try_load(path, err, sizeof err);
    if (!t && looks_like_llama2c(path))
        fatal("%s is a llama2.c model checkpoint, not a tokenizer: llama2.c checkpoints carry none (pass its tokenizer with --tokenizer, e.g. tok512.bin or llama2.c's tokenizer.bin)", path);
    if (!t) fatal("%s", err);
    return t;
}
/* The tokenizer of a run (--tokenizer FILE, else the one beside the model), checked against the model:
 * not more tokens than its vocabulary, not far fewer (a vocabulary may be padded past its tokenizer;
 * here by at most 1024 rows), and the BOS id of config.json (or the llama2.c convention, 1). */
static tokenizer *run_tokenizer(const char *tok_path, const char *model_path, const Config *c) {
    tokenizer *tk = tok_path ? tokenizer_load(tok_path) : tokenizer_for_model(model_path);
    const char *name = tok_path ? tok_path : "the tokenizer beside the model";
    int n = tokenizer_vocab_size(tk), bos = tokenizer_bos(tk);
    if (n > c->vocab_size) fatal("%s has %d tokens but the model's vocabulary is %d: not this model's tokenizer", name, n, c->vocab_size);
    if (n < c->vocab_size - 1024) fatal("%s has %d tokens but the model's vocabulary is %d: not this model's tokenizer", name, n, c->vocab_size);
    if (bos >= 0 && c->bos_id >= 0 && bos != c->bos_id)
        fatal("%s: its BOS is token %d, the model's bos_token_id is %d: not this model's tokenizer (or a truncated one)", name, bos, c->bos_id);
    /* EOS: the tokenizer's (tokenizer_config.json's eos_token beside the model, else <|end_of_text|> / </s>) should be one of the
     * ids config.json lists. It only decides where `generate` stops (config.json's ids do), so a mismatch is a warning. */
    int eos = tokenizer_eos(tk), listed = eos < 0 || c->n_eos == 0;
    if (model_path && is_directory(model_path) && !tok_path) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer_config.json", model_path);
        size_t len;
        char *text = read_text_file(p, &len);
        json j;
        if (text && json_parse(&j, text, len) == 0) {
            int k = json_get(&j, 0, "eos_token");
            if (k >= 0 && j.t[k].type == J_OBJ) k = json_get(&j, k, "content");
            char *nm = k >= 0 && j.t[k].type == J_STR ? json_string_dup(&j, k, NULL) : NULL;
            int id = nm ? tok_lookup(tk, nm, strlen(nm)) : -1;
            if (id >= 0) { eos = id; listed = c->n_eos == 0; }
            free(nm);
            json_free(&j);
        }
        free(text);
    }
    for (int e = 0; e < c->n_eos; e++) listed |= eos == c->eos_ids[e];
    if (!listed) fprintf(stderr, "llama_fp8: warning: %s: its EOS is token %d, not among the model's eos_token_id (%d%s): generate stops at the model's\n",
                         name, eos, c->eos_ids[0], c->n_eos > 1 ? ", ..." : "");
    return tk;
}
/* Tokenizer beside a model: an HF directory -> tokenizer_load(dir); a llama2.c `X.bin` ->
 * `tokenizer.bin` in the same directory. fatal() naming what was looked for if none. */
tokenizer *tokenizer_for_model(const char *model_path) {
    if (is_directory(model_path)) return tokenizer_load(model_path);
    const char *slash = strrchr(model_path, '/');
    size_t dir = slash ? (size_t)(slash - model_path) + 1 : 0;
    char *p = xmalloc(dir + 16);
    memcpy(p, model_path, dir);
    strcpy(p + dir, "tokenizer.bin");
    if (!file_exists(p)) fatal("no tokenizer for %s: looked for %s (name one with --tokenizer FILE)", model_path, p);
    tokenizer *t = tokenizer_load(p);
    free(p);
    return t;
}
int tokenizer_vocab_size(const tokenizer *t) { return t->n_vocab; } /* 128256 for Llama 3 */
int tokenizer_bos(const tokenizer *t) { return t->bos; } /* 128000 for Llama 3, 1 for llama2.c */
int tokenizer_eos(const tokenizer *t) { return t->eos; }

/* ---- Encoding ---- */
/* The merge loop shared by both tokenizers. Symbols form a linked list (sym_next); the heap holds
 * every adjacent pair that could merge, keyed by (key, left position): BPE key = merge rank,
 * llama2.c key = -score. A popped pair is stale if either side changed since it was pushed. */
typedef struct { double key; int left, right, left_id, right_id, merged; } tok_cand;
typedef struct {
    int *id, *next, *prev;  /* (cap) symbols; id -1 = merged away */
    tok_cand *heap;         /* (cap) binary min-heap */
    int nheap, cap;
    uint8_t *buf;           /* scratch for llama2.c string concatenation */
    size_t bufcap;
    int *out;               /* the ids being produced */
    size_t nout, outcap;
} tok_work;

static void work_reserve(tok_work *w, int n) {
    if (n <= w->cap) return;
    w->cap = n * 2;
    w->id = xrealloc(w->id, (size_t)w->cap * sizeof(int));
    w->next = xrealloc(w->next, (size_t)w->cap * sizeof(int));
    w->prev = xrealloc(w->prev, (size_t)w->cap * sizeof(int));
    w->heap = xrealloc(w->heap, (size_t)w->cap * 2 * sizeof(tok_cand));
}
static void out_push(tok_work *w, int id) {
    if (w->nout == w->outcap) w->out = xrealloc(w->out, (w->outcap = w->outcap ? 2 * w->outcap : 1024) * sizeof(int));
    w->out[w->nout++] = id;
}
static int cand_less(const tok_cand *a, const tok_cand *b) { return a->key < b->key || (a->key == b->key && a->left < b->left); }
static void heap_push(tok_work *w, tok_cand c) {
    int i = w->nheap++;
    while (i > 0 && cand_less(&c, &w->heap[(i - 1) / 2])) { w->heap[i] = w->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    w->heap[i] = c;
}
static tok_cand heap_pop(tok_work *w) {
    tok_cand top = w->heap[0], last = w->heap[--w->nheap];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= w->nheap) break;
        if (c + 1 < w->nheap && cand_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    w->heap[i] = last;
    return top;
}
/* Pushes the pair (a, next a) if it can merge. */
static void push_pair(const tokenizer *t, tok_work *w, int a, int b) {
    tok_cand c = {0, a, b, w->id[a], w->id[b], -1};
    if (t->kind == TOK_BPE) {
        int rank = pair_get(t, c.left_id, c.right_id, &c.merged);
        if (rank < 0) return;
        c.key = rank;
    } else { /* run.c: sprintf("%s%s") then str_lookup; merges only if score > -1e10 */
        size_t n1 = tok_len(t, c.left_id), n2 = tok_len(t, c.right_id);
        if (n1 + n2 > w->bufcap) w->buf = xrealloc(w->buf, w->bufcap = 2 * (n1 + n2));
        memcpy(w->buf, tok_bytes(t, c.left_id), n1);
        memcpy(w->buf + n1, tok_bytes(t, c.right_id), n2);
        c.merged = tok_lookup(t, w->buf, n1 + n2);
        if (c.merged < 0 || !(t->score[c.merged] > -1e10f)) return;
        c.key = -(double)t->score[c.merged];
    }
    heap_push(w, c);
}
/* Merges symbols 0..n-1 (ids in w->id) to the end and appends the result to w->out. */
static void merge_all(const tokenizer *t, tok_work *w, int n) {
    for (int i = 0; i < n; i++) { w->next[i] = i + 1; w->prev[i] = i - 1; }
    w->nheap = 0;
    for (int i = 0; i + 1 < n; i++) push_pair(t, w, i, i + 1);
    while (w->nheap > 0) {
        tok_cand c = heap_pop(w);
        if (w->id[c.left] != c.left_id || w->next[c.left] != c.right || w->id[c.right] != c.right_id) continue;
        w->id[c.left] = c.merged;
        w->id[c.right] = -1;
        w->next[c.left] = w->next[c.right];
        if (w->next[c.left] < n) w->prev[w->next[c.left]] = c.left;
        if (w->prev[c.left] >= 0) push_pair(t, w, w->prev[c.left], c.left);
        if (w->next[c.left] < n) push_pair(t, w, c.left, w->next[c.left]);
    }
    for (int i = 0; i < n; i = w->next[i]) out_push(w, w->id[i]);
}
/* One pre-tokenizer piece: whole if it is a token (tiktoken; HF ignore_merges), else BPE from bytes. */
static void bpe_piece(const tokenizer *t, tok_work *w, const uint8_t *p, size_t n) {
    int id;
    if (t->ignore_merges && (id = tok_lookup(t, p, n)) >= 0 && !t->is_special[id]) { out_push(w, id); return; }
    if (n == 1) { out_push(w, t->byte_id[p[0]]); return; }
    if (n > INT_MAX / 4) fatal("tokenizer: a single pre-token of %zu bytes is too long", n);
    work_reserve(w, (int)n);
    for (size_t i = 0; i < n; i++) w->id[i] = t->byte_id[p[i]];
    merge_all(t, w, (int)n);
}
static void bpe_text(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t e = llama3_piece(s, n, i);
        bpe_piece(t, w, s + i, e - i);
        i = e;
    }
}
/* run.c encode(): dummy prefix " ", one token per UTF-8 code point (up to 4 bytes, as run.c
 * groups them) or its bytes + 3, then merges. BOS, when asked, takes part in the merges as in run.c. */
static void spm_text(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n, int bos) {
    if (n > (size_t)INT_MAX / 4 - 8) fatal("tokenizer: text of %zu bytes is too long", n);
    work_reserve(w, (int)n + 2);
    int k = 0;
    if (bos) w->id[k++] = t->bos;
    if (n > 0) w->id[k++] = t->space_id;
    size_t len = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) len = 0;
        if (len == 0) start = i;
        len++;
        uint8_t next = i + 1 < n ? s[i + 1] : 0;
        if ((next & 0xC0) == 0x80 && len < 4) continue;
        int id = tok_lookup(t, s + start, len);
        if (id >= 0) w->id[k++] = id;
        else for (size_t b = 0; b < len; b++) w->id[k++] = s[start + b] + 3;
        len = 0;
    }
    merge_all(t, w, k);
}

/* Encodes text[0..len) (any bytes) as plain text, prepending BOS when bos != 0. Special-token
 * strings (<|eot_id|> ...) become their ids only when special != 0 (BPE only; llama2.c has none).
 * Returns the count; *ids is malloc'd, the caller frees it. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int bos, int special, int **ids) {
    tok_work w = {0};
    if (bos && t->bos < 0) fatal("tokenizer: BOS requested, but the vocabulary has no <|begin_of_text|> or <s> token");
    const uint8_t *s = (const uint8_t *)text;
    if (t->kind == TOK_SPM) {
        spm_text(t, &w, s, len, bos);
    } else {
        if (bos) out_push(&w, t->bos);
        size_t from = 0;
        if (special && t->n_special > 0) {
            /* Split at special-token strings: leftmost occurrence, longest at that position. */
            for (size_t i = 0; i < len; i++) {
                if (!t->special_first[s[i]]) continue;
                int best = -1;
                size_t best_len = 0;
                for (int k = 0; k < t->n_special; k++) {
                    size_t m = tok_len(t, t->special[k]);
                    if (m > best_len && m <= len - i && memcmp(s + i, tok_bytes(t, t->special[k]), m) == 0) { best = t->special[k]; best_len = m; }
                }
                if (best < 0) continue;
                bpe_text(t, &w, s + from, i - from);
                out_push(&w, best);
                from = i + best_len;
                i = from - 1;
            }
        }
        bpe_text(t, &w, s + from, len - from);
    }
    free(w.id); free(w.next); free(w.prev); free(w.heap); free(w.buf);
    if (w.nout > INT_MAX) fatal("tokenizer: more than 2^31 tokens");
    *ids = w.out ? w.out : xmalloc(sizeof(int));
    return (int)w.nout;
}

/* ---- Decoding ---- */
/* Bytes of token id (*len of them, not NUL-terminated) as printed after token prev: for BPE the
 * raw token bytes; for llama2.c run.c's decode() (leading space dropped after BOS, <0xXX> -> byte). */
const char *tokenizer_decode(const tokenizer *t, int prev, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) fatal("tokenizer: token id %d is outside the vocabulary [0, %d)", id, t->n_vocab);
    const char *p = (const char *)tok_bytes(t, id);
    size_t n = tok_len(t, id);
    if (t->kind == TOK_SPM) {
        /* run.c decode(): after BOS a leading space is dropped; "<0xXX>" is the raw byte XX. */
        if (prev == t->bos && n > 0 && p[0] == ' ') { p++; n--; }
        if (n == 6 && memcmp(p, "<0x", 3) == 0 && isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4]) && p[5] == '>') {
            int b = (int)strtol((char[3]){p[3], p[4], 0}, NULL, 16);
            p = (const char *)&t->all_bytes[b];
            n = 1;
        }
    }
    *len = n;
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* A4. Appendix: SHA-256, SVG, synth                                                          */
/* ------------------------------------------------------------------------------------------ */
/* ---- SHA-256 (FIPS 180-4), to record which calibration text produced a scales file ---- */
typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; int n; } sha256_ctx;
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROR32(x, r) (((x) >> (r)) | ((x) << (32 - (r))))
static void sha256_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, c->h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR32(a[4], 6) ^ ROR32(a[4], 11) ^ ROR32(a[4], 25), ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
        uint32_t t1 = a[7] + S1 + ch + sha256_k[i] + w[i];
        uint32_t S0 = ROR32(a[0], 2) ^ ROR32(a[0], 13) ^ ROR32(a[0], 22), mj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
        memmove(a + 1, a, 7 * sizeof(uint32_t));
        a[4] += t1;
        a[0] = t1 + S0 + mj;
    }
    for (int i = 0; i < 8; i++) c->h[i] += a[i];
}
static void sha256_init(sha256_ctx *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0); c->len = 0; c->n = 0;
}
static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    c->len += n;
    while (n--) { c->buf[c->n++] = *p++; if (c->n == 64) { sha256_block(c, c->buf); c->n = 0; } }
}
static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    sha256_update(c, &pad, 1);
    while (c->n != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 32; i++) out[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}
/* hex digest of a buffer into hex[65] */
static void sha256_hex(const void *data, size_t n, char hex[65]) {
    sha256_ctx c; uint8_t d[32];
    sha256_init(&c); sha256_update(&c, data, n); sha256_final(&c, d);
    for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", d[i]);
}

/* A hand-written SVG: per layer, the activation absmax of each site (log scale) and its per-tensor vs
 * per-token E4M3 SNR. */
static void stats_svg(const char *path, const StatsRun *r, const char *title) {
    static const char *const col[N_SITES] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759"};
    int nl = r->n_layers, W = 120 + nl * 4 * 22 + nl * 16, H = 620;
    if (W < 640) W = 640;
    double lmin = INFINITY, lmax = -INFINITY, smax = 0;
    for (int l = 0; l < nl; l++)
        for (int si = 0; si < N_SITES; si++) {
            const SiteStats *S = &r->st[(size_t)l * N_SITES + si];
            if (S->absmax > 0) { lmin = fmin(lmin, log10(S->absmax)); lmax = fmax(lmax, log10(S->absmax)); }
            double a = snr_db(S->sig, S->e_tensor), b = snr_db(S->sig, S->e_token);
            if (isfinite(a)) smax = fmax(smax, a);
            if (isfinite(b)) smax = fmax(smax, b);
        }
    if (!isfinite(lmin)) { lmin = 0; lmax = 1; }
    lmin = floor(lmin); lmax = ceil(lmax); if (lmax <= lmin) lmax = lmin + 1;
    smax = ceil(smax / 10) * 10; if (smax <= 0) smax = 10;
    atomic_file af;
    atomic_open(&af, path);
    FILE *fp = af.fp;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H);
    fprintf(fp, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"18\" font-size=\"14\">");
    for (const char *p = title; *p; p++) { if (*p == '<') fputs("&lt;", fp); else if (*p == '&') fputs("&amp;", fp); else fputc(*p, fp); }
    fprintf(fp, "</text>\n");
    for (int si = 0; si < N_SITES; si++)
        fprintf(fp, "<rect x=\"%d\" y=\"28\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"37\">%s</text>\n", 10 + si * 90, col[si], 24 + si * 90, site_names[si]);
    for (int panel = 0; panel < 2; panel++) {
        int y0 = panel ? 340 : 60, ph = 230, x0 = 70;
        fprintf(fp, "<text x=\"10\" y=\"%d\">%s</text>\n", y0 - 6,
                panel ? "E4M3 quantization SNR (dB): per-tensor static scale (solid) vs per-token (outline)" : "activation absmax (log scale)");
        for (int g = 0; g <= 4; g++) {
            double v = panel ? smax * g / 4 : lmin + (lmax - lmin) * g / 4;
            int y = y0 + ph - (int)(ph * g / 4.0);
            fprintf(fp, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"8\" y=\"%d\">%.3g</text>\n", x0, y, W - 10, y, y + 4, panel ? v : pow(10, v));
        }
        for (int l = 0; l < nl; l++) {
            int gx = x0 + 10 + l * (4 * 22 + 16);
            fprintf(fp, "<text x=\"%d\" y=\"%d\">L%d</text>\n", gx + 30, y0 + ph + 14, l);
            for (int si = 0; si < N_SITES; si++) {
                const SiteStats *S = &r->st[(size_t)l * N_SITES + si];
                int x = gx + si * 22;
                if (!panel) {
                    double v = S->absmax > 0 ? (log10(S->absmax) - lmin) / (lmax - lmin) : 0;
                    int h = (int)(ph * v);
                    fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"18\" height=\"%d\" fill=\"%s\"><title>layer %d %s absmax %.4g</title></rect>\n", x, y0 + ph - h, h, col[si], l, site_names[si], S->absmax);
                } else {
                    double a = snr_db(S->sig, S->e_tensor), b = snr_db(S->sig, S->e_token);
                    int ha = isfinite(a) ? (int)(ph * fmax(a, 0) / smax) : ph, hb = isfinite(b) ? (int)(ph * fmax(b, 0) / smax) : ph;
                    fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"9\" height=\"%d\" fill=\"%s\"><title>layer %d %s per-tensor %.2f dB</title></rect>\n", x, y0 + ph - ha, ha, col[si], l, site_names[si], a);
                    fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"8\" height=\"%d\" fill=\"none\" stroke=\"%s\"><title>layer %d %s per-token %.2f dB</title></rect>\n", x + 9, y0 + ph - hb, hb, col[si], l, site_names[si], b);
                }
            }
        }
    }
    fprintf(fp, "</svg>\n");
    atomic_commit(&af);
}

/* ---- llama_fp8 synth: a checkpoint with real Llama shapes and tensor names, random weights ---- */
/* For benchmarks and loader tests at full size without downloading anything: writes config.json,
 * sharded model-0000i-of-0000n.safetensors and model.safetensors.index.json exactly as Hugging Face
 * lays them out. Weights are bf16, uniform with std 0.02 (norms 1.0), deterministic in --seed. */
typedef struct {
    const st_entry *e;
    uint64_t seed;
    int first; /* global index of e[0] */
} synth_ctx;
static void synth_fill(void *vctx, int i, void *buf, size_t nbytes) {
    synth_ctx *sc = vctx;
    uint16_t *d = buf;
    size_t n = nbytes / 2;
    if (strstr(sc->e[i].name, "norm")) { for (size_t k = 0; k < n; k++) d[k] = bf16_from_float(1.0f); return; }
    size_t blocks = (n + 65535) / 65536;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        uint64_t s = (sc->seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(sc->first + i) << 40) ^ (b + 1) * 0xBF58476D1CE4E5B9ull;
        if (!s) s = 1;
        for (int w = 0; w < 4; w++) rng_next(&s);
        size_t end = (b + 1) * 65536 < n ? (b + 1) * 65536 : n;
        for (size_t k = b * 65536; k < end; k++) d[k] = bf16_from_float((rng_uniform(&s) * 2 - 1) * 0.0346410162f);
    }
}
static int cmd_synth(int argc, char **argv) {
    const char *out = NULL, *shape = "llama3.1-8b";
    int shards = 4, layers = -1;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llama_fp8 synth -o DIR [--shape llama3.1-8b|llama3.2-1b|tiny|tiny128] [--shards N] [--layers N] [--seed S]\n"
                   "  writes a Hugging Face checkpoint (config.json, sharded safetensors, index) with real tensor names, random bf16 weights\n");
            return 0;
        }
        if (i + 1 >= argc) fatal("synth: option %s needs a value (or is unknown)", argv[i]);
        if (!strcmp(argv[i], "-o")) out = argv[++i];
        else if (!strcmp(argv[i], "--shape")) shape = argv[++i];
        else if (!strcmp(argv[i], "--shards")) shards = (int)parse_long_arg("--shards", argv[++i], 1, 64);
        else if (!strcmp(argv[i], "--layers")) layers = (int)parse_long_arg("--layers", argv[++i], 1, 1000);
        else if (!strcmp(argv[i], "--seed")) seed = (uint64_t)parse_long_arg("--seed", argv[++i], 0, LONG_MAX);
        else fatal("synth: unknown option '%s'", argv[i]);
    }
    if (!out) fatal("synth: -o DIR is required");
    Config c;
    if (!strcmp(shape, "llama3.1-8b"))
        c = (Config){.dim = 4096, .hidden_dim = 14336, .n_layers = 32, .n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .vocab_size = 128256,
                     .max_seq_len = 131072, .norm_eps = 1e-5f, .rope_theta = 500000, .rope_llama3 = 1, .rope_factor = 8,
                     .rope_low_freq_factor = 1, .rope_high_freq_factor = 4, .rope_orig_max_pos = 8192, .bos_id = 128000, .eos_id = 128001};
    else if (!strcmp(shape, "llama3.2-1b"))
        c = (Config){.dim = 2048, .hidden_dim = 8192, .n_layers = 16, .n_heads = 32, .n_kv_heads = 8, .head_dim = 64, .vocab_size = 128256,
                     .max_seq_len = 131072, .norm_eps = 1e-5f, .rope_theta = 500000, .rope_llama3 = 1, .rope_factor = 32,
                     .rope_low_freq_factor = 1, .rope_high_freq_factor = 4, .rope_orig_max_pos = 8192, .tied_embeddings = 1,
                     .bos_id = 128000, .eos_id = 128001};
    else if (!strcmp(shape, "tiny"))
        c = (Config){.dim = 64, .hidden_dim = 176, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .vocab_size = 128256,
                     .max_seq_len = 8192, .norm_eps = 1e-5f, .rope_theta = 500000, .rope_llama3 = 1, .rope_factor = 8,
                     .rope_low_freq_factor = 1, .rope_high_freq_factor = 4, .rope_orig_max_pos = 8192, .bos_id = 128000, .eos_id = 128001};
    else if (!strcmp(shape, "tiny128"))   /* every Linear's K a multiple of 128 (w4a16's groups, 128x128 blocks) */
        c = (Config){.dim = 128, .hidden_dim = 384, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .vocab_size = 128256,
                     .max_seq_len = 8192, .norm_eps = 1e-5f, .rope_theta = 500000, .rope_llama3 = 1, .rope_factor = 8,
                     .rope_low_freq_factor = 1, .rope_high_freq_factor = 4, .rope_orig_max_pos = 8192, .bos_id = 128000, .eos_id = 128001};
    else fatal("synth: unknown --shape '%s' (llama3.1-8b, llama3.2-1b, tiny, tiny128)", shape);
    if (layers > 0) c.n_layers = layers;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) fatal("synth: cannot create %s: %s", out, strerror(errno));
    check_dir_writable(out, "synth: -o");

    /* the tensor list, in Hugging Face's order */
    int n = 0, cap = 3 + 9 * c.n_layers;
    st_entry *e = xcalloc(cap, sizeof *e);
    int qd = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
#define ADD(nm, r, cc) do { st_entry *x_ = &e[n++]; snprintf(x_->name, sizeof x_->name, "%s", nm); x_->dtype = EMU_BF16; \
        x_->ndim = (cc) ? 2 : 1; x_->shape[0] = (r); x_->shape[1] = (cc); } while (0)
    char nm[160];
    ADD("model.embed_tokens.weight", c.vocab_size, c.dim);
    for (int l = 0; l < c.n_layers; l++) {
        static const char *names[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                       "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int rows[9] = {c.dim, qd, kv, kv, c.dim, c.dim, c.hidden_dim, c.hidden_dim, c.dim};
        int cols[9] = {0, c.dim, c.dim, c.dim, qd, 0, c.dim, c.dim, c.hidden_dim};
        for (int w = 0; w < 9; w++) { snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, names[w]); ADD(nm, rows[w], cols[w]); }
    }
    ADD("model.norm.weight", c.dim, 0);
    if (!c.tied_embeddings) ADD("lm_head.weight", c.vocab_size, c.dim);
#undef ADD
    /* split into shards of about equal size, in order */
    size_t total = 0;
    for (int i = 0; i < n; i++) total += st_entry_bytes(&e[i]);
    if (shards > n) shards = n;
    int *shard_of = xmalloc(n * sizeof(int));
    size_t acc = 0;
    for (int i = 0; i < n; i++) { /* by each tensor's midpoint, then renumbered without empty shards */
        size_t b = st_entry_bytes(&e[i]);
        int sh = (int)((acc + b / 2) * shards / total);
        shard_of[i] = sh < shards ? sh : shards - 1;
        acc += b;
    }
    for (int i = 0, id = 0; i < n; i++) {
        int next = i + 1 < n && shard_of[i + 1] != shard_of[i];
        int old = shard_of[i];
        shard_of[i] = id;
        if (next || i + 1 == n) { id++; if (i + 1 == n) shards = id; }
        (void)old;
    }
    char path[4096];
    double t0 = now_seconds();
    for (int sh = 0, i0 = 0; sh < shards; sh++) {
        int i1 = i0;
        while (i1 < n && shard_of[i1] == sh) i1++;
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", out, sh + 1, shards);
        synth_ctx sc = {e + i0, seed, i0};
        safetensors_write(path, e + i0, i1 - i0, "{\"format\":\"pt\"}", synth_fill, &sc);
        fprintf(stderr, "synth: wrote %s (%d tensors)\n", path, i1 - i0);
        i0 = i1;
    }
    /* index and config */
    atomic_file a;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    atomic_open(&a, path);
    fprintf(a.fp, "{\n  \"metadata\": {\"total_size\": %zu},\n  \"weight_map\": {\n", total);
    for (int i = 0; i < n; i++)
        fprintf(a.fp, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", e[i].name, shard_of[i] + 1, shards, i + 1 < n ? "," : "");
    fprintf(a.fp, "  }\n}\n");
    atomic_commit(&a);
    snprintf(path, sizeof path, "%s/config.json", out);
    write_hf_config(path, &c, NULL);
    printf("synth: %s, %s-shaped, %d layers, %d tensors, %.2f GB in %d shards, %.1f s\n", out, shape, c.n_layers, n, total / 1e9, shards, now_seconds() - t0);
    free(e); free(shard_of);
    return 0;
}
