#!/usr/bin/env python3
"""Goldens for every quantize step of the FP8 / INT8 schemes (tests/test_schemes.c, tests/schemes_qw.c).

Run from the repository root:   LLAMA_FP8_DATA=../shared/data python3 tests/gen_scheme_goldens.py
(LLAMA_FP8_DATA locates stories260K for tests/golden/scheme_stories260K.txt; without it that file is kept.)
Writes tests/golden/scheme_<case>.safetensors. Each file holds the input "x" (F32 or BF16), the
expected codes "q" (U8 = FP8 bit patterns, or I8) and the expected scales "scale" (as the tool stores
them: F32 for vLLM activations, the weight dtype for compressed-tensors weights); "__metadata__"
names the function under test, its parameters and the tool that produced the golden ("oracle").

Two kinds of oracle:
  * compressed-tensors (installed package, called as llm-compressor calls it): weights. The observer
    llm-compressor uses for weights by default (llmcompressor/observers/min_max.py,
    MemorylessMinMaxObserver) takes amin/amax over the reduced dims — exact in any dtype — and hands
    them to compressed_tensors.quantization.utils.calculate_qparams; the checkpoint bytes come from
    compressed_tensors.compressors.naive_quantized.base.FloatQuantizationCompressor.compress
    (IntQuantizationCompressor for INT8), which calls quantization.lifecycle.forward.quantize. We call
    exactly those two library functions on CPU (on a Hopper GPU with Triton installed the library
    dispatches `_quantize` to a Triton kernel that divides in fp32 instead; see README.d/sch.md).
  * vLLM (GPU-only, not installable here): a line-by-line PyTorch re-implementation of the CUDA
    kernels, cited per function below. CUDA's fminf/fmaxf return the non-NaN operand; torch.fmin /
    torch.fmax have the same semantics, torch.clamp does not, so the re-implementation uses fmin/fmax.
    CUDA fp32 '/' and '*' (nvcc without --use_fast_math) are IEEE round-to-nearest like torch on CPU.
    The final float -> fp8 cast (vLLM: __nv_cvt_float_to_fp8(..., __NV_SATFINITE, __NV_E4M3) after
    the clamp) is RNE; torch's .to(float8_e4m3fn) is RNE too and the clamp makes saturation moot.
E5M2 is not supported by compressed-tensors (num_bits=8 float is always E4M3) nor instantiated by
vLLM's CUDA quant kernels (VLLM_DISPATCH_FP8_TYPES: e4m3fn, and e4m3fnuz on ROCm); E5M2 goldens
apply the same formulas with fmax = 57344 and .to(torch.float8_e5m2) and say so ("oracle").
"""
import os, sys, json
import numpy as np
import torch
from safetensors.torch import load_file
import compressed_tensors
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams
from compressed_tensors.compressors.naive_quantized.base import (
    FloatQuantizationCompressor, IntQuantizationCompressor)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
F32, BF16 = torch.float32, torch.bfloat16
FP8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
FMAX = {"e4m3": 448.0, "e5m2": 57344.0}
CT = "compressed-tensors %s (%s)" % (compressed_tensors.__version__, "calculate_qparams + %s.compress, CPU")
VLLM = "torch %s re-implementation of vLLM %s" % (torch.__version__.split("+")[0], "%s")
rng = np.random.default_rng(20261124)
written = []


