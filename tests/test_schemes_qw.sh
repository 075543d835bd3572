#!/bin/sh
# quant_weight() of llama_fp8.c against compressed-tensors goldens (tests/schemes_qw.c). The C file is
# not named test_*.c so that run_tests.sh does not compile it before llama_fp8.c defines quant_weight;
# until then this prints one skip line.
CC=${CC:-cc}; CFLAGS=${CFLAGS:-"-O2 -std=gnu11 -fopenmp -I."}; LDLIBS=${LDLIBS:--lm}
EMU_SRC=${EMU_SRC:-$(ls emu/*.c)}
if ! grep -q '^static void quant_weight(uint8_t \*q, float \*scale, const Tensor \*W, emu_dtype fmt, int granularity, int bf16_arith)' llama_fp8.c; then
    echo "skip sch: llama_fp8.c has no quant_weight(q, scale, W, fmt, granularity, bf16_arith) yet"
    exit 0
fi
mkdir -p build/tests
if ! $CC $CFLAGS -DTESTING -o build/tests/schemes_qw tests/schemes_qw.c $EMU_SRC $LDLIBS 2> build/tests/schemes_qw.cc.txt; then
    head -20 build/tests/schemes_qw.cc.txt
    echo "FAIL sch: tests/schemes_qw.c does not compile against llama_fp8.c"
    exit 1
fi
exec build/tests/schemes_qw
