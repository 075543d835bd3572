/* emu/vexp.c — expf and exp as the C library computes them, 8 lanes at a time (the softmax, the SwiGLU gate,
 * the ppl row's log-softmax and KLD).
 *
 * forward()'s softmax and silu call expf: on x86-64 with FMA, glibc (2.27 and later) runs __expf_fma,
 * Szabolcs Nagy's table method (ARM optimized-routines, math/expf.c), compiled with FMA contraction:
 *     xd = (double)x;  z = fma(InvLn2N, xd, Shift);  ki = bits(z);  kd = z − Shift;
 *     r  = fma(InvLn2N, xd, −kd);                  (r = x·N/ln2 − k, |r| ≤ 1/2, the product unrounded)
 *     s  = double(T[ki mod 32] + (ki << 47));       (2^(k/32))
 *     y  = fma(fma(r, C0, C1), r·r, fma(r, C2, 1)) · s;   expf(x) = (float)y   (RNE)
 * for |x| < 88 (the test (bits(x) >> 20) & 0x7ff ≤ 0x42a), and special handling beyond
 * (overflow, underflow, Inf, NaN). emu_expf_n runs that sequence on 8 doubles per register — the same
 * operations, so the same bits — and hands the lanes outside the main range to the library's expf.
 * The constants are glibc 2.36's __exp2f_data (read from libm.so.6; they are the published ones).
 * Whether the library on this machine computes exactly this is checked, not assumed: the first call
 * compares the two on 4096 arguments spread over the whole main range (and the 2^32 floats are compared
 * in tests/test_emu_vexp.c); a mismatch, or a CPU without AVX-512, leaves every call on the library.
 * The first-use check tells another algorithm apart, not this one built without FMA contraction (that
 * differs in 2 of the 2^32 floats): glibc runs __expf_fma on every CPU with AVX-512; elsewhere the exhaustive
 * test is the proof. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "emu/emu_internal.h"

static const uint64_t expf_tab[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b, 0x3fef54873168b9aa,
    0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74,
    0x3feea11473eb0187, 0x3feea589994cce13, 0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
enum { EXPF_INVLN2N = 0, EXPF_C0, EXPF_C1, EXPF_C2, EXPF_SHIFT };
static const uint64_t expf_k[5] = {0x40471547652b82fe, 0x3ebc6af84b912394, 0x3f2ebfce50fac4f3, 0x3f962e42ff0c52d6, 0x4338000000000000};

/* exp (double), for the log-softmax of every scored row (emu_ppl_row_cpu): glibc's __exp_fma, the same method
 * with a 128-entry table (tail, scale bits) and a degree-5 polynomial, for 2^-54 ≤ |x| < 512:
 *     z = fma(x, InvLn2N, Shift);  ki = bits(z);  kd = z − Shift;  r = fma(kd, NegLn2loN, fma(kd, NegLn2hiN, x));
 *     tmp = fma(r⁴, fma(r, C5, C4), fma(fma(r, C3, C2), r², r + tail[ki mod 128]));
 *     s = double(sbits[ki mod 128] + (ki << 45));  exp(x) = fma(s, tmp, s)
 * Constants: glibc 2.36's __exp_data. Lanes outside that range go to the library's exp. */
