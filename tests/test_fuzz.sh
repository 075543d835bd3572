#!/bin/sh
# Fuzzes every parser of untrusted bytes (tests/fuzz_parsers.c, one target per parser) under
# AddressSanitizer + UBSan: libFuzzer when clang has it, else the harness's own mutator.
#   make test: about FUZZ_TIME seconds (default 1) per target, one line "ok fuzz_NAME: ..." each
#   make fuzz: FUZZ_RUNS executions (default 10^7) per target: executions, crashes, exec/s each
# Environment: FUZZ_RUNS (executions per target; unset = time-bounded short run), FUZZ_TIME,
# FUZZ_MAX_TIME (seconds: a cap on each target's FUZZ_RUNS run; the line then says how far it got),
# FUZZ_RUNS_NAME (that target's own count), FUZZ_TARGETS (names, default all), FUZZ_JOBS (targets
# run at once, default 1), FUZZ_SEED (default 1), FUZZ_OUT (work directory, default build/tests/fuzz: the binary, seeds/,
# corpus/ kept between runs, logs, crash-*).
# A crash leaves its input in FUZZ_OUT/crash-NAME-*; rerun it with
#   FUZZ_TARGET=NAME FUZZ_VERBOSE=1 FUZZ_OUT/fuzz_parsers FILE
set -u
ALL="json safetensors tiktoken tokjson tok512 tokenizer llama2c config index quant scales npy"
TARGETS=${FUZZ_TARGETS:-$ALL}; [ -n "$TARGETS" ] || TARGETS=$ALL
out=${FUZZ_OUT:-build/tests/fuzz}; mkdir -p "$out"
RUNS=${FUZZ_RUNS:-}; TIME=${FUZZ_TIME:-1}; JOBS=${FUZZ_JOBS:-1}; SEED=${FUZZ_SEED:-1}
D=${LLAMA_FP8_DATA:-../shared/data}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
FLAGS="-g -O2 -fno-omit-frame-pointer -std=gnu11 -fopenmp -I. -DTESTING -Wall -Wno-unused-parameter -Wno-unused-function"
bin=$out/fuzz_parsers

# ---- build: libFuzzer if clang links it, else standalone; skipped when the binary is up to date ----
mode=standalone
if echo 'int LLVMFuzzerTestOneInput(const unsigned char*d, unsigned long n){return 0;}' > $out/probe.c &&
   clang -fsanitize=fuzzer $out/probe.c -o $out/probe 2>/dev/null; then mode=libfuzzer; fi
if [ ! -x $bin ] || [ "$(cat $out/build_mode 2>/dev/null)" != $mode ] ||
   [ -n "$(find llama_fp8.c fp8.h emu data/unicode_tables.h tests/fuzz_parsers.c -newer $bin 2>/dev/null | head -1)" ]; then
  rm -f $bin $out/build_mode
  if [ $mode = libfuzzer ]; then cc="clang -fsanitize=fuzzer"; else cc="${CC:-cc} -DFUZZ_STANDALONE"; fi
  if ! $cc $SAN $FLAGS tests/fuzz_parsers.c emu/*.c -lm -o $bin 2> $out/cc.txt; then
    cat $out/cc.txt; echo "FAIL fuzz_build: the $mode fuzz target does not compile"; exit 1
  fi
  echo $mode > $out/build_mode
fi

# ---- seeds: synthesized by the harness, plus small real files when present (never copied into the repo) ----
rm -rf $out/seeds
if ! FUZZ_WRITE_SEEDS=$out/seeds $bin > $out/seeds.log 2>&1; then cat $out/seeds.log; echo "FAIL fuzz_seeds: the harness could not write its seeds"; exit 1; fi
for t in config index json; do mkdir -p $out/seeds/$t; done
for m in tests/models/*/; do
  n=$(basename $m)
  [ -f $m/config.json ] && cp $m/config.json $out/seeds/config/$n.json && cp $m/config.json $out/seeds/json/$n.config.json
  [ -f $m/model.safetensors.index.json ] && cp $m/model.safetensors.index.json $out/seeds/index/$n.json
