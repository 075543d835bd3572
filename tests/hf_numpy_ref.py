#!/usr/bin/env python3
"""An independent second implementation of the Llama forward pass in NumPy (+ ml_dtypes for bf16),
with the same command line as `llama_fp8 dump`, used to check that the bounds in tests/test_hf.c
can be met by an implementation that is not PyTorch (other GEMM library and summation order, other
exp/cos/sin/sqrt). tests/test_hf_numpy.sh runs tests/test_hf.c against it.

    tests/hf_numpy_ref.py dump -m tests/models/NAME --ids 1,2,3 -q fp32|bf16 -o OUTDIR
    tests/hf_numpy_ref.py dump -m stories260K.bin --tokenizer tok512.bin --ids 1,2,3 -q fp32|bf16 -o OUTDIR

Reads config.json (rope_parameters as transformers 5 writes it, or the older rope_scaling +
rope_theta) and model.safetensors or the sharded files via model.safetensors.index.json.
bf16 mode rounds exactly where transformers 5.23 does (README.d/hf.md).
"""
import argparse, json, math, os, struct, sys
import numpy as np
import ml_dtypes

BF16 = ml_dtypes.bfloat16
# Deliberate bugs, for showing that tests/test_hf.c catches them (tests/test_hf_numpy.sh):
# HF_NUMPY_MUTATE=name[,name]: bf16 rounding points dropped: rope cossin rmsinner scale siluup probs;
# fp32 errors: nollama3 (ignore rope_scaling), theta (rope_theta 10000), eps (rms_norm_eps 1e-5),
# interleaved (RoPE on pairs (2i, 2i+1), Meta's layout, instead of HF's rotate-half).
MUT = set(filter(None, os.environ.get("HF_NUMPY_MUTATE", "").split(",")))
DT = {"F32": np.float32, "F16": np.float16, "BF16": BF16}


def load_safetensors(path, out):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        buf = f.read()
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(buf[a:b], dtype=DT[t["dtype"]]).reshape(t["shape"])