static const uint64_t exp_tab[256] = {
    0x0000000000000000, 0x3ff0000000000000, 0x3c9b3b4f1a88bf6e, 0x3feff63da9fb3335, 0xbc7160139cd8dc5d, 0x3fefec9a3e778061,
    0xbc905e7a108766d1, 0x3fefe315e86e7f85, 0x3c8cd2523567f613, 0x3fefd9b0d3158574, 0xbc8bce8023f98efa, 0x3fefd06b29ddf6de,
    0x3c60f74e61e6c861, 0x3fefc74518759bc8, 0x3c90a3e45b33d399, 0x3fefbe3ecac6f383, 0x3c979aa65d837b6d, 0x3fefb5586cf9890f,
    0x3c8eb51a92fdeffc, 0x3fefac922b7247f7, 0x3c3ebe3d702f9cd1, 0x3fefa3ec32d3d1a2, 0xbc6a033489906e0b, 0x3fef9b66affed31b,
    0xbc9556522a2fbd0e, 0x3fef9301d0125b51, 0xbc5080ef8c4eea55, 0x3fef8abdc06c31cc, 0xbc91c923b9d5f416, 0x3fef829aaea92de0,
    0x3c80d3e3e95c55af, 0x3fef7a98c8a58e51, 0xbc801b15eaa59348, 0x3fef72b83c7d517b, 0xbc8f1ff055de323d, 0x3fef6af9388c8dea,
    0x3c8b898c3f1353bf, 0x3fef635beb6fcb75, 0xbc96d99c7611eb26, 0x3fef5be084045cd4, 0x3c9aecf73e3a2f60, 0x3fef54873168b9aa,
    0xbc8fe782cb86389d, 0x3fef4d5022fcd91d, 0x3c8a6f4144a6c38d, 0x3fef463b88628cd6, 0x3c807a05b0e4047d, 0x3fef3f49917ddc96,
    0x3c968efde3a8a894, 0x3fef387a6e756238, 0x3c875e18f274487d, 0x3fef31ce4fb2a63f, 0x3c80472b981fe7f2, 0x3fef2b4565e27cdd,
    0xbc96b87b3f71085e, 0x3fef24dfe1f56381, 0x3c82f7e16d09ab31, 0x3fef1e9df51fdee1, 0xbc3d219b1a6fbffa, 0x3fef187fd0dad990,
    0x3c8b3782720c0ab4, 0x3fef1285a6e4030b, 0x3c6e149289cecb8f, 0x3fef0cafa93e2f56, 0x3c834d754db0abb6, 0x3fef06fe0a31b715,
    0x3c864201e2ac744c, 0x3fef0170fc4cd831, 0x3c8fdd395dd3f84a, 0x3feefc08b26416ff, 0xbc86a3803b8e5b04, 0x3feef6c55f929ff1,
    0xbc924aedcc4b5068, 0x3feef1a7373aa9cb, 0xbc9907f81b512d8e, 0x3feeecae6d05d866, 0xbc71d1e83e9436d2, 0x3feee7db34e59ff7,
    0xbc991919b3ce1b15, 0x3feee32dc313a8e5, 0x3c859f48a72a4c6d, 0x3feedea64c123422, 0xbc9312607a28698a, 0x3feeda4504ac801c,
    0xbc58a78f4817895b, 0x3feed60a21f72e2a, 0xbc7c2c9b67499a1b, 0x3feed1f5d950a897, 0x3c4363ed60c2ac11, 0x3feece086061892d,
    0x3c9666093b0664ef, 0x3feeca41ed1d0057, 0x3c6ecce1daa10379, 0x3feec6a2b5c13cd0, 0x3c93ff8e3f0f1230, 0x3feec32af0d7d3de,
    0x3c7690cebb7aafb0, 0x3feebfdad5362a27, 0x3c931dbdeb54e077, 0x3feebcb299fddd0d, 0xbc8f94340071a38e, 0x3feeb9b2769d2ca7,
    0xbc87deccdc93a349, 0x3feeb6daa2cf6642, 0xbc78dec6bd0f385f, 0x3feeb42b569d4f82, 0xbc861246ec7b5cf6, 0x3feeb1a4ca5d920f,
    0x3c93350518fdd78e, 0x3feeaf4736b527da, 0x3c7b98b72f8a9b05, 0x3feead12d497c7fd, 0x3c9063e1e21c5409, 0x3feeab07dd485429,
    0x3c34c7855019c6ea, 0x3feea9268a5946b7, 0x3c9432e62b64c035, 0x3feea76f15ad2148, 0xbc8ce44a6199769f, 0x3feea5e1b976dc09,
    0xbc8c33c53bef4da8, 0x3feea47eb03a5585, 0xbc845378892be9ae, 0x3feea34634ccc320, 0xbc93cedd78565858, 0x3feea23882552225,
    0x3c5710aa807e1964, 0x3feea155d44ca973, 0xbc93b3efbf5e2228, 0x3feea09e667f3bcd, 0xbc6a12ad8734b982, 0x3feea012750bdabf,
    0xbc6367efb86da9ee, 0x3fee9fb23c651a2f, 0xbc80dc3d54e08851, 0x3fee9f7df9519484, 0xbc781f647e5a3ecf, 0x3fee9f75e8ec5f74,
    0xbc86ee4ac08b7db0, 0x3fee9f9a48a58174, 0xbc8619321e55e68a, 0x3fee9feb564267c9, 0x3c909ccb5e09d4d3, 0x3feea0694fde5d3f,
    0xbc7b32dcb94da51d, 0x3feea11473eb0187, 0x3c94ecfd5467c06b, 0x3feea1ed0130c132, 0x3c65ebe1abd66c55, 0x3feea2f336cf4e62,
    0xbc88a1c52fb3cf42, 0x3feea427543e1a12, 0xbc9369b6f13b3734, 0x3feea589994cce13, 0xbc805e843a19ff1e, 0x3feea71a4623c7ad,
    0xbc94d450d872576e, 0x3feea8d99b4492ed, 0x3c90ad675b0e8a00, 0x3feeaac7d98a6699, 0x3c8db72fc1f0eab4, 0x3feeace5422aa0db,
    0xbc65b6609cc5e7ff, 0x3feeaf3216b5448c, 0x3c7bf68359f35f44, 0x3feeb1ae99157736, 0xbc93091fa71e3d83, 0x3feeb45b0b91ffc6,
    0xbc5da9b88b6c1e29, 0x3feeb737b0cdc5e5, 0xbc6c23f97c90b959, 0x3feeba44cbc8520f, 0xbc92434322f4f9aa, 0x3feebd829fde4e50,
    0xbc85ca6cd7668e4b, 0x3feec0f170ca07ba, 0x3c71affc2b91ce27, 0x3feec49182a3f090, 0x3c6dd235e10a73bb, 0x3feec86319e32323,
    0xbc87c50422622263, 0x3feecc667b5de565, 0x3c8b1c86e3e231d5, 0x3feed09bec4a2d33, 0xbc91bbd1d3bcbb15, 0x3feed503b23e255d,
    0x3c90cc319cee31d2, 0x3feed99e1330b358, 0x3c8469846e735ab3, 0x3feede6b5579fdbf, 0xbc82dfcd978e9db4, 0x3feee36bbfd3f37a,
    0x3c8c1a7792cb3387, 0x3feee89f995ad3ad, 0xbc907b8f4ad1d9fa, 0x3feeee07298db666, 0xbc55c3d956dcaeba, 0x3feef3a2b84f15fb,
    0xbc90a40e3da6f640, 0x3feef9728de5593a, 0xbc68d6f438ad9334, 0x3feeff76f2fb5e47, 0xbc91eee26b588a35, 0x3fef05b030a1064a,
    0x3c74ffd70a5fddcd, 0x3fef0c1e904bc1d2, 0xbc91bdfbfa9298ac, 0x3fef12c25bd71e09, 0x3c736eae30af0cb3, 0x3fef199bdd85529c,
    0x3c8ee3325c9ffd94, 0x3fef20ab5fffd07a, 0x3c84e08fd10959ac, 0x3fef27f12e57d14b, 0x3c63cdaf384e1a67, 0x3fef2f6d9406e7b5,
    0x3c676b2c6c921968, 0x3fef3720dcef9069, 0xbc808a1883ccb5d2, 0x3fef3f0b555dc3fa, 0xbc8fad5d3ffffa6f, 0x3fef472d4a07897c,
    0xbc900dae3875a949, 0x3fef4f87080d89f2, 0x3c74a385a63d07a7, 0x3fef5818dcfba487, 0xbc82919e2040220f, 0x3fef60e316c98398,
    0x3c8e5a50d5c192ac, 0x3fef69e603db3285, 0x3c843a59ac016b4b, 0x3fef7321f301b460, 0xbc82d52107b43e1f, 0x3fef7c97337b9b5f,
    0xbc892ab93b470dc9, 0x3fef864614f5a129, 0x3c74b604603a88d3, 0x3fef902ee78b3ff6, 0x3c83c5ec519d7271, 0x3fef9a51fbc74c83,
    0xbc8ff7128fd391f0, 0x3fefa4afa2a490da, 0xbc8dae98e223747d, 0x3fefaf482d8e67f1, 0x3c8ec3bc41aa2008, 0x3fefba1bee615a27,
    0x3c842b94c3a9eb32, 0x3fefc52b376bba97, 0x3c8a64a931d185ee, 0x3fefd0765b6e4540, 0xbc8e37bae43be3ed, 0x3fefdbfdad9cbe14,
    0x3c77893b4d91cd9d, 0x3fefe7c1819e90d8, 0x3c5305c14160cc89, 0x3feff3c22b8f71f1,
};
enum { EXP_INVLN2N = 0, EXP_NEGLN2HI, EXP_NEGLN2LO, EXP_C2, EXP_C3, EXP_C4, EXP_C5, EXP_SHIFT };
static const uint64_t exp_k[8] = {0x40671547652b82fe, 0xbf762e42fefa0000, 0xbd0cf79abc9e3b3a, 0x3fdffffffffffdbd,
                                  0x3fc555555555543c, 0x3fa55555cf172b91, 0x3f81111167a4d017, 0x4338000000000000};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
