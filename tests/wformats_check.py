#!/usr/bin/env python3
"""The weight-only formats (w4a16, nvfp4a16, mxfp4a16, mxfp8a16) against llm-compressor itself (tests/test_wformats.sh;
needs torch, transformers, compressed-tensors and llmcompressor, all from PyPI, CPU).

usage: wformats_check.py LLAMA_FP8 MODEL_DIR WORK_DIR IDS SCALES TEXT_IDS [--write-golden FILE]
MODEL_DIR: a bf16 checkpoint (`llama_fp8 synth --shape tiny128` edited by tests/wformat_edges.py); SCALES: `llama_fp8
calibrate` on it (minmax observer), TEXT_IDS: the token ids of its calibration text (`llama_fp8 tokenize`): llm-compressor
calibrates NVFP4 on the same windows (BOS + the text from each of SCALES' window_starts, one batch each).
For each weight-only preset (W4A16, NVFP4A16, MXFP4A16, MXFP8A16):
1. llm-compressor's oneshot(QuantizationModifier(targets="Linear", scheme=PRESET, ignore=["lm_head"])) on the model,
   save_pretrained(save_compressed=True): the checkpoint the tool writes.
2. `llama_fp8 export -q SCHEME` on MODEL_DIR: every tensor must be byte-identical to the tool's (names, dtypes, shapes,
   bytes), and config.json's quantization_config must name the same format and weight arguments.
3. The tool's checkpoint decompressed by compressed-tensors (the registry's compressor for its format, decompress()) into a
   plain bf16 checkpoint: `llama_fp8 dump -q bf16` on it, `dump -q SCHEME` on MODEL_DIR and `dump -q checkpoint` on the
   tool's checkpoint must give bit-identical logits and layer residuals.
4. transformers' eager bf16 forward of the decompressed checkpoint: top-1 equal on every row, every logit within 2 bf16 ulps
   of its row's largest |logit| (the bf16 forward pass's GEMM summation order, README; a normwise bound, see below).
5. The edges of tests/wformat_edges.py must be present in the tool's output (else this check would prove less than it says):
   fused NVFP4 global scales that differ between o_proj and q/k/v, the E4M3 eps scale 0.125, E8M0 code 0, signed-zero codes.
For each preset with quantized activations (NVFP4 calibrated on SCALES' windows, MXFP4, MXFP8):
6. `llama_fp8 export -q nvfp4|mxfp4|mxfp8 [--scales SCALES]` == the tool's checkpoint, byte for byte (input_global_scale included);
7. the quantize-dequantize of every Linear input: the library's forward_quantize (the module's own arguments and global scale) on
   the activations transformers feeds each Linear == `llama_fp8 quant --format F [--global-scale g]` dequantized in NumPy, bit for bit;
8. `dump -q SCHEME` on the source == `dump -q checkpoint` on the tool's checkpoint, bit for bit, and transformers' forward of the
   tool's (fake-quantized) model within 2 bf16 ulps of each row's largest logit, top-1 equal.
With --write-golden FILE: sha256 of every tensor of the tool's checkpoints and of the logits, for the CI check (no torch)."""
import glob, hashlib, json, os, shutil, subprocess, sys
import numpy as np, torch, transformers, compressed_tensors, llmcompressor
from safetensors.torch import load_file, save_file

B, M, W, ids, SC, TXT = sys.argv[1:7]
golden = sys.argv[8] if sys.argv[7:8] == ["--write-golden"] else None
import lc_common
from lc_common import check, tensors, raw, same
run = lc_common.runner(B, "wformats_run")
def dump(model, q, out): return lc_common.dump(run, model, ids, q, out)

PRESETS = [("w4a16", "W4A16"), ("nvfp4a16", "NVFP4A16"), ("mxfp4a16", "MXFP4A16"), ("mxfp8a16", "MXFP8A16")]

