#!/usr/bin/env python3
"""Validates a compressed-tensors checkpoint (what `llama_fp8 export -q w8a8|w8a8-static|fp8-w -o DIR`
writes) with the compressed-tensors package itself. Prints one line and exits 0 ("ok: ...") or 1
("FAIL: reason"); exit 2 ("skip: ...") when torch / compressed-tensors are not installed.

    python3 tests/check_ct_export.py DIR [--orig MODEL_DIR] [--no-hf-load]
    python3 tests/check_ct_export.py --self-test      # builds a checkpoint with the library, checks it,
                                                      # then checks that corrupted copies are rejected
Checks:
 1. config.json quantization_config parses as compressed_tensors QuantizationConfig (pydantic model),
    quant_method "compressed-tensors", quantization_status "compressed", format float-/int-/naive-quantized.
 2. Every Linear the config targets (q/k/v/o/gate/up/down and lm_head unless ignored) has weight of
    F8_E4M3 (float) or I8 (int) with the layer's shape; weight_scale in the model dtype with the shape of
    its strategy — channel (N,1), tensor (1,) or (), block (ceil(N/b0), ceil(K/b1)); finite, > 0; no
    weight_zero_point for symmetric schemes; input_scale (1,) or () iff static activations; no NaN
    codes; ignored / non-Linear tensors stay in the model dtype; k_scale / v_scale per layer iff
    kv_cache_scheme.
 3. Decompression by the library (FloatQuantizationCompressor / IntQuantizationCompressor .decompress)
    equals an independent dequantization q * s rounded to the model dtype, bit for bit.
 4. Unless --no-hf-load: transformers AutoModelForCausalLM.from_pretrained(DIR) loads it through its
    compressed-tensors quantizer, a forward pass on 8 tokens gives finite logits, and then (the quantizer
    decompresses in a hook on the first forward) every Linear weight equals step 3's bit for bit.
 5. With --orig MODEL_DIR (a Hugging Face safetensors model): re-quantizing the original weights with
    compressed-tensors (calculate_qparams + compressor.compress, i.e. llm-compressor's bytes) gives the
    same codes and scales as the checkpoint, bit for bit.
"""
import glob, json, math, os, re, shutil, sys, tempfile
os.environ.setdefault("TQDM_DISABLE", "1")          # one line of output, no progress bars

def out(status, msg, code):
    print("%s: %s" % (status, msg))
    sys.exit(code)

try:
    import torch
    from safetensors import safe_open
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams
    from compressed_tensors.compressors.naive_quantized.base import (
        FloatQuantizationCompressor, IntQuantizationCompressor)
except ImportError as e:
    out("skip", "needs torch, safetensors and compressed-tensors (%s)" % e, 2)


class Fail(Exception):
    pass


LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def load_dir(d):
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    if not files:
        raise Fail("%s: no *.safetensors files" % d)
    t = {}
    for f in files:
        with safe_open(f, "pt") as h:
            for k in h.keys():
                if k in t:
                    raise Fail("%s: tensor %s appears twice" % (d, k))
                t[k] = h.get_tensor(k)
    return t


def ignored(name, ignore):
    for e in ignore or []:
        if e.startswith("re:"):
            if re.match(e[3:], name):
                return True
        elif name == e or name.endswith("." + e):
            return True
    return False


def scheme_for(qc, name):
    """The QuantizationScheme of Linear module `name`, or None (ignored / not targeted)."""
    if ignored(name, qc.ignore):
        return None
    for g in qc.config_groups.values():
        for t in g.targets:
            if t == "Linear" or (t.startswith("re:") and re.match(t[3:], name)) or name.endswith("." + t) or name == t:
                return g
    return None


