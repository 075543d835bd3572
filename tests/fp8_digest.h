/* fp8_digest.h — the digest of a conversion's 2^32 output bytes, in input order.
 *
 * The outputs for float bit patterns 0x00000000 … 0xFFFFFFFF are cut into 2^16 chunks of 2^16
 * bytes. Each chunk is hashed on its own (so the sweep runs in parallel and the result is still
 * deterministic), read as 8192 little-endian 64-bit words w:
 *     h = 0;  for each w:  h ^= w;  h *= 0x9E3779B97F4A7C15;  h ^= h >> 32;
 * and the 2^16 chunk hashes are hashed the same way, in order, into the digest. Every step is a
 * bijection of h for a fixed w, so changing any single output byte always changes the digest.
 * tests/gen_fp8_digests.py computes the same digest with numpy. */
#ifndef FP8_DIGEST_H
#define FP8_DIGEST_H
#include <stdint.h>
#include <string.h>

#define FP8_DIGEST_CHUNK  (1u << 16)
#define FP8_DIGEST_NCHUNKS (1u << 16)

static inline uint64_t fp8_digest_step(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}
static inline uint64_t fp8_digest_bytes(const uint8_t *b, size_t n) { /* n a multiple of 8 */
    uint64_t h = 0;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8); /* little-endian machines only (x86, ARM) */
        h = fp8_digest_step(h, w);
    }
    return h;
}
/* Digest of f(u) for every u in [0, 2^32). f must be thread-safe. */
static inline uint64_t fp8_digest_all(unsigned char (*f)(uint32_t)) {
    static uint64_t chunk_hash[FP8_DIGEST_NCHUNKS];
    #pragma omp parallel for schedule(dynamic, 16)
    for (long long c = 0; c < (long long)FP8_DIGEST_NCHUNKS; c++) {
        uint8_t out[FP8_DIGEST_CHUNK];
        for (uint32_t i = 0; i < FP8_DIGEST_CHUNK; i++) out[i] = f((uint32_t)c * FP8_DIGEST_CHUNK + i);
        chunk_hash[c] = fp8_digest_bytes(out, FP8_DIGEST_CHUNK);
    }
    uint64_t h = 0;
    for (uint32_t c = 0; c < FP8_DIGEST_NCHUNKS; c++) h = fp8_digest_step(h, chunk_hash[c]);
    return h;
}
#endif
