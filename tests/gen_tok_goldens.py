#!/usr/bin/env python3
"""Tokenizer goldens and live oracles for tests/test_tok.c and tests/test_tok.sh.

Oracle: tiktoken (PyPI) with Meta's Llama 3 tokenizer.model and the Llama 3 pattern, which is how
Meta's own llama3 tokenizer.py encodes. Hugging Face `tokenizers` is the second oracle, through a
tokenizer.json that transformers' TikTokenConverter makes from the same tokenizer.model (made at
test time into build/, never committed).

  gen_tok_goldens.py goldens DATA      rewrite tests/golden/tok_digests.txt and tok_edge.jsonl
  gen_tok_goldens.py ids DATA FILE     print tiktoken's ids of FILE (no BOS, plain text), one line
  gen_tok_goldens.py random DATA SEED  write a random stress text (all of Unicode) to stdout
  gen_tok_goldens.py hfjson DATA OUT   write a Llama 3 tokenizer.json (TikTokenConverter) to OUT
  gen_tok_goldens.py hfids JSON FILE   print HF tokenizers' ids of FILE (no special tokens added)

Digest (also computed by tests/test_tok.c): 64-bit FNV-1a over the ASCII text made of each
document's ids joined by single spaces, each document followed by "\\n"; printed as 16 hex digits.
"""
import json
import os
import random
import sys

PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def llama3(data):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(os.path.join(data, "llama3-tokenizer", "tokenizer.model"))
    return tiktoken.Encoding("llama3", pat_str=PAT, mergeable_ranks=ranks, special_tokens={})


def fnv1a(docs_ids):
    h = 0xcbf29ce484222325
    for ids in docs_ids:
        for b in (" ".join(map(str, ids)) + "\n").encode():
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def c4_docs(data):
    docs = []
    with open(os.path.join(data, "c4", "c4.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                docs.append(row["prefix"] + row["gold_completion"])
    return docs


def pieces(text):
    """How tiktoken's regex splits text. Every code-point-aligned substring of text becomes a token
    of a throwaway vocabulary (after the 256 bytes); tiktoken emits a piece that is a token whole,
    so each output id names one piece."""
    import tiktoken
    ranks = {bytes([i]): i for i in range(256)}
    subs = []
    for i in range(len(text)):
        for j in range(i + 1, len(text) + 1):
            b = text[i:j].encode()
            if b not in ranks:
                ranks[b] = len(ranks)
                subs.append(b)
    enc = tiktoken.Encoding("pieces", pat_str=PAT, mergeable_ranks=ranks, special_tokens={})
    inv = {v: k for k, v in ranks.items()}
    return [inv[i].decode() for i in enc.encode_ordinary(text)]


def edge_cases():
    """Hand-picked corner cases of the pattern, then random strings over a nasty alphabet."""
    cases = ["'ſ", "'ſx", "x'ſx", "'S", "'RE'Ve'LL'd'M't", "'Kx", "'\u212ax", "don't", "DON'T", "'", "''s", "'\n",
             "\u00a0x", "\u00a0\u00a0x", "  \n  x", "\t\tx", "\tx", " \t x", "x\u3000\u3000y", "\u2028x",
             "\u0085x", "a \u00a01", "1234567", "12a34", "²³½x", "a\u0301b", "\u0301a", "😀😀 x", "\r\n\r\n",
             "x  ", "x \n", " \n \n x", "\n\n\n", "...\n\nx", " ...\r\n", "a\rb", "\r", " ", "  ", "\u3000",
             "\u00e9t\u00e9 123 \u0661\u0662\u0663\u0664", "\u4e2d\u6587 \u65e5\u672c\u8a9e", "\U0001E030x",
             "\u1c89\u1c8a", "\U00010D4Ay", "<|begin_of_text|>", "a<|eot_id|>b", "x\u200dy", "\ufeffx",
             "hello\tworld\n\tfoo", "Ǆǅǆ", "ⅫⅦ x", "\U0001F468\u200d\U0001F469 x", " \U0001F600"]
    alphabet = list("aZs'tTrRlLdDmMvVeE09 7\t\n\r.,!?-_<|>()[]") + [
        "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b", "\u000c", "\u2009", "\u200b", "ſ", "é", "ß", "Ω",
        "ж", "中", "日", "ا", "١", "²", "½", "Ⅻ", "\u0301", "\u0903", "😀", "\U0001F468", "\u200d", "’",
        "“", "—", "…", "\ufeff", "\U00010D4A", "\U0001E030", "\u1c89", "\u0e01", "\u0e31"]
    rng = random.Random(20261124)
    for _ in range(400):
        n = rng.randint(1, 24)
        cases.append("".join(rng.choice(alphabet) for _ in range(n)))
    return cases


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "goldens":
        data = sys.argv[2]
        enc = llama3(data)
        here = os.path.dirname(os.path.abspath(__file__))
        rows = []
        for name, docs in [("wiki.test.raw", None), ("wiki.valid.raw", None), ("c4", c4_docs(data))]:
            if docs is None:
                with open(os.path.join(data, "wikitext-2-raw", name), encoding="utf-8") as f:
                    docs = [f.read()]
            ids = [enc.encode_ordinary(d) for d in docs]
            rows.append("%s %d %d %s" % (name, len(docs), sum(map(len, ids)), fnv1a(ids)))
        with open(os.path.join(here, "golden", "tok_digests.txt"), "w") as f:
            f.write("# name documents tokens fnv1a64 -- made by tests/gen_tok_goldens.py with tiktoken %s\n"
                    % __import__("tiktoken").__version__)
            f.write("\n".join(rows) + "\n")
        with open(os.path.join(here, "golden", "tok_edge.jsonl"), "w") as f:
            for text in edge_cases():
                f.write(json.dumps({"text": text, "ids": enc.encode_ordinary(text), "pieces": pieces(text)}) + "\n")
    elif cmd == "random":
        # A deterministic 1 MB-ish stress text: runs over the nasty alphabet mixed with code points
        # drawn from all of Unicode (every class, every UTF-8 length), for live comparison.
        rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
        alphabet = "".join(edge_cases()[:60])
        out = []
        for _ in range(120000):
            r = rng.random()
            if r < 0.5:
                out.append(rng.choice(alphabet))
            elif r < 0.8:
                out.append(rng.choice(" \n\t\r\u00a0\u3000.,'sS0123456789abc"))
            else:
                c = rng.randrange(0x110000)
                out.append(chr(c) if not 0xD800 <= c < 0xE000 else "x")
        sys.stdout.buffer.write("".join(out).encode("utf-8"))
    elif cmd == "ids":
        enc = llama3(sys.argv[2])
        with open(sys.argv[3], "rb") as f:
            text = f.read().decode("utf-8")
        print(" ".join(map(str, enc.encode_ordinary(text))))
    elif cmd == "hfjson":
        from transformers.convert_slow_tokenizer import TikTokenConverter
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
        specials += ["<|reserved_special_token_%d|>" % i for i in range(3, 256 - 8)]
        tok = TikTokenConverter(os.path.join(sys.argv[2], "llama3-tokenizer", "tokenizer.model"),
                                extra_special_tokens=specials).converted()
        tok.save(sys.argv[3])
    elif cmd == "hfids":
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(sys.argv[2])
        with open(sys.argv[3], "rb") as f:
            text = f.read().decode("utf-8")
        print(" ".join(map(str, tok.encode(text, add_special_tokens=False).ids)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
