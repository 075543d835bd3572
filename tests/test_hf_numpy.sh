#!/bin/sh
# Runs tests/test_hf.c against tests/hf_numpy_ref.py (an independent NumPy forward pass) instead of
# llama_fp8: shows the bounds in test_hf.c are met by an implementation other than PyTorch, and keeps
# them honest if the goldens are regenerated. Needs python3 with numpy and ml_dtypes, else skips.
if ! python3 -c 'import numpy, ml_dtypes' 2>/dev/null; then
  echo "skip hf_numpy: python3 with numpy + ml_dtypes not available"; exit 0
fi
mkdir -p build/tests
${CC:-cc} -O2 -o build/tests/test_hf_numpy tests/test_hf.c -lm || { echo "FAIL hf_numpy: test_hf.c does not compile"; exit 1; }
LLAMA_FP8="$(pwd)/tests/hf_numpy_ref.py" build/tests/test_hf_numpy | sed 's/^ok hf /ok hf_numpy /; s/^FAIL hf: /FAIL hf_numpy: /'

# Each deliberate bug in the NumPy forward must be caught by test_hf.c on at least one model: the
# bounds are tight enough to see one missing bf16 rounding point, a missing llama3 rope_scaling, the
# default rope_theta or rms_norm_eps instead of config.json's, and Meta's interleaved RoPE layout.
for m in rope cossin rmsinner scale siluup probs nollama3 theta eps interleaved; do
  n=$(HF_NUMPY_MUTATE=$m LLAMA_FP8="$(pwd)/tests/hf_numpy_ref.py" build/tests/test_hf_numpy | grep -c '^FAIL')
  if [ "$n" -gt 0 ]; then echo "ok hf_numpy mutation '$m' caught by $n checks"
  else echo "FAIL hf_numpy: mutation '$m' of the NumPy forward passes every check in test_hf.c"; fi
done
