#!/usr/bin/env python3
"""Generates tests/golden/fp8_digests.txt and tests/golden/fp8_decode.txt from the real oracles.

  fp8_digests.txt  one line per conversion: NAME MODE DIGEST ORACLE...
                   DIGEST is the digest (tests/fp8_digest.h) of the oracle's outputs for all 2^32
                   float bit patterns, in input order.
    e4m3/e5m2      CUDA's host code __nv_cvt_float_to_fp8 (cuda_fp8.h, compiled with g++ by
                   tests/fp8_cuda_oracle.cpp digest); skipped with a note when cuda_fp8.h is absent.
    e4m3fnuz, e5m2fnuz, e8m0, e2m1
                   ml_dtypes: nosat = x.astype(T), ml_dtypes' default cast (it offers no other
                   from Python); satfinite = np.clip(x, lowest, max).astype(T): overflow and ±inf
                   saturate, NaN stays NaN (lowest = -max, or 2^-127 for unsigned E8M0).
                   E8M0 needs ml_dtypes >= 0.7.0 (MIN_ML_DTYPES): 0.5.x and 0.6.0 round
                   (2^-127, 1.5·2^-127) up to 2^-126, 0.7.0 and fp8.h to 2^-127; the script
                   refuses an older ml_dtypes.
    bf16           ml_dtypes x.astype(bfloat16) (NaN -> 0x7FC0 | sign).
    fp16           torch .to(float16) for every non-NaN input; NaN -> 0x7E00 | sign (torch's
                   scalar c10 rule; its vectorised path may keep payload bits).
  fp8_decode.txt   for each format, the float32 bits of all 256 codes as decoded by ml_dtypes
                   (x.view(T).astype(float32)); E2M1 codes 16..255 repeat code & 15.
                   A last line "fp16" holds a digest of the float32 bits of all 65536 halves
                   decoded by numpy (NaN made quiet, as x86 F16C does).

Usage: python3 tests/gen_fp8_digests.py [--cuda-only | --ml-dtypes-only]
  (~10 CPU-minutes; needs numpy, ml_dtypes, torch, and g++ with /usr/local/cuda/include/cuda_fp8.h
  for the CUDA lines; --cuda-only rewrites just the CUDA lines of fp8_digests.txt;
  --ml-dtypes-only rewrites just the ml_dtypes lines (FNUZ, E8M0, E2M1, bf16) and fp8_decode.txt,
  keeping the CUDA and torch lines, so it needs neither torch nor cuda_fp8.h)
"""
import os
import subprocess
import sys

import ml_dtypes
import numpy as np

K = np.uint64(0x9E3779B97F4A7C15)
S32 = np.uint64(32)
CHUNK = 1 << 16          # bytes per chunk (= inputs per chunk)
BATCH = 1 << 27          # inputs per batch: 2048 chunks
MIN_ML_DTYPES = (0, 7)   # fp8.h's E8M0 rounding below 2^-126 is that of ml_dtypes >= 0.7.0
HEADER = ("# digests of 2^32 outputs (tests/fp8_digest.h), made by tests/gen_fp8_digests.py; "
          "e8m0 needs ml_dtypes >= 0.7.0\n")


def ml_dtypes_version():
    return tuple(int(p) for p in ml_dtypes.__version__.split(".")[:2])


def hash_words(words):
    """words: (n_words, n_lanes) uint64 -> (n_lanes,) hashes, each lane hashed down its column."""
    h = np.zeros(words.shape[1], np.uint64)
    for w in words:
        h ^= w
        h *= K
        h ^= h >> S32
    return h


