#!/bin/sh
# tests/check_ct_export.py --self-test: the compressed-tensors checkpoint validator accepts a checkpoint
# made by compressed-tensors itself (and its bytes equal the library's quantization of the original
# weights) and rejects 7 corrupted copies. Skips where torch / compressed-tensors / transformers are absent.
# (The lead wires `check_ct_export.py DIR --orig MODEL` to the output of `llama_fp8 export`.)
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then echo "skip sch: no python3"; exit 0; fi
line=$(nice "$PY" tests/check_ct_export.py --self-test 2>/dev/null | tail -1)
case "$line" in
  ok:*)   echo "ok sch: check_ct_export.py ${line#ok: }" ;;
  skip:*) echo "skip sch: check_ct_export.py ${line#skip: }" ;;
  *)      echo "FAIL sch: check_ct_export.py --self-test: ${line:-no output}"; exit 1 ;;
esac
