#!/usr/bin/env python3
"""`-q w4a16-mse` (INT4 g128 with llm-compressor's mse observer: MSE-optimal clipping) against llm-compressor itself
(tests/test_w4a16_mse.sh; needs torch, transformers, compressed-tensors and llmcompressor, all from PyPI, CPU).

usage: mse_check.py LLAMA_FP8 MODEL_DIR WORK_DIR IDS [--write-golden FILE]
MODEL_DIR: `llama_fp8 synth --shape tiny128` edited by `tests/wformat_edges.py DIR --mse`.
1. llm-compressor: oneshot(QuantizationModifier(config_groups={group_0: Linear, weights INT4 symmetric group 128,
   observer "mse"}, ignore=["lm_head"])), save_pretrained(save_compressed=True).
2. `llama_fp8 export -q w4a16-mse`: every tensor byte-identical (names, dtypes, shapes, bytes); quantization_config's
   weight arguments equal.
3. The edges are present: the mse scales differ from the absmax ones (`export -q w4a16`) in many groups (else this proves
   nothing about the search); on k_proj of layer 1 the tool's own search with patience 5 and with patience 1000 gives
   different scales (the early stop decides there), and the checkpoint has the patience-5 ones.
4. `dump -q w4a16-mse` on MODEL_DIR == `dump -q checkpoint` on the tool's checkpoint (logits and layers, bit for bit).
With --write-golden FILE: sha256 of every tensor of the tool's checkpoint and of the logits, for the CI check (no torch)."""
import glob, hashlib, json, os, shutil, subprocess, sys
import numpy as np, torch, transformers, compressed_tensors, llmcompressor
from loguru import logger
logger.remove(); logger.add(sys.stderr, level="ERROR")
from safetensors.torch import load_file
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from llmcompressor.observers.mse_quant import _grid_search_mse
from compressed_tensors.quantization import QuantizationScheme, QuantizationArgs, QuantizationStrategy

B, M, W, ids = sys.argv[1:5]
golden = sys.argv[6] if sys.argv[5:6] == ["--write-golden"] else None
import lc_common
from lc_common import check, tensors, raw, same
run = lc_common.runner(B, "mse_run")
def dump(model, q, out): return lc_common.dump(run, model, ids, q, out)

ARGS = QuantizationArgs(num_bits=4, type="int", strategy="group", group_size=128, symmetric=True, dynamic=False, observer="mse")
lc, ours, rtn = (os.path.join(W, d) for d in ("lc", "ours", "rtn"))
for d in (lc, ours, rtn): shutil.rmtree(d, ignore_errors=True)
model = transformers.AutoModelForCausalLM.from_pretrained(M, dtype=torch.bfloat16)
oneshot(model=model, recipe=QuantizationModifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=ARGS)}, ignore=["lm_head"]))
model.save_pretrained(lc, save_compressed=True)
del model
run("export", "-m", M, "-q", "w4a16-mse", "-o", ours)
run("export", "-m", M, "-q", "w4a16", "-o", rtn)
A, O, R, S = tensors(lc), tensors(ours), tensors(rtn), tensors(M)

diff = sorted(k for k in set(A) | set(O) if k not in A or k not in O or A[k].dtype != O[k].dtype or A[k].shape != O[k].shape or raw(A[k]) != raw(O[k]))
check(not diff, "mse_export_bytes", f"export -q w4a16-mse: all {len(A)} tensors byte-identical to llm-compressor {llmcompressor.__version__}'s "
      f"(QuantizationModifier, INT4 group 128, observer mse)" + (f"; differ: {diff[:4]}" if diff else ""))
wa = json.load(open(lc + "/config.json"))["quantization_config"]["config_groups"]["group_0"]["weights"]
wb = json.load(open(ours + "/config.json"))["quantization_config"]["config_groups"]["group_0"]["weights"]
keys = ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "observer")
check(all(wa.get(k) == wb.get(k) for k in keys), "mse_config", f"weights {{{', '.join(f'{k}: {wb.get(k)}' for k in keys)}}} as llm-compressor writes")

