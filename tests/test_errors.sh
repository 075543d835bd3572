#!/bin/sh
# Bad input gets one line naming the problem and a non-zero exit — never a crash or a silently
# wrong number. Each case: the exit status must be 1 (not a signal), stderr exactly one line
# starting "llama_fp8: error:", containing the expected words.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/errors; rm -rf $T; mkdir -p $T
TABLE_NAME=errors; . tests/errors_lib.sh
# a valid small checkpoint to corrupt
$B synth -o $T/good --shape tiny --shards 2 > /dev/null 2>&1 || { echo "FAIL errors_setup: synth failed"; exit 1; }
S1=$T/good/model-00001-of-00002.safetensors
mk() { rm -rf $T/$1; cp -r $T/good $T/$1; }

expect errors_no_such_model "no such model" $B ppl -m $T/nope -f /dev/null
mk trunc; truncate -s 5000 $T/trunc/model-00001-of-00002.safetensors
expect errors_truncated_shard "does not fit\|outside" $B dump -m $T/trunc --ids 1,2 -o $T/o
mk tiny8; head -c 4 $S1 > $T/tiny8/model-00001-of-00002.safetensors
expect errors_shard_under_8_bytes "too small" $B dump -m $T/tiny8 --ids 1,2 -o $T/o
mk hlen; printf '\377\377\377\377\377\377\377\177' | dd of=$T/hlen/model-00001-of-00002.safetensors bs=1 count=8 conv=notrunc 2>/dev/null
expect errors_header_length "header length" $B dump -m $T/hlen --ids 1,2 -o $T/o
mk badjson; printf '{{' | dd of=$T/badjson/model-00001-of-00002.safetensors bs=1 seek=8 count=2 conv=notrunc 2>/dev/null
expect errors_header_json "invalid JSON header" $B dump -m $T/badjson --ids 1,2 -o $T/o
mk dtype; sed -i 's/"BF16"/"I816"/' $T/dtype/model-00002-of-00002.safetensors
expect errors_bad_dtype "unsupported dtype" $B dump -m $T/dtype --ids 1,2 -o $T/o
mk missing; sed -i 's/model.norm.weight/model.norX.weight/' $T/missing/model-00002-of-00002.safetensors
expect errors_missing_tensor "model.norm.weight' not found" $B dump -m $T/missing --ids 1,2 -o $T/o
mk shape; sed -i 's/"intermediate_size": 176/"intermediate_size": 177/' $T/shape/config.json
expect errors_shape_vs_config "implies \[177, 64\]" $B dump -m $T/shape --ids 1,2 -o $T/o
mk nokey; sed -i '/"num_hidden_layers"/d' $T/nokey/config.json
expect errors_config_missing_key "num_hidden_layers" $B dump -m $T/nokey --ids 1,2 -o $T/o
mk eos; sed -i 's/"eos_token_id": [0-9]*/"eos_token_id": [128001, 200000]/' $T/eos/config.json
expect errors_config_eos_outside_vocab "eos_token_id 200000 is outside the vocabulary" $B dump -m $T/eos --ids 1,2 -o $T/o
mk cfgjson; printf '{"hidden_size": 64,' > $T/cfgjson/config.json
expect errors_config_json "config.json: invalid JSON" $B dump -m $T/cfgjson --ids 1,2 -o $T/o
mk gqa; sed -i 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' $T/gqa/config.json
expect errors_gqa_ratio "not a multiple" $B dump -m $T/gqa --ids 1,2 -o $T/o
mk shard; sed -i 's/model-00002-of-00002.safetensors"/..\/..\/etc\/passwd"/' $T/shard/model.safetensors.index.json
expect errors_shard_path "bad shard file name" $B dump -m $T/shard --ids 1,2 -o $T/o
expect errors_ids_range "outside\|bad token id" $B dump -m $T/good --ids 1,128256 -o $T/o
expect errors_unknown_option "unknown option" $B ppl -m $T/good --frobnicate 3
expect errors_unknown_scheme "unknown scheme" $B dump -m $T/good --ids 1 -q fp7 -o $T/o
expect errors_bad_number "expected an integer" $B ppl -m $T/good -f /dev/null --ctx 12x
if [ -f $D/stories260K/stories260K.bin ]; then
  head -c 100000 $D/stories260K/stories260K.bin > $T/trunc.bin
  expect errors_llama2c_truncated "truncated" $B dump -m $T/trunc.bin --ids 1,2 -o $T/o
  printf 'hi' > $T/short.txt; : > $T/empty.txt
  M="-m $D/stories260K/stories260K.bin --tokenizer $D/stories260K/tok512.bin"
  expect errors_text_too_short "fewer than one chunk" $B ppl $M -f $T/short.txt
  expect errors_text_empty "fewer than one chunk" $B ppl $M -f $T/empty.txt
  expect errors_ctx_above_max "exceeds the model's maximum context" $B ppl $M -f $T/short.txt --ctx 4096
else
  echo "skip errors_llama2c: no stories260K in $D"; SKIPPED=1
