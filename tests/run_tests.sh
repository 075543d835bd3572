#!/bin/sh
# The whole test suite. Every tests/test_*.c is compiled (it may #include "llama_fp8.c" with
# TESTING defined) and run; every tests/test_*.sh is run with LLAMA_FP8=./llama_fp8.
# Tests report one line per check:  "ok NAME"  |  "FAIL NAME: why"  |  "skip NAME: why".
# A test program that exits non-zero without printing FAIL counts as one failure.
# Usage: sh tests/run_tests.sh [pattern]   (pattern filters test file names)
CC=${CC:-cc}; CFLAGS=${CFLAGS:-"-O2 -std=gnu11 -fopenmp -I."}; LDLIBS=${LDLIBS:--lm}
EMU_SRC=${EMU_SRC:-$(ls emu/*.c 2>/dev/null)}
export LLAMA_FP8="$(pwd)/llama_fp8"
export LLAMA_FP8_DATA="${LLAMA_FP8_DATA:-$(cd ../shared/data 2>/dev/null && pwd || echo "$(pwd)/data/dl")}"
mkdir -p build/tests
log=build/tests/log.txt; : > "$log"
pass=0; fail=0; skip=0
run_one() {  # $1 = name, rest = command
  name=$1; shift
  out=build/tests/$name.out
  start=$(date +%s)
  "$@" > "$out" 2>&1; rc=$?
  secs=$(( $(date +%s) - start ))
  p=$(grep -c '^ok ' "$out"); f=$(grep -c '^FAIL ' "$out"); s=$(grep -c '^skip ' "$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exited with status $rc" >> "$out"; f=$((f + 1))
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  printf '%-28s %4d ok %3d failed %3d skipped  (%ds)\n' "$name" "$p" "$f" "$s" "$secs"
  grep -E '^(FAIL|skip) ' "$out" | sed 's/^/    /'
  cat "$out" >> "$log"
}
for src in tests/test_*.c; do
  [ -f "$src" ] || continue
  name=$(basename "$src" .c)
  case "$name" in *"$1"*) ;; *) continue ;; esac
  bin=build/tests/$name
  if ! $CC $CFLAGS -DTESTING -o "$bin" "$src" $EMU_SRC $LDLIBS 2> build/tests/$name.cc.txt; then
    cat build/tests/$name.cc.txt
    echo "FAIL $name: does not compile"; fail=$((fail + 1)); continue
  fi
  run_one "$name" "$bin"
done
for sh in tests/test_*.sh; do
  [ -f "$sh" ] || continue
  name=$(basename "$sh" .sh)
  case "$name" in *"$1"*) ;; *) continue ;; esac
  run_one "$name" sh "$sh"
done
echo "(full output: $log)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
