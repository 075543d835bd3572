"""Helpers of the live checks against llm-compressor (tests/wformats_check.py, mse_check.py, gptq_check.py,
smoothquant_check.py): pass / fail lines, llama_fp8 runs, safetensors as torch tensors, dumps compared bit for bit."""
import glob, subprocess, sys
import numpy as np, torch
from safetensors.torch import load_file

fails = 0
def check(ok, name, msg):
    global fails
    print(("ok %s: %s" if ok else "FAIL %s: %s") % (name, msg)); fails += not ok
def done(): sys.exit(1 if fails else 0)
def runner(B, tag):   # llama_fp8 B with arguments; on failure one FAIL line named tag and exit 1; returns stdout
    def run(*a):
        r = subprocess.run([B, *a], capture_output=True, text=True)
        if r.returncode: print(f"FAIL {tag}: llama_fp8 {' '.join(a)}: {r.stderr.strip()}"); sys.exit(1)
        return r.stdout
    return run
def tensors(d):   # every tensor of a checkpoint directory, by name
    out = {}
    for f in sorted(glob.glob(d + "/*.safetensors")): out.update(load_file(f))
    return out
def raw(t): return t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
def dump(run, model, ids, q, out):   # llama_fp8 dump: [logits, layer 0, layer 1, ...] (fp32 arrays)
    run("dump", "-m", model, "--ids", ids, "-q", q, "-o", out)
    L = len(glob.glob(out + "/layer_*.npy"))
    return [np.load(out + "/logits.npy")] + [np.load(f"{out}/layer_{l:02d}.npy") for l in range(L)]
def same(a, b): return len(a) == len(b) and all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a, b))
