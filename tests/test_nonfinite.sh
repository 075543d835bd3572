#!/bin/sh
# Every number right or refused: non-finite weights, activations, scales; strict JSON; no temporary
# files left behind. Each refusal: exit status 1 and one "llama_fp8: error:" line naming the problem.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/nonfinite; rm -rf $T; mkdir -p $T
TABLE_NAME=nonfinite; . tests/errors_lib.sh
# poke DIR TENSOR ROW COL VALUE: one element of a tensor of a safetensors checkpoint set to VALUE
poke() {
  python3 - "$@" <<'EOF'
import json, struct, sys, glob, os
d, name, r, c, v = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
for f in sorted(glob.glob(os.path.join(d, '*.safetensors'))):
    with open(f, 'r+b') as fp:
        n = struct.unpack('<Q', fp.read(8))[0]; h = json.loads(fp.read(n))
        if name not in h: continue
        t = h[name]; cols = t['shape'][-1] if len(t['shape']) > 1 else 1
        b = {'BF16': lambda x: struct.pack('<f', x)[2:], 'F32': lambda x: struct.pack('<f', x), 'F16': lambda x: struct.pack('<e', x)}[t['dtype']](v)
        fp.seek(8 + n + t['data_offsets'][0] + (r * cols + c) * len(b)); fp.write(b); sys.exit(0)
sys.exit('no tensor ' + name)
EOF
}
command -v python3 > /dev/null || { echo "skip nonfinite: no python3 to edit checkpoints"; exit 0; }
$B synth -o $T/good --shape tiny > /dev/null 2>&1 || { echo "FAIL nonfinite_setup: synth failed"; exit 1; }
mk() { rm -rf $T/$1; cp -r $T/good $T/$1; poke $T/$1 "$2" $3 $4 "$5" || echo "FAIL nonfinite_setup: poke $*"; }
mk nan_w model.layers.1.mlp.down_proj.weight 3 7 nan
mk inf_norm model.layers.0.post_attention_layernorm.weight 0 5 inf
mk ninf_emb model.embed_tokens.weight 9 2 -inf
mk huge model.layers.0.post_attention_layernorm.weight 0 5 3e38

# 1. refused when the model loads, by every command that runs one, naming tensor and element
expect nonfinite_weight_dump "model.layers.1.mlp.down_proj.weight holds NaN at \[3, 7\]" $B dump -m $T/nan_w --ids 1,2 -o $T/o
expect nonfinite_weight_generate "down_proj.weight holds NaN at \[3, 7\]" $B generate -m $T/nan_w --tokenizer /dev/null -n 2
expect nonfinite_weight_export "down_proj.weight holds NaN" $B export -m $T/nan_w -q w8a8 -o $T/exp
expect nonfinite_norm "post_attention_layernorm.weight holds +Inf at \[5\]" $B dump -m $T/inf_norm --ids 1,2 -o $T/o
expect nonfinite_embedding "embed_tokens.weight holds -Inf at \[9, 2\]" $B dump -m $T/ninf_emb --ids 1,2 -o $T/o -q w8a8
[ -e $T/exp/model.safetensors ] && echo "FAIL nonfinite_export_nothing_written: export wrote a checkpoint of a NaN model"

# 2. --allow-nonfinite: NaN propagates (as in torch) and the run stops where it reaches a result, naming where it was born
for q in fp32 bf16 fp8-w w8a8 w8a8-block int8; do
  $B dump -m $T/nan_w --ids 1,2,3 -q $q -o $T/d_$q --allow-nonfinite > /dev/null 2> $T/err_$q.txt; rc=$?
  if [ $rc -eq 0 ] && grep -q "warning: dump: the logits hold non-finite values.*layer 1, mlp.down_proj output, NaN at token 0" $T/err_$q.txt; then
    echo "ok nonfinite_allow_dump_$q: exit 0, files written, warning names layer 1 mlp.down_proj output"
  else echo "FAIL nonfinite_allow_dump_$q: rc $rc: $(cat $T/err_$q.txt)"; fi
