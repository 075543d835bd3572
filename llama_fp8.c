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
static int cmd_bench(int argc, char **argv) { fatal("'bench' is not built yet"); }
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
