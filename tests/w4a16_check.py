#!/usr/bin/env python3
"""w4a16 against compressed-tensors and transformers (tests/test_w4a16.sh; needs torch, compressed-tensors, transformers).

usage: w4a16_check.py LLAMA_FP8 MODEL_DIR WORK_DIR IDS [--write-golden FILE]
MODEL_DIR: a bf16 HF checkpoint whose Linear input sizes are multiples of 128 (`llama_fp8 synth --shape tiny128`).
1. Every Linear weight of the layers is quantized as llm-compressor's W4A16 preset quantizes it (the library's own steps,
   called as llm-compressor calls them: min/max per group of 128 = its memoryless min-max observer, calculate_qparams with
   QuantizationArgs(num_bits=4, type=int, symmetric, strategy=group, group_size=128), then PackedQuantizationCompressor —
   the pack-quantized format llm-compressor writes: weight_packed int32 [N, K/8], weight_scale bf16 [N, K/128],
   weight_shape), unpacked and dequantized by the library (PackedQuantizationCompressor.decompress): the bf16 weights vLLM's and transformers'
   W4A16 paths compute with. They are written as a plain bf16 checkpoint WORK_DIR/deq.
2. `llama_fp8 dump -q w4a16` on MODEL_DIR must give the same logits and per-layer residuals, bit for bit, as
   `llama_fp8 dump -q bf16` on WORK_DIR/deq (so llama_fp8's INT4 codes, scales and dequantization are the library's),
3. and transformers' eager bf16 forward of WORK_DIR/deq gives the same logits up to the bf16 forward pass's GEMM-order
   differences (README: a bf16 ulp or two in a few logits), the same top-1 on every row.
With --write-golden FILE, digests of the library's dequantized weights and of llama_fp8's bf16 logits on them are written
for the CI check (tests/test_w4a16.sh, no torch there)."""
import hashlib, json, os, shutil, subprocess, sys
import numpy as np, torch, compressed_tensors, transformers
from safetensors.torch import load_file, save_file
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams
from compressed_tensors.compressors import PackedQuantizationCompressor

B, M, W, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
golden = sys.argv[6] if sys.argv[5:6] == ["--write-golden"] else None
fails = 0
def check(ok, name, msg):
    global fails
    print(("ok %s: %s" if ok else "FAIL %s: %s") % (name, msg)); fails += not ok

args = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=128, dynamic=False)
scheme = QuantizationScheme(targets=["Linear"], weights=args)
deq = os.path.join(W, "deq"); shutil.rmtree(deq, ignore_errors=True); os.makedirs(deq)
n_lin = 0; packed_ok = True
for f in sorted(os.listdir(M)):
    src = os.path.join(M, f)
    if not f.endswith(".safetensors"): shutil.copy(src, deq); continue
    t = load_file(src)
    for k, w in t.items():
        if ".layers." not in k or not k.endswith("_proj.weight"): continue
        N, K = w.shape
        wg = w.reshape(N, K // 128, 128)
        s, zp = calculate_qparams(wg.amin(dim=-1), wg.amax(dim=-1), args)
        sd = PackedQuantizationCompressor.compress({"weight": w, "weight_scale": s, "weight_zero_point": zp}, scheme)
        packed_ok &= sd["weight_packed"].dtype == torch.int32 and list(sd["weight_packed"].shape) == [N, K // 8] and sd["weight_scale"].dtype == torch.bfloat16
        q = PackedQuantizationCompressor.decompress(sd, scheme)["weight"]   # the library's unpack + dequantize
        packed_ok &= q.dtype == torch.bfloat16
        t[k] = q.to(torch.bfloat16).contiguous(); n_lin += 1
    save_file(t, os.path.join(deq, f), metadata={"format": "pt"})
check(packed_ok and n_lin > 0, "w4a16_ct_pack_quantized", f"{n_lin} Linear weights packed by compressed-tensors {compressed_tensors.__version__} (int32 [N, K/8], bf16 scales [N, K/128]), unpacked and dequantized by it")

def dump(model, q, out):
    r = subprocess.run([B, "dump", "-m", model, "--ids", ids, "-q", q, "-o", out], capture_output=True, text=True)
    if r.returncode: print(f"FAIL w4a16_dump_{q}: {r.stderr.strip()}"); sys.exit(1)
    return np.load(os.path.join(out, "logits.npy"))
a = dump(M, "w4a16", os.path.join(W, "dw4")); b = dump(deq, "bf16", os.path.join(W, "dbf"))
L = len([f for f in os.listdir(os.path.join(W, "dw4")) if f.startswith("layer_")])
same_layers = all(np.array_equal(np.load(os.path.join(W, "dw4", f"layer_{l:02d}.npy")).view(np.uint32), np.load(os.path.join(W, "dbf", f"layer_{l:02d}.npy")).view(np.uint32)) for l in range(L))
check(np.array_equal(a.view(np.uint32), b.view(np.uint32)) and same_layers, "w4a16_equals_bf16_on_library_dequantized",
      f"logits [{a.shape[0]}, {a.shape[1]}] and {L} layer residuals bit-identical (-q w4a16 on the source vs -q bf16 on compressed-tensors' dequantized weights)")

m = transformers.LlamaForCausalLM.from_pretrained(deq, dtype=torch.bfloat16, attn_implementation="eager").eval()
with torch.no_grad(): hf = m(torch.tensor([[int(i) for i in ids.split(",")]])).logits[0]
hfb = hf.view(torch.int16).numpy().view(np.uint16)
ours = (a.view(np.uint32) >> 16).astype(np.uint16)   # bf16 values stored as float32: the high halves are the bf16 bits
same = int((hfb == ours).sum())
def o(x): x = x.astype(np.int64); return np.where(x & 0x8000, -(x & 0x7FFF), x & 0x7FFF)
ulp = int(np.abs(o(hfb) - o(ours)).max())
top1 = bool((hf.float().numpy().argmax(1) == a.argmax(1)).all())
# the bf16 forward pass's known difference: the GEMMs' fp32 summation order (k order here, blocked in torch) flips a
# bf16 rounding now and then (README "The bf16 forward pass"); here it may move a logit by a bf16 ulp or two.
check(top1 and ulp <= 2, "w4a16_vs_transformers", f"{same} of {hfb.size} logits bit-identical to transformers {transformers.__version__} eager bf16 on the "
      f"dequantized checkpoint, the others within {ulp} bf16 ulp (GEMM summation order), top-1 equal on every row")
if golden:
    with open(golden, "w") as g:
        g.write(f"# tests/w4a16_check.py --write-golden: `llama_fp8 synth --shape tiny128` (seed 1) quantized to W4A16 by compressed-tensors "
                f"{compressed_tensors.__version__} (calculate_qparams, group 128, PackedQuantizationCompressor), unpacked and dequantized by it.\n"
                f"# weight NAME SHA256: the library's dequantized bf16 weight bytes; logits: llama_fp8 -q bf16 on those weights (ids below), bf16 bytes\n")
        g.write(f"ids {ids}\n")
        for f in sorted(os.listdir(deq)):
            if f.endswith(".safetensors"):
                for k, v in sorted(load_file(os.path.join(deq, f)).items()):
                    if ".layers." in k and k.endswith("_proj.weight"): g.write(f"weight {k} {hashlib.sha256(v.view(torch.int16).numpy().tobytes()).hexdigest()}\n")
        g.write(f"logits {hashlib.sha256((b.view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest()}\n")
    print(f"# wrote {golden}")
sys.exit(1 if fails else 0)
