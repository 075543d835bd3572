/* Tokenizers (llama_fp8.c appendix A3) against their oracles:
 *   - Unicode tables and UTF-8 decoding: self-consistency (tables come from tiktoken, see
 *     tests/gen_unicode_tables.py).
 *   - llama2.c: the O(n log n) heap encoder against a literal O(n^2) port of karpathy/llama2.c
 *     run.c encode(), on a synthetic vocabulary full of score ties and on stories260K's tok512.bin.
 *   - Llama 3 BPE: the heap merge against a literal port of tiktoken's _byte_pair_merge; the 46
 *     llama.cpp test cases (ids made by the Hugging Face Llama 3 tokenizer); tests/golden/tok_edge.jsonl
 *     (pattern corner cases, ids made by tiktoken); token count and digests of wiki.test.raw,
 *     wiki.valid.raw and the C4 documents against tests/golden/tok_digests.txt (tiktoken).
 * Real data comes from $LLAMA_FP8_DATA; checks that need it print "skip" without it. */
#include "llama_fp8.c"

static int failures;
static void check(const char *name, int ok, const char *fmt, ...) {
    if (ok) { printf("ok %s\n", name); return; }
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}
static char *data_path(const char *rel) {
    const char *d = getenv("LLAMA_FP8_DATA");
    if (!d) d = "../shared/data";
    char *p = xmalloc(strlen(d) + strlen(rel) + 2);
    sprintf(p, "%s/%s", d, rel);
    if (!file_exists(p)) { free(p); return NULL; }
    return p;
}
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) { /* xorshift64*, uniform enough for test inputs */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 33) % n;
}
static int ids_equal(const int *a, int na, const int *b, int nb) { return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof(int))); }
static void fnv_ids(uint64_t *h, const int *ids, int n) { /* digest of tests/gen_tok_goldens.py */
    char buf[16];
    for (int i = 0; i < n; i++) {
        int m = sprintf(buf, i ? " %d" : "%d", ids[i]);
        for (int k = 0; k < m; k++) *h = (*h ^ (uint8_t)buf[k]) * 1099511628211ull;
    }
    *h = (*h ^ '\n') * 1099511628211ull;
}

