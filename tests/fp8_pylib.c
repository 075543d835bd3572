/* fp8_pylib.c — fp8.h as a tiny shared library, so the live Python oracles (ml_dtypes, numpy,
 * torch) can be compared with it on large arrays: tests/fp8_live_oracles.py loads it with ctypes.
 * Build: cc -O2 -shared -fPIC -fopenmp -I. tests/fp8_pylib.c -o build/tests/libfp8.so -lm */
#include <stdint.h>
#include "fp8.h"

void fp8_from_float_array(const float *x, uint8_t *q, long n, int fmt, int sat) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) q[i] = fp8_from_float(x[i], (fp8_format)fmt, (fp8_saturation)sat);
}
void fp8_to_float_array(const uint8_t *q, float *x, long n, int fmt) {
    for (long i = 0; i < n; i++) x[i] = fp8_to_float(q[i], (fp8_format)fmt);
}
void bf16_from_float_array(const float *x, uint16_t *b, long n) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) b[i] = bf16_from_float(x[i]);
}
void fp16_from_float_array(const float *x, uint16_t *h, long n) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) h[i] = fp16_from_float(x[i]);
}
void fp16_to_float_array(const uint16_t *h, float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = fp16_to_float(h[i]);
}
