#!/usr/bin/env bash
# Two-stage recommendation over a pgvector catalogue (docs/retrieval.md):
#  - the candidate stage's recall@100 against exact search, per ef_search,
#    for the head's query vector (ecom_query_vector: the global head and a
#    tenant with a learned taste) and for the plain context embedding;
#  - end to end: ecom_recommend's top 10 (100 candidates) against ranking
#    the whole catalogue with the head (the exact top 10 by q·v plus the
#    item's learned effect: with no side features that is the head's order,
#    as test/t/011_pgvector.sh checks);
#  - latency p50 / p95 of ecom_recommend and ecom_recommend_serve (k = 10,
#    100 candidates), server side, contexts already in the embedding cache,
#    and of the candidate stage alone; the index's build time and size.
# The catalogue: N synthetic product titles (benches/retrieval/titles.py)
# embedded by MiniLM (benches/retrieval/embed_titles.sh, cached in
# .ecom/retrieval). The head is test/fixture.sql's; the contexts are the
# bilingual set's (benches/multilingual/products.tsv) first 100 English
# queries and "viewed: <its English title>".
# Needs pgvector installed, and the cluster on PORT.
# The index: PG_ECOM_BENCH_HNSW, its WITH options (default pgvector's
# own, m = 16, ef_construction = 64; docs/retrieval.md recommends m = 32,
# ef_construction = 200 from 1,000,000 items). PG_ECOM_BENCH_REUSE=1
# measures again on the database an earlier run left: its catalogue,
# contexts and index are kept (N, PG_ECOM_BENCH_CONTEXTS and
# PG_ECOM_BENCH_HNSW then say nothing: what the database holds is
# reported); the tenant, the queries and their exact answers are made
# again, for the head active now.
# PG_ECOM_BENCH_LAT_EF: the ef_search of the latency part (default: the
# functions' own, 10 x candidates up to 1000).
# usage: [PG_ECOM_BENCH_CONTEXTS=200] benches/retrieval/run.sh PORT [N] [EF_SEARCH...]
set -euo pipefail
# a head file relative to where the command was given
[ -n "${PG_ECOM_BENCH_HEAD:-}" ] && PG_ECOM_BENCH_HEAD=$(realpath "$PG_ECOM_BENCH_HEAD")
cd "$(dirname "$0")/../.."
PORT=$1; N=${2:-100000}; shift $(( $# < 2 ? $# : 2 ))
EFS=${*:-100 200 400 1000}
CTX=${PG_ECOM_BENCH_CONTEXTS:-200}   # fewer for 1M items: each exact search scans them all
DB=pg_ecom_retrieval
HNSW=${PG_ECOM_BENCH_HNSW:-m = 16, ef_construction = 64}
LAT_EF=${PG_ECOM_BENCH_LAT_EF:-NULL}
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -qAt -v ON_ERROR_STOP=1 -d $DB "$@"; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
if [ -z "${PG_ECOM_BENCH_REUSE:-}" ]; then
command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -f test/fixture.sql >/dev/null
psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_ecom_vector CASCADE"

# contexts: the bilingual set's English queries and "viewed: <title>"
psql -c "CREATE TABLE contexts (id serial, ctx text)"
# (awk, not head: head closing the pipe early fails it under pipefail)
awk -F'\t' 'NR > 1 && NR <= 101 { print $4 }' benches/multilingual/products.tsv > "$TMP/ctx.txt"
awk -F'\t' 'NR > 1 && NR <= 101 { print "viewed: " $2 }' benches/multilingual/products.tsv >> "$TMP/ctx.txt"
psql -c "\copy contexts (ctx) FROM '$TMP/ctx.txt'"
psql -c "DELETE FROM contexts WHERE id > $CTX"

[ -f ".ecom/retrieval/titles_$N.copy" ] || benches/retrieval/embed_titles.sh "$PORT" "$N" >&2
psql -c "CREATE TABLE catalogue (id bigserial PRIMARY KEY, title text NOT NULL, embedding vector(384))"
psql -c "\copy catalogue (title, embedding) FROM '$PWD/.ecom/retrieval/titles_$N.copy'"
psql -c "CREATE INDEX catalogue_key_idx ON catalogue (ecom_item_key(title))"
psql -c "VACUUM ANALYZE catalogue"
t0=$(psql -c "SELECT extract(epoch FROM clock_timestamp())")
psql -c "SET maintenance_work_mem = '4GB'" -c "SET max_parallel_maintenance_workers = 1" \
  -c "CREATE INDEX catalogue_embedding_idx ON catalogue USING hnsw (embedding vector_cosine_ops) WITH ($HNSW)"
build_s=$(psql -c "SELECT round(extract(epoch FROM clock_timestamp()) - $t0, 1)")

fi

# PG_ECOM_BENCH_HEAD: a file of one ecom.heads row (COPY text format, the
# columns below), for example a MovieLens global head exported by
#   \copy (SELECT <those columns> FROM ecom.heads WHERE tenant IS NULL AND active) TO 'head.copy'
# in benches/retrieval/movielens.sh's database: it becomes the active
# global head, so the queries are a meta-trained head's instead of the
# fixture's toy head (10 meta-steps on 120 synthetic events). For many
# meta-trained heads at once: benches/retrieval/store_heads.sh.
HEAD_COLS="tenant,parent_version,behaviours,n_features,dims,weights,hyper,metrics,posterior,item_keys,item_effects,item_precision,taste_basis"
if [ -n "${PG_ECOM_BENCH_HEAD:-}" ]; then
  HEAD_SQL=${PG_ECOM_BENCH_HEAD//\'/\'\'}   # a quote doubled for psql's \copy
  psql <<SQL
BEGIN;
CREATE TEMP TABLE head_in AS SELECT $HEAD_COLS FROM ecom.heads LIMIT 0;
\copy head_in FROM '$HEAD_SQL'
UPDATE ecom.heads SET active = false WHERE tenant IS NULL;
INSERT INTO ecom.heads (version, active, ever_active, $HEAD_COLS)
SELECT (SELECT max(version) + 1 FROM ecom.heads WHERE tenant IS NULL), true, true, $HEAD_COLS FROM head_in;
COMMIT;
SQL
fi
HEAD=$(psql -c "SELECT format('global head version %s, %s', version, CASE WHEN version = 1 THEN 'test/fixture.sql''s toy head' ELSE 'installed by PG_ECOM_BENCH_HEAD' END)
                  FROM ecom.heads WHERE tenant IS NULL AND active")
# a store whose shoppers buy wool: adapted on 400 of the catalogue's titles,
# so that its head (taste, gain) and its q differ from the global one
psql -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS wool_support, qs, exact" -c "CREATE TABLE wool_support AS
           SELECT c.ctx AS context, t.title AS item, 'purchase'::text AS behaviour, t.title LIKE '%wool%' AS label
             FROM (SELECT title, row_number() OVER (ORDER BY id) AS r FROM catalogue
                    WHERE id % 97 = 0 OR title LIKE '%wool%' ORDER BY id LIMIT 400) t
             JOIN contexts c ON c.id = 1 + t.r % (SELECT count(*) FROM contexts)" \
     -c "SELECT ecom_adapt('wool_shop', 'wool_support')" >/dev/null

# the queries: the head's q (global, and wool_shop with its taste) and the context itself
psql <<'SQL'
CREATE TABLE qs AS
SELECT c.id, 'head ' || coalesce(t.tenant, 'global') AS kind, t.tenant, c.ctx,
       ecom_query_vector(t.tenant, c.ctx, 'purchase')::vector AS q
  FROM contexts c, (VALUES (NULL::text), ('wool_shop')) t(tenant)
UNION ALL
SELECT c.id, 'context', NULL, c.ctx, ecom_embed_vector(c.ctx, 'context') FROM contexts c;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
CREATE TABLE exact AS
SELECT qs.id, qs.kind, ARRAY(SELECT id FROM catalogue ORDER BY embedding <=> qs.q LIMIT 100) AS top FROM qs;
SQL
# the catalogue's one HNSW index, whichever run built it
IDX=$(psql -c "SELECT indexrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                WHERE indrelid = 'catalogue'::regclass AND amname = 'hnsw'")
[ -n "$IDX" ] && [ "$(wc -l <<< "$IDX")" = 1 ] || { echo "the catalogue needs exactly one HNSW index, has: $IDX" >&2; exit 1; }
HNSW_USED=$(psql -c "SELECT coalesce(array_to_string(reloptions, ', '), 'm=16, ef_construction=64') FROM pg_class WHERE oid = '$IDX'::regclass")
[ -n "${build_s:-}" ] && built="built in ${build_s} s with 2 workers" || built="built by an earlier run"
N=$(psql -c "SELECT count(*) FROM catalogue"); CTX=$(psql -c "SELECT count(*) FROM contexts")
size=$(psql -c "SELECT pg_size_pretty(pg_relation_size('$IDX')) || ' index, ' || pg_size_pretty(pg_table_size('catalogue')) || ' table, shared_buffers ' || current_setting('shared_buffers')")
psql -c "SELECT pg_prewarm('$IDX')" >/dev/null 2>&1 || true

echo
echo "### $N items ($size; HNSW $HNSW_USED, $built; $HEAD)"
echo
echo "Candidate stage as ecom_catalogue_candidates runs it (the index's ef_search nearest, then the best 100 by inner product),"
echo "recall@100 against exact search (mean over $CTX contexts; worst context):"
echo
echo "| hnsw.ef_search | $(psql -c "SELECT string_agg(kind, ' | ' ORDER BY kind) FROM (SELECT DISTINCT kind FROM qs) k") |"
echo "|---|---|---|---|"
for ef in $EFS; do
  row=$(psql -c "SET hnsw.ef_search = $ef" -c "
    SELECT string_agg(format('%s (worst %s)', to_char(r, 'FM0.000'), to_char(w, 'FM0.00')), ' | ' ORDER BY kind)
      FROM (SELECT kind, avg(rec) r, min(rec) w
              FROM (SELECT qs.kind, cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(e.top))) / 100.0 AS rec
                      FROM qs JOIN exact e USING (id, kind),
                           LATERAL (SELECT ARRAY(SELECT id FROM (SELECT id, embedding FROM catalogue ORDER BY embedding <=> qs.q LIMIT $ef) w
                                                  ORDER BY embedding <#> qs.q LIMIT 100) top) a) x
             GROUP BY kind) y")
  echo "| $ef | $row |"
done

echo
echo "How far each query lies from the items: the cosine of its nearest item (exact), mean over the contexts:"
echo
psql -c "SELECT format('  %s: %s', e.kind, to_char(avg(1 - (c.embedding <=> qs.q)), 'FM0.000'))
           FROM exact e JOIN qs USING (id, kind) JOIN catalogue c ON c.id = e.top[1]
          GROUP BY e.kind ORDER BY e.kind"
echo
echo "End to end, ecom_recommend (k = 10, 100 candidates, ef_search $LAT_EF (NULL: 1000), best sellers through the key index)"
echo "against the head over the whole catalogue (exact: the top 10 by q·v + the item's learned effect), agreement of the top 10:"
echo
{ echo "SET bench.lat_ef = '$LAT_EF';"; cat <<'SQL'; } | psql | sed 's/^/  /'
CREATE TEMP TABLE fx AS
SELECT h.kind, e.item_key, e.effect
  FROM (SELECT DISTINCT kind, tenant FROM qs WHERE kind LIKE 'head%') h, LATERAL ecom_item_effects(h.tenant) e
 WHERE e.behaviour = 'purchase';
SET enable_indexscan = off;
SET enable_bitmapscan = off;
CREATE TEMP TABLE exact_head AS
SELECT qs.id, qs.kind, ARRAY(SELECT c.title FROM catalogue c LEFT JOIN fx ON fx.kind = qs.kind AND fx.item_key = ecom_item_key(c.title)
                             ORDER BY -(c.embedding <#> qs.q) + coalesce(fx.effect, 0) DESC LIMIT 10) AS top
  FROM qs WHERE qs.kind LIKE 'head%';
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT format('%s: %s (worst context %s; items with learned effects: %s)', kind, to_char(avg(agree), 'FM0.000'), to_char(min(agree), 'FM0.0'),
              (SELECT count(*) FROM fx WHERE fx.kind = x.kind))
  FROM (SELECT qs.kind, cardinality(ARRAY(
                 SELECT r.item FROM ecom_recommend(qs.tenant, qs.ctx, 'catalogue', 10, 100,
                                                   ef_search => nullif(current_setting('bench.lat_ef'), 'NULL')::int) r
                 INTERSECT SELECT unnest(e.top))) / 10.0 AS agree
          FROM qs JOIN exact_head e USING (id, kind)) x
 GROUP BY kind ORDER BY kind;
SQL

echo
echo "Latency, server side, 3 passes over the $CTX contexts after one to warm the cache, ef_search $LAT_EF (ms):"
echo
echo "| call | calls | p50 | p95 |"
echo "|---|---|---|---|"
{ echo "SET bench.lat_ef = '$LAT_EF';"; cat <<'SQL'; } | psql
CREATE TEMP TABLE lat (what text, ms float8);
DO $$
DECLARE c record; t0 timestamptz; keys bigint[]; ef int := nullif(current_setting('bench.lat_ef'), 'NULL')::int;
BEGIN
  FOR c IN SELECT ctx FROM contexts LOOP
    PERFORM count(*) FROM ecom_recommend(NULL, c.ctx, 'catalogue', 10, 100, ef_search => ef);
    PERFORM count(*) FROM ecom_recommend('wool_shop', c.ctx, 'catalogue', 10, 100, ef_search => ef);
  END LOOP;
  FOR pass IN 1..3 LOOP
    FOR c IN SELECT ctx FROM contexts ORDER BY md5(ctx || pass) LOOP
      t0 := clock_timestamp();
      PERFORM count(*) FROM ecom_recommend('wool_shop', c.ctx, 'catalogue', 10, 100, ef_search => ef);
      INSERT INTO lat VALUES ('ecom_recommend (wool_shop)', extract(epoch FROM clock_timestamp() - t0) * 1000);
      t0 := clock_timestamp();
      PERFORM count(*) FROM ecom_recommend_serve('wool_shop', c.ctx, 'catalogue', 10, 100, explore => 'thompson', ef_search => ef);
      INSERT INTO lat VALUES ('ecom_recommend_serve thompson (wool_shop)', extract(epoch FROM clock_timestamp() - t0) * 1000);
      t0 := clock_timestamp();
      PERFORM ecom_catalogue_candidates('catalogue', ecom_query_vector('wool_shop', c.ctx), 100, ef_search => ef);
      INSERT INTO lat VALUES ('candidate stage alone (incl. ecom_query_vector)', extract(epoch FROM clock_timestamp() - t0) * 1000);
      keys := ARRAY(SELECT ecom_item_key(title) FROM catalogue WHERE id BETWEEN pass * 1000 AND pass * 1000 + 99);
      t0 := clock_timestamp();
      PERFORM ecom_catalogue_candidates('catalogue', ecom_query_vector('wool_shop', c.ctx), 100, item_keys => keys, ef_search => ef);
      INSERT INTO lat VALUES ('candidate stage with 100 best sellers by key', extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
  END LOOP;
END $$;
SELECT format('| %s | %s | %s | %s |', what, count(*),
              to_char(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 'FM990.0'),
              to_char(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), 'FM990.0'))
  FROM lat GROUP BY what ORDER BY what;
SQL
