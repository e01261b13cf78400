#!/usr/bin/env bash
# Concurrent writers of one tenant at REPEATABLE READ and SERIALIZABLE, and
# readers at READ COMMITTED while heads are adapted, rolled back and
# forgotten. A writer may fail only with SQLSTATE 40001 (serialization
# failure: retry), never with 23505 (unique violation) or an internal error;
# after the retries every transaction has committed and the tenant has
# distinct versions and exactly one active head. Readers never fail.
# usage: test/t/003_isolation.sh PORT [WRITERS] [OPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1 N=${2:-3} M=${3:-8}
DB=pg_ecom_isolation
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -q -f test/fixture.sql >/dev/null
tmp=$(mktemp -d)
# one transaction at $1, retried while it fails with 40001; any other error
# fails the test. Prints the number of retries.
txn() {
  local level=$1 sql=$2 retries=0 out
  while :; do
    if out=$(psql -d $DB -qAt -v VERBOSITY=verbose -c "BEGIN ISOLATION LEVEL $level" -c "$sql" -c "COMMIT" 2>&1); then
      echo "$retries"; return 0
    fi
    if grep -q "ERROR:  40001" <<< "$out"; then
      retries=$((retries + 1))
      [ $retries -lt 50 ] || { echo "isolation: 50 retries of: $sql" >&2; return 1; }
      continue
    fi
    echo "isolation: $level: $sql failed with: $out" >&2
    return 1
  done
}
for level in "REPEATABLE READ" "SERIALIZABLE"; do
  tenant="iso_${level// /_}"
  # a reader in one session: a PL/pgSQL loop scoring the tenant; each
  # iteration takes a new snapshot, so it looks the head up again whenever
  # a writer committed
  psql -d $DB -qAt -c "DO \$\$
    DECLARE p float8; n int := 0;
    BEGIN
      FOR i IN 1..400 LOOP
        BEGIN
          p := ecom_predict('$tenant', 'viewed: item 1', 'item 2');
          IF p IS NOT NULL THEN n := n + 1; END IF;
        END;
        PERFORM pg_sleep(0.005);
      END LOOP;
      RAISE NOTICE 'reader scored % times', n;
    END \$\$" >"$tmp/reader" 2>&1 &
  reader=$!
  pids=()
  for s in $(seq 1 "$N"); do
    (
      total=0
      for c in $(seq 1 "$M"); do
        case $(( (s + c) % 6 )) in
          0) sql="SELECT ecom_rollback('$tenant', 1) IS NOT NULL" ;;
          1) sql="SELECT ecom_forget('$tenant')" ;;
          *) sql="SELECT ecom_adapt('$tenant', 'support', steps => 2) IS NOT NULL" ;;
        esac
        # a rollback of a version that does not exist (yet, or any more) is
        # the caller's error (22023), not a concurrency failure
        if [[ $sql == *rollback* ]]; then
          sql="DO \$\$ BEGIN PERFORM ecom_rollback('$tenant', 1); EXCEPTION WHEN invalid_parameter_value THEN NULL; END \$\$"
        fi
        r=$(txn "$level" "$sql") || exit 1
        total=$((total + r))
      done
      echo "$total" > "$tmp/retries.$s"
    ) &
    pids+=($!)
  done
  fail=0
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  wait $reader || fail=1
  [ $fail = 0 ] || { echo "isolation: $level: a session failed"; cat "$tmp/reader"; exit 1; }
  grep -q "reader scored 400 times" "$tmp/reader" || { echo "isolation: reader: $(cat "$tmp/reader")"; exit 1; }
  state=$(psql -d $DB -qAt -c "SELECT count(*) = count(DISTINCT version), count(*) = 0 OR count(*) FILTER (WHERE active) = 1 FROM ecom.heads WHERE tenant = '$tenant'")
  [ "$state" = "t|t" ] || { echo "isolation: $level: distinct versions|one active head = $state"; exit 1; }
  retries=$(cat "$tmp"/retries.* | paste -sd+ | bc)
  echo "isolation: $level: $N writers x $M transactions (adapt, rollback, forget) committed after $retries serialization retries (40001 only); reader scored 400 times without error"
  rm -f "$tmp"/retries.*
done
# Deterministic: a REPEATABLE READ transaction takes its snapshot, another
# session creates the first version of a new tenant and commits, then the
# first adapts that tenant. Its snapshot does not see version 1, so it would
# insert version 1 again: that must be 40001, not 23505.
for level in "REPEATABLE READ" "SERIALIZABLE"; do
  tenant="iso_first_${level// /_}"
  ( psql -d $DB -qAt -v VERBOSITY=verbose -c "BEGIN ISOLATION LEVEL $level" -c "SELECT count(*) FROM ecom.heads" \
         -c "SELECT pg_sleep(2)" -c "SELECT ecom_adapt('$tenant', 'support', steps => 2) IS NOT NULL" -c "COMMIT" >"$tmp/first" 2>&1 || true ) &
  first=$!
  sleep 0.7
  psql -d $DB -qAt -c "SELECT ecom_adapt('$tenant', 'support', steps => 2) IS NOT NULL" >/dev/null
  wait $first
  grep -q "ERROR:  40001" "$tmp/first" \
    || { echo "isolation: $level: the stale writer should get 40001, got: $(cat "$tmp/first")"; exit 1; }
  versions=$(psql -d $DB -qAt -c "SELECT count(*) || '|' || count(*) FILTER (WHERE active) FROM ecom.heads WHERE tenant = '$tenant'")
  [ "$versions" = "1|1" ] || { echo "isolation: $level: versions|active = $versions, want 1|1"; exit 1; }
  echo "isolation: $level: a writer whose snapshot predates a tenant's first version gets 40001 ($(grep -o 'ERROR:  40001: [^(]*' "$tmp/first" | head -1))"
done
rm -rf "$tmp"
psql -d postgres -q -c "DROP DATABASE $DB"
