#!/bin/sh
# `llama_fp8 bench gemm` on a tiny shape: the command runs, prints one row per (M, mode), and bad
# options give a one-line error and a non-zero exit.
set -u
B=${LLAMA_FP8:-./llama_fp8}
out=$($B bench gemm --shapes 96x200,33x7 --m 5,1 --modes bf16,fast,fp32,exact,hopper,ada,cublaslt --reps 1 --peak once 2>/dev/null)
rc=$?
rows=$(printf '%s\n' "$out" | grep -cE '^ +[0-9]+ +[0-9]+ +[0-9]+  (bf16|fast|fp32|exact|hopper|ada|cublaslt) ')
if [ $rc -eq 0 ] && [ "$rows" -eq 28 ]; then echo "ok emu_bench: bench gemm prints 28 rows for 2 shapes x 2 M x 7 modes"
else echo "FAIL emu_bench: rc=$rc, $rows rows (want 28)"; printf '%s\n' "$out" | head -20; fi
for bad in "--m 0" "--shapes 12" "--modes fp16" "--reps" "--bogus 1" "--peak never"; do
  # shellcheck disable=SC2086
  err=$($B bench gemm $bad 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [ $rc -ne 0 ] && [ "$lines" -ge 1 ] && printf '%s' "$err" | head -1 | grep -q 'llama_fp8'; then echo "ok emu_bench: 'bench gemm $bad' is rejected: $(printf '%s' "$err" | head -1)"
  else echo "FAIL emu_bench: 'bench gemm $bad' gave rc=$rc: $err"; fi
done
# `bench e2e` on the tiny synthetic shape: one row per scheme, the flop count of the header derived from
# the config (Linears 2·ctx·layers·(dim·(qd + 2·kvd) + qd·dim + 3·dim·ffn), lm_head 2·(ctx/2)·vocab·dim);
# bad options are rejected. (Timing is printed, never checked.)
T=build/tests/bench_tiny
[ -f $T/model.safetensors.index.json ] || $B synth -o $T --shape tiny > /dev/null 2>&1
out=$($B bench e2e -m $T --ctx 64 --chunks 1 --schemes bf16,w8a8:fast,w8a8,fp32,int8 2>&1); rc=$?
# one row per scheme: prep s ('-' for the schemes that multiply by the stored weights), s, tok/s, GFLOP/s, floor s, % floor
rows=$(printf '%s\n' "$out" | grep -cE '^(bf16|fp32) +- +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+%$|^(w8a8\(fast\)|w8a8|int8) +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+%$')
# tiny (dim 64, ffn 176, 2 layers, 4/2 heads of 16, vocab 128256): Linears 2·64·2·(64·(64+2·32) + 64·64 + 3·64·176)
# = 11,796,480; lm_head 2·32·128256·64 = 525,336,576; attention 4·2·64·(64·65/2) = 1,064,960
flops=$(printf '%s\n' "$out" | grep -c 'GFLOP per chunk: Linears 0.0118, lm_head 0.5253, attention 0.0011;')
if [ $rc -eq 0 ] && [ "$rows" -eq 5 ] && [ "$flops" -eq 1 ]; then echo "ok emu_bench: bench e2e prints one row per scheme (5) and the flop count of the config"
else echo "FAIL emu_bench: bench e2e rc=$rc, $rows rows, flops line $flops"; printf '%s\n' "$out" | head -12; fi
$B bench e2e --help > /dev/null 2>&1 && echo "ok emu_bench: bench e2e --help exits 0" || echo "FAIL emu_bench: bench e2e --help"
out=$($B bench --help) && printf '%s' "$out" | grep -q 'bench e2e' && echo "ok emu_bench: bench --help exits 0 and names both benchmarks" || echo "FAIL emu_bench: bench --help"
for bad in "" "-m $T --ctx 1" "-m $T --schemes w8a8:bogus" "-m $T --chunks" "-m $T --what 1" "-m /nonexistent"; do
  # shellcheck disable=SC2086
  err=$($B bench e2e $bad 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && printf '%s' "$err" | head -1 | grep -q 'llama_fp8'; then echo "ok emu_bench: 'bench e2e $bad' is rejected: $(printf '%s' "$err" | head -1)"
  else echo "FAIL emu_bench: 'bench e2e $bad' gave rc=$rc: $err"; fi
done
