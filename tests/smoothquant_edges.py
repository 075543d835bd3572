#!/usr/bin/env python3
"""Edits a `llama_fp8 synth --shape tiny128` checkpoint (after tests/wformat_edges.py) in place, NumPy only, so that
SmoothQuant (tests/test_smoothquant.sh) meets its edges. Deterministic.
  - layer 0 input_layernorm: channel 5 = 0 (the norm output is 0 on every token: act range 0, scale clamped to 1e-5, the
    q/k/v column times 1e-5f rounded twice, fp32 then bf16), channel 6 = 1e-30 (act^a / w^(1-a) < 1e-5: clamped too),
    channel 3 = -2 (a negative norm weight: max - min is not 2 absmax);
  - layer 1 q/k/v_proj: column 7 all zero (weight range 0: the scale is the activation range itself);
  - layer 1 post_attention_layernorm: channel 9 = 24 (an outlier channel, what SmoothQuant is for).
usage: smoothquant_edges.py MODEL_DIR"""
import json, os, sys
import numpy as np
d = sys.argv[1]
def edit(name, w):
    if name == "model.layers.0.input_layernorm.weight": w[5] = 0; w[6] = 1e-30; w[3] = -2; return w
    if name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight"):
        w[:, 7] = 0; return w
    if name == "model.layers.1.post_attention_layernorm.weight": w[9] = 24; return w
    return None
for f in sorted(os.listdir(d)):
    if not f.endswith(".safetensors"): continue
    p = os.path.join(d, f); b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n]); data = bytearray(b)
    for k, v in h.items():
        if k == "__metadata__": continue
        assert v["dtype"] == "BF16"
        o0, o1 = v["data_offsets"]; raw = np.frombuffer(b[8 + n + o0: 8 + n + o1], np.uint16).reshape(v["shape"])
        w2 = edit(k, (raw.astype(np.uint32) << 16).view(np.float32).copy())
        if w2 is None: continue
        u = w2.astype(np.float32).view(np.uint32)
        data[8 + n + o0: 8 + n + o1] = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()   # RNE to bf16
    open(p + ".tmp", "wb").write(bytes(data)); os.replace(p + ".tmp", p)