/* ---- karpathy/llama2.c run.c encode(), ported literally (O(n^2)), as the reference ---- */
typedef struct { char *str; int id; } TokenIndex;
static int compare_tokens(const void *a, const void *b) { return strcmp(((const TokenIndex *)a)->str, ((const TokenIndex *)b)->str); }
static int str_lookup(char *str, TokenIndex *sorted_vocab, int vocab_size) {
    TokenIndex tok = {.str = str};
    TokenIndex *res = bsearch(&tok, sorted_vocab, vocab_size, sizeof(TokenIndex), compare_tokens);
    return res != NULL ? res->id : -1;
}
typedef struct { char **vocab; float *vocab_scores; TokenIndex *sorted_vocab; int vocab_size; int max_token_length; } RefTokenizer;
static void ref_build(RefTokenizer *r, const tokenizer *t) {
    r->vocab_size = t->n_vocab;
    r->vocab = xmalloc(t->n_vocab * sizeof(char *));
    r->vocab_scores = t->score;
    r->max_token_length = 0;
    r->sorted_vocab = xmalloc(t->n_vocab * sizeof(TokenIndex));
    for (int i = 0; i < t->n_vocab; i++) {
        size_t n = tok_len(t, i);
        r->vocab[i] = xmalloc(n + 1);
        memcpy(r->vocab[i], tok_bytes(t, i), n);
        r->vocab[i][n] = 0;
        if ((int)n > r->max_token_length) r->max_token_length = (int)n;
        r->sorted_vocab[i].str = r->vocab[i];
        r->sorted_vocab[i].id = i;
    }
    qsort(r->sorted_vocab, r->vocab_size, sizeof(TokenIndex), compare_tokens);
}
static void ref_free(RefTokenizer *r) {
    for (int i = 0; i < r->vocab_size; i++) free(r->vocab[i]);
    free(r->vocab); free(r->sorted_vocab);
}
static void ref_encode(RefTokenizer *t, char *text, int8_t bos, int8_t eos, int *tokens, int *n_tokens) {
    char *str_buffer = malloc((t->max_token_length * 2 + 1 + 2) * sizeof(char));
    size_t str_len = 0;
    *n_tokens = 0;
    if (bos) tokens[(*n_tokens)++] = 1;
    if (text[0] != '\0') {
        int dummy_prefix = str_lookup(" ", t->sorted_vocab, t->vocab_size);
        tokens[(*n_tokens)++] = dummy_prefix;
    }
    for (char *c = text; *c != '\0'; c++) {
        if ((*c & 0xC0) != 0x80) str_len = 0;
        str_buffer[str_len++] = *c;
        str_buffer[str_len] = '\0';
        if ((*(c + 1) & 0xC0) == 0x80 && str_len < 4) continue;
        int id = str_lookup(str_buffer, t->sorted_vocab, t->vocab_size);
        if (id != -1) {
            tokens[(*n_tokens)++] = id;
        } else {
            for (int i = 0; i < (int)str_len; i++) tokens[(*n_tokens)++] = (unsigned char)str_buffer[i] + 3;
        }
        str_len = 0;
    }
    while (1) {
        float best_score = -1e10;
        int best_id = -1;
        int best_idx = -1;
        for (int i = 0; i < (*n_tokens - 1); i++) {
            sprintf(str_buffer, "%s%s", t->vocab[tokens[i]], t->vocab[tokens[i + 1]]);
            int id = str_lookup(str_buffer, t->sorted_vocab, t->vocab_size);
            if (id != -1 && t->vocab_scores[id] > best_score) {
                best_score = t->vocab_scores[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1) break;
        tokens[best_idx] = best_id;
        for (int i = best_idx + 1; i < (*n_tokens - 1); i++) tokens[i] = tokens[i + 1];
        (*n_tokens)--;
    }
    if (eos) tokens[(*n_tokens)++] = 2;
    free(str_buffer);
}

/* ---- tiktoken's _byte_pair_merge (src/lib.rs), ported literally (O(n^2)), as the reference ---- */
static int tt_rank(const tokenizer *t, const uint8_t *p, size_t n) {
    int id = tok_lookup(t, p, n);
    return id >= 0 && !t->is_special[id] ? id : INT_MAX; /* a tiktoken token's id is its rank */
}
static int ref_bpe(const tokenizer *t, const uint8_t *piece, size_t len, int *out) {
    size_t (*parts)[2] = xmalloc((len + 1) * sizeof *parts); /* (start, rank of merging with next) */
    size_t np = 0, min_i = SIZE_MAX;
    int min_rank = INT_MAX;
    for (size_t i = 0; i + 1 < len; i++) {
        int r = tt_rank(t, piece + i, 2);
        if (r < min_rank) { min_rank = r; min_i = i; }
        parts[np][0] = i; parts[np][1] = (size_t)r; np++;
    }
    parts[np][0] = len - 1; parts[np][1] = INT_MAX; np++;
    parts[np][0] = len; parts[np][1] = INT_MAX; np++;
#define GET_RANK(i) ((i) + 3 < np ? (size_t)tt_rank(t, piece + parts[i][0], parts[(i) + 3][0] - parts[i][0]) : (size_t)INT_MAX)
    while (min_rank != INT_MAX) {
        size_t i = min_i;
        if (i > 0) parts[i - 1][1] = GET_RANK(i - 1);
        parts[i][1] = GET_RANK(i);
        memmove(parts + i + 1, parts + i + 2, (np - i - 2) * sizeof *parts);
        np--;
        min_rank = INT_MAX;
        for (size_t k = 0; k + 1 < np; k++)
            if ((int)parts[k][1] < min_rank) { min_rank = (int)parts[k][1]; min_i = k; }
    }
    int n = 0;
    for (size_t k = 0; k + 1 < np; k++) out[n++] = tt_rank(t, piece + parts[k][0], parts[k + 1][0] - parts[k][0]);
    free(parts);
    return n;
}

/* ---- UTF-8 and the Unicode tables ---- */
static void test_unicode(void) {
    int bad = 0;
    const uint32_t (*tabs[3])[2] = {unicode_class_L, unicode_class_N, unicode_class_S};
    int ns[3] = {sizeof unicode_class_L / sizeof unicode_class_L[0], sizeof unicode_class_N / sizeof unicode_class_N[0],
                 sizeof unicode_class_S / sizeof unicode_class_S[0]};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < ns[k]; i++)
            if (tabs[k][i][0] > tabs[k][i][1] || (i && tabs[k][i][0] <= tabs[k][i - 1][1] + 1)) bad++;
    check("tok_unicode_tables_sorted", bad == 0, "%d ranges out of order, overlapping or adjacent", bad);
    bad = 0;
    for (uint32_t cp = 0; cp < 0x80; cp++) {
        int want = (unicode_in(unicode_class_L, ns[0], cp) ? U_L : 0) | (unicode_in(unicode_class_N, ns[1], cp) ? U_N : 0) |
                   (unicode_in(unicode_class_S, ns[2], cp) ? U_S : 0);
        if (unicode_class(cp) != want) bad++;
    }
    check("tok_unicode_ascii_fast_path", bad == 0, "%d ASCII code points classified differently from the tables", bad);
    /* Classes never overlap (Unicode: L, N are general categories; White_Space chars are Zs, Zl, Zp or Cc). */
    bad = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        int c = unicode_class(cp);
        if (c & (c - 1)) bad++;
    }
    check("tok_unicode_classes_disjoint", bad == 0, "%d code points in two classes", bad);
    /* Every scalar value round-trips through utf8_put / utf8_decode. */
    bad = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp < 0xE000) continue;
        char buf[4], *o = buf;
        uint32_t got;
        utf8_put(&o, cp);
        if (utf8_decode((uint8_t *)buf, (size_t)(o - buf), &got) != o - buf || got != cp) bad++;
    }
    check("tok_utf8_roundtrip", bad == 0, "%d code points do not round-trip", bad);
    static const char *const invalid[] = {"\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                          "\xF5\x80\x80\x80", "\xFF", "\xE2\x82", "\xC3(", "\xF0\x9F\x98"};
    bad = 0;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        uint32_t cp;
        if (utf8_decode((const uint8_t *)invalid[i], strlen(invalid[i]), &cp) != 1 || cp != UINT32_MAX) bad++;
    }
    check("tok_utf8_invalid_is_one_byte", bad == 0, "%d malformed sequences not rejected byte by byte", bad);
}

