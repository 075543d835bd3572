#!/usr/bin/env python3
"""Checks a `llama_fp8 dump --ops --ops-weights` directory (tests/test_dump_ops.sh).

usage: dump_ops_check.py DIR NAME   (prints ok / FAIL lines; $LLAMA_FP8 is the binary)

1. the index: ops.json parses (strictly), every file it lists exists with the dtype and shape it says, every
   input named was written before the op that reads it;
2. independent of llama_fp8 (NumPy float32 arithmetic, ml_dtypes casts; the rules of NUMERICS.md):
   - per-token FP8 activation quantization (vLLM dynamic_per_token_scaled_fp8_quant):
     s = max(absmax / 448, 1 / (448 * 512)), q = e4m3(clip(x / s, -448, 448)), from the norm output it read;
   - the scaled epilogue from the dumped accumulator: out = bf16(fp32(s_a * fp32(s_b * acc))), and with block
     scales from the per-group accumulators: r = fp32(r + fp32(fp32(acc_g * s_a) * s_b)) over the groups in order;
   - the FP8 KV cache: codes = e4m3(clip(k / s)), values read = bf16(decode(code) * s);
   - the residual adds: x = bf16(x + o) in float32;
   - layer_XX.npy is the layer's last residual, logits.npy the lm_head output;
3. against llama_fp8's own commands (the wiring, not the numerics): `llama_fp8 gemm` on the dumped codes and
   scales reproduces every Linear's output and accumulator bit for bit (`llama_fp8 cmp`), and `llama_fp8 quant`
   on the dumped norm output reproduces the activation codes and scales.
"""
import json, os, subprocess, sys
import numpy as np, ml_dtypes

d, name = sys.argv[1], sys.argv[2]
B = os.environ.get("LLAMA_FP8", "./llama_fp8")
fails = 0
def check(cond, what, why=""):
    global fails
    if cond: print(f"ok {name}_{what}")
    else: fails += 1; print(f"FAIL {name}_{what}: {why}")

def strict(c): raise ValueError("non-finite constant " + c)
idx = json.load(open(os.path.join(d, "ops.json")), parse_constant=strict)
ops = idx["ops"]; accum = idx["accum"]
bf = ml_dtypes.bfloat16
def load(f):
    a = np.load(os.path.join(d, f))
    return a.view(bf).astype(np.float32) if a.dtype == np.uint16 else a
def e4m3(x): return np.clip(x, np.float32(-448), np.float32(448)).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
def to_bf16(x): return x.astype(bf).astype(np.float32)

# 1. the index
seen, bad = set(), []
dt = {"float32": np.float32, "bfloat16 (uint16 bits)": np.uint16, "uint8": np.uint8, "int8": np.int8}
for o in ops:
    p = os.path.join(d, o["file"])
    if not os.path.exists(p): bad.append(o["file"] + " missing"); continue
    a = np.load(p)
    if a.dtype != dt[o["dtype"]] or list(a.shape) != o["shape"]: bad.append(f'{o["file"]}: {a.dtype} {a.shape} vs index {o["dtype"]} {o["shape"]}')
    for i in o["inputs"]:
        if i not in seen: bad.append(f'{o["file"]} reads {i}, not written before it')
    seen.add(o["file"])
check(not bad and len(ops) > 0, "index", "; ".join(bad[:3]))
byfile = {o["file"]: o for o in ops}

