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
    int space_id;         /* llama2.c: the " " token prepended as dummy prefix, -1 if absent */
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
/* Shared by both BPE loaders once ids, bytes and (for tokenizer.json) merges are in: every byte
 * must be a token, and special tokens must not be empty. Returns 0 or -1 with err. */
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
    t->space_id = tok_lookup(t, " ", 1);
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
tokenizer *tokenizer_load(const char *path) {
    char err[600];
    tokenizer *t = tokenizer_try_load(path, err, sizeof err);
    if (!t) fatal("%s", err);
    return t;
}
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
int tokenizer_vocab_size(const tokenizer *t) { return t->n_vocab; }
int tokenizer_bos(const tokenizer *t) { return t->bos; }
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
    if (n > 0) {
        if (t->space_id < 0) fatal("tokenizer: this llama2.c vocabulary has no \" \" token for the dummy prefix");
        w->id[k++] = t->space_id;
    }
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
