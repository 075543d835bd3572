#!/bin/sh
# `llama_fp8 tokenize` through the binary: known ids, --bos / --special, the tokenizer.json path
# (made from Meta's tokenizer.model by transformers' TikTokenConverter into build/, never
# committed) against the tiktoken path and against Hugging Face `tokenizers`, a live tiktoken
# comparison, and one-line errors for malformed files.
# Env: LLAMA_FP8 (the binary), LLAMA_FP8_DATA (real data). Python oracles are optional: skip.
B=${LLAMA_FP8:-./llama_fp8}
D=${LLAMA_FP8_DATA:-../shared/data}
W=build/tests/tok_sh
mkdir -p "$W"
fails=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; fails=$((fails + 1)); }
skip() { echo "skip $1: $2"; }

MODEL=$D/llama3-tokenizer/tokenizer.model
TOK512=$D/stories260K/tok512.bin

# ---- ids from the data README and the tokenize options ----
if [ -f "$MODEL" ]; then
    printf 'This is a test sentence.' > "$W/s1.txt"
    got=$("$B" tokenize -m "$MODEL" -f "$W/s1.txt")
    [ "$got" = "2028 374 264 1296 11914 13" ] && ok tok_cli_sentence || fail tok_cli_sentence "got '$got'"
    printf 'Hello world' > "$W/s2.txt"
    got=$("$B" tokenize -m "$MODEL" -f "$W/s2.txt" --bos)
    [ "$got" = "128000 9906 1917" ] && ok tok_cli_bos || fail tok_cli_bos "got '$got'"
    printf '<|start_header_id|>user<|end_header_id|>' > "$W/s3.txt"
    got=$("$B" tokenize -m "$MODEL" -f "$W/s3.txt" --special)
    [ "$got" = "128006 882 128007" ] && ok tok_cli_special || fail tok_cli_special "got '$got'"
    got=$("$B" tokenize -m "$MODEL" -f "$W/s3.txt")
    case " $got " in *" 12800"*) fail tok_cli_no_special "special token parsed without --special: '$got'" ;; *) ok tok_cli_no_special ;; esac
    # A model directory with original/tokenizer.model (the HF download layout).
    mkdir -p "$W/hfdir/original" && ln -sf "$(cd "$(dirname "$MODEL")" && pwd)/tokenizer.model" "$W/hfdir/original/tokenizer.model"
    got=$("$B" tokenize -m "$W/hfdir" -f "$W/s1.txt")
    [ "$got" = "2028 374 264 1296 11914 13" ] && ok tok_cli_model_dir || fail tok_cli_model_dir "got '$got'"
else
    skip tok_cli "no $MODEL"
fi
if [ -f "$TOK512" ]; then
    # llama2.c layout: model.bin with tokenizer.bin beside it.
    mkdir -p "$W/l2c" && ln -sf "$(cd "$(dirname "$TOK512")" && pwd)/tok512.bin" "$W/l2c/tokenizer.bin" && : > "$W/l2c/model.bin"
    printf 'Once upon a time' > "$W/s4.txt"
    a=$("$B" tokenize -m "$W/l2c/model.bin" -f "$W/s4.txt" --bos)
    b=$("$B" tokenize -m "$TOK512" -f "$W/s4.txt" --bos)
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "${a%% *}" = 1 ] && ok tok_cli_llama2c_beside_model || fail tok_cli_llama2c_beside_model "'$a' vs '$b'"
else
    skip tok_cli_llama2c "no $TOK512"
fi

