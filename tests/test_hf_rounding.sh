#!/bin/sh
# Live oracle: re-checks with the installed transformers that HF bf16 inference rounds exactly at the
# points listed in README.d/hf.md (tests/hf_rounding_check.py: >= 99% of logits bit-identical), and
# that dropping any one of those points breaks the match (< 90%), i.e. every listed point is real.
# Skips where torch/transformers are absent (CI).
if ! python3 -c 'import torch, transformers' 2>/dev/null; then
  echo "skip hf_rounding: torch + transformers not installed"; exit 0
fi
out=$(python3 tests/hf_rounding_check.py --all 2>/dev/null | grep '^drop=')
[ -n "$out" ] || { echo "FAIL hf_rounding: tests/hf_rounding_check.py produced no result"; exit 1; }
echo "$out" | awk '{
  frac = $0; sub(/.*bit-identical logits /, "", frac); sub(/,.*/, "", frac); frac += 0
  if ($1 == "drop=none:") {
    if (frac >= 0.99) print "ok hf_rounding all listed points reproduce HF bf16: " $0
    else print "FAIL hf_rounding: HF bf16 no longer matches the listed rounding points: " $0
  } else {
    if (frac < 0.9) print "ok hf_rounding " $1 " matters: " $0
    else print "FAIL hf_rounding: dropping " $1 " does not change the result, so it is not a rounding point: " $0
  }
}'
