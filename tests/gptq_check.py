#!/usr/bin/env python3
"""`llama_fp8 gptq` against llm-compressor's GPTQModifier (tests/test_gptq.sh; needs torch, transformers, compressed-tensors,
llmcompressor and datasets, all from PyPI, CPU).

usage: gptq_check.py LLAMA_FP8 MODEL_DIR WORK_DIR TOKENIZER TEXT [--observer mse] [--write-golden FILE]
MODEL_DIR: a bf16 checkpoint (`llama_fp8 synth --shape tiny128` edited by tests/wformat_edges.py); TEXT: the calibration
text, TOKENIZER: the Llama 3 tokenizer.model. The windows: `llama_fp8 calibrate --samples 16 --seq 64 --seed 1` (its
window_starts; BOS + 63 text tokens each), given to llm-compressor as token ids, one batch each, in order.
1. llm-compressor: oneshot(GPTQModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"])) on those windows (sequential
   pipeline, defaults: block 128, dampening 0.01, actorder static), save_pretrained(save_compressed=True); the Hessian each
   Linear is quantized with (H / n as prepare_batch hands it to quantize_weight) is captured on the way.
2. `llama_fp8 gptq` on the same windows (end to end: its own forward passes, its own Hessians, written with --hessians), and
   `llama_fp8 gptq --hessians-in` on llm-compressor's Hessians (the GPTQ arithmetic alone), and `export -q w4a16` (RTN).
3. Compared per Linear: codes (how many differ), scales and every other tensor (byte-identical), quantization_config, and the
   reconstruction error e(Q) = ||(W - Q) X||^2 / ||W X||^2 = tr((W-Q) H (W-Q)^T) / tr(W H W^T) (float64) on the calibration
   activations X that llm-compressor quantized that Linear with (its H). The bounds (tests/README.md, "gptq") are enforced here.
With --observer mse: the weights' observer is llm-compressor's "mse" (MSE-optimal clipping, the paper's GPTQ setting; the recipe
names it in config_groups, INT4 symmetric group 128 as W4A16), `llama_fp8 gptq --observer mse`, and RTN is `export -q w4a16-mse`
(MODEL_DIR then edited by `tests/wformat_edges.py DIR --mse`).
With --write-golden FILE: sha256 of every tensor of llama_fp8's end-to-end checkpoint and the per-Linear error numbers of
llm-compressor's and of RTN's quantization, for the CI check (tests/test_gptq.sh, NumPy only)."""
import glob, hashlib, json, os, shutil, subprocess, sys
import numpy as np, torch, transformers, compressed_tensors, llmcompressor
from loguru import logger
logger.remove(); logger.add(sys.stderr, level="ERROR")   # llm-compressor's progress and "no accelerator" warnings
from safetensors.torch import load_file

B, M, W, TOK, TXT = sys.argv[1:6]
opts = sys.argv[6:]
golden = opts[opts.index("--write-golden") + 1] if "--write-golden" in opts else None
MSE = "--observer" in opts and opts[opts.index("--observer") + 1] == "mse"
SAMPLES, SEQ, SEED = 16, 64, 1
import lc_common
from lc_common import check, tensors, raw
run = lc_common.runner(B, "gptq_run")
def codes(t):   # pack-quantized I32 [N, K/8] -> int codes [N, K]
    p = t.numpy().view(np.uint32)
    return np.stack([(p >> (4 * k)) & 15 for k in range(8)], -1).reshape(p.shape[0], -1).astype(np.int64) - 8
SITES = {"self_attn.q_proj": "qkv", "self_attn.k_proj": "qkv", "self_attn.v_proj": "qkv", "self_attn.o_proj": "o",
         "mlp.gate_proj": "gateup", "mlp.up_proj": "gateup", "mlp.down_proj": "down"}

