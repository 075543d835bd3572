#!/bin/sh
# GPTQ W4A16 (`llama_fp8 gptq`) against llm-compressor 0.14.0.1's GPTQModifier(scheme="W4A16") on `llama_fp8 synth --shape
# tiny128` edited by tests/wformat_edges.py, calibrated on 16 windows of 64 tokens of TinyStories (calibrate's, --seed 1).
# CI (numpy; needs the Llama 3 tokenizer and TinyStories text in $LLAMA_FP8_DATA, else skipped):
#   - every tensor of the gptq checkpoint hashes to the recorded run (tests/golden/gptq_tiny128.txt, made by tests/gptq_check.py
#     next to llm-compressor's checkpoint, whose codes it compared: see the err lines there and tests/README.md "gptq");
#   - per Linear, the reconstruction error e(Q) = ||(W-Q)X||^2 / ||WX||^2 of llama_fp8's weights on its own calibration
#     activations (H from --hessians) is within 3% of llm-compressor's on its own (golden), the live check's bound; RTN, a
#     wrong dampening, a wrong column order or no error propagation are all far outside it (tests/README.md);
#   - weight_scale and weight_shape == export -q w4a16's (GPTQ changes codes, not scales); the checkpoint loads (dump);
#   - bad inputs are refused with one line (table gptq in tests/README.md).
# The same with the mse observer (MSE-optimal clipping: `gptq --observer mse`, tests/golden/gptq_mse_tiny128.txt; scales ==
# export -q w4a16-mse's).
# With torch + transformers + compressed-tensors + llmcompressor + datasets installed, tests/gptq_check.py runs live as well
# (both observers).
set -u
UPDATE=${1:-}
B=${LLAMA_FP8:-./llama_fp8}
D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/gptq; rm -rf $T; mkdir -p $T
G=tests/golden/gptq_tiny128.txt
TABLE_NAME=gptq; SKIPPED=0
. tests/errors_lib.sh
python3 -c "import numpy" 2> /dev/null || { echo "skip gptq: no numpy"; exit 0; }
TOK=$D/llama3-tokenizer/tokenizer.model; TXT=$D/tinystories/tinystories_valid_excerpt.txt
if [ ! -f $TOK ] || [ ! -f $TXT ]; then echo "skip gptq: no Llama 3 tokenizer / TinyStories in $D (the calibration text)"; exit 0; fi
$B synth -o $T/m --shape tiny128 > $T/synth.txt 2>&1 && python3 tests/wformat_edges.py $T/m || { echo "FAIL gptq_setup: $(tail -1 $T/synth.txt)"; exit 0; }
ci_check() {   # OBSERVER GOLDEN TAG
  set -- $1 $2 $3 $(awk '$1 == "params" { print $2, $3, $4 }' $2)
  rm -rf $T/g $T/h $T/rtn
  if ! $B gptq -m $T/m --tokenizer $TOK -f $TXT --samples $4 --seq $5 --seed $6 --observer $1 --hessians $T/h -o $T/g > $T/g.txt 2>&1; then
    echo "FAIL $3_run: $(tail -1 $T/g.txt)"; return
  fi
  $B export -m $T/m -q $([ $1 = mse ] && echo w4a16-mse || echo w4a16) -o $T/rtn > $T/ex.txt 2>&1 || echo "FAIL $3_rtn_export: $(tail -1 $T/ex.txt)"
  python3 - $T $2 $3 <<'PYEOF'
import glob, hashlib, json, sys
import numpy as np
T, G, P = sys.argv[1:4]
def tensors(d):
    out = {}
    for p in sorted(glob.glob(d + "/*.safetensors")):
        b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
        out.update({k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"})
    return out
def bf16(raw, shape): return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape).astype(np.float64)
def codes(raw, shape):
    p = np.frombuffer(raw, np.uint32).reshape(shape)
    return np.stack([(p >> (4 * k)) & 15 for k in range(8)], -1).reshape(shape[0], -1).astype(np.int64) - 8
g, src, rtn = tensors(T + "/g"), tensors(T + "/m"), tensors(T + "/rtn")
want = {l.split()[1]: l.split()[2] for l in open(G) if l.startswith("tensor ")}
errs = {l.split()[1]: l.split()[2:] for l in open(G) if l.startswith("err ")}
bad = sorted(k for k in set(want) | set(g) if k not in g or hashlib.sha256(g[k][2]).hexdigest() != want.get(k))
nd = sum(int(v[4]) for v in errs.values()); nn = sum(int(v[6]) for v in errs.values())
print(f"FAIL {P}_golden: {len(bad)} tensors differ from the recorded run (or are missing / extra): {bad[:4]}" if bad else
      f"ok {P}_golden: all {len(g)} tensors hash to the recorded run (in which {nd} of {nn} codes differed from llm-compressor's, "
      f"{sum(int(v[5]) for v in errs.values())} from llm-compressor's Hessians)")
SITES = {"self_attn.q_proj": "qkv", "self_attn.k_proj": "qkv", "self_attn.v_proj": "qkv", "self_attn.o_proj": "o",
         "mlp.gate_proj": "gateup", "mlp.up_proj": "gateup", "mlp.down_proj": "down"}
def deq(ts, n):
    _, sh, raw = ts[n + ".weight_scale"]; s = bf16(raw, sh)
    _, sp, rp = ts[n + ".weight_packed"]
    return codes(rp, sp) * np.repeat(s, 128, axis=1)
def err(W, Q, H): D = W - Q; return float(np.einsum("ij,jk,ik->", D, H, D) / np.einsum("ij,jk,ik->", W, H, W))
worst, names, sg, sr, sbad = 0.0, [], 0.0, 0.0, []
for n, v in sorted(errs.items()):
    l, lin = int(n.split(".")[2]), n.split(".", 3)[3]
    H = np.load(f"{T}/h/h_{l:02d}_{SITES[lin]}.npy").astype(np.float64)
    _, sh, raw = src[n + ".weight"]; W = bf16(raw, sh)
    e, er = err(W, deq(g, n), H), err(W, deq(rtn, n), H)
    r = abs(e / float(v[0]) - 1)
    if r > worst: worst, names = r, [n]
    sg += e; sr += er
    for leaf in ("weight_scale", "weight_shape"):
        if g[f"{n}.{leaf}"] != rtn[f"{n}.{leaf}"]: sbad.append(f"{n}.{leaf}")
print(f"{'ok' if worst <= 0.03 and len(errs) == 14 else 'FAIL'} {P}_error_vs_llmcompressor: {len(errs)} Linears: e(Q) = ||(W-Q)X||^2/||WX||^2 on llama_fp8's "
      f"calibration activations within {100 * worst:.3f}% ({names[0] if names else '-'}) of llm-compressor's on its own (golden; bound 3%); "
      f"sum {sg:.6f} = {sg / sr:.3f} x RTN's")
print(f"FAIL {P}_scales_are_rtn: {sbad[:3]}" if sbad else f"ok {P}_scales_are_rtn: weight_scale and weight_shape of all {len(errs)} Linears == the RTN export's (same observer), byte for byte")
PYEOF
  if $B dump -m $T/g --ids 128000,791,1988 -o $T/d > $T/d.txt 2>&1; then echo "ok $3_loads: dump -m on the gptq checkpoint (-q checkpoint, pack-quantized) runs"
  else echo "FAIL $3_loads: $(tail -1 $T/d.txt)"; fi
}
ci_check mse tests/golden/gptq_mse_tiny128.txt gptq_mse
ci_check minmax $G gptq   # last: the checks below use its checkpoint $T/g
# bad inputs: one line each
expect gptq_needs_text "-f CALIB_TEXT is required" $B gptq -m $T/m -o $T/o
expect gptq_too_few_tokens "too few calibration tokens" $B gptq -m $T/m --tokenizer $TOK -f $TXT --samples 1000 --seq 64 -o $T/o
expect gptq_not_positive_definite "not positive definite after dampening" $B gptq -m $T/m --tokenizer $TOK -f $TXT --samples 1 --seq 16 --damp 0 -o $T/o
expect gptq_bad_observer "must be minmax or mse" $B gptq -m $T/m --tokenizer $TOK -f $TXT --observer ema -o $T/o
expect gptq_bad_actorder "must be static or none" $B gptq -m $T/m --tokenizer $TOK -f $TXT --actorder group -o $T/o
expect gptq_negative_damp "must be a finite number >= 0" $B gptq -m $T/m --tokenizer $TOK -f $TXT --damp -1 -o $T/o
expect gptq_zero_block "--block" $B gptq -m $T/m --tokenizer $TOK -f $TXT --block 0 -o $T/o
$B synth -o $T/tiny --shape tiny > /dev/null 2>&1
expect gptq_ragged_groups "not a multiple of the group size 128" $B gptq -m $T/tiny --tokenizer $TOK -f $TXT --samples 2 --seq 16 -o $T/o
[ -d $T/g ] && expect gptq_already_quantized "is already quantized" $B gptq -m $T/g --tokenizer $TOK -f $TXT -o $T/o
mkdir -p $T/hbad && python3 -c "import numpy as np; np.save('$T/hbad/h_00_qkv.npy', np.eye(64, dtype=np.float32))"
expect gptq_hessian_wrong_shape "must be a float32" $B gptq -m $T/m --hessians-in $T/hbad -o $T/o
table_check "$UPDATE"
if ! python3 -c "import torch, compressed_tensors, transformers, llmcompressor, datasets" > /dev/null 2>&1; then
  echo "skip gptq_live: no torch + transformers + compressed-tensors + llmcompressor + datasets (the CI checks above still ran)"
else
  mkdir -p $T/live
  python3 tests/gptq_check.py $B $T/m $T/live $TOK $TXT 2>&1 | grep -E '^(ok|FAIL|skip) '
  python3 tests/gptq_check.py $B $T/m $T/live $TOK $TXT --observer mse 2>&1 | grep -E '^(ok|FAIL|skip) ' | sed 's/^\([a-zA-Z]*\) gptq_/\1 gptq_mse_/'
fi