# the edges
sk = [k for k in A if k.endswith("weight_scale")]
ng = sum(int((A[k] != R[k]).sum()) for k in sk); nt = sum(A[k].numel() for k in sk)
nc = sum(raw(A[k.replace("scale", "packed")]) != raw(R[k.replace("scale", "packed")]) for k in sk)
check(ng > 0.1 * nt, "mse_not_minmax", f"{ng} of {nt} group scales ({nc} of {len(sk)} Linears' codes) differ from the absmax observer's (export -q w4a16)")
kp = "model.layers.1.self_attn.k_proj"
obs = S[kp + ".weight"].reshape(1, S[kp + ".weight"].shape[0], -1, 128)
targs = ARGS.model_copy(update={"strategy": QuantizationStrategy.TOKEN})
s5 = compressed_tensors.quantization.utils.calculate_qparams(*_grid_search_mse(obs, ARGS, targs, 0.2, 5, 100.0, 2.4, 0.3), ARGS)[0]
s1000 = compressed_tensors.quantization.utils.calculate_qparams(*_grid_search_mse(obs, ARGS, targs, 0.2, 1000, 100.0, 2.4, 0.3), ARGS)[0]
check(not torch.equal(s5, s1000) and torch.equal(s5.reshape(A[kp + ".weight_scale"].shape), A[kp + ".weight_scale"]), "mse_patience_edge",
      f"{kp}: the search with patience 5 stops before the scale it would find with patience 1000 ({float(s5.flatten()[0])} vs "
      f"{float(s1000.flatten()[0])}); llm-compressor's and llama_fp8's checkpoints hold the patience-5 scale")

# the two torch details llama_fp8's mse_pow / mse_sum128 reproduce (llama_fp8.c): pow on a bf16 tensor rounds the exponent 2.4 to
# bf16 (2.40625) and rounds powf's result to bf16; torch.sum of a bf16 row of 128 sums in fp32 in this order (replicated in NumPy)
def rne(f):
    u = f.astype(np.float32).view(np.uint32).astype(np.uint64); return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
bits = np.arange(0x7F80, dtype=np.uint16)
tp = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).pow(2.4).view(torch.int16).numpy().view(np.uint16)
with np.errstate(over="ignore"): npw = rne(np.power((bits.astype(np.uint32) << 16).view(np.float32), np.float32(2.40625)))
check(np.array_equal(tp, npw), "mse_pow", f"torch's |d| ** 2.4 on bf16 == B(powf(d, 2.40625f)) for all {len(bits)} finite non-negative bf16 d")
def sum128(e):   # mse_sum128
    v = [(e[:, 16 * i:16 * i + 8] + e[:, 16 * i + 8:16 * i + 16]).astype(np.float32) for i in range(8)]
    a = ((((v[0] + v[4]) + (v[1] + v[5])).astype(np.float32) + (v[2] + v[6])).astype(np.float32) + (v[3] + v[7])).astype(np.float32)
    r = np.zeros(len(e), np.float32)
    for l in range(8): r = (r + a[:, l]).astype(np.float32)
    return r
gen = torch.Generator().manual_seed(7); nd = 0
for _ in range(10):   # magnitudes spread over 2^+-20, so that the order of the fp32 sum matters
    x = (torch.randn(20000, 128, generator=gen) * torch.exp(torch.randn(20000, 128, generator=gen) * 7)).abs().to(torch.bfloat16)
    nd += int((torch.sum(x.reshape(1, 20000, 1, 128), dim=(0, -1)).flatten().view(torch.int16).numpy().view(np.uint16) != rne(sum128(x.float().numpy()))).sum())
check(nd == 0, "mse_sum_order", f"torch.sum of a bf16 row of 128 == mse_sum128's fp32 order rounded to bf16: {nd} of 200000 random rows (magnitudes over 2^+-20) differ")

# the checkpoint runs as the scheme does
a, b = dump(M, "w4a16-mse", W + "/d_src"), dump(lc, "checkpoint", W + "/d_lc")
check(same(a, b), "mse_checkpoint_runs",
      f"dump -q w4a16-mse on the source == dump -q checkpoint on llm-compressor's checkpoint: logits and {len(a) - 1} layers, bit for bit")

if golden:
    with open(golden + ".tmp", "w") as g:
        g.write(f"# tests/mse_check.py --write-golden: llm-compressor {llmcompressor.__version__} (compressed-tensors {compressed_tensors.__version__}, torch {torch.__version__}) "
                "QuantizationModifier INT4 g128 observer mse on `llama_fp8 synth --shape tiny128` edited by `tests/wformat_edges.py DIR --mse`.\n"
                "# tensor NAME SHA256: the tool's checkpoint; logits SHA256: dump -q w4a16-mse's bf16 logits (upper halves of the fp32 words) on ids\n")
        g.write(f"ids {ids}\n")
        for k in sorted(A): g.write(f"tensor {k} {hashlib.sha256(raw(A[k])).hexdigest()}\n")
        g.write(f"logits {hashlib.sha256((a[0].view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest()}\n")
    os.replace(golden + ".tmp", golden)
    print(f"# wrote {golden}")
lc_common.done()
