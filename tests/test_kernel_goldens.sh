#!/bin/sh
# llama_fp8 quant and gemm (the .npy commands) against the committed scheme goldens of tests/golden/scheme_*.safetensors,
# made by tests/gen_scheme_goldens.py with compressed-tensors 0.20.0 (weights: calculate_qparams + the compressors, CPU)
# and a torch re-implementation of vLLM's CUDA kernels (activations; GEMMs: float64 / int64 matmul then the fp32
# epilogue). Every case whose function the quant command offers is run through the command line: the input saved as
# .npy (float32, or bfloat16 where the case quantizes in bf16 arithmetic), codes and scales compared byte for byte
# (a bf16 golden scale converted exactly to float32). Needs numpy only.
set -u
B=${LLAMA_FP8:-./llama_fp8}
T=build/tests/kernel_goldens; rm -rf $T; mkdir -p $T
python3 -c "import numpy" 2> /dev/null || { echo "skip kernel_goldens: no numpy"; exit 0; }
python3 - "$B" "$T" <<'PYEOF'
import json, glob, subprocess, sys
import numpy as np
B, T = sys.argv[1], sys.argv[2]
DT = {"F32": np.float32, "BF16": np.uint16, "U8": np.uint8, "I8": np.int8}
def load(p):
    b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
    t = {k: np.frombuffer(b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]], DT[v["dtype"]]).reshape(v["shape"])
         for k, v in h.items() if k != "__metadata__"}
    return t, {k: v["dtype"] for k, v in h.items() if k != "__metadata__"}, h["__metadata__"]
def f32(a, dt): return (a.astype(np.uint32) << 16).view(np.float32) if dt == "BF16" else a.astype(np.float32)
def run(*a): return subprocess.run([B, *a], capture_output=True, text=True)
n_ok = 0; kv_cases = []
for p in sorted(glob.glob("tests/golden/scheme_*.safetensors")):
    t, dt, meta = load(p)
    for c in json.loads(meta.get("cases", "[]")):
        f, name = c["func"], "kernel_goldens_" + c["name"]
        fmt = {"e4m3": "e4m3", "e5m2": "e5m2", "i8": "int8"}.get(c.get("fmt", "e4m3"))
        if f.endswith("int8_token") or f.endswith("int8_channel"): fmt = "int8"
        x = f32(t[c["x"]], dt[c["x"]]); xbits = None
        if f == "emu_quant_token": args = ["--granularity", "token", "--convention", "vllm"] + (["--scale-ub", repr(float(c["scale_ub"]))] if c.get("scale_ub") else [])
        elif f == "emu_quant_tensor": args = ["--granularity", "tensor", "--convention", "vllm", "--static-scale", repr(float(f32(t[c["s"]], dt[c["s"]])[0]))]
        elif f == "emu_quant_tensor_dynamic": args = ["--granularity", "tensor", "--convention", "vllm"]
        elif f == "emu_quant_int8_token": args = ["--granularity", "token", "--convention", "vllm"]
        elif f == "emu_quant_group": args = ["--granularity", "group", "--group", str(c["G"]), "--convention", "vllm"]
        elif f in ("emu_quant_channel", "emu_quant_int8_channel"): args = ["--granularity", "channel", "--convention", "compressed-tensors"]
        elif f == "emu_quant_block":
            if (c["BN"], c["BK"]) != (128, 128): print(f"skip {name}: {c['BN']}x{c['BK']} blocks (the command quantizes 128x128)"); continue
            args = ["--granularity", "block", "--convention", "compressed-tensors"]
        elif f == "quant_weight":
            args = ["--granularity", ["channel", "tensor", "block"][c["granularity"]], "--convention", "compressed-tensors"]
            if c["bf16_arith"]:
                if dt[c["x"]] != "BF16": print(f"skip {name}: bf16 arithmetic on a non-bf16 input"); continue
                xbits = t[c["x"]]
        else: kv_cases.append(c["name"]); continue   # the FP8 KV cache (x / s): checked through dump --ops (tests/test_dump_ops.sh)
        xin = f"{T}/{c['name']}_x.npy"
        np.save(xin, xbits if xbits is not None else x)
        r = run("quant", xin, "--format", fmt, *args, "-o", f"{T}/{c['name']}")
        if r.returncode: print(f"FAIL {name}: quant exited {r.returncode}: {r.stderr.strip()}"); continue
        q, s = np.load(f"{T}/{c['name']}.q.npy"), np.load(f"{T}/{c['name']}.scale.npy")
        wq, ws = t[c["q"]], f32(t[c["s"]], dt[c["s"]])
        dq = int((q.reshape(-1).view(np.uint8) != wq.reshape(-1).view(np.uint8)).sum())
        ds = int((s.reshape(-1).view(np.uint32) != ws.reshape(-1).view(np.uint32)).sum()) if s.size == ws.size else -1
        if q.dtype != (np.int8 if fmt == "int8" else np.uint8) or q.shape != wq.shape or dq or ds:
            print(f"FAIL {name}: {dq} code and {ds} scale differences (shapes {q.shape} {s.shape} vs {wq.shape} {ws.shape}; oracle {c.get('oracle', meta.get('oracle'))})")
        else: print(f"ok {name}: {wq.size} codes, {ws.size} scales identical ({f}; oracle: {c.get('oracle', '')[:60]})"); n_ok += 1
    if meta.get("func") == "emu_gemm":
        name = "kernel_goldens_" + p.split("scheme_")[1].split(".")[0]
        a, b = t["A"], t["B"]
        np.save(f"{T}/A.npy", a); np.save(f"{T}/B.npy", b); np.save(f"{T}/sa.npy", t["sa"]); np.save(f"{T}/sb.npy", t["sb"])
        blk = ["--block"] if "block" in meta["scales"] else []
        bad = []
        for out, key in (("f32", "D"), ("bf16", "D_bf16")):
            r = run("gemm", f"{T}/A.npy", f"{T}/B.npy", "--a-scale", f"{T}/sa.npy", "--b-scale", f"{T}/sb.npy", "--accum", meta["accum"], "--out", out, "-o", f"{T}/D.npy", *blk)
            if r.returncode: bad.append(f"{out}: exit {r.returncode} {r.stderr.strip()}"); continue
            d = np.load(f"{T}/D.npy"); w = t[key]
            nd = int((d.reshape(-1).view(np.uint8) != w.reshape(-1).view(np.uint8)).sum()) if d.nbytes == w.nbytes else -1
            if nd: bad.append(f"{out}: {nd} bytes differ")
        print(f"FAIL {name}: {'; '.join(bad)}" if bad else f"ok {name}: D [{a.shape[0]}, {b.shape[0]}] f32 and bf16 identical (oracle: {meta.get('oracle', '')[:70]})")
print(f"# not a quant command rule (FP8 KV cache stores, checked by tests/test_dump_ops.sh): {' '.join(kv_cases)}")
PYEOF
# live: compressed-tensors itself on fresh matrices (its group strategy too), when torch and the library are installed
if python3 -c "import torch, compressed_tensors" 2> /dev/null; then python3 tests/quant_ct_live.py "$B" "$T"
else echo "skip kernel_ct_live: no torch + compressed-tensors (the committed goldens above still ran)"; fi
