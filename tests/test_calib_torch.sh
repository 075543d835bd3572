#!/bin/sh
# calibrate's absmax (all four observers) at every observation point against Hugging Face transformers (bf16, eager)
# with hooks at the same points, on a synthetic Llama-3-shaped checkpoint (llama_fp8 synth --shape tiny,
# Llama 3 tokenizer) and TinyStories text. Skips without torch + transformers or the data.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/calib_torch; rm -rf $T; mkdir -p $T
TOK=$D/llama3-tokenizer/tokenizer.model; TXT=$D/tinystories/tinystories_valid_excerpt.txt
if [ ! -f "$TOK" ] || [ ! -f "$TXT" ]; then echo "skip calib_torch: no Llama 3 tokenizer / tinystories in $D"; exit 0; fi
if ! python3 -c "import torch, transformers, compressed_tensors, numpy" 2>/dev/null; then echo "skip calib_torch: no torch + transformers + compressed-tensors + numpy"; exit 0; fi
$B synth -o $T/m --shape tiny > /dev/null 2>&1 || { echo "FAIL calib_torch_synth"; exit 1; }
for obs in minmax ema ema-legacy mse percentile; do
  $B calibrate -m $T/m --tokenizer $TOK -f $TXT --samples 3 --seq 96 --seed 5 --observer $obs --kv-observer $obs --percentile 99.9 -o $T/$obs.json > $T/cal.txt 2>&1 || { echo "FAIL calib_torch_calibrate_$obs: $(tail -1 $T/cal.txt)"; exit 1; }
done
$B tokenize --tokenizer $TOK -f $TXT > $T/ids.txt || { echo "FAIL calib_torch_tokenize"; exit 1; }
python3 tests/calib_torch_check.py $T/m $T/ids.txt $T/minmax.json $T/ema.json $T/ema-legacy.json $T/mse.json $T/percentile.json 2> $T/py.err || { echo "FAIL calib_torch_check: $(tail -1 $T/py.err)"; exit 1; }
# stats: every column of the report against torch on the same chunks
$B tokenize --tokenizer $TOK -f $TXT --bos > $T/ids_bos.txt
$B stats -m $T/m --tokenizer $TOK -f $TXT --ctx 64 --chunks 3 > $T/stats.txt 2>&1 || { echo "FAIL calib_torch_stats: $(tail -1 $T/stats.txt)"; exit 1; }
python3 tests/stats_torch_check.py $T/m $T/ids_bos.txt 64 3 $T/stats.txt 2> $T/py2.err || { echo "FAIL stats_torch_check: $(tail -1 $T/py2.err)"; exit 1; }
