#!/usr/bin/env bash
# The performance driver: one command from a fresh clone.
#   benches/run.sh            all figures (~15 min on 2 cores), writes the
#                             generated section of benches/RESULTS.md
#   benches/run.sh --quick    2,000 products, 1 repeat, 5 s pgbench (a smoke run;
#                             writes .ecom/bench/RESULTS.quick.md, not RESULTS.md)
#   benches/run.sh --cores    also runs the Rust benchmarks of the pure cores
# It sets up what it needs (scripts/setup, then the pinned, hash-checked
# wheels of the alternatives into .ecom/venv), runs a throwaway cluster
# "bench" on a free loopback port and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
args=() cores=0
for a in "$@"; do
  case $a in
    --quick) args+=(--n 2000 --repeat 1 --seconds 5 --results "$ROOT/.ecom/bench/RESULTS.quick.md") ;;
    --cores) cores=1 ;;
    *) args+=("$a") ;;
  esac
done
scripts/setup
VENV=$ROOT/.ecom/venv
"$VENV/bin/pip" install -q --require-hashes --no-deps -r benches/requirements.lock
MODEL_DIR=$(pg_config --sharedir)/extension/pg_ecom
DATA=$("$VENV/bin/python" -c 'import recbole, os; print(os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k"))')
WORK=$ROOT/.ecom/bench
mkdir -p "$WORK"
PORT=$(scripts/cluster free-port 26350)
scripts/cluster start bench "$PORT"
trap 'scripts/cluster stop bench "$PORT"' EXIT
"$VENV/bin/python" benches/driver.py --port "$PORT" --model-dir "$MODEL_DIR" --data "$DATA" \
  --work "$WORK" --pgbench "$(pg_config --bindir)/pgbench" "${args[@]}"
if [ $cores = 1 ]; then
  PG_ECOM_MODEL_DIR=$MODEL_DIR cargo bench --bench cores --no-default-features --features pg15 -- --noplot
fi
