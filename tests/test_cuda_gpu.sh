#!/bin/sh
# On a GPU (compute capability 8.9 or 9.x): every kernel against its CPU twin on random inputs
# (tests/cuda_check.c --kernels: quantization and the model GEMMs bit for bit, the raw tensor-core GEMM and cuBLASLt
# against emu's accumulation models), every op of the forward pass of the synthetic model, fp32 and
# bf16, bit for bit, and the resident forward pass (gpu_forward: weights, activations and KV cache on the
# GPU) of every scheme against forward(), bit for bit with the model GEMM kernels (verify --synthetic);
# with the tensor cores (--accum hopper: cuBLASLt / mma) the difference is printed, not judged. Skips
# without a GPU.
cd "$(dirname "$0")/.." || exit 1
if ! command -v nvcc >/dev/null 2>&1; then echo "skip cuda_gpu: nvcc not found, no CUDA build"; exit 0; fi
if ! env -u CFLAGS -u LDLIBS nice make --no-print-directory CUDA=1 build/cuda/llama_fp8 build/cuda/cuda_check > build/tests/cuda_gpu_build.log 2>&1; then
  tail -20 build/tests/cuda_gpu_build.log; echo "FAIL cuda_gpu: make CUDA=1 build/cuda/llama_fp8 build/cuda/cuda_check failed"; exit 1
fi
dev=$(build/cuda/llama_fp8 verify --device 2>&1)
case "$dev" in
  "device: cpu ("*) echo "skip cuda_gpu: no usable GPU on this machine ($dev); the GPU kernels were not run"; exit 0 ;;
esac
rc=0
build/cuda/cuda_check --kernels --seed 11 || rc=1
build/cuda/llama_fp8 verify --synthetic -q fp32 || rc=1
build/cuda/llama_fp8 verify --synthetic -q bf16 || rc=1
for q in fp8-w w8a8 w8a8-block int8; do build/cuda/llama_fp8 verify --synthetic -q $q || rc=1; done
build/cuda/llama_fp8 verify --synthetic -q w8a8 --kv fp8-e4m3 || rc=1
build/cuda/llama_fp8 verify --synthetic -q w8a8 --accum hopper || rc=1
build/cuda/llama_fp8 verify --synthetic -q w8a8-block --accum cublaslt || rc=1
build/cuda/llama_fp8 verify --synthetic -q bf16 --gemm cublaslt || rc=1
exit $rc
