#!/bin/sh
# The CUDA build (make CUDA=1) and its CPU fallback. Builds build/cuda/llama_fp8 (not ./llama_fp8, which
# stays the CPU binary the rest of the suite tests), checks that the one object file carries sm_89 and
# sm_90a machine code plus PTX, and that on a machine without a usable GPU the CUDA binary says so and
# runs on the CPU. Skips when nvcc is absent.
cd "$(dirname "$0")/.." || exit 1
# The CPU-only binary: verify must refuse cleanly (one line, non-zero exit, no crash).
# (Under `make test CUDA=1` $LLAMA_FP8 is itself a CUDA build: then this check does not apply.)
if [ -x "$LLAMA_FP8" ] && ! "$LLAMA_FP8" verify --device 2>&1 | grep -q "CUDA build\|sm_"; then
  out=$("$LLAMA_FP8" verify 2>&1); rc=$?
  case "$rc:$out" in
    1:*"built without CUDA"*) echo "ok cuda_verify_cpu_build: refuses with: $out" ;;
    *) echo "FAIL cuda_verify_cpu_build: expected exit 1 and 'built without CUDA', got $rc: $out" ;;
  esac
fi
if ! command -v nvcc >/dev/null 2>&1; then
  echo "skip cuda_build: nvcc not found, the CUDA path was not compiled"
  exit 0
fi
start=$(date +%s)
if ! env -u CFLAGS -u LDLIBS nice make --no-print-directory CUDA=1 build/cuda/llama_fp8 > build/tests/cuda_build.log 2>&1; then
  tail -20 build/tests/cuda_build.log
  echo "FAIL cuda_build: make CUDA=1 build/cuda/llama_fp8 failed (log above)"
  exit 1
fi
echo "ok cuda_build: make CUDA=1 built build/cuda/llama_fp8 in $(( $(date +%s) - start )) s"
# cuobjdump: the toolkit's, else the copy Triton ships (this machine's minimal toolkit has none).
CUOBJDUMP=$(command -v cuobjdump || true)
[ -n "$CUOBJDUMP" ] || { d=$(dirname "$(command -v nvcc)"); [ -x "$d/cuobjdump" ] && CUOBJDUMP=$d/cuobjdump; }
[ -n "$CUOBJDUMP" ] || { d=$(python3 -c 'import os, triton; print(os.path.dirname(triton.__file__))' 2>/dev/null) && [ -x "$d/backends/nvidia/bin/cuobjdump" ] && CUOBJDUMP=$d/backends/nvidia/bin/cuobjdump; }
if [ -z "$CUOBJDUMP" ]; then
  echo "skip cuda_elf: no cuobjdump (toolkit or Triton) to list the embedded code"
else
  elf=$("$CUOBJDUMP" --list-elf build/cuda_kernels.o 2>&1); ptx=$("$CUOBJDUMP" --list-ptx build/cuda_kernels.o 2>&1)
  for arch in sm_89 sm_90a; do
    if echo "$elf" | grep -q "\.$arch\.cubin"; then echo "ok cuda_elf_$arch: $(echo "$elf" | grep "\.$arch\.cubin" | head -1)"
    else echo "FAIL cuda_elf_$arch: cuobjdump --list-elf shows no $arch code: $elf"; fi
  done
  if echo "$ptx" | grep -q "sm_90"; then echo "ok cuda_ptx: $(echo "$ptx" | head -1)"; else echo "FAIL cuda_ptx: no PTX: $ptx"; fi
  # The FP8 tensor-core instruction is in the sm_89 machine code (QMMA.16832.F32.E4M3.E4M3). On sm_90a
  # ptxas lowers mma.sync e4m3 to conversions plus fp16 HMMA.16816.F32 (Hopper's FP8 tensor cores are
  # reached only through wgmma): the check pins that fact, which decides what the mma kernel measures there.
  n=$("$CUOBJDUMP" --dump-sass --gpu-architecture sm_89 build/cuda_kernels.o 2>/dev/null | grep -c "QMMA.16832.F32.E4M3.E4M3")
  if [ "$n" -gt 0 ]; then echo "ok cuda_sass_mma_sm_89: $n QMMA.16832.F32.E4M3.E4M3 instructions"
  else echo "FAIL cuda_sass_mma_sm_89: no FP8 MMA instruction in the sm_89 SASS"; fi
  sass90=$("$CUOBJDUMP" --dump-sass --gpu-architecture sm_90a build/cuda_kernels.o 2>/dev/null)
  q=$(echo "$sass90" | grep -c "QMMA\|QGMMA"); h=$(echo "$sass90" | grep -c "HMMA.16816.F32")
  if [ "$q" -gt 0 ] || [ "$h" -gt 0 ]; then echo "ok cuda_sass_mma_sm_90a: $q QMMA/QGMMA, $h HMMA.16816.F32 (mma.sync e4m3 on sm_90a runs as fp16 HMMA)"
  else echo "FAIL cuda_sass_mma_sm_90a: no MMA instruction in the sm_90a SASS"; fi
  # The wgmma kernel: Hopper's FP8 warpgroup instruction, E4M3 and E5M2, in the sm_90a machine code.
  for t in E4M3.E4M3 E5M2.E5M2; do
    n=$(echo "$sass90" | grep -c "QGMMA.64x128x32.F32.$t")
    if [ "$n" -gt 0 ]; then echo "ok cuda_sass_wgmma_${t%%.*}: $n QGMMA.64x128x32.F32.$t instructions in the sm_90a SASS"
    else echo "FAIL cuda_sass_wgmma_${t%%.*}: no QGMMA.64x128x32.F32.$t in the sm_90a SASS"; fi
  done
fi
bin=build/cuda/llama_fp8
dev=$($bin verify --device 2>&1); rc=$?
if [ $rc -ne 0 ]; then echo "FAIL cuda_device: verify --device exited $rc: $dev"; exit 1; fi
case "$dev" in
  "device: cpu ("*) echo "ok cuda_fallback: no usable GPU here, the CUDA build runs on the CPU and says so: $dev"
     out=$($bin verify 2>&1); rc=$?
     case "$rc:$out" in
       1:*"no GPU to verify"*) echo "ok cuda_verify_no_gpu: exit 1 with: $out" ;;
       *) echo "FAIL cuda_verify_no_gpu: expected exit 1 and 'no GPU to verify', got $rc: $out" ;;
     esac ;;
  "device: "*) echo "ok cuda_device: the CUDA build found $dev" ;;
  *) echo "FAIL cuda_device: unexpected output: $dev" ;;
esac
out=$(LLAMA_FP8_DEVICE=cpu $bin verify --device 2>&1)
case "$out" in "device: cpu ("*) echo "ok cuda_force_cpu: LLAMA_FP8_DEVICE=cpu gives: $out" ;; *) echo "FAIL cuda_force_cpu: $out" ;; esac
out=$($bin verify --cpu --device 2>&1)
case "$out" in "device: cpu ("*) echo "ok cuda_flag_cpu: --cpu gives: $out" ;; *) echo "FAIL cuda_flag_cpu: $out" ;; esac
