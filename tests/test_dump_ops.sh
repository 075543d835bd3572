#!/bin/sh
# dump --ops: every op of forward() as .npy with an index, checked by tests/dump_ops_check.py (the index, NumPy +
# ml_dtypes recomputations of the quantization, epilogue, FP8 KV cache and residual adds, and llama_fp8 gemm / quant
# reproducing the dumped Linear outputs and activation codes bit for bit). Models: stories260K (llama2.c, fp32
# weights) when present and a synthetic HF checkpoint (bf16 safetensors, GQA) always.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/dump_ops; rm -rf $T; mkdir -p $T
python3 -c "import numpy, ml_dtypes" 2> /dev/null || { echo "skip dump_ops: no numpy + ml_dtypes"; exit 0; }
$B synth -o $T/tiny --shape tiny --layers 2 > $T/synth.txt 2>&1 || { echo "FAIL dump_ops_synth: $(tail -1 $T/synth.txt)"; exit 0; }
run() {  # name model ids scheme-args...
  name=$1 m=$2 ids=$3; shift 3
  if $B dump -m $m --ids $ids "$@" -o $T/$name --ops-weights > $T/$name.txt 2>&1; then
    python3 tests/dump_ops_check.py $T/$name $name
  else echo "FAIL dump_ops_$name: $(tail -1 $T/$name.txt)"; fi
}
if [ -f $D/stories260K/stories260K.bin ]; then
  M=$D/stories260K/stories260K.bin
  run s260k_w8a8_hopper_kv $M 1,403,407,261,378,300,17 -q w8a8 --accum hopper --kv fp8-e4m3
  run s260k_bf16 $M 1,403,407 -q bf16
  run s260k_fp32 $M 1,403,407 -q fp32
else echo "skip dump_ops_s260k: no stories260K in $D"; fi
run tiny_w8a8 $T/tiny 1,5,9,200,31 -q w8a8
run tiny_w8a8_block $T/tiny 1,5,9,200,31 -q w8a8-block --accum cublaslt
run tiny_int8 $T/tiny 1,5,9 -q int8
run tiny_fp8w $T/tiny 1,5,9 -q fp8-w

# the files are the CPU reference; the op-dump refuses what it cannot do with one line
$B dump -m $T/tiny --ids 1,2 --ops -o $T/tiny_w8a8/ops.json/x > $T/e1.txt 2>&1; rc=$?
if [ $rc -ne 0 ] && [ $(wc -l < $T/e1.txt) -eq 1 ] && grep -q '^llama_fp8: error:' $T/e1.txt; then echo "ok dump_ops_bad_dir"; else echo "FAIL dump_ops_bad_dir: rc $rc: $(cat $T/e1.txt)"; fi
