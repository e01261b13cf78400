#!/usr/bin/env bash
# Run once against a release-0.3.0 build (commit b98847e) installed in the
# server on PORT: writes test/upgrade/loop-0.3.0.sql, the loop's rows
# (requests, impressions, feedback, learned heads) as 0.3.0 wrote them, on
# top of the 0.1.0 heads fixture updated to 0.3.0 — the state
# test/t/009_upgrade.sh rebuilds before it loads this file.
# usage: test/upgrade/make_loop_fixture.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
DB=pg_ecom_make_loop_fixture
EXT=$(pg_config --sharedir)/extension
install -m 0644 sql/pg_ecom--0.1.0.sql "$EXT/pg_ecom--0.1.0.sql"
trap 'rm -f "$EXT/pg_ecom--0.1.0.sql"' EXIT
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
P="psql -d $DB -qAt"
$P -c "CREATE EXTENSION pg_ecom VERSION '0.1.0'"
$P -f test/upgrade/heads-0.1.0.sql >/dev/null
$P -c "ALTER EXTENSION pg_ecom UPDATE TO '0.3.0'"
$P >/dev/null <<'SQL'
SET pg_ecom.feedback_window = 0;
SELECT count(*) FROM generate_series(1, 12) g,
  ecom_serve('shop_a', 'viewed: item ' || g % 4, ARRAY['item 0','item 1','item 2','item 3'], 2, 'click',
             '{0.2,0.5,0.1,0.1,0.3,0.3,0.6,0.2}', 'thompson', g);
SELECT count(*) FROM generate_series(1, 6) g,
  ecom_serve('shop_b', 'viewed: item ' || g % 4, ARRAY['item 0','item 1',NULL,'item 3'], 2, 'purchase',
             '{0.2,0.5,0.1,0.1,0.3,0.3,0.6,0.2}', 'softmax', g);
SELECT count(*) FROM ecom_serve('shop_b', 'viewed: item 1', ARRAY['item 0','item 1'], 1, 'cart', '{0.2,0.5,0.1,0.1}', 'none', 1);
SELECT ecom_feedback(id, 'click') FROM ecom.impressions WHERE rank = 1 AND tenant = 'shop_a';
SELECT ecom_feedback(id, 'purchase') FROM ecom.impressions WHERE id % 3 = 0;
SELECT ecom_feedback(id, 'click', false) FROM ecom.impressions WHERE id % 7 = 0 AND tenant = 'shop_b';
SELECT ecom_learn('shop_a', NULL, 'always');
SELECT count(*) FROM generate_series(13, 16) g,
  ecom_serve('shop_a', 'viewed: item ' || g % 4, ARRAY['item 0','item 1','item 2','item 3'], 2, 'click',
             '{0.2,0.5,0.1,0.1,0.3,0.3,0.6,0.2}', 'thompson', g);
SELECT ecom_learn('shop_a', NULL, 'never');
SELECT ecom_learn('shop_b');
-- a label after its impression was learned (0.3.0 took it)
SELECT ecom_feedback(min(id), 'click') FROM ecom.impressions WHERE tenant = 'shop_a' AND rank = 2;
SQL
OUT=test/upgrade/loop-0.3.0.sql
{
  echo "-- The loop's rows as release 0.3.0 (commit b98847e) wrote them, made by"
  echo "-- test/upgrade/make_loop_fixture.sh; loaded by test/t/009_upgrade.sh"
  echo "-- into the 0.1.0 fixture updated to 0.3.0, before the update to the"
  echo "-- current release."
  for t in "heads:tenant, version, parent_version, behaviours, n_features, dims, weights, hyper, metrics, created_at, created_by, active, id, posterior:tenant LIKE 'shop%'" \
           "requests:id, tenant, served_at, context, items, features, k, behaviour, explore, seed, head_tenant, head_version, head_id:true" \
           "impressions:id, request_id, tenant, served_at, context, item_index, item, rank, score, propensity, behaviour, head_version, explore, features:true" \
           "feedback:impression_id, tenant, behaviour, label, implied, recorded_at:true"; do
    IFS=: read -r table cols where <<< "$t"
    echo "COPY ecom.$table ($cols) FROM stdin;"
    $P -c "COPY (SELECT $cols FROM ecom.$table WHERE $where ORDER BY 1, 2) TO STDOUT"
    echo '\.'
  done
  echo "SELECT pg_catalog.setval('ecom.heads_id_seq', (SELECT max(id) FROM ecom.heads));"
  echo "SELECT pg_catalog.setval('ecom.requests_id_seq', (SELECT max(id) FROM ecom.requests));"
  echo "SELECT pg_catalog.setval('ecom.impressions_id_seq', (SELECT max(id) FROM ecom.impressions));"
} > "$OUT"
psql -d postgres -q -c "DROP DATABASE $DB"
echo "wrote $OUT ($(grep -c . "$OUT") lines)"
