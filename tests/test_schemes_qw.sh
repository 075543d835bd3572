#!/bin/sh
# quant_weight() of llama_fp8.c against compressed-tensors goldens (tests/schemes_qw.c).
CC=${CC:-cc}; CFLAGS=${CFLAGS:-"-O2 -std=gnu11 -fopenmp -I."}; LDLIBS=${LDLIBS:--lm}
EMU_SRC=${EMU_SRC:-$(ls emu/*.c)}
mkdir -p build/tests
if ! $CC $CFLAGS -DTESTING -o build/tests/schemes_qw tests/schemes_qw.c $EMU_SRC $LDLIBS 2> build/tests/schemes_qw.cc.txt; then
    head -20 build/tests/schemes_qw.cc.txt
    echo "FAIL sch: tests/schemes_qw.c does not compile against llama_fp8.c"
    exit 1
fi
exec build/tests/schemes_qw
