#!/usr/bin/env bash
# What one ecom_learn of 20 new requests costs as a tenant's history grows:
# a tenant serves HISTORY requests (3 of 5 shown, a third clicked), learns
# them all, then 5 times serves 20 more and learns those, timed by the server
# (the result's "ms"), with ANALYZE run after the history (fresh
# statistics) or not (STALE=1: statistics that do not know the tenant).
# docs/loop.md (reading the log) cites the result.
# usage: benches/loop/learn_history.sh [HISTORY...]   (default 1000 10000 50000)
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$(scripts/cluster free-port 26390)
scripts/cluster start history "$PORT"
trap 'scripts/cluster stop history "$PORT"' EXIT
psql() { scripts/cluster psql history "$PORT" "$@"; }
DB=pg_ecom_history
echo "pg_ecom.so sha256 $(sha256sum "$(pg_config --pkglibdir)/pg_ecom.so" | cut -c1-12), statistics: $([ "${STALE:-0}" = 1 ] && echo stale || echo fresh)"
[ $# -gt 0 ] || set -- 1000 10000 50000
for H in "$@"; do
  psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  psql -d "$DB" -q -f test/fixture.sql >/dev/null
  Q() { psql -d "$DB" -qAt -c "SET pg_ecom.feedback_window = 0" "$@"; }
  for t in requests impressions feedback; do Q -c "ALTER TABLE ecom.$t SET (autovacuum_enabled = false)"; done
  serve() { # first last
    Q -c "SELECT count(*) FROM generate_series($1, $2) g, LATERAL ecom_serve('h', 'viewed: item ' || (g % 7),
            ARRAY['item 0','item 1','item 2','item 3','item 4'], 3, 'purchase', NULL, 'thompson', g)" >/dev/null
    Q -c "SELECT count(*) FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'purchase')
           WHERE i.tenant = 'h' AND i.id % 3 = 0 AND NOT EXISTS (SELECT FROM ecom.feedback f WHERE f.impression_id = i.id)" >/dev/null
  }
  serve 1 "$H"
  [ "${STALE:-0}" = 1 ] || Q -c "ANALYZE ecom.requests, ecom.impressions, ecom.feedback"
  # one learn reads at most pg_ecom.learn_max_impressions: work the
  # history off first, so that each timed learn reads only its 20
  while [ "$(Q -c "SELECT ecom_learn('h', NULL, 'always')->>'backlog'")" = true ]; do :; done
  ms=()
  for i in 1 2 3 4 5; do
    serve $((H + 20 * i - 19)) $((H + 20 * i))
    ms+=("$(Q -c "SELECT round((ecom_learn('h', NULL, 'always')->>'ms')::numeric, 1)")")
  done
  echo "history $H requests: ecom_learn of 20 new, ms: ${ms[*]} (median $(printf '%s\n' "${ms[@]}" | sort -n | sed -n 3p))"
done
psql -d postgres -q -c "DROP DATABASE $DB"
