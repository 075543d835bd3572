#!/bin/sh
# Fuzzes the JSON and safetensors parsers for a bounded time (tests/fuzz_parsers.c) under
# AddressSanitizer + UBSan: libFuzzer when clang has it, else a deterministic standalone mutator.
set -u
out=build/tests/fuzz; mkdir -p $out
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
if echo 'int LLVMFuzzerTestOneInput(const unsigned char*d, unsigned long n){return 0;}' > $out/probe.c &&
   clang -fsanitize=fuzzer $out/probe.c -o $out/probe 2>/dev/null; then
  if ! clang -g -O1 -std=gnu11 -fopenmp -I. -DTESTING -fsanitize=fuzzer $SAN tests/fuzz_parsers.c emu/*.c -lm -o $out/fuzz 2> $out/cc.txt; then
    cat $out/cc.txt; echo "FAIL fuzz_build: libFuzzer target does not compile"; exit 1; fi
  mkdir -p $out/corpus
  # seed corpus: a valid safetensors header and a config.json written by the standalone generator below
  printf '{"hidden_size": 64, "rope_scaling": {"factor": 8.0, "rope_type": "llama3"}, "eos_token_id": [1, 2]}' > $out/corpus/config.json
  python3 -c 'import struct,sys; h=b"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}"; sys.stdout.buffer.write(struct.pack("<Q",len(h))+h+bytes(12))' > $out/corpus/st.safetensors 2>/dev/null || true
  if ASAN_OPTIONS=detect_leaks=0 $out/fuzz -seed=1 -runs=300000 -max_total_time=60 -max_len=4096 $out/corpus > $out/log.txt 2>&1; then
    echo "ok fuzz_parsers_libfuzzer: $(grep -o 'Done [0-9]* runs' $out/log.txt | head -1) (ASan+UBSan)"
  else
    tail -30 $out/log.txt; echo "FAIL fuzz_parsers_libfuzzer: crash or sanitizer report (see $out/log.txt)"; exit 1
  fi
else
  CCX=${CC:-cc}
  if ! $CCX -g -O1 -std=gnu11 -fopenmp -I. -DTESTING -DFUZZ_STANDALONE $SAN tests/fuzz_parsers.c emu/*.c -lm -o $out/fuzz 2> $out/cc.txt; then
    cat $out/cc.txt; echo "FAIL fuzz_build: standalone target does not compile"; exit 1; fi
  ASAN_OPTIONS=detect_leaks=0 $out/fuzz 200000 || { echo "FAIL fuzz_parsers_standalone: crash or sanitizer report"; exit 1; }
fi