def check(d, orig=None, hf_load=True):
    cfg_path = os.path.join(d, "config.json")
    if not os.path.exists(cfg_path):
        raise Fail("%s: no config.json" % d)
    cfg = json.load(open(cfg_path))
    q = cfg.get("quantization_config")
    if not isinstance(q, dict):
        raise Fail("config.json: no quantization_config object")
    if q.get("quant_method") != "compressed-tensors":
        raise Fail("quantization_config.quant_method is %r, expected 'compressed-tensors'" % q.get("quant_method"))
    try:
        qc = QuantizationConfig.model_validate(q)
    except Exception as e:
        raise Fail("quantization_config does not validate as compressed_tensors QuantizationConfig: %s"
                   % str(e).replace("\n", " ")[:300])
    if str(qc.quantization_status.value if hasattr(qc.quantization_status, "value") else qc.quantization_status) != "compressed":
        raise Fail("quantization_status is %r, expected 'compressed'" % qc.quantization_status)
    if qc.format not in ("float-quantized", "int-quantized", "naive-quantized"):
        raise Fail("format %r is not float-quantized / int-quantized / naive-quantized" % qc.format)
    mdt_name = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if mdt_name not in DTYPES:
        raise Fail("config.json torch_dtype %r not understood" % mdt_name)
    mdt = DTYPES[mdt_name]

    T = load_dir(d)
    nl = cfg.get("num_hidden_layers")
    if not isinstance(nl, int) or nl <= 0:
        raise Fail("config.json: num_hidden_layers missing")
    modules = ["model.layers.%d.%s.%s" % (l, "self_attn" if p[0] in "qkvo" else "mlp", p) for l in range(nl) for p in LINEAR]
    modules.append("lm_head")
    dense, nq = {}, 0
    for name in modules:
        sch = scheme_for(qc, name)
        w = T.get(name + ".weight")
        if w is None:
            if name == "lm_head" and cfg.get("tie_word_embeddings"):
                continue
            raise Fail("tensor %s.weight missing" % name)
        if sch is None or sch.weights is None:
            if w.dtype != mdt:
                raise Fail("%s.weight is not quantized by the config but stored as %s, expected %s" % (name, w.dtype, mdt))
            continue
        a = sch.weights
        nq += 1
        want = torch.float8_e4m3fn if a.type == "float" else torch.int8
        if a.num_bits != 8 or w.dtype != want:
            raise Fail("%s.weight is %s, expected %s for %s %d-bit" % (name, w.dtype, want, a.type, a.num_bits))
        if w.dim() != 2:
            raise Fail("%s.weight has shape %s, expected 2-D" % (name, list(w.shape)))
        N, K = w.shape
        s = T.get(name + ".weight_scale")
        if s is None:
            raise Fail("%s.weight_scale missing" % name)
        if s.dtype != mdt:
            raise Fail("%s.weight_scale is %s, expected the model dtype %s" % (name, s.dtype, mdt))
        strat = a.strategy.value if hasattr(a.strategy, "value") else str(a.strategy)
        if strat == "channel":
            ok = list(s.shape) == [N, 1]
            exp = "[%d, 1]" % N
        elif strat == "tensor":
            ok = list(s.shape) in ([1], [])
            exp = "[1]"
        elif strat == "block":
            b0, b1 = a.block_structure
            exp = "[%d, %d]" % (math.ceil(N / b0), math.ceil(K / b1))
            ok = list(s.shape) == [math.ceil(N / b0), math.ceil(K / b1)]
        else:
            raise Fail("%s: weight strategy %r not checked by this script" % (name, strat))
        if not ok:
            raise Fail("%s.weight_scale has shape %s, expected %s (%s strategy)" % (name, list(s.shape), exp, strat))
        if not torch.isfinite(s.float()).all() or not (s.float() > 0).all():
            raise Fail("%s.weight_scale has a non-finite or non-positive value" % name)
        if a.symmetric and (name + ".weight_zero_point") in T:
            raise Fail("%s.weight_zero_point present for a symmetric scheme (vLLM does not load it)" % name)
        if want == torch.float8_e4m3fn and ((w.view(torch.uint8) & 0x7F) == 0x7F).any():
            raise Fail("%s.weight holds NaN codes" % name)
        ia = sch.input_activations
        has_in = (name + ".input_scale") in T
        if ia is not None and not ia.dynamic:
            if not has_in:
                raise Fail("%s.input_scale missing (static input activations)" % name)
            si = T[name + ".input_scale"]
            if list(si.shape) not in ([1], []) or not torch.isfinite(si.float()).all() or not (si.float() > 0).all():
                raise Fail("%s.input_scale must be one finite positive value, got shape %s" % (name, list(si.shape)))
        elif has_in:
            raise Fail("%s.input_scale present but input activations are %s" % (name, "dynamic" if ia else "not quantized"))
        # 3. library decompression vs independent dequantization
        comp = FloatQuantizationCompressor if a.type == "float" else IntQuantizationCompressor
        sd = comp.decompress({"weight": w, "weight_scale": s}, sch)
        if strat == "block":
            b0, b1 = a.block_structure
            sx = s.float().repeat_interleave(b0, 0).repeat_interleave(b1, 1)[:N, :K]
        else:
            sx = s.float()
        ref = (w.float() * sx).to(mdt)
        got = sd["weight"]
        if got.dtype != mdt or got.shape != w.shape or not torch.equal(got.view(torch.int16 if mdt != torch.float32 else torch.int32),
                                                                    ref.view(torch.int16 if mdt != torch.float32 else torch.int32)):
            bad = (got.float() != ref.float()).sum().item() if got.shape == w.shape else -1
            raise Fail("%s: compressed-tensors decompression differs from q*s in %s (%s elements)" % (name, mdt_name, bad))
        dense[name] = ref
    if nq == 0:
        raise Fail("no quantized Linear found")
    for k, v in T.items():
        if (k.endswith("embed_tokens.weight") or k.endswith("norm.weight")) and v.dtype != mdt:
            raise Fail("%s stored as %s, expected the model dtype %s" % (k, v.dtype, mdt))
    kv = qc.kv_cache_scheme
    for l in range(nl):
        for n in ("k_scale", "v_scale"):
            key = "model.layers.%d.self_attn.%s" % (l, n)
            if kv is not None and key not in T:
                raise Fail("%s missing (kv_cache_scheme is set)" % key)
            if kv is None and key in T:
                raise Fail("%s present but kv_cache_scheme is null" % key)
    extra = ""
    # 5. bytes identical to what compressed-tensors makes from the original weights
    if orig:
        O = load_dir(orig)
        for name in dense:
            wo = O.get(name + ".weight")
            if wo is None:
                raise Fail("--orig %s: no %s.weight" % (orig, name))
            sch = scheme_for(qc, name)
            a = sch.weights
            wo = wo.to(mdt)
            strat = a.strategy.value if hasattr(a.strategy, "value") else str(a.strategy)
            if strat == "channel":
                lo, hi = wo.amin(1, keepdim=True), wo.amax(1, keepdim=True)
            elif strat == "tensor":
                lo, hi = wo.amin(), wo.amax()
            else:
                b0, b1 = a.block_structure
                N, K = wo.shape
                nb0, nb1 = math.ceil(N / b0), math.ceil(K / b1)
                wp = torch.zeros(nb0 * b0, nb1 * b1, dtype=wo.dtype); wp[:N, :K] = wo
                wb = wp.reshape(nb0, b0, nb1, b1).transpose(1, 2)
                lo, hi = wb.amin(dim=(-1, -2)), wb.amax(dim=(-1, -2))
            sc, zp = calculate_qparams(lo, hi, a)
            comp = FloatQuantizationCompressor if a.type == "float" else IntQuantizationCompressor
            sd = comp.compress({"weight": wo, "weight_scale": sc, "weight_zero_point": zp}, sch)
            qw, qs = T[name + ".weight"], T[name + ".weight_scale"]
            if not torch.equal(sd["weight"].view(torch.uint8), qw.view(torch.uint8)):
                n = (sd["weight"].view(torch.uint8) != qw.view(torch.uint8)).sum().item()
                i = (sd["weight"].view(torch.uint8) != qw.view(torch.uint8)).nonzero()[0].tolist()
                raise Fail("%s.weight: %d codes differ from compressed-tensors' own quantization of --orig; first %s: "
                           "w=%r expected 0x%02x got 0x%02x" % (name, n, i, wo[tuple(i)].item(),
                           sd["weight"].view(torch.uint8)[tuple(i)].item(), qw.view(torch.uint8)[tuple(i)].item()))
            if not torch.equal(sc.reshape(qs.shape).float(), qs.float()):
                raise Fail("%s.weight_scale differs from compressed-tensors' calculate_qparams of --orig" % name)
        extra += ", codes and scales identical to compressed-tensors' quantization of %s" % orig
    # 4. transformers loads it through its compressed-tensors quantizer
    if hf_load:
        try:
            import transformers
            from transformers import AutoModelForCausalLM
        except ImportError:
            hf_load = False
    if hf_load:
        import logging
        transformers.logging.set_verbosity_error()
        try:
            m = AutoModelForCausalLM.from_pretrained(d, dtype=mdt)
        except Exception as e:
            raise Fail("transformers could not load it: %s" % str(e).replace("\n", " ")[:300])
        # transformers decompresses in a hook on the first forward (ModelCompressor.add_decompress_hook)
        with torch.no_grad():
            ids = torch.arange(8).reshape(1, 8) % cfg.get("vocab_size", 8)
            lg = m(ids).logits
        if not torch.isfinite(lg.float()).all():
            raise Fail("transformers forward pass gives non-finite logits")
        mods = dict(m.named_modules())
        for name, ref in dense.items():
            mw = mods[name].weight
            if hasattr(mw, "to"):
                mw = mw.detach()
            if mw.dtype != mdt or not torch.equal(mw.float(), ref.float()):
                raise Fail("%s: weight decompressed by transformers (%s) differs from q*s" % (name, mw.dtype))
        extra += ", transformers %s loads it (decompressed weights bit-identical, finite logits)" % transformers.__version__
    return "%s: %d quantized Linear layers (%s, %s), compressed-tensors %s decompression == q*s%s" % (
        d, nq, qc.format, mdt_name, __import__("compressed_tensors").__version__, extra)


