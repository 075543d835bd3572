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
  # the checkpoint as the real tools read it (compressed-tensors + transformers; skip without them)
  python3 tests/check_ct_export.py $T/ck --orig $T/src > $T/ct.txt 2>&1; rc=$?
  case $rc in
    0) echo "ok ${name}_compressed_tensors: $(tail -1 $T/ct.txt)";;
    2) echo "skip ${name}_compressed_tensors: $(tail -1 $T/ct.txt)";;
    *) echo "FAIL ${name}_compressed_tensors: $(tail -1 $T/ct.txt)";;
  esac
}
check export_w8a8_identical_logits -q w8a8
check export_fp8w_identical_logits -q fp8-w
check export_w8a8_static_kv_identical_logits -q w8a8-static --scales $T/scales.json --kv fp8-e4m3
check export_w8a8_lm_head_identical_logits -q w8a8 --quant-lm-head
$B export -m $T/src -q w8a8 --weight-arith fp32 -o $T/bad > /dev/null 2> $T/err.txt
if [ $? -eq 1 ] && grep -q "bf16 scales" $T/err.txt; then echo "ok export_refuses_fp32_scales"; else echo "FAIL export_refuses_fp32_scales: $(cat $T/err.txt)"; fi
# a quantized checkpoint refuses to run as another scheme, and to be exported again
$B dump -m $T/ck -q bf16 --ids 1 -o $T/c > /dev/null 2> $T/err.txt
if [ $? -eq 1 ] && grep -q "FP8 checkpoint" $T/err.txt; then echo "ok export_checkpoint_scheme_is_fixed"; else echo "FAIL export_checkpoint_scheme_is_fixed: $(cat $T/err.txt)"; fi
# the export is a directory transformers and vLLM load as it is: the source's config.json with every key kept
# (eos_token_id as a list, as Llama 3.1 has it) plus quantization_config, torch_dtype bfloat16 (the tensors
# written), and generation_config.json / tokenizer files copied from beside the source
rm -rf $T/src2 $T/ex2; cp -r $T/src $T/src2
if command -v python3 > /dev/null; then
  python3 - $T/src2 <<'PYEOF'
import json, sys
d = sys.argv[1]; c = json.load(open(d + "/config.json"))
c["eos_token_id"] = [128001, 128008, 128009]; c["torch_dtype"] = "float32"; c["custom_key"] = {"kept": True}
json.dump(c, open(d + "/config.json", "w"), indent=2)
json.dump({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9}, open(d + "/generation_config.json", "w"))
open(d + "/tokenizer_config.json", "w").write('{"model_max_length": 131072}')
PYEOF
  if $B export -m $T/src2 -q w8a8 -o $T/ex2 > $T/ex2.txt 2>&1 && python3 - $T/src2 $T/ex2 <<'PYEOF'
import json, sys
s, d = sys.argv[1:3]
strict = lambda p: json.load(open(p), parse_constant=lambda c: sys.exit("non-finite " + c))
cs, cd = strict(s + "/config.json"), strict(d + "/config.json")
assert cd["eos_token_id"] == [128001, 128008, 128009] and cd["custom_key"] == {"kept": True}, cd
assert cd["torch_dtype"] == "bfloat16" and cd["quantization_config"]["quant_method"] == "compressed-tensors"
assert {k: v for k, v in cd.items() if k not in ("quantization_config", "torch_dtype")} == {k: v for k, v in cs.items() if k != "torch_dtype"}
for f in ("generation_config.json", "tokenizer_config.json"):
    assert open(s + "/" + f, "rb").read() == open(d + "/" + f, "rb").read(), f
PYEOF
  then echo "ok export_keeps_config_and_copies_files: eos_token_id list and every key kept, torch_dtype bfloat16, generation/tokenizer files copied"
  else echo "FAIL export_keeps_config_and_copies_files: $(tail -2 $T/ex2.txt)"; fi
else echo "skip export_keeps_config_and_copies_files: no python3"; fi
