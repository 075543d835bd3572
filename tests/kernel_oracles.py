#!/usr/bin/env python3
"""Independent oracles for `llama_fp8 quant`, `llama_fp8 gemm` and `gemm --explain` (tests/test_kernel_cli.sh).

Every expected byte here is computed by NumPy, ml_dtypes and Python's fractions / integers, from the rules
as written in the specification of the commands (tests/README.md, "Kernel-checking oracles"), never by
calling llama_fp8's own code: fp32 arithmetic is np.float32 op np.float32 (IEEE single, correctly
rounded), bf16 rounding is ml_dtypes.bfloat16 (RNE), FP8 encoding is ml_dtypes.float8_e4m3fn /
float8_e5m2 (RNE; they do not saturate, so the rules' clamp is applied first), FP8 decoding is the
ml_dtypes view of the codes, exact sums are integers (a Fraction over a power-of-two denominator) rounded
to fp32 by round_f32 below.

Prints one line per check: "ok NAME: ...", "FAIL NAME: why", "skip NAME: why". Exit status 0 unless a
check failed. Environment: LLAMA_FP8 (the binary, default ./llama_fp8), KERNEL_ORACLES_ONLY (a substring:
run only the checks whose name contains it), KERNEL_ORACLES_KEEP=1 (keep the temporary directory).
Deterministic: every random input comes from a fixed seed.
"""
import math, os, re, shutil, subprocess, sys, tempfile, time
from fractions import Fraction
import numpy as np
import ml_dtypes

BIN = os.environ.get("LLAMA_FP8", "./llama_fp8")
ONLY = os.environ.get("KERNEL_ORACLES_ONLY", "")
F32 = np.float32
BF16 = ml_dtypes.bfloat16
FP8 = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2}
FMAX = {"e4m3": F32(448.0), "e5m2": F32(57344.0), "int8": F32(127.0), "int4": F32(7.0)}
CONV = {"vllm": "vllm", "ct": "compressed-tensors"}
MODELS = ["exact", "fp32", "hopper", "ada", "cublaslt", "fast"]
NFAIL = 0
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="kernel_oracles.")


def ok(name, msg=""):
    print("ok %s%s" % (name, ": " + msg if msg else ""), flush=True)


def fail(name, why):
    global NFAIL
    NFAIL += 1
    print("FAIL %s: %s" % (name, why), flush=True)


def skip(name, why):
    print("skip %s: %s" % (name, why), flush=True)


def wanted(name):
    return ONLY in name


