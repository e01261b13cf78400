#!/usr/bin/env bash
# Two-stage quality on MovieLens-100K (docs/retrieval.md): users as tenants
# (benches/eval/prepare.py --protocol users --text-only), a global head
# meta-trained on the other users, each held-out user adapted from their
# first 32 events. The catalogue is every movie (its text as the head sees
# it), in a vector column with an HNSW index. For 15 later contexts of each
# held-out user, ecom_recommend (k = 10, N candidates, with and without the
# head's best sellers) is compared with
# ecom_rank over the whole catalogue with the same head:
#   agreement = |top 10 of both| / 10, and precision@10 of each against
#   the movies the user rated >= 4 after those 32 events.
# Seeds pick the held-out users and seed meta-training.
# usage: benches/retrieval/movielens.sh PORT [SEEDS] [TEST_USERS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1; SEEDS=${2:-3}; USERS=${3:-8}
OUT=$PWD/.ecom/retrieval/ml
mkdir -p "$OUT"
VENV=$PWD/.ecom/venv
DATA=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recbole/dataset_example/ml-100k
"$VENV/bin/python" benches/eval/prepare.py --data "$DATA" --out "$OUT" --protocol users --text-only \
  --seeds 1 --ks 32 --test-tenants 2 --query 60 >/dev/null
chmod -R a+rX "$OUT"
DB=pg_ecom_retrieval_ml
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -qAt -v ON_ERROR_STOP=1 -d $DB "$@"; }
command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_ecom_vector CASCADE;
CREATE TABLE ev (tenant text, usr int, ts bigint, trank int, context text, item text, label boolean,
                 features real[], pop real, early boolean, sampled boolean);
\copy ev FROM '$OUT/events.csv' WITH (FORMAT csv, HEADER true)
CREATE TABLE catalogue AS SELECT DISTINCT item AS title FROM ev;
ALTER TABLE catalogue ADD COLUMN embedding vector(384);
UPDATE catalogue c SET embedding = b.embedding
  FROM (SELECT array_agg(title ORDER BY title) a FROM catalogue) s, ecom_embed_batch_vector(s.a) b
 WHERE c.title = s.a[b.ord];
CREATE INDEX ON catalogue USING hnsw (embedding vector_cosine_ops);
CREATE TABLE result (seed int, tenant text, head text, n int, bs text, context text, agree float8, p_two float8, p_full float8);
SQL
echo "catalogue: $(psql -c "SELECT count(*) FROM catalogue") movies; users with enough events: $(psql -c "SELECT count(DISTINCT tenant) FROM ev")" >&2
for seed in $(seq 1 "$SEEDS"); do
  psql <<SQL >/dev/null
SET client_min_messages = warning;
SET pg_ecom.embedding_cache_mb = 256;
DELETE FROM ecom.heads;
CREATE TEMP TABLE test_users AS
SELECT tenant FROM (SELECT DISTINCT tenant FROM ev) t ORDER BY md5(tenant || '$seed') LIMIT $USERS;
CREATE TEMP TABLE train_src AS
SELECT tenant, context, item, 'purchase'::text AS behaviour, label FROM ev
 WHERE sampled AND tenant NOT IN (SELECT tenant FROM test_users);
SELECT ecom_meta_train('train_src', seed => $seed) IS NOT NULL;
CREATE TEMP VIEW sup AS SELECT tenant, context, item, 'purchase'::text AS behaviour, label FROM ev WHERE early AND trank <= 32;
DO \$\$
DECLARE u record;
BEGIN
  FOR u IN SELECT tenant FROM test_users LOOP
    EXECUTE format('CREATE TEMP VIEW sup_one AS SELECT context, item, behaviour, label FROM sup WHERE tenant = %L', u.tenant);
    PERFORM ecom_adapt(u.tenant, 'sup_one');
    DROP VIEW sup_one;
  END LOOP;
END \$\$;
CREATE TEMP TABLE ctx AS
SELECT tenant, context FROM (
  SELECT tenant, context, row_number() OVER (PARTITION BY tenant ORDER BY md5(context || '$seed')) r
    FROM (SELECT DISTINCT tenant, context FROM ev WHERE early AND trank > 32 AND tenant IN (SELECT tenant FROM test_users)) d) x
 WHERE r <= 15;
CREATE TEMP TABLE liked AS SELECT DISTINCT tenant, item FROM ev WHERE label AND trank > 32 AND tenant IN (SELECT tenant FROM test_users);
CREATE TEMP TABLE full_top AS
SELECT c.tenant, h.head, c.context, ARRAY(SELECT r.item FROM ecom_rank(CASE h.head WHEN 'global' THEN NULL ELSE c.tenant END,
                                                    c.context, ARRAY(SELECT title FROM catalogue), 10) r) AS top
  FROM ctx c, (VALUES ('global'), ('adapted')) h(head);
INSERT INTO result
SELECT $seed, f.tenant, f.head, n.n, coalesce(n.bs::text, 'default'), f.context,
       cardinality(ARRAY(SELECT unnest(t.top) INTERSECT SELECT unnest(f.top))) / 10.0,
       (SELECT count(*) FROM unnest(t.top) i WHERE (f.tenant, i) IN (SELECT tenant, item FROM liked)) / 10.0,
       (SELECT count(*) FROM unnest(f.top) i WHERE (f.tenant, i) IN (SELECT tenant, item FROM liked)) / 10.0
  FROM full_top f, (VALUES (20, NULL), (50, NULL), (100, NULL), (20, 0), (100, 0)) n(n, bs),
       LATERAL (SELECT ARRAY(SELECT r.item FROM ecom_recommend(CASE f.head WHEN 'global' THEN NULL ELSE f.tenant END,
                                                              f.context, 'catalogue', 10, n.n, best_sellers => n.bs) r) AS top) t;
SQL
  echo "seed $seed done" >&2
done
echo "| head | candidates | best sellers | agreement with the whole catalogue (mean ± std over seeds) | worst user | precision@10, two stages | precision@10, whole catalogue |"
echo "|---|---|---|---|---|---|---|"
psql <<'SQL'
SELECT format('| %s | %s | %s | %s ± %s | %s | %s | %s |', head, n, bs,
              to_char(avg(a), 'FM0.000'), to_char(coalesce(stddev_samp(a), 0), 'FM0.000'),
              to_char(min(w), 'FM0.00'), to_char(avg(p2), 'FM0.000'), to_char(avg(pf), 'FM0.000'))
  FROM (SELECT seed, head, n, bs, avg(agree) a, min(ua) w, avg(p_two) p2, avg(p_full) pf
          FROM (SELECT seed, head, n, bs, tenant, agree, p_two, p_full, avg(agree) OVER (PARTITION BY seed, head, n, bs, tenant) ua FROM result) r
         GROUP BY seed, head, n, bs) s
 GROUP BY head, n, bs ORDER BY head DESC, bs DESC, n;
SQL
