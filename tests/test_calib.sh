#!/bin/sh
# llama_fp8 calibrate / stats on stories260K (real data; skipped when absent): determinism, the
# recorded SHA-256, the observers' ordering, the file feeding ppl -q w8a8-static, the overlap warning,
# error cases, and the outlier report with its SVG.
set -u
B=${LLAMA_FP8:-./llama_fp8}; D=${LLAMA_FP8_DATA:-../shared/data}
T=build/tests/calib; rm -rf $T; mkdir -p $T
M=$D/stories260K/stories260K.bin; TK=$D/stories260K/tok512.bin
TXT=$D/tinystories/tinystories_valid_excerpt.txt; OTHER=$D/tinystories/tinystories_sample.txt
if [ ! -f "$M" ] || [ ! -f "$TXT" ]; then echo "skip calib: no stories260K / tinystories in $D"; exit 0; fi
CAL="$B calibrate -m $M --tokenizer $TK -f $TXT --samples 2 --seq 96"
PY=$(command -v python3 || true)

# determinism: same seed -> byte-identical file; another seed -> other windows
$CAL --seed 0 -o $T/a.json > $T/a.txt 2>&1 || { echo "FAIL calib_run: $(tail -1 $T/a.txt)"; exit 1; }
$CAL --seed 0 -o $T/b.json > /dev/null 2>&1
$CAL --seed 1 -o $T/c.json > /dev/null 2>&1
if cmp -s $T/a.json $T/b.json; then echo "ok calib_determinism"; else echo "FAIL calib_determinism: two runs with --seed 0 differ"; fi
if [ "$(grep window_starts $T/a.json)" != "$(grep window_starts $T/c.json)" ]; then echo "ok calib_seed_changes_windows"; else echo "FAIL calib_seed_changes_windows: seed 0 and 1 picked the same windows"; fi

# the recorded SHA-256 is the file's (sha256sum / shasum as the oracle)
want=$( (sha256sum "$TXT" 2>/dev/null || shasum -a 256 "$TXT") | cut -d' ' -f1)
if grep -q "\"calibration_sha256\": \"$want\"" $T/a.json; then echo "ok calib_sha256_of_file"; else echo "FAIL calib_sha256_of_file: want $want in $T/a.json"; fi

# the file is what ppl -q w8a8-static reads
if $B ppl -m $M --tokenizer $TK -f $OTHER -q w8a8-static --scales $T/a.json --ctx 64 --chunks 2 > $T/ppl.txt 2>&1 && grep -q '^PPL = ' $T/ppl.txt; then
  echo "ok calib_scales_feed_w8a8_static"
else echo "FAIL calib_scales_feed_w8a8_static: $(tail -1 $T/ppl.txt)"; fi

# ... and what --kv fp8-e4m3 takes its K / V scales from
if $B ppl -m $M --tokenizer $TK -f $OTHER -q w8a8 --kv fp8-e4m3 --scales $T/a.json --ctx 64 --chunks 2 > $T/kv.txt 2>&1 && grep -q '^PPL = .*kv:e4m3' $T/kv.txt; then
  echo "ok calib_scales_feed_kv_cache"
else echo "FAIL calib_scales_feed_kv_cache: $(tail -1 $T/kv.txt)"; fi

# observers: each is a convex combination / quantile of per-batch values bounded by the batch absmax,
# so for every site  ema, ema-legacy, mse, percentile <= minmax  (and minmax is the same for any seed's
# windows' union only, so compare on one seed); ema rounds to bf16 (a value a lerp of bf16 values can
# exceed by at most one bf16 rounding: 2^-8 relative). All five must run, for K and V too.
for obs in minmax ema ema-legacy mse percentile; do
  $CAL --seed 0 --observer $obs --kv-observer $obs -o $T/$obs.json > $T/$obs.txt 2>&1 || echo "FAIL calib_observer_$obs: $(tail -1 $T/$obs.txt)"
done
if [ -n "$PY" ]; then
  if $PY - $T > $T/ord.txt 2>&1 <<'PYEOF'
import json, sys
t = sys.argv[1]
def flat(p):
    j = json.load(open(p))
    v = [l[s] for l in j["activations"]["layers"] for s in ("qkv", "o", "gate_up", "down")]
    return v + [j["activations"]["lm_head"]] + j["kv"]["k"] + j["kv"]["v"]
mm = flat(t + "/minmax.json")
assert all(x > 0 for x in mm), "minmax has a non-positive absmax"
for o in ("ema", "ema-legacy", "mse", "percentile"):
    v = flat(t + "/" + o + ".json")
    bad = [(a, b) for a, b in zip(v, mm) if not (0 < a <= b * (1 + 2.0 ** -8 if o == "ema" else 1))]
    assert not bad, "%s above minmax: %s" % (o, bad[:3])
# with 2 batches: ema = first + 0.01*(second - first) differs from minmax somewhere
assert flat(t + "/ema.json") != mm, "ema equals minmax everywhere"
PYEOF
  then echo "ok calib_observer_ordering"; else echo "FAIL calib_observer_ordering: $(tail -1 $T/ord.txt)"; fi
else echo "skip calib_observer_ordering: no python3"; fi