done
if [ -f $D/llama3-tokenizer/tokenizer.model ] && [ -f $D/tinystories/tinystories_valid_excerpt.txt ]; then
  TK="--tokenizer $D/llama3-tokenizer/tokenizer.model"; TXT=$D/tinystories/tinystories_valid_excerpt.txt
  for q in bf16 w8a8 int8; do
    expect nonfinite_allow_ppl_$q "ppl: scheme $q: chunk 1, token 1: log p(target) is NaN; first non-finite value: layer 1, mlp.down_proj output" \
      $B ppl -m $T/nan_w $TK -f $TXT -q $q --ctx 64 --chunks 2 --allow-nonfinite
  done
  expect nonfinite_allow_ppl_compare "ppl: scheme bf16: chunk 1" $B ppl -m $T/nan_w $TK -f $TXT --compare bf16,w8a8 --ctx 64 --chunks 1 --allow-nonfinite
  expect nonfinite_allow_calibrate "calibrate: sample 1: lm_head input holds NaN" $B calibrate -m $T/nan_w $TK -f $TXT --samples 2 --seq 64 -o $T/s.json --allow-nonfinite
  [ -e $T/s.json ] && echo "FAIL nonfinite_calibrate_nothing_written: a scales file was written from NaN activations"
  expect nonfinite_allow_stats "stats: chunk 1: lm_head input holds NaN" $B stats -m $T/nan_w $TK -f $TXT --ctx 64 --allow-nonfinite
  # a finite but huge weight: activations overflow to Inf in the forward pass (no flag needed)
  expect nonfinite_overflow_ppl "ppl: scheme fp32: chunk 1, token 1: log p(target) is NaN; first non-finite value: layer 0, rmsnorm, -Inf" \
    $B ppl -m $T/huge $TK -f $TXT -q fp32 --ctx 64 --chunks 1
  expect nonfinite_overflow_generate "generate: the logits at position" $B generate -m $T/huge $TK -p "Once upon" -n 3 -q bf16
else
  echo "skip nonfinite_ppl: no Llama 3 tokenizer or TinyStories text in $D"; SKIPPED=1
fi

# 3. static scales that do not fit fp32, and scales made for another model
if [ -f $D/stories260K/stories260K.bin ]; then
  M="-m $D/stories260K/stories260K.bin --tokenizer $D/stories260K/tok512.bin"; TXT=$D/tinystories/tinystories_valid_excerpt.txt
  $B calibrate $M -f $TXT --samples 2 --seq 64 -o $T/sc.json > /dev/null 2>&1 || echo "FAIL nonfinite_setup: calibrate failed"
  sed 's/"down": [0-9.e+-]*/"down": 1e300/' $T/sc.json > $T/sc_big.json
  expect nonfinite_scale_overflow "\"down\" = 1e+300 is outside what an fp32 scale can hold" $B ppl $M -f $TXT -q w8a8-static --scales $T/sc_big.json --chunks 1
  sed 's/"down": [0-9.e+-]*/"down": 1e-44/' $T/sc.json > $T/sc_small.json
  expect nonfinite_scale_underflow "\"down\" = 1e-44 is outside" $B ppl $M -f $TXT -q w8a8-static --scales $T/sc_small.json --chunks 1
  expect scales_other_model "made for another model" $B dump -m $T/good --ids 1,2 -q w8a8-static --scales $T/sc.json -o $T/o
  sed 's/"model_fingerprint": "[0-9a-f]*"/"model_fingerprint": "00"/' $T/sc.json > $T/sc_fp.json
  expect scales_fingerprint_mismatch "made for another model" $B ppl $M -f $TXT -q w8a8-static --scales $T/sc_fp.json --chunks 1
  $B ppl $M -f $TXT -q w8a8-static --scales $T/sc.json --chunks 1 > /dev/null 2>&1 && echo "ok scales_same_model: the file's own model runs with it" || echo "FAIL scales_same_model: ppl with the model's own scales failed"
