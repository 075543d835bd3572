#!/usr/bin/env python3
"""Goldens for stories260K from karpathy/llama2.c's own run.c (tests/golden/llama2c_*).

    python3 tests/gen_llama2c_golden.py /path/to/run.c [DATA_DIR]   (default $LLAMA_FP8_DATA, ../shared/data)

run.c is karpathy/llama2.c at commit bd182289c596fa6059eb7b3b7c8ccd04b5c90fc3 (the version with
GQA, -z and -i; its forward pass is the same fp32 arithmetic as later versions). It is not committed:
fetch it yourself. This script copies it to a temporary directory, adds three hooks by string
replacement (write the logits of every position, write the residual stream after every layer,
force a given token sequence; nothing in the arithmetic changes), compiles it with
`gcc -O3 -o run run.c -lm` (no OpenMP, no -ffast-math: one fixed summation order), and writes

  llama2c_greedy200.txt      stdout of `run stories260K.bin -z tok512.bin -t 0.0 -n 200`
  llama2c_prompt.txt         stdout of `run ... -t 0.0 -n 180 -i "<PROMPT>"` (PROMPT below)
  llama2c_dump_logits.npy    float32 [T, 512] run.c's logits at positions 0..T-1 for IDS
  llama2c_dump_layer_XX.npy  float32 [T, 64]  run.c's residual stream x after layer XX
  llama2c.txt                the commands, ids, prompt token count and the derived bounds

IDS = BOS (1) + run.c's own encoding of the first sentences of TinyStories text (tinystories_sample.txt).

Bound (fp32 dump): E = the largest |difference| between run.c and a float64 evaluation of the same
model (NumPy, weights widened exactly, interleaved RoPE as run.c does it), also over a NumPy float32
evaluation (BLAS summation order). Both fp32 evaluations are samples of the typical sqrt(K)*u
error; the worst case of any summation order is K*u (Higham), so tol = (sqrt(Kmax) + 1) * E with
Kmax = the longest reduction (hidden_dim 172, or T when larger).
"""
import math, os, re, shutil, struct, subprocess, sys, tempfile
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")
COMMIT = "bd182289c596fa6059eb7b3b7c8ccd04b5c90fc3"
PROMPT = "Ben saw a big dog"
PROMPT_N = 180  # run.c -n for the prompt run: ends before the model emits BOS (it does at 186)

HOOKS = [  # (anchor in run.c, text inserted after it)
    ("#include <string.h>\n",
     "static FILE *g_logits, *g_layers; static int g_ids[4096], g_nids; /* golden hooks */\n"),
    ("        // residual connection\n        for (int i = 0; i < dim; i++) {\n            x[i] += s->xb[i];\n        }\n",
     "        if (g_layers) fwrite(x, sizeof(float), dim, g_layers);\n"),
    ("        transformer(token, pos, &config, &state, &weights);\n",
     "        if (g_logits) fwrite(state.logits, sizeof(float), config.vocab_size, g_logits);\n"),
    ("        pos++;\n",
     "        if (g_nids) next = pos < g_nids ? g_ids[pos] : 1;\n"),
    ("    if(rng_seed == 0) { rng_seed =  (unsigned int)time(NULL);}\n",
     "    if (getenv(\"G_LOGITS\")) g_logits = fopen(getenv(\"G_LOGITS\"), \"wb\");\n"
     "    if (getenv(\"G_LAYERS\")) g_layers = fopen(getenv(\"G_LAYERS\"), \"wb\");\n"
     "    if (getenv(\"G_IDS\")) { char *p = getenv(\"G_IDS\"); while (*p && g_nids < 4096) { g_ids[g_nids++] = strtol(p, &p, 10); if (*p == ',') p++; } }\n"),
    ("        bpe_encode(prompt, vocab, vocab_scores, config.vocab_size, max_token_length, prompt_tokens, &num_prompt_tokens);\n",
     "        if (getenv(\"G_PRINT_IDS\")) { for (int i = 0; i < num_prompt_tokens; i++) fprintf(stderr, \"%s%d\", i ? \",\" : \"\", prompt_tokens[i]); fprintf(stderr, \"\\n\"); }\n"),
]