# ---------------------------------------------------------------------------------------------
def self_test():
    """A checkpoint made by the library (tiny Llama, FP8_DYNAMIC-style: per-channel E4M3 weights,
    dynamic per-token activations, lm_head ignored) must pass, with --orig; corrupted copies must fail."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from compressed_tensors.quantization import QuantizationArgs, apply_quantization_config
    from compressed_tensors.compressors import ModelCompressor
    import transformers
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="ct_selftest_")
    try:
        cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
        m = LlamaForCausalLM(cfg).to(torch.bfloat16)
        m.config.torch_dtype = torch.bfloat16
        m.save_pretrained(os.path.join(tmp, "orig"))
        qc = QuantizationConfig(config_groups={"group_0": QuantizationScheme(
            targets=["Linear"],
            weights=QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True, dynamic=False),
            input_activations=QuantizationArgs(num_bits=8, type="float", strategy="token", symmetric=True, dynamic=True))},
            ignore=["lm_head"], format="float-quantized")
        apply_quantization_config(m, qc)
        for _, mod in m.named_modules():
            if hasattr(mod, "weight_scale"):
                w = mod.weight
                s, zp = calculate_qparams(w.amin(1, keepdim=True), w.amax(1, keepdim=True), mod.quantization_scheme.weights)
                mod.weight_scale.data.copy_(s)
                if hasattr(mod, "weight_zero_point"):
                    mod.weight_zero_point.data.copy_(zp)
        comp = ModelCompressor.from_pretrained_model(m)
        comp.compress_model(m)
        good = os.path.join(tmp, "good")
        m.save_pretrained(good)
        comp.update_config(good)
        msg = check(good, orig=os.path.join(tmp, "orig"))
        from safetensors.torch import load_file, save_file

        def corrupt(tag, edit_tensors=None, edit_cfg=None):
            d = os.path.join(tmp, tag)
            shutil.copytree(good, d)
            if edit_tensors:
                f = glob.glob(os.path.join(d, "*.safetensors"))[0]
                t = load_file(f); edit_tensors(t); save_file(t, f, metadata={"format": "pt"})
            if edit_cfg:
                c = json.load(open(os.path.join(d, "config.json"))); edit_cfg(c)
                json.dump(c, open(os.path.join(d, "config.json"), "w"))
            try:
                check(d, orig=os.path.join(tmp, "orig"), hf_load=False)
            except Fail as e:
                return str(e)
            raise Fail("self-test: corrupted checkpoint '%s' was accepted" % tag)

        L = "model.layers.0.mlp.down_proj"
        reasons = [
            corrupt("scale_shape", lambda t: t.__setitem__(L + ".weight_scale", t[L + ".weight_scale"].reshape(-1))),
            corrupt("scale_dtype", lambda t: t.__setitem__(L + ".weight_scale", t[L + ".weight_scale"].float())),
            corrupt("one_code", lambda t: t[L + ".weight"].view(torch.uint8).__setitem__((0, 0), t[L + ".weight"].view(torch.uint8)[0, 0] ^ 1)),
            corrupt("zero_point", lambda t: t.__setitem__(L + ".weight_zero_point", torch.zeros(64, 1, dtype=torch.bfloat16))),
            corrupt("method", edit_cfg=lambda c: c["quantization_config"].__setitem__("quant_method", "fp8")),
            corrupt("strategy", edit_cfg=lambda c: c["quantization_config"]["config_groups"]["group_0"]["weights"].__setitem__("strategy", "tensor")),
            corrupt("kv", edit_cfg=lambda c: c["quantization_config"].__setitem__("kv_cache_scheme",
                    {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False, "symmetric": True})),
        ]
        return "self-test passed: library-made checkpoint accepted (%s); 7 corrupted copies rejected (e.g. %s)" % (msg, reasons[2])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    try:
        if args == ["--self-test"]:
            try:
                import transformers  # noqa: F401
            except ImportError:
                out("skip", "--self-test needs transformers", 2)
            out("ok", self_test(), 0)
        if not args or args[0].startswith("-"):
            out("FAIL", "usage: check_ct_export.py DIR [--orig MODEL_DIR] [--no-hf-load] | --self-test", 1)
        d, orig, hf = args[0], None, True
        i = 1
        while i < len(args):
            if args[i] == "--orig" and i + 1 < len(args):
                orig = args[i + 1]; i += 2
            elif args[i] == "--no-hf-load":
                hf = False; i += 1
            else:
                out("FAIL", "unknown argument %r" % args[i], 1)
        out("ok", check(d, orig, hf), 0)
    except Fail as e:
        out("FAIL", str(e), 1)