else
  echo "skip nonfinite_scales: no stories260K in $D"; SKIPPED=1
fi

# 4. strict JSON: a model path with a quote and a backslash, parsed by Python's json with NaN/Infinity refused
if [ -f $D/stories260K/stories260K.bin ]; then
  Q="$T/we\"ird\\name.bin"; cp $D/stories260K/stories260K.bin "$Q"
  if $B ppl -m "$Q" --tokenizer $D/stories260K/tok512.bin -f $D/tinystories/tinystories_valid_excerpt.txt --compare bf16,w8a8 --ctx 64 --chunks 2 --json "$T/q\"uote.json" > /dev/null 2>&1 &&
     python3 -c 'import json,sys; d=json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit("non-finite constant " + c)); assert d["model"].endswith("we\"ird\\name.bin"), d["model"]' "$T/q\"uote.json"; then
    echo "ok json_strict_ppl: model path with \" and \\ written escaped and read back by json.load"
  else echo "FAIL json_strict_ppl: ppl --json output does not parse strictly or lost the path"; fi
else echo "skip json_strict_ppl: no stories260K in $D"; fi
# one scored token: the standard errors are undefined, written as null and listed under "nonfinite"
if $B ppl --synthetic --compare bf16,w8a8 --ctx 2 --chunks 1 --json $T/n1.json > /dev/null 2>&1 &&
   python3 -c 'import json,sys; d=json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit("constant " + c)); nf=d["nonfinite"]; assert "schemes[1].kld_se" in nf and all(d["schemes"][int(p[8])][p.split(".")[1]] is None for p in nf), d' $T/n1.json 2> $T/py.txt; then
  echo "ok json_nonfinite_null: $(python3 -c 'import json,sys; print("nonfinite:", json.load(open(sys.argv[1]))["nonfinite"])' $T/n1.json)"
else echo "FAIL json_nonfinite_null: $(cat $T/py.txt; cat $T/n1.json 2>/dev/null | head -5)"; fi

# 5. output paths checked before the run; failed writes leave no temporary file
expect output_json_unwritable "ppl: --json $T/nodir/x.json: cannot write there" $B ppl --synthetic --json $T/nodir/x.json
expect output_calibrate_unwritable "calibrate: -o $T/nodir/s.json: cannot write there" $B calibrate -m $T/good -f /dev/null -o $T/nodir/s.json
rm -rf $T/lim; mkdir -p $T/lim
( ulimit -f 100; exec $B synth -o $T/lim/m --shape tiny ) > /dev/null 2> $T/lim.err; rc=$?
left=$(find $T/lim -name '*.tmp.*' | wc -l)
if [ $rc -eq 1 ] && grep -q "failed: File too large" $T/lim.err && [ "$left" -eq 0 ]; then echo "ok write_failure_no_tmp: synth over a 100 KB file size limit: exit 1, '$(cut -c1-90 $T/lim.err)', no .tmp file left"
else echo "FAIL write_failure_no_tmp: rc $rc, $left temporary files left: $(cat $T/lim.err)"; fi
rm -rf $T/sig; mkdir -p $T/sig
$B synth -o $T/sig/m --shape llama3.2-1b --layers 2 > /dev/null 2>&1 & pid=$!
i=0; while [ $i -lt 100 ] && [ -z "$(find $T/sig -name '*.tmp.*' 2>/dev/null)" ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $pid 2>/dev/null; { wait $pid; } 2>/dev/null; rc=$?
left=$(find $T/sig -name '*.tmp.*' | wc -l)
if [ $rc -eq 143 ] && [ "$left" -eq 0 ]; then echo "ok sigterm_no_tmp: synth killed by SIGTERM mid-write (status 143), no .tmp file left"
elif [ $rc -ne 143 ]; then echo "skip sigterm_no_tmp: synth ended (status $rc) before SIGTERM reached it"
else echo "FAIL sigterm_no_tmp: $left temporary files left after SIGTERM"; fi
rm -rf $T/sig $T/lim
table_check "$@"