def build(run_c, tmp):
    src = open(run_c).read()
    for anchor, add in HOOKS:
        if src.count(anchor) != 1:
            sys.exit(f"{run_c}: not llama2.c run.c @ {COMMIT[:8]} (anchor not found once: {anchor.strip()[:60]})")
        src = src.replace(anchor, anchor + add)
    with open(os.path.join(tmp, "run.c"), "w") as f:
        f.write(src)
    subprocess.run(["gcc", "-O3", "-o", "run", "run.c", "-lm"], cwd=tmp, check=True)
    return os.path.join(tmp, "run")


def read_llama2c(path):
    """stories260K.bin -> config and float32 weight arrays (the layout run.c's checkpoint_init_weights walks)."""
    raw = open(path, "rb").read()
    dim, hid, L, H, KV, V, S = struct.unpack("7i", raw[:28])
    shared = V > 0
    V = abs(V)
    w = np.frombuffer(raw, np.float32, offset=28)
    hs = dim // H
    shapes = [("emb", (V, dim)), ("rms_att", (L, dim)), ("wq", (L, H * hs, dim)), ("wk", (L, KV * hs, dim)),
              ("wv", (L, KV * hs, dim)), ("wo", (L, dim, H * hs)), ("rms_ffn", (L, dim)), ("w1", (L, hid, dim)),
              ("w2", (L, dim, hid)), ("w3", (L, hid, dim)), ("rms_final", (dim,)),
              ("fcr", (S * hs // 2,)), ("fci", (S * hs // 2,))]
    out, off = {}, 0
    for n, sh in shapes:
        k = int(np.prod(sh))
        out[n] = w[off:off + k].reshape(sh)
        off += k
    out["wcls"] = out["emb"] if shared else w[off:off + V * dim].reshape(V, dim)
    return dict(dim=dim, hidden=hid, layers=L, heads=H, kv_heads=KV, vocab=V, seq_len=S), out


def forward(cfg, w, ids, dt):
    """llama2.c's forward in NumPy, all positions at once, in dtype dt (float64 reference or float32)."""
    dim, H, KV, L = cfg["dim"], cfg["heads"], cfg["kv_heads"], cfg["layers"]
    hs, T = dim // H, len(ids)
    W = {k: v.astype(dt) for k, v in w.items()}

    def rms(x, g):
        return g * (x / np.sqrt(np.mean(x * x, -1, keepdims=True) + dt(1e-5)))

    # run.c: freq = 1 / 10000^(head_dim/head_size) over even head_dim, interleaved pairs (i, i+1)
    hd = np.arange(0, hs, 2)
    freq = (1.0 / np.power(10000.0, hd / hs)).astype(dt)
    ang = np.arange(T)[:, None].astype(dt) * freq[None]
    c, s = np.cos(ang).astype(dt), np.sin(ang).astype(dt)

    def rope(v, n):  # v [T, n*hs]
        v = v.reshape(T, n, hs // 2, 2)
        a, b = v[..., 0], v[..., 1]
        return np.stack([a * c[:, None] - b * s[:, None], a * s[:, None] + b * c[:, None]], -1).reshape(T, n * hs)

    x = W["emb"][ids]
    layers = []
    mask = np.triu(np.ones((T, T), bool), 1)
    for l in range(L):
        h = rms(x, W["rms_att"][l])
        q, k, v = rope(h @ W["wq"][l].T, H), rope(h @ W["wk"][l].T, KV), h @ W["wv"][l].T
        o = np.empty((T, dim), dt)
        for hh in range(H):
            kv = hh // (H // KV)
            sc = q[:, hh * hs:(hh + 1) * hs] @ k[:, kv * hs:(kv + 1) * hs].T / dt(np.sqrt(hs))
            sc = np.where(mask, -np.inf, sc)
            e = np.exp(sc - sc.max(-1, keepdims=True))
            o[:, hh * hs:(hh + 1) * hs] = (e / e.sum(-1, keepdims=True)) @ v[:, kv * hs:(kv + 1) * hs]
        x = x + o @ W["wo"][l].T
        h = rms(x, W["rms_ffn"][l])
        g = h @ W["w1"][l].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ W["w3"][l].T)) @ W["w2"][l].T
        layers.append(x)
    return rms(x, W["rms_final"]) @ W["wcls"].T, layers


def read_vocab(path, n):
    with open(path, "rb") as f:
        f.read(4)
        out = []
        for _ in range(n):
            _, ln = struct.unpack("fi", f.read(8))
            out.append(f.read(ln))
    return out


def greedy_text(cfg, w, vocab, prefix, n):
    """Greedy decoding with the float64 reference, printed the way run.c prints: the prefix tokens after
    BOS too, a leading space stripped after BOS, <0xXX> tokens as bytes. Returns (bytes, min top-2 gap)."""
    ids, gaps = list(prefix), []
    while len(ids) < n + 1:
        lg, _ = forward(cfg, w, np.array(ids), np.float64)
        srt = np.sort(lg[-1])
        gaps.append(srt[-1] - srt[-2])
        ids.append(int(lg[-1].argmax()))
    ids = ids[:n + 1]
    out = b""
    for prev, t in zip(ids, ids[1:]):
        piece = vocab[t][1:] if prev == 1 and vocab[t][:1] == b" " else vocab[t]
        m = re.fullmatch(rb"<0x([0-9A-Fa-f]{2})>", piece)
        out += bytes([int(m.group(1), 16)]) if m else piece
    return out + b"\n", min(gaps)


def main():
    run_c = sys.argv[1] if len(sys.argv) > 1 else "/tmp/llama2c/run.c"
    data = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("LLAMA_FP8_DATA", os.path.join(ROOT, "..", "shared", "data"))
    model = os.path.join(data, "stories260K", "stories260K.bin")
    tok = os.path.join(data, "stories260K", "tok512.bin")
    tmp = tempfile.mkdtemp()
    try:
        run = build(run_c, tmp)
        base = [run, model, "-z", tok, "-t", "0.0"]
        cnt = os.path.join(tmp, "count.bin")  # logits rows written = forward passes run
        greedy = subprocess.run(base + ["-n", "200"], capture_output=True, check=True,
                                env=dict(os.environ, G_LOGITS=cnt)).stdout
        greedy_fw = os.path.getsize(cnt) // (4 * 512)
        prompted = subprocess.run(base + ["-n", str(PROMPT_N), "-i", PROMPT], capture_output=True, check=True,
                                  env=dict(os.environ, G_PRINT_IDS="1", G_LOGITS=cnt))
        prompt_fw = os.path.getsize(cnt) // (4 * 512)
        assert greedy_fw == 200 and prompt_fw == PROMPT_N, "a run stopped early at a BOS token"
        p_ids = prompted.stderr.decode().splitlines()[0]
        n_prompt = len(p_ids.split(","))
        text = open(os.path.join(data, "tinystories", "tinystories_sample.txt")).read().strip()
        text = " ".join(text.split(". ")[:3]) + "."
        r = subprocess.run(base + ["-n", "2", "-i", text], capture_output=True, check=True,
                           env=dict(os.environ, G_PRINT_IDS="1"))
        ids = [1] + [int(t) for t in r.stderr.decode().splitlines()[0].split(",")]
        T = len(ids)
        lg_path, ly_path = os.path.join(tmp, "logits.bin"), os.path.join(tmp, "layers.bin")
        subprocess.run(base + ["-n", str(T)], capture_output=True, check=True,
                       env=dict(os.environ, G_IDS=",".join(map(str, ids)), G_LOGITS=lg_path, G_LAYERS=ly_path))
        cfg, w = read_llama2c(model)
        V, dim, L = cfg["vocab"], cfg["dim"], cfg["layers"]
        lg = np.fromfile(lg_path, np.float32).reshape(T, V)
        ly = np.fromfile(ly_path, np.float32).reshape(T, L, dim).transpose(1, 0, 2)
    finally:
        shutil.rmtree(tmp)

    lg64, ly64 = forward(cfg, w, np.array(ids), np.float64)
    lg32, ly32 = forward(cfg, w, np.array(ids), np.float32)
    e_lg = max(np.abs(lg - lg64).max(), np.abs(lg32 - lg64).max())
    e_ly = [max(np.abs(ly[l] - ly64[l]).max(), np.abs(ly32[l] - ly64[l]).max()) for l in range(L)]
    vocab = read_vocab(tok, V)
    text64, gap_g = greedy_text(cfg, w, vocab, [1], 200)
    assert text64 == greedy, "float64 NumPy greedy text differs from run.c's"
    text64p, gap_p = greedy_text(cfg, w, vocab, [1] + [int(t) for t in p_ids.split(",")], PROMPT_N)
    assert text64p == prompted.stdout, "float64 NumPy prompted text differs from run.c's"
    kmax = max(cfg["hidden"], dim, T)
    c = math.sqrt(kmax) + 1
    # sanity: run.c's argmax chain is what its greedy text decodes from, and NumPy agrees with run.c
    assert np.abs(lg - lg64).max() < c * e_lg

    with open(os.path.join(GOLDEN, "llama2c_greedy200.txt"), "wb") as f:
        f.write(greedy)
    with open(os.path.join(GOLDEN, "llama2c_prompt.txt"), "wb") as f:
        f.write(prompted.stdout)
    np.save(os.path.join(GOLDEN, "llama2c_dump_logits.npy"), lg)
    for l in range(L):
        np.save(os.path.join(GOLDEN, f"llama2c_dump_layer_{l:02d}.npy"), ly[l])
    meta = [
        ("source", f"karpathy/llama2.c run.c @ {COMMIT}, gcc -O3 -o run run.c -lm (no OpenMP)"),
        ("model", "$DATA/stories260K/stories260K.bin"),
        ("tokenizer", "$DATA/stories260K/tok512.bin"),
        ("modes", "fp32"),
        ("golden_fp32", "llama2c_dump"),
        ("greedy_cmd", "run stories260K.bin -z tok512.bin -t 0.0 -n 200 > llama2c_greedy200.txt"),
        ("greedy_n", 200),
        ("greedy_forwards", greedy_fw),
        ("prompt", PROMPT),
        ("prompt_cmd", f"run stories260K.bin -z tok512.bin -t 0.0 -n {PROMPT_N} -i \"{PROMPT}\" > llama2c_prompt.txt"),
        ("prompt_tokens", n_prompt),
        ("prompt_forwards", prompt_fw),
        ("prompt_ids", p_ids),
        ("prompt_new_tokens", PROMPT_N - n_prompt),
        ("greedy_min_top2_gap", f"{gap_g:.6g}"),
        ("prompt_min_top2_gap", f"{gap_p:.6g}"),
        ("ids", ",".join(map(str, ids))),
        ("tokens", T), ("vocab", V), ("dim", dim), ("layers", L), ("kmax", kmax),
        ("fp32_E_logits", f"{e_lg:.6g}"), ("fp32_tol_logits", f"{c * e_lg:.6g}"),
        ("fp32_maxabs_logits", f"{np.abs(lg).max():.6g}"),
        ("fp32_argmax_margin", f"{2 * c * e_lg:.6g}"),
    ]
    for l in range(L):
        meta += [(f"fp32_E_layer_{l:02d}", f"{e_ly[l]:.6g}"), (f"fp32_tol_layer_{l:02d}", f"{c * e_ly[l]:.6g}")]
    with open(os.path.join(GOLDEN, "llama2c.txt"), "w") as f:
        f.write("# stories260K goldens made by tests/gen_llama2c_golden.py from llama2.c's run.c\n")
        for k, v in meta:
            f.write(f"{k} {v}\n")
    print(f"forwards: greedy {greedy_fw}, prompt {prompt_fw}; float64 NumPy reproduces both texts; "
          f"min top-2 logit gap on the way: {gap_g:.3g}, {gap_p:.3g}")
    print(f"T={T} prompt_tokens={n_prompt} E={e_lg:.3g} tol={c * e_lg:.3g} max|logit|={np.abs(lg).max():.3g}")
    print(f"run.c vs f64 {np.abs(lg - lg64).max():.3g}, numpy f32 vs f64 {np.abs(lg32 - lg64).max():.3g}")


if __name__ == "__main__":
    main()