def run(args, timeout=120):
    p = subprocess.run([BIN] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def path(name):
    return os.path.join(TMP, name)


def one_line_error(err):
    """A refusal: exactly one stderr line, starting 'llama_fp8:'."""
    lines = err.strip("\n").split("\n")
    return len(lines) == 1 and lines[0].startswith("llama_fp8:")


def f32_hex(v):
    return "0x%08x" % int(np.asarray(v, dtype=F32).view(np.uint32))


# ---------------------------------------------------------------------------------------------------
# Input files. The values the binary reads are the exact float32 values of the stored elements:
# float32 as is, bfloat16 (stored as '<u2' bits or as ml_dtypes' '<V2') and float16 widened exactly.
# ---------------------------------------------------------------------------------------------------
def as_dtype(x64, dt):
    """float64 data -> (array to save, its exact float32 values). Non-finite results of the narrowing
    (float16 overflow) become 0 unless the source was NaN on purpose."""
    if dt == "f32":
        a = x64.astype(F32)
    elif dt in ("bf16u2", "bf16V2"):
        a = x64.astype(F32).astype(BF16)
    elif dt == "f16":
        with np.errstate(over="ignore"):
            a = x64.astype(np.float16)
    else:
        raise ValueError(dt)
    v = a.astype(F32)
    bad = ~np.isfinite(v) & ~np.isnan(x64)
    if bad.any():
        a = a.copy()
        a[bad] = 0
        v = a.astype(F32)
    save = a.view(np.uint16) if dt == "bf16u2" else a
    return save, v


def save_npy(name, arr):
    p = path(name)
    np.save(p, arr)
    return p


# ---------------------------------------------------------------------------------------------------
# FP8 / INT8 encoders (the rules' element steps)
# ---------------------------------------------------------------------------------------------------
def fp8_codes(v, fmt):
    """RNE cast of float32 values that are already within ±fmax (ml_dtypes; NaN handled by callers)."""
    return np.ascontiguousarray(v, dtype=F32).astype(FP8[fmt]).view(np.uint8)


def enc_vllm(v, fmt):
    """vLLM: fmaxf(-fmax, fminf(v, fmax)) then RNE. np.fmin / np.fmax return the non-NaN operand, as C's
    fminf / fmaxf: a NaN v becomes +fmax."""
    m = FMAX[fmt]
    return fp8_codes(np.fmax(-m, np.fmin(v, m)), fmt)


def enc_vllm_group(v, fmt):
    """vLLM's per_token_group_quant clamps the other way round, fminf(fmaxf(v, -fmax), fmax): a NaN v
    becomes -fmax (the specification as amended by main 09a980d, `quant --help`)"""
    m = FMAX[fmt]
    return fp8_codes(np.fmin(np.fmax(v, -m), m), fmt)


def enc_ct(v, fmt):
    """compressed-tensors: torch.clamp(v, -fmax, fmax) (NaN passes) then .to(float8): NaN -> 0x7F."""
    m = FMAX[fmt]
    nan = np.isnan(v)
    c = np.clip(np.where(nan, F32(0), v), -m, m).astype(F32)
    q = fp8_codes(c, fmt)
    q[nan] = 0x7F
    return q


def bf16r(v):
    """round float32 values to bf16 (RNE) and back"""
    return np.asarray(v, dtype=F32).astype(BF16).astype(F32)


def absmax(x, axis=None):
    """max |x| with NaN skipped (C fmaxf from 0), float32"""
    return np.fmax.reduce(np.abs(x), axis=axis, initial=F32(0)).astype(F32)


# ---------------------------------------------------------------------------------------------------
# Quantization rules (the specification, transcribed): return (codes, scale array as written)
# ---------------------------------------------------------------------------------------------------
def tiles(M, K, gran, G):
    """lists of (scale index, row slice, col slice) for a granularity"""
    if gran in ("token", "channel"):
        return [((m, 0), slice(m, m + 1), slice(0, K)) for m in range(M)], (M, 1)
    if gran == "tensor":
        return [((0,), slice(0, M), slice(0, K))], (1,)
    if gran == "group":
        ng = -(-K // G)
        return [((m, g), slice(m, m + 1), slice(g * G, min(K, (g + 1) * G))) for m in range(M) for g in range(ng)], (M, ng)
    if gran == "block":
        nb, nk = -(-M // 128), -(-K // 128)
        return [((i, j), slice(i * 128, min(M, (i + 1) * 128)), slice(j * 128, min(K, (j + 1) * 128)))
                for i in range(nb) for j in range(nk)], (nb, nk)
    raise ValueError(gran)


def quant_vllm(x, gran, fmt, G=128, static=None, ub=0.0):
    M, K = x.shape
    fm = FMAX[fmt]
    if fmt == "int8":   # token only: s = a/127, q = rne(x * (127/a)) within ±127; zero row: s = 0, q = 0
        a = absmax(x, axis=1)
        s = (a / F32(127)).astype(F32)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            inv = np.where(a > 0, F32(127) / np.where(a > 0, a, F32(1)), F32(0)).astype(F32)
            v = (x * inv[:, None]).astype(F32)
        # 0 · inf (a zero in a row whose 127/absmax overflows) is NaN: code 0, as CUDA's cvt.rni.sat.s8.f32
        # gives for NaN (vLLM's float_to_int8_rn); not in the specification, which has no NaN case here
        q = np.clip(np.rint(np.where(np.isnan(v), F32(0), v)), -127, 127).astype(np.int8)
        return q, s.reshape(M, 1)
    if gran == "tensor":
        if static is not None:
            S = F32(static)
            inv = F32(1) / S
            return enc_vllm((x * inv).astype(F32), fmt), np.array([S], F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = F32(absmax(x) / fm)
            inv = F32(1) / s
            v = (x * inv).astype(F32)
        return enc_vllm(v, fmt), np.array([s], F32)
    q = np.zeros((M, K), np.uint8)
    tl, shape = tiles(M, K, gran, G)
    sc = np.zeros(shape, F32)
    smin = F32(1) / (fm * F32(512))
    for idx, rs, cs in tl:
        blk = x[rs, cs]
        a = F32(absmax(blk))
        if gran == "group":
            s = F32(np.fmax(a, F32(1e-10)) / fm)
        else:   # token, channel (vLLM's per-token rule on rows)
            if ub > 0:
                a = F32(np.fmin(a, F32(ub)))
            s = F32(np.fmax(F32(a / fm), smin))
        sc[idx] = s
        with np.errstate(invalid="ignore"):
            q[rs, cs] = (enc_vllm_group if gran == "group" else enc_vllm)((blk / s).astype(F32), fmt)
    return q, sc


def quant_ct(x, gran, fmt, bf16_input, G=128):
    """compressed-tensors min-max, symmetric. bf16 model: s and x/s rounded to bf16 (torch's bf16 ops:
    computed in fp32, rounded once to bf16). Zero scale -> finfo(dtype).eps."""
    M, K = x.shape
    half = {"int8": F32(127.5), "int4": F32(7.5)}.get(fmt, FMAX.get(fmt))
    eps = F32(2.0 ** -7) if bf16_input else F32(2.0 ** -23)
    q = np.zeros((M, K), np.int8 if fmt in ("int8", "int4") else np.uint8)
    tl, shape = tiles(M, K, gran, G)
    sc = np.zeros(shape, F32)
    for idx, rs, cs in tl:
        blk = x[rs, cs]
        s = F32(F32(absmax(blk)) / half)
        if bf16_input:
            s = F32(bf16r(s))
        if s == 0:
            s = eps
        sc[idx] = s
        with np.errstate(invalid="ignore", divide="ignore"):
            v = (blk / s).astype(F32)
        if bf16_input:
            v = bf16r(v)
        v = (v + F32(0)).astype(F32)            # the zero point: -0 becomes +0
        if fmt == "int8":
            q[rs, cs] = np.rint(np.clip(v, F32(-128), F32(127))).astype(np.int8)
        elif fmt == "int4":   # range [-8, 7], half-range 7.5, one code per int8 byte
            q[rs, cs] = np.rint(np.clip(v, F32(-8), F32(7))).astype(np.int8)
        else:
            q[rs, cs] = enc_ct(v, fmt)
    return q, sc


# ---------------------------------------------------------------------------------------------------
# Test matrices
# ---------------------------------------------------------------------------------------------------
def fp8_values(fmt):
    t = np.arange(256, dtype=np.uint8).view(FP8[fmt]).astype(np.float64)
    pos = np.unique(t[np.isfinite(t) & (t >= 0)])
    return pos


def tie_row(K, fmt, mult=1.0):
    """fmax at every 32nd column (so every tile's scale is 1, or `mult`), FP8 rounding midpoints elsewhere,
    alternating in sign"""
    v = fp8_values(fmt if fmt in FP8 else "e4m3")
    mids = (v[:-1] + v[1:]) / 2
    if fmt in ("int8", "int4"):
        mids = np.arange(-int(FMAX[fmt]), int(FMAX[fmt])) + 0.5
    r = np.resize(mids, K) * np.where(np.arange(K) % 2, -1, 1)
    r[::32] = float(FMAX[fmt])
    return r * mult


def matrix(M, K, seed, fmt, nan=False, ties_only=False):
    """random rows of magnitudes 1e-3..1e3, and special rows where M allows: zeros, tiny, huge, ties at
    scale 1 and 7, signed zeros mixed with small values. 7: of the odd multipliers whose products with every
    midpoint stay exact in bf16, the smallest for which x / s and x · fp32(1 / s) give different codes
    (30 of the 126 E4M3 midpoints, 30 of 123 E5M2; 3 and 5 separate none)"""
    r = np.random.default_rng(seed)
    x = r.standard_normal((M, K)) * 10.0 ** r.uniform(-3, 3, (M, 1))
    if ties_only:   # scale 7 (x / 7 and x · fp32(1/7) round differently on 30 of the midpoints) and 1
        return np.array([tie_row(K, fmt, 7.0 * (-1) ** i) if i % 3 != 2 else tie_row(K, fmt) for i in range(M)])
    special = [np.zeros(K), tie_row(K, fmt), tie_row(K, fmt, 7.0),
               r.standard_normal(K) * 1e-38, r.standard_normal(K) * 1e30,
               np.where(np.arange(K) % 3 == 0, -0.0, r.standard_normal(K) * 1e-6),
               np.where(np.arange(K) % 2 == 0, -0.0, 0.0)]
    for i, row in enumerate(special):
        if i < M - 1:
            x[(i * 7 + 1) % M] = row
    if nan:
        x[0, min(3, K - 1)] = np.nan
        if M > 1:
            x[M - 1, :] = np.nan
    return x


SHAPES = [(5, 300), (3, 1), (17, 33), (1, 128), (130, 257)]


def quant_cli(x_save, gran, fmt, conv, G=None, static=None, ub=None, name="q"):
    inp = save_npy(name + ".in.npy", x_save)
    pre = path(name)
    args = ["quant", inp, "-o", pre, "--granularity", gran, "--format", fmt]
    if conv:
        args += ["--convention", conv]
    if G is not None:
        args += ["--group", G]
    if static is not None:
        args += ["--static-scale", repr(float(static))]
    if ub is not None:
        args += ["--scale-ub", repr(float(ub))]
    rc, out, err = run(args)
    if rc != 0:
        return None, None, "exit %d: %s" % (rc, err.strip()[:300])
    try:
        q = np.load(pre + ".q.npy")
        s = np.load(pre + ".scale.npy")
    except Exception as e:   # noqa
        return None, None, "cannot read the outputs: %s" % e
    return q, s, None


def compare_quant(x, q, s, wq, ws, fmt):
    """first difference, described; None when identical"""
    if q.dtype != wq.dtype:
        return "codes dtype %s, want %s" % (q.dtype, wq.dtype)
    if q.shape != wq.shape:
        return "codes shape %s, want %s" % (q.shape, wq.shape)
    if s.dtype != F32 or s.shape != ws.shape:
        return "scale %s %s, want float32 %s" % (s.dtype, s.shape, ws.shape)
    ds = np.flatnonzero(s.view(np.uint32).ravel() != ws.view(np.uint32).ravel())
    if ds.size:
        i = ds[0]
        return "%d scales differ; first [%s]: got %r (%s), want %r (%s)" % (
            ds.size, np.unravel_index(i, ws.shape), float(s.ravel()[i]), f32_hex(s.ravel()[i]), float(ws.ravel()[i]), f32_hex(ws.ravel()[i]))
    dq = np.argwhere(q.view(np.uint8) != wq.view(np.uint8))
    if dq.size:
        m, k = dq[0]
        return "%d codes differ; first [%d, %d]: x = %r (%s), got 0x%02x, want 0x%02x" % (
            len(dq), m, k, float(x[m, k]), f32_hex(x[m, k]), int(q.view(np.uint8)[m, k]), int(wq.view(np.uint8)[m, k]))
    return None


def check_quant_family(conv, gran, fmt, dt, shapes=SHAPES, G=None, static=None, ub=None, explicit_conv=True, tag="", ties_only=False):
    name = "quant_%s_%s_%s_%s%s" % (conv, gran, fmt, dt, tag)
    if not wanted(name):
        return
    ncodes = 0
    for si, (M, K) in enumerate(shapes):
        x64 = matrix(M, K, 1000 * si + len(name), fmt, ties_only=ties_only)
        xs, x = as_dtype(x64, dt)
        bf = dt.startswith("bf16")
        if static is not None and static == "auto":
            st = F32(absmax(x) / FMAX[fmt] * F32(0.75)) or F32(1)
        else:
            st = static
        if conv == "vllm":
            wq, ws = quant_vllm(x, gran, fmt, G=G or 128, static=st, ub=ub or 0.0)
        else:
            wq, ws = quant_ct(x, gran, fmt, bf, G=G or 128)
        q, s, err = quant_cli(xs, gran, fmt, CONV[conv] if explicit_conv else None, G=G, static=st, ub=ub, name=name)
        if err:
            return fail(name, "[%d, %d]: %s" % (M, K, err))
        why = compare_quant(x, q, s, wq, ws, fmt)
        if why:
            return fail(name, "[%d, %d] %s input: %s" % (M, K, dt, why))
        ncodes += q.size
    ok(name, "%d shapes (K = %s), %d codes and every scale identical to the rule's" % (
        len(shapes), ",".join(str(k) for _, k in shapes), ncodes))


def check_quant():
    dts = ["f32", "bf16u2", "bf16V2", "f16"]
    for fmt in ("e4m3", "e5m2", "int8"):
        for dt in dts:
            check_quant_family("vllm", "token", fmt, dt, explicit_conv=(dt != "f32"))
    for fmt in ("e4m3", "e5m2"):
        check_quant_family("vllm", "token", fmt, "f32", ub=2.5, tag="_scale_ub")
        for dt in ("f32", "bf16V2", "f16"):
            check_quant_family("vllm", "tensor", fmt, dt, static="auto", tag="_static")
            check_quant_family("vllm", "tensor", fmt, dt, tag="_dynamic")
            check_quant_family("vllm", "group", fmt, dt, explicit_conv=(dt != "f32"))
            check_quant_family("vllm", "channel", fmt, dt)
        check_quant_family("vllm", "group", fmt, "f32", G=64, tag="_g64")
        check_quant_family("vllm", "group", fmt, "f32", G=100, tag="_g100")
        check_quant_family("vllm", "tensor", fmt, "f32", static=0.3, tag="_static_0.3")
        for dt in ("f32", "bf16u2"):   # rounding ties at s = 7: x · (1/s), not x / s
            check_quant_family("vllm", "tensor", fmt, dt, static=7.0, tag="_static_ties", shapes=[(3, 300), (4, 33)], ties_only=True)
            check_quant_family("vllm", "tensor", fmt, dt, tag="_dynamic_ties", shapes=[(3, 300), (4, 33)], ties_only=True)
            for gran in ("token", "group", "channel"):
                check_quant_family("vllm", gran, fmt, dt, tag="_ties", shapes=[(3, 300), (4, 33)], ties_only=True)
    # compressed-tensors groups: K a multiple of G (other K are refused, as the tool refuses them:
    # quant_ct_group_k_not_multiple)
    g128 = [(5, 256), (3, 128), (17, 384), (130, 256)]
    for fmt in ("e4m3", "e5m2", "int8", "int4"):
        for gran in ("token", "channel", "tensor", "group", "block"):
            for dt in ("f32", "bf16u2"):
                check_quant_family("ct", gran, fmt, dt, explicit_conv=True, shapes=g128 if gran == "group" else SHAPES)
        check_quant_family("ct", "group", fmt, "bf16V2", G=100, tag="_g100", shapes=[(5, 300), (3, 100), (2, 200)])
    # default conventions: channel and block are compressed-tensors without --convention
    for gran in ("channel", "block"):
        check_quant_family("ct", gran, "e4m3", "bf16V2", explicit_conv=False, tag="_default")


def check_quant_special():
    """cases the random families do not isolate: an all-zero matrix under vLLM's dynamic per-tensor rule
    (s = 0, inv = inf, 0·inf = NaN -> +fmax by the clamp), and NaN elements under each rule"""
    name = "quant_vllm_tensor_dynamic_all_zero"
    if wanted(name):
        x = np.zeros((2, 5), F32)
        wq, ws = quant_vllm(x, "tensor", "e4m3")
        q, s, err = quant_cli(x, "tensor", "e4m3", "vllm", name=name)
        why = err or compare_quant(x, q, s, wq, ws, "e4m3")
        if why:
            fail(name, "spec: s = absmax/fmax = 0, inv = 1/s = inf, x*inv = NaN -> clamp gives +fmax (0x7E): " + why)
        else:
            ok(name, "s = 0, codes 0x7E (0 * inf = NaN, which vLLM's clamp sends to +fmax)")
    for gran in ("token", "tensor", "group", "channel"):
        for fmt in ("e4m3", "e5m2"):
            name = "quant_vllm_%s_%s_nan" % (gran, fmt)
            if not wanted(name):
                continue
            x = matrix(3, 40, 5, fmt, nan=True).astype(F32)
            wq, ws = quant_vllm(x, gran, fmt, static=None)
            q, s, err = quant_cli(x, gran, fmt, "vllm", name=name)
            why = err or compare_quant(x, q, s, wq, ws, fmt)
            sign = "-" if gran == "group" else "+"
            if why:
                fail(name, "NaN elements: the rule says absmax skips NaN (fmaxf) and a NaN becomes the code of %sfmax: %s" % (sign, why))
            else:
                ok(name, "NaN elements -> code of %sfmax (vLLM's clamp order%s); scales from the non-NaN elements" % (
                    sign, " in groups" if gran == "group" else ""))
    for gran in ("channel", "token", "group", "block", "tensor"):
        for fmt in ("e4m3", "e5m2"):
            name = "quant_ct_%s_%s_nan" % (gran, fmt)
            if not wanted(name):
                continue
            x = matrix(3, 128, 6, fmt, nan=True).astype(F32)
            q, s, err = quant_cli(x, gran, fmt, "compressed-tensors", name=name)
            if err:
                fail(name, err)
                continue
            nanpos = np.isnan(x)
            got = np.unique(q[nanpos])
            if got.tolist() != [0x7F]:
                fail(name, "NaN elements got codes %s, want 0x7f (torch.clamp lets NaN through)" % [hex(c) for c in got])
            else:
                ok(name, "every NaN element -> 0x7f; scales %s (the spec does not say whether a NaN reaches the scale)" %
                   ("NaN where a NaN is" if np.isnan(s).any() else "from the non-NaN elements"))


def check_quant_refusals():
    name = "quant_ct_group_k_not_multiple"
    if wanted(name):   # not in the original specification (groups of G over any K); the binary refuses since 74f3152
        xs = save_npy(name + ".npy", np.ones((2, 300), F32))
        rc, out, err = run(["quant", xs, "-o", path(name), "--granularity", "group", "--convention", "compressed-tensors"])
        if rc != 0 and one_line_error(err) and "multiple" in err:
            ok(name, "K = 300, G = 128 refused (compressed-tensors refuses a group strategy that does not divide the columns): " + err.strip()[:120])
        elif rc == 0:
            skip(name, "K = 300, G = 128 quantized, not refused (the original specification's reading; the families above check only K a multiple of G)")
        else:
            fail(name, "exit %d, stderr %r" % (rc, err[:200]))
    x = np.ones((2, 3), F32)
    p32 = save_npy("r32.npy", x)
    p16 = save_npy("r16.npy", x.astype(np.float16))
    cases = [
        ("quant_refuse_vllm_block", [p32, "--granularity", "block", "--convention", "vllm"]),
        ("quant_refuse_vllm_block_e5m2", [p32, "--granularity", "block", "--convention", "vllm", "--format", "e5m2"]),
        ("quant_refuse_vllm_int8_tensor", [p32, "--granularity", "tensor", "--format", "int8", "--convention", "vllm"]),
        ("quant_refuse_vllm_int8_group", [p32, "--granularity", "group", "--format", "int8", "--convention", "vllm"]),
        ("quant_refuse_ct_float16", [p16, "--granularity", "channel", "--convention", "compressed-tensors"]),
        ("quant_refuse_ct_float16_token", [p16, "--granularity", "token", "--convention", "compressed-tensors"]),
        ("quant_refuse_vllm_int4", [p32, "--granularity", "channel", "--format", "int4", "--convention", "vllm"]),
        ("quant_refuse_ct_static_scale", [p32, "--granularity", "tensor", "--convention", "compressed-tensors", "--static-scale", "0.5"]),
    ]
    name = "quant_vllm_int8_channel_is_token_rule_on_rows"   # vLLM's INT8 per channel: the per-token rule applied to the rows
    if wanted(name):
        xr = matrix(17, 300, 3, "int8").astype(F32)
        q, s_, e2 = quant_cli(xr, "channel", "int8", "vllm", name=name)
        wq, ws = quant_vllm(xr, "token", "int8")
        why = e2 or compare_quant(xr, q, s_, wq, ws, "int8")
        if why is None: ok(name, "--granularity channel --format int8 --convention vllm = the per-token INT8 rule on the rows (codes and scales)")
        else: fail(name, why)
    for name, args in cases:
        if not wanted(name):
            continue
        pre = path(name)
        rc, out, err = run(["quant"] + args + ["-o", pre])
        if rc != 0 and one_line_error(err) and not os.path.exists(pre + ".q.npy"):
            ok(name, "exit %d: %s" % (rc, err.strip()[:150]))
        else:
            fail(name, "want a non-zero exit, one 'llama_fp8:' line and no output; got exit %d, stderr %r%s" % (
                rc, err[:200], ", and it wrote " + pre + ".q.npy" if os.path.exists(pre + ".q.npy") else ""))


# ---------------------------------------------------------------------------------------------------
# GEMM: exact sums, fp32 rounding, the epilogue
# ---------------------------------------------------------------------------------------------------
def round_f32(fr):
    """A Fraction rounded once to float32, to nearest, ties to even (subnormals and overflow included).
    Not float(fr) then float32: that would round twice."""
    if fr == 0:
        return F32(0.0)
    neg = fr < 0
    n, d = abs(fr.numerator), fr.denominator
    e = n.bit_length() - d.bit_length()             # 2^e <= n/d < 2^(e+2)
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1                                      # now 2^e <= n/d < 2^(e+1)
    qe = max(e, -126) - 23                          # exponent of the last significand bit kept
    num, den = (n << -qe, d) if qe < 0 else (n, d << qe)
    m, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and m & 1):
        m += 1
    if m.bit_length() - 1 + qe >= 128:              # m·2^qe >= 2^128: beyond float32's range
        v = math.inf
    else:
        v = math.ldexp(m, qe)                       # m <= 2^24: exact in double and in float32
    return F32(-v if neg else v)


def decode(codes, t):
    """exact float32 values of stored codes"""
    if t == "int8":
        return codes.astype(np.int8).astype(F32)
    return codes.view(FP8[t]).astype(F32)


def shift_of(t):
    return {"e4m3": 9, "e5m2": 16, "int8": 0}[t]


def exact_acc(Av, Bv, ta, tb):
    """[M,N] float32: the exact Σ_k a·b (Fraction with denominator 2^(sa+sb): every E4M3 value is a
    multiple of 2^-9, every E5M2 value of 2^-16) rounded once; non-finite inputs: IEEE (float64 sum,
    exact for the finite part, so only the NaN / inf outcome matters)"""
    M, N = Av.shape[0], Bv.shape[0]
    sa, sb = shift_of(ta), shift_of(tb)
    out = np.zeros((M, N), F32)
    finA, finB = np.isfinite(Av).all(axis=1), np.isfinite(Bv).all(axis=1)
    Ai = np.where(np.isfinite(Av), Av, 0).astype(np.float64) * 2.0 ** sa
    Bi = np.where(np.isfinite(Bv), Bv, 0).astype(np.float64) * 2.0 ** sb
    Ao = np.vectorize(int, otypes=[object])(Ai)     # exact integers
    Bo = np.vectorize(int, otypes=[object])(Bi)
    S = Ao.dot(Bo.T)                                # Python ints: no overflow
    den = 1 << (sa + sb)
    for m in range(M):
        for n in range(N):
            if finA[m] and finB[n]:
                out[m, n] = round_f32(Fraction(int(S[m, n]), den))
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    out[m, n] = F32(np.sum(Av[m].astype(np.float64) * Bv[n].astype(np.float64)))
    return out


def fp32_acc(Av, Bv):
    """acc = fmaf(a_k, b_k, acc), k in order. For FP8 x FP8 (and INT8 x INT8, products < 2^14) every
    product is exact in float32 (significands of 4 and 4 bits -> at most 8 bits; exponents from
    2^-9·2^-9 = 2^-18 (E5M2: 2^-32) to 57344^2 < 2^32, inside float32's normal range), so
    fmaf(a, b, acc) = RNE(acc + a·b) = float32(acc) + float32(a·b) in NumPy. Checked below, per call."""
    M, N, K = Av.shape[0], Bv.shape[0], Av.shape[1]
    acc = np.zeros((M, N), F32)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(K):
            p = np.multiply.outer(Av[:, k], Bv[:, k]).astype(F32)
            p64 = np.multiply.outer(Av[:, k].astype(np.float64), Bv[:, k].astype(np.float64))
            fin = np.isfinite(p64)
            assert np.array_equal(p[fin].astype(np.float64), p64[fin]), "a product is not exact in float32"
            acc = (acc + p).astype(F32)
    return acc


def fma32(a, b, c):
    """float32 fmaf on arrays, for products that are not exact in float32 (weight-only: fp32 A x FP8 B).
    a·b is exact in float64 (24 + 4 significant bits; float B: 24 + 24 <= 53); acc + a·b is rounded to float64 by rounding
    to odd (TwoSum error, then the odd neighbour), then to float32: correct, since 53 >= 2·24 + 2."""
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    even = (s.view(np.int64) & 1) == 0
    fix = (err != 0) & even & np.isfinite(s)
    s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(F32)


def fp32_acc_fma(Av, Bv):
    M, N, K = Av.shape[0], Bv.shape[0], Av.shape[1]
    acc = np.zeros((M, N), F32)
    for k in range(K):
        acc = fma32(np.repeat(Av[:, k:k + 1], N, axis=1), np.repeat(Bv[None, :, k], M, axis=0), acc)
    return acc


def fast_acc(Av, Bv):
    """fast: for each k pair, acc = fp32(fp32(acc + p[2j+1]) + p[2j]) (odd K: the last one alone)"""
    M, N, K = Av.shape[0], Bv.shape[0], Av.shape[1]
    acc = np.zeros((M, N), F32)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(0, K, 2):
            if k + 1 < K:
                acc = (acc + np.multiply.outer(Av[:, k + 1], Bv[:, k + 1]).astype(F32)).astype(F32)
            acc = (acc + np.multiply.outer(Av[:, k], Bv[:, k]).astype(F32)).astype(F32)
    return acc


def scale_at(kind, s, i, g):
    if kind is None:
        return np.ones_like(i, dtype=F32) if hasattr(i, "shape") else F32(1)
    if kind == "tensor":
        return s.reshape(-1)[0] * (np.ones_like(i, dtype=F32) if hasattr(i, "shape") else F32(1))
    if kind == "row":
        return s.reshape(-1)[i]
    return s[i, g]   # block / group


def gemm_oracle(Av, Bv, ta, tb, accfn, sa_kind, sa, sb_kind, sb, block):
    """epilogue as emu/emu.h: plain t = fp32(s_b·acc), D = fp32(s_a·t); with block scales
    r = Σ_g fp32(fp32(acc_g·s_a[m][g])·s_b[n/128][g]) added in group order, from 0."""
    M, N, K = Av.shape[0], Bv.shape[0], Av.shape[1]
    m_idx = np.arange(M)[:, None] * np.ones((1, N), int)
    n_idx = np.ones((M, 1), int) * np.arange(N)[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        if not block:
            acc = accfn(Av, Bv)
            t = (scale_at(sb_kind, sb, n_idx, 0).astype(F32) * acc).astype(F32)
            return (scale_at(sa_kind, sa, m_idx, 0).astype(F32) * t).astype(F32)
        r = np.zeros((M, N), F32)
        for g in range(-(-K // 128)):
            k0, k1 = g * 128, min(K, g * 128 + 128)
            acc = accfn(Av[:, k0:k1], Bv[:, k0:k1])
            t = (acc * scale_at(sa_kind, sa, m_idx, g).astype(F32)).astype(F32)
            bi = n_idx // 128 if sb_kind == "block" else n_idx
            t = (t * scale_at(sb_kind, sb, bi, g).astype(F32)).astype(F32)
            r = (r + t).astype(F32)
        return r


def bf16_bits(d):
    """RNE of float32 results to bf16, as '<u2' bits (NaN: compared as NaN, not by payload)"""
    return d.astype(BF16).view(np.uint16)


def same_bits(got, want, what="f32"):
    """(n different, first index) comparing bit patterns, any NaN equal to any NaN"""
    if what == "f32":
        gn, wn = np.isnan(got), np.isnan(want)
        diff = (got.view(np.uint32) != want.view(np.uint32)) & ~(gn & wn)
    else:
        gv, wv = got.view(BF16).astype(F32), want.view(BF16).astype(F32)
        gn, wn = np.isnan(gv), np.isnan(wv)
        diff = (got != want) & ~(gn & wn)
    idx = np.argwhere(diff)
    return len(idx), (tuple(idx[0]) if len(idx) else None)


def random_codes(r, shape, t, nonan=True, lo=0, hi=256):
    c = r.integers(lo, hi, shape).astype(np.uint8)
    if t == "int8":
        return c.view(np.int8)
    v = c.view(FP8[t]).astype(F32)
    while nonan and not np.isfinite(v).all():
        bad = ~np.isfinite(v)
        c[bad] = r.integers(lo, hi, bad.sum()).astype(np.uint8)
        v = c.view(FP8[t]).astype(F32)
    return c


def gemm_cli(name, A, B, ta, tb, sa=None, sb=None, accum=None, out=None, block=False, extra=()):
    pa, pb, pd = save_npy(name + ".A.npy", A), save_npy(name + ".B.npy", B), path(name + ".D.npy")
    args = ["gemm", pa, pb, "-o", pd]
    if sa is not None:
        args += ["--a-scale", save_npy(name + ".sa.npy", sa)]
    if sb is not None:
        args += ["--b-scale", save_npy(name + ".sb.npy", sb)]
    if ta in ("e4m3", "e5m2") and ta != "e4m3":
        args += ["--a-format", ta]
    if tb in ("e4m3", "e5m2") and tb != "e4m3":
        args += ["--b-format", tb]
    if accum:
        args += ["--accum", accum]
    if out:
        args += ["--out", out]
    if block:
        args += ["--block"]
    args += list(extra)
    rc, so, se = run(args)
    if rc != 0:
        return None, "exit %d: %s" % (rc, se.strip()[:300])
    return np.load(pd), None


def gemm_case(name, M, N, K, ta, tb, accum, seed, scales="none", out=None, codesfn=None, block_flag=False):
    """one gemm run against the oracle; returns None or the reason it failed"""
    r = np.random.default_rng(seed)
    if codesfn:
        A, B = codesfn(r)
    else:
        A, B = random_codes(r, (M, K), ta), random_codes(r, (N, K), tb)
    Av, Bv = decode(A, ta), decode(B, tb)
    nk = -(-K // 128)
    sa = sb = None
    sa_kind = sb_kind = None
    block = False
    def pos(shape):
        return (2.0 ** r.integers(-12, 4, shape) * r.uniform(1, 2, shape)).astype(F32)
    if scales == "tensor":
        sa, sb, sa_kind, sb_kind = pos((1,)), pos((1,)), "tensor", "tensor"
    elif scales == "scalar0d":
        sa, sb, sa_kind, sb_kind = pos(()), pos((1,)), "tensor", "tensor"
    elif scales == "row":
        sa, sb, sa_kind, sb_kind = pos((M, 1)), pos((N,)), "row", "row"
    elif scales == "row1d":
        sa, sb, sa_kind, sb_kind = pos((M,)), pos((N, 1)), "row", "row"
    elif scales == "block":
        sa, sb, sa_kind, sb_kind, block = pos((M, nk)), pos((-(-N // 128), nk)), "group", "block", True
    elif scales == "block_b_only":
        sa, sb, sa_kind, sb_kind, block = pos((1,)), pos((-(-N // 128), nk)), "tensor", "block", True
    elif scales == "block_a_only":
        sa, sb, sa_kind, sb_kind, block = pos((M, nk)), pos((N, 1)), "group", "row", True
    if accum == "exact" or ta == "int8":
        fn = lambda a, b: exact_acc(a, b, ta, tb)   # noqa: E731 (int8 always accumulates exactly)
    elif accum == "fp32":
        fn = fp32_acc if ta in ("e4m3", "e5m2", "int8") else fp32_acc_fma
    elif accum == "fast":
        fn = fast_acc if ta in ("e4m3", "e5m2") else fp32_acc_fma   # weight-only: fast means fp32
    else:
        raise ValueError(accum)
    want = gemm_oracle(Av, Bv, ta, tb, fn, sa_kind, sa, sb_kind, sb, block)
    got, err = gemm_cli(name, A, B, ta, tb, sa, sb, accum, out, block_flag)
    if err:
        return err
    if out == "bf16":
        wb = bf16_bits(want)
        if got.dtype != np.uint16 and got.dtype.str not in ("<u2", "<V2"):
            return "output dtype %s, want '<u2' bf16 bits" % got.dtype
        got = got.view(np.uint16)
        if got.shape != (M, N):
            return "output shape %s, want %s" % (got.shape, (M, N))
        n, i = same_bits(got, wb, "bf16")
        if n:
            return "%d of %d bf16 elements differ; first %s: got 0x%04x, want 0x%04x (fp32 %r)" % (
                n, M * N, i, got[i], wb[i], float(want[i]))
        return None
    if got.dtype != F32 or got.shape != (M, N):
        return "output %s %s, want float32 %s" % (got.dtype, got.shape, (M, N))
    n, i = same_bits(got, want)
    if n:
        return "%d of %d elements differ; first %s: got %r (%s), want %r (%s)" % (
            n, M * N, i, float(got[i]), f32_hex(got[i]), float(want[i]), f32_hex(want[i]))
    return None


def check_round_f32():
    """the rounding routine itself, on cases whose answer is known without it"""
    name = "oracle_round_f32"
    if not wanted(name):
        return
    cases = [(Fraction(1), 1.0), (Fraction(1) + Fraction(1, 2 ** 24), 1.0),                 # tie -> even
             (Fraction(1) + Fraction(3, 2 ** 25), 1.0 + 2.0 ** -23),                        # above the tie
             (Fraction(1) + Fraction(3, 2 ** 24), 1.0 + 2.0 ** -22),                        # tie -> even (up)
             (Fraction(2 ** 24 + 1), 2.0 ** 24), (Fraction(-(2 ** 24 + 3)), -(2.0 ** 24 + 4)),
             (Fraction(1, 2 ** 149), 2.0 ** -149), (Fraction(1, 2 ** 150), 0.0),             # subnormal tie -> 0
             (Fraction(3, 2 ** 151), 2.0 ** -149), (Fraction(2 ** 128), math.inf),
             (Fraction(1, 3), float(np.float32(1 / 3))), (Fraction(0), 0.0)]
    bad = [(str(f), float(round_f32(f)), w) for f, w in cases if float(round_f32(f)) != w]
    # against double rounding of float64 results that are exact (so one rounding): random quotients
    r = np.random.default_rng(11)
    for _ in range(2000):
        a, b = int(r.integers(1, 2 ** 40)), int(r.integers(1, 2 ** 40))
        f = Fraction(a, b)
        x = F32(round_f32(f))
        lo, hi = np.nextafter(x, F32(0)), np.nextafter(x, F32(np.inf))
        # the exact value must lie within half an ulp on each side
        if not (Fraction(float(lo)) + Fraction(float(x)) <= 2 * f <= Fraction(float(x)) + Fraction(float(hi))):
            bad.append((str(f), float(x), "not nearest"))
    if bad:
        fail(name, "%s" % bad[:3])
    else:
        ok(name, "%d hand cases (ties to even, subnormal, overflow) and 2000 random quotients within half an ulp" % len(cases))


def check_gemm_exact():
    e4 = lambda r, M, N, K, lo, hi: (random_codes(r, (M, K), "e4m3", lo=lo, hi=hi), random_codes(r, (N, K), "e4m3", lo=lo, hi=hi))  # noqa

    def cancel(r):   # 448·448 - 448·448 + tiny: the exact sum keeps the tiny product
        A = np.zeros((2, 3), np.uint8); B = np.zeros((3, 3), np.uint8)
        A[0] = [0x7E, 0x7E, 0x01]; B[0] = [0x7E, 0xFE, 0x01]        # 448·448 + 448·(-448) + 2^-9·2^-9
        A[1] = [0x01, 0x7E, 0x7E]; B[1] = [0x01, 0x7E, 0xFE]
        B[2] = [0x7E, 0x7E, 0x7E]
        return A, B

    def subnormals(r):
        return (r.integers(0, 8, (4, 37)).astype(np.uint8) | (r.integers(0, 2, (4, 37)) * 0x80).astype(np.uint8),
                r.integers(0, 8, (5, 37)).astype(np.uint8) | (r.integers(0, 2, (5, 37)) * 0x80).astype(np.uint8))

    def maxmag(r):
        return np.where(r.integers(0, 2, (3, 300)) == 1, 0x7E, 0xFE).astype(np.uint8), np.where(r.integers(0, 2, (4, 300)) == 1, 0x7E, 0xFE).astype(np.uint8)

    def allmax(r):
        return np.full((2, 255), 0x7E, np.uint8), np.full((3, 255), 0x7E, np.uint8)

    def nans(r):
        A, B = random_codes(r, (4, 33), "e4m3"), random_codes(r, (5, 33), "e4m3")
        A[1, 7] = 0x7F; B[2, 30] = 0xFF; A[3, 0] = 0xFF
        return A, B

    def e5m2_inf(r):
        A, B = random_codes(r, (3, 17), "e5m2"), random_codes(r, (4, 17), "e5m2")
        A[0, 2] = 0x7C                         # +inf times a finite nonzero -> ±inf
        B[1, 5] = 0xFC; A[2, 5] = 0x00         # -inf · 0 -> NaN
        return A, B

    def double_rounding(r):
        """2^15·2^15 + 2^15·2^15 + 2^7·1 + 2^-16·2^-16 = 2^31 + 2^7 + 2^-32: just above the midpoint between
        the floats 2^31 and 2^31 + 2^8, so RNE gives 2^31 + 2^8; rounding to double first loses 2^-32 (it
        needs 64 bits) and leaves a tie, which goes to the even 2^31. Rows 1 and 2: the mirror, the tie."""
        A = np.array([[0x78, 0x78, 0x58, 0x01], [0xF8, 0xF8, 0xD8, 0x81], [0x78, 0x78, 0x58, 0x00]], np.uint8)
        B = np.array([[0x78, 0x78, 0x3C, 0x01]], np.uint8)
        return A, B

    cases = [("e5m2_double_rounding", 3, 1, 4, "e5m2", "e5m2", double_rounding),
             ("cancellation", 2, 3, 3, "e4m3", "e4m3", cancel),
             ("subnormal_codes", 4, 5, 37, "e4m3", "e4m3", subnormals),
             ("max_magnitude_codes", 3, 4, 300, "e4m3", "e4m3", maxmag),
             ("all_0x7e_K255", 2, 3, 255, "e4m3", "e4m3", allmax),
             ("nan_codes", 4, 5, 33, "e4m3", "e4m3", nans),
             ("e5m2_inf", 3, 4, 17, "e5m2", "e5m2", e5m2_inf)]
    for tag, M, N, K, ta, tb, fn in cases:
        name = "gemm_exact_" + tag
        if wanted(name):
            why = gemm_case(name, M, N, K, ta, tb, "exact", 21, codesfn=fn)
            fail(name, why) if why else ok(name, "[%d x %d] x [%d x %d]^T bit-identical to the exact sum rounded once" % (M, K, N, K))
    n_ok, first = 0, None
    for K in (1, 15, 17, 31, 33, 127, 129, 255, 300):
        for ta, tb in (("e4m3", "e4m3"), ("e5m2", "e5m2"), ("e4m3", "e5m2"), ("e5m2", "e4m3")):
            name = "gemm_exact_K%d_%s_%s" % (K, ta, tb)
            if not wanted("gemm_exact_K"):
                continue
            why = gemm_case(name, 3, 5, K, ta, tb, "exact", K * 7 + len(ta + tb))
            if why and not first:
                first = "%s: %s" % (name, why)
            n_ok += not why
    if wanted("gemm_exact_K"):
        fail("gemm_exact_K_sweep", first) if first else ok("gemm_exact_K_sweep", "%d cases: K = 1..300 (not multiples of 16/32/128), E4M3/E5M2, mixed" % n_ok)
    # int8: exact int32 sums (K = 4096: sums beyond 2^24, so the single rounding to fp32 matters)
    for K in (1, 300, 4096):
        name = "gemm_int8_K%d" % K
        if wanted(name):
            why = gemm_case(name, 3, 4, K, "int8", "int8", "exact", K,
                            codesfn=lambda r, K=K: (r.integers(-128, 128, (3, K)).astype(np.int8), r.integers(-128, 128, (4, K)).astype(np.int8)))
            fail(name, why) if why else ok(name, "int8 x int8, exact integer sum rounded once to fp32")
    name = "gemm_int8_fp32_accum_is_exact"
    if wanted(name):
        why = gemm_case(name, 3, 4, 4096, "int8", "int8", "fp32", 4096,
                        codesfn=lambda r: (r.integers(-128, 128, (3, 4096)).astype(np.int8), r.integers(-128, 128, (4, 4096)).astype(np.int8)))
        fail(name, why) if why else ok(name, "--accum fp32 on int8 still gives the exact sum")
    # scales and epilogue
    for scales in ("tensor", "scalar0d", "row", "row1d", "block", "block_b_only", "block_a_only"):
        for K, M, N in ((300, 3, 5), (129, 130, 3)):
            name = "gemm_exact_scales_%s_K%d_N%d" % (scales, K, N)
            if wanted(name):
                why = gemm_case(name, M, N, K, "e4m3", "e4m3", "exact", K + len(scales), scales=scales)
                fail(name, why) if why else ok(name, "epilogue with %s scales as emu.h defines it" % scales)
    for scales in ("row", "tensor"):
        name = "gemm_int8_scales_" + scales
        if wanted(name):
            why = gemm_case(name, 4, 3, 200, "int8", "int8", "exact", 3, scales=scales,
                            codesfn=lambda r: (r.integers(-128, 128, (4, 200)).astype(np.int8), r.integers(-128, 128, (3, 200)).astype(np.int8)))
            fail(name, why) if why else ok(name, "int8 with %s scales" % scales)
    # K <= 128: [M,1] / [N,1] fit per-row and block; per-row unless --block
    for flag in (False, True):
        name = "gemm_exact_K100_ambiguous_scales_%s" % ("block" if flag else "row")
        if wanted(name):
            why = gemm_case(name, 3, 4, 100, "e4m3", "e4m3", "exact", 5, scales="row" if not flag else "block", block_flag=flag)
            fail(name, why) if why else ok(name, "[M,1] scales read as %s" % ("1x128 groups / a 128x128 block (--block)" if flag else "per row (no --block)"))
    for scales in ("none", "row", "block"):
        name = "gemm_exact_out_bf16_" + scales
        if wanted(name):
            why = gemm_case(name, 4, 6, 257, "e4m3", "e4m3", "exact", 8, scales=scales, out="bf16")
            fail(name, why) if why else ok(name, "--out bf16 = RNE of the fp32 result (%s scales)" % scales)


def check_gemm_fp32():
    for accum in ("fp32", "fast"):
        for ta in ("e4m3", "e5m2"):
            for K in (1, 17, 300, 1024):
                name = "gemm_%s_%s_K%d" % (accum, ta, K)
                if not wanted(name):
                    continue
                why = gemm_case(name, 4, 5, K, ta, ta, accum, K + 3, scales="row")
                fail(name, why) if why else ok(name, "bit-identical to the NumPy %s chain" % ("fmaf" if accum == "fp32" else "pairwise (odd, even) RNE"))
        name = "gemm_%s_mixed_formats" % accum
        if wanted(name):
            why = gemm_case(name, 4, 5, 257, "e4m3", "e5m2", accum, 9, scales="block")
            fail(name, why) if why else ok(name, "E4M3 x E5M2 with block scales")
    # weight-only: fp32 / bf16 / f16 A against FP8 B; fmaf products are not exact in fp32 here
    for at in ("f32", "bf16", "bf16u2", "f16"):
        for accum in ("fp32", "fast"):
            name = "gemm_weight_only_%s_%s" % (at, accum)
            if not wanted(name):
                continue
            def codes(r, at=at):
                x = r.standard_normal((3, 131)) * 10.0 ** r.uniform(-2, 2, (3, 1))
                if at == "f32":
                    a = x.astype(F32)
                elif at == "bf16":
                    a = x.astype(F32).astype(BF16)
                elif at == "bf16u2":
                    a = x.astype(F32).astype(BF16).view(np.uint16)
                else:
                    a = x.astype(np.float16)
                return a, random_codes(r, (4, 131), "e4m3")
            r = np.random.default_rng(17)
            A, B = codes(r)
            Av, Bv = (A.view(BF16) if at == "bf16u2" else A).astype(F32), decode(B, "e4m3")
            sb = (r.uniform(0.5, 2, (4, 1))).astype(F32)
            want = gemm_oracle(Av, Bv, at, "e4m3", fp32_acc_fma, None, None, "row", sb, False)
            got, err = gemm_cli(name, A, B, at, "e4m3", None, sb, accum)
            if err:
                fail(name, err)
                continue
            n, i = same_bits(got, want)
            fail(name, "%d differ; first %s: got %s want %s" % (n, i, f32_hex(got[i]), f32_hex(want[i]))) if n else \
                ok(name, "%s A x E4M3 B: the fmaf chain (emulated exactly: float64 product, round-to-odd sum)" % at)
    # outside the specification (B is FP8 codes or int8 there): the binary also takes a float32 / bf16 B
    # with a float A (emu's weight-only GEMM takes B of any stored type); its result must still be the chain
    for bt in ("f32", "bf16"):
        name = "gemm_float_a_float_b_%s" % bt
        if not wanted(name):
            continue
        r = np.random.default_rng(29)
        A = (r.standard_normal((3, 77)) * 10.0 ** r.uniform(-3, 3, (3, 1))).astype(F32)
        Bf = (r.standard_normal((4, 77)) * 10.0 ** r.uniform(-3, 3, (4, 1))).astype(F32)
        B = Bf if bt == "f32" else Bf.astype(BF16)
        want = fp32_acc_fma(A, np.asarray(B).astype(F32))
        got, err = gemm_cli(name, A, B, "f32", bt, accum="fp32")
        if err:
            skip(name, "not accepted (the specification has FP8 / int8 B only): " + err[:120])
            continue
        n, i = same_bits(got, want)
        fail(name, "%d differ; first %s: got %s want %s" % (n, i, f32_hex(got[i]), f32_hex(want[i]))) if n else \
            ok(name, "float32 A x %s B (accepted, though outside the specification): the fmaf chain" % bt)
    name = "oracle_fma32"
    if wanted(name):   # the fmaf emulation against Fraction arithmetic on random and tie-making inputs
        r = np.random.default_rng(23)
        a = (r.standard_normal(3000) * 10.0 ** r.uniform(-3, 3, 3000)).astype(F32)
        b = random_codes(r, 3000, "e4m3").view(FP8["e4m3"]).astype(F32)
        c = (r.standard_normal(3000) * 10.0 ** r.uniform(-3, 3, 3000)).astype(F32)
        c[:500] = (-(a[:500].astype(np.float64) * b[:500]) * (1 + 2.0 ** -30)).astype(F32)   # near-cancellation
        got = fma32(a, b, c)
        want = np.array([round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))) for x, y, z in zip(a, b, c)], F32)
        n, i = same_bits(got, want)
        fail(name, "%d of 3000 differ" % n) if n else ok(name, "fma32 = Fraction a·b + c rounded once, on 3000 cases (500 near-cancelling)")


# ---------------------------------------------------------------------------------------------------
# Tensor-core accumulation (hopper, ada, cublaslt), re-derived from the prose of emu/models.h and
# NUMERICS.md §5 (Khattak & Mikaitis, arXiv:2512.07004: block FMA of n products and the running sum,
# aligned to the largest exponent, 13 fraction bits kept by truncation (+1 carry bit), exact addition,
# result truncated to 13 fraction bits). Python integers throughout; no line of emu's C is copied.
# ---------------------------------------------------------------------------------------------------
def _split(v):
    """a finite nonzero float32 as (sign, integer significand with 23 fraction bits, exponent); fp32
    subnormals (only a running sum can be one) have exponent -126 and no hidden bit"""
    u = int(np.asarray(v, F32).view(np.uint32))
    be = (u >> 23) & 255
    return u >> 31, (u & 0x7FFFFF) | (0x800000 if be else 0), (be - 127 if be else -126)


def tc_block_py(a, b, c, emin):
    """one block FMA: d = c + Σ a_i b_i (a, b decoded FP8 values as float32, c float32)"""
    prods = []                                          # (sign, significand with 23 fraction bits, exponent, ≥2 before normalising)
    for x, y in zip(a, b):
        if x == 0 or y == 0:
            continue                                    # zero products drop out
        sx, mx, ex = _split(x)
        sy, my, ey = _split(y)
        if ex < emin:                                   # below the input format's emin: the exponent is held at
            mx, ex = mx >> (emin - ex), emin            # emin and the significand shifted (exact: FP8 has <= 3 bits)
        if ey < emin:
            my, ey = my >> (emin - ey), emin
        P = mx * my                                     # 46 fraction bits, in (0, 4)
        two = P >= (1 << 47)
        prods.append((sx ^ sy, P >> (23 + two), ex + ey + two, two, ex + ey))
    if not prods and c == 0:
        return F32(0.0)
    terms = [(sg, m, e) for sg, m, e, _, _ in prods]
    maxpre = max((p[4] for p in prods), default=None)
    carry_sig = any(p[3] for p in prods if p[4] == maxpre)
    if c != 0:
        sc, mc, ec = _split(c)
        terms.append((sc, mc, ec))
        carry = bool(prods) and maxpre >= ec and carry_sig
    else:
        carry = bool(prods) and carry_sig
    maxe = max(e for _, _, e in terms)
    total = 0
    for sg, m, e in terms:                              # 13 (14 with the carry) fraction bits relative to maxe,
        v = m >> (10 - carry + (maxe - e))              # truncated: sign-magnitude, toward zero
        total += -v if sg else v
    if total == 0:
        return F32(0.0)
    scale = maxe - 13 - carry                           # value = total · 2^scale
    mag = abs(total)
    vexp = mag.bit_length() - 1 + scale
    if vexp > 127:
        return F32(-np.inf if total < 0 else np.inf)
    qexp = max(vexp, -126) - 13                         # keep 13 fraction bits (fewer below 2^-126): truncate
    if qexp > scale:
        mag = (mag >> (qexp - scale)) << (qexp - scale)
    v = math.ldexp(mag, scale)
    return F32(-v if total < 0 else v)


def tc_dot_py(a, b, model, fmt):
    emin = -6 if fmt == "e4m3" else -14
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        with np.errstate(invalid="ignore", over="ignore"):
            return F32(np.sum(a.astype(np.float64) * b.astype(np.float64)))
    def chain(a, b, n):
        c = F32(0.0)
        for k0 in range(0, len(a), n):
            c = tc_block_py(a[k0:k0 + n], b[k0:k0 + n], c, emin)
        return c
    if model == "hopper":
        return chain(a, b, 32)
    if model == "ada":
        return chain(a, b, 16)
    s = F32(0.0)                                        # cublaslt: hopper per 128 k, promoted by an fp32 addition
    for k0 in range(0, len(a), 128):
        s = F32(s + chain(a[k0:k0 + 128], b[k0:k0 + 128], 32))
    return s


def tc_acc(model, fmt):
    def fn(Av, Bv):
        out = np.zeros((Av.shape[0], Bv.shape[0]), F32)
        for m in range(Av.shape[0]):
            for n in range(Bv.shape[0]):
                out[m, n] = tc_dot_py(Av[m], Bv[n], model, fmt)
        return out
    return fn


def check_gemm_tc():
    """hopper / ada / cublaslt against the Python model above (an independent reading of the same prose)"""
    def cases():
        r = np.random.default_rng(41)
        yield "random_e4m3", "e4m3", random_codes(r, (3, 300), "e4m3"), random_codes(r, (4, 300), "e4m3")
        yield "random_e5m2", "e5m2", random_codes(r, (3, 300), "e5m2"), random_codes(r, (4, 300), "e5m2")
        # narrow range (exponents close: the carry bit and the 13-bit window matter on every block)
        yield "narrow_e4m3", "e4m3", r.integers(0x38, 0x48, (3, 257)).astype(np.uint8) | (r.integers(0, 2, (3, 257)) * 0x80).astype(np.uint8), \
            r.integers(0x38, 0x48, (4, 257)).astype(np.uint8)
        # subnormal codes mixed with normal ones, both formats
        yield "subnormal_e4m3", "e4m3", np.where(r.integers(0, 2, (3, 100)) == 1, r.integers(0, 8, (3, 100)), r.integers(8, 0x7F, (3, 100))).astype(np.uint8), \
            r.integers(0, 0x10, (4, 100)).astype(np.uint8) | (r.integers(0, 2, (4, 100)) * 0x80).astype(np.uint8)
        yield "subnormal_e5m2", "e5m2", r.integers(0, 8, (3, 70)).astype(np.uint8) | (r.integers(0, 2, (3, 70)) * 0x80).astype(np.uint8), \
            random_codes(r, (4, 70), "e5m2")
        # 448^2 - 1 and cancellation around large partial sums
        A = np.array([[0x7E, 0x38 | 0x80] + [0] * 30, [0x7E, 0xFE] + [0x01] * 30], np.uint8)
        B = np.array([[0x7E, 0x38] + [0] * 30, [0x7E, 0x7E] + [0x01] * 30], np.uint8)
        yield "hand_448sq_minus_1", "e4m3", A, B
        yield "k1024_e4m3", "e4m3", random_codes(r, (2, 1024), "e4m3"), random_codes(r, (3, 1024), "e4m3")
        A, B = random_codes(r, (3, 40), "e4m3"), random_codes(r, (2, 40), "e4m3")
        A[1, 5] = 0x7F
        yield "nan_e4m3", "e4m3", A, B
    for tag, fmt, A, B in cases():
        for model in ("hopper", "ada", "cublaslt"):
            name = "gemm_%s_%s" % (model, tag)
            if not wanted(name):
                continue
            Av, Bv = decode(A, fmt), decode(B, fmt)
            want = gemm_oracle(Av, Bv, fmt, fmt, tc_acc(model, fmt), None, None, None, None, False)
            got, err = gemm_cli(name, A, B, fmt, fmt, accum=model)
            if err:
                fail(name, err)
                continue
            n, i = same_bits(got, want)
            if n:
                fail(name, "%d of %d differ; first %s: got %r (%s), the Python model %r (%s)" % (
                    n, want.size, i, float(got[i]), f32_hex(got[i]), float(want[i]), f32_hex(want[i])))
            else:
                ok(name, "[%d x %d] x [%d x %d]^T: bit-identical to the Python re-derivation of the %s model" % (
                    A.shape[0], A.shape[1], B.shape[0], B.shape[1], model))


def parse_explain(out):
    """{model: (count, percent, count within 1 ulp or None)} from the lines that name one model and give a
    percentage (count = the integer before the first percentage), and the models named on the 'best' line"""
    res, best = {}, None
    for line in out.splitlines():
        low = line.lower()
        names = [m for m in MODELS if re.search(r"(?<![a-z0-9_])%s(?![a-z0-9_])" % m, low)]
        if "best" in low and names and best is None:
            best = names
            continue
        cols = re.findall(r"(\d+)\s+(\d+(?:\.\d+)?)\s*%", line)
        if len(names) == 1 and cols and names[0] not in res:
            res[names[0]] = (int(cols[0][0]), float(cols[0][1]), int(cols[1][0]) if len(cols) > 1 else None)
    return res, best


def ulp_le1(a_bits, b_bits, width):
    """elements within one ulp: sign-magnitude bits on a monotone integer line (+0 and -0 are one point)"""
    def line(b):
        b = b.astype(np.int64)
        mag = b & ((1 << (width - 1)) - 1)
        return np.where(b >> (width - 1), -mag, mag)
    return np.abs(line(a_bits) - line(b_bits)) <= 1


def check_explain():
    r = np.random.default_rng(2024)
    M, N, K = 12, 10, 4096
    # wide dynamic range: random finite E4M3 codes (2^-9 .. 448), both signs
    A, B = random_codes(r, (M, K), "e4m3"), random_codes(r, (N, K), "e4m3")
    pa, pb = save_npy("ex.A.npy", A), save_npy("ex.B.npy", B)
    outs = {}
    for m in MODELS:
        rc, so, se = run(["gemm", pa, pb, "-o", path("ex.%s.npy" % m), "--accum", m])
        if rc != 0:
            return fail("explain_inputs", "gemm --accum %s: exit %d: %s" % (m, rc, se.strip()[:200]))
        outs[m] = np.load(path("ex.%s.npy" % m))
    bits = {m: outs[m].view(np.uint32) for m in MODELS}
    distinct = len({bits[m].tobytes() for m in MODELS})
    if wanted("explain_exact_oracle"):
        want = exact_acc(decode(A, "e4m3"), decode(B, "e4m3"), "e4m3", "e4m3")
        n, i = same_bits(outs["exact"], want)
        fail("explain_exact_oracle", "K=4096 exact: %d differ" % n) if n else ok("explain_exact_oracle", "the K = 4096 inputs: --accum exact = the Fraction oracle")
        want = fp32_acc(decode(A, "e4m3"), decode(B, "e4m3"))
        n, i = same_bits(outs["fp32"], want)
        fail("explain_fp32_oracle", "K=4096 fp32: %d differ" % n) if n else ok("explain_fp32_oracle", "the K = 4096 inputs: --accum fp32 = the NumPy fmaf chain")
        want = fast_acc(decode(A, "e4m3"), decode(B, "e4m3"))
        n, i = same_bits(outs["fast"], want)
        fail("explain_fast_oracle", "K=4096 fast: %d differ" % n) if n else ok("explain_fast_oracle", "the K = 4096 inputs: --accum fast = the NumPy pairwise chain")

    def explain(mine_name, mine):
        pm = save_npy(mine_name, mine)
        rc, so, se = run(["gemm", pa, pb, "-o", path(mine_name + ".D.npy"), "--explain", pm])
        return rc, so, se

    def counts_of(mine_bits, is_bf16):
        """NumPy's recount from the per-model outputs: {model: (bit-identical, within 1 ulp)}"""
        c = {}
        for m in MODELS:
            ref = bf16_bits(outs[m]) if is_bf16 else bits[m]
            c[m] = (int((ref == mine_bits).sum()), int(ulp_le1(ref, mine_bits, 16 if is_bf16 else 32).sum()))
        return c

    def recount_errors(res, want):
        """(model, parsed, NumPy's) wherever a parsed count or share differs from the recount"""
        bad = []
        for k in MODELS:
            if k not in res:
                bad.append((k, None, want[k]))
                continue
            c, pct, u1 = res[k]
            if c != want[k][0] or abs(pct - 100.0 * want[k][0] / (M * N)) > 0.0051 or (u1 is not None and u1 != want[k][1]):
                bad.append((k, res[k], want[k]))
        return bad

    for m in MODELS:
        name = "explain_%s" % m
        if not wanted(name):
            continue
        rc, so, se = explain("mine_%s.npy" % m, outs[m])
        res, best = parse_explain(so)
        want = counts_of(bits[m], False)
        wantc = {k: want[k][0] for k in MODELS}
        if rc != 0:
            fail(name, "exit %d (want 0: model %s reproduces every element): %s %s" % (rc, m, so[-300:], se[-200:]))
        elif m not in res or res[m][1] < 100.0 - 1e-9:
            fail(name, "model %s not reported at 100%%: parsed %r from %r" % (m, res, so[-400:]))
        elif not best or not (m in best or all(wantc[b] == M * N for b in best)):
            fail(name, "the 'best' line names %r, want %s (or a model equally at 100%%)" % (best, m))
        else:
            wrong = recount_errors(res, want)
            if wrong:
                fail(name, "counts differ from NumPy's recount (model, parsed (n, %%, n within 1 ulp), NumPy's): %r" % wrong)
            else:
                ok(name, "%s at 100%%, named best; every model's count, share and within-1-ulp count = NumPy's recount (%s)" % (
                    m, ", ".join("%s %d/%d" % (k, want[k][0], want[k][1]) for k in MODELS)))
    # the same for bf16 outputs (MINE's dtype sets the rounding)
    for m in ("hopper", "exact"):
        name = "explain_bf16_%s" % m
        if not wanted(name):
            continue
        mine = bf16_bits(outs[m])
        rc, so, se = explain("mine_bf16_%s.npy" % m, mine)
        res, best = parse_explain(so)
        want = counts_of(mine, True)
        if rc != 0 or m not in res or res[m][1] < 100 - 1e-9:
            fail(name, "bf16 MINE from %s: exit %d, parsed %r: %s" % (m, rc, res, (so + se)[-300:]))
        else:
            wrong = recount_errors(res, want)
            fail(name, "counts differ from NumPy's recount: %r" % wrong) if wrong else ok(
                name, "bf16 MINE: %s at 100%%; counts, shares, within-1-bf16-ulp = NumPy's (%s)" % (
                    m, ", ".join("%s %d/%d" % (k, want[k][0], want[k][1]) for k in MODELS)))
    # a mixture: even rows from hopper, odd rows from cublaslt
    name = "explain_mixture"
    if wanted(name):
        mine = outs["hopper"].copy()
        mine[1::2] = outs["cublaslt"][1::2]
        want = counts_of(mine.view(np.uint32), False)
        wantc = {k: want[k][0] for k in MODELS}
        rc, so, se = explain("mine_mix.npy", mine)
        res, best = parse_explain(so)
        share_h = (M // 2 + M % 2) * N
        share_c = (M // 2) * N
        if any(v == M * N for v in wantc.values()):
            fail(name, "the inputs do not separate the models (NumPy: %r)" % wantc)
        elif rc != 1:
            fail(name, "exit %d, want 1 (no model reproduces every element): %s" % (rc, so[-300:]))
        elif "hopper" not in res or "cublaslt" not in res:
            fail(name, "hopper / cublaslt not parsed from %r" % so[-400:])
        elif (res["hopper"][1] < 100.0 * share_h / (M * N) - 0.0051) or (res["cublaslt"][1] < 100.0 * share_c / (M * N) - 0.0051):
            fail(name, "hopper %.2f%% (made %d of %d), cublaslt %.2f%% (made %d)" % (res["hopper"][1], share_h, M * N, res["cublaslt"][1], share_c))
        elif not best or not set(best) & {"hopper", "cublaslt"}:
            fail(name, "the 'best' line names %r, want hopper or cublaslt" % (best,))
        else:
            wrong = recount_errors(res, want)
            fail(name, "counts differ from NumPy's: %r" % wrong) if wrong else ok(
                name, "rows from hopper and cublaslt: each reproduces at least its rows (hopper %d, cublaslt %d of %d), best %s, exit 1" % (
                    wantc["hopper"], wantc["cublaslt"], M * N, "/".join(best)))
    if distinct < 4:
        fail("explain_inputs_separate_models", "only %d distinct outputs among the 6 models" % distinct)
    elif wanted("explain_inputs"):
        ok("explain_inputs_separate_models", "K = 4096 random E4M3: %d distinct outputs among the 6 models" % distinct)


def check_torch():
    try:
        import torch   # noqa
    except Exception as e:   # noqa
        skip("kernel_torch_fp8_casts", "torch is not importable (%s)" % str(e).split("\n")[0][:80])
        skip("kernel_torch_scaled_mm", "torch is not importable")
        return
    import torch
    # a. torch's own float8 casts of the clamped, scaled values against quant's codes
    name = "kernel_torch_fp8_casts"
    if wanted(name):
        bad = []
        for fmt, tdt in (("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)):
            x = matrix(17, 300, 77, fmt).astype(F32)
            q, s, err = quant_cli(x, "token", fmt, "vllm", name=name + fmt)
            if err:
                bad.append(err)
                continue
            v = torch.from_numpy(x) / torch.from_numpy(s)
            m = float(FMAX[fmt])
            tq = torch.clamp(v, -m, m).to(tdt).view(torch.uint8).numpy()
            if not np.array_equal(tq, q):
                bad.append("%s: %d codes differ" % (fmt, int((tq != q).sum())))
        fail(name, "; ".join(bad)) if bad else ok(name, "torch %s float8 casts of clamp(x / s) = quant's codes (E4M3, E5M2)" % torch.__version__)
    # b. compressed-tensors' arithmetic written with torch ops on a bf16 / fp32 tensor (amax, / fmax,
    # eps of the dtype, x / s, + 0, clamp, cast): the rule as the tool computes it, against quant's bytes
    name = "kernel_torch_ct_rule"
    if wanted(name):
        bad, n = [], 0
        for dt, tdt in (("bf16u2", torch.bfloat16), ("f32", torch.float32)):
            for fmt in ("e4m3", "e5m2", "int8"):
                for gran in ("channel", "tensor"):
                    x64 = matrix(9, 300, 31, fmt)
                    xs, x = as_dtype(x64, dt)
                    q, s_, err = quant_cli(xs, gran, fmt, "compressed-tensors", name="%s_%s_%s_%s" % (name, dt, fmt, gran))
                    if err:
                        bad.append(err)
                        continue
                    xt = torch.from_numpy(x).to(tdt)
                    amax = xt.abs().amax(dim=1, keepdim=True) if gran == "channel" else xt.abs().amax().reshape(1)
                    half = 127.5 if fmt == "int8" else float(FMAX[fmt])
                    sc = amax / half
                    sc = torch.where(sc == 0, torch.tensor(torch.finfo(tdt).eps, dtype=tdt), sc)
                    v = xt / sc + torch.zeros((), dtype=tdt)
                    if fmt == "int8":
                        tq = torch.round(torch.clamp(v, -128, 127)).to(torch.int8).numpy()
                    else:
                        tq = torch.clamp(v, -half, half).to(torch.float8_e4m3fn if fmt == "e4m3" else torch.float8_e5m2).view(torch.uint8).numpy()
                    ts = sc.to(torch.float32).numpy().reshape(s_.shape)
                    if not np.array_equal(tq.view(np.uint8), q.view(np.uint8)) or not np.array_equal(ts.view(np.uint32), s_.view(np.uint32)):
                        bad.append("%s %s %s: %d codes, %d scales differ" % (dt, fmt, gran, int((tq.view(np.uint8) != q.view(np.uint8)).sum()),
                                                                             int((ts.view(np.uint32) != s_.view(np.uint32)).sum())))
                    n += 1
        fail(name, "; ".join(bad)) if bad else ok(name, "%d cases: compressed-tensors' steps in torch %s ops (bf16 and fp32 tensors; E4M3, E5M2, INT8; channel, tensor) = quant's codes and scales" % (n, torch.__version__))
    name = "kernel_torch_scaled_mm"
    if not wanted(name):
        return
    if not hasattr(torch, "_scaled_mm"):
        return skip(name, "torch %s has no _scaled_mm" % torch.__version__)
    r = np.random.default_rng(5)
    report = []
    for K in (17, 256, 4096):
        M = N = 8
        A, B = random_codes(r, (M, K), "e4m3"), random_codes(r, (N, K), "e4m3")
        try:
            ta = torch.from_numpy(A).view(torch.float8_e4m3fn)
            tb = torch.from_numpy(B).view(torch.float8_e4m3fn)
            one = torch.tensor(1.0)
            d = torch._scaled_mm(ta, tb.t(), scale_a=one, scale_b=one, out_dtype=torch.float32)
            d = (d[0] if isinstance(d, tuple) else d).numpy().astype(F32)
        except Exception as e:   # noqa
            return skip(name, "torch._scaled_mm does not run here: %s" % str(e).split("\n")[0][:120])
        pt = save_npy("%s_K%d_torch.npy" % (name, K), d)
        full, counts = [], []
        for m in MODELS:
            got, err = gemm_cli("%s_K%d_%s" % (name, K, m), A, B, "e4m3", "e4m3", accum=m)
            if err:
                return fail(name, "gemm --accum %s: %s" % (m, err))
            rc, so, se = run(["cmp", path("%s_K%d_%s.D.npy" % (name, K, m)), pt])
            same = int((got.view(np.uint32) == d.view(np.uint32)).sum())
            if (rc == 0) != (same == M * N):
                return fail(name, "cmp exit %d but NumPy counts %d of %d identical (K = %d, %s)" % (rc, same, M * N, K, m))
            counts.append("%s %d" % (m, same))
            if rc == 0:
                full.append(m)
        report.append("K = %d: %s (of %d: %s)" % (K, "/".join(full) or "no model", M * N, ", ".join(counts)))
    ok(name, "torch %s _scaled_mm on the CPU, reproduced bit for bit (llama_fp8 cmp exit 0) by: %s" % (torch.__version__, "; ".join(report)))


def main():
    rc, out, err = run(["quant", "--help"])
    have_quant = rc == 0
    rc2, out2, err2 = run(["gemm", "--help"])
    have_gemm = rc2 == 0
    check_round_f32()
    if have_quant:
        check_quant()
        check_quant_special()
        check_quant_refusals()
    else:
        fail("quant_help", "llama_fp8 quant --help: exit %d: %s" % (rc, (out + err).strip()[:200]))
    if have_gemm:
        check_gemm_exact()
        check_gemm_fp32()
        check_gemm_tc()
        check_explain()
    else:
        fail("gemm_help", "llama_fp8 gemm --help: exit %d: %s" % (rc2, (out2 + err2).strip()[:200]))
    check_torch()
    print("(kernel_oracles: %.1f s, %s)" % (time.time() - T0, TMP if os.environ.get("KERNEL_ORACLES_KEEP") else "temporary files removed"))
    if not os.environ.get("KERNEL_ORACLES_KEEP"):
        shutil.rmtree(TMP, ignore_errors=True)
    return 1 if NFAIL else 0


if __name__ == "__main__":
    sys.exit(main())
