#!/bin/sh
# Checks of the GPU code that need no GPU: the __host__ __device__ functions of cuda_kernels.cu (the very
# code the kernels run: fp8.h encoding, quantization formulas, the GEMM accumulation models, the glibc
# expf port, RMSNorm/RoPE/attention/SwiGLU in the kernels' order), compiled for the CPU, against their
# CPU twins (emu/ and forward()). Oracles: emu_quant_*, emu_gemm_ref, libm expf, forward() logits.
cd "$(dirname "$0")/.." || exit 1
if ! command -v nvcc >/dev/null 2>&1; then echo "skip cuda_host: nvcc not found, no CUDA build to check"; exit 0; fi
if ! env -u CFLAGS -u LDLIBS nice make --no-print-directory CUDA=1 build/cuda/llama_fp8 build/cuda/cuda_check > build/tests/cuda_host_build.log 2>&1; then
  tail -20 build/tests/cuda_host_build.log; echo "FAIL cuda_host: make CUDA=1 build/cuda/llama_fp8 build/cuda/cuda_check failed"; exit 1
fi
build/cuda/cuda_check --host --seed 7 || echo "FAIL cuda_host_check: cuda_check --host exited with status $? (a crash is a failure)"
# The whole GPU path of `ppl` with every kernel replaced by its host twin (LLAMA_FP8_DEVICE=twin: resident
# weights / activations / KV cache, GEMM dispatch, ppl statistics computed where the logits are) must print
# the CPU binary's table to the last digit. Oracle: the CPU build's own ppl (forward() and cmd_ppl's loop).
cmp_ppl() {  # name, ppl arguments...: the table and the --json numbers (mean NLL to 17 digits) must agree
  name=$1; shift
  a=$(LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 ppl "$@" --json build/tests/twin_a.json 2>&1 | grep -v "^ppl: \|^(\|^wrote\|^PPL = ")
  b=$("${LLAMA_FP8:-./llama_fp8}" ppl "$@" --json build/tests/twin_b.json 2>&1 | grep -v "^ppl: \|^(\|^wrote\|^PPL = ")
  if [ -n "$a" ] && [ "$a" = "$b" ] && [ -s build/tests/twin_a.json ] && cmp -s build/tests/twin_a.json build/tests/twin_b.json; then
    echo "ok cuda_twin_ppl_$name: GPU path (host twins) = CPU: $(echo "$a" | grep -c .) output lines and the JSON ($(grep -c nll_mean build/tests/twin_b.json) schemes, mean NLL to 17 digits) identical"
  else echo "FAIL cuda_twin_ppl_$name: GPU path (host twins) and CPU differ:"; echo "$a" > build/tests/twin_a.txt; echo "$b" > build/tests/twin_b.txt; diff build/tests/twin_a.txt build/tests/twin_b.txt | head -10; diff build/tests/twin_a.json build/tests/twin_b.json | head -6; fi
  rm -f build/tests/twin_a.json build/tests/twin_b.json
}
cmp_ppl synthetic --synthetic --compare bf16,fp32,fp8-w,w8a8,w8a8-block,int8
D=${LLAMA_FP8_DATA:-../shared/data}
if [ -f "$D/stories260K/stories260K.bin" ] && [ -f "$D/tinystories/tinystories_valid_excerpt.txt" ]; then
  cmp_ppl stories260K -m "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin" -f "$D/tinystories/tinystories_valid_excerpt.txt" --chunks 2 --compare bf16,w8a8,int8 --kv fp8-e4m3
  # quantized checkpoints as exported (compressed-tensors): stored FP8 codes and scales, static input and KV scales
  B=${LLAMA_FP8:-./llama_fp8}; X=build/tests/twin_ckpt; rm -rf $X; mkdir -p $X
  if $B export -m "$D/stories260K/stories260K.bin" -q w8a8 -o $X/w8a8 > /dev/null 2>&1 &&
     $B calibrate -m "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin" -f "$D/tinystories/tinystories_valid_excerpt.txt" --samples 2 --seq 128 -o $X/scales.json > /dev/null 2>&1 &&
     $B export -m "$D/stories260K/stories260K.bin" -q w8a8-static --scales $X/scales.json --kv fp8-e4m3 -o $X/static > /dev/null 2>&1; then
    cmp_ppl ckpt_w8a8 -m $X/w8a8 --tokenizer "$D/stories260K/tok512.bin" -f "$D/tinystories/tinystories_valid_excerpt.txt" --chunks 2
    cmp_ppl ckpt_w8a8_static_kv -m $X/static --tokenizer "$D/stories260K/tok512.bin" -f "$D/tinystories/tinystories_valid_excerpt.txt" --chunks 2
  else echo "FAIL cuda_twin_ckpt: export / calibrate of stories260K failed"; fi