# ---- the windows ----
run("calibrate", "-m", M, "--tokenizer", TOK, "-f", TXT, "--samples", str(SAMPLES), "--seq", str(SEQ), "--seed", str(SEED), "-o", W + "/sc.json")
text_ids = [int(x) for x in run("tokenize", "--tokenizer", TOK, "-f", TXT).split()]
sc = json.load(open(W + "/sc.json"))
wins = [[128000] + text_ids[st:st + SEQ - 1] for st in sc["window_starts"]]

# ---- llm-compressor ----
import llmcompressor.modifiers.gptq.base as gptq_base
from llmcompressor import oneshot
from llmcompressor.modifiers.gptq import GPTQModifier
from datasets import Dataset
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
HL = {}
_prepare = gptq_base.prepare_batch
def prepare_batch(batch, qparams, hessians, num_samples):   # the Hessian quantize_weight gets: H / n, fp32
    for mod in batch: HL[names[mod]] = (hessians[mod] / num_samples[mod]).clone()
    return _prepare(batch, qparams, hessians, num_samples)
gptq_base.prepare_batch = prepare_batch
lib = os.path.join(W, "lc"); shutil.rmtree(lib, ignore_errors=True)
model = transformers.AutoModelForCausalLM.from_pretrained(M, dtype=torch.bfloat16)
names = {mod: n for n, mod in model.named_modules()}
proc = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")))   # unused: the dataset holds ids
if MSE:
    from compressed_tensors.quantization import QuantizationScheme, QuantizationArgs
    recipe = GPTQModifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=4, type="int", strategy="group", group_size=128, symmetric=True, dynamic=False, observer="mse"))}, ignore=["lm_head"])
else: recipe = GPTQModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"])
oneshot(model=model, recipe=recipe,
        dataset=Dataset.from_dict({"input_ids": wins, "attention_mask": [[1] * len(w) for w in wins]}), processor=proc,
        num_calibration_samples=len(wins), max_seq_length=SEQ, batch_size=1, shuffle_calibration_samples=False)
model.save_pretrained(lib, save_compressed=True)
del model
gptq_base.prepare_batch = _prepare
hl_dir = os.path.join(W, "h_lc"); os.makedirs(hl_dir, exist_ok=True)
L = len({k.split(".")[2] for k in HL})
for l in range(L):
    q = HL[f"model.layers.{l}.self_attn.q_proj"]
    assert all(torch.equal(q, HL[f"model.layers.{l}.self_attn.{p}"]) for p in ("k_proj", "v_proj"))
    assert torch.equal(HL[f"model.layers.{l}.mlp.gate_proj"], HL[f"model.layers.{l}.mlp.up_proj"])
    for lin, site in (("self_attn.q_proj", "qkv"), ("self_attn.o_proj", "o"), ("mlp.gate_proj", "gateup"), ("mlp.down_proj", "down")):
        np.save(f"{hl_dir}/h_{l:02d}_{site}.npy", HL[f"model.layers.{l}.{lin}"].numpy())

# ---- llama_fp8 ----
ours, ours_h, rtn, ho_dir = (os.path.join(W, d) for d in ("ours", "ours_h", "rtn", "h_ours"))
for d in (ours, ours_h, rtn, ho_dir): shutil.rmtree(d, ignore_errors=True)
OBS = ["--observer", "mse"] if MSE else []
run("gptq", "-m", M, "--tokenizer", TOK, "-f", TXT, "--samples", str(SAMPLES), "--seq", str(SEQ), "--seed", str(SEED), "--hessians", ho_dir, *OBS, "-o", ours)
run("gptq", "-m", M, "--hessians-in", hl_dir, *OBS, "-o", ours_h)
run("export", "-m", M, "-q", "w4a16-mse" if MSE else "w4a16", "-o", rtn)
A, O, OH, R, S = tensors(lib), tensors(ours), tensors(ours_h), tensors(rtn), tensors(M)