def compare_hf(hf, ours, scheme, what):
    hfb = hf.view(torch.int16).numpy().view(np.uint16); ob = (ours.view(np.uint32) >> 16).astype(np.uint16)
    hff, of = hf.float().numpy(), ours
    # a GEMM's summation order moves its outputs by rounding errors relative to the magnitude of the sums, so the bound is
    # normwise: per row, |transformers - llama_fp8| <= 2 bf16 ulps of the row's largest |logit| (the edited weights make
    # activations of ~60, where one flipped bf16 rounding in a residual reaches the logits of later positions)
    ulp_row = np.exp2(np.floor(np.log2(np.abs(of).max(axis=1))) - 7)
    worst = float((np.abs(hff - of).max(axis=1) / ulp_row).max()); top1 = bool((hff.argmax(1) == of.argmax(1)).all())
    check(top1 and worst <= 2, f"wformats_vs_transformers_{scheme}", f"{int((hfb == ob).sum())} of {hfb.size} logits bit-identical to transformers "
          f"{transformers.__version__} {what}, the rest within {worst:g} bf16 ulps of their row's largest logit, top-1 equal")

lines = []
for scheme, preset in PRESETS:
    lib = os.path.join(W, "lc_" + scheme); ours = os.path.join(W, "ex_" + scheme); deq = os.path.join(W, "deq_" + scheme)
    for d in (lib, ours, deq): shutil.rmtree(d, ignore_errors=True)
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    model = transformers.AutoModelForCausalLM.from_pretrained(M, dtype=torch.bfloat16)
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=preset, ignore=["lm_head"]))
    model.save_pretrained(lib, save_compressed=True)
    del model
    run("export", "-m", M, "-q", scheme, "-o", ours)
    a, b = tensors(lib), tensors(ours)
    diff = sorted(k for k in set(a) | set(b) if k not in a or k not in b or a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or raw(a[k]) != raw(b[k]))
    qa = json.load(open(lib + "/config.json"))["quantization_config"]; qb = json.load(open(ours + "/config.json"))["quantization_config"]
    wa, wb = qa["config_groups"]["group_0"]["weights"], qb["config_groups"]["group_0"]["weights"]
    cfg_ok = qa["format"] == qb["format"] and all(wa.get(k) == wb.get(k) for k in ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "scale_dtype"))
    check(not diff and cfg_ok, f"wformats_export_{scheme}",
          f"{len(a)} tensors of llama_fp8 export == llm-compressor {llmcompressor.__version__} {preset} (compressed-tensors {compressed_tensors.__version__}), "
          f"byte for byte; format {qa['format']}" + (f"; differ: {diff[:4]}" if diff else "") + ("" if cfg_ok else f"; config {wb} vs {wa}"))

    # decompress the tool's checkpoint with compressed-tensors into a plain bf16 one
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    comp = BaseCompressor.get_value_from_registry(qa["format"])
    sch = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**wa))
    os.makedirs(deq)
    plain = {}
    for k in sorted(a):
        if ".layers." in k and "_proj." in k:
            base, leaf = k.rsplit(".", 1)
            if base + ".weight" in plain: continue
            sd = {n.rsplit(".", 1)[1]: a[n] for n in a if n.rsplit(".", 1)[0] == base}
            plain[base + ".weight"] = comp.decompress(sd, sch)["weight"].to(torch.bfloat16).contiguous()
        else: plain[k] = a[k]
    save_file(plain, deq + "/model.safetensors", metadata={"format": "pt"})
    cfg = json.load(open(M + "/config.json")); json.dump(cfg, open(deq + "/config.json", "w"))
    d_lib = dump(deq, "bf16", os.path.join(W, "dd_" + scheme)); d_src = dump(M, scheme, os.path.join(W, "ds_" + scheme))
    d_ck = dump(lib, "checkpoint", os.path.join(W, "dc_" + scheme))
    check(same(d_lib, d_src) and same(d_lib, d_ck), f"wformats_forward_{scheme}",
          f"logits and {len(d_lib) - 1} layer residuals bit-identical: -q {scheme} on the bf16 source, -q checkpoint on llm-compressor's checkpoint, "
          f"-q bf16 on compressed-tensors' decompression of it")
    hf_m = transformers.LlamaForCausalLM.from_pretrained(deq, dtype=torch.bfloat16, attn_implementation="eager").eval()
    with torch.no_grad(): hf = hf_m(torch.tensor([[int(i) for i in ids.split(",")]])).logits[0]
    compare_hf(hf, d_lib[0], scheme, "eager bf16 on the decompressed weights")

    # the edges are really there
    if scheme == "nvfp4a16":
        g = {k: float(v[0]) for k, v in a.items() if k.endswith("weight_global_scale")}
        fused = g["model.layers.0.self_attn.k_proj.weight_global_scale"] == g["model.layers.0.self_attn.q_proj.weight_global_scale"] != g["model.layers.0.self_attn.o_proj.weight_global_scale"]
        eps = any(bool((v.to(torch.float32) == 0.125).any()) for k, v in a.items() if k.endswith("weight_scale"))
        neg0 = any(bool(((v & 0x0F) == 0x08).any()) for k, v in a.items() if k.endswith("weight_packed"))
        check(fused and eps and neg0, "wformats_edges_nvfp4", f"q/k/v share a global scale that o_proj's differs from: {fused}; an eps scale 0.125: {eps}; code 0x8 (-0): {neg0}")
    if scheme == "mxfp4a16":
        z = any(bool((v == 0).any()) for k, v in a.items() if k.endswith("weight_scale"))
        check(z, "wformats_edges_mxfp4", f"an E8M0 scale code 0 (2^-127): {z}")
    if golden:
        for k in sorted(a): lines.append(f"tensor {scheme} {k} {hashlib.sha256(raw(a[k])).hexdigest()}")
        lines.append(f"logits {scheme} {hashlib.sha256((d_lib[0].view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest()}")