fi
printf 'garbage!' > $T/garbage.bin
expect errors_not_llama2c "not a llama2.c checkpoint\|too small" $B dump -m $T/garbage.bin --ids 1 -o $T/o
expect errors_gemm_option "expected auto, model, mma, wgmma or cublaslt" $B ppl --synthetic --gemm foo
if $B verify --device 2>&1 | grep -q "CUDA build"; then echo "skip errors_twin_cpu_build: $B is a CUDA build"; SKIPPED=1
else expect errors_twin_cpu_build "needs a CUDA build" env LLAMA_FP8_DEVICE=twin $B ppl --synthetic -q bf16; fi
# progress lines when stderr is not a terminal (a log): one line each, newline-terminated, no carriage return
err=$($B ppl --synthetic -q bf16 --ctx 64 --progress 2>&1 >/dev/null)
if [ -n "$err" ] && ! printf '%s' "$err" | grep -q "$(printf '\r')" && printf '%s\n' "$err" | grep -qE '^chunk 4/4 .*ETA 0 s$'; then echo "ok errors_progress_not_a_terminal: $(printf '%s\n' "$err" | grep -c '^chunk') progress lines, no \\r, no trailing padding"
else echo "FAIL errors_progress_not_a_terminal: $(printf '%s' "$err" | od -c | head -3)"; fi
# safetensors headers: an element count that would wrap 2^64 (65536^4), and a header length that is not a
# multiple of 8 (allowed by the format: tensors then sit unaligned in the mapping and are copied, no misaligned load)
if command -v python3 > /dev/null; then
  sthdr() {  # DIR SHARD MODE: rewrite a shard's header (wrap: add a 65536^4 tensor; odd: pad the header by 3 bytes)
    python3 - "$@" <<'PYEOF'
import json, struct, sys
d, shard, mode = sys.argv[1:4]
f = f"{d}/{shard}"; b = open(f, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
if mode == "wrap": h["x"] = {"dtype": "BF16", "shape": [65536] * 4, "data_offsets": [len(data), len(data)]}
hb = json.dumps(h).encode()
if mode == "odd": hb += b"   " if (8 + len(hb) + 3) % 8 else b"    "
open(f, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
PYEOF
  }
  mk wrap; sthdr $T/wrap model-00002-of-00002.safetensors wrap
  expect errors_shape_wraps "shape too large" $B dump -m $T/wrap --ids 1,2 -o $T/o
  mk odd; sthdr $T/odd model-00001-of-00002.safetensors odd; sthdr $T/odd model-00002-of-00002.safetensors odd
  rm -rf $T/oa $T/ob
  if $B dump -m $T/good --ids 1,2,3 -q fp32 -o $T/oa > /dev/null 2>&1 && $B dump -m $T/odd --ids 1,2,3 -q fp32 -o $T/ob > $T/odd.txt 2>&1 &&
     cmp -s $T/oa/logits.npy $T/ob/logits.npy; then echo "ok errors_unaligned_header: header lengths = $(python3 -c 'import struct,sys; print(struct.unpack("<Q", open(sys.argv[1],"rb").read(8))[0] % 8)' $T/odd/model-00001-of-00002.safetensors) mod 8: read (copied aligned), same logits bit for bit"
  else echo "FAIL errors_unaligned_header: $(tail -1 $T/odd.txt)"; fi
else echo "skip errors_safetensors_headers: no python3"; SKIPPED=1
fi
# headers whose fields overflow int arithmetic (found by make fuzz under UBSan): a llama2.c vocab of INT_MIN,
# and num_attention_heads x head_dim = 65536 x 65536
printf '\010\000\000\000\020\000\000\000\001\000\000\000\002\000\000\000\001\000\000\000\000\000\000\200\004\000\000\000' > $T/intmin.bin
expect errors_llama2c_vocab_int_min "header field 5 = -2147483648" $B ppl -m $T/intmin.bin -f /dev/null
mk heads; sed -i 's/"num_attention_heads": [0-9]*/"num_attention_heads": 65536/; s/"num_key_value_heads": [0-9]*/"num_key_value_heads": 1/; s/"head_dim": [0-9]*/"head_dim": 65536/' $T/heads/config.json
expect errors_heads_x_head_dim_overflow "num_attention_heads x head_dim (65536 x 65536) is too large" $B dump -m $T/heads --ids 1 -o $T/o
# the CLI: every command listed by --help answers --help with exit 0; a bare or unknown command prints the
# command list on stderr with exit 2
cmds=$($B --help | awk '/^commands:/ { on = 1; next } on && NF { print $1 }')
bad=""; n=0
for c in $cmds; do n=$((n + 1)); $B $c --help > $T/h.txt 2>&1 && grep -qi "usage" $T/h.txt || bad="$bad $c"; done
if [ $n -ge 12 ] && [ -z "$bad" ]; then echo "ok errors_every_command_help: $n commands answer --help with usage, exit 0"
else echo "FAIL errors_every_command_help: $n commands; failing:$bad"; fi
$B > /dev/null 2> $T/bare.txt; rc1=$?; $B frobnicate > /dev/null 2> $T/unk.txt; rc2=$?
if [ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && grep -q "commands:" $T/bare.txt && grep -q "frobnicate" $T/unk.txt; then echo "ok errors_bare_and_unknown_command: usage on stderr, exit 2"
else echo "FAIL errors_bare_and_unknown_command: exit $rc1 / $rc2: $(head -2 $T/unk.txt)"; fi
table_check "$@"
