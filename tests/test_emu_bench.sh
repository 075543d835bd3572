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
