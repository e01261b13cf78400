#!/usr/bin/env bash
# What the loop's tables take per row, with their indexes (docs/scaling.md):
# a fresh database with test/fixture.sql, CALLS ecom_serve calls over 50
# tenants (20 candidates of about 25 characters, 5 shown, texts cached,
# explore 'none'), a click on one impression in ten; then
# pg_total_relation_size / rows of ecom.requests, ecom.impressions and
# ecom.feedback, and pg_column_size of a request row.
# usage: benches/loop/row_sizes.sh PORT [CALLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1; CALLS=${2:-3000}
DB=pg_ecom_row_sizes
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -qAt -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -f test/fixture.sql >/dev/null
psql -d $DB -v calls="$CALLS" <<'SQL'
CREATE TEMP TABLE pool AS
SELECT ARRAY(SELECT 'product ' || g || ' ' || (ARRAY['wool socks', 'trail shoe', 'rain jacket', 'camping stove'])[1 + g % 4]
               FROM generate_series(1, 100) g) AS items;
SELECT count(*) FROM ecom_embed_batch((SELECT items FROM pool)) \g /dev/null
SET bench.calls = :calls;
DO $$
DECLARE cands text[];
BEGIN
  FOR i IN 1..current_setting('bench.calls')::int LOOP
    SELECT ARRAY(SELECT x FROM unnest(items) x ORDER BY md5(x || i) LIMIT 20) INTO cands FROM pool;
    PERFORM count(*) FROM ecom_serve('store' || (i % 50), 'viewed: product ' || (i % 100), cands, 5, 'click', explore => 'none');
  END LOOP;
END $$;
SELECT count(*) FROM (SELECT ecom_feedback(id, 'click', true) FROM ecom.impressions WHERE id % 10 = 0) f \g /dev/null
SELECT format('%s: %s rows, %s bytes per row with indexes', c.relname, n, round(pg_total_relation_size(c.oid)::numeric / n))
  FROM (VALUES ('ecom.requests'::regclass, (SELECT count(*) FROM ecom.requests)),
               ('ecom.impressions'::regclass, (SELECT count(*) FROM ecom.impressions)),
               ('ecom.feedback'::regclass, (SELECT count(*) FROM ecom.feedback))) v(rel, n)
  JOIN pg_class c ON c.oid = v.rel;
SELECT format('a request row alone: %s bytes on average', round(avg(pg_column_size(r.*)))) FROM ecom.requests r;
SQL
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE $DB"
