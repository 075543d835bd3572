#!/usr/bin/env python3
"""Edits a `llama_fp8 synth --shape tiny128` checkpoint in place (NumPy only) into one that exercises the FP4 / MX / NVFP4
weight rules at their edges (tests/test_wformats.sh). Deterministic: the same input gives the same bytes.
  - q_proj x 4, v_proj x 1/4 (layer 0) and gate_proj x 2 (layer 1): fused NVFP4 global scales differ from the per-tensor ones;
  - an all-zero group and a group of -0.0 (k_proj, layer 0): zero scales (INT4 eps, NVFP4 eps 0.125, E8M0 code 0);
  - o_proj (layer 0) row 0: E2M1 rounding ties under an MX scale of 2^-4 (absmax 1.75 * 2^-3 rounds up to 2^-2), row 1:
    absmax 1.7421875 * 2^-3 (just below the round-up), row 2: ties under E4M3 for MXFP8;
  - down_proj (layer 0) row 0: bf16 subnormals (E8M0 code clamped at 0, NVFP4 scales in the E4M3 subnormal range), row 1:
    values of 96..160 (clamping at +-6 and +-448);
  - with --mse (tests/test_w4a16_mse.sh, tests/gptq_check.py --observer mse): every row of k_proj (layer 1) is +-PATIENCE, a
    group of 128 on which llm-compressor's mse observer stops early (patience 5: five steps without improvement anywhere in
    the tensor) before the shrink factor that would have won: found by searching torch.randn groups with
    llmcompressor.observers.mse_quant._grid_search_mse, patience 5 vs 1000 (2.6% of random groups differ); the whole tensor
    stalls together because its rows are one group up to sign.
usage: wformat_edges.py MODEL_DIR [--mse]"""
import json, os, sys
import numpy as np
d = sys.argv[1]
MSE = sys.argv[2:3] == ["--mse"]
PATIENCE = np.array([int(x, 16) for x in (
    "becf bf82 bf50 3f45 be91 be88 bf78 3f13 3f84 3e3e 3ed9 bf84 bf8c bf83 3c99 3fa5 "
    "bef1 bdc4 3f99 bef6 bdc7 402f 3f07 beaa bf92 3eef 3d48 4041 bf87 be98 3ebf 4006 "
    "bde4 be61 3ec4 bf49 bdcc be23 bea4 3fd0 bfc0 3f72 bdae bedf bfbb 3d35 3f4f bf39 "
    "3e2f 3f8b bf2a be92 3fb8 3e71 bf88 be8c be43 3f84 3ef0 3f5e bfbe be40 bd8d bf5a "
    "3f8c 3e8b bf93 3fb7 3f66 be0e bfc3 402c c071 be8a 3ea3 4003 3eaf bf02 3fec be41 "
    "3f95 3fef bbc4 be3e bf5c be8a 3df5 bf14 3f03 3b91 bf9e 3f78 bb47 3e90 3df0 3f53 "
    "be98 bf8c c01a 3f7b bf96 3f52 3eb2 3f88 3f0e 3f45 3f8e bba5 bf0f bfc7 bfc7 bf28 "
    "3ee8 3f12 3f5d bf2c 3ff6 3ec9 3e45 bf7c 3fa0 3f86 3ebb 3fdd bf2a c004 3e8f 3f40 "
).split()], np.uint32) << 16
def read(p):
    b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n]); return b, n, h
def bf(x):   # float32 -> bf16 bits (inputs here are exact in bf16)
    u = np.asarray(x, np.float32).view(np.uint32); assert not np.any(u & 0xFFFF), "not a bf16 value"; return (u >> 16).astype(np.uint16)
def edit(name, w):
    if name == "model.layers.0.self_attn.q_proj.weight": return w * 4
    if name == "model.layers.0.self_attn.v_proj.weight": return w * 0.25
    if name == "model.layers.1.mlp.gate_proj.weight": return w * 2
    if name == "model.layers.0.self_attn.k_proj.weight":
        w[0, :16] = 0; w[1, 32:64] = -0.0; return w
    if name == "model.layers.0.self_attn.o_proj.weight":
        t = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 6.0, 4.0], np.float32) * 2.0 ** -4
        g = np.zeros(32, np.float32); g[:10] = t; g[10:20] = -t; g[20] = 1.75 * 2 ** -3; w[0, :32] = g
        g2 = np.resize(t, 32).copy(); g2[5] = 1.7421875 * 2 ** -3; w[1, :32] = g2
        w[2, :32] = np.resize(np.array([1.0625, 1.1875, 0.001953125 * 1.5, 448 * 1.03125], np.float32) * 2.0 ** -9, 32)
        return w
    if MSE and name == "model.layers.1.self_attn.k_proj.weight":
        return np.where((np.arange(w.shape[0]) % 2 == 0)[:, None], 1, -1) * PATIENCE.view(np.float32)[None, :]
    if name == "model.layers.0.mlp.down_proj.weight":
        w[0, :] = np.resize(np.array([1e-39, -3e-39, 5e-40, 2e-38], np.float32), w.shape[1])
        w[1, :] = np.resize(np.array([96, -100, 128, 160, -0.5, 3], np.float32), w.shape[1])
        return w
    return None
for f in sorted(os.listdir(d)):
    if not f.endswith(".safetensors"): continue
    b, n, h = read(os.path.join(d, f)); data = bytearray(b)
    for k, v in h.items():
        if k == "__metadata__": continue
        assert v["dtype"] == "BF16"
        o0, o1 = v["data_offsets"]; raw = np.frombuffer(b[8 + n + o0: 8 + n + o1], np.uint16).reshape(v["shape"])
        w = (raw.astype(np.uint32) << 16).view(np.float32).copy()
        w2 = edit(k, w)
        if w2 is None: continue
        u = w2.astype(np.float32).view(np.uint32)
        bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)   # round to nearest even (the 1e-39 etc. are not bf16 values)
        data[8 + n + o0: 8 + n + o1] = bits.tobytes()
    tmp = os.path.join(d, f + ".tmp"); open(tmp, "wb").write(bytes(data)); os.replace(tmp, os.path.join(d, f))
