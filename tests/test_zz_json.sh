#!/bin/sh
# Every JSON file the program writes parses with a strict parser (Python's json, NaN / Infinity refused):
# first a run of each writer here (ppl --json, with one scored token too; calibrate with each observer;
# synth's config.json and index; export's config.json), then every .json the earlier tests left under
# build/tests (named last, so it runs after them; build/tests/errors, fuzz and tok_sh hold deliberately malformed inputs).
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/zz_json; rm -rf $T; mkdir -p $T
command -v python3 > /dev/null || { echo "skip json_strict: no python3"; exit 0; }
$B ppl --synthetic --compare bf16,w8a8,int8 --ctx 64 --chunks 2 --json $T/ppl.json > /dev/null 2>&1 || echo "FAIL json_strict_setup: ppl --json"
$B ppl --synthetic --compare bf16,fp8-w --ctx 2 --chunks 1 --json $T/ppl1.json > /dev/null 2>&1 || echo "FAIL json_strict_setup: ppl --json (1 token)"
$B synth -o $T/m --shape tiny > /dev/null 2>&1 && $B export -m $T/m -q w8a8 -o $T/ex > /dev/null 2>&1 || echo "FAIL json_strict_setup: synth / export"
if [ -f $D/stories260K/stories260K.bin ]; then
  for o in minmax ema ema-legacy mse percentile; do
    $B calibrate -m $D/stories260K/stories260K.bin --tokenizer $D/stories260K/tok512.bin -f $D/tinystories/tinystories_valid_excerpt.txt \
      --samples 2 --seq 64 --observer $o --kv-observer $o -o $T/scales_$o.json > /dev/null 2>&1 || echo "FAIL json_strict_setup: calibrate --observer $o"
  done
fi
find build/tests -name '*.json' ! -path 'build/tests/errors/*' ! -path 'build/tests/fuzz/*' ! -path 'build/tests/tok_sh/*' | sort > $T/files.txt
python3 - $T/files.txt <<'PYEOF'
import json, sys
def refuse(c): raise ValueError("non-finite constant " + c)
files = open(sys.argv[1]).read().split()
bad = []
for f in files:
    try: json.load(open(f, encoding="utf-8"), parse_constant=refuse)
    except Exception as e: bad.append("%s: %s" % (f, e))
print("FAIL json_strict: %d of %d files: %s" % (len(bad), len(files), "; ".join(bad[:3])) if bad else
      "ok json_strict: %d JSON files written by the suite parse strictly (json.load, NaN/Infinity refused)" % len(files))
PYEOF