# 2. independent checks
n_tok = n_epi = n_kv = n_res = 0; bad = []
for o in ops:
    f = o["file"]
    if o["op"] == "quantize" and f.endswith(".act.q.npy") and "w8a8" in idx["scheme"] and "block" not in idx["scheme"] and "static" not in idx["scheme"]:
        x = load(o["inputs"][0]); q = np.load(os.path.join(d, f)); s = np.load(os.path.join(d, f.replace(".act.q.", ".act.scale.")))
        amax = np.max(np.abs(x), axis=1, keepdims=True).astype(np.float32)
        want_s = np.maximum(amax / np.float32(448), np.float32(1.0 / (448 * 512)))
        want_q = e4m3(x / want_s)
        if not (np.array_equal(want_s.view(np.uint32), s.view(np.uint32)) and np.array_equal(want_q, q)): bad.append(f)
        n_tok += 1
    if o["op"] == "linear" and len(o["inputs"]) == 4:
        acc_f = f.replace(".npy", ".acc.npy")
        if acc_f in byfile:
            acc = load(acc_f); sa = np.load(os.path.join(d, o["inputs"][1])); sb = np.load(os.path.join(d, o["inputs"][3]))
            out = None
            if acc.ndim == 2 and sa.shape == (acc.shape[0], 1) and sb.shape == (acc.shape[1], 1):   # per token x per channel
                t = (sb.reshape(1, -1) * acc).astype(np.float32); out = (sa * t).astype(np.float32)
            elif acc.ndim == 3:   # block scales: r = fp32(r + fp32(fp32(acc_g * s_a[m][g]) * s_b[n / 128][g])), groups in order
                ng, T, N = acc.shape; out = np.zeros((T, N), np.float32)
                for g in range(ng):
                    a_g = sa[:, g:g + 1] if sa.ndim == 2 and sa.shape[1] == ng and ng > 1 else sa.reshape(-1, 1) if sa.size == T else sa.reshape(1, 1)
                    b_g = (sb[np.arange(N) // 128, g] if sb.ndim == 2 and sb.shape[1] == ng else sb.reshape(-1)).reshape(1, -1)
                    out = (out + ((acc[g] * a_g).astype(np.float32) * b_g).astype(np.float32)).astype(np.float32)
            if out is not None:
                if o["dtype"].startswith("bfloat16"): out = to_bf16(out)
                if not np.array_equal(out.view(np.uint32), load(f).view(np.uint32)): bad.append(f)
                n_epi += 1
    if o["op"] == "kv_store" and f.endswith("_cache.q.npy"):
        src = load(o["inputs"][0]); s = np.load(os.path.join(d, f.replace(".q.npy", ".scale.npy")))[0]
        q = np.load(os.path.join(d, f)); vals = load(f.replace(".q.npy", ".npy"))
        fmt = ml_dtypes.float8_e4m3fn
        back = (q.view(fmt).astype(np.float32) * s).astype(np.float32)
        if idx["scheme"].startswith("fp32"): pass
        else: back = to_bf16(back)
        if not (np.array_equal(e4m3(src / s), q) and np.array_equal(back.view(np.uint32), vals.view(np.uint32))): bad.append(f)
        n_kv += 1
    if o["op"] == "residual":
        x, xo = load(o["inputs"][0]), load(o["inputs"][1])
        want = (x + xo).astype(np.float32)
        if not o["dtype"] == "float32": want = to_bf16(want)
        if not np.array_equal(want.view(np.uint32), load(f).view(np.uint32)): bad.append(f)
        n_res += 1
check(not bad and n_res > 0, "numpy", f"{len(bad)} files differ from NumPy + ml_dtypes: {bad[:4]}")
print(f"# {name}: numpy checks: {n_tok} per-token quantizations, {n_epi} epilogues, {n_kv} FP8 KV stores, {n_res} residual adds")
L = sum(1 for o in ops if o["file"].endswith("mlp_residual.npy"))
bad = [l for l in range(L) if not np.array_equal(load(f"L{l:02d}.mlp_residual.npy").view(np.uint32), np.load(os.path.join(d, f"layer_{l:02d}.npy")).view(np.uint32))]
lg = np.array_equal(load("lm_head.npy").view(np.uint32), np.load(os.path.join(d, "logits.npy")).view(np.uint32))
check(L > 0 and not bad and lg, "layer_files", f"layers {bad}, logits same: {lg}")

# 3. llama_fp8 gemm / quant reproduce the dump
def run(*a): return subprocess.run([B, *a], capture_output=True, text=True)
bad = []; n = 0
for o in ops:
    wq = [i for i in o["inputs"] if i.endswith(".w.q.npy")]
    if o["op"] != "linear" or not wq: continue   # baseline Linears: no codes to multiply
    ins = {("ascale" if i.endswith(".act.scale.npy") else "ws" if i.endswith(".w.scale.npy") else "wq" if i.endswith(".w.q.npy") else "a"): os.path.join(d, i) for i in o["inputs"]}
    out = os.path.join(d, "chk.npy"); f = os.path.join(d, o["file"])
    blk = ["--block"] if np.load(ins["ws"]).shape != (np.load(ins["wq"]).shape[0], 1) and np.load(ins["ws"]).size != 1 else []
    sa = ["--a-scale", ins["ascale"]] if "ascale" in ins else []
    r = run("gemm", ins["a"], ins["wq"], *sa, "--b-scale", ins["ws"], "--accum", accum, "--out", "bf16" if o["dtype"].startswith("bf") else "f32", "-o", out, *blk)
    c = run("cmp", out, f)
    if r.returncode or c.returncode: bad.append(o["file"] + ": " + (r.stderr.strip() or c.stdout.splitlines()[-1]))
    acc_f = o["file"].replace(".npy", ".acc.npy")
    if acc_f in byfile and len(byfile[acc_f]["shape"]) == 2:
        r = run("gemm", ins["a"], ins["wq"], "--accum", accum, "-o", out)
        c = run("cmp", out, os.path.join(d, acc_f))
        if r.returncode or c.returncode: bad.append(acc_f)
    n += 1
if any(o["op"] == "weight" for o in ops): check(n > 0 and not bad, "gemm_reproduces", f"{len(bad)} of {n}: {bad[:3]}")
bad = []; n = 0
conv = {"w8a8": ("token", "vllm"), "w8a8-block": ("group", "vllm")}
for o in ops:
    f = o["file"]
    sch = idx["scheme"].split("(")[0]
    if o["op"] != "quantize" or not f.endswith(".act.q.npy") or sch not in conv: continue
    src = os.path.join(d, o["inputs"][0]); pre = os.path.join(d, "chkq")
    if np.load(src).dtype == np.uint16:   # bf16 bits: quant reads them as bfloat16 values (exact in fp32)
        pass
    g, cv = conv[sch]
    r = run("quant", src, "--granularity", g, "--convention", cv, "-o", pre)
    ok = r.returncode == 0 and run("cmp", pre + ".q.npy", os.path.join(d, f)).returncode == 0 and \
         run("cmp", pre + ".scale.npy", os.path.join(d, f.replace(".act.q.", ".act.scale."))).returncode == 0
    if not ok: bad.append(f + " " + r.stderr.strip())
    n += 1
if conv.get(idx["scheme"].split("(")[0]): check(n > 0 and not bad, "quant_reproduces", f"{len(bad)} of {n}: {bad[:3]}")
sys.exit(1 if fails else 0)
