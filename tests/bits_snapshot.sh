#!/bin/sh
# Bit snapshot of every number the program prints or writes, over every scheme and model of the test suite:
# ppl tables and --json (mean NLL to 17 digits), dump .npy files, generated text, calibrate's scales.json,
# export's checkpoint bytes. Used for refactors that must not change a bit:
#   sh tests/bits_snapshot.sh OLD_BINARY /tmp/before;  sh tests/bits_snapshot.sh ./llama_fp8 /tmp/after
#   diff -r /tmp/before /tmp/after && echo identical
# With a CUDA build, LLAMA_FP8_DEVICE=twin in the environment runs the GPU path (host twins) instead.
# Not part of `make test` (a few minutes); the twin and golden tests cover the same ground continuously.
B=$1; O=$2
[ -n "$B" ] && [ -n "$O" ] || { echo "usage: sh tests/bits_snapshot.sh BINARY OUTDIR" >&2; exit 2; }
case "$B" in /*) ;; *) B="$(pwd)/$B" ;; esac
D=${LLAMA_FP8_DATA:-$(cd "$(dirname "$0")/../../shared/data" 2>/dev/null && pwd)}
rm -rf "$O"; mkdir -p "$O" || exit 1
S="$D/stories260K/stories260K.bin"; TK="$D/stories260K/tok512.bin"; TXT="$D/tinystories/tinystories_valid_excerpt.txt"
[ -f "$S" ] || { echo "no stories260K in $D" >&2; exit 1; }
run() {  # name, command...: stdout+stderr without timing / path lines, exit status
  n=$1; shift
  "$@" > "$O/$n.out" 2> "$O/$n.err"; echo "exit $?" >> "$O/$n.out"
  sed -i -e '/seconds\|elapsed\|wrote \|tok\/s\|prepared weights/d' "$O/$n.err"
}
ALL="fp32,bf16,fp8-w,w8a8,w8a8-block,int8"
# 1. ppl --compare over every scheme and option, synthetic and stories260K, both protocols
for model in syn s260; do
  if [ $model = syn ]; then M="--synthetic"; else M="-m $S --tokenizer $TK -f $TXT --chunks 2 --ctx 128"; fi
  i=0
  for opt in "" "--kv fp8-e4m3" "--kv fp8-e5m2" "--act-format e5m2" "--weight-format e5m2" "--weight-scale tensor" \
             "--weight-arith fp32" "--accum fp32" "--accum hopper" "--accum ada" "--accum cublaslt" "--accum fast" \
             "--quant-lm-head" "--scale-ub 3.5" "--protocol llamacpp"; do
    i=$((i + 1)); Q=$ALL
    case "$opt" in *hopper*|*ada*|*cublaslt*) Q=bf16,w8a8,w8a8-block,int8 ;; esac
    run ppl_${model}_$i $B ppl $M --compare $Q $opt --json "$O/ppl_${model}_$i.json"
    echo "$opt" >> "$O/ppl_${model}_$i.out"
  done
done
# 2. calibrate + w8a8-static, export and reload (compressed-tensors checkpoints), an HF synthetic checkpoint
run calib $B calibrate -m "$S" --tokenizer "$TK" -f "$TXT" --samples 2 --seq 128 -o "$O/scales.json"
run ppl_static $B ppl -m "$S" --tokenizer "$TK" -f "$TXT" --chunks 2 --ctx 128 -q w8a8-static --scales "$O/scales.json" --kv fp8-e4m3 --json "$O/ppl_static.json"
run export_w8a8 $B export -m "$S" -q w8a8 -o "$O/ck_w8a8"
run export_static $B export -m "$S" -q w8a8-static --scales "$O/scales.json" --kv fp8-e4m3 -o "$O/ck_static"
run ppl_ck_w8a8 $B ppl -m "$O/ck_w8a8" --tokenizer "$TK" -f "$TXT" --chunks 2 --ctx 128 --json "$O/ppl_ck_w8a8.json"
run ppl_ck_static $B ppl -m "$O/ck_static" --tokenizer "$TK" -f "$TXT" --chunks 2 --ctx 128 --json "$O/ppl_ck_static.json"
run synth $B synth -o "$O/hf_tiny" --shape tiny --shards 2 --seed 3
run ppl_hf $B ppl -m "$O/hf_tiny" --tokenizer "$TK" -f "$TXT" --chunks 1 --ctx 64 --compare $ALL --kv fp8-e4m3 --json "$O/ppl_hf.json"
# 3. dump and generate under every scheme
for q in fp32 bf16 fp8-w w8a8 w8a8-block int8; do
  run dump_$q $B dump -m "$S" --ids 1,400,35,7,300,22,9 -q $q -o "$O/dump_$q"
  run dump_hf_$q $B dump -m "$O/hf_tiny" --ids 1,400,35,7,300,22,9 -q $q --kv fp8-e4m3 -o "$O/dump_hf_$q"
  run gen_$q $B generate -m "$S" --tokenizer "$TK" -n 40 -q $q
done
run gen_sampled $B generate -m "$S" --tokenizer "$TK" -n 40 -q w8a8 --temp 0.8 --seed 5
run stats $B stats -m "$S" --tokenizer "$TK" -f "$TXT" --ctx 128 --chunks 2 -o "$O/stats.svg"
# timings, memory and this directory's name differ from run to run: normalized
sed -i -E -e "s|$O|OUT|g" -e "s/cpu \([0-9]+ threads/cpu (N threads/" -e 's/[0-9.]+ tok\/s/N tok\/s/g' -e 's/[0-9.]+ s\b/N s/g' -e 's/peak RSS [0-9]+ MB/peak RSS N MB/g' \
    -e "s/, prepared weights [^,)]*//g" "$O"/*.out "$O"/*.err "$O"/*.json
ls "$O" | wc -l
