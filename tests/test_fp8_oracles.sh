#!/bin/sh
# Live oracles for fp8.h, each where it is installed (else "skip"; the committed digests in
# tests/golden/ still prove every input in test_fp8_exhaustive):
#   CUDA   cuda_fp8.h host code compiled with g++ (no GPU needed): all 2^32 floats, E4M3/E5M2,
#          both saturation modes, byte for byte; 256 codes decoded; 2^24 doubles.
#   Python ml_dtypes / numpy / torch on ~2^26 inputs per conversion (tests/fp8_live_oracles.py).
cd "$(dirname "$0")/.." || exit 1
mkdir -p build/tests
CUDA_INC=${CUDA_INC:-/usr/local/cuda/include}

run() { # run a checker; a non-zero exit without a FAIL line is reported as one
    out=build/tests/fp8_live_$1.txt; shift
    "$@" > "$out" 2>&1; rc=$?
    cat "$out"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out"; then echo "FAIL fp8_live: $* exited with status $rc"; fi
}

if command -v g++ > /dev/null 2>&1 && [ -f "$CUDA_INC/cuda_fp8.h" ]; then
    if g++ -O2 -fopenmp -I. -I"$CUDA_INC" tests/fp8_cuda_oracle.cpp -o build/tests/fp8_cuda_oracle 2> build/tests/fp8_cuda_oracle.cc.txt; then
        run cuda build/tests/fp8_cuda_oracle compare
    else
        echo "FAIL fp8_cuda_oracle: tests/fp8_cuda_oracle.cpp does not compile against $CUDA_INC (build/tests/fp8_cuda_oracle.cc.txt)"
    fi
else
    echo "skip fp8_cuda_live: no g++ or no $CUDA_INC/cuda_fp8.h (set CUDA_INC)"
fi

if python3 -c "import numpy" > /dev/null 2>&1; then
    if ${CC:-cc} -O2 -shared -fPIC -fopenmp -I. tests/fp8_pylib.c -o build/tests/libfp8.so -lm; then
        run python python3 tests/fp8_live_oracles.py build/tests/libfp8.so
    else
        echo "FAIL fp8_live_python: tests/fp8_pylib.c does not compile"
    fi
else
    echo "skip fp8_live_python: no python3 with numpy"
fi
exit 0
