#!/bin/sh
# SmoothQuant + W8A8 INT8 against llm-compressor 0.14.0.1's [SmoothQuantModifier(smoothing_strength=0.8),
# QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])].
# CI (numpy): `llama_fp8 synth --shape tiny128` edited by tests/wformat_edges.py and tests/smoothquant_edges.py (a zero and a
# 1e-30 norm channel: scales clamped to 1e-5; a negative norm weight; a q/k/v column of zeros: scale = activation range; an
# outlier channel), calibration windows from TinyStories (Llama 3 tokenizer); then
#   - `smooth` picks calibrate's windows (same starts), and its per-channel norm statistics, every smoothed bf16 tensor and
#     (after `export -q int8`) every tensor of the int-quantized checkpoint hash to what llm-compressor computed and wrote on
#     the same model and windows (tests/golden/smoothquant_tiny128.txt, made by tests/smoothquant_check.py);
#   - `dump -q checkpoint` on the export == `dump -q int8` on the smoothed model, bit for bit, and its logits hash to
#     llama_fp8's run of llm-compressor's own checkpoint;
#   - negative controls: alpha 0.5 and the unsmoothed model must miss the goldens;
# and damaged int-quantized checkpoints are refused with one line (table smoothquant in tests/README.md).
# With torch + transformers + compressed-tensors + llmcompressor + datasets, tests/smoothquant_check.py runs live as well.
set -u
B=${LLAMA_FP8:-./llama_fp8}
D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/smoothquant; rm -rf $T; mkdir -p $T
G=tests/golden/smoothquant_tiny128.txt
TABLE_NAME=smoothquant; SKIPPED=0
. tests/errors_lib.sh
python3 -c "import numpy" 2> /dev/null || { echo "skip smoothquant: no numpy"; exit 0; }
TOK=$D/llama3-tokenizer/tokenizer.model; TXT=$D/tinystories/tinystories_valid_excerpt.txt
if [ ! -f $TOK ] || [ ! -f $TXT ]; then echo "skip smoothquant: no Llama 3 tokenizer / TinyStories in $D (the calibration windows' text)"; exit 0; fi
$B synth -o $T/m --shape tiny128 > $T/synth.txt 2>&1 && python3 tests/wformat_edges.py $T/m && python3 tests/smoothquant_edges.py $T/m ||
  { echo "FAIL smoothquant_setup: $(tail -1 $T/synth.txt)"; exit 0; }
set -- $(awk '$1 == "params" { print $2, $3, $4, $5 }' $G) "${1:-}"
NS=$1; SEQ=$2; SEED=$3; IDS=$4; UPDATE=${5:-}
CAL="--tokenizer $TOK -f $TXT --samples $NS --seq $SEQ --seed $SEED"
$B smooth -m $T/m $CAL -o $T/sm > $T/sm.txt 2>&1 || { echo "FAIL smoothquant_smooth: $(tail -1 $T/sm.txt)"; exit 0; }
$B smooth -m $T/m $CAL --alpha 0.5 -o $T/sm05 > $T/sm.txt 2>&1 || { echo "FAIL smoothquant_smooth: $(tail -1 $T/sm.txt)"; exit 0; }
$B calibrate -m $T/m $CAL -o $T/scales.json > $T/cal.txt 2>&1 || { echo "FAIL smoothquant_calibrate: $(tail -1 $T/cal.txt)"; exit 0; }
for d in sm sm05 m; do
  $B export -m $T/$d -q int8 -o $T/ex_$d > $T/ex.txt 2>&1 || { echo "FAIL smoothquant_export: $(tail -1 $T/ex.txt)"; exit 0; }
