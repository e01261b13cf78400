#!/usr/bin/env bash
# The evaluation harness: MovieLens-100K tenants, five methods, through SQL.
# usage: benches/eval/run.sh [--small] [prepare.py options...]
#   (default: 5 seeds, K = 8,16,32,64; --small: the CI configuration)
# Writes .ecom/eval/{events.csv,eval.sql,auc.csv,report.md}.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup >/dev/null
ARGS=("$@")
if [ "${1:-}" = "--small" ]; then
  ARGS=(--seeds 1 --ks 16 --test-tenants 4 --train-events 150 --query 120 "${@:2}")
fi
OUT=$PWD/.ecom/eval
mkdir -p "$OUT"
VENV=$PWD/.ecom/venv
DATA=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recbole/dataset_example/ml-100k
"$VENV/bin/python" benches/eval/prepare.py --data "$DATA" --out "$OUT" "${ARGS[@]}"
chmod -R a+rX "$OUT"
PORT=${PG_ECOM_EVAL_PORT:-$(scripts/cluster free-port 26340)}
scripts/cluster start eval "$PORT"
trap 'scripts/cluster stop eval "$PORT"' EXIT
scripts/cluster psql eval "$PORT" -d postgres -q -c "DROP EXTENSION IF EXISTS pg_ecom CASCADE" -c "CREATE EXTENSION pg_ecom"
time scripts/cluster psql eval "$PORT" -d postgres -q -f "$OUT/eval.sql" > "$OUT/eval.log"
"$VENV/bin/python" benches/eval/report.py "$OUT" "benches/eval/run.sh ${*:-}" | tee "$OUT/report.md"