static inline __attribute__((always_inline)) double kd_(int i) { double d; memcpy(&d, &expf_k[i], 8); return d; }

/* 8 lanes: the main path for every lane (lanes outside it are redone by the caller) */
EMU_T_AVX512 static inline __m256 expf8(__m256 x, const __m512d tab[4]) {
    __m512d xd = _mm512_cvtps_pd(x), shift = _mm512_set1_pd(kd_(EXPF_SHIFT)), inv = _mm512_set1_pd(kd_(EXPF_INVLN2N));
    __m512d z = _mm512_fmadd_pd(inv, xd, shift);
    __m512i ki = _mm512_castpd_si512(z);
    __m512d kd = _mm512_sub_pd(z, shift);
    __m512d r = _mm512_fmsub_pd(inv, xd, kd);
    /* T[ki mod 32]: two 16-entry lookups (index bits 0-3 and the table half), bit 4 chooses */
    __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
    __m512d t0 = _mm512_permutex2var_pd(tab[0], idx, tab[1]), t1 = _mm512_permutex2var_pd(tab[2], idx, tab[3]);
    __mmask8 hi = _mm512_test_epi64_mask(idx, _mm512_set1_epi64(16));
    __m512i t = _mm512_castpd_si512(_mm512_mask_blend_pd(hi, t0, t1));
    __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(ki, 47)));
    __m512d p0 = _mm512_fmadd_pd(r, _mm512_set1_pd(kd_(EXPF_C0)), _mm512_set1_pd(kd_(EXPF_C1)));
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(r, _mm512_set1_pd(kd_(EXPF_C2)), _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(p0, r2, y);
    return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

static inline __attribute__((always_inline)) double ek_(int i) { double d; memcpy(&d, &exp_k[i], 8); return d; }
/* 8 lanes of exp: the main path for every lane; *out: the lanes outside it */
EMU_T_AVX512 static inline __m512d exp8(__m512d x, __mmask8 *out) {
    __m512i top = _mm512_and_si512(_mm512_srli_epi64(_mm512_castpd_si512(x), 52), _mm512_set1_epi64(0x7ff));
    *out = _mm512_cmpgt_epu64_mask(_mm512_sub_epi64(top, _mm512_set1_epi64(0x3c9)), _mm512_set1_epi64(0x3e));
    __m512d shift = _mm512_set1_pd(ek_(EXP_SHIFT));
    __m512d z = _mm512_fmadd_pd(x, _mm512_set1_pd(ek_(EXP_INVLN2N)), shift);
    __m512i ki = _mm512_castpd_si512(z);
    __m512d kd = _mm512_sub_pd(z, shift);
    __m512d r = _mm512_fmadd_pd(kd, _mm512_set1_pd(ek_(EXP_NEGLN2HI)), x);
    r = _mm512_fmadd_pd(kd, _mm512_set1_pd(ek_(EXP_NEGLN2LO)), r);
    __m512i idx = _mm512_slli_epi64(_mm512_and_si512(ki, _mm512_set1_epi64(127)), 1);
    __m512d tail = _mm512_castsi512_pd(_mm512_i64gather_epi64(idx, (const long long *)exp_tab, 8));
    __m512i sb = _mm512_i64gather_epi64(idx, (const long long *)exp_tab + 1, 8);
    __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(sb, _mm512_slli_epi64(ki, 45)));
    __m512d a = _mm512_fmadd_pd(r, _mm512_set1_pd(ek_(EXP_C3)), _mm512_set1_pd(ek_(EXP_C2)));
    __m512d tr = _mm512_add_pd(r, tail);
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d b = _mm512_fmadd_pd(r, _mm512_set1_pd(ek_(EXP_C5)), _mm512_set1_pd(ek_(EXP_C4)));
    __m512d c = _mm512_fmadd_pd(a, r2, tr);
    __m512d tmp = _mm512_fmadd_pd(_mm512_mul_pd(r2, r2), b, c);
    return _mm512_fmadd_pd(s, tmp, s);
}
/* y[i] = exp(x[i]) */
EMU_T_AVX512 static void exp_avx512(double *y, const double *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __mmask8 out;
        __m512d e = exp8(_mm512_loadu_pd(x + i), &out);
        _mm512_storeu_pd(y + i, e);
        if (out) for (int j = 0; j < 8; j++) if (out >> j & 1) y[i + j] = exp(x[i + j]);
    }
    for (; i < n; i++) y[i] = exp(x[i]);
}