else echo "skip cuda_twin_ppl_stories260K: no stories260K / TinyStories text in $D"; fi
# the 4-bit and microscaling schemes on tiny128 (every K a multiple of the groups): weight-only ones as bf16 GEMMs on
# the dequantized weights, nvfp4 / mxfp4 / mxfp8 with the activations' quantize-dequantize kernel (cud_act_qdq)
if [ -f "$D/llama3-tokenizer/tokenizer.model" ] && [ -f "$D/tinystories/tinystories_valid_excerpt.txt" ]; then
  B=${LLAMA_FP8:-./llama_fp8}; X=build/tests/twin_wf; rm -rf $X; mkdir -p $X
  TOK3="$D/llama3-tokenizer/tokenizer.model"; TX3="$D/tinystories/tinystories_valid_excerpt.txt"
  if $B synth -o $X/m --shape tiny128 > /dev/null 2>&1 && $B calibrate -m $X/m --tokenizer $TOK3 -f $TX3 --samples 4 --seq 64 -o $X/sc.json > /dev/null 2>&1; then
    cmp_ppl wformats -m $X/m --tokenizer $TOK3 -f $TX3 --ctx 128 --chunks 2 --scales $X/sc.json --compare bf16,w4a16,w4a16-mse,nvfp4a16,mxfp4a16,mxfp8a16,nvfp4,mxfp4,mxfp8
    for q in mxfp4 mxfp8 nvfp4; do
      out=$(LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 verify -m $X/m --ids 128000,791,1988,220,17,10,5,6 -q $q --scales $X/sc.json 2>&1); rc=$?
      if [ $rc -eq 0 ] && echo "$out" | grep -q "^ok activation quantization: 8 of 8 runs bit-exact" && ! echo "$out" | grep -q "^FAIL" && echo "$out" | grep -q "GPU and CPU agree"; then
        echo "ok cuda_twin_verify_$q: the activations' quantize-dequantize (cud_act_qdq) and $(echo "$out" | grep -c '^ok ') checks bit-exact on tiny128"
      else echo "FAIL cuda_twin_verify_$q: exit $rc"; echo "$out" | grep -v "^ok " | tail -4; fi
    done
  else echo "FAIL cuda_twin_wformats: synth / calibrate of tiny128 failed"; fi
else echo "skip cuda_twin_wformats: no Llama 3 tokenizer / TinyStories text in $D"; fi
# `verify` itself (the command a GPU session runs) through the host twins: per-op and end-to-end checks
# of every scheme must all pass; on a real GPU the same command compares the kernels.
for args in "-q fp32" "-q bf16" "-q fp8-w" "-q w8a8 --kv fp8-e4m3" "-q w8a8-block" "-q int8" "-q w8a8 --act-format e5m2" "-q w8a8-block --accum ada"; do
  out=$(LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 verify --synthetic $args 2>&1); rc=$?
  n=$(echo "$out" | grep -c "^ok "); f=$(echo "$out" | grep -c "^FAIL ")
  if [ $rc -eq 0 ] && [ "$n" -ge 7 ] && [ "$f" -eq 0 ] && echo "$out" | grep -q "GPU and CPU agree"; then echo "ok cuda_twin_verify ($args): $n checks passed"
  else echo "FAIL cuda_twin_verify ($args): exit $rc, $n ok, $f FAIL"; echo "$out" | grep -v "^ok " | tail -5; fi
