#!/bin/sh
# w4a16 (llm-compressor's W4A16 preset: INT4, symmetric, group 128, round to nearest; bf16 forward on the dequantized
# weights). CI (numpy): on `llama_fp8 synth --shape tiny128`, every Linear weight quantized by `llama_fp8 quant --format
# int4 --granularity group` and dequantized in NumPy as compressed-tensors does (B(q * s), bf16) must hash to the
# library's dequantized weight (tests/golden/w4a16_tiny128.txt, made by tests/w4a16_check.py with compressed-tensors),
# and `dump -q w4a16` must hash to llama_fp8 -q bf16 on the library's weights. With torch + compressed-tensors +
# transformers, tests/w4a16_check.py runs live as well (the library's pack-quantized bytes, transformers' logits).
set -u
B=${LLAMA_FP8:-./llama_fp8}
T=build/tests/w4a16; rm -rf $T; mkdir -p $T
G=tests/golden/w4a16_tiny128.txt
python3 -c "import numpy" 2> /dev/null || { echo "skip w4a16: no numpy"; exit 0; }
$B synth -o $T/m --shape tiny128 > $T/synth.txt 2>&1 || { echo "FAIL w4a16_synth: $(tail -1 $T/synth.txt)"; exit 0; }
ids=$(awk '$1 == "ids" { print $2 }' $G)
python3 - "$B" "$T" "$G" <<'PYEOF'
import hashlib, json, os, subprocess, sys
import numpy as np
B, T, G = sys.argv[1:4]
want = {l.split()[1]: l.split()[2] for l in open(G) if l.startswith("weight ")}
def tensors(p):
    b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
    return {k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
def rne_bf16(f):   # float32 -> bf16 bits, round to nearest even (finite values)
    u = f.view(np.uint32).astype(np.uint64); return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
bad, n = [], 0
for f in sorted(os.listdir(T + "/m")):
    if not f.endswith(".safetensors"): continue
    for k, (dt, shape, raw) in sorted(tensors(os.path.join(T, "m", f)).items()):
        if k not in want: continue
        np.save(f"{T}/w.npy", np.frombuffer(raw, np.uint16).reshape(shape))
        r = subprocess.run([B, "quant", f"{T}/w.npy", "--format", "int4", "--granularity", "group", "--convention", "compressed-tensors", "-o", f"{T}/w"], capture_output=True, text=True)
        if r.returncode: bad.append(f"{k}: {r.stderr.strip()}"); continue
        q, s = np.load(f"{T}/w.q.npy"), np.load(f"{T}/w.scale.npy")
        deq = rne_bf16((q.astype(np.float32) * np.repeat(s, 128, axis=1)).astype(np.float32))   # q * s is exact in fp32
        if hashlib.sha256(deq.tobytes()).hexdigest() != want[k]: bad.append(k)
        n += 1
print(f"FAIL w4a16_weights_vs_compressed_tensors: {bad[:3]}" if bad or n != len(want) else
      f"ok w4a16_weights_vs_compressed_tensors: {n} Linear weights: quant --format int4 codes and scales, dequantized B(q * s), hash to compressed-tensors' dequantized weights")
PYEOF
if $B dump -m $T/m --ids $ids -q w4a16 -o $T/d > $T/d.txt 2>&1; then
  got=$(python3 -c "import numpy as np, hashlib; a = np.load('$T/d/logits.npy'); print(hashlib.sha256((a.view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest())")
  want=$(awk '$1 == "logits" { print $2 }' $G)
  if [ "$got" = "$want" ]; then echo "ok w4a16_logits: dump -q w4a16 == llama_fp8 -q bf16 on compressed-tensors' dequantized weights (sha256 of the bf16 logits)"
  else echo "FAIL w4a16_logits: sha256 $got, golden $want"; fi
else echo "FAIL w4a16_logits: $(tail -1 $T/d.txt)"; fi
$B dump -m ${LLAMA_FP8_DATA:-../shared/data}/stories260K/stories260K.bin --ids 1,2 -q w4a16 -o $T/x > $T/e.txt 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q "not a multiple of the group size 128" $T/e.txt; then echo "ok w4a16_refuses_ragged_groups: $(tail -1 $T/e.txt)"
elif [ ! -f ${LLAMA_FP8_DATA:-../shared/data}/stories260K/stories260K.bin ]; then echo "skip w4a16_refuses_ragged_groups: no stories260K"
else echo "FAIL w4a16_refuses_ragged_groups: rc $rc: $(tail -1 $T/e.txt)"; fi
if python3 -c "import torch, compressed_tensors, transformers" 2> /dev/null; then python3 tests/w4a16_check.py $B $T/m $T $ids 2>&1 | grep -E '^(ok|FAIL|skip) '
else echo "skip w4a16_live: no torch + compressed-tensors + transformers (the CI hashes above still ran)"; fi