/* ---- llama2.c ---- */
static int write_synthetic_tokbin(const char *path) {
    /* <unk>, <s>, </s>, 256 byte tokens, the printable ASCII characters, then random
     * concatenations (no duplicates) with scores from a tiny set, so ties are everywhere. */
    int cap = 1200, n = 0, maxlen = 8;
    char **s = xmalloc(cap * sizeof(char *));
    float *score = xmalloc(cap * sizeof(float));
    s[n] = xstrdup("<unk>"); score[n++] = 0;
    s[n] = xstrdup("\n<s>\n"); score[n++] = 0;
    s[n] = xstrdup("\n</s>\n"); score[n++] = 0;
    for (int b = 0; b < 256; b++) { char x[8]; sprintf(x, "<0x%02X>", b); s[n] = xstrdup(x); score[n++] = 0; }
    for (int c = ' '; c <= '~'; c++) { char x[2] = {(char)c, 0}; s[n] = xstrdup(x); score[n++] = -(float)rnd(4); }
    static const float scores[] = {-1, -2, -3, -3, -4, -1e10f, -2e10f, 0.5f};
    int base = n;
    while (n < cap) {
        const char *a = s[base - 95 + (int)rnd(95)];
        const char *b = s[n > base && rnd(2) ? base + (int)rnd((uint32_t)(n - base)) : base - 95 + (int)rnd(95)];
        if (strlen(a) + strlen(b) > (size_t)maxlen) continue;
        char x[32];
        snprintf(x, sizeof x, "%s%s", a, b);
        int dup = 0;
        for (int i = 0; i < n && !dup; i++) dup = !strcmp(s[i], x);
        if (dup) continue;
        s[n] = xstrdup(x); score[n++] = scores[rnd(8)];
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    fwrite(&maxlen, 4, 1, fp);
    for (int i = 0; i < n; i++) {
        int len = (int)strlen(s[i]);
        fwrite(&score[i], 4, 1, fp); fwrite(&len, 4, 1, fp); fwrite(s[i], 1, len, fp);
        free(s[i]);
    }
    free(s); free(score);
    return fclose(fp);
}
static void random_text(char *buf, int n, const char *corpus, size_t corpus_len) {
    /* Mixes slices of real text, ASCII noise, multi-byte UTF-8 and invalid bytes; never NUL. */
    static const char *const extra[] = {"\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\x80", "\xFF", "\xE2\x82", "  ", "\n"};
    int k = 0;
    while (k < n) {
        int what = (int)rnd(4);
        if (what == 0 && corpus_len > 64) {
            size_t at = rnd((uint32_t)(corpus_len - 32)), m = 1 + rnd(30);
            for (size_t i = 0; i < m && k < n; i++) if (corpus[at + i]) buf[k++] = corpus[at + i];
        } else if (what == 1) {
            const char *e = extra[rnd(8)];
            while (*e && k < n) buf[k++] = *e++;
        } else {
            buf[k++] = (char)(' ' + rnd(95));
        }
    }
    buf[n] = 0;
}
static void test_llama2c_vs_runc(const char *name, const char *path, const char *corpus, size_t corpus_len, int cases) {
    tokenizer *t = tokenizer_load(path);
    RefTokenizer r;
    ref_build(&r, t);
    int bad = 0, first_bad = -1;
    char text[700];
    int *ref = xmalloc(sizeof(int) * 3000);
    for (int c = 0; c < cases; c++) {
        int n = c == 0 ? 0 : 1 + (int)rnd(c < cases / 2 ? 40 : 600);
        random_text(text, n, corpus, corpus_len);
        int bos = (int)rnd(2), nref, *ids;
        ref_encode(&r, text, (int8_t)bos, 0, ref, &nref);
        int nids = tokenizer_encode(t, text, strlen(text), bos, 0, &ids);
        if (!ids_equal(ids, nids, ref, nref)) { if (first_bad < 0) first_bad = c; bad++; }
        free(ids);
    }
    check(name, bad == 0, "%d of %d texts differ from run.c encode() (first: case %d)", bad, cases, first_bad);
    free(ref);
    ref_free(&r);
    tokenizer_free(t);
}
static void test_llama2c(void) {
    const char *synth = "build/tests/tok_synthetic.bin";
    if (write_synthetic_tokbin(synth) != 0) { check("tok_llama2c_synthetic_vs_runc", 0, "cannot write %s", synth); return; }
    static const char corpus[] = "Once upon a time there was a cat. The cat sat on the mat and ate 12 fish! \"Hi,\" said Tom.";
    test_llama2c_vs_runc("tok_llama2c_synthetic_vs_runc", synth, corpus, sizeof corpus - 1, 3000);
    char *tok512 = data_path("stories260K/tok512.bin"), *ts = data_path("tinystories/tinystories_valid_excerpt.txt");
    if (!tok512 || !ts) { printf("skip tok_llama2c_tok512: no stories260K / tinystories data\n"); free(tok512); free(ts); return; }
    size_t n;
    char *text = read_text_file(ts, &n);
    test_llama2c_vs_runc("tok_llama2c_tok512_vs_runc", tok512, text, n, 2000);
    tokenizer *t = tokenizer_load(tok512);
    check("tok_llama2c_ids", tokenizer_vocab_size(t) == 512 && tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2,
          "vocab %d bos %d eos %d, expected 512 1 2", tokenizer_vocab_size(t), tokenizer_bos(t), tokenizer_eos(t));
    /* A long text: the first 6000 bytes of the excerpt through run.c (O(n^2): ~1 s), compared
     * with the heap encoder; then the whole excerpt, decoded after BOS, gives the text back
     * (the dummy-prefix space is stripped after BOS, byte tokens become bytes). */
    RefTokenizer r;
    ref_build(&r, t);
    size_t cut = n < 6000 ? n : 6000;
    while (cut < n && (text[cut] & 0xC0) == 0x80) cut++;
    char saved = text[cut];
    text[cut] = 0;
    int *ref = xmalloc(sizeof(int) * (n + 3)), nref, *ids;
    int nids = tokenizer_encode(t, text, cut, 1, 0, &ids);
    ref_encode(&r, text, 1, 0, ref, &nref);
    check("tok_llama2c_tok512_long_text", ids_equal(ids, nids, ref, nref), "%d ids vs run.c's %d", nids, nref);
    free(ids);
    text[cut] = saved;
    double t0 = now_seconds();
    nids = tokenizer_encode(t, text, n, 1, 0, &ids);
    double secs = now_seconds() - t0;
    char *back = xmalloc(4 * n + 16);
    size_t m = 0;
    for (int i = 1; i < nids; i++) {
        size_t l;
        const char *p = tokenizer_decode(t, ids[i - 1], ids[i], &l);
        memcpy(back + m, p, l);
        m += l;
    }
    check("tok_llama2c_decode_roundtrip", m == n && !memcmp(back, text, n), "decoded %zu bytes, text has %zu", m, n);
    printf("# tok512: %zu bytes -> %d tokens in %.3f s\n", n, nids, secs);
    free(back); free(ids); free(ref); ref_free(&r); tokenizer_free(t); free(text); free(tok512); free(ts);
}

/* ---- Llama 3 ---- */
static void test_bpe_merge(tokenizer *t, const char *corpus, size_t corpus_len) {
    /* Heap merge vs tiktoken's loop, on raw pieces (no pre-tokenizer, no whole-piece shortcut). */
    int saved = t->ignore_merges, bad = 0, cases = 3000;
    t->ignore_merges = 0;
    uint8_t piece[1200];
    int *ref = xmalloc(sizeof(int) * 1200);
    for (int c = 0; c < cases; c++) {
        size_t n = 1 + rnd(c < cases - 30 ? 40 : 1000);
        if (c % 3 == 0) for (size_t i = 0; i < n; i++) piece[i] = (uint8_t)rnd(256);
        else if (c % 3 == 1) { size_t at = rnd((uint32_t)(corpus_len - 1200)); memcpy(piece, corpus + at, n); }
        else { uint8_t x = (uint8_t)" =-.a\n"[rnd(6)]; memset(piece, x, n); if (rnd(2)) piece[rnd((uint32_t)n)] = 'b'; }
        tok_work w = {0};
        bpe_piece(t, &w, piece, n);
        int nref = ref_bpe(t, piece, n, ref);
        if (!ids_equal(w.out, (int)w.nout, ref, nref)) bad++;
        free(w.out); free(w.id); free(w.next); free(w.prev); free(w.heap); free(w.buf);
    }
    t->ignore_merges = saved;
    check("tok_bpe_heap_vs_tiktoken_merge", bad == 0, "%d of %d pieces differ from tiktoken's _byte_pair_merge", bad, cases);
    free(ref);
}
static void test_llama3_cases(tokenizer *t) {
    char *inp = data_path("llama3-tokenizer-tests/ggml-vocab-llama-bpe.gguf.inp"), *out = data_path("llama3-tokenizer-tests/ggml-vocab-llama-bpe.gguf.out");
    if (!inp || !out) { printf("skip tok_llama3_46_cases: no llama3-tokenizer-tests data\n"); return; }
    size_t ni, no;
    char *in = read_text_file(inp, &ni), *ou = read_text_file(out, &no);
    const char *sep = "\n__ggml_vocab_test__\n";
    int cases = 0, bad = 0;
    char *p = in, *line = ou, first[200] = "";
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *nl = strchr(line, '\n');
        if (!nl) { bad++; break; }
        *nl = 0;
        int want[512], nw = 0, *ids;
        for (char *q = line; nw < 512;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            want[nw++] = (int)v;
            q = end;
        }
        int n = tokenizer_encode(t, p, (size_t)(e - p), 0, 0, &ids);
        if (!ids_equal(ids, n, want, nw)) { if (!bad) snprintf(first, sizeof first, "case %d (%.40s)", cases, p); bad++; }
        free(ids);
        cases++;
        p = e + strlen(sep);
        line = nl + 1;
    }
    check("tok_llama3_46_cases", cases == 46 && bad == 0, "%d cases read, %d differ from the .out ids; first %s", cases, bad, first);
    free(in); free(ou); free(inp); free(out);
}
static void test_llama3_edge(tokenizer *t) {
    size_t n;
    char *src = read_text_file("tests/golden/tok_edge.jsonl", &n);
    if (!src) { check("tok_llama3_edge_goldens", 0, "cannot read tests/golden/tok_edge.jsonl"); return; }
    int cases = 0, bad = 0, bad_split = 0;
    char first[300] = "", first_split[300] = "";
    for (char *line = src; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        json j;
        if (json_parse(&j, line, len) != 0) { bad++; json_free(&j); break; }
        size_t tl;
        char *text = json_string_dup(&j, json_get(&j, 0, "text"), &tl);
        int arr = json_get(&j, 0, "ids"), want[256], nw = 0, *ids;
        for (int i = 0, k = arr + 1; arr >= 0 && i < j.t[arr].n && nw < 256; i++, k = json_next(&j, k)) {
            long long v;
            json_integer(&j, k, 0, INT_MAX, &v);
            want[nw++] = (int)v;
        }
        int got = tokenizer_encode(t, text, tl, 0, 0, &ids);
        if (!ids_equal(ids, got, want, nw)) { if (!bad) snprintf(first, sizeof first, "case %d: %.*s", cases, (int)(len > 120 ? 120 : len), line); bad++; }
        /* The split itself (tiktoken's pieces, see pieces() in the generator). */
        int pcs = json_get(&j, 0, "pieces"), same = pcs >= 0;
        size_t at = 0;
        for (int i = 0, k = pcs + 1; same && i < j.t[pcs].n; i++, k = json_next(&j, k)) {
            size_t pl;
            char *piece = json_string_dup(&j, k, &pl);
            size_t e = at < tl ? llama3_piece((const uint8_t *)text, tl, at) : at;
            same = piece && e - at == pl && !memcmp(text + at, piece, pl);
            at = e;
            free(piece);
        }
        if (!same || at != tl) { if (!bad_split) snprintf(first_split, sizeof first_split, "case %d: %.*s", cases, (int)(len > 120 ? 120 : len), line); bad_split++; }
        free(ids); free(text); json_free(&j);
        cases++;
        line = nl ? nl + 1 : line + len;
    }
    check("tok_llama3_edge_goldens", cases > 400 && bad == 0, "%d of %d cases differ from tiktoken; first %s", bad, cases, first);
    check("tok_llama3_edge_pieces", cases > 400 && bad_split == 0, "%d of %d cases split differently from tiktoken's regex; first %s", bad_split, cases, first_split);
    free(src);
}
/* "name documents tokens digest" from tests/golden/tok_digests.txt. */
static int golden_digest(const char *name, int *docs, long *tokens, uint64_t *digest) {
    FILE *fp = fopen("tests/golden/tok_digests.txt", "r");
    char line[256], nm[64];
    int found = 0;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "%63s %d %ld %" SCNx64, nm, docs, tokens, digest) == 4 && !strcmp(nm, name)) { found = 1; break; }
    if (fp) fclose(fp);
    return found;
}
static void test_llama3_corpora(tokenizer *t) {
    static const char *const files[2] = {"wiki.test.raw", "wiki.valid.raw"};
    for (int f = 0; f < 2; f++) {
        char rel[64], name[80];
        snprintf(rel, sizeof rel, "wikitext-2-raw/%s", files[f]);
        snprintf(name, sizeof name, "tok_llama3_%s_digest", files[f]);
        char *path = data_path(rel);
        int docs; long tokens; uint64_t digest;
        if (!path) { printf("skip %s: no %s\n", name, rel); continue; }
        if (!golden_digest(files[f], &docs, &tokens, &digest)) { check(name, 0, "no golden for %s", files[f]); continue; }
        size_t n;
        char *text = read_text_file(path, &n);
        int *ids;
        double t0 = now_seconds();
        int nids = tokenizer_encode(t, text, n, 0, 0, &ids);
        double secs = now_seconds() - t0;
        uint64_t h = 14695981039346656037ull;
        fnv_ids(&h, ids, nids);
        check(name, nids == tokens && h == digest, "%d tokens, digest %016" PRIx64 "; tiktoken: %ld tokens, %016" PRIx64, nids, h, tokens, digest);
        if (f == 0) {
            check("tok_llama3_wiki_test_289076", nids == 289076, "%d tokens (llama.cpp and tiktoken: 289,076)", nids);
            /* "About a second or less" for the whole file; measured ~0.1 s here. 5 s leaves room
             * for a slow, shared CI machine and still catches an accidental O(n^2). */
            check("tok_llama3_encode_speed", secs < 5.0, "whole wiki.test.raw took %.2f s", secs);
            printf("# wiki.test.raw: %zu bytes -> %d tokens in %.3f s (%.1f MB/s)\n", n, nids, secs, n / secs / 1e6);
            /* Byte-level BPE is lossless: the tokens' bytes are the text. */
            size_t m = 0;
            int same = 1;
            for (int i = 0; i < nids && same; i++) {
                size_t l;
                const char *p = tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], &l);
                same = m + l <= n && !memcmp(text + m, p, l);
                m += l;
            }
            check("tok_llama3_decode_roundtrip", same && m == n, "decoded bytes differ from the text (at byte %zu)", m);
        }
        free(ids); free(text); free(path);
    }
    /* C4: every document (prefix + gold_completion) encoded on its own. */
    char *c4 = data_path("c4/c4.jsonl");
    int docs; long tokens; uint64_t digest;
    if (!c4) { printf("skip tok_llama3_c4_digest: no c4 data\n"); return; }
    if (!golden_digest("c4", &docs, &tokens, &digest)) { check("tok_llama3_c4_digest", 0, "no golden for c4"); return; }
    size_t n;
    char *src = read_text_file(c4, &n);
    uint64_t h = 14695981039346656037ull;
    long total = 0;
    int nd = 0, bad = 0;
    for (char *line = src; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0) {
            json j;
            size_t a, b;
            char *pre = NULL, *gold = NULL;
            if (json_parse(&j, line, len) == 0 && (pre = json_string_dup(&j, json_get(&j, 0, "prefix"), &a)) &&
                (gold = json_string_dup(&j, json_get(&j, 0, "gold_completion"), &b))) {
                char *doc = xmalloc(a + b + 1);
                memcpy(doc, pre, a); memcpy(doc + a, gold, b);
                int *ids, nids = tokenizer_encode(t, doc, a + b, 0, 0, &ids);
                fnv_ids(&h, ids, nids);
                total += nids;
                free(ids); free(doc);
                nd++;
            } else bad++;
            free(pre); free(gold); json_free(&j);
        }
        line = nl ? nl + 1 : line + len;
    }
    check("tok_llama3_c4_digest", !bad && nd == docs && total == tokens && h == digest,
          "%d documents (%d unreadable), %ld tokens, digest %016" PRIx64 "; tiktoken: %d, %ld, %016" PRIx64, nd, bad, total, h, docs, tokens, digest);
    free(src); free(c4);
}
static void test_llama3_api(tokenizer *t) {
    int *ids, n;
    const char *s = "a<|eot_id|>b";
    n = tokenizer_encode(t, s, strlen(s), 1, 1, &ids);
    int want_special[] = {128000, 64, 128009, 65};
    check("tok_llama3_special_parsed", ids_equal(ids, n, want_special, 4), "got %d ids starting %d", n, n ? ids[0] : -1);
    free(ids);
    n = tokenizer_encode(t, s, strlen(s), 0, 0, &ids);
    int plain = 1;
    for (int i = 0; i < n; i++) plain &= ids[i] < 128000;
    check("tok_llama3_special_plain", plain && n > 3, "special tokens parsed although special = 0");
    free(ids);
    n = tokenizer_encode(t, "", 0, 1, 0, &ids);
    check("tok_llama3_empty_with_bos", n == 1 && ids[0] == 128000, "%d ids", n);
    free(ids);
    size_t l;
    const char *p = tokenizer_decode(t, -1, 128009, &l);
    check("tok_llama3_api", tokenizer_vocab_size(t) == 128256 && tokenizer_bos(t) == 128000 && tokenizer_eos(t) == 128001 &&
                                l == 10 && !memcmp(p, "<|eot_id|>", 10),
          "vocab %d bos %d eos %d", tokenizer_vocab_size(t), tokenizer_bos(t), tokenizer_eos(t));
    p = tokenizer_decode(t, -1, 128255, &l);
    check("tok_llama3_last_special", l == 30 && !memcmp(p, "<|reserved_special_token_247|>", 30), "%.*s", (int)l, p);
}