# ---- presets with quantized activations ----
from compressed_tensors.quantization.lifecycle.forward import forward_quantize
from datasets import Dataset
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
import ml_dtypes
text_ids = [int(x) for x in open(TXT).read().split()]
sc = json.load(open(SC)); seq = sc["seq"]
wins = [[128000] + text_ids[st:st + seq - 1] for st in sc["window_starts"]]
test_ids = [int(i) for i in ids.split(",")]
E2M1 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6], np.float32)
for scheme, preset in (("nvfp4", "NVFP4"), ("mxfp4", "MXFP4"), ("mxfp8", "MXFP8")):
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    lib = os.path.join(W, "lc_" + scheme); ours = os.path.join(W, "ex_" + scheme)
    for d in (lib, ours): shutil.rmtree(d, ignore_errors=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(M, dtype=torch.bfloat16, attn_implementation="eager")
    kw = {}
    if scheme == "nvfp4":   # static_minmax over the calibration windows, one batch each, in order
        proc = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")))   # unused: the dataset holds ids
        kw = dict(dataset=Dataset.from_dict({"input_ids": wins, "attention_mask": [[1] * len(w) for w in wins]}), processor=proc,
                  num_calibration_samples=len(wins), max_seq_length=seq, batch_size=1, shuffle_calibration_samples=False)
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=preset, ignore=["lm_head"]), **kw)
    caps = {}
    def hook(name):
        def h(mod, args):
            x = args[0].detach().clone()
            caps[name] = (x, forward_quantize(mod, x.clone(), "input", mod.quantization_scheme.input_activations).detach(),
                          float(getattr(mod, "input_global_scale", torch.tensor([1.0]))))
        return h
    hooks = [mod.register_forward_pre_hook(hook(n)) for n, mod in model.named_modules() if ".layers." in n and n.endswith("_proj")]
    with torch.no_grad(): hf = model(torch.tensor([test_ids])).logits[0]
    for h in hooks: h.remove()
    model.save_pretrained(lib, save_compressed=True)
    del model
    run("export", "-m", M, "-q", scheme, "--scales", SC, "-o", ours)
    a, b = tensors(lib), tensors(ours)
    diff = sorted(k for k in set(a) | set(b) if k not in a or k not in b or a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or raw(a[k]) != raw(b[k]))
    qa = json.load(open(lib + "/config.json"))["quantization_config"]; qb = json.load(open(ours + "/config.json"))["quantization_config"]
    ia, ib = qa["config_groups"]["group_0"]["input_activations"], qb["config_groups"]["group_0"]["input_activations"]
    cfg_ok = qa["format"] == qb["format"] and all(ia.get(k) == ib.get(k) for k in ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "scale_dtype"))
    check(not diff and cfg_ok, f"wformats_export_{scheme}",
          f"{len(a)} tensors of llama_fp8 export == llm-compressor {llmcompressor.__version__} {preset}" + (" calibrated on the same windows" if scheme == "nvfp4" else "") +
          f", byte for byte; format {qa['format']}" + (f"; differ: {diff[:4]}" if diff else "") + ("" if cfg_ok else f"; input_activations {ib} vs {ia}"))
    bad, n_el = [], 0
    for name, (x, qd, g) in sorted(caps.items()):
        x2 = x.reshape(-1, x.shape[-1]); np.save(W + "/xa.npy", x2.view(torch.int16).numpy().view(np.uint16))
        cmd = ["quant", W + "/xa.npy", "--format", scheme, "-o", W + "/xq"] + (["--global-scale", repr(g)] if scheme == "nvfp4" else [])
        run(*cmd)
        q, s_ = np.load(W + "/xq.q.npy"), np.load(W + "/xq.scale.npy")
        v = q.view(ml_dtypes.float8_e4m3fn).astype(np.float32) if scheme == "mxfp8" else E2M1[q & 7] * np.where(q & 8, -1, 1).astype(np.float32)
        e = np.repeat(s_, x2.shape[1] // s_.shape[1], axis=1).astype(np.float32)
        if scheme == "nvfp4": e = (e / np.float32(g)).astype(np.float32)
        mine = torch.from_numpy((v * e).astype(np.float32)).to(torch.bfloat16)
        n_el += mine.numel()
        if not torch.equal(mine.view(torch.int16), qd.reshape(-1, x.shape[-1]).view(torch.int16)): bad.append(name)
    check(not bad and len(caps) == 14, f"wformats_act_qdq_{scheme}", f"{len(caps)} Linear inputs ({n_el} activations) of transformers' forward: compressed-tensors "
          f"forward_quantize == llama_fp8 quant --format {scheme} dequantized, bit for bit" + (f"; differ: {bad[:3]}" if bad else ""))
    r1 = subprocess.run([B, "dump", "-m", M, "-q", scheme, "--scales", SC, "--ids", ids, "-o", W + "/ds_" + scheme], capture_output=True, text=True)
    r2 = subprocess.run([B, "dump", "-m", lib, "--ids", ids, "-o", W + "/dc_" + scheme], capture_output=True, text=True)
    if r1.returncode or r2.returncode: check(False, f"wformats_forward_{scheme}", r1.stderr.strip() + r2.stderr.strip()); continue
    da = [np.load(f"{W}/ds_{scheme}/{f}") for f in ("logits.npy", "layer_00.npy", "layer_01.npy")]
    db = [np.load(f"{W}/dc_{scheme}/{f}") for f in ("logits.npy", "layer_00.npy", "layer_01.npy")]
    check(same(da, db), f"wformats_forward_{scheme}", f"logits and layers bit-identical: -q {scheme} on the bf16 source, -q checkpoint on llm-compressor's checkpoint")
    compare_hf(hf, da[0], scheme, "on llm-compressor's fake-quantized model (compressed-tensors QDQ of weights and inputs)")
    if golden:
        for k in sorted(a): lines.append(f"tensor {scheme} {k} {hashlib.sha256(raw(a[k])).hexdigest()}")
        lines.append(f"logits {scheme} {hashlib.sha256((da[0].view(np.uint32) >> 16).astype(np.uint16).tobytes()).hexdigest()}")

if golden:
    with open(golden + ".tmp", "w") as g:
        g.write(f"# tests/wformats_check.py --write-golden: llm-compressor {llmcompressor.__version__} (compressed-tensors {compressed_tensors.__version__}, torch "
                f"{torch.__version__}) oneshot presets W4A16, NVFP4A16, MXFP4A16, MXFP8A16, NVFP4 (calibrated on the windows of the scales file beside this one), MXFP4, MXFP8 on `llama_fp8 synth --shape tiny128` edited by tests/wformat_edges.py.\n"
                f"# tensor SCHEME NAME SHA256: bytes of each tensor of the tool's save_compressed checkpoint; logits SCHEME: bf16 bytes of llama_fp8 -q bf16 "
                f"on compressed-tensors' decompression of it (ids below)\nids {ids}\n")
        g.write("\n".join(lines) + "\n")
    os.replace(golden + ".tmp", golden)
    print(f"# wrote {golden}")
lc_common.done()
