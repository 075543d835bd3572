#!/usr/bin/env python3
"""Goldens for emu's row quantization (tests/test_emu_quant.c), computed with PyTorch following the
semantics of the tool each scheme copies (NUMERICS.md §3):
  token   vLLM dynamic_per_token_scaled_fp8_quant: s = max(absmax/fmax, 1/(fmax*512)); q = fp8(clamp(x/s))
  tensor  vLLM static per-tensor: q = fp8(clamp(x * (1/s)))
  tdyn    vLLM dynamic per-tensor: s = absmax/fmax, then as tensor
  channel compressed-tensors 0.20 (fp32 model): s = absmax/fmax, 0 -> eps; q = fp8(torch.clamp(w/s + 0))
  group   vLLM per_token_group_quant_fp8 (1x128): s = max(absmax, 1e-10)/fmax; q = fp8(clamp(x/s))
  block   128x128 weight blocks, the same per block
  i8tok   vLLM dynamic_scaled_int8_quant: s = absmax/127; q = round(x * (127/absmax)) clamped to ±127
  i8chan  compressed-tensors 0.20 int8 channel: s = absmax/127.5, 0 -> eps; q = round(clamp(w/s + 0, -128, 127))
Inputs come from an xorshift64 generator shared with the C test; only FNV-1a digests of the codes and
of the scale bits are committed (tests/emu_quant_goldens.h).
Run: python3 tests/emu_gen_quant_goldens.py > tests/emu_quant_goldens.h
"""
import torch
M64 = (1 << 64) - 1

def gen(seed, n):
    s, out = seed, []
    for _ in range(n):
        s ^= (s << 13) & M64; s ^= s >> 7; s ^= (s << 17) & M64
        mant = ((s >> 16) & 0xFFFFFF) - 0x800000           # exact in fp32
        ex = ((s >> 40) % 16) - 8                           # magnitudes 2^-8 .. 2^7
        out.append(mant / float(0x800000) * 2.0 ** ex)
    return torch.tensor(out, dtype=torch.float32)