# every tensor but the codes byte-identical (scales: the observer on the original weights, as RTN's)
for tag, X in (("end to end", O), ("from llm-compressor's Hessians", OH)):
    diff = sorted(k for k in set(A) | set(X) if not k.endswith("weight_packed") and
                  (k not in A or k not in X or A[k].dtype != X[k].dtype or A[k].shape != X[k].shape or raw(A[k]) != raw(X[k])))
    missing = sorted(k for k in set(A) ^ set(X))
    check(not diff and not missing, "gptq_tensors" + ("" if X is O else "_hessians_in"),
          f"{len(A)} tensors, names / dtypes / shapes equal; weight_scale, weight_shape, norms, embeddings byte-identical to "
          f"llm-compressor {llmcompressor.__version__}'s ({tag})" + (f"; differ: {diff[:4]}" if diff else ""))
rs = sorted(k for k in A if k.endswith("weight_scale") and raw(A[k]) != raw(R[k]))
check(not rs, "gptq_scales_are_rtn", f"GPTQ's weight_scale == export -q {'w4a16-mse' if MSE else 'w4a16'}'s (RTN) for all {sum(k.endswith('weight_scale') for k in A)} Linears" + (f"; differ: {rs[:3]}" if rs else ""))
qa = json.load(open(lib + "/config.json"))["quantization_config"]; qb = json.load(open(ours + "/config.json"))["quantization_config"]
wa, wb = qa["config_groups"]["group_0"]["weights"], qb["config_groups"]["group_0"]["weights"]
keys = ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "observer", "actorder")
check(qa["format"] == qb["format"] and all(wa.get(k) == wb.get(k) for k in keys) and qa["ignore"] == qb["ignore"], "gptq_config",
      f"quantization_config: format {qb['format']}, weights {{{', '.join(f'{k}: {wb.get(k)}' for k in keys)}}}, ignore {qb['ignore']} as llm-compressor writes")

# ---- per Linear: codes and reconstruction errors ----
def err(Wm, Q, H):   # tr(D H D^T) / tr(W H W^T), float64
    D = Wm - Q
    return float(np.einsum("ij,jk,ik->", D, H, D) / np.einsum("ij,jk,ik->", Wm, H, Wm))
def deq(T, name):
    s = T[name + ".weight_scale"].float().numpy().astype(np.float64)
    return codes(T[name + ".weight_packed"]) * np.repeat(s, 128, axis=1)   # exact: |code| <= 8, s a bf16 value
rows, golden_lines = [], []
print(f"# per Linear: codes that differ from llm-compressor's (of N*K), and e(Q) = ||(W-Q)X||^2/||WX||^2 on llm-compressor's calibration activations")
print(f"# {'Linear':34s} {'diff e2e':>9s} {'diff H=lc':>9s}   {'e(lc)':>10s} {'e(ours)':>10s} {'e(ours,H=lc)':>12s} {'e(RTN)':>10s}   e(ours) on its own H")
for l in range(L):
    for lin, site in SITES.items():
        n = f"model.layers.{l}.{lin}"
        Wm = S[n + ".weight"].float().numpy().astype(np.float64)
        H = HL[n].numpy().astype(np.float64)
        Ho = np.load(f"{ho_dir}/h_{l:02d}_{site}.npy").astype(np.float64)
        ca, co, coh = codes(A[n + ".weight_packed"]), codes(O[n + ".weight_packed"]), codes(OH[n + ".weight_packed"])
        e_lc, e_o, e_oh, e_r = err(Wm, deq(A, n), H), err(Wm, deq(O, n), H), err(Wm, deq(OH, n), H), err(Wm, deq(R, n), H)
        e_own = err(Wm, deq(O, n), Ho)
        r = dict(name=n, size=ca.size, d_e2e=int((ca != co).sum()), d_h=int((ca != coh).sum()), e_lc=e_lc, e_o=e_o, e_oh=e_oh, e_r=e_r, e_own=e_own,
                 e_lc_own=err(Wm, deq(A, n), Ho), e_r_own=err(Wm, deq(R, n), Ho), hrel=float(np.abs(Ho - H).max() / np.abs(H).max()))
        rows.append(r)
        print(f"  {n:34s} {r['d_e2e']:9d} {r['d_h']:9d}   {e_lc:10.6f} {e_o:10.6f} {e_oh:12.6f} {e_r:10.6f}   {e_own:.6f} (H rel. diff {r['hrel']:.1e})")
        golden_lines.append(f"err {n} {e_lc:.9g} {e_r:.9g} {r['e_lc_own']:.9g} {r['e_r_own']:.9g} {r['d_e2e']} {r['d_h']} {r['size']}")

