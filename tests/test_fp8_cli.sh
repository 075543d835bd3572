#!/bin/sh
# `llama_fp8 fp8`: the README's commands give the documented answers; bad input gives one line
# of error and exit status 1, never a crash.
B=${LLAMA_FP8:-./llama_fp8}
T=${TMPDIR:-/tmp}/fp8_cli_$$
mkdir -p "$T"; trap 'rm -rf "$T"' EXIT
check() { # name, then a shell condition
    name=$1; shift
    if eval "$@"; then echo "ok fp8_cli_$name"; else echo "FAIL fp8_cli_$name: $*"; fi
}
has() { grep -qE "$2" "$T/$1"; }

"$B" fp8 3.14159 -0.001 500 1e-9 > "$T/enc" 2> "$T/enc.err"; rc=$?
check encode_exit "[ $rc -eq 0 ] && [ ! -s $T/enc.err ]"
check encode_pi "has enc '^  e4m3 +0x45  0\|1000\|101 +3.25 '"
check encode_pi_e5m2 "has enc '^  e5m2 +0x42  0\|10000\|10 +3 '"
check encode_subnormal "has enc '^  e4m3 +0x81  1\|0000\|001 +-0.001953125 .*subnormal'"
check encode_saturated "has enc '^  e4m3 +0x7e .* 448 .*saturated to max'"
check encode_flushed "has enc '^  e4m3 +0x00 .*underflow: flushed to \+0'"
check encode_e8m0 "has enc '^  e8m0 +0x00 .*2\^-127 .*no zero and no sign'"
"$B" fp8 --sat nosat --format e4m3,e5m2 500 61440 464 -inf nan > "$T/nosat"
check nosat_nan "has nosat '^  e4m3 +0x7f .*NaN .*overflow to NaN'"
check nosat_inf "has nosat '^  e5m2 +0x7c .*inf .*overflow to inf'"
check nosat_tie_464 "has nosat '^  e4m3 +0x7e .*448 .*a tie: to the even code'"
check nosat_only_two_formats "[ \$(grep -c '^  e' $T/nosat) -eq 10 ]"
"$B" fp8 --table e4m3 > "$T/table"
check table_256_codes "[ \$(grep -c '^0x' $T/table) -eq 256 ]"
check table_max "has table '^0x7e  0\|1111\|110 +448$'"
check table_nan "has table '^0xff  1\|1111\|111 +NaN$'"
check table_min_sub "has table '^0x01  0\|0000\|001 +0.001953125$'"
"$B" fp8 --table e2m1 > "$T/t4"
check table_e2m1_16_codes "[ \$(grep -c '^0x' $T/t4) -eq 16 ] && has t4 '^0x0f  1\|11\|1 +-6$'"
"$B" fp8 --info e5m2 > "$T/info"
check info_bias "has info 'bias +15$'"
check info_max "has info 'max finite +57344 \(0x7b\)'"
check info_min_normal "has info 'min normal +6.103515625e-05 = 2\^-14'"
check info_min_sub "has info 'min subnormal +1.525878906e-05 = 2\^-16'"
check info_finite "has info 'finite values +248 of 256'"
check info_ulp "has info 'ulp at 1 +0.25 = 2\^-2'"
check info_range "has info 'dynamic range +31.81 binades'"
"$B" fp8 --info e4m3 > "$T/info4"
check info_e4m3 "has info4 'max finite +448 ' && has info4 'finite values +254 of 256' && has info4 'min subnormal +0.001953125 = 2\^-9'"

# Errors: exit status 1, exactly one line on stderr, naming the problem.
err() { # name, expected text, args...
    name=$1; want=$2; shift 2
    "$B" fp8 "$@" > "$T/out" 2> "$T/err"; rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "$want" "$T/err"; then echo "ok fp8_cli_error_$name"
    else echo "FAIL fp8_cli_error_$name: status $rc, stderr: $(head -c 200 "$T/err")"; fi
}
err not_a_number "'abc' is not a number" abc
err trailing_junk "'1.5x' is not a number" 1.5x
err bad_format "unknown format 'e9m9'" --format e9m9 1
err bad_sat "expected satfinite or nosat" --sat maybe 1
err unknown_option "unknown option '--bogus'" --bogus 1
err missing_value "needs a value" --table
"$B" fp8 nan -nan inf -inf 1e999 0x1p-10 -0 1e-45 3.4e38 > "$T/odd" 2>&1; rc=$?
check odd_numbers_no_crash "[ $rc -eq 0 ] && [ \$(grep -c '^  e2m1' $T/odd) -eq 9 ]"
