#!/usr/bin/env python3
"""Independent check of `llama_fp8 ppl --compare ... --json` (tests/test_compare.sh).

Recomputes every statistic of the comparison table with numpy (float64) from logits that
`llama_fp8 dump` wrote for the same token chunks, using llama.cpp's --kl-divergence definitions
(NUMERICS.md section 6), and compares with the JSON.

usage: compare_check.py RESULT.json IDS.txt CTX N_CHUNKS FIRST DUMPDIR SCHEME1 SCHEME2 ...
  IDS.txt: the token ids (with BOS) of the text, as `llama_fp8 tokenize --bos` prints them;
  DUMPDIR/<scheme>_<chunk>/logits.npy: dump of chunk <chunk> (ids[c*CTX:(c+1)*CTX]; for the llama.cpp
  protocol with its first token replaced by BOS) in <scheme>;
  FIRST: the first scored logit row of a chunk (0 for the gptq protocol, CTX/2 for llamacpp); rows
  FIRST .. CTX-2 predict ids[c*CTX + FIRST + 1 .. (c+1)*CTX - 1].

Tolerance, derived: both sides use the same float32 logits, so the only differences are
  (1) printing: the JSON has 6 decimals (ppl, ppl_se, dppl, dppl_se, top1_agree, top1_se) or 8
      (kld_*, rms_dp*): half a unit of the last digit, 5e-7 / 5e-9;
  (2) double arithmetic in a different order: each log-softmax / KLD term sums V = 512 values of
      magnitude <= ~20, error <= V * 2^-53 * 20 ~ 1e-12, and the means over N ~ 254 tokens add
      ~N * 2^-53 relative: < 1e-12 -- negligible next to (1);
  (3) the per-token KLDs that the percentiles (p99, median, max) come from are stored as float32 in
      llama_fp8: rounding a value that differs by ~1e-12 can land one float32 ulp away, so those
      three get 2^-23 * |value| on top.
So: |ours - json| <= 5e-7 + 1e-9 (6-decimal fields), <= 5e-9 + 1e-11 (8-decimal), plus 2^-23 |v|
for the percentiles. The count-based top-1 agreement must match to the printed digits.
"""
import json
import sys

import numpy as np


def log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def main():
    res_path, ids_path, ctx, n_chunks, first, ddir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    schemes = sys.argv[7:]
    ids = [int(t) for t in open(ids_path).read().split()]
    res = json.load(open(res_path))
    lp, tgt = {}, []
    for c in range(n_chunks):
        tgt.extend(ids[c * ctx + first + 1:(c + 1) * ctx])
    tgt = np.array(tgt)
    for s in schemes:
        rows = [np.load("%s/%s_%d/logits.npy" % (ddir, s, c))[first:ctx - 1] for c in range(n_chunks)]
        lp[s] = log_softmax(np.concatenate(rows))
    N = len(tgt)
    assert res["tokens_scored"] == N, "tokens_scored %d, expected %d" % (res["tokens_scored"], N)
    idx = np.arange(N)
    nll = {s: -lp[s][idx, tgt] for s in schemes}
    failures = []

    def cmp(scheme, key, ours, digits, pct=False):
        got = res_entry[key]
        tol = (5e-7 + 1e-9) if digits == 6 else (5e-9 + 1e-11)
        if pct:
            tol += 2.0 ** -23 * abs(ours)
        ok = abs(ours - got) <= tol
        print("%s compare_%s_%s_%s: json %.10g numpy %.10g (|d| %.2e, tol %.2e)" % ("ok" if ok else "FAIL", res["protocol"], scheme, key, got, ours, abs(ours - got), tol))
        if not ok:
            failures.append(key)

    base = schemes[0]
    nb = nll[base]
    pb = np.exp(nb.mean())
    for i, s in enumerate(schemes):
        res_entry = res["schemes"][i]
        assert res_entry["scheme"] == s, "scheme %d is %s, expected %s" % (i, res_entry["scheme"], s)
        nq = nll[s]
        pq = np.exp(nq.mean())
        cmp(s, "ppl", pq, 6)
        cmp(s, "ppl_se", pq * np.sqrt(nq.var() / (N - 1)), 6)
        if i == 0:
            continue
        # dPPL and its paired SE (delta method on exp(mean)): var(PPL_q - PPL_b) ~
        # (PPL_q^2 var_q + PPL_b^2 var_b - 2 PPL_q PPL_b cov(q, b)) / (N - 1), population moments
        cov = np.mean((nq - nq.mean()) * (nb - nb.mean()))
        cmp(s, "dppl", pq - pb, 6)
        cmp(s, "dppl_se", np.sqrt((pq * pq * nq.var() + pb * pb * nb.var() - 2 * pq * pb * cov) / (N - 1)), 6)
        pbase = np.exp(lp[base])
        kld = (pbase * (lp[base] - lp[s])).sum(axis=1)
        cmp(s, "kld_mean", kld.mean(), 8)
        cmp(s, "kld_se", kld.std() / np.sqrt(N - 1), 8)
        k32 = kld.astype(np.float32).astype(np.float64)
        cmp(s, "kld_p99", np.percentile(k32, 99.0), 8, pct=True)
        cmp(s, "kld_median", np.percentile(k32, 50.0), 8, pct=True)
        cmp(s, "kld_max", k32.max(), 8, pct=True)
        agree = np.mean(np.argmax(lp[s], axis=1) == np.argmax(lp[base], axis=1))
        cmp(s, "top1_agree", agree, 6)
        cmp(s, "top1_se", np.sqrt(agree * (1 - agree) / (N - 1)), 6)
        dp = np.exp(lp[s][idx, tgt]) - np.exp(lp[base][idx, tgt])
        cmp(s, "rms_dp", np.sqrt(np.mean(dp * dp)), 8)
        cmp(s, "rms_dp_se", dp.std() / np.sqrt(N - 1), 8)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