done
for f in tests/fuzz_seeds/*/*; do   # regression inputs of past findings (tests/fuzz_parsers.c: fz_known); npy/: small valid .npy files
  [ -f "$f" ] && t=$(basename $(dirname $f)) && mkdir -p $out/seeds/$t && cp "$f" $out/seeds/$t/
done
[ -f $D/stories260K/tok512.bin ] && cp $D/stories260K/tok512.bin $out/seeds/tok512/ && cp $D/stories260K/tok512.bin $out/seeds/tokenizer/
[ -f $D/llama3-tokenizer/tokenizer.model ] && head -n 300 $D/llama3-tokenizer/tokenizer.model > $out/seeds/tiktoken/llama3_head300.model &&
  cp $out/seeds/tiktoken/llama3_head300.model $out/seeds/tokenizer/

# ---- one target: writes $out/NAME.result (the ok / FAIL line, after any report excerpt) ----
now() { date +%s.%N; }
run_target() {
  t=$1; log=$out/$t.log; res=$out/$t.result
  eval "runs=\${FUZZ_RUNS_$t:-$RUNS}"   # FUZZ_RUNS_json=N: this target's own count
  case $t in tiktoken|tokjson|tok512|tokenizer|llama2c) ml=8192 ;; *) ml=4096 ;; esac
  MAXT=${FUZZ_MAX_TIME:-}
  if [ -n "$runs" ]; then limit="-runs=$runs${MAXT:+ -max_total_time=$MAXT}"; else limit="-max_total_time=$TIME"; fi
  mkdir -p $out/corpus/$t; rm -f $res $out/crash-$t-*
  t0=$(now)
  if [ $mode = libfuzzer ]; then
    FUZZ_TARGET=$t OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
      $bin -seed=$SEED $limit -max_len=$ml -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=$out/crash-$t- \
      $out/corpus/$t $out/seeds/$t > $log 2>&1 &
  else
    FUZZ_TARGET=$t OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
      $bin -seed=$SEED $limit -max_len=$ml $out/seeds/$t > $log 2>&1 &
  fi
  pid=$!; wait $pid; rc=$?; t1=$(now)
  rm -rf /dev/shm/llama_fp8_fuzz.$pid "${TMPDIR:-/tmp}/llama_fp8_fuzz.$pid"   # its scratch files, also after a crash
  n=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' $log | tail -1)
  st=$(sed -n 's/^fuzz_stats: target=[a-z0-9]* execs=[0-9]* //p' $log | tail -1 | tr '=' ' ' | sed 's/ \([0-9][0-9]*\)/ \1,/g; s/,$//')
  secs=$(awk "BEGIN { printf \"%.0f\", $t1 - $t0 }")
  if [ $rc -eq 0 ] && [ -n "$n" ]; then
    rate=$(awk "BEGIN { s = $t1 - $t0; printf \"%.0f\", (s > 0 ? $n / s : 0) }")
    short=""; [ -n "$runs" ] && [ "$n" -lt "$runs" ] && short=" (stopped by FUZZ_MAX_TIME before $runs)"
    echo "ok fuzz_$t: $n execs$short in ${secs} s ($rate exec/s), 0 crashes; $st" > $res
  else
    art=$(ls $out/crash-$t-* 2>/dev/null | head -1)
    { grep -m1 -E "ERROR: |runtime error:|fuzzer: |Assertion|leak" $log
      grep -m10 -E "^ +#[0-9]+ " $log
      echo "FAIL fuzz_$t: crash or sanitizer report after ${secs} s (exit $rc); input: ${art:-none}; rerun: FUZZ_TARGET=$t FUZZ_VERBOSE=1 $bin ${art:-FILE}; log: $log"
    } > $res
  fi
}

# FUZZ_JOBS queues, the targets dealt round-robin, each queue one target after another
valid=""
for t in $TARGETS; do
  case " $ALL " in *" $t "*) valid="$valid $t" ;; *) echo "FAIL fuzz_$t: no such target (targets: $ALL)" ;; esac
done
q=0
while [ $q -lt "$JOBS" ]; do
  ( i=0; for t in $valid; do [ $((i % JOBS)) -eq $q ] && run_target $t; i=$((i + 1)); done ) &
  q=$((q + 1))
done
wait
status=0
for t in $TARGETS; do
  [ -f $out/$t.result ] || continue
  cat $out/$t.result
  grep -q '^ok ' $out/$t.result || status=1
done
exit $status
