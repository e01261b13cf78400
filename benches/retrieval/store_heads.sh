#!/usr/bin/env bash
# The candidate stage's recall for many meta-trained heads, not one.
# A head's query vector (ecom_query_vector) hardly depends on the context
# (benches/RESULTS.md), so one head is one query direction: to judge the
# index, measure many heads. This builds a family of them on the catalogue
# that benches/retrieval/run.sh left (database pg_ecom_retrieval):
#  - STORES synthetic stores, each with a product type and a material its
#    shoppers buy (a purchase: the item has the store's product type, and
#    its material or, one time in three, any); half of the shown items are
#    of the store's type;
#  - a global head meta-trained on the last two thirds of the stores
#    (EVENTS events each); the global head that was active before is
#    active again afterwards, so run.sh measures what it measured;
#  - every other store adapted from it on EVENTS events.
# Then, for each held-out store's query (one context: the query is the
# same for any), recall@100 of the candidate stage at each ef_search
# against an exact scan, the bare index scan's time (p50 / p95 of 5 per
# store) and ecom_recommend's (k = 10, 100 candidates, texts cached).
# usage: benches/retrieval/store_heads.sh PORT [STORES] [EVENTS] [EF_SEARCH...]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1; STORES=${2:-36}; EVENTS=${3:-150}; shift $(( $# < 3 ? $# : 3 ))
EFS=${*:-400 800 1000}
DB=pg_ecom_retrieval
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -qAt -v ON_ERROR_STOP=1 -d $DB "$@"; }
psql -c "SELECT 1 FROM catalogue LIMIT 1" >/dev/null || { echo "run benches/retrieval/run.sh first" >&2; exit 1; }
N=$(psql -c "SELECT count(*) FROM catalogue")
t0=$(date +%s)
# the family's heads live under their own tenant names ('sh store N')
psql -v stores="$STORES" -v events="$EVENTS" <<'SQL'
SET client_min_messages = warning;
DROP VIEW IF EXISTS sh_events_train, sh_support;
DROP TABLE IF EXISTS sh_store, sh_events, sh_q, sh_exact;
CREATE TABLE sh_store AS
SELECT s, 'sh store ' || s AS tenant,
       (ARRAY['socks','sweater','jacket','sneakers','backpack','mug','lamp','headphones','tent','puzzle','shampoo','scarf'])[1 + s % 12] AS kind,
       (ARRAY['wool','cotton','leather','linen','glass','ceramic','bamboo','denim'])[1 + (s * 7 / 12) % 8] AS material
  FROM generate_series(1, :stores) s;
-- events: a context the store's shoppers would have, an item that half of
-- the time has the store's product type, and whether it sold
CREATE TABLE sh_events AS
WITH pool AS (SELECT id, title FROM catalogue WHERE id % 50 = 0)
SELECT st.tenant, e.n AS ts,
       'viewed: ' || c.title AS context, i.title AS item, 'purchase'::text AS behaviour,
       (i.title LIKE '%' || st.kind || '%' AND (i.title LIKE '%' || st.material || '%' OR hashtext(i.title || st.tenant) % 3 = 0)) AS label
  FROM sh_store st
  CROSS JOIN generate_series(1, :events) e(n)
  CROSS JOIN LATERAL (SELECT title FROM catalogue WHERE title LIKE '%' || st.kind || '%'
                        AND id > (hashtext(st.tenant || e.n || 'c') & 1048575) ORDER BY id LIMIT 1) c
  CROSS JOIN LATERAL (SELECT title FROM catalogue
                       WHERE (e.n % 2 = 0 OR title LIKE '%' || st.kind || '%')
                         AND id > (hashtext(st.tenant || e.n || 'i') & 1048575) ORDER BY id LIMIT 1) i;
SQL
held=$((STORES / 3))
echo "events: $(psql -c "SELECT count(*) || ' (' || round(100 * avg(label::int), 1) || ' % sold)' FROM sh_events"), built in $(( $(date +%s) - t0 )) s" >&2
OLD=$(psql -c "SELECT version FROM ecom.heads WHERE tenant IS NULL AND active")
psql -c "DROP VIEW IF EXISTS sh_events_train" \
     -c "CREATE VIEW sh_events_train AS SELECT * FROM sh_events WHERE tenant IN (SELECT tenant FROM sh_store WHERE s > $held)" \
     -c "SELECT ecom_meta_train('sh_events_train', meta_steps => 100)" >&2
NEW=$(psql -c "SELECT version FROM ecom.heads WHERE tenant IS NULL AND active")
for s in $(seq 1 "$held"); do
  psql -c "CREATE OR REPLACE VIEW sh_support AS SELECT context, item, behaviour, label FROM sh_events WHERE tenant = 'sh store $s'" \
       -c "SELECT ecom_adapt('sh store $s', 'sh_support')" >/dev/null
