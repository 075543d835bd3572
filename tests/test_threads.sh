#!/bin/sh
# Identical bits for any thread count: every op's order of operations is fixed per output element
# (GEMMs, quantization, attention rows), so OMP_NUM_THREADS = 1, 2 and 3 must give byte-identical ppl
# JSON (mean NLL to 17 digits, every scheme) and dump .npy files. Oracle: the run with one thread.
B=${LLAMA_FP8:-./llama_fp8}; T=build/tests/threads; rm -rf $T; mkdir -p $T
D=${LLAMA_FP8_DATA:-../shared/data}
for n in 1 2 3; do
  OMP_NUM_THREADS=$n OMP_WAIT_POLICY=passive $B ppl --synthetic --compare fp32,bf16,fp8-w,w8a8,w8a8-block,int8 --kv fp8-e4m3 --json $T/syn_$n.json > /dev/null 2>&1 || echo "FAIL threads_ppl: ppl with $n threads exited non-zero"
  OMP_NUM_THREADS=$n OMP_WAIT_POLICY=passive $B ppl --synthetic --compare w8a8,w8a8-block --accum fast --json $T/fast_$n.json > /dev/null 2>&1 || echo "FAIL threads_ppl_fast: ppl with $n threads exited non-zero"
done
for f in syn fast; do
  if [ -s $T/${f}_1.json ] && cmp -s $T/${f}_1.json $T/${f}_2.json && cmp -s $T/${f}_1.json $T/${f}_3.json; then
    echo "ok threads_ppl_$f: ppl --json identical with 1, 2 and 3 threads ($(grep -c nll_mean $T/${f}_1.json) schemes)"
  else echo "FAIL threads_ppl_$f: the JSON differs between thread counts"; fi
done
if [ -f "$D/stories260K/stories260K.bin" ]; then
  for n in 1 3; do
    OMP_NUM_THREADS=$n OMP_WAIT_POLICY=passive $B dump -m "$D/stories260K/stories260K.bin" --ids 1,400,35,7,300,22,9,41,1,5,77,100,3,8,2,9,60,61,62 -q w8a8 --kv fp8-e4m3 -o $T/dump_$n > /dev/null 2>&1
  done
  if [ -s $T/dump_1/logits.npy ] && diff -r $T/dump_1 $T/dump_3 > /dev/null; then echo "ok threads_dump: stories260K w8a8 dump (logits, every layer) identical with 1 and 3 threads"
  else echo "FAIL threads_dump: dumps differ between 1 and 3 threads"; fi
else echo "skip threads_dump: no stories260K in $D"; fi
