#!/bin/sh
# w4a16-mse: INT4 g128 with llm-compressor's mse observer (MSE-optimal clipping: a grid over 20 shrink factors of each
# group's range, err = sum |fakequant(w) - w|^2.4, patience 5 over the whole tensor; llama_fp8.c int4_mse_scales).
# On `llama_fp8 synth --shape tiny128` edited by `tests/wformat_edges.py DIR --mse` (its k_proj of layer 1 makes the
# tool's early stop decide the scale).
# CI (numpy): every tensor of `export -q w4a16-mse` hashes to the checkpoint llm-compressor 0.14.0.1 wrote
# (tests/golden/w4a16_mse_tiny128.txt, made by tests/mse_check.py, which compared the bytes live), and `dump -q w4a16-mse`
# to the recorded logits; the mse scales are not the absmax ones. With torch + compressed-tensors + transformers +
# llmcompressor installed, tests/mse_check.py runs live as well (bytes, the patience edge, torch's pow and sum order).
set -u
B=${LLAMA_FP8:-./llama_fp8}
D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/w4a16_mse; rm -rf $T; mkdir -p $T
G=tests/golden/w4a16_mse_tiny128.txt
python3 -c "import numpy" 2> /dev/null || { echo "skip w4a16_mse: no numpy"; exit 0; }
$B synth -o $T/m --shape tiny128 > $T/synth.txt 2>&1 && python3 tests/wformat_edges.py $T/m --mse || { echo "FAIL w4a16_mse_setup: $(tail -1 $T/synth.txt)"; exit 0; }
ids=$(awk '$1 == "ids" { print $2 }' $G)
if $B export -m $T/m -q w4a16-mse -o $T/x > $T/x.txt 2>&1 && $B export -m $T/m -q w4a16 -o $T/r > $T/r.txt 2>&1; then
  python3 - $T $G <<'PYEOF'
