#!/bin/sh
# ppl --compare's statistics checked by an independent computation: numpy (tests/compare_check.py)
# recomputes PPL ± SE, dPPL ± paired SE, KLD mean/SE/p99/median/max, top-1 agreement and RMS dp from
# the logits `llama_fp8 dump` writes for the same chunks. Skips without numpy or stories260K.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/compare; rm -rf $T; mkdir -p $T
M=$D/stories260K/stories260K.bin; TK=$D/stories260K/tok512.bin; TXT=$D/tinystories/tinystories_sample.txt
if [ ! -f "$M" ] || [ ! -f "$TXT" ]; then echo "skip compare: no stories260K / tinystories in $D"; exit 0; fi
if ! python3 -c "import numpy" 2>/dev/null; then echo "skip compare: no python3 with numpy"; exit 0; fi
CTX=128; NCH=2; SCHEMES="bf16 w8a8 int8 fp8-w"
$B ppl -m $M --tokenizer $TK -f $TXT --ctx $CTX --chunks $NCH --compare "$(echo $SCHEMES | tr ' ' ,)" --json $T/res.json > $T/ppl.txt 2>&1 \
  || { echo "FAIL compare_ppl: $(tail -1 $T/ppl.txt)"; exit 1; }
$B tokenize --tokenizer $TK -f $TXT --bos > $T/ids.txt || { echo "FAIL compare_tokenize"; exit 1; }
for s in $SCHEMES; do
  c=0
  while [ $c -lt $NCH ]; do
    ids=$(tr ' ' '\n' < $T/ids.txt | sed -n "$((c * CTX + 1)),$(((c + 1) * CTX))p" | paste -sd, -)
    $B dump -m $M --tokenizer $TK -q $s --ids "$ids" -o $T/${s}_$c > $T/dump.txt 2>&1 || { echo "FAIL compare_dump_$s: $(tail -1 $T/dump.txt)"; exit 1; }
    c=$((c + 1))
  done
done
python3 tests/compare_check.py $T/res.json $T/ids.txt $CTX $NCH $T $SCHEMES