EMU_T_AVX512 static void expf_avx512(float *y, const float *x, size_t n) {
    __m512d tab[4];
    for (int i = 0; i < 4; i++) tab[i] = _mm512_loadu_pd((const double *)expf_tab + 8 * i);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        /* glibc's test for its main path: (bits(x) >> 20) & 0x7ff ≤ 0x42a, i.e. |x| < 88 */
        __m256i top = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 20), _mm256_set1_epi32(0x7ff));
        __mmask8 out = _mm256_cmpgt_epi32_mask(top, _mm256_set1_epi32(0x42a));
        __m256 e = expf8(v, tab);
        if (out) {   /* overflow, underflow, Inf, NaN: the library's own answer */
            float xs[8], es[8];
            _mm256_storeu_ps(xs, v);
            _mm256_storeu_ps(es, e);
            for (int j = 0; j < 8; j++) if (out >> j & 1) es[j] = expf(xs[j]);
            e = _mm256_loadu_ps(es);
        }
        _mm256_storeu_ps(y + i, e);
    }
    for (; i < n; i++) y[i] = expf(x[i]);
}

/* -1 not yet decided, 0 the library, 1 the vector forms (atomic: the first call may come from any thread) */
static int use_vexp = -1;
static int vexp_matches_libm(void) {   /* expf and exp */
    enum { NS = 4096 };
    float x[NS], y[NS];
    for (int i = 0; i < NS; i++) {   /* evenly over (−128, 128) in steps of 1/16, plus an odd fraction: every table slot and both signs */
        x[i] = (float)(i - NS / 2) / 16.0f + (float)(i % 7) * 0.0009765625f;
    }
    x[0] = -INFINITY; x[1] = INFINITY; x[2] = NAN; x[3] = 0.0f; x[4] = -0.0f; x[5] = 1e-30f; x[6] = -104.0f; x[7] = 89.0f;
    expf_avx512(y, x, NS);
    for (int i = 0; i < NS; i++) {
        float r = expf(x[i]);
        if (memcmp(&r, &y[i], 4) != 0) return 0;
    }
    double xd[NS], yd[NS];   /* exp over (−1000, 1000) and tiny arguments */
    for (int i = 0; i < NS; i++) xd[i] = (i - NS / 2) * 0.48828125 + (i % 11) * 1e-3 + (i % 5 == 0 ? 1e-17 * i : 0);
    xd[0] = -INFINITY; xd[1] = INFINITY; xd[2] = NAN; xd[3] = 0.0; xd[4] = -0.0; xd[5] = 0x1p-60;
    exp_avx512(yd, xd, NS);
    for (int i = 0; i < NS; i++) {
        double r = exp(xd[i]);
        if (memcmp(&r, &yd[i], 8) != 0) return 0;
    }
    return 1;
}
#endif

