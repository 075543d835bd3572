#!/bin/sh
# The 4-bit and microscaling formats of the decision table against llm-compressor: weight-only w4a16 (INT4), nvfp4a16,
# mxfp4a16, mxfp8a16, and with quantized activations nvfp4 (static input global scales from tests/golden/wformats_tiny128_scales.json,
# `llama_fp8 calibrate` on TinyStories, the windows llm-compressor calibrated on), mxfp4, mxfp8.
# CI (numpy): `llama_fp8 synth --shape tiny128` edited by tests/wformat_edges.py (fused global scales that differ, zero
# groups, -0.0, E2M1 ties, subnormals, clamping), then for each scheme:
#   - `export -q SCHEME`: every tensor's sha256 equals that of the checkpoint llm-compressor 0.14.0.1 wrote for the preset
#     on the same model (tests/golden/wformats_tiny128.txt, made by tests/wformats_check.py), and no tensor is missing or extra;
#   - `dump -q checkpoint` on that export == `dump -q SCHEME` on the source, bit for bit, and the logits hash to llama_fp8
#     -q bf16 on compressed-tensors' own decompression of the tool's checkpoint;
#   - `quant --format` reproduces the exported codes and scales of one Linear;
# and damaged checkpoints / inputs are refused with one line (table wformats in tests/README.md).
# With torch + transformers + compressed-tensors + llmcompressor installed, tests/wformats_check.py runs live as well.
set -u
B=${LLAMA_FP8:-./llama_fp8}
D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/wformats; rm -rf $T; mkdir -p $T
G=tests/golden/wformats_tiny128.txt
TABLE_NAME=wformats; SKIPPED=0
. tests/errors_lib.sh
python3 -c "import numpy" 2> /dev/null || { echo "skip wformats: no numpy"; exit 0; }
$B synth -o $T/m --shape tiny128 > $T/synth.txt 2>&1 && python3 tests/wformat_edges.py $T/m || { echo "FAIL wformats_setup: $(tail -1 $T/synth.txt)"; exit 0; }
ids=$(awk '$1 == "ids" { print $2 }' $G)
SC=tests/golden/wformats_tiny128_scales.json
for s in w4a16 nvfp4a16 mxfp4a16 mxfp8a16 nvfp4 mxfp4 mxfp8; do
  sc=""; [ $s = nvfp4 ] && sc="--scales $SC"
  if ! $B export -m $T/m -q $s $sc -o $T/ex_$s > $T/ex.txt 2>&1; then echo "FAIL wformats_export_$s: $(tail -1 $T/ex.txt)"; continue; fi
  python3 - $T/ex_$s $G $s <<'PYEOF'
import hashlib, json, sys
d, G, s = sys.argv[1:4]
want = {l.split()[2]: l.split()[3] for l in open(G) if l.startswith(f"tensor {s} ")}
b = open(d + "/model.safetensors", "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
got = {k: hashlib.sha256(b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]).hexdigest() for k, v in h.items() if k != "__metadata__"}
bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
fmt = json.load(open(d + "/config.json"))["quantization_config"]["format"]
print(f"FAIL wformats_export_{s}: {len(bad)} tensors differ from llm-compressor's (or are missing / extra): {bad[:4]}" if bad or not want else
      f"ok wformats_export_{s}: all {len(got)} tensors ({fmt}) hash to the checkpoint llm-compressor 0.14.0.1 writes for the preset")
PYEOF
  $B dump -m $T/m -q $s $sc --ids $ids -o $T/a_$s > $T/d.txt 2>&1 || { echo "FAIL wformats_forward_$s: $(tail -1 $T/d.txt)"; continue; }
  $B dump -m $T/ex_$s --ids $ids -o $T/b_$s > $T/d.txt 2>&1 || { echo "FAIL wformats_forward_$s: loading the export: $(tail -1 $T/d.txt)"; continue; }
  ok=1; for f in logits.npy layer_00.npy layer_01.npy; do cmp -s $T/a_$s/$f $T/b_$s/$f || ok=0; done
  got=$(python3 -c "import numpy as np, hashlib; a = np.load('$T/b_$s/logits.npy'); print(hashlib.sha256((a.view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest())")
  want=$(awk -v s=$s '$1 == "logits" && $2 == s { print $3 }' $G)
  if [ $ok = 1 ] && [ "$got" = "$want" ]; then
    case $s in *a16) echo "ok wformats_forward_$s: -q checkpoint on the export == -q $s on the source (logits, layers), == -q bf16 on compressed-tensors' decompression (sha256)";;
      *) echo "ok wformats_forward_$s: -q checkpoint on the export == -q $s on the source (logits, layers) == the golden run on llm-compressor's checkpoint (sha256)";; esac
  else echo "FAIL wformats_forward_$s: identical to the source run: $ok; logits sha256 $got, golden $want"; fi