/* ---- Loaders on corrupted files: an error message or a working tokenizer, never a crash ---- */
static void write_file(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (fp) { fwrite(p, 1, n, fp); fclose(fp); }
}
static char *small_tokenizer_json(size_t *len) {
    /* 256 byte-level tokens, a few merges, two added tokens, the Llama 3 pre-tokenizer. */
    size_t cap = 1 << 16, n = 0;
    char *s = xmalloc(cap);
    n += (size_t)sprintf(s + n, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 262, \"content\": \"<|begin_of_text|>\", \"special\": true},"
                                " {\"id\": 263, \"content\": \"<|end_of_text|>\", \"special\": true}], \"normalizer\": null,"
                                " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"");
    for (const char *c = LLAMA3_PATTERN; *c; c++) { if (*c == '\\' || *c == '"') s[n++] = '\\'; s[n++] = *c; }
    n += (size_t)sprintf(s + n, "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
                                " \"trim_offsets\": true, \"use_regex\": false}]}, \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        char u[8], *o = u;
        utf8_put(&o, byte_char(b));
        n += (size_t)sprintf(s + n, "%s\"%s%.*s\": %d", b ? ", " : "", (b == '"' || b == '\\') ? "\\" : "", (int)(o - u), u, b);
    }
    /* 256 "Ġt" = " t", 257 "he", 258 "Ġthe", 259 "in", 260 "ing", 261 "Ġa" */
    n += (size_t)sprintf(s + n, ", \"\xC4\xA0t\": 256, \"he\": 257, \"\xC4\xA0the\": 258, \"in\": 259, \"ing\": 260, \"\xC4\xA0" "a\": 261},"
                                " \"merges\": [\"\xC4\xA0 t\", [\"h\", \"e\"], \"\xC4\xA0t he\", \"i n\", [\"in\", \"g\"], \"\xC4\xA0 a\"]}}");
    *len = n;
    return s;
}
static void test_loader_fuzz(void) {
    size_t n_json, n_bin;
    char *js = small_tokenizer_json(&n_json);
    const char *jpath = "build/tests/tok_small.json", *fpath = "build/tests/tok_fuzz.tmp";
    write_file(jpath, js, n_json);
    char err[600];
    tokenizer *t = tokenizer_try_load(jpath, err, sizeof err);
    int *ids, n = t ? tokenizer_encode(t, "the thing a the", 15, 1, 0, &ids) : -1;
    /* BOS, "the" = t + he (no "t he" merge), " thing" = Ġt h ing, " a" = Ġa, " the" = Ġt he -> Ġthe */
    int want[] = {262, 116, 257, 256, 104, 260, 261, 258};
    check("tok_small_tokenizer_json", t && ids_equal(ids, n, want, 8), "%s", t ? "wrong ids" : err);
    if (t) { free(ids); tokenizer_free(t); }
    /* Corrupt copies: the JSON, the synthetic tokenizer.bin, and a small tiktoken file. */
    char *bin = read_text_file("build/tests/tok_synthetic.bin", &n_bin);
    char tk[4096];
    size_t n_tk = 0;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        char b64[8];
        static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        sprintf(b64, "%c%c==", A[c >> 2], A[(c & 3) << 4]);
        n_tk += (size_t)sprintf(tk + n_tk, "%s %d\n", b64, b);
    }
    const char *srcs[3] = {js, bin, tk};
    size_t lens[3] = {n_json, n_bin, n_tk};
    int loaded = 0, rejected = 0, rounds = 600;
    char *buf = xmalloc(n_json + n_bin + n_tk + 16);
    for (int r = 0; r < 3 * rounds; r++) {
        int k = r % 3;
        if (!srcs[k]) continue;
        size_t n = lens[k];
        memcpy(buf, srcs[k], n);
        int edits = 1 + (int)rnd(4);
        for (int e = 0; e < edits; e++) {
            switch (rnd(3)) {
            case 0: buf[rnd((uint32_t)n)] = (char)rnd(256); break;                 /* flip a byte */
            case 1: n = rnd((uint32_t)n) + 1; break;                               /* truncate */
            default: buf[rnd((uint32_t)n)] = "0123456789\"{}[],: \n\\="[rnd(21)]; /* structural char */
            }
        }
        write_file(fpath, buf, n);
        tokenizer *f = tokenizer_try_load(fpath, err, sizeof err);
        if (!f) { rejected += err[0] != 0; continue; }
        loaded++;
        int *x, m = tokenizer_encode(f, "Hello world, the thing\n\xC3\xA9 123", 25, tokenizer_bos(f) >= 0, 1, &x);
        for (int i = 0; i < m; i++) { size_t l; tokenizer_decode(f, i ? x[i - 1] : -1, x[i], &l); }
        free(x);
        tokenizer_free(f);
    }
    check("tok_loader_fuzz", loaded + rejected >= 3 * rounds - (bin ? 0 : rounds), "%d loaded, %d rejected with a message", loaded, rejected);
    printf("# loader fuzz: %d corrupted files loaded and encoded, %d rejected with a message\n", loaded, rejected);
    free(buf); free(js); free(bin);
}

int main(void) {
    test_unicode();
    test_llama2c();
    test_loader_fuzz();
    char *model = data_path("llama3-tokenizer/tokenizer.model");
    if (!model) {
        printf("skip tok_llama3: no llama3-tokenizer/tokenizer.model in $LLAMA_FP8_DATA\n");
        return failures != 0;
    }
    tokenizer *t = tokenizer_load(model);
    char *wiki = data_path("wikitext-2-raw/wiki.valid.raw");
    size_t n = 0;
    char *corpus = wiki ? read_text_file(wiki, &n) : NULL;
    if (corpus && n > 4096) test_bpe_merge(t, corpus, n);
    else printf("skip tok_bpe_heap_vs_tiktoken_merge: no wiki.valid.raw\n");
    test_llama3_cases(t);
    test_llama3_edge(t);
    test_llama3_corpora(t);
    test_llama3_api(t);
    tokenizer_free(t);
    free(corpus); free(wiki); free(model);
    return failures != 0;
}
