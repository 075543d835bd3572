#!/bin/sh
# w4a8-fp4-m1 / -m2 (ZeroQuant-FP's W4A8: E2M1 weights whose scales are constrained so the FP4 -> FP8 cast is an
# exponent shift, E4M3 per-token activations). No library implements these; the oracle is an independent NumPy +
# ml_dtypes re-derivation of the definitions in README / llama_fp8.c (fp4_pow2_weight), run on the weight codes and
# scales the GEMMs read (`dump --ops --ops-weights`) of the edge-case model of tests/wformat_edges.py:
#   - every E4M3 weight code and per-channel scale equal to the re-derivation (14 Linears, both methods);
#   - the constraint itself: per group, (dequantized FP8 code / FP4 value) is a power of two (M1: so is the row scale);
#     no weight is clipped by the constraint (|w| <= 6 * T_g);
#   - the GEMM is w8a8's: each dumped accumulator and output equal `gemm` on the dumped codes and scales;
#   - the dequantized weights are within half an E2M1 gap of w (T_g / 4 below 2, T_g / 2 below 4, T_g from 4 on).
set -u
B=${LLAMA_FP8:-./llama_fp8}
T=build/tests/w4a8_fp4; rm -rf $T; mkdir -p $T
python3 -c "import numpy, ml_dtypes" 2> /dev/null || { echo "skip w4a8_fp4: no numpy + ml_dtypes"; exit 0; }
$B synth -o $T/m --shape tiny128 > $T/synth.txt 2>&1 && python3 tests/wformat_edges.py $T/m || { echo "FAIL w4a8_fp4_setup: $(tail -1 $T/synth.txt)"; exit 0; }
for s in w4a8-fp4-m1 w4a8-fp4-m2; do
  $B dump -m $T/m -q $s --ids 128000,9906,1917,4,5 --ops --ops-weights -o $T/$s > $T/d.txt 2>&1 || { echo "FAIL w4a8_fp4_dump_$s: $(tail -1 $T/d.txt)"; continue; }
