#!/bin/sh
# Checks of the GPU code that need no GPU: the __host__ __device__ functions of cuda_kernels.cu (the very
# code the kernels run: fp8.h encoding, quantization formulas, the GEMM accumulation models, the glibc
# expf port, RMSNorm/RoPE/attention/SwiGLU in the kernels' order), compiled for the CPU, against their
# CPU twins (emu/ and forward()). Oracles: emu_quant_*, emu_gemm_ref, libm expf, forward() logits.
cd "$(dirname "$0")/.." || exit 1
if ! command -v nvcc >/dev/null 2>&1; then echo "skip cuda_host: nvcc not found, no CUDA build to check"; exit 0; fi
if ! env -u CFLAGS -u LDLIBS nice make --no-print-directory CUDA=1 build/cuda/llama_fp8 > build/tests/cuda_host_build.log 2>&1; then
  tail -20 build/tests/cuda_host_build.log; echo "FAIL cuda_host: make CUDA=1 build/cuda/llama_fp8 failed"; exit 1
fi
build/cuda/llama_fp8 verify --host --seed 7
