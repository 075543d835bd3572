/* Fuzz target for everything that parses untrusted bytes before a model loads: the JSON parser
 * (config.json, index, tokenizer.json) and the safetensors header parser.
 *   libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DTESTING tests/fuzz_parsers.c emu/*.c -lm
 *   standalone: cc -DFUZZ_STANDALONE -fsanitize=address,undefined ... (a deterministic mutator, no libFuzzer)
 * tests/test_fuzz.sh builds whichever is available and runs a bounded number of iterations. */
#include "llama_fp8.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json j;
    if (json_parse(&j, (const char *)data, size) == 0) {
        /* walk every token through the accessors */
        for (int k = 0; k < j.ntok; k++) {
            double d; long long ll; size_t n;
            json_number(&j, k, &d);
            json_integer(&j, k, LLONG_MIN / 2, LLONG_MAX / 2, &ll);
            free(json_string_dup(&j, k, &n));
            if (j.t[k].type == J_OBJ) json_get(&j, k, "dtype");
            if (j.t[k].type == J_ARR) json_at(&j, k, j.t[k].n - 1);
        }
    }
    json_free(&j);
    st_file f;
    char err[512];
    if (safetensors_parse(data, size, &f, err, sizeof err) == 0) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < f.n; i++)        /* every byte a tensor claims must be inside the input */
            for (size_t b = 0; b < f.t[i].nbytes; b++) sink ^= f.t[i].data[b];
        st_free(&f);
    }
    return 0;
}

#ifdef FUZZ_STANDALONE
/* Seeds: a valid two-tensor safetensors file and a config.json; mutations: byte flips, truncation,
 * digit runs replaced by extreme numbers, random splices. xorshift64, fixed seed: reproducible. */
static uint64_t fz_rng = 88172645463325252ull;
static uint64_t fz_next(void) { fz_rng ^= fz_rng << 13; fz_rng ^= fz_rng >> 7; fz_rng ^= fz_rng << 17; return fz_rng; }
int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 100000;
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}";
    size_t hl = strlen(hdr), n0 = 8 + hl + 28;
    uint8_t *seed = calloc(1, n0);
    for (int i = 0; i < 8; i++) seed[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(seed + 8, hdr, hl);
    const char *cfg = "{\"hidden_size\": 64, \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"llama3\"}, \"eos_token_id\": [1, 2], \"s\": \"\\u00e9\\ud83d\\ude00\"}";
    uint8_t *buf = malloc(n0 * 2 + 64);
    for (long it = 0; it < iters; it++) {
        int use_cfg = it % 3 == 0;
        const uint8_t *src = use_cfg ? (const uint8_t *)cfg : seed;
        size_t n = use_cfg ? strlen(cfg) : n0;
        memcpy(buf, src, n);
        int muts = 1 + fz_next() % 4;
        for (int m = 0; m < muts; m++) {
            uint64_t r = fz_next();
            size_t pos = n ? (r >> 8) % n : 0;
            switch (r % 5) {
            case 0: buf[pos] ^= (uint8_t)(1u << (r >> 40) % 8); break;
            case 1: n = pos; break;                                   /* truncate */
            case 2: { static const char *big[] = {"99999999999999999999", "-1", "4294967296", "1e308", "0"};
                      const char *b = big[(r >> 20) % 5]; size_t bl = strlen(b);
                      if (pos + bl <= n) memcpy(buf + pos, b, bl); break; }
            case 3: buf[pos] = "{}[]\",:0\\"[(r >> 30) % 9]; break;
            case 4: if (n >= 8 && !use_cfg) { uint64_t v = fz_next() % (n + 16); for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(v >> (8 * i)); } break;
            }
        }
        uint8_t *exact = malloc(n ? n : 1);   /* exact-size copy so ASan sees any overread */
        memcpy(exact, buf, n);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
    }
    printf("ok fuzz_parsers_standalone: %ld mutated inputs, no crash or out-of-bounds access\n", iters);
    return 0;
}
#endif
