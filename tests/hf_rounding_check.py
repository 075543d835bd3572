#!/usr/bin/env python3
"""Executable statement of where Hugging Face bf16 inference rounds (see README.d/hf.md).

Builds a small random LlamaForCausalLM (GQA 6/3, head_dim 24 so the attention scale 1/sqrt(24)
is not a power of two, llama3 rope_scaling), runs it in bf16 with transformers' eager attention,
and re-implements the forward pass in fp32 with B() = round-to-bf16 applied exactly at the listed
points, GEMMs accumulated in double and rounded once. Prints the fraction of bit-identical logits.
Expected (transformers 5.23.0, torch 2.15.0 CPU): >= 0.999, max |diff| one bf16 ulp of a logit.
Pass --drop NAME to remove one rounding point and watch agreement collapse.
Usage: python3 tests/hf_rounding_check.py [--drop rope|cossin|rmsinner|scale|siluup|probs | --all]
"""
import copy, sys, tempfile
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ALL = ["", "rope", "cossin", "rmsinner", "scale", "siluup", "probs"]
drops = ALL if sys.argv[1:] == ["--all"] else [sys.argv[2] if sys.argv[1:2] == ["--drop"] else ""]
torch.manual_seed(0)
H, KV, D, L, EPS = 6, 3, 24, 2, 1e-5
cfg = LlamaConfig(vocab_size=300, hidden_size=72, intermediate_size=200, num_hidden_layers=L,
                  num_attention_heads=H, num_key_value_heads=KV, head_dim=D, rms_norm_eps=EPS,
                  rope_theta=500000.0, max_position_embeddings=128, tie_word_embeddings=False,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                  attn_implementation="eager")
m = LlamaForCausalLM(cfg).eval()
for p in m.parameters():
    torch.nn.init.normal_(p, std=0.2)
# Load the way users load a bf16 model. (Not model.to(torch.bfloat16): that also rounds the RoPE
# inv_freq buffer to bf16, which from_pretrained(dtype=torch.bfloat16) does not do.)
with tempfile.TemporaryDirectory() as d:
    m.save_pretrained(d)                                   # fp32 storage
    m = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").eval()  # point 0: weights B()
assert m.model.rotary_emb.inv_freq.dtype == torch.float32
ids = torch.tensor([[1, 5, 9, 33, 299, 100, 7, 8, 20, 21, 150, 3]])
with torch.no_grad():
    out = m(ids).logits[0].float()
    out32 = copy.deepcopy(m).float()(ids).logits[0]        # same weights, fp32 everywhere

def B(t):                                                  # round fp32 -> bf16 (RNE), back to fp32
    return t.to(torch.bfloat16).float()
def I(t):                                                  # identity: a dropped rounding point
    return t
def gemm(x, w):                                            # bf16 GEMM: exact-ish accumulate, one B
    return B((x.double() @ w.double().T).float())
def rot(x):
    return torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1)

def rms(x, w, drop):                                       # point 2: B(w * B(x * rsqrt(mean(x^2)+eps)))
    v = x.pow(2).mean(-1, keepdim=True)
    return B(w * (I if drop == "rmsinner" else B)(x * torch.rsqrt(v + EPS)))


def reference(drop):
    """HF's bf16 forward re-done in fp32 with B() at the listed points (minus `drop`)."""
    W = {k: v.float() for k, v in m.state_dict().items()}
    T = ids.shape[1]
    inv = m.model.rotary_emb.inv_freq                          # fp32, modeling_rope_utils llama3
    f = torch.arange(T).float()[:, None] * inv[None]
    emb = torch.cat([f, f], -1)
    cs = I if drop == "cossin" else B                          # point 4: cos/sin rounded to bf16
    cos, sin = cs(emb.cos()), cs(emb.sin())
    x = W["model.embed_tokens.weight"][ids[0]]                 # point 1
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"], drop)
        q = gemm(h, W[p + "self_attn.q_proj.weight"]).view(T, H, D).transpose(0, 1)   # point 3
        k = gemm(h, W[p + "self_attn.k_proj.weight"]).view(T, KV, D).transpose(0, 1)
        v = gemm(h, W[p + "self_attn.v_proj.weight"]).view(T, KV, D).transpose(0, 1)
        r = I if drop == "rope" else B                         # point 5: B(B(q*cos) + B(rot(q)*sin))
        q = B(r(q * cos) + r(rot(q) * sin))
        k = B(r(k * cos) + r(rot(k) * sin))
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        s = (q.double() @ k.double().transpose(1, 2)).float()
        s = B((I if drop == "scale" else B)(s) * D ** -0.5)    # point 6: B(B(q.k) * scale)
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))  # point 7
        a = (I if drop == "probs" else B)(torch.softmax(s, -1))  # point 8: fp32 softmax, then B
        o = B((a.double() @ v.double()).float()).transpose(0, 1).reshape(T, H * D)         # point 9
        x = B(x + gemm(o, W[p + "self_attn.o_proj.weight"]))   # points 10, 11
        h = rms(x, W[p + "post_attention_layernorm.weight"], drop)
        g, u = gemm(h, W[p + "mlp.gate_proj.weight"]), gemm(h, W[p + "mlp.up_proj.weight"])
        su = torch.nn.functional.silu(g) * u if drop == "siluup" else B(torch.nn.functional.silu(g)) * u
        x = B(x + gemm(B(su), W[p + "mlp.down_proj.weight"]))  # points 12, 13
    return gemm(rms(x, W["model.norm.weight"], drop), W["lm_head.weight"])  # point 14


for drop in drops:
    ref = reference(drop)
    print(f"drop={drop or 'none'}: bit-identical logits {(ref == out).float().mean().item():.4f}, "
          f"max |diff| {(ref - out).abs().max().item():.3g}, max |logit| {out.abs().max().item():.3g}, "
          f"rms diff / rms(bf16 - fp32) {(ref - out).pow(2).mean().sqrt() / (out - out32).pow(2).mean().sqrt():.3f}")