done
# ppl --compare @DIR: an exported checkpoint as a row beside the scheme that made it, on the same tokens: identical numbers
TOK=$D/llama3-tokenizer/tokenizer.model; TXT=$D/tinystories/tinystories_valid_excerpt.txt
if [ -f $TOK ] && [ -f $TXT ]; then
  $B ppl -m $T/m --tokenizer $TOK -f $TXT --ctx 64 --chunks 3 --compare bf16,mxfp4,@$T/ex_mxfp4,nvfp4a16,@$T/ex_nvfp4a16 > $T/cmp.txt 2>&1
  r1=$(awk '$1 == "mxfp4" { $1 = ""; print }' $T/cmp.txt); r2=$(awk '$1 == "@ex_mxfp4:checkpoint:mxfp4" { $1 = ""; print }' $T/cmp.txt)
  r3=$(awk '$1 == "nvfp4a16" { $1 = ""; print }' $T/cmp.txt); r4=$(awk '$1 == "@ex_nvfp4a16:checkpoint:nvfp4a16" { $1 = ""; print }' $T/cmp.txt)
  if [ -n "$r1" ] && [ "$r1" = "$r2" ] && [ -n "$r3" ] && [ "$r3" = "$r4" ]; then echo "ok wformats_compare_rows: ppl --compare @DIR rows of the exports print the same PPL, dPPL, KLD and top-1 as the schemes on the source"
  else echo "FAIL wformats_compare_rows: $(tail -6 $T/cmp.txt | tr '\n' '|')"; fi
