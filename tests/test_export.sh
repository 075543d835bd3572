#!/bin/sh
# export → load → run gives bit-identical logits: the checkpoint holds exactly the bytes and scales
# the scheme runs with, and loading a compressed-tensors checkpoint runs it as the scheme did.
set -u
B=${LLAMA_FP8:-./llama_fp8}; T=build/tests/export; rm -rf $T; mkdir -p $T
IDS=128000,9906,1917,374,264,1296,11914,13
$B synth -o $T/src --shape tiny --shards 2 > /dev/null 2>&1 || { echo "FAIL export_setup: synth failed"; exit 1; }
# a hand-written static scales file (absmax per site and K/V), as calibrate writes them
python_free_scales() {
  printf '{"format": "llama_fp8 scales v1", "activations": {"layers": ['
  for l in 0 1; do [ $l = 1 ] && printf ','; printf '{"qkv": 3.5, "o": 0.25, "gate_up": 4.0, "down": 0.0625}'; done
  printf '], "lm_head": 6.0}, "kv": {"k": [2.0, 2.5], "v": [0.5, 0.75]}}\n'
}
python_free_scales > $T/scales.json
check() {  # name, scheme args...
  name=$1; shift
  rm -rf $T/ck $T/a $T/b
  if ! $B export -m $T/src "$@" -o $T/ck > $T/log.txt 2>&1; then echo "FAIL $name: export failed: $(tail -1 $T/log.txt)"; return; fi
  $B dump -m $T/src "$@" --ids $IDS -o $T/a > /dev/null 2>&1 || { echo "FAIL $name: dump of the source failed"; return; }
  extra=""; case "$*" in *--kv*) extra="--kv fp8-e4m3";; esac
  if ! $B dump -m $T/ck --ids $IDS -o $T/b > $T/log.txt 2>&1; then echo "FAIL $name: loading the export failed: $(tail -1 $T/log.txt)"; return; fi
  for f in logits.npy layer_00.npy layer_01.npy; do
    cmp -s $T/a/$f $T/b/$f || { echo "FAIL $name: $f differs between the scheme on the source and the exported checkpoint"; return; }
  done
  grep -q '"quant_method": "compressed-tensors"' $T/ck/config.json || { echo "FAIL $name: no compressed-tensors quantization_config"; return; }
  echo "ok $name"
}
check export_w8a8_identical_logits -q w8a8
check export_fp8w_identical_logits -q fp8-w
check export_w8a8_static_kv_identical_logits -q w8a8-static --scales $T/scales.json --kv fp8-e4m3
check export_w8a8_fp32_arith_identical_logits -q w8a8 --weight-arith fp32
check export_w8a8_lm_head_identical_logits -q w8a8 --quant-lm-head
# a quantized checkpoint refuses to run as another scheme, and to be exported again
$B dump -m $T/ck -q bf16 --ids 1 -o $T/c > /dev/null 2> $T/err.txt
if [ $? -eq 1 ] && grep -q "FP8 checkpoint" $T/err.txt; then echo "ok export_checkpoint_scheme_is_fixed"; else echo "FAIL export_checkpoint_scheme_is_fixed: $(cat $T/err.txt)"; fi