int emu_vexp_active(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    int v = __atomic_load_n(&use_vexp, __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = emu_have_avx512() && vexp_matches_libm();   /* racing threads decide the same */
        __atomic_store_n(&use_vexp, v, __ATOMIC_RELEASE);
    }
    return v;
#else
    return 0;
#endif
}

void emu_expf_n(float *y, const float *x, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (emu_vexp_active()) { expf_avx512(y, x, n); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

void emu_exp_n(double *y, const double *x, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (emu_vexp_active()) { exp_avx512(y, x, n); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] = exp(x[i]);
}

/* emu_ppl_row (emu/ops.h) with its exp calls 8 lanes at a time: the same arguments, the same library bits,
 * the sums in the same order — the same result bit for bit (tests/test_emu_vexp.c). Blocks of 512. */
double emu_ppl_row_cpu(const float *lq, const float *lb, long V, int target, int *arg, double *kld) {
    enum { BLK = 512 };
    double xb[BLK], eb[BLK];
    float mq = lq[0];
    int aq = 0;
    for (long i = 1; i < V; i++) if (lq[i] > mq) { mq = lq[i]; aq = (int)i; }
    double zq = 0;
    for (long i0 = 0; i0 < V; i0 += BLK) {
        int m = V - i0 < BLK ? (int)(V - i0) : BLK;
        for (int j = 0; j < m; j++) xb[j] = (double)lq[i0 + j] - mq;
        emu_exp_n(eb, xb, (size_t)m);
        for (int j = 0; j < m; j++) zq += eb[j];
    }
    double lzq = log(zq);
    *arg = aq;
    if (lb) {
        float mb = lb[0];
        for (long i = 1; i < V; i++) if (lb[i] > mb) mb = lb[i];
        double zb = 0;
        for (long i0 = 0; i0 < V; i0 += BLK) {
            int m = V - i0 < BLK ? (int)(V - i0) : BLK;
            for (int j = 0; j < m; j++) xb[j] = (double)lb[i0 + j] - mb;
            emu_exp_n(eb, xb, (size_t)m);
            for (int j = 0; j < m; j++) zb += eb[j];
        }
        double lzb = log(zb), k = 0;
        for (long i0 = 0; i0 < V; i0 += BLK) {
            int m = V - i0 < BLK ? (int)(V - i0) : BLK;
            for (int j = 0; j < m; j++) xb[j] = (double)lb[i0 + j] - mb - lzb;
            emu_exp_n(eb, xb, (size_t)m);
            for (int j = 0; j < m; j++) {
                double lpb_i = xb[j], lpq_i = (double)lq[i0 + j] - mq - lzq;
                k += eb[j] * (lpb_i - lpq_i);
            }
        }
        *kld = k;
    }
    return (double)lq[target] - mq - lzq;
}
