#!/usr/bin/env bash
# Closed-loop simulation: MovieLens-100K users as tenants served through
# ecom_serve / ecom_feedback / ecom_learn against baselines, and the
# off-policy estimates of ecom_evaluate against the truth; then the
# store-shaped loop: held-out occupation stores whose visitors each bring
# their own context, text only and with side features.
# usage: benches/loop/run.sh [--small] [sim.py options...]
#   default: the user shape (8 tenants, 5 seeds, T = 1000) rewrites the
#            generated part of benches/LOOP.md and benches/loop_regret.png;
#            the store shape (6 stores, 5 seeds, T = 1000, text only, then
#            side features) rewrites the generated parts of
#            benches/LOOP_STORE.md and benches/loop_store_regret*.png;
#            then calibration.py, the coverage of ecom_predict_interval's
#            90% intervals (users, then stores with 3,000 meta-train events
#            each; truths fitted to ratings, then drawn from the prior),
#            rewrites its sections of benches/LOOP.md (about 25 minutes).
#   --small: the CI configuration, both shapes and calibration (2 tenants,
#            1 seed, T = 50 (calibration: T = 30);
#            a short off-policy log for the user shape; a few minutes);
#            writes only .ecom/loop-small/, .ecom/loop-store-small/ and
#            .ecom/calibration-small/.
#            Fails if something is broken (no reward, no version stored by
#            ecom_learn, no estimate from ecom_evaluate, ...), never on
#            timing or on whether a target was met.
# PG_ECOM_LOOP_SHAPES: what to run (default "user store calibration").
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup >/dev/null
VENV=$PWD/.ecom/venv
# psycopg2 for the simulated clients (pinned, hash-checked, as benches/run.sh)
"$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r benches/requirements.lock
DATA=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recbole/dataset_example/ml-100k
PORT=${PG_ECOM_LOOP_PORT:-$(scripts/cluster free-port 26360)}
SHAPES=${PG_ECOM_LOOP_SHAPES:-user store calibration}
scripts/cluster start loop "$PORT"
trap 'scripts/cluster stop loop "$PORT"' EXIT
"$VENV/bin/python" benches/loop/sim.py --self-test >/dev/null
sim() { time "$VENV/bin/python" benches/loop/sim.py --data "$DATA" --port "$PORT" "$@"; }
calibration() { time "$VENV/bin/python" benches/loop/calibration.py --data "$DATA" --port "$PORT" "$@"; }
if [ "${1:-}" = "--small" ]; then
  case " $SHAPES " in *" user "*)
    sim --out .ecom/loop-small --command "benches/loop/run.sh $*" "$@" ;; esac
  case " $SHAPES " in *" store "*)
    sim --shape store --side-features --out .ecom/loop-store-small \
      --command "benches/loop/run.sh $*: sim.py --shape store --side-features" "$@" ;; esac
  case " $SHAPES " in *" calibration "*)
    calibration --small --out .ecom/calibration-small ;; esac
else
  case " $SHAPES " in *" user "*)
    sim --out .ecom/loop --png benches/loop_regret.png --md benches/LOOP.md \
      --command "benches/loop/run.sh${*:+ $*}" "$@" ;; esac
  case " $SHAPES " in *" store "*)
    for side in "" --side-features; do
      sim --shape store $side --out ".ecom/loop-store${side:+-side}" \
        --png "benches/loop_store_regret${side:+_side}.png" --md benches/LOOP_STORE.md \
        --command "benches/loop/run.sh${*:+ $*}: sim.py --shape store${side:+ $side}" "$@"
    done ;; esac
  case " $SHAPES " in *" calibration "*)
    # stores meta-train on 3,000 events each: at 600 the prior search
    # freezes every group, and there is nothing to calibrate
    for shape in user store; do
      for truth in fitted prior; do
        more=$([ $shape = store ] && echo "--meta-events 3000" || true)
        calibration --shape $shape --truth $truth $more --out ".ecom/calibration-$shape-$truth" --md benches/LOOP.md \
          --command "benches/loop/run.sh: calibration.py --shape $shape --truth $truth${more:+ $more}"
      done
    done ;; esac
fi
