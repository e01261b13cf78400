#!/usr/bin/env bash
# pg_ecom with pgvector (docs/retrieval.md), numbered checks:
#   1. embeddings go into vector columns (ecom_embed_vector, the batch form)
#   2. an HNSW index's <=> ranks like ecom_similarity, and the index is used
#   3. the operator is taken from the catalogue's index
#   4. two stages with every item a candidate = ecom_rank over the catalogue
#   5. two stages through the index find the head's own top items, for the
#      global head and for a tenant with a learned taste
#   6. the head's best sellers join the candidates: the whole catalogue's
#      top 10 when item effects put items far from the query vector there
#   7. ecom_recommend_serve logs what it shows; feedback and learning follow
#   8. hnsw.ef_search is set for the call's scan only
#   9. bad input: clear errors, nothing logged
#  10. a view, and a partitioned table, as the catalogue
#  11. a caller's search_path changes nothing; DROP leaves pg_ecom intact;
#      the companion refuses a pg_ecom older than 0.11.0
# Needs pgvector installed (scripts/test builds it from ../shared/third_party).
# usage: test/t/011_pgvector.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
stop() { scripts/cluster stop pgvector "$PORT"; }
trap stop EXIT
stop
scripts/cluster start pgvector "$PORT"
psql() { scripts/cluster psql pgvector "$PORT" "$@"; }
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pg_ecom_vector" -c "CREATE DATABASE pg_ecom_vector"
q() { psql -d pg_ecom_vector -qAt "$@"; }
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; exit 1; }
# an ERROR whose message matches $2, from the statement $1
errs() { local out; out=$(q -c "$1" 2>&1) && fail "$3: no error (got: $out)"; grep -q -- "$2" <<< "$out" || fail "$3: got: $out"; }

