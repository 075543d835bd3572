#!/bin/sh
# quant, gemm and gemm --explain: every code, scale and output element against independent oracles
# (tests/kernel_oracles.py: NumPy, ml_dtypes and Python fractions; skipped without numpy + ml_dtypes), and
# the refusals of bad input: exit 1, one line 'llama_fp8: error: ...' (the table 'kernel_cli' in
# tests/README.md; `sh tests/test_kernel_cli.sh --update` rewrites it). The bad .npy files are written
# here byte by byte, so the refusals are checked without numpy too.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/kernel_cli; rm -rf $T; mkdir -p $T
TABLE_NAME=kernel_cli; . tests/errors_lib.sh

if [ "${1:-}" != "--update" ]; then
  if python3 -c "import numpy, ml_dtypes" 2> /dev/null; then
    LLAMA_FP8=$B python3 tests/kernel_oracles.py
  else
    echo "skip kernel_oracles: numpy + ml_dtypes are not importable (pip install numpy ml_dtypes)"
  fi
fi

# npy FILE DESCR SHAPE DATA_BYTES [FORTRAN]: a .npy 1.0 file as NumPy writes it (header padded with
# spaces and a newline to a multiple of 64 bytes), holding DATA_BYTES zero bytes
npy() {
  h="{'descr': '$2', 'fortran_order': ${5:-False}, 'shape': ($3), }"
  n=${#h}; pad=$(( (64 - (10 + n + 1) % 64) % 64 )); hl=$((n + pad + 1))
  { printf '\223NUMPY\001\000'
    printf "\\$(printf %03o $((hl % 256)))\\$(printf %03o $((hl / 256)))"
    printf '%s' "$h"; printf "%${pad}s\n" ""
    head -c "$4" /dev/zero; } > $T/$1
}
npy a23.npy "|u1" "2, 3" 6;  npy b23.npy "|u1" "2, 3" 6;  npy b24.npy "|u1" "2, 4" 8
npy i23.npy "|i1" "2, 3" 6;  npy x23.npy "<f4" "2, 3" 24; npy x16.npy "<f2" "2, 3" 12
npy s32.npy "<f4" "3, 2" 24; npy s64.npy "<f8" "2, 1" 16; npy f64.npy "<f8" "2, 3" 48
npy fort.npy "<f4" "3, 4" 48 True; npy fortu8.npy "|u1" "3, 4" 12 True
npy x3d.npy "<f4" "2, 2, 2" 32; npy x1d.npy "<f4" "5," 20; npy trunc.npy "|u1" "2, 3" 5
npy mine33.npy "<f4" "3, 3" 36; npy mine16.npy "<f2" "2, 2" 8
o=$T/res

expect kc_gemm_k_mismatch "K differs" $B gemm $T/a23.npy $T/b24.npy -o $o.npy
expect kc_gemm_a_scale_shape "A scale" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --a-scale $T/s32.npy
expect kc_gemm_b_scale_shape "B scale" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --b-scale $T/s32.npy
expect kc_gemm_scale_float64 "dtype '<f8' not supported" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --a-scale $T/s64.npy
expect kc_gemm_fortran "Fortran order is not supported" $B gemm $T/fortu8.npy $T/b23.npy -o $o.npy
expect kc_gemm_truncated "(truncated)" $B gemm $T/trunc.npy $T/b23.npy -o $o.npy
expect kc_gemm_unknown_option "unknown option" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --frob
expect kc_gemm_missing_o "-o D.npy is required" $B gemm $T/a23.npy $T/b23.npy
expect kc_gemm_one_operand "give two operand files" $B gemm $T/a23.npy
expect kc_gemm_unknown_accum "--accum expects" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --accum bogus
expect kc_gemm_unknown_out "--out expects" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --out f16
expect kc_gemm_tc_mixed_formats "same FP8 format" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --accum hopper --b-format e5m2
expect kc_gemm_weight_only_exact "need --accum fp32 or fast" $B gemm $T/x23.npy $T/b23.npy -o $o.npy --accum exact
expect kc_gemm_int8_with_fp8 "INT8 GEMM needs INT8 A and B" $B gemm $T/i23.npy $T/b23.npy -o $o.npy
expect kc_gemm_uint8_as_int8 "int8 operands are saved as int8" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --a-format int8
expect kc_gemm_explain_shape "has shape" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --explain $T/mine33.npy
expect kc_gemm_explain_float16 "float16" $B gemm $T/a23.npy $T/b23.npy -o $o.npy --explain $T/mine16.npy
expect kc_gemm_unwritable "cannot write there" $B gemm $T/a23.npy $T/b23.npy -o $T/nodir/d.npy
expect kc_quant_fortran "Fortran order is not supported" $B quant $T/fort.npy -o $o
expect kc_quant_float64 "dtype '<f8' not supported" $B quant $T/f64.npy -o $o
expect kc_quant_3d "2-D matrix" $B quant $T/x3d.npy -o $o
expect kc_quant_1d "2-D matrix" $B quant $T/x1d.npy -o $o
expect kc_quant_missing_file "No such file" $B quant $T/nope.npy -o $o
expect kc_quant_unknown_option "unknown option" $B quant $T/x23.npy -o $o --frob
expect kc_quant_missing_o "-o PREFIX is required" $B quant $T/x23.npy
expect kc_quant_no_input "give an input" $B quant
expect kc_quant_granularity "--granularity expects" $B quant $T/x23.npy -o $o --granularity bogus
expect kc_quant_format "--format" $B quant $T/x23.npy -o $o --format e3m4
expect kc_quant_group_zero "--group" $B quant $T/x23.npy -o $o --granularity group --group 0
expect kc_quant_convention "--convention expects" $B quant $T/x23.npy -o $o --convention tf
expect kc_quant_static_zero "positive normal" $B quant $T/x23.npy -o $o --granularity tensor --static-scale 0
expect kc_quant_static_nan "positive normal" $B quant $T/x23.npy -o $o --granularity tensor --static-scale nan
expect kc_quant_scale_ub_negative ">= 0" $B quant $T/x23.npy -o $o --scale-ub -1
expect kc_quant_vllm_block "blocks" $B quant $T/x23.npy -o $o --granularity block --convention vllm
expect kc_quant_vllm_int8_tensor "per token" $B quant $T/x23.npy -o $o --granularity tensor --format int8
expect kc_quant_ct_float16 "float16" $B quant $T/x16.npy -o $o --granularity channel
expect kc_quant_ct_static_scale "--static-scale" $B quant $T/x23.npy -o $o --granularity tensor --convention compressed-tensors --static-scale 0.5
expect kc_quant_unwritable "cannot write there" $B quant $T/x23.npy -o $T/nodir/p
if ls $T/res* > /dev/null 2>&1; then echo "FAIL kc_no_partial_outputs: a refused command left $(ls $T/res* | head -3 | tr '\n' ' ')"
else echo "ok kc_no_partial_outputs: no refused command left an output file"; fi
table_check "$@"
