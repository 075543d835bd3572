#!/usr/bin/env python3
"""Oracle for `llama_fp8 stats`: the same chunks through transformers' bf16 eager LlamaForCausalLM,
Linear inputs captured by forward pre-hooks, and every column of the report recomputed with torch's
own float8_e4m3fn cast (RNE, after the clamp to ±448, as vLLM does):
  absmax; top-3 channels (largest per-channel absmax, lowest index first on ties);
  sat %  = values with |x| > the per-tensor absmax of chunk 1 (s = that / 448);
  ftz %  = nonzero values with fp8(clamp(x * (1/s))) == 0;
  SNR    = 10 log10(sum x^2 / sum (x - deq)^2) for per-tensor (x * (1/s)), per-token
           (s_t = max(rowmax / 448, 1 / (448 * 512)), x / s_t) and per-channel (s_c = chunk colmax / 448).
Tolerances from the printing: absmax %.4g (relative 5e-4), sat/ftz %.4f (5e-5), SNR %.2f (5e-3), plus
1e-9 for double summation order; channel indices exact (activations equal bit for bit: see
tests/calib_torch_check.py).

usage: stats_torch_check.py MODEL_DIR IDS_WITH_BOS.txt CTX CHUNKS STATS_OUTPUT.txt
"""
import math
import re
import sys

import torch
from transformers import LlamaForCausalLM


def fq(y):  # fp8(clamp(y, ±448)) dequantized, torch's own cast
    return torch.clamp(y, -448.0, 448.0).to(torch.float8_e4m3fn).to(torch.float32)


def main():
    mdir, ipath, ctx, nch, spath = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    ids = [int(t) for t in open(ipath).read().split()]
    model = LlamaForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16, attn_implementation="eager").eval()
    seen = {}

    def rec(key, t):
        seen.setdefault(key, []).append(t.detach().float().reshape(-1, t.shape[-1]).clone())
    for l, layer in enumerate(model.model.layers):
        for mod, site in ((layer.self_attn.q_proj, "qkv"), (layer.self_attn.o_proj, "o"), (layer.mlp.gate_proj, "gate_up"), (layer.mlp.down_proj, "down")):
            mod.register_forward_pre_hook(lambda m, a, l=l, site=site: rec((str(l), site), a[0]))
    model.lm_head.register_forward_pre_hook(lambda m, a: rec(("-", "lm_head"), a[0]))
    with torch.no_grad():
        for c in range(nch):
            model(torch.tensor([ids[c * ctx:(c + 1) * ctx]]))

    rows = {}
    for line in open(spath):
        m = re.match(r"^(\d+|-)\s+(qkv|o|gate_up|down|lm_head)\s+(\S+)\s+(\d+:\S+) (\d+:\S+) (\d+:\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line)
        if m:
            rows[(m.group(1), m.group(2))] = m.groups()[2:]
    fails = 0
    if len(rows) != len(seen):
        print("FAIL stats_rows: %d rows in the report, %d sites hooked" % (len(rows), len(seen)))
        return 1
    for key, chunks in seen.items():
        r = rows[key]
        s_amax = float(chunks[0].abs().max())
        s = torch.tensor(s_amax, dtype=torch.float32) / 448.0
        inv = 1.0 / s
        n = sat = ftz = 0
        sig = et = ek = ec = 0.0
        cmax_all = torch.zeros(chunks[0].shape[1])
        for x in chunks:
            cmax_all = torch.maximum(cmax_all, x.abs().max(dim=0).values)
            n += x.numel()
            sat += int((x.abs() > s_amax).sum())
            dq = fq(x * inv) * s
            ftz += int(((x != 0) & (dq == 0)).sum())
            xd = x.double()
            sig += float((xd * xd).sum())
            et += float(((dq.double() - xd) ** 2).sum())
            st = torch.clamp(x.abs().max(dim=1, keepdim=True).values / 448.0, min=1.0 / (448.0 * 512.0))
            ek += float(((fq(x / st) * st).double() - xd).pow(2).sum())
            sc = x.abs().max(dim=0, keepdim=True).values / 448.0
            dc = torch.where(sc > 0, fq(x / torch.where(sc > 0, sc, torch.ones_like(sc))) * sc, torch.zeros_like(x))
            ec += float((dc.double() - xd).pow(2).sum())
        amax = float(cmax_all.max())
        order = sorted(range(len(cmax_all)), key=lambda k: (-float(cmax_all[k]), k))[:3]
        snr = [10 * math.log10(sig / e) if e > 0 else math.inf for e in (et, ek, ec)]
        checks = [
            ("absmax", abs(float(r[0]) - amax) <= 5e-4 * amax, r[0], amax),
            ("top_channels", [int(t.split(":")[0]) for t in r[1:4]] == order, r[1:4], order),
            ("sat", abs(float(r[4]) - 100.0 * sat / n) <= 5e-5 + 1e-9, r[4], 100.0 * sat / n),
            ("ftz", abs(float(r[5]) - 100.0 * ftz / n) <= 5e-5 + 1e-9, r[5], 100.0 * ftz / n),
            ("snr_tensor", abs(float(r[6]) - snr[0]) <= 5e-3 + 1e-9, r[6], snr[0]),
            ("snr_token", abs(float(r[7]) - snr[1]) <= 5e-3 + 1e-9, r[7], snr[1]),
            ("snr_channel", abs(float(r[8]) - snr[2]) <= 5e-3 + 1e-9, r[8], snr[2]),
        ]
        bad = [(name, got, want) for name, ok, got, want in checks if not ok]
        if bad:
            fails += 1
            print("FAIL stats_layer%s_%s_vs_torch: %s" % (key[0], key[1], bad))
        else:
            print("ok stats_layer%s_%s_vs_torch" % key)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