# bounds (derivation: tests/README.md, "gptq")
# 1. the same Hessians: only the fp32 Cholesky / GEMM rounding differs; a flipped rounding can cascade along a row
worst_h = max(r["d_h"] / r["size"] for r in rows)
rel_h = max(abs(r["e_oh"] / r["e_lc"] - 1) for r in rows)
nid = sum(r["d_h"] == 0 for r in rows)
check(worst_h <= 0.005 and rel_h <= 0.01, "gptq_same_hessians",
      f"from llm-compressor's Hessians (--hessians-in): {nid} of {len(rows)} Linears' codes identical, at most {max(r['d_h'] for r in rows)} codes "
      f"({100 * worst_h:.3f}%, bound 0.5%) differ in a Linear; e(Q) within {100 * rel_h:.3f}% of llm-compressor's (bound 1%)")
# 2. end to end: the Hessians differ too (llama_fp8's bf16 forward vs transformers', fp32 GEMM sums), later layers see inputs
#    that went through differently rounded earlier layers: each side's error on its own calibration activations
worst = max(r["d_e2e"] / r["size"] for r in rows)
rel = max(abs(r["e_own"] / r["e_lc"] - 1) for r in rows)
gain = sum(r["e_own"] for r in rows) / sum(r["e_r_own"] for r in rows)
check(worst <= 0.10 and rel <= 0.03, "gptq_end_to_end",
      f"end to end: {sum(r['d_e2e'] for r in rows)} of {sum(r['size'] for r in rows)} codes differ from llm-compressor's (worst Linear {100 * worst:.2f}%, bound 10%); "
      f"e(Q) on each one's own calibration activations within {100 * rel:.3f}% of llm-compressor's for every Linear (bound 3%); "
      f"sum of e: {gain:.3f} x RTN's")
hmax = max(r["hrel"] for r in rows if r["name"].startswith("model.layers.0."))
check(hmax <= 1e-3, "gptq_hessians_layer0", f"layer 0's Hessians (same inputs but for bf16 roundings of the forward pass): max |H_ours - H_lc| / max |H_lc| = {hmax:.2e} (bound 1e-3)")

if golden:
    with open(golden + ".tmp", "w") as g:
        g.write(f"# tests/gptq_check.py --write-golden: llm-compressor {llmcompressor.__version__} (compressed-tensors {compressed_tensors.__version__}, torch {torch.__version__}) "
                f"GPTQModifier W4A16{' with the mse observer' if MSE else ''} on `llama_fp8 synth --shape tiny128` edited by tests/wformat_edges.py{' --mse' if MSE else ''}, calibrate windows --samples {SAMPLES} --seq {SEQ} --seed {SEED}.\n"
                "# tensor NAME SHA256: llama_fp8 gptq's (end to end) checkpoint; err NAME e_lc e_rtn e_lc_own e_rtn_own ndiff_e2e ndiff_hessians_in size: e(Q) of llm-compressor's\n"
                "# and of RTN's weights on llm-compressor's Hessian (e_lc, e_rtn) and on llama_fp8's (_own), the codes of llama_fp8's end-to-end / --hessians-in run that differ from llm-compressor's\n")
        g.write(f"params {SAMPLES} {SEQ} {SEED}\n")
        for k in sorted(O): g.write(f"tensor {k} {hashlib.sha256(raw(O[k])).hexdigest()}\n")
        g.write("\n".join(golden_lines) + "\n")
    os.replace(golden + ".tmp", golden)
    print(f"# wrote {golden}")
lc_common.done()