q -f test/fixture.sql >/dev/null
out=$(q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_ecom_vector CASCADE" 2>&1) || fail "CREATE EXTENSION pg_ecom_vector CASCADE: $out"
[ "$(q -c "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname LIKE '%vector%'")" = "pg_ecom_vector,vector" ] \
  || fail "CREATE EXTENSION pg_ecom_vector CASCADE creates vector too"

# a catalogue of 240 products, embedded in bulk into a vector column
q <<'SQL' >/dev/null
CREATE TABLE products (id serial PRIMARY KEY, title text, embedding vector(384), features real[]);
INSERT INTO products (title)
SELECT format('%s %s %s', c, m, p)
  FROM unnest(ARRAY['red', 'navy', 'black', 'white', 'olive', 'pink']) c,
       unnest(ARRAY['cotton', 'wool', 'leather', 'linen', 'denim']) m,
       unnest(ARRAY['shirt', 'scarf', 'boots', 'jacket', 'backpack', 'cap', 'gloves', 'skirt']) p
 ORDER BY 1;
UPDATE products p SET embedding = b.embedding
  FROM ecom_embed_batch_vector(ARRAY(SELECT title FROM products ORDER BY id)) b WHERE b.ord = p.id;
SQL

# 1. vectors are ecom_embed's, one by one and in bulk
same=$(q -c "SELECT count(*) FILTER (WHERE embedding <-> ecom_embed_vector(title) < 1e-5)
                    || '/' || count(*) FILTER (WHERE embedding::real[] = ecom_embed(title))
                    || '/' || count(*) FROM products")
[ "$same" = "240/240/240" ] || fail "vector columns hold ecom_embed's embeddings ($same)"
[ "$(q -c "SELECT vector_dims(ecom_embed_vector('wool scarf', 'context'))")" = 384 ] || fail "ecom_embed_vector(text, role)"
ok "ecom_embed_vector and ecom_embed_batch_vector fill a vector(384) column with ecom_embed's embeddings"

# 2. an HNSW index over it ranks like ecom_similarity
q -c "CREATE INDEX products_embedding_idx ON products USING hnsw (embedding vector_cosine_ops)"
q -c "ANALYZE products"
plan=$(q -c "SET enable_seqscan = off" -c "EXPLAIN (COSTS OFF) SELECT id FROM products ORDER BY embedding <=> ecom_embed_vector('warm winter clothes', 'context') LIMIT 10")
grep -q "Index Scan using products_embedding_idx" <<< "$plan" || fail "EXPLAIN shows the HNSW index: $plan"
for query in 'warm winter clothes' 'something for rain' 'a bag for school' 'summer dress'; do
  by_index=$(q -c "SET hnsw.ef_search = 100" -c "SELECT string_agg(id::text, ',') FROM (SELECT id FROM products ORDER BY embedding <=> ecom_embed_vector('$query', 'context') LIMIT 10) s")
  exact=$(q -c "SELECT string_agg(id::text, ',') FROM (SELECT id FROM products ORDER BY ecom_similarity(ecom_embed('$query', 'context'), embedding::real[]) DESC LIMIT 10) s")
  [ "$by_index" = "$exact" ] || fail "'$query': HNSW <=> gives $by_index, ecom_similarity $exact"
done
ok "HNSW <=> over the column ranks like ecom_similarity (4 queries, top 10), through the index"

# 3. the operator follows the index
q <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE TABLE by_ip (title text, embedding vector(384));
CREATE INDEX ON by_ip USING hnsw (embedding vector_ip_ops);
CREATE TABLE by_l2 (title text, embedding vector(384));
CREATE INDEX ON by_l2 USING ivfflat (embedding vector_l2_ops) WITH (lists = 1);
CREATE TABLE no_index (title text, embedding vector(384));
SQL
ops=$(q -c "SELECT ecom_catalogue_operator('products') || ecom_catalogue_operator('by_ip') || ecom_catalogue_operator('by_l2') || ecom_catalogue_operator('no_index')")
[ "$ops" = "<=><#><-><=>" ] || fail "operators from the indexes: $ops"
ok "ecom_catalogue_operator: <=> (cosine), <#> (inner product), <-> (L2, IVFFlat), <=> without an index"

# 4. every item a candidate: exactly ecom_rank over the whole catalogue
q -c "SELECT (ecom_adapt('store1', 'support')->>'version') IS NOT NULL" >/dev/null
for tenant in NULL "'store1'"; do
  two=$(q -c "SELECT string_agg(item || ':' || round(score::numeric, 9), ',' ORDER BY rank) FROM ecom_recommend($tenant, 'viewed: wool scarf', 'products', 10, 240)")
  one=$(q -c "SELECT string_agg(item || ':' || round(score::numeric, 9), ',' ORDER BY rank) FROM ecom_rank($tenant, 'viewed: wool scarf', ARRAY(SELECT title FROM products), 10)")
  [ -n "$two" ] && [ "$two" = "$one" ] || fail "tenant $tenant: two stages over all 240 differ from ecom_rank: $two vs $one"
done
ok "with every item a candidate, ecom_recommend returns ecom_rank's items and scores (global head and an adapted tenant)"

# 5. through the index, 30 candidates of 240: the head's own top 10
before=$(q -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'products_embedding_idx'")
for tenant in NULL "'store1'"; do
  for ctx in 'viewed: wool scarf' 'viewed: black leather boots' 'bought: denim jacket'; do
    # 240 rows: the planner rightly prefers a sort; take the index path the
    # form of the candidate query allows, as a big catalogue gets it
    two=$(q -c "SET enable_seqscan = off" -c "SELECT string_agg(item, ',' ORDER BY item) FROM ecom_recommend($tenant, '$ctx', 'products', 10, 30, ef_search => 30)")
    one=$(q -c "SELECT string_agg(item, ',' ORDER BY item) FROM ecom_rank($tenant, '$ctx', ARRAY(SELECT title FROM products), 10)")
    [ "$two" = "$one" ] || fail "tenant $tenant, '$ctx': 30 candidates gave $two, the whole catalogue $one"
  done
done
after=$(q -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'products_embedding_idx'")
[ $((after - before)) -ge 6 ] || fail "the candidate stage used the index ($before -> $after scans)"
ok "30 candidates through the HNSW index (ef_search 30) hold the head's top 10 of 240 (2 heads x 3 contexts), one index scan per call"

# 6. best sellers: a head whose item effects (SKUs that sell everywhere,
# which their text cannot say) put items far from q into its top 10
q <<'SQL' >/dev/null
CREATE TABLE sku_events AS
SELECT 'sku_store' || s AS tenant, 'shopper ' || ((s * 7 + r) % 5) || ' looking for a gift' AS context,
       'sku ' || (1000 + i) AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || i || '/' || r)) % 100) < (abs(hashtext('pop' || i)) % 60 + 5) AS label
  FROM generate_series(0, 11) s, generate_series(0, 99) i, generate_series(0, 5) r;
SELECT ecom_meta_train('sku_events', meta_steps => 10);
INSERT INTO products (title, embedding)
SELECT 'sku ' || (1000 + i), ecom_embed_vector('sku ' || (1000 + i)) FROM generate_series(0, 99) i;
SQL
# best sellers by default where finding them by key is cheap: a small
# table, or one with an index on ecom_item_key; not through a view
[ "$(q -c "SELECT ecom_default_best_sellers('products', 'title', 20)")" = 20 ] || fail "a small table gets best sellers by default"
q -c "CREATE INDEX products_key_idx ON products (ecom_item_key(title))"
[ "$(q -c "SELECT count(*) FILTER (WHERE effect > 0) FROM ecom_top_items(NULL, 'click', 10)")" = 10 ] || fail "the head learned item effects"
[ "$(q -c "SELECT ecom_catalogue_has_key_index('products') AND NOT ecom_catalogue_has_key_index('by_ip')")" = t ] \
  || fail "ecom_catalogue_has_key_index finds the index on ecom_item_key(title)"
for ctx in 'shopper 1 looking for a gift' 'viewed: wool scarf'; do
  full=$(q -c "SELECT string_agg(item, ',' ORDER BY item) FROM ecom_rank(NULL, '$ctx', ARRAY(SELECT title FROM products), 10, 'click')")
  with=$(q -c "SET enable_seqscan = off" -c "SELECT string_agg(item, ',' ORDER BY item) FROM ecom_recommend(NULL, '$ctx', 'products', 10, 20, 'click', ef_search => 20)")
  without=$(q -c "SET enable_seqscan = off" -c "SELECT count(*) FROM ecom_recommend(NULL, '$ctx', 'products', 10, 20, 'click', best_sellers => 0, ef_search => 20) r
                                               WHERE r.item IN (SELECT r2.item FROM ecom_rank(NULL, '$ctx', ARRAY(SELECT title FROM products), 10, 'click') r2)")
  [ "$with" = "$full" ] || fail "'$ctx': 20 candidates and 20 best sellers gave $with, the whole catalogue $full"
  echo "# '$ctx': without best sellers, $without of the whole catalogue's top 10"
  [ "$without" -lt 10 ] || fail "'$ctx': the index alone already found the whole top 10, so this check shows nothing"
done
# the best sellers come through the key index
before=$(q -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'products_key_idx'")
q -c "SELECT count(*) FROM ecom_recommend(NULL, 'shopper 1 looking for a gift', 'products', 10, 20, 'click')" >/dev/null
after=$(q -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'products_key_idx'")
[ "$after" -gt "$before" ] || fail "best sellers through products_key_idx ($before -> $after scans)"
# an item listed twice is one candidate, and shown once
top=$(q -c "SELECT max(id) FROM products")
q -c "INSERT INTO products (title, embedding) SELECT title, embedding FROM products WHERE title LIKE 'sku 10%' ORDER BY title LIMIT 30"
dups=$(q -c "SELECT count(*) - count(DISTINCT item) FROM ecom_recommend(NULL, 'shopper 1 looking for a gift', 'products', 10, 40, 'click')")
[ "$dups" = 0 ] || fail "an item listed twice was recommended twice"
q -c "DELETE FROM products WHERE id > $top"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', best_sellers => -1)" 'best_sellers must not be negative' "best_sellers negative"
ok "with the head's best sellers (ecom_top_items, found through the index on ecom_item_key), 20 candidates give the whole catalogue's top 10; the index alone did not; an item listed twice is shown once"

# 7. serving logs what it shows, and the loop goes on from it
imp0=$(q -c "SELECT count(*) FROM ecom.impressions")
shown=$(q -c "SELECT string_agg(impression_id::text, ',' ORDER BY rank) FROM ecom_recommend_serve('vshop', 'viewed: wool scarf', 'products', 5, 40, seed => 7, best_sellers => 0)")
[ "$(tr ',' '\n' <<< "$shown" | wc -l)" = 5 ] || fail "ecom_recommend_serve shows 5: $shown"
logged=$(q -c "SELECT (SELECT count(*) FROM ecom.impressions) - $imp0, (SELECT cardinality(items) FROM ecom.requests WHERE tenant = 'vshop' ORDER BY id DESC LIMIT 1)")
[ "$logged" = "5|40" ] || fail "5 impressions and a request of 40 candidates logged: $logged"
again=$(q -c "SELECT string_agg(item, ',' ORDER BY rank) FROM ecom_recommend_serve('vshop', 'viewed: wool scarf', 'products', 5, 40, seed => 7, best_sellers => 0)")
logged_items=$(q -c "SELECT string_agg(i.item, ',' ORDER BY i.rank) FROM ecom.impressions i WHERE i.id IN ($shown)")
[ "$again" = "$logged_items" ] || fail "the same seed shows the same items: $again vs $logged_items"
q -c "SELECT ecom_feedback(${shown%%,*}, 'click')" >/dev/null
q -c "SELECT count(*) FROM generate_series(1, 10) g, ecom_recommend_serve('vshop', 'viewed: item ' || g, 'products', 3, 20)" >/dev/null
learned=$(q -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('vshop', activate => 'always')->>'version'")
[ "$learned" = 1 ] || fail "ecom_learn learns from what ecom_recommend_serve logged: $learned"
ok "ecom_recommend_serve logs 5 impressions and 40 candidates, replays from its seed, and ecom_feedback / ecom_learn follow"

# 8. hnsw.ef_search set for the call's scan only, in the caller's
# transaction too, and in a new session (pgvector not loaded yet)
ef=$(q -c "BEGIN" -c "SET LOCAL hnsw.ef_search = 50" -c "SELECT count(*) FROM ecom_recommend(NULL, 'viewed: wool scarf', 'products', 10, 200)" \
      -c "SHOW hnsw.ef_search" -c "COMMIT")
[ "$ef" = "$(printf '10\n50')" ] || fail "ef_search inside the caller's transaction after the call: $ef"
ef=$(q -c "BEGIN" -c "SELECT count(*) FROM ecom_recommend(NULL, 'viewed: wool scarf', 'products', 10, 20)" -c "SHOW hnsw.ef_search" -c "COMMIT")
[ "$ef" = "$(printf '10\n40')" ] || fail "ef_search in a new session after the call: $ef"
# and it was widened: 200 rows through an index scan at the caller's 50
wide=$(q -c "SET hnsw.ef_search = 50" -c "SET enable_seqscan = off" \
        -c "SELECT cardinality(items) FROM ecom_catalogue_candidates('products', ecom_query_vector(NULL, 'viewed: wool scarf'), 200, ef_search => 200)")
[ "$wide" -gt 150 ] || fail "200 candidates through HNSW at the caller's ef_search 50: $wide"
ok "the candidate stage sets hnsw.ef_search for its own scan (over 150 rows at the caller's 50) and puts the caller's value back, in its transaction and in a new session"

# 9. bad input
q -c "CREATE TABLE real_products AS SELECT title, embedding::real[] AS embedding FROM products"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'real_products')" 'column "embedding" of real_products is real\[\], not vector' "a real[] column"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'real_products')" 'HINT:  ALTER TABLE real_products ALTER COLUMN embedding TYPE vector USING embedding::vector' "the real[] column's hint"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', item_column => 'name')" 'column "name" of products does not exist' "a missing item column"
errs "SELECT * FROM ecom_catalogue_candidates('products', NULL, 10)" 'q must not be NULL' "q NULL"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', 0, 0)" 'candidates must be positive, got 0' "no candidates"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', explore => 'sometimes')" 'explore' "an unknown explore policy"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', embedding_column => 'vec')" 'column "vec" of products does not exist' "a missing column"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', 10, 5)" 'candidates (5) must be at least k (10)' "fewer candidates than k"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', 10, 1001)" 'must be at most 1000 over an HNSW index' "too many candidates for HNSW"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', 10, 100, ef_search => 50)" 'ef_search (50) must be at least candidates (100)' "ef_search below candidates"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'no_such_table')" 'relation "no_such_table" does not exist' "no such catalogue"
errs "SELECT * FROM ecom_recommend(NULL, 'x', NULL)" 'catalogue must not be NULL' "catalogue NULL"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', features_column => 'features')" 'column "features" of products is NULL for [0-9]* of the candidates' "side features NULL"
errs "SELECT * FROM ecom_recommend(NULL, 'x', 'products', behaviour => 'wishlist')" 'behaviour' "an unknown behaviour"
imp=$(q -c "SELECT count(*) FROM ecom.impressions")
errs "SELECT * FROM ecom_recommend_serve('vshop', NULL, 'products')" 'context must not be NULL' "serve without a context"
errs "SELECT * FROM ecom_recommend_serve('vshop', 'x', 'products', behaviour => NULL)" 'behaviour must not be NULL' "serve without a behaviour"
errs "SELECT * FROM ecom_recommend_serve(NULL, 'x', 'products')" 'tenant must not be NULL' "serve without a tenant"
[ "$(q -c "SELECT count(*) FROM ecom.impressions")" = "$imp" ] || fail "a refused serve logged impressions"
[ "$(q -c "SELECT count(*) FROM ecom_recommend(NULL, NULL, 'products')")" = 0 ] || fail "NULL context ranks nothing, as ecom_rank"
# NULL titles or embeddings are not candidates; a catalogue with no rows gives no rows
q -c "INSERT INTO products (title, embedding) VALUES (NULL, ecom_embed_vector('wool scarf')), ('untitled wool scarf', NULL)"
[ "$(q -c "SELECT count(*) FROM ecom_recommend(NULL, 'wool scarf', 'products', 10, 10) WHERE item IS NULL OR item = 'untitled wool scarf'")" = 0 ] \
  || fail "rows with a NULL title or embedding became candidates"
[ "$(q -c "SELECT count(*) FROM ecom_recommend(NULL, 'x', 'no_index')")" = 0 ] || fail "an empty catalogue gives no rows"
ok "bad input: real[] column (with the ALTER hint), missing column, candidates < k or > 1000, NULL catalogue/features/context/tenant, unknown behaviour; nothing logged"

# 10. a view as the catalogue: the table's index through it, best sellers by key
q -c "CREATE VIEW shop_view AS SELECT title AS name, embedding AS emb FROM products WHERE title NOT LIKE 'sku%'"
view=$(q -c "SELECT count(*), count(*) FILTER (WHERE item LIKE 'sku%') FROM ecom_recommend(NULL, 'viewed: wool scarf', 'shop_view', 10, 30, item_column => 'name', embedding_column => 'emb')")
[ "$view" = "10|0" ] || fail "ecom_recommend over a view: $view"
[ "$(q -c "SELECT ecom_default_best_sellers('shop_view', 'name', 20)")" = 0 ] || fail "a view gets no best sellers by default"
# a partitioned table: its partitions' HNSW indexes, best sellers by size
q <<'SQL' >/dev/null
CREATE TABLE parts (cat text, title text, embedding vector(384)) PARTITION BY LIST (cat);
CREATE TABLE parts_a PARTITION OF parts FOR VALUES IN ('a');
CREATE TABLE parts_b PARTITION OF parts FOR VALUES IN ('b');
INSERT INTO parts SELECT CASE WHEN id % 2 = 0 THEN 'a' ELSE 'b' END, title, embedding
  FROM products WHERE title IS NOT NULL AND embedding IS NOT NULL;
CREATE INDEX ON parts USING hnsw (embedding vector_cosine_ops);
SQL
[ "$(q -c "SELECT ecom_default_best_sellers('parts', 'title', 20)")" = 20 ] || fail "a small partitioned table gets best sellers by default"
pt=$(q -c "SELECT string_agg(item, ',' ORDER BY item) FROM ecom_recommend(NULL, 'shopper 1 looking for a gift', 'parts', 10, 20, 'click')")
whole=$(q -c "SELECT string_agg(item, ',' ORDER BY item) FROM ecom_rank(NULL, 'shopper 1 looking for a gift', ARRAY(SELECT title FROM parts), 10, 'click')")
[ -n "$pt" ] && [ "$pt" = "$whole" ] || fail "ecom_recommend over a partitioned table: $pt, the whole table: $whole"
ok "a view as the catalogue (its own column names, rows the view leaves out never shown); a partitioned table (the whole table's top 10)"

# 11. search_path and DROP
sp=$(q -c "CREATE SCHEMA evil" -c "CREATE FUNCTION evil.ecom_query_vector(text, text, text) RETURNS real[] LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'redirected'; END\$\$" \
      -c "SET search_path = evil, pg_catalog" -c "SELECT count(*) FROM public.ecom_recommend(NULL, 'viewed: wool scarf', 'public.products', 10, 30)")
[ "$sp" = 10 ] || fail "with another search_path: $sp"
# a vectorizer fills a vector(384) column (pg_ecom's own, no companion
# needed): the same embeddings as ecom_embed_vector; vector(3) is refused
q -c "CREATE TABLE vz_vec (id int PRIMARY KEY, title text, embedding vector(384), small vector(3))"
q -c "INSERT INTO vz_vec SELECT g, 'vector item ' || g FROM generate_series(1, 50) g"
q -c "SET client_min_messages = warning" -c "SELECT ecom_vectorizer_attach('vz_vec', 'title', 'embedding')" >/dev/null
q -c "SELECT ecom_vectorizer_run()" >/dev/null
d=$(q -c "SELECT count(*) FILTER (WHERE embedding <=> ecom_embed_vector(title) < 1e-6) || '/' || count(*) FROM vz_vec")
[ "$d" = 50/50 ] || fail "a vectorizer into a vector(384) column: $d rows equal ecom_embed_vector"
small=$(q -c "SELECT ecom_vectorizer_attach('vz_vec', 'title', 'small')" 2>&1 || true)
grep -q 'column "small" of table public.vz_vec is vector(3), and the encoder gives 384 dimensions' <<< "$small" \
  || fail "a vectorizer into vector(3): $small"
q -c "DROP TABLE vz_vec"
ok "a vectorizer fills a vector(384) column with ecom_embed_vector's embeddings; vector(3) is refused at attach"
q -c "DROP EXTENSION pg_ecom_vector"
[ "$(q -c "SELECT count(*) FROM pg_proc WHERE proname LIKE 'ecom_recommend%'")" = 0 ] || fail "DROP EXTENSION pg_ecom_vector removes its functions"
[ "$(q -c "SELECT count(*) FROM ecom_rank(NULL, 'x', ARRAY['a', 'b'], 1)")" = 1 ] || fail "pg_ecom works after DROP EXTENSION pg_ecom_vector"
# the companion needs pg_ecom 0.11.0: with 0.1.0's SQL objects it says so
EXT=$(${PG_CONFIG:-pg_config} --sharedir)/extension
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO install -m 0644 sql/pg_ecom--0.1.0.sql "$EXT/pg_ecom--0.1.0.sql"
trap '$SUDO rm -f "$EXT/pg_ecom--0.1.0.sql"; stop' EXIT
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pg_ecom_vector_old" -c "CREATE DATABASE pg_ecom_vector_old"
old=$(psql -d pg_ecom_vector_old -qAt -c "CREATE EXTENSION pg_ecom VERSION '0.1.0'" -c "CREATE EXTENSION vector" -c "CREATE EXTENSION pg_ecom_vector" 2>&1 || true)
grep -q "pg_ecom_vector needs pg_ecom 0.11.0 or later, installed is 0.1.0" <<< "$old" && grep -q "ALTER EXTENSION pg_ecom UPDATE" <<< "$old" \
  || fail "the companion over pg_ecom 0.1.0: $old"
ok "a caller's search_path cannot redirect the companion; DROP EXTENSION pg_ecom_vector leaves pg_ecom working; it refuses pg_ecom 0.1.0 with the hint to update"
echo "1..$n"