else echo "skip wformats_compare_rows: no Llama 3 tokenizer / TinyStories in $D"; fi
# quant --format: the codes and scales export wrote (layer 0 q_proj: a fused NVFP4 global scale, given with --global-scale)
python3 - "$B" $T <<'PYEOF'
import json, subprocess, sys
import numpy as np
B, T = sys.argv[1:3]
def tensors(p):
    b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
    return {k: (v["shape"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
src = {}
import glob
for f in glob.glob(T + "/m/*.safetensors"): src.update(tensors(f))
bad = []
for fmt, s in (("nvfp4", "nvfp4a16"), ("mxfp4", "mxfp4a16"), ("mxfp8", "mxfp8a16")):
    ex = tensors(f"{T}/ex_{s}/model.safetensors")
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"):
        shape, raw = src[name + ".weight"]
        np.save(f"{T}/w.npy", np.frombuffer(raw, np.uint16).reshape(shape))
        cmd = [B, "quant", f"{T}/w.npy", "--format", fmt, "-o", f"{T}/w"]
        if fmt == "nvfp4": cmd += ["--global-scale", repr(float(np.frombuffer(ex[name + ".weight_global_scale"][1], np.float32)[0]))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: bad.append(f"{fmt} {name}: {r.stderr.strip()}"); continue
        q, sc = np.load(f"{T}/w.q.npy"), np.load(f"{T}/w.scale.npy")
        if fmt == "mxfp8": codes = np.frombuffer(ex[name + ".weight"][1], np.uint8).reshape(q.shape)
        else: p = np.frombuffer(ex[name + ".weight_packed"][1], np.uint8); codes = np.stack([p & 15, p >> 4], -1).reshape(q.shape)
        es = np.frombuffer(ex[name + ".weight_scale"][1], np.uint8).reshape(sc.shape)
        if fmt == "nvfp4":   # E4M3 scale bytes -> values, decoded here (sign 0, exponent bias 7, 3 mantissa bits)
            e, m = (es >> 3) & 15, es & 7; sv = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e.astype(np.int32) - 7))
        else: sv = np.ldexp(1.0, es.astype(np.int32) - 127)
        if not (np.array_equal(q, codes) and np.array_equal(sc.astype(np.float64), sv)): bad.append(f"{fmt} {name}")
print(f"FAIL wformats_quant_cli: {bad}" if bad else "ok wformats_quant_cli: quant --format nvfp4 / mxfp4 / mxfp8 gives the codes and scales export wrote (2 Linears each)")
PYEOF
# damaged checkpoints and inputs: one line each
L0=model.layers.0.self_attn
damage $T/ex_nvfp4a16 $T/bad1 "b[off('$L0.q_proj.weight_global_scale'):off('$L0.q_proj.weight_global_scale')+4] = struct.pack('<f', 0.0)"
expect nvfp4_zero_global_scale "not a positive finite scale" $B dump -m $T/bad1 --ids 1,2 -o $T/o
damage $T/ex_nvfp4a16 $T/bad2 "b[off('$L0.k_proj.weight_scale') + 3] = 0x7F"
expect nvfp4_nan_scale "not a usable scale" $B dump -m $T/bad2 --ids 1,2 -o $T/o
damage $T/ex_mxfp4a16 $T/bad3 "b[off('$L0.v_proj.weight_scale') + 5] = 0xFF"
expect mxfp4_nan_e8m0 "not a usable scale" $B dump -m $T/bad3 --ids 1,2 -o $T/o
damage $T/ex_w4a16 $T/bad4 "b[off('$L0.o_proj.weight_shape'):off('$L0.o_proj.weight_shape')+8] = struct.pack('<q', 64)"
expect int4_wrong_weight_shape "weight_shape" $B dump -m $T/bad4 --ids 1,2 -o $T/o
damage $T/ex_mxfp4a16 $T/bad5 "h['$L0.o_proj.weight_scale']['dtype'] = 'F8_E4M3'"
expect mxfp4_scale_dtype "must be U8" $B dump -m $T/bad5 --ids 1,2 -o $T/o
damage $T/ex_nvfp4a16 $T/bad6 "h['$L0.o_proj.weight_packeX'] = h.pop('$L0.o_proj.weight_packed')"
expect nvfp4_missing_packed "is missing" $B dump -m $T/bad6 --ids 1,2 -o $T/o
damage $T/ex_mxfp8a16 $T/bad7 "h['$L0.q_proj.weight']['shape'] = [64, 256]"
expect mxfp8_wrong_shape "must be F8_E4M3" $B dump -m $T/bad7 --ids 1,2 -o $T/o
rm -rf $T/bad8; cp -r $T/ex_nvfp4a16 $T/bad8
sed -i 's/"input_activations": null/"input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true}/' $T/bad8/config.json
expect nvfp4_fp8_token_inputs "these input_activations are not supported" $B dump -m $T/bad8 --ids 1,2 -o $T/o
damage $T/ex_nvfp4 $T/bad9 "h['$L0.k_proj.input_global_scaleX'] = h.pop('$L0.k_proj.input_global_scale')"
expect nvfp4_missing_input_global_scale "input_global_scale' is missing" $B dump -m $T/bad9 --ids 1,2 -o $T/o
damage $T/ex_nvfp4 $T/bad10 "b[off('$L0.v_proj.input_global_scale'):off('$L0.v_proj.input_global_scale')+4] = struct.pack('<f', 3.0)"
expect nvfp4_unequal_qkv_input_scales "share one input" $B dump -m $T/bad10 --ids 1,2 -o $T/o
expect nvfp4_needs_scales "needs the activations' calibrated absmax" $B dump -m $T/m -q nvfp4 --ids 1,2 -o $T/o
expect wformat_ckpt_other_scheme "a quantized checkpoint" $B dump -m $T/ex_mxfp4a16 -q w8a8 --ids 1,2 -o $T/o
$B synth -o $T/tiny --shape tiny > /dev/null 2>&1
expect mxfp4_ragged_groups "not a multiple of the group size 32" $B dump -m $T/tiny -q mxfp4a16 --ids 1,2 -o $T/o
python3 -c "import numpy as np; np.save('$T/f32.npy', np.ones((4, 32), np.float32))"
expect quant_nvfp4_needs_bf16 "quantizes a bfloat16 weight" $B quant $T/f32.npy --format nvfp4 -o $T/q
python3 -c "import numpy as np; np.save('$T/b.npy', np.full((4, 48), 0x3F80, np.uint16))"
expect quant_mxfp4_ragged "not a multiple of the group size 32" $B quant $T/b.npy --format mxfp4 -o $T/q
python3 -c "import numpy as np; np.save('$T/b64.npy', np.full((4, 64), 0x3F80, np.uint16))"
expect quant_global_scale_not_nvfp4 "NVFP4's" $B quant $T/b64.npy --format mxfp8 --global-scale 2 -o $T/q
expect compare_other_shapes "differ from" $B ppl -m $T/m -f $T/m/config.json --compare bf16,@$T/tiny
expect compare_empty_at "give a model directory after @" $B ppl -m $T/m -f $T/m/config.json --compare bf16,@
table_check "${1:-}"
TOK=$D/llama3-tokenizer/tokenizer.model; TXT=$D/tinystories/tinystories_valid_excerpt.txt
if ! python3 -c "import torch, compressed_tensors, transformers, llmcompressor, datasets" > /dev/null 2>&1; then
  echo "skip wformats_live: no torch + transformers + compressed-tensors + llmcompressor (the CI hashes above still ran)"
elif [ ! -f $TOK ] || [ ! -f $TXT ]; then echo "skip wformats_live: no Llama 3 tokenizer / TinyStories in $D (the calibration windows' text)"
else
  $B tokenize --tokenizer $TOK -f $TXT > $T/text_ids.txt
  python3 tests/wformats_check.py $B $T/m $T $ids $SC $T/text_ids.txt 2>&1 | grep -E '^(ok|FAIL|skip) '
fi
