#!/usr/bin/env python3
"""Long-sequence (>= 300 tokens) bf16 goldens from Hugging Face transformers, and the acceptance
bound for `llama_fp8 dump -q bf16` derived from transformers' own summation-order sensitivity.

    python3 tests/gen_hf_long_goldens.py              # regenerate tests/golden/hf_long_*  (needs torch,
                                                      # transformers, ./llama_fp8 for tokenizing; data:
                                                      # $LLAMA_FP8_DATA or ../shared/data)
    python3 tests/gen_hf_long_goldens.py model DIR    # write the synthetic model (numpy only)
    python3 tests/gen_hf_long_goldens.py check NAME LOGITS.npy [LABEL [--negative]]
                                                      # compare a dump with the golden (numpy only;
                                                      # used by tests/test_hf_long.sh); --negative:
                                                      # the dump must be REJECTED
    python3 tests/gen_hf_long_goldens.py meta NAME KEY    # print one value of golden/hf_long_NAME.txt
    python3 tests/gen_hf_long_goldens.py ops              # op-by-op identity of ./llama_fp8 vs transformers
                                                      # on identical inputs (needs torch; prints a table)

Why: llama_fp8 -q bf16 rounds at exactly transformers' eager bf16 rounding points, and each op on the
same bf16 input gives torch's bits, except the GEMMs' (and attention's) fp32 sums, which llama_fp8
runs as one fmaf chain in k order and torch in its own blocked order. From a few hundred tokens on, a
few sums land on the other side of a bf16 rounding boundary, and the one-ulp difference spreads
through attention to later rows. transformers disagrees with ITSELF in the same way when the model's
dimensions are permuted (an exactly equivalent model whose GEMMs sum in another order), so the
acceptance criterion is that family's spread: llama_fp8 vs HF must be no further from HF than the
furthest of NPERM permuted-HF evaluations, on every statistic in STATS (see BOUNDS below).

Models (both max_position_embeddings >= 512):
  stories260K   karpathy's trained llama2.c model (dim 64, 5 layers, 8 heads / 4 KV, head_dim 8,
                vocab 512, tied), converted to an HF directory (Q/K rows to rotate-half order, as
                tests/gen_hf_goldens.py does); llama_fp8 reads the .bin itself. Input: BOS + the
                first T-1 tokens of tinystories_valid_excerpt.txt (real text), T = 512.
  synth3        a random Llama-3-shaped model written deterministically by synth_model() below
                (integer PRNG, no transcendental functions, so every numpy writes the same bytes;
                its sha256 is in the golden): dim 256, 2 layers, 8 heads / 2 KV heads (GQA 4),
                head_dim 64, intermediate 896, vocab 256, untied, rope_theta 500000, llama3
                rope_scaling (factor 8, low 1, high 4, original 8192: all three frequency regimes
                at head_dim 64), max_position_embeddings 131072, BF16 storage, config.json in the
                Llama 3.1 layout (rope_scaling + top-level rope_theta, torch_dtype). Input: BOS +
                T-1 random ids, T = 320.

Permutations (function-preserving; each changes the order of fp32 sums inside torch's GEMMs):
  hidden dims (embedding columns, every norm weight, q/k/v/gate/up input columns, o/down output
  rows, lm_head columns) by one permutation; intermediate dims of gate/up rows and down columns;
  KV groups together with their query heads (q/k/v/o blocks); query heads within a group; the
  head_dim coordinates of V within each KV head (v rows and the matching o_proj columns of every
  query head in the group). Q/K coordinates inside a head are NOT permuted: RoPE ties coordinate j
  to frequency inv_freq[j mod hd/2], so that would change the function.

Golden files (tests/golden/): hf_long_NAME_bf16_logits.npz (np.savez_compressed, key "bits": uint16
[T, V], the bf16 bit patterns of transformers' logits; value = bits << 16 as float32) and hf_long_NAME.txt (ids, the statistic of
every permutation, the bounds, provenance).
"""
import hashlib, json, math, os, struct, subprocess, sys
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")
NPERM = 64  # permuted-HF evaluations per model

