#!/usr/bin/env bash
# How often ecom_learn(..., 'if_better') activates a version that cannot
# be better: shoppers click 30 % of what they are shown, whatever it is, so
# every head's true value is the same; impressions are logged uniformly at
# random (explore_epsilon = 1), so the propensities are exact. Every
# activation is a false one. docs/loop.md (activation) cites the result.
# usage: benches/loop/null_activation.sh [TENANTS [REQUESTS]]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-200}; R=${2:-40}
PORT=$(scripts/cluster free-port 26380)
scripts/cluster start null "$PORT"
trap 'scripts/cluster stop null "$PORT"' EXIT
psql() { scripts/cluster psql null "$PORT" "$@"; }
DB=pg_ecom_null
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d "$DB" -q -f test/fixture.sql >/dev/null
Q() { psql -d "$DB" -qAt -c "SET pg_ecom.feedback_window = 0" "$@"; }
Q -c "SET pg_ecom.explore_epsilon = 1" \
  -c "SELECT count(*) FROM generate_series(1, $N) t, generate_series(1, $R) g,
             LATERAL ecom_serve('null' || t, 'viewed: item ' || (g % 7), ARRAY['item 0','item 1','item 2','item 3','item 4'],
                                2, 'purchase', NULL, 'epsilon', t * 1000 + g)" >/dev/null
Q -c "SELECT count(*) FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'purchase')
       WHERE abs(hashint8(i.id * 7919)) % 100 < 30" >/dev/null
echo "tenants $N, requests $R each (2 of 5 shown), clicks 30 % whatever is shown; one ecom_learn per tenant:"
Q -c "SELECT format('learns %s, activated %s (%s %%), judged %s, folds %s on average, held-out requests %s on average',
              count(*), count(*) FILTER (WHERE (r->>'activated')::boolean),
              round(100.0 * count(*) FILTER (WHERE (r->>'activated')::boolean) / count(*), 1),
              count(*) FILTER (WHERE jsonb_typeof(r->'evaluation'->'difference') = 'object'),
              round(avg((r->'evaluation'->>'folds')::int), 2),
              round(avg((r->'evaluation'->>'held_out_requests')::int), 1))
         FROM generate_series(1, $N) t, LATERAL ecom_learn('null' || t) r"
