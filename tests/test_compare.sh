#!/bin/sh
# ppl --compare's statistics checked by an independent computation: numpy (tests/compare_check.py)
# recomputes PPL ± SE, dPPL ± paired SE, KLD mean/SE/p99/median/max, top-1 agreement and RMS dp from
# the logits `llama_fp8 dump` writes for the same chunks, for both protocols (gptq: every token;
# llamacpp: BOS overwrites each chunk's first token, second half scored). Skips without numpy or stories260K.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/compare; rm -rf $T; mkdir -p $T
M=$D/stories260K/stories260K.bin; TK=$D/stories260K/tok512.bin; TXT=$D/tinystories/tinystories_sample.txt
if [ ! -f "$M" ] || [ ! -f "$TXT" ]; then echo "skip compare: no stories260K / tinystories in $D"; exit 0; fi
if ! python3 -c "import numpy" 2>/dev/null; then echo "skip compare: no python3 with numpy"; exit 0; fi
CTX=128; NCH=2
$B tokenize --tokenizer $TK -f $TXT --bos > $T/ids.txt || { echo "FAIL compare_tokenize"; exit 1; }
BOS=$(cut -d' ' -f1 $T/ids.txt)
run() {  # protocol, first scored row, schemes...
  proto=$1; first=$2; shift 2
  mkdir -p $T/$proto
  $B ppl -m $M --tokenizer $TK -f $TXT --protocol $proto --ctx $CTX --chunks $NCH --compare "$(echo "$@" | tr ' ' ,)" --json $T/$proto/res.json > $T/$proto/ppl.txt 2>&1 \
    || { echo "FAIL compare_ppl_$proto: $(tail -1 $T/$proto/ppl.txt)"; return; }
  for s in "$@"; do
    c=0
    while [ $c -lt $NCH ]; do
      ids=$(tr ' ' '\n' < $T/ids.txt | sed -n "$((c * CTX + 1)),$(((c + 1) * CTX))p" | paste -sd, -)
      [ $proto = llamacpp ] && ids="$BOS,${ids#*,}"
      $B dump -m $M --tokenizer $TK -q $s --ids "$ids" -o $T/$proto/${s}_$c > $T/dump.txt 2>&1 || { echo "FAIL compare_dump_$s: $(tail -1 $T/dump.txt)"; return; }
      c=$((c + 1))
    done
  done
  python3 tests/compare_check.py $T/$proto/res.json $T/ids.txt $CTX $NCH $first $T/$proto "$@" || echo "FAIL compare_$proto: see above"
}
run gptq 0 bf16 w8a8 int8 fp8-w
run llamacpp $((CTX / 2)) bf16 w8a8-block
exit 0
