#!/usr/bin/env bash
# Concurrent adaptation of one tenant: N sessions x M ecom_adapt calls each.
# Asserts: no errors, versions 1..N*M with no gap or duplicate, exactly one
# active head, and rolled-back transactions leave nothing.
# usage: test/t/001_concurrency.sh PORT [SESSIONS] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1 N=${2:-4} M=${3:-10}
DB=pg_ecom_concurrency
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -q -f test/fixture.sql >/dev/null
pids=()
for s in $(seq 1 "$N"); do
  (
    for c in $(seq 1 "$M"); do
      psql -d $DB -qAt -c "SELECT ecom_adapt('shared', 'support', steps => 2) IS NOT NULL" >/dev/null
      # an adaptation that is rolled back must leave no version
      psql -d $DB -qAt -c "BEGIN" -c "SELECT ecom_adapt('shared', 'support', steps => 1) IS NOT NULL" -c "ROLLBACK" >/dev/null
    done
  ) &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail = 0 ] || { echo "concurrency: a session failed"; exit 1; }
result=$(psql -d $DB -qAt -c "SELECT count(*), count(DISTINCT version), min(version), max(version), count(*) FILTER (WHERE active) FROM ecom.heads WHERE tenant = 'shared'")
want="$((N * M))|$((N * M))|1|$((N * M))|1"
if [ "$result" != "$want" ]; then
  echo "concurrency: got count|distinct|min|max|active = $result, want $want"; exit 1
fi
psql -d postgres -q -c "DROP DATABASE $DB"
echo "concurrency: $N sessions x $M adaptations (+ $((N * M)) rolled back): versions 1..$((N * M)), one active head"