done
python3 - $T $G <<'PYEOF'
import glob, hashlib, json, sys
import numpy as np
T, G = sys.argv[1:3]
def tensors(d):
    out = {}
    for p in sorted(glob.glob(d + "/*.safetensors")):
        b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
        out.update({k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"})
    return out
sha = lambda b: hashlib.sha256(b).hexdigest()
gold = {}
for l in open(G):
    f = l.split()
    if f and f[0] in ("stats", "smoothed", "int8"):
        key = (f[0], f[1], f[2]) if f[0] == "stats" else (f[0], f[1])
        rest = f[3:] if f[0] == "stats" else f[2:]
        gold[key] = (rest[0], rest[1] if len(rest) > 1 else rest[0], int(rest[2]) if len(rest) > 2 else 0)   # tool's, ours (where they differ: explained live), n
def bf16(x): u = (np.asarray(x, np.float32) + np.float32(0)).view(np.uint32); return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
def report(name, d, what, control=False):
    rec = json.load(open(d + "/smoothquant.json")) if what == "smoothed" else None
    got = {}
    if rec:
        for l, L in enumerate(rec["layers"]):
            for k, v in L.items():
                for nm in ("min", "max"): got[("stats", f"model.layers.{l}.{k}", nm)] = sha(bf16(v[nm]))
    for k, (dt, sh, b) in tensors(d).items(): got[(what, k)] = sha(b)
    keys = [k for k in gold if k[0] in (("stats", "smoothed") if what == "smoothed" else ("int8",))]
    bad = sorted(k for k in set(keys) | set(got) if k not in gold or got.get(k) != gold[k][1])
    ndiff = sum(gold[k][2] for k in keys)
    if control:
        print(f"ok {name}: {len(bad)} of {len(keys)} hashes miss the goldens (a wrong smoothing is caught)" if bad else f"FAIL {name}: matches the goldens, the check proves nothing")
        return
    print(f"FAIL {name}: {len(bad)} differ from llm-compressor's (or are missing / extra): {[' '.join(k) for k in bad[:3]]}" if bad or not keys else
          f"ok {name}: all {len(keys)} hashes equal llm-compressor 0.14.0.1's on the same model and windows" + (f" (where they differ, {ndiff} elements, our hash as the live check explained it)" if ndiff else ""))
report("smoothquant_smooth", T + "/sm", "smoothed")
report("smoothquant_export_int8", T + "/ex_sm", "int8")
report("smoothquant_alpha_control", T + "/sm05", "smoothed", True)
report("smoothquant_unsmoothed_control", T + "/ex_m", "int8", True)
a, b = json.load(open(T + "/sm/smoothquant.json")), json.load(open(T + "/scales.json"))
print(f"ok smoothquant_windows: smooth calibrates on calibrate's windows (starts {a['window_starts'][:4]}...)" if a["window_starts"] == b["window_starts"] and a["calibration_sha256"] == b["calibration_sha256"]
      else f"FAIL smoothquant_windows: smooth's window_starts {a['window_starts'][:4]} differ from calibrate's {b['window_starts'][:4]}")
q = json.load(open(T + "/ex_sm/config.json"))["quantization_config"]; g = q["config_groups"]["group_0"]
ok = q["format"] == "int-quantized" and g["weights"]["type"] == "int" and g["weights"]["strategy"] == "channel" and g["input_activations"]["strategy"] == "token" and g["input_activations"]["dynamic"] is True
print(("ok" if ok else "FAIL") + f" smoothquant_config: quantization_config format {q['format']}, weights int8 per channel, input_activations int8 per token dynamic, ignore {q['ignore']}")
PYEOF
$B dump -m $T/sm -q int8 --ids $IDS -o $T/a > $T/d.txt 2>&1 || { echo "FAIL smoothquant_forward: $(tail -1 $T/d.txt)"; exit 0; }
$B dump -m $T/ex_sm --ids $IDS -o $T/b > $T/d.txt 2>&1 || { echo "FAIL smoothquant_forward: loading the export: $(tail -1 $T/d.txt)"; exit 0; }
ok=1; for f in logits.npy layer_00.npy layer_01.npy; do cmp -s $T/a/$f $T/b/$f || ok=0; done
got=$(python3 -c "import numpy as np, hashlib; print(hashlib.sha256(np.load('$T/b/logits.npy').tobytes()).hexdigest())")
want=$(awk '$1 == "logits" { print $2 }' $G)
if [ $ok = 1 ] && [ "$got" = "$want" ]; then echo "ok smoothquant_forward: dump -q checkpoint on the int8 export == -q int8 on the smoothed model (logits, layers) == llama_fp8 on llm-compressor's checkpoint (logits sha256)"
else echo "FAIL smoothquant_forward: export == source run: $ok; logits sha256 $got, golden $want"; fi
# damaged int-quantized checkpoints and bad smooth inputs: one line each
L0=model.layers.0.self_attn
damage $T/ex_sm $T/bad1 "b[off('$L0.q_proj.weight_scale') + 6:off('$L0.q_proj.weight_scale') + 8] = b'\\x00\\x00'"
expect int8_zero_scale "non-positive or non-finite scale" $B dump -m $T/bad1 --ids 1,2 -o $T/o
damage $T/ex_sm $T/bad2 "b[off('$L0.k_proj.weight_scale'):off('$L0.k_proj.weight_scale') + 2] = b'\\xc0\\x7f'"
expect int8_nan_scale "non-positive or non-finite scale" $B dump -m $T/bad2 --ids 1,2 -o $T/o
damage $T/ex_sm $T/bad3 "h['$L0.v_proj.weight']['dtype'] = 'U8'"
expect int8_weight_dtype "must be I8" $B dump -m $T/bad3 --ids 1,2 -o $T/o
damage $T/ex_sm $T/bad4 "h['$L0.o_proj.weight_scaleX'] = h.pop('$L0.o_proj.weight_scale')"
expect int8_missing_scale "weight_scale' is missing" $B dump -m $T/bad4 --ids 1,2 -o $T/o
damage $T/ex_sm $T/bad5 "h['$L0.q_proj.weight_scale']['shape'] = [1, 128]"
expect int8_scale_shape "must have the shape" $B dump -m $T/bad5 --ids 1,2 -o $T/o
rm -rf $T/bad6; cp -r $T/ex_sm $T/bad6
sed -i 's/"strategy": "token", "symmetric": true, "dynamic": true/"strategy": "tensor", "symmetric": true, "dynamic": false/' $T/bad6/config.json
expect int8_static_inputs "input_activations" $B dump -m $T/bad6 --ids 1,2 -o $T/o
rm -rf $T/bad7; cp -r $T/ex_sm $T/bad7
sed -i 's/"ignore": \["lm_head"\]/"ignore": []/' $T/bad7/config.json
expect int8_quantized_lm_head "lm_head" $B dump -m $T/bad7 --ids 1,2 -o $T/o
expect int8_ckpt_other_scheme "runs as stored" $B dump -m $T/ex_sm -q w8a8 --ids 1,2 -o $T/o
expect int8_export_kv "KV cache" $B export -m $T/sm -q int8 --kv fp8-e4m3 -o $T/o
expect smooth_quantized_source "already quantized" $B smooth -m $T/ex_sm $CAL -o $T/o
expect smooth_alpha_range "--alpha must be in" $B smooth -m $T/m $CAL --alpha 1.5 -o $T/o
expect smooth_into_source "source model's directory" $B smooth -m $T/m $CAL -o $T/m
table_check "$UPDATE"
if [ "${SQ_LIVE:-1}" = 0 ]; then echo "skip smoothquant_live: SQ_LIVE=0"
elif ! python3 -c "import torch, compressed_tensors, transformers, llmcompressor, datasets" > /dev/null 2>&1; then
  echo "skip smoothquant_live: no torch + transformers + compressed-tensors + llmcompressor + datasets (the CI hashes above still ran)"
else
  python3 tests/smoothquant_check.py $B $T/m $T/live $TOK $TXT $NS $SEQ $SEED $IDS 2>&1 | grep -E '^(ok|FAIL|skip) '
fi