done
python3 - "$B" $T <<'PYEOF'
import glob, json, os, subprocess, sys
import numpy as np, ml_dtypes
B, T = sys.argv[1:3]
def tensors(p):
    b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
    return {k: (v["shape"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
src = {}
for f in glob.glob(T + "/m/*.safetensors"): src.update(tensors(f))
names = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
         "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj"}
def e2m1(x):   # round to nearest even onto 0, .5, 1, 1.5, 2, 3, 4, 6 (x already clamped to +-6)
    return np.asarray(x, np.float32).astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
def oracle(w, m2):
    N, K = w.shape; G = 128; wg = w.reshape(N, K // G, G)
    S = (np.abs(wg).max(axis=2) / np.float32(6)).astype(np.float32)
    if m2:
        R = S.max(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            k = np.where(S > 0, np.floor(np.log2(R.astype(np.float64) / S.astype(np.float64))), 0).astype(np.int64)
        Tg = np.where(S > 0, np.ldexp(R, -k), 0).astype(np.float32)
        # floor(log2(.)) in float64 could misjudge an exact power-of-two ratio: settle with exact comparisons
        up = (S > 0) & (np.ldexp(R, -(k + 1)) >= S); Tg = np.where(up, np.ldexp(R, -(k + 1)), Tg).astype(np.float32)
        dn = (S > 0) & (Tg < S); Tg = np.where(dn, np.ldexp(R, -(k - 1)), Tg).astype(np.float32)
    else:
        m, e = np.frexp(S); Tg = np.where(S > 0, np.where(m == 0.5, S, np.ldexp(np.float32(1), e)), 0).astype(np.float32)
        R = Tg.max(axis=1, keepdims=True)
    Rn = np.where(R > 0, R, 1).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(Tg[:, :, None] > 0, e2m1(np.clip(wg / Tg[:, :, None], -6, 6)), 0).astype(np.float32)
    codes = (v * (Tg / Rn)[:, :, None] + np.float32(0)).astype(np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8).reshape(N, K)
    return codes, Rn.reshape(N), Tg, v
fails = []; n = 0; exact_shift = 0; total_groups = 0
for s, m2 in (("w4a8-fp4-m1", 0), ("w4a8-fp4-m2", 1)):
    for l in (0, 1):
        for short, hf in names.items():
            shape, raw = src[f"model.layers.{l}.{hf}.weight"]
            w = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
            q = np.load(f"{T}/{s}/L{l:02d}.{short}.w.q.npy"); sc = np.load(f"{T}/{s}/L{l:02d}.{short}.w.scale.npy").reshape(-1)
            oc, orr, Tg, v = oracle(w, m2); n += 1
            if not (np.array_equal(q, oc) and np.array_equal(sc, orr)):
                fails.append(f"{s} L{l} {short}: {int((q != oc).sum())} codes, {int((sc != orr).sum())} scales differ"); continue
            # the constraint: decoded FP8 / FP4 value is a power of two within each group (and the row scale, for M1)
            d = q.view(ml_dtypes.float8_e4m3fn).astype(np.float32).reshape(v.shape)
            nz = v != 0
            ratio = np.where(nz, d / np.where(nz, v, 1), 1)
            mant, _ = np.frexp(ratio[nz])
            exact = np.all(mant == 0.5)
            total_groups += v.shape[0] * v.shape[1]
            if not exact: fails.append(f"{s} L{l} {short}: an FP8 code is not FP4 value * 2^-j (the cast is not a shift)")
            if m2 == 0:
                m_, _ = np.frexp(sc[sc != 1]); 
                if not np.all(m_ == 0.5): fails.append(f"{s} L{l} {short}: M1 row scale not a power of two")
            wg = w.reshape(v.shape)
            if np.any(np.abs(wg) > 6 * Tg[:, :, None] * (1 + 1e-7)): fails.append(f"{s} L{l} {short}: a weight exceeds 6 * T_g (clipped)")
            deq = v.astype(np.float64) * Tg[:, :, None].astype(np.float64)   # exact in float64
            # nearest rounding onto 0 .5 1 1.5 2 3 4 6: the error is at most half the larger gap beside the value
            step = np.where(np.abs(v) < 2, 0.25, np.where(np.abs(v) < 4, 0.5, 1.0)) * Tg[:, :, None].astype(np.float64)
            # plus the rounding of the fp32 quotient w / T_g (M2's T_g is not a power of two): at most 6 * 2^-24 in units of T_g
            if np.any(np.abs(deq - wg.astype(np.float64)) > step + 6 * 2.0 ** -24 * Tg[:, :, None].astype(np.float64)): fails.append(f"{s} L{l} {short}: a dequantized weight is further than half an E2M1 step from w")
print(f"FAIL w4a8_fp4_weights: {fails[:4]}" if fails else
      f"ok w4a8_fp4_weights: {n} Linears (M1 and M2): every E4M3 code and per-channel scale the GEMMs read equals the NumPy + ml_dtypes re-derivation; "
      f"within every group the FP8 code is the FP4 value times a power of two, M1's row scales are powers of two, no weight clipped, each within half an E2M1 step")
# the GEMM is w8a8's: each Linear's accumulator and output from `gemm` on the dumped codes and scales
bad = []; cnt = 0
for s in ("w4a8-fp4-m1", "w4a8-fp4-m2"):
    ops = json.load(open(f"{T}/{s}/ops.json"))
    for o in ops["ops"] if isinstance(ops, dict) else ops:
        if o.get("op") != "linear" or not o.get("file", "").endswith("_proj.npy"): continue
        pre = o["file"][:-4]; site = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "o", "gate_proj": "gate_up", "up_proj": "gate_up", "down_proj": "down"}[pre.split(".")[1]]
        L = pre.split(".")[0]; d = f"{T}/{s}"
        r = subprocess.run([B, "gemm", f"{d}/{L}.{site}.act.q.npy", f"{d}/{pre}.w.q.npy", "--a-scale", f"{d}/{L}.{site}.act.scale.npy",
                            "--b-scale", f"{d}/{pre}.w.scale.npy", "--out", "bf16", "-o", f"{T}/g.npy"], capture_output=True, text=True)
        if r.returncode: bad.append(f"{s} {pre}: {r.stderr.strip()}"); continue
        got = np.load(f"{T}/g.npy"); want = np.load(f"{d}/{pre}.npy")
        wantb = (want.view(np.uint32) >> 16).astype(np.uint16) if want.dtype == np.float32 else want
        cnt += 1
        if not np.array_equal(got.view(np.uint16), wantb.view(np.uint16)): bad.append(f"{s} {pre}")
print(f"FAIL w4a8_fp4_gemm: {bad[:4]}" if bad or cnt == 0 else f"ok w4a8_fp4_gemm: {cnt} Linear outputs of the forward pass == llama_fp8 gemm (w8a8's epilogue) on their dumped codes and scales, bit for bit")
PYEOF
$B dump -m $T/m -q w4a8-fp4-m1 --ids 1,2 -o $T/x > /dev/null 2>&1
$B synth -o $T/tiny --shape tiny > /dev/null 2>&1
$B dump -m $T/tiny -q w4a8-fp4-m2 --ids 1,2 -o $T/x > $T/e.txt 2>&1; rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l < $T/e.txt)" -eq 1 ] && grep -q "not a multiple of the group size 128" $T/e.txt; then echo "ok w4a8_fp4_refuses_ragged_groups: $(cat $T/e.txt)"
else echo "FAIL w4a8_fp4_refuses_ragged_groups: rc $rc: $(cat $T/e.txt)"; fi