def save(name, meta, **tensors):
    meta = {k: str(v) for k, v in meta.items()}
    t = {k: v.contiguous() for k, v in tensors.items()}
    for k, v in list(t.items()):
        if v.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            t[k] = v.view(torch.uint8)
    path = os.path.join(OUT, "scheme_%s.safetensors" % name)
    # safetensors layout written by hand, tensors in name order, so that regenerating gives the same
    # bytes (safetensors.torch.save_file's order of equal-dtype tensors is not stable across runs)
    DT = {F32: "F32", BF16: "BF16", torch.uint8: "U8", torch.int8: "I8"}
    hdr, blobs, off = {}, [], 0
    for k in sorted(t):
        raw = t[k].reshape(-1).view(torch.uint8).numpy().tobytes()
        hdr[k] = {"dtype": DT[t[k].dtype], "shape": list(t[k].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little")); f.write(h); f.write(b"".join(blobs))
    written.append((name, os.path.getsize(path)))


# ---------------------------------------------------------------------------------------------
# Inputs: gaussian rows at assorted magnitudes plus the rows that break quantizers.
def activations(M, K, with_zero_row=True):
    x = rng.standard_normal((M, K)).astype(np.float32)
    x *= np.float32(2.0) ** rng.integers(-6, 7, size=(M, 1)).astype(np.float32)   # magnitudes 2^-6..2^6
    x[1, ::37] *= 100.0                              # row with outlier channels (LLM.int8 style)
    x[2] *= np.float32(1e-5)                         # tiny row: absmax/448 < 1/(448*512), the scale floor
    if with_zero_row:
        x[3] = 0.0                                   # all-zero row
    x[4, :] = rng.standard_normal(K).astype(np.float32) * np.float32(1e-3)
    x[4, 7] = 300.0                                  # one outlier: the rest of the row falls into subnormals / flushes to 0
    x[5, ::2] = -0.0                                 # negative zeros
    x[6] = np.float32(rng.integers(-448, 449, K)) / 4  # x/s lands on many exact halves -> RNE ties
    x[6, 0] = 448.0 / 4
    return torch.from_numpy(x)


def craft_recip(s, fmt, n, dtype=F32):
    """Values x (of dtype) for which fp8(x / s) != fp8(x * fp32(1/s)): x/s sits within an fp32 ulp of
    an FP8 midpoint, so the two ways of scaling (vLLM divides for per-token, multiplies by the
    reciprocal for static per-tensor) round to different codes. Found by scanning every midpoint."""
    codes = torch.arange(0, 0x7F if fmt == "e4m3" else 0x7C, dtype=torch.uint8).view(FP8[fmt]).double()
    mids = ((codes[:-1] + codes[1:]) / 2)
    sd = float(f32(s))
    out = []
    for m in mids.tolist():
        x0 = torch.tensor(m * sd, dtype=torch.float64).to(dtype)
        bits = x0.view(torch.int32 if dtype == F32 else torch.int16)
        for d in range(-3, 4):
            x = (bits + d).view(dtype).float()
            a = conv(x / f32(s), fmt).view(torch.uint8)
            b = conv(x * (f32(1.0) / f32(s)), fmt).view(torch.uint8)
            if a != b:
                out.append(float(x))
    out = torch.tensor(out, dtype=F32)
    return out[torch.randperm(len(out), generator=torch.Generator().manual_seed(1))[:n]] if len(out) > n else out


def weights(N, K, dtype):
    """Weight rows for the compressed-tensors goldens, rounded to dtype."""
    w = rng.standard_normal((N, K)).astype(np.float32) * 0.02
    w *= np.float32(2.0) ** rng.integers(-3, 4, size=(N, 1)).astype(np.float32)
    w[1, ::29] *= 50.0                                # outlier channels
    w[2] = 0.0                                        # all-zero row: scale 0 -> eps of the scale dtype
    w[3] *= np.float32(1e-4)                          # tiny row: absmax/448 ~ 1e-9, below fp32 eps
    w[4] = rng.standard_normal(K).astype(np.float32) * np.float32(1e-4)
    w[4, 3] = -5.0                                    # one outlier: the rest of the row goes subnormal in FP8
    w[5, ::3] = -0.0
    return torch.from_numpy(w).to(dtype)


def tie_rows(W, dtype, rows):
    """Overwrite `rows` of W (bf16) with values for which the library's bf16 division w/s rounds to a
    value different from the fp32 quotient's FP8 rounding (double rounding bites) or lands exactly on
    an FP8 midpoint; found by search so that each such row has many of them."""
    K = W.shape[1]
    for r in rows:
        amax = torch.tensor(rng.uniform(0.5, 4.0), dtype=F32).to(dtype)
        s = (amax / torch.tensor(448.0, dtype=dtype))             # what calculate_qparams computes
        cand = (torch.from_numpy(rng.uniform(-1, 1, 200000).astype(np.float32)) * amax.float()).to(dtype)
        q_bf = (cand / s).clamp(-448, 448).to(torch.float8_e4m3fn).float()          # bf16 division
        q_32 = (cand.float() / s.float()).clamp(-448, 448).to(torch.float8_e4m3fn).float()
        pick = cand[q_bf != q_32][: K - 1]
        row = torch.zeros(K, dtype=dtype)
        row[0] = amax
        row[1:1 + len(pick)] = pick
        W[r] = row
    return W


# ---------------------------------------------------------------------------------------------
# vLLM re-implementations (csrc/quantization/w8a8/fp8/common.cu, common.cuh, per_token_group_quant.cu,
# csrc/quantization/w8a8/int8/scaled_quant.cu).
def f32(v):
    return torch.tensor(v, dtype=F32)


def absmax_rows(x):  # fmaxf(acc, fabsf(v)) from 0: NaN never wins
    return torch.where(torch.isnan(x), torch.zeros_like(x), x.abs()).amax(dim=-1)


def conv(y, fmt):  # common.cuh scaled_fp8_conversion: r = fmaxf(-max, fminf(x, max)); cvt RNE
    m = f32(FMAX[fmt])
    return torch.fmax(-m, torch.fmin(y, m)).to(FP8[fmt])


def vllm_per_token(x, fmt, scale_ub=None):
    """dynamic_per_token_scaled_fp8_quant_kernel_strided: token_scale = fminf(absmax, *scale_ub);
    token_scale = fmaxf(token_scale / fp8_max, min_scaling_factor = 1.0f/(fp8_max*512.f));
    q = scaled_fp8_conversion<false>(x, token_scale)  i.e. x / token_scale (division)."""
    fmax = f32(FMAX[fmt])
    a = absmax_rows(x)
    if scale_ub is not None:
        a = torch.fmin(a, f32(scale_ub))
    smin = f32(1.0) / (fmax * f32(512.0))
    s = torch.fmax(a / fmax, smin)
    return conv(x / s[:, None], fmt), s


def vllm_static(x, s, fmt):
    """scaled_fp8_quant_kernel_strided: inv_scale = 1.0f / (*scale); q = conversion<true>(x, inv) = x * inv."""
    inv = f32(1.0) / f32(s)
    return conv(x * inv, fmt)


def vllm_dynamic_tensor(x, fmt):
    """segmented_max_reduction_strided: scale = max over rows of absmax_row / fp8_max (memset 0 first);
    scaled_fp8_quant_kernel_strided_dynamic: reciprocal_scale = 1.0f / scale; x * reciprocal."""
    s = (absmax_rows(x) / f32(FMAX[fmt])).max()
    return vllm_static(x, s.item(), fmt), s


def vllm_group(x, G, fmt, eps=1e-10):
    """per_token_group_quant.cu ComputeGroupScale: absmax = fmaxf(eps, |x|...); y_s = absmax / max_8bit;
    QuantizeGroup: q = fminf(fmaxf(x / y_s, min_8bit), max_8bit) (division; fp32 scales, no UE8M0)."""
    M, K = x.shape
    fmax = f32(FMAX[fmt])
    ng = (K + G - 1) // G
    q = torch.empty(M, K, dtype=FP8[fmt]); s = torch.empty(M, ng, dtype=F32)
    for g in range(ng):
        xg = x[:, g * G:(g + 1) * G]
        a = torch.fmax(absmax_rows(xg), f32(eps))
        ys = a / fmax
        s[:, g] = ys
        q[:, g * G:(g + 1) * G] = torch.fmin(torch.fmax(xg / ys[:, None], -fmax), fmax).to(FP8[fmt])
    return q, s


def vllm_int8_token(x):
    """dynamic_scaled_int8_quant_kernel: scale = absmax / 127.f; inv_s = absmax == 0 ? 0 : 127.f / absmax;
    q = cvt.rni.sat.s8.f32(x * inv_s) (round half to even, saturate to [-128, 127])."""
    a = absmax_rows(x)
    s = a / f32(127.0)
    inv = torch.where(a == 0, f32(0.0), f32(127.0) / a)
    v = x * inv[:, None]
    v = torch.where(torch.isnan(v), torch.zeros_like(v), v)   # PTX cvt float->int: NaN gives 0
    return torch.round(v).clamp(-128, 127).to(torch.int8), s


# ---------------------------------------------------------------------------------------------
# compressed-tensors, called as llm-compressor calls it.
def ct_args(strategy, num_bits=8, typ="float", block=None):
    kw = dict(num_bits=num_bits, type=typ, strategy=strategy, symmetric=True, dynamic=False)
    if block:
        kw["block_structure"] = block
    return QuantizationArgs(**kw)


def ct_minmax(W, strategy, block=None):
    """llmcompressor MemorylessMinMaxObserver: amin / amax over the reduced dims (exact)."""
    if strategy == "channel":
        return W.amin(dim=1, keepdim=True), W.amax(dim=1, keepdim=True)
    if strategy == "tensor":
        return W.amin(), W.amax()
    bn, bk = block
    N, K = W.shape
    nbn, nbk = -(-N // bn), -(-K // bk)
    Wp = torch.zeros(nbn * bn, nbk * bk, dtype=W.dtype)
    Wp[:N, :K] = W                       # zero padding: cannot change min<=0<=max
    Wb = Wp.reshape(nbn, bn, nbk, bk).transpose(1, 2)
    return Wb.amin(dim=(-1, -2)), Wb.amax(dim=(-1, -2))


def ct_quant(W, strategy, typ="float", block=None):
    args = ct_args(strategy, typ=typ, block=block)
    lo, hi = ct_minmax(W, strategy, block)
    scale, zp = calculate_qparams(lo, hi, args)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    comp = FloatQuantizationCompressor if typ == "float" else IntQuantizationCompressor
    sd = comp.compress({"weight": W, "weight_scale": scale, "weight_zero_point": zp}, scheme)
    return sd["weight"], scale


def formula_quant(W, strategy, fmt, arith, block=None):
    """The compressed-tensors formula re-implemented for cases the library cannot run (E5M2) and for
    fp32 arithmetic on a bf16 weight: scale = absmax / fmax in `arith` dtype, zero -> eps(arith),
    q = fp8(clamp(w / scale + 0)) with the division in `arith` (the + 0 is the library's zero point,
    which turns -0.0 into +0.0)."""
    Wa = W.to(arith)
    fmax = torch.tensor(FMAX[fmt], dtype=arith)
    if strategy == "channel":
        a = Wa.abs().amax(dim=1, keepdim=True)
    elif strategy == "tensor":
        a = Wa.abs().amax().reshape(1)
    else:
        lo, hi = ct_minmax(Wa, "block", block)
        a = torch.max(lo.abs(), hi.abs())
    s = a / fmax
    s = torch.where(s == 0, torch.tensor(torch.finfo(arith).eps, dtype=arith), s)
    if strategy == "block":
        bn, bk = block
        sx = s.repeat_interleave(bn, 0).repeat_interleave(bk, 1)[:W.shape[0], :W.shape[1]]
    else:
        sx = s
    y = Wa / sx + torch.zeros((), dtype=arith)   # the library adds the (zero) weight_zero_point: -0 -> +0
    return y.clamp(-FMAX[fmt], FMAX[fmt]).to(FP8[fmt]), s


# ---------------------------------------------------------------------------------------------
# One file per input: tensors x... (inputs), q_<case> and s_<case> (expected codes and scales), and in
# the metadata "cases": a JSON list of {name, func, x, fmt, params..., oracle}.
class Bundle:
    def __init__(self, name):
        self.name, self.t, self.cases = name, {}, []

    def input(self, key, x):
        self.t[key] = x
        return x

    def case(self, name, x, q, s, same_as=None, **meta):
        """q, s: expected codes and scales; same_as: reuse the tensors of an earlier case instead."""
        key = same_as or name
        if same_as is None:
            self.t["q_" + name], self.t["s_" + name] = q, s.reshape(-1).contiguous()
        self.cases.append(dict(name=name, x=x, q="q_" + key, s="s_" + key, **meta))

    def write(self):
        save(self.name, {"cases": json.dumps(self.cases), "generator": "tests/gen_scheme_goldens.py"}, **self.t)


def gen_vllm():
    b = Bundle("act")
    x = activations(12, 300)
    for r, (sc, fmt) in ((7, (0.0123, "e4m3")), (8, (0.0123 / 128, "e5m2"))):   # the static scales below
        c = craft_recip(sc, fmt, 300)
        x[r] = 0.0; x[r, :len(c)] = c
    x[9] = 0.0; x[9, 0] = 3.0                        # per-token row with scale fp32(3/448): division matters
    c = craft_recip(float(f32(3.0) / f32(448.0)), "e4m3", 299)
    x[9, 1:1 + len(c)] = c.clamp(-3, 3)
    b.input("x", x)
    for fmt in ("e4m3", "e5m2"):
        q, s = vllm_per_token(x, fmt)
        b.case("token_" + fmt, "x", q, s, func="emu_quant_token", fmt=fmt, scale_ub=0,
               oracle=VLLM % "dynamic_per_token_scaled_fp8_quant_kernel_strided (csrc/quantization/w8a8/fp8/common.cu)"
               + ("" if fmt == "e4m3" else "; E5M2 = same formula, fp8_max 57344 (vLLM instantiates E4M3 only)"))
    ub = 5.0   # below the absmax of the outlier rows: those rows clip at ±448
    q, s = vllm_per_token(x, "e4m3", ub)
    b.case("token_e4m3_ub", "x", q, s, func="emu_quant_token", fmt="e4m3", scale_ub=ub,
           oracle=VLLM % "dynamic_per_token_scaled_fp8_quant_kernel_strided with scale_ub")
    for fmt in ("e4m3", "e5m2"):
        s_in = 0.0123 if fmt == "e4m3" else 0.0123 / 128    # 1/s inexact: x*(1/s) != x/s for some x
        q = vllm_static(x, s_in, fmt)
        nd = int((conv(x / f32(s_in), fmt).view(torch.uint8) != q.view(torch.uint8)).sum())
        b.case("tensor_" + fmt, "x", q, f32(s_in), func="emu_quant_tensor", fmt=fmt, codes_differing_from_division=nd,
               oracle=VLLM % "scaled_fp8_quant_kernel_strided (static_scaled_fp8_quant, common.cu)")
        q, s = vllm_dynamic_tensor(x, fmt)
        b.case("tensor_dynamic_" + fmt, "x", q, s, func="emu_quant_tensor_dynamic", fmt=fmt,
               oracle=VLLM % "dynamic_scaled_fp8_quant: segmented_max_reduction_strided + scaled_fp8_quant_kernel_strided_dynamic")
    q, s = vllm_int8_token(x)
    b.case("int8_token", "x", q, s, func="emu_quant_int8_token",
           oracle=VLLM % "dynamic_scaled_int8_quant_kernel (csrc/quantization/w8a8/int8/scaled_quant.cu)")

    xg = activations(7, 3 * 128)
    xg[0, 128:256] = 0.0                              # one all-zero group: scale = eps / 448
    b.input("xg", xg)
    for fmt in ("e4m3", "e5m2"):
        q, s = vllm_group(xg, 128, fmt)
        b.case("group_" + fmt, "xg", q, s, func="emu_quant_group", fmt=fmt, G=128,
               oracle=VLLM % "per_token_group_quant_8bit_kernel (csrc/quantization/w8a8/fp8/per_token_group_quant.cu), eps 1e-10")
    b.write()

    # NaN / zero-scale edge cases: CUDA fminf/fmaxf drop NaN, so vLLM writes ±448, never NaN codes.
    b = Bundle("vllm_edge")
    b.input("xn", torch.tensor([[1.0, float("nan"), -2.0, 0.5]], dtype=F32))
    q, s = vllm_per_token(b.t["xn"], "e4m3")
    b.case("nan_token", "xn", q, s, func="emu_quant_token", fmt="e4m3", scale_ub=0,
           oracle=VLLM % "dynamic_per_token_scaled_fp8_quant_kernel_strided: NaN input -> fminf(NaN,448)=448 -> 0x7E")
    xng = torch.zeros(2, 256, dtype=F32); xng[0, :] = torch.linspace(-3, 3, 256); xng[0, 5] = float("nan")
    xng[1, :] = 1.0; xng[1, 200] = float("nan")
    b.input("xng", xng)
    q, s = vllm_group(xng, 128, "e4m3")
    b.case("nan_group", "xng", q, s, func="emu_quant_group", fmt="e4m3", G=128,
           oracle=VLLM % "per_token_group_quant.cu QuantizeGroup: NaN -> fminf(fmaxf(NaN,-448),448) = -448 -> 0xFE")
    q, s = vllm_int8_token(xng)
    b.case("nan_int8_token", "xng", q, s, func="emu_quant_int8_token",
           oracle=VLLM % "dynamic_scaled_int8_quant_kernel: NaN * inv -> cvt.rni.sat.s8.f32(NaN) = 0")
    b.input("xz", torch.zeros(2, 8, dtype=F32))
    q, s = vllm_dynamic_tensor(b.t["xz"], "e4m3")
    b.case("zero_tensor_dynamic", "xz", q, s, func="emu_quant_tensor_dynamic", fmt="e4m3",
           oracle=VLLM % "dynamic_scaled_fp8_quant on an all-zero tensor: scale 0, 1/0 = inf, 0*inf = NaN, fminf/fmaxf -> 448")
    b.write()


def gen_ct():
    """compressed-tensors weights. emu_quant_channel / _block / _int8_channel are the fp32 arithmetic
    path (the library on an fp32 weight); quant_weight(q, scale, W, fmt, granularity, bf16_arith) is the
    lead's llama_fp8.c function: granularity 0 channel, 1 tensor, 2 block 128x128."""
    G = {"channel": 0, "tensor": 1, "block": 2}
    for strat in ("channel", "block"):
        b = Bundle("weights_" + strat)
        if strat == "block":
            wb = tie_rows(weights(136, 160, BF16), BF16, rows=[6, 7])
            # bf16-valued weights stored as BF16 (half the bytes) but handed to the library, and to the
            # functions under test, as an F32 tensor ("dtype": "f32"): the arithmetic is fp32
            w32 = b.input("w_f32", weights(136, 160, BF16)).float()
            strats, blk = ["block"], [128, 128]
        else:
            wb = tie_rows(weights(24, 256, BF16), BF16, rows=[6, 7, 8])
            w32 = b.input("w_f32", weights(24, 256, F32))
            strats, blk = ["channel", "tensor"], None
        b.input("w_bf16", wb)
        for st in strats:
            q, s = ct_quant(wb, st, block=blk)
            b.case("qw_bf16_%s_e4m3" % st, "w_bf16", q, s, func="quant_weight", dtype="bf16", fmt="e4m3", granularity=G[st],
                   bf16_arith=1, oracle=CT % "FloatQuantizationCompressor")
            q, s = ct_quant(w32, st, block=blk)
            b.case("qw_f32_%s_e4m3" % st, "w_f32", q, s, func="quant_weight", dtype="f32", fmt="e4m3", granularity=G[st],
                   bf16_arith=0, oracle=CT % "FloatQuantizationCompressor")
            if st == "channel":
                b.case("channel_f32", "w_f32", None, None, same_as="qw_f32_channel_e4m3", func="emu_quant_channel", fmt="e4m3",
                       oracle=CT % "FloatQuantizationCompressor")
                qi, si = ct_quant(w32, st, typ="int")
                b.case("int8_channel_f32", "w_f32", qi, si, func="emu_quant_int8_channel",
                       oracle=CT % "IntQuantizationCompressor")
                b.case("qw_f32_channel_i8", "w_f32", None, None, same_as="int8_channel_f32", func="quant_weight",
                       dtype="f32", fmt="i8", granularity=0, bf16_arith=0, oracle=CT % "IntQuantizationCompressor")
                qi, si = ct_quant(wb, st, typ="int")
                b.case("qw_bf16_channel_i8", "w_bf16", qi, si, func="quant_weight", dtype="bf16", fmt="i8",
                       granularity=0, bf16_arith=1, oracle=CT % "IntQuantizationCompressor")
            if st == "block":
                b.case("block_f32", "w_f32", None, None, same_as="qw_f32_block_e4m3", func="emu_quant_block", fmt="e4m3", BN=128, BK=128,
                       oracle=CT % "FloatQuantizationCompressor")
            q, s = formula_quant(wb, st, "e4m3", F32, blk)
            b.case("qw_bf16_%s_e4m3_f32arith" % st, "w_bf16", q, s, func="quant_weight", dtype="bf16", fmt="e4m3",
                   granularity=G[st], bf16_arith=0,
                   oracle="torch re-implementation of the compressed-tensors formula in fp32 (scale = fp32 absmax/448, zero -> 2^-23)")
            # the re-implementation equals the library where both exist
            qc, sc = ct_quant(wb, st, block=blk)
            qf, sf = formula_quant(wb, st, "e4m3", BF16, blk)
            assert torch.equal(qc.view(torch.uint8), qf.view(torch.uint8)) and torch.equal(sc.reshape(-1), sf.reshape(-1)), st
            qc, sc = ct_quant(w32, st, block=blk)
            qf, sf = formula_quant(w32, st, "e4m3", F32, blk)
            assert torch.equal(qc.view(torch.uint8), qf.view(torch.uint8)) and torch.equal(sc.reshape(-1), sf.reshape(-1)), st
            q, s = formula_quant(wb, st, "e5m2", BF16, blk)
            b.case("qw_bf16_%s_e5m2" % st, "w_bf16", q, s, func="quant_weight", dtype="bf16", fmt="e5m2", granularity=G[st],
                   bf16_arith=1, oracle="torch re-implementation of the compressed-tensors formula with fmax 57344 "
                   "(the library quantizes 8-bit floats to E4M3 only); checked equal to the library for E4M3")
        b.write()


def gen_kv():
    """vLLM FP8 KV cache (csrc/quantization/w8a8/fp8/nvidia/quant_utils.cuh, used by reshape_and_cache /
    reshape_and_cache_flash through scaled_convert): store  __nv_cvt_float_to_fp8(float(x) / scale,
    __NV_SATFINITE, fmt)  (no separate clamp: SATFINITE maps |v| > max and ±inf to ±max, NaN to 0x7F);
    load (paged attention, bf16 model)  __float2bfloat16(float(fp8) * scale), or float(fp8) * scale for
    an fp32 cache consumer. Re-implemented with torch: fp32 division, clamp(±max) then RNE cast (same
    result as SATFINITE for every input here), fp32 multiply, RNE to bf16."""
    b = Bundle("kv")
    x = activations(8, 160).to(BF16)
    x[0, 0], x[0, 1], x[0, 2] = 1e4, -1e4, float("inf")      # saturate at ±max after / scale
    # bf16 inputs where x / 0.3 and x * (1/0.3) round to different codes (only 1 for E4M3, 29 for E5M2
    # among all bf16 values at this scale; none at 0.0371): the test can tell division from reciprocal
    c = torch.cat([craft_recip(0.3, "e4m3", 80, BF16), craft_recip(0.3, "e5m2", 80, BF16)])
    x[7] = 0.0; x[7, :len(c)] = c.to(BF16)
    b.input("x", x)
    for fmt in ("e4m3", "e5m2"):
        for sc in (1.0, 0.0371, 0.3):
            v = x.float() / f32(sc)
            q = v.clamp(-FMAX[fmt], FMAX[fmt]).to(FP8[fmt])
            deq = q.float() * f32(sc)
            name = "kv_%s_s%s" % (fmt, str(sc).replace(".", "p"))
            b.case(name, "x", q, f32(sc), func="kv_quantize", fmt=fmt,
                   oracle=VLLM % "scaled_vec_conversion (csrc/quantization/w8a8/fp8/nvidia/quant_utils.cuh): "
                   "fp8 = cvt_satfinite(x / scale); load = bf16(float(fp8) * scale)")
            b.t["deq_bf16_" + name] = deq.to(BF16)
            b.t["deq_f32_" + name] = deq
    b.write()


# ---------------------------------------------------------------------------------------------
# GEMM epilogue: D = round_out(s_a[m] * fp32(s_b[n] * acc)) with acc the exact dot product rounded once
# to fp32. Every E4M3 x E4M3 product is a multiple of 2^-18 (subnormal 2^-9 squared) below 2^18
# (448^2 < 2^18), so a sum of K <= 2^16 of them is a multiple of 2^-18 below 2^34: 52 bits, exact in
# float64 in any order; one cast to float32 is then the single RNE rounding. INT8: the int64 sum is exact.
def rnd_codes(shape, fmt):
    c = torch.from_numpy(rng.integers(0, 256, size=shape, dtype=np.uint8))
    v = c.view(FP8[fmt]).float()
    c[~torch.isfinite(v)] = 0x38  # 1.0
    return c


def gen_gemm():
    M, N, K = 5, 7, 300
    A = rnd_codes((M, K), "e4m3"); B = rnd_codes((N, K), "e4m3")
    Af = A.view(torch.float8_e4m3fn).double(); Bf = B.view(torch.float8_e4m3fn).double()
    acc = (Af @ Bf.T).float()
    sa = torch.from_numpy(rng.uniform(0.001, 0.1, M).astype(np.float32))
    sb = torch.from_numpy(rng.uniform(0.001, 0.1, N).astype(np.float32))
    t = sb[None, :] * acc                           # fp32 multiply
    D = sa[:, None] * t                             # fp32 multiply
    meta = dict(func="emu_gemm", a_type="e4m3", b_type="e4m3", scales="row,row", accum="exact",
                oracle="torch float64 matmul (exact for E4M3, K<=2^16) -> fp32, then fp32 epilogue s_a*(s_b*acc) (CUTLASS ScaledEpilogue)")
    save("gemm_e4m3_row", meta, A=A, B=B, sa=sa, sb=sb, D=D, D_bf16=D.to(BF16))

    # block-scaled: A 1x128 groups, B 128x128 blocks; D_acc = fp32(D_acc + fp32(fp32(acc_g*sa)*sb)) in group order
    M, N, K = 3, 130, 200
    ng, nbn = -(-K // 128), -(-N // 128)
    A = rnd_codes((M, K), "e4m3"); B = rnd_codes((N, K), "e4m3")
    Af = A.view(torch.float8_e4m3fn).double(); Bf = B.view(torch.float8_e4m3fn).double()
    sa = torch.from_numpy(rng.uniform(0.001, 0.1, (M, ng)).astype(np.float32))
    sb = torch.from_numpy(rng.uniform(0.001, 0.1, (nbn, ng)).astype(np.float32))
    Dacc = torch.zeros(M, N, dtype=F32)
    for g in range(ng):
        accg = (Af[:, g * 128:(g + 1) * 128] @ Bf[:, g * 128:(g + 1) * 128].T).float()
        sbg = sb[torch.arange(N) // 128, g]
        Dacc = Dacc + (accg * sa[:, g:g + 1]) * sbg[None, :]
    meta = dict(func="emu_gemm", a_type="e4m3", b_type="e4m3", scales="block,block", accum="exact",
                oracle="torch float64 per-group matmul -> fp32, then vLLM Triton w8a8_block_fp8_matmul order "
                "(accumulator += dot * a_s * b_s, fp32)")
    save("gemm_e4m3_block", meta, A=A, B=B, sa=sa, sb=sb, D=Dacc, D_bf16=Dacc.to(BF16))

    M, N, K = 4, 6, 257
    A = torch.from_numpy(rng.integers(-127, 128, (M, K), dtype=np.int8))
    B = torch.from_numpy(rng.integers(-127, 128, (N, K), dtype=np.int8))
    acc = (A.long() @ B.long().T).float()           # |sum| < 2^24 here: exact in fp32 too
    sa = torch.from_numpy(rng.uniform(0.001, 0.1, M).astype(np.float32))
    sb = torch.from_numpy(rng.uniform(0.001, 0.1, N).astype(np.float32))
    D = sa[:, None] * (sb[None, :] * acc)
    meta = dict(func="emu_gemm", a_type="i8", b_type="i8", scales="row,row", accum="exact",
                oracle="torch int64 matmul -> fp32, fp32 epilogue s_a*(s_b*acc)")
    save("gemm_i8_row", meta, A=A, B=B, sa=sa, sb=sb, D=D, D_bf16=D.to(BF16))


# ---------------------------------------------------------------------------------------------
# Real weights: every Linear of stories260K (llama2.c, fp32), as llama_fp8 holds it (wq / wk rows
# permuted from Meta's interleaved RoPE layout to rotate-half, like load_llama2c), quantized by
# compressed-tensors on the bf16-rounded weights (what `model.to(torch.bfloat16)` + llm-compressor do)
# and on the fp32 weights. Only FNV-1a 64 digests of the codes and of the scales (as fp32 bits) are
# committed: tests/golden/scheme_stories260K.txt (the model itself stays in ../shared/data).
def fnv_np(arr):  # FNV-1a 64 over the array's bytes
    h = 0xcbf29ce484222325
    for x in np.frombuffer(arr.tobytes(), dtype=np.uint8).tolist():
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def gen_model_digests():
    data = os.environ.get("LLAMA_FP8_DATA") or os.path.join(os.path.dirname(OUT), "..", "..", "shared", "data")  # ../shared/data
    path = os.path.join(data, "stories260K", "stories260K.bin")
    if not os.path.exists(path):
        print("stories260K not found under %s: scheme_stories260K.txt not regenerated" % data)
        return
    raw = open(path, "rb").read()
    D, H, L, NH, NKV, V, S = np.frombuffer(raw[:28], dtype=np.int32).tolist()
    V = abs(V); hd = D // NH; kv = NKV * hd
    w = np.frombuffer(raw[28:], dtype=np.float32)
    off = [0]
    def take(n):
        a = w[off[0]:off[0] + n]; off[0] += n; return a
    take(V * D); take(L * D)
    wq, wk, wv, wo = take(L * D * D), take(L * kv * D), take(L * kv * D), take(L * D * D)
    take(L * D)
    w1, w2, w3 = take(L * H * D), take(L * D * H), take(L * H * D)
    def perm(m, rows):
        idx = [(r // hd) * hd + (2 * (r % hd) if r % hd < hd // 2 else 2 * (r % hd - hd // 2) + 1) for r in range(rows)]
        return m[idx]
    lines = ["# generated by tests/gen_scheme_goldens.py from %s (compressed-tensors %s, torch %s)"
             % ("stories260K/stories260K.bin", compressed_tensors.__version__, torch.__version__.split("+")[0]),
             "# layer linear granularity bf16_arith rows cols fnv1a64(codes) fnv1a64(scales as fp32 bits)"]
    for l in range(L):
        mats = {"wq": perm(wq[l * D * D:(l + 1) * D * D].reshape(D, D), D),
                "wk": perm(wk[l * kv * D:(l + 1) * kv * D].reshape(kv, D), kv),
                "wv": wv[l * kv * D:(l + 1) * kv * D].reshape(kv, D),
                "wo": wo[l * D * D:(l + 1) * D * D].reshape(D, D),
                "w_gate": w1[l * H * D:(l + 1) * H * D].reshape(H, D),
                "w_down": w2[l * D * H:(l + 1) * D * H].reshape(D, H),
                "w_up": w3[l * H * D:(l + 1) * H * D].reshape(H, D)}
        for name, m in mats.items():
            W32 = torch.from_numpy(np.array(m, dtype=np.float32))
            for strat, gran in (("channel", 0), ("tensor", 1), ("block", 2)):
                for arith in (1, 0):
                    Wx = W32.to(BF16) if arith else W32
                    q, sc = ct_quant(Wx, strat, block=[128, 128] if strat == "block" else None)
                    lines.append("%d %s %d %d %d %d %016x %016x" % (l, name, gran, arith, m.shape[0], m.shape[1],
                                 fnv_np(q.view(torch.uint8).numpy()), fnv_np(sc.float().reshape(-1).numpy())))
    with open(os.path.join(OUT, "scheme_stories260K.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("scheme_stories260K.txt: %d digests" % (len(lines) - 2))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen_vllm()
    gen_ct()
    gen_kv()
    gen_gemm()
    gen_model_digests()
    tot = 0
    for n, sz in written:
        print("%-40s %7d bytes" % ("scheme_%s.safetensors" % n, sz)); tot += sz
    print("total %d bytes in %d files" % (tot, len(written)))