def fnv(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & M64
    return h

def fp8(fmt): return torch.float8_e4m3fn if fmt == 3 else torch.float8_e5m2
def fmax(fmt): return 448.0 if fmt == 3 else 57344.0

def cast(v, fmt):
    m = torch.tensor(fmax(fmt), dtype=torch.float32)
    return torch.maximum(-m, torch.minimum(v, m)).to(fp8(fmt)).view(torch.uint8)

def ct_scale(a, half_range):
    """compressed-tensors 0.20 calculate_qparams (symmetric): absmax / (range/2); exact zeros -> fp32 eps"""
    s = a / half_range
    return torch.where(s == 0, torch.tensor(torch.finfo(torch.float32).eps, dtype=torch.float32), s)

def ct_cast(v, fmt):
    """compressed-tensors _quantize: scaled += zero_point (0), torch.clamp, .to(float8)"""
    m = fmax(fmt)
    return torch.clamp(v + torch.zeros((), dtype=torch.float32), -m, m).to(fp8(fmt)).view(torch.uint8)

def quant(kind, x, fmt):
    M, K = x.shape
    f32 = torch.float32
    fm = torch.tensor(fmax(fmt), dtype=f32)
    if kind == "token":
        a = x.abs().amax(dim=1, keepdim=True)
        s = torch.maximum(a / fm, torch.tensor(1.0, dtype=f32) / (fm * torch.tensor(512.0, dtype=f32)))
        return cast(x / s, fmt), s.flatten()
    if kind == "tensor":
        s = torch.tensor(0.0123, dtype=f32)   # also the s0 of ties()
        return cast(x * (torch.tensor(1.0, dtype=f32) / s), fmt), s.reshape(1)
    if kind == "tdyn":
        s = x.abs().amax() / fm
        return cast(x * (torch.tensor(1.0, dtype=f32) / s), fmt), s.reshape(1)
    if kind == "channel":
        s = ct_scale(x.abs().amax(dim=1, keepdim=True), fm)
        return ct_cast(x / s, fmt), s.flatten()
    if kind == "group":
        G = 128; ng = (K + G - 1) // G
        q = torch.empty(M, K, dtype=torch.uint8); ss = torch.empty(M, ng, dtype=f32)
        for g in range(ng):
            xs = x[:, g * G:(g + 1) * G]
            s = torch.clamp(xs.abs().amax(dim=1, keepdim=True), min=1e-10) / fm
            q[:, g * G:(g + 1) * G] = cast(xs / s, fmt); ss[:, g] = s.flatten()
        return q, ss.flatten()
    if kind == "block":
        B = 128; nbn = (M + B - 1) // B; nbk = (K + B - 1) // B
        q = torch.empty(M, K, dtype=torch.uint8); ss = torch.empty(nbn, nbk, dtype=f32)
        for i in range(nbn):
            for j in range(nbk):
                w = x[i * B:(i + 1) * B, j * B:(j + 1) * B]
                s = ct_scale(w.abs().amax(), fm)
                q[i * B:(i + 1) * B, j * B:(j + 1) * B] = ct_cast(w / s, fmt); ss[i, j] = s
        return q, ss.flatten()
    if kind == "i8tok":
        a = x.abs().amax(dim=1, keepdim=True)
        s = a / torch.tensor(127.0, dtype=f32)
        inv = torch.where(a > 0, torch.tensor(127.0, dtype=f32) / a, torch.zeros_like(a))
        return torch.clamp(torch.round(x * inv), -127, 127).to(torch.int8).view(torch.uint8), s.flatten()
    if kind == "i8chan":
        s = ct_scale(x.abs().amax(dim=1, keepdim=True), torch.tensor(127.5, dtype=f32))
        q = torch.round(torch.clamp(x / s + torch.zeros((), dtype=f32), -128, 127))
        return q.to(torch.int8).view(torch.uint8), s.flatten()

def ties(fmt):
    """One row that sits on FP8 rounding midpoints after scaling by s0 = 0.0123: x = f32(mid·s0) with
    its bits moved by -2..+2, for every pair of neighbouring codes; first element 448·s0 (sets absmax).
    Division and multiplication by the reciprocal round differently here: the inputs that tell them apart."""
    import numpy as np
    s0 = np.float32(0.0123)
    top = 0x7E if fmt == 3 else 0x7B
    vals = torch.arange(256, dtype=torch.uint8).view(fp8(fmt)).float().numpy()
    out = [np.float32(np.float32(fmax(fmt)) * s0)]
    for c in range(top):
        mid = np.float32((float(vals[c]) + float(vals[c + 1])) / 2)
        b = np.array([np.float32(mid * s0)], dtype=np.float32).view(np.int32)[0]
        for d in range(-2, 3):
            out.append(np.array([b + d], dtype=np.int32).view(np.float32)[0])
    return torch.tensor(np.array(out, dtype=np.float32)).reshape(1, -1)

KINDS = ["token", "tensor", "tdyn", "channel", "group", "block", "i8tok", "i8chan"]
print("/* generated by tests/emu_gen_quant_goldens.py with torch %s (FNV-1a of codes and of scale bits) */" % torch.__version__)
print("typedef struct { const char *kind; int M, K; emu_dtype fmt; uint64_t seed, q_fnv, s_fnv; } emu_quant_golden;")
print("static const emu_quant_golden emu_quant_goldens[] = {")
seed = 12345
for kind in KINDS:
    for fmt in ((3, 4) if not kind.startswith("i8") else (5,)):
        for (M, K) in ((3, 100), (130, 300)):
            seed = (seed * 6364136223846793005 + 1442695040888963407) & M64
            x = gen(seed, M * K).reshape(M, K)
            x[1, :] = 0                                       # an all-zero row: the scale guards
            q, s = quant(kind, x, fmt)
            print('    {"%s", %d, %d, %d, 0x%016xull, 0x%016xull, 0x%016xull},' % (
                kind, M, K, fmt, seed, fnv(q.contiguous().numpy().tobytes()), fnv(s.contiguous().view(torch.int32).numpy().tobytes())))
for kind in ("token", "tensor", "channel", "group"):
    for fmt in (3, 4):
        x = ties(fmt)
        q, s = quant(kind, x, fmt)
        print('    {"%s", %d, %d, %d, 0x%016xull, 0x%016xull, 0x%016xull},' % (
            kind, 1, x.shape[1], fmt, 0, fnv(q.contiguous().numpy().tobytes()), fnv(s.contiguous().view(torch.int32).numpy().tobytes())))
print("};")
