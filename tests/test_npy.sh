#!/bin/sh
# llama_fp8 cmp on .npy files written by NumPy (and ml_dtypes for bfloat16): the counts it prints against
# what NumPy computes for the same arrays, the exit status, and the strict .npy reader's refusals.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/npy; rm -rf $T; mkdir -p $T
TABLE_NAME=npy; . tests/errors_lib.sh
python3 -c "import numpy, ml_dtypes" 2> /dev/null || { echo "skip npy: no numpy + ml_dtypes"; exit 0; }
python3 - $T <<'PYEOF'
import numpy as np, ml_dtypes, sys, json
t = sys.argv[1]; r = np.random.default_rng(7)
a = r.standard_normal((64, 33)).astype(np.float32); b = a.copy()
b[3, 4] = np.nextafter(b[3, 4], np.float32(np.inf))                            # 1 ulp
b[5, 6] = np.nextafter(np.nextafter(b[5, 6], np.float32(0)), np.float32(0))     # 2 ulps
b[7, 8] *= np.float32(1.001)                                                      # many
b[9, 10] = np.nan                                                                  # NaN mismatch
b[11, 12] = -0.0; a[11, 12] = 0.0                                                 # +0 / -0: 0 ulps, not identical
np.save(t + "/a.npy", a); np.save(t + "/b.npy", b)
ia, ib = a.view(np.int32).astype(np.int64), b.view(np.int32).astype(np.int64)
oa = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia); ob = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
fin = ~np.isnan(b)
u = np.abs(oa - ob)[fin]
same = int((a.view(np.uint32) == b.view(np.uint32)).sum())
json.dump({"same": same, "n": a.size, "u1": int((u == 1).sum()), "u2": int((u == 2).sum()), "max": int(u.max()),
           "argmax": int(np.flatnonzero(fin.ravel())[u.argmax()]), "nan": int((~fin).sum())}, open(t + "/want.json", "w"))
ab = a.astype(ml_dtypes.bfloat16); bb = ab.copy(); bb[0, 0] = ml_dtypes.bfloat16(float(bb[0, 0]) * 1.01)
np.save(t + "/a16.npy", ab); np.save(t + "/b16.npy", bb); np.save(t + "/b16u.npy", bb.view(np.uint16))
q = np.arange(256, dtype=np.uint8).reshape(16, 16); q2 = q.copy(); q2[1, 1] += 2
np.save(t + "/q.npy", q); np.save(t + "/q2.npy", q2)
np.save(t + "/fort.npy", np.asfortranarray(a)); np.save(t + "/f64.npy", a.astype(np.float64)); np.save(t + "/be.npy", a.astype(">f4"))
raw = open(t + "/a.npy", "rb").read(); open(t + "/trunc.npy", "wb").write(raw[:-5]); open(t + "/long.npy", "wb").write(raw + b"xx")
open(t + "/magic.npy", "wb").write(b"PK\x03\x04" + raw[4:])
np.save(t + "/rows2.npy", a[:2])
def npy_with(header):   # a version 1.0 file with a hand-written header, padded as numpy pads it
    h = header.encode(); h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h
open(t + "/huge.npy", "wb").write(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }") + bytes(16))
open(t + "/fivedim.npy", "wb").write(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }") + bytes(4))
open(t + "/negdim.npy", "wb").write(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }"))
PYEOF
out=$($B cmp $T/a.npy $T/b.npy); rc=$?
if python3 - "$out" $T/want.json <<'PYEOF'
import json, re, sys
out, w = sys.argv[1], json.load(open(sys.argv[2]))
def num(pat): m = re.search(pat, out); assert m, pat; return int(m.group(1))
assert num(r"bit-identical: (\d+)") == w["same"], ("same", out)
assert num(r"  1: (\d+)") == w["u1"] and num(r"  2: (\d+)") == w["u2"], ("hist", out)
assert num(r"max ulp: (\d+)") == w["max"] and num(r"max ulp: \d+ at \[(\d+)\]") == w["argmax"], ("max", out)
assert num(r"NaN mismatches: (\d+)") == w["nan"] and "DIFFERENT" in out
PYEOF
then [ $rc -eq 1 ] && echo "ok npy_cmp_counts: bit-identical count, ulp histogram, max ulp and its index, NaN mismatches = NumPy's; exit 1" || echo "FAIL npy_cmp_counts: exit $rc"
else echo "FAIL npy_cmp_counts: $out"; fi
$B cmp $T/a.npy $T/a.npy > /dev/null && echo "ok npy_cmp_identical_exit0" || echo "FAIL npy_cmp_identical_exit0"
$B cmp $T/a.npy $T/b.npy --ulp 100000000 > /dev/null; [ $? -eq 1 ] && echo "ok npy_cmp_nan_never_within_ulp" || echo "FAIL npy_cmp_nan_never_within_ulp"
out=$($B cmp $T/a16.npy $T/b16.npy); rc=$?
n=$($B cmp $T/a16.npy $T/b16u.npy | grep -c "bit-identical: 2111")
if [ $rc -eq 1 ] && printf '%s' "$out" | grep -q "bfloat16" && printf '%s' "$out" | grep -q "bit-identical: 2111 " && [ "$n" -eq 1 ]; then echo "ok npy_cmp_bf16: ml_dtypes '<V2' and uint16 bits read alike, one element differs"
else echo "FAIL npy_cmp_bf16: $out"; fi
out=$($B cmp $T/q.npy $T/q2.npy --ulp 2); rc=$?
if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q "within --ulp" && printf '%s' "$out" | grep -q "  2: 1"; then echo "ok npy_cmp_fp8_codes: a code 2 steps away is within --ulp 2"
else echo "FAIL npy_cmp_fp8_codes: rc $rc $out"; fi
expect npy_fortran "Fortran order is not supported" $B cmp $T/fort.npy $T/a.npy
expect npy_float64 "dtype '<f8' not supported" $B cmp $T/f64.npy $T/a.npy
expect npy_big_endian "dtype '>f4' not supported" $B cmp $T/be.npy $T/a.npy
expect npy_truncated "(truncated)" $B cmp $T/trunc.npy $T/a.npy
expect npy_trailing_bytes "data is 8450 bytes, the shape and dtype need 8448" $B cmp $T/long.npy $T/a.npy
expect npy_not_npy "not a .npy file" $B cmp $T/magic.npy $T/a.npy
expect npy_dtype_mismatch "dtypes differ" $B cmp $T/a.npy $T/a16.npy
expect npy_shape_mismatch "shapes differ" $B cmp $T/a.npy $T/rows2.npy
expect npy_absurd_shape "shape too large" $B cmp $T/huge.npy $T/a.npy
expect npy_five_dims "more than 4 dimensions" $B cmp $T/fivedim.npy $T/a.npy
expect npy_negative_dim "bad shape" $B cmp $T/negdim.npy $T/a.npy
expect npy_missing "No such file" $B cmp $T/nope.npy $T/a.npy
expect npy_one_file "give two .npy files" $B cmp $T/a.npy
expect npy_unknown_option "unknown option" $B cmp $T/a.npy $T/a.npy --frob
table_check "$@"