def load(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    for f in files:
        load_safetensors(os.path.join(d, f), w)
    return cfg, w


def load_llama2c(path):
    """A llama2.c checkpoint as HF config + tensors: Q/K rows permuted from Meta's interleaved RoPE
    order to HF's rotate-half order; tied classifier unless the file has its own."""
    raw = open(path, "rb").read()
    dim, hid, L, H, KV, V, S = struct.unpack("7i", raw[:28])
    shared, V, hs = V > 0, abs(V), dim // H
    f = np.frombuffer(raw, np.float32, offset=28)
    off = 0
    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        off += n
        return f[off - n:off].reshape(shape)
    perm = lambda a, n: a.reshape(n, hs // 2, 2, dim).transpose(0, 2, 1, 3).reshape(n * hs, dim)
    emb, att = take(V, dim), take(L, dim)
    wq, wk, wv, wo = take(L, H * hs, dim), take(L, KV * hs, dim), take(L, KV * hs, dim), take(L, dim, H * hs)
    ffn, w1, w2, w3, fin = take(L, dim), take(L, hid, dim), take(L, dim, hid), take(L, hid, dim), take(dim)
    take(S * hs // 2); take(S * hs // 2)                      # unused RoPE tables
    w = {"model.embed_tokens.weight": emb, "model.norm.weight": fin}
    if not shared:
        w["lm_head.weight"] = take(V, dim)
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": att[l], p + "post_attention_layernorm.weight": ffn[l],
                  p + "self_attn.q_proj.weight": perm(wq[l], H), p + "self_attn.k_proj.weight": perm(wk[l], KV),
                  p + "self_attn.v_proj.weight": wv[l], p + "self_attn.o_proj.weight": wo[l],
                  p + "mlp.gate_proj.weight": w1[l], p + "mlp.down_proj.weight": w2[l], p + "mlp.up_proj.weight": w3[l]})
    cfg = dict(hidden_size=dim, intermediate_size=hid, num_hidden_layers=L, num_attention_heads=H,
               num_key_value_heads=KV, vocab_size=V, rms_norm_eps=1e-5, rope_theta=10000.0)
    return cfg, w


def inv_freq(cfg, hd):
    rp = cfg.get("rope_parameters") or dict(cfg.get("rope_scaling") or {}, rope_theta=cfg.get("rope_theta", 10000.0))
    theta = np.float32(10000.0 if "theta" in MUT else rp.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    inv = (np.float32(1) / theta ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd))).astype(np.float32)
    if rp.get("rope_type", rp.get("type", "default")) == "llama3" and "nollama3" not in MUT:
        factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        wavelen = np.float32(2 * math.pi) / inv
        scaled = np.where(wavelen > old / lo, inv / np.float32(factor), inv).astype(np.float32)
        smooth = ((np.float32(old) / wavelen - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)
        smoothed = ((1 - smooth) * scaled / np.float32(factor) + smooth * scaled).astype(np.float32)
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv


def forward(cfg, w, ids, bf16):
    B = (lambda x: np.asarray(x, np.float32).astype(BF16).astype(np.float32)) if bf16 else (lambda x: np.asarray(x, np.float32))
    I = lambda x: np.asarray(x, np.float32)
    Bm = lambda name: I if name in MUT else B                 # a rounding point, unless mutated away
    W = lambda n: B(w[n].astype(np.float32))                 # bf16 mode: weights rounded RNE
    gemm = lambda x, m: B(x @ W(m).T)                         # fp32 accumulation (sgemm), one rounding
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or D // H
    eps, T, L = np.float32(1e-5 if "eps" in MUT else cfg["rms_norm_eps"]), len(ids), cfg["num_hidden_layers"]

    def rms(x, n):
        var = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
        return B(W(n) * Bm("rmsinner")(x * (np.float32(1) / np.sqrt(var + eps))))

    f = np.arange(T, dtype=np.float32)[:, None] * inv_freq(cfg, hd)[None]
    emb = np.concatenate([f, f], -1)
    cos, sin = Bm("cossin")(np.cos(emb)), Bm("cossin")(np.sin(emb))
    rot = lambda x: np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    if "interleaved" in MUT:  # pairs (2i, 2i+1) share frequency i
        cos, sin = np.repeat(cos[:, :hd // 2], 2, -1), np.repeat(sin[:, :hd // 2], 2, -1)
        rot = lambda x: np.stack([-x[..., 1::2], x[..., 0::2]], -1).reshape(x.shape)
    scale = np.float32(hd ** -0.5)
    mask = np.triu(np.ones((T, T), bool), 1)
    x = W("model.embed_tokens.weight")[ids]
    layers = []
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, p + "input_layernorm.weight")
        q = gemm(h, p + "self_attn.q_proj.weight").reshape(T, H, hd).transpose(1, 0, 2)
        k = gemm(h, p + "self_attn.k_proj.weight").reshape(T, KV, hd).transpose(1, 0, 2)
        v = gemm(h, p + "self_attn.v_proj.weight").reshape(T, KV, hd).transpose(1, 0, 2)
        r = Bm("rope")
        q = B(r(q * cos) + r(rot(q) * sin))
        k = B(r(k * cos) + r(rot(k) * sin))
        o = np.empty((H, T, hd), np.float32)
        for hh in range(H):
            kv = hh // (H // KV)
            s = B(Bm("scale")(q[hh] @ k[kv].T) * scale)
            s = np.where(mask, -np.inf, s).astype(np.float32)
            e = np.exp(s - s.max(-1, keepdims=True))
            o[hh] = B(Bm("probs")(e / e.sum(-1, keepdims=True)) @ v[kv])
        x = B(x + gemm(o.transpose(1, 0, 2).reshape(T, H * hd), p + "self_attn.o_proj.weight"))
        h = rms(x, p + "post_attention_layernorm.weight")
        g, u = gemm(h, p + "mlp.gate_proj.weight"), gemm(h, p + "mlp.up_proj.weight")
        silu = Bm("siluup")(g / (np.float32(1) + np.exp(-g)))
        x = B(x + gemm(B(silu * u), p + "mlp.down_proj.weight"))
        layers.append(x.copy())
    head = "lm_head.weight" if "lm_head.weight" in w else "model.embed_tokens.weight"
    return gemm(rms(x, "model.norm.weight"), head), layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["dump"])
    ap.add_argument("-m", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("-q", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("-o", required=True)
    ap.add_argument("--tokenizer")
    a = ap.parse_args()
    ids = np.array([int(t) for t in a.ids.split(",")])
    cfg, w = load_llama2c(a.m) if a.m.endswith(".bin") else load(a.m)
    logits, layers = forward(cfg, w, ids, a.q == "bf16")
    os.makedirs(a.o, exist_ok=True)
    np.save(os.path.join(a.o, "logits.npy"), logits.astype(np.float32))
    for i, t in enumerate(layers):
        np.save(os.path.join(a.o, f"layer_{i:02d}.npy"), t.astype(np.float32))


if __name__ == "__main__":
    main()
