-- pg_ecom_vector 0.11.0: pg_ecom's embeddings as pgvector's `vector`, and
-- recommendation in two stages over a catalogue with a vector index: the
-- index retrieves the candidates the tenant's head would rank highest
-- (ecom_query_vector), then the head ranks them from their stored
-- embeddings (ecom_rank_emb / ecom_serve_emb). docs/retrieval.md.
--
-- Every function here runs with the search_path CREATE EXTENSION gives
-- (this extension's schema, then pg_ecom's and vector's), so that a
-- caller's search_path cannot redirect ecom_* or the vector operators.
\echo Use "CREATE EXTENSION pg_ecom_vector CASCADE" to load this file. \quit

-- the functions below call pg_ecom 0.11.0's; an older pg_ecom would fail
-- only at the first call, so say it here
DO $$
BEGIN
  IF to_regprocedure('ecom_query_vector(text, text, text)') IS NULL THEN
    RAISE EXCEPTION 'pg_ecom_vector needs pg_ecom 0.11.0 or later, installed is %',
      (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_ecom')
      USING ERRCODE = 'feature_not_supported', HINT = 'Run ALTER EXTENSION pg_ecom UPDATE first.';
  END IF;
END
$$;

-- ecom_embed(text, role) as a vector: what goes into a vector column.
CREATE FUNCTION ecom_embed_vector(text text, role text DEFAULT 'item')
RETURNS vector
LANGUAGE sql STABLE STRICT PARALLEL SAFE COST 10000
SET search_path FROM CURRENT
RETURN ecom_embed(text, role)::vector;

-- ecom_embed_batch(texts, role) as vectors: one encoder run per internal
-- batch, to fill a column in bulk.
CREATE FUNCTION ecom_embed_batch_vector(texts text[], role text DEFAULT 'item')
RETURNS TABLE (ord integer, embedding vector)
LANGUAGE sql STABLE STRICT PARALLEL SAFE COST 100000 ROWS 100
SET search_path FROM CURRENT
BEGIN ATOMIC
  SELECT b.ord, b.embedding::vector FROM ecom_embed_batch(texts, role) AS b;
END;

-- The valid, unconditional HNSW (else IVFFlat) index over
-- `embedding_column` of `catalogue` with a vector opclass: (its access
-- method, the distance operator it orders by). NULLs when there is none.
CREATE FUNCTION ecom_catalogue_index(catalogue regclass, embedding_column name,
                                     OUT method name, OUT operator text)
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
BEGIN ATOMIC
  SELECT am.amname,
         CASE o.opcname WHEN 'vector_cosine_ops' THEN '<=>'
                        WHEN 'vector_ip_ops' THEN '<#>'
                        ELSE '<->' END
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = c.relam
    JOIN pg_catalog.pg_opclass o ON o.oid = i.indclass[0]
    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
   WHERE i.indrelid = catalogue AND a.attname = embedding_column
     AND i.indisvalid AND i.indpred IS NULL
     AND am.amname IN ('hnsw', 'ivfflat')
     AND o.opcname IN ('vector_cosine_ops', 'vector_ip_ops', 'vector_l2_ops')
   ORDER BY am.amname = 'hnsw' DESC, c.relname
   LIMIT 1;
END;

-- The type of column `col` of `catalogue`; a clear ERROR when it has none.
CREATE FUNCTION ecom_catalogue_column(catalogue regclass, col name)
RETURNS regtype
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
  typ regtype;
BEGIN
  IF catalogue IS NULL THEN
    RAISE EXCEPTION 'catalogue must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF col IS NULL THEN
    RAISE EXCEPTION 'a column name of % is NULL', catalogue USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT a.atttypid::regtype INTO typ
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = catalogue AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
  IF typ IS NULL THEN
    RAISE EXCEPTION 'column "%" of % does not exist', col, catalogue USING ERRCODE = 'undefined_column';
  END IF;
  RETURN typ;
END
$$;

-- Which distance operator orders `embedding_column` of `catalogue` through
-- its vector index (ecom_catalogue_index), '<=>' when there is none (an
-- exact scan). For unit item embeddings the three operators give the same
-- order to ecom_query_vector's q, so the index decides only which is fast.
CREATE FUNCTION ecom_catalogue_operator(catalogue regclass, embedding_column name DEFAULT 'embedding')
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
  typ regtype := ecom_catalogue_column(catalogue, embedding_column);
BEGIN
  IF typ <> 'vector'::regtype THEN
    RAISE EXCEPTION 'column "%" of % is %, not vector', embedding_column, catalogue, typ
      USING ERRCODE = 'datatype_mismatch',
            HINT = format('ALTER TABLE %s ALTER COLUMN %I TYPE vector USING %I::vector',
                          catalogue, embedding_column, embedding_column);
  END IF;
  RETURN coalesce((ecom_catalogue_index(catalogue, embedding_column)).operator, '<=>');
END
$$;

-- Whether `catalogue` has a valid, unconditional index on
-- ecom_item_key(item_column): what finds best sellers by key without a scan.
CREATE FUNCTION ecom_catalogue_has_key_index(catalogue regclass, item_column name DEFAULT 'title')
RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
BEGIN ATOMIC
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_index i
     WHERE i.indrelid = catalogue AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NOT NULL
       AND pg_catalog.pg_get_indexdef(i.indexrelid, 1, true)
           IN (pg_catalog.format('ecom_item_key(%s)', pg_catalog.quote_ident(item_column)),
               pg_catalog.format('ecom_item_key(%s::text)', pg_catalog.quote_ident(item_column))));
END;

-- The candidate stage: the `candidates` rows of `catalogue` with the
-- largest inner product with `q` among the `ef_search` that its vector
-- index finds nearest to `q`, best first; then the rows whose
-- ecom_item_key(item text) is in `item_keys` (best sellers the index
-- cannot see; through an index on ecom_item_key(item_column) where there
-- is one). Each item text once (its best row), with its embedding and
-- side features; rows whose text or embedding is NULL are not candidates.
-- Why search wider than `candidates` and keep the best by q·v: a head's q
-- lies far from every item embedding (on 1,000,000 titles its nearest has
-- cosine 0.28 to it, a shopper's context 0.57 to its own), and an HNSW
-- search for such a query finds the true nearest only with a wide beam
-- (benches/RESULTS.md: recall@100 on 100,000 titles 0.36 at ef_search
-- 100, 0.95 at 1000).
-- NULL ef_search: 10 x candidates, at least the session's hnsw.ef_search,
-- at most 1000. It sets hnsw.ef_search for its own scan and puts the
-- caller's value back (an ERROR undoes it with the transaction).
CREATE FUNCTION ecom_catalogue_candidates(
    catalogue regclass,
    q real[],
    candidates integer,
    item_column name DEFAULT 'title',
    embedding_column name DEFAULT 'embedding',
    features_column name DEFAULT NULL,
    item_keys bigint[] DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    OUT items text[],
    OUT embeddings real[],
    OUT features real[])
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1000
SET search_path FROM CURRENT
AS $$
DECLARE
  op text := ecom_catalogue_operator(catalogue, embedding_column);
  uses_hnsw boolean := (ecom_catalogue_index(catalogue, embedding_column)).method = 'hnsw';
  item_type regtype := ecom_catalogue_column(catalogue, item_column);
  old_ef text;
  wide integer;
  null_features bigint;
  cols text;
BEGIN
  IF features_column IS NOT NULL THEN
    PERFORM ecom_catalogue_column(catalogue, features_column);
  END IF;
  IF q IS NULL THEN
    RAISE EXCEPTION 'q must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF candidates IS NULL OR candidates < 1 THEN
    RAISE EXCEPTION 'candidates must be positive, got %', coalesce(candidates::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF ef_search < candidates THEN
    RAISE EXCEPTION 'ef_search (%) must be at least candidates (%)', ef_search, candidates
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF uses_hnsw AND greatest(candidates, ef_search) > 1000 THEN
    RAISE EXCEPTION 'candidates and ef_search must be at most 1000 over an HNSW index, got %', greatest(candidates, ef_search)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'hnsw.ef_search, which bounds what one index scan returns, is at most 1000';
  END IF;
  -- an HNSW scan returns at most hnsw.ef_search rows. The setting exists
  -- once pgvector's library is loaded, which a vector value does; set it
  -- whether or not an index of the catalogue itself was found (a view
  -- over an indexed table uses that table's index)
  PERFORM '[0]'::vector;
  old_ef := current_setting('hnsw.ef_search');
  wide := coalesce(ef_search, greatest(candidates, least(1000, greatest(10 * candidates, old_ef::integer))));
  PERFORM pg_catalog.set_config('hnsw.ef_search', least(wide, 1000)::text, true);
  cols := format('%1$I::text AS t, %2$I AS e, %3$s AS f', item_column, embedding_column,
                 CASE WHEN features_column IS NULL THEN 'NULL::real[]'
                      ELSE format('%I::real[]', features_column) END);
  -- one sort key for every aggregate, unique per row (the item text), so
  -- the three arrays are in the same order whatever each sort does
  EXECUTE format(
    'WITH ann AS (SELECT w.t, w.e, w.f, w.e <#> $1::vector AS d, 0 AS src
                    FROM (SELECT %1$s, %2$I %3$s $1::vector AS n FROM %4$s
                           WHERE %2$I IS NOT NULL AND %5$I IS NOT NULL ORDER BY n LIMIT $4) w
                   ORDER BY d LIMIT $2)%6$s,
          c AS (SELECT DISTINCT ON (u.t) u.* FROM (SELECT * FROM ann%7$s) u ORDER BY u.t, u.src, u.d)
     SELECT array_agg(c.t ORDER BY c.src, c.d, c.t), array_agg(c.e::real[] ORDER BY c.src, c.d, c.t),
            array_agg(c.f ORDER BY c.src, c.d, c.t) FILTER (WHERE c.f IS NOT NULL),
            count(*) FILTER (WHERE c.f IS NULL)
       FROM c',
    cols, embedding_column, op, catalogue, item_column,
    CASE WHEN coalesce(cardinality(item_keys), 0) = 0 THEN ''
         ELSE format(', best AS (SELECT %1$s, %2$I <#> $1::vector AS d, 1 AS src FROM %3$s
                                 WHERE ecom_item_key(%4$I) = ANY ($3) AND %2$I IS NOT NULL)',
                     cols, embedding_column, catalogue, item_column) END,
    CASE WHEN coalesce(cardinality(item_keys), 0) = 0 THEN '' ELSE ' UNION ALL SELECT * FROM best' END)
    INTO items, embeddings, features, null_features
    USING q, candidates, item_keys, wide;
  PERFORM pg_catalog.set_config('hnsw.ef_search', old_ef, true);
  IF features_column IS NOT NULL AND null_features > 0 THEN
    RAISE EXCEPTION 'column "%" of % is NULL for % of the candidates', features_column, catalogue, null_features
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'every candidate needs its side features: give the column a value, or pass a view that leaves such rows out';
  END IF;
END
$$;

-- How many best sellers ecom_recommend adds when the caller does not say:
-- as many as `candidates` where finding them by key is cheap (an index on
-- ecom_item_key(item_column), or a table of at most 16 MB, about 10,000
-- items with 384-d embeddings, partitions summed), else none.
CREATE FUNCTION ecom_default_best_sellers(catalogue regclass, item_column name, candidates integer)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
BEGIN ATOMIC
  SELECT CASE WHEN ecom_catalogue_has_key_index(catalogue, item_column)
                   OR (SELECT CASE c.relkind
                                WHEN 'p' THEN (SELECT coalesce(sum(pg_catalog.pg_relation_size(t.relid)), 0)
                                                 FROM pg_catalog.pg_partition_tree(catalogue) t)
                                WHEN 'r' THEN pg_catalog.pg_relation_size(catalogue)
                                WHEN 'm' THEN pg_catalog.pg_relation_size(catalogue)
                              END
                         FROM pg_catalog.pg_class c WHERE c.oid = catalogue) <= 16 * 1024 * 1024
              THEN candidates ELSE 0 END;
END;

-- The item keys of the head's `n` best sellers for `behaviour`: those
-- whose learned effect is positive (an item no better than its text
-- earns no candidate place).
CREATE FUNCTION ecom_best_seller_keys(tenant text, behaviour text, n integer)
RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
BEGIN ATOMIC
  SELECT ARRAY(SELECT t.item_key FROM ecom_top_items(tenant, behaviour, n) t WHERE t.effect > 0);
END;

-- What ecom_recommend and ecom_recommend_serve share: their arguments
-- checked, then the candidate stage for the tenant's query vector and its
-- best sellers. `context` and `behaviour` are not NULL here.
CREATE FUNCTION ecom_recommend_candidates(
    tenant text, context text, catalogue regclass, k integer, candidates integer,
    behaviour text, item_column name, embedding_column name, features_column name,
    best_sellers integer, ef_search integer,
    OUT items text[], OUT embeddings real[], OUT features real[])
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1000
SET search_path FROM CURRENT
AS $$
BEGIN
  IF k IS NOT NULL AND candidates IS NOT NULL AND candidates < k THEN
    RAISE EXCEPTION 'candidates (%) must be at least k (%)', candidates, k
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF best_sellers < 0 THEN
    RAISE EXCEPTION 'best_sellers must not be negative, got %', best_sellers
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT c.items, c.embeddings, c.features INTO items, embeddings, features
    FROM ecom_catalogue_candidates(
           catalogue, ecom_query_vector(tenant, context, behaviour), candidates,
           item_column, embedding_column, features_column,
           ecom_best_seller_keys(tenant, behaviour,
             coalesce(best_sellers, ecom_default_best_sellers(catalogue, item_column, candidates))),
           ef_search) AS c;
END
$$;

-- Two-stage ecom_rank: the candidates of `catalogue` for the tenant's
-- ecom_query_vector and its best sellers, ranked by the tenant's head from
-- their stored embeddings. ecom_rank's rows but item_index; its arguments
-- by name (candidates, the columns and the stage's knobs come between).
CREATE FUNCTION ecom_recommend(
    tenant text,
    context text,
    catalogue regclass,
    k integer DEFAULT 10,
    candidates integer DEFAULT 100,
    behaviour text DEFAULT 'purchase',
    item_column name DEFAULT 'title',
    embedding_column name DEFAULT 'embedding',
    features_column name DEFAULT NULL,
    explore text DEFAULT 'none',
    seed bigint DEFAULT NULL,
    best_sellers integer DEFAULT NULL,
    ef_search integer DEFAULT NULL)
RETURNS TABLE (item text, score double precision, rank integer,
               propensity double precision, propensity_se double precision)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 20000 ROWS 10
SET search_path FROM CURRENT
AS $$
DECLARE
  c record;
BEGIN
  IF catalogue IS NULL THEN
    RAISE EXCEPTION 'catalogue must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF context IS NULL OR k IS NULL OR behaviour IS NULL OR explore IS NULL THEN
    RETURN;  -- as ecom_rank: nothing to rank
  END IF;
  c := ecom_recommend_candidates(tenant, context, catalogue, k, candidates, behaviour, item_column,
                                 embedding_column, features_column, best_sellers, ef_search);
  IF c.items IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT r.item, r.score, r.rank, r.propensity, r.propensity_se
      FROM ecom_rank_emb(tenant, context, c.items, c.embeddings, k, behaviour,
                         c.features, explore, seed) AS r;
END
$$;

-- Two-stage ecom_serve: as ecom_recommend, and logs what it shows (the
-- request's candidates and one impression per shown item) exactly as
-- ecom_serve does, so ecom_feedback, ecom_learn and ecom_evaluate work on it.
CREATE FUNCTION ecom_recommend_serve(
    tenant text,
    context text,
    catalogue regclass,
    k integer DEFAULT 10,
    candidates integer DEFAULT 100,
    behaviour text DEFAULT 'click',
    item_column name DEFAULT 'title',
    embedding_column name DEFAULT 'embedding',
    features_column name DEFAULT NULL,
    explore text DEFAULT 'thompson',
    seed bigint DEFAULT NULL,
    best_sellers integer DEFAULT NULL,
    ef_search integer DEFAULT NULL)
RETURNS TABLE (impression_id bigint, item text, score double precision, rank integer,
               propensity double precision, propensity_se double precision)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 20000 ROWS 10
SET search_path FROM CURRENT
AS $$
DECLARE
  c record;
BEGIN
  IF catalogue IS NULL THEN
    RAISE EXCEPTION 'catalogue must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF context IS NULL OR behaviour IS NULL OR explore IS NULL OR k IS NULL THEN
    RAISE EXCEPTION '% must not be NULL',
      CASE WHEN context IS NULL THEN 'context' WHEN behaviour IS NULL THEN 'behaviour'
           WHEN explore IS NULL THEN 'explore' ELSE 'k' END
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  c := ecom_recommend_candidates(tenant, context, catalogue, k, candidates, behaviour, item_column,
                                 embedding_column, features_column, best_sellers, ef_search);
  IF c.items IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT r.impression_id, r.item, r.score, r.rank, r.propensity, r.propensity_se
      FROM ecom_serve_emb(tenant, context, c.items, c.embeddings, k, behaviour,
                          c.features, explore, seed) AS r;
END
$$;
