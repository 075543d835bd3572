#!/bin/sh
# What a session with an Ada/Hopper GPU runs for issue 6, in two commands of under 10 minutes each
# (the device tool's limit). Not part of `make test` (test_cuda_gpu.sh is; it runs a subset).
#   sh tests/gpu_session.sh check [OUT]  build; cuda_check --host / --kernels; verify every scheme on the synthetic
#                                        model; stories260K ppl on the GPU against the CPU; GEMM benchmark
#   sh tests/gpu_session.sh e2e [OUT]    Llama-3.1-8B-shaped checkpoint (synth, 16 GB): WikiText-2 test
#                                        perplexity (289,076 tokens) on the GPU, timed, w8a8 and bf16
# Data: $LLAMA_FP8_DATA, else data/dl. The device machine sees only the working tree, so copy
# ../shared/data/{stories260K,tinystories,llama3-tokenizer,wikitext-2-raw} into data/dl (ignored by
# git, about 6 MB) and carry data/dl. Output: OUT (default build/gpu_session), one log per step.
cd "$(dirname "$0")/.." || exit 1
what=${1:-check}; out=${2:-build/gpu_session}
D=${LLAMA_FP8_DATA:-data/dl}
mkdir -p "$out"
B=build/cuda/llama_fp8
step() {  # step NAME COMMAND...: runs it, keeps its output and time in $out/NAME.log
  name=$1; shift
  echo "== $name: $*"
  t0=$(date +%s.%N)
  timeout "${STEP_TIMEOUT:-590}" "$@" > "$out/$name.log" 2>&1; rc=$?  # a hung kernel costs one step, not the session
  t1=$(date +%s.%N)
  tail -25 "$out/$name.log"
  echo "== $name: exit $rc, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
  return $rc
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1; cat "$out/gpu.txt"
date -u > "$out/date.txt"
step build make CUDA=1 -j16 build/cuda/llama_fp8 build/cuda/cuda_check
case $what in
check)
  step device $B verify --device
  step host build/cuda/cuda_check --host
  step kernels build/cuda/cuda_check --kernels --seed 11
  for q in fp32 bf16 fp8-w w8a8 w8a8-block int8; do step "synthetic_$q" $B verify --synthetic -q $q; done
  step synthetic_w8a8_kv $B verify --synthetic -q w8a8 --kv fp8-e4m3
  for g in cublaslt wgmma mma; do step "synthetic_w8a8_hopper_$g" $B verify --synthetic -q w8a8 --accum hopper --gemm $g; done
  step synthetic_bf16_cublaslt $B verify --synthetic -q bf16 --gemm cublaslt
  # the 4-bit / microscaling schemes (bf16 GEMMs on dequantized weights; nvfp4 / mxfp4 / mxfp8: the k_act_qdq kernel)
  W4=/tmp/t128; TOK3=$D/llama3-tokenizer/tokenizer.model; TX3=$D/tinystories/tinystories_valid_excerpt.txt
  if [ -f $TOK3 ] && step t128_synth $B synth -o $W4 --shape tiny128 && step t128_calibrate $B calibrate -m $W4 --tokenizer $TOK3 -f $TX3 --samples 4 --seq 64 -o $W4/sc.json; then
    for q in w4a16 nvfp4a16 mxfp4a16 mxfp8a16 mxfp4 mxfp8 nvfp4; do step "t128_verify_$q" $B verify -m $W4 --ids 128000,791,1988,220,17,10,5,6 -q $q --scales $W4/sc.json; done
  fi
  M=$D/stories260K/stories260K.bin; TK=$D/stories260K/tok512.bin; TX=$D/tinystories/tinystories_valid_excerpt.txt
  if [ -f $M ]; then
    for q in bf16 w8a8 w8a8-block; do step "stories_verify_$q" $B verify -m $M --tokenizer $TK -f $TX -q $q --ctx 256; done
    step stories_ppl_gpu $B ppl -m $M --tokenizer $TK -f $TX --compare bf16,fp32,fp8-w,w8a8,w8a8-block,int8
    step stories_ppl_cpu $B ppl --cpu -m $M --tokenizer $TK -f $TX --compare bf16,fp32,fp8-w,w8a8,w8a8-block,int8
    step stories_ppl_tc $B ppl -m $M --tokenizer $TK -f $TX --compare bf16,w8a8 --accum hopper
  else echo "no $M: the stories260K steps were skipped"; fi
  step bench $B verify --bench
  ;;
e2e)
  ck=/tmp/llama8b
  [ -f $ck/config.json ] || step synth $B synth -o $ck --shape llama3.1-8b --shards 4
  W=$D/wikitext-2-raw/wiki.test.raw; TOK=$D/llama3-tokenizer/tokenizer.model
  step e2e_w8a8_fast /usr/bin/time -v $B ppl -m $ck --tokenizer $TOK -f $W -q w8a8 --accum fast
  step e2e_bf16_cublaslt /usr/bin/time -v $B ppl -m $ck --tokenizer $TOK -f $W -q bf16 --gemm cublaslt
  ;;
*) echo "usage: sh tests/gpu_session.sh check|e2e [OUT]"; exit 2 ;;
esac
