# Shared by test_errors.sh and test_nonfinite.sh: expect() runs one bad input and checks the refusal (exit
# status 1, exactly one stderr line "llama_fp8: error: ..." containing the expected words); every case
# becomes a row of a Markdown table (TABLE), which must equal the one in tests/README.md between
# "<!-- table: NAME -->" and "<!-- end table -->" (table_check). `sh tests/test_X.sh --update` rewrites it.
# Callers set B (the binary), D (the data directory), T (a scratch directory) and TABLE_NAME.
TABLE=$T/table.md; : > $TABLE
table_cmd() { printf '%s' "$*" | sed "s|$B|llama_fp8|g; s|$D|\$DATA|g; s/|/\\\\|/g"; }
expect() {  # name, words, command...
  name=$1; words=$2; shift 2
  "$@" > $T/out.txt 2> $T/err.txt; rc=$?
  msg=$(head -c 400 $T/err.txt | head -3 | tr '\n' ' ' | sed "s|$D|\$DATA|g; s/|/\\\\|/g; s/ *\$//")
  printf '| %s | `%s` | %s | %s |\n' "$name" "$(table_cmd "$@")" "$rc" "$msg" >> $TABLE
  if [ $rc -ne 1 ]; then echo "FAIL $name: exit status $rc (want 1): $(head -c 300 $T/err.txt)"; return; fi
  if [ "$(wc -l < $T/err.txt)" -ne 1 ] || ! grep -q '^llama_fp8: error: ' $T/err.txt; then echo "FAIL $name: want one 'llama_fp8: error:' line, got: $(head -c 300 $T/err.txt)"; return; fi
  if ! grep -qi -- "$words" $T/err.txt; then echo "FAIL $name: message lacks '$words': $(cat $T/err.txt)"; return; fi
  echo "ok $name: $(sed 's/^llama_fp8: error: //' $T/err.txt | cut -c1-160)"
}
table_check() {  # [--update]: compares (or rewrites) the README's table with the rows of this run
  R=tests/README.md; begin="<!-- table: $TABLE_NAME -->"; end="<!-- end table -->"
  { echo "| case | command | exit | message |"; echo "|---|---|---|---|"; cat $TABLE; } > $T/table_full.md
  if [ "${1:-}" = "--update" ]; then
    awk -v b="$begin" -v e="$end" -v f="$T/table_full.md" '$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next } $0 == e { skip = 0 } !skip' $R > $T/readme.new &&
      grep -qF "$begin" $R && mv $T/readme.new $R && echo "updated the table '$TABLE_NAME' in $R"
    return
  fi
  awk -v b="$begin" -v e="$end" '$0 == b { on = 1; next } $0 == e { on = 0 } on' $R > $T/table_readme.md
  if [ "$SKIPPED" -ne 0 ]; then echo "skip table_$TABLE_NAME: some cases were skipped here (no data), the README's table is not compared"
  elif cmp -s $T/table_full.md $T/table_readme.md; then echo "ok table_$TABLE_NAME: tests/README.md's table of $(wc -l < $TABLE) bad inputs is what this run printed"
  else echo "FAIL table_$TABLE_NAME: tests/README.md's table differs from this run (sh $0 --update rewrites it): $(diff $T/table_readme.md $T/table_full.md | head -4 | tr '\n' ' ')"; fi
}
SKIPPED=0

# damage SRC DST EXPR: copy the checkpoint directory SRC to DST and run the Python statement EXPR on DST/model.safetensors
# (h: the header dict, b: the data bytes, off(name): a tensor's data start); the file is rewritten with the edited header.
damage() {  # src dst python-expression-on-(h: header dict, b: bytearray data, off(name): data start)
  rm -rf $2; cp -r $1 $2
  python3 - $2/model.safetensors "$3" <<'PYEOF'
import json, sys, struct
p, expr = sys.argv[1:3]
raw = open(p, "rb").read(); n = int.from_bytes(raw[:8], "little"); h = json.loads(raw[8:8 + n]); b = bytearray(raw[8 + n:])
def off(name): return h[name]["data_offsets"][0]
exec(expr)
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(p, "wb").write(len(hb).to_bytes(8, "little") + hb + bytes(b))
PYEOF
}
