#!/bin/sh
# Downloads the public test data into $1 when ../shared/data is absent (URLs: ../shared/data/README.md).
set -e
dst=${1:-data/dl}
mkdir -p "$dst/stories260K" "$dst/tinystories" "$dst/llama3-tokenizer" "$dst/wikitext-2-raw"
get() { [ -f "$2" ] || { curl -fsSL "$1" -o "$2.part" && mv "$2.part" "$2"; }; }
get https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin "$dst/stories260K/stories260K.bin"
get https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin "$dst/stories260K/tok512.bin"
get https://raw.githubusercontent.com/meta-llama/llama-models/main/models/llama3/tokenizer.model "$dst/llama3-tokenizer/tokenizer.model"
# a 30 KB excerpt of the TinyStories validation text (the first 30,346 bytes, by an HTTP range request)
[ -f "$dst/tinystories/tinystories_valid_excerpt.txt" ] || { curl -fsSL -r 0-30345 https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt -o "$dst/tinystories/x.part" && mv "$dst/tinystories/x.part" "$dst/tinystories/tinystories_valid_excerpt.txt"; }