def chunk_hashes(out_bytes):
    """out_bytes: uint8 array, a whole number of chunks -> one hash per chunk."""
    words = out_bytes.view("<u8").reshape(-1, CHUNK // 8)
    return hash_words(np.ascontiguousarray(words.T))


def combine(hashes):
    return int(hash_words(np.asarray(hashes, np.uint64).reshape(-1, 1))[0])


def cuda_lines():
    """The e4m3/e5m2 lines, from CUDA's own header compiled by g++ (tests/fp8_cuda_oracle.cpp digest)."""
    lines = []
    cuda_h = "/usr/local/cuda/include/cuda_fp8.h"
    if not os.path.exists(cuda_h):
        print("note: no cuda_fp8.h: e4m3/e5m2 lines not generated", file=sys.stderr)
        return lines
    exe = "build/tests/fp8_cuda_oracle"
    os.makedirs("build/tests", exist_ok=True)
    subprocess.run(["g++", "-O2", "-fopenmp", "-I.", "-I/usr/local/cuda/include",
                    "tests/fp8_cuda_oracle.cpp", "-o", exe], check=True)
    cv = "?"
    for line in open(os.path.join(os.path.dirname(cuda_h), "cuda.h"), errors="replace"):
        if line.startswith("#define CUDA_VERSION "):
            n = int(line.split()[2])
            cv = f"{n // 1000}.{n % 1000 // 10}"
    for line in subprocess.run([exe, "digest"], check=True, capture_output=True, text=True).stdout.splitlines():
        n, mode, d = line.split()[:3]
        lines.append(f"{n} {mode} {d} CUDA {cv} cuda_fp8.h __nv_cvt_float_to_fp8 (host code, g++)")
    return lines


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    if sys.argv[1:] == ["--cuda-only"]:  # rewrite only the CUDA lines, keep the others
        path = "tests/golden/fp8_digests.txt"
        old = open(path).read().splitlines()
        keep = [l for l in old if not l.startswith("#") and " CUDA " not in l]
        with open(path, "w") as f:
            f.write(old[0] + "\n" + "\n".join(cuda_lines() + keep) + "\n")
        print(open(path).read())
        return
    ml_only = sys.argv[1:] == ["--ml-dtypes-only"]
    if sys.argv[1:] and not ml_only:
        sys.exit("usage: python3 tests/gen_fp8_digests.py [--cuda-only | --ml-dtypes-only]")
    if ml_dtypes_version() < MIN_ML_DTYPES:
        sys.exit(f"ml_dtypes {ml_dtypes.__version__} < 0.7.0 rounds (2^-127, 1.5·2^-127) up to 2^-126 in "
                 "float8_e8m0fnu; fp8.h follows 0.7.0: install ml_dtypes>=0.7.0")
    if ml_only:  # keep the CUDA lines and the torch fp16 line of the committed file
        old = open("tests/golden/fp8_digests.txt").read().splitlines()
        kept_cuda = [l for l in old if not l.startswith("#") and " CUDA " in l]
        kept_fp16 = [l for l in old if l.startswith("fp16 ")]
        torch = None
    else:
        import torch

    f8 = [
        ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz, -240.0, 240.0),
        ("e5m2fnuz", ml_dtypes.float8_e5m2fnuz, -57344.0, 57344.0),
        ("e8m0", ml_dtypes.float8_e8m0fnu, 2.0 ** -127, 2.0 ** 127),
        ("e2m1", ml_dtypes.float4_e2m1fn, -6.0, 6.0),
    ]
    names = []
    for n, _, lo, hi in f8:
        names += [(n, "nosat"), (n, "satfinite")]
    names += [("bf16", "-")] + ([] if ml_only else [("fp16", "-")])
    per = {k: [] for k in names}
    for start in range(0, 1 << 32, BATCH):
        u = np.arange(start, start + BATCH, dtype=np.uint64).astype(np.uint32)
        x = u.view(np.float32)
        isnan = np.isnan(x)
        with np.errstate(all="ignore"):
            for n, t, lo, hi in f8:
                per[(n, "nosat")].append(chunk_hashes(x.astype(t).view(np.uint8)))
                c = np.clip(x, np.float32(lo), np.float32(hi))
                per[(n, "satfinite")].append(chunk_hashes(c.astype(t).view(np.uint8)))
            per[("bf16", "-")].append(chunk_hashes(x.astype(ml_dtypes.bfloat16).view(np.uint8)))
            if ml_only:
                continue
            h = torch.from_numpy(x).to(torch.float16).view(torch.int16).numpy().view(np.uint16).copy()
            h[isnan] = ((u[isnan] >> 16) & 0x8000).astype(np.uint16) | np.uint16(0x7E00)
            per[("fp16", "-")].append(chunk_hashes(h.view(np.uint8)))
        print(f"\r{(start + BATCH) >> 27}/32", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    v = ml_dtypes.__version__
    src = {
        "nosat": f"ml_dtypes {v} x.astype(T)",
        "satfinite": f"ml_dtypes {v} np.clip(x, lowest, max).astype(T)",
    }
    lines = kept_cuda if ml_only else cuda_lines()
    for n, mode in names:
        d = combine(np.concatenate(per[(n, mode)]))
        if n == "bf16":
            o = f"ml_dtypes {v} x.astype(bfloat16)"
        elif n == "fp16":
            o = f"torch {torch.__version__} .to(float16), NaN -> 0x7E00|sign"
        else:
            o = src[mode]
        lines.append(f"{n} {mode} {d:016x} {o}")
    if ml_only:
        lines += kept_fp16
    with open("tests/golden/fp8_digests.txt", "w") as f:
        f.write(HEADER)
        f.write("\n".join(lines) + "\n")

    # Decode tables.
    dec = []
    codes = np.arange(256, dtype=np.uint8)
    for n, t in [("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2),
                 ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz), ("e5m2fnuz", ml_dtypes.float8_e5m2fnuz),
                 ("e8m0", ml_dtypes.float8_e8m0fnu), ("e2m1", ml_dtypes.float4_e2m1fn)]:
        c = codes & 0xF if n == "e2m1" else codes
        vals = c.view(t).astype(np.float32).view(np.uint32)
        dec.append(n + " " + " ".join(f"{b:08x}" for b in vals))
    hh = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    with np.errstate(all="ignore"):
        f32 = hh.view(np.float16).astype(np.float32).view(np.uint32).copy()
    nan = ((hh & 0x7C00) == 0x7C00) & ((hh & 0x3FF) != 0)
    f32[nan] |= np.uint32(0x400000)
    dec.append(f"fp16 {int(hash_words(f32.view('<u8').reshape(-1, 1))[0]):016x}")
    with open("tests/golden/fp8_decode.txt", "w") as f:
        f.write(f"# decoded float32 bits of all 256 codes: ml_dtypes {v} (x.view(T).astype(float32)), "
                f"made by tests/gen_fp8_digests.py\n")
        f.write("# fp16: digest of the float32 bits of all 65536 halves, numpy "
                f"{np.__version__} astype(float32) with NaN made quiet, hashed as one stream of words\n")
        f.write("\n".join(dec) + "\n")
    print(open("tests/golden/fp8_digests.txt").read())


if __name__ == "__main__":
    main()