# ---- live oracles: tiktoken, and tokenizer.json via transformers + HF tokenizers ----
VALID=$D/wikitext-2-raw/wiki.valid.raw
if [ -f "$MODEL" ] && [ -f "$VALID" ] && python3 -c 'import tiktoken' 2>/dev/null; then
    python3 tests/gen_tok_goldens.py ids "$D" "$VALID" > "$W/valid.tiktoken" &&
    "$B" tokenize -m "$MODEL" -f "$VALID" > "$W/valid.ours" &&
    cmp -s "$W/valid.tiktoken" "$W/valid.ours" && ok tok_live_tiktoken_wiki_valid || fail tok_live_tiktoken_wiki_valid "ids differ from tiktoken (see $W/valid.*)"
    # 120,000 random characters: the nasty alphabet of the edge cases plus code points from all of Unicode.
    python3 tests/gen_tok_goldens.py random "$D" 1 > "$W/random.txt" &&
    python3 tests/gen_tok_goldens.py ids "$D" "$W/random.txt" > "$W/random.tiktoken" &&
    "$B" tokenize -m "$MODEL" -f "$W/random.txt" > "$W/random.ours" &&
    cmp -s "$W/random.tiktoken" "$W/random.ours" && ok tok_live_tiktoken_random_unicode || fail tok_live_tiktoken_random_unicode "ids differ from tiktoken (see $W/random.*)"
else
    skip tok_live_tiktoken "tiktoken or data not available (the committed digests in test_tok still run)"
fi
if [ -f "$MODEL" ] && [ -f "$VALID" ] && python3 -c 'import tiktoken, tokenizers, transformers.convert_slow_tokenizer' 2>/dev/null; then
    J=$W/hf/tokenizer.json
    mkdir -p "$W/hf"
    [ -s "$J" ] || python3 tests/gen_tok_goldens.py hfjson "$D" "$J" 2> "$W/hfjson.err" || { fail tok_hfjson_generate "$(tail -1 "$W/hfjson.err")"; }
    if [ -s "$J" ]; then
        "$B" tokenize -m "$MODEL" -f "$VALID" > "$W/valid.ours"
        "$B" tokenize -m "$J" -f "$VALID" > "$W/valid.json"
        cmp -s "$W/valid.json" "$W/valid.ours" && ok tok_hfjson_same_ids_as_tiktoken_path || fail tok_hfjson_same_ids_as_tiktoken_path "wiki.valid ids differ"
        python3 tests/gen_tok_goldens.py hfids "$J" "$VALID" > "$W/valid.hf"
        cmp -s "$W/valid.hf" "$W/valid.json" && ok tok_hfjson_same_ids_as_hf_tokenizers || fail tok_hfjson_same_ids_as_hf_tokenizers "wiki.valid ids differ from HF tokenizers"
        if [ -s "$W/random.txt" ]; then
            python3 tests/gen_tok_goldens.py hfids "$J" "$W/random.txt" > "$W/random.hf"
            "$B" tokenize -m "$J" -f "$W/random.txt" > "$W/random.json"
            cmp -s "$W/random.hf" "$W/random.json" && ok tok_hfjson_random_unicode_vs_hf_tokenizers || fail tok_hfjson_random_unicode_vs_hf_tokenizers "ids differ (see $W/random.*)"
        fi
        # Without ignore_merges (pure merge-rank BPE, merges as "a b" strings) HF gives 2 more
        # tokens than tiktoken on wiki.valid; ours must follow HF there too.
        python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); m = j["model"]; m["ignore_merges"] = False
m["merges"] = [" ".join(x) for x in m["merges"]]; json.dump(j, open(sys.argv[2], "w"), ensure_ascii=False)' "$J" "$W/nomerge.json"
        python3 tests/gen_tok_goldens.py hfids "$W/nomerge.json" "$VALID" > "$W/valid.nomerge.hf"
        "$B" tokenize -m "$W/nomerge.json" -f "$VALID" > "$W/valid.nomerge.ours"
        cmp -s "$W/valid.nomerge.hf" "$W/valid.nomerge.ours" && ok tok_hfjson_merge_ranks_vs_hf_tokenizers || fail tok_hfjson_merge_ranks_vs_hf_tokenizers "ids differ (see $W/valid.nomerge.*)"
        got=$("$B" tokenize -m "$W/hf" -f "$W/s3.txt" --special --bos)
        [ "$got" = "128000 128006 882 128007" ] && ok tok_hfjson_dir_special || fail tok_hfjson_dir_special "got '$got'"
    fi
else
    skip tok_hfjson "tiktoken, tokenizers or transformers not importable"
fi