done
psql <<SQL
CREATE TABLE sh_q AS
SELECT st.tenant, ecom_query_vector(st.tenant, 'viewed: ' || st.material || ' ' || st.kind, 'purchase')::vector AS q
  FROM sh_store st WHERE st.s <= $held
UNION ALL SELECT 'global (v$NEW)', ecom_query_vector(NULL, 'viewed: wool socks', 'purchase')::vector;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
CREATE TABLE sh_exact AS SELECT tenant, ARRAY(SELECT id FROM catalogue ORDER BY embedding <=> sh_q.q LIMIT 100) AS top FROM sh_q;
SQL
# put the active global head back, so run.sh measures what it did before
psql -c "UPDATE ecom.heads SET active = false WHERE tenant IS NULL" \
     -c "UPDATE ecom.heads SET active = true WHERE tenant IS NULL AND version = $OLD"
echo
echo "### Recall@100 of the candidate stage, $held held-out stores' heads and their global head, $N items"
echo
echo "Index: $(psql -c "SELECT c.relname || ' ' || coalesce(array_to_string(c.reloptions, ', '), 'm=16, ef_construction=64') || ', ' || pg_size_pretty(pg_relation_size(c.oid))
                          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                         WHERE i.indrelid = 'catalogue'::regclass AND a.amname = 'hnsw'"); shared_buffers $(psql -c "SHOW shared_buffers");"
echo "how different the stores' queries are: mean cosine between two of them $(psql -c "SELECT round(avg(1 - (a.q <=> b.q))::numeric, 3) FROM sh_q a JOIN sh_q b ON a.tenant < b.tenant"),"
echo "and to their nearest item $(psql -c "SELECT round(avg(1 - (c.embedding <=> q.q))::numeric, 3) FROM sh_exact e JOIN sh_q q USING (tenant) JOIN catalogue c ON c.id = e.top[1]")."
echo
echo "| ef_search | mean recall | worst store | stores ≥ 0.95 | bare index scan p50 / p95 ms | \`ecom_recommend\` p50 / p95 ms |"
echo "|---|---|---|---|---|---|"
for ef in $EFS; do
  psql -c "SET hnsw.ef_search = $ef" -c "
    CREATE TEMP TABLE r AS
    SELECT q.tenant,
           cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(e.top))) / 100.0 AS rec
      FROM sh_q q JOIN sh_exact e USING (tenant),
           LATERAL (SELECT ARRAY(SELECT id FROM (SELECT id, embedding FROM catalogue ORDER BY embedding <=> q.q LIMIT $ef) w
                                  ORDER BY embedding <#> q.q LIMIT 100) top) a;
    CREATE TEMP TABLE t (what text, ms float8);
    DO \$\$ DECLARE q record; t0 timestamptz; BEGIN
      -- contexts are embedded once before timing: texts cached
      PERFORM count(*) FROM sh_store st, ecom_recommend(st.tenant, 'viewed: ' || st.material || ' ' || st.kind, 'catalogue', ef_search => $ef) WHERE st.s <= $held;
      FOR i IN 1..5 LOOP FOR q IN SELECT * FROM sh_q LOOP
        t0 := clock_timestamp();
        PERFORM count(*) FROM (SELECT id FROM catalogue ORDER BY embedding <=> q.q LIMIT $ef) w;
        INSERT INTO t VALUES ('scan', extract(epoch FROM clock_timestamp() - t0) * 1000);
      END LOOP;
      FOR q IN SELECT * FROM sh_store WHERE s <= $held LOOP
        t0 := clock_timestamp();
        PERFORM count(*) FROM ecom_recommend(q.tenant, 'viewed: ' || q.material || ' ' || q.kind, 'catalogue', ef_search => $ef);
        INSERT INTO t VALUES ('recommend', extract(epoch FROM clock_timestamp() - t0) * 1000);
      END LOOP; END LOOP; END \$\$;
    SELECT format('| %s | %s | %s | %s of %s | %s / %s | %s / %s |', $ef, to_char(avg(rec), 'FM0.000'), to_char(min(rec), 'FM0.00'),
                  count(*) FILTER (WHERE rec >= 0.95), count(*),
                  (SELECT to_char(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 'FM990.0') FROM t WHERE what = 'scan'),
                  (SELECT to_char(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), 'FM990.0') FROM t WHERE what = 'scan'),
                  (SELECT to_char(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 'FM990.0') FROM t WHERE what = 'recommend'),
                  (SELECT to_char(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), 'FM990.0') FROM t WHERE what = 'recommend'))
      FROM r"
done
echo
echo "Command: \`benches/retrieval/store_heads.sh PORT $STORES $EVENTS $EFS\`; the global head the stores adapted from is version $NEW, left inactive."
