# llama_fp8 — plain `make` builds the CPU binary; `make CUDA=1` adds the GPU path.
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -ffp-contract=off -Wall -Wextra -Wno-unused-parameter -Wno-unused-function -Wno-missing-field-initializers -fopenmp -I.
LDLIBS  += -lm
NVCC    ?= nvcc
NVFLAGS ?= -O2 -std=c++17 -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90

# Real data lives beside the repository (../shared/data); `make data` downloads it when absent.
DATA    ?= $(shell if [ -d ../shared/data ]; then echo ../shared/data; else echo data/dl; fi)
export LLAMA_FP8_DATA := $(abspath $(DATA))

EMU_SRC := $(wildcard emu/*.c)
EMU_HDR := $(wildcard emu/*.h)
DEPS    := llama_fp8.c cuda_kernels.h fp8.h $(EMU_SRC) $(EMU_HDR)

ifeq ($(CUDA),1)
# One binary for Ada (sm_89) and Hopper (sm_90a machine code, wgmma-capable target) plus compute_90
# PTX for later GPUs; --fmad=false: no a*b+c contraction on the GPU either (the C side has
# -ffp-contract=off), so the kernels round exactly where their CPU twins do.
CUDA_HOME ?= $(abspath $(dir $(shell which $(NVCC)))..)
NVFLAGS += --fmad=false -Xcompiler -ffp-contract=off --threads 2
CFLAGS  += -DLLAMA_FP8_CUDA
CUDA_OBJ := build/cuda_kernels.o
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lstdc++
.DEFAULT_GOAL := all
# The CUDA binary under build/cuda/ (tests build it there, so ./llama_fp8 stays what plain make built).
build/cuda/llama_fp8: $(DEPS) $(CUDA_OBJ)
	@mkdir -p build/cuda
	$(CC) $(CFLAGS) -o $@ llama_fp8.c $(EMU_SRC) $(CUDA_OBJ) $(LDLIBS)
# Developer checks of every kernel against its CPU twin (--kernels on a GPU, --host on any machine).
build/cuda/cuda_check: tests/cuda_check.c $(DEPS) $(CUDA_OBJ)
	@mkdir -p build/cuda
	$(CC) $(CFLAGS) -o $@ tests/cuda_check.c $(EMU_SRC) $(CUDA_OBJ) $(LDLIBS)
# make bench CUDA=1: the GPU GEMM table first, then the CPU benchmarks.
.PHONY: bench-gpu
bench: bench-gpu
bench-gpu: llama_fp8
	@if ./llama_fp8 verify --device | grep -q '^device: cpu'; then \
	  echo "bench-gpu: $$(./llama_fp8 verify --device): no usable GPU, GPU benchmark skipped"; \
	else ./llama_fp8 verify --bench; fi
endif

.PHONY: all run test bench data clean fuzz asan
all: llama_fp8

llama_fp8: $(DEPS) $(CUDA_OBJ)
	$(CC) $(CFLAGS) -o $@ llama_fp8.c $(EMU_SRC) $(CUDA_OBJ) $(LDLIBS)

build/cuda_kernels.o: cuda_kernels.cu cuda_kernels.h fp8.h $(EMU_HDR)
	@mkdir -p build
	$(NVCC) $(NVFLAGS) -I. -c -o $@ cuda_kernels.cu

# The main job: perplexity of the trained tiny model on TinyStories text, FP8 schemes beside the
# bf16 baseline (and fp32) in one table. RUN_ARGS adds options, e.g. RUN_ARGS="--chunks 5".
RUN_MODEL := $(DATA)/stories260K/stories260K.bin
RUN_TOK   := $(DATA)/stories260K/tok512.bin
RUN_TEXT  := $(DATA)/tinystories/tinystories_valid_excerpt.txt
RUN_SCHEMES ?= bf16,fp32,fp8-w,w8a8,w8a8-block,int8
run: llama_fp8
	@if { [ -f $(RUN_MODEL) ] && [ -f $(RUN_TEXT) ]; } || { $(MAKE) --no-print-directory data >/dev/null 2>&1 && [ -f $(RUN_MODEL) ] && [ -f $(RUN_TEXT) ]; }; then \
	  ./llama_fp8 ppl -m $(RUN_MODEL) --tokenizer $(RUN_TOK) -f $(RUN_TEXT) --compare $(RUN_SCHEMES) $(RUN_ARGS); \
	else \
	  echo "make run: no stories260K and TinyStories text in $(DATA), and no network to fetch them: using the built-in synthetic model"; \
	  ./llama_fp8 ppl --synthetic --compare $(RUN_SCHEMES) $(RUN_ARGS); \
	fi

# TESTS=PATTERN runs only the test files whose names contain it (default: all).
test: llama_fp8
	@CC="$(CC)" CFLAGS="$(CFLAGS)" LDLIBS="$(LDLIBS)" EMU_SRC="$(EMU_SRC)" sh tests/run_tests.sh $(TESTS)

# make asan: the whole suite (TESTS=PATTERN: only the test files whose names contain it; ASAN_SKIP="NAME
# ...": test files left out) with AddressSanitizer + UBSan in the binary and in every test program. It
# runs in a copy of the working tree, $(ASAN_DIR)/tree, so that ./llama_fp8 and build/tests stay the
# normal build's. A sanitizer exit has status 86, so it fails the test that ran the command; ASan's
# reports also go to $(ASAN_DIR)/reports/ (UBSan's stay in the test output), and any report fails
# the target. Leak checking is off: fatal() exits with its allocations live, by design.
SAN_FLAGS ?= -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_DIR  ?= build/asan
ASAN_SKIP ?=
asan:
	@rm -rf $(ASAN_DIR)/tree $(ASAN_DIR)/reports && mkdir -p $(ASAN_DIR)/tree $(ASAN_DIR)/reports
	@tar -cf - --exclude=./build --exclude=./.git --exclude=./llama_fp8 --exclude=./data/dl --exclude=./wt . | tar -xf - -C $(ASAN_DIR)/tree
	@for t in $(ASAN_SKIP); do rm -f $(ASAN_DIR)/tree/tests/$$t.c $(ASAN_DIR)/tree/tests/$$t.sh; done
	@cd $(ASAN_DIR)/tree && export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:exitcode=86:log_path=$(abspath $(ASAN_DIR))/reports/asan" \
	  UBSAN_OPTIONS="print_stacktrace=1:exitcode=86" && \
	  CC="$(CC)" CFLAGS="-O2 -g $(SAN_FLAGS)" $(MAKE) --no-print-directory test DATA="$(abspath $(DATA))" TESTS="$(TESTS)"; rc=$$?; \
	  cd $(CURDIR); n=$$(ls $(ASAN_DIR)/reports | wc -l); \
	  for f in $(ASAN_DIR)/reports/*; do [ -f "$$f" ] || continue; echo "== $$f"; grep -m1 -E "ERROR: |runtime error:" "$$f"; grep -m6 -E "^ +#[0-9]" "$$f"; done; \
	  u=$$(cat $(ASAN_DIR)/tree/build/tests/*.out 2>/dev/null | grep -c -E "runtime error:|ERROR: AddressSanitizer"); \
	  cat $(ASAN_DIR)/tree/build/tests/*.out 2>/dev/null | grep -E "runtime error:|ERROR: AddressSanitizer" | sort | uniq -c; \
	  echo "make asan: suite exit status $$rc, $$n ASan report file(s) in $(ASAN_DIR)/reports, $$u sanitizer report(s) in the test output ($(ASAN_DIR)/tree/build/tests/)"; \
	  [ $$rc -eq 0 ] && [ $$n -eq 0 ] && [ $$u -eq 0 ]

# make fuzz: every parser target of tests/fuzz_parsers.c for FUZZ_RUNS executions each (libFuzzer with
# ASan + UBSan when clang has it, else the standalone mutator); FUZZ_TARGETS="json tokjson ..." picks
# some, FUZZ_RUNS_NAME=N sets one target's count, FUZZ_JOBS=2 runs two at a time, FUZZ_MAX_TIME=S caps
# each target's time (FUZZ_* also pass through from the environment). Prints executions,
# crashes and exec/s per parser. The short run in make test is tests/test_fuzz.sh with its defaults.
FUZZ_RUNS ?= 10000000
FUZZ_JOBS ?= 1
fuzz:
	@FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_MAX_TIME="$(FUZZ_MAX_TIME)" \
	  FUZZ_OUT=build/fuzz sh tests/test_fuzz.sh

# The GEMM table, then whole forward passes per scheme on a Llama-3.2-1B-shaped synthetic checkpoint cut
# to 4 layers (written once to build/bench/l4, 1.2 GB): tok/s and the share of the arithmetic floor.
bench: llama_fp8
	./llama_fp8 bench gemm
	@[ -f build/bench/l4/model.safetensors.index.json ] || { mkdir -p build/bench && ./llama_fp8 synth -o build/bench/l4 --shape llama3.2-1b --layers 4 > /dev/null; }
	./llama_fp8 bench e2e -m build/bench/l4 --ctx 512 --chunks 3

# Downloads the public test data when ../shared/data is absent (canonical URLs: ../shared/data/README.md).
data:
	@sh tests/get_data.sh data/dl

clean:
	rm -rf llama_fp8 build
