#!/bin/sh
# Long sequences: `llama_fp8 dump -q bf16` against transformers' eager bf16 logits on stories260K
# (512 tokens of real text) and a random Llama-3-shaped GQA model (head_dim 64, llama3 rope_scaling,
# 320 tokens). Bit-identity is not expected there (fp32 summation order of the GEMMs differs from
# torch's); the dump is accepted when it is no further from transformers, on each of eight statistics,
# than the furthest of 64 function-preserving permutations of the same model run by transformers
# itself (tests/gen_hf_long_goldens.py; bounds in tests/golden/hf_long_NAME.txt).
# Negative controls, each of which must be REJECTED: llama_fp8 -q fp32, and the NumPy reference
# forward (tests/hf_numpy_ref.py, which must itself pass) with one bf16 rounding point dropped.
# Needs python3 + numpy (ml_dtypes for the NumPy reference part), else skips.
LLAMA_FP8=${LLAMA_FP8:-./llama_fp8}
DATA=${LLAMA_FP8_DATA:-../shared/data}
G="python3 tests/gen_hf_long_goldens.py"
if ! python3 -c 'import numpy' 2>/dev/null; then
  echo "skip hf_long: python3 with numpy not available"; exit 0
fi
if [ ! -f tests/golden/hf_long_synth3.txt ] || [ ! -f tests/golden/hf_long_stories260K.txt ]; then
  echo "skip hf_long: tests/golden/hf_long_* absent"; exit 0
fi
NUMPY_REF=1
python3 -c 'import ml_dtypes' 2>/dev/null || NUMPY_REF=0
out=build/tests/hf_long
rm -rf "$out"; mkdir -p "$out"

# $1 name, $2 model, $3 label, $4 dumper, $5 -q, $6 --negative or empty, $7 HF_NUMPY_MUTATE
one() {
  d="$out/$1_$3"
  if ! HF_NUMPY_MUTATE="$7" $4 dump -m "$2" --ids "$ids" -q "$5" -o "$d" > "$d.log" 2>&1; then
    echo "FAIL hf_long $1 $3: dump failed: $(tail -n 2 "$d.log" | tr '\n' ' ')"; return
  fi
  $G check "$1" "$d/logits.npy" "$3" $6
}

model_checks() {  # $1 name, $2 model
  ids=$($G meta "$1" ids)
  one "$1" "$2" llama_fp8 "$LLAMA_FP8" bf16 "" ""
  one "$1" "$2" llama_fp8_q_fp32 "$LLAMA_FP8" fp32 --negative ""
  if [ "$NUMPY_REF" = 1 ]; then
    one "$1" "$2" hf_numpy_ref tests/hf_numpy_ref.py bf16 "" ""
    for m in $3; do
      one "$1" "$2" "hf_numpy_ref_drop_$m" tests/hf_numpy_ref.py bf16 --negative "$m"
    done
  fi
}

# the synthetic model is written from its generator (numpy only) and must be byte-identical
sha=$($G model "$out/synth3_model")
want=$($G meta synth3 model_sha256)
if [ "$sha" != "$want" ]; then
  echo "FAIL hf_long synth3: model written by gen_hf_long_goldens.py has sha256 $sha, golden says $want"
else
  echo "ok hf_long synth3 model: sha256 $sha"
  # (no 'scale' mutation: at head_dim 64 the attention scale 1/8 is exact, so dropping its rounding is invisible)
  model_checks synth3 "$out/synth3_model" "rope cossin rmsinner siluup probs"
fi
if [ -f "$DATA/stories260K/stories260K.bin" ]; then
  model_checks stories260K "$DATA/stories260K/stories260K.bin" "rope cossin rmsinner scale siluup probs"
else
  echo "skip hf_long stories260K: $DATA/stories260K/stories260K.bin absent"
fi
[ "$NUMPY_REF" = 1 ] || echo "skip hf_long hf_numpy_ref: python3 without ml_dtypes"
