#!/bin/sh
# calibrate's minmax absmax at every observation point against Hugging Face transformers (bf16, eager)
# with hooks at the same points, on a synthetic Llama-3-shaped checkpoint (llama_fp8 synth --shape tiny,
# Llama 3 tokenizer) and TinyStories text. Skips without torch + transformers or the data.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/calib_torch; rm -rf $T; mkdir -p $T
TOK=$D/llama3-tokenizer/tokenizer.model; TXT=$D/tinystories/tinystories_valid_excerpt.txt
if [ ! -f "$TOK" ] || [ ! -f "$TXT" ]; then echo "skip calib_torch: no Llama 3 tokenizer / tinystories in $D"; exit 0; fi
if ! python3 -c "import torch, transformers" 2>/dev/null; then echo "skip calib_torch: no torch + transformers"; exit 0; fi
$B synth -o $T/m --shape tiny > /dev/null 2>&1 || { echo "FAIL calib_torch_synth"; exit 1; }
$B calibrate -m $T/m --tokenizer $TOK -f $TXT --samples 3 --seq 96 --seed 5 -o $T/s.json > $T/cal.txt 2>&1 || { echo "FAIL calib_torch_calibrate: $(tail -1 $T/cal.txt)"; exit 1; }
$B tokenize --tokenizer $TOK -f $TXT > $T/ids.txt || { echo "FAIL calib_torch_tokenize"; exit 1; }
python3 tests/calib_torch_check.py $T/m $T/s.json $T/ids.txt 2> $T/py.err || { echo "FAIL calib_torch_check: $(tail -1 $T/py.err)"; exit 1; }