done
if [ -f "$D/stories260K/stories260K.bin" ]; then
  out=$(LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 verify -m "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin" -f "$D/tinystories/tinystories_valid_excerpt.txt" --ctx 96 -q w8a8 2>&1); rc=$?
  if [ $rc -eq 0 ] && ! echo "$out" | grep -q "^FAIL" && echo "$out" | grep -q "^ok gpu_forward"; then echo "ok cuda_twin_verify_stories260K: $(echo "$out" | grep -c '^ok ') checks passed (tied embeddings, real weights)"
  else echo "FAIL cuda_twin_verify_stories260K: exit $rc"; echo "$out" | tail -5; fi
fi
# generate and dump through the GPU path's twins: the same text, the same .npy bytes as the CPU binary
if [ -f "$D/stories260K/stories260K.bin" ]; then
  M="$D/stories260K/stories260K.bin"; TK="$D/stories260K/tok512.bin"
  for q in bf16 w8a8; do
    a=$(LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 generate -m "$M" --tokenizer "$TK" -n 40 -q $q 2>/dev/null | tail -1)
    b=$("${LLAMA_FP8:-./llama_fp8}" generate -m "$M" --tokenizer "$TK" -n 40 -q $q 2>/dev/null | tail -1)
    if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "ok cuda_twin_generate_$q: 40 tokens through the GPU path (KV cache, one token per call) = the CPU's text"
    else echo "FAIL cuda_twin_generate_$q: '$a' vs '$b'"; fi
  done
  rm -rf build/tests/twin_dump_a build/tests/twin_dump_b
  LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 dump -m "$M" --ids 1,400,35,7,300,22,9 -q w8a8-block -o build/tests/twin_dump_a > /dev/null 2>&1
  "${LLAMA_FP8:-./llama_fp8}" dump -m "$M" --ids 1,400,35,7,300,22,9 -q w8a8-block -o build/tests/twin_dump_b > /dev/null 2>&1
  n=$(ls build/tests/twin_dump_b 2>/dev/null | wc -l)
  if [ "$n" -gt 1 ] && diff -r build/tests/twin_dump_a build/tests/twin_dump_b > /dev/null; then echo "ok cuda_twin_dump: $n .npy files (logits, every layer) byte-identical to the CPU's"
  else echo "FAIL cuda_twin_dump: dumps differ or are missing ($n files)"; fi
fi
# Out of GPU memory: with the twin's memory capped (LLAMA_FP8_TWIN_MEM), gpu_forward frees weights the
# current pass does not use and uploads them again later. Binary search for the smallest cap that runs
# (there, the two schemes' weights cannot both stay: eviction must happen); its results must equal the CPU's.
P="ppl --synthetic --compare bf16,w8a8 --chunks 2"
"${LLAMA_FP8:-./llama_fp8}" $P --json build/tests/evict_cpu.json > /dev/null 2>&1
lo=100000; hi=8000000
while [ $((hi - lo)) -gt 4000 ]; do
  mid=$(( (lo + hi) / 2 ))
  if LLAMA_FP8_TWIN_MEM=$mid LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 $P > /dev/null 2>&1; then hi=$mid; else lo=$mid; fi
done
out=$(LLAMA_FP8_TWIN_MEM=$hi LLAMA_FP8_DEVICE=twin build/cuda/llama_fp8 $P --json build/tests/evict_twin.json 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "GPU memory is full" && cmp -s build/tests/evict_twin.json build/tests/evict_cpu.json; then
  echo "ok cuda_twin_evict: at the smallest memory that runs ($hi bytes) weights were evicted and re-uploaded; results identical to the CPU's"
else echo "FAIL cuda_twin_evict: cap $hi: exit $rc, note $(echo "$out" | grep -c 'GPU memory is full'), JSON $(cmp -s build/tests/evict_twin.json build/tests/evict_cpu.json && echo same || echo differs)"; fi
