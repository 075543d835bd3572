/* llama_fp8.c — Llama 3.1 inference with FP8 numerics, in one readable C file.
 *
 * Reads top to bottom:
 *   1. utilities: errors, files (read-only mmap), atomic writes, timing
 *   2. JSON: a small strict parser (config.json, safetensors headers, tokenizer.json)
 *   3. FP8 teaching command  (`llama_fp8 fp8`)
 *   4. model: Config, weights, loaders (Hugging Face safetensors, llama2.c .bin, synthetic)
 *   5. tokenizers: Llama 3 byte-level BPE (tiktoken / tokenizer.json), llama2.c tokenizer.bin
 *   6. forward pass
 *   7. perplexity, dumps, generation
 *   8. benchmarks
 *   9. main: command dispatch
 * The numerics live in fp8.h (formats) and emu/ (GEMMs); this file decides where they are applied.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
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
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fp8.h"
#include "emu/emu.h"

/* ------------------------------------------------------------------------------------------ */
/* 1. Utilities                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* User-facing errors: one line naming the problem, exit status 1. Never used for our own bugs. */
static void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("llama_fp8: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
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
typedef struct { FILE *fp; char *path, *tmp; } atomic_file;
static void atomic_open(atomic_file *a, const char *path) {
    a->path = xstrdup(path);
    a->tmp = xmalloc(strlen(path) + 32);
    sprintf(a->tmp, "%s.tmp.%d", path, (int)getpid());
    a->fp = fopen(a->tmp, "wb");
    if (!a->fp) fatal("cannot write %s: %s", a->tmp, strerror(errno));
}
static void atomic_commit(atomic_file *a) {
    int bad = ferror(a->fp);
    if (fflush(a->fp) != 0) bad = 1;
    if (!bad && fsync(fileno(a->fp)) != 0) bad = 1;
    if (fclose(a->fp) != 0) bad = 1;
    if (bad) { unlink(a->tmp); fatal("writing %s failed: %s", a->path, strerror(errno)); }
    if (rename(a->tmp, a->path) != 0) { unlink(a->tmp); fatal("cannot rename %s to %s: %s", a->tmp, a->path, strerror(errno)); }
    free(a->path); free(a->tmp);
}

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

/* ------------------------------------------------------------------------------------------ */
/* 2. JSON                                                                                    */
/* ------------------------------------------------------------------------------------------ */
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
/* 3. FP8 teaching command: llama_fp8 fp8                                                     */
/* ------------------------------------------------------------------------------------------ */
/* @@SECTION fp8-cli@@ */
static int cmd_fp8(int argc, char **argv) {
    fatal("'fp8' is not built yet");
}
/* @@END fp8-cli@@ */

/* ------------------------------------------------------------------------------------------ */
/* 4. Model: config, weights, loaders                                                         */
/* ------------------------------------------------------------------------------------------ */
/* @@SECTION model@@ */
/* @@END model@@ */

/* ------------------------------------------------------------------------------------------ */
/* 5. Tokenizers                                                                              */
/* ------------------------------------------------------------------------------------------ */
/* @@SECTION tokenizer@@ */
static int cmd_tokenize(int argc, char **argv) {
    fatal("'tokenize' is not built yet");
}
/* @@END tokenizer@@ */

/* ------------------------------------------------------------------------------------------ */
/* 6. Forward pass                                                                            */
/* ------------------------------------------------------------------------------------------ */
/* @@SECTION forward@@ */
/* @@END forward@@ */

/* ------------------------------------------------------------------------------------------ */
/* 7. Perplexity, dumps, generation                                                           */
/* ------------------------------------------------------------------------------------------ */
/* @@SECTION ppl@@ */
static int cmd_ppl(int argc, char **argv) { fatal("'ppl' is not built yet"); }
static int cmd_dump(int argc, char **argv) { fatal("'dump' is not built yet"); }
static int cmd_generate(int argc, char **argv) { fatal("'generate' is not built yet"); }
/* @@END ppl@@ */

/* ------------------------------------------------------------------------------------------ */
/* 8. Benchmarks                                                                              */
/* ------------------------------------------------------------------------------------------ */
/* @@SECTION bench@@ */
/* `llama_fp8 bench gemm`: GFLOP/s of emu's kernels on the Llama-3.1-8B GEMM shapes, next to this CPU's
 * peak measured in the same run by register-only micro-kernels (emu_peak_gflops). Modes:
 *   bf16      emu_gemm_f32 with BF16 weights (the GEMM of the bf16 forward pass; fp32 FMA chain)
 *   exact|fp32|fast|hopper|ada|cublaslt   emu_gemm, W8A8 E4M3: per-token A scales, per-channel B
 *             scales, bf16 output, with that accumulation model.
 * Inputs are random (finite FP8 codes, bf16 values in [-1,1]); the time of a call includes decoding,
 * packing and the epilogue. The tensor-core models are scalar C (reference, not speed): ask for them
 * with a small M. */
static double bench_now(void) { return omp_get_wtime(); }

static int cmd_bench(int argc, char **argv) {
    const char *usage_s = "usage: llama_fp8 bench gemm [--m LIST] [--modes LIST] [--shapes NxK,...] [--reps R] [--full]\n"
        "  --m        rows of A (tokens), default 256,1; --full: 2048,256,1\n"
        "  --modes    bf16,exact,fp32,fast,hopper,ada,cublaslt (default bf16,fast,fp32,exact)\n"
        "  --shapes   N x K of the weight, default the Llama-3.1-8B set 6144x4096,4096x4096,14336x4096,4096x14336,128256x4096\n"
        "  --reps     timed repetitions after one warm-up, best is reported (default 2)";
    if (argc < 2 || strcmp(argv[1], "gemm")) fatal("%s", usage_s);
    const char *ms = "256,1", *modes = "bf16,fast,fp32,exact";
    const char *shapes = "6144x4096,4096x4096,14336x4096,4096x14336,128256x4096";
    int reps = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) ms = "2048,256,1";
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { puts(usage_s); return 0; }
        else if (i + 1 >= argc) fatal("bench gemm: option %s needs a value (or is unknown)\n%s", argv[i], usage_s);
        else if (!strcmp(argv[i], "--m")) ms = argv[++i];
        else if (!strcmp(argv[i], "--modes")) modes = argv[++i];
        else if (!strcmp(argv[i], "--shapes")) shapes = argv[++i];
        else if (!strcmp(argv[i], "--reps")) reps = (int)parse_long_arg("--reps", argv[++i], 1, 1000);
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
    /* The peak is measured before every shape and once more at the end; the best measurement is the
     * one least disturbed by other work on the machine, and the table (printed at the end) uses it. */
    double pk32 = 0, pk16 = 0;
    struct { int M, N, K, mode; double ms, gf; } *row = xmalloc(sizeof(*row) * (size_t)ns * nm * nmd);
    int nrow = 0;
    uint64_t rs = 0x853C49E6748FEA9Bull;
    for (int si = 0; si <= ns; si++) {
        double p32 = emu_peak_gflops(0), p16 = emu_peak_gflops(1);
        if (p32 > pk32) pk32 = p32;
        if (p16 > pk16) pk16 = p16;
        if (si == ns) break;
        int N = NK[si][0], K = NK[si][1], Mmax = 0;
        for (int i = 0; i < nm; i++) if (Ms[i] > Mmax) Mmax = Ms[i];
        uint8_t *A8 = xmalloc((size_t)Mmax * K), *B8 = xmalloc((size_t)N * K);
        uint16_t *Bh = NULL;
        float *Af = xmalloc(sizeof(float) * Mmax * K), *sa = xmalloc(sizeof(float) * Mmax), *sb = xmalloc(sizeof(float) * N);
        float *D = xmalloc(sizeof(float) * Mmax * N);
        for (size_t i = 0; i < (size_t)Mmax * K; i++) {
            rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
            A8[i] = (uint8_t)(rs >> 24) & 0xF7;            /* finite E4M3 codes (never S.1111.111) */
            Af[i] = emu_fp8_decode(A8[i], EMU_E4M3) / 448.0f;
        }
        for (size_t i = 0; i < (size_t)N * K; i++) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; B8[i] = (uint8_t)(rs >> 24) & 0xF7; }
        for (int i = 0; i < Mmax; i++) sa[i] = 1.0f / 448;
        for (int i = 0; i < N; i++) sb[i] = 1.0f / 448;
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
                row[nrow].ms = best * 1e3; row[nrow].gf = 2.0 * M * N * K / best / 1e9; nrow++;
                fprintf(stderr, "\rbench gemm: %d/%d", nrow, ns * nm * nmd);
            }
        }
        free(A8); free(B8); free(Bh); free(Af); free(sa); free(sb); free(D);
    }
    fprintf(stderr, "\n");
    printf("# bench gemm on %s, %d OpenMP threads, AVX-512 %s, AVX512-BF16 %s\n", cpu, omp_get_max_threads(),
           emu_have_avx512() ? "yes" : "no", emu_have_avx512bf16() ? "yes" : "no");
    printf("# peak (best of %d measurements in this run): fp32 FMA %.1f GFLOP/s, bf16 dot (VDPBF16PS) %.1f GFLOP/s\n", ns + 1, pk32, pk16);
    printf("# modes: bf16 = emu_gemm_f32 with BF16 weights; others = emu_gemm W8A8 E4M3 (per-token x per-channel scales, bf16 out)\n");
    printf("%6s %7s %6s  %-9s %10s %9s %7s %7s\n", "M", "N", "K", "mode", "ms", "GFLOP/s", "%bf16pk", "%fp32pk");
    for (int i = 0; i < nrow; i++)
        printf("%6d %7d %6d  %-9s %10.2f %9.1f %6.1f%% %6.1f%%\n", row[i].M, row[i].N, row[i].K,
               row[i].mode == EMU_ACC_COUNT ? "bf16" : emu_accum_names[row[i].mode], row[i].ms, row[i].gf,
               pk16 > 0 ? 100 * row[i].gf / pk16 : 0.0, pk32 > 0 ? 100 * row[i].gf / pk32 : 0.0);
    free(row);
    return 0;
}
/* @@END bench@@ */

/* ------------------------------------------------------------------------------------------ */
/* 9. main                                                                                    */
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
    {"generate", cmd_generate, "greedy / sampled text generation"},
    {"bench", cmd_bench, "benchmarks (bench gemm)"},
};

static void usage(FILE *fp) {
    fprintf(fp, "usage: llama_fp8 COMMAND [options]   (llama_fp8 COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].help);
}

#ifndef TESTING
int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "llama_fp8: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
#endif
