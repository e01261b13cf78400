#!/usr/bin/env bash
# Closed-loop simulation: MovieLens-100K users as tenants served through
# ecom_serve / ecom_feedback / ecom_learn against baselines, and the
# off-policy estimates of ecom_evaluate against the truth.
# usage: benches/loop/run.sh [--small] [sim.py options...]
#   default: 8 tenants, 5 seeds, T = 1000 (about 20 minutes on 2 cores);
#            rewrites the generated part of benches/LOOP.md and
#            benches/loop_regret.png
#   --small: the CI configuration (2 tenants, 1 seed, T = 50, a short
#            off-policy log; a few minutes); writes only .ecom/loop-small/.
#            Fails if something is broken (no reward, no version stored by
#            ecom_learn, no estimate from ecom_evaluate, ...), never on
#            timing or on whether a target was met.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup >/dev/null
VENV=$PWD/.ecom/venv
# psycopg2 for the simulated clients (pinned, hash-checked, as benches/run.sh)
"$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r benches/requirements.lock
DATA=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recbole/dataset_example/ml-100k
PORT=${PG_ECOM_LOOP_PORT:-$(scripts/cluster free-port 26360)}
scripts/cluster start loop "$PORT"
trap 'scripts/cluster stop loop "$PORT"' EXIT
"$VENV/bin/python" benches/loop/sim.py --self-test >/dev/null
if [ "${1:-}" = "--small" ]; then
  time "$VENV/bin/python" benches/loop/sim.py --data "$DATA" --port "$PORT" --out .ecom/loop-small \
    --command "benches/loop/run.sh $*" "$@"
else
  time "$VENV/bin/python" benches/loop/sim.py --data "$DATA" --port "$PORT" --out .ecom/loop \
    --png benches/loop_regret.png --md benches/LOOP.md --command "benches/loop/run.sh${*:+ $*}" "$@"
fi