# Statistics of a logits matrix X [T, V] against the reference R (HF bf16), and which way is worse.
#   ident     share of logits bit-identical                                  (lower is worse)
#   rows_ident share of rows (positions) whose logits are all bit-identical  (lower is worse)
#   first_row first position with any difference (T if none)                 (lower is worse)
#   rms       rms over all logits of X - R                                   (higher is worse)
#   maxabs    max |X - R|                                                    (higher is worse)
#   top1      share of positions where argmax X == argmax R                  (lower is worse)
#   kld_mean  mean over positions of KL(softmax R || softmax X), nats        (higher is worse)
#   kld_max   max over positions of the same                                 (higher is worse)
STATS = [("ident", -1), ("rows_ident", -1), ("first_row", -1), ("rms", 1), ("maxabs", 1),
         ("top1", -1), ("kld_mean", 1), ("kld_max", 1)]


def bf16_bits_to_f32(u):
    return (np.asarray(u, np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """round-to-nearest-even float32 -> bf16 bit pattern (finite inputs)."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def stats(x, r):
    """x, r: float32 [T, V] logits. Returns dict of STATS (as Python floats)."""
    x64, r64 = x.astype(np.float64), r.astype(np.float64)
    T = x.shape[0]
    same = x.view(np.uint32) == r.view(np.uint32)
    rows_same = same.all(1)
    d = x64 - r64
    lr = r64 - r64.max(1, keepdims=True)
    lr -= np.log(np.exp(lr).sum(1, keepdims=True))
    lx = x64 - x64.max(1, keepdims=True)
    lx -= np.log(np.exp(lx).sum(1, keepdims=True))
    kl = (np.exp(lr) * (lr - lx)).sum(1)
    return dict(ident=float(same.mean()), rows_ident=float(rows_same.mean()),
                first_row=float(T if rows_same.all() else int(np.argmin(rows_same))),
                rms=float(np.sqrt((d * d).mean())), maxabs=float(np.abs(d).max()),
                top1=float((x.argmax(1) == r.argmax(1)).mean()),
                kld_mean=float(kl.mean()), kld_max=float(kl.max()))


def fmt(s):
    return " ".join(f"{k}={s[k]:.6g}" for k, _ in STATS)


# ---------------------------------------------------------------------------------------------
# The synthetic Llama-3-shaped model, numpy only, deterministic.
SYNTH_CFG = dict(vocab_size=256, hidden_size=256, intermediate_size=896, num_hidden_layers=2,
                 num_attention_heads=8, num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-5,
                 rope_theta=500000.0, max_position_embeddings=131072, tie_word_embeddings=False,
                 rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                 bos_token_id=1, eos_token_id=2)


def _splitmix64(idx):
    """uint64 array -> uint64 pseudo-random array (splitmix64 of the index; wraps mod 2^64)."""
    z = idx * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(stream, n, half_width):
    """n values uniform in (-half_width, half_width) as float32: 24 random bits -> exact float64
    (k + 0.5) / 2^23 - 1, times half_width (one IEEE rounding), then to float32."""
    with np.errstate(over="ignore"):
        z = _splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(stream) * np.uint64(1 << 40))
    k = (z >> np.uint64(40)).astype(np.float64)
    return (((k + 0.5) / float(1 << 23) - 1.0) * half_width).astype(np.float32)


def synth_tensors():
    """name -> bf16 bits (uint16 ndarray), in Hugging Face's tensor order. Linear weights uniform with
    variance 1/fan_in (lm_head 4/fan_in), embeddings variance 1, norm weights 1 + U(+-0.2)."""
    c = SYNTH_CFG
    D, F, V, hd = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    qd, kd = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = [("model.embed_tokens.weight", (V, D))]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes += [(p + "input_layernorm.weight", (D,)), (p + "self_attn.q_proj.weight", (qd, D)),
                   (p + "self_attn.k_proj.weight", (kd, D)), (p + "self_attn.v_proj.weight", (kd, D)),
                   (p + "self_attn.o_proj.weight", (D, qd)), (p + "post_attention_layernorm.weight", (D,)),
                   (p + "mlp.gate_proj.weight", (F, D)), (p + "mlp.up_proj.weight", (F, D)),
                   (p + "mlp.down_proj.weight", (D, F))]
    shapes += [("model.norm.weight", (D,)), ("lm_head.weight", (V, D))]
    out = {}
    for i, (name, sh) in enumerate(shapes):
        n = int(np.prod(sh))
        if len(sh) == 1:
            v = 1.0 + _uniform(i + 1, n, 0.2)
        elif "embed_tokens" in name:
            v = _uniform(i + 1, n, math.sqrt(3.0))
        else:
            v = _uniform(i + 1, n, (2.0 if "lm_head" in name else 1.0) * math.sqrt(3.0 / sh[1]))
        out[name] = f32_to_bf16_bits(v).reshape(sh)
    return out


def synth_model(d):
    """Writes config.json + model.safetensors into d. Returns the sha256 of model.safetensors."""
    os.makedirs(d, exist_ok=True)
    t = synth_tensors()
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, a in t.items():
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    blob = struct.pack("<Q", len(h)) + h + b"".join(a.astype("<u2").tobytes() for a in t.values())
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(blob)
    c = dict(SYNTH_CFG, architectures=["LlamaForCausalLM"], model_type="llama", attention_bias=False,
             mlp_bias=False, hidden_act="silu", torch_dtype="bfloat16")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
        f.write("\n")
    return hashlib.sha256(blob).hexdigest()


# ---------------------------------------------------------------------------------------------
def read_meta(name):
    p = os.path.join(GOLDEN, f"hf_long_{name}.txt")
    return dict(l.rstrip("\n").split(" ", 1) for l in open(p) if l.strip() and not l.startswith("#"))


def load_golden(name):
    """transformers' bf16 logits as float32 [T, V]."""
    with np.load(os.path.join(GOLDEN, f"hf_long_{name}_bf16_logits.npz")) as z:
        return bf16_bits_to_f32(z["bits"])


def check(name, logits_path, label, negative=False):
    """Compares a dump's logits with the golden and prints one line: `ok` when inside every bound
    (or, with negative=True, when outside at least one: a negative control must be rejected), else
    `FAIL`. Returns 0 / 1."""
    meta = read_meta(name)
    ref = load_golden(name)
    x = np.load(logits_path).astype(np.float32)
    if x.shape != ref.shape:
        print(f"FAIL hf_long {name} {label}: logits shape {x.shape}, golden {ref.shape}")
        return 1
    s = stats(x, ref)
    bad = []
    for k, sign in STATS:
        b = float(meta[f"bound_{k}"])
        if (s[k] - b) * sign > 0:
            bad.append(f"{k} {s[k]:.6g} {'>' if sign > 0 else '<'} {b:.6g}")
    desc = fmt(s)
    if negative:
        if bad:
            print(f"ok hf_long {name} {label} (negative control) rejected on {len(bad)}/{len(STATS)} statistics: {'; '.join(bad)}")
            return 0
        print(f"FAIL hf_long {name} {label} (negative control): within every bound of transformers' own order spread ({desc})")
        return 1
    if bad:
        print(f"FAIL hf_long {name} {label}: outside transformers' own order spread: {'; '.join(bad)} ({desc})")
        return 1
    print(f"ok hf_long {name} {label}: {desc}  (bounds " + " ".join(f"{float(meta['bound_' + k]):.6g}" for k, _ in STATS) + ")")
    return 0


# ---------------------------------------------------------------------------------------------
def main_generate():
    import copy, tempfile
    import torch
    import transformers
    from transformers import LlamaForCausalLM
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen_hf_goldens as hfg
    torch.set_num_threads(1)  # deterministic summation order inside torch
    data = os.environ.get("LLAMA_FP8_DATA", os.path.join(ROOT, "..", "shared", "data"))

    def permuted(model, seed):
        """Function-preserving permutation (module docstring)."""
        m = copy.deepcopy(model)  # keeps buffers' dtypes (inv_freq stays fp32)
        c = model.config
        H, KV = c.num_attention_heads, c.num_key_value_heads
        hd, G = c.head_dim, H // KV
        g = torch.Generator().manual_seed(seed)
        ph = torch.randperm(c.hidden_size, generator=g)
        pi = torch.randperm(c.intermediate_size, generator=g)
        pkv = torch.randperm(KV, generator=g)
        # new query head n = old head src_head[n]; kv group of new head n is n // G
        src_head = torch.cat([pkv[j] * G + torch.randperm(G, generator=g) for j in range(KV)])
        pv = [torch.randperm(hd, generator=g) for _ in range(KV)]   # new v coord i of old group j = old coord pv[j][i]
        rows_q = torch.cat([torch.arange(hd) + h * hd for h in src_head.tolist()])
        rows_k = torch.cat([torch.arange(hd) + j * hd for j in pkv.tolist()])
        rows_v = torch.cat([pv[j] + j * hd for j in pkv.tolist()])
        cols_o = torch.cat([pv[h // G] + h * hd for h in src_head.tolist()])
        with torch.no_grad():
            m.model.embed_tokens.weight.copy_(model.model.embed_tokens.weight[:, ph])
            if not c.tie_word_embeddings:
                m.lm_head.weight.copy_(model.lm_head.weight[:, ph])
            m.model.norm.weight.copy_(model.model.norm.weight[ph])
            for a, b in zip(m.model.layers, model.model.layers):
                a.self_attn.q_proj.weight.copy_(b.self_attn.q_proj.weight[rows_q][:, ph])
                a.self_attn.k_proj.weight.copy_(b.self_attn.k_proj.weight[rows_k][:, ph])
                a.self_attn.v_proj.weight.copy_(b.self_attn.v_proj.weight[rows_v][:, ph])
                a.self_attn.o_proj.weight.copy_(b.self_attn.o_proj.weight[ph][:, cols_o])
                a.input_layernorm.weight.copy_(b.input_layernorm.weight[ph])
                a.post_attention_layernorm.weight.copy_(b.post_attention_layernorm.weight[ph])
                a.mlp.gate_proj.weight.copy_(b.mlp.gate_proj.weight[pi][:, ph])
                a.mlp.up_proj.weight.copy_(b.mlp.up_proj.weight[pi][:, ph])
                a.mlp.down_proj.weight.copy_(b.mlp.down_proj.weight[ph][:, pi])
        return m

    def logits(model, ids):
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float().numpy()

    os.makedirs(GOLDEN, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        # stories260K, real text
        s_dir = hfg.stories260k_hf(data, os.path.join(tmp, "stories260K"))
        if s_dir is None:
            sys.exit("stories260K not found under $LLAMA_FP8_DATA")
        text = os.path.join(data, "tinystories", "tinystories_valid_excerpt.txt")
        tok = subprocess.run([os.path.join(ROOT, "llama_fp8"), "tokenize", "-m", os.path.join(data, "stories260K", "stories260K.bin"),
                              "--tokenizer", os.path.join(data, "stories260K", "tok512.bin"), "-f", text],
                             check=True, capture_output=True, text=True).stdout.split()
        T = 512
        ids = [1] + [int(t) for t in tok[:T - 1]]
        jobs.append(("stories260K", s_dir, ids, [("model", "$DATA/stories260K/stories260K.bin"),
                                                 ("model_hf", "stories260K.bin converted by tests/gen_hf_goldens.py:stories260k_hf"),
                                                 ("input", f"BOS + the first {T - 1} tokens (tok512) of $DATA/tinystories/tinystories_valid_excerpt.txt")]))
        # synthetic Llama-3-shaped model
        y_dir = os.path.join(tmp, "synth3")
        sha = synth_model(y_dir)
        T = 320
        rng = np.random.default_rng(3)
        ids = [1] + [int(i) for i in rng.integers(3, SYNTH_CFG["vocab_size"], T - 1)]
        jobs.append(("synth3", y_dir, ids, [("model", "written by: python3 tests/gen_hf_long_goldens.py model DIR"),
                                            ("model_sha256", sha), ("input", f"BOS + {T - 1} random ids")]))
        for name, d, ids, extra in jobs:
            mb = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").eval()
            assert mb.model.rotary_emb.inv_freq.dtype == torch.float32
            ref = logits(mb, ids)
            per = []
            for k in range(NPERM):
                s = stats(logits(permuted(mb, 5000 + k), ids), ref)
                per.append(s)
                print(f"{name} perm {k}: {fmt(s)}", flush=True)
            m32 = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
            s32 = stats(logits(m32, ids), ref)
            print(f"{name} HF fp32 vs HF bf16: {fmt(s32)}")
            bounds = {k: (min if sign < 0 else max)(p[k] for p in per) for k, sign in STATS}
            np.savez_compressed(os.path.join(GOLDEN, f"hf_long_{name}_bf16_logits.npz"), bits=f32_to_bf16_bits(ref))
            assert np.array_equal(bf16_bits_to_f32(f32_to_bf16_bits(ref)), ref)
            rows = [("tokens", len(ids)), ("vocab", ref.shape[1]), ("ids", ",".join(map(str, ids)))] + extra + \
                   [("nperm", NPERM), ("perm_seeds", f"5000..{5000 + NPERM - 1}")]
            rows += [(f"perm_{k:02d}", fmt(p)) for k, p in enumerate(per)]
            rows += [(f"perm_range_{k}", " ".join(f"{v:.6g}" for v in (min(p[k] for p in per), float(np.median([p[k] for p in per])),
                                                                     max(p[k] for p in per)))) for k, _ in STATS]
            rows += [("hf_fp32_vs_hf_bf16", fmt(s32))]
            rows += [(f"bound_{k}", f"{bounds[k]:.9g}") for k, _ in STATS]
            with open(os.path.join(GOLDEN, f"hf_long_{name}.txt"), "w") as f:
                f.write(f"# {name}: transformers {transformers.__version__}, torch {torch.__version__} (CPU, 1 thread), "
                        f"from_pretrained(dtype=bfloat16, attn_implementation=eager); made by tests/gen_hf_long_goldens.py\n"
                        f"# bound_X = the worst value of statistic X over the {NPERM} permuted-HF evaluations (perm_XX lines; "
                        f"perm_range_X: min median max)\n")
                for k, v in rows:
                    f.write(f"{k} {v}\n")
            print(f"{name}: bounds {' '.join(f'{k}={bounds[k]:.4g}' for k, _ in STATS)}")


def main_ops(name, hf_dir, model, ids, llama_fp8, tmp):
    """Op by op on identical input: every op llama_fp8 dumps (`dump --ops -q bf16`) is recomputed by
    transformers' own modules (bf16, eager) from llama_fp8's dumped inputs, and the share of
    bit-identical outputs printed. Needs torch."""
    import torch
    from transformers import LlamaForCausalLM
    from transformers.models.llama import modeling_llama as ml
    torch.set_num_threads(1)
    d = os.path.join(tmp, f"ops_{name}")
    subprocess.run([llama_fp8, "dump", "-m", model, "--ids", ",".join(map(str, ids)), "-q", "bf16", "--ops", "-o", d],
                   check=True, capture_output=True)
    ops = json.load(open(os.path.join(d, "ops.json")))["ops"]
    m = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16, attn_implementation="eager").eval()
    c = m.config
    T, H, KV, hd = len(ids), c.num_attention_heads, c.num_key_value_heads, c.head_dim
    ld = lambda f: torch.from_numpy(np.load(os.path.join(d, f)).astype(np.int16)).view(torch.bfloat16)
    pos = torch.arange(T)[None]
    cos, sin = m.model.rotary_emb(torch.zeros(1, dtype=torch.bfloat16), pos)
    mask = torch.full((T, T), torch.finfo(torch.bfloat16).min, dtype=torch.bfloat16).triu(1)[None, None]
    acc = {}
    with torch.no_grad():
        for o in ops:
            f, op, l, ins = o["file"], o["op"], o["layer"], o["inputs"]
            if op in ("embed", "kv_store"):
                continue
            L = m.model.layers[l] if l >= 0 else None
            x = [ld(i) for i in ins]
            site = f.split(".")[-2] if l >= 0 else f[:-4]
            if op == "rmsnorm":
                mod = {"attn_norm": L and L.input_layernorm, "ffn_norm": L and L.post_attention_layernorm}.get(site, m.model.norm)
                y = mod(x[0])
            elif op == "linear":
                mod = m.lm_head if site == "lm_head" else getattr(L.self_attn, site, None) or getattr(L.mlp, site)
                y = mod(x[0])
            elif op == "rope":
                n = x[0].shape[1] // hd
                q = x[0].view(1, T, n, hd).transpose(1, 2)
                y = ml.apply_rotary_pos_emb(q, q, cos, sin)[0].transpose(1, 2).reshape(T, n * hd)
            elif op == "attention":
                q = x[0].view(1, T, H, hd).transpose(1, 2)
                k = x[1].view(1, T, KV, hd).transpose(1, 2)
                v = x[2].view(1, T, KV, hd).transpose(1, 2)
                y = ml.eager_attention_forward(L.self_attn, q, k, v, mask, scaling=L.self_attn.scaling)[0].reshape(T, H * hd)
            elif op == "residual":
                y = x[0] + x[1]
            elif op == "swiglu":
                y = L.mlp.act_fn(x[0]) * x[1]
            else:
                continue
            ours = ld(f)
            a, b = ours.view(torch.int16).numpy().astype(np.int32), y.contiguous().view(torch.int16).numpy().astype(np.int32)
            same = a == b
            ulp = np.abs(np.where(a < 0, -32768 - a, a) - np.where(b < 0, -32768 - b, b))  # bf16 ulps apart
            key = op if op != "linear" else f"linear {site}"
            r = acc.setdefault(key, [0, 0, 0, T, set()])
            r[0] += int(same.sum()); r[1] += same.size; r[2] = max(r[2], int(ulp.max()))
            rows = np.nonzero(~same.all(1))[0]
            if rows.size:
                r[3] = min(r[3], int(rows[0])); r[4].add(l)
    print(f"{name}: T={T}; each op recomputed by transformers from llama_fp8's own dumped inputs (bf16, eager)")
    for k, (n, tot, mu, fr, ls) in acc.items():
        print(f"  {k:22s} bit-identical {n}/{tot} = {n / tot:.6f}  max {mu} bf16 ulp  first differing row "
              f"{fr if fr < T else '-'}  layers with differences {sorted(ls) if ls else '-'}")
    # Attention split into its three parts, each fed identical input: llama_fp8's order emulated in
    # numpy (sums in index / position order in fp32, glibc expf, e * (1/sum); bf16 x bf16 products
    # are exact in fp32, so fmaf and mul+add agree), checked against llama_fp8's dump first.
    import ctypes
    libm = ctypes.CDLL("libm.so.6")
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    gexp = np.vectorize(lambda v: libm.expf(float(v)), otypes=[np.float32])
    Bn = lambda v: bf16_bits_to_f32(f32_to_bf16_bits(np.asarray(v, np.float32)))
    tb = lambda v: torch.from_numpy(np.ascontiguousarray(v)).to(torch.bfloat16)
    causal = ~np.triu(np.ones((T, T), bool), 1)
    scale = np.float32(L0.self_attn.scaling) if (L0 := m.model.layers[0]) is not None else None
    f32 = lambda f: bf16_bits_to_f32(np.load(os.path.join(d, f)))
    for o in ops:
        if o["op"] != "attention":
            continue
        q, k, v = (f32(f) for f in o["inputs"])
        rep = np.arange(H) // (H // KV)
        q = q.reshape(T, H, hd).transpose(1, 0, 2)
        k = k.reshape(T, KV, hd).transpose(1, 0, 2)[rep]
        v = v.reshape(T, KV, hd).transpose(1, 0, 2)[rep]
        acc_s = np.zeros((H, T, T), np.float32)
        for i in range(hd):
            acc_s = (acc_s + q[:, :, i:i + 1] * k[:, None, :, i]).astype(np.float32)
        s_ours = Bn(Bn(acc_s) * scale)
        s_hf = ((tb(q) @ tb(k).transpose(1, 2)) * float(scale)).float().numpy()
        def soft_ours(sc):
            sc = np.where(causal, sc, -np.inf).astype(np.float32)
            mx = sc.max(-1, keepdims=True)
            e = np.where(causal, gexp(np.where(causal, sc - mx, 0)), 0).astype(np.float32)
            sm = np.zeros(mx.shape, np.float32)
            for p_ in range(T):
                sm = (sm + e[..., p_:p_ + 1]).astype(np.float32)
            return Bn(e * (np.float32(1) / sm))
        def soft_hf(sc):
            st = tb(sc) + torch.full((T, T), torch.finfo(torch.bfloat16).min, dtype=torch.bfloat16).triu(1)
            return torch.softmax(st, -1, dtype=torch.float32).to(torch.bfloat16).float().numpy()
        def pv_ours(a):
            out = np.zeros((H, T, hd), np.float32)
            for p_ in range(T):
                out = (out + a[:, :, p_:p_ + 1] * v[:, None, p_, :]).astype(np.float32)
            return Bn(out)
        a_ours = soft_ours(s_ours)
        emu = pv_ours(a_ours).transpose(1, 0, 2).reshape(T, H * hd)
        assert np.array_equal(emu, f32(o["file"])), "emulation of llama_fp8's attention does not reproduce its dump"
        a_hf = soft_hf(s_hf)
        nd = lambda x_, y_, msk: int(((x_ != y_) & msk).sum())
        print(f"  attention L{o['layer']:02d} parts on identical input (emulation == dump): "
              f"scores B(B(q.k)*scale) differ {nd(s_ours, s_hf, causal[None])}/{H * int(causal.sum())}; "
              f"probs B(softmax) differ {nd(soft_ours(s_hf), a_hf, causal[None])}/{H * int(causal.sum())}; "
              f"B(P.V) differs {nd(pv_ours(a_hf), (tb(a_hf) @ tb(v)).float().numpy(), True)}/{H * T * hd}", flush=True)
    # RMSNorm: the mean of squares (llama_fp8: double sum rounded once; torch: fp32 reduction)
    for o in ops:
        if o["op"] == "rmsnorm":
            x = f32(o["inputs"][0])
            vt = torch.from_numpy(x).pow(2).mean(-1).numpy()
            vd = ((x.astype(np.float64) ** 2).sum(-1) / x.shape[1]).astype(np.float32)
            acc.setdefault("_rms", [0, 0])
            acc["_rms"][0] += int((vt != vd).sum()); acc["_rms"][1] += x.shape[0]
    print(f"  rmsnorm: mean(x^2) as fp32 differs (torch fp32 reduction vs double rounded once) in "
          f"{acc['_rms'][0]}/{acc['_rms'][1]} rows")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["model"] and len(a) == 2:
        print(synth_model(a[1]))
    elif a[:1] == ["check"] and len(a) in (3, 4, 5):
        sys.exit(check(a[1], a[2], a[3] if len(a) >= 4 else "bf16", negative=a[4:] == ["--negative"]))
    elif a[:1] == ["meta"] and len(a) == 3:
        print(read_meta(a[1])[a[2]])
    elif a[:1] == ["ops"]:
        import tempfile
        data = os.environ.get("LLAMA_FP8_DATA", os.path.join(ROOT, "..", "shared", "data"))
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("synth3", "stories260K"):
                ids = [int(i) for i in read_meta(name)["ids"].split(",")]
                if name == "synth3":
                    model = hf = os.path.join(tmp, "synth3")
                    synth_model(hf)
                else:
                    import gen_hf_goldens as hfg
                    model = os.path.join(data, "stories260K", "stories260K.bin")
                    hf = hfg.stories260k_hf(data, os.path.join(tmp, "st"))
                main_ops(name, hf, model, ids, os.path.join(ROOT, "llama_fp8"), tmp)
    elif not a:
        main_generate()
    else:
        sys.exit(__doc__)
