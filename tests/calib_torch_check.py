#!/usr/bin/env python3
"""Oracle for what `llama_fp8 calibrate` observes: Hugging Face transformers' LlamaForCausalLM in
bf16 (eager attention), run on the same calibration windows, with hooks at the same points:
  qkv     = input of q_proj (shared by k_proj, v_proj)      o       = input of o_proj
  gate_up = input of gate_proj (shared by up_proj)          down    = input of down_proj
  lm_head = input of lm_head (all rows)                     k       = keys after RoPE (apply_rotary_pos_emb)
  v       = output of v_proj
The minmax observer's absmax must equal max |x| over all windows. llama_fp8's bf16 forward rounds
where HF rounds (tests/hf_rounding_check.py: 99.94% of logits bit-identical, the rest 1-ulp flips
from fp32 accumulation order), so an absmax may differ by a bf16 rounding flip: tolerance 1 bf16
ulp = 2^-7 relative (values are bf16; 2^-8 is half an ulp, a flip moves one whole ulp).

The other observers are recomputed from the same hooked tensors (each window one batch) with the
reference code of tests/gen_calib_goldens.py (llm-compressor's ema / mse on compressed-tensors,
numpy's percentile): these must agree exactly too (same tolerance).

usage: calib_torch_check.py MODEL_DIR IDS.txt minmax.json [ema.json ema-legacy.json mse.json percentile.json]
  (IDS.txt: text ids without BOS; every file from the same windows, observer as named)
"""
import json
import sys

import torch
import transformers.models.llama.modeling_llama as ml
from transformers import LlamaForCausalLM


def f32(x):  # the file prints float32 values with %.9g: round back to float32
    return float(torch.tensor(x, dtype=torch.float32))


def main():
    mdir, ipath = sys.argv[1:3]
    files = {json.load(open(p))["observer"]: json.load(open(p)) for p in sys.argv[3:]}
    sc = files["minmax"]
    ids = [int(t) for t in open(ipath).read().split()]
    L = sc["seq"] - 1
    model = LlamaForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16, attn_implementation="eager").eval()
    bos = model.config.bos_token_id
    nl = model.config.num_hidden_layers
    seen = {}  # key -> list of per-window float32 tensors (one window = one observer batch)

    def rec(key, t):
        seen.setdefault(key, []).append(t.detach().float().reshape(-1).clone())

    hooks = []
    for l, layer in enumerate(model.model.layers):
        for name, mod, site in ((f"q{l}", layer.self_attn.q_proj, "qkv"), (f"o{l}", layer.self_attn.o_proj, "o"),
                                (f"g{l}", layer.mlp.gate_proj, "gate_up"), (f"d{l}", layer.mlp.down_proj, "down")):
            hooks.append(mod.register_forward_pre_hook(lambda m, a, l=l, site=site: rec((l, site), a[0])))
        hooks.append(layer.self_attn.v_proj.register_forward_hook(lambda m, a, out, l=l: rec((l, "v"), out)))
    hooks.append(model.lm_head.register_forward_pre_hook(lambda m, a: rec((-1, "lm_head"), a[0])))
    # keys after RoPE: wrap apply_rotary_pos_emb and tell the layers apart by call order
    orig = ml.apply_rotary_pos_emb
    calls = [0]

    def wrapped(q, k, *args, **kw):
        qe, ke = orig(q, k, *args, **kw)
        rec((calls[0] % nl, "k"), ke)
        calls[0] += 1
        return qe, ke
    ml.apply_rotary_pos_emb = wrapped
    with torch.no_grad():
        for s in sc["window_starts"]:
            x = torch.tensor([[bos] + ids[s:s + L]])
            model(x)
    ml.apply_rotary_pos_emb = orig

    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    from gen_calib_goldens import mse_min_max, moving_average, absmax
    fails = 0
    for obs, sc in files.items():
        if obs == "minmax":
            ref = {k: max(float(t.abs().max()) for t in ts) for k, ts in seen.items()}
        elif obs == "ema-legacy":
            ref = {k: absmax(*moving_average([torch.aminmax(t) for t in ts])) for k, ts in seen.items()}
        elif obs == "ema":   # llm-compressor today: helpers.lerp(start, end, w) = start * (1.0 - w) + end * w on bf16 tensors
            def lerp_avg(pairs):
                r = None
                for mn, mx in pairs:
                    mn, mx = mn.to(torch.bfloat16), mx.to(torch.bfloat16)
                    r = (mn, mx) if r is None else (r[0] * (1.0 - 0.01) + mn * 0.01, r[1] * (1.0 - 0.01) + mx * 0.01)
                return r[0].float(), r[1].float()
            ref = {k: absmax(*lerp_avg([torch.aminmax(t) for t in ts])) for k, ts in seen.items()}
        elif obs == "mse":
            ref = {k: absmax(*moving_average([mse_min_max(t.clone()) for t in ts])) for k, ts in seen.items()}
        else:
            ref = {k: max(float(np.float32(np.percentile(np.abs(t.numpy()).astype(np.float64), sc["percentile"]))) for t in ts)
                   for k, ts in seen.items()}
        fails += compare(obs, sc, ref, nl)
    return 1 if fails else 0


def compare(obs, sc, amax, nl):
    ours = {}
    for l, e in enumerate(sc["activations"]["layers"]):
        for site, v in e.items():
            ours[(l, site)] = f32(v)
        ours[(l, "k")] = f32(sc["kv"]["k"][l])
        ours[(l, "v")] = f32(sc["kv"]["v"][l])
    ours[(-1, "lm_head")] = f32(sc["activations"]["lm_head"])
    bad = 0
    worst = 0.0
    for key, want in sorted(amax.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        got = ours[key]
        rel = abs(got - want) / want
        worst = max(worst, rel)
        if rel > 2.0 ** -7:
            bad += 1
            print("  layer %d %s: llama_fp8 %.9g, transformers %.9g" % (key[0], key[1], got, want))
    exact = sum(1 for k, w in amax.items() if ours[k] == w)
    print("%s calib_%s_vs_transformers: %d sites, %d bit-identical, worst relative difference %.3g (tol 2^-7)"
          % ("ok" if not bad and len(amax) == 6 * nl + 1 else "FAIL", obs, len(amax), exact, worst))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
