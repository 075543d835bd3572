#!/usr/bin/env python3
"""llama_fp8 quant --convention compressed-tensors against the installed compressed-tensors, live (tests/test_kernel_goldens.sh).
usage: quant_ct_live.py LLAMA_FP8 TMPDIR. The library is called as llm-compressor calls it (tests/gen_scheme_goldens.py): min/max
over the reduced dims (its memoryless min-max observer), calculate_qparams, then the Float/IntQuantizationCompressor;
random bf16 and fp32 matrices with a zero row, a -0 row, an outlier and a 1e-30 row; per channel, tensor, 128x128 block,
1xG group (G = 128, 32), INT8 per channel, INT4 per channel and per group of 128 (W4A16). Codes and scales must be identical."""
import sys, subprocess, numpy as np, torch, compressed_tensors
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams
from compressed_tensors.compressors.naive_quantized.base import FloatQuantizationCompressor, IntQuantizationCompressor
B, T = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(20261203)
def mat(N, K):
    w = rng.standard_normal((N, K)).astype(np.float32) * np.float32(2.0) ** rng.integers(-8, 3, size=(N, 1)).astype(np.float32)
    w[0] = 0; w[1, :5] = -0.0; w[1, 5:] = 0; w[2, 7] = 1e3; w[3] *= 1e-30
    return w
def minmax(W, strategy, G=None, block=None):
    if strategy == "channel": return W.amin(dim=1, keepdim=True), W.amax(dim=1, keepdim=True)
    if strategy == "tensor": return W.amin().reshape(1), W.amax().reshape(1)
    if strategy == "group":   # a ragged last group padded with zeros (cannot change min <= 0 <= max)
        N, K = W.shape; ng = -(-K // G); Wp = torch.zeros(N, ng * G, dtype=W.dtype); Wp[:, :K] = W
        Wg = Wp.reshape(N, ng, G); return Wg.amin(dim=-1), Wg.amax(dim=-1)
    bn, bk = block; N, K = W.shape; nbn, nbk = -(-N // bn), -(-K // bk)
    Wp = torch.zeros(nbn * bn, nbk * bk, dtype=W.dtype); Wp[:N, :K] = W
    Wb = Wp.reshape(nbn, bn, nbk, bk).transpose(1, 2); return Wb.amin(dim=(-1, -2)), Wb.amax(dim=(-1, -2))
def ct(W, strategy, typ, G=None, block=None):
    bits = 4 if typ == "int4" else 8
    typ = "int" if typ == "int4" else typ
    kw = dict(num_bits=bits, type=typ, strategy=strategy, symmetric=True, dynamic=False)
    if G: kw["group_size"] = G
    if block: kw["block_structure"] = list(block)
    args = QuantizationArgs(**kw)
    lo, hi = minmax(W, strategy, G, block)
    s, zp = calculate_qparams(lo, hi, args)
    comp = FloatQuantizationCompressor if typ == "float" else IntQuantizationCompressor
    sd = comp.compress({"weight": W, "weight_scale": s, "weight_zero_point": zp}, QuantizationScheme(targets=["Linear"], weights=args))
    q = sd["weight"]
    return (q.view(torch.uint8) if typ == "float" else q).numpy(), s.float().numpy()
n = 0
for N, K in ((37, 384), (136, 300), (5, 128)):
    w32 = mat(N, K)
    for dtype in ("f32", "bf16"):
        W = torch.from_numpy(w32).to(torch.bfloat16 if dtype == "bf16" else torch.float32)
        np.save(f"{T}/ct_x.npy", W.view(torch.int16).numpy().view(np.uint16) if dtype == "bf16" else w32)
        cases = [("channel", "float", {}), ("tensor", "float", {}), ("block", "float", {"block": (128, 128)}), ("channel", "int", {})]
        cases += [("group", "int4", {"G": 128}), ("channel", "int4", {})]   # W4A16's INT4 (K = 300: a ragged last group)
        if K % 128 == 0: cases.append(("group", "float", {"G": 128}))
        if K % 32 == 0: cases.append(("group", "float", {"G": 32}))
        for strat, typ, kw in cases:
            fmt = {"float": "e4m3", "int": "int8", "int4": "int4"}[typ]
            name = f"kernel_ct_live_{dtype}_{N}x{K}_{strat}{kw.get('G', '')}_{fmt}"
            args = ["--granularity", strat, "--convention", "compressed-tensors", "--format", fmt] + (["--group", str(kw["G"])] if "G" in kw else [])
            try: wq, ws = ct(W, strat, typ, kw.get("G"), kw.get("block"))
            except Exception as e:   # the library refuses (a group that does not divide K): llama_fp8 must refuse too
                r = subprocess.run([B, "quant", f"{T}/ct_x.npy", *args, "-o", f"{T}/ct"], capture_output=True, text=True)
                if r.returncode == 1 and r.stderr.count("\n") == 1 and "not a multiple" in r.stderr: print(f"ok {name}_refused: compressed-tensors refuses ({str(e)[:60]}), so does quant: {r.stderr.strip()[:90]}")
                else: print(f"FAIL {name}_refused: compressed-tensors refuses ({str(e)[:60]}); quant exited {r.returncode}: {r.stderr.strip()[:120]}")
                continue
            r = subprocess.run([B, "quant", f"{T}/ct_x.npy", *args, "-o", f"{T}/ct"], capture_output=True, text=True)
            if r.returncode: print(f"FAIL {name}: {r.stderr.strip()}"); continue
            q, s = np.load(f"{T}/ct.q.npy"), np.load(f"{T}/ct.scale.npy")
            dq = int((q.reshape(-1).view(np.uint8) != wq.reshape(-1).view(np.uint8)).sum()) if q.size == wq.size else -1
            ds = int((s.reshape(-1).view(np.uint32) != ws.reshape(-1).view(np.uint32)).sum()) if s.size == ws.size else -1
            if dq or ds: print(f"FAIL {name}: {dq} codes, {ds} scales differ from compressed-tensors {compressed_tensors.__version__} (scale shapes {s.shape} vs {ws.shape})")
            else: print(f"ok {name}: {q.size} codes, {s.size} scales identical to compressed-tensors {compressed_tensors.__version__}"); n += 1