# the documented window rule, re-implemented in Python (splitmix64, grid offset, Fisher-Yates), gives the
# window_starts the file records
if [ -n "$PY" ]; then
  n_text=$($B tokenize --tokenizer $TK -f $TXT | wc -w)
  if $PY - $T/a.json $n_text 0 > $T/win.txt 2>&1 <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); n = int(sys.argv[2]); seed = int(sys.argv[3])
M = (1 << 64) - 1
state = [seed]
def sm():
    state[0] = (state[0] + 0x9E3779B97F4A7C15) & M
    z = state[0]
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
L = j["seq"] - 1; S = n // L
off = sm() % (n - S * L + 1)
slot = list(range(S))
for i in range(S - 1, 0, -1):
    k = sm() % (i + 1); slot[i], slot[k] = slot[k], slot[i]
want = [off + s * L for s in slot[:j["samples"]]]
assert want == j["window_starts"], "python %s, file %s" % (want, j["window_starts"])
PYEOF
  then echo "ok calib_window_rule_python"; else echo "FAIL calib_window_rule_python: $(tail -1 $T/win.txt)"; fi
else echo "skip calib_window_rule_python: no python3"; fi

# overlap warning: the text against itself warns; against a different text it does not
$CAL --seed 0 -o $T/o1.json --eval $TXT > $T/o1.txt 2> $T/o1.err
if grep -q "WARNING: calibration text overlaps" $T/o1.err; then echo "ok calib_overlap_warns"; else echo "FAIL calib_overlap_warns: no warning with --eval = the calibration text"; fi
$CAL --seed 0 -o $T/o2.json --eval $OTHER > $T/o2.txt 2> $T/o2.err
if ! grep -q "WARNING" $T/o2.err && grep -q "overlap check: none" $T/o2.txt; then echo "ok calib_overlap_silent"; else echo "FAIL calib_overlap_silent: $(cat $T/o2.err)"; fi

# errors: one line, exit 1
expect() {  # name, words, command...
  name=$1; words=$2; shift 2
  "$@" > $T/out.txt 2> $T/err.txt; rc=$?
  if [ $rc -ne 1 ] || [ "$(wc -l < $T/err.txt)" -ne 1 ] || ! grep -qi -- "$words" $T/err.txt; then
    echo "FAIL $name: rc $rc: $(head -c 300 $T/err.txt)"; else echo "ok $name"; fi
}
expect calib_error_bad_observer "unknown --observer" $CAL --observer foo -o $T/x.json
expect calib_error_too_many_samples "at most" $B calibrate -m $M --tokenizer $TK -f $TXT --samples 100000 --seq 64 -o $T/x.json
printf 'Once upon a time.' > $T/short.txt
expect calib_error_short_text "fewer than one window" $B calibrate -m $M --tokenizer $TK -f $T/short.txt --samples 1 --seq 64 -o $T/x.json
expect calib_error_seq_too_long "maximum context" $B calibrate -m $M --tokenizer $TK -f $TXT --samples 1 --seq 4096 -o $T/x.json
expect calib_error_no_output "-o" $B calibrate -m $M --tokenizer $TK -f $TXT
expect calib_error_missing_eval "cannot read" $CAL -o $T/x.json --eval $T/nope.txt
[ ! -e $T/x.json ] && echo "ok calib_error_writes_nothing" || echo "FAIL calib_error_writes_nothing: $T/x.json exists"

# stats: 5 layers x 4 sites + lm_head rows; one chunk calibrates its own per-tensor scale, so nothing saturates
if $B stats -m $M --tokenizer $TK -f $TXT --ctx 64 --chunks 1 -o $T/r.svg > $T/stats.txt 2>&1; then
  rows=$(grep -cE '^[0-4-] +(qkv|o|gate_up|down|lm_head) ' $T/stats.txt)
  sat=$(grep -E '^[0-4-] +(qkv|o|gate_up|down|lm_head) ' $T/stats.txt | awk '$(NF-4) != "0.0000"' | wc -l)
  if [ "$rows" -eq 21 ] && [ "$sat" -eq 0 ]; then echo "ok calib_stats_table"; else echo "FAIL calib_stats_table: $rows rows (want 21), $sat with saturation (want 0)"; fi
  if [ -n "$PY" ] && $PY -c "import sys,xml.etree.ElementTree as E; r=E.parse(sys.argv[1]).getroot(); assert r.tag.endswith('svg'); assert len(r.findall('{http://www.w3.org/2000/svg}rect')) > 40" $T/r.svg 2> $T/svg.err; then
    echo "ok calib_stats_svg"; else echo "FAIL calib_stats_svg: $(tail -1 $T/svg.err)"; fi
else echo "FAIL calib_stats_run: $(tail -1 $T/stats.txt)"; fi
# with a scales file calibrated on other windows, two chunks: runs, and the weight table lists 5 layers
if $B stats -m $M --tokenizer $TK -f $OTHER --ctx 64 --chunks 2 --scales $T/a.json > $T/stats2.txt 2>&1 && [ "$(grep -cE '^[0-4] +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$' $T/stats2.txt)" -eq 5 ]; then
  echo "ok calib_stats_with_scales"; else echo "FAIL calib_stats_with_scales: $(tail -3 $T/stats2.txt)"; fi
exit 0
