#!/bin/sh
# Manual: does tests/test_smoothquant.sh catch a wrong SmoothQuant? Builds llama_fp8 with one deliberate mistake at a time
# (build/mutants/NAME) and runs the CI check (and, with LIVE=1, tests/smoothquant_check.py) with it; each must FAIL.
#   alpha05     default alpha 0.5 instead of 0.8
#   exactexp    the exponents a and 1 - a in fp32 instead of rounded to bf16 (torch's pow on a bf16 tensor)
#   absmax      activation range max(|min|, |max|) instead of max - min
#   nofactor2   weight range max |W| instead of 2 max |W|
#   nofold      balance weights scaled, the norm not divided (the model changes)
#   clampbf16   the 1e-5 clamp rounded to bf16 (no promotion to fp32 by the 1-d fp32 tensor)
#   unsmoothed  every layer calibrated on the unsmoothed model (layer l's statistics from unsmoothed earlier layers)
set -u
CC=${CC:-cc}
mkdir -p build/mutants
for mu in alpha05 exactexp absmax nofactor2 nofold clampbf16 unsmoothed; do
  python3 - $mu <<'PYEOF'
import sys
mu = sys.argv[1]; s = open("llama_fp8.c").read()
R = {"alpha05": [("double alpha = alpha_s ? parse_double_arg(\"--alpha\", alpha_s) : 0.8;", "double alpha = alpha_s ? parse_double_arg(\"--alpha\", alpha_s) : 0.5;")],
     "exactexp": [("float e1 = Bf((float)alpha), e2 = Bf((float)(1.0 - alpha));", "float e1 = (float)alpha, e2 = (float)(1.0 - alpha);")],
     "absmax": [("float act = Bf(mx[j] - mn[j]), ws", "float act = fmaxf(fabsf(mx[j]), fabsf(mn[j])), ws")],
     "nofactor2": [("ws = Bf(2.0f * w[j]);", "ws = Bf(w[j]);")],
     "nofold": [("for (int j = 0; j < dim; j++) nn[j] = Bf(nw[j] / sc[j]);", "for (int j = 0; j < dim; j++) nn[j] = nw[j];")],
     "clampbf16": [("s[j] = fmaxf(v, 1e-5f);", "s[j] = Bf(fmaxf(v, 1e-5f));")],
     "unsmoothed": [("sq_layer_pass(sm, l, &s, &qs, H, o.samples, seq, iota, &obs, 0, out);", "sq_layer_pass(sm, l, &s, &qs, H, o.samples, seq, iota, &obs, 1, out);"),
                    ("if (l + 1 < c->n_layers) sq_layer_pass(sm, l, &s, &qs, H, o.samples, seq, iota, NULL, 1, out);", "")]}
for a, b in R[mu]:
    assert s.count(a) == 1, (mu, a)
    s = s.replace(a, b)
open(f"build/mutants/{mu}.c", "w").write(s)
PYEOF
  $CC -O2 -std=gnu11 -ffp-contract=off -fopenmp -I. -o build/mutants/$mu build/mutants/$mu.c emu/attention.c emu/gemm_f32.c emu/gemm_fp8.c emu/gemm_ref.c emu/peak.c emu/quant.c -lm 2> build/mutants/$mu.log || { echo "FAIL mutant_$mu: does not build"; continue; }
  out=$(LLAMA_FP8=build/mutants/$mu SQ_LIVE=${LIVE:-0} sh tests/test_smoothquant.sh 2>&1)
  nf=$(printf '%s\n' "$out" | grep -c '^FAIL')
  if [ "$nf" -gt 0 ]; then echo "ok mutant_$mu: caught, $nf FAIL lines: $(printf '%s\n' "$out" | grep '^FAIL' | cut -d: -f1 | tr '\n' ' ')"
  else echo "FAIL mutant_$mu: the check passed a wrong SmoothQuant"; fi
done