# ---- malformed files: one line on stderr naming the file, non-zero exit, no crash ----
printf 'x' > "$W/one.txt"
expect_error() {  # name, file, what the message must contain
    "$B" tokenize -m "$2" -f "$W/one.txt" > "$W/err.out" 2> "$W/err.txt"
    rc=$?
    lines=$(wc -l < "$W/err.txt")
    if [ "$rc" -ne 1 ]; then fail "$1" "exit status $rc (want 1)"
    elif [ "$lines" -ne 1 ]; then fail "$1" "$lines lines on stderr"
    elif ! grep -q "^llama_fp8: error: .*$3" "$W/err.txt"; then fail "$1" "message '$(cat "$W/err.txt")' lacks '$3'"
    else ok "$1"; fi
}
if [ -f "$MODEL" ]; then
    head -n 1000 "$MODEL" > "$W/trunc.model" && printf 'IGNvbn' >> "$W/trunc.model"
    expect_error tok_err_tiktoken_truncated_line "$W/trunc.model" "line 1001: expected 'base64 rank'"
    { head -n 10 "$MODEL"; printf 'IS$= 10\n'; } > "$W/b64.model"
    expect_error tok_err_tiktoken_bad_base64 "$W/b64.model" "line 11: bad base64"
    { head -n 10 "$MODEL"; printf 'IQ== 3\n'; } > "$W/dup.model"
    expect_error tok_err_tiktoken_duplicate_rank "$W/dup.model" "rank 3 appears twice"
    head -n 100 "$MODEL" > "$W/few.model"
    expect_error tok_err_tiktoken_missing_bytes "$W/few.model" "has no token"
fi
if [ -f "$TOK512" ]; then
    head -c 3001 "$TOK512" > "$W/trunc_tok.bin"
    expect_error tok_err_llama2c_truncated "$W/trunc_tok.bin" "truncated in token"
fi
printf '{"model": {"type": "BPE", "vocab": {"a": 0,' > "$W/bad.json"
expect_error tok_err_json_truncated "$W/bad.json" "bad JSON: expected a key string at byte 43"
printf '{"model": {"type": "Unigram", "vocab": [], "merges": []}}' > "$W/uni.json"
expect_error tok_err_json_not_bpe "$W/uni.json" "not a BPE model"
printf '\001\002' > "$W/tiny.bin"
expect_error tok_err_tiny_file "$W/tiny.bin" "too short"
expect_error tok_err_missing_file "$W/does-not-exist.model" "No such file"
mkdir -p "$W/emptydir"
expect_error tok_err_dir_without_tokenizer "$W/emptydir" "no tokenizer.json, original/tokenizer.model or tokenizer.model"
"$B" tokenize -m "$W/emptydir" > /dev/null 2> "$W/err.txt"
[ $? -eq 1 ] && [ "$(wc -l < "$W/err.txt")" -eq 1 ] && ok tok_err_missing_option || fail tok_err_missing_option "$(cat "$W/err.txt")"
# ---- EOS: the tokenizer's (tokenizer_config.json's eos_token beside the model) against config.json's eos_token_id list ----
if [ -f "$MODEL" ]; then
  rm -rf "$W/eosm"; "$B" synth -o "$W/eosm" --shape tiny > /dev/null 2>&1; cp "$MODEL" "$W/eosm/"
  echo '{"eos_token": "<|eot_id|>"}' > "$W/eosm/tokenizer_config.json"
  "$B" generate -m "$W/eosm" -p Hi -n 1 > /dev/null 2> "$W/eos1.txt"
  grep -q "its EOS is token 128009, not among the model's eos_token_id (128001)" "$W/eos1.txt" && ok tok_eos_mismatch_warns || fail tok_eos_mismatch_warns "$(cat "$W/eos1.txt")"
  sed -i 's/"eos_token_id": 128001/"eos_token_id": [128001, 128008, 128009]/' "$W/eosm/config.json"
  "$B" generate -m "$W/eosm" -p Hi -n 1 > /dev/null 2> "$W/eos2.txt"
  grep -q "warning" "$W/eos2.txt" && fail tok_eos_in_list_silent "$(cat "$W/eos2.txt")" || ok tok_eos_in_list_silent
else skip tok_eos "no Llama 3 tokenizer in $D"; fi

[ "$fails" -eq 0 ]
