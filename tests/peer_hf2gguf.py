"""A Llama HF checkpoint (bf16 safetensors, as `llama_fp8 synth` writes) -> GGUF BF16, without torch.
Mirrors llama.cpp convert_hf_to_gguf.py (LlamaModel, commit c392e50): q/k rows permuted to llama.cpp's
RoPE layout, rope_freqs for llama3 scaling, gpt2/llama-bpe vocabulary from tokenizer.json.
Used only to measure llama.cpp beside llama_fp8 on a `synth` checkpoint (README, Benchmarks): this machine
cannot install torch, which convert_hf_to_gguf.py needs. TOKENIZER_JSON: `python3 tests/gen_tok_goldens.py
hfjson DATA OUT` (Meta's tokenizer.model through transformers' TikTokenConverter).
Usage: PYTHONPATH=LLAMA_CPP/gguf-py python3 tests/peer_hf2gguf.py MODEL_DIR TOKENIZER_JSON OUT.gguf"""
import json, math, os, struct, sys
import numpy as np
import gguf

d, tokjson, out = sys.argv[1:4]
hp = json.load(open(os.path.join(d, 'config.json')))
idx = json.load(open(os.path.join(d, 'model.safetensors.index.json')))['weight_map']

def load(name):
    path = os.path.join(d, idx[name])
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        h = json.loads(f.read(n))
        e = h[name]
        assert e['dtype'] == 'BF16'
        a, b = e['data_offsets']
        f.seek(8 + n + a)
        return np.frombuffer(f.read(b - a), dtype=np.uint16).reshape(e['shape'])

def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

nh, nkv, L = hp['num_attention_heads'], hp['num_key_value_heads'], hp['num_hidden_layers']
w = gguf.GGUFWriter(out, 'llama')
w.add_name('llama_fp8-synth')
w.add_context_length(hp['max_position_embeddings'])
w.add_embedding_length(hp['hidden_size'])
w.add_block_count(L)
w.add_feed_forward_length(hp['intermediate_size'])
w.add_head_count(nh)
w.add_head_count_kv(nkv)
w.add_rope_freq_base(hp['rope_theta'])
w.add_layer_norm_rms_eps(hp['rms_norm_eps'])
w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
w.add_vocab_size(hp['vocab_size'])
w.add_rope_dimension_count(hp['head_dim'])
# vocabulary (convert_hf_to_gguf _set_vocab_gpt2 for Llama 3)
tj = json.load(open(tokjson))
vocab = tj['model']['vocab']
rev = {i: t for t, i in vocab.items()}
added = {a['id']: a for a in tj['added_tokens']}
tokens, types = [], []
for i in range(hp['vocab_size']):
    if i in added:
        tokens.append(added[i]['content']); types.append(gguf.TokenType.CONTROL if added[i]['special'] else gguf.TokenType.USER_DEFINED)
    elif i in rev:
        tokens.append(rev[i]); types.append(gguf.TokenType.NORMAL)
    else:
        tokens.append('[PAD%d]' % i); types.append(gguf.TokenType.UNUSED)
w.add_tokenizer_model('gpt2')
w.add_tokenizer_pre('llama-bpe')
w.add_token_list(tokens)
w.add_token_types(types)
w.add_token_merges([' '.join(m) if isinstance(m, list) else m for m in tj['model']['merges']])
w.add_bos_token_id(hp['bos_token_id'])
w.add_eos_token_id(hp['eos_token_id'])
w.add_add_bos_token(True)
# rope_freqs (llama3 scaling), as convert_hf_to_gguf computes it (float32 arithmetic of torch there)
rs = hp.get('rope_scaling')
if rs and rs.get('rope_type', '').lower() == 'llama3':
    dim = hp['head_dim']
    freqs = 1.0 / (np.float32(hp['rope_theta']) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    lo, hi, fac, old = rs['low_freq_factor'], rs['high_freq_factor'], rs['factor'], rs['original_max_position_embeddings']
    lw, hw = old / lo, old / hi
    f = []
    for fr in freqs:
        wl = 2 * math.pi / fr
        if wl < hw: f.append(1)
        elif wl > lw: f.append(fac)
        else:
            sm = (old / wl - lo) / (hi - lo)
            f.append(1 / ((1 - sm) / fac + sm))
    w.add_tensor('rope_freqs.weight', np.array(f, dtype=np.float32))
BF16 = gguf.GGMLQuantizationType.BF16
def put(gname, arr):
    if arr.ndim == 1:   # norms: F32 (exact), as convert_hf_to_gguf keeps 1-D tensors
        w.add_tensor(gname, (arr.astype(np.uint32) << 16).view(np.float32))
    else:
        w.add_tensor(gname, np.ascontiguousarray(arr), raw_shape=arr.shape, raw_dtype=BF16)
put('token_embd.weight', load('model.embed_tokens.weight'))
for l in range(L):
    p = 'model.layers.%d.' % l
    put('blk.%d.attn_norm.weight' % l, load(p + 'input_layernorm.weight'))
    put('blk.%d.attn_q.weight' % l, permute(load(p + 'self_attn.q_proj.weight'), nh, nh))
    put('blk.%d.attn_k.weight' % l, permute(load(p + 'self_attn.k_proj.weight'), nh, nkv))
    put('blk.%d.attn_v.weight' % l, load(p + 'self_attn.v_proj.weight'))
    put('blk.%d.attn_output.weight' % l, load(p + 'self_attn.o_proj.weight'))
    put('blk.%d.ffn_norm.weight' % l, load(p + 'post_attention_layernorm.weight'))
    put('blk.%d.ffn_gate.weight' % l, load(p + 'mlp.gate_proj.weight'))
    put('blk.%d.ffn_up.weight' % l, load(p + 'mlp.up_proj.weight'))
    put('blk.%d.ffn_down.weight' % l, load(p + 'mlp.down_proj.weight'))
put('output_norm.weight', load('model.norm.weight'))
if not hp.get('tie_word_embeddings') and 'lm_head.weight' in idx:
    put('output.weight', load('lm_head.weight'))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print('wrote', out)