import glob, hashlib, json, sys
T, G = sys.argv[1:3]
def tensors(d):
    out = {}
    for p in sorted(glob.glob(d + "/*.safetensors")):
        b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
        out.update({k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"})
    return out
x, r = tensors(T + "/x"), tensors(T + "/r")
want = {l.split()[1]: l.split()[2] for l in open(G) if l.startswith("tensor ")}
bad = sorted(k for k in set(want) | set(x) if k not in x or hashlib.sha256(x[k]).hexdigest() != want.get(k))
print(f"FAIL w4a16_mse_export_vs_llmcompressor: {len(bad)} tensors differ (or are missing / extra): {bad[:4]}" if bad else
      f"ok w4a16_mse_export_vs_llmcompressor: all {len(x)} tensors of export -q w4a16-mse hash to llm-compressor's checkpoint (observer mse)")
ns = sum(x[k] != r[k] for k in x if k.endswith("weight_scale"))
print(f"{'ok' if ns >= 10 else 'FAIL'} w4a16_mse_not_absmax: {ns} of 14 Linears' weight_scale differ from export -q w4a16's (absmax)")
q = json.load(open(T + "/x/config.json"))["quantization_config"]["config_groups"]["group_0"]["weights"]
print(f"{'ok' if q.get('observer') == 'mse' else 'FAIL'} w4a16_mse_config: observer {q.get('observer')}")
PYEOF
else echo "FAIL w4a16_mse_export: $(tail -1 $T/x.txt $T/r.txt)"; fi
if LLAMA_FP8_NO_SIMD=1 $B export -m $T/m -q w4a16-mse -o $T/g > $T/g.txt 2>&1 && cmp -s $T/x/model.safetensors $T/g/model.safetensors; then
  echo "ok w4a16_mse_simd_generic: the search's AVX-512 and generic builds of one source (mse_diffs) write identical checkpoints"
else echo "FAIL w4a16_mse_simd_generic: LLAMA_FP8_NO_SIMD=1 export differs or failed: $(tail -1 $T/g.txt)"; fi
# quant --observer mse (the kernel checker's entry point) on single weights == the export's codes and scales
python3 - "$B" $T <<'PYEOF'
import glob, json, subprocess, sys
import numpy as np
B, T = sys.argv[1:3]
def tensors(d):
    out = {}
    for p in sorted(glob.glob(d + "/*.safetensors")):
        b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
        out.update({k: (v["shape"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"})
    return out
src, x = tensors(T + "/m"), tensors(T + "/x")
bad, n = [], 0
for name in ("model.layers.1.self_attn.k_proj", "model.layers.0.mlp.down_proj", "model.layers.1.mlp.up_proj"):
    sh, raw = src[name + ".weight"]
    np.save(f"{T}/w.npy", np.frombuffer(raw, np.uint16).reshape(sh))
    r = subprocess.run([B, "quant", f"{T}/w.npy", "--format", "int4", "--granularity", "group", "--convention", "compressed-tensors", "--observer", "mse", "-o", f"{T}/w"], capture_output=True, text=True)
    if r.returncode: bad.append(f"{name}: {r.stderr.strip()}"); continue
    q, s = np.load(f"{T}/w.q.npy").astype(np.int64), np.load(f"{T}/w.scale.npy")
    psh, praw = x[name + ".weight_packed"]; ssh, sraw = x[name + ".weight_scale"]
    p = np.frombuffer(praw, np.uint32).reshape(psh)
    codes = np.stack([(p >> (4 * k)) & 15 for k in range(8)], -1).reshape(psh[0], -1).astype(np.int64) - 8
    scales = (np.frombuffer(sraw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(ssh)
    if not (np.array_equal(q, codes) and np.array_equal(s.view(np.uint32), scales.view(np.uint32))): bad.append(name)
    n += q.size
print(f"FAIL w4a16_mse_quant_cli: {bad}" if bad else f"ok w4a16_mse_quant_cli: quant --format int4 --observer mse on 3 weights ({n} codes): codes and scales == export -q w4a16-mse's")
PYEOF
python3 -c "import numpy as np; np.save('$T/f32.npy', np.ones((4, 128), np.float32))"
if $B quant $T/f32.npy --format int4 --granularity group --convention compressed-tensors --observer mse -o $T/o > $T/e1.txt 2>&1; then echo "FAIL w4a16_mse_quant_refuses_fp32: accepted"
elif grep -q "give bfloat16 values" $T/e1.txt; then echo "ok w4a16_mse_quant_refuses_fp32: $(tail -1 $T/e1.txt)"; else echo "FAIL w4a16_mse_quant_refuses_fp32: $(tail -1 $T/e1.txt)"; fi
if $B quant $T/f32.npy --format e4m3 --granularity channel --observer mse -o $T/o > $T/e2.txt 2>&1; then echo "FAIL w4a16_mse_quant_refuses_fp8: accepted"
elif grep -q "INT4 weight observer" $T/e2.txt; then echo "ok w4a16_mse_quant_refuses_fp8: $(tail -1 $T/e2.txt)"; else echo "FAIL w4a16_mse_quant_refuses_fp8: $(tail -1 $T/e2.txt)"; fi
if $B dump -m $T/m --ids $ids -q w4a16-mse -o $T/d > $T/d.txt 2>&1; then
  got=$(python3 -c "import numpy as np, hashlib; a = np.load('$T/d/logits.npy'); print(hashlib.sha256((a.view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest())")
  want=$(awk '$1 == "logits" { print $2 }' $G)
  if [ "$got" = "$want" ]; then echo "ok w4a16_mse_logits: dump -q w4a16-mse == the recorded logits (== dump -q checkpoint on llm-compressor's checkpoint)"
  else echo "FAIL w4a16_mse_logits: sha256 $got, golden $want"; fi
else echo "FAIL w4a16_mse_logits: $(tail -1 $T/d.txt)"; fi
$B dump -m $D/stories260K/stories260K.bin --ids 1,2 -q w4a16-mse -o $T/e > $T/e.txt 2>&1; rc=$?
if [ ! -f $D/stories260K/stories260K.bin ]; then echo "skip w4a16_mse_refuses_ragged_groups: no stories260K"
elif [ $rc -eq 1 ] && grep -q "not a multiple of the group size 128" $T/e.txt; then echo "ok w4a16_mse_refuses_ragged_groups: $(tail -1 $T/e.txt)"
else echo "FAIL w4a16_mse_refuses_ragged_groups: rc $rc: $(tail -1 $T/e.txt)"; fi
if python3 -c "import torch, compressed_tensors, transformers, llmcompressor" > /dev/null 2>&1; then
  mkdir -p $T/live; python3 tests/mse_check.py $B $T/m $T/live $ids 2>&1 | grep -E '^(ok|FAIL|skip) '
else echo "skip w4a16_mse_live: no torch + compressed-tensors + transformers + llmcompressor (the CI hashes above still ran)"; fi
